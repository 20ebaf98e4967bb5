/* core/connlimit — see connlimit.h. */
#include "core/connlimit.h"

#include <netinet/in.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/random.h>

static _Atomic unsigned total;
static _Atomic unsigned per_ip[CONNLIMIT_SLOTS];
static uint64_t key0, key1;

void connlimit_init(void)
{
	uint64_t k[2] = { 0x9e3779b97f4a7c15ull, 0xc2b2ae3d27d4eb4full };
	if (getrandom(k, sizeof k, 0) != sizeof k) {
		/* keep the fixed key: still correct, only predictable */
	}
	key0 = k[0];
	key1 = k[1] | 1;
}

static uint32_t slot_of(const struct sockaddr *sa)
{
	uint64_t h = key0;
	const uint8_t *a;
	size_t n;
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)(const void *)sa;
		a = s6->sin6_addr.s6_addr;
		n = 16;
		if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
			a += 12;
			n = 4;
		}
	} else {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)(const void *)sa;
		a = (const uint8_t *)&s4->sin_addr;
		n = 4;
	}
	for (size_t i = 0; i < n; i++) {
		h ^= a[i];
		h *= key1;
		h ^= h >> 29;
	}
	return (uint32_t)(h % CONNLIMIT_SLOTS);
}

enum connlimit_rc connlimit_acquire(const struct sockaddr *sa, unsigned max_total,
                                    unsigned max_per_ip, uint32_t *slot)
{
	if (atomic_fetch_add_explicit(&total, 1, memory_order_relaxed) >= max_total) {
		atomic_fetch_sub_explicit(&total, 1, memory_order_relaxed);
		return CONNLIMIT_TOTAL;
	}
	uint32_t s = slot_of(sa);
	if (atomic_fetch_add_explicit(&per_ip[s], 1, memory_order_relaxed) >= max_per_ip) {
		atomic_fetch_sub_explicit(&per_ip[s], 1, memory_order_relaxed);
		atomic_fetch_sub_explicit(&total, 1, memory_order_relaxed);
		return CONNLIMIT_PER_IP;
	}
	*slot = s;
	return CONNLIMIT_OK;
}

void connlimit_release(uint32_t slot)
{
	atomic_fetch_sub_explicit(&per_ip[slot], 1, memory_order_relaxed);
	atomic_fetch_sub_explicit(&total, 1, memory_order_relaxed);
}

unsigned connlimit_total(void)
{
	return atomic_load_explicit(&total, memory_order_relaxed);
}
