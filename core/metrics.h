/* core/metrics — Prometheus metrics over HTTP (`metrics: { address, port }`, off without
 * the section), a service of the operator's thread (core/ops): the workers' data path
 * never formats a scrape. Each worker
 * publishes its counters (core/stats) every STATS_PUBLISH_MS with relaxed stores; a
 * scrape sums them. GET /metrics answers the text format 0.0.4; anything else 404/405;
 * a request is at most 8 KiB and must come whole within 10 s; at most 32 scrapers at
 * once (more are closed at once). */
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
#define METRICS_REQ_MS 10000u
#define METRICS_CONNS_MAX 32u

/* The sum over the workers of the published counter at offset off of struct wstats
 * (METRICS_SUM(srv, field)); read from any thread. */
uint64_t metrics_sum(const struct server *srv, size_t off);
#define METRICS_SUM(srv, field) metrics_sum(srv, offsetof(struct wstats, field))

/* The HTTP service (core/ops opens its listener and logs event=metrics_listen). */
struct ops_service *metrics_service(void);

/* The worker's side: publish its counters now and then (force: now). */
void metrics_publish(struct worker *w, bool force);

#endif
