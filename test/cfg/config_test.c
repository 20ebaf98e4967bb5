/* test/cfg/config_test — cfg/config: embedded defaults, the sample file, every kind of
 * error with its exact FILE:LINE:COL, every numeric key at and beyond its range, files
 * that are not regular (a FIFO must not hang the loader), proxy_hosts_file merging, and
 * the small helpers. */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cfg/config.h"

#define SAMPLE "etc/ringrelay.yaml"

static struct config *load(const char *yaml, char *err, size_t errlen)
{
	return config_load_mem("x.yaml", yaml, strlen(yaml), err, errlen);
}

static struct config *must_load(const char *yaml)
{
	char err[512] = "";
	struct config *c = load(yaml, err, sizeof(err));
	cr_assert_not_null(c, "load failed: %s", err);
	return c;
}

/* yaml must be refused with exactly want_err. */
static void expect_refused(const char *yaml, const char *want_err)
{
	char got_err[512] = "";
	struct config *c = load(yaml, got_err, sizeof(got_err));
	cr_expect_null(c, "accepted:\n%s", yaml);
	config_free(c);
	cr_expect_str_eq(got_err, want_err);
}

static bool in_table(const struct cidr_table *t, const char *text)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6 };
	if (inet_pton(AF_INET, text, &sin.sin_addr) == 1)
		return cidr_lookup(t, (struct sockaddr *)&sin);
	cr_assert_eq(inet_pton(AF_INET6, text, &sin6.sin6_addr), 1, "bad address %s", text);
	return cidr_lookup(t, (struct sockaddr *)&sin6);
}

static char *write_temp(const char *content)
{
	char *path = strdup("/tmp/config_test_XXXXXX");
	int fd = mkstemp(path);
	size_t len = strlen(content);
	cr_assert(fd >= 0);
	cr_assert_eq(write(fd, content, len), (ssize_t)len);
	close(fd);
	return path;
}

static void expect_default_listener(const struct config_listener *l)
{
	const struct sockaddr_in *sin = (const struct sockaddr_in *)&l->addr;
	cr_expect_str_eq(l->id, "default");
	cr_expect_eq(l->addr.ss_family, AF_INET);
	cr_expect_eq(l->addrlen, sizeof(struct sockaddr_in));
	cr_expect_eq(ntohl(sin->sin_addr.s_addr), 0x7f000001u);
	cr_expect_eq(ntohs(sin->sin_port), 2525);
	cr_expect_eq(l->proxy_protocol, CONFIG_PROXY_OFF);
	cr_assert_not_null(l->proxy_hosts);
	cr_expect_eq(cidr_count(l->proxy_hosts), 0);
	cr_expect_null(l->proxy_hosts_file);
	cr_expect_eq(l->proxy_timeout, 30);
	cr_expect_null(l->tls_certificate);
	cr_expect_null(l->tls_key);
	cr_expect_eq(l->tls_mode, CONFIG_TLS_STARTTLS);
}

/* The shaping keys of a transport that leaves them out; its timeouts are those of
 * RFC 5321 that proto/smtp_cli uses, once in ms. */
static void expect_default_shaping(const struct config_transport *t)
{
	static const struct config_timeouts want_to = {
		.connect = 30, .greeting = 300, .ehlo = 300, .mail = 300, .rcpt = 300,
		.data = 120, .data_block = 180, .data_done = 600, .rset = 300, .quit = 300,
	};
	struct smtp_cli_timeouts got_ms, want_ms;

	cr_expect_eq(t->initial_connections, 5);
	cr_expect_eq(t->dead_after, 3);
	cr_expect_eq(t->message_rate.events, 0);
	cr_expect_eq(t->message_rate.period_ms, 0);
	cr_expect_eq(t->connection_rate.events, 0);
	cr_expect_eq(t->connection_rate.period_ms, 0);
	cr_expect_eq(memcmp(&t->timeouts, &want_to, sizeof(want_to)), 0,
	             "default timeouts differ");
	memset(&got_ms, 0xa5, sizeof(got_ms));
	config_transport_cli_timeouts(t, &got_ms);
	smtp_cli_timeouts_rfc(&want_ms);
	cr_expect_eq(memcmp(&got_ms, &want_ms, sizeof(want_ms)), 0,
	             "default timeouts are not smtp_cli_timeouts_rfc()");
}

/* Everything that a file leaving every key out must get. */
static void expect_defaults(const struct config *c)
{
	static const unsigned want_retry[] = { 60, 300, 900, 1800, 3600 };
	char host[256] = "";

	cr_assert_eq(gethostname(host, sizeof(host) - 1), 0);
	cr_expect_str_eq(c->hostname, host);
	cr_expect_eq(c->workers, 0);
	cr_expect_eq(c->shutdown_timeout, 10);
	cr_expect_str_eq(c->spool_path, "./spool");
	cr_expect(c->spool_sync);
	cr_expect_eq(c->ndns_servers, 0);
	cr_expect_eq(c->dns_max_lookups, 64);

	cr_assert_eq(c->nlisteners, 1);
	expect_default_listener(&c->listeners[0]);

	cr_assert_not_null(c->relay_networks);
	cr_expect_eq(cidr_count(c->relay_networks), 2);
	cr_expect(in_table(c->relay_networks, "127.0.0.1"));
	cr_expect(in_table(c->relay_networks, "127.255.255.255"));
	cr_expect(!in_table(c->relay_networks, "128.0.0.0"));
	cr_expect(in_table(c->relay_networks, "::1"));
	cr_expect(!in_table(c->relay_networks, "::2"));
	cr_expect(in_table(c->relay_networks, "::ffff:127.0.0.1"));
	cr_expect_eq(c->nrelay_domains, 0);

	cr_expect_eq(c->max_message_size, 52428800);
	cr_expect_eq(c->max_data_memory, 1073741824);
	cr_expect_eq(c->spool_min_free, 0);
	cr_expect_eq(c->max_recipients, 1000);
	cr_expect_eq(c->max_line_length, 998);
	cr_expect_eq(c->max_hops, 50);
	cr_expect_eq(c->max_connections, 50000);
	cr_expect_eq(c->max_connections_per_ip, 500);
	cr_expect_eq(c->idle_timeout, 300);
	cr_expect_eq(c->min_data_rate, 500);

	cr_assert_eq(c->nroutes, 1);
	cr_assert_eq(c->routes[0].ndomains, 1);
	cr_expect_str_eq(c->routes[0].domains[0], "*");
	cr_expect_str_eq(c->routes[0].transport, "default");
	cr_assert_eq(c->ntransports, 1);
	cr_expect_str_eq(c->transports[0].id, "default");
	cr_expect_str_eq(c->transports[0].nexthop, "mx");
	cr_expect_eq(c->transports[0].tls, CONFIG_OUT_TLS_OPPORTUNISTIC);
	cr_expect_null(c->transports[0].tls_ca_file);
	cr_expect_eq(c->transports[0].max_connections, 100);
	cr_expect_eq(c->transports[0].max_messages_per_connection, 1000);
	cr_expect_null(c->transports[0].proxy_pool);
	expect_default_shaping(&c->transports[0]);
	cr_expect_eq(c->transports[0].nsources, 0);
	cr_expect_eq(c->transports[0].nproxy_bypass_domains, 0);
	cr_expect_eq(c->nproxy_pools, 0);

	cr_assert_eq(c->nretry_schedule, 5);
	for (size_t i = 0; i < 5; i++)
		cr_expect_eq(c->retry_schedule[i], want_retry[i]);
	cr_expect_eq(c->max_age, 432000);
}

Test(config, embedded_defaults)
{
	char err[256] = "", got_summary[256];
	struct config *c = config_load(NULL, err, sizeof(err));
	cr_assert_not_null(c, "%s", err);
	expect_defaults(c);
	cr_expect_null(c->source_file);
	config_summary(c, got_summary, sizeof(got_summary));
	cr_expect_str_eq(got_summary, "ok: (defaults): 1 listener, 2 relay networks, "
	                 "0 relay domains, 1 route, 1 transport, 0 proxy pools");
	config_free(c);
	config_free(NULL);
}

Test(config, empty_files_get_the_defaults)
{
	static const char *const docs[] = {
		"", "# nothing but a comment\n", "---\n", "spool:\nrelay:\nlimits:\nqueue:\n",
		"spool: {}\nrelay: {}\nlimits: {}\nqueue: {}\ndns: {}\n",
	};
	for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
		struct config *c = must_load(docs[i]);
		expect_defaults(c);
		cr_expect_str_eq(c->source_file, "x.yaml");
		config_free(c);
	}
}

Test(config, sections_are_defaulted_key_by_key)
{
	struct config *c = must_load(
		"limits:\n"
		"  max_recipients: 50\n"
		"listeners:\n"
		"  - id: only-id\n"
		"transports:\n"
		"  - id: default\n"
		"    tls: verify\n"
		"proxy_pools:\n"
		"  - id: p\n"
		"    servers: ['[2001:db8::2]:2525', 'haproxy.example:1']\n"
		"    health_check: { interval: 10 }\n"
		"queue:\n"
		"  max_age: 60\n");
	const struct sockaddr_in *sin = (const struct sockaddr_in *)&c->listeners[0].addr;
	cr_expect_eq(c->max_recipients, 50);
	cr_expect_eq(c->max_message_size, 52428800);
	cr_expect_eq(c->idle_timeout, 300);
	cr_expect_str_eq(c->listeners[0].id, "only-id");
	cr_expect_eq(ntohl(sin->sin_addr.s_addr), 0x7f000001u);
	cr_expect_eq(ntohs(sin->sin_port), 2525);
	cr_expect_eq(c->transports[0].tls, CONFIG_OUT_TLS_VERIFY);
	cr_expect_str_eq(c->transports[0].tls_ca_file, CONFIG_SYSTEM_CA_FILE);  /* its default */
	cr_expect_eq(c->control_mode, 0600);
	cr_expect(strstr(c->control_path, "/control.sock") != NULL, "%s", c->control_path);
	cr_expect(!c->metrics);
	cr_expect_str_eq(c->transports[0].nexthop, "mx");
	cr_expect_eq(c->transports[0].max_connections, 100);
	cr_expect_eq(c->proxy_pools[0].version, 2);
	cr_expect_eq(c->proxy_pools[0].nservers, 2);
	cr_expect_eq(c->proxy_pools[0].health_check.interval, 10);
	cr_expect_eq(c->proxy_pools[0].health_check.timeout, 1);
	cr_expect_eq(c->proxy_pools[0].health_check.failure_threshold, 3);
	cr_expect_eq(c->proxy_pools[0].health_check.success_threshold, 3);
	cr_expect_eq(c->nretry_schedule, 5);
	cr_expect_eq(c->max_age, 60);
	cr_expect_eq(c->nroutes, 1);
	config_free(c);
}

