/* core/metrics — see metrics.h. */
#include "core/metrics.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/deliver.h"
#include "core/ops.h"
#include "core/worker.h"
#include "net/buf.h"

#include "core/version.h"
#define METRICS_VERSION RINGRELAY_VERSION
#define METRICS_STR_(x) #x
#define METRICS_STR(x) METRICS_STR_(x)

const uint64_t stats_commit_le_us[STATS_COMMIT_BUCKETS] = {
	250, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000, 250000, 500000, 1000000,
};
const uint64_t stats_batch_le[STATS_BATCH_BUCKETS] = { 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000 };

/* ---- the worker's side: site slots ----------------------------------------------------- *
 *
 * The labels. A site is labelled by its transport and its site key without the transport
 * and without "|source" or "|direct" (so the sources of one site share its series). The
 * first max_sites distinct labels a worker sees with results or ready jobs get a slot of
 * their own for the life of the process; every site that comes after goes to its
 * transport's "other" row, for good. A slot adds up the results of the sites it stands
 * for, each of which only grows, so every published counter only grows.
 *
 * The copy. Slots and rows are append-only (core/stats: their labels are written before
 * their count is published with a release store, and never change), so the metrics thread
 * reads labels whole without a lock or a retry, and numbers with relaxed loads like every
 * other counter: a scrape may see one slot's figures of one publication and another's of
 * the next, which Prometheus's counters allow. */

static void label_copy(char *dst, size_t cap, const char *src, size_t len)
{
	if (len >= cap) {                  /* cut, but not inside a UTF-8 character: a label
	                                      value must be valid UTF-8 (else the whole scrape
	                                      is refused) */
		len = cap - 1;
		while (len > 0 && ((uint8_t)src[len] & 0xC0) == 0x80)
			len--;
	}
	memcpy(dst, src, len);
	dst[len] = '\0';
}

/* s's labels: its transport, and its key's "sitekey" (of "transport/sitekey|..."). */
static void site_labels(const struct queue_site *s, char *tr, char *site)
{
	size_t tl = strlen(s->transport), off = 0;
	if (s->base_len > tl && strncmp(s->key, s->transport, tl) == 0 && s->key[tl] == '/')
		off = tl + 1;
	label_copy(tr, STATS_TRANSPORT_LEN, s->transport, tl);
	label_copy(site, STATS_SITE_LEN, s->key + off, s->base_len - off);
}

/* Find or append the slot labelled (tr, site) among n of slots[0..max): its index, or -1
 * when it is not there and there is no room. */
static int slot_get(struct stats_site *slots, uint64_t *count, unsigned max, const char *tr,
                    const char *site)
{
	unsigned n = (unsigned)*count;                /* (the writer's own: no need to load) */
	for (unsigned i = 0; i < n; i++)
		if (strcmp(slots[i].transport, tr) == 0 && strcmp(slots[i].site, site) == 0)
			return (int)i;
	if (n >= max)
		return -1;
	label_copy(slots[n].transport, STATS_TRANSPORT_LEN, tr, strlen(tr));
	label_copy(slots[n].site, STATS_SITE_LEN, site, strlen(site));
	stats_count_put(count, n + 1);
	return (int)n;
}

/* Where the results of a site first seen active go: its own slot, or its transport's
 * "other" row (past STATS_OTHERS - 1 transports, the shared last row, transport "other"). */
static int16_t site_assign(struct worker *w, const struct queue_site *s)
{
	struct wstats *o = &w->stats;
	char tr[STATS_TRANSPORT_LEN], site[STATS_SITE_LEN];
	site_labels(s, tr, site);
	int k = slot_get(o->sites, &o->nsites, w->metrics.max_sites, tr, site);
	if (k >= 0)
		return (int16_t)k;
	k = slot_get(o->others, &o->nothers, STATS_OTHERS - 1, tr, "other");
	if (k < 0)
		k = slot_get(o->others, &o->nothers, STATS_OTHERS, "other", "other");
	return (int16_t)(-1 - k);
}

/* A published counter that must never go back: a site that went away (which the queue
 * does not do today) would take its results with it. */
static void put_counter(uint64_t *v, uint64_t n)
{
	if (n > stats_get(v))
		stats_put(v, n);
}

/* Know the sites added since the last look (at the head of the list). If the list changed
 * any other way, start again: sites are matched to their slots by label then. */
