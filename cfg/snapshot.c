/* cfg/snapshot — see snapshot.h. */
#include "cfg/snapshot.h"

#include <stdio.h>
#include <stdlib.h>
#include <urcu-qsbr.h>

static struct snapshot *current;
static uint64_t generation;

static void snapshot_free(struct snapshot *s)
{
	if (!s)
		return;
	if (s->owns_tables)
		for (size_t i = 0; i < s->cfg->nlisteners; i++)
			cidr_free(s->proxy_hosts[i]);
	free(s->proxy_hosts);
	if (--*s->cfg_refs == 0) {
		config_free(s->cfg);
		free(s->cfg_refs);
	}
	free(s);
}

static struct snapshot *snapshot_alloc(struct config *cfg)
{
	struct snapshot *s = calloc(1, sizeof *s);
	if (!s)
		return NULL;
	s->cfg = cfg;
	s->proxy_hosts = calloc(cfg->nlisteners ? cfg->nlisteners : 1, sizeof *s->proxy_hosts);
	if (!s->proxy_hosts) {
		free(s);
		return NULL;
	}
	return s;
}

struct snapshot *snapshot_new(struct config *cfg)
{
	struct snapshot *s = snapshot_alloc(cfg);
	unsigned *refs = malloc(sizeof *refs);
	if (!s || !refs) {
		if (s)
			free(s->proxy_hosts);
		free(s);
		free(refs);
		config_free(cfg);
		return NULL;
	}
	*refs = 1;
	s->cfg_refs = refs;
	for (size_t i = 0; i < cfg->nlisteners; i++)
		s->proxy_hosts[i] = cfg->listeners[i].proxy_hosts;
	s->generation = ++generation;
	return s;
}

struct snapshot *snapshot_rebuild_proxy_hosts(const struct snapshot *cur, char *err,
                                              size_t errlen)
{
	struct snapshot *s = snapshot_alloc(cur->cfg);
	if (!s) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	s->cfg_refs = cur->cfg_refs;
	++*s->cfg_refs;
	s->owns_tables = true;
	for (size_t i = 0; i < cur->cfg->nlisteners; i++) {
		s->proxy_hosts[i] = config_proxy_hosts_build(&cur->cfg->listeners[i], err, errlen);
		if (!s->proxy_hosts[i]) {
			snapshot_free(s);
			return NULL;
		}
	}
	s->generation = ++generation;
	return s;
}

void snapshot_publish(struct snapshot *s)
{
	struct snapshot *old = rcu_xchg_pointer(&current, s);
	if (!old)
		return;
	synchronize_rcu();          /* every reader has passed a quiescent state */
	snapshot_free(old);
}

const struct snapshot *snapshot_get(void)
{
	return rcu_dereference(current);
}
