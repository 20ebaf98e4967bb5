/* test/core/spool_test — the spool writer on a real ring in a temporary directory: every
 * waiter is told exactly once, and only after its commit; what was acknowledged reads
 * back byte for byte (small records copied into the aligned buffer, big ones written in
 * place); every write ends on a block boundary; segments roll over with the next one
 * prepared; a clean stop cuts the current segment and removes an unused one; records
 * appended as they are (copies forward) read back at their place; reclaim removes
 * finished segments oldest first through the ring and asks for copies forward; the
 * segment table's order and the reclaim rule, table-driven. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/spool.h"
#include "core/spooldir.h"

#define MAXMSG 2200

static char dir[64];
static struct net_loop loop;
static struct spool sp;

struct t_msg {
	char qid[32];
	const char *rcpt[1];
	uint8_t *data;
	uint8_t *copy;              /* what was sent (data may be scrambled in place) */
	size_t len;
	int done;                   /* times done() was called */
	bool ok;
	struct spool_loc loc;       /* where done() said it lies */
	struct smtp_srv_msg m;
};
static struct t_msg msgs[MAXMSG];
static size_t nmsg, ndone;

static void t_done(void *waiter, bool ok, const struct spool_loc *loc)
{
	struct t_msg *t = waiter;
	/* the contract: a place exactly when ok, never on a failure */
	cr_assert_eq(loc != NULL, ok);
	if (loc)
		cr_assert_gt(loc->len, 0);
	t->done++;
	t->ok = ok;
	if (loc)
		t->loc = *loc;
	ndone++;
}

static unsigned t_turn(void *ctx)
{
	(void)ctx;
	return 1000;
}

static void t_idle(void *ctx)
{
	(void)ctx;
	spool_flush(&sp);
}

static const struct net_loop_hooks hooks = { .turn = t_turn, .idle = t_idle };

static void setup(void)
{
	snprintf(dir, sizeof dir, "/var/tmp/spool_test.XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	cr_assert_eq(net_loop_init(&loop, NULL, &hooks, NULL), 0);
	cr_assert_eq(spool_init(&sp, &loop, dir, 0, 1, true, t_done), 0);
	nmsg = ndone = 0;
}

static void teardown(void)
{
	for (size_t i = 0; i < nmsg; i++) {
		free(msgs[i].data);
		free(msgs[i].copy);
	}
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	cr_assert_eq(system(cmd), 0);
}

static void stop(void)
{
	for (int i = 0; i < 5000 && !spool_idle(&sp); i++)
		net_loop_turn(&loop);
	cr_assert(spool_idle(&sp));
	net_loop_fini(&loop);
	spool_fini(&sp);
}

static struct t_msg *add(size_t len)
{
	cr_assert_lt(nmsg, MAXMSG);
	struct t_msg *t = &msgs[nmsg];
	memset(t, 0, sizeof *t);
	snprintf(t->qid, sizeof t->qid, "Q%05zu", nmsg);
	t->rcpt[0] = "r@example.net";
	t->len = len;
	t->data = malloc(len ? len : 1);
	for (size_t i = 0; i < len; i++)
		t->data[i] = (uint8_t)(nmsg * 131 + i * 7);
	t->copy = malloc(len ? len : 1);
	memcpy(t->copy, t->data, len);
	t->m = (struct smtp_srv_msg){ .qid = t->qid, .mail_from = "s@example.org",
	                              .rcpt = t->rcpt, .nrcpt = 1, .data = t->data, .len = len };
	cr_assert_eq(spool_append(&sp, t, &t->m, "192.0.2.1", 1795255200), 0);
	nmsg++;
	return t;
}

static size_t nfound;

static int found(void *ctx, const char *seg, uint64_t off, const struct spoolrec_msg *m)
{
	(void)ctx;
	(void)seg;
	(void)off;
	unsigned k;
	cr_assert_eq(sscanf(m->qid.p, "Q%05u", &k), 1);
	cr_assert_lt(k, nmsg);
	cr_assert_eq(m->data.len, msgs[k].len, "%s: length", msgs[k].qid);
	uint8_t *plain = malloc(m->data.len + 1);
	spoolrec_scramble(plain, (const uint8_t *)m->data.p, m->data.len, m->nonce);
	cr_assert(memcmp(plain, msgs[k].copy, msgs[k].len) == 0, "%s: data", msgs[k].qid);
	free(plain);
	nfound++;
	return 0;
}

static size_t segments(off_t *total)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	size_t n = 0;
	*total = 0;
	while ((de = readdir(d))) {
		if (!strstr(de->d_name, ".seg"))
			continue;
		char p[512];
		struct stat st;
		snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
		cr_assert_eq(stat(p, &st), 0);
		cr_assert_eq(st.st_size % SPOOL_ALIGN, 0, "%s: %lld octets", de->d_name,
		             (long long)st.st_size);
		*total += st.st_size;
		n++;
	}
	closedir(d);
	return n;
}

