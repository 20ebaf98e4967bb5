/* test/proto/proxy_test — PROXY v1/v2: the spec's examples, every error class, TLVs
 * (CRC32C, UNIQUE_ID, SSL sub-TLVs), pipelined payload, detection, and builder round
 * trips. Every parse case is also fed as every prefix, each copied into a buffer of
 * exactly that size (so ASan sees any read past len): a valid header must be PP_AGAIN
 * for every proper prefix and give the one-shot result from its own length on; an
 * invalid one must never be PP_OK, and once PP_ERR stays PP_ERR. pp_parse keeps no
 * state between calls, so this also covers "split at every offset, then the rest". */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/crc32c.h"
#include "proto/proxy.h"

#define S(lit) (lit), (sizeof(lit) - 1)
#define NCASES(a) (sizeof(a) / sizeof((a)[0]))

/* v2 building blocks, spelled out from the spec (not from the builder under test). */
#define V2_SIG "\x0D\x0A\x0D\x0A\x00\x0D\x0A\x51\x55\x49\x54\x0A"
/* 127.0.0.1:12345 -> 10.0.0.2:25 */
#define V2_ADDR4 "\x7f\x00\x00\x01" "\x0a\x00\x00\x02" "\x30\x39" "\x00\x19"
/* [2001:db8::1]:12345 -> [2001:db8::2]:25 */
#define V2_ADDR6 "\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01" \
                 "\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02" \
                 "\x30\x39" "\x00\x19"

#define TCP6_MAX "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"

struct parse_case {
	const char *name;
	const char *in;
	size_t in_len;
	size_t max_len;              /* 0: PP_V2_MAX */
	size_t crc_at;               /* nonzero: patch the correct CRC32C value in here */
	enum pp_rc want_rc;
	enum pp_err want_err;
	size_t want_used;
	unsigned want_version;
	bool want_local;
	enum pp_family want_family;
	const char *want_src, *want_dst;        /* text (inet_pton), NULL: all zero */
	uint16_t want_sport, want_dport;
	const char *want_alpn, *want_authority, *want_netns;   /* NULL: absent */
	size_t want_unique_id_len;
	bool want_crc32c;
	bool want_ssl;
	uint8_t want_ssl_client;
	uint32_t want_ssl_verify;
	const char *want_ssl_version, *want_ssl_cn;
};

static uint8_t *dup_exact(const uint8_t *p, size_t n)
{
	uint8_t *b = malloc(n ? n : 1);
	cr_assert_not_null(b);
	if (n)
		memcpy(b, p, n);
	return b;
}

static void span_eq(const char *name, const char *what, struct pp_span a, const uint8_t *abase,
                    struct pp_span b, const uint8_t *bbase)
{
	cr_assert_eq(a.p == NULL, b.p == NULL, "%s: %s presence differs", name, what);
	cr_assert_eq(a.len, b.len, "%s: %s length %zu vs %zu", name, what, a.len, b.len);
	if (a.p)
		cr_assert_eq(a.p - abase, b.p - bbase, "%s: %s offset differs", name, what);
}

/* Same result, spans compared as offsets into their own buffers. */
static void result_eq(const char *name, const struct pp_result *a, const uint8_t *abase,
                      const struct pp_result *b, const uint8_t *bbase)
{
	cr_assert_eq(a->version, b->version, "%s: version", name);
	cr_assert_eq(a->local, b->local, "%s: local", name);
	cr_assert_eq(a->family, b->family, "%s: family", name);
	cr_assert_eq(memcmp(&a->src, &b->src, sizeof a->src), 0, "%s: src", name);
	cr_assert_eq(memcmp(&a->dst, &b->dst, sizeof a->dst), 0, "%s: dst", name);
	span_eq(name, "unix_src", a->unix_src, abase, b->unix_src, bbase);
	span_eq(name, "unix_dst", a->unix_dst, abase, b->unix_dst, bbase);
	span_eq(name, "alpn", a->alpn, abase, b->alpn, bbase);
	span_eq(name, "authority", a->authority, abase, b->authority, bbase);
	span_eq(name, "unique_id", a->unique_id, abase, b->unique_id, bbase);
	span_eq(name, "netns", a->netns, abase, b->netns, bbase);
	cr_assert_eq(a->crc32c_checked, b->crc32c_checked, "%s: crc32c_checked", name);
	cr_assert_eq(a->ssl.present, b->ssl.present, "%s: ssl", name);
	cr_assert_eq(a->ssl.client, b->ssl.client, "%s: ssl client", name);
	cr_assert_eq(a->ssl.verify, b->ssl.verify, "%s: ssl verify", name);
	span_eq(name, "ssl version", a->ssl.version, abase, b->ssl.version, bbase);
	span_eq(name, "ssl cn", a->ssl.cn, abase, b->ssl.cn, bbase);
	span_eq(name, "ssl cipher", a->ssl.cipher, abase, b->ssl.cipher, bbase);
	span_eq(name, "ssl sig_alg", a->ssl.sig_alg, abase, b->ssl.sig_alg, bbase);
	span_eq(name, "ssl key_alg", a->ssl.key_alg, abase, b->ssl.key_alg, bbase);
	cr_assert_eq(a->header_len, b->header_len, "%s: header_len", name);
}

static void want_span(const char *name, const char *what, struct pp_span got, const char *want)
{
	if (want == NULL) {
		cr_assert_null(got.p, "%s: %s should be absent", name, what);
		cr_assert_eq(got.len, 0, "%s: %s length", name, what);
		return;
	}
	cr_assert_not_null(got.p, "%s: %s missing", name, what);
	cr_assert_eq(got.len, strlen(want), "%s: %s length %zu want %zu", name, what, got.len,
	             strlen(want));
	cr_assert_eq(memcmp(got.p, want, got.len), 0, "%s: %s value", name, what);
}

static void want_addr(const char *name, const char *what, const struct pp_addr *got,
                      enum pp_family fam, const char *want, uint16_t want_port)
{
	uint8_t want_ip[16] = { 0 };
	if (want != NULL)
		cr_assert_eq(inet_pton(fam == PP_AF_INET ? AF_INET : AF_INET6, want, want_ip), 1,
		             "%s: bad want %s", name, want);
	cr_assert_eq(memcmp(got->ip, want_ip, sizeof want_ip), 0, "%s: %s address", name, what);
	cr_assert_eq(got->port, want_port, "%s: %s port %u want %u", name, what, got->port,
	             want_port);
}

/* Every prefix of in[0..len) against the full parse (rc_full/r_full over full_base). */
static void check_prefixes(const char *name, const uint8_t *in, size_t len, size_t max_len,
                           enum pp_rc rc_full, const struct pp_result *r_full,
                           const uint8_t *full_base)
{
	bool seen_err = false;

	for (size_t k = 0; k <= len; k++) {
		uint8_t *b = dup_exact(in, k);
		struct pp_result got_r;
		size_t got_used = 12345;
		enum pp_err got_err = PP_E_NOT_PROXY;
		enum pp_rc got_rc = pp_parse(b, k, max_len, &got_r, &got_used, &got_err);

		switch (rc_full) {
		case PP_OK:
			if (k < r_full->header_len) {
				cr_assert_eq(got_rc, PP_AGAIN, "%s: prefix %zu of a valid header: rc %d",
				             name, k, got_rc);
			} else {
				cr_assert_eq(got_rc, PP_OK, "%s: prefix %zu: rc %d", name, k, got_rc);
				cr_assert_eq(got_used, r_full->header_len, "%s: prefix %zu used", name, k);
				result_eq(name, &got_r, b, r_full, full_base);
			}
			break;
		case PP_ERR:
			cr_assert_neq(got_rc, PP_OK, "%s: prefix %zu of an invalid header is OK", name, k);
			break;
		case PP_AGAIN:
			cr_assert_eq(got_rc, PP_AGAIN, "%s: prefix %zu: rc %d", name, k, got_rc);
			break;
		}
		if (seen_err)
			cr_assert_eq(got_rc, PP_ERR, "%s: ERR at a shorter prefix, not at %zu", name, k);
		if (got_rc == PP_ERR) {
			seen_err = true;
			cr_assert_neq(got_err, PP_E_NONE, "%s: prefix %zu ERR without a code", name, k);
		} else {
			cr_assert_eq(got_err, PP_E_NONE, "%s: prefix %zu: err %d", name, k, got_err);
		}
		if (got_rc != PP_OK)
			cr_assert_eq(got_used, 0, "%s: prefix %zu: used %zu", name, k, got_used);
		free(b);
	}
}

