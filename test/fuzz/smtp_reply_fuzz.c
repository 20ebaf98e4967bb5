/* test/fuzz/smtp_reply_fuzz — libFuzzer target for proto/smtp_reply, the client-side
 * reply parser (ringblast, the delivery client to come): the input is what a server
 * sends.
 *
 * The stream is fed to a fresh parser three ways: in one piece, one octet at a time, and
 * in chunks whose sizes come from a hash of the input; after each OK the rest is fed
 * again, as a client does. All three give the same replies (code, PIPELINING, text) and
 * end the same way (AGAIN, or ERR with the same message) — split-invariance. Each also
 * agrees with a reference model written here over whole lines (RFC 5321 4.2 as the
 * header states it: "ddd-" lines then "ddd " or "ddd", codes 200-599 and equal within a
 * reply, CRLF or bare LF, a CR elsewhere is an error, lines at most 2048 octets, the
 * first line's text kept with non-printables as '?', cut to 159). Invariants: OK uses
 * 1..n octets and AGAIN all n; the code is 200..599; text is NUL-terminated printable.
 */
#include <strings.h>

#include "proto/smtp_reply.h"
#include "test/fuzz/fuzz_util.h"

#define FZ_MAXR 4096

struct fz_out {
	size_t n;                        /* replies */
	struct smtp_reply r[FZ_MAXR];
	size_t end[FZ_MAXR];             /* stream offset just after each reply */
	enum smtp_reply_rc last;         /* AGAIN or ERR */
	const char *err;
};

static void fz_reply_ok(const struct smtp_reply *r)
{
	FZ_CHECK(r->code >= 200 && r->code <= 599);
	size_t tl = strnlen(r->text, sizeof r->text);
	FZ_CHECK(tl < sizeof r->text);
	for (size_t i = 0; i < tl; i++)
		FZ_CHECK(r->text[i] >= ' ' && r->text[i] < 0x7f);
}

/* chunk: 0 one piece, 1 octet at a time, else sizes from the hash `chunk` */
static void fz_feed(const uint8_t *in, size_t n, uint32_t chunk, struct fz_out *o)
{
	struct smtp_reply_parser rp;
	size_t pos = 0, avail = 0;
	uint32_t h = chunk;

	smtp_reply_parser_reset(&rp);
	o->n = 0;
	o->err = NULL;
	o->last = SMTP_REPLY_AGAIN;
	while (pos < n) {
		if (pos == avail) {
			avail = chunk == 0 ? n : chunk == 1 ? pos + 1 : pos + 1 + fz_next(&h) % 37;
			if (avail > n)
				avail = n;
		}
		struct smtp_reply r;
		size_t used = SIZE_MAX;
		const char *err = NULL;
		memset(&r, 0x5a, sizeof r);
		enum smtp_reply_rc rc = smtp_reply_feed(&rp, in + pos, avail - pos, &used, &r, &err);
		if (rc == SMTP_REPLY_ERR) {
			FZ_CHECK(err != NULL && *err != '\0');
			o->last = rc;
			o->err = err;
			return;
		}
		FZ_CHECK(used <= avail - pos);
		if (rc == SMTP_REPLY_AGAIN) {
			FZ_CHECK(used == avail - pos);
			pos += used;
			continue;
		}
		FZ_CHECK(rc == SMTP_REPLY_OK);
		FZ_CHECK(used >= 1 && in[pos + used - 1] == '\n');
		fz_reply_ok(&r);
		pos += used;
		FZ_CHECK(o->n < FZ_MAXR);
		o->r[o->n] = r;
		o->end[o->n++] = pos;
	}
}

/* The reference: whole lines. */
static void fz_model(const uint8_t *in, size_t n, struct fz_out *o)
{
	size_t pos = 0;
	struct smtp_reply cur;
	size_t lines = 0;

	o->n = 0;
	o->last = SMTP_REPLY_AGAIN;
	memset(&cur, 0, sizeof cur);
	while (pos < n) {
		size_t e = pos;
		while (e < n && in[e] != '\n')
			e++;
		bool complete = e < n;
		size_t cl = e - pos;                     /* content, a final CR excluded */
		if (complete && cl > 0 && in[e - 1] == '\r')
			cl--;
		if (!complete && cl > 0 && in[e - 1] == '\r')
			cl--;                            /* a CR at the very end: its LF may come */
		const uint8_t *l = in + pos;
		bool bad = memchr(l, '\r', cl) != NULL || cl > SMTP_REPLY_LINE_MAX;
		for (size_t i = 0; i < cl && i < 3; i++)
			if (l[i] < '0' || l[i] > '9' || (i == 0 && (l[i] < '2' || l[i] > '5')))
				bad = true;
		if (cl > 3 && l[3] != ' ' && l[3] != '-')
			bad = true;
		if (complete && cl < 3)
			bad = true;
		unsigned code = cl >= 3 ? (unsigned)(l[0] - '0') * 100 +
		                          (unsigned)(l[1] - '0') * 10 + (unsigned)(l[2] - '0') : 0;
		if (complete && !bad && lines > 0 && code != cur.code)
			bad = true;
		if (bad) {
			o->last = SMTP_REPLY_ERR;
			return;
		}
		if (!complete)
			return;                          /* AGAIN */
		if (lines == 0) {
			cur.code = code;
			size_t t = cl < sizeof cur.text - 1 ? cl : sizeof cur.text - 1;
			for (size_t i = 0; i < t; i++)
				cur.text[i] = l[i] >= ' ' && l[i] < 0x7f ? (char)l[i] : '?';
			cur.text[t] = '\0';
		}
		/* the keyword: after the code and separator, up to a space */
		size_t kw = 4, kl = 0;
		while (kw + kl < cl && l[kw + kl] != ' ')
			kl++;
		if (cl > 4 && kl == 10 && strncasecmp((const char *)l + kw, "PIPELINING", 10) == 0)
			cur.pipelining = true;
		lines++;
		pos = e + 1;
		if (cl > 3 && l[3] == '-')
			continue;
		FZ_CHECK(o->n < FZ_MAXR);
		o->r[o->n] = cur;
		o->end[o->n++] = pos;
		memset(&cur, 0, sizeof cur);
		lines = 0;
	}
}

static void fz_same(const struct fz_out *a, const struct fz_out *b, bool err_text)
{
	FZ_CHECK(a->n == b->n && a->last == b->last);
	for (size_t i = 0; i < a->n; i++) {
		FZ_CHECK(a->end[i] == b->end[i]);
		FZ_CHECK(a->r[i].code == b->r[i].code);
		FZ_CHECK(a->r[i].pipelining == b->r[i].pipelining);
		FZ_CHECK(strcmp(a->r[i].text, b->r[i].text) == 0);
	}
	if (err_text && a->last == SMTP_REPLY_ERR)
		FZ_CHECK(strcmp(a->err, b->err) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct fz_out one, bytes, chunks, model;

	fz_feed(data, size, 0, &one);
	fz_feed(data, size, 1, &bytes);
	fz_feed(data, size, 2 + fz_hash(data, size, 0), &chunks);
	fz_model(data, size, &model);
	fz_same(&one, &bytes, true);
	fz_same(&one, &chunks, true);
	fz_same(&one, &model, false);
	return 0;
}
