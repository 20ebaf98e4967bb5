/* core/tlsout — outbound TLS's state: a client context per transport that may use TLS
 * (with its tls_ca_file for `verify`), made by the main thread at start and on SIGHUP and
 * swapped in for new connections (RCU, like core/inbound's listener contexts); and per
 * worker a cache of destinations, each the TLS session to resume on the next connection
 * to it (RFC 5077 / 8446 tickets) and, after its opportunistic handshake failed, until
 * when it is spoken to in plaintext.
 *
 * A destination is (transport, address, port, name, the table's generation and the
 * transport's mode): the same MX host reached for two transports, or under two names, is
 * two entries; and every load is a new generation, so a session made under an older
 * context (another CA file, or `opportunistic` before a reload to `verify`) is never
 * offered again: a resumed TLS 1.3 session is not verified anew, so it must come from a
 * full handshake under the same rules. Connections opened under an older generation
 * take no new job (core/deliver): after a reload to `required`, nothing more goes out
 * over a plaintext connection opened before it. The cache has TLSOUT_SLOTS entries
 * per worker, one per hash of the destination: a newcomer takes the slot of an older
 * one (its session is dropped: one more full handshake), so memory stays bounded however
 * many destinations a worker talks to. */
#ifndef CORE_TLSOUT_H
#define CORE_TLSOUT_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "cfg/config.h"
#include "net/tls.h"

#define TLSOUT_SLOTS 1024u
#define TLSOUT_PLAIN_MS (3600u * 1000u)   /* plaintext after a failed opportunistic handshake */

/* The transports' client contexts from cfg. -1 with the reason in err when a CA file
 * cannot be loaded: the old contexts stay. */
int tlsout_load(const struct config *cfg, char *err, size_t errlen);
void tlsout_fini(void);
/* Transport id's mode and context (a reference for the caller: net_tls_ctx_free; NULL
 * for `tls: none`), from one table, so that the two always agree (the configuration
 * snapshot is published after the table on a reload), and the table's generation. A
 * transport the table does not know is `required` with no context: its connections
 * fail closed (deferred), never plaintext. A worker calls it between its quiescent
 * states (urcu-qsbr). */
struct net_tls_ctx *tlsout_ctx(const char *transport, enum config_out_tls *mode, uint64_t *gen);
/* The generation of the table in force (0: none loaded). */
uint64_t tlsout_generation(void);
/* Whether the table in force has transport id (a reload publishes the table before the
 * workers see the new configuration: a transport it renamed or removed is briefly in a
 * worker's configuration and not in the table). */
bool tlsout_has(const char *transport);

struct tlsout_dest {
	uint64_t key;                      /* 0: empty */
	struct net_tls_session *sess;      /* to resume, or NULL */
	uint64_t plain_until_ms;           /* opportunistic: no STARTTLS before then */
	bool sess_v12;                     /* sess is a TLS 1.2 one (a ticket, or an id) */
	bool no_ticket;                    /* a TLS 1.2 ticket failed here: ask for none */
};

struct tlsout_cache {
	struct tlsout_dest slot[TLSOUT_SLOTS];
	uint64_t evicted;                  /* sessions dropped for a newcomer */
};

/* The key of a destination (never 0). */
uint64_t tlsout_key(const char *transport, const struct sockaddr_storage *ss, const char *name,
                    uint64_t gen, enum config_out_tls mode);
/* Its entry, or NULL when it has none. */
struct tlsout_dest *tlsout_find(struct tlsout_cache *c, uint64_t key);
/* Its entry, made when missing (taking over the slot). NULL when c is NULL. */
struct tlsout_dest *tlsout_get(struct tlsout_cache *c, uint64_t key);
/* Keep sess (owned from now on) as the destination's session to resume; v12: it was
 * made at TLS 1.2. */
void tlsout_keep(struct tlsout_cache *c, uint64_t key, struct net_tls_session *sess, bool v12);
void tlsout_cache_free(struct tlsout_cache *c);

#endif