static void run_case(const struct parse_case *c, const uint8_t *in, size_t len)
{
	size_t max_len = c->max_len ? c->max_len : PP_V2_MAX;
	uint8_t *b = dup_exact(in, len);
	uint8_t *orig = dup_exact(in, len);

	if (c->crc_at) {
		cr_assert_leq(c->crc_at + 4, len, "%s: crc_at", c->name);
		memset(b + c->crc_at, 0, 4);
		size_t hlen = 16 + ((size_t)b[14] << 8 | b[15]);
		uint32_t crc = crc32c(0, b, hlen);
		b[c->crc_at] = (uint8_t)(crc >> 24);
		b[c->crc_at + 1] = (uint8_t)(crc >> 16);
		b[c->crc_at + 2] = (uint8_t)(crc >> 8);
		b[c->crc_at + 3] = (uint8_t)crc;
		memcpy(orig, b, len);
	}

	struct pp_result got_r;
	size_t got_used = 12345;
	enum pp_err got_err = PP_E_NOT_PROXY;
	enum pp_rc got_rc = pp_parse(b, len, max_len, &got_r, &got_used, &got_err);

	cr_assert_eq(got_rc, c->want_rc, "%s: rc %d want %d (err %s)", c->name, got_rc, c->want_rc,
	             pp_strerror(got_err));
	cr_assert_eq(got_err, c->want_err, "%s: err %d (%s) want %d (%s)", c->name, got_err,
	             pp_strerror(got_err), c->want_err, pp_strerror(c->want_err));
	cr_assert_eq(memcmp(b, orig, len), 0, "%s: input modified", c->name);
	if (got_rc == PP_OK) {
		cr_assert_eq(got_used, c->want_used, "%s: used %zu want %zu", c->name, got_used,
		             c->want_used);
		cr_assert_eq(got_r.header_len, c->want_used, "%s: header_len", c->name);
		cr_assert_eq(got_r.version, c->want_version, "%s: version", c->name);
		cr_assert_eq(got_r.local, c->want_local, "%s: local", c->name);
		cr_assert_eq(got_r.family, c->want_family, "%s: family %d want %d", c->name,
		             got_r.family, c->want_family);
		if (c->want_family == PP_AF_INET || c->want_family == PP_AF_INET6) {
			want_addr(c->name, "src", &got_r.src, c->want_family, c->want_src, c->want_sport);
			want_addr(c->name, "dst", &got_r.dst, c->want_family, c->want_dst, c->want_dport);
		}
		want_span(c->name, "alpn", got_r.alpn, c->want_alpn);
		want_span(c->name, "authority", got_r.authority, c->want_authority);
		want_span(c->name, "netns", got_r.netns, c->want_netns);
		cr_assert_eq(got_r.unique_id.len, c->want_unique_id_len, "%s: unique_id len", c->name);
		cr_assert_eq(got_r.crc32c_checked, c->want_crc32c, "%s: crc32c_checked", c->name);
		cr_assert_eq(got_r.ssl.present, c->want_ssl, "%s: ssl present", c->name);
		if (c->want_ssl) {
			cr_assert_eq(got_r.ssl.client, c->want_ssl_client, "%s: ssl client", c->name);
			cr_assert_eq(got_r.ssl.verify, c->want_ssl_verify, "%s: ssl verify", c->name);
			want_span(c->name, "ssl version", got_r.ssl.version, c->want_ssl_version);
			want_span(c->name, "ssl cn", got_r.ssl.cn, c->want_ssl_cn);
		}
	} else {
		cr_assert_eq(got_used, 0, "%s: used %zu on rc %d", c->name, got_used, got_rc);
	}
	check_prefixes(c->name, b, len, max_len, got_rc, &got_r, b);
	free(orig);
	free(b);
}

/* --- v1 -------------------------------------------------------------------------- */

static const struct parse_case v1_cases[] = {
	/* the spec's examples */
	{ .name = "spec tcp4 worst case",
	  S("PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n"),
	  .want_rc = PP_OK, .want_used = 56, .want_version = 1, .want_family = PP_AF_INET,
	  .want_src = "255.255.255.255", .want_dst = "255.255.255.255",
	  .want_sport = 65535, .want_dport = 65535 },
	{ .name = "spec tcp6 worst case (104 octets)",
	  S("PROXY TCP6 " TCP6_MAX " " TCP6_MAX " 65535 65535\r\n"),
	  .want_rc = PP_OK, .want_used = 104, .want_version = 1, .want_family = PP_AF_INET6,
	  .want_src = TCP6_MAX, .want_dst = TCP6_MAX, .want_sport = 65535, .want_dport = 65535 },
	{ .name = "spec unknown short", S("PROXY UNKNOWN\r\n"),
	  .want_rc = PP_OK, .want_used = 15, .want_version = 1, .want_local = true },
	{ .name = "spec unknown worst case (107 octets)",
	  S("PROXY UNKNOWN " TCP6_MAX " " TCP6_MAX " 65535 65535\r\n"),
	  .want_rc = PP_OK, .want_used = 107, .want_version = 1, .want_local = true },
	{ .name = "spec tcp4 example", S("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n"),
	  .want_rc = PP_OK, .want_used = 47, .want_version = 1, .want_family = PP_AF_INET,
	  .want_src = "192.168.0.1", .want_dst = "192.168.0.11",
	  .want_sport = 56324, .want_dport = 443 },
	{ .name = "tcp6 compressed and mapped",
	  S("PROXY TCP6 2001:db8::1 ::ffff:192.0.2.1 0 25\r\n"),
	  .want_rc = PP_OK, .want_used = 46, .want_version = 1, .want_family = PP_AF_INET6,
	  .want_src = "2001:db8::1", .want_dst = "::ffff:192.0.2.1", .want_dport = 25 },
	{ .name = "tcp4 zeros", S("PROXY TCP4 0.0.0.0 10.0.0.1 0 0\r\n"),
	  .want_rc = PP_OK, .want_used = 33, .want_version = 1, .want_family = PP_AF_INET,
	  .want_src = "0.0.0.0", .want_dst = "10.0.0.1" },
	{ .name = "pipelined EHLO after the line",
	  S("PROXY TCP4 1.2.3.4 5.6.7.8 1111 25\r\nEHLO client.example\r\n"),
	  .want_rc = PP_OK, .want_used = 36, .want_version = 1, .want_family = PP_AF_INET,
	  .want_src = "1.2.3.4", .want_dst = "5.6.7.8", .want_sport = 1111, .want_dport = 25 },
	{ .name = "unknown with anything after", S("PROXY UNKNOWN\tjunk \x01\r\nQUIT\r\n"),
	  .want_rc = PP_OK, .want_used = 22, .want_version = 1, .want_local = true },

	/* ports */
	{ .name = "port 65536", S("PROXY TCP4 1.2.3.4 5.6.7.8 65536 25\r\n"),
	  .want_rc = PP_ERR, .want_err = PP_E_V1_PORT },
	{ .name = "port 0123", S("PROXY TCP4 1.2.3.4 5.6.7.8 0123 25\r\n"),
	  .want_rc = PP_ERR, .want_err = PP_E_V1_PORT },
	{ .name = "dport 00", S("PROXY TCP4 1.2.3.4 5.6.7.8 1 00\r\n"),
	  .want_rc = PP_ERR, .want_err = PP_E_V1_PORT },
	{ .name = "port with sign", S("PROXY TCP4 1.2.3.4 5.6.7.8 +1 25\r\n"),
	  .want_rc = PP_ERR, .want_err = PP_E_V1_PORT },
	{ .name = "port 999999", S("PROXY TCP4 1.2.3.4 5.6.7.8 999999 25\r\n"),
	  .want_rc = PP_ERR, .want_err = PP_E_V1_PORT },

	/* addresses */
	{ .name = "ipv6 under TCP4", S("PROXY TCP4 ::1 5.6.7.8 1 2\r\n"),
	  .want_rc = PP_ERR, .want_err = PP_E_V1_ADDRESS },
	{ .name = "ipv4 under TCP6", S("PROXY TCP6 ::1 5.6.7.8 1 2\r\n"),
	  .want_rc = PP_ERR, .want_err = PP_E_V1_ADDRESS },
	{ .name = "octet leading zero", S("PROXY TCP4 1.2.3.04 5.6.7.8 1 2\r\n"),
	  .want_rc = PP_ERR, .want_err = PP_E_V1_ADDRESS },
	{ .name = "octet 256", S("PROXY TCP4 1.2.3.4 5.6.7.256 1 2\r\n"),
	  .want_rc = PP_ERR, .want_err = PP_E_V1_ADDRESS },
	{ .name = "three octets", S("PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n"),
	  .want_rc = PP_ERR, .want_err = PP_E_V1_ADDRESS },
	{ .name = "five octets", S("PROXY TCP4 1.2.3.4.5 5.6.7.8 1 2\r\n"),
	  .want_rc = PP_ERR, .want_err = PP_E_V1_ADDRESS },
	{ .name = "ipv6 two double colons", S("PROXY TCP6 1::2::3 ::1 1 2\r\n"),
	  .want_rc = PP_ERR, .want_err = PP_E_V1_ADDRESS },
	{ .name = "ipv6 zone id", S("PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n"),
	  .want_rc = PP_ERR, .want_err = PP_E_V1_ADDRESS },

	/* line structure */
	{ .name = "lone CR", S("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX\n"),
	  .want_rc = PP_ERR, .want_err = PP_E_V1_BARE_CRLF },
	{ .name = "lone LF", S("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n"),
	  .want_rc = PP_ERR, .want_err = PP_E_V1_BARE_CRLF },
	{ .name = "CR CR LF", S("PROXY UNKNOWN\r\r\n"),
	  .want_rc = PP_ERR, .want_err = PP_E_V1_BARE_CRLF },
	{ .name = "double space after PROXY", S("PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n"),
	  .want_rc = PP_ERR, .want_err = PP_E_V1_SYNTAX },
	{ .name = "double space between fields", S("PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n"),
	  .want_rc = PP_ERR, .want_err = PP_E_V1_SYNTAX },
	{ .name = "trailing space", S("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n"),
	  .want_rc = PP_ERR, .want_err = PP_E_V1_SYNTAX },
	{ .name = "extra field", S("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n"),
	  .want_rc = PP_ERR, .want_err = PP_E_V1_SYNTAX },
	{ .name = "missing port", S("PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n"),
	  .want_rc = PP_ERR, .want_err = PP_E_V1_SYNTAX },
	{ .name = "no protocol", S("PROXY \r\n"),
	  .want_rc = PP_ERR, .want_err = PP_E_V1_SYNTAX },
	{ .name = "tab separator", S("PROXY TCP4\t1.2.3.4 5.6.7.8 1 2\r\n"),
	  .want_rc = PP_ERR, .want_err = PP_E_V1_FAMILY },
	{ .name = "TCP5", S("PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n"),
	  .want_rc = PP_ERR, .want_err = PP_E_V1_FAMILY },
	{ .name = "lowercase tcp4", S("PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n"),
	  .want_rc = PP_ERR, .want_err = PP_E_V1_FAMILY },
	{ .name = "UNKNOW", S("PROXY UNKNOW\r\n"),
	  .want_rc = PP_ERR, .want_err = PP_E_V1_FAMILY },
	{ .name = "incomplete line", S("PROXY TCP4 1.2.3.4 5.6.7.8 1 2"),
	  .want_rc = PP_AGAIN },
	{ .name = "incomplete CR", S("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r"),
	  .want_rc = PP_AGAIN },

	/* not PROXY at all */
	{ .name = "EHLO", S("EHLO example.org\r\n"),
	  .want_rc = PP_ERR, .want_err = PP_E_NOT_PROXY },
	{ .name = "lowercase proxy", S("proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n"),
	  .want_rc = PP_ERR, .want_err = PP_E_NOT_PROXY },
	{ .name = "PROXY without space", S("PROXYTCP4\r\n"),
	  .want_rc = PP_ERR, .want_err = PP_E_NOT_PROXY },
	{ .name = "empty", "", 0, .want_rc = PP_AGAIN },
};

