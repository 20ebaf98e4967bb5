/* cfg/snapshot — see snapshot.h. */
#include "cfg/snapshot.h"

#include <stdlib.h>
#include <urcu-qsbr.h>

static struct snapshot *current;
static uint64_t generation;

struct snapshot *snapshot_new(struct config *cfg)
{
	struct snapshot *s = calloc(1, sizeof *s);
	if (!s) {
		config_free(cfg);
		return NULL;
	}
	s->cfg = cfg;
	s->generation = ++generation;
	return s;
}

void snapshot_publish(struct snapshot *s)
{
	struct snapshot *old = rcu_xchg_pointer(&current, s);
	if (!old)
		return;
	synchronize_rcu();          /* every reader has passed a quiescent state */
	config_free(old->cfg);
	free(old);
}

const struct snapshot *snapshot_get(void)
{
	return rcu_dereference(current);
}
