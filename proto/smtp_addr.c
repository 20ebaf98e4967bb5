/* proto/smtp_addr — RFC 5321 Path parsing; see smtp_addr.h.
 *
 * Strict where RFC 5321 is (the grammar of local parts, domains and literals, the
 * 256-octet path limit), lenient where the real world is: no 64-octet local-part limit
 * (VERP return paths of bulk senders are longer), a source route is accepted and
 * dropped (RFC 5321 4.1.1.3 / C). Octets >= 0x80 are accepted only as well-formed UTF-8
 * (RFC 3629: no overlong forms, no surrogates); whether they are allowed at all
 * (SMTPUTF8) is the caller's decision, reported in smtp_addr.utf8.
 */
#include "proto/smtp_addr.h"

#include <string.h>
#include <strings.h>

struct addr_cur {
	const unsigned char *p;
	size_t len;
	size_t i;
	bool utf8;
};

const char *smtp_addr_strerror(enum smtp_addr_err e)
{
	switch (e) {
	case SMTP_ADDR_OK:        return "ok";
	case SMTP_ADDR_E_BRACKET: return "address not enclosed in <>";
	case SMTP_ADDR_E_NULL:    return "null address not allowed";
	case SMTP_ADDR_E_ROUTE:   return "malformed source route";
	case SMTP_ADDR_E_LOCAL:   return "malformed local part";
	case SMTP_ADDR_E_DOMAIN:  return "malformed domain";
	case SMTP_ADDR_E_LITERAL: return "malformed address literal";
	case SMTP_ADDR_E_UTF8:    return "malformed UTF-8";
	case SMTP_ADDR_E_LENGTH:  return "address too long";
	}
	return "unknown error";
}

