/* core/egress — see egress.h. */
#include "core/egress.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/worker.h"
#include "net/connect.h"
#include "net/listener.h"
#include "net/post.h"
#include "net/stream.h"
#include "proto/proxy.h"

/* The letter kind of a passive result (core/owner has USER + 12 and 13). */
enum { EGRESS_OP_PASSIVE = NET_OP_USER + 14 };

#define EGRESS_LOG_EVERY_MS 60000u

/* ---- the table ---------------------------------------------------------------------- */

static void label_of(const struct config_source *s, char out[EGRESS_LABEL_MAX])
{
	snprintf(out, EGRESS_LABEL_MAX, "%s%s%s", s->ipv4 ? s->ipv4 : "",
	         s->ipv4 && s->ipv6 ? "," : "", s->ipv6 ? s->ipv6 : "");
}

/* A configured source's addresses (validated text) as octets. */
static void source_of(const struct config_source *cs, struct egress_source *out)
{
	uint8_t a4[4], a6[16];
	bool h4 = cs->ipv4 && inet_pton(AF_INET, cs->ipv4, a4) == 1;
	bool h6 = cs->ipv6 && inet_pton(AF_INET6, cs->ipv6, a6) == 1;
	egress_source_init(out, h4 ? a4 : NULL, h6 ? a6 : NULL);
}

/* "host:port", "[v6]:port" (or "[ip]" for a probe: port 25) into a sockaddr. */
static socklen_t resolve(const char *text, struct sockaddr_storage *ss)
{
	char host[256], port[16] = "25";
	const char *colon;
	size_t n;
	if (text[0] == '[') {
		const char *close = strchr(text, ']');
		if (!close || (n = (size_t)(close - text - 1)) >= sizeof host)
			return 0;
		memcpy(host, text + 1, n);
		host[n] = '\0';
		if (close[1] == ':')
			snprintf(port, sizeof port, "%s", close + 2);
	} else {
		colon = strrchr(text, ':');
		if (!colon || (n = (size_t)(colon - text)) >= sizeof host)
			return 0;
		memcpy(host, text, n);
		host[n] = '\0';
		snprintf(port, sizeof port, "%s", colon + 1);
	}
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV };
	struct addrinfo *res = NULL;
	if (getaddrinfo(host, port, &hints, &res) != 0 || !res)
		return 0;
	socklen_t len = res->ai_addrlen <= sizeof *ss ? (socklen_t)res->ai_addrlen : 0;
	if (len)
		memcpy(ss, res->ai_addr, len);
	freeaddrinfo(res);
	return len;
}

static void thing_init(struct egress_thing *th, const struct egress_pool *p,
                       struct egress_pool *pool, size_t server, size_t psrc, bool up)
{
	health_init(&th->h, p->hc.failure_threshold, p->hc.success_threshold, timer_now_ms());
	atomic_init(&th->up, up);
	th->pool = pool;
	th->server = server;
	th->psrc = psrc;
}

static const struct egress_pool *pool_by_id(const struct egress_tab *t, const char *id)
{
	for (size_t i = 0; t && i < t->npools; i++)
		if (strcmp(t->pools[i].id, id) == 0)
			return &t->pools[i];
	return NULL;
}

static const struct egress_server *server_by_text(const struct egress_pool *p, const char *text)
{
	for (size_t i = 0; p && i < p->nservers; i++)
		if (strcmp(p->servers[i].text, text) == 0)
			return &p->servers[i];
	return NULL;
}

static size_t psrc_by_label(const struct egress_pool *p, const char *label)
{
	for (size_t i = 0; p && i < p->nsrc; i++)
		if (strcmp(p->srcs[i].label, label) == 0)
			return i;
	return EGRESS_NONE;
}

/* The pool's distinct sources: those of every transport that names it. */
static int pool_sources(const struct config *c, struct egress_pool *p)
{
	size_t cap = 0;
	for (size_t i = 0; i < c->ntransports; i++)
		if (c->transports[i].proxy_pool && strcmp(c->transports[i].proxy_pool, p->id) == 0)
			cap += c->transports[i].nsources;
	p->srcs = calloc(cap ? cap : 1, sizeof *p->srcs);
	if (!p->srcs)
		return -1;
	for (size_t i = 0; i < c->ntransports; i++) {
		const struct config_transport *t = &c->transports[i];
		if (!t->proxy_pool || strcmp(t->proxy_pool, p->id) != 0)
			continue;
		for (size_t k = 0; k < t->nsources; k++) {
			char label[EGRESS_LABEL_MAX];
			label_of(&t->sources[k], label);
			if (psrc_by_label(p, label) != EGRESS_NONE)
				continue;
			struct egress_psrc *s = &p->srcs[p->nsrc++];
			source_of(&t->sources[k], &s->src);
			memcpy(s->label, label, sizeof label);
		}
	}
	return 0;
}