Test(proxy_v1, table)
{
	for (size_t i = 0; i < NCASES(v1_cases); i++)
		run_case(&v1_cases[i], (const uint8_t *)v1_cases[i].in, v1_cases[i].in_len);
}

Test(proxy_v1, line_over_107_octets)
{
	/* UNKNOWN accepts anything up to the CRLF; 105 octets of content + CRLF is 107,
	 * 106 octets of content is one too many: ERR at octet 107, before any CRLF. */
	uint8_t buf[200];
	memset(buf, 'x', sizeof buf);
	memcpy(buf, "PROXY UNKNOWN ", 14);

	memcpy(buf + 105, "\r\n", 2);
	struct parse_case ok = { .name = "107 octets", .want_rc = PP_OK, .want_used = 107,
	                         .want_version = 1, .want_local = true };
	run_case(&ok, buf, 120);

	memset(buf + 105, 'x', 2);
	memcpy(buf + 106, "\r\n", 2);
	struct parse_case crlf_late = { .name = "CRLF at 107-108", .want_rc = PP_ERR,
	                                .want_err = PP_E_V1_TOO_LONG };
	run_case(&crlf_late, buf, 108);

	memset(buf + 106, 'x', 2);
	struct parse_case none = { .name = "no CRLF", .want_rc = PP_ERR,
	                           .want_err = PP_E_V1_TOO_LONG };
	run_case(&none, buf, 107);
	run_case(&none, buf, sizeof buf);
	struct parse_case again = { .name = "106 octets, no CRLF yet", .want_rc = PP_AGAIN };
	run_case(&again, buf, 106);
}

/* The address parsers against glibc's inet_pton (RFC 4291 text forms, strict dotted
 * quads): same verdict, same octets. */
Test(proxy_v1, addresses_agree_with_inet_pton)
{
	static const char *const v6[] = {
		"::", "::1", "1::", "1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7::", "::2:3:4:5:6:7:8",
		"1::8", "ABCD:ef01::2", "0:0:0:0:0:0:0:0", "::ffff:1.2.3.4", "::1.2.3.4",
		"1:2:3:4:5:6:1.2.3.4", "1:2:3:4:5::1.2.3.4", "1::2:3.4.5.6", "fe80::",
		"1::2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7", ":1::", "1:::2",
		"1::2::3", "12345::", ":", "1:", ":1", "::g", "1:2:3:4:5:6:7:1.2.3.4",
		"1:2:3:4:5:6::1.2.3.4", "::ffff:1.2.3", "::ffff:01.2.3.4", "::ffff:256.2.3.4",
		"::ffff:1.2.3.4.5", "1.2.3.4", "::1.2.3.4:5", "::ffff:1.2.3.", "::abc.1.2.3",
		"0000:0000:0000:0000:0000:0000:0000:0000", "00000::", "::0:1.2.3.4",
		"1:2:3:4:5:6:7:8::", "::1:2:3:4:5:6:7", "1:2:3::4:5:6:7",
	};
	static const char *const v4[] = {
		"0.0.0.0", "255.255.255.255", "1.2.3.4", "1.2.3.04", "1.2.3.4.5", "1..2.3",
		"1.2.3.", ".1.2.3", "256.1.1.1", "1.2.3", "1", "1.2.3.4a", "001.2.3.4", "10.0.0.10",
	};
	char line[160];

	for (int fam = 0; fam < 2; fam++) {
		const char *const *list = fam ? v6 : v4;
		size_t n = fam ? NCASES(v6) : NCASES(v4);
		const char *other = fam ? "::1" : "127.0.0.1";
		for (size_t i = 0; i < n; i++) {
			uint8_t want_ip[16] = { 0 };
			int want = inet_pton(fam ? AF_INET6 : AF_INET, list[i], want_ip);
			int ln = snprintf(line, sizeof line, "PROXY %s %s %s 1 2\r\n",
			                  fam ? "TCP6" : "TCP4", list[i], other);
			struct parse_case c = {
				.name = list[i], .want_version = 1,
				.want_family = fam ? PP_AF_INET6 : PP_AF_INET,
				.want_rc = want == 1 ? PP_OK : PP_ERR,
				.want_err = want == 1 ? PP_E_NONE : PP_E_V1_ADDRESS,
				.want_used = (size_t)ln, .want_src = want == 1 ? list[i] : NULL,
				.want_dst = other, .want_sport = 1, .want_dport = 2,
			};
			run_case(&c, (const uint8_t *)line, (size_t)ln);
		}
	}
}

/* --- v2 -------------------------------------------------------------------------- */

