/* cfg/yamlpos — see yamlpos.h. */
#include "cfg/yamlpos.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Aliases make the document a graph (libyaml even lets "&a [*a]" refer to itself), so
 * the walk is bounded in depth and in the number of paths it records. */
#define YAMLPOS_MAX_DEPTH 64
#define YAMLPOS_MAX_ENTRIES 1000000
#define YAMLPOS_MAX_PATH 1024

struct yamlpos_entry {
	char *path;
	struct yamlpos_mark key, value;
	yaml_node_t *node;
};

struct yamlpos {
	yaml_document_t doc;
	bool have_doc;
	struct yamlpos_entry *e;
	size_t n, cap;
};

struct yamlpos_mark yamlpos_node_mark(const yaml_node_t *n)
{
	struct yamlpos_mark m = { 0, 0 };
	if (n != NULL) {
		m.line = (unsigned)n->start_mark.line + 1;
		m.col = (unsigned)n->start_mark.column + 1;
	}
	return m;
}

struct yamlpos_walk {
	struct yamlpos *p;
	char path[YAMLPOS_MAX_PATH];
	struct yamlpos_mark errmark;
	char *msg;
	size_t msglen;
};

static int yamlpos_fail(struct yamlpos_walk *w, struct yamlpos_mark m, const char *what,
                        const char *arg)
{
	w->errmark = m;
	snprintf(w->msg, w->msglen, "%s%s%s%s", what, arg ? " '" : "", arg ? arg : "",
	         arg ? "'" : "");
	return -1;
}

static int yamlpos_record(struct yamlpos_walk *w, struct yamlpos_mark key, yaml_node_t *n)
{
	struct yamlpos *p = w->p;
	if (p->n == YAMLPOS_MAX_ENTRIES)
		return yamlpos_fail(w, key, "document too large (too many aliases?)", NULL);
	if (p->n == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 64;
		struct yamlpos_entry *e = realloc(p->e, cap * sizeof(*e));
		if (e == NULL)
			return yamlpos_fail(w, key, "out of memory", NULL);
		p->e = e;
		p->cap = cap;
	}
	p->e[p->n].path = strdup(w->path);
	if (p->e[p->n].path == NULL)
		return yamlpos_fail(w, key, "out of memory", NULL);
	p->e[p->n].key = key;
	p->e[p->n].value = yamlpos_node_mark(n);
	p->e[p->n].node = n;
	p->n++;
	return 0;
}

static int yamlpos_walk(struct yamlpos_walk *w, yaml_node_t *n, struct yamlpos_mark key,
                        unsigned depth)
{
	yaml_document_t *doc = &w->p->doc;
	size_t plen = strlen(w->path);

	if (depth > YAMLPOS_MAX_DEPTH)
		return yamlpos_fail(w, yamlpos_node_mark(n), "nesting too deep", NULL);
	if (yamlpos_record(w, key, n) < 0)
		return -1;

	if (n->type == YAML_SEQUENCE_NODE) {
		size_t i = 0;
		for (yaml_node_item_t *it = n->data.sequence.items.start;
		     it < n->data.sequence.items.top; it++, i++) {
			yaml_node_t *c = yaml_document_get_node(doc, *it);
			int k = snprintf(w->path + plen, sizeof(w->path) - plen, "[%zu]", i);
			if (k < 0 || (size_t)k >= sizeof(w->path) - plen)
				return yamlpos_fail(w, yamlpos_node_mark(c), "key path too long", NULL);
			if (c != NULL && yamlpos_walk(w, c, yamlpos_node_mark(c), depth + 1) < 0)
				return -1;
			w->path[plen] = '\0';
		}
	} else if (n->type == YAML_MAPPING_NODE) {
		for (yaml_node_pair_t *pr = n->data.mapping.pairs.start;
		     pr < n->data.mapping.pairs.top; pr++) {
			yaml_node_t *k = yaml_document_get_node(doc, pr->key);
			yaml_node_t *v = yaml_document_get_node(doc, pr->value);
			int r;
			if (k == NULL || v == NULL)
				continue;
			if (k->type != YAML_SCALAR_NODE)
				return yamlpos_fail(w, yamlpos_node_mark(k),
				                    "mapping keys must be plain strings", NULL);
			if (memchr(k->data.scalar.value, '\0', k->data.scalar.length) != NULL)
				return yamlpos_fail(w, yamlpos_node_mark(k), "NUL in key", NULL);
			r = snprintf(w->path + plen, sizeof(w->path) - plen, "%s%s",
			             plen ? "." : "", (const char *)k->data.scalar.value);
			if (r < 0 || (size_t)r >= sizeof(w->path) - plen)
				return yamlpos_fail(w, yamlpos_node_mark(k), "key path too long", NULL);
			if (yamlpos_walk(w, v, yamlpos_node_mark(k), depth + 1) < 0)
				return -1;
			w->path[plen] = '\0';
		}
	}
	return 0;
}

static int yamlpos_cmp(const void *a, const void *b)
{
	const struct yamlpos_entry *x = a, *y = b;
	int c = strcmp(x->path, y->path);
	if (c != 0)
		return c;
	if (x->key.line != y->key.line)
		return x->key.line < y->key.line ? -1 : 1;
	return (x->key.col > y->key.col) - (x->key.col < y->key.col);
}

static bool yamlpos_before(struct yamlpos_mark a, struct yamlpos_mark b)
{
	return a.line < b.line || (a.line == b.line && a.col < b.col);
}

/* After sorting, a key given twice in one mapping shows up as two equal paths. Report
 * the repeated key that comes first in the file (a repeated parent precedes the
 * repeated paths of its children). */
