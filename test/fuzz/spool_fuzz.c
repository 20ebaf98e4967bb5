/* test/fuzz/spool_fuzz — libFuzzer target for proto/spoolrec: the record decoder and the
 * segment scan.
 *
 * For each input:
 *   1. the input as a segment: spoolrec_decode() at its start (what it reports lies
 *      inside the input; decode_verified agrees; spoolrec_outcome() agrees with it, and a
 *      RCPT it accepts is sane: state known, next_try 0 when final, n >= 1 indexes that
 *      end the record), then spoolrec_scan() over an exact
 *      heap copy (ASan sees a read past the end): the events tile the input in order
 *      without overlap; every RECORD re-decodes OK to the same length and type; a
 *      SKIPPED region is followed by a RECORD, starts where decoding fails and holds no
 *      valid record start; TORN comes only just before END; END is last and all zero.
 *   2. the input as a recipe: N valid records (MSG, DONE, PAD, RCPT, VOID, a newer
 *      build's type, > SPOOLREC_VOID) whose contents the input chooses, each MSG also
 *      encoded with encode_msg_head + data (must be octet for octet the same record), each
 *      RCPT decoded back to what was encoded, each MSG copied forward
 *      (spoolrec_encode_copy, with recipient states the input chooses: the same record
 *      one generation on, then RCPT records saying those states), optionally zeros
 *      written ahead; then
 *      corruptions the input chooses (flipped octets, zeroed runs, overwritten runs, a
 *      record header copied elsewhere, a truncation). Every record whose octets were all
 *      left alone is found at its offset, unless a valid record that was never written
 *      (one embedded in a MSG's data, the fuzzer can craft that) overlaps it: the format
 *      cannot tell those apart, and step 1's invariants still hold for them.
 * Any disagreement aborts. Build: see test/fuzz/targets/spool.mk. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/crc32c.h"
#include "proto/spoolrec.h"
#include "test/fuzz/fuzz_check.h"

#define FZ_MAX_RECORDS 48

/* ---- step 1: arbitrary bytes ----------------------------------------------------------- */

static void fz_view_in(const struct spoolrec_view *v, const uint8_t *p, size_t len)
{
	FZ_CHECK((const uint8_t *)v->p >= p);
	FZ_CHECK(v->len <= len);
	FZ_CHECK((size_t)((const uint8_t *)v->p - p) <= len - v->len);
}

/* A RCPT outcome decoded from the record rec[0..used): every view inside it, sane. */
static void fz_outcome_in(const struct spoolrec_outcome *o, const uint8_t *rec, size_t used)
{
	fz_view_in(&o->qid, rec, used);
	FZ_CHECK(o->state >= SPOOLREC_RS_DELIVERED && o->state <= SPOOLREC_RS_DEFERRED);
	FZ_CHECK(o->state == SPOOLREC_RS_DEFERRED || o->next_try == 0);
	FZ_CHECK(o->n >= 1);
	FZ_CHECK(o->idx >= rec && o->idx <= rec + used);
	FZ_CHECK((size_t)(rec + used - o->idx) == 4 * (size_t)o->n);   /* they end it */
	FZ_CHECK((const uint8_t *)o->qid.p + o->qid.len <= o->idx);
	FZ_CHECK(spoolrec_outcome_idx(o, o->n) == UINT32_MAX);
	(void)spoolrec_outcome_idx(o, o->n - 1);
}

