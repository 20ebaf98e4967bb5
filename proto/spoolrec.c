/* proto/spoolrec — encode and decode spool segment records. Pure: bytes in, bytes out.
 *
 * Record (all integers little-endian, no alignment anywhere):
 *   0  magic "RRS1"            4
 *   4  type                    1   SPOOLREC_MSG, _DONE, _PAD, _RCPT, _VOID (others: a newer build's)
 *   5  reserved                3   zero
 *   8  payload length          4   <= SPOOLREC_MAX_PAYLOAD
 *   12 CRC-32C                 4   over bytes 4..11, then the payload
 *   16 payload                 length
 *
 * A string ("str" below) is a u32 length followed by that many octets, no NUL.
 *
 * MSG payload, in this order, and nothing after it:
 *   str qid | u64 arrival (unix seconds) | u32 flags (enum smtp_srv_flag) |
 *   str sender ("" for the null sender) | str client | u32 nrcpt |
 *   nrcpt x str recipient | u64 nonce | str data (scrambled with the nonce)
 *
 * PAD payload: zeros (the record fills a commit to the block size).
 *
 * DONE payload, and VOID payload:
 *   str qid
 *
 * RCPT payload, in this order, and nothing after it:
 *   str qid | u8 state (SPOOLREC_RS_DELIVERED 1, _BOUNCED 2, _DEFERRED 3) |
 *   u32 attempts | u64 next_try (unix seconds; 0 for a final state, and only then) |
 *   u64 at (unix seconds of the attempt) | u32 n (>= 1) | n x u32 recipient index
 * so that n is also (payload length - 29 - qid length) / 4: the indexes fill the payload
 * exactly.
 *
 * Decoding trusts nothing: the magic, type (non-zero), reserved octets and length are
 * checked as soon as they are present (so a damaged header is ERR even when the record is
 * short), the CRC before any payload field is looked at, and then every length inside the
 * payload against what remains of it; the last field must end exactly at the payload's
 * end. A type octet this build does not know is not an error: such a record is checked
 * up to its CRC and reported as SPOOLREC_UNKNOWN. AGAIN is only returned for a buffer that
 * is a consistent beginning of a record. Integers are assembled from bytes, so unaligned
 * input is fine.
 *
 * The scan (spoolrec_scan, at the end) is where damage is told apart from a torn tail and
 * from space written ahead; see proto/spoolrec.h for its events. */
#include "proto/spoolrec.h"

#include <string.h>

#include "proto/crc32c.h"

static const uint8_t spoolrec_magic[4] = { 'R', 'R', 'S', '1' };

static void spoolrec_put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static void spoolrec_put64(uint8_t *p, uint64_t v)
{
	spoolrec_put32(p, (uint32_t)v);
	spoolrec_put32(p + 4, (uint32_t)(v >> 32));
}

static uint32_t spoolrec_get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static uint64_t spoolrec_get64(const uint8_t *p)
{
	return (uint64_t)spoolrec_get32(p) | (uint64_t)spoolrec_get32(p + 4) << 32;
}

const char *spoolrec_strerror(enum spoolrec_err e)
{
	switch (e) {
	case SPOOLREC_E_NONE:    return "no error";
	case SPOOLREC_E_MAGIC:   return "bad record magic";
	case SPOOLREC_E_TYPE:    return "bad record type or reserved octets";
	case SPOOLREC_E_LENGTH:  return "record payload too long";
	case SPOOLREC_E_CRC:     return "record checksum mismatch";
	case SPOOLREC_E_PAYLOAD: return "record payload inconsistent with its length";
	case SPOOLREC_E_TRUNCATED: return "record runs past the end of the segment";
	}
	return "unknown spool record error";
}

/* ---- encoding ---------------------------------------------------------------------- */

/* Adds a string field of n octets to *sum; 0 when it cannot be encoded. */
static int spoolrec_add_str(size_t *sum, size_t n)
{
	if (n > UINT32_MAX || n > SPOOLREC_MAX_PAYLOAD - *sum ||
	    4 > SPOOLREC_MAX_PAYLOAD - *sum - n)
		return 0;
	*sum += 4 + n;
	return 1;
}

