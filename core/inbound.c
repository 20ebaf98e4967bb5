/* core/inbound — see inbound.h. */
#include "core/inbound.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <urcu-qsbr.h>

#include "cfg/snapshot.h"
#include "core/connlimit.h"
#include "core/log.h"
#include "core/worker.h"
#include "proto/msghdr.h"

static struct worker *worker_of(const struct smtp_server_conn *c)
{
	return c->srv->ctx;
}

static struct inbound_conn *app_of(const struct smtp_server_conn *c)
{
	return c->app;
}

/* ---- TLS contexts -------------------------------------------------------------------- */

struct inbound_tls {
	size_t n;
	struct net_tls_ctx *ctx[];          /* per listener; NULL: no tls: */
};

static struct inbound_tls *inbound_tls_cur;

static void tls_tab_free(struct inbound_tls *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->n; i++)
		net_tls_ctx_free(t->ctx[i]);
	free(t);
}

int inbound_tls_load(const struct config *cfg, char *err, size_t errlen)
{
	struct inbound_tls *t = calloc(1, sizeof *t + cfg->nlisteners * sizeof t->ctx[0]);
	if (!t) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	t->n = cfg->nlisteners;
	for (size_t i = 0; i < cfg->nlisteners; i++) {
		const struct config_listener *l = &cfg->listeners[i];
		if (!l->tls_certificate)
			continue;
		struct net_tls_conf conf = { .role = NET_TLS_SERVER,
		                             .cert_file = l->tls_certificate,
		                             .key_file = l->tls_key };
		char why[256];
		t->ctx[i] = net_tls_ctx_new(&conf, why, sizeof why);
		if (!t->ctx[i]) {
			snprintf(err, errlen, "listener %s: %s", l->id, why);
			tls_tab_free(t);
			return -1;
		}
	}
	struct inbound_tls *old = rcu_xchg_pointer(&inbound_tls_cur, t);
	if (old) {
		synchronize_rcu();              /* no worker holds an old context unreferenced */
		tls_tab_free(old);
	}
	return 0;
}

void inbound_tls_fini(void)
{
	struct inbound_tls *old = rcu_xchg_pointer(&inbound_tls_cur, NULL);
	if (old) {
		synchronize_rcu();
		tls_tab_free(old);
	}
}

/* Who may speak PROXY: only a socket peer in this listener's proxy hosts, and only when
 * the listener uses the protocol. Everyone else is an ordinary client. */
static void inbound_start(struct smtp_server_conn *c, struct smtp_server_start *how)
{
	const struct snapshot *snap = worker_of(c)->snap;
	const struct config_listener *lc = &snap->cfg->listeners[c->listener];
	bool trusted = lc->proxy_protocol != CONFIG_PROXY_OFF &&
	               cidr_lookup(snap->proxy_hosts[c->listener], (struct sockaddr *)&c->peer_sa);
	worker_of(c)->count.conns_accepted++;
	how->listener_id = lc->id;
	how->proxy_timeout_ms = lc->proxy_timeout * 1000u;
	how->proxy_max_header = lc->proxy_max_header;
	const struct inbound_tls *tt = rcu_dereference(inbound_tls_cur);
	if (tt && c->listener < tt->n && tt->ctx[c->listener]) {
		how->tls = tt->ctx[c->listener];  /* the connection takes its reference now */
		how->tls_mode = lc->tls_mode == CONFIG_TLS_IMPLICIT ? SMTP_SERVER_TLS_IMPLICIT
		              : lc->tls_mode == CONFIG_TLS_REQUIRED ? SMTP_SERVER_TLS_REQUIRED
		                                                    : SMTP_SERVER_TLS_STARTTLS;
	}
	if (trusted) {
		how->proxy = SMTP_SERVER_PROXY_EXPECT;
	} else if (lc->proxy_protocol == CONFIG_PROXY_REQUIRED) {
		log_warn("event=proxy_refused sid=%s client=%s reason=required", c->sid, c->peer);
		worker_of(c)->count.refused[STATS_REFUSED_PROXY_REQUIRED]++;
		how->refuse = "421 4.7.0 PROXY required\r\n";
	} else {
		how->proxy = SMTP_SERVER_PROXY_SNIFF;
	}
}

