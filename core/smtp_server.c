/* core/smtp_server — see smtp_server.h. */
#include "core/smtp_server.h"

#include <errno.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "net/listener.h"
#include "proto/proxy.h"

static struct smtp_server_conn *conn_of(struct net_stream *st)
{
	return (struct smtp_server_conn *)(void *)((char *)st - offsetof(struct smtp_server_conn, st));
}

static void server_enter(struct smtp_server_conn *c, enum smtp_server_phase ph)
{
	log_debug("event=phase sid=%s from=%d to=%d", c->sid, c->phase, ph);
	c->phase = ph;
}

/* Count the replies in p[0..n): whole lines (the session and refuse() write nothing
 * else), a reply's last line being the one whose fourth octet is not '-'. */
static void count_replies(struct smtp_server *srv, const uint8_t *p, size_t n)
{
	const uint8_t *end = p + n;
	while (p < end) {
		const uint8_t *eol = memchr(p, '\n', (size_t)(end - p));
		size_t len = eol ? (size_t)(eol - p) : (size_t)(end - p);
		if (len >= 3 && (len == 3 || p[3] != '-') && p[0] >= '2' && p[0] <= '5')
			srv->replies[p[0] - '2']++;
		p += len + 1;
	}
}

/* Move whatever the session wrote to the stream. */
static void collect(struct smtp_server_conn *c)
{
	size_t n;
	if (!c->smtp)
		return;
	const uint8_t *p = smtp_srv_out(c->smtp, &n);
	if (n == 0)
		return;
	int ret = net_stream_write(&c->st, p, n);   /* copies: p is the session's */
	if (ret >= 0)
		count_replies(c->srv, p, n);
	smtp_srv_out_consume(c->smtp, n);
	if (ret < 0 && ret != -EPIPE) {
		log_warn("event=out_of_memory sid=%s client=%s", c->sid, c->peer);
		net_stream_abort(&c->st);
	}
}

/* The last words are out (or on their way): close. */
static void server_close(struct smtp_server_conn *c)
{
	if (c->phase == SMTP_SERVER_PH_CLOSING)
		return;
	server_enter(c, SMTP_SERVER_PH_CLOSING);
	timer_cancel(&c->timer);
	net_stream_close(&c->st);
}

/* Cut at once: nothing more is said, nothing queued goes out. */
static void server_abort(struct smtp_server_conn *c)
{
	server_enter(c, SMTP_SERVER_PH_CLOSING);
	timer_cancel(&c->timer);
	net_stream_abort(&c->st);
}

/* Say `reply` (with CRLF) and close: for connections refused before a session exists. */
static void refuse(struct smtp_server_conn *c, const char *reply)
{
	size_t n = strlen(reply);
	if (net_stream_write(&c->st, reply, n) >= 0)
		count_replies(c->srv, (const uint8_t *)reply, n);
	server_close(c);
}

static void implicit_begin(struct smtp_server_conn *c);

/* ---- the session's callbacks ------------------------------------------------------ */

static bool cb_rcpt_allowed(void *ctx, const char *domain, size_t len)
{
	struct smtp_server_conn *c = ctx;
	return c->srv->ops->rcpt_allowed(c, domain, len);
}

static bool cb_new_qid(void *ctx, char *buf, size_t cap)
{
	struct smtp_server_conn *c = ctx;
	return c->srv->ops->new_qid(c, buf, cap);
}

static bool cb_mail_room(void *ctx, uint64_t size)
{
	struct smtp_server_conn *c = ctx;
	return !c->srv->ops->mail_room || c->srv->ops->mail_room(c, size);
}

static bool cb_mem_take(void *ctx, size_t n)
{
	struct smtp_server_conn *c = ctx;
	return !c->srv->ops->mem_take || c->srv->ops->mem_take(c, n);
}

static void cb_mem_give(void *ctx, size_t n)
{
	struct smtp_server_conn *c = ctx;
	if (c->srv->ops->mem_give)
		c->srv->ops->mem_give(c, n);
}

static const struct smtp_srv_ops session_ops = {
	.rcpt_allowed = cb_rcpt_allowed,
	.new_qid = cb_new_qid,
	.mail_room = cb_mail_room,
	.now = NULL,
	.mem_take = cb_mem_take,
	.mem_give = cb_mem_give,
};

/* ---- timers ----------------------------------------------------------------------- */

