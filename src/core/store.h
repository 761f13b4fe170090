/* store — the core's durable state behind one interface: rows of instances, nodes, images,
 * idempotency keys, the tenancy (projects, users, tokens) and warm pools, with transactions. Rows are plain typed values (the instance
 * spec as model.h parses it); the store knows no core object and calls nothing above it.
 * Each backend fills a struct store_ops and keeps its own schema version and migrations,
 * run at open (core/stores.h lists them and chooses one):
 *   sqlite   a file in the data dir (store_sqlite.h), WAL: a commit survives kill -9
 * Everything answered 2xx is written here first.
 *
 * A second backend, PostgreSQL (store_pg.h), serves several cores over one database.
 * Errors: 0, or -1 after logging the backend's own words (the caller turns a failure into
 * a 500 and keeps its memory as it was). Opening says why in err. */
#ifndef MICROVIM_STORE_H
#define MICROVIM_STORE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/model.h"
#include "common/trace.h"
#include "common/wire.h"

#define STORE_IDEM_KEY_MAX 128
#define STORE_PAGE_DEFAULT 1000 /* rows per page when everything is loaded */

/* ---- rows ---- */

/* What changes over an instance's life (written on every transition). */
struct store_instance_status {
	enum inst_state state;
	bool stop_requested;
	char node_id[MV_ID_LEN + 1]; /* "" while unplaced */
	bool has_exit_code;
	int exit_code;
	const char *error;           /* NULL: none */
	bool has_trace;
	struct trace trace;          /* of the instantiation; its boot phase says the guest got ready */
	int64_t updated_us;
};

/* A whole instance (written once, when it is created). Columns that are queried are typed
 * columns of their own: name, driver, image, vcpus, memory, state, node. */
struct store_instance_row {
	char id[MV_ID_LEN + 1];
	char project[MV_NAME_MAX + 1]; /* its owner; since schema 5; "" is "admin" (what came before) */
	struct inst_spec spec;       /* stored form */
	struct store_instance_status status;
	int64_t created_us;
};

/* Where a page of instances ends: they come in creation order (then id). */
struct store_cursor {
	int64_t created_us;
	char id[MV_ID_LEN + 1]; /* "" with created_us 0: before the first */
};

struct store_node_row {
	char id[MV_ID_LEN + 1];
	char name[MV_NAME_MAX + 1];
	char address[WIRE_ADDRESS_MAX + 1];
	int cpus;
	int64_t memory_mb;
	json_t *drivers, *labels, *bridges; /* put: borrowed; load: the row's (a callback may take them) */
	json_t *run_dir;                    /* a string, or NULL; as the json members */
};

struct store_image_row {
	char name[MV_NAME_MAX + 1];
	char kernel[DIGEST_LEN + 1];
	char initrd[DIGEST_LEN + 1]; /* "" when none */
	const char *cmdline;         /* NULL when none */
	char xen_type[4];            /* "pv", "pvh" or "" (none said); a column of its own since schema 4 */
	char project[MV_NAME_MAX + 1]; /* its owner; since schema 5; "" is "admin" (what came before) */
	int64_t kernel_size, initrd_size;
	int64_t created_us;
};

/* The first answer to a create made with an Idempotency-Key: the request's digest and the
 * instances it created. */
struct store_idem_row {
	char key[STORE_IDEM_KEY_MAX + 1];
	char digest[65];
	size_t n_ids;
	char (*ids)[MV_ID_LEN + 1]; /* put: borrowed; get: owned (store_idem_row_free) */
	int64_t created_us;
};

/* Tenancy (Keystone's names): a project with its quotas (-1: none), a user with one role
 * on one project, a token of a user (only its SHA-256 is kept). Removing a project removes
 * its users, removing a user its tokens. */
struct store_project_row {
	char name[MV_NAME_MAX + 1];
	int64_t quota_instances, quota_vcpus_milli, quota_memory_mb;
	int64_t created_us;
};

struct store_user_row {
	char name[MV_NAME_MAX + 1];
	char project[MV_NAME_MAX + 1];
	char role[8];                /* "reader", "member" or "admin" */
	const char *password_hash;   /* NULL: no password (tokens made by an admin only) */
	int64_t created_us;
};

#define STORE_TOKEN_ID_LEN 16
#define STORE_TOKEN_HASH_LEN 64

