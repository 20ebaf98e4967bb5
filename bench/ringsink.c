/* ringsink — the fast SMTP sink of the benchmarks (DESIGN.md, "Load generator and sink"):
 * accepts, counts, optionally stores (--dump), optionally fails a share of the messages
 * (--fail), optionally reads a PROXY header first and counts per proxied source (--proxy).
 *
 * The relay's shape without its spool, configuration or RCU (core/worker.c, net/conn.c):
 * N shared-nothing worker threads, each with its own io_uring ring (net/uring: set-up with
 * fallback, provided-buffer ring), its own SO_REUSEPORT listening socket (net/listener)
 * under a multishot accept, multishot recv with buffer select, one completion switch over
 * the op kind packed in user_data, the replies of a loop turn gathered and sent once per
 * connection, close by shutdown() so that the multishot recv ends before the free. The
 * protocol is the relay's pure session (proto/smtp_srv): ESMTP with PIPELINING, the
 * message copied once; PROXY v1/v2 is proto/proxy's pp_parse. The main thread only waits
 * for signals (signalfd) and prints.
 *
 * Per message: the --fail chooser (bench/sink_fail, seeded, one stream per worker), then
 * 250, 451, 554, a close without a reply, or a 250 held for the delay. Every delayed
 * reply waits the same time, so deadlines come due in the order they were set and a FIFO
 * per worker is an exact timer queue (1 ms, no kernel timer per message): the loop's wait
 * is cut short to the head's deadline. Idle connections time out on the timer wheel
 * (core/timer).
 *
 * Counters are per worker, written by that worker only (relaxed atomic loads and stores:
 * no locked instruction on the data path) and summed by the main thread on SIGUSR1 and at
 * exit. The per-source table (--proxy) is per worker under a mutex that only the printer
 * contends for.
 *
 * Everything ringsink says goes to stderr: first "ringsink: listening on ADDR:PORT", then
 * the counts (one line, plus one per source with --proxy; or one JSON object with --json)
 * on SIGUSR1 and at exit. SIGTERM/SIGINT: stop accepting, answer delayed messages, say
 * 421 to every session and close (in-flight DATA is lost: the client gets the 421), print,
 * exit 0. Exit 2 on a usage error, 1 on a start-up failure.
 *
 * Counting: "messages" are the ones answered 250 (at once or after a delay); "recipients"
 * and "bytes" are theirs, bytes being the message as received (dot-unstuffed, CRLF lines,
 * without the final ".") without the Received: header the session adds. deferred,
 * rejected and dropped count --fail's outcomes (a failed --dump write answers 451 and
 * counts as deferred); delayed counts the messages whose 250 was held. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bench/sink_fail.h"
#include "core/timer.h"
#include "net/listener.h"
#include "net/buf.h"
#include "net/uring.h"
#include "proto/proxy.h"
#include "proto/smtp_srv.h"

#define SINK_EXIT_RUNTIME 1
#define SINK_EXIT_USAGE 2

#define SINK_RING_ENTRIES 1024
#define SINK_BUFS 1024                 /* provided recv buffers per worker */
#define SINK_BUF_SIZE 16384
#define SINK_BGID 1
#define SINK_IN_MAX (256u * 1024u)     /* unconsumed input a client may pile up */
#define SINK_OUT_MAX (1024u * 1024u)   /* replies a client that does not read may pile up */
#define SINK_IDLE_MS 300000u           /* idle timeout, as the relay's default */
#define SINK_PROXY_MS 30000u           /* a PROXY header must be complete by then */
#define SINK_PP_MAX 4096u              /* largest v2 header accepted */
#define SINK_STOP_GRACE_MS 2000u       /* then sockets are shut down under pending sends */
#define SINK_STOP_MAX_MS 5000u         /* then the worker leaves whatever is left */
#define SINK_WORKERS_MAX 256u

#define SINK_DEFER_REPLY "451 4.3.0 Error: deferred by ringsink"
#define SINK_REJECT_REPLY "554 5.7.1 Error: rejected by ringsink"

/* ---- options ---------------------------------------------------------------------- */

struct sink_opts {
	struct sockaddr_storage addr;
	socklen_t addrlen;
	bool proxy, json;
	const char *dump_dir;
	struct sink_fail fail;
	bool failing;
	uint64_t seed;
	unsigned workers;
	char hostname[256];
};

/* ---- per-source counts (--proxy) -------------------------------------------------- */

struct src_key {
	uint8_t family;                /* 4 or 6 */
	uint8_t ip[16];                /* 4 octets used for IPv4; the rest zero */
};

struct src_entry {
	struct src_key key;
	bool used;
	uint64_t messages;
};

struct src_table {
	struct src_entry *slots;
	size_t cap, n;                 /* cap: 0 or a power of two */
};

/* ---- workers and connections ------------------------------------------------------ */

struct sink_counts {
	_Atomic uint64_t connections, messages, recipients, bytes;
	_Atomic uint64_t deferred, rejected, dropped, delayed;
};

struct sconn;

struct sink_worker {
	unsigned id;
	pthread_t thread;
	bool started;
	const struct sink_opts *o;
	atomic_bool *stop;
	atomic_uint *ready;
	int start_error;
	struct io_uring ring;
	const char *ring_desc;
	struct uring_bufs bufs;
	int lfd;
	bool accept_armed;
	uint64_t accept_errors;
	struct timer_wheel wheel;
	uint64_t now_ms;
	struct sconn *conns;           /* every live connection */
	size_t nconns;
	struct sconn *dirty;           /* output to send or a close to carry out */
	struct sconn *delay_head, *delay_tail;   /* held 250s, in deadline order */
	struct sink_fail_rng rng;
	uint64_t qid_seq, dump_seq;
	bool stopping, dump_warned;
	uint64_t stop_at_ms;
	struct sink_counts n;
	pthread_mutex_t src_mu;
	struct src_table src;
};

