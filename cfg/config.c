/* cfg/config — load, validate and default the YAML configuration (DESIGN.md).
 *
 * Loading runs in three steps:
 *  1. yamlpos: libyaml loads the document once to record the (line, column) of every
 *     key and value by path, and to reject syntax errors and duplicate keys.
 *  2. libcyaml loads the document into "raw" structs (below) that mirror the YAML:
 *     every scalar is a pointer, so an absent key (NULL) is told apart from a zero.
 *     Unknown keys and wrong types fail here; libcyaml's error log (captured through
 *     log_fn) carries a backtrace of mapping fields and sequence entries, which is
 *     turned back into a path and looked up in step 1's table for the position.
 *  3. cfg_build() turns the raw structs into struct config: defaults for what is
 *     absent, then semantic checks, each error pointing at the offending value.
 * The one key libcyaml cannot describe, a transport's `source` (one mapping or a list
 * of them), is skipped by the schema and read from step 1's document instead.
 * So is every integer: libcyaml reads them with strtoll(..., 0), which takes "010" for
 * eight, "0x10" for sixteen and "1.5" for one. The schema only names the numeric keys
 * (so that a misspelt one is still an unknown key); cfg_num() reads each value's text
 * from step 1's document, in base 10 only, and checks it against the key's range.
 *
 * File paths in the configuration (proxy_hosts_file, tls.certificate, tls.key,
 * tls_ca_file) are taken as given, relative to the working directory, and must exist
 * and be readable when the configuration is loaded: `ringrelay --check` is where an
 * operator wants to learn that a certificate is missing, not the first STARTTLS. They
 * must be regular files: a FIFO would block the reader (the configuration file itself
 * and proxy_hosts_file are read through cfg/textfile, which never blocks). */
#include "cfg/config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <cyaml/cyaml.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <net/if.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cfg/textfile.h"
#include "cfg/yamlpos.h"
#include "proto/smtp_srv.h"
#include "proto/spoolrec.h"

#define CFG_MAX_FILE (16u << 20)       /* a configuration larger than this is a mistake */
#define CFG_NAME_DEFAULTS "(defaults)"
#define CFG_RETRY_MAX_ENTRIES 64

/* ---- raw structs: the YAML as libcyaml loads it ---- */

struct raw_spool {
	char *path;
	char *sync;                        /* a string: libcyaml takes any word as true */
};

struct raw_dns {
	char **servers;
	unsigned servers_count;
};

struct raw_metrics {
	char *address;
};

struct raw_control {
	char *path;
	char *mode;                        /* octal, as chmod(1) writes it: a string */
};

struct raw_tls {
	char *certificate;
	char *key;
};

struct raw_listener {
	char *id;
	char *address;
	enum config_proxy_mode *proxy_protocol;
	char **proxy_hosts;
	unsigned proxy_hosts_count;
	char *proxy_hosts_file;
	struct raw_tls *tls;
	enum config_tls_mode *tls_mode;
};

struct raw_relay {
	char **networks;
	unsigned networks_count;
	char **domains;
	unsigned domains_count;
};

/* A section of numbers only (limits, health_check, queue): libcyaml checks that it is a
 * mapping of known keys; the values are read by cfg_num(). */
struct raw_numbers {
	char unused;
};

struct raw_route {
	char **domains;
	unsigned domains_count;
	char *transport;
};

struct raw_transport {
	char *id;
	char *nexthop;
	enum config_out_tls *tls;
	char *tls_ca_file;
	char *proxy_pool;
	char *source_failover;             /* a string, as spool.sync */
	char **proxy_bypass_domains;
	unsigned proxy_bypass_domains_count;
	struct raw_numbers *timeouts;
};

struct raw_shaping {
	char *site;
};

struct raw_pool {
	char *id;
	char **servers;
	unsigned servers_count;
	struct raw_numbers *health_check;
};

struct raw_config {
	char *hostname;
	struct raw_spool *spool;
	struct raw_dns *dns;
	struct raw_metrics *metrics;
	struct raw_control *control;
	struct raw_listener *listeners;
	unsigned listeners_count;
	struct raw_relay *relay;
	struct raw_numbers *limits;
	struct raw_route *routes;
	unsigned routes_count;
	struct raw_transport *transports;
	unsigned transports_count;
	struct raw_pool *proxy_pools;
	unsigned proxy_pools_count;
	struct raw_numbers *queue;
	struct raw_shaping *shaping;
	unsigned shaping_count;
};

/* ---- the libcyaml schema ---- */

#define OPT CYAML_FLAG_OPTIONAL
#define SECTION (CYAML_FLAG_OPTIONAL | CYAML_FLAG_POINTER_NULL)
#define ENUMF (CYAML_FLAG_OPTIONAL | CYAML_FLAG_STRICT | CYAML_FLAG_CASE_INSENSITIVE)
#define STR(key, st, m) CYAML_FIELD_STRING_PTR(key, OPT, st, m, 0, CYAML_UNLIMITED)
#define STR_REQ(key, st, m) CYAML_FIELD_STRING_PTR(key, CYAML_FLAG_POINTER, st, m, 0, \
                                                   CYAML_UNLIMITED)
/* An integer (or, for retry_schedule, a list of them): named here, read by cfg_num(). */
#define NUM(key) CYAML_FIELD_IGNORE(key, OPT)
#define STRSEQ(key, st, m) CYAML_FIELD_SEQUENCE(key, CYAML_FLAG_POINTER | OPT, st, m, \
                                                &str_entry, 0, CYAML_UNLIMITED)

static const cyaml_strval_t proxy_mode_names[] = {
	{ "off", CONFIG_PROXY_OFF },
	{ "trusted", CONFIG_PROXY_TRUSTED },
	{ "required", CONFIG_PROXY_REQUIRED },
};
static const cyaml_strval_t tls_mode_names[] = {
	{ "starttls", CONFIG_TLS_STARTTLS },
	{ "required", CONFIG_TLS_REQUIRED },
	{ "implicit", CONFIG_TLS_IMPLICIT },
};
static const cyaml_strval_t out_tls_names[] = {
	{ "none", CONFIG_OUT_TLS_NONE },
	{ "opportunistic", CONFIG_OUT_TLS_OPPORTUNISTIC },
	{ "required", CONFIG_OUT_TLS_REQUIRED },
	{ "verify", CONFIG_OUT_TLS_VERIFY },
};

static const cyaml_schema_value_t str_entry = {
	CYAML_VALUE_STRING(CYAML_FLAG_POINTER, char, 0, CYAML_UNLIMITED),
};

static const cyaml_schema_field_t spool_fields[] = {
	STR("path", struct raw_spool, path),
	STR("sync", struct raw_spool, sync),
	NUM("min_free"),
	CYAML_FIELD_END
};

static const cyaml_schema_field_t dns_fields[] = {
	STRSEQ("servers", struct raw_dns, servers),
	NUM("max_lookups"),
	CYAML_FIELD_END
};

static const cyaml_schema_field_t metrics_fields[] = {
	STR("address", struct raw_metrics, address),
	NUM("port"),
	CYAML_FIELD_END
};

static const cyaml_schema_field_t control_fields[] = {
	STR("path", struct raw_control, path),
	STR("mode", struct raw_control, mode),
	CYAML_FIELD_END
};

static const cyaml_schema_field_t tls_fields[] = {
	STR_REQ("certificate", struct raw_tls, certificate),
	STR_REQ("key", struct raw_tls, key),
	CYAML_FIELD_END
};

static const cyaml_schema_field_t listener_fields[] = {
	STR_REQ("id", struct raw_listener, id),
	STR("address", struct raw_listener, address),
	NUM("port"),
	CYAML_FIELD_ENUM_PTR("proxy_protocol", ENUMF, struct raw_listener, proxy_protocol,
	                     proxy_mode_names, CYAML_ARRAY_LEN(proxy_mode_names)),
	STRSEQ("proxy_hosts", struct raw_listener, proxy_hosts),
	STR("proxy_hosts_file", struct raw_listener, proxy_hosts_file),
	NUM("proxy_timeout"),
	NUM("proxy_max_header"),
	CYAML_FIELD_MAPPING_PTR("tls", OPT, struct raw_listener, tls, tls_fields),
	CYAML_FIELD_ENUM_PTR("tls_mode", ENUMF, struct raw_listener, tls_mode,
	                     tls_mode_names, CYAML_ARRAY_LEN(tls_mode_names)),
	CYAML_FIELD_END
};
static const cyaml_schema_value_t listener_entry = {
	CYAML_VALUE_MAPPING(CYAML_FLAG_DEFAULT, struct raw_listener, listener_fields),
};

static const cyaml_schema_field_t relay_fields[] = {
	STRSEQ("networks", struct raw_relay, networks),
	STRSEQ("domains", struct raw_relay, domains),
	CYAML_FIELD_END
};

static const cyaml_schema_field_t limits_fields[] = {
	NUM("max_message_size"),
	NUM("max_data_memory"),
	NUM("max_recipients"),
	NUM("max_line_length"),
	NUM("max_hops"),
	NUM("max_connections"),
	NUM("max_connections_per_ip"),
	NUM("idle_timeout"),
	NUM("min_data_rate"),
	CYAML_FIELD_END
};

static const cyaml_schema_field_t route_fields[] = {
	CYAML_FIELD_SEQUENCE("domains", CYAML_FLAG_POINTER, struct raw_route, domains,
	                     &str_entry, 0, CYAML_UNLIMITED),
	STR_REQ("transport", struct raw_route, transport),
	CYAML_FIELD_END
};
static const cyaml_schema_value_t route_entry = {
	CYAML_VALUE_MAPPING(CYAML_FLAG_DEFAULT, struct raw_route, route_fields),
};

static const cyaml_schema_field_t timeouts_fields[] = {
	NUM("connect"),
	NUM("greeting"),
	NUM("ehlo"),
	NUM("mail"),
	NUM("rcpt"),
	NUM("data"),
	NUM("data_block"),
	NUM("data_done"),
	NUM("rset"),
	NUM("quit"),
	CYAML_FIELD_END
};

static const cyaml_schema_field_t transport_fields[] = {
	STR_REQ("id", struct raw_transport, id),
	STR("nexthop", struct raw_transport, nexthop),
	CYAML_FIELD_ENUM_PTR("tls", ENUMF, struct raw_transport, tls,
	                     out_tls_names, CYAML_ARRAY_LEN(out_tls_names)),
	STR("tls_ca_file", struct raw_transport, tls_ca_file),
	NUM("max_connections"),
	NUM("max_messages_per_connection"),
	NUM("initial_connections"),
	NUM("dead_after"),
	/* "N/s" or 0: read from the yamlpos document (cfg_rate), like the numbers. */
	CYAML_FIELD_IGNORE("message_rate", OPT),
	CYAML_FIELD_IGNORE("connection_rate", OPT),
	CYAML_FIELD_MAPPING_PTR("timeouts", SECTION, struct raw_transport, timeouts,
	                        timeouts_fields),
	STR("proxy_pool", struct raw_transport, proxy_pool),
	/* A mapping or a list of mappings: read from the yamlpos document (cfg_sources). */
	CYAML_FIELD_IGNORE("source", OPT),
	STR("source_failover", struct raw_transport, source_failover),
	STRSEQ("proxy_bypass_domains", struct raw_transport, proxy_bypass_domains),
	CYAML_FIELD_END
};
static const cyaml_schema_value_t transport_entry = {
	CYAML_VALUE_MAPPING(CYAML_FLAG_DEFAULT, struct raw_transport, transport_fields),
};

static const cyaml_schema_field_t health_fields[] = {
	NUM("interval"),
	NUM("timeout"),
	NUM("failure_threshold"),
	NUM("success_threshold"),
	/* "[IP]:port": read from the yamlpos document (cfg_probe), so that its length is
	 * checked (an embedded NUL) like a source address's. */
	CYAML_FIELD_IGNORE("probe", OPT),
	CYAML_FIELD_END
};

static const cyaml_schema_field_t pool_fields[] = {
	STR_REQ("id", struct raw_pool, id),
	NUM("version"),
	STRSEQ("servers", struct raw_pool, servers),
	CYAML_FIELD_MAPPING_PTR("health_check", SECTION, struct raw_pool, health_check,
	                        health_fields),
	CYAML_FIELD_END
};
static const cyaml_schema_value_t pool_entry = {
	CYAML_VALUE_MAPPING(CYAML_FLAG_DEFAULT, struct raw_pool, pool_fields),
};

static const cyaml_schema_field_t shaping_fields[] = {
	STR_REQ("site", struct raw_shaping, site),
	NUM("max_connections"),
	NUM("initial_connections"),
	NUM("max_messages_per_connection"),
	/* a rate or a bare number per second: read from the yamlpos document (cfg_rate) */
	CYAML_FIELD_IGNORE("max_message_rate", OPT),
	CYAML_FIELD_IGNORE("max_connection_rate", OPT),
	CYAML_FIELD_END
};
static const cyaml_schema_value_t shaping_entry = {
	CYAML_VALUE_MAPPING(CYAML_FLAG_DEFAULT, struct raw_shaping, shaping_fields),
};

static const cyaml_schema_field_t queue_fields[] = {
	NUM("retry_schedule"),
	NUM("max_age"),
	CYAML_FIELD_END
};

