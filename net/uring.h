/* net/uring — the liburing set-up under net/loop: the ring, with a fallback when the
 * kernel refuses SINGLE_ISSUER|DEFER_TASKRUN, and the provided-buffer ring that multishot
 * recv draws from. Operations, their kinds and the completion switch live in net/loop. */
#ifndef NET_URING_H
#define NET_URING_H
#include <liburing.h>
#include <stdint.h>

/* sq_entries submission and cq_entries completion slots. Returns 0 or -errno; *desc
 * names the set-up that worked ("single_issuer+defer_taskrun", "coop_taskrun" or "plain"). */
int uring_init(struct io_uring *r, unsigned sq_entries, unsigned cq_entries, const char **desc);

struct uring_bufs {
	struct io_uring_buf_ring *br;
	uint8_t *mem;
	unsigned count, size;
	uint16_t bgid;
};
/* count is a power of two. Returns 0 or -errno. */
int uring_bufs_init(struct io_uring *r, struct uring_bufs *b, uint16_t bgid,
                    unsigned count, unsigned size);
void uring_bufs_fini(struct io_uring *r, struct uring_bufs *b);
static inline uint8_t *uring_bufs_ptr(const struct uring_bufs *b, unsigned bid)
{
	return b->mem + (size_t)bid * b->size;
}
/* Give buffer bid back to the kernel. */
void uring_bufs_recycle(struct uring_bufs *b, unsigned bid);

#endif