static bool sites_sync(struct metrics_worker *m, const struct queue_site *head)
{
	size_t fresh = 0, len = 0;
	bool found = false;
	for (const struct queue_site *s = head; s; s = s->next, len++) {
		if (s == m->head && m->head)
			found = true;
		fresh += !found;
	}
	if (!found || len != m->nseen + fresh) {
		m->nseen = 0;
		fresh = len;
	}
	if (m->nseen + fresh > m->cap) {
		size_t cap = m->cap ? m->cap : 64;
		while (cap < m->nseen + fresh)
			cap *= 2;
		int16_t *p = realloc(m->slot, cap * sizeof *p);
		if (!p)
			return false;                         /* next time */
		m->slot = p;
		m->cap = cap;
	}
	for (size_t i = m->nseen; i < m->nseen + fresh; i++)
		m->slot[i] = METRICS_UNSET;
	m->nseen += fresh;
	m->head = head;
	return true;
}

/* Hash buckets of the queue's census per publication: the whole queue in 50 of them
 * (5 s), whatever its size (core/queue: queue_census_step). */
#define METRICS_CENSUS_BUCKETS ((QUEUE_HASH + 49u) / 50u)

/* The worker's settings, the first time: the defaults, or (a test build) what the
 * environment says. */
static void metrics_settings(struct metrics_worker *m)
{
	m->max_sites = STATS_SITES;
	m->census_buckets = METRICS_CENSUS_BUCKETS;
#ifdef RR_TEST_BUILD
	const char *e = getenv("RR_TEST_METRICS_SITES");
	if (e && atoi(e) > 0 && (unsigned)atoi(e) < STATS_SITES)
		m->max_sites = (unsigned)atoi(e);
	e = getenv("RR_TEST_METRICS_CENSUS");
	if (e && atoi(e) > 0 && (unsigned)atoi(e) <= QUEUE_HASH)
		m->census_buckets = (unsigned)atoi(e);
#endif
}

static void publish_census(struct worker *w)
{
	struct queue *q = &w->queue;
	struct wstats *o = &w->stats;
	queue_census_step(q, w->metrics.census_buckets);
	if (!q->census_done)
		return;
	stats_put(&o->rcpt_scheduled, q->census.scheduled);
	stats_put(&o->rcpt_held, q->census.held);
	stats_put(&o->rcpt_busy, q->census.busy);
	stats_put(&o->census, 1);
}

static void publish_sites(struct worker *w)
{
	struct metrics_worker *m = &w->metrics;
	struct wstats *o = &w->stats;
	if (!sites_sync(m, w->queue.sites))
		return;
	uint64_t res[STATS_SITES + STATS_OTHERS][STATS_RESULT_N], ready[STATS_SITES + STATS_OTHERS];
	uint64_t ready_all = 0;
	memset(res, 0, sizeof res);
	memset(ready, 0, sizeof ready);
	size_t ord = m->nseen;
	for (const struct queue_site *s = w->queue.sites; s; s = s->next) {
		int16_t *slot = &m->slot[--ord];
		ready_all += s->nready;
		if (*slot == METRICS_UNSET) {
			if (!s->nready && !s->results[0] && !s->results[1] && !s->results[2])
				continue;
			*slot = site_assign(w, s);
		}
		unsigned k = *slot >= 0 ? (unsigned)*slot : STATS_SITES + (unsigned)(-1 - *slot);
		for (unsigned r = 0; r < STATS_RESULT_N; r++)
			res[k][r] += s->results[r];
		ready[k] += s->nready;
	}
	for (unsigned k = 0; k < STATS_SITES + STATS_OTHERS; k++) {
		struct stats_site *x = k < STATS_SITES ? &o->sites[k] : &o->others[k - STATS_SITES];
		for (unsigned r = 0; r < STATS_RESULT_N; r++)
			put_counter(&x->results[r], res[k][r]);
		stats_put(&x->ready, ready[k]);
	}
	stats_put(&o->ready_jobs, ready_all);
}

static void publish_dns(struct wstats *o, const struct dns *d)
{
	struct dns_stats st;
	dns_stats(d, &st);
	for (unsigned i = 0; i < STATS_DNS_RESULTS; i++)
		stats_put(&o->dns_results[i], st.results[i]);
	for (unsigned i = 0; i < DNS_QF_N; i++)
		stats_put(&o->dns_qfails[i], st.qfails[i]);
	stats_put(&o->dns_cache_hits, st.cache_hits);
	stats_put(&o->dns_queries, st.queries);
	stats_put(&o->dns_deadlines, st.deadlines);
	stats_put(&o->dns_cached, st.cached);
	stats_put(&o->dns_waiting, st.waiting);
}