static const cyaml_schema_field_t top_fields[] = {
	STR("hostname", struct raw_config, hostname),
	NUM("workers"),
	NUM("shutdown_timeout"),
	CYAML_FIELD_MAPPING_PTR("spool", SECTION, struct raw_config, spool, spool_fields),
	CYAML_FIELD_MAPPING_PTR("dns", SECTION, struct raw_config, dns, dns_fields),
	CYAML_FIELD_MAPPING_PTR("metrics", SECTION, struct raw_config, metrics, metrics_fields),
	CYAML_FIELD_MAPPING_PTR("control", SECTION, struct raw_config, control, control_fields),
	CYAML_FIELD_SEQUENCE("listeners", CYAML_FLAG_POINTER | OPT, struct raw_config,
	                     listeners, &listener_entry, 0, CYAML_UNLIMITED),
	CYAML_FIELD_MAPPING_PTR("relay", SECTION, struct raw_config, relay, relay_fields),
	CYAML_FIELD_MAPPING_PTR("limits", SECTION, struct raw_config, limits, limits_fields),
	CYAML_FIELD_SEQUENCE("routes", CYAML_FLAG_POINTER | OPT, struct raw_config, routes,
	                     &route_entry, 0, CYAML_UNLIMITED),
	CYAML_FIELD_SEQUENCE("transports", CYAML_FLAG_POINTER | OPT, struct raw_config,
	                     transports, &transport_entry, 0, CYAML_UNLIMITED),
	CYAML_FIELD_SEQUENCE("proxy_pools", CYAML_FLAG_POINTER | OPT, struct raw_config,
	                     proxy_pools, &pool_entry, 0, CYAML_UNLIMITED),
	CYAML_FIELD_MAPPING_PTR("queue", SECTION, struct raw_config, queue, queue_fields),
	CYAML_FIELD_SEQUENCE("shaping", CYAML_FLAG_POINTER | OPT, struct raw_config, shaping,
	                     &shaping_entry, 0, CYAML_UNLIMITED),
	CYAML_FIELD_END
};
static const cyaml_schema_value_t top_schema = {
	CYAML_VALUE_MAPPING(CYAML_FLAG_POINTER, struct raw_config, top_fields),
};

/* Allowed words of each enum key, for error messages. */
static const struct {
	const char *key, *expect;
} cfg_enum_help[] = {
	{ "proxy_protocol", "off, trusted or required" },
	{ "tls_mode", "starttls, required or implicit" },
	{ "tls", "none, opportunistic, required or verify" },
};

/* ---- errors ---- */

struct cfg_ctx {
	const char *name;                  /* file name for messages */
	bool defaults;                     /* the embedded defaults: no position to give */
	struct yamlpos *pos;               /* NULL for the embedded defaults */
	char *errbuf;
	size_t errlen;
};

static int cfg_err_at(struct cfg_ctx *x, struct yamlpos_mark m, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int cfg_err(struct cfg_ctx *x, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void cfg_verr(struct cfg_ctx *x, struct yamlpos_mark m, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));
static void cfg_verr(struct cfg_ctx *x, struct yamlpos_mark m, const char *fmt, va_list ap)
{
	int n;
	if (x->errbuf == NULL || x->errlen == 0)
		return;
	if (x->defaults)
		n = snprintf(x->errbuf, x->errlen, "%s: ", x->name);
	else
		n = snprintf(x->errbuf, x->errlen, "%s:%u:%u: ", x->name, m.line, m.col);
	if (n >= 0 && (size_t)n < x->errlen)
		vsnprintf(x->errbuf + n, x->errlen - (size_t)n, fmt, ap);
	/* One line, always: a value with a newline in it must not break that, and no other
	 * control character from the file reaches the terminal or the log either. */
	for (char *p = x->errbuf; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
		else if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
}

static int cfg_err_at(struct cfg_ctx *x, struct yamlpos_mark m, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	cfg_verr(x, m, fmt, ap);
	va_end(ap);
	return -1;
}

/* Error at the value found at `path` (or its nearest ancestor). */
static int cfg_err(struct cfg_ctx *x, const char *path, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	cfg_verr(x, yamlpos_value(x->pos, path), fmt, ap);
	va_end(ap);
	return -1;
}

static int cfg_oom(struct cfg_ctx *x)
{
	struct yamlpos_mark none = { 0, 0 };
	return cfg_err_at(x, none, "out of memory");
}

/* Paths like "listeners[0].port", built in a caller's buffer. */
struct cfg_path {
	char s[256];
};

static const char *cfg_path(struct cfg_path *p, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static const char *cfg_path(struct cfg_path *p, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(p->s, sizeof(p->s), fmt, ap);
	va_end(ap);
	return p->s;
}

/* ---- value checks ---- */

static char *cfg_strdup(const char *s)
{
	return s ? strdup(s) : NULL;
}

/* ---- numbers ----
 *
 * Every integer key, its default and its range, in one table. The ranges are what an
 * operator can sensibly mean, and they keep every product the code computes in range:
 *  - seconds * 1000 as unsigned milliseconds (core/inbound.c does it for idle_timeout and
 *    proxy_timeout; shutdown_timeout, the health checks and retry_schedule will be timed
 *    the same way): every such key is at most CONFIG_SECONDS_MAX, asserted below.
 *    queue.max_age (a year at most) is the exception: in milliseconds, use uint64_t.
 *  - max_message_size: the message is held in memory, then written as one spool record
 *    (its data, our Received: header, the envelope) in one commit. The spool limits a
 *    record's payload to SPOOLREC_MAX_PAYLOAD (1 GiB) and a commit to SPOOL_BATCH_BYTES
 *    (core/spool.h, 1 GiB; core/spool.c asserts the same bound from its side).
 *    256 MiB of data plus max_recipients (100000) addresses of at most SMTP_SRV_CMD_MAX
 *    octets and a Received: header stays under both: ~306 MiB (asserted below; core/ is
 *    above cfg/ and cannot be included here, so its limit is restated).
 *  - proxy_max_header + 4096 (net/conn.c's reassembly bound) is tiny; port fits 16 bits.
 * Everything else is a count or a limit that is only compared. */
enum cfg_num_key {
	CFG_N_WORKERS = 0,
	CFG_N_SHUTDOWN_TIMEOUT,
	CFG_N_PORT,
	CFG_N_PROXY_TIMEOUT,
	CFG_N_PROXY_MAX_HEADER,
	CFG_N_MAX_MESSAGE_SIZE,
	CFG_N_MAX_DATA_MEMORY,
	CFG_N_MAX_RECIPIENTS,
	CFG_N_MAX_LINE_LENGTH,
	CFG_N_MAX_HOPS,
	CFG_N_MAX_CONNECTIONS,
	CFG_N_MAX_CONNECTIONS_PER_IP,
	CFG_N_IDLE_TIMEOUT,
	CFG_N_MIN_DATA_RATE,
	CFG_N_TRANSPORT_MAX_CONNECTIONS,
	CFG_N_TRANSPORT_MAX_MESSAGES,
	CFG_N_INITIAL_CONNECTIONS,
	CFG_N_DEAD_AFTER,
	CFG_N_TO_CONNECT,
	CFG_N_TO_GREETING,
	CFG_N_TO_EHLO,
	CFG_N_TO_MAIL,
	CFG_N_TO_RCPT,
	CFG_N_TO_DATA,
	CFG_N_TO_DATA_BLOCK,
	CFG_N_TO_DATA_DONE,
	CFG_N_TO_RSET,
	CFG_N_TO_QUIT,
	CFG_N_POOL_VERSION,
	CFG_N_HEALTH_INTERVAL,
	CFG_N_HEALTH_TIMEOUT,
	CFG_N_HEALTH_THRESHOLD,
	CFG_N_RETRY,
	CFG_N_MAX_AGE,
	CFG_N_SPOOL_MIN_FREE,
	CFG_N_METRICS_PORT,
	CFG_N_DNS_MAX_LOOKUPS,
};

#define CFG_SHUTDOWN_TIMEOUT_MAX 3600u
#define CFG_PROXY_TIMEOUT_MAX 3600u
#define CFG_IDLE_TIMEOUT_MAX 86400u
#define CFG_HEALTH_MAX 3600u

static const struct cfg_num_range {
	uint64_t def, min, max;
} cfg_num_ranges[] = {
	/* 0 = one per online CPU; over 1024 threads, each with a ring and sockets: a typo. */
	[CFG_N_WORKERS] = { 0, 0, 1024 },
	/* 0: cut at once; an hour is longer than any transaction should take. */
	[CFG_N_SHUTDOWN_TIMEOUT] = { 10, 0, CFG_SHUTDOWN_TIMEOUT_MAX },
	/* 0 = any free port (tests). */
	[CFG_N_PORT] = { 2525, 0, 65535 },
	/* Prometheus' exporter registry has no port of ours: 9325 is free there; 0 = any */
	[CFG_N_METRICS_PORT] = { 9325, 0, 65535 },
	/* per worker (net/dns's line): 64 kept a local dnsmasq from dropping queries under
	 * 20,000 distinct domains where 256 did not; 10,000 queries out at once is a flood */
	[CFG_N_DNS_MAX_LOOKUPS] = { 64, 1, 10000 },
	[CFG_N_PROXY_TIMEOUT] = { 30, 1, CFG_PROXY_TIMEOUT_MAX },
	/* 16 fixed + 216 (the largest address block, UNIX) at least; 16 + 65535 at most. */
	[CFG_N_PROXY_MAX_HEADER] = { 4096, 232, 65551 },
	[CFG_N_MAX_MESSAGE_SIZE] = { 52428800, 1024, CONFIG_MAX_MESSAGE_SIZE_MAX },
	/* octets of message data held by the sessions of the relay (all workers) until
	 * committed: a GiB (20 messages of the default largest size at once, thousands of
	 * ordinary ones); at least one message of max_message_size (checked below); a TiB at
	 * most (only compared and added to) */
	[CFG_N_MAX_DATA_MEMORY] = { 1073741824, 2u << 20, 1ull << 40 },
	[CFG_N_MAX_RECIPIENTS] = { 1000, 1, CONFIG_MAX_RECIPIENTS_MAX },
	/* Under RFC 5322's recommended 78 octets ordinary mail would be refused; 998 is its
	 * hard limit, which an operator may relax (up to 1 MiB) for senders that break it. */
	[CFG_N_MAX_LINE_LENGTH] = { 998, 78, 1048576 },
	/* Postfix's hopcount_limit (50). Under 10 a legitimate path through a few relays and
	 * forwarders would be refused; over 1000 a loop would run for hours. */
	[CFG_N_MAX_HOPS] = { 50, 10, 1000 },
	[CFG_N_MAX_CONNECTIONS] = { 50000, 1, 1000000 },
	[CFG_N_MAX_CONNECTIONS_PER_IP] = { 500, 1, 1000000 },
	[CFG_N_IDLE_TIMEOUT] = { 300, 1, CFG_IDLE_TIMEOUT_MAX },
	/* octets/s, Postfix's smtpd_min_data_rate (500); 0: off; a GiB/s at most */
	[CFG_N_MIN_DATA_RATE] = { 500, 0, 1u << 30 },
	/* per (source, site): a source address has ~28000 ephemeral ports for all sites. */
	[CFG_N_TRANSPORT_MAX_CONNECTIONS] = { 100, 1, 10000 },
	[CFG_N_TRANSPORT_MAX_MESSAGES] = { 1000, 1, 1000000 },
	/* Postfix's initial_destination_concurrency; also at most max_connections. */
	[CFG_N_INITIAL_CONNECTIONS] = { 5, 1, 10000 },
	[CFG_N_DEAD_AFTER] = { 3, 1, 100 },
	/* RFC 5321 4.5.3.2, as smtp_cli_timeouts_rfc() (config_test checks they agree);
	 * connect as core/deliver's DELIVER_CONNECT_MS. */
	[CFG_N_TO_CONNECT] = { 30, 1, CONFIG_SECONDS_MAX },
	[CFG_N_TO_GREETING] = { 300, 1, CONFIG_SECONDS_MAX },
	[CFG_N_TO_EHLO] = { 300, 1, CONFIG_SECONDS_MAX },
	[CFG_N_TO_MAIL] = { 300, 1, CONFIG_SECONDS_MAX },
	[CFG_N_TO_RCPT] = { 300, 1, CONFIG_SECONDS_MAX },
	[CFG_N_TO_DATA] = { 120, 1, CONFIG_SECONDS_MAX },
	[CFG_N_TO_DATA_BLOCK] = { 180, 1, CONFIG_SECONDS_MAX },
	[CFG_N_TO_DATA_DONE] = { 600, 1, CONFIG_SECONDS_MAX },
	[CFG_N_TO_RSET] = { 300, 1, CONFIG_SECONDS_MAX },
	[CFG_N_TO_QUIT] = { 300, 1, CONFIG_SECONDS_MAX },
	[CFG_N_POOL_VERSION] = { 2, 1, 2 },
	[CFG_N_HEALTH_INTERVAL] = { 5, 1, CFG_HEALTH_MAX },
	[CFG_N_HEALTH_TIMEOUT] = { 1, 1, CFG_HEALTH_MAX },     /* and <= interval */
	[CFG_N_HEALTH_THRESHOLD] = { 3, 1, 100 },
	/* each entry: a second to a week; the list has 1..CFG_RETRY_MAX_ENTRIES entries. */
	[CFG_N_RETRY] = { 0, 1, CONFIG_SECONDS_MAX },
	/* a minute (the first retry) to a year. */
	[CFG_N_MAX_AGE] = { 432000, 60, 31536000 },
	/* octets; 0: off (Postfix's queue_minfree default). At most a PiB: only compared and
	 * added to (core/spool.c adds an eighth and twice a reserve of at most 64 MiB). */
	[CFG_N_SPOOL_MIN_FREE] = { 0, 0, CONFIG_SPOOL_MIN_FREE_MAX },
};

#define CFG_SPOOL_COMMIT_MAX (1u << 30)     /* SPOOL_BATCH_BYTES of core/spool.h */
/* The largest message record: data, an address per recipient (length-prefixed), and
 * 64 KiB for the Received: header, sender, client, queue id and framing. */
#define CFG_RECORD_MAX ((uint64_t)CONFIG_MAX_MESSAGE_SIZE_MAX + \
                        (uint64_t)CONFIG_MAX_RECIPIENTS_MAX * (4 + SMTP_SRV_CMD_MAX) + (64u << 10))

_Static_assert(CFG_SHUTDOWN_TIMEOUT_MAX <= CONFIG_SECONDS_MAX &&
               CFG_PROXY_TIMEOUT_MAX <= CONFIG_SECONDS_MAX &&
               CFG_IDLE_TIMEOUT_MAX <= CONFIG_SECONDS_MAX &&
               CFG_HEALTH_MAX <= CONFIG_SECONDS_MAX,
               "every duration but max_age is at most CONFIG_SECONDS_MAX");
_Static_assert((uint64_t)CONFIG_SECONDS_MAX * 1000u <= UINT_MAX,
               "seconds * 1000 must fit in unsigned milliseconds");
_Static_assert(CFG_RECORD_MAX <= SPOOLREC_MAX_PAYLOAD && CFG_RECORD_MAX <= CFG_SPOOL_COMMIT_MAX,
               "the largest message must fit one spool record and one commit");

/* Decimal digits only, at most UINT64_MAX. No sign, base prefix, '_', exponent or
 * fraction: "010" is ten and "0x10", "+5", "1e3", "1.5", "1_000" and "" are not integers.
 * "-N" and a number beyond UINT64_MAX are integers, out of every range here. */
enum cfg_dec_rc { CFG_DEC_OK = 0, CFG_DEC_SYNTAX, CFG_DEC_RANGE };

static enum cfg_dec_rc cfg_decimal(const char *s, size_t len, uint64_t *out)
{
	size_t i = len > 1 && s[0] == '-';
	bool big = false;
	uint64_t v = 0;

	if (i == len)
		return CFG_DEC_SYNTAX;
	for (size_t k = i; k < len; k++) {
		unsigned d = (unsigned)(unsigned char)s[k] - '0';
		if (d > 9)
			return CFG_DEC_SYNTAX;
		if (v > (UINT64_MAX - d) / 10)
			big = true;
		else
			v = v * 10 + d;
	}
	if (i == 1 || big)
		return CFG_DEC_RANGE;
	*out = v;
	return CFG_DEC_OK;
}

static const char *cfg_node_word(const yaml_node_t *n)
{
	return n->type == YAML_MAPPING_NODE ? "a mapping" :
	       n->type == YAML_SEQUENCE_NODE ? "a list" : "a scalar";
}

/* The integer at `path` of the document: absent -> the key's default; otherwise it must
 * be a base-10 integer within the key's range, else an error at the value:
 *   "PATH: VALUE is out of range (MIN..MAX)" or "invalid integer 'TEXT' for PATH". */
static int cfg_num(struct cfg_ctx *x, const char *path, enum cfg_num_key k, uint64_t *out)
{
	const struct cfg_num_range *r = &cfg_num_ranges[k];
	const yaml_node_t *n = yamlpos_node(x->pos, path);
	const char *v;
	int len;
	uint64_t u = 0;
	enum cfg_dec_rc rc;

	if (n == NULL) {
		*out = r->def;
		return 0;
	}
	if (n->type != YAML_SCALAR_NODE)
		return cfg_err(x, path, "wrong type for %s: expected an integer, got %s", path,
		               cfg_node_word(n));
	v = (const char *)n->data.scalar.value;
	rc = cfg_decimal(v, n->data.scalar.length, &u);
	len = n->data.scalar.length > 64 ? 64 : (int)n->data.scalar.length;   /* for messages */
	if (rc == CFG_DEC_SYNTAX)
		return cfg_err(x, path, "invalid integer '%.*s%s' for %s (base-10 digits only)",
		               len, v, (size_t)len < n->data.scalar.length ? "..." : "", path);
	if (rc == CFG_DEC_RANGE || u < r->min || u > r->max)
		return cfg_err(x, path, "%s: %.*s%s is out of range (%" PRIu64 "..%" PRIu64 ")",
		               path, len, v, (size_t)len < n->data.scalar.length ? "..." : "",
		               r->min, r->max);
	*out = u;
	return 0;
}

static int cfg_uint(struct cfg_ctx *x, const char *path, enum cfg_num_key k, unsigned *out)
{
	uint64_t u = 0;
	if (cfg_num(x, path, k, &u) < 0)
		return -1;
	*out = (unsigned)u;                /* every range's max fits (the table above) */
	return 0;
}

/* A rate at `path`: "N/s", "N/min" or "N/h", N base-10 digits 1..CONFIG_RATE_MAX, or a
 * base-10 zero for unlimited; absent: unlimited. Else an error at the value:
 *   "invalid rate 'TEXT' for PATH (expected N/s, N/min or N/h, or 0 for unlimited)" or
 *   "PATH: TEXT is out of range (N 1..1000000)" (N is 0, negative or too big). */
static int cfg_rate(struct cfg_ctx *x, const char *path, bool bare_per_second,
                    struct config_rate *out)
{
	static const struct {
		const char *unit;
		unsigned ms;
	} units[] = { { "s", 1000 }, { "min", 60000 }, { "h", 3600000 } };
	const yaml_node_t *n = yamlpos_node(x->pos, path);
	const char *v, *slash, *unit;
	size_t vlen, ulen, k;
	uint64_t u = 0;
	int len;
	enum cfg_dec_rc rc;

	out->events = 0;
	out->period_ms = 0;
	if (n == NULL)
		return 0;
	if (n->type != YAML_SCALAR_NODE)
		return cfg_err(x, path, "wrong type for %s: expected a rate (N/s, N/min or N/h), "
		               "got %s", path, cfg_node_word(n));
	v = (const char *)n->data.scalar.value;
	vlen = n->data.scalar.length;
	len = vlen > 64 ? 64 : (int)vlen;  /* for messages */
	slash = memchr(v, '/', vlen);
	if (slash == NULL) {
		rc = cfg_decimal(v, vlen, &u);
		if (rc == CFG_DEC_OK && u == 0)
			return 0;              /* unlimited */
		if (!bare_per_second)
			goto bad;
		k = 0;                         /* a bare N: per second */
	} else {
		rc = cfg_decimal(v, (size_t)(slash - v), &u);
		unit = slash + 1;
		ulen = vlen - (size_t)(unit - v);
		for (k = 0; k < sizeof(units) / sizeof(units[0]); k++)
			if (strlen(units[k].unit) == ulen && memcmp(units[k].unit, unit, ulen) == 0)
				break;
	}
	if (rc == CFG_DEC_SYNTAX || k == sizeof(units) / sizeof(units[0]))
		goto bad;
	if (rc == CFG_DEC_RANGE || u < 1 || u > CONFIG_RATE_MAX)
		return cfg_err(x, path, "%s: %.*s%s is out of range (N 1..%u)", path, len, v,
		               (size_t)len < vlen ? "..." : "", CONFIG_RATE_MAX);
	out->events = (unsigned)u;
	out->period_ms = units[k].ms;
	return 0;
bad:
	return cfg_err(x, path, "invalid rate '%.*s%s' for %s (expected N/s, N/min or N/h, "
	               "or 0 for unlimited)", len, v, (size_t)len < vlen ? "..." : "", path);
}

/* A port: digits only, 0-65535 (0 only where allow0). Returns -1 if not. */
static long cfg_port_text(const char *s, bool allow0)
{
	long v = 0;
	size_t n = strlen(s);
	if (n == 0 || n > 5 || strspn(s, "0123456789") != n)
		return -1;
	for (size_t i = 0; i < n; i++)
		v = v * 10 + (s[i] - '0');
	if (v > 65535 || (v == 0 && !allow0))
		return -1;
	return v;
}

/* A host or domain name: labels of letters, digits, '-', '_' (and UTF-8 bytes when
 * utf8), separated by single dots, at most 253 octets; no trailing dot. */
static bool cfg_name_ok(const char *s, bool utf8)
{
	size_t n = strlen(s), label = 0;
	if (n == 0 || n > 253)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch == '.') {
			if (label == 0)
				return false;
			label = 0;
			continue;
		}
		if (!(isalnum(ch) || ch == '-' || ch == '_' || (utf8 && ch >= 0x80)))
			return false;
		if (++label > 63)
			return false;
	}
	return label > 0;
}

