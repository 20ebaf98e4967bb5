/* test/net/tls_test — the TLS filter (net/tls): a client and a server filter driven
 * against each other in memory. Self-signed ECDSA (P-256) and RSA (2048) certificates are
 * made once per run with the openssl command. Handshakes whole, one octet at a time and
 * split at every offset of every flight; application data both ways (larger than the
 * plaintext cap, so taken < given is exercised); close_notify; a corrupted record; a peer
 * that sends an SMTP command or random octets instead of a ClientHello; the handshake
 * budget; verification against a CA file and a name. */
#include <criterion/criterion.h>
#include <criterion/hooks.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "net/buf.h"
#include "net/tls.h"

static char certdir[256];

static void t_sh(const char *cmd)
{
	int rc = system(cmd);
	if (rc != 0) {
		fprintf(stderr, "tls_test: failed (%d): %s\n", rc, cmd);
		exit(1);
	}
}

ReportHook(PRE_ALL)(struct criterion_test_set *set)
{
	(void)set;
	snprintf(certdir, sizeof certdir, "/tmp/rr-tls-test-XXXXXX");
	if (!mkdtemp(certdir))
		exit(1);
	char cmd[1024];
	snprintf(cmd, sizeof cmd,
	         "cd %s && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 "
	         "-nodes -keyout ec.key -out ec.pem -days 2 -subj /CN=localhost "
	         "-addext subjectAltName=DNS:localhost >/dev/null 2>&1 && "
	         "openssl req -x509 -newkey rsa:2048 -nodes -keyout rsa.key -out rsa.pem -days 2 "
	         "-subj /CN=localhost -addext subjectAltName=DNS:localhost >/dev/null 2>&1",
	         certdir);
	t_sh(cmd);
	setenv("RR_TLS_TEST_CERTS", certdir, 1);    /* the tests run in processes of their own */
}

ReportHook(POST_ALL)(struct criterion_global_stats *st)
{
	(void)st;
	char cmd[300];
	snprintf(cmd, sizeof cmd, "rm -rf %s", certdir);
	t_sh(cmd);
}

static char *t_path(const char *name)
{
	static char p[4][300];
	static int i;
	char *r = p[i++ & 3];
	const char *dir = getenv("RR_TLS_TEST_CERTS");
	snprintf(r, 300, "%s/%s", dir ? dir : certdir, name);
	return r;
}

struct t_pair {
	struct net_tls_ctx *sc, *cc;
	struct net_tls *s, *c;
	struct buf to_s, to_c;       /* ciphertext on its way */
	struct buf got_s, got_c;     /* plaintext each side received */
	enum net_tls_res rs, rc;     /* last result of each side's feed */
};

static struct net_tls_ctx *t_ctx(enum net_tls_role role, const char *kind, int version,
                                 const char *ca)
{
	char err[256] = "";
	char cert[32], key[32];
	snprintf(cert, sizeof cert, "%s.pem", kind);
	snprintf(key, sizeof key, "%s.key", kind);
	struct net_tls_conf conf = {
		.role = role,
		.cert_file = role == NET_TLS_SERVER ? t_path(cert) : NULL,
		.key_file = role == NET_TLS_SERVER ? t_path(key) : NULL,
		.ca_file = ca,
		.version = version,
	};
	struct net_tls_ctx *c = net_tls_ctx_new(&conf, err, sizeof err);
	cr_assert(c, "ctx: %s", err);
	return c;
}

static void t_pair_init(struct t_pair *pr, const char *kind, int sver, int cver,
                        const char *ca, const char *name)
{
	memset(pr, 0, sizeof *pr);
	pr->sc = t_ctx(NET_TLS_SERVER, kind, sver, NULL);
	pr->cc = t_ctx(NET_TLS_CLIENT, kind, cver, ca);
	pr->s = net_tls_new(pr->sc, NULL);
	pr->c = net_tls_new(pr->cc, name);
	cr_assert(pr->s && pr->c);
	/* the filters hold their contexts: the owner may let go at once */
	net_tls_ctx_free(pr->sc);
	net_tls_ctx_free(pr->cc);
}

static void t_pair_fini(struct t_pair *pr)
{
	net_tls_free(pr->s);
	net_tls_free(pr->c);
	buf_fini(&pr->to_s);
	buf_fini(&pr->to_c);
	buf_fini(&pr->got_s);
	buf_fini(&pr->got_c);
}

