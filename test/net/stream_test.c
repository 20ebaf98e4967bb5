/* test/net/stream_test — the shared runtime (net/loop + net/stream) on a real ring, over
 * socketpairs: output in order (copied and borrowed), input kept and offered again,
 * hold/resume, back-pressure against a peer that never reads, the stall cut, close and
 * release, and a submission queue far too small for what a turn asks of it. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net/loop.h"
#include "net/stream.h"

struct t_stream {
	struct net_stream s;
	struct buf got;          /* everything offered and used */
	size_t take;             /* use at most this much per offer (SIZE_MAX: all) */
	size_t need;             /* use nothing until this much is offered at once */
	bool echo;               /* write each used octet back, 4 times */
	int lost;                /* res of ops->lost, or 1 when not called */
	int released;
};

static struct t_stream *ts_of(struct net_stream *s)
{
	return (struct t_stream *)(void *)s;
}

static size_t t_input(struct net_stream *s, const uint8_t *p, size_t n)
{
	struct t_stream *t = ts_of(s);
	if (n < t->need)
		return 0;
	size_t k = n < t->take ? n : t->take;
	if (t->echo) {
		size_t used = 0;
		while (used < k && net_stream_pending(s) < s->out_hwm) {
			for (int r = 0; r < 4; r++)
				net_stream_write(s, p + used, 1);
			used++;
		}
		k = used;
	}
	buf_append(&t->got, p, k);
	return k;
}

static void t_lost(struct net_stream *s, int res)
{
	ts_of(s)->lost = res;
}

static void t_release(struct net_stream *s)
{
	ts_of(s)->released++;
}

static const struct net_stream_ops t_ops = { t_input, t_lost, t_release, NULL };

static struct net_loop loop;
static int peer;
static struct t_stream ts;

static unsigned t_turn(void *ctx)
{
	(void)ctx;
	return 1000;                 /* the tests step the loop: never wait long */
}

static const struct net_loop_hooks t_hooks = { .turn = t_turn };

static void t_setup_params(const struct net_loop_params *p)
{
	int sv[2];
	cr_assert_eq(net_loop_init(&loop, p, &t_hooks, NULL), 0);
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	peer = sv[1];
	memset(&ts, 0, sizeof ts);
	net_stream_init(&ts.s, &loop, sv[0], &t_ops);
	ts.take = SIZE_MAX;
	ts.lost = 1;
	net_stream_start(&ts.s);
}

static void t_setup(void)
{
	t_setup_params(NULL);
}

static void t_teardown(void)
{
	net_loop_fini(&loop);
	net_stream_fini(&ts.s);
	buf_fini(&ts.got);
	if (peer >= 0)
		close(peer);
	peer = -1;
}

