/* test/proto/rate_test — proto/rate: unlimited, a steady rate, bursts, an idle spell that
 * banks no more than the burst, the exact count over long runs for many rates (3/s is
 * 3/s), the window bound under random arrivals, the wait promise, time going backwards,
 * 1/h, 10000/s, and values up to UINT64_MAX without overflow. */
#include <criterion/criterion.h>

#include <inttypes.h>
#include <stdint.h>
#include <string.h>

#include "proto/rate.h"

/* rate_wait_ms()'s promise at now: a take at now + wait succeeds, one a ms earlier
 * fails (checked on copies: r is left as it is). */
static void expect_promise(const struct rate *r, uint64_t now)
{
	uint64_t w = rate_wait_ms(r, now);
	struct rate at = *r, before = *r;
	if (w == 0) {
		cr_expect(rate_take(&at, now), "wait 0 at %" PRIu64 " but the take fails", now);
		return;
	}
	cr_expect(rate_take(&at, now + w), "wait %" PRIu64 " at %" PRIu64 ": take fails then",
	          w, now);
	cr_expect_not(rate_take(&before, now + w - 1), "wait %" PRIu64 " at %" PRIu64
	              ": a take a ms earlier succeeds", w, now);
}

/* Take every event that conforms, at every ms in [0, T): jumping by rate_wait_ms(), the
 * way the caller's timer will. Returns how many were taken. */
static uint64_t greedy(struct rate *r, uint64_t t_end)
{
	uint64_t n = 0, t = 0;
	while (t < t_end) {
		while (rate_take(r, t))
			n++;
		expect_promise(r, t);
		uint64_t w = rate_wait_ms(r, t);
		cr_assert_gt(w, 0, "a take failed but the wait is 0 at %" PRIu64, t);
		t += w;
	}
	return n;
}

Test(rate, unlimited_always_conforms)
{
	struct rate r;
	static const struct {
		uint32_t events;
		uint64_t period;
	} cases[] = { { 0, 1000 }, { 5, 0 }, { 0, 0 } };
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		rate_init(&r, cases[i].events, cases[i].period, 1);
		cr_expect(rate_unlimited(&r));
		for (int k = 0; k < 100000; k++)
			cr_assert(rate_take(&r, 7));
		cr_expect_eq(rate_wait_ms(&r, 7), 0);
		cr_expect(rate_take(&r, 0), "even with the clock back");
		cr_expect(rate_take(&r, UINT64_MAX));
	}
	rate_init(&r, 1, 1000, 1);
	cr_expect_not(rate_unlimited(&r));
}

Test(rate, steady_rate_of_ten_a_second)
{
	struct rate r;
	rate_init(&r, 10, 1000, 1);
	cr_expect_eq(rate_wait_ms(&r, 0), 0, "starts idle");
	cr_expect(rate_take(&r, 0));
	cr_expect_not(rate_take(&r, 0));
	cr_expect_eq(rate_wait_ms(&r, 0), 100);
	cr_expect_eq(rate_wait_ms(&r, 1), 99);
	cr_expect_eq(rate_wait_ms(&r, 99), 1);
	cr_expect_not(rate_take(&r, 99));
	cr_expect(rate_take(&r, 100));
	cr_expect_not(rate_take(&r, 150));
	cr_expect(rate_take(&r, 200));
	/* late is not early for the next one: it is due 100 ms after this take */
	cr_expect(rate_take(&r, 350));
	cr_expect_not(rate_take(&r, 449));
	cr_expect(rate_take(&r, 450));

	rate_init(&r, 10, 1000, 1);
	cr_expect_eq(greedy(&r, 10000), 100, "100 in 10 s");
}

Test(rate, burst_then_the_rate)
{
	struct rate r;
	rate_init(&r, 10, 1000, 5);
	for (int i = 0; i < 5; i++)
		cr_expect(rate_take(&r, 1000), "burst event %d", i);
	cr_expect_not(rate_take(&r, 1000));
	cr_expect_eq(rate_wait_ms(&r, 1000), 100);
	cr_expect_not(rate_take(&r, 1099));
	cr_expect(rate_take(&r, 1100));
	cr_expect_not(rate_take(&r, 1100));
	/* burst 0 is a burst of 1 */
	rate_init(&r, 10, 1000, 0);
	cr_expect(rate_take(&r, 0));
	cr_expect_not(rate_take(&r, 0));
}

Test(rate, long_idle_banks_no_more_than_the_burst)
{
	static const uint64_t idle[] = { 1000, 3600000, 86400000ull * 365, UINT64_MAX / 2 };
	for (size_t i = 0; i < sizeof(idle) / sizeof(idle[0]); i++) {
		struct rate r;
		int n = 0;
		rate_init(&r, 10, 1000, 5);
		cr_expect(rate_take(&r, 0));
		while (rate_take(&r, idle[i]))
			n++;
		cr_expect_eq(n, 5, "after %" PRIu64 " ms idle: %d at once", idle[i], n);
		cr_expect_eq(rate_wait_ms(&r, idle[i]), 100);
	}
}

