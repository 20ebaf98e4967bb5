/* test/core/spool_model_test — the model test of the spool (issue 8): random sequences of
 * accept, deliver, defer, bounce, segment reclaim (removal and copy forward) and crash,
 * checked after every crash against a plain in-memory model.
 *
 * What runs is the real code: segment files in a temporary directory written with the
 * real encoders (spoolrec_encode_msg, _rcpt, _done, spoolrec_encode_copy), the real
 * segment table and reclaim rule (spool_segtab_*, spool_reclaim_rule) deciding what is
 * removed and what is copied forward, and the real start-up scan (spooldir_scan_state,
 * with its outcome merge and its duplicate handling) reading the directory back. What is
 * simulated is the writer's I/O, as core/spool does it: records go out in batches at the
 * end of the current segment; a batch with a message or a copy (a commit) is durable once
 * written (its fdatasync covers everything written before it in that segment); a batch of
 * notes alone is written without a sync; a segment rolls over past SEG_MAX octets; a
 * removal is an unlink whose directory fsync completes with it.
 *
 * A crash cuts every segment anywhere between the end of what a sync covered in it and
 * its end: at its end, at a record boundary, or at any octet (inside a record). With a
 * chance, it comes in the middle of a commit (written, not synced: those messages were
 * never acknowledged, and may or may not come back), or right after copies forward were
 * committed and before their old segment is unlinked (the scan then finds each copied
 * message twice). After each crash the scan must agree with the model:
 *   - every recipient of an acknowledged message that is not final in the model is live
 *     in the scan (never lost), with no more attempts than the model counted;
 *   - a recipient whose final outcome was durable (its RCPT or DONE note, or a copy that
 *     restates it, covered by a completed sync, or its message's every MSG record
 *     removed) is not live (never resurrected). Only a recipient whose final outcome note
 *     had not reached a sync may come back: the crash table's "after a next hop's 250,
 *     before the outcome note is on disk" (delivered again: a duplicate) and "after a
 *     5xx, before the note" (bounced again); these are the deliveries in flight;
 *   - every message listed is known to the model (acknowledged, or in doubt: its commit
 *     was cut by the crash), and listed once.
 * Then the worker restarts from what the scan found (the model takes its word for the
 * recipients that came back) and the sequence goes on.
 *
 * Seeded and bounded: SEEDS seeds of OPS operations each; a failure names its seed
 * (SPOOL_MODEL_TRACE=SEED prints what it does; SPOOL_MODEL_SEEDS=N and
 * SPOOL_MODEL_FIRST=K run other seeds, by hand). A
 * second test crashes at every octet of the unsynced tail of the current segment at a
 * few points of one run, without restarting, and checks each cut the same way. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/spool.h"
#include "core/spooldir.h"
#include "proto/spoolrec.h"

#define SEEDS 100
#define OPS 600
#define SEG_MAX 6000u
#define MAX_MSGS 1024
#define MAX_RCPT 4
#define MAX_LOCS 64
#define MAX_SEGS 256
#define MAX_NOTES 4096

/* ---- the model --------------------------------------------------------------------- */

struct mrcpt {
	uint8_t st;                 /* SPOOLREC_RS_OPEN, _DEFERRED, _DELIVERED, _BOUNCED */
	uint32_t att;
	uint64_t next;
	bool dur;                   /* (final) its finality is durable: it may not come back */
};

struct mmsg {
	char qid[24];
	uint32_t n;
	struct mrcpt r[MAX_RCPT];
	bool acked;                 /* a commit covering it completed (its 250 went out) */
	bool doubt;                 /* its commit was cut by a crash: may come back or not */
	bool in_mem;                /* the worker holds it (counted live in its segment) */
	uint64_t seq, off, len;     /* its current MSG record */
	uint64_t locs[MAX_LOCS];    /* segments holding a MSG record of it */
	unsigned nlocs;
};

struct sseg {
	uint64_t seq;
	uint64_t size, durable;
	uint64_t bounds[512];       /* record ends written after `durable` may be cut at */
	unsigned nb;
};

/* a note written (or pending): what it makes final once durable */
struct note {
	uint64_t seq, off;          /* (written) where it lies */
	int msg;
	int rcpt;                   /* -1: DONE (all of them) */
};