static void fz_decode(const uint8_t *p, size_t len)
{
	size_t used = 0, used2 = 0;
	enum spoolrec_type type = SPOOLREC_NONE, type2 = SPOOLREC_NONE;
	struct spoolrec_msg m, m2;
	struct spoolrec_view dq, dq2;
	enum spoolrec_err err = SPOOLREC_E_NONE;

	enum spoolrec_rc rc = spoolrec_decode(p, len, &used, &type, &m, &dq, &err);
	FZ_CHECK(rc == SPOOLREC_OK || rc == SPOOLREC_AGAIN || rc == SPOOLREC_ERR);
	FZ_CHECK((rc == SPOOLREC_ERR) == (err != SPOOLREC_E_NONE));
	FZ_CHECK(err != SPOOLREC_E_TRUNCATED);

	/* spoolrec_outcome() says what decode says, of a RCPT; of another record, E_TYPE. */
	struct spoolrec_outcome o;
	enum spoolrec_err oerr = SPOOLREC_E_NONE;
	enum spoolrec_rc orc = spoolrec_outcome(p, len, &o, &oerr);
	if (rc != SPOOLREC_OK || type == SPOOLREC_RCPT) {
		FZ_CHECK(orc == rc && oerr == err);
	} else {
		FZ_CHECK(orc == SPOOLREC_ERR && oerr == SPOOLREC_E_TYPE);
	}
	if (rc != SPOOLREC_OK)
		return;
	FZ_CHECK(used >= SPOOLREC_HDR_LEN && used <= len);
	FZ_CHECK(type == SPOOLREC_MSG || type == SPOOLREC_DONE || type == SPOOLREC_PAD ||
	         type == SPOOLREC_RCPT || type == SPOOLREC_VOID || type == SPOOLREC_UNKNOWN);
	FZ_CHECK((type == SPOOLREC_UNKNOWN) == (p[4] > SPOOLREC_VOID));
	if (type == SPOOLREC_MSG) {
		fz_view_in(&m.qid, p, used);
		fz_view_in(&m.sender, p, used);
		fz_view_in(&m.client, p, used);
		fz_view_in(&m.data, p, used);
		uint32_t off = 0, n = 0;
		struct spoolrec_view r;
		while (spoolrec_next_rcpt(&m, &off, &r)) {
			fz_view_in(&r, p, used);
			n++;
		}
		FZ_CHECK(n == m.nrcpt);
	} else if (type == SPOOLREC_DONE || type == SPOOLREC_VOID) {
		fz_view_in(&dq, p, used);
	} else if (type == SPOOLREC_RCPT) {
		fz_view_in(&dq, p, used);
		fz_outcome_in(&o, p, used);
		FZ_CHECK(dq.p == o.qid.p && dq.len == o.qid.len);
	}
	FZ_CHECK(spoolrec_decode_verified(p, len, &used2, &type2, &m2, &dq2, NULL) ==
	         SPOOLREC_OK);
	FZ_CHECK(used2 == used && type2 == type);
	if (type == SPOOLREC_MSG)
		FZ_CHECK(memcmp(&m, &m2, sizeof m) == 0);
	if (type == SPOOLREC_DONE || type == SPOOLREC_VOID || type == SPOOLREC_RCPT)
		FZ_CHECK(dq.p == dq2.p && dq.len == dq2.len);
}

struct fz_ev {
	enum spoolrec_scan_kind kind;
	size_t off, len;
	enum spoolrec_type type;
};

struct fz_log {
	struct fz_ev *ev;           /* grows; kept across inputs */
	size_t n, cap;
	const uint8_t *p;
	size_t len;
};

static struct fz_log fz_log;

static int fz_collect(void *ctx, const struct spoolrec_scan_ev *ev)
{
	struct fz_log *l = ctx;

	FZ_CHECK(ev->off <= l->len && ev->len <= l->len - ev->off);
	if (ev->kind == SPOOLREC_SCAN_RECORD && ev->type == SPOOLREC_MSG) {
		const uint8_t *r = l->p + ev->off;
		fz_view_in(&ev->msg.qid, r, ev->len);
		fz_view_in(&ev->msg.data, r, ev->len);
	} else if (ev->kind == SPOOLREC_SCAN_RECORD &&
	           (ev->type == SPOOLREC_DONE || ev->type == SPOOLREC_VOID)) {
		fz_view_in(&ev->done_qid, l->p + ev->off, ev->len);
	} else if (ev->kind == SPOOLREC_SCAN_RECORD && ev->type == SPOOLREC_RCPT) {
		fz_view_in(&ev->done_qid, l->p + ev->off, ev->len);
		fz_outcome_in(&ev->outcome, l->p + ev->off, ev->len);
	}
	/* No stale outcome on another record. */
	if (ev->kind != SPOOLREC_SCAN_RECORD || ev->type != SPOOLREC_RCPT)
		FZ_CHECK(ev->outcome.idx == NULL && ev->outcome.n == 0);
	if (l->n == l->cap) {
		size_t ncap = l->cap ? l->cap * 2 : 1024;
		struct fz_ev *nev = realloc(l->ev, ncap * sizeof *nev);
		FZ_CHECK(nev != NULL);
		l->ev = nev;
		l->cap = ncap;
	}
	l->ev[l->n++] = (struct fz_ev){ ev->kind, ev->off, ev->len, ev->type };
	return 0;
}

