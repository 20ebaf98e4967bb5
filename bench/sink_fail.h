/* bench/sink_fail — ringsink's --fail SPEC: which share of messages to defer (451),
 * reject (554), drop (close at the end of DATA without a reply) or delay (250 after a
 * pause). A pure parser and a deterministic chooser (a seeded PRNG), so that a run can be
 * repeated exactly. libc only.
 *
 * Grammar: ITEM ("," ITEM)*, each one of
 *   defer=SHARE  reject=SHARE  drop=SHARE  delay=TIME@SHARE
 * SHARE is a percentage with up to 4 decimals and a "%" ("5%", "0.5%", "100%"); TIME is
 * whole milliseconds or seconds ("200ms", "2s", at most 3600s). Each kind at most once;
 * the shares add up to at most 100%. No spaces. */
#ifndef BENCH_SINK_FAIL_H
#define BENCH_SINK_FAIL_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SINK_FAIL_SCALE 1000000u          /* shares are in millionths (100% = SCALE) */
#define SINK_FAIL_DELAY_MAX_MS 3600000u

enum sink_fail_kind {
	SINK_FAIL_NONE = 0,    /* answer 250 at once */
	SINK_FAIL_DEFER,       /* 451 4.3.0 */
	SINK_FAIL_REJECT,      /* 554 5.7.1 */
	SINK_FAIL_DROP,        /* close without a reply */
	SINK_FAIL_DELAY,       /* 250 after delay_ms */
	SINK_FAIL_NKINDS,
};
const char *sink_fail_kind_name(enum sink_fail_kind k);

struct sink_fail {
	uint32_t share[SINK_FAIL_NKINDS];  /* millionths; share[SINK_FAIL_NONE] is the rest */
	uint32_t delay_ms;
};

enum sink_fail_err {
	SINK_FAIL_E_NONE = 0,
	SINK_FAIL_E_EMPTY,          /* the whole spec is empty */
	SINK_FAIL_E_ITEM_EMPTY,     /* ",," or a leading/trailing comma */
	SINK_FAIL_E_KIND,           /* not defer, reject, drop or delay */
	SINK_FAIL_E_EQUALS,         /* no "=" after the kind */
	SINK_FAIL_E_DUP,            /* a kind given twice */
	SINK_FAIL_E_SHARE,          /* not digits [. digits] % */
	SINK_FAIL_E_SHARE_SIGN,     /* a number without its % */
	SINK_FAIL_E_SHARE_DECIMALS, /* more than 4 decimals */
	SINK_FAIL_E_SHARE_RANGE,    /* over 100% */
	SINK_FAIL_E_DELAY_AT,       /* delay without TIME@ */
	SINK_FAIL_E_DELAY_TIME,     /* TIME not digits + ms|s */
	SINK_FAIL_E_DELAY_RANGE,    /* TIME over an hour */
	SINK_FAIL_E_SUM,            /* the shares add up to more than 100% */
};
const char *sink_fail_strerror(enum sink_fail_err e);

/* Parse spec into *f. Returns 0, or -1 with *err set and *at the offset in spec of the
 * item at fault (0 for E_EMPTY and E_SUM, which concern the whole spec). */
int sink_fail_parse(const char *spec, struct sink_fail *f, enum sink_fail_err *err,
                    size_t *at);
/* The message for a parse error: `"ITEM": WHAT` (or just WHAT for the whole spec). */
void sink_fail_explain(char *buf, size_t cap, const char *spec, enum sink_fail_err err,
                       size_t at);

/* Does f fail or delay anything at all? (If not, the chooser need not be asked.) */
bool sink_fail_any(const struct sink_fail *f);

/* The chooser: splitmix64, one state per worker. The same seed and stream give the same
 * sequence of outcomes; different streams (workers) give independent ones. */
struct sink_fail_rng {
	uint64_t s;
};
void sink_fail_seed(struct sink_fail_rng *r, uint64_t seed, unsigned stream);
/* One draw: each kind with probability share[kind] / SINK_FAIL_SCALE. */
enum sink_fail_kind sink_fail_choose(const struct sink_fail *f, struct sink_fail_rng *r);

#endif
