/* core/egress — a transport's sources and proxy pools at run time (issue 9): which source
 * a delivery leaves from, through which proxy server, and the health of every server and
 * (server, source) pair, shared by every worker without a lock.
 *
 * The table. egress_build() makes, from a configuration, one immutable table: per
 * transport its sources (parsed into proto/egress's struct egress_source, with the `helo`
 * of each), its pool and its bypass domains; per pool its servers (resolved once, when the
 * table is built: main thread, off the data path), its health check and the distinct
 * sources of the transports that use it (the pairs, when the pool has a probe). The main
 * thread builds a table at start and at every reload and publishes it (egress_publish);
 * a table is never freed before exit (a reload retires the old one to a list), so a
 * worker may hold a pointer to any table without a reference count.
 *
 * Health. Each server and pair has a proto/health state machine, written by one thread
 * only: the checker, which runs on worker 0 (one for the whole relay, so that probes are
 * not multiplied by the workers), and an atomic `up` flag that every worker reads. A
 * passive result (a delivery connection through a proxy that got its greeting, or failed
 * before it) of another worker reaches the checker as a letter (net/post, MSG_RING);
 * worker 0's own are applied at once. Every change of an `up` flag, and every new table,
 * adds one to the epoch: a worker that sees the epoch move looks at its sites again
 * (core/queue: a source whose pool came back is kicked, one whose pool has no server
 * left has its mail moved to the transport's other sources, or waits).
 *
 * The checker probes every server every health_check.interval (with proto/health's
 * jitter): a TCP connect within health_check.timeout, a v2 LOCAL header (v1: "PROXY
 * UNKNOWN"), close; and, when the pool has health_check.probe, every (server, source)
 * pair: a connect through the proxy with a header naming the source (its address of the
 * probe's family) and the probe target, a 220 expected within the timeout, QUIT. A
 * reload's table takes over the state of every server and pair it shares (same pool id,
 * server text and source addresses) with the previous one. Transitions are logged once
 * (event=proxy_state ... state=up|down ... reason=...), and every server and pair's state
 * every minute. */
#ifndef CORE_EGRESS_H
#define CORE_EGRESS_H
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "cfg/config.h"
#include "net/timer.h"
#include "proto/egress.h"
#include "proto/health.h"

#define EGRESS_LABEL_MAX 96            /* "IPv4,IPv6" of a source, NUL included */

struct worker;
struct egress_probe;

/* The failures a server or pair is told of (core/metrics), by what found them:
 *   PROBE         a probe of it failed (a pair's probe: counted against the pair)
 *   TARGET_DOWN   a pair's probe got no greeting while the probe target is taken for
 *                 unreachable: not counted against the pair (see probe_target_alive)
 *   DELIVERY      a delivery connection through it was refused or did not connect
 *   UNCLEAR       one that reached the proxy, then closed or timed out before the
 *                 greeting (proto/health: health_passive_unclear)
 *   CUT           one that got its greeting, then was cut under its first transaction
 *                 (proto/health: health_passive_cut; reason HEALTH_R_CUT)
 * and by enum health_reason. Every failure reported is counted, whether or not proto/health
 * counts it towards a change of state. */
enum egress_check {
	EGRESS_CHECK_PROBE = 0,
	EGRESS_CHECK_TARGET_DOWN,
	EGRESS_CHECK_DELIVERY,
	EGRESS_CHECK_UNCLEAR,
	EGRESS_CHECK_CUT,
	EGRESS_CHECK_N,
};
#define EGRESS_REASONS HEALTH_REASONS
const char *egress_check_str(enum egress_check c);   /* "probe", "probe_target_down", ... */

/* A server or a (server, source) pair. h is the checker's; up is everyone's; fails are
 * written by the checker only (relaxed atomic stores) and read by anyone, and carried
 * over by a reload's table like h. */
