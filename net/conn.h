/* net/conn — an inbound connection: the bridge between the ring (recv/send completions),
 * the pure SMTP session (proto/smtp_srv) and the spool.
 *
 * Life cycle: accepted -> (session) -> closing: the last output is sent, then
 * shutdown(SHUT_RDWR) ends the multishot recv, and the connection is freed once no
 * operation of the ring and no spool commit still refers to it. */
#ifndef NET_CONN_H
#define NET_CONN_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include "core/timer.h"
#include "net/buf.h"
#include "proto/smtp_srv.h"

struct worker;
struct wlistener;

/* What the input is for. Only conn_enter() changes it. */
enum conn_phase {
	CONN_PH_NONE = 0,
	CONN_PH_PROXY,      /* a trusted proxy peer: no banner until a complete valid header */
	CONN_PH_SNIFF,      /* banner sent; the first bytes are checked for a PROXY header */
	CONN_PH_SMTP,       /* the SMTP session owns the input */
	CONN_PH_CLOSING,    /* the last words are queued; nothing more is read */
};

struct conn {
	struct worker *w;
	struct conn *next, *prev;      /* worker's list */
	struct conn *dirty_next;
	int fd;
	enum conn_phase phase;
	unsigned listener;             /* index into cfg->listeners */
	unsigned dirty : 1, sending : 1, recv_armed : 1, closing : 1, shut : 1,
	         spool_wait : 1, relay_ok : 1, limited : 1;
	uint32_t limit_slot;
	char sid[24];
	char peer[INET6_ADDRSTRLEN];   /* the client: the proxied one after a PROXY header */
	struct sockaddr_storage peer_sa;
	char proxy[INET6_ADDRSTRLEN];  /* the socket peer when it was a proxy, else "" */
	struct smtp_srv *smtp;
	struct buf in;            /* input the session has not consumed yet */
	struct buf tx, q;         /* in flight; queued behind it */
	struct timer timer;
	uint64_t deadline_ms;
	unsigned idle_ms;
	uint64_t arrival;              /* of the message being spooled */
};

/* A new connection from a multishot accept. */
void conn_accepted(struct worker *w, struct wlistener *l, int fd);
/* Completions. */
void conn_on_recv(struct conn *c, int res, unsigned flags);
void conn_on_send(struct conn *c, int res);
/* The spool's verdict for c's message (spool done callback). */
void conn_spooled(void *c, bool ok);
/* End of loop turn: send what is queued, carry out a close, free if finished. */
void conn_flush(struct conn *c);
/* Graceful stop: close c now if it is not inside a transaction. */
void conn_stop(struct conn *c, bool force);

#endif
