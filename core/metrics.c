/* core/metrics — see metrics.h. */
#include "core/metrics.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/deliver.h"
#include "core/log.h"
#include "core/worker.h"
#include "net/buf.h"
#include "net/listener.h"
#include "net/loop.h"
#include "net/stream.h"
#include "net/timer.h"

#define METRICS_VERSION "0.1.0"

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
		stats_put(&o->queue_rcpts_open, w->queue.nrcpt_open);
	}
	stats_put(&o->commits, sp->commits);
	stats_put(&o->commit_msgs, sp->messages);
	stats_put(&o->commit_bytes, sp->bytes);
	stats_put(&o->commit_ns, sp->commit_ns);
	stats_put(&o->commit_failed_batches, sp->fail_batches);
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

/* The sum over the workers of the field at offset off. */
static uint64_t sum(const struct server *srv, size_t off)
{
	uint64_t t = 0;
	for (unsigned i = 0; i < srv->nworkers; i++)
		t += stats_get((const uint64_t *)(const void *)((const char *)&srv->workers[i].stats + off));
	return t;
}
#define SUM(srv, field) sum(srv, offsetof(struct wstats, field))

/* One sample without labels: the workers' sum of the field at offset off. */
static void single(struct buf *b, const struct server *srv, const char *type, const char *name,
                   size_t off, const char *help)
{
	head(b, name, type, help);
	out(b, "%s %llu\n", name, (unsigned long long)sum(srv, off));
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
		cum += sum(srv, off + i * sizeof(uint64_t));
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
		    (unsigned long long)sum(srv, offsetof(struct wstats, refused) + i * sizeof(uint64_t)));
	head(b, "ringrelay_connections_open", "gauge",
	     "Connections open: inbound SMTP sessions and delivery connections.");
	out(b, "ringrelay_connections_open{direction=\"in\"} %llu\n",
	    (unsigned long long)SUM(srv, conns_in));
	out(b, "ringrelay_connections_open{direction=\"out\"} %llu\n",
	    (unsigned long long)SUM(srv, conns_out));
	counter(b, srv, "ringrelay_messages_accepted_total", offsetof(struct wstats, msgs_accepted),
	        "Messages accepted (answered 250 after their commit).");
	counter(b, srv, "ringrelay_messages_accepted_tls_total",
	        offsetof(struct wstats, msgs_accepted_tls), "Of them, received over TLS.");
	counter(b, srv, "ringrelay_recipients_accepted_total",
	        offsetof(struct wstats, rcpts_accepted), "Recipients of the messages accepted.");
	head(b, "ringrelay_recipients_total", "counter",
	     "Delivery outcomes per recipient and attempt.");
	out(b, "ringrelay_recipients_total{outcome=\"delivered\"} %llu\n",
	    (unsigned long long)SUM(srv, delivered));
	out(b, "ringrelay_recipients_total{outcome=\"deferred\"} %llu\n",
	    (unsigned long long)SUM(srv, deferred));
	out(b, "ringrelay_recipients_total{outcome=\"bounced\"} %llu\n",
	    (unsigned long long)SUM(srv, bounced));
	counter(b, srv, "ringrelay_dsns_total", offsetof(struct wstats, dsns),
	        "Delivery status notifications queued.");
	gauge(b, srv, "ringrelay_queue_messages", offsetof(struct wstats, queue_msgs),
	      "Messages in the queue.");
	gauge(b, srv, "ringrelay_queue_recipients_open", offsetof(struct wstats, queue_rcpts_open),
	      "Recipients not yet delivered or bounced.");
	counter(b, srv, "ringrelay_spool_commits_total", offsetof(struct wstats, commits),
	        "Spool commits (write and fdatasync) completed.");
	counter(b, srv, "ringrelay_spool_committed_bytes_total", offsetof(struct wstats, commit_bytes),
	        "Octets written by the spool commits.");
	counter(b, srv, "ringrelay_spool_failed_batches_total",
	        offsetof(struct wstats, commit_failed_batches), "Spool commits that failed.");
	histogram(b, srv, "ringrelay_spool_commit_duration_seconds",
	          offsetof(struct wstats, commit_hist), stats_commit_le_us, STATS_COMMIT_BUCKETS,
	          1e6, (double)SUM(srv, commit_ns) / 1e9,
	          "Time from a commit's submission to its fdatasync's completion.");
	histogram(b, srv, "ringrelay_spool_commit_messages", offsetof(struct wstats, batch_hist),
	          stats_batch_le, STATS_BATCH_BUCKETS, 1, (double)SUM(srv, commit_msgs),
	          "Records (messages and notes) per spool commit.");
	counter(b, srv, "ringrelay_tls_budget_waits_total", offsetof(struct wstats, tls_budget_waits),
	        "TLS handshake steps put off to the next loop turn (the per-turn budget spent).");
	counter(b, srv, "ringrelay_recv_buffer_shortages_total", offsetof(struct wstats, enobufs),
	        "Multishot receives ended for want of a provided buffer.");
}