static int pool_build(const struct config *c, const struct config_proxy_pool *cp,
                      struct egress_pool *p, const struct egress_tab *old)
{
	p->id = strdup(cp->id);
	p->version = cp->version;
	p->hc = cp->health_check;
	p->hc.probe = NULL;
	if (cp->health_check.probe)
		p->has_probe = resolve(cp->health_check.probe, &p->probe_ss) > 0;
	p->servers = calloc(cp->nservers, sizeof *p->servers);
	if (!p->id || !p->servers || pool_sources(c, p) < 0)
		return -1;
	p->nservers = cp->nservers;
	const struct egress_pool *op = pool_by_id(old, p->id);
	for (size_t i = 0; i < cp->nservers; i++) {
		struct egress_server *s = &p->servers[i];
		if (!(s->text = strdup(cp->servers[i])))
			return -1;
		for (size_t k = 0; k < i && !s->again; k++)
			s->again = strcmp(p->servers[k].text, s->text) == 0;
		s->len = resolve(s->text, &s->ss);
		if (!s->len)
			log_warn("event=proxy_server_unresolved pool=%s server=%s note=\"down until a "
			         "reload resolves it\"", p->id, s->text);
		const struct egress_server *os = server_by_text(op, s->text);
		thing_init(&s->st, p, p, i, EGRESS_NONE, s->len && (!os || atomic_load(&os->st.up)));
		if (!p->has_probe)
			continue;
		if (!(s->pairs = calloc(p->nsrc ? p->nsrc : 1, sizeof *s->pairs)))
			return -1;
		for (size_t k = 0; k < p->nsrc; k++) {
			size_t ok = os && op->has_probe ? psrc_by_label(op, p->srcs[k].label) : EGRESS_NONE;
			bool up = ok == EGRESS_NONE || atomic_load(&os->pairs[ok].up);
			thing_init(&s->pairs[k], p, p, i, k, up);
		}
	}
	return 0;
}

static int transport_build(struct egress_tab *tab, const struct config_transport *ct,
                           struct egress_transport *t)
{
	t->tab = tab;
	t->id = strdup(ct->id);
	t->failover = ct->source_failover;
	t->srcs = calloc(ct->nsources ? ct->nsources : 1, sizeof *t->srcs);
	t->src = calloc(ct->nsources ? ct->nsources : 1, sizeof *t->src);
	t->bypass = calloc(ct->nproxy_bypass_domains ? ct->nproxy_bypass_domains : 1, sizeof *t->bypass);
	if (!t->id || !t->srcs || !t->src || !t->bypass)
		return -1;
	for (size_t i = 0; ct->proxy_pool && i < tab->npools; i++)
		if (strcmp(tab->pools[i].id, ct->proxy_pool) == 0)
			t->pool = &tab->pools[i];
	for (size_t k = 0; k < ct->nsources; k++) {
		struct egress_tsrc *s = &t->srcs[k];
		const struct config_source *cs = &ct->sources[k];
		source_of(cs, &s->src);
		t->src[k] = s->src;
		label_of(cs, s->label);
		if (cs->helo && !(s->helo = strdup(cs->helo)))
			return -1;
		s->psrc = t->pool ? psrc_by_label(t->pool, s->label) : EGRESS_NONE;
		t->nsrc++;
	}
	for (size_t k = 0; k < ct->nproxy_bypass_domains; k++) {
		if (!(t->bypass[k] = strdup(ct->proxy_bypass_domains[k])))
			return -1;
		t->nbypass++;
	}
	return 0;
}

static void tab_free(struct egress_tab *t)
{
	if (!t)
		return;
	for (size_t i = 0; t->pools && i < t->npools; i++) {
		struct egress_pool *p = &t->pools[i];
		for (size_t k = 0; p->servers && k < p->nservers; k++) {
			free(p->servers[k].text);
			free(p->servers[k].pairs);
		}
		free(p->servers);
		free(p->srcs);
		free(p->id);
	}
	for (size_t i = 0; t->tr && i < t->ntr; i++) {
		struct egress_transport *x = &t->tr[i];
		for (size_t k = 0; k < x->nsrc; k++)
			free(x->srcs[k].helo);
		for (size_t k = 0; k < x->nbypass; k++)
			free(x->bypass[k]);
		free(x->srcs);
		free(x->src);
		free(x->bypass);
		free(x->id);
	}
	free(t->pools);
	free(t->tr);
	free(t);
}

