/* core/spool — a worker's append-only spool segment writer with group commit.
 *
 * The contract: a waiter is told ok only when its record has been written and a
 * completed fdatasync covers it; then, and only then, may it send its 250. A failed or
 * short write, or a failed sync, fails every waiter of that batch (451).
 *
 * Batches. Messages finished during a loop turn go into the filling batch. spool_flush()
 * (end of each loop turn) sends the oldest waiting batch to the ring as one chain — its
 * writes linked to one fdatasync, all in one submission (net_loop_sqes), so the link
 * cannot be split — while fewer than SPOOL_INFLIGHT batches are in flight; whatever
 * arrives meanwhile grows the next batch, so the busier the spool, the more messages
 * share a sync, up to SPOOL_DIRECT_MAX octets of copied records. A message that does not
 * fit starts the next batch (never a 451: max_message_size is below the batch cap).
 *
 * Writes bypass the page cache (O_DIRECT). Measured on this machine (bench/RESULTS.md),
 * a buffered 2.5 MB write + fdatasync costs the CPU 2.4 ms — the kernel's copy into new
 * page-cache pages — against 0.5 ms for a copy into an aligned buffer and a direct write,
 * which also completes in half the time. So a record of up to SPOOL_COPY_MAX octets is
 * encoded straight into the batch's aligned buffer (its data copied once, in user
 * space); a larger one is written from where it is (its head, then the message's own
 * data, buffered), SPOOL_BIGS of them per batch at most. Every write starts and ends on
 * a SPOOL_ALIGN boundary: a PAD record fills the rest of the last block.
 *
 * Segments are allocated ahead. A segment is created with its directory entry made
 * durable and its space allocated and made durable (one chain: fsync the directory,
 * fallocate SPOOL_SEGMENT_MAX — less when that would take more than a quarter of the
 * free space shared by all workers — fdatasync) before any record goes into it, and the next
 * one is prepared while the current one fills. Records then go into space whose
 * allocation and size are already journalled, so a commit's fdatasync has no block
 * allocation to journal. (Measured on this machine, bench/RESULTS.md: a 2.5 MB write +
 * fdatasync took 7.6 ms appending, 1.8 ms into allocated space, and the same into space
 * pre-written with zeros, which costs every octet written twice.) When the fallocate
 * fails (a nearly full disk), the segment goes on without: records simply append. A
 * segment may therefore end in unwritten (zero) space; the reader treats a zero tail as
 * unused. On a clean stop the current segment is cut to its records and an unused
 * prepared one is removed.
 *
 * Failures. A failed batch retires its segment (the next batch goes to a fresh one), and
 * the writer enters the failing state: for SPOOL_RETRY_MS every batch is answered 451 at
 * once without touching the disk, then one is tried again. The transition is logged
 * once each way (event=spool_failing, event=spool_recovered with the counts), never once
 * per batch. A retired segment is cut back to its last good record, and removed when it
 * holds none.
 *
 * Reclaim. The writer keeps a table of the segments of its chain (struct spool_segtab):
 * the ones it writes, and those a start-up found of its own worker index (or of an index
 * that no longer exists, k % nworkers == this worker), in an order where every outcome
 * record lies at or after the MSG record it speaks of: first the segments of other
 * (vanished) worker indexes, by (worker, seq), then its own by seq. Its queue counts the
 * live messages of each (spool_seg_ref: a MSG record counts until all its recipients are
 * final and the queue lets go of it). Then spool_reclaim_rule() says what may go: the
 * longest prefix of the chain that holds no live message and no segment in use (the
 * current, the prepared, one still being written) is removed, oldest first, one at a
 * time: its unlink and the directory's fsync, one linked chain through the ring, before
 * the next. Removing only a prefix is what makes it safe: an outcome record that hides a
 * finished recipient lies at or after that recipient's MSG record, so by the time its
 * segment goes, the MSG record is gone already. When the oldest segment still holds live
 * messages but copying them would free SPOOL_COPY_GAIN times what it writes (it is mostly
 * finished, or finished segments wait behind it), the queue is asked (reclaim_copy) to
 * copy them forward: each copy (proto/spoolrec.h, spoolrec_encode_copy: the MSG record,
 * generation one higher, and the state of its recipients) is one commit
 * (spool_append_rec), and only once its fdatasync completed does the queue move the
 * message's live count to the copy (spool_seg_ref), which lets the old segment go.
 *
 * Free space. A copy forward needs room to write before its removal frees any, so a
 * disk filled up to its last block by new mail would never come back by itself. Two
 * things keep room for the writer's own bookkeeping (notes, copies forward, DSNs):
 *  - min_free (spool.min_free, spool_room()): new mail is refused (SPOOL_ROOM_LOW: the
 *    caller answers 452 4.3.1, as Postfix's queue_minfree) when the free space, less what
 *    this message and what was queued since the last look would take, is under min_free.
 *    The filesystem is looked at (fstatvfs) at most every SPOOL_SPACE_LOOK_MS per worker,
 *    never per message; what is queued meanwhile is counted. Free space counts the space
 *    allocated ahead in the current and prepared segments. The state is left once the free
 *    space is back over min_free plus an eighth (so that it does not flap). Logged once
 *    each way: event=spool_low_space, event=spool_space_ok with the count refused.
 *    Workers look on their own: together they may overshoot by what each queues within
 *    SPOOL_SPACE_LOOK_MS. 0 turns it off.
 *  - the reserve (spool_reserve_enable()): a file SPOOL/.reserve-w<worker> of
 *    spool_reserve_size() octets (at most SPOOL_RESERVE_MAX) allocated (fallocate) at
 *    start. When the writer is failing with ENOSPC (or EDQUOT) while the reclaim rule
 *    wants a copy forward, that is when the full disk would stay full, the reserve is
 *    given back (cut to 0, event=spool_reserve_released), the disk is tried again at once
 *    and copies forward are asked even while failing (not otherwise: they would be
 *    refused like the rest): the copies go into the reserve's space, the old segments then
 *    go, and room comes back. While any worker's reserve is out, new mail is refused
 *    (SPOOL_ROOM_FULL: 451 4.3.0, the disk filled) so that the space goes to bookkeeping
 *    only. Once the free space is at least min_free plus twice the reserve plus what the
 *    reserves out gave back, it is made again (event=spool_reserve_restored) and new mail
 *    is taken again. The file is kept across restarts; a start that finds it short makes
 *    it whole, or counts it out when the disk is full. A vanished worker index's reserve
 *    (fewer workers than before) is removed by the worker that adopts its segments. A
 *    copy forward larger than the reserves out does not fit: then only space freed from
 *    outside (or deliveries finishing the oldest segment's messages) brings the writer
 *    back; min_free keeps the relay's own mail from getting there. */
