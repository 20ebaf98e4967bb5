/* core/spool — see spool.h. */
#include "core/spool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "cfg/config.h"
#include "core/log.h"
#include "core/spooldir.h"
#include "proto/spoolrec.h"


/* The largest record the configuration allows (data, Received:, every recipient at the
 * longest command line) fits one batch, so a message is never refused for its size here. */
_Static_assert((uint64_t)CONFIG_MAX_MESSAGE_SIZE_MAX + 64u * 1024u +
               (uint64_t)CONFIG_MAX_RECIPIENTS_MAX * (4u + SMTP_SRV_CMD_MAX) <= SPOOL_BATCH_BYTES,
               "a largest message must fit one spool batch");


static struct spool_batch *batch_of(struct net_op *op)
{
	return (struct spool_batch *)(void *)((char *)op - offsetof(struct spool_batch, op));
}

static struct spool *spool_of_unlink(struct net_op *op)
{
	return (struct spool *)(void *)((char *)op - offsetof(struct spool, unlink_op));
}

static struct spool_seg *seg_of(struct net_op *op)
{
	size_t at = op->kind == SPOOL_OP_NAME ? offsetof(struct spool_seg, name_op)
	                                      : offsetof(struct spool_seg, prep_op);
	return (struct spool_seg *)(void *)((char *)op - at);
}

static uint64_t spool_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* A nonce per record (splitmix64 over a random seed): what a client sends cannot be
 * laid on disk in a shape it chose. */
static uint64_t spool_nonce(struct spool *sp)
{
	uint64_t z = (sp->nonce_state += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
	if (need <= *cap)
		return 0;
	size_t n = *cap ? *cap : 16;
	while (n < need)
		n *= 2;
	void *q = realloc(*p, n * elem);
	if (!q)
		return -ENOMEM;
	*p = q;
	*cap = n;
	return 0;
}

static void seg_name(const struct spool *sp, uint64_t seq, char *buf, size_t cap)
{
	snprintf(buf, cap, "w%u-%016llx.seg", sp->worker, (unsigned long long)seq);
}

/* ---- the failing state ------------------------------------------------------------ */

static void spool_failed(struct spool *sp, int err, size_t messages)
{
	uint64_t now = sp->loop->now_ms;
	if (!sp->failing) {
		sp->failing = true;
		sp->fail_err = err;
		sp->fail_since_ms = now;
		sp->fail_batches = sp->fail_messages = 0;
		log_err("event=spool_failing worker=%u error=\"%s\" note=\"answering 451; retrying every %u ms\"",
		        sp->worker, strerror(err > 0 ? err : EIO), SPOOL_RETRY_MS);
	}
	sp->fail_batches++;
	sp->fail_batches_total++;
	sp->fail_messages += messages;
	sp->retry_at_ms = now + SPOOL_RETRY_MS;
	if ((err == ENOSPC || err == EDQUOT) && sp->reserve_fd >= 0 && !sp->reserve_out)
		sp->reclaim_dirty = true;       /* the rule may want the reserve now (Free space) */
}

static void spool_recovered(struct spool *sp)
{
	if (!sp->failing)
		return;
	sp->failing = false;
	sp->reclaim_dirty = true;           /* copies forward may be asked again */
	log_info("event=spool_recovered worker=%u failed_batches=%llu failed_messages=%llu after_ms=%llu",
	         sp->worker, (unsigned long long)sp->fail_batches,
	         (unsigned long long)sp->fail_messages,
	         (unsigned long long)(sp->loop->now_ms - sp->fail_since_ms));
}

/* ---- free space and the reserve ---------------------------------------------------- */

/* Reserves released and not made again, in this process (every worker's spool): while any
 * is out, new mail is refused everywhere, since what one worker's reserve gave back is
 * free space for all of them. */
static atomic_uint spool_reserves_out;

static uint64_t seg_unwritten(const struct spool_seg *seg)
{
	return seg && seg->prepared > seg->end ? seg->prepared - seg->end : 0;
}

static void low_leave(struct spool *sp)
{
	sp->low = false;
	log_info("event=spool_space_ok worker=%u free=%llu min_free=%llu refused=%llu after_ms=%llu",
	         sp->worker, (unsigned long long)sp->space_room, (unsigned long long)sp->min_free,
	         (unsigned long long)sp->low_refused,
	         (unsigned long long)(sp->loop->now_ms - sp->low_since_ms));
}

static void low_enter(struct spool *sp, uint64_t room)
{
	sp->low = true;
	sp->low_since_ms = sp->loop->now_ms;
	sp->low_refused = 0;
	log_warn("event=spool_low_space worker=%u free=%llu min_free=%llu note=\"new mail answered 452 4.3.1 until %llu octets are free\"",
	         sp->worker, (unsigned long long)room, (unsigned long long)sp->min_free,
	         (unsigned long long)(sp->min_free + sp->min_free / 8));
}

static void reserve_out(struct spool *sp)
{
	if (sp->reserve_out)
		return;
	sp->reserve_out = true;
	sp->reserve_since_ms = sp->loop->now_ms;
	sp->full_refused = 0;
	atomic_fetch_add(&spool_reserves_out, 1);
}

/* Allocate the reserve (again): 0 when it is whole, else -errno (whatever part was
 * allocated is given back, and it counts as out). */
static int reserve_make(struct spool *sp)
{
	if (fallocate(sp->reserve_fd, 0, 0, (off_t)sp->reserve_size) < 0 ||
	    ftruncate(sp->reserve_fd, (off_t)sp->reserve_size) < 0) {
		int e = errno;
		if (ftruncate(sp->reserve_fd, 0) < 0) {
			/* nothing more to do: it is out either way */
		}
		reserve_out(sp);
		return -e;
	}
	if (sp->reserve_out) {
		sp->reserve_out = false;
		atomic_fetch_sub(&spool_reserves_out, 1);
		log_info("event=spool_reserve_restored worker=%u size=%llu free=%llu refused=%llu after_ms=%llu",
		         sp->worker, (unsigned long long)sp->reserve_size,
		         (unsigned long long)sp->space_avail, (unsigned long long)sp->full_refused,
		         (unsigned long long)(sp->loop->now_ms - sp->reserve_since_ms));
	}
	return 0;
}

/* The disk is full and the reclaim rule wants a copy forward of e: give the reserve back
 * so that the copy can be written. True when copies may be asked while failing. */
static bool reserve_release(struct spool *sp, const struct spool_segent *e)
{
	if (sp->reserve_out)
		return true;                    /* its space is there for the copies */
	if (sp->reserve_fd < 0 || (sp->fail_err != ENOSPC && sp->fail_err != EDQUOT))
		return false;
	if (ftruncate(sp->reserve_fd, 0) < 0) {
		log_err("event=spool_reserve_failed worker=%u error=\"%s\"", sp->worker,
		        strerror(errno));
		return false;
	}
	reserve_out(sp);
	sp->reserve_releases++;
	sp->retry_at_ms = sp->loop->now_ms;     /* try the disk at once, */
	sp->copy_asked = false;                 /* with the copies first */
	log_warn("event=spool_reserve_released worker=%u size=%llu segment=w%u-%016llx live=%llu "
	         "note=\"the disk is full and reclaim needs room to copy forward: new mail answered 451 until the reserve is made again\"",
	         sp->worker, (unsigned long long)sp->reserve_size, e->worker,
	         (unsigned long long)e->seq, (unsigned long long)e->live);
	return true;
}

/* The filesystem's free space, at most every SPOOL_SPACE_LOOK_MS; the states that depend
 * on it left when it is back. */
static void space_look(struct spool *sp)
{
	uint64_t now = sp->loop->now_ms;
	if (sp->space_looked && now < sp->space_look_ms + SPOOL_SPACE_LOOK_MS)
		return;
	struct statvfs vs;
	if (fstatvfs(sp->dirfd, &vs) < 0)
		return;
	sp->space_looked = true;
	sp->space_look_ms = now;
	sp->space_avail = (uint64_t)vs.f_bavail * vs.f_frsize;
	sp->space_room = sp->space_avail + seg_unwritten(sp->cur) + seg_unwritten(sp->next);
	sp->space_used = 0;
	if (sp->low && (sp->min_free == 0 || sp->space_room >= sp->min_free + sp->min_free / 8))
		low_leave(sp);
	/* made again once there is room for it and as much again, beyond min_free and what
	 * the reserves out (this one included) gave back: that space is the copies' */
	uint64_t out = atomic_load(&spool_reserves_out);
	if (sp->reserve_out && sp->reserve_fd >= 0 &&
	    sp->space_avail >= sp->min_free + (out + 2) * sp->reserve_size)
		reserve_make(sp);
}

enum spool_room spool_room(struct spool *sp, uint64_t min_free, uint64_t len)
{
	sp->min_free = min_free;
	if (sp->reserve_out)
		space_look(sp);                 /* (made again when there is room) */
	if (atomic_load(&spool_reserves_out) > 0) {
		sp->full_refused++;
		return SPOOL_ROOM_FULL;
	}
	if (min_free == 0) {
		if (sp->low)
			low_leave(sp);
		return SPOOL_ROOM_OK;
	}
	space_look(sp);
	if (!sp->space_looked)
		return SPOOL_ROOM_OK;           /* no answer from the filesystem: the write will tell */
	uint64_t room = sp->space_room > sp->space_used ? sp->space_room - sp->space_used : 0;
	if (!sp->low && room >= len && room - len >= min_free)
		return SPOOL_ROOM_OK;
	if (!sp->low)
		low_enter(sp, room);
	sp->low_refused++;
	return SPOOL_ROOM_LOW;
}

uint64_t spool_reserve_size(uint64_t fs, unsigned nworkers, uint64_t seg_max)
{
	uint64_t n = nworkers ? nworkers : 1;
	uint64_t r = fs / SPOOL_RESERVE_SHARE / n;
	if (r < SPOOL_RESERVE_MIN)
		r = fs / 8 / n >= SPOOL_RESERVE_MIN ? SPOOL_RESERVE_MIN : 0;
	if (r > seg_max)
		r = seg_max;
	if (r > SPOOL_RESERVE_MAX)
		r = SPOOL_RESERVE_MAX;
	return r & ~(uint64_t)(SPOOL_ALIGN - 1);
}

/* Remove the reserves of worker indexes that no longer exist and whose segments this
 * worker adopts (k >= nworkers, k % nworkers == worker). */
static void reserve_sweep(struct spool *sp)
{
	int fd = openat(sp->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		if (fd >= 0)
			close(fd);
		return;
	}
	unsigned n = sp->nworkers ? sp->nworkers : 1;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		unsigned k;
		char tail;
		if (sscanf(de->d_name, ".reserve-w%u%c", &k, &tail) != 1 || k < n || k % n != sp->worker)
			continue;
		if (unlinkat(sp->dirfd, de->d_name, 0) == 0)
			log_info("event=spool_reserve_removed worker=%u file=%s note=\"a vanished worker's\"",
			         sp->worker, de->d_name);
	}
	closedir(d);
}