Test(config, sample_file_loads)
{
	char err[512] = "", got_summary[512];
	struct config *c = config_load(SAMPLE, err, sizeof(err));
	cr_assert_not_null(c, "%s", err);

	cr_expect_str_eq(c->source_file, SAMPLE);
	cr_expect_str_eq(c->hostname, "relay.example.com");
	cr_expect_eq(c->workers, 0);
	cr_expect_eq(c->shutdown_timeout, 10);
	cr_expect_eq(c->listeners[0].proxy_max_header, 4096);
	cr_expect(c->spool_sync);

	cr_assert_eq(c->nlisteners, 2);
	const struct config_listener *mta = &c->listeners[0], *local = &c->listeners[1];
	cr_expect_str_eq(mta->id, "mta");
	cr_expect_eq(mta->addr.ss_family, AF_INET);
	cr_expect_eq(ntohs(((const struct sockaddr_in *)&mta->addr)->sin_port), 25);
	cr_expect_eq(mta->proxy_protocol, CONFIG_PROXY_TRUSTED);
	cr_expect_str_eq(mta->proxy_hosts_file, "etc/haproxy_hosts.sample");
	cr_expect(in_table(mta->proxy_hosts, "192.0.2.10"));     /* inline and in the file */
	cr_expect(in_table(mta->proxy_hosts, "192.0.2.11"));     /* the file only */
	cr_expect(in_table(mta->proxy_hosts, "10.1.2.3"));
	cr_expect(in_table(mta->proxy_hosts, "2001:db8:10::5"));
	cr_expect(!in_table(mta->proxy_hosts, "192.0.2.12"));
	cr_expect_eq(mta->tls_mode, CONFIG_TLS_STARTTLS);
	cr_expect_str_eq(local->id, "local");
	cr_expect_eq(local->addr.ss_family, AF_INET6);
	cr_expect_eq(local->proxy_protocol, CONFIG_PROXY_OFF);

	cr_expect(config_relay_domain(c, "example.com", 11));
	cr_expect_eq(c->nroutes, 2);
	cr_expect_str_eq(c->routes[0].domains[1], "*.example.org");
	cr_expect_str_eq(c->routes[0].transport, "partner");

	cr_assert_eq(c->ntransports, 2);
	const struct config_transport *def = &c->transports[0], *partner = &c->transports[1];
	cr_expect_str_eq(def->proxy_pool, "tier1");
	cr_assert_eq(def->nsources, 2);
	cr_expect_str_eq(def->sources[0].ipv4, "198.51.100.7");
	cr_expect_str_eq(def->sources[0].ipv6, "2001:db8::7");
	cr_expect_str_eq(def->sources[0].helo, "out7.example.com");
	cr_expect_null(def->sources[1].ipv6);
	cr_expect_str_eq(def->proxy_bypass_domains[0], "internal.example");
	cr_expect_str_eq(partner->nexthop, "[smtp.partner.example]:587");
	cr_expect_eq(partner->tls, CONFIG_OUT_TLS_REQUIRED);
	cr_assert_eq(partner->nsources, 1);                        /* a single mapping */
	cr_expect_str_eq(partner->sources[0].ipv4, "198.51.100.9");

	cr_assert_eq(c->nproxy_pools, 1);
	cr_expect_eq(c->proxy_pools[0].version, 2);
	cr_expect_str_eq(c->proxy_pools[0].servers[1], "192.0.2.3:2525");
	cr_expect_eq(c->proxy_pools[0].health_check.success_threshold, 3);
	cr_expect_eq(c->nretry_schedule, 5);
	cr_expect_eq(c->max_age, 432000);

	config_summary(c, got_summary, sizeof(got_summary));
	cr_expect_str_eq(got_summary, "ok: " SAMPLE ": 2 listeners, 2 relay networks, "
	                 "1 relay domain, 2 routes, 2 transports, 1 proxy pool");
	config_free(c);
}

struct bad_case {
	const char *yaml;
	const char *want_prefix;           /* "x.yaml:LINE:COL: " */
	const char *want_msg;              /* a substring of the rest */
};

