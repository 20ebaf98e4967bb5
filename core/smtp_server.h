/* core/smtp_server — the SMTP server application: a net/stream carrying a proto/smtp_srv
 * session, with the PROXY header in front of it when the listener asks for one. Its owner
 * (the relay's inbound policy, or ringsink) decides who is admitted, who may relay, what
 * the queue ids are and what becomes of a message; this module does the conversation.
 *
 * Life of a connection:
 *   accepted -> [PROXY: no banner until a complete, valid header within proxy_timeout]
 *            -> [SNIFF: banner sent, the first octets are checked for a PROXY header]
 *            -> SMTP -> CLOSING (the last reply goes out, then the stream closes)
 * After a valid header the client is the proxied one (LOCAL/UNKNOWN keep the socket's).
 * ops->admit() is called once the client is known and may refuse it with a reply.
 *
 * A complete message goes to ops->message(); the input is held (nothing more is read
 * from that client) until the owner answers with smtp_server_answer() /
 * smtp_server_refuse() / smtp_server_drop(). The connection's memory — and the message,
 * which the owner may still be writing — stays valid until that answer, even if the
 * client went away meanwhile.
 *
 * TLS (a listener with a context): STARTTLS is offered (or required before MAIL), or the
 * stream speaks TLS from its first octet (implicit; behind a PROXY header, from the octet
 * after the header; where a header may not come, the first octets are looked at first, so
 * that one still gets 421 PROXY not allowed in plaintext). After STARTTLS's 220 every octet the client pipelined behind the
 * command is dropped (CVE-2011-0411) and the session starts again from before EHLO. The
 * handshake counts as activity for the idle timeout like any input; one that never ends
 * is cut by it. A refusal before an implicit handshake ends (admit) is not said: the
 * connection just closes.
 *
 * Bounds: replies are produced from at most SMTP_SERVER_FEED octets of commands at a
 * time, and no input is used while the pending output is at the stream's high-water mark
 * (a client that pipelines and never reads is not read either); output that does not
 * move for the idle timeout aborts the connection; idle (no input, no output progress)
 * for the idle timeout: 421 and close. */
#ifndef CORE_SMTP_SERVER_H
#define CORE_SMTP_SERVER_H
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "net/loop.h"
#include "net/stream.h"
#include "net/timer.h"
#include "net/tls.h"
#include "proto/smtp_srv.h"

#define SMTP_SERVER_FEED 1024u          /* octets of commands per smtp_srv_feed() */
#define SMTP_SERVER_SNIFF_MS 1000u      /* octets that might begin a PROXY header: wait */

enum smtp_server_proxy {
	SMTP_SERVER_PROXY_PLAIN = 0,    /* no PROXY detection at all (ringsink without --proxy) */
	SMTP_SERVER_PROXY_SNIFF,        /* banner; a PROXY header gets 421 PROXY not allowed */
	SMTP_SERVER_PROXY_EXPECT,       /* no banner until a complete valid header */
};

enum smtp_server_tls {
	SMTP_SERVER_TLS_OFF = 0,
	SMTP_SERVER_TLS_STARTTLS,       /* offered in EHLO */
	SMTP_SERVER_TLS_REQUIRED,       /* offered; MAIL before it: 530 5.7.0 */
	SMTP_SERVER_TLS_IMPLICIT,       /* TLS from the first octet (after a PROXY header) */
};

/* What the input is for. Only server_enter() changes it. */
enum smtp_server_phase {
	SMTP_SERVER_PH_NONE = 0,
	SMTP_SERVER_PH_PROXY,
	SMTP_SERVER_PH_SNIFF,
	SMTP_SERVER_PH_SMTP,
	SMTP_SERVER_PH_CLOSING,
};

struct smtp_server;

struct smtp_server_conn {
	struct net_stream st;
	struct smtp_server *srv;
	struct smtp_server_conn *next, *prev;   /* the server's list */
	enum smtp_server_phase phase;
	struct smtp_srv *smtp;
	struct timer timer;                     /* PROXY deadline, then the idle timeout */
	uint64_t proxy_deadline_ms;
	uint64_t sniff_deadline_ms;             /* SNIFF: when to stop waiting for more */
	unsigned idle_ms;
	unsigned min_data_rate;                 /* octets/s a message's data must average
	                                         * after idle_ms (0: no such rule) */
	bool in_data;                           /* the session is reading message data */
	uint64_t data_start_ms;                 /* ... since then */
	uint64_t data_octets;                   /* ... and has read this much of it */
	unsigned proxy_max_header;
	unsigned listener;                      /* the owner's listener index */
	struct net_tls_ctx *tls_ctx;            /* a reference, or NULL: no TLS */
	enum smtp_server_tls tls_mode;
	bool waiting;                           /* a message is with the owner */
	bool released;                          /* the stream is gone; free after the answer */
	char sid[24];
	char peer[INET6_ADDRSTRLEN];            /* the client: the proxied one after a header */
	struct sockaddr_storage peer_sa;
	char proxy[INET6_ADDRSTRLEN];           /* the socket peer when it was a proxy, else "" */
	void *app;                              /* the owner's per-connection data (app_size) */
};