/* ---- the worker's side ----------------------------------------------------------------- */

void metrics_publish(struct worker *w, bool force)
{
	uint64_t now = w->loop.now_ms;
	if (!force && w->stats.published && now - w->stats_ms < STATS_PUBLISH_MS)
		return;
	w->stats_ms = now;
	struct wstats *o = &w->stats;
	const struct wcount *k = &w->count;
	const struct spool *sp = &w->spool;
	stats_put(&o->conns_accepted, k->conns_accepted);
	for (unsigned i = 0; i < STATS_REFUSED_POLICY_N; i++)
		stats_put(&o->refused[i], k->refused[i]);
	for (unsigned i = 0; i < SMTP_SERVER_REFUSED_N; i++)
		stats_put(&o->refused[STATS_REFUSED_POLICY_N + i], w->smtpd.refused[i]);
	for (unsigned i = 0; i < STATS_REPLY_CLASSES; i++)
		stats_put(&o->replies[i], w->smtpd.replies[i]);
	stats_put(&o->conns_in, w->smtpd.nconns);
	stats_put(&o->msgs_accepted, k->msgs_accepted);
	stats_put(&o->rcpts_accepted, k->rcpts_accepted);
	stats_put(&o->msgs_accepted_tls, k->msgs_accepted_tls);
	stats_put(&o->data_mem_refused, k->data_mem_refused);
	if (w->queue_up) {
		stats_put(&o->conns_out, deliver_conns(&w->queue));
		stats_put(&o->delivered, w->queue.delivered);
		stats_put(&o->deferred, w->queue.deferred);
		stats_put(&o->bounced, w->queue.bounced);
		stats_put(&o->dsns, w->queue.dsns);
		stats_put(&o->queue_msgs, w->queue.nmsgs);
		if (!w->metrics.max_sites)
			metrics_settings(&w->metrics);
		publish_census(w);
		if (force || now - w->metrics.sites_ms >= METRICS_SITES_MS || !w->metrics.sites_ms) {
			w->metrics.sites_ms = now ? now : 1;
			publish_sites(w);
		}
		if (w->queue.dns)
			publish_dns(o, w->queue.dns);
	}
	stats_put(&o->commits, sp->commits);
	stats_put(&o->commit_msgs, sp->messages);
	stats_put(&o->commit_bytes, sp->bytes);
	stats_put(&o->commit_ns, sp->commit_ns);
	stats_put(&o->commit_failed_batches, sp->fail_batches_total);
	for (unsigned i = 0; i <= STATS_COMMIT_BUCKETS; i++)
		stats_put(&o->commit_hist[i], sp->commit_hist[i]);
	for (unsigned i = 0; i <= STATS_BATCH_BUCKETS; i++)
		stats_put(&o->batch_hist[i], sp->batch_hist[i]);
	stats_put(&o->tls_budget_waits, w->loop.tls_budget.spent);
	stats_put(&o->enobufs, w->loop.enobufs);
	stats_put(&o->published, o->published + 1);
	if (force) {                              /* the last time: see metrics.h */
		free(w->metrics.slot);
		memset(&w->metrics, 0, sizeof w->metrics);
	}
}

/* ---- the exposition ------------------------------------------------------------------- */

