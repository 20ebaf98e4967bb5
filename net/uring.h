/* net/uring — io_uring plumbing shared by the workers: ring set-up with a fallback when
 * the kernel refuses SINGLE_ISSUER|DEFER_TASKRUN, the provided-buffer ring for multishot
 * recv, and the packing of an op kind into user_data (one completion switch). */
#ifndef NET_URING_H
#define NET_URING_H
#include <liburing.h>
#include <stdint.h>

/* user_data = pointer (8-aligned) | op kind in the low 3 bits. */
enum uring_op {
	URING_OP_NONE = 0,
	URING_OP_ACCEPT,
	URING_OP_RECV,
	URING_OP_SEND,
	URING_OP_SPOOL_WRITE,
	URING_OP_SPOOL_SYNC,
	URING_OP_CANCEL,
};
static inline uint64_t uring_ud(const void *p, enum uring_op op)
{
	return (uint64_t)(uintptr_t)p | (uint64_t)op;
}
static inline enum uring_op uring_ud_op(uint64_t ud) { return (enum uring_op)(ud & 7u); }
static inline void *uring_ud_ptr(uint64_t ud) { return (void *)(uintptr_t)(ud & ~(uint64_t)7u); }

/* Returns 0 or -errno; *desc names the set-up that worked ("single_issuer+defer_taskrun",
 * "coop_taskrun" or "plain"). */
int uring_init(struct io_uring *r, unsigned entries, const char **desc);
/* An SQE, submitting what is queued first when the SQ is full. Never NULL. */
struct io_uring_sqe *uring_sqe(struct io_uring *r);

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
