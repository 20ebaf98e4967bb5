/* ringblast — the SMTP load generator (DESIGN.md, "Load generator and sink").
 *
 * One thread on the shared runtime (net/loop: one io_uring ring; net/stream: one stream
 * per connection). Each connection is a non-blocking socket whose connect() is left in
 * progress: its stream's multishot recv is armed at once and the first thing it reports
 * is the greeting, or the connect error; a PROXY header queued before the connection is
 * up is sent by the ring as soon as it is. Replies go through a small resumable parser
 * (smtp_reply_feed) into the connection's state machine (bconn_reply); output is queued on
 * the stream and sent once per loop turn, one send in flight per connection.
 *
 * A transaction, pipelined (RFC 2920): MAIL, RCPT..., DATA in one send; the 354; the
 * message and its final dot in one send (this connection's header block, whose
 * Message-ID carries a sequence number, then the body built once for all, both queued by
 * reference, not copied); the 250. Latency runs from queueing the message for the send
 * of this loop turn to the 250, on CLOCK_MONOTONIC; so this clock errs long (it includes
 * the time the server takes to read the message), never short.
 *
 * --starttls: EHLO, STARTTLS when the EHLO reply offers it (the keyword is looked for in
 * the reply's lines as they come, ehlo_scan), and on its 220 the stream switches to a
 * client TLS filter (net/tls, one context for the run, no CA: any certificate; no session
 * is ever reused, so every connection makes a full handshake). Whatever else came with
 * the 220 is dropped, never parsed (a server has no business sending it). The filter's
 * ClientHello goes out at the stream's next flush; the handshake's end (ops->secure) is
 * counted, its time from the connect recorded, and EHLO is said again over TLS; the
 * session then goes on as in plaintext. A server that does not offer STARTTLS or refuses
 * it (QUIT then), or a handshake that fails, is an error of its own class: never a
 * plaintext session. A PROXY header, when asked for, goes first, in plaintext.
 *
 * --per-conn N: a connection says QUIT after N transactions and its slot connects again
 * (from the stream's release) while transactions remain that the live connections'
 * shares do not cover; a connection that ended in any other way is not replaced. */
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "bench/blast_opts.h"
#include "bench/hist.h"
#include "net/connect.h"
#include "net/loop.h"
#include "net/stream.h"
#include "net/tls.h"
#include "proto/proxy.h"
#include "proto/smtp_reply.h"

#define BLAST_EXIT_OK 0
#define BLAST_EXIT_FAIL 1
#define BLAST_EXIT_USAGE 2

#define BLAST_RING_ENTRIES 4096
#define BLAST_BUFS 2048                 /* provided recv buffers (a power of two) */
#define BLAST_BUF_SIZE 2048
#define BLAST_RAMP_PER_S 2000u          /* new connections per second, at most ... */
#define BLAST_RAMP_BURST 64u            /* ... after a first burst of this many */
#define BLAST_NS 1000000000ull
#define BLAST_MS 1000000ull
#define BLAST_DRAIN_NS (30 * BLAST_NS)  /* after the time limit, for transactions in flight */
#define BLAST_QUIT_NS (10 * BLAST_NS)   /* after an abort, for the ring to let go */
#define BLAST_TICK_NS (100 * BLAST_MS)
#define BLAST_PROGRESS_AFTER_NS (2 * BLAST_NS)
#define BLAST_EHLO "EHLO ringblast.test\r\n"
#define BLAST_STARTTLS "STARTTLS\r\n"
#define BLAST_TLS_BUDGET (1u << 30)     /* handshake steps a turn: the client never waits */
#define BLAST_MSGID_DOMAIN "ringblast.test"

/* Error classes without a reply code share the code table's unused low slots. */
enum blast_err {
	BLAST_ERR_NONE = 0,
	BLAST_ERR_DROPPED,              /* the connection was lost in the middle */
	BLAST_ERR_TIMEOUT,              /* still in flight at the overall time bound */
	BLAST_ERR_PROTOCOL,             /* a malformed reply */
	BLAST_ERR_INTERRUPTED,          /* SIGINT / SIGTERM */
	BLAST_ERR_NO_STARTTLS,          /* --starttls: the EHLO reply did not offer it */
	BLAST_ERR_TLS,                  /* --starttls: the handshake failed or was cut */
	BLAST_ERR_NCODES = 600,
};
static const char *const blast_err_names[] = {
	[BLAST_ERR_DROPPED] = "dropped",
	[BLAST_ERR_TIMEOUT] = "timeout",
	[BLAST_ERR_PROTOCOL] = "protocol",
	[BLAST_ERR_INTERRUPTED] = "interrupted",
	[BLAST_ERR_NO_STARTTLS] = "no_starttls",
	[BLAST_ERR_TLS] = "tls",
};

/* ---- connections --------------------------------------------------------------------- */

/* Only bconn_enter() changes it. */
enum bconn_state {
	BCONN_ST_NONE = 0,          /* not started yet */
	BCONN_ST_GREETING,          /* connecting (a PROXY header queued); waiting for the 220 */
	BCONN_ST_EHLO,              /* EHLO sent (again over TLS after the handshake) */
	BCONN_ST_STARTTLS,          /* --starttls: STARTTLS sent, waiting for the 220 */
	BCONN_ST_HANDSHAKE,         /* --starttls: the TLS handshake runs */
	BCONN_ST_READY,             /* between transactions, waiting for a --rate token */
	BCONN_ST_ENVELOPE,          /* MAIL, RCPT..., DATA sent (or being sent one by one) */
	BCONN_ST_BODY,              /* 354 seen; the message and its dot are being sent */
	BCONN_ST_FINAL,             /* the dot is sent; waiting for the 250 */
	BCONN_ST_RSET,              /* RSET after a failed transaction */
	BCONN_ST_HOLD,              /* --idle-hold: established, idle */
	BCONN_ST_QUIT,              /* QUIT sent */
	BCONN_ST_CLOSING,           /* aborted; waiting for the ring to let go of it */
	BCONN_ST_DONE,              /* closed */
	BCONN_ST_COUNT
};
static const char *const bconn_state_names[BCONN_ST_COUNT] = {
	"none", "greeting", "ehlo", "starttls", "handshake", "ready", "envelope", "body",
	"final", "rset", "hold", "quit", "closing", "done",
};

struct blast;

struct bconn {
	struct net_stream s;
	struct blast *b;
	struct bconn *wait_next;
	unsigned id;
	enum bconn_state st;
	unsigned waiting : 1, pipelining : 1, has_stream : 1;
	unsigned tls_up : 1;        /* --starttls: the handshake is done */
	unsigned recycle : 1;       /* --per-conn: QUIT after its share; connect again */
	unsigned kw_match : 1, kw_starttls : 1;     /* ehlo_scan: this line, the reply */
	unsigned kw_pos;            /* ehlo_scan: octets of the current line seen (<= 13) */
	uint64_t txns;              /* transactions started on this connection */
	uint64_t share;             /* --per-conn: transactions it may still start */
	uint64_t t_connect;         /* the connect was started */
	struct smtp_reply_parser rp;
	/* the transaction */
	unsigned replies;           /* in ENVELOPE: 0 MAIL, 1..r RCPT, r+1 DATA */
	unsigned rcpt_ok;
	unsigned fail;              /* first negative reply code, or an enum blast_err */
	uint64_t t_dot;             /* the message with the final dot was queued */
	char *hdr;                  /* this connection's header block (Message-ID patched) */
};

