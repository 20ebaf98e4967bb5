/* net/dns — see dns.h.
 *
 * The pieces: a struct dns_lookup per domain being resolved (its waiters, the MX answer,
 * each host's A and AAAA answers, a deadline), a struct dns_res per finished lookup
 * (reference counted: the cache holds one, each delivery one), the ready list of
 * deliveries owed, and the c-ares sockets watched through the ring. User callbacks run
 * from two places only: dns_deliver() (from a completion of the loop or a timer) and
 * dns_free(); never from inside c-ares or dns_mx. */
#include "net/dns.h"

#include <ares.h>
#include <ares_dns.h>
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "proto/mx.h"

#define DNS_TTL_MIN 5             /* seconds a result is cached at least ... */
#define DNS_TTL_MAX 3600          /* ... and at most */
#define DNS_TTL_NEG 60            /* a negative answer without a SOA */
#define DNS_TRIES 2               /* tries of each server per query */
#define DNS_EDNS_SIZE 1232        /* the DNS flag day 2020 size: no fragments */
#define DNS_SITE_MAX 1024         /* octets of a site key (whole names, see mx_site_key) */
#define DNS_CACHE_BUCKETS 16384u  /* powers of two */
#define DNS_FLIGHT_BUCKETS 1024u
#define DNS_PENDING (-1)          /* a query's status while it is out */
#define DNS_STALL_MS 1000u        /* a lookup asking longer gives its place up (see Cap) */
#define DNS_SMTP_PORT 25

#define DNS_OF(p, type, member) ((type *)(void *)((char *)(p) - offsetof(type, member)))

/* A socket of c-ares watched by a one-shot poll. Its memory goes with the poll's
 * completion, never before: a cancelled poll still completes. */
struct dns_sock {
	struct net_op op;             /* DNS_OP_POLL */
	struct dns *d;                /* NULL: orphaned by dns_free, freed by its completion */
	struct dns_sock *next;
	int fd;
	short want;                   /* POLLIN | POLLOUT, as c-ares asked */
	short armed;                  /* the mask of the poll in flight */
	bool live;                    /* c-ares still owns fd */
	bool polling;                 /* a poll is in flight */
	bool cancelling;              /* ... and its cancel was submitted */
};

/* The NOP whose completion hands the results over. */
struct dns_kick {
	struct net_op op;             /* DNS_OP_KICK */
	struct dns *d;                /* NULL: orphaned */
	bool inflight;
};

struct dns_caddr {                /* an address, compact, in the cache */
	uint8_t v6;
	uint8_t a[16];
};

struct dns_chost {
	char *name;
	uint16_t pref;
	uint16_t first, n;            /* in res->addrs */
};

/* A finished lookup. */
struct dns_res {
	unsigned refs;
	bool fixed;                   /* static: never freed */
	bool implicit;
	enum dns_status status;
	uint32_t ttl;                 /* 0: not cached */
	uint64_t expires_ms;
	char *error, *site;
	size_t nhosts, naddrs;
	struct dns_chost hosts[DNS_MAX_HOSTS];
	struct dns_caddr addrs[];
};

struct dns_waiter {
	struct dns_waiter *next;
	dns_mx_fn *fn;
	void *ctx;
	struct dns_res *res;          /* set once it is ready */
};

struct dns_fam {                  /* one host's A or AAAA query */
	int status;                   /* DNS_PENDING, or the ARES_* it ended with */
	uint32_t ttl;
	uint8_t n;
	uint8_t a[DNS_MAX_ADDRS][16];
};

struct dns_lhost {
	char *name;
	uint16_t pref;
	struct dns_fam fam[2];        /* 0: A, 1: AAAA */
};

struct dns_lookup;
struct dns_qarg {                 /* what a query's answer is for */
	struct dns_lookup *lk;
	int8_t host;                  /* -1: the MX query */
	uint8_t fam;
};

/* WAIT: begun past the cap (d->max_lookups): in d's flight table, so that lookups of the
 * same key join it, and in its line (d->wait_head), no query asked, no deadline yet */
enum dns_stage { DNS_STAGE_MX = 0, DNS_STAGE_ADDR, DNS_STAGE_DONE, DNS_STAGE_WAIT };

struct dns_lookup {
	struct dns *d;
	struct dns_lookup *hnext;     /* in d->flight while not done */
	struct dns_lookup *qnext;     /* in d's line while waiting (DNS_STAGE_WAIT) */
	struct timer deadline;
	struct timer stall;           /* DNS_STALL_MS after it began to ask */
	bool stalled;                 /* ... passed: not counted against the cap */
	uint32_t hash;
	enum dns_stage stage;
	unsigned refs;                /* queries out, + 1 while a function works on it */
	unsigned out;                 /* address queries not answered yet */
	struct dns_waiter *waiters, **wtail;
	bool implicit;
	bool hostonly;                /* dns_host: A and AAAA of one host, no MX */
	uint32_t ttl;                 /* the smallest TTL of the answers so far */
	char *site;
	char why[96 + MX_NAME_MAX];   /* the first temporary failure */
	size_t nhosts;
	/* hosts and hq point into work, allocated when it begins to ask: a lookup in line
	 * costs its ~0.8 KB, not the ~4.6 KB of an asking one (thousands may wait) */
	struct dns_lhost *hosts;      /* [DNS_MAX_HOSTS] */
	struct dns_qarg (*hq)[2];     /* [DNS_MAX_HOSTS][2] */
	struct dns_lk_work *work;
	struct dns_qarg mxq;
	char domain[MX_NAME_MAX + 3];  /* the key: the domain, or "[host]" for dns_host */
};

struct dns_lk_work {
	struct dns_lhost hosts[DNS_MAX_HOSTS];
	struct dns_qarg hq[DNS_MAX_HOSTS][2];
};

struct dns_centry {
	struct dns_centry *hnext, *older, *newer;
	uint32_t hash;
	struct dns_res *res;
	char domain[];
};

struct dns {
	struct net_loop *loop;
	ares_channel ch;
	unsigned timeout_ms;
	struct timer tick;            /* c-ares's next timeout */
	struct timer later;           /* work the ring had no room for */
	struct dns_kick *kick;
	struct dns_sock *socks;
	struct dns_waiter *ready, **rtail;
	struct dns_lookup *flight[DNS_FLIGHT_BUCKETS];
	struct dns_centry *cache[DNS_CACHE_BUCKETS];
	struct dns_centry *oldest, *newest;
	size_t ncached, cache_max, ninflight;   /* ninflight: lookups asking (not waiting) */
	size_t max_lookups, nwaiting;           /* the cap on ninflight; lookups in line */
	size_t nstalled;                        /* of ninflight, asking for DNS_STALL_MS */
	struct dns_lookup *wait_head, *wait_tail;
	bool starting;                          /* dns_lk_start_waiting is running */
	uint64_t rng;
	bool failover;                /* several servers: c-ares fails over on bad answers */
	unsigned depth;               /* > 0: callbacks are being called */
	bool freeing, free_later;
	struct dns_stats st;
	struct dns_host out_hosts[DNS_MAX_HOSTS];
	struct dns_addr out_addrs[DNS_MAX_HOSTS * DNS_MAX_ADDRS];
};