struct sim {
	char dir[64];
	uint64_t rnd;
	unsigned seed;
	struct mmsg m[MAX_MSGS];
	int nm;
	struct sseg seg[MAX_SEGS];
	int nseg;
	uint64_t next_seq;
	struct spool_segtab tab;
	uint8_t pend[65536];        /* the filling batch: notes queued */
	size_t plen;
	uint64_t pbound[256];       /* note ends in pend */
	unsigned npb;
	struct note pnote[256];     /* pend's notes (off: relative to pend) */
	unsigned npn;
	struct note wn[MAX_NOTES];  /* notes written, not durable yet */
	unsigned nwn;
	uint64_t qids;
	bool no_crash;              /* (every_cut) the run itself never crashes */
	bool force_cut;             /* (every_cut) the next accept's commit is cut */
	/* counters over the whole run */
	unsigned crashes, resurrected, doubts_back, duplicates, copies, removed, mid_commit,
	         between;
};

/* SPOOL_MODEL_TRACE=SEED prints what that seed does (for a failure's seed). */
static unsigned trace_seed;
#define TRACE(s, ...)                                                                         \
	do {                                                                                  \
		if ((s)->seed == trace_seed)                                                  \
			fprintf(stderr, __VA_ARGS__);                                         \
	} while (0)

static uint32_t rnd(struct sim *s, uint32_t n)
{
	s->rnd ^= s->rnd << 13;
	s->rnd ^= s->rnd >> 7;
	s->rnd ^= s->rnd << 17;
	return n ? (uint32_t)(s->rnd % n) : 0;
}

static bool final(uint8_t st)
{
	return st == SPOOLREC_RS_DELIVERED || st == SPOOLREC_RS_BOUNCED;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void seg_path(const struct sim *s, uint64_t seq, char *buf, size_t cap)
{
	snprintf(buf, cap, "%s/w0-%016" PRIx64 ".seg", s->dir, seq);
}

static struct sseg *cur(struct sim *s)
{
	return &s->seg[s->nseg - 1];
}

static void seg_new(struct sim *s)
{
	cr_assert_lt(s->nseg, MAX_SEGS);
	if (s->nseg > 0) {
		struct spool_segent *e = spool_segtab_find(&s->tab, 0, cur(s)->seq, true);
		if (e)
			e->in_use = false;
	}
	struct sseg *g = &s->seg[s->nseg++];
	memset(g, 0, sizeof *g);
	g->seq = ++s->next_seq;
	char p[128];
	seg_path(s, g->seq, p, sizeof p);
	int fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0600);
	cr_assert_geq(fd, 0, "create %s: %s", p, strerror(errno));
	close(fd);
	cr_assert_eq(spool_segtab_add(&s->tab, 0, g->seq, 0, true), 0);
	spool_segtab_find(&s->tab, 0, g->seq, true)->in_use = true;
}

static void seg_forget(struct sim *s, uint64_t seq)
{
	for (int i = 0; i < s->nseg; i++)
		if (s->seg[i].seq == seq) {
			memmove(&s->seg[i], &s->seg[i + 1], (size_t)(s->nseg - i - 1) * sizeof s->seg[0]);
			s->nseg--;
			return;
		}
}

static void msg_add_loc(struct mmsg *m, uint64_t seq)
{
	for (unsigned i = 0; i < m->nlocs; i++)
		if (m->locs[i] == seq)
			return;
	cr_assert_lt(m->nlocs, MAX_LOCS);
	m->locs[m->nlocs++] = seq;
}

/* A note's recipients are final for good. */
static void note_durable(struct sim *s, const struct note *n)
{
	struct mmsg *m = &s->m[n->msg];
	for (uint32_t i = 0; i < m->n; i++)
		if ((n->rcpt < 0 || (uint32_t)n->rcpt == i) && final(m->r[i].st))
			m->r[i].dur = true;
}

/* Write data at the end of the current segment (a batch: the notes pending first, then
 * data); sync: it is a commit. Returns the offset data went to. ends: record ends in
 * data (relative), for the crash points. */