/* Taken greedily at the ticks of [0, T), ceil(T * E / P) + burst - 1 events: the k-th
 * (from 0) is due at k * P / E - tau and goes in the tick that holds that time. Exact for
 * every rate, whatever P / E rounds to, and nothing is lost to the ticks. */
Test(rate, greedy_count_is_exact_for_many_rates)
{
	static const struct {
		uint32_t events;
		uint64_t period, t_end;
		uint32_t burst;
	} cases[] = {
		{ 3, 1000, 1000000, 1 },       /* 1000/3 ms is no whole number */
		{ 7, 1000, 1000000, 1 },
		{ 7, 1000, 1000000, 4 },
		{ 1, 1000, 60000, 1 },
		{ 999, 1000, 10000, 1 },
		{ 1000, 1000, 10000, 1 },
		{ 1001, 1000, 10000, 1 },      /* over 1/ms: 2 in some ticks */
		{ 2, 60000, 3600000, 1 },      /* 2/min */
		{ 17, 3600000, 86400000, 3 },  /* 17/h */
		{ 1000000, 1000, 2000, 1 },    /* the largest configurable rate: 1000 a tick */
		{ 1000000, 3600000, 3600000, 10 },
		{ 13, 7, 5000, 1 },            /* odd numbers both ways */
		{ 7, 13, 5000, 2 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct rate r;
		uint64_t e = cases[i].events, p = cases[i].period, t = cases[i].t_end;
		uint64_t b = cases[i].burst;
		rate_init(&r, cases[i].events, p, cases[i].burst);
		uint64_t got = greedy(&r, t), want = (t * e + p - 1) / p + b - 1;
		cr_expect_eq(got, want, "%" PRIu64 "/%" PRIu64 " ms burst %u over %" PRIu64
		             " ms: got %" PRIu64 ", want %" PRIu64, e, p, cases[i].burst, t, got,
		             want);
	}
}

/* Random arrivals: of the events taken at ticks t_i..t_j, fewer than
 * burst + (t_j - t_i + 1) * E / P. */
Test(rate, window_bound_under_random_arrivals)
{
	static const struct {
		uint32_t events;
		uint64_t period;
		uint32_t burst;
	} cases[] = {
		{ 10, 1000, 1 }, { 10, 1000, 5 }, { 3, 1000, 2 }, { 1000, 1000, 1 },
		{ 5000, 1000, 1 }, { 1, 60000, 3 }, { 13, 7, 4 },
	};
	static uint64_t taken[4000];
	uint32_t x = 2463534242u;
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		struct rate r;
		uint64_t e = cases[c].events, p = cases[c].period, b = cases[c].burst;
		uint64_t now = 0;
		size_t n = 0;
		rate_init(&r, cases[c].events, p, cases[c].burst);
		for (int k = 0; k < 20000 && n < sizeof(taken) / sizeof(taken[0]); k++) {
			x ^= x << 13;
			x ^= x >> 17;
			x ^= x << 5;
			/* mostly the same tick (bursts), sometimes a gap of up to 3 intervals */
			now += (x >> 3) % 4 == 0 ? (x >> 7) % (3 * p / e + 3) : 0;
			if (rate_take(&r, now))
				taken[n++] = now;
		}
		cr_assert_gt(n, b, "case %zu took only %zu", c, n);
		for (size_t i = 0; i < n; i++)
			for (size_t j = i; j < n; j++) {
				uint64_t count = j - i + 1;
				/* count < b + (t_j - t_i + 1) * e / p, in integers */
				if (count >= b)
					cr_assert_lt((count - b) * p, (taken[j] - taken[i] + 1) * e,
					              "case %zu: %" PRIu64 " events in [%" PRIu64 ", %"
					              PRIu64 "]", c, count, taken[i], taken[j]);
			}
	}
}

Test(rate, time_going_backwards_is_clamped)
{
	struct rate r;
	rate_init(&r, 10, 1000, 1);
	cr_expect(rate_take(&r, 1000));
	/* the clock steps back: treated as 1000, so no credit and no longer wait */
	cr_expect_not(rate_take(&r, 0));
	cr_expect_eq(rate_wait_ms(&r, 0), 100);
	cr_expect_eq(rate_wait_ms(&r, 500), 100);
	cr_expect_not(rate_take(&r, 500));
	cr_expect(rate_take(&r, 1100));
	/* far back, from far ahead: nothing wraps */
	cr_expect(rate_take(&r, UINT64_MAX - 5000));
	cr_expect_not(rate_take(&r, 3));
	cr_expect_eq(rate_wait_ms(&r, 3), 100);
	cr_expect(rate_take(&r, UINT64_MAX - 4900));

	/* an idle limiter seeing an old time conforms once, like at the latest time */
	rate_init(&r, 10, 1000, 2);
	cr_expect(rate_take(&r, 5000));
	cr_expect(rate_take(&r, 4000));
	cr_expect_not(rate_take(&r, 4000));
	cr_expect_eq(rate_wait_ms(&r, 4000), 100);
}

