/* proto/smtp_cli — the SMTP client side of one outbound connection as a pure state
 * machine: RFC 5321 with PIPELINING (RFC 2920), CHUNKING (RFC 3030), SIZE (RFC 1870),
 * 8BITMIME (RFC 6152) and SMTPUTF8 (RFC 6531). libc only: no sockets, no I/O, no clock.
 *
 * Who does what. The owner (core/deliver) connects, then smtp_cli_init() and loops:
 *   - server octets in: used = smtp_cli_input(c, p, n). Only complete reply lines are
 *     taken; the rest (part of a line) must be offered again, with more, later.
 *   - events out: while (smtp_cli_next(c, &ev)) act on ev (below).
 *   - command octets out: p = smtp_cli_out(c, &len); send them in order, then
 *     smtp_cli_out_done(c, n) for the n taken. The octets stay valid only until the next
 *     call that changes the output (out_done, input, send_msg, body_done, quit): copy them
 *     (net_stream_write) or keep the client untouched until the send is done.
 *   - a timer: smtp_cli_timeout(c) ms for the server's next reply in this state; on
 *     expiry the owner gives up on the connection (a temporary failure).
 *
 * Events, in the order they happen (smtp_cli_next pops the oldest; at most a few are ever
 * pending, and the owner must pop them: more than SMTP_CLI_EV_QUEUE is a broken invariant):
 *   READY     greeting and EHLO (or HELO) done, c->caps valid. smtp_cli_send_msg() or
 *             smtp_cli_quit() may follow. Again after every MSG_DONE.
 *   BODY      send the message body now, behind every command octet smtp_cli_out() has
 *             offered so far. c->body says how:
 *             SMTP_CLI_BODY_DATA: the body dot-stuffed with smtp_cli_dot_next(&c->dot, ..)
 *               (c->dot is reset at this event); then smtp_cli_body_done(), which queues
 *               the terminator.
 *             SMTP_CLI_BODY_BDAT: the BDAT command is in the output; send exactly `size`
 *               raw octets after it, then smtp_cli_body_done().
 *             While the owner sends, smtp_cli_timeout() is 0: the owner times each block
 *             with c->to.data_block itself.
 *   MSG_DONE  the transaction is over; smtp_cli_result(c, i) for i < c->nrcpt is
 *             recipient i's final reply. The client is READY again.
 *   FAIL      the connection is unusable: close it (a 4xx/5xx greeting, a 421 at any time,
 *             EHLO 4xx, HELO not 2xx, RSET not 2xx, a protocol error). ev.reply is the
 *             server's reply, or code 0 and a local text for a protocol error: "reply line
 *             too long", "too many reply lines", "malformed reply: LINE", "unexpected
 *             reply: TEXT", "unexpected reply to CMD: TEXT", "out of memory". Results
 *             decided before the failure stay readable (a refused RCPT); the recipients
 *             not decided yet give NULL: they are the owner's to defer.
 *   CLOSED    QUIT was answered (whatever the reply): close the connection.
 *   TLS       STARTTLS (smtp_cli_starttls) was answered 2xx: the owner starts its TLS
 *             handshake now. What the server sent after that reply is not read (the
 *             smtp_cli_input() that saw the reply returns the octets up to its end: the
 *             owner discards the rest, and the client ignores what it is offered until
 *             smtp_cli_tls_up()): plaintext before the handshake is never taken as a
 *             reply over TLS. When the handshake is done, smtp_cli_tls_up() sends EHLO
 *             again and READY follows with the capabilities said over TLS.
 *   TLS_REFUSED  STARTTLS was answered 4xx or 5xx (not 421): the client is READY again,
 *             in plaintext; the owner goes on without TLS or gives up (QUIT or close).
 * After FAIL or CLOSED the client takes no more commands and smtp_cli_input() consumes
 * and ignores everything.
 *
 * Replies are checked here, unconditionally: a line longer than SMTP_CLI_LINE_MAX octets
 * (CRLF excluded), a reply of more than SMTP_CLI_LINES_MAX lines, a line without a code
 * 200..599 followed by ' ', '-' or its end, a continuation line whose code differs, a
 * reply when none is expected: each fails the connection. A line ends at LF; a CR right
 * before it is dropped (a bare LF is taken: servers send it). Memory: the output holds
 * the commands of one transaction; results one entry per refused recipient.
 */