static uint64_t batch_write(struct sim *s, const uint8_t *data, size_t len, bool sync,
                            const uint64_t *ends, unsigned nends)
{
	if (cur(s)->size >= SEG_MAX)
		seg_new(s);
	struct sseg *g = cur(s);
	char p[128];
	seg_path(s, g->seq, p, sizeof p);
	int fd = open(p, O_WRONLY);
	cr_assert_geq(fd, 0);
	uint64_t at = g->size;
	if (s->plen)
		cr_assert_eq(pwrite(fd, s->pend, s->plen, (off_t)at), (ssize_t)s->plen);
	if (len)
		cr_assert_eq(pwrite(fd, data, len, (off_t)(at + s->plen)), (ssize_t)len);
	close(fd);
	for (unsigned i = 0; i < s->npb && g->nb < 512; i++)
		g->bounds[g->nb++] = at + s->pbound[i];
	for (unsigned i = 0; i < s->npn; i++) {
		cr_assert_lt(s->nwn, MAX_NOTES);
		struct note n = s->pnote[i];
		n.seq = g->seq;
		n.off += at;
		s->wn[s->nwn++] = n;
	}
	uint64_t dat = at + s->plen;
	TRACE(s, "write seg %" PRIx64 " at %" PRIu64 ": %zu of notes, %zu of data%s\n", g->seq, at,
	      s->plen, len, sync ? ", synced" : "");
	for (unsigned i = 0; i < nends && g->nb < 512; i++)
		g->bounds[g->nb++] = dat + ends[i];
	g->size = dat + len;
	s->plen = 0;
	s->npb = s->npn = 0;
	struct spool_segent *e = spool_segtab_find(&s->tab, 0, g->seq, true);
	if (e)
		e->size = g->size;
	if (sync) {
		g->durable = g->size;
		g->nb = 0;
		for (unsigned i = 0; i < s->nwn;) {
			if (s->wn[i].seq == g->seq && s->wn[i].off < g->durable) {
				note_durable(s, &s->wn[i]);
				s->wn[i] = s->wn[--s->nwn];
			} else {
				i++;
			}
		}
	}
	return dat;
}

static void note_queue(struct sim *s, const uint8_t *rec, size_t len, int msg, int rcpt)
{
	if (s->plen + len > sizeof s->pend || s->npn == 256 || s->npb == 256)
		batch_write(s, NULL, 0, false, NULL, 0);
	s->pnote[s->npn++] = (struct note){ 0, s->plen, msg, rcpt };
	memcpy(s->pend + s->plen, rec, len);
	s->plen += len;
	s->pbound[s->npb++] = s->plen;
}

static void ref(struct sim *s, struct mmsg *m, int delta)
{
	struct spool_segent *e = spool_segtab_find(&s->tab, 0, m->seq, true);
	cr_assert_not_null(e, "seed %u: message %s counted in segment %" PRIx64 " which is not in the table",
	                   s->seed, m->qid, m->seq);
	if (delta > 0) {
		e->live++;
		e->live_bytes += m->len;
	} else {
		cr_assert_gt(e->live, 0);
		e->live--;
		e->live_bytes -= m->len;
	}
}

/* ---- operations -------------------------------------------------------------------- */

/* 1..3 messages in one commit; with a chance the crash comes in the middle of it. */
static bool op_accept(struct sim *s)
{
	uint8_t buf[3 * 2048];
	uint64_t ends[3];
	int idx[3];
	size_t len = 0;
	unsigned k = 1 + rnd(s, 3);
	for (unsigned j = 0; j < k && s->nm < MAX_MSGS; j++) {
		struct mmsg *m = &s->m[s->nm];
		memset(m, 0, sizeof *m);
		snprintf(m->qid, sizeof m->qid, "1MODEL%011" PRIu64, ++s->qids);
		m->n = 1 + rnd(s, MAX_RCPT);
		char addr[MAX_RCPT][32];
		const char *rc[MAX_RCPT];
		for (uint32_t i = 0; i < m->n; i++) {
			snprintf(addr[i], sizeof addr[i], "r%u@d%u.test", i, rnd(s, 3));
			rc[i] = addr[i];
		}
		uint8_t data[1200];
		size_t dl = 20 + rnd(s, 1100);
		for (size_t i = 0; i < dl; i++)
			data[i] = (uint8_t)rnd(s, 256);
		size_t n = spoolrec_encode_msg(buf + len, sizeof buf - len, m->qid, 1700000000u, 0,
		                               s->rnd, "s@x.test", "client", rc, m->n, data, dl);
		cr_assert_gt(n, 0);
		m->off = len;
		m->len = n;
		len += n;
		ends[j] = len;
		idx[j] = s->nm++;
		TRACE(s, "accept %s n=%u\n", m->qid, m->n);
	}
	bool crash = s->force_cut || (rnd(s, 100) < 2 && !s->no_crash);
	uint64_t at = batch_write(s, buf, len, !crash, ends, k);
	for (unsigned j = 0; j < k; j++) {
		struct mmsg *m = &s->m[idx[j]];
		m->seq = cur(s)->seq;
		m->off += at;
		msg_add_loc(m, m->seq);
		if (crash) {
			m->doubt = true;
		} else {
			m->acked = m->in_mem = true;
			ref(s, m, 1);
		}
	}
	return crash;
}