static size_t spoolrec_slen(const char *s)
{
	return s ? strlen(s) : 0;
}

/* Payload length of a MSG record, or 0 when it would exceed SPOOLREC_MAX_PAYLOAD (a MSG
 * payload is never empty: its fixed fields alone take 32 octets). */
static size_t spoolrec_msg_payload(const char *qid, const char *sender, const char *client,
                                   const char *const *rcpt, size_t nrcpt, size_t datalen)
{
	size_t sum = 8 + 4 + 4 + 8;     /* arrival, flags, nrcpt, nonce */

	if (nrcpt > UINT32_MAX)
		return 0;
	if (!spoolrec_add_str(&sum, spoolrec_slen(qid)) ||
	    !spoolrec_add_str(&sum, spoolrec_slen(sender)) ||
	    !spoolrec_add_str(&sum, spoolrec_slen(client)) ||
	    !spoolrec_add_str(&sum, datalen))
		return 0;
	for (size_t i = 0; i < nrcpt; i++)
		if (!spoolrec_add_str(&sum, spoolrec_slen(rcpt[i])))
			return 0;
	return sum;
}

/* Returns 0 when the MSG cannot be encoded (a field over 4 GiB or the payload over
 * SPOOLREC_MAX_PAYLOAD); a record is never that short otherwise. */
size_t spoolrec_msg_size(const char *qid, const char *sender, const char *client,
                         const char *const *rcpt, size_t nrcpt, size_t datalen)
{
	size_t plen = spoolrec_msg_payload(qid, sender, client, rcpt, nrcpt, datalen);

	return plen ? SPOOLREC_HDR_LEN + plen : 0;
}

size_t spoolrec_msg_head_size(const char *qid, const char *sender, const char *client,
                              const char *const *rcpt, size_t nrcpt, size_t datalen)
{
	size_t plen = spoolrec_msg_payload(qid, sender, client, rcpt, nrcpt, datalen);

	return plen ? SPOOLREC_HDR_LEN + plen - datalen : 0;
}

static uint8_t *spoolrec_put_str(uint8_t *w, const void *s, size_t n)
{
	spoolrec_put32(w, (uint32_t)n);
	if (n)
		memcpy(w + 4, s, n);
	return w + 4 + n;
}

/* The header's first 12 octets; returns the CRC over octets 4..11, for the payload's CRC
 * to continue (octets 12..15 are the caller's). */
static uint32_t spoolrec_head(uint8_t *out, enum spoolrec_type type, size_t plen)
{
	memcpy(out, spoolrec_magic, 4);
	out[4] = (uint8_t)type;
	out[5] = out[6] = out[7] = 0;
	spoolrec_put32(out + 8, (uint32_t)plen);
	return crc32c(0, out + 4, 8);
}

/* Writes the header of a record whose payload is out[16..16+inl) followed by
 * tail[0..plen-inl) (tail may be elsewhere: the CRC is continued over it). */
static void spoolrec_seal(uint8_t *out, enum spoolrec_type type, size_t plen, size_t inl,
                          const uint8_t *tail)
{
	uint32_t crc = spoolrec_head(out, type, plen);
	crc = crc32c(crc, out + SPOOLREC_HDR_LEN, inl);
	if (plen > inl)
		crc = crc32c(crc, tail, plen - inl);
	spoolrec_put32(out + 12, crc);
}

void spoolrec_scramble(uint8_t *dst, const uint8_t *src, size_t n, uint64_t nonce)
{
	spoolrec_scramble_at(dst, src, n, nonce, 0);
}

