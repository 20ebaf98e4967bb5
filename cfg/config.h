/* cfg/config — the YAML configuration of ../shared/DESIGN.md, loaded with libcyaml,
 * validated, with every error reported as "FILE:LINE:COL: what is wrong".
 *
 * config_load() returns a fully validated, immutable struct config (embedded defaults
 * filled in for everything absent) or NULL with the error text in errbuf. The struct is
 * owned by the caller and freed with config_free(). Keys for features that are not built
 * yet (TLS, delivery, proxy pools) are parsed, validated and stored all the same.
 *
 * Every integer key is read in base 10 only ("010" is ten) and checked against its range
 * (given below with each field; the table is in config.c). The ranges are chosen so that
 * the arithmetic the rest of the code does on them cannot overflow:
 *  - every duration in seconds except queue.max_age is at most CONFIG_SECONDS_MAX, so
 *    seconds * 1000 fits in an unsigned (milliseconds); queue.max_age (up to a year) in
 *    milliseconds needs a uint64_t;
 *  - a message record (data, Received:, envelope) of the largest message with the most
 *    recipients fits the spool's limits (CONFIG_MAX_MESSAGE_SIZE_MAX, config.c says how).
 *
 * Delivery shaping, per transport (applied per (source, site) pair by core/):
 *  - message_rate, connection_rate: "N/s", "N/min" or "N/h", N 1..CONFIG_RATE_MAX
 *    (exactly so: no sign, space, exponent or other unit); 0 or absent = unlimited.
 *    Stored as events per period_ms, ready for proto/rate's rate_init().
 *  - initial_connections: where concurrency feedback starts a site (Postfix's
 *    initial_destination_concurrency), growing to max_connections on success; 1..10000,
 *    default 5. It may not exceed max_connections; when it is not given and
 *    max_connections is under 5, it is max_connections.
 *  - dead_after: consecutive failed connections before a site is dead (deferred as a
 *    whole), 1..100, default 3.
 *  - timeouts: { connect, greeting, ehlo, mail, rcpt, data, data_block, data_done, rset,
 *    quit } in seconds, each 1..CONFIG_SECONDS_MAX; the defaults are those of RFC 5321
 *    4.5.3.2 that proto/smtp_cli uses (connect 30, as core/deliver's DELIVER_CONNECT_MS).
 *    config_transport_cli_timeouts() turns them into proto/smtp_cli's struct. */
#ifndef CFG_CONFIG_H
#define CFG_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "cfg/cidr.h"
#include "proto/smtp_cli.h"

#define CONFIG_SECONDS_MAX 604800u             /* a week: the largest retry_schedule entry */
#define CONFIG_MAX_MESSAGE_SIZE_MAX (256u << 20) /* limits.max_message_size, octets */
#define CONFIG_DATA_MEMORY_SLACK (1u << 20)       /* limits.max_data_memory's room over it */
#define CONFIG_SPOOL_MIN_FREE_MAX (1ull << 50)   /* spool.min_free, octets (a PiB) */
#define CONFIG_MAX_RECIPIENTS_MAX 100000u      /* limits.max_recipients */
#define CONFIG_RATE_MAX 1000000u               /* N of a rate "N/s", "N/min", "N/h" */
#define CONFIG_SOURCES_MAX 1024u               /* entries of a transport's source list */
#define CONFIG_POOL_SERVERS_MAX 1024u          /* servers of a proxy pool */

enum config_proxy_mode { CONFIG_PROXY_OFF = 0, CONFIG_PROXY_TRUSTED, CONFIG_PROXY_REQUIRED };
enum config_tls_mode { CONFIG_TLS_STARTTLS = 0, CONFIG_TLS_REQUIRED, CONFIG_TLS_IMPLICIT };
/* tls: verify without tls_ca_file takes the system's CA bundle (Debian's ca-certificates) */
#define CONFIG_CONTROL_PATH_MAX 108u        /* sun_path, its NUL included */
#define CONFIG_SYSTEM_CA_FILE "/etc/ssl/certs/ca-certificates.crt"
enum config_out_tls { CONFIG_OUT_TLS_OPPORTUNISTIC = 0, CONFIG_OUT_TLS_NONE,
                      CONFIG_OUT_TLS_REQUIRED, CONFIG_OUT_TLS_VERIFY };