/* One delivery attempt of some recipients of one message: delivered, bounced or
 * deferred each; outcome notes queued (not durable); a DONE when none is left. */
static void op_outcome(struct sim *s)
{
	int live[MAX_MSGS], nl = 0;
	for (int i = 0; i < s->nm; i++)
		if (s->m[i].in_mem)
			live[nl++] = i;
	if (!nl)
		return;
	/* older ones more often (as a queue drains them), so that segments empty out */
	uint32_t a = rnd(s, (uint32_t)nl), b = rnd(s, (uint32_t)nl);
	int mi = live[a < b ? a : b];
	struct mmsg *m = &s->m[mi];
	for (uint32_t i = 0; i < m->n; i++) {
		struct mrcpt *r = &m->r[i];
		if (final(r->st) || rnd(s, 4) == 0)
			continue;
		uint32_t p = rnd(s, 100);
		r->att++;
		if (p < 60) {
			r->st = SPOOLREC_RS_DELIVERED;
			r->next = 0;
		} else if (p < 72) {
			r->st = SPOOLREC_RS_BOUNCED;
			r->next = 0;
		} else {
			r->st = SPOOLREC_RS_DEFERRED;
			r->next = 1700000000u + r->att * 60u + rnd(s, 10);
		}
		uint8_t rec[128];
		uint32_t ix = i;
		size_t n = spoolrec_encode_rcpt(rec, sizeof rec, m->qid, r->st, r->att, r->next,
		                                1700000000u, &ix, 1);
		cr_assert_gt(n, 0);
		note_queue(s, rec, n, mi, (int)i);
		TRACE(s, "  %s rcpt %u -> %u (att %u)\n", m->qid, i, r->st, r->att);
	}
	uint32_t open = 0;
	for (uint32_t i = 0; i < m->n; i++)
		open += !final(m->r[i].st);
	if (open == 0) {
		uint8_t rec[64];
		size_t n = spoolrec_encode_done(rec, sizeof rec, m->qid);
		note_queue(s, rec, n, mi, -1);
		TRACE(s, "  %s DONE\n", m->qid);
		m->in_mem = false;
		ref(s, m, -1);
	}
}

/* Copy one message forward into the current segment: its record read back, rewritten by
 * spoolrec_encode_copy with what the worker knows of its recipients, one commit. */
static void copy_one(struct sim *s, struct mmsg *m, bool cut)
{
	char p[128];
	seg_path(s, m->seq, p, sizeof p);
	int fd = open(p, O_RDONLY);
	cr_assert_geq(fd, 0, "seed %u: %s of a live message is gone", s->seed, p);
	uint8_t rec[2048], out[4096];
	cr_assert_eq(pread(fd, rec, m->len, (off_t)m->off), (ssize_t)m->len);
	close(fd);
	struct spoolrec_rstate st[MAX_RCPT] = { 0 };
	for (uint32_t i = 0; i < m->n; i++)
		if (m->r[i].st != SPOOLREC_RS_OPEN)
			st[i] = (struct spoolrec_rstate){ m->r[i].st, m->r[i].att, m->r[i].next };
	size_t n = spoolrec_encode_copy(out, sizeof out, rec, m->len, st, m->n, 1700000001u);
	cr_assert_gt(n, 0, "seed %u: copy of %s", s->seed, m->qid);
	cr_assert_eq(spoolrec_encode_copy(NULL, 0, rec, m->len, st, m->n, 1700000001u), n);
	uint64_t ends[2] = { m->len, n };
	uint64_t at = batch_write(s, out, n, !cut, ends, 2);
	msg_add_loc(m, cur(s)->seq);
	if (cut)
		return;                     /* the crash comes: the original stays */
	for (uint32_t i = 0; i < m->n; i++)
		if (final(m->r[i].st))
			m->r[i].dur = true;     /* restated by a durable copy */
	ref(s, m, -1);
	TRACE(s, "copied %s from %" PRIx64 " to %" PRIx64 "\n", m->qid, m->seq, cur(s)->seq);
	m->seq = cur(s)->seq;
	m->off = at;
	ref(s, m, 1);
	s->copies++;
}

