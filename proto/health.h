/* proto/health — the up/down state of one checked thing of a proxy pool: a server, or a
 * (server, source) pair when the pool has health_check.probe. libc only: no clock (the
 * caller passes monotonic milliseconds), no random numbers (the caller passes one), no
 * I/O; the caller runs the probes and the deliveries and reports what they gave.
 *
 * The rule is HAProxy's rise/fall on consecutive results. An up thing goes down after
 * failure_threshold failures in a row; a down thing comes up after success_threshold
 * successful probes in a row. A result of the other kind breaks the run, so results
 * that alternate never change the state when both thresholds are over 1. Every change
 * is reported once, by the call that made it (enum health_change), for the caller to
 * log once with health_reason_fmt() of the failure that took it down.
 *
 * Initial state: up, on probation: the first failure takes it down (its failure run
 * starts at failure_threshold - 1), and the first success ends the probation (the run
 * starts over from 0). Mail flows from the first second, which starting down would delay
 * by success_threshold x interval (15 s on the defaults) at every start and reload; and a
 * proxy that is dead at start gets only the connections opened before the first result
 * about it comes back: the first probe (health_first_ms(), within a tenth of the
 * interval) or the first delivery connection refused through it. HAProxy starts a
 * server the same way (its health counter at `rise`: up, and down at the first failed
 * check) unless init-state says otherwise.
 *
 * Deliveries count (passive results, health_passive()): a delivery connection through
 * the proxy that is refused, times out or is closed before the greeting is a failure
 * like a failed probe, so a proxy that dies between probes stops getting traffic after
 * failure_threshold of them, without waiting for the next probe; one that got its
 * greeting is a success, but only while up: it breaks a failure run (the thing works),
 * never brings a down thing up. Only probes do, paced by the interval: a down thing gets
 * no new traffic, and a delivery that was already under way when it went down says
 * nothing about it now. Which thing a passive result belongs to is the caller's choice;
 * the rule that keeps every down thing able to come back up: to the (server, source)
 * pair when pairs are probed, else to the server.
 *
 * Unclear passive results (health_passive_unclear()). A connection that reached the
 * proxy and then closed, or timed out, before the greeting may be the proxy's doing (it
 * cannot bind the source address, it hangs) or its destination's: HAProxy closes the
 * client side when its own connect to the next hop fails, so one dead MX would otherwise
 * take a working proxy down for all mail. Such a failure counts only when its destination
 * differs from those of the unclear failures already in the run (HEALTH_UNCLEAR_DESTS
 * remembered): a proxy down for this reason has failed towards failure_threshold distinct
 * destinations in a row. Their run is broken only by traffic that went through (a
 * delivery's greeting: health_passive_ok; a pair probe's 220: health_forwarded), not by a
 * server probe, which proves only that the proxy takes connections. No probation for them.
 * Refused connections and connects that never completed are the proxy's, and count as
 * above (health_passive_fail).
 *
 * Cuts (health_passive_cut()). A delivery connection through the proxy that got its
 * greeting and was then closed, reset or timed out under its first transaction (before
 * the reply that ended it) is a cut: again the proxy's doing (its path out drops a
 * message's large packets, a timeout shorter than a transaction, a proxy that kills
 * sessions) or the destination's. A proxy that passes every greeting and cuts every
 * transaction would otherwise stay up for ever: the greeting is a success, and a pair
 * probe's 220 comes before any transaction. Cuts run like unclear failures, towards
 * failure_threshold distinct destinations (HEALTH_UNCLEAR_DESTS remembered), in a run of
 * their own that only a transaction through the proxy that ended breaks
 * (health_passive_done), neither a greeting nor a probe. A connection that is cut while
 * it waits with no transaction (a proxy's idle timeout) is no cut: the caller does not
 * report it.
 *
 * A pair is usable only while its server is up too: health_usable(server, pair).
 *
 * Probe times: health_next_ms() gives the delay from one probe's start to the next's,
 * the interval with a jitter of up to 10 % so that the probes of many servers and pairs
 * do not keep firing in the same millisecond. Bounds, for interval I and timeout T (ms),
 * I/10 rounded down:
 *     lo = max(I - I/10, T, 1) <= delay <= max(I + min(I/10, T), lo)
 * so the delay is never 0; a probe has always ended (answered or timed out) before the
 * next one to the same thing starts (T <= I is the configuration's rule; the bound holds
 * even without it); probes never come less often than every I + T, so a thing that dies
 * is found down by probes alone within failure_threshold x (I + T) + T, a figure an
 * operator can work out from the configuration. */
#ifndef PROTO_HEALTH_H
#define PROTO_HEALTH_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HEALTH_THRESHOLD_MAX 100u      /* thresholds are 1..100 (0 is taken as 1) */
#define HEALTH_UNCLEAR_DESTS 8u        /* destinations of an unclear run remembered */

