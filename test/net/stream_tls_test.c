/* test/net/stream_tls_test — net/stream's TLS slot, on a real ring over a socketpair: the
 * peer is a net/tls client filter in memory, pumped through the socket. Plaintext both
 * ways with the owner seeing only plaintext; a banner written before the handshake goes
 * out after it; plaintext the owner leaves (or holds) is offered again; a switch in the
 * middle of an offer (a header, then the ClientHello in the same write; or STARTTLS with
 * plaintext pipelined behind it, dropped); close_notify on close; the handshake budget. */
#include <criterion/criterion.h>
#include <criterion/hooks.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net/loop.h"
#include "net/stream.h"
#include "net/tls.h"

static char certdir[64];

ReportHook(PRE_ALL)(struct criterion_test_set *set)
{
	(void)set;
	snprintf(certdir, sizeof certdir, "/tmp/rr-stls-test-XXXXXX");
	if (!mkdtemp(certdir))
		exit(1);
	char cmd[512];
	snprintf(cmd, sizeof cmd,
	         "cd %s && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 "
	         "-nodes -keyout ec.key -out ec.pem -days 2 -subj /CN=localhost >/dev/null 2>&1",
	         certdir);
	if (system(cmd) != 0)
		exit(1);
	setenv("RR_STLS_TEST_CERTS", certdir, 1);
}

ReportHook(POST_ALL)(struct criterion_global_stats *st)
{
	(void)st;
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", certdir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", certdir);
}

struct t_srv {
	struct net_stream s;
	struct buf got;              /* plaintext used */
	size_t need;                 /* use nothing until this much is offered */
	const char *hdr;             /* switch to TLS after this prefix (implicit behind a header) */
	bool starttls;               /* switch after "STARTTLS\r\n" and drop the rest */
	int secure, lost, released;
};

static struct net_loop loop;
static int peer = -1;
static struct t_srv ts;
static struct net_tls_ctx *sctx, *cctx;
static struct net_tls *cli;
static struct buf cli_got;

static struct net_tls *t_server_tls(void)
{
	struct net_tls *t = net_tls_new(sctx, NULL);
	cr_assert(t);
	return t;
}

static size_t t_input(struct net_stream *s, const uint8_t *p, size_t n)
{
	struct t_srv *t = (struct t_srv *)(void *)s;
	if (!s->tls && t->hdr) {
		size_t h = strlen(t->hdr);
		if (n < h)
			return 0;
		cr_assert(memcmp(p, t->hdr, h) == 0);
		net_stream_tls(s, t_server_tls());
		return h;                    /* the rest of this offer is the ClientHello */
	}
	if (!s->tls && t->starttls) {
		if (n < 10)
			return 0;
		cr_assert(memcmp(p, "STARTTLS\r\n", 10) == 0);
		net_stream_write(s, "220 go\r\n", 8);
		net_stream_tls(s, t_server_tls());
		return n;                    /* what was pipelined behind it: dropped */
	}
	if (n < t->need)
		return 0;
	buf_append(&t->got, p, n);
	return n;
}

static void t_lost(struct net_stream *s, int res) { ((struct t_srv *)(void *)s)->lost = res; }
static void t_release(struct net_stream *s) { ((struct t_srv *)(void *)s)->released++; }
static void t_secure(struct net_stream *s) { ((struct t_srv *)(void *)s)->secure++; }
static const struct net_stream_ops t_ops = { t_input, t_lost, t_release, t_secure };

static unsigned t_turn(void *ctx)
{
	(void)ctx;
	return 1000;
}
static const struct net_loop_hooks t_hooks = { .turn = t_turn };

static void t_setup(void)
{
	char err[256], cert[128], key[128];
	const char *dir = getenv("RR_STLS_TEST_CERTS");
	snprintf(cert, sizeof cert, "%s/ec.pem", dir);
	snprintf(key, sizeof key, "%s/ec.key", dir);
	struct net_tls_conf sc = { .role = NET_TLS_SERVER, .cert_file = cert, .key_file = key };
	struct net_tls_conf cc = { .role = NET_TLS_CLIENT };
	sctx = net_tls_ctx_new(&sc, err, sizeof err);
	cctx = net_tls_ctx_new(&cc, err, sizeof err);
	cr_assert(sctx && cctx, "%s", err);
	cli = net_tls_new(cctx, "localhost");
	cr_assert(cli);
	int sv[2];
	cr_assert_eq(net_loop_init(&loop, NULL, &t_hooks, NULL), 0);
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	peer = sv[1];
	memset(&ts, 0, sizeof ts);
	ts.lost = 1;
	net_stream_init(&ts.s, &loop, sv[0], &t_ops);
	net_stream_start(&ts.s);
}

static void t_teardown(void)
{
	net_loop_fini(&loop);
	net_stream_fini(&ts.s);
	buf_fini(&ts.got);
	buf_fini(&cli_got);
	net_tls_free(cli);
	net_tls_ctx_free(sctx);
	net_tls_ctx_free(cctx);
	close(peer);
	peer = -1;
}

