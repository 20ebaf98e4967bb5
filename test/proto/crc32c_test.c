/* test/proto/crc32c_test — CRC-32C: published vectors, incremental use at every split,
 * unaligned input, and the software and SSE4.2 paths agreeing with a bitwise reference. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/crc32c.h"

/* Test hooks compiled into proto/crc32c.c under RR_TEST_BUILD. */
uint32_t crc32c_sw(uint32_t crc, const void *p, size_t n);
uint32_t crc32c_hw(uint32_t crc, const void *p, size_t n);
int crc32c_hw_available(void);

/* Bit-at-a-time reference, straight from the definition. */
static uint32_t ref_crc32c(uint32_t crc, const uint8_t *p, size_t n)
{
	crc = ~crc;
	while (n--) {
		crc ^= *p++;
		for (int k = 0; k < 8; k++)
			crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1u)));
	}
	return ~crc;
}

static void fill_random(uint8_t *p, size_t n, uint32_t seed)
{
	uint32_t x = seed ? seed : 1;
	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		p[i] = (uint8_t)x;
	}
}

enum vec_fill { FILL_STR, FILL_BYTE, FILL_ASC, FILL_DESC };

struct vec_case {
	const char *name;
	enum vec_fill fill;
	const char *str;
	uint8_t byte;
	size_t len;
	uint32_t want_crc;
};

/* "123456789" is the catalogue check value; the 32-octet ones are RFC 3720 B.4. */
static const struct vec_case vec_cases[] = {
	{ "empty",          FILL_STR,  "",          0,    0,  0x00000000u },
	{ "check 123456789", FILL_STR, "123456789", 0,    9,  0xE3069283u },
	{ "32 zeros",       FILL_BYTE, NULL,        0x00, 32, 0x8A9136AAu },
	{ "32 0xff",        FILL_BYTE, NULL,        0xff, 32, 0x62A8AB43u },
	{ "32 ascending",   FILL_ASC,  NULL,        0,    32, 0x46DD794Eu },
	{ "32 descending",  FILL_DESC, NULL,        0,    32, 0x113FDB5Cu },
};

static void vec_build(const struct vec_case *c, uint8_t *buf)
{
	for (size_t i = 0; i < c->len; i++) {
		switch (c->fill) {
		case FILL_STR:  buf[i] = (uint8_t)c->str[i]; break;
		case FILL_BYTE: buf[i] = c->byte; break;
		case FILL_ASC:  buf[i] = (uint8_t)i; break;
		case FILL_DESC: buf[i] = (uint8_t)(c->len - 1 - i); break;
		}
	}
}

Test(crc32c, vectors)
{
	for (size_t i = 0; i < sizeof vec_cases / sizeof vec_cases[0]; i++) {
		const struct vec_case *c = &vec_cases[i];
		uint8_t buf[64];
		vec_build(c, buf);

		uint32_t got_crc = crc32c(0, buf, c->len);
		cr_assert_eq(got_crc, c->want_crc, "%s: got 0x%08X want 0x%08X", c->name,
		             got_crc, c->want_crc);
		cr_assert_eq(crc32c_sw(0, buf, c->len), c->want_crc, "%s (software)", c->name);
		cr_assert_eq(ref_crc32c(0, buf, c->len), c->want_crc, "%s (reference)", c->name);
		if (crc32c_hw_available())
			cr_assert_eq(crc32c_hw(0, buf, c->len), c->want_crc, "%s (sse4.2)", c->name);
	}
}

Test(crc32c, incremental_split_at_every_offset)
{
	for (size_t i = 0; i < sizeof vec_cases / sizeof vec_cases[0]; i++) {
		const struct vec_case *c = &vec_cases[i];
		uint8_t buf[64];
		vec_build(c, buf);
		for (size_t s = 0; s <= c->len; s++) {
			uint32_t got_crc = crc32c(crc32c(0, buf, s), buf + s, c->len - s);
			cr_assert_eq(got_crc, c->want_crc, "%s split at %zu", c->name, s);
		}
	}

	/* A longer buffer: every two-way split, and three-way splits around the 8-octet
	 * word boundaries of both implementations. */
	enum { N = 1031 };
	uint8_t *buf = malloc(N);
	cr_assert_not_null(buf);
	fill_random(buf, N, 0x1234567u);
	uint32_t want_crc = ref_crc32c(0, buf, N);
	cr_assert_eq(crc32c(0, buf, N), want_crc);
	for (size_t s = 0; s <= N; s++) {
		uint32_t got_crc = crc32c(crc32c(0, buf, s), buf + s, N - s);
		cr_assert_eq(got_crc, want_crc, "split at %zu", s);
		cr_assert_eq(crc32c_sw(crc32c_sw(0, buf, s), buf + s, N - s), want_crc,
		             "software split at %zu", s);
	}
	for (size_t a = 0; a < 24; a++) {
		for (size_t b = a; b < a + 24; b++) {
			uint32_t got_crc = crc32c(0, buf, a);
			got_crc = crc32c(got_crc, buf + a, b - a);
			got_crc = crc32c(got_crc, buf + b, N - b);
			cr_assert_eq(got_crc, want_crc, "splits at %zu and %zu", a, b);
		}
	}
	free(buf);
}

