/* net/listener — listening sockets and the multishot accept on them. Every worker has its
 * own SO_REUSEPORT socket per configured listener, so the kernel spreads connections over
 * the workers and no accept is shared. Port 0 (tests) binds an ephemeral port for the
 * first socket and the same port for the others.
 *
 * An acceptor keeps one multishot accept armed on its socket and hands every new
 * connection to its owner. When the accept fails (EMFILE, ENFILE, ENOMEM...) it waits
 * LISTENER_RETRY_MS before arming again, so a process out of descriptors does not spin. */
#ifndef NET_LISTENER_H
#define NET_LISTENER_H
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "net/loop.h"
#include "net/timer.h"

#define LISTENER_RETRY_MS 100

struct listener_acceptor {
	struct net_op op;
	struct net_loop *loop;
	int fd;                        /* -1 once stopped */
	bool armed;
	struct timer retry;
	/* A new connection (fd >= 0), or an accept error (-errno; the acceptor re-arms). */
	void (*accepted)(struct listener_acceptor *a, int fd);
	void *ctx;                     /* the owner's */
	unsigned long errors;
};

/* Is the address free? A plain bind (no SO_REUSEPORT) of a throw-away socket: another
 * process listening there, even with SO_REUSEPORT, makes it fail (-EADDRINUSE), so a
 * second relay cannot quietly share the port and take half the mail. 0 or -errno. */
int listener_probe(const struct sockaddr_storage *sa, socklen_t len);
/* Open, bind and listen. *sa's port is updated to the bound one. Returns fd or -errno. */
int listener_open(struct sockaddr_storage *sa, socklen_t len);
/* "127.0.0.1:2525" / "[::1]:2525" */
void listener_fmt(const struct sockaddr *sa, char *buf, size_t len);
/* The address alone, an IPv4-mapped IPv6 address as IPv4: "203.0.113.9", "2001:db8::1". */
void listener_addr_fmt(const struct sockaddr_storage *sa, char *buf, size_t len);

/* Start accepting on fd (the acceptor owns it from here: stop closes it). 0 or -EBUSY. */
int listener_accept_start(struct listener_acceptor *a, struct net_loop *l, int fd,
                          void (*accepted)(struct listener_acceptor *, int), void *ctx);
/* Stop: shutdown ends the multishot accept, the socket is closed. */
void listener_accept_stop(struct listener_acceptor *a);

/* net/loop's side. */
void listener_on_accept(struct listener_acceptor *a, int res, unsigned flags);
static inline struct listener_acceptor *listener_acceptor_of(struct net_op *op)
{
	return (struct listener_acceptor *)(void *)op;   /* op is the first member */
}

#endif
