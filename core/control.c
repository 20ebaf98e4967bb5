/* core/control — see control.h. */
#include "core/control.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "core/deliver.h"
#include "core/egress.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/ops.h"
#include "core/queue.h"
#include "core/stats.h"
#include "core/worker.h"
#include "net/buf.h"
#include "net/post.h"
#include "net/timer.h"

#include "core/version.h"
#define CONTROL_VERSION RINGRELAY_VERSION

enum { CONTROL_OP_ASK = NET_OP_USER + 15, CONTROL_OP_BACK = NET_OP_USER + 16 };
enum ctl_what { CTL_QUEUE, CTL_FLUSH, CTL_SITES, CTL_PROXIES, CTL_HOLD, CTL_RELEASE, CTL_DELETE,
                CTL_BOUNCE };

/* The commands that change messages by queue id or --all: name, what they did, and the
 * queue's function. */
static const struct {
	const char *cmd, *done;
	enum ctl_what what;
	size_t (*fn)(struct queue *, const char *, size_t *);
} changers[] = {
	{ "hold", "held", CTL_HOLD, queue_hold },
	{ "release", "released", CTL_RELEASE, queue_release },
	{ "delete", "deleted", CTL_DELETE, queue_delete },
	{ "bounce", "returned", CTL_BOUNCE, queue_bounce },
};

static int changer(enum ctl_what what)
{
	for (size_t i = 0; i < sizeof changers / sizeof changers[0]; i++)
		if (changers[i].what == what)
			return (int)i;
	return -1;
}

struct ctl_conn;

/* A request that waits for the workers. Freed when the last answer is back; its
 * connection may be gone before (conn NULL). */
struct ctl_req {
	struct ctl_conn *conn;
	enum ctl_what what;
	unsigned pending;
	struct buf body;
	uint64_t n1, n2;                   /* summed: listed and more / recipients and messages */
	char arg[256];
	bool has_arg, json;
	bool not_durable;                  /* a worker's spool refused the change's notes */
};

struct ctl_conn {
	struct ops_conn c;
	struct ctl_req *req;
	struct timer reload_t;             /* `reload`: polls for the main thread's outcome */
	unsigned long reload_after;        /* the reloads begun when it sent its SIGHUP */
	uint64_t reload_until_ms;
	bool sending;                      /* its answer to a request of the workers is going
	                                      out: the next such request waits (`listing`) */
};

struct ctl_letter {
	struct net_letter l;
	struct ctl_req *req;
	enum ctl_what what;
	bool json, has_arg;
	char arg[256];
	char *out;                         /* the worker's answer (open_memstream) */
	size_t outlen;
	uint64_t n1, n2;
	struct buf notes;                  /* a change's spool notes, committed before the answer */
	struct worker *w;
	bool not_durable;                  /* the spool did not take them */
};

static unsigned requests_waiting;     /* the operator thread's */
static atomic_ulong reload_begun;     /* reloads the main thread began */
static atomic_ulong reload_done;      /* the number of the latest one it ended */
static atomic_bool reload_ok;         /* its outcome */
static bool listing;                  /* a queue or flush request is with the workers */
static char *sock_path;               /* removed at close, if still ours: */
static dev_t sock_dev;
static ino_t sock_ino;
static time_t started_at;

bool control_idle(void)
{
	return requests_waiting == 0;
}

void control_reload_begins(void)
{
	atomic_fetch_add(&reload_begun, 1);
}

void control_reloaded(bool ok)
{
	atomic_store(&reload_ok, ok);
	/* (after the outcome: a reader that sees the number sees the outcome) */
	atomic_store(&reload_done, atomic_load(&reload_begun));
}

static void say(struct ops_conn *c, const char *first, const struct buf *body);

static void reload_poll(struct timer *t)
{
	struct ctl_conn *cc = (struct ctl_conn *)(void *)((char *)t - offsetof(struct ctl_conn, reload_t));
	struct ops_conn *c = &cc->c;
	/* a reload that began after our SIGHUP read the file after the request; one already
	 * under way when it was sent may not have: not its outcome */
	if (atomic_load(&reload_done) > cc->reload_after) {
		requests_waiting--;
		if (atomic_load(&reload_ok)) {
			struct buf b = { 0 };
			buf_append(&b, "reloaded\n", 9);
			say(c, "ok", &b);
			buf_fini(&b);
		} else {
			say(c, "error: the reload failed and the running configuration stays "
			       "(event=reload_failed in the log says why)", NULL);
		}
		return;
	}
	if (ops_loop()->now_ms >= cc->reload_until_ms) {
		requests_waiting--;
		say(c, "error: no outcome of the reload yet (see the log)", NULL);
		return;
	}
	timer_arm(&ops_loop()->wheel, t, TIMER_TICK_MS);
}

