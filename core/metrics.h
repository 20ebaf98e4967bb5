/* core/metrics — Prometheus metrics over HTTP (`metrics: { address, port }`, off without
 * the section), a service of the operator's thread (core/ops): the workers' data path
 * never formats a scrape. Each worker
 * publishes its counters (core/stats) every STATS_PUBLISH_MS with relaxed stores; a
 * scrape sums them. The thread never walks a worker's lists: what it shows of sites is
 * what the worker copied into its slots (core/stats: struct stats_site); of the proxies,
 * what core/egress shows any thread (egress_each). GET /metrics answers the text format
 * 0.0.4; anything else 404/405; a request is at most 8 KiB and must come whole within
 * 10 s; at most 32 scrapers at once (more are closed at once). */
#ifndef CORE_METRICS_H
#define CORE_METRICS_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cfg/config.h"

struct ops_service;
struct server;
struct worker;

#define METRICS_REQ_MAX 8192u
#define METRICS_HEAD_MS 5000u              /* for the request's head to come (core/ops) */
#define METRICS_REQ_MS 10000u              /* then for the answer to go */
#define METRICS_CONNS_MAX 32u

/* The sum over the workers of the published counter at offset off of struct wstats
 * (METRICS_SUM(srv, field)); read from any thread. */
uint64_t metrics_sum(const struct server *srv, size_t off);
#define METRICS_SUM(srv, field) metrics_sum(srv, offsetof(struct wstats, field))

/* The HTTP service (core/ops opens its listener and logs event=metrics_listen). */
struct ops_service *metrics_service(void);

/* The worker's own state for its site slots (in struct worker; core/metrics only). The
 * sites of the worker's queue are only ever added, at the head of its list, and freed
 * with the queue (core/queue): so a site is known by its ordinal, the order it came in,
 * and slot[] says for each where its results go: METRICS_UNSET (none yet), a labelled
 * slot (>= 0) or an "other" row (-1 - row). */
#define METRICS_UNSET INT16_MIN
struct metrics_worker {
	const void *head;                  /* the list's head when last looked at */
	size_t nseen;                      /* sites known, ordinals 0 .. nseen - 1 */
	int16_t *slot;
	size_t cap;
	unsigned max_sites;                /* STATS_SITES, or less in a test build
	                                      (RR_TEST_METRICS_SITES) */
	unsigned census_buckets;           /* METRICS_CENSUS_BUCKETS, or what a test build
	                                      says (RR_TEST_METRICS_CENSUS) */
	uint64_t sites_ms;                 /* the loop's clock when the sites were last walked */
};

/* The site slots are published at most this often: walking the sites costs their number
 * (a bulk sender's worker may know 100,000 MX sets: ~5 ms a walk, 0.5% of a core at this
 * rate, 5% at STATS_PUBLISH_MS). */
#define METRICS_SITES_MS 1000u


/* The worker's side: publish its counters now and then. force: the last time, as the
 * worker leaves its loop: now, and then its struct metrics_worker is freed (a later call
 * would start it afresh, labels kept). */
void metrics_publish(struct worker *w, bool force);

#endif