struct config_listener {
	char *id;
	struct sockaddr_storage addr;      /* address + port (0..65535, 0 = any free port, default
	                                    * 2525), ready for bind() */
	socklen_t addrlen;
	enum config_proxy_mode proxy_protocol;
	struct cidr_table *proxy_hosts;    /* proxy_hosts plus proxy_hosts_file; never NULL */
	char *proxy_hosts_file;            /* NULL when not set */
	char **proxy_hosts_inline;         /* the proxy_hosts list as written (validated) */
	size_t nproxy_hosts_inline;
	unsigned proxy_timeout;            /* seconds, 1..3600, default 30 */
	unsigned proxy_max_header;         /* octets a v2 header may take, 232..65551, default 4096 */
	char *tls_certificate, *tls_key;   /* NULL when not set */
	enum config_tls_mode tls_mode;
};

struct config_source {
	char *ipv4, *ipv6, *helo;          /* textual, validated; NULL when absent */
};

/* message_rate / connection_rate: events per period_ms. {0, 0}: unlimited. */
struct config_rate {
	unsigned events;                   /* 1..CONFIG_RATE_MAX, 0 = unlimited */
	unsigned period_ms;                /* 1000 (/s), 60000 (/min) or 3600000 (/h); 0 */
};

/* A transport's timeouts, seconds, each 1..CONFIG_SECONDS_MAX (so * 1000 fits an unsigned
 * in ms). Defaults: RFC 5321 4.5.3.2, as proto/smtp_cli_timeouts_rfc(). */
struct config_timeouts {
	unsigned connect;                  /* the TCP connect, default 30 */
	unsigned greeting;                 /* the 220, default 300 */
	unsigned ehlo;                     /* EHLO/HELO reply, default 300 */
	unsigned mail;                     /* MAIL FROM reply, default 300 */
	unsigned rcpt;                     /* each RCPT TO reply, default 300 */
	unsigned data;                     /* DATA initiation (the 354), default 120 */
	unsigned data_block;               /* each block of the body sent, default 180 */
	unsigned data_done;                /* reply to end of data / BDAT LAST, default 600 */
	unsigned rset;                     /* RSET reply, default 300 */
	unsigned quit;                     /* QUIT reply, default 300 */
};

struct config_transport {
	char *id;
	char *nexthop;                     /* "mx" or "[host]:port" (validated) */
	enum config_out_tls tls;
	char *tls_ca_file;
	unsigned max_connections;          /* 1..10000, default 100 */
	unsigned max_messages_per_connection; /* 1..1000000, default 1000 */
	unsigned initial_connections;      /* 1..10000 and <= max_connections, default 5
	                                    * (max_connections when that is lower) */
	unsigned dead_after;               /* failed connections in a row, 1..100, default 3 */
	struct config_rate message_rate;   /* default unlimited */
	struct config_rate connection_rate;/* new connections; default unlimited */
	struct config_timeouts timeouts;
	char *proxy_pool;                  /* NULL, or the id of a proxy_pools entry */
	struct config_source *sources;
	size_t nsources;
	/* source_failover (default true): mail of a source that has no proxy server up moves
	 * to the transport's other sources that have one; false pins it to its source, where
	 * it waits (not attempted, not bounced) until a server is up for it again. */
	bool source_failover;
	char **proxy_bypass_domains;
	size_t nproxy_bypass_domains;
};

/* shaping: per site, refining the limits of the transport a site belongs to. `site` is
 * "default" (every site no other entry matches), a host name, or "*.example.com" (its
 * subdomains), matched against the site's MX host names (the smarthost's host for a
 * [host]:port next hop); lower-case, no trailing dot. Keys not given keep the
 * transport's value (`set` says which were given). Rates: "N/s", "N/min", "N/h" or a bare
 * N (per second, as DESIGN.md writes max_message_rate: 0); 0 = unlimited. */
