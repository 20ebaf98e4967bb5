/* proto/dsn — RFC 3464 delivery status notifications; see dsn.h.
 *
 * Built in four pieces, each a growing buffer: the preamble and the three body parts
 * (each with its own MIME header lines), then the boundary is chosen against all four,
 * then the message headers and the pieces are joined. The pieces never depend on the
 * boundary, so choosing it last is sound.
 *
 * Where an untrusted octet could do harm, and why it cannot:
 *  - a header or MIME line of its own: every field goes through dsn_clean(), which
 *    leaves no CR, LF or NUL (nor any other control octet, nor 8-bit), and the only
 *    line breaks in generated text are the folds of dsn_fold(), whose continuation
 *    lines start with spaces;
 *  - an over-long line: each field is cut in dsn_clean() to a length that fits its line,
 *    and dsn_fold() cuts a word longer than a line at DSN_LINE_MAX;
 *  - a blank line inside the delivery-status part (which would end a block): dsn_fold()
 *    never writes a line of white space only, and an all-space diag counts as none;
 *  - a forged boundary: dsn_boundary() picks one that occurs nowhere in the pieces;
 *  - the original's header section: copied line by line with its terminators rewritten,
 *    NUL replaced, lines and the whole capped; nothing else of the original is read
 *    past the first empty line or the cap.
 */
#include "proto/dsn.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DSN_WRAP 78          /* prose and folded fields break before this column */
#define DSN_INDENT "    "    /* continuation lines (Postfix's bounce_print_wrap) */
#define DSN_INDENT_LEN 4

/* cuts of the cleaned fields (octets written, "..." included) */
#define DSN_ADDR_CUT 512     /* rcpt, sender */
#define DSN_HOST_CUT 255     /* remote_mta, reporting_mta */
#define DSN_CMD_CUT 64       /* in_reply_to */
#define DSN_QID_CUT 64       /* qid, dsn_qid in the Message-ID */
#define DSN_DIAG_CUT 4096    /* diag, folded */
#define DSN_BQID_CUT 32      /* dsn_qid in the boundary */

