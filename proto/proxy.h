/* proto/proxy — the HAProxy PROXY protocol, versions 1 and 2: detection, parsing (pure,
 * incremental over a growing buffer) and building. libc only: addresses are raw octets,
 * never sockaddrs.
 *
 * Incremental: the caller accumulates received bytes and calls pp_parse() on all of them
 * after every read. For every prefix of a valid header the answer is PP_AGAIN (never
 * PP_ERR), and PP_ERR comes as soon as the bytes so far cannot begin a valid header.
 * On PP_OK, *used is the header length; the bytes after it (e.g. a pipelined EHLO) are
 * the caller's, untouched. Views in struct pp_result point into the caller's buffer.
 *
 * v1 follows the spec's exact grammar: "PROXY" SP ("TCP4"|"TCP6") SP src SP dst SP sport
 * SP dport CRLF, or "PROXY UNKNOWN" [anything without CR/LF] CRLF; single spaces, no
 * leading zeros in ports or IPv4 octets, ports 0-65535, the address family must match,
 * the whole line at most 107 octets including CRLF, a lone CR or LF is an error.
 * v2: the 12-octet signature, version 2, command LOCAL or PROXY, family/transport
 * UNSPEC/INET/INET6/UNIX x UNSPEC/STREAM/DGRAM, the length is honoured even for LOCAL
 * (TLVs skipped), a length shorter than the address block is an error, the total is
 * capped (max_len). TLVs are bounds-checked: ALPN, AUTHORITY, CRC32C (verified over the
 * whole header with the checksum field zeroed: a mismatch is an error), NOOP, UNIQUE_ID
 * (at most 128 octets), SSL with its sub-TLVs, NETNS; unknown types are skipped. */
#ifndef PROTO_PROXY_H
#define PROTO_PROXY_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PP_V1_MAX 107            /* octets, CRLF included */
#define PP_V2_HDR 16             /* signature + ver/cmd + fam + len */
#define PP_V2_MAX (PP_V2_HDR + 65535)
#define PP_UNIQUE_ID_MAX 128

enum pp_rc { PP_OK = 0, PP_AGAIN, PP_ERR };

enum pp_err {
	PP_E_NONE = 0,
	PP_E_NOT_PROXY,          /* neither the v1 prefix nor the v2 signature */
	PP_E_V1_TOO_LONG,        /* no CRLF within 107 octets */
	PP_E_V1_SYNTAX,          /* spaces, words, characters */
	PP_E_V1_BARE_CRLF,       /* a CR not followed by LF, or an LF without CR */
	PP_E_V1_FAMILY,          /* unknown protocol word */
	PP_E_V1_ADDRESS,         /* bad address, or one of the other family */
	PP_E_V1_PORT,            /* not 0-65535, or a leading zero */
	PP_E_V2_VERSION,         /* version other than 2 */
	PP_E_V2_COMMAND,         /* command other than LOCAL/PROXY */
	PP_E_V2_FAMILY,          /* unknown address family or transport */
	PP_E_V2_SHORT,           /* length shorter than the address block */
	PP_E_V2_TOO_LONG,        /* total over the configured cap */
	PP_E_TLV_BOUNDS,         /* a TLV (or sub-TLV) runs past its container */
	PP_E_TLV_CRC32C,         /* checksum mismatch (or a CRC32C TLV not 4 octets) */
	PP_E_TLV_UNIQUE_ID,      /* UNIQUE_ID over 128 octets */
	PP_E_TLV_SSL,            /* SSL TLV shorter than its fixed part */
};
const char *pp_strerror(enum pp_err e);

enum pp_detect {
	PP_DETECT_NONE = 0,      /* these bytes do not start a PROXY header */
	PP_DETECT_MAYBE,         /* too few bytes to tell (a prefix of "PROXY " or the signature) */
	PP_DETECT_V1,            /* starts with "PROXY " */
	PP_DETECT_V2,            /* starts with the 12-octet signature */
};
enum pp_detect pp_detect(const uint8_t *p, size_t len);

enum pp_family { PP_AF_UNSPEC = 0, PP_AF_INET, PP_AF_INET6, PP_AF_UNIX };

struct pp_span { const uint8_t *p; size_t len; };

struct pp_addr {
	uint8_t ip[16];          /* 4 octets used for PP_AF_INET, network order */
	uint16_t port;           /* host order */
};

struct pp_ssl {
	bool present;
	uint8_t client;          /* PP2_CLIENT_* bits */
	uint32_t verify;         /* host order */
	struct pp_span version, cn, cipher, sig_alg, key_alg;
};

struct pp_result {
	unsigned version;        /* 1 or 2 */
	bool local;              /* v2 LOCAL, v1 UNKNOWN, or v2 UNSPEC: keep the socket's addresses */
	enum pp_family family;
	struct pp_addr src, dst; /* for INET / INET6 */
	struct pp_span unix_src, unix_dst;  /* for UNIX: 108 octets each, as sent */
	struct pp_span alpn, authority, unique_id, netns;
	bool crc32c_checked;     /* a CRC32C TLV was present and matched */
	struct pp_ssl ssl;
	size_t header_len;
};

/* Parse the header at the start of p[0..len). max_len caps a v2 header's total size
 * (PP_V2_HDR .. PP_V2_MAX; a v1 header is always capped at PP_V1_MAX). */
enum pp_rc pp_parse(const uint8_t *p, size_t len, size_t max_len, struct pp_result *r,
                    size_t *used, enum pp_err *err);

/* Builders (for the outbound side). Return the length written, or 0 if cap is too small.
 * src/dst are of `family` (PP_AF_INET or PP_AF_INET6); family PP_AF_UNSPEC builds
 * "PROXY UNKNOWN\r\n" (v1) or a LOCAL header (v2). */
size_t pp_build_v1(uint8_t *out, size_t cap, enum pp_family family,
                   const struct pp_addr *src, const struct pp_addr *dst);
struct pp_tlv { uint8_t type; const uint8_t *value; uint16_t len; };
/* v2 with optional TLVs; with_crc32c appends a CRC32C TLV computed over the result. */
size_t pp_build_v2(uint8_t *out, size_t cap, bool local, enum pp_family family,
                   const struct pp_addr *src, const struct pp_addr *dst,
                   const struct pp_tlv *tlvs, size_t ntlvs, bool with_crc32c);

#define PP2_TYPE_ALPN 0x01
#define PP2_TYPE_AUTHORITY 0x02
#define PP2_TYPE_CRC32C 0x03
#define PP2_TYPE_NOOP 0x04
#define PP2_TYPE_UNIQUE_ID 0x05
#define PP2_TYPE_SSL 0x20
#define PP2_SUBTYPE_SSL_VERSION 0x21
#define PP2_SUBTYPE_SSL_CN 0x22
#define PP2_SUBTYPE_SSL_CIPHER 0x23
#define PP2_SUBTYPE_SSL_SIG_ALG 0x24
#define PP2_SUBTYPE_SSL_KEY_ALG 0x25
#define PP2_TYPE_NETNS 0x30

#endif
