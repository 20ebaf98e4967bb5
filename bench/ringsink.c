/* ringsink — the fast SMTP sink of the benchmarks (DESIGN.md, "Load generator and sink"):
 * accepts, counts, optionally stores (--dump), optionally fails a share of the messages
 * (--fail), optionally reads a PROXY header first and counts per proxied source (--proxy),
 * optionally speaks TLS (--tls: STARTTLS offered; --tls-implicit: from the first octet,
 * after the PROXY header with --proxy), for the relay's outbound TLS to be tested against.
 *
 * It is the relay's SMTP server application (core/smtp_server: net/stream + the pure
 * proto/smtp_srv session + PROXY) on the shared runtime (net/loop, net/listener), with a
 * policy of its own instead of the relay's spool: N shared-nothing worker threads, each
 * with its own loop and SO_REUSEPORT listening socket. The main thread only waits for
 * signals (signalfd) and prints.
 *
 * Per message: the --fail chooser (bench/sink_fail, seeded, one stream per worker), then
 * 250, 451, 554, a close without a reply, or a 250 held for the delay. Every delayed
 * reply waits the same time, so deadlines come due in the order they were set and a FIFO
 * per worker is an exact timer queue (1 ms, no kernel timer per message): the loop's wait
 * is cut short to the head's deadline.
 *
 * Counters are per worker, written by that worker only (relaxed atomic loads and stores:
 * no locked instruction on the data path) and summed by the main thread on SIGUSR1 and at
 * exit. The per-source table (--proxy) is per worker under a mutex that only the printer
 * contends for.
 *
 * Everything ringsink says goes to stderr: first "ringsink: listening on ADDR:PORT", then
 * the counts (one line, plus one per source with --proxy; or one JSON object with --json)
 * on SIGUSR1 and at exit. SIGTERM/SIGINT: stop accepting, answer delayed messages, say
 * 421 to every session outside a transaction and close, cut the rest after
 * SINK_STOP_GRACE_MS, print, exit 0. Exit 2 on a usage error, 1 on a start-up failure.
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
#include "core/log.h"
#include "core/smtp_server.h"
#include "net/listener.h"
#include "net/loop.h"
#include "proto/smtp_srv.h"

#define SINK_EXIT_RUNTIME 1
#define SINK_EXIT_USAGE 2

#define SINK_IDLE_MS 300000u           /* idle timeout, as the relay's default */
#define SINK_PROXY_MS 30000u           /* a PROXY header must be complete by then */
#define SINK_PP_MAX 4096u              /* largest v2 header accepted */
#define SINK_STOP_GRACE_MS 2000u       /* then every connection is cut */
#define SINK_STOP_MAX_MS 5000u         /* then the worker leaves whatever is left */
#define SINK_WORKERS_MAX 256u

#define SINK_DEFER_REPLY "451 4.3.0 Error: deferred by ringsink"
#define SINK_REJECT_REPLY "554 5.7.1 Error: rejected by ringsink"

/* ---- options ---------------------------------------------------------------------- */

struct sink_opts {
	struct sockaddr_storage addr;
	socklen_t addrlen;
	bool proxy, json, by_helo;
	const char *dump_dir;
	struct sink_fail fail;
	bool failing;
	uint64_t seed;
	unsigned workers;
	char hostname[256];
	struct net_tls_ctx *tls;            /* --tls: STARTTLS offered (--tls-implicit: TLS at once) */
	enum smtp_server_tls tls_mode;
};

/* ---- per-source counts (--proxy) -------------------------------------------------- */

