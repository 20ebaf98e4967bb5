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

#include "net/dns.h"

#define STATS_PUBLISH_MS 100u

/* Histogram buckets (upper bounds; +Inf after the last). */
#define STATS_COMMIT_BUCKETS 12            /* seconds from submission to the fsync's end */
#define STATS_BATCH_BUCKETS 10             /* messages per commit */
extern const uint64_t stats_commit_le_us[STATS_COMMIT_BUCKETS];   /* in µs */
extern const uint64_t stats_batch_le[STATS_BATCH_BUCKETS];

/* Connections refused, by reason: the relay's policy (core/inbound) and the PROXY
 * handling of core/smtp_server (its enum smtp_server_refusal, in the same order). */
enum stats_refused {
	STATS_REFUSED_MAX_CONNECTIONS = 0,
	STATS_REFUSED_PER_IP,
	STATS_REFUSED_PROXY_REQUIRED,
	STATS_REFUSED_POLICY_N,               /* (then core/smtp_server's, in its order) */
	STATS_REFUSED_PROXY_INVALID = STATS_REFUSED_POLICY_N,
	STATS_REFUSED_PROXY_TIMEOUT,
	STATS_REFUSED_PROXY_NOT_ALLOWED,
	STATS_REFUSED_N,
};

/* Delivery results of recipients at a site, as struct queue_site's results[]: 2xx, 4xx
 * or no reply, 5xx. */
enum stats_result { STATS_DELIVERED = 0, STATS_DEFERRED, STATS_BOUNCED, STATS_RESULT_N };

/* Sites per worker labelled by name (core/metrics: the first ones seen with results or
 * ready jobs, for the life of the process); every other site of a transport counts in its
 * transport's "other" row. At most STATS_OTHERS transports have a row of their own; the
 * sites of any further one share a last row whose transport is "other". Labels longer
 * than their buffer are cut (two cut alike add up in one series). */
#define STATS_SITES 50
#define STATS_OTHERS 16
#define STATS_TRANSPORT_LEN 64u            /* octets of a transport label, NUL included */
#define STATS_SITE_LEN 192u                /* octets of a site label, NUL included */

/* A published site slot or "other" row. Append-only: its labels are written once, before
 * the slot is counted in (stats_count_put, a release store); they never change after, so
 * a reader that loaded the count (stats_count_get, acquire) reads them whole, with no
 * lock. The numbers are relaxed atomics like every other published counter. */
struct stats_site {
	char transport[STATS_TRANSPORT_LEN];
	char site[STATS_SITE_LEN];
	uint64_t results[STATS_RESULT_N];      /* counters (enum stats_result) */
	uint64_t ready;                        /* gauge: jobs in the sites' ready queues */
};

/* SMTP replies the server side sent, by class: 2xx, 3xx, 4xx, 5xx. */
#define STATS_REPLY_CLASSES 4u

/* DNS (net/dns's struct dns_stats): results of lookups by enum dns_status up to
 * DNS_TEMPFAIL, failed queries by enum dns_qfail. */
#define STATS_DNS_RESULTS (DNS_TEMPFAIL + 1)

struct wcount {
	uint64_t conns_accepted;
	uint64_t refused[STATS_REFUSED_POLICY_N];
	uint64_t msgs_accepted, rcpts_accepted, msgs_accepted_tls;
	uint64_t data_mem_refused;             /* 452 4.3.1: limits.max_data_memory full */
};

/* Published copy: read with stats_get() only. Histogram buckets are per bucket (not
 * cumulative). */
struct wstats {
	uint64_t conns_accepted, refused[STATS_REFUSED_N], conns_in, conns_out;
	uint64_t msgs_accepted, rcpts_accepted, msgs_accepted_tls, data_mem_refused;
	uint64_t delivered, deferred, bounced, dsns;
	uint64_t commits, commit_msgs, commit_bytes, commit_ns, commit_failed_batches;
	uint64_t commit_hist[STATS_COMMIT_BUCKETS + 1], batch_hist[STATS_BATCH_BUCKETS + 1];
	uint64_t queue_msgs;
	uint64_t tls_budget_waits, enobufs;
	uint64_t replies[STATS_REPLY_CLASSES];
	uint64_t ready_jobs;                   /* in every site's ready queue */
	/* core/queue's census (queue_census_step): recipients open and waiting for their next
	 * try, held, busy in a job; census: 1 once a whole sweep is in them */
	uint64_t rcpt_scheduled, rcpt_held, rcpt_busy, census;
	uint64_t dns_results[STATS_DNS_RESULTS], dns_cache_hits, dns_queries;
	uint64_t dns_qfails[DNS_QF_N], dns_deadlines, dns_cached, dns_waiting;
	uint64_t nsites, nothers;              /* slots published: stats_count_get() */
	struct stats_site sites[STATS_SITES];
	struct stats_site others[STATS_OTHERS];
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
/* A count of append-only slots: everything written to them before the put is seen by a
 * reader after its get. */
static inline void stats_count_put(uint64_t *v, uint64_t n)
{
	__atomic_store_n(v, n, __ATOMIC_RELEASE);
}
static inline uint64_t stats_count_get(const uint64_t *v)
{
	return __atomic_load_n(v, __ATOMIC_ACQUIRE);
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
