/* proto/smtp_addr — RFC 5321 Path parsing (with the RFC 6531 UTF-8 extensions) over a
 * byte range. Private to proto/smtp_srv; pure, no allocation.
 *
 *   Path       = "<" [ A-d-l ":" ] Mailbox ">"       ; the source route is parsed, dropped
 *   Mailbox    = Local-part "@" ( Domain / address-literal )
 *   Local-part = Dot-string / Quoted-string
 *
 * The parser starts at the '<' and stops after the matching '>'; what follows (ESMTP
 * parameters) is the caller's. Results are views into the input, never copies.
 */
#ifndef PROTO_SMTP_ADDR_H
#define PROTO_SMTP_ADDR_H

#include <stdbool.h>
#include <stddef.h>

/* RFC 5321 4.5.3.1.3: a path is at most 256 octets, punctuation included. */
#define SMTP_ADDR_PATH_MAX 256
#define SMTP_ADDR_DOMAIN_MAX 255
#define SMTP_ADDR_LABEL_MAX 63

/* flags for smtp_addr_parse_path() */
#define SMTP_ADDR_NULL_OK       (1u << 0)   /* "<>" is acceptable (reverse path) */
#define SMTP_ADDR_POSTMASTER_OK (1u << 1)   /* "<postmaster>" without a domain (RCPT) */

enum smtp_addr_err {
	SMTP_ADDR_OK = 0,
	SMTP_ADDR_E_BRACKET,     /* does not start with '<' or has no closing '>' */
	SMTP_ADDR_E_NULL,        /* "<>" where a mailbox is required */
	SMTP_ADDR_E_ROUTE,       /* malformed source route (A-d-l) */
	SMTP_ADDR_E_LOCAL,       /* malformed local part */
	SMTP_ADDR_E_DOMAIN,      /* malformed domain, or none */
	SMTP_ADDR_E_LITERAL,     /* malformed address literal */
	SMTP_ADDR_E_UTF8,        /* an octet >= 0x80 that is not well-formed UTF-8 */
	SMTP_ADDR_E_LENGTH,      /* path, domain or label too long */
};
const char *smtp_addr_strerror(enum smtp_addr_err e);

struct smtp_addr {
	const char *mbox;        /* Mailbox without route and brackets; mbox_len 0: "<>" */
	size_t mbox_len;
	const char *domain;      /* the part after the last '@' of mbox; domain_len 0 for */
	size_t domain_len;       /* "<>" and a bare "<postmaster>" */
	bool utf8;               /* the mailbox contains non-ASCII (needs SMTPUTF8) */
};

/* Parse the path at the start of [p, p+len). On SMTP_ADDR_OK, *a is filled and
 * *consumed is the length of the path, '<' and '>' included. */
enum smtp_addr_err smtp_addr_parse_path(const char *p, size_t len, unsigned flags,
                                        struct smtp_addr *a, size_t *consumed);

#endif
