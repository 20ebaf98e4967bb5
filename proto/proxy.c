/* proto/proxy — the HAProxy PROXY protocol v1/v2; see proxy.h.
 *
 * pp_parse() is a pure function of the bytes accumulated so far: every call re-parses
 * from the first octet (a header is at most 107 octets for v1 and max_len for v2), so
 * there is no state to carry between reads and nothing to get out of step. Each check
 * is written to work on a prefix: it answers "cannot become valid" (PP_ERR) as soon as
 * the octets present prove it, and "not yet" (PP_AGAIN) otherwise. The result is built
 * in a local and copied out only on PP_OK.
 *
 * Security decisions, made here and nowhere else:
 *   - v1 is parsed to the letter of the spec (single spaces, no leading zeros, the
 *     family must match the addresses, 107 octets): a lenient parser of a header that
 *     names the client address is an address spoofing aid.
 *   - v2 bounds: the declared length is checked against max_len as soon as the 16-octet
 *     fixed part is present, before anything waits for the rest; every TLV and SSL
 *     sub-TLV must lie inside its container; a CRC32C TLV that does not match is fatal.
 *   - v2 LOCAL, and PROXY with family UNSPEC, keep the socket's addresses; the address
 *     block's format is then unknown, so where TLVs would start is unknown too and the
 *     rest of the header is skipped (its length still honoured).
 *   - Duplicate TLVs: the first occurrence of ALPN/AUTHORITY/UNIQUE_ID/NETNS/SSL wins;
 *     every CRC32C TLV is verified.
 */
#include "proto/proxy.h"

#include <stdio.h>
#include <string.h>

#include "proto/crc32c.h"

static const uint8_t pp_v1_prefix[6] = { 'P', 'R', 'O', 'X', 'Y', ' ' };
static const uint8_t pp_v2_sig[12] = { 0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                       0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A };

#define PP_V2_CMD_LOCAL 0x0
#define PP_V2_CMD_PROXY 0x1
#define PP_V2_ADDR_INET 12       /* 2 x 4 + 2 x 2 */
#define PP_V2_ADDR_INET6 36      /* 2 x 16 + 2 x 2 */
#define PP_V2_ADDR_UNIX 216      /* 2 x 108 */
#define PP_UNIX_PATH 108
#define PP_TLV_HDR 3
#define PP_SSL_FIXED 5           /* client u8, verify u32 */

const char *pp_strerror(enum pp_err e)
{
	switch (e) {
	case PP_E_NONE:          return "ok";
	case PP_E_NOT_PROXY:     return "not a PROXY header";
	case PP_E_V1_TOO_LONG:   return "PROXY v1 line longer than 107 octets";
	case PP_E_V1_SYNTAX:     return "PROXY v1 syntax error";
	case PP_E_V1_BARE_CRLF:  return "PROXY v1 bare CR or LF";
	case PP_E_V1_FAMILY:     return "PROXY v1 unknown protocol";
	case PP_E_V1_ADDRESS:    return "PROXY v1 bad address";
	case PP_E_V1_PORT:       return "PROXY v1 bad port";
	case PP_E_V2_VERSION:    return "PROXY v2 unsupported version";
	case PP_E_V2_COMMAND:    return "PROXY v2 unknown command";
	case PP_E_V2_FAMILY:     return "PROXY v2 unknown family or transport";
	case PP_E_V2_SHORT:      return "PROXY v2 length shorter than the address block";
	case PP_E_V2_TOO_LONG:   return "PROXY v2 header over the size limit";
	case PP_E_TLV_BOUNDS:    return "PROXY v2 TLV out of bounds";
	case PP_E_TLV_CRC32C:    return "PROXY v2 CRC32C mismatch";
	case PP_E_TLV_UNIQUE_ID: return "PROXY v2 UNIQUE_ID over 128 octets";
	case PP_E_TLV_SSL:       return "PROXY v2 SSL TLV too short";
	}
	return "unknown error";
}

enum pp_detect pp_detect(const uint8_t *p, size_t len)
{
	size_t n;

