/* net/alarm: a precise one-shot deadline kept by the kernel, dispatched by the loop. */
#include <criterion/criterion.h>
#include <errno.h>

#include "net/alarm.h"
#include "net/loop.h"

static unsigned t_turn(void *ctx)
{
	(void)ctx;
	return 2000000u;                      /* the loop may wait 2 s: only the alarm wakes it */
}
static const struct net_loop_hooks t_hooks = { .turn = t_turn };

struct t_alarm {
	struct net_alarm a;
	unsigned fired;
	uint64_t at_ms;
	struct net_loop *l;
};

static void t_fire(struct net_alarm *a)
{
	struct t_alarm *t = (struct t_alarm *)a;
	t->fired++;
	t->at_ms = t->l->now_ms;
}

/* An alarm fires once, not before its time, from the turn whose wait it ended: the loop,
 * allowed to wait 2 s, is woken by the 30 ms alarm (both are kernel timers: the order
 * does not depend on the machine's load). */
Test(alarm, fires_once_at_its_time_and_wakes_the_loop)
{
	struct net_loop loop;
	cr_assert_eq(net_loop_init(&loop, NULL, &t_hooks, NULL), 0);
	struct t_alarm t = { .l = &loop };
	net_alarm_init(&t.a, t_fire);
	uint64_t t0 = timer_now_ms();
	cr_assert(net_alarm_arm(&loop, &t.a, 30));
	cr_expect(net_alarm_armed(&t.a));
	cr_assert(net_alarm_arm(&loop, &t.a, 5), "an armed alarm stands");
	net_loop_turn(&loop);
	cr_assert_eq(t.fired, 1, "the alarm did not end the loop's wait");
	cr_expect_geq(t.at_ms - t0, 30, "fired after %llu ms, before its 30",
	              (unsigned long long)(t.at_ms - t0));
	cr_expect(!net_alarm_armed(&t.a));
	/* once: a second arm is a new alarm; 0 ms fires at the next dispatch */
	cr_assert(net_alarm_arm(&loop, &t.a, 0));
	net_loop_turn(&loop);
	cr_expect_eq(t.fired, 2);
	net_loop_fini(&loop);
}

/* An alarm still armed when the loop ends is given back with the ring: nothing fires
 * after net_loop_fini, nothing leaks (ASan). */
Test(alarm, armed_at_fini)
{
	struct net_loop loop;
	cr_assert_eq(net_loop_init(&loop, NULL, &t_hooks, NULL), 0);
	struct t_alarm t = { .l = &loop };
	net_alarm_init(&t.a, t_fire);
	cr_assert(net_alarm_arm(&loop, &t.a, 60000));
	net_loop_flush(&loop);
	cr_assert_geq(io_uring_submit(&loop.ring), 0);
	net_loop_fini(&loop);
	cr_expect_eq(t.fired, 0);
}
