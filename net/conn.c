/* net/conn — see conn.h. */
#include "net/conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cfg/snapshot.h"
#include "core/connlimit.h"
#include "core/log.h"
#include "core/worker.h"
#include "proto/proxy.h"

/* Bytes a client may send beyond what the session has consumed (while its message is
 * being committed): past this the client is not waiting for replies at all. */
#define CONN_IN_MAX (256u * 1024u)

static void peer_fmt(const struct sockaddr_storage *sa, char *buf, size_t len)
{
	if (sa->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
		if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr))
			inet_ntop(AF_INET, s6->sin6_addr.s6_addr + 12, buf, (socklen_t)len);
		else
			inet_ntop(AF_INET6, &s6->sin6_addr, buf, (socklen_t)len);
	} else {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
		inet_ntop(AF_INET, &s4->sin_addr, buf, (socklen_t)len);
	}
}

static void conn_enter(struct conn *c, enum conn_phase ph)
{
	log_debug("event=phase sid=%s from=%d to=%d", c->sid, c->phase, ph);
	c->phase = ph;
}

static void conn_close(struct conn *c, bool hard);

/* Move whatever the session wrote into the send queue. */
static void collect(struct conn *c)
{
	size_t n;
	if (!c->smtp)
		return;
	const uint8_t *p = smtp_srv_out(c->smtp, &n);
	if (n == 0)
		return;
	int ret = buf_append(&c->q, p, n);   /* copy before consume: p is the session's */
	smtp_srv_out_consume(c->smtp, n);
	if (ret < 0)
		conn_close(c, true);    /* cannot even queue a reply: drop the connection */
	else
		worker_mark_dirty(c->w, c);
}

static void conn_close(struct conn *c, bool hard)
{
	if (c->closing)
		return;
	c->closing = 1;
	conn_enter(c, CONN_PH_CLOSING);
	timer_cancel(&c->timer);
	if (hard)
		c->q.len = 0;
	worker_mark_dirty(c->w, c);
}

/* Say `reply` and close: for connections refused before a session exists. */
static void refuse(struct conn *c, const char *reply)
{
	buf_append(&c->q, reply, strlen(reply));
	conn_close(c, false);
}

static void pump(struct conn *c);

/* session callbacks */
static bool cb_rcpt_allowed(void *ctx, const char *domain, size_t len)
{
	struct conn *c = ctx;
	return c->relay_ok || config_relay_domain(c->w->snap->cfg, domain, len);
}

static void cb_new_qid(void *ctx, char *buf, size_t cap)
{
	struct conn *c = ctx;
	struct worker *w = c->w;
	snprintf(buf, cap, "%08X%02X%06X", (unsigned)time(NULL), w->id & 0xffu,
	         (unsigned)(w->qid_seq++ & 0xffffffu));
}

static time_t cb_now(void *ctx)
{
	(void)ctx;
	return time(NULL);
}

static const struct smtp_srv_ops conn_ops = {
	.rcpt_allowed = cb_rcpt_allowed,
	.new_qid = cb_new_qid,
	.now = cb_now,
};

static void conn_timeout(struct timer *t)
{
	struct conn *c = (struct conn *)((char *)t - offsetof(struct conn, timer));
	uint64_t now = c->w->now_ms;
	if (c->closing)
		return;
	if (c->phase == CONN_PH_PROXY) {
		if (now < c->deadline_ms) {
			timer_arm(&c->w->wheel, &c->timer, c->deadline_ms - now);
			return;
		}
		log_warn("event=proxy_timeout sid=%s client=%s", c->sid, c->peer);
		refuse(c, "421 4.4.2 PROXY timed out\r\n");
		return;
	}
	if (now < c->deadline_ms || c->spool_wait) {   /* activity since, or we are the slow one */
		timer_arm(&c->w->wheel, &c->timer, c->spool_wait ? c->idle_ms : c->deadline_ms - now);
		return;
	}
	log_info("event=timeout sid=%s client=%s", c->sid, c->peer);
	smtp_srv_timeout(c->smtp);
	collect(c);
	conn_close(c, false);
}

static void arm_recv(struct conn *c)
{
	struct worker *w = c->w;
	struct io_uring_sqe *sqe = uring_sqe(&w->ring);
	io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = w->bufs.bgid;
	io_uring_sqe_set_data64(sqe, uring_ud(c, URING_OP_RECV));
	c->recv_armed = 1;
}

/* Start the SMTP session for c->peer_sa (the socket peer, or the client a PROXY header
 * named): connection limits, relay permission, banner. */
