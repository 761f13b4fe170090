/* store_sqlite — the store in SQLite (WAL), one file in the core's data dir. Statements
 * are prepared once; migrations move the schema one version at a time, at open, each in
 * its own transaction; PRAGMA user_version holds the version. */
#include "core/store_sqlite.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/jsontext.h"
#include "common/log.h"

enum stmt_id {
	ST_BEGIN, ST_COMMIT, ST_ROLLBACK,
	ST_INSERT_INSTANCE, ST_UPDATE_INSTANCE, ST_DELETE_INSTANCE, ST_PAGE_INSTANCES,
	ST_PUT_NODE, ST_LOAD_NODES,
	ST_IDEM_GET, ST_IDEM_PUT,
	ST_PUT_IMAGE, ST_DELETE_IMAGE, ST_LOAD_IMAGES,
	ST_PUT_PROJECT, ST_DELETE_PROJECT, ST_LOAD_PROJECTS,
	ST_PUT_USER, ST_DELETE_USER, ST_LOAD_USERS,
	ST_PUT_TOKEN, ST_REVOKE_TOKEN, ST_LOAD_TOKENS,
	ST_PUT_NODE_SECRET, ST_REVOKE_NODE_SECRET, ST_LOAD_NODE_SECRETS,
	ST_PUT_POOL, ST_DELETE_POOL, ST_LOAD_POOLS,
	ST_COUNT
};

static const char *const stmt_sql[ST_COUNT] = {
	[ST_BEGIN] = "BEGIN IMMEDIATE",
	[ST_COMMIT] = "COMMIT",
	[ST_ROLLBACK] = "ROLLBACK",
	[ST_INSERT_INSTANCE] =
		"INSERT INTO instances (id, name, driver, image, vcpus_milli, memory_mb, spec, state, stop_requested,"
		" node_id, exit_code, error, trace, updated_us, run, created_us, project)"
		" VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
	[ST_UPDATE_INSTANCE] =
		"UPDATE instances SET state = ?1, stop_requested = ?2, node_id = ?3, exit_code = ?4, error = ?5,"
		" trace = CASE WHEN ?10 THEN trace ELSE ?6 END, updated_us = ?7, run = ?8 WHERE id = ?9",
	[ST_DELETE_INSTANCE] = "DELETE FROM instances WHERE id = ?",
	[ST_PAGE_INSTANCES] =
		"SELECT id, spec, state, stop_requested, node_id, exit_code, error, trace, created_us, updated_us,"
		" project, run FROM instances WHERE created_us > ?1 OR (created_us = ?1 AND id > ?2) ORDER BY created_us, id LIMIT ?3",
	[ST_PUT_NODE] = "INSERT OR REPLACE INTO nodes (id, name, info, updated_us) VALUES (?,?,?,?)",
	[ST_LOAD_NODES] = "SELECT id, name, info FROM nodes",
	[ST_IDEM_GET] = "SELECT digest, instance_ids FROM idempotency WHERE key = ?",
	[ST_IDEM_PUT] = "INSERT INTO idempotency (key, digest, instance_ids, created_us) VALUES (?,?,?,?)",
	[ST_PUT_IMAGE] = "INSERT INTO images (name, kernel, kernel_size, initrd, initrd_size, cmdline, created_us,"
	                 " xen_type, project) VALUES (?,?,?,?,?,?,?,?,?)",
	[ST_DELETE_IMAGE] = "DELETE FROM images WHERE name = ?",
	[ST_LOAD_IMAGES] = "SELECT name, kernel, kernel_size, initrd, initrd_size, cmdline, created_us, xen_type,"
	                    " project FROM images",
	[ST_PUT_PROJECT] = "INSERT INTO projects (name, quota_instances, quota_vcpus_milli, quota_memory_mb,"
	                   " created_us) VALUES (?,?,?,?,?)",
	[ST_DELETE_PROJECT] = "DELETE FROM projects WHERE name = ?",
	[ST_LOAD_PROJECTS] = "SELECT name, quota_instances, quota_vcpus_milli, quota_memory_mb, created_us"
	                     " FROM projects",
	[ST_PUT_USER] = "INSERT INTO users (name, project, role, password_hash, created_us) VALUES (?,?,?,?,?)",
	[ST_DELETE_USER] = "DELETE FROM users WHERE name = ?",
	[ST_LOAD_USERS] = "SELECT name, project, role, password_hash, created_us FROM users",
	[ST_PUT_TOKEN] = "INSERT INTO tokens (id, hash, user, expires_us, revoked, created_us) VALUES (?,?,?,?,?,?)",
	[ST_REVOKE_TOKEN] = "UPDATE tokens SET revoked = 1 WHERE id = ?",
	[ST_LOAD_TOKENS] = "SELECT id, hash, user, expires_us, revoked, created_us FROM tokens",
	[ST_PUT_NODE_SECRET] = "INSERT INTO node_secrets (id, kind, hash, node_id, join_id, expires_us, revoked,"
	                       " created_us) VALUES (?,?,?,?,?,?,?,?)",
	[ST_REVOKE_NODE_SECRET] = "UPDATE node_secrets SET revoked = 1 WHERE id = ?",
	[ST_LOAD_NODE_SECRETS] = "SELECT id, kind, hash, node_id, join_id, expires_us, revoked, created_us"
	                         " FROM node_secrets",
	[ST_PUT_POOL] = "INSERT INTO pools (name, size, spec, created_us) VALUES (?,?,?,?)",
	[ST_DELETE_POOL] = "DELETE FROM pools WHERE name = ?",
	[ST_LOAD_POOLS] = "SELECT name, size, spec, created_us FROM pools",
};

