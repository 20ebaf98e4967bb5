/* bench/cidr_bench — CIDR lookups per second: cfg/cidr's table against a linear scan.
 *
 * Builds a table of N random networks (70% IPv4 /8-/32, 30% IPv6 /32-/128, fixed seed)
 * through cidr_builder_add() on text, and keeps the same networks in a plain array that
 * is scanned linearly with mask-and-compare. Generates L lookup addresses up front (half
 * drawn inside a random entry, half uniformly random), then:
 *
 *   1. checks that cidr_lookup() and the linear scan agree on every lookup address
 *      (exit 1 on the first disagreement: this is a correctness check too);
 *   2. times cidr_lookup() over all L addresses (best of R runs);
 *   3. times the linear scan over the first S addresses (best of 3 runs);
 *
 * and prints lookups/s for both, the ratio, and the table's build time (best of R).
 * Lookups go through struct sockaddr, as the relay does once per connection. A small
 * share of the IPv4 lookups is presented as IPv4-mapped IPv6 (what a dual-stack listener
 * hands over), which the linear scan resolves by the semantics documented in cfg/cidr.h.
 *
 * Usage: cidr_bench [-n entries] [-l lookups] [-s linear-subset] [-r reps] [-S seed]
 * Everything is in memory and bounded; no network. */
#include "cfg/cidr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BENCH_MAX_ENTRIES  1000000UL
#define BENCH_MAX_LOOKUPS  10000000UL
#define BENCH_MAX_REPS     50UL
#define BENCH_MAX_THREADS  16L
#define BENCH_MAPPED_PCT   5           /* % of IPv4 lookups sent as ::ffff:a.b.c.d */

static const uint8_t bench_mapped_prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

/* One configured network as generated. IPv4 in a4/m4; IPv6 as two 64-bit halves
 * (hi = first 8 octets) with their masks. */
struct bench_net {
	int family;
	uint32_t a4, m4;
	uint64_t hi, lo, mhi, mlo;
};

/* The naive reference keeps the same networks in two plain arrays, one per family, in
 * configuration order: no sorting, no merging, just mask-and-compare on each. */
struct bench_net4 {
	uint32_t a, m;
};

struct bench_net6 {
	uint64_t hi, lo, mhi, mlo;
};

struct bench_linear {
	struct bench_net4 *v4;
	size_t n4;
	struct bench_net6 *v6;
	size_t n6;
};

/* One lookup address; sa.sa_family says which member is live. */
union bench_addr {
	struct sockaddr sa;
	struct sockaddr_in sin;
	struct sockaddr_in6 sin6;
};

/* splitmix64: small, fast, reproducible across libcs (unlike rand()). */
static uint64_t bench_rng_state;

static uint64_t bench_rand(void)
{
	uint64_t z = (bench_rng_state += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Uniform in [lo, hi]. */
static unsigned bench_range(unsigned lo, unsigned hi)
{
	return lo + (unsigned)(bench_rand() % (uint64_t)(hi - lo + 1));
}

static double bench_now(void)
{
	struct timespec ts;
	if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) {
		perror("clock_gettime");
		abort();
	}
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint32_t bench_mask4(unsigned plen)
{
	return plen == 0 ? 0 : UINT32_MAX << (32 - plen);
}

static uint64_t bench_mask64(unsigned plen)  /* plen 0..64 */
{
	return plen == 0 ? 0 : UINT64_MAX << (64 - plen);
}

static void bench_store64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--) {
		p[i] = (uint8_t)v;
		v >>= 8;
	}
}

static uint64_t bench_load64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = (v << 8) | p[i];
	return v;
}

/* Prefix lengths: IPv4 mostly /16-/32 with 2% short /8-/15 prefixes, so that a random
 * IPv4 address hits sometimes but not always (uniform /8-/32 would cover nearly all of
 * IPv4 with 7,000 entries). IPv6 uniform /32-/128 inside 2000::/3. */