static void session_begin(struct conn *c)
{
	struct worker *w = c->w;
	const struct config *cfg = w->snap->cfg;
	char reply[256];
	switch (connlimit_acquire((struct sockaddr *)&c->peer_sa, cfg->max_connections,
	                          cfg->max_connections_per_ip, &c->limit_slot)) {
	case CONNLIMIT_OK:
		c->limited = 1;
		break;
	case CONNLIMIT_TOTAL:
		log_warn("event=refused sid=%s client=%s reason=max_connections", c->sid, c->peer);
		snprintf(reply, sizeof reply, "421 4.7.0 %s Error: too many connections\r\n", cfg->hostname);
		refuse(c, reply);
		return;
	case CONNLIMIT_PER_IP:
		log_warn("event=refused sid=%s client=%s reason=max_connections_per_ip", c->sid, c->peer);
		snprintf(reply, sizeof reply, "421 4.7.0 %s Error: too many connections from %s\r\n",
		         cfg->hostname, c->peer);
		refuse(c, reply);
		return;
	}
	struct smtp_srv_limits lim = {
		.max_message_size = cfg->max_message_size,
		.max_recipients = cfg->max_recipients,
		.max_line_length = cfg->max_line_length,
		.max_errors = 20,
	};
	/* Relay permission keys on the client, which after PROXY is the proxied one. */
	c->relay_ok = cidr_lookup(cfg->relay_networks, (struct sockaddr *)&c->peer_sa);
	c->smtp = smtp_srv_new(cfg->hostname, c->peer, &lim, &conn_ops, c);
	if (!c->smtp) {
		refuse(c, "421 4.3.0 Error: out of memory\r\n");
		return;
	}
	smtp_srv_start(c->smtp);
	collect(c);
	c->deadline_ms = w->now_ms + c->idle_ms;
	timer_arm(&w->wheel, &c->timer, c->idle_ms);
}

void conn_accepted(struct worker *w, struct wlistener *l, int fd)
{
	const struct snapshot *snap = w->snap;
	const struct config_listener *lc = &snap->cfg->listeners[l->idx];
	struct conn *c = calloc(1, sizeof *c);
	if (!c) {
		close(fd);
		return;
	}
	c->w = w;
	c->fd = fd;
	c->listener = l->idx;
	snprintf(c->sid, sizeof c->sid, "%u.%llu", w->id, (unsigned long long)++w->sid_seq);
	socklen_t sl = sizeof c->peer_sa;
	if (getpeername(fd, (struct sockaddr *)&c->peer_sa, &sl) < 0) {
		close(fd);
		free(c);
		return;
	}
	peer_fmt(&c->peer_sa, c->peer, sizeof c->peer);
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	c->next = w->conns;
	if (w->conns)
		w->conns->prev = c;
	w->conns = c;
	w->nconns++;
	c->timer.fire = conn_timeout;
	c->idle_ms = snap->cfg->idle_timeout * 1000u;
	arm_recv(c);

	/* Who may speak PROXY: only a socket peer in this listener's proxy hosts, and only
	 * when the listener uses the protocol. Everyone else is an ordinary client. */
	bool trusted = lc->proxy_protocol != CONFIG_PROXY_OFF &&
	               cidr_lookup(snap->proxy_hosts[l->idx], (struct sockaddr *)&c->peer_sa);
	log_info("event=connect sid=%s client=%s listener=%s proxy_protocol=%s", c->sid, c->peer,
	         lc->id, trusted ? "expected" : "no");
	if (lc->proxy_protocol == CONFIG_PROXY_REQUIRED && !trusted) {
		log_warn("event=proxy_refused sid=%s client=%s reason=required", c->sid, c->peer);
		refuse(c, "421 4.7.0 PROXY required\r\n");
		return;
	}
	if (trusted) {
		/* No banner until a complete, valid header; the deadline does not move. */
		conn_enter(c, CONN_PH_PROXY);
		c->deadline_ms = w->now_ms + lc->proxy_timeout * 1000u;
		timer_arm(&w->wheel, &c->timer, lc->proxy_timeout * 1000u);
		return;
	}
	conn_enter(c, CONN_PH_SNIFF);
	session_begin(c);
}

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
static void proxy_apply(struct conn *c, const struct pp_result *r)
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
		peer_fmt(&c->peer_sa, c->peer, sizeof c->peer);
	}
	log_info("event=proxy sid=%s client=%s proxy=%s version=%u command=%s%s%s%s%s%s",
	         c->sid, c->peer, c->proxy, r->version, keep ? "local" : "proxy",
	         uid[0] ? " unique_id=" : "", uid, auth[0] ? " authority=" : "", auth,
	         r->crc32c_checked ? " crc32c=ok" : "");
}

