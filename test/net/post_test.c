/* net/post: letters between two loops running in two threads. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdlib.h>

#include "net/loop.h"
#include "net/post.h"

enum { T_KIND = NET_OP_USER + 3, T_REPLY = NET_OP_USER + 4 };

struct t_letter {
	struct net_letter l;
	unsigned seq;
	struct net_loop *from;
};

struct t_side {
	struct net_loop loop;
	struct net_post_office *office;
	struct t_side *peer;
	unsigned got, replies, want;
	unsigned long long sum;
	pthread_t th;
	struct net_loop_params params;
};

static unsigned t_turn(void *ctx)
{
	(void)ctx;
	return 50000u;
}
static const struct net_loop_hooks t_hooks = { .turn = t_turn };

static struct t_side *side_of(struct net_loop *l)
{
	return (struct t_side *)((char *)l - offsetof(struct t_side, loop));
}

/* B: every letter is counted and sent back as a reply (the receiver owns it). */
static void on_letter(struct net_loop *l, struct net_op *op, int res, unsigned flags)
{
	(void)res;
	(void)flags;
	struct t_side *b = side_of(l);
	struct t_letter *t = (struct t_letter *)((char *)op - offsetof(struct t_letter, l.op));
	b->got++;
	b->sum += t->seq;
	net_post(l, b->office, t->from, T_REPLY, &t->l);
}

/* A: the reply comes home and is freed. */
static void on_reply(struct net_loop *l, struct net_op *op, int res, unsigned flags)
{
	(void)res;
	(void)flags;
	struct t_side *a = side_of(l);
	struct t_letter *t = (struct t_letter *)((char *)op - offsetof(struct t_letter, l.op));
	a->replies++;
	free(t);
}

static pthread_mutex_t t_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t t_cv = PTHREAD_COND_INITIALIZER;
static int t_b_up;                       /* 1: B's loop is up, -1: it failed */

/* A ring with a single issuer belongs to the thread that made it: B makes its own. */
static void *b_run(void *arg)
{
	struct t_side *b = arg;
	int ret = net_loop_init(&b->loop, &b->params, &t_hooks, NULL);
	if (ret == 0)
		net_loop_handle(&b->loop, T_KIND, on_letter);
	pthread_mutex_lock(&t_mu);
	t_b_up = ret == 0 ? 1 : -1;
	pthread_cond_signal(&t_cv);
	pthread_mutex_unlock(&t_mu);
	if (ret < 0)
		return NULL;
	/* until every letter came and went back, bounded by a count of turns */
	for (unsigned i = 0; i < 20000 && (b->got < b->want || net_post_pending(&b->loop)); i++)
		net_loop_turn(&b->loop);
	for (unsigned i = 0; i < 10; i++)      /* let the last replies reach the kernel */
		net_loop_turn(&b->loop);
	return NULL;
}

static void t_pair(unsigned n, unsigned cq_entries)
{
	struct net_post_office office = { 0 };
	static struct t_side a, b;
	memset(&a, 0, sizeof a);
	memset(&b, 0, sizeof b);
	b.params = (struct net_loop_params){ .sq_entries = 64, .cq_entries = cq_entries };
	cr_assert_eq(net_loop_init(&a.loop, NULL, &t_hooks, NULL), 0);
	net_loop_handle(&a.loop, T_REPLY, on_reply);
	a.office = b.office = &office;
	a.peer = &b;
	b.peer = &a;
	b.want = n;
	t_b_up = 0;
	cr_assert_eq(pthread_create(&b.th, NULL, b_run, &b), 0);
	pthread_mutex_lock(&t_mu);
	while (t_b_up == 0)
		pthread_cond_wait(&t_cv, &t_mu);
	pthread_mutex_unlock(&t_mu);
	cr_assert_eq(t_b_up, 1, "B's loop did not start");
	unsigned long long want_sum = 0;
	for (unsigned i = 0; i < n; i++) {
		struct t_letter *t = calloc(1, sizeof *t);
		cr_assert_not_null(t);
		t->seq = i;
		t->from = &a.loop;
		want_sum += i;
		net_post(&a.loop, &office, &b.loop, T_KIND, &t->l);
		if (i % 512 == 511)
			net_loop_turn(&a.loop);
	}
	for (unsigned i = 0; i < 20000 && a.replies < n; i++)
		net_loop_turn(&a.loop);
	pthread_join(b.th, NULL);
	cr_expect_eq(b.got, n, "B got %u of %u letters", b.got, n);
	cr_expect_eq(b.sum, want_sum, "each letter once");
	cr_expect_eq(a.replies, n, "A got %u of %u replies", a.replies, n);
	cr_expect_eq(net_post_inflight(&office), 0);
	cr_expect(!net_post_pending(&a.loop));
	net_loop_fini(&a.loop);
	net_loop_fini(&b.loop);                /* B stopped running: its ring may go */
}

Test(post, letters_there_and_back)
{
	t_pair(1000, 0);
}

/* Far more letters than B's completion queue holds, posted faster than B reaps them
 * (A's SQ of 1024 is flushed every 512): none is lost or doubled, the count of letters in
 * flight comes back to 0. */
Test(post, more_than_the_receivers_cq)
{
	t_pair(20000, 128);
}
