/* test/proto/spoolrec_test — spool records: round trips (MSG, DONE, RCPT outcomes, VOID),
 * every prefix, every single-byte corruption, records back to back (split at every
 * offset), bad headers and payloads, the segment scan over mixed records.
 * Inputs are copied into exactly-sized heap blocks so ASan sees any over-read. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/crc32c.h"
#include "proto/spoolrec.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* ---- helpers ------------------------------------------------------------------------- */

static uint8_t *dup_exact(const uint8_t *p, size_t n)
{
	uint8_t *q = malloc(n ? n : 1);
	cr_assert_not_null(q);
	if (n)
		memcpy(q, p, n);
	return q;
}

static int view_eq(struct spoolrec_view v, const void *s, size_t n)
{
	return v.len == n && (n == 0 || memcmp(v.p, s, n) == 0);
}

/* A byte writer for hand-built payloads (the layout documented in proto/spoolrec.c). */
struct wbuf {
	uint8_t b[2048];
	size_t n;
};

static void w8(struct wbuf *w, uint8_t v)
{
	cr_assert_lt(w->n, sizeof w->b);
	w->b[w->n++] = v;
}

static void w32(struct wbuf *w, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		w8(w, (uint8_t)(v >> (8 * i)));
}

static void w64(struct wbuf *w, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		w8(w, (uint8_t)(v >> (8 * i)));
}

static void wbytes(struct wbuf *w, const void *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		w8(w, ((const uint8_t *)p)[i]);
}

static void wstr(struct wbuf *w, const char *s)
{
	w32(w, (uint32_t)strlen(s));
	wbytes(w, s, strlen(s));
}

/* A whole record around payload, with a correct CRC; returns an exact heap copy. */
static uint8_t *seal(uint8_t type, const uint8_t *payload, size_t plen, size_t *n)
{
	struct wbuf w = { .n = 0 };
	wbytes(&w, "RRS1", 4);
	w8(&w, type);
	w8(&w, 0);
	w8(&w, 0);
	w8(&w, 0);
	w32(&w, (uint32_t)plen);
	uint32_t crc = crc32c(crc32c(0, w.b + 4, 8), payload, plen);
	w32(&w, crc);
	wbytes(&w, payload, plen);
	*n = w.n;
	return dup_exact(w.b, w.n);
}

/* ---- the message cases --------------------------------------------------------------- */

struct msg_case {
	const char *name;
	const char *qid;
	uint64_t arrival;
	uint32_t flags;
	const char *sender;
	const char *client;
	const char *const *rcpt;
	size_t nrcpt;
	const uint8_t *data;
	size_t datalen;
};

static const char *const one_rcpt[] = { "bob@example.net" };
static const char *const two_rcpt[] = { "bob@example.net", "" };
static char many_buf[100][40];
static const char *many_rcpt[100];
static const uint8_t text_data[] = "Received: from x\r\nSubject: hi\r\n\r\nhello\r\n";
static const uint8_t bin_data[] = { 0, 1, 2, 0xff, 0xfe, 'R', 'R', 'S', '1', 0, 0x80, '\r' };

static void init_idx_many(void);

static void init_many(void)
{
	init_idx_many();
	for (size_t i = 0; i < ARRAY_LEN(many_rcpt); i++) {
		snprintf(many_buf[i], sizeof many_buf[i], "user%zu@d%zu.example.com", i, i % 7);
		many_rcpt[i] = many_buf[i];
	}
}

static const struct msg_case msg_cases[] = {
	{ "no recipients", "Q0", 1700000000, 0, "alice@example.com", "192.0.2.1",
	  NULL, 0, text_data, sizeof text_data - 1 },
	{ "one recipient", "4Xb9kQ1", 1700000001, 3, "alice@example.com", "2001:db8::1",
	  one_rcpt, 1, text_data, sizeof text_data - 1 },
	{ "many recipients", "MANY", UINT64_MAX, UINT32_MAX, "a@b", "203.0.113.9",
	  many_rcpt, ARRAY_LEN(many_rcpt), text_data, sizeof text_data - 1 },
	{ "empty data, null sender", "E", 0, 0, "", "", two_rcpt, 2, NULL, 0 },
	{ "binary data", "BIN1", 42, 1, "x@y", "127.0.0.1", one_rcpt, 1,
	  bin_data, sizeof bin_data },
	{ "empty qid", "", 1, 0, "s@t", "c", one_rcpt, 1, bin_data, 1 },
};

static uint8_t *encode_case(const struct msg_case *c, size_t *n)
{
	size_t want_n = spoolrec_msg_size(c->qid, c->sender, c->client, c->rcpt, c->nrcpt,
	                                  c->datalen);
	cr_assert_gt(want_n, SPOOLREC_HDR_LEN, "%s", c->name);
	uint8_t *buf = malloc(want_n);
	cr_assert_not_null(buf);
	size_t got_n = spoolrec_encode_msg(buf, want_n, c->qid, c->arrival, c->flags, 0,
	                                   c->sender, c->client, c->rcpt, c->nrcpt,
	                                   c->data, c->datalen);
	cr_assert_eq(got_n, want_n, "%s: encoded %zu, msg_size said %zu", c->name, got_n,
	             want_n);
	*n = got_n;
	return buf;
}

static void check_msg(const struct msg_case *c, const struct spoolrec_msg *m)
{
	cr_assert(view_eq(m->qid, c->qid, strlen(c->qid)), "%s: qid", c->name);
	cr_assert_eq(m->arrival, c->arrival, "%s: arrival", c->name);
	cr_assert_eq(m->flags, c->flags, "%s: flags", c->name);
	cr_assert(view_eq(m->sender, c->sender, strlen(c->sender)), "%s: sender", c->name);
	cr_assert(view_eq(m->client, c->client, strlen(c->client)), "%s: client", c->name);
	cr_assert_eq(m->nrcpt, c->nrcpt, "%s: nrcpt", c->name);
	cr_assert_eq(m->data.len, c->datalen, "%s: data length", c->name);
	uint8_t *plain = malloc(c->datalen + 1);
	spoolrec_scramble(plain, (const uint8_t *)m->data.p, m->data.len, m->nonce);
	cr_assert(c->datalen == 0 || memcmp(plain, c->data, c->datalen) == 0, "%s: data", c->name);
	free(plain);

	uint32_t off = 0;
	struct spoolrec_view r;
	size_t got_n = 0;
	while (spoolrec_next_rcpt(m, &off, &r)) {
		cr_assert_lt(got_n, c->nrcpt, "%s: more recipients than encoded", c->name);
		cr_assert(view_eq(r, c->rcpt[got_n], strlen(c->rcpt[got_n])),
		          "%s: rcpt %zu", c->name, got_n);
		got_n++;
	}
	cr_assert_eq(got_n, c->nrcpt, "%s: recipients iterated", c->name);
	cr_assert_eq(off, m->rcpt_block_len, "%s: iteration ends at the block end", c->name);
}

TestSuite(spoolrec, .init = init_many);

/* ---- round trips --------------------------------------------------------------------- */

Test(spoolrec, msg_round_trip)
{
	for (size_t i = 0; i < ARRAY_LEN(msg_cases); i++) {
		const struct msg_case *c = &msg_cases[i];
		size_t n;
		uint8_t *rec = encode_case(c, &n);

		/* Decode from an odd address too: nothing may assume alignment. */
		for (size_t shift = 0; shift < 4; shift++) {
			uint8_t *blk = malloc(n + shift);
			cr_assert_not_null(blk);
			memcpy(blk + shift, rec, n);

			size_t got_used = 0;
			enum spoolrec_type got_type = SPOOLREC_NONE;
			enum spoolrec_err got_err = SPOOLREC_E_MAGIC;
			struct spoolrec_msg m;
			memset(&m, 0, sizeof m);
			enum spoolrec_rc got_rc = spoolrec_decode(blk + shift, n, &got_used,
			                                          &got_type, &m, NULL, &got_err);
			cr_assert_eq(got_rc, SPOOLREC_OK, "%s: rc %d err %s", c->name, got_rc,
			             spoolrec_strerror(got_err));
			cr_assert_eq(got_err, SPOOLREC_E_NONE);
			cr_assert_eq(got_used, n, "%s", c->name);
			cr_assert_eq(got_type, SPOOLREC_MSG, "%s", c->name);
			check_msg(c, &m);
			free(blk);
		}
		free(rec);
	}
}

Test(spoolrec, msg_encoding_is_the_documented_layout)
{
	static const char *const rcpt[] = { "r1@x", "r2@y" };
	struct wbuf w = { .n = 0 };
	wstr(&w, "QID7");
	w64(&w, 0x0102030405060708ull);
	w32(&w, 0xA0B0C0D0u);
	wstr(&w, "s@x");
	wstr(&w, "192.0.2.7");
	w32(&w, 2);
	wstr(&w, "r1@x");
	wstr(&w, "r2@y");
	/* the nonce, then the data XORed with its keystream: word w (little-endian) is
	 * nonce + (w + 1) * 0x9E3779B97F4A7C15 */
	const uint64_t nonce = 0x1122334455667788ull;
	w64(&w, nonce);
	char scrambled[12];
	const char *plain = "DATA, twelve";
	for (int i = 0; i < 12; i++) {
		uint64_t k = nonce + (uint64_t)(i / 8 + 1) * 0x9E3779B97F4A7C15ull;
		scrambled[i] = (char)(plain[i] ^ (uint8_t)(k >> (8 * (i % 8))));
	}
	w32(&w, 12);
	memcpy(w.b + w.n, scrambled, 12);
	w.n += 12;
	size_t want_n;
	uint8_t *want = seal(SPOOLREC_MSG, w.b, w.n, &want_n);

	uint8_t got[256];
	size_t got_n = spoolrec_encode_msg(got, sizeof got, "QID7", 0x0102030405060708ull,
	                                   0xA0B0C0D0u, nonce, "s@x", "192.0.2.7", rcpt, 2,
	                                   (const uint8_t *)plain, 12);
	cr_assert_eq(got_n, want_n);
	cr_assert_arr_eq(got, want, want_n);
	free(want);
}

struct done_case {
	const char *qid;
};

static const struct done_case done_cases[] = {
	{ "" }, { "A" }, { "4Xb9kQ1" }, { "0123456789abcdef0123456789abcde" },
};

Test(spoolrec, done_round_trip)
{
	for (size_t i = 0; i < ARRAY_LEN(done_cases); i++) {
		const char *qid = done_cases[i].qid;
		size_t want_n = SPOOLREC_HDR_LEN + 4 + strlen(qid);
		uint8_t *buf = malloc(want_n);
		cr_assert_not_null(buf);
		size_t got_n = spoolrec_encode_done(buf, want_n, qid);
		cr_assert_eq(got_n, want_n, "'%s'", qid);

		size_t got_used = 0;
		enum spoolrec_type got_type = SPOOLREC_NONE;
		struct spoolrec_view got_qid = { NULL, 99 };
		cr_assert_eq(spoolrec_decode(buf, got_n, &got_used, &got_type, NULL, &got_qid,
		                             NULL), SPOOLREC_OK, "'%s'", qid);
		cr_assert_eq(got_used, want_n);
		cr_assert_eq(got_type, SPOOLREC_DONE);
		cr_assert(view_eq(got_qid, qid, strlen(qid)), "'%s'", qid);
		free(buf);
	}
}

Test(spoolrec, encode_refuses_a_short_buffer)
{
	const struct msg_case *c = &msg_cases[1];
	size_t want_n = spoolrec_msg_size(c->qid, c->sender, c->client, c->rcpt, c->nrcpt,
	                                  c->datalen);
	for (size_t cap = 0; cap < want_n; cap++) {
		uint8_t *buf = malloc(cap ? cap : 1);
		cr_assert_not_null(buf);
		size_t got_n = spoolrec_encode_msg(buf, cap, c->qid, c->arrival, c->flags, 0,
		                                   c->sender, c->client, c->rcpt, c->nrcpt,
		                                   c->data, c->datalen);
		cr_assert_eq(got_n, 0, "cap %zu", cap);
		cr_assert_eq(spoolrec_encode_done(buf, cap < 20 ? cap : 19, "QQQQ"), 0);
		free(buf);
	}
}

/* ---- RCPT outcomes and VOID ----------------------------------------------------------- */

struct rcpt_case {
	const char *name;
	const char *qid;
	uint8_t state;
	uint32_t attempts;
	uint64_t next_try, at;
	const uint32_t *idx;
	uint32_t n;
};

static const uint32_t idx_first[] = { 0 };
static const uint32_t idx_three[] = { 2, 0, 5 };
static const uint32_t idx_extremes[] = { UINT32_MAX, 0, 0x01020304u, 0 };
static uint32_t idx_many[300];

static const struct rcpt_case rcpt_cases[] = {
	{ "delivered, one", "4Xb9kQ1", SPOOLREC_RS_DELIVERED, 1, 0, 1700000100, idx_first, 1 },
	{ "bounced, three", "Q2", SPOOLREC_RS_BOUNCED, 3, 0, 1700000200, idx_three, 3 },
	{ "deferred", "MANY", SPOOLREC_RS_DEFERRED, 7, 1700003600, 1700000300, idx_first, 1 },
	{ "deferred, extremes", "", SPOOLREC_RS_DEFERRED, UINT32_MAX, UINT64_MAX, UINT64_MAX,
	  idx_extremes, ARRAY_LEN(idx_extremes) },
	{ "bounced, no attempt, 300", "0123456789abcdef0123456789abcde", SPOOLREC_RS_BOUNCED, 0,
	  0, 0, idx_many, ARRAY_LEN(idx_many) },
};

static void init_idx_many(void)
{
	for (size_t i = 0; i < ARRAY_LEN(idx_many); i++)
		idx_many[i] = (uint32_t)(i * 7 % 301);
}

static uint8_t *encode_rcpt_case(const struct rcpt_case *c, size_t *n)
{
	size_t want_n = spoolrec_rcpt_size(strlen(c->qid), c->n);
	cr_assert_eq(want_n, SPOOLREC_HDR_LEN + 4 + strlen(c->qid) + 25 + 4 * (size_t)c->n,
	             "%s: rcpt_size %zu", c->name, want_n);
	uint8_t *buf = malloc(want_n);
	cr_assert_not_null(buf);
	size_t got_n = spoolrec_encode_rcpt(buf, want_n, c->qid, c->state, c->attempts,
	                                    c->next_try, c->at, c->idx, c->n);
	cr_assert_eq(got_n, want_n, "%s: encoded %zu, rcpt_size said %zu", c->name, got_n,
	             want_n);
	*n = got_n;
	return buf;
}

