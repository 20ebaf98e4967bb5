/* net/stream — one TCP conversation on a net/loop: input from a multishot recv (provided
 * buffers), output through a send queue, back-pressure both ways, and a close that waits
 * for the ring to let go before the owner frees anything. The owner (an SMTP server
 * session, ringblast's client, the delivery client) embeds the struct and gives an ops
 * table; the stream never knows what the bytes mean.
 *
 * Input. New bytes are offered to ops->input(), which returns how many it used. What
 * it leaves is kept (in s->in) and offered again, with whatever arrives after it, when
 * more arrives — unless the owner called net_stream_hold() (e.g. while its message is
 * being committed), in which case it is offered again after net_stream_resume(). An
 * owner that produces output should stop using input once net_stream_pending() reaches
 * out_hwm (and return what it used): the rest is offered when the output has drained.
 * Kept input pauses the recv at in_pause octets (TCP then pushes back on the client).
 * While input is kept or output piles up, the recv takes one buffer at a time instead of
 * being multishot; what the kernel had read before a pause took effect is kept up to
 * in_max octets, and a client that gets past that is cut (ops->lost(-ENOBUFS)).
 *
 * Output. net_stream_write() copies; net_stream_write_ref() queues borrowed bytes that
 * must stay valid until they are sent (net_stream_pending() reaches 0) or the stream is
 * released. One send is in flight at a time; what is queued meanwhile goes out with the
 * next one. When the pending output reaches out_hwm, no input is offered and the recv
 * is cancelled (a client that pipelines and never reads stops being read, so memory
 * stays bounded); below out_hwm / 4 it resumes. A stream whose pending output has not
 * moved for stall_ms (0: never) is aborted and ops->lost() gets -ETIMEDOUT.
 *
 * Close. net_stream_close(): nothing more is offered; the queued output is sent, then
 * shutdown(SHUT_RDWR) ends the recv; once no operation of the ring refers to the stream,
 * the socket is closed and ops->release() is called (from the loop's flush, never from
 * inside another callback). net_stream_abort(): the same without sending what is queued.
 * An error on the socket calls ops->lost() once (-errno) and aborts unless the owner
 * closed. EOF (the peer half-closed, or closed) calls ops->lost(s, 0) once everything
 * the peer sent before has been offered and the owner does not hold its input — so a
 * reply the owner still owes for it can go out first — and then closes (gracefully)
 * unless the owner did something else.
 *
 * TLS. net_stream_tls() puts a filter (net/tls) in the stream, which owns it from then
 * on: received octets are ciphertext fed to the filter, and ops->input() sees only the
 * plaintext that comes out of it — with the same rules as above: what the owner leaves
 * is kept (as plaintext, in the filter) and offered again after net_stream_resume() or
 * when more arrives; ciphertext the filter cannot take yet is kept and counts towards
 * in_pause/in_max. Writes are encrypted at once (write_ref copies then) and the
 * ciphertext goes out through the send queue; what is written before the handshake is
 * done (an implicit-TLS banner) waits and is encrypted once it is. Handshake steps draw
 * on the loop's budget (net/loop): a stream refused waits for the next turn. The
 * handshake's end calls ops->secure() (optional); a TLS failure calls
 * ops->lost(-EPROTO) (net_tls_error(s->tls) says why); the peer's close_notify is an EOF.
 * net_stream_close() sends close_notify after the queued output. Switching in the middle
 * of an offer (from ops->input()): the octets of the offer the owner does not use are
 * ciphertext from then on — right for implicit TLS behind a PROXY header (use the header
 * only); after STARTTLS the owner uses (drops) everything it was offered, so nothing
 * pipelined behind the command reaches the filter (CVE-2011-0411).
 *
 * Every activity (input octets, output progress) sets last_activity_ms, which owners use
 * for their idle timeouts. */
#ifndef NET_STREAM_H
#define NET_STREAM_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "net/buf.h"
#include "net/loop.h"
#include "net/timer.h"
#include "net/tls.h"

#define NET_STREAM_IOV 8                    /* iovecs per send at most (more go in the next) */

struct net_stream;