#ifndef CORE_SPOOL_H
#define CORE_SPOOL_H
#include "core/stats.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "net/loop.h"
#include "proto/smtp_srv.h"

#define SPOOL_SEGMENT_MAX (64u << 20)     /* a new segment is begun after this (the test
                                             build takes RR_TEST_SEGMENT_MAX=octets) */
#define SPOOL_COPY_RETRY_MS 1000u         /* a copy forward not done yet is asked again,
                                             and the rule looked at again meanwhile */
#define SPOOL_COPY_AGE_MS 10000u          /* a segment is copied from only once it has not
                                             been written for this long (its messages then
                                             wait for a retry, not a delivery in flight; the
                                             test build takes RR_TEST_COPY_AGE_MS) */
#define SPOOL_COPY_GAIN 4u                /* a copy forward frees at least this many times
                                             the octets it writes */
#define SPOOL_ALIGN 4096u                 /* direct writes: offsets, lengths, memory */
#define SPOOL_COPY_MAX (1u << 20)         /* records up to this are copied into the batch */
#ifndef SPOOL_DIRECT_MAX
#define SPOOL_DIRECT_MAX (2u << 20)       /* a batch's aligned buffer at most (see below) */
#endif
#define SPOOL_BIGS 4                      /* larger records per batch, written in place */
#define SPOOL_BATCH_BYTES (1u << 30)      /* octets per commit */
#ifndef SPOOL_INFLIGHT
#define SPOOL_INFLIGHT 2                  /* commits in flight at once. With one, and
                                             batches as large as what came, 50 clients of
                                             100 KiB fell into lockstep: all waited on one
                                             5 MB write, then all sent, CPU and disk taking
                                             turns (18% idle, 4,300 msg/s). Two of at most
                                             2 MiB keep the disk writing while the CPU
                                             reads: 4,800-5,350 (bench/RESULTS.md) */
#endif
#define SPOOL_RETRY_MS 250u               /* failing: how often the disk is tried */
#define SPOOL_SPACE_LOOK_MS 100u          /* free space looked at (fstatvfs) at most this
                                             often per worker */
#define SPOOL_RESERVE_SHARE 32u           /* the reserves: a 32nd of the filesystem, shared
                                             by the workers, each at most a segment and at
                                             most SPOOL_RESERVE_MAX ... */
#define SPOOL_RESERVE_MAX (SPOOL_SEGMENT_MAX / SPOOL_COPY_GAIN)   /* 16 MiB: what a copy
                                             forward of one segment's live messages writes
                                             at most when the rule asks it for the segment
                                             alone */
