/* core/ops — see ops.h. */
#include "core/ops.h"

#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/control.h"
#include "core/log.h"
#include "core/metrics.h"
#include "net/loop.h"

#define OPS_STOP_WAIT_MS 2000u
#define OPS_PEERS_SEEN 64u                 /* distinct peers an eviction tells apart */
#define OPS_HARD_FACTOR 6u                 /* connections of a service at most: x max_conns
                                              (its places, those cut and not yet released,
                                              newcomers of peers without a place) */

static struct {
	struct net_loop loop;
	struct server *srv;
	struct ops_service *svc[2];
	size_t nsvc;
	struct ops_conn *conns;
	pthread_t thread;
	bool running, stopping;
	uint64_t stop_at_ms;
	atomic_bool stop;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool started;
	int start_res;
} O = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER };

struct net_loop *ops_loop(void)
{
	return &O.loop;
}

struct server *ops_server(void)
{
	return O.srv;
}

void ops_answer(struct ops_conn *c, const void *p, size_t n)
{
	if (c->answered)
		return;
	c->answered = true;
	if (n)
		net_stream_write(&c->s, p, n);
	net_stream_close(&c->s);
}

static size_t on_input(struct net_stream *s, const uint8_t *p, size_t n)
{
	struct ops_conn *c = (struct ops_conn *)(void *)s;     /* s is the first member */
	if (c->answered)
		return n;                      /* after the answer: nothing more is read */
	size_t used = c->svc->input(c, p, n);
	if (!c->asked && (used > 0 || c->answered) && !c->evicted) {
		c->asked = true;               /* the request's time is over: the exchange's */
		timer_arm(&O.loop.wheel, &c->t, c->svc->deadline_ms);
	}
	return used;
}

static void on_lost(struct net_stream *s, int res)
{
	(void)res;
	net_stream_abort(s);
}

static void on_release(struct net_stream *s)
{
	struct ops_conn *c = (struct ops_conn *)(void *)s;
	timer_cancel(&c->t);
	if (c->evicted)
		c->svc->nevicted--;
	if (c->svc->gone)
		c->svc->gone(c);
	if (c->prev)
		c->prev->next = c->next;
	else
		O.conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->svc->nconns--;
	free(c);
}

static const struct net_stream_ops conn_ops = {
	.input = on_input,
	.lost = on_lost,
	.release = on_release,
};

static void on_deadline(struct timer *t)
{
	struct ops_conn *c = (struct ops_conn *)(void *)((char *)t - offsetof(struct ops_conn, t));
	net_stream_abort(&c->s);           /* too slow: cut */
}

/* Who is at the other end of fd: its process for a Unix socket (SO_PEERCRED), else its
 * address (a hash). 0: unknown. */
static uint64_t peer_of(int fd)
{
	struct ucred cr;
	socklen_t cl = sizeof cr;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) == 0 && cr.pid > 0)
		return 1u + (uint64_t)cr.pid;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	if (getpeername(fd, (struct sockaddr *)&ss, &sl) != 0)
		return 0;
	const uint8_t *a = NULL;
	size_t n = 0;
	if (ss.ss_family == AF_INET) {
		a = (const uint8_t *)&((const struct sockaddr_in *)(const void *)&ss)->sin_addr;
		n = 4;
	} else if (ss.ss_family == AF_INET6) {
		a = (const uint8_t *)&((const struct sockaddr_in6 *)(const void *)&ss)->sin6_addr;
		n = 16;
	}
	uint64_t h = 1469598103934665603u;             /* FNV-1a */
	for (size_t i = 0; i < n; i++)
		h = (h ^ a[i]) * 1099511628211u;
	return h | 1u;
}

/* All of svc's places are taken: cut the oldest connection that has not asked yet of the
 * peer holding the most such places (O.conns is newest first), if any; its place is free
 * once it is released. The cut ones are bounded too (4 x max_conns at once). */
static bool evict_idle(struct ops_service *svc)
{
	if (svc->nevicted >= 4 * svc->max_conns)
		return false;
	/* one walk, newest first: per peer its silent places and its oldest one (a flood is
	 * one peer or a few: the inner search stays short) */
	struct { uint64_t peer; unsigned n; struct ops_conn *oldest; } by[OPS_PEERS_SEEN];
	size_t nby = 0;
	for (struct ops_conn *c = O.conns; c; c = c->next) {
		if (c->svc != svc || c->asked || c->evicted)
			continue;
		size_t i = 0;
		while (i < nby && by[i].peer != c->peer)
			i++;
		if (i == nby) {
			if (nby == OPS_PEERS_SEEN)
				continue;                  /* (more peers than that: the first ones) */
			by[nby++] = (typeof(by[0])){ c->peer, 0, NULL };
		}
		by[i].n++;
		by[i].oldest = c;
	}
	struct ops_conn *old = NULL;
	unsigned most = 0;
	for (size_t i = 0; i < nby; i++)
		if (by[i].n > most) {
			most = by[i].n;
			old = by[i].oldest;
		}
	if (!old)
		return false;
	old->evicted = true;
	svc->nevicted++;
	svc->evicted++;
	timer_cancel(&old->t);
	net_stream_abort(&old->s);
	return true;
}

