/* test/core/spooldir_test — the spool scan and `--queue` listing against segment files
 * written with the real encoder in a temporary directory: live/done across segments,
 * segment order and names, torn tails at every length and every corrupted octet,
 * damage in the middle of a segment (skipped, reported, nothing after it lost), records
 * of unknown types, zero octets written ahead, a missing directory, last_seq, the
 * per-recipient outcomes (RCPT records) merged across segments in any order, VOID, the
 * msg_state callback, and the exact text and JSON listings. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/spooldir.h"
#include "proto/crc32c.h"
#include "proto/spoolrec.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define T_ARRIVAL 1700000000u     /* 2023-11-14T22:13:20Z */

static char tmpdir[64];

static void make_tmpdir(void)
{
	strcpy(tmpdir, "/tmp/spooldir_test.XXXXXX");
	cr_assert_not_null(mkdtemp(tmpdir), "mkdtemp: %s", strerror(errno));
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void remove_tmpdir(void)
{
	if (tmpdir[0])
		nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(spooldir, .init = make_tmpdir, .fini = remove_tmpdir);

/* ---- writing segments ---------------------------------------------------------------- */

struct segbuf {
	uint8_t *p;
	size_t n;
	size_t cap;             /* (may lag behind n after a direct realloc: grows then) */
};

static size_t seg_append(struct segbuf *s, const uint8_t *rec, size_t n)
{
	size_t off = s->n;
	if (s->n + n > s->cap) {
		s->cap = (s->n + n) * 2;
		s->p = realloc(s->p, s->cap);
	}
	cr_assert_not_null(s->p);
	memcpy(s->p + s->n, rec, n);
	s->n += n;
	return off;
}

/* A MSG whose sender, recipient and data derive from qid. Returns its offset. */
static size_t add_msg(struct segbuf *s, const char *qid)
{
	char sender[64], rcpt[64], data[64];
	snprintf(sender, sizeof sender, "s-%s@example.com", qid);
	snprintf(rcpt, sizeof rcpt, "r-%s@example.net", qid);
	snprintf(data, sizeof data, "Subject: %s\r\n\r\nbody\r\n", qid);
	const char *rcpts[] = { rcpt };
	uint8_t rec[512];
	size_t n = spoolrec_encode_msg(rec, sizeof rec, qid, T_ARRIVAL, 0, 0, sender, "192.0.2.1",
	                               rcpts, 1, (const uint8_t *)data, strlen(data));
	cr_assert_gt(n, 0);
	return seg_append(s, rec, n);
}

static size_t add_done(struct segbuf *s, const char *qid)
{
	uint8_t rec[128];
	size_t n = spoolrec_encode_done(rec, sizeof rec, qid);
	cr_assert_gt(n, 0);
	return seg_append(s, rec, n);
}

static void put_file(const char *name, const void *p, size_t n)
{
	char path[256];
	snprintf(path, sizeof path, "%s/%s", tmpdir, name);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	cr_assert_geq(fd, 0, "open %s: %s", path, strerror(errno));
	cr_assert_eq(write(fd, p, n), (ssize_t)n);
	close(fd);
}

static void put_seg(const char *name, const struct segbuf *s)
{
	put_file(name, s->p, s->n);
}

/* ---- collecting what the scan reports ------------------------------------------------ */

struct got_rec {
	char seg[64];
	uint64_t off;
	char qid[64];
};

struct got {
	size_t n;
	struct got_rec r[128];
	size_t stop_after;      /* 0: never stop */
};

static int collect(void *ctx, const char *seg, uint64_t off, const struct spoolrec_msg *m)
{
	struct got *g = ctx;
	cr_assert_lt(g->n, ARRAY_LEN(g->r));
	struct got_rec *r = &g->r[g->n++];
	snprintf(r->seg, sizeof r->seg, "%s", seg);
	r->off = off;
	snprintf(r->qid, sizeof r->qid, "%.*s", (int)m->qid.len, m->qid.p);
	/* The whole message is there and consistent with what add_msg wrote. */
	char want_sender[80];
	snprintf(want_sender, sizeof want_sender, "s-%s@example.com", r->qid);
	cr_assert_eq(m->sender.len, strlen(want_sender));
	cr_assert(memcmp(m->sender.p, want_sender, m->sender.len) == 0);
	cr_assert_eq(m->nrcpt, 1);
	return g->stop_after && g->n >= g->stop_after;
}

struct want_rec {
	const char *seg;
	const char *qid;
	uint64_t off;
};

static void check_got(const char *what, const struct got *g, const struct want_rec *w,
                      size_t nw)
{
	cr_assert_eq(g->n, nw, "%s: got %zu live, want %zu", what, g->n, nw);
	for (size_t i = 0; i < nw; i++) {
		cr_assert_str_eq(g->r[i].seg, w[i].seg, "%s: record %zu", what, i);
		cr_assert_str_eq(g->r[i].qid, w[i].qid, "%s: record %zu", what, i);
		cr_assert_eq(g->r[i].off, w[i].off, "%s: record %zu offset", what, i);
	}
}

static void check_stats(const char *what, const struct spooldir_stats *got_st,
                        const struct spooldir_stats *want_st)
{
	cr_assert_eq(got_st->segments, want_st->segments, "%s: segments %zu want %zu", what,
	             got_st->segments, want_st->segments);
	cr_assert_eq(got_st->live, want_st->live, "%s: live %zu want %zu", what, got_st->live,
	             want_st->live);
	cr_assert_eq(got_st->done, want_st->done, "%s: done %zu want %zu", what, got_st->done,
	             want_st->done);
	cr_assert_eq(got_st->torn, want_st->torn, "%s: torn %zu want %zu", what, got_st->torn,
	             want_st->torn);
	cr_assert_eq(got_st->torn_bytes, want_st->torn_bytes, "%s: torn_bytes %llu want %llu",
	             what, (unsigned long long)got_st->torn_bytes,
	             (unsigned long long)want_st->torn_bytes);
	cr_assert_eq(got_st->corrupt, want_st->corrupt, "%s: corrupt %zu want %zu", what,
	             got_st->corrupt, want_st->corrupt);
	cr_assert_eq(got_st->corrupt_bytes, want_st->corrupt_bytes,
	             "%s: corrupt_bytes %llu want %llu", what,
	             (unsigned long long)got_st->corrupt_bytes,
	             (unsigned long long)want_st->corrupt_bytes);
	cr_assert_eq(got_st->unknown, want_st->unknown, "%s: unknown %zu want %zu", what,
	             got_st->unknown, want_st->unknown);
	cr_assert_eq(got_st->voided, want_st->voided, "%s: voided %zu want %zu", what,
	             got_st->voided, want_st->voided);
	cr_assert_eq(got_st->finished, want_st->finished, "%s: finished %zu want %zu", what,
	             got_st->finished, want_st->finished);
	cr_assert_eq(got_st->outcomes, want_st->outcomes, "%s: outcomes %zu want %zu", what,
	             got_st->outcomes, want_st->outcomes);
	cr_assert_eq(got_st->bad_outcomes, want_st->bad_outcomes,
	             "%s: bad_outcomes %zu want %zu", what, got_st->bad_outcomes,
	             want_st->bad_outcomes);
}

/* Octets of p[0..n) before its trailing zero octets: a torn tail ends at its last
 * non-zero octet (zeros after it are space written ahead). */
static size_t nonzero_len(const uint8_t *p, size_t n)
{
	while (n && p[n - 1] == 0)
		n--;
	return n;
}

static char *list_to_string(const char *dir, int json, int *rc)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	cr_assert_not_null(f);
	*rc = spooldir_list(dir, f, json);
	fclose(f);
	return buf;
}

/* ---- the directory itself ------------------------------------------------------------ */

Test(spooldir, missing_directory_is_an_empty_queue)
{
	char path[128];
	snprintf(path, sizeof path, "%s/nope", tmpdir);
	struct got g = { 0 };
	struct spooldir_stats got_st;
	struct spooldir_stats want_st = { 0 };
	memset(&got_st, 0x11, sizeof got_st);       /* every counter is reset */

	cr_assert_eq(spooldir_scan(path, collect, &g, &got_st), 0);
	check_stats("missing", &got_st, &want_st);
	cr_assert_eq(g.n, 0);
	cr_assert_eq(spooldir_last_seq(path, 0), 0);

	int rc;
	char *got_text = list_to_string(path, 0, &rc);
	cr_assert_eq(rc, 0);
	cr_assert_str_eq(got_text, "Mail queue is empty\n");
	free(got_text);
	char *got_json = list_to_string(path, 1, &rc);
	cr_assert_eq(rc, 0);
	cr_assert_str_eq(got_json, "");
	free(got_json);

	/* An existing, empty directory is empty too. */
	cr_assert_eq(spooldir_scan(tmpdir, collect, &g, &got_st), 0);
	check_stats("empty dir", &got_st, &want_st);
}

Test(spooldir, a_file_is_not_a_directory)
{
	char path[128];
	snprintf(path, sizeof path, "%s/file", tmpdir);
	put_file("file", "x", 1);
	cr_assert_eq(spooldir_scan(path, NULL, NULL, NULL), -ENOTDIR);
	int rc;
	char *out = list_to_string(path, 0, &rc);
	cr_assert_eq(rc, -ENOTDIR);
	free(out);
}

/* ---- live and done ------------------------------------------------------------------- */

Test(spooldir, done_records_in_any_segment)
{
	/* w0 #1: A B C      w0 #2: DONE B, D, DONE Q (its segment is gone), empty #3
	 * w1 #1: DONE A, E, DONE E                                              */
	struct segbuf s1 = { 0 }, s2 = { 0 }, s3 = { 0 };
	size_t offA = add_msg(&s1, "A");
	size_t offB = add_msg(&s1, "B");
	size_t offC = add_msg(&s1, "C");
	add_done(&s2, "B");
	size_t offD = add_msg(&s2, "D");
	add_done(&s2, "Q");
	add_done(&s3, "A");
	add_msg(&s3, "E");
	add_done(&s3, "E");
	put_seg("w0-0000000000000001.seg", &s1);
	put_seg("w0-0000000000000002.seg", &s2);
	put_file("w0-0000000000000003.seg", "", 0);
	put_seg("w1-0000000000000001.seg", &s3);

	const struct want_rec want[] = {
		{ "w0-0000000000000001.seg", "C", offC },
		{ "w0-0000000000000002.seg", "D", offD },
	};
	const struct spooldir_stats want_st = { .segments = 4, .live = 2, .done = 3 };
	struct got g = { 0 };
	struct spooldir_stats got_st;
	cr_assert_eq(spooldir_scan(tmpdir, collect, &g, &got_st), 0);
	check_got("across segments", &g, want, ARRAY_LEN(want));
	check_stats("across segments", &got_st, &want_st);
	(void)offA;
	(void)offB;

	/* The callback can stop the scan. */
	struct got g1 = { .stop_after = 1 };
	cr_assert_eq(spooldir_scan(tmpdir, collect, &g1, NULL), 0);
	check_got("stopped", &g1, want, 1);
	free(s1.p);
	free(s2.p);
	free(s3.p);
}

Test(spooldir, segment_order_and_names, .timeout = 20)
{
	struct segbuf a = { 0 }, b = { 0 }, c = { 0 }, d = { 0 }, junk = { 0 };
	add_msg(&a, "W10S1");
	add_msg(&b, "W2S1");
	add_msg(&c, "W2S0");
	add_msg(&d, "W2SFF");
	add_msg(&junk, "JUNK");
	/* Numeric worker order (2 before 10), then seq. */
	put_seg("w10-0000000000000001.seg", &a);
	put_seg("w2-0000000000000001.seg", &b);
	put_seg("w2-0000000000000000.seg", &c);
	put_seg("w2-00000000000000ff.seg", &d);

	/* Not segments: each holds a valid record that must not show. */
	static const char *const ignored[] = {
		"w2-0000000000000002.seg.tmp", "w02-0000000000000003.seg",
		"w2-000000000000000A.seg",     "w2-00000000000003.seg",
		"w2-00000000000000003.seg",    "x2-0000000000000003.seg",
		"w-0000000000000003.seg",      "w2_0000000000000003.seg",
		"w2-0000000000000003.SEG",     "w99999999999-0000000000000003.seg",
		"README",                      ".w2-0000000000000003.seg",
	};
	for (size_t i = 0; i < ARRAY_LEN(ignored); i++)
		put_seg(ignored[i], &junk);
	/* Matching names that are not regular files; the FIFO must not block the scan. */
	char path[256];
	snprintf(path, sizeof path, "%s/w3-0000000000000001.seg", tmpdir);
	cr_assert_eq(mkdir(path, 0700), 0);
	snprintf(path, sizeof path, "%s/w4-0000000000000001.seg", tmpdir);
	cr_assert_eq(mkfifo(path, 0600), 0);

	const struct want_rec want[] = {
		{ "w2-0000000000000000.seg", "W2S0", 0 },
		{ "w2-0000000000000001.seg", "W2S1", 0 },
		{ "w2-00000000000000ff.seg", "W2SFF", 0 },
		{ "w10-0000000000000001.seg", "W10S1", 0 },
	};
	const struct spooldir_stats want_st = { .segments = 4, .live = 4 };
	struct got g = { 0 };
	struct spooldir_stats got_st;
	cr_assert_eq(spooldir_scan(tmpdir, collect, &g, &got_st), 0);
	check_got("order", &g, want, ARRAY_LEN(want));
	check_stats("order", &got_st, &want_st);
	free(a.p);
	free(b.p);
	free(c.p);
	free(d.p);
	free(junk.p);
}

Test(spooldir, last_seq)
{
	struct segbuf s = { 0 };
	add_msg(&s, "X");
	put_seg("w0-0000000000000001.seg", &s);
	put_seg("w0-000000000000001f.seg", &s);
	put_seg("w1-0000000000000abc.seg", &s);
	put_seg("w1-ffffffffffffffff.seg.tmp", &s);
	put_seg("w12-8000000000000000.seg", &s);
	free(s.p);

	struct { unsigned worker; uint64_t want_seq; } cases[] = {
		{ 0, 0x1f }, { 1, 0xabc }, { 2, 0 }, { 12, 0x8000000000000000ull },
	};
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		uint64_t got_seq = spooldir_last_seq(tmpdir, cases[i].worker);
		cr_assert_eq(got_seq, cases[i].want_seq, "worker %u: got %llx", cases[i].worker,
		             (unsigned long long)got_seq);
	}
}

