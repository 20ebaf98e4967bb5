/* core/ops — the operator's thread: one loop of the shared runtime (net/loop,
 * net/listener, net/stream) apart from the workers, serving the control socket
 * (core/control) and the Prometheus listener (core/metrics). The workers' data path never
 * serves an operator: the thread reads what workers publish (core/stats) and asks them
 * for the rest by letter (net/post, through the workers' post office).
 *
 * A service is a listener with its own connection type (struct ops_conn first), an input
 * function, a bound on connections at once, on the octets a request may pile up (then the
 * stream is lost), a time for the request to arrive (request_ms: until input() first
 * takes octets) and a deadline for the exchange once asked (deadline_ms); past either the
 * connection is cut. A connection that comes when all places are taken takes the place of
 * the oldest one that has not asked yet, of the peer (address; for the Unix socket, the
 * process) that holds the most such places (a client that connects and says nothing, or
 * trickles half a request, or floods connects, cannot keep the operator out); when every
 * place is asking, it is closed at once. The thread starts before the workers' first scrape or
 * command can come and stops after the workers (their last figures and answers are in). */
#ifndef CORE_OPS_H
#define CORE_OPS_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cfg/config.h"
#include "net/listener.h"
#include "net/stream.h"
#include "net/timer.h"

struct server;
struct ops_conn;

struct ops_service {
	const char *name;
	size_t conn_size;                  /* its connection: struct ops_conn first */
	/* input as net/stream's: the octets used (0: more, please) */
	size_t (*input)(struct ops_conn *c, const uint8_t *p, size_t n);
	void (*gone)(struct ops_conn *c);  /* optional: before the connection is freed */
	size_t in_max;
	unsigned max_conns, request_ms, deadline_ms;
	/* the thread's */
	struct listener_acceptor acc;
	int fd;
	unsigned nconns, nevicted;         /* nevicted: of nconns, cut for a newer one */
	uint64_t accepted, refused, evicted;
};

struct ops_conn {
	struct net_stream s;
	struct timer t;
	struct ops_conn *next, *prev;
	struct ops_service *svc;
	bool answered;
	bool asked;                        /* input() took octets: a request came */
	bool evicted;                      /* cut to make room (counted in svc->nevicted) */
	uint64_t peer;                     /* who: its address (TCP), its process (Unix) */
};

/* Open the control socket and (when configured) the metrics listener, and start the
 * thread. 0, or -errno with what in *what ("control", "metrics"). */
int ops_start(struct server *srv, const struct config *cfg, const char **what);
void ops_stop(void);

struct net_loop *ops_loop(void);
struct server *ops_server(void);
/* Answer and close: the whole reply is written, then the stream closes. */
void ops_answer(struct ops_conn *c, const void *p, size_t n);

#endif