static void t_carry(struct net_tls *from, struct buf *to)
{
	size_t n;
	const uint8_t *p = net_tls_out(from, &n);
	cr_assert(buf_append(to, p, n) == 0);
	net_tls_out_used(from, n);
}

static void t_take_plain(struct net_tls *t, struct buf *got)
{
	size_t n;
	const uint8_t *p = net_tls_plain(t, &n);
	cr_assert(buf_append(got, p, n) == 0);
	net_tls_plain_used(t, n);
}

/* Feed one piece, taking the plaintext out as it comes (so a feed that stopped at the
 * plaintext cap goes on). */
static enum net_tls_res t_feed_piece(struct net_tls *t, const uint8_t *p, size_t n,
                                     struct buf *got)
{
	enum net_tls_res r;
	for (;;) {
		size_t taken = 0;
		r = net_tls_feed(t, p, n, &taken, NULL);
		cr_assert(taken <= n);
		p += taken;
		n -= taken;
		t_take_plain(t, got);
		if (r == NET_TLS_ERR || r == NET_TLS_CLOSED)
			return r;
		if (n == 0 && r == NET_TLS_AGAIN)
			return r;
		if (n == 0) {
			/* OK: there may be more decrypted behind the cap */
			r = net_tls_feed(t, NULL, 0, &taken, NULL);
			t_take_plain(t, got);
			if (r != NET_TLS_OK)
				return r;
			continue;
		}
		cr_assert(taken > 0 || r == NET_TLS_OK, "no progress with %zu octets left", n);
	}
}

/* Deliver what is on its way to t: split at `split` (0: whole; 1 with every: one octet
 * at a time). */
static enum net_tls_res t_deliver(struct net_tls *t, struct buf *in, struct buf *got,
                                  size_t split, bool every)
{
	enum net_tls_res r = NET_TLS_AGAIN;
	size_t off = 0;
	if (in->len == 0)
		return t_feed_piece(t, NULL, 0, got);
	while (off < in->len) {
		size_t k = in->len - off;
		if (split && (every || off == 0) && k > split)
			k = split;
		r = t_feed_piece(t, in->p + off, k, got);
		off += k;
		if (r == NET_TLS_ERR)
			break;
	}
	buf_consume(in, in->len);
	return r;
}

/* Run both sides until neither has anything to say. */
static void t_run(struct t_pair *pr, size_t split, bool every)
{
	for (int round = 0; round < 50; round++) {
		t_carry(pr->c, &pr->to_s);
		t_carry(pr->s, &pr->to_c);
		if (pr->to_s.len == 0 && pr->to_c.len == 0 && round > 0)
			return;
		if (pr->to_s.len || round == 0)
			pr->rs = t_deliver(pr->s, &pr->to_s, &pr->got_s, split, every);
		if (pr->to_c.len || round == 0)
			pr->rc = t_deliver(pr->c, &pr->to_c, &pr->got_c, split, every);
		if (pr->rs == NET_TLS_ERR || pr->rc == NET_TLS_ERR)
			return;
	}
	cr_assert_fail("the pair did not settle");
}

static void t_handshake(struct t_pair *pr, size_t split, bool every)
{
	t_run(pr, split, every);
	cr_assert(net_tls_established(pr->s) && net_tls_established(pr->c),
	          "split %zu: server %d (%s), client %d (%s)", split, pr->rs,
	          net_tls_error(pr->s), pr->rc, net_tls_error(pr->c));
}

static void t_exchange(struct t_pair *pr, size_t len, size_t split, bool every)
{
	uint8_t *a = malloc(len), *b = malloc(len);
	for (size_t i = 0; i < len; i++) {
		a[i] = (uint8_t)(i * 7 + 1);
		b[i] = (uint8_t)(i * 13 + 5);
	}
	buf_consume(&pr->got_s, pr->got_s.len);
	buf_consume(&pr->got_c, pr->got_c.len);
	cr_assert(net_tls_write(pr->c, a, len) == 0);
	cr_assert(net_tls_write(pr->s, b, len) == 0);
	t_run(pr, split, every);
	cr_assert_eq(pr->got_s.len, len);
	cr_assert_eq(pr->got_c.len, len);
	cr_assert(memcmp(pr->got_s.p, a, len) == 0);
	cr_assert(memcmp(pr->got_c.p, b, len) == 0);
	free(a);
	free(b);
}

