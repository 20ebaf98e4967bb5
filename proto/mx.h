/* proto/mx — MX ordering and domain names, pure (libc only): what net/dns needs to turn an
 * MX answer into a delivery order and a site key, and to check a domain before asking.
 *
 * Order (RFC 5321 5.1): by preference, lowest first; hosts of equal preference in a
 * random order drawn again for every lookup, so that the load spreads across them. The
 * caller passes the random state in (mx_rand), so this stays pure and testable.
 *
 * Site key (DESIGN.md, Delivery): a destination named by its MX hosts, the sorted,
 * deduplicated, lower-cased host names joined with ','; domains that share their MX hosts
 * share one key, hence one ready queue and one set of limits.
 *
 * Names: what a domain may look like before it is put on the wire. Letters, digits, '-'
 * and '_' (SRV-style labels exist in the wild); labels of 1 to 63 octets; at most 253
 * octets in all without the final '.', which is allowed and dropped. No address literals
 * ("[192.0.2.1]" is the caller's business), no escapes, no UTF-8 (an SMTPUTF8 domain is
 * turned into its A-labels before it is resolved). */
#ifndef PROTO_MX_H
#define PROTO_MX_H
#include <stddef.h>
#include <stdint.h>

#define MX_NAME_MAX 253     /* octets of a domain in text form, without the final '.' */
#define MX_LABEL_MAX 63

enum mx_name_err {
	MX_NAME_OK = 0,
	MX_NAME_EMPTY,          /* "" or "." */
	MX_NAME_TOO_LONG,       /* more than MX_NAME_MAX octets */
	MX_NAME_LABEL_EMPTY,    /* "a..b", ".a" */
	MX_NAME_LABEL_TOO_LONG, /* a label of more than 63 octets */
	MX_NAME_BAD_CHAR,       /* anything but [A-Za-z0-9_-] and the dots between labels */
};
const char *mx_name_strerror(enum mx_name_err e);

/* Check the domain in[0..len) and write its lower-cased form, without the final '.', NUL
 * terminated, to out. out is written only on MX_NAME_OK. */
enum mx_name_err mx_name_norm(const char *in, size_t len, char out[MX_NAME_MAX + 1]);

/* xorshift64*: *state must not be 0 (seed it with anything else). */
uint64_t mx_rand(uint64_t *state);

/* One MX record to order: the caller fills pref and idx (its own index); key is scratch. */
struct mx_rank {
	uint16_t pref;
	uint32_t idx;
	uint32_t key;
};
/* Sort v[0..n) by preference, each run of equal preference in a random order. */
void mx_order(struct mx_rank *v, size_t n, uint64_t *rng);

/* The site key of names[0..n) into out (cap octets, NUL included). names is sorted in
 * place (case-insensitively). Names that would not fit are left out, whole and from the
 * end of the sorted list, so that one set of names always gives one key. Returns the
 * key's length, or -1 when cap is 0. */
int mx_site_key(char *out, size_t cap, const char **names, size_t n);

#endif