struct blast {
	struct blast_opts o;
	struct net_loop loop;
	struct bconn *conns;
	unsigned nstarted, live;
	unsigned nstate[BCONN_ST_COUNT];
	struct bconn *wait_head, *wait_tail;
	/* the message, built once */
	char *hdr_tmpl;
	size_t hdr_len, seq_off;
	char *body;                 /* text lines and the final ".\r\n" */
	size_t body_len;
	char *group;                /* MAIL, RCPT..., DATA */
	size_t *cmd_off;            /* command i is group[cmd_off[i] .. cmd_off[i + 1]) */
	uint64_t seq;
	uint32_t run_id;
	/* counters */
	uint64_t started, ok, failed, conn_errors;
	uint64_t errs[BLAST_ERR_NCODES];
	char first_error[SMTP_REPLY_TEXT_MAX + 32];
	char first_conn_error[160];
	bool pipelining_refused;    /* the server's EHLO did not offer PIPELINING */
	struct hist *lat;
	/* time (CLOCK_MONOTONIC ns) */
	uint64_t now, t0, t_last, t_stop_new, t_hard, t_abort_end;
	bool stop_new, time_limit_hit, aborted;
	double tokens;
	uint64_t t_tokens;
	/* --idle-hold */
	bool holding, held;
	uint64_t t_hold_end;
	unsigned established;
	unsigned ehlo_ok;           /* connections that got as far as the EHLO's 250 */
	uint64_t claimed;           /* --per-conn: the shares of the live connections */
	uint64_t connects;          /* connections started (more than -c with --per-conn) */
	/* --starttls */
	struct net_tls_ctx *tls_ctx;
	uint64_t handshakes;        /* completed */
	struct hist *hs;            /* connect to the handshake's end */
	bool debug;                 /* RINGBLAST_DEBUG: state changes on stderr */
	/* progress line */
	bool progress, progress_shown;
	uint64_t t_progress, ok_progress;
};

static volatile sig_atomic_t blast_signalled;

static void on_signal(int sig)
{
	blast_signalled = sig;
}

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * BLAST_NS + (uint64_t)ts.tv_nsec;
}

/* splitmix64: the deterministic per-connection PROXY source. */
static uint64_t splitmix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static void bconn_enter(struct bconn *c, enum bconn_state st)
{
	struct blast *b = c->b;
	if (c->st == st)
		return;
	if (b->debug)
		fprintf(stderr, "ringblast: conn=%u %s -> %s\n", c->id, bconn_state_names[c->st],
		        bconn_state_names[st]);
	b->nstate[c->st]--;
	b->nstate[st]++;
	c->st = st;
	if (c->share && (st == BCONN_ST_QUIT || st >= BCONN_ST_CLOSING)) {
		b->claimed -= c->share;     /* it will start no more transactions */
		c->share = 0;
	}
	if (st == BCONN_ST_DONE)
		b->live--;
	else if (st == BCONN_ST_CLOSING && c->has_stream)
		net_stream_abort(&c->s);        /* released (-> DONE) once the ring lets go */
}

static void count_error(struct blast *b, unsigned code, const char *text)
{
	if (code >= BLAST_ERR_NCODES)
		code = BLAST_ERR_PROTOCOL;
	b->errs[code]++;
	if (!b->first_error[0] && text)
		snprintf(b->first_error, sizeof b->first_error, "%s", text);
}

static void conn_error(struct blast *b, const struct bconn *c, const char *what)
{
	b->conn_errors++;
	if (!b->first_conn_error[0])
		snprintf(b->first_conn_error, sizeof b->first_conn_error, "connection %u: %s", c->id,
		         what);
}

static void bconn_send(struct bconn *c, const void *p, size_t n)
{
	if (c->st == BCONN_ST_CLOSING)
		return;
	if (net_stream_write(&c->s, p, n) < 0) {
		conn_error(c->b, c, "out of memory");
		bconn_enter(c, BCONN_ST_CLOSING);
	}
}

static void bconn_quit(struct bconn *c)
{
	bconn_send(c, "QUIT\r\n", 6);
	if (c->st != BCONN_ST_CLOSING)
		bconn_enter(c, BCONN_ST_QUIT);
}

static bool bconn_in_txn(const struct bconn *c)
{
	return c->st == BCONN_ST_ENVELOPE || c->st == BCONN_ST_BODY || c->st == BCONN_ST_FINAL;
}

/* Connected or connecting, not yet ready for mail. */
static bool bconn_in_setup(const struct bconn *c)
{
	return c->st == BCONN_ST_GREETING || c->st == BCONN_ST_EHLO ||
	       c->st == BCONN_ST_STARTTLS || c->st == BCONN_ST_HANDSHAKE;
}

static unsigned blast_in_setup(const struct blast *b)
{
	return b->nstate[BCONN_ST_GREETING] + b->nstate[BCONN_ST_EHLO] +
	       b->nstate[BCONN_ST_STARTTLS] + b->nstate[BCONN_ST_HANDSHAKE];
}

/* EHLO, and the STARTTLS keyword looked for anew in its reply. */
static void bconn_ehlo(struct bconn *c)
{
	c->kw_pos = 0;
	c->kw_match = 1;
	c->kw_starttls = 0;
	bconn_send(c, BLAST_EHLO, sizeof BLAST_EHLO - 1);
	if (c->st != BCONN_ST_CLOSING)
		bconn_enter(c, BCONN_ST_EHLO);
}

/* The octets of an EHLO reply as they come: does a line say STARTTLS ("250-STARTTLS",
 * "250 STARTTLS", any case, alone or followed by a space)? Resumable across offers: only
 * the position in the line and whether it still matches are kept. */
static void ehlo_scan(struct bconn *c, const uint8_t *p, size_t n)
{
	static const char kw[] = "STARTTLS";
	for (size_t i = 0; i < n; i++) {
		uint8_t ch = p[i];
		if (ch == '\n') {
			if (c->kw_pos >= 12 && c->kw_match)
				c->kw_starttls = 1;
			c->kw_pos = 0;
			c->kw_match = 1;
			continue;
		}
		unsigned pos = c->kw_pos;
		if (pos >= 4 && pos < 12) {             /* after "250-" */
			uint8_t up = ch >= 'a' && ch <= 'z' ? (uint8_t)(ch - 'a' + 'A') : ch;
			if (up != (uint8_t)kw[pos - 4])
				c->kw_match = 0;
		} else if (pos == 12 && ch != ' ' && ch != '\r') {
			c->kw_match = 0;                    /* STARTTLSX */
		}
		if (pos < 13)
			c->kw_pos++;
	}
}

