/* Unit tests for bench/sink_fail: the --fail SPEC parser (good and bad specs, exact
 * errors) and the chooser (proportions, determinism). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "bench/sink_fail.h"

/* ---- parser: good specs ----------------------------------------------------------- */

struct good_case {
	const char *spec;
	uint32_t want_defer, want_reject, want_drop, want_delay, want_delay_ms;
};

static const struct good_case good_cases[] = {
	{ "defer=5%,reject=1%,drop=1%,delay=200ms@2%", 50000, 10000, 10000, 20000, 200 },
	{ "defer=5%", 50000, 0, 0, 0, 0 },
	{ "reject=100%", 0, 1000000, 0, 0, 0 },
	{ "drop=0.5%", 0, 0, 5000, 0, 0 },
	{ "defer=0.0001%", 1, 0, 0, 0, 0 },
	{ "defer=12.3456%", 123456, 0, 0, 0, 0 },
	{ "delay=2s@10%", 0, 0, 0, 100000, 2000 },
	{ "delay=0ms@1%", 0, 0, 0, 10000, 0 },
	{ "delay=3600s@1%", 0, 0, 0, 10000, 3600000 },
	{ "delay=3600000ms@0%", 0, 0, 0, 0, 3600000 },
	{ "defer=0%", 0, 0, 0, 0, 0 },
	{ "defer=007%", 70000, 0, 0, 0, 0 },
	{ "reject=50%,defer=50%", 500000, 500000, 0, 0, 0 },
	{ "delay=1ms@25%,drop=25%,reject=25%,defer=25%", 250000, 250000, 250000, 250000, 1 },
	{ "defer=33.3333%,reject=33.3333%,drop=33.3334%", 333333, 333333, 333334, 0, 0 },
};

Test(sink_fail, good_specs)
{
	for (size_t i = 0; i < sizeof good_cases / sizeof good_cases[0]; i++) {
		const struct good_case *c = &good_cases[i];
		struct sink_fail got;
		enum sink_fail_err err = SINK_FAIL_E_NONE;
		size_t at = 99;

		memset(&got, 0xff, sizeof got);
		cr_assert_eq(sink_fail_parse(c->spec, &got, &err, &at), 0, "%s: %s", c->spec,
		             sink_fail_strerror(err));
		cr_assert_eq(err, SINK_FAIL_E_NONE, "%s", c->spec);
		cr_expect_eq(got.share[SINK_FAIL_DEFER], c->want_defer, "%s: defer", c->spec);
		cr_expect_eq(got.share[SINK_FAIL_REJECT], c->want_reject, "%s: reject", c->spec);
		cr_expect_eq(got.share[SINK_FAIL_DROP], c->want_drop, "%s: drop", c->spec);
		cr_expect_eq(got.share[SINK_FAIL_DELAY], c->want_delay, "%s: delay", c->spec);
		cr_expect_eq(got.delay_ms, c->want_delay_ms, "%s: delay_ms", c->spec);
		cr_expect_eq(got.share[SINK_FAIL_NONE],
		             SINK_FAIL_SCALE - c->want_defer - c->want_reject - c->want_drop -
		                     c->want_delay,
		             "%s: rest", c->spec);
		cr_expect_eq(sink_fail_any(&got),
		             c->want_defer + c->want_reject + c->want_drop + c->want_delay > 0,
		             "%s: any", c->spec);
	}
}

/* ---- parser: bad specs, with the exact error, offset and message ------------------ */

struct bad_case {
	const char *spec;
	enum sink_fail_err want_err;
	size_t want_at;
	const char *want_msg;
};