Test(config, bad_configs_point_at_the_offending_value)
{
	static const struct bad_case cases[] = {
		/* schema: unknown keys, wrong types, enums (caught by libcyaml) */
		{ "hostname: a\nlistner: 3\n", "x.yaml:2:1: ", "unknown key 'listner'" },
		{ "listeners:\n  - id: a\n    prot: 25\n", "x.yaml:3:5: ", "unknown key 'prot'" },
		{ "spool:\n  path: /x\n  fsync: true\n", "x.yaml:3:3: ", "unknown key 'fsync'" },
		{ "hostname: [a, b]\n", "x.yaml:1:11: ", "wrong type for hostname" },
		{ "control:\n  mode: 0644x\n", "x.yaml:2:9: ",
		  "control.mode '0644x': expected octal permissions" },
		{ "control:\n  mode: 0400\n", "x.yaml:2:9: ",
		  "control.mode '0400': expected octal permissions with owner read and write" },
		{ "control:\n  mode: 8\n", "x.yaml:2:9: ", "control.mode '8'" },
		{ "control:\n  path: ''\n", "x.yaml:2:9: ", "control.path must not be empty" },
		{ "metrics:\n  port: 70000\n", "x.yaml:2:9: ", "metrics.port: 70000 is out of range" },
		{ "metrics:\n  address: nowhere\n", "x.yaml:2:12: ", "invalid address 'nowhere' in metrics.address" },
		{ "listeners: 3\n", "x.yaml:1:12: ", "expected a list" },
		{ "listeners:\n  - id: a\n    port: abc\n", "x.yaml:3:11: ",
		  "invalid integer 'abc' for listeners[0].port" },
		{ "relay:\n  networks: [127.0.0.1, [10.0.0.1]]\n", "x.yaml:2:25: ",
		  "wrong type for relay.networks[1]" },
		{ "listeners:\n  - id: a\n    proxy_protocol: sometimes\n", "x.yaml:3:21: ",
		  "invalid value 'sometimes' for listeners[0].proxy_protocol" },
		{ "listeners:\n  - id: a\n    tls_mode: tls\n", "x.yaml:3:15: ",
		  "(expected starttls, required or implicit)" },
		{ "transports:\n  - id: default\n    tls: maybe\n", "x.yaml:3:10: ",
		  "invalid value 'maybe' for transports[0].tls" },
		{ "listeners:\n  - port: 25\n", "x.yaml:2:5: ", "missing required key 'id'" },
		{ "routes:\n  - domains: ['*']\n", "x.yaml:2:5: ", "missing required key 'transport'" },
		{ "- a\n", "x.yaml:1:1: ", "expected a mapping" },
		/* YAML itself */
		{ "hostname: a\nhostname: b\n", "x.yaml:2:1: ", "duplicate key 'hostname'" },
		{ "relay:\n  networks: [10.0.0.1\n", "x.yaml:3:1: ", "YAML syntax error" },
		{ "a: 1\n---\nb: 2\n", "x.yaml:3:1: ", "more than one YAML document" },
		/* addresses and CIDRs */
		{ "listeners:\n  - id: a\n    address: 10.0.0.256\n", "x.yaml:3:14: ",
		  "invalid address '10.0.0.256'" },
		{ "listeners:\n  - id: a\n    address: localhost\n", "x.yaml:3:14: ",
		  "invalid address 'localhost'" },
		{ "relay:\n  networks: [127.0.0.0/8, 10.0.0.0/33]\n", "x.yaml:2:27: ",
		  "invalid CIDR '10.0.0.0/33' in relay.networks" },
		{ "relay:\n  networks:\n    - 10.1.2.3/16\n", "x.yaml:3:7: ", "host bits set" },
		{ "listeners:\n  - id: a\n    proxy_protocol: trusted\n    proxy_hosts: [192.0.2.300]\n",
		  "x.yaml:4:19: ", "invalid address '192.0.2.300' in listeners[0].proxy_hosts" },
		{ "dns:\n  servers: ['127.0.0.1:99999']\n", "x.yaml:2:13: ", "invalid DNS server" },
		{ "dns:\n  max_lookups: 0\n", "x.yaml:2:16: ", "dns.max_lookups: 0 is out of range" },
		{ "dns:\n  max_lookups: 10001\n", "x.yaml:2:16: ", "dns.max_lookups: 10001 is out of range" },
		{ "dns:\n  max_lookups: -1\n", "x.yaml:2:16: ", "dns.max_lookups" },
		/* ports and numbers */
		{ "listeners:\n  - id: a\n    port: 70000\n", "x.yaml:3:11: ",
		  "listeners[0].port: 70000 is out of range (0..65535)" },
		{ "listeners:\n  - id: a\n    port: -1\n", "x.yaml:3:11: ",
		  "listeners[0].port: -1 is out of range (0..65535)" },
		{ "workers: 1025\n", "x.yaml:1:10: ",
		  "workers: 1025 is out of range (0..1024)" },
		{ "workers: 1.5\n", "x.yaml:1:10: ", "invalid integer '1.5' for workers" },
		{ "proxy_pools:\n  - {id: p, version: 2.0, servers: ['a:1']}\n", "x.yaml:2:22: ",
		  "invalid integer '2.0' for proxy_pools[0].version" },
		{ "queue:\n  retry_schedule: [60, 1e3]\n", "x.yaml:2:24: ",
		  "invalid integer '1e3' for queue.retry_schedule[1]" },
		{ "limits:\n  max_recipients: 0\n", "x.yaml:2:19: ",
		  "limits.max_recipients: 0 is out of range" },
		{ "listeners:\n  - id: a\n    proxy_timeout: 0\n", "x.yaml:3:20: ", "proxy_timeout" },
		{ "queue:\n  retry_schedule: []\n", "x.yaml:2:19: ", "retry_schedule must not be empty" },
		{ "queue:\n  retry_schedule: [60, 0]\n", "x.yaml:2:24: ",
		  "queue.retry_schedule[1]: 0 is out of range" },
		{ "queue:\n  max_age: 0\n", "x.yaml:2:12: ", "queue.max_age" },
		/* PROXY and TLS rules */
		{ "listeners:\n  - id: a\n    proxy_protocol: trusted\n", "x.yaml:3:21: ",
		  "proxy_protocol 'trusted' needs at least one proxy host" },
		{ "listeners:\n  - id: a\n    proxy_protocol: required\n    proxy_hosts: []\n",
		  "x.yaml:3:21: ", "proxy_protocol 'required' needs at least one proxy host" },
		{ "listeners:\n  - id: a\n    proxy_hosts_file: /nonexistent/haproxy_hosts\n",
		  "x.yaml:3:23: ", "cannot read proxy_hosts_file '/nonexistent/haproxy_hosts'" },
		{ "listeners:\n  - id: a\n    tls_mode: implicit\n", "x.yaml:3:15: ",
		  "tls_mode 'implicit' needs tls.certificate and tls.key" },
		{ "listeners:\n  - id: a\n    tls_mode: starttls\n", "x.yaml:3:15: ",
		  "tls_mode 'starttls' needs tls.certificate and tls.key" },
		{ "listeners:\n  - id: a\n    tls: { certificate: c.pem }\n", "x.yaml:3:10: ",
		  "missing required key 'key' in listeners[0].tls" },
		{ "listeners:\n  - id: a\n    tls: { certificate: /nonexistent.pem, key: /nonexistent.key }\n",
		  "x.yaml:3:25: ", "cannot read tls.certificate '/nonexistent.pem'" },
		/* references and duplicates */
		{ "routes:\n  - domains: ['*']\n    transport: partnr\n", "x.yaml:3:16: ",
		  "route names unknown transport 'partnr'" },
		{ "transports:\n  - id: partner\n", "x.yaml:1:1: ",
		  "no transport 'default' for the implicit route" },
		{ "transports:\n  - id: default\n    proxy_pool: tier2\n", "x.yaml:3:17: ",
		  "unknown proxy pool 'tier2'" },
		{ "listeners:\n  - id: a\n    port: 1\n  - id: a\n    port: 2\n", "x.yaml:4:9: ",
		  "duplicate listener id 'a'" },
		{ "transports:\n  - id: default\n  - {id: default}\n", "x.yaml:3:10: ",
		  "duplicate transport id 'default'" },
		{ "proxy_pools:\n  - {id: p, servers: ['a:1']}\n  - {id: p, servers: ['b:1']}\n",
		  "x.yaml:3:10: ", "duplicate proxy pool id 'p'" },
		{ "transports:\n  - id: default\n    source:\n      - {ipv4: 192.0.2.1, helo: a.test}\n"
		  "      - {ipv4: 192.0.2.1, helo: b.test}\n", "x.yaml:5:9: ",
		  "an address of source[0] again" },
		{ "transports:\n  - id: default\n    source:\n      - {ipv4: 192.0.2.1, ipv6: '::1'}\n"
		  "      - {ipv4: 192.0.2.2, ipv6: '0::1'}\n", "x.yaml:5:9: ",
		  "an address of source[0] again" },
		{ "listeners:\n  - {id: a, port: 2525}\n  - {id: b, port: 2525}\n", "x.yaml:3:19: ",
		  "same address and port" },
		{ "listeners: []\n", "x.yaml:1:12: ", "listeners must not be empty" },
		{ "routes: []\n", "x.yaml:1:9: ", "routes must not be empty" },
		{ "transports: []\n", "x.yaml:1:13: ", "transports must not be empty" },
		/* transports and pools */
		{ "transports:\n  - id: default\n    nexthop: smtp.example.com:25\n", "x.yaml:3:14: ",
		  "invalid nexthop 'smtp.example.com:25'" },
		{ "transports:\n  - id: default\n    nexthop: '[10.0.0.1]:0'\n", "x.yaml:3:14: ",
		  "invalid nexthop" },
		{ "proxy_pools:\n  - id: p\n    version: 3\n    servers: ['a:1']\n", "x.yaml:3:14: ",
		  "proxy_pools[0].version: 3 is out of range (1..2)" },
		{ "proxy_pools:\n  - id: p\n    servers: ['192.0.2.2']\n", "x.yaml:3:15: ",
		  "invalid server '192.0.2.2'" },
		{ "proxy_pools:\n  - id: p\n    servers: ['::1:2525']\n", "x.yaml:3:15: ",
		  "invalid server '::1:2525'" },
		{ "proxy_pools:\n  - id: p\n", "x.yaml:2:5: ", "proxy pool 'p' has no servers" },
		{ "proxy_pools:\n  - id: p\n    servers: ['a:1', 'b:1', 'A:1']\n", "x.yaml:3:29: ",
		  "server 'A:1' twice in proxy pool 'p'" },
		{ "proxy_pools:\n  - id: p\n    servers: ['a:1']\n    health_check: { timeout: 0 }\n",
		  "x.yaml:4:30: ", "health_check.timeout" },
		{ "transports:\n  - id: default\n    source: { ipv4: 198.51.100.7, port: 25 }\n",
		  "x.yaml:3:35: ", "unknown key 'port'" },
		{ "transports:\n  - id: default\n    source:\n      - ipv4: 2001:db8::1\n",
		  "x.yaml:4:15: ", "invalid IPv4 address '2001:db8::1'" },
		{ "transports:\n  - id: default\n    source: [{ helo: a.example }]\n", "x.yaml:3:14: ",
		  "source needs an ipv4 or ipv6 address" },
		{ "transports:\n  - id: default\n    source: 198.51.100.7\n", "x.yaml:3:13: ",
		  "wrong type for transports[0].source" },
		/* names */
		{ "hostname: ''\n", "x.yaml:1:11: ", "invalid hostname ''" },
		{ "hostname: relay example\n", "x.yaml:1:11: ", "invalid hostname" },
		{ "spool:\n  sync: maybe\n", "x.yaml:2:9: ", "invalid boolean 'maybe' for spool.sync" },
		{ "spool:\n  path: ''\n", "x.yaml:2:9: ", "spool.path must not be empty" },
		{ "relay:\n  domains: ['*.example.com']\n", "x.yaml:2:13: ", "invalid domain" },
		{ "routes:\n  - domains: []\n    transport: default\n", "x.yaml:2:14: ",
		  "route has no domains" },
		{ "routes:\n  - domains: ['a..b']\n    transport: default\n", "x.yaml:2:15: ",
		  "invalid domain 'a..b'" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char got_err[512] = "";
		struct config *c = load(cases[i].yaml, got_err, sizeof(got_err));
		cr_expect_null(c, "case %zu accepted:\n%s", i, cases[i].yaml);
		config_free(c);
		cr_expect(strncmp(got_err, cases[i].want_prefix, strlen(cases[i].want_prefix)) == 0,
		          "case %zu: got '%s', want prefix '%s'", i, got_err, cases[i].want_prefix);
		cr_expect(strstr(got_err, cases[i].want_msg) != NULL,
		          "case %zu: got '%s', want '%s'", i, got_err, cases[i].want_msg);
		cr_expect(strchr(got_err, '\n') == NULL, "case %zu: not one line: '%s'", i, got_err);
	}
}

Test(config, unreadable_file)
{
	char got_err[256] = "";
	cr_expect_null(config_load("/nonexistent/ringrelay.yaml", got_err, sizeof(got_err)));
	cr_expect_str_eq(got_err, "/nonexistent/ringrelay.yaml:0:0: cannot open: "
	                 "No such file or directory");
}

Test(config, file_errors_name_the_file)
{
	char *path = write_temp("hostname: relay.example\nlimits:\n  max_line_length: 0\n");
	char want_prefix[256], got_err[512] = "";
	snprintf(want_prefix, sizeof(want_prefix), "%s:3:20: ", path);
	cr_expect_null(config_load(path, got_err, sizeof(got_err)));
	cr_expect(strncmp(got_err, want_prefix, strlen(want_prefix)) == 0, "got '%s'", got_err);
	unlink(path);
	free(path);
}

Test(config, proxy_protocol_words)
{
	static const struct {
		const char *word;
		enum config_proxy_mode want;
	} cases[] = {
		{ "off", CONFIG_PROXY_OFF },            /* a YAML 1.1 boolean word, plain */
		{ "'off'", CONFIG_PROXY_OFF },
		{ "OFF", CONFIG_PROXY_OFF },
		{ "trusted", CONFIG_PROXY_TRUSTED },
		{ "required", CONFIG_PROXY_REQUIRED },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char yaml[256];
		snprintf(yaml, sizeof(yaml), "listeners:\n  - id: a\n    proxy_protocol: %s\n"
		         "    proxy_hosts: [192.0.2.10]\n", cases[i].word);
		struct config *c = must_load(yaml);
		cr_expect_eq(c->listeners[0].proxy_protocol, cases[i].want, "%s", cases[i].word);
		cr_expect_eq(cidr_count(c->listeners[0].proxy_hosts), 1);
		config_free(c);
	}
}

Test(config, proxy_hosts_file_is_merged_into_proxy_hosts)
{
	char *hosts = write_temp("# haproxy tier\n192.0.2.20\n  10.9.0.0/16  # dc2\n\n"
	                         "2001:db8:99::/64\n");
	char yaml[512];
	snprintf(yaml, sizeof(yaml),
	         "listeners:\n"
	         "  - id: mta\n"
	         "    proxy_protocol: required\n"
	         "    proxy_hosts: [192.0.2.10, \"::1\"]\n"
	         "    proxy_hosts_file: %s\n"
	         "  - id: fileonly\n"
	         "    port: 2526\n"
	         "    proxy_protocol: trusted\n"
	         "    proxy_hosts_file: %s\n", hosts, hosts);
	struct config *c = must_load(yaml);
	const struct config_listener *l = &c->listeners[0];
	static const struct {
		const char *addr;
		bool want;
	} lookups[] = {
		{ "192.0.2.10", true }, { "::1", true },                 /* inline */
		{ "192.0.2.20", true }, { "10.9.255.255", true }, { "2001:db8:99::1", true },
		{ "192.0.2.21", false }, { "10.10.0.0", false }, { "2001:db8:98::1", false },
	};
	for (size_t i = 0; i < sizeof(lookups) / sizeof(lookups[0]); i++) {
		bool got_match = in_table(l->proxy_hosts, lookups[i].addr);
		cr_expect_eq(got_match, lookups[i].want, "%s: got %d", lookups[i].addr, got_match);
	}
	cr_expect_eq(cidr_count(l->proxy_hosts), 5);
	cr_expect_str_eq(l->proxy_hosts_file, hosts);
	cr_expect_eq(c->listeners[1].proxy_protocol, CONFIG_PROXY_TRUSTED);
	cr_expect_eq(cidr_count(c->listeners[1].proxy_hosts), 3);
	cr_expect(!in_table(c->listeners[1].proxy_hosts, "192.0.2.10"));
	config_free(c);
	unlink(hosts);
	free(hosts);
}

Test(config, bad_proxy_hosts_file_line_reports_its_own_position)
{
	char *hosts = write_temp("192.0.2.20\n# comment\n   10.0.0.0/33 # typo\n");
	char yaml[512], want_prefix[256], got_err[512] = "";
	snprintf(yaml, sizeof(yaml), "listeners:\n  - id: a\n    proxy_protocol: trusted\n"
	         "    proxy_hosts_file: %s\n", hosts);
	snprintf(want_prefix, sizeof(want_prefix), "%s:3:4: ", hosts);
	cr_expect_null(load(yaml, got_err, sizeof(got_err)));
	cr_expect(strncmp(got_err, want_prefix, strlen(want_prefix)) == 0,
	          "got '%s', want prefix '%s'", got_err, want_prefix);
	cr_expect(strstr(got_err, "invalid CIDR '10.0.0.0/33'") != NULL, "got '%s'", got_err);

	/* An empty file leaves trusted without hosts. */
	char *empty = write_temp("# nobody yet\n\n");
	snprintf(yaml, sizeof(yaml), "listeners:\n  - id: a\n    proxy_protocol: trusted\n"
	         "    proxy_hosts_file: %s\n", empty);
	cr_expect_null(load(yaml, got_err, sizeof(got_err)));
	cr_expect(strncmp(got_err, "x.yaml:3:21: ", 13) == 0, "got '%s'", got_err);
	unlink(empty);
	free(empty);
	unlink(hosts);
	free(hosts);
}

Test(config, listener_tls_files)
{
	char *cert = write_temp("-----BEGIN CERTIFICATE-----\n");
	char *key = write_temp("-----BEGIN PRIVATE KEY-----\n");
	char yaml[512], got_err[512] = "";
	snprintf(yaml, sizeof(yaml), "listeners:\n  - id: smtps\n    port: 465\n"
	         "    tls: { certificate: %s, key: %s }\n    tls_mode: implicit\n", cert, key);
	struct config *c = must_load(yaml);
	cr_expect_str_eq(c->listeners[0].tls_certificate, cert);
	cr_expect_str_eq(c->listeners[0].tls_key, key);
	cr_expect_eq(c->listeners[0].tls_mode, CONFIG_TLS_IMPLICIT);
	config_free(c);

	unlink(key);
	cr_expect_null(load(yaml, got_err, sizeof(got_err)));
	cr_expect(strstr(got_err, "cannot read tls.key") != NULL, "got '%s'", got_err);
	cr_expect(strstr(got_err, "No such file or directory") != NULL, "got '%s'", got_err);
	unlink(cert);
	free(cert);
	free(key);
}

Test(config, addresses_nexthops_servers)
{
	struct config *c = must_load(
		"dns:\n"
		"  servers: ['127.0.0.1:5353', '::1', '[::1]:53', '192.0.2.53']\n"
		"  max_lookups: 010\n"
		"listeners:\n"
		"  - { id: v6, address: '::1', port: 0 }\n"
		"  - { id: v6b, address: '[::]', port: 0 }\n"
		"  - { id: any, address: 0.0.0.0, port: 0 }\n"
		"transports:\n"
		"  - { id: default, nexthop: MX }\n"
		"  - { id: a, nexthop: '[10.0.0.1]' }\n"
		"  - { id: b, nexthop: '[2001:db8::1]:2525' }\n"
		"  - { id: c, nexthop: '[smtp.example.net]:587', proxy_pool: p }\n"
		"proxy_pools:\n"
		"  - { id: p, version: 1, servers: ['192.0.2.2:2525', '[2001:db8::2]:2525'] }\n");
	const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&c->listeners[0].addr;
	cr_expect_eq(c->ndns_servers, 4);
	cr_expect_eq(c->dns_max_lookups, 10, "base 10: %u", c->dns_max_lookups);
	cr_expect_eq(c->listeners[0].addr.ss_family, AF_INET6);
	cr_expect_eq(c->listeners[0].addrlen, sizeof(struct sockaddr_in6));
	cr_expect_eq(ntohs(sin6->sin6_port), 0);
	cr_expect(IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr));
	cr_expect_eq(c->listeners[1].addr.ss_family, AF_INET6);
	cr_expect_str_eq(c->transports[0].nexthop, "mx");
	cr_expect_str_eq(c->transports[1].nexthop, "[10.0.0.1]:25");
	cr_expect_str_eq(c->transports[2].nexthop, "[2001:db8::1]:2525");
	cr_expect_str_eq(c->transports[3].nexthop, "[smtp.example.net]:587");
	cr_expect_str_eq(c->transports[3].proxy_pool, "p");
	cr_expect_eq(c->proxy_pools[0].version, 1);
	config_free(c);
}