/* ---- torn tails ---------------------------------------------------------------------- */

/* w0 #1: A B C (C possibly damaged), w0 #2: D. */
struct torn_fixture {
	struct segbuf s1, s2;
	size_t offA, offB, offC, lenC;
};

static void torn_build(struct torn_fixture *f)
{
	memset(f, 0, sizeof *f);
	f->offA = add_msg(&f->s1, "A");
	f->offB = add_msg(&f->s1, "B");
	f->offC = add_msg(&f->s1, "C");
	f->lenC = f->s1.n - f->offC;
	add_msg(&f->s2, "D");
	put_seg("w0-0000000000000002.seg", &f->s2);
}

static void torn_free(struct torn_fixture *f)
{
	free(f->s1.p);
	free(f->s2.p);
}

Test(spooldir, torn_tail_at_every_length)
{
	struct torn_fixture f;
	torn_build(&f);
	const struct want_rec want_cut[] = {
		{ "w0-0000000000000001.seg", "A", f.offA },
		{ "w0-0000000000000001.seg", "B", f.offB },
		{ "w0-0000000000000002.seg", "D", 0 },
	};
	for (size_t k = 0; k < f.lenC; k++) {
		put_file("w0-0000000000000001.seg", f.s1.p, f.offC + k);
		char what[64];
		snprintf(what, sizeof what, "C cut to %zu octets", k);
		const struct spooldir_stats want_st = {
			.segments = 2, .live = 3, .torn = k ? 1 : 0,
			.torn_bytes = nonzero_len(f.s1.p + f.offC, k),
		};
		struct got g = { 0 };
		struct spooldir_stats got_st;
		cr_assert_eq(spooldir_scan(tmpdir, collect, &g, &got_st), 0, "%s", what);
		check_got(what, &g, want_cut, ARRAY_LEN(want_cut));
		check_stats(what, &got_st, &want_st);
	}
	/* Whole, it is listed. */
	put_seg("w0-0000000000000001.seg", &f.s1);
	struct got g = { 0 };
	cr_assert_eq(spooldir_scan(tmpdir, collect, &g, NULL), 0);
	cr_assert_eq(g.n, 4);
	cr_assert_str_eq(g.r[2].qid, "C");
	torn_free(&f);
}

Test(spooldir, corrupted_octet_in_the_last_record)
{
	struct torn_fixture f;
	torn_build(&f);
	const struct want_rec want[] = {
		{ "w0-0000000000000001.seg", "A", f.offA },
		{ "w0-0000000000000001.seg", "B", f.offB },
		{ "w0-0000000000000002.seg", "D", 0 },
	};
	const struct spooldir_stats want_st = {
		.segments = 2, .live = 3, .torn = 1, .torn_bytes = f.lenC,
	};
	for (size_t pos = f.offC; pos < f.s1.n; pos++) {
		static const uint8_t masks[] = { 0x01, 0x80, 0xff };
		for (size_t m = 0; m < ARRAY_LEN(masks); m++) {
			f.s1.p[pos] ^= masks[m];
			put_seg("w0-0000000000000001.seg", &f.s1);
			f.s1.p[pos] ^= masks[m];
			char what[64];
			snprintf(what, sizeof what, "C octet %zu ^ 0x%02x", pos - f.offC, masks[m]);
			struct got g = { 0 };
			struct spooldir_stats got_st;
			cr_assert_eq(spooldir_scan(tmpdir, collect, &g, &got_st), 0, "%s", what);
			check_got(what, &g, want, ARRAY_LEN(want));
			check_stats(what, &got_st, &want_st);
		}
	}
	torn_free(&f);
}

/* What the damage callback was told. */
struct damage_log {
	struct got g;               /* first: collect() gets the same ctx */
	size_t n;
	struct spooldir_damage d[16];
	char seg[16][64];
};

static int collect_msg(void *ctx, const char *seg, uint64_t off, const struct spoolrec_msg *m)
{
	return collect(&((struct damage_log *)ctx)->g, seg, off, m);
}

