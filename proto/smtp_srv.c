/* proto/smtp_srv — the inbound SMTP session as a pure state machine; see smtp_srv.h.
 *
 * Shape (OpenSMTPD style): one state enum, changed only by srv_enter(); one const command
 * table {verb, check, run}: check replies 503/554 and refuses without touching the state,
 * run parses the arguments and acts. Two resumable byte lexers feed it: the command-line
 * assembler (srv_cmd_feed) and the DATA lexer (srv_data_feed). Both work octet by octet
 * with all their state in the session, so a stream split anywhere is handled exactly as
 * the same stream in one piece. The DATA lexer has a bulk path (srv_data_bulk) for runs of
 * plain lines, which takes only what the octet-by-octet path would merely have copied.
 *
 * SMTP smuggling (bare line endings). A line ends at LF and only at LF. A CR is held
 * until the next octet shows whether it is part of CRLF; if not, it is a bare CR and
 * counts as ordinary line content. A LF without CR before it is a bare LF. Either one
 * rejects the whole command line (550 5.5.2, counted as an error) or, in DATA, the whole
 * message: reading goes on until the real CRLF "." CRLF and nothing is handed out.
 * The end of DATA is recognised only as a line that is exactly "." which ends in CRLF
 * and which itself began after CRLF (or right after the 354). So "\n.\n", "\n.\r\n",
 * "\r\n.\n" and "\r.\r\n" never end the data, and what a smuggler puts behind them is
 * message text of a message that is refused.
 *
 * Decisions where DESIGN.md and the header are silent:
 * - Limits of 0 mean "use the default" (50 MiB, 1000 recipients, 998 octets, 20 errors),
 *   so memory stays bounded whatever the caller passes.
 * - max_line_length counts the octets of a DATA line before CRLF after dot-unstuffing
 *   (RFC 5321 4.5.3.1.6 does not count the transparency dot). A longer line makes the
 *   message fail at its end with "550 5.6.0 Error: message line too long".
 * - max_message_size counts the unstuffed data with its CRLFs, without our Received:.
 * - When a message has several defects, the reply names the most important: a bare
 *   line ending (the first one seen), then an over-long line, then the size. A command
 *   line likewise: bare line ending, then "command too long", then a NUL octet
 *   ("500 5.5.2 Error: bad syntax"; NUL is not allowed in commands).
 * - Every 4xx/5xx reply to a client command or to the end of its data counts as an
 *   error. "451 queue file write error" does not: it is our fault, not the client's;
 *   nor does a smtp_srv_refuse() reply (the caller's choice).
 * - Addresses must be in angle brackets ("MAIL FROM:user@host" is 501 5.1.7). Spaces
 *   after the colon and between parameters are tolerated; parameters are
 *   space-separated. RCPT takes no parameters (we advertise none): 555.
 * - Non-ASCII in an address without SMTPUTF8 on MAIL: Postfix's
 *   "553 5.6.7 Must declare SMTPUTF8 to send unicode address".
 * - Bad SIZE value: Postfix's "501 5.5.4 Bad message size syntax".
 * - HELO/EHLO keep the first word of the argument. HELO without one answers
 *   "501 5.5.4 Syntax: HELO hostname". RSET and DATA with arguments: 501 Syntax.
 * - "<postmaster>" (any case, no domain) is accepted without asking rcpt_allowed
 *   (RFC 5321 4.5.1: it must always be accepted). rcpt_allowed gets the domain as
 *   sent, "[192.0.2.7]" for an address literal.
 * - Recipients are checked in this order: syntax, parameters, SMTPUTF8, the limit
 *   (452), the relay decision (554). Duplicates are kept (as Postfix's smtpd does).
 * - Received: follows Postfix: with one recipient "... id QID\r\n\tfor <rcpt>; DATE",
 *   otherwise "... id QID;\r\n\tDATE". The time is taken when DATA is accepted. The
 *   protocol is ESMTP or SMTP (EHLO or HELO), UTF8SMTP when SMTPUTF8 was given
 *   (RFC 6531 3.7.3). An IPv6 peer is written [IPv6:addr] as RFC 5321 literals are.
 * - Untrusted octets never reach Received: or a reply (issue 7, defect 10). Every field
 *   is escaped where it enters the session, one '?' per octet, so lengths never change:
 *   . the HELO/EHLO name (the client's): every octet outside 0x21..0x7e, as Postfix's
 *     smtpd does (printable(..., '?')); smtp_srv_msg.helo is this escaped name;
 *   . hostname and peer (smtp_srv_new, smtp_srv_set_peer) and the queue id (new_qid):
 *     the caller's, held to the same rule, so not even a caller's bug can put CR, LF,
 *     NUL or a control into the header or a reply;
 *   . the recipient in "for <...>" and in "554 <...>: Relay access denied": it went
 *     through smtp_addr (no C0 controls, no DEL, no NUL; octets >= 0x80 only as
 *     well-formed UTF-8 and only under SMTPUTF8; spaces only inside a quoted local part)
 *     and is written as parsed, except that a C1 control (U+0080..U+009F) and the line
 *     and paragraph separators U+2028/U+2029 (line breaks to some header parsers) become
 *     one '?' per octet, and, should the SMTPUTF8 rule ever be bypassed, so does every
 *     octet >= 0x80 of a message without SMTPUTF8. smtp_srv_msg.rcpt stays as sent:
 *     it is the address mail is delivered to.
 * - STARTTLS (RFC 3207), when the caller made TLS available: arguments 501, inside a
 *   transaction 503 (Postfix's words), once TLS is active 554; accepted, it answers
 *   "220 2.0.0 Ready to start TLS", forgets HELO/EHLO and the transaction, consumes
 *   nothing behind its line and returns SMTP_SRV_EV_STARTTLS: the caller must drop what
 *   it holds behind it (CVE-2011-0411), never feed it. Without TLS it stays the unknown
 *   command it always was (502).
 * - ops->now may be NULL (time(NULL) is used); rcpt_allowed and new_qid may not.
 * - No printf on any path (issue 7 §3): a constant reply is one copy of a static string
 *   whose length the compiler knows (SRV_REPLY, SRV_SAY); a reply with a hostname, queue
 *   id or address, and the Received: header, are copied from pieces (SRV_SAYV, srv_cat).
 *   The only numbers are formatted once: SIZE per session, the date at most once a
 *   second per session (a cache of a pure function of ops->now).
 * - A failed allocation closes the session: "421 4.3.0 HOSTNAME Error: insufficient
 *   system resources" (written if the output can still take it) and SMTP_SRV_EV_CLOSE.
 * - smtp_srv_timeout()/shutdown() while a message waits for its spool result: the
 *   message stays valid until queued()/queue_failed(), which then only release it.
 */
#include "proto/smtp_srv.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proto/smtp_addr.h"

