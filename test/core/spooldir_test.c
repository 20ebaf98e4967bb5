/* test/core/spooldir_test — the spool scan and `--queue` listing against segment files
 * written with the real encoder in a temporary directory: live/done across segments,
 * segment order and names, torn tails at every length and every corrupted octet,
 * damage in the middle of a segment (skipped, reported, nothing after it lost), records
 * of unknown types, zero octets written ahead, a missing directory, last_seq, and the
 * exact text and JSON listings. */
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
};

static size_t seg_append(struct segbuf *s, const uint8_t *rec, size_t n)
{
	size_t off = s->n;
	s->p = realloc(s->p, s->n + n);
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
	struct spooldir_stats got_st = { 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1 };
	struct spooldir_stats want_st = { 0 };

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
		  "\"arrival\":\"2023-11-14T22:13:20Z\",\"attempts\":0,\"next_try\":null}\n"
		  "{\"queue_id\":\"7Yc0mR2\",\"sender\":\"\",\"recipients\":[\"dave@example.com\"],"
		  "\"size\":0,\"arrival\":\"2023-11-14T23:13:20Z\",\"attempts\":0,"
		  "\"next_try\":null}\n" },
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
		  "\"next_try\":null}\n" },
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
		         "\"arrival\":\"1970-01-01T00:00:00Z\",\"attempts\":0,\"next_try\":null}\n",
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