static void check_outcome(const struct rcpt_case *c, const struct spoolrec_outcome *o)
{
	cr_assert(view_eq(o->qid, c->qid, strlen(c->qid)), "%s: qid", c->name);
	cr_assert_eq(o->state, c->state, "%s: state", c->name);
	cr_assert_eq(o->attempts, c->attempts, "%s: attempts", c->name);
	cr_assert_eq(o->next_try, c->next_try, "%s: next_try", c->name);
	cr_assert_eq(o->at, c->at, "%s: at", c->name);
	cr_assert_eq(o->n, c->n, "%s: n", c->name);
	for (uint32_t i = 0; i < c->n; i++)
		cr_assert_eq(spoolrec_outcome_idx(o, i), c->idx[i], "%s: index %u", c->name, i);
	cr_assert_eq(spoolrec_outcome_idx(o, c->n), UINT32_MAX, "%s: index past n", c->name);
	cr_assert_eq(spoolrec_outcome_idx(o, UINT32_MAX), UINT32_MAX, "%s", c->name);
}

Test(spoolrec, rcpt_round_trip)
{
	for (size_t i = 0; i < ARRAY_LEN(rcpt_cases); i++) {
		const struct rcpt_case *c = &rcpt_cases[i];
		size_t n;
		uint8_t *rec = encode_rcpt_case(c, &n);
		for (size_t shift = 0; shift < 4; shift++) {     /* unaligned too */
			uint8_t *blk = malloc(n + shift);
			cr_assert_not_null(blk);
			memcpy(blk + shift, rec, n);

			size_t got_used = 0;
			enum spoolrec_type got_type = SPOOLREC_NONE;
			struct spoolrec_view got_qid = { NULL, 99 };
			enum spoolrec_err got_err = SPOOLREC_E_MAGIC;
			cr_assert_eq(spoolrec_decode(blk + shift, n, &got_used, &got_type, NULL,
			                             &got_qid, &got_err), SPOOLREC_OK, "%s: %s",
			             c->name, spoolrec_strerror(got_err));
			cr_assert_eq(got_err, SPOOLREC_E_NONE);
			cr_assert_eq(got_used, n, "%s", c->name);
			cr_assert_eq(got_type, SPOOLREC_RCPT, "%s", c->name);
			cr_assert(view_eq(got_qid, c->qid, strlen(c->qid)), "%s: done_qid", c->name);

			struct spoolrec_outcome o;
			memset(&o, 0xee, sizeof o);
			got_err = SPOOLREC_E_MAGIC;
			cr_assert_eq(spoolrec_outcome(blk + shift, n, &o, &got_err), SPOOLREC_OK,
			             "%s: %s", c->name, spoolrec_strerror(got_err));
			cr_assert_eq(got_err, SPOOLREC_E_NONE);
			check_outcome(c, &o);
			free(blk);
		}
		/* What follows the record is not looked at. */
		uint8_t *more = malloc(n + 7);
		cr_assert_not_null(more);
		memcpy(more, rec, n);
		memset(more + n, 'x', 7);
		struct spoolrec_outcome o;
		cr_assert_eq(spoolrec_outcome(more, n + 7, &o, NULL), SPOOLREC_OK, "%s", c->name);
		check_outcome(c, &o);
		free(more);
		free(rec);
	}
}

Test(spoolrec, rcpt_encoding_is_the_documented_layout)
{
	static const uint32_t idx[] = { 3, 0x0a0b0c0du };
	struct wbuf w = { .n = 0 };
	wstr(&w, "QID7");
	w8(&w, SPOOLREC_RS_DEFERRED);
	w32(&w, 0xA0B0C0D0u);
	w64(&w, 0x0102030405060708ull);
	w64(&w, 0x1112131415161718ull);
	w32(&w, 2);
	w32(&w, 3);
	w32(&w, 0x0a0b0c0du);
	size_t want_n;
	uint8_t *want = seal(SPOOLREC_RCPT, w.b, w.n, &want_n);
	cr_assert_eq(want[4], 4, "RCPT is type 4");

	uint8_t got[256];
	size_t got_n = spoolrec_encode_rcpt(got, sizeof got, "QID7", SPOOLREC_RS_DEFERRED,
	                                    0xA0B0C0D0u, 0x0102030405060708ull,
	                                    0x1112131415161718ull, idx, 2);
	cr_assert_eq(got_n, want_n);
	cr_assert_arr_eq(got, want, want_n);
	cr_assert_eq(spoolrec_rcpt_size(4, 2), want_n);
	free(want);

	/* VOID: type 5, payload the qid. */
	struct wbuf v = { .n = 0 };
	wstr(&v, "QID7");
	want = seal(SPOOLREC_VOID, v.b, v.n, &want_n);
	cr_assert_eq(want[4], 5, "VOID is type 5");
	got_n = spoolrec_encode_void(got, sizeof got, "QID7");
	cr_assert_eq(got_n, want_n);
	cr_assert_arr_eq(got, want, want_n);
	free(want);
}

Test(spoolrec, void_round_trip)
{
	for (size_t i = 0; i < ARRAY_LEN(done_cases); i++) {
		const char *qid = done_cases[i].qid;
		size_t want_n = SPOOLREC_HDR_LEN + 4 + strlen(qid);
		uint8_t *buf = malloc(want_n);
		cr_assert_not_null(buf);
		for (size_t cap = 0; cap < want_n; cap++)
			cr_assert_eq(spoolrec_encode_void(buf, cap, qid), 0, "'%s' cap %zu", qid, cap);
		size_t got_n = spoolrec_encode_void(buf, want_n, qid);
		cr_assert_eq(got_n, want_n, "'%s'", qid);

		size_t got_used = 0;
		enum spoolrec_type got_type = SPOOLREC_NONE;
		struct spoolrec_view got_qid = { NULL, 99 };
		cr_assert_eq(spoolrec_decode(buf, got_n, &got_used, &got_type, NULL, &got_qid,
		                             NULL), SPOOLREC_OK, "'%s'", qid);
		cr_assert_eq(got_used, want_n);
		cr_assert_eq(got_type, SPOOLREC_VOID);
		cr_assert(view_eq(got_qid, qid, strlen(qid)), "'%s'", qid);
		/* Not an outcome. */
		enum spoolrec_err got_err = SPOOLREC_E_NONE;
		cr_assert_eq(spoolrec_outcome(buf, got_n, NULL, &got_err), SPOOLREC_ERR);
		cr_assert_eq(got_err, SPOOLREC_E_TYPE);
		free(buf);
	}
}

Test(spoolrec, rcpt_encode_refuses_invalid_arguments)
{
	static const uint32_t idx[] = { 1, 2 };
	uint8_t buf[128];
	struct bad {
		const char *name;
		uint8_t state;
		uint64_t next_try;
		const uint32_t *idx;
		uint32_t n;
	} cases[] = {
		{ "n 0", SPOOLREC_RS_DEFERRED, 5, idx, 0 },
		{ "idx NULL", SPOOLREC_RS_DEFERRED, 5, NULL, 2 },
		{ "state 0", SPOOLREC_RS_OPEN, 0, idx, 2 },
		{ "state 4", 4, 0, idx, 2 },
		{ "state 255", 255, 0, idx, 2 },
		{ "delivered with a next try", SPOOLREC_RS_DELIVERED, 1, idx, 2 },
		{ "bounced with a next try", SPOOLREC_RS_BOUNCED, UINT64_MAX, idx, 1 },
	};
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		memset(buf, 0xa5, sizeof buf);
		cr_assert_eq(spoolrec_encode_rcpt(buf, sizeof buf, "Q", cases[i].state, 1,
		                                  cases[i].next_try, 9, cases[i].idx, cases[i].n), 0,
		             "%s", cases[i].name);
		for (size_t k = 0; k < sizeof buf; k++)
			cr_assert_eq(buf[k], 0xa5, "%s: written at %zu", cases[i].name, k);
	}
	cr_assert_eq(spoolrec_rcpt_size(1, 0), 0);
	cr_assert_eq(spoolrec_rcpt_size(SPOOLREC_MAX_PAYLOAD, 1), 0);
	cr_assert_eq(spoolrec_rcpt_size(0, UINT32_MAX), 0, "over SPOOLREC_MAX_PAYLOAD");
	cr_assert_eq(spoolrec_rcpt_size(0, (SPOOLREC_MAX_PAYLOAD - 29) / 4),
	             SPOOLREC_HDR_LEN + 29 + (SPOOLREC_MAX_PAYLOAD - 29) / 4 * 4);
	cr_assert_eq(spoolrec_rcpt_size(0, (SPOOLREC_MAX_PAYLOAD - 29) / 4 + 1), 0);

	/* A buffer one octet short, at every size: 0, nothing written. */
	size_t want_n = spoolrec_rcpt_size(1, 2);
	for (size_t cap = 0; cap < want_n; cap++) {
		memset(buf, 0xa5, sizeof buf);
		cr_assert_eq(spoolrec_encode_rcpt(buf, cap, "Q", SPOOLREC_RS_DEFERRED, 1, 5, 9, idx,
		                                  2), 0, "cap %zu", cap);
		for (size_t k = 0; k < sizeof buf; k++)
			cr_assert_eq(buf[k], 0xa5, "cap %zu: written at %zu", cap, k);
	}
	cr_assert_eq(spoolrec_encode_rcpt(buf, want_n, "Q", SPOOLREC_RS_DEFERRED, 1, 5, 9, idx, 2),
	             want_n);
}

/* ---- every prefix, every corruption -------------------------------------------------- */

/* All the records the corruption tests run over: each MSG case, a few DONE, the RCPT
 * cases but the big one, a few VOID. */
static uint8_t *record_n(size_t k, size_t *n)
{
	if (k < ARRAY_LEN(msg_cases))
		return encode_case(&msg_cases[k], n);
	k -= ARRAY_LEN(msg_cases);
	if (k < ARRAY_LEN(done_cases)) {
		const char *qid = done_cases[k].qid;
		*n = SPOOLREC_HDR_LEN + 4 + strlen(qid);
		uint8_t *buf = malloc(*n);
		cr_assert_not_null(buf);
		cr_assert_eq(spoolrec_encode_done(buf, *n, qid), *n);
		return buf;
	}
	k -= ARRAY_LEN(done_cases);
	if (k < ARRAY_LEN(rcpt_cases) - 1)
		return encode_rcpt_case(&rcpt_cases[k], n);
	k -= ARRAY_LEN(rcpt_cases) - 1;
	if (k < 2) {
		const char *qid = k ? "4Xb9kQ1" : "";
		*n = SPOOLREC_HDR_LEN + 4 + strlen(qid);
		uint8_t *buf = malloc(*n);
		cr_assert_not_null(buf);
		cr_assert_eq(spoolrec_encode_void(buf, *n, qid), *n);
		return buf;
	}
	return NULL;
}

Test(spoolrec, every_prefix_is_again)
{
	size_t n;
	uint8_t *rec;
	for (size_t k = 0; (rec = record_n(k, &n)) != NULL; k++) {
		for (size_t len = 0; len < n; len++) {
			uint8_t *pre = dup_exact(rec, len);
			size_t got_used = 12345;
			enum spoolrec_err got_err = SPOOLREC_E_CRC;
			enum spoolrec_rc got_rc = spoolrec_decode(pre, len, &got_used, NULL, NULL,
			                                          NULL, &got_err);
			cr_assert_eq(got_rc, SPOOLREC_AGAIN, "record %zu prefix %zu/%zu: rc %d (%s)",
			             k, len, n, got_rc, spoolrec_strerror(got_err));
			cr_assert_eq(got_err, SPOOLREC_E_NONE);
			cr_assert_eq(got_used, 12345, "used is only set on OK");
			free(pre);
		}
		free(rec);
	}
}