	if (len == 0)
		return PP_DETECT_MAYBE;
	n = len < sizeof pp_v1_prefix ? len : sizeof pp_v1_prefix;
	if (memcmp(p, pp_v1_prefix, n) == 0)
		return n == sizeof pp_v1_prefix ? PP_DETECT_V1 : PP_DETECT_MAYBE;
	n = len < sizeof pp_v2_sig ? len : sizeof pp_v2_sig;
	if (memcmp(p, pp_v2_sig, n) == 0)
		return n == sizeof pp_v2_sig ? PP_DETECT_V2 : PP_DETECT_MAYBE;
	return PP_DETECT_NONE;
}

static uint16_t pp_be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t pp_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void pp_put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static bool pp_is_digit(uint8_t c)
{
	return c >= '0' && c <= '9';
}

static int pp_xval(uint8_t c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* --- v1 -------------------------------------------------------------------------- */

/* Addresses and ports are parsed over a field that may be incomplete (complete=false:
 * more octets of the same field may follow). Each returns false only when no
 * continuation can make the field valid; when complete, true means valid and out set. */

/* Dotted quad, 1-3 digits per octet, no leading zeros, each 0-255. */
static bool pp_v1_ipv4(const uint8_t *s, size_t n, bool complete, uint8_t out[4])
{
	unsigned oct = 0, nd = 0, val = 0;

	for (size_t i = 0; i < n; i++) {
		uint8_t c = s[i];
		if (pp_is_digit(c)) {
			if (nd == 1 && val == 0)
				return false;            /* leading zero */
			val = val * 10 + (unsigned)(c - '0');
			if (val > 255)
				return false;
			nd++;
		} else if (c == '.') {
			if (nd == 0 || oct == 3)
				return false;
			out[oct++] = (uint8_t)val;
			nd = val = 0;
		} else {
			return false;
		}
	}
	if (!complete)
		return true;
	if (oct != 3 || nd == 0)
		return false;
	out[3] = (uint8_t)val;
	return true;
}

/* RFC 4291 2.2 text forms: eight groups of 1-4 hex digits; or "::" standing for one or
 * more zero groups (so at most seven explicit groups with it); optionally the last 32
 * bits as a dotted quad. */
static bool pp_v1_ipv6(const uint8_t *s, size_t n, bool complete, uint8_t out[16])
{
	uint16_t w[8] = { 0 };
	unsigned nw = 0;         /* groups started (a dotted tail counts two) */
	int dc = -1;             /* index in w where "::" stands, or -1 */
	unsigned nd = 0;         /* hex digits in the current group */
	unsigned colons = 0;     /* consecutive ':' just seen */
	size_t tok = 0;          /* where the current group began */
	bool v4 = false;

	for (size_t i = 0; i < n; i++) {
		uint8_t c = s[i];
		int x = pp_xval(c);
		unsigned limit = dc >= 0 ? 7 : 8;

		if (x >= 0) {
			if (nd == 0) {
				if (i == 1 && colons == 1)
					return false;    /* ":x" */
				if (nw + 1 > limit)
					return false;
				nw++;
				tok = i;
			}
			if (++nd > 4)
				return false;
			w[nw - 1] = (uint16_t)(w[nw - 1] << 4 | (unsigned)x);
			colons = 0;
		} else if (c == ':') {
			if (colons == 0 && nd > 0) {
				/* after a group: another group or "::" must follow */
				if (nw + 1 > limit)
					return false;
				nd = 0;
				colons = 1;
			} else if (colons == 0) {
				colons = 1;              /* leading ':', must be "::" */
			} else if (colons == 1 && dc < 0) {
				dc = (int)nw;
				colons = 2;
			} else {
				return false;            /* ":::" or a second "::" */
			}
		} else if (c == '.') {
			/* the current group was the first octet of a dotted tail, which must
			 * end the address: exactly at group 8 without "::", by 7 with it */
			if (nd == 0)
				return false;
			if (dc < 0 ? nw != 7 : nw + 1 > 7)
				return false;
			uint8_t q[4] = { 0 };
			if (!pp_v1_ipv4(s + tok, n - tok, complete, q))
				return false;
			w[nw - 1] = (uint16_t)(q[0] << 8 | q[1]);
			w[nw++] = (uint16_t)(q[2] << 8 | q[3]);
			v4 = true;
			break;
		} else {
			return false;
		}
	}
	if (!complete)
		return true;
	if (!v4) {
		if (colons == 1 || (nd == 0 && colons == 0))
			return false;            /* trailing single ':' or empty */
	}
	if (dc < 0 ? nw != 8 : nw > 7)
		return false;

	unsigned head = dc < 0 ? nw : (unsigned)dc;
	unsigned tail = nw - head;
	uint16_t full[8] = { 0 };
	for (unsigned k = 0; k < head; k++)
		full[k] = w[k];
	for (unsigned k = 0; k < tail; k++)
		full[8 - tail + k] = w[head + k];
	for (unsigned k = 0; k < 8; k++) {
		out[2 * k] = (uint8_t)(full[k] >> 8);
		out[2 * k + 1] = (uint8_t)full[k];
	}
	return true;
}

/* 0-65535, no leading zero. */
static bool pp_v1_port(const uint8_t *s, size_t n, bool complete, uint16_t *out)
{
	unsigned val = 0;

	for (size_t i = 0; i < n; i++) {
		if (!pp_is_digit(s[i]) || (i == 1 && s[0] == '0'))
			return false;
		val = val * 10 + (unsigned)(s[i] - '0');
		if (val > 65535)
			return false;
	}
	if (complete) {
		if (n == 0)
			return false;
		*out = (uint16_t)val;
	}
	return true;
}

/* Check the line content s[0..n) (everything before the CR, or everything so far when
 * no CR/LF has arrived; it holds neither). complete: the CRLF follows. */
static enum pp_err pp_v1_line(const uint8_t *s, size_t n, bool complete, struct pp_result *r)
{
	static const char *const fams[] = { "TCP4", "TCP6", "UNKNOWN" };
	size_t i = sizeof pp_v1_prefix;

	/* The protocol word. UNKNOWN may be followed by anything (the spec: the receiver
	 * ignores the rest of the line); TCP4/TCP6 by a single space. */
	size_t wl = 0;
	while (i + wl < n && s[i + wl] != ' ')
		wl++;
	bool word_done = i + wl < n || complete;
	if (wl == 0 && word_done)
		return PP_E_V1_SYNTAX;           /* "PROXY  ", "PROXY \r\n" */
	if (n - i >= 7 && memcmp(s + i, "UNKNOWN", 7) == 0) {
		if (complete) {
			r->version = 1;
			r->local = true;
			r->family = PP_AF_UNSPEC;
		}
		return PP_E_NONE;
	}
	int fam = -1;
	for (int k = 0; k < 3; k++) {
		size_t fl = strlen(fams[k]);
		if (word_done ? wl == fl && memcmp(s + i, fams[k], fl) == 0
		              : wl <= fl && memcmp(s + i, fams[k], wl) == 0) {
			fam = k;
			break;
		}
	}
	if (fam < 0)
		return PP_E_V1_FAMILY;
	if (!word_done)
		return PP_E_NONE;
	if (fam == 2)                         /* "UNKNOWN" shorter than 7: cannot happen */
		return PP_E_V1_FAMILY;
	i += wl;

	/* Four fields, each after exactly one space: src dst sport dport. */
	struct pp_result t;
	memset(&t, 0, sizeof t);
	t.version = 1;
	t.family = fam == 0 ? PP_AF_INET : PP_AF_INET6;
	for (int f = 0; f < 4; f++) {
		if (i == n) {
			if (complete)
				return PP_E_V1_SYNTAX;   /* missing fields */
			return PP_E_NONE;
		}
		/* s[i] == ' ' here: the word/field before stopped at a space */
		i++;
		size_t fl = 0;
		while (i + fl < n && s[i + fl] != ' ')
			fl++;
		bool done = i + fl < n || complete;
		if (fl == 0 && done)
			return PP_E_V1_SYNTAX;       /* double space, or trailing space */
		if (f < 2) {
			struct pp_addr *a = f == 0 ? &t.src : &t.dst;
			bool ok = fam == 0 ? pp_v1_ipv4(s + i, fl, done, a->ip)
			                   : pp_v1_ipv6(s + i, fl, done, a->ip);
			if (!ok)
				return PP_E_V1_ADDRESS;
		} else {
			struct pp_addr *a = f == 2 ? &t.src : &t.dst;
			if (!pp_v1_port(s + i, fl, done, &a->port))
				return PP_E_V1_PORT;
		}
		i += fl;
		if (!done)
			return PP_E_NONE;
	}
	if (i < n)
		return PP_E_V1_SYNTAX;               /* a space after the last port */
	if (complete)
		*r = t;
	return PP_E_NONE;
}

static enum pp_rc pp_parse_v1(const uint8_t *p, size_t len, struct pp_result *r,
                              enum pp_err *err)
{
	size_t lim = len < PP_V1_MAX ? len : PP_V1_MAX;
	size_t end = 0;
	while (end < lim && p[end] != '\r' && p[end] != '\n')
		end++;

	/* The content before the terminator must be a valid prefix whatever follows. */
	*err = pp_v1_line(p, end, false, r);
	if (*err != PP_E_NONE)
		return PP_ERR;
	if (end == lim) {
		if (len >= PP_V1_MAX) {
			*err = PP_E_V1_TOO_LONG;
			return PP_ERR;
		}
		return PP_AGAIN;
	}
	if (p[end] == '\n') {
		*err = PP_E_V1_BARE_CRLF;
		return PP_ERR;
	}
	if (end + 2 > PP_V1_MAX) {
		*err = PP_E_V1_TOO_LONG;             /* the LF would be octet 108 */
		return PP_ERR;
	}
	if (end + 1 == len)
		return PP_AGAIN;
	if (p[end + 1] != '\n') {
		*err = PP_E_V1_BARE_CRLF;
		return PP_ERR;
	}
	*err = pp_v1_line(p, end, true, r);
	if (*err != PP_E_NONE)
		return PP_ERR;
	r->header_len = end + 2;
	return PP_OK;
}

/* --- v2 -------------------------------------------------------------------------- */

/* SSL sub-TLVs in v[0..avail) of an SSL value of total length vlen (avail <= vlen: the
 * rest has not arrived). Sub-TLVs must lie inside the value. */
static enum pp_err pp_v2_ssl(const uint8_t *v, size_t avail, size_t vlen, bool complete,
                             struct pp_ssl *ssl)
{
	if (vlen < PP_SSL_FIXED)
		return PP_E_TLV_SSL;
	size_t off = PP_SSL_FIXED;
	while (off < vlen) {
		if (vlen - off < PP_TLV_HDR)
			return PP_E_TLV_BOUNDS;
		if (avail - (off < avail ? off : avail) < PP_TLV_HDR)
			return PP_E_NONE;            /* not here yet */
		uint8_t type = v[off];
		size_t sl = pp_be16(v + off + 1);
		if (sl > vlen - off - PP_TLV_HDR)
			return PP_E_TLV_BOUNDS;
		if (complete) {
			struct pp_span sp = { v + off + PP_TLV_HDR, sl };
			struct pp_span *dst = NULL;
			switch (type) {
			case PP2_SUBTYPE_SSL_VERSION: dst = &ssl->version; break;
			case PP2_SUBTYPE_SSL_CN:      dst = &ssl->cn; break;
			case PP2_SUBTYPE_SSL_CIPHER:  dst = &ssl->cipher; break;
			case PP2_SUBTYPE_SSL_SIG_ALG: dst = &ssl->sig_alg; break;
			case PP2_SUBTYPE_SSL_KEY_ALG: dst = &ssl->key_alg; break;
			default: break;
			}
			if (dst != NULL && dst->p == NULL)
				*dst = sp;
		}
		off += PP_TLV_HDR + sl;
	}
	if (complete) {
		ssl->present = true;
		ssl->client = v[0];
		ssl->verify = pp_be32(v + 1);
	}
	return PP_E_NONE;
}

static void pp_first(struct pp_span *dst, const uint8_t *p, size_t len)
{
	if (dst->p == NULL) {
		dst->p = p;
		dst->len = len;
	}
}

/* TLVs in p[off..hlen) of a header of hlen octets of which len have arrived. Bounds
 * and length rules are checked as soon as a TLV's 3-octet header is here; values and
 * the CRC once the whole header is. */
static enum pp_err pp_v2_tlvs(const uint8_t *p, size_t len, size_t off, size_t hlen,
                              struct pp_result *r)
{
	static const uint8_t zero4[4];
	bool complete = len >= hlen;

	while (off < hlen) {
		if (hlen - off < PP_TLV_HDR)
			return PP_E_TLV_BOUNDS;
		if (off + PP_TLV_HDR > len)
			return PP_E_NONE;
		uint8_t type = p[off];
		size_t tl = pp_be16(p + off + 1);
		size_t v = off + PP_TLV_HDR;
		if (tl > hlen - v)
			return PP_E_TLV_BOUNDS;
		size_t avail = len > v ? (len - v < tl ? len - v : tl) : 0;
		enum pp_err e;
		switch (type) {
		case PP2_TYPE_CRC32C:
			if (tl != 4)
				return PP_E_TLV_CRC32C;
			if (complete) {
				uint32_t c = crc32c(0, p, v);
				c = crc32c(c, zero4, 4);
				c = crc32c(c, p + v + 4, hlen - v - 4);
				if (c != pp_be32(p + v))
					return PP_E_TLV_CRC32C;
				r->crc32c_checked = true;
			}
			break;
		case PP2_TYPE_UNIQUE_ID:
			if (tl > PP_UNIQUE_ID_MAX)
				return PP_E_TLV_UNIQUE_ID;
			if (complete)
				pp_first(&r->unique_id, p + v, tl);
			break;
		case PP2_TYPE_SSL:
			if (r->ssl.present) {
				/* a second SSL TLV: checked, not used */
				struct pp_ssl dummy;
				memset(&dummy, 0, sizeof dummy);
				e = pp_v2_ssl(p + v, avail, tl, complete, &dummy);
			} else {
				e = pp_v2_ssl(p + v, avail, tl, complete, &r->ssl);
			}
			if (e != PP_E_NONE)
				return e;
			break;
		case PP2_TYPE_ALPN:
			if (complete)
				pp_first(&r->alpn, p + v, tl);
			break;
		case PP2_TYPE_AUTHORITY:
			if (complete)
				pp_first(&r->authority, p + v, tl);
			break;
		case PP2_TYPE_NETNS:
			if (complete)
				pp_first(&r->netns, p + v, tl);
			break;
		default:                          /* NOOP and unknown types */
			break;
		}
		off = v + tl;
	}
	return PP_E_NONE;
}

static enum pp_rc pp_parse_v2(const uint8_t *p, size_t len, size_t max_len,
                              struct pp_result *r, enum pp_err *err)
{
	if (len > 12) {
		uint8_t vc = p[12];
		if (vc >> 4 != 2) {
			*err = PP_E_V2_VERSION;
			return PP_ERR;
		}
		if ((vc & 0xf) > PP_V2_CMD_PROXY) {
			*err = PP_E_V2_COMMAND;
			return PP_ERR;
		}
	}
	if (len > 13) {
		uint8_t ft = p[13];
		if (ft >> 4 > PP_AF_UNIX || (ft & 0xf) > 2) {
			*err = PP_E_V2_FAMILY;
			return PP_ERR;
		}
	}
	if (len < PP_V2_HDR)
		return PP_AGAIN;

	size_t hlen = PP_V2_HDR + (size_t)pp_be16(p + 14);
	if (hlen > max_len) {
		*err = PP_E_V2_TOO_LONG;
		return PP_ERR;
	}
	bool local = (p[12] & 0xf) == PP_V2_CMD_LOCAL;
	enum pp_family fam = (enum pp_family)(p[13] >> 4);
	if (local || fam == PP_AF_UNSPEC) {
		/* Addresses (and so where TLVs start) unknown: skip to hlen. */
		if (len < hlen)
			return PP_AGAIN;
		r->version = 2;
		r->local = true;
		r->family = PP_AF_UNSPEC;
		r->header_len = hlen;
		return PP_OK;
	}

	size_t alen = fam == PP_AF_INET ? PP_V2_ADDR_INET
	            : fam == PP_AF_INET6 ? PP_V2_ADDR_INET6 : PP_V2_ADDR_UNIX;
	if (hlen - PP_V2_HDR < alen) {
		*err = PP_E_V2_SHORT;
		return PP_ERR;
	}
	*err = pp_v2_tlvs(p, len, PP_V2_HDR + alen, hlen, r);
	if (*err != PP_E_NONE)
		return PP_ERR;
	if (len < hlen)
		return PP_AGAIN;

	const uint8_t *a = p + PP_V2_HDR;
	r->version = 2;
	r->family = fam;
	switch (fam) {
	case PP_AF_INET:
		memcpy(r->src.ip, a, 4);
		memcpy(r->dst.ip, a + 4, 4);
		r->src.port = pp_be16(a + 8);
		r->dst.port = pp_be16(a + 10);
		break;
	case PP_AF_INET6:
		memcpy(r->src.ip, a, 16);
		memcpy(r->dst.ip, a + 16, 16);
		r->src.port = pp_be16(a + 32);
		r->dst.port = pp_be16(a + 34);
		break;
	default:
		r->unix_src.p = a;
		r->unix_src.len = PP_UNIX_PATH;
		r->unix_dst.p = a + PP_UNIX_PATH;
		r->unix_dst.len = PP_UNIX_PATH;
		break;
	}
	r->header_len = hlen;
	return PP_OK;
}

enum pp_rc pp_parse(const uint8_t *p, size_t len, size_t max_len, struct pp_result *r,
                    size_t *used, enum pp_err *err)
{
	struct pp_result t;
	enum pp_err e = PP_E_NONE;
	enum pp_rc rc;

	memset(&t, 0, sizeof t);
	if (max_len < PP_V2_HDR)
		max_len = PP_V2_HDR;
	if (max_len > PP_V2_MAX)
		max_len = PP_V2_MAX;

	switch (pp_detect(p, len)) {
	case PP_DETECT_V1:
		rc = pp_parse_v1(p, len, &t, &e);
		break;
	case PP_DETECT_V2:
		rc = pp_parse_v2(p, len, max_len, &t, &e);
		break;
	case PP_DETECT_MAYBE:
		rc = PP_AGAIN;
		break;
	default:
		rc = PP_ERR;
		e = PP_E_NOT_PROXY;
		break;
	}
	if (rc != PP_ERR)
		e = PP_E_NONE;
	if (rc != PP_OK)
		memset(&t, 0, sizeof t);
	if (r != NULL)
		*r = t;
	if (used != NULL)
		*used = rc == PP_OK ? t.header_len : 0;
	if (err != NULL)
		*err = e;
	return rc;
}

/* --- builders -------------------------------------------------------------------- */

/* RFC 5952: lowercase, no leading zeros, the longest run (>= 2) of zero groups
 * compressed (the first on a tie); IPv4-mapped addresses (::ffff:0:0/96) in the mixed
 * notation section 5 recommends. buf must hold 46 octets. */
static size_t pp_fmt_ipv6(char *buf, const uint8_t ip[16])
{
	uint16_t w[8];
	int best = -1, best_len = 0;
	size_t n = 0;

	for (int k = 0; k < 8; k++)
		w[k] = pp_be16(ip + 2 * k);
	for (int k = 0; k < 8;) {
		if (w[k] != 0) {
			k++;
			continue;
		}
		int j = k;
		while (j < 8 && w[j] == 0)
			j++;
		if (j - k > best_len) {
			best = k;
			best_len = j - k;
		}
		k = j;
	}
	if (best_len < 2)
		best = -1;
	if (best == 0 && best_len == 5 && w[5] == 0xffff)
		return (size_t)sprintf(buf, "::ffff:%u.%u.%u.%u", (unsigned)ip[12],
		                       (unsigned)ip[13], (unsigned)ip[14], (unsigned)ip[15]);
	for (int k = 0; k < 8; k++) {
		if (k == best) {
			buf[n++] = ':';
			if (k == 0)
				buf[n++] = ':';
			k += best_len - 1;
			continue;
		}
		n += (size_t)sprintf(buf + n, "%x", (unsigned)w[k]);
		if (k < 7)
			buf[n++] = ':';
	}
	buf[n] = '\0';
	return n;
}

size_t pp_build_v1(uint8_t *out, size_t cap, enum pp_family family,
                   const struct pp_addr *src, const struct pp_addr *dst)
{
	char line[PP_V1_MAX + 1];
	char sa[46], da[46];
	int n;

	if (family == PP_AF_UNSPEC) {
		n = snprintf(line, sizeof line, "PROXY UNKNOWN\r\n");
	} else if (src == NULL || dst == NULL) {
		return 0;
	} else if (family == PP_AF_INET) {
		const uint8_t *s = src->ip, *d = dst->ip;
		n = snprintf(line, sizeof line, "PROXY TCP4 %u.%u.%u.%u %u.%u.%u.%u %u %u\r\n",
		             (unsigned)s[0], (unsigned)s[1], (unsigned)s[2], (unsigned)s[3],
		             (unsigned)d[0], (unsigned)d[1], (unsigned)d[2], (unsigned)d[3],
		             (unsigned)src->port, (unsigned)dst->port);
	} else if (family == PP_AF_INET6) {
		pp_fmt_ipv6(sa, src->ip);
		pp_fmt_ipv6(da, dst->ip);
		n = snprintf(line, sizeof line, "PROXY TCP6 %s %s %u %u\r\n", sa, da,
		             (unsigned)src->port, (unsigned)dst->port);
	} else {
		return 0;
	}
	/* The longest TCP6 line is 104 octets; line[] holds PP_V1_MAX. */
	if (n < 0 || (size_t)n > PP_V1_MAX || (size_t)n > cap)
		return 0;
	memcpy(out, line, (size_t)n);
	return (size_t)n;
}

/* local, or family PP_AF_UNSPEC: a LOCAL command with family UNSPEC and no address
 * block (src/dst ignored), as HAProxy sends for health checks. Otherwise PROXY over
 * STREAM with the address block of family. TLVs follow in order, then the CRC32C TLV,
 * computed last over the whole header with its value zeroed. */
size_t pp_build_v2(uint8_t *out, size_t cap, bool local, enum pp_family family,
                   const struct pp_addr *src, const struct pp_addr *dst,
                   const struct pp_tlv *tlvs, size_t ntlvs, bool with_crc32c)
{
	size_t alen = 0;

	if (family == PP_AF_UNSPEC)
		local = true;
	if (!local) {
		if (src == NULL || dst == NULL)
			return 0;
		if (family == PP_AF_INET)
			alen = PP_V2_ADDR_INET;
		else if (family == PP_AF_INET6)
			alen = PP_V2_ADDR_INET6;
		else
			return 0;
	}
	if (ntlvs > 0 && tlvs == NULL)
		return 0;
	size_t body = alen;
	for (size_t k = 0; k < ntlvs; k++) {
		if (tlvs[k].len > 0 && tlvs[k].value == NULL)
			return 0;
		body += PP_TLV_HDR + tlvs[k].len;
		if (body > 0xffff)
			return 0;
	}
	if (with_crc32c)
		body += PP_TLV_HDR + 4;
	if (body > 0xffff || PP_V2_HDR + body > cap)
		return 0;

	uint8_t *o = out;
	memcpy(o, pp_v2_sig, sizeof pp_v2_sig);
	o[12] = (uint8_t)(2 << 4 | (local ? PP_V2_CMD_LOCAL : PP_V2_CMD_PROXY));
	o[13] = local ? 0x00 : (uint8_t)(family << 4 | 1);
	pp_put16(o + 14, (uint16_t)body);
	o += PP_V2_HDR;
	if (!local) {
		size_t il = family == PP_AF_INET ? 4 : 16;
		memcpy(o, src->ip, il);
		memcpy(o + il, dst->ip, il);
		pp_put16(o + 2 * il, src->port);
		pp_put16(o + 2 * il + 2, dst->port);
		o += alen;
	}
	for (size_t k = 0; k < ntlvs; k++) {
		o[0] = tlvs[k].type;
		pp_put16(o + 1, tlvs[k].len);
		if (tlvs[k].len > 0)
			memcpy(o + PP_TLV_HDR, tlvs[k].value, tlvs[k].len);
		o += PP_TLV_HDR + tlvs[k].len;
	}
	if (with_crc32c) {
		o[0] = PP2_TYPE_CRC32C;
		pp_put16(o + 1, 4);
		memset(o + PP_TLV_HDR, 0, 4);
		uint32_t c = crc32c(0, out, PP_V2_HDR + body);
		o[3] = (uint8_t)(c >> 24);
		o[4] = (uint8_t)(c >> 16);
		o[5] = (uint8_t)(c >> 8);
		o[6] = (uint8_t)c;
	}
	return PP_V2_HDR + body;
}
