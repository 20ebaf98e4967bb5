/* proto/egress — source and proxy server selection; see egress.h. */
#include "proto/egress.h"

#include <string.h>

void egress_source_init(struct egress_source *s, const uint8_t *ipv4, const uint8_t *ipv6)
{
	memset(s, 0, sizeof *s);
	if (ipv4 != NULL) {
		memcpy(s->ipv4, ipv4, sizeof s->ipv4);
		s->fams |= EGRESS_V4;
	}
	if (ipv6 != NULL) {
		memcpy(s->ipv6, ipv6, sizeof s->ipv6);
		s->fams |= EGRESS_V6;
	}
}

const uint8_t *egress_source_addr(const struct egress_source *s, unsigned fam)
{
	if (fam == EGRESS_V4 && (s->fams & EGRESS_V4))
		return s->ipv4;
	if (fam == EGRESS_V6 && (s->fams & EGRESS_V6))
		return s->ipv6;
	return NULL;
}

/* The one round robin: the first i at or after *rotor (mod n) for which ok(ctx, i). */
static size_t egress_turn(size_t n, uint32_t *rotor, bool (*ok)(const void *, size_t),
                          const void *ctx)
{
	if (n == 0)
		return EGRESS_NONE;
	size_t start = *rotor % n;
	for (size_t k = 0; k < n; k++) {
		size_t i = start + k < n ? start + k : start + k - n;
		if (ok(ctx, i)) {
			*rotor = (uint32_t)(i + 1);
			return i;
		}
	}
	return EGRESS_NONE;
}

static bool egress_flag(const void *ctx, size_t i)
{
	return ((const bool *)ctx)[i];
}

size_t egress_rr(const bool *eligible, size_t n, uint32_t *rotor)
{
	return egress_turn(n, rotor, egress_flag, eligible);
}

struct egress_want {
	const struct egress_source *src;
	unsigned fams;
	const bool *usable;
	size_t skip;
};

/* src[i] has a family of fams, is usable, and is not `skip`. */
static bool egress_fits(const void *ctx, size_t i)
{
	const struct egress_want *w = ctx;
	return i != w->skip && (w->src[i].fams & w->fams) && (w->usable == NULL || w->usable[i]);
}

static size_t egress_next(const struct egress_source *src, size_t n, unsigned fams,
                          const bool *usable, size_t skip, uint32_t *rotor)
{
	const struct egress_want w = { src, fams, usable, skip };
	return egress_turn(n, rotor, egress_fits, &w);
}

size_t egress_pick(const struct egress_source *src, size_t n, unsigned fams,
                   const bool *usable, uint32_t *rotor)
{
	return egress_next(src, n, fams, usable, EGRESS_NONE, rotor);
}

struct egress_choice egress_route(const struct egress_source *src, size_t n, size_t home,
                                  unsigned fams, const bool *usable, bool failover,
                                  uint32_t *rotor)
{
	struct egress_choice c = { EGRESS_UNREACHABLE, EGRESS_WHY_NO_ADDRESS, EGRESS_NONE };
	bool home_fam = home < n && (src[home].fams & fams);
	bool home_up = home < n && (usable == NULL || usable[home]);

	if (home_fam && home_up) {
		c.verdict = EGRESS_GO;
		c.why = EGRESS_WHY_NONE;
		c.source = home;
		return c;
	}
	if (!failover) {
		if (home_fam) {
			c.verdict = EGRESS_WAIT;
			c.why = EGRESS_WHY_PINNED;
		}
		return c;
	}
	size_t other = egress_next(src, n, fams, usable, home, rotor);
	if (other != EGRESS_NONE) {
		c.verdict = EGRESS_MOVE;
		c.why = home_fam ? EGRESS_WHY_DOWN : EGRESS_WHY_FAMILY;
		c.source = other;
		return c;
	}
	/* none usable now: wait if one of them could take it once a proxy is back */
	bool any_fam = home_fam;
	for (size_t i = 0; i < n && !any_fam; i++)
		any_fam = (src[i].fams & fams) != 0;
	if (any_fam) {
		c.verdict = EGRESS_WAIT;
		c.why = EGRESS_WHY_ALL_DOWN;
	}
	return c;
}

const char *egress_why_str(enum egress_why w)
{
	switch (w) {
	case EGRESS_WHY_NONE:
		return "ok";
	case EGRESS_WHY_DOWN:
		return "no proxy up for the source";
	case EGRESS_WHY_ALL_DOWN:
		return "no proxy up for any source";
	case EGRESS_WHY_FAMILY:
		return "no address of the family";
	case EGRESS_WHY_PINNED:
		return "pinned";
	case EGRESS_WHY_NO_ADDRESS:
		return "no source address of the destination's family";
	}
	return "unknown";
}