static const struct parse_case v2_cases[] = {
	{ .name = "tcp4", S(V2_SIG "\x21\x11\x00\x0c" V2_ADDR4),
	  .want_rc = PP_OK, .want_used = 28, .want_version = 2, .want_family = PP_AF_INET,
	  .want_src = "127.0.0.1", .want_dst = "10.0.0.2", .want_sport = 12345, .want_dport = 25 },
	{ .name = "tcp6", S(V2_SIG "\x21\x21\x00\x24" V2_ADDR6),
	  .want_rc = PP_OK, .want_used = 52, .want_version = 2, .want_family = PP_AF_INET6,
	  .want_src = "2001:db8::1", .want_dst = "2001:db8::2",
	  .want_sport = 12345, .want_dport = 25 },
	{ .name = "udp4 accepted", S(V2_SIG "\x21\x12\x00\x0c" V2_ADDR4),
	  .want_rc = PP_OK, .want_used = 28, .want_version = 2, .want_family = PP_AF_INET,
	  .want_src = "127.0.0.1", .want_dst = "10.0.0.2", .want_sport = 12345, .want_dport = 25 },
	{ .name = "trailing payload untouched",
	  S(V2_SIG "\x21\x11\x00\x0c" V2_ADDR4 "EHLO a.example\r\n"),
	  .want_rc = PP_OK, .want_used = 28, .want_version = 2, .want_family = PP_AF_INET,
	  .want_src = "127.0.0.1", .want_dst = "10.0.0.2", .want_sport = 12345, .want_dport = 25 },

	/* LOCAL and UNSPEC keep the socket's addresses; the length is still honoured */
	{ .name = "local, length 0", S(V2_SIG "\x20\x00\x00\x00" "QUIT\r\n"),
	  .want_rc = PP_OK, .want_used = 16, .want_version = 2, .want_local = true },
	{ .name = "local with nonzero length skipped",
	  S(V2_SIG "\x20\x11\x00\x0e" V2_ADDR4 "\xff\x00" "EHLO x\r\n"),
	  .want_rc = PP_OK, .want_used = 30, .want_version = 2, .want_local = true },
	{ .name = "local with a short address block", S(V2_SIG "\x20\x21\x00\x05" "hello"),
	  .want_rc = PP_OK, .want_used = 21, .want_version = 2, .want_local = true },
	{ .name = "proxy, family unspec", S(V2_SIG "\x21\x00\x00\x03" "abc"),
	  .want_rc = PP_OK, .want_used = 19, .want_version = 2, .want_local = true },

	/* fixed part */
	{ .name = "version 1", S(V2_SIG "\x11\x11\x00\x0c" V2_ADDR4),
	  .want_rc = PP_ERR, .want_err = PP_E_V2_VERSION },
	{ .name = "version 3", S(V2_SIG "\x31\x11\x00\x0c" V2_ADDR4),
	  .want_rc = PP_ERR, .want_err = PP_E_V2_VERSION },
	{ .name = "command 3", S(V2_SIG "\x23\x11\x00\x0c" V2_ADDR4),
	  .want_rc = PP_ERR, .want_err = PP_E_V2_COMMAND },
	{ .name = "family 4", S(V2_SIG "\x21\x41\x00\x0c" V2_ADDR4),
	  .want_rc = PP_ERR, .want_err = PP_E_V2_FAMILY },
	{ .name = "transport 3", S(V2_SIG "\x21\x13\x00\x0c" V2_ADDR4),
	  .want_rc = PP_ERR, .want_err = PP_E_V2_FAMILY },
	{ .name = "length shorter than the inet block", S(V2_SIG "\x21\x11\x00\x0b" V2_ADDR4),
	  .want_rc = PP_ERR, .want_err = PP_E_V2_SHORT },
	{ .name = "length shorter than the inet6 block", S(V2_SIG "\x21\x21\x00\x0c" V2_ADDR4),
	  .want_rc = PP_ERR, .want_err = PP_E_V2_SHORT },
	{ .name = "length shorter than the unix block", S(V2_SIG "\x21\x31\x00\xd7"),
	  .want_rc = PP_ERR, .want_err = PP_E_V2_SHORT },
	{ .name = "over the cap", S(V2_SIG "\x21\x11\x01\x00" V2_ADDR4), .max_len = 64,
	  .want_rc = PP_ERR, .want_err = PP_E_V2_TOO_LONG },
	{ .name = "exactly the cap", S(V2_SIG "\x21\x11\x00\x0c" V2_ADDR4), .max_len = 28,
	  .want_rc = PP_OK, .want_used = 28, .want_version = 2, .want_family = PP_AF_INET,
	  .want_src = "127.0.0.1", .want_dst = "10.0.0.2", .want_sport = 12345, .want_dport = 25 },
	{ .name = "one over the cap", S(V2_SIG "\x21\x11\x00\x0d" V2_ADDR4 "\x04"), .max_len = 28,
	  .want_rc = PP_ERR, .want_err = PP_E_V2_TOO_LONG },
	{ .name = "local over the cap", S(V2_SIG "\x20\x00\x00\x40"), .max_len = 64,
	  .want_rc = PP_ERR, .want_err = PP_E_V2_TOO_LONG },
	{ .name = "incomplete", S(V2_SIG "\x21\x11\x00\x0c" "\x7f\x00"), .want_rc = PP_AGAIN },
	{ .name = "signature prefix", S("\r\n\r\n\0\r\nQU"), .want_rc = PP_AGAIN },
	{ .name = "broken signature", S("\r\n\r\n\0\r\nQUIX\n\x21\x11\x00\x0c"),
	  .want_rc = PP_ERR, .want_err = PP_E_NOT_PROXY },

	/* TLVs */
	{ .name = "tlv past the header", S(V2_SIG "\x21\x11\x00\x10" V2_ADDR4 "\x04\x00\x05" "x"),
	  .want_rc = PP_ERR, .want_err = PP_E_TLV_BOUNDS },
	{ .name = "tlv past the header, followed by payload",
	  S(V2_SIG "\x21\x11\x00\x10" V2_ADDR4 "\x04\x00\x02" "xEHLO"),
	  .want_rc = PP_ERR, .want_err = PP_E_TLV_BOUNDS },
	{ .name = "tlv header cut by the length", S(V2_SIG "\x21\x11\x00\x0e" V2_ADDR4 "\x04\x00"),
	  .want_rc = PP_ERR, .want_err = PP_E_TLV_BOUNDS },
	{ .name = "alpn authority netns noop unknown",
	  S(V2_SIG "\x21\x11\x00\x36" V2_ADDR4
	    "\x01\x00\x02" "h2"
	    "\x02\x00\x0b" "example.com"
	    "\x04\x00\x03" "\0\0\0"
	    "\xe0\x00\x01" "?"
	    "\x30\x00\x03" "red"
	    "\x01\x00\x04" "smtp"),
	  .want_rc = PP_OK, .want_used = 70, .want_version = 2, .want_family = PP_AF_INET,
	  .want_src = "127.0.0.1", .want_dst = "10.0.0.2", .want_sport = 12345, .want_dport = 25,
	  .want_alpn = "h2", .want_authority = "example.com", .want_netns = "red" },
	{ .name = "empty tlv at the end", S(V2_SIG "\x21\x11\x00\x0f" V2_ADDR4 "\x04\x00\x00"),
	  .want_rc = PP_OK, .want_used = 31, .want_version = 2, .want_family = PP_AF_INET,
	  .want_src = "127.0.0.1", .want_dst = "10.0.0.2", .want_sport = 12345, .want_dport = 25 },
	{ .name = "crc32c correct",
	  S(V2_SIG "\x21\x11\x00\x18" V2_ADDR4 "\x02\x00\x02" "mx" "\x03\x00\x04" "\0\0\0\0"),
	  .crc_at = 36,
	  .want_rc = PP_OK, .want_used = 40, .want_version = 2, .want_family = PP_AF_INET,
	  .want_src = "127.0.0.1", .want_dst = "10.0.0.2", .want_sport = 12345, .want_dport = 25,
	  .want_authority = "mx", .want_crc32c = true },
	{ .name = "crc32c correct, tlv after it",
	  S(V2_SIG "\x21\x21\x00\x2e" V2_ADDR6 "\x03\x00\x04" "\0\0\0\0" "\x01\x00\x00"),
	  .crc_at = 55,
	  .want_rc = PP_OK, .want_used = 62, .want_version = 2, .want_family = PP_AF_INET6,
	  .want_src = "2001:db8::1", .want_dst = "2001:db8::2", .want_sport = 12345,
	  .want_dport = 25, .want_alpn = "", .want_crc32c = true },
	{ .name = "crc32c mismatch",
	  S(V2_SIG "\x21\x11\x00\x13" V2_ADDR4 "\x03\x00\x04" "\xde\xad\xbe\xef"),
	  .want_rc = PP_ERR, .want_err = PP_E_TLV_CRC32C },
	{ .name = "crc32c of 3 octets", S(V2_SIG "\x21\x11\x00\x12" V2_ADDR4 "\x03\x00\x03" "abc"),
	  .want_rc = PP_ERR, .want_err = PP_E_TLV_CRC32C },
	{ .name = "ssl with cn and version",
	  S(V2_SIG "\x21\x11\x00\x2c" V2_ADDR4
	    "\x20\x00\x1d" "\x07" "\x00\x00\x00\x00"
	    "\x21\x00\x07" "TLSv1.3"
	    "\x22\x00\x0b" "example.com"),
	  .want_rc = PP_OK, .want_used = 60, .want_version = 2, .want_family = PP_AF_INET,
	  .want_src = "127.0.0.1", .want_dst = "10.0.0.2", .want_sport = 12345, .want_dport = 25,
	  .want_ssl = true, .want_ssl_client = 7, .want_ssl_verify = 0,
	  .want_ssl_version = "TLSv1.3", .want_ssl_cn = "example.com" },
	{ .name = "ssl fixed part only, verify big-endian",
	  S(V2_SIG "\x21\x11\x00\x14" V2_ADDR4 "\x20\x00\x05" "\x01" "\x01\x02\x03\x04"),
	  .want_rc = PP_OK, .want_used = 36, .want_version = 2, .want_family = PP_AF_INET,
	  .want_src = "127.0.0.1", .want_dst = "10.0.0.2", .want_sport = 12345, .want_dport = 25,
	  .want_ssl = true, .want_ssl_client = 1, .want_ssl_verify = 0x01020304 },
	{ .name = "ssl shorter than its fixed part",
	  S(V2_SIG "\x21\x11\x00\x13" V2_ADDR4 "\x20\x00\x04" "\x01\x00\x00\x00"),
	  .want_rc = PP_ERR, .want_err = PP_E_TLV_SSL },
	{ .name = "ssl sub-tlv past the ssl value",
	  S(V2_SIG "\x21\x11\x00\x1d" V2_ADDR4 "\x20\x00\x0b" "\x01\0\0\0\0" "\x22\x00\x09" "abc"
	    "\x04\x00\x00"),
	  .want_rc = PP_ERR, .want_err = PP_E_TLV_BOUNDS },
	{ .name = "ssl sub-tlv header cut",
	  S(V2_SIG "\x21\x11\x00\x16" V2_ADDR4 "\x20\x00\x07" "\x01\0\0\0\0" "\x22\x00"),
	  .want_rc = PP_ERR, .want_err = PP_E_TLV_BOUNDS },
	{ .name = "local ignores bad tlvs", S(V2_SIG "\x20\x11\x00\x10" V2_ADDR4 "\x03\x00\x09" "x"),
	  .want_rc = PP_OK, .want_used = 32, .want_version = 2, .want_local = true },
};

