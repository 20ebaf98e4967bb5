/* net/stream — see stream.h.
 *
 * The recv side has three states: armed (a recv, multishot or single-shot, is in the
 * ring), cancelling (a cancel was asked for and the recv's last completion has not come
 * yet) and idle.
 * It is armed at every flush where the stream wants input: not closing, not paused.
 * Paused means: in_pause octets of input are kept, or the pending output is at out_hwm;
 * the cancel is asked for the moment a stream pauses. Completions that arrive while
 * cancelling are kept like any other input (bounded by in_max). */
#include "net/stream.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define STREAM_OUT_HWM (64u * 1024u)
#define STREAM_IN_PAUSE (128u * 1024u)
#define STREAM_IN_MAX (256u * 1024u)

static struct net_stream *stream_of_stall(struct timer *t)
{
	return (struct net_stream *)(void *)((char *)t - offsetof(struct net_stream, stall));
}

static void stream_stalled(struct timer *t);

void net_stream_init(struct net_stream *s, struct net_loop *l, int fd,
                     const struct net_stream_ops *ops)
{
	memset(s, 0, sizeof *s);
	s->loop = l;
	s->ops = ops;
	s->fd = fd;
	s->recv_op.kind = NET_OP_RECV;
	s->send_op.kind = NET_OP_SEND;
	s->out_hwm = STREAM_OUT_HWM;
	s->in_pause = STREAM_IN_PAUSE;
	s->in_max = STREAM_IN_MAX;
	s->stall.fire = stream_stalled;
	s->last_activity_ms = s->last_progress_ms = l->now_ms;
}

void net_stream_dirty(struct net_stream *s)
{
	if (s->dirty || s->released)
		return;
	s->dirty = 1;
	s->dirty_next = s->loop->dirty;
	s->loop->dirty = s;
}

void net_stream_start(struct net_stream *s)
{
	s->started = 1;
	net_stream_dirty(s);             /* the flush arms the recv */
}

/* ---- output ---------------------------------------------------------------------- */

/* The stall clock runs from the moment output is waiting, not from the last send. */
static void stream_output_starts(struct net_stream *s)
{
	if (net_stream_pending(s) == 0)
		s->last_progress_ms = s->loop->now_ms;
}

static int sendq_add(struct net_sendq *q, const uint8_t *ref, size_t off, size_t n)
{
	struct net_chunk *last = q->n ? &q->v[q->n - 1] : NULL;
	if (!ref && last && !last->ref && last->off + last->len == off) {
		last->len += n;              /* copied bytes right behind copied bytes */
	} else {
		if (q->n == q->cap) {
			size_t cap = q->cap ? q->cap * 2 : 4;
			struct net_chunk *v = realloc(q->v, cap * sizeof *v);
			if (!v)
				return -ENOMEM;
			q->v = v;
			q->cap = cap;
		}
		q->v[q->n++] = (struct net_chunk){ ref, off, n };
	}
	q->total += n;
	return 0;
}

static void sendq_reset(struct net_sendq *q)
{
	q->bytes.len = 0;
	q->n = 0;
	q->total = 0;
}

static void sendq_fini(struct net_sendq *q)
{
	buf_fini(&q->bytes);
	free(q->v);
	memset(q, 0, sizeof *q);
}

/* Queue n octets: copied (ref false) or borrowed. */
static int stream_queue(struct net_stream *s, const void *p, size_t n, bool ref)
{
	if (s->closing && s->shut)
		return -EPIPE;
	if (n == 0)
		return 0;
	stream_output_starts(s);
	size_t off = s->q.bytes.len;
	if (!ref && buf_append(&s->q.bytes, p, n) < 0)
		return -ENOMEM;
	if (sendq_add(&s->q, ref ? p : NULL, off, n) < 0) {
		s->q.bytes.len = off;
		return -ENOMEM;
	}
	net_stream_dirty(s);
	return 0;
}

static void stream_lost(struct net_stream *s, int res);

/* The filter's ciphertext (handshake, records, alerts) to the send queue. */
static void tls_out(struct net_stream *s)
{
	size_t n;
	const uint8_t *p = net_tls_out(s->tls, &n);
	if (n == 0)
		return;
	int ret = stream_queue(s, p, n, false);
	net_tls_out_used(s->tls, n);
	if (ret == -ENOMEM)
		stream_lost(s, -ENOMEM);
}

