/* core/deliver — see deliver.h. */
#include "core/deliver.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfg/config.h"
#include "core/log.h"
#include "core/tlsout.h"
#include "core/worker.h"
#include "net/connect.h"
#include "proto/proxy.h"

static void pump(struct dconn *d);
static void dconn_fail(struct dconn *d, const char *why, bool site_failure);
static void take_job(struct dconn *d);

static struct dconn *of_stream(struct net_stream *s)
{
	return (struct dconn *)((char *)s - offsetof(struct dconn, s));
}

static struct queue *site_queue(const struct dconn *d)
{
	return d->q;
}

/* relay= of its log lines: "host[ip]:port", and the source and proxy with egress. */
static const char *relay_of(const struct dconn *d)
{
	return d->relay_log[0] ? d->relay_log : d->relay;
}

/* What a delivery connection says of its proxy (core/egress, proto/health). Refused
 * connects and greetings are told at once. An unclear failure (connected, then closed or
 * timed out before the greeting: HAProxy closes when its own connect to the next hop
 * fails) and a cut (greeted, then lost under the first transaction) may be the
 * destination's doing as well as the proxy's: dead domains, tarpits, and hosts that hang
 * up on everyone are everyday mail, and any sender can pick them. Such a failure is told
 * (suspect()) only when the same site's mail went through another server of the pool: a
 * transaction ended through it within DELIVER_CUT_PROOF_MS before, or does after (the
 * site's latest suspect waits for it). A pool of one server never tells them: there is no
 * other to tell proxy and destination apart, nor to send the mail through. Told, they run
 * towards failure_threshold distinct sites (proto/health). */
static void suspect(struct dconn *d, enum egress_passive_kind kind, enum health_reason reason,
                    int code)
{
	struct queue_site *s = d->site;
	uint64_t now = site_queue(d)->loop->now_ms;
	if (s->done_ms && s->done_et == d->et && s->done_server != d->server &&
	    now - s->done_ms <= DELIVER_CUT_PROOF_MS) {
		egress_passive(d->q->w, d->et, d->server, d->si, kind, d->dest_key, reason, code);
		return;
	}
	s->sus_ms = now ? now : 1;
	s->sus_et = d->et;
	s->sus_server = d->server;
	s->sus_si = d->si;
	s->sus_kind = kind;
	s->sus_reason = reason;
	s->sus_code = code;
}

/* Got its greeting (ok) or failed before it; unclear: see suspect(). */
static void passive(struct dconn *d, bool ok, bool unclear, enum health_reason reason, int code)
{
	if (!d->proxied || d->greeted)
		return;
	if (unclear)
		suspect(d, EGRESS_PASSIVE_UNCLEAR, reason, code);
	else
		egress_passive(d->q->w, d->et, d->server, d->si,
		               ok ? EGRESS_PASSIVE_OK : EGRESS_PASSIVE_FAIL, d->dest_key, reason, code);
}

/* Greeted through a proxy, then lost under its first transaction: the proxy's doing or the
 * destination's. Towards the site's death it counts as an unclear failure does
 * (unclear_counts: a bad proxy does not make a site dead while another server works; its
 * job goes back in line, requeue_cut). */
static bool cut_through_proxy(const struct dconn *d)
{
	return d->proxied && d->greeted && !d->proven && d->job && d->started;
}

/* Greeted, then lost under its first transaction (err: the errno it was lost with,
 * ETIMEDOUT for a timeout, 0 for a plain close): a cut, a suspect (above). Not one lost
 * while it waited with no transaction begun, nor after a transaction ended on it, nor one
 * whose first job came more than DELIVER_CUT_IDLE_MS after its greeting (a proxy's idle
 * timeout may have closed it just as the job came). */
static void passive_cut(struct dconn *d, int err)
{
	if (cut_through_proxy(d) && d->job_at_once)
		suspect(d, EGRESS_PASSIVE_CUT, HEALTH_R_CUT, err);
}

/* A transaction ended through a proxy: the site's proof that the pool reaches it (a
 * suspect waiting for it through another server is told now; one through this server is
 * forgotten: the proxy carries the site's mail), and news for egress that the proxy
 * carries transactions (it ends its runs of unclear failures and cuts), at most once a
 * second a connection (a letter to the checker each). */
static void passive_done(struct dconn *d)
{
	struct queue_site *s = d->site;
	uint64_t now = site_queue(d)->loop->now_ms;
	if (!d->proxied)
		return;
	s->done_ms = now;
	s->done_et = d->et;
	s->done_server = d->server;
	if (s->sus_ms) {
		if (s->sus_server != d->server && s->sus_et == d->et &&
		    now - s->sus_ms <= DELIVER_CUT_PROOF_MS)
			egress_passive(d->q->w, s->sus_et, s->sus_server, s->sus_si,
			               (enum egress_passive_kind)s->sus_kind, d->dest_key,
			               (enum health_reason)s->sus_reason, s->sus_code);
		s->sus_ms = 0;
	}
	if (d->done_said_ms && now - d->done_said_ms < 1000)
		return;
	d->done_said_ms = now;
	egress_passive(d->q->w, d->et, d->server, d->si, EGRESS_PASSIVE_DONE, d->dest_key,
	               HEALTH_R_NONE, 0);
}

/* A key of a site, its source aside (FNV-1a over "transport/sitekey"), for egress's
 * unclear failures and cuts: the same site, the same key, whatever MX address of it a
 * connection went to (a domain whose three MX addresses close is one destination). */
static uint64_t dest_key(const struct queue_site *s)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t k = 0; k < s->base_len; k++)
		h = (h ^ (uint8_t)s->key[k]) * 0x100000001b3ull;
	return h;
}

/* Did d's connect complete (the proxy took the connection)? */
static bool connected(const struct dconn *d)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;
	return getpeername(d->s.fd, (struct sockaddr *)&ss, &len) == 0;
}

/* Does an unclear failure through a proxy count towards the site's dead_after? When only
 * one server is usable for the source (nothing to tell them apart), or when the site's
 * previous failure came through another server: a dead destination fails through every
 * proxy, a broken proxy through itself only (and egress takes it down on its own count),
 * so one proxy that closes every connection cannot make the site dead while another
 * works. */