static const char *inbound_admit(struct smtp_server_conn *c, struct smtp_server_params *p,
                                 char *buf, size_t cap)
{
	const struct config *cfg = worker_of(c)->snap->cfg;
	struct inbound_conn *a = app_of(c);
	switch (connlimit_acquire((struct sockaddr *)&c->peer_sa, cfg->max_connections,
	                          cfg->max_connections_per_ip, &a->limit_slot)) {
	case CONNLIMIT_OK:
		a->limited = true;
		break;
	case CONNLIMIT_TOTAL:
		log_warn("event=refused sid=%s client=%s reason=max_connections", c->sid, c->peer);
		worker_of(c)->count.refused[STATS_REFUSED_MAX_CONNECTIONS]++;
		snprintf(buf, cap, "421 4.7.0 %s Error: too many connections\r\n", cfg->hostname);
		return buf;
	case CONNLIMIT_PER_IP:
		worker_of(c)->count.refused[STATS_REFUSED_PER_IP]++;
		log_warn("event=refused sid=%s client=%s reason=max_connections_per_ip", c->sid,
		         c->peer);
		snprintf(buf, cap, "421 4.7.0 %s Error: too many connections from %s\r\n",
		         cfg->hostname, c->peer);
		return buf;
	}
	/* Relay permission keys on the client, which after PROXY is the proxied one. */
	a->relay_ok = cidr_lookup(cfg->relay_networks, (struct sockaddr *)&c->peer_sa);
	p->hostname = cfg->hostname;
	p->lim.max_message_size = cfg->max_message_size;
	p->lim.max_recipients = cfg->max_recipients;
	p->lim.max_line_length = cfg->max_line_length;
	p->lim.max_errors = 20;
	p->idle_ms = cfg->idle_timeout * 1000u;
	p->min_data_rate = cfg->min_data_rate;
	return NULL;
}

static bool inbound_rcpt_allowed(struct smtp_server_conn *c, const char *domain, size_t len)
{
	return app_of(c)->relay_ok || config_relay_domain(worker_of(c)->snap->cfg, domain, len);
}

static bool inbound_new_qid(struct smtp_server_conn *c, char *buf, size_t cap)
{
	struct worker *w = worker_of(c);
	if (cap < QID_LEN + 1)
		return false;
	int ret = qid_next(&w->qid, (uint64_t)time(NULL), buf);
	if (ret < 0) {
		log_err("event=qid_failed worker=%u error=\"%s\"", w->id, strerror(-ret));
		return false;
	}
	return true;
}

/* The message data the sessions of every worker hold until committed is bounded by
 * limits.max_data_memory (one count for the relay: a relaxed atomic, moved only when a
 * session's buffer grows, doubling, or is freed or handed over). A growth that does not
 * fit is refused: that message is answered 452 4.3.1 at its end, its data thrown away as
 * it comes (proto/smtp_srv). MAIL is refused at once while its SIZE= (or the smallest
 * buffer) does not fit. */
static void mem_refused(struct smtp_server_conn *c, uint64_t held, uint64_t limit)
{
	struct inbound_conn *a = app_of(c);
	worker_of(c)->count.data_mem_refused++;
	if (a->mem_logged)
		return;                         /* once a session: a client may ask again and again */
	a->mem_logged = true;
	log_warn("event=data_memory_full sid=%s client=%s held=%llu limit=%llu", c->sid, c->peer,
	         (unsigned long long)held, (unsigned long long)limit);
}

static bool inbound_mem_take(struct smtp_server_conn *c, size_t n)
{
	struct worker *w = worker_of(c);
	uint64_t limit = w->snap->cfg->max_data_memory;
	uint64_t was = atomic_fetch_add_explicit(&w->srv->data_mem, n, memory_order_relaxed);
	if (was + n <= limit)
		return true;
	atomic_fetch_sub_explicit(&w->srv->data_mem, n, memory_order_relaxed);
	mem_refused(c, was, limit);
	return false;
}

static void inbound_mem_give(struct smtp_server_conn *c, size_t n)
{
	atomic_fetch_sub_explicit(&worker_of(c)->srv->data_mem, n, memory_order_relaxed);
}

/* MAIL: refused at once (452 4.3.1) while the spool is short of room, or the sessions'
 * data memory, so that a client does not send a message only to have it refused at its
 * end (checked again there). */
static bool inbound_mail_room(struct smtp_server_conn *c, uint64_t size)
{
	struct worker *w = worker_of(c);
	const struct config *cfg = w->snap->cfg;
	uint64_t held = atomic_load_explicit(&w->srv->data_mem, memory_order_relaxed);
	if (held + (size > SMTP_SRV_DATA_MIN ? size : SMTP_SRV_DATA_MIN) > cfg->max_data_memory) {
		mem_refused(c, held, cfg->max_data_memory);
		return false;
	}
	return spool_room(&w->spool, cfg->spool_min_free, size) == SPOOL_ROOM_OK;
}

