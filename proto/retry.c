/* proto/retry — see retry.h. */
#include "proto/retry.h"

uint64_t retry_delay_ms(const unsigned *schedule, size_t n, uint32_t attempts, uint32_t rnd)
{
	uint64_t base, span;
	if (attempts == 0)
		attempts = 1;
	base = n == 0 ? 60000 : (uint64_t)schedule[attempts - 1 < n ? attempts - 1 : n - 1] * 1000;
	/* base * (0.9 + 0.2 * rnd / 2^32), in integers: base - base/10 + base/5 * rnd / 2^32 */
	span = base / 5;
	return base - base / 10 + (span * rnd >> 32);
}

bool retry_give_up(uint64_t arrival_ms, uint64_t next_ms, uint64_t max_age_ms)
{
	return next_ms > arrival_ms + max_age_ms;
}
