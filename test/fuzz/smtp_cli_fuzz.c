/* test/fuzz/smtp_cli_fuzz — libFuzzer target for proto/smtp_cli, the outbound client:
 * the input is what a server sends, cut into turns.
 *
 * Input: FZ_CFG_LEN octets of configuration, then the server's stream; "\xfe\xfe" ends a
 * turn (the octets the server sends before it waits for our next commands).
 *   [0] bits 0-1: a canned start put before the stream (none; greeting + EHLO with
 *       PIPELINING SIZE 8BITMIME SMTPUTF8; with PIPELINING CHUNKING; with SIZE only),
 *       so that the fuzzer starts inside transactions without seed files;
 *       bit 2: QUIT once the messages are done; bits 3-4: messages (0..3);
 *       bit 5: the first message has FZ_MANY recipients; bits 6-7: need flags
 *   [1] recipients: which addresses (among them one with CR LF, which must never be
 *       written) and how many
 *   [2] message sizes (around the canned SIZE 10000, 0, huge)
 *   [3] chunk seed for the third feeding; bit 7: the owner asks STARTTLS when the EHLO
 *       reply offers it (once); bit 6: the canned EHLO reply offers STARTTLS
 *
 * The owner is played as core/deliver would, except that it acts (send_msg, the body,
 * body_done, QUIT) only at the end of a turn: then what the client sees between two
 * actions is the same however a turn is cut, so the three feedings — each turn in one
 * piece, one octet at a time, in chunks from [3] — must give byte-identical logs (every
 * event with its reply, every result, every command octet, the body, the final state).
 * Acting late also makes the BDAT reply arrive before body_done (the held reply).
 * STARTTLS: at EV_TLS the owner discards what it was offered after the 220 (as
 * core/deliver does), the client ignores what comes until the turn ends; then the owner
 * says the handshake is done (smtp_cli_tls_up: EHLO again). So in every feeding the rest
 * of that turn is dropped, and the logs stay comparable; the model (over the whole
 * stream) is not compared after EV_TLS.
 *
 * Checked after every call:
 *   - input: used <= n; n once FAIL/CLOSED; otherwise what is left holds no LF and is
 *     shorter than SMTP_CLI_LINE_MAX + 2; every offer is an exact-size heap copy.
 *   - events: code 0 or 200..599, cmd set, text NUL-terminated within
 *     SMTP_CLI_TEXT_MAX with no CR or LF; FAIL code 0 has a text; nothing after FAIL or
 *     CLOSED; results after MSG_DONE and after a refused send_msg: one per recipient,
 *     code 200..599, and NULL past the last.
 *   - output: whole command lines only ("EHLO ", "HELO ", "MAIL FROM:<", "RCPT TO:<",
 *     "DATA", "BDAT ", "RSET", "QUIT", ".", or the empty line of "\r\n.\r\n"), each
 *     ending CRLF with no control octet inside: no reply can make us write anything
 *     else, and no address with CR LF is ever written.
 *   - smtp_cli_timeout() is 0 exactly when no reply is awaited (READY, BODY, CLOSED,
 *     FAILED).
 * And, octet by octet, against a reference model of the reply lexer written here over
 * whole lines (lines end at LF, a CR before it dropped; "[2-5][0-9][0-9]" then ' ', '-'
 * or the end; one code per reply; at most SMTP_CLI_LINE_MAX octets and
 * SMTP_CLI_LINES_MAX lines): the client fails with "malformed reply: LINE", "reply line
 * too long" or "too many reply lines" exactly at the octet where the model finds the
 * first such error (unless it stopped before); and every event that carries a server
 * reply, given right after an input call, comes at the octet that ends a reply in the
 * model, with the model's code and text (lines joined with ' ', the first line's '-' as
 * ' ', NUL/CR/LF as '?', cut at SMTP_CLI_TEXT_MAX).
 * Debug: FZ_DUMP=1 ./smtp_cli_fuzz FILE prints the one-piece run's log.
 */
#include <stdarg.h>
#include <strings.h>