/* The transaction's first failure decides its class. */
static void txn_fail(struct bconn *c, unsigned code, const char *text)
{
	if (c->fail)
		return;
	c->fail = code;
	if (!c->b->first_error[0] && text)
		snprintf(c->b->first_error, sizeof c->b->first_error, "%s", text);
}

/* Count the transaction that just ended. */
static void txn_record(struct bconn *c)
{
	struct blast *b = c->b;
	b->t_last = b->now;
	if (c->fail) {
		b->failed++;
		count_error(b, c->fail, NULL);
		return;
	}
	b->ok++;
	hist_record(b->lat, b->now - c->t_dot);
}

static void txn_start(struct bconn *c)
{
	struct blast *b = c->b;
	unsigned r = b->o.rcpts;
	if (!c->hdr) {
		c->hdr = malloc(b->hdr_len);
		if (!c->hdr) {
			conn_error(b, c, "out of memory");
			bconn_enter(c, BCONN_ST_CLOSING);
			return;
		}
		memcpy(c->hdr, b->hdr_tmpl, b->hdr_len);
	}
	char seq[17];
	snprintf(seq, sizeof seq, "%016" PRIx64, ++b->seq);
	memcpy(c->hdr + b->seq_off, seq, 16);
	b->started++;
	c->txns++;
	if (c->share) {
		c->share--;
		b->claimed--;
	}
	c->replies = c->rcpt_ok = c->fail = 0;
	c->t_dot = 0;
	bconn_enter(c, BCONN_ST_ENVELOPE);
	size_t end = c->pipelining ? b->cmd_off[r + 2] : b->cmd_off[1];
	bconn_send(c, b->group, end);
}

/* Ready for the next transaction: start one, wait for a token, or say QUIT. */
static void bconn_next(struct bconn *c)
{
	struct blast *b = c->b;
	if (b->o.idle_hold) {
		bconn_enter(c, BCONN_ST_HOLD);
		return;
	}
	if (b->stop_new || b->started >= b->o.messages) {
		bconn_quit(c);
		return;
	}
	if (b->o.per_conn && c->txns >= b->o.per_conn) {
		c->recycle = 1;                 /* its share is sent: a new connection takes over */
		bconn_quit(c);
		return;
	}
	if (b->o.rate > 0) {
		if (!b->wait_head && b->tokens >= 1.0) {
			b->tokens -= 1.0;
		} else {
			bconn_enter(c, BCONN_ST_READY);
			c->waiting = 1;
			c->wait_next = NULL;
			if (b->wait_tail)
				b->wait_tail->wait_next = c;
			else
				b->wait_head = c;
			b->wait_tail = c;
			return;
		}
	}
	txn_start(c);
}

/* After a transaction: RSET if it failed (whatever state the server kept), else go on. */
static void txn_end(struct bconn *c)
{
	txn_record(c);
	if (c->fail) {
		bconn_send(c, "RSET\r\n", 6);
		if (c->st != BCONN_ST_CLOSING)
			bconn_enter(c, BCONN_ST_RSET);
		return;
	}
	bconn_next(c);
}

static void envelope_reply(struct bconn *c, const struct smtp_reply *r)
{
	struct blast *b = c->b;
	unsigned n = b->o.rcpts, i = c->replies++;
	bool good = r->code / 100 == 2;
	if (i == n + 1) {                       /* DATA */
		if (r->code == 354) {
			bconn_enter(c, BCONN_ST_BODY);
			if (net_stream_write_ref(&c->s, c->hdr, b->hdr_len) < 0 ||
			    net_stream_write_ref(&c->s, b->body, b->body_len) < 0) {
				conn_error(b, c, "out of memory");
				txn_fail(c, BLAST_ERR_DROPPED, NULL);
				txn_record(c);
				bconn_enter(c, BCONN_ST_CLOSING);
				return;
			}
			c->t_dot = mono_ns();
			bconn_enter(c, BCONN_ST_FINAL);
			return;
		}
		txn_fail(c, r->code, r->text);
		txn_end(c);
		return;
	}
	if (!good)
		txn_fail(c, r->code, r->text);
	else if (i > 0)
		c->rcpt_ok++;
	if (c->pipelining)
		return;
	/* One command per round trip: MAIL refused or no recipient left ends it here. */
	if ((i == 0 && !good) || (i == n && c->rcpt_ok == 0)) {
		txn_end(c);
		return;
	}
	bconn_send(c, b->group + b->cmd_off[i + 1], b->cmd_off[i + 2] - b->cmd_off[i + 1]);
}

/* The session is over before any transaction (greeting, EHLO) or between them. */
static void session_refused(struct bconn *c, const struct smtp_reply *r)
{
	count_error(c->b, r->code, r->text);
	bconn_enter(c, BCONN_ST_CLOSING);
}

/* --starttls, the first EHLO answered: STARTTLS if offered, else an error and QUIT. */
static void tls_ask(struct bconn *c)
{
	if (!c->kw_starttls) {
		count_error(c->b, BLAST_ERR_NO_STARTTLS, "STARTTLS: not offered in the EHLO reply");
		bconn_quit(c);
		return;
	}
	bconn_send(c, BLAST_STARTTLS, sizeof BLAST_STARTTLS - 1);
	if (c->st != BCONN_ST_CLOSING)
		bconn_enter(c, BCONN_ST_STARTTLS);
}

/* The 220 to STARTTLS: the stream speaks TLS from now on. The caller drops the rest of
 * the offer (plaintext behind the 220). */
static void tls_begin(struct bconn *c)
{
	struct blast *b = c->b;
	struct net_tls *t = net_tls_new(b->tls_ctx, NULL);
	if (!t) {
		conn_error(b, c, "out of memory for TLS");
		bconn_enter(c, BCONN_ST_CLOSING);
		return;
	}
	smtp_reply_parser_reset(&c->rp);
	bconn_enter(c, BCONN_ST_HANDSHAKE);
	net_stream_tls(&c->s, t);           /* the ClientHello goes out at the next flush */
}