/* Message data must come at min_data_rate octets/s on average, after a first idle_ms
 * (Postfix's smtpd_min_data_rate under smtpd_per_request_deadline): each octet read
 * moves the deadline 1/rate s on. The idle timeout alone counts any progress, so a client
 * trickling a line every few minutes would hold its message's memory for ever. UINT64_MAX:
 * no deadline (not in data, or no rate). */
static uint64_t data_deadline(const struct smtp_server_conn *c)
{
	if (!c->in_data || !c->min_data_rate)
		return UINT64_MAX;
	return c->data_start_ms + c->idle_ms + c->data_octets * 1000u / c->min_data_rate;
}

static void conn_timeout(struct timer *t)
{
	struct smtp_server_conn *c = (struct smtp_server_conn *)(void *)((char *)t -
	                             offsetof(struct smtp_server_conn, timer));
	uint64_t now = c->srv->loop->now_ms;
	if (c->phase == SMTP_SERVER_PH_CLOSING)
		return;
	if (c->phase == SMTP_SERVER_PH_PROXY) {
		if (now < c->proxy_deadline_ms) {
			timer_arm(&c->srv->loop->wheel, &c->timer, c->proxy_deadline_ms - now);
			return;
		}
		log_warn("event=proxy_timeout sid=%s client=%s", c->sid, c->peer);
		c->srv->refused[SMTP_SERVER_REFUSED_PROXY_TIMEOUT]++;
		refuse(c, "421 4.4.2 PROXY timed out\r\n");
		return;
	}
	if (c->phase == SMTP_SERVER_PH_SNIFF && c->sniff_deadline_ms) {
		if (now < c->sniff_deadline_ms) {
			timer_arm(&c->srv->loop->wheel, &c->timer, c->sniff_deadline_ms - now);
			return;
		}
		server_enter(c, SMTP_SERVER_PH_SMTP);   /* not a PROXY header: plain SMTP */
		if (!c->smtp) {                         /* implicit TLS: not a header either */
			implicit_begin(c);
			return;
		}
		net_stream_reoffer(&c->st);
	}
	uint64_t idle_end = c->st.last_activity_ms + c->idle_ms;
	uint64_t data_end = data_deadline(c);
	if (c->waiting) {                   /* we are the slow one */
		timer_arm(&c->srv->loop->wheel, &c->timer, c->idle_ms);
		return;
	}
	if (now < idle_end && now < data_end) {   /* activity since, and fast enough */
		uint64_t end = idle_end < data_end ? idle_end : data_end;
		timer_arm(&c->srv->loop->wheel, &c->timer, end - now);
		return;
	}
	if (now < idle_end)
		log_info("event=timeout sid=%s client=%s reason=min_data_rate octets=%llu seconds=%llu",
		         c->sid, c->peer, (unsigned long long)c->data_octets,
		         (unsigned long long)((now - c->data_start_ms) / 1000u));
	else
		log_info("event=timeout sid=%s client=%s", c->sid, c->peer);
	smtp_srv_timeout(c->smtp);
	collect(c);
	server_close(c);
}

/* ---- TLS -------------------------------------------------------------------------- */

/* From now on the stream speaks TLS. false: no memory (the caller closes). */
static bool tls_begin(struct smtp_server_conn *c)
{
	struct net_tls *t = net_tls_new(c->tls_ctx, NULL);
	if (!t) {
		log_warn("event=out_of_memory sid=%s client=%s what=tls", c->sid, c->peer);
		return false;
	}
	net_stream_tls(&c->st, t);
	return true;
}

/* STARTTLS said 220 (in the output): it goes out in plaintext, then TLS. The caller
 * drops every octet it was offered behind the command (CVE-2011-0411). */
static void starttls(struct smtp_server_conn *c, size_t dropped)
{
	collect(c);
	log_info("event=starttls sid=%s client=%s%s", c->sid, c->peer,
	         dropped ? " note=pipelined_plaintext_dropped" : "");
	net_stream_bulk(&c->st, false);
	if (!tls_begin(c))
		server_abort(c);
}

static void conn_secure(struct net_stream *st);
static void session_begin(struct smtp_server_conn *c);

/* Implicit TLS: the stream speaks TLS from here (every octet kept is ciphertext), and the
 * session's banner goes out once the handshake is done. */
static void implicit_begin(struct smtp_server_conn *c)
{
	if (!tls_begin(c)) {
		refuse(c, "421 4.3.0 Error: out of memory\r\n");
		return;
	}
	session_begin(c);
	net_stream_reoffer(&c->st);
}