static bool unclear_counts(struct dconn *d)
{
	struct queue_site *s = d->site;
	bool yes = s->fails == 0 || s->fail_server != d->server ||
	           egress_servers_usable(d->et, d->si) <= 1;
	s->fail_server = d->server;
	return yes;
}

static const struct config_transport *site_transport(const struct queue *q,
                                                    const struct queue_site *s)
{
	return config_transport_by_id(q->w->snap->cfg, s->transport);
}

/* ---- shaping: rates, concurrency feedback -------------------------------------------- */

static void on_kick(struct timer *t)
{
	deliver_kick((struct queue_site *)((char *)t - offsetof(struct queue_site, kick)));
}

static void on_kick_alarm(struct net_alarm *a)
{
	deliver_kick((struct queue_site *)((char *)a - offsetof(struct queue_site, kick_alarm)));
}

/* A rate's burst: up to a tenth of a second's worth, at least one. */
static uint32_t burst_of(const struct config_rate *r)
{
	uint64_t per_100ms = r->period_ms ? (uint64_t)r->events * 100u / r->period_ms : 0;
	return per_100ms > 1 ? (uint32_t)per_100ms : 1;
}

/* The transport's shaping, refined by the first `shaping` entry that matches one of the
 * site's host names (else its "default" entry), taken when the site is first kicked (a
 * reload applies to sites made after it). */
static void deliver_shape(struct queue *q, struct queue_site *s)
{
	if (s->shaped)
		return;
	const struct config *cfg = q->w->snap->cfg;
	const struct config_transport *t = site_transport(q, s);
	struct config_rate none = { 0, 0 };
	struct config_rate mr = t ? t->message_rate : none, cr = t ? t->connection_rate : none;
	s->shaped = true;
	s->kick.fire = on_kick;
	net_alarm_init(&s->kick_alarm, on_kick_alarm);
	s->initial = t ? t->initial_connections : DELIVER_INITIAL_WINDOW;
	s->dead_after = t ? t->dead_after : QUEUE_DEAD_AFTER;
	/* a `shaping` entry for the site's hosts refines the transport */
	const char *names[QUEUE_SITE_ADDRS];
	for (size_t i = 0; i < s->naddr; i++)
		names[i] = s->addr[i].name;
	const struct config_shaping *sh = config_shaping_for(cfg, names, s->naddr);
	if (sh) {
		if (sh->set & CONFIG_SH_MAX_CONNECTIONS)
			s->max_conns = sh->max_connections;
		if (sh->set & CONFIG_SH_INITIAL_CONNECTIONS)
			s->initial = sh->initial_connections;
		if (sh->set & CONFIG_SH_MAX_MESSAGES)
			s->max_msgs = sh->max_messages_per_connection;
		if (sh->set & CONFIG_SH_MESSAGE_RATE)
			mr = sh->message_rate;
		if (sh->set & CONFIG_SH_CONNECTION_RATE)
			cr = sh->connection_rate;
		char esc[300];
		log_info("event=site_shaping site=%s shaping=%s max_connections=%u initial=%u "
		         "max_messages_per_connection=%u", s->key,
		         log_escape(esc, sizeof esc, sh->site, strlen(sh->site)), s->max_conns,
		         s->initial < s->max_conns ? s->initial : s->max_conns, s->max_msgs);
	}
	rate_init(&s->msg_rate, mr.events, mr.period_ms, burst_of(&mr));
	rate_init(&s->conn_rate, cr.events, cr.period_ms, burst_of(&cr));
}

/* Kick the site again in ms: to the ms by an alarm (the wheel's ticks are 100 ms: at 10
 * a second, a tick late each time would halve a message_rate), else by the wheel. */
static void kick_later(struct queue *q, struct queue_site *s, uint64_t ms)
{
	if (!net_alarm_arm(q->loop, &s->kick_alarm, ms) && !timer_armed(&s->kick))
		timer_arm(&q->loop->wheel, &s->kick, ms ? ms : 1);
}

/* A rate says not yet: kick the site again when it will. The wait is measured from the
 * clock now, not from the start of the turn (rate_take saw that older time; its promise
 * holds for any later one). */
static void hold_back(struct queue *q, struct queue_site *s, const struct rate *r)
{
	kick_later(q, s, rate_wait_ms(r, timer_now_ms()));
}

/* QUIT goes out (idle, max_messages_per_connection, a stop): the connection no longer
 * counts against the site's limits while it waits for the 221, so a next hop that never
 * answers QUIT cannot hold the site's connections for the quit timeout; a replacement
 * may open at once when jobs are ready. */
static void dconn_quit(struct dconn *d)
{
	smtp_cli_quit(&d->cli);
	if (d->quitting)
		return;
	d->quitting = true;
	d->site->nquitting++;
	if (d->site->nready > 0 && !site_queue(d)->stopping)
		kick_later(site_queue(d), d->site, 0);
}

static unsigned window_of(struct queue_site *s)
{
	if (s->window == 0) {
		unsigned init = s->initial ? s->initial : DELIVER_INITIAL_WINDOW;
		s->window = s->max_conns < init ? s->max_conns : init;
	}
	if (s->window > s->max_conns)        /* a reload lowered the limit */
		s->window = s->max_conns;
	return s->window ? s->window : 1;
}

static void window_success(struct queue_site *s)
{
	unsigned w = window_of(s);
	if (w >= s->max_conns)
		return;
	if (++s->credit >= w) {
		s->credit = 0;
		s->window = w + 1;
	}
}

static void window_failure(struct queue_site *s)
{
	unsigned w = window_of(s);
	s->credit = 0;
	s->window = w > 1 ? w - 1 : 1;
}

/* Let go of the bodies the stream no longer needs (all of them when force: released). */
static void unpin(struct dconn *d, bool force)
{
	if (!force && net_stream_pending(&d->s) > 0)
		return;
	while (d->npins > 0) {
		struct queue_msg *m = d->pins[--d->npins];
		d->pins[d->npins] = NULL;
		queue_msg_unref(site_queue(d), m);
	}
}

