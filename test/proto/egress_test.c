/* test/proto/egress_test — source and proxy server selection: the round robin (order,
 * skipping, fairness, an empty or all-ineligible set), sources by family, and the
 * failover rule (go, move, wait, unreachable; pinned or not). */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "proto/egress.h"

#define NCASES(a) (sizeof(a) / sizeof((a)[0]))
#define NO EGRESS_NONE

/* --- round robin ---------------------------------------------------------------- */

Test(egress, rr_table)
{
	static const struct {
		const char *eligible;      /* '1' eligible, '0' not; "" for n = 0 */
		uint32_t rotor;
		size_t want[8];            /* the next picks, in order */
		size_t npicks;
		uint32_t want_rotor;       /* after them */
	} cases[] = {
		{ "111", 0, { 0, 1, 2, 0, 1, 2, 0 }, 7, 1 },
		{ "101", 0, { 0, 2, 0, 2 }, 4, 3 },
		{ "010", 0, { 1, 1, 1 }, 3, 2 },
		{ "0011", 0, { 2, 3, 2, 3 }, 4, 4 },
		{ "1001", 2, { 3, 0, 3 }, 3, 4 },
		{ "111", 5, { 2, 0, 1 }, 3, 2 },               /* 5 % 3 = 2 */
		{ "11111", UINT32_MAX, { 0, 1 }, 2, 2 },       /* UINT32_MAX % 5 = 0 */
		{ "1101", UINT32_MAX, { 3, 0, 1, 3 }, 4, 4 },  /* UINT32_MAX % 4 = 3 */
		{ "000", 1, { NO, NO }, 2, 1 },                /* nothing eligible: rotor kept */
		{ "", 7, { NO }, 1, 7 },                       /* n = 0 */
		{ "1", 0, { 0, 0, 0 }, 3, 1 },
	};
	for (size_t i = 0; i < NCASES(cases); i++) {
		bool el[16];
		size_t n = strlen(cases[i].eligible);
		for (size_t k = 0; k < n; k++)
			el[k] = cases[i].eligible[k] == '1';
		uint32_t rotor = cases[i].rotor;
		for (size_t k = 0; k < cases[i].npicks; k++) {
			size_t got = egress_rr(el, n, &rotor);
			cr_assert_eq(got, cases[i].want[k], "case %zu (%s) pick %zu: got %zu want %zu",
			             i, cases[i].eligible, k, got, cases[i].want[k]);
		}
		cr_assert_eq(rotor, cases[i].want_rotor, "case %zu: rotor %u want %u", i, rotor,
		             cases[i].want_rotor);
	}
}

/* Whatever the eligible set, and whatever changes it between picks, each entry that
 * stays eligible gets its turn within n picks, and over a fixed set the shares differ
 * by at most one. */
Test(egress, rr_is_fair)
{
	uint32_t seed = 7;
	for (size_t n = 1; n <= 9; n++) {
		for (unsigned set = 1; set < (1u << n); set++) {
			bool el[9];
			unsigned count[9] = { 0 }, want_picks = 0;
			for (size_t k = 0; k < n; k++) {
				el[k] = (set >> k) & 1;
				want_picks += el[k];
			}
			seed = seed * 1103515245u + 12345u;
			uint32_t rotor = seed;
			for (unsigned k = 0; k < 10 * want_picks + 3; k++) {
				size_t got = egress_rr(el, n, &rotor);
				cr_assert_lt(got, n);
				cr_assert(el[got], "n %zu set %x: took ineligible %zu", n, set, got);
				count[got]++;
			}
			unsigned lo = UINT32_MAX, hi = 0;
			for (size_t k = 0; k < n; k++) {
				if (!el[k])
					continue;
				lo = count[k] < lo ? count[k] : lo;
				hi = count[k] > hi ? count[k] : hi;
			}
			cr_assert_leq(hi - lo, 1, "n %zu set %x: shares %u..%u", n, set, lo, hi);
		}
	}
	/* a changing set: an entry eligible throughout waits at most n - 1 other picks */
	bool el[6] = { true, true, true, true, true, true };
	uint32_t rotor = 0;
	unsigned since = 0;
	for (unsigned k = 0; k < 10000; k++) {
		seed = seed * 1103515245u + 12345u;
		for (size_t j = 1; j < 6; j++)
			el[j] = (seed >> (j + 8)) & 1;
		size_t got = egress_rr(el, 6, &rotor);
		cr_assert(el[got]);
		since = got == 0 ? 0 : since + 1;
		cr_assert_lt(since, 6, "entry 0 skipped %u times in a row", since);
	}
}

