/* cfg/cidr — immutable IPv4/IPv6 network table.
 *
 * The builder collects [first, last] address ranges. cidr_builder_finish() sorts them
 * and coalesces overlapping and adjacent ranges, so the finished table is two sorted
 * arrays of disjoint, non-touching ranges (one per family). A lookup is one binary
 * search: no lock, no allocation, nothing written, hence safe from any thread for as
 * long as the table lives (the RCU snapshot that owns it decides that).
 *
 * IPv4-mapped IPv6 (::ffff:0:0/96) lives in the IPv4 array only: a mapped address is
 * looked up as IPv4, and a configured IPv6 network covering part of ::ffff:0:0/96 is
 * entered in the IPv4 array as well (so "::/0" matches a mapped client, and
 * "::ffff:10.0.0.0/104" means 10.0.0.0/8). */
#include "cfg/cidr.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfg/textfile.h"

/* A haproxy_hosts file larger than this is a mistake (a million lines is ~16 MiB). */
#define CIDR_FILE_MAX (16u << 20)

typedef unsigned __int128 cidr_u128;

struct cidr_range4 {
	uint32_t first, last;
};

struct cidr_range6 {
	cidr_u128 first, last;
};

struct cidr_builder {
	struct cidr_range4 *v4;
	size_t n4, cap4;
	struct cidr_range6 *v6;
	size_t n6, cap6;
	size_t entries;         /* networks added, as configured */
};

struct cidr_table {
	struct cidr_range4 *v4;
	size_t n4;
	struct cidr_range6 *v6;
	size_t n6;
	size_t entries;
};

struct cidr_builder *cidr_builder_new(void)
{
	return calloc(1, sizeof(struct cidr_builder));
}

void cidr_builder_free(struct cidr_builder *b)
{
	if (b == NULL)
		return;
	free(b->v4);
	free(b->v6);
	free(b);
}

static int cidr_push4(struct cidr_builder *b, uint32_t first, uint32_t last)
{
	if (b->n4 == b->cap4) {
		size_t cap = b->cap4 ? b->cap4 * 2 : 16;
		struct cidr_range4 *p = realloc(b->v4, cap * sizeof(*p));
		if (p == NULL)
			return -1;
		b->v4 = p;
		b->cap4 = cap;
	}
	b->v4[b->n4].first = first;
	b->v4[b->n4].last = last;
	b->n4++;
	return 0;
}

static int cidr_push6(struct cidr_builder *b, cidr_u128 first, cidr_u128 last)
{
	if (b->n6 == b->cap6) {
		size_t cap = b->cap6 ? b->cap6 * 2 : 16;
		struct cidr_range6 *p = realloc(b->v6, cap * sizeof(*p));
		if (p == NULL)
			return -1;
		b->v6 = p;
		b->cap6 = cap;
	}
	b->v6[b->n6].first = first;
	b->v6[b->n6].last = last;
	b->n6++;
	return 0;
}

static cidr_u128 cidr_load6(const uint8_t a[16])
{
	cidr_u128 v = 0;
	for (int i = 0; i < 16; i++)
		v = (v << 8) | a[i];
	return v;
}

static uint32_t cidr_load4(const uint8_t a[4])
{
	return (uint32_t)a[0] << 24 | (uint32_t)a[1] << 16 | (uint32_t)a[2] << 8 | a[3];
}

/* ::ffff:0:0/96 as a 128-bit number: the mapped IPv4 space. */
#define CIDR_MAPPED_FIRST (((cidr_u128)0xffffU) << 32)
#define CIDR_MAPPED_LAST  (CIDR_MAPPED_FIRST | 0xffffffffU)

static bool cidr_is_mapped(const uint8_t a[16])
{
	static const uint8_t prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	return memcmp(a, prefix, sizeof(prefix)) == 0;
}

/* "invalid CIDR '10.0.0.0/33'", optionally followed by ": why". */
static void cidr_err(char *err, size_t errlen, const char *what, const char *text,
                     const char *why)
{
	if (err == NULL || errlen == 0)
		return;
	snprintf(err, errlen, "%s '%s'%s%s", what, text, why ? ": " : "", why ? why : "");
}