static void reload(struct ctl_conn *cc)
{
	cc->reload_after = atomic_load(&reload_begun);
	if (kill(getpid(), SIGHUP) < 0) {
		say(&cc->c, "error: SIGHUP could not be sent", NULL);
		return;
	}
	requests_waiting++;
	cc->reload_until_ms = ops_loop()->now_ms + CONTROL_RELOAD_WAIT_MS;
	cc->reload_t.fire = reload_poll;
	net_stream_hold(&cc->c.s);
	timer_arm(&ops_loop()->wheel, &cc->reload_t, TIMER_TICK_MS);
}

/* ---- the worker's side ---------------------------------------------------------------- */

/* Every ready queue this worker owns: its connections in use and allowed now (the
 * concurrency window) and at most, what waits, and why it may wait. */
static uint64_t list_sites(struct worker *w, FILE *f)
{
	uint64_t n = 0, now = w->loop.now_ms;
	for (const struct queue_site *s = w->queue.sites; s; s = s->next) {
		if (s->nconns == 0 && s->nready == 0 && s->dead_until_ms <= now)
			continue;                  /* idle: nothing to say */
		n++;
		char key[600];
		const char *state = s->dead_until_ms > now ? "dead" : s->waiting ? "source_wait"
		                  : s->nready > 0 ? "active" : "idle";
		fprintf(f, "%s  state=%s worker=%u connections=%u window=%u max_connections=%u "
		        "ready=%zu fails=%u", log_escape(key, sizeof key, s->key, strlen(s->key)),
		        state, w->id, s->nconns - s->nquitting, s->window, s->max_conns, s->nready,
		        s->fails);
		if (s->dead_until_ms > now)
			fprintf(f, " retry_in_s=%llu", (unsigned long long)((s->dead_until_ms - now + 999) / 1000));
		fputc('\n', f);
	}
	return n;
}

static void thing_line(FILE *f, const struct egress_pool *p, const struct egress_server *sv,
                       const char *source, const struct egress_thing *t, uint64_t now)
{
	const struct health *h = &t->h;
	fprintf(f, "pool=%s server=%s source=%s state=%s for_s=%llu checks=%llu fails=%llu "
	        "passive_fails=%llu last_failure=%s", p->id, sv->text, source,
	        atomic_load(&t->up) ? "up" : "down",
	        (unsigned long long)(now > h->since_ms ? (now - h->since_ms) / 1000 : 0),
	        (unsigned long long)h->checks, (unsigned long long)h->fails,
	        (unsigned long long)h->passive_fails, health_reason_str(h->reason));
	if (h->code)
		fprintf(f, "(%d)", h->code);
	fputc('\n', f);
}

/* Every pool server and (server, source) pair: worker 0's (the checker's) view. */
static uint64_t list_proxies(struct worker *w, FILE *f)
{
	const struct egress_tab *t = egress_now(&w->srv->egress);
	uint64_t n = 0, now = w->loop.now_ms;
	for (size_t i = 0; t && i < t->npools; i++) {
		const struct egress_pool *p = &t->pools[i];
		for (size_t k = 0; k < p->nservers; k++) {
			const struct egress_server *sv = &p->servers[k];
			thing_line(f, p, sv, "-", &sv->st, now);
			n++;
			for (size_t j = 0; sv->pairs && j < p->nsrc; j++, n++)
				thing_line(f, p, sv, p->srcs[j].label, &sv->pairs[j], now);
		}
	}
	return n;
}

/* A change's notes are in the spool (ok), or the spool refused them. */
/* A change's notes on their way into the spool. The answer goes once they are committed,
 * or after CONTROL_COMMIT_WAIT_MS (a disk that is failing holds its commits: the answer
 * then says they are not in the spool yet), whichever comes first; the notes stay
 * queued until the spool takes them (it retries a failing disk every SPOOL_RETRY_MS),
 * or are appended again when it refuses them, until the worker stops. The change
 * stands in memory meanwhile. */
#define CONTROL_COMMIT_WAIT_MS 5000u
struct ctl_commit {
	struct worker *w;
	struct buf notes;
	struct ctl_letter *t;              /* the request, until answered */
	struct timer tm;                   /* the answer's deadline, then the retry's */
	bool late;                         /* answered before the commit: say when it lands */
	struct ctl_commit *next, **prev;   /* in w->ctl_retry while its retry timer runs */
};

