/* test/fuzz/proxy_fuzz — libFuzzer target for proto/proxy (inputs up to 65600 octets:
 * a v2 header can be 16 + 65535, which is also the largest proxy_max_header).
 *
 * For each input:
 *   1. pp_detect and pp_parse over the whole input with several caps: fixed ones from 0
 *      to PP_V2_MAX (65551), one configured from the input's last two octets (16 +
 *      0..65535), and for a v2 header its own length, one less and one more. The
 *      result's invariants (used == header_len, spans inside the header, limits); the
 *      agreement of detection with parsing; a larger cap never turns OK into ERR nor
 *      changes the result; a v2 header is OK exactly when the cap is at least its length
 *      (else PP_E_V2_TOO_LONG).
 *   2. prefixes (every one of a short input; of a long one the first 160, those at the
 *      first 32 TLV headers and at the end of the header, and a spread of 48), with the
 *      largest cap and the configured one, copied to the end of an exact-size heap buffer so ASan catches a read past len: an OK
 *      prefix has the full parse's result and header_len; once a prefix is ERR every
 *      longer one is; for a valid header every shorter prefix is AGAIN.
 *   3. v1 addresses against glibc's inet_pton, both ways: an accepted TCP4/TCP6 line's
 *      addresses and ports are what inet_pton/strtoul read; and the input used as an
 *      address field is accepted exactly when inet_pton accepts it.
 *   4. pp_build_v1/pp_build_v2 of addresses and TLVs derived from the input (up to six,
 *      one of them as long as the 65535-octet length field allows) parse back to the
 *      same values; an undersized buffer gets 0 and no write.
 * Any disagreement aborts. Build and run: `make fuzz` (see test/fuzz/fuzz.mk). */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/proxy.h"
#include "test/fuzz/fuzz_util.h"

static const size_t fz_caps[] = { 0, 16, 28, 52, 100, 232, 400, 4096, PP_V2_MAX };

static void fz_span_in(struct pp_span s, const uint8_t *base, size_t used)
{
	if (s.p == NULL) {
		FZ_CHECK(s.len == 0);
		return;
	}
	FZ_CHECK(s.p >= base && s.p <= base + used);
	FZ_CHECK(s.len <= (size_t)(base + used - s.p));
}

static void fz_span_eq(struct pp_span a, const uint8_t *abase, struct pp_span b,
                       const uint8_t *bbase)
{
	FZ_CHECK((a.p == NULL) == (b.p == NULL));
	FZ_CHECK(a.len == b.len);
	if (a.p)
		FZ_CHECK(a.p - abase == b.p - bbase);
}

static void fz_result_eq(const struct pp_result *a, const uint8_t *abase,
                         const struct pp_result *b, const uint8_t *bbase)
{
	FZ_CHECK(a->version == b->version);
	FZ_CHECK(a->local == b->local);
	FZ_CHECK(a->family == b->family);
	FZ_CHECK(memcmp(&a->src, &b->src, sizeof a->src) == 0);
	FZ_CHECK(memcmp(&a->dst, &b->dst, sizeof a->dst) == 0);
	fz_span_eq(a->unix_src, abase, b->unix_src, bbase);
	fz_span_eq(a->unix_dst, abase, b->unix_dst, bbase);
	fz_span_eq(a->alpn, abase, b->alpn, bbase);
	fz_span_eq(a->authority, abase, b->authority, bbase);
	fz_span_eq(a->unique_id, abase, b->unique_id, bbase);
	fz_span_eq(a->netns, abase, b->netns, bbase);
	FZ_CHECK(a->crc32c_checked == b->crc32c_checked);
	FZ_CHECK(a->ssl.present == b->ssl.present);
	FZ_CHECK(a->ssl.client == b->ssl.client);
	FZ_CHECK(a->ssl.verify == b->ssl.verify);
	fz_span_eq(a->ssl.version, abase, b->ssl.version, bbase);
	fz_span_eq(a->ssl.cn, abase, b->ssl.cn, bbase);
	fz_span_eq(a->ssl.cipher, abase, b->ssl.cipher, bbase);
	fz_span_eq(a->ssl.sig_alg, abase, b->ssl.sig_alg, bbase);
	fz_span_eq(a->ssl.key_alg, abase, b->ssl.key_alg, bbase);
	FZ_CHECK(a->header_len == b->header_len);
}