TestSuite(spool, .init = setup, .fini = teardown, .timeout = 60);

/* Small and big messages, in turns of random size: each is told once, ok, and reads
 * back exactly. */
Test(spool, acknowledged_reads_back)
{
	size_t sizes[] = { 0, 1, 100, 4000, 4096, 4097, 65536, SPOOL_COPY_MAX - 300,
	                   SPOOL_COPY_MAX + 1, 3u << 20 };
	unsigned seed = 7;
	for (int turn = 0; turn < 40; turn++) {
		int k = 1 + rand_r(&seed) % 30;
		for (int i = 0; i < k; i++)
			add(sizes[rand_r(&seed) % (sizeof sizes / sizeof sizes[0])]);
		net_loop_turn(&loop);
	}
	for (int i = 0; i < 5000 && ndone < nmsg; i++)
		net_loop_turn(&loop);
	cr_assert_eq(ndone, nmsg);
	for (size_t i = 0; i < nmsg; i++) {
		cr_assert_eq(msgs[i].done, 1, "%s told %d times", msgs[i].qid, msgs[i].done);
		cr_assert(msgs[i].ok, "%s failed", msgs[i].qid);
	}
	cr_assert_gt(sp.commits, 1);
	cr_assert_lt(sp.commits, nmsg, "no group commit at all");
	stop();
	off_t total;
	segments(&total);
	struct spooldir_stats st;
	nfound = 0;
	cr_assert_eq(spooldir_scan(dir, found, NULL, &st), 0);
	cr_assert_eq(nfound, nmsg);
	cr_assert_eq(st.corrupt + st.torn + st.unknown, 0);
}

/* 70 MiB of messages: a second segment, prepared while the first filled; the stop leaves
 * two segments cut to their records (and no unused third). */
Test(spool, segments_roll_over)
{
	for (int i = 0; i < 70; i++) {
		add((1u << 20) - 200);
		net_loop_turn(&loop);
	}
	for (int i = 0; i < 5000 && ndone < nmsg; i++)
		net_loop_turn(&loop);
	cr_assert_eq(ndone, nmsg);
	for (size_t i = 0; i < nmsg; i++)
		cr_assert(msgs[i].ok);
	stop();
	off_t total;
	cr_assert_eq(segments(&total), 2);
	cr_assert_lt(total, (off_t)75 << 20, "unused space left behind: %lld", (long long)total);
	nfound = 0;
	cr_assert_eq(spooldir_scan(dir, found, NULL, NULL), 0);
	cr_assert_eq(nfound, 70);
}

/* Nothing written: the stop removes the prepared segment. */
Test(spool, empty_stop_leaves_nothing)
{
	for (int i = 0; i < 50; i++)
		net_loop_turn(&loop);
	stop();
	off_t total;
	cr_assert_eq(segments(&total), 0);
}

/* Records that fill the aligned buffer to exactly a block boundary (no PAD behind
 * them), alone and with a big record in the same batch: acknowledged, and read back. */