static const struct bad_case bad_cases[] = {
	{ "", SINK_FAIL_E_EMPTY, 0,
	  "empty spec (want e.g. defer=5%,reject=1%,drop=1%,delay=200ms@2%)" },
	{ ",", SINK_FAIL_E_ITEM_EMPTY, 0, "empty item at offset 0" },
	{ "defer=5%,", SINK_FAIL_E_ITEM_EMPTY, 9, "empty item at offset 9" },
	{ "defer=5%,,drop=1%", SINK_FAIL_E_ITEM_EMPTY, 9, "empty item at offset 9" },
	{ "bounce=5%", SINK_FAIL_E_KIND, 0,
	  "\"bounce=5%\": unknown kind (want defer, reject, drop or delay)" },
	{ "Defer=5%", SINK_FAIL_E_KIND, 0,
	  "\"Defer=5%\": unknown kind (want defer, reject, drop or delay)" },
	{ " defer=5%", SINK_FAIL_E_KIND, 0,
	  "\" defer=5%\": unknown kind (want defer, reject, drop or delay)" },
	{ "defer=5%, reject=1%", SINK_FAIL_E_KIND, 9,
	  "\" reject=1%\": unknown kind (want defer, reject, drop or delay)" },
	{ "=5%", SINK_FAIL_E_KIND, 0,
	  "\"=5%\": unknown kind (want defer, reject, drop or delay)" },
	{ "defer", SINK_FAIL_E_EQUALS, 0, "\"defer\": missing \"=\" after the kind" },
	{ "drop=1%,reject", SINK_FAIL_E_EQUALS, 8, "\"reject\": missing \"=\" after the kind" },
	{ "defer=5%,defer=1%", SINK_FAIL_E_DUP, 9, "\"defer=1%\": kind given twice" },
	{ "defer=5", SINK_FAIL_E_SHARE_SIGN, 0, "\"defer=5\": share without % (write e.g. 5%)" },
	{ "defer=0.5", SINK_FAIL_E_SHARE_SIGN, 0,
	  "\"defer=0.5\": share without % (write e.g. 5%)" },
	{ "defer=", SINK_FAIL_E_SHARE, 0,
	  "\"defer=\": bad share (want a percentage like 5% or 0.5%)" },
	{ "defer=%", SINK_FAIL_E_SHARE, 0,
	  "\"defer=%\": bad share (want a percentage like 5% or 0.5%)" },
	{ "defer=-1%", SINK_FAIL_E_SHARE, 0,
	  "\"defer=-1%\": bad share (want a percentage like 5% or 0.5%)" },
	{ "defer=.5%", SINK_FAIL_E_SHARE, 0,
	  "\"defer=.5%\": bad share (want a percentage like 5% or 0.5%)" },
	{ "defer=50.%", SINK_FAIL_E_SHARE, 0,
	  "\"defer=50.%\": bad share (want a percentage like 5% or 0.5%)" },
	{ "defer=5%%", SINK_FAIL_E_SHARE, 0,
	  "\"defer=5%%\": bad share (want a percentage like 5% or 0.5%)" },
	{ "defer=5 %", SINK_FAIL_E_SHARE, 0,
	  "\"defer=5 %\": bad share (want a percentage like 5% or 0.5%)" },
	{ "defer=5%x", SINK_FAIL_E_SHARE, 0,
	  "\"defer=5%x\": bad share (want a percentage like 5% or 0.5%)" },
	{ "defer=1e2%", SINK_FAIL_E_SHARE, 0,
	  "\"defer=1e2%\": bad share (want a percentage like 5% or 0.5%)" },
	{ "defer=0.00001%", SINK_FAIL_E_SHARE_DECIMALS, 0,
	  "\"defer=0.00001%\": share with more than 4 decimals" },
	{ "reject=100.0001%", SINK_FAIL_E_SHARE_RANGE, 0, "\"reject=100.0001%\": share over 100%" },
	{ "reject=101%", SINK_FAIL_E_SHARE_RANGE, 0, "\"reject=101%\": share over 100%" },
	{ "reject=99999999999999999999%", SINK_FAIL_E_SHARE_RANGE, 0,
	  "\"reject=99999999999999999999%\": share over 100%" },
	{ "delay=2%", SINK_FAIL_E_DELAY_AT, 0,
	  "\"delay=2%\": delay wants TIME@SHARE (e.g. delay=200ms@2%)" },
	{ "delay=200ms", SINK_FAIL_E_DELAY_AT, 0,
	  "\"delay=200ms\": delay wants TIME@SHARE (e.g. delay=200ms@2%)" },
	{ "delay=200@2%", SINK_FAIL_E_DELAY_TIME, 0,
	  "\"delay=200@2%\": bad delay time (want e.g. 200ms or 2s)" },
	{ "delay=ms@2%", SINK_FAIL_E_DELAY_TIME, 0,
	  "\"delay=ms@2%\": bad delay time (want e.g. 200ms or 2s)" },
	{ "delay=1.5s@2%", SINK_FAIL_E_DELAY_TIME, 0,
	  "\"delay=1.5s@2%\": bad delay time (want e.g. 200ms or 2s)" },
	{ "delay=2m@2%", SINK_FAIL_E_DELAY_TIME, 0,
	  "\"delay=2m@2%\": bad delay time (want e.g. 200ms or 2s)" },
	{ "delay=@2%", SINK_FAIL_E_DELAY_TIME, 0,
	  "\"delay=@2%\": bad delay time (want e.g. 200ms or 2s)" },
	{ "delay=3601s@2%", SINK_FAIL_E_DELAY_RANGE, 0,
	  "\"delay=3601s@2%\": delay time over 3600s" },
	{ "delay=3600001ms@2%", SINK_FAIL_E_DELAY_RANGE, 0,
	  "\"delay=3600001ms@2%\": delay time over 3600s" },
	{ "delay=99999999999999999999s@2%", SINK_FAIL_E_DELAY_RANGE, 0,
	  "\"delay=99999999999999999999s@2%\": delay time over 3600s" },
	{ "delay=2s@", SINK_FAIL_E_SHARE, 0,
	  "\"delay=2s@\": bad share (want a percentage like 5% or 0.5%)" },
	{ "delay=2s@2", SINK_FAIL_E_SHARE_SIGN, 0,
	  "\"delay=2s@2\": share without % (write e.g. 5%)" },
	{ "delay=2s@2%@3%", SINK_FAIL_E_SHARE, 0,
	  "\"delay=2s@2%@3%\": bad share (want a percentage like 5% or 0.5%)" },
	{ "defer=200ms@5%", SINK_FAIL_E_SHARE, 0,
	  "\"defer=200ms@5%\": bad share (want a percentage like 5% or 0.5%)" },
	{ "defer=60%,reject=40.0001%", SINK_FAIL_E_SUM, 0, "shares add up to more than 100%" },
	{ "defer=100%,reject=100%,drop=100%,delay=1s@100%", SINK_FAIL_E_SUM, 0,
	  "shares add up to more than 100%" },
};

