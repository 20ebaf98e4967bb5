/* bench/blast_opts — see blast_opts.h. */
#include "bench/blast_opts.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum blast_opt_id {
	OPT_NONE = 0,
	OPT_SERVER, OPT_CONNECTIONS, OPT_MESSAGES, OPT_SECONDS, OPT_RCPTS, OPT_SIZE,
	OPT_RATE, OPT_NO_PIPELINING, OPT_PROXY, OPT_PROXY_SRC, OPT_STARTTLS, OPT_JSON,
	OPT_FROM, OPT_TO_DOMAIN, OPT_IDLE_HOLD, OPT_PER_CONN, OPT_HELP,
};

static const struct blast_opt {
	char shrt;                  /* 0: long only */
	const char *lng;
	bool value;
	enum blast_opt_id id;
} blast_opt_table[] = {
	{ 's', "server", true, OPT_SERVER },
	{ 'c', "connections", true, OPT_CONNECTIONS },
	{ 'n', "messages", true, OPT_MESSAGES },
	{ 't', "time", true, OPT_SECONDS },
	{ 'r', "rcpts", true, OPT_RCPTS },
	{ 'l', "length", true, OPT_SIZE },
	{ 0, "rate", true, OPT_RATE },
	{ 0, "no-pipelining", false, OPT_NO_PIPELINING },
	{ 0, "proxy", true, OPT_PROXY },
	{ 0, "proxy-src", true, OPT_PROXY_SRC },
	{ 0, "starttls", false, OPT_STARTTLS },
	{ 0, "json", false, OPT_JSON },
	{ 0, "from", true, OPT_FROM },
	{ 0, "to-domain", true, OPT_TO_DOMAIN },
	{ 0, "idle-hold", true, OPT_IDLE_HOLD },
	{ 0, "per-conn", true, OPT_PER_CONN },
	{ 'h', "help", false, OPT_HELP },
};

const char *blast_opts_usage(void)
{
	return
	"usage: ringblast -s HOST:PORT -c CONNECTIONS -n MESSAGES [-t SECONDS] [-r RCPTS]\n"
	"                 [-l BYTES] [--rate MSGS_PER_S] [--no-pipelining]\n"
	"                 [--proxy v1|v2 --proxy-src CIDR] [--starttls] [--per-conn N]\n"
	"                 [--json] [--from ADDR] [--to-domain DOMAIN] [--idle-hold SECONDS]\n"
	"  -s HOST:PORT       server: IPv4, [IPv6] or localhost, and a port\n"
	"  -c CONNECTIONS     connections at once, each kept open across messages (EHLO\n"
	"                     once) unless --per-conn\n"
	"  -n MESSAGES        messages in all, across the connections\n"
	"  -t SECONDS         start no transaction after this; also the overall bound\n"
	"                     (default 600)\n"
	"  -r RCPTS           recipients per message, rcpt1@DOMAIN.. (default 1)\n"
	"  -l BYTES           message size in octets, suffix k or m (default 4096)\n"
	"  --rate N           start at most N transactions per second, evenly spread\n"
	"  --no-pipelining    one command per round trip (default: MAIL/RCPT/DATA in one)\n"
	"  --proxy v1|v2      send a PROXY header first, its source drawn from\n"
	"  --proxy-src CIDR   this network (a pseudo-random host per connection)\n"
	"  --starttls         EHLO, STARTTLS, a full TLS handshake (any certificate taken),\n"
	"                     EHLO again, then the messages over TLS; a server that does\n"
	"                     not offer STARTTLS, refuses it or fails the handshake is an\n"
	"                     error (never plaintext)\n"
	"  --per-conn N       N messages per connection, then QUIT and a new connection\n"
	"                     (default: each connection sends until -n is reached)\n"
	"  --json             print one JSON object instead of the summary\n"
	"  --from ADDR        envelope sender (default blast@ringblast.test)\n"
	"  --to-domain DOM    recipient domain (default example.net)\n"
	"  --idle-hold SECS   open the connections, EHLO, hold them idle, QUIT (-n 0)\n"
	"Exit: 0 every transaction got 250; 1 anything failed; 2 usage error.\n";
}