/* The connection lets go of a job whose body is still being read: the read's completion
 * finds no connection and hands the job back to the site (deliver_job_body). */
static bool detach_waiting(struct dconn *d)
{
	if (!d->job || !d->waiting_body)
		return false;
	d->job = NULL;
	d->waiting_body = false;
	return true;
}

/* ---- TLS ------------------------------------------------------------------------------ */

/* The connection's TLS, from its transport's `tls`: the client context, and whether
 * STARTTLS is skipped (tls: none; or opportunistic towards a destination whose handshake
 * failed within TLSOUT_PLAIN_MS: plaintext then, as RFC 7435 allows). */
static void tls_setup(struct queue *q, struct queue_site *s, struct dconn *d, size_t i)
{
	/* mode and context from one table (core/tlsout), never the mode of one reload and the
	 * context of another; NULL context with `required`: fails at EHLO (said so) */
	d->tls_ctx = tlsout_ctx(s->transport, &d->tls_mode, &d->tls_gen);
	d->tls_skip = d->tls_mode == CONFIG_OUT_TLS_NONE;
	if (d->tls_skip)
		return;
	if (!q->tls_cache)
		q->tls_cache = calloc(1, sizeof *q->tls_cache);   /* NULL: no cache, no failure */
	snprintf(d->tls_name, sizeof d->tls_name, "%s", s->addr[i].name);
	d->tls_key = tlsout_key(s->transport ? s->transport : "", &s->addr[i].ss, d->tls_name,
	                        d->tls_gen, d->tls_mode);
	const struct tlsout_dest *e = tlsout_find(q->tls_cache, d->tls_key);
	if (d->tls_mode == CONFIG_OUT_TLS_OPPORTUNISTIC &&
	    (!d->tls_ctx || (e && e->plain_until_ms > q->loop->now_ms)))
		d->tls_skip = true;
}

/* A TLS failure: the handshake failed, timed out or was cut, or TLS was wanted and not
 * offered or refused. Opportunistic: the destination is spoken to in plaintext for
 * TLSOUT_PLAIN_MS (the next connection, which the site opens at once, goes plaintext)
 * and this failure is not the site's. required/verify: the site's failure like a refused
 * connection: after dead_after in a row its mail is deferred, never sent in plaintext. */
static void tls_failed(struct dconn *d, const char *reason)
{
	struct queue *q = site_queue(d);
	char why[700], esc[800];
	snprintf(why, sizeof why, "4.7.5 TLS handshake with %s failed: %s", d->relay, reason);
	bool opp = d->tls_mode == CONFIG_OUT_TLS_OPPORTUNISTIC;
	if (d->tls_offered) {
		/* It failed resuming a session: the server may speak another version now (one
		 * host of several behind a name, or upgraded; wolfSSL answers a TLS 1.2 server
		 * to a TLS 1.3 session with a record layer version error). Not held against it:
		 * the session goes, the next connection makes a full handshake. */
		struct tlsout_dest *e = tlsout_get(q->tls_cache, d->tls_key);
		bool v12 = e && e->sess_v12;
		if (e) {
			net_tls_session_free(e->sess);
			e->sess = NULL;
			if (v12)             /* (net_tls_ask_ticket: another server's ticket) */
				e->no_ticket = true;
		}
		log_warn("event=tls_failed site=%s relay=%s reason=\"%s\" note=\"resuming a session: "
		         "a full handshake on the next connection%s\"", d->site->key, d->relay,
		         log_escape_text(esc, sizeof esc, reason),
		         v12 ? ", without asking for a ticket" : "");
		dconn_fail(d, why, false);
		return;
	}
	if (opp) {
		struct tlsout_dest *e = tlsout_get(q->tls_cache, d->tls_key);
		if (e) {
			e->plain_until_ms = q->loop->now_ms + TLSOUT_PLAIN_MS;
			net_tls_session_free(e->sess);
			e->sess = NULL;
		}
	}
	log_warn("event=tls_failed site=%s relay=%s reason=\"%s\"%s", d->site->key, d->relay,
	         log_escape_text(esc, sizeof esc, reason),
	         opp ? " note=\"opportunistic: plaintext to it for the next hour\"" : "");
	dconn_fail(d, why, !opp && !d->proven);
}

/* TLS wanted and not to be had on this connection (required, verify): the site's failure. */
static void tls_refused(struct dconn *d, const char *why)
{
	char esc[800];
	log_warn("event=tls_failed site=%s relay=%s reason=\"%s\"", d->site->key, d->relay,
	         log_escape_text(esc, sizeof esc, why));
	dconn_fail(d, why, !d->proven);
}

/* EHLO was answered: STARTTLS when the transport wants TLS and it is not up yet. false:
 * the connection is ready for a job (plaintext, or TLS up); true: not (STARTTLS went out,
 * or the connection failed). Once TLS is up, its session is kept for the next
 * connection (for TLS 1.3 the ticket came before the EHLO reply). */
static bool tls_start(struct dconn *d)
{
	char why[700];
	if (d->cli.tls) {
		struct net_tls_session *ss = d->s.tls ? net_tls_session_get(d->s.tls) : NULL;
		tlsout_keep(site_queue(d)->tls_cache, d->tls_key, ss,
		            d->s.tls && strcmp(net_tls_version(d->s.tls), "TLSv1.2") == 0);
		return false;
	}
	if (d->tls_skip)
		return false;
	if (d->cli.caps.starttls && d->tls_ctx && smtp_cli_starttls(&d->cli) == 0)
		return true;
	if (d->cli.state != SMTP_CLI_ST_READY)
		return true;                    /* out of memory: FAIL follows */
	if (d->tls_mode == CONFIG_OUT_TLS_OPPORTUNISTIC)
		return false;                   /* not offered: plaintext */
	snprintf(why, sizeof why, "4.7.4 TLS is required, but was not offered by host %s",
	         d->relay);
	tls_refused(d, why);
	return true;
}

/* 220 to STARTTLS: the handshake starts now. The rest of the input offered with the 220
 * is plaintext sent before the handshake: dropped (on_input uses it all), never read
 * as a reply. A session kept for the destination is offered for resumption. */