/* Each entry moves the schema from version i to i+1. */
static const char *const migrations[] = {
	"CREATE TABLE instances (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, driver TEXT NOT NULL,"
	" spec TEXT NOT NULL, state TEXT NOT NULL, stop_requested INTEGER NOT NULL DEFAULT 0,"
	" node_id TEXT, exit_code INTEGER, error TEXT, trace TEXT, created_us INTEGER NOT NULL,"
	" updated_us INTEGER NOT NULL);"
	"CREATE TABLE nodes (id TEXT PRIMARY KEY, name TEXT NOT NULL, info TEXT NOT NULL,"
	" updated_us INTEGER NOT NULL);"
	"CREATE TABLE idempotency (key TEXT PRIMARY KEY, digest TEXT NOT NULL,"
	" instance_ids TEXT NOT NULL, created_us INTEGER NOT NULL);",
	"CREATE TABLE images (name TEXT PRIMARY KEY, kernel TEXT NOT NULL, kernel_size INTEGER NOT NULL,"
	" initrd TEXT, initrd_size INTEGER, cmdline TEXT, created_us INTEGER NOT NULL);",
	/* 3: what is queried gets a typed column of its own (the spec stays whole beside it),
	 * and creation order an index, so that instances come in pages */
	"ALTER TABLE instances ADD COLUMN image TEXT;"
	"ALTER TABLE instances ADD COLUMN vcpus_milli INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE instances ADD COLUMN memory_mb INTEGER NOT NULL DEFAULT 0;"
	"UPDATE instances SET image = json_extract(spec, '$.image'),"
	" vcpus_milli = CAST(round(json_extract(spec, '$.resources.vcpus') * 1000) AS INTEGER),"
	" memory_mb = json_extract(spec, '$.resources.memory_mb');"
	"CREATE INDEX instances_created ON instances (created_us, id);",
	/* 4: an image's Xen guest type, "pv" or "pvh" (NULL: not said, booted PVH as before) */
	"ALTER TABLE images ADD COLUMN xen_type TEXT CHECK (xen_type IN ('pv', 'pvh'));",
	/* 5: tenancy. Every instance and image belongs to a project (what was there before
	 * goes to "admin", the project made at the first start with authentication); users
	 * have one role on one project; tokens are kept as their SHA-256 only. Removing a
	 * project removes its users, removing a user its tokens (the core refuses to remove a
	 * project that still owns instances or images). */
	"ALTER TABLE instances ADD COLUMN project TEXT NOT NULL DEFAULT 'admin';"
	"ALTER TABLE images ADD COLUMN project TEXT NOT NULL DEFAULT 'admin';"
	"CREATE INDEX instances_project ON instances (project);"
	"CREATE TABLE projects (name TEXT PRIMARY KEY, quota_instances INTEGER NOT NULL,"
	" quota_vcpus_milli INTEGER NOT NULL, quota_memory_mb INTEGER NOT NULL, created_us INTEGER NOT NULL);"
	"CREATE TABLE users (name TEXT PRIMARY KEY,"
	" project TEXT NOT NULL REFERENCES projects (name) ON DELETE CASCADE,"
	" role TEXT NOT NULL CHECK (role IN ('reader', 'member', 'admin')), password_hash TEXT,"
	" created_us INTEGER NOT NULL);"
	"CREATE TABLE tokens (id TEXT PRIMARY KEY, hash TEXT NOT NULL UNIQUE,"
	" user TEXT NOT NULL REFERENCES users (name) ON DELETE CASCADE, expires_us INTEGER NOT NULL,"
	" revoked INTEGER NOT NULL DEFAULT 0, created_us INTEGER NOT NULL);",
	/* 6: node identity. Join tokens an admin makes and the credential each node gets when
	 * it joins, as SHA-256 only; one credential per node id (the partial index), so that
	 * no second join can take a node's id. */
	"CREATE TABLE node_secrets (id TEXT PRIMARY KEY, kind TEXT NOT NULL CHECK (kind IN ('join', 'node')),"
	" hash TEXT, node_id TEXT, join_id TEXT,"
	" expires_us INTEGER NOT NULL, revoked INTEGER NOT NULL DEFAULT 0, created_us INTEGER NOT NULL);"
	"CREATE UNIQUE INDEX node_secrets_node ON node_secrets (node_id) WHERE kind = 'node';",
	/* 7: an instance's run, one more each time it starts again on its node (0: the first) */
	"ALTER TABLE instances ADD COLUMN run INTEGER NOT NULL DEFAULT 0;",
	/* 8: warm pools: the guests' spec (stored form, JSON) and the pool's size */
	"CREATE TABLE pools (name TEXT PRIMARY KEY, size INTEGER NOT NULL, spec TEXT NOT NULL,"
	" created_us INTEGER NOT NULL);",
};