static void commit_answer(struct ctl_commit *c, bool durable)
{
	struct ctl_letter *t = c->t;
	c->t = NULL;
	timer_cancel(&c->tm);
	t->not_durable = !durable;
	net_post(&c->w->loop, &c->w->srv->office, ops_loop(), CONTROL_OP_BACK, &t->l);
}

static void commit_free(struct ctl_commit *c, bool lost)
{
	if (lost)
		log_err("event=ctl_notes_lost worker=%u octets=%zu note=\"an operator's change is "
		        "not in the spool: a restart undoes it\"", c->w->id, c->notes.len);
	buf_fini(&c->notes);
	free(c);
}

static void on_commit(void *waiter, bool ok, const struct spool_loc *loc);

/* A refused commit is appended again a second later, never from the spool's callback:
 * while the disk is failing the spool answers a batch at once, and appending from there
 * would spin in its flush. */
static void on_commit_retry(struct timer *tm)
{
	struct ctl_commit *c = (struct ctl_commit *)(void *)((char *)tm - offsetof(struct ctl_commit, tm));
	*c->prev = c->next;
	if (c->next)
		c->next->prev = c->prev;
	if (c->w->queue.stopping ||
	    spool_append_rec(&c->w->spool, c, on_commit, c->notes.p, c->notes.len) < 0)
		commit_free(c, true);
}

static void on_commit_wait(struct timer *tm)
{
	struct ctl_commit *c = (struct ctl_commit *)(void *)((char *)tm - offsetof(struct ctl_commit, tm));
	c->late = true;
	commit_answer(c, false);
}

static void on_commit(void *waiter, bool ok, const struct spool_loc *loc)
{
	(void)loc;
	struct ctl_commit *c = waiter;
	if (c->t)
		commit_answer(c, ok);
	if (ok) {
		if (c->late)
			log_info("event=ctl_notes_written worker=%u octets=%zu note=\"an operator's "
			         "change the spool had not taken is in it now\"", c->w->id, c->notes.len);
		commit_free(c, false);
		return;
	}
	c->late = true;
	if (c->w->queue.stopping) {
		commit_free(c, true);
		return;
	}
	c->next = c->w->ctl_retry;
	if (c->next)
		c->next->prev = &c->next;
	c->prev = &c->w->ctl_retry;
	c->w->ctl_retry = c;
	c->tm.fire = on_commit_retry;
	timer_arm(&c->w->loop.wheel, &c->tm, 1000);
}

void control_worker_fini(struct worker *w)
{
	while (w->ctl_retry) {
		struct ctl_commit *c = w->ctl_retry;
		w->ctl_retry = c->next;
		timer_cancel(&c->tm);
		commit_free(c, true);
	}
}

static void on_ask(struct net_loop *l, struct net_op *op, int res, unsigned flags)
{
	(void)res;
	(void)flags;
	struct ctl_letter *t = (struct ctl_letter *)((char *)op - offsetof(struct ctl_letter, l.op));
	struct worker *w = (struct worker *)((char *)l - offsetof(struct worker, loop));
	FILE *f = open_memstream(&t->out, &t->outlen);
	if (changer(t->what) >= 0)
		w->queue.collect = &t->notes;  /* its notes: committed before the answer */
	if (f && w->queue_up) {
		size_t more = 0, msgs = 0;
		if (t->what == CTL_QUEUE) {
			size_t max = CONTROL_QUEUE_MAX;
#ifdef RR_TEST_BUILD
			if (getenv("RR_TEST_CTL_QUEUE_MAX"))   /* a test's smaller bound */
				max = (size_t)strtoul(getenv("RR_TEST_CTL_QUEUE_MAX"), NULL, 10);
#endif
			t->n1 = queue_list(&w->queue, f, t->json, max, &more);
			t->n2 = more;
		} else if (t->what == CTL_SITES) {
			t->n1 = list_sites(w, f);
		} else if (t->what == CTL_PROXIES) {
			t->n1 = w->id == 0 ? list_proxies(w, f) : 0;
		} else if (changer(t->what) >= 0) {
			t->n1 = changers[changer(t->what)].fn(&w->queue, t->has_arg ? t->arg : NULL, &msgs);
			t->n2 = msgs;
		} else {
			t->n1 = queue_flush(&w->queue, t->has_arg ? t->arg : NULL, &msgs);
			t->n2 = msgs;
			if (t->n1)
				log_info("event=flush worker=%u recipients=%zu messages=%zu", w->id,
				         (size_t)t->n1, msgs);
		}
	}
	if (f)
		fclose(f);
	w->queue.collect = NULL;
	t->w = w;
	if (t->notes.len) {                /* the answer once the change is durable */
		struct ctl_commit *c = calloc(1, sizeof *c);
		if (c) {
			c->w = w;
			c->notes = t->notes;       /* taken over */
			t->notes = (struct buf){ 0 };
			c->t = t;
			c->tm.fire = on_commit_wait;
			if (spool_append_rec(&w->spool, c, on_commit, c->notes.p, c->notes.len) == 0) {
				timer_arm(&w->loop.wheel, &c->tm, CONTROL_COMMIT_WAIT_MS);
				return;
			}
			t->notes = c->notes;
			free(c);
		}
		t->not_durable = true;
		buf_fini(&t->notes);
	}
	net_post(l, &w->srv->office, ops_loop(), CONTROL_OP_BACK, &t->l);
}

