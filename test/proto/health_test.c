/* test/proto/health_test — the rise/fall state machine of proto/health: thresholds, the
 * probation at start, flapping, passive results, reload, the jitter bounds and the
 * reason strings. Sequences are written as strings, one letter a result:
 *     o  probe passed          x  probe timed out       r  probe refused
 *     g  probe got a 421       p  delivery greeted      f  delivery closed before greeting
 *     1..9  a delivery connected, then closed before the greeting, to destination 1..9
 *           (unclear: the proxy's doing or its destination's)
 *     w  a pair probe's 220 came through it (health_forwarded)
 *     A..E  a delivery greeted, then cut under its first transaction, to destination A..E
 *     t  a transaction through it ended (health_passive_done)
 * and the changes wanted as one letter each: '.' none, 'D' went down, 'U' went up. */
#include <criterion/criterion.h>
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "proto/health.h"

#define NCASES(a) (sizeof(a) / sizeof((a)[0]))

static enum health_change feed(struct health *h, char c, uint64_t now)
{
	switch (c) {
	case 'o':
		return health_probe_ok(h, now);
	case 'x':
		return health_probe_fail(h, HEALTH_R_TIMEOUT, 0, now);
	case 'r':
		return health_probe_fail(h, HEALTH_R_REFUSED, 0, now);
	case 'g':
		return health_probe_fail(h, HEALTH_R_GREETING, 421, now);
	case 'p':
		return health_passive_ok(h, now);
	case 'f':
		return health_passive_fail(h, HEALTH_R_CLOSED, 0, now);
	case 'w':
		health_forwarded(h);
		return HEALTH_SAME;
	case 't':
		health_passive_done(h);
		return HEALTH_SAME;
	}
	if (c >= 'A' && c <= 'E')
		return health_passive_cut(h, c == 'A' ? ETIMEDOUT : 0, 0xc0770000u + (unsigned)(c - 'A'), now);
	if (c >= '1' && c <= '9')
		return health_passive_unclear(h, HEALTH_R_CLOSED, 0, 0x5eed0000u + (unsigned)(c - '0'),
		                              now);
	cr_assert_fail("bad letter '%c'", c);
	return HEALTH_SAME;
}

static const char health_letters[] = { [HEALTH_SAME] = '.', [HEALTH_WENT_DOWN] = 'D',
                                        [HEALTH_WENT_UP] = 'U' };

struct seq_case {
	const char *name;
	unsigned fall, rise;
	const char *in;
	const char *want;              /* one letter per result */
	bool want_up;
};