/* Input while waiting for the header of a trusted proxy. */
static void proxy_input(struct conn *c, const uint8_t *p, size_t n)
{
	const struct config_listener *lc = &c->w->snap->cfg->listeners[c->listener];
	if (c->in.len + n > lc->proxy_max_header + 4096u || buf_append(&c->in, p, n) < 0) {
		log_warn("event=proxy_invalid sid=%s client=%s error=\"header too long\"", c->sid, c->peer);
		refuse(c, "421 4.7.0 Invalid PROXY header\r\n");
		return;
	}
	struct pp_result r;
	size_t used = 0;
	enum pp_err err = PP_E_NONE;
	switch (pp_parse(c->in.p, c->in.len, lc->proxy_max_header, &r, &used, &err)) {
	case PP_AGAIN:
		return;                         /* the deadline keeps running */
	case PP_ERR:
		log_warn("event=proxy_invalid sid=%s client=%s error=\"%s\"", c->sid, c->peer,
		         pp_strerror(err));
		refuse(c, "421 4.7.0 Invalid PROXY header\r\n");
		return;
	case PP_OK:
		break;
	}
	proxy_apply(c, &r);                 /* r's views die with the consume below */
	buf_consume(&c->in, used);
	timer_cancel(&c->timer);
	conn_enter(c, CONN_PH_SMTP);
	session_begin(c);
	if (!c->closing && c->in.len > 0)
		pump(c);                        /* e.g. an EHLO sent right behind the header */
}

/* The first bytes of a client that may not speak PROXY: a header gets the 421. */
static bool sniff(struct conn *c, const uint8_t *p, size_t n)
{
	uint8_t head[16];
	size_t have = c->in.len < sizeof head ? c->in.len : sizeof head;
	if (have > 0)
		memcpy(head, c->in.p, have);
	size_t more = n < sizeof head - have ? n : sizeof head - have;
	memcpy(head + have, p, more);
	switch (pp_detect(head, have + more)) {
	case PP_DETECT_NONE:
		conn_enter(c, CONN_PH_SMTP);
		return true;
	case PP_DETECT_MAYBE:
		if (buf_append(&c->in, p, n) < 0)
			conn_close(c, true);
		return false;
	case PP_DETECT_V1:
	case PP_DETECT_V2:
		break;
	}
	log_warn("event=proxy_refused sid=%s client=%s reason=not_allowed", c->sid, c->peer);
	smtp_srv_free(c->smtp);     /* the session said its banner and nothing else */
	c->smtp = NULL;
	refuse(c, "421 4.7.0 PROXY not allowed\r\n");
	return false;
}

/* Feed p[0..n) to the session until it stops; returns the bytes it consumed. */
static size_t feed(struct conn *c, const uint8_t *p, size_t n)
{
	size_t off = 0;
	while (off < n && !c->closing && !c->spool_wait) {
		size_t used = 0;
		enum smtp_srv_ev ev = smtp_srv_feed(c->smtp, p + off, n - off, &used);
		off += used;
		if (ev == SMTP_SRV_EV_MESSAGE) {
			const struct smtp_srv_msg *m = smtp_srv_message(c->smtp);
			c->arrival = (uint64_t)time(NULL);
			if (spool_append(&c->w->spool, c, m, c->peer, c->arrival) < 0) {
				log_err("event=spool_append_failed sid=%s qid=%s", c->sid, m->qid);
				smtp_srv_queue_failed(c->smtp);
				continue;
			}
			c->spool_wait = 1;
		} else if (ev == SMTP_SRV_EV_CLOSE) {
			collect(c);
			conn_close(c, false);
		} else if (ev != SMTP_SRV_EV_NONE || used == 0) {
			break;
		}
	}
	if (!c->closing)
		collect(c);
	return off;
}

/* Feed what is waiting in c->in. */
static void pump(struct conn *c)
{
	buf_consume(&c->in, feed(c, c->in.p, c->in.len));
}

static void input(struct conn *c, const uint8_t *p, size_t n)
{
	if (c->closing)
		return;
	if (c->phase == CONN_PH_PROXY) {
		proxy_input(c, p, n);
		return;
	}
	if (c->phase == CONN_PH_SNIFF && !sniff(c, p, n))
		return;
	if (!c->smtp)
		return;
	c->deadline_ms = c->w->now_ms + c->idle_ms;
	if (c->in.len == 0 && !c->spool_wait) {
		size_t used = feed(c, p, n);
		p += used;
		n -= used;
		if (n == 0 || c->closing)
			return;
	}
	if (c->in.len + n > CONN_IN_MAX || buf_append(&c->in, p, n) < 0) {
		log_warn("event=input_overflow sid=%s client=%s", c->sid, c->peer);
		conn_close(c, true);
		return;
	}
	if (!c->spool_wait)
		pump(c);
}