struct egress_tab *egress_build(const struct config *c, uint64_t generation,
                                const struct egress_tab *old)
{
	struct egress_tab *t = calloc(1, sizeof *t);
	if (!t)
		return NULL;
	t->generation = generation;
	t->pools = calloc(c->nproxy_pools ? c->nproxy_pools : 1, sizeof *t->pools);
	t->tr = calloc(c->ntransports ? c->ntransports : 1, sizeof *t->tr);
	if (!t->pools || !t->tr)
		goto fail;
	for (size_t i = 0; i < c->nproxy_pools; i++) {
		t->npools++;
		if (pool_build(c, &c->proxy_pools[i], &t->pools[i], old) < 0)
			goto fail;
	}
	for (size_t i = 0; i < c->ntransports; i++) {
		t->ntr++;
		if (transport_build(t, &c->transports[i], &t->tr[i]) < 0)
			goto fail;
	}
	return t;
fail:
	tab_free(t);
	return NULL;
}

void egress_publish(struct egress_rt *rt, struct egress_tab *t)
{
	struct egress_tab *old = atomic_load(&rt->tab);
	t->older = old;
	atomic_store_explicit(&rt->tab, t, memory_order_release);
	atomic_fetch_add(&rt->epoch, 1);
}

void egress_fini(struct egress_rt *rt)
{
	struct egress_tab *t = atomic_load(&rt->tab);
	atomic_store(&rt->tab, NULL);
	while (t) {
		struct egress_tab *older = t->older;
		tab_free(t);
		t = older;
	}
}

/* ---- lookups (any worker) ------------------------------------------------------------ */

const struct egress_transport *egress_transport(const struct egress_tab *t, const char *id)
{
	for (size_t i = 0; t && i < t->ntr; i++)
		if (strcmp(t->tr[i].id, id) == 0)
			return &t->tr[i];
	return NULL;
}

size_t egress_source_find(const struct egress_transport *t, const char *label)
{
	for (size_t i = 0; t && i < t->nsrc; i++)
		if (strcmp(t->srcs[i].label, label) == 0)
			return i;
	return EGRESS_NONE;
}

static bool thing_up(const struct egress_thing *th)
{
	return atomic_load_explicit(&th->up, memory_order_relaxed);
}

bool egress_server_usable(const struct egress_transport *t, size_t j, size_t i)
{
	const struct egress_server *s = &t->pool->servers[j];
	if (!s->len || !thing_up(&s->st))
		return false;
	if (t->pool->has_probe && i != EGRESS_NONE && t->srcs[i].psrc != EGRESS_NONE)
		return thing_up(&s->pairs[t->srcs[i].psrc]);
	return true;
}

bool egress_source_usable(const struct egress_transport *t, size_t i)
{
	if (!t->pool)
		return true;
	for (size_t j = 0; j < t->pool->nservers; j++)
		if (egress_server_usable(t, j, i))
			return true;
	return false;
}

size_t egress_server_pick(const struct egress_transport *t, size_t i, uint32_t *rotor)
{
	size_t n = t->pool->nservers;          /* <= CONFIG_POOL_SERVERS_MAX */
	bool ok[n ? n : 1];
	for (size_t j = 0; j < n; j++)
		ok[j] = egress_server_usable(t, j, i);
	return egress_rr(ok, n, rotor);
}

size_t egress_servers_usable(const struct egress_transport *t, size_t i)
{
	size_t k = 0;
	for (size_t j = 0; t->pool && j < t->pool->nservers; j++)
		k += egress_server_usable(t, j, i);
	return k;
}

bool egress_bypass(const struct egress_transport *t, const char *domain)
{
	size_t dl = strlen(domain);
	for (size_t k = 0; k < t->nbypass; k++) {
		const char *b = t->bypass[k];
		if (strcmp(b, "*") == 0 || strcasecmp(b, domain) == 0)
			return true;
		size_t bl = strlen(b);
		if (bl > 2 && b[0] == '*' && b[1] == '.' && dl > bl - 1 &&
		    strcasecmp(domain + dl - (bl - 1), b + 1) == 0)
			return true;
	}
	return false;
}

unsigned egress_fam_of(const struct sockaddr_storage *ss)
{
	return ss->ss_family == AF_INET ? EGRESS_V4 : ss->ss_family == AF_INET6 ? EGRESS_V6 : 0;
}

