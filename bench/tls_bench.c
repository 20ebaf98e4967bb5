/* tls_bench — handshakes per second and bulk MB/s through net/tls itself, a client and a
 * server filter in memory on one core (both sides' work counted). `make bench-tls-lib`
 * builds it against the fast static wolfSSL and the packaged one (bench/tls_lib.sh).
 *   tls_bench CERTDIR [SECONDS]   CERTDIR holds ec.pem/ec.key and rsa.pem/rsa.key */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "net/tls.h"

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static struct net_tls_ctx *ctx(enum net_tls_role role, const char *dir, const char *kind,
                               int version)
{
	char cert[512], key[512], err[256];
	snprintf(cert, sizeof cert, "%s/%s.pem", dir, kind);
	snprintf(key, sizeof key, "%s/%s.key", dir, kind);
	struct net_tls_conf c = { .role = role, .version = version };
	if (role == NET_TLS_SERVER) {
		c.cert_file = cert;
		c.key_file = key;
	}
	struct net_tls_ctx *x = net_tls_ctx_new(&c, err, sizeof err);
	if (!x) {
		fprintf(stderr, "tls_bench: %s\n", err);
		exit(1);
	}
	return x;
}

/* Move a's output into b; 1 when something moved. */
static int pass(struct net_tls *a, struct net_tls *b)
{
	size_t n, taken;
	const uint8_t *p = net_tls_out(a, &n);
	if (n == 0)
		return 0;
	if (net_tls_feed(b, p, n, &taken, NULL) == NET_TLS_ERR) {
		fprintf(stderr, "tls_bench: %s\n", net_tls_error(b));
		exit(1);
	}
	net_tls_out_used(a, taken);
	net_tls_plain_used(b, SIZE_MAX);
	return 1;
}

static void handshake(struct net_tls *c, struct net_tls *s)
{
	size_t taken;
	net_tls_feed(c, NULL, 0, &taken, NULL);
	while (pass(c, s) | pass(s, c))
		;
	if (!net_tls_established(c) || !net_tls_established(s)) {
		fprintf(stderr, "tls_bench: no handshake\n");
		exit(1);
	}
}

static void bench_hs(const char *dir, const char *kind, int version, double secs)
{
	struct net_tls_ctx *sc = ctx(NET_TLS_SERVER, dir, kind, version);
	struct net_tls_ctx *cc = ctx(NET_TLS_CLIENT, dir, kind, version);
	unsigned long n = 0;
	char what[64] = "";
	double t0 = now_s(), t;
	do {
		struct net_tls *s = net_tls_new(sc, NULL), *c = net_tls_new(cc, "localhost");
		handshake(c, s);
		if (!n)
			snprintf(what, sizeof what, "%s %s", net_tls_version(s), net_tls_cipher(s));
		net_tls_free(c);
		net_tls_free(s);
		n++;
	} while ((t = now_s() - t0) < secs);
	printf("handshakes/s %-5s %-40s %8.0f  (client and server on one core)\n", kind, what,
	       (double)n / t);
	net_tls_ctx_free(sc);
	net_tls_ctx_free(cc);
}

static void bench_bulk(const char *dir, double secs)
{
	struct net_tls_ctx *sc = ctx(NET_TLS_SERVER, dir, "ec", 0);
	struct net_tls_ctx *cc = ctx(NET_TLS_CLIENT, dir, "ec", 0);
	struct net_tls *s = net_tls_new(sc, NULL), *c = net_tls_new(cc, "localhost");
	handshake(c, s);
	static uint8_t block[16384];
	memset(block, 'x', sizeof block);
	double bytes = 0, t0 = now_s(), t;
	do {
		for (int i = 0; i < 64; i++) {
			net_tls_write(c, block, sizeof block);
			pass(c, s);
		}
		bytes += 64.0 * sizeof block;
	} while ((t = now_s() - t0) < secs);
	printf("bulk MB/s    %-46s %8.0f  (encrypt + decrypt, 16 KiB records)\n",
	       net_tls_cipher(s), bytes / t / 1e6);
	net_tls_free(c);
	net_tls_free(s);
	net_tls_ctx_free(sc);
	net_tls_ctx_free(cc);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: tls_bench CERTDIR [SECONDS]\n");
		return 2;
	}
	double secs = argc > 2 ? atof(argv[2]) : 2.0;
	bench_hs(argv[1], "ec", 13, secs);
	bench_hs(argv[1], "ec", 12, secs);
	bench_hs(argv[1], "rsa", 13, secs);
	bench_bulk(argv[1], secs);
	return 0;
}