Test(sink_fail, bad_specs)
{
	for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
		const struct bad_case *c = &bad_cases[i];
		struct sink_fail got, before;
		enum sink_fail_err err = SINK_FAIL_E_NONE;
		size_t at = 99;
		char msg[256];

		memset(&got, 0x5a, sizeof got);
		before = got;
		cr_assert_eq(sink_fail_parse(c->spec, &got, &err, &at), -1, "\"%s\" parsed", c->spec);
		cr_expect_eq(err, c->want_err, "\"%s\": got error %d (%s), want %d", c->spec, err,
		             sink_fail_strerror(err), c->want_err);
		cr_expect_eq(at, c->want_at, "\"%s\": at %zu, want %zu", c->spec, at, c->want_at);
		cr_expect(memcmp(&got, &before, sizeof got) == 0, "\"%s\": *f changed", c->spec);
		sink_fail_explain(msg, sizeof msg, c->spec, err, at);
		cr_expect_str_eq(msg, c->want_msg, "\"%s\"", c->spec);
	}
}

Test(sink_fail, names_and_strings)
{
	cr_expect_str_eq(sink_fail_kind_name(SINK_FAIL_NONE), "none");
	cr_expect_str_eq(sink_fail_kind_name(SINK_FAIL_DELAY), "delay");
	cr_expect_str_eq(sink_fail_kind_name(SINK_FAIL_NKINDS), "?");
	for (int e = SINK_FAIL_E_NONE; e <= SINK_FAIL_E_SUM; e++)
		cr_expect_neq(strcmp(sink_fail_strerror((enum sink_fail_err)e), "unknown error"), 0);
	cr_expect_str_eq(sink_fail_strerror((enum sink_fail_err)999), "unknown error");

	char small[8];
	sink_fail_explain(small, sizeof small, "bounce=5%", SINK_FAIL_E_KIND, 0);
	cr_expect_str_eq(small, "\"bounce");            /* truncated, still terminated */
	sink_fail_explain(small, 0, "x", SINK_FAIL_E_KIND, 0);   /* nothing written */
}

/* ---- chooser ---------------------------------------------------------------------- */

#define DRAWS 100000u

static void draw(const char *spec, uint64_t seed, unsigned stream, unsigned got[SINK_FAIL_NKINDS],
                 struct sink_fail *f)
{
	enum sink_fail_err err;
	size_t at;
	struct sink_fail_rng r;

	cr_assert_eq(sink_fail_parse(spec, f, &err, &at), 0, "%s", spec);
	memset(got, 0, SINK_FAIL_NKINDS * sizeof got[0]);
	sink_fail_seed(&r, seed, stream);
	for (unsigned i = 0; i < DRAWS; i++) {
		enum sink_fail_kind k = sink_fail_choose(f, &r);

		cr_assert_lt((unsigned)k, SINK_FAIL_NKINDS);
		got[k]++;
	}
}

/* Each kind's count over 100,000 draws lies within 5 standard deviations of its
 * expectation (a false alarm about once in 3.5 million runs; with a fixed seed, never). */