static int yamlpos_dups(struct yamlpos_walk *w)
{
	struct yamlpos *p = w->p;
	const struct yamlpos_entry *dup = NULL;
	for (size_t i = 1; i < p->n; i++) {
		if (strcmp(p->e[i - 1].path, p->e[i].path) != 0)
			continue;
		if (p->e[i].node == p->e[i - 1].node && p->e[i].key.line == p->e[i - 1].key.line &&
		    p->e[i].key.col == p->e[i - 1].key.col)
			continue;
		if (dup == NULL || yamlpos_before(p->e[i].key, dup->key))
			dup = &p->e[i];
	}
	if (dup != NULL) {
		const char *dot = strrchr(dup->path, '.');
		return yamlpos_fail(w, dup->key, "duplicate key", dot ? dot + 1 : dup->path);
	}
	return 0;
}

struct yamlpos *yamlpos_new(const char *yaml, size_t len, struct yamlpos_mark *errmark,
                            char *msg, size_t msglen)
{
	struct yamlpos *p = calloc(1, sizeof(*p));
	struct yamlpos_walk w = { .p = p, .msg = msg, .msglen = msglen };
	yaml_parser_t parser;
	yaml_node_t *root;

	if (p == NULL) {
		errmark->line = errmark->col = 0;
		snprintf(msg, msglen, "out of memory");
		return NULL;
	}
	if (!yaml_parser_initialize(&parser)) {
		free(p);
		errmark->line = errmark->col = 0;
		snprintf(msg, msglen, "out of memory");
		return NULL;
	}
	yaml_parser_set_input_string(&parser, (const unsigned char *)yaml, len);
	if (!yaml_parser_load(&parser, &p->doc))
		goto syntax;
	p->have_doc = true;
	root = yaml_document_get_root_node(&p->doc);
	if (root != NULL) {
		/* One document per file: a second one would be silently ignored. */
		yaml_document_t next;
		yaml_node_t *nroot;
		if (!yaml_parser_load(&parser, &next))
			goto syntax;
		nroot = yaml_document_get_root_node(&next);
		if (nroot != NULL) {
			w.errmark = yamlpos_node_mark(nroot);
			snprintf(msg, msglen, "more than one YAML document");
			yaml_document_delete(&next);
			goto fail;
		}
		yaml_document_delete(&next);
		if (yamlpos_walk(&w, root, yamlpos_node_mark(root), 0) < 0)
			goto fail;
		qsort(p->e, p->n, sizeof(*p->e), yamlpos_cmp);
		if (yamlpos_dups(&w) < 0)
			goto fail;
	}
	yaml_parser_delete(&parser);
	return p;

syntax:
	w.errmark.line = (unsigned)parser.problem_mark.line + 1;
	w.errmark.col = (unsigned)parser.problem_mark.column + 1;
	if (parser.error == YAML_MEMORY_ERROR)
		snprintf(msg, msglen, "out of memory");
	else if (parser.context != NULL)
		snprintf(msg, msglen, "YAML syntax error: %s %s",
		         parser.problem ? parser.problem : "error", parser.context);
	else
		snprintf(msg, msglen, "YAML syntax error: %s",
		         parser.problem ? parser.problem : "error");
fail:
	*errmark = w.errmark;
	yaml_parser_delete(&parser);
	yamlpos_free(p);
	return NULL;
}

void yamlpos_free(struct yamlpos *p)
{
	if (p == NULL)
		return;
	for (size_t i = 0; i < p->n; i++)
		free(p->e[i].path);
	free(p->e);
	if (p->have_doc)
		yaml_document_delete(&p->doc);
	free(p);
}

static const struct yamlpos_entry *yamlpos_find(const struct yamlpos *p, const char *path)
{
	size_t lo = 0, hi = p->n;
	/* First entry with this path (the first occurrence, duplicates are errors). */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (strcmp(p->e[mid].path, path) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < p->n && strcmp(p->e[lo].path, path) == 0)
		return &p->e[lo];
	return NULL;
}

/* The entry at path or its nearest recorded ancestor ("a.b[2].c" -> "a.b[2]" -> "a.b"). */
static const struct yamlpos_entry *yamlpos_nearest(const struct yamlpos *p, const char *path)
{
	char buf[YAMLPOS_MAX_PATH];
	size_t len = strlen(path);
	if (p == NULL)
		return NULL;
	if (len >= sizeof(buf))
		len = sizeof(buf) - 1;
	memcpy(buf, path, len);
	buf[len] = '\0';
	for (;;) {
		const struct yamlpos_entry *e = yamlpos_find(p, buf);
		char *dot, *br, *cut;
		if (e != NULL || buf[0] == '\0')
			return e;
		dot = strrchr(buf, '.');
		br = strrchr(buf, '[');
		cut = dot > br ? dot : br;
		if (cut == NULL)
			buf[0] = '\0';
		else
			*cut = '\0';
	}
}

bool yamlpos_has(const struct yamlpos *p, const char *path)
{
	return p != NULL && yamlpos_find(p, path) != NULL;
}

struct yamlpos_mark yamlpos_value(const struct yamlpos *p, const char *path)
{
	const struct yamlpos_entry *e = yamlpos_nearest(p, path);
	struct yamlpos_mark one = { 1, 1 };
	return e ? e->value : one;
}

struct yamlpos_mark yamlpos_key(const struct yamlpos *p, const char *path)
{
	const struct yamlpos_entry *e = yamlpos_nearest(p, path);
	struct yamlpos_mark one = { 1, 1 };
	return e ? e->key : one;
}

yaml_node_t *yamlpos_node(const struct yamlpos *p, const char *path)
{
	const struct yamlpos_entry *e = p ? yamlpos_find(p, path) : NULL;
	return e ? e->node : NULL;
}

yaml_document_t *yamlpos_document(struct yamlpos *p)
{
	return &p->doc;
}