Test(config, relay_domain_match)
{
	struct config *c = must_load("relay:\n  domains: [Example.COM, 'sub.example.net.']\n");
	static const struct {
		const char *domain;
		size_t len;                    /* the name is not NUL-terminated at len */
		bool want;
	} cases[] = {
		{ "example.com", 11, true },
		{ "EXAMPLE.com", 11, true },
		{ "sub.example.net", 15, true },
		{ "example.net", 11, false },
		{ "mail.example.com", 16, false },
		{ "example.co", 10, false },
		{ "example.comx", 12, false },
		{ "example.com>", 11, true },
		{ "", 0, false },
	};
	cr_expect_str_eq(c->relay_domains[0], "example.com");
	cr_expect_str_eq(c->relay_domains[1], "sub.example.net");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		bool got_match = config_relay_domain(c, cases[i].domain, cases[i].len);
		cr_expect_eq(got_match, cases[i].want, "%.*s: got %d", (int)cases[i].len,
		             cases[i].domain, got_match);
	}
	config_free(c);
}

Test(config, summary_counts)
{
	struct config *c = must_load(
		"listeners:\n  - {id: a, port: 0}\n  - {id: b, port: 0}\n"
		"relay:\n  networks: [10.0.0.0/8, 192.0.2.0/24, '2001:db8::/32']\n"
		"  domains: [a.example, b.example]\n");
	char got[256];
	config_summary(c, got, sizeof(got));
	cr_expect_str_eq(got, "ok: x.yaml: 2 listeners, 3 relay networks, 2 relay domains, "
	                 "1 route, 1 transport, 0 proxy pools");
	config_free(c);
}

Test(config, aliases_and_flow_style)
{
	struct config *c = must_load(
		"relay:\n  networks: &nets [10.0.0.0/8]\n"
		"listeners:\n"
		"  - {id: a, port: 0, proxy_protocol: trusted, proxy_hosts: *nets}\n"
		"transports:\n"
		"  - id: default\n    source: &src {ipv4: 198.51.100.1}\n"
		"  - id: other\n    source: *src\n");
	cr_expect(in_table(c->listeners[0].proxy_hosts, "10.1.1.1"));
	cr_expect_str_eq(c->transports[1].sources[0].ipv4, "198.51.100.1");
	config_free(c);
}

Test(config, proxy_hosts_rebuild_follows_the_file)
{
	char *path = write_temp("# proxies\n192.0.2.10\n");
	char yaml[512], err[512] = "";
	snprintf(yaml, sizeof yaml,
	         "listeners:\n  - id: mta\n    proxy_protocol: trusted\n"
	         "    proxy_hosts: [198.51.100.0/24]\n    proxy_hosts_file: %s\n"
	         "    proxy_max_header: 1024\n", path);
	struct config *c = must_load(yaml);
	const struct config_listener *l = &c->listeners[0];
	cr_expect_eq(l->proxy_max_header, 1024);
	cr_expect_eq(l->nproxy_hosts_inline, 1);
	cr_expect(in_table(l->proxy_hosts, "192.0.2.10"));

	/* the file changes: a rebuild sees the new content plus the inline list */
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f);
	fputs("203.0.113.0/24\n", f);
	fclose(f);
	struct cidr_table *t = config_proxy_hosts_build(l, err, sizeof err);
	cr_assert_not_null(t, "%s", err);
	cr_expect(in_table(t, "203.0.113.77"));
	cr_expect(in_table(t, "198.51.100.1"));
	cr_expect_not(in_table(t, "192.0.2.10"));
	cidr_free(t);

	/* a broken file: NULL with the file's own position */
	f = fopen(path, "w");
	cr_assert_not_null(f);
	fputs("10.0.0.1\nnot-an-ip\n", f);
	fclose(f);
	cr_expect_null(config_proxy_hosts_build(l, err, sizeof err));
	char want_prefix[300];
	snprintf(want_prefix, sizeof want_prefix, "%s:2:1: ", path);
	cr_expect_eq(strncmp(err, want_prefix, strlen(want_prefix)), 0, "got %s", err);
	config_free(c);
	unlink(path);
	free(path);
}

Test(config, proxy_max_header_bounds)
{
	char err[512] = "";
	cr_expect_null(load("listeners:\n  - id: a\n    proxy_max_header: 100\n", err, sizeof err));
	cr_expect_eq(strncmp(err, "x.yaml:3:23: ", 13), 0, "got %s", err);
	struct config *c = must_load("listeners:\n  - id: a\n");
	cr_expect_eq(c->listeners[0].proxy_max_header, 4096);
	config_free(c);
}

/* ---- numbers: base 10 only, every key in its range ---- */

struct num_key {
	const char *key;                   /* the path the error names */
	const char *yaml;                  /* a document with one "%s" where the value goes */
	uint64_t min, max;
	uint64_t (*got)(const struct config *c);
};

#define GOT(name, expr) \
	static uint64_t got_##name(const struct config *c) { return (expr); }
GOT(workers, c->workers)
GOT(shutdown_timeout, c->shutdown_timeout)
GOT(port, ntohs(((const struct sockaddr_in *)&c->listeners[0].addr)->sin_port))
GOT(proxy_timeout, c->listeners[0].proxy_timeout)
GOT(proxy_max_header, c->listeners[0].proxy_max_header)
GOT(max_message_size, c->max_message_size)
GOT(max_data_memory, c->max_data_memory)
GOT(max_recipients, c->max_recipients)
GOT(max_line_length, c->max_line_length)
GOT(max_hops, c->max_hops)
GOT(max_connections, c->max_connections)
GOT(max_connections_per_ip, c->max_connections_per_ip)
GOT(idle_timeout, c->idle_timeout)
GOT(min_data_rate, c->min_data_rate)
GOT(t_max_connections, c->transports[0].max_connections)
GOT(t_max_messages, c->transports[0].max_messages_per_connection)
GOT(t_initial_connections, c->transports[0].initial_connections)
GOT(t_dead_after, c->transports[0].dead_after)
GOT(to_connect, c->transports[0].timeouts.connect)
GOT(to_greeting, c->transports[0].timeouts.greeting)
GOT(to_ehlo, c->transports[0].timeouts.ehlo)
GOT(to_mail, c->transports[0].timeouts.mail)
GOT(to_rcpt, c->transports[0].timeouts.rcpt)
GOT(to_data, c->transports[0].timeouts.data)
GOT(to_data_block, c->transports[0].timeouts.data_block)
GOT(to_data_done, c->transports[0].timeouts.data_done)
GOT(to_rset, c->transports[0].timeouts.rset)
GOT(to_quit, c->transports[0].timeouts.quit)
GOT(version, c->proxy_pools[0].version)
GOT(interval, c->proxy_pools[0].health_check.interval)
GOT(timeout, c->proxy_pools[0].health_check.timeout)
GOT(failure_threshold, c->proxy_pools[0].health_check.failure_threshold)
GOT(success_threshold, c->proxy_pools[0].health_check.success_threshold)
GOT(retry, c->retry_schedule[1])
GOT(max_age, c->max_age)
GOT(min_free, c->spool_min_free)
#undef GOT

#define POOL "proxy_pools:\n  - id: p\n    servers: ['a:1']\n"
#define TR "transports:\n  - id: default\n"
#define TO(key) { "transports[0].timeouts." #key, TR "    timeouts:\n      " #key ": %s\n", \
                  1, 604800, got_to_##key }