#define SRV_ASSERT(x)                                                              \
	do {                                                                       \
		if (!(x)) {                                                        \
			fprintf(stderr, "%s:%d: broken invariant: %s\n", __FILE__, \
			        __LINE__, #x);                                     \
			abort();                                                   \
		}                                                                  \
	} while (0)

#define SRV_DEF_MESSAGE_SIZE 52428800u
#define SRV_DEF_RECIPIENTS   1000u
#define SRV_DEF_LINE_LENGTH  998u
#define SRV_DEF_ERRORS       20u
#define SRV_RCPT_OVERSHOOT   1000u           /* Postfix's smtpd_recipient_overshoot_limit */

#define SRV_OUT_MIN   512u             /* first output allocation */
#define SRV_DATA_KEEP (64u * 1024u)    /* a larger message buffer is freed after use */
#define SRV_DATA_HINT_MAX (1u << 20)   /* a buffer handed over (smtp_srv_take_data) makes
                                          the next one this large at most to begin with */
#define SRV_DATE_MAX  48u              /* "Wed, 31 Dec -2147481748 23:59:59 +0000" fits */

enum smtp_srv_state {
	SMTP_SRV_ST_NEW = 0,    /* created, banner not written yet */
	SMTP_SRV_ST_GREETED,    /* banner written; no HELO/EHLO yet */
	SMTP_SRV_ST_READY,      /* HELO/EHLO done, no transaction */
	SMTP_SRV_ST_MAIL,       /* MAIL accepted, no recipient yet */
	SMTP_SRV_ST_RCPT,       /* at least one recipient accepted */
	SMTP_SRV_ST_DATA,       /* 354 written, reading message data */
	SMTP_SRV_ST_QUEUE,      /* message handed out, waiting for the spool result */
	SMTP_SRV_ST_CLOSED,     /* last reply written; nothing more is consumed */
};

/* Why a command line or a message is refused. srv_bad_rank() orders them. */
enum smtp_srv_bad {
	SMTP_SRV_BAD_NONE = 0,
	SMTP_SRV_BAD_BARE_LF,   /* LF without CR before it */
	SMTP_SRV_BAD_BARE_CR,   /* CR without LF after it */
	SMTP_SRV_BAD_LONG,      /* line over its limit */
	SMTP_SRV_BAD_BIG,       /* message over max_message_size */
	SMTP_SRV_BAD_MEM,       /* the caller's memory budget refused it room (ops.mem_take) */
};

struct smtp_srv {
	enum smtp_srv_state state;
	char *hostname;                 /* escaped (srv_printable) */
	char *peer;                     /* escaped (srv_printable) */
	size_t host_len, peer_len;
	bool peer_v6;                   /* peer has a ':': Received: says [IPv6:peer] */
	char size[20];                  /* max_message_size in decimal, for EHLO */
	size_t size_len;
	struct smtp_srv_limits lim;
	struct smtp_srv_ops ops;
	void *ctx;
	unsigned errors;
	unsigned overshoot;             /* 452 too many recipients so far, not counted */
	bool esmtp;                     /* EHLO (not HELO) */
	bool oom;                       /* an allocation failed: close */
	bool mem_short;                 /* ops.mem_take refused the last growth */
	enum smtp_srv_tls tls;
	bool starttls;                  /* STARTTLS accepted: stop feeding, tell the caller */

	/* command-line assembler */
	char line[SMTP_SRV_CMD_MAX + 1];
	size_t ln_len;
	bool ln_cr;                     /* the last octet was CR, its LF not seen yet */
	bool ln_nul;
	enum smtp_srv_bad ln_bad;

	/* transaction */
	char helo[SMTP_SRV_CMD_MAX + 1];
	size_t helo_len;
	char qid[SMTP_SRV_QID_MAX];
	size_t qid_len;
	char mail_from[SMTP_ADDR_PATH_MAX + 1];
	unsigned flags;                 /* enum smtp_srv_flag */
	char **rcpt;
	size_t nrcpt, rcpt_cap;

	/* message: Received: header (hdr_len octets), then the unstuffed data */
	uint8_t *data;
	size_t data_len, data_cap, hdr_len;
	size_t data_hint;               /* the first allocation (the last handed-over size) */
	size_t d_line;                  /* octets on the current line, unstuffed */
	bool d_cr;                      /* the last octet was CR, its LF not seen yet */
	bool d_bol;                     /* at the beginning of a line */
	bool d_clean;                   /* this line began after CRLF or right after 354 */
	bool d_dot;                     /* the line began with a (removed) dot */
	size_t d_dots;                  /* transparency dots seen (the final "." one included) */
	enum smtp_srv_bad d_bad;
	bool msg_ready;
	struct smtp_srv_msg msg;

	/* Received: date, formatted for date_t (pure: a cache of srv_date(date_t)) */
	time_t date_t;
	char date[SRV_DATE_MAX];
	size_t date_len;                /* 0: nothing cached yet */

	/* output: replies not yet taken by the caller */
	uint8_t *out;
	size_t out_len, out_cap;
};

struct smtp_srv_cmd {
	char verb[4];                                       /* four letters, upper case */
	bool (*check)(struct smtp_srv *s);                  /* NULL: always allowed */
	void (*run)(struct smtp_srv *s, const char *arg, size_t len);
};

/* ---- state ------------------------------------------------------------------------ */

/* The only function that changes s->state. CLOSED is final. */
static void srv_enter(struct smtp_srv *s, enum smtp_srv_state st)
{
	SRV_ASSERT(s->state != SMTP_SRV_ST_CLOSED || st == SMTP_SRV_ST_CLOSED);
	s->state = st;
}

/* ---- escaping untrusted octets (see the top of the file) --------------------------- */

/* In place: every octet outside 0x21..0x7e becomes '?'. */
static void srv_printable(char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)p[i] < 0x21 || (unsigned char)p[i] > 0x7e)
			p[i] = '?';
}

/* A heap copy of a caller's string with srv_printable() applied; *len its length. */
static char *srv_printable_dup(const char *src, size_t *len)
{
	size_t n = strlen(src);
	char *p = malloc(n + 1);

	if (!p)
		return NULL;
	memcpy(p, src, n + 1);
	srv_printable(p, n);
	*len = n;
	return p;
}

/* In place, a copy of an accepted address (smtp_addr guarantees no C0, DEL or NUL and
 * well-formed UTF-8) for Received: or a reply: C1 controls and U+2028/U+2029 become '?'
 * per octet, and so does every octet >= 0x80 unless utf8 (SMTPUTF8) is set; C0 and DEL
 * would too. Same length. */
static void srv_addr_escape(char *p, size_t n, bool utf8)
{
	const unsigned char *u = (const unsigned char *)p;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = u[i];
		size_t bad;

		if (c >= 0x20 && c < 0x7f)
			continue;                         /* printable ASCII and space */
		if (c < 0x80 || !utf8)
			bad = 1;
		else if (c == 0xc2 && i + 1 < n && u[i + 1] >= 0x80 && u[i + 1] <= 0x9f)
			bad = 2;                          /* U+0080..U+009F */
		else if (c == 0xe2 && i + 2 < n && u[i + 1] == 0x80 &&
		         (u[i + 2] == 0xa8 || u[i + 2] == 0xa9))
			bad = 3;                          /* U+2028, U+2029 */
		else
			continue;
		memset(p + i, '?', bad);
		i += bad - 1;
	}
}

/* ---- output ----------------------------------------------------------------------- */

static bool srv_out_reserve(struct smtp_srv *s, size_t n)
{
	size_t cap = s->out_cap ? s->out_cap : SRV_OUT_MIN;
	uint8_t *q;

	if (s->out_cap - s->out_len >= n)
		return true;
	while (cap - s->out_len < n) {
		if (cap > SIZE_MAX / 2)
			goto fail;
		cap *= 2;
	}
	q = realloc(s->out, cap);
	if (!q)
		goto fail;
	s->out = q;
	s->out_cap = cap;
	return true;
fail:
	s->oom = true;
	return false;
}

/* Replies without printf (issue 7 §3: on the accept path of small messages printf was the
 * largest user-space cost after the DATA scan). A constant reply is one memcpy of a static
 * string, CRLF included, whose length the compiler knows; a reply with a variable part
 * (hostname, queue id, an address) is a list of pieces copied one after the other. */

/* A run of octets; SRV_LIT() makes one from a string literal, length at compile time. */
struct srv_str {
	const char *p;
	size_t n;
};
#define SRV_LIT(lit) ((struct srv_str){ "" lit "", sizeof(lit) - 1 })

static size_t srv_cat_len(const struct srv_str *v, size_t nv)
{
	size_t n = 0;

	for (size_t i = 0; i < nv; i++)
		n += v[i].n;
	return n;
}

/* Copy the pieces to q, one after the other; returns the end. */
static char *srv_cat(char *q, const struct srv_str *v, size_t nv)
{
	for (size_t i = 0; i < nv; i++) {
		memcpy(q, v[i].p, v[i].n);
		q += v[i].n;
	}
	return q;
}

static void srv_out_put(struct smtp_srv *s, const char *p, size_t n)
{
	if (!srv_out_reserve(s, n))
		return;
	memcpy(s->out + s->out_len, p, n);
	s->out_len += n;
}