/* Plaintext out through the filter; before the handshake's end it waits in tls_pend. */
static int tls_write(struct net_stream *s, const void *p, size_t n)
{
	if (s->closing && s->shut)
		return -EPIPE;
	if (n == 0)
		return 0;
	stream_output_starts(s);
	if (!s->tls_up)
		return buf_append(&s->tls_pend, p, n) < 0 ? -ENOMEM : 0;
	int ret = net_tls_write(s->tls, p, n);
	tls_out(s);
	return ret;
}

int net_stream_write(struct net_stream *s, const void *p, size_t n)
{
	if (s->tls)
		return tls_write(s, p, n);
	return stream_queue(s, p, n, false);
}

int net_stream_write_ref(struct net_stream *s, const void *p, size_t n)
{
	if (s->tls)
		return tls_write(s, p, n);   /* encrypted now: a copy */
	return stream_queue(s, p, n, true);
}

size_t net_stream_pending(const struct net_stream *s)
{
	return s->tx.total - s->tx_sent + s->q.total + s->tls_pend.len;
}

static bool stream_out_high(const struct net_stream *s)
{
	return net_stream_pending(s) >= s->out_hwm;
}

/* Hand tx (or, when tx is done, the queue) to the ring. */
static void stream_send(struct net_stream *s)
{
	if (s->sending || s->shut)
		return;
	if (s->tx_sent == s->tx.total) {
		if (s->q.total == 0)
			return;
		struct net_sendq t = s->tx;  /* swap: the queue goes in flight */
		s->tx = s->q;
		s->q = t;
		sendq_reset(&s->q);
		s->tx_head = 0;
		s->tx_head_off = 0;
		s->tx_sent = 0;
	}
	size_t skip = s->tx_sent - s->tx_head_off, n = 0;
	for (size_t i = s->tx_head; i < s->tx.n && n < NET_STREAM_IOV; i++) {
		const struct net_chunk *c = &s->tx.v[i];
		const uint8_t *base = c->ref ? c->ref : s->tx.bytes.p + c->off;
		s->iov[n].iov_base = (void *)(uintptr_t)(base + skip);
		s->iov[n].iov_len = c->len - skip;
		skip = 0;
		n++;
	}
	struct io_uring_sqe *sqe = net_loop_sqe(s->loop, &s->send_op);
	if (!sqe) {
		net_stream_dirty(s);         /* try again at the next flush */
		return;
	}
	if (n == 1) {
		io_uring_prep_send(sqe, s->fd, s->iov[0].iov_base, s->iov[0].iov_len, MSG_NOSIGNAL);
	} else {
		memset(&s->msg, 0, sizeof s->msg);
		s->msg.msg_iov = s->iov;
		s->msg.msg_iovlen = n;
		io_uring_prep_sendmsg(sqe, s->fd, &s->msg, MSG_NOSIGNAL);
	}
	s->sending = 1;
	if (s->stall_ms && !timer_armed(&s->stall))
		timer_arm(&s->loop->wheel, &s->stall, s->stall_ms);
}

static void stream_cancel_recv(struct net_stream *s);

static void stream_lost(struct net_stream *s, int res)
{
	if (s->lost_said || s->closing)
		return;
	s->lost_said = 1;
	if (s->ops->lost)
		s->ops->lost(s, res);
	if (!s->closing && res == 0)
		net_stream_close(s);         /* the peer is done sending: what is queued goes out */
	else if (!s->closing)
		net_stream_abort(s);
}

/* The peer half-closed: it is told once everything it sent before has been offered and
 * the owner does not hold the input (a reply still to come for it goes out first). */
static void stream_check_eof(struct net_stream *s)
{
	if (s->eof && !s->held && !s->lost_said && !s->closing)
		stream_lost(s, 0);
}

void net_stream_on_send(struct net_stream *s, int res)
{
	s->sending = 0;
	net_stream_dirty(s);
	if (res <= 0) {
		s->tx_sent = s->tx.total;    /* nothing of it will go out any more */
		sendq_reset(&s->q);
		stream_lost(s, res == 0 ? -EPIPE : res);
		return;
	}
	s->tx_sent += (size_t)res;
	s->out_total += (size_t)res;
	s->last_activity_ms = s->last_progress_ms = s->loop->now_ms;
	/* Step over the chunks that are now wholly sent. */
	while (s->tx_head < s->tx.n && s->tx_head_off + s->tx.v[s->tx_head].len <= s->tx_sent)
		s->tx_head_off += s->tx.v[s->tx_head++].len;
	if (net_stream_pending(s) < s->out_hwm / 4)
		s->offer = 1;                /* below the low-water mark: input may go on */
}