bool smtp_server_tls(const struct smtp_server_conn *c, const char **version,
                     const char **cipher)
{
	if (!c->st.tls || !c->st.tls_up)
		return false;
	*version = net_tls_version(c->st.tls);
	*cipher = net_tls_cipher(c->st.tls);
	return true;
}

/* ---- the SMTP session ------------------------------------------------------------- */

/* After a feed that used `used` octets: the data's start, its octets, its end. The octets
 * of the feed that began the data (its DATA line among them) count towards it: a few
 * octets' head start, no more. Entering it, the timer is set to idle_ms, when the data
 * deadline can first come (data_deadline). */
static void data_progress(struct smtp_server_conn *c, size_t used)
{
	bool in = smtp_srv_in_data(c->smtp);
	if (in && !c->in_data) {
		c->in_data = true;
		c->data_start_ms = c->srv->loop->now_ms;
		c->data_octets = 0;
		if (c->min_data_rate)
			timer_arm(&c->srv->loop->wheel, &c->timer, c->idle_ms);
	}
	if (c->in_data)
		c->data_octets += used;
	if (!in)
		c->in_data = false;
}

/* Feed p[0..n) to the session until it stops; returns the octets it used. Commands go in
 * SMTP_SERVER_FEED at a time and stop at the stream's high-water mark, so a flood of
 * pipelined commands makes bounded output; message data goes in whole. */
static size_t session_feed(struct smtp_server_conn *c, const uint8_t *p, size_t n)
{
	size_t off = 0;
	while (off < n && !c->waiting && c->phase == SMTP_SERVER_PH_SMTP) {
		size_t k = n - off, used = 0;
		if (k > SMTP_SERVER_FEED && !smtp_srv_in_transaction(c->smtp))
			k = SMTP_SERVER_FEED;
		enum smtp_srv_ev ev = smtp_srv_feed(c->smtp, p + off, k, &used);
		off += used;
		data_progress(c, used);
		if (ev == SMTP_SRV_EV_STARTTLS) {
			starttls(c, n - off);
			return n;                   /* the rest: dropped, never fed to TLS */
		}
		net_stream_bulk(&c->st, smtp_srv_in_data(c->smtp));
		if (ev == SMTP_SRV_EV_MESSAGE) {
			collect(c);
			c->waiting = true;
			net_stream_hold(&c->st);
			c->srv->ops->message(c, smtp_srv_message(c->smtp));
			continue;                   /* answered at once, or held */
		}
		collect(c);
		if (ev == SMTP_SRV_EV_CLOSE) {
			server_close(c);
			break;
		}
		if (ev == SMTP_SRV_EV_WAIT || net_stream_pending(&c->st) >= c->st.out_hwm)
			break;
		if (used == 0)
			break;
	}
	return off;
}

/* Start the SMTP session for c->peer_sa (the socket peer, or the client a PROXY header
 * named). */
static void session_begin(struct smtp_server_conn *c)
{
	struct smtp_server_params p;
	char buf[256];
	memset(&p, 0, sizeof p);
	const char *no = c->srv->ops->admit(c, &p, buf, sizeof buf);
	if (no) {
		refuse(c, no);
		return;
	}
	c->smtp = smtp_srv_new(p.hostname, c->peer, &p.lim, &session_ops, c);
	if (!c->smtp) {
		refuse(c, "421 4.3.0 Error: out of memory\r\n");
		return;
	}
	c->idle_ms = p.idle_ms;
	c->min_data_rate = p.min_data_rate;
	c->st.stall_ms = p.idle_ms;         /* output that does not move: cut */
	if (c->tls_ctx)
		smtp_srv_set_tls(c->smtp, c->tls_mode == SMTP_SERVER_TLS_IMPLICIT ? SMTP_SRV_TLS_ACTIVE
		                        : c->tls_mode == SMTP_SERVER_TLS_REQUIRED ? SMTP_SRV_TLS_REQUIRE
		                                                                  : SMTP_SRV_TLS_OFFER);
	server_enter(c, c->phase == SMTP_SERVER_PH_SNIFF ? SMTP_SERVER_PH_SNIFF : SMTP_SERVER_PH_SMTP);
	smtp_srv_start(c->smtp);
	collect(c);
	c->st.last_activity_ms = c->srv->loop->now_ms;
	timer_arm(&c->srv->loop->wheel, &c->timer, c->idle_ms);
}

/* ---- PROXY ------------------------------------------------------------------------ */