static int fz_valid_at(const uint8_t *p, size_t len, size_t off, size_t *used,
                       enum spoolrec_type *type)
{
	return spoolrec_decode(p + off, len - off, used, type, NULL, NULL, NULL) == SPOOLREC_OK;
}

/* Scans p[0..len) (which must be an exact heap block) into fz_log and checks every
 * invariant of the event stream. */
static void fz_scan(const uint8_t *p, size_t len)
{
	fz_log.n = 0;
	fz_log.p = p;
	fz_log.len = len;
	FZ_CHECK(spoolrec_scan(p, len, fz_collect, &fz_log) == 0);
	FZ_CHECK(fz_log.n >= 1);

	size_t at = 0;
	for (size_t i = 0; i < fz_log.n; i++) {
		const struct fz_ev *e = &fz_log.ev[i];
		size_t used;
		enum spoolrec_type type;
		FZ_CHECK(e->off == at);
		switch (e->kind) {
		case SPOOLREC_SCAN_RECORD:
			FZ_CHECK(fz_valid_at(p, len, e->off, &used, &type));
			FZ_CHECK(used == e->len && type == e->type);
			break;
		case SPOOLREC_SCAN_SKIPPED:
		case SPOOLREC_SCAN_TORN:
			FZ_CHECK(e->len > 0);
			FZ_CHECK(!fz_valid_at(p, len, e->off, &used, &type));
			if (e->kind == SPOOLREC_SCAN_SKIPPED) {
				FZ_CHECK(i + 1 < fz_log.n);
				FZ_CHECK(fz_log.ev[i + 1].kind == SPOOLREC_SCAN_RECORD);
			} else {
				FZ_CHECK(i + 2 == fz_log.n);
				FZ_CHECK(p[e->off + e->len - 1] != 0);   /* zeros after it are END */
			}
			/* No valid record starts inside: resynchronisation takes the first. A
			 * TORN region has none either (else it would be SKIPPED). */
			for (size_t k = e->off + 1; k < e->off + e->len; k++) {
				const uint8_t *m = memmem(p + k, e->off + e->len - k, "RRS1", 4);
				if (!m)
					break;
				k = (size_t)(m - p);
				FZ_CHECK(!fz_valid_at(p, len, k, &used, &type));
			}
			break;
		case SPOOLREC_SCAN_END:
			FZ_CHECK(i + 1 == fz_log.n);
			for (size_t k = e->off; k < len; k++)
				FZ_CHECK(p[k] == 0);
			break;
		default:
			FZ_CHECK(0);
		}
		at += e->len;
	}
	FZ_CHECK(at == len);
}

/* ---- step 2: valid records, chosen damage ------------------------------------------- */

/* The input read as a recipe; reads past its end give zeros. */
struct fz_in {
	const uint8_t *p;
	size_t n;
};

static uint32_t fz_u8(struct fz_in *in)
{
	if (!in->n)
		return 0;
	in->n--;
	return *in->p++;
}

static uint32_t fz_u16(struct fz_in *in)
{
	return fz_u8(in) | fz_u8(in) << 8;
}

static uint32_t fz_u32(struct fz_in *in)
{
	return fz_u16(in) | fz_u16(in) << 16;
}

/* Up to want octets of the input, as a view. */
static const uint8_t *fz_bytes(struct fz_in *in, size_t want, size_t *got)
{
	const uint8_t *p = in->p;

	*got = want < in->n ? want : in->n;
	in->p += *got;
	in->n -= *got;
	return p;
}