static void out(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void out(struct buf *b, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	if (n > 0)
		buf_append(b, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

static void head(struct buf *b, const char *name, const char *type, const char *help)
{
	out(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

uint64_t metrics_sum(const struct server *srv, size_t off)
{
	uint64_t t = 0;
	for (unsigned i = 0; i < srv->nworkers; i++)
		t += stats_get((const uint64_t *)(const void *)((const char *)&srv->workers[i].stats + off));
	return t;
}

/* One sample without labels: the workers' sum of the field at offset off. */
static void single(struct buf *b, const struct server *srv, const char *type, const char *name,
                   size_t off, const char *help)
{
	head(b, name, type, help);
	out(b, "%s %llu\n", name, (unsigned long long)metrics_sum(srv, off));
}
#define counter(b, srv, ...) single(b, srv, "counter", __VA_ARGS__)
#define gauge(b, srv, ...) single(b, srv, "gauge", __VA_ARGS__)

/* A histogram from per-bucket counts (hist at offset off, n bounds le, scaled by div for
 * the `le` label) and its sum. */
static void histogram(struct buf *b, const struct server *srv, const char *name, size_t off,
                      const uint64_t *le, unsigned n, double div, double total,
                      const char *help)
{
	head(b, name, "histogram", help);
	uint64_t cum = 0;
	for (unsigned i = 0; i <= n; i++) {
		cum += metrics_sum(srv, off + i * sizeof(uint64_t));
		if (i < n)
			out(b, "%s_bucket{le=\"%g\"} %llu\n", name, (double)le[i] / div,
			    (unsigned long long)cum);
		else
			out(b, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)cum);
	}
	out(b, "%s_sum %.9g\n%s_count %llu\n", name, total, name, (unsigned long long)cum);
}

/* ---- labelled families ------------------------------------------------------------------ */

/* A label value as the text format wants it: \\, \" and \n escaped. */
static void put_value(struct buf *b, const char *v)
{
	const char *run = v;
	for (; *v; v++) {
		const char *esc = *v == '\\' ? "\\\\" : *v == '"' ? "\\\"" : *v == '\n' ? "\\n" : NULL;
		if (!esc)
			continue;
		buf_append(b, run, (size_t)(v - run));
		buf_append(b, esc, 2);
		run = v + 1;
	}
	buf_append(b, run, (size_t)(v - run));
}

/* One sample: name{k0="v0",k1="v1",...} value, for n label pairs kv[2i], kv[2i + 1]. */
static void labelled(struct buf *b, const char *name, const char *const *kv, unsigned n,
                     uint64_t value)
{
	buf_append(b, name, strlen(name));
	for (unsigned i = 0; i < n; i++) {
		out(b, "%s%s=\"", i ? "," : "{", kv[2 * i]);
		put_value(b, kv[2 * i + 1]);
		buf_append(b, "\"", 1);
	}
	out(b, "%s %llu\n", n ? "}" : "", (unsigned long long)value);
}

/* One labelled counter per index: name{key="names[i]"} = the workers' sum of the i-th
 * uint64_t from offset off. */
static void by_label(struct buf *b, const struct server *srv, const char *type,
                     const char *name, const char *key, const char *const *names, unsigned n,
                     size_t off, const char *help)
{
	head(b, name, type, help);
	for (unsigned i = 0; i < n; i++) {
		const char *kv[2] = { key, names[i] };
		labelled(b, name, kv, 1, metrics_sum(srv, off + i * sizeof(uint64_t)));
	}
}

/* Fields of struct wstats read as one array by by_label(). */
#define METRICS_NEXT(a, b) \
	_Static_assert(offsetof(struct wstats, b) == offsetof(struct wstats, a) + sizeof(uint64_t), \
	               #b " must follow " #a " in struct wstats")
METRICS_NEXT(conns_in, conns_out);
METRICS_NEXT(delivered, deferred);
METRICS_NEXT(deferred, bounced);
METRICS_NEXT(rcpt_scheduled, rcpt_held);
METRICS_NEXT(rcpt_held, rcpt_busy);
_Static_assert(STATS_REFUSED_N - STATS_REFUSED_POLICY_N == SMTP_SERVER_REFUSED_N &&
               STATS_REPLY_CLASSES == SMTP_SERVER_REPLY_CLASSES,
               "core/stats and core/smtp_server count refusals and replies alike");

/* A site's series: its slot (or "other" row) at every worker that has one. */
struct site_row {
	const char *transport, *site;
	uint64_t results[STATS_RESULT_N], ready;
};

static int site_row_cmp(const void *a, const void *b)
{
	const struct site_row *x = a, *y = b;
	int c = strcmp(x->transport, y->transport);
	return c ? c : strcmp(x->site, y->site);
}

static void row_add(struct site_row *rows, size_t *n, const struct stats_site *x)
{
	struct site_row *r = &rows[(*n)++];
	r->transport = x->transport;
	r->site = x->site;
	for (unsigned i = 0; i < STATS_RESULT_N; i++)
		r->results[i] = stats_get(&x->results[i]);
	r->ready = stats_get(&x->ready);
}

static const char *const result_names[STATS_RESULT_N] = { "delivered", "deferred", "bounced" };

/* The sites' families: every worker's slots and rows, the same labels added up (a site
 * lives at one worker, but two cut labels, or a transport and the catch-all "other", may
 * meet), sorted; and the transports' totals. */
static void sites_exposition(struct buf *b, const struct server *srv)
{
	size_t cap = (size_t)srv->nworkers * (STATS_SITES + STATS_OTHERS), n = 0;
	struct site_row *rows = malloc((cap ? cap : 1) * sizeof *rows);
	if (!rows)
		return;
	for (unsigned i = 0; i < srv->nworkers; i++) {
		const struct wstats *o = &srv->workers[i].stats;
		uint64_t ns = stats_count_get(&o->nsites), no = stats_count_get(&o->nothers);
		for (uint64_t k = 0; k < ns && k < STATS_SITES; k++)
			row_add(rows, &n, &o->sites[k]);
		for (uint64_t k = 0; k < no && k < STATS_OTHERS; k++)
			row_add(rows, &n, &o->others[k]);
	}
	qsort(rows, n, sizeof *rows, site_row_cmp);
	size_t m = 0;                                 /* merge equal labels */
	for (size_t i = 0; i < n; i++) {
		if (m > 0 && site_row_cmp(&rows[m - 1], &rows[i]) == 0) {
			for (unsigned r = 0; r < STATS_RESULT_N; r++)
				rows[m - 1].results[r] += rows[i].results[r];
			rows[m - 1].ready += rows[i].ready;
		} else {
			rows[m++] = rows[i];
		}
	}
	head(b, "ringrelay_site_results_total", "counter",
	     "Recipients' results at a delivery site (2xx delivered, 4xx or no reply deferred, "
	     "5xx bounced): the first " METRICS_STR(STATS_SITES) " sites of each worker by name, "
	     "the others of a transport as site=\"other\".");
	for (size_t i = 0; i < m; i++)
		for (unsigned r = 0; r < STATS_RESULT_N; r++) {
			const char *kv[6] = { "transport", rows[i].transport, "site", rows[i].site,
			                      "result", result_names[r] };
			labelled(b, "ringrelay_site_results_total", kv, 3, rows[i].results[r]);
		}
	head(b, "ringrelay_site_ready_jobs", "gauge",
	     "Jobs in a site's ready queue (sites as in ringrelay_site_results_total).");
	for (size_t i = 0; i < m; i++) {
		const char *kv[4] = { "transport", rows[i].transport, "site", rows[i].site };
		labelled(b, "ringrelay_site_ready_jobs", kv, 2, rows[i].ready);
	}
	head(b, "ringrelay_transport_results_total", "counter",
	     "Recipients' results per transport (the sum of its sites).");
	for (size_t i = 0; i < m;) {
		uint64_t t[STATS_RESULT_N] = { 0 };
		size_t j = i;
		for (; j < m && strcmp(rows[j].transport, rows[i].transport) == 0; j++)
			for (unsigned r = 0; r < STATS_RESULT_N; r++)
				t[r] += rows[j].results[r];
		for (unsigned r = 0; r < STATS_RESULT_N; r++) {
			const char *kv[4] = { "transport", rows[i].transport, "result", result_names[r] };
			labelled(b, "ringrelay_transport_results_total", kv, 2, t[r]);
		}
		i = j;
	}
	free(rows);
}

/* The proxies' families (core/egress: the checker's table, read from here), one pass over
 * the table each. */
enum proxy_family { PROXY_SERVER_UP = 0, PROXY_PAIR_UP, PROXY_FAILURES };
struct proxy_pass {
	struct buf *b;
	enum proxy_family what;
};

static void proxy_sample(void *ctx, const struct egress_view *v)
{
	struct proxy_pass *pp = ctx;
	if (pp->what != PROXY_FAILURES) {
		bool pair = pp->what == PROXY_PAIR_UP;
		if ((v->source != NULL) != pair)
			return;
		const char *kv[6] = { "pool", v->pool, "server", v->server, "source", v->source };
		labelled(pp->b, pair ? "ringrelay_proxy_pair_up" : "ringrelay_proxy_server_up", kv,
		         pair ? 3 : 2, v->up);
		return;
	}
	for (unsigned c = 0; c < EGRESS_CHECK_N; c++)
		for (unsigned r = HEALTH_R_NONE + 1; r < EGRESS_REASONS; r++) {
			uint64_t n = egress_fails(v->th, c, r);
			if (!n)
				continue;                         /* (only those that happened) */
			const char *kv[10] = { "pool", v->pool, "server", v->server,
			                       "source", v->source ? v->source : "",
			                       "check", egress_check_str(c),
			                       "reason", health_reason_str(r) };
			labelled(pp->b, "ringrelay_proxy_failures_total", kv, 5, n);
		}
}

static void proxies_exposition(struct buf *b, struct server *srv)
{
	struct proxy_pass pp = { .b = b, .what = PROXY_SERVER_UP };
	head(b, "ringrelay_proxy_server_up", "gauge",
	     "A proxy server's state as its health checks and deliveries found it: 1 up, 0 down.");
	egress_each(&srv->egress, proxy_sample, &pp);
	pp.what = PROXY_PAIR_UP;
	head(b, "ringrelay_proxy_pair_up", "gauge",
	     "A (proxy server, source) pair's state, for pools with a probe: 1 up, 0 down.");
	egress_each(&srv->egress, proxy_sample, &pp);
	pp.what = PROXY_FAILURES;
	head(b, "ringrelay_proxy_failures_total", "counter",
	     "Failures through a proxy server (source=\"\") or pair, by what found them and why; "
	     "series appear with their first failure.");
	egress_each(&srv->egress, proxy_sample, &pp);
}

/* The queue's census: once every worker has a whole sweep in (until then the family has
 * no sample rather than a false 0). */
static void census_exposition(struct buf *b, const struct server *srv)
{
	static const char *const states[3] = { "scheduled", "held", "busy" };  /* rcpt_... */
	bool all = true;
	for (unsigned i = 0; i < srv->nworkers; i++)
		all = all && stats_get(&srv->workers[i].stats.census);
	const char *help = "Recipients of the queue by state: open and waiting for their next "
	                   "try (scheduled), held, or in a job (busy: DNS, a ready queue, a "
	                   "delivery, their DSN); counted by a sweep of the queue that takes "
	                   "5 s, so up to that old.";
	if (all)
		by_label(b, srv, "gauge", "ringrelay_queue_recipients", "state", states, 3,
		         offsetof(struct wstats, rcpt_scheduled), help);
	else
		head(b, "ringrelay_queue_recipients", "gauge", help);
}

/* A family of the workers' sums: one sample at offset off, or (key) one per value. */
struct family {
	const char *type, *name, *help;
	size_t off;
	const char *key;
	const char *const *values;
	unsigned n;
};

static void families(struct buf *b, const struct server *srv, const struct family *f, size_t n)
{
	for (; n > 0; n--, f++)
		if (f->key)
			by_label(b, srv, f->type, f->name, f->key, f->values, f->n, f->off, f->help);
		else
			single(b, srv, f->type, f->name, f->off, f->help);
}

static void dns_exposition(struct buf *b, const struct server *srv)
{
	static const char *const results[STATS_DNS_RESULTS] = {
		[DNS_OK] = "ok", [DNS_NXDOMAIN] = "nxdomain", [DNS_NULLMX] = "null_mx",
		[DNS_NOHOST] = "no_host", [DNS_TEMPFAIL] = "tempfail",
	};
	const char *kinds[DNS_QF_N];
	for (unsigned i = 0; i < DNS_QF_N; i++)
		kinds[i] = dns_qfail_str(i);
	const struct family f[] = {
		{ "counter", "ringrelay_dns_lookups_total",
		  "Lookups of a next hop (a domain's MX and their addresses, or a host's addresses) "
		  "by result, cache hits included.",
		  offsetof(struct wstats, dns_results), "result", results, STATS_DNS_RESULTS },
		{ "counter", "ringrelay_dns_cache_hits_total", "Of the lookups, answered from the cache.",
		  offsetof(struct wstats, dns_cache_hits), NULL, NULL, 0 },
		{ "counter", "ringrelay_dns_queries_total", "DNS queries sent (MX, A, AAAA).",
		  offsetof(struct wstats, dns_queries), NULL, NULL, 0 },
		{ "counter", "ringrelay_dns_query_failures_total",
		  "DNS queries whose answer was not a success, by kind (nodata: no record of that "
		  "type; for MX, the implicit MX follows).",
		  offsetof(struct wstats, dns_qfails), "kind", kinds, DNS_QF_N },
		{ "counter", "ringrelay_dns_lookup_timeouts_total",
		  "Lookups ended by the DNS timeout with answers missing.",
		  offsetof(struct wstats, dns_deadlines), NULL, NULL, 0 },
		{ "gauge", "ringrelay_dns_cache_entries", "Domains in the DNS caches.",
		  offsetof(struct wstats, dns_cached), NULL, NULL, 0 },
		{ "gauge", "ringrelay_dns_lookups_waiting",
		  "Lookups in line: each worker lets dns.max_lookups ask at once.",
		  offsetof(struct wstats, dns_waiting), NULL, NULL, 0 },
	};
	families(b, srv, f, sizeof f / sizeof f[0]);
}

static void exposition(struct buf *b, struct server *srv)
{
	head(b, "ringrelay_build_info", "gauge", "Version of the running ringrelay.");
	out(b, "ringrelay_build_info{version=\"%s\"} 1\n", METRICS_VERSION);
	head(b, "ringrelay_workers", "gauge", "Worker threads.");
	out(b, "ringrelay_workers %u\n", srv->nworkers);
	counter(b, srv, "ringrelay_connections_accepted_total",
	        offsetof(struct wstats, conns_accepted), "Inbound connections accepted.");
	static const char *const why[STATS_REFUSED_N] = {
		[STATS_REFUSED_MAX_CONNECTIONS] = "max_connections",
		[STATS_REFUSED_PER_IP] = "max_connections_per_ip",
		[STATS_REFUSED_PROXY_REQUIRED] = "proxy_required",
		[STATS_REFUSED_PROXY_INVALID] = "proxy_invalid",
		[STATS_REFUSED_PROXY_TIMEOUT] = "proxy_timeout",
		[STATS_REFUSED_PROXY_NOT_ALLOWED] = "proxy_not_allowed",
	};
	by_label(b, srv, "counter", "ringrelay_connections_refused_total", "reason", why,
	         STATS_REFUSED_N, offsetof(struct wstats, refused),
	         "Inbound connections refused, by reason.");
	static const char *const dirs[2] = { "in", "out" };   /* conns_in, conns_out */
	by_label(b, srv, "gauge", "ringrelay_connections_open", "direction", dirs, 2,
	         offsetof(struct wstats, conns_in),
	         "Connections open: inbound SMTP sessions and delivery connections.");
	counter(b, srv, "ringrelay_messages_accepted_total", offsetof(struct wstats, msgs_accepted),
	        "Messages accepted (answered 250 after their commit).");
	counter(b, srv, "ringrelay_messages_accepted_tls_total",
	        offsetof(struct wstats, msgs_accepted_tls), "Of them, received over TLS.");
	counter(b, srv, "ringrelay_recipients_accepted_total",
	        offsetof(struct wstats, rcpts_accepted), "Recipients of the messages accepted.");
	head(b, "ringrelay_inbound_data_bytes", "gauge",
	     "Octets of message data the inbound sessions hold until committed "
	     "(limits.max_data_memory).");
	out(b, "ringrelay_inbound_data_bytes %llu\n",
	    (unsigned long long)atomic_load_explicit(&srv->data_mem, memory_order_relaxed));
	counter(b, srv, "ringrelay_inbound_data_refused_total",
	        offsetof(struct wstats, data_mem_refused),
	        "Messages and DATA commands answered 452 4.3.1 while limits.max_data_memory was "
	        "full.");
	by_label(b, srv, "counter", "ringrelay_recipients_total", "outcome", result_names,
	         STATS_RESULT_N, offsetof(struct wstats, delivered),   /* delivered, deferred, bounced */
	         "Delivery outcomes per recipient and attempt.");
	static const char *const classes[STATS_REPLY_CLASSES] = { "2xx", "3xx", "4xx", "5xx" };
	by_label(b, srv, "counter", "ringrelay_smtp_replies_total", "class", classes,
	         STATS_REPLY_CLASSES, offsetof(struct wstats, replies),
	         "SMTP replies the relay's server side sent, by class (a multi-line reply once).");
	counter(b, srv, "ringrelay_dsns_total", offsetof(struct wstats, dsns),
	        "Delivery status notifications queued.");
	gauge(b, srv, "ringrelay_queue_messages", offsetof(struct wstats, queue_msgs),
	      "Messages in the queue.");
	gauge(b, srv, "ringrelay_queue_ready_jobs", offsetof(struct wstats, ready_jobs),
	      "Jobs (a message's recipients for one site) in the sites' ready queues.");
	census_exposition(b, srv);
	sites_exposition(b, srv);
	counter(b, srv, "ringrelay_spool_commits_total", offsetof(struct wstats, commits),
	        "Spool commits (write and fdatasync) completed.");
	counter(b, srv, "ringrelay_spool_committed_bytes_total", offsetof(struct wstats, commit_bytes),
	        "Octets written by the spool commits.");
	counter(b, srv, "ringrelay_spool_failed_batches_total",
	        offsetof(struct wstats, commit_failed_batches), "Spool commits that failed.");
	histogram(b, srv, "ringrelay_spool_commit_duration_seconds",
	          offsetof(struct wstats, commit_hist), stats_commit_le_us, STATS_COMMIT_BUCKETS,
	          1e6, (double)METRICS_SUM(srv, commit_ns) / 1e9,
	          "Time from a commit's submission to its fdatasync's completion.");
	histogram(b, srv, "ringrelay_spool_commit_messages", offsetof(struct wstats, batch_hist),
	          stats_batch_le, STATS_BATCH_BUCKETS, 1, (double)METRICS_SUM(srv, commit_msgs),
	          "Records (messages and notes) per spool commit.");
	counter(b, srv, "ringrelay_tls_budget_waits_total", offsetof(struct wstats, tls_budget_waits),
	        "TLS handshake steps put off to the next loop turn (the per-turn budget spent).");
	counter(b, srv, "ringrelay_recv_buffer_shortages_total", offsetof(struct wstats, enobufs),
	        "Multishot receives ended for want of a provided buffer.");
	dns_exposition(b, srv);
	proxies_exposition(b, srv);
}

/* ---- the HTTP side (a core/ops service) --------------------------------------------- */

static void reply(struct ops_conn *c, const char *status, const char *type, const struct buf *body)
{
	char hdr[256];
	int n = snprintf(hdr, sizeof hdr,
	                 "HTTP/1.0 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
	                 "Connection: close\r\n\r\n", status, type, body ? body->len : 0);
	net_stream_write(&c->s, hdr, (size_t)n);
	ops_answer(c, body ? body->p : NULL, body ? body->len : 0);
}

static void reply_text(struct ops_conn *c, const char *status, const char *text)
{
	struct buf body = { 0 };
	buf_append(&body, text, strlen(text));
	reply(c, status, "text/plain", &body);
	buf_fini(&body);
}

static uint64_t scrapes;

static void answer(struct ops_conn *c, const uint8_t *p, size_t n)
{
	/* the request line: METHOD SP PATH SP VERSION */
	const uint8_t *eol = memchr(p, '\n', n);
	size_t len = eol ? (size_t)(eol - p) : n;
	if (len < 4 || memcmp(p, "GET ", 4) != 0) {
		reply_text(c, "405 Method Not Allowed", "only GET /metrics\n");
		return;
	}
	const uint8_t *path = p + 4, *sp = memchr(path, ' ', len - 4);
	size_t plen = sp ? (size_t)(sp - path) : len - 4;
	if (!(plen == 8 && memcmp(path, "/metrics", 8) == 0) &&
	    !(plen > 8 && memcmp(path, "/metrics?", 9) == 0)) {
		reply_text(c, "404 Not Found", "not found: try /metrics\n");
		return;
	}
	struct buf body = { 0 };
	exposition(&body, ops_server());
	scrapes++;
	reply(c, "200 OK", "text/plain; version=0.0.4; charset=utf-8", &body);
	buf_fini(&body);
}

static size_t metrics_input(struct ops_conn *c, const uint8_t *p, size_t n)
{
	if (n > METRICS_REQ_MAX) {                /* (whole or not: the limit is the limit) */
		reply_text(c, "431 Request Header Fields Too Large", "request too large\n");
		return n;
	}
	/* the whole head: up to the empty line */
	for (size_t i = 0; i + 1 < n; i++)
		if (p[i] == '\n' && (p[i + 1] == '\n' || (p[i + 1] == '\r' && i + 2 < n && p[i + 2] == '\n'))) {
			answer(c, p, n);
			return n;
		}
	if (n > METRICS_REQ_MAX) {
		reply_text(c, "431 Request Header Fields Too Large", "request too large\n");
		return n;
	}
	return 0;                                 /* more, please */
}

static struct ops_service metrics_svc = {
	.name = "metrics",
	.conn_size = sizeof(struct ops_conn),
	.input = metrics_input,
	.in_max = METRICS_REQ_MAX + 8192,         /* room for the read that crosses the limit */
	.max_conns = METRICS_CONNS_MAX,
	.request_ms = METRICS_HEAD_MS,
	.deadline_ms = METRICS_REQ_MS,
	.fd = -1,
};

struct ops_service *metrics_service(void)
{
	return &metrics_svc;
}