static void collect_damage(void *ctx, const struct spooldir_damage *d)
{
	struct damage_log *l = ctx;
	cr_assert_lt(l->n, ARRAY_LEN(l->d));
	cr_assert_eq(l->g.n, 0, "damage is reported before any message");
	snprintf(l->seg[l->n], sizeof l->seg[l->n], "%s", d->segment);
	l->d[l->n] = *d;
	l->d[l->n].segment = l->seg[l->n];
	l->n++;
}

static const struct spooldir_ops damage_ops = { collect_msg, collect_damage, 0 };

/* Like collect, for messages of any shape (only the qid and place are kept). */
static int collect_msg_any(void *ctx, const char *seg, uint64_t off,
                           const struct spoolrec_msg *m)
{
	struct got *g = ctx;
	cr_assert_lt(g->n, ARRAY_LEN(g->r));
	struct got_rec *r = &g->r[g->n++];
	snprintf(r->seg, sizeof r->seg, "%s", seg);
	r->off = off;
	snprintf(r->qid, sizeof r->qid, "%.*s", (int)m->qid.len, m->qid.p);
	return 0;
}

static int collect_msg_any_dl(void *ctx, const char *seg, uint64_t off,
                              const struct spoolrec_msg *m)
{
	return collect_msg_any(&((struct damage_log *)ctx)->g, seg, off, m);
}

static void check_damage(const char *what, const struct damage_log *l, size_t i,
                         const char *seg, uint64_t off, uint64_t octets, int torn)
{
	cr_assert_lt(i, l->n, "%s: only %zu damage reports", what, l->n);
	cr_assert_str_eq(l->d[i].segment, seg, "%s", what);
	cr_assert_eq(l->d[i].offset, off, "%s: offset %llu want %llu", what,
	             (unsigned long long)l->d[i].offset, (unsigned long long)off);
	cr_assert_eq(l->d[i].octets, octets, "%s: octets %llu want %llu", what,
	             (unsigned long long)l->d[i].octets, (unsigned long long)octets);
	cr_assert_eq(l->d[i].torn, torn, "%s: torn", what);
	cr_assert_neq(l->d[i].err, SPOOLREC_E_NONE, "%s", what);
}

/* Issue 7: a damaged record in the middle costs that record only; it is reported as
 * corruption (an error), with its segment, offset and length. */
Test(spooldir, corrupted_middle_record_is_skipped_and_reported)
{
	struct torn_fixture f;
	torn_build(&f);
	f.s1.p[f.offB + SPOOLREC_HDR_LEN + 2] ^= 0x20;     /* inside B's qid */
	put_seg("w0-0000000000000001.seg", &f.s1);
	const struct want_rec want[] = {
		{ "w0-0000000000000001.seg", "A", f.offA },
		{ "w0-0000000000000001.seg", "C", f.offC },
		{ "w0-0000000000000002.seg", "D", 0 },
	};
	const struct spooldir_stats want_st = {
		.segments = 2, .live = 3, .corrupt = 1, .corrupt_bytes = f.offC - f.offB,
	};
	struct damage_log l = { .n = 0 };
	struct spooldir_stats got_st;
	cr_assert_eq(spooldir_scan_ops(tmpdir, &damage_ops, &l, &got_st), 0);
	check_got("B damaged", &l.g, want, ARRAY_LEN(want));
	check_stats("B damaged", &got_st, &want_st);
	cr_assert_eq(l.n, 1);
	check_damage("B damaged", &l, 0, "w0-0000000000000001.seg", f.offB, f.offC - f.offB, 0);
	cr_assert_eq(l.d[0].err, SPOOLREC_E_CRC);

	/* A torn tail is reported too, as torn. */
	put_file("w0-0000000000000002.seg", f.s2.p, f.s2.n - 3);
	memset(&l, 0, sizeof l);
	cr_assert_eq(spooldir_scan_ops(tmpdir, &damage_ops, &l, &got_st), 0);
	cr_assert_eq(l.n, 2);
	check_damage("torn", &l, 1, "w0-0000000000000002.seg", 0,
	             nonzero_len(f.s2.p, f.s2.n - 3), 1);
	cr_assert_eq(got_st.torn, 1);
	cr_assert_eq(got_st.corrupt, 1);
	torn_free(&f);
}

/* 100 messages in one segment: one octet changed in any one record, in its data or its
 * length field, and the 99 others are listed. */
Test(spooldir, one_damaged_record_of_a_hundred)
{
	struct segbuf s = { 0 };
	size_t off[101];
	char qid[100][16];
	for (int i = 0; i < 100; i++) {
		snprintf(qid[i], sizeof qid[i], "M%03d", i);
		off[i] = add_msg(&s, qid[i]);
	}
	off[100] = s.n;
	for (int k = 0; k < 100; k++) {
		for (int where = 0; where < 2; where++) {
			/* A data octet (the record ends with the data), or the length's 3rd octet:
			 * +1 MiB, more than the file holds. */
			size_t pos = where ? off[k] + 10 : off[k + 1] - 3;
			s.p[pos] ^= where ? 0x10 : 0x01;
			put_seg("w0-0000000000000001.seg", &s);
			s.p[pos] ^= where ? 0x10 : 0x01;
			char what[64];
			snprintf(what, sizeof what, "record %d, %s", k, where ? "length" : "data");
			struct damage_log l = { .n = 0 };
			struct spooldir_stats got_st;
			cr_assert_eq(spooldir_scan_ops(tmpdir, &damage_ops, &l, &got_st), 0);
			cr_assert_eq(got_st.live, 99, "%s: %zu live", what, got_st.live);
			cr_assert_eq(l.g.n, 99, "%s", what);
			for (int i = 0, j = 0; i < 100; i++) {
				if (i == k)
					continue;
				cr_assert_str_eq(l.g.r[j].qid, qid[i], "%s", what);
				cr_assert_eq(l.g.r[j].off, off[i], "%s", what);
				j++;
			}
			int last = k == 99;
			check_damage(what, &l, 0, "w0-0000000000000001.seg", off[k],
			             off[k + 1] - off[k], last);
			cr_assert_eq(got_st.corrupt, last ? 0 : 1, "%s", what);
			cr_assert_eq(got_st.torn, last ? 1 : 0, "%s", what);
		}
	}
	free(s.p);
}

/* A record of a newer build: kept, counted, not damage, and what follows it is read. */
static size_t add_unknown(struct segbuf *s, uint8_t type)
{
	uint8_t rec[SPOOLREC_HDR_LEN + 8] = { 'R', 'R', 'S', '1', type, 0, 0, 0, 8, 0, 0, 0 };
	memcpy(rec + SPOOLREC_HDR_LEN, "newer!!!", 8);
	uint32_t crc = crc32c(crc32c(0, rec + 4, 8), rec + SPOOLREC_HDR_LEN, 8);
	for (int i = 0; i < 4; i++)
		rec[12 + i] = (uint8_t)(crc >> (8 * i));
	return seg_append(s, rec, sizeof rec);
}

Test(spooldir, unknown_records_are_kept_and_counted)
{
	struct segbuf s = { 0 };
	size_t offA = add_msg(&s, "A");
	add_unknown(&s, 9);
	add_unknown(&s, 200);
	size_t offB = add_msg(&s, "B");
	put_seg("w0-0000000000000001.seg", &s);
	const struct want_rec want[] = {
		{ "w0-0000000000000001.seg", "A", offA },
		{ "w0-0000000000000001.seg", "B", offB },
	};
	const struct spooldir_stats want_st = { .segments = 1, .live = 2, .unknown = 2 };
	struct damage_log l = { .n = 0 };
	struct spooldir_stats got_st;
	cr_assert_eq(spooldir_scan_ops(tmpdir, &damage_ops, &l, &got_st), 0);
	check_got("unknown", &l.g, want, ARRAY_LEN(want));
	check_stats("unknown", &got_st, &want_st);
	cr_assert_eq(l.n, 0);
	free(s.p);
}

/* Segments written ahead with zeros: a zero tail is clean; zeros in the middle (a page
 * that did not reach the disk when a later one did) are damage like any other. */
Test(spooldir, zeros_written_ahead)
{
	struct segbuf s = { 0 };
	size_t offA = add_msg(&s, "A");
	size_t offB = add_msg(&s, "B");
	size_t offC = add_msg(&s, "C");
	size_t end = s.n;
	s.p = realloc(s.p, end + (4u << 20));
	cr_assert_not_null(s.p);
	memset(s.p + end, 0, 4u << 20);
	s.n = end + (4u << 20);
	put_seg("w0-0000000000000001.seg", &s);
	const struct want_rec want[] = {
		{ "w0-0000000000000001.seg", "A", offA },
		{ "w0-0000000000000001.seg", "B", offB },
		{ "w0-0000000000000001.seg", "C", offC },
	};
	struct damage_log l = { .n = 0 };
	struct spooldir_stats got_st;
	const struct spooldir_stats want_clean = { .segments = 1, .live = 3 };
	cr_assert_eq(spooldir_scan_ops(tmpdir, &damage_ops, &l, &got_st), 0);
	check_got("zero tail", &l.g, want, ARRAY_LEN(want));
	check_stats("zero tail", &got_st, &want_clean);
	cr_assert_eq(l.n, 0);

	memset(s.p + offB, 0, offC - offB);
	put_seg("w0-0000000000000001.seg", &s);
	const struct want_rec want_hole[] = {
		{ "w0-0000000000000001.seg", "A", offA },
		{ "w0-0000000000000001.seg", "C", offC },
	};
	const struct spooldir_stats want_st = {
		.segments = 1, .live = 2, .corrupt = 1, .corrupt_bytes = offC - offB,
	};
	memset(&l, 0, sizeof l);
	cr_assert_eq(spooldir_scan_ops(tmpdir, &damage_ops, &l, &got_st), 0);
	check_got("zero hole", &l.g, want_hole, ARRAY_LEN(want_hole));
	check_stats("zero hole", &got_st, &want_st);
	check_damage("zero hole", &l, 0, "w0-0000000000000001.seg", offB, offC - offB, 0);
	cr_assert_eq(l.d[0].err, SPOOLREC_E_MAGIC);
	free(s.p);
}

