/* test/fuzz/dsn_fuzz — libFuzzer target for proto/dsn, the bounce builder: every field
 * a remote server or a client could have chosen comes from the input.
 *
 * Input: a control block, then NUL-separated strings, then the original:
 *   [0]      nrcpt - 1 (low 3 bits), bit 3: also force a boundary collision, bit 4: qid
 *            NULL, bit 5: orig NULL, bit 6: the original repeated up to 70000 octets
 *            (past DSN_HEADERS_MAX, which short inputs would not reach)
 *   [1..8]   now, [9..16] arrival (LE; any value, the dates must still be well-formed)
 *   [17]     actions, a bit a recipient (1: DSN_DELAYED)
 *   strings  sender, reporting_mta, dsn_qid, qid, then per recipient rcpt, status,
 *            remote_mta, diag, in_reply_to (a string that is not there: "s@x", "mx",
 *            "Q", "4Q", "r@x", and NULL for the rest, so that short inputs go deep)
 *   the rest the original message (any octets)
 * Each string and the original are exact-size heap copies, so ASan sees a read past one.
 *
 * Checks, on the output as a reader sees it (not on how dsn.c builds it):
 *   - NULL with EINVAL exactly when the arguments are bad as dsn.h says (sender "" or
 *     "<>", reporting_mta of dots only (empty once cleaned), dsn_qid ""), a DSN
 *     otherwise;
 *   - CRLF lines only, none over 998 octets, no NUL;
 *   - nine header lines, the known ones, each once; the boundary 1..70 boundary
 *     characters, in the Content-Type and on exactly four lines, "--B" three times and
 *     "--B--" last, and nowhere else in the message;
 *   - 7-bit outside part 3, and dsn_8bit() iff the header says 8bit;
 *   - one Final-Recipient a recipient, each Status a valid code of its action's class;
 *   - part 3 equal to a reference extraction of the original's header section written
 *     here (lines end at CRLF, LF or CR; stop at the first empty one; NUL as '?'; cut at
 *     998; stop before DSN_HEADERS_MAX would be passed);
 *   - with bit 3: the original again with "--B" (B the boundary just chosen) as its
 *     first line: the DSN still holds, and its boundary is another one.
 */
#include <errno.h>

#include "proto/dsn.h"
#include "test/fuzz/fuzz_util.h"

#define FZ_RCPT_MAX 8

static const char *const fz_hdr_names[] = { "From: ", "To: ", "Subject: ", "Date: ",
	"Message-ID: ", "Auto-Submitted: ", "MIME-Version: ", "Content-Type: ",
	"Content-Transfer-Encoding: " };

static size_t fz_count(const uint8_t *p, size_t n, const char *s, size_t l)
{
	size_t c = 0;
	const uint8_t *q = p, *end = p + n;

	while (q < end && (q = memmem(q, (size_t)(end - q), s, l)) != NULL) {
		c++;
		q++;
	}
	return c;
}

static bool fz_starts(const uint8_t *p, const uint8_t *end, const char *s)
{
	size_t l = strlen(s);
	return (size_t)(end - p) >= l && memcmp(p, s, l) == 0;
}

static bool fz_status_ok(const uint8_t *s, size_t n, bool delayed)
{
	if (n < 5 || (delayed ? s[0] != '4' : s[0] != '4' && s[0] != '5') || s[1] != '.')
		return false;
	size_t i = 2;
	for (int part = 0; part < 2; part++) {
		size_t d = 0;
		while (i < n && s[i] >= '0' && s[i] <= '9') {
			i++;
			d++;
		}
		if (d < 1 || d > 3)
			return false;
		if (part == 0) {
			if (i >= n || s[i] != '.')
				return false;
			i++;
		}
	}
	return i == n;
}

/* The reference extraction of the original's header section (see dsn.h). */
static uint8_t *fz_model_headers(const uint8_t *p, size_t n, size_t *out_n)
{
	uint8_t *o = malloc(DSN_HEADERS_MAX + 1);
	size_t on = 0, i = 0;

	FZ_CHECK(o != NULL);
	while (i < n) {
		size_t s = i;
		while (i < n && p[i] != '\r' && p[i] != '\n')
			i++;
		size_t l = i - s;
		if (i < n) {
			if (p[i] == '\r' && i + 1 < n && p[i + 1] == '\n')
				i++;
			i++;
		}
		if (l == 0)
			break;
		if (l > DSN_LINE_MAX)
			l = DSN_LINE_MAX;
		if (on + l + 2 > DSN_HEADERS_MAX)
			break;
		for (size_t k = 0; k < l; k++)
			o[on++] = p[s + k] ? p[s + k] : '?';
		o[on++] = '\r';
		o[on++] = '\n';
	}
	*out_n = on;
	return o;
}

