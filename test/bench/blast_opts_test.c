/* Unit tests for bench/blast_opts: good command lines and what they set, bad ones and
 * their exact messages, --starttls and --per-conn, and the HOST:PORT / CIDR / size
 * helpers. */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "bench/blast_opts.h"

#define MAXARGS 24

static enum blast_opts_rc parse(const char *const *args, struct blast_opts *o, char *err,
                                size_t errlen)
{
	static char store[MAXARGS + 1][320];     /* argv is char *const[]: mutable copies */
	char *argv[MAXARGS + 2];
	int argc = 0;
	snprintf(store[0], sizeof store[0], "ringblast");
	argv[argc++] = store[0];
	for (; args[argc - 1]; argc++) {
		snprintf(store[argc], sizeof store[argc], "%s", args[argc - 1]);
		argv[argc] = store[argc];
	}
	argv[argc] = NULL;
	return blast_opts_parse(argc, argv, o, err, errlen);
}

static unsigned port_of(const struct blast_opts *o)
{
	return o->server.ss_family == AF_INET6
	       ? ntohs(((const struct sockaddr_in6 *)&o->server)->sin6_port)
	       : ntohs(((const struct sockaddr_in *)&o->server)->sin_port);
}

struct good_case {
	const char *args[MAXARGS];
	int want_family;
	unsigned want_port;
	unsigned want_connections;
	uint64_t want_messages;
	unsigned want_seconds;
	bool want_seconds_given;
	unsigned want_rcpts;
	size_t want_size;
	double want_rate;
	bool want_pipelining;
	enum blast_proxy want_proxy;
	const char *want_proxy_src;        /* inet_ntop of the network, or NULL */
	unsigned want_prefix;
	bool want_json;
	const char *want_from, *want_domain;
	unsigned want_idle_hold;
};

static const struct good_case good[] = {
	{ { "-s", "127.0.0.1:2525", "-c", "4", "-n", "200" },
	  AF_INET, 2525, 4, 200, 600, false, 1, 4096, 0, true, BLAST_PROXY_NONE, NULL, 0, false,
	  "blast@ringblast.test", "example.net", 0 },
	{ { "-s127.0.0.1:25", "-c50", "-n20000", "-l", "100k", "-r", "3", "-t", "30", "--json" },
	  AF_INET, 25, 50, 20000, 30, true, 3, 102400, 0, true, BLAST_PROXY_NONE, NULL, 0, true,
	  "blast@ringblast.test", "example.net", 0 },
	{ { "-s", "[::1]:2525", "-c", "1", "-n", "1", "--no-pipelining", "-l", "2m" },
	  AF_INET6, 2525, 1, 1, 600, false, 1, 2097152, 0, false, BLAST_PROXY_NONE, NULL, 0, false,
	  "blast@ringblast.test", "example.net", 0 },
	{ { "--server=localhost:10025", "--connections=2", "--messages=7", "--rate=0.5",
	    "--from=a.b@c.test", "--to-domain=Sub-1.example.org" },
	  AF_INET, 10025, 2, 7, 600, false, 1, 4096, 0.5, true, BLAST_PROXY_NONE, NULL, 0, false,
	  "a.b@c.test", "Sub-1.example.org", 0 },
	{ { "-s", "127.0.0.1:2525", "-c", "8", "-n", "80", "--proxy", "v2", "--proxy-src",
	    "203.0.113.0/24", "--rate", "1500" },
	  AF_INET, 2525, 8, 80, 600, false, 1, 4096, 1500, true, BLAST_PROXY_V2, "203.0.113.0",
	  24, false, "blast@ringblast.test", "example.net", 0 },
	{ { "-s", "127.0.0.1:2525", "-c", "8", "-n", "80", "--proxy-src", "2001:db8::/32",
	    "--proxy", "v1" },
	  AF_INET, 2525, 8, 80, 600, false, 1, 4096, 0, true, BLAST_PROXY_V1, "2001:db8::", 32,
	  false, "blast@ringblast.test", "example.net", 0 },
	{ { "-s", "127.0.0.1:2525", "-c", "8", "-n", "8", "--proxy", "v1", "--proxy-src",
	    "198.51.100.7" },
	  AF_INET, 2525, 8, 8, 600, false, 1, 4096, 0, true, BLAST_PROXY_V1, "198.51.100.7", 32,
	  false, "blast@ringblast.test", "example.net", 0 },
	{ { "-s", "127.0.0.1:2525", "-c", "20000", "--idle-hold", "60" },
	  AF_INET, 2525, 20000, 0, 600, false, 1, 4096, 0, true, BLAST_PROXY_NONE, NULL, 0, false,
	  "blast@ringblast.test", "example.net", 60 },
	{ { "-s", "127.0.0.1:2525", "-c", "3", "-n", "0", "--idle-hold", "1", "-t", "5" },
	  AF_INET, 2525, 3, 0, 5, true, 1, 4096, 0, true, BLAST_PROXY_NONE, NULL, 0, false,
	  "blast@ringblast.test", "example.net", 1 },
	{ { "-s", "127.0.0.1:1", "-c", "1", "-n", "1", "-c", "2", "-l", "256", "-r", "1000" },
	  AF_INET, 1, 2, 1, 600, false, 1000, 256, 0, true, BLAST_PROXY_NONE, NULL, 0, false,
	  "blast@ringblast.test", "example.net", 0 },                 /* the last -c wins */
	{ { "-s", "127.0.0.1:65535", "-c", "1000000", "-n", "1000000000000", "-l", "256M" },
	  AF_INET, 65535, 1000000, 1000000000000ull, 600, false, 1, 268435456, 0, true,
	  BLAST_PROXY_NONE, NULL, 0, false, "blast@ringblast.test", "example.net", 0 },
};

