#include "core/store.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"

enum stmt_id {
	ST_BEGIN, ST_COMMIT, ST_ROLLBACK,
	ST_PUT_INSTANCE, ST_DELETE_INSTANCE, ST_LOAD_INSTANCES,
	ST_PUT_NODE, ST_LOAD_NODES,
	ST_IDEM_GET, ST_IDEM_PUT,
	ST_PUT_IMAGE, ST_DELETE_IMAGE, ST_LOAD_IMAGES,
	ST_COUNT
};

static const char *const stmt_sql[ST_COUNT] = {
	[ST_BEGIN] = "BEGIN IMMEDIATE",
	[ST_COMMIT] = "COMMIT",
	[ST_ROLLBACK] = "ROLLBACK",
	[ST_PUT_INSTANCE] =
		"INSERT INTO instances (id, name, driver, spec, state, stop_requested, node_id,"
		" exit_code, error, trace, created_us, updated_us) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)"
		" ON CONFLICT(id) DO UPDATE SET name = excluded.name, driver = excluded.driver,"
		" spec = excluded.spec, state = excluded.state, stop_requested = excluded.stop_requested,"
		" node_id = excluded.node_id, exit_code = excluded.exit_code, error = excluded.error,"
		" trace = excluded.trace, updated_us = excluded.updated_us",
	[ST_DELETE_INSTANCE] = "DELETE FROM instances WHERE id = ?",
	[ST_LOAD_INSTANCES] =
		"SELECT id, name, driver, spec, state, stop_requested, node_id, exit_code, error, trace,"
		" created_us, updated_us FROM instances ORDER BY created_us, id",
	[ST_PUT_NODE] = "INSERT OR REPLACE INTO nodes (id, name, info, updated_us) VALUES (?,?,?,?)",
	[ST_LOAD_NODES] = "SELECT id, name, info FROM nodes",
	[ST_IDEM_GET] = "SELECT digest, instance_ids FROM idempotency WHERE key = ?",
	[ST_IDEM_PUT] = "INSERT INTO idempotency (key, digest, instance_ids, created_us) VALUES (?,?,?,?)",
	[ST_PUT_IMAGE] = "INSERT INTO images (name, kernel, kernel_size, initrd, initrd_size, cmdline, created_us,"
	                 " xen_type) VALUES (?,?,?,?,?,?,?,?)",
	[ST_DELETE_IMAGE] = "DELETE FROM images WHERE name = ?",
	[ST_LOAD_IMAGES] = "SELECT name, kernel, kernel_size, initrd, initrd_size, cmdline, created_us, xen_type"
	                   " FROM images",
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
	/* 3: the Xen guest type belongs to the image (pv for ClickOS); NULL: not said (pvh) */
	"ALTER TABLE images ADD COLUMN xen_type TEXT;",
};

struct store {
	sqlite3 *db;
	sqlite3_stmt *stmt[ST_COUNT];
};

static int fail(struct store *s, const char *what)
{
	log_warnx("store: %s: %s", what, sqlite3_errmsg(s->db));
	return -1;
}