#ifndef PROTO_SMTP_CLI_H
#define PROTO_SMTP_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SMTP_CLI_TEXT_MAX  512    /* octets of reply text kept per reply */
#define SMTP_CLI_LINE_MAX  4096   /* octets of one reply line, CRLF excluded */
#define SMTP_CLI_LINES_MAX 200    /* lines of one reply */
#define SMTP_CLI_RCPT_MAX  10000  /* recipients of one transaction (the owner batches) */
#define SMTP_CLI_ADDR_MAX  256    /* octets of an address passed to send_msg (RFC 5321
                                     4.5.3.1.3 counts the brackets too: we are lenient) */
#define SMTP_CLI_HELO_MAX  255    /* octets of the HELO name kept */
#define SMTP_CLI_EV_QUEUE  8      /* events that may wait for smtp_cli_next() */

struct smtp_cli_reply {
	unsigned code;                     /* 0: none (a local protocol error) */
	/* All lines joined with " ", each without its CRLF; the first keeps its code
	 * ("550 5.1.1 <x>: unknown", the '-' of a multi-line reply's first line written as
	 * ' '), later lines without their "550-" prefix. NUL-terminated, cut at
	 * SMTP_CLI_TEXT_MAX; octets as received except NUL, CR and LF, which become '?'
	 * (the owner escapes for logs). */
	char text[SMTP_CLI_TEXT_MAX + 1];
	/* The command it answers, a static string: "connect" (greeting), "EHLO", "HELO",
	 * "MAIL FROM", "RCPT TO", "DATA", "BDAT", "end of DATA", "RSET", "QUIT", or "none"
	 * (a reply when no command was waiting for one). Never NULL. */
	const char *cmd;
};

/* Per-state reply timeouts, ms. 0 in a field: the RFC value. */
struct smtp_cli_timeouts {
	unsigned greeting, helo, mail, rcpt, data_init, data_block, data_end, rset, quit;
};
/* RFC 5321 4.5.3.2: greeting 5 min, MAIL 5, RCPT 5, DATA initiation 2, data block 3,
 * DATA termination 10 (also the reply to BDAT LAST); EHLO/HELO, RSET, QUIT 5 min. */
void smtp_cli_timeouts_rfc(struct smtp_cli_timeouts *t);

/* What EHLO announced (all false after HELO). Keywords are matched case-insensitively. */
struct smtp_cli_caps {
	bool esmtp, pipelining, chunking, size, eightbitmime, smtputf8, starttls,
	     enhancedstatuscodes;
	uint64_t size_max;                 /* SIZE n; 0: none announced (or unparsable) */
};

enum smtp_cli_ev_kind {
	SMTP_CLI_EV_NONE = 0,
	SMTP_CLI_EV_READY,
	SMTP_CLI_EV_BODY,
	SMTP_CLI_EV_MSG_DONE,
	SMTP_CLI_EV_FAIL,
	SMTP_CLI_EV_CLOSED,
	SMTP_CLI_EV_TLS,
	SMTP_CLI_EV_TLS_REFUSED,
};

enum smtp_cli_body { SMTP_CLI_BODY_DATA, SMTP_CLI_BODY_BDAT };

/* The reply each event carries: READY the EHLO/HELO reply; BODY the 354 (DATA) or the
 * last RCPT reply (BDAT); MSG_DONE the reply that ended the transaction; FAIL the reply
 * that failed the connection (code 0 + text: local); CLOSED the QUIT reply. */
struct smtp_cli_ev {
	enum smtp_cli_ev_kind kind;
	struct smtp_cli_reply reply;
};

/* need flags of smtp_cli_send_msg() */
#define SMTP_CLI_NEED_8BIT (1u << 0)       /* the body has 8-bit octets: BODY=8BITMIME */
#define SMTP_CLI_NEED_UTF8 (1u << 1)       /* an address is UTF-8: SMTPUTF8 */

enum smtp_cli_state {
	SMTP_CLI_ST_NONE = 0,   /* not initialised */
	SMTP_CLI_ST_GREETING,   /* connected, waiting for the greeting */
	SMTP_CLI_ST_EHLO,       /* EHLO sent, waiting for its reply */
	SMTP_CLI_ST_HELO,       /* HELO sent (EHLO refused with 5xx) */
	SMTP_CLI_ST_STARTTLS,   /* STARTTLS sent */
	SMTP_CLI_ST_TLS,        /* STARTTLS answered: the owner's handshake runs */
	SMTP_CLI_ST_READY,      /* idle: no reply expected */
	SMTP_CLI_ST_RSET,       /* a transaction: waiting for the reply to RSET, */
	SMTP_CLI_ST_MAIL,       /*   to MAIL, */
	SMTP_CLI_ST_RCPT,       /*   to RCPT number c->rcpt_replies, */
	SMTP_CLI_ST_DATA,       /*   to DATA */
	SMTP_CLI_ST_BODY,       /* the owner sends the body */
	SMTP_CLI_ST_BDAT,       /* BDAT LAST and its chunk sent: waiting for its reply */
	SMTP_CLI_ST_DOT,        /* end of data sent: waiting for the final reply */
	SMTP_CLI_ST_QUIT,       /* QUIT sent */
	SMTP_CLI_ST_CLOSED,     /* QUIT answered */
	SMTP_CLI_ST_FAILED,     /* EV_FAIL given */
};

