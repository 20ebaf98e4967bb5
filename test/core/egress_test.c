/* Unit tests for core/egress: the table built from a configuration (sources, pools, the
 * pool's distinct sources), the PROXY header of a connection against the parser, bypass
 * domains, the server rotation that skips servers and pairs that are down, and a
 * rebuild that keeps the state of what it shares with the table before it. */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "core/egress.h"
#include "proto/proxy.h"

static const char *yaml =
        "routes: [ { domains: [\"*\"], transport: plain } ]\n"
        "transports:\n"
        "  - id: bulk\n"
        "    nexthop: mx\n"
        "    proxy_pool: tier\n"
        "    source:\n"
        "      - { ipv4: 198.51.100.7, ipv6: \"2001:db8::7\", helo: out7.example }\n"
        "      - { ipv4: 198.51.100.8 }\n"
        "    proxy_bypass_domains: [internal.example, \"*.corp.example\"]\n"
        "  - id: six\n"
        "    nexthop: mx\n"
        "    proxy_pool: tier\n"
        "    source: { ipv6: \"2001:db8::9\" }\n"
        "  - id: plain\n"
        "    nexthop: mx\n"
        "proxy_pools:\n"
        "  - id: tier\n"
        "    version: VERSION\n"
        "    servers: [\"127.0.0.1:2601\", \"127.0.0.1:2602\", \"[::1]:2603\"]\n"
        "    health_check: { interval: 5, timeout: 1, probe: \"[192.0.2.50]:25\" }\n";

static struct config *load(unsigned version)
{
	char text[2048], err[512];
	snprintf(text, sizeof text, "%s", yaml);
	char *v = strstr(text, "VERSION");
	cr_assert(v);
	memmove(v + 1, v + 7, strlen(v + 7) + 1);
	v[0] = (char)('0' + version);
	struct config *c = config_load_mem("x.yaml", text, strlen(text), err, sizeof err);
	cr_assert(c, "%s", err);
	return c;
}

/* Let go of table t (through a runtime, as the relay does at exit) and its config. */
static void done(struct egress_tab *t, struct config *c)
{
	struct egress_rt rt = { 0 };
	egress_publish(&rt, t);
	egress_fini(&rt);
	config_free(c);
}

static struct sockaddr_storage sa(const char *ip, unsigned port)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof ss);
	if (strchr(ip, ':')) {
		struct sockaddr_in6 *v = (struct sockaddr_in6 *)&ss;
		v->sin6_family = AF_INET6;
		inet_pton(AF_INET6, ip, &v->sin6_addr);
		v->sin6_port = htons((uint16_t)port);
	} else {
		struct sockaddr_in *v = (struct sockaddr_in *)&ss;
		v->sin_family = AF_INET;
		inet_pton(AF_INET, ip, &v->sin_addr);
		v->sin_port = htons((uint16_t)port);
	}
	return ss;
}

Test(egress, table_of_a_configuration)
{
	struct config *c = load(2);
	struct egress_tab *t = egress_build(c, 1, NULL);
	cr_assert(t);
	const struct egress_transport *b = egress_transport(t, "bulk");
	const struct egress_transport *p = egress_transport(t, "plain");
	cr_assert(b && p && !egress_transport(t, "nope"));
	cr_assert_eq(b->nsrc, 2);
	cr_assert_str_eq(b->srcs[0].label, "198.51.100.7,2001:db8::7");
	cr_assert_str_eq(b->srcs[0].helo, "out7.example");
	cr_assert_eq(b->srcs[1].helo, NULL);
	cr_assert_eq(b->src[1].fams, EGRESS_V4);
	cr_assert_eq(egress_source_find(b, "198.51.100.8"), 1);
	cr_assert_eq(egress_source_find(b, "198.51.100.9"), EGRESS_NONE);
	/* the pool's distinct sources: both of bulk's and six's */
	cr_assert_eq(b->pool->nsrc, 3);
	cr_assert(b->pool->has_probe);
	cr_assert_eq(b->pool->nservers, 3);
	cr_assert_eq(b->pool->servers[2].ss.ss_family, AF_INET6);
	cr_assert_eq(p->pool, NULL);
	cr_assert(egress_source_usable(p, EGRESS_NONE));
	cr_assert(egress_source_usable(b, 0));
	done(t, c);
}

Test(egress, bypass_domains)
{
	struct config *c = load(2);
	struct egress_tab *t = egress_build(c, 1, NULL);
	const struct egress_transport *b = egress_transport(t, "bulk");
	cr_assert(egress_bypass(b, "internal.example"));
	cr_assert(egress_bypass(b, "INTERNAL.example"));
	cr_assert(!egress_bypass(b, "x.internal.example"));
	cr_assert(egress_bypass(b, "a.corp.example"));
	cr_assert(egress_bypass(b, "a.b.corp.example"));
	cr_assert(!egress_bypass(b, "corp.example"));
	cr_assert(!egress_bypass(b, "xcorp.example"));
	cr_assert(!egress_bypass(egress_transport(t, "six"), "internal.example"));
	done(t, c);
}

