/* test/fuzz/addr_fuzz — libFuzzer target for proto/smtp_addr (RFC 5321 paths as a
 * client sends them after MAIL FROM: / RCPT TO:).
 *
 * smtp_addr_parse_path() is the only entry point; each input is parsed with the four
 * flag combinations (0, NULL_OK, POSTMASTER_OK, both), from an exact-size heap copy so
 * ASan sees a read past len. Checked:
 *   - an error leaves *consumed 0 and *a zeroed, and has a string;
 *   - OK: the path is '<' ... '>' of 2..256 octets within len; mbox is what lies between
 *     the route (if any) and '>'; domain is the end of mbox after its '@' (or empty for
 *     "<>" and a bare "<postmaster>", each only with its flag), at most 255 octets,
 *     labels of 1..63 letters/digits/hyphens/UTF-8 not starting or ending with '-', or an
 *     address literal; the local part is a dot-string of atoms or a quoted string; no
 *     control octet anywhere; utf8 is set exactly when mbox has an octet >= 0x80;
 *   - the same parse repeated gives the same answer; adding a flag never turns OK into
 *     an error nor changes the result; the path ends at its '>': no shorter prefix is
 *     OK, and the input cut right after it gives the same result;
 *   - re-serialised, "<" mbox ">" parses to the same mailbox (RFC 5321: the mailbox of
 *     a path is itself a path once the route is dropped) with the same flags;
 *   - address literals against glibc's inet_pton (leading zeros in a dotted quad, which
 *     RFC 5321's Snum allows and glibc refuses, normalised first): the input used as the
 *     text of "[...]" and of "[IPv6:...]" is accepted exactly when inet_pton accepts it.
 */
#include <arpa/inet.h>
#include <strings.h>

#include "proto/smtp_addr.h"
#include "test/fuzz/fuzz_util.h"

static const unsigned fz_flags[4] = { 0, SMTP_ADDR_NULL_OK, SMTP_ADDR_POSTMASTER_OK,
                                      SMTP_ADDR_NULL_OK | SMTP_ADDR_POSTMASTER_OK };

struct fz_parse {
	enum smtp_addr_err e;
	struct smtp_addr a;
	size_t used;
};

static struct fz_parse fz_parse(const char *p, size_t n, unsigned flags)
{
	struct fz_parse r;

	memset(&r.a, 0xa5, sizeof r.a);            /* the parser must set every field */
	r.used = 12345;
	r.e = smtp_addr_parse_path(p, n, flags, &r.a, &r.used);
	return r;
}

/* Same answer; views compared as offsets from their bases. */
static void fz_same(const struct fz_parse *x, const char *xb, const struct fz_parse *y,
                    const char *yb)
{
	FZ_CHECK(x->e == y->e && x->used == y->used);
	FZ_CHECK(x->a.mbox_len == y->a.mbox_len && x->a.domain_len == y->a.domain_len);
	FZ_CHECK(x->a.utf8 == y->a.utf8);
	FZ_CHECK((x->a.mbox == NULL) == (y->a.mbox == NULL));
	if (x->a.mbox) {
		FZ_CHECK(x->a.mbox - xb == y->a.mbox - yb);
		FZ_CHECK(x->a.domain - xb == y->a.domain - yb);
	}
}