/* ---- the HTTP side ------------------------------------------------------------------ */

struct mconn {
	struct net_stream s;
	struct timer t;
	struct mconn *next, *prev;
	bool answered;
};

static struct {
	struct net_loop loop;
	struct listener_acceptor acc;
	struct server *srv;
	pthread_t thread;
	bool running;
	atomic_bool stop;
	bool stopping;
	struct mconn *conns;
	unsigned nconns;
	uint64_t scrapes, refused;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool started;
	int start_res;
} M = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER };

static struct mconn *mconn_of(struct net_stream *s)
{
	return (struct mconn *)(void *)s;         /* s is the first member */
}

static void reply(struct mconn *c, const char *status, const char *type, const struct buf *body)
{
	char hdr[256];
	int n = snprintf(hdr, sizeof hdr,
	                 "HTTP/1.0 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
	                 "Connection: close\r\n\r\n", status, type, body ? body->len : 0);
	net_stream_write(&c->s, hdr, (size_t)n);
	if (body && body->len)
		net_stream_write(&c->s, body->p, body->len);
	c->answered = true;
	net_stream_close(&c->s);
}

static void answer(struct mconn *c, const uint8_t *p, size_t n)
{
	/* the request line: METHOD SP PATH SP VERSION */
	const uint8_t *eol = memchr(p, '\n', n);
	size_t len = eol ? (size_t)(eol - p) : n;
	struct buf body = { 0 };
	if (len >= 4 && memcmp(p, "GET ", 4) == 0) {
		const uint8_t *path = p + 4, *sp = memchr(path, ' ', len - 4);
		size_t plen = sp ? (size_t)(sp - path) : len - 4;
		if ((plen == 8 && memcmp(path, "/metrics", 8) == 0) ||
		    (plen > 8 && memcmp(path, "/metrics?", 9) == 0)) {
			exposition(&body, M.srv);
			M.scrapes++;
			reply(c, "200 OK", "text/plain; version=0.0.4; charset=utf-8", &body);
		} else {
			buf_append(&body, "not found: try /metrics\n", 24);
			reply(c, "404 Not Found", "text/plain", &body);
		}
	} else {
		buf_append(&body, "only GET /metrics\n", 18);
		reply(c, "405 Method Not Allowed", "text/plain", &body);
	}
	buf_fini(&body);
}

static size_t on_input(struct net_stream *s, const uint8_t *p, size_t n)
{
	struct mconn *c = mconn_of(s);
	if (c->answered)
		return n;
	/* the whole head: up to the empty line */
	for (size_t i = 0; i + 1 < n; i++)
		if (p[i] == '\n' && (p[i + 1] == '\n' || (p[i + 1] == '\r' && i + 2 < n && p[i + 2] == '\n'))) {
			answer(c, p, n);
			return n;
		}
	if (n > METRICS_REQ_MAX) {
		struct buf body = { 0 };
		buf_append(&body, "request too large\n", 18);
		reply(c, "431 Request Header Fields Too Large", "text/plain", &body);
		buf_fini(&body);
		return n;
	}
	return 0;                                 /* more, please */
}

static void on_lost(struct net_stream *s, int res)
{
	(void)res;
	net_stream_abort(s);
}

static void on_release(struct net_stream *s)
{
	struct mconn *c = mconn_of(s);
	timer_cancel(&c->t);
	if (c->prev)
		c->prev->next = c->next;
	else
		M.conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	M.nconns--;
	free(c);
}