Test(blast_opts, good_command_lines)
{
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		const struct good_case *t = &good[i];
		struct blast_opts o;
		char err[256];
		enum blast_opts_rc got = parse(t->args, &o, err, sizeof err);
		cr_assert_eq(got, BLAST_OPTS_OK, "case %zu: %s", i, err);
		cr_assert_eq(o.server.ss_family, t->want_family, "case %zu", i);
		cr_assert_eq(port_of(&o), t->want_port, "case %zu", i);
		cr_assert_eq(o.connections, t->want_connections, "case %zu", i);
		cr_assert_eq(o.messages, t->want_messages, "case %zu", i);
		cr_assert_eq(o.seconds, t->want_seconds, "case %zu", i);
		cr_assert_eq(o.seconds_given, t->want_seconds_given, "case %zu", i);
		cr_assert_eq(o.rcpts, t->want_rcpts, "case %zu", i);
		cr_assert_eq(o.size, t->want_size, "case %zu", i);
		cr_assert_float_eq(o.rate, t->want_rate, 1e-9, "case %zu", i);
		cr_assert_eq(o.pipelining, t->want_pipelining, "case %zu", i);
		cr_assert_eq(o.proxy, t->want_proxy, "case %zu", i);
		cr_assert_eq(o.json, t->want_json, "case %zu", i);
		cr_assert_str_eq(o.from, t->want_from, "case %zu", i);
		cr_assert_str_eq(o.to_domain, t->want_domain, "case %zu", i);
		cr_assert_eq(o.idle_hold, t->want_idle_hold, "case %zu", i);
		if (t->want_proxy_src) {
			char got_net[INET6_ADDRSTRLEN];
			inet_ntop(o.proxy_src.family, o.proxy_src.addr, got_net, sizeof got_net);
			cr_assert_str_eq(got_net, t->want_proxy_src, "case %zu", i);
			cr_assert_eq(o.proxy_src.prefix, t->want_prefix, "case %zu", i);
		}
	}
}

Test(blast_opts, server_text_kept)
{
	const char *args[] = { "-s", "[::1]:2525", "-c", "1", "-n", "1", NULL };
	struct blast_opts o;
	char err[256];
	cr_assert_eq(parse(args, &o, err, sizeof err), BLAST_OPTS_OK);
	cr_assert_str_eq(o.server_text, "[::1]:2525");
	cr_assert_eq(o.server_len, sizeof(struct sockaddr_in6));
	struct in6_addr want;
	inet_pton(AF_INET6, "::1", &want);
	cr_assert_eq(memcmp(&((struct sockaddr_in6 *)&o.server)->sin6_addr, &want, 16), 0);
}