static const struct seq_case seq_cases[] = {
	/* start: up, and the first failure takes it down, whatever the threshold */
	{ "probation, fall 3", 3, 3, "x", "D", false },
	{ "probation, fall 100", 100, 3, "r", "D", false },
	{ "probation by a delivery", 3, 3, "f", "D", false },
	{ "probation ends at a probe success", 3, 3, "oxx", "...", true },
	{ "probation ends at a delivery greeted", 3, 3, "pxx", "...", true },
	{ "fall 1 is the probation anyway", 1, 1, "oxox", ".DUD", false },
	/* thresholds: exactly fall failures in a row, exactly rise probes in a row */
	{ "fall 3", 3, 3, "oxxx", "...D", false },
	{ "fall 3, reasons mixed", 3, 3, "orgx", "...D", false },
	{ "fall 3 then more failures", 3, 3, "oxxxxxx", "...D...", false },
	{ "rise 3", 3, 3, "xooo", "D..U", true },
	{ "rise 3 then up stays", 3, 3, "xooooo", "D..U..", true },
	{ "rise 1", 3, 1, "xo", "DU", true },
	{ "rise 2 fall 2, round trips", 2, 2, "xooxxoo", "D.U.D.U", true },
	{ "a success breaks a failure run", 3, 3, "oxxoxxoxx", ".........", true },
	{ "a failure breaks a success run", 3, 3, "xooxooxoo", "D........", false },
	/* flapping: alternating results never change anything when both thresholds > 1 */
	{ "flapping while up", 3, 3, "oxoxoxoxoxoxoxox", "................", true },
	{ "flapping while down", 3, 3, "xoxoxoxoxoxoxox", "D..............", false },
	{ "flapping 2/2 while up", 2, 2, "oxoxoxoxox", "..........", true },
	{ "flapping 2/2 while down", 2, 2, "xoxoxoxoxo", "D.........", false },
	{ "flapping by pairs under 3/3", 3, 3, "oxxooxxooxxoo", ".............", true },
	/* passive: deliveries' failures count like probes' */
	{ "passive failures take it down", 3, 3, "offf", "...D", false },
	{ "passive and probe failures add up", 3, 3, "ofxf", "...D", false },
	{ "a delivery greeted breaks the run", 3, 3, "offpff", "......", true },
	{ "deliveries greeted never bring it up", 3, 1, "xpppppp", "D......", false },
	{ "only probes bring it up", 3, 2, "xppppoo", "D.....U", true },
	{ "a delivery greeted keeps the success run", 3, 3, "xoopo", "D...U", true },
	{ "a delivery failure breaks the success run", 3, 3, "xoofoo", "D.....", false },
	{ "and then it can come up", 3, 3, "xoofooo", "D.....U", true },
	/* unclear: only distinct destinations count, no probation, broken by traffic only */
	{ "one dead destination never takes it down", 3, 3, "o11111111", ".........", true },
	{ "one dead destination at start either", 3, 3, "111", "...", true },
	{ "distinct destinations take it down", 3, 3, "o123", "...D", false },
	{ "a destination again is no news", 3, 3, "o1121213", ".......D", false },
	{ "a delivery greeted breaks an unclear run", 3, 3, "o12p3", ".....", true },
	{ "a server probe does not", 3, 3, "o12o3", "....D", false },
	{ "a 220 through it does", 3, 3, "o12w3", ".....", true },
	{ "unclear while down changes nothing", 3, 3, "x123", "D...", false },
	{ "clear and unclear runs apart", 3, 3, "o1f2f3", ".....D", false },
	{ "fall 1: the first unclear one", 1, 1, "o1", ".D", false },
	{ "up again, the run starts over", 3, 1, "o123o12", "...DU..", true },
	/* cuts: after the greeting, under the first transaction; distinct destinations, a run
	 * only a transaction that ended breaks */
	{ "one destination cut again and again", 3, 3, "oAAAAAAAA", ".........", true },
	{ "cuts to distinct destinations take it down", 3, 3, "oABC", "...D", false },
	{ "a cut destination again is no news", 3, 3, "oAABABAC", ".......D", false },
	{ "a greeting does not break a run of cuts", 3, 3, "oApBpC", ".....D", false },
	{ "nor a 220 through it", 3, 3, "oAwBwC", ".....D", false },
	{ "nor a probe", 3, 3, "oAoBoC", ".....D", false },
	{ "a transaction that ended does", 3, 3, "oABtC", ".....", true },
	{ "and breaks an unclear run too", 3, 3, "o12t3", ".....", true },
	{ "cuts and unclear failures run apart", 3, 3, "o1A2B3", ".....D", false },
	{ "unclear failures and cuts run apart", 3, 3, "oA1B2C", ".....D", false },
	{ "cuts while down change nothing", 3, 3, "xABCDE", "D.....", false },
	{ "fall 1: the first cut", 1, 1, "oA", ".D", false },
	{ "up again, the cuts start over", 3, 1, "oABCoAB", "...DU..", true },
	{ "cuts at start: no probation", 3, 3, "AB", "..", true },
};

Test(health, sequences)
{
	for (size_t i = 0; i < NCASES(seq_cases); i++) {
		const struct seq_case *c = &seq_cases[i];
		struct health h;
		char got[64];
		size_t n = strlen(c->in);

		cr_assert_eq(strlen(c->want), n, "%s: bad case", c->name);
		health_init(&h, c->fall, c->rise, 1000);
		cr_assert(health_is_up(&h), "%s: starts up", c->name);
		for (size_t k = 0; k < n; k++)
			got[k] = health_letters[feed(&h, c->in[k], 1000 + k)];
		got[n] = '\0';
		cr_assert_str_eq(got, c->want, "%s: %s gave %s", c->name, c->in, got);
		cr_assert_eq(health_is_up(&h), c->want_up, "%s: up %d", c->name, health_is_up(&h));
	}
}

/* Long random runs: the state changes exactly when a run of the right kind reaches its
 * threshold (a model written the plain way), for every pair of small thresholds. */
