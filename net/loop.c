/* net/loop — see loop.h. */
#include "net/loop.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "net/alarm.h"
#include "net/listener.h"
#include "net/post.h"
#include "net/stream.h"

#define LOOP_DEF_SQ 1024u
#define LOOP_DEF_BUFS 1024u
#define LOOP_DEF_BUF_SIZE 16384u
#define LOOP_BGID 1
#define LOOP_SUBMIT_TRIES 8       /* then net_loop_sqe() gives up: no spinning */

int net_loop_init(struct net_loop *l, const struct net_loop_params *p,
                  const struct net_loop_hooks *hooks, void *ctx)
{
	unsigned sq = p && p->sq_entries ? p->sq_entries : LOOP_DEF_SQ;
	unsigned cq = p && p->cq_entries ? p->cq_entries : 8 * sq;
	unsigned nbufs = p && p->bufs ? p->bufs : LOOP_DEF_BUFS;
	unsigned bsize = p && p->buf_size ? p->buf_size : LOOP_DEF_BUF_SIZE;

	memset(l, 0, sizeof *l);
	l->hooks = hooks;
	l->ctx = ctx;
	int ret = uring_init(&l->ring, sq, cq, &l->ring_desc);
	if (ret < 0)
		return ret;
	ret = uring_bufs_init(&l->ring, &l->bufs, LOOP_BGID, nbufs, bsize);
	if (ret < 0) {
		io_uring_queue_exit(&l->ring);
		return ret;
	}
	l->now_ms = timer_now_ms();
	timer_wheel_init(&l->wheel, l->now_ms);
	l->tls_budget.per_turn = NET_LOOP_TLS_BUDGET;
	l->up = true;
	return 0;
}

void net_loop_fini(struct net_loop *l)
{
	if (!l->up)
		return;
	uring_bufs_fini(&l->ring, &l->bufs);
	io_uring_queue_exit(&l->ring);
	free(l->saved);
	l->saved = NULL;
	l->nsaved = l->capsaved = 0;
	l->up = false;
}

void net_loop_handle(struct net_loop *l, unsigned kind, net_op_fn *fn)
{
	if (kind < NET_OP_USER || kind >= NET_OP_KINDS)
		abort();                        /* a broken invariant: a kind out of range */
	l->handlers[kind] = fn;
}

/* The CQ is full and the kernel will not take a submission until it drains: move the
 * completions into our own list, in order. They are dispatched at the next dispatch. */
static int loop_save_cqes(struct net_loop *l)
{
	struct io_uring_cqe *cqe;
	unsigned head, n = 0;
	io_uring_for_each_cqe(&l->ring, head, cqe) {
		if (l->nsaved == l->capsaved) {
			size_t cap = l->capsaved ? l->capsaved * 2 : 256;
			struct net_cqe_saved *v = realloc(l->saved, cap * sizeof *v);
			if (!v)
				break;
			l->saved = v;
			l->capsaved = cap;
		}
		l->saved[l->nsaved++] = (struct net_cqe_saved){ cqe->user_data, cqe->res, cqe->flags };
		n++;
	}
	io_uring_cq_advance(&l->ring, n);
	return (int)n;
}

/* Room for n SQEs, submitting what is queued (bounded tries). 0 or -EBUSY. */
static int loop_room(struct net_loop *l, unsigned n)
{
	for (unsigned tries = 0; io_uring_sq_space_left(&l->ring) < n; tries++) {
		if (tries == LOOP_SUBMIT_TRIES)
			return -EBUSY;
		l->submits++;
		int ret = io_uring_submit(&l->ring);
		if (ret == -EBUSY || ret == -EAGAIN)
			loop_save_cqes(l);
	}
	return 0;
}

struct io_uring_sqe *net_loop_sqe(struct net_loop *l, struct net_op *op)
{
	struct io_uring_sqe *sqe = loop_room(l, 1) == 0 ? io_uring_get_sqe(&l->ring) : NULL;
	if (!sqe) {
		l->sqe_failures++;
		return NULL;
	}
	net_sqe_op(sqe, op);
	return sqe;
}

int net_loop_sqes(struct net_loop *l, struct io_uring_sqe **v, unsigned n)
{
	if (n == 0 || n > l->ring.sq.ring_entries || loop_room(l, n) < 0) {
		l->sqe_failures++;
		return -EBUSY;
	}
	for (unsigned i = 0; i < n; i++) {
		v[i] = io_uring_get_sqe(&l->ring);   /* cannot fail: the room is there */
		io_uring_sqe_set_data64(v[i], 0);
	}
	return 0;
}

