/* net/connect — an outgoing TCP connection for the ring: a non-blocking socket whose
 * connect() is left in progress. The owner hands the fd to a net_stream and starts it;
 * the stream's first receive completion reports the server's first bytes, or the connect
 * error (ECONNREFUSED, ETIMEDOUT, ...) through ops->lost(). The owner bounds the wait for
 * the connection with a timer of its own (the kernel's SYN retries take minutes).
 *
 * With a source address, the socket is bound to it before the connect, with
 * IP_BIND_ADDRESS_NO_PORT so the port is chosen at connect time (per destination, not per
 * source: many more connections from one source address). Used by ringblast and by the
 * delivery client alike. */
#ifndef NET_CONNECT_H
#define NET_CONNECT_H
#include <sys/socket.h>

/* Returns the fd (the connect in progress, or already done), or -errno when the socket,
 * the bind or the connect failed at once. src may be NULL (the kernel chooses). */
int net_connect_start(const struct sockaddr_storage *dst, socklen_t dstlen,
                      const struct sockaddr_storage *src, socklen_t srclen);

#endif