void spoolrec_scramble_at(uint8_t *dst, const uint8_t *src, size_t n, uint64_t nonce,
                          uint64_t at)
{
	size_t i = 0;
	uint64_t k = nonce + (at / 8) * 0x9E3779B97F4A7C15ull;
	typedef uint64_t v4u64 __attribute__((vector_size(32)));

	/* word w of the stream (little-endian): nonce + (w + 1) * golden — not to be guessed
	 * without the nonce, and one add and one XOR per eight octets. Four words at a time
	 * first (the compiler's vectors: two 16-octet operations without AVX): this pass runs
	 * over every octet of every message stored. */
	if (n >= 32) {
		const uint64_t g = 0x9E3779B97F4A7C15ull;
		v4u64 kv = { k + g, k + 2 * g, k + 3 * g, k + 4 * g };
		const v4u64 step = { 4 * g, 4 * g, 4 * g, 4 * g };
		for (; i + 32 <= n; i += 32) {
			v4u64 x;
			memcpy(&x, src + i, 32);
			x ^= kv;
			memcpy(dst + i, &x, 32);
			kv += step;
		}
		k += (i / 8) * g;
	}
	for (; i + 8 <= n; i += 8) {
		uint64_t x;
		k += 0x9E3779B97F4A7C15ull;
		memcpy(&x, src + i, 8);
		x ^= k;
		memcpy(dst + i, &x, 8);
	}
	if (i < n) {
		k += 0x9E3779B97F4A7C15ull;
		for (size_t j = 0; i < n; i++, j++)
			dst[i] = src[i] ^ (uint8_t)(k >> (8 * j));
	}
}

size_t spoolrec_encode_msg_head(uint8_t *out, size_t cap, const char *qid, uint64_t arrival,
                                uint32_t flags, uint64_t nonce, const char *sender,
                                const char *client, const char *const *rcpt, size_t nrcpt,
                                const uint8_t *data, size_t datalen)
{
	size_t plen = spoolrec_msg_payload(qid, sender, client, rcpt, nrcpt, datalen);

	if (!plen || cap < SPOOLREC_HDR_LEN || cap - SPOOLREC_HDR_LEN < plen - datalen)
		return 0;
	uint8_t *w = out + SPOOLREC_HDR_LEN;
	w = spoolrec_put_str(w, qid, spoolrec_slen(qid));
	spoolrec_put64(w, arrival);
	spoolrec_put32(w + 8, flags);
	w += 12;
	w = spoolrec_put_str(w, sender, spoolrec_slen(sender));
	w = spoolrec_put_str(w, client, spoolrec_slen(client));
	spoolrec_put32(w, (uint32_t)nrcpt);
	w += 4;
	for (size_t i = 0; i < nrcpt; i++)
		w = spoolrec_put_str(w, rcpt[i], spoolrec_slen(rcpt[i]));
	spoolrec_put64(w, nonce);
	w += 8;
	spoolrec_put32(w, (uint32_t)datalen);
	w += 4;
	spoolrec_seal(out, SPOOLREC_MSG, plen, plen - datalen, data);
	return (size_t)(w - out);
}

/* The head, then the data copied behind it: one code path for both encoders. */
size_t spoolrec_encode_msg(uint8_t *out, size_t cap, const char *qid, uint64_t arrival,
                           uint32_t flags, uint64_t nonce, const char *sender,
                           const char *client, const char *const *rcpt, size_t nrcpt,
                           const uint8_t *data, size_t datalen)
{
	size_t total = spoolrec_msg_size(qid, sender, client, rcpt, nrcpt, datalen);

	if (!total || cap < total)
		return 0;
	size_t head = total - datalen;
	spoolrec_scramble(out + head, data, datalen, nonce);   /* the data as it is stored */
	spoolrec_encode_msg_head(out, cap, qid, arrival, flags, nonce, sender, client, rcpt,
	                         nrcpt, out + head, datalen);
	return total;
}

size_t spoolrec_pad_header(uint8_t hdr[SPOOLREC_HDR_LEN], size_t len)
{
	static const uint8_t zeros[256];

	if (len < SPOOLREC_HDR_LEN || len - SPOOLREC_HDR_LEN > SPOOLREC_MAX_PAYLOAD)
		return 0;
	size_t plen = len - SPOOLREC_HDR_LEN;
	uint32_t crc = spoolrec_head(hdr, SPOOLREC_PAD, plen);
	for (size_t left = plen; left > 0;) {
		size_t n = left < sizeof zeros ? left : sizeof zeros;
		crc = crc32c(crc, zeros, n);
		left -= n;
	}
	spoolrec_put32(hdr + 12, crc);
	return len;
}

