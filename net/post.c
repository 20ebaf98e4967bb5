/* net/post — see post.h. */
#include "net/post.h"

#include <stdlib.h>

static void outbox_add(struct net_loop *l, struct net_letter *t)
{
	t->next = NULL;
	if (l->outbox_tail)
		l->outbox_tail->next = t;
	else
		l->outbox = t;
	l->outbox_tail = t;
}

/* Hand t to the ring; false when the ring cannot take it now. */
static bool post_one(struct net_loop *from, struct net_letter *t)
{
	struct io_uring_sqe *sqe = net_loop_sqe(from, &t->back);
	if (!sqe)
		return false;
	io_uring_prep_msg_ring(sqe, t->to->ring.ring_fd, 0, (uint64_t)(uintptr_t)&t->op, 0);
	net_sqe_op(sqe, &t->back);           /* the prep cleared it */
	sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
	return true;
}

void net_post(struct net_loop *from, struct net_post_office *office, struct net_loop *to,
              unsigned kind, struct net_letter *t)
{
	if (kind < NET_OP_USER || kind >= NET_OP_KINDS)
		abort();                           /* a broken invariant: a kind out of range */
	t->op.kind = NET_OP_LETTER;
	t->back.kind = NET_OP_UNSENT;
	t->kind = (uint8_t)kind;
	t->to = to;
	t->office = office;
	atomic_fetch_add_explicit(&office->inflight, 1, memory_order_acq_rel);
	if (from->outbox || !post_one(from, t))
		outbox_add(from, t);
}

void net_post_on_letter(struct net_loop *l, struct net_letter *t)
{
	atomic_fetch_sub_explicit(&t->office->inflight, 1, memory_order_acq_rel);
	if (t->kind < NET_OP_KINDS && l->handlers[t->kind]) {
		l->handlers[t->kind](l, &t->op, 0, 0);
		return;
	}
	abort();                               /* a letter nobody here handles */
}

void net_post_on_unsent(struct net_loop *l, struct net_letter *t, int res)
{
	(void)res;                             /* -EOVERFLOW (its CQ is full) and the like */
	l->post_failures++;
	outbox_add(l, t);
}

void net_post_retry(struct net_loop *l)
{
	struct net_letter *t = l->outbox;
	l->outbox = l->outbox_tail = NULL;
	while (t) {
		struct net_letter *next = t->next;
		if (l->outbox || !post_one(l, t))
			outbox_add(l, t);
		t = next;
	}
}
