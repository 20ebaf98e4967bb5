/* cfg/cidr — an immutable table of IPv4/IPv6 networks with lock-free, allocation-free
 * lookup. Built once (per config snapshot) and never changed afterwards, so any number of
 * threads may look it up at once. An address without a mask is a host (/32, /128).
 * IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) are looked up as IPv4. */
#ifndef CFG_CIDR_H
#define CFG_CIDR_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

struct cidr_table;
struct cidr_builder;

struct cidr_builder *cidr_builder_new(void);
/* Add "192.0.2.10", "10.1.0.0/16", "2001:db8::/32", "::1". Returns 0, or -1 with a
 * message in err (e.g. "invalid CIDR '10.0.0.0/33'"). Host bits set under the mask are
 * an error ("10.1.2.3/16" is rejected, as HAProxy and Postfix's cidr tables warn). */
int cidr_builder_add(struct cidr_builder *b, const char *text, char *err, size_t errlen);
/* Add every line of a Haraka-style haproxy_hosts file: one IP or CIDR per line,
 * '#' starts a comment, blank lines ignored. On error: -1 and "PATH:LINE:COL: ..." in err.
 * The file is read with textfile_read(): never blocking, a regular file of at most 16 MiB
 * ("PATH:0:0: not a regular file" for a FIFO, a device or a directory). */
int cidr_builder_add_file(struct cidr_builder *b, const char *path, char *err, size_t errlen);
/* Consume the builder (even on failure) and return the table; NULL only on ENOMEM. */
struct cidr_table *cidr_builder_finish(struct cidr_builder *b);
void cidr_builder_free(struct cidr_builder *b);

bool cidr_lookup(const struct cidr_table *t, const struct sockaddr *sa);
/* addr is 4 octets (AF_INET) or 16 octets (AF_INET6), network order. */
bool cidr_lookup_raw(const struct cidr_table *t, int family, const void *addr);
size_t cidr_count(const struct cidr_table *t);
void cidr_free(struct cidr_table *t);

#endif
