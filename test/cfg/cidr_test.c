/* test/cfg/cidr_test — cfg/cidr: parsing, boundaries, merging, files, and a randomized
 * comparison of the table against a naive linear scan. */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "cfg/cidr.h"

typedef unsigned __int128 u128;

static struct cidr_table *build(const char *const *entries)
{
	struct cidr_builder *b = cidr_builder_new();
	char err[256];
	cr_assert_not_null(b);
	for (size_t i = 0; entries[i] != NULL; i++)
		cr_assert_eq(cidr_builder_add(b, entries[i], err, sizeof(err)), 0,
		             "add '%s': %s", entries[i], err);
	struct cidr_table *t = cidr_builder_finish(b);
	cr_assert_not_null(t);
	return t;
}

/* Look `text` up through a real sockaddr of its family. */
static bool lookup(const struct cidr_table *t, const char *text)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6 };
	if (inet_pton(AF_INET, text, &sin.sin_addr) == 1)
		return cidr_lookup(t, (struct sockaddr *)&sin);
	cr_assert_eq(inet_pton(AF_INET6, text, &sin6.sin6_addr), 1, "bad test address %s", text);
	return cidr_lookup(t, (struct sockaddr *)&sin6);
}

struct lookup_case {
	const char *addr;
	bool want;
};

struct table_case {
	const char *name;
	const char *entries[8];
	struct lookup_case lookups[16];
};