#define SQLITE_SCHEMA_VERSION ((int)(sizeof migrations / sizeof migrations[0]))

struct sqlite_store {
	struct store base;
	sqlite3 *db;
	sqlite3_stmt *stmt[ST_COUNT];
};

static struct sqlite_store *sq(struct store *s) { return (struct sqlite_store *)s; }

static int fail(struct sqlite_store *s, const char *what)
{
	log_warnx("store: %s: %s", what, sqlite3_errmsg(s->db));
	return -1;
}

static int exec_sql(struct sqlite_store *s, const char *sql)
{
	char *msg = NULL;
	if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		log_warnx("store: %s: %s", sql, msg ? msg : "?");
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

static int schema_version(struct sqlite_store *s)
{
	sqlite3_stmt *st;
	int v = -1;
	if (sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
		return -1;
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return v;
}

static int migrate(struct sqlite_store *s, char *err, size_t errlen)
{
	int have = schema_version(s), want = SQLITE_SCHEMA_VERSION;
	if (have < 0) {
		snprintf(err, errlen, "cannot read the store's schema version: %s", sqlite3_errmsg(s->db));
		return -1;
	}
	if (have > want) {
		snprintf(err, errlen, "the store has schema version %d; this microvim knows up to %d "
		         "(a newer microvim wrote it)", have, want);
		return -1;
	}
	for (int v = have; v < want; v++) {
		char bump[64];
		snprintf(bump, sizeof bump, "PRAGMA user_version = %d", v + 1);
		if (exec_sql(s, "BEGIN") < 0 || exec_sql(s, migrations[v]) < 0 || exec_sql(s, bump) < 0 ||
		    exec_sql(s, "COMMIT") < 0) {
			exec_sql(s, "ROLLBACK");
			snprintf(err, errlen, "store migration to version %d failed", v + 1);
			return -1;
		}
	}
	return 0;
}

static void sqlite_close(struct store *base)
{
	struct sqlite_store *s = sq(base);
	if (!s)
		return;
	for (int i = 0; i < ST_COUNT; i++)
		sqlite3_finalize(s->stmt[i]);
	if (s->db && sqlite3_close(s->db) != SQLITE_OK)
		log_warnx("store: close: %s", sqlite3_errmsg(s->db));
	free(s);
}

int store_sqlite_open(const char *path, struct store **out, char *err, size_t errlen)
{
	struct sqlite_store *s = calloc(1, sizeof *s);
	if (!s)
		fatal("calloc");
	s->base.ops = &store_sqlite_ops;
	if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
	                    NULL) != SQLITE_OK) {
		snprintf(err, errlen, "cannot open the store %s: %s", path, sqlite3_errmsg(s->db));
		goto fail;
	}
	sqlite3_busy_timeout(s->db, 5000);
	/* WAL with synchronous=NORMAL: a commit survives kill -9 of the process (the WAL is
	 * written before COMMIT returns); only an OS crash can lose the last commits. */
	if (exec_sql(s, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON") < 0) {
		snprintf(err, errlen, "cannot set up the store %s (WAL mode)", path);
		goto fail;
	}
	if (migrate(s, err, errlen) < 0)
		goto fail;
	for (int i = 0; i < ST_COUNT; i++) {
		if (sqlite3_prepare_v3(s->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &s->stmt[i], NULL) !=
		    SQLITE_OK) {
			snprintf(err, errlen, "store statement failed to prepare: %s", sqlite3_errmsg(s->db));
			goto fail;
		}
	}
	*out = &s->base;
	return 0;
fail:
	sqlite_close(&s->base);
	return -1;
}

/* An insert: 0, STORE_TAKEN when a row has its key (SQLite takes back the statement alone:
 * the transaction goes on), or -1. */
static int step_insert(struct sqlite_store *s, enum stmt_id id, const char *what)
{
	sqlite3_stmt *st = s->stmt[id];
	int rc = sqlite3_step(st), ext = sqlite3_extended_errcode(s->db);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (rc == SQLITE_DONE)
		return 0;
	if (ext == SQLITE_CONSTRAINT_UNIQUE || ext == SQLITE_CONSTRAINT_PRIMARYKEY)
		return STORE_TAKEN;
	return fail(s, what);
}

/* Runs a statement that returns no rows, then resets it for the next use. */
static int step_done(struct sqlite_store *s, enum stmt_id id, const char *what)
{
	sqlite3_stmt *st = s->stmt[id];
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc == SQLITE_DONE ? 0 : fail(s, what);
}

static int sqlite_begin(struct store *s) { return step_done(sq(s), ST_BEGIN, "begin"); }
static int sqlite_commit(struct store *s) { return step_done(sq(s), ST_COMMIT, "commit"); }
static void sqlite_rollback(struct store *s)
{
	if (sqlite3_get_autocommit(sq(s)->db) == 0)
		step_done(sq(s), ST_ROLLBACK, "rollback");
}

static void bind_text(sqlite3_stmt *st, int i, const char *v)
{
	if (v && v[0])
		sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(st, i);
}

/* A row that names no project is the admin project's, as everything before schema 5 was. */
static const char *project_or_admin(const char *project) { return project[0] ? project : "admin"; }

static void bind_json(sqlite3_stmt *st, int i, const json_t *j)
{
	char *text = j ? json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(12)) : NULL;
	if (text)
		sqlite3_bind_text(st, i, text, -1, free);
	else
		sqlite3_bind_null(st, i);
}

