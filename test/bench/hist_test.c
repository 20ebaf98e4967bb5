/* Unit tests for bench/hist: percentiles against sorted samples within the relative error,
 * merge, and the edges (empty, one value, zero, values beyond the range). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>

#include "bench/hist.h"

static uint64_t rng_state;

static uint64_t rng_next(void)
{
	uint64_t x = (rng_state += 0x9e3779b97f4a7c15ull);
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static double rng_unit(void)
{
	return (double)(rng_next() >> 11) / 9007199254740992.0;   /* [0, 1) */
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* The value of rank ceil(p/100 * n) (at least 1) in sorted v[0..n). */
static uint64_t exact_percentile(const uint64_t *v, size_t n, double p)
{
	size_t rank = (size_t)ceil(p / 100.0 * (double)n);
	if (rank < 1)
		rank = 1;
	return v[rank - 1];
}

/* got is an upper bound within the documented error: 1/128 relative, 8 ns below 1024. */
static void check_bound(uint64_t want, uint64_t got, double p, const char *what)
{
	uint64_t slack = want < 1024 ? 7 : want / 128;
	cr_assert(got >= want && got <= want + slack,
	          "%s p%.3f: want %llu (exact), got %llu (allowed up to %llu)", what, p,
	          (unsigned long long)want, (unsigned long long)got,
	          (unsigned long long)(want + slack));
}

static const double percentiles[] = { 0, 0.1, 1, 10, 25, 50, 75, 90, 99, 99.9, 99.99, 100 };

static void check_samples(uint64_t *v, size_t n, const char *what)
{
	struct hist *h = hist_new();
	cr_assert_not_null(h);
	uint64_t sum = 0;
	for (size_t i = 0; i < n; i++) {
		hist_record(h, v[i]);
		sum += v[i];
	}
	qsort(v, n, sizeof *v, cmp_u64);
	cr_assert_eq(hist_count(h), n);
	cr_assert_eq(hist_min(h), v[0]);
	cr_assert_eq(hist_max(h), v[n - 1]);
	cr_assert_float_eq(hist_mean(h), (double)sum / (double)n, 1e-6 * (double)sum / (double)n);
	cr_assert_eq(hist_clamped(h), 0);
	for (size_t i = 0; i < sizeof percentiles / sizeof percentiles[0]; i++) {
		double p = percentiles[i];
		check_bound(exact_percentile(v, n, p), hist_percentile(h, p), p, what);
	}
	hist_free(h);
}

Test(hist, log_uniform_1us_to_100s)
{
	size_t n = 200000;
	uint64_t *v = malloc(n * sizeof *v);
	rng_state = 1;
	for (size_t i = 0; i < n; i++)      /* log-uniform over 1e3 .. 1e11 ns */
		v[i] = (uint64_t)pow(10.0, 3.0 + 8.0 * rng_unit());
	check_samples(v, n, "log-uniform");
	free(v);
}

Test(hist, latency_like_exponential)
{
	size_t n = 100000;
	uint64_t *v = malloc(n * sizeof *v);
	rng_state = 2;
	for (size_t i = 0; i < n; i++)      /* 200 us floor + exponential, mean 1 ms */
		v[i] = 200000 + (uint64_t)(-log(1.0 - rng_unit()) * 1e6);
	check_samples(v, n, "exponential");
	free(v);
}

Test(hist, small_values_below_1us)
{
	size_t n = 5000;
	uint64_t *v = malloc(n * sizeof *v);
	rng_state = 3;
	for (size_t i = 0; i < n; i++)
		v[i] = rng_next() % 3000;
	check_samples(v, n, "sub-microsecond");
	free(v);
}

Test(hist, many_seeds_small_sets)
{
	uint64_t v[37];
	for (uint64_t seed = 10; seed < 60; seed++) {
		rng_state = seed;
		for (size_t i = 0; i < 37; i++)
			v[i] = 1000 + rng_next() % 100000000;
		check_samples(v, 37, "small set");
	}
}

/* Every bucket boundary region: a value and a much larger one; p50 is the value's bucket. */
Test(hist, bucket_bounds_sweep)
{
	struct hist *h = hist_new();
	for (double x = 1.0; x < (double)HIST_MAX_NS; x *= 1.0137) {
		uint64_t want = (uint64_t)x;
		hist_reset(h);
		hist_record(h, want);
		hist_record(h, HIST_MAX_NS);
		check_bound(want, hist_percentile(h, 50), 50, "sweep");
	}
	hist_free(h);
}