int cidr_builder_add(struct cidr_builder *b, const char *text, char *err, size_t errlen)
{
	char addr[INET6_ADDRSTRLEN + 8];
	const char *slash = strchr(text, '/');
	size_t alen = slash ? (size_t)(slash - text) : strlen(text);
	const char *what = slash ? "invalid CIDR" : "invalid address";
	uint8_t raw[16];
	unsigned plen, maxlen;
	int family;

	if (*text == '\0') {
		if (err != NULL && errlen > 0)
			snprintf(err, errlen, "empty address");
		return -1;
	}
	if (alen == 0 || alen >= sizeof(addr))
		goto bad;
	memcpy(addr, text, alen);
	addr[alen] = '\0';
	if (inet_pton(AF_INET, addr, raw) == 1) {
		family = AF_INET;
		maxlen = 32;
	} else if (inet_pton(AF_INET6, addr, raw) == 1) {
		family = AF_INET6;
		maxlen = 128;
	} else {
		goto bad;
	}

	plen = maxlen;
	if (slash != NULL) {
		const char *p = slash + 1;
		size_t nd = strspn(p, "0123456789");
		if (nd == 0 || nd > 3 || p[nd] != '\0')
			goto bad;
		plen = (unsigned)atoi(p);
		if (plen > maxlen)
			goto bad;
	}

	if (family == AF_INET) {
		uint32_t a = cidr_load4(raw);
		uint32_t hostmask = plen == 32 ? 0 : (UINT32_MAX >> plen);
		if (a & hostmask) {
			cidr_err(err, errlen, "invalid CIDR", text, "host bits set");
			return -1;
		}
		if (cidr_push4(b, a, a | hostmask) < 0)
			goto oom;
	} else {
		cidr_u128 a = cidr_load6(raw);
		cidr_u128 hostmask = plen == 128 ? 0 : (~(cidr_u128)0 >> plen);
		cidr_u128 first = a, last = a | hostmask;
		if (a & hostmask) {
			cidr_err(err, errlen, "invalid CIDR", text, "host bits set");
			return -1;
		}
		/* The part inside ::ffff:0:0/96 goes to the IPv4 array (see top). */
		if (first <= CIDR_MAPPED_LAST && last >= CIDR_MAPPED_FIRST) {
			cidr_u128 f = first > CIDR_MAPPED_FIRST ? first : CIDR_MAPPED_FIRST;
			cidr_u128 l = last < CIDR_MAPPED_LAST ? last : CIDR_MAPPED_LAST;
			if (cidr_push4(b, (uint32_t)f, (uint32_t)l) < 0)
				goto oom;
		}
		if (!(first >= CIDR_MAPPED_FIRST && last <= CIDR_MAPPED_LAST) &&
		    cidr_push6(b, first, last) < 0)
			goto oom;
	}
	b->entries++;
	return 0;
bad:
	cidr_err(err, errlen, what, text, NULL);
	return -1;
oom:
	cidr_err(err, errlen, "out of memory adding", text, NULL);
	return -1;
}

int cidr_builder_add_file(struct cidr_builder *b, const char *path, char *err, size_t errlen)
{
	char *buf, *line, *next;
	size_t len;
	unsigned lineno = 0;

	/* Never blocks (a FIFO is refused, not opened for a writer to come) and is bounded. */
	if (textfile_read(path, CIDR_FILE_MAX, &buf, &len, err, errlen) < 0)
		return -1;
	for (line = buf; line < buf + len; line = next) {
		char msg[256];
		char *nl = memchr(line, '\n', (size_t)(buf + len - line));
		char *p = line, *end = nl ? nl : buf + len;
		char *hash = memchr(line, '#', (size_t)(end - line));
		bool bad;

		next = nl ? nl + 1 : buf + len;
		lineno++;
		if (hash != NULL)
			end = hash;
		while (p < end && isspace((unsigned char)*p))
			p++;
		while (end > p && isspace((unsigned char)end[-1]))
			end--;
		if (p == end)
			continue;
		if (memchr(p, '\0', (size_t)(end - p)) != NULL) {
			snprintf(msg, sizeof(msg), "NUL byte in line");
			bad = true;
		} else {
			*end = '\0';              /* at most the line's '\n' (or the final NUL) */
			bad = cidr_builder_add(b, p, msg, sizeof(msg)) < 0;
		}
		if (bad) {
			if (err != NULL && errlen > 0)
				snprintf(err, errlen, "%s:%u:%zu: %s", path, lineno,
				         (size_t)(p - line) + 1, msg);
			free(buf);
			return -1;
		}
	}
	free(buf);
	return 0;
}

static int cidr_cmp4(const void *a, const void *b)
{
	const struct cidr_range4 *x = a, *y = b;
	if (x->first != y->first)
		return x->first < y->first ? -1 : 1;
	return (x->last > y->last) - (x->last < y->last);
}

