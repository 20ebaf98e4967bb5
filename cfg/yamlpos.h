/* cfg/yamlpos — private to cfg/: where each value of a YAML document sits.
 *
 * libcyaml hands back plain C data without positions, so the configuration is also
 * loaded once with libyaml's document API and every node is recorded under its path
 * ("listeners[0].proxy_hosts[1]") with the (line, column) of its key and of its value,
 * 1-based like a compiler's. The same pass rejects YAML syntax errors, duplicate keys
 * and non-scalar keys (with their positions), and keeps the document so that the few
 * values libcyaml cannot express (a key that is either a mapping or a list) can be read
 * from it. */
#ifndef CFG_YAMLPOS_H
#define CFG_YAMLPOS_H

#include <stdbool.h>
#include <stddef.h>
#include <yaml.h>

struct yamlpos;

struct yamlpos_mark {
	unsigned line, col;                /* 1-based; 0:0 when unknown */
};

/* Parse `len` bytes of YAML. On error returns NULL, *errmark and msg set. */
struct yamlpos *yamlpos_new(const char *yaml, size_t len, struct yamlpos_mark *errmark,
                            char *msg, size_t msglen);
void yamlpos_free(struct yamlpos *p);

/* Is there a node at exactly `path`? ("" is the root.) */
bool yamlpos_has(const struct yamlpos *p, const char *path);
/* Position of the value at `path`, else of its nearest recorded ancestor, else 1:1. */
struct yamlpos_mark yamlpos_value(const struct yamlpos *p, const char *path);
/* Position of the key naming `path` (the value's for a sequence entry), with the same
 * fallback as yamlpos_value(). */
struct yamlpos_mark yamlpos_key(const struct yamlpos *p, const char *path);
/* The node at exactly `path`, or NULL; children through yamlpos_document(). */
yaml_node_t *yamlpos_node(const struct yamlpos *p, const char *path);
yaml_document_t *yamlpos_document(struct yamlpos *p);
/* 1-based position of a node of the document. */
struct yamlpos_mark yamlpos_node_mark(const yaml_node_t *n);

#endif