static void bind_status(sqlite3_stmt *st, int first, const struct store_instance_status *v)
{
	bind_text(st, first, inst_state_names[v->state]);
	sqlite3_bind_int(st, first + 1, v->stop_requested);
	bind_text(st, first + 2, v->node_id);
	if (v->has_exit_code)
		sqlite3_bind_int(st, first + 3, v->exit_code);
	else
		sqlite3_bind_null(st, first + 3);
	bind_text(st, first + 4, v->error);
	char trace[TRACE_TEXT_MAX];
	/* written straight as text: trace_to_json and its dump cost twice as much, once per
	 * state change of every instance */
	if (v->has_trace && !v->trace_kept && trace_format(&v->trace, trace, sizeof trace) >= 0) {
		sqlite3_bind_text(st, first + 5, trace, -1, SQLITE_TRANSIENT);
	} else {
		sqlite3_bind_null(st, first + 5);
	}
	sqlite3_bind_int64(st, first + 6, v->updated_us);
	sqlite3_bind_int64(st, first + 7, v->run);
}

static int sqlite_instance_insert(struct store *base, const struct store_instance_row *r)
{
	struct sqlite_store *s = sq(base);
	sqlite3_stmt *st = s->stmt[ST_INSERT_INSTANCE];
	struct jtext spec = {0};
	size_t len;
	spec_write_json(&r->spec, &spec);
	bind_text(st, 1, r->id);
	bind_text(st, 2, r->spec.name);
	bind_text(st, 3, r->spec.driver);
	bind_text(st, 4, r->spec.image);
	sqlite3_bind_int64(st, 5, r->spec.vcpus_milli);
	sqlite3_bind_int64(st, 6, r->spec.memory_mb);
	sqlite3_bind_text(st, 7, jtext_take(&spec, &len), -1, free);
	bind_status(st, 8, &r->status); /* state .. run: 8-15 */
	sqlite3_bind_int64(st, 16, r->created_us);
	bind_text(st, 17, project_or_admin(r->project));
	return step_insert(s, ST_INSERT_INSTANCE, "write instance");
}

