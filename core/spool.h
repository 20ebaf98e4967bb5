/* core/spool — a worker's append-only spool segment writer with group commit.
 *
 * Messages finished during a loop turn are encoded into the filling batch. At the end of
 * the turn spool_flush() submits the batch as one write linked to one fdatasync (when
 * spool.sync is on) — unless the previous batch is still in flight, in which case the
 * filling batch keeps growing and goes out as soon as that one completes. Only when both
 * the write and the sync of a batch have completed successfully is every waiter of that
 * batch told ok (and only then may it send its 250). A short or failed write, or a failed
 * sync, fails the whole batch (451) and retires the segment: the next batch starts a new
 * one, so a torn record can only ever be the tail of a segment. */
#ifndef CORE_SPOOL_H
#define CORE_SPOOL_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net/uring.h"
#include "proto/smtp_srv.h"

#define SPOOL_SEGMENT_MAX (64u << 20)
/* One commit writes at most this much; a message that would grow the filling batch past
 * it is answered 451 (temporary) and comes back once the batch is out. */
#define SPOOL_BATCH_MAX (512u << 20)

struct spool_batch {
	uint8_t *buf;
	size_t len, cap;
	void **waiters;
	size_t nwait, capwait;
	int write_res, sync_res;
	unsigned pending;          /* CQEs still expected */
};

struct spool {
	struct io_uring *ring;
	int dirfd, fd;
	unsigned worker;
	uint64_t seq, size;
	bool sync, broken;
	struct spool_batch batch[2];
	unsigned fill;             /* index of the filling batch */
	bool inflight;             /* the other batch is in the ring */
	void (*done)(void *waiter, bool ok);
	uint64_t commits, messages;
};

/* dir must exist. Returns 0 or -errno. */
int spool_init(struct spool *sp, struct io_uring *ring, const char *dir, unsigned worker,
               bool sync, void (*done)(void *waiter, bool ok));
void spool_fini(struct spool *sp);
/* Queue m for the next commit; waiter is handed back to done(). 0, -ENOMEM, or -EAGAIN
 * when the filling batch is full (SPOOL_BATCH_MAX). */
int spool_append(struct spool *sp, void *waiter, const struct smtp_srv_msg *m,
                 const char *client, uint64_t arrival);
/* Submit the filling batch if nothing is in flight (end of each loop turn). */
void spool_flush(struct spool *sp);
/* A completion of URING_OP_SPOOL_WRITE / URING_OP_SPOOL_SYNC for batch ptr. */
void spool_complete(struct spool *sp, void *batch, enum uring_op op, int res);
bool spool_idle(const struct spool *sp);

#endif
