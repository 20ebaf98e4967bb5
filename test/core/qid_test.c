/* test/core/qid_test — queue ids: unique by construction across workers and restarts,
 * sortable by time, 17 characters of 0-9A-V. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/qid.h"

static char dir[64];

static void mkdir_tmp(void)
{
	snprintf(dir, sizeof dir, "/tmp/qid_test.XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
}

static void rm_tmp(void)
{
	char p[128];
	snprintf(p, sizeof p, "%s/.qid", dir);
	unlink(p);
	rmdir(dir);
}

static int cmp(const void *a, const void *b)
{
	return strcmp(a, b);
}

Test(qid, format_is_sortable_base32)
{
	char a[QID_LEN + 1], b[QID_LEN + 1];
	qid_format(1795255200, 0, 0, a);
	cr_assert_eq(strlen(a), QID_LEN);
	cr_assert_eq(strspn(a, "0123456789ABCDEFGHIJKLMNOPQRSTUV"), QID_LEN);
	qid_format(1795255201, 0, 0, b);
	cr_assert_lt(strcmp(a, b), 0, "a later second sorts later");
	qid_format(1795255200, 0, 1, b);
	cr_assert_lt(strcmp(a, b), 0);
	qid_format(1795255200, 1, 0, b);
	cr_assert_lt(strcmp(a, b), 0);
	/* The fields never overlap: the largest block and number keep the time intact. */
	qid_format(1795255200, (1u << QID_BLOCK_BITS) - 1, (1u << QID_N_BITS) - 1, b);
	cr_assert_eq(strncmp(a, b, 7), 0);
	cr_assert_str_eq(b + 7, "VVVVVVVVVV");
}

/* 300 workers (more than the 256 an 8-bit worker field allowed), the same second, 1,000
 * ids each, then a "restart" with the clock stepped back: every id is distinct. */
Test(qid, unique_across_workers_and_restarts, .init = mkdir_tmp, .fini = rm_tmp)
{
	enum { W = 300, N = 1000 };
	char (*ids)[QID_LEN + 1] = calloc(2 * W * N, sizeof *ids);
	size_t k = 0;
	cr_assert_not_null(ids);
	for (int run = 0; run < 2; run++) {
		struct qid_blocks b;
		cr_assert_eq(qid_blocks_open(&b, dir), 0);
		struct qid_gen *g = calloc(W, sizeof *g);
		for (int w = 0; w < W; w++)
			g[w].blocks = &b;
		uint64_t now = run == 0 ? 1795255200 : 1795255100;   /* the clock went back */
		for (int i = 0; i < N; i++)
			for (int w = 0; w < W; w++)
				cr_assert_eq(qid_next(&g[w], now, ids[k++]), 0);
		free(g);
		qid_blocks_close(&b);
	}
	qsort(ids, k, sizeof *ids, cmp);
	for (size_t i = 1; i < k; i++)
		cr_assert_neq(strcmp(ids[i - 1], ids[i]), 0, "repeated: %s", ids[i]);
	free(ids);
}

/* A block is durable before it is used: the counter on disk is past every block handed
 * out, so a crash right after cannot hand one out again. */
Test(qid, blocks_are_durable_before_use, .init = mkdir_tmp, .fini = rm_tmp)
{
	struct qid_blocks b;
	uint64_t x, y;
	cr_assert_eq(qid_blocks_open(&b, dir), 0);
	cr_assert_eq(qid_blocks_claim(&b, &x), 0);
	cr_assert_eq(qid_blocks_claim(&b, &y), 0);
	cr_assert_eq(y, x + 1);
	qid_blocks_close(&b);                   /* "crash": nothing more is written */
	cr_assert_eq(qid_blocks_open(&b, dir), 0);
	cr_assert_eq(qid_blocks_claim(&b, &x), 0);
	cr_assert_eq(x, y + 1);
	qid_blocks_close(&b);
}

/* A worker claims its next block when half of the current one is used, and switches to
 * it when the current one is full. */
Test(qid, next_block_claimed_ahead, .init = mkdir_tmp, .fini = rm_tmp)
{
	struct qid_blocks b;
	struct qid_gen g = { 0 };
	char id[QID_LEN + 1];
	cr_assert_eq(qid_blocks_open(&b, dir), 0);
	g.blocks = &b;
	cr_assert_eq(qid_next(&g, 1, id), 0);
	cr_assert_eq(b.next, 1);
	g.n = (1u << QID_N_BITS) / 2;           /* half used */
	cr_assert_eq(qid_next(&g, 1, id), 0);
	cr_assert(g.have_spare);
	cr_assert_eq(b.next, 2);
	g.n = 1u << QID_N_BITS;                 /* full */
	cr_assert_eq(qid_next(&g, 1, id), 0);
	cr_assert_eq(g.block, 1);
	cr_assert_str_eq(id + 7, "0000100000");
	qid_blocks_close(&b);
}

/* Refusals: a .qid file that is not 8 octets; one past the last block; a claim that cannot
 * be made durable leaves no id. */
Test(qid, refusals, .init = mkdir_tmp, .fini = rm_tmp)
{
	char p[128];
	struct qid_blocks b;
	snprintf(p, sizeof p, "%s/.qid", dir);
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	cr_assert_eq(write(fd, "abc", 3), 3);
	close(fd);
	cr_assert_eq(qid_blocks_open(&b, dir), -EINVAL);
	uint8_t last[8] = { 0 };
	uint64_t v = 1ull << QID_BLOCK_BITS;    /* every block handed out */
	for (int i = 0; i < 8; i++)
		last[i] = (uint8_t)(v >> (8 * i));
	fd = open(p, O_WRONLY | O_TRUNC);
	cr_assert_eq(write(fd, last, 8), 8);
	close(fd);
	cr_assert_eq(qid_blocks_open(&b, dir), 0);
	struct qid_gen g = { .blocks = &b };
	char id[QID_LEN + 1];
	cr_assert_eq(qid_next(&g, 1, id), -EOVERFLOW);
	qid_blocks_close(&b);
}