static int sqlite_instance_update(struct store *base, const char *id, const struct store_instance_status *v)
{
	struct sqlite_store *s = sq(base);
	sqlite3_stmt *st = s->stmt[ST_UPDATE_INSTANCE];
	bind_status(st, 1, v);
	bind_text(st, 9, id);
	sqlite3_bind_int(st, 10, v->trace_kept);
	return step_done(s, ST_UPDATE_INSTANCE, "write instance");
}

static int sqlite_instance_delete(struct store *base, const char *id)
{
	struct sqlite_store *s = sq(base);
	bind_text(s->stmt[ST_DELETE_INSTANCE], 1, id);
	return step_done(s, ST_DELETE_INSTANCE, "delete instance");
}

static json_t *column_json(sqlite3_stmt *st, int i)
{
	const char *text = (const char *)sqlite3_column_text(st, i);
	return text ? json_loads(text, 0, NULL) : NULL;
}

static void column_copy(sqlite3_stmt *st, int i, char *dst, size_t len)
{
	const char *text = (const char *)sqlite3_column_text(st, i);
	snprintf(dst, len, "%s", text ? text : "");
}

/* One row of ST_PAGE_INSTANCES; -1 when it does not read back (skipped, with a warning). */
static int row_read(sqlite3_stmt *st, struct store_instance_row *r)
{
	const char *trace;
	json_t *spec;
	struct mv_error err;
	int state;

	memset(r, 0, sizeof *r);
	column_copy(st, 0, r->id, sizeof r->id);
	spec = column_json(st, 1);
	state = inst_state_parse((const char *)sqlite3_column_text(st, 2));
	if (!spec || state < 0 || spec_decode(&r->spec, spec, SPEC_STORED, &err) < 0) {
		log_warnx("store: instance %s has an unreadable record; skipped", r->id);
		json_decref(spec);
		return -1;
	}
	json_decref(spec);
	r->status.state = (enum inst_state)state;
	r->status.stop_requested = sqlite3_column_int(st, 3) != 0;
	column_copy(st, 4, r->status.node_id, sizeof r->status.node_id);
	if (sqlite3_column_type(st, 5) != SQLITE_NULL) {
		r->status.has_exit_code = true;
		r->status.exit_code = sqlite3_column_int(st, 5);
	}
	r->status.error = (const char *)sqlite3_column_text(st, 6);
	if ((trace = (const char *)sqlite3_column_text(st, 7)))
		r->status.has_trace = trace_from_text(&r->status.trace, trace) == 0;
	r->created_us = sqlite3_column_int64(st, 8);
	r->status.updated_us = sqlite3_column_int64(st, 9);
	column_copy(st, 10, r->project, sizeof r->project);
	r->status.run = (uint32_t)sqlite3_column_int64(st, 11);
	return 0;
}

static int sqlite_instances_page(struct store *base, const struct store_cursor *after, size_t limit,
                                 store_instance_fn *fn, void *arg, struct store_cursor *last, size_t *got)
{
	struct sqlite_store *s = sq(base);
	sqlite3_stmt *st = s->stmt[ST_PAGE_INSTANCES];
	int rc;
	*last = *after;
	*got = 0;
	sqlite3_bind_int64(st, 1, after->created_us);
	sqlite3_bind_text(st, 2, after->id, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)limit);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_instance_row r;
		(*got)++;
		last->created_us = sqlite3_column_int64(st, 8);
		column_copy(st, 0, last->id, sizeof last->id);
		if (row_read(st, &r) < 0)
			continue;
		fn(arg, &r);
		spec_free(&r.spec);
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc == SQLITE_DONE ? 0 : fail(s, "load instances");
}

static int sqlite_node_put(struct store *base, const struct store_node_row *n)
{
	struct sqlite_store *s = sq(base);
	sqlite3_stmt *st = s->stmt[ST_PUT_NODE];
	json_t *info = store_node_info(n);
	bind_text(st, 1, n->id);
	bind_text(st, 2, n->name);
	bind_json(st, 3, info);
	sqlite3_bind_int64(st, 4, clock_wall_us());
	json_decref(info);
	return step_done(s, ST_PUT_NODE, "write node");
}