/* What the input is for. Only sconn_enter() changes it. */
enum sconn_phase {
	SCONN_PH_NONE = 0,
	SCONN_PH_PROXY,                /* --proxy: waiting for a complete header, no banner */
	SCONN_PH_SMTP,                 /* the SMTP session owns the input */
	SCONN_PH_CLOSING,              /* the last words are queued; nothing more is read */
};

struct sconn {
	struct sink_worker *w;
	struct sconn *next, *prev;     /* worker's list */
	struct sconn *dirty_next;
	struct sconn *delay_next, *delay_prev;
	int fd;
	enum sconn_phase phase;
	unsigned dirty : 1, sending : 1, recv_armed : 1, closing : 1, shut : 1, delayed : 1;
	struct smtp_srv *smtp;
	struct buf in;           /* input the session has not consumed yet */
	struct buf tx, q;        /* in flight; queued behind it */
	struct timer timer;
	uint64_t deadline_ms;          /* idle (or PROXY) deadline */
	uint64_t delay_until;          /* when the held 250 is due */
	struct src_key src;            /* the client: the proxied one after a header */
	char peer[INET6_ADDRSTRLEN];
};

/* Single writer per counter: a plain load and store, never a locked add. */
static inline void cnt_add(_Atomic uint64_t *c, uint64_t v)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + v,
	                      memory_order_relaxed);
}

static inline uint64_t cnt_get(_Atomic uint64_t *c)
{
	return atomic_load_explicit(c, memory_order_relaxed);
}

/* ---- small helpers ---------------------------------------------------------------- */

static void src_from_sockaddr(struct src_key *k, const struct sockaddr_storage *sa)
{
	memset(k, 0, sizeof *k);
	if (sa->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
		if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
			k->family = 4;
			memcpy(k->ip, s6->sin6_addr.s6_addr + 12, 4);
		} else {
			k->family = 6;
			memcpy(k->ip, s6->sin6_addr.s6_addr, 16);
		}
	} else {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
		k->family = 4;
		memcpy(k->ip, &s4->sin_addr, 4);
	}
}

static void src_fmt(const struct src_key *k, char *buf, size_t len)
{
	if (!inet_ntop(k->family == 6 ? AF_INET6 : AF_INET, k->ip, buf, (socklen_t)len))
		snprintf(buf, len, "?");
}

static int src_cmp(const void *a, const void *b)
{
	const struct src_entry *x = a, *y = b;
	return memcmp(&x->key, &y->key, sizeof x->key);
}

static uint64_t src_hash(const struct src_key *k)
{
	const uint8_t *p = (const uint8_t *)k;
	uint64_t h = 0xcbf29ce484222325u;                /* FNV-1a */
	for (size_t i = 0; i < sizeof *k; i++)
		h = (h ^ p[i]) * 0x100000001b3u;
	return h;
}

static struct src_entry *src_slot(struct src_entry *slots, size_t cap, const struct src_key *k)
{
	size_t i = (size_t)src_hash(k) & (cap - 1);
	while (slots[i].used && memcmp(&slots[i].key, k, sizeof *k) != 0)
		i = (i + 1) & (cap - 1);
	return &slots[i];
}

/* Add v messages for k. Caller holds the table's mutex. */
static int src_add(struct src_table *t, const struct src_key *k, uint64_t v)
{
	if ((t->n + 1) * 2 > t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 64;
		struct src_entry *s = calloc(cap, sizeof *s);
		if (!s)
			return -ENOMEM;
		for (size_t i = 0; i < t->cap; i++)
			if (t->slots[i].used)
				*src_slot(s, cap, &t->slots[i].key) = t->slots[i];
		free(t->slots);
		t->slots = s;
		t->cap = cap;
	}
	struct src_entry *e = src_slot(t->slots, t->cap, k);
	if (!e->used) {
		e->used = true;
		e->key = *k;
		t->n++;
	}
	e->messages += v;
	return 0;
}

/* ---- connections ------------------------------------------------------------------ */

static void sconn_enter(struct sconn *c, enum sconn_phase ph)
{
	c->phase = ph;
}

static void mark_dirty(struct sconn *c)
{
	struct sink_worker *w = c->w;
	if (c->dirty)
		return;
	c->dirty = 1;
	c->dirty_next = w->dirty;
	w->dirty = c;
}

static void delay_unlink(struct sconn *c)
{
	struct sink_worker *w = c->w;
	if (!c->delayed)
		return;
	if (c->delay_prev)
		c->delay_prev->delay_next = c->delay_next;
	else
		w->delay_head = c->delay_next;
	if (c->delay_next)
		c->delay_next->delay_prev = c->delay_prev;
	else
		w->delay_tail = c->delay_prev;
	c->delay_next = c->delay_prev = NULL;
	c->delayed = 0;
}

static void sconn_close(struct sconn *c, bool hard)
{
	if (c->closing)
		return;
	c->closing = 1;
	sconn_enter(c, SCONN_PH_CLOSING);
	timer_cancel(&c->timer);
	delay_unlink(c);
	if (hard)
		c->q.len = 0;
	mark_dirty(c);
}

/* Move whatever the session wrote into the send queue. */
static void collect(struct sconn *c)
{
	size_t n;
	if (!c->smtp)
		return;
	const uint8_t *p = smtp_srv_out(c->smtp, &n);
	if (n == 0)
		return;
	/* A client that sends without reading the replies: drop it rather than grow. */
	if (c->q.len + n > SINK_OUT_MAX || buf_append(&c->q, p, n) < 0) {
		sconn_close(c, true);   /* cannot even queue a reply: drop the connection */
		return;
	}
	smtp_srv_out_consume(c->smtp, n);
	mark_dirty(c);
}

