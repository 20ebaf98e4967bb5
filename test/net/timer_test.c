/* Unit tests for net/timer: the hashed wheel. */
#include <criterion/criterion.h>
#include <string.h>

#include "net/timer.h"

struct probe {
	struct timer t;
	int fired;
	uint64_t fired_at_tick;
	struct timer_wheel *w;
	uint64_t rearm_ms;
};

static void on_fire(struct timer *t)
{
	struct probe *p = (struct probe *)t;
	p->fired++;
	p->fired_at_tick = p->w->now;
	if (p->rearm_ms) {
		uint64_t ms = p->rearm_ms;
		p->rearm_ms = 0;
		timer_arm(p->w, &p->t, ms);
	}
}

static struct timer_wheel wheel;

Test(timer, fires_at_deadline_not_before)
{
	timer_wheel_init(&wheel, 1000000);
	struct probe p = { .t.fire = on_fire, .w = &wheel };
	timer_arm(&wheel, &p.t, 250);          /* 3 ticks, rounded up */
	cr_assert(timer_armed(&p.t));
	cr_assert_eq(timer_advance(&wheel, 1000000 + 200), 0);
	cr_assert_eq(p.fired, 0);
	cr_assert_eq(timer_advance(&wheel, 1000000 + 300), 1);
	cr_assert_eq(p.fired, 1);
	cr_assert_not(timer_armed(&p.t));
}

Test(timer, cancel_and_rearm)
{
	timer_wheel_init(&wheel, 0);
	struct probe a = { .t.fire = on_fire, .w = &wheel }, b = { .t.fire = on_fire, .w = &wheel };
	timer_arm(&wheel, &a.t, 100);
	timer_arm(&wheel, &b.t, 100);
	timer_cancel(&a.t);
	timer_cancel(&a.t);                     /* twice is harmless */
	timer_arm(&wheel, &b.t, 500);           /* re-arm moves it */
	timer_advance(&wheel, 400);
	cr_assert_eq(a.fired, 0);
	cr_assert_eq(b.fired, 0);
	timer_advance(&wheel, 500);
	cr_assert_eq(b.fired, 1);
}

Test(timer, beyond_one_revolution)
{
	uint64_t rev_ms = (uint64_t)TIMER_SLOTS * TIMER_TICK_MS;
	timer_wheel_init(&wheel, 0);
	struct probe p = { .t.fire = on_fire, .w = &wheel };
	timer_arm(&wheel, &p.t, 3 * rev_ms + 100);
	timer_advance(&wheel, rev_ms);
	timer_advance(&wheel, 2 * rev_ms);
	timer_advance(&wheel, 3 * rev_ms);
	cr_assert_eq(p.fired, 0);
	timer_advance(&wheel, 3 * rev_ms + 100);
	cr_assert_eq(p.fired, 1);
}

Test(timer, big_jump_fires_everything_once)
{
	timer_wheel_init(&wheel, 0);
	struct probe p[50];
	memset(p, 0, sizeof p);
	for (int i = 0; i < 50; i++) {
		p[i].t.fire = on_fire;
		p[i].w = &wheel;
		timer_arm(&wheel, &p[i].t, (uint64_t)(i + 1) * 1000);
	}
	cr_assert_eq(timer_advance(&wheel, 10u * 1000 * 1000), 50);
	for (int i = 0; i < 50; i++)
		cr_assert_eq(p[i].fired, 1);
}

Test(timer, never_early_from_mid_tick)
{
	/* The wheel's tick lags its time by 90 ms here: a 100 ms timer must still wait 100 ms. */
	timer_wheel_init(&wheel, 1000);
	timer_advance(&wheel, 1090);
	struct probe p = { .t.fire = on_fire, .w = &wheel };
	timer_arm(&wheel, &p.t, 100);
	timer_advance(&wheel, 1150);
	cr_assert_eq(p.fired, 0, "fired 60 ms after arming a 100 ms timer");
	timer_advance(&wheel, 1189);
	cr_assert_eq(p.fired, 0);
	timer_advance(&wheel, 1200);
	cr_assert_eq(p.fired, 1);
}

Test(timer, rearm_from_fire)
{
	timer_wheel_init(&wheel, 0);
	struct probe p = { .t.fire = on_fire, .w = &wheel, .rearm_ms = 100 };
	timer_arm(&wheel, &p.t, 100);
	timer_advance(&wheel, 100);
	cr_assert_eq(p.fired, 1);
	cr_assert(timer_armed(&p.t));
	timer_advance(&wheel, 200);
	cr_assert_eq(p.fired, 2);
	cr_assert_eq(p.fired_at_tick, 2);
}