Test(proxy_v2, table)
{
	for (size_t i = 0; i < NCASES(v2_cases); i++)
		run_case(&v2_cases[i], (const uint8_t *)v2_cases[i].in, v2_cases[i].in_len);
}

static size_t v2_with_unique_id(uint8_t *buf, size_t idlen)
{
	size_t body = 12 + 3 + idlen;
	memcpy(buf, V2_SIG "\x21\x11", 14);
	buf[14] = (uint8_t)(body >> 8);
	buf[15] = (uint8_t)body;
	memcpy(buf + 16, V2_ADDR4, 12);
	buf[28] = PP2_TYPE_UNIQUE_ID;
	buf[29] = (uint8_t)(idlen >> 8);
	buf[30] = (uint8_t)idlen;
	for (size_t k = 0; k < idlen; k++)
		buf[31 + k] = (uint8_t)k;
	return 16 + body;
}

Test(proxy_v2, unique_id_limit)
{
	uint8_t buf[256];
	struct parse_case ok = {
		.name = "unique_id 128", .want_rc = PP_OK, .want_used = 16 + 12 + 3 + 128,
		.want_version = 2, .want_family = PP_AF_INET, .want_src = "127.0.0.1",
		.want_dst = "10.0.0.2", .want_sport = 12345, .want_dport = 25,
		.want_unique_id_len = 128,
	};
	run_case(&ok, buf, v2_with_unique_id(buf, 128));

	struct parse_case bad = { .name = "unique_id 129", .want_rc = PP_ERR,
	                          .want_err = PP_E_TLV_UNIQUE_ID };
	run_case(&bad, buf, v2_with_unique_id(buf, 129));
	/* known from the TLV header alone: no need to wait for the value */
	size_t got_used;
	enum pp_err got_err;
	struct pp_result got_r;
	cr_assert_eq(pp_parse(buf, 31, PP_V2_MAX, &got_r, &got_used, &got_err), PP_ERR);
	cr_assert_eq(got_err, PP_E_TLV_UNIQUE_ID);
}

Test(proxy_v2, unix_addresses)
{
	uint8_t buf[16 + 216 + 8];
	memcpy(buf, V2_SIG "\x21\x31\x00\xd8", 16);
	memset(buf + 16, 0, 216);
	memcpy(buf + 16, "/run/src.sock", 13);
	memcpy(buf + 16 + 108, "/run/dst.sock", 13);
	memcpy(buf + 232, "EHLO x\r\n", 8);

	struct parse_case c = { .name = "unix", .want_rc = PP_OK, .want_used = 232,
	                        .want_version = 2, .want_family = PP_AF_UNIX };
	run_case(&c, buf, sizeof buf);

	struct pp_result got_r;
	size_t got_used;
	enum pp_err got_err;
	cr_assert_eq(pp_parse(buf, sizeof buf, PP_V2_MAX, &got_r, &got_used, &got_err), PP_OK);
	cr_assert_eq(got_r.unix_src.p, buf + 16);
	cr_assert_eq(got_r.unix_src.len, 108);
	cr_assert_eq(got_r.unix_dst.p, buf + 124);
	cr_assert_eq(got_r.unix_dst.len, 108);
	cr_assert_str_eq((const char *)got_r.unix_dst.p, "/run/dst.sock");
}

Test(proxy_v2, errors_come_early)
{
	/* each error is reported at the first octet that proves it */
	static const struct {
		const char *name;
		const char *in;
		size_t in_len;
		size_t max_len;
		enum pp_err want_err;
	} cases[] = {
		{ "version at octet 13", S(V2_SIG "\x11"), PP_V2_MAX, PP_E_V2_VERSION },
		{ "command at octet 13", S(V2_SIG "\x2f"), PP_V2_MAX, PP_E_V2_COMMAND },
		{ "family at octet 14", S(V2_SIG "\x21\x51"), PP_V2_MAX, PP_E_V2_FAMILY },
		{ "cap at octet 16", S(V2_SIG "\x21\x11\xff\xff"), 1024, PP_E_V2_TOO_LONG },
		{ "short at octet 16", S(V2_SIG "\x21\x11\x00\x00"), PP_V2_MAX, PP_E_V2_SHORT },
		{ "tlv bounds at its header", S(V2_SIG "\x21\x11\x00\x20" V2_ADDR4 "\x01\x00\x20"),
		  PP_V2_MAX, PP_E_TLV_BOUNDS },
		{ "v1 family word", S("PROXY TCP5"), PP_V2_MAX, PP_E_V1_FAMILY },
		{ "v1 double space", S("PROXY  "), PP_V2_MAX, PP_E_V1_SYNTAX },
		{ "v1 port", S("PROXY TCP4 1.2.3.4 5.6.7.8 0"), PP_V2_MAX, PP_E_NONE },
		{ "v1 port leading zero", S("PROXY TCP4 1.2.3.4 5.6.7.8 01"), PP_V2_MAX, PP_E_V1_PORT },
		{ "v1 octet", S("PROXY TCP4 1.2.3.25"), PP_V2_MAX, PP_E_NONE },
		{ "v1 octet over 255", S("PROXY TCP4 1.2.3.256"), PP_V2_MAX, PP_E_V1_ADDRESS },
		{ "v1 ipv6 group of 5", S("PROXY TCP6 12345"), PP_V2_MAX, PP_E_V1_ADDRESS },
		{ "v1 no room for a dotted tail", S("PROXY TCP6 1:2:3:4:5:6::1."), PP_V2_MAX,
		  PP_E_V1_ADDRESS },
		{ "v1 ipv6 ninth group", S("PROXY TCP6 1:2:3:4:5:6:7:8:"), PP_V2_MAX,
		  PP_E_V1_ADDRESS },
		{ "v1 lone CR", S("PROXY UNKNOWN\rX"), PP_V2_MAX, PP_E_V1_BARE_CRLF },
	};
	for (size_t i = 0; i < NCASES(cases); i++) {
		uint8_t *b = dup_exact((const uint8_t *)cases[i].in, cases[i].in_len);
		struct pp_result got_r;
		size_t got_used;
		enum pp_err got_err;
		enum pp_rc got_rc = pp_parse(b, cases[i].in_len, cases[i].max_len, &got_r, &got_used,
		                             &got_err);
		enum pp_rc want_rc = cases[i].want_err == PP_E_NONE ? PP_AGAIN : PP_ERR;
		cr_assert_eq(got_rc, want_rc, "%s: rc %d", cases[i].name, got_rc);
		cr_assert_eq(got_err, cases[i].want_err, "%s: err %s", cases[i].name,
		             pp_strerror(got_err));
		free(b);
	}
}