static void loop_dispatch_one(struct net_loop *l, uint64_t ud, int res, unsigned flags)
{
	struct net_op *op = (struct net_op *)(uintptr_t)ud;
	if (!op)
		return;
	switch (op->kind) {
	case NET_OP_ACCEPT:
		listener_on_accept(listener_acceptor_of(op), res, flags);
		return;
	case NET_OP_RECV:
		net_stream_on_recv((struct net_stream *)((char *)op - offsetof(struct net_stream, recv_op)),
		                   res, flags);
		return;
	case NET_OP_SEND:
		net_stream_on_send((struct net_stream *)((char *)op - offsetof(struct net_stream, send_op)),
		                   res);
		return;
	case NET_OP_LETTER:
		net_post_on_letter(l, (struct net_letter *)((char *)op - offsetof(struct net_letter, op)));
		return;
	case NET_OP_UNSENT:
		net_post_on_unsent(l, (struct net_letter *)((char *)op - offsetof(struct net_letter, back)),
		                   res);
		return;
	case NET_OP_ALARM:
		net_alarm_on_fire((struct net_alarm *)((char *)op - offsetof(struct net_alarm, op)), res);
		return;
	case NET_OP_NONE:
		return;
	default:
		if (op->kind < NET_OP_KINDS && l->handlers[op->kind]) {
			l->handlers[op->kind](l, op, res, flags);
			return;
		}
		abort();                        /* a completion nobody handles: a broken invariant */
	}
}

/* What was moved aside, in order. The handlers may move more aside (they submit), so
 * walk by index and copy each entry out before its handler runs. */
static void loop_dispatch_saved(struct net_loop *l)
{
	for (size_t i = 0; i < l->nsaved; i++) {
		struct net_cqe_saved c = l->saved[i];
		loop_dispatch_one(l, c.user_data, c.res, c.flags);
	}
	l->nsaved = 0;
}

static void loop_dispatch(struct net_loop *l)
{
	/* What was moved aside completed before what is in the CQ now. */
	loop_dispatch_saved(l);
	for (;;) {
		struct io_uring_cqe *cqe;
		unsigned head;
		io_uring_for_each_cqe(&l->ring, head, cqe) {
			uint64_t ud = cqe->user_data;
			int res = cqe->res;
			unsigned flags = cqe->flags;
			/* Consume before the handler: it may submit, and a submission may move
			 * completions aside, which must not see this one again. */
			io_uring_cq_advance(&l->ring, 1);
			loop_dispatch_one(l, ud, res, flags);
			if (l->nsaved)
				break;
		}
		if (!l->nsaved)
			return;
		loop_dispatch_saved(l);
	}
}

void net_loop_flush(struct net_loop *l)
{
	while (l->dirty) {
		struct net_stream *s = l->dirty;
		l->dirty = NULL;
		while (s) {
			struct net_stream *next = s->dirty_next;
			s->dirty = 0;
			net_stream_flush(s);          /* may release s */
			s = next;
		}
	}
}

/* A new turn's handshake budget; the streams that waited for it are flushed again. */
static void loop_tls_refill(struct net_loop *l)
{
	net_tls_budget_refill(&l->tls_budget);
	struct net_stream *s = l->tls_wait;
	l->tls_wait = NULL;
	while (s) {
		struct net_stream *next = s->tls_wait_next;
		s->tls_waiting = 0;
		s->tls_wait_next = NULL;
		s->offer = 1;                   /* the flush feeds it again */
		net_stream_dirty(s);
		s = next;
	}
}

void net_loop_turn(struct net_loop *l)
{
	l->now_ms = timer_now_ms();
	loop_tls_refill(l);
	unsigned wait_us = l->hooks && l->hooks->turn ? l->hooks->turn(l->ctx)
	                                              : TIMER_TICK_MS * 1000u;
	net_loop_flush(l);
	if (l->tls_wait)
		wait_us = 0;                    /* handshakes wait for the next turn's budget */
	if (l->hooks && l->hooks->idle)
		l->hooks->idle(l->ctx);
	if (l->outbox)
		net_post_retry(l);
	if (l->quit)
		return;
	if (l->hooks && l->hooks->wait)
		l->hooks->wait(l->ctx, true);
	struct io_uring_cqe *cqe;
	struct __kernel_timespec ts = { .tv_sec = wait_us / 1000000u,
	                                .tv_nsec = (long long)(wait_us % 1000000u) * 1000 };
	l->submits++;
	int ret = l->nsaved ? io_uring_submit(&l->ring)
	                    : io_uring_submit_and_wait_timeout(&l->ring, &cqe, 1, &ts, NULL);
	if (ret == -EBUSY || ret == -EAGAIN)
		loop_save_cqes(l);
	if (l->hooks && l->hooks->wait)
		l->hooks->wait(l->ctx, false);
	l->now_ms = timer_now_ms();
	loop_dispatch(l);
	timer_advance(&l->wheel, l->now_ms);
}

void net_loop_run(struct net_loop *l)
{
	while (!l->quit)
		net_loop_turn(l);
}

void net_loop_quit(struct net_loop *l)
{
	l->quit = true;
}
