/* proto/crc32c — CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as used by
 * PROXY v2 (PP2_TYPE_CRC32C) and the spool records.
 *
 * Two implementations of the same function:
 *   - software: slicing-by-8 over eight 256-entry tables, byte-order independent (the
 *     8-byte words are assembled from bytes, so it is correct on any host);
 *   - x86-64 SSE4.2: the CRC32 instruction, chosen at run time when the CPU has it. Its
 *     result takes three cycles and the next step needs it, so one stream of words runs
 *     at a third of the instruction's throughput: a long buffer is taken CRC32C_LANE * 3
 *     octets at a time as three streams side by side (the middle and last from zero),
 *     joined by the linearity of the CRC: crc(a b c) = shift(shift(crc(a)) ^ crc0(b)) ^
 *     crc0(c), where shift(x) appends CRC32C_LANE zero octets to a register x — a linear
 *     map of 32 bits, four table lookups (crc32c_shift, built once from the instruction).
 * Both take and return the finalised CRC, so crc32c(crc32c(0, a, n), b, m) is the CRC
 * of a followed by b. The tables are built once, on first use (pthread_once). */
#include "proto/crc32c.h"

#include <pthread.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define CRC32C_HAVE_SSE42 1
#include <nmmintrin.h>
#else
#define CRC32C_HAVE_SSE42 0
#endif

#define CRC32C_POLY 0x82F63B78u

static uint32_t crc32c_table[8][256];
static pthread_once_t crc32c_once = PTHREAD_ONCE_INIT;

static void crc32c_init_tables(void)
{
	for (uint32_t n = 0; n < 256; n++) {
		uint32_t c = n;
		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (CRC32C_POLY & (0u - (c & 1u)));
		crc32c_table[0][n] = c;
	}
	/* table[k][n]: the CRC of byte n followed by k zero bytes. */
	for (uint32_t n = 0; n < 256; n++) {
		uint32_t c = crc32c_table[0][n];
		for (int k = 1; k < 8; k++) {
			c = (c >> 8) ^ crc32c_table[0][c & 0xff];
			crc32c_table[k][n] = c;
		}
	}
}

static inline uint32_t crc32c_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static uint32_t crc32c_soft(uint32_t crc, const void *buf, size_t n)
{
	const uint8_t *p = buf;
	uint32_t (*t)[256] = crc32c_table;

	pthread_once(&crc32c_once, crc32c_init_tables);
	crc = ~crc;
	while (n >= 8) {
		uint32_t lo = crc ^ crc32c_le32(p);
		uint32_t hi = crc32c_le32(p + 4);
		crc = t[7][lo & 0xff] ^ t[6][(lo >> 8) & 0xff] ^ t[5][(lo >> 16) & 0xff] ^
		      t[4][lo >> 24] ^ t[3][hi & 0xff] ^ t[2][(hi >> 8) & 0xff] ^
		      t[1][(hi >> 16) & 0xff] ^ t[0][hi >> 24];
		p += 8;
		n -= 8;
	}
	while (n--)
		crc = (crc >> 8) ^ t[0][(crc ^ *p++) & 0xff];
	return ~crc;
}

#if CRC32C_HAVE_SSE42
#define CRC32C_LANE 2048u                 /* octets per stream of a three-stream step */

static uint32_t crc32c_shift_tab[4][256];
static pthread_once_t crc32c_shift_once = PTHREAD_ONCE_INIT;

/* x (a raw register) followed by CRC32C_LANE zero octets. */
__attribute__((target("sse4.2")))
static uint32_t crc32c_zeros(uint32_t x)
{
	uint64_t c = x;
	for (unsigned i = 0; i < CRC32C_LANE / 8; i++)
		c = _mm_crc32_u64(c, 0);
	return (uint32_t)c;
}

