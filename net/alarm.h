/* net/alarm — a one-shot deadline with millisecond precision, kept by the kernel
 * (IORING_OP_TIMEOUT), for what the timer wheel's 100 ms ticks are too coarse for: the
 * moment a rate limiter lets the next message or connection go (at 10 a second, a wheel
 * tick late each time halves the rate).
 *
 * An alarm is embedded in its owner. net_alarm_arm() starts it unless it is already
 * armed (then it stands: its owner re-checks when it fires and arms again if it is still
 * early). It fires once, from the loop's completion dispatch, with the loop's clock
 * refreshed after the wait. There is no cancel: an armed alarm's owner must live until
 * it fired or the ring is closed (net_loop_fini closes the ring first, so an owner freed
 * after it is safe). */
#ifndef NET_ALARM_H
#define NET_ALARM_H
#include <stdbool.h>
#include <stdint.h>

#include "net/loop.h"

struct net_alarm {
	struct net_op op;                     /* NET_OP_ALARM */
	bool armed;
	struct __kernel_timespec ts;          /* read by the kernel at submission */
	void (*fire)(struct net_alarm *a);
};

void net_alarm_init(struct net_alarm *a, void (*fire)(struct net_alarm *a));
/* Fire in ms milliseconds (0: at the next dispatch). true when armed (now or before);
 * false when the ring cannot take it now: the caller falls back to the timer wheel. */
bool net_alarm_arm(struct net_loop *l, struct net_alarm *a, uint64_t ms);
static inline bool net_alarm_armed(const struct net_alarm *a) { return a->armed; }

/* The loop's completion of an alarm (net/loop's dispatch). */
void net_alarm_on_fire(struct net_alarm *a, int res);

#endif
