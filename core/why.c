/* core/why — see why.h. */
#include "core/why.h"

#include <stdlib.h>
#include <string.h>

static unsigned why_hash(const char *s, size_t n)
{
	uint32_t h = 2166136261u;          /* FNV-1a */
	for (size_t i = 0; i < n; i++)
		h = (h ^ (uint8_t)s[i]) * 16777619u;
	return h % WHY_HASH;
}

uint16_t why_get(struct why_tab *t, const char *text)
{
	if (!text || !*text)
		return 0;
	size_t n = strnlen(text, WHY_TEXT_MAX);
	unsigned h = why_hash(text, n);
	if (t->e) {
		for (uint16_t i = t->head[h]; i; i = t->e[i].next)
			if (strncmp(t->e[i].text, text, n) == 0 && t->e[i].text[n] == '\0') {
				t->e[i].refs++;
				return i;
			}
	} else if (!(t->e = calloc(WHY_MAX + 1, sizeof *t->e))) {
		return 0;
	}
	uint16_t i;
	if (t->free_head) {
		i = t->free_head;
		t->free_head = t->e[i].next;
	} else if (t->fresh == 0 || t->fresh <= WHY_MAX) {
		if (t->fresh == 0)
			t->fresh = 1;
		i = t->fresh++;
	} else {
		return 0;                      /* full: not kept */
	}
	char *copy = strndup(text, n);
	if (!copy) {
		t->e[i].next = t->free_head;
		t->free_head = i;
		return 0;
	}
	t->e[i] = (struct why_ent){ copy, 1, t->head[h] };
	t->head[h] = i;
	t->used++;
	return i;
}

void why_put(struct why_tab *t, uint16_t id)
{
	if (!id || !t->e || !t->e[id].text || --t->e[id].refs > 0)
		return;
	const char *s = t->e[id].text;
	uint16_t *pp = &t->head[why_hash(s, strlen(s))];
	while (*pp && *pp != id)
		pp = &t->e[*pp].next;
	if (*pp)
		*pp = t->e[id].next;
	free(t->e[id].text);
	t->e[id] = (struct why_ent){ NULL, 0, t->free_head };
	t->free_head = id;
	t->used--;
}

const char *why_text(const struct why_tab *t, uint16_t id)
{
	return id && t->e ? t->e[id].text : NULL;
}

void why_fini(struct why_tab *t)
{
	if (t->e)
		for (unsigned i = 1; i <= WHY_MAX; i++)
			free(t->e[i].text);
	free(t->e);
	memset(t, 0, sizeof *t);
}