/* One reply line made of pieces (CRLF added). */
static void srv_out_line(struct smtp_srv *s, const struct srv_str *v, size_t nv)
{
	size_t n = srv_cat_len(v, nv) + 2;
	char *q;

	if (!srv_out_reserve(s, n))
		return;
	q = srv_cat((char *)s->out + s->out_len, v, nv);
	memcpy(q, "\r\n", 2);
	s->out_len += n;
}

/* A 4xx or 5xx answer to a client's command counts as an error. */
static void srv_count(struct smtp_srv *s, char code)
{
	if (code == '4' || code == '5')
		s->errors++;
}

/* A constant line that is not an answer to a client's command (spool result): never
 * counted as a client error. */
#define SRV_SAY(s, lit) srv_out_put((s), "" lit "\r\n", sizeof(lit "\r\n") - 1)
/* A constant answer to a client's command. */
#define SRV_REPLY(s, lit)                                                   \
	do {                                                                \
		srv_count((s), (lit)[0]);                                   \
		srv_out_put((s), "" lit "\r\n", sizeof(lit "\r\n") - 1);    \
	} while (0)
/* The same with pieces: SRV_SAYV(s, SRV_LIT("250 "), piece, ...). */
#define SRV_PIECES(...) ((const struct srv_str[]){ __VA_ARGS__ })
#define SRV_NPIECES(...) (sizeof(SRV_PIECES(__VA_ARGS__)) / sizeof(struct srv_str))
#define SRV_SAYV(s, ...) srv_out_line((s), SRV_PIECES(__VA_ARGS__), SRV_NPIECES(__VA_ARGS__))
#define SRV_REPLYV(s, first, ...)                                               \
	do {                                                                    \
		srv_count((s), (first).p[0]);                                   \
		SRV_SAYV((s), first, __VA_ARGS__);                              \
	} while (0)
/* A reply line prepared elsewhere as a struct srv_str, CRLF included. */
static void srv_reply_str(struct smtp_srv *s, struct srv_str line)
{
	srv_count(s, line.p[0]);
	srv_out_put(s, line.p, line.n);
}
#define SRV_LINE(lit) SRV_LIT(lit "\r\n")

#define SRV_HOST(s) ((struct srv_str){ (s)->hostname, (s)->host_len })

/* After an answered command or message: too many errors ends the session. */
static void srv_check_errors(struct smtp_srv *s)
{
	if (s->state == SMTP_SRV_ST_CLOSED || s->errors < s->lim.max_errors)
		return;
	SRV_SAYV(s, SRV_LIT("421 4.7.0 "), SRV_HOST(s), SRV_LIT(" Error: too many errors"));
	srv_enter(s, SMTP_SRV_ST_CLOSED);
}

static void srv_close_oom(struct smtp_srv *s)
{
	SRV_SAYV(s, SRV_LIT("421 4.3.0 "), SRV_HOST(s),
	         SRV_LIT(" Error: insufficient system resources"));
	s->oom = false;
	srv_enter(s, SMTP_SRV_ST_CLOSED);
}

/* ---- transaction ------------------------------------------------------------------ */

/* The message buffer is freed (its octets given back to the caller's budget). */
static void srv_data_drop(struct smtp_srv *s)
{
	free(s->data);
	if (s->data_cap && s->ops.mem_give)
		s->ops.mem_give(s->ctx, s->data_cap);
	s->data = NULL;
	s->data_cap = 0;
}

static void srv_txn_reset(struct smtp_srv *s)
{
	for (size_t i = 0; i < s->nrcpt; i++)
		free(s->rcpt[i]);
	s->nrcpt = 0;
	s->mail_from[0] = '\0';
	s->qid[0] = '\0';
	s->qid_len = 0;
	s->flags = 0;
	s->data_len = 0;
	s->hdr_len = 0;
	if (s->data_cap > SRV_DATA_KEEP)
		srv_data_drop(s);
	s->msg_ready = false;
	memset(&s->msg, 0, sizeof(s->msg));
}

static bool srv_rcpt_add(struct smtp_srv *s, const char *p, size_t n)
{
	char *r;

	if (s->nrcpt == s->rcpt_cap) {
		size_t cap = s->rcpt_cap ? 2 * s->rcpt_cap : 4;
		char **q = realloc(s->rcpt, cap * sizeof(*q));

		if (!q)
			goto fail;
		s->rcpt = q;
		s->rcpt_cap = cap;
	}
	r = malloc(n + 1);
	if (!r)
		goto fail;
	memcpy(r, p, n);
	r[n] = '\0';
	s->rcpt[s->nrcpt++] = r;
	return true;
fail:
	s->oom = true;
	return false;
}

/* The capacity for n more octets: base doubled until they fit, never beyond header +
 * max_message_size; 0 if it would overflow. */
static size_t srv_data_cap_for(const struct smtp_srv *s, size_t base, size_t n)
{
	size_t cap = base;
	size_t most = s->hdr_len + s->lim.max_message_size;

	while (cap - s->data_len < n) {
		if (cap > SIZE_MAX / 2)
			return 0;
		cap *= 2;
	}
	if (most < SIZE_MAX / 2 && cap > most && most >= s->data_len + n)
		cap = most;
	return cap;
}

/* Grow the message buffer for n more octets. false: out of memory (s->oom), or the
 * caller's budget refused the growth (s->mem_short; the buffer is as it was). A first
 * buffer is sized by the session's last message (data_hint); refused that, the smallest
 * that fits is asked for. */
static bool srv_data_reserve(struct smtp_srv *s, size_t n)
{
	size_t base = s->data_cap ? s->data_cap
	              : s->data_hint > SMTP_SRV_DATA_MIN ? s->data_hint : SMTP_SRV_DATA_MIN;
	size_t cap;
	uint8_t *q;

	if (s->data_cap - s->data_len >= n)
		return true;
	cap = srv_data_cap_for(s, base, n);
	if (!cap)
		goto fail;
	if (s->ops.mem_take && !s->ops.mem_take(s->ctx, cap - s->data_cap)) {
		if (s->data_cap || base == SMTP_SRV_DATA_MIN ||
		    !(cap = srv_data_cap_for(s, SMTP_SRV_DATA_MIN, n)) ||
		    !s->ops.mem_take(s->ctx, cap)) {
			s->mem_short = true;
			return false;
		}
	}
	q = realloc(s->data, cap);
	if (!q) {
		if (s->ops.mem_give)
			s->ops.mem_give(s->ctx, cap - s->data_cap);
		goto fail;
	}
	s->data = q;
	s->data_cap = cap;
	return true;
fail:
	s->oom = true;
	return false;
}

/* Decimal digits of v at q, zero-padded to at least width (<= 20) digits; returns the end. */
static char *srv_put_dec(char *q, uint64_t v, unsigned width)
{
	char tmp[20];
	unsigned n = 0;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n < width)
		tmp[n++] = '0';
	while (n)
		*q++ = tmp[--n];
	return q;
}

/* RFC 5322 date-time of t in UTC, e.g. "Sat, 21 Nov 2026 10:00:00 +0000" (what
 * printf("%s, %d %s %04d %02d:%02d:%02d +0000") wrote: the year keeps its sign and at
 * least four characters). A time gmtime_r cannot convert is written as the epoch. Writes
 * at most SRV_DATE_MAX octets; returns the length. */