static uint32_t le32_at(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

/* What decoding a whole record with byte pos XORed by mask must give. */
static void want_after_flip(const uint8_t *rec, size_t pos, uint8_t mask,
                            enum spoolrec_rc *want_rc, enum spoolrec_err *want_err)
{
	*want_rc = SPOOLREC_ERR;
	if (pos < 4) {
		*want_err = SPOOLREC_E_MAGIC;
	} else if (pos == 4) {
		uint8_t t = rec[4] ^ mask;
		/* Zero is never a type; any other type octet (the other known one, or one of
		 * a newer build) passes the header check and fails the CRC, which covers it. */
		*want_err = t == SPOOLREC_NONE ? SPOOLREC_E_TYPE : SPOOLREC_E_CRC;
	} else if (pos < 8) {
		*want_err = SPOOLREC_E_TYPE;
	} else if (pos < 12) {
		uint32_t len = le32_at(rec + 8);
		uint32_t flipped = len ^ ((uint32_t)mask << (8 * (pos - 8)));
		if (flipped > SPOOLREC_MAX_PAYLOAD) {
			*want_err = SPOOLREC_E_LENGTH;
		} else if (flipped > len) {
			/* Claims more payload than the buffer holds: indistinguishable from a
			 * record still being written. */
			*want_rc = SPOOLREC_AGAIN;
			*want_err = SPOOLREC_E_NONE;
		} else {
			/* Shorter: the record is complete, and the CRC (which covers the
			 * length) no longer matches. */
			*want_err = SPOOLREC_E_CRC;
		}
	} else {
		/* The CRC field itself, or any payload octet: CRC-32C detects every
		 * single-octet change. */
		*want_err = SPOOLREC_E_CRC;
	}
}

Test(spoolrec, every_single_byte_corruption)
{
	size_t n;
	uint8_t *rec;
	for (size_t k = 0; (rec = record_n(k, &n)) != NULL; k++) {
		uint8_t *bad = dup_exact(rec, n);
		for (size_t pos = 0; pos < n; pos++) {
			for (unsigned mask = 1; mask < 256; mask++) {
				enum spoolrec_rc want_rc;
				enum spoolrec_err want_err;
				want_after_flip(rec, pos, (uint8_t)mask, &want_rc, &want_err);

				bad[pos] ^= (uint8_t)mask;
				enum spoolrec_err got_err = SPOOLREC_E_NONE;
				enum spoolrec_rc got_rc = spoolrec_decode(bad, n, NULL, NULL, NULL,
				                                          NULL, &got_err);
				bad[pos] ^= (uint8_t)mask;
				cr_assert_eq(got_rc, want_rc,
				             "record %zu pos %zu mask 0x%02x: got rc %d want %d", k, pos,
				             mask, got_rc, want_rc);
				cr_assert_eq(got_err, want_err,
				             "record %zu pos %zu mask 0x%02x: got %s want %s", k, pos,
				             mask, spoolrec_strerror(got_err),
				             spoolrec_strerror(want_err));
			}
		}
		free(bad);
		free(rec);
	}
}

/* Every truncation and every single-octet change of a RCPT record is refused by
 * spoolrec_outcome() and spoolrec_decode() alike: AGAIN or ERR, never an OK with other
 * values. And changes under a recomputed CRC (a writer's bug, not bit rot) give either ERR
 * (E_PAYLOAD) or an outcome whose every field lies inside the record. */
Test(spoolrec, rcpt_every_truncation_and_corruption_is_refused)
{
	for (size_t i = 0; i < ARRAY_LEN(rcpt_cases); i++) {
		const struct rcpt_case *c = &rcpt_cases[i];
		size_t n;
		uint8_t *rec = encode_rcpt_case(c, &n);
		for (size_t len = 0; len < n; len++) {
			uint8_t *pre = dup_exact(rec, len);
			enum spoolrec_err got_err = SPOOLREC_E_CRC;
			cr_assert_eq(spoolrec_outcome(pre, len, NULL, &got_err), SPOOLREC_AGAIN,
			             "%s: cut to %zu: %s", c->name, len, spoolrec_strerror(got_err));
			cr_assert_eq(got_err, SPOOLREC_E_NONE);
			free(pre);
		}
		uint8_t *bad = dup_exact(rec, n);
		for (size_t pos = 0; pos < n; pos++) {
			for (unsigned mask = 1; mask < 256; mask++) {
				enum spoolrec_rc want_rc;
				enum spoolrec_err want_err;
				want_after_flip(rec, pos, (uint8_t)mask, &want_rc, &want_err);
				bad[pos] ^= (uint8_t)mask;
				enum spoolrec_err got_err = SPOOLREC_E_NONE, got_err2 = SPOOLREC_E_NONE;
				struct spoolrec_outcome o;
				enum spoolrec_rc got_rc = spoolrec_outcome(bad, n, &o, &got_err);
				enum spoolrec_rc got_rc2 = spoolrec_decode(bad, n, NULL, NULL, NULL, NULL,
				                                           &got_err2);
				bad[pos] ^= (uint8_t)mask;
				cr_assert_neq(got_rc, SPOOLREC_OK, "%s: pos %zu mask 0x%02x accepted",
				              c->name, pos, mask);
				cr_assert_eq(got_rc, want_rc, "%s: pos %zu mask 0x%02x", c->name, pos,
				             mask);
				cr_assert_eq(got_err, want_err, "%s: pos %zu mask 0x%02x: %s want %s",
				             c->name, pos, mask, spoolrec_strerror(got_err),
				             spoolrec_strerror(want_err));
				cr_assert_eq(got_rc2, got_rc);
				cr_assert_eq(got_err2, got_err);
			}
		}
		/* Under a recomputed CRC: the payload parser alone stands between. */
		for (size_t pos = SPOOLREC_HDR_LEN; pos < n; pos++) {
			static const uint8_t masks[] = { 0x01, 0x02, 0x04, 0x10, 0x80, 0xff };
			for (size_t m = 0; m < ARRAY_LEN(masks); m++) {
				size_t rn;
				bad[pos] ^= masks[m];
				uint8_t *re = seal(SPOOLREC_RCPT, bad + SPOOLREC_HDR_LEN,
				                   n - SPOOLREC_HDR_LEN, &rn);
				bad[pos] ^= masks[m];
				struct spoolrec_outcome o;
				enum spoolrec_err got_err = SPOOLREC_E_NONE;
				enum spoolrec_rc got_rc = spoolrec_outcome(re, rn, &o, &got_err);
				if (got_rc == SPOOLREC_OK) {
					const uint8_t *end = re + rn;
					cr_assert(o.state >= SPOOLREC_RS_DELIVERED &&
					          o.state <= SPOOLREC_RS_DEFERRED);
					cr_assert(o.state == SPOOLREC_RS_DEFERRED || o.next_try == 0);
					cr_assert_geq(o.n, 1);
					cr_assert(o.idx + 4 * (size_t)o.n == end, "%s: pos %zu: indexes do "
					          "not end the record", c->name, pos);
					cr_assert((const uint8_t *)o.qid.p >= re + SPOOLREC_HDR_LEN &&
					          (const uint8_t *)o.qid.p + o.qid.len <= o.idx);
				} else {
					cr_assert_eq(got_rc, SPOOLREC_ERR, "%s: pos %zu", c->name, pos);
					cr_assert_eq(got_err, SPOOLREC_E_PAYLOAD, "%s: pos %zu: %s", c->name,
					             pos, spoolrec_strerror(got_err));
				}
				free(re);
			}
		}
		free(bad);
		free(rec);
	}
}

/* ---- records back to back ------------------------------------------------------------ */

#define STREAM_RECS 5

struct stream {
	uint8_t *p;
	size_t n;
	size_t rec_len[STREAM_RECS];
	enum spoolrec_type rec_type[STREAM_RECS];
};

/* MSG, DONE, MSG, RCPT, VOID back to back. */
static void build_stream(struct stream *s)
{
	uint8_t *r[STREAM_RECS];
	r[0] = encode_case(&msg_cases[1], &s->rec_len[0]);
	r[1] = record_n(ARRAY_LEN(msg_cases) + 2, &s->rec_len[1]);     /* DONE 4Xb9kQ1 */
	r[2] = encode_case(&msg_cases[4], &s->rec_len[2]);
	r[3] = encode_rcpt_case(&rcpt_cases[1], &s->rec_len[3]);
	r[4] = record_n(ARRAY_LEN(msg_cases) + ARRAY_LEN(done_cases) + ARRAY_LEN(rcpt_cases),
	                &s->rec_len[4]);                               /* VOID 4Xb9kQ1 */
	static const enum spoolrec_type types[STREAM_RECS] = {
		SPOOLREC_MSG, SPOOLREC_DONE, SPOOLREC_MSG, SPOOLREC_RCPT, SPOOLREC_VOID,
	};
	s->n = 0;
	for (int i = 0; i < STREAM_RECS; i++)
		s->n += s->rec_len[i];
	s->p = malloc(s->n);
	cr_assert_not_null(s->p);
	for (size_t i = 0, off = 0; i < STREAM_RECS; off += s->rec_len[i], i++) {
		memcpy(s->p + off, r[i], s->rec_len[i]);
		s->rec_type[i] = types[i];
		free(r[i]);
	}
}

Test(spoolrec, records_back_to_back)
{
	struct stream s;
	build_stream(&s);
	size_t off = 0;
	for (int i = 0; i < STREAM_RECS; i++) {
		size_t got_used = 0;
		enum spoolrec_type got_type = SPOOLREC_NONE;
		struct spoolrec_msg m;
		struct spoolrec_view dq;
		cr_assert_eq(spoolrec_decode(s.p + off, s.n - off, &got_used, &got_type, &m, &dq,
		                             NULL), SPOOLREC_OK, "record %d", i);
		cr_assert_eq(got_used, s.rec_len[i], "record %d", i);
		cr_assert_eq(got_type, s.rec_type[i], "record %d", i);
		if (i == 0) {
			check_msg(&msg_cases[1], &m);
		} else if (i == 1 || i == 4) {
			cr_assert(view_eq(dq, "4Xb9kQ1", 7));
		} else if (i == 2) {
			check_msg(&msg_cases[4], &m);
		} else {
			struct spoolrec_outcome o;
			cr_assert(view_eq(dq, "Q2", 2));
			cr_assert_eq(spoolrec_outcome(s.p + off, s.n - off, &o, NULL), SPOOLREC_OK);
			check_outcome(&rcpt_cases[1], &o);
		}
		off += got_used;
	}
	cr_assert_eq(off, s.n);
	cr_assert_eq(spoolrec_decode(s.p + off, 0, NULL, NULL, NULL, NULL, NULL),
	             SPOOLREC_AGAIN);
	free(s.p);
}

/* Decodes what it can of buf[*pos, len); appends the record lengths to got. */
static void drain(const uint8_t *buf, size_t len, size_t *pos, size_t *got, size_t *ngot)
{
	for (;;) {
		size_t used;
		enum spoolrec_err err;
		enum spoolrec_rc rc = spoolrec_decode(buf + *pos, len - *pos, &used, NULL, NULL,
		                                      NULL, &err);
		if (rc == SPOOLREC_AGAIN)
			return;
		cr_assert_eq(rc, SPOOLREC_OK, "at %zu: %s", *pos, spoolrec_strerror(err));
		cr_assert_lt(*ngot, STREAM_RECS);
		got[(*ngot)++] = used;
		*pos += used;
	}
}

Test(spoolrec, stream_split_at_every_offset)
{
	struct stream s;
	build_stream(&s);
	for (size_t split = 0; split <= s.n; split++) {
		size_t got[STREAM_RECS], ngot = 0, pos = 0;
		uint8_t *first = dup_exact(s.p, split);
		drain(first, split, &pos, got, &ngot);
		free(first);
		drain(s.p, s.n, &pos, got, &ngot);
		cr_assert_eq(pos, s.n, "split %zu", split);
		cr_assert_eq(ngot, STREAM_RECS, "split %zu", split);
		for (int i = 0; i < STREAM_RECS; i++)
			cr_assert_eq(got[i], s.rec_len[i], "split %zu record %d", split, i);
	}
	free(s.p);
}

/* ---- bad headers --------------------------------------------------------------------- */

struct hdr_case {
	const char *name;
	uint8_t bytes[16];
	size_t len;
	enum spoolrec_rc want_rc;
	enum spoolrec_err want_err;
};

#define MAXP_LE 0x00, 0x00, 0x00, 0x40       /* SPOOLREC_MAX_PAYLOAD */
#define MAXP1_LE 0x01, 0x00, 0x00, 0x40      /* SPOOLREC_MAX_PAYLOAD + 1 */

static const struct hdr_case hdr_cases[] = {
	{ "empty", { 0 }, 0, SPOOLREC_AGAIN, SPOOLREC_E_NONE },
	{ "R", { 'R' }, 1, SPOOLREC_AGAIN, SPOOLREC_E_NONE },
	{ "RRS", { 'R', 'R', 'S' }, 3, SPOOLREC_AGAIN, SPOOLREC_E_NONE },
	{ "first octet wrong", { 'X' }, 1, SPOOLREC_ERR, SPOOLREC_E_MAGIC },
	{ "RX", { 'R', 'X' }, 2, SPOOLREC_ERR, SPOOLREC_E_MAGIC },
	{ "RRS2", { 'R', 'R', 'S', '2' }, 4, SPOOLREC_ERR, SPOOLREC_E_MAGIC },
	{ "lower case magic", { 'r', 'r', 's', '1', 1 }, 5, SPOOLREC_ERR, SPOOLREC_E_MAGIC },
	{ "zeros", { 0 }, 16, SPOOLREC_ERR, SPOOLREC_E_MAGIC },
	{ "magic only", { 'R', 'R', 'S', '1' }, 4, SPOOLREC_AGAIN, SPOOLREC_E_NONE },
	{ "type NONE", { 'R', 'R', 'S', '1', 0 }, 5, SPOOLREC_ERR, SPOOLREC_E_TYPE },
	{ "type NONE, whole header", { 'R', 'R', 'S', '1', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	  0 }, 16, SPOOLREC_ERR, SPOOLREC_E_TYPE },
	/* A newer build's type: a consistent beginning, then checked by its CRC. */
	{ "type 9, short", { 'R', 'R', 'S', '1', 9 }, 5, SPOOLREC_AGAIN, SPOOLREC_E_NONE },
	{ "type 0xff, bad crc", { 'R', 'R', 'S', '1', 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 },
	  16, SPOOLREC_ERR, SPOOLREC_E_CRC },
	{ "type 9, reserved", { 'R', 'R', 'S', '1', 9, 0, 1 }, 7, SPOOLREC_ERR,
	  SPOOLREC_E_TYPE },
	{ "type MSG, short", { 'R', 'R', 'S', '1', 1 }, 5, SPOOLREC_AGAIN, SPOOLREC_E_NONE },
	{ "reserved 5", { 'R', 'R', 'S', '1', 1, 1 }, 6, SPOOLREC_ERR, SPOOLREC_E_TYPE },
	{ "reserved 6", { 'R', 'R', 'S', '1', 2, 0, 0x80 }, 7, SPOOLREC_ERR, SPOOLREC_E_TYPE },
	{ "reserved 7", { 'R', 'R', 'S', '1', 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0 }, 16,
	  SPOOLREC_ERR, SPOOLREC_E_TYPE },
	{ "length max, short", { 'R', 'R', 'S', '1', 1, 0, 0, 0, MAXP_LE }, 12,
	  SPOOLREC_AGAIN, SPOOLREC_E_NONE },
	{ "length max, header", { 'R', 'R', 'S', '1', 1, 0, 0, 0, MAXP_LE, 1, 2, 3, 4 }, 16,
	  SPOOLREC_AGAIN, SPOOLREC_E_NONE },
	{ "length max+1", { 'R', 'R', 'S', '1', 1, 0, 0, 0, MAXP1_LE }, 12,
	  SPOOLREC_ERR, SPOOLREC_E_LENGTH },
	{ "length 2^32-1", { 'R', 'R', 'S', '1', 2, 0, 0, 0, 0xff, 0xff, 0xff, 0xff }, 12,
	  SPOOLREC_ERR, SPOOLREC_E_LENGTH },
	{ "length part present", { 'R', 'R', 'S', '1', 2, 0, 0, 0, 0xff, 0xff, 0xff }, 11,
	  SPOOLREC_AGAIN, SPOOLREC_E_NONE },
	{ "empty payload, bad crc", { 'R', 'R', 'S', '1', 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	  0 }, 16, SPOOLREC_ERR, SPOOLREC_E_CRC },
};

Test(spoolrec, bad_headers)
{
	for (size_t i = 0; i < ARRAY_LEN(hdr_cases); i++) {
		const struct hdr_case *c = &hdr_cases[i];
		uint8_t *p = dup_exact(c->bytes, c->len);
		enum spoolrec_err got_err = SPOOLREC_E_NONE;
		enum spoolrec_rc got_rc = spoolrec_decode(p, c->len, NULL, NULL, NULL, NULL,
		                                          &got_err);
		cr_assert_eq(got_rc, c->want_rc, "%s: got rc %d want %d", c->name, got_rc,
		             c->want_rc);
		cr_assert_eq(got_err, c->want_err, "%s: got %s want %s", c->name,
		             spoolrec_strerror(got_err), spoolrec_strerror(c->want_err));
		free(p);
	}
}

/* ---- payloads with a good CRC but inconsistent fields -------------------------------- */

enum pl_kind {
	PL_MSG_OK,
	PL_MSG_EMPTY,
	PL_MSG_QID_TOO_LONG,
	PL_MSG_CUT_AFTER_FLAGS,
	PL_MSG_NRCPT_ONE_TOO_MANY,
	PL_MSG_NRCPT_HUGE,
	PL_MSG_RCPT_TOO_LONG,
	PL_MSG_RCPT_ONE_TOO_LONG,
	PL_MSG_DATA_TOO_LONG,
	PL_MSG_TRAILING,
	PL_MSG_NO_DATA,
	PL_DONE_OK,
	PL_DONE_EMPTY,
	PL_DONE_TRAILING,
	PL_DONE_QID_TOO_LONG,
	PL_VOID_OK,
	PL_VOID_EMPTY,
	PL_VOID_TRAILING,
	PL_RCPT_OK,
	PL_RCPT_EMPTY,
	PL_RCPT_QID_TOO_LONG,
	PL_RCPT_CUT_AFTER_QID,
	PL_RCPT_CUT_AFTER_STATE,
	PL_RCPT_CUT_IN_AT,
	PL_RCPT_STATE_0,
	PL_RCPT_STATE_4,
	PL_RCPT_STATE_FF,
	PL_RCPT_DELIVERED_NEXT_TRY,
	PL_RCPT_BOUNCED_NEXT_TRY,
	PL_RCPT_DEFERRED_NO_NEXT_TRY,
	PL_RCPT_N_0,
	PL_RCPT_N_0_NO_INDEX,
	PL_RCPT_N_ONE_TOO_MANY,
	PL_RCPT_N_ONE_TOO_FEW,
	PL_RCPT_N_HUGE,
	PL_RCPT_N_WRAPS,
	PL_RCPT_TRAILING_OCTET,
	PL_RCPT_INDEX_CUT,
};

struct pl_case {
	const char *name;
	enum pl_kind kind;
	enum spoolrec_rc want_rc;
};

static const struct pl_case pl_cases[] = {
	{ "msg well formed", PL_MSG_OK, SPOOLREC_OK },
	{ "msg empty", PL_MSG_EMPTY, SPOOLREC_ERR },
	{ "msg qid longer than payload", PL_MSG_QID_TOO_LONG, SPOOLREC_ERR },
	{ "msg cut after flags", PL_MSG_CUT_AFTER_FLAGS, SPOOLREC_ERR },
	{ "msg nrcpt one too many", PL_MSG_NRCPT_ONE_TOO_MANY, SPOOLREC_ERR },
	{ "msg nrcpt 2^32-1", PL_MSG_NRCPT_HUGE, SPOOLREC_ERR },
	{ "msg rcpt longer than payload", PL_MSG_RCPT_TOO_LONG, SPOOLREC_ERR },
	{ "msg rcpt one octet past the payload", PL_MSG_RCPT_ONE_TOO_LONG, SPOOLREC_ERR },
	{ "msg data one octet too long", PL_MSG_DATA_TOO_LONG, SPOOLREC_ERR },
	{ "msg trailing octet", PL_MSG_TRAILING, SPOOLREC_ERR },
	{ "msg without data", PL_MSG_NO_DATA, SPOOLREC_ERR },
	{ "done well formed", PL_DONE_OK, SPOOLREC_OK },
	{ "done empty", PL_DONE_EMPTY, SPOOLREC_ERR },
	{ "done trailing octet", PL_DONE_TRAILING, SPOOLREC_ERR },
	{ "done qid too long", PL_DONE_QID_TOO_LONG, SPOOLREC_ERR },
	{ "void well formed", PL_VOID_OK, SPOOLREC_OK },
	{ "void empty", PL_VOID_EMPTY, SPOOLREC_ERR },
	{ "void trailing octet", PL_VOID_TRAILING, SPOOLREC_ERR },
	{ "rcpt well formed", PL_RCPT_OK, SPOOLREC_OK },
	{ "rcpt empty", PL_RCPT_EMPTY, SPOOLREC_ERR },
	{ "rcpt qid longer than payload", PL_RCPT_QID_TOO_LONG, SPOOLREC_ERR },
	{ "rcpt cut after qid", PL_RCPT_CUT_AFTER_QID, SPOOLREC_ERR },
	{ "rcpt cut after state", PL_RCPT_CUT_AFTER_STATE, SPOOLREC_ERR },
	{ "rcpt cut inside at", PL_RCPT_CUT_IN_AT, SPOOLREC_ERR },
	{ "rcpt state 0", PL_RCPT_STATE_0, SPOOLREC_ERR },
	{ "rcpt state 4", PL_RCPT_STATE_4, SPOOLREC_ERR },
	{ "rcpt state 255", PL_RCPT_STATE_FF, SPOOLREC_ERR },
	{ "rcpt delivered with a next try", PL_RCPT_DELIVERED_NEXT_TRY, SPOOLREC_ERR },
	{ "rcpt bounced with a next try", PL_RCPT_BOUNCED_NEXT_TRY, SPOOLREC_ERR },
	{ "rcpt deferred, next try 0", PL_RCPT_DEFERRED_NO_NEXT_TRY, SPOOLREC_OK },
	{ "rcpt n 0 with an index", PL_RCPT_N_0, SPOOLREC_ERR },
	{ "rcpt n 0 and no index", PL_RCPT_N_0_NO_INDEX, SPOOLREC_ERR },
	{ "rcpt n one too many", PL_RCPT_N_ONE_TOO_MANY, SPOOLREC_ERR },
	{ "rcpt n one too few", PL_RCPT_N_ONE_TOO_FEW, SPOOLREC_ERR },
	{ "rcpt n 2^32-1", PL_RCPT_N_HUGE, SPOOLREC_ERR },
	{ "rcpt n 2^30+2 (n*4 wraps to 8 in 32 bits)", PL_RCPT_N_WRAPS, SPOOLREC_ERR },
	{ "rcpt trailing octet", PL_RCPT_TRAILING_OCTET, SPOOLREC_ERR },
	{ "rcpt last index cut short", PL_RCPT_INDEX_CUT, SPOOLREC_ERR },
};

/* A RCPT payload: qid "Q1", then the fields as the kind wants them. */
static uint8_t build_rcpt_payload(enum pl_kind k, struct wbuf *w)
{
	if (k == PL_RCPT_EMPTY)
		return SPOOLREC_RCPT;
	if (k == PL_RCPT_QID_TOO_LONG) {
		w32(w, 100);
		wbytes(w, "Q1", 2);
		w8(w, SPOOLREC_RS_DEFERRED);
		return SPOOLREC_RCPT;
	}
	wstr(w, "Q1");
	if (k == PL_RCPT_CUT_AFTER_QID)
		return SPOOLREC_RCPT;
	uint8_t state = SPOOLREC_RS_DEFERRED;
	uint64_t next_try = 1700003600;
	switch (k) {
	case PL_RCPT_STATE_0: state = 0; break;
	case PL_RCPT_STATE_4: state = 4; break;
	case PL_RCPT_STATE_FF: state = 0xff; break;
	case PL_RCPT_DELIVERED_NEXT_TRY: state = SPOOLREC_RS_DELIVERED; break;
	case PL_RCPT_BOUNCED_NEXT_TRY: state = SPOOLREC_RS_BOUNCED; next_try = 1; break;
	case PL_RCPT_DEFERRED_NO_NEXT_TRY: next_try = 0; break;
	default: break;
	}
	w8(w, state);
	if (k == PL_RCPT_CUT_AFTER_STATE)
		return SPOOLREC_RCPT;
	w32(w, 2);                              /* attempts */
	w64(w, next_try);
	if (k == PL_RCPT_CUT_IN_AT) {
		w32(w, 7);
		return SPOOLREC_RCPT;
	}
	w64(w, 1700000000);                     /* at */
	uint32_t n = 2, have = 2;
	switch (k) {
	case PL_RCPT_N_0: n = 0; break;
	case PL_RCPT_N_0_NO_INDEX: n = 0; have = 0; break;
	case PL_RCPT_N_ONE_TOO_MANY: n = 3; break;
	case PL_RCPT_N_ONE_TOO_FEW: n = 1; break;
	case PL_RCPT_N_HUGE: n = UINT32_MAX; break;
	case PL_RCPT_N_WRAPS: n = (1u << 30) + 2; break;
	default: break;
	}
	w32(w, n);
	for (uint32_t i = 0; i < have; i++)
		w32(w, i);
	if (k == PL_RCPT_TRAILING_OCTET)
		w8(w, 0);
	if (k == PL_RCPT_INDEX_CUT)
		w->n--;
	return SPOOLREC_RCPT;
}

static uint8_t build_payload(enum pl_kind k, struct wbuf *w)
{
	if (k >= PL_RCPT_OK)
		return build_rcpt_payload(k, w);
	if (k >= PL_VOID_OK) {
		if (k != PL_VOID_EMPTY)
			wstr(w, "Q1");
		if (k == PL_VOID_TRAILING)
			w8(w, 0);
		return SPOOLREC_VOID;
	}
	if (k >= PL_DONE_OK) {
		if (k == PL_DONE_OK || k == PL_DONE_TRAILING)
			wstr(w, "Q1");
		if (k == PL_DONE_TRAILING)
			w8(w, 0);
		if (k == PL_DONE_QID_TOO_LONG) {
			w32(w, 3);
			wbytes(w, "Q1", 2);
		}
		return SPOOLREC_DONE;
	}
	if (k == PL_MSG_EMPTY)
		return SPOOLREC_MSG;
	if (k == PL_MSG_QID_TOO_LONG) {
		w32(w, 1000);
		wbytes(w, "Q1", 2);
		return SPOOLREC_MSG;
	}
	wstr(w, "Q1");
	w64(w, 1);
	w32(w, 0);
	if (k == PL_MSG_CUT_AFTER_FLAGS)
		return SPOOLREC_MSG;
	wstr(w, "s@x");
	wstr(w, "c");
	if (k == PL_MSG_NRCPT_HUGE) {
		w32(w, UINT32_MAX);
	} else {
		w32(w, k == PL_MSG_NRCPT_ONE_TOO_MANY ? 2 : 1);
	}
	if (k == PL_MSG_RCPT_TOO_LONG) {
		w32(w, 200);
		wbytes(w, "r@x", 3);
		w64(w, 7);
		wstr(w, "D");
		return SPOOLREC_MSG;
	}
	if (k == PL_MSG_RCPT_ONE_TOO_LONG) {
		/* 16 octets follow the length ("r@x", the nonce, data "D" as 4+1): claim 17. */
		w32(w, 17);
		wbytes(w, "r@x", 3);
		w64(w, 7);
		wstr(w, "D");
		return SPOOLREC_MSG;
	}
	wstr(w, "r@x");
	if (k == PL_MSG_NO_DATA)
		return SPOOLREC_MSG;
	w64(w, 7);                              /* the nonce */
	if (k == PL_MSG_DATA_TOO_LONG) {
		w32(w, 2);
		wbytes(w, "D", 1);
		return SPOOLREC_MSG;
	}
	wstr(w, "D");
	if (k == PL_MSG_TRAILING)
		w8(w, '!');
	return SPOOLREC_MSG;
}

Test(spoolrec, inconsistent_payloads)
{
	for (size_t i = 0; i < ARRAY_LEN(pl_cases); i++) {
		const struct pl_case *c = &pl_cases[i];
		struct wbuf w = { .n = 0 };
		uint8_t type = build_payload(c->kind, &w);
		size_t n;
		uint8_t *rec = seal(type, w.b, w.n, &n);

		enum spoolrec_err got_err = SPOOLREC_E_CRC;
		size_t got_used = 0;
		struct spoolrec_msg m;
		struct spoolrec_view dq;
		enum spoolrec_type got_type = SPOOLREC_NONE;
		enum spoolrec_rc got_rc = spoolrec_decode(rec, n, &got_used, &got_type, &m, &dq,
		                                          &got_err);
		cr_assert_eq(got_rc, c->want_rc, "%s: got rc %d (%s)", c->name, got_rc,
		             spoolrec_strerror(got_err));
		if (c->want_rc == SPOOLREC_OK) {
			cr_assert_eq(got_used, n, "%s", c->name);
			cr_assert_eq(got_err, SPOOLREC_E_NONE);
			cr_assert_eq(got_type, type, "%s", c->name);
			if (type != SPOOLREC_MSG)
				cr_assert(view_eq(dq, "Q1", 2), "%s", c->name);
		} else {
			cr_assert_eq(got_err, SPOOLREC_E_PAYLOAD, "%s: got %s", c->name,
			             spoolrec_strerror(got_err));
		}
		/* spoolrec_outcome() says the same of a RCPT. */
		if (type == SPOOLREC_RCPT) {
			struct spoolrec_outcome o;
			enum spoolrec_err got_err2 = SPOOLREC_E_CRC;
			cr_assert_eq(spoolrec_outcome(rec, n, &o, &got_err2), c->want_rc, "%s",
			             c->name);
			cr_assert_eq(got_err2, got_err, "%s", c->name);
			if (c->want_rc == SPOOLREC_OK) {
				cr_assert_eq(o.n, 2);
				cr_assert_eq(o.attempts, 2);
				cr_assert_eq(spoolrec_outcome_idx(&o, 1), 1);
			}
		}
		free(rec);
	}
}

/* ---- the rest of the API ------------------------------------------------------------- */

Test(spoolrec, strerror_names_every_error)
{
	static const enum spoolrec_err all[] = {
		SPOOLREC_E_NONE, SPOOLREC_E_MAGIC, SPOOLREC_E_TYPE, SPOOLREC_E_LENGTH,
		SPOOLREC_E_CRC, SPOOLREC_E_PAYLOAD, SPOOLREC_E_TRUNCATED,
	};
	for (size_t i = 0; i < ARRAY_LEN(all); i++) {
		const char *got_s = spoolrec_strerror(all[i]);
		cr_assert(got_s && *got_s, "error %d", all[i]);
		for (size_t j = 0; j < i; j++)
			cr_assert_str_neq(got_s, spoolrec_strerror(all[j]));
	}
	cr_assert_not_null(spoolrec_strerror((enum spoolrec_err)99));
}

/* next_rcpt stays inside the block even for a message not made by the decoder. */
Test(spoolrec, next_rcpt_is_bounded)
{
	struct rcpt_case {
		const char *name;
		uint8_t block[12];
		uint32_t len;
		int want_count;
	} cases[] = {
		{ "empty", { 0 }, 0, 0 },
		{ "short length", { 1, 0, 0 }, 3, 0 },
		{ "length past end", { 5, 0, 0, 0, 'a', 'b' }, 6, 0 },
		{ "one then garbage", { 1, 0, 0, 0, 'a', 9, 0 }, 7, 1 },
		{ "two empty", { 0, 0, 0, 0, 0, 0, 0, 0 }, 8, 2 },
	};
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		uint8_t *blk = dup_exact(cases[i].block, cases[i].len);
		struct spoolrec_msg m;
		memset(&m, 0, sizeof m);
		m.rcpt_block = blk;
		m.rcpt_block_len = cases[i].len;
		uint32_t off = 0;
		struct spoolrec_view r;
		int got_count = 0;
		while (spoolrec_next_rcpt(&m, &off, &r))
			got_count++;
		cr_assert_eq(got_count, cases[i].want_count, "%s", cases[i].name);
		free(blk);
	}
	struct spoolrec_msg none;
	memset(&none, 0, sizeof none);
	uint32_t off = 0;
	struct spoolrec_view r;
	cr_assert_eq(spoolrec_next_rcpt(&none, &off, &r), 0);
}

