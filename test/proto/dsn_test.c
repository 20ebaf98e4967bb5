/* test/proto/dsn_test — RFC 3464 bounces: the exact headers, three parts in order closed
 * by "--B--", one block and one paragraph a recipient (1 and 1000), dates, status codes,
 * injection through every untrusted field, long fields, the original's header section
 * (no separator, bare LF/CR, NUL, over-long lines, 10 MB capped), a forced boundary
 * collision, DELAYED and mixed reports, 8-bit originals, bad arguments, every allocation
 * failing in turn, and Python's email package reading the result back.
 *
 * Every output goes through got_check(), which holds the invariants of dsn.h: CRLF lines
 * only, none over 998 octets, no NUL; exactly the nine top-level header lines; the
 * boundary in the Content-Type and on the four delimiter lines and nowhere else; the
 * parts text/plain, message/delivery-status, text/rfc822-headers; one paragraph and one
 * delivery-status block a recipient; 7-bit outside the original's headers. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "proto/dsn.h"

/* Test hook compiled into proto/dsn.c under RR_TEST_BUILD. */
void dsn_test_fail_alloc(unsigned long nth);

#define NOW 1700000000u       /* Tue, 14 Nov 2023 22:13:20 +0000 */
#define ARRIVAL 1699990000u   /* Tue, 14 Nov 2023 19:26:40 +0000 */

static const char orig_simple[] =
	"Received: from client.example ([192.0.2.7])\r\n"
	"\tby mx.example.net with ESMTP id 4Q0001\r\n"
	"From: Alice <alice@example.org>\r\n"
	"To: user@example.com\r\n"
	"Subject: hello\r\n"
	"\r\n"
	"the body\r\n"
	"Subject: not a header\r\n";
static const char orig_simple_headers[] =
	"Received: from client.example ([192.0.2.7])\r\n"
	"\tby mx.example.net with ESMTP id 4Q0001\r\n"
	"From: Alice <alice@example.org>\r\n"
	"To: user@example.com\r\n"
	"Subject: hello\r\n";

static struct dsn_rcpt rcpt_unknown(void)
{
	return (struct dsn_rcpt){
		.rcpt = "user@example.com",
		.status = "5.1.1",
		.action = DSN_FAILED,
		.remote_mta = "mx.example.com",
		.diag = "550 5.1.1 <user@example.com>: user unknown",
		.in_reply_to = "RCPT TO",
	};
}

static struct dsn_msg msg_with(const struct dsn_rcpt *r, size_t n)
{
	return (struct dsn_msg){
		.reporting_mta = "mx.example.net",
		.qid = "4Q0001",
		.sender = "alice@example.org",
		.arrival = ARRIVAL,
		.now = NOW,
		.rcpt = r,
		.nrcpt = n,
		.orig = (const uint8_t *)orig_simple,
		.orig_len = sizeof orig_simple - 1,
		.dsn_qid = "4Q0002",
	};
}

/* ---- reading a DSN back ------------------------------------------------------------ */

struct got_part {
	const char *p;          /* from after the delimiter line to before "\r\n--B" */
	size_t n;
	const char *body;       /* after the part's header lines and the empty line */
	size_t body_n;
};

struct got {
	char *p;                /* the DSN, NUL-terminated copy */
	size_t n;
	size_t hdr_n;           /* the top-level header section, its empty line excluded */
	char boundary[128];
	struct got_part part[3];
	size_t blocks;          /* delivery-status blocks (per-message one included) */
	size_t paragraphs;      /* text lines starting with '<' */
};

static size_t count_str(const char *p, size_t n, const char *s)
{
	size_t c = 0, l = strlen(s);
	const char *q = p, *end = p + n;

	while (q < end && (q = memmem(q, (size_t)(end - q), s, l)) != NULL) {
		c++;
		q++;
	}
	return c;
}

/* the line at p (up to its CRLF) equals s */
static bool line_is(const char *p, const char *end, const char *s)
{
	size_t l = strlen(s);
	return (size_t)(end - p) >= l + 2 && memcmp(p, s, l) == 0 && p[l] == '\r' && p[l + 1] == '\n';
}

static const char *next_line(const char *p)
{
	return strstr(p, "\r\n") + 2;
}

/* exact header line s (without CRLF) in the top-level section */
static bool has_header(const struct got *g, const char *s)
{
	for (const char *l = g->p; l < g->p + g->hdr_n; l = next_line(l))
		if (line_is(l, g->p + g->hdr_n + 2, s))
			return true;
	return false;
}

/* a copy of part k's body, NUL-terminated (the caller frees) */
static char *part_body(const struct got *g, int k)
{
	return strndup(g->part[k].body, g->part[k].body_n);
}

