/* bench/hist — a log-linear latency histogram (HdrHistogram's layout, fixed memory).
 *
 * Values are nanoseconds. Below 1024 ns the buckets are 8 ns wide (linear); from 1024 ns
 * up every power of two [2^k, 2^(k+1)) is cut into 128 equal buckets, so a bucket is at
 * most 1/128 (0.78%) of its lower bound wide: from 1 us to HIST_MAX_NS (100 s) the
 * relative error is below 1%. A value above HIST_MAX_NS is recorded as HIST_MAX_NS and
 * counted by hist_clamped(). 3,584 buckets, about 28 KiB, whatever is recorded.
 *
 * min, max and mean are exact over the recorded (clamped) values. */
#ifndef BENCH_HIST_H
#define BENCH_HIST_H
#include <stdint.h>

#define HIST_MAX_NS 100000000000ull   /* 100 s */

struct hist;

struct hist *hist_new(void);
void hist_free(struct hist *h);
void hist_reset(struct hist *h);

void hist_record(struct hist *h, uint64_t ns);
/* dst += src. */
void hist_merge(struct hist *dst, const struct hist *src);

/* The p-th percentile (0 <= p <= 100): the upper bound of the bucket holding the value of
 * rank ceil(p/100 * count) (at least 1), never above the largest value recorded; so the
 * answer is >= the exact percentile and within 1% of it (8 ns below 1 us). 0 when empty. */
uint64_t hist_percentile(const struct hist *h, double p);
uint64_t hist_count(const struct hist *h);
uint64_t hist_clamped(const struct hist *h);     /* values recorded above HIST_MAX_NS */
uint64_t hist_min(const struct hist *h);         /* 0 when empty */
uint64_t hist_max(const struct hist *h);         /* 0 when empty */
double hist_mean(const struct hist *h);          /* 0 when empty */

#endif
