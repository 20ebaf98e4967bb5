/* proto/health — rise/fall state of a proxy server or (server, source) pair; see
 * health.h. health_result() is the only function that changes up/down. */
#include "proto/health.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static unsigned health_clamp(unsigned t)
{
	if (t < 1)
		return 1;
	return t > HEALTH_THRESHOLD_MAX ? HEALTH_THRESHOLD_MAX : t;
}

void health_init(struct health *h, unsigned failure_threshold, unsigned success_threshold,
                 uint64_t now_ms)
{
	memset(h, 0, sizeof *h);
	h->up = true;
	h->fall = health_clamp(failure_threshold);
	h->rise = health_clamp(success_threshold);
	h->fail_run = h->fall - 1;         /* probation: the first failure takes it down */
	h->since_ms = now_ms;
}

void health_set_thresholds(struct health *h, unsigned failure_threshold,
                           unsigned success_threshold)
{
	h->fall = health_clamp(failure_threshold);
	h->rise = health_clamp(success_threshold);
	if (h->fail_run >= h->fall)
		h->fail_run = h->fall - 1;
	if (h->ok_run >= h->rise)
		h->ok_run = h->rise - 1;
}

/* The state changes: every run starts over. */
static enum health_change health_go(struct health *h, bool up, uint64_t now_ms)
{
	h->up = up;
	h->fail_run = 0;
	h->ok_run = 0;
	h->unclear.n = 0;
	h->cut.n = 0;
	h->since_ms = now_ms;
	return up ? HEALTH_WENT_UP : HEALTH_WENT_DOWN;
}

/* A failure's reason and count, whatever it does to the state. */
static void health_note_failure(struct health *h, enum health_reason reason, int code)
{
	h->reason = reason == HEALTH_R_NONE ? HEALTH_R_ERROR : reason;
	h->code = code;
	h->fails++;
}

/* One result: ok, or a failure with its reason. rises: may this success bring a down
 * thing up (a probe) or not (a delivery). */
static enum health_change health_result(struct health *h, bool ok, bool rises,
                                        enum health_reason reason, int code, uint64_t now_ms)
{
	if (ok) {
		h->fail_run = 0;
		if (h->up || !rises || ++h->ok_run < h->rise)
			return HEALTH_SAME;
		return health_go(h, true, now_ms);
	}
	health_note_failure(h, reason, code);
	h->ok_run = 0;
	if (h->fail_run < h->fall)
		h->fail_run++;
	if (!h->up || h->fail_run < h->fall)
		return HEALTH_SAME;
	return health_go(h, false, now_ms);
}

enum health_change health_probe_ok(struct health *h, uint64_t now_ms)
{
	h->checks++;
	return health_result(h, true, true, HEALTH_R_NONE, 0, now_ms);
}

enum health_change health_probe_fail(struct health *h, enum health_reason reason, int code,
                                     uint64_t now_ms)
{
	h->checks++;
	return health_result(h, false, true, reason, code, now_ms);
}

enum health_change health_passive_ok(struct health *h, uint64_t now_ms)
{
	h->unclear.n = 0;
	return health_result(h, true, false, HEALTH_R_NONE, 0, now_ms);
}

void health_forwarded(struct health *h)
{
	h->unclear.n = 0;
}

void health_passive_done(struct health *h)
{
	h->unclear.n = 0;
	h->cut.n = 0;
}

/* One more failure of a run towards distinct destinations (counted already): a
 * destination already in the run is no news of the proxy. */
static enum health_change health_run_add(struct health *h, struct health_run *run, uint64_t dest,
                                         uint64_t now_ms)
{
	unsigned seen = run->n < HEALTH_UNCLEAR_DESTS ? run->n : HEALTH_UNCLEAR_DESTS;
	if (!h->up)
		return HEALTH_SAME;
	for (unsigned k = 0; k < seen; k++)
		if (run->dest[k] == dest)
			return HEALTH_SAME;
	run->dest[run->n % HEALTH_UNCLEAR_DESTS] = dest;
	if (++run->n < h->fall)
		return HEALTH_SAME;
	return health_go(h, false, now_ms);
}

enum health_change health_passive_unclear(struct health *h, enum health_reason reason, int code,
                                          uint64_t dest, uint64_t now_ms)
{
	h->passive_fails++;
	health_note_failure(h, reason, code);
	return health_run_add(h, &h->unclear, dest, now_ms);
}

enum health_change health_passive_cut(struct health *h, int code, uint64_t dest, uint64_t now_ms)
{
	h->passive_fails++;
	health_note_failure(h, HEALTH_R_CUT, code);
	return health_run_add(h, &h->cut, dest, now_ms);
}

enum health_change health_passive_fail(struct health *h, enum health_reason reason, int code,
                                       uint64_t now_ms)
{
	h->passive_fails++;
	return health_result(h, false, false, reason, code, now_ms);
}

bool health_is_up(const struct health *h)
{
	return h->up;
}

bool health_usable(const struct health *server, const struct health *pair)
{
	return server->up && (pair == NULL || pair->up);
}

static const char *const health_words[] = {
	[HEALTH_R_NONE] = "none",
	[HEALTH_R_REFUSED] = "refused",
	[HEALTH_R_TIMEOUT] = "timeout",
	[HEALTH_R_CLOSED] = "closed",
	[HEALTH_R_GREETING] = "greeting",
	[HEALTH_R_ERROR] = "error",
	[HEALTH_R_CUT] = "cut",
};

const char *health_reason_str(enum health_reason r)
{
	if ((unsigned)r >= sizeof health_words / sizeof health_words[0])
		return "unknown";
	return health_words[r];
}

size_t health_reason_fmt(char *buf, size_t cap, enum health_reason r, int code)
{
	int n;

	switch (r) {
	case HEALTH_R_CLOSED:
		n = snprintf(buf, cap, "closed before greeting");
		break;
	case HEALTH_R_GREETING:
		n = snprintf(buf, cap, "greeting %d", code);
		break;
	case HEALTH_R_ERROR:
		n = snprintf(buf, cap, "connect error (errno %d)", code);
		break;
	case HEALTH_R_CUT:
		if (code == 0 || code == ETIMEDOUT)
			n = snprintf(buf, cap, "cut after greeting (%s)", code ? "timeout" : "closed");
		else
			n = snprintf(buf, cap, "cut after greeting (errno %d)", code);
		break;
	default:
		n = snprintf(buf, cap, "%s", health_reason_str(r));
		break;
	}
	return n < 0 ? 0 : (size_t)n;
}

uint64_t health_next_ms(uint32_t interval_ms, uint32_t timeout_ms, uint32_t rnd)
{
	uint64_t i = interval_ms ? interval_ms : 1;
	uint64_t tenth = i / 10;
	uint64_t lo = i - tenth, hi = i + (tenth < timeout_ms ? tenth : timeout_ms);

	if (lo < timeout_ms)
		lo = timeout_ms;
	if (hi < lo)
		hi = lo;
	return lo + rnd % (hi - lo + 1);
}

uint64_t health_first_ms(uint32_t interval_ms, uint32_t rnd)
{
	return rnd % ((uint64_t)interval_ms / 10 + 1);
}