Test(tls, ecdsa_tls13_whole)
{
	struct t_pair pr;
	t_pair_init(&pr, "ec", 0, 0, NULL, "localhost");
	cr_assert_str_eq(net_tls_version(pr.s), "-");
	cr_assert_eq(net_tls_write(pr.c, "x", 1), -EAGAIN);
	t_handshake(&pr, 0, false);
	cr_assert_str_eq(net_tls_version(pr.s), "TLSv1.3");
	cr_assert_str_eq(net_tls_version(pr.c), "TLSv1.3");
	cr_assert_str_eq(net_tls_cipher(pr.s), net_tls_cipher(pr.c));
	cr_assert_str_neq(net_tls_cipher(pr.s), "-");
	t_exchange(&pr, 5, 0, false);
	t_exchange(&pr, 300000, 0, false);   /* past the plaintext cap, many records */
	t_pair_fini(&pr);
}

Test(tls, rsa_tls12_and_13)
{
	for (int v = 0; v < 2; v++) {
		struct t_pair pr;
		t_pair_init(&pr, "rsa", 0, v ? 12 : 0, NULL, "localhost");
		t_handshake(&pr, 0, false);
		cr_assert_str_eq(net_tls_version(pr.s), v ? "TLSv1.2" : "TLSv1.3");
		cr_assert_str_eq(net_tls_cipher(pr.s), net_tls_cipher(pr.c));
		t_exchange(&pr, 70000, 0, false);
		t_pair_fini(&pr);
	}
}

Test(tls, ecdsa_tls12)
{
	struct t_pair pr;
	t_pair_init(&pr, "ec", 12, 0, NULL, NULL);
	t_handshake(&pr, 0, false);
	cr_assert_str_eq(net_tls_version(pr.c), "TLSv1.2");
	t_exchange(&pr, 1000, 0, false);
	t_pair_fini(&pr);
}

Test(tls, one_octet_at_a_time)
{
	for (int v = 0; v < 2; v++) {
		struct t_pair pr;
		t_pair_init(&pr, v ? "rsa" : "ec", 0, v ? 12 : 0, NULL, "localhost");
		t_handshake(&pr, 1, true);
		t_exchange(&pr, 2000, 1, true);
		t_pair_fini(&pr);
	}
}

/* Every flight of the handshake (both ways) split in two at every offset. */
static void t_every_split(const char *kind, int cver)
{
	size_t max = 0;
	{
		/* the largest flight bounds the offsets worth trying */
		struct t_pair pr;
		t_pair_init(&pr, kind, 0, cver, NULL, "localhost");
		for (int round = 0; round < 10; round++) {
			t_carry(pr.c, &pr.to_s);
			t_carry(pr.s, &pr.to_c);
			max = pr.to_s.len > max ? pr.to_s.len : max;
			max = pr.to_c.len > max ? pr.to_c.len : max;
			t_deliver(pr.s, &pr.to_s, &pr.got_s, 0, false);
			t_deliver(pr.c, &pr.to_c, &pr.got_c, 0, false);
		}
		cr_assert(net_tls_established(pr.s));
		t_pair_fini(&pr);
	}
	cr_assert_gt(max, 100);
	for (size_t k = 1; k < max; k++) {
		struct t_pair pr;
		t_pair_init(&pr, kind, 0, cver, NULL, "localhost");
		t_handshake(&pr, k, false);
		t_exchange(&pr, 64, k, false);
		t_pair_fini(&pr);
	}
}

Test(tls, every_split_ecdsa_tls13, .timeout = 120)
{
	t_every_split("ec", 0);
}

Test(tls, every_split_ecdsa_tls12, .timeout = 120)
{
	t_every_split("ec", 12);
}