static void on_accept(struct listener_acceptor *a, int fd)
{
	struct ops_service *svc = a->ctx;
	if (fd < 0)
		return;
	uint64_t peer = peer_of(fd);
	if (!O.stopping && svc->nconns - svc->nevicted >= svc->max_conns)
		evict_idle(svc);
	bool room = svc->nconns - svc->nevicted < svc->max_conns;
	if (!room && svc->nconns < OPS_HARD_FACTOR * svc->max_conns) {
		/* no place could be freed now (those cut are not released yet): a peer that
		 * holds none still gets in (a flood's own connects are the ones turned away) */
		room = true;
		for (struct ops_conn *o = O.conns; o && room; o = o->next)
			room = !(o->svc == svc && !o->evicted && o->peer == peer);
	}
	struct ops_conn *c = room && !O.stopping ? calloc(1, svc->conn_size) : NULL;
	if (!c) {
		svc->refused++;
		close(fd);
		return;
	}
	svc->accepted++;
	svc->nconns++;
	c->svc = svc;
	c->peer = peer;
	net_stream_init(&c->s, &O.loop, fd, &conn_ops);
	c->s.in_max = svc->in_max;
	c->t.fire = on_deadline;
	timer_arm(&O.loop.wheel, &c->t, svc->request_ms ? svc->request_ms : svc->deadline_ms);
	c->next = O.conns;
	if (O.conns)
		O.conns->prev = c;
	O.conns = c;
	net_stream_start(&c->s);
}

static unsigned ops_turn(void *ctx)
{
	(void)ctx;
	if (!O.stopping && atomic_load(&O.stop)) {
		O.stopping = true;
		for (size_t i = 0; i < O.nsvc; i++)
			listener_accept_stop(&O.svc[i]->acc);
		for (struct ops_conn *c = O.conns; c; c = c->next)
			net_stream_abort(&c->s);
	}
	if (O.stopping && !O.stop_at_ms)
		O.stop_at_ms = O.loop.now_ms;
	/* (an accept still armed is not waited for: a Unix socket's shutdown does not end
	 * it; the ring's close at the loop's end does.) Answers from the workers may still
	 * come (they stopped before us: they will); after a forced stop one may never come:
	 * then not more than OPS_STOP_WAIT_MS */
	if (O.stopping && !O.conns &&
	    (control_idle() || O.loop.now_ms - O.stop_at_ms > OPS_STOP_WAIT_MS))
		net_loop_quit(&O.loop);
	return TIMER_TICK_MS * 1000u;
}

static const struct net_loop_hooks ops_hooks = { .turn = ops_turn };

/* The thread makes its own ring (a ring is its submitter's: SINGLE_ISSUER) and says how
 * that went before it runs. */
static void *ops_main(void *arg)
{
	(void)arg;
	const struct net_loop_params lp = { .sq_entries = 128, .bufs = 64, .buf_size = 4096 };
	int ret = net_loop_init(&O.loop, &lp, &ops_hooks, NULL);
	size_t started = 0;
	for (; ret == 0 && started < O.nsvc; started++) {
		struct ops_service *svc = O.svc[started];
		if (listener_accept_start(&svc->acc, &O.loop, svc->fd, on_accept, svc) < 0)
			ret = -EBUSY;
		else
			svc->fd = -1;              /* the acceptor's now */
	}
	if (ret == 0)
		control_loop_init(&O.loop);
	if (ret < 0) {
		for (size_t i = 0; i < O.nsvc; i++) {
			listener_accept_stop(&O.svc[i]->acc);
			if (O.svc[i]->fd >= 0)
				close(O.svc[i]->fd);
		}
		if (O.loop.up)
			net_loop_fini(&O.loop);
	}
	pthread_mutex_lock(&O.mu);
	O.start_res = ret;
	O.started = true;
	pthread_cond_signal(&O.cv);
	pthread_mutex_unlock(&O.mu);
	if (ret < 0)
		return NULL;
	net_loop_run(&O.loop);
	net_loop_fini(&O.loop);
	return NULL;
}

int ops_start(struct server *srv, const struct config *cfg, const char **what)
{
	O.srv = srv;
	O.nsvc = 0;
	*what = "control";
	struct ops_service *ctl = control_service();
	ctl->fd = control_open(cfg);
	if (ctl->fd < 0)
		return ctl->fd;
	O.svc[O.nsvc++] = ctl;
	if (cfg->metrics) {
		*what = "metrics";
		struct ops_service *m = metrics_service();
		struct sockaddr_storage sa = cfg->metrics_addr;
		m->fd = listener_open(&sa, cfg->metrics_addrlen);
		if (m->fd < 0) {
			int err = m->fd;
			control_close(ctl->fd);
			return err;
		}
		O.svc[O.nsvc++] = m;
		char a[80];
		listener_fmt((const struct sockaddr *)&sa, a, sizeof a);
		log_info("event=metrics_listen addr=%s path=/metrics", a);
	}
	*what = "operator thread";
	O.started = false;
	atomic_store(&O.stop, false);
	int ret = pthread_create(&O.thread, NULL, ops_main, NULL);
	if (ret != 0) {
		for (size_t i = 0; i < O.nsvc; i++)
			close(O.svc[i]->fd);
		return -ret;
	}
	pthread_mutex_lock(&O.mu);
	while (!O.started)
		pthread_cond_wait(&O.cv, &O.mu);
	ret = O.start_res;
	pthread_mutex_unlock(&O.mu);
	if (ret < 0) {
		pthread_join(O.thread, NULL);
		return ret;
	}
	O.running = true;
	return 0;
}

void ops_stop(void)
{
	if (!O.running)
		return;
	atomic_store(&O.stop, true);
	pthread_join(O.thread, NULL);
	O.running = false;
	for (size_t i = 0; i < O.nsvc; i++)
		log_info("event=ops_stopped service=%s accepted=%llu refused=%llu evicted=%llu",
		         O.svc[i]->name, (unsigned long long)O.svc[i]->accepted,
		         (unsigned long long)O.svc[i]->refused, (unsigned long long)O.svc[i]->evicted);
	control_close(-1);
}