/* ---- records of a newer build's type ------------------------------------------------- */

Test(spoolrec, unknown_type_is_decoded_not_refused)
{
	static const uint8_t types[] = { 6, 9, 7, 0x80, 0xff };
	for (size_t i = 0; i < ARRAY_LEN(types); i++) {
		size_t n;
		uint8_t *rec = seal(types[i], (const uint8_t *)"future payload", 14, &n);
		size_t got_used = 0;
		enum spoolrec_type got_type = SPOOLREC_NONE;
		enum spoolrec_err got_err = SPOOLREC_E_CRC;
		cr_assert_eq(spoolrec_decode(rec, n, &got_used, &got_type, NULL, NULL, &got_err),
		             SPOOLREC_OK, "type %u: %s", types[i], spoolrec_strerror(got_err));
		cr_assert_eq(got_type, SPOOLREC_UNKNOWN, "type %u", types[i]);
		cr_assert_eq(got_used, n);
		/* Every prefix is a consistent beginning. */
		for (size_t len = 0; len < n; len++) {
			uint8_t *pre = dup_exact(rec, len);
			cr_assert_eq(spoolrec_decode(pre, len, NULL, NULL, NULL, NULL, NULL),
			             SPOOLREC_AGAIN, "type %u prefix %zu", types[i], len);
			free(pre);
		}
		/* Still checked: its CRC, its reserved octets. */
		rec[n - 1] ^= 1;
		cr_assert_eq(spoolrec_decode(rec, n, NULL, NULL, NULL, NULL, &got_err),
		             SPOOLREC_ERR);
		cr_assert_eq(got_err, SPOOLREC_E_CRC);
		free(rec);
	}
	/* Types 4 and 5 are RCPT and VOID now: a payload that is not theirs is damage. */
	for (uint8_t t = SPOOLREC_RCPT; t <= SPOOLREC_VOID; t++) {
		size_t n;
		uint8_t *rec = seal(t, (const uint8_t *)"future payload", 14, &n);
		enum spoolrec_err got_err = SPOOLREC_E_NONE;
		cr_assert_eq(spoolrec_decode(rec, n, NULL, NULL, NULL, NULL, &got_err),
		             SPOOLREC_ERR, "type %u", t);
		cr_assert_eq(got_err, SPOOLREC_E_PAYLOAD, "type %u", t);
		free(rec);
	}
	/* Type zero with a correct CRC is still no record. */
	size_t n;
	uint8_t *rec = seal(SPOOLREC_NONE, (const uint8_t *)"x", 1, &n);
	enum spoolrec_err got_err = SPOOLREC_E_NONE;
	cr_assert_eq(spoolrec_decode(rec, n, NULL, NULL, NULL, NULL, &got_err), SPOOLREC_ERR);
	cr_assert_eq(got_err, SPOOLREC_E_TYPE);
	free(rec);
}