/* A domain for relay.domains / routes / proxy_bypass_domains: lower-cased copy with
 * one trailing dot removed; "*" and "*.example.org" only when wildcard. NULL if bad
 * (*oom set when it was memory). */
static char *cfg_domain(const char *s, bool wildcard, bool *oom)
{
	char *d;
	size_t n;
	*oom = false;
	if (wildcard && strcmp(s, "*") == 0) {
		d = strdup("*");
		*oom = d == NULL;
		return d;
	}
	d = strdup(s);
	if (d == NULL) {
		*oom = true;
		return NULL;
	}
	n = strlen(d);
	if (n > 1 && d[n - 1] == '.')
		d[--n] = '\0';
	for (size_t i = 0; i < n; i++)
		d[i] = (char)tolower((unsigned char)d[i]);
	if (!cfg_name_ok(wildcard && strncmp(d, "*.", 2) == 0 ? d + 2 : d, true)) {
		free(d);
		return NULL;
	}
	return d;
}

/* An IPv4 or IPv6 literal (IPv6 optionally in brackets and with a %scope) and a port,
 * into a sockaddr ready for bind(). */
static bool cfg_sockaddr(const char *text, unsigned port, struct sockaddr_storage *ss,
                         socklen_t *len)
{
	char buf[INET6_ADDRSTRLEN + IF_NAMESIZE + 4];
	size_t n = strlen(text);
	char *scope;
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, text, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		*len = sizeof(*sin);
		return true;
	}
	if (n >= 2 && text[0] == '[' && text[n - 1] == ']') {
		text++;
		n -= 2;
	}
	if (n == 0 || n >= sizeof(buf))
		return false;
	memcpy(buf, text, n);
	buf[n] = '\0';
	scope = strchr(buf, '%');
	if (scope != NULL)
		*scope++ = '\0';
	if (inet_pton(AF_INET6, buf, &sin6->sin6_addr) != 1)
		return false;
	if (scope != NULL) {
		long idx = cfg_port_text(scope, false);   /* numeric scope id, or a name */
		unsigned id = idx > 0 ? (unsigned)idx : if_nametoindex(scope);
		if (*scope == '\0' || id == 0)
			return false;
		sin6->sin6_scope_id = id;
	}
	sin6->sin6_family = AF_INET6;
	sin6->sin6_port = htons((uint16_t)port);
	*len = sizeof(*sin6);
	return true;
}

static bool cfg_is_ip(const char *s, int family)
{
	unsigned char buf[16];
	return inet_pton(family, s, buf) == 1;
}

/* Split "host:port", "[host]:port", "[host]" or "host" into host and port text.
 * A bare string with several colons is an IPv6 literal without a port. */
static bool cfg_hostport(const char *s, char *host, size_t hostlen, const char **port,
                         bool *bracketed)
{
	const char *h = s, *end, *colon;
	*port = NULL;
	*bracketed = false;
	if (*s == '[') {
		end = strchr(s, ']');
		if (end == NULL)
			return false;
		h = s + 1;
		*bracketed = true;
		if (end[1] == ':')
			*port = end + 2;
		else if (end[1] != '\0')
			return false;
	} else {
		colon = strchr(s, ':');
		if (colon != NULL && strchr(colon + 1, ':') == NULL) {
			end = colon;
			*port = colon + 1;
		} else {
			end = s + strlen(s);
		}
	}
	if ((size_t)(end - h) >= hostlen || end == h)
		return false;
	memcpy(host, h, (size_t)(end - h));
	host[end - h] = '\0';
	return true;
}

/* A host inside brackets or before a port: IP literal or host name. */
static bool cfg_host_ok(const char *host, bool bracketed)
{
	if (cfg_is_ip(host, AF_INET))
		return true;
	if (cfg_is_ip(host, AF_INET6))
		return bracketed;
	return cfg_name_ok(host, false);
}

/* NULL when path names a readable regular file, else why not. Never opens it: a FIFO
 * would block (here or in whoever reads it later), so it is refused like a directory. */