/* Dot-stuffing without copying (RFC 5321 4.5.2). Lines end CRLF; a '.' that begins a
 * line (the body's first octet, or the first after a CRLF) gets a second one. */
struct smtp_cli_dot {
	int st;                            /* 0: at the start of a line */
};
void smtp_cli_dot_init(struct smtp_cli_dot *d);
/* The length of the prefix of p[0..n) to send verbatim. When *insert_dot, the owner then
 * sends "." and continues at p + ret (where the line's own '.' is; the next call passes
 * it). Correct across any split of the body into calls. */
size_t smtp_cli_dot_next(struct smtp_cli_dot *d, const char *p, size_t n, bool *insert_dot);
/* p[0..n) goes out verbatim because the owner knows that no line of it begins with '.'
 * (a message the server stored with SMTP_SRV_NODOT): only the state is brought to where
 * smtp_cli_dot_next would leave it, without reading the text (its last two octets). */
void smtp_cli_dot_plain(struct smtp_cli_dot *d, const char *p, size_t n);

struct smtp_cli_step;
struct smtp_cli {
	/* public, read-only for the owner (dot: the owner's to drive, see BODY) */
	enum smtp_cli_state state;
	struct smtp_cli_caps caps;
	struct smtp_cli_timeouts to;       /* as passed to init, zeros filled in */
	enum smtp_cli_body body;           /* how the current message's body goes */
	struct smtp_cli_dot dot;           /* the owner's dot-stuffer for a DATA body */
	unsigned long transactions;        /* begun on this connection (MAIL sent) */
	unsigned long messages;            /* ended with MSG_DONE */
	size_t nrcpt;                      /* recipients of the current/last send_msg */
	size_t rcpt_sent;                  /* of them, RCPT commands to send (valid address) */
	size_t rcpt_replies;               /* RCPT replies read in this transaction */
	size_t accepted;                   /* RCPT accepted (2xx) in this transaction */
	uint64_t size;                     /* of the current message, as passed */
	bool tls;                          /* smtp_cli_tls_up() was called: over TLS */
	uint64_t tls_ignored;              /* octets offered while in ST_TLS, not read */

	/* private */
	char helo[SMTP_CLI_HELO_MAX + 1];
	bool mail_ok;                      /* MAIL got 2xx */
	bool pending_rset;                 /* the next transaction begins with RSET */
	bool held;                         /* BDAT: its reply came while the owner sent */
	struct smtp_cli_reply held_reply;

	/* the reply being read */
	struct smtp_cli_reply cur;
	size_t cur_len;                    /* octets in cur.text */
	unsigned cur_lines;
	struct smtp_cli_caps cur_caps;     /* keywords of an EHLO reply being read */

	/* output: [out_off, out_rel) is offered; [out_rel, out_len) is formatted but held
	 * until its turn (one command at a time without PIPELINING) */
	char *out;
	size_t out_off, out_rel, out_len, out_cap;

	/* the transaction's steps ([RSET] MAIL RCPT... [DATA]); the send half releases them,
	 * the receive half walks them */
	struct smtp_cli_step *steps;
	size_t nsteps, steps_cap, sent, recv;

	/* results: res[i] indexes pool (SIZE_MAX: none yet); shared, when set, answers for
	 * every recipient (a local refusal of the whole message) */
	size_t *res;
	size_t res_cap;
	struct smtp_cli_reply *pool;
	size_t npool, pool_cap;
	bool shared;
	struct smtp_cli_reply local;

	/* events */
	struct smtp_cli_ev ev[SMTP_CLI_EV_QUEUE];
	unsigned ev_head, ev_n;
};

/* On fresh (or freed) memory. helo_name is copied (cut at SMTP_CLI_HELO_MAX; octets
 * outside 0x21..0x7e as '?'; NULL or "" as "localhost"). t NULL: RFC timeouts. The client
 * waits for the greeting. Allocates nothing. */
