/* test/net/dns_test — net/dns on a real ring against a real dnsmasq (Debian dnsmasq-base),
 * started by each test on 127.0.0.1 and an ephemeral port: MX order and the shuffling of
 * equal preferences, A and AAAA, the caps, the implicit MX, the null MX, NXDOMAIN, hosts
 * without an address, REFUSED, SERVFAIL and timeouts as TEMPFAIL (whole or partial), the
 * cache (hits that send no query, TTLs, expiry, the bound), lookups in flight shared,
 * dns_free with lookups pending (and from inside a callback, and after the loop), names
 * refused. Silence and SERVFAIL come from UDP sockets of the test's own: dnsmasq forwards
 * silent.test to the silent one. Queries are counted in dnsmasq's log (--log-queries). */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "net/dns.h"
#include "net/loop.h"

#define DNSMASQ "/usr/sbin/dnsmasq"

/* The zone dnsmasq serves. MX and host records carry --local-ttl (7200 s) unless a
 * host-record gives its own; NODATA answers carry no SOA (so 60 s for us). */
static const char *const dm_zone[] = {
	"--local=/test/",                     /* unknown names under test.: NXDOMAIN */
	"--address=/nx.test/",                /* NXDOMAIN, the other way */
	"--local-ttl=7200",
	"--mx-host=ex.test,mx1.ex.test,10",
	"--mx-host=ex.test,mx2.ex.test,20",
	"--mx-host=ex.test,mx3.ex.test,20",
	"--host-record=mx1.ex.test,127.0.0.11,::11",
	"--host-record=mx2.ex.test,127.0.0.12",
	"--host-record=mx3.ex.test,127.0.0.13,::13",
	"--host-record=implicit.test,127.0.0.5,::5",
	"--cname=alias.test,implicit.test",   /* a CNAME whose target has no MX */
	"--mx-host=nullmx.test,.,0",          /* RFC 7505 */
	"--mx-host=nohost.test,mx.gone.test,10",
	"--txt-record=txtonly.test,hello",    /* exists: NODATA for MX, A and AAAA */
	"--mx-host=mixed.test,mx.gone.test,10",
	"--mx-host=mixed.test,mx2.ex.test,20",
	"--mx-host=tmo.test,mx.silent.test,10",
	"--mx-host=part.test,mx.silent.test,10",
	"--mx-host=part.test,mx2.ex.test,20",
	"--mx-host=short.test,mxshort.test,10",
	"--host-record=mxshort.test,127.0.0.20,::20,1",
	"--mx-host=ttl20.test,mx20.test,10",
	"--host-record=mx20.test,127.0.0.21,::21,20",
	"--mx-host=cap.test,mxcap.test,10",
	"--host-record=mxcap.test,127.0.0.22,::22",
	"--mx-host=multi.test,multi.test,10",
	"--host-record=multi.test,127.0.1.1",  "--host-record=multi.test,127.0.1.2",
	"--host-record=multi.test,127.0.1.3",  "--host-record=multi.test,127.0.1.4",
	"--host-record=multi.test,127.0.1.5",  "--host-record=multi.test,127.0.1.6",
	"--host-record=multi.test,127.0.1.7",  "--host-record=multi.test,127.0.1.8",
	"--host-record=multi.test,127.0.1.9",  "--host-record=multi.test,127.0.1.10",
	"--host-record=multi.test,127.0.1.11", "--host-record=multi.test,127.0.1.12",
	"--host-record=multi.test,::1:1",      "--host-record=multi.test,::1:2",
	"--host-record=multi.test,::1:3",
};
#define MANY 12                               /* many.test: 12 MX hosts at one preference */
#define BIG 60                                /* big.test: 60 MX hosts with long names, an
                                                 answer too big for UDP (EDNS 1232): TCP */
#define BIG_NAME "a-mail-exchanger-with-a-rather-long-name-%02d.big.test"

static struct net_loop loop;
static pid_t dm_pid = -1;
static int dm_port;
static char dm_log[64];
static int silent_fd = -1, silent_port;       /* never answers */
static int sf_fd = -1, sf_port;               /* answers SERVFAIL */

static unsigned t_turn_hook(void *ctx)
{
	(void)ctx;
	return 10000;                             /* the tests step the loop */
}

static const struct net_loop_hooks t_hooks = { .turn = t_turn_hook };

static int t_udp(int *port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof sa;
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	cr_assert(fd >= 0);
	cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	*port = ntohs(sa.sin_port);
	return fd;
}

static char *dm_read(void)
{
	FILE *f = fopen(dm_log, "r");
	if (!f)
		return strdup("");
	size_t cap = 1 << 16, n = 0;
	char *b = malloc(cap);
	size_t k;
	while ((k = fread(b + n, 1, cap - n - 1, f)) > 0) {
		n += k;
		if (cap - n < 2)
			b = realloc(b, cap *= 2);
	}
	b[n] = '\0';
	fclose(f);
	return b;
}

/* Lines of dnsmasq's log that contain s. */
static int dm_count(const char *s)
{
	char *b = dm_read();
	int n = 0;
	for (char *p = b; (p = strstr(p, s)) != NULL; p += strlen(s))
		n++;
	free(b);
	return n;
}