static void bconn_reply(struct bconn *c, const struct smtp_reply *r)
{
	struct blast *b = c->b;
	if (r->code == 421 && c->st != BCONN_ST_QUIT) {   /* the server closes the session */
		if (bconn_in_txn(c)) {
			txn_fail(c, r->code, r->text);
			txn_record(c);
		} else if (c->st != BCONN_ST_CLOSING) {
			count_error(b, r->code, r->text);
		}
		bconn_enter(c, BCONN_ST_CLOSING);
		return;
	}
	switch (c->st) {
	case BCONN_ST_GREETING:
		if (r->code != 220) {
			session_refused(c, r);
			return;
		}
		bconn_ehlo(c);
		return;
	case BCONN_ST_EHLO:
		if (r->code != 250) {
			session_refused(c, r);
			return;
		}
		if (b->o.starttls && !c->tls_up) {
			tls_ask(c);
			return;
		}
		b->ehlo_ok++;
		c->pipelining = b->o.pipelining && r->pipelining;
		if (b->o.pipelining && !r->pipelining)
			b->pipelining_refused = true;   /* RFC 2920: not without the keyword */
		bconn_next(c);
		return;
	case BCONN_ST_STARTTLS:
		if (r->code != 220) {
			char msg[SMTP_REPLY_TEXT_MAX + 16];
			snprintf(msg, sizeof msg, "STARTTLS: %s", r->text);
			count_error(b, r->code, msg);
			bconn_quit(c);
			return;
		}
		tls_begin(c);
		return;
	case BCONN_ST_ENVELOPE:
		envelope_reply(c, r);
		return;
	case BCONN_ST_BODY:
	case BCONN_ST_FINAL:
		if (r->code != 250)
			txn_fail(c, r->code, r->text);
		txn_end(c);
		return;
	case BCONN_ST_RSET:
		if (r->code / 100 != 2) {
			session_refused(c, r);
			return;
		}
		bconn_next(c);
		return;
	case BCONN_ST_READY:
	case BCONN_ST_HANDSHAKE:
	case BCONN_ST_HOLD:                     /* nothing asked: a reply out of turn */
		session_refused(c, r);
		return;
	case BCONN_ST_QUIT:
		bconn_enter(c, BCONN_ST_CLOSING);
		return;
	case BCONN_ST_NONE:
	case BCONN_ST_CLOSING:
	case BCONN_ST_DONE:
	case BCONN_ST_COUNT:
		return;
	}
}

/* The connection ended under us: EOF (res 0) or an error (-errno). */
static void bconn_lost(struct bconn *c, int res, const char *what)
{
	struct blast *b = c->b;
	char msg[128];
	switch (c->st) {
	case BCONN_ST_CLOSING:
	case BCONN_ST_DONE:
		return;
	case BCONN_ST_QUIT:                     /* the server may close before its 221 */
		bconn_enter(c, BCONN_ST_CLOSING);
		return;
	default:
		break;
	}
	if (res == 0)
		snprintf(msg, sizeof msg, "%s: closed by the server in state %s", what,
		         bconn_state_names[c->st]);
	else
		snprintf(msg, sizeof msg, "%s: %s (state %s)", what, strerror(-res),
		         bconn_state_names[c->st]);
	conn_error(b, c, msg);
	if (bconn_in_txn(c)) {
		txn_fail(c, BLAST_ERR_DROPPED, NULL);
		txn_record(c);
	}
	bconn_enter(c, BCONN_ST_CLOSING);
}

static void bconn_input(struct bconn *c, const uint8_t *p, size_t n)
{
	struct blast *b = c->b;
	while (n > 0 && c->st != BCONN_ST_CLOSING) {
		struct smtp_reply r;
		size_t used = 0;
		const char *err = NULL;
		switch (smtp_reply_feed(&c->rp, p, n, &used, &r, &err)) {
		case SMTP_REPLY_AGAIN:
			if (b->o.starttls && c->st == BCONN_ST_EHLO)
				ehlo_scan(c, p, n);
			return;
		case SMTP_REPLY_ERR: {
			char msg[96];
			snprintf(msg, sizeof msg, "protocol: %s", err);
			conn_error(b, c, msg);
			if (bconn_in_txn(c)) {
				txn_fail(c, BLAST_ERR_PROTOCOL, NULL);
				txn_record(c);
			}
			bconn_enter(c, BCONN_ST_CLOSING);
			return;
		}
		case SMTP_REPLY_OK:
			if (b->o.starttls && c->st == BCONN_ST_EHLO)
				ehlo_scan(c, p, used);
			b->now = mono_ns();
			bconn_reply(c, &r);
			if (c->st == BCONN_ST_HANDSHAKE)
				return;                 /* behind the 220: plaintext, dropped */
			p += used;
			n -= used;
			break;
		}
	}
}

static struct bconn *bconn_of(struct net_stream *st)
{
	return (struct bconn *)(void *)((char *)st - offsetof(struct bconn, s));
}

static size_t bconn_stream_input(struct net_stream *st, const uint8_t *p, size_t n)
{
	bconn_input(bconn_of(st), p, n);
	return n;
}

static void bconn_stream_lost(struct net_stream *st, int res)
{
	struct bconn *c = bconn_of(st);
	char what[128];
	if (c->st == BCONN_ST_HANDSHAKE) {      /* --starttls: the handshake failed or was cut */
		if (res == -EPROTO && st->tls)
			snprintf(what, sizeof what, "TLS handshake: %s", net_tls_error(st->tls));
		else if (res == 0)
			snprintf(what, sizeof what, "TLS handshake: closed by the server");
		else
			snprintf(what, sizeof what, "TLS handshake: %s", strerror(-res));
		count_error(c->b, BLAST_ERR_TLS, what);
		bconn_enter(c, BCONN_ST_CLOSING);
		return;
	}
	if (res == -EPROTO && st->tls) {
		snprintf(what, sizeof what, "TLS (%s)", net_tls_error(st->tls));
		bconn_lost(c, res, what);
		return;
	}
	bconn_lost(c, res, res == -EPIPE ? "send" : "recv");
}

/* --starttls: the handshake is done; EHLO again, over TLS. */
static void bconn_stream_secure(struct net_stream *st)
{
	struct bconn *c = bconn_of(st);
	struct blast *b = c->b;
	if (c->st != BCONN_ST_HANDSHAKE)
		return;
	b->now = mono_ns();
	b->handshakes++;
	hist_record(b->hs, b->now - c->t_connect);
	c->tls_up = 1;
	bconn_ehlo(c);
}

static void bconn_recycle(struct bconn *c);

static void bconn_stream_release(struct net_stream *st)
{
	struct bconn *c = bconn_of(st);
	c->has_stream = 0;
	free(c->hdr);
	c->hdr = NULL;
	if (c->st != BCONN_ST_DONE)
		bconn_enter(c, BCONN_ST_DONE);
	bconn_recycle(c);
}

static const struct net_stream_ops bconn_stream_ops = {
	.input = bconn_stream_input,
	.lost = bconn_stream_lost,
	.release = bconn_stream_release,
	.secure = bconn_stream_secure,
};

/* The PROXY header of connection c: source a pseudo-random host of --proxy-src (fixed
 * seed: the same run gives the same sources), destination the server. */