static const char *cfg_unreadable(const char *path)
{
	struct stat st;
	if (path[0] == '\0')
		return "empty path";
	if (access(path, R_OK) != 0 || stat(path, &st) != 0)
		return strerror(errno);
	if (!S_ISREG(st.st_mode))
		return "not a regular file";
	return NULL;
}

/* Parse a YAML boolean the way YAML 1.1 spells it. */
static int cfg_bool(struct cfg_ctx *x, const char *path, const char *v, bool def, bool *out)
{
	static const char *const yes[] = { "true", "yes", "on", "1" };
	static const char *const no[] = { "false", "no", "off", "0" };
	if (v == NULL) {
		*out = def;
		return 0;
	}
	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(v, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcasecmp(v, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return cfg_err(x, path, "invalid boolean '%s' for %s (true or false)", v, path);
}

/* A list of domains into a lower-cased copy. */
static int cfg_domains(struct cfg_ctx *x, const char *path, char **in, unsigned n,
                       bool wildcard, char ***out, size_t *nout)
{
	struct cfg_path p;
	if (n == 0)
		return 0;
	*out = calloc(n, sizeof(**out));
	if (*out == NULL)
		return cfg_oom(x);
	*nout = n;
	for (unsigned i = 0; i < n; i++) {
		bool oom;
		(*out)[i] = cfg_domain(in[i], wildcard, &oom);
		if (oom)
			return cfg_oom(x);
		if ((*out)[i] == NULL)
			return cfg_err(x, cfg_path(&p, "%s[%u]", path, i),
			               "invalid domain '%s' in %s%s", in[i], path,
			               !wildcard && strchr(in[i], '*') ? " (no wildcards here)" : "");
	}
	return 0;
}

/* A list of CIDRs added to builder b (which the caller owns). */
static int cfg_cidrs(struct cfg_ctx *x, const char *path, char **in, unsigned n,
                     struct cidr_builder *b)
{
	struct cfg_path p;
	for (unsigned i = 0; i < n; i++) {
		char msg[200];
		if (cidr_builder_add(b, in[i], msg, sizeof(msg)) < 0)
			return cfg_err(x, cfg_path(&p, "%s[%u]", path, i), "%s in %s", msg, path);
	}
	return 0;
}

/* ---- sections ---- */

static int cfg_listener(struct cfg_ctx *x, const struct raw_listener *r, size_t i,
                        struct config_listener *l)
{
	struct cfg_path p;
	struct cidr_builder *b;
	const char *addr = r && r->address ? r->address : "127.0.0.1";
	unsigned port;

	if (r == NULL) {                   /* the embedded default listener */
		l->id = strdup("default");
		if (l->id == NULL)
			return cfg_oom(x);
	} else {
		if (r->id[0] == '\0')
			return cfg_err(x, cfg_path(&p, "listeners[%zu].id", i),
			               "listener id must not be empty");
		l->id = strdup(r->id);
		if (l->id == NULL)
			return cfg_oom(x);
	}
	if (cfg_uint(x, cfg_path(&p, "listeners[%zu].port", i), CFG_N_PORT, &port) < 0)
		return -1;
	if (!cfg_sockaddr(addr, port, &l->addr, &l->addrlen))
		return cfg_err(x, cfg_path(&p, "listeners[%zu].address", i),
		               "invalid address '%s' in listeners[%zu].address "
		               "(expected an IPv4 or IPv6 literal)", addr, i);
	/* An IPv6 socket only (IPV6_V6ONLY) cannot bind an IPv4-mapped address: say so here
	 * rather than at start-up. */
	if (l->addr.ss_family == AF_INET6 &&
	    IN6_IS_ADDR_V4MAPPED(&((struct sockaddr_in6 *)&l->addr)->sin6_addr))
		return cfg_err(x, cfg_path(&p, "listeners[%zu].address", i),
		               "'%s' is an IPv4-mapped IPv6 address: write the IPv4 address", addr);
	l->proxy_protocol = r && r->proxy_protocol ? *r->proxy_protocol : CONFIG_PROXY_OFF;
	if (cfg_uint(x, cfg_path(&p, "listeners[%zu].proxy_timeout", i), CFG_N_PROXY_TIMEOUT,
	             &l->proxy_timeout) < 0 ||
	    cfg_uint(x, cfg_path(&p, "listeners[%zu].proxy_max_header", i),
	             CFG_N_PROXY_MAX_HEADER, &l->proxy_max_header) < 0)
		return -1;

	b = cidr_builder_new();
	if (b == NULL)
		return cfg_oom(x);
	if (r != NULL) {
		if (cfg_cidrs(x, cfg_path(&p, "listeners[%zu].proxy_hosts", i), r->proxy_hosts,
		              r->proxy_hosts_count, b) < 0)
			goto fail;
		if (r->proxy_hosts_count > 0) {
			l->proxy_hosts_inline = calloc(r->proxy_hosts_count, sizeof(char *));
			if (l->proxy_hosts_inline == NULL) {
				cfg_oom(x);
				goto fail;
			}
			for (unsigned k = 0; k < r->proxy_hosts_count; k++) {
				l->proxy_hosts_inline[k] = strdup(r->proxy_hosts[k]);
				if (l->proxy_hosts_inline[k] == NULL) {
					cfg_oom(x);
					goto fail;
				}
				l->nproxy_hosts_inline = k + 1;
			}
		}
		if (r->proxy_hosts_file != NULL) {
			const char *f = r->proxy_hosts_file, *why = cfg_unreadable(f);
			cfg_path(&p, "listeners[%zu].proxy_hosts_file", i);
			if (why != NULL) {
				cfg_err(x, p.s, "cannot read proxy_hosts_file '%s': %s", f, why);
				goto fail;
			}
			/* Errors inside the file carry the file's own PATH:LINE:COL. */
			if (cidr_builder_add_file(b, f, x->errbuf, x->errlen) < 0)
				goto fail;
			l->proxy_hosts_file = strdup(f);
			if (l->proxy_hosts_file == NULL) {
				cfg_oom(x);
				goto fail;
			}
		}
	}
	l->proxy_hosts = cidr_builder_finish(b);
	if (l->proxy_hosts == NULL)
		return cfg_oom(x);
	if (l->proxy_protocol != CONFIG_PROXY_OFF && cidr_count(l->proxy_hosts) == 0)
		return cfg_err(x, cfg_path(&p, "listeners[%zu].proxy_protocol", i),
		               "proxy_protocol '%s' needs at least one proxy host "
		               "(proxy_hosts or proxy_hosts_file)",
		               proxy_mode_names[l->proxy_protocol].str);

	l->tls_mode = r && r->tls_mode ? *r->tls_mode : CONFIG_TLS_STARTTLS;
	if (r != NULL && r->tls != NULL) {
		const char *files[2] = { r->tls->certificate, r->tls->key };
		const char *keys[2] = { "certificate", "key" };
		for (int k = 0; k < 2; k++) {
			const char *why = cfg_unreadable(files[k]);
			if (why != NULL)
				return cfg_err(x, cfg_path(&p, "listeners[%zu].tls.%s", i, keys[k]),
				               "cannot read tls.%s '%s': %s", keys[k], files[k], why);
		}
		l->tls_certificate = strdup(r->tls->certificate);
		l->tls_key = strdup(r->tls->key);
		if (l->tls_certificate == NULL || l->tls_key == NULL)
			return cfg_oom(x);
	} else if (l->tls_mode != CONFIG_TLS_STARTTLS || (r != NULL && r->tls_mode != NULL)) {
		/* (starttls written out without tls: would offer nothing; said, not ignored) */
		return cfg_err(x, cfg_path(&p, "listeners[%zu].tls_mode", i),
		               "tls_mode '%s' needs tls.certificate and tls.key",
		               tls_mode_names[l->tls_mode].str);
	}
	return 0;
fail:
	cidr_builder_free(b);
	return -1;
}

static bool cfg_same_addr(const struct config_listener *a, const struct config_listener *b)
{
	return a->addrlen == b->addrlen && memcmp(&a->addr, &b->addr, a->addrlen) == 0;
}

static uint16_t cfg_listener_port(const struct config_listener *l)
{
	if (l->addr.ss_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)&l->addr)->sin_port);
	return ntohs(((const struct sockaddr_in6 *)&l->addr)->sin6_port);
}

static int cfg_listeners(struct cfg_ctx *x, const struct raw_config *r, struct config *c)
{
	struct cfg_path p;
	size_t n = 1;

	if (r != NULL && yamlpos_has(x->pos, "listeners")) {
		if (r->listeners_count == 0)
			return cfg_err(x, "listeners", "listeners must not be empty "
			               "(leave the key out for the default listener)");
		n = r->listeners_count;
	}
	c->listeners = calloc(n, sizeof(*c->listeners));
	if (c->listeners == NULL)
		return cfg_oom(x);
	c->nlisteners = n;
	for (size_t i = 0; i < n; i++) {
		const struct raw_listener *rl = r && r->listeners ? &r->listeners[i] : NULL;
		if (cfg_listener(x, rl, i, &c->listeners[i]) < 0)
			return -1;
		for (size_t j = 0; j < i; j++) {
			if (strcmp(c->listeners[j].id, c->listeners[i].id) == 0)
				return cfg_err(x, cfg_path(&p, "listeners[%zu].id", i),
				               "duplicate listener id '%s'", c->listeners[i].id);
			/* Port 0 is "any free port": two of those do not collide. */
			if (cfg_listener_port(&c->listeners[i]) != 0 &&
			    cfg_same_addr(&c->listeners[i], &c->listeners[j]))
				return cfg_err(x, cfg_path(&p, "listeners[%zu].port", i),
				               "listener '%s' uses the same address and port as "
				               "listener '%s'", c->listeners[i].id,
				               c->listeners[j].id);
		}
	}
	return 0;
}

static int cfg_relay(struct cfg_ctx *x, const struct raw_config *r, struct config *c)
{
	static char *defaults[] = { "127.0.0.0/8", "::1/128" };
	const struct raw_relay *rr = r ? r->relay : NULL;
	struct cidr_builder *b = cidr_builder_new();
	int rc;

	if (b == NULL)
		return cfg_oom(x);
	if (rr != NULL && yamlpos_has(x->pos, "relay.networks"))
		rc = cfg_cidrs(x, "relay.networks", rr->networks, rr->networks_count, b);
	else
		rc = cfg_cidrs(x, "relay.networks", defaults, 2, b);
	if (rc < 0) {
		cidr_builder_free(b);
		return -1;
	}
	c->relay_networks = cidr_builder_finish(b);
	if (c->relay_networks == NULL)
		return cfg_oom(x);
	if (rr != NULL && cfg_domains(x, "relay.domains", rr->domains, rr->domains_count,
	                              false, &c->relay_domains, &c->nrelay_domains) < 0)
		return -1;
	return 0;
}

static int cfg_limits(struct cfg_ctx *x, struct config *c)
{
	if (cfg_num(x, "limits.max_message_size", CFG_N_MAX_MESSAGE_SIZE,
	            &c->max_message_size) < 0 ||
	    cfg_num(x, "limits.max_data_memory", CFG_N_MAX_DATA_MEMORY, &c->max_data_memory) < 0 ||
	    cfg_uint(x, "limits.max_recipients", CFG_N_MAX_RECIPIENTS, &c->max_recipients) < 0 ||
	    cfg_uint(x, "limits.max_line_length", CFG_N_MAX_LINE_LENGTH,
	             &c->max_line_length) < 0 ||
	    cfg_uint(x, "limits.max_hops", CFG_N_MAX_HOPS, &c->max_hops) < 0 ||
	    cfg_uint(x, "limits.max_connections", CFG_N_MAX_CONNECTIONS,
	             &c->max_connections) < 0 ||
	    cfg_uint(x, "limits.max_connections_per_ip", CFG_N_MAX_CONNECTIONS_PER_IP,
	             &c->max_connections_per_ip) < 0 ||
	    cfg_uint(x, "limits.idle_timeout", CFG_N_IDLE_TIMEOUT, &c->idle_timeout) < 0 ||
	    cfg_uint(x, "limits.min_data_rate", CFG_N_MIN_DATA_RATE, &c->min_data_rate) < 0)
		return -1;
	/* a session's buffer for the largest message: its data and our Received: header */
	if (c->max_data_memory < c->max_message_size + CONFIG_DATA_MEMORY_SLACK)
		return cfg_err(x, "limits.max_data_memory", "limits.max_data_memory (%" PRIu64
		               ") must hold one message of limits.max_message_size (%" PRIu64
		               ") and 1 MiB more",
		               c->max_data_memory, c->max_message_size);
	return 0;
}