static void inbound_message(struct smtp_server_conn *c, const struct smtp_srv_msg *m)
{
	struct worker *w = worker_of(c);
	/* A mail loop (a route back to ourselves, two relays pointing at each other) ends
	 * here: the data carries our own Received: line first, so a message that has been
	 * around max_hops times is refused, as Postfix's hopcount_limit does. */
	unsigned hops_max = w->snap->cfg->max_hops;
	unsigned hops = msghdr_received_count(m->data, m->len, hops_max);
	if (hops > hops_max) {
		char from[200];
		log_warn("event=rejected sid=%s qid=%s client=%s from=<%s> reason=too_many_hops "
		         "hops=%u limit=%u", c->sid, m->qid, c->peer,
		         log_escape(from, sizeof from, m->mail_from, strlen(m->mail_from)), hops,
		         hops_max);
		smtp_server_refuse(c, "554 5.4.6 Error: too many hops");
		return;
	}
	/* Room for it, with the headroom the relay keeps for its own bookkeeping (notes,
	 * copies forward, DSNs: core/spool.h, Free space)? Refused before anything is
	 * written; logged once per transition by the spool, not per message. */
	switch (spool_room(&w->spool, w->snap->cfg->spool_min_free, m->len)) {
	case SPOOL_ROOM_OK:
		break;
	case SPOOL_ROOM_LOW:
		smtp_server_refuse(c, "452 4.3.1 Insufficient system storage");
		return;
	case SPOOL_ROOM_FULL:
		smtp_server_answer(c, false);   /* 451 4.3.0: the disk filled */
		return;
	}
	if (spool_append(&w->spool, c, m, c->peer, (uint64_t)time(NULL)) < 0) {
		log_err("event=spool_append_failed sid=%s qid=%s", c->sid, m->qid);
		smtp_server_answer(c, false);
	}
}

void inbound_spooled(void *waiter, bool ok, const struct spool_loc *loc)
{
	struct smtp_server_conn *c = waiter;
	const struct smtp_srv_msg *m = smtp_srv_message(c->smtp);
	char from[200];
	const char *tls_version = "", *tls_cipher = "";
	bool tls = smtp_server_tls(c, &tls_version, &tls_cipher);
	if (ok)
		log_info("event=queued sid=%s qid=%s client=%s from=<%s> nrcpt=%zu size=%zu%s%s%s%s%s",
		         c->sid, m->qid, c->peer,
		         log_escape(from, sizeof from, m->mail_from, strlen(m->mail_from)),
		         m->nrcpt, m->len, tls ? " tls=" : "", tls_version, tls ? " cipher=" : "",
		         tls_cipher, c->released || c->st.closing ? " note=client_gone" : "");
	if (ok) {
		struct wcount *k = &worker_of(c)->count;
		k->msgs_accepted++;
		k->rcpts_accepted += m->nrcpt;
		k->msgs_accepted_tls += tls;
	}
	if (ok)   /* a message over SPOOL_COPY_MAX was scrambled in place: read back when needed;
	           * else its buffer becomes the body kept in memory, without a copy */
		queue_accepted(&worker_of(c)->queue, m, (uint64_t)time(NULL), loc,
		               loc->len > SPOOL_COPY_MAX ? NULL : smtp_srv_take_data(c->smtp));
	else if (!worker_of(c)->spool.failing)     /* (failing: counted in spool_recovered) */
		log_err("event=queue_failed sid=%s qid=%s client=%s", c->sid, m->qid, c->peer);
	smtp_server_answer(c, ok);
}

static void inbound_gone(struct smtp_server_conn *c)
{
	struct inbound_conn *a = app_of(c);
	if (a->limited)
		connlimit_release(a->limit_slot);
	a->limited = false;
}

const struct smtp_server_ops inbound_ops = {
	.start = inbound_start,
	.admit = inbound_admit,
	.rcpt_allowed = inbound_rcpt_allowed,
	.new_qid = inbound_new_qid,
	.mail_room = inbound_mail_room,
	.mem_take = inbound_mem_take,
	.mem_give = inbound_mem_give,
	.message = inbound_message,
	.gone = inbound_gone,
};