static void bench_gen_net(struct bench_net *n, char *text, size_t textlen)
{
	char buf[INET6_ADDRSTRLEN];
	unsigned plen;

	memset(n, 0, sizeof(*n));
	if (bench_rand() % 100 < 70) {
		uint32_t a;
		struct in_addr ia;
		plen = bench_rand() % 100 < 2 ? bench_range(8, 15) : bench_range(16, 32);
		n->family = AF_INET;
		n->m4 = bench_mask4(plen);
		a = (uint32_t)bench_rand() & n->m4;
		n->a4 = a;
		ia.s_addr = htonl(a);
		inet_ntop(AF_INET, &ia, buf, sizeof(buf));
	} else {
		uint8_t raw[16];
		plen = bench_range(32, 128);
		n->family = AF_INET6;
		n->mhi = bench_mask64(plen > 64 ? 64 : plen);
		n->mlo = bench_mask64(plen > 64 ? plen - 64 : 0);
		n->hi = ((bench_rand() & ~(7ULL << 61)) | (1ULL << 61)) & n->mhi;
		n->lo = bench_rand() & n->mlo;
		bench_store64(raw, n->hi);
		bench_store64(raw + 8, n->lo);
		inet_ntop(AF_INET6, raw, buf, sizeof(buf));
	}
	snprintf(text, textlen, "%s/%u", buf, plen);
}

static void bench_set4(union bench_addr *u, uint32_t a)
{
	memset(u, 0, sizeof(*u));
	if (bench_rand() % 100 < BENCH_MAPPED_PCT) {
		u->sin6.sin6_family = AF_INET6;
		u->sin6.sin6_addr.s6_addr[10] = 0xff;
		u->sin6.sin6_addr.s6_addr[11] = 0xff;
		u->sin6.sin6_addr.s6_addr[12] = (uint8_t)(a >> 24);
		u->sin6.sin6_addr.s6_addr[13] = (uint8_t)(a >> 16);
		u->sin6.sin6_addr.s6_addr[14] = (uint8_t)(a >> 8);
		u->sin6.sin6_addr.s6_addr[15] = (uint8_t)a;
	} else {
		u->sin.sin_family = AF_INET;
		u->sin.sin_addr.s_addr = htonl(a);
	}
}

static void bench_set6(union bench_addr *u, uint64_t hi, uint64_t lo)
{
	memset(u, 0, sizeof(*u));
	u->sin6.sin6_family = AF_INET6;
	bench_store64(u->sin6.sin6_addr.s6_addr, hi);
	bench_store64(u->sin6.sin6_addr.s6_addr + 8, lo);
}

/* Half inside a random entry (random host bits), half uniformly random; random
 * addresses are 70% IPv4, 30% IPv6 in 2000::/3 like the entries. */
static void bench_gen_addr(union bench_addr *u, const struct bench_net *nets, size_t nnets)
{
	if (bench_rand() & 1) {
		const struct bench_net *n = &nets[bench_rand() % nnets];
		if (n->family == AF_INET)
			bench_set4(u, n->a4 | ((uint32_t)bench_rand() & ~n->m4));
		else
			bench_set6(u, n->hi | (bench_rand() & ~n->mhi),
			           n->lo | (bench_rand() & ~n->mlo));
	} else if (bench_rand() % 100 < 70) {
		bench_set4(u, (uint32_t)bench_rand());
	} else {
		bench_set6(u, (bench_rand() & ~(7ULL << 61)) | (1ULL << 61), bench_rand());
	}
}

/* The naive reference: mask and compare entry by entry, first match wins. An IPv4
 * address (or an IPv4-mapped IPv6 one) is compared with every IPv4 entry on its 32 bits,
 * then with every IPv6 entry as ::ffff:a.b.c.d; any other IPv6 address can only match
 * IPv6 entries (cfg/cidr.h), so only those are compared. */