/* The client's ciphertext to the socket. */
static void cli_flush(void)
{
	size_t n;
	const uint8_t *p = net_tls_out(cli, &n);
	if (n) {
		cr_assert_eq(send(peer, p, n, 0), (ssize_t)n);
		net_tls_out_used(cli, n);
	}
}

/* One round: a loop turn, then whatever the server sent goes into the client. */
static enum net_tls_res pump(void)
{
	enum net_tls_res r = NET_TLS_AGAIN;
	uint8_t b[65536];
	net_loop_turn(&loop);
	ssize_t k = recv(peer, b, sizeof b, MSG_DONTWAIT);
	if (k > 0) {
		size_t off = 0;
		while (off < (size_t)k) {
			size_t taken;
			r = net_tls_feed(cli, b + off, (size_t)k - off, &taken, NULL);
			off += taken;
			size_t pn;
			const uint8_t *pp = net_tls_plain(cli, &pn);
			buf_append(&cli_got, pp, pn);
			net_tls_plain_used(cli, pn);
			if (r == NET_TLS_ERR || r == NET_TLS_CLOSED)
				break;
		}
	}
	cli_flush();
	return r;
}

#define PUMP_UNTIL(cond)                                                       \
	do {                                                                   \
		for (int _i = 0; _i < 500 && !(cond); _i++)                    \
			pump();                                                \
		cr_assert(cond, "not reached: %s", #cond);                     \
	} while (0)

static void cli_hello(void)
{
	size_t taken;
	net_tls_feed(cli, NULL, 0, &taken, NULL);    /* the ClientHello */
}

TestSuite(stream_tls, .init = t_setup, .fini = t_teardown, .timeout = 30);

Test(stream_tls, plaintext_both_ways_banner_after_handshake)
{
	net_stream_tls(&ts.s, t_server_tls());
	cr_assert_eq(net_stream_write(&ts.s, "220 hi\r\n", 8), 0);   /* before the handshake */
	cli_hello();
	cli_flush();
	PUMP_UNTIL(net_tls_established(cli) && cli_got.len >= 8);
	cr_assert_eq(ts.secure, 1);
	cr_assert(memcmp(cli_got.p, "220 hi\r\n", 8) == 0);
	static uint8_t big[200000];
	for (size_t i = 0; i < sizeof big; i++)
		big[i] = (uint8_t)(i * 7);
	cr_assert_eq(net_tls_write(cli, big, sizeof big), 0);
	cli_flush();
	PUMP_UNTIL(ts.got.len == sizeof big);
	cr_assert(memcmp(ts.got.p, big, sizeof big) == 0);
	cr_assert_eq(net_stream_write_ref(&ts.s, big, sizeof big), 0);
	PUMP_UNTIL(cli_got.len == 8 + sizeof big);
	cr_assert(memcmp(cli_got.p + 8, big, sizeof big) == 0);
	cr_assert_eq(ts.lost, 1);
}

Test(stream_tls, plaintext_kept_and_offered_again)
{
	net_stream_tls(&ts.s, t_server_tls());
	cli_hello();
	cli_flush();
	PUMP_UNTIL(net_tls_established(cli) && ts.secure);
	ts.need = 10;
	net_tls_write(cli, "HELO ", 5);
	cli_flush();
	for (int i = 0; i < 20; i++)
		pump();
	cr_assert_eq(ts.got.len, 0);                 /* offered, not used: kept */
	net_tls_write(cli, "abcd\r\n", 6);
	cli_flush();
	PUMP_UNTIL(ts.got.len == 11);
	cr_assert(memcmp(ts.got.p, "HELO abcd\r\n", 11) == 0);
	net_stream_hold(&ts.s);
	ts.need = 0;
	net_tls_write(cli, "NOOP\r\n", 6);
	cli_flush();
	for (int i = 0; i < 20; i++)
		pump();
	cr_assert_eq(ts.got.len, 11);                /* held */
	net_stream_resume(&ts.s);
	PUMP_UNTIL(ts.got.len == 17);                /* re-offered without new octets */
	cr_assert(memcmp(ts.got.p + 11, "NOOP\r\n", 6) == 0);
}

Test(stream_tls, switch_after_a_header_in_the_same_write)
{
	ts.hdr = "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n";
	cr_assert_eq(send(peer, ts.hdr, strlen(ts.hdr), 0), (ssize_t)strlen(ts.hdr));
	cli_hello();
	cli_flush();                                 /* header and ClientHello: one read */
	PUMP_UNTIL(net_tls_established(cli) && ts.secure);
	net_tls_write(cli, "EHLO x\r\n", 8);
	cli_flush();
	PUMP_UNTIL(ts.got.len == 8);
}

Test(stream_tls, starttls_drops_what_was_pipelined)
{
	ts.starttls = true;
	const char inj[] = "STARTTLS\r\nRSET\r\n";
	cr_assert_eq(send(peer, inj, sizeof inj - 1, 0), (ssize_t)(sizeof inj - 1));
	uint8_t b[64];
	ssize_t k = 0;
	for (int i = 0; i < 200 && k <= 0; i++) {
		net_loop_turn(&loop);
		k = recv(peer, b, sizeof b, MSG_DONTWAIT);
	}
	cr_assert_eq(k, 8);
	cr_assert(memcmp(b, "220 go\r\n", 8) == 0);
	cli_hello();
	cli_flush();
	PUMP_UNTIL(net_tls_established(cli) && ts.secure);
	net_tls_write(cli, "EHLO x\r\n", 8);
	cli_flush();
	PUMP_UNTIL(ts.got.len == 8);
	cr_assert(memcmp(ts.got.p, "EHLO x\r\n", 8) == 0);    /* no RSET before it */
	cr_assert_eq(ts.lost, 1);
}

Test(stream_tls, close_sends_close_notify)
{
	net_stream_tls(&ts.s, t_server_tls());
	cli_hello();
	cli_flush();
	PUMP_UNTIL(net_tls_established(cli) && ts.secure);
	net_stream_write(&ts.s, "221 bye\r\n", 9);
	net_stream_close(&ts.s);
	enum net_tls_res r = NET_TLS_AGAIN;
	for (int i = 0; i < 200 && r != NET_TLS_CLOSED; i++)
		r = pump();
	cr_assert_eq(r, NET_TLS_CLOSED);
	cr_assert(cli_got.len == 9 && memcmp(cli_got.p, "221 bye\r\n", 9) == 0);
	PUMP_UNTIL(ts.released == 1);
}

Test(stream_tls, garbage_instead_of_a_client_hello_is_lost)
{
	net_stream_tls(&ts.s, t_server_tls());
	cr_assert_eq(send(peer, "MAIL FROM:<a@b>\r\n", 17, 0), 17);
	PUMP_UNTIL(ts.lost == -EPROTO);
	cr_assert_neq(net_tls_error(ts.s.tls)[0], '\0');
}

Test(stream_tls, handshakes_wait_for_the_budget)
{
	loop.tls_budget.per_turn = 0;                /* nothing this turn, nor the next */
	net_stream_tls(&ts.s, t_server_tls());
	cli_hello();
	cli_flush();
	for (int i = 0; i < 10; i++)
		pump();
	cr_assert(!net_tls_established(cli));
	cr_assert_gt(loop.tls_budget.spent, 0);
	cr_assert_eq(loop.tls_wait, &ts.s);
	loop.tls_budget.per_turn = 1;
	PUMP_UNTIL(net_tls_established(cli) && ts.secure);
	cr_assert_null(loop.tls_wait);
}

/* The stream as a client (delivery's STARTTLS): its ClientHello goes out at the next
 * flush although nothing came in, what it wrote before the handshake goes out after it,
 * and the server's reply comes back as plaintext. */
Test(stream_tls, client_speaks_first)
{
	struct net_tls *srv = net_tls_new(sctx, NULL);
	cr_assert(srv);
	struct buf srv_got = { 0 };
	net_stream_tls(&ts.s, net_tls_new(cctx, "localhost"));
	cr_assert_eq(net_stream_write(&ts.s, "EHLO x\r\n", 8), 0);
	bool replied = false;
	for (int i = 0; i < 500 && ts.got.len < 8; i++) {
		uint8_t b[65536];
		net_loop_turn(&loop);
		ssize_t k = recv(peer, b, sizeof b, MSG_DONTWAIT);
		size_t off = 0;
		while (k > 0 && off < (size_t)k) {
			size_t taken;
			enum net_tls_res r = net_tls_feed(srv, b + off, (size_t)k - off, &taken, NULL);
			off += taken;
			size_t pn;
			const uint8_t *pp = net_tls_plain(srv, &pn);
			buf_append(&srv_got, pp, pn);
			net_tls_plain_used(srv, pn);
			cr_assert(r != NET_TLS_ERR, "%s", net_tls_error(srv));
			if (taken == 0)
				break;
		}
		if (srv_got.len >= 8 && !replied) {
			cr_assert(memcmp(srv_got.p, "EHLO x\r\n", 8) == 0);
			cr_assert_eq(net_tls_write(srv, "250 ok\r\n", 8), 0);
			replied = true;
		}
		size_t on;
		const uint8_t *op = net_tls_out(srv, &on);
		if (on) {
			cr_assert_eq(send(peer, op, on, 0), (ssize_t)on);
			net_tls_out_used(srv, on);
		}
	}
	cr_assert(replied, "the server never got the client's first line");
	cr_assert_eq(ts.got.len, 8);
	cr_assert(memcmp(ts.got.p, "250 ok\r\n", 8) == 0);
	cr_assert_eq(ts.secure, 1);
	cr_assert(net_tls_established(ts.s.tls));
	net_tls_free(srv);
	buf_fini(&srv_got);
}