#define SPOOL_RESERVE_MIN (64u << 10)     /* ... and at least this (when the filesystem
                                             holds 8 times as much per worker; else none):
                                             notes written meanwhile take a block each */

enum spool_op_kind {
	SPOOL_OP_BATCH = NET_OP_USER,     /* a batch's writes and sync */
	SPOOL_OP_PREP,                    /* a segment's fallocate and its fdatasync */
	SPOOL_OP_NAME,                    /* a new segment's directory fsync */
	SPOOL_OP_UNLINK,                  /* a reclaimed segment's unlink and directory fsync */
};

struct spool;
struct spool_seg;

/* ---- the segment table and the reclaim rule (pure: no I/O) ------------------------------ */

struct spool_segent {
	unsigned worker;                  /* w<worker>-<seq>.seg */
	uint64_t seq;
	uint64_t size;                    /* octets in it */
	uint64_t live;                    /* live MSG records in it */
	uint64_t live_bytes;              /* their octets */
	bool own;                         /* this worker's index (else a vanished one's) */
	bool in_use;                      /* being written (current, prepared, retiring) */
	uint64_t idle_ms;                 /* when it stopped being written (loop ms; 0: found
	                                     at start-up) */
	bool removing;                    /* its unlink is in flight */
};

/* In chain order: (own, worker, seq), the vanished indexes first. */
struct spool_segtab {
	struct spool_segent *v;
	size_t n, cap;
};

/* Insert a segment in its place (a known one is left alone); 0 or -ENOMEM. */
int spool_segtab_add(struct spool_segtab *t, unsigned worker, uint64_t seq, uint64_t size,
                     bool own);
/* The entry of a segment, or NULL. */
struct spool_segent *spool_segtab_find(struct spool_segtab *t, unsigned worker, uint64_t seq,
                                       bool own);
/* Drop entry i. */
void spool_segtab_del(struct spool_segtab *t, size_t i);
void spool_segtab_fini(struct spool_segtab *t);

/* What may go now, of the chain v[0..n): the first `remove` entries (no live message, not
 * in use, not being removed); copy, the index of the entry whose live messages should be
 * copied forward, or -1: the first entry after those, when it is not in use or being
 * removed, was last written at or before idle_before (ms; so that messages about to be
 * delivered are not copied: SPOOL_COPY_AGE_MS), holds live messages, and SPOOL_COPY_GAIN * its live octets <= its size plus
 * the sizes of the entries without live messages (not in use) right behind it: copying
 * frees at least SPOOL_COPY_GAIN times what it writes (so a backlog of live mail is never
 * copied round and round, and the octets copied are at most a SPOOL_COPY_GAIN-th of the
 * octets freed). A segment of a vanished worker index (!own) is copied out whatever it
 * frees: its messages' outcome notes now go to this worker's segments, which would no
 * longer follow them should the worker count change back before it went. */
struct spool_reclaim {
	size_t remove;
	long copy;
};
void spool_reclaim_rule(const struct spool_segent *v, size_t n, uint64_t idle_before,
                        struct spool_reclaim *out);

/* Where a committed record lies: segment seq of this worker, offset, length. */
struct spool_loc {
	uint64_t seq, off, len;
};
/* A waiter's answer: ok (its record is written and a completed fdatasync covers it) with
 * the record's place, or not (451). loc is valid during the call only; NULL when !ok. */
typedef void spool_done_fn(void *waiter, bool ok, const struct spool_loc *loc);

/* One message of a batch, told when the batch completes. */
struct spool_waiter {
	void *w;
	spool_done_fn *done;
	uint64_t rel;                     /* small: its offset in the aligned buffer */
	int big;                          /* -1, or its index in big[] */
	size_t len;                       /* the record's length */
	char qid[32];                     /* for the VOID note when the batch fails */
};

/* Notes (RCPT outcome, DONE and VOID records) need no fdatasync of their own: a lost
 * one costs a duplicate delivery, never a loss. They ride with the next commit; a batch
 * of notes only is written, without a sync, once its oldest note is SPOOL_NOTE_DELAY_MS
 * old or it holds SPOOL_NOTE_FLUSH_BYTES, or at once when the writer is stopping. */
#define SPOOL_NOTE_DELAY_MS 200u
#define SPOOL_NOTE_FLUSH_BYTES (256u << 10)
#define SPOOL_NOTE_MAX 4096u              /* octets of one note at most */