enum {
	CONFIG_SH_MAX_CONNECTIONS = 1u << 0,
	CONFIG_SH_INITIAL_CONNECTIONS = 1u << 1,
	CONFIG_SH_MAX_MESSAGES = 1u << 2,
	CONFIG_SH_MESSAGE_RATE = 1u << 3,
	CONFIG_SH_CONNECTION_RATE = 1u << 4,
};
struct config_shaping {
	char *site;
	unsigned set;                      /* CONFIG_SH_* */
	unsigned max_connections;          /* 1..10000 */
	unsigned initial_connections;      /* 1..10000, <= max_connections when both given */
	unsigned max_messages_per_connection;  /* 1..1000000 */
	struct config_rate message_rate, connection_rate;
};

struct config_route {
	char **domains;                    /* "example.net", "*.example.org", "*" */
	size_t ndomains;
	char *transport;                   /* id of a transport (validated to exist) */
};

struct config_health_check {
	unsigned interval, timeout;        /* seconds, 1..3600, timeout <= interval; 5, 1 */
	unsigned failure_threshold, success_threshold; /* probes, 1..100; 3, 3 */
	/* probe: "[IP]:port" (an IPv4 or IPv6 literal: it goes into the PROXY header as the
	 * destination; "[IP]" alone is port 25), stored as "[IP]:port"; NULL when absent
	 * (then only the servers are probed, not each (server, source) pair). */
	char *probe;
};

struct config_proxy_pool {
	char *id;
	unsigned version;                  /* 1..2, default 2 */
	char **servers;                    /* "host:port" / "[v6]:port", validated */
	size_t nservers;
	struct config_health_check health_check;
};

struct config {
	char *hostname;                    /* default: gethostname() */
	unsigned workers;                  /* 0..1024, 0 = one per online CPU */
	/* Graceful stop after SIGTERM/SIGINT: transactions in flight get this many seconds
	 * (0..3600, default 10), then the remaining connections are cut. */
	unsigned shutdown_timeout;
	char *spool_path;                  /* default "./spool" */
	bool spool_sync;                   /* default true */
	/* spool.min_free: octets of free space the spool's filesystem keeps for the relay's
	 * own bookkeeping; under it new mail is answered 452 4.3.1 (core/spool.h, Free space).
	 * 0..CONFIG_SPOOL_MIN_FREE_MAX, default 0 (off); may change on reload. */
	uint64_t spool_min_free;
	char **dns_servers;                /* default none: /etc/resolv.conf */
	size_t ndns_servers;
	unsigned dns_max_lookups;          /* MX/host lookups a worker lets ask at once */
	/* metrics: { address, port }: the Prometheus listener (core/metrics), off without
	 * the section; address default 127.0.0.1, port 9325 (0: any free one) */
	bool metrics;
	struct sockaddr_storage metrics_addr;
	socklen_t metrics_addrlen;
	/* control: { path, mode }: the Unix socket of `ringrelay ctl` (core/control);
	 * default SPOOL/control.sock, mode 0600 (given as an octal string, owner rw) */
	char *control_path;
	unsigned control_mode;

	struct config_listener *listeners; /* default: one, 127.0.0.1:2525, PROXY off */
	size_t nlisteners;

	struct cidr_table *relay_networks; /* default 127.0.0.0/8, ::1/128; never NULL */
	char **relay_domains;              /* lower-cased */
	size_t nrelay_domains;

	uint64_t max_message_size;         /* octets, 1024..256 MiB, default 52428800 */
	uint64_t max_data_memory;          /* octets of message data the sessions of all
	                                    * workers hold until committed: 2 MiB..1 TiB and
	                                    * >= max_message_size + CONFIG_DATA_MEMORY_SLACK,
	                                    * default 1 GiB */
	unsigned max_recipients;           /* 1..100000, default 1000 */
	unsigned max_line_length;          /* octets, 78..1048576, default 998 */
	unsigned max_hops;                 /* Received: headers, 10..1000, default 50 */
	unsigned max_connections;          /* 1..1000000, default 50000 */
	unsigned max_connections_per_ip;   /* 1..1000000, default 500 */
	unsigned idle_timeout;             /* seconds, 1..86400, default 300 */
	unsigned min_data_rate;            /* octets/s message data must average after the
	                                    * first idle_timeout; 0..2^30, 0 off, default 500 */

