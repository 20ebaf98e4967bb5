/* proto/egress — which of a transport's sources a delivery connection leaves from, and
 * which proxy server of its pool it goes through. libc only: the caller passes the
 * sources' addresses as octets (the configuration's text, already validated, parsed by
 * the caller), the health verdicts as an array of booleans and a rotation counter it
 * keeps; nothing here allocates, reads a clock or does I/O.
 *
 * A transport's `source` is one { ipv4, ipv6, helo } or a list of them; each entry is a
 * source of its own, with an IPv4 address, an IPv6 address or both. A connection to a
 * destination address of one family can only leave from a source having an address of
 * that family (that address goes into the PROXY header, or is bound locally without a
 * pool): for a source without one, the destination address is skipped. Families are
 * written as a mask (EGRESS_V4 | EGRESS_V6): a site whose MX hosts have both kinds of
 * address is reachable from a source with either.
 *
 * Round robin (egress_rr): the first eligible entry at or after the counter, which then
 * moves just past it; ineligible entries are skipped, not waited on, so eligible ones
 * take turns evenly whatever lies between them. One function serves both rotations:
 * across the sources of a transport (egress_pick) and across the servers of a pool that
 * are up for the connection's source (eligible[i] = health_usable(server i, pair i)).
 * Keep one counter per rotation: per pool and source for servers, per transport and
 * fams value for sources. Two rotations sharing a counter can starve each other's
 * entries (v4 and v6 connections alternating over {v4}, {v4, v6}, {v6} would take the
 * first two only, each family always the same one).
 *
 * A source is usable while its pool has a server up for it; without a pool, always.
 * egress_route() applies the failover rule to mail queued for one source (its home):
 *   - EGRESS_GO: home is usable and has an address of the destination's families;
 *   - EGRESS_MOVE: it is not, failover is on (the transport's source_failover, true by
 *     default) and another source is usable and has one: that source, taken round robin;
 *   - EGRESS_WAIT: it is not, and no other source may take the mail now (failover off:
 *     the sender pinned this stream to this source; or none is usable). The mail is not
 *     attempted: no attempt counted, no deferral, no bounce; it goes when home (or with
 *     failover, another source) is usable again. The reason says which;
 *   - EGRESS_UNREACHABLE: no source that may take the mail (with failover: none of the
 *     transport's; without: home) has an address of the destination's families at all.
 *     No health change can fix that: the caller defers or bounces as for a destination
 *     without addresses, rather than waiting forever.
 * A caller that does not keep mail per source calls egress_pick() for each new
 * connection instead; that is the failover rule with every source home. */
#ifndef PROTO_EGRESS_H
#define PROTO_EGRESS_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define EGRESS_V4 (1u << 0)
#define EGRESS_V6 (1u << 1)
#define EGRESS_NONE SIZE_MAX           /* no entry */

struct egress_source {
	unsigned fams;                 /* EGRESS_V4 | EGRESS_V6: the addresses it has */
	uint8_t ipv4[4];               /* network order; zero when absent */
	uint8_t ipv6[16];
};

/* A source with these addresses; NULL when absent. */
void egress_source_init(struct egress_source *s, const uint8_t *ipv4, const uint8_t *ipv6);
/* Its address of family fam (EGRESS_V4 or EGRESS_V6, one bit), or NULL without one. */
const uint8_t *egress_source_addr(const struct egress_source *s, unsigned fam);

/* Round robin over eligible[0..n): the index taken, or EGRESS_NONE (rotor unchanged)
 * when none is eligible. */
size_t egress_rr(const bool *eligible, size_t n, uint32_t *rotor);

/* The next source, round robin, among src[0..n) that have an address of a family in
 * fams and are usable (usable NULL: all are). EGRESS_NONE when none. */
size_t egress_pick(const struct egress_source *src, size_t n, unsigned fams,
                   const bool *usable, uint32_t *rotor);

enum egress_verdict { EGRESS_GO = 0, EGRESS_MOVE, EGRESS_WAIT, EGRESS_UNREACHABLE };
enum egress_why {
	EGRESS_WHY_NONE = 0,           /* GO */
	EGRESS_WHY_DOWN,               /* MOVE: home has no proxy up */
	EGRESS_WHY_FAMILY,             /* MOVE: home has no address of the families */
	EGRESS_WHY_PINNED,             /* WAIT: home has no proxy up, failover is off */
	EGRESS_WHY_ALL_DOWN,           /* WAIT: no source that could take it has a proxy up */
	EGRESS_WHY_NO_ADDRESS,         /* UNREACHABLE */
};
struct egress_choice {
	enum egress_verdict verdict;
	enum egress_why why;
	size_t source;                 /* GO: home; MOVE: the other; else EGRESS_NONE */
};

/* Mail queued for src[home] (home < n), to a destination with addresses of fams. The
 * rotor is used (and moved) only to choose where mail moves. */
struct egress_choice egress_route(const struct egress_source *src, size_t n, size_t home,
                                  unsigned fams, const bool *usable, bool failover,
                                  uint32_t *rotor);
/* For a log's reason: "ok", "no proxy up for the source", "no address of the family",
 * "pinned", "no proxy up for any source", "no source address of the destination's
 * family"; "unknown" for anything else. */
const char *egress_why_str(enum egress_why w);

#endif
