/* net/buf — a growable byte buffer: connection input not yet consumed, output queued
 * behind a send in flight. One definition for the relay and the bench tools.
 * buf_append() may move p: a view into a buffer dies with the next append. */
#ifndef NET_BUF_H
#define NET_BUF_H
#include <stddef.h>
#include <stdint.h>

struct buf {
	uint8_t *p;
	size_t len, cap;
	size_t off;          /* for users that send from the front: octets already sent */
};

/* Append n octets (growing by doubling from 1 KiB). 0 or -ENOMEM (b unchanged). */
int buf_append(struct buf *b, const void *p, size_t n);
/* Drop n octets from the front (n <= len). */
void buf_consume(struct buf *b, size_t n);
/* Free the memory; b is empty and reusable. */
void buf_fini(struct buf *b);

#endif