/* A NUL-terminated string of up to max octets (NULs in the input end it early). */
static char *fz_str(struct fz_in *in, size_t max)
{
	size_t n;
	const uint8_t *p = fz_bytes(in, fz_u8(in) % (max + 1), &n);
	char *s = malloc(n + 1);
	FZ_CHECK(s != NULL);
	memcpy(s, p, n);
	s[n] = '\0';
	return s;
}

struct fz_rec {
	size_t off, len;
};

struct fz_seg {
	uint8_t *p;
	size_t n, cap;
	struct fz_rec r[FZ_MAX_RECORDS];
	size_t nrec;
};

static uint8_t *fz_room(struct fz_seg *s, size_t n)
{
	if (n > s->cap - s->n) {
		size_t ncap = (s->n + n) * 2;
		uint8_t *np = realloc(s->p, ncap);
		FZ_CHECK(np != NULL);
		s->p = np;
		s->cap = ncap;
	}
	return s->p + s->n;
}

static void fz_added(struct fz_seg *s, size_t n)
{
	s->r[s->nrec++] = (struct fz_rec){ s->n, n };
	s->n += n;
}

/* A copy forward of the MSG record rec (spoolrec_encode_copy) with states the input
 * chooses: its size is what the size call says; it is the record again, generation one
 * higher (at most SPOOLREC_GEN_MAX), the rest of it the same, then RCPT records that say
 * each recipient's state (open ones: none), in order. */
static void fz_copy(const uint8_t *rec, size_t len, size_t nrcpt, struct fz_in *in)
{
	struct spoolrec_rstate st[4] = { { 0, 0, 0 } };
	for (size_t i = 0; i < nrcpt; i++) {
		uint32_t k = fz_u8(in) % 4;
		st[i].state = (uint8_t)k;
		st[i].attempts = fz_u8(in);
		st[i].next_try = k == SPOOLREC_RS_DEFERRED ? fz_u32(in) : 0;
	}
	size_t want = spoolrec_encode_copy(NULL, 0, rec, len, st, (uint32_t)nrcpt, 7);
	struct spoolrec_msg a, b;
	FZ_CHECK(spoolrec_decode(rec, len, NULL, NULL, &a, NULL, NULL) == SPOOLREC_OK);
	if (memchr(a.qid.p, 0, a.qid.len) || a.qid.len >= 256) {
		FZ_CHECK(want == 0);
		return;
	}
	FZ_CHECK(want >= len);
	uint8_t *out = malloc(want);
	FZ_CHECK(out != NULL);
	FZ_CHECK(spoolrec_encode_copy(out, want, rec, len, st, (uint32_t)nrcpt, 7) == want);
	size_t used;
	enum spoolrec_type type;
	FZ_CHECK(spoolrec_decode(out, want, &used, &type, &b, NULL, NULL) == SPOOLREC_OK);
	FZ_CHECK(type == SPOOLREC_MSG && used == len);
	unsigned g = spoolrec_gen(a.flags);
	FZ_CHECK(spoolrec_gen(b.flags) == (g < SPOOLREC_GEN_MAX ? g + 1 : g));
	FZ_CHECK((b.flags & SPOOLREC_FLAGS_MASK) == (a.flags & SPOOLREC_FLAGS_MASK));
	FZ_CHECK(b.arrival == a.arrival && b.nonce == a.nonce && b.nrcpt == a.nrcpt);
	FZ_CHECK(b.data.len == a.data.len && memcmp(b.data.p, a.data.p, a.data.len) == 0);
	size_t at = len;
	for (size_t i = 0; i < nrcpt;) {
		if (st[i].state == SPOOLREC_RS_OPEN) {
			i++;
			continue;
		}
		struct spoolrec_outcome o;
		FZ_CHECK(spoolrec_outcome(out + at, want - at, &o, NULL) == SPOOLREC_OK);
		FZ_CHECK(o.qid.len == a.qid.len && memcmp(o.qid.p, a.qid.p, a.qid.len) == 0);
		for (uint32_t k = 0; k < o.n; k++, i++) {
			FZ_CHECK(spoolrec_outcome_idx(&o, k) == i);
			FZ_CHECK(o.state == st[i].state && o.attempts == st[i].attempts &&
			         o.next_try == st[i].next_try);
		}
		FZ_CHECK(spoolrec_decode(out + at, want - at, &used, NULL, NULL, NULL, NULL) ==
		         SPOOLREC_OK);
		at += used;
	}
	FZ_CHECK(at == want);
	free(out);
}