Test(health, random_runs_against_a_model)
{
	static const char letters[] = "oxrgpf";
	uint32_t seed = 2463534242u;

	for (unsigned fall = 1; fall <= 5; fall++) {
		for (unsigned rise = 1; rise <= 5; rise++) {
			struct health h;
			bool up = true, fresh = true;
			unsigned fails = 0, oks = 0;
			health_init(&h, fall, rise, 0);
			for (unsigned k = 0; k < 20000; k++) {
				seed ^= seed << 13;
				seed ^= seed >> 17;
				seed ^= seed << 5;
				char c = letters[seed % 6];
				bool ok = c == 'o' || c == 'p', probe = c != 'p' && c != 'f';
				enum health_change want = HEALTH_SAME;
				if (ok) {
					fails = 0;
					fresh = false;
					if (!up && probe && ++oks >= rise) {
						up = true;
						oks = 0;
						want = HEALTH_WENT_UP;
					}
				} else {
					oks = 0;
					fails++;
					if (up && (fresh || fails >= fall)) {
						up = false;
						fails = 0;
						fresh = false;
						want = HEALTH_WENT_DOWN;
					}
				}
				enum health_change got = feed(&h, c, k);
				cr_assert_eq(got, want, "fall %u rise %u step %u '%c': got %d want %d",
				             fall, rise, k, c, got, want);
				cr_assert_eq(health_is_up(&h), up);
			}
		}
	}
}

Test(health, counters_reason_and_since)
{
	struct health h;
	health_init(&h, 2, 2, 500);
	cr_assert_eq(h.since_ms, 500);
	cr_assert_eq(h.reason, HEALTH_R_NONE);
	cr_assert_eq(h.checks, 0);
	cr_assert_eq(h.fails, 0);

	cr_assert_eq(health_probe_ok(&h, 600), HEALTH_SAME);
	cr_assert_eq(health_passive_fail(&h, HEALTH_R_REFUSED, 0, 700), HEALTH_SAME);
	cr_assert_eq(h.reason, HEALTH_R_REFUSED);
	cr_assert_eq(health_probe_fail(&h, HEALTH_R_GREETING, 554, 800), HEALTH_WENT_DOWN);
	cr_assert_eq(h.reason, HEALTH_R_GREETING);
	cr_assert_eq(h.code, 554);
	cr_assert_eq(h.since_ms, 800);
	cr_assert_eq(h.checks, 2);
	cr_assert_eq(h.fails, 2);
	cr_assert_eq(h.passive_fails, 1);

	/* a failure reported without a reason is still a failure, with one */
	cr_assert_eq(health_probe_fail(&h, HEALTH_R_NONE, 0, 850), HEALTH_SAME);
	cr_assert_eq(h.reason, HEALTH_R_ERROR);
	cr_assert_eq(health_probe_ok(&h, 900), HEALTH_SAME);
	cr_assert_eq(health_probe_ok(&h, 1000), HEALTH_WENT_UP);
	cr_assert_eq(h.since_ms, 1000);
	cr_assert_eq(h.checks, 5);
	cr_assert_eq(h.fails, 3);
	/* the last failure's reason stays for the log line of the next change */
	cr_assert_eq(h.reason, HEALTH_R_ERROR);
	/* a cut is a delivery failure with its reason and code */
	cr_assert_eq(health_passive_cut(&h, 104, 7, 1100), HEALTH_SAME);
	cr_assert_eq(h.reason, HEALTH_R_CUT);
	cr_assert_eq(h.code, 104);
	cr_assert_eq(h.fails, 4);
	cr_assert_eq(h.passive_fails, 2);
	cr_assert_eq(h.checks, 5);
}

Test(health, thresholds_are_clamped)
{
	struct health h;
	health_init(&h, 0, 0, 0);
	cr_assert_eq(h.fall, 1);
	cr_assert_eq(h.rise, 1);
	health_init(&h, 1000, 101, 0);
	cr_assert_eq(h.fall, HEALTH_THRESHOLD_MAX);
	cr_assert_eq(h.rise, HEALTH_THRESHOLD_MAX);

	/* 100: a success, 99 failures, still up; the 100th takes it down */
	health_probe_ok(&h, 0);
	for (unsigned k = 0; k < 99; k++)
		cr_assert_eq(health_probe_fail(&h, HEALTH_R_TIMEOUT, 0, k), HEALTH_SAME);
	cr_assert_eq(health_probe_fail(&h, HEALTH_R_TIMEOUT, 0, 99), HEALTH_WENT_DOWN);
	for (unsigned k = 0; k < 99; k++)
		cr_assert_eq(health_probe_ok(&h, k), HEALTH_SAME);
	cr_assert_eq(health_probe_ok(&h, 99), HEALTH_WENT_UP);
}