size_t spoolrec_encode_pad(uint8_t *out, size_t len)
{
	if (!spoolrec_pad_header(out, len))
		return 0;
	memset(out + SPOOLREC_HDR_LEN, 0, len - SPOOLREC_HDR_LEN);
	return len;
}

/* A record whose payload is the qid alone (DONE, VOID). Returns 0, writing nothing, when
 * cap is too small. */
static size_t spoolrec_encode_qid(uint8_t *out, size_t cap, enum spoolrec_type type,
                                  const char *qid)
{
	size_t plen = 0;

	if (!spoolrec_add_str(&plen, spoolrec_slen(qid)) || cap < SPOOLREC_HDR_LEN ||
	    cap - SPOOLREC_HDR_LEN < plen)
		return 0;
	spoolrec_put_str(out + SPOOLREC_HDR_LEN, qid, spoolrec_slen(qid));
	spoolrec_seal(out, type, plen, plen, NULL);
	return SPOOLREC_HDR_LEN + plen;
}

size_t spoolrec_encode_done(uint8_t *out, size_t cap, const char *qid)
{
	return spoolrec_encode_qid(out, cap, SPOOLREC_DONE, qid);
}

size_t spoolrec_encode_void(uint8_t *out, size_t cap, const char *qid)
{
	return spoolrec_encode_qid(out, cap, SPOOLREC_VOID, qid);
}

/* A state octet and next_try that go together: a known state, and next_try 0 exactly
 * when the state is final. */
static int spoolrec_state_ok(uint32_t state, uint64_t next_try)
{
	switch (state) {
	case SPOOLREC_RS_DELIVERED:
	case SPOOLREC_RS_BOUNCED:
		return next_try == 0;
	case SPOOLREC_RS_DEFERRED:
		return 1;
	default:
		return 0;
	}
}

#define SPOOLREC_RCPT_FIXED (1 + 4 + 8 + 8 + 4)   /* state, attempts, next_try, at, n */

/* Payload length of a RCPT record, or 0 when it cannot be encoded. */
static size_t spoolrec_rcpt_payload(size_t qidlen, uint32_t n)
{
	size_t sum = 0;

	if (n == 0 || !spoolrec_add_str(&sum, qidlen) ||
	    sum > SPOOLREC_MAX_PAYLOAD - SPOOLREC_RCPT_FIXED)
		return 0;
	sum += SPOOLREC_RCPT_FIXED;
	if (n > (SPOOLREC_MAX_PAYLOAD - sum) / 4)
		return 0;
	return sum + 4 * (size_t)n;
}

size_t spoolrec_rcpt_size(size_t qidlen, uint32_t n)
{
	size_t plen = spoolrec_rcpt_payload(qidlen, n);

	return plen ? SPOOLREC_HDR_LEN + plen : 0;
}

size_t spoolrec_encode_rcpt(uint8_t *out, size_t cap, const char *qid, uint8_t state,
                            uint32_t attempts, uint64_t next_try, uint64_t at,
                            const uint32_t *idx, uint32_t n)
{
	size_t qlen = spoolrec_slen(qid);
	size_t plen = spoolrec_rcpt_payload(qlen, n);

	if (!plen || !idx || !spoolrec_state_ok(state, next_try) || cap < SPOOLREC_HDR_LEN ||
	    cap - SPOOLREC_HDR_LEN < plen)
		return 0;
	uint8_t *w = spoolrec_put_str(out + SPOOLREC_HDR_LEN, qid, qlen);
	*w++ = state;
	spoolrec_put32(w, attempts);
	spoolrec_put64(w + 4, next_try);
	spoolrec_put64(w + 12, at);
	spoolrec_put32(w + 20, n);
	w += 24;
	for (uint32_t i = 0; i < n; i++, w += 4)
		spoolrec_put32(w, idx[i]);
	spoolrec_seal(out, SPOOLREC_RCPT, plen, plen, NULL);
	return SPOOLREC_HDR_LEN + plen;
}

/* ---- decoding ---------------------------------------------------------------------- */

