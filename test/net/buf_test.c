/* Unit tests for net/buf. */
#include <criterion/criterion.h>
#include <string.h>

#include "net/buf.h"

Test(buf, append_consume_fini)
{
	struct buf b = { 0 };
	char big[5000];
	memset(big, 'z', sizeof big);
	cr_assert_eq(buf_append(&b, "hello ", 6), 0);
	cr_assert_eq(buf_append(&b, big, sizeof big), 0);       /* grows past 1 KiB */
	cr_assert_eq(b.len, 6 + sizeof big);
	cr_assert(b.cap >= b.len);
	cr_assert_eq(memcmp(b.p, "hello z", 7), 0);
	buf_consume(&b, 6);
	cr_assert_eq(b.len, sizeof big);
	cr_assert_eq(b.p[0], 'z');
	cr_assert_eq(buf_append(&b, NULL, 0), 0);                /* empty append is fine */
	buf_consume(&b, b.len + 10);                             /* over-consume empties */
	cr_assert_eq(b.len, 0);
	buf_fini(&b);
	cr_assert_null(b.p);
	cr_assert_eq(b.cap, 0);
	cr_assert_eq(buf_append(&b, "again", 5), 0);              /* reusable after fini */
	cr_assert_eq(memcmp(b.p, "again", 5), 0);
	buf_fini(&b);
}