/* ---- health results (the checker) ---------------------------------------------------- */

static uint32_t ck_rand(struct egress_rt *rt)
{
	rt->ck_rnd = rt->ck_rnd * 6364136223846793005ull + 1442695040888963407ull;
	return (uint32_t)(rt->ck_rnd >> 33);
}

static void thing_log(const struct egress_thing *th, const char *why)
{
	const struct egress_pool *p = th->pool;
	char reason[80] = "";
	uint64_t now = timer_now_ms();
	uint64_t since_s = (uint64_t)time(NULL) - (now - th->h.since_ms) / 1000u;
	if (!th->h.up) {
		char r[64];
		health_reason_fmt(r, sizeof r, th->h.reason, th->h.code);
		snprintf(reason, sizeof reason, " reason=\"%s\"", r);
	}
	char line[600];
	snprintf(line, sizeof line, "event=proxy_state pool=%s server=%s source=%s state=%s "
	         "since=%llu fails=%llu checks=%llu%s%s", p->id, p->servers[th->server].text,
	         th->psrc == EGRESS_NONE ? "-" : p->srcs[th->psrc].label, th->h.up ? "up" : "down",
	         (unsigned long long)since_s, (unsigned long long)th->h.fails,
	         (unsigned long long)th->h.checks, reason, why);
	if (th->h.up)
		log_info("%s", line);
	else
		log_warn("%s", line);
}

static const char *const check_names[EGRESS_CHECK_N] = {
	[EGRESS_CHECK_PROBE] = "probe", [EGRESS_CHECK_TARGET_DOWN] = "probe_target_down",
	[EGRESS_CHECK_DELIVERY] = "delivery", [EGRESS_CHECK_UNCLEAR] = "delivery_unclear",
	[EGRESS_CHECK_CUT] = "delivery_cut",
};

const char *egress_check_str(enum egress_check c)
{
	return (unsigned)c < EGRESS_CHECK_N ? check_names[c] : "?";
}

/* One more failure of th (the checker's thread only: a plain add, published with a
 * relaxed store for the readers). No reason is taken as HEALTH_R_ERROR, as proto/health
 * does. */
static void thing_count(struct egress_thing *th, enum egress_check check,
                        enum health_reason reason)
{
	unsigned r = reason > HEALTH_R_NONE && reason < EGRESS_REASONS ? reason : HEALTH_R_ERROR;
	uint64_t *v = &th->fails[check][r];
	__atomic_store_n(v, *v + 1, __ATOMIC_RELAXED);
}

uint64_t egress_fails(const struct egress_thing *th, enum egress_check check,
                      enum health_reason reason)
{
	return __atomic_load_n(&th->fails[check][reason], __ATOMIC_RELAXED);
}

/* A state changed (or not): published, logged. */
static void thing_changed(struct egress_rt *rt, struct egress_thing *th, enum health_change ch,
                          bool passive)
{
	if (ch == HEALTH_SAME)
		return;
	atomic_store_explicit(&th->up, ch == HEALTH_WENT_UP, memory_order_release);
	atomic_fetch_add(&rt->epoch, 1);
	thing_log(th, passive ? " by=delivery" : " by=probe");
}

/* What a delivery connection said of th (egress_passive). */
static void thing_passive(struct egress_rt *rt, struct egress_thing *th,
                          enum egress_passive_kind kind, uint64_t dest,
                          enum health_reason reason, int code)
{
	uint64_t now = timer_now_ms();
	enum health_change ch = HEALTH_SAME;
	switch (kind) {
	case EGRESS_PASSIVE_OK:
		ch = health_passive_ok(&th->h, now);
		break;
	case EGRESS_PASSIVE_DONE:
		health_passive_done(&th->h);
		break;
	case EGRESS_PASSIVE_FAIL:
		thing_count(th, EGRESS_CHECK_DELIVERY, reason);
		ch = health_passive_fail(&th->h, reason, code, now);
		break;
	case EGRESS_PASSIVE_UNCLEAR:
		thing_count(th, EGRESS_CHECK_UNCLEAR, reason);
		ch = health_passive_unclear(&th->h, reason, code, dest, now);
		break;
	case EGRESS_PASSIVE_CUT:
		thing_count(th, EGRESS_CHECK_CUT, HEALTH_R_CUT);
		ch = health_passive_cut(&th->h, code, dest, now);
		break;
	}
	thing_changed(rt, th, ch, true);
}