/* A read cursor over the payload; every take checks what is left first. */
struct spoolrec_cur {
	const uint8_t *p;
	size_t left;
};

static int spoolrec_take32(struct spoolrec_cur *c, uint32_t *v)
{
	if (c->left < 4)
		return 0;
	*v = spoolrec_get32(c->p);
	c->p += 4;
	c->left -= 4;
	return 1;
}

static int spoolrec_take64(struct spoolrec_cur *c, uint64_t *v)
{
	if (c->left < 8)
		return 0;
	*v = spoolrec_get64(c->p);
	c->p += 8;
	c->left -= 8;
	return 1;
}

static int spoolrec_take_str(struct spoolrec_cur *c, struct spoolrec_view *v)
{
	uint32_t n;

	if (!spoolrec_take32(c, &n))
		return 0;
	if (n > c->left) {
		c->p -= 4;      /* leave the cursor where it was */
		c->left += 4;
		return 0;
	}
	v->p = (const char *)c->p;
	v->len = n;
	c->p += n;
	c->left -= n;
	return 1;
}

static int spoolrec_parse_msg(const uint8_t *pl, size_t plen, struct spoolrec_msg *m)
{
	struct spoolrec_cur c = { pl, plen };
	struct spoolrec_view r;

	if (!spoolrec_take_str(&c, &m->qid) || !spoolrec_take64(&c, &m->arrival) ||
	    !spoolrec_take32(&c, &m->flags) || !spoolrec_take_str(&c, &m->sender) ||
	    !spoolrec_take_str(&c, &m->client) || !spoolrec_take32(&c, &m->nrcpt))
		return 0;
	/* Each recipient takes at least its 4-octet length: refuse an impossible count
	 * before walking it. */
	if (m->nrcpt > c.left / 4)
		return 0;
	m->rcpt_block = c.p;
	for (uint32_t i = 0; i < m->nrcpt; i++)
		if (!spoolrec_take_str(&c, &r))
			return 0;
	m->rcpt_block_len = (uint32_t)(c.p - m->rcpt_block);
	if (!spoolrec_take64(&c, &m->nonce) || !spoolrec_take_str(&c, &m->data))
		return 0;
	return c.left == 0;
}

static int spoolrec_parse_done(const uint8_t *pl, size_t plen, struct spoolrec_view *qid)
{
	struct spoolrec_cur c = { pl, plen };

	return spoolrec_take_str(&c, qid) && c.left == 0;
}

static int spoolrec_parse_rcpt(const uint8_t *pl, size_t plen, struct spoolrec_outcome *o)
{
	struct spoolrec_cur c = { pl, plen };

	if (!spoolrec_take_str(&c, &o->qid) || c.left < 1)
		return 0;
	o->state = *c.p;
	c.p++;
	c.left--;
	if (!spoolrec_take32(&c, &o->attempts) || !spoolrec_take64(&c, &o->next_try) ||
	    !spoolrec_take64(&c, &o->at) || !spoolrec_take32(&c, &o->n))
		return 0;
	if (!spoolrec_state_ok(o->state, o->next_try))
		return 0;
	/* n >= 1 indexes, and exactly what is left (no multiplication to overflow). */
	if (o->n == 0 || c.left % 4 != 0 || c.left / 4 != o->n)
		return 0;
	o->idx = c.p;
	return 1;
}

uint32_t spoolrec_outcome_idx(const struct spoolrec_outcome *o, uint32_t i)
{
	if (!o->idx || i >= o->n)
		return UINT32_MAX;
	return spoolrec_get32(o->idx + 4 * (size_t)i);
}

/* Both decoders: check_crc is 0 only for bytes already verified. */
static enum spoolrec_rc spoolrec_decode_at(const uint8_t *p, size_t len, int check_crc,
                                           size_t *used, enum spoolrec_type *type,
                                           struct spoolrec_msg *msg,
                                           struct spoolrec_view *done_qid,
                                           struct spoolrec_outcome *outcome,
                                           enum spoolrec_err *err)
{
	enum spoolrec_err e;
	uint32_t plen = 0;
	struct spoolrec_msg m;
	struct spoolrec_view dq;
	struct spoolrec_outcome oc;