/* Say `reply` (with CRLF) and close: for connections refused before a session exists. */
static void refuse(struct sconn *c, const char *reply)
{
	if (buf_append(&c->q, reply, strlen(reply)) < 0)
		c->q.len = 0;
	sconn_close(c, false);
}

/* The message as received, without the Received: header the session put in front of it
 * (its first line and the folded lines after it). */
static size_t body_len(const struct smtp_srv_msg *m)
{
	const uint8_t *p = m->data, *end = m->data + m->len;
	for (;;) {
		const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl)
			return m->len;                  /* cannot happen: the header ends in CRLF */
		p = nl + 1;
		if (p == end || (*p != '\t' && *p != ' '))
			return (size_t)(end - p);
	}
}

static int dump_write(struct sink_worker *w, const struct smtp_srv_msg *m)
{
	char path[PATH_MAX];
	int fd, err = 0;
	snprintf(path, sizeof path, "%s/msg-%u-%llu.eml", w->o->dump_dir, w->id,
	         (unsigned long long)++w->dump_seq);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		err = errno;
		goto fail;
	}
	for (size_t off = 0; off < m->len;) {
		ssize_t r = write(fd, m->data + off, m->len - off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			err = r < 0 ? errno : EIO;
			close(fd);
			unlink(path);
			goto fail;
		}
		off += (size_t)r;
	}
	if (close(fd) < 0) {
		err = errno;
		goto fail;
	}
	return 0;
fail:
	if (!w->dump_warned) {
		w->dump_warned = true;
		fprintf(stderr, "ringsink: --dump: %s: %s (answering 451; said once)\n", path,
		        strerror(err));
	}
	return -err;
}

/* The 250: store (--dump), count, answer. */
static void msg_accept(struct sconn *c)
{
	struct sink_worker *w = c->w;
	const struct smtp_srv_msg *m = smtp_srv_message(c->smtp);

	if (w->o->dump_dir && dump_write(w, m) < 0) {
		cnt_add(&w->n.deferred, 1);
		smtp_srv_queue_failed(c->smtp);
		return;
	}
	cnt_add(&w->n.messages, 1);
	cnt_add(&w->n.recipients, m->nrcpt);
	cnt_add(&w->n.bytes, body_len(m));
	if (w->o->proxy) {
		pthread_mutex_lock(&w->src_mu);
		int ret = src_add(&w->src, &c->src, 1);
		pthread_mutex_unlock(&w->src_mu);
		if (ret < 0)
			fprintf(stderr, "ringsink: out of memory for the per-source counts\n");
	}
	smtp_srv_queued(c->smtp);
}

static void delay_push(struct sconn *c)
{
	struct sink_worker *w = c->w;
	c->delayed = 1;
	c->delay_until = w->now_ms + w->o->fail.delay_ms;
	c->delay_next = NULL;
	c->delay_prev = w->delay_tail;
	if (w->delay_tail)
		w->delay_tail->delay_next = c;
	else
		w->delay_head = c;
	w->delay_tail = c;
}

/* A complete message: decide its fate. */
static void on_message(struct sconn *c)
{
	struct sink_worker *w = c->w;
	enum sink_fail_kind k = w->o->failing ? sink_fail_choose(&w->o->fail, &w->rng)
	                                      : SINK_FAIL_NONE;
	switch (k) {
	case SINK_FAIL_NONE:
	case SINK_FAIL_NKINDS:
		msg_accept(c);
		break;
	case SINK_FAIL_DEFER:
		cnt_add(&w->n.deferred, 1);
		smtp_srv_refuse(c->smtp, SINK_DEFER_REPLY);
		break;
	case SINK_FAIL_REJECT:
		cnt_add(&w->n.rejected, 1);
		smtp_srv_refuse(c->smtp, SINK_REJECT_REPLY);
		break;
	case SINK_FAIL_DROP:
		cnt_add(&w->n.dropped, 1);
		collect(c);                     /* replies to earlier commands still go out */
		sconn_close(c, false);
		break;
	case SINK_FAIL_DELAY:
		cnt_add(&w->n.delayed, 1);
		delay_push(c);
		break;
	}
}

/* Feed p[0..n) to the session until it stops; returns the bytes it consumed. */
static size_t feed(struct sconn *c, const uint8_t *p, size_t n)
{
	size_t off = 0;
	while (off < n && !c->closing && !c->delayed) {
		size_t used = 0;
		enum smtp_srv_ev ev = smtp_srv_feed(c->smtp, p + off, n - off, &used);
		off += used;
		if (ev == SMTP_SRV_EV_MESSAGE) {
			on_message(c);
		} else if (ev == SMTP_SRV_EV_CLOSE) {
			collect(c);
			sconn_close(c, false);
		} else if (ev != SMTP_SRV_EV_NONE || used == 0) {
			break;
		}
	}
	if (!c->closing)
		collect(c);
	return off;
}

/* Feed what is waiting in c->in. */
static void pump(struct sconn *c)
{
	buf_consume(&c->in, feed(c, c->in.p, c->in.len));
}

/* Answer the held 250s that are due (all of them when `all`). */
static void delay_run(struct sink_worker *w, bool all)
{
	while (w->delay_head && (all || w->delay_head->delay_until <= w->now_ms)) {
		struct sconn *c = w->delay_head;
		delay_unlink(c);
		msg_accept(c);
		collect(c);
		if (!all && !c->closing && c->in.len > 0)
			pump(c);                /* may hold the next message: it goes to the tail */
	}
}

