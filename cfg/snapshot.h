/* cfg/snapshot — the configuration in force, published through RCU (liburcu QSBR).
 *
 * Readers (workers) call snapshot_get() and may use the result until their next
 * quiescent state (they report one every loop turn) — no lock, no reference count.
 * The writer (the main thread, on start and on SIGHUP) builds a complete new snapshot off
 * the data path and swaps it in with snapshot_publish(), which waits for a grace period
 * and then frees the old one. */
#ifndef CFG_SNAPSHOT_H
#define CFG_SNAPSHOT_H
#include <stdint.h>
#include "cfg/config.h"

struct snapshot {
	struct config *cfg;
	uint64_t generation;     /* 1 for the first, +1 per reload */
};

/* Takes ownership of cfg. */
struct snapshot *snapshot_new(struct config *cfg);
/* Publish s (NULL to retire the current one at shutdown); frees the one it replaces after
 * synchronize_rcu(). Call from a thread that is not an RCU reader. */
void snapshot_publish(struct snapshot *s);
/* For registered, online QSBR readers. */
const struct snapshot *snapshot_get(void);

#endif