/* What admit() fills in for the session. */
struct smtp_server_params {
	const char *hostname;
	struct smtp_srv_limits lim;
	unsigned idle_ms;
	unsigned min_data_rate;             /* octets/s; 0: none (see data_deadline) */
};

struct smtp_server_start;

struct smtp_server_ops {
	/* A new connection from c->peer_sa on listener c->listener: say how it starts. */
	void (*start)(struct smtp_server_conn *c, struct smtp_server_start *how);
	/* The client is known. Fill *p and return NULL to start the session, or return a
	 * whole reply ("421 ...\r\n", may be written into buf) to refuse the connection. */
	const char *(*admit)(struct smtp_server_conn *c, struct smtp_server_params *p,
	                     char *buf, size_t cap);
	bool (*rcpt_allowed)(struct smtp_server_conn *c, const char *domain, size_t len);
	bool (*new_qid)(struct smtp_server_conn *c, char *buf, size_t cap);
	/* Optional: room for a message of size octets (MAIL's SIZE=, 0: not given)? */
	bool (*mail_room)(struct smtp_server_conn *c, uint64_t size);
	/* Optional (both or neither): the message buffer's memory budget (proto/smtp_srv's
	 * mem_take and mem_give). */
	bool (*mem_take)(struct smtp_server_conn *c, size_t n);
	void (*mem_give)(struct smtp_server_conn *c, size_t n);
	void (*message)(struct smtp_server_conn *c, const struct smtp_srv_msg *m);
	/* Optional: the connection is about to be freed (admitted or not). */
	void (*gone)(struct smtp_server_conn *c);
};

/* Connections this module refuses itself (a PROXY header that is invalid, late, or from
 * a client that may not send one); the owner's own refusals (admit, start) are its to
 * count. */
enum smtp_server_refusal {
	SMTP_SERVER_REFUSED_PROXY_INVALID = 0,
	SMTP_SERVER_REFUSED_PROXY_TIMEOUT,
	SMTP_SERVER_REFUSED_PROXY_NOT_ALLOWED,
	SMTP_SERVER_REFUSED_N,
};

#define SMTP_SERVER_REPLY_CLASSES 4u    /* 2xx, 3xx, 4xx, 5xx */

struct smtp_server {
	struct net_loop *loop;
	const struct smtp_server_ops *ops;
	void *ctx;                              /* the owner's */
	size_t app_size;
	unsigned id;                            /* first part of session ids "ID.N" */
	struct smtp_server_conn *conns;
	size_t nconns;
	uint64_t sid_seq;
	/* counters, for the owner's statistics: replies handed to the stream (a multi-line
	 * reply counts once, by its last line's code), refusals */
	uint64_t replies[SMTP_SERVER_REPLY_CLASSES];
	uint64_t refused[SMTP_SERVER_REFUSED_N];
};

/* How one accepted connection starts. */
struct smtp_server_start {
	enum smtp_server_proxy proxy;
	unsigned proxy_timeout_ms;
	unsigned proxy_max_header;              /* octets a v2 header may take */
	const char *listener_id;                /* for the log */
	const char *refuse;                     /* non-NULL: say this reply and close at once */
	struct net_tls_ctx *tls;                /* NULL: no TLS (the connection takes a ref) */
	enum smtp_server_tls tls_mode;
};

void smtp_server_init(struct smtp_server *srv, struct net_loop *l,
                      const struct smtp_server_ops *ops, void *ctx, size_t app_size,
                      unsigned id);
/* A new connection on the owner's listener number `listener` (takes fd). */
void smtp_server_accept(struct smtp_server *srv, int fd, unsigned listener);
/* Graceful stop: every session outside a transaction says 421 and closes; with force,
 * every connection is cut now. */
void smtp_server_stop(struct smtp_server *srv, bool force);
/* After the loop is gone: free what is left (no callbacks into the ring). */
void smtp_server_fini(struct smtp_server *srv);

/* The TLS in force: true with its version and cipher, false when plaintext. */
bool smtp_server_tls(const struct smtp_server_conn *c, const char **version,
                     const char **cipher);

/* The owner's answer to ops->message(). */
void smtp_server_answer(struct smtp_server_conn *c, bool queued);
void smtp_server_refuse(struct smtp_server_conn *c, const char *reply);
void smtp_server_drop(struct smtp_server_conn *c);

#endif