/* A stream whose output has not moved for stall_ms: the peer does not read. */
static void stream_stalled(struct timer *t)
{
	struct net_stream *s = stream_of_stall(t);
	uint64_t now = s->loop->now_ms;
	if (net_stream_pending(s) == 0 || s->shut)
		return;
	if (now < s->last_progress_ms + s->stall_ms) {
		timer_arm(&s->loop->wheel, &s->stall, s->last_progress_ms + s->stall_ms - now);
		return;
	}
	stream_lost(s, -ETIMEDOUT);
	net_stream_abort(s);             /* (when it was closing already, lost said nothing) */
}

/* ---- input ----------------------------------------------------------------------- */

/* Input kept: ciphertext (or plaintext without TLS) in s->in, plaintext in the filter. */
static size_t stream_kept(const struct net_stream *s)
{
	size_t n = 0;
	if (s->tls)
		(void)net_tls_plain(s->tls, &n);
	return s->in.len + n;
}

static bool stream_paused(const struct net_stream *s)
{
	return stream_out_high(s) || stream_kept(s) >= s->in_pause;
}

/* ---- TLS ------------------------------------------------------------------------- */

static void tls_wait_unlink(struct net_stream *s)
{
	if (!s->tls_waiting)
		return;
	for (struct net_stream **pp = &s->loop->tls_wait; *pp; pp = &(*pp)->tls_wait_next) {
		if (*pp == s) {
			*pp = s->tls_wait_next;
			break;
		}
	}
	s->tls_waiting = 0;
	s->tls_wait_next = NULL;
}

/* The budget of this turn is spent: fed again after the loop's next refill. */
static void tls_wait(struct net_stream *s)
{
	if (s->tls_waiting)
		return;
	s->tls_waiting = 1;
	s->tls_wait_next = s->loop->tls_wait;
	s->loop->tls_wait = s;
}

static void tls_established(struct net_stream *s)
{
	s->tls_up = 1;
	if (s->tls_pend.len > 0) {
		int ret = net_tls_write(s->tls, s->tls_pend.p, s->tls_pend.len);
		buf_consume(&s->tls_pend, s->tls_pend.len);
		if (ret < 0) {
			stream_lost(s, ret == -ENOMEM ? -ENOMEM : -EPROTO);
			return;
		}
	}
	tls_out(s);
	if (s->ops->secure)
		s->ops->secure(s);
}

/* Offer the filter's plaintext; true when the owner used some. */
static bool tls_offer(struct net_stream *s)
{
	size_t n;
	const uint8_t *p = net_tls_plain(s->tls, &n);
	if (n == 0 || s->held || s->closing || stream_out_high(s))
		return false;
	size_t used = s->ops->input(s, p, n);
	if (s->closing || !s->tls)
		return false;
	net_tls_plain_used(s->tls, used <= n ? used : n);
	return used > 0;
}

/* Feed the kept ciphertext, offer the plaintext, as long as either moves. */
static void tls_run(struct net_stream *s)
{
	s->offer = 0;
	for (;;) {
		bool used = tls_offer(s);
		if (s->closing || s->released)
			return;
		bool feed_eof = s->eof && !s->tls_done;
		if (s->tls_waiting || s->tls_done ||
		    (s->in.len == 0 && !(s->tls_up && used) && !feed_eof && !s->tls_kick))
			return;
		if (feed_eof)
			net_tls_peer_eof(s->tls);
		size_t before, after, taken = 0;
		(void)net_tls_plain(s->tls, &before);
		enum net_tls_res r = net_tls_feed(s->tls, s->in.p, s->in.len, &taken,
		                                  &s->loop->tls_budget);
		buf_consume(&s->in, taken);
		if (r != NET_TLS_BUDGET)
			s->tls_kick = 0;         /* a client's first step ran */
		(void)net_tls_plain(s->tls, &after);
		if (!s->tls_up && net_tls_established(s->tls))
			tls_established(s);
		tls_out(s);
		if (s->closing)
			return;
		switch (r) {
		case NET_TLS_BUDGET:
			tls_wait(s);
			return;
		case NET_TLS_ERR:
			s->tls_done = 1;
			stream_lost(s, -EPROTO);
			return;
		case NET_TLS_CLOSED:
			s->tls_done = 1;         /* close_notify, or EOF after a whole record */
			s->eof = 1;
			break;
		case NET_TLS_OK:
		case NET_TLS_AGAIN:
			break;
		}
		if (taken == 0 && after == before && !used && !s->tls_done && !s->tls_kick)
			return;
	}
}

