/* core/worker — one thread per core, pinned, shared-nothing: it owns an io_uring ring,
 * its own SO_REUSEPORT socket per listener (multishot accept), the connections accepted
 * there (multishot recv into a provided-buffer ring), a timer wheel, and its spool writer.
 * Workers read the configuration through RCU (QSBR): online while they work, offline
 * while they wait on the ring. */
#ifndef CORE_WORKER_H
#define CORE_WORKER_H
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "cfg/snapshot.h"
#include "core/spool.h"
#include "core/timer.h"
#include "net/uring.h"

struct conn;
struct server;

struct wlistener {
	int fd;
	unsigned idx;              /* index into cfg->listeners */
	bool armed;
	struct worker *w;
};

struct worker {
	unsigned id;
	int cpu;                   /* -1: not pinned */
	pthread_t thread;
	struct server *srv;
	struct io_uring ring;
	const char *ring_desc;
	struct uring_bufs bufs;
	struct wlistener *lis;
	size_t nlis;
	struct timer_wheel wheel;
	struct spool spool;
	const struct snapshot *snap;   /* valid while online, refreshed every turn */
	uint64_t now_ms;               /* monotonic, refreshed every turn */
	struct conn *conns;            /* every live connection */
	struct conn *dirty;            /* connections with output to send or a close to do */
	size_t nconns;
	uint32_t qid_seq;
	uint64_t sid_seq;
	bool stopping;
	uint64_t stop_deadline_ms;
	int start_error;
	uint64_t enobufs;              /* multishot recvs ended for want of a buffer */
};

struct server {
	unsigned nworkers;
	struct worker *workers;
	atomic_bool stop;
	atomic_uint ready;             /* workers that are up */
	unsigned grace_s;              /* graceful-stop deadline */
	const char *spool_dir;
	bool spool_sync;
};

/* Start every worker thread (listener fds already open in w->lis). 0 or -errno. */
int worker_start_all(struct server *srv);
/* Ask every worker to stop gracefully and join them. */
void worker_stop_all(struct server *srv);

/* For net/conn: mark c as having output to send (or a close to carry out). */
void worker_mark_dirty(struct worker *w, struct conn *c);

#endif