Test(rate, one_an_hour)
{
	struct rate r;
	rate_init(&r, 1, 3600000, 1);
	cr_expect(rate_take(&r, 0));
	cr_expect_eq(rate_wait_ms(&r, 0), 3600000);
	cr_expect_not(rate_take(&r, 1));
	cr_expect_eq(rate_wait_ms(&r, 1), 3599999);
	cr_expect_eq(rate_wait_ms(&r, 3599999), 1);
	cr_expect_not(rate_take(&r, 3599999));
	cr_expect(rate_take(&r, 3600000));
	cr_expect_eq(rate_wait_ms(&r, 3600000), 3600000);
	rate_init(&r, 1, 3600000, 1);
	cr_expect_eq(greedy(&r, 24 * 3600000ull), 24, "24 a day");
}

Test(rate, ten_thousand_a_second)
{
	struct rate r;
	/* 10 a ms: with burst 1, all 10 of a tick go in that tick */
	rate_init(&r, 10000, 1000, 1);
	for (int i = 0; i < 10; i++)
		cr_expect(rate_take(&r, 0), "event %d of the first ms", i);
	cr_expect_not(rate_take(&r, 0));
	cr_expect_eq(rate_wait_ms(&r, 0), 1);
	rate_init(&r, 10000, 1000, 1);
	cr_expect_eq(greedy(&r, 1000), 10000);
	rate_init(&r, 10000, 1000, 1);
	cr_expect_eq(greedy(&r, 60000), 600000);
	/* a burst of 50 after idle, and the tick's 9 more: fewer than 50 + 10 */
	rate_init(&r, 10000, 1000, 50);
	for (int i = 0; i < 59; i++)
		cr_expect(rate_take(&r, 0));
	cr_expect_not(rate_take(&r, 0));
}

Test(rate, huge_values_do_not_overflow)
{
	struct rate r;

	/* one event in UINT64_MAX ms: the arrival time saturates, and so does the wait */
	rate_init(&r, 1, UINT64_MAX, 1);
	cr_expect(rate_take(&r, 0));
	cr_expect_not(rate_take(&r, 0));
	cr_expect_eq(rate_wait_ms(&r, 0), UINT64_MAX);
	cr_expect_eq(rate_wait_ms(&r, UINT64_MAX - 1), 1);
	cr_expect(rate_take(&r, UINT64_MAX));

	/* the largest tolerance: (2^32 - 2) intervals of UINT64_MAX ms */
	rate_init(&r, 1, UINT64_MAX, UINT32_MAX);
	for (int i = 0; i < 1000; i++)
		cr_assert(rate_take(&r, 0));
	cr_expect_eq(rate_wait_ms(&r, 0), 0);

	/* the most events: 2^32 - 1 a ms */
	rate_init(&r, UINT32_MAX, 1, 1);
	for (int i = 0; i < 1000; i++)
		cr_assert(rate_take(&r, 0));
	cr_expect_eq(rate_wait_ms(&r, 0), 0);
	rate_init(&r, UINT32_MAX, UINT64_MAX, UINT32_MAX);
	for (int i = 0; i < 1000; i++)
		cr_assert(rate_take(&r, UINT64_MAX - 1));
	expect_promise(&r, UINT64_MAX - 1);

	/* at the end of time: no wrap, every call returns */
	rate_init(&r, 10, 1000, 3);
	cr_expect(rate_take(&r, UINT64_MAX));
	cr_expect(rate_take(&r, UINT64_MAX));
	cr_expect(rate_take(&r, UINT64_MAX));
	cr_expect_leq(rate_wait_ms(&r, UINT64_MAX), 100);
	cr_expect_leq(rate_wait_ms(&r, 0), 100);

	/* a period near UINT64_MAX with a fraction: 3 in UINT64_MAX ms */
	rate_init(&r, 3, UINT64_MAX, 2);
	cr_expect(rate_take(&r, 10));
	cr_expect(rate_take(&r, 10));
	cr_expect_not(rate_take(&r, 10));
	expect_promise(&r, 10);
	cr_expect_eq(rate_wait_ms(&r, 10), UINT64_MAX / 3);   /* 3 divides it */
	/* and 7, which does not divide it: the fraction is kept */
	rate_init(&r, 7, UINT64_MAX, 1);
	cr_expect(rate_take(&r, 0));
	cr_expect_eq(rate_wait_ms(&r, 0), UINT64_MAX / 7);
	cr_expect(rate_take(&r, UINT64_MAX / 7));
	cr_expect_eq(rate_wait_ms(&r, UINT64_MAX / 7), UINT64_MAX / 7);
	expect_promise(&r, UINT64_MAX / 7);
}
