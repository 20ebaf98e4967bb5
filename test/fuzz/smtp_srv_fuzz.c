/* test/fuzz/smtp_srv_fuzz — libFuzzer target for proto/smtp_srv, the inbound session.
 *
 * Input: FZ_CFG_LEN octets of configuration, then the client's byte stream.
 *   [0] max_message_size  [1] max_recipients  [2] max_line_length  [3] max_errors
 *       (low 3 bits: indexes into small tables, 0 = the session's default, so the limits
 *       are hit); [3] bits 3-4: TLS as the caller made it (none: STARTTLS is unknown;
 *       offered; required: MAIL before it is 530; active: implicit TLS)
 *   [4] split seed: chunk sizes and how much output the caller drains at a time
 *   [5] spool seed: the answer to each message (queued, queue_failed, refuse, or a
 *       timeout/shutdown while the message waits, then one of those)
 *   [6] hostname, peer, queue id length, set_peer, what happens at the end of input
 *   [7] rcpt_allowed seed: the relay decision is a hash of the domain
 *   [8..9] bit 15 set: at the offset in the other 15 bits of the stream, the caller
 *       calls timeout (offset even) or shutdown (odd)
 *
 * The stream is fed three times: in one piece, in chunks chosen by [4], and one octet at
 * a time; chunks always end at the offset of [8..9] so the timeout/shutdown lands at the
 * same place. DIFFERENTIAL: the three transcripts (every octet written, in order) and
 * event logs (relay questions, queue ids, messages with their stream offset, close) are
 * byte-identical.
 *
 * Checked on every run, after every call:
 *   - consumed <= len; NONE consumes all; WAIT (a feed while the message waits)
 *     consumes nothing and writes nothing; after CLOSE, feeds consume nothing.
 *   - the output: complete replies only, lines `[2-5][0-9][0-9][ -]` text CRLF, text
 *     printable (UTF-8 allowed: echoed SMTPUTF8 addresses), no bare CR or LF, at most
 *     512 octets, multi-line replies with one code, an enhanced code of the reply's
 *     class; nothing after a 221 or 421, which only the last reply may be, and the
 *     session says it is closing.
 *   - bounded: a feed writes at most FZ_BOUND octets per line it consumed (the EHLO
 *     reply, or the longest one-line reply plus "421 too many errors").
 *   - errors: the 421 too-many-errors comes exactly when the client's 4xx/5xx replies
 *     reach max_errors.
 *   - at SMTP_SRV_EV_MESSAGE: the last reply was 354; the view: qid is the last one
 *     new_qid gave, helo and paths well formed, 1 <= nrcpt <= max_recipients, every
 *     recipient domain allowed, data = the exact Received: header + body, body <=
 *     max_message_size, lines <= max_line_length, CRLF only; the answer chosen writes
 *     exactly its reply and releases the message.
 *   - at SMTP_SRV_EV_STARTTLS: the last reply was "220 2.0.0 Ready to start TLS", the
 *     feed stopped right behind the STARTTLS line's LF (the same offset in all three
 *     runs: nothing the client pipelined behind it was consumed, CVE-2011-0411), the
 *     session is out of any transaction; the rest of the stream is then fed as the
 *     client's first octets over TLS, and a message's Received: says ESMTPS/SMTPS/
 *     UTF8SMTPS from then on.
 * And on the octet-at-a-time run, against a reference model written here:
 *   - a reply only when an LF is consumed: one reply per command line (plus 421 when
 *     the errors run out), one per refused message;
 *   - command lines: bare CR/LF, too long, NUL, unknown verb and every state refusal
 *     (503/554) with Postfix's exact text; EHLO/HELO/NOOP/RSET/VRFY/QUIT exact replies
 *     (EHLO offers STARTTLS while TLS is offered or required and not active); STARTTLS:
 *     502 without TLS, 554 once active, 501 with an argument, 503 in a transaction,
 *     else 220 and the session back to before HELO/EHLO; MAIL 530 while TLS is
 *     required and not active;
 *     MAIL/RCPT successes move the model's state; never more than max_recipients;
 *     "MAIL FROM:<path>" / "RCPT TO:<path>" with a well-formed ASCII path and no
 *     parameters are refused only for the state, the recipient limit (452) or the
 *     relay decision (554);
 *   - DATA: the data ends at the first "." CRLF line that began after CRLF (or right
 *     after the 354), never elsewhere (SMTP smuggling); the message is handed out iff
 *     it has no bare CR/LF, no line over max_line_length and fits max_message_size, and
 *     then its body is the dot-unstuffed stream; otherwise the reply names the defect
 *     in the documented order.
 * Known findings (FZ_KNOWN, see fuzz_util.h) until proto/smtp_srv is fixed:
 *   errcount  the 501s of srv_path_cmd() (MAIL/RCPT syntax, bad address) are not
 *             counted towards max_errors
 *   reply512  "555 5.5.4 Unsupported option: TOKEN" can be longer than 512 octets
 * Debug: FZ_DUMP=1 ./smtp_srv_fuzz FILE prints the one-piece run's transcript and events.
 */
#include <errno.h>
#include <stdarg.h>
#include <strings.h>
#include <time.h>

#include "proto/smtp_addr.h"
#include "proto/smtp_srv.h"
#include "test/fuzz/fuzz_util.h"

#define FZ_CFG_LEN 10
#define FZ_REPLY_MAX 512            /* RFC 5321 4.5.3.1.5, CRLF included */

static const uint64_t fz_msg_sizes[8] = { 0, 1, 16, 100, 512, 1000, 4096, 65536 };
static const unsigned fz_rcpts[8] = { 0, 1, 2, 3, 5, 10, 100, 1000 };
static const unsigned fz_lines[8] = { 0, 1, 2, 10, 78, 500, 998, 999 };
static const unsigned fz_errs[8] = { 0, 1, 2, 3, 5, 20, 50, 100 };
static const char fz_long_host[] =
	"a23456789012345678901234567890123456789012345678901234567890123."
	"b23456789012345678901234567890123456789012345678901234567890123."
	"c23456789012345678901234567890123456789012345678901234567890123."
	"d234567890123456789012345678901234567890123456789012345678901";  /* 253 */
static const char *const fz_hosts[4] = { "mx.example.com", fz_long_host, "h", "relay.test" };
static const char *const fz_peers[4] = { "203.0.113.9", "2001:db8::1", "127.0.0.1",
                                         "::ffff:192.0.2.1" };
static const unsigned fz_qid_lens[4] = { 10, 1, 31, 16 };