Test(spoolrec, decode_verified_skips_only_the_crc)
{
	size_t n;
	uint8_t *rec;
	for (size_t k = 0; (rec = record_n(k, &n)) != NULL; k++) {
		size_t used1 = 0, used2 = 0;
		enum spoolrec_type t1 = SPOOLREC_NONE, t2 = SPOOLREC_NONE;
		struct spoolrec_msg m1, m2;
		struct spoolrec_view d1 = { NULL, 0 }, d2 = { NULL, 0 };
		memset(&m1, 0, sizeof m1);
		memset(&m2, 0, sizeof m2);
		cr_assert_eq(spoolrec_decode(rec, n, &used1, &t1, &m1, &d1, NULL), SPOOLREC_OK);
		cr_assert_eq(spoolrec_decode_verified(rec, n, &used2, &t2, &m2, &d2, NULL),
		             SPOOLREC_OK);
		cr_assert_eq(used1, used2);
		cr_assert_eq(t1, t2);
		cr_assert(memcmp(&m1, &m2, sizeof m1) == 0, "record %zu", k);
		cr_assert(d1.p == d2.p && d1.len == d2.len);
		/* A CRC octet changed: decode refuses, decode_verified does not look. */
		rec[12] ^= 0x40;
		cr_assert_eq(spoolrec_decode(rec, n, NULL, NULL, NULL, NULL, NULL), SPOOLREC_ERR);
		cr_assert_eq(spoolrec_decode_verified(rec, n, NULL, NULL, NULL, NULL, NULL),
		             SPOOLREC_OK);
		/* Lengths are still bounds-checked. */
		enum spoolrec_err got_err;
		cr_assert_neq(spoolrec_decode_verified(rec, n - 1, NULL, NULL, NULL, NULL,
		                                       &got_err), SPOOLREC_OK);
		free(rec);
	}
}

/* ---- the vectored encoder ------------------------------------------------------------ */

/* A small deterministic PRNG (xorshift64*): tests print their seed. */
static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545F4914F6CDD1Dull;
}

static size_t rng_below(uint64_t *s, size_t n)
{
	return n ? (size_t)(rng_next(s) % n) : 0;
}

/* Checks one shape: head + data is exactly encode_msg's record, the sizes agree, and a
 * buffer one octet short gets 0 and no write. */
static void check_head(const char *what, const char *qid, uint64_t arrival, uint32_t flags,
                       const char *sender, const char *client, const char *const *rcpt,
                       size_t nrcpt, const uint8_t *data, size_t datalen)
{
	size_t want_n = spoolrec_msg_size(qid, sender, client, rcpt, nrcpt, datalen);
	size_t got_hn = spoolrec_msg_head_size(qid, sender, client, rcpt, nrcpt, datalen);
	cr_assert_gt(want_n, 0, "%s", what);
	cr_assert_eq(got_hn, want_n - datalen, "%s: head size %zu, record %zu, data %zu", what,
	             got_hn, want_n, datalen);

	uint8_t *want = malloc(want_n);
	uint8_t *head = malloc(got_hn + 1);
	uint8_t *stored = malloc(datalen + 1);         /* the data as it lies on disk */
	const uint64_t nonce = arrival ^ 0x5ca1ab1eull;
	cr_assert(want && head && stored);
	cr_assert_eq(spoolrec_encode_msg(want, want_n, qid, arrival, flags, nonce, sender,
	                                 client, rcpt, nrcpt, data, datalen), want_n, "%s", what);
	if (datalen)
		spoolrec_scramble(stored, data, datalen, nonce);
	memset(head, 0xa5, got_hn + 1);
	cr_assert_eq(spoolrec_encode_msg_head(head, got_hn - 1, qid, arrival, flags, nonce, sender,
	                                      client, rcpt, nrcpt, stored, datalen), 0, "%s", what);
	for (size_t i = 0; i < got_hn + 1; i++)
		cr_assert_eq(head[i], 0xa5, "%s: short buffer written at %zu", what, i);
	size_t got_n = spoolrec_encode_msg_head(head, got_hn + 1, qid, arrival, flags, nonce,
	                                        sender, client, rcpt, nrcpt, stored, datalen);
	cr_assert_eq(got_n, got_hn, "%s", what);
	cr_assert_eq(head[got_hn], 0xa5, "%s: wrote past the head", what);
	cr_assert(memcmp(head, want, got_hn) == 0, "%s: head differs", what);
	cr_assert(datalen == 0 || memcmp(want + got_hn, stored, datalen) == 0,
	          "%s: data is not right behind the head", what);
	/* and the data comes back */
	if (datalen) {
		spoolrec_scramble(stored, stored, datalen, nonce);
		cr_assert(memcmp(stored, data, datalen) == 0, "%s: unscrambled data differs", what);
	}
	free(want);
	free(head);
	free(stored);
}

Test(spoolrec, msg_head_plus_data_is_the_record)
{
	for (size_t i = 0; i < ARRAY_LEN(msg_cases); i++) {
		const struct msg_case *c = &msg_cases[i];
		check_head(c->name, c->qid, c->arrival, c->flags, c->sender, c->client, c->rcpt,
		           c->nrcpt, c->data, c->datalen);
	}

	uint64_t seed = 0x5eed0001;
	static char strs[8][300];
	static const char *rcpt[8];
	static uint8_t data[70000];
	for (size_t i = 0; i < sizeof data; i++)
		data[i] = (uint8_t)(i * 131 + (i >> 9));
	for (int iter = 0; iter < 400; iter++) {
		uint64_t s = seed + (uint64_t)iter;
		for (size_t j = 0; j < 8; j++) {
			size_t len = rng_below(&s, 4) ? rng_below(&s, 40) : rng_below(&s, 299);
			for (size_t k = 0; k < len; k++)
				strs[j][k] = (char)('!' + rng_below(&s, 90));
			strs[j][len] = '\0';
			rcpt[j] = strs[j];
		}
		size_t nrcpt = rng_below(&s, 6);
		size_t datalen = rng_below(&s, 3) ? rng_below(&s, 5000) : rng_below(&s, 70000);
		const uint8_t *d = data + rng_below(&s, 16) % (sizeof data - datalen + 1);
		char what[64];
		snprintf(what, sizeof what, "shape %d (seed %#llx)", iter, (unsigned long long)s);
		check_head(what, strs[5], rng_next(&s), (uint32_t)rng_next(&s), strs[6], strs[7],
		           rcpt, nrcpt, datalen ? d : NULL, datalen);
	}
	/* The head alone, with nothing behind it. */
	check_head("no data", "Q", 1, 0, "", "c", NULL, 0, NULL, 0);
}

/* ---- the segment scan ---------------------------------------------------------------- */

struct seg_rec {
	size_t off, len;
	enum spoolrec_type type;
};

struct seg {
	uint8_t *p;
	size_t n, cap;
	struct seg_rec r[400];
	size_t nrec;
};

static void seg_put(struct seg *s, const uint8_t *rec, size_t n, enum spoolrec_type type)
{
	cr_assert_lt(s->nrec, ARRAY_LEN(s->r));
	if (s->n + n > s->cap) {
		s->cap = (s->n + n) * 2;
		s->p = realloc(s->p, s->cap);
		cr_assert_not_null(s->p);
	}
	memcpy(s->p + s->n, rec, n);
	s->r[s->nrec++] = (struct seg_rec){ s->n, n, type };
	s->n += n;
}

/* Record i of a test segment: mostly MSGs of varying size (lower-case data, so no
 * magic by accident); of every 10, #3 a DONE, #7 a RCPT outcome, #8 a VOID; some data
 * carries a fake header (the magic, a sane header, a wrong CRC) so that
 * resynchronisation meets false candidates. */
static void seg_add(struct seg *s, size_t i, uint64_t *rng)
{
	char qid[32];
	snprintf(qid, sizeof qid, "Q%04zu", i);
	if (i % 10 == 3 || i % 10 == 8) {
		uint8_t rec[64];
		snprintf(qid, sizeof qid, "Q%04zu", i - 1);
		size_t n = i % 10 == 3 ? spoolrec_encode_done(rec, sizeof rec, qid)
		                       : spoolrec_encode_void(rec, sizeof rec, qid);
		seg_put(s, rec, n, i % 10 == 3 ? SPOOLREC_DONE : SPOOLREC_VOID);
		return;
	}
	if (i % 10 == 7) {
		uint8_t rec[128];
		uint32_t idx[4] = { 0, 2, 1, 3 };
		snprintf(qid, sizeof qid, "Q%04zu", i - 1);
		int final = rng_below(rng, 2);
		size_t n = spoolrec_encode_rcpt(rec, sizeof rec, qid,
		                                final ? SPOOLREC_RS_DELIVERED : SPOOLREC_RS_DEFERRED,
		                                (uint32_t)(1 + rng_below(rng, 9)),
		                                final ? 0 : 1700000000u + i * 60, 1700000000u + i,
		                                idx, (uint32_t)(1 + rng_below(rng, 4)));
		cr_assert_gt(n, 0);
		seg_put(s, rec, n, SPOOLREC_RCPT);
		return;
	}
	static const char *const rc[] = { "a@x.test", "bb@y.test", "ccc@z.test" };
	uint8_t data[600];
	size_t dl = 1 + rng_below(rng, 200);
	for (size_t k = 0; k < dl; k++)
		data[k] = (uint8_t)('a' + rng_below(rng, 26));
	if (i % 17 == 5) {
		static const uint8_t fake[] = { 'R', 'R', 'S', '1', 1, 0, 0, 0, 4, 0, 0, 0,
		                                1, 2, 3, 4, 0, 0, 0, 0 };
		memcpy(data + dl, fake, sizeof fake);
		dl += sizeof fake;
		data[dl++] = 'z';
	}
	uint8_t rec[1024];
	size_t n = spoolrec_encode_msg(rec, sizeof rec, qid, 1700000000u + i, 0, 0, "s@x.test",
	                               "192.0.2.1", rc, i % 4, data, dl);
	cr_assert_gt(n, 0);
	seg_put(s, rec, n, SPOOLREC_MSG);
}

static void seg_build(struct seg *s, size_t nrec, uint64_t seed)
{
	memset(s, 0, sizeof *s);
	for (size_t i = 0; i < nrec; i++)
		seg_add(s, i, &seed);
}

static void seg_zeros(struct seg *s, size_t n)
{
	if (s->n + n > s->cap) {
		s->cap = s->n + n;
		s->p = realloc(s->p, s->cap);
		cr_assert_not_null(s->p);
	}
	memset(s->p + s->n, 0, n);
	s->n += n;
}

/* What a scan reported. */
struct ev_log {
	struct spoolrec_scan_ev ev[1024];
	size_t n;
	size_t stop_at;         /* 0: never stop */
};

static int ev_collect(void *ctx, const struct spoolrec_scan_ev *ev)
{
	struct ev_log *l = ctx;
	cr_assert_lt(l->n, ARRAY_LEN(l->ev));
	l->ev[l->n++] = *ev;
	return l->stop_at && l->n >= l->stop_at ? 42 : 0;
}

/* Scans an exact heap copy of p[0..n) (ASan sees any over-read) and checks the
 * structural invariants: events tile [0, n) in order, records re-decode to the same
 * length, a SKIPPED is followed by a RECORD, TORN only just before END, END last and
 * zero. */
static void scan_checked(const char *what, const uint8_t *p, size_t n, struct ev_log *l)
{
	uint8_t *q = dup_exact(p, n);
	l->n = 0;
	l->stop_at = 0;
	cr_assert_eq(spoolrec_scan(q, n, ev_collect, l), 0, "%s", what);
	size_t at = 0;
	for (size_t i = 0; i < l->n; i++) {
		const struct spoolrec_scan_ev *e = &l->ev[i];
		cr_assert_eq(e->off, at, "%s: event %zu at %zu, want %zu", what, i, e->off, at);
		cr_assert_leq(e->len, n - at, "%s: event %zu runs past the end", what, i);
		switch (e->kind) {
		case SPOOLREC_SCAN_RECORD: {
			size_t used = 0;
			cr_assert_eq(spoolrec_decode(q + e->off, n - e->off, &used, NULL, NULL, NULL,
			                             NULL), SPOOLREC_OK, "%s: record at %zu", what, at);
			cr_assert_eq(used, e->len, "%s: record at %zu", what, at);
			break;
		}
		case SPOOLREC_SCAN_SKIPPED:
			cr_assert_gt(e->len, 0, "%s", what);
			cr_assert_lt(i + 1, l->n, "%s", what);
			cr_assert_eq(l->ev[i + 1].kind, SPOOLREC_SCAN_RECORD, "%s: after SKIPPED", what);
			cr_assert_neq(e->err, SPOOLREC_E_NONE, "%s", what);
			break;
		case SPOOLREC_SCAN_TORN:
			cr_assert_gt(e->len, 0, "%s", what);
			cr_assert_eq(i + 2, l->n, "%s: TORN not just before END", what);
			cr_assert_neq(e->err, SPOOLREC_E_NONE, "%s", what);
			break;
		case SPOOLREC_SCAN_END:
			cr_assert_eq(i + 1, l->n, "%s: END not last", what);
			for (size_t k = e->off; k < n; k++)
				cr_assert_eq(q[k], 0, "%s: END region not zero at %zu", what, k);
			break;
		default:
			cr_assert_fail("%s: event kind %d", what, e->kind);
		}
		at += e->len;
	}
	cr_assert_eq(at, n, "%s: events cover %zu of %zu", what, at, n);
	free(q);
}