/* Why a probe or a delivery connection failed. */
enum health_reason {
	HEALTH_R_NONE = 0,             /* no failure yet */
	HEALTH_R_REFUSED,              /* the connection was refused */
	HEALTH_R_TIMEOUT,              /* no connection, or no greeting, within the timeout */
	HEALTH_R_CLOSED,               /* closed (or reset) before the greeting */
	HEALTH_R_GREETING,             /* a greeting other than 220; code: its reply code */
	HEALTH_R_ERROR,                /* any other connect error (unreachable...); code: errno */
	HEALTH_R_CUT,                  /* after the greeting, under the first transaction
	                                * (health_passive_cut); code: ETIMEDOUT, an errno, or
	                                * 0 for a plain close */
};
#define HEALTH_REASONS (HEALTH_R_CUT + 1)

/* A run of failures towards distinct destinations (unclear failures, cuts). */
struct health_run {
	unsigned n;                    /* failures in the run, each to another destination */
	uint64_t dest[HEALTH_UNCLEAR_DESTS];   /* theirs (the latest ones) */
};

/* What one result did to the state. */
enum health_change { HEALTH_SAME = 0, HEALTH_WENT_DOWN, HEALTH_WENT_UP };

struct health {
	bool up;
	unsigned fall, rise;           /* failure_threshold, success_threshold: 1..100 */
	unsigned fail_run;             /* failures in a row (while up: towards fall) */
	unsigned ok_run;               /* successful probes in a row (while down: towards rise) */
	enum health_reason reason;     /* the latest failure's, HEALTH_R_NONE before any */
	int code;                      /* its reply code or errno, else 0 */
	uint64_t checks;               /* probes reported */
	uint64_t fails;                /* failures reported, probes and deliveries */
	uint64_t passive_fails;        /* of which deliveries */
	uint64_t since_ms;             /* when the current state began (health_init's now_ms) */
	struct health_run unclear;     /* unclear failures in a row */
	struct health_run cut;         /* cuts in a row */
};

/* Up, on probation (see above), since now_ms; thresholds are clamped to 1..100. */
void health_init(struct health *h, unsigned failure_threshold, unsigned success_threshold,
                 uint64_t now_ms);
/* A reload's new thresholds (clamped to 1..100), keeping the state: never a change by
 * itself; a run already at or past a lowered threshold is left one result short of it. */
void health_set_thresholds(struct health *h, unsigned failure_threshold,
                           unsigned success_threshold);

/* A probe passed / failed (code as the enum says; a failure with HEALTH_R_NONE is taken
 * as HEALTH_R_ERROR). */
enum health_change health_probe_ok(struct health *h, uint64_t now_ms);
enum health_change health_probe_fail(struct health *h, enum health_reason reason, int code,
                                     uint64_t now_ms);
/* A delivery connection through the proxy got its greeting (ok) or failed before it:
 * reason HEALTH_R_REFUSED, _TIMEOUT or _CLOSED (a greeting other than 220 came from the
 * destination, through a proxy that works: not the proxy's failure, not reported). */
enum health_change health_passive_ok(struct health *h, uint64_t now_ms);
enum health_change health_passive_fail(struct health *h, enum health_reason reason, int code,
                                       uint64_t now_ms);

/* A delivery connection through the proxy connected, then closed or timed out before the
 * greeting (see "Unclear passive results" above); dest: a key of its destination address
 * and port (any value; the same destination, the same key). */
enum health_change health_passive_unclear(struct health *h, enum health_reason reason, int code,
                                          uint64_t dest, uint64_t now_ms);
/* Traffic went through it to a greeting (a pair probe's 220): the unclear run is broken. */
void health_forwarded(struct health *h);
/* A delivery connection through the proxy got its greeting, then was cut under its first
 * transaction (see "Cuts" above); code as HEALTH_R_CUT says, dest as for unclear ones. */
enum health_change health_passive_cut(struct health *h, int code, uint64_t dest, uint64_t now_ms);
/* A transaction through the proxy ended (the reply to its end of data, or the one that
 * refused it): the runs of cuts and of unclear failures are broken. */
void health_passive_done(struct health *h);

bool health_is_up(const struct health *h);
/* May a connection for this pair go through this server? server up, and pair (NULL when
 * the pool probes no pairs) up. */
bool health_usable(const struct health *server, const struct health *pair);

/* The reason as a word for a log's key: "none", "refused", "timeout", "closed",
 * "greeting", "error", "cut"; "unknown" for anything else. */
const char *health_reason_str(enum health_reason r);
/* The reason for people, into buf (always NUL-terminated when cap > 0): "refused",
 * "timeout", "closed before greeting", "greeting 421", "connect error (errno 113)",
 * "cut after greeting (timeout)", "cut after greeting (closed)", "cut after greeting
 * (errno 104)", "none". Returns the length it wanted, like snprintf. */
size_t health_reason_fmt(char *buf, size_t cap, enum health_reason r, int code);

/* ms from one probe's start to the next's; bounds above. interval_ms 0 is taken as 1;
 * rnd is any 32-bit random number. */
uint64_t health_next_ms(uint32_t interval_ms, uint32_t timeout_ms, uint32_t rnd);
/* ms from start (or from the thing's appearance in a reload) to its first probe:
 * 0 .. interval_ms / 10, spread by rnd. */
uint64_t health_first_ms(uint32_t interval_ms, uint32_t rnd);

#endif