Test(cidr, hosts_networks_and_boundaries)
{
	static const struct table_case cases[] = {
		{ "v4 host", { "192.0.2.10", NULL },
		  { { "192.0.2.10", true }, { "192.0.2.9", false }, { "192.0.2.11", false },
		    { "::ffff:192.0.2.10", true }, { "::192.0.2.10", false }, { NULL, false } } },
		{ "v4 /32", { "192.0.2.10/32", NULL },
		  { { "192.0.2.10", true }, { "192.0.2.11", false }, { NULL, false } } },
		{ "v4 /16 boundaries", { "10.1.0.0/16", NULL },
		  { { "10.1.0.0", true }, { "10.1.255.255", true }, { "10.1.128.7", true },
		    { "10.0.255.255", false }, { "10.2.0.0", false }, { "::ffff:10.1.2.3", true },
		    { "::ffff:10.2.0.0", false }, { NULL, false } } },
		{ "v4 /0", { "0.0.0.0/0", NULL },
		  { { "0.0.0.0", true }, { "255.255.255.255", true }, { "::ffff:1.2.3.4", true },
		    { "::1", false }, { "2001:db8::1", false }, { NULL, false } } },
		{ "v4 top of space", { "255.255.255.0/24", NULL },
		  { { "255.255.255.255", true }, { "255.255.255.0", true },
		    { "255.255.254.255", false }, { NULL, false } } },
		{ "v6 host", { "::1", NULL },
		  { { "::1", true }, { "::", false }, { "::2", false }, { "127.0.0.1", false },
		    { NULL, false } } },
		{ "v6 /128", { "2001:db8::7/128", NULL },
		  { { "2001:db8::7", true }, { "2001:db8::6", false }, { "2001:db8::8", false },
		    { NULL, false } } },
		{ "v6 /32 boundaries", { "2001:db8::/32", NULL },
		  { { "2001:db8::", true }, { "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", true },
		    { "2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", false }, { "2001:db9::", false },
		    { "10.0.0.1", false }, { NULL, false } } },
		{ "v6 /0 covers mapped v4 too", { "::/0", NULL },
		  { { "::", true }, { "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true },
		    { "::ffff:1.2.3.4", true }, { "1.2.3.4", true }, { NULL, false } } },
		{ "v6 top of space", { "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ff00/120", NULL },
		  { { "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true },
		    { "ffff:ffff:ffff:ffff:ffff:ffff:ffff:feff", false }, { NULL, false } } },
		{ "mapped entry means v4", { "::ffff:10.0.0.0/104", NULL },
		  { { "10.0.0.0", true }, { "10.255.255.255", true }, { "11.0.0.0", false },
		    { "::ffff:10.9.9.9", true }, { "::10.9.9.9", false }, { NULL, false } } },
		{ "mapped host", { "::ffff:192.0.2.1", NULL },
		  { { "192.0.2.1", true }, { "::ffff:192.0.2.1", true }, { "192.0.2.2", false },
		    { NULL, false } } },
		{ "v6 /95 straddles the mapped space", { "::fffe:0:0/95", NULL },
		  { { "::fffe:0:0", true }, { "::ffff:255.255.255.255", true }, { "9.9.9.9", true },
		    { "::1:0:0:0", false }, { "::fffd:ffff:ffff", false }, { NULL, false } } },
		{ "mixed", { "127.0.0.0/8", "::1/128", "192.0.2.10", "2001:db8::/48", NULL },
		  { { "127.0.0.1", true }, { "128.0.0.0", false }, { "::1", true },
		    { "192.0.2.10", true }, { "2001:db8:0:ffff::1", true },
		    { "2001:db8:1::", false }, { NULL, false } } },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct cidr_table *t = build(cases[i].entries);
		for (size_t j = 0; cases[i].lookups[j].addr != NULL; j++) {
			bool got_match = lookup(t, cases[i].lookups[j].addr);
			cr_expect_eq(got_match, cases[i].lookups[j].want, "%s: lookup %s: got %d",
			             cases[i].name, cases[i].lookups[j].addr, got_match);
		}
		cidr_free(t);
	}
}

Test(cidr, overlapping_and_adjacent_ranges_merge)
{
	static const char *const entries[] = {
		"10.0.0.0/25", "10.0.0.128/25",          /* adjacent halves */
		"10.0.0.64/26",                          /* inside */
		"10.0.1.0/24",                           /* adjacent to the union */
		"10.0.0.0/24",                           /* duplicate of the union's start */
		"10.0.3.0/24",                           /* gap of 10.0.2.0/24 before it */
		"255.255.255.255", "255.255.255.254/31", /* last address of the space */
		"2001:db8::/64", "2001:db8:0:1::/64", "2001:db8::1",
		"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "ffff:ffff:ffff:ffff::/64",
		NULL
	};
	static const struct lookup_case want[] = {
		{ "10.0.0.0", true }, { "10.0.0.255", true }, { "10.0.1.0", true },
		{ "10.0.1.255", true }, { "10.0.2.0", false }, { "10.0.2.255", false },
		{ "10.0.3.0", true }, { "10.0.3.255", true }, { "10.0.4.0", false },
		{ "9.255.255.255", false }, { "255.255.255.253", false },
		{ "255.255.255.254", true }, { "255.255.255.255", true },
		{ "2001:db8::", true }, { "2001:db8:0:1:ffff:ffff:ffff:ffff", true },
		{ "2001:db8:0:2::", false }, { "2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", false },
		{ "ffff:ffff:ffff:ffff::", true }, { "ffff:ffff:ffff:fffe:ffff:ffff:ffff:ffff", false },
	};
	struct cidr_table *t = build(entries);
	cr_expect_eq(cidr_count(t), 13, "count is entries as configured: got %zu", cidr_count(t));
	for (size_t j = 0; j < sizeof(want) / sizeof(want[0]); j++) {
		bool got_match = lookup(t, want[j].addr);
		cr_expect_eq(got_match, want[j].want, "lookup %s: got %d", want[j].addr, got_match);
	}
	cidr_free(t);
}

Test(cidr, bad_inputs)
{
	static const struct {
		const char *text;
		const char *want_err;
	} cases[] = {
		{ "", "empty address" },
		{ "10.0.0.0/33", "invalid CIDR '10.0.0.0/33'" },
		{ "::/129", "invalid CIDR '::/129'" },
		{ "10.0.0.0/", "invalid CIDR" },
		{ "/8", "invalid CIDR" },
		{ "10.0.0/8", "invalid CIDR" },
		{ "10.0.0.0/-1", "invalid CIDR" },
		{ "10.0.0.0/+8", "invalid CIDR" },
		{ "10.0.0.0/8x", "invalid CIDR" },
		{ "10.0.0.0/0008", "invalid CIDR" },
		{ "10.0.0.0/8/8", "invalid CIDR" },
		{ "10.0.0.0/ 8", "invalid CIDR" },
		{ "1.2.3.4.5", "invalid address '1.2.3.4.5'" },
		{ "300.1.1.1", "invalid address '300.1.1.1'" },
		{ "127.1", "invalid address" },
		{ "0x7f.0.0.1", "invalid address" },
		{ " 10.0.0.1", "invalid address" },
		{ "10.0.0.1 ", "invalid address" },
		{ "abc", "invalid address 'abc'" },
		{ "2001:db8:::1", "invalid address" },
		{ "10.1.2.3/16", "invalid CIDR '10.1.2.3/16': host bits set" },
		{ "2001:db8::1/32", "host bits set" },
		{ "::ffff:10.0.0.1/104", "host bits set" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct cidr_builder *b = cidr_builder_new();
		char got_err[256] = "";
		int got_rc = cidr_builder_add(b, cases[i].text, got_err, sizeof(got_err));
		cr_expect_eq(got_rc, -1, "'%s' accepted", cases[i].text);
		cr_expect(strstr(got_err, cases[i].want_err) != NULL, "'%s': got error '%s', want '%s'",
		          cases[i].text, got_err, cases[i].want_err);
		/* A failed add leaves the builder as it was. */
		struct cidr_table *t = cidr_builder_finish(b);
		cr_expect_eq(cidr_count(t), 0);
		cidr_free(t);
	}
}

Test(cidr, empty_table_null_and_other_families)
{
	struct cidr_table *t = cidr_builder_finish(cidr_builder_new());
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	uint8_t raw[16] = { 0 };
	cr_assert_not_null(t);
	cr_expect_eq(cidr_count(t), 0);
	cr_expect(!lookup(t, "127.0.0.1"));
	cr_expect(!lookup(t, "::1"));
	cidr_free(t);

	t = build((const char *const[]){ "0.0.0.0/0", "::/0", NULL });
	cr_expect(!cidr_lookup(t, (struct sockaddr *)&sun));
	cr_expect(!cidr_lookup(t, NULL));
	cr_expect(!cidr_lookup_raw(t, AF_UNIX, raw));
	cr_expect(cidr_lookup_raw(t, AF_INET, raw));
	cr_expect(cidr_lookup_raw(t, AF_INET6, raw));
	cr_expect(!cidr_lookup_raw(NULL, AF_INET, raw));
	cidr_free(t);

	cidr_free(NULL);
	cidr_builder_free(NULL);
	cr_expect_eq(cidr_count(NULL), 0);
	cidr_builder_free(cidr_builder_new());   /* unfinished builder: no leak */
}

static char *write_temp(const char *content)
{
	char *path = strdup("/tmp/cidr_test_XXXXXX");
	int fd = mkstemp(path);
	cr_assert(fd >= 0);
	size_t len = strlen(content);
	cr_assert_eq(write(fd, content, len), (ssize_t)len);
	close(fd);
	return path;
}

Test(cidr, haproxy_hosts_file)
{
	char *path = write_temp(
		"# HAProxy servers\n"
		"\n"
		"192.0.2.10\n"
		"   192.0.2.11   # haproxy-b, indented, trailing comment\n"
		"\t10.1.0.0/16\t\n"
		"2001:db8:10::/48#no space before the comment\n"
		"# 203.0.113.1 commented out\n"
		"::1\r\n"
		"   \n"
		"198.51.100.0/24");            /* last line without a newline */
	struct cidr_builder *b = cidr_builder_new();
	char err[512] = "";
	cr_assert_eq(cidr_builder_add_file(b, path, err, sizeof(err)), 0, "%s", err);
	struct cidr_table *t = cidr_builder_finish(b);
	static const struct lookup_case want[] = {
		{ "192.0.2.10", true }, { "192.0.2.11", true }, { "192.0.2.12", false },
		{ "10.1.200.1", true }, { "2001:db8:10:ffff::1", true }, { "2001:db8:11::", false },
		{ "203.0.113.1", false }, { "::1", true }, { "198.51.100.255", true },
	};
	for (size_t j = 0; j < sizeof(want) / sizeof(want[0]); j++) {
		bool got_match = lookup(t, want[j].addr);
		cr_expect_eq(got_match, want[j].want, "lookup %s: got %d", want[j].addr, got_match);
	}
	cr_expect_eq(cidr_count(t), 6);
	cidr_free(t);
	unlink(path);
	free(path);
}

Test(cidr, haproxy_hosts_file_errors)
{
	static const struct {
		const char *content;
		const char *want_pos;             /* after "PATH:" */
		const char *want_msg;
	} cases[] = {
		{ "192.0.2.1\n# ok\n    10.0.0.0/33  # bad\n", "3:5: ", "invalid CIDR '10.0.0.0/33'" },
		{ "10.1.2.3/16\n", "1:1: ", "host bits set" },
		{ "\n\n\t\tnot-an-address\n", "3:3: ", "invalid address 'not-an-address'" },
		{ "192.0.2.1 192.0.2.2\n", "1:1: ", "invalid address '192.0.2.1 192.0.2.2'" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *path = write_temp(cases[i].content);
		char want_prefix[256], got_err[512] = "";
		struct cidr_builder *b = cidr_builder_new();
		snprintf(want_prefix, sizeof(want_prefix), "%s:%s", path, cases[i].want_pos);
		cr_expect_eq(cidr_builder_add_file(b, path, got_err, sizeof(got_err)), -1);
		cr_expect(strncmp(got_err, want_prefix, strlen(want_prefix)) == 0,
		          "case %zu: got '%s', want prefix '%s'", i, got_err, want_prefix);
		cr_expect(strstr(got_err, cases[i].want_msg) != NULL, "case %zu: got '%s', want '%s'",
		          i, got_err, cases[i].want_msg);
		cidr_builder_free(b);
		unlink(path);
		free(path);
	}

	struct cidr_builder *b = cidr_builder_new();
	char got_err[512] = "";
	cr_expect_eq(cidr_builder_add_file(b, "/nonexistent/haproxy_hosts", got_err,
	                                   sizeof(got_err)), -1);
	cr_expect_str_eq(got_err, "/nonexistent/haproxy_hosts:0:0: cannot open: "
	                 "No such file or directory");
	cidr_builder_free(b);
}

/* ---- randomized: the table against a linear scan over the entries ---- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t rng(void)
{
	/* xorshift64*: deterministic, so a failure reproduces. */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dULL;
}

struct naive4 {
	uint32_t net, mask;
};

struct naive6 {
	u128 net, mask;
};

static u128 load6(const uint8_t *a)
{
	u128 v = 0;
	for (int i = 0; i < 16; i++)
		v = (v << 8) | a[i];
	return v;
}

static void store6(u128 v, uint8_t *a)
{
	for (int i = 15; i >= 0; i--) {
		a[i] = (uint8_t)v;
		v >>= 8;
	}
}

Test(cidr, randomized_against_linear_scan)
{
	enum { N4 = 3000, N6 = 2000, LOOKUPS = 20000 };
	static struct naive4 n4[N4];
	static struct naive6 n6[N6];
	struct cidr_builder *b = cidr_builder_new();
	char text[128], err[256];
	/* Entries in a small space (10.0.0.0/12, 2001:db8::/108) so they overlap and touch
	 * a lot, yet cover only about half of it. */
	const u128 base6 = (u128)0x20010db8ULL << 96;

	for (size_t i = 0; i < N4; i++) {
		unsigned plen = 22 + (unsigned)(rng() % 11);               /* 22..32 */
		uint32_t mask = plen == 0 ? 0 : UINT32_MAX << (32 - plen);
		uint32_t a = (0x0a000000u | (uint32_t)(rng() & 0xfffff)) & mask;
		struct in_addr ia = { htonl(a) };
		n4[i].net = a;
		n4[i].mask = mask;
		snprintf(text, sizeof(text), "%s/%u", inet_ntoa(ia), plen);
		cr_assert_eq(cidr_builder_add(b, text, err, sizeof(err)), 0, "%s: %s", text, err);
	}
	for (size_t i = 0; i < N6; i++) {
		unsigned plen = 118 + (unsigned)(rng() % 11);              /* 118..128 */
		u128 mask = ~(u128)0 << (128 - plen);
		u128 a = (base6 | (u128)(rng() & 0xfffff)) & mask;
		uint8_t raw[16];
		char buf[INET6_ADDRSTRLEN];
		store6(a, raw);
		inet_ntop(AF_INET6, raw, buf, sizeof(buf));
		n6[i].net = a;
		n6[i].mask = mask;
		snprintf(text, sizeof(text), "%s/%u", buf, plen);
		cr_assert_eq(cidr_builder_add(b, text, err, sizeof(err)), 0, "%s: %s", text, err);
	}
	struct cidr_table *t = cidr_builder_finish(b);
	cr_assert_not_null(t);
	cr_expect_eq(cidr_count(t), N4 + N6);

	size_t got_hits = 0;
	for (size_t k = 0; k < LOOKUPS; k++) {
		uint32_t a4;
		u128 a6;
		/* Half random, half on or just beside an entry's first/last address. */
		if (k % 2 == 0) {
			a4 = 0x0a000000u | (uint32_t)(rng() & 0x1fffff);    /* also past the space */
			a6 = base6 | (u128)(rng() & 0x1fffff);
		} else {
			const struct naive4 *e4 = &n4[rng() % N4];
			const struct naive6 *e6 = &n6[rng() % N6];
			int d = (int)(rng() % 4);
			a4 = d == 0 ? e4->net : d == 1 ? (e4->net | ~e4->mask) :
			     d == 2 ? e4->net - 1 : (e4->net | ~e4->mask) + 1;
			a6 = d == 0 ? e6->net : d == 1 ? (e6->net | ~e6->mask) :
			     d == 2 ? e6->net - 1 : (e6->net | ~e6->mask) + 1;
		}
		bool want4 = false, want6 = false;
		for (size_t i = 0; i < N4 && !want4; i++)
			want4 = (a4 & n4[i].mask) == n4[i].net;
		for (size_t i = 0; i < N6 && !want6; i++)
			want6 = (a6 & n6[i].mask) == n6[i].net;

		uint32_t be4 = htonl(a4);
		uint8_t raw6[16];
		store6(a6, raw6);
		bool got4 = cidr_lookup_raw(t, AF_INET, &be4);
		bool got6 = cidr_lookup_raw(t, AF_INET6, raw6);
		cr_assert_eq(got4, want4, "v4 lookup %08x: got %d want %d", a4, got4, want4);
		cr_assert_eq(got6, want6, "v6 lookup ...%08x: got %d want %d",
		             (unsigned)(uint32_t)a6, got6, want6);
		cr_assert(load6(raw6) == a6);
		got_hits += got4 + got6;
	}
	/* Both answers must be common, or the comparison proves little. */
	cr_expect(got_hits > LOOKUPS / 4 && got_hits < 2 * LOOKUPS - LOOKUPS / 4,
	          "hits %zu of %d", got_hits, 2 * LOOKUPS);
	cidr_free(t);
}
