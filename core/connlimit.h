/* core/connlimit — connection counts shared by all workers without locks: one atomic
 * total and a table of atomic per-client-IP counters indexed by a keyed hash of the
 * address. Two addresses that share a slot share a count, so the per-IP limit can only
 * err towards refusing early; with CONNLIMIT_SLOTS slots and a per-process random key this
 * needs hundreds of colliding live connections, which an outsider cannot aim for. */
#ifndef CORE_CONNLIMIT_H
#define CORE_CONNLIMIT_H
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#define CONNLIMIT_SLOTS (1u << 18)

enum connlimit_rc { CONNLIMIT_OK = 0, CONNLIMIT_TOTAL, CONNLIMIT_PER_IP };

void connlimit_init(void);
/* Count a connection from sa against both limits; on refusal nothing stays counted.
 * *slot receives the slot to pass to connlimit_release(). */
enum connlimit_rc connlimit_acquire(const struct sockaddr *sa, unsigned max_total,
                                    unsigned max_per_ip, uint32_t *slot);
void connlimit_release(uint32_t slot);
unsigned connlimit_total(void);

#endif
