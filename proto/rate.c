/* proto/rate — GCRA (virtual scheduling). See rate.h.
 *
 * The theoretical arrival time (TAT) is when the next event would be due if events came
 * at exactly the rate. An event at tick `now` conforms when TAT - tau < now + 1, tau
 * being the tolerance of burst - 1 intervals and the 1 the tick (rate.h says why); it
 * then moves TAT to max(TAT, now) + interval. The max() is what keeps an idle spell from
 * banking more than the burst.
 *
 * Every quantity is a pair (ms, frac) worth ms + frac / events milliseconds, frac <
 * events: the interval period_ms / events is then exact whatever the two numbers. Sums
 * saturate at UINT64_MAX ms instead of wrapping. */
#include "proto/rate.h"

#include <string.h>

static uint64_t rate_sat_add(uint64_t a, uint64_t b)
{
	return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

void rate_init(struct rate *r, uint32_t events, uint64_t period_ms, uint32_t burst)
{
	uint64_t b1, fracs, q;

	memset(r, 0, sizeof(*r));
	if (events == 0 || period_ms == 0)
		return;                        /* unlimited */
	r->events = events;
	q = period_ms / events;
	r->step_ms = q;
	r->step_frac = (uint32_t)(period_ms % events);
	if (burst == 0)
		burst = 1;
	/* tau = (burst - 1) * (q + step_frac / events); (burst - 1) * step_frac < 2^64 as
	 * both are under 2^32. */
	b1 = (uint64_t)burst - 1;
	fracs = b1 * r->step_frac;
	r->tau_frac = (uint32_t)(fracs % events);
	r->tau_ms = q != 0 && b1 > UINT64_MAX / q ? UINT64_MAX : b1 * q;
	r->tau_ms = rate_sat_add(r->tau_ms, fracs / events);
	if (r->tau_ms == UINT64_MAX)
		r->tau_frac = 0;
}

bool rate_unlimited(const struct rate *r)
{
	return r->events == 0;
}

/* TAT as it stands for an event at now: max(TAT, now). */
static void rate_tat_at(const struct rate *r, uint64_t now, uint64_t *ms, uint32_t *frac)
{
	if (r->tat_ms < now) {
		*ms = now;
		*frac = 0;
	} else {
		*ms = r->tat_ms;
		*frac = r->tat_frac;
	}
}

/* How far an event at now is beyond the tolerance, in whole ms (rounded down): 0 when
 * it conforms (less than a ms beyond: it is due within the tick now), else the ms to
 * wait. now >= seen_ms (the caller clamps). */
static uint64_t rate_excess(const struct rate *r, uint64_t now)
{
	uint64_t ms, d_ms;
	uint32_t frac;

	rate_tat_at(r, now, &ms, &frac);
	/* d = TAT - now - tau; TAT >= now, so ms - now cannot wrap. */
	d_ms = ms - now;
	if (d_ms < r->tau_ms || (d_ms == r->tau_ms && frac <= r->tau_frac))
		return 0;
	d_ms -= r->tau_ms;
	if (frac < r->tau_frac)
		d_ms--;                        /* borrow: d > tau, so d_ms > tau_ms here */
	return d_ms;
}

bool rate_take(struct rate *r, uint64_t now_ms)
{
	uint64_t ms, frac;
	uint32_t f;

	if (rate_unlimited(r))
		return true;
	if (now_ms < r->seen_ms)
		now_ms = r->seen_ms;           /* time does not go back */
	r->seen_ms = now_ms;
	if (rate_excess(r, now_ms) != 0)
		return false;
	rate_tat_at(r, now_ms, &ms, &f);
	frac = (uint64_t)f + r->step_frac;   /* < 2 * events */
	if (frac >= r->events) {
		frac -= r->events;
		ms = rate_sat_add(ms, 1);
	}
	ms = rate_sat_add(ms, r->step_ms);
	r->tat_ms = ms;
	r->tat_frac = ms == UINT64_MAX ? 0 : (uint32_t)frac;
	return true;
}

uint64_t rate_wait_ms(const struct rate *r, uint64_t now_ms)
{
	if (rate_unlimited(r))
		return 0;
	return rate_excess(r, now_ms < r->seen_ms ? r->seen_ms : now_ms);
}