/* transports[i].source: one mapping or a list of them, each { ipv4, ipv6, helo }. */
static int cfg_source(struct cfg_ctx *x, yaml_node_t *m, struct config_source *s)
{
	yaml_document_t *doc = yamlpos_document(x->pos);
	if (m->type != YAML_MAPPING_NODE)
		return cfg_err_at(x, yamlpos_node_mark(m), "wrong type for source: expected a "
		                  "mapping { ipv4, ipv6, helo }");
	for (yaml_node_pair_t *pr = m->data.mapping.pairs.start;
	     pr < m->data.mapping.pairs.top; pr++) {
		yaml_node_t *k = yaml_document_get_node(doc, pr->key);
		yaml_node_t *v = yaml_document_get_node(doc, pr->value);
		const char *key = (const char *)k->data.scalar.value;  /* scalar: yamlpos */
		const char *val;
		char **slot;
		bool ok;

		if (strcmp(key, "ipv4") == 0)
			slot = &s->ipv4;
		else if (strcmp(key, "ipv6") == 0)
			slot = &s->ipv6;
		else if (strcmp(key, "helo") == 0)
			slot = &s->helo;
		else
			return cfg_err_at(x, yamlpos_node_mark(k), "unknown key '%s'", key);
		if (v->type != YAML_SCALAR_NODE)
			return cfg_err_at(x, yamlpos_node_mark(v), "wrong type for source.%s: "
			                  "expected a string", key);
		val = (const char *)v->data.scalar.value;
		if (slot == &s->ipv4)
			ok = cfg_is_ip(val, AF_INET);
		else if (slot == &s->ipv6)
			ok = cfg_is_ip(val, AF_INET6);
		else
			ok = cfg_name_ok(val, false);
		if (!ok || strlen(val) != v->data.scalar.length)
			return cfg_err_at(x, yamlpos_node_mark(v), "invalid %s '%s' in source",
			                  slot == &s->helo ? "helo name" :
			                  slot == &s->ipv4 ? "IPv4 address" : "IPv6 address", val);
		*slot = strdup(val);
		if (*slot == NULL)
			return cfg_oom(x);
	}
	if (s->ipv4 == NULL && s->ipv6 == NULL)
		return cfg_err_at(x, yamlpos_node_mark(m), "source needs an ipv4 or ipv6 address");
	return 0;
}

/* The same address (both given), whatever its spelling ("::1" and "0::1")? */
static bool cfg_same_ip(int af, const char *a, const char *b)
{
	uint8_t x[16], y[16];
	return a && b && inet_pton(af, a, x) == 1 && inet_pton(af, b, y) == 1 &&
	       memcmp(x, y, af == AF_INET ? 4 : 16) == 0;
}

static int cfg_sources(struct cfg_ctx *x, size_t i, struct config_transport *t)
{
	struct cfg_path p;
	yaml_node_t *n = yamlpos_node(x->pos, cfg_path(&p, "transports[%zu].source", i));
	yaml_document_t *doc;
	size_t cnt = 1;

	if (n == NULL)
		return 0;
	doc = yamlpos_document(x->pos);
	if (n->type == YAML_SCALAR_NODE) {
		const char *v = (const char *)n->data.scalar.value;
		if (n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
		    (v[0] == '\0' || strcmp(v, "~") == 0 || strcasecmp(v, "null") == 0))
			return 0;              /* "source:" with nothing: none */
		return cfg_err(x, p.s, "wrong type for %s: expected a mapping or a list of "
		               "mappings", p.s);
	}
	if (n->type == YAML_SEQUENCE_NODE)
		cnt = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
	if (cnt == 0)
		return 0;
	if (cnt > CONFIG_SOURCES_MAX)
		return cfg_err(x, p.s, "%s: %zu sources, at most %u", p.s, cnt, CONFIG_SOURCES_MAX);
	t->sources = calloc(cnt, sizeof(*t->sources));
	if (t->sources == NULL)
		return cfg_oom(x);
	t->nsources = cnt;
	if (n->type == YAML_MAPPING_NODE)
		return cfg_source(x, n, &t->sources[0]);
	for (size_t j = 0; j < cnt; j++) {
		yaml_node_t *e = yaml_document_get_node(doc, n->data.sequence.items.start[j]);
		if (cfg_source(x, e, &t->sources[j]) < 0)
			return -1;
	}
	/* each entry is a source of its own (own queues, limits, helo): one address in two of
	 * them would make the two one, the second's helo never used */
	for (size_t j = 0; j < cnt; j++)
		for (size_t k = 0; k < j; k++)
			if (cfg_same_ip(AF_INET, t->sources[j].ipv4, t->sources[k].ipv4) ||
			    cfg_same_ip(AF_INET6, t->sources[j].ipv6, t->sources[k].ipv6))
				return cfg_err(x, cfg_path(&p, "transports[%zu].source[%zu]", i, j),
				               "%s: an address of source[%zu] again (each entry is a "
				               "source of its own)", p.s, k);
	return 0;
}

/* nexthop: "mx", "[host]" (port 25) or "[host]:port"; stored as "mx" or "[host]:port". */
static int cfg_nexthop(struct cfg_ctx *x, const char *path, const char *v, char **out)
{
	char host[256];
	const char *port;
	bool br;
	long pn = 25;

	if (v == NULL || strcasecmp(v, "mx") == 0) {
		*out = strdup("mx");
		return *out ? 0 : cfg_oom(x);
	}
	if (!cfg_hostport(v, host, sizeof(host), &port, &br) || !br || !cfg_host_ok(host, br) ||
	    (port != NULL && (pn = cfg_port_text(port, false)) < 0))
		return cfg_err(x, path, "invalid nexthop '%s' in %s (expected mx or [host]:port)",
		               v, path);
	if (asprintf(out, "[%s]:%ld", host, pn) < 0) {
		*out = NULL;
		return cfg_oom(x);
	}
	return 0;
}

/* transports[i].timeouts: each key, its default and where it goes. */
static const struct {
	const char *key;
	enum cfg_num_key num;
	size_t off;                        /* in struct config_timeouts */
} cfg_timeout_keys[] = {
	{ "connect", CFG_N_TO_CONNECT, offsetof(struct config_timeouts, connect) },
	{ "greeting", CFG_N_TO_GREETING, offsetof(struct config_timeouts, greeting) },
	{ "ehlo", CFG_N_TO_EHLO, offsetof(struct config_timeouts, ehlo) },
	{ "mail", CFG_N_TO_MAIL, offsetof(struct config_timeouts, mail) },
	{ "rcpt", CFG_N_TO_RCPT, offsetof(struct config_timeouts, rcpt) },
	{ "data", CFG_N_TO_DATA, offsetof(struct config_timeouts, data) },
	{ "data_block", CFG_N_TO_DATA_BLOCK, offsetof(struct config_timeouts, data_block) },
	{ "data_done", CFG_N_TO_DATA_DONE, offsetof(struct config_timeouts, data_done) },
	{ "rset", CFG_N_TO_RSET, offsetof(struct config_timeouts, rset) },
	{ "quit", CFG_N_TO_QUIT, offsetof(struct config_timeouts, quit) },
};

/* The numbers of transports[i]: limits, shaping and timeouts. Absent keys (all of them
 * for the embedded default transport) get their defaults. */
static int cfg_transport_numbers(struct cfg_ctx *x, size_t i, struct config_transport *t)
{
	struct cfg_path p, ip;

	if (cfg_uint(x, cfg_path(&p, "transports[%zu].max_connections", i),
	             CFG_N_TRANSPORT_MAX_CONNECTIONS, &t->max_connections) < 0 ||
	    cfg_uint(x, cfg_path(&p, "transports[%zu].max_messages_per_connection", i),
	             CFG_N_TRANSPORT_MAX_MESSAGES, &t->max_messages_per_connection) < 0 ||
	    cfg_uint(x, cfg_path(&ip, "transports[%zu].initial_connections", i),
	             CFG_N_INITIAL_CONNECTIONS, &t->initial_connections) < 0)
		return -1;
	/* Slow start above the ceiling would be no slow start: an error when written so, the
	 * ceiling when it is only the default (max_connections: 2 alone starts at 2). */
	if (t->initial_connections > t->max_connections) {
		if (yamlpos_has(x->pos, ip.s))
			return cfg_err(x, ip.s, "%s: %u is more than max_connections (%u)", ip.s,
			               t->initial_connections, t->max_connections);
		t->initial_connections = t->max_connections;
	}
	if (cfg_uint(x, cfg_path(&p, "transports[%zu].dead_after", i), CFG_N_DEAD_AFTER,
	             &t->dead_after) < 0 ||
	    cfg_rate(x, cfg_path(&p, "transports[%zu].message_rate", i), false,
	             &t->message_rate) < 0 ||
	    cfg_rate(x, cfg_path(&p, "transports[%zu].connection_rate", i), false,
	             &t->connection_rate) < 0)
		return -1;
	for (size_t k = 0; k < sizeof(cfg_timeout_keys) / sizeof(cfg_timeout_keys[0]); k++) {
		unsigned *to = (unsigned *)((char *)&t->timeouts + cfg_timeout_keys[k].off);
		if (cfg_uint(x, cfg_path(&p, "transports[%zu].timeouts.%s", i,
		                         cfg_timeout_keys[k].key), cfg_timeout_keys[k].num, to) < 0)
			return -1;
	}
	return 0;
}

static int cfg_transport(struct cfg_ctx *x, const struct raw_transport *r, size_t i,
                         struct config_transport *t)
{
	struct cfg_path p;

	if (r == NULL) {                   /* the embedded default transport */
		t->id = strdup("default");
		t->nexthop = strdup("mx");
		if (t->id == NULL || t->nexthop == NULL)
			return cfg_oom(x);
		t->tls = CONFIG_OUT_TLS_OPPORTUNISTIC;
		t->source_failover = true;
		return cfg_transport_numbers(x, i, t);
	}
	if (r->id[0] == '\0')
		return cfg_err(x, cfg_path(&p, "transports[%zu].id", i),
		               "transport id must not be empty");
	t->id = strdup(r->id);
	if (t->id == NULL)
		return cfg_oom(x);
	if (cfg_nexthop(x, cfg_path(&p, "transports[%zu].nexthop", i), r->nexthop,
	                &t->nexthop) < 0)
		return -1;
	t->tls = r->tls ? *r->tls : CONFIG_OUT_TLS_OPPORTUNISTIC;
	if (r->tls_ca_file != NULL) {
		const char *why = cfg_unreadable(r->tls_ca_file);
		if (why != NULL)
			return cfg_err(x, cfg_path(&p, "transports[%zu].tls_ca_file", i),
			               "cannot read tls_ca_file '%s': %s", r->tls_ca_file, why);
		t->tls_ca_file = strdup(r->tls_ca_file);
		if (t->tls_ca_file == NULL)
			return cfg_oom(x);
	}
	if (t->tls == CONFIG_OUT_TLS_VERIFY && t->tls_ca_file == NULL) {
		/* verify without a CA file: the system's bundle, as Debian's ca-certificates
		 * keeps it; without one, an error (never a `verify` that checks nothing) */
		if (cfg_unreadable(CONFIG_SYSTEM_CA_FILE) != NULL)
			return cfg_err(x, cfg_path(&p, "transports[%zu].tls", i),
			               "tls: verify needs tls_ca_file (%s cannot be read)",
			               CONFIG_SYSTEM_CA_FILE);
		t->tls_ca_file = strdup(CONFIG_SYSTEM_CA_FILE);
		if (t->tls_ca_file == NULL)
			return cfg_oom(x);
	}
	if (cfg_transport_numbers(x, i, t) < 0)
		return -1;
	if (r->proxy_pool != NULL) {
		t->proxy_pool = strdup(r->proxy_pool);
		if (t->proxy_pool == NULL)
			return cfg_oom(x);
	}
	if (cfg_sources(x, i, t) < 0 ||
	    cfg_bool(x, cfg_path(&p, "transports[%zu].source_failover", i), r->source_failover,
	             true, &t->source_failover) < 0)
		return -1;
	return cfg_domains(x, cfg_path(&p, "transports[%zu].proxy_bypass_domains", i),
	                   r->proxy_bypass_domains, r->proxy_bypass_domains_count, true,
	                   &t->proxy_bypass_domains, &t->nproxy_bypass_domains);
}

/* health_check.probe: "[IP]:port" or "[IP]" (port 25), stored as "[IP]:port"; absent:
 * NULL. The address must be a literal: it is the destination the PROXY header names, so
 * a host name would put a DNS lookup (and its failures) into every probe. */
static int cfg_probe(struct cfg_ctx *x, const char *path, char **out)
{
	const yaml_node_t *n = yamlpos_node(x->pos, path);
	char host[INET6_ADDRSTRLEN + 1];
	const char *v, *port;
	bool br;
	long pn = 25;

	if (n == NULL)
		return 0;
	if (n->type != YAML_SCALAR_NODE)
		return cfg_err(x, path, "wrong type for %s: expected a string \"[IP]:port\", "
		               "got %s", path, cfg_node_word(n));
	v = (const char *)n->data.scalar.value;
	if (strlen(v) != n->data.scalar.length || n->data.scalar.length > 64 ||
	    !cfg_hostport(v, host, sizeof(host), &port, &br) || !br ||
	    !(cfg_is_ip(host, AF_INET) || cfg_is_ip(host, AF_INET6)) ||
	    (port != NULL && (pn = cfg_port_text(port, false)) < 0))
		return cfg_err(x, path, "invalid probe '%.64s%s' in %s (expected [IP]:port, an "
		               "IPv4 or IPv6 address)", v, n->data.scalar.length > 64 ? "..." : "",
		               path);
	if (asprintf(out, "[%s]:%ld", host, pn) < 0) {
		*out = NULL;
		return cfg_oom(x);
	}
	return 0;
}