static void dm_start(void)
{
	for (int attempt = 0; attempt < 10; attempt++) {
		int fd = t_udp(&dm_port);             /* a free port, most likely, once closed */
		close(fd);
		snprintf(dm_log, sizeof dm_log, "/tmp/dns_test.XXXXXX");
		int lfd = mkstemp(dm_log);
		cr_assert(lfd >= 0);
		char port[32], silent[96];
		snprintf(port, sizeof port, "--port=%d", dm_port);
		snprintf(silent, sizeof silent, "--server=/silent.test/127.0.0.1#%d", silent_port);
		/* --keep-in-foreground, not --no-daemon: in its debug mode dnsmasq serves a TCP
		 * connection in its main process and answers nothing else until it closes. */
		const char *argv[256] = {
			"dnsmasq", "--keep-in-foreground", port, "--listen-address=127.0.0.1",
			"--bind-interfaces", "--no-resolv", "--no-hosts", "--conf-file=/dev/null",
			"--log-facility=-", "--log-queries", "--pid-file=", silent,
		};
		size_t n = 12;
		char many[MANY][2][64];
		for (size_t i = 0; i < sizeof dm_zone / sizeof dm_zone[0]; i++)
			argv[n++] = dm_zone[i];
		for (int i = 0; i < MANY; i++) {
			snprintf(many[i][0], sizeof many[i][0], "--mx-host=many.test,m%02d.many.test,10", i);
			snprintf(many[i][1], sizeof many[i][1], "--host-record=m%02d.many.test,127.0.2.%d",
			         i, i + 1);
			argv[n++] = many[i][0];
			argv[n++] = many[i][1];
		}
		static char big[BIG][128];
		for (int i = 0; i < BIG; i++) {
			int k = snprintf(big[i], sizeof big[i], "--mx-host=big.test,");
			k += snprintf(big[i] + k, sizeof big[i] - (size_t)k, BIG_NAME, i);
			snprintf(big[i] + k, sizeof big[i] - (size_t)k, ",%d", 10 + i);
			argv[n++] = big[i];
		}
		argv[n] = NULL;
		pid_t pid = fork();
		cr_assert(pid >= 0);
		if (pid == 0) {
			prctl(PR_SET_PDEATHSIG, SIGTERM);
			dup2(lfd, 1);
			dup2(lfd, 2);
			execv(DNSMASQ, (char *const *)(void *)argv);
			_exit(127);
		}
		close(lfd);
		for (int i = 0; i < 500; i++) {       /* 5 s */
			if (dm_count("started, version")) {
				dm_pid = pid;
				return;
			}
			if (waitpid(pid, NULL, WNOHANG) == pid)
				break;                        /* the port was taken after all: again */
			usleep(10000);
		}
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		char *b = dm_read();
		cr_log_warn("dnsmasq did not start on port %d: %s", dm_port, b);
		free(b);
		unlink(dm_log);
	}
	cr_assert_fail("dnsmasq would not start");
}

static void t_setup(void)
{
	if (access(DNSMASQ, X_OK) != 0)
		cr_skip_test("no %s: run scripts/install-deps.sh (dnsmasq-base)", DNSMASQ);
	struct net_loop_params p = { .sq_entries = 64, .bufs = 8, .buf_size = 1024 };
	cr_assert_eq(net_loop_init(&loop, &p, &t_hooks, NULL), 0);
	silent_fd = t_udp(&silent_port);
	sf_fd = t_udp(&sf_port);
	dm_start();
}

static void t_teardown(void)
{
	if (dm_pid > 0) {
		kill(dm_pid, SIGTERM);
		int i = 0;
		while (waitpid(dm_pid, NULL, WNOHANG) == 0) {
			if (++i == 300)                   /* 3 s */
				kill(dm_pid, SIGKILL);
			usleep(10000);
		}
		dm_pid = -1;
		unlink(dm_log);
	}
	if (silent_fd >= 0)
		close(silent_fd);
	if (sf_fd >= 0)
		close(sf_fd);
	silent_fd = sf_fd = -1;
	net_loop_fini(&loop);
}

TestSuite(dns, .init = t_setup, .fini = t_teardown, .timeout = 60);

/* The SERVFAIL server: every query back, as a response with RCODE 2. */
static void t_serve(void)
{
	uint8_t b[4096];
	struct sockaddr_storage from;
	for (;;) {
		socklen_t fl = sizeof from;
		ssize_t n = recvfrom(sf_fd, b, sizeof b, 0, (struct sockaddr *)&from, &fl);
		if (n < 12)
			return;
		b[2] |= 0x80;                         /* QR */
		b[3] = (uint8_t)((b[3] & 0xf0) | 0x80 | 2);   /* RA, SERVFAIL */
		sendto(sf_fd, b, (size_t)n, 0, (struct sockaddr *)&from, fl);
	}
}

static void t_turn(void)
{
	net_loop_turn(&loop);
	t_serve();
}