static bool bench_linear_find(const struct bench_linear *l, const struct sockaddr *sa)
{
	bool is4;
	uint32_t a4 = 0;
	uint64_t hi, lo;

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)(const void *)sa;
		is4 = true;
		a4 = ntohl(sin->sin_addr.s_addr);
		hi = 0;
		lo = 0xffff00000000ULL | a4;
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)(const void *)sa;
		const uint8_t *p = sin6->sin6_addr.s6_addr;
		hi = bench_load64(p);
		lo = bench_load64(p + 8);
		is4 = memcmp(p, bench_mapped_prefix, sizeof(bench_mapped_prefix)) == 0;
		a4 = (uint32_t)lo;
	} else {
		return false;
	}
	if (is4) {
		for (size_t i = 0; i < l->n4; i++)
			if ((a4 & l->v4[i].m) == l->v4[i].a)
				return true;
	}
	for (size_t i = 0; i < l->n6; i++) {
		const struct bench_net6 *n = &l->v6[i];
		if ((hi & n->mhi) == n->hi && (lo & n->mlo) == n->lo)
			return true;
	}
	return false;
}

/* Verification is the slow part (every address through the linear scan), so it is
 * split over one thread per CPU; each slice records its first disagreement. */
struct bench_verify {
	pthread_t tid;
	const struct bench_linear *lin;
	const struct cidr_table *t;
	const union bench_addr *addrs;
	size_t from, to, nsub;      /* [from, to); addresses below nsub are the subset */
	size_t hits, hits_sub;
	size_t bad;                 /* index of the first mismatch, or SIZE_MAX */
	bool want_bad;
};

static void *bench_verify_run(void *arg)
{
	struct bench_verify *v = arg;
	for (size_t i = v->from; i < v->to; i++) {
		bool want = bench_linear_find(v->lin, &v->addrs[i].sa);
		bool got = cidr_lookup(v->t, &v->addrs[i].sa);
		if (want != got) {
			v->bad = i;
			v->want_bad = want;
			break;
		}
		v->hits += got;
		if (i < v->nsub)
			v->hits_sub += got;
	}
	return NULL;
}

static void bench_fmt_addr(const union bench_addr *u, char *buf, size_t len)
{
	if (u->sa.sa_family == AF_INET)
		inet_ntop(AF_INET, &u->sin.sin_addr, buf, (socklen_t)len);
	else
		inet_ntop(AF_INET6, &u->sin6.sin6_addr, buf, (socklen_t)len);
}

static int bench_parse(const char *opt, const char *s, unsigned long lo, unsigned long hi,
                       unsigned long *out)
{
	char *end;
	unsigned long v;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi) {
		fprintf(stderr, "cidr_bench: -%s wants %lu..%lu, got '%s'\n", opt, lo, hi, s);
		return -1;
	}
	*out = v;
	return 0;
}

/* "12,345,678" for the table. */
static const char *bench_commas(double v, char *buf, size_t len)
{
	char tmp[32];
	size_t n, o = 0;
	snprintf(tmp, sizeof(tmp), "%.0f", v);
	n = strlen(tmp);
	for (size_t i = 0; i < n && o + 2 < len; i++) {
		if (i > 0 && (n - i) % 3 == 0)
			buf[o++] = ',';
		buf[o++] = tmp[i];
	}
	buf[o] = '\0';
	return buf;
}