/* A record too large to copy: its head, the message's own data, a PAD to the boundary. */
struct spool_big {
	size_t hoff, hlen;                /* its head in the batch's heads buffer */
	const uint8_t *data;
	size_t dlen;
	uint8_t pad[16];                  /* the PAD record's header (SPOOLREC_HDR_LEN) */
	size_t padlen;
	struct iovec iov[4];
};

struct spool_batch {
	struct net_op op;
	struct spool *sp;
	struct spool_batch *next;         /* in the waiting or the free list */
	struct spool_seg *seg;            /* while in flight */
	uint64_t seg_seq;                 /* its sequence number (0: never submitted) */
	uint8_t *buf;                     /* SPOOL_ALIGN-aligned: the copied records */
	size_t blen, bcap;
	uint8_t *heads;                   /* the heads of the big ones */
	size_t hlen, hcap;
	struct spool_big big[SPOOL_BIGS];
	unsigned nbig;
	struct spool_waiter *waiters;
	size_t n, capw;
	size_t notes;                     /* notes in buf */
	uint64_t t_note_ms;               /* when its first note came (notes only: written after
	                                     SPOOL_NOTE_DELAY_MS) */
	size_t len;                       /* octets written, padding included */
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
	int fd;                           /* buffered: fallocate, big records, sync, cut */
	int dfd;                          /* O_DIRECT (or -1: the filesystem refused it) */
	uint64_t seq;
	uint64_t end;                     /* records written or in flight end here */
	uint64_t good;                    /* the last record of a successful batch ends here */
	uint64_t prepared;                /* allocated (durably) up to here */
	unsigned prep_pending;            /* CQEs of the preparation still expected */
	uint64_t prep_want;               /* octets being allocated ahead */
	int prep_err;
	unsigned inflight;                /* batches in flight in it */
	bool named;                       /* created, and its directory entry is durable */
	bool broken;                      /* a write or sync failed in it */
	bool prep_stop;                   /* not allocated ahead (failed, or no sync) */
	bool retired;                     /* no new batches; finished once idle */
};

struct spool {
	struct net_loop *loop;
	int dirfd;
	unsigned worker, nworkers;
	bool sync;
	uint64_t nonce_state;             /* record nonces (spool_nonce) */
	uint64_t seq;                     /* of the newest segment */
	struct spool_seg *cur, *next, *retiring;
	struct spool_batch *wait_head, *wait_tail;   /* filling is the tail */
	struct spool_batch *free;
	unsigned inflight;
	spool_done_fn *done;
	bool stopping;                    /* notes go out at once */
	uint64_t notes, voids;            /* notes written (queued), VOID notes among them */
	/* failing state */
	bool failing;
	int fail_err;
	uint64_t fail_since_ms, retry_at_ms, fail_batches, fail_messages;
	uint64_t fail_batches_total;      /* ever (fail_batches restarts with each episode) */
	/* counters */
	uint64_t commits, messages, bytes;
	uint64_t commit_ns, commit_ns_max;  /* time from submission to the sync's completion */
	uint64_t commit_hist[STATS_COMMIT_BUCKETS + 1];  /* core/stats: per bucket */
	uint64_t batch_hist[STATS_BATCH_BUCKETS + 1];
	uint64_t linked_chains;           /* chains that reached the ring whole */
	/* reclaim */
	uint64_t seg_max;                 /* SPOOL_SEGMENT_MAX (smaller in tests) */
	struct spool_segtab tab;
	bool reclaim_on;                  /* spool_reclaim_enable() */
	bool reclaim_dirty;               /* a count changed: look again */
	struct net_op unlink_op;
	unsigned unlink_pending;          /* CQEs of the unlink chain still expected */
	int unlink_err;
	char unlink_name[48];
	uint64_t copy_asked_ms;           /* when reclaim_copy was last called */
	uint64_t reclaim_look_ms;         /* when the rule was last looked at */
	uint64_t copy_age_ms;             /* SPOOL_COPY_AGE_MS (smaller in tests) */
	unsigned copy_worker;             /* ... for this segment */
	uint64_t copy_seq;
	bool copy_asked;
	/* the queue copies a segment's live messages forward when asked */
	void (*reclaim_copy)(void *ctx, unsigned worker, uint64_t seq);
	void *reclaim_ctx;
	uint64_t reclaimed, reclaimed_bytes, copies_asked;
	/* free space (spool_room) */
	uint64_t min_free;                /* as last given to spool_room() */
	bool space_looked;                /* space_* are set */
	uint64_t space_look_ms;           /* when the filesystem was last looked at */
	uint64_t space_avail;             /* free octets then (f_bavail) */
	uint64_t space_room;              /* the same with the space allocated ahead */
	uint64_t space_used;              /* octets queued since */
	bool low;                         /* new mail refused: under min_free */
	uint64_t low_since_ms, low_refused;
	/* the reserve */
	int reserve_fd;                   /* -1: none */
	uint64_t reserve_size;
	bool reserve_out;                 /* released (or not made): new mail refused */
	uint64_t reserve_since_ms, reserve_releases, full_refused;
};

