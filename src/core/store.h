/* store — the core's durable state behind one interface: rows of instances, nodes, images,
 * idempotency keys, the tenancy (projects, users, tokens), node identity (join tokens,
 * node credentials) and warm pools, with transactions. Rows are plain typed values (the instance
 * spec as model.h parses it); the store knows no core object and calls nothing above it.
 * Each backend fills a struct store_ops and keeps its own schema version and migrations,
 * run at open (core/stores.h lists them and chooses one):
 *   sqlite   a file in the data dir (store_sqlite.h), WAL: a commit survives kill -9
 * Everything answered 2xx is written here first.
 *
 * A second backend, PostgreSQL (store_pg.h), serves several cores over one database.
 * Errors: 0, or -1 after logging the backend's own words (the caller turns a failure into
 * a 500 and keeps its memory as it was). Opening says why in err.
 *
 * Group commit (store_group_start; the core's mode). Without it every begin..commit, and
 * every write outside one, is a transaction of its own: one PostgreSQL round trip and WAL
 * flush per state change. With it, the writes of one event-loop turn go into one backend
 * transaction, opened at the turn's first write and committed at the end of the turn, by
 * an event that runs after every callback the turn's poll made ready and before the loop
 * polls again. That is what keeps "an answer only after its write is committed": libevent
 * writes an answer to its socket in the write callback of a later turn (bufferevent_write
 * only queues it), so whatever a turn answers leaves after the turn's commit. store_commit
 * then ends a unit (what the caller's begin..commit held), not the transaction: a failed
 * unit is rolled back with the transaction when it is the turn's first; after other units
 * were accepted it cannot be taken back alone, and the process exits (their answers are
 * queued and must not go out uncommitted; a restart reloads what was committed).
 *
 * Durability per unit: by default its commit is flushed to disk before the answers of the
 * turn go out (PostgreSQL: synchronous_commit as the server has it; SQLite: WAL written,
 * synchronous=NORMAL). store_no_flush_next() says the next unit holds only what can be
 * learnt again (a node's report of where its instance is, which it gives again when it
 * registers): a turn of such units only is committed without waiting for the WAL flush
 * (PostgreSQL: SET LOCAL synchronous_commit = off; the commit is still ordered before any
 * later one, and survives the core's crash, not the database server's). PostgreSQL also
 * sends such units' updates, and such a turn's commit, without waiting for the server's
 * answers (store_pg.c): a failure among them is logged, not fatal, since what they held
 * is learnt again.
 *
 * Units settled at the commit (store_defer_next). A create's insert can be refused for a
 * taken name, which another core may have written a moment ago. A backend that waits for
 * each statement (SQLite) knows at once; PostgreSQL instead sends the insert without
 * waiting, with the turn's COMMIT (one round trip, not two), as an insert that does nothing
 * on a taken key (so that the other units of the turn still commit) and says whether it
 * took. Such a unit's owner holds its effects and its answer: after store_commit it calls
 * store_unit_then, whose fn learns at the end of the turn, once the turn is committed and
 * before any of its answers is written, whether the unit's row is stored. A unit deferred
 * so holds one insert only: a refusal takes back nothing else.
 *
 * A taken key (STORE_TAKEN). An insert of an instance, an idempotency key, an image, a
 * project, a user or a pool whose key another core wrote first writes nothing and returns
 * STORE_TAKEN; the transaction goes on, and the unit's owner takes back what the unit wrote
 * before (core/cluster.c deletes the rows a create inserted) and answers 409 name_conflict
 * (an idempotency key: 503, to be retried). Any other failure is -1, as before. */
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
#define STORE_TAKEN (-2) /* an insert found its key taken: it wrote nothing (see the top) */
#define STORE_PAGE_DEFAULT 1000 /* rows per page when everything is loaded */

/* ---- rows ---- */