static void sconn_timeout(struct timer *t)
{
	struct sconn *c = (struct sconn *)(void *)((char *)t - offsetof(struct sconn, timer));
	struct sink_worker *w = c->w;
	if (c->closing)
		return;
	if (w->now_ms < c->deadline_ms || c->delayed) {  /* activity since, or we hold it */
		timer_arm(&w->wheel, &c->timer,
		          c->delayed ? SINK_IDLE_MS : c->deadline_ms - w->now_ms);
		return;
	}
	if (c->phase == SCONN_PH_PROXY) {
		refuse(c, "421 4.4.2 PROXY timed out\r\n");
		return;
	}
	smtp_srv_timeout(c->smtp);
	collect(c);
	sconn_close(c, false);
}

static bool sink_rcpt_allowed(void *ctx, const char *domain, size_t len)
{
	(void)ctx;
	(void)domain;
	(void)len;
	return true;
}

/* Queue ids unique across workers: 1, 2, 3, ... with one worker. */
static void sink_new_qid(void *ctx, char *buf, size_t cap)
{
	struct sconn *c = ctx;
	struct sink_worker *w = c->w;
	snprintf(buf, cap, "%llu",
	         (unsigned long long)(w->qid_seq++ * w->o->workers + w->id + 1));
}

static const struct smtp_srv_ops sink_ops = {
	.rcpt_allowed = sink_rcpt_allowed,
	.new_qid = sink_new_qid,
	.now = NULL,                       /* time(NULL) */
};

static void session_begin(struct sconn *c)
{
	struct sink_worker *w = c->w;
	c->smtp = smtp_srv_new(w->o->hostname, c->peer, NULL, &sink_ops, c);
	if (!c->smtp) {
		refuse(c, "421 4.3.0 Error: out of memory\r\n");
		return;
	}
	sconn_enter(c, SCONN_PH_SMTP);
	smtp_srv_start(c->smtp);
	collect(c);
	c->deadline_ms = w->now_ms + SINK_IDLE_MS;
	timer_arm(&w->wheel, &c->timer, SINK_IDLE_MS);
}

/* Input while waiting for the PROXY header (--proxy). */
static void proxy_input(struct sconn *c, const uint8_t *p, size_t n)
{
	struct pp_result r;
	size_t used = 0;
	enum pp_err err = PP_E_NONE;

	if (c->in.len + n > SINK_PP_MAX + SINK_BUF_SIZE || buf_append(&c->in, p, n) < 0) {
		refuse(c, "421 4.7.0 Invalid PROXY header\r\n");
		return;
	}
	switch (pp_parse(c->in.p, c->in.len, SINK_PP_MAX, &r, &used, &err)) {
	case PP_AGAIN:
		return;                         /* the deadline keeps running */
	case PP_ERR:
		refuse(c, "421 4.7.0 Invalid PROXY header\r\n");
		return;
	case PP_OK:
		break;
	}
	/* v2 LOCAL, v1 UNKNOWN and families without IP addresses keep the socket's. */
	if (!r.local && (r.family == PP_AF_INET || r.family == PP_AF_INET6)) {
		memset(&c->src, 0, sizeof c->src);
		c->src.family = r.family == PP_AF_INET ? 4 : 6;
		memcpy(c->src.ip, r.src.ip, r.family == PP_AF_INET ? 4 : 16);
		src_fmt(&c->src, c->peer, sizeof c->peer);
	}
	buf_consume(&c->in, used);                            /* r's views die here */
	timer_cancel(&c->timer);
	session_begin(c);
	if (!c->closing && c->in.len > 0)
		pump(c);                        /* e.g. an EHLO sent right behind the header */
}

static void input(struct sconn *c, const uint8_t *p, size_t n)
{
	if (c->closing)
		return;
	if (c->phase == SCONN_PH_PROXY) {
		proxy_input(c, p, n);
		return;
	}
	c->deadline_ms = c->w->now_ms + SINK_IDLE_MS;
	if (c->in.len == 0 && !c->delayed) {
		size_t used = feed(c, p, n);
		p += used;
		n -= used;
		if (n == 0 || c->closing)
			return;
	}
	if (c->in.len + n > SINK_IN_MAX || buf_append(&c->in, p, n) < 0) {
		sconn_close(c, true);
		return;
	}
	if (!c->delayed)
		pump(c);
}

static void arm_recv(struct sconn *c)
{
	struct sink_worker *w = c->w;
	struct io_uring_sqe *sqe = uring_sqe(&w->ring);
	io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = w->bufs.bgid;
	io_uring_sqe_set_data64(sqe, uring_ud(c, URING_OP_RECV));
	c->recv_armed = 1;
}

static void sconn_accepted(struct sink_worker *w, int fd)
{
	struct sockaddr_storage sa;
	socklen_t sl = sizeof sa;
	struct sconn *c;
	int one = 1;

	if (getpeername(fd, (struct sockaddr *)&sa, &sl) < 0 || !(c = calloc(1, sizeof *c))) {
		close(fd);
		return;
	}
	c->w = w;
	c->fd = fd;
	src_from_sockaddr(&c->src, &sa);
	src_fmt(&c->src, c->peer, sizeof c->peer);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	c->next = w->conns;
	if (w->conns)
		w->conns->prev = c;
	w->conns = c;
	w->nconns++;
	cnt_add(&w->n.connections, 1);
	c->timer.fire = sconn_timeout;
	arm_recv(c);
	if (w->o->proxy) {
		/* No banner until a complete, valid header; the deadline does not move. */
		sconn_enter(c, SCONN_PH_PROXY);
		c->deadline_ms = w->now_ms + SINK_PROXY_MS;
		timer_arm(&w->wheel, &c->timer, SINK_PROXY_MS);
		return;
	}
	session_begin(c);
}