static int proxy_header(struct blast *b, struct bconn *c, uint8_t *out, size_t cap)
{
	const struct blast_cidr *net = &b->o.proxy_src;
	unsigned bits = net->family == AF_INET ? 32 : 128, nbytes = bits / 8;
	uint8_t rnd[16];
	for (unsigned i = 0; i < 16; i += 8) {
		uint64_t x = splitmix64(0x72696e67626c7374ull + (uint64_t)c->id * 2 + i / 8);
		memcpy(rnd + i, &x, 8);
	}
	struct pp_addr src, dst;
	memset(&src, 0, sizeof src);
	memset(&dst, 0, sizeof dst);
	uint8_t host[16];
	memcpy(host, net->addr, nbytes);
	bool all0 = true, all1 = true;
	for (unsigned i = net->prefix; i < bits; i++) {
		uint8_t m = (uint8_t)(0x80u >> (i % 8));
		if (rnd[i / 8] & m) {
			host[i / 8] |= m;
			all0 = false;
		} else {
			all1 = false;
		}
	}
	/* An IPv4 network of 4+ addresses: not its network or broadcast address. */
	if (net->family == AF_INET && net->prefix <= 30 && (all0 || all1))
		host[3] ^= 1;
	src.port = (uint16_t)(1024 + splitmix64(~(uint64_t)c->id) % 64512u);
	enum pp_family fam;
	const struct sockaddr_storage *sa = &b->o.server;
	bool srv6 = sa->ss_family == AF_INET6;
	if (srv6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
		memcpy(dst.ip, &s6->sin6_addr, 16);
		dst.port = ntohs(s6->sin6_port);
	} else {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
		memcpy(dst.ip, &s4->sin_addr, 4);
		dst.port = ntohs(s4->sin_port);
	}
	if (net->family == AF_INET && !srv6) {
		fam = PP_AF_INET;
		memcpy(src.ip, host, 4);
	} else if (net->family == AF_INET6 && srv6) {
		fam = PP_AF_INET6;
		memcpy(src.ip, host, 16);
	} else {                            /* mixed: both as IPv6, the IPv4 one mapped */
		fam = PP_AF_INET6;
		static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
		if (net->family == AF_INET) {
			memcpy(src.ip, mapped, 12);
			memcpy(src.ip + 12, host, 4);
		} else {
			memcpy(src.ip, host, 16);
			memmove(dst.ip + 12, dst.ip, 4);
			memcpy(dst.ip, mapped, 12);
		}
	}
	size_t n = b->o.proxy == BLAST_PROXY_V1
	         ? pp_build_v1(out, cap, fam, &src, &dst)
	         : pp_build_v2(out, cap, false, fam, &src, &dst, NULL, 0, false);
	return n > 0 ? (int)n : -1;
}

static void bconn_start(struct blast *b, struct bconn *c)
{
	const struct sockaddr_storage *sa = &b->o.server;
	c->t_connect = mono_ns();
	c->tls_up = c->recycle = 0;
	c->txns = 0;
	smtp_reply_parser_reset(&c->rp);
	int fd = net_connect_start(sa, b->o.server_len, NULL, 0);
	b->live++;
	b->connects++;
	if (fd < 0) {
		char msg[96];
		snprintf(msg, sizeof msg, "connect: %s", strerror(-fd));
		conn_error(b, c, msg);
		bconn_enter(c, BCONN_ST_DONE);
		return;
	}
	net_stream_init(&c->s, &b->loop, fd, &bconn_stream_ops);
	net_stream_bulk(&c->s, true);       /* replies only: read them as they come */
	c->has_stream = 1;
	c->share = b->o.per_conn;
	b->claimed += c->share;
	bconn_enter(c, BCONN_ST_GREETING);
	net_stream_start(&c->s);        /* the recv reports the greeting, or the connect error */
	if (b->o.proxy != BLAST_PROXY_NONE) {
		uint8_t hdr[PP_V1_MAX + 64];
		int n = proxy_header(b, c, hdr, sizeof hdr);
		if (n < 0) {
			conn_error(b, c, "PROXY header: cannot build it");
			bconn_enter(c, BCONN_ST_CLOSING);
			return;
		}
		bconn_send(c, hdr, (size_t)n);  /* the ring sends it once connected */
	}
}

/* --per-conn: a connection that said QUIT after its share is replaced (from its
 * release, in the loop's flush: the new stream is flushed in the same pass) while
 * transactions remain that the shares of the live connections do not cover. */
static void bconn_recycle(struct bconn *c)
{
	struct blast *b = c->b;
	if (!c->recycle)
		return;
	c->recycle = 0;
	if (b->stop_new || b->aborted || b->started + b->claimed >= b->o.messages)
		return;
	bconn_start(b, c);
}

/* ---- the message --------------------------------------------------------------------- */

