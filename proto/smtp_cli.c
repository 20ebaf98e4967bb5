/* proto/smtp_cli — the SMTP client side of one connection as a pure state machine; see
 * smtp_cli.h.
 *
 * Shape. One state enum, changed only by cli_enter(); a const table gives each state its
 * name, the command whose reply it waits for and that command's timeout. Replies are read
 * a complete line at a time (cli_line), so a stream split anywhere is read exactly as the
 * same stream in one piece: a partial line is left to the owner and offered again. A
 * complete reply goes to cli_reply(), one switch over the state.
 *
 * A transaction is a list of steps, [RSET] MAIL RCPT... [DATA], formatted into the output
 * at once when it begins (Postfix's smtp_proto.c: the send and the receive halves walk
 * the same list). The send half releases them: all at once with PIPELINING, otherwise
 * one per reply (the output offers [out_off, out_rel) and holds the rest). The receive
 * half walks the list one reply at a time (c->recv); the state is the kind of the step
 * whose reply is next. What is still held when the transaction ends early (MAIL refused
 * or no recipient accepted without PIPELINING) is dropped unsent.
 *
 * Decisions where the brief is silent:
 * - A reply's class must fit its command: 3xx only to DATA (any 3xx is taken as 354),
 *   2xx never to DATA. Otherwise "unexpected reply to CMD: TEXT" (code 0): a server that
 *   says 250 to DATA is not trusted with the body. A 2xx with an addressing status
 *   (2.1.x, a MAIL or RCPT reply) is never taken as the answer to the end of a message:
 *   with BDAT nothing else would show that the server's replies have shifted by one.
 * - 421 fails the connection in every state but QUIT (whose reply, any, ends it anyway).
 * - Any 2xx greeting is taken (Postfix does too); a 3xx greeting is unexpected.
 * - EHLO: any 5xx falls back to HELO, not only 500/501/502/504/550 (a server that means
 *   "go away" refuses HELO too, and then we fail with its reply); 4xx fails. Keywords are
 *   read from the lines after the first (RFC 5321 4.1.1.1: the first is the domain).
 *   "SIZE" without a number, with 0, or with one that does not fit: size_max 0.
 * - RSET not 2xx fails the connection (the session state is unknown).
 * - A reply that comes while the owner sends a BDAT body is the BDAT reply arriving
 *   before the owner saw its send complete (io_uring may complete the recv first): it is
 *   held and taken at smtp_cli_body_done(). While a DATA body is being sent no reply may
 *   come: "unexpected reply".
 * - Every reply's text is assembled as the brief says; the first line's '-' (of a
 *   multi-line reply) is written ' ' so that a text always starts "ddd " or is "ddd".
 * - The null sender "" gives MAIL FROM:<>. A control octet (C0, DEL) in an address would
 *   let it end our command line and start another: such an address is never written.
 */