void net_stream_tls(struct net_stream *s, struct net_tls *t)
{
	s->tls = t;
	s->tls_kick = net_tls_is_client(t);
	s->offer = 1;                    /* kept octets, if any, are ciphertext now */
	net_stream_dirty(s);
}

/* Offer what is kept in s->in (all of it: an owner that needs more must see more). */
static void stream_offer(struct net_stream *s)
{
	s->offer = 0;
	if (s->tls) {
		tls_run(s);
		return;
	}
	if (s->in.len == 0 || s->held || s->closing || stream_out_high(s))
		return;
	size_t used = s->ops->input(s, s->in.p, s->in.len);
	buf_consume(&s->in, used <= s->in.len ? used : s->in.len);
	if (s->tls && !s->closing)
		tls_run(s);                  /* the owner switched: the rest is ciphertext */
}

/* New bytes from the ring. Offered straight from the provided buffer when nothing is
 * kept and the owner takes input; what is left is kept. */
static void stream_input(struct net_stream *s, const uint8_t *p, size_t n)
{
	s->in_total += n;
	s->last_activity_ms = s->loop->now_ms;
	if (s->closing)
		return;
	if (s->tls) {
		s->offer = 1;                /* ciphertext: always through s->in */
	} else if (s->in.len == 0 && !s->held && !stream_out_high(s)) {
		size_t used = s->ops->input(s, p, n);
		if ((used >= n && !s->tls) || s->closing)
			return;
		used = used < n ? used : n;
		p += used;
		n -= used;
		if (s->tls)
			s->offer = 1;        /* the owner switched: the rest is ciphertext */
	} else if (s->in.len > 0) {
		s->offer = 1;                /* older bytes were waiting for these */
	}
	if (s->in.len + n > s->in_max || buf_append(&s->in, p, n) < 0) {
		stream_lost(s, -ENOBUFS);
		return;
	}
	if (s->offer)
		stream_offer(s);
	/* Paused: cancel the recv now, not at the end of the turn, so that what the kernel
	 * reads for us after this stays small. */
	if (s->recv_armed && !s->recv_cancel && stream_paused(s))
		stream_cancel_recv(s);
}

void net_stream_on_recv(struct net_stream *s, int res, unsigned flags)
{
	if (!(flags & IORING_CQE_F_MORE)) {
		s->recv_armed = 0;
		s->recv_cancel = 0;
	}
	if (res > 0) {
		unsigned bid = flags >> IORING_CQE_BUFFER_SHIFT;
		stream_input(s, uring_bufs_ptr(&s->loop->bufs, bid), (size_t)res);
		uring_bufs_recycle(&s->loop->bufs, bid);
	} else if (res == -ENOBUFS) {
		s->loop->enobufs++;          /* re-armed at the flush, buffers back by then */
	} else if (res == 0) {
		s->eof = 1;                  /* no more input; checked at the flush (with TLS,
		                                after the filter was told) */
		s->offer = 1;
	} else if (res != -ECANCELED) {  /* (ECANCELED: our own pause or close) */
		stream_lost(s, res);
	}
	net_stream_dirty(s);
}

void net_stream_hold(struct net_stream *s)
{
	s->held = 1;
}

void net_stream_resume(struct net_stream *s)
{
	if (!s->held)
		return;
	s->held = 0;
	s->offer = 1;
	net_stream_dirty(s);
}

void net_stream_reoffer(struct net_stream *s)
{
	s->offer = 1;
	net_stream_dirty(s);
}

void net_stream_discard_input(struct net_stream *s)
{
	s->in.len = 0;
	if (s->tls)
		net_tls_discard(s->tls);
}

/* ---- close ----------------------------------------------------------------------- */

/* shutdown() ends the multishot recv and any send in flight; on a socket that never got
 * connected it fails, and the recv is cancelled instead. */