void control_worker_init(struct worker *w)
{
	net_loop_handle(&w->loop, CONTROL_OP_ASK, on_ask);
}

/* ---- the operator's side -------------------------------------------------------------- */

static void say(struct ops_conn *c, const char *first, const struct buf *body)
{
	struct buf out = { 0 };
	buf_append(&out, first, strlen(first));
	buf_append(&out, "\n", 1);
	if (body && body->len)
		buf_append(&out, body->p, body->len);
	if (out.len && out.p[out.len - 1] != '\n')
		buf_append(&out, "\n", 1);
	buf_append(&out, ".\n", 2);       /* the end: an answer cut short lacks it */
	ops_answer(c, out.p, out.len);
	buf_fini(&out);
}

static void req_done(struct ctl_req *r)
{
	char line[400];
	struct ctl_conn *holder = r->conn;
	if (holder)
		holder->sending = true;        /* (the answer may be large: one at a time) */
	if (r->conn) {
		struct ops_conn *c = &r->conn->c;
		r->conn->req = NULL;
		if (r->what == CTL_QUEUE) {
			if (r->json && r->n2) {
				char tail[120];
				int k = snprintf(tail, sizeof tail, "{\"not_listed\":%llu}\n",
				                 (unsigned long long)r->n2);
				buf_append(&r->body, tail, (size_t)k);
			}
			if (!r->json) {
				char tail[120];
				int k = snprintf(tail, sizeof tail, "-- %llu messages%s\n",
				                 (unsigned long long)r->n1, r->n2 ? " listed" : "");
				buf_append(&r->body, tail, (size_t)k);
				if (r->n2) {
					k = snprintf(tail, sizeof tail, "-- %llu more not listed\n",
					             (unsigned long long)r->n2);
					buf_append(&r->body, tail, (size_t)k);
				}
			}
			say(c, "ok", &r->body);
		} else if (r->what == CTL_SITES || r->what == CTL_PROXIES) {
			int k = snprintf(line, sizeof line, "-- %llu %s\n", (unsigned long long)r->n1,
			                 r->what == CTL_SITES ? "sites with connections or mail"
			                                      : "servers and pairs");
			buf_append(&r->body, line, (size_t)k);
			say(c, "ok", &r->body);
		} else if (changer(r->what) >= 0 && r->not_durable) {
			snprintf(line, sizeof line, "error: %s %llu recipients of %llu messages, but the "
			         "spool has not taken all of it yet (a failing disk?): it is written when "
			         "it can (event=ctl_notes_written); a restart before then undoes it",
			         changers[changer(r->what)].done, (unsigned long long)r->n1,
			         (unsigned long long)r->n2);
			say(c, line, NULL);
		} else if (changer(r->what) >= 0 && r->has_arg && r->n2 == 0) {
			char esc[300];
			snprintf(line, sizeof line, "error: no queued message %s", log_escape(esc, sizeof esc,
			                                                                     r->arg, strlen(r->arg)));
			say(c, line, NULL);
		} else if (changer(r->what) >= 0) {
			struct buf b = { 0 };
			int k = snprintf(line, sizeof line, "%s %llu recipients of %llu messages\n",
			                 changers[changer(r->what)].done,
			                 (unsigned long long)r->n1, (unsigned long long)r->n2);
			buf_append(&b, line, (size_t)k);
			say(c, "ok", &b);
			buf_fini(&b);
		} else if (r->has_arg && r->n1 == 0) {
			char esc[300];
			snprintf(line, sizeof line, "error: nothing deferred matches %s (a queue id or a "
			         "recipient domain)", log_escape(esc, sizeof esc, r->arg, strlen(r->arg)));
			say(c, line, NULL);
		} else {
			struct buf b = { 0 };
			int k = snprintf(line, sizeof line, "flushed %llu recipients of %llu messages\n",
			                 (unsigned long long)r->n1, (unsigned long long)r->n2);
			buf_append(&b, line, (size_t)k);
			say(c, "ok", &b);
			buf_fini(&b);
		}
	}
	buf_fini(&r->body);
	free(r);
	requests_waiting--;
	if (!holder)
		listing = false;               /* (else when its connection is gone) */
}