void conn_on_recv(struct conn *c, int res, unsigned flags)
{
	struct worker *w = c->w;
	if (!(flags & IORING_CQE_F_MORE))
		c->recv_armed = 0;
	if (res > 0) {
		unsigned bid = flags >> IORING_CQE_BUFFER_SHIFT;
		input(c, uring_bufs_ptr(&w->bufs, bid), (size_t)res);
		uring_bufs_recycle(&w->bufs, bid);
	} else if (res == 0 || (res < 0 && res != -ENOBUFS)) {
		if (!c->closing && c->smtp && res == 0)
			log_info("event=disconnect sid=%s client=%s", c->sid, c->peer);
		conn_close(c, true);
	}
	if (res == -ENOBUFS)
		w->enobufs++;
	if (!c->recv_armed && !c->closing)
		arm_recv(c);       /* multishot ended (e.g. -ENOBUFS): re-arm */
	if (c->closing)
		worker_mark_dirty(w, c);
}

void conn_on_send(struct conn *c, int res)
{
	c->sending = 0;
	if (res <= 0) {
		c->tx.len = c->tx.off = 0;
		c->q.len = 0;
		conn_close(c, true);
		worker_mark_dirty(c->w, c);
		return;
	}
	c->tx.off += (size_t)res;
	if (c->tx.off >= c->tx.len)
		c->tx.len = c->tx.off = 0;
	worker_mark_dirty(c->w, c);
}

void conn_spooled(void *arg, bool ok)
{
	struct conn *c = arg;
	const struct smtp_srv_msg *m = smtp_srv_message(c->smtp);
	char from[200];
	c->spool_wait = 0;
	if (ok)
		log_info("event=queued sid=%s qid=%s client=%s from=<%s> nrcpt=%zu size=%zu%s",
		         c->sid, m->qid, c->peer,
		         log_escape(from, sizeof from, m->mail_from, strlen(m->mail_from)),
		         m->nrcpt, m->len, c->closing ? " note=client_gone" : "");
	else
		log_err("event=queue_failed sid=%s qid=%s client=%s", c->sid, m->qid, c->peer);
	if (ok)
		smtp_srv_queued(c->smtp);
	else
		smtp_srv_queue_failed(c->smtp);
	if (c->closing) {
		worker_mark_dirty(c->w, c);
		return;
	}
	collect(c);
	if (c->in.len > 0)
		pump(c);
	if (c->w->stopping)
		conn_stop(c, false);
}

void conn_stop(struct conn *c, bool force)
{
	if (c->closing)
		return;
	if (!force && (c->spool_wait || (c->smtp && smtp_srv_in_transaction(c->smtp))))
		return;
	if (c->smtp && !c->spool_wait) {
		smtp_srv_shutdown(c->smtp);
		collect(c);
	}
	conn_close(c, false);
}

static void conn_free(struct conn *c)
{
	struct worker *w = c->w;
	close(c->fd);
	if (c->limited)
		connlimit_release(c->limit_slot);
	timer_cancel(&c->timer);
	if (c->prev)
		c->prev->next = c->next;
	else
		w->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	w->nconns--;
	smtp_srv_free(c->smtp);
	buf_fini(&c->in);
	buf_fini(&c->tx);
	buf_fini(&c->q);
	free(c);
}

void conn_flush(struct conn *c)
{
	struct worker *w = c->w;
	if (!c->sending && c->tx.len == 0 && c->q.len > 0) {
		struct buf t = c->tx;       /* swap: queued output goes in flight */
		c->tx = c->q;
		c->q = t;
		c->q.len = c->q.off = 0;
	}
	if (!c->sending && c->tx.len > c->tx.off) {
		struct io_uring_sqe *sqe = uring_sqe(&w->ring);
		io_uring_prep_send(sqe, c->fd, c->tx.p + c->tx.off, c->tx.len - c->tx.off, MSG_NOSIGNAL);
		io_uring_sqe_set_data64(sqe, uring_ud(c, URING_OP_SEND));
		c->sending = 1;
		return;
	}
	if (!c->closing || c->sending)
		return;
	if (!c->shut) {
		c->shut = 1;
		shutdown(c->fd, SHUT_RDWR);     /* ends the multishot recv */
	}
	if (!c->recv_armed && !c->spool_wait)
		conn_free(c);
}