/* --- sources by family ------------------------------------------------------------ */

static const uint8_t a4[4] = { 198, 51, 100, 7 };
static const uint8_t b4[4] = { 198, 51, 100, 8 };
static const uint8_t a6[16] = { 0x20, 0x01, 0x0d, 0xb8, [15] = 7 };
static const uint8_t b6[16] = { 0x20, 0x01, 0x0d, 0xb8, [15] = 8 };

/* A: v4, B: v6, C: v4 + v6, D: v4 */
static void four_sources(struct egress_source s[4])
{
	egress_source_init(&s[0], a4, NULL);
	egress_source_init(&s[1], NULL, a6);
	egress_source_init(&s[2], b4, b6);
	egress_source_init(&s[3], a4, NULL);
}

Test(egress, source_addresses)
{
	struct egress_source s[4];
	four_sources(s);
	cr_assert_eq(s[0].fams, EGRESS_V4);
	cr_assert_eq(s[1].fams, EGRESS_V6);
	cr_assert_eq(s[2].fams, EGRESS_V4 | EGRESS_V6);
	cr_assert_eq(memcmp(egress_source_addr(&s[0], EGRESS_V4), a4, 4), 0);
	cr_assert_null(egress_source_addr(&s[0], EGRESS_V6));
	cr_assert_null(egress_source_addr(&s[1], EGRESS_V4));
	cr_assert_eq(memcmp(egress_source_addr(&s[1], EGRESS_V6), a6, 16), 0);
	cr_assert_eq(memcmp(egress_source_addr(&s[2], EGRESS_V4), b4, 4), 0);
	cr_assert_eq(memcmp(egress_source_addr(&s[2], EGRESS_V6), b6, 16), 0);
	/* a mask is not a family */
	cr_assert_null(egress_source_addr(&s[2], EGRESS_V4 | EGRESS_V6));
	cr_assert_null(egress_source_addr(&s[2], 0));

	struct egress_source none;
	egress_source_init(&none, NULL, NULL);
	cr_assert_eq(none.fams, 0);
	cr_assert_null(egress_source_addr(&none, EGRESS_V4));
}

Test(egress, pick_by_family)
{
	static const struct {
		unsigned fams;
		const char *usable;        /* NULL: all */
		size_t want[6];
	} cases[] = {
		{ EGRESS_V4, NULL, { 0, 2, 3, 0, 2, 3 } },
		{ EGRESS_V6, NULL, { 1, 2, 1, 2, 1, 2 } },
		{ EGRESS_V4 | EGRESS_V6, NULL, { 0, 1, 2, 3, 0, 1 } },
		{ EGRESS_V4, "1011", { 0, 2, 3, 0, 2, 3 } },
		{ EGRESS_V4, "0110", { 2, 2, 2, 2, 2, 2 } },
		{ EGRESS_V6, "1101", { 1, 1, 1, 1, 1, 1 } },
		{ EGRESS_V6, "1001", { NO, NO, NO, NO, NO, NO } },   /* v6 sources all down */
		{ EGRESS_V4 | EGRESS_V6, "0101", { 1, 3, 1, 3, 1, 3 } },
		{ 0, NULL, { NO, NO, NO, NO, NO, NO } },             /* a site without addresses */
	};
	struct egress_source s[4];
	four_sources(s);
	for (size_t i = 0; i < NCASES(cases); i++) {
		bool us[4];
		for (size_t k = 0; k < 4 && cases[i].usable; k++)
			us[k] = cases[i].usable[k] == '1';
		uint32_t rotor = 0;
		for (size_t k = 0; k < 6; k++) {
			size_t got = egress_pick(s, 4, cases[i].fams, cases[i].usable ? us : NULL,
			                         &rotor);
			cr_assert_eq(got, cases[i].want[k], "case %zu pick %zu: got %zu want %zu", i,
			             k, got, cases[i].want[k]);
			if (got != NO)
				cr_assert(s[got].fams & cases[i].fams);
		}
	}
	uint32_t rotor = 0;
	cr_assert_eq(egress_pick(s, 0, EGRESS_V4, NULL, &rotor), NO);
}