struct src_key {
	uint8_t family;                /* 4 or 6 */
	uint8_t ip[16];                /* 4 octets used for IPv4; the rest zero */
	char helo[64];                 /* --by-helo: the client's HELO/EHLO name (cut), else "" */
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

/* A connection's own data (core/smtp_server's app area). */
struct sink_conn {
	struct sink_conn *delay_next, *delay_prev;
	struct smtp_server_conn *c;
	uint64_t delay_until;          /* when the held 250 is due */
	bool delayed;
};

struct sink_worker {
	unsigned id;
	pthread_t thread;
	bool started;
	const struct sink_opts *o;
	atomic_bool *stop;
	atomic_uint *ready;
	int start_error;
	struct net_loop loop;
	struct listener_acceptor acc;
	int lfd;                       /* until the acceptor takes it */
	struct smtp_server srv;
	struct sink_conn *delay_head, *delay_tail;   /* held 250s, in deadline order */
	struct sink_fail_rng rng;
	uint64_t qid_seq, dump_seq;
	bool stopping, dump_warned;
	uint64_t stop_at_ms;
	struct sink_counts n;
	pthread_mutex_t src_mu;
	struct src_table src;
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

static struct sink_worker *worker_of(const struct smtp_server_conn *c)
{
	return c->srv->ctx;
}

static struct sink_conn *sc_of(const struct smtp_server_conn *c)
{
	return c->app;
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

/* ---- messages --------------------------------------------------------------------- */

static void delay_unlink(struct sink_worker *w, struct sink_conn *d)
{
	if (!d->delayed)
		return;
	if (d->delay_prev)
		d->delay_prev->delay_next = d->delay_next;
	else
		w->delay_head = d->delay_next;
	if (d->delay_next)
		d->delay_next->delay_prev = d->delay_prev;
	else
		w->delay_tail = d->delay_prev;
	d->delay_next = d->delay_prev = NULL;
	d->delayed = false;
}

static void delay_push(struct sink_worker *w, struct sink_conn *d)
{
	d->delayed = true;
	d->delay_until = w->loop.now_ms + w->o->fail.delay_ms;
	d->delay_next = NULL;
	d->delay_prev = w->delay_tail;
	if (w->delay_tail)
		w->delay_tail->delay_next = d;
	else
		w->delay_head = d;
	w->delay_tail = d;
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
static void msg_accept(struct smtp_server_conn *c)
{
	struct sink_worker *w = worker_of(c);
	const struct smtp_srv_msg *m = smtp_srv_message(c->smtp);

	if (w->o->dump_dir && dump_write(w, m) < 0) {
		cnt_add(&w->n.deferred, 1);
		smtp_server_answer(c, false);
		return;
	}
	cnt_add(&w->n.messages, 1);
	cnt_add(&w->n.recipients, m->nrcpt);
	cnt_add(&w->n.bytes, body_len(m));
	if (w->o->proxy || w->o->by_helo) {
		struct src_key k;
		src_from_sockaddr(&k, &c->peer_sa);
		if (w->o->by_helo && m->helo)
			snprintf(k.helo, sizeof k.helo, "%s", m->helo);
		pthread_mutex_lock(&w->src_mu);
		int ret = src_add(&w->src, &k, 1);
		pthread_mutex_unlock(&w->src_mu);
		if (ret < 0)
			fprintf(stderr, "ringsink: out of memory for the per-source counts\n");
	}
	smtp_server_answer(c, true);
}

/* A complete message: decide its fate. */
static void sink_message(struct smtp_server_conn *c, const struct smtp_srv_msg *m)
{
	(void)m;
	struct sink_worker *w = worker_of(c);
	enum sink_fail_kind k = w->o->failing ? sink_fail_choose(&w->o->fail, &w->rng)
	                                      : SINK_FAIL_NONE;
	switch (k) {
	case SINK_FAIL_NONE:
	case SINK_FAIL_NKINDS:
		msg_accept(c);
		break;
	case SINK_FAIL_DEFER:
		cnt_add(&w->n.deferred, 1);
		smtp_server_refuse(c, SINK_DEFER_REPLY);
		break;
	case SINK_FAIL_REJECT:
		cnt_add(&w->n.rejected, 1);
		smtp_server_refuse(c, SINK_REJECT_REPLY);
		break;
	case SINK_FAIL_DROP:
		cnt_add(&w->n.dropped, 1);
		smtp_server_drop(c);            /* replies to earlier commands still go out */
		break;
	case SINK_FAIL_DELAY:
		cnt_add(&w->n.delayed, 1);
		sc_of(c)->c = c;
		delay_push(w, sc_of(c));
		break;
	}
}

/* Answer the held 250s that are due (all of them when `all`). */
static void delay_run(struct sink_worker *w, bool all)
{
	while (w->delay_head && (all || w->delay_head->delay_until <= w->loop.now_ms)) {
		struct sink_conn *d = w->delay_head;
		delay_unlink(w, d);
		msg_accept(d->c);               /* the next message may be held: to the tail */
	}
}

/* ---- the server's policy ---------------------------------------------------------- */

static void sink_start(struct smtp_server_conn *c, struct smtp_server_start *how)
{
	struct sink_worker *w = worker_of(c);
	cnt_add(&w->n.connections, 1);
	how->proxy = w->o->proxy ? SMTP_SERVER_PROXY_EXPECT : SMTP_SERVER_PROXY_PLAIN;
	how->proxy_timeout_ms = SINK_PROXY_MS;
	how->proxy_max_header = SINK_PP_MAX;
	how->tls = w->o->tls;
	how->tls_mode = w->o->tls_mode;
}

static const char *sink_admit(struct smtp_server_conn *c, struct smtp_server_params *p,
                              char *buf, size_t cap)
{
	(void)buf;
	(void)cap;
	p->hostname = worker_of(c)->o->hostname;   /* limits: the session's defaults */
	p->idle_ms = SINK_IDLE_MS;
	return NULL;
}

static bool sink_rcpt_allowed(struct smtp_server_conn *c, const char *domain, size_t len)
{
	(void)c;
	(void)domain;
	(void)len;
	return true;
}

/* Queue ids unique across workers: 1, 2, 3, ... with one worker. */
static bool sink_new_qid(struct smtp_server_conn *c, char *buf, size_t cap)
{
	struct sink_worker *w = worker_of(c);
	snprintf(buf, cap, "%llu",
	         (unsigned long long)(w->qid_seq++ * w->o->workers + w->id + 1));
	return true;
}

static void sink_gone(struct smtp_server_conn *c)
{
	delay_unlink(worker_of(c), sc_of(c));
}

static const struct smtp_server_ops sink_ops = {
	.start = sink_start,
	.admit = sink_admit,
	.rcpt_allowed = sink_rcpt_allowed,
	.new_qid = sink_new_qid,
	.message = sink_message,
	.gone = sink_gone,
};

/* ---- worker ----------------------------------------------------------------------- */

static void on_accept(struct listener_acceptor *a, int fd)
{
	struct sink_worker *w = a->ctx;
	if (fd < 0) {
		/* e.g. EMFILE: say so now and then, not once per attempt */
		if (a->errors % 1000 == 1)
			fprintf(stderr, "ringsink: worker %u: accept: %s (%lu so far)\n", w->id,
			        strerror(-fd), a->errors);
		return;
	}
	if (w->stopping) {
		close(fd);
		return;
	}
	smtp_server_accept(&w->srv, fd, 0);
}

/* The turn: held 250s that are due, the stop; the wait is cut to the next due one. */
static unsigned sink_turn(void *ctx)
{
	struct sink_worker *w = ctx;
	if (!w->stopping && atomic_load_explicit(w->stop, memory_order_relaxed)) {
		w->stopping = true;
		w->stop_at_ms = w->loop.now_ms;
		listener_accept_stop(&w->acc);
		delay_run(w, true);             /* held 250s go out now */
	}
	delay_run(w, false);
	if (w->stopping) {
		smtp_server_stop(&w->srv, w->loop.now_ms >= w->stop_at_ms + SINK_STOP_GRACE_MS);
		if (w->srv.nconns == 0 || w->loop.now_ms >= w->stop_at_ms + SINK_STOP_MAX_MS)
			net_loop_quit(&w->loop);
	}
	uint64_t ms = TIMER_TICK_MS;
	if (w->delay_head) {
		uint64_t due = w->delay_head->delay_until, now = w->loop.now_ms;
		ms = due <= now ? 0 : due - now < ms ? due - now : ms;
	}
	return (unsigned)ms * 1000u;
}

static const struct net_loop_hooks sink_hooks = { .turn = sink_turn };

static int worker_setup(struct sink_worker *w)
{
	int ret = net_loop_init(&w->loop, NULL, &sink_hooks, w);
	if (ret < 0) {
		fprintf(stderr, "ringsink: worker %u: io_uring set-up: %s\n", w->id, strerror(-ret));
		return ret;
	}
	smtp_server_init(&w->srv, &w->loop, &sink_ops, w, sizeof(struct sink_conn), w->id);
	sink_fail_seed(&w->rng, w->o->seed, w->id);
	ret = listener_accept_start(&w->acc, &w->loop, w->lfd, on_accept, w);
	w->lfd = -1;                        /* the acceptor owns it */
	if (ret < 0)
		fprintf(stderr, "ringsink: worker %u: accept: %s\n", w->id, strerror(-ret));
	return ret;
}

static void *worker_main(void *arg)
{
	struct sink_worker *w = arg;
	w->start_error = worker_setup(w);
	atomic_fetch_add(w->ready, 1);
	if (!w->start_error)
		net_loop_run(&w->loop);
	listener_accept_stop(&w->acc);
	/* The ring goes first, so that the kernel holds nothing of what is freed after. */
	net_loop_fini(&w->loop);
	smtp_server_fini(&w->srv);
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
	if (o->proxy || o->by_helo) {
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
		if (o->proxy || o->by_helo) {
			fputs(",\"sources\":[", f);
			for (size_t k = 0; k < nall; k++) {
				char a[INET6_ADDRSTRLEN];
				src_fmt(&all[k].key, a, sizeof a);
				fprintf(f, "%s{\"source\":\"%s\",", k ? "," : "", a);
				if (o->by_helo)
					fprintf(f, "\"helo\":\"%s\",", all[k].key.helo);
				fprintf(f, "\"messages\":%llu}", (unsigned long long)all[k].messages);
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
			if (o->by_helo)
				fprintf(f, "ringsink: source=%s helo=%s messages=%llu\n", a, all[k].key.helo,
				        (unsigned long long)all[k].messages);
			else
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
	        "                [-w WORKERS] [--by-helo] [--json] [--hostname NAME]\n"
	        "                [--tls CERT,KEY [--tls-implicit]]\n"
	        "  -l HOST:PORT      listen here (port 0: an ephemeral port; [::1]:PORT for IPv6)\n"
	        "  --proxy           every connection starts with a PROXY v1/v2 header;\n"
	        "                    messages are also counted per proxied source\n"
	        "  --dump DIR        store each accepted message in DIR/msg-WORKER-N.eml\n"
	        "  --fail SPEC       e.g. defer=5%%,reject=1%%,drop=1%%,delay=200ms@2%%:\n"
	        "                    451, 554, close without a reply, 250 after a delay\n"
	        "  --seed N          seed of --fail's choices (default 1): a rerun repeats them\n"
	        "  -w WORKERS        worker threads, one ring and listening socket each (default 1)\n"
	        "  --by-helo         count per (source, HELO/EHLO name): the proxied source with\n"
	        "                    --proxy, else the socket peer\n"
	        "  --json            print the counts as one JSON object\n"
	        "  --hostname NAME   name in the banner and the Received: header\n"
	        "  --tls CERT,KEY    offer STARTTLS with this PEM certificate and key\n"
	        "  --tls-implicit    with --tls: TLS from the first octet (after --proxy's header)\n"
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

/* --tls CERT,KEY: the server context every worker's connections take a reference of. */
static int sink_tls(const char *arg, bool implicit, struct sink_opts *o)
{
	char cert[PATH_MAX], err[256];
	const char *comma = strchr(arg, ',');
	if (!comma || comma == arg || !comma[1] || (size_t)(comma - arg) >= sizeof cert) {
		fprintf(stderr, "ringsink: --tls %s: want CERT,KEY\n", arg);
		return -1;
	}
	memcpy(cert, arg, (size_t)(comma - arg));
	cert[comma - arg] = '\0';
	struct net_tls_conf conf = { .role = NET_TLS_SERVER, .cert_file = cert,
	                             .key_file = comma + 1 };
	o->tls = net_tls_ctx_new(&conf, err, sizeof err);
	if (!o->tls) {
		fprintf(stderr, "ringsink: --tls: %s\n", err);
		return -1;
	}
	o->tls_mode = implicit ? SMTP_SERVER_TLS_IMPLICIT : SMTP_SERVER_TLS_STARTTLS;
	return 0;
}

static int parse_args(int argc, char **argv, struct sink_opts *o)
{
	enum { OPT_PROXY = 256, OPT_DUMP, OPT_FAIL, OPT_SEED, OPT_JSON, OPT_HOSTNAME, OPT_BY_HELO,
	       OPT_TLS, OPT_TLS_IMPLICIT };
	static const struct option longs[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "workers", required_argument, NULL, 'w' },
		{ "proxy", no_argument, NULL, OPT_PROXY },
		{ "dump", required_argument, NULL, OPT_DUMP },
		{ "fail", required_argument, NULL, OPT_FAIL },
		{ "seed", required_argument, NULL, OPT_SEED },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "by-helo", no_argument, NULL, OPT_BY_HELO },
		{ "hostname", required_argument, NULL, OPT_HOSTNAME },
		{ "tls", required_argument, NULL, OPT_TLS },
		{ "tls-implicit", no_argument, NULL, OPT_TLS_IMPLICIT },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool have_listen = false, implicit = false;
	const char *tls = NULL;
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
		case OPT_BY_HELO:
			o->by_helo = true;
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
		case OPT_TLS:
			tls = optarg;
			break;
		case OPT_TLS_IMPLICIT:
			implicit = true;
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
	if (implicit && !tls) {
		fprintf(stderr, "ringsink: --tls-implicit needs --tls CERT,KEY\n");
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
	if (tls && sink_tls(tls, implicit, o) < 0)
		return -1;
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
	log_set_level(LOG_ERR);             /* the server application's own log: errors only */

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
		net_tls_ctx_free(o.tls);
		return SINK_EXIT_RUNTIME;
	}

	ws = calloc(o.workers, sizeof *ws);
	if (!ws) {
		fprintf(stderr, "ringsink: out of memory\n");
		goto out;
	}
	for (unsigned i = 0; i < o.workers; i++)
		ws[i].lfd = ws[i].acc.fd = -1;
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
	net_tls_ctx_free(o.tls);
	return rc;
}
