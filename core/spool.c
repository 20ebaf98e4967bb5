/* core/spool — see spool.h. */
#include "core/spool.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "core/spooldir.h"
#include "proto/spoolrec.h"

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

static int segment_open(struct spool *sp)
{
	if (sp->fd >= 0)
		close(sp->fd);
	sp->fd = -1;
	char name[64];
	sp->seq++;
	snprintf(name, sizeof name, "w%u-%016llx.seg", sp->worker, (unsigned long long)sp->seq);
	int fd = openat(sp->dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		int e = errno;
		log_err("event=spool_open_failed worker=%u segment=%s error=\"%s\"", sp->worker,
		        name, strerror(e));
		return -e;
	}
	/* The new name must be durable before any record in it is acknowledged. */
	if (sp->sync && fsync(sp->dirfd) < 0) {
		int e = errno;
		close(fd);
		unlinkat(sp->dirfd, name, 0);
		return -e;
	}
	sp->fd = fd;
	sp->size = 0;
	sp->broken = false;
	log_info("event=spool_segment worker=%u segment=%s", sp->worker, name);
	return 0;
}

int spool_init(struct spool *sp, struct io_uring *ring, const char *dir, unsigned worker,
               bool sync, void (*done)(void *waiter, bool ok))
{
	memset(sp, 0, sizeof *sp);
	sp->ring = ring;
	sp->worker = worker;
	sp->sync = sync;
	sp->done = done;
	sp->fd = -1;
	sp->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (sp->dirfd < 0)
		return -errno;
	sp->seq = spooldir_last_seq(dir, worker);
	return 0;
}

void spool_fini(struct spool *sp)
{
	for (int i = 0; i < 2; i++) {
		free(sp->batch[i].buf);
		free(sp->batch[i].waiters);
	}
	if (sp->fd >= 0)
		close(sp->fd);
	if (sp->dirfd >= 0)
		close(sp->dirfd);
	sp->fd = sp->dirfd = -1;
}

int spool_append(struct spool *sp, void *waiter, const struct smtp_srv_msg *m,
                 const char *client, uint64_t arrival)
{
	struct spool_batch *b = &sp->batch[sp->fill];
	size_t need = spoolrec_msg_size(m->qid, m->mail_from, client, m->rcpt, m->nrcpt, m->len);
	if (need == 0 || b->len + need > SPOOL_BATCH_MAX)
		return -EAGAIN;
	if (grow((void **)&b->buf, &b->cap, b->len + need, 1) < 0 ||
	    grow((void **)&b->waiters, &b->capwait, b->nwait + 1, sizeof(void *)) < 0)
		return -ENOMEM;
	b->len += spoolrec_encode_msg(b->buf + b->len, b->cap - b->len, m->qid, arrival,
	                              m->flags, m->mail_from, client, m->rcpt, m->nrcpt,
	                              m->data, m->len);
	b->waiters[b->nwait++] = waiter;
	return 0;
}

static void batch_finish(struct spool *sp, struct spool_batch *b, bool ok)
{
	if (ok) {
		sp->commits++;
		sp->messages += b->nwait;
	}
	for (size_t i = 0; i < b->nwait; i++)
		sp->done(b->waiters[i], ok);
	b->len = 0;
	b->nwait = 0;
	b->write_res = b->sync_res = 0;
}

void spool_flush(struct spool *sp)
{
	struct spool_batch *b = &sp->batch[sp->fill];
	if (sp->inflight || b->nwait == 0)
		return;
	if ((sp->fd < 0 || sp->broken || sp->size >= SPOOL_SEGMENT_MAX) && segment_open(sp) < 0) {
		batch_finish(sp, b, false);
		return;
	}
	struct io_uring_sqe *sqe = uring_sqe(sp->ring);
	io_uring_prep_write(sqe, sp->fd, b->buf, (unsigned)b->len, sp->size);
	io_uring_sqe_set_data64(sqe, uring_ud(b, URING_OP_SPOOL_WRITE));
	b->pending = 1;
	b->write_res = b->sync_res = 0;
	if (sp->sync) {
		sqe->flags |= IOSQE_IO_LINK;
		sqe = uring_sqe(sp->ring);
		io_uring_prep_fsync(sqe, sp->fd, IORING_FSYNC_DATASYNC);
		io_uring_sqe_set_data64(sqe, uring_ud(b, URING_OP_SPOOL_SYNC));
		b->pending = 2;
	}
	sp->inflight = true;
	sp->fill ^= 1;
}

void spool_complete(struct spool *sp, void *batch, enum uring_op op, int res)
{
	struct spool_batch *b = batch;
	if (op == URING_OP_SPOOL_WRITE)
		b->write_res = res;
	else
		b->sync_res = res;
	if (--b->pending > 0)
		return;
	bool ok = b->write_res >= 0 && (size_t)b->write_res == b->len && b->sync_res >= 0;
	if (ok) {
		sp->size += b->len;
	} else {
		sp->broken = true;
		log_err("event=spool_write_failed worker=%u seq=%llu write=%d sync=%d len=%zu",
		        sp->worker, (unsigned long long)sp->seq, b->write_res, b->sync_res, b->len);
	}
	sp->inflight = false;
	batch_finish(sp, b, ok);
	spool_flush(sp);      /* what filled up meanwhile goes out at once */
}

bool spool_idle(const struct spool *sp)
{
	return !sp->inflight && sp->batch[sp->fill].nwait == 0;
}