	if (err)
		*err = SPOOLREC_E_NONE;
	if (len == 0)
		return SPOOLREC_AGAIN;

	/* Header fields, each as soon as it is present. */
	if (memcmp(p, spoolrec_magic, len < 4 ? len : 4) != 0) {
		e = SPOOLREC_E_MAGIC;
		goto fail;
	}
	if (len > 4 && p[4] == SPOOLREC_NONE) {
		e = SPOOLREC_E_TYPE;
		goto fail;
	}
	for (size_t i = 5; i < 8 && i < len; i++) {
		if (p[i] != 0) {
			e = SPOOLREC_E_TYPE;
			goto fail;
		}
	}
	if (len >= 12) {
		plen = spoolrec_get32(p + 8);
		if (plen > SPOOLREC_MAX_PAYLOAD) {
			e = SPOOLREC_E_LENGTH;
			goto fail;
		}
	}
	if (len < SPOOLREC_HDR_LEN || len - SPOOLREC_HDR_LEN < plen)
		return SPOOLREC_AGAIN;

	const uint8_t *pl = p + SPOOLREC_HDR_LEN;
	if (check_crc && crc32c(crc32c(0, p + 4, 8), pl, plen) != spoolrec_get32(p + 12)) {
		e = SPOOLREC_E_CRC;
		goto fail;
	}

	enum spoolrec_type t = SPOOLREC_UNKNOWN;
	if (p[4] == SPOOLREC_MSG) {
		t = SPOOLREC_MSG;
		memset(&m, 0, sizeof m);
		if (!spoolrec_parse_msg(pl, plen, &m)) {
			e = SPOOLREC_E_PAYLOAD;
			goto fail;
		}
		if (msg)
			*msg = m;
	} else if (p[4] == SPOOLREC_PAD) {
		t = SPOOLREC_PAD;               /* filler: its CRC holds, nothing to read */
	} else if (p[4] == SPOOLREC_DONE || p[4] == SPOOLREC_VOID) {
		t = p[4] == SPOOLREC_DONE ? SPOOLREC_DONE : SPOOLREC_VOID;
		if (!spoolrec_parse_done(pl, plen, &dq)) {
			e = SPOOLREC_E_PAYLOAD;
			goto fail;
		}
		if (done_qid)
			*done_qid = dq;
	} else if (p[4] == SPOOLREC_RCPT) {
		t = SPOOLREC_RCPT;
		memset(&oc, 0, sizeof oc);
		if (!spoolrec_parse_rcpt(pl, plen, &oc)) {
			e = SPOOLREC_E_PAYLOAD;
			goto fail;
		}
		if (done_qid)
			*done_qid = oc.qid;
		if (outcome)
			*outcome = oc;
	}
	/* Otherwise a newer build's record: its CRC holds, its payload is not ours to read. */
	if (type)
		*type = t;
	if (used)
		*used = SPOOLREC_HDR_LEN + (size_t)plen;
	return SPOOLREC_OK;

fail:
	if (err)
		*err = e;
	return SPOOLREC_ERR;
}

enum spoolrec_rc spoolrec_decode(const uint8_t *p, size_t len, size_t *used,
                                 enum spoolrec_type *type, struct spoolrec_msg *msg,
                                 struct spoolrec_view *done_qid, enum spoolrec_err *err)
{
	return spoolrec_decode_at(p, len, 1, used, type, msg, done_qid, NULL, err);
}

enum spoolrec_rc spoolrec_decode_verified(const uint8_t *p, size_t len, size_t *used,
                                          enum spoolrec_type *type, struct spoolrec_msg *msg,
                                          struct spoolrec_view *done_qid,
                                          enum spoolrec_err *err)
{
	return spoolrec_decode_at(p, len, 0, used, type, msg, done_qid, NULL, err);
}

enum spoolrec_rc spoolrec_outcome(const uint8_t *rec, size_t len, struct spoolrec_outcome *o,
                                  enum spoolrec_err *err)
{
	enum spoolrec_type t = SPOOLREC_NONE;
	struct spoolrec_outcome oc;
	enum spoolrec_rc rc = spoolrec_decode_at(rec, len, 1, NULL, &t, NULL, NULL, &oc, err);

