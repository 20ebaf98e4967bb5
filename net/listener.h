/* net/listener — listening sockets. Every worker has its own SO_REUSEPORT socket per
 * configured listener, so the kernel spreads connections over the workers and no accept
 * is shared. Port 0 (tests) binds an ephemeral port for the first socket and the same
 * port for the others. */
#ifndef NET_LISTENER_H
#define NET_LISTENER_H
#include <sys/socket.h>

/* Open, bind and listen. *sa's port is updated to the bound one. Returns fd or -errno. */
int listener_open(struct sockaddr_storage *sa, socklen_t len);
/* "127.0.0.1:2525" / "[::1]:2525" */
void listener_fmt(const struct sockaddr *sa, char *buf, size_t len);

#endif
