/* proto/mx: domain names checked and lower-cased, the order of MX records (preference,
 * then equal preferences shuffled, every order reachable), the site key. */
#include <criterion/criterion.h>
#include <string.h>

#include "proto/mx.h"

struct name_case {
	const char *in;
	enum mx_name_err want_err;
	const char *want_out;
};

static const struct name_case name_cases[] = {
	{ "example.com", MX_NAME_OK, "example.com" },
	{ "Example.COM.", MX_NAME_OK, "example.com" },
	{ "mx-1.ex_ample.test", MX_NAME_OK, "mx-1.ex_ample.test" },
	{ "localhost", MX_NAME_OK, "localhost" },
	{ "", MX_NAME_EMPTY, NULL },
	{ ".", MX_NAME_EMPTY, NULL },
	{ "a..b", MX_NAME_LABEL_EMPTY, NULL },
	{ ".a", MX_NAME_LABEL_EMPTY, NULL },
	{ "a.b..", MX_NAME_LABEL_EMPTY, NULL },
	{ "exa mple.com", MX_NAME_BAD_CHAR, NULL },
	{ "user@example.com", MX_NAME_BAD_CHAR, NULL },
	{ "[192.0.2.1]", MX_NAME_BAD_CHAR, NULL },
	{ "b\xc3\xa9.test", MX_NAME_BAD_CHAR, NULL },
	{ "a\\.b", MX_NAME_BAD_CHAR, NULL },
	{ "ex.test\r\n", MX_NAME_BAD_CHAR, NULL },
	{ "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.test", MX_NAME_OK,
	  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.test" },   /* 63 */
	{ "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.test",
	  MX_NAME_LABEL_TOO_LONG, NULL },                                           /* 64 */
};

Test(mx, name_norm_table)
{
	for (size_t i = 0; i < sizeof name_cases / sizeof name_cases[0]; i++) {
		const struct name_case *c = &name_cases[i];
		char got_out[MX_NAME_MAX + 1] = "untouched";
		enum mx_name_err got_err = mx_name_norm(c->in, strlen(c->in), got_out);
		cr_expect_eq(got_err, c->want_err, "\"%s\": %s, want %s", c->in,
		             mx_name_strerror(got_err), mx_name_strerror(c->want_err));
		if (c->want_out)
			cr_expect_str_eq(got_out, c->want_out, "\"%s\"", c->in);
		else
			cr_expect_str_eq(got_out, "untouched", "\"%s\": out written on error", c->in);
	}
}

/* A name of n octets: labels of 63 and dots, the last label what is left. */
static void long_name(char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = i % 64 == 63 ? '.' : 'a';
	p[n] = '\0';
}

Test(mx, name_norm_length_limit)
{
	char in[300], got_out[MX_NAME_MAX + 1];
	long_name(in, 253);
	cr_expect_eq(mx_name_norm(in, 253, got_out), MX_NAME_OK);
	cr_expect_str_eq(got_out, in);
	in[253] = '.';                            /* and the root's dot */
	cr_expect_eq(mx_name_norm(in, 254, got_out), MX_NAME_OK);
	long_name(in, 254);
	cr_expect_eq(mx_name_norm(in, 254, got_out), MX_NAME_TOO_LONG);
	cr_expect_eq(mx_name_norm(in, 0, got_out), MX_NAME_EMPTY);
	cr_expect_str_eq(mx_name_strerror((enum mx_name_err)99), "unknown domain error");
}

Test(mx, order_by_preference_equal_ones_shuffled)
{
	static const uint16_t prefs[] = { 20, 10, 20, 30, 20, 10 };
	enum { N = sizeof prefs / sizeof prefs[0] };
	uint64_t rng = 42;
	int first_of_20[N] = { 0 };
	for (int round = 0; round < 3000; round++) {
		struct mx_rank v[N];
		for (uint32_t i = 0; i < N; i++)
			v[i] = (struct mx_rank){ .pref = prefs[i], .idx = i };
		mx_order(v, N, &rng);
		for (size_t i = 1; i < N; i++)
			cr_assert_leq(v[i - 1].pref, v[i].pref);
		int seen[N] = { 0 };
		for (size_t i = 0; i < N; i++) {
			cr_assert_lt(v[i].idx, N);
			cr_assert_eq(prefs[v[i].idx], v[i].pref);
			seen[v[i].idx]++;
		}
		for (size_t i = 0; i < N; i++)
			cr_assert_eq(seen[i], 1, "a permutation");
		cr_assert_eq(v[2].pref, 20);
		first_of_20[v[2].idx]++;
	}
	/* each of the three 20s comes first about a third of the time */
	cr_expect(first_of_20[0] > 800 && first_of_20[2] > 800 && first_of_20[4] > 800,
	          "%d %d %d", first_of_20[0], first_of_20[2], first_of_20[4]);
	mx_order(NULL, 0, &rng);                  /* nothing to order */
}

Test(mx, site_key_sorted_deduplicated_lower_cased)
{
	const char *names[] = { "mx2.Example.NET", "mx1.example.net", "MX2.example.net", "a.test" };
	char got[128];
	cr_expect_eq(mx_site_key(got, sizeof got, names, 4), (int)strlen("a.test,mx1.example.net,mx2.example.net"));
	cr_expect_str_eq(got, "a.test,mx1.example.net,mx2.example.net");
	const char *one[] = { "Implicit.Test" };
	mx_site_key(got, sizeof got, one, 1);
	cr_expect_str_eq(got, "implicit.test");
	cr_expect_eq(mx_site_key(got, sizeof got, NULL, 0), 0);
	cr_expect_str_eq(got, "");
}

Test(mx, site_key_keeps_whole_names_when_short_of_room)
{
	const char *names[] = { "ccc.test", "aaa.test", "bbb.test" };
	char got[18];                             /* "aaa.test,bbb.test" is 17 + NUL */
	cr_expect_eq(mx_site_key(got, sizeof got, names, 3), 17);
	cr_expect_str_eq(got, "aaa.test,bbb.test");
	char small[12];
	cr_expect_eq(mx_site_key(small, sizeof small, names, 3), 8);
	cr_expect_str_eq(small, "aaa.test");
	char tiny[4];
	cr_expect_eq(mx_site_key(tiny, sizeof tiny, names, 3), 0);
	cr_expect_str_eq(tiny, "");
	cr_expect_eq(mx_site_key(tiny, 0, names, 3), -1);
}
