/* bench/sink_fail — see sink_fail.h.
 *
 * Decisions where the brief is silent:
 * - Kinds are lower case and exact; no spaces anywhere (a shell-quoting slip should be an
 *   error, not a silently different run).
 * - "0%" is allowed (the kind is then never chosen); so is "delay=0ms@5%".
 * - Errors are checked in this order within a share: syntax, the "%", decimals, range.
 * - The chooser draws a uniform number below SINK_FAIL_SCALE (multiply-shift of the top
 *   32 bits: bias under 1/4000 of a millionth) and walks the shares in the order defer,
 *   reject, drop, delay. */
#include "bench/sink_fail.h"

#include <stdio.h>
#include <string.h>

static const char *const kind_names[SINK_FAIL_NKINDS] = {
	[SINK_FAIL_NONE] = "none",
	[SINK_FAIL_DEFER] = "defer",
	[SINK_FAIL_REJECT] = "reject",
	[SINK_FAIL_DROP] = "drop",
	[SINK_FAIL_DELAY] = "delay",
};

const char *sink_fail_kind_name(enum sink_fail_kind k)
{
	return (unsigned)k < SINK_FAIL_NKINDS ? kind_names[k] : "?";
}

const char *sink_fail_strerror(enum sink_fail_err e)
{
	switch (e) {
	case SINK_FAIL_E_NONE:
		return "no error";
	case SINK_FAIL_E_EMPTY:
		return "empty spec (want e.g. defer=5%,reject=1%,drop=1%,delay=200ms@2%)";
	case SINK_FAIL_E_ITEM_EMPTY:
		return "empty item";
	case SINK_FAIL_E_KIND:
		return "unknown kind (want defer, reject, drop or delay)";
	case SINK_FAIL_E_EQUALS:
		return "missing \"=\" after the kind";
	case SINK_FAIL_E_DUP:
		return "kind given twice";
	case SINK_FAIL_E_SHARE:
		return "bad share (want a percentage like 5% or 0.5%)";
	case SINK_FAIL_E_SHARE_SIGN:
		return "share without % (write e.g. 5%)";
	case SINK_FAIL_E_SHARE_DECIMALS:
		return "share with more than 4 decimals";
	case SINK_FAIL_E_SHARE_RANGE:
		return "share over 100%";
	case SINK_FAIL_E_DELAY_AT:
		return "delay wants TIME@SHARE (e.g. delay=200ms@2%)";
	case SINK_FAIL_E_DELAY_TIME:
		return "bad delay time (want e.g. 200ms or 2s)";
	case SINK_FAIL_E_DELAY_RANGE:
		return "delay time over 3600s";
	case SINK_FAIL_E_SUM:
		return "shares add up to more than 100%";
	}
	return "unknown error";
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* SHARE in p[0..n): digits ["." digits] "%". */
static enum sink_fail_err parse_share(const char *p, size_t n, uint32_t *out)
{
	uint64_t ip = 0, frac = 0;
	size_t i = 0, ndec = 0;

	while (i < n && is_digit(p[i])) {
		if (ip <= 1000)                         /* saturate: anything over 100 is range */
			ip = ip * 10 + (uint64_t)(p[i] - '0');
		i++;
	}
	if (i == 0)
		return SINK_FAIL_E_SHARE;
	if (i < n && p[i] == '.') {
		size_t st = ++i;

		while (i < n && is_digit(p[i])) {
			if (ndec < 4)
				frac = frac * 10 + (uint64_t)(p[i] - '0');
			ndec++;
			i++;
		}
		if (i == st)
			return SINK_FAIL_E_SHARE;
	}
	if (i == n)
		return SINK_FAIL_E_SHARE_SIGN;
	if (p[i] != '%' || i + 1 != n)
		return SINK_FAIL_E_SHARE;
	if (ndec > 4)
		return SINK_FAIL_E_SHARE_DECIMALS;
	for (size_t k = ndec; k < 4; k++)
		frac *= 10;
	uint64_t v = ip * 10000u + frac;
	if (v > SINK_FAIL_SCALE)
		return SINK_FAIL_E_SHARE_RANGE;
	*out = (uint32_t)v;
	return SINK_FAIL_E_NONE;
}

/* TIME in p[0..n): digits then "ms" or "s". */
static enum sink_fail_err parse_time(const char *p, size_t n, uint32_t *out)
{
	uint64_t v = 0;
	size_t i = 0;

	while (i < n && is_digit(p[i])) {
		if (v <= SINK_FAIL_DELAY_MAX_MS)        /* saturate */
			v = v * 10 + (uint64_t)(p[i] - '0');
		i++;
	}
	if (i == 0)
		return SINK_FAIL_E_DELAY_TIME;
	bool ms = n - i == 2 && p[i] == 'm' && p[i + 1] == 's';
	bool s = n - i == 1 && p[i] == 's';
	if (!ms && !s)
		return SINK_FAIL_E_DELAY_TIME;
	if (s)
		v *= 1000u;
	if (v > SINK_FAIL_DELAY_MAX_MS)
		return SINK_FAIL_E_DELAY_RANGE;
	*out = (uint32_t)v;
	return SINK_FAIL_E_NONE;
}

/* One ITEM in p[0..n) into *f; seen[] tracks the kinds given so far. */
static enum sink_fail_err parse_item(const char *p, size_t n, struct sink_fail *f,
                                     bool seen[SINK_FAIL_NKINDS])
{
	const char *eq = memchr(p, '=', n);
	size_t klen = eq ? (size_t)(eq - p) : n;
	enum sink_fail_kind kind = SINK_FAIL_NONE;

	if (n == 0)
		return SINK_FAIL_E_ITEM_EMPTY;
	for (unsigned k = SINK_FAIL_DEFER; k < SINK_FAIL_NKINDS; k++)
		if (strlen(kind_names[k]) == klen && memcmp(p, kind_names[k], klen) == 0)
			kind = (enum sink_fail_kind)k;
	if (kind == SINK_FAIL_NONE)
		return SINK_FAIL_E_KIND;
	if (!eq)
		return SINK_FAIL_E_EQUALS;
	if (seen[kind])
		return SINK_FAIL_E_DUP;
	seen[kind] = true;

	const char *v = eq + 1;
	size_t vlen = n - klen - 1;
	if (kind != SINK_FAIL_DELAY)
		return parse_share(v, vlen, &f->share[kind]);

	const char *at = memchr(v, '@', vlen);
	if (!at)
		return SINK_FAIL_E_DELAY_AT;
	enum sink_fail_err e = parse_time(v, (size_t)(at - v), &f->delay_ms);
	if (e != SINK_FAIL_E_NONE)
		return e;
	return parse_share(at + 1, vlen - (size_t)(at - v) - 1, &f->share[kind]);
}

int sink_fail_parse(const char *spec, struct sink_fail *f, enum sink_fail_err *err,
                    size_t *at)
{
	struct sink_fail got;
	bool seen[SINK_FAIL_NKINDS] = { false };
	size_t len = strlen(spec), off = 0;
	uint64_t sum = 0;

	memset(&got, 0, sizeof got);
	*at = 0;
	if (len == 0) {
		*err = SINK_FAIL_E_EMPTY;
		return -1;
	}
	for (;;) {
		const char *comma = memchr(spec + off, ',', len - off);
		size_t n = comma ? (size_t)(comma - (spec + off)) : len - off;
		enum sink_fail_err e = parse_item(spec + off, n, &got, seen);

		if (e != SINK_FAIL_E_NONE) {
			*err = e;
			*at = off;
			return -1;
		}
		if (!comma)
			break;
		off += n + 1;
	}
	for (unsigned k = SINK_FAIL_DEFER; k < SINK_FAIL_NKINDS; k++)
		sum += got.share[k];
	if (sum > SINK_FAIL_SCALE) {
		*err = SINK_FAIL_E_SUM;
		return -1;
	}
	got.share[SINK_FAIL_NONE] = (uint32_t)(SINK_FAIL_SCALE - sum);
	*f = got;
	*err = SINK_FAIL_E_NONE;
	return 0;
}

void sink_fail_explain(char *buf, size_t cap, const char *spec, enum sink_fail_err err,
                       size_t at)
{
	size_t len = strlen(spec);
	const char *item;
	const char *comma;

	if (cap == 0)
		return;
	switch (err) {
	case SINK_FAIL_E_NONE:
	case SINK_FAIL_E_EMPTY:
	case SINK_FAIL_E_SUM:
		snprintf(buf, cap, "%s", sink_fail_strerror(err));
		return;
	case SINK_FAIL_E_ITEM_EMPTY:
		snprintf(buf, cap, "%s at offset %zu", sink_fail_strerror(err), at);
		return;
	default:
		break;
	}
	if (at > len)
		at = len;
	item = spec + at;
	comma = memchr(item, ',', len - at);
	snprintf(buf, cap, "\"%.*s\": %s", (int)(comma ? (size_t)(comma - item) : len - at), item,
	         sink_fail_strerror(err));
}

bool sink_fail_any(const struct sink_fail *f)
{
	return f->share[SINK_FAIL_NONE] < SINK_FAIL_SCALE;
}

static uint64_t splitmix64(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15u);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
	return z ^ (z >> 31);
}

void sink_fail_seed(struct sink_fail_rng *r, uint64_t seed, unsigned stream)
{
	uint64_t s = seed ^ ((uint64_t)stream * 0xd1b54a32d192ed03u);

	r->s = splitmix64(&s);                  /* decorrelate nearby seeds and streams */
}

enum sink_fail_kind sink_fail_choose(const struct sink_fail *f, struct sink_fail_rng *r)
{
	uint64_t u = ((splitmix64(&r->s) >> 32) * SINK_FAIL_SCALE) >> 32;  /* [0, SCALE) */
	uint64_t edge = 0;

	for (unsigned k = SINK_FAIL_DEFER; k < SINK_FAIL_NKINDS; k++) {
		edge += f->share[k];
		if (u < edge)
			return (enum sink_fail_kind)k;
	}
	return SINK_FAIL_NONE;
}