static void sconn_on_recv(struct sconn *c, int res, unsigned flags)
{
	struct sink_worker *w = c->w;
	if (!(flags & IORING_CQE_F_MORE))
		c->recv_armed = 0;
	if (res > 0) {
		unsigned bid = flags >> IORING_CQE_BUFFER_SHIFT;
		input(c, uring_bufs_ptr(&w->bufs, bid), (size_t)res);
		uring_bufs_recycle(&w->bufs, bid);
	} else if (res != -ENOBUFS) {
		sconn_close(c, true);   /* EOF or error: nobody is listening any more */
	}
	if (!c->recv_armed && !c->closing)
		arm_recv(c);            /* multishot ended (e.g. -ENOBUFS): re-arm */
	if (c->closing)
		mark_dirty(c);
}

static void sconn_on_send(struct sconn *c, int res)
{
	c->sending = 0;
	if (res <= 0) {
		c->tx.len = c->tx.off = 0;
		sconn_close(c, true);
		mark_dirty(c);
		return;
	}
	c->tx.off += (size_t)res;
	if (c->tx.off >= c->tx.len)
		c->tx.len = c->tx.off = 0;
	mark_dirty(c);
}

static void sconn_free(struct sconn *c)
{
	struct sink_worker *w = c->w;
	close(c->fd);
	timer_cancel(&c->timer);
	delay_unlink(c);
	if (c->prev)
		c->prev->next = c->next;
	else
		w->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	w->nconns--;
	smtp_srv_free(c->smtp);
	buf_fini(&c->in);
	buf_fini(&c->tx);
	buf_fini(&c->q);
	free(c);
}

/* End of loop turn: send what is queued, carry out a close, free if finished. */
static void sconn_flush(struct sconn *c)
{
	struct sink_worker *w = c->w;
	if (!c->sending && c->tx.len == 0 && c->q.len > 0) {
		struct buf t = c->tx;     /* swap: queued output goes in flight */
		c->tx = c->q;
		c->q = t;
		c->q.len = c->q.off = 0;
	}
	if (!c->sending && c->tx.len > c->tx.off) {
		struct io_uring_sqe *sqe = uring_sqe(&w->ring);
		io_uring_prep_send(sqe, c->fd, c->tx.p + c->tx.off, c->tx.len - c->tx.off,
		                   MSG_NOSIGNAL);
		io_uring_sqe_set_data64(sqe, uring_ud(c, URING_OP_SEND));
		c->sending = 1;
		return;
	}
	if (!c->closing || c->sending)
		return;
	if (!c->shut) {
		c->shut = 1;
		shutdown(c->fd, SHUT_RDWR);     /* ends the multishot recv */
	}
	if (!c->recv_armed)
		sconn_free(c);
}

/* ---- worker ----------------------------------------------------------------------- */

static void arm_accept(struct sink_worker *w)
{
	struct io_uring_sqe *sqe = uring_sqe(&w->ring);
	io_uring_prep_multishot_accept(sqe, w->lfd, NULL, NULL, SOCK_CLOEXEC);
	io_uring_sqe_set_data64(sqe, uring_ud(w, URING_OP_ACCEPT));
	w->accept_armed = true;
}

static void on_accept(struct sink_worker *w, int res, unsigned flags)
{
	if (!(flags & IORING_CQE_F_MORE))
		w->accept_armed = false;
	if (res >= 0) {
		if (w->stopping)
			close(res);
		else
			sconn_accepted(w, res);
	} else if (res != -EINVAL && res != -ECANCELED && res != -EBADF) {
		/* e.g. EMFILE: say so now and then, not once per attempt */
		if (w->accept_errors++ % 1000 == 0)
			fprintf(stderr, "ringsink: worker %u: accept: %s (%llu so far)\n", w->id,
			        strerror(-res), (unsigned long long)w->accept_errors);
	}
	if (!w->accept_armed && !w->stopping && w->lfd >= 0)
		arm_accept(w);
}

static void dispatch(struct sink_worker *w, const struct io_uring_cqe *cqe)
{
	uint64_t ud = io_uring_cqe_get_data64(cqe);
	void *p = uring_ud_ptr(ud);
	switch (uring_ud_op(ud)) {
	case URING_OP_ACCEPT:
		on_accept(w, cqe->res, cqe->flags);
		break;
	case URING_OP_RECV:
		sconn_on_recv(p, cqe->res, cqe->flags);
		break;
	case URING_OP_SEND:
		sconn_on_send(p, cqe->res);
		break;
	default:
		break;
	}
}

static void flush_dirty(struct sink_worker *w)
{
	while (w->dirty) {
		struct sconn *c = w->dirty;
		w->dirty = NULL;
		while (c) {
			struct sconn *next = c->dirty_next;
			c->dirty = 0;
			sconn_flush(c);         /* may free c */
			c = next;
		}
	}
}

static void begin_stop(struct sink_worker *w)
{
	w->stopping = true;
	w->stop_at_ms = w->now_ms;
	if (w->lfd >= 0) {
		shutdown(w->lfd, SHUT_RDWR);    /* ends the multishot accept */
		close(w->lfd);
		w->lfd = -1;
	}
	delay_run(w, true);                 /* held 250s go out now */
}

/* While stopping: every session says 421 and closes; past the grace period the sockets
 * are shut down under any send still pending (a client that does not read). */
static void stop_sweep(struct sink_worker *w)
{
	bool force = w->now_ms >= w->stop_at_ms + SINK_STOP_GRACE_MS;
	for (struct sconn *c = w->conns; c; c = c->next) {
		if (!c->closing) {
			if (c->smtp) {
				smtp_srv_shutdown(c->smtp);
				collect(c);
			}
			sconn_close(c, false);
		}
		if (force && !c->shut) {
			c->shut = 1;
			c->q.len = 0;
			shutdown(c->fd, SHUT_RDWR);
			mark_dirty(c);
		}
	}
}