/* --- detection ------------------------------------------------------------------- */

Test(proxy, detect)
{
	static const struct {
		const char *in;
		size_t in_len;
		enum pp_detect want;
	} cases[] = {
		{ S(""), PP_DETECT_MAYBE },
		{ S("P"), PP_DETECT_MAYBE },
		{ S("PROXY"), PP_DETECT_MAYBE },
		{ S("PROXY "), PP_DETECT_V1 },
		{ S("PROXY TCP4 1.2.3.4"), PP_DETECT_V1 },
		{ S("PROXYX"), PP_DETECT_NONE },
		{ S("proxy "), PP_DETECT_NONE },
		{ S("EHLO"), PP_DETECT_NONE },
		{ S("E"), PP_DETECT_NONE },
		{ S("\r"), PP_DETECT_MAYBE },
		{ S("\r\n\r\n\0"), PP_DETECT_MAYBE },
		{ S("\r\n\r\n\0\r\nQUIT"), PP_DETECT_MAYBE },
		{ S(V2_SIG), PP_DETECT_V2 },
		{ S(V2_SIG "\x21\x11"), PP_DETECT_V2 },
		{ S("\r\n\r\nX"), PP_DETECT_NONE },
		{ S("\r\n\r\n\0\r\nQUIT\r"), PP_DETECT_NONE },
		{ S("\r\nQUIT\r\n"), PP_DETECT_NONE },
	};
	for (size_t i = 0; i < NCASES(cases); i++) {
		uint8_t *b = dup_exact((const uint8_t *)cases[i].in, cases[i].in_len);
		enum pp_detect got = pp_detect(b, cases[i].in_len);
		cr_assert_eq(got, cases[i].want, "case %zu: got %d want %d", i, got, cases[i].want);
		free(b);
	}
}

Test(proxy, strerror)
{
	for (int e = PP_E_NONE; e <= PP_E_TLV_SSL; e++) {
		const char *s = pp_strerror((enum pp_err)e);
		cr_assert_not_null(s);
		cr_assert_str_neq(s, "unknown error", "code %d has no string", e);
	}
	cr_assert_str_eq(pp_strerror((enum pp_err)999), "unknown error");
}

/* --- builders -------------------------------------------------------------------- */

static struct pp_addr mkaddr(int af, const char *txt, uint16_t port)
{
	struct pp_addr a;
	memset(&a, 0, sizeof a);
	cr_assert_eq(inet_pton(af, txt, a.ip), 1, "bad test address %s", txt);
	a.port = port;
	return a;
}

Test(proxy_build, v1_text_and_round_trip)
{
	static const struct {
		enum pp_family fam;
		const char *src, *dst;
		uint16_t sport, dport;
		const char *want;
	} cases[] = {
		{ PP_AF_INET, "192.0.2.1", "198.51.100.7", 40000, 25,
		  "PROXY TCP4 192.0.2.1 198.51.100.7 40000 25\r\n" },
		{ PP_AF_INET, "255.255.255.255", "0.0.0.0", 65535, 0,
		  "PROXY TCP4 255.255.255.255 0.0.0.0 65535 0\r\n" },
		{ PP_AF_INET6, "2001:DB8:0:0:0:0:0:1", "::", 1, 2,
		  "PROXY TCP6 2001:db8::1 :: 1 2\r\n" },
		{ PP_AF_INET6, "1:0:0:1:0:0:0:1", "1:0:0:0:1:0:0:1", 3, 4,
		  "PROXY TCP6 1:0:0:1::1 1::1:0:0:1 3 4\r\n" },
		{ PP_AF_INET6, "1:0:1:1:1:1:1:1", "0:0:1:1:1:1:0:0", 5, 6,
		  "PROXY TCP6 1:0:1:1:1:1:1:1 ::1:1:1:1:0:0 5 6\r\n" },
		{ PP_AF_INET6, "::ffff:192.0.2.1", "::1", 7, 8,
		  "PROXY TCP6 ::ffff:192.0.2.1 ::1 7 8\r\n" },
		{ PP_AF_INET6, "fe80::abcd:ef00", "2001:db8:0:0:1::", 9, 10,
		  "PROXY TCP6 fe80::abcd:ef00 2001:db8:0:0:1:: 9 10\r\n" },
		{ PP_AF_INET6, TCP6_MAX, TCP6_MAX, 65535, 65535,
		  "PROXY TCP6 " TCP6_MAX " " TCP6_MAX " 65535 65535\r\n" },
	};
	for (size_t i = 0; i < NCASES(cases); i++) {
		int af = cases[i].fam == PP_AF_INET ? AF_INET : AF_INET6;
		struct pp_addr src = mkaddr(af, cases[i].src, cases[i].sport);
		struct pp_addr dst = mkaddr(af, cases[i].dst, cases[i].dport);
		uint8_t out[PP_V1_MAX];
		size_t want_len = strlen(cases[i].want);

		size_t got_len = pp_build_v1(out, sizeof out, cases[i].fam, &src, &dst);
		cr_assert_eq(got_len, want_len, "case %zu: length %zu want %zu", i, got_len, want_len);
		cr_assert_eq(memcmp(out, cases[i].want, want_len), 0, "case %zu: got %.*s", i,
		             (int)got_len, out);
		cr_assert_eq(pp_build_v1(out, want_len - 1, cases[i].fam, &src, &dst), 0,
		             "case %zu: cap too small", i);

		struct parse_case c = {
			.name = cases[i].want, .want_rc = PP_OK, .want_used = want_len,
			.want_version = 1, .want_family = cases[i].fam, .want_src = cases[i].src,
			.want_dst = cases[i].dst, .want_sport = cases[i].sport,
			.want_dport = cases[i].dport,
		};
		run_case(&c, out, want_len);
	}

	uint8_t out[32];
	cr_assert_eq(pp_build_v1(out, sizeof out, PP_AF_UNSPEC, NULL, NULL), 15);
	cr_assert_eq(memcmp(out, "PROXY UNKNOWN\r\n", 15), 0);
	cr_assert_eq(pp_build_v1(out, 14, PP_AF_UNSPEC, NULL, NULL), 0);
	cr_assert_eq(pp_build_v1(out, sizeof out, PP_AF_INET, NULL, NULL), 0);
	cr_assert_eq(pp_build_v1(out, sizeof out, PP_AF_UNIX, NULL, NULL), 0);
}