/* All the checks on one DSN; returns its boundary in b (NUL-terminated). */
static void fz_check_dsn(const uint8_t *d, size_t n, const struct dsn_msg *m, char b[80])
{
	const uint8_t *end = d + n;

	/* lines */
	FZ_CHECK(n >= 2 && d[n - 2] == '\r' && d[n - 1] == '\n');
	FZ_CHECK(memchr(d, '\0', n) == NULL);
	for (size_t i = 0, start = 0; i < n; i++) {
		if (d[i] == '\r') {
			FZ_CHECK(i + 1 < n && d[i + 1] == '\n');
			FZ_CHECK(i - start <= DSN_LINE_MAX);
			start = ++i + 1;
		} else {
			FZ_CHECK(d[i] != '\n');
		}
	}

	/* headers */
	const uint8_t *l = d;
	bool seen[9] = { false };
	bool eight_hdr = false;
	const uint8_t *ct = NULL;
	while (!fz_starts(l, end, "\r\n")) {
		size_t k;
		for (k = 0; k < 9; k++)
			if (fz_starts(l, end, fz_hdr_names[k]))
				break;
		FZ_CHECK(k < 9 && !seen[k]);
		seen[k] = true;
		if (k == 7)
			ct = l;
		if (fz_starts(l, end, "Content-Transfer-Encoding: 8bit\r\n"))
			eight_hdr = true;
		l = (const uint8_t *)memmem(l, (size_t)(end - l), "\r\n", 2) + 2;
	}
	for (int k = 0; k < 9; k++)
		FZ_CHECK(seen[k]);
	const uint8_t *body = l + 2;

	/* the boundary */
	static const char ctp[] =
		"Content-Type: multipart/report; report-type=delivery-status; boundary=\"";
	FZ_CHECK(ct != NULL && fz_starts(ct, end, ctp));
	const uint8_t *bs = ct + sizeof ctp - 1;
	size_t bl = 0;
	while (bs[bl] != '"') {
		FZ_CHECK(bs[bl] != '\r');
		bl++;
	}
	FZ_CHECK(bl >= 1 && bl <= 70);
	FZ_CHECK(bs[bl + 1] == '\r');
	for (size_t i = 0; i < bl; i++) {
		uint8_t c = bs[i];
		FZ_CHECK((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		         strchr("'()+_,-./:=?", c) != NULL);
	}
	memcpy(b, bs, bl);
	b[bl] = '\0';
	FZ_CHECK(fz_count(d, n, b, bl) == 5);
	char delim[90], close[90];
	int dl = snprintf(delim, sizeof delim, "\r\n--%s\r\n", b);
	int cl = snprintf(close, sizeof close, "\r\n--%s--\r\n", b);
	FZ_CHECK(fz_count(d, n, delim, (size_t)dl) == 3);
	FZ_CHECK(fz_count(d, n, close, (size_t)cl) == 1);
	FZ_CHECK(memcmp(end - cl, close, (size_t)cl) == 0);

	/* the parts, in order; part 3's body */
	const uint8_t *part[4];
	const uint8_t *q = body;
	for (int k = 0; k < 3; k++) {
		part[k] = memmem(q, (size_t)(end - q), delim, (size_t)dl);
		FZ_CHECK(part[k] != NULL);
		part[k] += dl;
		q = part[k];
	}
	part[3] = end - cl;
	static const char *const ctype[3] = {
		"Content-Description: Notification\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n",
		"Content-Description: Delivery report\r\nContent-Type: message/delivery-status\r\n\r\n",
		"Content-Type: text/rfc822-headers\r\n",
	};
	for (int k = 0; k < 3; k++)
		FZ_CHECK(memmem(part[k], (size_t)(part[k + 1] - part[k]), ctype[k],
		                strlen(ctype[k])) != NULL);
	const uint8_t *h3 = memmem(part[2], (size_t)(part[3] - part[2]), "\r\n\r\n", 4);
	FZ_CHECK(h3 != NULL);
	h3 += 4;
	size_t h3n = (size_t)(part[3] - h3);         /* its last CRLF included */
	FZ_CHECK(h3n <= DSN_HEADERS_MAX);
	size_t mn;
	uint8_t *model = fz_model_headers(m->orig, m->orig ? m->orig_len : 0, &mn);
	FZ_CHECK(mn == h3n && memcmp(model, h3, mn) == 0);
	free(model);

	/* 7-bit elsewhere; the 8-bit label */
	bool eight = false;
	for (const uint8_t *c = d; c < end; c++) {
		if (*c < 0x80)
			continue;
		FZ_CHECK(c >= h3 && c < part[3]);
		eight = true;
	}
	FZ_CHECK(eight == eight_hdr && eight == dsn_8bit(d, n));

	/* one Final-Recipient and one valid Status a recipient */
	size_t s2 = (size_t)(part[2] - part[1]);
	FZ_CHECK(fz_count(part[1], s2, "\r\nFinal-Recipient: rfc822; ", 27) == m->nrcpt);
	const uint8_t *st = part[1];
	for (size_t i = 0; i < m->nrcpt; i++) {
		st = memmem(st, (size_t)(part[2] - st), "\r\nStatus: ", 10);
		FZ_CHECK(st != NULL);
		st += 10;
		const uint8_t *e = memmem(st, (size_t)(part[2] - st), "\r\n", 2);
		FZ_CHECK(fz_status_ok(st, (size_t)(e - st), m->rcpt[i].action == DSN_DELAYED));
	}
	FZ_CHECK(memmem(st, (size_t)(part[2] - st), "\r\nStatus: ", 10) == NULL);
}

/* Expected EINVAL? (dsn.h: sender "" or "<>", reporting_mta or dsn_qid empty cleaned) */
static bool fz_bad_args(const struct dsn_msg *m)
{
	bool host = false;
	for (const char *c = m->reporting_mta; *c; c++)
		host |= *c != '.';
	return m->sender[0] == '\0' || strcmp(m->sender, "<>") == 0 || !host ||
	       m->dsn_qid[0] == '\0';
}

/* the next NUL-terminated string of the input, as a heap copy, or def */
static char *fz_str(struct fz_cur *c, const char *def, bool *more)
{
	if (!*more || c->i >= c->n) {
		*more = false;
		return def ? (char *)fz_dup(def, strlen(def) + 1) : NULL;
	}
	const uint8_t *s = c->p + c->i;
	const uint8_t *z = memchr(s, '\0', c->n - c->i);
	size_t l = z ? (size_t)(z - s) : c->n - c->i;
	char *r = malloc(l + 1);
	FZ_CHECK(r != NULL);
	memcpy(r, s, l);
	r[l] = '\0';
	c->i += l + (z != NULL);
	if (z == NULL)
		*more = false;
	return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_cur c = { data, size, 0 };
	uint8_t ctl = fz_byte(&c), tmp[8];
	struct dsn_rcpt r[FZ_RCPT_MAX];
	struct dsn_msg m;
	char *strs[4 + 5 * FZ_RCPT_MAX];
	size_t ns = 0;
	bool more = true;

	memset(&m, 0, sizeof m);
	memset(r, 0, sizeof r);
	fz_bytes(&c, tmp, 8);
	for (int i = 7; i >= 0; i--)
		m.now = m.now << 8 | tmp[i];
	fz_bytes(&c, tmp, 8);
	for (int i = 7; i >= 0; i--)
		m.arrival = m.arrival << 8 | tmp[i];
	uint8_t actions = fz_byte(&c);

	m.nrcpt = 1 + (ctl & 7u);
	m.rcpt = r;
	m.sender = strs[ns++] = fz_str(&c, "s@x", &more);
	m.reporting_mta = strs[ns++] = fz_str(&c, "mx", &more);
	m.dsn_qid = strs[ns++] = fz_str(&c, "Q", &more);
	m.qid = strs[ns++] = fz_str(&c, "4Q", &more);
	if (ctl & 0x10)
		m.qid = NULL;
	for (size_t i = 0; i < m.nrcpt; i++) {
		r[i].action = actions >> i & 1 ? DSN_DELAYED : DSN_FAILED;
		r[i].rcpt = strs[ns++] = fz_str(&c, "r@x", &more);
		r[i].status = strs[ns++] = fz_str(&c, NULL, &more);
		r[i].remote_mta = strs[ns++] = fz_str(&c, NULL, &more);
		r[i].diag = strs[ns++] = fz_str(&c, NULL, &more);
		r[i].in_reply_to = strs[ns++] = fz_str(&c, NULL, &more);
	}
	size_t on = more ? c.n - c.i : 0;
	uint8_t *orig = fz_dup(c.p + c.i, on);
	if ((ctl & 0x40) && on > 0 && on < 70000) {
		size_t rn = 70000 - 70000 % on;
		uint8_t *rep = malloc(rn);
		FZ_CHECK(rep != NULL);
		for (size_t k = 0; k < rn; k += on)
			memcpy(rep + k, orig, on);
		free(orig);
		orig = rep;
		on = rn;
	}
	if (!(ctl & 0x20)) {
		m.orig = orig;
		m.orig_len = on;
	}

	size_t n = 0;
	errno = 0;
	uint8_t *d = dsn_build(&m, &n);
	if (fz_bad_args(&m)) {
		FZ_CHECK(d == NULL && errno == EINVAL);
	} else {
		char b0[80], b1[80];
		FZ_CHECK(d != NULL);
		fz_check_dsn(d, n, &m, b0);
		free(d);
		if (ctl & 0x08) {
			/* the boundary just chosen, forged into the original's first line */
			size_t bl = strlen(b0);
			uint8_t *o2 = malloc(bl + 4 + on);
			FZ_CHECK(o2 != NULL);
			memcpy(o2, "--", 2);
			memcpy(o2 + 2, b0, bl);
			memcpy(o2 + 2 + bl, "\r\n", 2);
			if (on)
				memcpy(o2 + 4 + bl, orig, on);
			m.orig = o2;
			m.orig_len = bl + 4 + on;
			d = dsn_build(&m, &n);
			FZ_CHECK(d != NULL);
			fz_check_dsn(d, n, &m, b1);
			FZ_CHECK(strcmp(b0, b1) != 0);
			free(d);
			free(o2);
		}
	}
	for (size_t i = 0; i < ns; i++)
		free(strs[i]);
	free(orig);
	return 0;
}