Test(spooldir, torn_done_record_does_not_count)
{
	struct segbuf s1 = { 0 }, s2 = { 0 };
	size_t offA = add_msg(&s1, "A");
	size_t offDone = add_done(&s2, "A");
	put_seg("w0-0000000000000001.seg", &s1);
	put_file("w0-0000000000000002.seg", s2.p, s2.n - 1);
	const struct want_rec want[] = { { "w0-0000000000000001.seg", "A", offA } };
	const struct spooldir_stats want_st = {
		.segments = 2, .live = 1, .torn = 1,
		.torn_bytes = nonzero_len(s2.p + offDone, s2.n - 1 - offDone),
	};
	struct got g = { 0 };
	struct spooldir_stats got_st;
	cr_assert_eq(spooldir_scan(tmpdir, collect, &g, &got_st), 0);
	check_got("torn DONE", &g, want, ARRAY_LEN(want));
	check_stats("torn DONE", &got_st, &want_st);
	free(s1.p);
	free(s2.p);
}

/* ---- the listing --------------------------------------------------------------------- */

struct list_msg {
	const char *qid;
	uint64_t arrival;
	const char *sender;
	const char *rcpt[3];
	size_t nrcpt;
	const char *data;
};

static void put_list_seg(const char *name, const struct list_msg *msgs, size_t n,
                         const char *done_qid)
{
	struct segbuf s = { 0 };
	for (size_t i = 0; i < n; i++) {
		const struct list_msg *m = &msgs[i];
		uint8_t rec[512];
		size_t len = spoolrec_encode_msg(rec, sizeof rec, m->qid, m->arrival, 0, 0, m->sender,
		                                 "192.0.2.1", m->rcpt, m->nrcpt,
		                                 (const uint8_t *)m->data, strlen(m->data));
		cr_assert_gt(len, 0);
		seg_append(&s, rec, len);
	}
	if (done_qid)
		add_done(&s, done_qid);
	put_seg(name, &s);
	free(s.p);
}

struct list_case {
	const char *name;
	int json;
	const char *want;
};

Test(spooldir, list_text_and_json)
{
	static const struct list_msg msgs[] = {
		{ "4Xb9kQ1", T_ARRIVAL, "alice@example.com",
		  { "bob@example.net", "carol@example.org" }, 2, "Subject: hi\r\n\r\nhello\r\n" },
		{ "GONE1", T_ARRIVAL, "x@example.com", { "y@example.com" }, 1, "x" },
		{ "7Yc0mR2", T_ARRIVAL + 3600, "", { "dave@example.com" }, 1, "" },
	};
	put_list_seg("w0-0000000000000001.seg", msgs, ARRAY_LEN(msgs), "GONE1");

	static const struct list_case cases[] = {
		{ "text", 0,
		  "4Xb9kQ1  22  2023-11-14T22:13:20Z  <alice@example.com>  "
		  "<bob@example.net> <carol@example.org>\n"
		  "7Yc0mR2  0  2023-11-14T23:13:20Z  <>  <dave@example.com>\n"
		  "-- 2 messages\n" },
		{ "json", 1,
		  "{\"queue_id\":\"4Xb9kQ1\",\"sender\":\"alice@example.com\","
		  "\"recipients\":[\"bob@example.net\",\"carol@example.org\"],\"size\":22,"
		  "\"arrival\":\"2023-11-14T22:13:20Z\",\"attempts\":0,\"next_try\":null,"
		  "\"recipient_state\":[{\"address\":\"bob@example.net\",\"attempts\":0,"
		  "\"next_try\":null},{\"address\":\"carol@example.org\",\"attempts\":0,"
		  "\"next_try\":null}]}\n"
		  "{\"queue_id\":\"7Yc0mR2\",\"sender\":\"\",\"recipients\":[\"dave@example.com\"],"
		  "\"size\":0,\"arrival\":\"2023-11-14T23:13:20Z\",\"attempts\":0,"
		  "\"next_try\":null,\"recipient_state\":[{\"address\":\"dave@example.com\","
		  "\"attempts\":0,\"next_try\":null}]}\n" },
	};
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		int rc;
		char *got = list_to_string(tmpdir, cases[i].json, &rc);
		cr_assert_eq(rc, 0, "%s", cases[i].name);
		cr_assert_str_eq(got, cases[i].want, "%s:\n got: %s\nwant: %s", cases[i].name,
		                 got, cases[i].want);
		free(got);
	}
}

Test(spooldir, list_escapes_untrusted_bytes)
{
	static const struct list_msg msgs[] = {
		{ "Q\x01", 0, "a\"b\\c\td@x",
		  { "caf\xc3\xa9@x", "bad\xff\xc3@x", "del\x7f\n" }, 3, "ab" },
	};
	put_list_seg("w7-0000000000000001.seg", msgs, 1, NULL);

	static const struct list_case cases[] = {
		{ "text", 0,
		  "Q\\x01  2  1970-01-01T00:00:00Z  <a\"b\\x5cc\\x09d@x>  "
		  "<caf\\xc3\\xa9@x> <bad\\xff\\xc3@x> <del\\x7f\\x0a>\n"
		  "-- 1 messages\n" },
		{ "json", 1,
		  "{\"queue_id\":\"Q\\u0001\",\"sender\":\"a\\\"b\\\\c\\td@x\","
		  "\"recipients\":[\"caf\xc3\xa9@x\",\"bad\\ufffd\\ufffd@x\",\"del\\u007f\\n\"],"
		  "\"size\":2,\"arrival\":\"1970-01-01T00:00:00Z\",\"attempts\":0,"
		  "\"next_try\":null,\"recipient_state\":[{\"address\":\"caf\xc3\xa9@x\","
		  "\"attempts\":0,\"next_try\":null},{\"address\":\"bad\\ufffd\\ufffd@x\","
		  "\"attempts\":0,\"next_try\":null},{\"address\":\"del\\u007f\\n\","
		  "\"attempts\":0,\"next_try\":null}]}\n" },
	};
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		int rc;
		char *got = list_to_string(tmpdir, cases[i].json, &rc);
		cr_assert_eq(rc, 0, "%s", cases[i].name);
		cr_assert_str_eq(got, cases[i].want, "%s:\n got: %s\nwant: %s", cases[i].name,
		                 got, cases[i].want);
		free(got);
	}
}

/* UTF-8 edge cases in JSON: only well-formed sequences pass through. */
Test(spooldir, list_json_utf8_validation)
{
	static const struct {
		const char *in;
		const char *want;
	} cases[] = {
		{ "\xe2\x82\xac", "\xe2\x82\xac" },                 /* U+20AC */
		{ "\xf0\x9f\x98\x80", "\xf0\x9f\x98\x80" },         /* U+1F600 */
		{ "\xc0\xaf", "\\ufffd\\ufffd" },                   /* overlong '/' */
		{ "\xe0\x80\xaf", "\\ufffd\\ufffd\\ufffd" },        /* overlong */
		{ "\xed\xa0\x80", "\\ufffd\\ufffd\\ufffd" },        /* surrogate D800 */
		{ "\xf4\x90\x80\x80", "\\ufffd\\ufffd\\ufffd\\ufffd" }, /* over U+10FFFF */
		{ "\xe2\x82", "\\ufffd\\ufffd" },                   /* cut short */
		{ "\x80", "\\ufffd" },                              /* lone continuation */
	};
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		struct list_msg m = { "Q", 0, cases[i].in, { "r" }, 1, "" };
		put_list_seg("w0-0000000000000001.seg", &m, 1, NULL);
		int rc;
		char *got = list_to_string(tmpdir, 1, &rc);
		cr_assert_eq(rc, 0);
		char want[512];
		snprintf(want, sizeof want,
		         "{\"queue_id\":\"Q\",\"sender\":\"%s\",\"recipients\":[\"r\"],\"size\":0,"
		         "\"arrival\":\"1970-01-01T00:00:00Z\",\"attempts\":0,\"next_try\":null,"
		         "\"recipient_state\":[{\"address\":\"r\",\"attempts\":0,\"next_try\":null}]}\n",
		         cases[i].want);
		cr_assert_str_eq(got, want, "case %zu: got %s", i, got);
		free(got);
	}
}

/* ---- trim: what a crash left allocated ----------------------------------------------- */

static off_t file_size(const char *name)
{
	char path[256];
	struct stat st;
	snprintf(path, sizeof path, "%s/%s", tmpdir, name);
	return stat(path, &st) == 0 ? st.st_size : -1;
}

/* The daemon's start-up scan (trim) cuts a segment's zero tail after its last record,
 * removes a segment of zeros only, leaves the rest alone; a reader's scan changes
 * nothing; the messages are all still there afterwards. */