static size_t srv_date(time_t t, char *buf)
{
	static const char wday[] = "SunMonTueWedThuFriSat";
	static const char mon[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
	struct tm tm;
	time_t zero = 0;
	long long year;
	char *q = buf;

	if (!gmtime_r(&t, &tm))
		gmtime_r(&zero, &tm);
	year = (long long)tm.tm_year + 1900;      /* no int overflow near INT_MAX */
	memcpy(q, wday + 3 * (tm.tm_wday % 7), 3);
	memcpy(q + 3, ", ", 2);
	q = srv_put_dec(q + 5, (uint64_t)tm.tm_mday, 1);
	*q++ = ' ';
	memcpy(q, mon + 3 * (tm.tm_mon % 12), 3);
	q[3] = ' ';
	q += 4;
	if (year < 0) {
		*q++ = '-';
		q = srv_put_dec(q, (uint64_t)-year, 3);
	} else {
		q = srv_put_dec(q, (uint64_t)year, 4);
	}
	*q++ = ' ';
	q = srv_put_dec(q, (uint64_t)tm.tm_hour, 2);
	*q++ = ':';
	q = srv_put_dec(q, (uint64_t)tm.tm_min, 2);
	*q++ = ':';
	q = srv_put_dec(q, (uint64_t)tm.tm_sec, 2);
	memcpy(q, " +0000", 6);
	return (size_t)(q + 6 - buf);
}

/* Write the Received: header at the start of the message buffer. The date is kept for
 * the second it was made in: gmtime_r runs at most once a second per session. */
static bool srv_received(struct smtp_srv *s)
{
	time_t now = s->ops.now ? s->ops.now(s->ctx) : time(NULL);
	bool utf8 = s->flags & SMTP_SRV_SMTPUTF8;
	bool tls = s->tls == SMTP_SRV_TLS_ACTIVE;
	struct srv_str proto = utf8 ? (tls ? SRV_LIT("UTF8SMTPS") : SRV_LIT("UTF8SMTP"))
	                     : s->esmtp ? (tls ? SRV_LIT("ESMTPS") : SRV_LIT("ESMTP"))
	                                : (tls ? SRV_LIT("SMTPS") : SRV_LIT("SMTP"));
	struct srv_str peer = { s->peer, s->peer_len };
	struct srv_str rcpt = { "", 0 };
	char *q;
	size_t n;

	if (s->date_len == 0 || now != s->date_t) {
		s->date_len = srv_date(now, s->date);
		s->date_t = now;
	}
	if (s->nrcpt == 1)
		rcpt = (struct srv_str){ s->rcpt[0], strlen(s->rcpt[0]) };
	const struct srv_str v[] = {
		SRV_LIT("Received: from "), { s->helo, s->helo_len }, SRV_LIT(" ("), peer,
		SRV_LIT(" ["), s->peer_v6 ? SRV_LIT("IPv6:") : SRV_LIT(""), peer,
		SRV_LIT("])\r\n\tby "), SRV_HOST(s), SRV_LIT(" (ringrelay) with "), proto,
		SRV_LIT(" id "), { s->qid, s->qid_len },
		s->nrcpt == 1 ? SRV_LIT("\r\n\tfor <") : SRV_LIT(";\r\n\t"),
		rcpt,                                    /* escaped in place below */
		s->nrcpt == 1 ? SRV_LIT(">; ") : SRV_LIT(""),
		{ s->date, s->date_len }, SRV_LIT("\r\n"),
	};
	enum { RCPT_PIECE = 14 };

	SRV_ASSERT(v[RCPT_PIECE].p == rcpt.p);

	s->data_len = 0;
	s->hdr_len = 0;
	n = srv_cat_len(v, sizeof(v) / sizeof(v[0]));
	if (!srv_data_reserve(s, n))
		return false;
	q = srv_cat((char *)s->data, v, RCPT_PIECE + 1);
	srv_addr_escape(q - rcpt.n, rcpt.n, utf8);
	srv_cat(q, v + RCPT_PIECE + 1, sizeof(v) / sizeof(v[0]) - RCPT_PIECE - 1);
	s->hdr_len = s->data_len = n;
	return true;
}

/* ---- commands --------------------------------------------------------------------- */

static bool srv_ieq(const char *p, size_t n, const char *word)
{
	return strlen(word) == n && strncasecmp(p, word, n) == 0;
}

/* Is [p, p+n) the command verb, in any case? For a letter, (c | 0x20) is its lower case
 * and no other octet gives a lower-case letter that way, so this is exact for the verbs
 * (all letters) without a strlen and a strncasecmp per table entry. */
static bool srv_verb_is(const char *p, size_t n, const char verb[4])
{
	if (n != 4)
		return false;
	for (int i = 0; i < 4; i++)
		if (((unsigned char)p[i] | 0x20) != ((unsigned char)verb[i] | 0x20))
			return false;
	return true;
}

static void srv_skip_spaces(const char **p, size_t *n)
{
	while (*n > 0 && **p == ' ') {
		(*p)++;
		(*n)--;
	}
}

/* Echo a client token in a reply: printable ASCII only. */
static void srv_reply_option(struct smtp_srv *s, const char *t, size_t n)
{
	static const char lead[] = "555 5.5.4 Unsupported option: ";
	char buf[SMTP_SRV_CMD_MAX];

	/* A reply line is at most 512 octets with its CRLF (RFC 5321 4.5.3.1.5): the echo
	 * of a long option is cut to fit. */
	if (n > SMTP_SRV_CMD_MAX - 2 - (sizeof lead - 1))
		n = SMTP_SRV_CMD_MAX - 2 - (sizeof lead - 1);
	memcpy(buf, t, n);
	srv_printable(buf, n);
	SRV_REPLYV(s, SRV_LIT("555 5.5.4 Unsupported option: "), ((struct srv_str){ buf, n }));
}

/* SIZE=value: decimal digits only; saturates instead of overflowing. */
static bool srv_parse_size(const char *p, size_t n, uint64_t *v)
{
	uint64_t x = 0;

	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned d;

		if (p[i] < '0' || p[i] > '9')
			return false;
		d = (unsigned)(p[i] - '0');
		x = x > (UINT64_MAX - d) / 10 ? UINT64_MAX : x * 10 + d;
	}
	*v = x;
	return true;
}

/* ESMTP parameters after a path. MAIL knows SIZE, BODY and SMTPUTF8; RCPT none.
 * Replies and returns false on the first bad one. */
static bool srv_params(struct smtp_srv *s, const char *p, size_t len, bool mail,
                       unsigned *flags, uint64_t *size)
{
	size_t i = 0;

	while (i < len) {
		const char *t;
		size_t st, n;

		while (i < len && p[i] == ' ')
			i++;
		if (i == len)
			break;
		st = i;
		while (i < len && p[i] != ' ')
			i++;
		t = p + st;
		n = i - st;
		if (mail && n >= 5 && strncasecmp(t, "SIZE=", 5) == 0) {
			if (!srv_parse_size(t + 5, n - 5, size)) {
				SRV_REPLY(s, "501 5.5.4 Bad message size syntax");
				return false;
			}
		} else if (mail && srv_ieq(t, n, "BODY=8BITMIME")) {
			*flags |= SMTP_SRV_8BITMIME;
		} else if (mail && srv_ieq(t, n, "BODY=7BIT")) {
			*flags &= ~(unsigned)SMTP_SRV_8BITMIME;
		} else if (mail && srv_ieq(t, n, "SMTPUTF8")) {
			*flags |= SMTP_SRV_SMTPUTF8;
		} else {
			srv_reply_option(s, t, n);
			return false;
		}
	}
	return true;
}

static void srv_helo(struct smtp_srv *s, const char *arg, size_t len, bool esmtp)
{
	size_t n = 0;

	while (n < len && arg[n] != ' ')
		n++;
	if (n == 0) {
		if (esmtp)
			SRV_REPLY(s, "501 5.5.4 Syntax: EHLO hostname");
		else
			SRV_REPLY(s, "501 5.5.4 Syntax: HELO hostname");
		return;
	}
	memcpy(s->helo, arg, n);
	s->helo[n] = '\0';
	s->helo_len = n;
	srv_printable(s->helo, n);            /* the client's bytes: see the top of the file */
	s->esmtp = esmtp;
	srv_txn_reset(s);
	srv_enter(s, SMTP_SRV_ST_READY);
	if (!esmtp) {
		SRV_SAYV(s, SRV_LIT("250 "), SRV_HOST(s));
		return;
	}
	/* The EHLO block is copied from five pieces: two static strings around the hostname
	 * and the SIZE digits, which smtp_srv_new formatted once. Nothing is formatted here,
	 * so keeping a finished copy per session would save a few copies per EHLO (once per
	 * session, as a rule) at the price of an allocation on every connection. */
	bool offer = s->tls == SMTP_SRV_TLS_OFFER || s->tls == SMTP_SRV_TLS_REQUIRE;
	SRV_SAYV(s, SRV_LIT("250-"), SRV_HOST(s), SRV_LIT("\r\n250-PIPELINING\r\n250-SIZE "),
	         ((struct srv_str){ s->size, s->size_len }),
	         SRV_LIT("\r\n250-VRFY\r\n250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n"),
	         offer ? SRV_LIT("250-STARTTLS\r\n") : SRV_LIT(""), SRV_LIT("250 SMTPUTF8"));
}