void smtp_cli_init(struct smtp_cli *c, const char *helo_name, const struct smtp_cli_timeouts *t);
void smtp_cli_free(struct smtp_cli *c);   /* releases memory; init again to reuse */

/* Server octets: complete reply lines only; returns the octets used. The rest is part of
 * a line (at most SMTP_CLI_LINE_MAX + 1 octets, beyond which it fails): offer it again
 * with more. After FAIL/CLOSED: returns n. */
size_t smtp_cli_input(struct smtp_cli *c, const char *p, size_t n);
const char *smtp_cli_out(const struct smtp_cli *c, size_t *len);
void smtp_cli_out_done(struct smtp_cli *c, size_t n);
bool smtp_cli_next(struct smtp_cli *c, struct smtp_cli_ev *ev);

/* Start a transaction (state READY only): MAIL FROM:<sender> (+ " SIZE=size" when SIZE
 * was offered, " BODY=8BITMIME" when need 8BIT and 8BITMIME was offered, " SMTPUTF8"
 * when need UTF8), RCPT TO:<r> for each, then DATA unless CHUNKING was offered (BDAT
 * then). A reused connection begins with RSET. With PIPELINING all of it is one output,
 * otherwise one command per reply. sender "" is the null sender; addresses are without
 * brackets. size: octets of the body as stored (CRLF lines, not dot-stuffed).
 * Returns 0, or -1 when refused locally with nothing queued and the client still READY;
 * then every recipient's result (smtp_cli_result) is one local reply:
 *   size > caps.size_max (when announced)  552 5.3.4 Message size exceeds fixed maximum
 *                                              message size
 *   need UTF8 without SMTPUTF8             553 5.6.7 SMTPUTF8 is required, but was not
 *                                              offered by the server
 *   n == 0 or n > SMTP_CLI_RCPT_MAX        452 4.5.3 Too many recipients for one
 *                                              transaction (n == 0: "No recipients")
 *   a sender with a control octet (C0, DEL) or over SMTP_CLI_ADDR_MAX
 *                                          501 5.1.7 Bad sender address syntax
 *   not READY (greeting, closed, ...)      451 4.3.0 SMTP client not ready
 *   out of memory                          451 4.3.0 Insufficient system resources
 * A recipient with a control octet or over SMTP_CLI_ADDR_MAX is not sent; its result is
 * "501 5.1.3 Bad recipient address syntax" (when that leaves none: -1, each its own).
 * Local results have cmd "MAIL FROM" ("RCPT TO" for a bad recipient). Without 8BITMIME a
 * body that needs 8BIT is sent as it is (Postfix's default). Called while a transaction
 * is under way (a caller's bug): -1 and nothing changes, its results included. */
int smtp_cli_send_msg(struct smtp_cli *c, const char *sender, const char *const *rcpt, size_t n,
                      uint64_t size, unsigned need);
/* BODY only. DATA: the owner has queued the whole dot-stuffed body through c->dot; the
 * terminator is queued (".\r\n", after "\r\n" when the body did not end in CRLF).
 * BDAT: the owner has sent the raw body. Either way: the final reply is awaited. */
void smtp_cli_body_done(struct smtp_cli *c);
/* After MSG_DONE, a -1 from send_msg, or FAIL: recipient i's result (NULL: i >= nrcpt,
 * or undecided when the connection failed). Valid until the next send_msg. */
const struct smtp_cli_reply *smtp_cli_result(const struct smtp_cli *c, size_t i);
/* READY only (otherwise nothing happens: the owner just closes): QUIT; CLOSED on its
 * reply. */
void smtp_cli_quit(struct smtp_cli *c);
/* READY only, after an EHLO that offered STARTTLS, not yet over TLS: STARTTLS (alone, never
 * pipelined). 0, or -1 when not allowed now (nothing happens). TLS or TLS_REFUSED
 * follows. */
int smtp_cli_starttls(struct smtp_cli *c);
/* TLS state only: the handshake is done; EHLO goes out again (RFC 3207 4.2: what was
 * learnt before is forgotten). */
void smtp_cli_tls_up(struct smtp_cli *c);
/* ms to wait for the server's next reply now; 0 when none is awaited (READY, BODY,
 * CLOSED, FAILED). */
unsigned smtp_cli_timeout(const struct smtp_cli *c);
/* "greeting", "ehlo", "helo", "starttls", "tls handshake", "ready", "rset", "mail", "rcpt", "data", "body", "bdat",
 * "dot", "quit", "closed", "failed" ("none" before init). */
const char *smtp_cli_state_name(const struct smtp_cli *c);

#endif