static void on_back(struct net_loop *l, struct net_op *op, int res, unsigned flags)
{
	(void)l;
	(void)res;
	(void)flags;
	struct ctl_letter *t = (struct ctl_letter *)((char *)op - offsetof(struct ctl_letter, l.op));
	struct ctl_req *r = t->req;
	if (t->out && t->outlen)
		buf_append(&r->body, t->out, t->outlen);
	r->n1 += t->n1;
	r->n2 += t->n2;
	r->not_durable |= t->not_durable;
	free(t->out);
	free(t);
	if (--r->pending == 0)
		req_done(r);
}

void control_loop_init(struct net_loop *l)
{
	net_loop_handle(l, CONTROL_OP_BACK, on_back);
	started_at = time(NULL);
}

/* Ask every worker. false: not now (stopping, or out of memory). */
static bool ask_workers(struct ctl_conn *cc, enum ctl_what what, const char *arg, bool json)
{
	struct server *srv = ops_server();
	if (listing)
		return false;                  /* one at a time: each walks every worker's queue */
	/* a letter to a worker that left its loop would never be answered */
	if (atomic_load(&srv->stop) || atomic_load(&srv->stopping_workers) > 0 ||
	    !atomic_load(&srv->all_up))
		return false;
	struct ctl_req *r = calloc(1, sizeof *r);
	struct ctl_letter **t = calloc(srv->nworkers, sizeof *t);
	bool ok = r && t;
	for (unsigned i = 0; ok && i < srv->nworkers; i++)
		ok = (t[i] = calloc(1, sizeof **t)) != NULL;
	if (!ok) {
		for (unsigned i = 0; t && i < srv->nworkers; i++)
			free(t[i]);
		free(t);
		free(r);
		return false;
	}
	r->conn = cc;
	r->what = what;
	r->json = json;
	r->has_arg = arg != NULL;
	snprintf(r->arg, sizeof r->arg, "%s", arg ? arg : "");
	r->pending = srv->nworkers;
	cc->req = r;
	requests_waiting++;
	listing = true;
	/* the client may half-close after its line: the answer still goes out (an EOF is
	 * not taken while the input is held; ops_answer closes) */
	net_stream_hold(&cc->c.s);
	for (unsigned i = 0; i < srv->nworkers; i++) {
		t[i]->req = r;
		t[i]->what = what;
		t[i]->json = json;
		t[i]->has_arg = r->has_arg;
		memcpy(t[i]->arg, r->arg, sizeof t[i]->arg);
		net_post(ops_loop(), &srv->office, &srv->workers[i].loop, CONTROL_OP_ASK, &t[i]->l);
	}
	free(t);
	return true;
}

static void status(struct ops_conn *c)
{
	const struct server *srv = ops_server();
#define V(field) (unsigned long long)METRICS_SUM(srv, field)
	char text[1024];
	int k = snprintf(text, sizeof text,
	                 "version=%s pid=%ld uptime_s=%lld workers=%u state=%s\n"
	                 "connections_in=%llu connections_out=%llu connections_accepted=%llu\n"
	                 "queue_messages=%llu\n"
	                 "accepted=%llu delivered=%llu deferred=%llu bounced=%llu dsns=%llu "
	                 "spool_commits=%llu\n",
	                 CONTROL_VERSION, (long)getpid(), (long long)(time(NULL) - started_at),
	                 srv->nworkers, atomic_load(&srv->stop) ? "stopping" : "running",
	                 V(conns_in), V(conns_out), V(conns_accepted), V(queue_msgs),
	                 V(msgs_accepted), V(delivered), V(deferred), V(bounced), V(dsns),
	                 V(commits));
#undef V
	struct buf b = { 0 };
	buf_append(&b, text, (size_t)k);
	say(c, "ok", &b);
	buf_fini(&b);
}