/* The reclaim rule once: remove the oldest segment it allows, or copy forward what it
 * asks. Returns true when a crash should follow at once (the crash points around a
 * removal). */
static bool op_reclaim(struct sim *s)
{
	struct spool_reclaim r;
	spool_reclaim_rule(s->tab.v, s->tab.n, UINT64_MAX, &r);
	if (r.remove > 0) {
		struct spool_segent *e = &s->tab.v[0];
		cr_assert(!e->in_use && e->live == 0);
		uint64_t seq = e->seq;
		char p[128];
		seg_path(s, seq, p, sizeof p);
		cr_assert_eq(unlink(p), 0, "seed %u: unlink %s: %s", s->seed, p, strerror(errno));
		spool_segtab_del(&s->tab, 0);
		seg_forget(s, seq);
		TRACE(s, "removed %" PRIx64 "\n", seq);
		s->removed++;
		for (unsigned i = 0; i < s->nwn;)       /* its notes are gone with it */
			if (s->wn[i].seq == seq)
				s->wn[i] = s->wn[--s->nwn];
			else
				i++;
		for (int i = 0; i < s->nm; i++) {
			struct mmsg *m = &s->m[i];
			for (unsigned j = 0; j < m->nlocs; j++)
				if (m->locs[j] == seq) {
					m->locs[j] = m->locs[--m->nlocs];
					break;
				}
			cr_assert(!(m->in_mem && m->seq == seq), "seed %u: removed the segment of live %s",
			          s->seed, m->qid);
			if (m->nlocs == 0 && !m->in_mem) {
				/* no MSG record of it anywhere: it cannot come back */
				for (uint32_t k = 0; k < m->n; k++)
					if (final(m->r[k].st))
						m->r[k].dur = true;
				m->doubt = false;
			}
		}
		return rnd(s, 100) < 3 && !s->no_crash;   /* a crash right after an unlink */
	}
	if (r.copy < 0)
		return false;
	uint64_t seq = s->tab.v[r.copy].seq;
	bool cut = rnd(s, 100) < 10 && !s->no_crash;   /* a crash in the middle of a copy's commit */
	for (int i = 0; i < s->nm; i++)
		if (s->m[i].in_mem && s->m[i].seq == seq) {
			copy_one(s, &s->m[i], cut);
			if (cut) {
				s->mid_commit++;
				return true;
			}
		}
	if (rnd(s, 100) < 30 && !s->no_crash) {
		s->between++;           /* copies durable, old segment not unlinked yet */
		return true;
	}
	return false;
}

/* ---- crash, check, restart --------------------------------------------------------- */

struct seen {
	struct sim *s;
	bool listed[MAX_MSGS];
	bool adopt;                 /* restart: take the scan's word */
};

static int find_msg(struct sim *s, const struct spoolrec_view *q)
{
	for (int i = 0; i < s->nm; i++)
		if (strlen(s->m[i].qid) == q->len && memcmp(s->m[i].qid, q->p, q->len) == 0)
			return i;
	return -1;
}