Test(health, reload_keeps_the_state)
{
	struct health h;
	health_init(&h, 5, 5, 0);
	health_probe_ok(&h, 0);
	for (int k = 0; k < 4; k++)
		health_probe_fail(&h, HEALTH_R_TIMEOUT, 0, 1);
	/* lowered under the run: no change by itself, the next failure takes it down */
	health_set_thresholds(&h, 2, 2);
	cr_assert(health_is_up(&h));
	cr_assert_eq(health_probe_fail(&h, HEALTH_R_TIMEOUT, 0, 2), HEALTH_WENT_DOWN);
	cr_assert_eq(health_probe_ok(&h, 3), HEALTH_SAME);
	cr_assert_eq(health_probe_ok(&h, 4), HEALTH_WENT_UP, "the new rise, 2, applies");
}

Test(health, reload_raised_and_down)
{
	struct health h;
	health_init(&h, 3, 5, 0);
	health_probe_fail(&h, HEALTH_R_TIMEOUT, 0, 0);          /* down (probation) */
	for (int k = 0; k < 4; k++)
		health_probe_ok(&h, 1);
	health_set_thresholds(&h, 3, 2);    /* run 4 >= 2: left one short */
	cr_assert(!health_is_up(&h));
	cr_assert_eq(health_probe_ok(&h, 2), HEALTH_WENT_UP);
	health_set_thresholds(&h, 0, 500);
	cr_assert_eq(h.fall, 1);
	cr_assert_eq(h.rise, HEALTH_THRESHOLD_MAX);
	cr_assert_eq(health_passive_fail(&h, HEALTH_R_CLOSED, 0, 3), HEALTH_WENT_DOWN);
}

Test(health, usable_needs_server_and_pair)
{
	struct health server, pair;
	health_init(&server, 1, 1, 0);
	health_init(&pair, 1, 1, 0);
	cr_assert(health_usable(&server, &pair));
	cr_assert(health_usable(&server, NULL));
	health_probe_fail(&pair, HEALTH_R_CLOSED, 0, 1);
	cr_assert(!health_usable(&server, &pair));
	cr_assert(health_usable(&server, NULL));
	health_probe_ok(&pair, 2);
	health_probe_fail(&server, HEALTH_R_REFUSED, 0, 3);
	cr_assert(!health_usable(&server, &pair), "a pair of a down server is down");
	cr_assert(!health_usable(&server, NULL));
	cr_assert(health_is_up(&pair), "the pair's own state is kept");
}

Test(health, reason_strings)
{
	static const struct {
		enum health_reason r;
		int code;
		const char *want_word, *want_text;
	} cases[] = {
		{ HEALTH_R_NONE, 0, "none", "none" },
		{ HEALTH_R_REFUSED, 0, "refused", "refused" },
		{ HEALTH_R_TIMEOUT, 0, "timeout", "timeout" },
		{ HEALTH_R_CLOSED, 0, "closed", "closed before greeting" },
		{ HEALTH_R_GREETING, 421, "greeting", "greeting 421" },
		{ HEALTH_R_GREETING, 554, "greeting", "greeting 554" },
		{ HEALTH_R_ERROR, 113, "error", "connect error (errno 113)" },
		{ HEALTH_R_CUT, ETIMEDOUT, "cut", "cut after greeting (timeout)" },
		{ HEALTH_R_CUT, 0, "cut", "cut after greeting (closed)" },
		{ HEALTH_R_CUT, 104, "cut", "cut after greeting (errno 104)" },
		{ (enum health_reason)99, 0, "unknown", "unknown" },
	};
	for (size_t i = 0; i < NCASES(cases); i++) {
		char got[64];
		cr_assert_str_eq(health_reason_str(cases[i].r), cases[i].want_word, "case %zu", i);
		size_t n = health_reason_fmt(got, sizeof got, cases[i].r, cases[i].code);
		cr_assert_str_eq(got, cases[i].want_text, "case %zu", i);
		cr_assert_eq(n, strlen(cases[i].want_text));
		/* a short buffer: cut, terminated, the wanted length still returned */
		char small[5];
		memset(small, 'z', sizeof small);
		n = health_reason_fmt(small, sizeof small, cases[i].r, cases[i].code);
		cr_assert_eq(n, strlen(cases[i].want_text));
		cr_assert_eq(strncmp(small, cases[i].want_text, 4), 0);
		cr_assert_eq(small[strlen(small)], '\0');
		cr_assert_leq(strlen(small), 4);
	}
	/* every reason a failure can carry has a word of its own */
	for (int r = HEALTH_R_NONE; r < HEALTH_REASONS; r++)
		cr_assert_str_neq(health_reason_str((enum health_reason)r), "unknown", "%d", r);
	cr_assert_str_eq(health_reason_str((enum health_reason)-1), "unknown");
}