Test(spool, batch_ending_on_a_block_boundary)
{
	static const char *const rcpt[1] = { "r@example.net" };
	size_t len = 0;
	for (size_t l = 3000; l < SPOOL_ALIGN; l++) {
		char qid[32];
		snprintf(qid, sizeof qid, "Q%05zu", nmsg);
		if (spoolrec_msg_head_size(qid, "s@example.org", "192.0.2.1", rcpt, 1, l) + l ==
		    SPOOL_ALIGN) {
			len = l;
			break;
		}
	}
	cr_assert_gt(len, 0, "no data length makes a record of one block");
	add(len);                           /* one block exactly */
	for (int i = 0; i < 5000 && ndone < nmsg; i++)
		net_loop_turn(&loop);
	add(len);
	add(len);                           /* two blocks exactly ... */
	add(SPOOL_COPY_MAX + 1);            /* ... and a big one behind them */
	for (int i = 0; i < 5000 && ndone < nmsg; i++)
		net_loop_turn(&loop);
	cr_assert_eq(ndone, nmsg);
	for (size_t i = 0; i < nmsg; i++)
		cr_assert(msgs[i].ok, "%s failed", msgs[i].qid);
	stop();
	nfound = 0;
	cr_assert_eq(spooldir_scan(dir, found, NULL, NULL), 0);
	cr_assert_eq(nfound, nmsg);
}

/* ---- the segment table and the reclaim rule ----------------------------------------- */

Test(spool, segtab_keeps_chain_order)
{
	struct spool_segtab t = { 0 };
	cr_assert_eq(spool_segtab_add(&t, 0, 5, 100, true), 0);
	cr_assert_eq(spool_segtab_add(&t, 0, 3, 100, true), 0);
	cr_assert_eq(spool_segtab_add(&t, 7, 9, 100, false), 0);   /* a vanished index: first */
	cr_assert_eq(spool_segtab_add(&t, 4, 20, 100, false), 0);
	cr_assert_eq(spool_segtab_add(&t, 0, 4, 100, true), 0);
	cr_assert_eq(spool_segtab_add(&t, 0, 4, 999, true), 0);    /* known: left alone */
	const struct { unsigned worker; uint64_t seq; } want[] = {
		{ 4, 20 }, { 7, 9 }, { 0, 3 }, { 0, 4 }, { 0, 5 },
	};
	cr_assert_eq(t.n, 5);
	for (size_t i = 0; i < t.n; i++) {
		cr_assert_eq(t.v[i].worker, want[i].worker, "%zu", i);
		cr_assert_eq(t.v[i].seq, want[i].seq, "%zu", i);
	}
	cr_assert_eq(spool_segtab_find(&t, 0, 4, true)->size, 100);
	cr_assert_null(spool_segtab_find(&t, 0, 6, true));
	cr_assert_null(spool_segtab_find(&t, 7, 9, true));
	spool_segtab_del(&t, 0);
	cr_assert_eq(t.n, 4);
	cr_assert_eq(t.v[0].worker, 7);
	spool_segtab_fini(&t);
	cr_assert_eq(t.n, 0);
}

/* Each case: the chain (live count, live octets, size, in use, removing) and what the
 * rule says. */
struct rule_case {
	const char *name;
	struct { uint64_t live, live_bytes, size; bool in_use, removing; } s[6];
	size_t n;
	size_t want_remove;
	long want_copy;
};

static const struct rule_case rule_cases[] = {
	{ "empty", { { 0 } }, 0, 0, -1 },
	{ "only the current", { { 0, 0, 100, true, false } }, 1, 0, -1 },
	{ "dead prefix, then the current", { { 0, 0, 100, false, false }, { 0, 0, 100, false, false },
	                                     { 0, 0, 50, true, false } }, 3, 2, -1 },
	{ "a live one stops the prefix", { { 0, 0, 100, false, false }, { 9, 90, 100, false, false },
	                                   { 0, 0, 100, false, false }, { 0, 0, 10, true, false } },
	  4, 1, -1 },
	{ "mostly dead: copy it", { { 1, 10, 100, false, false }, { 0, 0, 10, true, false } }, 2, 0, 0 },
	{ "dead behind count", { { 5, 50, 100, false, false }, { 0, 0, 100, false, false },
	                         { 0, 0, 100, false, false }, { 0, 0, 10, true, false } }, 4, 0, 0 },
	{ "live behind does not count", { { 5, 50, 100, false, false }, { 1, 90, 100, false, false },
	                                  { 0, 0, 100, false, false }, { 0, 0, 10, true, false } },
	  4, 0, -1 },
	{ "exactly a quarter", { { 2, 25, 100, false, false }, { 0, 0, 1, true, false } }, 2, 0, 0 },
	{ "just over a quarter", { { 2, 26, 100, false, false }, { 0, 0, 1, true, false } }, 2, 0, -1 },
	{ "never the current", { { 1, 1, 100, true, false }, { 0, 0, 100, true, false } }, 2, 0, -1 },
	{ "a removal in flight stops it", { { 0, 0, 100, false, true }, { 0, 0, 100, false, false } },
	  2, 0, -1 },
	{ "dead after a copy target, in use", { { 1, 30, 100, false, false }, { 0, 0, 100, true, false } },
	  2, 0, -1 },
	{ "prefix then copy", { { 0, 0, 100, false, false }, { 1, 10, 100, false, false },
	                        { 0, 0, 100, false, false }, { 0, 0, 5, true, false } }, 4, 1, 1 },
	{ "live messages but no octets counted", { { 3, 0, 0, false, false } }, 1, 0, 0 },
};

