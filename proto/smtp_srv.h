/* proto/smtp_srv — the inbound SMTP session as a pure state machine (RFC 5321 ESMTP).
 *
 * No I/O: the caller feeds received bytes with smtp_srv_feed() and sends whatever the
 * session wrote to its output (smtp_srv_out()). Because replies only accumulate until the
 * caller drains them, a pipelined group of commands fed in one call is answered with one
 * send. The caller owns the input: smtp_srv_feed() reports how many bytes it consumed;
 * unconsumed bytes must be fed again later (after the event is handled).
 *
 * Lifecycle of one message:
 *   feed(...) -> SMTP_SRV_EV_MESSAGE: the complete message is available through
 *   smtp_srv_message() (valid until smtp_srv_queued/queue_failed). The session now waits:
 *   further feeds consume nothing and return SMTP_SRV_EV_WAIT until the caller reports
 *   the spool result with smtp_srv_queued() ("250 2.0.0 Ok: queued as QID") or
 *   smtp_srv_queue_failed() ("451 4.3.0 Error: queue file write error"), or answers it
 *   itself with smtp_srv_refuse() (a sink that defers or rejects on purpose).
 *
 * Limits are enforced here, unconditionally: command lines longer than
 * SMTP_SRV_CMD_MAX octets, DATA text lines longer than max_line_length octets, message
 * size, recipients, errors. Only CRLF.CRLF ends DATA; a bare CR or LF anywhere in a
 * command or in the data rejects that command or that message
 * ("550 5.5.2 Error: bare <LF> received"), and nothing is queued for it.
 */
#ifndef PROTO_SMTP_SRV_H
#define PROTO_SMTP_SRV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define SMTP_SRV_CMD_MAX 512      /* octets of a command line, CRLF excluded */
#define SMTP_SRV_QID_MAX 32       /* queue id buffer size, NUL included */
#define SMTP_SRV_DATA_MIN 4096u   /* a message buffer's smallest (first) allocation */

struct smtp_srv;

struct smtp_srv_limits {
	uint64_t max_message_size;    /* octets of message data (after the Received header) */
	unsigned max_recipients;
	unsigned max_line_length;     /* octets before CRLF in DATA */
	unsigned max_errors;          /* 20: then 421 4.7.0 Error: too many errors, close */
};

struct smtp_srv_ops {
	/* May this client relay to a recipient in `domain` (not NUL-terminated, as sent)?
	 * The caller decides from the client address (relay.networks) and relay.domains. */
	bool (*rcpt_allowed)(void *ctx, const char *domain, size_t len);
	/* Write a new unique queue id into buf (NUL-terminated, < SMTP_SRV_QID_MAX). Called
	 * once per transaction, when MAIL is accepted. false: no id can be made now; MAIL is
	 * answered "451 4.3.0 Error: queue file write error" (not counted as a client error). */
	bool (*new_qid)(void *ctx, char *buf, size_t cap);
	/* Wall-clock time for the Received: header (tests pass a fixed one). */
	time_t (*now)(void *ctx);
	/* Optional (NULL: always): is there room for a message of size octets now (its MAIL
	 * SIZE= parameter, 0 when none was given)? false: MAIL is answered "452 4.3.1
	 * Insufficient system storage" (Postfix's words for its queue_minfree; not counted as
	 * a client error: it is ours). The end of data is checked again by the caller. */
	bool (*mail_room)(void *ctx, uint64_t size);
	/* Optional (both NULL: no budget): the message buffer's octets, charged to the
	 * caller's memory budget while the session holds them. mem_take(n): may the buffer
	 * grow by n octets? false: nothing more of this message is kept (what was is freed at
	 * once, mem_give) and its end of data is answered "452 4.3.1 Insufficient system
	 * storage"; at DATA, DATA itself is, "451 4.3.1 ..." (the transaction is reset; a first
	 * buffer sized by the session's last message is asked again at the smallest size
	 * first). Neither is counted as a client error. mem_give(n): n octets freed, or
	 * handed over (smtp_srv_take_data). */
	bool (*mem_take)(void *ctx, size_t n);
	void (*mem_give)(void *ctx, size_t n);
};

enum smtp_srv_ev {
	SMTP_SRV_EV_NONE = 0,   /* all input consumed; feed more when it arrives */
	SMTP_SRV_EV_MESSAGE,    /* a message is complete: spool it, then queued()/queue_failed() */
	SMTP_SRV_EV_WAIT,       /* waiting for queued()/queue_failed(); nothing consumed */
	SMTP_SRV_EV_CLOSE,      /* send the output, then close (QUIT, too many errors, ...) */
	SMTP_SRV_EV_STARTTLS,   /* "220 2.0.0 Ready to start TLS" is in the output and nothing
	                           behind the STARTTLS line was consumed: send the output in
	                           plaintext, DROP every octet received after the command
	                           (CVE-2011-0411), then speak TLS; the session is back to
	                           before EHLO (RFC 3207 4.2) and its TLS is active */
};

/* TLS as the session sees it (the caller does the TLS). */
enum smtp_srv_tls {
	SMTP_SRV_TLS_NONE = 0,  /* not available: STARTTLS is an unknown command */
	SMTP_SRV_TLS_OFFER,     /* EHLO offers STARTTLS */
	SMTP_SRV_TLS_REQUIRE,   /* offered, and MAIL before it is "530 5.7.0 Must issue a
	                           STARTTLS command first" */
	SMTP_SRV_TLS_ACTIVE,    /* on (after STARTTLS, or implicit TLS): never offered again
	                           ("554 5.5.1 Error: TLS already active"); Received: says
	                           ESMTPS (SMTPS after HELO, UTF8SMTPS with SMTPUTF8) */
};

