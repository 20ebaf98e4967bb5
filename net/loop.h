/* net/loop — the event loop every conversation shares (the relay's workers, ringsink,
 * ringblast, and the delivery client and health checker to come): one io_uring ring, its
 * provided recv buffers, a timer wheel, the dirty list of streams, and one completion
 * switch.
 *
 * Operations. Every SQE carries a pointer to a struct net_op embedded in its owner; the
 * op's kind picks the handler. net/ handles its own kinds (accept, recv, send, ...);
 * a higher layer registers handlers for kinds from NET_OP_USER on (net_loop_handle), so
 * new kinds (connect, timeout, poll, msg_ring, spool writes) need no tag bits. A CQE
 * whose user_data is 0 is ignored (cancel requests, fire-and-forget ops).
 *
 * Submission. net_loop_sqe() never spins: when the SQ is full it submits what is queued,
 * and when the kernel refuses the submission (CQ overflow: -EBUSY) it moves the waiting
 * completions aside (they are dispatched, in order, at the next dispatch) and tries again
 * a bounded number of times; then it returns NULL and the caller treats the operation as
 * failed. net_loop_sqes() hands out n SQEs that are guaranteed to reach the kernel in one
 * submission, which a linked chain needs (IOSQE_IO_LINK does not survive a submission
 * boundary).
 *
 * TLS handshakes. Every TLS filter of the loop's streams draws its handshake steps from
 * one budget, tls_budget (NET_LOOP_TLS_BUDGET steps a turn unless the owner sets
 * tls_budget.per_turn), refilled at the start of every turn; a stream refused for want
 * of budget waits in tls_wait and is flushed again after the next refill (the ring then
 * does not wait), so a burst of handshakes is spread over turns and sessions already
 * established are served in every one of them.
 *
 * A turn (net_loop_run): refill the TLS budget (streams waiting for it become dirty) -> hooks.turn (the owner's per-turn work; returns how long, in
 * microseconds, the ring may wait) -> flush the dirty streams (sends, closes, releases) -> hooks.idle (e.g. the
 * spool's group commit) -> letters waiting in the outbox (net/post) -> hooks.wait(true) -> submit and wait -> hooks.wait(false) ->
 * dispatch every completion -> advance the timers. net_loop_quit() ends the run after
 * the current turn. Single-threaded: one loop per thread. */
#ifndef NET_LOOP_H
#define NET_LOOP_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net/timer.h"
#include "net/tls.h"
#include "net/uring.h"

enum net_op_kind {
	NET_OP_NONE = 0,       /* never dispatched */
	NET_OP_ACCEPT,         /* net/listener: multishot accept */
	NET_OP_RECV,           /* net/stream: multishot recv */
	NET_OP_SEND,           /* net/stream: send / sendmsg */
	NET_OP_ALARM,          /* net/alarm: a precise one-shot timeout */
	NET_OP_LETTER,         /* net/post: a letter from another loop */
	NET_OP_UNSENT,         /* net/post: a letter the kernel could not post */
	NET_OP_USER = 16,      /* first kind a higher layer may register */
	NET_OP_KINDS = 64,
};

struct net_op {
	uint8_t kind;
};

struct net_loop;
struct net_stream;
struct net_letter;

/* A completion handler: res and flags as in the CQE. */
typedef void net_op_fn(struct net_loop *l, struct net_op *op, int res, unsigned flags);

struct net_loop_hooks {
	unsigned (*turn)(void *ctx);          /* returns the longest wait in µs (0: none) */
	void (*idle)(void *ctx);              /* optional: after the flush, before the wait */
	void (*wait)(void *ctx, bool begin);  /* optional: around the wait (RCU offline) */
};

struct net_loop_params {
	unsigned sq_entries, cq_entries;      /* 0: 1024 and 8 x sq_entries */
	unsigned bufs, buf_size;              /* provided recv buffers: count (a power of two)
	                                         and size; 0: 1024 x 16 KiB */
};

struct net_cqe_saved {
	uint64_t user_data;
	int res;
	unsigned flags;
};

struct net_loop {
	struct io_uring ring;
	const char *ring_desc;
	struct uring_bufs bufs;
	struct timer_wheel wheel;
	uint64_t now_ms;                      /* monotonic, refreshed every turn */
	struct net_stream *dirty;             /* streams with output, a close or a release */
	net_op_fn *handlers[NET_OP_KINDS];
	struct net_cqe_saved *saved;          /* completions moved aside by a full CQ */
	size_t nsaved, capsaved;
	const struct net_loop_hooks *hooks;
	void *ctx;
	bool quit;
	bool up;                              /* init succeeded */
	uint64_t submits;                     /* io_uring_submit* calls: a chain checks it */
	uint64_t enobufs;                     /* multishot recvs ended for want of a buffer */
	uint64_t sqe_failures;                /* net_loop_sqe() calls that returned NULL */
	struct net_letter *outbox, *outbox_tail;  /* net/post: letters to post again */
	uint64_t post_failures;               /* letters the kernel could not post */
	struct net_tls_budget tls_budget;     /* handshake steps of this turn (see above) */
	struct net_stream *tls_wait;          /* streams refused for want of budget */
};

#define NET_LOOP_TLS_BUDGET 16u           /* handshake steps per turn by default */

/* 0 or -errno (the ring or the buffers could not be set up). */
int net_loop_init(struct net_loop *l, const struct net_loop_params *p,
                  const struct net_loop_hooks *hooks, void *ctx);
/* Closes the ring first, so the kernel holds nothing of what the owner frees after. */
void net_loop_fini(struct net_loop *l);
/* Register the handler of kind (NET_OP_USER <= kind < NET_OP_KINDS). */
void net_loop_handle(struct net_loop *l, unsigned kind, net_op_fn *fn);

/* An SQE whose user_data is op (NULL op: 0, the completion is ignored), or NULL when the
 * ring cannot take one now. */
struct io_uring_sqe *net_loop_sqe(struct net_loop *l, struct net_op *op);
/* n SQEs in v that reach the kernel in one submission; their user_data is the caller's to
 * set. 0, or -EBUSY when the ring cannot take them now (nothing was taken). */
int net_loop_sqes(struct net_loop *l, struct io_uring_sqe **v, unsigned n);
static inline void net_sqe_op(struct io_uring_sqe *sqe, struct net_op *op)
{
	io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)op);
}

void net_loop_run(struct net_loop *l);
void net_loop_quit(struct net_loop *l);
/* One turn of net_loop_run (for owners that step the loop themselves). */
void net_loop_turn(struct net_loop *l);
/* Flush the dirty streams now (net_loop_turn does it every turn). */
void net_loop_flush(struct net_loop *l);

#endif