static void srv_do_ehlo(struct smtp_srv *s, const char *arg, size_t len)
{
	srv_helo(s, arg, len, true);
}

static void srv_do_helo(struct smtp_srv *s, const char *arg, size_t len)
{
	srv_helo(s, arg, len, false);
}

static bool srv_check_mail(struct smtp_srv *s)
{
	if (s->state < SMTP_SRV_ST_READY) {
		SRV_REPLY(s, "503 5.5.1 Error: send HELO/EHLO first");
		return false;
	}
	if (s->state != SMTP_SRV_ST_READY) {
		SRV_REPLY(s, "503 5.5.1 Error: nested MAIL command");
		return false;
	}
	if (s->tls == SMTP_SRV_TLS_REQUIRE) {
		SRV_REPLY(s, "530 5.7.0 Must issue a STARTTLS command first");
		return false;
	}
	return true;
}

/* The common front of MAIL and RCPT: "KEYWORD:" (case-insensitive), optional spaces
 * (Postfix tolerates them), a path, then parameters and the SMTPUTF8 rule. On any error
 * the reply is written and false returned; on success *a holds the path. */
static bool srv_path_cmd(struct smtp_srv *s, const char *arg, size_t len,
                         struct srv_str kw, struct srv_str syntax, unsigned addr_flags,
                         struct srv_str bad, bool is_mail, struct smtp_addr *a,
                         unsigned *flags, uint64_t *size)
{
	size_t used;

	if (len < kw.n || strncasecmp(arg, kw.p, kw.n) != 0) {
		srv_reply_str(s, syntax);
		return false;
	}
	arg += kw.n;
	len -= kw.n;
	srv_skip_spaces(&arg, &len);
	if (len == 0) {
		srv_reply_str(s, syntax);
		return false;
	}
	if (smtp_addr_parse_path(arg, len, addr_flags, a, &used) != SMTP_ADDR_OK ||
	    (used < len && arg[used] != ' ')) {
		srv_reply_str(s, bad);
		return false;
	}
	if (!srv_params(s, arg + used, len - used, is_mail, flags, size))
		return false;
	unsigned declared = is_mail ? *flags : s->flags;   /* SMTPUTF8 is a MAIL parameter */
	if (a->utf8 && !(declared & SMTP_SRV_SMTPUTF8)) {
		SRV_REPLY(s, "553 5.6.7 Must declare SMTPUTF8 to send unicode address");
		return false;
	}
	return true;
}

static void srv_do_mail(struct smtp_srv *s, const char *arg, size_t len)
{
	struct smtp_addr a;
	unsigned flags = 0;
	uint64_t size = 0;

	if (!srv_path_cmd(s, arg, len, SRV_LIT("FROM:"),
	                  SRV_LINE("501 5.5.4 Syntax: MAIL FROM:<address>"), SMTP_ADDR_NULL_OK,
	                  SRV_LINE("501 5.1.7 Bad sender address syntax"), true, &a, &flags,
	                  &size))
		return;
	if (size > s->lim.max_message_size) {
		SRV_REPLY(s, "552 5.3.4 Message size exceeds fixed limit");
		return;
	}
	if (s->ops.mail_room && !s->ops.mail_room(s->ctx, size)) {
		SRV_SAY(s, "452 4.3.1 Insufficient system storage");
		return;
	}
	memcpy(s->mail_from, a.mbox, a.mbox_len);
	s->mail_from[a.mbox_len] = '\0';
	s->flags = flags;
	if (!s->ops.new_qid(s->ctx, s->qid, sizeof(s->qid))) {
		/* No queue id (the relay could not make its id block durable): our fault,
		 * temporary, not counted against the client. */
		s->qid[0] = '\0';
		SRV_SAY(s, "451 4.3.0 Error: queue file write error");
		return;
	}
	s->qid[sizeof(s->qid) - 1] = '\0';
	s->qid_len = strlen(s->qid);
	srv_printable(s->qid, s->qid_len);
	srv_enter(s, SMTP_SRV_ST_MAIL);
	SRV_REPLY(s, "250 2.1.0 Ok");
}

static bool srv_check_rcpt(struct smtp_srv *s)
{
	if (s->state != SMTP_SRV_ST_MAIL && s->state != SMTP_SRV_ST_RCPT) {
		SRV_REPLY(s, "503 5.5.1 Error: need MAIL command");
		return false;
	}
	return true;
}

static void srv_do_rcpt(struct smtp_srv *s, const char *arg, size_t len)
{
	struct smtp_addr a;
	unsigned flags = 0;
	uint64_t size = 0;

	if (!srv_path_cmd(s, arg, len, SRV_LIT("TO:"),
	                  SRV_LINE("501 5.5.4 Syntax: RCPT TO:<address>"), SMTP_ADDR_POSTMASTER_OK,
	                  SRV_LINE("501 5.1.3 Bad recipient address syntax"), false, &a, &flags,
	                  &size))
		return;
	if (s->nrcpt >= s->lim.max_recipients) {
		/* Bulk clients pipeline more recipients than the limit and send the rest in a
		 * later transaction (RFC 5321 4.5.3.1.8): like Postfix's
		 * smtpd_recipient_overshoot_limit, the first SRV_RCPT_OVERSHOOT of them in a
		 * session are not errors, only the ones after. */
		if (s->overshoot < SRV_RCPT_OVERSHOOT) {
			s->overshoot++;
			SRV_SAY(s, "452 4.5.3 Error: too many recipients");
		} else {
			SRV_REPLY(s, "452 4.5.3 Error: too many recipients");
		}
		return;
	}
	/* The relay decision: a recipient domain the caller does not allow for this client
	 * is refused here, before anything about it is stored. The domain goes out as sent:
	 * any case, U-labels not converted, an address literal with its brackets. */
	if (a.domain_len > 0 && !s->ops.rcpt_allowed(s->ctx, a.domain, a.domain_len)) {
		char mbox[SMTP_ADDR_PATH_MAX];

		memcpy(mbox, a.mbox, a.mbox_len);
		srv_addr_escape(mbox, a.mbox_len, s->flags & SMTP_SRV_SMTPUTF8);
		SRV_REPLYV(s, SRV_LIT("554 5.7.1 <"), ((struct srv_str){ mbox, a.mbox_len }),
		           SRV_LIT(">: Relay access denied"));
		return;
	}
	if (!srv_rcpt_add(s, a.mbox, a.mbox_len))
		return;
	srv_enter(s, SMTP_SRV_ST_RCPT);
	SRV_REPLY(s, "250 2.1.5 Ok");
}

static bool srv_check_data(struct smtp_srv *s)
{
	if (s->state == SMTP_SRV_ST_RCPT)
		return true;
	if (s->state == SMTP_SRV_ST_MAIL)
		SRV_REPLY(s, "554 5.5.1 Error: no valid recipients");
	else
		SRV_REPLY(s, "503 5.5.1 Error: need RCPT command");
	return false;
}

static void srv_do_data(struct smtp_srv *s, const char *arg, size_t len)
{
	(void)arg;
	if (len > 0) {
		SRV_REPLY(s, "501 5.5.4 Syntax: DATA");
		return;
	}
	if (!srv_received(s)) {
		if (s->mem_short) {               /* the budget has no room for it now */
			s->mem_short = false;
			srv_txn_reset(s);
			srv_enter(s, SMTP_SRV_ST_READY);
			SRV_SAY(s, "451 4.3.1 Insufficient system storage");   /* (4xx to DATA) */
		}
		return;
	}
	s->d_line = 0;
	s->d_cr = false;
	s->d_bol = true;
	s->d_clean = true;
	s->d_dot = false;
	s->d_dots = 0;
	s->d_bad = SMTP_SRV_BAD_NONE;
	srv_enter(s, SMTP_SRV_ST_DATA);
	SRV_REPLY(s, "354 End data with <CR><LF>.<CR><LF>");
}