static int cfg_health_check(struct cfg_ctx *x, size_t i, struct config_health_check *h)
{
	struct cfg_path p;
	const char *tpath;

	if (cfg_uint(x, cfg_path(&p, "proxy_pools[%zu].health_check.interval", i),
	             CFG_N_HEALTH_INTERVAL, &h->interval) < 0 ||
	    cfg_uint(x, cfg_path(&p, "proxy_pools[%zu].health_check.failure_threshold", i),
	             CFG_N_HEALTH_THRESHOLD, &h->failure_threshold) < 0 ||
	    cfg_uint(x, cfg_path(&p, "proxy_pools[%zu].health_check.success_threshold", i),
	             CFG_N_HEALTH_THRESHOLD, &h->success_threshold) < 0)
		return -1;
	tpath = cfg_path(&p, "proxy_pools[%zu].health_check.timeout", i);
	if (cfg_uint(x, tpath, CFG_N_HEALTH_TIMEOUT, &h->timeout) < 0)
		return -1;
	/* A probe still running when the next one is due would overlap it. */
	if (h->timeout > h->interval)
		return cfg_err(x, tpath, "%s: %u is longer than health_check.interval (%u)", tpath,
		               h->timeout, h->interval);
	return cfg_probe(x, cfg_path(&p, "proxy_pools[%zu].health_check.probe", i), &h->probe);
}

static int cfg_pool(struct cfg_ctx *x, const struct raw_pool *r, size_t i,
                    struct config_proxy_pool *pp)
{
	struct cfg_path p;

	if (r->id[0] == '\0')
		return cfg_err(x, cfg_path(&p, "proxy_pools[%zu].id", i),
		               "proxy pool id must not be empty");
	pp->id = strdup(r->id);
	if (pp->id == NULL)
		return cfg_oom(x);
	if (cfg_uint(x, cfg_path(&p, "proxy_pools[%zu].version", i), CFG_N_POOL_VERSION,
	             &pp->version) < 0)
		return -1;
	if (r->servers_count == 0)
		return cfg_err(x, cfg_path(&p, "proxy_pools[%zu].servers", i),
		               "proxy pool '%s' has no servers", pp->id);
	if (r->servers_count > CONFIG_POOL_SERVERS_MAX)
		return cfg_err(x, cfg_path(&p, "proxy_pools[%zu].servers", i),
		               "proxy pool '%s' has %u servers, at most %u", pp->id,
		               r->servers_count, CONFIG_POOL_SERVERS_MAX);
	pp->servers = calloc(r->servers_count, sizeof(*pp->servers));
	if (pp->servers == NULL)
		return cfg_oom(x);
	pp->nservers = r->servers_count;
	for (unsigned j = 0; j < r->servers_count; j++) {
		char host[256];
		const char *port;
		bool br;
		if (!cfg_hostport(r->servers[j], host, sizeof(host), &port, &br) ||
		    port == NULL || cfg_port_text(port, false) < 0 || !cfg_host_ok(host, br))
			return cfg_err(x, cfg_path(&p, "proxy_pools[%zu].servers[%u]", i, j),
			               "invalid server '%s' in proxy_pools[%zu].servers "
			               "(expected host:port or [IPv6]:port)", r->servers[j], i);
		pp->servers[j] = strdup(r->servers[j]);
		if (pp->servers[j] == NULL)
			return cfg_oom(x);
		/* (the same server twice would be probed, counted and shown as two) */
		for (unsigned k = 0; k < j; k++)
			if (strcasecmp(pp->servers[k], pp->servers[j]) == 0)
				return cfg_err(x, cfg_path(&p, "proxy_pools[%zu].servers[%u]", i, j),
				               "server '%s' twice in proxy pool '%s'", pp->servers[j],
				               pp->id);
	}
	return cfg_health_check(x, i, &pp->health_check);
}

static int cfg_delivery(struct cfg_ctx *x, const struct raw_config *r, struct config *c)
{
	struct cfg_path p;
	size_t nt = r && yamlpos_has(x->pos, "transports") ? r->transports_count : 0;
	size_t np = r ? r->proxy_pools_count : 0;
	bool default_routes = !(r && yamlpos_has(x->pos, "routes"));

	/* Pools first: transports refer to them. */
	if (np > 0) {
		c->proxy_pools = calloc(np, sizeof(*c->proxy_pools));
		if (c->proxy_pools == NULL)
			return cfg_oom(x);
		c->nproxy_pools = np;
	}
	for (size_t i = 0; i < np; i++) {
		if (cfg_pool(x, &r->proxy_pools[i], i, &c->proxy_pools[i]) < 0)
			return -1;
		for (size_t j = 0; j < i; j++)
			if (strcmp(c->proxy_pools[j].id, c->proxy_pools[i].id) == 0)
				return cfg_err(x, cfg_path(&p, "proxy_pools[%zu].id", i),
				               "duplicate proxy pool id '%s'", c->proxy_pools[i].id);
	}

	if (r && yamlpos_has(x->pos, "transports") && nt == 0)
		return cfg_err(x, "transports", "transports must not be empty "
		               "(leave the key out for the default transport)");
	c->transports = calloc(nt ? nt : 1, sizeof(*c->transports));
	if (c->transports == NULL)
		return cfg_oom(x);
	c->ntransports = nt ? nt : 1;
	for (size_t i = 0; i < c->ntransports; i++) {
		struct config_transport *t = &c->transports[i];
		if (cfg_transport(x, nt ? &r->transports[i] : NULL, i, t) < 0)
			return -1;
		for (size_t j = 0; j < i; j++)
			if (strcmp(c->transports[j].id, t->id) == 0)
				return cfg_err(x, cfg_path(&p, "transports[%zu].id", i),
				               "duplicate transport id '%s'", t->id);
		if (t->proxy_pool != NULL) {
			size_t j;
			for (j = 0; j < c->nproxy_pools; j++)
				if (strcmp(c->proxy_pools[j].id, t->proxy_pool) == 0)
					break;
			if (j == c->nproxy_pools)
				return cfg_err(x, cfg_path(&p, "transports[%zu].proxy_pool", i),
				               "transport '%s' names unknown proxy pool '%s'", t->id,
				               t->proxy_pool);
		}
	}

	if (default_routes) {
		c->routes = calloc(1, sizeof(*c->routes));
		if (c->routes == NULL)
			return cfg_oom(x);
		c->nroutes = 1;
		c->routes[0].domains = calloc(1, sizeof(char *));
		if (c->routes[0].domains == NULL)
			return cfg_oom(x);
		c->routes[0].ndomains = 1;
		c->routes[0].domains[0] = strdup("*");
		c->routes[0].transport = strdup("default");
		if (c->routes[0].domains[0] == NULL || c->routes[0].transport == NULL)
			return cfg_oom(x);
	} else if (r->routes_count == 0) {
		return cfg_err(x, "routes", "routes must not be empty "
		               "(leave the key out for the default route '*' -> default)");
	} else {
		c->routes = calloc(r->routes_count, sizeof(*c->routes));
		if (c->routes == NULL)
			return cfg_oom(x);
		c->nroutes = r->routes_count;
		for (size_t i = 0; i < c->nroutes; i++) {
			const struct raw_route *rr = &r->routes[i];
			if (rr->domains_count == 0)
				return cfg_err(x, cfg_path(&p, "routes[%zu].domains", i),
				               "route has no domains");
			if (cfg_domains(x, cfg_path(&p, "routes[%zu].domains", i), rr->domains,
			                rr->domains_count, true, &c->routes[i].domains,
			                &c->routes[i].ndomains) < 0)
				return -1;
			c->routes[i].transport = strdup(rr->transport);
			if (c->routes[i].transport == NULL)
				return cfg_oom(x);
		}
	}
	for (size_t i = 0; i < c->nroutes; i++) {
		size_t j;
		for (j = 0; j < c->ntransports; j++)
			if (strcmp(c->transports[j].id, c->routes[i].transport) == 0)
				break;
		if (j == c->ntransports) {
			if (default_routes)
				return cfg_err_at(x, yamlpos_key(x->pos, "transports"),
				                  "no routes given and no transport 'default' for the "
				                  "implicit route '*' -> default");
			return cfg_err(x, cfg_path(&p, "routes[%zu].transport", i),
			               "route names unknown transport '%s'", c->routes[i].transport);
		}
	}
	return 0;
}

/* shaping[i]: its site pattern and the keys it gives (config.h). */
static int cfg_shaping_entry(struct cfg_ctx *x, const struct raw_shaping *r, size_t i,
                             struct config_shaping *sh)
{
	static const struct {
		const char *key;
		enum cfg_num_key num;
		unsigned bit;
		size_t off;
	} nums[] = {
		{ "max_connections", CFG_N_TRANSPORT_MAX_CONNECTIONS, CONFIG_SH_MAX_CONNECTIONS,
		  offsetof(struct config_shaping, max_connections) },
		{ "initial_connections", CFG_N_INITIAL_CONNECTIONS, CONFIG_SH_INITIAL_CONNECTIONS,
		  offsetof(struct config_shaping, initial_connections) },
		{ "max_messages_per_connection", CFG_N_TRANSPORT_MAX_MESSAGES, CONFIG_SH_MAX_MESSAGES,
		  offsetof(struct config_shaping, max_messages_per_connection) },
	};
	struct cfg_path p;
	bool oom = false;

	if (strcasecmp(r->site, "default") == 0) {
		sh->site = strdup("default");
		oom = sh->site == NULL;
	} else if (strcmp(r->site, "*") == 0) {
		/* it would match every site and beat default: two names for one thing */
		return cfg_err(x, cfg_path(&p, "shaping[%zu].site", i),
		               "site '*' in shaping[%zu].site: use default for every site", i);
	} else {
		sh->site = cfg_domain(r->site, true, &oom);
		if (sh->site == NULL && !oom)
			return cfg_err(x, cfg_path(&p, "shaping[%zu].site", i),
			               "invalid site '%s' in shaping[%zu].site (expected default, a host "
			               "name or *.domain)", r->site, i);
	}
	if (oom)
		return cfg_oom(x);
	for (size_t k = 0; k < sizeof(nums) / sizeof(nums[0]); k++) {
		cfg_path(&p, "shaping[%zu].%s", i, nums[k].key);
		if (!yamlpos_has(x->pos, p.s))
			continue;
		if (cfg_uint(x, p.s, nums[k].num, (unsigned *)((char *)sh + nums[k].off)) < 0)
			return -1;
		sh->set |= nums[k].bit;
	}
	if ((sh->set & CONFIG_SH_MAX_CONNECTIONS) && (sh->set & CONFIG_SH_INITIAL_CONNECTIONS) &&
	    sh->initial_connections > sh->max_connections)
		return cfg_err(x, cfg_path(&p, "shaping[%zu].initial_connections", i),
		               "%s: %u is more than max_connections (%u)", p.s,
		               sh->initial_connections, sh->max_connections);
	if (yamlpos_has(x->pos, cfg_path(&p, "shaping[%zu].max_message_rate", i))) {
		if (cfg_rate(x, p.s, true, &sh->message_rate) < 0)
			return -1;
		sh->set |= CONFIG_SH_MESSAGE_RATE;
	}
	if (yamlpos_has(x->pos, cfg_path(&p, "shaping[%zu].max_connection_rate", i))) {
		if (cfg_rate(x, p.s, true, &sh->connection_rate) < 0)
			return -1;
		sh->set |= CONFIG_SH_CONNECTION_RATE;
	}
	return 0;
}

static int cfg_shaping(struct cfg_ctx *x, const struct raw_config *r, struct config *c)
{
	struct cfg_path p;
	size_t n = r ? r->shaping_count : 0;
	if (n == 0)
		return 0;
	c->shaping = calloc(n, sizeof(*c->shaping));
	if (c->shaping == NULL)
		return cfg_oom(x);
	c->nshaping = n;
	for (size_t i = 0; i < n; i++) {
		if (cfg_shaping_entry(x, &r->shaping[i], i, &c->shaping[i]) < 0)
			return -1;
		for (size_t j = 0; j < i; j++)
			if (strcmp(c->shaping[j].site, c->shaping[i].site) == 0)
				return cfg_err(x, cfg_path(&p, "shaping[%zu].site", i),
				               "duplicate shaping site '%s'", c->shaping[i].site);
	}
	return 0;
}

static int cfg_queue(struct cfg_ctx *x, struct config *c)
{
	static const unsigned defaults[] = { 60, 300, 900, 1800, 3600 };
	const char *path = "queue.retry_schedule";
	const yaml_node_t *n = yamlpos_node(x->pos, path);
	struct cfg_path p;
	uint64_t age = 0;

	if (n != NULL) {
		size_t cnt;
		if (n->type != YAML_SEQUENCE_NODE)
			return cfg_err(x, path, "wrong type for %s: expected a list, got %s", path,
			               cfg_node_word(n));
		cnt = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
		if (cnt == 0)
			return cfg_err(x, path, "retry_schedule must not be empty");
		if (cnt > CFG_RETRY_MAX_ENTRIES)
			return cfg_err(x, cfg_path(&p, "%s[%d]", path, CFG_RETRY_MAX_ENTRIES),
			               "%s: %zu entries, at most %d (the last one repeats)", path,
			               cnt, CFG_RETRY_MAX_ENTRIES);
		c->retry_schedule = calloc(cnt, sizeof(unsigned));
		if (c->retry_schedule == NULL)
			return cfg_oom(x);
		c->nretry_schedule = cnt;
		for (size_t i = 0; i < cnt; i++)
			if (cfg_uint(x, cfg_path(&p, "%s[%zu]", path, i), CFG_N_RETRY,
			             &c->retry_schedule[i]) < 0)
				return -1;
	} else {
		c->retry_schedule = malloc(sizeof(defaults));
		if (c->retry_schedule == NULL)
			return cfg_oom(x);
		memcpy(c->retry_schedule, defaults, sizeof(defaults));
		c->nretry_schedule = sizeof(defaults) / sizeof(defaults[0]);
	}
	if (cfg_num(x, "queue.max_age", CFG_N_MAX_AGE, &age) < 0)
		return -1;
	c->max_age = (unsigned)age;
	return 0;
}