Test(tls, close_notify)
{
	struct t_pair pr;
	t_pair_init(&pr, "ec", 0, 0, NULL, "localhost");
	t_handshake(&pr, 0, false);
	t_exchange(&pr, 10, 0, false);
	cr_assert(net_tls_write(pr.c, "last", 4) == 0);
	net_tls_close(pr.c);
	cr_assert_eq(net_tls_write(pr.c, "more", 4), -EPIPE);
	t_carry(pr.c, &pr.to_s);
	pr.rs = t_deliver(pr.s, &pr.to_s, &pr.got_s, 0, false);
	cr_assert_eq(pr.rs, NET_TLS_CLOSED, "got %d (%s)", pr.rs, net_tls_error(pr.s));
	cr_assert_eq(pr.got_s.len, 14);
	cr_assert(memcmp(pr.got_s.p + 10, "last", 4) == 0);
	size_t taken = 1;
	cr_assert_eq(net_tls_feed(pr.s, (const uint8_t *)"x", 1, &taken, NULL), NET_TLS_CLOSED);
	cr_assert_eq(taken, 0);
	t_pair_fini(&pr);
}

Test(tls, eof_without_close_notify)
{
	struct t_pair pr;
	t_pair_init(&pr, "ec", 0, 0, NULL, "localhost");
	t_handshake(&pr, 0, false);
	net_tls_peer_eof(pr.s);
	size_t taken;
	cr_assert_eq(net_tls_feed(pr.s, NULL, 0, &taken, NULL), NET_TLS_CLOSED);
	t_pair_fini(&pr);
}

Test(tls, eof_mid_handshake_is_an_error)
{
	struct t_pair pr;
	t_pair_init(&pr, "ec", 0, 0, NULL, "localhost");
	size_t taken;
	cr_assert_eq(net_tls_feed(pr.c, NULL, 0, &taken, NULL), NET_TLS_AGAIN);  /* ClientHello */
	t_carry(pr.c, &pr.to_s);
	cr_assert_eq(net_tls_feed(pr.s, pr.to_s.p, 20, &taken, NULL), NET_TLS_AGAIN);
	cr_assert_eq(taken, 20);
	net_tls_peer_eof(pr.s);
	cr_assert_eq(net_tls_feed(pr.s, NULL, 0, &taken, NULL), NET_TLS_ERR);
	cr_assert_str_neq(net_tls_error(pr.s), "");
	t_pair_fini(&pr);
}

Test(tls, corrupted_record)
{
	for (size_t at = 0; at < 40; at += 3) {
		struct t_pair pr;
		t_pair_init(&pr, "ec", 0, at % 2 ? 12 : 0, NULL, "localhost");
		t_handshake(&pr, 0, false);
		t_run(&pr, 0, false);            /* the session ticket, if any */
		cr_assert(net_tls_write(pr.c, "MAIL FROM:<a@b>\r\n", 17) == 0);
		t_carry(pr.c, &pr.to_s);
		cr_assert_gt(pr.to_s.len, at);
		pr.to_s.p[at] ^= 0x20;
		pr.rs = t_deliver(pr.s, &pr.to_s, &pr.got_s, 0, false);
		cr_assert(pr.rs == NET_TLS_ERR || pr.rs == NET_TLS_AGAIN, "at %zu: %d", at, pr.rs);
		if (pr.rs == NET_TLS_AGAIN) {
			/* a length made longer: the record is not complete; the peer ends */
			net_tls_peer_eof(pr.s);
			pr.rs = t_deliver(pr.s, &pr.to_s, &pr.got_s, 0, false);
			cr_assert_eq(pr.rs, NET_TLS_ERR, "at %zu: %d", at, pr.rs);
		}
		cr_assert_eq(pr.got_s.len, 0, "at %zu: forged plaintext", at);
		cr_assert_str_neq(net_tls_error(pr.s), "");
		cr_assert_eq(net_tls_write(pr.s, "x", 1), -EPIPE);
		t_pair_fini(&pr);
	}
}

static void t_garbage(const uint8_t *g, size_t n)
{
	struct net_tls_ctx *sc = t_ctx(NET_TLS_SERVER, "ec", 0, NULL);
	struct net_tls *s = net_tls_new(sc, NULL);
	net_tls_ctx_free(sc);
	size_t taken;
	enum net_tls_res r = net_tls_feed(s, g, n, &taken, NULL);
	cr_assert_eq(r, NET_TLS_ERR, "got %d", r);
	cr_assert_str_neq(net_tls_error(s), "");
	cr_assert_eq(net_tls_feed(s, g, n, &taken, NULL), NET_TLS_ERR);
	net_tls_free(s);
}

