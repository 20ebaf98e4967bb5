/* net/alarm — see alarm.h. */
#include "net/alarm.h"

void net_alarm_init(struct net_alarm *a, void (*fire)(struct net_alarm *a))
{
	a->op.kind = NET_OP_ALARM;
	a->armed = false;
	a->fire = fire;
}

bool net_alarm_arm(struct net_loop *l, struct net_alarm *a, uint64_t ms)
{
	if (a->armed)
		return true;
	struct io_uring_sqe *sqe = net_loop_sqe(l, &a->op);
	if (!sqe)
		return false;
	a->ts.tv_sec = (long long)(ms / 1000u);
	a->ts.tv_nsec = (long long)(ms % 1000u) * 1000000;
	/* count 0: a pure timeout, completed with -ETIME when it expires */
	io_uring_prep_timeout(sqe, &a->ts, 0, 0);
	net_sqe_op(sqe, &a->op);
	a->armed = true;
	return true;
}

void net_alarm_on_fire(struct net_alarm *a, int res)
{
	(void)res;                            /* -ETIME; anything else: fire all the same,
	                                         the owner re-checks what it waits for */
	a->armed = false;
	a->fire(a);
}