static int sqlite_nodes_load(struct store *base, store_node_fn *fn, void *arg)
{
	struct sqlite_store *s = sq(base);
	sqlite3_stmt *st = s->stmt[ST_LOAD_NODES];
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_node_row n = {0};
		json_t *info = column_json(st, 2);
		column_copy(st, 0, n.id, sizeof n.id);
		column_copy(st, 1, n.name, sizeof n.name);
		if (store_node_from_info(&n, info) < 0) {
			log_warnx("store: node %s has an unreadable record; skipped", n.id);
			json_decref(info);
			continue;
		}
		json_decref(info);
		fn(arg, &n);
		json_decref(n.drivers);
		json_decref(n.labels);
		json_decref(n.bridges);
		json_decref(n.run_dir);
	}
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : fail(s, "load nodes");
}

static int sqlite_idem_get(struct store *base, const char *key, struct store_idem_row *out, bool *found)
{
	struct sqlite_store *s = sq(base);
	sqlite3_stmt *st = s->stmt[ST_IDEM_GET];
	int rc;
	memset(out, 0, sizeof *out);
	*found = false;
	bind_text(st, 1, key);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		json_t *ids = column_json(st, 1);
		snprintf(out->key, sizeof out->key, "%s", key);
		column_copy(st, 0, out->digest, sizeof out->digest);
		store_idem_ids_from_json(out, ids);
		json_decref(ids);
		*found = true;
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : fail(s, "read idempotency key");
}

static int sqlite_idem_put(struct store *base, const struct store_idem_row *r)
{
	struct sqlite_store *s = sq(base);
	sqlite3_stmt *st = s->stmt[ST_IDEM_PUT];
	json_t *ids = store_idem_ids_json(r);
	bind_text(st, 1, r->key);
	bind_text(st, 2, r->digest);
	bind_json(st, 3, ids);
	json_decref(ids);
	sqlite3_bind_int64(st, 4, r->created_us);
	return step_insert(s, ST_IDEM_PUT, "write idempotency key");
}

static int sqlite_image_insert(struct store *base, const struct store_image_row *img)
{
	struct sqlite_store *s = sq(base);
	sqlite3_stmt *st = s->stmt[ST_PUT_IMAGE];
	bind_text(st, 1, img->name);
	bind_text(st, 2, img->kernel);
	sqlite3_bind_int64(st, 3, img->kernel_size);
	bind_text(st, 4, img->initrd);
	sqlite3_bind_int64(st, 5, img->initrd_size);
	bind_text(st, 6, img->cmdline);
	sqlite3_bind_int64(st, 7, img->created_us);
	bind_text(st, 8, img->xen_type);
	bind_text(st, 9, project_or_admin(img->project));
	return step_insert(s, ST_PUT_IMAGE, "write image");
}

static int sqlite_image_delete(struct store *base, const char *name)
{
	struct sqlite_store *s = sq(base);
	bind_text(s->stmt[ST_DELETE_IMAGE], 1, name);
	return step_done(s, ST_DELETE_IMAGE, "delete image");
}

static int sqlite_images_load(struct store *base, store_image_fn *fn, void *arg)
{
	struct sqlite_store *s = sq(base);
	sqlite3_stmt *st = s->stmt[ST_LOAD_IMAGES];
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_image_row img = {0};
		column_copy(st, 0, img.name, sizeof img.name);
		column_copy(st, 1, img.kernel, sizeof img.kernel);
		img.kernel_size = sqlite3_column_int64(st, 2);
		column_copy(st, 3, img.initrd, sizeof img.initrd);
		img.initrd_size = sqlite3_column_int64(st, 4);
		img.cmdline = (const char *)sqlite3_column_text(st, 5);
		img.created_us = sqlite3_column_int64(st, 6);
		column_copy(st, 7, img.xen_type, sizeof img.xen_type);
		column_copy(st, 8, img.project, sizeof img.project);
		fn(arg, &img);
	}
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : fail(s, "load images");
}

/* ---- tenancy ---- */

static int sqlite_project_insert(struct store *base, const struct store_project_row *p)
{
	struct sqlite_store *s = sq(base);
	sqlite3_stmt *st = s->stmt[ST_PUT_PROJECT];
	bind_text(st, 1, p->name);
	sqlite3_bind_int64(st, 2, p->quota_instances);
	sqlite3_bind_int64(st, 3, p->quota_vcpus_milli);
	sqlite3_bind_int64(st, 4, p->quota_memory_mb);
	sqlite3_bind_int64(st, 5, p->created_us);
	return step_insert(s, ST_PUT_PROJECT, "write project");
}