static size_t ev_count(const struct ev_log *l, enum spoolrec_scan_kind k)
{
	size_t c = 0;
	for (size_t i = 0; i < l->n; i++)
		c += l->ev[i].kind == k;
	return c;
}

/* The records found are exactly s's records but those in [skip_from, skip_to). */
static void want_records_but(const char *what, const struct seg *s, const struct ev_log *l,
                             size_t skip_from, size_t skip_to)
{
	size_t j = 0;
	for (size_t i = 0; i < l->n; i++) {
		if (l->ev[i].kind != SPOOLREC_SCAN_RECORD)
			continue;
		while (j >= skip_from && j < skip_to)
			j++;
		cr_assert_lt(j, s->nrec, "%s: more records than written", what);
		cr_assert_eq(l->ev[i].off, s->r[j].off, "%s: record %zu found at %zu", what, j,
		             l->ev[i].off);
		cr_assert_eq(l->ev[i].type, s->r[j].type, "%s: record %zu type", what, j);
		j++;
	}
	while (j >= skip_from && j < skip_to)
		j++;
	cr_assert_eq(j, s->nrec, "%s: found up to record %zu of %zu", what, j, s->nrec);
}

/* The one damage event, of kind k, over [off, off+len). */
static const struct spoolrec_scan_ev *want_damage(const char *what, const struct ev_log *l,
                                                  enum spoolrec_scan_kind k, size_t off,
                                                  size_t len)
{
	const struct spoolrec_scan_ev *d = NULL;
	for (size_t i = 0; i < l->n; i++) {
		if (l->ev[i].kind == SPOOLREC_SCAN_SKIPPED || l->ev[i].kind == SPOOLREC_SCAN_TORN) {
			cr_assert_null(d, "%s: more than one damaged region", what);
			d = &l->ev[i];
		}
	}
	cr_assert_not_null(d, "%s: no damage reported", what);
	cr_assert_eq(d->kind, k, "%s: damage kind %d want %d", what, d->kind, k);
	cr_assert_eq(d->off, off, "%s: damage at %zu want %zu", what, d->off, off);
	cr_assert_eq(d->len, len, "%s: damage of %zu octets want %zu", what, d->len, len);
	return d;
}

static struct ev_log evl;       /* big: static, not on the test's stack */

/* Scans s (changed in record k only) and checks that record k alone is lost: reported
 * as SKIPPED, or as TORN when it is the last; returns the damage event. */
static const struct spoolrec_scan_ev *want_only_lost(const char *what, const struct seg *s,
                                                     size_t k)
{
	scan_checked(what, s->p, s->n, &evl);
	want_records_but(what, s, &evl, k, k + 1);
	return want_damage(what, &evl,
	                   k + 1 < s->nrec ? SPOOLREC_SCAN_SKIPPED : SPOOLREC_SCAN_TORN,
	                   s->r[k].off, s->r[k].len);
}

Test(spoolrec, scan_clean_segments)
{
	struct seg s;
	seg_build(&s, 100, 1);
	scan_checked("100 records", s.p, s.n, &evl);
	want_records_but("100 records", &s, &evl, 0, 0);
	cr_assert_eq(evl.n, 101);
	cr_assert_eq(evl.ev[100].kind, SPOOLREC_SCAN_END);
	cr_assert_eq(evl.ev[100].len, 0);
	/* (scan_checked scanned a copy it freed since: views are checked on s itself.) */
	evl.n = 0;
	cr_assert_eq(spoolrec_scan(s.p, s.n, ev_collect, &evl), 0);
	cr_assert_eq(evl.ev[0].type, SPOOLREC_MSG);
	cr_assert(view_eq(evl.ev[0].msg.qid, "Q0000", 5));
	cr_assert_eq(evl.ev[3].type, SPOOLREC_DONE);
	cr_assert(view_eq(evl.ev[3].done_qid, "Q0002", 5));

	scan_checked("empty", s.p, 0, &evl);
	cr_assert_eq(evl.n, 1);
	cr_assert_eq(evl.ev[0].kind, SPOOLREC_SCAN_END);

	static const uint8_t zeros[4096];
	scan_checked("zeros only", zeros, sizeof zeros, &evl);
	cr_assert_eq(evl.n, 1);
	cr_assert_eq(evl.ev[0].kind, SPOOLREC_SCAN_END);
	cr_assert_eq(evl.ev[0].len, sizeof zeros);
	free(s.p);
}

/* What the record at off, with one octet changed, must be refused for. */
static enum spoolrec_err want_scan_err(const struct seg *s, size_t k, size_t pos)
{
	const uint8_t *r = s->p + s->r[k].off;
	if (pos < 4)
		return SPOOLREC_E_MAGIC;
	if (pos == 4)
		return r[4] == SPOOLREC_NONE ? SPOOLREC_E_TYPE : SPOOLREC_E_CRC;
	if (pos < 8)
		return SPOOLREC_E_TYPE;
	if (pos < 12) {
		uint32_t plen = le32_at(r + 8);
		if (plen > SPOOLREC_MAX_PAYLOAD)
			return SPOOLREC_E_LENGTH;
		if (plen > s->n - s->r[k].off - SPOOLREC_HDR_LEN)
			return SPOOLREC_E_TRUNCATED;
	}
	return SPOOLREC_E_CRC;
}

/* Issue 7: one changed octet anywhere in any record of 100 costs that record only. */
Test(spoolrec, scan_one_bad_octet_anywhere_costs_one_record)
{
	struct seg s;
	seg_build(&s, 100, 2);
	static const uint8_t masks[] = { 0x01, 0x80, 0xff };
	for (size_t k = 0; k < s.nrec; k++) {
		for (size_t pos = 0; pos < s.r[k].len; pos++) {
			uint8_t mask = masks[(pos + k) % ARRAY_LEN(masks)];
			uint8_t *at = s.p + s.r[k].off + pos;
			char what[96];
			snprintf(what, sizeof what, "record %zu octet %zu ^ 0x%02x", k, pos, mask);
			*at ^= mask;
			enum spoolrec_err want_err = want_scan_err(&s, k, pos);
			/* The last record has nothing valid after it: a torn tail. */
			const struct spoolrec_scan_ev *d = want_only_lost(what, &s, k);
			*at ^= mask;
			cr_assert_eq(d->err, want_err, "%s: %s, want %s", what,
			             spoolrec_strerror(d->err), spoolrec_strerror(want_err));
		}
	}
	free(s.p);
}

/* The case of the issue: a body octet of record 36 of 71. */
Test(spoolrec, scan_bad_data_octet)
{
	struct seg s;
	seg_build(&s, 71, 3);
	size_t k = 36;
	cr_assert_eq(s.r[k].type, SPOOLREC_MSG);
	s.p[s.r[k].off + s.r[k].len - 2] ^= 0x20;           /* inside the data */
	const struct spoolrec_scan_ev *d = want_only_lost("record 36 data", &s, k);
	cr_assert_eq(d->kind, SPOOLREC_SCAN_SKIPPED);
	cr_assert_eq(d->err, SPOOLREC_E_CRC);
	free(s.p);
}

Test(spoolrec, scan_adjacent_bad_records_and_a_bad_first_record)
{
	struct seg s;
	seg_build(&s, 100, 4);
	s.p[s.r[40].off + 20] ^= 1;
	s.p[s.r[41].off + 1] ^= 1;
	scan_checked("40 and 41", s.p, s.n, &evl);
	want_records_but("40 and 41", &s, &evl, 40, 42);
	want_damage("40 and 41", &evl, SPOOLREC_SCAN_SKIPPED, s.r[40].off,
	            s.r[42].off - s.r[40].off);
	s.p[s.r[40].off + 20] ^= 1;
	s.p[s.r[41].off + 1] ^= 1;

	s.p[0] = 'X';
	scan_checked("first", s.p, s.n, &evl);
	want_records_but("first", &s, &evl, 0, 1);
	const struct spoolrec_scan_ev *d =
		want_damage("first", &evl, SPOOLREC_SCAN_SKIPPED, 0, s.r[0].len);
	cr_assert_eq(d->err, SPOOLREC_E_MAGIC);
	free(s.p);
}

Test(spoolrec, scan_zero_tail_is_clean)
{
	struct seg s;
	seg_build(&s, 50, 5);
	/* The last record ends in zero octets (a DONE with an empty qid: its payload is
	 * four zero octets): the END region starts where the record ends, not before. */
	uint8_t rec[32];
	size_t n = spoolrec_encode_done(rec, sizeof rec, "");
	seg_put(&s, rec, n, SPOOLREC_DONE);
	size_t data_end = s.n;
	seg_zeros(&s, 1 << 20);
	scan_checked("zero tail", s.p, s.n, &evl);
	want_records_but("zero tail", &s, &evl, 0, 0);
	cr_assert_eq(ev_count(&evl, SPOOLREC_SCAN_SKIPPED) + ev_count(&evl, SPOOLREC_SCAN_TORN), 0);
	cr_assert_eq(evl.ev[evl.n - 1].off, data_end);
	cr_assert_eq(evl.ev[evl.n - 1].len, 1 << 20);
	free(s.p);
}

/* Tens of MiB written ahead: found from the end, not decoded offset by offset. */
Test(spoolrec, scan_big_zero_tail_and_zero_middle_are_fast, .timeout = 20)
{
	struct seg s;
	seg_build(&s, 20, 6);
	seg_zeros(&s, 64u << 20);
	scan_checked("64 MiB tail", s.p, s.n, &evl);
	cr_assert_eq(evl.n, 21);
	cr_assert_eq(evl.ev[20].len, 64u << 20);

	/* 16 MiB of zeros between records: a page that never reached the disk before a
	 * later one did. */
	struct seg t;
	seg_build(&t, 20, 6);
	size_t hole = t.n;
	seg_zeros(&t, 16u << 20);
	uint64_t rng = 7;
	for (size_t i = 20; i < 40; i++)
		seg_add(&t, i, &rng);
	scan_checked("16 MiB hole", t.p, t.n, &evl);
	const struct spoolrec_scan_ev *d =
		want_damage("16 MiB hole", &evl, SPOOLREC_SCAN_SKIPPED, hole, 16u << 20);
	cr_assert_eq(d->err, SPOOLREC_E_MAGIC);
	want_records_but("16 MiB hole", &t, &evl, 0, 0);
	free(s.p);
	free(t.p);
}

Test(spoolrec, scan_zeros_in_the_middle)
{
	struct seg s;
	seg_build(&s, 100, 8);
	uint8_t *keep = dup_exact(s.p, s.n);

	/* Whole records 30..32 zeroed. */
	memset(s.p + s.r[30].off, 0, s.r[33].off - s.r[30].off);
	scan_checked("30..32 zero", s.p, s.n, &evl);
	want_records_but("30..32 zero", &s, &evl, 30, 33);
	const struct spoolrec_scan_ev *d = want_damage("30..32 zero", &evl, SPOOLREC_SCAN_SKIPPED,
	                                               s.r[30].off, s.r[33].off - s.r[30].off);
	cr_assert_eq(d->err, SPOOLREC_E_MAGIC);
	memcpy(s.p, keep, s.n);

	/* From inside record 30 to inside record 32. */
	memset(s.p + s.r[30].off + 20, 0, s.r[32].off + 5 - (s.r[30].off + 20));
	scan_checked("30+20..32+5 zero", s.p, s.n, &evl);
	want_records_but("30+20..32+5 zero", &s, &evl, 30, 33);
	want_damage("30+20..32+5 zero", &evl, SPOOLREC_SCAN_SKIPPED, s.r[30].off,
	            s.r[33].off - s.r[30].off);
	memcpy(s.p, keep, s.n);

	/* The last records zeroed: that is a zero tail, clean. */
	memset(s.p + s.r[97].off, 0, s.n - s.r[97].off);
	scan_checked("97.. zero", s.p, s.n, &evl);
	want_records_but("97.. zero", &s, &evl, 97, 100);
	cr_assert_eq(ev_count(&evl, SPOOLREC_SCAN_SKIPPED) + ev_count(&evl, SPOOLREC_SCAN_TORN), 0);
	free(keep);
	free(s.p);
}

Test(spoolrec, scan_keeps_unknown_records)
{
	struct seg s;
	uint64_t rng = 9;
	memset(&s, 0, sizeof s);
	for (size_t i = 0; i < 10; i++)
		seg_add(&s, i, &rng);
	static const uint8_t types[] = { 9, 0xff };
	for (size_t t = 0; t < ARRAY_LEN(types); t++) {
		size_t n;
		uint8_t payload[300];
		memset(payload, 0x5a, sizeof payload);
		uint8_t *rec = seal(types[t], payload, 100 + 50 * t, &n);
		seg_put(&s, rec, n, SPOOLREC_UNKNOWN);
		free(rec);
	}
	for (size_t i = 10; i < 20; i++)
		seg_add(&s, i, &rng);
	scan_checked("unknown", s.p, s.n, &evl);
	want_records_but("unknown", &s, &evl, 0, 0);
	cr_assert_eq(ev_count(&evl, SPOOLREC_SCAN_SKIPPED) + ev_count(&evl, SPOOLREC_SCAN_TORN), 0);
	cr_assert_eq(evl.ev[10].type, SPOOLREC_UNKNOWN);
	cr_assert_eq(evl.ev[11].type, SPOOLREC_UNKNOWN);
	free(s.p);
}

static size_t trailing_zeros(const uint8_t *p, size_t n)
{
	size_t z = 0;
	while (z < n && p[n - 1 - z] == 0)
		z++;
	return z;
}