static void fz_invariants(enum pp_rc rc, const struct pp_result *r, size_t used,
                          enum pp_err err, const uint8_t *base, size_t len, size_t cap)
{
	size_t eff = cap < PP_V2_HDR ? PP_V2_HDR : cap;

	switch (rc) {
	case PP_OK:
		FZ_CHECK(err == PP_E_NONE);
		FZ_CHECK(used == r->header_len && used > 0 && used <= len);
		FZ_CHECK(r->version == 1 || r->version == 2);
		FZ_CHECK(r->version == 2 || used <= PP_V1_MAX);
		FZ_CHECK(r->version == 1 || (used >= PP_V2_HDR && used <= eff));
		FZ_CHECK(!r->local || r->family == PP_AF_UNSPEC);
		FZ_CHECK(r->local || r->family != PP_AF_UNSPEC);
		FZ_CHECK(r->unique_id.len <= PP_UNIQUE_ID_MAX);
		fz_span_in(r->unix_src, base, used);
		fz_span_in(r->unix_dst, base, used);
		fz_span_in(r->alpn, base, used);
		fz_span_in(r->authority, base, used);
		fz_span_in(r->unique_id, base, used);
		fz_span_in(r->netns, base, used);
		fz_span_in(r->ssl.version, base, used);
		fz_span_in(r->ssl.cn, base, used);
		fz_span_in(r->ssl.cipher, base, used);
		fz_span_in(r->ssl.sig_alg, base, used);
		fz_span_in(r->ssl.key_alg, base, used);
		break;
	case PP_AGAIN:
		FZ_CHECK(err == PP_E_NONE && used == 0);
		break;
	case PP_ERR:
		FZ_CHECK(err != PP_E_NONE && used == 0);
		FZ_CHECK(pp_strerror(err) != NULL);
		break;
	default:
		FZ_CHECK(!"unknown rc");
	}
}

static int fz_cmp_size(const void *a, const void *b)
{
	size_t x = *(const size_t *)a, y = *(const size_t *)b;
	return x < y ? -1 : x > y;
}

static void fz_sort(size_t *v, size_t n)
{
	qsort(v, n, sizeof *v, fz_cmp_size);
}

/* 2: prefixes against the full parse, each copied to the end of an exact-size heap
 * buffer. Every prefix of a short input; of a long one (a v2 header with TLVs can be
 * 65551 octets) the first 160, those around the first 32 TLV headers and the end of the
 * header, and a spread of 48 others, in increasing order. */
#define FZ_ALL_PREFIXES 160
#define FZ_SPREAD 48

static size_t fz_prefix_lens(const uint8_t *data, size_t size, enum pp_rc rc_full,
                             const struct pp_result *r_full, size_t *ks, size_t max)
{
	size_t n = 0;

	if (size <= FZ_ALL_PREFIXES) {
		for (size_t k = 0; k <= size; k++)
			ks[n++] = k;
		return n;
	}
	for (size_t k = 0; k <= FZ_ALL_PREFIXES; k++)
		ks[n++] = k;
	/* TLV headers of a v2 PROXY header with addresses: where the parser checks bounds */
	if (size >= PP_V2_HDR && pp_detect(data, size) == PP_DETECT_V2) {
		size_t hlen = PP_V2_HDR + ((size_t)data[14] << 8 | data[15]);
		size_t fam = data[13] >> 4;
		size_t off = PP_V2_HDR + (fam == 1 ? 12 : fam == 2 ? 36 : 216);

		for (int t = 0; t < 32 && off + 3 <= hlen && off + 3 <= size; t++) {
			for (size_t d = 0; d <= 3; d++)
				if (off + d > FZ_ALL_PREFIXES)
					ks[n++] = off + d;
			off += 3 + ((size_t)data[off + 1] << 8 | data[off + 2]);
		}
		if (hlen <= size && hlen > FZ_ALL_PREFIXES + 1) {
			ks[n++] = hlen - 1;
			ks[n++] = hlen;
		}
	}
	if (rc_full == PP_OK && r_full->header_len > FZ_ALL_PREFIXES + 1) {
		ks[n++] = r_full->header_len - 1;
		ks[n++] = r_full->header_len;
	}
	uint32_t h = fz_hash(data, size < 64 ? size : 64, (uint32_t)size);
	for (size_t spread = 0; spread < FZ_SPREAD && n < max - 1; spread++) {
		ks[n++] = FZ_ALL_PREFIXES + 1 + (size_t)fz_next(&h) % (size - FZ_ALL_PREFIXES);
	}
	ks[n++] = size;
	fz_sort(ks, n);
	size_t m = 0;
	for (size_t a = 0; a < n; a++)
		if (m == 0 || ks[m - 1] != ks[a])
			ks[m++] = ks[a];
	return m;
}

