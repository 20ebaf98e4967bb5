/* test/proto/smtp_addr_test — RFC 5321 paths: mailboxes, null path, postmaster, source
 * routes, quoted local parts, address literals, UTF-8, limits; every input also parsed
 * from a buffer cut at every length (a cut path must never parse as a longer one). */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "proto/smtp_addr.h"

#define NUL SMTP_ADDR_NULL_OK
#define PM  SMTP_ADDR_POSTMASTER_OK

struct addr_case {
	const char *in;                /* the path, possibly followed by more text */
	unsigned flags;
	enum smtp_addr_err want_err;
	const char *want_mbox;         /* on OK */
	const char *want_domain;
	size_t want_used;
	bool want_utf8;
};

#define X10 "xxxxxxxxxx"
#define X50 X10 X10 X10 X10 X10
#define L61 X50 X10 "x"
#define L62 X50 X10 "xx"
#define L63 X50 X10 "xxx"
#define L64 L63 "x"

static const struct addr_case addr_cases[] = {
	{ "<user@example.com>", 0, SMTP_ADDR_OK, "user@example.com", "example.com", 18, false },
	{ "<user@example.com> SIZE=10", 0, SMTP_ADDR_OK, "user@example.com", "example.com", 18, false },
	{ "<a.b+tag@sub.example.co.uk>", 0, SMTP_ADDR_OK, "a.b+tag@sub.example.co.uk",
	  "sub.example.co.uk", 27, false },
	{ "<!#$%&'*+-/=?^_`{|}~@x>", 0, SMTP_ADDR_OK, "!#$%&'*+-/=?^_`{|}~@x", "x", 23, false },
	{ "<>", NUL, SMTP_ADDR_OK, "", "", 2, false },
	{ "<>", 0, SMTP_ADDR_E_NULL, NULL, NULL, 0, false },
	{ "<postmaster>", PM, SMTP_ADDR_OK, "postmaster", "", 12, false },
	{ "<PostMaster>", PM, SMTP_ADDR_OK, "PostMaster", "", 12, false },
	{ "<postmaster>", 0, SMTP_ADDR_E_DOMAIN, NULL, NULL, 0, false },
	{ "<postmaster@example.com>", PM, SMTP_ADDR_OK, "postmaster@example.com",
	  "example.com", 24, false },
	{ "<user>", PM, SMTP_ADDR_E_DOMAIN, NULL, NULL, 0, false },
	{ "<@a.example,@b.example:user@c.example>", 0, SMTP_ADDR_OK, "user@c.example",
	  "c.example", 38, false },
	{ "<@a.example:user@c.example>", 0, SMTP_ADDR_OK, "user@c.example", "c.example", 27, false },
	{ "<@a.example,b.example:user@c.example>", 0, SMTP_ADDR_E_ROUTE, NULL, NULL, 0, false },
	{ "<@a.example user@c.example>", 0, SMTP_ADDR_E_ROUTE, NULL, NULL, 0, false },
	{ "<\"john doe\"@example.com>", 0, SMTP_ADDR_OK, "\"john doe\"@example.com",
	  "example.com", 24, false },
	{ "<\"a\\\"b\"@example.com>", 0, SMTP_ADDR_OK, "\"a\\\"b\"@example.com", "example.com",
	  20, false },
	{ "<\"unterminated@example.com>", 0, SMTP_ADDR_E_LOCAL, NULL, NULL, 0, false },
	{ "<user@[192.0.2.1]>", 0, SMTP_ADDR_OK, "user@[192.0.2.1]", "[192.0.2.1]", 18, false },
	{ "<user@[IPv6:2001:db8::1]>", 0, SMTP_ADDR_OK, "user@[IPv6:2001:db8::1]",
	  "[IPv6:2001:db8::1]", 25, false },
	{ "<u@[IPv6:1:2:3:4:5:6:7:8]>", 0, SMTP_ADDR_OK, "u@[IPv6:1:2:3:4:5:6:7:8]",
	  "[IPv6:1:2:3:4:5:6:7:8]", 26, false },
	{ "<u@[IPv6:::ffff:192.0.2.1]>", 0, SMTP_ADDR_OK, "u@[IPv6:::ffff:192.0.2.1]",
	  "[IPv6:::ffff:192.0.2.1]", 27, false },
	{ "<u@[IPv6:1:2:3:4:5:6:7:8:9]>", 0, SMTP_ADDR_E_LITERAL, NULL, NULL, 0, false },
	{ "<u@[IPv6:1::2::3]>", 0, SMTP_ADDR_E_LITERAL, NULL, NULL, 0, false },
	{ "<u@[256.0.0.1]>", 0, SMTP_ADDR_E_LITERAL, NULL, NULL, 0, false },
	{ "<u@[1.2.3]>", 0, SMTP_ADDR_E_LITERAL, NULL, NULL, 0, false },
	{ "<u@[x-tag:foo]>", 0, SMTP_ADDR_E_LITERAL, NULL, NULL, 0, false },
	{ "<u@[192.0.2.1>", 0, SMTP_ADDR_E_LITERAL, NULL, NULL, 0, false },
	{ "user@example.com", 0, SMTP_ADDR_E_BRACKET, NULL, NULL, 0, false },
	{ "<user@example.com", 0, SMTP_ADDR_E_BRACKET, NULL, NULL, 0, false },
	{ "<user@example.com x>", 0, SMTP_ADDR_E_DOMAIN, NULL, NULL, 0, false },
	{ "<user@>", 0, SMTP_ADDR_E_DOMAIN, NULL, NULL, 0, false },
	{ "<@example.com>", 0, SMTP_ADDR_E_ROUTE, NULL, NULL, 0, false },
	{ "<user@example..com>", 0, SMTP_ADDR_E_DOMAIN, NULL, NULL, 0, false },
	{ "<user@example.com.>", 0, SMTP_ADDR_E_DOMAIN, NULL, NULL, 0, false },
	{ "<user@-example.com>", 0, SMTP_ADDR_E_DOMAIN, NULL, NULL, 0, false },
	{ "<user@example-.com>", 0, SMTP_ADDR_E_DOMAIN, NULL, NULL, 0, false },
	{ "<user@ex_ample.com>", 0, SMTP_ADDR_E_DOMAIN, NULL, NULL, 0, false },
	{ "<.user@example.com>", 0, SMTP_ADDR_E_LOCAL, NULL, NULL, 0, false },
	{ "<user.@example.com>", 0, SMTP_ADDR_E_LOCAL, NULL, NULL, 0, false },
	{ "<us..er@example.com>", 0, SMTP_ADDR_E_LOCAL, NULL, NULL, 0, false },
	{ "<us er@example.com>", 0, SMTP_ADDR_E_DOMAIN, NULL, NULL, 0, false },
	{ "<a@b@example.com>", 0, SMTP_ADDR_E_DOMAIN, NULL, NULL, 0, false },
	{ "<a(b)@example.com>", 0, SMTP_ADDR_E_DOMAIN, NULL, NULL, 0, false },
	{ "<" L63 "@" L63 ">", 0, SMTP_ADDR_OK, L63 "@" L63, L63, 129, false },
	{ "<u@" L64 ".com>", 0, SMTP_ADDR_E_LENGTH, NULL, NULL, 0, false },
	/* 256 octets is the most a path may have: 1 + 64 + 1 + 189 + 1 */
	{ "<" L64 "@" L63 "." L63 "." L61 ">", 0, SMTP_ADDR_OK, L64 "@" L63 "." L63 "." L61,
	  L63 "." L63 "." L61, 256, false },
	{ "<" L64 "@" L63 "." L63 "." L62 ">", 0, SMTP_ADDR_E_LENGTH, NULL, NULL, 0, false },
	{ "<\xc3\xa9l\xc3\xa8ve@\xc3\xa9" "cole.example>", 0, SMTP_ADDR_OK,
	  "\xc3\xa9l\xc3\xa8ve@\xc3\xa9" "cole.example", "\xc3\xa9" "cole.example", 24, true },
	{ "<\"\xe2\x82\xac\"@example.com>", 0, SMTP_ADDR_OK, "\"\xe2\x82\xac\"@example.com",
	  "example.com", 19, true },
	{ "<\xc0\xafuser@example.com>", 0, SMTP_ADDR_E_UTF8, NULL, NULL, 0, false },
	{ "<\xed\xa0\x80@example.com>", 0, SMTP_ADDR_E_UTF8, NULL, NULL, 0, false },
	{ "<\xf4\x90\x80\x80@example.com>", 0, SMTP_ADDR_E_UTF8, NULL, NULL, 0, false },
	{ "<user@example.\xff>", 0, SMTP_ADDR_E_UTF8, NULL, NULL, 0, false },
	{ "<u\x01@example.com>", 0, SMTP_ADDR_E_DOMAIN, NULL, NULL, 0, false },
	{ "", 0, SMTP_ADDR_E_BRACKET, NULL, NULL, 0, false },
	{ "<", NUL, SMTP_ADDR_E_BRACKET, NULL, NULL, 0, false },
};