static void srv_do_rset(struct smtp_srv *s, const char *arg, size_t len)
{
	(void)arg;
	if (len > 0) {
		SRV_REPLY(s, "501 5.5.4 Syntax: RSET");
		return;
	}
	srv_txn_reset(s);
	if (s->state > SMTP_SRV_ST_READY)
		srv_enter(s, SMTP_SRV_ST_READY);
	SRV_REPLY(s, "250 2.0.0 Ok");
}

static void srv_do_noop(struct smtp_srv *s, const char *arg, size_t len)
{
	(void)arg;
	(void)len;
	SRV_REPLY(s, "250 2.0.0 Ok");
}

static void srv_do_vrfy(struct smtp_srv *s, const char *arg, size_t len)
{
	(void)arg;
	if (len == 0) {
		SRV_REPLY(s, "501 5.5.4 Syntax: VRFY address");
		return;
	}
	SRV_REPLY(s, "252 2.0.0 Send some mail, I'll try my best");
}

static void srv_do_quit(struct smtp_srv *s, const char *arg, size_t len)
{
	(void)arg;
	(void)len;
	SRV_REPLY(s, "221 2.0.0 Bye");
	srv_enter(s, SMTP_SRV_ST_CLOSED);
}

/* STARTTLS (eight letters: outside the table of four-letter verbs). */
static void srv_do_starttls(struct smtp_srv *s, size_t alen)
{
	if (s->tls == SMTP_SRV_TLS_ACTIVE) {
		SRV_REPLY(s, "554 5.5.1 Error: TLS already active");
		return;
	}
	if (alen > 0) {
		SRV_REPLY(s, "501 5.5.4 Syntax: STARTTLS");
		return;
	}
	if (s->state == SMTP_SRV_ST_MAIL || s->state == SMTP_SRV_ST_RCPT) {
		SRV_REPLY(s, "503 5.5.1 Error: MAIL transaction in progress");
		return;
	}
	SRV_SAY(s, "220 2.0.0 Ready to start TLS");
	/* RFC 3207 4.2: everything the client said before is forgotten. */
	srv_txn_reset(s);
	s->helo[0] = '\0';
	s->helo_len = 0;
	s->esmtp = false;
	s->tls = SMTP_SRV_TLS_ACTIVE;
	srv_enter(s, SMTP_SRV_ST_GREETED);
	s->starttls = true;
}

static const struct smtp_srv_cmd srv_cmds[] = {
	{ "EHLO", NULL,           srv_do_ehlo },
	{ "HELO", NULL,           srv_do_helo },
	{ "MAIL", srv_check_mail, srv_do_mail },
	{ "RCPT", srv_check_rcpt, srv_do_rcpt },
	{ "DATA", srv_check_data, srv_do_data },
	{ "RSET", NULL,           srv_do_rset },
	{ "NOOP", NULL,           srv_do_noop },
	{ "VRFY", NULL,           srv_do_vrfy },
	{ "QUIT", NULL,           srv_do_quit },
};

/* One well-formed command line (no CR, LF or NUL), NUL-terminated at len. */
static void srv_dispatch(struct smtp_srv *s, const char *line, size_t len)
{
	const char *arg;
	size_t vlen = 0, alen;

	while (vlen < len && line[vlen] != ' ')
		vlen++;
	if (vlen == 0) {
		SRV_REPLY(s, "500 5.5.2 Error: bad syntax");
		return;
	}
	arg = line + vlen;
	alen = len - vlen;
	srv_skip_spaces(&arg, &alen);
	while (alen > 0 && arg[alen - 1] == ' ')
		alen--;
	if (s->tls != SMTP_SRV_TLS_NONE && vlen == 8 && strncasecmp(line, "STARTTLS", 8) == 0) {
		srv_do_starttls(s, alen);
		return;
	}
	for (size_t i = 0; i < sizeof(srv_cmds) / sizeof(srv_cmds[0]); i++) {
		const struct smtp_srv_cmd *c = &srv_cmds[i];

		if (!srv_verb_is(line, vlen, c->verb))
			continue;
		if (c->check && !c->check(s))
			return;
		c->run(s, arg, alen);
		return;
	}
	SRV_REPLY(s, "502 5.5.2 Error: command not recognized");
}

/* ---- command-line assembler ------------------------------------------------------- */

static int srv_bad_rank(enum smtp_srv_bad b)
{
	switch (b) {
	case SMTP_SRV_BAD_BARE_LF:
	case SMTP_SRV_BAD_BARE_CR:
		return 1;
	case SMTP_SRV_BAD_LONG:
		return 2;
	case SMTP_SRV_BAD_BIG:
		return 3;
	case SMTP_SRV_BAD_MEM:
		return 4;
	case SMTP_SRV_BAD_NONE:
		break;
	}
	return 5;
}

/* Record a defect; the most important one (the first of equal rank) is kept. */
static void srv_bad(enum smtp_srv_bad *cur, enum smtp_srv_bad why)
{
	if (srv_bad_rank(why) < srv_bad_rank(*cur))
		*cur = why;
}

static void srv_ln_put(struct smtp_srv *s, uint8_t c)
{
	if (c == '\0')
		s->ln_nul = true;
	if (s->ln_len < SMTP_SRV_CMD_MAX)
		s->line[s->ln_len++] = (char)c;
	else
		srv_bad(&s->ln_bad, SMTP_SRV_BAD_LONG);
}

/* A line has ended (at LF): answer it, then start the next one. */
static void srv_ln_end(struct smtp_srv *s)
{
	s->line[s->ln_len] = '\0';
	switch (s->ln_bad) {
	case SMTP_SRV_BAD_BARE_LF:
		SRV_REPLY(s, "550 5.5.2 Error: bare <LF> received");
		break;
	case SMTP_SRV_BAD_BARE_CR:
		SRV_REPLY(s, "550 5.5.2 Error: bare <CR> received");
		break;
	case SMTP_SRV_BAD_LONG:
	case SMTP_SRV_BAD_BIG:
	case SMTP_SRV_BAD_MEM:                    /* (never for a command line) */
		SRV_REPLY(s, "500 5.5.2 Error: command too long");
		break;
	case SMTP_SRV_BAD_NONE:
		if (s->ln_nul)
			SRV_REPLY(s, "500 5.5.2 Error: bad syntax");
		else
			srv_dispatch(s, s->line, s->ln_len);
		break;
	}
	s->ln_len = 0;
	s->ln_cr = false;
	s->ln_nul = false;
	s->ln_bad = SMTP_SRV_BAD_NONE;
	srv_check_errors(s);
}

/* Consume octets of the command stream up to and including the end of one line.
 * Returns the number consumed; a line was answered iff its LF was among them. */
static size_t srv_cmd_feed(struct smtp_srv *s, const uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		uint8_t c = p[i];

		if (s->ln_cr) {
			s->ln_cr = false;
			if (c == '\n') {
				srv_ln_end(s);
				return i + 1;
			}
			srv_bad(&s->ln_bad, SMTP_SRV_BAD_BARE_CR);
			srv_ln_put(s, '\r');
		}
		if (c == '\r') {
			s->ln_cr = true;
		} else if (c == '\n') {
			srv_bad(&s->ln_bad, SMTP_SRV_BAD_BARE_LF);
			srv_ln_end(s);
			return i + 1;
		} else {
			srv_ln_put(s, c);
		}
	}
	return len;
}

/* ---- DATA lexer ------------------------------------------------------------------- */

/* Append unstuffed message octets, enforcing max_message_size. Runs once for every run of
 * plain lines (srv_data_bulk) and twice for every other line (its text, its CRLF):
 * inlined, so the CRLF copy is a 2-octet store, and the buffer is grown only when it is
 * full. */