struct store_token_row {
	char id[STORE_TOKEN_ID_LEN + 1];     /* public: what ls shows and revoke takes */
	char hash[STORE_TOKEN_HASH_LEN + 1]; /* SHA-256 of the token, hex */
	char user[MV_NAME_MAX + 1];
	int64_t expires_us;                  /* wall clock; 0: never */
	bool revoked;
	int64_t created_us;
};

/* A warm pool (core/pools.h): its guests' spec, stored form, whole as JSON; and its size
 * over all nodes. Since schema 6. */
struct store_pool_row {
	char name[MV_NAME_MAX + 1];
	int size;
	json_t *spec;                /* put: borrowed; load: the row's (a callback may take it) */
	int64_t created_us;
};

/* Load callbacks get a row that lives for the call: one may take the parts the store
 * allocated (the spec, a node's json) by zeroing them in the row; strings are the store's. */
typedef void store_instance_fn(void *arg, struct store_instance_row *row);
typedef void store_node_fn(void *arg, struct store_node_row *row);
typedef void store_image_fn(void *arg, const struct store_image_row *row);
typedef void store_project_fn(void *arg, const struct store_project_row *row);
typedef void store_user_fn(void *arg, const struct store_user_row *row);
typedef void store_token_fn(void *arg, const struct store_token_row *row);
typedef void store_pool_fn(void *arg, struct store_pool_row *row);

/* ---- the interface every backend fills ---- */

struct store;

struct store_ops {
	const char *name;
	int schema_version; /* what this build writes */
	void (*close)(struct store *s);

	/* Makes this store the one core's that writes it, for as long as it is open: NULL when
	 * the backend cannot be shared (SQLite: a file in one core's data dir). -1 with words
	 * in err when another core has it. */
	int (*claim)(struct store *s, char *err, size_t errlen);

	/* One transaction at a time; writes outside one commit at once. */
	int (*begin)(struct store *s);
	int (*commit)(struct store *s);
	void (*rollback)(struct store *s); /* harmless without a transaction */

	int (*instance_insert)(struct store *s, const struct store_instance_row *row); /* -1 on a taken name */
	int (*instance_update)(struct store *s, const char *id, const struct store_instance_status *st);
	int (*instance_delete)(struct store *s, const char *id); /* absent: not an error */
	/* Up to limit instances after `after` (creation order); *last is where the page ended,
	 * *got how many rows came (fewer than limit: the end). */
	int (*instances_page)(struct store *s, const struct store_cursor *after, size_t limit, store_instance_fn *fn,
	                      void *arg, struct store_cursor *last, size_t *got);

	/* Nodes: identity and what they offer (the core restores them as down). */
	int (*node_put)(struct store *s, const struct store_node_row *row);
	int (*nodes_load)(struct store *s, store_node_fn *fn, void *arg);

	int (*image_insert)(struct store *s, const struct store_image_row *row);
	int (*image_delete)(struct store *s, const char *name);
	int (*images_load)(struct store *s, store_image_fn *fn, void *arg);

	/* *found false when the key is new; a second put of a key fails (the first answer stays). */
	int (*idem_get)(struct store *s, const char *key, struct store_idem_row *out, bool *found);
	int (*idem_put)(struct store *s, const struct store_idem_row *row);

	/* Tenancy; an insert of a taken name or id fails. */
	int (*project_insert)(struct store *s, const struct store_project_row *row);
	int (*project_delete)(struct store *s, const char *name); /* with its users and their tokens */
	int (*projects_load)(struct store *s, store_project_fn *fn, void *arg);
	int (*user_insert)(struct store *s, const struct store_user_row *row);
	int (*user_delete)(struct store *s, const char *name);    /* with its tokens */
	int (*users_load)(struct store *s, store_user_fn *fn, void *arg);
	int (*token_insert)(struct store *s, const struct store_token_row *row);
	int (*token_revoke)(struct store *s, const char *id);
	int (*tokens_load)(struct store *s, store_token_fn *fn, void *arg);

	/* Warm pools; an insert of a taken name fails. */
	int (*pool_insert)(struct store *s, const struct store_pool_row *row);
	int (*pool_delete)(struct store *s, const char *name);
	int (*pools_load)(struct store *s, store_pool_fn *fn, void *arg);
};