	if (rc != SPOOLREC_OK)
		return rc;
	if (t != SPOOLREC_RCPT) {
		if (err)
			*err = SPOOLREC_E_TYPE;
		return SPOOLREC_ERR;
	}
	if (o)
		*o = oc;
	return SPOOLREC_OK;
}

int spoolrec_next_rcpt(const struct spoolrec_msg *m, uint32_t *off, struct spoolrec_view *r)
{
	uint32_t o = *off;

	/* Bounds-checked again: the message may not come from spoolrec_decode(). */
	if (!m->rcpt_block || o > m->rcpt_block_len || m->rcpt_block_len - o < 4)
		return 0;
	uint32_t n = spoolrec_get32(m->rcpt_block + o);
	if (n > m->rcpt_block_len - o - 4)
		return 0;
	r->p = (const char *)(m->rcpt_block + o + 4);
	r->len = n;
	*off = o + 4 + n;
	return 1;
}

/* ---- the segment scan ------------------------------------------------------------------ */

/* Where the run of zero octets that ends the segment starts: p[ret..len) is all zero and
 * ret is 0 or p[ret-1] != 0. Scanned backwards a word at a time (tens of MiB written ahead
 * cost a memory pass, not a decode per offset). */
static size_t spoolrec_zero_tail(const uint8_t *p, size_t len)
{
	size_t n = len;

	while (n && ((uintptr_t)(p + n) & 7)) {
		if (p[n - 1])
			return n;
		n--;
	}
	while (n >= 8) {
		uint64_t w;
		memcpy(&w, p + n - 8, 8);
		if (w)
			break;
		n -= 8;
	}
	while (n && !p[n - 1])
		n--;
	return n;
}

/* Decodes the record at p into ev (len, type and the views). Only the views of the
 * record's own type are written, the others are cleared: no stale view. */
static enum spoolrec_rc spoolrec_decode_ev(const uint8_t *p, size_t len,
                                           struct spoolrec_scan_ev *ev,
                                           enum spoolrec_err *err)
{
	memset(&ev->msg, 0, sizeof ev->msg);
	memset(&ev->outcome, 0, sizeof ev->outcome);
	ev->done_qid = (struct spoolrec_view){ NULL, 0 };
	return spoolrec_decode_at(p, len, 1, &ev->len, &ev->type, &ev->msg, &ev->done_qid,
	                          &ev->outcome, err);
}

/* The first offset q in [from, zend) where a valid record starts, decoded into *ev (len,
 * type and the views); SIZE_MAX when there is none. A record starts with its
 * magic, which has no zero octet, so no record starts in the zero tail; the record itself
 * may run into it (its last octets can be zero). */
static size_t spoolrec_resync(const uint8_t *p, size_t len, size_t zend, size_t from,
                              struct spoolrec_scan_ev *ev)
{
	while (from < zend && zend - from >= sizeof spoolrec_magic) {
		const uint8_t *m = memmem(p + from, zend - from, spoolrec_magic,
		                          sizeof spoolrec_magic);
		if (!m)
			break;
		size_t q = (size_t)(m - p);
		if (spoolrec_decode_ev(p + q, len - q, ev, NULL) == SPOOLREC_OK)
			return q;
		from = q + 1;
	}
	return SIZE_MAX;
}