static struct dns_res dns_res_nomem = {
	.fixed = true, .status = DNS_TEMPFAIL, .error = (char[]){ "out of memory" },
	.site = (char[]){ "" },
};

static const char *const dns_status_names[] = {
	[DNS_OK] = "OK", [DNS_NXDOMAIN] = "NXDOMAIN", [DNS_NULLMX] = "NULLMX",
	[DNS_NOHOST] = "NOHOST", [DNS_TEMPFAIL] = "TEMPFAIL", [DNS_CANCELLED] = "CANCELLED",
};

const char *dns_status_str(enum dns_status s)
{
	if ((unsigned)s >= sizeof dns_status_names / sizeof dns_status_names[0])
		return "?";
	return dns_status_names[s];
}

static const char *const dns_qfail_names[DNS_QF_N] = {
	[DNS_QF_NXDOMAIN] = "nxdomain", [DNS_QF_NODATA] = "nodata",
	[DNS_QF_SERVFAIL] = "servfail", [DNS_QF_REFUSED] = "refused",
	[DNS_QF_TIMEOUT] = "timeout", [DNS_QF_MALFORMED] = "malformed",
	[DNS_QF_CONNREFUSED] = "connection_refused", [DNS_QF_OTHER] = "other",
};

const char *dns_qfail_str(enum dns_qfail f)
{
	return (unsigned)f < DNS_QF_N ? dns_qfail_names[f] : "?";
}

/* The kind of a query's failure (status not ARES_SUCCESS). */
static enum dns_qfail dns_qfail_of(int status)
{
	switch (status) {
	case ARES_ENOTFOUND: return DNS_QF_NXDOMAIN;
	case ARES_ENODATA: return DNS_QF_NODATA;
	case ARES_ESERVFAIL: return DNS_QF_SERVFAIL;
	case ARES_EREFUSED: return DNS_QF_REFUSED;
	case ARES_ETIMEOUT: return DNS_QF_TIMEOUT;
	case ARES_EFORMERR:
	case ARES_EBADRESP: return DNS_QF_MALFORMED;
	case ARES_ECONNREFUSED: return DNS_QF_CONNREFUSED;
	default: return DNS_QF_OTHER;
	}
}

/* ---- small things ---- */