#include "proto/smtp_cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define CLI_ASSERT(x)                                                              \
	do {                                                                       \
		if (!(x)) {                                                        \
			fprintf(stderr, "%s:%d: broken invariant: %s\n", __FILE__, \
			        __LINE__, #x);                                     \
			abort();                                                   \
		}                                                                  \
	} while (0)

#define CLI_OUT_MIN  512u              /* first output allocation */
#define CLI_OUT_KEEP (64u * 1024u)     /* a larger output buffer is freed once empty */
#define CLI_RES_NONE SIZE_MAX          /* res[i]: no result yet */
#define CLI_RES_ACC  (SIZE_MAX - 1)    /* res[i]: RCPT accepted, waits for the final reply */
#define CLI_TO_NONE  SIZE_MAX          /* no reply awaited in this state */

enum cli_step_kind { CLI_STEP_RSET, CLI_STEP_MAIL, CLI_STEP_RCPT, CLI_STEP_DATA };

struct smtp_cli_step {
	enum cli_step_kind kind;
	size_t end;                    /* output offset just after its command line */
	size_t rcpt;                   /* RCPT: the recipient's index */
};

#define CLI_TO(f) offsetof(struct smtp_cli_timeouts, f)

static const struct cli_state_info {
	const char *name;
	const char *cmd;               /* the command whose reply is awaited, or "none" */
	size_t to;                     /* its timeout in struct smtp_cli_timeouts */
} cli_states[] = {
	[SMTP_CLI_ST_NONE]     = { "none", "none", CLI_TO_NONE },
	[SMTP_CLI_ST_GREETING] = { "greeting", "connect", CLI_TO(greeting) },
	[SMTP_CLI_ST_EHLO]     = { "ehlo", "EHLO", CLI_TO(helo) },
	[SMTP_CLI_ST_HELO]     = { "helo", "HELO", CLI_TO(helo) },
	[SMTP_CLI_ST_STARTTLS] = { "starttls", "STARTTLS", CLI_TO(helo) },
	[SMTP_CLI_ST_TLS]      = { "tls handshake", "none", CLI_TO(helo) },
	[SMTP_CLI_ST_READY]    = { "ready", "none", CLI_TO_NONE },
	[SMTP_CLI_ST_RSET]     = { "rset", "RSET", CLI_TO(rset) },
	[SMTP_CLI_ST_MAIL]     = { "mail", "MAIL FROM", CLI_TO(mail) },
	[SMTP_CLI_ST_RCPT]     = { "rcpt", "RCPT TO", CLI_TO(rcpt) },
	[SMTP_CLI_ST_DATA]     = { "data", "DATA", CLI_TO(data_init) },
	[SMTP_CLI_ST_BODY]     = { "body", "none", CLI_TO_NONE },
	[SMTP_CLI_ST_BDAT]     = { "bdat", "BDAT", CLI_TO(data_end) },
	[SMTP_CLI_ST_DOT]      = { "dot", "end of DATA", CLI_TO(data_end) },
	[SMTP_CLI_ST_QUIT]     = { "quit", "QUIT", CLI_TO(quit) },
	[SMTP_CLI_ST_CLOSED]   = { "closed", "none", CLI_TO_NONE },
	[SMTP_CLI_ST_FAILED]   = { "failed", "none", CLI_TO_NONE },
};

/* ---- allocation (with a fault hook in the test build) ------------------------------ */

#ifdef RR_TEST_BUILD
/* Test hook (declared by test/proto/smtp_cli_test.c): make the nth allocation from now
 * fail (1: the next one), 0: none. */
void smtp_cli_test_fail_alloc(unsigned long nth);
static unsigned long cli_fail_nth;

void smtp_cli_test_fail_alloc(unsigned long nth)
{
	cli_fail_nth = nth;
}

static bool cli_fail_now(void)
{
	return cli_fail_nth != 0 && --cli_fail_nth == 0;
}
#else
static bool cli_fail_now(void)
{
	return false;
}
#endif

/* The only allocator of the module. */
static void *cli_realloc(void *p, size_t n)
{
	return cli_fail_now() ? NULL : realloc(p, n);
}

/* ---- state ------------------------------------------------------------------------ */

/* The only function that changes c->state. CLOSED and FAILED are final. */
static void cli_enter(struct smtp_cli *c, enum smtp_cli_state st)
{
	CLI_ASSERT((unsigned)st < sizeof cli_states / sizeof cli_states[0]);
	CLI_ASSERT((c->state != SMTP_CLI_ST_CLOSED && c->state != SMTP_CLI_ST_FAILED) ||
	           st == c->state);
	c->state = st;
}

static bool cli_over(const struct smtp_cli *c)
{
	return c->state == SMTP_CLI_ST_CLOSED || c->state == SMTP_CLI_ST_FAILED ||
	       c->state == SMTP_CLI_ST_NONE;
}

/* ---- reply texts ------------------------------------------------------------------ */

/* Append to r's text (cut at SMTP_CLI_TEXT_MAX); NUL, CR and LF become '?'. */
static void cli_text(struct smtp_cli_reply *r, size_t *len, const char *p, size_t n)
{
	size_t room = SMTP_CLI_TEXT_MAX - *len;

	if (n > room)
		n = room;
	for (size_t i = 0; i < n; i++) {
		char ch = p[i];
		r->text[*len + i] = (ch == '\0' || ch == '\r' || ch == '\n') ? '?' : ch;
	}
	*len += n;
	r->text[*len] = '\0';
}

static void cli_text_s(struct smtp_cli_reply *r, size_t *len, const char *s)
{
	cli_text(r, len, s, strlen(s));
}

/* A local reply: code, and text made of a literal and an optional tail. */
static void cli_local(struct smtp_cli_reply *r, unsigned code, const char *cmd,
                      const char *text, const char *tail, size_t tail_len)
{
	size_t len = 0;

	r->code = code;
	r->cmd = cmd;
	r->text[0] = '\0';
	cli_text_s(r, &len, text);
	if (tail)
		cli_text(r, &len, tail, tail_len);
}

/* ---- events ----------------------------------------------------------------------- */

static void cli_event(struct smtp_cli *c, enum smtp_cli_ev_kind kind,
                      const struct smtp_cli_reply *r)
{
	struct smtp_cli_ev *ev;

	/* The owner pops events as they come; a full queue is its bug. */
	CLI_ASSERT(c->ev_n < SMTP_CLI_EV_QUEUE);
	ev = &c->ev[(c->ev_head + c->ev_n++) % SMTP_CLI_EV_QUEUE];
	ev->kind = kind;
	ev->reply = *r;
}

static void cli_fail(struct smtp_cli *c, const struct smtp_cli_reply *r)
{
	cli_event(c, SMTP_CLI_EV_FAIL, r);
	cli_enter(c, SMTP_CLI_ST_FAILED);
}

/* A local protocol error (code 0), blamed on the command awaited now. */
static void cli_fail_local(struct smtp_cli *c, const char *text, const char *tail,
                           size_t tail_len)
{
	struct smtp_cli_reply r;

	cli_local(&r, 0, cli_states[c->state].cmd, text, tail, tail_len);
	cli_fail(c, &r);
}

/* A well-formed reply that does not fit the state. */
static void cli_unexpected(struct smtp_cli *c, const struct smtp_cli_reply *r)
{
	struct smtp_cli_reply l;
	size_t len = 0;

	l.code = 0;
	l.cmd = cli_states[c->state].cmd;
	l.text[0] = '\0';
	if (strcmp(l.cmd, "none") == 0) {
		cli_text_s(&l, &len, "unexpected reply: ");
	} else {
		cli_text_s(&l, &len, "unexpected reply to ");
		cli_text_s(&l, &len, l.cmd);
		cli_text_s(&l, &len, ": ");
	}
	cli_text_s(&l, &len, r->text);
	cli_fail(c, &l);
}

static void cli_oom(struct smtp_cli *c)
{
	cli_fail_local(c, "out of memory", NULL, 0);
}

/* ---- output ----------------------------------------------------------------------- */

static bool cli_out_reserve(struct smtp_cli *c, size_t n)
{
	size_t cap = c->out_cap ? c->out_cap : CLI_OUT_MIN;
	char *q;

	if (c->out_cap - c->out_len >= n)
		return true;
	while (cap - c->out_len < n) {
		if (cap > SIZE_MAX / 2)
			return false;
		cap *= 2;
	}
	q = cli_realloc(c->out, cap);
	if (!q)
		return false;
	c->out = q;
	c->out_cap = cap;
	return true;
}

/* Append reserved room: no check. */
static void cli_put(struct smtp_cli *c, const char *p, size_t n)
{
	memcpy(c->out + c->out_len, p, n);
	c->out_len += n;
}

static void cli_put_s(struct smtp_cli *c, const char *s)
{
	cli_put(c, s, strlen(s));
}

static void cli_put_u64(struct smtp_cli *c, uint64_t v)
{
	char b[20];
	size_t i = sizeof b;

	do {
		b[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	cli_put(c, b + i, sizeof b - i);
}

/* Queue a whole command line now (nothing may be held). false: out of memory, failed. */
static bool cli_send(struct smtp_cli *c, const char *a, const char *b, const char *z)
{
	size_t na = strlen(a), nb = b ? strlen(b) : 0, nz = z ? strlen(z) : 0;

	CLI_ASSERT(c->out_rel == c->out_len);
	if (!cli_out_reserve(c, na + nb + nz)) {
		cli_oom(c);
		return false;
	}
	cli_put(c, a, na);
	if (b)
		cli_put(c, b, nb);
	if (z)
		cli_put(c, z, nz);
	c->out_rel = c->out_len;
	return true;
}

/* Drop what is formatted but not released (the rest of a transaction ended early). */
static void cli_out_drop_held(struct smtp_cli *c)
{
	c->out_len = c->out_rel;
}

/* ---- results ---------------------------------------------------------------------- */

static bool cli_same(const struct smtp_cli_reply *a, const struct smtp_cli_reply *b)
{
	return a->code == b->code && a->cmd == b->cmd && strcmp(a->text, b->text) == 0;
}

/* Keep r for results; returns its index, or SIZE_MAX when out of memory. The last entry
 * is shared when equal (a run of identical refusals costs one entry). */
static size_t cli_pool_put(struct smtp_cli *c, const struct smtp_cli_reply *r)
{
	if (c->npool && cli_same(&c->pool[c->npool - 1], r))
		return c->npool - 1;
	if (c->npool == c->pool_cap) {
		size_t cap = c->pool_cap ? 2 * c->pool_cap : 4;
		struct smtp_cli_reply *q = cli_realloc(c->pool, cap * sizeof *q);

		if (!q)
			return SIZE_MAX;
		c->pool = q;
		c->pool_cap = cap;
	}
	c->pool[c->npool] = *r;
	return c->npool++;
}

/* The same while reading replies: out of memory fails the connection. */
static size_t cli_pool_add(struct smtp_cli *c, const struct smtp_cli_reply *r)
{
	size_t k = cli_pool_put(c, r);

	if (k == SIZE_MAX)
		cli_oom(c);
	return k;
}

/* Every recipient in state `from` gets r. false: out of memory (failed). */
static bool cli_res_set(struct smtp_cli *c, size_t from, const struct smtp_cli_reply *r)
{
	size_t k = SIZE_MAX;

	for (size_t i = 0; i < c->nrcpt; i++) {
		if (c->res[i] != from)
			continue;
		if (k == SIZE_MAX && (k = cli_pool_add(c, r)) == SIZE_MAX)
			return false;
		c->res[i] = k;
	}
	return true;
}

/* The whole message refused locally: one reply for every recipient. */
static int cli_refuse(struct smtp_cli *c, unsigned code, const char *text)
{
	cli_local(&c->local, code, "MAIL FROM", text, NULL, 0);
	c->shared = true;
	return -1;
}

/* ---- transaction ------------------------------------------------------------------ */

static enum smtp_cli_state cli_step_state(enum cli_step_kind k)
{
	switch (k) {
	case CLI_STEP_RSET:
		return SMTP_CLI_ST_RSET;
	case CLI_STEP_MAIL:
		return SMTP_CLI_ST_MAIL;
	case CLI_STEP_RCPT:
		return SMTP_CLI_ST_RCPT;
	case CLI_STEP_DATA:
		break;
	}
	return SMTP_CLI_ST_DATA;
}

/* Offer steps up to and including k. (The offsets of released steps are stale once the
 * output was taken and reset; those of held ones stay valid: nothing held, no reset.) */
static void cli_release(struct smtp_cli *c, size_t k)
{
	CLI_ASSERT(k < c->nsteps);
	if (k < c->sent)
		return;
	CLI_ASSERT(c->steps[k].end <= c->out_len && c->steps[k].end >= c->out_rel);
	c->out_rel = c->steps[k].end;
	c->sent = k + 1;
}

/* The receive half moves to step c->recv; the send half releases it if need be. */
static void cli_step_enter(struct smtp_cli *c)
{
	cli_release(c, c->recv);
	cli_enter(c, cli_step_state(c->steps[c->recv].kind));
}

/* The transaction is over: r is the reply that ended it. */
static void cli_done(struct smtp_cli *c, const struct smtp_cli_reply *r)
{
	cli_out_drop_held(c);
	c->messages++;
	cli_enter(c, SMTP_CLI_ST_READY);
	cli_event(c, SMTP_CLI_EV_MSG_DONE, r);
}

/* MAIL and RCPT replies are in, a recipient was accepted, CHUNKING: BDAT, and the body. */
static void cli_bdat(struct smtp_cli *c, const struct smtp_cli_reply *r)
{
	char num[21];
	size_t i = sizeof num - 1;
	uint64_t v = c->size;

	num[i] = '\0';
	do {
		num[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	if (!cli_send(c, "BDAT ", num + i, " LAST\r\n"))
		return;
	c->body = SMTP_CLI_BODY_BDAT;
	c->held = false;
	cli_enter(c, SMTP_CLI_ST_BODY);
	cli_event(c, SMTP_CLI_EV_BODY, r);
}

/* Does a 2xx reply carry an addressing status (2.1.x: RFC 3463's X.1.Y, what MAIL and
 * RCPT are answered with)? Never the answer to the end of a message. */
static bool cli_addressing_status(const struct smtp_cli_reply *r)
{
	const char *p = r->text;
	return strlen(p) >= 9 && p[0] == '2' && p[3] == ' ' && p[4] == '2' && p[5] == '.' &&
	       p[6] == '1' && p[7] == '.' && p[8] >= '0' && p[8] <= '9';
}

/* The final reply (to the end of data or to BDAT LAST). */
static void cli_final(struct smtp_cli *c, const struct smtp_cli_reply *r)
{
	/* A 2.1.x "250" here is a MAIL or RCPT reply out of its place: a server that answered
	 * some command twice (one RSET, two 250s) has shifted every reply after it, and the
	 * real verdict on the message is still to come. Never taken as delivered. */
	if (r->code / 100 == 3 || (r->code / 100 == 2 && cli_addressing_status(r))) {
		cli_unexpected(c, r);
		return;
	}
	/* the accepted recipients': none after the lone dot of RFC 2920 3.1 */
	if (!cli_res_set(c, CLI_RES_ACC, r))
		return;
	cli_done(c, r);
}

/* A reply to the step c->recv ([RSET] MAIL RCPT... [DATA]). */
static void cli_txn_reply(struct smtp_cli *c, const struct smtp_cli_reply *r)
{
	const struct smtp_cli_step *s = &c->steps[c->recv];
	unsigned cls = r->code / 100;
	bool next_sent = c->sent > c->recv + 1;   /* the next step went out already */
	bool last_rcpt;

	if (cls == 3 && s->kind != CLI_STEP_DATA) {
		cli_unexpected(c, r);
		return;
	}
	switch (s->kind) {
	case CLI_STEP_RSET:
		if (cls != 2) {
			cli_fail(c, r);
			return;
		}
		break;
	case CLI_STEP_MAIL:
		c->mail_ok = cls == 2;
		if (c->mail_ok)
			break;
		/* Every recipient gets the MAIL reply; those pipelined behind it are
		 * read and their replies ignored. */
		if (!cli_res_set(c, CLI_RES_NONE, r))
			return;
		if (!next_sent) {
			cli_done(c, r);
			return;
		}
		break;
	case CLI_STEP_RCPT:
		c->rcpt_replies++;
		if (c->mail_ok) {
			if (cls == 2) {
				c->res[s->rcpt] = CLI_RES_ACC;
				c->accepted++;
			} else {
				size_t k = cli_pool_add(c, r);

				if (k == SIZE_MAX)
					return;
				c->res[s->rcpt] = k;
			}
		}
		last_rcpt = c->recv + 1 == c->nsteps ||
		            c->steps[c->recv + 1].kind != CLI_STEP_RCPT;
		if (!last_rcpt)
			break;
		if (!c->mail_ok || c->accepted == 0) {
			if (!next_sent) {             /* BDAT mode, or DATA not sent yet */
				cli_done(c, r);
				return;
			}
			break;                        /* a pipelined DATA: read its reply */
		}
		if (c->body == SMTP_CLI_BODY_BDAT) {
			cli_bdat(c, r);
			return;
		}
		break;
	case CLI_STEP_DATA:
		if (cls == 3) {
			if (c->mail_ok && c->accepted) {
				smtp_cli_dot_init(&c->dot);
				cli_enter(c, SMTP_CLI_ST_BODY);
				cli_event(c, SMTP_CLI_EV_BODY, r);
				return;
			}
			/* RFC 2920 3.1: DATA was pipelined and accepted though no
			 * recipient was: an empty message, whose reply is nobody's (no
			 * recipient is waiting for it: cli_final gives it to none). */
			if (!cli_send(c, ".\r\n", NULL, NULL))
				return;
			cli_enter(c, SMTP_CLI_ST_DOT);
			return;
		}
		if (cls == 2) {
			cli_unexpected(c, r);
			return;
		}
		if (c->mail_ok && !cli_res_set(c, CLI_RES_ACC, r))
			return;
		cli_done(c, r);
		return;
	}
	c->recv++;
	CLI_ASSERT(c->recv < c->nsteps);
	cli_step_enter(c);
}

/* ---- replies ---------------------------------------------------------------------- */

/* A complete, well-formed reply. */
static void cli_reply(struct smtp_cli *c, const struct smtp_cli_reply *r)
{
	unsigned cls = r->code / 100;

	if (r->code == 421 && c->state != SMTP_CLI_ST_QUIT) {
		cli_fail(c, r);
		return;
	}
	switch (c->state) {
	case SMTP_CLI_ST_GREETING:
		if (cls == 2) {
			if (cli_send(c, "EHLO ", c->helo, "\r\n"))
				cli_enter(c, SMTP_CLI_ST_EHLO);
		} else if (cls == 3) {
			cli_unexpected(c, r);
		} else {
			cli_fail(c, r);
		}
		return;
	case SMTP_CLI_ST_EHLO:
		if (cls == 2) {
			c->caps = c->cur_caps;
			c->caps.esmtp = true;
			cli_enter(c, SMTP_CLI_ST_READY);
			cli_event(c, SMTP_CLI_EV_READY, r);
		} else if (cls == 5) {
			if (cli_send(c, "HELO ", c->helo, "\r\n"))
				cli_enter(c, SMTP_CLI_ST_HELO);
		} else if (cls == 3) {
			cli_unexpected(c, r);
		} else {
			cli_fail(c, r);
		}
		return;
	case SMTP_CLI_ST_HELO:
		if (cls == 2) {
			memset(&c->caps, 0, sizeof c->caps);
			cli_enter(c, SMTP_CLI_ST_READY);
			cli_event(c, SMTP_CLI_EV_READY, r);
		} else if (cls == 3) {
			cli_unexpected(c, r);
		} else {
			cli_fail(c, r);
		}
		return;
	case SMTP_CLI_ST_STARTTLS:
		if (cls == 2) {
			cli_enter(c, SMTP_CLI_ST_TLS);
			cli_event(c, SMTP_CLI_EV_TLS, r);
		} else if (cls == 3) {
			cli_unexpected(c, r);
		} else {
			cli_enter(c, SMTP_CLI_ST_READY);
			cli_event(c, SMTP_CLI_EV_TLS_REFUSED, r);
		}
		return;
	case SMTP_CLI_ST_RSET:
	case SMTP_CLI_ST_MAIL:
	case SMTP_CLI_ST_RCPT:
	case SMTP_CLI_ST_DATA:
		cli_txn_reply(c, r);
		return;
	case SMTP_CLI_ST_BODY:
		if (c->body == SMTP_CLI_BODY_BDAT && !c->held) {
			c->held = true;
			c->held_reply = *r;
			c->held_reply.cmd = "BDAT";
			return;
		}
		cli_unexpected(c, r);
		return;
	case SMTP_CLI_ST_BDAT:
	case SMTP_CLI_ST_DOT:
		cli_final(c, r);
		return;
	case SMTP_CLI_ST_QUIT:
		cli_enter(c, SMTP_CLI_ST_CLOSED);
		cli_event(c, SMTP_CLI_EV_CLOSED, r);
		return;
	case SMTP_CLI_ST_READY:
		cli_unexpected(c, r);
		return;
	case SMTP_CLI_ST_NONE:
	case SMTP_CLI_ST_TLS:
	case SMTP_CLI_ST_CLOSED:
	case SMTP_CLI_ST_FAILED:
		break;
	}
	CLI_ASSERT(!"reply in a state that reads none");
}

static bool cli_kw(const char *p, size_t n, const char *kw)
{
	return strlen(kw) == n && strncasecmp(p, kw, n) == 0;
}

/* "SIZE n": n, or 0 when missing, not a number or too big. */
static uint64_t cli_size_param(const char *p, size_t n)
{
	uint64_t v = 0;
	size_t i = 0;

	while (i < n && p[i] == ' ')
		i++;
	if (i == n)
		return 0;
	for (; i < n && p[i] != ' '; i++) {
		unsigned d = (unsigned)(unsigned char)p[i] - '0';

		if (d > 9 || v > (UINT64_MAX - d) / 10)
			return 0;
		v = v * 10 + d;
	}
	return v;
}

/* One EHLO keyword line (after "250-"/"250 "). */
static void cli_ehlo_line(struct smtp_cli_caps *k, const char *p, size_t n)
{
	size_t w = 0;

	while (w < n && p[w] != ' ')
		w++;
	if (cli_kw(p, w, "PIPELINING"))
		k->pipelining = true;
	else if (cli_kw(p, w, "CHUNKING"))
		k->chunking = true;
	else if (cli_kw(p, w, "SIZE")) {
		k->size = true;
		k->size_max = cli_size_param(p + w, n - w);
	} else if (cli_kw(p, w, "8BITMIME"))
		k->eightbitmime = true;
	else if (cli_kw(p, w, "SMTPUTF8"))
		k->smtputf8 = true;
	else if (cli_kw(p, w, "STARTTLS"))
		k->starttls = true;
	else if (cli_kw(p, w, "ENHANCEDSTATUSCODES"))
		k->enhancedstatuscodes = true;
}

/* One complete line, CR LF removed, at most SMTP_CLI_LINE_MAX octets. */
static void cli_line(struct smtp_cli *c, const char *l, size_t n)
{
	unsigned code;
	bool last;

	if (n < 3 || l[0] < '2' || l[0] > '5' || l[1] < '0' || l[1] > '9' || l[2] < '0' ||
	    l[2] > '9' || (n > 3 && l[3] != ' ' && l[3] != '-')) {
		cli_fail_local(c, "malformed reply: ", l, n);
		return;
	}
	code = (unsigned)(l[0] - '0') * 100 + (unsigned)(l[1] - '0') * 10 + (unsigned)(l[2] - '0');
	last = n == 3 || l[3] == ' ';
	if (c->cur_lines == 0) {
		c->cur.code = code;
		c->cur_len = 0;
		c->cur.text[0] = '\0';
		memset(&c->cur_caps, 0, sizeof c->cur_caps);
		cli_text(&c->cur, &c->cur_len, l, 3);
		if (n > 3) {
			cli_text(&c->cur, &c->cur_len, " ", 1);
			cli_text(&c->cur, &c->cur_len, l + 4, n - 4);
		}
	} else {
		if (code != c->cur.code) {
			cli_fail_local(c, "malformed reply: ", l, n);
			return;
		}
		cli_text(&c->cur, &c->cur_len, " ", 1);
		if (n > 4)
			cli_text(&c->cur, &c->cur_len, l + 4, n - 4);
		if (c->state == SMTP_CLI_ST_EHLO && n > 4)
			cli_ehlo_line(&c->cur_caps, l + 4, n - 4);
	}
	if (++c->cur_lines > SMTP_CLI_LINES_MAX) {
		cli_fail_local(c, "too many reply lines", NULL, 0);
		return;
	}
	if (!last)
		return;
	c->cur_lines = 0;
	c->cur.cmd = cli_states[c->state].cmd;
	cli_reply(c, &c->cur);
}

/* ---- API -------------------------------------------------------------------------- */

void smtp_cli_timeouts_rfc(struct smtp_cli_timeouts *t)
{
	t->greeting = 5 * 60000;
	t->helo = 5 * 60000;
	t->mail = 5 * 60000;
	t->rcpt = 5 * 60000;
	t->data_init = 2 * 60000;
	t->data_block = 3 * 60000;
	t->data_end = 10 * 60000;
	t->rset = 5 * 60000;
	t->quit = 5 * 60000;
}

void smtp_cli_init(struct smtp_cli *c, const char *helo_name, const struct smtp_cli_timeouts *t)
{
	struct smtp_cli_timeouts rfc;
	size_t n;

	memset(c, 0, sizeof *c);
	smtp_cli_timeouts_rfc(&rfc);
	c->to = t ? *t : rfc;
#define CLI_TO_FILL(f) if (!c->to.f) c->to.f = rfc.f
	CLI_TO_FILL(greeting);
	CLI_TO_FILL(helo);
	CLI_TO_FILL(mail);
	CLI_TO_FILL(rcpt);
	CLI_TO_FILL(data_init);
	CLI_TO_FILL(data_block);
	CLI_TO_FILL(data_end);
	CLI_TO_FILL(rset);
	CLI_TO_FILL(quit);
#undef CLI_TO_FILL
	if (!helo_name || !*helo_name)
		helo_name = "localhost";
	n = strnlen(helo_name, SMTP_CLI_HELO_MAX);
	/* Ours, from the configuration, but it goes on a command line: nothing outside
	 * 0x21..0x7e (a CR or LF would start a command of its own). */
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)helo_name[i];
		c->helo[i] = ch < 0x21 || ch > 0x7e ? '?' : (char)ch;
	}
	c->helo[n] = '\0';
	c->body = SMTP_CLI_BODY_DATA;
	cli_enter(c, SMTP_CLI_ST_GREETING);
}

void smtp_cli_free(struct smtp_cli *c)
{
	if (!c)
		return;
	free(c->out);
	free(c->steps);
	free(c->res);
	free(c->pool);
	memset(c, 0, sizeof *c);
}

size_t smtp_cli_input(struct smtp_cli *c, const char *p, size_t n)
{
	size_t used = 0;

	if (c->state == SMTP_CLI_ST_TLS) {  /* plaintext before the handshake: not read */
		c->tls_ignored += n;
		return n;
	}
	while (used < n && !cli_over(c) && c->state != SMTP_CLI_ST_TLS) {
		size_t rest = n - used;
		size_t win = rest < SMTP_CLI_LINE_MAX + 2 ? rest : SMTP_CLI_LINE_MAX + 2;
		const char *l = p + used;
		const char *lf = memchr(l, '\n', win);
		size_t len, cl;

		if (!lf) {
			/* SMTP_CLI_LINE_MAX + 2 octets without LF: over the limit, CR or not. */
			if (rest >= SMTP_CLI_LINE_MAX + 2)
				cli_fail_local(c, "reply line too long", NULL, 0);
			break;
		}
		len = (size_t)(lf - l);
		cl = len > 0 && l[len - 1] == '\r' ? len - 1 : len;
		used += len + 1;
		if (cl > SMTP_CLI_LINE_MAX) {
			cli_fail_local(c, "reply line too long", NULL, 0);
			break;
		}
		cli_line(c, l, cl);
	}
	return cli_over(c) ? n : used;
}

const char *smtp_cli_out(const struct smtp_cli *c, size_t *len)
{
	*len = c->out_rel - c->out_off;
	return c->out ? c->out + c->out_off : "";
}

void smtp_cli_out_done(struct smtp_cli *c, size_t n)
{
	size_t avail = c->out_rel - c->out_off;

	c->out_off += n < avail ? n : avail;
	if (c->out_off < c->out_len)
		return;
	/* Empty: start again at the front, and give a large buffer back. */
	c->out_off = c->out_rel = c->out_len = 0;
	if (c->out_cap > CLI_OUT_KEEP) {
		free(c->out);
		c->out = NULL;
		c->out_cap = 0;
	}
}

bool smtp_cli_next(struct smtp_cli *c, struct smtp_cli_ev *ev)
{
	if (c->ev_n == 0) {
		ev->kind = SMTP_CLI_EV_NONE;
		return false;
	}
	*ev = c->ev[c->ev_head];
	c->ev_head = (c->ev_head + 1) % SMTP_CLI_EV_QUEUE;
	c->ev_n--;
	return true;
}

/* An address we may write between brackets: no control octet, not too long. */
static bool cli_addr_ok(const char *a)
{
	size_t n = strnlen(a, SMTP_CLI_ADDR_MAX + 1);

	if (n > SMTP_CLI_ADDR_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)a[i] < 0x20 || (unsigned char)a[i] == 0x7f)
			return false;
	return true;
}

static bool cli_in_txn(const struct smtp_cli *c)
{
	switch (c->state) {
	case SMTP_CLI_ST_RSET:
	case SMTP_CLI_ST_MAIL:
	case SMTP_CLI_ST_RCPT:
	case SMTP_CLI_ST_DATA:
	case SMTP_CLI_ST_BODY:
	case SMTP_CLI_ST_BDAT:
	case SMTP_CLI_ST_DOT:
		return true;
	default:
		return false;
	}
}

/* Room for the steps and the results of n recipients. */
static bool cli_txn_alloc(struct smtp_cli *c, size_t n)
{
	if (c->res_cap < n) {
		size_t *r = cli_realloc(c->res, n * sizeof *r);
		if (!r)
			return false;
		c->res = r;
		c->res_cap = n;
	}
	if (c->steps_cap < n + 3) {
		struct smtp_cli_step *s = cli_realloc(c->steps, (n + 3) * sizeof *s);
		if (!s)
			return false;
		c->steps = s;
		c->steps_cap = n + 3;
	}
	return true;
}

static void cli_step_add(struct smtp_cli *c, enum cli_step_kind kind, size_t rcpt)
{
	c->steps[c->nsteps++] = (struct smtp_cli_step){ kind, c->out_len, rcpt };
}

int smtp_cli_send_msg(struct smtp_cli *c, const char *sender, const char *const *rcpt, size_t n,
                      uint64_t size, unsigned need)
{
	bool bdat = c->caps.chunking;
	size_t room, sendable = 0, slen;

	if (cli_in_txn(c))
		return -1;                        /* the caller's bug: change nothing */
	c->nrcpt = n;
	c->npool = 0;
	c->shared = false;
	c->rcpt_sent = c->rcpt_replies = c->accepted = 0;
	c->size = size;
	if (c->state != SMTP_CLI_ST_READY)
		return cli_refuse(c, 451, "451 4.3.0 SMTP client not ready");
	if (n == 0 || !rcpt)
		return cli_refuse(c, 452, "452 4.5.3 No recipients");
	if (n > SMTP_CLI_RCPT_MAX)
		return cli_refuse(c, 452, "452 4.5.3 Too many recipients for one transaction");
	if (!sender || !cli_addr_ok(sender))
		return cli_refuse(c, 501, "501 5.1.7 Bad sender address syntax");
	if (c->caps.size && c->caps.size_max && size > c->caps.size_max)
		return cli_refuse(c, 552,
		                  "552 5.3.4 Message size exceeds fixed maximum message size");
	if ((need & SMTP_CLI_NEED_UTF8) && !c->caps.smtputf8)
		return cli_refuse(c, 553, "553 5.6.7 SMTPUTF8 is required, but was not offered "
		                          "by the server");
	if (!cli_txn_alloc(c, n))
		return cli_refuse(c, 451, "451 4.3.0 Insufficient system resources");

	/* Recipients we will not write get their result now. */
	slen = strlen(sender);
	room = sizeof "RSET\r\n" + sizeof "MAIL FROM:<>" + slen + sizeof " SIZE=" + 20 +
	       sizeof " BODY=8BITMIME" + sizeof " SMTPUTF8\r\n" + sizeof "DATA\r\n";
	for (size_t i = 0; i < n; i++) {
		c->res[i] = CLI_RES_NONE;
		if (rcpt[i] && cli_addr_ok(rcpt[i])) {
			sendable++;
			room += sizeof "RCPT TO:<>\r\n" + strlen(rcpt[i]);
			continue;
		}
		struct smtp_cli_reply bad;
		size_t k;

		cli_local(&bad, 501, "RCPT TO", "501 5.1.3 Bad recipient address syntax", NULL, 0);
		k = cli_pool_put(c, &bad);
		if (k == SIZE_MAX)
			return cli_refuse(c, 451, "451 4.3.0 Insufficient system resources");
		c->res[i] = k;
	}
	if (sendable == 0)
		return -1;
	if (!cli_out_reserve(c, room))
		return cli_refuse(c, 451, "451 4.3.0 Insufficient system resources");

	/* The steps, formatted now; released below. */
	CLI_ASSERT(c->out_rel == c->out_len);
	c->nsteps = c->sent = c->recv = 0;
	if (c->pending_rset) {
		cli_put_s(c, "RSET\r\n");
		cli_step_add(c, CLI_STEP_RSET, 0);
	}
	cli_put_s(c, "MAIL FROM:<");
	cli_put(c, sender, slen);
	cli_put_s(c, ">");
	if (c->caps.size) {
		cli_put_s(c, " SIZE=");
		cli_put_u64(c, size);
	}
	if ((need & SMTP_CLI_NEED_8BIT) && c->caps.eightbitmime)
		cli_put_s(c, " BODY=8BITMIME");
	if (need & SMTP_CLI_NEED_UTF8)
		cli_put_s(c, " SMTPUTF8");
	cli_put_s(c, "\r\n");
	cli_step_add(c, CLI_STEP_MAIL, 0);
	for (size_t i = 0; i < n; i++) {
		if (c->res[i] != CLI_RES_NONE)
			continue;
		cli_put_s(c, "RCPT TO:<");
		cli_put_s(c, rcpt[i]);
		cli_put_s(c, ">\r\n");
		cli_step_add(c, CLI_STEP_RCPT, i);
	}
	if (!bdat) {
		cli_put_s(c, "DATA\r\n");
		cli_step_add(c, CLI_STEP_DATA, 0);
	}
	c->rcpt_sent = sendable;
	c->body = bdat ? SMTP_CLI_BODY_BDAT : SMTP_CLI_BODY_DATA;
	c->mail_ok = false;
	c->held = false;
	c->pending_rset = true;
	c->transactions++;
	if (c->caps.pipelining)
		cli_release(c, c->nsteps - 1);   /* RFC 2920: the whole group in one write */
	cli_step_enter(c);
	return 0;
}

void smtp_cli_body_done(struct smtp_cli *c)
{
	if (c->state != SMTP_CLI_ST_BODY)
		return;
	if (c->body == SMTP_CLI_BODY_DATA) {
		/* The body ended at the start of a line (CRLF, or nothing at all) or not. */
		if (cli_send(c, c->dot.st == 0 ? ".\r\n" : "\r\n.\r\n", NULL, NULL))
			cli_enter(c, SMTP_CLI_ST_DOT);
		return;
	}
	cli_enter(c, SMTP_CLI_ST_BDAT);
	if (c->held) {
		c->held = false;
		cli_reply(c, &c->held_reply);
	}
}

const struct smtp_cli_reply *smtp_cli_result(const struct smtp_cli *c, size_t i)
{
	if (i >= c->nrcpt)
		return NULL;
	if (c->shared)
		return &c->local;
	if (!c->res || c->res[i] >= c->npool)
		return NULL;
	return &c->pool[c->res[i]];
}

void smtp_cli_quit(struct smtp_cli *c)
{
	if (c->state != SMTP_CLI_ST_READY)
		return;
	if (cli_send(c, "QUIT\r\n", NULL, NULL))
		cli_enter(c, SMTP_CLI_ST_QUIT);
}

int smtp_cli_starttls(struct smtp_cli *c)
{
	if (c->state != SMTP_CLI_ST_READY || !c->caps.starttls || c->tls)
		return -1;
	if (!cli_send(c, "STARTTLS\r\n", NULL, NULL))
		return -1;
	cli_enter(c, SMTP_CLI_ST_STARTTLS);
	return 0;
}

void smtp_cli_tls_up(struct smtp_cli *c)
{
	if (c->state != SMTP_CLI_ST_TLS)
		return;
	c->tls = true;
	memset(&c->caps, 0, sizeof c->caps);
	if (cli_send(c, "EHLO ", c->helo, "\r\n"))
		cli_enter(c, SMTP_CLI_ST_EHLO);
}

unsigned smtp_cli_timeout(const struct smtp_cli *c)
{
	size_t off = cli_states[c->state].to;
	unsigned v;

	if (off == CLI_TO_NONE)
		return 0;
	memcpy(&v, (const char *)&c->to + off, sizeof v);
	return v;
}

const char *smtp_cli_state_name(const struct smtp_cli *c)
{
	return cli_states[c->state].name;
}

/* ---- dot-stuffing ----------------------------------------------------------------- */

enum { CLI_DOT_BOL = 0, CLI_DOT_MID, CLI_DOT_CR };

void smtp_cli_dot_init(struct smtp_cli_dot *d)
{
	d->st = CLI_DOT_BOL;
}

void smtp_cli_dot_plain(struct smtp_cli_dot *d, const char *p, size_t n)
{
	if (n == 0)
		return;
	if (p[n - 1] == '\r')
		d->st = CLI_DOT_CR;
	else if (p[n - 1] == '\n' && (n >= 2 ? p[n - 2] == '\r' : d->st == CLI_DOT_CR))
		d->st = CLI_DOT_BOL;
	else
		d->st = CLI_DOT_MID;
}

size_t smtp_cli_dot_next(struct smtp_cli_dot *d, const char *p, size_t n, bool *insert_dot)
{
	size_t i = 0;

	*insert_dot = false;
	while (i < n) {
		if (d->st == CLI_DOT_BOL) {
			d->st = CLI_DOT_MID;
			if (p[i] == '.') {
				/* The owner sends ".", then this line from its own dot, which
				 * the next call passes as line text. */
				*insert_dot = true;
				return i;
			}
		} else if (d->st == CLI_DOT_CR) {
			if (p[i] == '\n') {
				d->st = CLI_DOT_BOL;
				i++;
				continue;
			}
			d->st = CLI_DOT_MID;
		}
		/* Line text: up to the next CR (memchr, vectorised: bodies are long). */
		const char *cr = memchr(p + i, '\r', n - i);
		if (!cr)
			return n;
		i = (size_t)(cr - p) + 1;
		d->st = CLI_DOT_CR;
	}
	return n;
}