static const char help_text[] =
	"status                  the daemon: version, uptime, connections, queue, counters\n"
	"queue [--json]          the live queue (like mailq)\n"
	"flush [DOMAIN|QUEUEID]  deferred recipients due now; dead sites tried again\n"
	"sites                   every ready queue: state, connections, window, ready mail\n"
	"proxies                 every pool server and (server, source) pair: state, failures\n"
	"hold QUEUEID|--all      its recipients wait until released (kept across restarts)\n"
	"release QUEUEID|--all   held recipients due now\n"
	"delete QUEUEID|--all    removed from the queue, no DSN (kept across restarts)\n"
	"bounce QUEUEID|--all    returned to the sender now, with a DSN\n"
	"reload                  SIGHUP, and whether the new configuration was taken\n"
	"help                    this\n";

/* One request line: "CMD [ARG]" (words split on spaces). */
static void command(struct ctl_conn *cc, char *line)
{
	struct ops_conn *c = &cc->c;
	char *argv[4];
	int argc = 0;
	for (char *p = strtok(line, " \t"); p && argc < 4; p = strtok(NULL, " \t"))
		argv[argc++] = p;
	if (argc == 0) {
		say(c, "error: empty request (try help)", NULL);
		return;
	}
	const char *cmd = argv[0];
	int ch = -1;
	for (size_t i = 0; i < sizeof changers / sizeof changers[0]; i++)
		if (strcmp(cmd, changers[i].cmd) == 0)
			ch = (int)i;
	if (strcmp(cmd, "status") == 0 && argc == 1) {
		status(c);
	} else if ((strcmp(cmd, "sites") == 0 || strcmp(cmd, "proxies") == 0) && argc == 1) {
		if (!ask_workers(cc, cmd[0] == 's' ? CTL_SITES : CTL_PROXIES, NULL, false))
			say(c, "error: busy (another request is with the workers), stopping, or out of memory: try again", NULL);
	} else if (ch >= 0 && argc == 2) {
		bool all = strcmp(argv[1], "--all") == 0;
		if (!all && (strlen(argv[1]) >= 64 || argv[1][0] == '-'))
			say(c, "error: not a queue id", NULL);
		else if (!ask_workers(cc, changers[ch].what, all ? NULL : argv[1], false))
			say(c, "error: busy (another request is with the workers), stopping, or out of memory: nothing changed", NULL);
	} else if (strcmp(cmd, "reload") == 0 && argc == 1) {
		reload(cc);
	} else if (strcmp(cmd, "help") == 0) {
		struct buf b = { 0 };
		buf_append(&b, help_text, sizeof help_text - 1);
		say(c, "ok", &b);
		buf_fini(&b);
	} else if (strcmp(cmd, "queue") == 0 && (argc == 1 || (argc == 2 && strcmp(argv[1], "--json") == 0))) {
		if (!ask_workers(cc, CTL_QUEUE, NULL, argc == 2))
			say(c, "error: busy (another queue or flush is under way), stopping, or out of memory: try again", NULL);
	} else if (strcmp(cmd, "flush") == 0 && argc <= 2) {
		if (argc == 2 && strlen(argv[1]) >= 256)
			say(c, "error: flush: the argument is too long", NULL);
		else if (!ask_workers(cc, CTL_FLUSH, argc == 2 ? argv[1] : NULL, false))
			say(c, "error: busy (another queue or flush is under way), stopping, or out of memory: nothing flushed", NULL);
	} else {
		/* a known command with the wrong arguments is a usage error (ctl: exit 2) */
		static const char *const usage[] = {
			"status", "queue [--json]", "sites", "proxies", "flush [DOMAIN|QUEUEID]",
			"hold QUEUEID|--all", "release QUEUEID|--all", "delete QUEUEID|--all",
			"bounce QUEUEID|--all", "reload", "help",
		};
		char esc[200], text[300];
		for (size_t i = 0; i < sizeof usage / sizeof usage[0]; i++) {
			size_t k = strcspn(usage[i], " ");
			if (strlen(cmd) == k && strncmp(cmd, usage[i], k) == 0) {
				snprintf(text, sizeof text, "error: usage: %s", usage[i]);
				say(c, text, NULL);
				return;
			}
		}
		snprintf(text, sizeof text, "error: unknown command: %s (try help)",
		         log_escape(esc, sizeof esc, cmd, strlen(cmd)));
		say(c, text, NULL);
	}
}

