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

const uint64_t stats_commit_le_us[STATS_COMMIT_BUCKETS] = {
	250, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000, 250000, 500000, 1000000,
};
const uint64_t stats_batch_le[STATS_BATCH_BUCKETS] = { 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000 };

/* ---- the worker's side -------------------------------------------------------------- */

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
	for (unsigned i = 0; i < STATS_REFUSED_N; i++)
		stats_put(&o->refused[i], k->refused[i]);
	stats_put(&o->conns_in, w->smtpd.nconns);
	stats_put(&o->msgs_accepted, k->msgs_accepted);
	stats_put(&o->rcpts_accepted, k->rcpts_accepted);
	stats_put(&o->msgs_accepted_tls, k->msgs_accepted_tls);
	if (w->queue_up) {
		stats_put(&o->conns_out, deliver_conns(&w->queue));
		stats_put(&o->delivered, w->queue.delivered);
		stats_put(&o->deferred, w->queue.deferred);
		stats_put(&o->bounced, w->queue.bounced);
		stats_put(&o->dsns, w->queue.dsns);
		stats_put(&o->queue_msgs, w->queue.nmsgs);
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

static void exposition(struct buf *b, const struct server *srv)
{
	head(b, "ringrelay_build_info", "gauge", "Version of the running ringrelay.");
	out(b, "ringrelay_build_info{version=\"%s\"} 1\n", METRICS_VERSION);
	head(b, "ringrelay_workers", "gauge", "Worker threads.");
	out(b, "ringrelay_workers %u\n", srv->nworkers);
	counter(b, srv, "ringrelay_connections_accepted_total",
	        offsetof(struct wstats, conns_accepted), "Inbound connections accepted.");
	head(b, "ringrelay_connections_refused_total", "counter",
	     "Inbound connections refused, by reason.");
	static const char *const why[STATS_REFUSED_N] = { "max_connections",
	                                                  "max_connections_per_ip",
	                                                  "proxy_required" };
	for (unsigned i = 0; i < STATS_REFUSED_N; i++)
		out(b, "ringrelay_connections_refused_total{reason=\"%s\"} %llu\n", why[i],
		    (unsigned long long)metrics_sum(srv, offsetof(struct wstats, refused) + i * sizeof(uint64_t)));
	head(b, "ringrelay_connections_open", "gauge",
	     "Connections open: inbound SMTP sessions and delivery connections.");
	out(b, "ringrelay_connections_open{direction=\"in\"} %llu\n",
	    (unsigned long long)METRICS_SUM(srv, conns_in));
	out(b, "ringrelay_connections_open{direction=\"out\"} %llu\n",
	    (unsigned long long)METRICS_SUM(srv, conns_out));
	counter(b, srv, "ringrelay_messages_accepted_total", offsetof(struct wstats, msgs_accepted),
	        "Messages accepted (answered 250 after their commit).");
	counter(b, srv, "ringrelay_messages_accepted_tls_total",
	        offsetof(struct wstats, msgs_accepted_tls), "Of them, received over TLS.");
	counter(b, srv, "ringrelay_recipients_accepted_total",
	        offsetof(struct wstats, rcpts_accepted), "Recipients of the messages accepted.");
	head(b, "ringrelay_recipients_total", "counter",
	     "Delivery outcomes per recipient and attempt.");
	out(b, "ringrelay_recipients_total{outcome=\"delivered\"} %llu\n",
	    (unsigned long long)METRICS_SUM(srv, delivered));
	out(b, "ringrelay_recipients_total{outcome=\"deferred\"} %llu\n",
	    (unsigned long long)METRICS_SUM(srv, deferred));
	out(b, "ringrelay_recipients_total{outcome=\"bounced\"} %llu\n",
	    (unsigned long long)METRICS_SUM(srv, bounced));
	counter(b, srv, "ringrelay_dsns_total", offsetof(struct wstats, dsns),
	        "Delivery status notifications queued.");
	gauge(b, srv, "ringrelay_queue_messages", offsetof(struct wstats, queue_msgs),
	      "Messages in the queue.");
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
	.deadline_ms = METRICS_REQ_MS,
	.fd = -1,
};

struct ops_service *metrics_service(void)
{
	return &metrics_svc;
}