static int exec_sql(struct store *s, const char *sql)
{
	char *msg = NULL;
	if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		log_warnx("store: %s: %s", sql, msg ? msg : "?");
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

static int schema_version(struct store *s)
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

static int migrate(struct store *s, char *err, size_t errlen)
{
	int have = schema_version(s), want = (int)(sizeof migrations / sizeof migrations[0]);
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

int store_open(const char *path, struct store **out, char *err, size_t errlen)
{
	struct store *s = calloc(1, sizeof *s);
	if (!s)
		fatal("calloc");
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
	*out = s;
	return 0;
fail:
	store_close(s);
	return -1;
}

void store_close(struct store *s)
{
	if (!s)
		return;
	for (int i = 0; i < ST_COUNT; i++)
		sqlite3_finalize(s->stmt[i]);
	if (s->db && sqlite3_close(s->db) != SQLITE_OK)
		log_warnx("store: close: %s", sqlite3_errmsg(s->db));
	free(s);
}

/* Runs a statement that returns no rows, then resets it for the next use. */
static int step_done(struct store *s, enum stmt_id id, const char *what)
{
	sqlite3_stmt *st = s->stmt[id];
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc == SQLITE_DONE ? 0 : fail(s, what);
}

int store_begin(struct store *s) { return step_done(s, ST_BEGIN, "begin"); }
int store_commit(struct store *s) { return step_done(s, ST_COMMIT, "commit"); }
void store_rollback(struct store *s)
{
	if (sqlite3_get_autocommit(s->db) == 0)
		step_done(s, ST_ROLLBACK, "rollback");
}

static void bind_text(sqlite3_stmt *st, int i, const char *v)
{
	if (v && v[0])
		sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(st, i);
}

static void bind_json(sqlite3_stmt *st, int i, const json_t *j)
{
	char *text = j ? json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(12)) : NULL;
	if (text)
		sqlite3_bind_text(st, i, text, -1, free);
	else
		sqlite3_bind_null(st, i);
}

int store_put_instance(struct store *s, const struct instance *in)
{
	sqlite3_stmt *st = s->stmt[ST_PUT_INSTANCE];
	bind_text(st, 1, in->id);
	bind_text(st, 2, in->name);
	bind_text(st, 3, in->driver);
	bind_text(st, 4, in->spec_text);
	bind_text(st, 5, inst_state_names[in->state]);
	sqlite3_bind_int(st, 6, in->stop_requested);
	bind_text(st, 7, in->node_id);
	if (in->has_exit_code)
		sqlite3_bind_int(st, 8, in->exit_code);
	else
		sqlite3_bind_null(st, 8);
	bind_text(st, 9, in->error);
	if (in->has_trace) {
		json_t *t = trace_to_json(&in->trace);
		bind_json(st, 10, t);
		json_decref(t);
	} else {
		sqlite3_bind_null(st, 10);
	}
	sqlite3_bind_int64(st, 11, in->created_wall_us);
	sqlite3_bind_int64(st, 12, in->updated_wall_us);
	return step_done(s, ST_PUT_INSTANCE, "write instance");
}

int store_delete_instance(struct store *s, const char *id)
{
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

static struct instance *row_to_instance(sqlite3_stmt *st)
{
	struct instance *in = calloc(1, sizeof *in);
	json_t *trace, *spec;
	int state;

	if (!in)
		fatal("calloc");
	column_copy(st, 0, in->id, sizeof in->id);
	column_copy(st, 1, in->name, sizeof in->name);
	column_copy(st, 2, in->driver, sizeof in->driver);
	spec = column_json(st, 3);
	state = inst_state_parse((const char *)sqlite3_column_text(st, 4));
	if (!json_is_object(spec) || state < 0 || instance_set_spec(in, spec) < 0) {
		json_decref(spec);
		log_warnx("store: instance %s has an unreadable record; skipped", in->id);
		instance_free(in);
		return NULL;
	}
	json_decref(spec);
	in->state = (enum inst_state)state;
	in->stop_requested = sqlite3_column_int(st, 5) != 0;
	column_copy(st, 6, in->node_id, sizeof in->node_id);
	if (sqlite3_column_type(st, 7) != SQLITE_NULL) {
		in->has_exit_code = true;
		in->exit_code = sqlite3_column_int(st, 7);
	}
	if (sqlite3_column_type(st, 8) != SQLITE_NULL && !(in->error = strdup((const char *)sqlite3_column_text(st, 8))))
		fatal("strdup");
	if ((trace = column_json(st, 9))) {
		in->has_trace = trace_from_json(&in->trace, trace) == 0;
		in->ready = in->has_trace && in->trace.has_boot; /* boot is measured when ready came */
		json_decref(trace);
	}
	in->created_wall_us = sqlite3_column_int64(st, 10);
	in->updated_wall_us = sqlite3_column_int64(st, 11);
	return in;
}

int store_load_instances(struct store *s, void (*cb)(void *arg, struct instance *in), void *arg)
{
	sqlite3_stmt *st = s->stmt[ST_LOAD_INSTANCES];
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct instance *in = row_to_instance(st);
		if (in)
			cb(arg, in);
	}
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : fail(s, "load instances");
}

int store_put_node(struct store *s, const struct node *n)
{
	sqlite3_stmt *st = s->stmt[ST_PUT_NODE];
	json_t *info = json_pack("{s:s, s:O, s:O, s:i, s:I}", "address", n->address, "drivers", n->drivers,
	                         "labels", n->labels, "cpus", n->cpus, "memory_mb", (json_int_t)n->memory_mb);
	if (n->bridges)
		json_object_set(info, "bridges", n->bridges);
	bind_text(st, 1, n->id);
	bind_text(st, 2, n->name);
	bind_json(st, 3, info);
	sqlite3_bind_int64(st, 4, clock_wall_us());
	json_decref(info);
	return step_done(s, ST_PUT_NODE, "write node");
}

int store_load_nodes(struct store *s, void (*cb)(void *arg, struct node *n), void *arg)
{
	sqlite3_stmt *st = s->stmt[ST_LOAD_NODES];
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct node *n = calloc(1, sizeof *n);
		json_t *info = column_json(st, 2);
		if (!n)
			fatal("calloc");
		column_copy(st, 0, n->id, sizeof n->id);
		column_copy(st, 1, n->name, sizeof n->name);
		if (!json_is_object(info)) {
			log_warnx("store: node %s has an unreadable record; skipped", n->id);
			json_decref(info);
			free(n);
			continue;
		}
		snprintf(n->address, sizeof n->address, "%s", json_string_value(json_object_get(info, "address")) ?: "");
		n->drivers = json_incref(json_object_get(info, "drivers"));
		n->labels = json_incref(json_object_get(info, "labels"));
		n->bridges = json_incref(json_object_get(info, "bridges"));
		n->cpus = (int)json_integer_value(json_object_get(info, "cpus"));
		n->memory_mb = json_integer_value(json_object_get(info, "memory_mb"));
		json_decref(info);
		if (!n->drivers)
			n->drivers = json_object();
		if (!n->labels)
			n->labels = json_object();
		if (!n->bridges)
			n->bridges = json_array();
		cb(arg, n);
	}
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : fail(s, "load nodes");
}