static const struct net_stream_ops mconn_ops = {
	.input = on_input,
	.lost = on_lost,
	.release = on_release,
};

static void on_timer(struct timer *t)
{
	struct mconn *c = (struct mconn *)(void *)((char *)t - offsetof(struct mconn, t));
	net_stream_abort(&c->s);                  /* too slow: no answer */
}

static void on_accept(struct listener_acceptor *a, int fd)
{
	(void)a;
	if (fd < 0)
		return;
	struct mconn *c = M.nconns < METRICS_CONNS_MAX && !M.stopping ? calloc(1, sizeof *c) : NULL;
	if (!c) {
		M.refused++;
		close(fd);
		return;
	}
	net_stream_init(&c->s, &M.loop, fd, &mconn_ops);
	c->s.in_max = METRICS_REQ_MAX + 8192;   /* room for the read that crosses the limit */
	c->t.fire = on_timer;
	timer_arm(&M.loop.wheel, &c->t, METRICS_REQ_MS);
	c->next = M.conns;
	if (M.conns)
		M.conns->prev = c;
	M.conns = c;
	M.nconns++;
	net_stream_start(&c->s);
}

static unsigned metrics_turn(void *ctx)
{
	(void)ctx;
	if (!M.stopping && atomic_load(&M.stop)) {
		M.stopping = true;
		listener_accept_stop(&M.acc);
		for (struct mconn *c = M.conns; c; c = c->next)
			net_stream_abort(&c->s);
	}
	if (M.stopping && M.nconns == 0 && !M.acc.armed)
		net_loop_quit(&M.loop);
	return TIMER_TICK_MS * 1000u;
}

static const struct net_loop_hooks metrics_hooks = { .turn = metrics_turn };

/* The thread makes its own ring (a ring is its submitter's: SINGLE_ISSUER) and says how
 * that went before it runs. */
static void *metrics_main(void *arg)
{
	int fd = (int)(intptr_t)arg;
	/* a small loop: a few scrapers, small requests */
	const struct net_loop_params lp = { .sq_entries = 64, .bufs = 64, .buf_size = 4096 };
	int ret = net_loop_init(&M.loop, &lp, &metrics_hooks, NULL);
	if (ret == 0 && listener_accept_start(&M.acc, &M.loop, fd, on_accept, NULL) < 0) {
		net_loop_fini(&M.loop);
		ret = -EBUSY;
	}
	if (ret < 0)
		close(fd);
	pthread_mutex_lock(&M.mu);
	M.start_res = ret;
	M.started = true;
	pthread_cond_signal(&M.cv);
	pthread_mutex_unlock(&M.mu);
	if (ret < 0)
		return NULL;
	net_loop_run(&M.loop);
	net_loop_fini(&M.loop);
	return NULL;
}

int metrics_start(struct server *srv, const struct config *cfg)
{
	if (!cfg->metrics)
		return 0;
	struct sockaddr_storage sa = cfg->metrics_addr;
	int fd = listener_open(&sa, cfg->metrics_addrlen);
	if (fd < 0)
		return fd;
	M.srv = srv;
	M.started = false;
	atomic_store(&M.stop, false);
	int ret = pthread_create(&M.thread, NULL, metrics_main, (void *)(intptr_t)fd);
	if (ret != 0) {
		close(fd);
		return -ret;
	}
	pthread_mutex_lock(&M.mu);
	while (!M.started)
		pthread_cond_wait(&M.cv, &M.mu);
	ret = M.start_res;
	pthread_mutex_unlock(&M.mu);
	if (ret < 0) {
		pthread_join(M.thread, NULL);
		return ret;
	}
	M.running = true;
	char a[80];
	listener_fmt((const struct sockaddr *)&sa, a, sizeof a);
	log_info("event=metrics_listen addr=%s path=/metrics", a);
	return 0;
}

void metrics_stop(void)
{
	if (!M.running)
		return;
	atomic_store(&M.stop, true);
	pthread_join(M.thread, NULL);
	M.running = false;
	log_info("event=metrics_stopped scrapes=%llu refused=%llu", (unsigned long long)M.scrapes,
	         (unsigned long long)M.refused);
}