int spoolrec_scan(const uint8_t *p, size_t len, spoolrec_scan_cb cb, void *ctx)
{
	struct spoolrec_scan_ev rec, bad;
	size_t zend = spoolrec_zero_tail(p, len);
	size_t off = 0;
	int rc;

	memset(&rec, 0, sizeof rec);
	memset(&bad, 0, sizeof bad);
	while (off < zend) {
		enum spoolrec_err err;
		enum spoolrec_rc r = spoolrec_decode_ev(p + off, len - off, &rec, &err);
		if (r != SPOOLREC_OK) {
			/* Damage at off: what follows decides whether it is a torn tail. */
			bad.off = off;
			bad.err = r == SPOOLREC_AGAIN ? SPOOLREC_E_TRUNCATED : err;
			size_t q = spoolrec_resync(p, len, zend, off + 1, &rec);
			if (q == SIZE_MAX) {
				bad.kind = SPOOLREC_SCAN_TORN;
				bad.len = zend - off;
				if ((rc = cb(ctx, &bad)) != 0)
					return rc;
				off = zend;
				break;
			}
			bad.kind = SPOOLREC_SCAN_SKIPPED;
			bad.len = q - off;
			if ((rc = cb(ctx, &bad)) != 0)
				return rc;
			off = q;
		}
		rec.kind = SPOOLREC_SCAN_RECORD;
		rec.off = off;
		if ((rc = cb(ctx, &rec)) != 0)
			return rc;
		off += rec.len;
	}
	memset(&rec, 0, sizeof rec);
	rec.kind = SPOOLREC_SCAN_END;
	rec.off = off;
	rec.len = len - off;
	return cb(ctx, &rec);
}

/* ---- copies -------------------------------------------------------------------------- */

#define SPOOLREC_COPY_RUN 64u

size_t spoolrec_encode_copy(uint8_t *out, size_t cap, const uint8_t *rec, size_t len,
                            const struct spoolrec_rstate *st, uint32_t n, uint64_t at)
{
	size_t used;
	enum spoolrec_type type;
	struct spoolrec_msg m;
	char qid[256];

	if (spoolrec_decode(rec, len, &used, &type, &m, NULL, NULL) != SPOOLREC_OK ||
	    type != SPOOLREC_MSG || used != len || m.nrcpt != n || m.qid.len >= sizeof qid ||
	    memchr(m.qid.p, 0, m.qid.len) ||
	    (n && !st))
		return 0;
	memcpy(qid, m.qid.p, m.qid.len);
	qid[m.qid.len] = '\0';
	/* Sizes first: nothing is written unless all of it fits. */
	size_t total = len;
	for (uint32_t i = 0; i < n;) {
		if (st[i].state == SPOOLREC_RS_OPEN) {
			i++;
			continue;
		}
		if (!spoolrec_state_ok(st[i].state, st[i].next_try))
			return 0;
		uint32_t k = 1;
		while (i + k < n && k < SPOOLREC_COPY_RUN && st[i + k].state == st[i].state &&
		       st[i + k].attempts == st[i].attempts && st[i + k].next_try == st[i].next_try)
			k++;
		total += spoolrec_rcpt_size(m.qid.len, k);
		i += k;
	}
	if (!out)
		return total;
	if (cap < total)
		return 0;
	memmove(out, rec, len);
	/* the flags field: after the header, the qid (length-prefixed) and the arrival */
	uint8_t *fl = out + SPOOLREC_HDR_LEN + 4 + m.qid.len + 8;
	uint32_t flags = spoolrec_get32(fl);
	unsigned gen = spoolrec_gen(flags);
	if (gen < SPOOLREC_GEN_MAX)
		gen++;
	spoolrec_put32(fl, (flags & SPOOLREC_FLAGS_MASK) | (uint32_t)gen << SPOOLREC_GEN_SHIFT);
	spoolrec_seal(out, SPOOLREC_MSG, len - SPOOLREC_HDR_LEN, len - SPOOLREC_HDR_LEN, NULL);
	size_t w = len;
	for (uint32_t i = 0; i < n;) {
		if (st[i].state == SPOOLREC_RS_OPEN) {
			i++;
			continue;
		}
		uint32_t idx[SPOOLREC_COPY_RUN];
		uint32_t k = 0;
		do {
			idx[k] = i + k;
			k++;
		} while (i + k < n && k < SPOOLREC_COPY_RUN && st[i + k].state == st[i].state &&
		         st[i + k].attempts == st[i].attempts && st[i + k].next_try == st[i].next_try);
		w += spoolrec_encode_rcpt(out + w, cap - w, qid, st[i].state, st[i].attempts,
		                          st[i].next_try, at, idx, k);
		i += k;
	}
	return w;
}