int spool_reserve_enable(struct spool *sp)
{
	struct statvfs vs;
	char name[32];
	if (sp->reserve_fd >= 0)
		return 0;
	reserve_sweep(sp);
	if (fstatvfs(sp->dirfd, &vs) < 0)
		return -errno;
	sp->reserve_size = spool_reserve_size((uint64_t)vs.f_blocks * vs.f_frsize, sp->nworkers,
	                                      sp->seg_max);
	if (sp->reserve_size == 0)
		return 0;                       /* a filesystem too small for one */
	snprintf(name, sizeof name, ".reserve-w%u", sp->worker);
	/* Never through a symlink, never anything but a plain file: it is cut and grown, and
	 * whatever a link left in the spool points to must not be (as Postfix opens queue
	 * files). Such an entry is left alone: no reserve for this worker. */
	sp->reserve_fd = openat(sp->dirfd, name,
	                        O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0600);
	struct stat st;
	if (sp->reserve_fd >= 0 && (fstat(sp->reserve_fd, &st) < 0 || !S_ISREG(st.st_mode))) {
		close(sp->reserve_fd);
		sp->reserve_fd = -1;
		errno = EINVAL;
	}
	if (sp->reserve_fd < 0) {
		int e = errno;
		log_warn("event=spool_reserve_failed worker=%u file=%s error=\"%s\" note=\"not a plain file (a symlink is not followed): no reserve, a full disk may need an operator\"",
		         sp->worker, name, e == ELOOP ? "a symbolic link" : strerror(e));
		return -e;
	}
	if ((uint64_t)st.st_size == sp->reserve_size &&
	    (uint64_t)st.st_blocks * 512u >= sp->reserve_size)
		return 0;                       /* whole from an earlier run */
	int e = -reserve_make(sp);
	if (e == 0) {
		log_info("event=spool_reserve worker=%u file=%s size=%llu", sp->worker, name,
		         (unsigned long long)sp->reserve_size);
		return 0;
	}
	if (e == EOPNOTSUPP || e == ENOSYS) {
		/* a filesystem that cannot allocate ahead: no reserve (and nothing out) */
		sp->reserve_out = false;
		atomic_fetch_sub(&spool_reserves_out, 1);
		close(sp->reserve_fd);
		sp->reserve_fd = -1;
		unlinkat(sp->dirfd, name, 0);
		log_warn("event=spool_reserve_failed worker=%u file=%s error=\"%s\" note=\"no reserve: a full disk may need an operator\"",
		         sp->worker, name, strerror(e));
		return -e;
	}
	log_warn("event=spool_reserve_short worker=%u file=%s size=%llu error=\"%s\" note=\"new mail answered 451 until it can be made\"",
	         sp->worker, name, (unsigned long long)sp->reserve_size, strerror(e));
	return 0;
}