static int on_msg(void *ctx, const struct spooldir_msg *sm)
{
	struct seen *x = ctx;
	struct sim *s = x->s;
	int i = find_msg(s, &sm->m->qid);
	cr_assert_geq(i, 0, "seed %u: the scan lists %.*s, which was never written", s->seed,
	              (int)sm->m->qid.len, sm->m->qid.p);
	struct mmsg *m = &s->m[i];
	cr_assert(!x->listed[i], "seed %u: %s listed twice", s->seed, m->qid);
	x->listed[i] = true;
	cr_assert(m->acked || m->doubt, "seed %u: %s listed, neither acknowledged nor in doubt",
	          s->seed, m->qid);
	cr_assert_eq(sm->m->nrcpt, m->n);
	for (uint32_t k = 0; k < m->n; k++) {
		const struct spooldir_rcpt *g = &sm->rcpt[k];
		struct mrcpt *r = &m->r[k];
		bool glive = !final(g->state);
		if (final(r->st)) {
			cr_assert(!(glive && r->dur), "seed %u: %s rcpt %u resurrected: final (%u) and durable in the model, %u in the scan",
			          s->seed, m->qid, k, r->st, g->state);
			if (glive)
				s->resurrected++;
		} else {
			cr_assert(glive, "seed %u: %s rcpt %u final in the scan, not in the model", s->seed,
			          m->qid, k);
			cr_assert_leq(g->attempts, r->att, "seed %u: %s rcpt %u: %u attempts, model %u",
			              s->seed, m->qid, k, g->attempts, r->att);
		}
		if (x->adopt) {
			r->st = g->state;
			r->att = g->attempts;
			r->next = g->next_try;
			r->dur = final(g->state);
		}
	}
	if (x->adopt) {
		if (m->doubt && !m->acked)
			s->doubts_back++;
		m->acked = true;
		m->doubt = false;
		m->in_mem = true;
		m->seq = sm->seq;
		m->off = sm->off;
		cr_assert_eq(sm->len, m->len);
	}
	return 0;
}

/* The scan of directory dir against the model (adopt: and restart from it). */
static void check_dir(struct sim *s, const char *dir, bool adopt)
{
	struct seen *x = calloc(1, sizeof *x);
	cr_assert_not_null(x);
	x->s = s;
	x->adopt = adopt;
	struct spooldir_stats st;
	const struct spooldir_ops ops = { NULL, NULL, 0 };
	cr_assert_eq(spooldir_scan_state(dir, &ops, on_msg, x, &st), 0);
	s->duplicates += (unsigned)st.duplicates;
	for (int i = 0; i < s->nm; i++) {
		struct mmsg *m = &s->m[i];
		bool open = false;
		for (uint32_t k = 0; k < m->n; k++)
			open |= !final(m->r[k].st);
		cr_assert(!(m->acked && open && !x->listed[i]),
		          "seed %u: acknowledged %s with recipients not final is lost", s->seed, m->qid);
		if (adopt && !x->listed[i]) {
			m->in_mem = false;
			m->doubt = false;           /* never acknowledged: the client sends again */
			for (uint32_t k = 0; k < m->n; k++)
				if (final(m->r[k].st))
					m->r[k].dur = true;   /* not listed: nothing of it is live on disk */
		}
	}
	free(x);
}

static void check(struct sim *s, bool adopt)
{
	check_dir(s, s->dir, adopt);
}

static int adopt_seg(void *ctx, unsigned worker, uint64_t seq, uint64_t size)
{
	struct sim *s = ctx;
	cr_assert_eq(worker, 0);
	cr_assert_eq(spool_segtab_add(&s->tab, 0, seq, size, true), 0);
	cr_assert_lt(s->nseg, MAX_SEGS);
	struct sseg *g = &s->seg[s->nseg++];
	memset(g, 0, sizeof *g);
	g->seq = seq;
	g->size = g->durable = size;
	if (seq > s->next_seq)
		s->next_seq = seq;
	return 0;
}