Test(spool, reclaim_rule)
{
	for (size_t i = 0; i < sizeof rule_cases / sizeof rule_cases[0]; i++) {
		const struct rule_case *c = &rule_cases[i];
		struct spool_segent v[6];
		for (size_t j = 0; j < c->n; j++)
			v[j] = (struct spool_segent){ .worker = 0, .seq = j + 1, .size = c->s[j].size,
			                              .live = c->s[j].live, .live_bytes = c->s[j].live_bytes,
			                              .own = true, .in_use = c->s[j].in_use,
			                              .removing = c->s[j].removing };
		struct spool_reclaim got;
		spool_reclaim_rule(v, c->n, UINT64_MAX, &got);
		cr_expect_eq(got.remove, c->want_remove, "%s: remove %zu, want %zu", c->name,
		             got.remove, c->want_remove);
		cr_expect_eq(got.copy, c->want_copy, "%s: copy %ld, want %ld", c->name, got.copy,
		             c->want_copy);
	}
}

/* A segment of a vanished worker index is copied out whatever it frees; the same
 * segment of this worker's own is not. */
Test(spool, reclaim_rule_vanished_index)
{
	struct spool_segent v[2] = {
		{ .worker = 5, .seq = 1, .size = 100, .live = 9, .live_bytes = 100, .own = false },
		{ .worker = 1, .seq = 7, .size = 1, .own = true, .in_use = true },
	};
	struct spool_reclaim got;
	spool_reclaim_rule(v, 2, UINT64_MAX, &got);
	cr_assert_eq(got.remove, 0);
	cr_assert_eq(got.copy, 0);
	v[0].own = true;
	spool_reclaim_rule(v, 2, UINT64_MAX, &got);
	cr_assert_eq(got.copy, -1);
}

/* A segment is copied from only once it has not been written for a while (its live
 * messages are then waiting for a retry, not in a delivery about to end). */
Test(spool, reclaim_rule_waits_for_age)
{
	struct spool_segent v[2] = {
		{ .seq = 1, .size = 100, .live = 1, .live_bytes = 10, .own = true, .idle_ms = 5000 },
		{ .seq = 2, .size = 1, .own = true, .in_use = true },
	};
	struct spool_reclaim got;
	spool_reclaim_rule(v, 2, 4999, &got);
	cr_assert_eq(got.copy, -1);
	spool_reclaim_rule(v, 2, 5000, &got);
	cr_assert_eq(got.copy, 0);
	v[0].live = 0;                  /* a removal does not wait */
	v[0].live_bytes = 0;
	spool_reclaim_rule(v, 2, 0, &got);
	cr_assert_eq(got.remove, 1);
}

/* ---- reclaim on the ring ------------------------------------------------------------ */

static unsigned copy_asks;
static uint64_t copy_seq;

static void t_copy(void *ctx, unsigned worker, uint64_t seq)
{
	(void)ctx;
	cr_assert_eq(worker, 0);
	copy_asks++;
	copy_seq = seq;
}

static bool seg_exists(uint64_t seq)
{
	char p[256];
	snprintf(p, sizeof p, "%s/w0-%016llx.seg", dir, (unsigned long long)seq);
	return access(p, F_OK) == 0;
}