struct fz_cfg {
	struct smtp_srv_limits lim;      /* as passed (0: default) */
	struct smtp_srv_limits eff;      /* as the session applies them */
	const char *host, *peer, *peer0; /* peer0: given to new(), then set_peer(peer) */
	unsigned qid_len;
	uint8_t split, spool, allow;
	int end_action;                  /* at the end of input: 0 none, 1 timeout, 2 shutdown */
	size_t t_off;                    /* where the caller calls timeout/shutdown */
	int t_kind;                      /* 0 none, 1 timeout, 2 shutdown */
	enum smtp_srv_tls tls;           /* as set before start() */
	time_t now;
	size_t bound;                    /* FZ_BOUND: octets written per line consumed */
	char date[64];
};

struct fz_buf {
	uint8_t *p;
	size_t len, cap;
};

static void fz_put(struct fz_buf *b, const void *p, size_t n)
{
	if (b->cap - b->len < n) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap - b->len < n)
			cap *= 2;
		b->p = realloc(b->p, cap);
		FZ_CHECK(b->p != NULL);
		b->cap = cap;
	}
	if (n)
		memcpy(b->p + b->len, p, n);
	b->len += n;
}

__attribute__((format(printf, 2, 3)))
static void fz_putf(struct fz_buf *b, const char *fmt, ...)
{
	char tmp[1024];
	va_list ap;

	va_start(ap, fmt);
	int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
	va_end(ap);
	FZ_CHECK(n >= 0 && (size_t)n < sizeof tmp);
	fz_put(b, tmp, (size_t)n);
}

/* the reference model's session state (octet-at-a-time run) */
enum fz_st { FZ_GREETED = 0, FZ_READY, FZ_MAIL, FZ_RCPT, FZ_DATA };

struct fz_run {
	const struct fz_cfg *cfg;
	const uint8_t *in;
	size_t n;
	int mode;                        /* 0 one piece, 1 chunks, 2 octet at a time */
	uint32_t rng;
	struct smtp_srv *s;
	struct fz_buf out;               /* the transcript */
	struct fz_buf ev;                /* the event log */
	unsigned overshoot;              /* 452 too many recipients not counted so far */
	size_t pend;                     /* octets pending in the session's output, seen */
	unsigned qid_seq, nmsg, errors;
	char qid[SMTP_SRV_QID_MAX];
	bool closed;                     /* a 221/421 was written */
	bool in_feed;                    /* replies now are answers to the client */
	unsigned last_code;              /* of the last reply written */
	enum smtp_srv_tls tls;           /* now: ACTIVE after a STARTTLS event */
	size_t mem_held;                 /* octets the session holds (ops.mem_take/give) */
	/* the model */
	enum fz_st st;
	bool esmtp;
	unsigned nrcpt;
	size_t ln_start;                 /* where the current command line began */
	size_t data_start;               /* where the message data began (after 354) */
	unsigned new_replies;            /* replies in the last output checked */
	bool new_421_errors;             /* ... and whether one was "too many errors" */
	uint8_t first_reply[1024];       /* the first reply of the last output */
	size_t first_len;                /* its length, CRLFs included (all its lines) */
};

static uint32_t fz_rand(struct fz_run *r)
{
	return fz_next(&r->rng);
}

/* ---- the session's ops ------------------------------------------------------------- */

static bool fz_domain_allowed(const struct fz_cfg *cfg, const char *d, size_t n)
{
	if (cfg->allow & 0x80)
		return true;
	return (fz_hash(d, n, cfg->allow) & 3) != 0;
}

static bool fz_rcpt_allowed(void *ctx, const char *domain, size_t len)
{
	struct fz_run *r = ctx;
	char path[SMTP_ADDR_PATH_MAX + 8];
	struct smtp_addr a;
	size_t used;

	FZ_CHECK(r->in_feed);
	FZ_CHECK(domain != NULL && len > 0 && len <= SMTP_ADDR_DOMAIN_MAX);
	/* the domain as sent: a well-formed Domain or address literal on its own */
	memcpy(path, "<x@", 3);
	memcpy(path + 3, domain, len);
	path[3 + len] = '>';
	FZ_CHECK(smtp_addr_parse_path(path, len + 4, 0, &a, &used) == SMTP_ADDR_OK);
	FZ_CHECK(used == len + 4 && a.domain_len == len);
	fz_putf(&r->ev, "A%zu:", len);
	fz_put(&r->ev, domain, len);
	return fz_domain_allowed(r->cfg, domain, len);
}

/* Never fails here (a failing new_qid is smtp_srv_test's mail_without_a_queue_id). */
static bool fz_new_qid(void *ctx, char *buf, size_t cap)
{
	struct fz_run *r = ctx;

	FZ_CHECK(r->in_feed);
	FZ_CHECK(cap == SMTP_SRV_QID_MAX);
	r->qid_seq++;
	/* exactly qid_len characters (up to cap - 1) */
	char tmp[64];
	snprintf(tmp, sizeof tmp, "%031u", r->qid_seq);
	memcpy(buf, tmp + 31 - r->cfg->qid_len, r->cfg->qid_len);
	buf[r->cfg->qid_len] = '\0';
	memcpy(r->qid, buf, r->cfg->qid_len + 1);
	fz_putf(&r->ev, "Q%s;", buf);
	return true;
}

static time_t fz_now(void *ctx)
{
	struct fz_run *r = ctx;
	return r->cfg->now;
}

/* The budget always has room here (the model knows nothing of 452 4.3.1; a budget that
 * refuses is smtp_srv_test's): what is checked is the count, never below zero, and zero
 * once the session is freed. */
static bool fz_mem_take(void *ctx, size_t n)
{
	struct fz_run *r = ctx;
	FZ_CHECK(n > 0);
	r->mem_held += n;
	return true;
}

static void fz_mem_give(void *ctx, size_t n)
{
	struct fz_run *r = ctx;
	FZ_CHECK(n <= r->mem_held);
	r->mem_held -= n;
}

static const struct smtp_srv_ops fz_ops = { .rcpt_allowed = fz_rcpt_allowed,
	                                    .new_qid = fz_new_qid, .now = fz_now,
	                                    .mem_take = fz_mem_take, .mem_give = fz_mem_give };

/* ---- output ------------------------------------------------------------------------ */

static bool fz_is_421_errors(const uint8_t *line, size_t n, const char *host)
{
	char want[400];
	int w = snprintf(want, sizeof want, "421 4.7.0 %s Error: too many errors\r\n", host);
	return (size_t)w == n && memcmp(line, want, n) == 0;
}

/* FZ_KNOWN=errcount: the session does not count the 501s of MAIL/RCPT syntax and bad
 * addresses towards max_errors (srv_reply() looks at fmt[0], and these are "%s"). */