Test(spooldir, trim_gives_back_zero_tails)
{
	struct segbuf a = { 0 }, b = { 0 }, c = { 0 };
	add_msg(&a, "A1");
	add_msg(&a, "A2");
	size_t a_end = a.n;
	uint8_t *zeros = calloc(1, 1 << 20);
	seg_append(&a, zeros, 1 << 20);                     /* allocated ahead, never written */
	seg_append(&b, zeros, 64 * 1024);                   /* a prepared segment, unused */
	add_msg(&c, "C1");                                  /* no tail */
	put_seg("w0-0000000000000001.seg", &a);
	put_seg("w0-0000000000000002.seg", &b);
	put_seg("w1-0000000000000001.seg", &c);

	struct spooldir_stats st;
	const struct spooldir_ops reader = { collect, NULL, 0 }, daemon = { collect, NULL, 1 };
	struct got g = { 0 };
	cr_assert_eq(spooldir_scan_ops(tmpdir, &reader, &g, &st), 0);
	cr_assert_eq(g.n, 3);
	cr_assert_eq(st.trimmed + st.removed, 0);
	cr_assert_eq(file_size("w0-0000000000000001.seg"), (off_t)a.n, "a reader changed it");

	memset(&g, 0, sizeof g);
	cr_assert_eq(spooldir_scan_ops(tmpdir, &daemon, &g, &st), 0);
	cr_assert_eq(g.n, 3);
	cr_assert_eq(st.trimmed, 1);
	cr_assert_eq(st.removed, 1);
	cr_assert_eq(st.trimmed_bytes, (uint64_t)1 << 20);
	cr_assert_eq(file_size("w0-0000000000000001.seg"), (off_t)a_end);
	cr_assert_eq(file_size("w0-0000000000000002.seg"), -1);
	cr_assert_eq(file_size("w1-0000000000000001.seg"), (off_t)c.n);

	memset(&g, 0, sizeof g);
	cr_assert_eq(spooldir_scan_ops(tmpdir, &daemon, &g, &st), 0);
	cr_assert_eq(g.n, 3, "a message lost to the trim");
	cr_assert_eq(st.trimmed + st.removed + st.torn + st.corrupt, 0);
	free(zeros);
	free(a.p);
	free(b.p);
	free(c.p);
}

/* ---- outcomes: RCPT and VOID records ------------------------------------------------- */

#define T_NEXT 1700003600u          /* 2023-11-14T23:13:20Z */

static size_t add_rcpt(struct segbuf *s, const char *qid, uint8_t state, uint32_t attempts,
                       uint64_t next_try, const uint32_t *idx, uint32_t n)
{
	uint8_t rec[256];
	size_t len = spoolrec_encode_rcpt(rec, sizeof rec, qid, state, attempts, next_try,
	                                  T_ARRIVAL + 60, idx, n);
	cr_assert_gt(len, 0, "encode_rcpt %s", qid);
	return seg_append(s, rec, len);
}

static size_t add_void(struct segbuf *s, const char *qid)
{
	uint8_t rec[128];
	size_t n = spoolrec_encode_void(rec, sizeof rec, qid);
	cr_assert_gt(n, 0);
	return seg_append(s, rec, n);
}

/* A MSG with nrcpt recipients r0@x ... */
static size_t add_msg_n(struct segbuf *s, const char *qid, uint32_t nrcpt)
{
	char buf[8][16];
	const char *rc[8];
	cr_assert_leq(nrcpt, 8);
	for (uint32_t i = 0; i < nrcpt; i++) {
		snprintf(buf[i], sizeof buf[i], "r%u@x", i);
		rc[i] = buf[i];
	}
	uint8_t rec[512];
	size_t n = spoolrec_encode_msg(rec, sizeof rec, qid, T_ARRIVAL, 0, 0, "s@x", "192.0.2.1",
	                               rc, nrcpt, (const uint8_t *)"x\r\n", 3);
	cr_assert_gt(n, 0);
	return seg_append(s, rec, n);
}

/* What msg_state was told. */
struct got_state {
	size_t n;
	struct {
		char seg[64];
		unsigned worker;
		uint64_t seq, off, len;
		char qid[32];
		uint32_t nrcpt;
		struct spooldir_rcpt rcpt[8];
	} m[16];
};

static int collect_state(void *ctx, const struct spooldir_msg *sm)
{
	struct got_state *g = ctx;
	cr_assert_lt(g->n, ARRAY_LEN(g->m));
	cr_assert_not_null(sm->rcpt);
	snprintf(g->m[g->n].seg, sizeof g->m[g->n].seg, "%s", sm->seg);
	g->m[g->n].worker = sm->worker;
	g->m[g->n].seq = sm->seq;
	g->m[g->n].off = sm->off;
	g->m[g->n].len = sm->len;
	snprintf(g->m[g->n].qid, sizeof g->m[g->n].qid, "%.*s", (int)sm->m->qid.len,
	         sm->m->qid.p);
	g->m[g->n].nrcpt = sm->m->nrcpt;
	for (uint32_t i = 0; i < sm->m->nrcpt && i < 8; i++)
		g->m[g->n].rcpt[i] = sm->rcpt[i];
	g->n++;
	return 0;
}

/* The segments a merge case writes to, in scan order: one before the MSG's, the MSG's,
 * one after it of the same worker, one of another worker. */
static const char *const merge_segs[] = {
	"w0-0000000000000000.seg", "w0-0000000000000001.seg", "w0-0000000000000002.seg",
	"w1-0000000000000001.seg",
};
enum { S_BEFORE, S_MSG, S_AFTER, S_W1 };

struct merge_out {
	int seg;                    /* -1: end of the list */
	uint8_t state;
	uint32_t attempts;
	uint64_t next_try;
	uint32_t idx[4];
	uint32_t n;
	const char *qid;            /* NULL: "M" */
};

struct merge_case {
	const char *name;
	struct merge_out out[6];
	int void_m, done_m;
	/* want: M's three recipients (when it is live) */
	struct spooldir_rcpt want[3];
	int want_live;
	size_t want_finished, want_voided, want_done, want_outcomes, want_bad;
};

#define D SPOOLREC_RS_DELIVERED
#define B SPOOLREC_RS_BOUNCED
#define F SPOOLREC_RS_DEFERRED
#define END { -1, 0, 0, 0, { 0 }, 0, NULL }

static const struct merge_case merge_cases[] = {
	{ "no outcome: all open", { END }, 0, 0,
	  { { 0, 0, 0 }, { 0, 0, 0 }, { 0, 0, 0 } }, 1, 0, 0, 0, 0, 0 },
	{ "deferred, then delivered in the same segment",
	  { { S_MSG, F, 1, T_NEXT, { 0 }, 1, NULL }, { S_MSG, D, 2, 0, { 0 }, 1, NULL }, END },
	  0, 0, { { D, 2, 0 }, { 0, 0, 0 }, { 0, 0, 0 } }, 1, 0, 0, 0, 2, 0 },
	{ "delivered, then deferred later (another worker)",
	  { { S_MSG, D, 1, 0, { 0 }, 1, NULL }, { S_W1, F, 3, T_NEXT, { 0 }, 1, NULL }, END },
	  0, 0, { { D, 1, 0 }, { 0, 0, 0 }, { 0, 0, 0 } }, 1, 0, 0, 0, 2, 0 },
	{ "delivered in a segment before the MSG's, deferred after it",
	  { { S_AFTER, F, 4, T_NEXT, { 1 }, 1, NULL }, { S_BEFORE, D, 2, 0, { 1 }, 1, NULL },
	    END },
	  0, 0, { { 0, 0, 0 }, { D, 2, 0 }, { 0, 0, 0 } }, 1, 0, 0, 0, 2, 0 },
	{ "bounced then deferred: bounced",
	  { { S_MSG, B, 1, 0, { 2 }, 1, NULL }, { S_AFTER, F, 9, T_NEXT, { 2 }, 1, NULL }, END },
	  0, 0, { { 0, 0, 0 }, { 0, 0, 0 }, { B, 1, 0 } }, 1, 0, 0, 0, 2, 0 },
	{ "two finals: the first seen stays (bounced, before the MSG)",
	  { { S_AFTER, D, 2, 0, { 1 }, 1, NULL }, { S_BEFORE, B, 1, 0, { 1 }, 1, NULL }, END },
	  0, 0, { { 0, 0, 0 }, { B, 1, 0 }, { 0, 0, 0 } }, 1, 0, 0, 0, 2, 0 },
	{ "two finals: the first seen stays (delivered)",
	  { { S_MSG, D, 2, 0, { 1 }, 1, NULL }, { S_W1, B, 3, 0, { 1 }, 1, NULL }, END },
	  0, 0, { { 0, 0, 0 }, { D, 2, 0 }, { 0, 0, 0 } }, 1, 0, 0, 0, 2, 0 },
	{ "two deferred: more attempts wins, seen last",
	  { { S_AFTER, F, 2, T_NEXT + 900, { 2 }, 1, NULL },
	    { S_W1, F, 3, T_NEXT + 300, { 2 }, 1, NULL }, END },
	  0, 0, { { 0, 0, 0 }, { 0, 0, 0 }, { F, 3, T_NEXT + 300 } }, 1, 0, 0, 0, 2, 0 },
	{ "two deferred: more attempts wins, seen first",
	  { { S_BEFORE, F, 3, T_NEXT + 300, { 2 }, 1, NULL },
	    { S_W1, F, 2, T_NEXT + 900, { 2 }, 1, NULL }, END },
	  0, 0, { { 0, 0, 0 }, { 0, 0, 0 }, { F, 3, T_NEXT + 300 } }, 1, 0, 0, 0, 2, 0 },
	{ "two deferred, as many attempts: the later next try",
	  { { S_AFTER, F, 2, T_NEXT + 900, { 0 }, 1, NULL },
	    { S_W1, F, 2, T_NEXT + 300, { 0 }, 1, NULL }, END },
	  0, 0, { { F, 2, T_NEXT + 900 }, { 0, 0, 0 }, { 0, 0, 0 } }, 1, 0, 0, 0, 2, 0 },
	{ "one record, several recipients",
	  { { S_MSG, F, 1, T_NEXT, { 2, 0 }, 2, NULL }, END },
	  0, 0, { { F, 1, T_NEXT }, { 0, 0, 0 }, { F, 1, T_NEXT } }, 1, 0, 0, 0, 1, 0 },
	{ "all final: not live, finished (its DONE was lost)",
	  { { S_MSG, D, 1, 0, { 0, 2 }, 2, NULL }, { S_AFTER, F, 1, T_NEXT, { 1 }, 1, NULL },
	    { S_W1, B, 2, 0, { 1 }, 1, NULL }, END },
	  0, 0, { { 0 } }, 0, 1, 0, 0, 3, 0 },
	{ "an index out of range is ignored",
	  { { S_MSG, F, 1, T_NEXT, { 1, 3, 7 }, 3, NULL }, END },
	  0, 0, { { 0, 0, 0 }, { F, 1, T_NEXT }, { 0, 0, 0 } }, 1, 0, 0, 0, 1, 2 },
	{ "finals for 0..3 of 3 recipients: finished, one index ignored",
	  { { S_AFTER, D, 1, 0, { 0, 1, 2, 3 }, 4, NULL }, END },
	  0, 0, { { 0 } }, 0, 1, 0, 0, 1, 1 },
	{ "outcomes of a qid without MSG are ignored",
	  { { S_MSG, D, 1, 0, { 0, 1, 2 }, 3, "GHOST" }, { S_BEFORE, F, 1, 5, { 0 }, 1, "M2" },
	    END },
	  0, 0, { { 0, 0, 0 }, { 0, 0, 0 }, { 0, 0, 0 } }, 1, 0, 0, 0, 2, 0 },
	{ "VOID hides the message", { { S_MSG, F, 1, T_NEXT, { 0 }, 1, NULL }, END }, 1, 0,
	  { { 0 } }, 0, 0, 1, 0, 1, 0 },
	{ "DONE and VOID: done", { END }, 1, 1, { { 0 } }, 0, 0, 0, 1, 0, 0 },
};