static void crash(struct sim *s)
{
	s->crashes++;
	for (int i = 0; i < s->nseg; i++) {
		struct sseg *g = &s->seg[i];
		uint64_t cut = g->size;
		uint32_t how = rnd(s, 3);
		if (g->size > g->durable && how == 1 && g->nb > 0)
			cut = g->bounds[rnd(s, g->nb)];
		else if (g->size > g->durable && how == 2)
			cut = g->durable + rnd(s, (uint32_t)(g->size - g->durable + 1));
		if (cut < g->durable)
			cut = g->durable;
		TRACE(s, "crash: seg %" PRIx64 " durable %" PRIu64 " size %" PRIu64 " cut at %" PRIu64 "\n",
		      g->seq, g->durable, g->size, cut);
		char p[128];
		seg_path(s, g->seq, p, sizeof p);
		cr_assert_eq(truncate(p, (off_t)cut), 0);
	}
	/* what was pending in memory is gone; so is the worker */
	s->plen = 0;
	s->npb = s->npn = 0;
	s->nwn = 0;
	check(s, true);
	/* the restart: the segments there are, the messages the scan found */
	spool_segtab_fini(&s->tab);
	s->nseg = 0;
	cr_assert_eq(spooldir_segments(s->dir, adopt_seg, s), 0);
	for (int i = 0; i < s->nm; i++) {
		struct mmsg *m = &s->m[i];
		m->nlocs = 0;
	}
	/* every MSG record on disk, for the removal bookkeeping (including hidden ones) */
	for (int i = 0; i < s->nm; i++) {
		struct mmsg *m = &s->m[i];
		if (m->in_mem) {
			msg_add_loc(m, m->seq);
			ref(s, m, 1);
		}
	}
	seg_new(s);
}

/* Records of a message may lie in segments other than its current one (an original
 * after its copy, hidden ones): the removal bookkeeping must know them all, or it would
 * mark a message gone while a record of it survives. After a restart, read them back. */
static int loc_ev(void *ctx, const struct spoolrec_scan_ev *ev)
{
	void **a = ctx;
	struct sim *s = a[0];
	uint64_t seq = *(uint64_t *)a[1];
	if (ev->kind == SPOOLREC_SCAN_RECORD && ev->type == SPOOLREC_MSG) {
		int i = find_msg(s, &ev->msg.qid);
		if (i >= 0)
			msg_add_loc(&s->m[i], seq);
	}
	return 0;
}

static void relocate(struct sim *s)
{
	for (int i = 0; i < s->nseg; i++) {
		char p[128];
		seg_path(s, s->seg[i].seq, p, sizeof p);
		FILE *f = fopen(p, "rb");
		cr_assert_not_null(f);
		static uint8_t buf[1 << 20];
		size_t n = fread(buf, 1, sizeof buf, f);
		fclose(f);
		void *a[2] = { s, &s->seg[i].seq };
		spoolrec_scan(buf, n, loc_ev, a);
	}
}

static void sim_init(struct sim *s, unsigned seed)
{
	memset(s, 0, sizeof *s);
	s->seed = seed;
	s->rnd = 0x9E3779B97F4A7C15ull * (seed + 1);
	strcpy(s->dir, "/tmp/spool_model.XXXXXX");
	cr_assert_not_null(mkdtemp(s->dir));
	seg_new(s);
}