/* What changes over an instance's life (written on every transition). */
struct store_instance_status {
	enum inst_state state;
	bool stop_requested;
	uint32_t run;                /* its run (wire.h): 0, one more at each start again; since schema 7 */
	char node_id[MV_ID_LEN + 1]; /* "" while unplaced */
	bool has_exit_code;
	int exit_code;
	const char *error;           /* NULL: none */
	bool has_trace;
	struct trace trace;          /* of the instantiation; its boot phase says the guest got ready */
	bool trace_kept;             /* an update: the stored trace is already this one, and is not
	                              * written again (a lost instance's update then costs no JSON of
	                              * its trace: most of a node loss's CPU at a million instances) */
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

/* Node identity (schema 6): a join token an admin made (kind "join": multi-use until it
 * expires or is revoked), or a node's own credential (kind "node", one per node id, issued
 * when the node joined with join_id). Only SHA-256 of either is kept. A node revoked
 * without a credential (it registered with an admin's token) gets a "node" row with no
 * hash, revoked, so that its id stays refused. */
struct store_node_secret_row {
	char id[STORE_TOKEN_ID_LEN + 1];     /* public: what ls shows and revoke takes */
	char kind[8];                        /* "join" or "node" */
	char hash[STORE_TOKEN_HASH_LEN + 1]; /* "" for a revoked node that never had a credential */
	char node_id[MV_ID_LEN + 1];         /* a credential's node; "" for a join token */
	char join_id[STORE_TOKEN_ID_LEN + 1]; /* the join token a credential came from, or "" */
	int64_t expires_us;                  /* wall clock; 0: never (credentials never expire) */
	bool revoked;
	int64_t created_us;
};

/* A warm pool (core/pools.h): its guests' spec, stored form, whole as JSON; and its size
 * over all nodes. Since schema 8. */
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
typedef void store_node_secret_fn(void *arg, const struct store_node_secret_row *row);
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
	/* Commits without waiting for the disk (see "Durability" above); NULL: as commit. */
	int (*commit_no_flush)(struct store *s);

	int (*instance_insert)(struct store *s, const struct store_instance_row *row); /* STORE_TAKEN: see the top */
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

	/* *found false when the key is new; a second put of a key is STORE_TAKEN (the first answer stays). */
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

	/* Node identity; an insert of a taken id (or a second credential of a node) fails. */
	int (*node_secret_insert)(struct store *s, const struct store_node_secret_row *row);
	int (*node_secret_revoke)(struct store *s, const char *id);
	int (*node_secrets_load)(struct store *s, store_node_secret_fn *fn, void *arg);

	/* Warm pools; an insert of a taken name fails. */
	int (*pool_insert)(struct store *s, const struct store_pool_row *row);
	int (*pool_delete)(struct store *s, const char *name);
	int (*pools_load)(struct store *s, store_pool_fn *fn, void *arg);
};

struct store_group;

/* The head of every backend's own struct. */
struct store {
	const struct store_ops *ops;
	struct store_group *group; /* NULL: no group commit (store_group_start) */
};

/* Opening is the backend's (core/stores.h chooses one); closing is the same for all, and
 * commits an open group first. */
void store_close(struct store *s);

struct event_base;
/* From now on, the writes of each turn of base's loop are one transaction (see the top). */
void store_group_start(struct store *s, struct event_base *base);
/* fn(arg) is called before the process exits because a turn cannot be committed; it may
 * exit itself (core.c: a leader whose sessions were fenced exits as a lost leader does). */
void store_group_on_fatal(struct store *s, void (*fn)(void *arg), void *arg);
/* Commits the open group now (exits when that fails: see the top); nothing without one. */
void store_group_flush(struct store *s);
/* The next unit (begin..commit, or one write outside one) needs no flush of its own. */
void store_no_flush_next(struct store *s);
/* Whether the unit under way was marked by store_no_flush_next (a backend may send its
 * writes without waiting for them: store_pg.c). */
bool store_unit_no_flush(const struct store *s);
/* The next unit is one insert whose refusal may be learnt only at the turn's commit (see
 * "Units settled at the commit"): its owner calls store_unit_then after store_commit. */
void store_defer_next(struct store *s);
/* For backends: whether the unit under way was marked by store_defer_next; its index in
 * the turn, for store_unit_refused. */
bool store_unit_deferred(const struct store *s);
int store_unit_index(const struct store *s);
/* For backends: unit's insert found its key taken (it wrote nothing). */
void store_unit_refused(struct store *s, int unit);
/* fn(arg, stored) once the unit that store_commit just ended is settled: stored false when
 * its insert was refused. At the turn's end, after its commit, before any answer of the
 * turn is written (at once without a group). fn may write to the store (a new transaction). */
typedef void store_settled_fn(void *arg, bool stored);
void store_unit_then(struct store *s, store_settled_fn *fn, void *arg);
/* Transactions committed and units they held, since the start (for the metrics). */
void store_group_counts(const struct store *s, uint64_t *commits, uint64_t *units, uint64_t *flushed);

static inline int store_claim(struct store *s, char *err, size_t errlen)
{
	return s->ops->claim ? s->ops->claim(s, err, errlen) : 0;
}
int store_begin(struct store *s);
int store_commit(struct store *s);
void store_rollback(struct store *s);