#undef D
#undef B
#undef F
#undef END

static void unlink_segs(void)
{
	for (size_t i = 0; i < ARRAY_LEN(merge_segs); i++) {
		char path[256];
		snprintf(path, sizeof path, "%s/%s", tmpdir, merge_segs[i]);
		unlink(path);
	}
}

Test(spooldir, outcomes_merge_rules)
{
	for (size_t c = 0; c < ARRAY_LEN(merge_cases); c++) {
		const struct merge_case *mc = &merge_cases[c];
		struct segbuf segs[ARRAY_LEN(merge_segs)];
		memset(segs, 0, sizeof segs);
		/* Another message, never touched, so that the listing is never empty. */
		size_t off_m = add_msg_n(&segs[S_MSG], "M", 3);
		size_t len_m = segs[S_MSG].n - off_m;
		size_t off_o = add_msg_n(&segs[S_MSG], "OTHER", 1);
		for (const struct merge_out *o = mc->out; o->seg >= 0; o++)
			add_rcpt(&segs[o->seg], o->qid ? o->qid : "M", o->state, o->attempts,
			         o->next_try, o->idx, o->n);
		if (mc->void_m)
			add_void(&segs[S_W1], "M");
		if (mc->done_m)
			add_done(&segs[S_BEFORE], "M");
		unlink_segs();
		size_t nseg = 0;
		for (size_t i = 0; i < ARRAY_LEN(merge_segs); i++)
			if (segs[i].n) {
				put_seg(merge_segs[i], &segs[i]);
				nseg++;
			}

		struct got_state g = { 0 };
		struct spooldir_stats got_st;
		cr_assert_eq(spooldir_scan_state(tmpdir, NULL, collect_state, &g, &got_st), 0,
		             "%s", mc->name);
		const struct spooldir_stats want_st = {
			.segments = nseg, .live = 1 + (size_t)mc->want_live, .done = mc->want_done,
			.voided = mc->want_voided, .finished = mc->want_finished,
			.outcomes = mc->want_outcomes, .bad_outcomes = mc->want_bad,
		};
		check_stats(mc->name, &got_st, &want_st);
		cr_assert_eq(g.n, want_st.live, "%s: %zu handed out", mc->name, g.n);
		size_t k = 0;
		if (mc->want_live) {
			cr_assert_str_eq(g.m[0].qid, "M", "%s", mc->name);
			cr_assert_str_eq(g.m[0].seg, merge_segs[S_MSG], "%s", mc->name);
			cr_assert_eq(g.m[0].worker, 0);
			cr_assert_eq(g.m[0].seq, 1);
			cr_assert_eq(g.m[0].off, off_m, "%s", mc->name);
			cr_assert_eq(g.m[0].len, len_m, "%s", mc->name);
			cr_assert_eq(g.m[0].nrcpt, 3);
			for (int i = 0; i < 3; i++) {
				const struct spooldir_rcpt *got = &g.m[0].rcpt[i], *want = &mc->want[i];
				cr_assert(got->state == want->state && got->attempts == want->attempts &&
				          got->next_try == want->next_try,
				          "%s: recipient %d: got state %u attempts %u next_try %llu, "
				          "want %u %u %llu", mc->name, i, got->state, got->attempts,
				          (unsigned long long)got->next_try, want->state,
				          want->attempts, (unsigned long long)want->next_try);
			}
			k = 1;
		}
		cr_assert_str_eq(g.m[k].qid, "OTHER", "%s", mc->name);
		cr_assert_eq(g.m[k].off, off_o);
		cr_assert_eq(g.m[k].rcpt[0].state, SPOOLREC_RS_OPEN);

		/* The old callback sees the same live messages. */
		struct got old = { 0 };
		const struct spooldir_ops ops = { collect_msg_any, NULL, 0 };
		cr_assert_eq(spooldir_scan_ops(tmpdir, &ops, &old, &got_st), 0);
		check_stats(mc->name, &got_st, &want_st);
		cr_assert_eq(old.n, want_st.live, "%s: msg callback", mc->name);
		/* --show of M: only when it is live. */
		char *buf = NULL;
		size_t blen = 0;
		FILE *f = open_memstream(&buf, &blen);
		cr_assert_not_null(f);
		int got_rc = spooldir_show(tmpdir, "M", f);
		fclose(f);
		cr_assert_eq(got_rc, mc->want_live ? 0 : -ENOENT, "%s: --show gave %d", mc->name,
		             got_rc);
		cr_assert_str_eq(buf, mc->want_live ? "x\r\n" : "", "%s", mc->name);
		free(buf);
		for (size_t i = 0; i < ARRAY_LEN(merge_segs); i++)
			free(segs[i].p);
	}
}

/* Every order of the same outcomes, each in any of the four segments: the result does
 * not depend on where the records lie, only on the rules. (A final beats a deferred; of
 * two deferred, 5 attempts beat 2 and 3; the one final of the lot wins.) */
Test(spooldir, outcomes_final_wins_from_any_segment)
{
	struct { uint8_t state; uint32_t attempts; uint64_t next_try; } outs[] = {
		{ SPOOLREC_RS_DEFERRED, 2, T_NEXT },
		{ SPOOLREC_RS_DEFERRED, 5, T_NEXT + 60 },
		{ SPOOLREC_RS_BOUNCED, 4, 0 },
		{ SPOOLREC_RS_DEFERRED, 3, T_NEXT + 7200 },
	};
	const uint32_t idx0[] = { 0 }, idx1[] = { 1 };
	/* Placement: a base-4 number, digit i = the segment of outcome i. */
	for (unsigned place = 0; place < 256; place++) {
		struct segbuf segs[ARRAY_LEN(merge_segs)];
		memset(segs, 0, sizeof segs);
		add_msg_n(&segs[S_MSG], "M", 2);
		for (unsigned i = 0; i < ARRAY_LEN(outs); i++) {
			unsigned sg = place >> (2 * i) & 3;
			/* recipient 0 gets all four; recipient 1 all but the bounce */
			add_rcpt(&segs[sg], "M", outs[i].state, outs[i].attempts, outs[i].next_try,
			         idx0, 1);
			if (outs[i].state == SPOOLREC_RS_DEFERRED)
				add_rcpt(&segs[3 - sg], "M", outs[i].state, outs[i].attempts,
				         outs[i].next_try, idx1, 1);
		}
		unlink_segs();
		for (size_t i = 0; i < ARRAY_LEN(merge_segs); i++)
			if (segs[i].n)
				put_seg(merge_segs[i], &segs[i]);
		struct got_state g = { 0 };
		struct spooldir_stats st;
		cr_assert_eq(spooldir_scan_state(tmpdir, NULL, collect_state, &g, &st), 0);
		cr_assert_eq(g.n, 1, "placement %u", place);
		cr_assert_eq(st.outcomes, 7);
		const struct spooldir_rcpt *r = g.m[0].rcpt;
		cr_assert(r[0].state == SPOOLREC_RS_BOUNCED && r[0].attempts == 4 &&
		          r[0].next_try == 0, "placement %u: recipient 0 state %u attempts %u",
		          place, r[0].state, r[0].attempts);
		cr_assert(r[1].state == SPOOLREC_RS_DEFERRED && r[1].attempts == 5 &&
		          r[1].next_try == T_NEXT + 60, "placement %u: recipient 1 state %u "
		          "attempts %u", place, r[1].state, r[1].attempts);
		for (size_t i = 0; i < ARRAY_LEN(merge_segs); i++)
			free(segs[i].p);
	}
}