#define DSN_CHECK(cond)                                                                 \
	do {                                                                            \
		if (!(cond)) {                                                          \
			fprintf(stderr, "%s:%d: broken invariant: %s\n", __FILE__, __LINE__, \
			        #cond);                                                 \
			abort();                                                        \
		}                                                                       \
	} while (0)

/* ---- allocation (with a fault hook in the test build) ------------------------------ */

#ifdef RR_TEST_BUILD
/* Test hook (declared by test/proto/dsn_test.c): make the nth allocation from now fail
 * (1: the next one), 0: none. */
void dsn_test_fail_alloc(unsigned long nth);
static unsigned long dsn_fail_nth;

void dsn_test_fail_alloc(unsigned long nth)
{
	dsn_fail_nth = nth;
}

static bool dsn_fail_now(void)
{
	return dsn_fail_nth != 0 && --dsn_fail_nth == 0;
}
#else
static bool dsn_fail_now(void)
{
	return false;
}
#endif

static void *dsn_realloc(void *p, size_t n)
{
	if (dsn_fail_now())
		return NULL;
	return realloc(p, n);
}

/* A growing buffer. After a failed allocation it keeps what it had, stops growing and
 * says so in oom; the builder checks once at the end. */
struct dsn_buf {
	uint8_t *p;
	size_t len, cap;
	bool oom;
};

static bool dsn_reserve(struct dsn_buf *b, size_t more)
{
	if (b->oom)
		return false;
	if (more <= b->cap - b->len)
		return true;
	if (more > SIZE_MAX / 2 - b->len) {
		b->oom = true;
		return false;
	}
	size_t cap = b->cap ? b->cap : 256;
	while (cap - b->len < more)
		cap *= 2;
	uint8_t *p = dsn_realloc(b->p, cap);
	if (p == NULL) {
		b->oom = true;
		return false;
	}
	b->p = p;
	b->cap = cap;
	return true;
}

static void dsn_put(struct dsn_buf *b, const void *p, size_t n)
{
	if (n == 0 || !dsn_reserve(b, n))
		return;
	memcpy(b->p + b->len, p, n);
	b->len += n;
}

static void dsn_puts(struct dsn_buf *b, const char *s)
{
	dsn_put(b, s, strlen(s));
}

static void dsn_putc(struct dsn_buf *b, char c)
{
	dsn_put(b, &c, 1);
}

/* s, then CRLF */
static void dsn_line(struct dsn_buf *b, const char *s)
{
	dsn_puts(b, s);
	dsn_put(b, "\r\n", 2);
}

static void dsn_buf_free(struct dsn_buf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}

/* ---- cleaning untrusted fields ----------------------------------------------------- */

/* What octet c becomes, in out: one octet, or the four of "\xHH"; returns how many. */
static size_t dsn_clean_octet(unsigned char c, char out[4])
{
	static const char hex[] = "0123456789ABCDEF";

	if (c == '\r' || c == '\n' || c == '\t') {
		out[0] = ' ';
		return 1;
	}
	if (c < 0x20 || c == 0x7f) {
		out[0] = '?';
		return 1;
	}
	if (c >= 0x80) {
		out[0] = '\\';
		out[1] = 'x';
		out[2] = hex[c >> 4];
		out[3] = hex[c & 15];
		return 4;
	}
	out[0] = (char)c;
	return 1;
}

/* Appends [s, s+n) cleaned (see dsn.h) and cut to at most max octets, a cut marked by
 * "..." (max >= 3). */
static void dsn_clean(struct dsn_buf *b, const char *s, size_t n, size_t max)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t total = 0, i;
	char o[4];

	for (i = 0; i < n && total <= max; i++)
		total += dsn_clean_octet(u[i], o);
	bool cut = total > max;
	size_t lim = cut ? max - 3 : max, w = 0;
	for (i = 0; i < n; i++) {
		size_t k = dsn_clean_octet(u[i], o);
		if (w + k > lim)
			break;
		dsn_put(b, o, k);
		w += k;
	}
	if (cut)
		dsn_put(b, "...", 3);
}

/* s without one pair of enclosing angle brackets */
static void dsn_unbracket(const char *s, const char **p, size_t *n)
{
	size_t l = strlen(s);

	if (l >= 2 && s[0] == '<' && s[l - 1] == '>') {
		s++;
		l -= 2;
	}
	*p = s;
	*n = l;
}

/* Appends the host name h with only [A-Za-z0-9.-] (others as '-') and no empty labels,
 * cut to DSN_HOST_CUT; returns the octets written. */
static size_t dsn_clean_host(struct dsn_buf *b, const char *h)
{
	size_t w = 0;
	bool dot = false;    /* a dot is pending: written before the next label octet */

	for (; *h && w < DSN_HOST_CUT; h++) {
		char c = *h;
		if (c == '.') {
			dot = w > 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-'))
			c = '-';
		if (dot) {
			if (w + 2 > DSN_HOST_CUT)
				break;
			dsn_putc(b, '.');
			w++;
			dot = false;
		}
		dsn_putc(b, c);
		w++;
	}
	return w;
}

/* Appends the queue id q with only [A-Za-z0-9_-] (others as '_'), cut to max octets;
 * returns the octets written. */
static size_t dsn_clean_qid(struct dsn_buf *b, const char *q, size_t max)
{
	size_t w = 0;

	for (; *q && w < max; q++, w++) {
		char c = *q;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-'))
			c = '_';
		dsn_putc(b, c);
	}
	return w;
}

/* true when [p, p+n) has an octet other than a space */
static bool dsn_has_text(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != ' ')
			return true;
	return false;
}

/* ---- folding ----------------------------------------------------------------------- */

/* Appends the words of [s, s+n) (separated by runs of spaces; leading and trailing
 * spaces dropped), the current line already holding col octets (col < DSN_LINE_MAX): a
 * line is broken before a word that would take it past DSN_WRAP, and continuation lines
 * start with DSN_INDENT; a word that does not fit in DSN_LINE_MAX is cut there and goes
 * on after a break. Ends without CRLF. No line it starts is empty or all white space. */