static void fz_prefixes(const uint8_t *data, size_t size, size_t cap, enum pp_rc rc_full,
                        const struct pp_result *r_full)
{
	static size_t ks[FZ_ALL_PREFIXES + 1 + 32 * 4 + 4 + FZ_SPREAD + 1];
	size_t nk = fz_prefix_lens(data, size, rc_full, r_full, ks, sizeof ks / sizeof ks[0]);
	uint8_t *buf = malloc(size ? size : 1);
	bool seen_err = false;

	FZ_CHECK(buf != NULL);
	for (size_t j = 0; j < nk; j++) {
		size_t k = ks[j];
		uint8_t *b = buf + size - k;
		struct pp_result r;
		size_t used;
		enum pp_err err;

		memcpy(b, data, k);
		enum pp_rc rc = pp_parse(b, k, cap, &r, &used, &err);
		fz_invariants(rc, &r, used, err, b, k, cap);
		if (seen_err)
			FZ_CHECK(rc == PP_ERR);
		if (rc == PP_ERR)
			seen_err = true;
		if (rc == PP_OK) {
			FZ_CHECK(rc_full == PP_OK);
			fz_result_eq(&r, b, r_full, data);
		}
		if (rc_full == PP_OK)
			FZ_CHECK(rc == (k < r_full->header_len ? PP_AGAIN : PP_OK));
		if (rc_full == PP_AGAIN)
			FZ_CHECK(rc == PP_AGAIN);
	}
	FZ_CHECK(seen_err == (rc_full == PP_ERR));
	free(buf);
}

/* 3a: an accepted TCP4/TCP6 line agrees with inet_pton and strtoul. */
static void fz_v1_agrees(const uint8_t *data, const struct pp_result *r)
{
	char line[PP_V1_MAX + 1];
	char *f[6], *save = NULL;
	int n = 0;

	memcpy(line, data, r->header_len - 2);
	line[r->header_len - 2] = '\0';
	for (char *t = strtok_r(line, " ", &save); t && n < 6; t = strtok_r(NULL, " ", &save))
		f[n++] = t;
	FZ_CHECK(n == 6);
	int af = r->family == PP_AF_INET ? AF_INET : AF_INET6;
	uint8_t ip[16] = { 0 };
	FZ_CHECK(inet_pton(af, f[2], ip) == 1 && memcmp(ip, r->src.ip, sizeof ip) == 0);
	memset(ip, 0, sizeof ip);
	FZ_CHECK(inet_pton(af, f[3], ip) == 1 && memcmp(ip, r->dst.ip, sizeof ip) == 0);
	FZ_CHECK(strtoul(f[4], NULL, 10) == r->src.port);
	FZ_CHECK(strtoul(f[5], NULL, 10) == r->dst.port);
}