/* msg_state gets where each MSG lies: segment, worker, seq (from the name), offset and
 * length; the record read there is the message. */
Test(spooldir, msg_state_gets_the_record_place)
{
	struct segbuf a = { 0 }, b = { 0 };
	size_t offA = add_msg(&a, "A");
	size_t offB = add_msg_n(&a, "B", 2);
	size_t endB = a.n;
	add_rcpt(&a, "B", SPOOLREC_RS_DELIVERED, 1, 0, (const uint32_t[]){ 1 }, 1);
	add_unknown(&b, 77);
	size_t offC = add_msg(&b, "C");
	put_seg("w0-00000000000000a1.seg", &a);
	put_seg("w12-ff00000000000001.seg", &b);

	struct got_state g = { 0 };
	struct spooldir_stats st;
	cr_assert_eq(spooldir_scan_state(tmpdir, NULL, collect_state, &g, &st), 0);
	cr_assert_eq(g.n, 3);
	const struct { const char *seg; unsigned worker; uint64_t seq, off, len; const char *qid;
	               const struct segbuf *s; } want[] = {
		{ "w0-00000000000000a1.seg", 0, 0xa1, offA, offB - offA, "A", &a },
		{ "w0-00000000000000a1.seg", 0, 0xa1, offB, endB - offB, "B", &a },
		{ "w12-ff00000000000001.seg", 12, 0xff00000000000001ull, offC, b.n - offC, "C", &b },
	};
	for (size_t i = 0; i < ARRAY_LEN(want); i++) {
		cr_assert_str_eq(g.m[i].seg, want[i].seg, "%zu", i);
		cr_assert_eq(g.m[i].worker, want[i].worker, "%zu", i);
		cr_assert_eq(g.m[i].seq, want[i].seq, "%zu: seq %llx", i,
		             (unsigned long long)g.m[i].seq);
		cr_assert_eq(g.m[i].off, want[i].off, "%zu", i);
		cr_assert_eq(g.m[i].len, want[i].len, "%zu: len %llu want %llu", i,
		             (unsigned long long)g.m[i].len, (unsigned long long)want[i].len);
		cr_assert_str_eq(g.m[i].qid, want[i].qid);
		size_t used = 0;
		cr_assert_eq(spoolrec_decode(want[i].s->p + g.m[i].off, g.m[i].len, &used, NULL, NULL,
		                             NULL, NULL), SPOOLREC_OK, "%zu", i);
		cr_assert_eq(used, g.m[i].len);
	}
	cr_assert_eq(g.m[1].rcpt[0].state, SPOOLREC_RS_OPEN);
	cr_assert_eq(g.m[1].rcpt[1].state, SPOOLREC_RS_DELIVERED);
	cr_assert_eq(st.unknown, 1);
	cr_assert_eq(st.outcomes, 1);
	free(a.p);
	free(b.p);
}

/* A damaged RCPT record is damage like any other, and what it said is lost: the
 * recipient is open again (at worst a duplicate delivery, never a loss). */
Test(spooldir, a_damaged_outcome_costs_that_outcome)
{
	struct segbuf s = { 0 };
	add_msg_n(&s, "M", 1);
	size_t offR = add_rcpt(&s, "M", SPOOLREC_RS_DELIVERED, 1, 0, (const uint32_t[]){ 0 }, 1);
	size_t endR = s.n;
	add_msg(&s, "N");
	s.p[endR - 2] ^= 0x04;                          /* in its index */
	put_seg("w0-0000000000000001.seg", &s);
	struct damage_log l = { .n = 0 };
	struct spooldir_stats st;
	const struct spooldir_ops ops = { collect_msg_any_dl, collect_damage, 0 };
	cr_assert_eq(spooldir_scan_ops(tmpdir, &ops, &l, &st), 0);
	cr_assert_eq(st.live, 2, "M is live again");
	cr_assert_eq(l.g.n, 2);
	cr_assert_str_eq(l.g.r[0].qid, "M");
	cr_assert_eq(st.finished, 0);
	cr_assert_eq(st.outcomes, 0);
	cr_assert_eq(st.corrupt, 1);
	check_damage("RCPT", &l, 0, "w0-0000000000000001.seg", offR, endR - offR, 0);
	cr_assert_eq(l.d[0].err, SPOOLREC_E_CRC);
	s.p[endR - 2] ^= 0x04;
	put_seg("w0-0000000000000001.seg", &s);
	cr_assert_eq(spooldir_scan_ops(tmpdir, &ops, &(struct damage_log){ .n = 0 }, &st), 0);
	cr_assert_eq(st.live, 1);
	cr_assert_eq(st.finished, 1);
	cr_assert_eq(st.outcomes, 1);
	free(s.p);
}

/* A spool of many messages and a few outcomes: each outcome finds its message. */
Test(spooldir, many_messages_few_outcomes, .timeout = 60)
{
	struct segbuf s = { 0 };
	char qid[16];
	for (int i = 0; i < 20000; i++) {
		snprintf(qid, sizeof qid, "M%05d", i);
		add_msg_n(&s, qid, 2);
	}
	static const uint32_t both[] = { 0, 1 };
	add_rcpt(&s, "M00007", SPOOLREC_RS_DELIVERED, 1, 0, both, 2);      /* finished */
	add_rcpt(&s, "M19999", SPOOLREC_RS_DEFERRED, 1, T_NEXT, both, 1);  /* live */
	add_void(&s, "M10000");
	add_rcpt(&s, "M10000", SPOOLREC_RS_DELIVERED, 1, 0, both, 2);      /* voided anyway */
	put_seg("w0-0000000000000001.seg", &s);
	struct spooldir_stats st;
	cr_assert_eq(spooldir_scan(tmpdir, NULL, NULL, &st), 0);
	cr_assert_eq(st.live, 19998);
	cr_assert_eq(st.finished, 1);
	cr_assert_eq(st.voided, 1);
	cr_assert_eq(st.outcomes, 3);
	free(s.p);
}

/* `--queue`: only recipients that are not final, each deferred one with its attempts and
 * next try; JSON's message-level attempts (most of any recipient) and next_try (the
 * earliest of a deferred one). A message whose recipients are all final is not listed. */
Test(spooldir, list_shows_attempts_and_next_try)
{
	static const struct list_msg msgs[] = {
		{ "4Xb9kQ1", T_ARRIVAL, "alice@example.com",
		  { "bob@example.net", "carol@example.org", "dave@example.org" }, 3,
		  "Subject: hi\r\n\r\nhello\r\n" },
		{ "ALLDONE", T_ARRIVAL, "x@example.com", { "y@example.com" }, 1, "x" },
		{ "7Yc0mR2", T_ARRIVAL + 3600, "", { "e@example.com", "f@example.com" }, 2, "" },
	};
	put_list_seg("w0-0000000000000001.seg", msgs, ARRAY_LEN(msgs), NULL);
	struct segbuf s = { 0 };
	/* The outcomes of the three messages interleaved. */
	add_rcpt(&s, "4Xb9kQ1", SPOOLREC_RS_DEFERRED, 1, T_NEXT - 600, (const uint32_t[]){ 0 }, 1);
	add_rcpt(&s, "7Yc0mR2", SPOOLREC_RS_DEFERRED, 1, T_NEXT + 7200, (const uint32_t[]){ 0 }, 1);
	add_rcpt(&s, "ALLDONE", SPOOLREC_RS_BOUNCED, 1, 0, (const uint32_t[]){ 0 }, 1);
	add_rcpt(&s, "4Xb9kQ1", SPOOLREC_RS_DELIVERED, 3, 0, (const uint32_t[]){ 1 }, 1);
	add_rcpt(&s, "7Yc0mR2", SPOOLREC_RS_DEFERRED, 1, T_NEXT + 3600, (const uint32_t[]){ 1 }, 1);
	add_rcpt(&s, "4Xb9kQ1", SPOOLREC_RS_DEFERRED, 2, T_NEXT, (const uint32_t[]){ 0 }, 1);
	put_seg("w1-0000000000000001.seg", &s);
	free(s.p);

	static const struct list_case cases[] = {
		{ "text", 0,
		  "4Xb9kQ1  22  2023-11-14T22:13:20Z  <alice@example.com>  "
		  "<bob@example.net> (attempts=2 next_try=2023-11-14T23:13:20Z) <dave@example.org>\n"
		  "7Yc0mR2  0  2023-11-14T23:13:20Z  <>  "
		  "<e@example.com> (attempts=1 next_try=2023-11-15T01:13:20Z) "
		  "<f@example.com> (attempts=1 next_try=2023-11-15T00:13:20Z)\n"
		  "-- 2 messages\n" },
		{ "json", 1,
		  "{\"queue_id\":\"4Xb9kQ1\",\"sender\":\"alice@example.com\","
		  "\"recipients\":[\"bob@example.net\",\"dave@example.org\"],\"size\":22,"
		  "\"arrival\":\"2023-11-14T22:13:20Z\",\"attempts\":3,"
		  "\"next_try\":\"2023-11-14T23:13:20Z\",\"recipient_state\":["
		  "{\"address\":\"bob@example.net\",\"attempts\":2,"
		  "\"next_try\":\"2023-11-14T23:13:20Z\"},"
		  "{\"address\":\"dave@example.org\",\"attempts\":0,\"next_try\":null}]}\n"
		  "{\"queue_id\":\"7Yc0mR2\",\"sender\":\"\","
		  "\"recipients\":[\"e@example.com\",\"f@example.com\"],\"size\":0,"
		  "\"arrival\":\"2023-11-14T23:13:20Z\",\"attempts\":1,"
		  "\"next_try\":\"2023-11-15T00:13:20Z\",\"recipient_state\":["
		  "{\"address\":\"e@example.com\",\"attempts\":1,"
		  "\"next_try\":\"2023-11-15T01:13:20Z\"},"
		  "{\"address\":\"f@example.com\",\"attempts\":1,"
		  "\"next_try\":\"2023-11-15T00:13:20Z\"}]}\n" },
	};
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		int rc;
		char *got = list_to_string(tmpdir, cases[i].json, &rc);
		cr_assert_eq(rc, 0, "%s", cases[i].name);
		cr_assert_str_eq(got, cases[i].want, "%s:\n got: %s\nwant: %s", cases[i].name,
		                 got, cases[i].want);
		free(got);
	}
}