struct egress_thing {
	struct health h;
	atomic_bool up;
	uint64_t fails[EGRESS_CHECK_N][EGRESS_REASONS];
	struct timer t;                    /* the checker's next probe */
	struct egress_probe *running;      /* the probe in flight, or NULL */
	struct egress_pool *pool;          /* what it is: a server of pool ... */
	size_t server;
	size_t psrc;                       /* ... and source (EGRESS_NONE: the server itself) */
};

struct egress_server {
	char *text;                        /* as configured: "host:port" */
	struct sockaddr_storage ss;
	socklen_t len;                     /* 0: the name did not resolve (down for good) */
	struct egress_thing st;
	struct egress_thing *pairs;        /* [pool->nsrc] when the pool has a probe, else NULL */
	bool again;                        /* an earlier server of the pool has the same text */
};

/* A distinct source of the transports using a pool. */
struct egress_psrc {
	struct egress_source src;
	char label[EGRESS_LABEL_MAX];
};

struct egress_pool {
	char *id;
	unsigned version;                  /* 1 or 2 */
	struct config_health_check hc;     /* (hc.probe not kept: probe_ss) */
	bool has_probe;
	struct sockaddr_storage probe_ss;
	/* the checker's: when a pair probe last got a 220 from the probe target (0: never),
	 * and whether the target is taken for unreachable (logged once each way) */
	uint64_t probe_ok_ms;
	bool probe_target_down;
	struct egress_server *servers;
	size_t nservers;
	struct egress_psrc *srcs;
	size_t nsrc;
};

struct egress_tsrc {
	struct egress_source src;
	char label[EGRESS_LABEL_MAX];
	char *helo;                        /* NULL: the relay's hostname */
	size_t psrc;                       /* its index in the pool's srcs (with a pool) */
};

struct egress_transport {
	struct egress_tab *tab;
	char *id;
	struct egress_pool *pool;          /* NULL: direct */
	struct egress_tsrc *srcs;          /* none: the kernel chooses (or a LOCAL header) */
	struct egress_source *src;         /* [nsrc]: the same addresses, for proto/egress */
	size_t nsrc;
	bool failover;
	char **bypass;                     /* proxy_bypass_domains (lower-case) */
	size_t nbypass;
};

struct egress_tab {
	uint64_t generation;               /* of the snapshot it was built from */
	struct egress_transport *tr;
	size_t ntr;
	struct egress_pool *pools;
	size_t npools;
	struct egress_tab *older;          /* retired tables (freed at exit) */
	bool adopted;                      /* the checker took it over */
};

/* What the workers share (in struct server). */
struct egress_rt {
	_Atomic(struct egress_tab *) tab;
	atomic_ulong epoch;
	/* the table the checker probes, for readers on other threads (core/metrics): set
	 * once the checker has carried every state and count over to it */
	_Atomic(struct egress_tab *) ck_pub;
	/* the checker's own (worker 0) */
	struct egress_tab *ck_tab;         /* the table it probes */
	struct worker *ck_w;
	uint64_t ck_next_log_ms;
	uint64_t ck_rnd;
	unsigned ck_probes;                /* probes whose stream is not yet released */
	bool ck_stopping;
};

/* Main thread. Build the table of c (old: the table in force, whose flags are carried
 * over; may be NULL). NULL only when out of memory. A server whose host does not resolve
 * is kept, down for good, and logged. */
struct egress_tab *egress_build(const struct config *c, uint64_t generation,
                                const struct egress_tab *old);
/* Publish t (the one in force is retired, freed by egress_fini). */
void egress_publish(struct egress_rt *rt, struct egress_tab *t);
void egress_fini(struct egress_rt *rt);

/* Workers. */
static inline struct egress_tab *egress_now(struct egress_rt *rt)
{
	return atomic_load_explicit(&rt->tab, memory_order_acquire);
}
static inline unsigned long egress_epoch(struct egress_rt *rt)
{
	return atomic_load_explicit(&rt->epoch, memory_order_acquire);
}
/* The transport of that id, or NULL (no table, or a transport of another generation). */
const struct egress_transport *egress_transport(const struct egress_tab *t, const char *id);
/* The source labelled `label` of t, or EGRESS_NONE. */
size_t egress_source_find(const struct egress_transport *t, const char *label);
/* May a connection leave from t's source i now (without a pool: always)? */
bool egress_source_usable(const struct egress_transport *t, size_t i);
/* A server of t's pool usable for source i (i EGRESS_NONE: t has no sources), round
 * robin on *rotor; EGRESS_NONE when none is up for it. */
