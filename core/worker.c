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

#include "core/log.h"
#include "net/conn.h"

#define WORKER_RING_ENTRIES 1024
#define WORKER_BUFS 1024            /* provided recv buffers per worker */
#define WORKER_BUF_SIZE 16384
#define WORKER_BGID 1

void worker_mark_dirty(struct worker *w, struct conn *c)
{
	if (c->dirty)
		return;
	c->dirty = 1;
	c->dirty_next = w->dirty;
	w->dirty = c;
}

static void arm_accept(struct worker *w, struct wlistener *l)
{
	struct io_uring_sqe *sqe = uring_sqe(&w->ring);
	io_uring_prep_multishot_accept(sqe, l->fd, NULL, NULL, SOCK_CLOEXEC);
	io_uring_sqe_set_data64(sqe, uring_ud(l, URING_OP_ACCEPT));
	l->armed = true;
}

static void on_accept(struct worker *w, struct wlistener *l, int res, unsigned flags)
{
	if (!(flags & IORING_CQE_F_MORE))
		l->armed = false;
	if (res >= 0) {
		if (w->stopping)
			close(res);
		else
			conn_accepted(w, l, res);
	} else if (res != -EINVAL && res != -ECANCELED && res != -EBADF) {
		log_warn("event=accept_error worker=%u error=\"%s\"", w->id, strerror(-res));
	}
	if (!l->armed && !w->stopping && l->fd >= 0)
		arm_accept(w, l);
}

static void on_spool_done(void *waiter, bool ok)
{
	conn_spooled(waiter, ok);
}

static void dispatch(struct worker *w, struct io_uring_cqe *cqe)
{
	uint64_t ud = io_uring_cqe_get_data64(cqe);
	void *p = uring_ud_ptr(ud);
	switch (uring_ud_op(ud)) {
	case URING_OP_ACCEPT:
		on_accept(w, p, cqe->res, cqe->flags);
		break;
	case URING_OP_RECV:
		conn_on_recv(p, cqe->res, cqe->flags);
		break;
	case URING_OP_SEND:
		conn_on_send(p, cqe->res);
		break;
	case URING_OP_SPOOL_WRITE:
	case URING_OP_SPOOL_SYNC:
		spool_complete(&w->spool, p, uring_ud_op(ud), cqe->res);
		break;
	case URING_OP_NONE:
	case URING_OP_CANCEL:
		break;
	}
}

static void flush_dirty(struct worker *w)
{
	while (w->dirty) {
		struct conn *c = w->dirty;
		w->dirty = NULL;
		while (c) {
			struct conn *next = c->dirty_next;
			c->dirty = 0;
			conn_flush(c);           /* may free c */
			c = next;
		}
	}
}

static void begin_stop(struct worker *w)
{
	w->stopping = true;
	w->stop_deadline_ms = w->now_ms + (uint64_t)w->srv->grace_s * 1000u;
	for (size_t i = 0; i < w->nlis; i++) {
		if (w->lis[i].fd >= 0) {
			shutdown(w->lis[i].fd, SHUT_RDWR);   /* ends the multishot accept */
			close(w->lis[i].fd);
			w->lis[i].fd = -1;
		}
	}
	log_info("event=stopping worker=%u connections=%zu", w->id, w->nconns);
}

static void stop_sweep(struct worker *w)
{
	bool force = w->now_ms >= w->stop_deadline_ms;
	for (struct conn *c = w->conns; c; c = c->next)
		conn_stop(c, force);
}

/* The test build can shrink the provided-buffer ring (RR_TEST_RECV_BUFS=count,size) so
 * that tests drive multishot recv into -ENOBUFS and its re-arm under real load. */
static void recv_buf_shape(unsigned *count, unsigned *size)
{
	*count = WORKER_BUFS;
	*size = WORKER_BUF_SIZE;
#ifdef RR_TEST_BUILD
	const char *e = getenv("RR_TEST_RECV_BUFS");
	unsigned c, s;
	if (e && sscanf(e, "%u,%u", &c, &s) == 2 && c > 0 && (c & (c - 1)) == 0 && s >= 16) {
		*count = c;
		*size = s;
	}
#endif
}