static void tls_begin(struct dconn *d)
{
	struct net_tls *t = net_tls_new(d->tls_ctx, d->tls_name[0] ? d->tls_name : NULL);
	if (!t) {
		dconn_fail(d, "4.3.0 out of memory for TLS", false);
		return;
	}
	const struct tlsout_dest *e = tlsout_find(site_queue(d)->tls_cache, d->tls_key);
	if (!e || !e->no_ticket)
		net_tls_ask_ticket(t);
	if (e && e->sess) {
		net_tls_session_use(t, e->sess);
		d->tls_offered = true;
	}
	d->tls_began = true;
	net_stream_tls(&d->s, t);
}

static void on_secure(struct net_stream *s)
{
	struct dconn *d = of_stream(s);
	if (d->closing)
		return;
	d->tls_up = true;
	const char *ver = net_tls_version(s->tls), *cipher = net_tls_cipher(s->tls);
	if (!d->relay_log[0])
		snprintf(d->relay_log, sizeof d->relay_log, "%s", d->relay);
	size_t k = strlen(d->relay_log);
	snprintf(d->relay_log + k, sizeof d->relay_log - k, " tls=%s cipher=%s", ver, cipher);
	log_info("event=tls_out site=%s relay=%s version=%s cipher=%s verified=%s resumed=%s",
	         d->site->key, d->relay, ver, cipher, net_tls_verified(s->tls) ? "yes" : "no",
	         net_tls_resumed(s->tls) ? "yes" : "no");
	smtp_cli_tls_up(&d->cli);
	pump(d);
}

/* ---- timers ------------------------------------------------------------------------- */

/* What the connection waits for: the timer of a wait is armed once, when it begins, so a
 * server that trickles a reply an octet at a time cannot stretch it. */
static uint64_t wait_key(const struct dconn *d)
{
	const struct smtp_cli *c = &d->cli;
	return (uint64_t)c->state | (uint64_t)(c->recv & 0xffff) << 8 |
	       (uint64_t)(c->rcpt_replies & 0xffff) << 24 | (uint64_t)(c->messages & 0xffffff) << 40 |
	       (uint64_t)d->greeted << 39 | (uint64_t)(d->job != NULL) << 38;
}

static void arm(struct dconn *d)
{
	struct queue *q = site_queue(d);
	if (d->closing) {
		timer_cancel(&d->t);
		return;
	}
	uint64_t key = wait_key(d);
	if (timer_armed(&d->t) && key == d->wait_key)
		return;                         /* the same wait goes on: its deadline stands */
	d->wait_key = key;
	timer_cancel(&d->t);
	unsigned ms = smtp_cli_timeout(&d->cli);
	if (!d->greeted)
		ms = d->connect_ms + d->cli.to.greeting;
	else if (ms == 0 && d->cli.state == SMTP_CLI_ST_READY && !d->job)
		ms = DELIVER_IDLE_MS;
	if (ms)
		timer_arm(&q->loop->wheel, &d->t, ms);
}

static void on_timer(struct timer *t)
{
	struct dconn *d = (struct dconn *)((char *)t - offsetof(struct dconn, t));
	char why[400];
	if (d->quitting) {                  /* no 221 in time: nothing is at stake */
		d->closing = true;
		net_stream_abort(&d->s);
		return;
	}
	if (d->cli.state == SMTP_CLI_ST_READY && !d->job) {
		dconn_quit(d);                  /* idle: QUIT, then close */
		pump(d);
		return;
	}
	if (d->tls_began && !d->tls_up) {
		tls_failed(d, "timed out");
		return;
	}
	snprintf(why, sizeof why, "4.4.2 conversation with %s timed out while %s", d->relay,
	         d->greeted ? smtp_cli_state_name(&d->cli) : "receiving the initial server greeting");
	bool unclear = d->proxied && !d->greeted && connected(d);
	passive(d, false, unclear, HEALTH_R_TIMEOUT, 0);
	passive_cut(d, ETIMEDOUT);
	bool either = unclear || cut_through_proxy(d);
	dconn_fail(d, why, !d->proven && (!either || unclear_counts(d)));
}

/* ---- the job ------------------------------------------------------------------------ */

/* End the job with the client's results; undecided recipients get `fallback`. */
static void job_end(struct dconn *d, const struct smtp_cli_reply *fallback, const char *ftext)
{
	struct queue_job *j = d->job;
	if (!j)
		return;
	d->job = NULL;
	struct qresult *r = calloc(j->n, sizeof *r);
	if (!r) {
		struct qresult one = { 0, "4.3.0 out of memory", "4.3.0" };
		queue_job_done(j, &one, 1, relay_of(d), d->msgs);
		return;
	}
	for (uint32_t k = 0; k < j->n; k++) {
		const struct smtp_cli_reply *rp = d->started ? smtp_cli_result(&d->cli, k) : NULL;
		if (rp) {
			r[k].code = rp->code;
			r[k].text = rp->text;
		} else if (fallback) {
			r[k].code = fallback->code >= 500 && fallback->code < 600 ? fallback->code : 0;
			r[k].text = fallback->text;
		} else {
			r[k].code = 0;
			r[k].text = ftext;
		}
	}
	queue_job_done(j, r, j->n, relay_of(d), d->msgs);
	free(r);
}

/* Did the next hop take the job's message for at least one recipient? */
static bool job_taken(struct dconn *d)
{
	for (uint32_t k = 0; d->job && d->started && k < d->job->n; k++) {
		const struct smtp_cli_reply *rp = smtp_cli_result(&d->cli, k);
		if (rp && rp->code >= 200 && rp->code < 300)
			return true;
	}
	return false;
}

