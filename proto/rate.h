/* proto/rate — a rate limiter for delivery shaping (message_rate, connection_rate of a
 * transport, per (source, site)): GCRA, the generic cell rate algorithm, in its
 * virtual-scheduling form. libc only: no clock (the caller passes monotonic
 * milliseconds), no sleeping, no allocation.
 *
 * A limiter allows `events` per `period_ms` on average, and up to `burst` of them at
 * once after an idle spell; an idle spell banks no more than the burst. The arithmetic
 * is exact (the emission interval period_ms / events is held as whole ms plus a fraction
 * in 1/events ms), so 3/s is 3 a second, not 2.99 or 3.01.
 *
 * The caller's clock ticks in ms, so an event conforms at tick `now` when its
 * theoretical time (less the burst's tolerance) falls within that millisecond, before
 * now + 1. Without that, every take after a wait would lose the fraction of a ms by which
 * the tick came late (999/s would run at 500/s), and nothing above 1/ms could be
 * reached; with it, a caller that takes whenever it may gets the rate exactly, whatever
 * it is, and 10000/s is 10 a tick. The price is that an event may come up to a ms early:
 * among the events taken at ticks t0 <= t1, at most burst + (t1 - t0 + 1) * events /
 * period_ms (strictly less) are taken, the span (t1 - t0 + 1) being the real time those
 * ticks cover.
 *
 * Time going backwards (a caller mixing clocks, a test) is clamped: a `now` earlier than
 * the latest one rate_take() has seen counts as that one. It neither wraps nor earns
 * credit, and a wait never grows because the clock stepped back. Times and periods up to
 * UINT64_MAX ms never overflow: the theoretical arrival time saturates at UINT64_MAX ms
 * (half a billion years of uptime), and so does a wait.
 *
 * Use, per (source, site):
 *     if (rate_take(&r, now_ms)) go; else arm a timer for rate_wait_ms(&r, now_ms).
 * rate_wait_ms() is a promise: with a clock that does not go back, rate_take() at
 * now_ms + rate_wait_ms() succeeds (when no other take came in between), and a take any
 * earlier fails. */
#ifndef PROTO_RATE_H
#define PROTO_RATE_H

#include <stdbool.h>
#include <stdint.h>

struct rate {
	uint32_t events;                   /* per period; 0: unlimited */
	uint32_t tat_frac;                 /* theoretical arrival time: tat_ms + tat_frac/events */
	uint64_t tat_ms;
	uint64_t step_ms;                  /* emission interval period_ms / events: */
	uint32_t step_frac;                /*   step_ms + step_frac/events */
	uint32_t tau_frac;                 /* tolerance (burst - 1) intervals: */
	uint64_t tau_ms;                   /*   tau_ms + tau_frac/events */
	uint64_t seen_ms;                  /* the latest now_ms rate_take() was given */
};

/* events per period_ms, with bursts of up to burst (0 is taken as 1). events == 0 or
 * period_ms == 0: unlimited, every take conforms.
 * The limiter starts idle: a full burst is available at once. */
void rate_init(struct rate *r, uint32_t events, uint64_t period_ms, uint32_t burst);
/* Does an event at now_ms conform? Then it is counted and true; else nothing changes. */
bool rate_take(struct rate *r, uint64_t now_ms);
/* ms from now_ms until an event conforms; 0: it does now. Changes nothing. */
uint64_t rate_wait_ms(const struct rate *r, uint64_t now_ms);
/* No limit at all (events or period 0)? */
bool rate_unlimited(const struct rate *r);

#endif