#define RUN_UNTIL(cond, ms)                                                          \
	do {                                                                         \
		uint64_t _end = timer_now_ms() + (ms);                               \
		while (!(cond)) {                                                    \
			cr_assert(timer_now_ms() < _end, "not reached in %d ms: %s", \
			          (int)(ms), #cond);                                 \
			t_turn();                                                    \
		}                                                                    \
	} while (0)

/* ---- results, as the callback saw them ---- */

struct t_host {
	char name[256];
	uint16_t pref;
	size_t naddrs;
	char addrs[DNS_MAX_ADDRS][INET6_ADDRSTRLEN];
};

struct t_got {
	int calls;
	bool inside;                              /* called from inside dns_mx */
	enum dns_status status;
	char error[512], site[1024];
	bool implicit;
	uint32_t ttl;
	size_t nhosts;
	struct t_host hosts[DNS_MAX_HOSTS];
	struct dns *free_me;                      /* dns_free it from the callback */
};

static bool in_dns_mx;

static void t_cb(void *ctx, const struct dns_mx *res)
{
	struct t_got *g = ctx;
	g->calls++;
	g->inside |= in_dns_mx;
	g->status = res->status;
	snprintf(g->error, sizeof g->error, "%s", res->error);
	snprintf(g->site, sizeof g->site, "%s", res->site);
	g->implicit = res->implicit;
	g->ttl = res->ttl;
	g->nhosts = res->nhosts;
	cr_assert_leq(res->nhosts, DNS_MAX_HOSTS);
	for (size_t i = 0; i < res->nhosts; i++) {
		const struct dns_host *h = &res->hosts[i];
		struct t_host *t = &g->hosts[i];
		snprintf(t->name, sizeof t->name, "%s", h->name);
		t->pref = h->pref;
		t->naddrs = h->naddrs;
		cr_assert_leq(h->naddrs, DNS_MAX_ADDRS);
		for (size_t j = 0; j < h->naddrs; j++) {
			const struct dns_addr *a = &h->addrs[j];
			if (a->ss.ss_family == AF_INET) {
				const struct sockaddr_in *s4 = (const void *)&a->ss;
				cr_assert_eq(a->len, sizeof *s4);
				cr_assert_eq(ntohs(s4->sin_port), 25);
				inet_ntop(AF_INET, &s4->sin_addr, t->addrs[j], sizeof t->addrs[j]);
			} else {
				const struct sockaddr_in6 *s6 = (const void *)&a->ss;
				cr_assert_eq(a->ss.ss_family, AF_INET6);
				cr_assert_eq(a->len, sizeof *s6);
				cr_assert_eq(ntohs(s6->sin6_port), 25);
				inet_ntop(AF_INET6, &s6->sin6_addr, t->addrs[j], sizeof t->addrs[j]);
			}
		}
	}
	if (g->free_me) {
		struct dns *d = g->free_me;
		g->free_me = NULL;
		dns_free(d);
	}
}

static int t_mx(struct dns *d, const char *domain, struct t_got *g)
{
	in_dns_mx = true;
	int rc = dns_mx(d, domain, t_cb, g);
	in_dns_mx = false;
	return rc;
}

/* Resolve with fn (dns_mx or dns_host) and run the loop until the one callback came. */
static void t_lookup(struct dns *d, int (*fn)(struct dns *, const char *, dns_mx_fn *, void *),
                     const char *name, struct t_got *g)
{
	memset(g, 0, sizeof *g);
	in_dns_mx = true;
	int rc = fn(d, name, t_cb, g);
	in_dns_mx = false;
	cr_assert_eq(rc, 0, "lookup of %s", name);
	cr_assert_eq(g->calls, 0, "called from inside the lookup");
	RUN_UNTIL(g->calls > 0, 10000);
	cr_assert_not(g->inside);
	cr_assert_eq(g->calls, 1);
}

static void t_resolve(struct dns *d, const char *domain, struct t_got *g)
{
	t_lookup(d, dns_mx, domain, g);
}

static void t_resolve_host(struct dns *d, const char *host, struct t_got *g)
{
	t_lookup(d, dns_host, host, g);
}

static struct dns *t_dns_at(int port, unsigned timeout_ms)
{
	char server[64], err[256];
	snprintf(server, sizeof server, "127.0.0.1:%d", port);
	const char *servers[] = { server };
	struct dns *d = dns_new(&loop, servers, 1, timeout_ms, err, sizeof err);
	cr_assert_not_null(d, "dns_new: %s", err);
	return d;
}

static struct dns *t_dns(void)
{
	return t_dns_at(dm_port, 3000);
}

static struct dns_stats t_stats(const struct dns *d)
{
	struct dns_stats st;
	dns_stats(d, &st);
	return st;
}

/* Queries dnsmasq logged that contain needle, once everything asked so far is in its log:
 * a sentinel lookup is asked after them and waited for (dnsmasq logs in order). */
static int dm_queries(struct dns *d, const char *needle)
{
	static int seq;
	char name[64], line[128];
	struct t_got g;
	snprintf(name, sizeof name, "sentinel%d.test", ++seq);
	t_resolve(d, name, &g);
	cr_assert_eq(g.status, DNS_NXDOMAIN);
	snprintf(line, sizeof line, "query[MX] %s from", name);
	RUN_UNTIL(dm_count(line) == 1, 5000);
	return dm_count(needle);
}

static void t_free(struct dns *d)
{
	dns_free(d);
	for (int i = 0; i < 5; i++)               /* the cancelled polls complete */
		net_loop_turn(&loop);
}

/* ---- tests ---- */

Test(dns, mx_order_and_addresses_ipv4_first)
{
	struct dns *d = t_dns();
	struct t_got g;
	t_resolve(d, "ex.test", &g);
	cr_assert_eq(g.status, DNS_OK, "%s", g.error);
	cr_expect_str_eq(g.error, "");
	cr_expect_not(g.implicit);
	cr_expect_str_eq(g.site, "mx1.ex.test,mx2.ex.test,mx3.ex.test");
	cr_assert_eq(g.nhosts, 3);
	cr_expect_str_eq(g.hosts[0].name, "mx1.ex.test");
	cr_expect_eq(g.hosts[0].pref, 10);
	cr_assert_eq(g.hosts[0].naddrs, 2);
	cr_expect_str_eq(g.hosts[0].addrs[0], "127.0.0.11");
	cr_expect_str_eq(g.hosts[0].addrs[1], "::11");
	struct t_host *two = &g.hosts[1], *three = &g.hosts[2];
	if (strcmp(two->name, "mx3.ex.test") == 0) {
		two = &g.hosts[2];
		three = &g.hosts[1];
	}
	cr_expect_str_eq(two->name, "mx2.ex.test");
	cr_expect_eq(two->pref, 20);
	cr_assert_eq(two->naddrs, 1);
	cr_expect_str_eq(two->addrs[0], "127.0.0.12");
	cr_expect_str_eq(three->name, "mx3.ex.test");
	cr_expect_eq(three->pref, 20);
	cr_assert_eq(three->naddrs, 2);
	cr_expect_str_eq(three->addrs[0], "127.0.0.13");
	cr_expect_str_eq(three->addrs[1], "::13");
	/* the smallest TTL: mx2's AAAA NODATA, no SOA: 60 s (MX and A: 7200) */
	cr_expect(g.ttl > 50 && g.ttl <= 60, "ttl %u", g.ttl);
	cr_expect_eq(t_stats(d).queries, 7, "1 MX + 3 x (A + AAAA)");
	t_free(d);
}

Test(dns, equal_preferences_shuffled_per_lookup)
{
	struct dns *d = t_dns();
	static struct t_got g[200];
	int mx2_first = 0, mx3_first = 0;
	t_resolve(d, "ex.test", &g[0]);
	for (int i = 1; i < 200; i++)             /* cache hits: each delivery orders afresh */
		cr_assert_eq(t_mx(d, "ex.test", &g[i]), 0);
	RUN_UNTIL(g[199].calls == 1, 10000);
	for (int i = 0; i < 200; i++) {
		cr_assert_eq(g[i].calls, 1);
		cr_assert_not(g[i].inside);
		cr_assert_eq(g[i].nhosts, 3);
		cr_assert_str_eq(g[i].hosts[0].name, "mx1.ex.test");
		mx2_first += strcmp(g[i].hosts[1].name, "mx2.ex.test") == 0;
		mx3_first += strcmp(g[i].hosts[1].name, "mx3.ex.test") == 0;
	}
	cr_expect_eq(mx2_first + mx3_first, 200);
	/* each order has probability 1/2: both show up but with probability 2^-199 */
	cr_expect_gt(mx2_first, 0);
	cr_expect_gt(mx3_first, 0);
	struct dns_stats st = t_stats(d);
	cr_expect_eq(st.cache_hits, 199);
	cr_expect_eq(st.queries, 7);
	t_free(d);
}

Test(dns, implicit_mx_is_the_domain)
{
	struct dns *d = t_dns();
	struct t_got g;
	t_resolve(d, "implicit.test", &g);
	cr_assert_eq(g.status, DNS_OK, "%s", g.error);
	cr_expect(g.implicit);
	cr_expect_str_eq(g.site, "implicit.test");
	cr_assert_eq(g.nhosts, 1);
	cr_expect_str_eq(g.hosts[0].name, "implicit.test");
	cr_expect_eq(g.hosts[0].pref, 0);
	cr_assert_eq(g.hosts[0].naddrs, 2);
	cr_expect_str_eq(g.hosts[0].addrs[0], "127.0.0.5");
	cr_expect_str_eq(g.hosts[0].addrs[1], "::5");
	/* the same domain in other clothes: one cache entry */
	t_resolve(d, "IMPLICIT.Test.", &g);
	cr_expect_eq(g.status, DNS_OK);
	cr_expect(g.implicit);
	cr_expect_eq(t_stats(d).cache_hits, 1);
	t_free(d);
}

/* dns_host: a [host]:port next hop's addresses, no MX query (ex.test has MX records, but
 * as a host it is what its own A/AAAA say: none here), cached apart from the MX result
 * of the same name. */
Test(dns, host_without_mx)
{
	struct dns *d = t_dns();
	struct t_got g;
	t_resolve_host(d, "mx1.ex.test", &g);
	cr_assert_eq(g.status, DNS_OK, "%s: %s", dns_status_str(g.status), g.error);
	cr_expect_not(g.implicit);
	cr_expect_str_eq(g.site, "[mx1.ex.test]");
	cr_assert_eq(g.nhosts, 1);
	cr_expect_str_eq(g.hosts[0].name, "mx1.ex.test");
	cr_assert_eq(g.hosts[0].naddrs, 2);
	cr_expect_str_eq(g.hosts[0].addrs[0], "127.0.0.11");
	cr_expect_str_eq(g.hosts[0].addrs[1], "::11");
	cr_expect_eq(t_stats(d).queries, 2, "A and AAAA only, no MX query");
	/* a name with MX records and no address of its own: no address, not its MX hosts */
	t_resolve_host(d, "ex.test", &g);
	cr_expect_eq(g.status, DNS_NOHOST, "%s: %s", dns_status_str(g.status), g.error);
	cr_expect_str_eq(g.error, "no address for [ex.test]");
	/* the MX lookup of that name is another entry: its MX hosts */
	t_resolve(d, "ex.test", &g);
	cr_expect_eq(g.status, DNS_OK);
	cr_expect_str_eq(g.hosts[0].name, "mx1.ex.test");
	/* cached as a host */
	uint64_t q = t_stats(d).queries;
	t_resolve_host(d, "MX1.ex.test.", &g);
	cr_expect_eq(g.status, DNS_OK);
	cr_expect_eq(t_stats(d).queries, q, "a cache hit asks nothing");
	t_resolve_host(d, "nope.test", &g);
	cr_expect_eq(g.status, DNS_NOHOST, "%s: %s", dns_status_str(g.status), g.error);
	cr_expect_eq(dns_host(d, "bad name", t_cb, &g), -EINVAL);
	t_free(d);
}

/* MX for a name that is a CNAME to a name without MX: the answer holds the CNAME and
 * no MX (c-ares parses it as an empty list). That is the implicit MX of the name, whose
 * addresses come through the CNAME; it was once taken for a null MX and bounced. */
Test(dns, cname_without_mx_is_implicit)
{
	struct dns *d = t_dns();
	struct t_got g;
	t_resolve(d, "alias.test", &g);
	cr_assert_eq(g.status, DNS_OK, "%s: %s", dns_status_str(g.status), g.error);
	cr_expect(g.implicit);
	cr_expect_str_eq(g.site, "alias.test");
	cr_assert_eq(g.nhosts, 1);
	cr_expect_str_eq(g.hosts[0].name, "alias.test");
	cr_assert_eq(g.hosts[0].naddrs, 2);
	cr_expect_str_eq(g.hosts[0].addrs[0], "127.0.0.5");
	cr_expect_str_eq(g.hosts[0].addrs[1], "::5");
	t_free(d);
}

Test(dns, null_mx)
{
	struct dns *d = t_dns();
	struct t_got g;
	t_resolve(d, "nullmx.test", &g);
	cr_assert_eq(g.status, DNS_NULLMX, "%s: %s", dns_status_str(g.status), g.error);
	cr_expect_str_eq(g.error, "null MX for nullmx.test");
	cr_expect_eq(g.nhosts, 0);
	cr_expect_str_eq(g.site, "");
	cr_expect(g.ttl > 3590 && g.ttl <= 3600, "7200 s capped at an hour: %u", g.ttl);
	cr_expect_eq(t_stats(d).queries, 1, "no address query for \".\"");
	t_free(d);
}

Test(dns, nxdomain_cached_for_the_negative_ttl)
{
	struct dns *d = t_dns();
	struct t_got g;
	t_resolve(d, "nope.test", &g);
	cr_assert_eq(g.status, DNS_NXDOMAIN, "%s: %s", dns_status_str(g.status), g.error);
	cr_expect_str_eq(g.error, "NXDOMAIN for nope.test MX");
	cr_expect_eq(g.nhosts, 0);
	cr_expect(g.ttl > 50 && g.ttl <= 60, "no SOA: 60 s, got %u", g.ttl);
	t_resolve(d, "nope.test", &g);
	cr_expect_eq(g.status, DNS_NXDOMAIN);
	cr_expect_eq(t_stats(d).cache_hits, 1);
	t_resolve(d, "www.nx.test", &g);          /* --address=/nx.test/ */
	cr_expect_eq(g.status, DNS_NXDOMAIN);
	t_free(d);
}

Test(dns, hosts_without_an_address)
{
	struct dns *d = t_dns();
	struct t_got g;
	t_resolve(d, "nohost.test", &g);          /* its only MX host does not exist */
	cr_assert_eq(g.status, DNS_NOHOST, "%s: %s", dns_status_str(g.status), g.error);
	cr_expect_str_eq(g.error, "no address for any MX host of nohost.test");
	cr_expect_str_eq(g.site, "mx.gone.test");
	cr_expect_eq(g.nhosts, 0);
	cr_expect_gt(g.ttl, 0, "a permanent answer: cached");

	t_resolve(d, "txtonly.test", &g);         /* no MX, no A, no AAAA: NODATA each */
	cr_assert_eq(g.status, DNS_NOHOST, "%s: %s", dns_status_str(g.status), g.error);
	cr_expect(g.implicit);
	cr_expect_str_eq(g.site, "txtonly.test");

	t_resolve(d, "mixed.test", &g);           /* one host missing, the other there */
	cr_assert_eq(g.status, DNS_OK, "%s", g.error);
	cr_expect_str_eq(g.site, "mx.gone.test,mx2.ex.test");
	cr_assert_eq(g.nhosts, 1);
	cr_expect_str_eq(g.hosts[0].name, "mx2.ex.test");
	cr_expect_eq(g.hosts[0].pref, 20);
	cr_expect_gt(g.ttl, 0, "complete answers: cached");
	t_free(d);
}

Test(dns, caps_hosts_and_addresses)
{
	struct dns *d = t_dns();
	struct t_got g;
	t_resolve(d, "many.test", &g);
	cr_assert_eq(g.status, DNS_OK, "%s", g.error);
	cr_expect_eq(g.nhosts, DNS_MAX_HOSTS);
	char want_site[512] = "";
	for (int i = 0; i < MANY; i++)
		snprintf(want_site + strlen(want_site), sizeof want_site - strlen(want_site),
		         "%sm%02d.many.test", i ? "," : "", i);
	cr_expect_str_eq(g.site, want_site, "the site names all %d hosts", MANY);
	cr_expect_eq(t_stats(d).queries, 1 + 2 * DNS_MAX_HOSTS);

	t_resolve(d, "multi.test", &g);           /* 12 A and 3 AAAA */
	cr_assert_eq(g.status, DNS_OK, "%s", g.error);
	cr_assert_eq(g.nhosts, 1);
	cr_assert_eq(g.hosts[0].naddrs, DNS_MAX_ADDRS);
	for (int i = 0; i < 7; i++)
		cr_expect(strchr(g.hosts[0].addrs[i], '.'), "IPv4 first: %s", g.hosts[0].addrs[i]);
	for (int i = 7; i < 10; i++)
		cr_expect(strchr(g.hosts[0].addrs[i], ':'), "all 3 IPv6: %s", g.hosts[0].addrs[i]);
	t_free(d);
}

Test(dns, big_answer_over_tcp)
{
	struct dns *d = t_dns();
	struct t_got g;
	t_resolve(d, "big.test", &g);             /* truncated over UDP, asked again over TCP */
	cr_assert_eq(g.status, DNS_NOHOST, "%s: %s", dns_status_str(g.status), g.error);
	/* the site key: whole names, sorted, as many as fit in 1 KiB */
	char want[2048] = "";
	size_t len = 0;
	for (int i = 0; i < BIG; i++) {
		char name[128];
		snprintf(name, sizeof name, BIG_NAME, i);
		if (len + (len > 0) + strlen(name) + 1 > 1024)
			break;
		len += (size_t)snprintf(want + len, sizeof want - len, "%s%s", len ? "," : "", name);
	}
	cr_expect_str_eq(g.site, want);
	struct dns_stats st = t_stats(d);
	cr_expect_eq(st.queries, 1 + 2 * DNS_MAX_HOSTS, "the 10 most preferred hosts");
	cr_expect_geq(st.sockets, 2, "UDP, then TCP");
	t_free(d);
}

Test(dns, refused_is_tempfail_and_not_cached)
{
	struct dns *d = t_dns();
	struct t_got g;
	t_resolve(d, "example.com", &g);          /* outside test.: no upstream, REFUSED */
	cr_assert_eq(g.status, DNS_TEMPFAIL, "%s: %s", dns_status_str(g.status), g.error);
	cr_expect_str_eq(g.error, "REFUSED for example.com MX");
	cr_expect_eq(g.ttl, 0);
	t_resolve(d, "example.com", &g);
	cr_expect_eq(g.status, DNS_TEMPFAIL);
	cr_expect_eq(t_stats(d).cache_hits, 0);
	cr_expect_geq(dm_queries(d, "query[MX] example.com from"), 2, "asked again");
	t_free(d);
}

Test(dns, servfail_is_tempfail)
{
	struct dns *d = t_dns_at(sf_port, 3000);
	struct t_got g;
	t_resolve(d, "example.net", &g);
	cr_assert_eq(g.status, DNS_TEMPFAIL, "%s: %s", dns_status_str(g.status), g.error);
	cr_expect_str_eq(g.error, "SERVFAIL for example.net MX");
	cr_expect_eq(t_stats(d).deadlines, 0, "c-ares gave up, not the deadline");
	t_free(d);
}

Test(dns, timeout_is_tempfail_within_the_timeout)
{
	struct dns *d = t_dns_at(silent_port, 600);
	struct t_got g;
	uint64_t t0 = timer_now_ms();
	t_resolve(d, "example.org", &g);
	uint64_t took = timer_now_ms() - t0;
	cr_assert_eq(g.status, DNS_TEMPFAIL, "%s: %s", dns_status_str(g.status), g.error);
	cr_expect_str_eq(g.error, "timeout for example.org MX");
	cr_expect_geq(took, 500, "gave up early: %lu ms", (unsigned long)took);
	cr_expect_leq(took, 600 + 3000, "took %lu ms", (unsigned long)took);
	t_free(d);
}

Test(dns, addresses_timing_out)
{
	struct dns *d = t_dns_at(dm_port, 1000);
	struct t_got g;
	/* the MX answers; its only host's A and AAAA go to the silent server */
	t_resolve(d, "tmo.test", &g);
	cr_assert_eq(g.status, DNS_TEMPFAIL, "%s: %s", dns_status_str(g.status), g.error);
	cr_expect(strstr(g.error, "mx.silent.test"), "%s", g.error);
	cr_expect_eq(g.ttl, 0);
	/* one host silent, the other there: DNS_OK with that one, not cached */
	t_resolve(d, "part.test", &g);
	cr_assert_eq(g.status, DNS_OK, "%s", g.error);
	cr_assert_eq(g.nhosts, 1);
	cr_expect_str_eq(g.hosts[0].name, "mx2.ex.test");
	cr_expect_str_eq(g.site, "mx.silent.test,mx2.ex.test");
	cr_expect_eq(g.ttl, 0);
	t_resolve(d, "part.test", &g);
	cr_expect_eq(g.status, DNS_OK);
	cr_expect_eq(t_stats(d).cache_hits, 0);
	t_free(d);
}

Test(dns, cache_hit_sends_no_query)
{
	struct dns *d = t_dns();
	struct t_got g;
	t_resolve(d, "ex.test", &g);
	uint64_t q = t_stats(d).queries;
	t_resolve(d, "ex.test", &g);              /* from the cache, still never inside dns_mx */
	cr_assert_eq(g.status, DNS_OK);
	cr_expect_eq(g.nhosts, 3);
	struct dns_stats st = t_stats(d);
	cr_expect_eq(st.cache_hits, 1);
	cr_expect_eq(st.queries, q);
	cr_expect_eq(st.cached, 1);
	cr_expect_eq(dm_queries(d, "query[MX] ex.test from"), 1);
	cr_expect_eq(dm_count("query[A] mx1.ex.test from"), 1);
	t_free(d);
}

Test(dns, ttl_is_the_smallest_and_bounded)
{
	struct dns *d = t_dns();
	struct t_got g;
	t_resolve(d, "ttl20.test", &g);           /* MX 7200, A and AAAA 20 */
	cr_assert_eq(g.status, DNS_OK, "%s", g.error);
	cr_expect(g.ttl > 15 && g.ttl <= 20, "ttl %u", g.ttl);
	t_resolve(d, "cap.test", &g);             /* all 7200 */
	cr_expect(g.ttl > 3590 && g.ttl <= 3600, "ttl %u", g.ttl);
	t_resolve(d, "short.test", &g);           /* A and AAAA 1: the 5 s floor */
	cr_expect(g.ttl > 0 && g.ttl <= 5, "ttl %u", g.ttl);
	t_free(d);
}

Test(dns, cache_entry_expires_after_its_ttl)
{
	struct dns *d = t_dns();
	struct t_got g;
	t_resolve(d, "short.test", &g);           /* cached 5 s (the floor of a 1 s TTL) */
	cr_assert_eq(g.status, DNS_OK, "%s", g.error);
	t_resolve(d, "short.test", &g);
	cr_expect_eq(t_stats(d).cache_hits, 1, "within the TTL");
	uint64_t until = timer_now_ms() + 6000;   /* past the 5 s, whatever the machine */
	while (timer_now_ms() < until)
		t_turn();
	t_resolve(d, "short.test", &g);
	cr_expect_eq(g.status, DNS_OK);
	cr_expect_eq(t_stats(d).cache_hits, 1, "expired: asked again");
	cr_expect_eq(dm_queries(d, "query[MX] short.test from"), 2);
	t_free(d);
}

Test(dns, cache_bound_evicts_the_oldest)
{
	struct dns *d = t_dns();
	struct t_got g;
	dns_set_cache_max(d, 2);
	t_resolve(d, "gone1.test", &g);
	t_resolve(d, "gone2.test", &g);
	t_resolve(d, "gone3.test", &g);
	struct dns_stats st = t_stats(d);
	cr_expect_eq(st.cached, 2);
	cr_expect_eq(st.evictions, 1);
	t_resolve(d, "gone3.test", &g);
	t_resolve(d, "gone2.test", &g);
	cr_expect_eq(t_stats(d).cache_hits, 2);
	t_resolve(d, "gone1.test", &g);           /* evicted: asked again */
	cr_expect_eq(t_stats(d).cache_hits, 2);
	cr_expect_eq(dm_queries(d, "query[MX] gone1.test from"), 2);
	t_free(d);
}

Test(dns, lookups_in_flight_share_one_query)
{
	struct dns *d = t_dns();
	static const char *const names[] = { "ex.test", "EX.TEST", "ex.test.", "Ex.Test", "ex.test" };
	struct t_got g[5];
	memset(g, 0, sizeof g);
	for (int i = 0; i < 5; i++)
		cr_assert_eq(t_mx(d, names[i], &g[i]), 0);
	struct dns_stats st = t_stats(d);
	cr_expect_eq(st.joined, 4);
	cr_expect_eq(st.inflight, 1);
	RUN_UNTIL(g[0].calls && g[1].calls && g[2].calls && g[3].calls && g[4].calls, 10000);
	for (int i = 0; i < 5; i++) {
		cr_expect_eq(g[i].calls, 1);
		cr_expect_not(g[i].inside);
		cr_expect_eq(g[i].status, DNS_OK);
		cr_expect_eq(g[i].nhosts, 3);
	}
	st = t_stats(d);
	cr_expect_eq(st.queries, 7);
	cr_expect_eq(st.inflight, 0);
	cr_expect_eq(dm_queries(d, "query[MX] ex.test from"), 1);
	t_free(d);
}

Test(dns, free_with_lookups_pending_cancels_them)
{
	struct dns *d = t_dns_at(dm_port, 5000);
	struct t_got g[4];
	t_resolve(d, "ex.test", &g[0]);           /* cached; 7 queries */
	memset(g, 0, sizeof g);
	cr_assert_eq(t_mx(d, "tmo.test", &g[1]), 0);    /* will wait on the silent server */
	cr_assert_eq(t_mx(d, "tmo.test", &g[2]), 0);    /* ... sharing that lookup */
	RUN_UNTIL(t_stats(d).queries >= 10, 5000);      /* its MX answered, A and AAAA out */
	cr_assert_eq(t_mx(d, "ex.test", &g[0]), 0);     /* a cache hit not handed over yet */
	cr_assert_eq(t_mx(d, "nope.test", &g[3]), 0);   /* its MX query just asked */
	cr_assert_gt(t_stats(d).polls, 0, "a socket is watched");
	dns_free(d);
	for (int i = 0; i < 4; i++) {
		cr_expect_eq(g[i].calls, 1, "lookup %d: called %d times", i, g[i].calls);
		cr_expect_eq(g[i].status, DNS_CANCELLED, "lookup %d: %s", i,
		             dns_status_str(g[i].status));
		cr_expect_not(g[i].inside);
	}
	for (int i = 0; i < 5; i++)               /* the polls' and the kick's completions */
		net_loop_turn(&loop);
	for (int i = 0; i < 4; i++)
		cr_expect_eq(g[i].calls, 1, "never called again");
	/* what was not freed would show up in LeakSanitizer's report at exit */
}

/* The cap: past dns_set_max_lookups, lookups wait in line (joined by lookups of the same
 * domain) and ask, oldest first, as places free up; never more asking than the cap. */
Test(dns, cap_lines_lookups_up)
{
	struct dns *d = t_dns();
	dns_set_max_lookups(d, 2);
	struct t_got g[7];
	memset(g, 0, sizeof g);
	char name[6][32];
	for (int i = 0; i < 6; i++) {
		snprintf(name[i], sizeof name[i], "line%d.test", i);
		cr_assert_eq(t_mx(d, name[i], &g[i]), 0);
	}
	cr_assert_eq(t_mx(d, "LINE5.test", &g[6]), 0);   /* joins the one in line */
	struct dns_stats st = t_stats(d);
	cr_expect_eq(st.inflight, 2);
	cr_expect_eq(st.waiting, 4);
	cr_expect_eq(st.waited, 4);
	cr_expect_eq(st.joined, 1);
	cr_expect_eq(st.queries, 2, "only the first two asked: %lu", (unsigned long)st.queries);
	uint64_t end = timer_now_ms() + 10000;
	for (;;) {
		bool all = true;
		for (int i = 0; i < 7; i++)
			all &= g[i].calls > 0;
		if (all)
			break;
		cr_assert(timer_now_ms() < end, "not every lookup ended");
		t_turn();
		st = t_stats(d);
		/* dnsmasq answers fast enough that one turn may end a pair and the next
		 * one, so how many ask at a turn's end is only bounded, never exact */
		cr_assert_leq(st.inflight, 2, "%zu asking", st.inflight);
		cr_assert_leq(st.inflight + st.waiting, 6);
	}
	for (int i = 0; i < 7; i++) {
		cr_expect_eq(g[i].calls, 1);
		cr_expect_not(g[i].inside);
		cr_expect_eq(g[i].status, DNS_NXDOMAIN, "%d: %s %s", i, dns_status_str(g[i].status),
		             g[i].error);
	}
	st = t_stats(d);
	cr_expect_eq(st.inflight, 0);
	cr_expect_eq(st.waiting, 0);
	cr_expect_eq(st.queries, 6, "one MX query a domain: %lu", (unsigned long)st.queries);
	t_free(d);
}

/* A lookup in line has its whole timeout from when it asks: with a cap of one and a
 * server that never answers, the second is still waiting for its answer when the first
 * gives up, and gives up only after its own timeout. */
Test(dns, cap_timeout_counts_from_the_start)
{
	struct dns *d = t_dns_at(silent_port, 300);
	dns_set_max_lookups(d, 1);
	struct t_got g[2];
	memset(g, 0, sizeof g);
	cr_assert_eq(t_mx(d, "first.org", &g[0]), 0);
	cr_assert_eq(t_mx(d, "second.org", &g[1]), 0);
	cr_expect_eq(t_stats(d).waiting, 1);
	RUN_UNTIL(g[0].calls > 0, 5000);
	cr_expect_eq(g[0].status, DNS_TEMPFAIL);
	cr_expect_eq(g[1].calls, 0, "the second ended with the first: %s", g[1].error);
	struct dns_stats st = t_stats(d);
	cr_expect_eq(st.inflight, 1, "the second asks now");
	cr_expect_eq(st.waiting, 0);
	RUN_UNTIL(g[1].calls > 0, 5000);
	cr_expect_eq(g[1].status, DNS_TEMPFAIL);
	cr_expect_str_eq(g[1].error, "timeout for second.org MX");
	t_free(d);
}

/* Domains that never answer do not hold the line for their timeout: after a second of
 * asking they give their places up (and ask on); the line behind them is answered while
 * they still wait. */
Test(dns, cap_slow_lookups_give_their_place_up)
{
	struct dns *d = t_dns_at(dm_port, 5000);
	dns_set_max_lookups(d, 2);
	struct t_got g[3];
	memset(g, 0, sizeof g);
	cr_assert_eq(t_mx(d, "a.silent.test", &g[0]), 0);     /* forwarded to a server that */
	cr_assert_eq(t_mx(d, "b.silent.test", &g[1]), 0);     /* never answers */
	cr_assert_eq(t_mx(d, "ex.test", &g[2]), 0);
	cr_expect_eq(t_stats(d).waiting, 1);
	RUN_UNTIL(g[2].calls > 0, 10000);
	cr_expect_eq(g[2].status, DNS_OK, "%s: %s", dns_status_str(g[2].status), g[2].error);
	cr_expect_eq(g[0].calls + g[1].calls, 0, "the slow ones ended first: %s / %s", g[0].error,
	             g[1].error);
	/* One stalled place is enough to let ex.test in, and its answer can come back before
	 * the other's stall timer is served on a loaded machine: the second stall is waited
	 * for (well inside the 5 s deadline), not sampled. */
	struct dns_stats st = t_stats(d);
	cr_expect_geq(st.stalled, 1);
	RUN_UNTIL(t_stats(d).stalled_now == 2, 3000);
	st = t_stats(d);
	cr_expect_eq(st.stalled, 2);
	cr_expect_eq(st.inflight, 2);
	cr_expect_eq(g[0].calls + g[1].calls, 0, "still asking");
	RUN_UNTIL(g[0].calls && g[1].calls, 10000);
	cr_expect_eq(g[0].status, DNS_TEMPFAIL);
	st = t_stats(d);
	cr_expect_eq(st.inflight, 0);
	cr_expect_eq(st.stalled_now, 0);
	t_free(d);
}

/* dns_drop_waiters: the picked waiters are handed back (gone, never their fn); a lookup
 * in line nobody waits for is dropped without asking; one asking goes on. */
static bool t_pick(void *ctx, void *arg)
{
	(void)arg;
	return ((struct t_got *)ctx)->free_me == (void *)1;      /* (marked by the test) */
}

static void t_back(void *ctx, void *arg)
{
	struct t_got *g = ctx;
	g->calls += 100;
	(*(int *)arg)++;
}

Test(dns, drop_waiters_takes_them_back)
{
	struct dns *d = t_dns_at(dm_port, 3000);
	dns_set_max_lookups(d, 1);
	struct t_got g[3];
	memset(g, 0, sizeof g);
	cr_assert_eq(t_mx(d, "a.silent.test", &g[0]), 0);   /* asking (never answered) */
	cr_assert_eq(t_mx(d, "b.silent.test", &g[1]), 0);   /* in line */
	cr_assert_eq(t_mx(d, "ex.test", &g[2]), 0);         /* in line */
	g[0].free_me = g[1].free_me = (void *)1;
	int backs = 0;
	cr_expect_eq(dns_drop_waiters(d, t_pick, t_back, &backs), 2);
	cr_expect_eq(backs, 2);
	g[0].free_me = g[1].free_me = NULL;
	RUN_UNTIL(g[2].calls > 0, 10000);                   /* b gave its turn to ex.test */
	cr_expect_eq(g[2].status, DNS_OK);
	cr_expect_eq(t_stats(d).waiting, 0);
	for (int i = 0; i < 50; i++)
		t_turn();
	cr_expect_eq(g[0].calls, 100, "a: its fn was called after all (%d)", g[0].calls);
	cr_expect_eq(g[1].calls, 100, "b: its fn was called after all (%d)", g[1].calls);
	cr_expect_eq(dm_queries(d, "query[MX] b.silent.test"), 0, "b was asked");
	t_free(d);
}

/* Raising the cap lets the line ask at once; freeing cancels the lookups still in line
 * (and frees them: LeakSanitizer would say). */
Test(dns, cap_raised_and_freed_with_a_line)
{
	struct dns *d = t_dns_at(silent_port, 5000);
	dns_set_max_lookups(d, 1);
	struct t_got g[5];
	memset(g, 0, sizeof g);
	for (int i = 0; i < 3; i++) {
		char name[32];
		snprintf(name, sizeof name, "raise%d.org", i);
		cr_assert_eq(t_mx(d, name, &g[i]), 0);
	}
	cr_expect_eq(t_stats(d).waiting, 2);
	dns_set_max_lookups(d, 3);
	struct dns_stats st = t_stats(d);
	cr_expect_eq(st.inflight, 3);
	cr_expect_eq(st.waiting, 0);
	dns_set_max_lookups(d, 1);              /* lowered: those asking go on, new ones wait */
	cr_assert_eq(t_mx(d, "late.org", &g[3]), 0);
	cr_assert_eq(t_mx(d, "hostname.org", &g[4]), 0);
	st = t_stats(d);
	cr_expect_eq(st.inflight, 3);
	cr_expect_eq(st.waiting, 2);
	dns_free(d);
	for (int i = 0; i < 5; i++) {
		cr_expect_eq(g[i].calls, 1, "lookup %d: called %d times", i, g[i].calls);
		cr_expect_eq(g[i].status, DNS_CANCELLED, "lookup %d: %s", i,
		             dns_status_str(g[i].status));
	}
	for (int i = 0; i < 5; i++)
		net_loop_turn(&loop);
}

/* dns_host's lookups wait in the same line and keep their host name. */
Test(dns, cap_host_lookup_in_line)
{
	struct dns *d = t_dns();
	dns_set_max_lookups(d, 1);
	struct t_got g[2];
	memset(g, 0, sizeof g);
	cr_assert_eq(t_mx(d, "ex.test", &g[0]), 0);
	in_dns_mx = true;
	cr_assert_eq(dns_host(d, "mx1.ex.test", t_cb, &g[1]), 0);
	in_dns_mx = false;
	cr_expect_eq(t_stats(d).waiting, 1);
	RUN_UNTIL(g[0].calls && g[1].calls, 10000);
	cr_expect_eq(g[1].status, DNS_OK, "%s: %s", dns_status_str(g[1].status), g[1].error);
	cr_expect_eq(g[1].nhosts, 1);
	cr_expect_str_eq(g[1].hosts[0].name, "mx1.ex.test");
	cr_expect_str_eq(g[1].site, "[mx1.ex.test]");
	t_free(d);
}

Test(dns, free_after_the_loop_is_gone)
{
	struct dns *d = t_dns_at(silent_port, 5000);
	struct t_got g;
	memset(&g, 0, sizeof g);
	cr_assert_eq(t_mx(d, "example.org", &g), 0);
	for (int i = 0; i < 3; i++)
		t_turn();
	net_loop_fini(&loop);                     /* a worker that stops: the ring first */
	dns_free(d);
	cr_expect_eq(g.calls, 1);
	cr_expect_eq(g.status, DNS_CANCELLED);
}

Test(dns, free_from_inside_a_callback)
{
	struct dns *d = t_dns();
	struct t_got g[3];
	t_resolve(d, "ex.test", &g[0]);
	memset(g, 0, sizeof g);
	g[0].free_me = d;
	for (int i = 0; i < 3; i++)
		cr_assert_eq(t_mx(d, "ex.test", &g[i]), 0);
	RUN_UNTIL(g[0].calls == 1, 5000);
	cr_expect_eq(g[0].status, DNS_OK);
	cr_expect_eq(g[1].calls, 1);
	cr_expect_eq(g[1].status, DNS_CANCELLED);
	cr_expect_eq(g[2].calls, 1);
	cr_expect_eq(g[2].status, DNS_CANCELLED);
	for (int i = 0; i < 5; i++)
		net_loop_turn(&loop);
}

Test(dns, names_refused)
{
	struct dns *d = t_dns();
	struct t_got g;
	char name[300];
	/* 254 octets: 4 labels of 63 and 2 dots short ... made of "a{63}." x 3 + "a{62}" */
	memset(name, 'a', sizeof name);
	for (int i = 63; i < 254; i += 64)
		name[i] = '.';
	name[254] = '\0';
	cr_assert_eq(strlen(name), 254);
	memset(&g, 0, sizeof g);
	cr_expect_eq(t_mx(d, name, &g), -EINVAL, "254 octets");
	name[253] = '\0';                         /* 253: a name */
	cr_expect_eq(name[252], 'a');
	cr_expect_eq(t_mx(d, name, &g), 0, "253 octets");
	RUN_UNTIL(g.calls == 1, 10000);
	cr_expect_eq(g.status, DNS_TEMPFAIL, "outside test.: REFUSED");
	name[253] = '.';                          /* 253 and the root's dot: still a name */
	name[254] = '\0';
	memset(&g, 0, sizeof g);
	cr_expect_eq(t_mx(d, name, &g), 0, "253 octets and a final dot");
	RUN_UNTIL(g.calls == 1, 10000);
	static const char *const bad[] = {
		"", ".", "a..test", ".a.test", "a.test..", "exa mple.test", "ex@mple.test",
		"[127.0.0.1]", "b\xc3\xa9.test", "a\\.test", "ex.test\n",
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.test", /* 64 */
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		cr_expect_eq(t_mx(d, bad[i], &g), -EINVAL, "\"%s\"", bad[i]);
	struct dns_stats st = t_stats(d);
	cr_expect_eq(st.lookups, 2, "refused names are not lookups");
	for (int i = 0; i < 3; i++)
		t_turn();
	t_free(d);
}

Test(dns, servers_and_defaults)
{
	char err[256];
	const char *bad[] = { "nonsense" };
	cr_expect_null(dns_new(&loop, bad, 1, 0, err, sizeof err));
	cr_expect(strstr(err, "nonsense"), "%s", err);
	const char *bad_port[] = { "127.0.0.1:99999" };
	cr_expect_null(dns_new(&loop, bad_port, 1, 0, err, sizeof err));
	const char *good[] = { "127.0.0.1", "[::1]:5353", "::1", "127.0.0.1:53" };
	struct dns *d = dns_new(&loop, good, 4, 0, err, sizeof err);
	cr_expect_not_null(d, "%s", err);
	dns_free(d);
	d = dns_new(&loop, NULL, 0, 0, err, sizeof err);   /* /etc/resolv.conf */
	cr_expect_not_null(d, "%s", err);
	dns_free(d);
	dns_free(NULL);
	cr_expect_str_eq(dns_status_str(DNS_NULLMX), "NULLMX");
}
