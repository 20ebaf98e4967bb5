/* net/dns — MX resolution for delivery, with c-ares, on a net/loop: no blocking call and
 * no thread. One struct dns per loop (per worker).
 *
 * A lookup (dns_mx) asks for the domain's MX records, then for the A and the AAAA records
 * of each MX host, all at once; it ends when every answer is in, or when timeout_ms has
 * passed since it began, whichever comes first. The result:
 *   DNS_OK        hosts by preference (lowest first), hosts of equal preference shuffled
 *                 for every delivery of the result (a cached one too). At most DNS_MAX_HOSTS
 *                 hosts (the first by preference; equal ones at the cut chosen at random)
 *                 and DNS_MAX_ADDRS addresses a host. A host's addresses: IPv4 first, then
 *                 IPv6, each in the order of the answer; when a host has more than
 *                 DNS_MAX_ADDRS, each family keeps half and gives what it does not use to
 *                 the other. Each address's port is 25. Hosts for which no address was
 *                 found are left out (the site key still names them). No MX record at all
 *                 (NODATA): the implicit MX (RFC 5321 5.1), the domain itself with pref 0.
 *                 Some hosts resolved and others timed out or failed: DNS_OK with the
 *                 ones that resolved (not cached: the next lookup asks again).
 *   DNS_NXDOMAIN  the domain does not exist: bounce.
 *   DNS_NULLMX    the domain's only MX record is "." (RFC 7505): bounce 5.1.10.
 *   DNS_NOHOST    no MX host (or, for the implicit MX, the domain) has an address, and
 *                 every address query answered so (NXDOMAIN or NODATA): bounce.
 *   DNS_TEMPFAIL  SERVFAIL, REFUSED, no answer in time, or a malformed answer: defer. Also
 *                 when the MX records came but no host resolved and at least one host's
 *                 queries failed that way.
 *   DNS_CANCELLED the struct dns was freed first.
 *
 * Cache. A result other than DNS_TEMPFAIL (and other than a partial DNS_OK) is kept per
 * domain for the smallest TTL of the answers it was made of (MX, A, AAAA; an NXDOMAIN or
 * NODATA answer counts for its SOA's negative TTL, min(SOA TTL, SOA MINIMUM), or 60 s
 * without a SOA), then bounded to [5 s, 1 h]. At most DNS_CACHE_MAX domains: a new one
 * evicts the oldest. A cache hit sends no query; its ttl is what is left of it.
 * Lookups of a domain already being resolved join that lookup (one set of queries).
 *
 * Cap. At most DNS_MAX_LOOKUPS lookups (dns_set_max_lookups) ask at once; one begun past
 * that waits in line, oldest first, and asks when a place is free; its timeout_ms counts
 * from then. A lookup that has asked for a second (a slow or unanswered domain) gives its
 * place up and asks on: domains that never answer cannot hold the line for their whole
 * timeout (then at most max_lookups x timeout_ms / 1 s lookups ask at once). (20,000 distinct domains asked at once overran a local dnsmasq: 85% timed
 * out. A line costs one struct per distinct domain, which the jobs waiting for them
 * bound.) Lookups of a domain already in line join it.
 *
 * Callbacks. fn is never called from inside dns_mx: every result (cache hits included) is
 * handed over from a later completion of the loop (an IORING_OP_NOP of kind DNS_OP_KICK,
 * or a timer tick when the ring has no room). res and everything it points to are valid
 * during the call only. fn may call dns_mx and dns_free.
 *
 * How c-ares is driven. ARES_OPT_SOCK_STATE_CB tells which sockets c-ares wants watched
 * for reading or writing; each is watched by a one-shot IORING_OP_POLL_ADD of kind
 * DNS_OP_POLL, whose completion calls ares_process_fd() and re-arms it. A change of what
 * is wanted, or c-ares closing the socket, cancels the poll (the poll's memory goes with
 * its completion, so a descriptor number c-ares reuses at once is never confused with the
 * old one). c-ares's retransmissions and timeouts run from a timer on the loop's wheel,
 * armed from ares_timeout() after every call into c-ares (so they are up to one tick,
 * TIMER_TICK_MS, late). Every query tries each server up to twice, the first try waiting
 * timeout_ms / 3 (c-ares doubles it for each round). With several servers, c-ares moves
 * on to the next one after a SERVFAIL, REFUSED or NOTIMP answer (c-ares 1.18 then reports
 * them all alike, and the error says so); with a single server, the answer's own RCODE
 * ends the query and names the error (ARES_FLAG_NOCHECKRESP). ares_set_socket_callback()
 * makes c-ares's sockets close-on-exec.
 *
 * Freeing. dns_free() first calls every callback still owed with DNS_CANCELLED, then
 * destroys the c-ares channel (closing its sockets). While the loop is up, the polls in
 * flight are cancelled and their memory is freed by their completions, so run the loop
 * a turn afterwards before net_loop_fini() (a worker that stops does net_loop_fini()
 * first, then dns_free(): with the ring gone, everything is freed at once). The struct
 * net_loop itself must outlive the struct dns. */