static bool fz_uncounted(const uint8_t *l, size_t len)
{
	static const char *const u[] = {
		"501 5.5.4 Syntax: MAIL FROM:<address>\r\n", "501 5.5.4 Syntax: RCPT TO:<address>\r\n",
		"501 5.1.7 Bad sender address syntax\r\n", "501 5.1.3 Bad recipient address syntax\r\n",
	};
	static int known = -1;

	if (known < 0)
		known = fz_known("errcount");
	for (size_t k = 0; known && k < sizeof u / sizeof u[0]; k++)
		if (strlen(u[k]) == len && memcmp(l, u[k], len) == 0)
			return true;
	return false;
}

/* FZ_KNOWN=reply512: "555 5.5.4 Unsupported option: TOKEN" echoes a token of up to
 * ~500 octets, so the line can exceed 512 octets. */
#define FZ_555 "555 5.5.4 Unsupported option: "
#define FZ_555_MAX (sizeof FZ_555 - 1 + SMTP_SRV_CMD_MAX + 2)

static bool fz_long_ok(const uint8_t *l, size_t len)
{
	static int known = -1;

	if (known < 0)
		known = fz_known("reply512");
	return known && len <= FZ_555_MAX && memcmp(l, FZ_555, sizeof FZ_555 - 1) == 0;
}

/* Check replies p[0..n) just written (complete replies only), update the run's view. */
static void fz_check_replies(struct fz_run *r, const uint8_t *p, size_t n)
{
	size_t i = 0;
	unsigned code = 0;
	bool more = false;

	r->new_replies = 0;
	r->new_421_errors = false;
	r->first_len = 0;
	if (n > 0)
		FZ_CHECK(!r->closed);        /* nothing after a 221 or 421 */
	while (i < n) {
		const uint8_t *l = p + i;
		size_t k = 0;
		while (i + k < n && p[i + k] != '\n')
			k++;
		FZ_CHECK(i + k < n);          /* every line ends with LF ... */
		FZ_CHECK(k >= 5 && l[k - 1] == '\r');   /* ... preceded by CR */
		size_t len = k + 1;           /* CRLF included */
		FZ_CHECK(len <= FZ_REPLY_MAX || fz_long_ok(l, len));
		FZ_CHECK(l[0] >= '2' && l[0] <= '5' && l[1] >= '0' && l[1] <= '9' &&
		         l[2] >= '0' && l[2] <= '9');
		FZ_CHECK(l[3] == ' ' || l[3] == '-');
		unsigned c = (unsigned)(l[0] - '0') * 100 + (unsigned)(l[1] - '0') * 10 +
		             (unsigned)(l[2] - '0');
		for (size_t j = 4; j < k - 1; j++)      /* printable, or UTF-8 (echoed paths) */
			FZ_CHECK((l[j] >= 0x20 && l[j] < 0x7f) || l[j] >= 0x80);
		if (more)
			FZ_CHECK(c == code);               /* one code per multi-line reply */
		/* an enhanced status code is of the reply's class */
		if (k - 1 > 6 && l[4] >= '2' && l[4] <= '5' && l[5] == '.')
			FZ_CHECK(l[4] == l[0]);
		if (r->new_replies == 0) {
			FZ_CHECK(r->first_len + len <= sizeof r->first_reply);
			memcpy(r->first_reply + r->first_len, l, len);
			r->first_len += len;
		}
		code = c;
		more = l[3] == '-';
		i += len;
		if (more)
			continue;
		/* a complete reply */
		r->new_replies++;
		r->last_code = c;
		bool e421 = fz_is_421_errors(l, len, r->cfg->host);
		static const char over[] = "452 4.5.3 Error: too many recipients\r\n";
		if (len == sizeof over - 1 && memcmp(l, over, len) == 0 && r->overshoot < 1000)
			r->overshoot++;             /* smtpd_recipient_overshoot_limit: not errors */
		else if (r->in_feed && c >= 400 && c != 421 && !fz_uncounted(l, len))
			r->errors++;
		if (e421) {
			FZ_CHECK(r->in_feed);
			FZ_CHECK(r->errors == r->cfg->eff.max_errors);
			r->new_421_errors = true;
		}
		if (r->in_feed && c != 421 && r->errors == r->cfg->eff.max_errors && c >= 400) {
			/* the limit is reached: "421 too many errors" must follow at once */
			size_t rest = n - i;
			FZ_CHECK(rest > 0 && fz_is_421_errors(p + i, rest, r->cfg->host));
		}
		if (c == 221 || c == 421) {
			FZ_CHECK(i == n);                   /* the last reply */
			FZ_CHECK(smtp_srv_closing(r->s));
			r->closed = true;
		}
	}
	FZ_CHECK(!more);                             /* complete replies only */
}

/* After a call into the session: check what it wrote (at most `bound` octets), then
 * drain some of it into the transcript as a caller sending it would. */
static void fz_after(struct fz_run *r, size_t bound)
{
	size_t len;
	const uint8_t *o = smtp_srv_out(r->s, &len);

	FZ_CHECK(len >= r->pend && (o != NULL || len == 0));
	if (o == NULL)                 /* nothing written yet */
		o = (const uint8_t *)"";
	fz_check_replies(r, o + r->pend, len - r->pend);
	FZ_CHECK(len - r->pend <= bound);
	size_t take = len;
	if (r->mode != 0 && len > 0 && (fz_rand(r) & 3) != 0)
		take = fz_rand(r) % (len + 1);
	fz_put(&r->out, o, take);
	if (take)
		smtp_srv_out_consume(r->s, take);
	r->pend = len - take;
	o = smtp_srv_out(r->s, &len);
	FZ_CHECK(len == r->pend);
}

/* A call that must write exactly `want` (NULL: nothing). */
static void fz_after_exact(struct fz_run *r, const char *want)
{
	size_t len, wl = want ? strlen(want) : 0;
	const uint8_t *o = smtp_srv_out(r->s, &len);

	FZ_CHECK(len == r->pend + wl);
	FZ_CHECK(wl == 0 || memcmp(o + r->pend, want, wl) == 0);
	fz_after(r, wl);
}

/* ---- messages ---------------------------------------------------------------------- */

