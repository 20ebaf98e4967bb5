/* core/tlsout — see tlsout.h. */
#include "core/tlsout.h"

#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <urcu-qsbr.h>

struct tlsout_tab {
	uint64_t gen;
	size_t n;
	struct {
		char *id;                       /* the transport's id (a copy) */
		enum config_out_tls mode;
		struct net_tls_ctx *ctx;        /* NULL: tls: none */
	} t[];
};

static struct tlsout_tab *tlsout_cur;
static uint64_t tlsout_gen;             /* the main thread's: loads made */

static void tab_free(struct tlsout_tab *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->n; i++) {
		net_tls_ctx_free(t->t[i].ctx);
		free(t->t[i].id);
	}
	free(t);
}

int tlsout_load(const struct config *cfg, char *err, size_t errlen)
{
	struct tlsout_tab *t = calloc(1, sizeof *t + cfg->ntransports * sizeof t->t[0]);
	if (!t) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	t->gen = tlsout_gen + 1;
	for (size_t i = 0; i < cfg->ntransports; i++) {
		const struct config_transport *tr = &cfg->transports[i];
		t->t[i].id = strdup(tr->id);
		t->t[i].mode = tr->tls;
		t->n = i + 1;
		if (!t->t[i].id) {
			snprintf(err, errlen, "out of memory");
			tab_free(t);
			return -1;
		}
		if (tr->tls == CONFIG_OUT_TLS_NONE)
			continue;
		if (tr->tls == CONFIG_OUT_TLS_VERIFY && !tr->tls_ca_file) {
			snprintf(err, errlen, "transport %s: tls: verify without a CA file", tr->id);
			tab_free(t);
			return -1;
		}
		/* verify: the chain against the CA file and the MX host's name; the others take
		 * any certificate (RFC 7435: encryption without authentication) */
		struct net_tls_conf conf = {
			.role = NET_TLS_CLIENT,
			.ca_file = tr->tls == CONFIG_OUT_TLS_VERIFY ? tr->tls_ca_file : NULL,
		};
		char why[256];
		t->t[i].ctx = net_tls_ctx_new(&conf, why, sizeof why);
		if (!t->t[i].ctx) {
			snprintf(err, errlen, "transport %s: %s", tr->id, why);
			tab_free(t);
			return -1;
		}
	}
	tlsout_gen = t->gen;
	struct tlsout_tab *old = rcu_xchg_pointer(&tlsout_cur, t);
	if (old) {
		synchronize_rcu();              /* no worker holds an old context unreferenced */
		tab_free(old);
	}
	return 0;
}

void tlsout_fini(void)
{
	struct tlsout_tab *old = rcu_xchg_pointer(&tlsout_cur, NULL);
	if (old) {
		synchronize_rcu();
		tab_free(old);
	}
}

struct net_tls_ctx *tlsout_ctx(const char *transport, enum config_out_tls *mode, uint64_t *gen)
{
	const struct tlsout_tab *t = rcu_dereference(tlsout_cur);
	*mode = CONFIG_OUT_TLS_REQUIRED;        /* unknown: fail closed */
	*gen = t ? t->gen : 0;
	for (size_t i = 0; t && transport && i < t->n; i++)
		if (strcmp(t->t[i].id, transport) == 0) {
			*mode = t->t[i].mode;
			return net_tls_ctx_ref(t->t[i].ctx);
		}
	return NULL;
}

bool tlsout_has(const char *transport)
{
	const struct tlsout_tab *t = rcu_dereference(tlsout_cur);
	for (size_t i = 0; t && transport && i < t->n; i++)
		if (strcmp(t->t[i].id, transport) == 0)
			return true;
	return false;
}

uint64_t tlsout_generation(void)
{
	const struct tlsout_tab *t = rcu_dereference(tlsout_cur);
	return t ? t->gen : 0;
}

/* FNV-1a */
static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
	const uint8_t *b = p;
	for (size_t k = 0; k < n; k++)
		h = (h ^ b[k]) * 0x100000001b3ull;
	return h;
}

uint64_t tlsout_key(const char *transport, const struct sockaddr_storage *ss, const char *name,
                    uint64_t gen, enum config_out_tls mode)
{
	uint64_t h = 0xcbf29ce484222325ull;
	uint32_t m = (uint32_t)mode;
	h = fnv(h, &gen, sizeof gen);
	h = fnv(h, &m, sizeof m);
	h = fnv(h, transport, strlen(transport) + 1);
	h = fnv(h, name, strlen(name) + 1);
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *v = (const void *)ss;
		h = fnv(h, &v->sin_port, sizeof v->sin_port);
		h = fnv(h, &v->sin_addr, sizeof v->sin_addr);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *v = (const void *)ss;
		h = fnv(h, &v->sin6_port, sizeof v->sin6_port);
		h = fnv(h, &v->sin6_addr, sizeof v->sin6_addr);
	}
	return h ? h : 1;
}

struct tlsout_dest *tlsout_find(struct tlsout_cache *c, uint64_t key)
{
	if (!c)
		return NULL;
	struct tlsout_dest *d = &c->slot[key % TLSOUT_SLOTS];
	return d->key == key ? d : NULL;
}

struct tlsout_dest *tlsout_get(struct tlsout_cache *c, uint64_t key)
{
	if (!c)
		return NULL;
	struct tlsout_dest *d = &c->slot[key % TLSOUT_SLOTS];
	if (d->key != key) {
		if (d->sess)
			c->evicted++;
		net_tls_session_free(d->sess);
		memset(d, 0, sizeof *d);
		d->key = key;
	}
	return d;
}

void tlsout_keep(struct tlsout_cache *c, uint64_t key, struct net_tls_session *sess, bool v12)
{
	struct tlsout_dest *d = tlsout_get(c, key);
	if (!d) {
		net_tls_session_free(sess);
		return;
	}
	net_tls_session_free(d->sess);
	d->sess = sess;
	d->sess_v12 = v12;
}

void tlsout_cache_free(struct tlsout_cache *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < TLSOUT_SLOTS; i++)
		net_tls_session_free(c->slot[i].sess);
	free(c);
}