struct net_stream_ops {
	size_t (*input)(struct net_stream *s, const uint8_t *p, size_t n);
	void (*lost)(struct net_stream *s, int res);
	void (*release)(struct net_stream *s);
	void (*secure)(struct net_stream *s);   /* optional: the TLS handshake is done */
};

/* A piece of output: borrowed bytes (ref) or bytes of the queue's own buffer (ref NULL). */
struct net_chunk {
	const uint8_t *ref;
	size_t off, len;
};

struct net_sendq {
	struct buf bytes;                   /* copied output */
	struct net_chunk *v;
	size_t n, cap;
	size_t total;                       /* octets in v */
};

struct net_stream {
	struct net_loop *loop;
	const struct net_stream_ops *ops;
	int fd;
	struct net_op recv_op, send_op;
	struct net_stream *dirty_next;
	struct buf in;                      /* received, not yet used by the owner */
	struct net_sendq tx, q;             /* in flight; queued behind it */
	size_t tx_head;                     /* chunks of tx fully sent ... */
	size_t tx_head_off;                 /* ... and their octets */
	size_t tx_sent;                     /* octets of tx sent */
	struct iovec iov[NET_STREAM_IOV];
	struct msghdr msg;
	struct timer stall;                 /* output that does not move */
	size_t out_hwm, in_pause, in_max;   /* see above; in_max: a hard cap, then lost(-ENOBUFS) */
	unsigned stall_ms;
	uint64_t last_activity_ms, last_progress_ms;
	uint64_t in_total, out_total;       /* octets received / sent */
	struct net_tls *tls;                /* the filter, or NULL (plaintext) */
	struct buf tls_pend;                /* plaintext written before the handshake ended */
	struct net_stream *tls_wait_next;   /* the loop's list of streams waiting for budget */
	unsigned tls_waiting : 1, tls_up : 1, tls_done : 1, tls_kick : 1;
	unsigned dirty : 1, recv_armed : 1, recv_cancel : 1, sending : 1, held : 1,
	         offer : 1, closing : 1, shut : 1, lost_said : 1, released : 1, started : 1,
	         eof : 1, bulk : 1, recv_multi : 1;
};

/* Take over fd (non-blocking not required: the ring does the I/O). Limits default to
 * out_hwm 64 KiB, in_pause 128 KiB, in_max 256 KiB, stall_ms 0. */
void net_stream_init(struct net_stream *s, struct net_loop *l, int fd,
                     const struct net_stream_ops *ops);
/* Arm the recv. (A connect in progress: the recv reports the connect error.) */
void net_stream_start(struct net_stream *s);

int net_stream_write(struct net_stream *s, const void *p, size_t n);
int net_stream_write_ref(struct net_stream *s, const void *p, size_t n);
size_t net_stream_pending(const struct net_stream *s);

/* The owner expects bulk input that makes no output (SMTP DATA): the recv may be
 * multishot. Off (the default), it takes one buffer at a time. */
void net_stream_bulk(struct net_stream *s, bool on);
void net_stream_hold(struct net_stream *s);
void net_stream_resume(struct net_stream *s);
/* Offer the kept input again although nothing new arrived (the owner changed its mind
 * about what it needs, e.g. it stopped waiting for a header). */
void net_stream_reoffer(struct net_stream *s);
/* Drop input the owner has not used (e.g. plaintext pipelined behind STARTTLS). */
void net_stream_discard_input(struct net_stream *s);
/* From now on the stream speaks TLS through t, which it owns (freed with the stream).
 * A client's filter runs its first step (the ClientHello) at the stream's next flush. */
void net_stream_tls(struct net_stream *s, struct net_tls *t);

void net_stream_close(struct net_stream *s);
void net_stream_abort(struct net_stream *s);
/* The loop is gone (net_loop_fini): close the socket and free the buffers, with no
 * callback. For what is left at exit. */
void net_stream_fini(struct net_stream *s);
static inline bool net_stream_closing(const struct net_stream *s) { return s->closing; }

/* net/loop's side: completions and the flush of a dirty stream. */
void net_stream_on_recv(struct net_stream *s, int res, unsigned flags);
void net_stream_on_send(struct net_stream *s, int res);
void net_stream_flush(struct net_stream *s);
void net_stream_dirty(struct net_stream *s);

#endif
