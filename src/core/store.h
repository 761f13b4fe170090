/* store — the core's durable state in SQLite (WAL): instances, nodes, idempotency keys.
 * Everything answered 2xx is written here first. A versioned schema; migrations run at
 * open. All functions return 0 or -1 after logging the SQLite error (the caller turns a
 * failure into a 500 and keeps its in-memory state unchanged). */
#ifndef MICROVIM_STORE_H
#define MICROVIM_STORE_H

#include <stddef.h>

#include "core/internal.h"

#define STORE_SCHEMA_VERSION 3

struct store;

int store_open(const char *path, struct store **out, char *err, size_t errlen);
void store_close(struct store *s);

/* Group writes into one transaction (one commit for a `count` request). */
int store_begin(struct store *s);
int store_commit(struct store *s);
void store_rollback(struct store *s);

int store_put_instance(struct store *s, const struct instance *in);
int store_delete_instance(struct store *s, const char *id);
/* Calls cb for every stored instance (allocated; the callee owns it). */
int store_load_instances(struct store *s, void (*cb)(void *arg, struct instance *in), void *arg);

/* Nodes: identity, name, what they offer (restored as "down" until they re-register). */
int store_put_node(struct store *s, const struct node *n);
int store_load_nodes(struct store *s, void (*cb)(void *arg, struct node *n), void *arg);

/* Images: name -> blobs (kernel, initrd) and command line. */
int store_put_image(struct store *s, const struct image *img);
int store_delete_image(struct store *s, const char *name);
int store_load_images(struct store *s, void (*cb)(void *arg, struct image *img), void *arg);

/* Idempotency keys: the body's digest and the instance ids of the first answer. */
int store_idem_get(struct store *s, const char *key, char **digest, char **ids_json);
int store_idem_put(struct store *s, const char *key, const char *digest, const char *ids_json);

#endif
