/* Unit tests for proto/smtp_reply: table-driven; every input is also fed split at every
 * offset and one octet at a time, and must give the same replies and the same error. */
#include <criterion/criterion.h>
#include <string.h>

#include "proto/smtp_reply.h"

#define MAXR 8

struct got {
	unsigned n;
	unsigned code[MAXR];
	bool pipelining[MAXR];
	char text[MAXR][SMTP_REPLY_TEXT_MAX];
	const char *err;          /* NULL: no error */
};

struct reply_case {
	const char *name;
	const char *in;
	unsigned want_n;
	unsigned want_code[MAXR];
	const char *want_text0;   /* text of the first reply, or NULL */
	bool want_pipelining0;
	const char *want_err;     /* NULL when the input is valid */
};

static const struct reply_case cases[] = {
	{ "banner", "220 mx.example ESMTP\r\n", 1, { 220 }, "220 mx.example ESMTP", false, NULL },
	{ "bare code", "250\r\n", 1, { 250 }, "250", false, NULL },
	{ "multi-line EHLO", "250-mx\r\n250-PIPELINING\r\n250 8BITMIME\r\n", 1, { 250 }, "250-mx", true, NULL },
	{ "pipelined group", "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data\r\n", 3, { 250, 250, 354 }, "250 2.1.0 Ok", false, NULL },
	{ "bare LF taken", "451 4.3.0 later\n", 1, { 451 }, "451 4.3.0 later", false, NULL },
	{ "PIPELINING only as keyword", "250-mx\r\n250 NOTPIPELINING\r\n", 1, { 250 }, "250-mx", false, NULL },
	{ "non-printable shown as ?", "554 bad\x01text\r\n", 1, { 554 }, "554 bad?text", false, NULL },
	{ "incomplete", "250-mx\r\n250 8BIT", 0, { 0 }, NULL, false, NULL },
	{ "short line", "25\r\n", 0, { 0 }, NULL, false, "reply line shorter than a code" },
	{ "codes differ", "250-a\r\n251 b\r\n", 0, { 0 }, NULL, false, "codes differ within a multi-line reply" },
	{ "bare CR", "250 a\rb\r\n", 0, { 0 }, NULL, false, "CR not followed by LF in a reply" },
	{ "code 600", "600 no\r\n", 0, { 0 }, NULL, false, "reply line does not start with a code" },
	{ "letters", "ab0 no\r\n", 0, { 0 }, NULL, false, "reply line does not start with a code" },
	{ "no separator", "250x\r\n", 0, { 0 }, NULL, false, "no space or hyphen after the reply code" },
	{ "ok then error", "250 ok\r\n2", 1, { 250 }, "250 ok", false, NULL },
};

/* Feed `in` in pieces of the sizes given by the cut points. */
static void run(const char *in, size_t len, const size_t *cuts, size_t ncuts, struct got *g)
{
	struct smtp_reply_parser rp;
	smtp_reply_parser_reset(&rp);
	memset(g, 0, sizeof *g);
	size_t from = 0;
	for (size_t k = 0; k <= ncuts && !g->err; k++) {
		size_t to = k < ncuts ? cuts[k] : len;
		const uint8_t *p = (const uint8_t *)in + from;
		size_t n = to - from;
		while (n > 0) {
			size_t used = 0;
			struct smtp_reply r;
			const char *err = NULL;
			enum smtp_reply_rc rc = smtp_reply_feed(&rp, p, n, &used, &r, &err);
			if (rc == SMTP_REPLY_ERR) {
				g->err = err;
				break;
			}
			if (rc == SMTP_REPLY_AGAIN) {
				cr_assert_eq(used, n, "AGAIN must consume everything");
				break;
			}
			cr_assert(used > 0 && used <= n);
			cr_assert(g->n < MAXR);
			g->code[g->n] = r.code;
			g->pipelining[g->n] = r.pipelining;
			memcpy(g->text[g->n], r.text, sizeof r.text);
			g->n++;
			p += used;
			n -= used;
		}
		from = to;
	}
}

static void expect_same(const struct got *want, const struct got *got, const char *name, const char *how)
{
	cr_assert_eq(got->n, want->n, "%s (%s): replies", name, how);
	for (unsigned i = 0; i < want->n; i++) {
		cr_assert_eq(got->code[i], want->code[i], "%s (%s): code %u", name, how, i);
		cr_assert_eq(got->pipelining[i], want->pipelining[i], "%s (%s)", name, how);
		cr_assert_str_eq(got->text[i], want->text[i], "%s (%s)", name, how);
	}
	cr_assert_eq(got->err == NULL, want->err == NULL, "%s (%s): error", name, how);
	if (want->err)
		cr_assert_str_eq(got->err, want->err, "%s (%s)", name, how);
}

Test(smtp_reply, table_one_shot_and_every_split)
{
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const struct reply_case *c = &cases[i];
		size_t len = strlen(c->in);
		struct got got;
		run(c->in, len, NULL, 0, &got);
		cr_assert_eq(got.n, c->want_n, "%s: want %u replies, got %u", c->name, c->want_n, got.n);
		for (unsigned k = 0; k < c->want_n; k++)
			cr_assert_eq(got.code[k], c->want_code[k], "%s: reply %u", c->name, k);
		if (c->want_text0) {
			cr_assert_str_eq(got.text[0], c->want_text0, "%s", c->name);
			cr_assert_eq(got.pipelining[0], c->want_pipelining0, "%s: pipelining", c->name);
		}
		if (c->want_err)
			cr_assert(got.err && strcmp(got.err, c->want_err) == 0, "%s: want error '%s', got '%s'",
			          c->name, c->want_err, got.err ? got.err : "(none)");
		else
			cr_assert_null(got.err, "%s: unexpected error %s", c->name, got.err);

		for (size_t cut = 1; cut < len; cut++) {           /* two pieces */
			struct got split;
			run(c->in, len, &cut, 1, &split);
			expect_same(&got, &split, c->name, "split");
		}
		size_t cuts[256];                                   /* one octet at a time */
		cr_assert(len < 256);
		for (size_t k = 0; k + 1 < len; k++)
			cuts[k] = k + 1;
		struct got bytes;
		run(c->in, len, cuts, len ? len - 1 : 0, &bytes);
		expect_same(&got, &bytes, c->name, "bytewise");
	}
}

Test(smtp_reply, long_line_is_refused_and_text_is_cut)
{
	static char in[SMTP_REPLY_LINE_MAX + 16];
	memset(in, 'x', sizeof in);
	memcpy(in, "250 ", 4);
	struct got g;
	run(in, sizeof in, NULL, 0, &g);
	cr_assert_str_eq(g.err, "reply line too long");

	char ok[600];
	memset(ok, 'y', sizeof ok);
	memcpy(ok, "250 ", 4);
	memcpy(ok + sizeof ok - 2, "\r\n", 2);
	run(ok, sizeof ok, NULL, 0, &g);
	cr_assert_eq(g.n, 1);
	cr_assert_eq(strlen(g.text[0]), SMTP_REPLY_TEXT_MAX - 1);
}