Test(tls, garbage_instead_of_client_hello)
{
	static const char *cmds[] = { "EHLO client.example\r\n", "QUIT\r\n",
	                              "GET / HTTP/1.0\r\n\r\n", "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n" };
	for (size_t i = 0; i < sizeof cmds / sizeof *cmds; i++)
		t_garbage((const uint8_t *)cmds[i], strlen(cmds[i]));
	uint8_t r[64];
	unsigned x = 12345;
	for (int round = 0; round < 50; round++) {
		for (size_t i = 0; i < sizeof r; i++) {
			x = x * 1103515245u + 12345u;
			r[i] = (uint8_t)(x >> 16);
		}
		if (r[0] == 0x16)
			r[0] = 0x17;   /* a handshake type with a sane header might just wait */
		t_garbage(r, sizeof r);
	}
}

Test(tls, handshake_budget)
{
	struct t_pair pr;
	t_pair_init(&pr, "ec", 0, 0, NULL, "localhost");
	struct net_tls_budget b = { .per_turn = 1 };
	net_tls_budget_refill(&b);
	size_t taken;
	cr_assert_eq(net_tls_feed(pr.c, NULL, 0, &taken, &b), NET_TLS_AGAIN);
	t_carry(pr.c, &pr.to_s);
	/* spent: nothing is taken, the server does no work */
	cr_assert_eq(net_tls_feed(pr.s, pr.to_s.p, pr.to_s.len, &taken, &b), NET_TLS_BUDGET);
	cr_assert_eq(taken, 0);
	cr_assert_eq(b.spent, 1);
	size_t n;
	net_tls_out(pr.s, &n);
	cr_assert_eq(n, 0);
	net_tls_budget_refill(&b);           /* the next turn */
	cr_assert_eq(net_tls_feed(pr.s, pr.to_s.p, pr.to_s.len, &taken, &b), NET_TLS_AGAIN);
	cr_assert_eq(taken, pr.to_s.len);
	buf_consume(&pr.to_s, taken);
	t_handshake(&pr, 0, false);
	/* established sessions never touch the budget */
	b.left = 0;
	cr_assert(net_tls_write(pr.c, "hi", 2) == 0);
	t_carry(pr.c, &pr.to_s);
	cr_assert_eq(net_tls_feed(pr.s, pr.to_s.p, pr.to_s.len, &taken, &b), NET_TLS_OK);
	t_pair_fini(&pr);
}

Test(tls, verify_against_ca_and_name)
{
	struct t_pair pr;
	t_pair_init(&pr, "ec", 0, 0, t_path("ec.pem"), "localhost");
	t_handshake(&pr, 0, false);
	t_pair_fini(&pr);

	t_pair_init(&pr, "ec", 0, 0, t_path("ec.pem"), "mx.example.net");   /* wrong name */
	t_run(&pr, 0, false);
	cr_assert_eq(pr.rc, NET_TLS_ERR);
	cr_assert(!net_tls_established(pr.c));
	t_pair_fini(&pr);

	t_pair_init(&pr, "ec", 0, 0, t_path("rsa.pem"), "localhost");        /* wrong CA */
	t_run(&pr, 0, false);
	cr_assert_eq(pr.rc, NET_TLS_ERR);
	t_pair_fini(&pr);
}

/* A client keeps the session of a connection and the next one to the same server resumes
 * it (TLS 1.3: a ticket read after the handshake; TLS 1.2: a ticket or the session id);
 * a session offered to a server that cannot resume it just gives a full handshake. */
/* A TLS 1.2 client that asks for a ticket gets a session it resumes with the same
 * server; only a client asks, and only before its handshake. */