static void sockaddr_from_pp(struct sockaddr_storage *sa, enum pp_family f,
                             const struct pp_addr *a)
{
	memset(sa, 0, sizeof *sa);
	if (f == PP_AF_INET) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)sa;
		s4->sin_family = AF_INET;
		memcpy(&s4->sin_addr, a->ip, 4);
		s4->sin_port = htons(a->port);
	} else {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)sa;
		s6->sin6_family = AF_INET6;
		memcpy(&s6->sin6_addr, a->ip, 16);
		s6->sin6_port = htons(a->port);
	}
}

/* A valid header: from here on the client is the proxied one (unless LOCAL/UNKNOWN or
 * a family without IP addresses, which keep the socket's). */
static void proxy_apply(struct smtp_server_conn *c, const struct pp_result *r)
{
	char uid[2 * PP_UNIQUE_ID_MAX + 8] = "", auth[300] = "";
	if (r->unique_id.len)
		log_escape(uid, sizeof uid, r->unique_id.p, r->unique_id.len);
	if (r->authority.len)
		log_escape(auth, sizeof auth, r->authority.p, r->authority.len);
	snprintf(c->proxy, sizeof c->proxy, "%s", c->peer);
	bool keep = r->local || (r->family != PP_AF_INET && r->family != PP_AF_INET6);
	if (!keep) {
		sockaddr_from_pp(&c->peer_sa, r->family, &r->src);
		listener_addr_fmt(&c->peer_sa, c->peer, sizeof c->peer);
	}
	log_info("event=proxy sid=%s client=%s proxy=%s version=%u command=%s%s%s%s%s%s",
	         c->sid, c->peer, c->proxy, r->version, keep ? "local" : "proxy",
	         uid[0] ? " unique_id=" : "", uid, auth[0] ? " authority=" : "", auth,
	         r->crc32c_checked ? " crc32c=ok" : "");
}

/* Input while waiting for the header of a trusted proxy. Only the header is limited
 * (pp_parse refuses one over proxy_max_header); what the client sent behind it in the
 * same read, however much, goes to the session. */
static size_t proxy_input(struct smtp_server_conn *c, const uint8_t *p, size_t n)
{
	struct pp_result r;
	size_t used = 0;
	enum pp_err err = PP_E_NONE;
	switch (pp_parse(p, n, c->proxy_max_header, &r, &used, &err)) {
	case PP_AGAIN:
		return 0;                       /* need more; the deadline keeps running */
	case PP_ERR:
		log_warn("event=proxy_invalid sid=%s client=%s error=\"%s\"", c->sid, c->peer,
		         pp_strerror(err));
		c->srv->refused[SMTP_SERVER_REFUSED_PROXY_INVALID]++;
		refuse(c, "421 4.7.0 Invalid PROXY header\r\n");
		return n;
	case PP_OK:
		break;
	}
	proxy_apply(c, &r);
	server_enter(c, SMTP_SERVER_PH_SMTP);
	if (c->tls_mode == SMTP_SERVER_TLS_IMPLICIT) {
		/* The octets after the header are the ClientHello's: the stream feeds the
		 * rest of this offer to TLS. */
		implicit_begin(c);
		return c->phase == SMTP_SERVER_PH_SMTP ? used : n;
	}
	session_begin(c);
	if (c->phase != SMTP_SERVER_PH_SMTP)
		return n;
	return used + session_feed(c, p + used, n - used);   /* e.g. an EHLO behind the header */
}

/* The first octets of a client that may not speak PROXY: a header gets the 421. */
static size_t sniff_input(struct smtp_server_conn *c, const uint8_t *p, size_t n)
{
	switch (pp_detect(p, n < 16 ? n : 16)) {
	case PP_DETECT_NONE:
		server_enter(c, SMTP_SERVER_PH_SMTP);
		if (!c->smtp) {                 /* implicit TLS: these octets are a ClientHello */
			implicit_begin(c);
			return 0;
		}
		return session_feed(c, p, n);
	case PP_DETECT_MAYBE:
		/* Need more to tell — but a client that says "\r\n" (a prefix of the v2
		 * signature) and waits is not kept waiting long: after SMTP_SERVER_SNIFF_MS its
		 * octets go to the SMTP session. */
		if (!c->sniff_deadline_ms) {
			c->sniff_deadline_ms = c->srv->loop->now_ms + SMTP_SERVER_SNIFF_MS;
			timer_arm(&c->srv->loop->wheel, &c->timer, SMTP_SERVER_SNIFF_MS);
		}
		return 0;
	case PP_DETECT_V1:
	case PP_DETECT_V2:
		break;
	}
	log_warn("event=proxy_refused sid=%s client=%s reason=not_allowed", c->sid, c->peer);
	c->srv->refused[SMTP_SERVER_REFUSED_PROXY_NOT_ALLOWED]++;
	smtp_srv_free(c->smtp);             /* the session said its banner and nothing else */
	c->smtp = NULL;
	refuse(c, "421 4.7.0 PROXY not allowed\r\n");
	return n;
}