/* Every invariant of dsn.h; fills g. out/n is the DSN (taken over: got_free frees it). */
static void got_check(struct got *g, uint8_t *out, size_t n, size_t nrcpt)
{
	static const char *const names[] = { "From: ", "To: ", "Subject: ", "Date: ",
		"Message-ID: ", "Auto-Submitted: ", "MIME-Version: ", "Content-Type: ",
		"Content-Transfer-Encoding: " };
	memset(g, 0, sizeof *g);
	cr_assert_not_null(out);
	cr_assert_gt(n, 0);
	g->p = malloc(n + 1);
	memcpy(g->p, out, n);
	g->p[n] = '\0';
	g->n = n;
	free(out);

	/* lines: CRLF only, <= 998, no NUL */
	cr_assert_eq(memchr(g->p, '\0', n), NULL, "NUL in the DSN");
	cr_assert(n >= 2 && g->p[n - 2] == '\r' && g->p[n - 1] == '\n', "no final CRLF");
	for (size_t i = 0, start = 0; i < n; i++) {
		if (g->p[i] == '\r') {
			cr_assert(i + 1 < n && g->p[i + 1] == '\n', "bare CR at %zu", i);
			cr_assert_leq(i - start, 998, "line of %zu octets at %zu", i - start, start);
			i++;
			start = i + 1;
		} else {
			cr_assert_neq(g->p[i], '\n', "bare LF at %zu", i);
		}
	}

	/* the header section: nine lines, each name once, no continuation */
	const char *l = g->p, *end = g->p + n;
	bool seen[9] = { false };
	size_t nh = 0;
	while (!line_is(l, end, "")) {
		size_t k;
		for (k = 0; k < 9; k++)
			if (strncmp(l, names[k], strlen(names[k])) == 0)
				break;
		cr_assert_lt(k, 9, "unexpected header line: %.60s", l);
		cr_assert_not(seen[k], "header twice: %s", names[k]);
		seen[k] = true;
		nh++;
		l = next_line(l);
	}
	cr_assert_eq(nh, 9, "header lines: %zu", nh);
	g->hdr_n = (size_t)(l - g->p);

	/* the boundary, and where it occurs */
	const char *ct = strstr(g->p, "Content-Type: multipart/report; report-type=delivery-status; boundary=\"");
	cr_assert(ct != NULL && ct < g->p + g->hdr_n);
	ct = strchr(ct, '"') + 1;
	size_t bl = strcspn(ct, "\"");
	cr_assert(bl >= 1 && bl <= 70, "boundary length %zu", bl);
	memcpy(g->boundary, ct, bl);
	g->boundary[bl] = '\0';
	cr_assert_eq(count_str(g->p, n, g->boundary), 5, "the boundary occurs %zu times",
	             count_str(g->p, n, g->boundary));
	char delim[140], close[140];
	snprintf(delim, sizeof delim, "\r\n--%s\r\n", g->boundary);
	snprintf(close, sizeof close, "\r\n--%s--\r\n", g->boundary);
	cr_assert_eq(count_str(g->p, n, delim), 3);
	cr_assert_eq(count_str(g->p, n, close), 1);
	cr_assert(n >= strlen(close) && memcmp(end - strlen(close), close, strlen(close)) == 0,
	          "the DSN does not end with --B--");

	/* the parts */
	static const char *const ctype[3] = {
		"Content-Type: text/plain; charset=us-ascii",
		"Content-Type: message/delivery-status",
		"Content-Type: text/rfc822-headers",
	};
	const char *q = g->p + g->hdr_n;
	for (int k = 0; k < 3; k++) {
		const char *d = strstr(q, delim);
		cr_assert_not_null(d);
		const char *s = d + strlen(delim);
		const char *e = strstr(s, "\r\n--");
		while (e != NULL && strncmp(e + 4, g->boundary, bl) != 0)
			e = strstr(e + 1, "\r\n--");
		cr_assert_not_null(e);
		g->part[k].p = s;
		g->part[k].n = (size_t)(e - s);
		const char *b = strstr(s, "\r\n\r\n");
		cr_assert(b != NULL && b < e + 2, "part %d has no header section", k);
		cr_assert_not_null(memmem(s, (size_t)(b + 2 - s), ctype[k], strlen(ctype[k])),
		                   "part %d is not %s", k, ctype[k]);
		g->part[k].body = b + 4;
		g->part[k].body_n = b + 4 <= e + 2 ? (size_t)(e + 2 - (b + 4)) : 0;
		q = e;
	}

	/* 7-bit and no controls but CRLF outside the original's headers */
	const char *h3 = g->part[2].body;
	for (const char *c = g->p; c < end; c++) {
		if (c >= h3 && c < h3 + g->part[2].body_n)
			continue;
		unsigned char u = (unsigned char)*c;
		cr_assert((u >= 0x20 && u < 0x7f) || u == '\r' || u == '\n',
		          "octet 0x%02x at %zu", u, (size_t)(c - g->p));
	}
	/* no line of the two generated parts starts with "--" */
	for (int k = 0; k < 2; k++) {
		const char *pe = g->part[k].p + g->part[k].n;
		for (const char *x = g->part[k].p; x < pe; x = next_line(x))
			cr_assert(strncmp(x, "--", 2) != 0, "part %d: a line starts with --", k);
	}

	/* one paragraph a recipient */
	const char *te = g->part[0].body + g->part[0].body_n;
	for (const char *x = g->part[0].body; x < te; x = next_line(x))
		g->paragraphs += *x == '<';
	cr_assert_eq(g->paragraphs, nrcpt, "paragraphs: %zu", g->paragraphs);

	/* delivery-status: blocks of fields, continuation lines start with a space */
	const char *se = g->part[1].body + g->part[1].body_n;
	bool in_block = false;
	size_t finals = 0;
	for (const char *x = g->part[1].body; x < se; x = next_line(x)) {
		if (line_is(x, se + 2, "")) {
			in_block = false;
			continue;
		}
		if (!in_block) {
			g->blocks++;
			in_block = true;
			if (g->blocks > 1)
				cr_assert(strncmp(x, "Final-Recipient: rfc822; ", 25) == 0,
				          "a block starts with %.40s", x);
		}
		if (*x == ' ')
			continue;
		size_t nl = strcspn(x, ":\r");
		cr_assert(x[nl] == ':' && nl > 0, "not a field: %.40s", x);
		for (size_t i = 0; i < nl; i++)
			cr_assert(x[i] > ' ' && x[i] < 0x7f);
		finals += strncmp(x, "Final-Recipient:", 16) == 0;
	}
	cr_assert_eq(g->blocks, 1 + nrcpt, "blocks: %zu", g->blocks);
	cr_assert_eq(finals, nrcpt);
}

static void got_free(struct got *g)
{
	free(g->p);
	g->p = NULL;
}

