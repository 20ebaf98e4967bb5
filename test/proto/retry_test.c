/* proto/retry: the schedule, its last entry reused, the jitter's bounds, giving up. */
#include <criterion/criterion.h>
#include "proto/retry.h"

static const unsigned sched[] = { 60, 300, 900 };

Test(retry, schedule_and_last_entry_reused)
{
	/* rnd = 2^31: the middle of the jitter, the delay itself */
	cr_expect_eq(retry_delay_ms(sched, 3, 1, 1u << 31), 60000);
	cr_expect_eq(retry_delay_ms(sched, 3, 0, 1u << 31), 60000, "0 counts as the first");
	cr_expect_eq(retry_delay_ms(sched, 3, 2, 1u << 31), 300000);
	cr_expect_eq(retry_delay_ms(sched, 3, 3, 1u << 31), 900000);
	cr_expect_eq(retry_delay_ms(sched, 3, 4, 1u << 31), 900000);
	cr_expect_eq(retry_delay_ms(sched, 3, 4000000000u, 1u << 31), 900000);
	cr_expect_eq(retry_delay_ms(NULL, 0, 5, 1u << 31), 60000);
}

Test(retry, jitter_stays_within_ten_percent_and_spreads)
{
	uint64_t lo = UINT64_MAX, hi = 0;
	uint32_t x = 12345;
	for (int i = 0; i < 100000; i++) {
		x = x * 1664525u + 1013904223u;
		uint64_t d = retry_delay_ms(sched, 3, 2, x);
		cr_assert(d >= 270000 && d < 330000, "delay %lu out of ±10%%", (unsigned long)d);
		lo = d < lo ? d : lo;
		hi = d > hi ? d : hi;
	}
	cr_expect_lt(lo, 272000, "jitter never goes low: %lu", (unsigned long)lo);
	cr_expect_gt(hi, 328000, "jitter never goes high: %lu", (unsigned long)hi);
	cr_expect_eq(retry_delay_ms(sched, 3, 2, 0), 270000);
	cr_expect_lt(retry_delay_ms(sched, 3, 2, UINT32_MAX), 330000);
	/* the largest entry a config allows (a week) cannot overflow */
	unsigned week = 604800;
	cr_expect_lt(retry_delay_ms(&week, 1, 9, UINT32_MAX), 604800ull * 1100);
}

Test(retry, give_up_when_the_next_try_is_past_max_age)
{
	cr_expect_not(retry_give_up(1000, 1000 + 5000, 5000));
	cr_expect(retry_give_up(1000, 1000 + 5001, 5000));
	cr_expect_not(retry_give_up(0, 0, 0));
}