Test(spoolrec, scan_torn_tail_at_every_length)
{
	struct seg s;
	seg_build(&s, 30, 10);
	size_t k = s.nrec - 1, off = s.r[k].off;
	for (size_t cut = 1; cut < s.r[k].len; cut++) {
		char what[64];
		snprintf(what, sizeof what, "last record cut to %zu", cut);
		/* Cut, and cut then written-ahead zeros: torn either way, up to the last
		 * non-zero octet; the zeros after it are clean. */
		for (size_t ahead = 0; ahead <= 4096; ahead += 4096) {
			size_t n = off + cut + ahead;
			uint8_t *b = calloc(1, n);
			cr_assert_not_null(b);
			memcpy(b, s.p, off + cut);
			scan_checked(what, b, n, &evl);
			want_records_but(what, &s, &evl, k, k + 1);
			size_t z = trailing_zeros(b + off, cut);
			/* (Why it was refused depends on what the zeros make of it.) */
			want_damage(what, &evl, SPOOLREC_SCAN_TORN, off, cut - z);
			cr_assert_eq(evl.ev[evl.n - 1].len, z + ahead, "%s", what);
			free(b);
		}
	}
	free(s.p);
}

Test(spoolrec, scan_length_claiming_900_mib)
{
	struct seg s;
	seg_build(&s, 100, 11);
	const uint32_t huge = 900u << 20;
	for (size_t k = 0; k < s.nrec; k += 33) {       /* 0, 33, 66, 99 */
		uint8_t *len = s.p + s.r[k].off + 8;
		uint8_t keep[4];
		memcpy(keep, len, 4);
		len[0] = (uint8_t)huge;
		len[1] = (uint8_t)(huge >> 8);
		len[2] = (uint8_t)(huge >> 16);
		len[3] = (uint8_t)(huge >> 24);
		char what[64];
		snprintf(what, sizeof what, "record %zu claims 900 MiB", k);
		const struct spoolrec_scan_ev *d = want_only_lost(what, &s, k);
		cr_assert_eq(d->err, SPOOLREC_E_TRUNCATED, "%s", what);
		memcpy(len, keep, 4);
	}
	free(s.p);
}

Test(spoolrec, scan_stops_when_the_callback_says_so)
{
	struct seg s;
	seg_build(&s, 10, 12);
	s.p[s.r[5].off] ^= 1;
	for (size_t stop = 1; stop <= 11; stop++) {
		evl.n = 0;
		evl.stop_at = stop;
		cr_assert_eq(spoolrec_scan(s.p, s.n, ev_collect, &evl), 42, "stop at %zu", stop);
		cr_assert_eq(evl.n, stop);
	}
	free(s.p);
}

/* A model test: random segments, random damage; the records whose octets were all left
 * alone (and are inside the file) are exactly the records found. Seeds are printed. */
Test(spoolrec, scan_random_damage_against_a_model)
{
	for (uint64_t iter = 0; iter < 3000; iter++) {
		uint64_t seed = 0x9e3779b97f4a7c15ull ^ (iter * 0x100000001b3ull), rng = seed;
		struct seg s;
		seg_build(&s, 1 + rng_below(&rng, 60), rng_next(&rng));
		/* Sometimes an unknown record somewhere in the middle. */
		if (rng_below(&rng, 4) == 0) {
			size_t n;
			/* (types 1..5 are known: a "newer" payload would not parse) */
			uint8_t *rec = seal((uint8_t)(SPOOLREC_VOID + 1 + rng_below(&rng, 250)),
			                    (const uint8_t *)"newer", 5, &n);
			seg_put(&s, rec, n, SPOOLREC_UNKNOWN);
			free(rec);
			seg_add(&s, 999, &rng);
		}
		size_t data_n = s.n;
		uint8_t *orig = dup_exact(s.p, s.n);
		size_t ops = rng_below(&rng, 6);
		for (size_t o = 0; o < ops; o++) {
			size_t at = rng_below(&rng, s.n), len = 1 + rng_below(&rng, 64);
			if (len > s.n - at)
				len = s.n - at;
			switch (rng_below(&rng, 4)) {
			case 0:
				s.p[at] ^= (uint8_t)(1 + rng_below(&rng, 255));
				break;
			case 1:
				memset(s.p + at, 0, len);
				break;
			case 2:
				for (size_t i = 0; i < len; i++)
					s.p[at + i] = (uint8_t)rng_next(&rng);
				break;
			default:
				/* Another record's header copied over (a misdirected write). */
				memcpy(s.p + at, orig + s.r[rng_below(&rng, s.nrec)].off,
				       len < 16 ? len : 16);
				break;
			}
		}
		size_t n = s.n;
		if (rng_below(&rng, 4) == 0)
			n = rng_below(&rng, s.n + 1);                  /* torn */
		if (rng_below(&rng, 3) == 0) {
			seg_zeros(&s, rng_below(&rng, 5000));          /* written ahead */
			if (n == data_n)
				n = s.n;
			else
				memset(s.p + n, 0, s.n - n), n = s.n;
		}
		char what[96];
		snprintf(what, sizeof what, "seed %#llx (%zu records, %zu ops, %zu octets)",
		         (unsigned long long)seed, s.nrec, ops, n);
		scan_checked(what, s.p, n, &evl);

		size_t e = 0;
		for (size_t k = 0; k < s.nrec; k++) {
			const struct seg_rec *r = &s.r[k];
			int intact = r->off + r->len <= n && r->off + r->len <= data_n &&
			             memcmp(s.p + r->off, orig + r->off, r->len) == 0;
			while (e < evl.n && (evl.ev[e].kind != SPOOLREC_SCAN_RECORD ||
			                     evl.ev[e].off < r->off))
				e++;
			int found = e < evl.n && evl.ev[e].off == r->off;
			cr_assert_eq(found, intact, "%s: record %zu at %zu: intact %d, found %d", what,
			             k, r->off, intact, found);
		}
		/* Nothing is found that was not written. */
		size_t nfound = ev_count(&evl, SPOOLREC_SCAN_RECORD), nintact = 0;
		for (size_t k = 0; k < s.nrec; k++)
			nintact += s.r[k].off + s.r[k].len <= n && s.r[k].off + s.r[k].len <= data_n &&
			           memcmp(s.p + s.r[k].off, orig + s.r[k].off, s.r[k].len) == 0;
		cr_assert_eq(nfound, nintact, "%s: found %zu, intact %zu", what, nfound, nintact);
		free(orig);
		free(s.p);
	}
}

/* PAD records fill a commit up to the disk's block size: any length from a bare header
 * up, checked like any record, stepped over by the scan and never counted as unknown. */
static int pad_ev(void *ctx, const struct spoolrec_scan_ev *ev)
{
	unsigned *n = ctx;
	if (ev->kind == SPOOLREC_SCAN_RECORD)
		n[ev->type == SPOOLREC_MSG ? 0 : ev->type == SPOOLREC_PAD ? 1 : 2]++;
	else if (ev->kind == SPOOLREC_SCAN_SKIPPED || ev->kind == SPOOLREC_SCAN_TORN)
		n[3]++;
	return 0;
}

Test(spoolrec, pad_records)
{
	static const size_t lens[] = { 16, 17, 31, 4095, 4096 + 15 };
	static uint8_t seg[3 * 8192 + 8192];
	const char *rcpt[] = { "r@x" };
	uint8_t hdr[SPOOLREC_HDR_LEN];
	cr_assert_eq(spoolrec_pad_header(hdr, 15), 0);
	cr_assert_eq(spoolrec_encode_pad(seg, 15), 0);
	for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
		size_t used;
		enum spoolrec_type type;
		enum spoolrec_err err;
		memset(seg, 0xAA, sizeof seg);
		size_t off = spoolrec_encode_msg(seg, sizeof seg, "Q1", 1, 0, 0, "s@x", "c", rcpt, 1,
		                                 (const uint8_t *)"data\r\n", 6);
		cr_assert_eq(spoolrec_encode_pad(seg + off, lens[i]), lens[i]);
		cr_assert_eq(spoolrec_decode(seg + off, lens[i], &used, &type, NULL, NULL, &err),
		             SPOOLREC_OK, "len %zu: %s", lens[i], spoolrec_strerror(err));
		cr_assert_eq(type, SPOOLREC_PAD);
		cr_assert_eq(used, lens[i]);
		/* the header alone, zeros supplied elsewhere: the same octets */
		cr_assert_eq(spoolrec_pad_header(hdr, lens[i]), lens[i]);
		cr_assert(memcmp(hdr, seg + off, SPOOLREC_HDR_LEN) == 0);
		off += lens[i];
		off += spoolrec_encode_msg(seg + off, sizeof seg - off, "Q2", 1, 0, 0, "s@x", "c", rcpt,
		                           1, (const uint8_t *)"more\r\n", 6);
		unsigned n[4] = { 0 };
		cr_assert_eq(spoolrec_scan(seg, off, pad_ev, n), 0);
		cr_assert_eq(n[0], 2, "len %zu: messages", lens[i]);
		cr_assert_eq(n[1], 1);
		cr_assert_eq(n[2], 0, "a PAD counted as unknown");
		cr_assert_eq(n[3], 0, "damage reported around a PAD");
	}
}

/* Found in review: a client can put a whole, valid spool record inside its message (it
 * is only octets), and the scan, resynchronising after damage to the host record, took it
 * for real: an envelope of the attacker's choosing, or a DONE that erases another
 * message. Message data is stored scrambled with a random nonce per record, so what the
 * client sent never lies on disk as it chose: with the host record damaged at every
 * octet of its header, the forged ones are never found, and the record after it is. */
struct forge_seen { unsigned real, forged; };

static int forge_ev(void *ctx, const struct spoolrec_scan_ev *ev)
{
	struct forge_seen *f = ctx;
	if (ev->kind != SPOOLREC_SCAN_RECORD)
		return 0;
	if (ev->type == SPOOLREC_DONE ||
	    (ev->type == SPOOLREC_MSG && view_eq(ev->msg.sender, "ceo@bank.example", 16)))
		f->forged++;
	else if (ev->type == SPOOLREC_MSG)
		f->real++;
	return 0;
}

Test(spoolrec, records_forged_in_message_data_are_never_found)
{
	/* The payload: a forged MSG and a forged DONE, repeated, as a client would send them. */
	static const char *const evil_rcpt[] = { "anyone@far-away.example" };
	uint8_t forged[512], data[8192];
	size_t fn = spoolrec_encode_msg(forged, sizeof forged, "FORGED", 1, 0, 0,
	                                "ceo@bank.example", "192.0.2.66", evil_rcpt, 1,
	                                (const uint8_t *)"pay now\r\n", 9);
	size_t dn = spoolrec_encode_done(forged + fn, sizeof forged - fn, "VICTIM");
	size_t dlen = 0;
	while (dlen + fn + dn <= sizeof data) {
		memcpy(data + dlen, forged, fn + dn);
		dlen += fn + dn;
	}
	static const char *const rcpt[] = { "b@local.test" };
	static uint8_t seg[16384];
	for (uint64_t nonce = 1; nonce < 40; nonce += 13) {
		size_t host = spoolrec_encode_msg(seg, sizeof seg, "HOST", 1, 0, nonce * 0x9e3779b1ull,
		                                  "a@x.test", "192.0.2.1", rcpt, 1, data, dlen);
		size_t after = spoolrec_encode_msg(seg + host, sizeof seg - host, "AFTER", 1, 0, 7,
		                                   "a@x.test", "192.0.2.1", rcpt, 1,
		                                   (const uint8_t *)"x\r\n", 3);
		for (size_t at = 0; at < 16; at++) {
			seg[at] ^= 0x40;                        /* damage the host's header */
			struct forge_seen f = { 0, 0 };
			cr_assert_eq(spoolrec_scan(seg, host + after, forge_ev, &f), 0);
			cr_assert_eq(f.forged, 0, "nonce %llu, damage at %zu: a forged record was found",
			             (unsigned long long)nonce, at);
			cr_assert_eq(f.real, 1, "nonce %llu, damage at %zu: the next record was lost",
			             (unsigned long long)nonce, at);
			seg[at] ^= 0x40;
		}
		/* and a torn host: the segment ends inside it */
		struct forge_seen f = { 0, 0 };
		cr_assert_eq(spoolrec_scan(seg, host - 100, forge_ev, &f), 0);
		cr_assert_eq(f.forged + f.real, 0);
	}
}

/* A segment of every record type: each RECORD event carries the views of its own type
 * and none of another's (no stale view from the record before), a RCPT its outcome, also
 * when it is the record found by resynchronising; a damaged RCPT costs that record only,
 * whether its CRC or (under a good CRC) its payload is wrong. */
static struct seg mixed_build(void)
{
	struct seg s;
	uint8_t rec[512];
	size_t n;
	static const char *const rc[] = { "a@x.test", "b@y.test" };
	static const uint32_t idx1[] = { 1 }, idx01[] = { 0, 1 };
	memset(&s, 0, sizeof s);
	n = spoolrec_encode_msg(rec, sizeof rec, "A", 1, 0, 0, "s@x", "c", rc, 2,
	                        (const uint8_t *)"data\r\n", 6);
	seg_put(&s, rec, n, SPOOLREC_MSG);                                  /* 0 */
	n = spoolrec_encode_rcpt(rec, sizeof rec, "A", SPOOLREC_RS_DEFERRED, 1, 1700000600,
	                         1700000000, idx1, 1);
	seg_put(&s, rec, n, SPOOLREC_RCPT);                                 /* 1 */
	n = spoolrec_encode_pad(rec, 40);
	seg_put(&s, rec, n, SPOOLREC_PAD);                                  /* 2 */
	n = spoolrec_encode_void(rec, sizeof rec, "B");
	seg_put(&s, rec, n, SPOOLREC_VOID);                                 /* 3 */
	size_t un;
	uint8_t *u = seal(SPOOLREC_VOID + 1, (const uint8_t *)"newer", 5, &un);
	seg_put(&s, u, un, SPOOLREC_UNKNOWN);                               /* 4 */
	free(u);
	n = spoolrec_encode_done(rec, sizeof rec, "C");
	seg_put(&s, rec, n, SPOOLREC_DONE);                                 /* 5 */
	n = spoolrec_encode_rcpt(rec, sizeof rec, "A", SPOOLREC_RS_DELIVERED, 2, 0, 1700000700,
	                         idx01, 2);
	seg_put(&s, rec, n, SPOOLREC_RCPT);                                 /* 6 */
	n = spoolrec_encode_msg(rec, sizeof rec, "D", 2, 0, 0, "s@x", "c", rc, 1,
	                        (const uint8_t *)"more\r\n", 6);
	seg_put(&s, rec, n, SPOOLREC_MSG);                                  /* 7 */
	return s;
}