static void build_check(struct got *g, const struct dsn_msg *m)
{
	size_t n = 0;
	uint8_t *out = dsn_build(m, &n);
	cr_assert_not_null(out, "dsn_build: errno %d", errno);
	got_check(g, out, n, m->nrcpt);
}

/* ---- structure --------------------------------------------------------------------- */

Test(dsn, one_recipient_exact)
{
	struct dsn_rcpt r = rcpt_unknown();
	struct dsn_msg m = msg_with(&r, 1);
	struct got g;

	build_check(&g, &m);
	static const char *const want_hdr[] = {
		"From: MAILER-DAEMON@mx.example.net (Mail Delivery System)",
		"To: <alice@example.org>",
		"Subject: Undelivered Mail Returned to Sender",
		"Date: Tue, 14 Nov 2023 22:13:20 +0000",
		"Message-ID: <4Q0002.dsn@mx.example.net>",
		"Auto-Submitted: auto-replied",
		"MIME-Version: 1.0",
		"Content-Transfer-Encoding: 7bit",
	};
	for (size_t i = 0; i < sizeof want_hdr / sizeof *want_hdr; i++)
		cr_expect(has_header(&g, want_hdr[i]), "missing header line: %s", want_hdr[i]);
	char ct[200];
	snprintf(ct, sizeof ct,
	         "Content-Type: multipart/report; report-type=delivery-status; boundary=\"%s\"",
	         g.boundary);
	cr_expect(has_header(&g, ct));
	cr_expect_str_eq(g.boundary, "4Q0002.1700000000/0000000000000000");
	cr_expect(strncmp(g.p + g.hdr_n, "\r\nThis is a MIME-encapsulated message.\r\n", 40) == 0);

	char *text = part_body(&g, 0);
	cr_expect(strncmp(text, "This is the mail system at host mx.example.net.\r\n\r\n"
	                        "I'm sorry to have to inform you that your message could not\r\n", 111) == 0,
	          "%s", text);
	cr_expect_not_null(strstr(text,
		"\r\n\r\n<user@example.com>: host mx.example.com said: 550 5.1.1 <user@example.com>:\r\n"
		"    user unknown (in reply to RCPT TO command)\r\n"), "%s", text);
	cr_expect_null(strstr(text, "delayed"));
	free(text);

	char *st = part_body(&g, 1);
	cr_expect_str_eq(st,
		"Reporting-MTA: dns; mx.example.net\r\n"
		"X-Ringrelay-Queue-ID: 4Q0001\r\n"
		"X-Ringrelay-Sender: rfc822; alice@example.org\r\n"
		"Arrival-Date: Tue, 14 Nov 2023 19:26:40 +0000\r\n"
		"\r\n"
		"Final-Recipient: rfc822; user@example.com\r\n"
		"Action: failed\r\n"
		"Status: 5.1.1\r\n"
		"Remote-MTA: dns; mx.example.com\r\n"
		"Diagnostic-Code: smtp; 550 5.1.1 <user@example.com>: user unknown\r\n"
		"Last-Attempt-Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n"
		"\r\n");
	free(st);

	char *h = part_body(&g, 2);
	char want[1024];
	snprintf(want, sizeof want, "%s\r\n", orig_simple_headers);
	cr_expect_str_eq(h, want);
	free(h);
	cr_expect_not_null(memmem(g.part[2].p, g.part[2].n,
	                          "Content-Description: Undelivered Message Headers\r\n", 50));
	cr_expect_not(dsn_8bit((const uint8_t *)g.p, g.n));
	got_free(&g);
}

Test(dsn, local_reason_and_missing_fields)
{
	struct dsn_rcpt r[3] = {
		{ .rcpt = "<a@example.com>", .status = "5.4.7", .action = DSN_FAILED,
		  .diag = "delivery time expired" },
		{ .rcpt = "b@example.com", .status = "5.4.4", .action = DSN_FAILED,
		  .remote_mta = "", .diag = "" },
		{ .rcpt = "c@example.com", .status = NULL, .action = DSN_FAILED,
		  .remote_mta = "mx.c.example", .diag = " \r\n " },
	};
	struct dsn_msg m = msg_with(r, 3);
	m.qid = NULL;
	m.arrival = 0;
	struct got g;

	build_check(&g, &m);
	char *text = part_body(&g, 0), *st = part_body(&g, 1);
	cr_expect_not_null(strstr(text, "\r\n<a@example.com>: delivery time expired\r\n"), "%s", text);
	cr_expect_not_null(strstr(text, "\r\n<b@example.com>: delivery failed (status 5.4.4)\r\n"));
	cr_expect_not_null(strstr(text, "\r\n<c@example.com>: host mx.c.example answered (status 5.0.0)\r\n"));
	cr_expect_null(strstr(st, "X-Ringrelay-Queue-ID"), "qid NULL: no queue id field");
	cr_expect_null(strstr(st, "Arrival-Date"), "arrival 0: no Arrival-Date");
	cr_expect_not_null(strstr(st, "Final-Recipient: rfc822; a@example.com\r\nAction: failed\r\n"
	                              "Status: 5.4.7\r\nDiagnostic-Code: X-Ringrelay; delivery time expired\r\n"));
	cr_expect_not_null(strstr(st, "Final-Recipient: rfc822; b@example.com\r\nAction: failed\r\n"
	                              "Status: 5.4.4\r\nLast-Attempt-Date: "));
	cr_expect_not_null(strstr(st, "Final-Recipient: rfc822; c@example.com\r\nAction: failed\r\n"
	                              "Status: 5.0.0\r\nRemote-MTA: dns; mx.c.example\r\nLast-Attempt-Date: "));
	free(text);
	free(st);
	got_free(&g);
}