/* ---- segments --------------------------------------------------------------------- */

/* How much of a new segment to allocate ahead: all of it, unless that would take more
 * than a quarter of the free space shared by every worker (many workers, a small disk:
 * what is reserved ahead must never be what the records then lack). 0: none. */
static uint64_t seg_prealloc(const struct spool *sp)
{
	struct statvfs vs;
	if (fstatvfs(sp->dirfd, &vs) < 0)
		return 0;
	uint64_t avail = (uint64_t)vs.f_bavail * vs.f_frsize;
	uint64_t share = avail / 4 / (sp->nworkers ? sp->nworkers : 1);
	uint64_t n = share < sp->seg_max ? share : sp->seg_max;
	n &= ~(uint64_t)(SPOOL_ALIGN - 1);
	return n >= (1u << 20) ? n : 0;
}

/* A new segment's preparation, one chain: the directory's fsync (its name is durable),
 * then its space allocated (fallocate) and that made durable (fdatasync). */
static void seg_prep(struct spool *sp, struct spool_seg *seg)
{
	struct io_uring_sqe *v[3];
	uint64_t n = seg_prealloc(sp);
	unsigned k = n ? 3 : 1;
	if (net_loop_sqes(sp->loop, v, k) < 0)
		return;                         /* the ring is full: again at the next flush */
	io_uring_prep_fsync(v[0], sp->dirfd, 0);
	net_sqe_op(v[0], &seg->name_op);
	if (n) {
		io_uring_prep_fallocate(v[1], seg->fd, 0, 0, (off_t)n);
		net_sqe_op(v[1], &seg->prep_op);
		io_uring_prep_fsync(v[2], seg->fd, IORING_FSYNC_DATASYNC);
		net_sqe_op(v[2], &seg->prep_op);
		v[0]->flags |= IOSQE_IO_LINK;
		v[1]->flags |= IOSQE_IO_LINK;
	} else {
		seg->prep_stop = true;          /* records will simply append */
	}
	seg->prep_want = n;
	seg->prep_pending = k;
	seg->prep_err = 0;
}

