/* core/spool — a worker's append-only spool segment writer with group commit.
 *
 * The contract: a waiter is told ok only when its record has been written and a
 * completed fdatasync covers it; then, and only then, may it send its 250. A failed or
 * short write, or a failed sync, fails every waiter of that batch (451).
 *
 * Batches. Messages finished during a loop turn go into the filling batch (records are
 * never copied: a batch is a list of encoded record heads and references to the
 * messages' own data, written with writev). spool_flush() (end of each loop turn) sends
 * the oldest waiting batch to the ring as one chain — the writes linked to one
 * fdatasync, all in one submission (net_loop_sqes), so the link cannot be split —
 * while fewer than SPOOL_INFLIGHT batches are in flight; whatever arrives meanwhile grows
 * the next batch, so the busier the spool, the more messages share a sync. A batch holds
 * at most SPOOL_BATCH_ITEMS records and SPOOL_BATCH_BYTES octets; a message that does
 * not fit starts the next batch (never a 451: max_message_size is below the batch cap).
 *
 * Segments are written ahead. A segment is created with its directory entry made
 * durable and its first SPOOL_PREP_CHUNK octets of zeros written and synced (one chain:
 * fsync the directory, write zeros, fdatasync) before any record goes into it, and the
 * zeros are kept SPOOL_PREP_CHUNK ahead of the records. When a zero-fill fails or comes
 * out short (a nearly full disk), the zeros are given back (ftruncate to the records) and
 * the segment goes on without them: records then simply append. Records then overwrite
 * allocated, already-journalled space, so a commit's fdatasync has only data to flush,
 * no metadata to journal. The next segment is prepared while the current one fills.
 * A zero-fill never overlaps a write in flight: a batch that would reach into a zero-fill
 * in flight waits for it. A segment may therefore end in zeros; the reader treats a zero
 * tail as unused space. On a clean stop the current segment is cut to its records and an
 * unused prepared one is removed.
 *
 * Failures. A failed batch retires its segment (the next batch goes to a fresh one), and
 * the writer enters the failing state: for SPOOL_RETRY_MS every batch is answered 451 at
 * once without touching the disk, then one is tried again. The transition is logged
 * once each way (event=spool_failing, event=spool_recovered with the counts), never once
 * per batch. A retired segment is cut back to its last good record, and removed when it
 * holds none. */
#ifndef CORE_SPOOL_H
#define CORE_SPOOL_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "net/loop.h"
#include "proto/smtp_srv.h"

#define SPOOL_SEGMENT_MAX (64u << 20)     /* a new segment is begun after this */
#define SPOOL_PREP_CHUNK (8u << 20)       /* zeros written ahead of the records */
#define SPOOL_BATCH_ITEMS 512u            /* records per commit (2 iovecs each) */
#define SPOOL_BATCH_BYTES (1u << 30)      /* octets per commit */
#define SPOOL_INFLIGHT 1                  /* commits in flight at once */
#define SPOOL_RETRY_MS 250u               /* failing: how often the disk is tried */

enum spool_op_kind {
	SPOOL_OP_BATCH = NET_OP_USER,     /* a batch's writes and sync */
	SPOOL_OP_PREP,                    /* a segment's zero-fill and its fdatasync */
	SPOOL_OP_NAME,                    /* a new segment's directory fsync */
};

struct spool;
struct spool_seg;

struct spool_item {
	void *waiter;
	size_t hoff, hlen;                /* its head in the batch's heads buffer */
	const uint8_t *data;              /* the message's own data */
	size_t dlen;
};

struct spool_batch {
	struct net_op op;
	struct spool *sp;
	struct spool_batch *next;         /* in the waiting or the free list */
	struct spool_seg *seg;            /* while in flight */
	uint8_t *heads;
	size_t hlen, hcap;
	struct spool_item *items;
	size_t n, cap;
	size_t len;                       /* octets of records */
	struct iovec *iov;
	size_t iovcap;
	uint64_t off;                     /* where it is written */
	unsigned pending;                 /* CQEs still expected */
	int err;                          /* the first failure */
	size_t written;
	uint64_t t_ns;                    /* submitted at (CLOCK_MONOTONIC) */
};

struct spool_seg {
	struct net_op prep_op, name_op;
	struct spool *sp;
	struct spool_seg *next;           /* retiring list */
	int fd;
	uint64_t seq;
	uint64_t end;                     /* records written or in flight end here */
	uint64_t good;                    /* the last record of a successful batch ends here */
	uint64_t prepared;                /* durable zeros up to here */
	uint64_t zero_from, zero_to;      /* a zero-fill in flight */
	unsigned prep_pending;            /* CQEs of the zero-fill (and name) still expected */
	int prep_err;
	size_t prep_written;
	unsigned inflight;                /* batches in flight in it */
	bool named;                       /* created, and its directory entry is durable */
	bool broken;                      /* a write or sync failed in it */
	bool prep_stop;                   /* no more zero-fills (failed, or full) */
	bool retired;                     /* no new batches; finished once idle */
};

struct spool {
	struct net_loop *loop;
	int dirfd;
	unsigned worker;
	bool sync;
	uint64_t seq;                     /* of the newest segment */
	struct spool_seg *cur, *next, *retiring;
	struct spool_batch *wait_head, *wait_tail;   /* filling is the tail */
	struct spool_batch *free;
	unsigned inflight;
	void (*done)(void *waiter, bool ok);
	/* failing state */
	bool failing;
	int fail_err;
	uint64_t fail_since_ms, retry_at_ms, fail_batches, fail_messages;
	/* counters */
	uint64_t commits, messages, bytes;
	uint64_t commit_ns, commit_ns_max;  /* time from submission to the sync's completion */
	uint64_t linked_chains;           /* chains that reached the ring whole */
};

/* dir must exist. Registers the spool's op kinds on l. Returns 0 or -errno. */
int spool_init(struct spool *sp, struct net_loop *l, const char *dir, unsigned worker,
               bool sync, void (*done)(void *waiter, bool ok));
/* After the loop has let go of everything (spool_idle): cut the current segment to its
 * records, remove an unused prepared one, close. */
void spool_fini(struct spool *sp);
/* Queue m for a commit; waiter is handed back to done(). 0 or -ENOMEM. m's strings and
 * data must stay valid until done() is called. */
int spool_append(struct spool *sp, void *waiter, const struct smtp_srv_msg *m,
                 const char *client, uint64_t arrival);
/* Send waiting batches to the ring as far as the limits allow (end of each loop turn). */
void spool_flush(struct spool *sp);
/* Nothing waiting, nothing in flight. */
bool spool_idle(const struct spool *sp);

#endif