/* Every numeric key the loader knows, with its documented range. */
static const struct num_key num_keys[] = {
	{ "workers", "workers: %s\n", 0, 1024, got_workers },
	{ "shutdown_timeout", "shutdown_timeout: %s\n", 0, 3600, got_shutdown_timeout },
	{ "listeners[0].port", "listeners:\n  - id: a\n    port: %s\n", 0, 65535, got_port },
	{ "listeners[0].proxy_timeout", "listeners:\n  - id: a\n    proxy_timeout: %s\n",
	  1, 3600, got_proxy_timeout },
	{ "listeners[0].proxy_max_header", "listeners:\n  - id: a\n    proxy_max_header: %s\n",
	  232, 65551, got_proxy_max_header },
	{ "limits.max_message_size", "limits:\n  max_message_size: %s\n", 1024, 268435456,
	  got_max_message_size },
	{ "limits.max_data_memory", "limits:\n  max_message_size: 1024\n  max_data_memory: %s\n",
	  2097152, 1099511627776, got_max_data_memory },
	{ "limits.max_recipients", "limits:\n  max_recipients: %s\n", 1, 100000,
	  got_max_recipients },
	{ "limits.max_line_length", "limits:\n  max_line_length: %s\n", 78, 1048576,
	  got_max_line_length },
	{ "limits.max_hops", "limits:\n  max_hops: %s\n", 10, 1000, got_max_hops },
	{ "limits.max_connections", "limits:\n  max_connections: %s\n", 1, 1000000,
	  got_max_connections },
	{ "limits.max_connections_per_ip", "limits:\n  max_connections_per_ip: %s\n", 1, 1000000,
	  got_max_connections_per_ip },
	{ "limits.idle_timeout", "limits:\n  idle_timeout: %s\n", 1, 86400, got_idle_timeout },
	{ "limits.min_data_rate", "limits:\n  min_data_rate: %s\n", 0, 1073741824,
	  got_min_data_rate },
	{ "transports[0].max_connections", "transports:\n  - id: default\n    max_connections: %s\n",
	  1, 10000, got_t_max_connections },
	/* max_connections at its top, so that only initial_connections' own range decides */
	{ "transports[0].initial_connections",
	  TR "    max_connections: 10000\n    initial_connections: %s\n", 1, 10000,
	  got_t_initial_connections },
	{ "transports[0].dead_after", TR "    dead_after: %s\n", 1, 100, got_t_dead_after },
	TO(connect), TO(greeting), TO(ehlo), TO(mail), TO(rcpt), TO(data), TO(data_block),
	TO(data_done), TO(rset), TO(quit),
	{ "transports[0].max_messages_per_connection",
	  "transports:\n  - id: default\n    max_messages_per_connection: %s\n", 1, 1000000,
	  got_t_max_messages },
	{ "proxy_pools[0].version", POOL "    version: %s\n", 1, 2, got_version },
	{ "proxy_pools[0].health_check.interval", POOL "    health_check:\n      interval: %s\n",
	  1, 3600, got_interval },
	{ "proxy_pools[0].health_check.timeout",
	  POOL "    health_check:\n      interval: 3600\n      timeout: %s\n", 1, 3600, got_timeout },
	{ "proxy_pools[0].health_check.failure_threshold",
	  POOL "    health_check:\n      failure_threshold: %s\n", 1, 100, got_failure_threshold },
	{ "proxy_pools[0].health_check.success_threshold",
	  POOL "    health_check: { success_threshold: %s }\n", 1, 100, got_success_threshold },
	{ "queue.retry_schedule[1]", "queue:\n  retry_schedule: [60, %s]\n", 1, 604800, got_retry },
	{ "queue.max_age", "queue:\n  max_age: %s\n", 60, 31536000, got_max_age },
	{ "spool.min_free", "spool:\n  min_free: %s\n", 0, 1125899906842624, got_min_free },
};

enum num_want { NUM_VALUE = 0, NUM_RANGE, NUM_SYNTAX, NUM_LIST, NUM_MAP };

struct num_case {
	char yaml[48];                     /* as written in the document */
	char text[48];                     /* the scalar's text, as the message shows it */
	enum num_want want;
	uint64_t want_value;
};

/* Where "%s" sits in a template: the value's 1-based line and column. */
static void num_position(const char *tmpl, unsigned *line, unsigned *col)
{
	const char *at = strstr(tmpl, "%s"), *bol = tmpl;
	*line = 1;
	for (const char *p = tmpl; p < at; p++)
		if (*p == '\n') {
			(*line)++;
			bol = p + 1;
		}
	*col = (unsigned)(at - bol) + 1;
}

/* The template with its "%s" replaced by value. */
static void num_doc(char *out, size_t len, const char *tmpl, const char *value)
{
	const char *at = strstr(tmpl, "%s");
	snprintf(out, len, "%.*s%s%s", (int)(at - tmpl), tmpl, value, at + 2);
}

static size_t num_cases(const struct num_key *k, struct num_case *out)
{
	static const char *const syntax[] = {
		"0x10", "0X10", "+5", "1.5", "1e3", "1_000", "0o10", "10abc", "1 000", "~", "'-'",
		"0b1", "\"\"", "''", "\" 10\"", "'10 '",
	};
	static const char *const range[] = {
		"-1", "-0", "-010", "18446744073709551615", "18446744073709551616",
		"99999999999999999999999999999999",
	};
	/* Integers whose value decides: in range, or not (010 is ten, 019 nineteen). */
	static const struct {
		const char *yaml, *text;
		uint64_t value;
	} decimal[] = {
		{ "010", "010", 10 }, { "019", "019", 19 }, { "\"010\"", "010", 10 },
		{ "'0100'", "0100", 100 }, { "000", "000", 0 }, { "4294968", "4294968", 4294968 },
		{ "4294967296", "4294967296", 4294967296ull },
		{ "0000000000000000000000000000065535", "0000000000000000000000000000065535", 65535 },
	};
	size_t n = 0;
	uint64_t bounds[4] = { k->min - 1, k->min, k->max, k->max + 1 };

	for (size_t i = 0; i < 4; i++) {
		if (i == 0 && k->min == 0)
			continue;                  /* min-1 is "-1", below */
		struct num_case *c = &out[n++];
		snprintf(c->yaml, sizeof(c->yaml), "%" PRIu64, bounds[i]);
		snprintf(c->text, sizeof(c->text), "%s", c->yaml);
		c->want = i == 1 || i == 2 ? NUM_VALUE : NUM_RANGE;
		c->want_value = bounds[i];
	}
	for (size_t i = 0; i < sizeof(decimal) / sizeof(decimal[0]); i++) {
		struct num_case *c = &out[n++];
		snprintf(c->yaml, sizeof(c->yaml), "%s", decimal[i].yaml);
		snprintf(c->text, sizeof(c->text), "%s", decimal[i].text);
		c->want_value = decimal[i].value;
		c->want = c->want_value >= k->min && c->want_value <= k->max ? NUM_VALUE : NUM_RANGE;
	}
	for (size_t i = 0; i < sizeof(syntax) / sizeof(syntax[0]); i++) {
		struct num_case *c = &out[n++];
		const char *t = syntax[i];
		size_t tl = strlen(t);
		snprintf(c->yaml, sizeof(c->yaml), "%s", t);
		if (t[0] == '"' || t[0] == '\'')   /* quoted: the text is inside */
			snprintf(c->text, sizeof(c->text), "%.*s", (int)(tl - 2), t + 1);
		else
			snprintf(c->text, sizeof(c->text), "%s", t);
		c->want = NUM_SYNTAX;
	}
	for (size_t i = 0; i < sizeof(range) / sizeof(range[0]); i++) {
		struct num_case *c = &out[n++];
		snprintf(c->yaml, sizeof(c->yaml), "%s", range[i]);
		snprintf(c->text, sizeof(c->text), "%s", range[i]);
		c->want = NUM_RANGE;
	}
	snprintf(out[n].yaml, sizeof(out[n].yaml), "[1]");
	out[n++].want = NUM_LIST;
	snprintf(out[n].yaml, sizeof(out[n].yaml), "{a: 1}");
	out[n++].want = NUM_MAP;
	return n;
}

Test(config, every_number_is_base_10_and_within_its_range)
{
	for (size_t i = 0; i < sizeof(num_keys) / sizeof(num_keys[0]); i++) {
		const struct num_key *k = &num_keys[i];
		struct num_case cases[64];
		size_t n = num_cases(k, cases);
		unsigned line, col;

		num_position(k->yaml, &line, &col);
		for (size_t j = 0; j < n; j++) {
			const struct num_case *nc = &cases[j];
			char yaml[512], want_err[512], got_err[512] = "";
			struct config *c;

			num_doc(yaml, sizeof(yaml), k->yaml, nc->yaml);
			switch (nc->want) {
			case NUM_VALUE:
				c = load(yaml, got_err, sizeof(got_err));
				cr_expect_not_null(c, "%s: %s: refused: %s", k->key, nc->yaml, got_err);
				if (c != NULL)
					cr_expect_eq(k->got(c), nc->want_value, "%s: %s: got %" PRIu64
					             ", want %" PRIu64, k->key, nc->yaml, k->got(c),
					             nc->want_value);
				config_free(c);
				continue;
			case NUM_RANGE:
				snprintf(want_err, sizeof(want_err), "x.yaml:%u:%u: %s: %s is out of "
				         "range (%" PRIu64 "..%" PRIu64 ")", line, col, k->key, nc->text,
				         k->min, k->max);
				break;
			case NUM_SYNTAX:
				snprintf(want_err, sizeof(want_err), "x.yaml:%u:%u: invalid integer '%s' "
				         "for %s (base-10 digits only)", line, col, nc->text, k->key);
				break;
			case NUM_LIST:
			case NUM_MAP:
				snprintf(want_err, sizeof(want_err), "x.yaml:%u:%u: wrong type for %s: "
				         "expected an integer, got %s", line, col, k->key,
				         nc->want == NUM_LIST ? "a list" : "a mapping");
				break;
			}
			expect_refused(yaml, want_err);
		}
	}
}

Test(config, idle_timeout_of_the_issue)
{
	/* The reported cases: 010 was eight, 019 one, and 4294968 s wrapped to 0.8 s. */
	static const struct {
		const char *value;
		unsigned want;                 /* 0: refused */
	} cases[] = { { "010", 10 }, { "019", 19 }, { "86400", 86400 }, { "4294968", 0 } };
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char yaml[128];
		snprintf(yaml, sizeof(yaml), "limits:\n  idle_timeout: %s\n", cases[i].value);
		if (cases[i].want == 0) {
			expect_refused(yaml, "x.yaml:2:17: limits.idle_timeout: 4294968 is out of "
			               "range (1..86400)");
			continue;
		}
		struct config *c = must_load(yaml);
		cr_expect_eq(c->idle_timeout, cases[i].want, "%s", cases[i].value);
		config_free(c);
	}
}

Test(config, numbers_in_flow_style_and_aliases)
{
	struct config *c = must_load(
		"limits: { idle_timeout: 010, max_recipients: &n 0050 }\n"
		"queue: { retry_schedule: [010, *n, 604800], max_age: 060 }\n"
		"shutdown_timeout: 0\n");
	cr_expect_eq(c->idle_timeout, 10);
	cr_expect_eq(c->max_recipients, 50);
	cr_assert_eq(c->nretry_schedule, 3);
	cr_expect_eq(c->retry_schedule[0], 10);
	cr_expect_eq(c->retry_schedule[1], 50);
	cr_expect_eq(c->retry_schedule[2], 604800);
	cr_expect_eq(c->max_age, 60);
	cr_expect_eq(c->shutdown_timeout, 0);
	config_free(c);
}

/* limits.max_data_memory holds one message of the largest size and 1 MiB more (the
 * session's buffer: the data and our Received: header), whichever key is set. */