static int worker_setup(struct worker *w)
{
	int ret = uring_init(&w->ring, WORKER_RING_ENTRIES, &w->ring_desc);
	if (ret < 0) {
		log_err("event=ring_failed worker=%u error=\"%s\"", w->id, strerror(-ret));
		return ret;
	}
	unsigned nbufs, bufsize;
	recv_buf_shape(&nbufs, &bufsize);
	ret = uring_bufs_init(&w->ring, &w->bufs, WORKER_BGID, nbufs, bufsize);
	if (ret < 0) {
		log_err("event=bufring_failed worker=%u error=\"%s\"", w->id, strerror(-ret));
		return ret;
	}
	ret = spool_init(&w->spool, &w->ring, w->srv->spool_dir, w->id, w->srv->spool_sync,
	                 on_spool_done);
	if (ret < 0) {
		log_err("event=spool_failed worker=%u error=\"%s\"", w->id, strerror(-ret));
		return ret;
	}
	w->now_ms = timer_now_ms();
	timer_wheel_init(&w->wheel, w->now_ms);
	uint32_t seed;
	if (getentropy(&seed, sizeof seed) == 0)
		w->qid_seq = seed;
	for (size_t i = 0; i < w->nlis; i++) {
		w->lis[i].w = w;
		arm_accept(w, &w->lis[i]);
	}
	return 0;
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
		log_info("event=worker_up worker=%u cpu=%d ring=%s", w->id, w->cpu, w->ring_desc);
	log_flush();
	atomic_fetch_add(&w->srv->ready, 1);
	if (w->start_error) {
		rcu_unregister_thread();
		return NULL;
	}

	for (;;) {
		w->snap = snapshot_get();
		w->now_ms = timer_now_ms();
		if (!w->stopping && atomic_load(&w->srv->stop))
			begin_stop(w);
		if (w->stopping) {
			stop_sweep(w);
			flush_dirty(w);
			if (w->nconns == 0 && spool_idle(&w->spool))
				break;
		}
		flush_dirty(w);
		spool_flush(&w->spool);
		log_flush();

		rcu_thread_offline();
		struct io_uring_cqe *cqe;
		struct __kernel_timespec ts = { .tv_sec = 0, .tv_nsec = TIMER_TICK_MS * 1000000L };
		int ret = io_uring_submit_and_wait_timeout(&w->ring, &cqe, 1, &ts, NULL);
		rcu_thread_online();
		if (ret < 0 && ret != -ETIME && ret != -EINTR && ret != -EBUSY)
			log_err("event=ring_wait_error worker=%u error=\"%s\"", w->id, strerror(-ret));
		w->snap = snapshot_get();
		w->now_ms = timer_now_ms();
		unsigned head, n = 0;
		io_uring_for_each_cqe(&w->ring, head, cqe) {
			dispatch(w, cqe);
			n++;
		}
		io_uring_cq_advance(&w->ring, n);
		timer_advance(&w->wheel, w->now_ms);
	}
	log_info("event=worker_down worker=%u commits=%llu messages=%llu enobufs=%llu", w->id,
	         (unsigned long long)w->spool.commits, (unsigned long long)w->spool.messages,
	         (unsigned long long)w->enobufs);
	log_flush();
	spool_fini(&w->spool);
	uring_bufs_fini(&w->ring, &w->bufs);
	io_uring_queue_exit(&w->ring);
	rcu_unregister_thread();
	return NULL;
}

int worker_start_all(struct server *srv)
{
	/* Workers take no signals: the main thread owns them (signalfd). */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	for (unsigned i = 0; i < srv->nworkers; i++) {
		struct worker *w = &srv->workers[i];
		w->srv = srv;
		int ret = pthread_create(&w->thread, NULL, worker_main, w);
		if (ret) {
			pthread_sigmask(SIG_SETMASK, &old, NULL);
			return -ret;
		}
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	while (atomic_load(&srv->ready) < srv->nworkers)
		usleep(1000);
	for (unsigned i = 0; i < srv->nworkers; i++)
		if (srv->workers[i].start_error)
			return srv->workers[i].start_error;
	return 0;
}

void worker_stop_all(struct server *srv)
{
	atomic_store(&srv->stop, true);
	for (unsigned i = 0; i < srv->nworkers; i++)
		pthread_join(srv->workers[i].thread, NULL);
}