/* A MSG without recipients has none that is final: it stays live, as it always was
 * (an outcome for it can only carry indexes out of range). */
Test(spooldir, a_message_without_recipients_stays_live)
{
	struct segbuf s = { 0 };
	add_msg_n(&s, "Z", 0);
	add_rcpt(&s, "Z", SPOOLREC_RS_DELIVERED, 1, 0, (const uint32_t[]){ 0 }, 1);
	put_seg("w0-0000000000000001.seg", &s);
	struct got_state g = { 0 };
	struct spooldir_stats st;
	cr_assert_eq(spooldir_scan_state(tmpdir, NULL, collect_state, &g, &st), 0);
	cr_assert_eq(g.n, 1);
	cr_assert_eq(g.m[0].nrcpt, 0);
	cr_assert_eq(st.live, 1);
	cr_assert_eq(st.finished, 0);
	cr_assert_eq(st.bad_outcomes, 1);
	free(s.p);
}

/* ---- copies forward (segment reclaim) ------------------------------------------------- */

/* A copy of B's record (spoolrec_encode_copy: generation 1, recipient 0 restated
 * delivered) in a later segment, and the original still there (a crash between the
 * copy's commit and the original's removal): B is handed out once, from the original
 * (the lower generation), with its outcomes merged from both; one duplicate. Removing the
 * original then leaves the copy, which says the same. */
Test(spooldir, a_copy_and_its_original_are_one_message)
{
	struct segbuf a = { 0 }, b = { 0 };
	add_msg(&a, "A");
	size_t offB = add_msg_n(&a, "B", 3);
	size_t lenB = a.n - offB;
	add_rcpt(&a, "B", SPOOLREC_RS_DELIVERED, 1, 0, (const uint32_t[]){ 0 }, 1);
	add_done(&a, "A");
	struct spoolrec_rstate st3[3] = { { SPOOLREC_RS_DELIVERED, 1, 0 }, { 0, 0, 0 },
	                                  { SPOOLREC_RS_DEFERRED, 2, T_ARRIVAL + 600 } };
	uint8_t copy[1024];
	size_t n = spoolrec_encode_copy(copy, sizeof copy, a.p + offB, lenB, st3, 3, T_ARRIVAL + 9);
	cr_assert_gt(n, lenB);
	size_t offC = seg_append(&b, copy, n);
	put_seg("w0-0000000000000001.seg", &a);
	put_seg("w0-0000000000000002.seg", &b);

	struct got_state g = { 0 };
	struct spooldir_stats st;
	cr_assert_eq(spooldir_scan_state(tmpdir, NULL, collect_state, &g, &st), 0);
	cr_assert_eq(g.n, 1);
	cr_assert_str_eq(g.m[0].qid, "B");
	cr_assert_eq(g.m[0].seq, 1, "the original, not the copy");
	cr_assert_eq(g.m[0].off, offB);
	cr_assert_eq(st.duplicates, 1);
	cr_assert_eq(st.live, 1);
	cr_assert_eq(g.m[0].rcpt[0].state, SPOOLREC_RS_DELIVERED);
	cr_assert_eq(g.m[0].rcpt[1].state, SPOOLREC_RS_OPEN);
	cr_assert_eq(g.m[0].rcpt[2].state, SPOOLREC_RS_DEFERRED);
	cr_assert_eq(g.m[0].rcpt[2].attempts, 2);

	/* the original's segment removed: the copy alone says the same */
	char path[256];
	snprintf(path, sizeof path, "%s/w0-0000000000000001.seg", tmpdir);
	cr_assert_eq(unlink(path), 0);
	memset(&g, 0, sizeof g);
	cr_assert_eq(spooldir_scan_state(tmpdir, NULL, collect_state, &g, &st), 0);
	cr_assert_eq(g.n, 1);
	cr_assert_eq(g.m[0].seq, 2);
	cr_assert_eq(g.m[0].off, offC);
	cr_assert_eq(g.m[0].len, lenB);
	cr_assert_eq(st.duplicates, 0);
	cr_assert_eq(g.m[0].rcpt[0].state, SPOOLREC_RS_DELIVERED);
	cr_assert_eq(g.m[0].rcpt[1].state, SPOOLREC_RS_OPEN);
	cr_assert_eq(g.m[0].rcpt[2].state, SPOOLREC_RS_DEFERRED);
	cr_assert_eq(g.m[0].rcpt[2].next_try, T_ARRIVAL + 600);
	/* and --show reads the copy's data back as it was received */
	char *buf = NULL;
	size_t blen = 0;
	FILE *f = open_memstream(&buf, &blen);
	cr_assert_eq(spooldir_show(tmpdir, "B", f), 0);
	fclose(f);
	cr_assert_eq(blen, 3);
	cr_assert_eq(memcmp(buf, "x\r\n", 3), 0);
	free(buf);
	free(a.p);
	free(b.p);
}

/* A copy whose commit was cut after its MSG record (its restating RCPT records lost)
 * beside its original: the original is the one handed out, so removing the segments
 * before the copy is never what decides. */
Test(spooldir, a_cut_copy_does_not_replace_its_original)
{
	struct segbuf a = { 0 }, b = { 0 };
	size_t offB = add_msg_n(&a, "B", 2);
	size_t lenB = a.n - offB;
	add_rcpt(&a, "B", SPOOLREC_RS_BOUNCED, 1, 0, (const uint32_t[]){ 1 }, 1);
	struct spoolrec_rstate st2[2] = { { 0, 0, 0 }, { SPOOLREC_RS_BOUNCED, 1, 0 } };
	uint8_t copy[1024];
	size_t n = spoolrec_encode_copy(copy, sizeof copy, a.p + offB, lenB, st2, 2, T_ARRIVAL);
	cr_assert_gt(n, lenB);
	seg_append(&b, copy, lenB);             /* the MSG only */
	put_seg("w0-0000000000000001.seg", &a);
	put_seg("w0-0000000000000002.seg", &b);
	struct got_state g = { 0 };
	struct spooldir_stats st;
	cr_assert_eq(spooldir_scan_state(tmpdir, NULL, collect_state, &g, &st), 0);
	cr_assert_eq(g.n, 1);
	cr_assert_eq(g.m[0].seq, 1);
	cr_assert_eq(g.m[0].rcpt[1].state, SPOOLREC_RS_BOUNCED);
	cr_assert_eq(st.duplicates, 1);
	free(a.p);
	free(b.p);
}

static int seg_list_cb(void *ctx, unsigned worker, uint64_t seq, uint64_t size)
{
	char *out = ctx;
	snprintf(out + strlen(out), 256 - strlen(out), "%u:%llx:%llu ", worker,
	         (unsigned long long)seq, (unsigned long long)size);
	return 0;
}

Test(spooldir, segments_lists_segment_files_in_order)
{
	put_file("w1-0000000000000002.seg", "abc", 3);
	put_file("w0-0000000000000010.seg", "", 0);
	put_file("w0-0000000000000002.seg", "abcdef", 6);
	put_file("w0-2.seg", "x", 1);                   /* not a segment name */
	put_file(".qid", "12345678", 8);
	char out[256] = "";
	cr_assert_eq(spooldir_segments(tmpdir, seg_list_cb, out), 0);
	cr_assert_str_eq(out, "0:2:6 0:10:0 1:2:3 ");
	char missing[300];
	snprintf(missing, sizeof missing, "%s/nope", tmpdir);
	out[0] = '\0';
	cr_assert_eq(spooldir_segments(missing, seg_list_cb, out), 0);
	cr_assert_str_eq(out, "");
}