static uint32_t dns_hash(const char *s)
{
	uint32_t h = 2166136261u;                 /* FNV-1a */
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

static uint32_t dns_ttl_clamp(uint32_t t)
{
	return t < DNS_TTL_MIN ? DNS_TTL_MIN : t > DNS_TTL_MAX ? DNS_TTL_MAX : t;
}

/* What a failed query is called in the logs. With several servers, c-ares 1.18 tries
 * the next one after a SERVFAIL, REFUSED or NOTIMP answer and reports the query failed
 * with ARES_ECONNREFUSED when none is left (see dns_new). */
static const char *dns_ares_why(const struct dns *d, int status)
{
	switch (status) {
	case ARES_ECONNREFUSED:
		return d->failover ? "no server answered (SERVFAIL, REFUSED or connection refused)"
		                   : "connection refused";
	case ARES_ESERVFAIL: return "SERVFAIL";
	case ARES_EREFUSED: return "REFUSED";
	case ARES_ENOTIMP: return "NOTIMP";
	case ARES_ETIMEOUT: return "timeout";
	case ARES_EFORMERR:
	case ARES_EBADRESP: return "malformed answer";
	case DNS_PENDING: return "timeout";
	default: return ares_strerror(status);
	}
}

/* An answer that says there is nothing of that type there, for good. */
static bool dns_negative(int status)
{
	return status == ARES_ENOTFOUND || status == ARES_ENODATA || status == ARES_EBADNAME;
}

/* The TTL an answer is good for: the smallest TTL of its answer records; without any,
 * the negative TTL of the SOA in its authority section, min(SOA TTL, MINIMUM) (RFC 2308);
 * without one, DNS_TTL_NEG. A TTL with its top bit set counts as 0 (RFC 2181 8). */
static uint32_t dns_msg_ttl(const unsigned char *abuf, int alen)
{
	if (!abuf || alen < HFIXEDSZ)
		return DNS_TTL_NEG;
	const unsigned char *p = abuf + HFIXEDSZ, *end = abuf + alen;
	unsigned qd = DNS_HEADER_QDCOUNT(abuf), an = DNS_HEADER_ANCOUNT(abuf);
	unsigned ns = DNS_HEADER_NSCOUNT(abuf);
	uint32_t best = UINT32_MAX;
	for (unsigned i = 0; i < qd + an + ns; i++) {
		char *name;
		long enclen;
		if (ares_expand_name(p, abuf, alen, &name, &enclen) != ARES_SUCCESS)
			break;
		ares_free_string(name);
		p += enclen;
		if (i < qd) {
			if (end - p < QFIXEDSZ)
				break;
			p += QFIXEDSZ;
			continue;
		}
		if (end - p < RRFIXEDSZ)
			break;
		unsigned type = DNS_RR_TYPE(p), len = DNS_RR_LEN(p);
		uint32_t ttl = DNS_RR_TTL(p);
		p += RRFIXEDSZ;
		if (end - p < (long)len)
			break;
		if (ttl & 0x80000000u)
			ttl = 0;
		if (i < qd + an) {
			best = ttl < best ? ttl : best;
		} else if (an == 0 && type == T_SOA && len >= 20) {
			uint32_t min = DNS__32BIT(p + len - 4);   /* MINIMUM: the SOA's last field */
			ttl = min < ttl ? min : ttl;
			best = ttl < best ? ttl : best;
		}
		p += len;
	}
	return best == UINT32_MAX ? DNS_TTL_NEG : best;
}

/* ---- results ---- */

static void dns_res_unref(struct dns_res *r)
{
	if (!r || r->fixed || --r->refs > 0)
		return;
	for (size_t i = 0; i < r->nhosts; i++)
		free(r->hosts[i].name);
	free(r->error);
	free(r->site);
	free(r);
}

__attribute__((format(printf, 4, 5)))
static struct dns_res *dns_res_new(enum dns_status status, size_t naddrs, const char *site,
                                   const char *fmt, ...)
{
	struct dns_res *r = calloc(1, sizeof *r + naddrs * sizeof r->addrs[0]);
	if (!r)
		return &dns_res_nomem;
	r->refs = 1;
	r->status = status;
	char buf[128 + 2 * MX_NAME_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	r->error = strdup(buf);
	r->site = strdup(site ? site : "");
	if (!r->error || !r->site) {
		dns_res_unref(r);
		return &dns_res_nomem;
	}
	return r;
}

/* ---- the cache ---- */

static void dns_cache_remove(struct dns *d, struct dns_centry *e)
{
	struct dns_centry **pp = &d->cache[e->hash & (DNS_CACHE_BUCKETS - 1)];
	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	if (e->older)
		e->older->newer = e->newer;
	else
		d->oldest = e->newer;
	if (e->newer)
		e->newer->older = e->older;
	else
		d->newest = e->older;
	d->ncached--;
	dns_res_unref(e->res);
	free(e);
}

static struct dns_centry *dns_cache_find(struct dns *d, const char *domain, uint32_t hash)
{
	struct dns_centry *e = d->cache[hash & (DNS_CACHE_BUCKETS - 1)];
	while (e && (e->hash != hash || strcmp(e->domain, domain) != 0))
		e = e->hnext;
	if (e && e->res->expires_ms <= timer_now_ms()) {
		dns_cache_remove(d, e);
		return NULL;
	}
	return e;
}

static void dns_cache_trim(struct dns *d, size_t max)
{
	while (d->ncached > max && d->oldest) {
		dns_cache_remove(d, d->oldest);
		d->st.evictions++;
	}
}

static void dns_cache_put(struct dns *d, const char *domain, uint32_t hash, struct dns_res *r)
{
	struct dns_centry *old = d->cache[hash & (DNS_CACHE_BUCKETS - 1)];
	while (old && (old->hash != hash || strcmp(old->domain, domain) != 0))
		old = old->hnext;
	if (old)
		dns_cache_remove(d, old);
	size_t len = strlen(domain);
	struct dns_centry *e = malloc(sizeof *e + len + 1);
	if (!e)
		return;                          /* not cached: the next lookup asks again */
	dns_cache_trim(d, d->cache_max - 1);
	memcpy(e->domain, domain, len + 1);
	e->hash = hash;
	e->res = r;
	r->refs++;
	r->expires_ms = timer_now_ms() + (uint64_t)r->ttl * 1000;
	struct dns_centry **b = &d->cache[hash & (DNS_CACHE_BUCKETS - 1)];
	e->hnext = *b;
	*b = e;
	e->newer = NULL;
	e->older = d->newest;
	if (d->newest)
		d->newest->newer = e;
	else
		d->oldest = e;
	d->newest = e;
	d->ncached++;
}

/* ---- handing results over ---- */

static void dns_deliver(struct dns *d);
static void dns_socks_sync(struct dns *d);

static void dns_release(struct dns *d)
{
	free(d);
}

/* Arm t to fire ms from now. The wheel counts from its own time, that of the loop's
 * last advance, which lags the clock while a turn works (or before the first turn): the
 * lag is added, so that a deadline never fires early. */
static void dns_timer_arm(struct dns *d, struct timer *t, uint64_t ms)
{
	uint64_t now = timer_now_ms(), base = d->loop->wheel.now_ms;
	timer_arm(&d->loop->wheel, t, ms + (now > base ? now - base : 0));
}

/* Work the ring had no room for: a timer tick later. */
static void dns_later(struct dns *d)
{
	if (!timer_armed(&d->later))
		timer_arm(&d->loop->wheel, &d->later, 0);
}

static void dns_on_later(struct timer *t)
{
	struct dns *d = DNS_OF(t, struct dns, later);
	dns_socks_sync(d);
	dns_deliver(d);                      /* may free d: last */
}

/* Have the ready list handed over from the next completion. */
static void dns_kick(struct dns *d)
{
	if (d->kick->inflight)
		return;
	struct io_uring_sqe *sqe = net_loop_sqe(d->loop, &d->kick->op);
	if (!sqe) {
		dns_later(d);
		return;
	}
	io_uring_prep_nop(sqe);
	d->kick->inflight = true;
}

static void dns_on_kick(struct net_loop *l, struct net_op *op, int res, unsigned flags)
{
	struct dns_kick *k = (struct dns_kick *)(void *)op;
	(void)l, (void)res, (void)flags;
	k->inflight = false;
	if (!k->d) {
		free(k);                         /* orphaned by dns_free */
		return;
	}
	dns_deliver(k->d);
}

static void dns_ready(struct dns *d, struct dns_waiter *w)
{
	w->next = NULL;
	*d->rtail = w;
	d->rtail = &w->next;
	dns_kick(d);
}

/* The result as the API shows it: the hosts ordered afresh (equal preferences shuffled),
 * the addresses as sockaddrs, in d's scratch arrays. */
static void dns_expand(struct dns *d, const struct dns_res *r, struct dns_mx *out)
{
	memset(out, 0, sizeof *out);
	out->status = r->status;
	out->error = r->error;
	out->site = r->site;
	out->implicit = r->implicit;
	if (r->ttl) {
		uint64_t now = timer_now_ms();
		uint64_t left = r->expires_ms > now ? (r->expires_ms - now + 999) / 1000 : 1;
		out->ttl = left > r->ttl ? r->ttl : left < 1 ? 1 : (uint32_t)left;
	}
	struct mx_rank rk[DNS_MAX_HOSTS];
	for (size_t i = 0; i < r->nhosts; i++)
		rk[i] = (struct mx_rank){ .pref = r->hosts[i].pref, .idx = (uint32_t)i };
	mx_order(rk, r->nhosts, &d->rng);
	size_t na = 0;
	for (size_t i = 0; i < r->nhosts; i++) {
		const struct dns_chost *h = &r->hosts[rk[i].idx];
		struct dns_host *o = &d->out_hosts[i];
		o->name = h->name;
		o->pref = h->pref;
		o->addrs = &d->out_addrs[na];
		o->naddrs = h->n;
		for (size_t j = 0; j < h->n; j++) {
			const struct dns_caddr *c = &r->addrs[h->first + j];
			struct dns_addr *a = &d->out_addrs[na++];
			memset(a, 0, sizeof *a);
			if (c->v6) {
				struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)(void *)&a->ss;
				s6->sin6_family = AF_INET6;
				s6->sin6_port = htons(DNS_SMTP_PORT);
				memcpy(&s6->sin6_addr, c->a, 16);
				a->len = sizeof *s6;
			} else {
				struct sockaddr_in *s4 = (struct sockaddr_in *)(void *)&a->ss;
				s4->sin_family = AF_INET;
				s4->sin_port = htons(DNS_SMTP_PORT);
				memcpy(&s4->sin_addr, c->a, 4);
				a->len = sizeof *s4;
			}
		}
	}
	out->hosts = r->nhosts ? d->out_hosts : NULL;
	out->nhosts = r->nhosts;
}

static void dns_deliver(struct dns *d)
{
	d->depth++;
	while (d->ready && !d->freeing) {
		struct dns_waiter *w = d->ready;
		d->ready = w->next;
		if (!d->ready)
			d->rtail = &d->ready;
		struct dns_mx out;
		dns_expand(d, w->res, &out);
		if ((unsigned)out.status < DNS_CANCELLED)
			d->st.results[out.status]++;
		w->fn(w->ctx, &out);             /* may call dns_mx, or dns_free */
		dns_res_unref(w->res);
		free(w);
	}
	if (--d->depth == 0 && d->free_later)
		dns_release(d);
}

/* ---- lookups ---- */

static struct dns_lookup **dns_flight_slot(struct dns *d, const char *domain, uint32_t hash)
{
	struct dns_lookup **pp = &d->flight[hash & (DNS_FLIGHT_BUCKETS - 1)];
	while (*pp && ((*pp)->hash != hash || strcmp((*pp)->domain, domain) != 0))
		pp = &(*pp)->hnext;
	return pp;
}

static void dns_lk_unref(struct dns_lookup *lk)
{
	if (--lk->refs > 0)
		return;
	for (size_t i = 0; i < lk->nhosts; i++)
		free(lk->hosts[i].name);
	free(lk->work);
	free(lk->site);
	free(lk);
}

__attribute__((format(printf, 2, 3)))
static void dns_lk_why(struct dns_lookup *lk, const char *fmt, ...)
{
	if (lk->why[0])
		return;                          /* the first reason is the one told */
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(lk->why, sizeof lk->why, fmt, ap);
	va_end(ap);
}

static void dns_lk_start_waiting(struct dns *d);
static void dns_after_ares(struct dns *d);

/* The lookup has its result: cache it (ttl > 0), hand it to every waiter. */
static void dns_lk_done(struct dns_lookup *lk, struct dns_res *r)
{
	struct dns *d = lk->d;
	lk->stage = DNS_STAGE_DONE;
	timer_cancel(&lk->deadline);
	struct dns_lookup **pp = dns_flight_slot(d, lk->domain, lk->hash);
	timer_cancel(&lk->stall);
	if (*pp == lk) {
		*pp = lk->hnext;
		d->ninflight--;
		if (lk->stalled)
			d->nstalled--;
	}
	if (r->ttl && !r->fixed)
		dns_cache_put(d, lk->domain, lk->hash, r);
	dns_lk_start_waiting(d);          /* a place is free: the next in line asks */
	while (lk->waiters) {
		struct dns_waiter *w = lk->waiters;
		lk->waiters = w->next;
		w->res = r;
		if (!r->fixed)
			r->refs++;
		dns_ready(d, w);
	}
	lk->wtail = &lk->waiters;
	dns_res_unref(r);
}

/* A failure that ends the lookup at its MX query. */
static void dns_lk_fail(struct dns_lookup *lk, enum dns_status st, uint32_t ttl,
                        const char *error)
{
	struct dns_res *r = dns_res_new(st, 0, NULL, "%s", error);
	if (!r->fixed && st != DNS_TEMPFAIL)
		r->ttl = dns_ttl_clamp(ttl < lk->ttl ? ttl : lk->ttl);
	dns_lk_done(lk, r);
}

/* The address stage is over (every answer in, or the deadline): make the result. */
static void dns_lk_conclude(struct dns_lookup *lk)
{
	size_t with = 0, naddrs = 0;
	bool complete = true;
	uint8_t take[DNS_MAX_HOSTS][2];
	for (size_t i = 0; i < lk->nhosts; i++) {
		struct dns_lhost *h = &lk->hosts[i];
		for (int f = 0; f < 2; f++) {
			int s = h->fam[f].status;
			if (s != ARES_SUCCESS && !dns_negative(s)) {
				complete = false;
				dns_lk_why(lk, "%s for %s %s", dns_ares_why(lk->d, s), h->name, f ? "AAAA" : "A");
			}
		}
		/* IPv4 first, then IPv6; more than DNS_MAX_ADDRS: half each, what one family
		 * does not use goes to the other. */
		unsigned n4 = h->fam[0].status == ARES_SUCCESS ? h->fam[0].n : 0;
		unsigned n6 = h->fam[1].status == ARES_SUCCESS ? h->fam[1].n : 0;
		unsigned half = DNS_MAX_ADDRS / 2;
		unsigned cap4 = n6 < half ? DNS_MAX_ADDRS - n6 : half;
		unsigned k4 = n4 < cap4 ? n4 : cap4;
		unsigned k6 = n6 < DNS_MAX_ADDRS - k4 ? n6 : DNS_MAX_ADDRS - k4;
		take[i][0] = (uint8_t)k4;
		take[i][1] = (uint8_t)k6;
		if (k4 + k6) {
			with++;
			naddrs += k4 + k6;
		}
	}
	struct dns_res *r;
	if (with == 0 && complete) {
		r = lk->hostonly ? dns_res_new(DNS_NOHOST, 0, lk->site, "no address for %s", lk->domain)
		    : lk->implicit
		    ? dns_res_new(DNS_NOHOST, 0, lk->site, "no MX and no address for %s", lk->domain)
		    : dns_res_new(DNS_NOHOST, 0, lk->site, "no address for any MX host of %s",
		                  lk->domain);
		if (!r->fixed) {
			r->implicit = lk->implicit;
			r->ttl = dns_ttl_clamp(lk->ttl);
		}
	} else if (with == 0) {
		r = dns_res_new(DNS_TEMPFAIL, 0, NULL, "%s", lk->why);
	} else {
		r = dns_res_new(DNS_OK, naddrs, lk->site, "%s", "");
		if (!r->fixed) {
			r->implicit = lk->implicit;
			r->ttl = complete ? dns_ttl_clamp(lk->ttl) : 0;  /* a partial one: not cached */
			for (size_t i = 0; i < lk->nhosts; i++) {
				struct dns_lhost *h = &lk->hosts[i];
				if (take[i][0] + take[i][1] == 0)
					continue;
				struct dns_chost *c = &r->hosts[r->nhosts];
				c->name = h->name;       /* moved over */
				h->name = NULL;
				c->pref = h->pref;
				c->first = (uint16_t)r->naddrs;
				for (int f = 0; f < 2; f++)
					for (unsigned j = 0; j < take[i][f]; j++) {
						struct dns_caddr *a = &r->addrs[r->naddrs++];
						a->v6 = (uint8_t)f;
						memcpy(a->a, h->fam[f].a[j], f ? 16 : 4);
					}
				c->n = (uint16_t)(r->naddrs - c->first);
				r->nhosts++;
			}
		}
	}
	dns_lk_done(lk, r);
}

static void dns_on_answer(void *arg, int status, int timeouts, unsigned char *abuf, int alen);

static void dns_ask(struct dns_lookup *lk, struct dns_qarg *q, const char *name, int type)
{
	lk->refs++;                          /* the query's; its answer drops it */
	lk->d->st.queries++;
	ares_query(lk->d->ch, name, C_IN, type, dns_on_answer, q);   /* may answer at once */
}

/* Ask for the A and AAAA of every host. */
static void dns_lk_addrs(struct dns_lookup *lk)
{
	lk->stage = DNS_STAGE_ADDR;
	lk->out = (unsigned)(2 * lk->nhosts);
	for (size_t i = 0; i < lk->nhosts; i++) {
		lk->hosts[i].fam[0].status = lk->hosts[i].fam[1].status = DNS_PENDING;
		lk->hq[i][0] = (struct dns_qarg){ lk, (int8_t)i, 0 };
		lk->hq[i][1] = (struct dns_qarg){ lk, (int8_t)i, 1 };
	}
	/* Each answer may come at once (c-ares fails a query it cannot send): lk->out is set
	 * in full first, so none of them concludes before the last is asked. */
	for (size_t i = 0; i < lk->nhosts && lk->stage == DNS_STAGE_ADDR; i++) {
		dns_ask(lk, &lk->hq[i][0], lk->hosts[i].name, T_A);
		if (lk->stage == DNS_STAGE_ADDR)
			dns_ask(lk, &lk->hq[i][1], lk->hosts[i].name, T_AAAA);
	}
}

static bool dns_is_root(const char *name)
{
	return name[0] == '\0' || strcmp(name, ".") == 0;
}

/* The MX records came: the null MX, or the hosts to resolve and the site key. */
static void dns_lk_mx(struct dns_lookup *lk, struct ares_mx_reply *mx, uint32_t ttl)
{
	struct dns *d = lk->d;
	size_t n = 0, real = 0;
	for (struct ares_mx_reply *m = mx; m; m = m->next, n++)
		real += !dns_is_root(m->host);
	lk->ttl = ttl < lk->ttl ? ttl : lk->ttl;
	if (real == 0) {                     /* "0 ." alone (RFC 7505), or only such records */
		char why[64 + MX_NAME_MAX];
		snprintf(why, sizeof why, "null MX for %s", lk->domain);
		dns_lk_fail(lk, DNS_NULLMX, lk->ttl, why);
		return;
	}
	struct mx_rank *rk = malloc(real * sizeof *rk);
	const char **names = malloc(real * sizeof *names);
	char site[DNS_SITE_MAX];
	if (!rk || !names)
		goto nomem;
	size_t k = 0;
	for (struct ares_mx_reply *m = mx; m; m = m->next)
		if (!dns_is_root(m->host)) {     /* "." beside real hosts: ignored */
			names[k] = m->host;
			rk[k] = (struct mx_rank){ .pref = m->priority, .idx = (uint32_t)k };
			k++;
		}
	mx_order(rk, real, &d->rng);
	/* The first DNS_MAX_HOSTS distinct names by preference; a name listed twice keeps
	 * its lower preference. */
	for (size_t i = 0; i < real && lk->nhosts < DNS_MAX_HOSTS; i++) {
		const char *name = names[rk[i].idx];
		bool dup = false;
		for (size_t j = 0; j < lk->nhosts && !dup; j++)
			dup = strcasecmp(lk->hosts[j].name, name) == 0;
		if (dup)
			continue;
		struct dns_lhost *h = &lk->hosts[lk->nhosts];
		h->name = strdup(name);
		if (!h->name)
			goto nomem;
		h->pref = rk[i].pref;
		lk->nhosts++;
	}
	mx_site_key(site, sizeof site, names, real);
	lk->site = strdup(site);
	if (!lk->site)
		goto nomem;
	free(rk);
	free(names);
	dns_lk_addrs(lk);
	return;
nomem:
	free(rk);
	free(names);
	dns_lk_done(lk, &dns_res_nomem);
}

/* No MX record: the domain is its own mail host, at preference 0. */
static void dns_lk_implicit(struct dns_lookup *lk, uint32_t ttl)
{
	lk->implicit = true;
	lk->ttl = ttl < lk->ttl ? ttl : lk->ttl;
	lk->hosts[0].name = strdup(lk->domain);
	lk->site = strdup(lk->domain);
	if (!lk->hosts[0].name || !lk->site) {
		free(lk->hosts[0].name);
		lk->hosts[0].name = NULL;
		dns_lk_done(lk, &dns_res_nomem);
		return;
	}
	lk->hosts[0].pref = 0;
	lk->nhosts = 1;
	dns_lk_addrs(lk);
}

static void dns_on_mx(struct dns_lookup *lk, int status, unsigned char *abuf, int alen)
{
	char why[64 + MX_NAME_MAX];
	uint32_t ttl = dns_msg_ttl(abuf, alen);
	if (status == ARES_SUCCESS) {
		struct ares_mx_reply *mx = NULL;
		int rc = ares_parse_mx_reply(abuf, alen, &mx);
		if (rc == ARES_SUCCESS && mx != NULL) {
			dns_lk_mx(lk, mx, ttl);
			ares_free_data(mx);
			return;
		}
		/* ENODATA, or SUCCESS with an empty list (c-ares' answer to a CNAME whose
		 * target has no MX): no MX record, so the implicit MX, never a null MX. */
		status = rc == ARES_SUCCESS ? ARES_ENODATA : rc;
	}
	switch (status) {
	case ARES_ENODATA:
		dns_lk_implicit(lk, ttl);
		return;
	case ARES_ENOTFOUND:
		snprintf(why, sizeof why, "NXDOMAIN for %s MX", lk->domain);
		dns_lk_fail(lk, DNS_NXDOMAIN, ttl, why);
		return;
	default:
		snprintf(why, sizeof why, "%s for %s MX", dns_ares_why(lk->d, status), lk->domain);
		dns_lk_fail(lk, DNS_TEMPFAIL, 0, why);
		return;
	}
}

static void dns_on_addr(struct dns_lookup *lk, int h, int fam, int status,
                        unsigned char *abuf, int alen)
{
	struct dns_fam *f = &lk->hosts[h].fam[fam];
	if (status == ARES_SUCCESS) {
		int n = DNS_MAX_ADDRS;
		if (fam) {
			struct ares_addr6ttl v[DNS_MAX_ADDRS];
			status = ares_parse_aaaa_reply(abuf, alen, NULL, v, &n);
			for (int i = 0; status == ARES_SUCCESS && i < n; i++)
				memcpy(f->a[i], &v[i].ip6addr, 16);
		} else {
			struct ares_addrttl v[DNS_MAX_ADDRS];
			status = ares_parse_a_reply(abuf, alen, NULL, v, &n);
			for (int i = 0; status == ARES_SUCCESS && i < n; i++)
				memcpy(f->a[i], &v[i].ipaddr, 4);
		}
		f->n = status == ARES_SUCCESS ? (uint8_t)n : 0;
		if (status == ARES_SUCCESS && n == 0)
			status = ARES_ENODATA;
	}
	f->status = status;
	if (status == ARES_SUCCESS || dns_negative(status)) {
		f->ttl = dns_msg_ttl(abuf, alen);
		lk->ttl = f->ttl < lk->ttl ? f->ttl : lk->ttl;
	}
	if (--lk->out == 0)
		dns_lk_conclude(lk);
}

static void dns_on_answer(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct dns_qarg *q = arg;
	struct dns_lookup *lk = q->lk;
	(void)timeouts;
	if (status != ARES_SUCCESS && status != ARES_EDESTRUCTION && status != ARES_ECANCELLED)
		lk->d->st.qfails[dns_qfail_of(status)]++;
	/* A lookup ended by its deadline, or torn down by dns_free, only counts its answers
	 * back in. */
	if (lk->stage != DNS_STAGE_DONE && status != ARES_EDESTRUCTION &&
	    status != ARES_ECANCELLED) {
		if (q->host < 0)
			dns_on_mx(lk, status, abuf, alen);
		else
			dns_on_addr(lk, q->host, q->fam, status, abuf, alen);
	}
	dns_lk_unref(lk);
}

static void dns_on_deadline(struct timer *t)
{
	struct dns_lookup *lk = DNS_OF(t, struct dns_lookup, deadline);
	char why[64 + MX_NAME_MAX];
	lk->refs++;
	lk->d->st.deadlines++;
	if (lk->stage == DNS_STAGE_MX) {
		snprintf(why, sizeof why, "timeout for %s MX", lk->domain);
		dns_lk_fail(lk, DNS_TEMPFAIL, 0, why);
	} else if (lk->stage == DNS_STAGE_ADDR) {
		dns_lk_conclude(lk);             /* what is still pending counts as a timeout */
	}
	struct dns *d = lk->d;
	dns_lk_unref(lk);
	dns_after_ares(d);                   /* (lookups in line may have asked) */
}

/* Asking for DNS_STALL_MS: a slow or unanswered domain. It asks on, but no longer holds
 * one of the places: the line behind it goes on (the cap bounds the lookups that begin
 * in a while, not those a slow server keeps open). */
static void dns_on_stall(struct timer *t)
{
	struct dns_lookup *lk = DNS_OF(t, struct dns_lookup, stall);
	struct dns *d = lk->d;
	if ((lk->stage != DNS_STAGE_MX && lk->stage != DNS_STAGE_ADDR) || lk->stalled)
		return;
	lk->stalled = true;
	d->nstalled++;
	d->st.stalled++;
	dns_lk_start_waiting(d);
	dns_after_ares(d);
}

/* ---- c-ares's sockets and timeouts ---- */

static void dns_sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
	struct dns *d = data;
	struct dns_sock *s = d->socks;
	while (s && !(s->live && s->fd == fd))
		s = s->next;
	short want = (short)((readable ? POLLIN : 0) | (writable ? POLLOUT : 0));
	if (!s) {
		if (!want)
			return;
		s = calloc(1, sizeof *s);
		if (!s)
			return;                      /* unwatched: its queries end by their timeouts */
		s->op.kind = DNS_OP_POLL;
		s->d = d;
		s->fd = fd;
		s->live = true;
		s->next = d->socks;
		d->socks = s;
	}
	s->want = want;
	if (!want)
		s->live = false;                 /* c-ares closes fd right after this */
	/* The ring work is done by dns_socks_sync() once c-ares has returned. */
}

