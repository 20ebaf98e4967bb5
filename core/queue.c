/* core/queue — see queue.h. */
#include "core/queue.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "cfg/config.h"
#include "core/bounce.h"
#include "core/deliver.h"
#include "core/egress.h"
#include "core/owner.h"
#include "core/spooldir.h"
#include "core/log.h"
#include "core/tlsout.h"
#include "core/worker.h"
#include "proto/retry.h"
#include "proto/spoolrec.h"

/* ---- small things ------------------------------------------------------------------- */

static uint64_t wall_ms(void)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	return (uint64_t)tv.tv_sec * 1000u + (uint64_t)tv.tv_usec / 1000u;
}

static uint32_t qrand(struct queue *q)
{
	q->rnd ^= q->rnd << 13;
	q->rnd ^= q->rnd >> 7;
	q->rnd ^= q->rnd << 17;
	return (uint32_t)(q->rnd >> 16);
}

static unsigned qhash(const char *qid)
{
	unsigned h = 2166136261u;
	for (; *qid; qid++)
		h = (h ^ (unsigned char)*qid) * 16777619u;
	return h % QUEUE_HASH;
}

static const struct config *qcfg(const struct queue *q)
{
	return q->w->snap->cfg;
}

static const char *rcpt_domain(const char *addr)
{
	const char *at = strrchr(addr, '@');
	return at ? at + 1 : "";
}

/* Untrusted text for a log line: printable ASCII and spaces as they are, the rest \xHH. */
/* ---- messages ----------------------------------------------------------------------- */

/* What a backlog costs per message (queue.h): 192 is a jemalloc size class. */
_Static_assert(sizeof(struct queue_msg) <= 192, "struct queue_msg grew past 192 octets");

static void msg_unlink(struct queue *q, struct queue_msg *m)
{
	struct queue_msg **pp = &q->hash[qhash(m->qid)];
	while (*pp && *pp != m)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = m->hnext;
}

static void msg_drop_body(struct queue *q, struct queue_msg *m)
{
	if (m->body) {
		q->body_bytes -= m->size;
		free(m->body);
		m->body = NULL;
	}
}

/* Its MSG record is live in its segment (delta 1), or no more (-1). */
static void msg_seg_ref(struct queue *q, const struct queue_msg *m, int delta)
{
	spool_seg_ref(q->spool, m->seg_worker, m->loc.seq, m->loc.len, delta);
}

static void msg_free(struct queue *q, struct queue_msg *m)
{
	if (!q->finishing)                 /* (at fini its neighbours on the wheel are gone) */
		timer_cancel(&m->t);
	if (!m->foreign)                   /* (a foreign one is counted at its home) */
		msg_seg_ref(q, m, -1);
	msg_unlink(q, m);
	msg_drop_body(q, m);
	for (size_t i = 0; i < m->nrcpt; i++) {
		free(m->r[i].addr);
		why_put(&q->why, m->r[i].why);
	}
	free(m->r);
	free(m->sender);
	free(m->rbuf);
	q->nmsgs--;
	free(m);
}

/* What the operator asked of m (its cancel byte: written by its home only, read by the
 * worker that owns a site where a job of it waits). */
static bool msg_deleted(const struct queue_msg *m)
{
	return m->cancel == QUEUE_CANCEL_DELETED;
}

static bool msg_returning(const struct queue_msg *m)
{
	return m->cancel == QUEUE_CANCEL_RETURNING;
}

/* A note for the spool: with the next commit (spool_note), or, during an operator's change
 * (core/control sets q->collect), into the change's own commit. 0, or <0. */
static int queue_note(struct queue *q, const uint8_t *rec, size_t len)
{
	return q->collect ? buf_append(q->collect, rec, len) : spool_note(q->spool, rec, len);
}

/* The DONE note that ends m in the spool (once). */
static void msg_note_done(struct queue *q, struct queue_msg *m)
{
	if (m->done_noted)
		return;
	m->done_noted = true;
	uint8_t rec[SPOOLREC_HDR_LEN + 4 + sizeof m->qid];
	size_t n = spoolrec_encode_done(rec, sizeof rec, m->qid);
	if (n == 0 || queue_note(q, rec, n) < 0)
		log_warn("event=done_note_failed qid=%s note=\"%s\"", m->qid,
		         msg_deleted(m) ? "deleted, but it may come back after a restart"
		                    : "it may be delivered again after a restart");
}

/* The message has nothing left to do: DONE, and gone once nothing points at it. */
static void msg_maybe_done(struct queue *q, struct queue_msg *m)
{
	if (m->foreign) {                  /* another worker's: its home notes and ends it */
		if (m->refs == 0 && !q->finishing)
			msg_free(q, m);
		return;
	}
	if (m->open > 0 || m->refs > 0 || q->finishing)
		return;
	msg_note_done(q, m);
	msg_free(q, m);
}

void queue_msg_unref(struct queue *q, struct queue_msg *m)
{
	m->refs--;
	if (m->refs == 0 && m->body && q->body_bytes > QUEUE_BODY_BUDGET / 2)
		msg_drop_body(q, m);           /* under pressure: read it again when needed */
	msg_maybe_done(q, m);
}

/* ---- jobs and the scheduled queue --------------------------------------------------- */

static void msg_fire(struct timer *t);
static void job_ready(struct queue_job *j);

static void job_free(struct queue_job *j)
{
	struct queue *q = j->q;
	if (j->all_prev)
		j->all_prev->all_next = j->all_next;
	else
		q->all = j->all_next;
	if (j->all_next)
		j->all_next->all_prev = j->all_prev;
	for (uint32_t k = 0; k < j->n; k++)
		j->m->r[j->idx[k]].where = QW_NONE;
	for (uint32_t k = 0; j->dsn_text && k < j->n; k++)
		free(j->dsn_text[k]);
	free(j->dsn_text);
	free(j->dsn_relay);
	free(j->idx);
	free(j->transport);
	free(j->domain);
	struct queue_msg *m = j->m;
	free(j);
	queue_msg_unref(q, m);
}

/* A job for up to cap recipients of m (sized to them: a backlog of a million one-recipient
 * messages must not hold a million arrays of QUEUE_JOB_RCPT_MAX). */