static void stream_shutdown(struct net_stream *s)
{
	if (s->shut)
		return;
	s->shut = 1;
	if (shutdown(s->fd, SHUT_RDWR) < 0 && s->recv_armed && !s->recv_cancel)
		stream_cancel_recv(s);
}

void net_stream_close(struct net_stream *s)
{
	if (s->closing)
		return;
	s->closing = 1;
	s->in.len = 0;
	if (s->tls) {
		s->tls_pend.len = 0;         /* no handshake: nothing of it can go out */
		if (s->tls_up) {
			net_tls_close(s->tls);  /* close_notify behind the queued output */
			tls_out(s);
		}
	}
	net_stream_dirty(s);
}

void net_stream_abort(struct net_stream *s)
{
	s->closing = 1;
	s->in.len = 0;
	s->tls_pend.len = 0;
	sendq_reset(&s->q);
	stream_shutdown(s);
	net_stream_dirty(s);
}

/* Everything the stream owns, given back; the owner's memory is its own business. */
static void stream_drop(struct net_stream *s)
{
	timer_cancel(&s->stall);
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
	buf_fini(&s->in);
	sendq_fini(&s->tx);
	sendq_fini(&s->q);
	tls_wait_unlink(s);
	net_tls_free(s->tls);
	s->tls = NULL;
	buf_fini(&s->tls_pend);
	s->released = 1;
}

static void stream_release(struct net_stream *s)
{
	stream_drop(s);
	s->ops->release(s);              /* may free s */
}

void net_stream_fini(struct net_stream *s)
{
	if (!s->released)
		stream_drop(s);
}

/* ---- the flush (end of a loop turn) ---------------------------------------------- */

/* Multishot only for bulk input that makes no output (the owner says when: SMTP DATA)
 * and while nothing is kept or piling up; otherwise one buffer at a time, so the kernel
 * never reads a burst ahead for a client whose commands make replies (a multishot recv
 * can hand over megabytes in one turn, long before a pause takes effect). */
static bool stream_careful(const struct net_stream *s)
{
	return !s->bulk || stream_kept(s) > 0 || s->held || net_stream_pending(s) >= s->out_hwm / 4;
}

void net_stream_bulk(struct net_stream *s, bool on)
{
	if (s->bulk == on)
		return;
	s->bulk = on;
	if (!on && s->recv_armed && s->recv_multi && !s->recv_cancel)
		stream_cancel_recv(s);       /* back to one buffer at a time */
	net_stream_dirty(s);
}

static void stream_arm_recv(struct net_stream *s)
{
	struct io_uring_sqe *sqe = net_loop_sqe(s->loop, &s->recv_op);
	if (!sqe) {
		net_stream_dirty(s);
		return;
	}
	s->recv_multi = !stream_careful(s);
	if (s->recv_multi)
		io_uring_prep_recv_multishot(sqe, s->fd, NULL, 0, 0);
	else
		io_uring_prep_recv(sqe, s->fd, NULL, 0, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = s->loop->bufs.bgid;
	s->recv_armed = 1;
}

static void stream_cancel_recv(struct net_stream *s)
{
	struct io_uring_sqe *sqe = net_loop_sqe(s->loop, NULL);
	if (!sqe)
		return;                      /* paused a little later, then */
	io_uring_prep_cancel64(sqe, (uint64_t)(uintptr_t)&s->recv_op, 0);
	s->recv_cancel = 1;
}

void net_stream_flush(struct net_stream *s)
{
	if (s->released)
		return;
	if (s->offer && !s->closing && (s->in.len > 0 || s->tls) && !s->held)
		stream_offer(s);
	s->offer = 0;
	stream_check_eof(s);
	stream_send(s);
	if (s->closing) {
		if (!s->sending && net_stream_pending(s) == 0)
			stream_shutdown(s);
		/* Not while it is in the dirty list again (marked during this flush): the
		 * next pass of the flush comes back to it and releases it then. */
		if (s->shut && !s->recv_armed && !s->sending && !s->dirty)
			stream_release(s);
		return;
	}
	if (!s->started || s->eof)
		return;
	bool paused = stream_paused(s);
	if (!s->recv_armed && !paused)
		stream_arm_recv(s);
	else if (s->recv_armed && paused && !s->recv_cancel)
		stream_cancel_recv(s);
}