enum smtp_srv_flag {
	SMTP_SRV_8BITMIME = 1u << 0,   /* BODY=8BITMIME was given */
	SMTP_SRV_SMTPUTF8 = 1u << 1,   /* SMTPUTF8 was given */
	SMTP_SRV_NODOT = 1u << 2,      /* no line of the data begins with '.': the client
	                                  stuffed none (set by the server at the end of data;
	                                  the data may go out again without dot-stuffing) */
};

/* The message handed over at SMTP_SRV_EV_MESSAGE. All pointers are owned by the
 * session and valid until smtp_srv_queued()/smtp_srv_queue_failed(). */
struct smtp_srv_msg {
	const char *qid;               /* as new_qid wrote it, octets outside 0x21..0x7e as '?' */
	const char *helo;              /* first word of HELO/EHLO, same escaping (Postfix's) */
	const char *mail_from;         /* the reverse path without <>; "" for the null sender */
	const char *const *rcpt;       /* forward paths without <> */
	size_t nrcpt;
	unsigned flags;                /* enum smtp_srv_flag */
	const uint8_t *data;           /* Received: header + message, dot-unstuffed, CRLF lines,
	                                  without the terminating "." line */
	size_t len;
};

/* hostname and peer are copied. peer is the client as shown in the Received: header and
 * in replies, e.g. "203.0.113.9" or "2001:db8::1". In the copies (and in the queue id)
 * every octet outside 0x21..0x7e is replaced by '?': nothing the session writes into
 * Received: or a reply can carry CR, LF, NUL or a control character. */
struct smtp_srv *smtp_srv_new(const char *hostname, const char *peer,
                              const struct smtp_srv_limits *lim,
                              const struct smtp_srv_ops *ops, void *ctx);
void smtp_srv_free(struct smtp_srv *s);   /* NULL is a no-op */

/* Replace the peer (after a PROXY header changed who the client is; escaped as in
 * smtp_srv_new). Before start(). */
int smtp_srv_set_peer(struct smtp_srv *s, const char *peer);

/* How TLS stands (before start(), or ACTIVE for implicit TLS). */
void smtp_srv_set_tls(struct smtp_srv *s, enum smtp_srv_tls t);

/* Write the 220 banner to the output. Call once, when the session may speak. */
void smtp_srv_start(struct smtp_srv *s);

/* Feed received bytes. *consumed is set to the number of bytes used (all of them unless
 * the return is SMTP_SRV_EV_MESSAGE, SMTP_SRV_EV_WAIT or SMTP_SRV_EV_CLOSE). */
enum smtp_srv_ev smtp_srv_feed(struct smtp_srv *s, const uint8_t *p, size_t len,
                               size_t *consumed);

const struct smtp_srv_msg *smtp_srv_message(const struct smtp_srv *s);
void smtp_srv_queued(struct smtp_srv *s);        /* 250 2.0.0 Ok: queued as QID */
/* The message's data (smtp_srv_message()->data, ->len octets) in a buffer the caller
 * owns (free()): a large message's own buffer, handed over so that its octets need not be
 * copied once more to be kept (the session forgets it); a small one's (up to
 * SRV_DATA_KEEP, 64 KiB) a copy, the session keeping its buffer for the next message.
 * NULL when there is no message waiting for its answer (or no memory for the copy).
 * smtp_srv_message()->data must not be read through the message after this. The next
 * message's buffer is then allocated at the size of this one (up to SRV_DATA_HINT_MAX),
 * so that a run of similar messages is not grown and copied again each time. */
uint8_t *smtp_srv_take_data(struct smtp_srv *s);
void smtp_srv_queue_failed(struct smtp_srv *s);  /* 451 4.3.0 Error: queue file write error */
/* Answer the pending message (after SMTP_SRV_EV_MESSAGE) with `reply`, one 4xx/5xx reply
 * line without CRLF (e.g. "554 5.7.1 Error: rejected"), instead of 250; the transaction
 * ends as with smtp_srv_queue_failed(). It is the caller's decision, not the client's
 * fault: it does not count towards max_errors. A reply that is not a single 4xx/5xx line
 * is a broken invariant (abort). */
void smtp_srv_refuse(struct smtp_srv *s, const char *reply);

/* Session-level events decided by the caller; each writes its reply to the output and
 * puts the session in the closing state (smtp_srv_closing() then returns true):
 *   idle timeout  -> "421 4.4.2 HOSTNAME Error: timeout exceeded"
 *   shutdown      -> "421 4.3.2 HOSTNAME Service shutting down" */
void smtp_srv_timeout(struct smtp_srv *s);
void smtp_srv_shutdown(struct smtp_srv *s);
bool smtp_srv_closing(const struct smtp_srv *s);
/* True between the end of a transaction's DATA command acceptance (354) and the end of
 * its spool result, i.e. while a graceful shutdown should wait for this session. */
bool smtp_srv_in_transaction(const struct smtp_srv *s);
/* True while message data is being read (after the 354, before the end of data). */
bool smtp_srv_in_data(const struct smtp_srv *s);

/* Pending output. smtp_srv_out_consume() drops n octets from its front. */
const uint8_t *smtp_srv_out(const struct smtp_srv *s, size_t *len);
void smtp_srv_out_consume(struct smtp_srv *s, size_t n);

#endif