Test(blast_opts, help)
{
	const char *a1[] = { "-h", NULL };
	const char *a2[] = { "-s", "127.0.0.1:25", "--help", NULL };
	struct blast_opts o;
	char err[256];
	cr_assert_eq(parse(a1, &o, err, sizeof err), BLAST_OPTS_HELP);
	cr_assert_eq(parse(a2, &o, err, sizeof err), BLAST_OPTS_HELP);
	cr_assert_not_null(strstr(blast_opts_usage(), "--idle-hold SECS"));
	cr_assert_not_null(strstr(blast_opts_usage(), "--starttls "));
	cr_assert_not_null(strstr(blast_opts_usage(), "--per-conn N "));
	cr_assert_null(strstr(blast_opts_usage(), "not supported"));
}

/* --starttls and --per-conn: what they set, and that nothing else moves. */
struct tls_case {
	const char *args[MAXARGS];
	bool want_starttls;
	uint64_t want_per_conn;
	uint64_t want_messages;
	bool want_pipelining;
	enum blast_proxy want_proxy;
};

static const struct tls_case tls_cases[] = {
	{ { "-s", "127.0.0.1:2525", "-c", "4", "-n", "200" }, false, 0, 200, true,
	  BLAST_PROXY_NONE },
	{ { "-s", "127.0.0.1:2525", "-c", "20", "-n", "2000", "--starttls" }, true, 0, 2000,
	  true, BLAST_PROXY_NONE },
	{ { "--starttls", "--per-conn", "1", "-s", "127.0.0.1:2525", "-c", "20", "-n", "10" },
	  true, 1, 10, true, BLAST_PROXY_NONE },
	{ { "-s", "127.0.0.1:2525", "-c", "2", "-n", "10", "--per-conn=3", "--no-pipelining" },
	  false, 3, 10, false, BLAST_PROXY_NONE },
	{ { "-s", "127.0.0.1:2525", "-c", "2", "-n", "10", "--per-conn", "1000000000000",
	    "--starttls", "--proxy", "v2", "--proxy-src", "203.0.113.0/24" },
	  true, 1000000000000ull, 10, true, BLAST_PROXY_V2 },
	{ { "-s", "127.0.0.1:2525", "-c", "2", "-n", "10", "--per-conn", "5", "--per-conn", "2" },
	  false, 2, 10, true, BLAST_PROXY_NONE },                     /* the last one wins */
	{ { "-s", "127.0.0.1:2525", "-c", "3", "--idle-hold", "1", "--starttls" }, true, 0, 0,
	  true, BLAST_PROXY_NONE },
};

Test(blast_opts, starttls_and_per_conn)
{
	for (size_t i = 0; i < sizeof tls_cases / sizeof tls_cases[0]; i++) {
		const struct tls_case *t = &tls_cases[i];
		struct blast_opts o;
		char err[256];
		enum blast_opts_rc got = parse(t->args, &o, err, sizeof err);
		cr_assert_eq(got, BLAST_OPTS_OK, "case %zu: %s", i, err);
		cr_assert_eq(o.starttls, t->want_starttls, "case %zu", i);
		cr_assert_eq(o.per_conn, t->want_per_conn, "case %zu", i);
		cr_assert_eq(o.messages, t->want_messages, "case %zu", i);
		cr_assert_eq(o.pipelining, t->want_pipelining, "case %zu", i);
		cr_assert_eq(o.proxy, t->want_proxy, "case %zu", i);
		cr_assert_eq(o.size, BLAST_OPTS_DEFAULT_SIZE, "case %zu", i);
		cr_assert_eq(o.rcpts, 1, "case %zu", i);
	}
}

struct bad_case {
	const char *args[MAXARGS];
	const char *want_err;
};