static struct queue_job *job_new(struct queue *q, struct queue_msg *m, const char *transport,
                                 const char *domain, size_t cap)
{
	struct queue_job *j = calloc(1, sizeof *j);
	if (!j)
		return NULL;
	j->q = q;
	j->m = m;
	j->transport = strdup(transport);
	j->domain = strdup(domain);
	j->idx = malloc((cap ? cap : 1) * sizeof *j->idx);
	if (!j->transport || !j->domain || !j->idx) {
		free(j->transport);
		free(j->domain);
		free(j->idx);
		free(j);
		return NULL;
	}
	for (char *p = j->domain; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	m->refs++;
	j->all_next = q->all;
	if (q->all)
		q->all->all_prev = j;
	q->all = j;
	return j;
}

/* The scheduled queue: m's timer for the earliest next try of its open recipients (none
 * open: no timer). A waiting message has no job. */
static void msg_schedule(struct queue *q, struct queue_msg *m)
{
	uint64_t at = UINT64_MAX;
	for (uint32_t i = 0; i < m->nrcpt; i++)
		if (m->r[i].state == QR_OPEN && m->r[i].next_try_s < at &&
		    m->r[i].next_try_s < SPOOLREC_HELD)     /* a held one waits for a release */
			at = m->r[i].next_try_s;
	if (at == UINT64_MAX || q->stopping) {
		timer_cancel(&m->t);
		return;
	}
	m->t_sched_cs = (uint32_t)((q->loop->now_ms - q->mono0_ms) / 10u);
	uint64_t now = wall_ms(), at_ms = at * 1000u;
	timer_arm(&q->loop->wheel, &m->t, at_ms > now ? at_ms - now : 0);
}

/* Group the due open recipients of m (next try at or before now_s) by (transport, next
 * hop or domain) into jobs, chained through ->next. */
static struct queue_job *msg_jobs(struct queue *q, struct queue_msg *m, uint64_t now_s)
{
	const struct config *cfg = qcfg(q);
	struct queue_job *head = NULL, **tail = &head;
	uint64_t sched = q->mono0_ms + (uint64_t)m->t_sched_cs * 10u;
	for (;;) {
		/* the first due, open recipient starts a group; its due mates join it */
		uint32_t first = m->nrcpt;
		for (uint32_t i = 0; i < m->nrcpt; i++)
			if (m->r[i].state == QR_OPEN && m->r[i].next_try_s <= now_s) {
				first = i;
				break;
			}
		if (first == m->nrcpt)
			break;
		const char *dom = rcpt_domain(m->r[first].addr);
		const struct config_transport *t = config_route(cfg, dom, strlen(dom));
		struct queue_job *cur;
		if (!t) {
			/* no route: a configuration matter, deferred (never a bounce) */
			cur = job_new(q, m, "", dom, 1);
			if (!cur)
				break;
			cur->idx[cur->n++] = first;
			m->r[first].state = QR_BUSY;
		} else {
			bool literal = strcmp(t->nexthop, "mx") != 0;
			size_t cap = 0;            /* the due open recipients from here on, at most */
			for (uint32_t i = first; i < m->nrcpt && cap < QUEUE_JOB_RCPT_MAX; i++)
				cap += m->r[i].state == QR_OPEN && m->r[i].next_try_s <= now_s;
			cur = job_new(q, m, t->id, literal ? t->nexthop : dom, cap);
			if (!cur)
				break;
			for (uint32_t i = first; i < m->nrcpt && cur->n < QUEUE_JOB_RCPT_MAX; i++) {
				if (m->r[i].state != QR_OPEN || m->r[i].next_try_s > now_s)
					continue;
				const char *d = rcpt_domain(m->r[i].addr);
				if (i != first) {
					const struct config_transport *ti = config_route(cfg, d, strlen(d));
					if (ti != t || (!literal && strcasecmp(d, dom) != 0))
						continue;
				}
				m->r[i].state = QR_BUSY;
				cur->idx[cur->n++] = i;
			}
		}
		cur->t_sched_ms = sched;
		*tail = cur;
		tail = &cur->next;
	}
	return head;
}

/* m's next try came: jobs for its due recipients, each on its way at once; the rest (and
 * any that failed at once) scheduled again. */
static void msg_fire(struct timer *t)
{
	struct queue_msg *m = (struct queue_msg *)((char *)t - offsetof(struct queue_msg, t));
	struct queue *q = m->q;
	m->refs++;                         /* a job may end (and m with it) synchronously */
	struct queue_job *j = msg_jobs(q, m, wall_ms() / 1000u);
	while (j) {
		struct queue_job *next = j->next;
		j->next = NULL;
		job_ready(j);
		j = next;
	}
	msg_schedule(q, m);
	queue_msg_unref(q, m);
}

/* ---- sites --------------------------------------------------------------------------- */

static unsigned site_hash(const char *key)
{
	uint32_t h = 2166136261u;          /* FNV-1a */
	for (const char *p = key; *p; p++)
		h = (h ^ (uint8_t)*p) * 16777619u;
	return h % QUEUE_SITE_HASH;
}

static struct queue_site *site_find(struct queue *q, const char *key)
{
	for (struct queue_site *s = q->site_hash[site_hash(key)]; s; s = s->hnext)
		if (strcmp(s->key, key) == 0)
			return s;
	return NULL;
}

static struct queue_site *site_new(struct queue *q, const char *key, const char *transport)
{
	const struct config_transport *t = config_transport_by_id(qcfg(q), transport);
	struct queue_site *s = calloc(1, sizeof *s);
	if (!s)
		return NULL;
	s->key = strdup(key);
	s->transport = strdup(transport);
	if (!s->key || !s->transport) {
		free(s->key);
		free(s->transport);
		free(s);
		return NULL;
	}
	/* "transport/sitekey", then "|SOURCE" and "|direct" (site_key) */
	const char *bar = strchr(s->key, '|');
	s->base_len = bar ? (size_t)(bar - s->key) : strlen(s->key);
	while (bar) {
		const char *seg = bar + 1;
		bar = strchr(seg, '|');
		size_t n = bar ? (size_t)(bar - seg) : strlen(seg);
		if (n == 6 && strncmp(seg, "direct", 6) == 0)
			s->direct = true;
		else if (n > 0 && !s->src_label)
			s->src_label = strndup(seg, n);
	}
	s->max_conns = t ? t->max_connections : 1;
	s->max_msgs = t ? t->max_messages_per_connection : 1;
	s->next = q->sites;
	q->sites = s;
	unsigned h = site_hash(s->key);
	s->hnext = q->site_hash[h];
	q->site_hash[h] = s;
	return s;
}

/* "[host]:port" with an IP literal host: its one address. */
/* "[host]:port" (port 25 when absent) into host and port; -EINVAL when it is not so. */
static int nexthop_split(const char *nexthop, char host[256], unsigned *port)
{
	const char *close = strchr(nexthop, ']');
	if (nexthop[0] != '[' || !close || (size_t)(close - nexthop - 1) >= 256 || close == nexthop + 1)
		return -EINVAL;
	memcpy(host, nexthop + 1, (size_t)(close - nexthop - 1));
	host[close - nexthop - 1] = '\0';
	*port = close[1] == ':' ? (unsigned)atoi(close + 2) : 25;
	return 0;
}

static void set_port(struct sockaddr_storage *ss, unsigned port)
{
	if (ss->ss_family == AF_INET)
		((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
	else if (ss->ss_family == AF_INET6)
		((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
}

/* The site's addresses from a DNS result, in its order (port 0: the result's own), kept
 * for the result's TTL (60 s when it has none). */
static void site_set_addrs(struct queue *q, struct queue_site *s, const struct dns_mx *res,
                           unsigned port)
{
	s->naddr = 0;
	for (size_t h = 0; h < res->nhosts; h++)
		for (size_t a = 0; a < res->hosts[h].naddrs && s->naddr < QUEUE_SITE_ADDRS; a++) {
			struct queue_addr *d = &s->addr[s->naddr++];
			d->ss = res->hosts[h].addrs[a].ss;
			d->len = res->hosts[h].addrs[a].len;
			if (port)
				set_port(&d->ss, port);
			snprintf(d->name, sizeof d->name, "%s", res->hosts[h].name);
		}
	s->next_addr = 0;
	s->dns_expires_ms = q->loop->now_ms + (uint64_t)(res->ttl ? res->ttl : 60) * 1000u;
}

static int literal_addr(struct queue_site *s, const char *nexthop)
{
	char host[256];
	unsigned port;
	if (nexthop_split(nexthop, host, &port) < 0)
		return -EINVAL;
	struct sockaddr_in *a4 = (struct sockaddr_in *)&s->addr[0].ss;
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&s->addr[0].ss;
	memset(&s->addr[0].ss, 0, sizeof s->addr[0].ss);
	if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
		a4->sin_family = AF_INET;
		a4->sin_port = htons((uint16_t)port);
		s->addr[0].len = sizeof *a4;
	} else if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons((uint16_t)port);
		s->addr[0].len = sizeof *a6;
	} else {
		return -ENOTSUP;               /* a host name in brackets: resolved (dns_host) */
	}
	snprintf(s->addr[0].name, sizeof s->addr[0].name, "%s", host);
	s->naddr = 1;
	s->dns_expires_ms = UINT64_MAX;    /* an address literal: never looked up again */
	return 0;
}

static void job_defer_now(struct queue_job *j, const char *text, const char *dsn)
{
	struct qresult r = { 0, text, dsn };
	queue_job_done(j, &r, 1, "none", 0);
}

static void job_bounce_now(struct queue_job *j, const char *text, const char *dsn)
{
	struct qresult r = { 550, text, dsn };
	queue_job_done(j, &r, 1, "none", 0);
}

/* The families of a DNS result's addresses (EGRESS_V4 | EGRESS_V6). */
static unsigned dns_fams(const struct dns_mx *res)
{
	unsigned f = 0;
	for (size_t h = 0; h < res->nhosts; h++)
		for (size_t a = 0; a < res->hosts[h].naddrs; a++)
			f |= egress_fam_of(&res->hosts[h].addrs[a].ss);
	return f;
}

/* The key of the site j goes to, for next hop `base` ("transport/sitekey") whose addresses
 * are of families fams: with the transport's sources, one chosen round robin among those
 * having an address of those families (egress_pick), moved to another when its pool has
 * no server up for it and source_failover allows (egress_route); "|direct" for a domain of
 * proxy_bypass_domains. -1: no source has an address of the families (or, pinned, not
 * the one chosen): the job cannot go by this transport (why says so). */
static int site_key(struct queue *q, struct queue_job *j, const char *base, unsigned fams,
                    char *key, size_t cap, const char **why)
{
	struct egress_rt *rt = &q->w->srv->egress;
	const struct egress_transport *t = egress_transport(egress_now(rt), j->transport);
	const char *dom = j->n ? rcpt_domain(j->m->r[j->idx[0]].addr) : j->domain;
	bool direct = t && t->pool && egress_bypass(t, dom);
	if (!t || t->nsrc == 0) {
		snprintf(key, cap, "%s%s", base, direct ? "|direct" : "");
		return 0;
	}
	size_t ti = (size_t)(t - t->tab->tr) % 16;
	uint32_t *rot = q->src_rotor[ti][fams & 3];
	size_t home = egress_pick(t->src, t->nsrc, fams, NULL, &rot[0]), go = home;
	if (home != EGRESS_NONE && !direct && t->pool) {
		size_t n = t->nsrc;                /* 1..CONFIG_SOURCES_MAX */
		bool usable[n];
		for (size_t i = 0; i < n; i++)
			usable[i] = egress_source_usable(t, i);
		struct egress_choice c = egress_route(t->src, n, home, fams, usable, t->failover, &rot[1]);
		if (c.verdict == EGRESS_GO || c.verdict == EGRESS_MOVE)
			go = c.source;
		else if (c.verdict == EGRESS_UNREACHABLE)
			go = EGRESS_NONE;          /* (WAIT: at home, whose site waits) */
	}
	if (go == EGRESS_NONE) {
		*why = egress_why_str(EGRESS_WHY_NO_ADDRESS);
		return -1;
	}
	snprintf(key, cap, "%s|%s%s", base, t->srcs[go].label, direct ? "|direct" : "");
	return 0;
}

static void job_unreachable(struct queue_job *j, const char *why)
{
	char text[200];
	snprintf(text, sizeof text, "4.4.1 no source of the transport can reach the next hop: %s", why);
	struct qresult r = { 0, text, "4.4.1" };
	queue_job_done(j, &r, 1, "none", 0);
}

/* The site of j for next hop "transport/sitekey" whose addresses res gave: with the source
 * site_key chooses; made when missing. NULL: j was ended (no source can reach it, or out
 * of memory). */
static struct queue_site *site_of_result(struct queue *q, struct queue_job *j,
                                         const char *transport, const char *sitekey,
                                         const struct dns_mx *res)
{
	char base[1400], key[1500];
	const char *uwhy = NULL;
	snprintf(base, sizeof base, "%s/%s", transport, sitekey);
	if (site_key(q, j, base, dns_fams(res), key, sizeof key, &uwhy) < 0) {
		job_unreachable(j, uwhy);
		return NULL;
	}
	struct queue_site *s = site_find(q, key);
	if (!s && !(s = site_new(q, key, transport)))
		job_defer_now(j, "4.3.0 out of memory", "4.3.0");
	return s;
}

/* A job of a message the operator deleted or returned meanwhile: ended here, never sent
 * (deleted: dropped; returned: bounced now). True when it was. */
static uint8_t job_cancel(const struct queue_job *j)
{
	return j->home ? __atomic_load_n(&((const struct queue_job *)j->home)->m->cancel,
	                                 __ATOMIC_ACQUIRE)
	               : j->m->cancel;
}

static bool job_cancelled(struct queue_job *j)
{
	uint8_t c = job_cancel(j);
	if (c == QUEUE_CANCEL_NONE)
		return false;
	j->site = NULL;                    /* (not a site's answer: not in its results) */
	if (c == QUEUE_CANCEL_HELD && !j->home) {
		struct queue_msg *m = j->m;    /* back to waiting, held (noted at the hold) */
		for (uint32_t k = 0; k < j->n; k++)
			if (m->r[j->idx[k]].state == QR_BUSY) {
				m->r[j->idx[k]].state = QR_OPEN;
				m->r[j->idx[k]].next_try_s = SPOOLREC_HELD;
			}
		job_free(j);
	} else if (c == QUEUE_CANCEL_DELETED && !j->home) {
		job_free(j);
	} else {
		struct qresult r = c == QUEUE_CANCEL_DELETED
		                 ? (struct qresult){ 0, "not sent", NULL }
		                 : c == QUEUE_CANCEL_HELD
		                 ? (struct qresult){ 0, "4.0.0 held by the operator", "4.0.0" }
		                 : (struct qresult){ 550, QUEUE_OP_BOUNCE_TEXT, "5.0.0" };
		queue_job_done(j, &r, 1, "none", 0);   /* (another worker's: the results go home) */
	}
	return true;
}

static void site_enqueue(struct queue_site *s, struct queue_job *j)
{
	struct queue *q = j->q;
	if (job_cancelled(j))
		return;
	if (!j->home && owner_post(q, s, j))
		return;                        /* another worker owns the site */
	j->site = s;
	if (s->dead_until_ms > q->loop->now_ms) {
		job_defer_now(j, "4.4.1 the next hop is not reachable (recently failed; retried later)",
		              "4.4.1");
		return;
	}
	j->t_ready_ms = q->loop->now_ms;
	j->next = NULL;
	if (s->ready_tail)
		s->ready_tail->next = j;
	else
		s->ready_head = j;
	s->ready_tail = j;
	s->nready++;
	deliver_kick(s);
}

static void job_mx_done(void *ctx, const struct dns_mx *res)
{
	struct queue_job *j = ctx;
	struct queue *q = j->q;
	char why[400];
	j->looking = false;
	switch (res->status) {
	case DNS_OK:
		break;
	case DNS_CANCELLED:
		job_free(j);                   /* stopping: the recipients stay queued in the spool */
		return;
	case DNS_NXDOMAIN:
		snprintf(why, sizeof why, "5.1.2 Host or domain name not found: %s", res->error);
		job_bounce_now(j, why, "5.1.2");
		return;
	case DNS_NULLMX:
		snprintf(why, sizeof why, "5.1.10 Domain %s does not accept mail (null MX)", j->domain);
		job_bounce_now(j, why, "5.1.10");
		return;
	case DNS_NOHOST:
		snprintf(why, sizeof why, "5.4.4 No address for the mail exchangers of %s", j->domain);
		job_bounce_now(j, why, "5.4.4");
		return;
	default:
		snprintf(why, sizeof why, "4.4.3 Host or domain name lookup failed: %s", res->error);
		job_defer_now(j, why, "4.4.3");
		return;
	}
	struct queue_site *s = site_of_result(q, j, j->transport, res->site, res);
	if (!s)
		return;
	if (s->naddr == 0 || s->dns_expires_ms <= q->loop->now_ms) {
		unsigned port = 0;             /* DNS's 25 */
#ifdef RR_TEST_BUILD
		/* tests cannot listen on port 25: RR_TEST_MX_PORT moves the MX hosts' port */
		const char *tp = getenv("RR_TEST_MX_PORT");
		port = tp ? (unsigned)atoi(tp) : 0;
#endif
		site_set_addrs(q, s, res, port);
	}
	if (s->naddr == 0) {
		job_defer_now(j, "4.4.3 no address for the mail exchangers", "4.4.3");
		return;
	}
	site_enqueue(s, j);
}

/* The addresses of a "[host]:port" next hop's host came (dns_host). */
static void job_host_done(void *ctx, const struct dns_mx *res)
{
	struct queue_job *j = ctx;
	struct queue *q = j->q;
	char why[600], host[256];
	unsigned port;
	j->looking = false;
	if (res->status == DNS_CANCELLED) {
		job_free(j);                   /* stopping: the recipients stay queued in the spool */
		return;
	}
	const struct config_transport *t = config_transport_by_id(qcfg(q), j->transport);
	if (!t || strcmp(t->nexthop, j->domain) != 0 || nexthop_split(t->nexthop, host, &port) < 0) {
		job_ready(j);                  /* the configuration changed meanwhile */
		return;
	}
	if (res->status != DNS_OK) {       /* the next hop is configuration: never a bounce */
		snprintf(why, sizeof why, "4.4.3 next hop %s: %s", t->nexthop, res->error);
		job_defer_now(j, why, "4.4.3");
		return;
	}
	struct queue_site *s = site_of_result(q, j, t->id, t->nexthop, res);
	if (!s)
		return;
	site_set_addrs(q, s, res, port);
	site_enqueue(s, j);
}

/* Was j grouped under a configuration that routes its recipients otherwise now (a reload
 * changed the route, the transport or its next hop)? */
static bool job_stale(struct queue *q, const struct queue_job *j)
{
	const char *dom = rcpt_domain(j->m->r[j->idx[0]].addr);
	const struct config_transport *t = config_route(qcfg(q), dom, strlen(dom));
	if (strcmp(t ? t->id : "", j->transport) != 0)
		return true;
	const char *want = t && strcmp(t->nexthop, "mx") != 0 ? t->nexthop : dom;
	return strcasecmp(want, j->domain) != 0;
}

/* Group j's recipients again under the configuration in force. */
static void job_regroup(struct queue_job *j)
{
	struct queue *q = j->q;
	struct queue_msg *m = j->m;
	if (job_cancelled(j))
		return;
	for (uint32_t k = 0; k < j->n; k++)
		if (m->r[j->idx[k]].state == QR_BUSY)
			m->r[j->idx[k]].state = QR_OPEN;
	m->refs++;
	job_free(j);
	msg_schedule(q, m);                /* due now: ready at the next tick */
	queue_msg_unref(q, m);
}

static void job_ready(struct queue_job *j)
{
	struct queue *q = j->q;
	if (j->n > 0 && job_stale(q, j)) {
		job_regroup(j);
		return;
	}
	const struct config_transport *t = config_transport_by_id(qcfg(q), j->transport);
	if (!t) {
		job_defer_now(j, j->transport[0] ? "4.3.5 transport removed from the configuration"
		                                 : "4.3.5 no route for this domain in the configuration",
		              "4.3.5");
		return;
	}
	if (strcmp(t->nexthop, "mx") != 0) {
		char key[700], base[600], lit[256];
		unsigned lport;
		uint8_t probe[16];
		snprintf(base, sizeof base, "%s/%s", t->id, t->nexthop);
		unsigned fams = 0;            /* an address literal's family; 0: a host name */
		if (nexthop_split(t->nexthop, lit, &lport) == 0)
			fams = inet_pton(AF_INET, lit, probe) == 1    ? EGRESS_V4
			     : inet_pton(AF_INET6, lit, probe) == 1 ? EGRESS_V6 : 0;
		const struct egress_transport *et =
		        egress_transport(egress_now(&q->w->srv->egress), t->id);
		const char *uwhy = NULL;
		if (fams == 0 && et && (et->nsrc > 0 || et->nbypass > 0))
			key[0] = '\0';           /* the source waits for the host's addresses */
		else if (site_key(q, j, base, fams, key, sizeof key, &uwhy) < 0) {
			job_unreachable(j, uwhy);
			return;
		}
		struct queue_site *s = key[0] ? site_find(q, key) : NULL;
		if (!s && key[0]) {
			s = site_new(q, key, t->id);
			if (!s) {
				job_defer_now(j, "4.3.0 out of memory", "4.3.0");
				return;
			}
			if (literal_addr(s, t->nexthop) < 0)
				s->naddr = 0;
		}
		if (s && s->naddr > 0 && s->dns_expires_ms > q->loop->now_ms) {
			site_enqueue(s, j);
			return;
		}
		/* a host name in the brackets: its A and AAAA (no MX), cached for their TTL */
		char host[256];
		unsigned port;
		if (nexthop_split(t->nexthop, host, &port) < 0) {
			job_defer_now(j, "4.3.5 the transport's next hop is not [host]:port", "4.3.5");
			return;
		}
		if (!q->dns) {
			job_defer_now(j, "4.4.3 no DNS resolver", "4.4.3");
			return;
		}
		j->looking = true;
		int rc = dns_host(q->dns, host, job_host_done, j);
		if (rc < 0) {
			j->looking = false;
			job_defer_now(j, rc == -EINVAL ? "4.3.5 the transport's next hop is not a host name"
			                               : "4.4.3 the next hop's host cannot be looked up now",
			              rc == -EINVAL ? "4.3.5" : "4.4.3");
		}
		return;
	}
	if (!q->dns) {
		job_defer_now(j, "4.4.3 no DNS resolver", "4.4.3");
		return;
	}
	j->looking = true;
	int rc = dns_mx(q->dns, j->domain, job_mx_done, j);
	if (rc < 0) {
		j->looking = false;
		if (rc == -EINVAL)             /* not a domain: the recipient's own address */
			job_bounce_now(j, "5.1.2 bad destination domain name", "5.1.2");
		else                           /* ENOMEM, a resolver going away: later */
			job_defer_now(j, "4.4.3 the domain cannot be looked up now", "4.4.3");
	}
}

/* A job taken from its site comes back unstarted (its connection ended while its body
 * was read): first in line again, or let go of when the worker stops. */
static void job_requeue(struct queue_job *j)
{
	struct queue_site *s = j->site;
	if (j->q->stopping || !s) {
		queue_job_drop(j);             /* its recipients stay queued in the spool */
		return;
	}
	j->t_taken_ms = 0;                 /* (in a ready queue again) */
	j->next = s->ready_head;
	s->ready_head = j;
	if (!s->ready_tail)
		s->ready_tail = j;
	s->nready++;
	deliver_kick(s);
}

struct queue_job *queue_site_take_if(struct queue_site *s,
                                     bool (*ok)(const struct queue_job *j, const void *ctx),
                                     const void *ctx)
{
	struct queue_job **pp = &s->ready_head, *prev = NULL;
	while (*pp) {
		struct queue_job *j = *pp;
		/* the operator deleted or returned its message meanwhile (ctl): not sent */
		bool gone = job_cancel(j) != QUEUE_CANCEL_NONE;
		if (!gone && ok && !ok(j, ctx)) {
			prev = j;
			pp = &j->next;
			continue;
		}
		*pp = j->next;
		if (s->ready_tail == j)
			s->ready_tail = prev;
		s->nready--;
		j->next = NULL;
		j->t_taken_ms = j->q->loop->now_ms;
		if (gone && job_cancelled(j))
			continue;                  /* (ended there; *pp is the next already) */
		return j;
	}
	return NULL;
}

struct queue_job *queue_site_take(struct queue_site *s)
{
	return queue_site_take_if(s, NULL, NULL);
}

/* Another worker's job j at our site s: does the reloaded configuration route its
 * recipients elsewhere (another transport, or a smarthost transport's new next hop)? */
static bool foreign_stale(struct queue *q, const struct queue_site *s, const struct queue_job *j)
{
	const char *dom = rcpt_domain(j->m->r[j->idx[0]].addr);
	const struct config_transport *t = config_route(qcfg(q), dom, strlen(dom));
	if (!t || strcmp(t->id, j->transport) != 0)
		return true;
	if (strcmp(t->nexthop, "mx") == 0)
		return false;                  /* (an MX site: the home looks it up again anyway) */
	size_t n = strlen(t->id);
	return strncmp(s->key, t->id, n) != 0 || s->key[n] != '/' || s->base_len <= n + 1 ||
	       strlen(t->nexthop) != s->base_len - n - 1 ||
	       strncmp(s->key + n + 1, t->nexthop, s->base_len - n - 1) != 0;
}

void queue_job_regroup(struct queue_job *j)
{
	job_regroup(j);
}

/* Group the jobs of s's ready queue again (all of them, or those the configuration in
 * force routes elsewhere): ours here, another worker's at its home. */
static unsigned site_regroup(struct queue *q, struct queue_site *s, bool all)
{
	unsigned moved = 0;
	{
		struct queue_job **pp = &s->ready_head, *stale = NULL;
		s->ready_tail = NULL;
		while (*pp) {
			struct queue_job *j = *pp;
			if (j->n > 0 && (all || (j->home ? foreign_stale(q, s, j) : job_stale(q, j)))) {
				*pp = j->next;
				s->nready--;
				j->next = stale;
				stale = j;
			} else {
				s->ready_tail = j;
				pp = &j->next;
			}
		}
		while (stale) {
			struct queue_job *j = stale;
			stale = j->next;
			j->next = NULL;
			j->site = NULL;
			if (j->home)
				owner_reroute(j);      /* its home groups it again */
			else
				job_regroup(j);
			moved++;
		}
	}
	return moved;
}

/* Is s's source gone from its transport (a reload changed the transport's `source`)? */
static bool site_source_gone(struct queue *q, const struct queue_site *s)
{
	if (!s->src_label)
		return false;
	const struct egress_transport *t =
	        egress_transport(egress_now(&q->w->srv->egress), s->transport);
	return !t || egress_source_find(t, s->src_label) == EGRESS_NONE;
}

void queue_site_regroup(struct queue *q, struct queue_site *s)
{
	unsigned moved = site_regroup(q, s, true);
	if (moved)
		log_info("event=rerouted worker=%u jobs=%u site=%s note=\"its transport is gone\"",
		         q->w->id, moved, s->key);
}

void queue_reconfigured(struct queue *q)
{
	if (q->stopping)
		return;
	if (q->dns)                        /* (dns.servers cannot change on a reload) */
		dns_set_max_lookups(q->dns, qcfg(q)->dns_max_lookups);
	unsigned moved = 0;
	for (struct queue_site *s = q->sites; s; s = s->next)
		moved += site_regroup(q, s, site_source_gone(q, s));
	if (moved)
		log_info("event=rerouted worker=%u jobs=%u note=\"waiting jobs grouped again under the "
		         "reloaded routes\"", q->w->id, moved);
}

void queue_egress_poll(struct queue *q)
{
	struct egress_rt *rt = &q->w->srv->egress;
	unsigned long e = egress_epoch(rt);
	if (e == q->egress_epoch || q->stopping)
		return;
	q->egress_epoch = e;
	const struct egress_tab *tab = egress_now(rt);
	for (struct queue_site *s = q->sites; s; s = s->next) {
		if (s->direct || (s->nready == 0 && !s->waiting))
			continue;
		const struct egress_transport *t = egress_transport(tab, s->transport);
		if (!t || !t->pool)
			continue;
		size_t i = s->src_label ? egress_source_find(t, s->src_label) : EGRESS_NONE;
		if (s->src_label && i == EGRESS_NONE)
			continue;                  /* (a reload's: queue_reconfigured) */
		if (egress_source_usable(t, i)) {
			if (s->waiting)
				log_info("event=source_resumed site=%s ready=%zu", s->key, s->nready);
			s->waiting = false;
			if (s->nready)
				deliver_kick(s);
			continue;
		}
		bool other = false;
		for (size_t k = 0; k < t->nsrc && !other; k++)
			other = k != i && egress_source_usable(t, k);
		if (t->failover && other && s->nready) {
			unsigned n = site_regroup(q, s, true);
			log_info("event=source_moved site=%s jobs=%u reason=\"no proxy up for the source\"",
			         s->key, n);
			s->waiting = false;
		} else if (!s->waiting && s->nready) {
			s->waiting = true;
			log_warn("event=source_wait site=%s ready=%zu reason=\"%s\"", s->key, s->nready,
			         egress_why_str(t->failover ? EGRESS_WHY_ALL_DOWN : EGRESS_WHY_PINNED));
		}
	}
}

void queue_site_unget(struct queue_site *s, struct queue_job *j)
{
	j->t_taken_ms = 0;                 /* (in a ready queue again) */
	j->next = s->ready_head;
	s->ready_head = j;
	if (!s->ready_tail)
		s->ready_tail = j;
	s->nready++;
}

void queue_job_drop(struct queue_job *j)
{
	if (j->home) {
		owner_drop(j);                 /* home, without results (it calls us again) */
		return;
	}
	job_free(j);
}

struct queue_site *queue_site_get(struct queue *q, const char *key, const char *transport)
{
	struct queue_site *s = site_find(q, key);
	return s ? s : site_new(q, key, transport);
}

void queue_site_enqueue(struct queue_site *s, struct queue_job *j)
{
	site_enqueue(s, j);
}

struct queue_job *queue_foreign_job(struct queue *q, const char *qid, char *sender,
                                    uint32_t flags, uint64_t arrival_ms, unsigned seg_worker,
                                    const struct spool_loc *loc, size_t size, uint8_t *body,
                                    char **rcpt, uint32_t n, const char *transport)
{
	struct queue_msg *m = calloc(1, sizeof *m);
	struct qrcpt *r = calloc(n ? n : 1, sizeof *r);
	if (!m || !r) {
		free(m);
		free(r);
		return NULL;
	}
	m->q = q;
	m->rop.kind = QUEUE_OP_READ;
	m->foreign = true;
	snprintf(m->qid, sizeof m->qid, "%s", qid);
	m->r = r;
	m->nrcpt = n;
	m->t.fire = msg_fire;              /* (never armed: a foreign message has no schedule) */
	struct queue_job *j = job_new(q, m, transport, "", n);
	if (!j) {
		free(r);
		free(m);
		return NULL;
	}
	m->sender = sender;
	for (uint32_t k = 0; k < n; k++) {
		r[k].addr = rcpt[k];
		r[k].state = QR_BUSY;
		j->idx[j->n++] = k;
	}
	m->flags = flags;
	m->arrival_ms = arrival_ms;
	m->seg_worker = seg_worker;
	m->loc = *loc;
	m->size = size;
	m->body = body;
	if (body)
		q->body_bytes += size;
	q->nmsgs++;
	return j;
}

void queue_site_fail(struct queue *q, struct queue_site *s, const char *why)
{
	uint64_t rest = 60000;
	if (qcfg(q)->nretry_schedule)
		rest = (uint64_t)qcfg(q)->retry_schedule[0] * 1000u;
	s->dead_until_ms = q->loop->now_ms + rest;
	char esc[600];
	log_warn("event=site_dead site=%s reason=\"%s\" deferred=%zu", s->key,
	         log_escape_text(esc, sizeof esc, why), s->nready);
	/* Postfix's words for a dead destination: these recipients never saw the reply that
	 * killed the site, so it is quoted as the reason, not as their server's answer */
	/* The failure's own status code (4.4.1 connect, 4.4.2 timeout, 4.7.4 TLS required, ...)
	 * is theirs too, said once: "CODE delivery temporarily suspended: WHY" */
	char text[700], code[16] = "4.4.1";
	const char *w = why;
	size_t cl = strspn(w, "0123456789.");
	if (w[0] == '4' && w[1] == '.' && cl >= 5 && cl < sizeof code && w[cl] == ' ') {
		memcpy(code, w, cl);
		code[cl] = '\0';
		w += cl + 1;
	}
	snprintf(text, sizeof text, "%s delivery temporarily suspended: %s", code, w);
	struct queue_job *j;
	while ((j = queue_site_take(s)) != NULL) {
		struct qresult r = { 0, text, code };
		queue_job_done(j, &r, 1, "none", 0);
	}
}

/* ---- outcomes ----------------------------------------------------------------------- */

/* "5.1.1" from "550 5.1.1 text", else from the code's class. */
static void dsn_of(const struct qresult *r, unsigned code, char out[16])
{
	const char *t = r->text ? r->text : "";
	if (r->dsn) {
		snprintf(out, 16, "%s", r->dsn);
		return;
	}
	if (strlen(t) > 4 && t[3] == ' ')
		t += 4;
	unsigned a, b, c;
	int n = 0;
	if (sscanf(t, "%1u.%3u.%3u%n", &a, &b, &c, &n) == 3 && n > 0 && (a == 2 || a == 4 || a == 5) &&
	    (unsigned)a == code / 100) {
		snprintf(out, 16, "%u.%u.%u", a, b, c);
		return;
	}
	snprintf(out, 16, "%u.0.0", code >= 500 ? 5 : code >= 200 && code < 300 ? 2 : 4);
}

static void note_outcome(struct queue *q, struct queue_msg *m, uint8_t state, uint32_t attempts,
                         uint64_t next_try, const uint32_t *idx, uint32_t n)
{
	size_t sz = spoolrec_rcpt_size(strlen(m->qid), n);
	uint8_t stackbuf[1024];
	uint8_t *rec = sz <= sizeof stackbuf ? stackbuf : malloc(sz);
	bool ok = false;
	if (rec) {
		size_t len = spoolrec_encode_rcpt(rec, sz, m->qid, state, attempts, next_try,
		                                  (uint64_t)(wall_ms() / 1000u), idx, n);
		ok = len > 0 && queue_note(q, rec, len) == 0;
	}
	if (!ok)
		log_warn("event=outcome_note_failed qid=%s recipients=%u", m->qid, n);
	if (rec != stackbuf)
		free(rec);
}

/* "S.HH" for ms, rounded to hundredths of a second. */
static char *fmt_secs(char *p, uint64_t ms)
{
	uint64_t cs = (ms + 5) / 10;
	char tmp[24];
	int n = 0;
	uint64_t whole = cs / 100;
	do {
		tmp[n++] = (char)('0' + whole % 10);
		whole /= 10;
	} while (whole);
	while (n)
		*p++ = tmp[--n];
	*p++ = '.';
	*p++ = (char)('0' + cs % 100 / 10);
	*p++ = (char)('0' + cs % 10);
	return p;
}

/* "delay=S.HH, delays=a/b/c/d" (cap >= 160: five numbers of at most 23 octets). */
static void fmt_delays(char *out, size_t cap, uint64_t delay, uint64_t a, uint64_t b, uint64_t c,
                       uint64_t d)
{
	if (cap < 160) {
		out[0] = '\0';
		return;
	}
	char *p = out;
	memcpy(p, "delay=", 6);
	p = fmt_secs(p + 6, delay);
	memcpy(p, ", delays=", 9);
	p = fmt_secs(p + 9, a);
	*p++ = '/';
	p = fmt_secs(p, b);
	*p++ = '/';
	p = fmt_secs(p, c);
	*p++ = '/';
	p = fmt_secs(p, d);
	*p = '\0';
}

void queue_bounce_done(struct queue *q, struct queue_msg *m, const uint32_t *idx, uint32_t n,
                       bool ok)
{
	const struct config *cfg = qcfg(q);
	uint64_t now = wall_ms();
	bool reopened = false;
	for (uint32_t k = 0; k < n; k++) {
		struct qrcpt *rc = &m->r[idx[k]];
		if (rc->state != QR_BUSY)
			continue;
		if (ok) {
			rc->state = QR_BOUNCED;
			m->open--;
			note_outcome(q, m, SPOOLREC_RS_BOUNCED, rc->attempts, 0, &idx[k], 1);
		} else {                       /* bounced again at its next try */
			uint64_t delay_ms = retry_delay_ms(cfg->retry_schedule, cfg->nretry_schedule,
			                                   rc->attempts, qrand(q));
			rc->state = QR_OPEN;
			rc->next_try_s = (now + delay_ms) / 1000u;
			note_outcome(q, m, SPOOLREC_RS_DEFERRED, rc->attempts, rc->next_try_s, &idx[k], 1);
			reopened = true;
		}
	}
	if (reopened)
		msg_schedule(q, m);
	queue_msg_unref(q, m);             /* the DSN's reference */
}

/* A job of a message the operator deleted came back: what happened is logged (a 2xx was
 * delivered all the same), nothing else: no notes (its DONE is written), no DSN, no retry. */
static void job_done_deleted(struct queue_job *j, const struct qresult *res, size_t nres,
                             const char *relay)
{
	struct queue *q = j->q;
	struct queue_msg *m = j->m;
	for (uint32_t k = 0; k < j->n; k++) {
		const struct qresult *r = &res[nres == 1 ? 0 : k];
		struct qrcpt *rc = &m->r[j->idx[k]];
		char esc_to[600], esc_txt[1200];
		log_escape(esc_to, sizeof esc_to, rc->addr, strlen(rc->addr));
		log_escape_text(esc_txt, sizeof esc_txt, r->text ? r->text : "");
		bool sent = r->code / 100 == 2;
		if (sent)
			q->delivered++;
		if (sent)
			log_info("%s: to=<%s>, relay=%s, status=sent (deleted by the operator during the "
			         "delivery; reply: %s)", m->qid, esc_to, relay, esc_txt);
		else
			log_info("%s: to=<%s>, relay=%s, status=deleted (deleted by the operator; last: %s%s)",
			         m->qid, esc_to, relay, r->code ? "reply: " : "", esc_txt);
	}
	job_free(j);
}

/* The DSN for m's recipients idx[0..n): core/bounce quotes the message's header, so a
 * body that is back in the spool (a deferred message's is dropped from memory) is read
 * first, by a job that only waits for it (dsn_text set); the recipients stay busy
 * meanwhile. A read that cannot start or fails: the DSN goes without the header. */
static bool dsn_read(struct queue_job *j);
static void dsn_body_ready(struct queue_job *j, bool read);

static void dsn_send(struct queue *q, struct queue_msg *m, const uint32_t *idx,
                     const char *const *text, uint32_t n, const char *relay)
{
	if (m->body || m->sender[0] == '\0' || m->foreign) {
		bounce_send(q, m, idx, text, n, relay);
		return;
	}
	struct queue_job *j = job_new(q, m, "", "", n);
	bool ok = j && (j->dsn_text = calloc(n, sizeof *j->dsn_text)) != NULL &&
	          (j->dsn_relay = strdup(relay)) != NULL;
	if (j) {
		memcpy(j->idx, idx, n * sizeof *idx);
		j->n = n;                      /* (job_free frees the texts made, NULL or not) */
	}
	for (uint32_t k = 0; ok && k < n; k++)
		ok = (j->dsn_text[k] = strdup(text[k] ? text[k] : "")) != NULL;
	if (ok) {
		if (q->dsn_reads >= QUEUE_DSN_READS) {   /* its turn comes (dsn_next) */
			if (q->dsn_wait_tail)
				q->dsn_wait_tail->next = j;
			else
				q->dsn_wait = j;
			q->dsn_wait_tail = j;
			return;
		}
		if (dsn_read(j))
			return;                    /* dsn_body_ready follows */
	}
	bounce_send(q, m, idx, text, n, relay);
	if (j)
		job_free(j);                   /* (its texts with it) */
}

/* Start the read of DSN job j's body (a read slot taken). False: no read (the body is
 * there now, or the read could not start): the caller bounces at once. */
static bool dsn_read(struct queue_job *j)
{
	const uint8_t *body;
	size_t len;
	if (queue_job_body(j, &body, &len) != 0)
		return false;
	j->q->dsn_reads++;
	return true;
}

/* A read slot is free: the DSN jobs waiting start theirs, or bounce at once. */
static void dsn_next(struct queue *q)
{
	while (q->dsn_wait && q->dsn_reads < QUEUE_DSN_READS) {
		struct queue_job *j = q->dsn_wait;
		q->dsn_wait = j->next;
		if (!q->dsn_wait)
			q->dsn_wait_tail = NULL;
		j->next = NULL;
		if (!dsn_read(j))
			dsn_body_ready(j, false);
	}
}

/* The read of a DSN job's message ended (read: it had a read slot). */
static void dsn_body_ready(struct queue_job *j, bool read)
{
	struct queue_msg *m = j->m;
	struct queue *q = j->q;
	if (read)
		q->dsn_reads--;
	if (!msg_deleted(m))
		bounce_send(j->q, m, j->idx, (const char *const *)j->dsn_text, j->n, j->dsn_relay);
	uint32_t n = j->n;
	j->n = 0;                          /* (where= of its recipients: theirs to keep) */
	for (uint32_t k = 0; k < n; k++)
		free(j->dsn_text[k]);
	free(j->dsn_text);
	j->dsn_text = NULL;
	job_free(j);
	dsn_next(q);
}

void queue_job_done(struct queue_job *j, const struct qresult *res, size_t nres,
                    const char *relay, unsigned conn_use)
{
	if (j->site)                       /* (only a site of this worker: owner_post clears it) */
		for (uint32_t k = 0; k < j->n; k++) {
			unsigned c = res[nres == 1 ? 0 : k].code / 100;
			j->site->results[c == 2 ? 0 : c == 5 ? 2 : 1]++;
		}
	if (j->home) {                     /* another worker's: the results go home */
		owner_return(j, res, nres, relay, conn_use);
		return;
	}
	struct queue *q = j->q;
	struct queue_msg *m = j->m;
	if (msg_deleted(m)) {
		job_done_deleted(j, res, nres, relay);
		return;
	}
	const struct config *cfg = qcfg(q);
	uint64_t now = wall_ms(), mono = q->loop->now_ms;
	uint64_t max_age_ms = (uint64_t)cfg->max_age * 1000u;
	/* Postfix's delay= and delays=a/b/c/d, the same for every recipient of the job: made
	 * once, in whole ms rounded to hundredths (no floating point: printf's %f was the
	 * largest cost of a delivery line) */
	uint64_t a = j->t_ready_ms ? j->t_ready_ms - j->t_sched_ms : 0;
	uint64_t b = j->t_taken_ms ? j->t_taken_ms - j->t_ready_ms : 0;
	uint64_t c = j->t_conn_ms;
	uint64_t d = j->t_taken_ms ? mono - j->t_taken_ms : 0;
	d = d > c ? d - c : 0;
	char delays[160];
	fmt_delays(delays, sizeof delays, now > m->arrival_ms ? now - m->arrival_ms : 0, a, b, c, d);
	uint32_t *bounced = malloc(j->n * sizeof *bounced);
	const char **btext = malloc(j->n * sizeof *btext);
	uint32_t nb = 0;
	uint32_t *run = malloc(j->n * sizeof *run);
	uint32_t nrun = 0;
	uint8_t run_state = 0;
	uint32_t run_att = 0;
	uint64_t run_next = 0;
	bool deferred = false;               /* a recipient of this job waits for a retry */
	/* A bounced recipient whose DSN is due stays open (QR_BUSY) until the DSN is in the
	 * spool: its BOUNCED note is written then (queue_bounce_done), or it waits for its next
	 * try when the spool refuses the DSN; never final without its notification. */
	bool dsn_due = m->sender[0] != '\0' && bounced && btext;
	/* Did the next hop take the message for a recipient of this transaction? Then a 452
	 * to others is "too many recipients" (RFC 5321 4.5.3.1.10): they go again at once, in
	 * a new transaction, as Postfix sends them, not after a retry interval. */
	bool taken = false;
	for (uint32_t k = 0; k < j->n && !taken; k++)
		taken = res[nres == 1 ? 0 : k].code / 100 == 2;

	for (uint32_t k = 0; k <= j->n; k++) {
		uint8_t st = 0;
		uint32_t att = 0;
		uint64_t next = 0;
		bool pending = false;
		if (k < j->n) {
			const struct qresult *r = &res[nres == 1 ? 0 : k];
			struct qrcpt *rc = &m->r[j->idx[k]];
			unsigned code = r->code;
			char dsn[16], esc_to[600], esc_txt[1200];
			const char *status;
			char why[700];
			const char *text = r->text ? r->text : "";
			dsn_of(r, code ? code : 450, dsn);
			if (code == 452 && taken && !msg_returning(m) &&
			    (strcmp(dsn, "4.5.3") == 0 || strcmp(dsn, "4.0.0") == 0)) {
				rc->state = QR_OPEN;     /* due now: the next transaction; no attempt */
				rc->next_try_s = 0;
				q->rcpt_overflow++;
				continue;                /* (not a deferral: no line, no note) */
			}
			rc->attempts++;
			att = rc->attempts;
			if (code >= 200 && code < 300) {
				rc->state = QR_DELIVERED;
				st = SPOOLREC_RS_DELIVERED;
				status = "sent";
				q->delivered++;
			} else if (code >= 500) {
				rc->state = QR_BOUNCED;
				st = SPOOLREC_RS_BOUNCED;
				status = "bounced";
				q->bounced++;
			} else {
				uint64_t delay_ms = retry_delay_ms(cfg->retry_schedule, cfg->nretry_schedule,
				                                   att, qrand(q));
				if (msg_returning(m) ||
				    (!m->held && retry_give_up(m->arrival_ms, now + delay_ms, max_age_ms))) {
					rc->state = QR_BOUNCED;
					st = SPOOLREC_RS_BOUNCED;
					status = "expired";
					snprintf(why, sizeof why, "%s; last: %s",
					         msg_returning(m) ? QUEUE_OP_BOUNCE_TEXT : "5.4.7 delivery time expired",
					         text);
					text = why;
					snprintf(dsn, sizeof dsn, msg_returning(m) ? "5.0.0" : "5.4.7");
					q->bounced++;
				} else {
					rc->state = QR_OPEN;
					st = SPOOLREC_RS_DEFERRED;
					if (!m->foreign) {   /* (a foreign one's reason is kept at home) */
						why_put(&q->why, rc->why);
						rc->why = why_get(&q->why, text);
					}
					next = m->held ? SPOOLREC_HELD : (now + delay_ms) / 1000u;
					rc->next_try_s = next;
					status = "deferred";
					q->deferred++;
					deferred = true;
				}
			}
			if (rc->state == QR_BOUNCED && dsn_due) {
				rc->state = QR_BUSY;     /* until its DSN is committed */
				pending = true;
			}
			if (rc->state == QR_DELIVERED || rc->state == QR_BOUNCED)
				m->open--;
			if ((rc->state == QR_BOUNCED || pending) && bounced && btext) {
				btext[nb] = r->text;
				bounced[nb++] = j->idx[k];
			}
			log_escape(esc_to, sizeof esc_to, rc->addr, strlen(rc->addr));
			log_escape_text(esc_txt, sizeof esc_txt, text);
			log_info("%s: to=<%s>, relay=%s, conn_use=%u, %s, dsn=%s, status=%s (%s%s)",
			         m->qid, esc_to, relay, conn_use, delays, dsn,
			         strcmp(status, "expired") == 0 ? "bounced" : status,
			         code && strcmp(relay, "none") != 0 && st != SPOOLREC_RS_DELIVERED
			                 ? "host said: " : "",
			         esc_txt);
			if (st == SPOOLREC_RS_DELIVERED || st == SPOOLREC_RS_BOUNCED)
				next = 0;
		}
		/* outcome notes: runs of equal (state, attempts, next try) */
		if (nrun > 0 && (k == j->n || (!pending && (st != run_state || att != run_att ||
		                                             next != run_next)))) {
			note_outcome(q, m, run_state, run_att, run_next, run, nrun);
			nrun = 0;
		}
		if (k < j->n && run && !pending) {
			run_state = st;
			run_att = att;
			run_next = next;
			run[nrun++] = j->idx[k];
		}
	}
	if (nb > 0)
		dsn_send(q, m, bounced, btext, nb, relay);
	free(bounced);
	free(btext);
	free(run);
	/* deferred recipients go back to the scheduled queue (jobs armed on the timer wheel:
	 * nothing runs from here) */
	m->refs++;
	job_free(j);
	/* A deferred message waits minutes for its next try: its body goes back to the spool
	 * (read again then) unless another job of it still needs it, so a backlog for a dead
	 * next hop holds envelopes, not bodies. */
	if (deferred && m->refs == 1 && !m->reading)
		msg_drop_body(q, m);
	if (m->open > 0)
		msg_schedule(q, m);
	queue_msg_unref(q, m);
}

/* ---- body reads --------------------------------------------------------------------- */

static void body_read_done(struct net_loop *l, struct net_op *op, int res, unsigned flags)
{
	(void)l;
	(void)flags;
	struct queue_msg *m = (struct queue_msg *)((char *)op - offsetof(struct queue_msg, rop));
	struct queue *q = m->q;
	bool ok = false;
	m->reading = false;
	close(m->rfd);
	m->rfd = -1;
	if (res >= 0 && (uint64_t)res == m->loc.len) {
		size_t used;
		enum spoolrec_type type;
		struct spoolrec_msg rm;
		if (spoolrec_decode(m->rbuf, m->loc.len, &used, &type, &rm, NULL, NULL) == SPOOLREC_OK &&
		    type == SPOOLREC_MSG && rm.qid.len == strlen(m->qid) &&
		    memcmp(rm.qid.p, m->qid, rm.qid.len) == 0) {
			m->body = malloc(rm.data.len ? rm.data.len : 1);
			if (m->body) {
				spoolrec_scramble(m->body, (const uint8_t *)rm.data.p, rm.data.len, rm.nonce);
				m->size = rm.data.len;
				q->body_bytes += m->size;
				ok = true;
			}
		}
	}
	if (!ok)
		log_err("event=body_read_failed qid=%s segment=w%u-%016" PRIx64 " offset=%" PRIu64
		        " error=\"%s\"", m->qid, m->seg_worker, m->loc.seq, m->loc.off,
		        res < 0 ? strerror(-res) : "record does not check");
	free(m->rbuf);
	m->rbuf = NULL;
	struct queue_job *j = m->readers;
	m->readers = NULL;
	while (j) {                        /* (the read's reference holds m meanwhile) */
		struct queue_job *next = j->next;
		j->next = NULL;
		if (j->dsn_text) {
			dsn_body_ready(j, true);
		} else if (!ok) {
			struct qresult *r = calloc(j->n, sizeof *r);
			for (uint32_t k = 0; r && k < j->n; k++)
				r[k] = (struct qresult){ 0, "4.3.0 the message could not be read from the spool", "4.3.0" };
			deliver_job_body(j, false);
			if (r)
				queue_job_done(j, r, j->n, "none", 0);
			free(r);
		} else if (!deliver_job_body(j, true)) {
			job_requeue(j);             /* its connection went away meanwhile */
		}
		j = next;
	}
	queue_msg_unref(q, m);
}

int queue_job_body(struct queue_job *j, const uint8_t **body, size_t *len)
{
	struct queue_msg *m = j->m;
	struct queue *q = j->q;
	if (m->body) {
		*body = m->body;
		*len = m->size;
		return 1;
	}
	j->next = m->readers;
	m->readers = j;
	if (m->reading)
		return 0;
	char name[64];
	snprintf(name, sizeof name, "w%u-%016" PRIx64 ".seg", m->seg_worker, m->loc.seq);
	int fd = openat(q->spool_dirfd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		m->readers = j->next;
		return -errno;
	}
	m->rbuf = malloc(m->loc.len ? m->loc.len : 1);
	struct io_uring_sqe *sqe = m->rbuf ? net_loop_sqe(q->loop, &m->rop) : NULL;
	if (!sqe) {
		close(fd);
		free(m->rbuf);
		m->rbuf = NULL;
		m->readers = j->next;
		return -ENOMEM;
	}
	io_uring_prep_read(sqe, fd, m->rbuf, (unsigned)m->loc.len, m->loc.off);
	m->rfd = fd;                       /* closed when the read completes */
	m->reading = true;
	m->refs++;                         /* the read points at it */
	return 0;
}

/* ---- arrival ------------------------------------------------------------------------ */

static struct queue_msg *msg_new(struct queue *q, const char *qid, const char *sender,
                                 size_t nrcpt)
{
	struct queue_msg *m = calloc(1, sizeof *m);
	if (!m)
		return NULL;
	m->q = q;
	m->rop.kind = QUEUE_OP_READ;
	m->t.fire = msg_fire;
	snprintf(m->qid, sizeof m->qid, "%s", qid);
	m->sender = strdup(sender);
	m->r = calloc(nrcpt ? nrcpt : 1, sizeof *m->r);
	if (!m->sender || !m->r) {
		free(m->sender);
		free(m->r);
		free(m);
		return NULL;
	}
	m->nrcpt = (uint32_t)nrcpt;
	unsigned h = qhash(m->qid);
	m->hnext = q->hash[h];
	q->hash[h] = m;
	q->nmsgs++;
	return m;
}

void queue_accepted(struct queue *q, const struct smtp_srv_msg *sm, uint64_t arrival_s,
                    const struct spool_loc *loc, uint8_t *data)
{
	struct queue_msg *m = msg_new(q, sm->qid, sm->mail_from, sm->nrcpt);
	if (!m) {
		free(data);
		log_err("event=queue_oom qid=%s note=\"queued in the spool; delivered after a restart\"",
		        sm->qid);
		/* live for good: its segment is never reclaimed in this run */
		spool_seg_ref(q->spool, q->w->id, loc->seq, loc->len, 1);
		return;
	}
	m->arrival_ms = arrival_s * 1000u;
	m->flags = sm->flags & SPOOLREC_FLAGS_MASK;
	m->seg_worker = q->w->id;
	m->loc = *loc;
	msg_seg_ref(q, m, 1);
	m->size = sm->len;
	for (size_t i = 0; i < sm->nrcpt; i++) {
		m->r[i].addr = strdup(sm->rcpt[i]);
		if (!m->r[i].addr)
			m->r[i].state = QR_DELIVERED;   /* never: out of memory; kept in the spool */
		else
			m->open++;
	}
	if (data && q->body_bytes + sm->len <= QUEUE_BODY_BUDGET) {
		m->body = data;                 /* kept: read from the spool no more */
		q->body_bytes += sm->len;
	} else {
		free(data);                     /* over the budget: read back when needed */
	}
	m->refs++;
	msg_schedule(q, m);
	queue_msg_unref(q, m);
}

void queue_recovered_free(struct queue_recovered *r)
{
	while (r) {
		struct queue_recovered *next = r->next;
		for (size_t i = 0; i < r->nrcpt; i++)
			free(r->rcpt[i]);
		free(r->rcpt);
		free(r->r);
		free(r->sender);
		free(r);
		r = next;
	}
}

void queue_adopt(struct queue *q, struct queue_recovered *r)
{
	struct queue_msg *m = msg_new(q, r->qid, r->sender, r->nrcpt);
	if (!m) {
		spool_seg_ref(q->spool, r->seg_worker, r->loc.seq, r->loc.len, 1);   /* for good */
		queue_recovered_free(r);
		return;
	}
	m->arrival_ms = r->arrival_s * 1000u;
	m->flags = r->flags & SPOOLREC_FLAGS_MASK;
	m->seg_worker = r->seg_worker;
	m->loc = r->loc;
	msg_seg_ref(q, m, 1);
	m->size = r->size;
	for (size_t i = 0; i < r->nrcpt; i++) {
		m->r[i] = r->r[i];
		m->r[i].addr = r->rcpt[i];
		m->r[i].where = QW_NONE;
		m->r[i].why = 0;               /* (reasons are not in the spool) */
		r->rcpt[i] = NULL;
		if (m->r[i].state == QR_OPEN)
			m->open++;
		if (m->r[i].state == QR_OPEN && m->r[i].next_try_s >= SPOOLREC_RETURN) {
			m->cancel = QUEUE_CANCEL_RETURNING;   /* ctl bounce while it was in a delivery: now */
			m->r[i].next_try_s = 0;
		} else if (m->r[i].state == QR_OPEN && m->r[i].next_try_s >= SPOOLREC_HELD) {
			m->held = true;            /* held before the restart: still */
		}
	}
	if (m->held && m->cancel == QUEUE_CANCEL_NONE)
		m->cancel = QUEUE_CANCEL_HELD;
	r->next = NULL;
	queue_recovered_free(r);
	m->refs++;
	msg_schedule(q, m);
	queue_msg_unref(q, m);
}

/* ---- copies forward (segment reclaim) ----------------------------------------------- */

struct queue_copy {
	struct net_op op;
	struct queue_copy *next, *prev;    /* under way */
	struct queue *q;
	struct queue_msg *m;               /* NULL once detached (queue_fini) */
	bool opened;                       /* its openat completed: the read is under way */
	char name[64];                     /* the segment's file name, for the openat */
	int fd;
	uint8_t *rbuf;                     /* the record as read */
	uint8_t *blob;                     /* the copy, while its commit is on its way */
	struct spool_loc from;             /* the record copied, in w<from_worker>-<from.seq> */
	unsigned from_worker;
};

static void copy_end(struct queue_copy *c)
{
	struct queue *q = c->q;
	struct queue_msg *m = c->m;
	free(c->rbuf);
	free(c->blob);
	if (q) {
		if (c->prev)
			c->prev->next = c->next;
		else
			q->copies_head = c->next;
		if (c->next)
			c->next->prev = c->prev;
	}
	free(c);
	if (m) {
		m->copying = false;
		queue_msg_unref(q, m);
	}
}

/* The copy's commit: durable (ok), or not (the message stays where it was; asked again). */
static void copy_committed(void *waiter, bool ok, const struct spool_loc *loc)
{
	struct queue_copy *c = waiter;
	struct queue_msg *m = c->m;
	if (m && ok) {
		struct queue *q = c->q;
		msg_seg_ref(q, m, -1);
		m->seg_worker = q->w->id;
		m->loc = (struct spool_loc){ loc->seq, loc->off, c->from.len };
		msg_seg_ref(q, m, 1);
		q->copies++;
		log_info("event=spool_copy worker=%u qid=%s from=w%u-%016" PRIx64 " to=w%u-%016" PRIx64,
		         q->w->id, m->qid, c->from_worker, c->from.seq, q->w->id, loc->seq);
	}
	copy_end(c);
}

/* The copy's openat, then its read, completed. */
static void copy_read_done(struct net_loop *l, struct net_op *op, int res, unsigned flags)
{
	(void)l;
	(void)flags;
	struct queue_copy *c = (struct queue_copy *)((char *)op - offsetof(struct queue_copy, op));
	struct queue *q = c->q;
	struct queue_msg *m = c->m;
	if (!c->opened) {                  /* the openat: now the read */
		c->opened = true;
		struct io_uring_sqe *sqe = res >= 0 ? net_loop_sqe(q->loop, &c->op) : NULL;
		if (sqe) {
			c->fd = res;
			io_uring_prep_read(sqe, c->fd, c->rbuf, (unsigned)c->from.len, c->from.off);
			return;
		}
		if (res >= 0)
			close(res);
		q->copy_reads--;
		copy_end(c);                   /* asked again later */
		return;
	}
	q->copy_reads--;
	close(c->fd);
	c->fd = -1;
	size_t len = 0;
	if (m->open == 0 && !q->stopping) {
		copy_end(c);                   /* finished meanwhile: its segment is let go anyway */
		return;
	}
	if (res >= 0 && (uint64_t)res == c->from.len && !q->stopping) {
		struct spoolrec_rstate *st = calloc(m->nrcpt ? m->nrcpt : 1, sizeof *st);
		for (size_t i = 0; st && i < m->nrcpt; i++) {
			const struct qrcpt *r = &m->r[i];
			if (r->addr && r->state == QR_DELIVERED)
				st[i].state = SPOOLREC_RS_DELIVERED;
			else if (r->addr && r->state == QR_BOUNCED)
				st[i].state = SPOOLREC_RS_BOUNCED;
			else if (msg_returning(m))   /* (ctl bounce: still to bounce after a restart) */
				st[i] = (struct spoolrec_rstate){ SPOOLREC_RS_DEFERRED, r->attempts,
				                                  SPOOLREC_RETURN };
			else if (r->attempts > 0 || r->next_try_s >= SPOOLREC_HELD)   /* (held: kept) */
				st[i] = (struct spoolrec_rstate){ SPOOLREC_RS_DEFERRED, r->attempts,
				                                  r->next_try_s };
		}
		uint64_t at = wall_ms() / 1000u;
		size_t need = st ? spoolrec_encode_copy(NULL, 0, c->rbuf, c->from.len, st,
		                                        (uint32_t)m->nrcpt, at) : 0;
		c->blob = need ? malloc(need) : NULL;
		if (c->blob)
			len = spoolrec_encode_copy(c->blob, need, c->rbuf, c->from.len, st,
			                           (uint32_t)m->nrcpt, at);
		free(st);
	}
	free(c->rbuf);
	c->rbuf = NULL;
	if (len > 0 && spool_append_rec(q->spool, c, copy_committed, c->blob, len) == 0)
		return;                        /* copy_committed follows */
	if (!q->stopping)
		log_warn("event=spool_copy_failed worker=%u qid=%s segment=w%u-%016" PRIx64
		         " offset=%" PRIu64 " error=\"%s\"", q->w->id, m->qid, m->seg_worker, c->from.seq,
		         c->from.off, res < 0 ? strerror(-res) : "record does not check");
	copy_end(c);
}

static void copy_start(struct queue *q, struct queue_msg *m)
{
	struct queue_copy *c = calloc(1, sizeof *c);
	if (!c)
		return;
	c->op.kind = QUEUE_OP_COPY;
	c->q = q;
	c->fd = -1;
	c->from = m->loc;
	c->from_worker = m->seg_worker;
	snprintf(c->name, sizeof c->name, "w%u-%016" PRIx64 ".seg", m->seg_worker, m->loc.seq);
	c->rbuf = malloc(m->loc.len ? m->loc.len : 1);
	struct io_uring_sqe *sqe = c->rbuf ? net_loop_sqe(q->loop, &c->op) : NULL;
	if (!sqe) {                        /* asked again later */
		free(c->rbuf);
		free(c);
		return;
	}
	/* its file opened through the ring, then read (copy_read_done): nothing blocks */
	io_uring_prep_openat(sqe, q->spool_dirfd, c->name, O_RDONLY | O_CLOEXEC, 0);
	c->m = m;
	m->copying = true;
	m->refs++;                         /* the copy points at it */
	q->copy_reads++;                   /* (the openat and the read) */
	c->next = q->copies_head;
	if (c->next)
		c->next->prev = c;
	q->copies_head = c;
}

void queue_reclaim_copy(void *ctx, unsigned worker, uint64_t seq)
{
	struct queue *q = ctx;
	if (q->stopping)
		return;
	for (unsigned h = 0; h < QUEUE_HASH; h++)
		for (struct queue_msg *m = q->hash[h]; m; m = m->hnext)
			if (m->seg_worker == worker && m->loc.seq == seq && !m->copying &&
			    m->refs == 0)
				copy_start(q, m);   /* (one in a delivery, perhaps on another worker
				                       that reads its record, waits for the next ask) */
}

/* ---- life --------------------------------------------------------------------------- */

int queue_init(struct queue *q, struct worker *w, struct net_loop *l, struct spool *sp,
               const char *spool_dir)
{
	memset(q, 0, sizeof *q);
	q->w = w;
	q->loop = l;
	q->spool = sp;
	q->rnd = (uint64_t)wall_ms() * 0x9E3779B97F4A7C15ull ^ (uint64_t)w->id;
	if (!q->rnd)
		q->rnd = 1;
	q->mono0_ms = l->now_ms;
	q->spool_dirfd = open(spool_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (q->spool_dirfd < 0)
		return -errno;
	net_loop_handle(l, QUEUE_OP_READ, body_read_done);
	net_loop_handle(l, QUEUE_OP_COPY, copy_read_done);
	const struct config *cfg = qcfg(q);
	char err[256];
	q->dns = dns_new(l, (const char *const *)cfg->dns_servers, cfg->ndns_servers, 0, err,
	                 sizeof err);
	if (!q->dns)
		log_warn("event=dns_unavailable worker=%u error=\"%s\" note=\"mx next hops are deferred\"",
		         w->id, err);
	else
		dns_set_max_lookups(q->dns, cfg->dns_max_lookups);
	/* The segments this worker reclaims: its own and a vanished index's (before the
	 * messages of the start-up scan are adopted and counted in them). */
	spool_reclaim_enable(sp, queue_reclaim_copy, q);
	spool_reserve_enable(sp);           /* (logged; the relay runs on without one) */
	int ret = spool_adopt_segments(sp, spool_dir);
	if (ret < 0)
		log_warn("event=spool_segments_unreadable worker=%u error=\"%s\" note=\"old segments are not reclaimed\"",
		         w->id, strerror(-ret));
	return 0;
}

/* ---- the operator's view (core/control) ------------------------------------------- */

static const char *qr_state_name(const struct qrcpt *r, uint64_t now_s)
{
	switch (r->state) {
	case QR_BUSY: return "busy";
	case QR_DELIVERED: return "delivered";
	case QR_BOUNCED: return "bounced";
	case QR_DELETED: return "deleted";
	default: return r->next_try_s >= SPOOLREC_HELD ? "held"
	              : r->next_try_s > now_s           ? "deferred" : "ready";
	}
}

static const char *const where_name[] = {
	[QW_NONE] = "dsn", [QW_DNS] = "dns", [QW_READY] = "ready_queue", [QW_DEAD] = "site_dead",
	[QW_NOPROXY] = "no_proxy_up", [QW_SENDING] = "in_transaction", [QW_AWAY] = "other_worker",
};

/* Where each busy recipient of this worker's messages is (its job's place). */
static void list_where(struct queue *q)
{
	uint64_t now = q->loop->now_ms;
	for (struct queue_job *j = q->all; j; j = j->all_next) {
		if (j->home)
			continue;                  /* another worker's job: its home says */
		if (j->dsn_text)
			continue;                  /* its recipients: where=dsn */
		uint8_t w = j->looking ? QW_DNS
		          : !j->site ? QW_AWAY
		          : j->t_taken_ms ? QW_SENDING
		          : j->site->dead_until_ms > now ? QW_DEAD
		          : j->site->waiting ? QW_NOPROXY : QW_READY;
		for (uint32_t k = 0; k < j->n; k++)
			j->m->r[j->idx[k]].where = w;
	}
}

/* Text between double quotes: put_text's escapes, and '"' as \x22. */
static void put_quoted(FILE *f, const char *s)
{
	putc('"', f);
	for (const char *p = s; *p; ) {
		size_t n = strcspn(p, "\"");
		spooldir_put_text(f, p, n);
		p += n;
		if (*p == '"') {
			fputs("\\x22", f);
			p++;
		}
	}
	putc('"', f);
}

size_t queue_list(struct queue *q, FILE *f, bool json, size_t max, size_t *more)
{
	size_t n = 0, nr = 0;
	uint64_t now_s = wall_ms() / 1000u;
	char when[48], next[48];
	*more = 0;
	list_where(q);
	for (size_t h = 0; h < QUEUE_HASH; h++)
		for (struct queue_msg *m = q->hash[h]; m; m = m->hnext) {
			if (m->foreign || m->open == 0)
				continue;
			if (nr >= max) {
				(*more)++;
				continue;
			}
			n++;
			nr += m->open;
			spooldir_iso8601(when, sizeof when, m->arrival_ms / 1000u);
			if (json) {
				fputs("{\"queue_id\":", f);
				spooldir_put_json(f, m->qid, strlen(m->qid));
				fputs(",\"sender\":", f);
				spooldir_put_json(f, m->sender, strlen(m->sender));
				fprintf(f, ",\"size\":%zu,\"arrival\":\"%s\",\"recipient_state\":[", m->size,
				        when);
			} else {
				spooldir_put_text(f, m->qid, strlen(m->qid));
				fprintf(f, "  %zu  %s  <", m->size, when);
				spooldir_put_text(f, m->sender, strlen(m->sender));
				putc('>', f);
			}
			bool first = true;
			for (uint32_t i = 0; i < m->nrcpt; i++) {
				const struct qrcpt *r = &m->r[i];
				if (r->state == QR_DELIVERED || r->state == QR_BOUNCED || r->state == QR_DELETED)
					continue;
				const char *st = qr_state_name(r, now_s);
				bool dated = r->state == QR_OPEN && r->next_try_s > now_s &&
				             r->next_try_s < SPOOLREC_HELD;
				if (dated)
					spooldir_iso8601(next, sizeof next, r->next_try_s);
				const char *where = r->state == QR_BUSY ? where_name[r->where] : NULL;
				const char *why = why_text(&q->why, r->why);
				if (json) {
					fputs(first ? "{\"address\":" : ",{\"address\":", f);
					spooldir_put_json(f, r->addr, strlen(r->addr));
					fprintf(f, ",\"state\":\"%s\",\"attempts\":%u,\"next_try\":", st,
					        (unsigned)r->attempts);
					if (dated)
						fprintf(f, "\"%s\"", next);
					else
						fputs("null", f);
					if (where)
						fprintf(f, ",\"where\":\"%s\"", where);
					else
						fputs(",\"where\":null", f);
					fputs(",\"reason\":", f);
					if (why)
						spooldir_put_json(f, why, strlen(why));
					else
						fputs("null", f);
					putc('}', f);
				} else {
					fputs(first ? "  <" : " <", f);
					spooldir_put_text(f, r->addr, strlen(r->addr));
					fprintf(f, "> (%s attempts=%u", st, (unsigned)r->attempts);
					if (dated)
						fprintf(f, " next_try=%s", next);
					if (where)
						fprintf(f, " where=%s", where);
					if (why) {
						fputs(" reason=", f);
						put_quoted(f, why);
					}
					putc(')', f);
				}
				first = false;
			}
			fputs(json ? "],\"live\":true}\n" : "\n", f);
		}
	return n;
}

size_t queue_flush(struct queue *q, const char *arg, size_t *msgs)
{
	size_t n = 0;
	uint64_t now_s = wall_ms() / 1000u;
	*msgs = 0;
	if (q->stopping)
		return 0;
	for (size_t h = 0; h < QUEUE_HASH; h++)
		for (struct queue_msg *m = q->hash[h]; m; m = m->hnext) {
			if (m->foreign || m->open == 0)
				continue;
			bool whole = !arg || strcmp(arg, m->qid) == 0;
			size_t k = 0;
			for (uint32_t i = 0; i < m->nrcpt; i++) {
				struct qrcpt *r = &m->r[i];
				if (r->state != QR_OPEN || r->next_try_s <= now_s || r->next_try_s >= SPOOLREC_HELD)
					continue;                /* (held: only a release moves it) */
				if (!whole && strcasecmp(rcpt_domain(r->addr), arg) != 0)
					continue;
				r->next_try_s = now_s;
				k++;
			}
			if (k) {
				n += k;
				(*msgs)++;
				msg_schedule(q, m);     /* its timer fires at the next tick */
			}
		}
	/* dead sites live again: the operator asked for a try now */
	for (struct queue_site *s = q->sites; s; s = s->next)
		if (s->dead_until_ms > q->loop->now_ms) {
			s->dead_until_ms = 0;
			s->fails = 0;
			if (s->nready > 0)
				deliver_kick(s);
		}
	return n;
}

/* Hold (hold) or release (!hold) the open recipients of m; each change noted. */
static size_t msg_hold(struct queue *q, struct queue_msg *m, bool hold, uint64_t now_s)
{
	size_t k = 0;
	bool was = m->held;
	m->held = hold;
	if (hold && m->cancel == QUEUE_CANCEL_NONE)
		__atomic_store_n(&m->cancel, QUEUE_CANCEL_HELD, __ATOMIC_RELEASE);
	else if (!hold && m->cancel == QUEUE_CANCEL_HELD)
		__atomic_store_n(&m->cancel, QUEUE_CANCEL_NONE, __ATOMIC_RELEASE);
	for (uint32_t i = 0; i < m->nrcpt; i++) {
		struct qrcpt *r = &m->r[i];
		if (r->state == QR_BUSY && hold != was) {
			/* in a job: one not yet in a transaction comes back held (job_cancelled);
			 * one in a transaction is held if it ends deferred. Noted now either way
			 * (its own outcome, a later attempt, outranks this); a release outranks
			 * the hold by one more attempt. */
			if (!hold)
				r->attempts++;
			note_outcome(q, m, SPOOLREC_RS_DEFERRED, r->attempts,
			             hold ? SPOOLREC_HELD : now_s, &i, 1);
			k++;
			continue;
		}
		if (r->state != QR_OPEN || (r->next_try_s >= SPOOLREC_HELD) == hold)
			continue;
		r->next_try_s = hold ? SPOOLREC_HELD : now_s;
		/* The spool's merge of outcomes is order-free (core/spooldir.h: more attempts
		 * win, then the later next try), so a release must outrank the hold by value:
		 * it counts as an attempt. A hold (the later next try) outranks what it holds. */
		if (!hold)
			r->attempts++;
		note_outcome(q, m, SPOOLREC_RS_DEFERRED, r->attempts, r->next_try_s, &i, 1);
		k++;
	}
	msg_schedule(q, m);
	return k;
}

static size_t hold_or_release(struct queue *q, const char *qid, size_t *msgs, bool hold)
{
	size_t n = 0;
	uint64_t now_s = wall_ms() / 1000u;
	*msgs = 0;
	if (q->stopping)
		return 0;
	for (size_t h = 0; h < QUEUE_HASH; h++)
		for (struct queue_msg *m = q->hash[h]; m; m = m->hnext) {
			if (m->foreign || m->open == 0 || (qid && strcmp(qid, m->qid) != 0))
				continue;
			bool was = m->held;
			size_t k = msg_hold(q, m, hold, now_s);
			n += k;
			(*msgs)++;                 /* (one held already: 0 recipients of 1 message) */
			if (k || was != hold)
				log_info("%s: %s by the operator (%zu recipients)", m->qid,
				         hold ? "held" : "released", k);
		}
	return n;
}

static void dns_sweep(struct queue *q);

size_t queue_hold(struct queue *q, const char *qid, size_t *msgs)
{
	size_t n = hold_or_release(q, qid, msgs, true);
	dns_sweep(q);
	return n;
}

size_t queue_release(struct queue *q, const char *qid, size_t *msgs)
{
	return hold_or_release(q, qid, msgs, false);
}

/* ctl delete of m: see queue.h. Returns its recipients made final. */
static size_t msg_delete(struct queue *q, struct queue_msg *m)
{
	size_t k = 0;
	for (uint32_t i = 0; i < m->nrcpt; i++)
		if (m->r[i].state == QR_OPEN || m->r[i].state == QR_BUSY) {
			m->r[i].state = QR_DELETED;
			k++;
		}
	__atomic_store_n(&m->cancel, QUEUE_CANCEL_DELETED, __ATOMIC_RELEASE);
	m->open = 0;
	timer_cancel(&m->t);
	log_info("%s: removed by the operator (%zu recipients)", m->qid, k);
	msg_note_done(q, m);               /* now: a restart must not bring it back */
	m->refs++;
	queue_msg_unref(q, m);             /* gone now, or when its last job is back */
	return k;
}

/* ctl bounce of m: see queue.h. */
static size_t msg_return(struct queue *q, struct queue_msg *m)
{
	size_t k = 0, nopen = 0;
	for (uint32_t i = 0; i < m->nrcpt; i++) {
		k += m->r[i].state == QR_OPEN || m->r[i].state == QR_BUSY;
		nopen += m->r[i].state == QR_OPEN;
	}
	if (m->cancel != QUEUE_CANCEL_DELETED)
		__atomic_store_n(&m->cancel, QUEUE_CANCEL_RETURNING, __ATOMIC_RELEASE);
	m->held = false;
	log_info("%s: returned to the sender by the operator (%zu recipients)", m->qid, k);
	/* Noted first as returning: they bounce after a restart too if that comes before
	 * their bounce is in the spool, or before a delivery under way now ends (their final
	 * notes outrank this one); those in a delivery bounce when it ends without a 2xx. */
	for (uint32_t i = 0; i < m->nrcpt; i++)
		if (m->r[i].state == QR_BUSY || m->r[i].state == QR_OPEN)
			note_outcome(q, m, SPOOLREC_RS_DEFERRED, m->r[i].attempts, SPOOLREC_RETURN, &i, 1);
	if (nopen == 0)
		return k;                      /* in a transaction or a ready queue: bounce there */
	struct queue_job *j = job_new(q, m, "", "", nopen);
	if (!j) {
		log_warn("event=queue_oom qid=%s note=\"ctl bounce: its recipients bounce at their "
		         "next try\"", m->qid);
		return k;
	}
	for (uint32_t i = 0; i < m->nrcpt; i++)
		if (m->r[i].state == QR_OPEN) {
			m->r[i].state = QR_BUSY;
			j->idx[j->n++] = i;
		}
	j->t_sched_ms = j->t_ready_ms = j->t_taken_ms = q->loop->now_ms;
	struct qresult r = { 550, QUEUE_OP_BOUNCE_TEXT, "5.0.0" };
	queue_job_done(j, &r, 1, "none", 0);
	return k;
}

/* Every message (qid NULL) or the one with queue id qid, not final: fn on it. The
 * messages are picked first (each pinned by a reference): fn may free one, or queue new
 * ones (a DSN) that must not be picked. */
static bool each_pick(const struct queue_msg *m, const char *qid)
{
	return !m->foreign && m->open > 0 && !msg_deleted(m) && (!qid || strcmp(qid, m->qid) == 0);
}

static size_t each_msg(struct queue *q, const char *qid, size_t *msgs,
                       size_t (*fn)(struct queue *, struct queue_msg *))
{
	size_t n = 0, npick = 0, k = 0;
	*msgs = 0;
	if (q->stopping)
		return 0;
	for (size_t h = 0; h < QUEUE_HASH; h++)
		for (struct queue_msg *m = q->hash[h]; m; m = m->hnext)
			npick += each_pick(m, qid);
	struct queue_msg **pick = npick ? malloc(npick * sizeof *pick) : NULL;
	if (!pick)
		return 0;
	for (size_t h = 0; h < QUEUE_HASH; h++)
		for (struct queue_msg *m = q->hash[h]; m && k < npick; m = m->hnext)
			if (each_pick(m, qid)) {
				m->refs++;
				pick[k++] = m;
			}
	for (size_t i = 0; i < k; i++) {
		if (each_pick(pick[i], qid)) {
			n += fn(q, pick[i]);
			(*msgs)++;
		}
		queue_msg_unref(q, pick[i]);
	}
	free(pick);
	return n;
}

/* Jobs waiting for a DNS answer whose message the operator deleted, returned or held:
 * taken back from net/dns at once (ended as job_cancelled says) instead of waiting for
 * their lookups, which may be in line behind thousands of others (the lookups in line
 * for nobody are then dropped without asking). */
static bool dns_job_cancelled(void *ctx, void *arg)
{
	const struct queue_job *j = ctx;
	(void)arg;
	return j->looking && job_cancel(j) != QUEUE_CANCEL_NONE;
}

static void dns_job_back(void *ctx, void *arg)
{
	struct queue_job *j = ctx;
	(void)arg;
	j->looking = false;
	if (!job_cancelled(j))             /* (released meanwhile: looked up again) */
		job_ready(j);
}

static void dns_sweep(struct queue *q)
{
	if (q->dns)
		dns_drop_waiters(q->dns, dns_job_cancelled, dns_job_back, q);
}

size_t queue_delete(struct queue *q, const char *qid, size_t *msgs)
{
	size_t n = each_msg(q, qid, msgs, msg_delete);
	dns_sweep(q);
	return n;
}

size_t queue_bounce(struct queue *q, const char *qid, size_t *msgs)
{
	size_t n = each_msg(q, qid, msgs, msg_return);
	dns_sweep(q);
	return n;
}

void queue_census_step(struct queue *q, unsigned buckets)
{
	struct queue_census *c = &q->census_acc;
	for (unsigned k = 0; k < buckets; k++) {
		for (const struct queue_msg *m = q->hash[q->census_bucket]; m; m = m->hnext) {
			if (m->foreign || m->open == 0)
				continue;
			c->msgs++;
			for (uint32_t i = 0; i < m->nrcpt; i++) {
				const struct qrcpt *r = &m->r[i];
				if (r->state == QR_BUSY)
					c->busy++;
				else if (r->state == QR_OPEN && r->next_try_s >= SPOOLREC_HELD)
					c->held++;
				else if (r->state == QR_OPEN)
					c->scheduled++;
			}
		}
		if (++q->census_bucket == QUEUE_HASH) {
			q->census_bucket = 0;
			q->census = *c;
			*c = (struct queue_census){ 0 };
			q->census_done = true;
		}
	}
}

void queue_stop(struct queue *q)
{
	q->stopping = true;
	for (unsigned h = 0; h < QUEUE_HASH; h++)   /* the scheduled queue stands still */
		for (struct queue_msg *m = q->hash[h]; m; m = m->hnext)
			timer_cancel(&m->t);
	deliver_stop(q);
	/* other workers' jobs waiting here go home: they wait for them to stop */
	for (struct queue_site *s = q->sites; s; s = s->next) {
		struct queue_job **pp = &s->ready_head;
		s->ready_tail = NULL;
		while (*pp) {
			struct queue_job *j = *pp;
			if (j->home) {
				*pp = j->next;
				s->nready--;
				j->next = NULL;
				owner_drop(j);
			} else {
				s->ready_tail = j;
				pp = &j->next;
			}
		}
	}
}

bool queue_idle(const struct queue *q)
{
	if (deliver_conns(q) > 0 || q->copy_reads > 0)
		return false;
	for (struct queue_msg *const *b = q->hash; b < q->hash + QUEUE_HASH; b++)
		for (const struct queue_msg *m = *b; m; m = m->hnext)
			if (m->reading)
				return false;
	return true;
}

/* After the ring is gone: free everything (the spool keeps what was not finished). */
void queue_fini(struct queue *q)
{
	q->finishing = true;
	/* Copies still waiting for their commit: the spool tells them (451) at its fini. */
	for (struct queue_copy *c = q->copies_head; c; c = c->next) {
		c->m->copying = false;
		c->m = NULL;
		c->q = NULL;
	}
	q->copies_head = NULL;
	if (q->dns)
		dns_free(q->dns);              /* pending lookups: CANCELLED, their jobs freed */
	q->dns = NULL;
	tlsout_cache_free(q->tls_cache);
	q->tls_cache = NULL;
	while (q->all) {
		struct queue_job *j = q->all;
		struct queue_msg *m = j->m;
		m->refs++;                     /* freed below, not through the job */
		job_free(j);
		if (m->foreign && --m->refs == 0)
			msg_free(q, m);            /* not in the hash */
	}
	for (unsigned h = 0; h < QUEUE_HASH; h++)
		while (q->hash[h])
			msg_free(q, q->hash[h]);
	while (q->sites) {
		struct queue_site *s = q->sites;
		q->sites = s->next;
		free(s->key);
		free(s->transport);
		free(s->src_label);
		free(s);
	}
	memset(q->site_hash, 0, sizeof q->site_hash);
	q->dsn_wait = q->dsn_wait_tail = NULL;   /* (their jobs were freed with the others) */
	why_fini(&q->why);
	if (q->spool_dirfd >= 0)
		close(q->spool_dirfd);
	q->spool_dirfd = -1;
}