Test(config, data_memory_holds_the_largest_message)
{
	struct config *c = must_load("limits: { max_message_size: 10485760, "
	                             "max_data_memory: 11534336 }\n");
	cr_expect_eq(c->max_data_memory, 11534336);
	config_free(c);
	expect_refused("limits: { max_message_size: 10485760, max_data_memory: 11534335 }\n",
	               "x.yaml:1:56: limits.max_data_memory (11534335) "
	               "must hold one message of limits.max_message_size (10485760) and 1 MiB more");
	expect_refused("limits:\n  max_data_memory: 20000000\n",
	               "x.yaml:2:20: limits.max_data_memory (20000000) "
	               "must hold one message of limits.max_message_size (52428800) and 1 MiB more");
	/* the default GiB under a larger message size */
	c = must_load("limits: { max_message_size: 268435456 }\n");
	cr_expect_eq(c->max_data_memory, 1073741824);
	config_free(c);
}

Test(config, health_check_timeout_not_over_interval)
{
	struct config *c = must_load(POOL "    health_check: { interval: 7, timeout: 7 }\n");
	cr_expect_eq(c->proxy_pools[0].health_check.timeout, 7);
	config_free(c);
	expect_refused(POOL "    health_check:\n      interval: 5\n      timeout: 6\n",
	               "x.yaml:6:16: proxy_pools[0].health_check.timeout: 6 is longer than "
	               "health_check.interval (5)");
	/* The default interval is 5: a timeout of 10 alone is over it. */
	expect_refused(POOL "    health_check: { timeout: 10 }\n",
	               "x.yaml:4:30: proxy_pools[0].health_check.timeout: 10 is longer than "
	               "health_check.interval (5)");
}

Test(config, retry_schedule_has_1_to_64_entries)
{
	char yaml[1024], want_err[256];
	size_t len = (size_t)snprintf(yaml, sizeof(yaml), "queue:\n  retry_schedule: [");
	for (int i = 0; i < 64; i++)
		len += (size_t)snprintf(yaml + len, sizeof(yaml) - len, "%s7", i ? ", " : "");
	snprintf(yaml + len, sizeof(yaml) - len, "]\n");
	struct config *c = must_load(yaml);
	cr_expect_eq(c->nretry_schedule, 64);
	cr_expect_eq(c->retry_schedule[63], 7);
	config_free(c);

	/* A 65th entry: the error points at it ("  retry_schedule: [" is 19 columns). */
	snprintf(yaml + len, sizeof(yaml) - len, ", 7]\n");
	snprintf(want_err, sizeof(want_err), "x.yaml:2:%d: queue.retry_schedule: 65 entries, at "
	         "most 64 (the last one repeats)", 20 + 3 * 64);
	expect_refused(yaml, want_err);
	expect_refused("queue:\n  retry_schedule: 60\n", "x.yaml:2:19: wrong type for "
	               "queue.retry_schedule: expected a list, got a scalar");
}

/* ---- files that are not regular, and the spool path ---- */

static char *temp_dir(void)
{
	char *dir = strdup("/tmp/config_test_XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	return dir;
}

Test(config, a_fifo_is_refused_never_waited_on)
{
	char *dir = temp_dir();
	char fifo[256], hosts[256], yaml[512], want_err[512], got_err[512] = "";
	snprintf(fifo, sizeof(fifo), "%s/ringrelay.yaml", dir);
	snprintf(hosts, sizeof(hosts), "%s/haproxy_hosts", dir);
	cr_assert_eq(mkfifo(fifo, 0600), 0, "mkfifo: %s", strerror(errno));

	/* open(2) of a FIFO without a writer blocks: the loader used to hang here forever.
	 * SIGALRM ends (and fails) the test if it still does. */
	alarm(5);
	cr_expect_null(config_load(fifo, got_err, sizeof(got_err)));
	snprintf(want_err, sizeof(want_err), "%s:0:0: not a regular file", fifo);
	cr_expect_str_eq(got_err, want_err);

	/* proxy_hosts_file a FIFO: an error at the key's value. */
	cr_assert_eq(mkfifo(hosts, 0600), 0);
	snprintf(yaml, sizeof(yaml), "listeners:\n  - id: a\n    proxy_protocol: trusted\n"
	         "    proxy_hosts_file: %s\n", hosts);
	snprintf(want_err, sizeof(want_err), "x.yaml:4:23: cannot read proxy_hosts_file '%s': "
	         "not a regular file", hosts);
	expect_refused(yaml, want_err);

	/* A proxy_hosts_file that becomes a FIFO after the load: the rebuild refuses it. */
	cr_assert_eq(unlink(hosts), 0);
	FILE *f = fopen(hosts, "w");
	cr_assert_not_null(f);
	fputs("192.0.2.10\n", f);
	fclose(f);
	struct config *c = must_load(yaml);
	cr_assert_eq(unlink(hosts), 0);
	cr_assert_eq(mkfifo(hosts, 0600), 0);
	cr_expect_null(config_proxy_hosts_build(&c->listeners[0], got_err, sizeof(got_err)));
	snprintf(want_err, sizeof(want_err), "%s:0:0: not a regular file", hosts);
	cr_expect_str_eq(got_err, want_err);
	config_free(c);
	alarm(0);

	/* A directory is not a regular file either. */
	cr_expect_null(config_load(dir, got_err, sizeof(got_err)));
	snprintf(want_err, sizeof(want_err), "%s:0:0: not a regular file", dir);
	cr_expect_str_eq(got_err, want_err);
	unlink(fifo);
	unlink(hosts);
	rmdir(dir);
	free(dir);
}

Test(config, a_config_file_over_16_mib_is_refused)
{
	char *path = write_temp("");
	char want_err[512], got_err[512] = "";
	cr_assert_eq(truncate(path, (16 << 20) + 1), 0);          /* sparse */
	cr_expect_null(config_load(path, got_err, sizeof(got_err)));
	snprintf(want_err, sizeof(want_err), "%s:0:0: file larger than 16777216 bytes", path);
	cr_expect_str_eq(got_err, want_err);
	unlink(path);
	free(path);
}

Test(config, tls_files_must_be_regular_files)
{
	char *dir = temp_dir();
	char yaml[512], want_err[512];
	snprintf(yaml, sizeof(yaml), "listeners:\n  - id: a\n    tls: { certificate: %s, key: %s }\n",
	         dir, dir);
	snprintf(want_err, sizeof(want_err), "x.yaml:3:25: cannot read tls.certificate '%s': "
	         "not a regular file", dir);
	expect_refused(yaml, want_err);
	rmdir(dir);
	free(dir);
}

Test(config, spool_path_that_exists_must_be_a_directory)
{
	char *file = write_temp("not a spool\n");
	char *dir = temp_dir();
	char yaml[512], want_err[512];

	snprintf(yaml, sizeof(yaml), "hostname: a\nspool:\n  path: %s\n", file);
	snprintf(want_err, sizeof(want_err), "x.yaml:3:9: spool.path '%s' exists and is not a "
	         "directory", file);
	expect_refused(yaml, want_err);

	snprintf(yaml, sizeof(yaml), "spool: { path: %s/sub }\n", file);
	snprintf(want_err, sizeof(want_err), "x.yaml:1:16: spool.path '%s/sub': a parent of it "
	         "is not a directory", file);
	expect_refused(yaml, want_err);

	/* A directory, and a path that does not exist yet (the daemon creates it): fine. */
	snprintf(yaml, sizeof(yaml), "spool: { path: %s }\n", dir);
	config_free(must_load(yaml));
	snprintf(yaml, sizeof(yaml), "spool: { path: %s/not/yet }\n", dir);
	config_free(must_load(yaml));
	unlink(file);
	rmdir(dir);
	free(file);
	free(dir);
}

Test(config, default_spool_path_that_is_a_file)
{
	char *dir = temp_dir();
	char got_err[512] = "", spool[300], old[4096];
	cr_assert_not_null(getcwd(old, sizeof(old)));
	snprintf(spool, sizeof(spool), "%s/spool", dir);
	FILE *f = fopen(spool, "w");
	cr_assert_not_null(f);
	fclose(f);
	cr_assert_eq(chdir(dir), 0);

	/* The embedded defaults have no file and no position: a plain message. */
	cr_expect_null(config_load(NULL, got_err, sizeof(got_err)));
	cr_expect_str_eq(got_err, "(defaults): spool.path './spool' (the default) exists and is "
	                 "not a directory");
	/* A file that leaves spool.path out: the nearest position is the document. */
	expect_refused("hostname: a\n", "x.yaml:1:1: spool.path './spool' (the default) exists "
	               "and is not a directory");

	cr_assert_eq(chdir(old), 0);
	unlink(spool);
	rmdir(dir);
	free(dir);
}

/* Routing: the first route with a matching domain wins; "*.dom" is subdomains only;
 * case and one trailing dot do not matter; no match without a "*" route. */
Test(config, route_lookup)
{
	struct config *c = must_load(
		"transports:\n"
		"  - id: a\n    nexthop: \"[127.0.0.1]:2601\"\n"
		"  - id: b\n    nexthop: \"[127.0.0.1]:2602\"\n"
		"  - id: c\n    nexthop: mx\n"
		"routes:\n"
		"  - domains: [example.net, \"*.example.org\"]\n    transport: a\n"
		"  - domains: [example.org, sub.example.net]\n    transport: b\n"
		"  - domains: [\"*\"]\n    transport: c\n");
	struct { const char *d; const char *want; } v[] = {
		{ "example.net", "a" }, { "EXAMPLE.NET.", "a" }, { "x.example.org", "a" },
		{ "a.b.Example.Org", "a" }, { "example.org", "b" }, { "sub.example.net", "b" },
		{ "xexample.org", "c" }, { "other.test", "c" }, { "net", "c" },
		{ "x.sub.example.net", "c" },
	};
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		const struct config_transport *t = config_route(c, v[i].d, strlen(v[i].d));
		cr_assert_not_null(t, "%s: no route", v[i].d);
		cr_expect_str_eq(t->id, v[i].want, "%s", v[i].d);
	}
	cr_expect_str_eq(config_transport_by_id(c, "b")->nexthop, "[127.0.0.1]:2602");
	cr_expect_null(config_transport_by_id(c, "zz"));
	config_free(c);

	c = must_load("transports:\n  - id: a\n    nexthop: mx\n"
	              "routes:\n  - domains: [only.test]\n    transport: a\n");
	cr_expect_not_null(config_route(c, "only.test", 9));
	cr_expect_null(config_route(c, "other.test", 10), "no '*' route: unrouted");
	config_free(c);

	c = must_load("hostname: h.test\n");          /* the default: "*" -> default, mx */
	const struct config_transport *t = config_route(c, "any.test", 8);
	cr_assert_not_null(t);
	cr_expect_str_eq(t->id, "default");
	cr_expect_str_eq(t->nexthop, "mx");
	config_free(c);
}

/* ---- delivery shaping: rates, initial_connections, timeouts ---- */