static bool addr_is_alpha(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool addr_is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static bool addr_is_xdigit(unsigned char c)
{
	return addr_is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* RFC 5322 atext */
static bool addr_is_atext(unsigned char c)
{
	return addr_is_alpha(c) || addr_is_digit(c) ||
	       (c != 0 && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/* Length of the well-formed non-ASCII UTF-8 character at p (p[0] >= 0x80), or 0. */
static size_t addr_utf8_len(const unsigned char *p, size_t n)
{
	unsigned char c = p[0];
	unsigned char lo = 0x80, hi = 0xBF;
	size_t need;

	if (c >= 0xC2 && c <= 0xDF) {
		need = 2;
	} else if (c >= 0xE0 && c <= 0xEF) {
		need = 3;
		if (c == 0xE0)
			lo = 0xA0;          /* overlong */
		else if (c == 0xED)
			hi = 0x9F;          /* surrogates */
	} else if (c >= 0xF0 && c <= 0xF4) {
		need = 4;
		if (c == 0xF0)
			lo = 0x90;          /* overlong */
		else if (c == 0xF4)
			hi = 0x8F;          /* above U+10FFFF */
	} else {
		return 0;
	}
	if (n < need || p[1] < lo || p[1] > hi)
		return 0;
	for (size_t k = 2; k < need; k++)
		if (p[k] < 0x80 || p[k] > 0xBF)
			return 0;
	return need;
}

/* One UTF-8 character at the cursor; sets the utf8 mark. */
static enum smtp_addr_err addr_utf8(struct addr_cur *c)
{
	size_t n = addr_utf8_len(c->p + c->i, c->len - c->i);

	if (n == 0)
		return SMTP_ADDR_E_UTF8;
	c->i += n;
	c->utf8 = true;
	return SMTP_ADDR_OK;
}

/* Quoted-string = DQUOTE *( qtextSMTP / quoted-pairSMTP ) DQUOTE */
static enum smtp_addr_err addr_quoted(struct addr_cur *c)
{
	enum smtp_addr_err e;

	c->i++;                                   /* the opening quote */
	while (c->i < c->len) {
		unsigned char ch = c->p[c->i];

		if (ch == '"') {
			c->i++;
			return SMTP_ADDR_OK;
		}
		if (ch == '\\') {
			if (c->i + 1 >= c->len || c->p[c->i + 1] < 32 || c->p[c->i + 1] > 126)
				return SMTP_ADDR_E_LOCAL;
			c->i += 2;
		} else if (ch >= 0x80) {
			if ((e = addr_utf8(c)) != SMTP_ADDR_OK)
				return e;
		} else if (ch < 32 || ch > 126) {
			return SMTP_ADDR_E_LOCAL;
		} else {
			c->i++;
		}
	}
	return SMTP_ADDR_E_LOCAL;                 /* unterminated */
}

/* Local-part = Dot-string / Quoted-string; Dot-string = Atom *("." Atom) */
static enum smtp_addr_err addr_local(struct addr_cur *c)
{
	bool need_atom = true;                    /* at the start or after a dot */
	enum smtp_addr_err e;

	if (c->i < c->len && c->p[c->i] == '"')
		return addr_quoted(c);
	while (c->i < c->len) {
		unsigned char ch = c->p[c->i];

		if (ch == '.') {
			if (need_atom)
				return SMTP_ADDR_E_LOCAL;
			need_atom = true;
			c->i++;
			continue;
		}
		if (ch >= 0x80) {
			if ((e = addr_utf8(c)) != SMTP_ADDR_OK)
				return e;
		} else if (addr_is_atext(ch)) {
			c->i++;
		} else {
			break;
		}
		need_atom = false;
	}
	return need_atom ? SMTP_ADDR_E_LOCAL : SMTP_ADDR_OK;
}

/* Domain = sub-domain *("." sub-domain); sub-domain = Let-dig [Ldh-str] / U-label */
static enum smtp_addr_err addr_domain(struct addr_cur *c)
{
	size_t start = c->i;
	enum smtp_addr_err e;

	for (;;) {
		size_t label = c->i;
		bool hyphen_last = false;

		while (c->i < c->len) {
			unsigned char ch = c->p[c->i];

			if (addr_is_alpha(ch) || addr_is_digit(ch)) {
				c->i++;
				hyphen_last = false;
			} else if (ch == '-') {
				if (c->i == label)
					return SMTP_ADDR_E_DOMAIN;
				c->i++;
				hyphen_last = true;
			} else if (ch >= 0x80) {
				if ((e = addr_utf8(c)) != SMTP_ADDR_OK)
					return e;
				hyphen_last = false;
			} else {
				break;
			}
		}
		if (c->i == label || hyphen_last)
			return SMTP_ADDR_E_DOMAIN;
		if (c->i - label > SMTP_ADDR_LABEL_MAX)
			return SMTP_ADDR_E_LENGTH;
		if (c->i < c->len && c->p[c->i] == '.') {
			c->i++;
			continue;
		}
		break;
	}
	if (c->i - start > SMTP_ADDR_DOMAIN_MAX)
		return SMTP_ADDR_E_LENGTH;
	return SMTP_ADDR_OK;
}

/* IPv4-address-literal = Snum 3("." Snum), the whole of [p, p+n) */
static bool addr_ipv4(const unsigned char *p, size_t n)
{
	size_t i = 0;

	for (int part = 0; part < 4; part++) {
		unsigned v = 0;
		size_t d = 0;

		if (part > 0) {
			if (i >= n || p[i] != '.')
				return false;
			i++;
		}
		while (i < n && addr_is_digit(p[i]) && d < 3) {
			v = v * 10 + (unsigned)(p[i] - '0');
			i++;
			d++;
		}
		if (d == 0 || v > 255)
			return false;
	}
	return i == n;
}

/* IPv6-addr (RFC 5321 4.1.3): 8 groups of 1-4 hex digits, or fewer with one "::",
 * optionally ending in an IPv4 dotted quad that counts as two groups. */
static bool addr_ipv6(const unsigned char *p, size_t n)
{
	size_t i = 0;
	unsigned groups = 0;
	bool compressed = false;

	if (n >= 2 && p[0] == ':' && p[1] == ':') {
		compressed = true;
		i = 2;
		if (i == n)
			return true;
	}
	for (;;) {
		size_t j = i;

		while (j < n && addr_is_xdigit(p[j]))
			j++;
		if (j < n && p[j] == '.') {
			if (!addr_ipv4(p + i, n - i))
				return false;
			groups += 2;
			break;
		}
		if (j == i || j - i > 4)
			return false;
		groups++;
		i = j;
		if (i == n)
			break;
		if (p[i] != ':')
			return false;
		i++;
		if (i < n && p[i] == ':') {
			if (compressed)
				return false;
			compressed = true;
			i++;
			if (i == n)
				break;
		} else if (i == n) {
			return false;             /* a trailing single ':' */
		}
	}
	return compressed ? groups <= 7 : groups == 8;
}

/* address-literal = "[" ( IPv4-address-literal / "IPv6:" IPv6-addr ) "]". No other
 * standardized tag exists, so a General-address-literal is refused. */
static enum smtp_addr_err addr_literal(struct addr_cur *c)
{
	size_t s = c->i + 1, e = s;
	const unsigned char *q;
	size_t n;
	bool ok;

	while (e < c->len && c->p[e] >= 33 && c->p[e] <= 126 && c->p[e] != '[' &&
	       c->p[e] != '\\' && c->p[e] != ']')
		e++;
	if (e >= c->len || c->p[e] != ']')
		return SMTP_ADDR_E_LITERAL;
	q = c->p + s;
	n = e - s;
	if (n > 5 && strncasecmp((const char *)q, "IPv6:", 5) == 0)
		ok = addr_ipv6(q + 5, n - 5);
	else
		ok = addr_ipv4(q, n);
	if (!ok)
		return SMTP_ADDR_E_LITERAL;
	c->i = e + 1;
	return SMTP_ADDR_OK;
}

enum smtp_addr_err smtp_addr_parse_path(const char *p, size_t len, unsigned flags,
                                        struct smtp_addr *a, size_t *consumed)
{
	struct addr_cur c = { (const unsigned char *)p, len, 0, false };
	enum smtp_addr_err e;
	size_t mbox, dom;

	memset(a, 0, sizeof(*a));
	*consumed = 0;
	if (len < 2 || p[0] != '<')
		return SMTP_ADDR_E_BRACKET;
	c.i = 1;
	if (p[1] == '>') {
		if (!(flags & SMTP_ADDR_NULL_OK))
			return SMTP_ADDR_E_NULL;
		a->mbox = p + 1;
		a->domain = p + 1;
		*consumed = 2;
		return SMTP_ADDR_OK;
	}

	/* A-d-l = At-domain *( "," At-domain ) ":" — parsed for syntax, then ignored. */
	if (p[1] == '@') {
		for (;;) {
			c.i++;                            /* '@' */
			if ((e = addr_domain(&c)) != SMTP_ADDR_OK)
				return e == SMTP_ADDR_E_LENGTH ? e : SMTP_ADDR_E_ROUTE;
			if (c.i < len && p[c.i] == ',') {
				c.i++;
				if (c.i >= len || p[c.i] != '@')
					return SMTP_ADDR_E_ROUTE;
				continue;
			}
			break;
		}
		if (c.i >= len || p[c.i] != ':')
			return SMTP_ADDR_E_ROUTE;
		c.i++;
		c.utf8 = false;                           /* only the mailbox counts */
	}
	mbox = c.i;

	/* RFC 5321 4.5.1: "<Postmaster>" without a domain must be accepted for RCPT. */
	if ((flags & SMTP_ADDR_POSTMASTER_OK) && mbox == 1 && len - mbox >= 11 &&
	    strncasecmp(p + mbox, "postmaster", 10) == 0 && p[mbox + 10] == '>') {
		a->mbox = p + mbox;
		a->mbox_len = 10;
		a->domain = p + mbox + 10;
		*consumed = mbox + 11;
		return SMTP_ADDR_OK;
	}

	if ((e = addr_local(&c)) != SMTP_ADDR_OK)
		return e;
	if (c.i >= len || p[c.i] != '@')
		return c.i >= len ? SMTP_ADDR_E_BRACKET : SMTP_ADDR_E_DOMAIN;
	c.i++;
	dom = c.i;
	if (c.i < len && p[c.i] == '[')
		e = addr_literal(&c);
	else
		e = addr_domain(&c);
	if (e != SMTP_ADDR_OK)
		return e;
	if (c.i >= len)
		return SMTP_ADDR_E_BRACKET;
	if (p[c.i] != '>')
		return SMTP_ADDR_E_DOMAIN;
	c.i++;
	if (c.i > SMTP_ADDR_PATH_MAX)
		return SMTP_ADDR_E_LENGTH;

	a->mbox = p + mbox;
	a->mbox_len = c.i - 1 - mbox;
	a->domain = p + dom;
	a->domain_len = c.i - 1 - dom;
	a->utf8 = c.utf8;
	*consumed = c.i;
	return SMTP_ADDR_OK;
}