	struct config_route *routes;       /* default: "*" -> default */
	size_t nroutes;
	struct config_transport *transports; /* default: id "default", nexthop mx */
	size_t ntransports;
	struct config_proxy_pool *proxy_pools;
	size_t nproxy_pools;
	struct config_shaping *shaping;    /* in file order; none by default */
	size_t nshaping;

	unsigned *retry_schedule;          /* seconds, each 1..604800, 1..64 entries; */
	size_t nretry_schedule;            /* default 60,300,900,1800,3600 */
	unsigned max_age;                  /* seconds, 60..31536000 (a year), default 432000 */

	char *source_file;                 /* path it was loaded from, or NULL (defaults) */
};

/* Load and validate FILE; path NULL means the embedded defaults.
 * On error returns NULL and writes "FILE:LINE:COL: message" (NUL-terminated) into errbuf;
 * an error about the file as a whole is "FILE:0:0: message" (cannot open, not a regular
 * file, larger than 16 MiB), and one about the embedded defaults "(defaults): message".
 * Never blocks: FILE is opened non-blocking and must be a regular file (a FIFO is
 * refused, not waited on); the same holds for a proxy_hosts_file. A spool.path that
 * exists and is not a directory is an error; a missing one is not (the daemon creates
 * it). */
struct config *config_load(const char *path, char *errbuf, size_t errlen);
/* Parse from memory (same rules; `name` is used in error messages). For tests. */
struct config *config_load_mem(const char *name, const char *yaml, size_t len,
                               char *errbuf, size_t errlen);
void config_free(struct config *c);

/* The transport for a recipient domain: the first route with a matching domain wins.
 * A route domain matches the domain itself ("example.net"), "*" matches every domain,
 * "*.example.org" every subdomain of example.org but not example.org itself (as in
 * Postfix's transport maps with parent_domain_matches_subdomains off). Comparison is
 * case-insensitive and ignores one trailing dot of domain. NULL when no route matches
 * (a configuration without a "*" route can leave a domain unrouted). */
/* The shaping entry of a site whose hosts are names[0..n): the first entry other than
 * "default" whose pattern matches one of the names (case-insensitive, one trailing dot
 * ignored), else the "default" entry, else NULL. */
const struct config_shaping *config_shaping_for(const struct config *c,
                                                const char *const *names, size_t n);

const struct config_transport *config_route(const struct config *c, const char *domain,
                                            size_t len);
/* The transport of that id, or NULL. */
const struct config_transport *config_transport_by_id(const struct config *c,
                                                      const char *id);

/* t's timeouts in ms, as smtp_cli_init() takes them (connect is not among them: it is
 * t->timeouts.connect * 1000 ms). Every field is filled, none 0. */
void config_transport_cli_timeouts(const struct config_transport *t,
                                   struct smtp_cli_timeouts *out);

/* One-line summary for `ringrelay --check`, e.g.
 * "ok: FILE: 2 listeners, 3 relay networks, 1 relay domain, 2 routes, 1 transport, 1 proxy pool". */
void config_summary(const struct config *c, char *buf, size_t len);

/* Build listener l's proxy host table afresh: its proxy_hosts plus the current content of
 * its proxy_hosts_file (for the reload when that file changes). NULL with "PATH:LINE:COL:
 * message" in err on a bad file ("PATH:0:0: not a regular file" for a FIFO: never
 * blocks). */
struct cidr_table *config_proxy_hosts_build(const struct config_listener *l, char *err,
                                            size_t errlen);

/* Is `domain` (any case, no trailing dot) listed in relay.domains? */
bool config_relay_domain(const struct config *c, const char *domain, size_t len);

#endif