Test(config, rates_good_values)
{
	static const struct {
		const char *value;
		unsigned want_events, want_period_ms;
	} cases[] = {
		{ "5/s", 5, 1000 }, { "1/s", 1, 1000 }, { "1000000/s", 1000000, 1000 },
		{ "30/min", 30, 60000 }, { "1/h", 1, 3600000 }, { "1000000/h", 1000000, 3600000 },
		{ "010/s", 10, 1000 }, { "'7/min'", 7, 60000 }, { "\"12/h\"", 12, 3600000 },
		{ "0", 0, 0 }, { "000", 0, 0 }, { "'0'", 0, 0 },
	};
	static const char *const keys[] = { "message_rate", "connection_rate" };
	for (size_t k = 0; k < 2; k++)
		for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
			char yaml[256];
			snprintf(yaml, sizeof(yaml), TR "    %s: %s\n", keys[k], cases[i].value);
			struct config *c = must_load(yaml);
			const struct config_rate *got = k == 0 ? &c->transports[0].message_rate :
			                                         &c->transports[0].connection_rate;
			const struct config_rate *other = k == 1 ? &c->transports[0].message_rate :
			                                           &c->transports[0].connection_rate;
			cr_expect_eq(got->events, cases[i].want_events, "%s", yaml);
			cr_expect_eq(got->period_ms, cases[i].want_period_ms, "%s", yaml);
			cr_expect_eq(other->events, 0, "%s: the other rate is set", yaml);
			config_free(c);
		}
	/* both, and a second transport's own */
	struct config *c = must_load("transports:\n  - id: default\n    message_rate: 100/s\n"
	                             "    connection_rate: 10/min\n  - id: b\n"
	                             "    message_rate: 3/h\n");
	cr_expect_eq(c->transports[0].message_rate.events, 100);
	cr_expect_eq(c->transports[0].connection_rate.period_ms, 60000);
	cr_expect_eq(c->transports[1].message_rate.events, 3);
	cr_expect_eq(c->transports[1].message_rate.period_ms, 3600000);
	cr_expect_eq(c->transports[1].connection_rate.events, 0);
	config_free(c);
}

Test(config, rates_bad_values)
{
	static const char long_rate[] =
		"1111111111222222222233333333334444444444555555555566666666667777777777/s";
	enum { SYNTAX, RANGE, LIST, MAP };
	static const struct {
		const char *yaml, *text;   /* as written; the text the message shows */
		int want;
	} cases[] = {
		{ "10/x", "10/x", SYNTAX }, { "10/m", "10/m", SYNTAX }, { "10/S", "10/S", SYNTAX },
		{ "10/sec", "10/sec", SYNTAX }, { "10/hour", "10/hour", SYNTAX },
		{ "1e3/s", "1e3/s", SYNTAX }, { "1.5/s", "1.5/s", SYNTAX },
		{ "+5/s", "+5/s", SYNTAX }, { "0x10/s", "0x10/s", SYNTAX },
		{ "' 5/s'", " 5/s", SYNTAX }, { "'5/s '", "5/s ", SYNTAX },
		{ "5 /s", "5 /s", SYNTAX }, { "5/ s", "5/ s", SYNTAX },
		{ "/s", "/s", SYNTAX }, { "5/", "5/", SYNTAX }, { "5", "5", SYNTAX },
		{ "-1", "-1", SYNTAX }, { "5/s/s", "5/s/s", SYNTAX }, { "''", "", SYNTAX },
		{ "~", "~", SYNTAX }, { "unlimited", "unlimited", SYNTAX },
		{ "0/s", "0/s", RANGE }, { "000/min", "000/min", RANGE }, { "-1/s", "-1/s", RANGE },
		{ "-0/h", "-0/h", RANGE }, { "1000001/s", "1000001/s", RANGE },
		{ "18446744073709551616/s", "18446744073709551616/s", RANGE },
		/* cut at 64 octets in the message */
		{ long_rate, "1111111111222222222233333333334444444444555555555566666666667777...",
		  RANGE },
		{ "'1111111111222222222233333333334444444444555555555566666666667777777777/x'",
		  "1111111111222222222233333333334444444444555555555566666666667777...", SYNTAX },
		{ "[5/s]", "", LIST }, { "{n: 5}", "", MAP },
	};
	static const char *const keys[] = { "message_rate", "connection_rate" };
	for (size_t k = 0; k < 2; k++)
		for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
			char yaml[512], want_err[512], tmpl[128], path[64];
			unsigned line, col;
			snprintf(tmpl, sizeof(tmpl), TR "    %s: %%s\n", keys[k]);
			snprintf(path, sizeof(path), "transports[0].%s", keys[k]);
			num_position(tmpl, &line, &col);
			num_doc(yaml, sizeof(yaml), tmpl, cases[i].yaml);
			switch (cases[i].want) {
			case SYNTAX:
				snprintf(want_err, sizeof(want_err), "x.yaml:%u:%u: invalid rate '%s' for "
				         "%s (expected N/s, N/min or N/h, or 0 for unlimited)", line, col,
				         cases[i].text, path);
				break;
			case RANGE:
				snprintf(want_err, sizeof(want_err), "x.yaml:%u:%u: %s: %s is out of "
				         "range (N 1..1000000)", line, col, path, cases[i].text);
				break;
			default:
				snprintf(want_err, sizeof(want_err), "x.yaml:%u:%u: wrong type for %s: "
				         "expected a rate (N/s, N/min or N/h), got %s", line, col, path,
				         cases[i].want == LIST ? "a list" : "a mapping");
				break;
			}
			expect_refused(yaml, want_err);
		}
	/* the second transport's own path */
	expect_refused("transports:\n  - id: default\n  - id: b\n    connection_rate: 10/x\n",
	               "x.yaml:4:22: invalid rate '10/x' for transports[1].connection_rate "
	               "(expected N/s, N/min or N/h, or 0 for unlimited)");
}

