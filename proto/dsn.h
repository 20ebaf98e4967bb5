/* proto/dsn — an RFC 3464 delivery status notification (a bounce, or a delay warning),
 * built in the shape of Postfix's bounce(8) reports. Pure: libc and malloc only, no
 * clock (times are passed in), no I/O.
 *
 * The result is one whole message, headers and body, CRLF lines, every line at most
 * DSN_LINE_MAX octets, no bare CR or LF, no NUL:
 *
 *   From: MAILER-DAEMON@<reporting_mta> (Mail Delivery System)
 *   To: <sender>
 *   Subject: Undelivered Mail Returned to Sender      ("Delayed Mail (still being
 *   Date: <now, RFC 5322, +0000>                        retried)" when every rcpt is
 *   Message-ID: <dsn_qid.dsn@reporting_mta>             DSN_DELAYED)
 *   Auto-Submitted: auto-replied
 *   MIME-Version: 1.0
 *   Content-Type: multipart/report; report-type=delivery-status; boundary="B"
 *   Content-Transfer-Encoding: 7bit | 8bit
 *   part 1  text/plain; charset=us-ascii: the explanation, then one paragraph a recipient,
 *           "<rcpt>: host H said: DIAG (in reply to CMD command)", wrapped at 78 with
 *           continuation lines indented by four spaces
 *   part 2  message/delivery-status: Reporting-MTA, X-Ringrelay-Queue-ID,
 *           X-Ringrelay-Sender, Arrival-Date (omitted when arrival is 0); then a block a
 *           recipient: Final-Recipient, Action, Status, Remote-MTA (when known),
 *           Diagnostic-Code (when known: "smtp; " with a remote_mta, "X-Ringrelay; "
 *           without: a local reason), Last-Attempt-Date (= now). Original-Recipient and
 *           Will-Retry-Until are not written.
 *   part 3  text/rfc822-headers: the original's header section
 *
 * Untrusted fields (rcpt, diag, in_reply_to, remote_mta, sender, qid) are written as
 * 7-bit text wherever they go: printable ASCII as is; CR, LF and HT as a space (a
 * multi-line reply reads as one line); other control octets and DEL as '?'; octets of
 * 0x80 and above escaped as "\xHH" (valid UTF-8 too: the generated parts stay US-ASCII;
 * a backslash of the input is not escaped). Each is cut to a fixed length (marked
 * "..."): rcpt and sender 512 octets, remote_mta 255, in_reply_to 64, qid 64, diag 4096.
 * One pair of enclosing angle brackets of rcpt and sender is dropped. Empty diag and
 * remote_mta count as NULL. reporting_mta and dsn_qid, ours but sanitized all the same,
 * keep [A-Za-z0-9.-] and [A-Za-z0-9_-] (others become '-' and '_'), reporting_mta
 * without empty labels. Every line a field lands on starts with a field name, '<'
 * or white space, so none can start a header or a MIME delimiter ("--").
 *
 * Status: class "." subject "." detail (RFC 3463: class 2, 4 or 5, subject and detail
 * 1-3 digits); DSN_FAILED takes class 4 or 5 (Postfix fails an expired message with
 * 4.x.x), DSN_DELAYED class 4; anything else becomes "5.0.0" (FAILED) or "4.0.0"
 * (DELAYED).
 *
 * The original (orig, untrusted) contributes its header section only: the lines up to
 * the first empty one, or all of it when there is none. A line ends at CRLF, bare LF or
 * bare CR (each written as CRLF); NUL becomes '?'; a line over DSN_LINE_MAX is cut
 * there; the section is cut on a line boundary so that at most DSN_HEADERS_MAX octets
 * (CRLFs counted) are returned. Its 8-bit octets are kept: the part and the message
 * then say Content-Transfer-Encoding: 8bit, and the caller must send with
 * BODY=8BITMIME (dsn_8bit() tells). Everything else is 7-bit.
 *
 * The boundary is "<dsn_qid>.<now>/<16 hex digits>" (<= 70 octets): the first value of
 * the counter (from 0) whose boundary occurs nowhere in the preamble or any part, so it
 * can neither be forged by the original's headers nor by a remote reply. All occurrences
 * of the prefix are collected in one pass, so the choice is linear in the size of the
 * report whatever the content. */
#ifndef PROTO_DSN_H
#define PROTO_DSN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DSN_HEADERS_MAX (64u << 10)  /* octets of the original's header section returned at most */
#define DSN_LINE_MAX 998             /* RFC 5322 2.1.1, CRLF excluded */

enum dsn_action { DSN_FAILED, DSN_DELAYED };

struct dsn_rcpt {
	const char *rcpt;         /* the recipient address as given in RCPT TO (untrusted bytes); not NULL */
	const char *status;       /* "5.1.1", "4.4.1", ... (validated, see above), or NULL */
	enum dsn_action action;
	const char *remote_mta;   /* host name of the server that answered, or NULL */
	const char *diag;         /* the server's reply ("550 5.1.1 <x>: user unknown") or a local reason, untrusted, or NULL */
	const char *in_reply_to;  /* "RCPT TO", "end of DATA", ... or NULL */
};

struct dsn_msg {
	const char *reporting_mta;   /* our host name; not NULL nor empty */
	const char *qid;             /* the original message's queue id, or NULL (field omitted) */
	const char *sender;          /* the original envelope sender: the DSN's To:; not NULL nor empty */
	uint64_t arrival;            /* unix seconds, the original's arrival; 0: unknown */
	uint64_t now;                /* unix seconds */
	const struct dsn_rcpt *rcpt; size_t nrcpt;
	const uint8_t *orig; size_t orig_len;   /* the original message as stored (CRLF lines), untrusted: only its header section is returned, capped */
	const char *dsn_qid;         /* the queue id the DSN itself gets (for its Message-ID and boundary); not NULL */
};

/* The whole DSN message (headers and body, CRLF lines, every line <= 998 octets),
 * malloc'd; *len its size. NULL with errno ENOMEM, or EINVAL on bad arguments: m, len,
 * reporting_mta, sender or dsn_qid NULL, rcpt NULL or nrcpt 0, a rcpt[i].rcpt NULL,
 * reporting_mta or dsn_qid empty once sanitized, sender empty ("" or "<>": never a
 * bounce for a bounce). */
uint8_t *dsn_build(const struct dsn_msg *m, size_t *len);

/* true when [p, p+len) holds an octet >= 0x80: a DSN that must go with BODY=8BITMIME
 * (only the original's header section can make it so). */
bool dsn_8bit(const uint8_t *p, size_t len);

#endif
