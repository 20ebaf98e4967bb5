/* core/spooldir — read a spool directory back: the startup scan and `ringrelay --queue`.
 *
 * The scan works in two passes over segments mapped read-only:
 *   1. every segment, in (worker, seq) order, goes through spoolrec_scan(), which
 *      decodes each record once (CRC included), resynchronises after damage and reports
 *      what it skipped. DONE qids go into a hash set, VOID qids into another; for each
 *      MSG we remember where it is and its qid (interned in a fourth set, whose entry
 *      names the record to hand out when a qid has two: a copy forward and its
 *      original); each RCPT record
 *      is copied (its fields, its indexes) into an array, its qid into a third set; damage
 *      is counted and handed to ops->damage;
 *   2. the RCPT records are sorted by (qid, order seen), so that the outcomes of one
 *      message are one run, found by a binary search;
 *   3. each remembered MSG whose qid is in neither set is parsed again from the same
 *      read-only mapping without recomputing its CRC (spoolrec_decode_verified: the
 *      fields are re-read, a few length prefixes); its outcomes, if it has any, are merged
 *      per recipient into a scratch array (one message's recipients, reused); a message
 *      with a recipient not final is live and handed to msg_state or ops->msg.
 * So every octet goes through the CRC once, and a DONE, VOID or RCPT record in a later
 * (or an earlier) segment than its MSG is honoured. Segments are mapped one at a time;
 * the views handed to a callback are valid during the call only.
 *
 * Segment names are "w<WORKER>-<SEQ>.seg", WORKER decimal without leading zeros, SEQ 16
 * lowercase hex digits; anything else in the directory is ignored, and so is a matching
 * name that is not a regular file. */
#include "core/spooldir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <stdbool.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SPOOLDIR_NAME_MAX 40    /* "w" + 10 digits + "-" + 16 hex + ".seg" + NUL = 33 */

struct spooldir_seg {
	unsigned worker;
	uint64_t seq;
	char name[SPOOLDIR_NAME_MAX];
	const uint8_t *map;         /* NULL for an empty or skipped segment */
	size_t size;                /* octets in pass 1 */
	size_t maplen;              /* octets mapped now */
	size_t zero_at;             /* the zero tail begins here (size: no zero tail) */
	bool torn;                  /* it ended in a torn record */
	bool records;               /* it holds at least one valid record */
};

/* Queue ids are copied here, so that a segment is unmapped as soon as it is read: a
 * spool of more segments than the process may map (vm.max_map_count) still scans. */
struct spooldir_arena {
	char *p;
	size_t len, cap;
};

struct spooldir_msgref {
	size_t qid;                 /* offset in the arena */
	uint32_t qid_len;
	uint32_t seg;
	uint64_t off;
	uint8_t gen;                /* copy generation (proto/spoolrec.h) */
	uint8_t dup;                /* another record of this qid is handed out instead */
};

struct spooldir_key {
	size_t off1;                /* offset in the arena + 1; 0: free slot */
	uint32_t len;
	uint32_t hash;
	size_t val;                 /* (msgs) the index of the MSG record handed out */
};

struct spooldir_set {
	struct spooldir_key *slot;
	size_t cap;                 /* a power of two */
	size_t n;
	const struct spooldir_arena *a;
};

/* One RCPT record of pass 1: its indexes are idx[first .. first+n) of the walk's index
 * array. Sorted by (qid, ord) after pass 1. */
struct spooldir_outrec {
	size_t qid;                 /* its qid's offset in the arena: its key in `outq` */
	size_t ord;                 /* the order it was seen in */
	size_t first;
	uint64_t next_try;
	uint32_t attempts;
	uint32_t n;
	uint8_t state;
};

static int spooldir_arena_add(struct spooldir_arena *a, const char *p, uint32_t len,
                              size_t *off)
{
	if (len > a->cap - a->len) {
		size_t cap = a->cap ? a->cap : 4096;
		while (cap - a->len < len)
			cap *= 2;
		char *q = realloc(a->p, cap);
		if (!q)
			return -ENOMEM;
		a->p = q;
		a->cap = cap;
	}
	memcpy(a->p + a->len, p, len);
	*off = a->len;
	a->len += len;
	return 0;
}

/* ---- names --------------------------------------------------------------------------- */

static int spooldir_hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* 1 when name is a segment name, with its worker and seq. */
static int spooldir_parse_name(const char *name, unsigned *worker, uint64_t *seq)
{
	const char *s = name;
	unsigned long w = 0;
	uint64_t q = 0;

	if (*s++ != 'w' || *s < '0' || *s > '9' || (s[0] == '0' && s[1] != '-'))
		return 0;
	for (; *s >= '0' && *s <= '9'; s++) {
		w = w * 10 + (unsigned long)(*s - '0');
		if (w > UINT_MAX)
			return 0;
	}
	if (*s++ != '-')
		return 0;
	for (int i = 0; i < 16; i++, s++) {
		int v = spooldir_hexval(*s);
		if (v < 0)
			return 0;
		q = q << 4 | (uint64_t)v;
	}
	if (strcmp(s, ".seg") != 0)
		return 0;
	*worker = (unsigned)w;
	*seq = q;
	return 1;
}

