/* test/fuzz/fuzz_util.h — what the libFuzzer harnesses share: the check that aborts
 * (libFuzzer then saves the input), a cursor that draws decisions from input bytes, an
 * exact-size heap copy so that ASan sees any read past the end of a view, a hash and a
 * generator for decisions that must repeat exactly, and the FZ_KNOWN switch. */
#ifndef TEST_FUZZ_FUZZ_UTIL_H
#define TEST_FUZZ_FUZZ_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test/fuzz/fuzz_check.h"

/* Decisions drawn from the input: zeros once it is used up. */
struct fz_cur {
	const uint8_t *p;
	size_t n, i;
};

static inline uint8_t fz_byte(struct fz_cur *c)
{
	return c->i < c->n ? c->p[c->i++] : 0;
}

static inline void fz_bytes(struct fz_cur *c, uint8_t *out, size_t n)
{
	for (size_t k = 0; k < n; k++)
		out[k] = fz_byte(c);
}

/* A fresh heap buffer of exactly n octets (at least 1 allocated) holding p[0..n). */
static inline uint8_t *fz_dup(const void *p, size_t n)
{
	uint8_t *b = malloc(n ? n : 1);

	FZ_CHECK(b != NULL);
	if (n)
		memcpy(b, p, n);
	return b;
}

/* Known findings, not fixed yet, that a harness can be told to tolerate so that fuzzing
 * goes on past them: FZ_KNOWN=name,name in the environment (`FZ_KNOWN=a,b make fuzz
 * ...`). Without it every check is strict. */
static inline bool fz_known(const char *name)
{
	const char *k = getenv("FZ_KNOWN");
	size_t n = strlen(name);

	while (k && *k) {
		size_t l = strcspn(k, ",");
		if (l == n && memcmp(k, name, n) == 0)
			return true;
		k += l + (k[l] == ',');
	}
	return false;
}

/* A small deterministic generator (LCG), for split points and the like that must be
 * the same on every run of an input: returns 24 bits. */
static inline uint32_t fz_next(uint32_t *state)
{
	*state = *state * 1103515245u + 12345u;
	return *state >> 8;
}

/* FNV-1a, for decisions that must depend on content only. */
static inline uint32_t fz_hash(const void *p, size_t n, uint32_t seed)
{
	const uint8_t *b = p;
	uint32_t h = 2166136261u ^ seed;

	for (size_t k = 0; k < n; k++)
		h = (h ^ b[k]) * 16777619u;
	return h;
}

#endif