Test(tls, ticket_asked_at_tls12)
{
	struct net_tls_ctx *sc = t_ctx(NET_TLS_SERVER, "ec", 12, NULL);
	struct net_tls_ctx *cc = t_ctx(NET_TLS_CLIENT, "ec", 0, NULL);
	struct t_pair pr;
	memset(&pr, 0, sizeof pr);
	pr.s = net_tls_new(sc, NULL);
	pr.c = net_tls_new(cc, "localhost");
	cr_expect_not(net_tls_ask_ticket(pr.s), "a server does not ask");
	cr_expect(net_tls_ask_ticket(pr.c));
	t_handshake(&pr, 0, false);
	cr_expect_str_eq(net_tls_version(pr.c), "TLSv1.2");
	cr_expect_not(net_tls_ask_ticket(pr.c), "not after the handshake");
	t_exchange(&pr, 5, 0, false);
	struct net_tls_session *ss = net_tls_session_get(pr.c);
	cr_assert(ss);
	t_pair_fini(&pr);
	memset(&pr, 0, sizeof pr);
	pr.s = net_tls_new(sc, NULL);
	pr.c = net_tls_new(cc, "localhost");
	cr_expect(net_tls_ask_ticket(pr.c));
	net_tls_session_use(pr.c, ss);
	t_handshake(&pr, 0, false);
	cr_expect(net_tls_resumed(pr.c));
	t_exchange(&pr, 5, 0, false);
	t_pair_fini(&pr);
	net_tls_session_free(ss);
	net_tls_ctx_free(sc);
	net_tls_ctx_free(cc);
}

Test(tls, session_resumed_next_time)
{
	for (int v = 0; v < 2; v++) {
		struct net_tls_ctx *sc = t_ctx(NET_TLS_SERVER, "ec", v ? 12 : 0, NULL);
		struct net_tls_ctx *cc = t_ctx(NET_TLS_CLIENT, "ec", 0, NULL);
		struct t_pair pr;
		memset(&pr, 0, sizeof pr);
		pr.s = net_tls_new(sc, NULL);
		pr.c = net_tls_new(cc, "localhost");
		cr_assert(net_tls_is_client(pr.c) && !net_tls_is_client(pr.s));
		cr_assert_null(net_tls_session_get(pr.c));       /* before the handshake */
		t_handshake(&pr, 0, false);
		cr_assert(!net_tls_resumed(pr.c));
		cr_assert(!net_tls_verified(pr.c));              /* no CA: opportunistic */
		t_exchange(&pr, 5, 0, false);                     /* the ticket came with it */
		struct net_tls_session *ss = net_tls_session_get(pr.c);
		cr_assert(ss);
		cr_assert_null(net_tls_session_get(pr.s));       /* a server keeps none */
		t_pair_fini(&pr);

		memset(&pr, 0, sizeof pr);
		pr.s = net_tls_new(sc, NULL);
		pr.c = net_tls_new(cc, "localhost");
		net_tls_session_use(pr.c, ss);
		t_handshake(&pr, 0, false);
		cr_assert(net_tls_resumed(pr.c), "v%d: not resumed", v ? 12 : 13);
		t_exchange(&pr, 70000, 0, false);
		t_pair_fini(&pr);

		/* another server (its own ticket key): a full handshake, no failure */
		struct net_tls_ctx *sc2 = t_ctx(NET_TLS_SERVER, "rsa", v ? 12 : 0, NULL);
		memset(&pr, 0, sizeof pr);
		pr.s = net_tls_new(sc2, NULL);
		pr.c = net_tls_new(cc, "localhost");
		net_tls_session_use(pr.c, ss);
		t_handshake(&pr, 0, false);
		t_exchange(&pr, 5, 0, false);
		t_pair_fini(&pr);
		net_tls_session_free(ss);
		net_tls_session_free(NULL);
		net_tls_ctx_free(sc);
		net_tls_ctx_free(sc2);
		net_tls_ctx_free(cc);
	}
}

Test(tls, context_errors)
{
	char err[256];
	struct net_tls_conf c = { .role = NET_TLS_SERVER };
	cr_assert_null(net_tls_ctx_new(&c, err, sizeof err));
	cr_assert(strstr(err, "certificate"), "%s", err);
	c.cert_file = "/nonexistent/cert.pem";
	c.key_file = t_path("ec.key");
	cr_assert_null(net_tls_ctx_new(&c, err, sizeof err));
	cr_assert(strstr(err, "/nonexistent/cert.pem"), "%s", err);
	c.cert_file = t_path("ec.pem");
	c.key_file = t_path("rsa.key");                 /* not this certificate's key */
	cr_assert_null(net_tls_ctx_new(&c, err, sizeof err));
	cr_assert(strstr(err, "does not match"), "%s", err);
	net_tls_ctx_free(NULL);
	net_tls_free(NULL);
}