Test(proxy_build, v2_round_trip)
{
	static const uint8_t uid[PP_UNIQUE_ID_MAX] = { 1, 2, 3 };
	const struct pp_tlv tlvs[] = {
		{ PP2_TYPE_ALPN, (const uint8_t *)"smtp", 4 },
		{ PP2_TYPE_AUTHORITY, (const uint8_t *)"mx.example.org", 14 },
		{ PP2_TYPE_NOOP, NULL, 0 },
		{ PP2_TYPE_UNIQUE_ID, uid, sizeof uid },
	};
	static const struct {
		enum pp_family fam;
		const char *src, *dst;
		size_t ntlvs;
		bool crc;
		size_t want_len;
	} cases[] = {
		{ PP_AF_INET, "192.0.2.1", "198.51.100.7", 0, false, 16 + 12 },
		{ PP_AF_INET, "192.0.2.1", "198.51.100.7", 0, true, 16 + 12 + 7 },
		{ PP_AF_INET, "192.0.2.1", "198.51.100.7", 4, true, 16 + 12 + 7 + 7 + 17 + 3 + 131 },
		{ PP_AF_INET6, "2001:db8::1", "::ffff:10.0.0.1", 0, false, 16 + 36 },
		{ PP_AF_INET6, "2001:db8::1", "::ffff:10.0.0.1", 2, true, 16 + 36 + 7 + 17 + 7 },
		{ PP_AF_INET6, "2001:db8::1", "::ffff:10.0.0.1", 4, false, 16 + 36 + 7 + 17 + 3 + 131 },
	};
	for (size_t i = 0; i < NCASES(cases); i++) {
		int af = cases[i].fam == PP_AF_INET ? AF_INET : AF_INET6;
		struct pp_addr src = mkaddr(af, cases[i].src, (uint16_t)(1000 + i));
		struct pp_addr dst = mkaddr(af, cases[i].dst, 25);
		uint8_t out[512];
		size_t want_len = cases[i].want_len;

		size_t got_len = pp_build_v2(out, sizeof out, false, cases[i].fam, &src, &dst, tlvs,
		                             cases[i].ntlvs, cases[i].crc);
		cr_assert_eq(got_len, want_len, "case %zu: length %zu want %zu", i, got_len, want_len);
		cr_assert_eq(pp_build_v2(out + 256, want_len - 1, false, cases[i].fam, &src, &dst,
		                         tlvs, cases[i].ntlvs, cases[i].crc), 0, "case %zu: cap", i);
		cr_assert_eq(memcmp(out, V2_SIG "\x21", 13), 0, "case %zu: signature", i);
		cr_assert_eq(out[13], cases[i].fam == PP_AF_INET ? 0x11 : 0x21, "case %zu: fam", i);

		char name[64];
		snprintf(name, sizeof name, "v2 round trip %zu", i);
		struct parse_case c = {
			.name = name, .want_rc = PP_OK, .want_used = want_len, .want_version = 2,
			.want_family = cases[i].fam, .want_src = cases[i].src, .want_dst = cases[i].dst,
			.want_sport = (uint16_t)(1000 + i), .want_dport = 25,
			.want_alpn = cases[i].ntlvs >= 1 ? "smtp" : NULL,
			.want_authority = cases[i].ntlvs >= 2 ? "mx.example.org" : NULL,
			.want_unique_id_len = cases[i].ntlvs >= 4 ? sizeof uid : 0,
			.want_crc32c = cases[i].crc,
		};
		run_case(&c, out, want_len);

		if (cases[i].crc) {
			/* any flipped bit after the fixed part is caught, except in the CRC32C
			 * TLV's type octet, which makes it an unknown TLV */
			for (size_t k = 16; k < want_len; k++) {
				if (k == want_len - 7)
					continue;
				out[k] ^= 0x10;
				struct pp_result got_r;
				size_t got_used;
				enum pp_err got_err;
				enum pp_rc got_rc = pp_parse(out, want_len, PP_V2_MAX, &got_r, &got_used,
				                             &got_err);
				cr_assert_neq(got_rc, PP_OK, "case %zu: flip at %zu accepted", i, k);
				out[k] ^= 0x10;
			}
		}
	}
}

Test(proxy_build, v2_local)
{
	uint8_t out[64];
	struct pp_addr a = mkaddr(AF_INET, "192.0.2.1", 1);
	const struct pp_tlv tlv = { PP2_TYPE_AUTHORITY, (const uint8_t *)"x", 1 };

	size_t got_len = pp_build_v2(out, sizeof out, false, PP_AF_UNSPEC, NULL, NULL, NULL, 0,
	                             false);
	cr_assert_eq(got_len, 16);
	cr_assert_eq(memcmp(out, V2_SIG "\x20\x00\x00\x00", 16), 0);
	struct parse_case c = { .name = "local", .want_rc = PP_OK, .want_used = 16,
	                        .want_version = 2, .want_local = true };
	run_case(&c, out, got_len);

	got_len = pp_build_v2(out, sizeof out, true, PP_AF_INET, &a, &a, &tlv, 1, true);
	cr_assert_eq(got_len, 16 + 4 + 7);
	cr_assert_eq(memcmp(out, V2_SIG "\x20\x00\x00\x0b", 16), 0);
	c.want_used = got_len;
	run_case(&c, out, got_len);
	/* the CRC is right even though a LOCAL header's TLVs are not checked */
	uint32_t want_crc = (uint32_t)out[23] << 24 | (uint32_t)out[24] << 16 |
	                    (uint32_t)out[25] << 8 | out[26];
	memset(out + 23, 0, 4);
	cr_assert_eq(crc32c(0, out, got_len), want_crc);

	cr_assert_eq(pp_build_v2(out, sizeof out, false, PP_AF_INET, NULL, &a, NULL, 0, false), 0);
	cr_assert_eq(pp_build_v2(out, sizeof out, false, PP_AF_UNIX, &a, &a, NULL, 0, false), 0);
	cr_assert_eq(pp_build_v2(out, sizeof out, false, PP_AF_INET, &a, &a, NULL, 1, false), 0);
	cr_assert_eq(pp_build_v2(out, 15, false, PP_AF_UNSPEC, NULL, NULL, NULL, 0, false), 0);
}

Test(proxy_build, v2_length_limit)
{
	static uint8_t big[65535];
	static uint8_t out[PP_V2_MAX + 16];
	const struct pp_tlv fits = { PP2_TYPE_NOOP, big, 65535 - 12 - 3 };
	const struct pp_tlv over = { PP2_TYPE_NOOP, big, 65535 - 12 - 2 };
	struct pp_addr a = mkaddr(AF_INET, "192.0.2.1", 1);

	size_t got_len = pp_build_v2(out, sizeof out, false, PP_AF_INET, &a, &a, &fits, 1, false);
	cr_assert_eq(got_len, PP_V2_MAX);
	struct pp_result got_r;
	size_t got_used;
	enum pp_err got_err;
	cr_assert_eq(pp_parse(out, got_len, PP_V2_MAX, &got_r, &got_used, &got_err), PP_OK);
	cr_assert_eq(got_used, PP_V2_MAX);
	cr_assert_eq(pp_parse(out, got_len, PP_V2_MAX - 1, &got_r, &got_used, &got_err), PP_ERR);
	cr_assert_eq(got_err, PP_E_V2_TOO_LONG);
	cr_assert_eq(pp_build_v2(out, sizeof out, false, PP_AF_INET, &a, &a, &over, 1, false), 0);
	cr_assert_eq(pp_build_v2(out, sizeof out, false, PP_AF_INET, &a, &a, &fits, 1, true), 0);
}

/* --- builder against parser: every family, every version, every split -------------- */

/* A tiny deterministic generator (xorshift32): the same cases on every run. */
static uint32_t rt_rand(uint32_t *s)
{
	uint32_t x = *s;
	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	return *s = x;
}

/* An IPv6 address whose group k is zero when bit k of zero_mask is set, else a nonzero
 * value of 1 to 4 hex digits. */
static struct pp_addr rt_addr6(unsigned zero_mask, uint32_t *seed, uint16_t port)
{
	static const uint16_t widths[] = { 0xf, 0xff, 0xfff, 0xffff };
	struct pp_addr a;
	memset(&a, 0, sizeof a);
	for (int k = 0; k < 8; k++) {
		uint16_t w = 0;
		if (!(zero_mask & (1u << k))) {
			uint32_t r = rt_rand(seed);
			w = (uint16_t)(r & widths[(r >> 16) & 3]);
			if (w == 0)
				w = 1;
		}
		a.ip[2 * k] = (uint8_t)(w >> 8);
		a.ip[2 * k + 1] = (uint8_t)w;
	}
	a.port = port;
	return a;
}

/* in[0..len) holds a header of want_hlen octets and then payload. Parse it whole and
 * every prefix of it (check_prefixes: PP_AGAIN for every proper prefix of the header,
 * the same result from its own length on, the payload never consumed). */
static void rt_check(const char *name, const uint8_t *in, size_t len, size_t want_hlen,
                     unsigned want_version, bool want_local, enum pp_family want_family,
                     const struct pp_addr *src, const struct pp_addr *dst)
{
	uint8_t *b = dup_exact(in, len);
	struct pp_result got_r;
	size_t got_used = 0;
	enum pp_err got_err = PP_E_NOT_PROXY;
	enum pp_rc got_rc = pp_parse(b, len, PP_V2_MAX, &got_r, &got_used, &got_err);

	cr_assert_eq(got_rc, PP_OK, "%s: rc %d (%s)", name, got_rc, pp_strerror(got_err));
	cr_assert_eq(got_used, want_hlen, "%s: used %zu want %zu", name, got_used, want_hlen);
	cr_assert_eq(got_r.version, want_version, "%s: version", name);
	cr_assert_eq(got_r.local, want_local, "%s: local", name);
	cr_assert_eq(got_r.family, want_family, "%s: family %d", name, got_r.family);
	if (!want_local) {
		size_t il = want_family == PP_AF_INET ? 4 : 16;
		cr_assert_eq(memcmp(got_r.src.ip, src->ip, il), 0, "%s: src address", name);
		cr_assert_eq(memcmp(got_r.dst.ip, dst->ip, il), 0, "%s: dst address", name);
		cr_assert_eq(got_r.src.port, src->port, "%s: src port", name);
		cr_assert_eq(got_r.dst.port, dst->port, "%s: dst port", name);
	}
	cr_assert_eq(memcmp(b, in, len), 0, "%s: input modified", name);
	check_prefixes(name, b, len, PP_V2_MAX, PP_OK, &got_r, b);
	free(b);
}