static void blast_opts_err(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void blast_opts_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* Strict unsigned decimal: digits only, no sign, no spaces, within [min, max]. */
static int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;
	if (!*s)
		return -1;
	for (const char *p = s; *p; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		unsigned d = (unsigned)(*p - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	if (v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

int blast_opts_parse_size(const char *text, uint64_t max, uint64_t *out)
{
	size_t n = strlen(text);
	uint64_t mul = 1;
	char num[32];
	if (n == 0 || n >= sizeof num)
		return -1;
	memcpy(num, text, n + 1);
	switch (num[n - 1]) {
	case 'k': case 'K': mul = 1024; break;
	case 'm': case 'M': mul = 1024 * 1024; break;
	default: break;
	}
	if (mul != 1)
		num[--n] = '\0';
	uint64_t v;
	if (parse_u64(num, 0, UINT64_MAX / mul, &v) < 0 || v * mul > max)
		return -1;
	*out = v * mul;
	return 0;
}

int blast_opts_parse_hostport(const char *text, struct sockaddr_storage *sa, socklen_t *len)
{
	char host[64];
	const char *port;
	bool v6 = false;
	memset(sa, 0, sizeof *sa);
	if (text[0] == '[') {
		const char *close = strchr(text, ']');
		if (!close || close[1] != ':' || (size_t)(close - text - 1) >= sizeof host)
			return -1;
		memcpy(host, text + 1, (size_t)(close - text - 1));
		host[close - text - 1] = '\0';
		port = close + 2;
		v6 = true;
	} else {
		const char *colon = strrchr(text, ':');
		if (!colon || colon == text || (size_t)(colon - text) >= sizeof host ||
		    memchr(text, ':', (size_t)(colon - text)))     /* an IPv6 literal needs [] */
			return -1;
		memcpy(host, text, (size_t)(colon - text));
		host[colon - text] = '\0';
		port = colon + 1;
	}
	uint64_t p;
	if (parse_u64(port, 1, 65535, &p) < 0)
		return -1;
	if (v6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)sa;
		if (inet_pton(AF_INET6, host, &s6->sin6_addr) != 1)
			return -1;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)p);
		*len = sizeof *s6;
		return 0;
	}
	struct sockaddr_in *s4 = (struct sockaddr_in *)sa;
	if (strcmp(host, "localhost") == 0)
		strcpy(host, "127.0.0.1");
	if (inet_pton(AF_INET, host, &s4->sin_addr) != 1)
		return -1;
	s4->sin_family = AF_INET;
	s4->sin_port = htons((uint16_t)p);
	*len = sizeof *s4;
	return 0;
}

int blast_opts_parse_cidr(const char *text, struct blast_cidr *c)
{
	char addr[64];
	const char *slash = strchr(text, '/');
	size_t alen = slash ? (size_t)(slash - text) : strlen(text);
	if (alen == 0 || alen >= sizeof addr)
		return -1;
	memcpy(addr, text, alen);
	addr[alen] = '\0';
	memset(c, 0, sizeof *c);
	unsigned bits;
	if (inet_pton(AF_INET, addr, c->addr) == 1) {
		c->family = AF_INET;
		bits = 32;
	} else if (inet_pton(AF_INET6, addr, c->addr) == 1) {
		c->family = AF_INET6;
		bits = 128;
	} else {
		return -1;
	}
	uint64_t prefix = bits;
	if (slash && parse_u64(slash + 1, 0, bits, &prefix) < 0)
		return -1;
	if (slash && slash[1] == '0' && slash[2] != '\0')      /* no leading zeros */
		return -1;
	c->prefix = (unsigned)prefix;
	for (unsigned i = c->prefix; i < bits; i++)
		if (c->addr[i / 8] & (0x80u >> (i % 8)))
			return -2;
	return 0;
}

/* A mailbox we put in MAIL FROM:<...> and From: <...> as it is: local@domain of
 * printable ASCII, no space, brackets, quotes or backslash. */
static bool addr_ok(const char *s)
{
	size_t n = strlen(s);
	const char *at = strrchr(s, '@');
	if (n == 0 || n > BLAST_OPTS_ADDR_MAX || !at || at == s || at[1] == '\0')
		return false;
	for (const char *p = s; *p; p++)
		if (*p <= ' ' || *p >= 0x7f || strchr("<>()[]\\\",;:", *p))
			return false;
	return true;
}

/* Letters, digits, '-' and '.'; labels non-empty, 1..63 octets. */
static bool domain_ok(const char *s)
{
	size_t n = strlen(s), label = 0;
	if (n == 0 || n > BLAST_OPTS_DOMAIN_MAX)
		return false;
	for (const char *p = s; *p; p++) {
		if (*p == '.') {
			if (label == 0)
				return false;
			label = 0;
		} else if (isalnum((unsigned char)*p) || *p == '-') {
			if (++label > 63)
				return false;
		} else {
			return false;
		}
	}
	return label > 0;
}

static void blast_opts_defaults(struct blast_opts *o)
{
	memset(o, 0, sizeof *o);
	o->seconds = BLAST_OPTS_DEFAULT_SECONDS;
	o->rcpts = 1;
	o->size = BLAST_OPTS_DEFAULT_SIZE;
	o->pipelining = true;
	snprintf(o->from, sizeof o->from, "%s", BLAST_OPTS_DEFAULT_FROM);
	snprintf(o->to_domain, sizeof o->to_domain, "%s", BLAST_OPTS_DEFAULT_DOMAIN);
}

/* One option with its value (NULL for a flag). Returns 0, or -1 with err set. */
static int apply(struct blast_opts *o, const struct blast_opt *opt, const char *name,
                 const char *v, bool *seen, char *err, size_t errlen)
{
	uint64_t u;
	switch (opt->id) {
	case OPT_SERVER:
		if (blast_opts_parse_hostport(v, &o->server, &o->server_len) < 0) {
			blast_opts_err(err, errlen, "%s: expected HOST:PORT (IPv4, [IPv6] or localhost, "
			               "port 1-65535), got '%s'", name, v);
			return -1;
		}
		snprintf(o->server_text, sizeof o->server_text, "%s", v);
		break;
	case OPT_CONNECTIONS:
		if (parse_u64(v, 1, BLAST_OPTS_MAX_CONNECTIONS, &u) < 0) {
			blast_opts_err(err, errlen, "%s: expected a number from 1 to %u, got '%s'", name,
			               BLAST_OPTS_MAX_CONNECTIONS, v);
			return -1;
		}
		o->connections = (unsigned)u;
		break;
	case OPT_MESSAGES:
		if (parse_u64(v, 0, BLAST_OPTS_MAX_MESSAGES, &u) < 0) {
			blast_opts_err(err, errlen, "%s: expected a number from 0 to %llu, got '%s'", name,
			               (unsigned long long)BLAST_OPTS_MAX_MESSAGES, v);
			return -1;
		}
		o->messages = u;
		break;
	case OPT_SECONDS:
	case OPT_IDLE_HOLD:
		if (parse_u64(v, 1, BLAST_OPTS_MAX_SECONDS, &u) < 0) {
			blast_opts_err(err, errlen, "%s: expected seconds from 1 to %u, got '%s'", name,
			               BLAST_OPTS_MAX_SECONDS, v);
			return -1;
		}
		if (opt->id == OPT_SECONDS) {
			o->seconds = (unsigned)u;
			o->seconds_given = true;
		} else {
			o->idle_hold = (unsigned)u;
		}
		break;
	case OPT_RCPTS:
		if (parse_u64(v, 1, BLAST_OPTS_MAX_RCPTS, &u) < 0) {
			blast_opts_err(err, errlen, "%s: expected a number from 1 to %u, got '%s'", name,
			               BLAST_OPTS_MAX_RCPTS, v);
			return -1;
		}
		o->rcpts = (unsigned)u;
		break;
	case OPT_SIZE:
		if (blast_opts_parse_size(v, BLAST_OPTS_MAX_SIZE, &u) < 0 || u < BLAST_OPTS_MIN_SIZE) {
			blast_opts_err(err, errlen, "%s: expected a size from %u to %um octets (suffix k "
			               "or m), got '%s'", name, BLAST_OPTS_MIN_SIZE,
			               BLAST_OPTS_MAX_SIZE / (1024u * 1024u), v);
			return -1;
		}
		o->size = (size_t)u;
		break;
	case OPT_RATE: {
		char *end;
		errno = 0;
		double r = strtod(v, &end);
		if (!*v || *end || errno || !isfinite(r) || r < 0.001 || r > BLAST_OPTS_MAX_RATE ||
		    !isdigit((unsigned char)v[0])) {
			blast_opts_err(err, errlen, "%s: expected messages per second from 0.001 to %.0f, "
			               "got '%s'", name, BLAST_OPTS_MAX_RATE, v);
			return -1;
		}
		o->rate = r;
		break;
	}
	case OPT_NO_PIPELINING:
		o->pipelining = false;
		break;
	case OPT_PROXY:
		if (strcmp(v, "v1") == 0) {
			o->proxy = BLAST_PROXY_V1;
		} else if (strcmp(v, "v2") == 0) {
			o->proxy = BLAST_PROXY_V2;
		} else {
			blast_opts_err(err, errlen, "%s: expected v1 or v2, got '%s'", name, v);
			return -1;
		}
		break;
	case OPT_PROXY_SRC:
		switch (blast_opts_parse_cidr(v, &o->proxy_src)) {
		case 0:
			break;
		case -2:
			blast_opts_err(err, errlen, "%s: '%s' has host bits set under the mask", name, v);
			return -1;
		default:
			blast_opts_err(err, errlen, "%s: expected an IPv4 or IPv6 network like "
			               "203.0.113.0/24, got '%s'", name, v);
			return -1;
		}
		break;
	case OPT_STARTTLS:
		o->starttls = true;
		break;
	case OPT_PER_CONN:
		if (parse_u64(v, 1, BLAST_OPTS_MAX_MESSAGES, &u) < 0) {
			blast_opts_err(err, errlen, "%s: expected a number from 1 to %llu, got '%s'", name,
			               (unsigned long long)BLAST_OPTS_MAX_MESSAGES, v);
			return -1;
		}
		o->per_conn = u;
		break;
	case OPT_JSON:
		o->json = true;
		break;
	case OPT_FROM:
		if (!addr_ok(v)) {
			blast_opts_err(err, errlen, "%s: expected an address like local@domain, got '%s'",
			               name, v);
			return -1;
		}
		snprintf(o->from, sizeof o->from, "%s", v);
		break;
	case OPT_TO_DOMAIN:
		if (!domain_ok(v)) {
			blast_opts_err(err, errlen, "%s: expected a domain like example.net, got '%s'",
			               name, v);
			return -1;
		}
		snprintf(o->to_domain, sizeof o->to_domain, "%s", v);
		break;
	case OPT_HELP:
	case OPT_NONE:
		break;
	}
	seen[opt->id] = true;
	return 0;
}

enum blast_opts_rc blast_opts_parse(int argc, char *const argv[], struct blast_opts *o,
                                    char *err, size_t errlen)
{
	bool seen[OPT_HELP + 1] = { false };
	const size_t nopts = sizeof blast_opt_table / sizeof blast_opt_table[0];
	blast_opts_defaults(o);
	if (errlen)
		err[0] = '\0';
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const struct blast_opt *opt = NULL;
		const char *value = NULL;
		char name[32];
		if (a[0] == '-' && a[1] == '-' && a[2] != '\0') {
			const char *eq = strchr(a + 2, '=');
			size_t n = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
			for (size_t k = 0; k < nopts && !opt; k++)
				if (strlen(blast_opt_table[k].lng) == n && memcmp(blast_opt_table[k].lng, a + 2, n) == 0)
					opt = &blast_opt_table[k];
			if (!opt) {
				blast_opts_err(err, errlen, "unknown option '%.*s'", (int)(n + 2), a);
				return BLAST_OPTS_ERR;
			}
			snprintf(name, sizeof name, "--%s", opt->lng);
			if (eq && !opt->value) {
				blast_opts_err(err, errlen, "%s takes no value", name);
				return BLAST_OPTS_ERR;
			}
			if (eq)
				value = eq + 1;
		} else if (a[0] == '-' && a[1] != '\0' && a[1] != '-') {
			for (size_t k = 0; k < nopts && !opt; k++)
				if (blast_opt_table[k].shrt == a[1])
					opt = &blast_opt_table[k];
			if (!opt) {
				blast_opts_err(err, errlen, "unknown option '-%c'", a[1]);
				return BLAST_OPTS_ERR;
			}
			snprintf(name, sizeof name, "-%c", opt->shrt);
			if (a[2] != '\0') {
				if (!opt->value) {
					blast_opts_err(err, errlen, "%s takes no value", name);
					return BLAST_OPTS_ERR;
				}
				value = a + 2;
			}
		} else {
			blast_opts_err(err, errlen, "unexpected argument '%s'", a);
			return BLAST_OPTS_ERR;
		}
		if (opt->id == OPT_HELP)
			return BLAST_OPTS_HELP;
		if (opt->value && !value) {
			if (i + 1 >= argc) {
				blast_opts_err(err, errlen, "%s needs a value", name);
				return BLAST_OPTS_ERR;
			}
			value = argv[++i];
		}
		if (apply(o, opt, name, value, seen, err, errlen) < 0)
			return BLAST_OPTS_ERR;
	}

	/* What goes together. */
	if (!seen[OPT_SERVER]) {
		blast_opts_err(err, errlen, "missing -s HOST:PORT");
		return BLAST_OPTS_ERR;
	}
	if (!seen[OPT_CONNECTIONS]) {
		blast_opts_err(err, errlen, "missing -c CONNECTIONS");
		return BLAST_OPTS_ERR;
	}
	if (o->idle_hold) {
		if (o->messages > 0) {
			blast_opts_err(err, errlen, "--idle-hold sends no messages: give -n 0 or no -n");
			return BLAST_OPTS_ERR;
		}
		if (o->per_conn) {
			blast_opts_err(err, errlen, "--per-conn does not go with --idle-hold (no messages)");
			return BLAST_OPTS_ERR;
		}
	} else if (!seen[OPT_MESSAGES]) {
		blast_opts_err(err, errlen, "missing -n MESSAGES");
		return BLAST_OPTS_ERR;
	} else if (o->messages == 0) {
		blast_opts_err(err, errlen, "-n 0 is allowed only with --idle-hold");
		return BLAST_OPTS_ERR;
	}
	if (o->proxy != BLAST_PROXY_NONE && !seen[OPT_PROXY_SRC]) {
		blast_opts_err(err, errlen, "--proxy needs --proxy-src CIDR");
		return BLAST_OPTS_ERR;
	}
	if (o->proxy == BLAST_PROXY_NONE && seen[OPT_PROXY_SRC]) {
		blast_opts_err(err, errlen, "--proxy-src needs --proxy v1|v2");
		return BLAST_OPTS_ERR;
	}
	return BLAST_OPTS_OK;
}
