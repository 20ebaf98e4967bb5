/* core/stats — what a worker counts for the operator (core/metrics, Prometheus).
 *
 * Two halves. `struct wcount` are plain counters the worker's own modules bump as things
 * happen (connections, messages taken); the rest lives where it always did (the spool's
 * commits and its histograms, the queue's outcomes, the loop's). Every STATS_PUBLISH_MS
 * (and once more as the worker leaves its loop) the worker copies all of it into its
 * `struct wstats` with relaxed atomic stores: one writer, no lock, no locked
 * instruction on the data path. The metrics thread reads a wstats with relaxed loads,
 * so a scrape sees each worker as it was at most STATS_PUBLISH_MS ago, and the counts
 * of one worker need not be of the same instant (Prometheus' own rule for counters). */
#ifndef CORE_STATS_H
#define CORE_STATS_H
#include <stdint.h>

#define STATS_PUBLISH_MS 100u

/* Histogram buckets (upper bounds; +Inf after the last). */
#define STATS_COMMIT_BUCKETS 12            /* seconds from submission to the fsync's end */
#define STATS_BATCH_BUCKETS 10             /* messages per commit */
extern const uint64_t stats_commit_le_us[STATS_COMMIT_BUCKETS];   /* in µs */
extern const uint64_t stats_batch_le[STATS_BATCH_BUCKETS];

enum stats_refused {
	STATS_REFUSED_MAX_CONNECTIONS = 0,
	STATS_REFUSED_PER_IP,
	STATS_REFUSED_PROXY_REQUIRED,
	STATS_REFUSED_N,
};

struct wcount {
	uint64_t conns_accepted;
	uint64_t refused[STATS_REFUSED_N];
	uint64_t msgs_accepted, rcpts_accepted, msgs_accepted_tls;
};

/* Published copy: read with stats_get() only. Histogram buckets are per bucket (not
 * cumulative). */
struct wstats {
	uint64_t conns_accepted, refused[STATS_REFUSED_N], conns_in, conns_out;
	uint64_t msgs_accepted, rcpts_accepted, msgs_accepted_tls;
	uint64_t delivered, deferred, bounced, dsns;
	uint64_t commits, commit_msgs, commit_bytes, commit_ns, commit_failed_batches;
	uint64_t commit_hist[STATS_COMMIT_BUCKETS + 1], batch_hist[STATS_BATCH_BUCKETS + 1];
	uint64_t queue_msgs;
	uint64_t tls_budget_waits, enobufs;
	uint64_t published;                    /* times published (0: never: not up yet) */
};

static inline void stats_put(uint64_t *v, uint64_t n)
{
	__atomic_store_n(v, n, __ATOMIC_RELAXED);
}
static inline uint64_t stats_get(const uint64_t *v)
{
	return __atomic_load_n(v, __ATOMIC_RELAXED);
}

/* Index of value v among the buckets le[0..n) (n: over the last one). */
static inline unsigned stats_bucket(const uint64_t *le, unsigned n, uint64_t v)
{
	unsigned i = 0;
	while (i < n && v > le[i])
		i++;
	return i;
}

#endif
