/* core/worker — see worker.h. */
#include "core/worker.h"

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <urcu-qsbr.h>

#include "core/inbound.h"
#include "core/log.h"
#include "core/control.h"
#include "core/metrics.h"
#include "core/owner.h"

static void on_accept(struct listener_acceptor *a, int fd)
{
	struct wlistener *l = a->ctx;
	struct worker *w = l->w;
	if (fd < 0) {
		if (a->errors % 1000 == 1)      /* EMFILE and friends: now and then, not per try */
			log_warn("event=accept_error worker=%u error=\"%s\" count=%lu", w->id,
			         strerror(-fd), a->errors);
		return;
	}
	if (w->stopping) {
		close(fd);
		return;
	}
	smtp_server_accept(&w->smtpd, fd, l->idx);
}

static void begin_stop(struct worker *w)
{
	w->stopping = true;
	/* shutdown_timeout from the configuration in force (a reload may have changed it) */
	w->stop_deadline_ms = w->loop.now_ms + (uint64_t)w->snap->cfg->shutdown_timeout * 1000u;
	for (size_t i = 0; i < w->nlis; i++)
		listener_accept_stop(&w->lis[i].acc);
	spool_stopping(&w->spool);
	if (w->queue_up)
		queue_stop(&w->queue);         /* from here on, it posts no job to an owner */
	if (w->id == 0)
		egress_checker_stop(w);        /* the probes end */
	atomic_fetch_add(&w->srv->stopping_workers, 1);
	log_info("event=stopping worker=%u connections=%zu", w->id, w->smtpd.nconns);
}

/* The worker's turn: the snapshot in force, and the stop. */
static unsigned worker_turn(void *ctx)
{
	struct worker *w = ctx;
	w->snap = snapshot_get();
	metrics_publish(w, false);
	if (w->queue_up && w->snap->generation != w->queue.generation) {
		if (w->queue.generation)
			queue_reconfigured(&w->queue);  /* a reload: re-route what waits */
		w->queue.generation = w->snap->generation;
	}
	if (w->id == 0 && !w->stopping && w->queue_up)
		egress_checker_turn(w);        /* the relay's one proxy health checker */
	if (w->queue_up && !w->stopping)
		queue_egress_poll(&w->queue);  /* a pool's server or a source came or went */
	if (!w->stopping && atomic_load(&w->srv->stop))
		begin_stop(w);
	if (w->stopping) {
		bool force = w->loop.now_ms >= w->stop_deadline_ms;
		if (force && !w->forced) {
			w->forced = true;
			log_warn("event=stop_deadline worker=%u connections=%zu note=\"shutdown_timeout reached: cutting them\"",
			         w->id, w->smtpd.nconns);
		}
		smtp_server_stop(&w->smtpd, force);
		if (w->smtpd.nconns == 0 && (!w->queue_up || queue_idle(&w->queue)) &&
		    spool_idle(&w->spool) && (owner_idle(w) || w->forced) &&
		    (w->id != 0 || egress_checker_idle(w)))
			net_loop_quit(&w->loop);
	}
	return TIMER_TICK_MS * 1000u;
}

static void worker_idle(void *ctx)
{
	struct worker *w = ctx;
	spool_flush(&w->spool);
	log_flush();
}

static void worker_wait(void *ctx, bool begin)
{
	struct worker *w = ctx;
	if (begin) {
		rcu_thread_offline();
		return;
	}
	rcu_thread_online();
	w->snap = snapshot_get();
}

static const struct net_loop_hooks worker_hooks = {
	.turn = worker_turn,
	.idle = worker_idle,
	.wait = worker_wait,
};

/* The test build can shrink the provided-buffer ring (RR_TEST_RECV_BUFS=count,size) so
 * that tests drive multishot recv into -ENOBUFS and its re-arm under real load, and the
 * submission queue (RR_TEST_RING_ENTRIES=n) so that the sends of a turn fill it right
 * before the spool's commit; RR_TEST_TLS_BUDGET=n sets the TLS handshake steps per turn
 * (a handshake flood then meets the budget at once). */
static void loop_shape(struct net_loop_params *p)
{
	memset(p, 0, sizeof *p);
#ifdef RR_TEST_BUILD
	const char *e = getenv("RR_TEST_RECV_BUFS");
	unsigned c, s;
	if (e && sscanf(e, "%u,%u", &c, &s) == 2 && c > 0 && (c & (c - 1)) == 0 && s >= 16) {
		p->bufs = c;
		p->buf_size = s;
	}
	e = getenv("RR_TEST_RING_ENTRIES");
	if (e && sscanf(e, "%u", &c) == 1 && c >= 2 && (c & (c - 1)) == 0) {
		p->sq_entries = c;
		p->cq_entries = 4096;
	}
#endif
}