static void turns(int n)
{
	for (int i = 0; i < n; i++)
		net_loop_turn(&loop);
}

/* Records appended as they are (a copy forward, small and over SPOOL_COPY_MAX) read back
 * at the place done() gives. Then, with small segments and every message counted live:
 * the segments whose messages all went are removed oldest first (unlink and directory
 * fsync through the ring), never the current one, and a mostly finished oldest segment
 * is asked to be copied forward. */
Test(spool, append_rec_and_reclaim)
{
	struct t_msg recs[2];
	uint8_t *blob[2];
	size_t blen[2] = { 3000, SPOOL_COPY_MAX + 5000 };
	for (int i = 0; i < 2; i++) {
		memset(&recs[i], 0, sizeof recs[i]);
		blob[i] = malloc(blen[i]);
		for (size_t k = 0; k < blen[i]; k++)
			blob[i][k] = (uint8_t)(k * 13 + (size_t)i);
		cr_assert_eq(spool_append_rec(&sp, &recs[i], t_done, blob[i], blen[i]), 0);
	}
	for (int i = 0; i < 5000 && ndone < 2; i++)
		net_loop_turn(&loop);
	for (int i = 0; i < 2; i++) {
		cr_assert(recs[i].ok);
		cr_assert_eq(recs[i].loc.len, blen[i]);
		char p[256];
		snprintf(p, sizeof p, "%s/w0-%016llx.seg", dir, (unsigned long long)recs[i].loc.seq);
		FILE *f = fopen(p, "rb");
		cr_assert_not_null(f);
		uint8_t *back = malloc(blen[i]);
		cr_assert_eq(fseek(f, (long)recs[i].loc.off, SEEK_SET), 0);
		cr_assert_eq(fread(back, 1, blen[i], f), blen[i]);
		fclose(f);
		cr_assert(memcmp(back, blob[i], blen[i]) == 0, "record %d reads back", i);
		free(back);
		free(blob[i]);
	}
	ndone = 0;

	/* small segments; reclaim on; every message live in its segment */
	sp.seg_max = 64u << 10;
	sp.copy_age_ms = 0;
	spool_reclaim_enable(&sp, t_copy, NULL);
	for (int i = 0; i < 2; i++)
		spool_seg_ref(&sp, 0, recs[i].loc.seq, recs[i].loc.len, 1);
	for (int i = 0; i < 40; i++) {
		add(6000);
		turns(3);
	}
	for (int i = 0; i < 5000 && ndone < nmsg; i++)
		net_loop_turn(&loop);
	cr_assert_eq(ndone, nmsg);
	for (size_t i = 0; i < nmsg; i++)
		spool_seg_ref(&sp, 0, msgs[i].loc.seq, msgs[i].loc.len, 1);
	uint64_t first = msgs[0].loc.seq, last = msgs[nmsg - 1].loc.seq;
	cr_assert_geq(last, first + 3, "the test did not roll over: %llu..%llu",
	              (unsigned long long)first, (unsigned long long)last);
	turns(20);
	cr_assert_eq(sp.reclaimed, 0, "a segment with live messages was removed");
	/* all finished but one message of the second segment */
	for (int i = 0; i < 2; i++)
		spool_seg_ref(&sp, 0, recs[i].loc.seq, recs[i].loc.len, -1);
	size_t keep = nmsg;
	for (size_t i = 0; i < nmsg; i++) {
		if (keep == nmsg && msgs[i].loc.seq == first + 1) {
			keep = i;
			continue;
		}
		spool_seg_ref(&sp, 0, msgs[i].loc.seq, msgs[i].loc.len, -1);
	}
	for (int i = 0; i < 200 && seg_exists(first); i++)
		turns(1);
	cr_assert(!seg_exists(first), "the finished oldest segment is still there");
	cr_assert(!seg_exists(recs[0].loc.seq) && !seg_exists(recs[1].loc.seq));
	cr_assert(seg_exists(first + 1), "the segment with a live message went");
	cr_assert(seg_exists(sp.cur->seq), "the current segment went");
	turns(5);
	cr_assert_gt(copy_asks, 0, "the mostly finished oldest segment was not asked to be copied");
	cr_assert_eq(copy_seq, first + 1);
	/* its message finished too: everything but the current segment goes */
	spool_seg_ref(&sp, 0, msgs[keep].loc.seq, msgs[keep].loc.len, -1);
	for (int i = 0; i < 400 && sp.reclaimed < last - first; i++)
		turns(1);
	for (uint64_t q = first; q < sp.cur->seq; q++)
		cr_assert(!seg_exists(q) || (sp.next && q == sp.next->seq), "segment %llu left",
		          (unsigned long long)q);
	cr_assert_geq(sp.reclaimed, last - first);
	stop();
}