/* A probe's result: ok, or a failure with its reason and code. */
static void thing_probed(struct egress_rt *rt, struct egress_thing *th, bool ok,
                         enum health_reason reason, int code)
{
	uint64_t now = timer_now_ms();
	if (!ok)
		thing_count(th, EGRESS_CHECK_PROBE, reason);
	thing_changed(rt, th, ok ? health_probe_ok(&th->h, now)
	                         : health_probe_fail(&th->h, reason, code, now), false);
}

struct passive_letter {
	struct net_letter l;
	struct egress_tab *tab;
	size_t pool, server, psrc;
	enum egress_passive_kind kind;
	uint64_t dest;
	enum health_reason reason;
	int code;
};

static void passive_apply(struct egress_rt *rt, const struct passive_letter *r)
{
	if (r->tab != rt->ck_tab || rt->ck_stopping)
		return;                        /* a table the checker no longer (or not yet) keeps */
	struct egress_server *s = &r->tab->pools[r->pool].servers[r->server];
	struct egress_thing *th = r->psrc != EGRESS_NONE && s->pairs ? &s->pairs[r->psrc] : &s->st;
	thing_passive(rt, th, r->kind, r->dest, r->reason, r->code);
}

void egress_passive(struct worker *w, const struct egress_transport *t, size_t server,
                    size_t i, enum egress_passive_kind kind, uint64_t dest,
                    enum health_reason reason, int code)
{
	struct egress_rt *rt = &w->srv->egress;
	if (!t->pool)
		return;
	size_t pool = (size_t)(t->pool - t->tab->pools);
	size_t psrc = i != EGRESS_NONE && t->pool->has_probe ? t->srcs[i].psrc : EGRESS_NONE;
	struct passive_letter r = { .tab = t->tab, .pool = pool, .server = server, .psrc = psrc,
	                            .kind = kind, .dest = dest, .reason = reason,
	                            .code = code };
	if (w->id == 0) {
		passive_apply(rt, &r);
		return;
	}
	if (w->queue.stopping || !atomic_load(&w->srv->all_up))
		return;                        /* (worker 0 may be gone, or not yet listening) */
	struct passive_letter *pl = calloc(1, sizeof *pl);
	if (!pl)
		return;
	*pl = r;
	net_post(&w->loop, &w->srv->office, &w->srv->workers[0].loop, EGRESS_OP_PASSIVE, &pl->l);
}

static void on_passive(struct net_loop *l, struct net_op *op, int res, unsigned flags)
{
	(void)res;
	(void)flags;
	struct worker *w = (struct worker *)((char *)l - offsetof(struct worker, loop));
	struct passive_letter *pl =
	        (struct passive_letter *)((char *)op - offsetof(struct passive_letter, l.op));
	passive_apply(&w->srv->egress, pl);
	free(pl);
}

void egress_worker_init(struct worker *w)
{
	net_loop_handle(&w->loop, EGRESS_OP_PASSIVE, on_passive);
}

/* ---- probes --------------------------------------------------------------------------- */

struct egress_probe {
	struct net_stream s;
	struct egress_rt *rt;
	struct egress_tab *tab;
	struct egress_thing *th;
	struct timer deadline;             /* every tick until the timeout (see probe_tick) */
	uint64_t until_ms;                 /* the timeout */
	size_t hlen;                       /* the header's octets */
	bool done, pair;
	char line[4];
	size_t got;
};

/* A pair probe's result: does it say something about the pair? A 220, a refused connect
 * (the proxy's) or another greeting (the target answered through it) does. A connection
 * that reached the proxy and then closed or timed out with no greeting may be the pair's
 * doing (a source the proxy cannot bind) or the probe target's (down): it counts only
 * while the target is known to answer — some pair of the pool got its 220 within the
 * last two intervals and a timeout — so that a probe target that is down does not take
 * every pair, and with them all mail, down. Logged once each way per pool. */
static const char *ss_text(const struct sockaddr_storage *ss, char *out, size_t cap)
{
	listener_fmt((const struct sockaddr *)ss, out, cap);
	return out;
}