Test(sink_fail, proportions)
{
	static const char *const specs[] = {
		"defer=5%,reject=1%,drop=1%,delay=200ms@2%",
		"defer=50%",
		"drop=0.5%,reject=0.1%",
		"defer=25%,reject=25%,drop=25%,delay=1ms@25%",
		"reject=99.9%",
	};
	static const uint64_t seeds[] = { 1, 2, 12345, 0xdeadbeefu };

	for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) {
		for (size_t j = 0; j < sizeof seeds / sizeof seeds[0]; j++) {
			unsigned got[SINK_FAIL_NKINDS];
			struct sink_fail f;

			draw(specs[i], seeds[j], (unsigned)j, got, &f);
			for (unsigned k = 0; k < SINK_FAIL_NKINDS; k++) {
				double p = (double)f.share[k] / SINK_FAIL_SCALE;
				double want = p * DRAWS, sd = sqrt(DRAWS * p * (1 - p));
				double tol = 5 * sd + 1;

				cr_expect(fabs((double)got[k] - want) <= tol,
				          "%s seed %llu: %s %u times, want %.0f +- %.0f", specs[i],
				          (unsigned long long)seeds[j], sink_fail_kind_name(k), got[k],
				          want, tol);
			}
		}
	}
}

/* 0% is never chosen, 100% always. */
Test(sink_fail, extremes)
{
	unsigned got[SINK_FAIL_NKINDS];
	struct sink_fail f;

	draw("reject=100%", 7, 0, got, &f);
	cr_expect_eq(got[SINK_FAIL_REJECT], DRAWS);
	draw("defer=0%,drop=0%", 7, 0, got, &f);
	cr_expect_eq(got[SINK_FAIL_NONE], DRAWS);
	cr_expect(!sink_fail_any(&f));
	draw("defer=60%,drop=40%", 7, 0, got, &f);
	cr_expect_eq(got[SINK_FAIL_NONE], 0);
	cr_expect_eq(got[SINK_FAIL_DEFER] + got[SINK_FAIL_DROP], DRAWS);
	draw("delay=1s@0.0001%", 7, 0, got, &f);          /* one in a million: 0 or a few */
	cr_expect_leq(got[SINK_FAIL_DELAY], 3);
}

/* The same seed and stream repeat the run exactly; another seed or stream does not. */
Test(sink_fail, deterministic_with_a_seed)
{
	static const char spec[] = "defer=5%,reject=1%,drop=1%,delay=200ms@2%";
	struct sink_fail f;
	enum sink_fail_err err;
	size_t at;
	struct sink_fail_rng a, b, c, d;
	unsigned same_bc = 0, same_bd = 0;

	cr_assert_eq(sink_fail_parse(spec, &f, &err, &at), 0);
	sink_fail_seed(&a, 42, 0);
	sink_fail_seed(&b, 42, 0);
	sink_fail_seed(&c, 43, 0);
	sink_fail_seed(&d, 42, 1);
	for (unsigned i = 0; i < DRAWS; i++) {
		enum sink_fail_kind ka = sink_fail_choose(&f, &a), kb = sink_fail_choose(&f, &b);
		enum sink_fail_kind kc = sink_fail_choose(&f, &c), kd = sink_fail_choose(&f, &d);

		cr_assert_eq(ka, kb, "draw %u differs with the same seed", i);
		same_bc += kb == kc && kb != SINK_FAIL_NONE;
		same_bd += kb == kd && kb != SINK_FAIL_NONE;
	}
	/* Independent sequences agree on a failure 0.05^2 + 0.01^2 + 0.01^2 + 0.02^2 = 0.31%
	 * of the time; identical ones would agree on all 9%. */
	cr_expect_lt(same_bc, DRAWS / 100, "seed 43 follows seed 42 (%u)", same_bc);
	cr_expect_lt(same_bd, DRAWS / 100, "stream 1 follows stream 0 (%u)", same_bd);

	/* A golden prefix: the sequence for seed 1 is part of the tool's contract (a rerun
	 * with --seed 1 fails the same messages), so a change to it must be deliberate. */
	struct sink_fail_rng g;
	char seq[41];
	static const char letter[SINK_FAIL_NKINDS] = { '.', 'D', 'R', 'X', 'L' };
	struct sink_fail half;

	cr_assert_eq(sink_fail_parse("defer=20%,reject=20%,drop=20%,delay=1s@20%", &half, &err, &at), 0);
	sink_fail_seed(&g, 1, 0);
	for (unsigned i = 0; i < 40; i++)
		seq[i] = letter[sink_fail_choose(&half, &g)];
	seq[40] = '\0';
	cr_log_info("seed 1 sequence: %s", seq);
	cr_expect_str_eq(seq, "R.DLRLLRDRL.DLLR.LXDLDL.RDXXRRXDLXXLXRDR");
}