static int spooldir_seg_cmp(const void *a, const void *b)
{
	const struct spooldir_seg *x = a, *y = b;

	if (x->worker != y->worker)
		return x->worker < y->worker ? -1 : 1;
	if (x->seq != y->seq)
		return x->seq < y->seq ? -1 : 1;
	return 0;
}

/* ---- the DONE set -------------------------------------------------------------------- */

static uint32_t spooldir_hash(const char *p, uint32_t len)
{
	uint32_t h = 2166136261u;       /* FNV-1a */

	for (uint32_t i = 0; i < len; i++)
		h = (h ^ (uint8_t)p[i]) * 16777619u;
	return h;
}

static struct spooldir_key *spooldir_set_find(const struct spooldir_set *s, const char *p,
                                              uint32_t len, uint32_t h)
{
	size_t mask = s->cap - 1;

	for (size_t i = h & mask;; i = (i + 1) & mask) {
		struct spooldir_key *k = &s->slot[i];
		if (!k->off1 || (k->hash == h && k->len == len &&
		                 memcmp(s->a->p + k->off1 - 1, p, len) == 0))
			return k;
	}
}

/* The arena offset of qid p + 1 when the set holds it, else 0. */
static size_t spooldir_set_get(const struct spooldir_set *s, const char *p, uint32_t len)
{
	if (!s->n)
		return 0;
	return spooldir_set_find(s, p, len, spooldir_hash(p, len))->off1;
}

static int spooldir_set_has(const struct spooldir_set *s, const char *p, uint32_t len)
{
	return spooldir_set_get(s, p, len) != 0;
}

/* Add qid p (copied into the set's arena unless it is there already); *key gets its
 * slot (valid until the next add), *fresh whether it was not there before. */
static int spooldir_set_put(struct spooldir_set *s, struct spooldir_arena *a, const char *p,
                            uint32_t len, struct spooldir_key **key, int *fresh)
{
	if ((s->n + 1) * 2 > s->cap) {      /* keep the load at most 1/2 */
		size_t ncap = s->cap ? s->cap * 2 : 64;
		struct spooldir_set ns = { calloc(ncap, sizeof *ns.slot), ncap, s->n, a };
		if (!ns.slot)
			return -ENOMEM;
		for (size_t i = 0; i < s->cap; i++) {
			const struct spooldir_key *k = &s->slot[i];
			if (k->off1)
				*spooldir_set_find(&ns, a->p + k->off1 - 1, k->len, k->hash) = *k;
		}
		free(s->slot);
		*s = ns;
	}
	s->a = a;
	uint32_t h = spooldir_hash(p, len);
	struct spooldir_key *k = spooldir_set_find(s, p, len, h);
	*fresh = !k->off1;
	if (!k->off1) {
		size_t off;
		if (spooldir_arena_add(a, p, len, &off) < 0)
			return -ENOMEM;
		*k = (struct spooldir_key){ off + 1, len, h, 0 };
		s->n++;
	}
	*key = k;
	return 0;
}

/* spooldir_set_put, when only the qid's offset in the arena matters (at may be NULL). */
static int spooldir_set_add(struct spooldir_set *s, struct spooldir_arena *a, const char *p,
                            uint32_t len, size_t *at)
{
	struct spooldir_key *k;
	int fresh;

	if (spooldir_set_put(s, a, p, len, &k, &fresh) < 0)
		return -ENOMEM;
	if (at)
		*at = k->off1 - 1;
	return 0;
}

/* ---- segments ------------------------------------------------------------------------ */

/* Collects the segment names in d, sorted by (worker, seq). */
static int spooldir_collect(DIR *d, struct spooldir_seg **out, size_t *nout)
{
	struct spooldir_seg *v = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	int rc;

	for (;;) {
		errno = 0;
		de = readdir(d);
		if (!de) {
			if (errno) {
				rc = -errno;
				goto fail;
			}
			break;
		}
		unsigned w;
		uint64_t q;
		if (!spooldir_parse_name(de->d_name, &w, &q))
			continue;
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			struct spooldir_seg *nv = realloc(v, ncap * sizeof *nv);
			if (!nv) {
				rc = -ENOMEM;
				goto fail;
			}
			v = nv;
			cap = ncap;
		}
		memset(&v[n], 0, sizeof v[n]);
		v[n].worker = w;
		v[n].seq = q;
		strcpy(v[n].name, de->d_name);   /* parse_name bounded it to 32 octets */
		n++;
	}
	if (n)
		qsort(v, n, sizeof *v, spooldir_seg_cmp);
	*out = v;
	*nout = n;
	return 0;
fail:
	free(v);
	return rc;
}

