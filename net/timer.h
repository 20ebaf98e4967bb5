/* net/timer — a hashed timer wheel for per-connection deadlines (one per worker,
 * single-threaded). Timers are embedded in their owner; arming, re-arming and cancelling
 * are O(1); an expiry far in the future simply waits extra revolutions. Ticks are
 * TIMER_TICK_MS long; deadlines are rounded up to the next tick. */
#ifndef NET_TIMER_H
#define NET_TIMER_H
#include <stdint.h>

#define TIMER_TICK_MS 100
#define TIMER_SLOTS 1024

struct timer {
	struct timer *next, *prev;     /* in a wheel slot; NULL when not armed */
	uint64_t expires;              /* tick */
	void (*fire)(struct timer *t);
};

struct timer_wheel {
	struct timer slots[TIMER_SLOTS];  /* list heads */
	uint64_t now;                     /* current tick, processed up to here */
	uint64_t now_ms;                  /* the time of the last init/advance */
};

void timer_wheel_init(struct timer_wheel *w, uint64_t now_ms);
/* (Re-)arm t to fire ms milliseconds after the wheel's time (never earlier: the deadline
 * is rounded up to a tick boundary; at most one tick late). */
void timer_arm(struct timer_wheel *w, struct timer *t, uint64_t ms);
void timer_cancel(struct timer *t);
static inline int timer_armed(const struct timer *t) { return t->next != 0; }
/* Advance to now_ms, firing every timer that expired; fire() may re-arm or cancel any
 * timer. Returns the number fired. */
unsigned timer_advance(struct timer_wheel *w, uint64_t now_ms);
uint64_t timer_now_ms(void);   /* CLOCK_MONOTONIC in ms */

#endif