/* Every write and read below goes through these two (the group's bookkeeping): op_enter
 * opens the turn's transaction before a write; op_leave accounts for a write's result. */
int store_op_enter(struct store *s, bool write);
int store_op_leave(struct store *s, bool write, int rc);
#define STORE_WRITE(s, call) (store_op_enter((s), true) < 0 ? -1 : store_op_leave((s), true, (call)))
#define STORE_READ(s, call) store_op_leave((s), false, (call))

static inline int store_instance_insert(struct store *s, const struct store_instance_row *r)
{
	return STORE_WRITE(s, s->ops->instance_insert(s, r));
}
static inline int store_instance_update(struct store *s, const char *id, const struct store_instance_status *st)
{
	return STORE_WRITE(s, s->ops->instance_update(s, id, st));
}
static inline int store_instance_delete(struct store *s, const char *id)
{
	return STORE_WRITE(s, s->ops->instance_delete(s, id));
}
static inline int store_node_put(struct store *s, const struct store_node_row *r)
{
	return STORE_WRITE(s, s->ops->node_put(s, r));
}
static inline int store_nodes_load(struct store *s, store_node_fn *fn, void *arg)
{
	return STORE_READ(s, s->ops->nodes_load(s, fn, arg));
}
static inline int store_image_insert(struct store *s, const struct store_image_row *r)
{
	return STORE_WRITE(s, s->ops->image_insert(s, r));
}
static inline int store_image_delete(struct store *s, const char *name)
{
	return STORE_WRITE(s, s->ops->image_delete(s, name));
}
static inline int store_images_load(struct store *s, store_image_fn *fn, void *arg)
{
	return STORE_READ(s, s->ops->images_load(s, fn, arg));
}
static inline int store_idem_get(struct store *s, const char *key, struct store_idem_row *out, bool *found)
{
	return STORE_READ(s, s->ops->idem_get(s, key, out, found));
}
static inline int store_idem_put(struct store *s, const struct store_idem_row *r)
{
	return STORE_WRITE(s, s->ops->idem_put(s, r));
}
static inline int store_project_insert(struct store *s, const struct store_project_row *r)
{
	return STORE_WRITE(s, s->ops->project_insert(s, r));
}
static inline int store_project_delete(struct store *s, const char *name)
{
	return STORE_WRITE(s, s->ops->project_delete(s, name));
}
static inline int store_projects_load(struct store *s, store_project_fn *fn, void *arg)
{
	return STORE_READ(s, s->ops->projects_load(s, fn, arg));
}
static inline int store_user_insert(struct store *s, const struct store_user_row *r)
{
	return STORE_WRITE(s, s->ops->user_insert(s, r));
}
static inline int store_user_delete(struct store *s, const char *name)
{
	return STORE_WRITE(s, s->ops->user_delete(s, name));
}
static inline int store_users_load(struct store *s, store_user_fn *fn, void *arg)
{
	return STORE_READ(s, s->ops->users_load(s, fn, arg));
}
static inline int store_token_insert(struct store *s, const struct store_token_row *r)
{
	return STORE_WRITE(s, s->ops->token_insert(s, r));
}
static inline int store_token_revoke(struct store *s, const char *id)
{
	return STORE_WRITE(s, s->ops->token_revoke(s, id));
}
static inline int store_tokens_load(struct store *s, store_token_fn *fn, void *arg)
{
	return STORE_READ(s, s->ops->tokens_load(s, fn, arg));
}
static inline int store_node_secret_insert(struct store *s, const struct store_node_secret_row *r)
{
	return s->ops->node_secret_insert(s, r);
}
static inline int store_node_secret_revoke(struct store *s, const char *id)
{
	return s->ops->node_secret_revoke(s, id);
}
static inline int store_node_secrets_load(struct store *s, store_node_secret_fn *fn, void *arg)
{
	return s->ops->node_secrets_load(s, fn, arg);
}

static inline int store_pool_insert(struct store *s, const struct store_pool_row *r)
{
	return STORE_WRITE(s, s->ops->pool_insert(s, r));
}
static inline int store_pool_delete(struct store *s, const char *name)
{
	return STORE_WRITE(s, s->ops->pool_delete(s, name));
}
static inline int store_pools_load(struct store *s, store_pool_fn *fn, void *arg)
{
	return STORE_READ(s, s->ops->pools_load(s, fn, arg));
}

/* Every instance, page by page (never one unbounded query), in creation order. A thread
 * reads and decodes the next page while fn takes in this one's rows on the calling thread:
 * fn must not use the store. */
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