/* dir must exist. Registers the spool's op kinds on l. Returns 0 or -errno. */
int spool_init(struct spool *sp, struct net_loop *l, const char *dir, unsigned worker,
               unsigned nworkers, bool sync, spool_done_fn *done);
/* After the loop has let go of everything (spool_idle): cut the current segment to its
 * records, remove an unused prepared one, close. */
void spool_fini(struct spool *sp);
/* Queue m for a commit; waiter is handed back to done(). 0 or -ENOMEM. m's strings and
 * data must stay valid until done() is called; the data of a message over SPOOL_COPY_MAX
 * is scrambled where it is (it is the spool's until then). */
int spool_append(struct spool *sp, void *waiter, const struct smtp_srv_msg *m,
                 const char *client, uint64_t arrival);
/* The same with a done function of its own for this waiter (the bounces the relay makes). */
int spool_append_to(struct spool *sp, void *waiter, spool_done_fn *done,
                    const struct smtp_srv_msg *m, const char *client, uint64_t arrival);
/* Queue a note (an encoded RCPT, DONE or VOID record of at most SPOOL_NOTE_MAX octets):
 * written with the next commit, or on its own after a while (see above). Best effort:
 * nothing is told; -ENOMEM or -EINVAL when it could not even be queued. */
int spool_note(struct spool *sp, const uint8_t *rec, size_t len);
/* The same for an encoded record (one or more records back to back: a copy forward, see
 * Reclaim) of len octets at rec, which must stay valid until done() is called. loc in
 * done() is the place of its first octet. Never followed by a VOID note when it fails. */
int spool_append_rec(struct spool *sp, void *waiter, spool_done_fn *done, const uint8_t *rec,
                     size_t len);
/* Segments found at start-up (spooldir_segments): this worker's own, and those of a
 * worker index >= nworkers whose index % nworkers is this one. Before the queue adopts
 * their messages. 0 or -errno. */
int spool_adopt_segments(struct spool *sp, const char *dir);
/* Turn reclaiming on, with the queue's copy function (without it, as for the writer
 * alone in tests and tools, no segment is ever removed). */
void spool_reclaim_enable(struct spool *sp, void (*copy)(void *ctx, unsigned worker,
                                                         uint64_t seq), void *ctx);
/* A live MSG record of len octets in segment w<worker>-<seq> comes (delta 1) or goes
 * (delta -1). An unknown segment is ignored. */
void spool_seg_ref(struct spool *sp, unsigned worker, uint64_t seq, uint64_t len, int delta);

/* May new mail of about len octets come in (see Free space)? OK; LOW: under min_free
 * (answer 452 4.3.1 Insufficient system storage); FULL: the disk filled and a reserve is
 * out (answer 451 4.3.0). min_free 0: never LOW. Looks at the filesystem when the last
 * look is SPOOL_SPACE_LOOK_MS old. */
enum spool_room {
	SPOOL_ROOM_OK = 0,
	SPOOL_ROOM_LOW,
	SPOOL_ROOM_FULL,
};
enum spool_room spool_room(struct spool *sp, uint64_t min_free, uint64_t len);
/* The reserve of one worker on a filesystem of fs octets shared by nworkers: fs /
 * SPOOL_RESERVE_SHARE / nworkers, at most seg_max and SPOOL_RESERVE_MAX, at least
 * SPOOL_RESERVE_MIN when fs / 8 / nworkers holds that much (else 0: none), in whole
 * SPOOL_ALIGN blocks. Pure. */
uint64_t spool_reserve_size(uint64_t fs, unsigned nworkers, uint64_t seg_max);
/* Make (or find) this worker's reserve and remove those of vanished worker indexes it
 * adopts (after spool_reclaim_enable: without reclaim a reserve is of no use). A disk too
 * full for it counts it out (new mail refused until it is made). 0 or -errno (the file
 * could not be opened, or the filesystem cannot allocate ahead: no reserve, logged). */
int spool_reserve_enable(struct spool *sp);

/* The writer is stopping: notes are written at once from now on. */
void spool_stopping(struct spool *sp);
/* Send waiting batches to the ring as far as the limits allow (end of each loop turn). */
void spool_flush(struct spool *sp);
/* Nothing waiting, nothing in flight. */
bool spool_idle(const struct spool *sp);

#endif