static bool fz_is_atext(uint8_t c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c != 0 && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

static bool fz_is_ld(uint8_t c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* The local part l[0..n): a dot-string or a quoted string. */
static void fz_check_local(const uint8_t *l, size_t n)
{
	FZ_CHECK(n >= 1);
	if (l[0] == '"') {
		FZ_CHECK(n >= 2 && l[n - 1] == '"');
		for (size_t i = 1; i < n - 1; i++) {
			if (l[i] == '\\') {
				i++;
				FZ_CHECK(i < n - 1 && l[i] >= 32 && l[i] <= 126);
			} else {
				FZ_CHECK(l[i] != '"');
				FZ_CHECK((l[i] >= 32 && l[i] <= 126) || l[i] >= 0x80);
			}
		}
		return;
	}
	FZ_CHECK(l[0] != '.' && l[n - 1] != '.');
	for (size_t i = 0; i < n; i++) {
		if (l[i] == '.')
			FZ_CHECK(l[i + 1] != '.');
		else
			FZ_CHECK(fz_is_atext(l[i]) || l[i] >= 0x80);
	}
}

/* A dotted quad of RFC 5321 Snum (1-3 digits, 0-255; leading zeros allowed). */
static bool fz_snum_quad(const uint8_t *p, size_t n)
{
	size_t i = 0;

	for (int part = 0; part < 4; part++) {
		unsigned v = 0, d = 0;
		if (part > 0) {
			if (i >= n || p[i] != '.')
				return false;
			i++;
		}
		while (i < n && p[i] >= '0' && p[i] <= '9' && d < 3) {
			v = v * 10 + (unsigned)(p[i++] - '0');
			d++;
		}
		if (d == 0 || v > 255)
			return false;
	}
	return i == n;
}

/* text for inet_pton: leading zeros of 2-3 digit dotted-quad parts dropped (in the part
 * after the last ':', or all of it when there is none). */
static void fz_strip_zeros(const uint8_t *p, size_t n, char *out)
{
	size_t start = 0, o = 0;

	for (size_t i = 0; i < n; i++)
		if (p[i] == ':')
			start = i + 1;
	memcpy(out, p, start);
	o = start;
	for (size_t i = start; i < n;) {
		size_t j = i;
		while (j < n && p[j] != '.')
			j++;
		size_t k = i;
		if (j - i <= 3)
			while (k + 1 < j && p[k] == '0')
				k++;
		memcpy(out + o, p + k, j - k);
		o += j - k;
		if (j < n)
			out[o++] = '.';
		i = j + 1;
	}
	out[o] = '\0';
}

/* The domain d[0..n) of an accepted mailbox. */
static void fz_check_domain(const uint8_t *d, size_t n)
{
	FZ_CHECK(n >= 1 && n <= SMTP_ADDR_DOMAIN_MAX);
	if (d[0] == '[') {
		FZ_CHECK(n >= 3 && d[n - 1] == ']');
		const uint8_t *t = d + 1;
		size_t tl = n - 2;
		char text[SMTP_ADDR_DOMAIN_MAX + 1];
		uint8_t ip[16];
		if (tl > 5 && strncasecmp((const char *)t, "IPv6:", 5) == 0) {
			fz_strip_zeros(t + 5, tl - 5, text);
			FZ_CHECK(inet_pton(AF_INET6, text, ip) == 1);
		} else {
			FZ_CHECK(fz_snum_quad(t, tl));
			fz_strip_zeros(t, tl, text);
			FZ_CHECK(inet_pton(AF_INET, text, ip) == 1);
		}
		return;
	}
	for (size_t i = 0; i < n;) {
		size_t j = i;
		while (j < n && d[j] != '.')
			j++;
		FZ_CHECK(j > i && j - i <= SMTP_ADDR_LABEL_MAX);
		FZ_CHECK(d[i] != '-' && d[j - 1] != '-');
		for (size_t k = i; k < j; k++)
			FZ_CHECK(fz_is_ld(d[k]) || d[k] == '-' || d[k] >= 0x80);
		FZ_CHECK(j + 1 != n);                   /* no trailing dot */
		i = j + 1;
	}
}

static void fz_check_ok(const char *p, size_t len, unsigned flags, const struct fz_parse *r)
{
	const struct smtp_addr *a = &r->a;
	const uint8_t *m = (const uint8_t *)a->mbox;

	FZ_CHECK(r->used >= 2 && r->used <= len && r->used <= SMTP_ADDR_PATH_MAX);
	FZ_CHECK(p[0] == '<' && p[r->used - 1] == '>');
	FZ_CHECK(a->mbox != NULL && a->mbox >= p + 1 && a->mbox + a->mbox_len == p + r->used - 1);
	FZ_CHECK(a->domain != NULL && a->domain + a->domain_len == a->mbox + a->mbox_len);
	FZ_CHECK(a->domain >= a->mbox && a->domain_len <= SMTP_ADDR_DOMAIN_MAX);
	bool hi = false;
	for (size_t i = 0; i < a->mbox_len; i++) {
		FZ_CHECK(m[i] >= 0x20 && m[i] != 0x7f);
		hi |= m[i] >= 0x80;
	}
	FZ_CHECK(a->utf8 == hi);
	if (a->mbox_len == 0) {                      /* "<>" */
		FZ_CHECK((flags & SMTP_ADDR_NULL_OK) && r->used == 2 && a->domain_len == 0);
		return;
	}
	if (a->domain_len == 0) {                    /* "<postmaster>" */
		FZ_CHECK(flags & SMTP_ADDR_POSTMASTER_OK);
		FZ_CHECK(a->mbox_len == 10 && strncasecmp(a->mbox, "postmaster", 10) == 0);
		FZ_CHECK(r->used == 12);
		return;
	}
	/* a route, if any, is "@" ... ":" before the mailbox */
	if (a->mbox > p + 1)
		FZ_CHECK(p[1] == '@' && a->mbox[-1] == ':');
	size_t ll = a->mbox_len - a->domain_len - 1;
	FZ_CHECK(a->domain >= a->mbox + 2 && a->domain[-1] == '@');
	fz_check_local(m, ll);
	fz_check_domain((const uint8_t *)a->domain, a->domain_len);
}

/* The input as the text of an address literal, IPv4 and IPv6, against inet_pton. */
static void fz_literal(const uint8_t *data, size_t size)
{
	char path[128], text[128];
	uint8_t ip[16];

	if (size == 0 || size > 64)
		return;
	for (size_t i = 0; i < size; i++)
		if (!strchr("0123456789abcdefABCDEF:.", data[i]) || data[i] == 0)
			return;
	fz_strip_zeros(data, size, text);
	for (int v6 = 0; v6 < 2; v6++) {
		int n = snprintf(path, sizeof path, "<u@[%s%.*s]>", v6 ? "IPv6:" : "", (int)size,
		                 (const char *)data);
		FZ_CHECK(n > 0 && (size_t)n < sizeof path);
		uint8_t *b = fz_dup(path, (size_t)n);
		struct fz_parse r = fz_parse((const char *)b, (size_t)n, 0);
		bool want = v6 ? inet_pton(AF_INET6, text, ip) == 1
		               : fz_snum_quad(data, size) && inet_pton(AF_INET, text, ip) == 1;
		if (want) {
			FZ_CHECK(r.e == SMTP_ADDR_OK && r.used == (size_t)n);
		} else {
			FZ_CHECK(r.e == SMTP_ADDR_E_LITERAL);
		}
		free(b);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data;        /* libFuzzer's copy is exact-size */
	struct fz_parse res[4];

	for (int f = 0; f < 4; f++) {
		unsigned flags = fz_flags[f];
		struct fz_parse r = fz_parse(p, size, flags);
		res[f] = r;
		FZ_CHECK(smtp_addr_strerror(r.e) != NULL);
		FZ_CHECK(strcmp(smtp_addr_strerror(r.e), "unknown error") != 0);
		struct fz_parse again = fz_parse(p, size, flags);
		fz_same(&r, p, &again, p);
		if (r.e != SMTP_ADDR_OK) {
			FZ_CHECK(r.used == 0);
			FZ_CHECK(r.a.mbox == NULL && r.a.domain == NULL && r.a.mbox_len == 0 &&
			         r.a.domain_len == 0 && !r.a.utf8);
			continue;
		}
		fz_check_ok(p, size, flags, &r);

		/* cut right after the path: the same; any shorter prefix: not OK */
		uint8_t *b = fz_dup(p, r.used);
		struct fz_parse cut = fz_parse((const char *)b, r.used, flags);
		fz_same(&cut, (const char *)b, &r, p);
		free(b);
		for (size_t k = 0; k < r.used; k++) {
			b = fz_dup(p, k);
			FZ_CHECK(fz_parse((const char *)b, k, flags).e != SMTP_ADDR_OK);
			free(b);
		}

		/* re-serialised: "<" mbox ">" is the same mailbox */
		size_t ml = r.a.mbox_len;
		b = malloc(ml + 2);
		FZ_CHECK(b != NULL);
		b[0] = '<';
		memcpy(b + 1, r.a.mbox, ml);
		b[ml + 1] = '>';
		struct fz_parse re = fz_parse((const char *)b, ml + 2, flags);
		FZ_CHECK(re.e == SMTP_ADDR_OK && re.used == ml + 2);
		FZ_CHECK(re.a.mbox == (const char *)b + 1 && re.a.mbox_len == ml);
		FZ_CHECK(re.a.domain_len == r.a.domain_len && re.a.utf8 == r.a.utf8);
		free(b);
	}
	/* more flags never refuse what fewer accepted, nor change it */
	for (int f = 0; f < 4; f++)
		for (int g = 0; g < 4; g++)
			if ((fz_flags[f] & ~fz_flags[g]) == 0 && res[f].e == SMTP_ADDR_OK)
				fz_same(&res[g], p, &res[f], p);
	fz_literal(data, size);
	return 0;
}
