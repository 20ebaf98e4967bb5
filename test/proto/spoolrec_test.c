/* test/proto/spoolrec_test — spool records: round trips, every prefix, every single-byte
 * corruption, records back to back (split at every offset), bad headers and payloads.
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
	uint8_t b[1024];
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

static void init_many(void)
{
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
	size_t got_n = spoolrec_encode_msg(buf, want_n, c->qid, c->arrival, c->flags,
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
	cr_assert(view_eq(m->data, c->data, c->datalen), "%s: data", c->name);

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
	wstr(&w, "DATA");
	size_t want_n;
	uint8_t *want = seal(SPOOLREC_MSG, w.b, w.n, &want_n);

	uint8_t got[256];
	size_t got_n = spoolrec_encode_msg(got, sizeof got, "QID7", 0x0102030405060708ull,
	                                   0xA0B0C0D0u, "s@x", "192.0.2.7", rcpt, 2,
	                                   (const uint8_t *)"DATA", 4);
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
		size_t got_n = spoolrec_encode_msg(buf, cap, c->qid, c->arrival, c->flags,
		                                   c->sender, c->client, c->rcpt, c->nrcpt,
		                                   c->data, c->datalen);
		cr_assert_eq(got_n, 0, "cap %zu", cap);
		cr_assert_eq(spoolrec_encode_done(buf, cap < 20 ? cap : 19, "QQQQ"), 0);
		free(buf);
	}
}

/* ---- every prefix, every corruption -------------------------------------------------- */

/* All the records the corruption tests run over: each MSG case and a few DONE. */
static uint8_t *record_n(size_t k, size_t *n)
{
	if (k < ARRAY_LEN(msg_cases))
		return encode_case(&msg_cases[k], n);
	k -= ARRAY_LEN(msg_cases);
	if (k >= ARRAY_LEN(done_cases))
		return NULL;
	const char *qid = done_cases[k].qid;
	*n = SPOOLREC_HDR_LEN + 4 + strlen(qid);
	uint8_t *buf = malloc(*n);
	cr_assert_not_null(buf);
	cr_assert_eq(spoolrec_encode_done(buf, *n, qid), *n);
	return buf;
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
		/* The other valid type passes the header check and fails the CRC, which
		 * covers the type octet. */
		*want_err = (t == SPOOLREC_MSG || t == SPOOLREC_DONE) ? SPOOLREC_E_CRC
		                                                      : SPOOLREC_E_TYPE;
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

/* ---- records back to back ------------------------------------------------------------ */

struct stream {
	uint8_t *p;
	size_t n;
	size_t rec_len[3];
	enum spoolrec_type rec_type[3];
};

static void build_stream(struct stream *s)
{
	size_t n0, n1, n2;
	uint8_t *r0 = encode_case(&msg_cases[1], &n0);
	uint8_t *r1 = record_n(ARRAY_LEN(msg_cases) + 2, &n1);   /* DONE 4Xb9kQ1 */
	uint8_t *r2 = encode_case(&msg_cases[4], &n2);
	s->n = n0 + n1 + n2;
	s->p = malloc(s->n);
	cr_assert_not_null(s->p);
	memcpy(s->p, r0, n0);
	memcpy(s->p + n0, r1, n1);
	memcpy(s->p + n0 + n1, r2, n2);
	s->rec_len[0] = n0;
	s->rec_len[1] = n1;
	s->rec_len[2] = n2;
	s->rec_type[0] = SPOOLREC_MSG;
	s->rec_type[1] = SPOOLREC_DONE;
	s->rec_type[2] = SPOOLREC_MSG;
	free(r0);
	free(r1);
	free(r2);
}

Test(spoolrec, records_back_to_back)
{
	struct stream s;
	build_stream(&s);
	size_t off = 0;
	for (int i = 0; i < 3; i++) {
		size_t got_used = 0;
		enum spoolrec_type got_type = SPOOLREC_NONE;
		struct spoolrec_msg m;
		struct spoolrec_view dq;
		cr_assert_eq(spoolrec_decode(s.p + off, s.n - off, &got_used, &got_type, &m, &dq,
		                             NULL), SPOOLREC_OK, "record %d", i);
		cr_assert_eq(got_used, s.rec_len[i], "record %d", i);
		cr_assert_eq(got_type, s.rec_type[i], "record %d", i);
		if (i == 0)
			check_msg(&msg_cases[1], &m);
		else if (i == 1)
			cr_assert(view_eq(dq, "4Xb9kQ1", 7));
		else
			check_msg(&msg_cases[4], &m);
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
		cr_assert_lt(*ngot, 3);
		got[(*ngot)++] = used;
		*pos += used;
	}
}

Test(spoolrec, stream_split_at_every_offset)
{
	struct stream s;
	build_stream(&s);
	for (size_t split = 0; split <= s.n; split++) {
		size_t got[3], ngot = 0, pos = 0;
		uint8_t *first = dup_exact(s.p, split);
		drain(first, split, &pos, got, &ngot);
		free(first);
		drain(s.p, s.n, &pos, got, &ngot);
		cr_assert_eq(pos, s.n, "split %zu", split);
		cr_assert_eq(ngot, 3, "split %zu", split);
		for (int i = 0; i < 3; i++)
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
	{ "type 3", { 'R', 'R', 'S', '1', 3 }, 5, SPOOLREC_ERR, SPOOLREC_E_TYPE },
	{ "type 0xff", { 'R', 'R', 'S', '1', 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 }, 16,
	  SPOOLREC_ERR, SPOOLREC_E_TYPE },
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
};

static uint8_t build_payload(enum pl_kind k, struct wbuf *w)
{
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
		wstr(w, "D");
		return SPOOLREC_MSG;
	}
	if (k == PL_MSG_RCPT_ONE_TOO_LONG) {
		/* 8 octets follow the length ("r@x", then data "D" as 4+1): claim 9. */
		w32(w, 9);
		wbytes(w, "r@x", 3);
		wstr(w, "D");
		return SPOOLREC_MSG;
	}
	wstr(w, "r@x");
	if (k == PL_MSG_NO_DATA)
		return SPOOLREC_MSG;
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
		enum spoolrec_rc got_rc = spoolrec_decode(rec, n, &got_used, NULL, &m, &dq,
		                                          &got_err);
		cr_assert_eq(got_rc, c->want_rc, "%s: got rc %d (%s)", c->name, got_rc,
		             spoolrec_strerror(got_err));
		if (c->want_rc == SPOOLREC_OK) {
			cr_assert_eq(got_used, n, "%s", c->name);
			cr_assert_eq(got_err, SPOOLREC_E_NONE);
		} else {
			cr_assert_eq(got_err, SPOOLREC_E_PAYLOAD, "%s: got %s", c->name,
			             spoolrec_strerror(got_err));
		}
		free(rec);
	}
}

/* ---- the rest of the API ------------------------------------------------------------- */

Test(spoolrec, strerror_names_every_error)
{
	static const enum spoolrec_err all[] = {
		SPOOLREC_E_NONE, SPOOLREC_E_MAGIC, SPOOLREC_E_TYPE, SPOOLREC_E_LENGTH,
		SPOOLREC_E_CRC, SPOOLREC_E_PAYLOAD,
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