static void dns_sock_cancel(struct dns *d, struct dns_sock *s)
{
	struct io_uring_sqe *sqe = net_loop_sqe(d->loop, NULL);
	if (!sqe) {
		dns_later(d);
		return;
	}
	io_uring_prep_cancel64(sqe, (uint64_t)(uintptr_t)&s->op, 0);
	s->cancelling = true;
}

/* Bring the polls in line with what c-ares wants: arm, cancel a stale one, free the
 * dead sockets whose poll has completed. */
static void dns_socks_sync(struct dns *d)
{
	if (d->freeing)
		return;
	struct dns_sock **pp = &d->socks;
	while (*pp) {
		struct dns_sock *s = *pp;
		if (!s->live && !s->polling) {
			*pp = s->next;
			free(s);
			continue;
		}
		if (s->polling) {
			if ((!s->live || s->armed != s->want) && !s->cancelling)
				dns_sock_cancel(d, s);   /* re-armed (or freed) by its completion */
		} else if (s->want) {
			struct io_uring_sqe *sqe = net_loop_sqe(d->loop, &s->op);
			if (sqe) {
				io_uring_prep_poll_add(sqe, s->fd, (unsigned)s->want);
				s->polling = true;
				s->armed = s->want;
			} else {
				dns_later(d);
			}
		}
		pp = &s->next;
	}
}

