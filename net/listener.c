/* net/listener — see listener.h. */
#include "net/listener.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int listener_open(struct sockaddr_storage *sa, socklen_t len)
{
	int fd = socket(sa->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	int one = 1;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0)
		goto fail;
	if (sa->ss_family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) < 0)
		goto fail;
	if (bind(fd, (struct sockaddr *)sa, len) < 0 || listen(fd, 4096) < 0)
		goto fail;
	socklen_t l = len;
	if (getsockname(fd, (struct sockaddr *)sa, &l) < 0)
		goto fail;
	return fd;
fail:;
	int e = errno;
	close(fd);
	return -e;
}

int listener_probe(const struct sockaddr_storage *sa, socklen_t len)
{
	int fd = socket(sa->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	int one = 1, ret = 0;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (sa->ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
	if (bind(fd, (const struct sockaddr *)sa, len) < 0)
		ret = -errno;
	close(fd);
	return ret;
}

void listener_fmt(const struct sockaddr *sa, char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN] = "?";
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)(const void *)sa;
		inet_ntop(AF_INET6, &s6->sin6_addr, a, sizeof a);
		snprintf(buf, len, "[%s]:%u", a, ntohs(s6->sin6_port));
	} else {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)(const void *)sa;
		inet_ntop(AF_INET, &s4->sin_addr, a, sizeof a);
		snprintf(buf, len, "%s:%u", a, ntohs(s4->sin_port));
	}
}

void listener_addr_fmt(const struct sockaddr_storage *sa, char *buf, size_t len)
{
	if (sa->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)(const void *)sa;
		if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr))
			inet_ntop(AF_INET, s6->sin6_addr.s6_addr + 12, buf, (socklen_t)len);
		else
			inet_ntop(AF_INET6, &s6->sin6_addr, buf, (socklen_t)len);
	} else {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)(const void *)sa;
		inet_ntop(AF_INET, &s4->sin_addr, buf, (socklen_t)len);
	}
}

static void listener_arm(struct listener_acceptor *a)
{
	if (a->fd < 0 || a->armed)
		return;
	struct io_uring_sqe *sqe = net_loop_sqe(a->loop, &a->op);
	if (!sqe) {                         /* the ring is full: try again shortly */
		timer_arm(&a->loop->wheel, &a->retry, LISTENER_RETRY_MS);
		return;
	}
	io_uring_prep_multishot_accept(sqe, a->fd, NULL, NULL, SOCK_CLOEXEC);
	a->armed = true;
}

static void listener_retry(struct timer *t)
{
	listener_arm((struct listener_acceptor *)(void *)((char *)t -
	             offsetof(struct listener_acceptor, retry)));
}

int listener_accept_start(struct listener_acceptor *a, struct net_loop *l, int fd,
                          void (*accepted)(struct listener_acceptor *, int), void *ctx)
{
	memset(a, 0, sizeof *a);
	a->op.kind = NET_OP_ACCEPT;
	a->loop = l;
	a->fd = fd;
	a->accepted = accepted;
	a->ctx = ctx;
	a->retry.fire = listener_retry;
	listener_arm(a);
	return a->armed ? 0 : -EBUSY;
}

void listener_accept_stop(struct listener_acceptor *a)
{
	timer_cancel(&a->retry);
	if (a->fd < 0)
		return;
	shutdown(a->fd, SHUT_RDWR);         /* ends the multishot accept */
	close(a->fd);
	a->fd = -1;
}

void listener_on_accept(struct listener_acceptor *a, int res, unsigned flags)
{
	if (!(flags & IORING_CQE_F_MORE))
		a->armed = false;
	if (res >= 0 && a->fd < 0) {
		close(res);                     /* raced with stop */
		return;
	}
	if (res < 0 && (a->fd < 0 || res == -ECANCELED))
		return;
	if (res < 0) {
		a->errors++;
		a->accepted(a, res);
		if (!a->armed)
			timer_arm(&a->loop->wheel, &a->retry, LISTENER_RETRY_MS);
		return;
	}
	a->accepted(a, res);
	if (!a->armed)
		listener_arm(a);
}
