/* core/bounce — a DSN (proto/dsn) to the sender of a message for its recipients that
 * bounced: one per message and attempt (per job: a message split over several sites may
 * get one per site), from the null sender, queued like any message (a new queue id,
 * committed to the spool before it counts), then delivered by the queue. A message from
 * the null sender gets none (never a bounce for a bounce): logged as
 * event=bounce_not_sent. */
#ifndef CORE_BOUNCE_H
#define CORE_BOUNCE_H
#include <stdint.h>

#include "core/queue.h"

/* idx[i]: index of a bounced recipient of m, text[i] its reason (the server's reply or a
 * local text); relay: the server, or "none". */
void bounce_send(struct queue *q, struct queue_msg *m, const uint32_t *idx,
                 const char *const *text, uint32_t n, const char *relay);

#endif
