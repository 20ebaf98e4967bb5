/* Unit tests for core/why: interning, counting, the bound, reuse, truncation. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "core/why.h"

Test(why, same_text_same_id_counted)
{
	struct why_tab t = { 0 };
	cr_assert_eq(why_get(&t, NULL), 0);
	cr_assert_eq(why_get(&t, ""), 0);
	cr_assert_null(why_text(&t, 0));
	uint16_t a = why_get(&t, "451 4.7.1 try later");
	uint16_t b = why_get(&t, "451 4.7.1 try later");
	uint16_t c = why_get(&t, "421 4.4.2 timeout");
	cr_assert_neq(a, 0);
	cr_assert_eq(a, b);
	cr_assert_neq(a, c);
	cr_assert_str_eq(why_text(&t, a), "451 4.7.1 try later");
	cr_assert_eq(t.used, 2);
	why_put(&t, a);
	cr_assert_str_eq(why_text(&t, b), "451 4.7.1 try later");   /* one reference left */
	why_put(&t, b);
	cr_assert_null(why_text(&t, a));                             /* freed with the last */
	cr_assert_eq(t.used, 1);
	why_put(&t, 0);                                              /* nothing */
	why_put(&t, c);
	cr_assert_eq(t.used, 0);
	why_fini(&t);
}

Test(why, bounded_then_reused)
{
	struct why_tab t = { 0 };
	static uint16_t id[WHY_MAX + 1];
	char s[64];
	for (unsigned i = 0; i < WHY_MAX; i++) {
		snprintf(s, sizeof s, "reason %u", i);
		id[i] = why_get(&t, s);
		cr_assert_neq(id[i], 0, "entry %u", i);
	}
	cr_assert_eq(t.used, WHY_MAX);
	cr_assert_eq(why_get(&t, "one more"), 0, "a full table keeps no new text");
	snprintf(s, sizeof s, "reason %u", 7u);
	cr_assert_eq(why_get(&t, s), id[7], "a known text is still found when full");
	why_put(&t, id[7]);
	why_put(&t, id[7]);                                          /* freed */
	uint16_t n = why_get(&t, "one more");
	cr_assert_eq(n, id[7], "the freed slot is used again");
	cr_assert_str_eq(why_text(&t, n), "one more");
	for (unsigned i = 0; i < WHY_MAX; i++)
		if (i != 7) {
			snprintf(s, sizeof s, "reason %u", i);
			cr_assert_str_eq(why_text(&t, id[i]), s);
		}
	why_fini(&t);
}

Test(why, cut_at_the_limit)
{
	struct why_tab t = { 0 };
	char a[WHY_TEXT_MAX + 50], b[WHY_TEXT_MAX + 50];
	memset(a, 'x', sizeof a - 1);
	a[sizeof a - 1] = '\0';
	memcpy(b, a, sizeof b);
	b[WHY_TEXT_MAX + 10] = 'y';                /* differs only past the limit */
	uint16_t i = why_get(&t, a), k = why_get(&t, b);
	cr_assert_eq(i, k);
	cr_assert_eq(strlen(why_text(&t, i)), WHY_TEXT_MAX);
	why_put(&t, i);
	why_put(&t, k);
	cr_assert_eq(t.used, 0);
	why_fini(&t);
}