int store_idem_get(struct store *s, const char *key, char **digest, char **ids_json)
{
	sqlite3_stmt *st = s->stmt[ST_IDEM_GET];
	int rc;
	*digest = *ids_json = NULL;
	bind_text(st, 1, key);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*digest = strdup((const char *)sqlite3_column_text(st, 0));
		*ids_json = strdup((const char *)sqlite3_column_text(st, 1));
		if (!*digest || !*ids_json)
			fatal("strdup");
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : fail(s, "read idempotency key");
}

int store_idem_put(struct store *s, const char *key, const char *digest, const char *ids_json)
{
	sqlite3_stmt *st = s->stmt[ST_IDEM_PUT];
	bind_text(st, 1, key);
	bind_text(st, 2, digest);
	bind_text(st, 3, ids_json);
	sqlite3_bind_int64(st, 4, clock_wall_us());
	return step_done(s, ST_IDEM_PUT, "write idempotency key");
}

int store_put_image(struct store *s, const struct image *img)
{
	sqlite3_stmt *st = s->stmt[ST_PUT_IMAGE];
	bind_text(st, 1, img->name);
	bind_text(st, 2, img->kernel);
	sqlite3_bind_int64(st, 3, img->kernel_size);
	bind_text(st, 4, img->initrd);
	sqlite3_bind_int64(st, 5, img->initrd_size);
	bind_text(st, 6, img->cmdline);
	sqlite3_bind_int64(st, 7, img->created_wall_us);
	bind_text(st, 8, img->xen_type);
	return step_done(s, ST_PUT_IMAGE, "write image");
}

int store_delete_image(struct store *s, const char *name)
{
	bind_text(s->stmt[ST_DELETE_IMAGE], 1, name);
	return step_done(s, ST_DELETE_IMAGE, "delete image");
}

int store_load_images(struct store *s, void (*cb)(void *arg, struct image *img), void *arg)
{
	sqlite3_stmt *st = s->stmt[ST_LOAD_IMAGES];
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct image *img = calloc(1, sizeof *img);
		const char *cmdline = (const char *)sqlite3_column_text(st, 5);
		if (!img)
			fatal("calloc");
		column_copy(st, 0, img->name, sizeof img->name);
		column_copy(st, 1, img->kernel, sizeof img->kernel);
		img->kernel_size = sqlite3_column_int64(st, 2);
		column_copy(st, 3, img->initrd, sizeof img->initrd);
		img->initrd_size = sqlite3_column_int64(st, 4);
		if (cmdline && !(img->cmdline = strdup(cmdline)))
			fatal("strdup");
		img->created_wall_us = sqlite3_column_int64(st, 6);
		column_copy(st, 7, img->xen_type, sizeof img->xen_type);
		cb(arg, img);
	}
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : fail(s, "load images");
}