/* The header names the source's address of the destination's family, port 0, and the
 * destination; without a source of that family (or a source at all): LOCAL / UNKNOWN. */
Test(egress, header_against_the_parser)
{
	for (unsigned v = 1; v <= 2; v++) {
		struct config *c = load(v);
		struct egress_tab *t = egress_build(c, 1, NULL);
		const struct egress_transport *b = egress_transport(t, "bulk");
		struct {
			size_t src;
			const char *dst;
			unsigned port;
			const char *want_src;
		} cases[] = {
			{ 0, "192.0.2.25", 25, "198.51.100.7" },
			{ 0, "2001:db8:1::25", 2525, "2001:db8::7" },
			{ 1, "192.0.2.26", 587, "198.51.100.8" },
			{ 1, "2001:db8:1::25", 25, NULL },     /* no IPv6 address: LOCAL */
			{ EGRESS_NONE, "192.0.2.25", 25, NULL },
		};
		for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
			uint8_t hdr[PP_V1_MAX + 16];
			struct sockaddr_storage d = sa(cases[k].dst, cases[k].port);
			size_t n = egress_header(b->pool, cases[k].src != EGRESS_NONE ? &b->src[cases[k].src] : NULL,
			                         &d, hdr, sizeof hdr);
			cr_assert_gt(n, 0);
			struct pp_result r;
			size_t used;
			enum pp_err e;
			cr_assert_eq(pp_parse(hdr, n, PP_V2_MAX, &r, &used, &e), PP_OK, "v%u case %zu: %s", v,
			             k, pp_strerror(e));
			cr_assert_eq(used, n);
			cr_assert_eq(r.version, v);
			if (!cases[k].want_src) {
				cr_assert(r.local, "v%u case %zu", v, k);
				continue;
			}
			cr_assert(!r.local);
			bool six = strchr(cases[k].dst, ':') != NULL;
			cr_assert_eq(r.family, six ? PP_AF_INET6 : PP_AF_INET);
			char got_src[64], got_dst[64];
			inet_ntop(six ? AF_INET6 : AF_INET, r.src.ip, got_src, sizeof got_src);
			inet_ntop(six ? AF_INET6 : AF_INET, r.dst.ip, got_dst, sizeof got_dst);
			cr_assert_str_eq(got_src, cases[k].want_src);
			cr_assert_str_eq(got_dst, cases[k].dst);
			cr_assert_eq(r.src.port, 0);
			cr_assert_eq(r.dst.port, cases[k].port);
		}
		done(t, c);
	}
}

/* Servers round robin, skipping a server that is down and, for a source, a pair that is
 * down; a source with no usable server is not usable. */
Test(egress, server_rotation_skips_what_is_down)
{
	struct config *c = load(2);
	struct egress_tab *t = egress_build(c, 1, NULL);
	const struct egress_transport *b = egress_transport(t, "bulk");
	struct egress_pool *p = b->pool;
	uint32_t rot = 0;
	size_t seen[3] = { 0 };
	for (int k = 0; k < 30; k++)
		seen[egress_server_pick(b, 0, &rot)]++;
	cr_assert(seen[0] == 10 && seen[1] == 10 && seen[2] == 10);
	atomic_store(&p->servers[1].st.up, false);                  /* server 1 down */
	size_t s1 = b->srcs[1].psrc;
	atomic_store(&p->servers[0].pairs[s1].up, false);           /* (0, source 1) down */
	for (int k = 0; k < 20; k++) {
		size_t a = egress_server_pick(b, 0, &rot), z = egress_server_pick(b, 1, &rot);
		cr_assert(a == 0 || a == 2);
		cr_assert_eq(z, 2);
	}
	cr_assert(egress_source_usable(b, 1));
	atomic_store(&p->servers[2].pairs[s1].up, false);
	cr_assert(!egress_source_usable(b, 1));
	cr_assert(egress_source_usable(b, 0));
	cr_assert_eq(egress_server_pick(b, 1, &rot), EGRESS_NONE);
	/* a rebuild keeps what it shares: server 1 and the pairs stay down */
	struct egress_tab *t2 = egress_build(c, 2, t);
	const struct egress_transport *b2 = egress_transport(t2, "bulk");
	cr_assert(!atomic_load(&b2->pool->servers[1].st.up));
	cr_assert(atomic_load(&b2->pool->servers[0].st.up));
	cr_assert(!egress_source_usable(b2, 1));
	struct egress_rt rt = { 0 };
	egress_publish(&rt, t);
	egress_publish(&rt, t2);
	egress_fini(&rt);
	config_free(c);
}