static void dns_tick_arm(struct dns *d)
{
	struct timeval tv, *t = ares_timeout(d->ch, NULL, &tv);
	if (!t) {
		timer_cancel(&d->tick);
		return;
	}
	dns_timer_arm(d, &d->tick, (uint64_t)t->tv_sec * 1000 + ((uint64_t)t->tv_usec + 999) / 1000);
}

/* After every call into c-ares. */
static void dns_after_ares(struct dns *d)
{
	dns_socks_sync(d);
	dns_tick_arm(d);
}

static void dns_on_poll(struct net_loop *l, struct net_op *op, int res, unsigned flags)
{
	struct dns_sock *s = (struct dns_sock *)(void *)op;
	struct dns *d = s->d;
	(void)l, (void)flags;
	s->polling = s->cancelling = false;
	s->armed = 0;
	if (!d) {
		free(s);                         /* orphaned by dns_free */
		return;
	}
	if (s->live && res != -ECANCELED) {
		/* An error of the poll itself: let c-ares find the socket's error. */
		ares_socket_t rfd = res < 0 || (res & (POLLIN | POLLERR | POLLHUP)) ? s->fd
		                                                                    : ARES_SOCKET_BAD;
		ares_socket_t wfd = res < 0 || (res & (POLLOUT | POLLERR | POLLHUP)) ? s->fd
		                                                                     : ARES_SOCKET_BAD;
		ares_process_fd(d->ch, rfd, wfd);
	}
	dns_after_ares(d);                   /* re-arms s, or frees it */
}