static int worker_setup(struct sink_worker *w)
{
	int ret = uring_init(&w->ring, SINK_RING_ENTRIES, &w->ring_desc);
	if (ret < 0) {
		fprintf(stderr, "ringsink: worker %u: io_uring set-up: %s\n", w->id, strerror(-ret));
		return ret;
	}
	ret = uring_bufs_init(&w->ring, &w->bufs, SINK_BGID, SINK_BUFS, SINK_BUF_SIZE);
	if (ret < 0) {
		fprintf(stderr, "ringsink: worker %u: provided buffers: %s\n", w->id, strerror(-ret));
		io_uring_queue_exit(&w->ring);
		return ret;
	}
	w->now_ms = timer_now_ms();
	timer_wheel_init(&w->wheel, w->now_ms);
	sink_fail_seed(&w->rng, w->o->seed, w->id);
	arm_accept(w);
	return 0;
}

/* How long the ring may wait: a tick of the wheel, or less when a held 250 is due. */
static struct __kernel_timespec wait_time(const struct sink_worker *w)
{
	uint64_t ms = TIMER_TICK_MS;
	if (w->delay_head) {
		uint64_t due = w->delay_head->delay_until;
		ms = due <= w->now_ms ? 0 : due - w->now_ms < ms ? due - w->now_ms : ms;
	}
	struct __kernel_timespec ts = { .tv_sec = 0, .tv_nsec = (long long)ms * 1000000 };
	return ts;
}

static void *worker_main(void *arg)
{
	struct sink_worker *w = arg;
	w->start_error = worker_setup(w);
	atomic_fetch_add(w->ready, 1);
	if (w->start_error)
		return NULL;

	for (;;) {
		w->now_ms = timer_now_ms();
		if (!w->stopping && atomic_load_explicit(w->stop, memory_order_relaxed))
			begin_stop(w);
		delay_run(w, false);
		if (w->stopping)
			stop_sweep(w);
		flush_dirty(w);
		if (w->stopping &&
		    (w->nconns == 0 || w->now_ms >= w->stop_at_ms + SINK_STOP_MAX_MS))
			break;

		struct io_uring_cqe *cqe;
		struct __kernel_timespec ts = wait_time(w);
		int ret = io_uring_submit_and_wait_timeout(&w->ring, &cqe, 1, &ts, NULL);
		if (ret < 0 && ret != -ETIME && ret != -EINTR && ret != -EBUSY)
			fprintf(stderr, "ringsink: worker %u: ring wait: %s\n", w->id, strerror(-ret));
		w->now_ms = timer_now_ms();
		unsigned head, n = 0;
		io_uring_for_each_cqe(&w->ring, head, cqe) {
			dispatch(w, cqe);
			n++;
		}
		io_uring_cq_advance(&w->ring, n);
		timer_advance(&w->wheel, w->now_ms);
	}
	/* The ring goes first, so that the kernel holds nothing of what is freed after. */
	uring_bufs_fini(&w->ring, &w->bufs);
	io_uring_queue_exit(&w->ring);
	while (w->conns)
		sconn_free(w->conns);
	return NULL;
}

/* ---- counts ----------------------------------------------------------------------- */