static void fz_add_msg(struct fz_seg *s, struct fz_in *in)
{
	char *qid = fz_str(in, 40), *sender = fz_str(in, 80), *client = fz_str(in, 60);
	char *rcpt[4];
	size_t nrcpt = fz_u8(in) % 5;
	for (size_t i = 0; i < nrcpt; i++)
		rcpt[i] = fz_str(in, 80);
	size_t datalen;
	const uint8_t *data = fz_bytes(in, fz_u16(in) % 8192, &datalen);
	uint64_t arrival = (uint64_t)fz_u32(in) << 8;
	uint32_t flags = fz_u8(in);
	const char *const *rc = (const char *const *)rcpt;

	size_t want = spoolrec_msg_size(qid, sender, client, rc, nrcpt, datalen);
	size_t head = spoolrec_msg_head_size(qid, sender, client, rc, nrcpt, datalen);
	FZ_CHECK(want > 0 && head + datalen == want);
	uint8_t *w = fz_room(s, want);
	uint64_t nonce = (uint64_t)fz_u32(in) << 32 | fz_u32(in);
	FZ_CHECK(spoolrec_encode_msg(w, want, qid, arrival, flags, nonce, sender, client, rc,
	                             nrcpt, datalen ? data : NULL, datalen) == want);
	/* The vectored encoder writes the same record, its data (scrambled) left where it is;
	 * unscrambled, the data is what was given. */
	uint8_t *h = malloc(head), *stored = malloc(datalen + 1);
	FZ_CHECK(h != NULL && stored != NULL);
	if (datalen)
		spoolrec_scramble(stored, data, datalen, nonce);
	FZ_CHECK(spoolrec_encode_msg_head(h, head, qid, arrival, flags, nonce, sender, client, rc,
	                                  nrcpt, datalen ? stored : NULL, datalen) == head);
	FZ_CHECK(memcmp(h, w, head) == 0);
	FZ_CHECK(datalen == 0 || memcmp(w + head, stored, datalen) == 0);
	if (datalen) {
		spoolrec_scramble(stored, w + head, datalen, nonce);
		FZ_CHECK(memcmp(stored, data, datalen) == 0);
	}
	free(h);
	free(stored);
	fz_copy(w, want, nrcpt, in);
	fz_added(s, want);
	free(qid);
	free(sender);
	free(client);
	for (size_t i = 0; i < nrcpt; i++)
		free(rcpt[i]);
}

static void fz_add_done(struct fz_seg *s, struct fz_in *in)
{
	char *qid = fz_str(in, 40);
	size_t n = SPOOLREC_HDR_LEN + 4 + strlen(qid);
	FZ_CHECK(spoolrec_encode_done(fz_room(s, n), n, qid) == n);
	fz_added(s, n);
	free(qid);
}

/* A RCPT record the input chooses, decoded back to what was encoded; the encoder refuses
 * what is not an outcome. */