/* 3b: the input as an address field: accepted exactly when inet_pton accepts it. */
static void fz_v1_address_field(const uint8_t *data, size_t size)
{
	char text[64];
	char line[160];

	if (size == 0 || size >= sizeof text)
		return;
	for (size_t i = 0; i < size; i++)
		if (data[i] == ' ' || data[i] == '\r' || data[i] == '\n' || data[i] == '\0')
			return;
	memcpy(text, data, size);
	text[size] = '\0';
	for (int fam = 0; fam < 2; fam++) {
		int n = snprintf(line, sizeof line, "PROXY %s %s %s 1 2\r\n", fam ? "TCP6" : "TCP4",
		                 text, fam ? "::1" : "127.0.0.1");
		if (n < 0 || (size_t)n > PP_V1_MAX)
			continue;
		uint8_t want_ip[16] = { 0 };
		int want = inet_pton(fam ? AF_INET6 : AF_INET, text, want_ip);
		struct pp_result r;
		size_t used;
		enum pp_err err;
		enum pp_rc rc = pp_parse((const uint8_t *)line, (size_t)n, PP_V2_MAX, &r, &used,
		                         &err);
		if (want == 1) {
			FZ_CHECK(rc == PP_OK && used == (size_t)n);
			FZ_CHECK(memcmp(r.src.ip, want_ip, sizeof want_ip) == 0);
		} else {
			FZ_CHECK(rc == PP_ERR && err == PP_E_V1_ADDRESS);
		}
	}
}

/* 4: builders. */
static void fz_want_span(struct pp_span got, const uint8_t *want, size_t len)
{
	FZ_CHECK(got.p != NULL && got.len == len);
	FZ_CHECK(len == 0 || memcmp(got.p, want, len) == 0);
}