static size_t control_input(struct ops_conn *c, const uint8_t *p, size_t n)
{
	struct ctl_conn *cc = (struct ctl_conn *)(void *)c;
	if (cc->req || timer_armed(&cc->reload_t))
		return n;                      /* one request per connection */
	const uint8_t *lf = memchr(p, '\n', n < CONTROL_LINE_MAX ? n : CONTROL_LINE_MAX);
	if (!lf) {
		if (n >= CONTROL_LINE_MAX)
			say(c, "error: request line too long", NULL);
		return n >= CONTROL_LINE_MAX ? n : 0;
	}
	size_t len = (size_t)(lf - p);
	if (len && p[len - 1] == '\r')
		len--;
	char line[CONTROL_LINE_MAX + 1];
	for (size_t i = 0; i < len; i++)
		if (p[i] < 0x20 || p[i] == 0x7f) {
			say(c, "error: control octets in the request", NULL);
			return n;
		}
	memcpy(line, p, len);
	line[len] = '\0';
	command(cc, line);
	return n;
}

static void control_gone(struct ops_conn *c)
{
	struct ctl_conn *cc = (struct ctl_conn *)(void *)c;
	if (cc->req)
		cc->req->conn = NULL;          /* its answers are dropped when they come */
	if (cc->sending)
		listing = false;               /* its answer is out, or given up */
	if (timer_armed(&cc->reload_t)) {
		timer_cancel(&cc->reload_t);
		requests_waiting--;
	}
}

static struct ops_service control_svc = {
	.name = "control",
	.conn_size = sizeof(struct ctl_conn),
	.input = control_input,
	.gone = control_gone,
	.in_max = 2 * CONTROL_LINE_MAX + 8192,
	.max_conns = CONTROL_CONNS_MAX,
	.request_ms = CONTROL_REQUEST_MS,
	.deadline_ms = CONTROL_DEADLINE_MS,
	.fd = -1,
};

struct ops_service *control_service(void)
{
	return &control_svc;
}

static int sun_of(const char *path, struct sockaddr_un *sa)
{
	memset(sa, 0, sizeof *sa);
	sa->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof sa->sun_path)
		return -ENAMETOOLONG;
	memcpy(sa->sun_path, path, strlen(path) + 1);
	return 0;
}

int control_open(const struct config *cfg)
{
	struct sockaddr_un sa;
	int ret = sun_of(cfg->control_path, &sa);
	if (ret < 0)
		return ret;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	struct stat st;
	if (lstat(cfg->control_path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			log_err("event=control_failed path=%s reason=\"there is something else than a "
			        "socket there (not removed)\"", cfg->control_path);
			close(fd);
			return -EEXIST;             /* not ours to remove */
		}
		/* (non-blocking: a live relay with a full backlog says EAGAIN, not a wait) */
		int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		bool live = probe >= 0 && (connect(probe, (struct sockaddr *)&sa, sizeof sa) == 0 ||
		                           errno == EAGAIN);
		if (probe >= 0)
			close(probe);
		if (live) {
			log_err("event=control_failed path=%s reason=\"another ringrelay answers on it\"",
			        cfg->control_path);
			close(fd);
			return -EADDRINUSE;         /* another relay answers there */
		}
		unlink(cfg->control_path);      /* stale: a relay that died */
	}
	mode_t old = umask(0777 & ~cfg->control_mode);
	ret = bind(fd, (struct sockaddr *)&sa, sizeof sa);
	umask(old);
	if (ret < 0 || chmod(cfg->control_path, cfg->control_mode) < 0 || listen(fd, 64) < 0) {
		ret = -errno;
		close(fd);
		return ret;
	}
	free(sock_path);
	sock_path = strdup(cfg->control_path);
	if (stat(cfg->control_path, &st) == 0) {
		sock_dev = st.st_dev;
		sock_ino = st.st_ino;
	}
	log_info("event=control_listen path=%s mode=%04o", cfg->control_path, cfg->control_mode);
	return fd;
}

void control_close(int fd)
{
	if (fd >= 0)
		close(fd);
	struct stat st;
	if (sock_path) {
		/* only the socket we made: another relay's, bound there since, stays */
		if (lstat(sock_path, &st) == 0 && st.st_dev == sock_dev && st.st_ino == sock_ino)
			unlink(sock_path);
		free(sock_path);
		sock_path = NULL;
	}
}

/* ---- ringrelay ctl -------------------------------------------------------------------- */

