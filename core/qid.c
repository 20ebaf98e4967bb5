/* core/qid — see qid.h. */
#include "core/qid.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const char qid_digits[] = "0123456789ABCDEFGHIJKLMNOPQRSTUV";

static void put32(char *out, uint64_t v, int width)
{
	for (int i = width - 1; i >= 0; i--) {
		out[i] = qid_digits[v & 31u];
		v >>= 5;
	}
}

void qid_format(uint64_t t, uint64_t block, uint32_t n, char *out)
{
	put32(out, t, 7);
	put32(out + 7, block, 5);
	put32(out + 12, n, 5);
	out[QID_LEN] = '\0';
}

int qid_blocks_open(struct qid_blocks *b, const char *dir)
{
	char path[4200];
	uint8_t raw[8] = { 0 };
	memset(b, 0, sizeof *b);
	b->fd = -1;
	snprintf(path, sizeof path, "%s/.qid", dir);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -errno;
	ssize_t r = pread(fd, raw, sizeof raw, 0);
	if (r < 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	if (r != 0 && r != (ssize_t)sizeof raw) {  /* never written like that: refuse */
		close(fd);
		return -EINVAL;
	}
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | raw[i];
	if (v > (1ull << QID_BLOCK_BITS)) {
		close(fd);
		return -EOVERFLOW;
	}
	b->fd = fd;
	b->next = v;
	pthread_mutex_init(&b->mu, NULL);
	return 0;
}

void qid_blocks_close(struct qid_blocks *b)
{
	if (b->fd < 0)
		return;
	close(b->fd);
	b->fd = -1;
	pthread_mutex_destroy(&b->mu);
}

int qid_blocks_claim(struct qid_blocks *b, uint64_t *block)
{
	int ret = 0;
	pthread_mutex_lock(&b->mu);
	if (b->next >= (1ull << QID_BLOCK_BITS)) {
		ret = -EOVERFLOW;
		goto out;
	}
	uint64_t v = b->next + 1;
	uint8_t raw[8];
	for (int i = 0; i < 8; i++)
		raw[i] = (uint8_t)(v >> (8 * i));
	/* Durable before use: a crash after this hands out the block after it. */
	if (pwrite(b->fd, raw, sizeof raw, 0) != (ssize_t)sizeof raw || fdatasync(b->fd) < 0) {
		ret = errno ? -errno : -EIO;
		goto out;
	}
	*block = b->next;
	b->next = v;
out:
	pthread_mutex_unlock(&b->mu);
	return ret;
}

int qid_next(struct qid_gen *g, uint64_t now_s, char *out)
{
	const uint32_t size = 1u << QID_N_BITS;
	if (g->have && g->n >= size / 2 && !g->have_spare)
		g->have_spare = qid_blocks_claim(g->blocks, &g->spare) == 0;
	if (!g->have || g->n >= size) {
		if (g->have_spare) {
			g->block = g->spare;
			g->have_spare = false;
		} else {
			int ret = qid_blocks_claim(g->blocks, &g->block);
			if (ret < 0) {
				g->have = false;
				return ret;
			}
		}
		g->have = true;
		g->n = 0;
	}
	qid_format(now_s, g->block, g->n++, out);
	return 0;
}
