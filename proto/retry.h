/* proto/retry — when a deferred recipient is tried again, and when it is given up.
 *
 * The schedule is queue.retry_schedule: the delay after the first failed attempt, the
 * second, ...; attempts past its end reuse its last entry (Postfix's maximal_backoff_time
 * in effect). Each delay gets a jitter of up to ±10 % (from a random number the caller
 * passes in, so this stays pure), so that the recipients of one burst that failed
 * together do not all come back in the same second.
 *
 * Giving up follows KumoMTA rather than Postfix: a recipient whose next try would fall
 * after its message's max_age is bounced at this failure (5.4.7) instead of waiting one
 * more interval only to be bounced then. */
#ifndef PROTO_RETRY_H
#define PROTO_RETRY_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Delay in ms before the next try after `attempts` failed attempts (attempts >= 1; 0 is
 * taken as 1), schedule of n entries in seconds (n >= 1; n == 0 gives 60 s); rnd is any
 * 32-bit random number. */
uint64_t retry_delay_ms(const unsigned *schedule, size_t n, uint32_t attempts, uint32_t rnd);
/* true when a try at next_ms would be later than arrival_ms + max_age_ms. */
bool retry_give_up(uint64_t arrival_ms, uint64_t next_ms, uint64_t max_age_ms);

#endif
