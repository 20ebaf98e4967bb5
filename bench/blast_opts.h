/* bench/blast_opts — ringblast's command line, parsed into a struct. Pure: no I/O, no
 * globals (no getopt), no name resolution; every error is one string naming the option.
 *
 *   ringblast -s HOST:PORT -c CONNECTIONS -n MESSAGES [-t SECONDS] [-r RCPTS] [-l BYTES]
 *             [--rate MSGS_PER_S] [--no-pipelining] [--proxy v1|v2 --proxy-src CIDR]
 *             [--starttls] [--per-conn N] [--json] [--from ADDR] [--to-domain DOMAIN]
 *             [--idle-hold SECONDS]
 *
 * An option's value is the next argument, or follows "=" for a long option
 * (--rate=500) or is attached to a short one (-c50). HOST is an IPv4 literal, an IPv6
 * literal in brackets, or "localhost" (127.0.0.1). -l takes a suffix k (1024) or m
 * (1024 * 1024). --proxy-src is an IPv4 or IPv6 network (an address alone is a host);
 * host bits under the mask are an error, as in the relay's configuration. --per-conn N
 * (1..BLAST_OPTS_MAX_MESSAGES) does not go with --idle-hold. */
#ifndef BENCH_BLAST_OPTS_H
#define BENCH_BLAST_OPTS_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define BLAST_OPTS_MAX_CONNECTIONS 1000000u
#define BLAST_OPTS_MAX_MESSAGES 1000000000000ull
#define BLAST_OPTS_MAX_SECONDS 86400u
#define BLAST_OPTS_MAX_RCPTS 1000u
#define BLAST_OPTS_MIN_SIZE 256u
#define BLAST_OPTS_MAX_SIZE (256u * 1024u * 1024u)
#define BLAST_OPTS_MAX_RATE 10000000.0
#define BLAST_OPTS_DEFAULT_SECONDS 600u
#define BLAST_OPTS_DEFAULT_SIZE 4096u
#define BLAST_OPTS_DEFAULT_FROM "blast@ringblast.test"
#define BLAST_OPTS_DEFAULT_DOMAIN "example.net"
#define BLAST_OPTS_ADDR_MAX 254                  /* octets of a mailbox (RFC 5321) */
#define BLAST_OPTS_DOMAIN_MAX 253

enum blast_opts_rc {
	BLAST_OPTS_OK = 0,
	BLAST_OPTS_HELP,            /* -h / --help: print blast_opts_usage() and exit 0 */
	BLAST_OPTS_ERR,             /* err holds the message; exit 2 */
};

enum blast_proxy { BLAST_PROXY_NONE = 0, BLAST_PROXY_V1, BLAST_PROXY_V2 };

struct blast_cidr {
	int family;                 /* AF_INET or AF_INET6 */
	uint8_t addr[16];           /* network order, host bits zero; 4 octets for AF_INET */
	unsigned prefix;            /* 0..32 or 0..128 */
};

struct blast_opts {
	struct sockaddr_storage server;   /* AF_INET or AF_INET6, port set */
	socklen_t server_len;
	char server_text[64];             /* as given, for the report */
	unsigned connections;
	uint64_t messages;
	unsigned seconds;                 /* BLAST_OPTS_DEFAULT_SECONDS unless -t */
	bool seconds_given;
	unsigned rcpts;                   /* default 1 */
	size_t size;                      /* octets of the message; default 4096 */
	double rate;                      /* transactions started per second; 0: no limit */
	bool pipelining;                  /* default on; --no-pipelining */
	enum blast_proxy proxy;
	struct blast_cidr proxy_src;
	bool json;
	char from[BLAST_OPTS_ADDR_MAX + 1];
	char to_domain[BLAST_OPTS_DOMAIN_MAX + 1];
	unsigned idle_hold;               /* seconds; 0: not an idle-hold run */
	bool starttls;                    /* STARTTLS, then the session over TLS */
	uint64_t per_conn;                /* messages per connection; 0: no limit */
};

/* Parse argv[1..argc). On BLAST_OPTS_ERR, err holds e.g. "-c: expected a number from 1
 * to 1000000, got 'x'" (no program name, no newline). */
enum blast_opts_rc blast_opts_parse(int argc, char *const argv[], struct blast_opts *o,
                                    char *err, size_t errlen);
/* The --help text (several lines, ends with a newline). */
const char *blast_opts_usage(void);

/* Parse "HOST:PORT" (see above) into sa. Returns 0 or -1. */
int blast_opts_parse_hostport(const char *text, struct sockaddr_storage *sa, socklen_t *len);
/* Parse "a.b.c.d/n", "x::/n" or a bare address. Returns 0, -1 (not a network), or -2
 * (host bits set under the mask). */
int blast_opts_parse_cidr(const char *text, struct blast_cidr *c);
/* "100", "100k", "2m" -> octets; -1 when malformed or over max. */
int blast_opts_parse_size(const char *text, uint64_t max, uint64_t *out);

#endif