#define OK3 "-s", "127.0.0.1:2525", "-c", "4", "-n", "10"
static const struct bad_case bad[] = {
	{ { NULL }, "missing -s HOST:PORT" },
	{ { "-c", "4", "-n", "10" }, "missing -s HOST:PORT" },
	{ { "-s", "127.0.0.1:2525", "-n", "10" }, "missing -c CONNECTIONS" },
	{ { "-s", "127.0.0.1:2525", "-c", "4" }, "missing -n MESSAGES" },
	{ { OK3, "--starttls=yes" }, "--starttls takes no value" },
	{ { OK3, "--per-conn" }, "--per-conn needs a value" },
	{ { OK3, "--per-conn", "0" },
	  "--per-conn: expected a number from 1 to 1000000000000, got '0'" },
	{ { OK3, "--per-conn", "-1" },
	  "--per-conn: expected a number from 1 to 1000000000000, got '-1'" },
	{ { OK3, "--per-conn", "1x" },
	  "--per-conn: expected a number from 1 to 1000000000000, got '1x'" },
	{ { OK3, "--per-conn", "" }, "--per-conn: expected a number from 1 to 1000000000000, got ''" },
	{ { OK3, "--per-conn=1000000000001" },
	  "--per-conn: expected a number from 1 to 1000000000000, got '1000000000001'" },
	{ { "-s", "127.0.0.1:2525", "-c", "4", "--idle-hold", "5", "--per-conn", "1" },
	  "--per-conn does not go with --idle-hold (no messages)" },
	{ { OK3, "--bogus" }, "unknown option '--bogus'" },
	{ { OK3, "--bogus=1" }, "unknown option '--bogus'" },
	{ { OK3, "-x" }, "unknown option '-x'" },
	{ { OK3, "extra" }, "unexpected argument 'extra'" },
	{ { OK3, "-" }, "unexpected argument '-'" },
	{ { OK3, "-t" }, "-t needs a value" },
	{ { OK3, "--rate" }, "--rate needs a value" },
	{ { OK3, "--json=yes" }, "--json takes no value" },
	{ { OK3, "-hx" }, "-h takes no value" },
	{ { "-s", "127.0.0.1", "-c", "4", "-n", "10" },
	  "-s: expected HOST:PORT (IPv4, [IPv6] or localhost, port 1-65535), got '127.0.0.1'" },
	{ { "-s", "127.0.0.1:0", "-c", "4", "-n", "10" },
	  "-s: expected HOST:PORT (IPv4, [IPv6] or localhost, port 1-65535), got '127.0.0.1:0'" },
	{ { "-s", "127.0.0.1:65536", "-c", "4", "-n", "10" },
	  "-s: expected HOST:PORT (IPv4, [IPv6] or localhost, port 1-65535), got '127.0.0.1:65536'" },
	{ { "-s", "::1:25", "-c", "4", "-n", "10" },
	  "-s: expected HOST:PORT (IPv4, [IPv6] or localhost, port 1-65535), got '::1:25'" },
	{ { "-s", "[::1]25", "-c", "4", "-n", "10" },
	  "-s: expected HOST:PORT (IPv4, [IPv6] or localhost, port 1-65535), got '[::1]25'" },
	{ { "-s", "[127.0.0.1]:25", "-c", "4", "-n", "10" },
	  "-s: expected HOST:PORT (IPv4, [IPv6] or localhost, port 1-65535), got '[127.0.0.1]:25'" },
	{ { "--server=mx.example.com:25", "-c", "4", "-n", "10" },
	  "--server: expected HOST:PORT (IPv4, [IPv6] or localhost, port 1-65535), got "
	  "'mx.example.com:25'" },
	{ { "-s", "127.0.0.1:2525", "-c", "0", "-n", "10" },
	  "-c: expected a number from 1 to 1000000, got '0'" },
	{ { "-s", "127.0.0.1:2525", "-c", "1000001", "-n", "10" },
	  "-c: expected a number from 1 to 1000000, got '1000001'" },
	{ { "-s", "127.0.0.1:2525", "-c", "-4", "-n", "10" },
	  "-c: expected a number from 1 to 1000000, got '-4'" },
	{ { "-s", "127.0.0.1:2525", "-c", "4x", "-n", "10" },
	  "-c: expected a number from 1 to 1000000, got '4x'" },
	{ { "-s", "127.0.0.1:2525", "-c", "", "-n", "10" },
	  "-c: expected a number from 1 to 1000000, got ''" },
	{ { "-s", "127.0.0.1:2525", "-c", "4", "-n", "99999999999999999999999" },
	  "-n: expected a number from 0 to 1000000000000, got '99999999999999999999999'" },
	{ { "-s", "127.0.0.1:2525", "-c", "4", "-n", "0" }, "-n 0 is allowed only with --idle-hold" },
	{ { OK3, "--idle-hold", "5" }, "--idle-hold sends no messages: give -n 0 or no -n" },
	{ { OK3, "--idle-hold", "0" }, "--idle-hold: expected seconds from 1 to 86400, got '0'" },
	{ { OK3, "-t", "0" }, "-t: expected seconds from 1 to 86400, got '0'" },
	{ { OK3, "-t", "1.5" }, "-t: expected seconds from 1 to 86400, got '1.5'" },
	{ { OK3, "-r", "0" }, "-r: expected a number from 1 to 1000, got '0'" },
	{ { OK3, "-r", "1001" }, "-r: expected a number from 1 to 1000, got '1001'" },
	{ { OK3, "-l", "255" },
	  "-l: expected a size from 256 to 256m octets (suffix k or m), got '255'" },
	{ { OK3, "-l", "257m" },
	  "-l: expected a size from 256 to 256m octets (suffix k or m), got '257m'" },
	{ { OK3, "-l", "4g" }, "-l: expected a size from 256 to 256m octets (suffix k or m), got '4g'" },
	{ { OK3, "-l", "k" }, "-l: expected a size from 256 to 256m octets (suffix k or m), got 'k'" },
	{ { OK3, "-l", "1.5k" },
	  "-l: expected a size from 256 to 256m octets (suffix k or m), got '1.5k'" },
	{ { OK3, "--rate", "0" },
	  "--rate: expected messages per second from 0.001 to 10000000, got '0'" },
	{ { OK3, "--rate", "-5" },
	  "--rate: expected messages per second from 0.001 to 10000000, got '-5'" },
	{ { OK3, "--rate", "fast" },
	  "--rate: expected messages per second from 0.001 to 10000000, got 'fast'" },
	{ { OK3, "--rate", "inf" },
	  "--rate: expected messages per second from 0.001 to 10000000, got 'inf'" },
	{ { OK3, "--rate", "1e9" },
	  "--rate: expected messages per second from 0.001 to 10000000, got '1e9'" },
	{ { OK3, "--proxy", "v3", "--proxy-src", "203.0.113.0/24" },
	  "--proxy: expected v1 or v2, got 'v3'" },
	{ { OK3, "--proxy", "v2" }, "--proxy needs --proxy-src CIDR" },
	{ { OK3, "--proxy-src", "203.0.113.0/24" }, "--proxy-src needs --proxy v1|v2" },
	{ { OK3, "--proxy", "v2", "--proxy-src", "203.0.113.7/24" },
	  "--proxy-src: '203.0.113.7/24' has host bits set under the mask" },
	{ { OK3, "--proxy", "v2", "--proxy-src", "203.0.113.0/33" },
	  "--proxy-src: expected an IPv4 or IPv6 network like 203.0.113.0/24, got '203.0.113.0/33'" },
	{ { OK3, "--proxy", "v2", "--proxy-src", "2001:db8::/129" },
	  "--proxy-src: expected an IPv4 or IPv6 network like 203.0.113.0/24, got '2001:db8::/129'" },
	{ { OK3, "--proxy", "v2", "--proxy-src", "203.0.113.0/" },
	  "--proxy-src: expected an IPv4 or IPv6 network like 203.0.113.0/24, got '203.0.113.0/'" },
	{ { OK3, "--proxy", "v2", "--proxy-src", "203.0.113.0/024" },
	  "--proxy-src: expected an IPv4 or IPv6 network like 203.0.113.0/24, got '203.0.113.0/024'" },
	{ { OK3, "--proxy", "v2", "--proxy-src", "example.com/24" },
	  "--proxy-src: expected an IPv4 or IPv6 network like 203.0.113.0/24, got 'example.com/24'" },
	{ { OK3, "--from", "nobody" }, "--from: expected an address like local@domain, got 'nobody'" },
	{ { OK3, "--from", "a b@c.test" },
	  "--from: expected an address like local@domain, got 'a b@c.test'" },
	{ { OK3, "--from", "<a@c.test>" },
	  "--from: expected an address like local@domain, got '<a@c.test>'" },
	{ { OK3, "--from", "a@" }, "--from: expected an address like local@domain, got 'a@'" },
	{ { OK3, "--to-domain", "exa mple.net" },
	  "--to-domain: expected a domain like example.net, got 'exa mple.net'" },
	{ { OK3, "--to-domain", "example..net" },
	  "--to-domain: expected a domain like example.net, got 'example..net'" },
	{ { OK3, "--to-domain", "example.net." },
	  "--to-domain: expected a domain like example.net, got 'example.net.'" },
	{ { OK3, "--to-domain", "" }, "--to-domain: expected a domain like example.net, got ''" },
};