#include "proto/smtp_cli.h"
#include "test/fuzz/fuzz_util.h"

#define FZ_CFG_LEN 4
#define FZ_MANY    40
#define FZ_SEP     "\xfe\xfe"

/* ---- a growing octet string ------------------------------------------------------- */

struct fz_buf {
	char *p;
	size_t len, cap;
};

static void fz_put(struct fz_buf *b, const void *p, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		b->cap = 2 * (b->len + n + 1);
		b->p = realloc(b->p, b->cap);
		FZ_CHECK(b->p != NULL);
	}
	if (n)
		memcpy(b->p + b->len, p, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void fz_puts(struct fz_buf *b, const char *s)
{
	fz_put(b, s, strlen(s));
}

static void fz_printf(struct fz_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fz_printf(struct fz_buf *b, const char *fmt, ...)
{
	char tmp[SMTP_CLI_TEXT_MAX + 256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof tmp, fmt, ap);
	va_end(ap);
	FZ_CHECK(n >= 0 && (size_t)n < sizeof tmp);
	fz_put(b, tmp, (size_t)n);
}

/* ---- the model: replies over whole lines ------------------------------------------ */

#define FZ_MAXEND 8192            /* replies: "250\n" is 4 octets, inputs <= FZ_MAXLEN */

struct fz_model {
	size_t nend;
	size_t end[FZ_MAXEND];          /* stream offset of the LF that ends a reply */
	unsigned code[FZ_MAXEND];
	char *text[FZ_MAXEND];
	size_t err_off;                 /* SIZE_MAX: none; else offset of the octet that
	                                   shows the first lexical error */
	char err[SMTP_CLI_TEXT_MAX + 1];
};

static void fz_text_add(char *t, size_t *len, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n && *len < SMTP_CLI_TEXT_MAX; i++) {
		uint8_t ch = p[i];
		t[(*len)++] = (ch == 0 || ch == '\r' || ch == '\n') ? '?' : (char)ch;
	}
	t[*len] = '\0';
}

static void fz_model_run(const uint8_t *s, size_t n, struct fz_model *m)
{
	size_t pos = 0, lines = 0, tlen = 0;
	unsigned code = 0;
	char text[SMTP_CLI_TEXT_MAX + 1];

	m->nend = 0;
	m->err_off = SIZE_MAX;
	text[0] = '\0';
	while (pos < n) {
		size_t e = pos;

		while (e < n && s[e] != '\n' && e - pos < SMTP_CLI_LINE_MAX + 2)
			e++;
		if (e - pos == SMTP_CLI_LINE_MAX + 2) {      /* LINE_MAX + 2 without LF */
			m->err_off = e - 1;
			snprintf(m->err, sizeof m->err, "reply line too long");
			return;
		}
		if (e == n)
			return;                              /* incomplete: waits */
		size_t cl = e - pos;
		if (cl && s[e - 1] == '\r')
			cl--;
		const uint8_t *l = s + pos;
		if (cl > SMTP_CLI_LINE_MAX) {
			m->err_off = e;
			snprintf(m->err, sizeof m->err, "reply line too long");
			return;
		}
		bool bad = cl < 3 || l[0] < '2' || l[0] > '5' || l[1] < '0' || l[1] > '9' ||
		           l[2] < '0' || l[2] > '9' || (cl > 3 && l[3] != ' ' && l[3] != '-');
		unsigned lc = bad ? 0 : (unsigned)(l[0] - '0') * 100 + (unsigned)(l[1] - '0') * 10 +
		                        (unsigned)(l[2] - '0');
		if (!bad && lines > 0 && lc != code)
			bad = true;
		if (bad) {
			size_t el = 0;
			m->err_off = e;
			strcpy(m->err, "malformed reply: ");
			el = strlen(m->err);
			fz_text_add(m->err, &el, l, cl);
			return;
		}
		if (lines == 0) {
			code = lc;
			tlen = 0;
			fz_text_add(text, &tlen, l, 3);
			if (cl > 3) {
				fz_text_add(text, &tlen, (const uint8_t *)" ", 1);
				fz_text_add(text, &tlen, l + 4, cl - 4);
			}
		} else {
			fz_text_add(text, &tlen, (const uint8_t *)" ", 1);
			if (cl > 4)
				fz_text_add(text, &tlen, l + 4, cl - 4);
		}
		if (++lines > SMTP_CLI_LINES_MAX) {
			m->err_off = e;
			snprintf(m->err, sizeof m->err, "too many reply lines");
			return;
		}
		pos = e + 1;
		if (cl > 3 && l[3] == '-')
			continue;
		FZ_CHECK(m->nend < FZ_MAXEND);
		m->end[m->nend] = e;
		m->code[m->nend] = code;
		m->text[m->nend] = strdup(text);
		FZ_CHECK(m->text[m->nend] != NULL);
		m->nend++;
		lines = 0;
	}
}

static void fz_model_free(struct fz_model *m)
{
	for (size_t i = 0; i < m->nend; i++)
		free(m->text[i]);
	m->nend = 0;
}

/* ---- the owner -------------------------------------------------------------------- */

static const char *const fz_addrs[] = {
	"b@y.example", "c@y.example", "bad\r\nRSET@y.example", "\xc3\xa9@y.example",
	"", "d@z.example", "e\x7f@y.example", "postmaster",
};
static const uint64_t fz_sizes[] = { 3, 10000, 10001, 0, 1ull << 40, 17, 9999, 123456 };
static const char *const fz_bodies[] = { ".a\r\nb\r\n..\r\n", "x", "", "\r\n.\r\n.", "y\r\n" };

struct fz_msg {
	const char *from;
	const char *rcpt[FZ_MANY];
	size_t n;
	uint64_t size;
	unsigned need;
	const char *body;
};

struct fz_plan {
	struct fz_msg msg[3];
	size_t nmsg;
	bool quit;
	bool tls;                     /* the owner asks STARTTLS when offered */
};

static void fz_plan_make(const uint8_t *cfg, struct fz_plan *p)
{
	memset(p, 0, sizeof *p);
	p->quit = cfg[0] & 4;
	p->tls = cfg[3] & 0x80;
	p->nmsg = (cfg[0] >> 3) & 3;
	for (size_t k = 0; k < p->nmsg; k++) {
		struct fz_msg *m = &p->msg[k];
		uint32_t h = cfg[1] * 7u + (uint32_t)k * 13u;

		m->from = k == 2 ? "" : "a@x.example";
		m->n = (k == 0 && (cfg[0] & 32)) ? FZ_MANY : 1 + (h >> 2) % 4;
		for (size_t i = 0; i < m->n; i++)
			m->rcpt[i] = fz_addrs[(h + i * (cfg[1] | 1)) % 8];
		m->size = fz_sizes[(cfg[2] >> (k * 2)) % 8];
		m->need = (cfg[0] >> 6) & 3;
		m->body = fz_bodies[(cfg[2] + k) % 5];
	}
}

struct fz_run {
	struct fz_buf log;            /* compared across feedings */
	struct fz_buf off;            /* events with their offsets (octet run) */
	struct fz_buf pend;
	size_t next;                  /* messages handed over */
	const struct fz_msg *cur;
	bool over;                    /* FAIL or CLOSED given */
	size_t stopped;               /* stream offset where it was over */
	uint32_t h;                   /* for output piece sizes */
	bool want_tls;                /* cfg[3] bit 7 */
	bool tls_asked, tls_seen;     /* STARTTLS sent; EV_TLS came (the model is off) */
	bool tls_pending;             /* EV_TLS came: the handshake "runs" until the turn ends */
};

static bool fz_waits(const struct smtp_cli *c)
{
	switch (c->state) {
	case SMTP_CLI_ST_READY:
	case SMTP_CLI_ST_BODY:
	case SMTP_CLI_ST_CLOSED:
	case SMTP_CLI_ST_FAILED:
		return false;
	default:
		return true;
	}
}

static void fz_check_cli(const struct smtp_cli *c)
{
	FZ_CHECK(c->state != SMTP_CLI_ST_NONE);
	FZ_CHECK((smtp_cli_timeout(c) != 0) == fz_waits(c));
	FZ_CHECK(smtp_cli_state_name(c) != NULL);
}

static void fz_results(const struct smtp_cli *c, const struct fz_msg *m, struct fz_buf *log,
                       bool all)
{
	FZ_CHECK(c->nrcpt == m->n);
	for (size_t i = 0; i < m->n; i++) {
		const struct smtp_cli_reply *r = smtp_cli_result(c, i);

		if (!r) {
			FZ_CHECK(!all);
			fz_puts(log, " -\n");
			continue;
		}
		FZ_CHECK(r->code >= 200 && r->code <= 599);
		FZ_CHECK(r->cmd != NULL);
		FZ_CHECK(strlen(r->text) <= SMTP_CLI_TEXT_MAX);
		fz_printf(log, " %u %s: %s\n", r->code, r->cmd, r->text);
	}
	FZ_CHECK(smtp_cli_result(c, m->n) == NULL);
}

/* Command octets: whole lines of known commands, nothing else. */
static void fz_check_cmds(const char *p, size_t n)
{
	static const char *const verbs[] = { "EHLO ", "HELO ", "MAIL FROM:<", "RCPT TO:<",
	                                     "BDAT ", "DATA", "RSET", "QUIT", "STARTTLS", "." };
	size_t i = 0;

	FZ_CHECK(n >= 2 && p[n - 2] == '\r' && p[n - 1] == '\n');
	while (i < n) {
		const char *lf = memchr(p + i, '\n', n - i);
		size_t len;
		bool known = false;

		FZ_CHECK(lf != NULL);
		len = (size_t)(lf - (p + i));
		FZ_CHECK(len >= 1 && p[i + len - 1] == '\r');
		len--;
		for (size_t k = 0; k < len; k++)
			FZ_CHECK((unsigned char)p[i + k] >= 0x20 && (unsigned char)p[i + k] != 0x7f);
		if (len == 0)
			known = true;
		for (size_t v = 0; v < sizeof verbs / sizeof verbs[0] && !known; v++) {
			size_t vl = strlen(verbs[v]);
			known = len >= vl && memcmp(p + i, verbs[v], vl) == 0 &&
			        (verbs[v][vl - 1] == ' ' || verbs[v][vl - 1] == '<' || len == vl);
		}
		FZ_CHECK(known);
		i += len + 2;
	}
}

static void fz_take_out(struct smtp_cli *c, struct fz_run *g, bool pieces)
{
	size_t len;
	const char *p = smtp_cli_out(c, &len);
	char *copy;

	if (!len)
		return;
	copy = (char *)fz_dup(p, len);
	fz_check_cmds(copy, len);
	fz_puts(&g->log, "> ");
	fz_put(&g->log, copy, len);
	free(copy);
	if (pieces) {
		size_t k = fz_next(&g->h) % (len + 1);

		smtp_cli_out_done(c, k);
		smtp_cli_out(c, &len);
		smtp_cli_out_done(c, len);
	} else {
		smtp_cli_out_done(c, len);
	}
	smtp_cli_out(c, &len);
	FZ_CHECK(len == 0);
}

/* Pop and log events. at: the stream offset of the last octet fed; m: the model, when
 * the events came right after an input call of the octet run. */
static void fz_events(struct smtp_cli *c, struct fz_run *g, size_t at, const struct fz_model *m)
{
	struct smtp_cli_ev ev;

	while (smtp_cli_next(c, &ev)) {
		const struct smtp_cli_reply *r = &ev.reply;
		size_t tl = strnlen(r->text, sizeof r->text);

		FZ_CHECK(!g->over);
		FZ_CHECK(ev.kind >= SMTP_CLI_EV_READY && ev.kind <= SMTP_CLI_EV_TLS_REFUSED);
		FZ_CHECK(tl <= SMTP_CLI_TEXT_MAX);
		FZ_CHECK(!memchr(r->text, '\r', tl) && !memchr(r->text, '\n', tl));
		FZ_CHECK(r->cmd != NULL);
		FZ_CHECK(r->code == 0 || (r->code >= 200 && r->code <= 599));
		FZ_CHECK(r->code != 0 || ev.kind == SMTP_CLI_EV_FAIL);
		FZ_CHECK(r->code != 0 || tl > 0);
		fz_printf(&g->log, "ev %d %u %s: %s\n", (int)ev.kind, r->code, r->cmd, r->text);
		if (m) {
			fz_printf(&g->off, "%zu ev %d\n", at, (int)ev.kind);
			if (r->code != 0) {
				/* a server reply, which ended at this very octet */
				size_t k = 0;
				while (k < m->nend && m->end[k] < at)
					k++;
				FZ_CHECK(k < m->nend && m->end[k] == at);
				FZ_CHECK(m->code[k] == r->code);
				FZ_CHECK(strcmp(m->text[k], r->text) == 0);
			} else if (strncmp(r->text, "unexpected", 10) != 0 &&
			           strcmp(r->text, "out of memory") != 0) {
				/* a lexical error, which the model finds here */
				FZ_CHECK(m->err_off == at);
				FZ_CHECK(strcmp(m->err, r->text) == 0);
			}
		}
		switch (ev.kind) {
		case SMTP_CLI_EV_MSG_DONE:
			FZ_CHECK(g->cur != NULL);
			fz_results(c, g->cur, &g->log, true);
			g->cur = NULL;
			break;
		case SMTP_CLI_EV_FAIL:
			if (g->cur)
				fz_results(c, g->cur, &g->log, false);
			g->cur = NULL;
			/* fall through */
		case SMTP_CLI_EV_CLOSED:
			g->over = true;
			g->stopped = at;
			break;
		case SMTP_CLI_EV_TLS:
			/* (the input call stops at the 220: nothing can follow it) */
			FZ_CHECK(g->tls_asked && !g->tls_seen && c->state == SMTP_CLI_ST_TLS);
			g->tls_seen = g->tls_pending = true;
			break;
		case SMTP_CLI_EV_TLS_REFUSED:
			FZ_CHECK(g->tls_asked && !g->tls_seen);   /* (replies may follow in the call) */
			break;
		default:
			break;
		}
	}
	FZ_CHECK(ev.kind == SMTP_CLI_EV_NONE);
}

static void fz_body(struct smtp_cli *c, const struct fz_msg *m, struct fz_run *g)
{
	const char *p = m->body;
	size_t n = strlen(p);

	fz_puts(&g->log, "body ");
	if (c->body == SMTP_CLI_BODY_BDAT) {
		fz_put(&g->log, p, n);
	} else {
		size_t off = 0;

		while (off < n) {
			bool dot;
			size_t k = smtp_cli_dot_next(&c->dot, p + off, n - off, &dot);

			FZ_CHECK(k <= n - off);
			fz_put(&g->log, p + off, k);
			off += k;
			if (dot) {
				FZ_CHECK(off < n && p[off] == '.');
				fz_put(&g->log, ".", 1);
			} else {
				FZ_CHECK(off == n);
			}
		}
	}
	fz_puts(&g->log, "\n");
	smtp_cli_body_done(c);
}

/* The end of a turn (at: the offset of the last octet fed): act until nothing is left. */
static void fz_act(struct smtp_cli *c, const struct fz_plan *pl, struct fz_run *g, bool pieces,
                   size_t at)
{
	for (;;) {
		fz_take_out(c, g, pieces);
		if (g->tls_pending) {          /* the turn ended: the handshake is done */
			FZ_CHECK(c->state == SMTP_CLI_ST_TLS);
			g->tls_pending = false;
			fz_puts(&g->log, "tls up\n");
			smtp_cli_tls_up(c);
		} else if (c->state == SMTP_CLI_ST_READY && !g->cur && g->want_tls && !g->tls_asked &&
		           c->caps.starttls) {
			int rc = smtp_cli_starttls(c);

			fz_printf(&g->log, "starttls %d\n", rc);
			FZ_CHECK(rc == 0 && c->state == SMTP_CLI_ST_STARTTLS);
			g->tls_asked = true;
		} else if (c->state == SMTP_CLI_ST_BODY && g->cur) {
			fz_body(c, g->cur, g);
		} else if (c->state == SMTP_CLI_ST_READY && !g->cur && g->next < pl->nmsg) {
			const struct fz_msg *m = &pl->msg[g->next++];
			int rc = smtp_cli_send_msg(c, m->from, m->rcpt, m->n, m->size, m->need);

			fz_printf(&g->log, "send %d\n", rc);
			if (rc == 0) {
				g->cur = m;
				FZ_CHECK(fz_waits(c));
			} else {
				FZ_CHECK(rc == -1 && c->state == SMTP_CLI_ST_READY);
				fz_results(c, m, &g->log, true);
			}
		} else if (c->state == SMTP_CLI_ST_READY && !g->cur && pl->quit) {
			smtp_cli_quit(c);
			FZ_CHECK(c->state == SMTP_CLI_ST_QUIT);
		} else {
			break;
		}
		fz_events(c, g, at, NULL);
		fz_check_cli(c);
	}
}

/* Offer the server's octets p[0..n) (stream offsets from `at`), appended to what is
 * pending, as an exact-size heap copy. */
static void fz_feed(struct smtp_cli *c, struct fz_run *g, const uint8_t *p, size_t n, size_t at,
                    const struct fz_model *m)
{
	uint8_t *copy;
	size_t used, len;

	fz_put(&g->pend, p, n);
	len = g->pend.len;
	copy = fz_dup(g->pend.p, len);
	used = smtp_cli_input(c, (const char *)copy, len);
	free(copy);
	FZ_CHECK(used <= len);
	if (c->state == SMTP_CLI_ST_CLOSED || c->state == SMTP_CLI_ST_FAILED) {
		FZ_CHECK(used == len);
	} else if (c->state == SMTP_CLI_ST_TLS) {
		used = len;                    /* the owner discards the plaintext behind the 220 */
	} else {
		FZ_CHECK(!memchr(g->pend.p + used, '\n', len - used));
		FZ_CHECK(len - used < SMTP_CLI_LINE_MAX + 2);
	}
	memmove(g->pend.p, g->pend.p + used, len - used);
	g->pend.len = len - used;
	fz_events(c, g, at + n - 1, g->tls_seen ? NULL : m);
	fz_check_cli(c);
}

/* mode 0: each turn in one piece; 1: octet by octet (checked against the model m);
 * else chunks from the seed `mode`. */
static void fz_run_all(const uint8_t *s, size_t n, const struct fz_plan *pl, uint32_t mode,
                       const struct fz_model *m, struct fz_run *g)
{
	struct smtp_cli c;
	size_t pos = 0, at = 0;   /* input position; stream position (separators removed) */
	uint32_t h = mode;

	memset(g, 0, sizeof *g);
	fz_put(&g->log, "", 0);
	fz_put(&g->off, "", 0);
	fz_put(&g->pend, "", 0);
	g->h = mode;
	g->want_tls = pl->tls;
	smtp_cli_init(&c, "out.example", NULL);
	fz_check_cli(&c);
	while (pos <= n) {
		const uint8_t *sep = memmem(s + pos, n - pos, FZ_SEP, 2);
		size_t tn = sep ? (size_t)(sep - (s + pos)) : n - pos;
		size_t i = 0;

		while (i < tn) {
			size_t k = tn - i;

			if (mode == 1)
				k = 1;
			else if (mode > 1)
				k = 1 + fz_next(&h) % 37;
			if (k > tn - i)
				k = tn - i;
			fz_feed(&c, g, s + pos + i, k, at + i, mode == 1 ? m : NULL);
			i += k;
		}
		at += tn;
		fz_act(&c, pl, g, mode > 1, at ? at - 1 : 0);
		if (!sep)
			break;
		pos += tn + 2;
	}
	fz_printf(&g->log, "state %s left %zu\n", smtp_cli_state_name(&c), g->pend.len);
	if (mode == 1 && !g->tls_seen && m->err_off != SIZE_MAX && m->err_off < at) {
		/* the model's lexical error was fed: the client stopped there, or before */
		FZ_CHECK(g->over && g->stopped <= m->err_off);
	}
	smtp_cli_free(&c);
}

static void fz_run_free(struct fz_run *g)
{
	free(g->log.p);
	free(g->off.p);
	free(g->pend.p);
}

static const char *const fz_canned[2][4] = { {
	"",
	"220 mx.example ESMTP\r\n" FZ_SEP
	"250-mx.example\r\n250-PIPELINING\r\n250-SIZE 10000\r\n250-8BITMIME\r\n"
	"250 SMTPUTF8\r\n" FZ_SEP,
	"220 mx.example ESMTP\r\n" FZ_SEP
	"250-mx.example\r\n250-PIPELINING\r\n250 CHUNKING\r\n" FZ_SEP,
	"220 mx.example ESMTP\r\n" FZ_SEP "250-mx.example\r\n250 SIZE 10000\r\n" FZ_SEP,
}, {                                   /* cfg[3] bit 6: STARTTLS offered */
	"",
	"220 mx.example ESMTP\r\n" FZ_SEP
	"250-mx.example\r\n250-PIPELINING\r\n250-SIZE 10000\r\n250-STARTTLS\r\n"
	"250 SMTPUTF8\r\n" FZ_SEP,
	"220 mx.example ESMTP\r\n" FZ_SEP
	"250-mx.example\r\n250-STARTTLS\r\n250 CHUNKING\r\n" FZ_SEP,
	"220 mx.example ESMTP\r\n" FZ_SEP "250-mx.example\r\n250 STARTTLS\r\n" FZ_SEP,
} };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t cfg[FZ_CFG_LEN] = { 0 };
	struct fz_plan plan;
	static struct fz_model model;
	struct fz_run one, bytes, chunks;
	const char *canned;
	uint8_t *s;
	size_t n, cl, dl;

	memcpy(cfg, data, size < FZ_CFG_LEN ? size : FZ_CFG_LEN);
	dl = size > FZ_CFG_LEN ? size - FZ_CFG_LEN : 0;
	canned = fz_canned[(cfg[3] >> 6) & 1][cfg[0] & 3];
	cl = strlen(canned);
	n = cl + dl;
	s = malloc(n ? n : 1);
	FZ_CHECK(s != NULL);
	memcpy(s, canned, cl);
	if (dl)
		memcpy(s + cl, data + FZ_CFG_LEN, dl);
	fz_plan_make(cfg, &plan);

	/* the model runs over the stream without its separators */
	{
		uint8_t *flat = malloc(n ? n : 1);
		size_t fl = 0, pos = 0;

		FZ_CHECK(flat != NULL);
		while (pos < n) {
			if (pos + 1 < n && s[pos] == 0xfe && s[pos + 1] == 0xfe) {
				pos += 2;
				continue;
			}
			flat[fl++] = s[pos++];
		}
		fz_model_run(flat, fl, &model);
		free(flat);
	}
	fz_run_all(s, n, &plan, 0, NULL, &one);
	fz_run_all(s, n, &plan, 1, &model, &bytes);
	fz_run_all(s, n, &plan, 2 + (fz_hash(data, size, 0) | cfg[3]), NULL, &chunks);
	if (getenv("FZ_DUMP"))
		fprintf(stderr, "%s----\n%s", one.log.p, bytes.off.p);
	FZ_CHECK(strcmp(one.log.p, bytes.log.p) == 0);
	FZ_CHECK(strcmp(one.log.p, chunks.log.p) == 0);
	fz_run_free(&one);
	fz_run_free(&bytes);
	fz_run_free(&chunks);
	fz_model_free(&model);
	free(s);
	return 0;
}