static void check_mixed_event(const char *what, const struct spoolrec_scan_ev *e, size_t k)
{
	static const char *const qids[] = { "A", "A", NULL, "B", NULL, "C", "A", "D" };
	int is_msg = e->type == SPOOLREC_MSG, is_rcpt = e->type == SPOOLREC_RCPT;
	int has_qid = e->type == SPOOLREC_DONE || e->type == SPOOLREC_VOID || is_rcpt;

	cr_assert_eq(e->kind, SPOOLREC_SCAN_RECORD, "%s: record %zu", what, k);
	if (is_msg)
		cr_assert(view_eq(e->msg.qid, qids[k], 1), "%s: record %zu msg", what, k);
	else
		cr_assert_null(e->msg.qid.p, "%s: record %zu: stale msg view", what, k);
	if (has_qid)
		cr_assert(view_eq(e->done_qid, qids[k], 1), "%s: record %zu qid", what, k);
	else
		cr_assert_null(e->done_qid.p, "%s: record %zu: stale qid view", what, k);
	if (!is_rcpt) {
		cr_assert(e->outcome.idx == NULL && e->outcome.n == 0 && e->outcome.qid.p == NULL,
		          "%s: record %zu: stale outcome", what, k);
		return;
	}
	cr_assert(view_eq(e->outcome.qid, "A", 1), "%s: record %zu", what, k);
	if (k == 1) {
		cr_assert_eq(e->outcome.state, SPOOLREC_RS_DEFERRED);
		cr_assert_eq(e->outcome.attempts, 1);
		cr_assert_eq(e->outcome.next_try, 1700000600);
		cr_assert_eq(e->outcome.at, 1700000000);
		cr_assert_eq(e->outcome.n, 1);
		cr_assert_eq(spoolrec_outcome_idx(&e->outcome, 0), 1);
	} else {
		cr_assert_eq(e->outcome.state, SPOOLREC_RS_DELIVERED);
		cr_assert_eq(e->outcome.attempts, 2);
		cr_assert_eq(e->outcome.next_try, 0);
		cr_assert_eq(e->outcome.at, 1700000700);
		cr_assert_eq(e->outcome.n, 2);
		cr_assert_eq(spoolrec_outcome_idx(&e->outcome, 0), 0);
		cr_assert_eq(spoolrec_outcome_idx(&e->outcome, 1), 1);
	}
}

Test(spoolrec, scan_mixed_segment_reports_outcomes)
{
	struct seg s = mixed_build();
	scan_checked("mixed", s.p, s.n, &evl);
	want_records_but("mixed", &s, &evl, 0, 0);
	evl.n = 0;
	cr_assert_eq(spoolrec_scan(s.p, s.n, ev_collect, &evl), 0);
	cr_assert_eq(evl.n, s.nrec + 1);
	for (size_t k = 0; k < s.nrec; k++)
		check_mixed_event("mixed", &evl.ev[k], k);

	/* The first MSG damaged: the scan resynchronises on the RCPT after it, decoded. */
	s.p[1] ^= 0x20;
	evl.n = 0;
	cr_assert_eq(spoolrec_scan(s.p, s.n, ev_collect, &evl), 0);
	cr_assert_eq(evl.ev[0].kind, SPOOLREC_SCAN_SKIPPED);
	cr_assert_eq(evl.ev[0].len, s.r[0].len);
	for (size_t k = 1; k < s.nrec; k++)
		check_mixed_event("after resync", &evl.ev[k], k);
	s.p[1] ^= 0x20;

	/* A RCPT with a changed index: its CRC; the rest is found. */
	s.p[s.r[6].off + s.r[6].len - 1] ^= 0x01;
	const struct spoolrec_scan_ev *d = want_only_lost("RCPT index", &s, 6);
	cr_assert_eq(d->err, SPOOLREC_E_CRC);
	s.p[s.r[6].off + s.r[6].len - 1] ^= 0x01;

	/* A RCPT whose CRC holds but whose state does not parse: damage (E_PAYLOAD). */
	size_t pl = s.r[1].len - SPOOLREC_HDR_LEN, rn;
	uint8_t *payload = dup_exact(s.p + s.r[1].off + SPOOLREC_HDR_LEN, pl);
	payload[4 + 1] = 9;                                 /* after the qid "A" */
	uint8_t *bad = seal(SPOOLREC_RCPT, payload, pl, &rn);
	cr_assert_eq(rn, s.r[1].len);
	memcpy(s.p + s.r[1].off, bad, rn);
	d = want_only_lost("RCPT state 9", &s, 1);
	cr_assert_eq(d->err, SPOOLREC_E_PAYLOAD);
	free(bad);
	free(payload);
	free(s.p);
}

/* The keystream as written down (word w: nonce + (at / 8 + w + 1) * golden, octet j of a
 * word its j-th least significant), against the function for every length up to 300 at
 * several offsets, in place and not. */
Test(spoolrec, scramble_matches_the_keystream)
{
	static uint8_t in[300], out[300], ref[300];
	const uint64_t nonce = 0x0123456789abcdefull;
	for (size_t i = 0; i < sizeof in; i++)
		in[i] = (uint8_t)(i * 101 + 7);
	for (uint64_t at = 0; at <= 4096; at += at < 64 ? 8 : 4032) {
		for (size_t n = 0; n <= sizeof in; n++) {
			for (size_t i = 0; i < n; i++) {
				uint64_t k = nonce + (at / 8 + i / 8 + 1) * 0x9E3779B97F4A7C15ull;
				ref[i] = in[i] ^ (uint8_t)(k >> (8 * (i % 8)));
			}
			memset(out, 0xee, sizeof out);
			spoolrec_scramble_at(out, in, n, nonce, at);
			cr_assert(memcmp(out, ref, n) == 0, "at %llu n %zu", (unsigned long long)at, n);
			cr_assert(n == sizeof out || out[n] == 0xee, "wrote past n %zu", n);
			memcpy(out, in, n);
			spoolrec_scramble_at(out, out, n, nonce, at);
			cr_assert(memcmp(out, ref, n) == 0, "in place: at %llu n %zu",
			          (unsigned long long)at, n);
		}
	}
}

/* Unscrambling a block at a time (at offsets that are multiples of 8) gives what
 * unscrambling the whole gives. */
Test(spoolrec, scramble_at_matches_whole)
{
	static uint8_t in[10007], whole[10007], parts[10007];
	for (size_t i = 0; i < sizeof in; i++)
		in[i] = (uint8_t)(i * 37 + 11);
	spoolrec_scramble(whole, in, sizeof in, 0xfeedfacecafebeefull);
	for (size_t off = 0; off < sizeof in; off += 4096) {
		size_t n = sizeof in - off < 4096 ? sizeof in - off : 4096;
		spoolrec_scramble_at(parts + off, in + off, n, 0xfeedfacecafebeefull, off);
	}
	cr_assert(memcmp(whole, parts, sizeof in) == 0);
	cr_assert(memcmp(whole, in, sizeof in) != 0);
	spoolrec_scramble(parts, whole, sizeof in, 0xfeedfacecafebeefull);
	cr_assert(memcmp(parts, in, sizeof in) == 0);
}

/* ---- copies (segment reclaim) -------------------------------------------------------- */

static size_t copy_src(uint8_t *out, size_t cap, uint32_t flags, const char *const *rc,
                       size_t n)
{
	size_t len = spoolrec_encode_msg(out, cap, "1QID", 1700000000u, flags, 0x1234567890abcdefull,
	                                 "s@x", "192.0.2.1", rc, n, text_data, sizeof text_data - 1);
	cr_assert_gt(len, 0);
	return len;
}

/* The copy is the record again (qid, nonce, scrambled data, arrival, recipients), its
 * generation one higher, its smtp_srv flags kept; then one RCPT record per run of
 * recipients in one state, open ones left out. Its size is what the size call said. */
Test(spoolrec, copy_round_trip)
{
	const char *rc[3] = { "a@x", "b@x", "c@x" };
	uint8_t src[1024], out[2048];
	size_t len = copy_src(src, sizeof src, 0x5, rc, 3);
	const struct spoolrec_rstate st[3] = {
		{ SPOOLREC_RS_DELIVERED, 1, 0 }, { SPOOLREC_RS_OPEN, 0, 0 },
		{ SPOOLREC_RS_DEFERRED, 3, 1700000600u },
	};
	size_t want = spoolrec_encode_copy(NULL, 0, src, len, st, 3, 1700000100u);
	size_t got = spoolrec_encode_copy(out, sizeof out, src, len, st, 3, 1700000100u);
	cr_assert_eq(got, want);
	cr_assert_eq(got, len + 2 * spoolrec_rcpt_size(4, 1));

	struct spoolrec_msg a, b;
	size_t used;
	enum spoolrec_type type;
	cr_assert_eq(spoolrec_decode(src, len, &used, &type, &a, NULL, NULL), SPOOLREC_OK);
	cr_assert_eq(spoolrec_decode(out, got, &used, &type, &b, NULL, NULL), SPOOLREC_OK);
	cr_assert_eq(type, SPOOLREC_MSG);
	cr_assert_eq(used, len);
	cr_assert_eq(spoolrec_gen(b.flags), 1);
	cr_assert_eq(b.flags & SPOOLREC_FLAGS_MASK, 0x5);
	cr_assert(view_eq(b.qid, "1QID", 4));
	cr_assert_eq(b.arrival, a.arrival);
	cr_assert_eq(b.nonce, a.nonce);
	cr_assert_eq(b.nrcpt, 3);
	cr_assert_eq(b.data.len, a.data.len);
	cr_assert_eq(memcmp(b.data.p, a.data.p, a.data.len), 0);
	cr_assert_eq(memcmp(b.rcpt_block, a.rcpt_block, a.rcpt_block_len), 0);

	struct spoolrec_outcome o;
	size_t at = len;
	cr_assert_eq(spoolrec_outcome(out + at, got - at, &o, NULL), SPOOLREC_OK);
	cr_assert_eq(o.state, SPOOLREC_RS_DELIVERED);
	cr_assert_eq(o.n, 1);
	cr_assert_eq(spoolrec_outcome_idx(&o, 0), 0);
	cr_assert_eq(o.at, 1700000100u);
	at += spoolrec_rcpt_size(4, 1);
	cr_assert_eq(spoolrec_outcome(out + at, got - at, &o, NULL), SPOOLREC_OK);
	cr_assert_eq(o.state, SPOOLREC_RS_DEFERRED);
	cr_assert_eq(o.attempts, 3);
	cr_assert_eq(o.next_try, 1700000600u);
	cr_assert_eq(spoolrec_outcome_idx(&o, 0), 2);

	/* a copy of the copy: generation 2; in place (out may be rec) */
	uint8_t again[2048];
	size_t g2 = spoolrec_encode_copy(again, sizeof again, out, len, st, 3, 1700000200u);
	cr_assert_eq(g2, got);
	cr_assert_eq(spoolrec_decode(again, g2, &used, &type, &b, NULL, NULL), SPOOLREC_OK);
	cr_assert_eq(spoolrec_gen(b.flags), 2);
	memcpy(again, src, len);
	cr_assert_eq(spoolrec_encode_copy(again, sizeof again, again, len, st, 3, 1), got);
	cr_assert_eq(spoolrec_decode(again, len, &used, &type, &b, NULL, NULL), SPOOLREC_OK);
	cr_assert_eq(spoolrec_gen(b.flags), 1);
}

Test(spoolrec, copy_generation_saturates)
{
	const char *rc[1] = { "a@x" };
	uint8_t src[1024], out[2048];
	size_t len = copy_src(src, sizeof src, (uint32_t)SPOOLREC_GEN_MAX << SPOOLREC_GEN_SHIFT | 1u,
	                      rc, 1);
	const struct spoolrec_rstate st[1] = { { 0, 0, 0 } };
	cr_assert_eq(spoolrec_encode_copy(out, sizeof out, src, len, st, 1, 0), len);
	struct spoolrec_msg b;
	cr_assert_eq(spoolrec_decode(out, len, NULL, NULL, &b, NULL, NULL), SPOOLREC_OK);
	cr_assert_eq(spoolrec_gen(b.flags), SPOOLREC_GEN_MAX);
	cr_assert_eq(b.flags & SPOOLREC_FLAGS_MASK, 1);
}

/* Runs of one state are cut at 64 indexes. */
Test(spoolrec, copy_runs)
{
	static char addr[70][16];
	const char *rc[70];
	struct spoolrec_rstate st[70];
	for (int i = 0; i < 70; i++) {
		snprintf(addr[i], sizeof addr[i], "r%d@x", i);
		rc[i] = addr[i];
		st[i] = (struct spoolrec_rstate){ SPOOLREC_RS_DELIVERED, 1, 0 };
	}
	st[69].state = SPOOLREC_RS_BOUNCED;
	static uint8_t src[8192], out[16384];
	size_t len = copy_src(src, sizeof src, 0, rc, 70);
	size_t got = spoolrec_encode_copy(out, sizeof out, src, len, st, 70, 0);
	cr_assert_eq(got, len + spoolrec_rcpt_size(4, 64) + spoolrec_rcpt_size(4, 5) +
	                  spoolrec_rcpt_size(4, 1));
	struct spoolrec_outcome o;
	size_t at = len + spoolrec_rcpt_size(4, 64);
	cr_assert_eq(spoolrec_outcome(out + at, got - at, &o, NULL), SPOOLREC_OK);
	cr_assert_eq(o.n, 5);
	cr_assert_eq(spoolrec_outcome_idx(&o, 0), 64);
}

/* What is refused, writing nothing: not a MSG, not one whole record, the wrong count of
 * states, a state that is not one, a final state with a next try, a short buffer. */
Test(spoolrec, copy_refuses)
{
	const char *rc[2] = { "a@x", "b@x" };
	uint8_t src[1024], out[2048], done[64];
	size_t len = copy_src(src, sizeof src, 0, rc, 2);
	const struct spoolrec_rstate ok[2] = { { 0, 0, 0 }, { SPOOLREC_RS_BOUNCED, 1, 0 } };
	const struct spoolrec_rstate bad1[2] = { { 9, 0, 0 }, { 0, 0, 0 } };
	const struct spoolrec_rstate bad2[2] = { { SPOOLREC_RS_DELIVERED, 1, 5 }, { 0, 0, 0 } };
	size_t dlen = spoolrec_encode_done(done, sizeof done, "1QID");
	memset(out, 0xaa, sizeof out);
	cr_assert_eq(spoolrec_encode_copy(out, sizeof out, done, dlen, ok, 2, 0), 0);
	cr_assert_eq(spoolrec_encode_copy(out, sizeof out, src, len - 1, ok, 2, 0), 0);
	src[len] = 0;
	cr_assert_eq(spoolrec_encode_copy(out, sizeof out, src, len + 1, ok, 2, 0), 0);
	cr_assert_eq(spoolrec_encode_copy(out, sizeof out, src, len, ok, 1, 0), 0);
	cr_assert_eq(spoolrec_encode_copy(out, sizeof out, src, len, bad1, 2, 0), 0);
	cr_assert_eq(spoolrec_encode_copy(out, sizeof out, src, len, bad2, 2, 0), 0);
	size_t need = spoolrec_encode_copy(NULL, 0, src, len, ok, 2, 0);
	cr_assert_eq(spoolrec_encode_copy(out, need - 1, src, len, ok, 2, 0), 0);
	for (size_t i = 0; i < sizeof out; i++)
		cr_assert_eq(out[i], 0xaa, "octet %zu written", i);
	src[20] ^= 1;                                   /* damaged: its CRC fails */
	cr_assert_eq(spoolrec_encode_copy(out, sizeof out, src, len, ok, 2, 0), 0);
}