/* Jitter: within the documented bounds for every random value tried, both ends reached,
 * spread evenly between them; never 0, never under the timeout, never over interval +
 * timeout. */
Test(health, jitter_bounds)
{
	static const struct {
		uint32_t interval, timeout;
		uint64_t want_lo, want_hi;
	} cases[] = {
		{ 5000, 1000, 4500, 5500 },        /* the defaults */
		{ 1000, 1000, 1000, 1100 },        /* timeout = interval: never earlier */
		{ 1000, 950, 950, 1100 },
		{ 1000, 1, 900, 1001 },            /* never later than interval + timeout */
		{ 3600000, 1000, 3240000, 3601000 },
		{ 9, 1, 9, 9 },                    /* a tenth rounds to 0: no jitter */
		{ 10, 1, 9, 11 },
		{ 1, 1, 1, 1 },
		{ 0, 0, 1, 1 },                    /* never 0 */
		{ 1000, 0, 900, 1000 },
		{ 1000, 5000, 5000, 5000 },        /* a timeout over the interval (not configurable) */
		{ UINT32_MAX, 0, UINT32_MAX - UINT32_MAX / 10, UINT32_MAX },
		{ UINT32_MAX, UINT32_MAX, UINT32_MAX, (uint64_t)UINT32_MAX + UINT32_MAX / 10 },
	};
	uint32_t seed = 88172645u;

	for (size_t i = 0; i < NCASES(cases); i++) {
		uint64_t got_lo = UINT64_MAX, got_hi = 0;
		double sum = 0;
		const unsigned n = 200000;
		for (unsigned k = 0; k < n; k++) {
			uint32_t rnd;
			if (k == 0)
				rnd = 0;
			else if (k == 1)
				rnd = UINT32_MAX;
			else {
				seed ^= seed << 13;
				seed ^= seed >> 17;
				seed ^= seed << 5;
				rnd = seed;
			}
			uint64_t d = health_next_ms(cases[i].interval, cases[i].timeout, rnd);
			cr_assert_geq(d, cases[i].want_lo, "case %zu: %" PRIu64, i, d);
			cr_assert_leq(d, cases[i].want_hi, "case %zu: %" PRIu64, i, d);
			cr_assert_gt(d, 0);
			got_lo = d < got_lo ? d : got_lo;
			got_hi = d > got_hi ? d : got_hi;
			sum += (double)d;
		}
		if (cases[i].want_hi - cases[i].want_lo < 100000) {
			cr_assert_eq(got_lo, cases[i].want_lo, "case %zu: lowest %" PRIu64, i, got_lo);
			cr_assert_eq(got_hi, cases[i].want_hi, "case %zu: highest %" PRIu64, i, got_hi);
		}
		double mid = ((double)cases[i].want_lo + (double)cases[i].want_hi) / 2;
		double spread = (double)(cases[i].want_hi - cases[i].want_lo) + 1;
		cr_assert(sum / n > mid - spread / 50 && sum / n < mid + spread / 50,
		          "case %zu: mean %f, want about %f", i, sum / n, mid);
	}
}

Test(health, first_probe_within_a_tenth)
{
	static const uint32_t intervals[] = { 0, 1, 9, 10, 1000, 5000, 3600000 };
	uint32_t seed = 1;
	for (size_t i = 0; i < NCASES(intervals); i++) {
		uint64_t hi = intervals[i] / 10, got_hi = 0;
		cr_assert_eq(health_first_ms(intervals[i], 0), 0);
		for (unsigned k = 0; k < 100000; k++) {
			seed = seed * 1103515245u + 12345u;
			uint64_t d = health_first_ms(intervals[i], seed);
			cr_assert_leq(d, hi, "interval %u: %" PRIu64, intervals[i], d);
			got_hi = d > got_hi ? d : got_hi;
		}
		if (hi < 1000)
			cr_assert_eq(got_hi, hi, "interval %u: highest %" PRIu64, intervals[i], got_hi);
	}
}