static int build_message(struct blast *b, char *err, size_t errlen)
{
	const struct blast_opts *o = &b->o;
	char date[64];
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S +0000", &tm);
	char *h = NULL;
	int n = asprintf(&h,
	                 "Message-ID: <0000000000000000.%08x@" BLAST_MSGID_DOMAIN ">\r\n"
	                 "Date: %s\r\n"
	                 "From: <%s>\r\n"
	                 "To: <rcpt1@%s>\r\n"
	                 "Subject: ringblast test message, %zu octets\r\n"
	                 "MIME-Version: 1.0\r\n"
	                 "Content-Type: text/plain; charset=us-ascii\r\n"
	                 "\r\n",
	                 b->run_id, date, o->from, o->to_domain, o->size);
	if (n < 0)
		return snprintf(err, errlen, "out of memory"), -1;
	b->hdr_tmpl = h;
	b->hdr_len = (size_t)n;
	b->seq_off = strlen("Message-ID: <");
	if (o->size < b->hdr_len + 3) {
		snprintf(err, errlen, "-l: %zu octets cannot hold the headers (%zu octets) and a "
		         "line of text", o->size, b->hdr_len);
		return -1;
	}
	/* The body: lines of 76 characters and CRLF; the last one or two shorter so that the
	 * whole message is exactly -l octets. No line starts with '.': no dot-stuffing. */
	size_t blen = o->size - b->hdr_len;
	size_t full = blen / 78, rem = blen % 78;
	size_t nlines = full + 2;
	size_t *len = calloc(nlines, sizeof *len);
	b->body = malloc(blen + 3);
	if (!len || !b->body) {
		free(len);
		return snprintf(err, errlen, "out of memory"), -1;
	}
	size_t k = 0;
	for (size_t i = 0; i < full; i++)
		len[k++] = 78;
	if (rem >= 3) {
		len[k++] = rem;
	} else if (rem > 0) {               /* 1 or 2 octets: split the last full line in two */
		size_t t = 78 + rem;
		len[k - 1] = t / 2;
		len[k++] = t - t / 2;
	}
	static const char alpha[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 ringblast";
	size_t off = 0;
	for (size_t i = 0; i < k; i++) {
		size_t chars = len[i] - 2;
		for (size_t j = 0; j < chars; j++) {
			char ch = alpha[(i + j) % (sizeof alpha - 1)];
			if (j == 0 && ch == ' ')
				ch = 'x';
			b->body[off++] = ch;
		}
		b->body[off++] = '\r';
		b->body[off++] = '\n';
	}
	free(len);
	memcpy(b->body + off, ".\r\n", 3);
	b->body_len = off + 3;
	if (off != blen)
		abort();                        /* the sizes above do not add up */

	/* The envelope: MAIL FROM, RCPT TO for each, DATA; sent whole or one by one. */
	unsigned r = o->rcpts;
	struct buf g = { 0 };
	b->cmd_off = calloc(r + 3, sizeof *b->cmd_off);
	if (!b->cmd_off)
		return snprintf(err, errlen, "out of memory"), -1;
	char line[600];
	int ln = snprintf(line, sizeof line, "MAIL FROM:<%s> SIZE=%zu\r\n", o->from, o->size);
	int ret = buf_append(&g, line, (size_t)ln);
	for (unsigned i = 1; i <= r && ret == 0; i++) {
		b->cmd_off[i] = g.len;
		ln = snprintf(line, sizeof line, "RCPT TO:<rcpt%u@%s>\r\n", i, o->to_domain);
		ret = buf_append(&g, line, (size_t)ln);
	}
	b->cmd_off[r + 1] = g.len;
	if (ret == 0)
		ret = buf_append(&g, "DATA\r\n", 6);
	b->cmd_off[r + 2] = g.len;
	b->group = (char *)g.p;
	if (ret < 0)
		return snprintf(err, errlen, "out of memory"), -1;
	return 0;
}

/* ---- the run ------------------------------------------------------------------------- */

static void stop_starting(struct blast *b)
{
	b->stop_new = true;
	while (b->wait_head) {
		struct bconn *c = b->wait_head;
		b->wait_head = c->wait_next;
		c->waiting = 0;
		if (c->st == BCONN_ST_READY)
			bconn_quit(c);
	}
	b->wait_tail = NULL;
}

/* The overall bound, or a signal: whatever is in flight fails, every connection closes. */
static void abort_all(struct blast *b, enum blast_err why)
{
	b->aborted = true;
	b->t_abort_end = b->now + BLAST_QUIT_NS;
	stop_starting(b);
	for (unsigned i = 0; i < b->nstarted; i++) {
		struct bconn *c = &b->conns[i];
		if (c->st == BCONN_ST_DONE || c->st == BCONN_ST_CLOSING)
			continue;
		if (bconn_in_txn(c)) {
			txn_fail(c, why, NULL);
			txn_record(c);
		} else if (bconn_in_setup(c)) {
			conn_error(b, c, why == BLAST_ERR_TIMEOUT ? "not established within the time bound"
			                                          : "interrupted");
		}
		bconn_enter(c, BCONN_ST_CLOSING);
	}
}

static void refill_tokens(struct blast *b)
{
	if (b->o.rate <= 0)
		return;
	double cap = b->o.rate / 200.0;         /* 5 ms worth, at least one */
	if (cap < 1.0)
		cap = 1.0;
	b->tokens += (double)(b->now - b->t_tokens) * b->o.rate / (double)BLAST_NS;
	b->t_tokens = b->now;
	if (b->tokens > cap)
		b->tokens = cap;
	while (b->wait_head && b->tokens >= 1.0 && !b->stop_new) {
		struct bconn *c = b->wait_head;
		b->wait_head = c->wait_next;
		if (!b->wait_head)
			b->wait_tail = NULL;
		c->waiting = 0;
		if (c->st != BCONN_ST_READY)
			continue;
		if (b->started >= b->o.messages) {
			bconn_quit(c);
			continue;
		}
		b->tokens -= 1.0;
		txn_start(c);
	}
}

static void idle_hold_step(struct blast *b)
{
	if (!b->o.idle_hold || b->held)
		return;
	if (!b->holding) {
		bool settled = b->nstarted == b->o.connections && blast_in_setup(b) == 0;
		if (!settled && b->now < b->t_stop_new)
			return;
		b->holding = true;
		b->t_hold_end = b->now + (uint64_t)b->o.idle_hold * BLAST_NS;
		b->t_hard = b->t_hold_end + BLAST_DRAIN_NS;
		fprintf(stderr, "ringblast: %u of %u connections established, holding them idle "
		        "for %u s\n", b->nstate[BCONN_ST_HOLD], b->o.connections, b->o.idle_hold);
		return;
	}
	if (b->now < b->t_hold_end)
		return;
	b->held = true;
	b->established = b->nstate[BCONN_ST_HOLD];
	b->stop_new = true;
	for (unsigned i = 0; i < b->nstarted; i++) {
		struct bconn *c = &b->conns[i];
		if (c->st == BCONN_ST_HOLD)
			bconn_quit(c);
		else if (bconn_in_setup(c)) {
			conn_error(b, c, "not established by the end of the hold");
			bconn_enter(c, BCONN_ST_CLOSING);
		}
	}
}

static void progress(struct blast *b)
{
	if (!b->progress || b->now - b->t0 < BLAST_PROGRESS_AFTER_NS ||
	    b->now - b->t_progress < BLAST_NS)
		return;
	double dt = (double)(b->now - b->t_progress) / (double)BLAST_NS;
	uint64_t errs = 0;
	for (unsigned i = 0; i < BLAST_ERR_NCODES; i++)
		errs += b->errs[i];
	fprintf(stderr, "\r%7.1f s  %" PRIu64 " messages  %.0f/s  %" PRIu64 " errors  "
	        "%u connections\033[K", (double)(b->now - b->t0) / (double)BLAST_NS, b->ok,
	        (double)(b->ok - b->ok_progress) / dt, errs, b->live);
	b->t_progress = b->now;
	b->ok_progress = b->ok;
	b->progress_shown = true;
}

static uint64_t next_wait_ns(const struct blast *b)
{
	uint64_t wait = BLAST_TICK_NS;
	if (b->nstarted < b->o.connections && !b->stop_new)
		wait = 5 * BLAST_MS;                /* ramping up */
	if (b->wait_head && b->tokens < 1.0) {
		uint64_t t = (uint64_t)((1.0 - b->tokens) * (double)BLAST_NS / b->o.rate) + 1000;
		if (t < wait)
			wait = t;
	}
	return wait;
}

/* The loop's turn: time, signals and bounds, ramp-up, rate tokens, the idle hold,
 * progress; the wait until the next thing to do. */
static unsigned blast_turn(void *ctx)
{
	struct blast *b = ctx;
	b->now = mono_ns();
	if (blast_signalled && !b->aborted)
		abort_all(b, BLAST_ERR_INTERRUPTED);
	if (!b->o.idle_hold && !b->stop_new && b->now >= b->t_stop_new) {
		b->time_limit_hit = b->started < b->o.messages;
		stop_starting(b);
	}
	if (!b->aborted && b->now >= b->t_hard)
		abort_all(b, BLAST_ERR_TIMEOUT);
	if (b->aborted && b->now >= b->t_abort_end) {
		net_loop_quit(&b->loop);        /* the ring would not let go: give up */
		return 0;
	}
	/* Ramp up. */
	if (!b->stop_new && !b->aborted && !b->holding) {
		uint64_t allowed = BLAST_RAMP_BURST + (b->now - b->t0) * BLAST_RAMP_PER_S / BLAST_NS;
		while (b->nstarted < b->o.connections && b->nstarted < allowed)
			bconn_start(b, &b->conns[b->nstarted++]);
	}
	refill_tokens(b);
	idle_hold_step(b);
	progress(b);
	if (b->live == 0 && (b->nstarted == b->o.connections || b->stop_new || b->aborted)) {
		net_loop_quit(&b->loop);
		return 0;
	}
	uint64_t wait = next_wait_ns(b);
	return (unsigned)((wait + 999) / 1000);      /* ns -> µs */
}

static const struct net_loop_hooks blast_hooks = { .turn = blast_turn };

static int run(struct blast *b)
{
	b->now = b->t0 = b->t_tokens = b->t_progress = mono_ns();
	b->t_stop_new = b->t0 + (uint64_t)b->o.seconds * BLAST_NS;
	b->t_hard = b->t_stop_new + BLAST_DRAIN_NS;
	b->tokens = 1.0;
	net_loop_run(&b->loop);
	if (b->progress_shown)
		fputs("\r\033[K", stderr);
	return 0;
}

/* ---- the report ---------------------------------------------------------------------- */

static void json_str(FILE *f, const char *s)
{
	putc('"', f);
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\')
			fprintf(f, "\\%c", ch);
		else if (ch < 0x20 || ch >= 0x7f)
			fprintf(f, "\\u%04x", ch);
		else
			putc(ch, f);
	}
	putc('"', f);
}