Test(smtp_addr, table)
{
	for (size_t k = 0; k < sizeof(addr_cases) / sizeof(addr_cases[0]); k++) {
		const struct addr_case *c = &addr_cases[k];
		size_t len = strlen(c->in), got_used = 99;
		struct smtp_addr got;
		enum smtp_addr_err got_err;

		got_err = smtp_addr_parse_path(c->in, len, c->flags, &got, &got_used);
		cr_expect_eq(got_err, c->want_err, "case %zu %s: got %s want %s", k, c->in,
		             smtp_addr_strerror(got_err), smtp_addr_strerror(c->want_err));
		if (c->want_err != SMTP_ADDR_OK || got_err != SMTP_ADDR_OK) {
			cr_expect_eq(got_used, 0, "case %zu", k);
			continue;
		}
		cr_expect_eq(got_used, c->want_used, "case %zu %s: used %zu", k, c->in, got_used);
		cr_expect_eq(got.mbox_len, strlen(c->want_mbox), "case %zu", k);
		cr_expect(memcmp(got.mbox, c->want_mbox, got.mbox_len) == 0, "case %zu mbox", k);
		cr_expect_eq(got.domain_len, strlen(c->want_domain), "case %zu", k);
		cr_expect(memcmp(got.domain, c->want_domain, got.domain_len) == 0,
		          "case %zu domain", k);
		cr_expect_eq(got.utf8, c->want_utf8, "case %zu utf8", k);
	}
}