static bool probe_target_alive(struct egress_rt *rt, struct egress_thing *th, bool ok,
                               enum health_reason reason)
{
	struct egress_pool *pool = th->pool;
	uint64_t now = rt->ck_w->loop.now_ms;
	char tgt[INET6_ADDRSTRLEN + 16];
	if (ok || reason == HEALTH_R_GREETING) {      /* the target answered through it */
		pool->probe_ok_ms = now;
		if (pool->probe_target_down) {
			pool->probe_target_down = false;
			log_info("event=probe_target_ok pool=%s target=%s", pool->id,
			         ss_text(&pool->probe_ss, tgt, sizeof tgt));
		}
		return true;
	}
	if (reason != HEALTH_R_CLOSED && reason != HEALTH_R_TIMEOUT)
		return true;
	uint64_t window = 2u * pool->hc.interval * 1000u + pool->hc.timeout * 1000u;
	if (pool->probe_ok_ms && now - pool->probe_ok_ms <= window)
		return true;
	if (!pool->probe_target_down) {
		pool->probe_target_down = true;
		log_warn("event=probe_target_unreachable pool=%s target=%s note=\"no pair got a 220 "
		         "from it lately: pair probes that get no greeting are not counted against the "
		         "pairs until one does; deliveries still count\"", pool->id,
		         ss_text(&pool->probe_ss, tgt, sizeof tgt));
	}
	return false;
}

static void probe_end(struct egress_probe *p, bool ok, enum health_reason reason, int code)
{
	if (p->done)
		return;
	p->done = true;
	timer_cancel(&p->deadline);
	if (p->th->running == p)
		p->th->running = NULL;
	if (p->tab != p->rt->ck_tab || p->rt->ck_stopping)
		return;
	if (p->pair && !probe_target_alive(p->rt, p->th, ok, reason)) {
		thing_count(p->th, EGRESS_CHECK_TARGET_DOWN, reason);
		return;                        /* the target's failure, not the pair's */
	}
	thing_probed(p->rt, p->th, ok, reason, code);
	if (p->pair && ok)
		health_forwarded(&p->th->h);   /* a 220 came through it */
}

static struct egress_probe *probe_of(struct net_stream *s)
{
	return (struct egress_probe *)((char *)s - offsetof(struct egress_probe, s));
}

static size_t probe_input(struct net_stream *s, const uint8_t *b, size_t n)
{
	struct egress_probe *p = probe_of(s);
	if (p->done || !p->pair)
		return n;
	for (size_t i = 0; i < n && p->got < 3; i++)
		p->line[p->got++] = (char)b[i];
	if (p->got < 3)
		return n;
	int code = atoi(p->line);
	bool ok = memcmp(p->line, "220", 3) == 0;
	probe_end(p, ok, HEALTH_R_GREETING, code);
	net_stream_write(s, "QUIT\r\n", 6);
	net_stream_close(s);
	return n;
}

static enum health_reason reason_of(int res)
{
	switch (res) {
	case -ECONNREFUSED:
		return HEALTH_R_REFUSED;
	case -ETIMEDOUT:
		return HEALTH_R_TIMEOUT;
	case 0:
	case -ECONNRESET:
	case -EPIPE:
		return HEALTH_R_CLOSED;
	default:
		return HEALTH_R_ERROR;
	}
}

static void probe_lost(struct net_stream *s, int res)
{
	struct egress_probe *p = probe_of(s);
	if (!p->pair && s->out_total >= p->hlen && res == 0)
		probe_end(p, true, HEALTH_R_NONE, 0);  /* connected, header out, then closed */
	else
		probe_end(p, false, reason_of(res), res < 0 ? -res : 0);
}

static void probe_release(struct net_stream *s)
{
	struct egress_probe *p = probe_of(s);
	if (!p->done)
		probe_end(p, false, HEALTH_R_CLOSED, 0);
	timer_cancel(&p->deadline);
	p->rt->ck_probes--;
	free(p);
}

static const struct net_stream_ops probe_ops = {
	.input = probe_input,
	.lost = probe_lost,
	.release = probe_release,
};

/* Every tick of the wheel: a server probe passes once its header went out (the connect
 * worked: a send completes only on a connected socket), then closes; a refused connect
 * comes through lost(). Past the timeout, any probe fails. */
static void probe_tick(struct timer *t)
{
	struct egress_probe *p = (struct egress_probe *)((char *)t - offsetof(struct egress_probe, deadline));
	struct net_loop *l = p->s.loop;
	if (!p->pair && p->s.out_total >= p->hlen) {
		probe_end(p, true, HEALTH_R_NONE, 0);
		net_stream_close(&p->s);
		return;
	}
	if (l->now_ms >= p->until_ms) {
		probe_end(p, false, HEALTH_R_TIMEOUT, 0);
		net_stream_abort(&p->s);
		return;
	}
	timer_arm(&l->wheel, &p->deadline, TIMER_TICK_MS);
}