static void err_key(unsigned i, char *buf, size_t cap)
{
	if (i < sizeof blast_err_names / sizeof blast_err_names[0] && blast_err_names[i])
		snprintf(buf, cap, "%s", blast_err_names[i]);
	else
		snprintf(buf, cap, "%u", i);
}

static int report(struct blast *b)
{
	const struct blast_opts *o = &b->o;
	uint64_t end = b->t_last > b->t0 ? b->t_last : b->now;
	if (o->idle_hold)
		end = b->now;
	double secs = (double)(end - b->t0) / (double)BLAST_NS;
	double mps = secs > 0 ? (double)b->ok / secs : 0;
	uint64_t nerr = 0;
	for (unsigned i = 0; i < BLAST_ERR_NCODES; i++)
		nerr += b->errs[i];
	const double ms = (double)BLAST_MS;
	double p50 = (double)hist_percentile(b->lat, 50) / ms;
	double p99 = (double)hist_percentile(b->lat, 99) / ms;
	double p999 = (double)hist_percentile(b->lat, 99.9) / ms;
	double lmin = (double)hist_min(b->lat) / ms, lmax = (double)hist_max(b->lat) / ms;
	double lmean = hist_mean(b->lat) / ms;
	double hs_p50 = (double)hist_percentile(b->hs, 50) / ms;
	double hs_p99 = (double)hist_percentile(b->hs, 99) / ms;
	double hs_p999 = (double)hist_percentile(b->hs, 99.9) / ms;
	double hs_min = (double)hist_min(b->hs) / ms, hs_max = (double)hist_max(b->hs) / ms;
	double hs_mean = hist_mean(b->hs) / ms;
	bool incomplete = !o->idle_hold && b->started < o->messages && !o->seconds_given;
	if (o->idle_hold && b->established < o->connections)
		incomplete = true;
	int rc = (nerr == 0 && b->failed == 0 && b->conn_errors == 0 && !incomplete && !b->aborted)
	         ? BLAST_EXIT_OK : BLAST_EXIT_FAIL;

	if (o->json) {
		FILE *f = stdout;
		fputs("{\"server\":", f);
		json_str(f, o->server_text);
		fprintf(f, ",\"connections\":%u,\"established\":%u,\"requested\":%" PRIu64
		        ",\"started\":%" PRIu64 ",\"messages\":%" PRIu64 ",\"failed\":%" PRIu64
		        ",\"seconds\":%.3f,\"messages_per_s\":%.1f,\"rcpts\":%u,\"size\":%zu"
		        ",\"pipelining\":%s,\"proxy\":", o->connections,
		        o->idle_hold ? b->established : b->ehlo_ok,
		        o->messages, b->started, b->ok, b->failed, secs, mps, o->rcpts, o->size,
		        o->pipelining && !b->pipelining_refused ? "true" : "false");
		if (o->proxy == BLAST_PROXY_NONE)
			fputs("null", f);
		else
			fputs(o->proxy == BLAST_PROXY_V1 ? "\"v1\"" : "\"v2\"", f);
		if (o->rate > 0)
			fprintf(f, ",\"rate\":%.3f", o->rate);
		else
			fputs(",\"rate\":null", f);
		if (o->idle_hold)
			fprintf(f, ",\"idle_hold_s\":%u", o->idle_hold);
		if (o->per_conn)
			fprintf(f, ",\"per_conn\":%" PRIu64 ",\"connects\":%" PRIu64, o->per_conn,
			        b->connects);
		if (o->starttls)
			fprintf(f, ",\"starttls\":true,\"handshakes\":%" PRIu64 ",\"handshake_ms\":"
			        "{\"count\":%" PRIu64 ",\"p50\":%.3f,\"p99\":%.3f,\"p999\":%.3f,"
			        "\"min\":%.3f,\"mean\":%.3f,\"max\":%.3f}", b->handshakes,
			        hist_count(b->hs), hs_p50, hs_p99, hs_p999, hs_min, hs_mean, hs_max);
		fprintf(f, ",\"latency_ms\":{\"count\":%" PRIu64 ",\"p50\":%.3f,\"p99\":%.3f,"
		        "\"p999\":%.3f,\"min\":%.3f,\"mean\":%.3f,\"max\":%.3f}",
		        hist_count(b->lat), p50, p99, p999, lmin, lmean, lmax);
		fputs(",\"errors\":{", f);
		bool first = true;
		for (unsigned i = 0; i < BLAST_ERR_NCODES; i++) {
			if (!b->errs[i])
				continue;
			char key[16];
			err_key(i, key, sizeof key);
			fprintf(f, "%s\"%s\":%" PRIu64, first ? "" : ",", key, b->errs[i]);
			first = false;
		}
		fprintf(f, "},\"error_count\":%" PRIu64 ",\"connection_errors\":%" PRIu64, nerr,
		        b->conn_errors);
		fputs(",\"first_error\":", f);
		if (b->first_error[0])
			json_str(f, b->first_error);
		else
			fputs("null", f);
		fputs(",\"first_connection_error\":", f);
		if (b->first_conn_error[0])
			json_str(f, b->first_conn_error);
		else
			fputs("null", f);
		fprintf(f, ",\"time_limit_reached\":%s,\"aborted\":%s,\"ring\":",
		        b->time_limit_hit ? "true" : "false", b->aborted ? "true" : "false");
		json_str(f, b->loop.ring_desc ? b->loop.ring_desc : "none");
		fprintf(f, ",\"enobufs\":%" PRIu64 ",\"exit\":%d}\n", b->loop.enobufs, rc);
		fflush(f);
		return rc;
	}

	FILE *f = stdout;
	if (o->idle_hold) {
		fprintf(f, "established: %u of %u connections, held idle %u s\n", b->established,
		        o->connections, o->idle_hold);
	} else {
		fprintf(f, "messages: %" PRIu64 " ok, %" PRIu64 " failed, of %" PRIu64 " (%u "
		        "connections, %u rcpt%s, %zu octets, %s%s%s)\n", b->ok, b->failed, o->messages,
		        o->connections, o->rcpts, o->rcpts == 1 ? "" : "s", o->size,
		        o->pipelining && !b->pipelining_refused ? "pipelining" : "no pipelining",
		        o->proxy == BLAST_PROXY_V1 ? ", PROXY v1" : o->proxy == BLAST_PROXY_V2
		        ? ", PROXY v2" : "", o->starttls ? ", STARTTLS" : "");
		fprintf(f, "seconds: %.3f\n", secs);
		fprintf(f, "messages/s: %.1f\n", mps);
		fprintf(f, "latency ms (end of DATA to 250): p50 %.3f  p99 %.3f  p999 %.3f  "
		        "(min %.3f  mean %.3f  max %.3f)\n", p50, p99, p999, lmin, lmean, lmax);
		if (o->per_conn)
			fprintf(f, "connections made: %" PRIu64 " (%" PRIu64 " message%s each at most)\n",
			        b->connects, o->per_conn, o->per_conn == 1 ? "" : "s");
	}
	if (o->starttls)
		fprintf(f, "TLS handshakes: %" PRIu64 "; connect to secure ms: p50 %.3f  p99 %.3f  "
		        "p999 %.3f  (min %.3f  mean %.3f  max %.3f)\n", b->handshakes, hs_p50, hs_p99,
		        hs_p999, hs_min, hs_mean, hs_max);
	fprintf(f, "errors: %" PRIu64, nerr);
	if (nerr) {
		const char *sep = " (";
		for (unsigned i = 0; i < BLAST_ERR_NCODES; i++) {
			if (!b->errs[i])
				continue;
			char key[16];
			err_key(i, key, sizeof key);
			fprintf(f, "%s%s: %" PRIu64, sep, key, b->errs[i]);
			sep = ", ";
		}
		fputc(')', f);
	}
	fputc('\n', f);
	if (b->first_error[0])
		fprintf(f, "first error: %s\n", b->first_error);
	fprintf(f, "connection errors: %" PRIu64 "\n", b->conn_errors);
	if (b->first_conn_error[0])
		fprintf(f, "first connection error: %s\n", b->first_conn_error);
	if (b->pipelining_refused)
		fprintf(f, "note: the server did not offer PIPELINING: one command per round trip\n");
	if (b->time_limit_hit)
		fprintf(f, "note: time limit (%u s) reached after %" PRIu64 " of %" PRIu64
		        " transactions%s\n", o->seconds, b->started, o->messages,
		        o->seconds_given ? "" : " (the default bound: give -t to mean it)");
	if (b->aborted)
		fprintf(f, "note: aborted, transactions in flight counted as errors\n");
	fflush(f);
	return rc;
}

