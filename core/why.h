/* core/why — the last reason a queued recipient was deferred, for the operator
 * (`ringrelay ctl queue`), interned per worker.
 *
 * A backlog for one dead next hop is a million recipients with the same reason, so a
 * recipient holds a 16-bit id (struct qrcpt's padding: no octet added to a queued
 * recipient), not a string. The table holds at most WHY_MAX distinct texts of at most
 * WHY_TEXT_MAX octets, each counted by the recipients that name it and freed with the
 * last of them; when it is full a new reason is not kept (id 0: the listing says none).
 * Memory: at most WHY_MAX × (WHY_TEXT_MAX + 16) octets per worker. Not kept in the
 * spool: after a restart a recipient's reason is known again at its next deferral. */
#ifndef CORE_WHY_H
#define CORE_WHY_H
#include <stdint.h>

#define WHY_MAX 4095u
#define WHY_TEXT_MAX 200u
#define WHY_HASH 1024u

struct why_ent {
	char *text;                        /* NULL: free */
	uint32_t refs;
	uint16_t next;                     /* hash chain, or the free list */
};

struct why_tab {
	struct why_ent *e;                 /* [WHY_MAX + 1], made on first use; e[0] unused */
	uint16_t head[WHY_HASH];
	uint16_t free_head;                /* 0: none freed; then the untouched ones */
	uint16_t fresh;                    /* entries [1, fresh) were ever used */
	uint32_t used;
};

/* The id of text (its first WHY_TEXT_MAX octets), counted once more; 0 when the table is
 * full or memory is short. */
uint16_t why_get(struct why_tab *t, const char *text);
/* One reference to id less (0: nothing). */
void why_put(struct why_tab *t, uint16_t id);
/* Its text, or NULL for 0. */
const char *why_text(const struct why_tab *t, uint16_t id);
void why_fini(struct why_tab *t);

#endif