/* Send the body of the current job (EV_BODY). */
static void send_body(struct dconn *d)
{
	const uint8_t *p = d->body;
	size_t n = d->body_len;
	if (d->cli.body == SMTP_CLI_BODY_BDAT) {
		if (n)
			net_stream_write_ref(&d->s, p, n);
	} else if (d->job->m->flags & SMTP_SRV_NODOT) {
		/* nothing to stuff: the server saw no dot but the final one */
		if (n)
			net_stream_write_ref(&d->s, p, n);
		smtp_cli_dot_plain(&d->cli.dot, (const char *)p, n);
	} else {
		while (n > 0) {
			bool dot = false;
			size_t k = smtp_cli_dot_next(&d->cli.dot, (const char *)p, n, &dot);
			if (k)
				net_stream_write_ref(&d->s, p, k);
			if (dot)
				net_stream_write(&d->s, ".", 1);
			if (k == 0 && !dot)
				break;
			p += k;
			n -= k;
		}
	}
	smtp_cli_body_done(&d->cli);
}

/* Begin the transaction of d->job, whose body is ready. */
static void job_begin(struct dconn *d)
{
	struct queue_job *j = d->job;
	struct queue_msg *m = j->m;
	const char **rc = malloc(j->n * sizeof *rc);
	if (!rc) {
		d->started = false;
		job_end(d, NULL, "4.3.0 out of memory");
		return;
	}
	for (uint32_t k = 0; k < j->n; k++)
		rc[k] = m->r[j->idx[k]].addr;
	unsigned need = (m->flags & SMTP_SRV_8BITMIME ? SMTP_CLI_NEED_8BIT : 0) |
	                (m->flags & SMTP_SRV_SMTPUTF8 ? SMTP_CLI_NEED_UTF8 : 0);
	unpin(d, false);
	d->pins[d->npins++] = m;          /* take_job made room */
	m->refs++;
	d->msgs++;
	d->started = true;
	int ret = smtp_cli_send_msg(&d->cli, m->sender, rc, j->n, d->body_len, need);
	free(rc);
	if (ret < 0)
		job_end(d, NULL, "4.3.0 refused locally");   /* results are the client's local ones */
}

/* May the connection take another job as far as its egress goes? Not after a reload
 * rebuilt the sources and pools (a new connection follows the new ones), nor through a
 * proxy server that is no longer up for its source. */
static bool egress_current(const struct dconn *d)
{
	if (!d->et)
		return true;
	if (d->et->tab != egress_now(&d->q->w->srv->egress))
		return false;
	return !d->proxied || egress_server_usable(d->et, d->server, d->si);
}

/* An idle connection takes the next ready job of its site. */
/* A job a proxy cut (requeue_cut) is not given to a connection through that proxy that
 * was opened before the cut (the proxy dropped its other connections too, most likely,
 * and this one would only learn it with the job), nor to one opened after it while
 * another server is usable for the source (a proxy that cuts may go on cutting until
 * the proof that it is the proxy's doing comes, passive_done): cut twice, a job waits for
 * its next try. */
static bool may_take(const struct queue_job *j, const void *ctx)
{
	const struct dconn *d = ctx;
	return !(j->requeued && d->proxied && j->cut_server == d->server &&
	         (d->t_start_ms <= j->cut_ms || egress_servers_usable(d->et, d->si) > 1));
}

static void take_job(struct dconn *d)
{
	struct queue_site *s = d->site;
	while (!d->job && !d->closing && d->cli.state == SMTP_CLI_ST_READY) {
		if (d->msgs >= s->max_msgs || site_queue(d)->stopping || !egress_current(d) ||
		    d->tls_gen != tlsout_generation()) {
			/* (a reload: the transport's TLS may be stricter now; the next connection
			 * follows it, this one takes no more mail) */
			dconn_quit(d);
			return;
		}
		unpin(d, false);
		if (d->npins == DELIVER_PINS)
			return;                     /* earlier bodies still going out: not now */
		if (!s->ready_head)
			return;
		struct queue *q = site_queue(d);
		if (!rate_take(&s->msg_rate, q->loop->now_ms)) {
			hold_back(q, s, &s->msg_rate);  /* message_rate: this one waits */
			return;
		}
		struct queue_job *j = queue_site_take_if(s, may_take, d);
		if (!j) {
			/* only jobs a proxy cut, and this connection went through the same one
			 * before: it makes room for one through another (whose place it takes) */
			if (s->ready_head)
				dconn_quit(d);
			return;
		}
		d->job = j;
		d->started = false;
		if (d->msgs == 0)
			d->job_at_once = site_queue(d)->loop->now_ms - d->greeted_ms <= DELIVER_CUT_IDLE_MS;
		j->t_conn_ms = d->msgs == 0 ? site_queue(d)->loop->now_ms - d->t_start_ms : 0;
		const uint8_t *body;
		size_t len;
		int ret = queue_job_body(j, &body, &len);
		if (ret == 0) {
			d->waiting_body = true;     /* deliver_job_body() goes on */
			return;
		}
		if (ret == -ENOMEM || ret == -EBUSY || ret == -EMFILE || ret == -ENFILE ||
		    ret == -EAGAIN) {
			/* the ring, memory or descriptors are short now: the job goes back first in
			 * line and the site is woken again shortly (ending it here, and every job
			 * after it in the same loop, deferred a whole ready queue at once) */
			d->job = NULL;
			queue_site_unget(s, j);
			if (!s->read_busy_logged) {
				s->read_busy_logged = true;
				log_warn("event=body_read_busy site=%s error=\"%s\" note=\"retried shortly\"",
				         s->key, strerror(-ret));
			}
			kick_later(q, s, DELIVER_READ_RETRY_MS);
			return;
		}
		if (ret < 0) {                  /* this message's own record: defer it alone */
			char why[200];
			snprintf(why, sizeof why, "4.3.0 the message could not be read from the spool: %s",
			         strerror(-ret));
			job_end(d, NULL, why);
			continue;
		}
		s->read_busy_logged = false;
		d->body = body;
		d->body_len = len;
		job_begin(d);
	}
}

bool deliver_job_body(struct queue_job *j, bool ok)
{
	struct queue_site *s = j->site;
	for (struct dconn *d = s ? s->conns : NULL; d; d = d->next) {
		if (d->job != j || !d->waiting_body)
			continue;
		detach_waiting(d);
		if (d->closing || d->cli.state != SMTP_CLI_ST_READY)
			return false;               /* it is going away: the queue takes j back */
		if (!ok) {                      /* the queue ends the job */
			take_job(d);
			pump(d);
			return true;
		}
		d->job = j;
		d->body = j->m->body;
		d->body_len = j->m->size;
		job_begin(d);
		pump(d);
		return true;
	}
	return false;
}