/* ---- main ---------------------------------------------------------------------------- */

static int raise_nofile(unsigned need, char *err, size_t errlen)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return 0;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
		getrlimit(RLIMIT_NOFILE, &rl);
	}
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < (rlim_t)need) {
		snprintf(err, errlen, "-c %u needs %u file descriptors, RLIMIT_NOFILE allows %llu",
		         need - 32, need, (unsigned long long)rl.rlim_cur);
		return -1;
	}
	return 0;
}

static void blast_fini(struct blast *b)
{
	/* The ring first: after it, the kernel holds nothing of what is freed below. */
	net_loop_fini(&b->loop);
	if (b->conns) {
		for (unsigned i = 0; i < b->o.connections; i++) {
			struct bconn *c = &b->conns[i];
			if (c->has_stream)
				net_stream_fini(&c->s);
			free(c->hdr);
		}
	}
	free(b->conns);
	free(b->hdr_tmpl);
	free(b->body);
	free(b->group);
	free(b->cmd_off);
	hist_free(b->lat);
	hist_free(b->hs);
	net_tls_ctx_free(b->tls_ctx);      /* after the streams: each filter holds a reference */
}

int main(int argc, char **argv)
{
	static struct blast blast;
	struct blast *b = &blast;
	char err[256];
	int rc = BLAST_EXIT_FAIL;

	switch (blast_opts_parse(argc, argv, &b->o, err, sizeof err)) {
	case BLAST_OPTS_OK:
		break;
	case BLAST_OPTS_HELP:
		fputs(blast_opts_usage(), stdout);
		return BLAST_EXIT_OK;
	case BLAST_OPTS_ERR:
		fprintf(stderr, "ringblast: %s\n(ringblast --help for the options)\n", err);
		return BLAST_EXIT_USAGE;
	}
	if (raise_nofile(b->o.connections + 32, err, sizeof err) < 0) {
		fprintf(stderr, "ringblast: %s\n", err);
		return BLAST_EXIT_USAGE;
	}
	b->run_id = (uint32_t)splitmix64((uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32));
	if (build_message(b, err, sizeof err) < 0) {
		fprintf(stderr, "ringblast: %s\n", err);
		rc = BLAST_EXIT_USAGE;
		goto fail;
	}
	b->lat = hist_new();
	b->hs = hist_new();
	b->conns = calloc(b->o.connections, sizeof *b->conns);
	if (!b->lat || !b->hs || !b->conns) {
		fprintf(stderr, "ringblast: out of memory\n");
		goto fail;
	}
	for (unsigned i = 0; i < b->o.connections; i++) {
		b->conns[i].b = b;
		b->conns[i].id = i;
	}
	b->nstate[BCONN_ST_NONE] = b->o.connections;
	if (b->o.starttls) {
		/* A client, no CA: any certificate is taken (what is measured is the handshake). */
		struct net_tls_conf tc = { .role = NET_TLS_CLIENT };
		b->tls_ctx = net_tls_ctx_new(&tc, err, sizeof err);
		if (!b->tls_ctx) {
			fprintf(stderr, "ringblast: TLS: %s\n", err);
			goto fail;
		}
	}

	struct net_loop_params lp = { .sq_entries = BLAST_RING_ENTRIES, .bufs = BLAST_BUFS,
	                              .buf_size = BLAST_BUF_SIZE };
	int ret = net_loop_init(&b->loop, &lp, &blast_hooks, b);
	if (ret < 0) {
		fprintf(stderr, "ringblast: io_uring: %s\n", strerror(-ret));
		goto fail;
	}
	/* The load generator does not hold its own handshakes back: the budget is for a
	 * server that serves established sessions meanwhile. */
	b->loop.tls_budget.per_turn = BLAST_TLS_BUDGET;
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	b->progress = isatty(STDERR_FILENO) && !getenv("RINGBLAST_NO_PROGRESS");
	b->debug = getenv("RINGBLAST_DEBUG") != NULL;

	if (run(b) < 0)
		goto fail;
	rc = report(b);
fail:
	blast_fini(b);
	return rc;
}