int control_client(const struct config *cfg, int argc, char **argv)
{
	if (argc < 1) {
		fprintf(stderr, "usage: ringrelay ctl [-c FILE] COMMAND [ARGS]\n%s", help_text);
		return 2;
	}
	char req[CONTROL_LINE_MAX + 2];
	size_t len = 0;
	for (int i = 0; i < argc; i++) {
		size_t k = strlen(argv[i]);
		/* the request is words joined by spaces: an empty word or one with a space in
		 * it would be split otherwise (" --all" is not a queue id) */
		if (k == 0 || strpbrk(argv[i], " \t\r\n")) {
			fprintf(stderr, "ringrelay ctl: argument %d is empty or holds a space\n", i + 1);
			return 2;
		}
		if (len + k + 2 > CONTROL_LINE_MAX) {
			fprintf(stderr, "ringrelay ctl: the request is too long\n");
			return 2;
		}
		if (i)
			req[len++] = ' ';
		memcpy(req + len, argv[i], k);
		len += k;
	}
	req[len++] = '\n';
	struct sockaddr_un sa;
	if (sun_of(cfg->control_path, &sa) < 0) {
		fprintf(stderr, "ringrelay ctl: %s: path too long\n", cfg->control_path);
		return 1;
	}
	time_t end = time(NULL) + CONTROL_CLIENT_TIMEOUT_S;
	/* non-blocking connect: a daemon whose backlog is full (a wedged one) says EAGAIN;
	 * tried again until the deadline, never a wait without end */
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	int cret = fd < 0 ? -1 : connect(fd, (struct sockaddr *)&sa, sizeof sa);
	while (cret < 0 && errno == EAGAIN && time(NULL) < end) {
		poll(NULL, 0, 100);
		cret = connect(fd, (struct sockaddr *)&sa, sizeof sa);
	}
	if (cret < 0 && errno == EAGAIN) {
		fprintf(stderr, "ringrelay ctl: the daemon at %s does not take connections "
		        "(its backlog is full) within %d s\n", cfg->control_path,
		        CONTROL_CLIENT_TIMEOUT_S);
		close(fd);
		return 1;
	}
	if (fd < 0 || cret < 0) {
		int e = errno;
		fprintf(stderr, "ringrelay ctl: cannot reach the daemon at %s: %s%s\n",
		        cfg->control_path, strerror(e),
		        e == ENOENT || e == ECONNREFUSED ? " (is it running, with this configuration?)"
		                                         : "");
		if (fd >= 0)
			close(fd);
		return 1;
	}
	int fl = fcntl(fd, F_GETFL);
	if (fl >= 0)
		fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);   /* (the reads below poll first) */
	if (write(fd, req, len) != (ssize_t)len) {
		fprintf(stderr, "ringrelay ctl: write: %s\n", strerror(errno));
		close(fd);
		return 1;
	}
	shutdown(fd, SHUT_WR);
	struct buf in = { 0 };
	int status = 0;
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int left = (int)(end - time(NULL));
		if (left <= 0 || poll(&p, 1, left * 1000) <= 0) {
			fprintf(stderr, "ringrelay ctl: no answer within %d s\n", CONTROL_CLIENT_TIMEOUT_S);
			status = 1;
			break;
		}
		char b[65536];
		ssize_t k = read(fd, b, sizeof b);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		buf_append(&in, b, (size_t)k);
	}
	close(fd);
	/* the answer ends with a line "."; without it, it was cut (a stop, a deadline) */
	bool whole = in.len >= 2 && memcmp(in.p + in.len - 2, ".\n", 2) == 0 &&
	             (in.len == 2 || in.p[in.len - 3] == '\n');
	if (status == 0 && in.len && !whole) {
		fprintf(stderr, "ringrelay ctl: the answer was cut short (%zu octets): not used\n",
		        in.len);
		status = 1;
	}
	if (whole)
		in.len -= 2;
	if (status == 0) {
		const uint8_t *nl = in.len ? memchr(in.p, '\n', in.len) : NULL;
		size_t first = nl ? (size_t)(nl - in.p) : in.len;
		if (first == 2 && memcmp(in.p, "ok", 2) == 0) {
			fwrite(in.p + first + 1, 1, in.len - first - 1, stdout);
		} else {
			if (in.len == 0)
				fprintf(stderr, "ringrelay ctl: the daemon closed without an answer\n");
			else
				fprintf(stderr, "ringrelay ctl: %.*s\n", (int)first, (const char *)in.p);
			/* the daemon's "error: usage: ..." is ours to say as a usage error */
			status = first >= 13 && memcmp(in.p, "error: usage:", 13) == 0 ? 2 : 1;
		}
	}
	buf_fini(&in);
	return status;
}