static struct spool_seg *seg_open(struct spool *sp)
{
	char name[64];
	struct spool_seg *seg = calloc(1, sizeof *seg);
	if (!seg)
		return NULL;
	seg->sp = sp;
	seg->prep_op.kind = SPOOL_OP_PREP;
	seg->name_op.kind = SPOOL_OP_NAME;
	seg->seq = ++sp->seq;
	seg_name(sp, seg->seq, name, sizeof name);
	seg->fd = openat(sp->dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (seg->fd < 0) {
		int e = errno;
		free(seg);
		spool_failed(sp, e, 0);
		return NULL;
	}
	/* The same file again, for direct writes; a filesystem that refuses them gets
	 * buffered writes of the same aligned blocks. */
	seg->dfd = openat(sp->dirfd, name, O_WRONLY | O_DIRECT | O_CLOEXEC);
	if (spool_segtab_add(&sp->tab, sp->worker, seg->seq, 0, true) == 0)
		spool_segtab_find(&sp->tab, sp->worker, seg->seq, true)->in_use = true;
	if (!sp->sync) {
		seg->named = true;              /* nothing is made durable anyway */
		seg->prep_stop = true;
	} else {
		seg_prep(sp, seg);
	}
	log_msg(sp->failing ? LOG_DEBUG : LOG_INFO, "event=spool_segment worker=%u segment=%s",
	        sp->worker, name);
	return seg;
}

/* A segment whose preparation did not fit in the ring: try again. */
static void seg_prep_retry(struct spool *sp, struct spool_seg *seg)
{
	if (!seg->named && !seg->prep_pending && !seg->prep_stop && !seg->broken)
		seg_prep(sp, seg);
}

/* A retired segment with nothing in flight: cut it to its last good record (dropping a
 * torn write and the unused allocated space), remove it when it holds none, close it. */
static void seg_finish(struct spool *sp, struct spool_seg *seg)
{
	char name[64];
	seg_name(sp, seg->seq, name, sizeof name);
	struct spool_segent *e = spool_segtab_find(&sp->tab, sp->worker, seg->seq, true);
	if (seg->good == 0) {
		unlinkat(sp->dirfd, name, 0);
		if (e)
			spool_segtab_del(&sp->tab, (size_t)(e - sp->tab.v));
		e = NULL;
	} else if (ftruncate(seg->fd, (off_t)seg->good) < 0) {
		log_warn("event=spool_truncate_failed worker=%u segment=%s error=\"%s\"", sp->worker,
		         name, strerror(errno));
	}
	if (e) {
		e->in_use = false;
		e->size = seg->good;
		e->idle_ms = sp->loop->now_ms;
	}
	sp->reclaim_dirty = true;
	close(seg->fd);
	if (seg->dfd >= 0)
		close(seg->dfd);
	free(seg);
}

static bool seg_busy(const struct spool_seg *seg)
{
	return seg->inflight > 0 || seg->prep_pending > 0;
}

/* cur is done with (full or broken): it finishes once nothing refers to it. */
static void seg_retire(struct spool *sp, struct spool_seg *seg)
{
	if (sp->cur == seg)
		sp->cur = NULL;
	if (sp->next == seg)
		sp->next = NULL;
	if (seg->retired)
		return;                         /* already on the list */
	seg->retired = true;
	if (!seg_busy(seg)) {
		seg_finish(sp, seg);
		return;
	}
	seg->next = sp->retiring;
	sp->retiring = seg;
}

static void retiring_reap(struct spool *sp)
{
	for (struct spool_seg **pp = &sp->retiring; *pp;) {
		struct spool_seg *seg = *pp;
		if (seg_busy(seg)) {
			pp = &seg->next;
			continue;
		}
		*pp = seg->next;
		seg_finish(sp, seg);
	}
}

/* One CQE of a segment's preparation: the directory fsync (name_op), the fallocate or
 * its fdatasync (prep_op). */
static void on_prep(struct net_loop *l, struct net_op *op, int res, unsigned flags)
{
	(void)l;
	(void)flags;
	struct spool_seg *seg = seg_of(op);
	struct spool *sp = seg->sp;
	if (op->kind == SPOOL_OP_NAME) {
		if (res == 0) {
			seg->named = true;
		} else if (!seg->prep_err) {
			seg->prep_err = res;        /* the name is not durable: unusable */
			seg->broken = true;
		}
	} else if (res < 0 && !seg->prep_err) {
		seg->prep_err = res;
	}
	if (--seg->prep_pending > 0)
		return;
	if (!seg->prep_err) {
		seg->prepared = seg->prep_want;
	} else if (!seg->broken) {
		/* No room for a whole segment (a nearly full disk): give back what was
		 * allocated, go on without; records then simply append. */
		seg->prep_stop = true;
		if (ftruncate(seg->fd, (off_t)seg->end) < 0)
			log_warn("event=spool_truncate_failed worker=%u error=\"%s\"", sp->worker,
			         strerror(errno));
	}
	if (seg->broken) {
		spool_failed(sp, seg->prep_err ? -seg->prep_err : EIO, 0);
		seg_retire(sp, seg);            /* may free seg */
	}
	retiring_reap(sp);
	spool_flush(sp);
}

/* The segment the next batch goes to, or NULL (not ready yet, or failing). */
static struct spool_seg *seg_for_batch(struct spool *sp)
{
	if (sp->cur && (sp->cur->broken || sp->cur->end >= sp->seg_max)) {
		if (sp->cur->broken || (sp->next && sp->next->named)) {
			seg_retire(sp, sp->cur);
			sp->cur = sp->next;
			sp->next = NULL;
		}
	}
	if (!sp->cur) {
		if (sp->next) {
			sp->cur = sp->next;
			sp->next = NULL;
		} else {
			sp->cur = seg_open(sp);
		}
	}
	struct spool_seg *seg = sp->cur;
	if (!seg)
		return NULL;
	/* The next one is prepared while this one fills. */
	if (!sp->next && seg->end >= sp->seg_max / 2 && !sp->failing)
		sp->next = seg_open(sp);
	return seg->named ? seg : NULL;
}

/* ---- batches ---------------------------------------------------------------------- */

/* Zeros behind a big record's PAD header (a PAD is at most SPOOL_ALIGN + 15 octets). */
static const uint8_t spool_zeros[SPOOL_ALIGN + 16];

static size_t align_up(size_t n)
{
	return (n + SPOOL_ALIGN - 1) & ~(size_t)(SPOOL_ALIGN - 1);
}

/* The PAD that ends a write of n octets on a boundary: 0, or at least a record header. */
static size_t pad_for(size_t n)
{
	size_t gap = align_up(n) - n;
	return gap && gap < SPOOLREC_HDR_LEN ? gap + SPOOL_ALIGN : gap;
}

/* The length of the aligned buffer's write: its records and their PAD. */
static size_t small_len(const struct spool_batch *b)
{
	return b->blen + pad_for(b->blen);
}

static struct spool_batch *batch_new(struct spool *sp)
{
	struct spool_batch *b = sp->free;
	if (b) {
		sp->free = b->next;
	} else {
		b = calloc(1, sizeof *b);
		if (!b)
			return NULL;
		b->op.kind = SPOOL_OP_BATCH;
		b->sp = sp;
	}
	b->next = NULL;
	b->n = b->hlen = b->blen = b->len = b->written = b->notes = 0;
	b->nbig = 0;
	b->err = 0;
	b->pending = 0;
	b->seg = NULL;
	b->seg_seq = 0;
	return b;
}

static void batch_free(struct spool_batch *b)
{
	free(b->buf);
	free(b->heads);
	free(b->waiters);
	free(b);
}

static void batch_recycle(struct spool *sp, struct spool_batch *b)
{
	if (b->bcap > (4u << 20)) {         /* an unusually large one: give it back */
		batch_free(b);
		return;
	}
	b->next = sp->free;
	sp->free = b;
}

/* The VOID notes of a failed batch: its records may lie on disk whole although the
 * messages were refused (451); the cut back to the last good record removes them, and
 * these notes hide them should the cut not happen (a crash first). */
static void batch_void(struct spool *sp, const struct spool_batch *b)
{
	for (size_t i = 0; i < b->n; i++) {
		if (!b->waiters[i].qid[0])
			continue;                   /* a copy forward: its original stays */
		uint8_t rec[SPOOLREC_HDR_LEN + 4 + sizeof b->waiters[i].qid];
		size_t n = spoolrec_encode_void(rec, sizeof rec, b->waiters[i].qid);
		if (n > 0 && spool_note(sp, rec, n) == 0)
			sp->voids++;
	}
}

/* Tell every waiter; recycle. */
static void batch_finish(struct spool *sp, struct spool_batch *b, bool ok)
{
	uint64_t big_off = b->off + small_len(b);
	for (size_t i = 0; i < b->n; i++) {
		struct spool_waiter *w = &b->waiters[i];
		struct spool_loc loc = { b->seg_seq, 0, w->len };
		if (ok && w->big < 0) {
			loc.off = b->off + w->rel;
		} else if (ok) {
			loc.off = big_off;
			for (int j = 0; j < w->big; j++)
				loc.off += b->big[j].hlen + b->big[j].dlen + b->big[j].padlen;
		}
		w->done(w->w, ok, ok ? &loc : NULL);
	}
	if (!ok && b->seg_seq)
		batch_void(sp, b);
	batch_recycle(sp, b);
}

/* Room for n more octets (and the PAD that may follow them) in the aligned buffer. */
static int buf_room(struct spool_batch *b, size_t n)
{
	size_t need = b->blen + n + SPOOL_ALIGN + SPOOLREC_HDR_LEN;
	if (need <= b->bcap)
		return 0;
	size_t cap = b->bcap ? b->bcap : 64u * 1024u;
	while (cap < need)
		cap *= 2;
	void *q;
	if (posix_memalign(&q, SPOOL_ALIGN, cap) != 0)
		return -ENOMEM;
	if (b->blen)
		memcpy(q, b->buf, b->blen);
	free(b->buf);
	b->buf = q;
	b->bcap = cap;
	return 0;
}

/* b->len: what its writes will take, padding included. */
static void batch_len(struct spool_batch *b)
{
	b->len = small_len(b);
	for (unsigned i = 0; i < b->nbig; i++)
		b->len += b->big[i].hlen + b->big[i].dlen + b->big[i].padlen;
}

/* The filling batch, or a new one when this record does not fit in it. */
static struct spool_batch *batch_for(struct spool *sp, size_t size, bool big)
{
	struct spool_batch *b = sp->wait_tail;
	bool fits = b && b->len + align_up(size) + SPOOL_ALIGN <= SPOOL_BATCH_BYTES &&
	            (big ? b->nbig < SPOOL_BIGS : b->blen + size + SPOOL_ALIGN <= SPOOL_DIRECT_MAX);
	if (fits)
		return b;
	b = batch_new(sp);
	if (!b)
		return NULL;
	if (sp->wait_tail)
		sp->wait_tail->next = b;
	else
		sp->wait_head = b;
	sp->wait_tail = b;
	return b;
}

int spool_append(struct spool *sp, void *waiter, const struct smtp_srv_msg *m,
                 const char *client, uint64_t arrival)
{
	return spool_append_to(sp, waiter, sp->done, m, client, arrival);
}

int spool_note(struct spool *sp, const uint8_t *rec, size_t len)
{
	if (len == 0 || len > SPOOL_NOTE_MAX)
		return -EINVAL;
	struct spool_batch *b = batch_for(sp, len, false);
	if (!b || buf_room(b, len) < 0)
		return -ENOMEM;
	if (b->n == 0 && b->notes == 0)
		b->t_note_ms = sp->loop->now_ms;
	memcpy(b->buf + b->blen, rec, len);
	b->blen += len;
	b->notes++;
	sp->notes++;
	sp->space_used += len;
	batch_len(b);
	return 0;
}

void spool_stopping(struct spool *sp)
{
	sp->stopping = true;
}

int spool_append_to(struct spool *sp, void *waiter, spool_done_fn *done,
                    const struct smtp_srv_msg *m, const char *client, uint64_t arrival)
{
	size_t hlen = spoolrec_msg_head_size(m->qid, m->mail_from, client, m->rcpt, m->nrcpt,
	                                     m->len);
	if (hlen == 0)
		return -EINVAL;
	size_t size = hlen + m->len;
	bool big = size > SPOOL_COPY_MAX;
	struct spool_batch *b = batch_for(sp, size, big);
	if (!b || grow((void **)&b->waiters, &b->capw, b->n + 1, sizeof *b->waiters) < 0)
		return -ENOMEM;
	uint64_t nonce = spool_nonce(sp);
	struct spool_waiter *w = &b->waiters[b->n];
	*w = (struct spool_waiter){ .w = waiter, .done = done, .rel = b->blen, .big = -1,
	                            .len = size };
	snprintf(w->qid, sizeof w->qid, "%s", m->qid);
	if (!big) {
		if (buf_room(b, size) < 0)
			return -ENOMEM;
		uint8_t *data = b->buf + b->blen + hlen;
		spoolrec_scramble(data, m->data, m->len, nonce);   /* the copy, scrambled */
		spoolrec_encode_msg_head(b->buf + b->blen, b->bcap - b->blen, m->qid, arrival,
		                         m->flags, nonce, m->mail_from, client, m->rcpt, m->nrcpt,
		                         data, m->len);
		b->blen += size;
	} else {
		if (grow((void **)&b->heads, &b->hcap, b->hlen + hlen, 1) < 0)
			return -ENOMEM;
		/* Written from where it is: scrambled there (the data is the spool's until
		 * done(); nothing reads it after). */
		uint8_t *data = (uint8_t *)(uintptr_t)m->data;
		spoolrec_scramble(data, data, m->len, nonce);
		w->big = (int)b->nbig;
		struct spool_big *g = &b->big[b->nbig++];
		g->hoff = b->hlen;
		g->hlen = spoolrec_encode_msg_head(b->heads + b->hlen, b->hcap - b->hlen, m->qid,
		                                   arrival, m->flags, nonce, m->mail_from, client,
		                                   m->rcpt, m->nrcpt, data, m->len);
		g->data = m->data;
		g->dlen = m->len;
		g->padlen = pad_for(g->hlen + g->dlen);
		b->hlen += g->hlen;
	}
	b->n++;
	batch_len(b);
	sp->space_used += align_up(size);
	return 0;
}

int spool_append_rec(struct spool *sp, void *waiter, spool_done_fn *done, const uint8_t *rec,
                     size_t len)
{
	if (len == 0 || len > SPOOL_BATCH_BYTES / 2)
		return -EINVAL;
	bool big = len > SPOOL_COPY_MAX;
	struct spool_batch *b = batch_for(sp, len, big);
	if (!b || grow((void **)&b->waiters, &b->capw, b->n + 1, sizeof *b->waiters) < 0)
		return -ENOMEM;
	if (!big && buf_room(b, len) < 0)
		return -ENOMEM;
	struct spool_waiter *w = &b->waiters[b->n];
	/* qid left empty: a failed copy gets no VOID note (it would hide the original) */
	*w = (struct spool_waiter){ .w = waiter, .done = done, .rel = b->blen, .big = -1,
	                            .len = len };
	if (!big) {
		memcpy(b->buf + b->blen, rec, len);
		b->blen += len;
	} else {
		w->big = (int)b->nbig;
		struct spool_big *g = &b->big[b->nbig++];
		*g = (struct spool_big){ .hoff = b->hlen, .hlen = 0, .data = rec, .dlen = len,
		                         .padlen = pad_for(len) };
	}
	b->n++;
	batch_len(b);
	sp->space_used += align_up(len);
	return 0;
}

static void on_batch(struct net_loop *l, struct net_op *op, int res, unsigned flags);
static void reclaim_step(struct spool *sp);

/* Put b in the ring: its writes and the sync, one chain, one submission. */
static int batch_submit(struct spool *sp, struct spool_batch *b, struct spool_seg *seg)
{
	unsigned nw = (b->blen ? 1u : 0u) + b->nbig;
	bool sync = sp->sync && b->n > 0;   /* notes need no sync of their own */
	unsigned n = nw + (sync ? 1 : 0);
	struct io_uring_sqe *v[SPOOL_BIGS + 2];
	if (net_loop_sqes(sp->loop, v, n) < 0)
		return -EBUSY;
#ifdef RR_TEST_BUILD
	uint64_t submits = sp->loop->submits;   /* from the first SQE of the chain ... */
#endif
	uint64_t off = seg->end;
	unsigned k = 0;
	if (b->blen) {
		size_t dlen = small_len(b);
		if (dlen > b->blen)
			spoolrec_encode_pad(b->buf + b->blen, dlen - b->blen);
		io_uring_prep_write(v[k++], seg->dfd >= 0 ? seg->dfd : seg->fd, b->buf,
		                    (unsigned)dlen, off);
		off += dlen;
	}
	for (unsigned i = 0; i < b->nbig; i++) {
		struct spool_big *g = &b->big[i];
		unsigned ni = 2;
		g->iov[0] = (struct iovec){ b->heads + g->hoff, g->hlen };
		g->iov[1] = (struct iovec){ (void *)(uintptr_t)g->data, g->dlen };
		if (g->padlen) {
			spoolrec_pad_header(g->pad, g->padlen);
			g->iov[ni++] = (struct iovec){ g->pad, SPOOLREC_HDR_LEN };
			if (g->padlen > SPOOLREC_HDR_LEN)
				g->iov[ni++] = (struct iovec){ (void *)(uintptr_t)spool_zeros,
				                               g->padlen - SPOOLREC_HDR_LEN };
		}
		io_uring_prep_writev(v[k++], seg->fd, g->iov, ni, off);
		off += g->hlen + g->dlen + g->padlen;
	}
	if (sync)
		io_uring_prep_fsync(v[k], seg->fd, IORING_FSYNC_DATASYNC);
	for (unsigned i = 0; i < n; i++) {
		net_sqe_op(v[i], &b->op);
		if (i + 1 < n)
			v[i]->flags |= IOSQE_IO_LINK;
	}
#ifdef RR_TEST_BUILD
	/* ... to the last: the chain must reach the kernel in one submission, or the link is
	 * void (IOSQE_IO_LINK does not survive a submission boundary). */
	if (sp->loop->submits != submits) {
		fprintf(stderr, "core/spool: a linked chain was split by a submission\n");
		abort();
	}
#endif
	sp->linked_chains++;
	b->seg = seg;
	b->seg_seq = seg->seq;
	b->off = seg->end;
	b->pending = n;
	b->err = 0;
	b->written = 0;
	b->t_ns = spool_now_ns();
	seg->end = off;
	seg->inflight++;
	sp->inflight++;
	return 0;
}

/* The first waiting batch leaves the list. */
static void wait_pop(struct spool *sp)
{
	sp->wait_head = sp->wait_head->next;
	if (!sp->wait_head)
		sp->wait_tail = NULL;
}

void spool_flush(struct spool *sp)
{
	while (sp->wait_head && sp->inflight < SPOOL_INFLIGHT) {
		struct spool_batch *b = sp->wait_head;
		if (b->n == 0 && !sp->stopping && b->blen < SPOOL_NOTE_FLUSH_BYTES &&
		    sp->loop->now_ms < b->t_note_ms + SPOOL_NOTE_DELAY_MS)
			break;                      /* notes only: they wait for company */
		if (sp->failing && sp->loop->now_ms < sp->retry_at_ms) {
			/* The disk failed a moment ago: answer at once, try again later. */
			wait_pop(sp);
			sp->fail_batches++;
			sp->fail_batches_total++;
			sp->fail_messages += b->n;
			batch_finish(sp, b, false);
			continue;
		}
		struct spool_seg *seg = seg_for_batch(sp);
		if (!seg) {
			if (sp->failing && sp->loop->now_ms < sp->retry_at_ms)
				continue;               /* opening failed: the batch is answered above */
			break;                      /* being prepared: the batch waits */
		}
		int ret = batch_submit(sp, b, seg);
		if (ret == -EBUSY)
			break;                      /* the ring is full: next turn */
		wait_pop(sp);
		if (ret < 0) {
			spool_failed(sp, -ret, b->n);
			batch_finish(sp, b, false);
			continue;
		}
	}
	if (sp->cur)
		seg_prep_retry(sp, sp->cur);
	if (sp->next)
		seg_prep_retry(sp, sp->next);
	if (sp->low || sp->reserve_out)
		space_look(sp);                 /* states left once the space is back */
	reclaim_step(sp);
}

static void on_batch(struct net_loop *l, struct net_op *op, int res, unsigned flags)
{
	(void)l;
	(void)flags;
	struct spool_batch *b = batch_of(op);
	struct spool *sp = b->sp;
	struct spool_seg *seg = b->seg;
	/* The writes report their octets, the sync 0; a cancelled link reports -ECANCELED. */
	if (res < 0) {
		if (!b->err || b->err == -ECANCELED)
			b->err = res;
	} else {
		b->written += (size_t)res;
	}
	if (--b->pending > 0)
		return;
	bool ok = !b->err && b->written == b->len;
	sp->inflight--;
	seg->inflight--;
	if (ok) {
		if (b->off + b->len > seg->good)
			seg->good = b->off + b->len;
		struct spool_segent *e = spool_segtab_find(&sp->tab, sp->worker, seg->seq, true);
		if (e && seg->good > e->size)
			e->size = seg->good;
		uint64_t ns = spool_now_ns() - b->t_ns;
		sp->commits++;
		sp->messages += b->n;
		sp->bytes += b->len;
		sp->commit_ns += ns;
		if (ns > sp->commit_ns_max)
			sp->commit_ns_max = ns;
		sp->commit_hist[stats_bucket(stats_commit_le_us, STATS_COMMIT_BUCKETS, ns / 1000)]++;
		sp->batch_hist[stats_bucket(stats_batch_le, STATS_BATCH_BUCKETS, b->n)]++;
		spool_recovered(sp);
	} else {
		/* A short write (the disk is full) cancels the rest of the chain: say why. */
		int err = b->err && (b->err != -ECANCELED || b->written >= b->len) ? -b->err : ENOSPC;
		log_msg(sp->failing ? LOG_DEBUG : LOG_ERR,   /* failing: the count says it */
		        "event=spool_write_failed worker=%u seq=%llu error=\"%s\" written=%zu len=%zu",
		        sp->worker, (unsigned long long)seg->seq, strerror(err), b->written, b->len);
		seg->broken = true;
		spool_failed(sp, err, b->n);
		if (sp->cur == seg)
			seg_retire(sp, seg);        /* may free it: b->seg is not used after this */
	}
	b->seg = NULL;
	batch_finish(sp, b, ok);
	retiring_reap(sp);
	spool_flush(sp);                    /* what filled up meanwhile goes out at once */
}

/* ---- the segment table and the reclaim rule ----------------------------------------- */

/* Chain order: the segments of vanished worker indexes first, then this worker's own. */
static int segent_cmp(bool own, unsigned worker, uint64_t seq, const struct spool_segent *e)
{
	if (own != e->own)
		return own ? 1 : -1;
	if (worker != e->worker)
		return worker < e->worker ? -1 : 1;
	if (seq != e->seq)
		return seq < e->seq ? -1 : 1;
	return 0;
}

/* The first entry not before (own, worker, seq). */
static size_t segtab_lower(const struct spool_segtab *t, unsigned worker, uint64_t seq, bool own)
{
	size_t lo = 0, hi = t->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (segent_cmp(own, worker, seq, &t->v[mid]) > 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

int spool_segtab_add(struct spool_segtab *t, unsigned worker, uint64_t seq, uint64_t size,
                     bool own)
{
	size_t i = segtab_lower(t, worker, seq, own);
	if (i < t->n && segent_cmp(own, worker, seq, &t->v[i]) == 0)
		return 0;
	if (grow((void **)&t->v, &t->cap, t->n + 1, sizeof *t->v) < 0)
		return -ENOMEM;
	memmove(&t->v[i + 1], &t->v[i], (t->n - i) * sizeof *t->v);
	t->v[i] = (struct spool_segent){ .worker = worker, .seq = seq, .size = size, .own = own };
	t->n++;
	return 0;
}

struct spool_segent *spool_segtab_find(struct spool_segtab *t, unsigned worker, uint64_t seq,
                                       bool own)
{
	size_t i = segtab_lower(t, worker, seq, own);
	return i < t->n && segent_cmp(own, worker, seq, &t->v[i]) == 0 ? &t->v[i] : NULL;
}

void spool_segtab_del(struct spool_segtab *t, size_t i)
{
	if (i >= t->n)
		return;
	memmove(&t->v[i], &t->v[i + 1], (t->n - i - 1) * sizeof *t->v);
	t->n--;
}

void spool_segtab_fini(struct spool_segtab *t)
{
	free(t->v);
	*t = (struct spool_segtab){ 0 };
}

void spool_reclaim_rule(const struct spool_segent *v, size_t n, uint64_t idle_before,
                        struct spool_reclaim *out)
{
	size_t k = 0;
	while (k < n && v[k].live == 0 && !v[k].in_use && !v[k].removing)
		k++;
	out->remove = k;
	out->copy = -1;
	if (k == n || v[k].in_use || v[k].removing || v[k].live == 0 || v[k].idle_ms > idle_before)
		return;
	uint64_t freed = v[k].size;
	for (size_t j = k + 1; j < n && v[j].live == 0 && !v[j].in_use && !v[j].removing; j++)
		freed += v[j].size;
	/* a vanished worker index's segment: its messages are copied out at once, whatever
	 * it frees (see spool.h) */
	if (!v[k].own || v[k].live_bytes <= freed / SPOOL_COPY_GAIN)
		out->copy = (long)k;
}

/* ---- reclaim ---------------------------------------------------------------------- */

static void segent_name(const struct spool_segent *e, char *buf, size_t cap)
{
	snprintf(buf, cap, "w%u-%016llx.seg", e->worker, (unsigned long long)e->seq);
}

void spool_reclaim_enable(struct spool *sp, void (*copy)(void *ctx, unsigned worker,
                                                         uint64_t seq), void *ctx)
{
	sp->reclaim_copy = copy;
	sp->reclaim_ctx = ctx;
	sp->reclaim_on = true;
	sp->reclaim_dirty = true;
}

/* One segment of the directory: this worker's, or a vanished index's that it adopts
 * (those this process opened are in the table already: left alone). */
static int adopt_one(void *ctx, unsigned worker, uint64_t seq, uint64_t size)
{
	struct spool *sp = ctx;
	unsigned n = sp->nworkers ? sp->nworkers : 1;
	bool own = worker == sp->worker;
	if (!own && !(worker >= n && worker % n == sp->worker))
		return 0;                       /* another worker's */
	return spool_segtab_add(&sp->tab, worker, seq, size, own);
}

int spool_adopt_segments(struct spool *sp, const char *dir)
{
	sp->reclaim_dirty = true;
	return spooldir_segments(dir, adopt_one, sp);
}

void spool_seg_ref(struct spool *sp, unsigned worker, uint64_t seq, uint64_t len, int delta)
{
	struct spool_segent *e = spool_segtab_find(&sp->tab, worker, seq, worker == sp->worker);
	if (!e)
		return;
	if (delta > 0) {
		e->live++;
		e->live_bytes += len;
	} else if (e->live > 0) {
		e->live--;
		e->live_bytes -= e->live_bytes >= len ? len : e->live_bytes;
	}
	sp->reclaim_dirty = true;
}

/* The unlink of the oldest segment and the directory's fsync, one linked chain. */
static void on_unlink(struct net_loop *l, struct net_op *op, int res, unsigned flags)
{
	(void)l;
	(void)flags;
	struct spool *sp = spool_of_unlink(op);
	bool first = sp->unlink_pending == (sp->sync ? 2u : 1u);
	if (res < 0 && !sp->unlink_err && !(first && res == -ENOENT))
		sp->unlink_err = first ? res : 0;   /* the unlink failed (a failed fsync: gone anyway) */
	if (--sp->unlink_pending > 0)
		return;
	struct spool_segent *e = sp->tab.n && sp->tab.v[0].removing ? &sp->tab.v[0] : NULL;
	if (!e)
		return;
	if (sp->unlink_err) {
		e->removing = false;
		log_warn("event=spool_reclaim_failed worker=%u segment=%s error=\"%s\"", sp->worker,
		         sp->unlink_name, strerror(-sp->unlink_err));
		return;                         /* tried again when a count changes */
	}
	log_info("event=spool_reclaim worker=%u segment=%s size=%llu", sp->worker, sp->unlink_name,
	         (unsigned long long)e->size);
	sp->reclaimed++;
	sp->reclaimed_bytes += e->size;
	spool_segtab_del(&sp->tab, 0);
	sp->reclaim_dirty = true;
	spool_flush(sp);
}

/* What the rule allows, one step at a time (end of each loop turn, from spool_flush). */
static void reclaim_step(struct spool *sp)
{
	uint64_t now = sp->loop->now_ms;
	if (!sp->reclaim_on || sp->stopping || sp->unlink_pending)
		return;
	if (!sp->reclaim_dirty && now < sp->reclaim_look_ms + SPOOL_COPY_RETRY_MS)
		return;                         /* (looked at again each second: segments age) */
	sp->reclaim_dirty = false;
	sp->reclaim_look_ms = now;
	struct spool_reclaim r;
	spool_reclaim_rule(sp->tab.v, sp->tab.n, now > sp->copy_age_ms ? now - sp->copy_age_ms : 0,
	                   &r);
	if (r.remove > 0) {
		struct spool_segent *e = &sp->tab.v[0];
		struct io_uring_sqe *v[2];
		unsigned k = sp->sync ? 2 : 1;
		if (net_loop_sqes(sp->loop, v, k) < 0) {
			sp->reclaim_dirty = true;   /* the ring is full: next turn */
			return;
		}
		segent_name(e, sp->unlink_name, sizeof sp->unlink_name);
		io_uring_prep_unlinkat(v[0], sp->dirfd, sp->unlink_name, 0);
		net_sqe_op(v[0], &sp->unlink_op);
		if (k == 2) {
			v[0]->flags |= IOSQE_IO_LINK;
			io_uring_prep_fsync(v[1], sp->dirfd, 0);
			net_sqe_op(v[1], &sp->unlink_op);
		}
		e->removing = true;
		sp->unlink_pending = k;
		sp->unlink_err = 0;
		return;
	}
	/* Failing: a copy would be refused like the rest, unless the disk is full and the
	 * reserve is given back for it (see Free space in spool.h). */
	if (r.copy < 0 || (sp->failing && !reserve_release(sp, &sp->tab.v[r.copy]))) {
		sp->copy_asked = false;
		return;
	}
	const struct spool_segent *e = &sp->tab.v[r.copy];
	if (sp->copy_asked && sp->copy_worker == e->worker && sp->copy_seq == e->seq &&
	    now < sp->copy_asked_ms + SPOOL_COPY_RETRY_MS)
		return;                         /* asked already; its copies are on their way */
	sp->copy_asked = true;
	sp->copy_worker = e->worker;
	sp->copy_seq = e->seq;
	sp->copy_asked_ms = now;
	sp->copies_asked++;
	log_debug("event=spool_copy_forward worker=%u segment=w%u-%016llx live=%llu live_bytes=%llu size=%llu",
	          sp->worker, e->worker, (unsigned long long)e->seq, (unsigned long long)e->live,
	          (unsigned long long)e->live_bytes, (unsigned long long)e->size);
	if (sp->reclaim_copy)
		sp->reclaim_copy(sp->reclaim_ctx, e->worker, e->seq);
}

/* ---- life ------------------------------------------------------------------------- */

int spool_init(struct spool *sp, struct net_loop *l, const char *dir, unsigned worker,
               unsigned nworkers, bool sync, spool_done_fn *done)
{
	memset(sp, 0, sizeof *sp);
	sp->reserve_fd = -1;
	sp->loop = l;
	sp->worker = worker;
	sp->nworkers = nworkers;
	if (getrandom(&sp->nonce_state, sizeof sp->nonce_state, 0) != sizeof sp->nonce_state)
		return -EIO;
	sp->sync = sync;
	sp->done = done;
	sp->dirfd = -1;
	sp->seg_max = SPOOL_SEGMENT_MAX;
	sp->copy_age_ms = SPOOL_COPY_AGE_MS;
	sp->unlink_op.kind = SPOOL_OP_UNLINK;
#ifdef RR_TEST_BUILD
	/* Small segments, so that tests roll over (and reclaim) many of them quickly. */
	const char *e = getenv("RR_TEST_SEGMENT_MAX");
	unsigned long long v;
	if (e && sscanf(e, "%llu", &v) == 1 && v >= SPOOL_ALIGN && v <= SPOOL_SEGMENT_MAX)
		sp->seg_max = v;
	e = getenv("RR_TEST_COPY_AGE_MS");
	if (e && sscanf(e, "%llu", &v) == 1 && v <= SPOOL_COPY_AGE_MS)
		sp->copy_age_ms = v;
#endif
	sp->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (sp->dirfd < 0)
		return -errno;
	sp->seq = spooldir_last_seq(dir, worker);
	net_loop_handle(l, SPOOL_OP_BATCH, on_batch);
	net_loop_handle(l, SPOOL_OP_PREP, on_prep);
	net_loop_handle(l, SPOOL_OP_NAME, on_prep);
	net_loop_handle(l, SPOOL_OP_UNLINK, on_unlink);
	sp->cur = seg_open(sp);             /* prepared before the first message comes */
	return 0;
}

void spool_fini(struct spool *sp)
{
	/* Callers wait for spool_idle(); anything still waiting is answered 451. */
	while (sp->wait_head) {
		struct spool_batch *b = sp->wait_head;
		sp->wait_head = b->next;
		batch_finish(sp, b, false);
	}
	sp->wait_tail = NULL;
	if (sp->next)
		seg_retire(sp, sp->next);
	if (sp->cur)
		seg_retire(sp, sp->cur);
	/* The loop is gone: nothing more will complete. */
	while (sp->retiring) {
		struct spool_seg *seg = sp->retiring;
		sp->retiring = seg->next;
		seg_finish(sp, seg);
	}
	while (sp->free) {
		struct spool_batch *b = sp->free;
		sp->free = b->next;
		batch_free(b);
	}
	if (sp->dirfd >= 0)
		close(sp->dirfd);
	sp->dirfd = -1;
	if (sp->reserve_out)
		atomic_fetch_sub(&spool_reserves_out, 1);
	sp->reserve_out = false;
	if (sp->reserve_fd >= 0)
		close(sp->reserve_fd);          /* kept on disk for the next start */
	sp->reserve_fd = -1;
	spool_segtab_fini(&sp->tab);
}

bool spool_idle(const struct spool *sp)
{
	if (sp->wait_head || sp->inflight || sp->unlink_pending)
		return false;
	for (const struct spool_seg *s = sp->retiring; s; s = s->next)
		if (seg_busy(s))
			return false;
	return !(sp->cur && sp->cur->prep_pending) && !(sp->next && sp->next->prep_pending);
}