/* The reserve's size: a 32nd of the filesystem shared by the workers, at most a segment
 * and 16 MiB, at least 64 KiB when the filesystem holds 8 times that per worker, else
 * none. */
Test(spool, reserve_size)
{
	static const struct {
		uint64_t fs;
		unsigned nworkers;
		uint64_t seg_max, want;
	} c[] = {
		{ 100ull << 30, 8, SPOOL_SEGMENT_MAX, SPOOL_RESERVE_MAX },   /* capped: 16 MiB */
		{ 4ull << 30, 8, SPOOL_SEGMENT_MAX, 16u << 20 },
		{ 2ull << 30, 8, SPOOL_SEGMENT_MAX, 8u << 20 },
		{ 128u << 20, 16, SPOOL_SEGMENT_MAX, 256u << 10 },
		{ 4u << 20, 2, SPOOL_SEGMENT_MAX, 64u << 10 },
		{ 2u << 20, 2, SPOOL_SEGMENT_MAX, 64u << 10 },            /* the floor */
		{ 1u << 20, 2, SPOOL_SEGMENT_MAX, 64u << 10 },
		{ (1u << 20) - 4096, 2, SPOOL_SEGMENT_MAX, 0 },           /* too small: none */
		{ 256u << 10, 2, SPOOL_SEGMENT_MAX, 0 },
		{ 1u << 30, 1, 16u << 10, 16u << 10 },                    /* test segments */
		{ (4u << 20) + 100, 1, SPOOL_SEGMENT_MAX, 128u << 10 },   /* whole blocks */
		{ (4u << 20) + 100, 0, SPOOL_SEGMENT_MAX, 128u << 10 },   /* 0 workers: as 1 */
		{ (5u << 20) + 100, 1, SPOOL_SEGMENT_MAX, 160u << 10 },
	};
	for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
		uint64_t got = spool_reserve_size(c[i].fs, c[i].nworkers, c[i].seg_max);
		cr_expect_eq(got, c[i].want, "case %zu: %llu, want %llu", i, (unsigned long long)got,
		             (unsigned long long)c[i].want);
	}
}

/* min_free: off at 0; under it new mail is LOW at once, and what was queued since the last
 * look counts before the next one; the state is left at a look once there is room. */
Test(spool, room_low_and_back)
{
	turns(1);
	cr_assert_eq(spool_room(&sp, 0, 1u << 20), SPOOL_ROOM_OK);
	cr_assert_eq(spool_room(&sp, 1ull << 50, 0), SPOOL_ROOM_LOW);   /* more than any disk */
	cr_assert(sp.low);
	cr_assert(sp.space_looked);
	uint64_t room = sp.space_room;
	cr_assert_gt(room, 8u << 20, "the test needs 8 MiB free in /var/tmp");
	/* still low until a look finds the space (the loop's clock has not moved) */
	uint64_t min_free = room / 2;       /* left at room >= min_free + an eighth */
	cr_assert_eq(spool_room(&sp, min_free, 0), SPOOL_ROOM_LOW);
	for (int i = 0; i < 2000 && sp.low; i++)
		turns(1);
	cr_assert(!sp.low, "a look with room did not leave the low state");
	cr_assert_geq(sp.space_room, min_free + min_free / 8);
	cr_assert_eq(sp.low_refused, 2);
	/* queued since the look: counted without a new one */
	uint64_t look = sp.space_look_ms;
	min_free = sp.space_room - (4u << 20);
	cr_assert_eq(spool_room(&sp, min_free, 1u << 20), SPOOL_ROOM_OK);
	cr_assert_eq(spool_room(&sp, min_free, 5u << 20), SPOOL_ROOM_LOW, "a message over the headroom");
	sp.low = false;
	add(3u << 20);
	cr_assert_eq(spool_room(&sp, min_free, 2u << 20), SPOOL_ROOM_LOW, "queued octets not counted");
	cr_assert_eq(sp.space_look_ms, look, "looked again within SPOOL_SPACE_LOOK_MS");
	for (int i = 0; i < 5000 && ndone < nmsg; i++)
		net_loop_turn(&loop);
	cr_assert(msgs[0].ok);
	stop();
}

