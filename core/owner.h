/* core/owner — one owner per ready queue across workers.
 *
 * A site (transport, next hop or set of MX hosts) is owned by one worker, chosen from its
 * key (owner_of: a hash of "transport/sitekey" modulo the workers), so its connections,
 * its max_connections, its rates, its concurrency window and its dead state are one per
 * relay, not one per worker, and a connection to it carries the mail of every worker.
 *
 * The messages stay with the worker that accepted (or adopted) them, the home: their
 * spool records, outcome notes, retries, logs and DSNs are all written there, in the
 * home's own segments. When a job of the home becomes ready for a site another worker
 * owns, the home posts it there (net/post: a letter through the kernel, no lock): the
 * envelope of its recipients, the site's addresses as the home resolved them, and the
 * body (a copy when the home holds it in memory; else the owner reads the record from
 * the spool itself). The owner queues it on its site like one of its own and delivers
 * it; the results come home in a letter, and the home ends the job as if it had
 * delivered it itself (log line, notes, retry or DSN). A job the owner lets go of
 * without a result (it stops) comes home as dropped: its recipients stay queued in the
 * spool. Meanwhile the home counts the job away; the owner counts it foreign.
 *
 * Until every worker has started (the start-up scan's mail is queued at once), each
 * worker delivers its own jobs itself.
 *
 * Stopping: no job is posted once the home stops; a job that reaches a stopping owner
 * goes straight home. A worker leaves its loop only when every worker is stopping, none
 * of its jobs is away, it holds no foreign job, its outbox is empty and no letter is in
 * flight anywhere (owner_idle); the rings are closed only after every worker has left
 * its loop (core/worker), so no letter can reach a closed ring. */
#ifndef CORE_OWNER_H
#define CORE_OWNER_H
#include <stdbool.h>
#include <stddef.h>

#include "core/queue.h"

struct worker;

/* The worker that owns site key `key` among n. */
unsigned owner_of(const char *key, unsigned n);

/* Register the letter handlers on w's loop (before it runs). */
void owner_init(struct worker *w);

/* The home's side: job j became ready for site s. true: it was posted to the site's
 * owner (j is away until its results come home); false: this worker owns s (or the post
 * could not be made), deliver it here. */
bool owner_post(struct queue *q, struct queue_site *s, struct queue_job *j);

/* The owner's side, for a foreign job (j->home set): its results go home (and j is
 * freed), or it goes home without any (dropped: the owner stops). */
void owner_return(struct queue_job *j, const struct qresult *res, size_t nres,
                  const char *relay, unsigned conn_use);
void owner_drop(struct queue_job *j);
/* ... or home to be grouped again under a reloaded configuration. */
void owner_reroute(struct queue_job *j);

/* May w leave its loop as far as the owners are concerned (it is stopping)? */
bool owner_idle(struct worker *w);

#endif