/* One counter per family: interleaved v4 and v6 connections each rotate over all the
 * sources of their family. */
Test(egress, interleaved_families_keep_their_own_turns)
{
	struct egress_source s[3];
	egress_source_init(&s[0], a4, NULL);
	egress_source_init(&s[1], b4, b6);
	egress_source_init(&s[2], NULL, a6);
	uint32_t rotor[4] = { 0 };
	unsigned got4[3] = { 0 }, got6[3] = { 0 };
	for (int k = 0; k < 100; k++) {
		got4[egress_pick(s, 3, EGRESS_V4, NULL, &rotor[EGRESS_V4])]++;
		got6[egress_pick(s, 3, EGRESS_V6, NULL, &rotor[EGRESS_V6])]++;
	}
	cr_assert_eq(got4[0], 50);
	cr_assert_eq(got4[1], 50);
	cr_assert_eq(got4[2], 0);
	cr_assert_eq(got6[0], 0);
	cr_assert_eq(got6[1], 50);
	cr_assert_eq(got6[2], 50);
}

/* --- the failover rule ------------------------------------------------------------- */

Test(egress, route_table)
{
	static const struct {
		const char *name;
		size_t home;
		unsigned fams;
		const char *usable;        /* A B C D */
		bool failover;
		enum egress_verdict want;
		enum egress_why want_why;
		size_t want_source;
	} cases[] = {
		{ "home up", 0, EGRESS_V4, "1111", true, EGRESS_GO, EGRESS_WHY_NONE, 0 },
		{ "home up, pinned", 0, EGRESS_V4, "1111", false, EGRESS_GO, EGRESS_WHY_NONE, 0 },
		{ "home up, others down", 2, EGRESS_V6, "0010", true, EGRESS_GO, EGRESS_WHY_NONE, 2 },
		{ "home up, site of both", 1, EGRESS_V4 | EGRESS_V6, "1111", false, EGRESS_GO,
		  EGRESS_WHY_NONE, 1 },
		/* home has no proxy up */
		{ "moves to the next v4 up", 0, EGRESS_V4, "0111", true, EGRESS_MOVE,
		  EGRESS_WHY_DOWN, 2 },
		{ "moves past a v6-only source", 0, EGRESS_V4, "0101", true, EGRESS_MOVE,
		  EGRESS_WHY_DOWN, 3 },
		{ "v6 moves to C", 1, EGRESS_V6, "1011", true, EGRESS_MOVE, EGRESS_WHY_DOWN, 2 },
		{ "pinned waits", 0, EGRESS_V4, "0111", false, EGRESS_WAIT, EGRESS_WHY_PINNED, NO },
		{ "all down waits", 0, EGRESS_V4, "0000", true, EGRESS_WAIT, EGRESS_WHY_ALL_DOWN, NO },
		{ "the only v6 others down", 1, EGRESS_V6, "0001", true, EGRESS_WAIT,
		  EGRESS_WHY_ALL_DOWN, NO },
		{ "all down, pinned", 3, EGRESS_V4, "0000", false, EGRESS_WAIT, EGRESS_WHY_PINNED, NO },
		/* home has no address of the site's families */
		{ "v4 home, v6 site: moves", 0, EGRESS_V6, "1111", true, EGRESS_MOVE,
		  EGRESS_WHY_FAMILY, 1 },
		{ "v4 home, v6 site, pinned", 0, EGRESS_V6, "1111", false, EGRESS_UNREACHABLE,
		  EGRESS_WHY_NO_ADDRESS, NO },
		{ "v4 home, v6 site, v6 down: waits", 3, EGRESS_V6, "1001", true, EGRESS_WAIT,
		  EGRESS_WHY_ALL_DOWN, NO },
		{ "a site without addresses", 2, 0, "1111", true, EGRESS_UNREACHABLE,
		  EGRESS_WHY_NO_ADDRESS, NO },
		{ "a site without addresses, pinned", 2, 0, "1111", false, EGRESS_UNREACHABLE,
		  EGRESS_WHY_NO_ADDRESS, NO },
		{ "home out of range", 9, EGRESS_V4, "1111", false, EGRESS_UNREACHABLE,
		  EGRESS_WHY_NO_ADDRESS, NO },
	};
	struct egress_source s[4];
	four_sources(s);
	for (size_t i = 0; i < NCASES(cases); i++) {
		bool us[4];
		for (size_t k = 0; k < 4; k++)
			us[k] = cases[i].usable[k] == '1';
		uint32_t rotor = (uint32_t)cases[i].home + 1;      /* as if home was just taken */
		uint32_t was = rotor;
		struct egress_choice got = egress_route(s, 4, cases[i].home, cases[i].fams, us,
		                                        cases[i].failover, &rotor);
		cr_assert_eq(got.verdict, cases[i].want, "%s: verdict %d want %d", cases[i].name,
		             got.verdict, cases[i].want);
		cr_assert_eq(got.why, cases[i].want_why, "%s: why %s want %s", cases[i].name,
		             egress_why_str(got.why), egress_why_str(cases[i].want_why));
		cr_assert_eq(got.source, cases[i].want_source, "%s: source %zu want %zu",
		             cases[i].name, got.source, cases[i].want_source);
		if (got.verdict != EGRESS_MOVE)
			cr_assert_eq(rotor, was, "%s: the rotor moved", cases[i].name);
	}
}

