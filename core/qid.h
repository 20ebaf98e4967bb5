/* core/qid — queue ids: unique by construction across workers and restarts, short, and
 * sortable by time like Postfix's long queue ids.
 *
 *   QID = TTTTTTT BBBBB NNNNN    17 characters of 0-9A-V (base 32, most significant first)
 *   T: the second the id was made (35 bits), so sorting ids sorts them by time;
 *   B: a block (25 bits) and N: the id's number in it (25 bits).
 * Blocks come from a counter in SPOOL/.qid that is incremented and made durable (write,
 * fdatasync) before the block is used. Each worker draws ids from a block of its own and
 * claims the next one ahead, when half of the current one is used. So (B, N) never
 * repeats: not across workers, not after a crash or a restart, not when the clock steps
 * back. 2^25 blocks of 2^25 ids: a relay that restarts every minute with 64 workers takes
 * 60 years to use them up; then it refuses to start (-EOVERFLOW). */
#ifndef CORE_QID_H
#define CORE_QID_H
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define QID_LEN 17
#define QID_BLOCK_BITS 25
#define QID_N_BITS 25

struct qid_blocks {
	int fd;
	pthread_mutex_t mu;
	uint64_t next;                 /* the next block to hand out */
};

struct qid_gen {
	struct qid_blocks *blocks;
	uint64_t block, spare;
	uint32_t n;
	bool have, have_spare;
};

/* Open (create) DIR/.qid. 0 or -errno. */
int qid_blocks_open(struct qid_blocks *b, const char *dir);
void qid_blocks_close(struct qid_blocks *b);
/* A new block, durable before it is returned. 0 or -errno. */
int qid_blocks_claim(struct qid_blocks *b, uint64_t *block);

/* The next id into out (QID_LEN + 1 octets). 0, or -errno when no block could be
 * claimed (then out holds nothing usable). */
int qid_next(struct qid_gen *g, uint64_t now_s, char *out);
/* Encode (for tests and tools): the id of (t, block, n). */
void qid_format(uint64_t t, uint64_t block, uint32_t n, char *out);

#endif
