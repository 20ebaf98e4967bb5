/* net/tls — the TLS filter: wolfSSL over in-memory IO, no socket, no blocking call, no
 * thread. Ciphertext goes in with net_tls_feed() (from a stream's receive completions)
 * and comes out of net_tls_out() (for the stream's send queue); plaintext comes out of
 * net_tls_plain() and goes in with net_tls_write(). The filter never waits: when it
 * needs more ciphertext it says NET_TLS_AGAIN and keeps what it was given.
 *
 * Switching a stream to TLS after some plaintext (STARTTLS): the filter starts empty, so
 * whatever plaintext the peer pipelined behind STARTTLS is not in it; the owner must drop
 * it (net_stream_discard_input(), and not use the rest of the current offer), never feed
 * it (CVE-2011-0411). Implicit TLS behind a PROXY header is the other way round: the
 * octets after the header are the ClientHello's and go to net_tls_feed().
 *
 * Handshake work is bounded per loop turn by a budget the owner refills each turn (its
 * turn hook): a feed that would run a handshake step with the budget spent takes nothing
 * and returns NET_TLS_BUDGET; the caller keeps the octets and feeds them again after the
 * refill. Sessions already established never touch the budget.
 *
 * After the handshake net_tls_version() and net_tls_cipher() name what was agreed (for
 * the logs and the Received: header). A fatal error leaves an alert in the output, if
 * wolfSSL made one: send it, then close. */
#ifndef NET_TLS_H
#define NET_TLS_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net/buf.h"

enum net_tls_role {
	NET_TLS_SERVER = 0,
	NET_TLS_CLIENT,
};

enum net_tls_res {
	NET_TLS_OK = 0,        /* progress: the handshake is done or plaintext may be there */
	NET_TLS_AGAIN,         /* needs more ciphertext (everything given was taken) */
	NET_TLS_BUDGET,        /* the handshake budget of this turn is spent; nothing taken */
	NET_TLS_CLOSED,        /* the peer sent close_notify, or its TCP stream ended after
	                          a whole record (net_tls_peer_eof): no more plaintext */
	NET_TLS_ERR,           /* fatal: net_tls_error() says why; close after the output */
};

struct net_tls_conf {
	enum net_tls_role role;
	const char *cert_file, *key_file;   /* PEM; required for a server, optional client */
	const char *ca_file;                /* client: verify the peer against it (and name) */
	int version;                        /* 0: TLS 1.2 and 1.3; 12 or 13: that one only */
};

/* Handshake steps allowed per loop turn, for every filter of a loop. */
struct net_tls_budget {
	unsigned per_turn, left;
	uint64_t spent;                     /* feeds refused for want of budget, ever */
};
static inline void net_tls_budget_refill(struct net_tls_budget *b) { b->left = b->per_turn; }

struct net_tls_ctx;
struct net_tls;

/* A context per listener or transport (certificate, key, CA). NULL on failure with the
 * reason in err. The files are read now: a reload makes a new context (connections
 * keep the one they began with: a context is freed after its last filter). */
struct net_tls_ctx *net_tls_ctx_new(const struct net_tls_conf *c, char *err, size_t errlen);
void net_tls_ctx_free(struct net_tls_ctx *c);
/* One more reference (for a holder that makes filters later, e.g. a connection that may
 * say STARTTLS): dropped with net_tls_ctx_free(). Returns c. */
struct net_tls_ctx *net_tls_ctx_ref(struct net_tls_ctx *c);

/* One connection. server_name: the client's SNI (and the name verified with ca_file);
 * NULL for none. NULL when out of memory. */
struct net_tls *net_tls_new(struct net_tls_ctx *c, const char *server_name);
void net_tls_free(struct net_tls *t);

/* Ciphertext in (n may be 0: go on with what is buffered). Runs the handshake (one step,
 * charged to b unless b is NULL) and then decrypts into the plaintext buffer up to
 * NET_TLS_PLAIN_MAX octets. *taken: octets of p used (the caller keeps the rest and feeds
 * it again: all are taken unless plaintext piles up or the budget is spent). */
#define NET_TLS_PLAIN_MAX (64u * 1024u)
enum net_tls_res net_tls_feed(struct net_tls *t, const uint8_t *p, size_t n, size_t *taken,
                              struct net_tls_budget *b);
/* The peer's TCP stream ended: a handshake or record cut short is an error from now on. */
void net_tls_peer_eof(struct net_tls *t);

/* Plaintext received and not yet used. */
const uint8_t *net_tls_plain(const struct net_tls *t, size_t *n);
void net_tls_plain_used(struct net_tls *t, size_t n);
/* Drop the plaintext not yet used. */
void net_tls_discard(struct net_tls *t);

/* Plaintext out: encrypted into the output at once. 0, -EAGAIN (handshake not done),
 * -EPIPE (closed or failed), -ENOMEM. */
int net_tls_write(struct net_tls *t, const void *p, size_t n);
/* Send close_notify (once). */
void net_tls_close(struct net_tls *t);

/* Ciphertext to send (handshake, records, alerts). The caller copies it out (e.g.
 * net_stream_write) and says how much it took. */
const uint8_t *net_tls_out(const struct net_tls *t, size_t *n);
void net_tls_out_used(struct net_tls *t, size_t n);

bool net_tls_established(const struct net_tls *t);
/* A client's filter (it speaks first: its owner runs a first handshake step at once). */
bool net_tls_is_client(const struct net_tls *t);
/* A client's peer certificate was checked against the context's CA file and the name
 * given to net_tls_new() (false without a CA file: opportunistic, any peer taken). */
bool net_tls_verified(const struct net_tls *t);

/* Resumption, client side (RFC 8446 2.2, RFC 5077): after the handshake (for TLS 1.3
 * once the server's NewSessionTicket was read: after its first reply),
 * net_tls_session_get() gives the session to resume, or NULL; a new filter to the same
 * peer takes it with net_tls_session_use() before its first step (a session the server
 * will not resume just gives a full handshake). net_tls_resumed(): this handshake was
 * a resumption. A session is one thread's: keep it in a per-loop cache. */
struct net_tls_session;
struct net_tls_session *net_tls_session_get(struct net_tls *t);
/* A client asks for a TLS 1.2 session ticket (RFC 5077; TLS 1.3 needs no asking), before
 * its first step: a server that keeps no session cache (Postfix's default) can then
 * resume. Beware: wolfSSL 5.5's client offering a ticket the server does not take (one
 * of two servers behind an address, with other ticket keys) fails that handshake with
 * "Out of order message" instead of making a full one. false: not asked (no support). */
bool net_tls_ask_ticket(struct net_tls *t);
void net_tls_session_use(struct net_tls *t, struct net_tls_session *s);
void net_tls_session_free(struct net_tls_session *s);
bool net_tls_resumed(const struct net_tls *t);
/* "TLSv1.3", "TLSv1.2", ... and the cipher suite's IANA name (TLS_AES_128_GCM_SHA256),
 * or "-" before the handshake. */
const char *net_tls_version(const struct net_tls *t);
const char *net_tls_cipher(const struct net_tls *t);
/* Why NET_TLS_ERR (or "" when none). */
const char *net_tls_error(const struct net_tls *t);

#endif