static void dns_on_tick(struct timer *t)
{
	struct dns *d = DNS_OF(t, struct dns, tick);
	ares_process_fd(d->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);   /* timeouts, retries */
	dns_after_ares(d);
}

static int dns_sock_created(ares_socket_t fd, int type, void *data)
{
	struct dns *d = data;
	(void)type;
	int fl = fcntl(fd, F_GETFD);
	if (fl >= 0)
		fcntl(fd, F_SETFD, fl | FD_CLOEXEC);
	d->st.sockets++;
	return ARES_SUCCESS;
}

/* ---- set-up ---- */

static pthread_once_t dns_lib_once = PTHREAD_ONCE_INIT;
static int dns_lib_rc;

static void dns_lib_init(void)
{
	dns_lib_rc = ares_library_init(ARES_LIB_INIT_ALL);   /* once per process, never undone */
}

/* "192.0.2.1", "192.0.2.1:5353", "::1", "[::1]", "[::1]:5353". 0 or -1. */
static int dns_server_parse(const char *s, struct ares_addr_port_node *n)
{
	char host[INET6_ADDRSTRLEN];
	const char *port = NULL;
	size_t hl;
	if (s[0] == '[') {
		const char *e = strchr(s, ']');
		if (!e)
			return -1;
		hl = (size_t)(e - s - 1);
		s++;
		if (e[1] == ':')
			port = e + 2;
		else if (e[1])
			return -1;
	} else {
		const char *c = strchr(s, ':');
		if (c && !strchr(c + 1, ':')) {   /* one colon: IPv4 and a port */
			hl = (size_t)(c - s);
			port = c + 1;
		} else {
			hl = strlen(s);
		}
	}
	if (hl == 0 || hl >= sizeof host)
		return -1;
	memcpy(host, s, hl);
	host[hl] = '\0';
	memset(n, 0, sizeof *n);
	if (inet_pton(AF_INET, host, &n->addr.addr4) == 1)
		n->family = AF_INET;
	else if (inet_pton(AF_INET6, host, &n->addr.addr6) == 1)
		n->family = AF_INET6;
	else
		return -1;
	unsigned long p = 53;
	if (port) {
		char *end;
		if (*port < '0' || *port > '9')
			return -1;
		p = strtoul(port, &end, 10);
		if (*end || p == 0 || p > 65535)
			return -1;
	}
	n->udp_port = n->tcp_port = (int)p;
	return 0;
}

/* The c-ares channel. With a single server, ARES_FLAG_NOCHECKRESP: a SERVFAIL or REFUSED
 * answer comes to us as such (c-ares 1.18 would only retry that server and then report
 * ARES_ECONNREFUSED, which makes a misleading log). With several, c-ares fails over to
 * the next server on such answers, which is worth more than the exact reason. 0 or -1. */