/* Every length 0..300 at every alignment 0..15, on exactly-sized heap copies so ASan
 * catches an over-read: software, dispatching and SSE4.2 all equal the reference. */
Test(crc32c, paths_agree_at_every_length_and_alignment)
{
	enum { MAXLEN = 300, MAXALIGN = 16 };
	uint8_t src[MAXLEN + MAXALIGN];
	fill_random(src, sizeof src, 0xC0FFEEu);
	int hw = crc32c_hw_available();

	for (size_t align = 0; align < MAXALIGN; align++) {
		for (size_t len = 0; len <= MAXLEN; len++) {
			uint8_t *blk = malloc(align + len + 1);
			cr_assert_not_null(blk);
			/* The data ends exactly at the end of the allocation. */
			uint8_t *p = blk + 1 + align;
			memcpy(p, src + align, len);

			uint32_t want_crc = ref_crc32c(0, p, len);
			uint32_t got_sw = crc32c_sw(0, p, len);
			uint32_t got_crc = crc32c(0, p, len);
			cr_assert_eq(got_sw, want_crc, "software len %zu align %zu", len, align);
			cr_assert_eq(got_crc, want_crc, "dispatch len %zu align %zu", len, align);
			if (hw) {
				uint32_t got_hw = crc32c_hw(0, p, len);
				cr_assert_eq(got_hw, want_crc, "sse4.2 len %zu align %zu", len, align);
			}
			/* A non-zero starting value continues the same way on every path. */
			uint32_t seed = 0xDEADBEEFu;
			uint32_t want_cont = ref_crc32c(seed, p, len);
			cr_assert_eq(crc32c_sw(seed, p, len), want_cont);
			if (hw)
				cr_assert_eq(crc32c_hw(seed, p, len), want_cont);
			free(blk);
		}
	}
}

/* Lengths around the three-stream step of the SSE4.2 path (3 * 2048 octets) and its
 * multiples, at several alignments and starting values: every path equals the software
 * one (itself checked against the reference above). */
Test(crc32c, three_streams_join_right)
{
	enum { STEP = 3 * 2048, MAX = 3 * STEP + 40 };
	uint8_t *buf = malloc(MAX + 16);
	cr_assert_not_null(buf);
	fill_random(buf, MAX + 16, 7);
	static const size_t base[] = { STEP, 2 * STEP, 3 * STEP };
	for (size_t b = 0; b < sizeof base / sizeof base[0]; b++)
		for (size_t d = 0; d <= 40; d++)
			for (size_t align = 0; align < 16; align += 5) {
				size_t len = base[b] + d - 20;
				uint32_t seed = (uint32_t)(d * 0x9E3779B9u);
				uint32_t want = crc32c_sw(seed, buf + align, len);
				cr_assert_eq(crc32c(seed, buf + align, len), want, "len %zu align %zu",
				             len, align);
				if (crc32c_hw_available())
					cr_assert_eq(crc32c_hw(seed, buf + align, len), want,
					             "sse4.2 len %zu align %zu", len, align);
			}
	free(buf);
}

Test(crc32c, sse42_path_present_when_cpu_has_it)
{
	if (!crc32c_hw_available())
		cr_skip_test("CPU without SSE4.2: only the software path runs here");
	/* Larger than any table-driven chunk, to cover the long word loop. */
	enum { N = 1 << 16 };
	uint8_t *buf = malloc(N);
	cr_assert_not_null(buf);
	fill_random(buf, N, 42);
	uint32_t want_crc = crc32c_sw(0, buf, N);
	uint32_t got_crc = crc32c_hw(0, buf, N);
	cr_assert_eq(got_crc, want_crc);
	cr_assert_eq(crc32c(0, buf, N), want_crc);
	free(buf);
}