/* Cut every input at every length (in a heap buffer of exactly that size, so ASan sees
 * any read past it): a prefix of a path is never a valid path, unless it ends right
 * after the '>' of a valid one. */
Test(smtp_addr, every_prefix)
{
	for (size_t k = 0; k < sizeof(addr_cases) / sizeof(addr_cases[0]); k++) {
		const struct addr_case *c = &addr_cases[k];
		size_t len = strlen(c->in);

		for (size_t cut = 0; cut <= len; cut++) {
			char *buf = malloc(cut ? cut : 1);
			struct smtp_addr got;
			size_t got_used;
			enum smtp_addr_err got_err;

			cr_assert(buf);
			memcpy(buf, c->in, cut);
			got_err = smtp_addr_parse_path(buf, cut, c->flags, &got, &got_used);
			if (got_err == SMTP_ADDR_OK)
				cr_expect(c->want_err == SMTP_ADDR_OK && cut >= c->want_used &&
				                  got_used == c->want_used,
				          "case %zu %s cut %zu parsed", k, c->in, cut);
			free(buf);
		}
	}
}

Test(smtp_addr, strerror)
{
	for (int e = SMTP_ADDR_OK; e <= SMTP_ADDR_E_LENGTH; e++)
		cr_expect_neq(strcmp(smtp_addr_strerror((enum smtp_addr_err)e), "unknown error"), 0);
	cr_expect_str_eq(smtp_addr_strerror((enum smtp_addr_err)99), "unknown error");
}