static inline __attribute__((always_inline)) void srv_data_store(struct smtp_srv *s,
                                                                  const uint8_t *p, size_t n)
{
	size_t used = s->data_len - s->hdr_len;

	if (s->d_bad != SMTP_SRV_BAD_NONE)
		return;                               /* refused anyway: keep nothing */
	if (used > s->lim.max_message_size || n > s->lim.max_message_size - used) {
		srv_bad(&s->d_bad, SMTP_SRV_BAD_BIG);
		return;
	}
	if (s->data_cap - s->data_len < n && !srv_data_reserve(s, n)) {
		if (s->mem_short) {               /* no room in the budget: keep nothing */
			s->mem_short = false;
			srv_bad(&s->d_bad, SMTP_SRV_BAD_MEM);
			srv_data_drop(s);
			s->data_len = s->hdr_len = 0;
		}
		return;
	}
	memcpy(s->data + s->data_len, p, n);
	s->data_len += n;
}

/* Text of the current line (no CR/LF among it, except a bare CR). */
static void srv_data_text(struct smtp_srv *s, const uint8_t *p, size_t n)
{
	s->d_line += n;
	if (s->d_line > s->lim.max_line_length)
		srv_bad(&s->d_bad, SMTP_SRV_BAD_LONG);
	srv_data_store(s, p, n);
}

/* CRLF "." CRLF seen: hand the message out, or refuse it. */
static void srv_data_end(struct smtp_srv *s)
{
	switch (s->d_bad) {
	case SMTP_SRV_BAD_NONE:
		s->msg.qid = s->qid;
		s->msg.helo = s->helo;
		s->msg.mail_from = s->mail_from;
		s->msg.rcpt = (const char *const *)s->rcpt;
		s->msg.nrcpt = s->nrcpt;
		/* only the final "." was a dot at the start of a line: no stored line begins
		 * with one (the Received: header's lines never do) */
		s->msg.flags = s->flags | (s->d_dots == 1 ? SMTP_SRV_NODOT : 0u);
		s->msg.data = s->data;
		s->msg.len = s->data_len;
		s->msg_ready = true;
		srv_enter(s, SMTP_SRV_ST_QUEUE);
		return;
	case SMTP_SRV_BAD_BARE_LF:
		SRV_REPLY(s, "550 5.5.2 Error: bare <LF> received");
		break;
	case SMTP_SRV_BAD_BARE_CR:
		SRV_REPLY(s, "550 5.5.2 Error: bare <CR> received");
		break;
	case SMTP_SRV_BAD_LONG:
		SRV_REPLY(s, "550 5.6.0 Error: message line too long");
		break;
	case SMTP_SRV_BAD_BIG:
		SRV_REPLY(s, "552 5.3.4 Error: message file too big");
		break;
	case SMTP_SRV_BAD_MEM:
		SRV_SAY(s, "452 4.3.1 Insufficient system storage");   /* ours, not an error */
		break;
	}
	srv_txn_reset(s);
	srv_enter(s, SMTP_SRV_ST_READY);
	srv_check_errors(s);
}

/* The bulk path of the DATA lexer: runs of plain lines, with one copy. A plain line, for
 * the octet-by-octet path below, is one that ends in CRLF, holds no other CR or LF, does
 * not begin with a dot, is at most max_line_length octets and still fits in
 * max_message_size: all that path does with it is store its octets as sent (text, then
 * CRLF) and start the next line. This takes the longest run of plain lines at p and does
 * just that, with one reserve and one copy; the line in progress may be one whose dot or
 * first octets the slow path has taken already. It records no defect and ends no data: it
 * stops before the first line that is not plain (a dot at its start, a bare CR or LF, too
 * long, over the size, or not complete in p) and leaves it to the slow path, which does
 * what it always did. So the caller may use it only when the slow path would treat these
 * lines that way: no defect recorded (else nothing is stored) and no CR pending (else the
 * first octet decides about that CR). len > 0. Returns the octets taken. */
static size_t srv_data_bulk(struct smtp_srv *s, const uint8_t *p, size_t len)
{
	uint64_t room = s->lim.max_message_size - (s->data_len - s->hdr_len);
	size_t max_line = s->lim.max_line_length;
	size_t line = s->d_line;                /* octets of the current line before p[run] */
	bool bol = s->d_bol;                    /* p[run] begins a line */
	size_t run = 0;                         /* octets of the plain lines taken */

	/* After a line's dot, its CRLF (or a bare CR) right away: maybe the end of data. */
	if (s->d_dot && line == 0 && p[0] == '\r')
		return 0;
	while (run < len) {
		const uint8_t *q = p + run;
		const uint8_t *lf;
		size_t text;

		if (bol && q[0] == '.')
			break;                          /* transparency dot, or the end of data */
		lf = memchr(q, '\n', len - run);
		if (!lf || lf == q || lf[-1] != '\r')
			break;                          /* not complete here, or a bare LF */
		text = (size_t)(lf - q) - 1;
		if (line + text > max_line ||
		    (uint64_t)(run + text + 2) > room)
			break;                          /* too long, or over the size */
		/* A bare CR: the line's first CR is not the one before its LF. That
		 * one is there, so the search needs no bound: it stops on it at the
		 * latest. */
		if ((const uint8_t *)rawmemchr(q, '\r') != lf - 1)
			break;
		run += text + 2;
		line = 0;
		bol = true;
	}
	if (run == 0)
		return 0;
	srv_data_store(s, p, run);              /* fits: checked line by line above */
	s->d_line = 0;
	s->d_bol = true;
	s->d_clean = true;
	s->d_dot = false;
	return run;
}

/* Consume message octets up to and including the end of data. Returns the number
 * consumed; the state has left DATA iff the end was among them. Runs of plain lines go
 * through srv_data_bulk; everything else, octet by octet, through the loop below. */
static size_t srv_data_feed(struct smtp_srv *s, const uint8_t *p, size_t len)
{
	size_t i = 0;

	while (i < len && !s->oom) {
		uint8_t c;
		size_t n;

		if (s->d_bad == SMTP_SRV_BAD_NONE && !s->d_cr) {
			i += srv_data_bulk(s, p + i, len - i);
			if (i == len || s->oom)
				break;
		}
		c = p[i];
		if (s->d_cr) {
			s->d_cr = false;
			if (c == '\n') {
				i++;
				if (s->d_dot && s->d_line == 0 && s->d_clean) {
					srv_data_end(s);
					return i;
				}
				srv_data_store(s, (const uint8_t *)"\r\n", 2);
				s->d_line = 0;
				s->d_bol = true;
				s->d_clean = true;
				s->d_dot = false;
				continue;
			}
			srv_bad(&s->d_bad, SMTP_SRV_BAD_BARE_CR);
			srv_data_text(s, (const uint8_t *)"\r", 1);
		}
		if (c == '\r') {
			s->d_cr = true;
			i++;
			continue;
		}
		if (c == '\n') {
			/* A bare LF: refuse the message, and do not let the next line
			 * end the data even if it is "." CRLF. */
			srv_bad(&s->d_bad, SMTP_SRV_BAD_BARE_LF);
			s->d_line = 0;
			s->d_bol = true;
			s->d_clean = false;
			s->d_dot = false;
			i++;
			continue;
		}
		if (s->d_bol) {
			s->d_bol = false;
			if (c == '.') {                   /* transparency dot (RFC 5321 4.5.2) */
				s->d_dot = true;
				s->d_dots++;
				i++;
				continue;
			}
		}
		/* The rest of the line's text: up to the first CR or LF. memchr (vectorised
		 * in libc) instead of a byte loop: a line left to this path may be long. */
		{
			const uint8_t *q = p + i + 1;
			size_t rest = len - i - 1;
			const uint8_t *cr = memchr(q, '\r', rest);
			size_t upto = cr ? (size_t)(cr - q) : rest;
			const uint8_t *lf = memchr(q, '\n', upto);
			n = 1 + (lf ? (size_t)(lf - q) : upto);
		}
		srv_data_text(s, p + i, n);
		i += n;
	}
	return i;
}

/* ---- API -------------------------------------------------------------------------- */