__attribute__((target("sse4.2")))
static void crc32c_shift_init(void)
{
	uint32_t basis[32];
	for (unsigned b = 0; b < 32; b++)
		basis[b] = crc32c_zeros(1u << b);
	for (unsigned k = 0; k < 4; k++)
		for (unsigned v = 0; v < 256; v++) {
			uint32_t r = 0;
			for (unsigned b = 0; b < 8; b++)
				if (v >> b & 1u)
					r ^= basis[8 * k + b];
			crc32c_shift_tab[k][v] = r;
		}
}

static inline uint32_t crc32c_shift(uint32_t x)
{
	return crc32c_shift_tab[0][x & 0xff] ^ crc32c_shift_tab[1][(x >> 8) & 0xff] ^
	       crc32c_shift_tab[2][(x >> 16) & 0xff] ^ crc32c_shift_tab[3][x >> 24];
}

__attribute__((target("sse4.2")))
static uint32_t crc32c_sse42(uint32_t crc, const void *buf, size_t n)
{
	const uint8_t *p = buf;
	uint64_t c = ~crc;

	/* Byte steps up to an 8-byte boundary, then whole words (memcpy: no aligned-load
	 * assumption for the compiler or UBSan), then the tail. */
	while (n && ((uintptr_t)p & 7)) {
		c = _mm_crc32_u8((uint32_t)c, *p++);
		n--;
	}
	if (n >= 3 * CRC32C_LANE)
		pthread_once(&crc32c_shift_once, crc32c_shift_init);
	while (n >= 3 * CRC32C_LANE) {
		uint64_t c1 = 0, c2 = 0;
		for (size_t i = 0; i < CRC32C_LANE; i += 8) {
			uint64_t w0, w1, w2;
			memcpy(&w0, p + i, 8);
			memcpy(&w1, p + CRC32C_LANE + i, 8);
			memcpy(&w2, p + 2 * CRC32C_LANE + i, 8);
			c = _mm_crc32_u64(c, w0);
			c1 = _mm_crc32_u64(c1, w1);
			c2 = _mm_crc32_u64(c2, w2);
		}
		c = crc32c_shift(crc32c_shift((uint32_t)c) ^ (uint32_t)c1) ^ (uint32_t)c2;
		p += 3 * CRC32C_LANE;
		n -= 3 * CRC32C_LANE;
	}
	while (n >= 8) {
		uint64_t w;
		memcpy(&w, p, 8);
		c = _mm_crc32_u64(c, w);
		p += 8;
		n -= 8;
	}
	while (n--)
		c = _mm_crc32_u8((uint32_t)c, *p++);
	return ~(uint32_t)c;
}
#endif

uint32_t crc32c(uint32_t crc, const void *p, size_t n)
{
#if CRC32C_HAVE_SSE42
	if (__builtin_cpu_supports("sse4.2"))
		return crc32c_sse42(crc, p, n);
#endif
	return crc32c_soft(crc, p, n);
}

#ifdef RR_TEST_BUILD
/* Test hooks (test build only, declared by test/proto/crc32c_test.c): run each
 * implementation directly so the tests can prove they agree. crc32c_hw_available()
 * says whether crc32c_hw() may be called on this machine. */
uint32_t crc32c_sw(uint32_t crc, const void *p, size_t n);
uint32_t crc32c_hw(uint32_t crc, const void *p, size_t n);
int crc32c_hw_available(void);

uint32_t crc32c_sw(uint32_t crc, const void *p, size_t n)
{
	return crc32c_soft(crc, p, n);
}

int crc32c_hw_available(void)
{
#if CRC32C_HAVE_SSE42
	return __builtin_cpu_supports("sse4.2") != 0;
#else
	return 0;
#endif
}

uint32_t crc32c_hw(uint32_t crc, const void *p, size_t n)
{
#if CRC32C_HAVE_SSE42
	if (crc32c_hw_available())
		return crc32c_sse42(crc, p, n);
#endif
	return crc32c_soft(crc, p, n);
}
#endif