/* ---- the conversation --------------------------------------------------------------- */

static void flush_out(struct dconn *d)
{
	size_t len;
	const char *p = smtp_cli_out(&d->cli, &len);
	if (len) {
		net_stream_write(&d->s, p, len);
		smtp_cli_out_done(&d->cli, len);
	}
}

static void pump(struct dconn *d)
{
	struct smtp_cli_ev ev;
	if (d->closing)
		return;
	flush_out(d);
	while (!d->closing && smtp_cli_next(&d->cli, &ev)) {
		switch (ev.kind) {
		case SMTP_CLI_EV_READY:
			passive(d, true, false, HEALTH_R_NONE, 0);
			d->greeted = true;
			d->greeted_ms = site_queue(d)->loop->now_ms;
			if (!tls_start(d))
				take_job(d);
			break;
		case SMTP_CLI_EV_TLS:
			tls_begin(d);
			break;
		case SMTP_CLI_EV_TLS_REFUSED:
			if (d->tls_mode == CONFIG_OUT_TLS_OPPORTUNISTIC) {
				take_job(d);            /* RFC 3207 4.1: go on in plaintext */
				break;
			} else {
				char why[1100];
				snprintf(why, sizeof why, "4.7.4 TLS is required, but host %s refused to "
				         "start TLS: %s", d->relay, ev.reply.text);
				tls_refused(d, why);
				return;
			}
		case SMTP_CLI_EV_BODY:
			flush_out(d);               /* the BDAT command goes first */
			send_body(d);
			break;
		case SMTP_CLI_EV_MSG_DONE: {
			bool taken = job_taken(d);
			job_end(d, NULL, "4.4.2 no result");
			passive_done(d);            /* and so does the proxy, if any */
			if (!d->proven) {
				d->proven = true;        /* the site works: its failures start over */
				d->site->fails = 0;
			}
			if (taken)                  /* a 452 to every recipient opens nothing */
				window_success(d->site);
			unpin(d, false);
			take_job(d);                /* reuse: the next ready job at once */
			break;
		}
		case SMTP_CLI_EV_FAIL: {
			char why[1100];
			if (ev.reply.code)
				snprintf(why, sizeof why, "%s (in reply to %s)", ev.reply.text, ev.reply.cmd);
			else
				snprintf(why, sizeof why, "4.4.2 %s: %s", d->relay, ev.reply.text);
			struct smtp_cli_reply fb = ev.reply;
			size_t k = strlen(why) < SMTP_CLI_TEXT_MAX ? strlen(why) : SMTP_CLI_TEXT_MAX;
			memcpy(fb.text, why, k);
			fb.text[k] = '\0';
			if (!d->greeted && ev.reply.code >= 500)
				fb.code = 0;            /* a refused greeting defers (the next MX may take it) */
			if (!detach_waiting(d) && d->job)
				job_end(d, &fb, NULL);
			dconn_fail(d, why, !d->proven);
			return;
		}
		case SMTP_CLI_EV_CLOSED:
			d->closing = true;
			net_stream_close(&d->s);
			break;
		default:
			break;
		}
		flush_out(d);
	}
	flush_out(d);
	arm(d);
}

static size_t on_input(struct net_stream *s, const uint8_t *p, size_t n)
{
	struct dconn *d = of_stream(s);
	if (d->closing)
		return n;
	size_t used = smtp_cli_input(&d->cli, (const char *)p, n);
	bool began = d->tls_began;
	pump(d);
	if (!began && d->tls_began)
		return n;                       /* behind the 220: plaintext before TLS, dropped */
	return used;
}

/* The connection failed: its job (if any) is deferred, the stream cut. A failure before
 * any transaction completed counts against the site. */
/* A transaction through a proxy cut before its end of data went out (lost while RSET,
 * MAIL, RCPT or DATA was being answered): nothing can have been delivered, so the job
 * goes back first in its site's line, once, for the next connection (round robin: through
 * another server; none at all while none is up for the source; never one through the same
 * server opened before the cut: may_take) instead of waiting for its next try. A proxy that dies takes this way the transactions it was carrying, but
 * those whose end of data was sent: they may have been delivered, and wait as any. */
static bool requeue_cut(struct dconn *d)
{
	struct queue_job *j = d->job;
	enum smtp_cli_state st = d->cli.state;
	if (!j || !d->proxied || d->waiting_body || j->requeued || site_queue(d)->stopping ||
	    (st != SMTP_CLI_ST_RSET && st != SMTP_CLI_ST_MAIL && st != SMTP_CLI_ST_RCPT &&
	     st != SMTP_CLI_ST_DATA))
		return false;
	j->requeued = true;
	j->cut_server = d->server;
	j->cut_ms = site_queue(d)->loop->now_ms;
	d->job = NULL;
	queue_site_unget(d->site, j);
	log_info("event=requeued qid=%s site=%s relay=%s while=%s note=\"cut before the end of data: "
	         "tried again at once\"", j->m->qid, d->site->key, relay_of(d),
	         smtp_cli_state_name(&d->cli));
	return true;
}

static void dconn_fail(struct dconn *d, const char *why, bool site_failure)
{
	if (d->closing)
		return;
	if (!requeue_cut(d) && !detach_waiting(d) && d->job)
		job_end(d, NULL, why);
	d->closing = true;
	timer_cancel(&d->t);
	if (site_failure && !d->fail_counted && !d->quitting) {
		d->fail_counted = true;
		struct queue_site *s = d->site;
		s->fails++;
		window_failure(s);
		char esc[600];
		log_info("event=connect_failed site=%s relay=%s reason=\"%s\"", s->key, d->relay,
		         log_escape_text(esc, sizeof esc, why));
		bool working = false;
		for (struct dconn *o = s->conns; o; o = o->next)
			if (o->proven && !o->closing)
				working = true;
		if (s->fails >= s->dead_after && !working) {
			s->fails = 0;
			queue_site_fail(site_queue(d), s, why);
		}
	}
	net_stream_abort(&d->s);
}