Test(config, initial_connections_clamped_to_max_connections)
{
	static const struct {
		const char *keys;          /* under the transport */
		unsigned want_initial, want_max;
	} cases[] = {
		{ "", 5, 100 },
		{ "    max_connections: 2\n", 2, 2 },             /* the default, clamped */
		{ "    max_connections: 1\n", 1, 1 },
		{ "    max_connections: 4\n", 4, 4 },
		{ "    max_connections: 5\n", 5, 5 },
		{ "    max_connections: 6\n", 5, 6 },
		{ "    max_connections: 2\n    initial_connections: 2\n", 2, 2 },
		{ "    max_connections: 2\n    initial_connections: 1\n", 1, 2 },
		{ "    initial_connections: 100\n", 100, 100 },
		{ "    initial_connections: 1\n", 1, 100 },
		{ "    initial_connections: 20\n    max_connections: 30\n", 20, 30 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char yaml[256];
		snprintf(yaml, sizeof(yaml), TR "%s", cases[i].keys);
		struct config *c = must_load(yaml);
		cr_expect_eq(c->transports[0].initial_connections, cases[i].want_initial, "%s", yaml);
		cr_expect_eq(c->transports[0].max_connections, cases[i].want_max, "%s", yaml);
		config_free(c);
	}
	/* written above max_connections: an error at initial_connections, in either order */
	expect_refused(TR "    max_connections: 2\n    initial_connections: 3\n",
	               "x.yaml:4:26: transports[0].initial_connections: 3 is more than "
	               "max_connections (2)");
	expect_refused(TR "    initial_connections: 5\n    max_connections: 4\n",
	               "x.yaml:3:26: transports[0].initial_connections: 5 is more than "
	               "max_connections (4)");
	expect_refused(TR "    initial_connections: 101\n",
	               "x.yaml:3:26: transports[0].initial_connections: 101 is more than "
	               "max_connections (100)");
	expect_refused("transports:\n  - id: default\n  - {id: b, max_connections: 3, "
	               "initial_connections: 4}\n",
	               "x.yaml:3:54: transports[1].initial_connections: 4 is more than "
	               "max_connections (3)");
}

Test(config, transport_timeouts)
{
	struct smtp_cli_timeouts got;
	struct config *c = must_load(TR "    timeouts:\n      connect: 10\n      greeting: 60\n"
	                             "      ehlo: 61\n      mail: 62\n      rcpt: 63\n"
	                             "      data: 64\n      data_block: 65\n"
	                             "      data_done: 604800\n      rset: 66\n      quit: 1\n"
	                             "    dead_after: 7\n"
	                             "  - id: b\n    timeouts: { rcpt: 20 }\n"
	                             "  - id: c\n    timeouts: {}\n  - id: d\n    timeouts:\n");
	const struct config_timeouts *t = &c->transports[0].timeouts;
	cr_expect_eq(t->connect, 10);
	cr_expect_eq(t->greeting, 60);
	cr_expect_eq(t->data_done, 604800);
	cr_expect_eq(t->quit, 1);
	cr_expect_eq(c->transports[0].dead_after, 7);
	config_transport_cli_timeouts(&c->transports[0], &got);
	cr_expect_eq(got.greeting, 60000);
	cr_expect_eq(got.helo, 61000);
	cr_expect_eq(got.mail, 62000);
	cr_expect_eq(got.rcpt, 63000);
	cr_expect_eq(got.data_init, 64000);
	cr_expect_eq(got.data_block, 65000);
	cr_expect_eq(got.data_end, 604800000u, "a week in ms fits");
	cr_expect_eq(got.rset, 66000);
	cr_expect_eq(got.quit, 1000);
	/* one key given, the others default */
	cr_expect_eq(c->transports[1].timeouts.rcpt, 20);
	cr_expect_eq(c->transports[1].timeouts.mail, 300);
	cr_expect_eq(c->transports[1].timeouts.connect, 30);
	expect_default_shaping(&c->transports[2]);
	expect_default_shaping(&c->transports[3]);
	config_free(c);

	expect_refused(TR "    timeouts:\n      helo: 5\n",
	               "x.yaml:4:7: unknown key 'helo' in transports[0].timeouts");
	expect_refused(TR "    timeouts: 30\n", "x.yaml:3:15: wrong type for "
	               "transports[0].timeouts: expected a mapping, got a scalar");
	expect_refused(TR "    timeout: { connect: 5 }\n",
	               "x.yaml:3:5: unknown key 'timeout' in transports[0]");
	expect_refused(TR "    timeouts: { data_done: 604801 }\n", "x.yaml:3:28: "
	               "transports[0].timeouts.data_done: 604801 is out of range (1..604800)");
	expect_refused(TR "    dead_after: 0\n",
	               "x.yaml:3:17: transports[0].dead_after: 0 is out of range (1..100)");
}

/* shaping (DESIGN.md): per site, refining the transport; DESIGN's own example loads. */
Test(config, shaping_entries)
{
	struct config *c = must_load(
		"shaping:\n"
		"  - site: default\n"
		"    max_connections: 20\n"
		"    initial_connections: 5\n"
		"    max_messages_per_connection: 1000\n"
		"    max_message_rate: 0\n"
		"    max_connection_rate: 0\n"
		"  - site: \"*.Google.com.\"\n"
		"    max_connections: 5\n"
		"  - site: mx.example.net\n"
		"    max_message_rate: 10/min\n"
		"    max_connection_rate: 3\n");
	cr_assert_eq(c->nshaping, 3);
	cr_expect_str_eq(c->shaping[0].site, "default");
	cr_expect_eq(c->shaping[0].set, CONFIG_SH_MAX_CONNECTIONS | CONFIG_SH_INITIAL_CONNECTIONS |
	                                 CONFIG_SH_MAX_MESSAGES | CONFIG_SH_MESSAGE_RATE |
	                                 CONFIG_SH_CONNECTION_RATE);
	cr_expect_eq(c->shaping[0].max_connections, 20);
	cr_expect_eq(c->shaping[0].message_rate.events, 0);      /* 0: unlimited */
	cr_expect_str_eq(c->shaping[1].site, "*.google.com");
	cr_expect_eq(c->shaping[1].set, CONFIG_SH_MAX_CONNECTIONS);
	cr_expect_eq(c->shaping[1].max_connections, 5);
	cr_expect_eq(c->shaping[2].message_rate.events, 10);
	cr_expect_eq(c->shaping[2].message_rate.period_ms, 60000);
	cr_expect_eq(c->shaping[2].connection_rate.events, 3);   /* a bare N: per second */
	cr_expect_eq(c->shaping[2].connection_rate.period_ms, 1000);

	/* lookup: a specific entry beats default whatever the order; default otherwise */
	const char *g[] = { "alt1.gmail-smtp-in.l.google.com", "gmail-smtp-in.l.GOOGLE.com." };
	const char *e[] = { "mx.example.net" };
	const char *o[] = { "mx.other.org", "mx2.other.org" };
	cr_expect_eq(config_shaping_for(c, g, 2), &c->shaping[1]);
	cr_expect_eq(config_shaping_for(c, e, 1), &c->shaping[2]);
	cr_expect_eq(config_shaping_for(c, o, 2), &c->shaping[0]);
	cr_expect_eq(config_shaping_for(c, NULL, 0), &c->shaping[0]);
	const char *gc[] = { "google.com" };                       /* *.x is subdomains only */
	cr_expect_eq(config_shaping_for(c, gc, 1), &c->shaping[0]);
	config_free(c);

	struct config *none = must_load("shaping:\n  - site: \"*.example.org\"\n    max_connections: 2\n");
	cr_expect_null(config_shaping_for(none, o, 2));
	config_free(none);

	expect_refused("shaping:\n  - max_connections: 2\n",
	               "x.yaml:2:5: missing required key 'site' in shaping[0]");
	expect_refused("shaping:\n  - site: \"bad site\"\n",
	               "x.yaml:2:11: invalid site 'bad site' in shaping[0].site (expected "
	               "default, a host name or *.domain)");
	expect_refused("shaping:\n  - site: \"*\"\n",
	               "x.yaml:2:11: site '*' in shaping[0].site: use default for every site");
	expect_refused("shaping:\n  - site: a.example\n  - site: A.example.\n",
	               "x.yaml:3:11: duplicate shaping site 'a.example'");
	expect_refused("shaping:\n  - site: default\n    max_connections: 2\n    initial_connections: 3\n",
	               "x.yaml:4:26: shaping[0].initial_connections: 3 is more than max_connections (2)");
	expect_refused("shaping:\n  - site: default\n    max_connections: 0\n",
	               "x.yaml:3:22: shaping[0].max_connections: 0 is out of range (1..10000)");
	expect_refused("shaping:\n  - site: default\n    max_message_rate: 5/x\n",
	               "x.yaml:3:23: invalid rate '5/x' for shaping[0].max_message_rate "
	               "(expected N/s, N/min or N/h, or 0 for unlimited)");
	expect_refused("shaping:\n  - site: default\n    max_message_rate: 1000001\n",
	               "x.yaml:3:23: shaping[0].max_message_rate: 1000001 is out of range "
	               "(N 1..1000000)");
	expect_refused("shaping:\n  - site: default\n    speed: 3\n",
	               "x.yaml:3:5: unknown key 'speed' in shaping[0]");
}

/* proxy_pools[].health_check.probe and transports[].source_failover (issue 9). */
Test(config, health_check_probe)
{
	static const struct {
		const char *probe;         /* the YAML value as written */
		const char *want;          /* stored */
	} ok[] = {
		{ "'[192.0.2.50]:25'", "[192.0.2.50]:25" },
		{ "\"[2001:db8::50]:2525\"", "[2001:db8::50]:2525" },
		{ "'[192.0.2.50]'", "[192.0.2.50]:25" },
		{ "'[::ffff:192.0.2.50]:65535'", "[::ffff:192.0.2.50]:65535" },
		{ "'[192.0.2.50]:1'", "[192.0.2.50]:1" },
	};
	char yaml[512];
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		snprintf(yaml, sizeof(yaml), POOL "    health_check: { interval: 3, probe: %s }\n",
		         ok[i].probe);
		struct config *c = must_load(yaml);
		cr_expect_str_eq(c->proxy_pools[0].health_check.probe, ok[i].want);
		cr_expect_eq(c->proxy_pools[0].health_check.interval, 3);
		config_free(c);
	}
	struct config *c = must_load(POOL "    health_check: { interval: 3 }\n");
	cr_expect_null(c->proxy_pools[0].health_check.probe);
	config_free(c);
	c = must_load(POOL);
	cr_expect_null(c->proxy_pools[0].health_check.probe);
	config_free(c);

	/* the value's position: line 4, column 28 of POOL "    health_check: { probe: V }" */
	static const struct {
		const char *probe, *want_err;
	} bad[] = {
		{ "'192.0.2.50:25'", "invalid probe '192.0.2.50:25'" },
		{ "'[mx.example.com]:25'", "invalid probe '[mx.example.com]:25'" },
		{ "'[192.0.2.50]:0'", "invalid probe '[192.0.2.50]:0'" },
		{ "'[192.0.2.50]:65536'", "invalid probe '[192.0.2.50]:65536'" },
		{ "'[192.0.2.50]:'", "invalid probe '[192.0.2.50]:'" },
		{ "'[192.0.2.50]:25x'", "invalid probe '[192.0.2.50]:25x'" },
		{ "'[192.0.2.50]:-25'", "invalid probe '[192.0.2.50]:-25'" },
		{ "'[192.0.2.50]:025000'", "invalid probe '[192.0.2.50]:025000'" },
		{ "'[192.0.2.50] :25'", "invalid probe '[192.0.2.50] :25'" },
		{ "'[192.0.2.300]:25'", "invalid probe '[192.0.2.300]:25'" },
		{ "'[2001:db8::1%eth0]:25'", "invalid probe '[2001:db8::1%eth0]:25'" },
		{ "'[]:25'", "invalid probe '[]:25'" },
		{ "'[192.0.2.50'", "invalid probe '[192.0.2.50'" },
		{ "''", "invalid probe ''" },
		{ "25", "invalid probe '25'" },
		{ "\"[192.0.2.50]\\0:25\"", "invalid probe '[192.0.2.50]'" },
		{ "[a]", "wrong type for proxy_pools[0].health_check.probe: expected a string "
		         "\"[IP]:port\", got a list" },
		{ "{a: 1}", "wrong type for proxy_pools[0].health_check.probe: expected a string "
		            "\"[IP]:port\", got a mapping" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char want[512];
		snprintf(yaml, sizeof(yaml), POOL "    health_check: { probe: %s }\n", bad[i].probe);
		snprintf(want, sizeof(want), "x.yaml:4:28: %s%s", bad[i].want_err,
		         strncmp(bad[i].want_err, "wrong", 5) == 0 ? "" :
		         " in proxy_pools[0].health_check.probe (expected [IP]:port, an IPv4 or "
		         "IPv6 address)");
		expect_refused(yaml, want);
	}

	/* a long value is cut in the message */
	char longv[300];
	memset(longv, '9', sizeof(longv));
	memcpy(longv, "'[192.0.2.50]:", 14);
	memcpy(longv + 200, "'", 2);
	snprintf(yaml, sizeof(yaml), POOL "    health_check: { probe: %s }\n", longv);
	char got_err[512] = "";
	c = load(yaml, got_err, sizeof(got_err));
	cr_expect_null(c);
	cr_expect(strstr(got_err, "invalid probe '[192.0.2.50]:99999") != NULL, "%s", got_err);
	cr_expect(strstr(got_err, "...' in proxy_pools[0].health_check.probe") != NULL, "%s",
	          got_err);
	cr_expect_lt(strlen(got_err), 200);

	/* misspelt, and the numbers beside it still checked */
	expect_refused(POOL "    health_check: { probes: '[192.0.2.50]:25' }\n",
	               "x.yaml:4:21: unknown key 'probes' in proxy_pools[0].health_check");
	expect_refused(POOL "    health_check: { probe: '[192.0.2.50]:25', failure_threshold: 101 }\n",
	               "x.yaml:4:66: proxy_pools[0].health_check.failure_threshold: 101 is out "
	               "of range (1..100)");
	expect_refused(POOL "    health_check: { probe: '[192.0.2.50]:25', interval: 0 }\n",
	               "x.yaml:4:57: proxy_pools[0].health_check.interval: 0 is out of range "
	               "(1..3600)");
	/* the second pool's probe is the second pool's error */
	expect_refused(POOL "  - id: q\n    servers: ['b:1']\n"
	               "    health_check:\n      probe: '[::1]:25'\n"
	               "  - id: r\n    servers: ['c:1']\n"
	               "    health_check:\n      probe: '[::1]:x'\n",
	               "x.yaml:11:14: invalid probe '[::1]:x' in proxy_pools[2].health_check.probe "
	               "(expected [IP]:port, an IPv4 or IPv6 address)");
}

Test(config, source_failover)
{
	struct config *c = must_load(
		"transports:\n"
		"  - { id: default }\n"
		"  - { id: a, source_failover: false }\n"
		"  - { id: b, source_failover: no }\n"
		"  - { id: c, source_failover: true }\n"
		"  - id: d\n"
		"    proxy_pool: p\n"
		"    source_failover: off\n"
		"    source:\n"
		"      - { ipv4: 198.51.100.7 }\n"
		"      - { ipv6: '2001:db8::8' }\n"
		POOL);
	cr_expect(c->transports[0].source_failover, "on by default");
	cr_expect(!c->transports[1].source_failover);
	cr_expect(!c->transports[2].source_failover);
	cr_expect(c->transports[3].source_failover);
	cr_expect(!c->transports[4].source_failover);
	cr_expect_eq(c->transports[4].nsources, 2);
	config_free(c);
	c = must_load("");
	cr_expect(c->transports[0].source_failover, "the embedded default transport");
	config_free(c);

	expect_refused("transports:\n  - { id: a, source_failover: maybe }\n",
	               "x.yaml:2:31: invalid boolean 'maybe' for transports[0].source_failover "
	               "(true or false)");
	expect_refused("transports:\n  - { id: a }\n  - { id: b, source_failover: '' }\n",
	               "x.yaml:3:31: invalid boolean '' for transports[1].source_failover "
	               "(true or false)");
	char got_err[512] = "";
	c = load("transports:\n  - { id: a, source_failover: [true] }\n", got_err,
	         sizeof(got_err));
	cr_expect_null(c);
	cr_expect(strstr(got_err, "x.yaml:2:31: ") == got_err, "%s", got_err);
	cr_expect(strstr(got_err, "source_failover") != NULL, "%s", got_err);
	expect_refused("transports:\n  - { id: a, source_fallover: true }\n",
	               "x.yaml:2:14: unknown key 'source_fallover' in transports[0]");
}