/* The daemon creates a missing spool directory (and its parents), so only a path that
 * can never become one is an error: it exists and is something else, or one of its
 * parents is not a directory. Anything else (EACCES for the user running --check, ...)
 * is left to the daemon to report when it starts. */
static int cfg_spool_dir(struct cfg_ctx *x, const char *path, bool given)
{
	struct stat st;
	const char *dflt = given ? "" : " (the default)";
	if (stat(path, &st) == 0) {
		if (!S_ISDIR(st.st_mode))
			return cfg_err(x, "spool.path", "spool.path '%s'%s exists and is not a "
			               "directory", path, dflt);
	} else if (errno == ENOTDIR) {
		return cfg_err(x, "spool.path", "spool.path '%s'%s: a parent of it is not a "
		               "directory", path, dflt);
	}
	return 0;
}

static int cfg_top(struct cfg_ctx *x, const struct raw_config *r, struct config *c)
{
	const struct raw_spool *s = r ? r->spool : NULL;
	const struct raw_dns *d = r ? r->dns : NULL;
	struct cfg_path p;

	if (r != NULL && r->hostname != NULL) {
		if (!cfg_name_ok(r->hostname, false))
			return cfg_err(x, "hostname", "invalid hostname '%s'", r->hostname);
		c->hostname = strdup(r->hostname);
	} else {
		char host[256] = "";
		if (gethostname(host, sizeof(host) - 1) != 0 || host[0] == '\0')
			strcpy(host, "localhost");
		c->hostname = strdup(host);
	}
	if (c->hostname == NULL)
		return cfg_oom(x);
	if (cfg_uint(x, "workers", CFG_N_WORKERS, &c->workers) < 0 ||
	    cfg_uint(x, "shutdown_timeout", CFG_N_SHUTDOWN_TIMEOUT, &c->shutdown_timeout) < 0)
		return -1;

	if (s != NULL && s->path != NULL && s->path[0] == '\0')
		return cfg_err(x, "spool.path", "spool.path must not be empty");
	c->spool_path = strdup(s && s->path ? s->path : "./spool");
	if (c->spool_path == NULL)
		return cfg_oom(x);
	if (cfg_spool_dir(x, c->spool_path, s && s->path) < 0)
		return -1;
	if (cfg_bool(x, "spool.sync", s ? s->sync : NULL, true, &c->spool_sync) < 0 ||
	    cfg_num(x, "spool.min_free", CFG_N_SPOOL_MIN_FREE, &c->spool_min_free) < 0)
		return -1;

	/* control: the socket of `ringrelay ctl`, inside the spool by default */
	const struct raw_control *ct = r ? r->control : NULL;
	if (ct && ct->path && ct->path[0] == '\0')
		return cfg_err(x, "control.path", "control.path must not be empty");
	if (ct && ct->path)
		c->control_path = strdup(ct->path);
	else if (asprintf(&c->control_path, "%s/control.sock", c->spool_path) < 0)
		c->control_path = NULL;
	if (c->control_path == NULL)
		return cfg_oom(x);
	if (strlen(c->control_path) >= CONFIG_CONTROL_PATH_MAX)
		return cfg_err(x, ct && ct->path ? "control.path" : "spool.path",
		               "the control socket's path '%s' is longer than a Unix socket's "
		               "%u octets (set control.path)", c->control_path,
		               CONFIG_CONTROL_PATH_MAX - 1);
	c->control_mode = 0600;
	if (ct && ct->mode) {
		const char *m = ct->mode;
		unsigned v = 0;
		size_t k = 0;
		for (; m[k] >= '0' && m[k] <= '7' && k < 5; k++)
			v = v * 8 + (unsigned)(m[k] - '0');
		if (k == 0 || m[k] != '\0' || v > 0777 || (v & 0600) != 0600)
			return cfg_err(x, "control.mode",
			               "control.mode '%s': expected octal permissions with owner "
			               "read and write, such as 0600 or 0660", m);
		c->control_mode = v;
	}

	const struct raw_metrics *mt = r ? r->metrics : NULL;
	if (mt != NULL) {                  /* the section turns the listener on */
		unsigned port;
		const char *addr = mt->address ? mt->address : "127.0.0.1";
		if (cfg_uint(x, "metrics.port", CFG_N_METRICS_PORT, &port) < 0)
			return -1;
		if (!cfg_sockaddr(addr, port, &c->metrics_addr, &c->metrics_addrlen))
			return cfg_err(x, "metrics.address",
			               "invalid address '%s' in metrics.address "
			               "(expected an IPv4 or IPv6 literal)", addr);
		c->metrics = true;
	}

	if (cfg_uint(x, "dns.max_lookups", CFG_N_DNS_MAX_LOOKUPS, &c->dns_max_lookups) < 0)
		return -1;
	if (d != NULL && d->servers_count > 0) {
		c->dns_servers = calloc(d->servers_count, sizeof(char *));
		if (c->dns_servers == NULL)
			return cfg_oom(x);
		c->ndns_servers = d->servers_count;
		for (unsigned i = 0; i < d->servers_count; i++) {
			char host[INET6_ADDRSTRLEN + 1];
			const char *port;
			bool br;
			const char *v = d->servers[i];
			if (!cfg_hostport(v, host, sizeof(host), &port, &br) ||
			    !(cfg_is_ip(host, AF_INET) || cfg_is_ip(host, AF_INET6)) ||
			    (cfg_is_ip(host, AF_INET6) && port != NULL && !br) ||
			    (port != NULL && cfg_port_text(port, false) < 0))
				return cfg_err(x, cfg_path(&p, "dns.servers[%u]", i),
				               "invalid DNS server '%s' in dns.servers "
				               "(expected IP, IP:port or [IPv6]:port)", v);
			c->dns_servers[i] = strdup(v);
			if (c->dns_servers[i] == NULL)
				return cfg_oom(x);
		}
	}
	return 0;
}

static int cfg_build(struct cfg_ctx *x, const struct raw_config *r, struct config *c)
{
	if (cfg_top(x, r, c) < 0 || cfg_listeners(x, r, c) < 0 || cfg_relay(x, r, c) < 0 ||
	    cfg_limits(x, c) < 0 || cfg_delivery(x, r, c) < 0 || cfg_queue(x, c) < 0 ||
	    cfg_shaping(x, r, c) < 0)
		return -1;
	return 0;
}

/* ---- libcyaml errors back to FILE:LINE:COL ---- */

struct cfg_log {
	char buf[4096];
	size_t len;
};

static void cfg_log_fn(cyaml_log_t level, void *ctx, const char *fmt, va_list args)
	__attribute__((format(printf, 3, 0)));
static void cfg_log_fn(cyaml_log_t level, void *ctx, const char *fmt, va_list args)
{
	struct cfg_log *l = ctx;
	int n;
	if (level < CYAML_LOG_ERROR || l->len >= sizeof(l->buf) - 1)
		return;
	n = vsnprintf(l->buf + l->len, sizeof(l->buf) - l->len, fmt, args);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(l->buf) - l->len)
		n = (int)(sizeof(l->buf) - 1 - l->len);   /* truncated */
	l->len += (size_t)n;
}

enum cfg_frame_kind { CFG_FRAME_MAP = 0, CFG_FRAME_FIELD, CFG_FRAME_ENTRY };

struct cfg_frame {
	enum cfg_frame_kind kind;
	char name[128];                    /* field key, or entry number (1-based) */
	struct yamlpos_mark mark;
};

/* One backtrace line: "  in mapping field 'KEY' (line: L, column: C)",
 * "  in sequence entry 'N' (line: L, column: C)" or "  in mapping (line: L, column: C)". */
static bool cfg_parse_frame(const char *line, size_t len, struct cfg_frame *f)
{
	static const char field[] = "in mapping field '", entry[] = "in sequence entry '",
	                  map[] = "in mapping";
	char tmp[300];
	const char *s, *lp, *q;
	unsigned ln = 0, col = 0;

	if (len >= sizeof(tmp))
		return false;
	memcpy(tmp, line, len);
	tmp[len] = '\0';
	s = tmp + strspn(tmp, " ");
	memset(f, 0, sizeof(*f));
	/* The position is the last " (line: " group: a key may hold anything. */
	lp = NULL;
	for (q = strstr(s, " (line: "); q != NULL; q = strstr(q + 1, " (line: "))
		lp = q;
	if (lp != NULL && sscanf(lp, " (line: %u, column: %u)", &ln, &col) == 2) {
		f->mark.line = ln;
		f->mark.col = col;
	} else {
		lp = s + strlen(s);
	}
	if (strncmp(s, field, sizeof(field) - 1) == 0 || strncmp(s, entry, sizeof(entry) - 1) == 0) {
		bool is_field = s[3] == 'm';
		size_t skip = is_field ? sizeof(field) - 1 : sizeof(entry) - 1;
		size_t n = (size_t)(lp - (s + skip));
		if (n == 0 || s[skip + n - 1] != '\'' || n - 1 >= sizeof(f->name))
			return false;
		memcpy(f->name, s + skip, n - 1);
		f->name[n - 1] = '\0';
		f->kind = is_field ? CFG_FRAME_FIELD : CFG_FRAME_ENTRY;
		return true;
	}
	if (strncmp(s, map, sizeof(map) - 1) == 0) {
		f->kind = CFG_FRAME_MAP;
		return true;
	}
	return false;
}

static const char *cfg_type_word(const char *t)
{
	static const struct {
		const char *cy, *word;
	} words[] = {
		{ "STRING", "a string" }, { "INT", "an integer" }, { "UINT", "an integer" },
		{ "BOOL", "a boolean" }, { "ENUM", "a string" }, { "FLOAT", "a number" },
		{ "MAPPING", "a mapping" }, { "SEQUENCE", "a list" },
		{ "SEQUENCE_FIXED", "a list" }, { "SCALAR", "a scalar" },
		{ "SEQUENCE_START", "a list" }, { "MAPPING_START", "a mapping" },
		{ "ALIAS", "an alias" },
	};
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		if (strcmp(words[i].cy, t) == 0)
			return words[i].word;
	return t;
}

/* Turn the captured libcyaml log into "FILE:LINE:COL: message". */
static void cfg_cyaml_error(struct cfg_ctx *x, cyaml_err_t err, const struct cfg_log *log)
{
	struct cfg_frame frames[32];
	size_t nframes = 0;
	char msg[512] = "";
	char path[512] = "", parent[512] = "";
	const char *line = log->buf, *where;
	struct yamlpos_mark m;

	/* Split the log into the message and the backtrace frames (innermost first). */
	while (*line != '\0') {
		const char *nl = strchr(line, '\n');
		size_t len = nl ? (size_t)(nl - line) : strlen(line);
		if (strncmp(line, "Load: ", 6) == 0 && strncmp(line, "Load: Backtrace:", 16) != 0) {
			if (msg[0] == '\0')
				snprintf(msg, sizeof(msg), "%.*s", (int)(len - 6), line + 6);
		} else if (strncmp(line, "  in ", 5) == 0 && nframes < 32) {
			if (cfg_parse_frame(line, len, &frames[nframes]))
				nframes++;
		}
		line += len + (nl != NULL);
	}
	if (err == CYAML_ERR_OOM || msg[0] == '\0') {
		struct yamlpos_mark where0 = nframes ? frames[0].mark : (struct yamlpos_mark){ 1, 1 };
		cfg_err_at(x, where0, "%s", err == CYAML_ERR_OOM ? "out of memory" :
		           cyaml_strerror(err));
		return;
	}

	/* Outermost to innermost: the path of the value being loaded, and of its container. */
	for (size_t k = nframes; k-- > 0;) {
		size_t len = strlen(path);
		if (k == 0)
			memcpy(parent, path, sizeof(parent));
		if (frames[k].kind == CFG_FRAME_FIELD)
			snprintf(path + len, sizeof(path) - len, "%s%s", len ? "." : "",
			         frames[k].name);
		else if (frames[k].kind == CFG_FRAME_ENTRY)
			snprintf(path + len, sizeof(path) - len, "[%ld]",
			         strtol(frames[k].name, NULL, 10) - 1);
	}
	if (nframes == 0)
		parent[0] = '\0';
	where = path[0] ? path : "the document";
	m = yamlpos_has(x->pos, path) || nframes == 0 || frames[0].mark.line == 0 ?
	    yamlpos_value(x->pos, path) : frames[0].mark;

	if (strncmp(msg, "Unexpected key: ", 16) == 0) {
		const char *key = msg + 16;
		char kp[sizeof(path) + sizeof(msg) + 2];
		/* The innermost frame is the mapping, or its last field. */
		const char *base = nframes && frames[0].kind == CFG_FRAME_FIELD ? parent : path;
		snprintf(kp, sizeof(kp), "%s%s%s", base, base[0] ? "." : "", key);
		if (!yamlpos_has(x->pos, kp))
			snprintf(kp, sizeof(kp), "%s%s%s", path, path[0] ? "." : "", key);
		if (base[0])
			cfg_err_at(x, yamlpos_key(x->pos, kp), "unknown key '%s' in %s", key, base);
		else
			cfg_err_at(x, yamlpos_key(x->pos, kp), "unknown key '%s'", key);
	} else if (strncmp(msg, "Missing required mapping field: ", 32) == 0) {
		const char *base = nframes && frames[0].kind == CFG_FRAME_FIELD ? parent : path;
		cfg_err_at(x, yamlpos_value(x->pos, base), "missing required key '%s'%s%s",
		           msg + 32, base[0] ? " in " : "", base);
	} else if (strncmp(msg, "Invalid ENUM value: ", 20) == 0) {
		const char *key = strrchr(path, '.') ? strrchr(path, '.') + 1 : path;
		const char *expect = NULL;
		for (size_t i = 0; i < sizeof(cfg_enum_help) / sizeof(cfg_enum_help[0]); i++)
			if (strcmp(cfg_enum_help[i].key, key) == 0)
				expect = cfg_enum_help[i].expect;
		cfg_err_at(x, m, "invalid value '%s' for %s%s%s%s", msg + 20, where,
		           expect ? " (expected " : "", expect ? expect : "", expect ? ")" : "");
	} else if (strncmp(msg, "Expecting ", 10) == 0) {
		char want[32] = "", got[32] = "";
		if (sscanf(msg, "Expecting %31[A-Z_], got event: %31[A-Z_]", want, got) == 2)
			cfg_err_at(x, m, "wrong type for %s: expected %s, got %s", where,
			           cfg_type_word(want), cfg_type_word(got));
		else
			cfg_err_at(x, m, "%s (%s)", msg, where);
	} else {
		cfg_err_at(x, m, "%s (%s)", msg, where);
	}
}