static int dns_channel(struct dns *d, struct ares_addr_port_node *nodes, bool single,
                       char *err, size_t errlen)
{
	struct ares_options o;
	int rc;
	memset(&o, 0, sizeof o);
	o.flags = ARES_FLAG_NOSEARCH | ARES_FLAG_EDNS | (single ? ARES_FLAG_NOCHECKRESP : 0);
	o.timeout = (int)(d->timeout_ms / 3 ? d->timeout_ms / 3 : 1);
	o.tries = DNS_TRIES;
	o.sock_state_cb = dns_sock_state;
	o.sock_state_cb_data = d;
	o.ednspsz = DNS_EDNS_SIZE;
	rc = ares_init_options(&d->ch, &o, ARES_OPT_FLAGS | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES |
	                                   ARES_OPT_SOCK_STATE_CB | ARES_OPT_EDNSPSZ);
	if (rc != ARES_SUCCESS) {
		snprintf(err, errlen, "dns: c-ares: %s", ares_strerror(rc));
		d->ch = NULL;
		return -1;
	}
	if (nodes && (rc = ares_set_servers_ports(d->ch, nodes)) != ARES_SUCCESS) {
		snprintf(err, errlen, "dns: c-ares servers: %s", ares_strerror(rc));
		return -1;
	}
	ares_set_socket_callback(d->ch, dns_sock_created, d);
	d->failover = !single;
	return 0;
}

struct dns *dns_new(struct net_loop *l, const char *const *servers, size_t nservers,
                    unsigned timeout_ms, char *err, size_t errlen)
{
	struct ares_addr_port_node *nodes = NULL;
	struct dns *d = NULL;
	int rc;
	if (err && errlen)
		err[0] = '\0';
	pthread_once(&dns_lib_once, dns_lib_init);
	if (dns_lib_rc != ARES_SUCCESS) {
		snprintf(err, errlen, "dns: c-ares: %s", ares_strerror(dns_lib_rc));
		return NULL;
	}
	if (nservers) {
		nodes = calloc(nservers, sizeof *nodes);
		if (!nodes)
			goto nomem;
		for (size_t i = 0; i < nservers; i++) {
			if (!servers[i] || dns_server_parse(servers[i], &nodes[i]) < 0) {
				snprintf(err, errlen, "dns: server \"%s\": not an IP address with an "
				         "optional port", servers[i] ? servers[i] : "(null)");
				goto fail;
			}
			nodes[i].next = i + 1 < nservers ? &nodes[i + 1] : NULL;
		}
	}
	d = calloc(1, sizeof *d);
	if (!d)
		goto nomem;
	d->kick = calloc(1, sizeof *d->kick);
	if (!d->kick)
		goto nomem;
	d->kick->op.kind = DNS_OP_KICK;
	d->kick->d = d;
	d->loop = l;
	d->timeout_ms = timeout_ms ? timeout_ms : DNS_TIMEOUT_DEFAULT;
	d->cache_max = DNS_CACHE_MAX;
	d->max_lookups = DNS_MAX_LOOKUPS;
	d->rtail = &d->ready;
	d->tick.fire = dns_on_tick;
	d->later.fire = dns_on_later;
	if (getrandom(&d->rng, sizeof d->rng, GRND_NONBLOCK) != (ssize_t)sizeof d->rng || !d->rng)
		d->rng = (timer_now_ms() ^ (uint64_t)(uintptr_t)d) | 1;

	rc = dns_channel(d, nodes, nservers == 1, err, errlen);
	if (rc == 0 && nservers == 0) {
		/* /etc/resolv.conf: one server or several? */
		struct ares_addr_port_node *list = NULL;
		size_t n = 0;
		if (ares_get_servers_ports(d->ch, &list) == ARES_SUCCESS)
			for (struct ares_addr_port_node *p = list; p; p = p->next)
				n++;
		ares_free_data(list);
		if (n == 1) {
			ares_destroy(d->ch);
			d->ch = NULL;
			rc = dns_channel(d, NULL, true, err, errlen);
		}
	}
	if (rc < 0)
		goto fail;
	free(nodes);
	net_loop_handle(l, DNS_OP_POLL, dns_on_poll);
	net_loop_handle(l, DNS_OP_KICK, dns_on_kick);
	return d;
nomem:
	snprintf(err, errlen, "dns: out of memory");
fail:
	if (d && d->ch)
		ares_destroy(d->ch);
	if (d)
		free(d->kick);
	free(d);
	free(nodes);
	return NULL;
}

/* Lookup lk asks its first queries (its MX records; for a host, its addresses), its
 * deadline counted from now; it takes one of the d->max_lookups places. Consumes the
 * reference the caller holds. */
static void dns_lk_begin(struct dns_lookup *lk)
{
	struct dns *d = lk->d;
	lk->stage = DNS_STAGE_MX;
	d->ninflight++;
	dns_timer_arm(d, &lk->deadline, d->timeout_ms);
	lk->stall.fire = dns_on_stall;
	dns_timer_arm(d, &lk->stall, DNS_STALL_MS);
	lk->work = calloc(1, sizeof *lk->work);
	if (!lk->work) {
		dns_lk_done(lk, &dns_res_nomem);
		dns_lk_unref(lk);
		return;
	}
	lk->hosts = lk->work->hosts;
	lk->hq = lk->work->hq;
	if (lk->hostonly) {
		lk->hosts[0].name = strdup(lk->domain + 1);    /* "[host]" */
		if (lk->hosts[0].name)
			lk->hosts[0].name[strlen(lk->hosts[0].name) - 1] = '\0';
		lk->site = strdup(lk->domain);
		if (!lk->hosts[0].name || !lk->site) {
			free(lk->hosts[0].name);
			lk->hosts[0].name = NULL;
			dns_lk_done(lk, &dns_res_nomem);
		} else {
			lk->nhosts = 1;
			dns_lk_addrs(lk);
		}
	} else {
		dns_ask(lk, &lk->mxq, lk->domain, T_MX);
	}
	dns_lk_unref(lk);
}

/* Lookups in line begin while places are free (oldest first). Not reentered: a lookup
 * that ends at once (no memory) frees its place for the loop here. */
static void dns_lk_start_waiting(struct dns *d)
{
	if (d->starting || d->freeing)
		return;
	d->starting = true;
	while (d->wait_head && d->ninflight - d->nstalled < d->max_lookups) {
		struct dns_lookup *lk = d->wait_head;
		d->wait_head = lk->qnext;
		if (!d->wait_head)
			d->wait_tail = NULL;
		lk->qnext = NULL;
		d->nwaiting--;
		if (!lk->waiters) {          /* nobody wants it any more (dns_drop_waiters) */
			struct dns_lookup **pp = dns_flight_slot(d, lk->domain, lk->hash);
			if (*pp == lk)
				*pp = lk->hnext;
			lk->stage = DNS_STAGE_DONE;
			dns_lk_unref(lk);
			continue;
		}
		dns_lk_begin(lk);
	}
	d->starting = false;
}

/* A lookup keyed `key` (the domain, or "[host]"): from the cache, joined to one in flight,
 * or begun (for a host: its addresses straight away; else its MX records). */