static int sqlite_project_delete(struct store *base, const char *name)
{
	struct sqlite_store *s = sq(base);
	bind_text(s->stmt[ST_DELETE_PROJECT], 1, name);
	return step_done(s, ST_DELETE_PROJECT, "delete project");
}

static int sqlite_projects_load(struct store *base, store_project_fn *fn, void *arg)
{
	struct sqlite_store *s = sq(base);
	sqlite3_stmt *st = s->stmt[ST_LOAD_PROJECTS];
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_project_row p = {0};
		column_copy(st, 0, p.name, sizeof p.name);
		p.quota_instances = sqlite3_column_int64(st, 1);
		p.quota_vcpus_milli = sqlite3_column_int64(st, 2);
		p.quota_memory_mb = sqlite3_column_int64(st, 3);
		p.created_us = sqlite3_column_int64(st, 4);
		fn(arg, &p);
	}
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : fail(s, "load projects");
}

static int sqlite_user_insert(struct store *base, const struct store_user_row *u)
{
	struct sqlite_store *s = sq(base);
	sqlite3_stmt *st = s->stmt[ST_PUT_USER];
	bind_text(st, 1, u->name);
	bind_text(st, 2, u->project);
	bind_text(st, 3, u->role);
	bind_text(st, 4, u->password_hash);
	sqlite3_bind_int64(st, 5, u->created_us);
	return step_insert(s, ST_PUT_USER, "write user");
}

static int sqlite_user_delete(struct store *base, const char *name)
{
	struct sqlite_store *s = sq(base);
	bind_text(s->stmt[ST_DELETE_USER], 1, name);
	return step_done(s, ST_DELETE_USER, "delete user");
}

static int sqlite_users_load(struct store *base, store_user_fn *fn, void *arg)
{
	struct sqlite_store *s = sq(base);
	sqlite3_stmt *st = s->stmt[ST_LOAD_USERS];
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_user_row u = {0};
		column_copy(st, 0, u.name, sizeof u.name);
		column_copy(st, 1, u.project, sizeof u.project);
		column_copy(st, 2, u.role, sizeof u.role);
		u.password_hash = (const char *)sqlite3_column_text(st, 3);
		u.created_us = sqlite3_column_int64(st, 4);
		fn(arg, &u);
	}
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : fail(s, "load users");
}

static int sqlite_token_insert(struct store *base, const struct store_token_row *t)
{
	struct sqlite_store *s = sq(base);
	sqlite3_stmt *st = s->stmt[ST_PUT_TOKEN];
	bind_text(st, 1, t->id);
	bind_text(st, 2, t->hash);
	bind_text(st, 3, t->user);
	sqlite3_bind_int64(st, 4, t->expires_us);
	sqlite3_bind_int(st, 5, t->revoked);
	sqlite3_bind_int64(st, 6, t->created_us);
	return step_done(s, ST_PUT_TOKEN, "write token");
}

static int sqlite_token_revoke(struct store *base, const char *id)
{
	struct sqlite_store *s = sq(base);
	bind_text(s->stmt[ST_REVOKE_TOKEN], 1, id);
	return step_done(s, ST_REVOKE_TOKEN, "revoke token");
}

static int sqlite_tokens_load(struct store *base, store_token_fn *fn, void *arg)
{
	struct sqlite_store *s = sq(base);
	sqlite3_stmt *st = s->stmt[ST_LOAD_TOKENS];
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_token_row t = {0};
		column_copy(st, 0, t.id, sizeof t.id);
		column_copy(st, 1, t.hash, sizeof t.hash);
		column_copy(st, 2, t.user, sizeof t.user);
		t.expires_us = sqlite3_column_int64(st, 3);
		t.revoked = sqlite3_column_int(st, 4) != 0;
		t.created_us = sqlite3_column_int64(st, 5);
		fn(arg, &t);
	}
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : fail(s, "load tokens");
}