int main(int argc, char **argv)
{
	unsigned long nentries = 10000, nlookups = 1000000, nsubset = 20000, reps = 5;
	unsigned long seed = 20261121;
	struct bench_net *nets = NULL;
	char (*texts)[INET6_ADDRSTRLEN + 8] = NULL;
	union bench_addr *addrs = NULL;
	struct bench_linear lin = { 0 };
	struct bench_verify *ver = NULL;
	long nthreads = sysconf(_SC_NPROCESSORS_ONLN);
	struct cidr_table *t = NULL;
	char err[256], b1[32], b2[32];
	double t0, build_best = 1e9, table_best = 1e9, linear_best = 1e9;
	size_t n4 = 0, hits = 0, hits_sub = 0, mapped = 0;
	size_t table_hits = 0, linear_hits = 0;
	int opt, rc = 1;

	while ((opt = getopt(argc, argv, "n:l:s:r:S:")) != -1) {
		int r;
		switch (opt) {
		case 'n': r = bench_parse("n", optarg, 1, BENCH_MAX_ENTRIES, &nentries); break;
		case 'l': r = bench_parse("l", optarg, 1, BENCH_MAX_LOOKUPS, &nlookups); break;
		case 's': r = bench_parse("s", optarg, 1, BENCH_MAX_LOOKUPS, &nsubset); break;
		case 'r': r = bench_parse("r", optarg, 1, BENCH_MAX_REPS, &reps); break;
		case 'S': r = bench_parse("S", optarg, 0, UINT32_MAX, &seed); break;
		default:
			fprintf(stderr, "usage: cidr_bench [-n entries] [-l lookups] "
			        "[-s linear-subset] [-r reps] [-S seed]\n");
			return 2;
		}
		if (r < 0)
			return 2;
	}
	if (nsubset > nlookups)
		nsubset = nlookups;
	bench_rng_state = seed;

	if (nthreads < 1)
		nthreads = 1;
	if (nthreads > BENCH_MAX_THREADS)
		nthreads = BENCH_MAX_THREADS;
	nets = calloc(nentries, sizeof(*nets));
	texts = calloc(nentries, sizeof(*texts));
	addrs = calloc(nlookups, sizeof(*addrs));
	lin.v4 = calloc(nentries, sizeof(*lin.v4));
	lin.v6 = calloc(nentries, sizeof(*lin.v6));
	ver = calloc((size_t)nthreads, sizeof(*ver));
	if (nets == NULL || texts == NULL || addrs == NULL || lin.v4 == NULL ||
	    lin.v6 == NULL || ver == NULL) {
		fprintf(stderr, "cidr_bench: out of memory\n");
		goto fail;
	}
	for (size_t i = 0; i < nentries; i++) {
		const struct bench_net *n = &nets[i];
		bench_gen_net(&nets[i], texts[i], sizeof(texts[i]));
		if (n->family == AF_INET) {
			lin.v4[lin.n4].a = n->a4;
			lin.v4[lin.n4].m = n->m4;
			lin.n4++;
		} else {
			lin.v6[lin.n6].hi = n->hi;
			lin.v6[lin.n6].lo = n->lo;
			lin.v6[lin.n6].mhi = n->mhi;
			lin.v6[lin.n6].mlo = n->mlo;
			lin.n6++;
		}
	}
	n4 = lin.n4;
	for (size_t i = 0; i < nlookups; i++) {
		bench_gen_addr(&addrs[i], nets, nentries);
		if (addrs[i].sa.sa_family == AF_INET6 &&
		    memcmp(addrs[i].sin6.sin6_addr.s6_addr, bench_mapped_prefix,
		           sizeof(bench_mapped_prefix)) == 0)
			mapped++;
	}

	/* Build (text -> table), best of reps; keep the last table. */
	for (unsigned long r = 0; r < reps; r++) {
		struct cidr_builder *b;
		double dt;
		cidr_free(t);
		t = NULL;
		t0 = bench_now();
		b = cidr_builder_new();
		if (b == NULL) {
			fprintf(stderr, "cidr_bench: out of memory\n");
			goto fail;
		}
		for (size_t i = 0; i < nentries; i++) {
			if (cidr_builder_add(b, texts[i], err, sizeof(err)) < 0) {
				fprintf(stderr, "cidr_bench: entry %zu: %s\n", i, err);
				cidr_builder_free(b);
				goto fail;
			}
		}
		t = cidr_builder_finish(b);
		dt = bench_now() - t0;
		if (t == NULL) {
			fprintf(stderr, "cidr_bench: cidr_builder_finish: out of memory\n");
			goto fail;
		}
		if (dt < build_best)
			build_best = dt;
	}
	if (cidr_count(t) != nentries) {
		fprintf(stderr, "cidr_bench: cidr_count %zu, want %lu\n", cidr_count(t), nentries);
		goto fail;
	}

	/* Correctness: the table and the linear scan agree on every address. */
	t0 = bench_now();
	for (long k = 0; k < nthreads; k++) {
		struct bench_verify *v = &ver[k];
		v->lin = &lin;
		v->t = t;
		v->addrs = addrs;
		v->from = nlookups * (size_t)k / (size_t)nthreads;
		v->to = nlookups * (size_t)(k + 1) / (size_t)nthreads;
		v->nsub = nsubset;
		v->bad = SIZE_MAX;
		if ((errno = pthread_create(&v->tid, NULL, bench_verify_run, v)) != 0) {
			perror("cidr_bench: pthread_create");
			for (long j = 0; j < k; j++)
				pthread_join(ver[j].tid, NULL);
			goto fail;
		}
	}
	for (long k = 0; k < nthreads; k++)
		pthread_join(ver[k].tid, NULL);
	for (long k = 0; k < nthreads; k++) {
		const struct bench_verify *v = &ver[k];
		if (v->bad != SIZE_MAX) {
			char buf[INET6_ADDRSTRLEN];
			bench_fmt_addr(&addrs[v->bad], buf, sizeof(buf));
			fprintf(stderr, "cidr_bench: MISMATCH lookup %zu %s (family %d): "
			        "want %d (linear) got %d (table)\n", v->bad, buf,
			        addrs[v->bad].sa.sa_family, v->want_bad, !v->want_bad);
			goto fail;
		}
		hits += v->hits;
		hits_sub += v->hits_sub;
	}
	printf("verify: %lu lookups, table == linear scan on all (%.1f s, %ld threads); "
	       "hits %.1f%% (linear subset %.1f%%)\n", nlookups, bench_now() - t0, nthreads,
	       100.0 * (double)hits / (double)nlookups,
	       100.0 * (double)hits_sub / (double)nsubset);

	for (unsigned long r = 0; r < reps; r++) {
		size_t h = 0;
		double dt;
		t0 = bench_now();
		for (size_t i = 0; i < nlookups; i++)
			h += cidr_lookup(t, &addrs[i].sa);
		dt = bench_now() - t0;
		if (dt < table_best)
			table_best = dt;
		table_hits = h;
	}
	for (int r = 0; r < 3; r++) {
		size_t h = 0;
		double dt;
		t0 = bench_now();
		for (size_t i = 0; i < nsubset; i++)
			h += bench_linear_find(&lin, &addrs[i].sa);
		dt = bench_now() - t0;
		if (dt < linear_best)
			linear_best = dt;
		linear_hits = h;
	}
	if (table_hits != hits || linear_hits != hits_sub) {
		fprintf(stderr, "cidr_bench: hit counts changed between runs\n");
		goto fail;
	}

	printf("entries: %lu (%zu IPv4 /8-/32, %zu IPv6 /32-/128), seed %lu; lookups: %lu "
	       "(%zu as IPv4-mapped IPv6)\n", nentries, n4, (size_t)nentries - n4, seed,
	       nlookups, mapped);
	printf("build:  %.2f ms for %lu cidr_builder_add + finish (best of %lu)\n",
	       build_best * 1e3, nentries, reps);
	printf("table:  %s lookups/s  (%lu lookups, best of %lu, %.1f ns/lookup)\n",
	       bench_commas((double)nlookups / table_best, b1, sizeof(b1)), nlookups, reps,
	       table_best * 1e9 / (double)nlookups);
	printf("linear: %s lookups/s  (%lu lookups, best of 3, %.1f us/lookup)\n",
	       bench_commas((double)nsubset / linear_best, b2, sizeof(b2)), nsubset,
	       linear_best * 1e6 / (double)nsubset);
	printf("ratio:  %.0fx\n", ((double)nlookups / table_best) /
	       ((double)nsubset / linear_best));
	rc = 0;
fail:
	cidr_free(t);
	free(ver);
	free(lin.v6);
	free(lin.v4);
	free(addrs);
	free(texts);
	free(nets);
	return rc;
}