static void on_lost(struct net_stream *s, int res)
{
	struct dconn *d = of_stream(s);
	char why[400];
	if (d->closing)
		return;
	if (d->tls_began && !d->tls_up) {
		tls_failed(d, res == -EPROTO && s->tls ? net_tls_error(s->tls)
		              : res < 0                ? strerror(-res)
		                                       : "connection closed");
		return;
	}
	if (!d->greeted && res < 0)
		snprintf(why, sizeof why, "4.4.1 connect to %s: %s", d->relay, strerror(-res));
	else
		snprintf(why, sizeof why, "4.4.2 lost connection with %s while %s", d->relay,
		         d->greeted ? smtp_cli_state_name(&d->cli) : "receiving the initial server greeting");
	/* A proxy that refuses the connection is the proxy's failure, not the next hop's: it
	 * counts against the proxy (which goes down, and the site's mail goes through another
	 * or waits), not towards the site's death. Closed before the greeting may be either. */
	bool refused = !d->greeted && res == -ECONNREFUSED;
	bool unclear = d->proxied && !d->greeted &&
	               (res == 0 || res == -ECONNRESET || res == -EPIPE);   /* after the connect */
	passive(d, false, unclear, refused ? HEALTH_R_REFUSED : res == -ETIMEDOUT ? HEALTH_R_TIMEOUT
	                                                      : HEALTH_R_CLOSED, res < 0 ? -res : 0);
	passive_cut(d, res < 0 ? -res : 0);
	bool either = unclear || cut_through_proxy(d);
	dconn_fail(d, why, !d->proven && !(d->proxied && refused) && (!either || unclear_counts(d)));
}

static void on_release(struct net_stream *s)
{
	struct dconn *d = of_stream(s);
	struct queue_site *site = d->site;
	struct queue *q = site_queue(d);
	timer_cancel(&d->t);
	if (!detach_waiting(d) && d->job) {  /* cut at a stop */
		struct queue_job *j = d->job;
		d->job = NULL;
		queue_job_drop(j);
	}
	unpin(d, true);
	for (struct dconn **pp = &site->conns; *pp; pp = &(*pp)->next)
		if (*pp == d) {
			*pp = d->next;
			break;
		}
	site->nconns--;
	if (d->quitting)
		site->nquitting--;
	smtp_cli_free(&d->cli);
	net_tls_ctx_free(d->tls_ctx);
	free(d);
	if (!q->stopping && site->nready > 0)
		deliver_kick(site);
}

static const struct net_stream_ops dconn_ops = {
	.input = on_input,
	.lost = on_lost,
	.release = on_release,
	.secure = on_secure,
};

/* ---- connections -------------------------------------------------------------------- */

static void fmt_relay(const struct queue_site *s, size_t i, char *out, size_t cap)
{
	char a[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;
	const struct sockaddr_storage *ss = &s->addr[i].ss;
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *v = (const void *)ss;
		inet_ntop(AF_INET, &v->sin_addr, a, sizeof a);
		port = ntohs(v->sin_port);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *v = (const void *)ss;
		inet_ntop(AF_INET6, &v->sin6_addr, a, sizeof a);
		port = ntohs(v->sin6_port);
	}
	char name[240];                   /* a name from DNS: escaped (and cut), it is logged */
	log_escape(name, sizeof name, s->addr[i].name, strlen(s->addr[i].name));
	snprintf(out, cap, "%s[%s]:%u", name, a, port);
}

/* The egress of a new connection of s to its address i: the source's address of that
 * address's family bound locally (no pool, or a bypass domain), or a pool server and the
 * PROXY header for it. false: not now (no server up for the source). */
static bool dconn_egress(struct queue *q, struct queue_site *s, struct dconn *d, size_t i,
                         struct sockaddr_storage *to, socklen_t *tolen,
                         struct sockaddr_storage *src, socklen_t *srclen,
                         uint8_t *hdr, size_t *hlen)
{
	const struct egress_transport *t = d->et;
	unsigned fam = egress_fam_of(&s->addr[i].ss);
	const uint8_t *a = d->si != EGRESS_NONE ? egress_source_addr(&t->src[d->si], fam) : NULL;
	char srcs[INET6_ADDRSTRLEN] = "none";
	if (a)
		inet_ntop(fam == EGRESS_V4 ? AF_INET : AF_INET6, a, srcs, sizeof srcs);
	*to = s->addr[i].ss;
	*tolen = s->addr[i].len;
	*srclen = 0;
	*hlen = 0;
	const char *proxy = "none";
	if (t->pool && !s->direct) {
		d->server = egress_server_pick(t, d->si, &s->srv_rotor);
		if (d->server == EGRESS_NONE)
			return false;
		const struct egress_server *sv = &t->pool->servers[d->server];
		d->proxied = true;
		d->dest_key = dest_key(s);
		proxy = sv->text;
		*to = sv->ss;
		*tolen = sv->len;
		*hlen = egress_header(t->pool, d->si != EGRESS_NONE ? &t->src[d->si] : NULL,
		                      &s->addr[i].ss, hdr, PP_V1_MAX + 16);
	} else if (a) {
		memset(src, 0, sizeof *src);
		if (fam == EGRESS_V4) {
			struct sockaddr_in *v = (struct sockaddr_in *)src;
			v->sin_family = AF_INET;
			memcpy(&v->sin_addr, a, 4);
			*srclen = sizeof *v;
		} else {
			struct sockaddr_in6 *v = (struct sockaddr_in6 *)src;
			v->sin6_family = AF_INET6;
			memcpy(&v->sin6_addr, a, 16);
			*srclen = sizeof *v;
		}
	}
	(void)q;
	snprintf(d->relay_log, sizeof d->relay_log, "%s source=%s proxy=%s", d->relay, srcs,
	         proxy);
	return true;
}