/* ---- the stream's callbacks ------------------------------------------------------- */

static size_t conn_input(struct net_stream *st, const uint8_t *p, size_t n)
{
	struct smtp_server_conn *c = conn_of(st);
	switch (c->phase) {
	case SMTP_SERVER_PH_PROXY:
		return proxy_input(c, p, n);
	case SMTP_SERVER_PH_SNIFF:
		return sniff_input(c, p, n);
	case SMTP_SERVER_PH_SMTP:
		return session_feed(c, p, n);
	case SMTP_SERVER_PH_NONE:
	case SMTP_SERVER_PH_CLOSING:
		break;
	}
	return n;
}

static void conn_lost(struct net_stream *st, int res)
{
	struct smtp_server_conn *c = conn_of(st);
	if (res == 0) {
		/* The client is done sending (it may have half-closed and still read): the
		 * replies to what it sent go out, then the connection closes. */
		if (c->smtp)
			log_info("event=disconnect sid=%s client=%s", c->sid, c->peer);
		server_close(c);
		return;
	}
	if (res == -EPROTO && st->tls)
		log_info("event=tls_failed sid=%s client=%s error=\"%s\"", c->sid, c->peer,
		         net_tls_error(st->tls));
	else if (res == -ETIMEDOUT)
		log_info("event=send_stalled sid=%s client=%s note=\"output did not move for the idle timeout\"",
		         c->sid, c->peer);
	else if (res == -ENOBUFS)
		log_warn("event=input_overflow sid=%s client=%s", c->sid, c->peer);
	else if (res < 0)
		log_info("event=connection_error sid=%s client=%s error=\"%s\"", c->sid, c->peer,
		         strerror(-res));
	server_abort(c);
}

static void conn_free(struct smtp_server_conn *c)
{
	struct smtp_server *srv = c->srv;
	timer_cancel(&c->timer);
	if (srv->ops->gone)
		srv->ops->gone(c);
	if (c->prev)
		c->prev->next = c->next;
	else
		srv->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	srv->nconns--;
	smtp_srv_free(c->smtp);
	net_tls_ctx_free(c->tls_ctx);
	free(c);
}

static void conn_release(struct net_stream *st)
{
	struct smtp_server_conn *c = conn_of(st);
	c->released = true;
	if (!c->waiting)                    /* else: freed when the owner answers */
		conn_free(c);
}

static void conn_secure(struct net_stream *st)
{
	struct smtp_server_conn *c = conn_of(st);
	log_info("event=tls sid=%s client=%s version=%s cipher=%s", c->sid, c->peer,
	         net_tls_version(st->tls), net_tls_cipher(st->tls));
}

static const struct net_stream_ops conn_stream_ops = {
	.input = conn_input,
	.lost = conn_lost,
	.release = conn_release,
	.secure = conn_secure,
};

/* ---- API -------------------------------------------------------------------------- */

void smtp_server_init(struct smtp_server *srv, struct net_loop *l,
                      const struct smtp_server_ops *ops, void *ctx, size_t app_size,
                      unsigned id)
{
	memset(srv, 0, sizeof *srv);
	srv->loop = l;
	srv->ops = ops;
	srv->ctx = ctx;
	srv->app_size = app_size;
	srv->id = id;
}