/* The reserve: made at start, a vanished worker index's removed; given back when the writer
 * fails with ENOSPC while the rule wants a copy forward, which is then asked although the
 * writer is failing; new mail is FULL meanwhile; made again at a look that finds room. */
Test(spool, reserve_released_and_made_again)
{
	char p[256];
	struct stat st;
	snprintf(p, sizeof p, "%s/.reserve-w3", dir);
	FILE *f = fopen(p, "w");
	cr_assert_not_null(f);
	fclose(f);
	spool_reclaim_enable(&sp, t_copy, NULL);
	cr_assert_eq(spool_reserve_enable(&sp), 0);
	cr_assert_eq(access(p, F_OK), -1, "a vanished worker's reserve is left");
	snprintf(p, sizeof p, "%s/.reserve-w0", dir);
	cr_assert_eq(stat(p, &st), 0);
	cr_assert_gt(sp.reserve_size, 0);
	cr_assert_leq(sp.reserve_size, SPOOL_RESERVE_MAX);
	cr_assert_eq((uint64_t)st.st_size, sp.reserve_size);
	cr_assert_geq((uint64_t)st.st_blocks * 512u, sp.reserve_size, "not allocated");
	cr_assert(!sp.reserve_out);
	cr_assert_eq(spool_room(&sp, 0, 0), SPOOL_ROOM_OK);
	/* an old segment (seq 0, before the current one) with a live message: the rule wants it
	 * copied; the writer fails for a full disk */
	turns(2);
	cr_assert_eq(spool_segtab_add(&sp.tab, 0, 0, 1u << 20, true), 0);
	struct spool_segent *e = spool_segtab_find(&sp.tab, 0, 0, true);
	e->live = 1;
	e->live_bytes = 100;
	sp.copy_age_ms = 0;
	copy_asks = 0;
	sp.failing = true;
	sp.fail_err = EIO;
	sp.retry_at_ms = loop.now_ms + 100000;
	sp.reclaim_dirty = true;
	turns(2);
	cr_assert_eq(copy_asks, 0, "a copy was asked while the disk fails for another reason");
	cr_assert(!sp.reserve_out, "given back for an error other than ENOSPC");
	sp.fail_err = ENOSPC;
	sp.reclaim_dirty = true;
	sp.min_free = 1ull << 50;           /* as on a full disk: no room to make it again */
	turns(2);
	cr_assert(sp.reserve_out, "not given back");
	cr_assert_eq(copy_asks, 1, "no copy asked with the reserve given back");
	cr_assert_eq(copy_seq, 0);
	cr_assert_leq(sp.retry_at_ms, loop.now_ms, "the disk is not tried again at once");
	cr_assert_eq(stat(p, &st), 0);
	cr_assert_eq(st.st_size, 0);
	cr_assert_eq(spool_room(&sp, 1ull << 50, 0), SPOOL_ROOM_FULL);
	turns(200);
	cr_assert(sp.reserve_out, "made again without room");
	/* room (this disk is far from full): made again at the next look */
	sp.min_free = 0;
	for (int i = 0; i < 2000 && sp.reserve_out; i++)
		turns(1);
	cr_assert(!sp.reserve_out, "not made again");
	cr_assert_eq(stat(p, &st), 0);
	cr_assert_eq((uint64_t)st.st_size, sp.reserve_size);
	cr_assert_eq(spool_room(&sp, 0, 0), SPOOL_ROOM_OK);
	sp.failing = false;
	spool_segtab_del(&sp.tab, (size_t)(spool_segtab_find(&sp.tab, 0, 0, true) - sp.tab.v));
	stop();
}