static void fz_build(const uint8_t *data, size_t size)
{
	struct fz_cur c = { data, size, 0 };
	uint8_t flags = fz_byte(&c);
	enum pp_family fam = flags & 1 ? PP_AF_INET6 : PP_AF_INET;
	struct pp_addr src, dst;
	struct pp_result r;
	size_t used;
	enum pp_err err;

	memset(&src, 0, sizeof src);
	memset(&dst, 0, sizeof dst);
	fz_bytes(&c, src.ip, fam == PP_AF_INET ? 4 : 16);
	fz_bytes(&c, dst.ip, fam == PP_AF_INET ? 4 : 16);
	src.port = (uint16_t)(fz_byte(&c) << 8 | fz_byte(&c));
	dst.port = (uint16_t)(fz_byte(&c) << 8 | fz_byte(&c));

	/* v1 */
	uint8_t v1[PP_V1_MAX];
	size_t n1 = pp_build_v1(v1, sizeof v1, fam, &src, &dst);
	FZ_CHECK(n1 > 0 && n1 <= PP_V1_MAX);
	FZ_CHECK(pp_parse(v1, n1, PP_V2_MAX, &r, &used, &err) == PP_OK);
	FZ_CHECK(used == n1 && r.version == 1 && !r.local && r.family == fam);
	FZ_CHECK(memcmp(&r.src, &src, sizeof src) == 0);
	FZ_CHECK(memcmp(&r.dst, &dst, sizeof dst) == 0);
	fz_v1_agrees(v1, &r);
	uint8_t *small = malloc(n1 - 1);
	FZ_CHECK(small != NULL);
	FZ_CHECK(pp_build_v1(small, n1 - 1, fam, &src, &dst) == 0);
	free(small);

	/* v2: up to six TLVs chosen and filled from the input; SSL built valid. With flag
	 * 0x80 the first one (unless UNIQUE_ID, limited to 128) takes a length from two
	 * input octets, up to what fits in the 16-bit length with the other five at their
	 * largest: headers of up to 65551 octets. */
	static const uint8_t types[] = { PP2_TYPE_ALPN, PP2_TYPE_AUTHORITY, PP2_TYPE_UNIQUE_ID,
	                                 PP2_TYPE_NOOP, PP2_TYPE_NETNS, PP2_TYPE_SSL, 0xe1 };
	enum { FZ_SMALL = 160, FZ_BIG = 0xffff - 36 - 5 * (3 + FZ_SMALL) - 7 - 3 };
	uint8_t *vals[6];
	struct pp_tlv tlvs[6];
	size_t ntlvs = (size_t)(flags >> 1 & 7) % 7;
	bool crc = flags & 0x10;
	bool local = (flags & 0x60) == 0x60;
	for (size_t k = 0; k < ntlvs; k++) {
		uint8_t type = types[fz_byte(&c) % sizeof types];
		size_t len = fz_byte(&c) % (PP_UNIQUE_ID_MAX + 1);
		if (k == 0 && (flags & 0x80) && type != PP2_TYPE_UNIQUE_ID)
			len = ((size_t)fz_byte(&c) << 8 | fz_byte(&c)) % (FZ_BIG + 1);
		if (type == PP2_TYPE_SSL && len < 8)
			len = 8;
		vals[k] = malloc(len ? len : 1);
		FZ_CHECK(vals[k] != NULL);
		if (type == PP2_TYPE_SSL) {
			/* client, verify, then a CN sub-TLV of the rest */
			fz_bytes(&c, vals[k], 5);
			vals[k][5] = PP2_SUBTYPE_SSL_CN;
			vals[k][6] = (uint8_t)((len - 8) >> 8);
			vals[k][7] = (uint8_t)(len - 8);
			fz_bytes(&c, vals[k] + 8, len - 8);
		} else {
			fz_bytes(&c, vals[k], len);
		}
		tlvs[k] = (struct pp_tlv){ type, vals[k], (uint16_t)len };
	}

	uint8_t *v2 = malloc(PP_V2_MAX);
	FZ_CHECK(v2 != NULL);
	size_t n2 = pp_build_v2(v2, PP_V2_MAX, local, fam, &src, &dst, tlvs, ntlvs, crc);
	FZ_CHECK(n2 >= PP_V2_HDR && n2 <= PP_V2_MAX);
	FZ_CHECK(pp_parse(v2, n2, n2, &r, &used, &err) == PP_OK);
	FZ_CHECK(used == n2 && r.version == 2 && r.local == local);
	if (n2 > PP_V2_HDR) {
		FZ_CHECK(pp_parse(v2, n2, n2 - 1, &r, &used, &err) == PP_ERR);
		FZ_CHECK(err == PP_E_V2_TOO_LONG);
		FZ_CHECK(pp_parse(v2, n2, n2, &r, &used, &err) == PP_OK);
	}
	if (local) {
		FZ_CHECK(r.family == PP_AF_UNSPEC);
	} else {
		FZ_CHECK(r.family == fam);
		FZ_CHECK(memcmp(&r.src, &src, sizeof src) == 0);
		FZ_CHECK(memcmp(&r.dst, &dst, sizeof dst) == 0);
		FZ_CHECK(r.crc32c_checked == crc);
		/* the first TLV of each kind is the one reported */
		bool seen[256] = { false };
		for (size_t k = 0; k < ntlvs; k++) {
			uint8_t t = tlvs[k].type;
			if (seen[t])
				continue;
			seen[t] = true;
			switch (t) {
			case PP2_TYPE_ALPN: fz_want_span(r.alpn, vals[k], tlvs[k].len); break;
			case PP2_TYPE_AUTHORITY: fz_want_span(r.authority, vals[k], tlvs[k].len); break;
			case PP2_TYPE_UNIQUE_ID: fz_want_span(r.unique_id, vals[k], tlvs[k].len); break;
			case PP2_TYPE_NETNS: fz_want_span(r.netns, vals[k], tlvs[k].len); break;
			case PP2_TYPE_SSL:
				FZ_CHECK(r.ssl.present);
				FZ_CHECK(r.ssl.client == vals[k][0]);
				FZ_CHECK(r.ssl.verify == ((uint32_t)vals[k][1] << 24 |
				                          (uint32_t)vals[k][2] << 16 |
				                          (uint32_t)vals[k][3] << 8 | vals[k][4]));
				fz_want_span(r.ssl.cn, vals[k] + 8, tlvs[k].len - 8u);
				break;
			default:
				break;
			}
		}
		if (!seen[PP2_TYPE_ALPN])
			FZ_CHECK(r.alpn.p == NULL);
		if (!seen[PP2_TYPE_SSL])
			FZ_CHECK(!r.ssl.present);
	}
	small = malloc(n2 - 1);
	FZ_CHECK(small != NULL);
	FZ_CHECK(pp_build_v2(small, n2 - 1, local, fam, &src, &dst, tlvs, ntlvs, crc) == 0);
	free(small);
	free(v2);
	for (size_t k = 0; k < ntlvs; k++)
		free(vals[k]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pp_result r, r_prev, r_max;
	size_t used;
	enum pp_err err, err_max;
	enum pp_rc rc_prev = PP_AGAIN;
	bool have_prev = false;

	/* the caps: fixed, configured from the input's last two octets, and around a v2
	 * header's own length */
	size_t caps[sizeof fz_caps / sizeof fz_caps[0] + 4], ncaps = 0;
	for (size_t i = 0; i < sizeof fz_caps / sizeof fz_caps[0]; i++)
		caps[ncaps++] = fz_caps[i];
	size_t cap_in = size >= 2 ? PP_V2_HDR + ((size_t)data[size - 2] << 8 | data[size - 1])
	                          : PP_V2_HDR;
	caps[ncaps++] = cap_in;
	size_t hlen = 0;
	enum pp_detect d = pp_detect(data, size);
	if (d == PP_DETECT_V2 && size >= PP_V2_HDR) {
		hlen = PP_V2_HDR + ((size_t)data[14] << 8 | data[15]);
		caps[ncaps++] = hlen - 1;
		caps[ncaps++] = hlen;
		caps[ncaps++] = hlen + 1;
	}
	fz_sort(caps, ncaps);

	enum pp_rc rc_max = pp_parse(data, size, PP_V2_MAX, &r_max, &used, &err_max);
	/* whether the length field is reached: the version, command and family octets
	 * are checked before it */
	bool len_checked = hlen > 0 && !(rc_max == PP_ERR && (err_max == PP_E_V2_VERSION ||
	                                                        err_max == PP_E_V2_COMMAND ||
	                                                        err_max == PP_E_V2_FAMILY));
	for (size_t i = 0; i < ncaps; i++) {
		size_t cap = caps[i];
		size_t eff = cap < PP_V2_HDR ? PP_V2_HDR : cap > PP_V2_MAX ? PP_V2_MAX : cap;
		enum pp_rc rc = pp_parse(data, size, cap, &r, &used, &err);
		fz_invariants(rc, &r, used, err, data, size, cap);
		if (d == PP_DETECT_NONE)
			FZ_CHECK(rc == PP_ERR && err == PP_E_NOT_PROXY);
		if (d == PP_DETECT_MAYBE)
			FZ_CHECK(rc == PP_AGAIN);
		if (rc == PP_OK)
			FZ_CHECK((d == PP_DETECT_V1) == (r.version == 1));
		/* a larger cap never rejects what a smaller one accepted */
		if (have_prev && rc_prev == PP_OK) {
			FZ_CHECK(rc == PP_OK);
			fz_result_eq(&r, data, &r_prev, data);
		}
		/* v2: over the cap is TOO_LONG; within it, the cap changes nothing */
		if (len_checked && eff < hlen) {
			FZ_CHECK(rc == PP_ERR && err == PP_E_V2_TOO_LONG);
		} else {
			FZ_CHECK(rc == rc_max && err == err_max);
			if (rc == PP_OK)
				fz_result_eq(&r, data, &r_max, data);
		}
		rc_prev = rc;
		r_prev = r;
		have_prev = true;
		/* prefixes: with the largest cap, and with the configured one where it matters */
		if (cap == PP_V2_MAX || (cap == cap_in && len_checked && eff < hlen)) {
			fz_prefixes(data, size, cap, rc, &r);
			if (rc == PP_OK && r.version == 1 && !r.local)
				fz_v1_agrees(data, &r);
		}
	}

	fz_v1_address_field(data, size);
	fz_build(data, size);
	return 0;
}
