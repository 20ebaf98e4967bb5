/* net/uring — see uring.h. */
#include "net/uring.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

int uring_init(struct io_uring *r, unsigned sq_entries, unsigned cq_entries, const char **desc)
{
	static const struct {
		unsigned flags;
		const char *desc;
	} tries[] = {
		{ IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN, "single_issuer+defer_taskrun" },
		{ IORING_SETUP_COOP_TASKRUN, "coop_taskrun" },
		{ 0, "plain" },
	};
	int ret = -EINVAL;
	for (size_t i = 0; i < sizeof tries / sizeof tries[0]; i++) {
		struct io_uring_params p;
		memset(&p, 0, sizeof p);
		p.flags = tries[i].flags | IORING_SETUP_CQSIZE;
		p.cq_entries = cq_entries;
		ret = io_uring_queue_init_params(sq_entries, r, &p);
		if (ret == 0) {
			*desc = tries[i].desc;
			return 0;
		}
		if (ret != -EINVAL)
			break;
	}
	return ret;
}

int uring_bufs_init(struct io_uring *r, struct uring_bufs *b, uint16_t bgid,
                    unsigned count, unsigned size)
{
	memset(b, 0, sizeof *b);
	size_t ringsz = (size_t)count * sizeof(struct io_uring_buf);
	void *ring = mmap(NULL, ringsz, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
	if (ring == MAP_FAILED)
		return -errno;
	b->mem = malloc((size_t)count * size);
	if (!b->mem) {
		munmap(ring, ringsz);
		return -ENOMEM;
	}
	struct io_uring_buf_reg reg;
	memset(&reg, 0, sizeof reg);
	reg.ring_addr = (uint64_t)(uintptr_t)ring;
	reg.ring_entries = count;
	reg.bgid = bgid;
	int ret = io_uring_register_buf_ring(r, &reg, 0);
	if (ret) {
		free(b->mem);
		munmap(ring, ringsz);
		b->mem = NULL;
		return ret;
	}
	b->br = ring;
	b->count = count;
	b->size = size;
	b->bgid = bgid;
	io_uring_buf_ring_init(b->br);
	int mask = io_uring_buf_ring_mask(count);
	for (unsigned i = 0; i < count; i++)
		io_uring_buf_ring_add(b->br, uring_bufs_ptr(b, i), size, (unsigned short)i, mask, (int)i);
	io_uring_buf_ring_advance(b->br, (int)count);
	return 0;
}

void uring_bufs_recycle(struct uring_bufs *b, unsigned bid)
{
	io_uring_buf_ring_add(b->br, uring_bufs_ptr(b, bid), b->size, (unsigned short)bid,
	                      io_uring_buf_ring_mask(b->count), 0);
	io_uring_buf_ring_advance(b->br, 1);
}

void uring_bufs_fini(struct io_uring *r, struct uring_bufs *b)
{
	if (!b->br)
		return;
	io_uring_unregister_buf_ring(r, b->bgid);
	munmap(b->br, (size_t)b->count * sizeof(struct io_uring_buf));
	free(b->mem);
	memset(b, 0, sizeof *b);
}