/* Sum the workers' counts and print them (one write, so lines never interleave). */
static void print_counts(struct sink_worker *ws, unsigned nw, const struct sink_opts *o)
{
	uint64_t conns = 0, msgs = 0, rcpts = 0, bytes = 0, def = 0, rej = 0, drop = 0, del = 0;
	struct src_entry *all = NULL;
	size_t nall = 0, cap = 0;
	char *text = NULL;
	size_t tlen = 0;
	FILE *f;

	for (unsigned i = 0; i < nw; i++) {
		struct sink_counts *n = &ws[i].n;
		conns += cnt_get(&n->connections);
		msgs += cnt_get(&n->messages);
		rcpts += cnt_get(&n->recipients);
		bytes += cnt_get(&n->bytes);
		def += cnt_get(&n->deferred);
		rej += cnt_get(&n->rejected);
		drop += cnt_get(&n->dropped);
		del += cnt_get(&n->delayed);
	}
	if (o->proxy) {
		for (unsigned i = 0; i < nw; i++) {
			pthread_mutex_lock(&ws[i].src_mu);
			const struct src_table *t = &ws[i].src;
			if (nall + t->n > cap) {
				size_t ncap = (nall + t->n) * 2;
				struct src_entry *q = realloc(all, ncap * sizeof *q);
				if (!q) {
					pthread_mutex_unlock(&ws[i].src_mu);
					break;
				}
				all = q;
				cap = ncap;
			}
			for (size_t k = 0; k < t->cap; k++)
				if (t->slots[k].used)
					all[nall++] = t->slots[k];
			pthread_mutex_unlock(&ws[i].src_mu);
		}
		if (nall > 0)
			qsort(all, nall, sizeof *all, src_cmp);
		size_t m = 0;                       /* merge the workers' entries per source */
		for (size_t k = 0; k < nall; k++) {
			if (m > 0 && memcmp(&all[m - 1].key, &all[k].key, sizeof all[k].key) == 0)
				all[m - 1].messages += all[k].messages;
			else
				all[m++] = all[k];
		}
		nall = m;
	}

	f = open_memstream(&text, &tlen);
	if (!f) {
		free(all);
		return;
	}
	if (o->json) {
		fprintf(f, "{\"connections\":%llu,\"messages\":%llu,\"recipients\":%llu,"
		           "\"bytes\":%llu,\"deferred\":%llu,\"rejected\":%llu,\"dropped\":%llu,"
		           "\"delayed\":%llu",
		        (unsigned long long)conns, (unsigned long long)msgs,
		        (unsigned long long)rcpts, (unsigned long long)bytes,
		        (unsigned long long)def, (unsigned long long)rej, (unsigned long long)drop,
		        (unsigned long long)del);
		if (o->proxy) {
			fputs(",\"sources\":[", f);
			for (size_t k = 0; k < nall; k++) {
				char a[INET6_ADDRSTRLEN];
				src_fmt(&all[k].key, a, sizeof a);
				fprintf(f, "%s{\"source\":\"%s\",\"messages\":%llu}", k ? "," : "", a,
				        (unsigned long long)all[k].messages);
			}
			fputc(']', f);
		}
		fputs("}\n", f);
	} else {
		fprintf(f, "ringsink: connections=%llu messages=%llu recipients=%llu bytes=%llu "
		           "deferred=%llu rejected=%llu dropped=%llu delayed=%llu\n",
		        (unsigned long long)conns, (unsigned long long)msgs,
		        (unsigned long long)rcpts, (unsigned long long)bytes,
		        (unsigned long long)def, (unsigned long long)rej, (unsigned long long)drop,
		        (unsigned long long)del);
		for (size_t k = 0; k < nall; k++) {
			char a[INET6_ADDRSTRLEN];
			src_fmt(&all[k].key, a, sizeof a);
			fprintf(f, "ringsink: source=%s messages=%llu\n", a,
			        (unsigned long long)all[k].messages);
		}
	}
	fclose(f);
	for (size_t off = 0; off < tlen;) {
		ssize_t r = write(STDERR_FILENO, text + off, tlen - off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		off += (size_t)r;
	}
	free(text);
	free(all);
}

/* ---- command line ----------------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: ringsink -l HOST:PORT [--proxy] [--dump DIR] [--fail SPEC] [--seed N]\n"
	        "                [-w WORKERS] [--json] [--hostname NAME]\n"
	        "  -l HOST:PORT      listen here (port 0: an ephemeral port; [::1]:PORT for IPv6)\n"
	        "  --proxy           every connection starts with a PROXY v1/v2 header;\n"
	        "                    messages are also counted per proxied source\n"
	        "  --dump DIR        store each accepted message in DIR/msg-WORKER-N.eml\n"
	        "  --fail SPEC       e.g. defer=5%%,reject=1%%,drop=1%%,delay=200ms@2%%:\n"
	        "                    451, 554, close without a reply, 250 after a delay\n"
	        "  --seed N          seed of --fail's choices (default 1): a rerun repeats them\n"
	        "  -w WORKERS        worker threads, one ring and listening socket each (default 1)\n"
	        "  --json            print the counts as one JSON object\n"
	        "  --hostname NAME   name in the banner and the Received: header\n"
	        "Prints to stderr: \"ringsink: listening on ADDR:PORT\" first, then the counts on\n"
	        "SIGUSR1 and at exit (SIGTERM/SIGINT: stop, close, print, exit 0).\n");
}

/* HOST:PORT or [V6]:PORT; HOST may be a name. */
static int parse_listen(const char *arg, struct sink_opts *o)
{
	char host[256];
	const char *port;
	if (arg[0] == '[') {
		const char *end = strchr(arg, ']');
		if (!end || end[1] != ':' || (size_t)(end - arg - 1) >= sizeof host)
			return -1;
		memcpy(host, arg + 1, (size_t)(end - arg - 1));
		host[end - arg - 1] = '\0';
		port = end + 2;
	} else {
		const char *colon = strrchr(arg, ':');
		if (!colon || (size_t)(colon - arg) >= sizeof host || colon == arg)
			return -1;
		memcpy(host, arg, (size_t)(colon - arg));
		host[colon - arg] = '\0';
		port = colon + 1;
	}
	char *e;
	errno = 0;
	unsigned long p = strtoul(port, &e, 10);
	if (!*port || *e || errno || p > 65535 || port[0] == '-' || port[0] == '+')
		return -1;
	struct addrinfo hints, *res;
	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV | AI_PASSIVE;
	if (getaddrinfo(host, port, &hints, &res) != 0)
		return -1;
	memcpy(&o->addr, res->ai_addr, res->ai_addrlen);
	o->addrlen = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

static int parse_u64(const char *s, uint64_t *v)
{
	char *e;
	errno = 0;
	if (!*s || *s == '-' || *s == '+')
		return -1;
	unsigned long long x = strtoull(s, &e, 10);
	if (*e || errno)
		return -1;
	*v = x;
	return 0;
}

static int parse_args(int argc, char **argv, struct sink_opts *o)
{
	enum { OPT_PROXY = 256, OPT_DUMP, OPT_FAIL, OPT_SEED, OPT_JSON, OPT_HOSTNAME };
	static const struct option longs[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "workers", required_argument, NULL, 'w' },
		{ "proxy", no_argument, NULL, OPT_PROXY },
		{ "dump", required_argument, NULL, OPT_DUMP },
		{ "fail", required_argument, NULL, OPT_FAIL },
		{ "seed", required_argument, NULL, OPT_SEED },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "hostname", required_argument, NULL, OPT_HOSTNAME },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool have_listen = false;
	uint64_t v;
	int ch;

	o->workers = 1;
	o->seed = 1;
	if (gethostname(o->hostname, sizeof o->hostname - 1) < 0 || !o->hostname[0])
		snprintf(o->hostname, sizeof o->hostname, "ringsink.invalid");
	while ((ch = getopt_long(argc, argv, "l:w:h", longs, NULL)) != -1) {
		switch (ch) {
		case 'l':
			if (parse_listen(optarg, o) < 0) {
				fprintf(stderr, "ringsink: -l %s: want HOST:PORT (e.g. 127.0.0.1:2525 or [::1]:0)\n", optarg);
				return -1;
			}
			have_listen = true;
			break;
		case 'w':
			if (parse_u64(optarg, &v) < 0 || v < 1 || v > SINK_WORKERS_MAX) {
				fprintf(stderr, "ringsink: -w %s: want 1 to %u workers\n", optarg, SINK_WORKERS_MAX);
				return -1;
			}
			o->workers = (unsigned)v;
			break;
		case OPT_PROXY:
			o->proxy = true;
			break;
		case OPT_DUMP:
			o->dump_dir = optarg;
			break;
		case OPT_FAIL: {
			enum sink_fail_err err;
			size_t at;
			char msg[512];
			if (sink_fail_parse(optarg, &o->fail, &err, &at) < 0) {
				sink_fail_explain(msg, sizeof msg, optarg, err, at);
				fprintf(stderr, "ringsink: --fail %s\n", msg);
				return -1;
			}
			o->failing = sink_fail_any(&o->fail);
			break;
		}
		case OPT_SEED:
			if (parse_u64(optarg, &o->seed) < 0) {
				fprintf(stderr, "ringsink: --seed %s: want a number\n", optarg);
				return -1;
			}
			break;
		case OPT_JSON:
			o->json = true;
			break;
		case OPT_HOSTNAME:
			if (!optarg[0] || strlen(optarg) >= sizeof o->hostname ||
			    strpbrk(optarg, " \t\r\n")) {
				fprintf(stderr, "ringsink: --hostname: want a name without spaces\n");
				return -1;
			}
			snprintf(o->hostname, sizeof o->hostname, "%s", optarg);
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return -1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "ringsink: unexpected argument: %s\n", argv[optind]);
		return -1;
	}
	if (!have_listen) {
		fprintf(stderr, "ringsink: -l HOST:PORT is required\n");
		usage(stderr);
		return -1;
	}
	if (o->dump_dir) {
		struct stat st;
		if (mkdir(o->dump_dir, 0755) < 0 && errno != EEXIST) {
			fprintf(stderr, "ringsink: --dump %s: %s\n", o->dump_dir, strerror(errno));
			return -1;
		}
		if (stat(o->dump_dir, &st) < 0 || !S_ISDIR(st.st_mode) ||
		    access(o->dump_dir, W_OK | X_OK) < 0) {
			fprintf(stderr, "ringsink: --dump %s: not a writable directory\n", o->dump_dir);
			return -1;
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct sink_opts o;
	struct sink_worker *ws = NULL;
	atomic_bool stop = false;
	atomic_uint ready = 0;
	int rc = SINK_EXIT_RUNTIME, sfd = -1;
	sigset_t set;
	char where[INET6_ADDRSTRLEN + 16];

	memset(&o, 0, sizeof o);
	if (parse_args(argc, argv, &o) < 0)
		return SINK_EXIT_USAGE;

	/* Signals are taken by this thread only, through a signalfd; the workers inherit
	 * the blocked mask. */
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	sfd = signalfd(-1, &set, SFD_CLOEXEC);
	if (sfd < 0) {
		fprintf(stderr, "ringsink: signalfd: %s\n", strerror(errno));
		return SINK_EXIT_RUNTIME;
	}

	ws = calloc(o.workers, sizeof *ws);
	if (!ws) {
		fprintf(stderr, "ringsink: out of memory\n");
		goto out;
	}
	for (unsigned i = 0; i < o.workers; i++)
		ws[i].lfd = -1;
	for (unsigned i = 0; i < o.workers; i++) {
		struct sink_worker *w = &ws[i];
		w->id = i;
		w->o = &o;
		w->stop = &stop;
		w->ready = &ready;
		pthread_mutex_init(&w->src_mu, NULL);
		/* Port 0: the first socket picks the port, the others bind the same one. */
		w->lfd = listener_open(&o.addr, o.addrlen);
		if (w->lfd < 0) {
			listener_fmt((struct sockaddr *)&o.addr, where, sizeof where);
			fprintf(stderr, "ringsink: listen on %s: %s\n", where, strerror(-w->lfd));
			goto out;
		}
	}
	for (unsigned i = 0; i < o.workers; i++) {
		int ret = pthread_create(&ws[i].thread, NULL, worker_main, &ws[i]);
		if (ret) {
			fprintf(stderr, "ringsink: thread: %s\n", strerror(ret));
			atomic_store(&stop, true);
			goto out;
		}
		ws[i].started = true;
	}
	while (atomic_load(&ready) < o.workers)
		usleep(1000);
	for (unsigned i = 0; i < o.workers; i++)
		if (ws[i].start_error) {
			atomic_store(&stop, true);
			goto out;
		}
	listener_fmt((struct sockaddr *)&o.addr, where, sizeof where);
	fprintf(stderr, "ringsink: listening on %s\n", where);

	for (;;) {
		struct signalfd_siginfo si;
		ssize_t r = read(sfd, &si, sizeof si);
		if (r < 0 && errno == EINTR)
			continue;
		if (r != (ssize_t)sizeof si) {
			fprintf(stderr, "ringsink: signalfd read: %s\n", r < 0 ? strerror(errno) : "short");
			break;
		}
		if (si.ssi_signo == SIGUSR1) {
			print_counts(ws, o.workers, &o);
			continue;
		}
		break;                              /* SIGTERM, SIGINT */
	}
	atomic_store(&stop, true);
	for (unsigned i = 0; i < o.workers; i++) {
		pthread_join(ws[i].thread, NULL);
		ws[i].started = false;
	}
	print_counts(ws, o.workers, &o);
	rc = 0;
out:
	if (ws) {
		for (unsigned i = 0; i < o.workers; i++) {
			if (ws[i].started)
				pthread_join(ws[i].thread, NULL);
			if (ws[i].lfd >= 0)
				close(ws[i].lfd);
			free(ws[i].src.slots);
			pthread_mutex_destroy(&ws[i].src_mu);
		}
		free(ws);
	}
	close(sfd);
	return rc;
}