#ifndef NET_DNS_H
#define NET_DNS_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "net/loop.h"

#define DNS_MAX_HOSTS 10
#define DNS_MAX_ADDRS 10          /* per host, both families together */
#define DNS_CACHE_MAX 10000       /* domains */
#define DNS_TIMEOUT_DEFAULT 5000  /* ms, for timeout_ms 0 */
#define DNS_MAX_LOOKUPS 64           /* lookups asking at once, per struct dns (see Cap;
                                        the relay sets dns.max_lookups) */

/* The loop's op kinds this module registers (NET_OP_USER + 0..7 belong to others). */
enum dns_op_kind {
	DNS_OP_POLL = NET_OP_USER + 8,    /* a c-ares socket watched */
	DNS_OP_KICK = NET_OP_USER + 9,    /* results handed over from the next completion */
};

enum dns_status {
	DNS_OK = 0,
	DNS_NXDOMAIN,      /* the domain does not exist: bounce */
	DNS_NULLMX,        /* RFC 7505 "0 .": bounce 5.1.10 */
	DNS_NOHOST,        /* the MX hosts all without any address that exists: bounce */
	DNS_TEMPFAIL,      /* SERVFAIL, REFUSED, timeout, no server answered: defer */
	DNS_CANCELLED,     /* dns_free while pending */
};
const char *dns_status_str(enum dns_status s);   /* "OK", "NXDOMAIN", ... */

struct dns_addr {
	struct sockaddr_storage ss;
	socklen_t len;
};

struct dns_host {
	const char *name;
	uint16_t pref;
	const struct dns_addr *addrs;
	size_t naddrs;
};

struct dns_mx {
	enum dns_status status;
	const char *error;         /* for logs, e.g. "SERVFAIL for example.net MX"; "" for DNS_OK */
	const struct dns_host *hosts;
	size_t nhosts;             /* preference order, equal preferences shuffled per lookup */
	bool implicit;             /* no MX record: the domain itself, RFC 5321 5.1 */
	const char *site;          /* the sorted, deduplicated, lower-cased MX host names joined
	                              with ','; for the implicit MX, the domain. Set for DNS_OK
	                              and DNS_NOHOST, "" otherwise */
	uint32_t ttl;              /* seconds the result is cached for (left of it, for a hit);
	                              0 when it is not cached */
};

typedef void dns_mx_fn(void *ctx, const struct dns_mx *res);   /* res valid during the call */

struct dns;

/* servers: "127.0.0.1:5353", "192.0.2.1" (port 53), "[::1]:53", "::1"; none (nservers 0):
 * /etc/resolv.conf. timeout_ms: the longest a lookup takes (0: DNS_TIMEOUT_DEFAULT).
 * Registers the handlers of DNS_OP_POLL and DNS_OP_KICK on l. NULL with a message in err
 * when a server is not an address, or c-ares cannot be set up. */
struct dns *dns_new(struct net_loop *l, const char *const *servers, size_t nservers,
                    unsigned timeout_ms, char *err, size_t errlen);