static int dns_start(struct dns *d, const char *name, bool hostonly, dns_mx_fn *fn, void *ctx)
{
	char key[MX_NAME_MAX + 3];
	snprintf(key, sizeof key, hostonly ? "[%s]" : "%s", name);
	uint32_t hash = dns_hash(key);
	struct dns_waiter *w = calloc(1, sizeof *w);
	if (!w)
		return -ENOMEM;
	w->fn = fn;
	w->ctx = ctx;
	struct dns_centry *e = dns_cache_find(d, key, hash);
	if (e) {
		d->st.lookups++;
		d->st.cache_hits++;
		w->res = e->res;
		e->res->refs++;
		dns_ready(d, w);                 /* handed over from a later completion */
		return 0;
	}
	struct dns_lookup **slot = dns_flight_slot(d, key, hash);
	if (*slot) {
		d->st.lookups++;
		d->st.joined++;
		*(*slot)->wtail = w;
		(*slot)->wtail = &w->next;
		return 0;
	}
	struct dns_lookup *lk = calloc(1, sizeof *lk);
	if (!lk) {
		free(w);
		return -ENOMEM;
	}
	d->st.lookups++;
	lk->d = d;
	lk->hash = hash;
	memcpy(lk->domain, key, strlen(key) + 1);
	lk->ttl = UINT32_MAX;
	lk->waiters = w;
	lk->wtail = &w->next;
	lk->refs = 1;                        /* ours, until the end of this function */
	lk->deadline.fire = dns_on_deadline;
	lk->mxq = (struct dns_qarg){ lk, -1, 0 };
	lk->hostonly = hostonly;
	*slot = lk;
	if (d->ninflight - d->nstalled >= d->max_lookups || d->wait_head) {
		lk->stage = DNS_STAGE_WAIT;      /* in line; the line's reference is this one */
		if (d->wait_tail)
			d->wait_tail->qnext = lk;
		else
			d->wait_head = lk;
		d->wait_tail = lk;
		d->nwaiting++;
		d->st.waited++;
		return 0;
	}
	dns_lk_begin(lk);
	dns_after_ares(d);
	return 0;
}

int dns_mx(struct dns *d, const char *domain, dns_mx_fn *fn, void *ctx)
{
	char name[MX_NAME_MAX + 1];
	if (!d || !domain || !fn)
		return -EINVAL;
	if (d->freeing)
		return -ESHUTDOWN;
	if (mx_name_norm(domain, strnlen(domain, MX_NAME_MAX + 2), name) != MX_NAME_OK)
		return -EINVAL;
	return dns_start(d, name, false, fn, ctx);
}

int dns_host(struct dns *d, const char *host, dns_mx_fn *fn, void *ctx)
{
	char name[MX_NAME_MAX + 1];
	if (!d || !host || !fn)
		return -EINVAL;
	if (d->freeing)
		return -ESHUTDOWN;
	if (mx_name_norm(host, strnlen(host, MX_NAME_MAX + 2), name) != MX_NAME_OK)
		return -EINVAL;
	return dns_start(d, name, true, fn, ctx);
}

size_t dns_drop_waiters(struct dns *d, bool (*drop)(void *ctx, void *arg),
                        void (*gone)(void *ctx, void *arg), void *arg)
{
	if (!d || d->freeing)
		return 0;
	struct dns_waiter *out = NULL;
	size_t n = 0;
	for (size_t b = 0; b < DNS_FLIGHT_BUCKETS; b++)
		for (struct dns_lookup *lk = d->flight[b]; lk; lk = lk->hnext) {
			struct dns_waiter **pw = &lk->waiters;
			while (*pw) {
				struct dns_waiter *w = *pw;
				if (!drop(w->ctx, arg)) {
					pw = &w->next;
					continue;
				}
				*pw = w->next;
				w->next = out;
				out = w;
				n++;
			}
			lk->wtail = pw;            /* (the last waiter's next, or &lk->waiters) */
		}
	/* A lookup in line left without waiters is dropped when its turn comes; one asking
	 * goes on (its answer is cached). The callers get their contexts back only now: a
	 * gone() may begin other lookups. */
	while (out) {
		struct dns_waiter *w = out;
		out = w->next;
		gone(w->ctx, arg);
		free(w);
	}
	return n;
}

void dns_set_max_lookups(struct dns *d, size_t max)
{
	d->max_lookups = max ? max : 1;
	dns_lk_start_waiting(d);
	dns_after_ares(d);
}

void dns_set_cache_max(struct dns *d, size_t max)
{
	d->cache_max = max ? max : 1;
	dns_cache_trim(d, d->cache_max);
}

void dns_stats(const struct dns *d, struct dns_stats *st)
{
	*st = d->st;
	st->cached = d->ncached;
	st->inflight = d->ninflight;
	st->waiting = d->nwaiting;
	st->stalled_now = d->nstalled;
	st->polls = 0;
	for (const struct dns_sock *s = d->socks; s; s = s->next)
		st->polls += s->polling;
}

void dns_free(struct dns *d)
{
	static const struct dns_mx cancelled = {
		.status = DNS_CANCELLED, .error = "cancelled: the resolver is being freed", .site = "",
	};
	if (!d || d->freeing)
		return;
	d->freeing = true;
	d->depth++;
	/* Every callback still owed, first: results not handed over yet, then the waiters of
	 * the lookups in flight (dns_mx refuses new ones from here on). */
	while (d->ready) {
		struct dns_waiter *w = d->ready;
		d->ready = w->next;
		w->fn(w->ctx, &cancelled);
		dns_res_unref(w->res);
		free(w);
	}
	d->rtail = &d->ready;
	for (size_t b = 0; b < DNS_FLIGHT_BUCKETS; b++) {
		while (d->flight[b]) {
			struct dns_lookup *lk = d->flight[b];
			d->flight[b] = lk->hnext;
			bool waiting = lk->stage == DNS_STAGE_WAIT;
			if (waiting)
				d->nwaiting--;
			else
				d->ninflight--;
			if (lk->stalled)
				d->nstalled--;
			lk->stage = DNS_STAGE_DONE;  /* its queries' answers are dropped */
			timer_cancel(&lk->deadline);
			timer_cancel(&lk->stall);
			while (lk->waiters) {
				struct dns_waiter *w = lk->waiters;
				lk->waiters = w->next;
				w->fn(w->ctx, &cancelled);
				free(w);
			}
			if (waiting)                 /* no query holds it: the line's reference */
				dns_lk_unref(lk);
		}
	}
	d->wait_head = d->wait_tail = NULL;
	timer_cancel(&d->tick);
	timer_cancel(&d->later);
	/* Closes c-ares's sockets (dns_sock_state marks them dead) and answers each query
	 * with ARES_EDESTRUCTION, which frees its lookup with its last one. */
	ares_destroy(d->ch);
	while (d->oldest)
		dns_cache_remove(d, d->oldest);
	/* The ring may still hold polls and the kick: while the loop is up their memory goes
	 * with their completions; once it is down, nothing refers to it any more. */
	bool up = d->loop->up;
	while (d->socks) {
		struct dns_sock *s = d->socks;
		d->socks = s->next;
		if (up && s->polling) {
			s->d = NULL;
			s->live = false;
			if (!s->cancelling) {
				struct io_uring_sqe *sqe = net_loop_sqe(d->loop, NULL);
				if (sqe)                 /* else it stays until the ring goes */
					io_uring_prep_cancel64(sqe, (uint64_t)(uintptr_t)&s->op, 0);
			}
		} else {
			free(s);
		}
	}
	if (up && d->kick->inflight)
		d->kick->d = NULL;
	else
		free(d->kick);
	d->kick = NULL;
	if (--d->depth == 0)
		dns_release(d);
	else
		d->free_later = true;            /* from inside a callback: dns_deliver frees it */
}
