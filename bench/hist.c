/* bench/hist — see hist.h. */
#include "bench/hist.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define HIST_SUB_BITS 7                       /* 128 buckets per power of two */
#define HIST_SUB (1u << HIST_SUB_BITS)
#define HIST_LIN_BITS 10                      /* linear below 2^10 ns */
#define HIST_TOP_BITS 37                      /* 2^37 ns > HIST_MAX_NS */
#define HIST_NBUCKETS (HIST_SUB * (1 + HIST_TOP_BITS - HIST_LIN_BITS))

struct hist {
	uint64_t count, clamped, min, max;
	uint64_t sum;                             /* ns; 584 years before it wraps */
	uint64_t b[HIST_NBUCKETS];
};

_Static_assert(HIST_MAX_NS < (1ull << HIST_TOP_BITS), "top bucket range");

static unsigned hist_index(uint64_t v)
{
	if (v < (1u << HIST_LIN_BITS))
		return (unsigned)(v >> (HIST_LIN_BITS - HIST_SUB_BITS));
	unsigned k = 63u - (unsigned)__builtin_clzll(v);           /* HIST_LIN_BITS .. 36 */
	unsigned sub = (unsigned)(v >> (k - HIST_SUB_BITS)) & (HIST_SUB - 1);
	return HIST_SUB * (1 + k - HIST_LIN_BITS) + sub;
}

/* The largest value that lands in bucket i. */
static uint64_t hist_upper(unsigned i)
{
	if (i < HIST_SUB)
		return ((uint64_t)(i + 1) << (HIST_LIN_BITS - HIST_SUB_BITS)) - 1;
	unsigned k = i / HIST_SUB - 1 + HIST_LIN_BITS;
	uint64_t sub = i % HIST_SUB;
	uint64_t width = 1ull << (k - HIST_SUB_BITS);
	return ((HIST_SUB + sub) << (k - HIST_SUB_BITS)) + width - 1;
}

struct hist *hist_new(void)
{
	struct hist *h = malloc(sizeof *h);
	if (h)
		hist_reset(h);
	return h;
}

void hist_free(struct hist *h)
{
	free(h);
}

void hist_reset(struct hist *h)
{
	memset(h, 0, sizeof *h);
}

void hist_record(struct hist *h, uint64_t ns)
{
	if (ns > HIST_MAX_NS) {
		ns = HIST_MAX_NS;
		h->clamped++;
	}
	h->b[hist_index(ns)]++;
	if (h->count == 0 || ns < h->min)
		h->min = ns;
	if (ns > h->max)
		h->max = ns;
	h->count++;
	h->sum += ns;
}

void hist_merge(struct hist *dst, const struct hist *src)
{
	if (src->count == 0)
		return;
	for (unsigned i = 0; i < HIST_NBUCKETS; i++)
		dst->b[i] += src->b[i];
	if (dst->count == 0 || src->min < dst->min)
		dst->min = src->min;
	if (src->max > dst->max)
		dst->max = src->max;
	dst->count += src->count;
	dst->clamped += src->clamped;
	dst->sum += src->sum;
}

uint64_t hist_percentile(const struct hist *h, double p)
{
	if (h->count == 0)
		return 0;
	if (!(p > 0))                 /* also NaN */
		p = 0;
	if (p > 100)
		p = 100;
	uint64_t rank = (uint64_t)ceil(p / 100.0 * (double)h->count);
	if (rank < 1)
		rank = 1;
	if (rank > h->count)
		rank = h->count;
	uint64_t seen = 0;
	for (unsigned i = 0; i < HIST_NBUCKETS; i++) {
		seen += h->b[i];
		if (seen >= rank) {
			uint64_t up = hist_upper(i);
			return up < h->max ? up : h->max;
		}
	}
	return h->max;                /* not reached: the buckets sum to count */
}

uint64_t hist_count(const struct hist *h) { return h->count; }
uint64_t hist_clamped(const struct hist *h) { return h->clamped; }
uint64_t hist_min(const struct hist *h) { return h->min; }
uint64_t hist_max(const struct hist *h) { return h->max; }

double hist_mean(const struct hist *h)
{
	return h->count ? (double)h->sum / (double)h->count : 0.0;
}