/* Run turns until cond() or a bound (2,000 turns of at most 10 ms). */
#define RUN_UNTIL(cond)                                                        \
	do {                                                                   \
		for (int _i = 0; _i < 2000 && !(cond); _i++)                   \
			net_loop_turn(&loop);                                  \
		cr_assert(cond, "not reached: %s", #cond);                     \
	} while (0)

static size_t peer_read(uint8_t *p, size_t cap, int wait_ms)
{
	size_t n = 0;
	for (int i = 0; i < wait_ms && n < cap; i++) {
		ssize_t r = recv(peer, p + n, cap - n, MSG_DONTWAIT);
		if (r > 0) {
			n += (size_t)r;
			continue;
		}
		if (r == 0)
			break;
		net_loop_turn(&loop);
	}
	return n;
}

TestSuite(stream, .init = t_setup, .fini = t_teardown, .timeout = 30);

Test(stream, output_in_order_copied_and_borrowed)
{
	static uint8_t big[3 << 20];
	for (size_t i = 0; i < sizeof big; i++)
		big[i] = (uint8_t)(i * 7);
	cr_assert_eq(net_stream_write(&ts.s, "head:", 5), 0);
	cr_assert_eq(net_stream_write_ref(&ts.s, big, sizeof big), 0);
	cr_assert_eq(net_stream_write(&ts.s, ":tail", 5), 0);
	cr_assert_eq(net_stream_pending(&ts.s), sizeof big + 10);
	uint8_t *got = malloc(sizeof big + 10);
	size_t n = peer_read(got, sizeof big + 10, 5000);
	cr_assert_eq(n, sizeof big + 10);
	cr_assert(memcmp(got, "head:", 5) == 0);
	cr_assert(memcmp(got + 5, big, sizeof big) == 0);
	cr_assert(memcmp(got + 5 + sizeof big, ":tail", 5) == 0);
	RUN_UNTIL(net_stream_pending(&ts.s) == 0);
	cr_assert(ts.s.out_total == sizeof big + 10);
	free(got);
}

/* An owner that needs 10 octets at once sees all that arrived so far, every time. */
Test(stream, kept_input_is_offered_again_with_more)
{
	ts.need = 10;
	cr_assert_eq(send(peer, "abcd", 4, 0), 4);
	RUN_UNTIL(ts.s.in_total == 4);
	cr_assert_eq(ts.got.len, 0);
	cr_assert_eq(ts.s.in.len, 4);
	cr_assert_eq(send(peer, "efghij", 6, 0), 6);
	RUN_UNTIL(ts.got.len == 10);
	cr_assert(memcmp(ts.got.p, "abcdefghij", 10) == 0);
	cr_assert_eq(ts.s.in.len, 0);
}

Test(stream, hold_and_resume)
{
	net_stream_hold(&ts.s);
	cr_assert_eq(send(peer, "12345", 5, 0), 5);
	RUN_UNTIL(ts.s.in_total == 5);
	for (int i = 0; i < 5; i++)
		net_loop_turn(&loop);
	cr_assert_eq(ts.got.len, 0, "offered while held");
	net_stream_resume(&ts.s);
	RUN_UNTIL(ts.got.len == 5);
	cr_assert(memcmp(ts.got.p, "12345", 5) == 0);
}

/* The peer sends far more than the stream will ever answer and never reads: the owner
 * stops being offered input at the high-water mark, the recv stops, the kernel's buffers
 * fill and the peer cannot send any more; memory stays bounded. When the peer reads, it
 * all goes on, in order, to the last octet. */
Test(stream, back_pressure_against_a_peer_that_never_reads)
{
	enum { TOTAL = 8 << 20 };
	ts.echo = true;
	int fl = fcntl(peer, F_GETFL);
	fcntl(peer, F_SETFL, fl | O_NONBLOCK);
	uint8_t *src = malloc(TOTAL);
	for (size_t i = 0; i < TOTAL; i++)
		src[i] = (uint8_t)(i % 251);
	size_t sent = 0;
	for (int i = 0; i < 400; i++) {
		ssize_t r = send(peer, src + sent, TOTAL - sent, MSG_DONTWAIT);
		if (r > 0)
			sent += (size_t)r;
		net_loop_turn(&loop);
		cr_assert_leq(ts.s.in.len, ts.s.in_max);
		cr_assert_leq(net_stream_pending(&ts.s), ts.s.out_hwm + 4);
	}
	cr_assert_lt(sent, TOTAL, "the peer could send everything: no back-pressure");
	cr_assert_lt(ts.got.len, (size_t)2 << 20, "used %zu octets of a peer that reads nothing",
	             ts.got.len);
	cr_assert_eq(ts.lost, 1, "cut instead of paused (lost %d)", ts.lost);
	/* Now the peer reads: everything flows to the end. */
	uint8_t *back = malloc((size_t)4 * TOTAL);
	size_t nback = 0;
	for (int i = 0; i < 20000 && nback < (size_t)4 * TOTAL; i++) {
		if (sent < TOTAL) {
			ssize_t r = send(peer, src + sent, TOTAL - sent, MSG_DONTWAIT);
			if (r > 0)
				sent += (size_t)r;
		}
		ssize_t r = recv(peer, back + nback, (size_t)4 * TOTAL - nback, MSG_DONTWAIT);
		if (r > 0)
			nback += (size_t)r;
		net_loop_turn(&loop);
	}
	cr_assert_eq(sent, TOTAL);
	cr_assert_eq(ts.got.len, TOTAL);
	cr_assert(memcmp(ts.got.p, src, TOTAL) == 0);
	cr_assert_eq(nback, (size_t)4 * TOTAL);
	for (size_t i = 0; i < TOTAL; i += 4099)
		cr_assert_eq(back[4 * i], src[i]);
	free(src);
	free(back);
}

/* Output that does not move for stall_ms: lost(-ETIMEDOUT), then released. */
Test(stream, stalled_output_is_cut)
{
	static uint8_t blob[16 << 20];
	ts.s.stall_ms = 300;
	cr_assert_eq(net_stream_write_ref(&ts.s, blob, sizeof blob), 0);
	RUN_UNTIL(ts.released == 1);
	cr_assert_eq(ts.lost, -ETIMEDOUT);
}

Test(stream, close_sends_what_is_queued_then_releases_once)
{
	net_stream_write(&ts.s, "221 bye\r\n", 9);
	net_stream_close(&ts.s);
	cr_assert_lt(net_stream_write(&ts.s, "x", 1) + 1, 2);   /* allowed until the shutdown */
	uint8_t b[64];
	size_t n = peer_read(b, sizeof b, 2000);
	cr_assert_geq(n, 9);
	cr_assert(memcmp(b, "221 bye\r\n", 9) == 0);
	RUN_UNTIL(ts.released == 1);
	cr_assert_eq(recv(peer, b, sizeof b, MSG_DONTWAIT), 0, "EOF after the last words");
	for (int i = 0; i < 5; i++)
		net_loop_turn(&loop);
	cr_assert_eq(ts.released, 1);
	cr_assert_eq(ts.lost, 1, "a close of our own is not a loss");
}

Test(stream, peer_close_is_lost_zero)
{
	close(peer);
	peer = -1;
	RUN_UNTIL(ts.released == 1);
	cr_assert_eq(ts.lost, 0);
}

static void t_small_sq(void)
{
	struct net_loop_params p = { .sq_entries = 2, .cq_entries = 256 };
	if (loop.up)                  /* the suite's init ran first: start over */
		t_teardown();
	t_setup_params(&p);
}

/* A submission queue of two entries and 64 streams that all write in one turn: every
 * write goes out (net_loop_sqe submits when full, never spins), and a chain longer than
 * the ring is refused rather than split. */
Test(stream, tiny_submission_queue, .init = t_small_sq, .fini = t_teardown)
{
	enum { N = 64 };
	struct t_stream *v = calloc(N, sizeof *v);
	int peers[N];
	for (int i = 0; i < N; i++) {
		int sv[2];
		cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
		peers[i] = sv[1];
		net_stream_init(&v[i].s, &loop, sv[0], &t_ops);
		v[i].take = SIZE_MAX;
		net_stream_start(&v[i].s);
		net_stream_write(&v[i].s, "hello", 5);
	}
	for (int t = 0; t < 50; t++)
		net_loop_turn(&loop);
	for (int i = 0; i < N; i++) {
		char b[8];
		cr_assert_eq(recv(peers[i], b, sizeof b, MSG_DONTWAIT), 5, "stream %d", i);
		net_stream_abort(&v[i].s);
	}
	for (int t = 0; t < 50; t++)
		net_loop_turn(&loop);
	for (int i = 0; i < N; i++) {
		cr_assert_eq(v[i].released, 1, "stream %d", i);
		close(peers[i]);
	}
	struct io_uring_sqe *sqes[4];
	cr_assert_eq(net_loop_sqes(&loop, sqes, 3), -EBUSY);
	cr_assert_eq(net_loop_sqes(&loop, sqes, 2), 0);
	for (int i = 0; i < 2; i++)
		io_uring_prep_nop(sqes[i]);
	free(v);
}

/* A peer that half-closes after sending: its input is offered, the owner's reply still
 * goes out, then lost(0) and one release — with an owner that frees itself in release
 * and closes from inside lost (the stream must not be in the dirty list when freed). */
static int heap_released;

static size_t heap_input(struct net_stream *s, const uint8_t *p, size_t n)
{
	if (n >= 4 && memcmp(p, "QUIT", 4) == 0)
		net_stream_write(s, "250 ok\r\n", 8);
	return n;
}

static void heap_lost(struct net_stream *s, int res)
{
	cr_assert_eq(res, 0);
	net_stream_close(s);
}

static void heap_release(struct net_stream *s)
{
	heap_released++;
	free(s);
}

static const struct net_stream_ops heap_ops = { heap_input, heap_lost, heap_release, NULL };

Test(stream, half_close_gets_its_reply)
{
	int sv[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	struct net_stream *h = malloc(sizeof *h);
	net_stream_init(h, &loop, sv[0], &heap_ops);
	net_stream_start(h);
	heap_released = 0;
	cr_assert_eq(send(sv[1], "QUIT\r\n", 6, 0), 6);
	shutdown(sv[1], SHUT_WR);
	RUN_UNTIL(heap_released == 1);
	char b[32];
	cr_assert_eq(recv(sv[1], b, sizeof b, MSG_DONTWAIT), 8);
	cr_assert(memcmp(b, "250 ok\r\n", 8) == 0);
	cr_assert_eq(recv(sv[1], b, sizeof b, MSG_DONTWAIT), 0);
	close(sv[1]);
}

/* The same when nothing is owed: closed and freed in the flush that sees the EOF. */
Test(stream, half_close_with_nothing_owed)
{
	int sv[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	struct net_stream *h = malloc(sizeof *h);
	net_stream_init(h, &loop, sv[0], &heap_ops);
	net_stream_start(h);
	heap_released = 0;
	cr_assert_eq(send(sv[1], "NOOP\r\n", 6, 0), 6);
	shutdown(sv[1], SHUT_WR);
	RUN_UNTIL(heap_released == 1);
	char b[32];
	cr_assert_eq(recv(sv[1], b, sizeof b, MSG_DONTWAIT), 0);
	close(sv[1]);
}