size_t egress_server_pick(const struct egress_transport *t, size_t i, uint32_t *rotor);
/* Is server j of t's pool up for t's source i (EGRESS_NONE: t has none), its pair too
 * when the pool probes pairs? */
bool egress_server_usable(const struct egress_transport *t, size_t j, size_t i);
/* Is domain (lower-case) one of t's proxy_bypass_domains ("*.x" matches subdomains)? */
bool egress_bypass(const struct egress_transport *t, const char *domain);
/* The address mask (EGRESS_V4 | EGRESS_V6) of a sockaddr's family. */
unsigned egress_fam_of(const struct sockaddr_storage *ss);

/* The PROXY header (pool p's version) for a connection from src's address of dst's
 * family to dst (port 0 as the source port); src NULL, or without an address of that
 * family, or dst NULL: a LOCAL header (v1: "PROXY UNKNOWN"). The length, 0 if cap is too
 * small (PP_V1_MAX octets are always enough). */
size_t egress_header(const struct egress_pool *p, const struct egress_source *src,
                     const struct sockaddr_storage *dst, uint8_t *out, size_t cap);

/* What a delivery connection through a proxy says of it:
 *   OK       it got its greeting
 *   DONE     a transaction ended on it (a reply to its end of data, or one that refused
 *            the transaction before it; core/deliver tells it at most once a second a
 *            connection)
 *   FAIL     refused, or no connection (reason, code)
 *   UNCLEAR  it had connected to the proxy, then closed or timed out before the greeting —
 *            the proxy's doing or its destination's (proto/health: health_passive_unclear)
 *   CUT      it got its greeting, then closed, reset or timed out under its first
 *            transaction (code: ETIMEDOUT, an errno or 0; proto/health: health_passive_cut)
 * UNCLEAR and CUT count only towards distinct destinations (dest: a key of it). */
enum egress_passive_kind {
	EGRESS_PASSIVE_OK = 0,
	EGRESS_PASSIVE_DONE,
	EGRESS_PASSIVE_FAIL,
	EGRESS_PASSIVE_UNCLEAR,
	EGRESS_PASSIVE_CUT,
};
/* A delivery connection through server `server` of t's pool, for source i (EGRESS_NONE
 * without sources), said `kind` of it. Counted against the pair when the pool probes
 * pairs, else against the server; from any worker. */
void egress_passive(struct worker *w, const struct egress_transport *t, size_t server,
                    size_t i, enum egress_passive_kind kind, uint64_t dest,
                    enum health_reason reason, int code);
/* Servers of t's pool usable for source i now. */
size_t egress_servers_usable(const struct egress_transport *t, size_t i);

/* From any thread (core/metrics): each server (source NULL) and (server, source) pair
 * of the table the checker keeps, pools in configuration order, each server before its
 * pairs, a server listed twice in a pool once (its first); nothing before the checker's
 * first turn. The strings live as long as the
 * process; fails as egress_thing's, read with relaxed loads. */
struct egress_view {
	const char *pool, *server, *source;
	bool up;
	const struct egress_thing *th;
};
void egress_each(struct egress_rt *rt, void (*fn)(void *ctx, const struct egress_view *v),
                 void *ctx);
/* A failure count of th (check, reason), read from any thread. */
uint64_t egress_fails(const struct egress_thing *th, enum egress_check check,
                      enum health_reason reason);

/* Worker 0: the checker. init registers the letter handler on every worker (call it on
 * each); turn adopts a new table and logs the minute's states; stop ends the probes;
 * idle: no probe left. */
void egress_worker_init(struct worker *w);
void egress_checker_turn(struct worker *w);
void egress_checker_stop(struct worker *w);
bool egress_checker_idle(struct worker *w);

#endif