/* Take back the lookups' waiters whose ctx drop(ctx, arg) picks: their fn is never
 * called; gone(ctx, arg) is, for each, after the scan (it may call dns_mx). A lookup in
 * line that nobody waits for any more is dropped when its turn comes, without asking.
 * Returns how many were taken back. (ctl delete: lookups for deleted mail.) */
size_t dns_drop_waiters(struct dns *d, bool (*drop)(void *ctx, void *arg),
                        void (*gone)(void *ctx, void *arg), void *arg);
/* The cap on lookups asking at once (0 counts as 1); lookups in line begin if it rose. */
void dns_set_max_lookups(struct dns *d, size_t max);
/* Pending callbacks get DNS_CANCELLED first. dns_free(NULL) is a no-op. */
void dns_free(struct dns *d);

/* Resolve domain (a final '.' is allowed; case does not matter). 0, or -EINVAL for a
 * name that is not a domain (longer than 253 octets, a bad character, an empty label, a
 * label longer than 63), -ENOMEM, -ESHUTDOWN from inside dns_free. fn is called later,
 * exactly once, never from inside dns_mx. */
int dns_mx(struct dns *d, const char *domain, dns_mx_fn *fn, void *ctx);

/* Resolve one host's addresses, A and AAAA, with no MX lookup: the next hop "[host]:port"
 * of a transport, as Postfix's brackets. The result is as dns_mx's for an implicit MX
 * without the MX query: DNS_OK with the one host (implicit false, site "[host]"),
 * DNS_NOHOST when both queries answer that there is no address (NXDOMAIN or NODATA),
 * DNS_TEMPFAIL otherwise; cached alike, under the key "[host]" (never confused with
 * the MX result of a domain of the same name). Same returns as dns_mx. */
int dns_host(struct dns *d, const char *host, dns_mx_fn *fn, void *ctx);

/* Bound the cache to max domains (1 <= max; DNS_CACHE_MAX by default). Evicts the oldest
 * at once when it holds more. */
void dns_set_cache_max(struct dns *d, size_t max);

/* What a DNS query (MX, A or AAAA) that did not succeed got: the answer's RCODE or
 * c-ares's error. DNS_QF_NODATA is no record of the type asked for (for MX: the implicit
 * MX follows, not a failure of the lookup); DNS_QF_CONNREFUSED with several servers is
 * c-ares's "none answered" (SERVFAIL, REFUSED or refused connections: see above). */
enum dns_qfail {
	DNS_QF_NXDOMAIN = 0,
	DNS_QF_NODATA,
	DNS_QF_SERVFAIL,
	DNS_QF_REFUSED,
	DNS_QF_TIMEOUT,
	DNS_QF_MALFORMED,
	DNS_QF_CONNREFUSED,
	DNS_QF_OTHER,
	DNS_QF_N,
};
const char *dns_qfail_str(enum dns_qfail f);   /* "nxdomain", "nodata", ... */

struct dns_stats {
	uint64_t lookups;          /* dns_mx calls accepted */
	uint64_t cache_hits;       /* ... answered from the cache */
	uint64_t joined;           /* ... that joined a lookup in flight (or in line) */
	uint64_t waited;           /* lookups begun in line (past the cap) */
	uint64_t stalled;          /* lookups that asked DNS_STALL_MS and gave up their place */
	uint64_t queries;          /* DNS queries asked (MX, A, AAAA) */
	uint64_t deadlines;        /* lookups ended by timeout_ms */
	uint64_t evictions;        /* cached domains evicted for room */
	uint64_t sockets;          /* sockets c-ares opened */
	uint64_t results[DNS_CANCELLED];   /* results handed over, by status (cache hits and
	                                      joined lookups included; not DNS_CANCELLED) */
	uint64_t qfails[DNS_QF_N]; /* queries answered with a failure, by kind (late answers
	                              to a lookup already ended included) */
	size_t cached;             /* domains in the cache now (expired ones included until
	                              they are looked up or evicted) */
	size_t inflight;           /* lookups asking now (at most the cap) */
	size_t waiting;            /* lookups in line now */
	size_t stalled_now;        /* of inflight, those past DNS_STALL_MS (not counted) */
	size_t polls;              /* sockets watched now */
};
void dns_stats(const struct dns *d, struct dns_stats *st);

#endif