static void dsn_fold(struct dsn_buf *b, size_t col, const uint8_t *s, size_t n)
{
	size_t i = 0;
	bool first = true;

	while (i < n) {
		while (i < n && s[i] == ' ')
			i++;
		if (i == n)
			break;
		size_t e = i;
		while (e < n && s[e] != ' ')
			e++;
		const uint8_t *w = s + i;
		size_t wl = e - i;
		i = e;
		if (!first) {
			if (col + 1 + wl <= DSN_WRAP) {
				dsn_putc(b, ' ');
				col++;
			} else {
				dsn_put(b, "\r\n" DSN_INDENT, 2 + DSN_INDENT_LEN);
				col = DSN_INDENT_LEN;
			}
		}
		first = false;
		while (wl > 0) {
			if (col >= DSN_LINE_MAX) {
				dsn_put(b, "\r\n" DSN_INDENT, 2 + DSN_INDENT_LEN);
				col = DSN_INDENT_LEN;
			}
			size_t k = DSN_LINE_MAX - col;
			if (k > wl)
				k = wl;
			dsn_put(b, w, k);
			col += k;
			w += k;
			wl -= k;
		}
	}
}

/* ---- dates and status codes -------------------------------------------------------- */

/* RFC 5322 date-time of unix time t in UTC: "Thu, 1 Jan 1970 00:00:00 +0000". */
static void dsn_date(char out[64], uint64_t t)
{
	static const char wday[7][4] = { "Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed" };
	static const char mon[12][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
	                                  "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	uint64_t days = t / 86400, sod = t % 86400;

	/* civil from days (H. Hinnant), in unsigned arithmetic: days >= 0 */
	uint64_t z = days + 719468;
	uint64_t era = z / 146097;
	uint64_t doe = z - era * 146097;
	uint64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	uint64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	uint64_t mp = (5 * doy + 2) / 153;
	unsigned d = (unsigned)(doy - (153 * mp + 2) / 5 + 1);
	unsigned m = (unsigned)(mp < 10 ? mp + 3 : mp - 9);
	uint64_t y = yoe + era * 400 + (m <= 2);

	snprintf(out, 64, "%s, %u %s %04llu %02u:%02u:%02u +0000", wday[days % 7], d,
	         mon[m - 1], (unsigned long long)y, (unsigned)(sod / 3600),
	         (unsigned)(sod / 60 % 60), (unsigned)(sod % 60));
}

/* RFC 3463 status-code whose class fits the action (see dsn.h) */
static bool dsn_status_ok(const char *s, enum dsn_action a)
{
	if (s == NULL)
		return false;
	if (a == DSN_DELAYED ? s[0] != '4' : s[0] != '4' && s[0] != '5')
		return false;
	if (s[1] != '.')
		return false;
	size_t i = 2;
	for (int part = 0; part < 2; part++) {
		size_t d = 0;
		while (s[i] >= '0' && s[i] <= '9') {
			i++;
			d++;
		}
		if (d < 1 || d > 3)
			return false;
		if (part == 0 && s[i++] != '.')
			return false;
	}
	return s[i] == '\0';
}

static const char *dsn_status(const struct dsn_rcpt *r)
{
	if (dsn_status_ok(r->status, r->action))
		return r->status;
	return r->action == DSN_DELAYED ? "4.0.0" : "5.0.0";
}

/* ---- the pieces -------------------------------------------------------------------- */

struct dsn_ctx {
	const struct dsn_msg *m;
	struct dsn_buf host;        /* reporting_mta, cleaned, NUL-terminated */
	bool all_delayed, any_delayed;
	char now[64];
	struct dsn_buf field;       /* scratch: one cleaned field */
	struct dsn_buf para;        /* scratch: one paragraph */
};

/* ctx->field := cleaned s (NULL: empty); returns whether it holds any text */
static bool dsn_field(struct dsn_ctx *c, const char *s, size_t max)
{
	c->field.len = 0;
	if (s == NULL)
		return false;
	dsn_clean(&c->field, s, strlen(s), max);
	return dsn_has_text(c->field.p, c->field.len);
}

static void dsn_put_field(struct dsn_buf *b, const struct dsn_ctx *c)
{
	dsn_put(b, c->field.p, c->field.len);
}

static const char dsn_failed_text[] =
	"I'm sorry to have to inform you that your message could not\r\n"
	"be delivered to one or more recipients. The headers of your\r\n"
	"message are attached below.\r\n";
static const char dsn_mixed_text[] =
	"\r\n"
	"Delivery to the recipients marked as delayed is still being\r\n"
	"retried; you need not resend your message to them.\r\n";
static const char dsn_delayed_text[] =
	"####################################################################\r\n"
	"# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #\r\n"
	"####################################################################\r\n"
	"\r\n"
	"Your message could not be delivered yet to one or more recipients.\r\n"
	"It will be retried until it is delivered or it expires.\r\n";
static const char dsn_closing_text[] =
	"\r\n"
	"For further assistance, please send mail to postmaster.\r\n"
	"\r\n"
	"If you do so, please include this problem report.\r\n"
	"\r\n"
	"                   The mail system\r\n";

/* part 1: text/plain, the human-readable report */
static void dsn_part_text(struct dsn_ctx *c, struct dsn_buf *b)
{
	const struct dsn_msg *m = c->m;

	dsn_line(b, "Content-Description: Notification");
	dsn_line(b, "Content-Type: text/plain; charset=us-ascii");
	dsn_line(b, "");
	dsn_puts(b, "This is the mail system at host ");
	dsn_puts(b, (const char *)c->host.p);
	dsn_line(b, ".");
	dsn_line(b, "");
	if (c->all_delayed) {
		dsn_puts(b, dsn_delayed_text);
	} else {
		dsn_puts(b, dsn_failed_text);
		if (c->any_delayed)
			dsn_puts(b, dsn_mixed_text);
	}
	dsn_puts(b, dsn_closing_text);

	for (size_t i = 0; i < m->nrcpt; i++) {
		const struct dsn_rcpt *r = &m->rcpt[i];
		struct dsn_buf *p = &c->para;
		const char *a;
		size_t an;

		p->len = 0;
		dsn_unbracket(r->rcpt, &a, &an);
		dsn_putc(p, '<');
		dsn_clean(p, a, an, DSN_ADDR_CUT);
		dsn_puts(p, ">: ");
		if (!c->all_delayed && r->action == DSN_DELAYED)
			dsn_puts(p, "(delayed, still being retried) ");
		bool have_host = dsn_field(c, r->remote_mta, DSN_HOST_CUT);
		if (have_host) {
			dsn_puts(p, "host ");
			dsn_put_field(p, c);
		}
		if (dsn_field(c, r->diag, DSN_DIAG_CUT)) {
			if (have_host)
				dsn_puts(p, " said: ");
			dsn_put_field(p, c);
		} else {
			if (have_host)
				dsn_puts(p, " answered");
			else
				dsn_puts(p, r->action == DSN_DELAYED ? "delivery is delayed"
				                                     : "delivery failed");
			dsn_puts(p, " (status ");
			dsn_puts(p, dsn_status(r));
			dsn_puts(p, ")");
		}
		if (dsn_field(c, r->in_reply_to, DSN_CMD_CUT)) {
			dsn_puts(p, " (in reply to ");
			dsn_put_field(p, c);
			dsn_puts(p, " command)");
		}
		dsn_line(b, "");
		if (!p->oom)
			dsn_fold(b, 0, p->p, p->len);
		dsn_line(b, "");
		b->oom |= p->oom;
	}
	b->oom |= c->field.oom;
}

/* part 2: message/delivery-status */
static void dsn_part_status(struct dsn_ctx *c, struct dsn_buf *b)
{
	const struct dsn_msg *m = c->m;
	char date[64];
	const char *a;
	size_t an;

	dsn_line(b, "Content-Description: Delivery report");
	dsn_line(b, "Content-Type: message/delivery-status");
	dsn_line(b, "");
	dsn_puts(b, "Reporting-MTA: dns; ");
	dsn_line(b, (const char *)c->host.p);
	if (m->qid != NULL) {
		dsn_puts(b, "X-Ringrelay-Queue-ID: ");
		dsn_field(c, m->qid, DSN_QID_CUT);
		dsn_put_field(b, c);
		dsn_line(b, "");
	}
	dsn_unbracket(m->sender, &a, &an);
	dsn_puts(b, "X-Ringrelay-Sender: rfc822; ");
	dsn_clean(b, a, an, DSN_ADDR_CUT);
	dsn_line(b, "");
	if (m->arrival != 0) {
		dsn_date(date, m->arrival);
		dsn_puts(b, "Arrival-Date: ");
		dsn_line(b, date);
	}

	for (size_t i = 0; i < m->nrcpt; i++) {
		const struct dsn_rcpt *r = &m->rcpt[i];
		bool have_host;

		dsn_line(b, "");
		dsn_unbracket(r->rcpt, &a, &an);
		dsn_puts(b, "Final-Recipient: rfc822; ");
		dsn_clean(b, a, an, DSN_ADDR_CUT);
		dsn_line(b, "");
		dsn_line(b, r->action == DSN_DELAYED ? "Action: delayed" : "Action: failed");
		dsn_puts(b, "Status: ");
		dsn_line(b, dsn_status(r));
		have_host = dsn_field(c, r->remote_mta, DSN_HOST_CUT);
		if (have_host) {
			dsn_puts(b, "Remote-MTA: dns; ");
			dsn_put_field(b, c);
			dsn_line(b, "");
		}
		if (dsn_field(c, r->diag, DSN_DIAG_CUT)) {
			/* RFC 3464 2.3.6: "smtp" for an SMTP reply; a local reason is ours */
			const char *pre = have_host ? "Diagnostic-Code: smtp; "
			                            : "Diagnostic-Code: X-Ringrelay; ";
			dsn_puts(b, pre);
			if (!c->field.oom)
				dsn_fold(b, strlen(pre), c->field.p, c->field.len);
			dsn_line(b, "");
		}
		dsn_puts(b, "Last-Attempt-Date: ");
		dsn_line(b, c->now);
	}
	b->oom |= c->field.oom;
}

/* The original's header section (see dsn.h) appended to b; returns whether it holds an
 * 8-bit octet. */
static bool dsn_orig_headers(struct dsn_buf *b, const uint8_t *p, size_t n)
{
	size_t i = 0, out = 0;
	bool eight = false;

	while (i < n) {
		size_t e = i;
		while (e < n && p[e] != '\r' && p[e] != '\n')
			e++;
		size_t cl = e - i, next = e;
		if (e < n)
			next = p[e] == '\r' && e + 1 < n && p[e + 1] == '\n' ? e + 2 : e + 1;
		if (cl == 0)
			break;              /* the empty line: the body follows */
		if (cl > DSN_LINE_MAX)
			cl = DSN_LINE_MAX;
		if (out + cl + 2 > DSN_HEADERS_MAX)
			break;
		if (!dsn_reserve(b, cl + 2))
			return eight;
		uint8_t *o = b->p + b->len;
		for (size_t k = 0; k < cl; k++) {
			uint8_t v = p[i + k];
			eight |= v >= 0x80;
			o[k] = v == 0 ? '?' : v;
		}
		o[cl] = '\r';
		o[cl + 1] = '\n';
		b->len += cl + 2;
		out += cl + 2;
		i = next;
	}
	return eight;
}

/* part 3: text/rfc822-headers; returns whether it is 8-bit */
static bool dsn_part_headers(struct dsn_ctx *c, struct dsn_buf *b)
{
	struct dsn_buf h = { 0 };
	bool eight = dsn_orig_headers(&h, c->m->orig, c->m->orig ? c->m->orig_len : 0);

	dsn_line(b, c->all_delayed ? "Content-Description: Message Headers"
	                           : "Content-Description: Undelivered Message Headers");
	dsn_line(b, "Content-Type: text/rfc822-headers");
	if (eight)
		dsn_line(b, "Content-Transfer-Encoding: 8bit");
	dsn_line(b, "");
	dsn_put(b, h.p, h.len);
	b->oom |= h.oom;
	dsn_buf_free(&h);
	return eight;
}

/* ---- the boundary ------------------------------------------------------------------ */

#define DSN_NPIECE 4

static int dsn_u64_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* The counter value of hex16 at p (16 lowercase hex digits), or false. */
static bool dsn_hex16(const uint8_t *p, uint64_t *v)
{
	uint64_t x = 0;

	for (int i = 0; i < 16; i++) {
		uint8_t c = p[i];
		if (c >= '0' && c <= '9')
			x = x << 4 | (uint64_t)(c - '0');
		else if (c >= 'a' && c <= 'f')
			x = x << 4 | (uint64_t)(c - 'a' + 10);
		else
			return false;
	}
	*v = x;
	return true;
}

/* Writes into out (NUL-terminated, <= 70 octets) the prefix + 16 hex digits of the
 * smallest counter that occurs after the prefix nowhere in the pieces; 0 or -ENOMEM. */
static int dsn_boundary(const struct dsn_buf *piece, size_t npiece, const char *pre,
                        char out[80])
{
	size_t pl = strlen(pre);
	struct dsn_buf seen = { 0 };   /* uint64_t values, in octets */

	for (size_t k = 0; k < npiece; k++) {
		const uint8_t *q = piece[k].p, *end = piece[k].p + piece[k].len;
		const uint8_t *hit;
		while (q != NULL && q < end &&
		       (hit = memmem(q, (size_t)(end - q), pre, pl)) != NULL) {
			uint64_t v;
			if ((size_t)(end - hit) >= pl + 16 && dsn_hex16(hit + pl, &v))
				dsn_put(&seen, &v, sizeof v);
			q = hit + 1;
		}
	}
	if (seen.oom) {
		dsn_buf_free(&seen);
		return -ENOMEM;
	}
	uint64_t *v = (uint64_t *)(void *)seen.p;
	size_t nv = seen.len / sizeof *v;
	uint64_t x = 0;
	if (nv > 0)
		qsort(v, nv, sizeof *v, dsn_u64_cmp);
	for (size_t i = 0; i < nv && v[i] <= x; i++)
		if (v[i] == x)
			x++;
	dsn_buf_free(&seen);
	snprintf(out, 80, "%s%016llx", pre, (unsigned long long)x);

	/* the invariant the search is for: checked, it is cheap */
	for (size_t k = 0; k < npiece; k++)
		DSN_CHECK(piece[k].len == 0 ||
		          memmem(piece[k].p, piece[k].len, out, strlen(out)) == NULL);
	return 0;
}

/* ---- the message ------------------------------------------------------------------- */

bool dsn_8bit(const uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (p[i] >= 0x80)
			return true;
	return false;
}

static bool dsn_args_ok(const struct dsn_msg *m, size_t *len)
{
	const char *a;
	size_t an;

	if (m == NULL || len == NULL || m->reporting_mta == NULL || m->sender == NULL ||
	    m->dsn_qid == NULL || m->rcpt == NULL || m->nrcpt == 0)
		return false;
	for (size_t i = 0; i < m->nrcpt; i++)
		if (m->rcpt[i].rcpt == NULL)
			return false;
	dsn_unbracket(m->sender, &a, &an);
	return an > 0;
}

uint8_t *dsn_build(const struct dsn_msg *m, size_t *len)
{
	struct dsn_ctx c = { .m = m };
	struct dsn_buf piece[DSN_NPIECE] = { { 0 } };
	struct dsn_buf out = { 0 }, qid = { 0 };
	char pre[64], boundary[80];
	const char *a;
	size_t an;
	int err = ENOMEM;

	if (!dsn_args_ok(m, len)) {
		err = EINVAL;
		goto fail;
	}
	if (dsn_clean_host(&c.host, m->reporting_mta) == 0 ||
	    dsn_clean_qid(&qid, m->dsn_qid, DSN_QID_CUT) == 0) {
		err = c.host.oom || qid.oom ? ENOMEM : EINVAL;
		goto fail;
	}
	dsn_putc(&c.host, '\0');
	dsn_putc(&qid, '\0');
	if (c.host.oom || qid.oom)
		goto fail;
	c.all_delayed = true;
	for (size_t i = 0; i < m->nrcpt; i++) {
		c.all_delayed &= m->rcpt[i].action == DSN_DELAYED;
		c.any_delayed |= m->rcpt[i].action == DSN_DELAYED;
	}
	dsn_date(c.now, m->now);

	dsn_line(&piece[0], "This is a MIME-encapsulated message.");
	dsn_part_text(&c, &piece[1]);
	dsn_part_status(&c, &piece[2]);
	bool eight = dsn_part_headers(&c, &piece[3]);
	for (int k = 0; k < DSN_NPIECE; k++)
		if (piece[k].oom)
			goto fail;

	/* "<dsn_qid, 32 at most>.<now>/": 32 + 1 + 20 + 1, + 16 = 70 (RFC 2046 5.1.1) */
	snprintf(pre, sizeof pre, "%.*s.%llu/", DSN_BQID_CUT, (const char *)qid.p,
	         (unsigned long long)m->now);
	if (dsn_boundary(piece, DSN_NPIECE, pre, boundary) < 0)
		goto fail;

	size_t total = 4096 + 4 * strlen(boundary);
	for (int k = 0; k < DSN_NPIECE; k++)
		total += piece[k].len;
	if (!dsn_reserve(&out, total))
		goto fail;

	dsn_puts(&out, "From: MAILER-DAEMON@");
	dsn_puts(&out, (const char *)c.host.p);
	dsn_line(&out, " (Mail Delivery System)");
	dsn_unbracket(m->sender, &a, &an);
	dsn_puts(&out, "To: <");
	dsn_clean(&out, a, an, DSN_ADDR_CUT);
	dsn_line(&out, ">");
	dsn_line(&out, c.all_delayed ? "Subject: Delayed Mail (still being retried)"
	                             : "Subject: Undelivered Mail Returned to Sender");
	dsn_puts(&out, "Date: ");
	dsn_line(&out, c.now);
	dsn_puts(&out, "Message-ID: <");
	dsn_puts(&out, (const char *)qid.p);
	dsn_puts(&out, ".dsn@");
	dsn_puts(&out, (const char *)c.host.p);
	dsn_line(&out, ">");
	dsn_line(&out, "Auto-Submitted: auto-replied");
	dsn_line(&out, "MIME-Version: 1.0");
	dsn_puts(&out, "Content-Type: multipart/report; report-type=delivery-status; boundary=\"");
	dsn_puts(&out, boundary);
	dsn_line(&out, "\"");
	dsn_line(&out, eight ? "Content-Transfer-Encoding: 8bit" : "Content-Transfer-Encoding: 7bit");
	dsn_line(&out, "");
	dsn_put(&out, piece[0].p, piece[0].len);
	for (int k = 1; k < DSN_NPIECE; k++) {
		dsn_puts(&out, "\r\n--");
		dsn_line(&out, boundary);
		dsn_put(&out, piece[k].p, piece[k].len);
	}
	dsn_puts(&out, "\r\n--");
	dsn_puts(&out, boundary);
	dsn_line(&out, "--");
	if (out.oom)
		goto fail;

	for (int k = 0; k < DSN_NPIECE; k++)
		dsn_buf_free(&piece[k]);
	dsn_buf_free(&c.host);
	dsn_buf_free(&c.field);
	dsn_buf_free(&c.para);
	dsn_buf_free(&qid);
	*len = out.len;
	return out.p;

fail:
	for (int k = 0; k < DSN_NPIECE; k++)
		dsn_buf_free(&piece[k]);
	dsn_buf_free(&c.host);
	dsn_buf_free(&c.field);
	dsn_buf_free(&c.para);
	dsn_buf_free(&qid);
	dsn_buf_free(&out);
	errno = err;
	return NULL;
}