void smtp_server_accept(struct smtp_server *srv, int fd, unsigned listener)
{
	struct smtp_server_start start, *how = &start;
	struct smtp_server_conn *c = calloc(1, sizeof *c + srv->app_size);
	socklen_t sl = sizeof(struct sockaddr_storage);
	if (!c) {
		close(fd);
		return;
	}
	if (getpeername(fd, (struct sockaddr *)&c->peer_sa, &sl) < 0) {
		close(fd);
		free(c);
		return;
	}
	c->srv = srv;
	c->app = srv->app_size ? (void *)(c + 1) : NULL;
	c->listener = listener;
	c->timer.fire = conn_timeout;
	snprintf(c->sid, sizeof c->sid, "%u.%llu", srv->id, (unsigned long long)++srv->sid_seq);
	listener_addr_fmt(&c->peer_sa, c->peer, sizeof c->peer);
	memset(how, 0, sizeof *how);
	srv->ops->start(c, how);
	c->proxy_max_header = how->proxy_max_header;
	c->tls_ctx = net_tls_ctx_ref(how->tls);
	c->tls_mode = c->tls_ctx ? how->tls_mode : SMTP_SERVER_TLS_OFF;
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	net_stream_init(&c->st, srv->loop, fd, &conn_stream_ops);
	c->next = srv->conns;
	if (srv->conns)
		srv->conns->prev = c;
	srv->conns = c;
	srv->nconns++;
	net_stream_start(&c->st);

	if (how->listener_id)
		log_info("event=connect sid=%s client=%s listener=%s proxy_protocol=%s", c->sid,
		         c->peer, how->listener_id,
		         how->proxy == SMTP_SERVER_PROXY_EXPECT ? "expected" : "no");
	if (how->refuse) {
		refuse(c, how->refuse);
		return;
	}
	if (how->proxy == SMTP_SERVER_PROXY_EXPECT) {
		/* No banner until a complete, valid header; the deadline does not move. */
		server_enter(c, SMTP_SERVER_PH_PROXY);
		c->proxy_deadline_ms = srv->loop->now_ms + how->proxy_timeout_ms;
		timer_arm(&srv->loop->wheel, &c->timer, how->proxy_timeout_ms);
		return;
	}
	if (c->tls_mode == SMTP_SERVER_TLS_IMPLICIT) {
		/* TLS from the first octet. Where a PROXY header is not expected, the first
		 * octets are looked at before TLS starts (a ClientHello is never a PROXY
		 * header's beginning: 0x16), so a header still gets its 421 in plaintext; a
		 * client that says nothing goes to TLS after SMTP_SERVER_SNIFF_MS. */
		if (how->proxy == SMTP_SERVER_PROXY_SNIFF) {
			server_enter(c, SMTP_SERVER_PH_SNIFF);
			c->sniff_deadline_ms = srv->loop->now_ms + SMTP_SERVER_SNIFF_MS;
			timer_arm(&srv->loop->wheel, &c->timer, SMTP_SERVER_SNIFF_MS);
			return;
		}
		server_enter(c, SMTP_SERVER_PH_SMTP);
		implicit_begin(c);
		return;
	}
	server_enter(c, how->proxy == SMTP_SERVER_PROXY_SNIFF ? SMTP_SERVER_PH_SNIFF
	                                                      : SMTP_SERVER_PH_SMTP);
	session_begin(c);
}

void smtp_server_stop(struct smtp_server *srv, bool force)
{
	for (struct smtp_server_conn *c = srv->conns; c; c = c->next) {
		if (force) {
			if (!c->st.shut)
				server_abort(c);
			continue;
		}
		if (c->phase == SMTP_SERVER_PH_CLOSING || c->waiting ||
		    (c->smtp && smtp_srv_in_transaction(c->smtp)))
			continue;
		if (c->smtp) {
			smtp_srv_shutdown(c->smtp);
			collect(c);
		}
		server_close(c);
	}
}

void smtp_server_fini(struct smtp_server *srv)
{
	while (srv->conns) {
		struct smtp_server_conn *c = srv->conns;
		net_stream_fini(&c->st);
		c->waiting = false;
		conn_free(c);
	}
}

/* After the owner's answer: the reply goes out and the input goes on. */
static void answered(struct smtp_server_conn *c)
{
	c->waiting = false;
	if (c->released) {
		conn_free(c);
		return;
	}
	if (c->phase == SMTP_SERVER_PH_CLOSING)
		return;
	collect(c);
	if (smtp_srv_closing(c->smtp)) {    /* timed out or shut down meanwhile */
		server_close(c);
		return;
	}
	net_stream_resume(&c->st);
}

void smtp_server_answer(struct smtp_server_conn *c, bool queued)
{
	if (queued)
		smtp_srv_queued(c->smtp);
	else
		smtp_srv_queue_failed(c->smtp);
	answered(c);
}

void smtp_server_refuse(struct smtp_server_conn *c, const char *reply)
{
	smtp_srv_refuse(c->smtp, reply);
	answered(c);
}

void smtp_server_drop(struct smtp_server_conn *c)
{
	smtp_srv_queue_failed(c->smtp);     /* releases the message; the reply is dropped */
	smtp_srv_out_consume(c->smtp, SIZE_MAX);
	c->waiting = false;
	if (c->released) {
		conn_free(c);
		return;
	}
	server_close(c);
}
