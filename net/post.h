/* net/post — letters between the loops of one process, without a lock, a shared queue or
 * a wake-up descriptor: IORING_OP_MSG_RING posts a completion into the other loop's ring
 * whose user_data is the letter, and the receiving loop dispatches it in its completion
 * switch like any other (kind NET_OP_LETTER), to the handler registered on it for the
 * letter's `kind` (net_loop_handle). The receiver owns the letter from then on (it frees
 * it, or sends it back).
 *
 * The sending SQE asks for no completion on success (IOSQE_CQE_SKIP_SUCCESS), so the
 * sender never looks at a letter once it is gone; when the kernel could not post it (the
 * receiver's completion queue full), the sender gets it back and posts it again at its
 * next turn (so letters may overtake each other: each must stand alone). A letter whose receiver has stopped for good is never posted:
 * that is the owners' protocol (net_post_office counts letters in flight, so a loop can
 * tell when none is left on the way to it before it stops).
 *
 * Both loops must stay initialised (their rings open) while letters may travel between
 * them: close every loop of the office only after all have stopped running. */
#ifndef NET_POST_H
#define NET_POST_H
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "net/loop.h"

/* What the loops exchanging letters share. */
struct net_post_office {
	atomic_long inflight;              /* posted (or waiting to be), not yet dispatched */
};

struct net_letter {
	struct net_op op;                  /* NET_OP_LETTER (set by net_post) */
	struct net_op back;                /* NET_OP_UNSENT: the sender's, on a failed post */
	uint8_t kind;                      /* the receiver's handler: NET_OP_USER.. */
	struct net_loop *to;
	struct net_letter *next;           /* the sender's list of letters to post again */
	struct net_post_office *office;
};

/* Post letter (allocated by the caller, embedding struct net_letter) of `kind` to loop
 * `to`, from loop `from` (the calling thread's). Never fails: a letter the ring cannot
 * take now waits in from's outbox and goes out at a later turn. */
void net_post(struct net_loop *from, struct net_post_office *office, struct net_loop *to,
              unsigned kind, struct net_letter *letter);

/* Letters of this loop waiting to be posted again: a loop must not stop with any. */
static inline bool net_post_pending(const struct net_loop *l) { return l->outbox != NULL; }

/* Letters posted through `office` and not yet dispatched by their receiver. */
static inline long net_post_inflight(struct net_post_office *office)
{
	return atomic_load_explicit(&office->inflight, memory_order_acquire);
}

/* net/loop's side: a letter arrived (NET_OP_LETTER), a post failed (NET_OP_UNSENT), and
 * the outbox is tried again (every turn, before the wait). */
void net_post_on_letter(struct net_loop *l, struct net_letter *letter);
void net_post_on_unsent(struct net_loop *l, struct net_letter *letter, int res);
void net_post_retry(struct net_loop *l);

#endif
