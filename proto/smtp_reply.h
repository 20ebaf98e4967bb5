/* proto/smtp_reply — SMTP replies as a client reads them: a resumable, byte-driven parser
 * (RFC 5321 section 4.2). Used by ringblast, and by the outbound client to come.
 *
 * A reply is lines "ddd-text" ending with a line "ddd text" or "ddd"; codes 200-599, the
 * same on every line; lines end CRLF (a bare LF is taken: servers send it). The parser
 * keeps no more than the first line's text (cut at SMTP_REPLY_TEXT_MAX, non-printables as
 * '?') and whether a line's first word was PIPELINING (for EHLO replies). */
#ifndef PROTO_SMTP_REPLY_H
#define PROTO_SMTP_REPLY_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SMTP_REPLY_LINE_MAX 2048     /* octets of one line (RFC 5321 says 512) */
#define SMTP_REPLY_TEXT_MAX 160      /* of a reply's first line, kept for reports */

enum smtp_reply_rc { SMTP_REPLY_OK = 0, SMTP_REPLY_AGAIN, SMTP_REPLY_ERR };

struct smtp_reply {
	unsigned code;
	bool pipelining;                /* a line's keyword was PIPELINING (EHLO replies) */
	char text[SMTP_REPLY_TEXT_MAX]; /* the first line, cut, printable ASCII only */
};

struct smtp_reply_parser {
	struct smtp_reply r;            /* being assembled */
	unsigned len;                   /* octets of the current line, CR LF excluded */
	unsigned code;                  /* of the current line */
	unsigned lines;                 /* complete lines of this reply */
	unsigned tlen;                  /* octets in r.text */
	char kw[12];                    /* the current line's first word after the code */
	unsigned kwlen;                 /* sizeof kw + 1: too long to be a keyword we know */
	bool kwdone, more, cr;
};

void smtp_reply_parser_reset(struct smtp_reply_parser *rp);
/* Feed p[0..n). SMTP_REPLY_OK: one complete reply is in *out and *used octets were
 * consumed (call again with the rest); SMTP_REPLY_AGAIN: all consumed, the reply is not
 * complete; SMTP_REPLY_ERR: malformed (*err says why; the parser must be reset). */
enum smtp_reply_rc smtp_reply_feed(struct smtp_reply_parser *rp, const uint8_t *p, size_t n,
                                   size_t *used, struct smtp_reply *out, const char **err);

#endif
