/* cfg/snapshot — the configuration in force, published through RCU (liburcu QSBR).
 *
 * Readers (workers) call snapshot_get() and may use the result until their next
 * quiescent state (they are offline while waiting on the ring and online while they work)
 * — no lock, no reference count on the data path. The writer (the main thread only: on
 * start, on SIGHUP, and when a proxy_hosts_file changes) builds a complete new snapshot
 * off the data path and swaps it in with snapshot_publish(), which waits for a grace
 * period and then frees the old one.
 *
 * A snapshot holds the config and, per listener, the proxy host table in force. A full
 * reload makes a snapshot of a new config (its tables are the config's own); a
 * proxy_hosts_file change makes one that shares the current config (reference counted,
 * writer side only) with freshly built tables. */
#ifndef CFG_SNAPSHOT_H
#define CFG_SNAPSHOT_H
#include <stdbool.h>
#include <stdint.h>
#include "cfg/config.h"

struct snapshot {
	struct config *cfg;
	struct cidr_table **proxy_hosts;   /* [cfg->nlisteners] */
	bool owns_tables;
	unsigned *cfg_refs;
	uint64_t generation;     /* 1 for the first, +1 per publication */
};

/* Takes ownership of cfg (freed on failure too). */
struct snapshot *snapshot_new(struct config *cfg);
/* Same config as cur, every listener's proxy host table rebuilt from its proxy_hosts and
 * the current proxy_hosts_file. NULL with "PATH:LINE:COL: message" in err. */
struct snapshot *snapshot_rebuild_proxy_hosts(const struct snapshot *cur, char *err,
                                              size_t errlen);
/* Publish s (NULL to retire the current one at shutdown); frees the one it replaces after
 * synchronize_rcu(). Call from the main thread, which is not an RCU reader. */
void snapshot_publish(struct snapshot *s);
/* For registered, online QSBR readers (and for the main thread, the only writer). */
const struct snapshot *snapshot_get(void);

#endif