static void pp_addr_of(const struct sockaddr_storage *ss, struct pp_addr *a)
{
	memset(a, 0, sizeof *a);
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *v = (const void *)ss;
		memcpy(a->ip, &v->sin_addr, 4);
		a->port = ntohs(v->sin_port);
	} else {
		const struct sockaddr_in6 *v = (const void *)ss;
		memcpy(a->ip, &v->sin6_addr, 16);
		a->port = ntohs(v->sin6_port);
	}
}

size_t egress_header(const struct egress_pool *p, const struct egress_source *src,
                     const struct sockaddr_storage *dst, uint8_t *out, size_t cap)
{
	unsigned fam = dst ? egress_fam_of(dst) : 0;
	const uint8_t *a = src && fam ? egress_source_addr(src, fam) : NULL;
	struct pp_addr s = { 0 }, d = { 0 };
	enum pp_family f = PP_AF_UNSPEC;
	if (a) {
		f = fam == EGRESS_V4 ? PP_AF_INET : PP_AF_INET6;
		memcpy(s.ip, a, fam == EGRESS_V4 ? 4 : 16);
		pp_addr_of(dst, &d);
	}
	if (p->version == 1)
		return pp_build_v1(out, cap, f, &s, &d);
	return pp_build_v2(out, cap, f == PP_AF_UNSPEC, f, &s, &d, NULL, 0, false);
}

static void probe_start(struct egress_rt *rt, struct egress_thing *th)
{
	struct egress_pool *pool = th->pool;
	struct egress_server *sv = &pool->servers[th->server];
	struct worker *w = rt->ck_w;
	uint32_t ims = pool->hc.interval * 1000u, tms = pool->hc.timeout * 1000u;
	timer_arm(&w->loop.wheel, &th->t, health_next_ms(ims, tms, ck_rand(rt)));
	if (th->running || !sv->len)
		return;                        /* the last one is still out (or no address) */
	bool pair = th->psrc != EGRESS_NONE;
	const struct egress_source *src = pair ? &pool->srcs[th->psrc].src : NULL;
	if (pair && !egress_source_addr(src, egress_fam_of(&pool->probe_ss))) {
		probe_end(&(struct egress_probe){ .rt = rt, .tab = rt->ck_tab, .th = th }, true,
		          HEALTH_R_NONE, 0);   /* no address of the probe's family: not probed */
		return;
	}
	uint8_t hdr[PP_V1_MAX + 16];
	size_t hl = egress_header(pool, src, pair ? &pool->probe_ss : NULL, hdr, sizeof hdr);
	int fd = net_connect_start(&sv->ss, sv->len, NULL, 0);
	struct egress_probe *p = fd >= 0 ? calloc(1, sizeof *p) : NULL;
	if (!p) {
		if (fd >= 0)
			close(fd);
		struct egress_probe tmp = { .rt = rt, .tab = rt->ck_tab, .th = th };
		probe_end(&tmp, false, reason_of(fd < 0 ? fd : -ENOMEM), fd < 0 ? -fd : ENOMEM);
		return;
	}
	p->rt = rt;
	p->tab = rt->ck_tab;
	p->th = th;
	p->pair = pair;
	p->deadline.fire = probe_tick;
	p->hlen = hl;
	p->until_ms = w->loop.now_ms + tms;
	th->running = p;
	rt->ck_probes++;
	net_stream_init(&p->s, &w->loop, fd, &probe_ops);
	net_stream_write(&p->s, hdr, hl);
	net_stream_start(&p->s);
	timer_arm(&w->loop.wheel, &p->deadline, TIMER_TICK_MS);
}

static struct egress_rt *ck_rt;        /* the checker's (one per process, on worker 0) */

static void on_probe_timer(struct timer *t)
{
	struct egress_thing *th = (struct egress_thing *)((char *)t - offsetof(struct egress_thing, t));
	if (ck_rt && !ck_rt->ck_stopping)
		probe_start(ck_rt, th);
}

static void each_thing(struct egress_tab *t, void (*fn)(struct egress_thing *, void *), void *ctx)
{
	for (size_t i = 0; t && i < t->npools; i++) {
		struct egress_pool *p = &t->pools[i];
		for (size_t k = 0; k < p->nservers; k++) {
			fn(&p->servers[k].st, ctx);
			for (size_t j = 0; p->servers[k].pairs && j < p->nsrc; j++)
				fn(&p->servers[k].pairs[j], ctx);
		}
	}
}

static void thing_cancel(struct egress_thing *th, void *ctx)
{
	(void)ctx;
	timer_cancel(&th->t);
}