/* Maps one segment. Returns 1 when mapped (or empty), 0 to skip it (gone since the
 * directory was read, or not a regular file), or -errno. */
static int spooldir_map(int dfd, struct spooldir_seg *sg)
{
	struct stat sb;
	int fd, rc;

	/* O_NONBLOCK: a FIFO under a segment's name must not hang the scan. */
	fd = openat(dfd, sg->name, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	if (fstat(fd, &sb) < 0) {
		rc = -errno;
		goto out;
	}
	if (!S_ISREG(sb.st_mode)) {
		rc = 0;
		goto out;
	}
	if ((uintmax_t)sb.st_size > SIZE_MAX) {
		rc = -EFBIG;
		goto out;
	}
	sg->size = sg->maplen = (size_t)sb.st_size;
	sg->map = NULL;
	if (sg->size) {
		void *m = mmap(NULL, sg->size, PROT_READ, MAP_PRIVATE, fd, 0);
		if (m == MAP_FAILED) {
			rc = -errno;
			sg->size = sg->maplen = 0;
			goto out;
		}
		(void)madvise(m, sg->size, MADV_SEQUENTIAL);
		sg->map = m;
	}
	rc = 1;
out:
	close(fd);
	return rc;
}

static void spooldir_unmap(struct spooldir_seg *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (v[i].map) {
			munmap((void *)(uintptr_t)v[i].map, v[i].maplen);
			v[i].map = NULL;
		}
}

/* ---- the scan ------------------------------------------------------------------------ */

/* Pass 1 state, shared by the per-segment event callback. */
struct spooldir_walk {
	const struct spooldir_ops *ops;
	void *ctx;
	struct spooldir_stats *st;
	struct spooldir_seg *sg;
	uint32_t segno;
	struct spooldir_msgref *refs;
	size_t nref, capref;
	struct spooldir_arena arena;
	struct spooldir_set done;
	struct spooldir_set voided;
	struct spooldir_set outq;   /* qids with RCPT records */
	struct spooldir_set msgs;   /* qids with MSG records: val, the one handed out */
	struct spooldir_outrec *out;
	size_t nout, capout;
	uint32_t *idx;              /* the RCPT records' indexes, back to back */
	size_t nidx, capidx;
	int rc;                     /* -errno that stopped the walk */
	size_t seg_zero_at;         /* the current segment's zero tail */
	size_t seg_torn_at;         /* ... and where its torn tail begins (size: none) */
};

/* A MSG record. The same qid seen before (a copy and its original: a crash came between
 * the copy's commit and the removal of the original's segment): the record of the lower
 * copy generation is handed out (the first seen on a tie), the other marked dup. Not the
 * copy: a copy whose commit the crash cut may lie on disk whole while the RCPT records
 * that restate its recipients do not, and the outcome records it was to stand for lie
 * before it, in segments that go once it counts. The older record has every outcome
 * record of the message at or after it, or restated in it (a copy whose original is gone
 * was made durable before the original went). */
static int spooldir_add_ref(struct spooldir_walk *w, const struct spoolrec_view *qid,
                            uint64_t off, unsigned gen)
{
	if (w->nref == w->capref) {
		size_t ncap = w->capref ? w->capref * 2 : 256;
		struct spooldir_msgref *nr = realloc(w->refs, ncap * sizeof *nr);
		if (!nr)
			return -ENOMEM;
		w->refs = nr;
		w->capref = ncap;
	}
	struct spooldir_key *k;
	int fresh;
	if (spooldir_set_put(&w->msgs, &w->arena, qid->p, qid->len, &k, &fresh) < 0)
		return -ENOMEM;
	size_t j = w->nref++;
	w->refs[j] = (struct spooldir_msgref){ k->off1 - 1, qid->len, w->segno, off,
	                                       (uint8_t)gen, 0 };
	if (!fresh) {
		struct spooldir_msgref *b = &w->refs[k->val];
		w->st->duplicates++;
		if (gen < b->gen) {
			b->dup = 1;
		} else {
			w->refs[j].dup = 1;
			return 0;
		}
	}
	k->val = j;
	return 0;
}

/* p, an array of *cap elements of sz octets, grown (doubling, from `first`) to hold
 * need > *cap; NULL, p left alone, when out of memory. */
static void *spooldir_grow(void *p, size_t *cap, size_t need, size_t sz, size_t first)
{
	size_t ncap = *cap ? *cap : first;

	while (ncap < need) {
		if (ncap > SIZE_MAX / 2 / sz)
			return NULL;
		ncap *= 2;
	}
	void *np = realloc(p, ncap * sz);
	if (np)
		*cap = ncap;
	return np;
}

/* A RCPT record: its fields and indexes copied, its qid interned in outq. */
static int spooldir_add_outcome(struct spooldir_walk *w, const struct spoolrec_outcome *o)
{
	size_t at;

	if (w->nout == w->capout) {
		struct spooldir_outrec *no = spooldir_grow(w->out, &w->capout, w->nout + 1,
		                                           sizeof *no, 64);
		if (!no)
			return -ENOMEM;
		w->out = no;
	}
	if (o->n > SIZE_MAX - w->nidx)
		return -ENOMEM;
	if (w->nidx + o->n > w->capidx) {
		uint32_t *ni = spooldir_grow(w->idx, &w->capidx, w->nidx + o->n, sizeof *ni, 256);
		if (!ni)
			return -ENOMEM;
		w->idx = ni;
	}
	if (spooldir_set_add(&w->outq, &w->arena, o->qid.p, o->qid.len, &at) < 0)
		return -ENOMEM;
	w->out[w->nout] = (struct spooldir_outrec){
		.qid = at, .ord = w->nout, .first = w->nidx, .next_try = o->next_try,
		.attempts = o->attempts, .n = o->n, .state = o->state,
	};
	w->nout++;
	for (uint32_t i = 0; i < o->n; i++)
		w->idx[w->nidx++] = spoolrec_outcome_idx(o, i);
	return 0;
}

static int spooldir_on_event(void *vw, const struct spoolrec_scan_ev *ev)
{
	struct spooldir_walk *w = vw;
	struct spooldir_damage d;

	switch (ev->kind) {
	case SPOOLREC_SCAN_RECORD:
		w->sg->records = true;
		switch (ev->type) {
		case SPOOLREC_MSG:
			w->rc = spooldir_add_ref(w, &ev->msg.qid, ev->off, spoolrec_gen(ev->msg.flags));
			break;
		case SPOOLREC_DONE:
			w->rc = spooldir_set_add(&w->done, &w->arena, ev->done_qid.p,
			                         ev->done_qid.len, NULL);
			break;
		case SPOOLREC_VOID:
			w->rc = spooldir_set_add(&w->voided, &w->arena, ev->done_qid.p,
			                         ev->done_qid.len, NULL);
			break;
		case SPOOLREC_RCPT:
			w->st->outcomes++;
			w->rc = spooldir_add_outcome(w, &ev->outcome);
			break;
		case SPOOLREC_PAD:
			break;
		default:
			w->st->unknown++;
			break;
		}
		return w->rc < 0;
	case SPOOLREC_SCAN_SKIPPED:
	case SPOOLREC_SCAN_TORN:
		d = (struct spooldir_damage){ w->sg->name, ev->off, ev->len,
		                              ev->kind == SPOOLREC_SCAN_TORN, ev->err, 0 };
		if (d.torn) {
			w->sg->torn = true;
			if (ev->off < w->seg_torn_at)
				w->seg_torn_at = ev->off;
			w->st->torn++;
			w->st->torn_bytes += ev->len;
		} else {
			w->st->corrupt++;
			w->st->corrupt_bytes += ev->len;
		}
		if (w->ops->damage)
			w->ops->damage(w->ctx, &d);
		return 0;
	case SPOOLREC_SCAN_END:
		w->seg_zero_at = ev->off;
		break;
	case SPOOLREC_SCAN_NONE:
		break;
	}
	return 0;
}

/* After the scan (nothing mapped any more): give back the zero tails. */
static void spooldir_trim(int dfd, struct spooldir_seg *segs, size_t nseg,
                          struct spooldir_stats *st)
{
	for (size_t i = 0; i < nseg; i++) {
		struct spooldir_seg *sg = &segs[i];
		if (sg->zero_at >= sg->size)
			continue;
		if (sg->zero_at == 0) {
			if (unlinkat(dfd, sg->name, 0) == 0)
				st->removed++;
			continue;
		}
		int fd = openat(dfd, sg->name, O_WRONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
		if (fd < 0)
			continue;
		if (ftruncate(fd, (off_t)sg->zero_at) == 0) {
			st->trimmed++;
			st->trimmed_bytes += sg->size - sg->zero_at;
		}
		close(fd);
	}
}

static int spooldir_outrec_cmp(const void *a, const void *b)
{
	const struct spooldir_outrec *x = a, *y = b;

	if (x->qid != y->qid)
		return x->qid < y->qid ? -1 : 1;
	if (x->ord != y->ord)
		return x->ord < y->ord ? -1 : 1;
	return 0;
}

/* The first of the sorted RCPT records of the qid at arena offset qid (nout if none). */
static size_t spooldir_outrec_first(const struct spooldir_walk *w, size_t qid)
{
	size_t lo = 0, hi = w->nout;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (w->out[mid].qid < qid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static int spooldir_final(uint8_t state)
{
	return state == SPOOLREC_RS_DELIVERED || state == SPOOLREC_RS_BOUNCED;
}

/* One outcome onto one recipient: the merge rules of core/spooldir.h. o is later in scan
 * order than whatever r holds. */
static void spooldir_merge(struct spooldir_rcpt *r, const struct spooldir_outrec *o)
{
	int take;

	if (r->state == SPOOLREC_RS_OPEN)
		take = 1;
	else if (spooldir_final(r->state))
		take = 0;                       /* the first final stays */
	else if (spooldir_final(o->state))
		take = 1;                       /* final beats deferred */
	else
		take = o->attempts > r->attempts ||
		       (o->attempts == r->attempts && o->next_try > r->next_try);
	if (take)
		*r = (struct spooldir_rcpt){ o->state, o->attempts,
		                             spooldir_final(o->state) ? 0 : o->next_try };
}

/* The recipients of message m (qid at arena offset qid + 1, or 0: no outcomes) into
 * rcpt[0..m->nrcpt). Returns the number that are final. */
static uint32_t spooldir_merge_msg(const struct spooldir_walk *w, size_t qid1,
                                   const struct spoolrec_msg *m, struct spooldir_rcpt *rcpt,
                                   struct spooldir_stats *st)
{
	uint32_t nfinal = 0;

	memset(rcpt, 0, (size_t)m->nrcpt * sizeof *rcpt);
	if (!qid1)
		return 0;
	for (size_t j = spooldir_outrec_first(w, qid1 - 1);
	     j < w->nout && w->out[j].qid == qid1 - 1; j++) {
		const struct spooldir_outrec *o = &w->out[j];
		for (uint32_t i = 0; i < o->n; i++) {
			uint32_t k = w->idx[o->first + i];
			if (k >= m->nrcpt) {
				st->bad_outcomes++;
				continue;
			}
			spooldir_merge(&rcpt[k], o);
		}
	}
	for (uint32_t k = 0; k < m->nrcpt; k++)
		nfinal += spooldir_final(rcpt[k].state);
	return nfinal;
}

int spooldir_scan_ops(const char *dir, const struct spooldir_ops *ops, void *ctx,
                      struct spooldir_stats *st)
{
	return spooldir_scan_state(dir, ops, NULL, ctx, st);
}

int spooldir_scan_state(const char *dir, const struct spooldir_ops *ops,
                        spooldir_state_cb msg_state, void *ctx, struct spooldir_stats *st)
{
	static const struct spooldir_ops no_ops = { NULL, NULL, 0 };
	struct spooldir_stats dummy;
	struct spooldir_seg *segs = NULL;
	size_t nseg = 0;
	struct spooldir_walk w;
	struct spooldir_rcpt *rcpt = NULL;  /* pass 3's scratch: one message's recipients */
	size_t caprcpt = 0;
	DIR *d;
	int rc;

	if (!st)
		st = &dummy;
	if (!ops)
		ops = &no_ops;
	memset(st, 0, sizeof *st);
	memset(&w, 0, sizeof w);
	w.ops = ops;
	w.ctx = ctx;
	w.st = st;

	d = opendir(dir);
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	rc = spooldir_collect(d, &segs, &nseg);
	if (rc < 0)
		goto out;

	/* Pass 1: map and walk every segment: MSG places, DONE and VOID qids, RCPT records,
	 * damage. */
	for (size_t i = 0; i < nseg; i++) {
		struct spooldir_seg *sg = &segs[i];
		rc = spooldir_map(dirfd(d), sg);
		if (rc < 0)
			goto out;
		if (rc == 0)
			continue;
		st->segments++;
		w.sg = sg;
		w.segno = (uint32_t)i;
		w.seg_zero_at = sg->size;
		w.seg_torn_at = sg->size;
		int scan = sg->size ? spoolrec_scan(sg->map, sg->size, spooldir_on_event, &w) : 0;
		/* a torn tail holds nothing readable: it goes with the zero tail (a start that
		 * trims), so that the segment reads clean once later segments follow it */
		sg->zero_at = w.seg_torn_at < w.seg_zero_at ? w.seg_torn_at : w.seg_zero_at;
		spooldir_unmap(sg, 1);          /* one mapping at a time */
		if (scan != 0) {
			rc = w.rc;
			goto out;
		}
	}

	/* A torn or empty segment is what a crash leaves in the segment being written, never
	 * in one its worker wrote past: when a later segment of the same worker holds records,
	 * this one lost its end to something else (a truncation, a copy gone wrong), and what
	 * it lost may have been acknowledged. Said as an error, once per segment. */
	for (size_t i = 0; i < nseg; i++) {
		struct spooldir_seg *sg = &segs[i];
		if (sg->records && !sg->torn)
			continue;
		bool later = false;
		for (size_t k = 0; k < nseg && !later; k++)
			later = segs[k].worker == sg->worker && segs[k].seq > sg->seq && segs[k].records;
		if (!later)
			continue;
		st->cut_short++;
		if (ops && ops->damage) {
			struct spooldir_damage cd = { sg->name, sg->size, 0, 0, SPOOLREC_E_TRUNCATED, 1 };
			ops->damage(ctx, &cd);
		}
	}

	/* Pass 2: each message's outcomes one run, in the order they were seen. */
	if (w.nout > 1)
		qsort(w.out, w.nout, sizeof *w.out, spooldir_outrec_cmp);

	/* Pass 3: the live messages, in segment then record order, each segment mapped
	 * again while its messages are handed out. Records are never rewritten in place, so
	 * what pass 1 verified is what is read here. */
	rc = 0;
	size_t cur = nseg, avail = 0;
	for (size_t j = 0; j < w.nref; j++) {
		const struct spooldir_msgref *r = &w.refs[j];
		struct spooldir_seg *sg = &segs[r->seg];
		const char *qid = w.arena.p + r->qid;
		struct spoolrec_msg m;
		enum spoolrec_type type;
		size_t used;

		if (r->dup)
			continue;               /* counted in duplicates; its outcomes are merged */
		if (spooldir_set_has(&w.done, qid, r->qid_len)) {
			st->done++;
			continue;
		}
		if (spooldir_set_has(&w.voided, qid, r->qid_len)) {
			st->voided++;
			continue;
		}
		if (r->seg != cur) {
			if (cur < nseg)
				spooldir_unmap(&segs[cur], 1);
			cur = r->seg;
			size_t seen = sg->size;     /* what pass 1 read (it may have grown since) */
			if (spooldir_map(dirfd(d), sg) != 1)
				sg->map = NULL;         /* gone meanwhile: nothing to hand out */
			avail = sg->maplen < seen ? sg->maplen : seen;
			sg->size = seen;
		}
		if (!sg->map || r->off >= avail ||
		    spoolrec_decode_verified(sg->map + r->off, avail - r->off, &used, &type, &m,
		                             NULL, NULL) != SPOOLREC_OK || type != SPOOLREC_MSG)
			continue;
		/* Outcomes: only for a message that has some, or when they are asked for. */
		size_t qid1 = spooldir_set_get(&w.outq, qid, r->qid_len);
		if (qid1 || msg_state) {
			size_t need = m.nrcpt ? m.nrcpt : 1;    /* never NULL for msg_state */
			if (need > caprcpt) {
				struct spooldir_rcpt *nr = spooldir_grow(rcpt, &caprcpt, need,
				                                         sizeof *nr, 16);
				if (!nr) {
					rc = -ENOMEM;
					break;
				}
				rcpt = nr;
			}
			uint32_t nfinal = spooldir_merge_msg(&w, qid1, &m, rcpt, st);
			if (m.nrcpt && nfinal == m.nrcpt) {
				st->finished++;
				continue;
			}
		}
		st->live++;
		if (msg_state) {
			const struct spooldir_msg sm = {
				.seg = sg->name, .worker = sg->worker, .seq = sg->seq, .off = r->off,
				.len = used, .m = &m, .rcpt = rcpt,
			};
			if (msg_state(ctx, &sm) != 0)
				break;
		} else if (ops->msg && ops->msg(ctx, sg->name, r->off, &m) != 0) {
			break;
		}
	}
out:
	if (segs)
		spooldir_unmap(segs, nseg);
	if (rc == 0 && ops->trim && segs)
		spooldir_trim(dirfd(d), segs, nseg, st);
	free(segs);
	free(w.refs);
	free(w.arena.p);
	free(w.done.slot);
	free(w.voided.slot);
	free(w.outq.slot);
	free(w.msgs.slot);
	free(w.out);
	free(w.idx);
	free(rcpt);
	closedir(d);
	return rc;
}

int spooldir_scan(const char *dir, spooldir_cb cb, void *ctx, struct spooldir_stats *st)
{
	const struct spooldir_ops ops = { cb, NULL, 0 };

	return spooldir_scan_ops(dir, &ops, ctx, st);
}

int spooldir_segments(const char *dir, spooldir_seg_cb cb, void *ctx)
{
	struct spooldir_seg *segs = NULL;
	size_t nseg = 0;
	DIR *d = opendir(dir);
	int rc;

	if (!d)
		return errno == ENOENT ? 0 : -errno;
	rc = spooldir_collect(d, &segs, &nseg);
	for (size_t i = 0; rc == 0 && i < nseg; i++) {
		struct stat sb;
		if (fstatat(dirfd(d), segs[i].name, &sb, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISREG(sb.st_mode))
			continue;
		rc = cb(ctx, segs[i].worker, segs[i].seq, (uint64_t)sb.st_size);
	}
	free(segs);
	closedir(d);
	return rc;
}

uint64_t spooldir_last_seq(const char *dir, unsigned worker)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	uint64_t last = 0;

	if (!d)
		return 0;
	while ((de = readdir(d)) != NULL) {
		unsigned w;
		uint64_t q;
		if (spooldir_parse_name(de->d_name, &w, &q) && w == worker && q > last)
			last = q;
	}
	closedir(d);
	return last;
}

/* ---- the listing --------------------------------------------------------------------- */

/* Text mode: printable ASCII as is, except the backslash, which is escaped like every
 * other byte (\xHH) so that the output reads back unambiguously. */
void spooldir_put_text(FILE *f, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		uint8_t c = (uint8_t)s[i];
		if (c >= 0x20 && c < 0x7f && c != '\\')
			putc(c, f);
		else
			fprintf(f, "\\x%02x", c);
	}
}

/* Length of the well-formed UTF-8 sequence at s (RFC 3629: no overlongs, no
 * surrogates, nothing over U+10FFFF), or 0. */
static size_t spooldir_utf8_len(const uint8_t *s, size_t n)
{
	uint8_t c = s[0], lo = 0x80, hi = 0xbf;
	size_t k;

	if (c >= 0xc2 && c <= 0xdf)
		k = 2;
	else if (c >= 0xe0 && c <= 0xef)
		k = 3;
	else if (c >= 0xf0 && c <= 0xf4)
		k = 4;
	else
		return 0;
	if (n < k)
		return 0;
	if (c == 0xe0)
		lo = 0xa0;
	else if (c == 0xed)
		hi = 0x9f;
	else if (c == 0xf0)
		lo = 0x90;
	else if (c == 0xf4)
		hi = 0x8f;
	if (s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < k; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return k;
}

/* JSON string: well-formed UTF-8 passes (SMTPUTF8 addresses), an invalid byte becomes
 * U+FFFD, control characters and DEL are escaped. */
void spooldir_put_json(FILE *f, const char *str, size_t n)
{
	const uint8_t *s = (const uint8_t *)str;

	putc('"', f);
	for (size_t i = 0; i < n; i++) {
		uint8_t c = s[i];
		switch (c) {
		case '"':  fputs("\\\"", f); continue;
		case '\\': fputs("\\\\", f); continue;
		case '\b': fputs("\\b", f); continue;
		case '\f': fputs("\\f", f); continue;
		case '\n': fputs("\\n", f); continue;
		case '\r': fputs("\\r", f); continue;
		case '\t': fputs("\\t", f); continue;
		default: break;
		}
		if (c < 0x20 || c == 0x7f) {
			fprintf(f, "\\u%04x", c);
		} else if (c < 0x80) {
			putc(c, f);
		} else {
			size_t k = spooldir_utf8_len(s + i, n - i);
			if (k) {
				fwrite(s + i, 1, k, f);
				i += k - 1;
			} else {
				fputs("\\ufffd", f);
			}
		}
	}
	putc('"', f);
}

void spooldir_iso8601(char *buf, size_t cap, uint64_t t)
{
	struct tm tm;
	time_t tt = (time_t)t;

	if (t > (uint64_t)INT64_MAX || (uint64_t)tt != t || !gmtime_r(&tt, &tm) ||
	    !strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(buf, cap, "%" PRIu64, t);
}

struct spooldir_list_ctx {
	FILE *out;
	int json;
	size_t n;
};

/* Recipients that are not final are listed: open ones and deferred ones. */
static int spooldir_listed(const struct spooldir_rcpt *r)
{
	return !spooldir_final(r->state);
}

static int spooldir_list_one(void *vctx, const struct spooldir_msg *sm)
{
	struct spooldir_list_ctx *lc = vctx;
	const struct spoolrec_msg *m = sm->m;
	FILE *f = lc->out;
	char when[48], next[48];
	struct spoolrec_view r;
	uint32_t roff, k;
	int first;

	spooldir_iso8601(when, sizeof when, m->arrival);
	if (lc->json) {
		uint32_t attempts = 0;
		uint64_t next_try = 0;
		int have_next = 0;
		for (k = 0; k < m->nrcpt; k++) {
			const struct spooldir_rcpt *rs = &sm->rcpt[k];
			if (rs->attempts > attempts)
				attempts = rs->attempts;
			if (rs->state == SPOOLREC_RS_DEFERRED && rs->next_try < SPOOLREC_HELD &&
			    (!have_next || rs->next_try < next_try)) {
				next_try = rs->next_try;
				have_next = 1;
			}
		}
		fputs("{\"queue_id\":", f);
		spooldir_put_json(f, m->qid.p, m->qid.len);
		fputs(",\"sender\":", f);
		spooldir_put_json(f, m->sender.p, m->sender.len);
		fputs(",\"recipients\":[", f);
		roff = 0;
		for (k = 0, first = 1; spoolrec_next_rcpt(m, &roff, &r); k++) {
			if (k >= m->nrcpt || !spooldir_listed(&sm->rcpt[k]))
				continue;
			if (!first)
				putc(',', f);
			first = 0;
			spooldir_put_json(f, r.p, r.len);
		}
		fprintf(f, "],\"size\":%" PRIu32 ",\"arrival\":\"%s\",\"attempts\":%" PRIu32
		        ",\"next_try\":", m->data.len, when, attempts);
		if (have_next) {
			spooldir_iso8601(next, sizeof next, next_try);
			fprintf(f, "\"%s\"", next);
		} else {
			fputs("null", f);
		}
		fputs(",\"recipient_state\":[", f);
		roff = 0;
		for (k = 0, first = 1; spoolrec_next_rcpt(m, &roff, &r); k++) {
			if (k >= m->nrcpt || !spooldir_listed(&sm->rcpt[k]))
				continue;
			const struct spooldir_rcpt *rs = &sm->rcpt[k];
			fputs(first ? "{\"address\":" : ",{\"address\":", f);
			first = 0;
			spooldir_put_json(f, r.p, r.len);
			fprintf(f, ",\"attempts\":%" PRIu32 ",\"next_try\":", rs->attempts);
			if (rs->state == SPOOLREC_RS_DEFERRED && rs->next_try >= SPOOLREC_RETURN) {
				fputs("null,\"returning\":true}", f);
			} else if (rs->state == SPOOLREC_RS_DEFERRED && rs->next_try >= SPOOLREC_HELD) {
				fputs("null,\"held\":true}", f);
			} else if (rs->state == SPOOLREC_RS_DEFERRED) {
				spooldir_iso8601(next, sizeof next, rs->next_try);
				fprintf(f, "\"%s\"}", next);
			} else {
				fputs("null}", f);
			}
		}
		fputs("]}\n", f);
	} else {
		spooldir_put_text(f, m->qid.p, m->qid.len);
		fprintf(f, "  %" PRIu32 "  %s  <", m->data.len, when);
		spooldir_put_text(f, m->sender.p, m->sender.len);
		putc('>', f);
		roff = 0;
		for (k = 0, first = 1; spoolrec_next_rcpt(m, &roff, &r); k++) {
			if (k >= m->nrcpt || !spooldir_listed(&sm->rcpt[k]))
				continue;
			fputs(first ? "  <" : " <", f);
			first = 0;
			spooldir_put_text(f, r.p, r.len);
			putc('>', f);
			if (sm->rcpt[k].state == SPOOLREC_RS_DEFERRED &&
			    sm->rcpt[k].next_try >= SPOOLREC_HELD) {
				fprintf(f, " (attempts=%" PRIu32 " %s)", sm->rcpt[k].attempts,
				        sm->rcpt[k].next_try >= SPOOLREC_RETURN ? "returning" : "held");
			} else if (sm->rcpt[k].state == SPOOLREC_RS_DEFERRED) {
				spooldir_iso8601(next, sizeof next, sm->rcpt[k].next_try);
				fprintf(f, " (attempts=%" PRIu32 " next_try=%s)", sm->rcpt[k].attempts,
				        next);
			}
		}
		putc('\n', f);
	}
	lc->n++;
	return ferror(f) ? 1 : 0;
}

int spooldir_list(const char *dir, FILE *out, int json)
{
	struct spooldir_list_ctx lc = { out, json, 0 };
	int rc = spooldir_scan_state(dir, NULL, spooldir_list_one, &lc, NULL);

	if (rc < 0)
		return rc;
	if (!json) {
		if (lc.n)
			fprintf(out, "-- %zu messages\n", lc.n);
		else
			fputs("Mail queue is empty\n", out);
	}
	if (fflush(out) != 0 || ferror(out))
		return -EIO;
	return 0;
}

/* ---- one message --------------------------------------------------------------------- */

struct spooldir_show_ctx {
	const char *qid;
	FILE *out;
	int found;
	int rc;
};

static int spooldir_show_one(void *vctx, const char *seg, uint64_t off,
                             const struct spoolrec_msg *m)
{
	struct spooldir_show_ctx *sc = vctx;
	(void)seg;
	(void)off;
	if (m->qid.len != strlen(sc->qid) || memcmp(m->qid.p, sc->qid, m->qid.len) != 0)
		return 0;
	sc->found = 1;
	/* Unscrambled a block at a time: the keystream runs in 8-octet words, so blocks are
	 * cut on word boundaries and each is XORed at its own offset. */
	uint8_t buf[65536];
	for (uint32_t done = 0; done < m->data.len;) {
		uint32_t n = m->data.len - done < sizeof buf ? m->data.len - done : (uint32_t)sizeof buf;
		spoolrec_scramble_at(buf, (const uint8_t *)m->data.p + done, n, m->nonce, done);
		if (fwrite(buf, 1, n, sc->out) != n) {
			sc->rc = -EIO;
			break;
		}
		done += n;
	}
	return 1;                           /* found: stop the scan */
}

int spooldir_show(const char *dir, const char *qid, FILE *out)
{
	struct spooldir_show_ctx sc = { qid, out, 0, 0 };
	int rc = spooldir_scan(dir, spooldir_show_one, &sc, NULL);
	if (rc < 0)
		return rc;
	if (sc.rc < 0)
		return sc.rc;
	if (!sc.found)
		return -ENOENT;
	return fflush(out) == 0 ? 0 : -EIO;
}