Test(dsn, dates)
{
	static const struct { uint64_t t; const char *want; } cases[] = {
		{ 0, "Date: Thu, 1 Jan 1970 00:00:00 +0000" },
		{ 951782400, "Date: Tue, 29 Feb 2000 00:00:00 +0000" },
		{ 1709164800, "Date: Thu, 29 Feb 2024 00:00:00 +0000" },
		{ 1700000000, "Date: Tue, 14 Nov 2023 22:13:20 +0000" },
		{ 4102444799u, "Date: Thu, 31 Dec 2099 23:59:59 +0000" },
		{ 253402300799ull, "Date: Fri, 31 Dec 9999 23:59:59 +0000" },
	};
	struct dsn_rcpt r = rcpt_unknown();
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		struct dsn_msg m = msg_with(&r, 1);
		struct got g;
		m.now = cases[i].t;
		build_check(&g, &m);
		cr_expect(has_header(&g, cases[i].want), "%s", cases[i].want);
		got_free(&g);
	}
	/* the largest time still gives a well-formed line */
	struct dsn_msg m = msg_with(&r, 1);
	struct got g;
	m.now = UINT64_MAX;
	m.arrival = UINT64_MAX;
	build_check(&g, &m);
	got_free(&g);
}

Test(dsn, status_codes)
{
	static const struct { const char *in; enum dsn_action a; const char *want; } cases[] = {
		{ "5.1.1", DSN_FAILED, "5.1.1" },
		{ "4.4.7", DSN_FAILED, "4.4.7" },       /* an expired message fails with 4.x.x */
		{ "5.123.999", DSN_FAILED, "5.123.999" },
		{ "5.1.10", DSN_FAILED, "5.1.10" },
		{ "4.4.1", DSN_DELAYED, "4.4.1" },
		{ "5.1.1", DSN_DELAYED, "4.0.0" },
		{ "2.0.0", DSN_FAILED, "5.0.0" },
		{ "2.0.0", DSN_DELAYED, "4.0.0" },
		{ "5.1", DSN_FAILED, "5.0.0" },
		{ "5.1.1.1", DSN_FAILED, "5.0.0" },
		{ "5.1234.1", DSN_FAILED, "5.0.0" },
		{ "5..1", DSN_FAILED, "5.0.0" },
		{ "5.1.", DSN_FAILED, "5.0.0" },
		{ "5.1.1 ", DSN_FAILED, "5.0.0" },
		{ " 5.1.1", DSN_FAILED, "5.0.0" },
		{ "5.1.1\r\nBcc: x", DSN_FAILED, "5.0.0" },
		{ "", DSN_FAILED, "5.0.0" },
		{ "", DSN_DELAYED, "4.0.0" },
		{ "x", DSN_FAILED, "5.0.0" },
		{ NULL, DSN_FAILED, "5.0.0" },
		{ NULL, DSN_DELAYED, "4.0.0" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		struct dsn_rcpt r = rcpt_unknown();
		r.status = cases[i].in;
		r.action = cases[i].a;
		struct dsn_msg m = msg_with(&r, 1);
		struct got g;
		build_check(&g, &m);
		char want[64];
		snprintf(want, sizeof want, "\r\nStatus: %s\r\n", cases[i].want);
		cr_expect_not_null(memmem(g.part[1].p, g.part[1].n, want, strlen(want)),
		                   "status %s: want %s", cases[i].in ? cases[i].in : "(null)",
		                   cases[i].want);
		got_free(&g);
	}
}

Test(dsn, thousand_recipients)
{
	enum { N = 1000 };
	static struct dsn_rcpt r[N];
	static char addr[N][40], diag[N][80];
	for (int i = 0; i < N; i++) {
		snprintf(addr[i], sizeof addr[i], "user%04d@example.com", i);
		snprintf(diag[i], sizeof diag[i], "550 5.1.1 <user%04d@example.com>: user unknown", i);
		r[i] = rcpt_unknown();
		r[i].rcpt = addr[i];
		r[i].diag = diag[i];
		r[i].status = i % 2 ? "5.1.1" : "5.2.2";
	}
	struct dsn_msg m = msg_with(r, N);
	struct got g;

	build_check(&g, &m);
	/* in order, each block with its own fields */
	const char *st = g.part[1].body, *se = st + g.part[1].body_n;
	const char *tx = g.part[0].body, *te = tx + g.part[0].body_n;
	for (int i = 0; i < N; i++) {
		char want[200];
		snprintf(want, sizeof want, "\r\nFinal-Recipient: rfc822; %s\r\nAction: failed\r\n"
		         "Status: %s\r\n", addr[i], r[i].status);
		const char *f = memmem(st, (size_t)(se - st), want, strlen(want));
		cr_assert_not_null(f, "block %d", i);
		st = f + 1;
		snprintf(want, sizeof want, "\r\n<%s>: host mx.example.com said:", addr[i]);
		f = memmem(tx, (size_t)(te - tx), want, strlen(want));
		cr_assert_not_null(f, "paragraph %d", i);
		tx = f + 1;
	}
	got_free(&g);
}

/* ---- hostile input ----------------------------------------------------------------- */

static const char *const evil[] = {
	"a@b\r\nBcc: evil@x",
	"a@b\nBcc: evil@x\n\n",
	"a@b\rBcc: evil@x",
	"\r\n\r\nFinal-Recipient: rfc822; forged@x\r\nAction: failed",
	"x\r\n--",
	"\r\n--4Q0002.1700000000/0000000000000000--\r\n",
	"--4Q0002.1700000000/0000000000000000",
	"\r\n.\r\nQUIT\r\n",
	"\x01\x02\x1b[31m\x7f\t\v\f",
	"caf\xc3\xa9 \xff\xfe \xed\xa0\x80 \xf0\x9f\x92\xa9",
	"\r\n",
	" ",
	"x\0hidden\r\nBcc: y",
};

enum evil_field { EF_RCPT, EF_DIAG, EF_CMD, EF_REMOTE, EF_SENDER, EF_QID, EF_STATUS, EF_N };

Test(dsn, injection_in_every_untrusted_field)
{
	for (int f = 0; f < EF_N; f++) {
		for (size_t e = 0; e < sizeof evil / sizeof *evil; e++) {
			struct dsn_rcpt r[2] = { rcpt_unknown(), rcpt_unknown() };
			struct dsn_msg m = msg_with(r, 2);
			r[1].rcpt = "other@example.com";
			char sender[64];
			switch (f) {
			case EF_RCPT:   r[0].rcpt = evil[e]; break;
			case EF_DIAG:   r[0].diag = evil[e]; break;
			case EF_CMD:    r[0].in_reply_to = evil[e]; break;
			case EF_REMOTE: r[0].remote_mta = evil[e]; break;
			case EF_SENDER:
				/* an all-blank sender is still a sender, not "" */
				snprintf(sender, sizeof sender, "s%s", evil[e]);
				m.sender = sender;
				break;
			case EF_QID:    m.qid = evil[e]; break;
			case EF_STATUS: r[0].status = evil[e]; break;
			}
			struct got g;
			build_check(&g, &m);
			cr_expect_null(strstr(g.p, "\r\nBcc:"), "field %d, input %zu: a Bcc line", f, e);
			cr_expect_null(strstr(g.p, "\r\nQUIT"), "field %d, input %zu", f, e);
			cr_expect_null(strstr(g.p, "\r\nFinal-Recipient: rfc822; forged"));
			cr_expect_null(strstr(g.p, "hidden"), "bytes after a NUL were read");
			got_free(&g);
		}
	}
}

Test(dsn, cleaning_is_visible)
{
	struct dsn_rcpt r = rcpt_unknown();
	r.rcpt = "caf\xc3\xa9@example.com";
	r.diag = "550\r\n5.1.1\x01 bad\x7f";
	r.in_reply_to = "RCPT\tTO";
	struct dsn_msg m = msg_with(&r, 1);
	m.sender = "<a\r\nb@example.org>";
	m.dsn_qid = "Q 1<x>.\xff";
	m.reporting_mta = ".mx..example_net.\r\n";
	struct got g;

	build_check(&g, &m);
	cr_expect(has_header(&g, "To: <a  b@example.org>"));
	cr_expect(has_header(&g, "From: MAILER-DAEMON@mx.example-net.-- (Mail Delivery System)"));
	cr_expect(has_header(&g, "Message-ID: <Q_1_x___.dsn@mx.example-net.-->"));
	cr_expect(strncmp(g.boundary, "Q_1_x___.1700000000/", 20) == 0, "%s", g.boundary);
	char *st = part_body(&g, 1), *text = part_body(&g, 0);
	cr_expect_not_null(strstr(st, "Final-Recipient: rfc822; caf\\xC3\\xA9@example.com\r\n"), "%s", st);
	cr_expect_not_null(strstr(st, "Diagnostic-Code: smtp; 550 5.1.1? bad?\r\n"), "%s", st);
	cr_expect_not_null(strstr(text, "<caf\\xC3\\xA9@example.com>: host mx.example.com said: 550 5.1.1? bad? (in reply\r\n"
	                                "    to RCPT TO command)\r\n"), "%s", text);
	free(st);
	free(text);
	got_free(&g);
}

Test(dsn, long_fields_are_cut_and_folded)
{
	static char big[20000], words[20000], host[3000];
	memset(big, 'x', sizeof big - 1);
	for (size_t i = 0; i < sizeof words - 1; i++)
		words[i] = i % 7 == 6 ? ' ' : 'w';
	memset(host, 'h', sizeof host - 1);
	static const char *const diags[] = { big, words, "\xff\xff\xff\xff\xff\xff\xff\xff" };
	for (int k = 0; k < 3; k++) {
		struct dsn_rcpt r = rcpt_unknown();
		r.rcpt = big;
		r.diag = diags[k];
		r.remote_mta = host;
		r.in_reply_to = big;
		struct dsn_msg m = msg_with(&r, 1);
		m.sender = big;
		m.qid = big;
		m.reporting_mta = host;
		m.dsn_qid = big;
		struct got g;
		build_check(&g, &m);
		cr_expect_leq(strlen(g.boundary), 70);
		cr_expect_not_null(strstr(g.p, "Final-Recipient: rfc822; xxxxxxxx"));
		cr_expect_not_null(strstr(g.p, "xxx...\r\n"), "a cut is marked");
		/* the diag is cut at 4096 octets, and folded */
		char *st = part_body(&g, 1);
		char *dc = strstr(st, "Diagnostic-Code: smtp; ");
		cr_assert_not_null(dc);
		char *lat = strstr(dc, "Last-Attempt-Date:");
		size_t folded = (size_t)(lat - dc);
		if (k < 2) {
			cr_expect(folded > 4096 && folded < 4096 + 400, "Diagnostic-Code of %zu octets",
			          folded);
			cr_expect_not_null(strstr(dc, "\r\n    "), "long diag folded");
		} else {
			cr_expect_not_null(strstr(dc, "smtp; \\xFF\\xFF"), "%.60s", dc);
		}
		free(st);
		got_free(&g);
	}
}

/* ---- the original's header section ------------------------------------------------- */

static char *headers_of(const char *orig, size_t n)
{
	struct dsn_rcpt r = rcpt_unknown();
	struct dsn_msg m = msg_with(&r, 1);
	struct got g;

	m.orig = (const uint8_t *)orig;
	m.orig_len = n;
	build_check(&g, &m);
	char *h = part_body(&g, 2);
	got_free(&g);
	size_t l = strlen(h);
	cr_assert(l >= 2 && strcmp(h + l - 2, "\r\n") == 0);
	h[l - 2] = '\0';      /* the CRLF of the closing delimiter: the section is left */
	return h;
}

Test(dsn, original_header_sections)
{
	static const struct { const char *in; size_t n; const char *want; } cases[] = {
#define C(s, w) { s, sizeof s - 1, w }
		C("A: 1\r\nB: 2\r\n\r\nbody\r\n", "A: 1\r\nB: 2\r\n"),
		C("A: 1\r\nB: 2\r\n", "A: 1\r\nB: 2\r\n"),             /* no separator: all */
		C("A: 1\r\nB: 2", "A: 1\r\nB: 2\r\n"),                 /* nor a final CRLF */
		C("A: 1\nB: 2\n\nbody\nC: 3\n", "A: 1\r\nB: 2\r\n"),   /* bare LFs */
		C("A: 1\rB: 2\r\rbody", "A: 1\r\nB: 2\r\n"),           /* bare CRs */
		C("A: 1\r\r\nB: 2\r\n", "A: 1\r\n"),                   /* CR, then an empty line */
		C("A: 1\n\r\nB: 2", "A: 1\r\n"),
		C("A: 1\r\n x\n\ty\r\n\r\n", "A: 1\r\n x\r\n\ty\r\n"),
		C("A: x\0y\r\n\r\n", "A: x?y\r\n"),                     /* NUL */
		C("\r\nbody only\r\n", ""),
		C("", ""),
		C("A: --\r\n--x\r\n\r\n", "A: --\r\n--x\r\n"),
#undef C
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		char *h = headers_of(cases[i].in, cases[i].n);
		cr_expect_str_eq(h, cases[i].want, "case %zu", i);
		free(h);
	}
	/* orig NULL */
	struct dsn_rcpt r = rcpt_unknown();
	struct dsn_msg m = msg_with(&r, 1);
	struct got g;
	m.orig = NULL;
	m.orig_len = 10;
	build_check(&g, &m);
	cr_expect_eq(g.part[2].body_n, 2);
	got_free(&g);
}

Test(dsn, original_long_lines_cut)
{
	static char in[5000];
	size_t n = 0;
	memcpy(in, "Long: ", 6);
	n = 6;
	while (n < 3000)
		in[n++] = 'y';
	memcpy(in + n, "\r\nNext: 1\r\n\r\n", 13);
	n += 13;
	char *h = headers_of(in, n);
	char *crlf = strstr(h, "\r\n");
	cr_expect_eq((size_t)(crlf - h), 998);
	cr_expect_str_eq(crlf, "\r\nNext: 1\r\n");
	free(h);
}

Test(dsn, original_of_ten_megabytes_capped)
{
	size_t cap = 10u << 20, n = 0;
	char *in = malloc(cap + 100);
	unsigned i = 0;
	cr_assert_not_null(in);
	for (; n < cap; i++)
		n += (size_t)sprintf(in + n, "X-Filler-%07u: %s\r\n", i,
		                     i % 3 == 0 ? "a\nbare LF" : "some text to fill a line with");
	char *h = headers_of(in, n);
	size_t l = strlen(h);
	cr_expect_leq(l, DSN_HEADERS_MAX);
	cr_expect_gt(l, DSN_HEADERS_MAX - 100, "cut well before the cap: %zu", l);
	cr_expect(strncmp(h, "X-Filler-0000000: a\r\nbare LF\r\nX-Filler-0000001: some", 51) == 0);
	/* the last line is whole */
	cr_assert(l > 2 && strcmp(h + l - 2, "\r\n") == 0);
	h[l - 2] = '\0';
	char *last = strrchr(h, '\n') + 1;
	cr_expect(strcmp(last, "bare LF") == 0 ||
	          (strncmp(last, "X-Filler-", 9) == 0 && (strcmp(last + 18, "a") == 0 ||
	           strcmp(last + 18, "some text to fill a line with") == 0)), "%s", last);
	free(h);

	/* one line of 10 MB: cut to 998 */
	memset(in, 'z', cap);
	memcpy(in, "Huge: ", 6);
	h = headers_of(in, cap);
	cr_expect_eq(strlen(h), 1000);
	cr_expect_str_eq(h + 998, "\r\n");
	free(h);
	free(in);
}

Test(dsn, eight_bit_original)
{
	struct dsn_rcpt r = rcpt_unknown();
	struct dsn_msg m = msg_with(&r, 1);
	static const char o[] = "Subject: caf\xc3\xa9\r\n\r\n";
	m.orig = (const uint8_t *)o;
	m.orig_len = sizeof o - 1;
	struct got g;
	size_t n;
	uint8_t *out = dsn_build(&m, &n);
	cr_assert_not_null(out);
	cr_expect(dsn_8bit(out, n));
	got_check(&g, out, n, 1);
	cr_expect(has_header(&g, "Content-Transfer-Encoding: 8bit"));
	cr_expect_not_null(memmem(g.part[2].p, g.part[2].n,
	                          "Content-Transfer-Encoding: 8bit\r\n", 33));
	cr_expect_not_null(memmem(g.part[2].body, g.part[2].body_n, o, sizeof o - 3));
	got_free(&g);
}

/* ---- the boundary ------------------------------------------------------------------ */

Test(dsn, boundary_collision_forced)
{
	struct dsn_rcpt r = rcpt_unknown();
	struct dsn_msg m = msg_with(&r, 1);
	struct got g;

	build_check(&g, &m);
	char b0[128];
	strcpy(b0, g.boundary);
	got_free(&g);

	/* the would-be boundary in the original's headers, as a delimiter line */
	char orig[400];
	int n = snprintf(orig, sizeof orig, "Subject: x\r\n--%s\r\nX: --%s--\r\n\r\n", b0, b0);
	m.orig = (const uint8_t *)orig;
	m.orig_len = (size_t)n;
	build_check(&g, &m);
	cr_expect_str_neq(g.boundary, b0);
	cr_expect_str_eq(g.boundary, "4Q0002.1700000000/0000000000000001");
	got_free(&g);

	/* in the diag too, and the next 99 candidates in the original: the 101st is free */
	static char many[100 * 80];
	size_t len = 0;
	size_t pl = strlen(b0) - 16;
	for (int k = 99; k >= 1; k--)     /* out of order: the search sorts */
		len += (size_t)sprintf(many + len, "X-B: %.*s%016x\r\n", (int)pl, b0, (unsigned)k);
	m.orig = (const uint8_t *)many;
	m.orig_len = len;
	r.diag = b0;
	build_check(&g, &m);
	cr_expect_str_eq(g.boundary, "4Q0002.1700000000/0000000000000064");
	got_free(&g);

	/* a candidate cut short, or in capitals, is no collision */
	n = snprintf(orig, sizeof orig, "A: %.*s000000000000000\r\nB: %.*s00000000000000A1\r\n",
	             (int)pl, b0, (int)pl, b0);
	m.orig = (const uint8_t *)orig;
	m.orig_len = (size_t)n;
	r.diag = NULL;
	build_check(&g, &m);
	cr_expect_str_eq(g.boundary, b0);
	got_free(&g);
}

Test(dsn, boundary_differs_per_message)
{
	struct dsn_rcpt r = rcpt_unknown();
	struct dsn_msg m = msg_with(&r, 1);
	struct got a, b;

	build_check(&a, &m);
	m.dsn_qid = "4Q0003";
	build_check(&b, &m);
	cr_expect_str_neq(a.boundary, b.boundary);
	got_free(&a);
	got_free(&b);
}

/* ---- delayed ----------------------------------------------------------------------- */

Test(dsn, delayed_subject_and_fields)
{
	struct dsn_rcpt r[2] = { rcpt_unknown(), rcpt_unknown() };
	r[0].action = r[1].action = DSN_DELAYED;
	r[0].status = "4.4.1";
	r[0].remote_mta = NULL;
	r[0].diag = "connect to mx.example.com[192.0.2.1]:25: Connection timed out";
	r[0].in_reply_to = NULL;
	r[1].rcpt = "other@example.com";
	r[1].status = "5.1.1";
	struct dsn_msg m = msg_with(r, 2);
	struct got g;

	build_check(&g, &m);
	cr_expect(has_header(&g, "Subject: Delayed Mail (still being retried)"));
	char *text = part_body(&g, 0), *st = part_body(&g, 1);
	cr_expect_not_null(strstr(text, "# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #"));
	cr_expect_null(strstr(text, "I'm sorry"));
	cr_expect_not_null(strstr(st, "Action: delayed\r\nStatus: 4.4.1\r\nDiagnostic-Code: X-Ringrelay; connect"));
	cr_expect_not_null(strstr(st, "Action: delayed\r\nStatus: 4.0.0\r\n"), "5.x.x is no delay");
	cr_expect_null(strstr(st, "Action: failed"));
	cr_expect_null(strstr(st, "Will-Retry-Until"));
	cr_expect_not_null(memmem(g.part[2].p, g.part[2].n, "Content-Description: Message Headers\r\n", 38));
	free(text);
	free(st);
	got_free(&g);

	/* mixed: a bounce, the delayed recipient marked */
	r[1].action = DSN_FAILED;
	build_check(&g, &m);
	cr_expect(has_header(&g, "Subject: Undelivered Mail Returned to Sender"));
	text = part_body(&g, 0);
	cr_expect_not_null(strstr(text, "\r\n<user@example.com>: (delayed, still being retried) connect to"));
	cr_expect_not_null(strstr(text, "\r\n<other@example.com>: host mx.example.com said:"));
	free(text);
	got_free(&g);
}

/* ---- arguments and allocation failures --------------------------------------------- */

Test(dsn, bad_arguments)
{
	struct dsn_rcpt r = rcpt_unknown();
	struct dsn_rcpt nul = rcpt_unknown();
	nul.rcpt = NULL;
	size_t n = 0;
	struct {
		struct dsn_msg m;
		const char *why;
	} cases[10];
	for (int i = 0; i < 10; i++)
		cases[i].m = msg_with(&r, 1);
	cases[0].m.sender = "";          cases[0].why = "empty sender";
	cases[1].m.sender = "<>";        cases[1].why = "null sender";
	cases[2].m.sender = NULL;        cases[2].why = "NULL sender";
	cases[3].m.reporting_mta = NULL; cases[3].why = "NULL reporting_mta";
	cases[4].m.reporting_mta = ".."; cases[4].why = "empty reporting_mta";
	cases[5].m.nrcpt = 0;            cases[5].why = "no recipients";
	cases[6].m.rcpt = NULL;          cases[6].why = "rcpt NULL";
	cases[7].m.rcpt = &nul;          cases[7].why = "rcpt[0].rcpt NULL";
	cases[8].m.dsn_qid = NULL;       cases[8].why = "dsn_qid NULL";
	cases[9].m.dsn_qid = "";         cases[9].why = "dsn_qid empty";
	for (int i = 0; i < 10; i++) {
		errno = 0;
		cr_expect_null(dsn_build(&cases[i].m, &n), "%s", cases[i].why);
		cr_expect_eq(errno, EINVAL, "%s: errno %d", cases[i].why, errno);
	}
	errno = 0;
	cr_expect_null(dsn_build(NULL, &n));
	cr_expect_eq(errno, EINVAL);
	struct dsn_msg m = msg_with(&r, 1);
	cr_expect_null(dsn_build(&m, NULL));
}

Test(dsn, every_allocation_failing_in_turn)
{
	struct dsn_rcpt r[3] = { rcpt_unknown(), rcpt_unknown(), rcpt_unknown() };
	r[1].action = DSN_DELAYED;
	struct dsn_msg m = msg_with(r, 3);
	uint8_t *out = NULL;
	size_t n, want_n;
	unsigned long k;

	dsn_test_fail_alloc(0);
	uint8_t *want = dsn_build(&m, &want_n);
	cr_assert_not_null(want);
	for (k = 1; k < 1000; k++) {
		dsn_test_fail_alloc(k);
		errno = 0;
		out = dsn_build(&m, &n);
		if (out != NULL)
			break;
		cr_expect_eq(errno, ENOMEM, "allocation %lu: errno %d", k, errno);
	}
	dsn_test_fail_alloc(0);
	cr_assert_not_null(out, "never succeeded");
	cr_expect_gt(k, 5, "only %lu allocations", k);
	cr_expect(n == want_n && memcmp(out, want, n) == 0, "a retried build differs");
	free(out);
	free(want);
}

/* ---- an independent reader: Python's email package --------------------------------- */

static const char py_check[] =
	"import sys, email\n"
	"from email import policy\n"
	"raw = sys.stdin.buffer.read()\n"
	"m = email.message_from_bytes(raw, policy=policy.default)\n"
	"assert m.get_content_type() == 'multipart/report', m.get_content_type()\n"
	"assert m.get_param('report-type') == 'delivery-status'\n"
	"assert m['To'].addresses[0].addr_spec == 'alice@example.org', m['To']\n"
	"assert m['Subject'] == 'Undelivered Mail Returned to Sender'\n"
	"assert m['Message-ID'] == '<4Q0002.dsn@mx.example.net>'\n"
	"assert m['Bcc'] is None\n"
	"assert m['Date'].datetime.timestamp() == 1700000000, m['Date']\n"
	"p = m.get_payload()\n"
	"assert len(p) == 3, len(p)\n"
	"assert [x.get_content_type() for x in p] == ['text/plain', 'message/delivery-status', 'text/rfc822-headers']\n"
	"for x in m.walk():\n"
	"    assert not x.defects, (x.get_content_type(), x.defects)\n"
	"t = p[0].get_content()\n"
	"assert 'This is the mail system at host mx.example.net.' in t\n"
	"assert ' '.join(t.split()).count('(in reply to RCPT TO command)') == 3\n"
	"ds = p[1].get_payload()\n"
	"assert len(ds) == 4, len(ds)\n"
	"assert ds[0]['Reporting-MTA'] == 'dns; mx.example.net'\n"
	"assert ds[0]['X-Ringrelay-Queue-ID'] == '4Q0001'\n"
	"assert ds[0]['Arrival-Date'] == 'Tue, 14 Nov 2023 19:26:40 +0000'\n"
	"want = [('user@example.com', '5.1.1'), ('a@b  Bcc: evil@x', '5.0.0'), ('x' * 200, '5.7.1')]\n"
	"for b, (rc, st) in zip(ds[1:], want):\n"
	"    assert b['Final-Recipient'] == 'rfc822; ' + rc, b['Final-Recipient']\n"
	"    assert b['Action'] == 'failed' and b['Status'] == st, (b['Action'], b['Status'])\n"
	"    assert b['Remote-MTA'] == 'dns; mx.example.com'\n"
	"    assert b['Last-Attempt-Date'] == 'Tue, 14 Nov 2023 22:13:20 +0000'\n"
	"    assert b['Bcc'] is None\n"
	"d = ' '.join(str(ds[3]['Diagnostic-Code']).split())\n"
	"assert d == 'smtp; 550 5.7.1 ' + ' '.join(['word'] * 100), d\n"
	"h = p[2].get_payload()\n"
	"assert 'Subject: hello' in h and 'the body' not in h, h\n"
	"print('python email: ok')\n";

Test(dsn, python_email_reads_it_back)
{
	if (system("command -v python3 >/dev/null 2>&1") != 0)
		cr_skip_test("python3 not found");
	static char longrcpt[201], longdiag[1000];
	memset(longrcpt, 'x', 200);
	size_t dl = (size_t)sprintf(longdiag, "550 5.7.1");
	for (int i = 0; i < 100; i++)
		dl += (size_t)sprintf(longdiag + dl, " word");
	struct dsn_rcpt r[3] = { rcpt_unknown(), rcpt_unknown(), rcpt_unknown() };
	r[1].rcpt = "a@b\r\nBcc: evil@x";
	r[1].status = "5.1.1\r\n";
	r[1].diag = "550 x\r\n--4Q0002.1700000000/0000000000000000--\r\n";
	r[2].rcpt = longrcpt;
	r[2].status = "5.7.1";
	r[2].diag = longdiag;
	struct dsn_msg m = msg_with(r, 3);
	size_t n;
	uint8_t *out = dsn_build(&m, &n);
	cr_assert_not_null(out);

	char cmd[sizeof py_check + 64];
	snprintf(cmd, sizeof cmd, "python3 -c \"%s\"", py_check);
	cr_assert_null(strchr(py_check, '"'), "the script must not hold a double quote");
	cr_assert_null(strchr(py_check, '$'));
	FILE *py = popen(cmd, "w");
	cr_assert_not_null(py);
	cr_assert_eq(fwrite(out, 1, n, py), n);
	int st = pclose(py);
	free(out);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "python3 rejected the DSN (status %d)", st);
}