static void fz_add_rcpt(struct fz_seg *s, struct fz_in *in)
{
	char *qid = fz_str(in, 40);
	uint8_t state = (uint8_t)(SPOOLREC_RS_DELIVERED + fz_u8(in) % 3);
	uint32_t attempts = fz_u32(in);
	uint64_t next_try = state == SPOOLREC_RS_DEFERRED ? (uint64_t)fz_u32(in) << 8 : 0;
	uint64_t at = (uint64_t)fz_u32(in) << 8 | fz_u8(in);
	uint32_t n = 1 + fz_u8(in) % 64, idx[64];
	for (uint32_t i = 0; i < n; i++)
		idx[i] = fz_u8(in) & 0x80 ? fz_u32(in) : fz_u8(in) % 8;
	size_t want = spoolrec_rcpt_size(strlen(qid), n);
	FZ_CHECK(want == SPOOLREC_HDR_LEN + 4 + strlen(qid) + 25 + 4 * (size_t)n);
	uint8_t *w = fz_room(s, want);
	FZ_CHECK(spoolrec_encode_rcpt(w, want - 1, qid, state, attempts, next_try, at, idx, n) ==
	         0);
	FZ_CHECK(spoolrec_encode_rcpt(w, want, qid, state, attempts, next_try, at, idx, 0) == 0);
	FZ_CHECK(spoolrec_encode_rcpt(w, want, qid, SPOOLREC_RS_OPEN, attempts, 0, at, idx, n) ==
	         0);
	FZ_CHECK(spoolrec_encode_rcpt(w, want, qid, SPOOLREC_RS_DEFERRED + 1 + fz_u8(in) % 252,
	                              attempts, 0, at, idx, n) == 0);
	if (state != SPOOLREC_RS_DEFERRED)
		FZ_CHECK(spoolrec_encode_rcpt(w, want, qid, state, attempts, 1 + at, at, idx, n) ==
		         0);
	FZ_CHECK(spoolrec_encode_rcpt(w, want, qid, state, attempts, next_try, at, idx, n) ==
	         want);
	struct spoolrec_outcome o;
	FZ_CHECK(spoolrec_outcome(w, want, &o, NULL) == SPOOLREC_OK);
	FZ_CHECK(o.qid.len == strlen(qid) && memcmp(o.qid.p, qid, o.qid.len) == 0);
	FZ_CHECK(o.state == state && o.attempts == attempts && o.next_try == next_try &&
	         o.at == at && o.n == n);
	for (uint32_t i = 0; i < n; i++)
		FZ_CHECK(spoolrec_outcome_idx(&o, i) == idx[i]);
	fz_added(s, want);
	free(qid);
}

static void fz_add_void(struct fz_seg *s, struct fz_in *in)
{
	char *qid = fz_str(in, 40);
	size_t n = SPOOLREC_HDR_LEN + 4 + strlen(qid);
	FZ_CHECK(spoolrec_encode_void(fz_room(s, n), n, qid) == n);
	fz_added(s, n);
	free(qid);
}

/* A PAD record of the length the input chooses (the writer fills each commit's last block
 * with one). */
static void fz_add_pad(struct fz_seg *s, struct fz_in *in)
{
	size_t n = SPOOLREC_HDR_LEN + fz_u16(in) % 8192;
	FZ_CHECK(spoolrec_encode_pad(fz_room(s, n), n) == n);
	fz_added(s, n);
}

/* A record of a type this build does not know, with a correct CRC. */
static void fz_add_unknown(struct fz_seg *s, struct fz_in *in)
{
	size_t plen;
	const uint8_t *pl = fz_bytes(in, fz_u16(in) % 4096, &plen);
	uint8_t *w = fz_room(s, SPOOLREC_HDR_LEN + plen);
	uint8_t type = (uint8_t)(SPOOLREC_VOID + 1 + fz_u8(in) % (255 - SPOOLREC_VOID));
	const uint8_t hdr[12] = { 'R', 'R', 'S', '1', type, 0, 0, 0, (uint8_t)plen,
	                          (uint8_t)(plen >> 8), 0, 0 };
	memcpy(w, hdr, 12);
	if (plen)
		memcpy(w + SPOOLREC_HDR_LEN, pl, plen);
	uint32_t crc = crc32c(crc32c(0, w + 4, 8), w + SPOOLREC_HDR_LEN, plen);
	for (int i = 0; i < 4; i++)
		w[12 + i] = (uint8_t)(crc >> (8 * i));
	fz_added(s, SPOOLREC_HDR_LEN + plen);
}