static int worker_setup(struct worker *w)
{
	struct net_loop_params lp;
	loop_shape(&lp);
	int ret = net_loop_init(&w->loop, &lp, &worker_hooks, w);
#ifdef RR_TEST_BUILD
	const char *tb = getenv("RR_TEST_TLS_BUDGET");
	if (ret == 0 && tb && atoi(tb) > 0)
		w->loop.tls_budget.per_turn = (unsigned)atoi(tb);
#endif
	if (ret < 0) {
		log_err("event=ring_failed worker=%u error=\"%s\"", w->id, strerror(-ret));
		return ret;
	}
	w->snap = snapshot_get();
	w->qid.blocks = &w->srv->qid_blocks;
	smtp_server_init(&w->smtpd, &w->loop, &inbound_ops, w, sizeof(struct inbound_conn), w->id);
	ret = spool_init(&w->spool, &w->loop, w->srv->spool_dir, w->id, w->srv->nworkers,
	                 w->srv->spool_sync,
	                 inbound_spooled);
	if (ret < 0) {
		log_err("event=spool_failed worker=%u error=\"%s\"", w->id, strerror(-ret));
		return ret;
	}
	ret = queue_init(&w->queue, w, &w->loop, &w->spool, w->srv->spool_dir);
	if (ret < 0) {
		log_err("event=queue_failed worker=%u error=\"%s\"", w->id, strerror(-ret));
		return ret;
	}
	w->queue_up = true;
	owner_init(w);
	egress_worker_init(w);
	control_worker_init(w);
	if (w->srv->recovered) {
		struct queue_recovered *r = w->srv->recovered[w->id];
		w->srv->recovered[w->id] = NULL;
		while (r) {
			struct queue_recovered *next = r->next;
			queue_adopt(&w->queue, r);
			r = next;
		}
	}
	for (size_t i = 0; i < w->nlis; i++) {
		struct wlistener *l = &w->lis[i];
		l->w = w;
		ret = listener_accept_start(&l->acc, &w->loop, l->fd, on_accept, l);
		l->fd = -1;                     /* the acceptor owns it */
		if (ret < 0) {
			log_err("event=accept_failed worker=%u error=\"%s\"", w->id, strerror(-ret));
			return ret;
		}
	}
	return 0;
}

static void worker_teardown(struct worker *w)
{
	for (size_t i = 0; i < w->nlis; i++)
		listener_accept_stop(&w->lis[i].acc);
	/* The ring first: after it, the kernel holds nothing of what is freed below. */
	net_loop_fini(&w->loop);
	if (w->queue_up)
		queue_fini(&w->queue);          /* before the spool: nothing noted after it */
	w->queue_up = false;
	if (w->spool.dirfd > 0 || w->spool.loop)
		spool_fini(&w->spool);
	smtp_server_fini(&w->smtpd);
}

/* Out of the loop: wait until every worker is, so that no ring is closed while another
 * worker may still post a letter to it (core/owner). */
static void worker_leave(struct worker *w)
{
	atomic_fetch_add(&w->srv->left, 1);
	while (atomic_load(&w->srv->left) < w->srv->nworkers)
		usleep(1000);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	if (w->cpu >= 0) {
		cpu_set_t set;
		CPU_ZERO(&set);
		CPU_SET(w->cpu, &set);
		pthread_setaffinity_np(pthread_self(), sizeof set, &set);
	}
	rcu_register_thread();
	log_thread_buffered(true);
	w->start_error = worker_setup(w);
	if (w->start_error == 0)
		log_info("event=worker_up worker=%u cpu=%d ring=%s", w->id, w->cpu, w->loop.ring_desc);
	log_flush();
	atomic_fetch_add(&w->srv->ready, 1);
	if (w->start_error) {
		atomic_fetch_add(&w->srv->stopping_workers, 1);
		worker_leave(w);
		worker_teardown(w);
		log_flush();
		rcu_unregister_thread();
		return NULL;
	}
	net_loop_run(&w->loop);
	control_worker_fini(w);
	metrics_publish(w, true);          /* the last figures, for the scrapes still to come */
	const struct spool *sp = &w->spool;
	log_info("event=worker_down worker=%u commits=%llu messages=%llu notes=%llu delivered=%llu "
	         "deferred=%llu bounced=%llu dsns=%llu chains=%llu commit_avg_us=%llu "
	         "commit_max_us=%llu enobufs=%llu sqe_failures=%llu reclaimed=%llu copies=%llu "
	         "tls_budget_waits=%llu", w->id,
	         (unsigned long long)sp->commits, (unsigned long long)sp->messages,
	         (unsigned long long)sp->notes, (unsigned long long)w->queue.delivered,
	         (unsigned long long)w->queue.deferred, (unsigned long long)w->queue.bounced,
	         (unsigned long long)w->queue.dsns, (unsigned long long)sp->linked_chains,
	         (unsigned long long)(sp->commits ? sp->commit_ns / sp->commits / 1000 : 0),
	         (unsigned long long)(sp->commit_ns_max / 1000), (unsigned long long)w->loop.enobufs,
	         (unsigned long long)w->loop.sqe_failures, (unsigned long long)sp->reclaimed,
	         (unsigned long long)w->queue.copies, (unsigned long long)w->loop.tls_budget.spent);
	worker_leave(w);
	worker_teardown(w);
	log_flush();
	rcu_unregister_thread();
	return NULL;
}

int worker_start_all(struct server *srv)
{
	/* Workers take no signals: the main thread owns them (signalfd). main() blocks them
	 * before anything else; this keeps it true whoever calls. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	unsigned started = 0;
	int err = 0;
	for (unsigned i = 0; i < srv->nworkers; i++) {
		struct worker *w = &srv->workers[i];
		w->srv = srv;
		int ret = pthread_create(&w->thread, NULL, worker_main, w);
		if (ret) {
			err = -ret;
			break;
		}
		started++;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err) {
		srv->nworkers = started;        /* worker_stop_all joins only those */
		return err;
	}
	while (atomic_load(&srv->ready) < srv->nworkers)
		usleep(1000);
	for (unsigned i = 0; i < srv->nworkers; i++)
		if (srv->workers[i].start_error)
			return srv->workers[i].start_error;
	atomic_store(&srv->all_up, true);
	return 0;
}

void worker_stop_all(struct server *srv)
{
	atomic_store(&srv->stop, true);
	for (unsigned i = 0; i < srv->nworkers; i++)
		pthread_join(srv->workers[i].thread, NULL);
}