/* ---- public ---- */

void config_free(struct config *c)
{
	if (c == NULL)
		return;
	free(c->hostname);
	free(c->spool_path);
	free(c->control_path);
	for (size_t i = 0; i < c->ndns_servers; i++)
		free(c->dns_servers[i]);
	free(c->dns_servers);
	for (size_t i = 0; i < c->nlisteners; i++) {
		struct config_listener *l = &c->listeners[i];
		free(l->id);
		cidr_free(l->proxy_hosts);
		free(l->proxy_hosts_file);
		for (size_t k = 0; k < l->nproxy_hosts_inline; k++)
			free(l->proxy_hosts_inline[k]);
		free(l->proxy_hosts_inline);
		free(l->tls_certificate);
		free(l->tls_key);
	}
	free(c->listeners);
	cidr_free(c->relay_networks);
	for (size_t i = 0; i < c->nrelay_domains; i++)
		free(c->relay_domains[i]);
	free(c->relay_domains);
	for (size_t i = 0; i < c->nroutes; i++) {
		for (size_t j = 0; j < c->routes[i].ndomains; j++)
			free(c->routes[i].domains[j]);
		free(c->routes[i].domains);
		free(c->routes[i].transport);
	}
	free(c->routes);
	for (size_t i = 0; i < c->nshaping; i++)
		free(c->shaping[i].site);
	free(c->shaping);
	for (size_t i = 0; i < c->ntransports; i++) {
		struct config_transport *t = &c->transports[i];
		free(t->id);
		free(t->nexthop);
		free(t->tls_ca_file);
		free(t->proxy_pool);
		for (size_t j = 0; j < t->nsources; j++) {
			free(t->sources[j].ipv4);
			free(t->sources[j].ipv6);
			free(t->sources[j].helo);
		}
		free(t->sources);
		for (size_t j = 0; j < t->nproxy_bypass_domains; j++)
			free(t->proxy_bypass_domains[j]);
		free(t->proxy_bypass_domains);
	}
	free(c->transports);
	for (size_t i = 0; i < c->nproxy_pools; i++) {
		free(c->proxy_pools[i].id);
		for (size_t j = 0; j < c->proxy_pools[i].nservers; j++)
			free(c->proxy_pools[i].servers[j]);
		free(c->proxy_pools[i].servers);
		free(c->proxy_pools[i].health_check.probe);
	}
	free(c->proxy_pools);
	free(c->retry_schedule);
	free(c->source_file);
	free(c);
}

static struct config *cfg_load(struct cfg_ctx *x, const struct raw_config *r)
{
	struct config *c = calloc(1, sizeof(*c));
	if (c == NULL) {
		cfg_oom(x);
		return NULL;
	}
	if (cfg_build(x, r, c) < 0) {
		config_free(c);
		return NULL;
	}
	return c;
}

/* Is the document's root a null scalar (empty, "~" or "null")? */
static bool cfg_null_doc(const struct yamlpos *pos)
{
	const yaml_node_t *root = yamlpos_node(pos, "");
	const char *v;
	if (root == NULL || root->type != YAML_SCALAR_NODE ||
	    root->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return false;
	v = (const char *)root->data.scalar.value;
	return v[0] == '\0' || strcmp(v, "~") == 0 || strcasecmp(v, "null") == 0;
}

struct config *config_load_mem(const char *name, const char *yaml, size_t len,
                               char *errbuf, size_t errlen)
{
	struct cfg_ctx x = { .name = name ? name : "(memory)", .errbuf = errbuf,
	                     .errlen = errlen };
	struct cfg_log log = { .len = 0 };
	cyaml_config_t cy = {
		.log_fn = cfg_log_fn,
		.log_ctx = &log,
		.mem_fn = cyaml_mem,
		.log_level = CYAML_LOG_ERROR,
		.flags = CYAML_CFG_DEFAULT,
	};
	struct raw_config *raw = NULL;
	struct config *c = NULL;
	struct yamlpos_mark m;
	char msg[256];
	cyaml_err_t err;

	if (errbuf != NULL && errlen > 0)
		errbuf[0] = '\0';
	x.pos = yamlpos_new(yaml, len, &m, msg, sizeof(msg));
	if (x.pos == NULL) {
		cfg_err_at(&x, m, "%s", msg);
		return NULL;
	}
	log.buf[0] = '\0';
	if (cfg_null_doc(x.pos)) {
		/* "---" alone, or "~": an empty document, which libcyaml would reject. */
		struct raw_config empty = { 0 };
		c = cfg_load(&x, &empty);
		goto named;
	}
	err = cyaml_load_data((const uint8_t *)yaml, len, &cy, &top_schema,
	                      (cyaml_data_t **)&raw, NULL);
	if (err != CYAML_OK) {
		cfg_cyaml_error(&x, err, &log);
		goto out;
	}
	{
		/* An empty document (or one of only comments) loads as NULL: all defaults. */
		struct raw_config empty = { 0 };
		c = cfg_load(&x, raw ? raw : &empty);
	}
named:
	if (c != NULL) {
		c->source_file = cfg_strdup(x.name);
		if (c->source_file == NULL) {
			cfg_oom(&x);
			config_free(c);
			c = NULL;
		}
	}
out:
	if (raw != NULL)
		cyaml_free(&cy, &top_schema, raw, 0);
	yamlpos_free(x.pos);
	return c;
}

struct config *config_load(const char *path, char *errbuf, size_t errlen)
{
	struct cfg_ctx x = { .name = path ? path : CFG_NAME_DEFAULTS, .defaults = path == NULL,
	                     .errbuf = errbuf, .errlen = errlen };
	struct config *c;
	char *buf;
	size_t len;

	if (errbuf != NULL && errlen > 0)
		errbuf[0] = '\0';
	if (path == NULL)
		return cfg_load(&x, NULL);
	/* Never blocks on a FIFO; "PATH:0:0: ..." for what is wrong with the file itself. */
	if (textfile_read(path, CFG_MAX_FILE, &buf, &len, errbuf, errlen) < 0)
		return NULL;
	c = config_load_mem(path, buf, len, errbuf, errlen);
	free(buf);
	return c;
}

void config_transport_cli_timeouts(const struct config_transport *t,
                                   struct smtp_cli_timeouts *out)
{
	const struct config_timeouts *s = &t->timeouts;
	/* Each at most CONFIG_SECONDS_MAX: the products fit (asserted with the ranges). */
	out->greeting = s->greeting * 1000u;
	out->helo = s->ehlo * 1000u;
	out->mail = s->mail * 1000u;
	out->rcpt = s->rcpt * 1000u;
	out->data_init = s->data * 1000u;
	out->data_block = s->data_block * 1000u;
	out->data_end = s->data_done * 1000u;
	out->rset = s->rset * 1000u;
	out->quit = s->quit * 1000u;
}

void config_summary(const struct config *c, char *buf, size_t len)
{
	size_t nets = cidr_count(c->relay_networks);
#define CFG_PL(n) (n), ((n) == 1 ? "" : "s")
	snprintf(buf, len, "ok: %s: %zu listener%s, %zu relay network%s, %zu relay domain%s, "
	         "%zu route%s, %zu transport%s, %zu proxy pool%s",
	         c->source_file ? c->source_file : CFG_NAME_DEFAULTS,
	         CFG_PL(c->nlisteners), CFG_PL(nets), CFG_PL(c->nrelay_domains),
	         CFG_PL(c->nroutes), CFG_PL(c->ntransports), CFG_PL(c->nproxy_pools));
#undef CFG_PL
}

bool config_relay_domain(const struct config *c, const char *domain, size_t len)
{
	if (c == NULL || domain == NULL)
		return false;
	for (size_t i = 0; i < c->nrelay_domains; i++) {
		const char *d = c->relay_domains[i];
		if (strlen(d) == len && strncasecmp(d, domain, len) == 0)
			return true;
	}
	return false;
}

struct cidr_table *config_proxy_hosts_build(const struct config_listener *l, char *err,
                                            size_t errlen)
{
	struct cidr_builder *b = cidr_builder_new();
	if (b == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	for (size_t i = 0; i < l->nproxy_hosts_inline; i++) {
		if (cidr_builder_add(b, l->proxy_hosts_inline[i], err, errlen) < 0) {
			cidr_builder_free(b);
			return NULL;
		}
	}
	if (l->proxy_hosts_file != NULL &&
	    cidr_builder_add_file(b, l->proxy_hosts_file, err, errlen) < 0) {
		cidr_builder_free(b);
		return NULL;
	}
	struct cidr_table *t = cidr_builder_finish(b);
	if (t == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	/* The same rule as at start-up: a listener that takes PROXY headers needs a host to
	 * take them from. An empty file on reload is far more likely a deploy gone wrong than
	 * a wish to trust nobody; the caller keeps the table in force. */
	if (l->proxy_protocol != CONFIG_PROXY_OFF && cidr_count(t) == 0) {
		snprintf(err, errlen, "%s:0:0: proxy_protocol '%s' needs at least one proxy host "
		         "(proxy_hosts or proxy_hosts_file)",
		         l->proxy_hosts_file ? l->proxy_hosts_file : "(proxy_hosts)",
		         proxy_mode_names[l->proxy_protocol].str);
		cidr_free(t);
		return NULL;
	}
	return t;
}

const struct config_transport *config_transport_by_id(const struct config *c,
                                                      const char *id)
{
	for (size_t i = 0; i < c->ntransports; i++)
		if (strcmp(c->transports[i].id, id) == 0)
			return &c->transports[i];
	return NULL;
}

static bool route_matches(const char *pat, const char *d, size_t n);

const struct config_shaping *config_shaping_for(const struct config *c,
                                                const char *const *names, size_t n)
{
	const struct config_shaping *def = NULL;
	for (size_t i = 0; i < c->nshaping; i++) {
		const struct config_shaping *sh = &c->shaping[i];
		if (strcmp(sh->site, "default") == 0) {
			if (!def)
				def = sh;
			continue;
		}
		for (size_t k = 0; k < n; k++) {
			size_t len = strlen(names[k]);
			if (len > 0 && names[k][len - 1] == '.')
				len--;
			if (route_matches(sh->site, names[k], len))
				return sh;
		}
	}
	return def;
}

/* Route domains are stored lower-cased without a trailing dot (cfg_domain). */
static bool route_matches(const char *pat, const char *d, size_t n)
{
	size_t pl;
	if (strcmp(pat, "*") == 0)
		return true;
	if (strncmp(pat, "*.", 2) == 0) {
		pl = strlen(pat + 1);          /* ".example.org" */
		return n > pl && strncasecmp(d + n - pl, pat + 1, pl) == 0;
	}
	pl = strlen(pat);
	return n == pl && strncasecmp(d, pat, n) == 0;
}

const struct config_transport *config_route(const struct config *c, const char *domain,
                                            size_t len)
{
	if (len > 0 && domain[len - 1] == '.')
		len--;
	for (size_t i = 0; i < c->nroutes; i++)
		for (size_t j = 0; j < c->routes[i].ndomains; j++)
			if (route_matches(c->routes[i].domains[j], domain, len))
				return config_transport_by_id(c, c->routes[i].transport);
	return NULL;
}