static void fz_damage(struct fz_seg *s, const uint8_t *orig, size_t *len, struct fz_in *in)
{
	size_t ops = fz_u8(in) % 9;

	for (size_t o = 0; o < ops && *len; o++) {
		size_t at = fz_u32(in) % *len;
		size_t run = 1 + fz_u16(in) % 4096;
		if (run > *len - at)
			run = *len - at;
		switch (fz_u8(in) % 5) {
		case 0:
			s->p[at] ^= (uint8_t)(1 + fz_u8(in) % 255);
			break;
		case 1:
			memset(s->p + at, 0, run);
			break;
		case 2: {
			size_t got;
			const uint8_t *b = fz_bytes(in, run, &got);
			memcpy(s->p + at, b, got);
			break;
		}
		case 3: {
			const struct fz_rec *r = &s->r[fz_u8(in) % s->nrec];
			memcpy(s->p + at, orig + r->off, run < SPOOLREC_HDR_LEN ? run : SPOOLREC_HDR_LEN);
			break;
		}
		default:
			*len = at;                          /* torn */
			break;
		}
	}
}

static void fz_recipe(struct fz_in *in)
{
	struct fz_seg s;
	memset(&s, 0, sizeof s);

	size_t nrec = 1 + fz_u8(in) % FZ_MAX_RECORDS;
	for (size_t i = 0; i < nrec; i++) {
		switch (fz_u8(in) % 12) {
		case 0: case 1: case 2: case 3: case 4:
			fz_add_msg(&s, in);
			break;
		case 5: case 6:
			fz_add_done(&s, in);
			break;
		case 7:
			fz_add_pad(&s, in);
			break;
		case 8: case 9:
			fz_add_rcpt(&s, in);
			break;
		case 10:
			fz_add_void(&s, in);
			break;
		default:
			fz_add_unknown(&s, in);
			break;
		}
	}
	size_t data_end = s.n;
	size_t ahead = fz_u8(in) & 1 ? fz_u16(in) : 0;     /* zeros written ahead */
	memset(fz_room(&s, ahead), 0, ahead);
	s.n += ahead;

	uint8_t *orig = malloc(s.n ? s.n : 1);
	FZ_CHECK(orig != NULL);
	memcpy(orig, s.p, s.n);
	size_t len = s.n;
	fz_damage(&s, orig, &len, in);

	uint8_t *seg = malloc(len ? len : 1);          /* exact size: ASan sees over-reads */
	FZ_CHECK(seg != NULL);
	memcpy(seg, s.p, len);
	fz_scan(seg, len);

	/* The model: intact records are found, unless shadowed by one never written. */
	size_t e = 0;
	for (size_t k = 0; k < s.nrec; k++) {
		const struct fz_rec *r = &s.r[k];
		int intact = r->off + r->len <= len && r->off + r->len <= data_end &&
		             memcmp(seg + r->off, orig + r->off, r->len) == 0;
		while (e < fz_log.n && fz_log.ev[e].off + fz_log.ev[e].len <= r->off)
			e++;
		int found = e < fz_log.n && fz_log.ev[e].kind == SPOOLREC_SCAN_RECORD &&
		            fz_log.ev[e].off == r->off && fz_log.ev[e].len == r->len;
		if (!intact || found)
			continue;
		/* Missing: some reported record overlapping it must be one never written. */
		int shadowed = 0;
		for (size_t j = e; j < fz_log.n && fz_log.ev[j].off < r->off + r->len; j++) {
			if (fz_log.ev[j].kind != SPOOLREC_SCAN_RECORD)
				continue;
			int written = 0;
			for (size_t q = 0; q < s.nrec; q++)
				written |= s.r[q].off == fz_log.ev[j].off;
			shadowed |= !written;
		}
		if (!shadowed)
			fprintf(stderr, "intact record %zu at %zu (%zu octets) not found\n", k, r->off,
			        r->len);
		FZ_CHECK(shadowed);
	}
	free(seg);
	free(orig);
	free(s.p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *copy = malloc(size ? size : 1);
	FZ_CHECK(copy != NULL);
	if (size)
		memcpy(copy, data, size);
	fz_decode(copy, size);
	fz_scan(copy, size);
	free(copy);

	struct fz_in in = { data, size };
	fz_recipe(&in);
	return 0;
}