/* The head of every backend's own struct. */
struct store {
	const struct store_ops *ops;
};

/* Opening is the backend's (core/stores.h chooses one); closing is the same for all. */
void store_close(struct store *s);

static inline int store_claim(struct store *s, char *err, size_t errlen)
{
	return s->ops->claim ? s->ops->claim(s, err, errlen) : 0;
}
static inline int store_begin(struct store *s) { return s->ops->begin(s); }
static inline int store_commit(struct store *s) { return s->ops->commit(s); }
static inline void store_rollback(struct store *s) { s->ops->rollback(s); }
static inline int store_instance_insert(struct store *s, const struct store_instance_row *r)
{
	return s->ops->instance_insert(s, r);
}
static inline int store_instance_update(struct store *s, const char *id, const struct store_instance_status *st)
{
	return s->ops->instance_update(s, id, st);
}
static inline int store_instance_delete(struct store *s, const char *id) { return s->ops->instance_delete(s, id); }
static inline int store_node_put(struct store *s, const struct store_node_row *r) { return s->ops->node_put(s, r); }
static inline int store_nodes_load(struct store *s, store_node_fn *fn, void *arg)
{
	return s->ops->nodes_load(s, fn, arg);
}
static inline int store_image_insert(struct store *s, const struct store_image_row *r)
{
	return s->ops->image_insert(s, r);
}
static inline int store_image_delete(struct store *s, const char *name) { return s->ops->image_delete(s, name); }
static inline int store_images_load(struct store *s, store_image_fn *fn, void *arg)
{
	return s->ops->images_load(s, fn, arg);
}
static inline int store_idem_get(struct store *s, const char *key, struct store_idem_row *out, bool *found)
{
	return s->ops->idem_get(s, key, out, found);
}
static inline int store_idem_put(struct store *s, const struct store_idem_row *r) { return s->ops->idem_put(s, r); }
static inline int store_project_insert(struct store *s, const struct store_project_row *r)
{
	return s->ops->project_insert(s, r);
}
static inline int store_project_delete(struct store *s, const char *name) { return s->ops->project_delete(s, name); }
static inline int store_projects_load(struct store *s, store_project_fn *fn, void *arg)
{
	return s->ops->projects_load(s, fn, arg);
}
static inline int store_user_insert(struct store *s, const struct store_user_row *r)
{
	return s->ops->user_insert(s, r);
}
static inline int store_user_delete(struct store *s, const char *name) { return s->ops->user_delete(s, name); }
static inline int store_users_load(struct store *s, store_user_fn *fn, void *arg)
{
	return s->ops->users_load(s, fn, arg);
}
static inline int store_token_insert(struct store *s, const struct store_token_row *r)
{
	return s->ops->token_insert(s, r);
}
static inline int store_token_revoke(struct store *s, const char *id) { return s->ops->token_revoke(s, id); }
static inline int store_tokens_load(struct store *s, store_token_fn *fn, void *arg)
{
	return s->ops->tokens_load(s, fn, arg);
}

static inline int store_pool_insert(struct store *s, const struct store_pool_row *r)
{
	return s->ops->pool_insert(s, r);
}
static inline int store_pool_delete(struct store *s, const char *name) { return s->ops->pool_delete(s, name); }
static inline int store_pools_load(struct store *s, store_pool_fn *fn, void *arg)
{
	return s->ops->pools_load(s, fn, arg);
}

/* Every instance, page by page (never one unbounded query), in creation order. */
int store_instances_load(struct store *s, store_instance_fn *fn, void *arg);
void store_idem_row_free(struct store_idem_row *r);

/* ---- for backends: the JSON forms both keep in a text column ---- */

/* A node's info column: address, drivers, labels, cpus, memory, bridges. New reference. */
json_t *store_node_info(const struct store_node_row *n);
/* Fills n's offers from an info column (takes no reference to info); -1 when it is no
 * object. The caller json_decref()s n->drivers, labels, bridges after its callback. */
int store_node_from_info(struct store_node_row *n, const json_t *info);
/* An idempotency row's ids as a JSON array (new reference), and back into out->ids. */
json_t *store_idem_ids_json(const struct store_idem_row *r);
void store_idem_ids_from_json(struct store_idem_row *out, const json_t *ids);

#endif