static void thing_log_cb(struct egress_thing *th, void *ctx)
{
	(void)ctx;
	thing_log(th, "");
}

/* A new table: each thing takes over the state of its namesake in the old one. */
static void thing_adopt(struct egress_thing *th, void *ctx)
{
	struct egress_rt *rt = ctx;
	const struct egress_pool *op = pool_by_id(rt->ck_tab, th->pool->id);
	const struct egress_server *os = server_by_text(op, th->pool->servers[th->server].text);
	const struct egress_thing *old = NULL;
	if (os && th->psrc == EGRESS_NONE)
		old = &os->st;
	else if (os && os->pairs) {
		size_t k = psrc_by_label(op, th->pool->srcs[th->psrc].label);
		old = k != EGRESS_NONE ? &os->pairs[k] : NULL;
	}
	if (old) {
		th->h = old->h;
		memcpy(th->fails, old->fails, sizeof th->fails);   /* (ours alone: no reader yet) */
		health_set_thresholds(&th->h, th->pool->hc.failure_threshold,
		                      th->pool->hc.success_threshold);
		atomic_store(&th->up, th->h.up);
	}
	th->t.fire = on_probe_timer;
	uint32_t ims = th->pool->hc.interval * 1000u;
	timer_arm(&rt->ck_w->loop.wheel, &th->t, health_first_ms(ims, ck_rand(rt)));
}

void egress_checker_turn(struct worker *w)
{
	struct egress_rt *rt = &w->srv->egress;
	if (rt->ck_stopping)
		return;
	if (!rt->ck_w) {
		rt->ck_w = w;
		rt->ck_rnd = (uint64_t)timer_now_ms() ^ (uint64_t)(uintptr_t)rt;
		ck_rt = rt;
		rt->ck_next_log_ms = w->loop.now_ms + EGRESS_LOG_EVERY_MS;
	}
	struct egress_tab *t = egress_now(rt);
	if (t != rt->ck_tab) {
		each_thing(rt->ck_tab, thing_cancel, NULL);
		each_thing(t, thing_adopt, rt);
		rt->ck_tab = t;
		atomic_store_explicit(&rt->ck_pub, t, memory_order_release);
		atomic_fetch_add(&rt->epoch, 1);
		each_thing(t, thing_log_cb, NULL);
	}
	if (w->loop.now_ms >= rt->ck_next_log_ms) {
		rt->ck_next_log_ms = w->loop.now_ms + EGRESS_LOG_EVERY_MS;
		each_thing(t, thing_log_cb, NULL);
	}
}

void egress_checker_stop(struct worker *w)
{
	struct egress_rt *rt = &w->srv->egress;
	rt->ck_stopping = true;
	each_thing(rt->ck_tab, thing_cancel, NULL);
	for (size_t i = 0; rt->ck_tab && i < rt->ck_tab->npools; i++) {
		struct egress_pool *p = &rt->ck_tab->pools[i];
		for (size_t k = 0; k < p->nservers; k++) {
			struct egress_server *s = &p->servers[k];
			for (size_t j = 0; j <= p->nsrc; j++) {
				struct egress_thing *th = j == p->nsrc ? &s->st : s->pairs ? &s->pairs[j] : NULL;
				if (th && th->running) {
					struct egress_probe *pr = th->running;
					probe_end(pr, false, HEALTH_R_NONE, 0);
					net_stream_abort(&pr->s);
				}
			}
		}
	}
}

void egress_each(struct egress_rt *rt, void (*fn)(void *ctx, const struct egress_view *v),
                 void *ctx)
{
	const struct egress_tab *t = atomic_load_explicit(&rt->ck_pub, memory_order_acquire);
	for (size_t i = 0; t && i < t->npools; i++) {
		const struct egress_pool *p = &t->pools[i];
		for (size_t k = 0; k < p->nservers; k++) {
			const struct egress_server *sv = &p->servers[k];
			if (sv->again)
				continue;
			struct egress_view v = { .pool = p->id, .server = sv->text, .th = &sv->st,
			                         .up = thing_up(&sv->st) };
			fn(ctx, &v);
			for (size_t j = 0; sv->pairs && j < p->nsrc; j++) {
				v.source = p->srcs[j].label;
				v.th = &sv->pairs[j];
				v.up = thing_up(v.th);
				fn(ctx, &v);
			}
		}
	}
}

bool egress_checker_idle(struct worker *w)
{
	return w->srv->egress.ck_probes == 0;
}
