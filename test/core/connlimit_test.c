/* Unit tests for core/connlimit. */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <string.h>

#include "core/connlimit.h"

static struct sockaddr_in v4(const char *a)
{
	struct sockaddr_in s;
	memset(&s, 0, sizeof s);
	s.sin_family = AF_INET;
	inet_pton(AF_INET, a, &s.sin_addr);
	return s;
}

Test(connlimit, per_ip_and_total)
{
	connlimit_init();
	struct sockaddr_in a = v4("192.0.2.1"), b = v4("192.0.2.2");
	uint32_t s[8];
	cr_assert_eq(connlimit_acquire((struct sockaddr *)&a, 3, 2, &s[0]), CONNLIMIT_OK);
	cr_assert_eq(connlimit_acquire((struct sockaddr *)&a, 3, 2, &s[1]), CONNLIMIT_OK);
	cr_assert_eq(connlimit_acquire((struct sockaddr *)&a, 3, 2, &s[2]), CONNLIMIT_PER_IP);
	cr_assert_eq(connlimit_total(), 2);
	cr_assert_eq(connlimit_acquire((struct sockaddr *)&b, 3, 2, &s[3]), CONNLIMIT_OK);
	cr_assert_eq(connlimit_acquire((struct sockaddr *)&b, 3, 2, &s[4]), CONNLIMIT_TOTAL);
	connlimit_release(s[0]);
	cr_assert_eq(connlimit_acquire((struct sockaddr *)&a, 3, 2, &s[5]), CONNLIMIT_OK);
	connlimit_release(s[1]);
	connlimit_release(s[3]);
	connlimit_release(s[5]);
	cr_assert_eq(connlimit_total(), 0);
}

Test(connlimit, mapped_v4_counts_as_v4)
{
	connlimit_init();
	struct sockaddr_in a = v4("198.51.100.7");
	struct sockaddr_in6 m;
	memset(&m, 0, sizeof m);
	m.sin6_family = AF_INET6;
	inet_pton(AF_INET6, "::ffff:198.51.100.7", &m.sin6_addr);
	uint32_t s1, s2;
	cr_assert_eq(connlimit_acquire((struct sockaddr *)&a, 10, 1, &s1), CONNLIMIT_OK);
	cr_assert_eq(connlimit_acquire((struct sockaddr *)&m, 10, 1, &s2), CONNLIMIT_PER_IP);
	connlimit_release(s1);
}