#define RT_PAYLOAD "EHLO relay.example.com\r\n"

/* Build v1 and v2 headers for src -> dst, follow each with a pipelined command, and
 * check the parser gives back exactly what went in. Returns the v1 text's length. */
static size_t rt_both(const char *name, enum pp_family fam, const struct pp_addr *src,
                      const struct pp_addr *dst, char *v1_text)
{
	uint8_t out[PP_V1_MAX + 64 + sizeof RT_PAYLOAD];
	char nm[128];

	size_t n1 = pp_build_v1(out, PP_V1_MAX, fam, src, dst);
	cr_assert_gt(n1, 0, "%s: v1 not built", name);
	cr_assert_leq(n1, PP_V1_MAX, "%s: v1 %zu octets", name, n1);
	if (v1_text != NULL) {
		memcpy(v1_text, out, n1);
		v1_text[n1] = '\0';
	}
	memcpy(out + n1, RT_PAYLOAD, sizeof RT_PAYLOAD - 1);
	snprintf(nm, sizeof nm, "%s v1", name);
	rt_check(nm, out, n1 + sizeof RT_PAYLOAD - 1, n1, 1, fam == PP_AF_UNSPEC, fam, src, dst);

	size_t want2 = PP_V2_HDR + (fam == PP_AF_INET ? 12 : fam == PP_AF_INET6 ? 36 : 0);
	size_t n2 = pp_build_v2(out, PP_V2_HDR + 36, false, fam, src, dst, NULL, 0, false);
	cr_assert_eq(n2, want2, "%s: v2 %zu octets want %zu", name, n2, want2);
	memcpy(out + n2, RT_PAYLOAD, sizeof RT_PAYLOAD - 1);
	snprintf(nm, sizeof nm, "%s v2", name);
	rt_check(nm, out, n2 + sizeof RT_PAYLOAD - 1, n2, 2, fam == PP_AF_UNSPEC, fam, src, dst);
	return n1;
}

/* IPv6: every pattern of zero groups (256), as source and, complemented, as
 * destination, so every place and length of the "::" run and every tie between two runs
 * is built; source port 0 as the outbound side sends it. The v1 text is also the one
 * glibc's inet_ntop writes (RFC 5952), except for IPv4-compatible addresses (::a.b.c.d,
 * deprecated by RFC 4291), which glibc writes dotted and RFC 5952 does not ask for. */
Test(proxy_build, round_trip_ipv6_every_zero_run)
{
	uint32_t seed = 0x9e3779b9u;
	char text[PP_V1_MAX + 1], want[160], sa[INET6_ADDRSTRLEN], da[INET6_ADDRSTRLEN];

	for (unsigned mask = 0; mask < 256; mask++) {
		struct pp_addr src = rt_addr6(mask, &seed, 0);
		struct pp_addr dst = rt_addr6(~mask & 0xff, &seed, (uint16_t)rt_rand(&seed));
		char name[48];
		snprintf(name, sizeof name, "ipv6 zero groups %02x", mask);
		rt_both(name, PP_AF_INET6, &src, &dst, text);

		bool compat = memcmp(src.ip, (const uint8_t[12]){ 0 }, 12) == 0 &&
		              (src.ip[12] | src.ip[13]) != 0;
		bool dcompat = memcmp(dst.ip, (const uint8_t[12]){ 0 }, 12) == 0 &&
		               (dst.ip[12] | dst.ip[13]) != 0;
		if (compat || dcompat)
			continue;
		cr_assert_not_null(inet_ntop(AF_INET6, src.ip, sa, sizeof sa));
		cr_assert_not_null(inet_ntop(AF_INET6, dst.ip, da, sizeof da));
		snprintf(want, sizeof want, "PROXY TCP6 %s %s 0 %u\r\n", sa, da, (unsigned)dst.port);
		cr_assert_str_eq(text, want, "%s", name);
	}
}

/* IPv6 edge values: all zeros, all ones, loopback, IPv4-mapped (mixed notation, also at
 * 0.0.0.0 and 255.255.255.255), IPv4-compatible, the longest v1 line. */
Test(proxy_build, round_trip_ipv6_edges)
{
	static const char *const addrs[] = {
		"::", "::1", "1::", TCP6_MAX, "::ffff:0.0.0.0", "::ffff:255.255.255.255",
		"::ffff:192.0.2.1", "::1.2.3.4", "::ffff:0:1.2.3.4", "0:0:0:0:0:1:0:0",
		"1:0:0:1:0:0:1:0", "0:1:0:0:1:0:0:1", "fe80::1%", "2001:db8:0:0:1:0:0:1",
	};
	char text[PP_V1_MAX + 1];
	for (size_t i = 0; i < NCASES(addrs); i++) {
		for (size_t j = 0; j < NCASES(addrs); j++) {
			struct pp_addr src, dst;
			memset(&src, 0, sizeof src);
			memset(&dst, 0, sizeof dst);
			if (inet_pton(AF_INET6, addrs[i], src.ip) != 1 ||
			    inet_pton(AF_INET6, addrs[j], dst.ip) != 1)
				continue;        /* "fe80::1%" is not an address: skipped */
			dst.port = (uint16_t)(i * 4099 + j);
			char name[128];
			snprintf(name, sizeof name, "%s -> %s", addrs[i], addrs[j]);
			size_t n1 = rt_both(name, PP_AF_INET6, &src, &dst, text);
			if (i == 3 && j == 3)
				cr_assert_eq(n1, 11 + 39 + 1 + 39 + 1 + 1 + 1 + 5 + 2, "longest line");
		}
	}
}

/* IPv4: the boundary octets in every position, and random addresses and ports. */
Test(proxy_build, round_trip_ipv4)
{
	static const uint8_t octets[] = { 0, 1, 9, 10, 99, 100, 199, 200, 249, 250, 255 };
	uint32_t seed = 12345;
	char text[PP_V1_MAX + 1], want[160];

	for (size_t k = 0; k < 4 * NCASES(octets) + 200; k++) {
		struct pp_addr src, dst;
		memset(&src, 0, sizeof src);
		memset(&dst, 0, sizeof dst);
		uint32_t r = rt_rand(&seed), q = rt_rand(&seed);
		memcpy(src.ip, &r, 4);
		memcpy(dst.ip, &q, 4);
		if (k < 4 * NCASES(octets)) {
			src.ip[k % 4] = octets[k / 4];
			dst.ip[3 - k % 4] = octets[NCASES(octets) - 1 - k / 4];
		}
		dst.port = k % 3 == 0 ? 25 : k % 3 == 1 ? 65535 : (uint16_t)rt_rand(&seed);
		char name[48];
		snprintf(name, sizeof name, "ipv4 case %zu", k);
		rt_both(name, PP_AF_INET, &src, &dst, text);
		snprintf(want, sizeof want, "PROXY TCP4 %u.%u.%u.%u %u.%u.%u.%u 0 %u\r\n",
		         src.ip[0], src.ip[1], src.ip[2], src.ip[3], dst.ip[0], dst.ip[1],
		         dst.ip[2], dst.ip[3], (unsigned)dst.port);
		cr_assert_str_eq(text, want, "%s", name);
	}
}

/* Health checks: v1 "PROXY UNKNOWN" and a v2 LOCAL header (src/dst not needed). */
Test(proxy_build, round_trip_unknown_and_local)
{
	char text[PP_V1_MAX + 1];
	rt_both("unspec", PP_AF_UNSPEC, NULL, NULL, text);
	cr_assert_str_eq(text, "PROXY UNKNOWN\r\n");

	/* LOCAL with addresses given: they are left out, the header is 16 octets. */
	uint8_t out[64];
	struct pp_addr a = mkaddr(AF_INET6, "2001:db8::1", 0);
	size_t n = pp_build_v2(out, sizeof out, true, PP_AF_INET6, &a, &a, NULL, 0, false);
	cr_assert_eq(n, PP_V2_HDR);
	memcpy(out + n, RT_PAYLOAD, sizeof RT_PAYLOAD - 1);
	rt_check("local with addresses", out, n + sizeof RT_PAYLOAD - 1, n, 2, true,
	         PP_AF_UNSPEC, NULL, NULL);
}