Test(hist, empty)
{
	struct hist *h = hist_new();
	cr_assert_eq(hist_count(h), 0);
	cr_assert_eq(hist_percentile(h, 50), 0);
	cr_assert_eq(hist_percentile(h, 100), 0);
	cr_assert_eq(hist_min(h), 0);
	cr_assert_eq(hist_max(h), 0);
	cr_assert_float_eq(hist_mean(h), 0.0, 1e-12);
	cr_assert_eq(hist_clamped(h), 0);
	hist_free(h);
	hist_free(NULL);
}

Test(hist, one_value_is_exact)
{
	static const uint64_t vals[] = { 0, 1, 999, 1000, 1023, 1024, 123456, 987654321,
	                                 HIST_MAX_NS - 1, HIST_MAX_NS };
	struct hist *h = hist_new();
	for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
		hist_reset(h);
		hist_record(h, vals[i]);
		cr_assert_eq(hist_count(h), 1);
		for (size_t k = 0; k < sizeof percentiles / sizeof percentiles[0]; k++)
			cr_assert_eq(hist_percentile(h, percentiles[k]), vals[i],
			             "value %llu p%.2f", (unsigned long long)vals[i], percentiles[k]);
		cr_assert_eq(hist_min(h), vals[i]);
		cr_assert_eq(hist_max(h), vals[i]);
		cr_assert_float_eq(hist_mean(h), (double)vals[i], 1e-9);
	}
	hist_free(h);
}

Test(hist, beyond_range_clamped_and_counted)
{
	struct hist *h = hist_new();
	hist_record(h, 5000);
	hist_record(h, HIST_MAX_NS + 1);
	hist_record(h, UINT64_MAX);
	cr_assert_eq(hist_count(h), 3);
	cr_assert_eq(hist_clamped(h), 2);
	cr_assert_eq(hist_max(h), HIST_MAX_NS);
	cr_assert_eq(hist_percentile(h, 100), HIST_MAX_NS);
	cr_assert_eq(hist_percentile(h, 99), HIST_MAX_NS);
	check_bound(5000, hist_percentile(h, 33), 33, "below the clamped ones");
	hist_record(h, HIST_MAX_NS);                     /* the limit itself is in range */
	cr_assert_eq(hist_clamped(h), 2);
	hist_free(h);
}

Test(hist, percentile_argument_out_of_range)
{
	struct hist *h = hist_new();
	for (uint64_t v = 1000; v <= 100000; v += 1000)
		hist_record(h, v);
	cr_assert_eq(hist_percentile(h, -5), hist_percentile(h, 0));
	cr_assert_eq(hist_percentile(h, 250), 100000);
	cr_assert_eq(hist_percentile(h, NAN), hist_percentile(h, 0));
	hist_free(h);
}

Test(hist, merge_equals_recording_all)
{
	size_t n = 50000;
	struct hist *a = hist_new(), *b = hist_new(), *all = hist_new();
	rng_state = 7;
	for (size_t i = 0; i < n; i++) {
		uint64_t v = (uint64_t)pow(10.0, 2.0 + 9.5 * rng_unit());   /* some clamped */
		hist_record(i % 3 ? a : b, v);
		hist_record(all, v);
	}
	hist_merge(a, b);
	cr_assert_eq(hist_count(a), hist_count(all));
	cr_assert_eq(hist_clamped(a), hist_clamped(all));
	cr_assert_gt(hist_clamped(a), 0);
	cr_assert_eq(hist_min(a), hist_min(all));
	cr_assert_eq(hist_max(a), hist_max(all));
	cr_assert_float_eq(hist_mean(a), hist_mean(all), 1e-9 * hist_mean(all));
	for (size_t i = 0; i < sizeof percentiles / sizeof percentiles[0]; i++)
		cr_assert_eq(hist_percentile(a, percentiles[i]), hist_percentile(all, percentiles[i]));
	hist_free(a);
	hist_free(b);
	hist_free(all);
}

Test(hist, merge_with_empty)
{
	struct hist *a = hist_new(), *e = hist_new();
	hist_merge(a, e);                                /* empty into empty */
	cr_assert_eq(hist_count(a), 0);
	cr_assert_eq(hist_min(a), 0);
	hist_record(e, 42000);
	hist_record(e, 7000);
	hist_merge(a, e);                                /* into empty: min comes along */
	cr_assert_eq(hist_count(a), 2);
	cr_assert_eq(hist_min(a), 7000);
	cr_assert_eq(hist_max(a), 42000);
	hist_reset(e);
	hist_merge(a, e);                                /* empty into full: no change */
	cr_assert_eq(hist_count(a), 2);
	cr_assert_eq(hist_min(a), 7000);
	check_bound(7000, hist_percentile(a, 50), 50, "merged");
	hist_free(a);
	hist_free(e);
}