static int sqlite_node_secret_insert(struct store *base, const struct store_node_secret_row *r)
{
	struct sqlite_store *s = sq(base);
	sqlite3_stmt *st = s->stmt[ST_PUT_NODE_SECRET];
	bind_text(st, 1, r->id);
	bind_text(st, 2, r->kind);
	bind_text(st, 3, r->hash);
	bind_text(st, 4, r->node_id);
	bind_text(st, 5, r->join_id);
	sqlite3_bind_int64(st, 6, r->expires_us);
	sqlite3_bind_int(st, 7, r->revoked);
	sqlite3_bind_int64(st, 8, r->created_us);
	return step_done(s, ST_PUT_NODE_SECRET, "write node secret");
}

static int sqlite_node_secret_revoke(struct store *base, const char *id)
{
	struct sqlite_store *s = sq(base);
	bind_text(s->stmt[ST_REVOKE_NODE_SECRET], 1, id);
	return step_done(s, ST_REVOKE_NODE_SECRET, "revoke node secret");
}

static int sqlite_node_secrets_load(struct store *base, store_node_secret_fn *fn, void *arg)
{
	struct sqlite_store *s = sq(base);
	sqlite3_stmt *st = s->stmt[ST_LOAD_NODE_SECRETS];
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_node_secret_row r = {0};
		column_copy(st, 0, r.id, sizeof r.id);
		column_copy(st, 1, r.kind, sizeof r.kind);
		column_copy(st, 2, r.hash, sizeof r.hash);
		column_copy(st, 3, r.node_id, sizeof r.node_id);
		column_copy(st, 4, r.join_id, sizeof r.join_id);
		r.expires_us = sqlite3_column_int64(st, 5);
		r.revoked = sqlite3_column_int(st, 6) != 0;
		r.created_us = sqlite3_column_int64(st, 7);
		fn(arg, &r);
	}
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : fail(s, "load node secrets");
}

static int sqlite_pool_insert(struct store *base, const struct store_pool_row *r)
{
	struct sqlite_store *s = sq(base);
	sqlite3_stmt *st = s->stmt[ST_PUT_POOL];
	bind_text(st, 1, r->name);
	sqlite3_bind_int(st, 2, r->size);
	bind_json(st, 3, r->spec);
	sqlite3_bind_int64(st, 4, r->created_us);
	return step_insert(s, ST_PUT_POOL, "write pool");
}

static int sqlite_pool_delete(struct store *base, const char *name)
{
	struct sqlite_store *s = sq(base);
	bind_text(s->stmt[ST_DELETE_POOL], 1, name);
	return step_done(s, ST_DELETE_POOL, "delete pool");
}

static int sqlite_pools_load(struct store *base, store_pool_fn *fn, void *arg)
{
	struct sqlite_store *s = sq(base);
	sqlite3_stmt *st = s->stmt[ST_LOAD_POOLS];
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_pool_row r = {0};
		column_copy(st, 0, r.name, sizeof r.name);
		r.size = sqlite3_column_int(st, 1);
		r.spec = column_json(st, 2);
		r.created_us = sqlite3_column_int64(st, 3);
		fn(arg, &r);
		json_decref(r.spec);
	}
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : fail(s, "load pools");
}

const struct store_ops store_sqlite_ops = {
	.name = "sqlite",
	.schema_version = SQLITE_SCHEMA_VERSION,
	.close = sqlite_close,
	.begin = sqlite_begin,
	.commit = sqlite_commit,
	.rollback = sqlite_rollback,
	.instance_insert = sqlite_instance_insert,
	.instance_update = sqlite_instance_update,
	.instance_delete = sqlite_instance_delete,
	.instances_page = sqlite_instances_page,
	.node_put = sqlite_node_put,
	.nodes_load = sqlite_nodes_load,
	.image_insert = sqlite_image_insert,
	.image_delete = sqlite_image_delete,
	.images_load = sqlite_images_load,
	.idem_get = sqlite_idem_get,
	.idem_put = sqlite_idem_put,
	.project_insert = sqlite_project_insert,
	.project_delete = sqlite_project_delete,
	.projects_load = sqlite_projects_load,
	.user_insert = sqlite_user_insert,
	.user_delete = sqlite_user_delete,
	.users_load = sqlite_users_load,
	.token_insert = sqlite_token_insert,
	.token_revoke = sqlite_token_revoke,
	.tokens_load = sqlite_tokens_load,
	.node_secret_insert = sqlite_node_secret_insert,
	.node_secret_revoke = sqlite_node_secret_revoke,
	.node_secrets_load = sqlite_node_secrets_load,
	.pool_insert = sqlite_pool_insert,
	.pool_delete = sqlite_pool_delete,
	.pools_load = sqlite_pools_load,
};
