/* core/worker — one thread per core, pinned, shared-nothing: it owns a net/loop (one
 * io_uring ring, provided buffers, timers), its own SO_REUSEPORT socket per listener
 * (multishot accept), the SMTP server application on them (core/smtp_server with the
 * relay's policy, core/inbound), its spool writer and its queue id blocks. Workers read
 * the configuration through RCU (QSBR): online while they work, offline while they wait
 * on the ring.
 *
 * Stop: the listeners close, sessions outside a transaction say 421 and close, the others
 * finish theirs; at shutdown_timeout every connection still open is cut; the worker ends
 * once every connection is gone and the spool is idle. */
#ifndef CORE_WORKER_H
#define CORE_WORKER_H
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "cfg/snapshot.h"
#include "core/egress.h"
#include "core/metrics.h"
#include "core/qid.h"
#include "core/queue.h"
#include "core/smtp_server.h"
#include "core/spool.h"
#include "core/stats.h"
#include "net/listener.h"
#include "net/loop.h"
#include "net/post.h"

struct server;

struct wlistener {
	int fd;                    /* until the acceptor takes it */
	unsigned idx;              /* index into cfg->listeners */
	struct listener_acceptor acc;
	struct worker *w;
};

struct worker {
	unsigned id;
	int cpu;                   /* -1: not pinned */
	pthread_t thread;
	struct server *srv;
	struct net_loop loop;
	struct wlistener *lis;
	size_t nlis;
	struct smtp_server smtpd;
	struct spool spool;
	struct queue queue;
	bool queue_up;
	struct qid_gen qid;
	const struct snapshot *snap;   /* valid while online, refreshed every turn */
	struct wcount count;           /* core/stats: bumped by the worker's modules */
	struct wstats stats;           /* published every STATS_PUBLISH_MS (core/metrics) */
	uint64_t stats_ms;             /* when last published */
	struct metrics_worker metrics; /* core/metrics' own: which site goes in which slot */
	struct ctl_commit *ctl_retry;  /* core/control's: refused notes waiting to be retried */
	bool stopping, forced;
	uint64_t stop_deadline_ms;
	int start_error;
};

struct server {
	unsigned nworkers;
	struct worker *workers;
	atomic_bool stop;
	atomic_uint ready;             /* workers that are up */
	atomic_bool all_up;            /* every worker started: letters may flow */
	atomic_uint stopping_workers;  /* workers that began to stop (or never started) */
	atomic_uint left;              /* workers out of their loop: rings close after all */
	struct net_post_office office; /* letters between the workers (core/owner) */
	struct egress_rt egress;       /* sources, proxy pools, their health (core/egress) */
	_Atomic uint64_t data_mem;     /* octets of message data the sessions hold, all
	                                * workers (core/inbound: limits.max_data_memory) */
	const char *spool_dir;
	bool spool_sync;
	struct qid_blocks qid_blocks;
	struct queue_recovered **recovered;   /* per worker: the start-up scan's messages */
};

/* Start every worker thread (listener fds already open in w->lis). 0 or -errno. */
int worker_start_all(struct server *srv);
/* Ask every worker to stop gracefully and join them. */
void worker_stop_all(struct server *srv);

#endif
