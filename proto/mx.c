/* proto/mx — see mx.h. */
#include "proto/mx.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const mx_name_errs[] = {
	[MX_NAME_OK] = "ok",
	[MX_NAME_EMPTY] = "empty domain",
	[MX_NAME_TOO_LONG] = "domain longer than 253 octets",
	[MX_NAME_LABEL_EMPTY] = "empty label in domain",
	[MX_NAME_LABEL_TOO_LONG] = "label longer than 63 octets in domain",
	[MX_NAME_BAD_CHAR] = "bad character in domain",
};

const char *mx_name_strerror(enum mx_name_err e)
{
	if ((unsigned)e >= sizeof mx_name_errs / sizeof mx_name_errs[0])
		return "unknown domain error";
	return mx_name_errs[e];
}

static int mx_ldh(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '_';
}

enum mx_name_err mx_name_norm(const char *in, size_t len, char out[MX_NAME_MAX + 1])
{
	if (len > 0 && in[len - 1] == '.')
		len--;                          /* the root: "example.com." is "example.com" */
	if (len == 0)
		return MX_NAME_EMPTY;
	if (len > MX_NAME_MAX)
		return MX_NAME_TOO_LONG;
	size_t label = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];
		if (c == '.') {
			if (label == 0)
				return MX_NAME_LABEL_EMPTY;
			label = 0;
			continue;
		}
		if (!mx_ldh(c))
			return MX_NAME_BAD_CHAR;  /* NUL, space, '@', '[', '\\', UTF-8, ... */
		if (++label > MX_LABEL_MAX)
			return MX_NAME_LABEL_TOO_LONG;
	}
	if (label == 0)
		return MX_NAME_LABEL_EMPTY;    /* "example.com.." */
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];
		out[i] = (char)(c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c);
	}
	out[len] = '\0';
	return MX_NAME_OK;
}

uint64_t mx_rand(uint64_t *state)
{
	uint64_t x = *state;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*state = x;
	return x * 0x2545F4914F6CDD1Dull;
}

static int mx_rank_cmp(const void *a, const void *b)
{
	const struct mx_rank *x = a, *y = b;
	if (x->pref != y->pref)
		return x->pref < y->pref ? -1 : 1;
	if (x->key != y->key)
		return x->key < y->key ? -1 : 1;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

void mx_order(struct mx_rank *v, size_t n, uint64_t *rng)
{
	/* A random key per record, then one sort on (preference, key): each run of equal
	 * preference comes out in a uniformly random order (up to key collisions, 2^-32). */
	if (n < 2)
		return;
	for (size_t i = 0; i < n; i++)
		v[i].key = (uint32_t)(mx_rand(rng) >> 32);
	qsort(v, n, sizeof *v, mx_rank_cmp);
}

static int mx_name_cmp(const void *a, const void *b)
{
	return strcasecmp(*(const char *const *)a, *(const char *const *)b);
}

int mx_site_key(char *out, size_t cap, const char **names, size_t n)
{
	size_t len = 0;
	if (cap == 0)
		return -1;
	out[0] = '\0';
	if (n > 1)
		qsort(names, n, sizeof *names, mx_name_cmp);
	for (size_t i = 0; i < n; i++) {
		if (i > 0 && strcasecmp(names[i], names[i - 1]) == 0)
			continue;                   /* deduplicated */
		size_t k = strlen(names[i]);
		if (len + (len > 0) + k + 1 > cap)
			break;                      /* this one and those after it do not fit */
		if (len > 0)
			out[len++] = ',';
		for (size_t j = 0; j < k; j++) {
			unsigned char c = (unsigned char)names[i][j];
			out[len++] = (char)(c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c);
		}
		out[len] = '\0';
	}
	return (int)len;
}