/* Mail of a down source moves round robin over the sources that are up, never to the
 * home itself, and stops moving once home is back. */
Test(egress, moved_mail_is_spread)
{
	struct egress_source s[5];
	for (size_t k = 0; k < 5; k++)
		egress_source_init(&s[k], a4, k % 2 ? a6 : NULL);
	bool us[5] = { false, true, true, true, true };
	unsigned count[5] = { 0 };
	uint32_t rotor = 0;
	for (int k = 0; k < 400; k++) {
		struct egress_choice c = egress_route(s, 5, 0, EGRESS_V4, us, true, &rotor);
		cr_assert_eq(c.verdict, EGRESS_MOVE);
		count[c.source]++;
	}
	cr_assert_eq(count[0], 0);
	for (size_t k = 1; k < 5; k++)
		cr_assert_eq(count[k], 100, "source %zu: %u", k, count[k]);

	/* v6 mail of home 0 (v4 only): moves to the v6 sources 1 and 3 only */
	memset(count, 0, sizeof count);
	us[0] = true;
	for (int k = 0; k < 100; k++)
		count[egress_route(s, 5, 0, EGRESS_V6, us, true, &rotor).source]++;
	cr_assert_eq(count[1], 50);
	cr_assert_eq(count[3], 50);

	struct egress_choice c = egress_route(s, 5, 0, EGRESS_V4, us, true, &rotor);
	cr_assert_eq(c.verdict, EGRESS_GO);
	cr_assert_eq(c.source, 0);
	/* without a pool every source is usable */
	c = egress_route(s, 5, 4, EGRESS_V4, NULL, false, &rotor);
	cr_assert_eq(c.verdict, EGRESS_GO);
	cr_assert_eq(c.source, 4);
}

Test(egress, why_strings)
{
	for (int w = EGRESS_WHY_NONE; w <= EGRESS_WHY_NO_ADDRESS; w++) {
		const char *s = egress_why_str((enum egress_why)w);
		cr_assert_str_neq(s, "unknown", "why %d has no string", w);
		for (int v = EGRESS_WHY_NONE; v < w; v++)
			cr_assert_str_neq(s, egress_why_str((enum egress_why)v), "%d and %d", v, w);
	}
	cr_assert_str_eq(egress_why_str(EGRESS_WHY_PINNED), "pinned");
	cr_assert_str_eq(egress_why_str((enum egress_why)99), "unknown");
}