static int cidr_cmp6(const void *a, const void *b)
{
	const struct cidr_range6 *x = a, *y = b;
	if (x->first != y->first)
		return x->first < y->first ? -1 : 1;
	return (x->last > y->last) - (x->last < y->last);
}

/* Sort, then coalesce in place: a range that overlaps or touches (first == last + 1)
 * the previous one extends it. Returns the new count. */
static size_t cidr_merge4(struct cidr_range4 *r, size_t n)
{
	size_t out = 0;
	if (n == 0)
		return 0;
	qsort(r, n, sizeof(*r), cidr_cmp4);
	for (size_t i = 1; i < n; i++) {
		struct cidr_range4 *cur = &r[out];
		if (cur->last == UINT32_MAX || r[i].first <= cur->last + 1) {
			if (r[i].last > cur->last)
				cur->last = r[i].last;
		} else {
			r[++out] = r[i];
		}
	}
	return out + 1;
}

static size_t cidr_merge6(struct cidr_range6 *r, size_t n)
{
	size_t out = 0;
	if (n == 0)
		return 0;
	qsort(r, n, sizeof(*r), cidr_cmp6);
	for (size_t i = 1; i < n; i++) {
		struct cidr_range6 *cur = &r[out];
		if (cur->last == ~(cidr_u128)0 || r[i].first <= cur->last + 1) {
			if (r[i].last > cur->last)
				cur->last = r[i].last;
		} else {
			r[++out] = r[i];
		}
	}
	return out + 1;
}

struct cidr_table *cidr_builder_finish(struct cidr_builder *b)
{
	struct cidr_table *t;
	struct cidr_range4 *v4 = NULL;
	struct cidr_range6 *v6 = NULL;
	size_t n4, n6;

	if (b == NULL)
		return NULL;
	t = calloc(1, sizeof(*t));
	if (t == NULL)
		goto fail;
	n4 = cidr_merge4(b->v4, b->n4);
	n6 = cidr_merge6(b->v6, b->n6);
	/* Exact-size copies; an empty family keeps a NULL array. */
	if (n4 > 0) {
		v4 = malloc(n4 * sizeof(*v4));
		if (v4 == NULL)
			goto fail;
		memcpy(v4, b->v4, n4 * sizeof(*v4));
	}
	if (n6 > 0) {
		v6 = malloc(n6 * sizeof(*v6));
		if (v6 == NULL)
			goto fail;
		memcpy(v6, b->v6, n6 * sizeof(*v6));
	}
	t->v4 = v4;
	t->n4 = n4;
	t->v6 = v6;
	t->n6 = n6;
	t->entries = b->entries;
	cidr_builder_free(b);
	return t;
fail:
	free(v4);
	free(t);
	cidr_builder_free(b);
	return NULL;
}

static bool cidr_find4(const struct cidr_table *t, uint32_t a)
{
	size_t lo = 0, hi = t->n4;
	/* Find the last range whose first <= a. */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (t->v4[mid].first <= a)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo > 0 && a <= t->v4[lo - 1].last;
}

static bool cidr_find6(const struct cidr_table *t, cidr_u128 a)
{
	size_t lo = 0, hi = t->n6;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (t->v6[mid].first <= a)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo > 0 && a <= t->v6[lo - 1].last;
}

bool cidr_lookup_raw(const struct cidr_table *t, int family, const void *addr)
{
	const uint8_t *a = addr;
	if (t == NULL || addr == NULL)
		return false;
	if (family == AF_INET)
		return cidr_find4(t, cidr_load4(a));
	if (family == AF_INET6) {
		if (cidr_is_mapped(a))
			return cidr_find4(t, cidr_load4(a + 12));
		return cidr_find6(t, cidr_load6(a));
	}
	return false;
}

bool cidr_lookup(const struct cidr_table *t, const struct sockaddr *sa)
{
	if (sa == NULL)
		return false;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)(const void *)sa;
		return cidr_lookup_raw(t, AF_INET, &sin->sin_addr);
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)(const void *)sa;
		return cidr_lookup_raw(t, AF_INET6, &sin6->sin6_addr);
	}
	return false;
}

size_t cidr_count(const struct cidr_table *t)
{
	return t ? t->entries : 0;
}

void cidr_free(struct cidr_table *t)
{
	if (t == NULL)
		return;
	free(t->v4);
	free(t->v6);
	free(t);
}