static void sim_fini(struct sim *s)
{
	spool_segtab_fini(&s->tab);
	nftw(s->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* ops random operations; true when one of them asks for a crash */
static bool run_ops(struct sim *s, unsigned ops)
{
	for (unsigned i = 0; i < ops && s->nm < MAX_MSGS - 4; i++) {
		uint32_t p = rnd(s, 100);
		bool boom = false;
		if (p < 22)
			boom = op_accept(s);
		else if (p < 68)
			op_outcome(s);
		else if (p < 75)
			batch_write(s, NULL, 0, false, NULL, 0);   /* notes alone, no sync */
		else if (p < 98)
			boom = op_reclaim(s);
		else
			boom = !s->no_crash;
		if (boom) {
			crash(s);
			relocate(s);
		}
	}
	return false;
}

static void run(struct sim *s, unsigned ops)
{
	run_ops(s, ops);
	crash(s);
	relocate(s);
}

TestSuite(spool_model);

Test(spool_model, random_sequences_with_crashes, .timeout = 60)
{
	unsigned crashes = 0, resurrected = 0, doubts = 0, dups = 0, copies = 0, removed = 0,
	         mid = 0, between = 0;
	struct sim *s = malloc(sizeof *s);
	cr_assert_not_null(s);
	const char *t = getenv("SPOOL_MODEL_TRACE");
	trace_seed = t ? (unsigned)atoi(t) : 0;
	t = getenv("SPOOL_MODEL_SEEDS");            /* longer runs by hand */
	unsigned seeds = t && atoi(t) > 0 ? (unsigned)atoi(t) : SEEDS;
	t = getenv("SPOOL_MODEL_FIRST");
	unsigned first = t && atoi(t) > 0 ? (unsigned)atoi(t) : 1;
	for (unsigned seed = first; seed < first + seeds; seed++) {
		sim_init(s, seed);
		run(s, OPS);
		crashes += s->crashes;
		resurrected += s->resurrected;
		doubts += s->doubts_back;
		dups += s->duplicates;
		copies += s->copies;
		removed += s->removed;
		mid += s->mid_commit;
		between += s->between;
		sim_fini(s);
	}
	free(s);
	(void)trace_seed;
	fprintf(stderr, "spool_model: %u seeds, %u crashes, %u segments removed, %u copies forward, "
	        "%u cut copies, %u crashes between copy and unlink, %u duplicates seen, "
	        "%u recipients back (notes not synced), %u unacknowledged messages back\n",
	        seeds, crashes, removed, copies, mid, between, dups, resurrected, doubts);
	/* the crash points were reached */
	cr_expect_gt(removed, 100);
	cr_expect_gt(copies, 50);
	cr_expect_gt(dups, 0, "no crash found a message twice");
	cr_expect_gt(mid, 0);
	cr_expect_gt(resurrected, 0, "no unsynced outcome was ever lost: the crashes cut nothing");
}

/* The current segment cut at every octet of its unsynced tail (notes written without a
 * sync; at the last point also a copy forward and an accept whose commits the crash
 * cut), each cut a directory of its own (hard links to the other segments), scanned and
 * checked against the model. */
static void every_cut(struct sim *s, unsigned *cuts)
{
	struct sseg *g = cur(s);
	char d2[80], p[160], q[160];
	snprintf(d2, sizeof d2, "%s.cut", s->dir);
	cr_assert_eq(mkdir(d2, 0700), 0);
	char *buf = malloc(g->size + 1);
	cr_assert_not_null(buf);
	seg_path(s, g->seq, p, sizeof p);
	FILE *f = fopen(p, "rb");
	cr_assert_not_null(f);
	cr_assert_eq(fread(buf, 1, g->size, f), g->size);
	fclose(f);
	for (int i = 0; i < s->nseg; i++) {
		seg_path(s, s->seg[i].seq, p, sizeof p);
		snprintf(q, sizeof q, "%s/%s", d2, strrchr(p, '/') + 1);
		if (s->seg[i].seq != g->seq)
			cr_assert_eq(link(p, q), 0);
	}
	seg_path(s, g->seq, p, sizeof p);
	snprintf(q, sizeof q, "%s/%s", d2, strrchr(p, '/') + 1);
	for (uint64_t o = g->durable; o <= g->size; o++) {
		int fd = open(q, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		cr_assert_geq(fd, 0);
		cr_assert_eq(write(fd, buf, o), (ssize_t)o);
		close(fd);
		check_dir(s, d2, false);
		(*cuts)++;
	}
	nftw(d2, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(buf);
}

Test(spool_model, every_cut_of_the_tail, .timeout = 60)
{
	struct sim *s = malloc(sizeof *s);
	cr_assert_not_null(s);
	unsigned cuts = 0;
	sim_init(s, 7);
	s->no_crash = true;
	for (int k = 0; k < 4; k++) {
		run_ops(s, 60);
		for (int j = 0; j < 6; j++)
			op_outcome(s);
		batch_write(s, NULL, 0, false, NULL, 0);
		for (int j = 0; j < 6; j++)
			op_outcome(s);
		if (k == 3) {
			/* a copy forward and an accept, both cut by the crash */
			for (int i = 0; i < s->nm; i++)
				if (s->m[i].in_mem) {
					copy_one(s, &s->m[i], true);
					break;
				}
			s->force_cut = true;
			cr_assert(op_accept(s));
		}
		batch_write(s, NULL, 0, false, NULL, 0);
		cr_assert_gt(cur(s)->size, cur(s)->durable);
		every_cut(s, &cuts);
	}
	fprintf(stderr, "spool_model: %u cuts of the unsynced tail checked\n", cuts);
	cr_expect_gt(cuts, 500);
	sim_fini(s);
	free(s);
}