struct smtp_srv *smtp_srv_new(const char *hostname, const char *peer,
                              const struct smtp_srv_limits *lim,
                              const struct smtp_srv_ops *ops, void *ctx)
{
	struct smtp_srv *s;

	if (!hostname || !peer || !ops || !ops->rcpt_allowed || !ops->new_qid)
		return NULL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->hostname = srv_printable_dup(hostname, &s->host_len);
	if (!s->hostname || smtp_srv_set_peer(s, peer) < 0)
		goto fail;
	if (lim)
		s->lim = *lim;
	if (!s->lim.max_message_size)
		s->lim.max_message_size = SRV_DEF_MESSAGE_SIZE;
	if (!s->lim.max_recipients)
		s->lim.max_recipients = SRV_DEF_RECIPIENTS;
	if (!s->lim.max_line_length)
		s->lim.max_line_length = SRV_DEF_LINE_LENGTH;
	if (!s->lim.max_errors)
		s->lim.max_errors = SRV_DEF_ERRORS;
	s->size_len = (size_t)(srv_put_dec(s->size, s->lim.max_message_size, 1) - s->size);
	s->ops = *ops;
	s->ctx = ctx;
	return s;
fail:
	smtp_srv_free(s);
	return NULL;
}

void smtp_srv_free(struct smtp_srv *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->nrcpt; i++)
		free(s->rcpt[i]);
	free(s->rcpt);
	srv_data_drop(s);
	free(s->out);
	free(s->hostname);
	free(s->peer);
	free(s);
}

int smtp_srv_set_peer(struct smtp_srv *s, const char *peer)
{
	char *p;
	size_t n;

	if (s->state != SMTP_SRV_ST_NEW || !peer)
		return -EINVAL;
	p = srv_printable_dup(peer, &n);
	if (!p)
		return -ENOMEM;
	free(s->peer);
	s->peer = p;
	s->peer_len = n;
	s->peer_v6 = memchr(p, ':', n) != NULL;
	return 0;
}

void smtp_srv_set_tls(struct smtp_srv *s, enum smtp_srv_tls t)
{
	s->tls = t;
}

void smtp_srv_start(struct smtp_srv *s)
{
	if (s->state != SMTP_SRV_ST_NEW)
		return;
	SRV_SAYV(s, SRV_LIT("220 "), SRV_HOST(s), SRV_LIT(" ESMTP ringrelay"));
	srv_enter(s, SMTP_SRV_ST_GREETED);
}

enum smtp_srv_ev smtp_srv_feed(struct smtp_srv *s, const uint8_t *p, size_t len,
                               size_t *consumed)
{
	enum smtp_srv_ev ev;
	size_t i = 0;

	for (;;) {
		if (s->oom && s->state != SMTP_SRV_ST_CLOSED)
			srv_close_oom(s);
		if (s->state == SMTP_SRV_ST_CLOSED) {
			ev = SMTP_SRV_EV_CLOSE;
			break;
		}
		if (s->state == SMTP_SRV_ST_QUEUE) {
			ev = SMTP_SRV_EV_WAIT;
			break;
		}
		if (i == len) {
			ev = SMTP_SRV_EV_NONE;
			break;
		}
		if (s->state == SMTP_SRV_ST_DATA) {
			i += srv_data_feed(s, p + i, len - i);
			if (s->state == SMTP_SRV_ST_QUEUE) {
				ev = SMTP_SRV_EV_MESSAGE;
				break;
			}
		} else {
			i += srv_cmd_feed(s, p + i, len - i);
			if (s->starttls) {
				s->starttls = false;
				ev = SMTP_SRV_EV_STARTTLS;
				break;
			}
		}
	}
	*consumed = i;
	return ev;
}

const struct smtp_srv_msg *smtp_srv_message(const struct smtp_srv *s)
{
	return s->msg_ready ? &s->msg : NULL;
}

void smtp_srv_queued(struct smtp_srv *s)
{
	if (s->state == SMTP_SRV_ST_CLOSED) {     /* timed out or shut down meanwhile */
		srv_txn_reset(s);
		return;
	}
	SRV_ASSERT(s->state == SMTP_SRV_ST_QUEUE);
	SRV_SAYV(s, SRV_LIT("250 2.0.0 Ok: queued as "), ((struct srv_str){ s->qid, s->qid_len }));
	srv_txn_reset(s);
	srv_enter(s, SMTP_SRV_ST_READY);
}

uint8_t *smtp_srv_take_data(struct smtp_srv *s)
{
	uint8_t *d = s->data;
	size_t len = s->msg.len;

	if (!s->msg_ready || !d || !s->msg.data)
		return NULL;
	if (s->data_cap <= SRV_DATA_KEEP) {
		/* A small one is copied, the session keeps its buffer for the next message:
		 * a copy of a few KiB costs less than a buffer freed and made each time. */
		uint8_t *c = malloc(len ? len : 1);
		if (c)
			memcpy(c, d, len);
		s->msg.data = NULL;
		return c;
	}
	/* the buffer leaves the session: no longer charged to its budget */
	if (s->ops.mem_give)
		s->ops.mem_give(s->ctx, s->data_cap);
	/* room for one more line than this size, before a doubling */
	s->data_hint = len + len / 8 < SRV_DATA_HINT_MAX ? len + len / 8 : SRV_DATA_HINT_MAX;
	/* Kept as the queue's body, perhaps for days: not with the room it was grown with
	 * (shrunk in place; up to an eighth more is left as it is). */
	if (s->data_cap - len > len / 8 + 64) {
		uint8_t *q = realloc(d, len ? len : 1);

		if (q)
			d = q;
	}
	s->data = NULL;
	s->data_cap = 0;
	s->data_len = 0;
	s->hdr_len = 0;
	s->msg.data = NULL;
	return d;
}

void smtp_srv_queue_failed(struct smtp_srv *s)
{
	if (s->state == SMTP_SRV_ST_CLOSED) {
		srv_txn_reset(s);
		return;
	}
	SRV_ASSERT(s->state == SMTP_SRV_ST_QUEUE);
	SRV_SAY(s, "451 4.3.0 Error: queue file write error");
	srv_txn_reset(s);
	srv_enter(s, SMTP_SRV_ST_READY);
}

void smtp_srv_refuse(struct smtp_srv *s, const char *reply)
{
	SRV_ASSERT(reply && (reply[0] == '4' || reply[0] == '5') && !strpbrk(reply, "\r\n"));
	if (s->state == SMTP_SRV_ST_CLOSED) {
		srv_txn_reset(s);
		return;
	}
	SRV_ASSERT(s->state == SMTP_SRV_ST_QUEUE);
	srv_out_line(s, &(struct srv_str){ reply, strlen(reply) }, 1);
	srv_txn_reset(s);
	srv_enter(s, SMTP_SRV_ST_READY);
}

void smtp_srv_timeout(struct smtp_srv *s)
{
	if (s->state == SMTP_SRV_ST_CLOSED)
		return;
	SRV_SAYV(s, SRV_LIT("421 4.4.2 "), SRV_HOST(s), SRV_LIT(" Error: timeout exceeded"));
	srv_enter(s, SMTP_SRV_ST_CLOSED);
}

void smtp_srv_shutdown(struct smtp_srv *s)
{
	if (s->state == SMTP_SRV_ST_CLOSED)
		return;
	SRV_SAYV(s, SRV_LIT("421 4.3.2 "), SRV_HOST(s), SRV_LIT(" Service shutting down"));
	srv_enter(s, SMTP_SRV_ST_CLOSED);
}

bool smtp_srv_closing(const struct smtp_srv *s)
{
	return s->state == SMTP_SRV_ST_CLOSED;
}

bool smtp_srv_in_data(const struct smtp_srv *s)
{
	return s->state == SMTP_SRV_ST_DATA;
}

bool smtp_srv_in_transaction(const struct smtp_srv *s)
{
	return s->state == SMTP_SRV_ST_DATA || s->state == SMTP_SRV_ST_QUEUE;
}

const uint8_t *smtp_srv_out(const struct smtp_srv *s, size_t *len)
{
	*len = s->out_len;
	return s->out;
}

void smtp_srv_out_consume(struct smtp_srv *s, size_t n)
{
	if (n >= s->out_len) {
		s->out_len = 0;
		return;
	}
	memmove(s->out, s->out + n, s->out_len - n);
	s->out_len -= n;
}