static void fz_date(time_t t, char *buf, size_t cap)
{
	static const char *const wd[] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
	static const char *const mo[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
	                                  "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	struct tm tm;

	FZ_CHECK(gmtime_r(&t, &tm) != NULL);
	snprintf(buf, cap, "%s, %d %s %04d %02d:%02d:%02d +0000", wd[tm.tm_wday],
	         tm.tm_mday, mo[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
	         tm.tm_sec);
}

static void fz_check_path(const char *mbox, unsigned flags, bool utf8_ok)
{
	char path[SMTP_ADDR_PATH_MAX + 2];
	size_t n = strlen(mbox), used;
	struct smtp_addr a;

	FZ_CHECK(n + 2 <= SMTP_ADDR_PATH_MAX);
	path[0] = '<';
	memcpy(path + 1, mbox, n);
	path[n + 1] = '>';
	FZ_CHECK(smtp_addr_parse_path(path, n + 2, flags, &a, &used) == SMTP_ADDR_OK);
	FZ_CHECK(used == n + 2 && a.mbox_len == n);
	FZ_CHECK(utf8_ok || !a.utf8);
}

/* The Received: header the session must write, for one protocol name. */
static size_t fz_received(const struct fz_run *r, const struct smtp_srv_msg *m,
                          const char *proto, char *buf, size_t cap)
{
	const struct fz_cfg *c = r->cfg;
	const char *v6 = strchr(c->peer, ':') ? "IPv6:" : "";
	int n;

	if (m->nrcpt == 1)
		n = snprintf(buf, cap,
		             "Received: from %s (%s [%s%s])\r\n\tby %s (ringrelay) with %s id %s\r\n"
		             "\tfor <%s>; %s\r\n",
		             m->helo, c->peer, v6, c->peer, c->host, proto, m->qid, m->rcpt[0],
		             c->date);
	else
		n = snprintf(buf, cap,
		             "Received: from %s (%s [%s%s])\r\n\tby %s (ringrelay) with %s id %s;\r\n"
		             "\t%s\r\n",
		             m->helo, c->peer, v6, c->peer, c->host, proto, m->qid, c->date);
	FZ_CHECK(n > 0 && (size_t)n < cap);
	return (size_t)n;
}

/* The reference DATA lexer over in[start..end): the body the session must hand out. */
static void fz_unstuff(const uint8_t *p, size_t n, struct fz_buf *body)
{
	size_t i = 0;

	while (i < n) {
		size_t k = i;
		while (k + 1 < n && !(p[k] == '\r' && p[k + 1] == '\n'))
			k++;
		FZ_CHECK(k + 1 < n);                  /* every line ends CRLF */
		size_t s = i + (p[i] == '.' ? 1 : 0);
		if (k + 2 == n) {                     /* the "." line */
			FZ_CHECK(k == i + 1 && p[i] == '.');
			return;
		}
		fz_put(body, p + s, k - s);
		fz_put(body, "\r\n", 2);
		i = k + 2;
	}
	FZ_CHECK(!"no end of data");
}

static void fz_check_msg(struct fz_run *r, const struct smtp_srv_msg *m, size_t at)
{
	const struct fz_cfg *c = r->cfg;

	FZ_CHECK(m != NULL);
	FZ_CHECK(r->last_code == 354);               /* nothing written during DATA */
	FZ_CHECK(m->qid && m->qid[0] && strcmp(m->qid, r->qid) == 0);
	FZ_CHECK(m->helo && m->helo[0]);
	FZ_CHECK(strlen(m->helo) <= SMTP_SRV_CMD_MAX);
	FZ_CHECK(!strpbrk(m->helo, " \r\n"));
	FZ_CHECK((m->flags & ~(unsigned)(SMTP_SRV_8BITMIME | SMTP_SRV_SMTPUTF8 | SMTP_SRV_NODOT)) ==
	         0);
	if (m->flags & SMTP_SRV_NODOT)               /* sent on without dot-stuffing: none needed */
		for (size_t i = 0; i < m->len; i++)
			FZ_CHECK(!(m->data[i] == '.' && (i == 0 || m->data[i - 1] == '\n')));
	bool utf8 = m->flags & SMTP_SRV_SMTPUTF8;
	FZ_CHECK(m->mail_from != NULL);
	fz_check_path(m->mail_from, SMTP_ADDR_NULL_OK, utf8);
	FZ_CHECK(m->nrcpt >= 1 && m->nrcpt <= c->eff.max_recipients);
	for (size_t k = 0; k < m->nrcpt; k++) {
		const char *rc = m->rcpt[k];
		fz_check_path(rc, SMTP_ADDR_POSTMASTER_OK, utf8);
		const char *at_sign = strrchr(rc, '@');
		if (at_sign)
			FZ_CHECK(fz_domain_allowed(c, at_sign + 1, strlen(at_sign + 1)));
		else
			FZ_CHECK(strcasecmp(rc, "postmaster") == 0);
	}

	/* data: the Received: header, then the body */
	FZ_CHECK(m->data != NULL && m->len >= 10 && memcmp(m->data, "Received: ", 10) == 0);
	char hdr[2048];
	size_t hl = 0;
	bool hdr_ok = false;
	static const char *const protos[] = { "UTF8SMTP", "ESMTP", "SMTP" };
	for (int k = 0; k < 3 && !hdr_ok; k++) {
		if ((k == 0) != utf8)
			continue;
		if (r->mode == 2 && k > 0 && (k == 1) != r->esmtp)
			continue;
		char proto[16];
		snprintf(proto, sizeof proto, "%s%s", protos[k], r->tls == SMTP_SRV_TLS_ACTIVE ? "S" : "");
		hl = fz_received(r, m, proto, hdr, sizeof hdr);
		hdr_ok = hl <= m->len && memcmp(m->data, hdr, hl) == 0;
	}
	FZ_CHECK(hdr_ok);
	const uint8_t *body = m->data + hl;
	size_t bl = m->len - hl;
	FZ_CHECK(bl <= c->eff.max_message_size);
	FZ_CHECK(bl == 0 || (bl >= 2 && body[bl - 2] == '\r' && body[bl - 1] == '\n'));
	for (size_t i = 0; i < m->len; i++) {       /* CRLF only: no bare CR or LF */
		if (m->data[i] == '\n')
			FZ_CHECK(i > 0 && m->data[i - 1] == '\r');
		if (m->data[i] == '\r')
			FZ_CHECK(i + 1 < m->len && m->data[i + 1] == '\n');
	}
	for (size_t i = 0, ls = 0; i < bl; i++)      /* line lengths, CRLF excluded */
		if (body[i] == '\n') {
			FZ_CHECK(i - 1 - ls <= c->eff.max_line_length);
			ls = i + 1;
		}
	if (r->mode == 2) {                          /* the body is the unstuffed stream */
		struct fz_buf want = { 0 };
		fz_unstuff(r->in + r->data_start, at - r->data_start, &want);
		FZ_CHECK(want.len == bl && (bl == 0 || memcmp(want.p, body, bl) == 0));
		free(want.p);
	}

	fz_putf(&r->ev, "M@%zu;%s;%s;%s;%zu;%u;", at, m->qid, m->helo, m->mail_from, m->nrcpt,
	        m->flags);
	for (size_t k = 0; k < m->nrcpt; k++)
		fz_putf(&r->ev, "%s;", m->rcpt[k]);
	fz_putf(&r->ev, "%zu:", m->len);
	fz_put(&r->ev, m->data, m->len);
}

/* The caller's answer to the nmsg-th message, from the spool seed. */
static void fz_answer(struct fz_run *r)
{
	const struct fz_cfg *c = r->cfg;
	uint32_t h = fz_hash(&r->nmsg, sizeof r->nmsg, c->spool);
	unsigned act = c->spool & 0x80 ? 0 : h % 8;  /* 0x80: always queued */
	char want[512];

	r->nmsg++;
	if (act >= 6) {
		/* the session is stopped while the message waits: the message stays valid */
		if (act == 6) {
			smtp_srv_timeout(r->s);
			snprintf(want, sizeof want, "421 4.4.2 %s Error: timeout exceeded\r\n", c->host);
		} else {
			smtp_srv_shutdown(r->s);
			snprintf(want, sizeof want, "421 4.3.2 %s Service shutting down\r\n", c->host);
		}
		fz_after_exact(r, want);
		FZ_CHECK(smtp_srv_message(r->s) != NULL && smtp_srv_closing(r->s));
		fz_putf(&r->ev, "S%u;", act);
		static const unsigned then[3] = { 0, 3, 5 };
		act = then[(h >> 8) % 3];
	}
	bool closing = smtp_srv_closing(r->s);
	switch (act) {
	case 0: case 1: case 2:
		smtp_srv_queued(r->s);
		snprintf(want, sizeof want, "250 2.0.0 Ok: queued as %s\r\n", r->qid);
		break;
	case 3: case 4:
		smtp_srv_queue_failed(r->s);
		snprintf(want, sizeof want, "451 4.3.0 Error: queue file write error\r\n");
		break;
	default:
		smtp_srv_refuse(r->s, h & 0x100 ? "451 4.3.0 x" : "554 5.7.1 Error: rejected");
		snprintf(want, sizeof want, "%s\r\n", h & 0x100 ? "451 4.3.0 x" : "554 5.7.1 Error: rejected");
		break;
	}
	fz_after_exact(r, closing ? NULL : want);
	FZ_CHECK(smtp_srv_message(r->s) == NULL);
	FZ_CHECK(!smtp_srv_in_transaction(r->s));
	FZ_CHECK(smtp_srv_closing(r->s) == closing);
	fz_putf(&r->ev, "R%u;", act);
}

/* ---- the reference model (octet-at-a-time run) ------------------------------------- */

static bool fz_first_is(const struct fz_run *r, const char *want)
{
	size_t wl = strlen(want);
	return r->first_len == wl + 2 && memcmp(r->first_reply, want, wl) == 0;
}

static unsigned fz_first_code(const struct fz_run *r)
{
	const uint8_t *l = r->first_reply;
	return (unsigned)(l[0] - '0') * 100 + (unsigned)(l[1] - '0') * 10 + (unsigned)(l[2] - '0');
}

/* arg is KW (any case), spaces, then exactly one ASCII path: the simple form of MAIL
 * and RCPT that must not be refused for its syntax. */
static bool fz_simple_path(const char *arg, size_t al, const char *kw, unsigned flags,
                           struct smtp_addr *out)
{
	size_t kl = strlen(kw), used;
	struct smtp_addr a;

	if (al < kl || strncasecmp(arg, kw, kl) != 0)
		return false;
	arg += kl;
	al -= kl;
	while (al > 0 && *arg == ' ') {
		arg++;
		al--;
	}
	if (al == 0 || smtp_addr_parse_path(arg, al, flags, &a, &used) != SMTP_ADDR_OK ||
	    used != al || a.utf8)
		return false;
	if (out)
		*out = a;
	return true;
}

/* The command line in[ln_start..end] (end: its LF) was answered: check the answer. */
static void fz_model_command(struct fz_run *r, size_t end)
{
	const struct fz_cfg *c = r->cfg;
	const uint8_t *l = r->in + r->ln_start;
	size_t n = end - r->ln_start;                /* octets before the LF */
	bool crlf = n > 0 && l[n - 1] == '\r';
	size_t cl = crlf ? n - 1 : n;                /* content */
	char want[1024];

	FZ_CHECK(r->new_replies == 1 + (r->new_421_errors ? 1 : 0));
	if (memchr(l, '\r', cl)) {
		FZ_CHECK(fz_first_is(r, "550 5.5.2 Error: bare <CR> received"));
		return;
	}
	if (!crlf) {
		FZ_CHECK(fz_first_is(r, "550 5.5.2 Error: bare <LF> received"));
		return;
	}
	if (cl > SMTP_SRV_CMD_MAX) {
		FZ_CHECK(fz_first_is(r, "500 5.5.2 Error: command too long"));
		return;
	}
	if (memchr(l, '\0', cl)) {
		FZ_CHECK(fz_first_is(r, "500 5.5.2 Error: bad syntax"));
		return;
	}
	size_t vl = 0;
	while (vl < cl && l[vl] != ' ')
		vl++;
	const char *arg = (const char *)l + vl;
	size_t al = cl - vl;
	while (al > 0 && *arg == ' ') {
		arg++;
		al--;
	}
	while (al > 0 && arg[al - 1] == ' ')
		al--;
#define FZ_VERB(v) (vl == strlen(v) && strncasecmp((const char *)l, v, vl) == 0)
	unsigned code = fz_first_code(r);
	if (vl == 0) {
		FZ_CHECK(fz_first_is(r, "500 5.5.2 Error: bad syntax"));
	} else if (FZ_VERB("EHLO") || FZ_VERB("HELO")) {
		bool e = FZ_VERB("EHLO");
		if (al == 0) {
			FZ_CHECK(fz_first_is(r, e ? "501 5.5.4 Syntax: EHLO hostname"
			                          : "501 5.5.4 Syntax: HELO hostname"));
			return;
		}
		bool offer = r->tls == SMTP_SRV_TLS_OFFER || r->tls == SMTP_SRV_TLS_REQUIRE;
		if (e)
			snprintf(want, sizeof want,
			         "250-%s\r\n250-PIPELINING\r\n250-SIZE %llu\r\n250-VRFY\r\n"
			         "250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n%s250 SMTPUTF8\r\n",
			         c->host, (unsigned long long)c->eff.max_message_size,
			         offer ? "250-STARTTLS\r\n" : "");
		else
			snprintf(want, sizeof want, "250 %s\r\n", c->host);
		FZ_CHECK(r->first_len == strlen(want) && memcmp(r->first_reply, want, r->first_len) == 0);
		r->st = FZ_READY;
		r->esmtp = e;
		r->nrcpt = 0;
	} else if (FZ_VERB("MAIL")) {
		if (r->st < FZ_READY) {
			FZ_CHECK(fz_first_is(r, "503 5.5.1 Error: send HELO/EHLO first"));
		} else if (r->st != FZ_READY) {
			FZ_CHECK(fz_first_is(r, "503 5.5.1 Error: nested MAIL command"));
		} else if (r->tls == SMTP_SRV_TLS_REQUIRE) {
			FZ_CHECK(fz_first_is(r, "530 5.7.0 Must issue a STARTTLS command first"));
		} else if (code == 250) {
			FZ_CHECK(fz_first_is(r, "250 2.1.0 Ok"));
			r->st = FZ_MAIL;
			r->nrcpt = 0;
		} else {
			FZ_CHECK(code == 501 || code == 552 || code == 553 || code == 555);
			/* "FROM:<path>" with an ASCII path and no parameters is accepted */
			FZ_CHECK(!fz_simple_path(arg, al, "FROM:", SMTP_ADDR_NULL_OK, NULL));
		}
	} else if (FZ_VERB("RCPT")) {
		if (r->st != FZ_MAIL && r->st != FZ_RCPT) {
			FZ_CHECK(fz_first_is(r, "503 5.5.1 Error: need MAIL command"));
		} else if (code == 250) {
			FZ_CHECK(fz_first_is(r, "250 2.1.5 Ok"));
			FZ_CHECK(r->nrcpt < c->eff.max_recipients);
			r->nrcpt++;
			r->st = FZ_RCPT;
		} else {
			FZ_CHECK(code == 452 || code == 501 || code == 553 || code == 554 ||
			         code == 555);
			if (code == 452)
				FZ_CHECK(r->nrcpt == c->eff.max_recipients);
			/* "TO:<path>" with an ASCII path and no parameters: refused only for
			 * the limit or the relay decision */
			struct smtp_addr a;
			if (fz_simple_path(arg, al, "TO:", SMTP_ADDR_POSTMASTER_OK, &a)) {
				if (r->nrcpt >= c->eff.max_recipients)
					FZ_CHECK(fz_first_is(r, "452 4.5.3 Error: too many recipients"));
				else
					FZ_CHECK(code == 554 && a.domain_len > 0 &&
					         !fz_domain_allowed(c, a.domain, a.domain_len));
			}
		}
	} else if (FZ_VERB("DATA")) {
		if (r->st == FZ_MAIL) {
			FZ_CHECK(fz_first_is(r, "554 5.5.1 Error: no valid recipients"));
		} else if (r->st != FZ_RCPT) {
			FZ_CHECK(fz_first_is(r, "503 5.5.1 Error: need RCPT command"));
		} else if (al > 0) {
			FZ_CHECK(fz_first_is(r, "501 5.5.4 Syntax: DATA"));
		} else {
			FZ_CHECK(fz_first_is(r, "354 End data with <CR><LF>.<CR><LF>"));
			r->st = FZ_DATA;
			r->data_start = end + 1;
		}
	} else if (FZ_VERB("RSET")) {
		if (al > 0) {
			FZ_CHECK(fz_first_is(r, "501 5.5.4 Syntax: RSET"));
		} else {
			FZ_CHECK(fz_first_is(r, "250 2.0.0 Ok"));
			if (r->st > FZ_READY)
				r->st = FZ_READY;
			r->nrcpt = 0;
		}
	} else if (FZ_VERB("NOOP")) {
		FZ_CHECK(fz_first_is(r, "250 2.0.0 Ok"));
	} else if (FZ_VERB("VRFY")) {
		FZ_CHECK(fz_first_is(r, al ? "252 2.0.0 Send some mail, I'll try my best"
		                           : "501 5.5.4 Syntax: VRFY address"));
	} else if (FZ_VERB("QUIT")) {
		FZ_CHECK(fz_first_is(r, "221 2.0.0 Bye"));
	} else if (FZ_VERB("STARTTLS") && r->tls != SMTP_SRV_TLS_NONE) {
		if (r->tls == SMTP_SRV_TLS_ACTIVE) {
			FZ_CHECK(fz_first_is(r, "554 5.5.1 Error: TLS already active"));
		} else if (al > 0) {
			FZ_CHECK(fz_first_is(r, "501 5.5.4 Syntax: STARTTLS"));
		} else if (r->st == FZ_MAIL || r->st == FZ_RCPT) {
			FZ_CHECK(fz_first_is(r, "503 5.5.1 Error: MAIL transaction in progress"));
		} else {
			FZ_CHECK(fz_first_is(r, "220 2.0.0 Ready to start TLS"));
			r->st = FZ_GREETED;      /* RFC 3207 4.2: HELO/EHLO forgotten */
			r->esmtp = false;
			r->nrcpt = 0;
			r->tls = SMTP_SRV_TLS_ACTIVE;
		}
	} else {
		FZ_CHECK(fz_first_is(r, "502 5.5.2 Error: command not recognized"));
	}
#undef FZ_VERB
}

/* The data in[data_start..end] (end: an LF) ended: the first "." CRLF line that began
 * after CRLF or at the start; then the verdict. msg: the session handed it out. */
static void fz_model_data_end(struct fz_run *r, size_t end, bool msg)
{
	const struct fz_cfg *c = r->cfg;
	const uint8_t *p = r->in + r->data_start;
	size_t n = end + 1 - r->data_start;

	/* where the data must end */
	size_t e = 0;
	for (;; e++) {
		FZ_CHECK(e + 3 <= n);
		if (memcmp(p + e, ".\r\n", 3) == 0 &&
		    (e == 0 || (e >= 2 && p[e - 2] == '\r' && p[e - 1] == '\n')))
			break;
	}
	FZ_CHECK(e + 3 == n);
	/* the verdict: bare CR/LF (the first), then a long line, then the size */
	const char *why = NULL;
	for (size_t i = 0; i < n && !why; i++) {
		if (p[i] == '\r' && p[i + 1] != '\n')
			why = "550 5.5.2 Error: bare <CR> received";
		else if (p[i] == '\n' && (i == 0 || p[i - 1] != '\r'))
			why = "550 5.5.2 Error: bare <LF> received";
	}
	if (!why) {
		struct fz_buf body = { 0 };
		fz_unstuff(p, n, &body);
		for (size_t i = 0, ls = 0; i < body.len && !why; i++)
			if (body.p[i] == '\n') {
				if (i - 1 - ls > c->eff.max_line_length)
					why = "550 5.6.0 Error: message line too long";
				ls = i + 1;
			}
		if (!why && body.len > c->eff.max_message_size)
			why = "552 5.3.4 Error: message file too big";
		free(body.p);
	}
	if (why) {
		FZ_CHECK(!msg);
		FZ_CHECK(r->new_replies == 1 + (r->new_421_errors ? 1 : 0));
		FZ_CHECK(fz_first_is(r, why));
	} else {
		FZ_CHECK(msg);
	}
	r->st = FZ_READY;
	r->nrcpt = 0;
}

/* ---- one run ----------------------------------------------------------------------- */

static size_t fz_next_chunk(struct fz_run *r, size_t avail)
{
	size_t e;

	if (r->mode == 0) {
		e = r->n;
	} else if (r->mode == 2) {
		e = avail + 1;
	} else {
		uint32_t x = fz_rand(r);
		e = avail + 1 + (x & 0x100 ? x % 600 : x % 17);
	}
	if (e > r->n)
		e = r->n;
	if (r->cfg->t_kind && avail < r->cfg->t_off && e > r->cfg->t_off)
		e = r->cfg->t_off;
	return e;
}

static size_t fz_count_lf(const uint8_t *p, size_t n)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		k += p[i] == '\n';
	return k;
}

static void fz_stop(struct fz_run *r, int kind)
{
	char want[512];
	bool closing = smtp_srv_closing(r->s);

	if (kind == 1) {
		smtp_srv_timeout(r->s);
		snprintf(want, sizeof want, "421 4.4.2 %s Error: timeout exceeded\r\n", r->cfg->host);
	} else {
		smtp_srv_shutdown(r->s);
		snprintf(want, sizeof want, "421 4.3.2 %s Service shutting down\r\n", r->cfg->host);
	}
	fz_after_exact(r, closing ? NULL : want);
	FZ_CHECK(smtp_srv_closing(r->s));
	fz_putf(&r->ev, "T%d;", kind);
}

static void fz_run(struct fz_run *r)
{
	const struct fz_cfg *c = r->cfg;
	size_t pos = 0, avail = 0;
	bool t_done = false;

	r->rng = c->split * 2654435761u + (uint32_t)r->mode;
	r->s = smtp_srv_new(c->host, c->peer0, &c->lim, &fz_ops, r);
	FZ_CHECK(r->s != NULL);
	FZ_CHECK(!smtp_srv_closing(r->s) && !smtp_srv_in_transaction(r->s));
	if (c->peer0 != c->peer)
		FZ_CHECK(smtp_srv_set_peer(r->s, c->peer) == 0);
	if (c->tls != SMTP_SRV_TLS_NONE)
		smtp_srv_set_tls(r->s, c->tls);
	r->tls = c->tls;
	fz_after_exact(r, NULL);
	smtp_srv_start(r->s);
	char banner[400];
	snprintf(banner, sizeof banner, "220 %s ESMTP ringrelay\r\n", c->host);
	fz_after_exact(r, banner);
	FZ_CHECK(smtp_srv_set_peer(r->s, "192.0.2.99") == -EINVAL);
	smtp_srv_start(r->s);                        /* a second start writes nothing */
	fz_after_exact(r, NULL);

	for (;;) {
		if (c->t_kind && !t_done && pos == c->t_off) {
			t_done = true;
			fz_stop(r, c->t_kind);
		}
		if (pos == avail) {
			if (avail == r->n)
				break;
			avail = fz_next_chunk(r, avail);
		}
		size_t used = SIZE_MAX;
		bool data_before = smtp_srv_in_transaction(r->s);
		r->in_feed = true;
		enum smtp_srv_ev ev = smtp_srv_feed(r->s, r->in + pos, avail - pos, &used);
		FZ_CHECK(used <= avail - pos);
		size_t lines = fz_count_lf(r->in + pos, used);
		fz_after(r, c->bound * lines);
		r->in_feed = false;
		if (r->mode == 2) {
			if (!smtp_srv_closing(r->s) || used == 1)
				FZ_CHECK(data_before == (r->st == FZ_DATA));
			/* one octet: replies only at an LF */
			FZ_CHECK(used <= 1);
			if (used == 1 && r->in[pos] != '\n')
				FZ_CHECK(r->new_replies == 0);
			if (used == 1 && r->in[pos] == '\n') {
				if (!data_before) {
					fz_model_command(r, pos);
					r->ln_start = pos + 1;
				} else if (ev == SMTP_SRV_EV_MESSAGE || !smtp_srv_in_transaction(r->s)) {
					fz_model_data_end(r, pos, ev == SMTP_SRV_EV_MESSAGE);
					r->ln_start = pos + 1;
				} else {
					FZ_CHECK(r->new_replies == 0);
				}
			}
		}
		pos += used;
		switch (ev) {
		case SMTP_SRV_EV_NONE:
			FZ_CHECK(pos == avail);
			break;
		case SMTP_SRV_EV_MESSAGE: {
			FZ_CHECK(used > 0 && r->in[pos - 1] == '\n');
			FZ_CHECK(smtp_srv_in_transaction(r->s));
			fz_check_msg(r, smtp_srv_message(r->s), pos);
			/* a feed while the message waits: nothing consumed, nothing written */
			r->in_feed = true;
			used = SIZE_MAX;
			FZ_CHECK(smtp_srv_feed(r->s, r->in + pos, avail - pos, &used) ==
			         SMTP_SRV_EV_WAIT);
			FZ_CHECK(used == 0);
			fz_after_exact(r, NULL);
			r->in_feed = false;
			if (pos & 1) {      /* now and then the buffer is handed over, as the relay does */
				const struct smtp_srv_msg *m = smtp_srv_message(r->s);
				size_t len = m->len;
				uint8_t *want = malloc(len ? len : 1);
				FZ_CHECK(want != NULL);
				memcpy(want, m->data, len);
				uint8_t *d = smtp_srv_take_data(r->s);
				FZ_CHECK(d != NULL && memcmp(d, want, len) == 0);
				FZ_CHECK(smtp_srv_take_data(r->s) == NULL);
				free(d);
				free(want);
			}
			fz_answer(r);
			break;
		}
		case SMTP_SRV_EV_STARTTLS:
			/* stopped right behind the STARTTLS line: what the client pipelined
			 * behind it is its first talk over TLS here (a real caller drops it) */
			FZ_CHECK(used > 0 && r->in[pos - 1] == '\n');
			FZ_CHECK(c->tls == SMTP_SRV_TLS_OFFER || c->tls == SMTP_SRV_TLS_REQUIRE);
			FZ_CHECK(r->last_code == 220 && !r->closed);
			FZ_CHECK(!smtp_srv_in_transaction(r->s) && !smtp_srv_closing(r->s));
			if (r->mode == 2)
				FZ_CHECK(r->tls == SMTP_SRV_TLS_ACTIVE);   /* the model agrees */
			r->tls = SMTP_SRV_TLS_ACTIVE;
			fz_putf(&r->ev, "T@%zu;", pos);
			break;
		case SMTP_SRV_EV_WAIT:
			FZ_CHECK(!"WAIT without a pending message");
			break;
		case SMTP_SRV_EV_CLOSE:
			FZ_CHECK(smtp_srv_closing(r->s) && r->closed);
			FZ_CHECK(r->last_code == 221 || r->last_code == 421);
			fz_putf(&r->ev, "C@%zu;", pos);
			/* closed: nothing more is consumed or written */
			r->in_feed = true;
			used = SIZE_MAX;
			FZ_CHECK(smtp_srv_feed(r->s, r->in + pos, r->n - pos, &used) ==
			         SMTP_SRV_EV_CLOSE);
			FZ_CHECK(used == 0);
			fz_after_exact(r, NULL);
			r->in_feed = false;
			goto done;
		default:
			FZ_CHECK(!"unknown event");
		}
	}
	FZ_CHECK(!smtp_srv_closing(r->s) || r->closed);
	if (c->end_action)
		fz_stop(r, c->end_action);
done:
	smtp_srv_timeout(r->s);                     /* closed or not: at most one 421 */
	fz_after(r, 200 + strlen(c->host));
	smtp_srv_shutdown(r->s);
	fz_after_exact(r, NULL);
	FZ_CHECK(smtp_srv_closing(r->s));
	size_t len;
	const uint8_t *o = smtp_srv_out(r->s, &len);
	if (len)
		fz_put(&r->out, o, len);
	fz_putf(&r->ev, "E@%zu;", pos);
	smtp_srv_free(r->s);
	r->s = NULL;
	FZ_CHECK(r->mem_held == 0);                 /* every octet taken was given back */
}

static void fz_config(struct fz_cfg *c, const uint8_t *d)
{
	memset(c, 0, sizeof *c);
	c->lim.max_message_size = fz_msg_sizes[d[0] & 7];
	c->lim.max_recipients = fz_rcpts[d[1] & 7];
	c->lim.max_line_length = fz_lines[d[2] & 7];
	c->lim.max_errors = fz_errs[d[3] & 7];
	static const enum smtp_srv_tls tls[4] = { SMTP_SRV_TLS_NONE, SMTP_SRV_TLS_OFFER,
	                                          SMTP_SRV_TLS_REQUIRE, SMTP_SRV_TLS_ACTIVE };
	c->tls = tls[d[3] >> 3 & 3];
	c->eff = c->lim;
	if (!c->eff.max_message_size)
		c->eff.max_message_size = 52428800;
	if (!c->eff.max_recipients)
		c->eff.max_recipients = 1000;
	if (!c->eff.max_line_length)
		c->eff.max_line_length = 998;
	if (!c->eff.max_errors)
		c->eff.max_errors = 20;
	c->split = d[4];
	c->spool = d[5];
	c->host = fz_hosts[d[6] & 3];
	c->peer = fz_peers[d[6] >> 2 & 3];
	c->peer0 = d[6] & 0x10 ? "198.51.100.1" : c->peer;
	c->qid_len = fz_qid_lens[d[6] >> 5 & 3];
	c->end_action = (d[6] >> 7) ? 1 + (d[4] & 1) : 0;
	c->allow = d[7];
	c->t_off = (size_t)(d[8] & 0x7f) << 8 | d[9];
	c->t_kind = d[8] & 0x80 ? 1 + (d[9] & 1) : 0;
	c->now = 1700000000 + (time_t)(d[5] & 0x7f) * 86399;
	fz_date(c->now, c->date, sizeof c->date);
	/* octets a feed may write per line consumed: the EHLO reply, or one reply line of
	 * at most 512 octets followed by "421 4.7.0 HOST Error: too many errors" */
	char ehlo[1024];
	int ne = snprintf(ehlo, sizeof ehlo,
	                  "250-%s\r\n250-PIPELINING\r\n250-SIZE %llu\r\n250-VRFY\r\n"
	                  "250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250-STARTTLS\r\n"
	                  "250 SMTPUTF8\r\n",
	                  c->host, (unsigned long long)c->eff.max_message_size);
	size_t e421 = strlen("421 4.7.0  Error: too many errors\r\n") + strlen(c->host);
	size_t one = fz_known("reply512") ? FZ_555_MAX : FZ_REPLY_MAX;
	c->bound = (size_t)ne > one + e421 ? (size_t)ne : one + e421;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_cfg cfg;
	struct fz_run runs[3];

	if (size < FZ_CFG_LEN)
		return 0;
	fz_config(&cfg, data);
	/* the stream in an exact-size heap buffer: a read past its end is an ASan report */
	size_t n = size - FZ_CFG_LEN;
	uint8_t *in = fz_dup(data + FZ_CFG_LEN, n);
	for (int m = 0; m < 3; m++) {
		memset(&runs[m], 0, sizeof runs[m]);
		runs[m].cfg = &cfg;
		runs[m].in = in;
		runs[m].n = n;
		runs[m].mode = m;
		fz_run(&runs[m]);
	}
	if (getenv("FZ_DUMP")) {                     /* FZ_DUMP=1 ./smtp_srv_fuzz FILE */
		fprintf(stderr, "--- transcript\n%.*s--- events\n%.*s\n", (int)runs[0].out.len,
		        (const char *)runs[0].out.p, (int)runs[0].ev.len, (const char *)runs[0].ev.p);
	}
	for (int m = 1; m < 3; m++) {
		FZ_CHECK(runs[m].out.len == runs[0].out.len);
		FZ_CHECK(memcmp(runs[m].out.p, runs[0].out.p, runs[0].out.len) == 0);
		FZ_CHECK(runs[m].ev.len == runs[0].ev.len);
		FZ_CHECK(memcmp(runs[m].ev.p, runs[0].ev.p, runs[0].ev.len) == 0);
	}
	for (int m = 0; m < 3; m++) {
		free(runs[m].out.p);
		free(runs[m].ev.p);
	}
	free(in);
	return 0;
}