Test(blast_opts, bad_command_lines)
{
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct blast_opts o;
		char got_err[256];
		enum blast_opts_rc got = parse(bad[i].args, &o, got_err, sizeof got_err);
		cr_assert_eq(got, BLAST_OPTS_ERR, "case %zu: accepted, want '%s'", i, bad[i].want_err);
		cr_assert_str_eq(got_err, bad[i].want_err, "case %zu", i);
	}
}

Test(blast_opts, error_truncated_to_the_buffer)
{
	const char *args[] = { OK3, "--bogus-option-with-a-long-name", NULL };
	struct blast_opts o;
	char err[8];
	cr_assert_eq(parse(args, &o, err, sizeof err), BLAST_OPTS_ERR);
	cr_assert_str_eq(err, "unknown");
}

Test(blast_opts, cidr_helper)
{
	static const struct {
		const char *text;
		int want_rc, want_family;
		unsigned want_prefix;
	} t[] = {
		{ "0.0.0.0/0", 0, AF_INET, 0 },
		{ "10.0.0.0/8", 0, AF_INET, 8 },
		{ "10.0.0.1", 0, AF_INET, 32 },
		{ "10.0.0.1/31", -2, 0, 0 },
		{ "::/0", 0, AF_INET6, 0 },
		{ "2001:db8::1", 0, AF_INET6, 128 },
		{ "2001:db8::1/64", -2, 0, 0 },
		{ "2001:db8::/-1", -1, 0, 0 },
		{ "", -1, 0, 0 },
		{ "/8", -1, 0, 0 },
	};
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		struct blast_cidr c;
		int got = blast_opts_parse_cidr(t[i].text, &c);
		cr_assert_eq(got, t[i].want_rc, "'%s'", t[i].text);
		if (got == 0) {
			cr_assert_eq(c.family, t[i].want_family, "'%s'", t[i].text);
			cr_assert_eq(c.prefix, t[i].want_prefix, "'%s'", t[i].text);
		}
	}
}

Test(blast_opts, size_helper)
{
	static const struct {
		const char *text;
		uint64_t max;
		int want_rc;
		uint64_t want;
	} t[] = {
		{ "0", 100, 0, 0 },
		{ "100", 100, 0, 100 },
		{ "101", 100, -1, 0 },
		{ "1k", 1024, 0, 1024 },
		{ "1K", 1023, -1, 0 },
		{ "3m", UINT64_MAX, 0, 3145728 },
		{ "18446744073709551615", UINT64_MAX, 0, UINT64_MAX },
		{ "18446744073709551616", UINT64_MAX, -1, 0 },
		{ "18014398509481984k", UINT64_MAX, -1, 0 },     /* 2^54 k overflows */
		{ "", 100, -1, 0 },
		{ "m", 100, -1, 0 },
		{ "+5", 100, -1, 0 },
		{ " 5", 100, -1, 0 },
		{ "5 ", 100, -1, 0 },
	};
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		uint64_t got = 0;
		int rc = blast_opts_parse_size(t[i].text, t[i].max, &got);
		cr_assert_eq(rc, t[i].want_rc, "'%s'", t[i].text);
		if (rc == 0)
			cr_assert_eq(got, t[i].want, "'%s'", t[i].text);
	}
}
