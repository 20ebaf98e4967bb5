/* core/deliver — the delivery connections of a site: a net_stream (net/connect) driven
 * by the pure SMTP client of proto/smtp_cli.
 *
 * A site with ready jobs gets connections up to its max_connections; an idle connection
 * takes the next job at once (RSET, then the next transaction: reuse), waits up to
 * DELIVER_IDLE_MS for one, then QUITs. A connection ends after the transport's
 * max_messages_per_connection. Once its QUIT is out, a connection no longer counts
 * against the site's limits (a next hop that never answers QUIT cannot hold them for the
 * quit timeout); its wait for the 221 is bounded by that timeout, and its end then is no
 * failure of the site. A rate that holds the site back wakes it to the millisecond
 * (net/alarm), so message_rate and connection_rate are met, not halved by timer ticks. Every wait for the server is bounded by the RFC 5321
 * timeout of its state (smtp_cli_timeout), counted from the start of the wait (octets
 * that trickle in do not extend it), the connect by DELIVER_CONNECT_MS, a body
 * that does not move by the data block timeout. A connection that fails before it
 * completed a transaction (refused, timeout, 4xx/5xx greeting, a 421 after EHLO, cut
 * after the greeting) counts against the site and the next one uses the site's next
 * address; after QUEUE_DEAD_AFTER such failures in a row with no proven connection the
 * site is dead for the first retry interval: its ready jobs are deferred at once
 * (queue_site_fail), not each after its own timeout. A completed transaction proves the
 * site and clears the count.
 *
 * Concurrency feedback, as Postfix does it: a site starts at DELIVER_INITIAL_WINDOW
 * connections (at most max_connections); every `window` completed transactions open the
 * window by one, up to max_connections; every connection that fails before completing a
 * transaction closes it by one, down to one. So a new or struggling site is not hit with
 * max_connections at once, and a healthy one grows to its limit.
 *
 * The body goes out as stored: with BDAT as is (borrowed, no copy), with DATA through the
 * dot-stuffer in borrowed runs. The message is held (referenced) until the stream no
 * longer needs its bytes: up to DELIVER_PINS messages per connection; a connection whose
 * pins are all in use and whose output has not drained takes no new job.
 *
 * A job whose body is being read from the spool belongs to its connection only while
 * that connection lives: a connection that ends meanwhile lets go of it, and the read's
 * completion hands it back to the site's ready queue (deliver_job_body() returns false). */
#ifndef CORE_DELIVER_H
#define CORE_DELIVER_H
#include <stdbool.h>

#include "core/egress.h"
#include "core/queue.h"
#include "core/tlsout.h"
#include "net/alarm.h"
#include "net/stream.h"
#include "net/timer.h"
#include "proto/smtp_cli.h"

#define DELIVER_IDLE_MS 5000u
#define DELIVER_CONNECT_MS 30000u
#define DELIVER_PINS 4u
#define DELIVER_INITIAL_WINDOW 5u
#define DELIVER_CUT_PROOF_MS 600000u     /* a site's transaction through the pool proves it
                                         * takes mail for this long (core/deliver's
                                         * passive_cut) */
#define DELIVER_CUT_IDLE_MS 3000u        /* a first job later than this after the greeting:
                                         * a cut may be the proxy's idle timeout */
#define DELIVER_READ_RETRY_MS 20u          /* a body read the ring could not take: again */

struct dconn {
	struct net_stream s;
	struct smtp_cli cli;
	struct queue *q;
	struct queue_site *site;
	struct dconn *next;                /* in the site's list */
	struct timer t;
	struct queue_job *job;
	struct queue_msg *pins[DELIVER_PINS];  /* bodies that may still be in the send queue */
	unsigned npins;
	unsigned addr;                     /* index of the site's address in use */
	unsigned msgs;                     /* transactions begun on this connection */
	uint64_t t_start_ms;               /* connect began */
	uint64_t wait_key;                 /* the wait the timer was armed for */
	unsigned connect_ms;               /* the transport's connect timeout */
	const uint8_t *body;               /* the job's body (the message's, pinned) */
	size_t body_len;
	bool greeted, closing, fail_counted;
	bool quitting;                     /* QUIT sent: counted in site->nquitting */
	bool proven;                       /* a transaction completed on it */
	bool started;                      /* the job's transaction was begun */
	bool waiting_body;                 /* the job's body is being read */
	char relay[300];                   /* "host[ip]:port" */
	/* core/egress: its transport's sources and pool (NULL: neither), its source (index,
	 * EGRESS_NONE: none) and pool server (through a proxy), and the log's relay= with
	 * ", source=ADDR, proxy=SERVER" when et is set */
	const struct egress_transport *et;
	size_t si, server;
	bool proxied;
	uint64_t dest_key;                 /* of its site, sources aside (egress's unclear
	                                    * failures and cuts: one site, one destination,
	                                    * whatever its MX addresses) */
	uint64_t greeted_ms;               /* when its greeting (and EHLO) came */
	uint64_t done_said_ms;             /* when it last told egress a transaction ended */
	bool job_at_once;                  /* its first job came within DELIVER_CUT_IDLE_MS
	                                    * of the greeting (see passive_cut) */
	/* TLS (core/tlsout): the transport's `tls` and client context (NULL: none), the
	 * destination's key in the worker's cache, whether STARTTLS is skipped (tls: none,
	 * or plaintext after a failed opportunistic handshake), begun (220 to STARTTLS: the
	 * handshake runs) and done */
	enum config_out_tls tls_mode;
	struct net_tls_ctx *tls_ctx;
	uint64_t tls_key, tls_gen;         /* tls_gen: core/tlsout's table it was made under */
	bool tls_skip, tls_began, tls_up;
	bool tls_offered;                  /* a kept session was offered for resumption */
	char tls_name[256];                /* the MX host's name: SNI and `verify`'s name */
	char relay_log[520];
};

/* Site s has ready jobs: give them to idle connections, open more up to the limit. */
void deliver_kick(struct queue_site *s);
/* The body of job j was read (ok) or could not be (the queue ends the job). Returns
 * whether a connection still waited for it; if not, the queue puts j back. */
bool deliver_job_body(struct queue_job *j, bool ok);
/* Cut every connection of q (the worker stops). */
void deliver_stop(struct queue *q);
/* Connections still open (or closing) in q. */
unsigned deliver_conns(const struct queue *q);

#endif