static bool dconn_open(struct queue *q, struct queue_site *s)
{
	/* A reload renamed or removed this site's transport: the TLS table already says so,
	 * this worker's configuration not yet (its next turn regroups the site's jobs). No
	 * connection meanwhile: without its TLS settings it would fail closed, and count as
	 * the site's failure. (Attack run: 214 false "TLS is required" under reloads.) */
	if (!tlsout_has(s->transport)) {
		if (site_transport(q, s))
			kick_later(q, s, 100);     /* this worker lags the table: its turn comes */
		else
			queue_site_regroup(q, s);  /* gone here too: its jobs go where routes say */
		return false;
	}
	struct dconn *d = calloc(1, sizeof *d);
	if (!d)
		return false;
	const struct egress_transport *et =
	        egress_transport(egress_now(&q->w->srv->egress), s->transport);
	if (et && (et->nsrc > 0 || et->pool))
		d->et = et;
	d->si = d->et && s->src_label ? egress_source_find(et, s->src_label) : EGRESS_NONE;
	d->server = EGRESS_NONE;
	size_t i = s->next_addr++ % s->naddr;
	/* an address of a family the source has no address of is skipped for it */
	for (size_t k = 0; d->si != EGRESS_NONE && k < s->naddr &&
	                   !egress_source_addr(&et->src[d->si], egress_fam_of(&s->addr[i].ss)); k++)
		i = s->next_addr++ % s->naddr;
	if (d->si != EGRESS_NONE && !egress_source_addr(&et->src[d->si], egress_fam_of(&s->addr[i].ss))) {
		free(d);
		return false;
	}
	d->q = q;
	d->site = s;
	d->t.fire = on_timer;
	d->t_start_ms = q->loop->now_ms;
	fmt_relay(s, i, d->relay, sizeof d->relay);
	struct sockaddr_storage to, src;
	socklen_t tolen = s->addr[i].len, srclen = 0;
	uint8_t hdr[PP_V1_MAX + 16];
	size_t hlen = 0;
	to = s->addr[i].ss;
	if (d->et && !dconn_egress(q, s, d, i, &to, &tolen, &src, &srclen, hdr, &hlen)) {
		free(d);
		return false;
	}
	int fd = net_connect_start(&to, tolen, srclen ? &src : NULL, srclen);
	if (fd < 0 && d->proxied) {
		passive(d, false, false, fd == -ECONNREFUSED ? HEALTH_R_REFUSED : HEALTH_R_ERROR, -fd);
		free(d);
		return false;
	}
	if (fd < 0) {
		char why[400];
		snprintf(why, sizeof why, "4.4.1 connect to %s: %s", d->relay, strerror(-fd));
		log_info("event=connect_failed site=%s relay=%s reason=\"%s\"", s->key, d->relay,
		         why);                   /* (the relay name is escaped, strerror is ours) */
		free(d);
		s->fails++;
		window_failure(s);
		if (s->fails >= s->dead_after) {
			s->fails = 0;
			queue_site_fail(q, s, why);
		}
		return false;
	}
	const struct config_transport *t = site_transport(q, s);
	struct smtp_cli_timeouts tmo;
	smtp_cli_timeouts_rfc(&tmo);
	d->connect_ms = DELIVER_CONNECT_MS;
	if (t) {
		config_transport_cli_timeouts(t, &tmo);
		d->connect_ms = t->timeouts.connect * 1000u;
	}
	const char *helo = d->si != EGRESS_NONE && d->et->srcs[d->si].helo ? d->et->srcs[d->si].helo
	                                                                    : q->w->snap->cfg->hostname;
	smtp_cli_init(&d->cli, helo, &tmo);
	tls_setup(q, s, d, i);
	net_stream_init(&d->s, q->loop, fd, &dconn_ops);
	if (hlen)
		net_stream_write(&d->s, hdr, hlen);   /* the PROXY header goes first */
	d->s.stall_ms = d->cli.to.data_block;
	d->next = s->conns;
	s->conns = d;
	s->nconns++;
	net_stream_start(&d->s);
	arm(d);
	return true;
}

/* May s open connections as far as its source's pool goes? Once per transition: logged. */
static bool site_egress_ready(struct queue *q, struct queue_site *s)
{
	const struct egress_transport *t =
	        egress_transport(egress_now(&q->w->srv->egress), s->transport);
	if (!t || !t->pool)
		return true;
	size_t i = s->src_label ? egress_source_find(t, s->src_label) : EGRESS_NONE;
	if (egress_source_usable(t, i))
		return true;
	if (!s->waiting) {
		s->waiting = true;
		log_warn("event=source_wait site=%s ready=%zu reason=\"%s\"", s->key, s->nready,
		         egress_why_str(EGRESS_WHY_DOWN));
	}
	return false;
}

void deliver_kick(struct queue_site *s)
{
	if (!s->ready_head)
		return;
	struct queue *q = s->ready_head->q;
	if (q->stopping)
		return;
	deliver_shape(q, s);
	unsigned starting = 0;
	for (struct dconn *d = s->conns; d && s->ready_head; d = d->next) {
		if (d->closing)
			continue;
		if (!d->greeted)
			starting++;
		else if (!d->job && d->cli.state == SMTP_CLI_ST_READY) {
			take_job(d);
			pump(d);
		}
	}
	unsigned limit = window_of(s);
	if (!s->direct && !site_egress_ready(q, s))
		return;                         /* no proxy up for its source: the site waits */
	while (s->nready > starting && s->nconns - s->nquitting < limit && s->naddr > 0 &&
	       s->dead_until_ms <= q->loop->now_ms) {
		if (!rate_take(&s->conn_rate, q->loop->now_ms)) {
			hold_back(q, s, &s->conn_rate);  /* connection_rate: later */
			break;
		}
		if (!dconn_open(q, s))
			break;
		starting++;
	}
}

void deliver_stop(struct queue *q)
{
	for (struct queue_site *s = q->sites; s; s = s->next) {
		timer_cancel(&s->kick);
		for (struct dconn *d = s->conns; d; d = d->next)
			if (!d->closing) {
				d->closing = true;
				timer_cancel(&d->t);
				net_stream_abort(&d->s);
			}
	}
}

unsigned deliver_conns(const struct queue *q)
{
	unsigned n = 0;
	for (const struct queue_site *s = q->sites; s; s = s->next)
		n += s->nconns;
	return n;
}
