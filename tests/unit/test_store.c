/* test_store — the store interface on both backends: SQLite on a temp dir, and PostgreSQL
 * (MICROVIM_TEST_PG_URL, else a private server this test starts with
 * tests/integration/pgserver.py and stops at its end; skipped, saying so, only when the
 * PostgreSQL binaries are not installed). Each backend gets the same tests: instance rows
 * (every field, inserted once, their status updated), delete, the name UNIQUE constraint,
 * transactions, pages in creation order, nodes, images, idempotency keys, reopen, a newer
 * schema version refused. SQLite's own: older schemas migrated with their rows, a garbage
 * file; PostgreSQL's own: an unreachable server refused with words, two stores (two cores)
 * on one database that see each other's commits.
 * Failures the test provokes on purpose make the store log a warning on stderr. */
#include <event2/event.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fs.h"
#include "core/images.h"
#include "core/pools.h"
#include "core/store.h"
#include "core/store_pg.h"
#include "core/store_sqlite.h"
#include "core/stores.h"
#include "core/tenants.h"
#include "drivers/drivers.h"
#include "unit.h"

static char tmpdir[64];
static char dbpath[128];
static char pg_url[512];   /* "" when PostgreSQL is not available */
static bool on_pg;         /* the backend the current test runs on */

/* Runs SQL on the current backend's database, outside any store. */
static int db_exec(const char *sql)
{
	if (on_pg) {
		PGconn *c = PQconnectdb(pg_url);
		PGresult *r = PQexec(c, sql);
		int ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
		if (!ok)
			fprintf(stderr, "  %s: %s", sql, PQresultErrorMessage(r));
		PQclear(r);
		PQfinish(c);
		return ok ? 0 : -1;
	}
	sqlite3 *db;
	int rc = sqlite3_open(dbpath, &db) == SQLITE_OK ? sqlite3_exec(db, sql, NULL, NULL, NULL) : SQLITE_ERROR;
	sqlite3_close(db);
	return rc == SQLITE_OK ? 0 : -1;
}

/* The first row of a query, as text ("(null)" for NULL): n columns into vals. */
static int db_row(const char *sql, char vals[][64], int n)
{
	int rc = -1;
	if (on_pg) {
		PGconn *c = PQconnectdb(pg_url);
		PGresult *r = PQexec(c, sql);
		if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) >= 1 && PQnfields(r) >= n) {
			for (int i = 0; i < n; i++)
				snprintf(vals[i], 64, "%s", PQgetisnull(r, 0, i) ? "(null)" : PQgetvalue(r, 0, i));
			rc = 0;
		}
		PQclear(r);
		PQfinish(c);
		return rc;
	}
	sqlite3 *db;
	sqlite3_stmt *st = NULL;
	if (sqlite3_open(dbpath, &db) == SQLITE_OK && sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW && sqlite3_column_count(st) >= n) {
		for (int i = 0; i < n; i++) {
			const char *t = (const char *)sqlite3_column_text(st, i);
			snprintf(vals[i], 64, "%s", t ? t : "(null)");
		}
		rc = 0;
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	return rc;
}

/* A new empty store location: a new temp dir, and on PostgreSQL an emptied database. */
static void fresh_dir(void)
{
	if (tmpdir[0])
		fs_remove_tree(tmpdir);
	snprintf(tmpdir, sizeof tmpdir, "/tmp/mv-test-store-XXXXXX");
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		exit(2);
	}
	snprintf(dbpath, sizeof dbpath, "%s/core.db", tmpdir);
	if (on_pg && db_exec("SET client_min_messages = warning; DROP SCHEMA public CASCADE; CREATE SCHEMA public") < 0)
		unit_current_failed = 1;
}

static const char *location(void) { return on_pg ? pg_url : tmpdir; }
static const struct store_ops *backend(void) { return on_pg ? &store_pg_ops : &store_sqlite_ops; }

static struct store *open_ok(void)
{
	struct store *s = NULL;
	char err[256] = "";
	if (store_open(location(), &s, err, sizeof err) != 0) {
		fprintf(stderr, "  store_open %s: %s\n", location(), err);
		unit_current_failed = 1;
		return NULL;
	}
	return s;
}

/* An exec instance row, pending; the caller frees the spec. */
static struct store_instance_row make_row(const char *id, const char *name, int64_t created)
{
	struct store_instance_row r = {.created_us = created};
	struct mv_error err;
	json_t *spec = json_pack("{s:s, s:s, s:{s:s, s:[s]}, s:{s:f, s:I}}", "name", name, "driver", "exec", "config",
	                         "command", "/bin/sleep", "args", "60", "resources", "vcpus", 0.25, "memory_mb",
	                         (json_int_t)64);
	snprintf(r.id, sizeof r.id, "%s", id);
	CHECK_EQ_INT(drv_spec_parse(&r.spec, spec, SPEC_STORED, &err), 0);
	json_decref(spec);
	r.status.state = INST_PENDING;
	r.status.updated_us = created + 1;
	return r;
}

/* Loaded rows, kept (spec taken, error copied). */
struct loaded {
	struct store_instance_row in[64];
	char *error[64];
	int n;
};

static void collect(void *arg, struct store_instance_row *row)
{
	struct loaded *l = arg;
	if (l->n >= 64)
		return;
	l->in[l->n] = *row;
	l->error[l->n] = row->status.error ? strdup(row->status.error) : NULL;
	l->in[l->n].status.error = l->error[l->n];
	memset(&row->spec, 0, sizeof row->spec); /* taken */
	l->n++;
}

static void loaded_free(struct loaded *l)
{
	for (int i = 0; i < l->n; i++) {
		spec_free(&l->in[i].spec);
		free(l->error[i]);
	}
	l->n = 0;
}

static int count_instances(struct store *s)
{
	struct loaded l = {.n = 0};
	if (store_instances_load(s, collect, &l) != 0)
		return -1;
	int n = l.n;
	loaded_free(&l);
	return n;
}

static struct store_instance_row *find(struct loaded *l, const char *id)
{
	for (int i = 0; i < l->n; i++)
		if (strcmp(l->in[i].id, id) == 0)
			return &l->in[i];
	return NULL;
}

static int schema_version_on_disk(void)
{
	char v[1][64];
	if (db_row(on_pg ? "SELECT max(version) FROM schema_version" : "PRAGMA user_version", v, 1) < 0)
		return -1;
	return atoi(v[0]);
}

static int schema_version_set(int v)
{
	char sql[96];
	snprintf(sql, sizeof sql, on_pg ? "UPDATE schema_version SET version = %d" : "PRAGMA user_version = %d", v);
	return db_exec(sql);
}

static void test_open_fresh(void)
{
	fresh_dir();
	struct store *s = open_ok();
	CHECK(s != NULL);
	if (!s)
		return;
	CHECK_STR(s->ops->name, on_pg ? "postgresql" : "sqlite");
	CHECK_EQ_INT(count_instances(s), 0);
	store_close(s);

	/* The backend's own schema version is recorded; both backends are at the same one. */
	CHECK_EQ_INT(schema_version_on_disk(), backend()->schema_version);
	CHECK(backend()->schema_version >= 4);
	CHECK_EQ_INT(store_pg_ops.schema_version, store_sqlite_ops.schema_version);

	/* A path whose directory does not exist, a server nobody listens on: refused with words. */
	char bad[200], err[512] = "";
	if (on_pg)
		snprintf(bad, sizeof bad, "postgresql://nobody@127.0.0.1:1/none?connect_timeout=2");
	else
		snprintf(bad, sizeof bad, "%s/missing/dir", tmpdir);
	s = (struct store *)1;
	CHECK_EQ_INT(store_open(bad, &s, err, sizeof err), -1);
	CHECK(err[0] != '\0');
	CHECK(strstr(err, on_pg ? "PostgreSQL" : bad) != NULL);
}

static void test_instances_all_fields(void)
{
	fresh_dir();
	struct store *s = open_ok();
	if (!s)
		return;
	struct store_instance_row a = make_row("0123456789abcdef", "fw1", 1000);
	struct store_instance_row b = make_row("fedcba9876543210", "fw2", 2000);
	struct loaded l = {.n = 0};

	CHECK_EQ_INT(store_instance_insert(s, &a), 0);
	CHECK_EQ_INT(store_instance_insert(s, &b), 0);

	/* a: running on a node, with a trace (boot included), stop asked */
	a.status.state = INST_RUNNING;
	snprintf(a.status.node_id, sizeof a.status.node_id, "00000000000000aa");
	a.status.has_trace = true;
	for (int p = 0; p < PHASE_COUNT; p++)
		a.status.trace.phase_us[p] = 1000 * p + p + 1; /* odd microseconds */
	a.status.trace.has_boot = true;
	a.status.trace.total_us = 123456789;
	a.status.stop_requested = true;
	a.status.run = 3; /* started again three times */
	a.status.updated_us = 1001;
	CHECK_EQ_INT(store_instance_update(s, a.id, &a.status), 0);
	/* b: failed with an exit code and an error, no trace, no node */
	b.status.state = INST_FAILED;
	b.status.has_exit_code = true;
	b.status.exit_code = -9;
	b.status.error = "exec: \"/bin/nope\": No such file or directory — ünïcödé";
	CHECK_EQ_INT(store_instance_update(s, b.id, &b.status), 0);

	CHECK_EQ_INT(store_instances_load(s, collect, &l), 0);
	CHECK_EQ_INT(l.n, 2);
	if (l.n == 2) { /* in creation order */
		CHECK_STR(l.in[0].id, a.id);
		CHECK_STR(l.in[1].id, b.id);
	}
	struct store_instance_row *la = find(&l, a.id), *lb = find(&l, b.id);
	CHECK(la != NULL && lb != NULL);
	if (la && lb) {
		json_t *sa = spec_to_json(&a.spec), *sla = spec_to_json(&la->spec);
		CHECK(json_equal(sla, sa));
		json_decref(sa);
		json_decref(sla);
		CHECK_STR(la->spec.name, "fw1");
		CHECK_STR(la->spec.driver, "exec");
		CHECK_EQ_INT(la->spec.vcpus_milli, 250);
		CHECK_EQ_INT(la->spec.memory_mb, 64);
		CHECK_EQ_INT(la->status.state, INST_RUNNING);
		CHECK(la->status.stop_requested);
		CHECK_EQ_INT(la->status.run, 3);
		CHECK_STR(la->status.node_id, "00000000000000aa");
		CHECK(!la->status.has_exit_code);
		CHECK(la->status.error == NULL);
		CHECK(la->status.has_trace);
		for (int p = 0; p < PHASE_COUNT; p++)
			CHECK_EQ_INT(la->status.trace.phase_us[p], a.status.trace.phase_us[p]);
		CHECK(la->status.trace.has_boot);
		CHECK_EQ_INT(la->status.trace.total_us, 123456789);
		CHECK_EQ_INT(la->created_us, 1000);
		CHECK_EQ_INT(la->status.updated_us, 1001);

		CHECK_STR(lb->spec.name, "fw2");
		CHECK_EQ_INT(lb->status.state, INST_FAILED);
		CHECK(!lb->status.stop_requested);
		CHECK_EQ_INT(lb->status.run, 0);
		CHECK_STR(lb->status.node_id, "");
		CHECK(lb->status.has_exit_code);
		CHECK_EQ_INT(lb->status.exit_code, -9);
		CHECK(lb->status.error && strcmp(lb->status.error, b.status.error) == 0);
		CHECK(!lb->status.has_trace);
		CHECK_EQ_INT(lb->created_us, 2000);
	}
	loaded_free(&l);

	/* exit code 0 is a value, not "none" */
	b.status.exit_code = 0;
	b.status.state = INST_EXITED;
	CHECK_EQ_INT(store_instance_update(s, b.id, &b.status), 0);
	CHECK_EQ_INT(store_instances_load(s, collect, &l), 0);
	lb = find(&l, b.id);
	CHECK(lb && lb->status.has_exit_code && lb->status.exit_code == 0 && lb->status.state == INST_EXITED);
	loaded_free(&l);

	/* every state survives */
	for (int st = 0; st < INST_STATE_COUNT; st++) {
		a.status.state = (enum inst_state)st;
		CHECK_EQ_INT(store_instance_update(s, a.id, &a.status), 0);
		CHECK_EQ_INT(store_instances_load(s, collect, &l), 0);
		la = find(&l, a.id);
		CHECK(la && (int)la->status.state == st);
		loaded_free(&l);
	}

	/* the node id can go back to none; the queried columns follow the spec */
	a.status.node_id[0] = '\0';
	CHECK_EQ_INT(store_instance_update(s, a.id, &a.status), 0);
	CHECK_EQ_INT(store_instances_load(s, collect, &l), 0);
	la = find(&l, a.id);
	CHECK(la && la->status.node_id[0] == '\0');
	loaded_free(&l);

	/* a kept trace is not written again (the value given is not read): the stored one stays;
	 * the next update that does not keep it writes what it says, none included */
	a.status.state = INST_LOST;
	a.status.trace_kept = true;
	a.status.trace.total_us = 1;
	a.status.has_trace = false;
	CHECK_EQ_INT(store_instance_update(s, a.id, &a.status), 0);
	CHECK_EQ_INT(store_instances_load(s, collect, &l), 0);
	la = find(&l, a.id);
	CHECK(la && la->status.state == INST_LOST && la->status.has_trace && la->status.trace.total_us == 123456789);
	loaded_free(&l);
	a.status.trace_kept = false;
	CHECK_EQ_INT(store_instance_update(s, a.id, &a.status), 0);
	CHECK_EQ_INT(store_instances_load(s, collect, &l), 0);
	la = find(&l, a.id);
	CHECK(la && !la->status.has_trace);
	loaded_free(&l);

	spec_free(&a.spec);
	spec_free(&b.spec);
	store_close(s);
}

/* The typed columns hold what the spec says: what a query (image in use, a quota) reads. */
static void test_queried_columns(void)
{
	fresh_dir();
	struct store *s = open_ok();
	if (!s)
		return;
	struct store_instance_row a = make_row("0123456789abcdef", "typed", 7);
	CHECK_EQ_INT(store_instance_insert(s, &a), 0);
	store_close(s);
	char v[5][64];
	CHECK_EQ_INT(db_row("SELECT name, driver, image, vcpus_milli, memory_mb FROM instances", v, 5), 0);
	CHECK_STR(v[0], "typed");
	CHECK_STR(v[1], "exec");
	CHECK_STR(v[2], "(null)"); /* exec: no image */
	CHECK_STR(v[3], "250");
	CHECK_STR(v[4], "64");
	spec_free(&a.spec);
}

static void test_delete(void)
{
	fresh_dir();
	struct store *s = open_ok();
	if (!s)
		return;
	struct store_instance_row a = make_row("aaaaaaaaaaaaaaaa", "one", 10);
	struct store_instance_row b = make_row("bbbbbbbbbbbbbbbb", "two", 20);
	struct store_instance_row c = make_row("cccccccccccccccc", "one", 30);
	struct loaded l = {.n = 0};

	CHECK_EQ_INT(store_instance_insert(s, &a), 0);
	CHECK_EQ_INT(store_instance_insert(s, &b), 0);
	CHECK_EQ_INT(store_instance_delete(s, a.id), 0);
	CHECK_EQ_INT(store_instances_load(s, collect, &l), 0);
	CHECK_EQ_INT(l.n, 1);
	CHECK(find(&l, a.id) == NULL && find(&l, b.id) != NULL);
	loaded_free(&l);
	/* deleting what is not there is not an error */
	CHECK_EQ_INT(store_instance_delete(s, a.id), 0);
	CHECK_EQ_INT(store_instance_delete(s, "0000000000000000"), 0);
	/* the name is free again once deleted */
	CHECK_EQ_INT(store_instance_insert(s, &c), 0);
	CHECK_EQ_INT(count_instances(s), 2);
	spec_free(&a.spec);
	spec_free(&b.spec);
	spec_free(&c.spec);
	store_close(s);
}

/* Two instances may not share a name: the second write fails and the first is intact. */
static void test_name_unique(void)
{
	fresh_dir();
	struct store *s = open_ok();
	if (!s)
		return;
	struct store_instance_row a = make_row("aaaaaaaaaaaaaaaa", "same", 10);
	struct store_instance_row b = make_row("bbbbbbbbbbbbbbbb", "same", 20);
	struct store_instance_row c = make_row("cccccccccccccccc", "other", 30);
	struct loaded l = {.n = 0};

	a.status.state = INST_RUNNING;
	CHECK_EQ_INT(store_instance_insert(s, &a), 0);
	CHECK_EQ_INT(store_instance_insert(s, &b), STORE_TAKEN);
	CHECK_EQ_INT(store_instances_load(s, collect, &l), 0);
	CHECK_EQ_INT(l.n, 1);
	CHECK(find(&l, a.id) && find(&l, a.id)->status.state == INST_RUNNING);
	loaded_free(&l);
	/* the same id under another name is taken too */
	snprintf(c.id, sizeof c.id, "%s", a.id);
	CHECK_EQ_INT(store_instance_insert(s, &c), STORE_TAKEN);
	snprintf(c.id, sizeof c.id, "cccccccccccccccc");

	/* inside a transaction: a taken name writes nothing, and the transaction goes on */
	CHECK_EQ_INT(store_begin(s), 0);
	CHECK_EQ_INT(store_instance_insert(s, &c), 0);
	CHECK_EQ_INT(store_instance_insert(s, &b), STORE_TAKEN);
	CHECK_EQ_INT(store_commit(s), 0);
	CHECK_EQ_INT(count_instances(s), 2);
	/* a rollback after one still takes back what the transaction held */
	CHECK_EQ_INT(store_instance_delete(s, c.id), 0);
	CHECK_EQ_INT(store_begin(s), 0);
	CHECK_EQ_INT(store_instance_insert(s, &c), 0);
	CHECK_EQ_INT(store_instance_insert(s, &b), STORE_TAKEN);
	store_rollback(s);
	CHECK_EQ_INT(count_instances(s), 1);
	CHECK_EQ_INT(store_begin(s), 0); /* no transaction left open */
	CHECK_EQ_INT(store_commit(s), 0);
	spec_free(&a.spec);
	spec_free(&b.spec);
	spec_free(&c.spec);
	store_close(s);
}

static void test_transactions(void)
{
	fresh_dir();
	struct store *s = open_ok();
	if (!s)
		return;
	struct store_instance_row in[5];
	for (int i = 0; i < 5; i++) {
		char id[17], name[16];
		snprintf(id, sizeof id, "%016x", i + 1);
		snprintf(name, sizeof name, "t-%d", i + 1);
		in[i] = make_row(id, name, 100 + i);
	}
	/* begin + writes + rollback: nothing */
	CHECK_EQ_INT(store_begin(s), 0);
	for (int i = 0; i < 3; i++)
		CHECK_EQ_INT(store_instance_insert(s, &in[i]), 0);
	store_rollback(s);
	CHECK_EQ_INT(count_instances(s), 0);
	/* a rollback also undoes updates and deletes */
	CHECK_EQ_INT(store_instance_insert(s, &in[0]), 0);
	CHECK_EQ_INT(store_begin(s), 0);
	in[0].status.state = INST_RUNNING;
	CHECK_EQ_INT(store_instance_update(s, in[0].id, &in[0].status), 0);
	CHECK_EQ_INT(store_instance_delete(s, in[0].id), 0);
	store_rollback(s);
	{
		struct loaded l = {.n = 0};
		CHECK_EQ_INT(store_instances_load(s, collect, &l), 0);
		CHECK(l.n == 1 && l.in[0].status.state == INST_PENDING);
		loaded_free(&l);
	}
	/* begin + writes + commit: all (a `count` request) */
	CHECK_EQ_INT(store_begin(s), 0);
	for (int i = 1; i < 5; i++)
		CHECK_EQ_INT(store_instance_insert(s, &in[i]), 0);
	CHECK_EQ_INT(store_commit(s), 0);
	CHECK_EQ_INT(count_instances(s), 5);
	/* rollback without a transaction is harmless; nested begin is refused */
	store_rollback(s);
	CHECK_EQ_INT(count_instances(s), 5);
	CHECK_EQ_INT(store_begin(s), 0);
	CHECK_EQ_INT(store_begin(s), -1);
	store_rollback(s);
	CHECK_EQ_INT(store_commit(s), -1); /* nothing to commit */
	/* the rolled-back transaction is not visible after a reopen either */
	CHECK_EQ_INT(store_begin(s), 0);
	CHECK_EQ_INT(store_instance_delete(s, in[4].id), 0);
	store_rollback(s);
	store_close(s);
	s = open_ok();
	if (s) {
		CHECK_EQ_INT(count_instances(s), 5);
		store_close(s);
	}
	for (int i = 0; i < 5; i++)
		spec_free(&in[i].spec);
}

/* Rows another connection sees: what is committed. */
static int committed_count(void)
{
	char v[1][64];
	return db_row("SELECT count(*) FROM instances", v, 1) == 0 ? atoi(v[0]) : -1;
}

/* Group commit: the writes of a loop turn are one transaction, committed when the turn
 * ends; a failed first unit takes the transaction with it and the turn goes on; a turn of
 * no-flush units only commits without a flush; close commits what is open. */
static void test_group_commit(void)
{
	struct event_base *base = event_base_new();
	struct store_instance_row in[5];
	uint64_t commits, units, flushed;
	fresh_dir();
	struct store *s = open_ok();
	if (!s || !base) {
		store_close(s);
		if (base)
			event_base_free(base);
		return;
	}
	for (int i = 0; i < 5; i++) {
		char id[17], name[16];
		snprintf(id, sizeof id, "%016x", i + 1);
		snprintf(name, sizeof name, "g-%d", i + 1);
		in[i] = make_row(id, name, 100 + i);
	}
	store_group_start(s, base);
	/* one turn: a write alone and a begin..commit of two: nothing committed until it ends */
	CHECK_EQ_INT(store_instance_insert(s, &in[0]), 0);
	CHECK_EQ_INT(store_begin(s), 0);
	CHECK_EQ_INT(store_instance_insert(s, &in[1]), 0);
	CHECK_EQ_INT(store_instance_insert(s, &in[2]), 0);
	CHECK_EQ_INT(store_commit(s), 0);
	CHECK_EQ_INT(count_instances(s), 3); /* its own transaction sees them */
	CHECK_EQ_INT(committed_count(), 0);
	event_base_loop(base, EVLOOP_NONBLOCK);
	CHECK_EQ_INT(committed_count(), 3);
	store_group_counts(s, &commits, &units, &flushed);
	CHECK(commits == 1 && units == 2 && flushed == 1);
	/* the turn's first unit fails (a taken name): rolled back alone, the next one commits */
	CHECK_EQ_INT(store_begin(s), 0);
	CHECK_EQ_INT(store_instance_insert(s, &in[3]), 0);
	CHECK_EQ_INT(store_instance_insert(s, &in[0]), STORE_TAKEN);
	store_rollback(s);
	CHECK_EQ_INT(store_instance_insert(s, &in[4]), 0);
	event_base_loop(base, EVLOOP_NONBLOCK);
	CHECK_EQ_INT(committed_count(), 4);
	{
		struct loaded l = {.n = 0};
		CHECK_EQ_INT(store_instances_load(s, collect, &l), 0);
		CHECK(l.n == 4 && !find(&l, in[3].id) && find(&l, in[4].id));
		loaded_free(&l);
	}
	/* a turn of no-flush units: committed, not counted as waiting for the disk */
	store_no_flush_next(s);
	in[0].status.state = INST_RUNNING;
	CHECK_EQ_INT(store_instance_update(s, in[0].id, &in[0].status), 0);
	event_base_loop(base, EVLOOP_NONBLOCK);
	store_group_counts(s, &commits, &units, &flushed);
	CHECK(commits == 3 && units == 4 && flushed == 2);
	CHECK_EQ_INT(count_instances(s), 4); /* PostgreSQL: the commit's answer is read here */
	{
		char v[1][64];
		CHECK(db_row("SELECT state FROM instances WHERE id = '0000000000000001'", v, 1) == 0 &&
		      strcmp(v[0], "running") == 0);
	}
	/* closing commits the open turn */
	CHECK_EQ_INT(store_instance_delete(s, in[4].id), 0);
	store_close(s);
	CHECK_EQ_INT(committed_count(), 3);
	event_base_free(base);
	for (int i = 0; i < 5; i++)
		spec_free(&in[i].spec);
}

/* Deferred units (store_defer_next): each owner learns at the turn's end whether its row is
 * stored. A name another core took (a row written behind this store's back) is refused:
 * on PostgreSQL at the commit, with the turn's other units committed; on SQLite at once
 * (STORE_TAKEN). A write that waits for its answer in the same turn reads the pipeline's
 * results first: a refusal seen then is still told at the end. */
struct settled_seen {
	int calls;
	bool stored;
};

static void on_settled(void *arg, bool stored)
{
	struct settled_seen *seen = arg;
	seen->calls++;
	seen->stored = stored;
}

/* One deferred unit of one insert: its insert's result (0 or STORE_TAKEN) */
static int deferred_insert(struct store *s, const struct store_instance_row *row, struct settled_seen *seen)
{
	int rc;
	store_defer_next(s);
	CHECK_EQ_INT(store_begin(s), 0);
	rc = store_instance_insert(s, row);
	CHECK_EQ_INT(store_commit(s), 0);
	if (rc == 0)
		store_unit_then(s, on_settled, seen);
	return rc;
}

static void test_deferred_units(void)
{
	struct event_base *base = event_base_new();
	struct store_instance_row r[4];
	struct settled_seen seen[4] = {{0}};
	fresh_dir();
	struct store *s = open_ok();
	if (!s || !base) {
		store_close(s);
		if (base)
			event_base_free(base);
		return;
	}
	for (int i = 0; i < 4; i++) {
		char id[17], name[16];
		snprintf(id, sizeof id, "%016x", i + 1);
		snprintf(name, sizeof name, "d-%d", i + 1);
		r[i] = make_row(id, name, 100 + i);
	}
	store_group_start(s, base);
	/* another core's row, named as r[1] will be */
	CHECK_EQ_INT(db_exec("INSERT INTO instances (id, name, driver, spec, state, created_us, updated_us)"
	                     " VALUES ('ffffffffffffffff', 'd-2', 'exec', '{}', 'pending', 1, 1)"),
	             0);
	/* one turn: a free name, a taken one, and a plain write after them */
	CHECK_EQ_INT(deferred_insert(s, &r[0], &seen[0]), 0);
	int taken = deferred_insert(s, &r[1], &seen[1]);
	CHECK(on_pg ? taken == 0 : taken == STORE_TAKEN); /* PostgreSQL learns it at the commit */
	CHECK_EQ_INT(store_instance_insert(s, &r[2]), 0);
	CHECK_EQ_INT(seen[0].calls + seen[1].calls, 0); /* nothing told before the turn ends */
	event_base_loop(base, EVLOOP_NONBLOCK);
	CHECK(seen[0].calls == 1 && seen[0].stored);
	CHECK(on_pg ? seen[1].calls == 1 && !seen[1].stored : seen[1].calls == 0);
	CHECK_EQ_INT(committed_count(), 3); /* the other core's, r[0], r[2] */
	{
		char v[1][64];
		CHECK(db_row("SELECT id FROM instances WHERE name = 'd-2'", v, 1) == 0 &&
		      strcmp(v[0], "ffffffffffffffff") == 0);
	}
	/* a turn of one deferred unit alone; then with the name free again it is stored */
	CHECK_EQ_INT(db_exec("DELETE FROM instances WHERE id = 'ffffffffffffffff'"), 0);
	CHECK_EQ_INT(deferred_insert(s, &r[1], &seen[3]), 0);
	event_base_loop(base, EVLOOP_NONBLOCK);
	CHECK(seen[3].calls == 1 && seen[3].stored);
	CHECK_EQ_INT(committed_count(), 3);
	/* without a group: told at once */
	store_close(s);
	s = open_ok();
	if (s) {
		CHECK_EQ_INT(deferred_insert(s, &r[3], &seen[2]), 0);
		CHECK(seen[2].calls == 1 && seen[2].stored);
		store_close(s);
	}
	CHECK_EQ_INT(committed_count(), 4);
	event_base_free(base);
	for (int i = 0; i < 4; i++)
		spec_free(&r[i].spec);
}

struct page_seen {
	char ids[32][MV_ID_LEN + 1];
	int n;
};

static void page_collect(void *arg, struct store_instance_row *row)
{
	struct page_seen *p = arg;
	if (p->n < 32)
		memcpy(p->ids[p->n++], row->id, MV_ID_LEN + 1);
}

/* Pages come in creation order then id, each after the last one's end, never twice. */
static void test_pages(void)
{
	fresh_dir();
	struct store *s = open_ok();
	if (!s)
		return;
	struct store_instance_row in[7];
	struct page_seen seen = {.n = 0};
	struct store_cursor at = {0}, last;
	size_t got;
	/* created 100, 100, 100, 200, 200, 300, 50 */
	const int64_t created[7] = {100, 100, 100, 200, 200, 300, 50};
	CHECK_EQ_INT(store_begin(s), 0);
	for (int i = 0; i < 7; i++) {
		char id[17], name[16];
		snprintf(id, sizeof id, "%016x", 0x70 - i); /* ids fall as i grows */
		snprintf(name, sizeof name, "p-%d", i);
		in[i] = make_row(id, name, created[i]);
		CHECK_EQ_INT(store_instance_insert(s, &in[i]), 0);
	}
	CHECK_EQ_INT(store_commit(s), 0);
	for (int round = 0; round < 10; round++) {
		CHECK_EQ_INT(s->ops->instances_page(s, &at, 2, page_collect, &seen, &last, &got), 0);
		if (got < 2)
			break;
		at = last;
	}
	CHECK_EQ_INT(seen.n, 7);
	/* 50; then the three at 100 by id (i = 2, 1, 0); the two at 200 (i = 4, 3); 300 */
	const int order[7] = {6, 2, 1, 0, 4, 3, 5};
	for (int k = 0; k < 7 && k < seen.n; k++)
		CHECK_STR(seen.ids[k], in[order[k]].id);
	for (int i = 0; i < 7; i++)
		spec_free(&in[i].spec);
	store_close(s);
}

/* What a load over several pages gave its callback: ids in order, each row's error and
 * trace as the row had them, on which thread. */
struct load_check {
	int n, bad;
	int64_t last_created;
	pthread_t caller;
};

static void load_check_row(void *arg, struct store_instance_row *row)
{
	struct load_check *c = arg;
	char want[32];
	int i = c->n++;
	if (!pthread_equal(pthread_self(), c->caller) || row->created_us <= c->last_created ||
	    row->created_us != 1000 + i)
		c->bad++;
	c->last_created = row->created_us;
	snprintf(want, sizeof want, "error %d", i);
	if ((i % 3 == 0) != (row->status.error != NULL) || (row->status.error && strcmp(row->status.error, want) != 0))
		c->bad++;
	if ((i % 2 == 0) != row->status.has_trace || (row->status.has_trace && row->status.trace.total_us != i * 1000))
		c->bad++;
	if (i % 5 == 0) { /* a callback may take the spec (store.h) */
		spec_free(&row->spec);
		memset(&row->spec, 0, sizeof row->spec);
	}
}

/* Every instance comes once, in creation order, on the calling thread, with its error
 * and trace, over pages read ahead by another thread: 2,500 rows (pages of 1,000 and a
 * last of 500), then 3,000 (the last full page is followed by an empty one). */
static void test_load_reads_ahead(void)
{
	fresh_dir();
	struct store *s = open_ok();
	if (!s)
		return;
	const int counts[2] = {2500, 3000};
	int made = 0;
	for (int round = 0; round < 2; round++) {
		CHECK_EQ_INT(store_begin(s), 0);
		for (; made < counts[round]; made++) {
			char id[17], name[24], error[32];
			snprintf(id, sizeof id, "%016x", (unsigned)(made * 2654435761u)); /* not in creation order */
			snprintf(name, sizeof name, "ahead-%d", made);
			snprintf(error, sizeof error, "error %d", made);
			struct store_instance_row r = make_row(id, name, 1000 + made);
			if (made % 3 == 0)
				r.status.error = error;
			if (made % 2 == 0) {
				r.status.has_trace = true;
				r.status.trace.total_us = made * 1000;
			}
			CHECK_EQ_INT(store_instance_insert(s, &r), 0);
			spec_free(&r.spec);
		}
		CHECK_EQ_INT(store_commit(s), 0);
		struct load_check c = {.caller = pthread_self()};
		CHECK_EQ_INT(store_instances_load(s, load_check_row, &c), 0);
		CHECK_EQ_INT(c.n, counts[round]);
		CHECK_EQ_INT(c.bad, 0);
	}
	store_close(s);
}

struct loaded_nodes {
	struct store_node_row n[16];
	int count;
};

static void collect_node(void *arg, struct store_node_row *row)
{
	struct loaded_nodes *l = arg;
	if (l->count >= 16)
		return;
	l->n[l->count++] = *row;
	row->drivers = row->labels = row->bridges = NULL; /* taken */
}

static void nodes_free(struct loaded_nodes *l)
{
	for (int i = 0; i < l->count; i++) {
		json_decref(l->n[i].drivers);
		json_decref(l->n[i].labels);
		json_decref(l->n[i].bridges);
	}
	l->count = 0;
}

static void test_nodes(void)
{
	fresh_dir();
	struct store *s = open_ok();
	if (!s)
		return;
	struct store_node_row n = {.cpus = 8, .memory_mb = 32768};
	struct loaded_nodes l = {.count = 0};

	snprintf(n.id, sizeof n.id, "00000000000000aa");
	snprintf(n.name, sizeof n.name, "host-1");
	snprintf(n.address, sizeof n.address, "10.0.0.7:4651");
	n.drivers = json_pack("{s:{s:s, s:[s, s]}}", "exec", "version", "1", "allow", "/bin/sleep", "/bin/true");
	n.labels = json_pack("{s:s}", "rack", "r1");
	n.bridges = json_pack("[s]", "br0");
	CHECK_EQ_INT(store_node_put(s, &n), 0);

	CHECK_EQ_INT(store_nodes_load(s, collect_node, &l), 0);
	CHECK_EQ_INT(l.count, 1);
	if (l.count == 1) {
		struct store_node_row *g = &l.n[0];
		CHECK_STR(g->id, n.id);
		CHECK_STR(g->name, "host-1");
		CHECK_STR(g->address, "10.0.0.7:4651");
		CHECK(json_equal(g->drivers, n.drivers));
		CHECK(json_equal(g->labels, n.labels));
		CHECK(json_equal(g->bridges, n.bridges));
		CHECK_EQ_INT(g->cpus, 8);
		CHECK_EQ_INT(g->memory_mb, 32768);
	}
	nodes_free(&l);

	/* re-registering with new facts replaces the record */
	json_object_set_new(n.labels, "zone", json_string("b"));
	n.cpus = 16;
	snprintf(n.name, sizeof n.name, "host-1b");
	CHECK_EQ_INT(store_node_put(s, &n), 0);
	struct store_node_row m = n;
	snprintf(m.id, sizeof m.id, "00000000000000bb");
	snprintf(m.name, sizeof m.name, "host-2");
	CHECK_EQ_INT(store_node_put(s, &m), 0);
	CHECK_EQ_INT(store_nodes_load(s, collect_node, &l), 0);
	CHECK_EQ_INT(l.count, 2);
	for (int i = 0; i < l.count; i++) {
		if (strcmp(l.n[i].id, n.id) == 0) {
			CHECK_EQ_INT(l.n[i].cpus, 16);
			CHECK_STR(l.n[i].name, "host-1b");
			CHECK_STR(json_string_value(json_object_get(l.n[i].labels, "zone")), "b");
		} else {
			CHECK_STR(l.n[i].id, "00000000000000bb");
		}
	}
	nodes_free(&l);

	/* empty labels and drivers come back as objects, missing bridges as an array */
	struct store_node_row e = {.drivers = json_object(), .labels = json_object()};
	snprintf(e.id, sizeof e.id, "00000000000000cc");
	snprintf(e.name, sizeof e.name, "bare");
	CHECK_EQ_INT(store_node_put(s, &e), 0);
	CHECK_EQ_INT(store_nodes_load(s, collect_node, &l), 0);
	CHECK_EQ_INT(l.count, 3);
	for (int i = 0; i < l.count; i++) {
		CHECK(json_is_object(l.n[i].drivers));
		CHECK(json_is_object(l.n[i].labels));
		CHECK(json_is_array(l.n[i].bridges));
	}
	nodes_free(&l);

	json_decref(n.drivers);
	json_decref(n.labels);
	json_decref(n.bridges);
	json_decref(e.drivers);
	json_decref(e.labels);
	store_close(s);
}

struct loaded_images {
	struct store_image_row img[4];
	char cmdline[4][64];
	int n;
};

static void collect_image(void *arg, const struct store_image_row *row)
{
	struct loaded_images *l = arg;
	if (l->n >= 4)
		return;
	l->img[l->n] = *row;
	snprintf(l->cmdline[l->n], sizeof l->cmdline[0], "%s", row->cmdline ? row->cmdline : "(none)");
	l->img[l->n].cmdline = NULL;
	l->n++;
}

static void test_images(void)
{
	fresh_dir();
	struct store *s = open_ok();
	if (!s)
		return;
	struct store_image_row a = {.cmdline = "console=ttyS0", .xen_type = "pv", .kernel_size = 5000, .created_us = 9};
	struct store_image_row b = {.kernel_size = 1, .initrd_size = 2, .created_us = 10};
	struct loaded_images l = {.n = 0};
	snprintf(a.name, sizeof a.name, "hello");
	snprintf(a.kernel, sizeof a.kernel, "sha256:%064d", 1);
	snprintf(b.name, sizeof b.name, "two");
	snprintf(b.kernel, sizeof b.kernel, "sha256:%064d", 2);
	snprintf(b.initrd, sizeof b.initrd, "sha256:%064d", 3);
	CHECK_EQ_INT(store_image_insert(s, &a), 0);
	CHECK_EQ_INT(store_image_insert(s, &b), 0);
	CHECK_EQ_INT(store_image_insert(s, &a), STORE_TAKEN); /* one name, one image */
	CHECK_EQ_INT(store_images_load(s, collect_image, &l), 0);
	CHECK_EQ_INT(l.n, 2);
	for (int i = 0; i < l.n; i++) {
		if (strcmp(l.img[i].name, "hello") == 0) {
			CHECK_STR(l.img[i].kernel, a.kernel);
			CHECK_STR(l.img[i].initrd, "");
			CHECK_STR(l.cmdline[i], "console=ttyS0");
			CHECK_STR(l.img[i].xen_type, "pv");
			CHECK_EQ_INT(l.img[i].kernel_size, 5000);
			CHECK_EQ_INT(l.img[i].created_us, 9);
		} else {
			CHECK_STR(l.img[i].initrd, b.initrd);
			CHECK_STR(l.cmdline[i], "(none)");
			CHECK_STR(l.img[i].xen_type, ""); /* none said: NULL in the column, "" in the row */
			CHECK_EQ_INT(l.img[i].initrd_size, 2);
		}
	}
	CHECK_EQ_INT(store_image_delete(s, "hello"), 0);
	l.n = 0;
	CHECK_EQ_INT(store_images_load(s, collect_image, &l), 0);
	CHECK_EQ_INT(l.n, 1);
	store_close(s);
}

struct loaded_pools {
	int n;
	char name[4][MV_NAME_MAX + 1];
	int size[4];
	json_t *spec[4];
};

static void collect_pool(void *arg, struct store_pool_row *row)
{
	struct loaded_pools *l = arg;
	if (l->n == 4)
		return;
	snprintf(l->name[l->n], sizeof l->name[0], "%s", row->name);
	l->size[l->n] = row->size;
	l->spec[l->n] = row->spec; /* taken */
	row->spec = NULL;
	l->n++;
}

/* Warm pools (schema 8): a row keeps its size and its spec whole; a name is one pool. */
static void test_pools(void)
{
	fresh_dir();
	struct store *s = open_ok();
	if (!s)
		return;
	json_t *spec = json_pack("{s:s, s:s, s:{s:s}}", "name", "warm", "driver", "qemu", "ready", "serial", "READY");
	struct store_pool_row a = {.name = "warm", .size = 3, .spec = spec, .created_us = 7};
	struct loaded_pools l = {.n = 0};
	CHECK_EQ_INT(store_pool_insert(s, &a), 0);
	CHECK_EQ_INT(store_pool_insert(s, &a), STORE_TAKEN);
	CHECK_EQ_INT(store_pools_load(s, collect_pool, &l), 0);
	CHECK_EQ_INT(l.n, 1);
	CHECK_STR(l.name[0], "warm");
	CHECK_EQ_INT(l.size[0], 3);
	CHECK(l.spec[0] && json_equal(l.spec[0], spec));
	json_decref(l.spec[0]);
	CHECK_EQ_INT(store_pool_delete(s, "warm"), 0);
	l.n = 0;
	CHECK_EQ_INT(store_pools_load(s, collect_pool, &l), 0);
	CHECK_EQ_INT(l.n, 0);
	json_decref(spec);
	store_close(s);
}

/* A node that comes or goes changes the pools' shares, so the nodes' long-polls are
 * answered with their new share; with no pool nothing changes and nothing is bumped (at
 * 10,000 nodes each registration would otherwise answer every other node's long-poll). */
static void test_pools_version_follows_nodes_only_with_pools(void)
{
	fresh_dir();
	struct store *s = open_ok();
	struct pools *p;
	char err[256];
	uint64_t v;
	if (!s)
		return;
	CHECK((p = pools_open(s, err, sizeof err)) != NULL);
	if (!p) {
		store_close(s);
		return;
	}
	v = pools_version(p);
	CHECK(!pools_nodes_changed(p));
	CHECK(pools_version(p) == v);
	json_t *spec = json_pack("{s:s, s:s, s:s, s:{s:s}, s:{s:s}}", "name", "warm", "driver", "qemu", "image", "sample",
	                         "ready", "serial", "READY", "boot", "kernel",
	                         "sha256:0000000000000000000000000000000000000000000000000000000000000001");
	struct store_pool_row a = {.name = "warm", .size = 3, .spec = spec, .created_us = 7};
	CHECK_EQ_INT(store_pool_insert(s, &a), 0);
	CHECK_EQ_INT(pools_reload(p), 0);
	CHECK(pools_get(p, "warm") != NULL);
	v = pools_version(p);
	CHECK(pools_nodes_changed(p));
	CHECK(pools_version(p) == v + 1);
	json_decref(spec);
	pools_close(p);
	store_close(s);
}

static void test_idempotency(void)
{
	fresh_dir();
	struct store *s = open_ok();
	if (!s)
		return;
	struct store_idem_row r = {.n_ids = 2, .created_us = 5}, got;
	char ids[2][MV_ID_LEN + 1] = {"0123456789abcdef", "fedcba9876543210"};
	bool found = true;

	r.ids = ids;
	snprintf(r.key, sizeof r.key, "k1");
	snprintf(r.digest, sizeof r.digest, "abc");
	CHECK_EQ_INT(store_idem_get(s, "k1", &got, &found), 0);
	CHECK(!found);
	CHECK_EQ_INT(store_idem_put(s, &r), 0);
	CHECK_EQ_INT(store_idem_get(s, "k1", &got, &found), 0);
	CHECK(found);
	CHECK_STR(got.digest, "abc");
	CHECK_EQ_INT(got.n_ids, 2);
	if (got.n_ids == 2) {
		CHECK_STR(got.ids[0], ids[0]);
		CHECK_STR(got.ids[1], ids[1]);
	}
	store_idem_row_free(&got);
	/* keys are distinct, case-sensitive */
	CHECK_EQ_INT(store_idem_get(s, "K1", &got, &found), 0);
	CHECK(!found);
	/* the first answer stays: a second put of the same key is taken, the store goes on */
	snprintf(r.digest, sizeof r.digest, "other");
	CHECK_EQ_INT(store_idem_put(s, &r), STORE_TAKEN);
	CHECK_EQ_INT(store_idem_get(s, "k1", &got, &found), 0);
	CHECK(found && strcmp(got.digest, "abc") == 0);
	store_idem_row_free(&got);
	/* inside a rolled-back transaction, nothing */
	snprintf(r.key, sizeof r.key, "k3 with spaces and ünicode");
	CHECK_EQ_INT(store_begin(s), 0);
	CHECK_EQ_INT(store_idem_put(s, &r), 0);
	store_rollback(s);
	CHECK_EQ_INT(store_idem_get(s, r.key, &got, &found), 0);
	CHECK(!found);
	store_close(s);
}

static void test_reopen_keeps_data(void)
{
	fresh_dir();
	struct store *s = open_ok();
	if (!s)
		return;
	struct store_instance_row a = make_row("aaaaaaaaaaaaaaaa", "persist", 5);
	struct store_node_row n = {.drivers = json_object(), .labels = json_object()};
	struct store_idem_row k = {.n_ids = 1, .created_us = 1};
	char ids[1][MV_ID_LEN + 1] = {"aaaaaaaaaaaaaaaa"};
	a.status.state = INST_RUNNING;
	a.status.has_trace = true;
	a.status.trace.phase_us[PHASE_SPAWN] = 1777;
	a.status.trace.total_us = 2001;
	snprintf(n.id, sizeof n.id, "00000000000000aa");
	snprintf(n.name, sizeof n.name, "h");
	k.ids = ids;
	snprintf(k.key, sizeof k.key, "key");
	snprintf(k.digest, sizeof k.digest, "dig");
	CHECK_EQ_INT(store_instance_insert(s, &a), 0);
	CHECK_EQ_INT(store_node_put(s, &n), 0);
	CHECK_EQ_INT(store_idem_put(s, &k), 0);
	store_close(s);

	for (int round = 0; round < 2; round++) { /* and reopening twice migrates nothing again */
		struct loaded l = {.n = 0};
		struct loaded_nodes ln = {.count = 0};
		struct store_idem_row got;
		bool found;
		if (!(s = open_ok()))
			break;
		CHECK_EQ_INT(store_instances_load(s, collect, &l), 0);
		CHECK_EQ_INT(l.n, 1);
		if (l.n == 1) {
			CHECK_STR(l.in[0].spec.name, "persist");
			CHECK_EQ_INT(l.in[0].status.state, INST_RUNNING);
			CHECK(l.in[0].status.has_trace);
			CHECK_EQ_INT(l.in[0].status.trace.phase_us[PHASE_SPAWN], 1777);
			CHECK_EQ_INT(l.in[0].status.trace.total_us, 2001);
			CHECK(!l.in[0].status.trace.has_boot);
		}
		loaded_free(&l);
		CHECK_EQ_INT(store_nodes_load(s, collect_node, &ln), 0);
		CHECK_EQ_INT(ln.count, 1);
		nodes_free(&ln);
		CHECK_EQ_INT(store_idem_get(s, "key", &got, &found), 0);
		CHECK(found && strcmp(got.digest, "dig") == 0);
		store_idem_row_free(&got);
		store_close(s);
	}
	json_decref(n.drivers);
	json_decref(n.labels);
	spec_free(&a.spec);
}

static void test_newer_schema_refused(void)
{
	fresh_dir();
	struct store *s = open_ok();
	if (!s)
		return;
	struct store_instance_row a = make_row("aaaaaaaaaaaaaaaa", "keep", 5);
	CHECK_EQ_INT(store_instance_insert(s, &a), 0);
	store_close(s);

	CHECK_EQ_INT(schema_version_set(99), 0);

	char err[512] = "", known[16];
	s = (struct store *)1;
	CHECK_EQ_INT(store_open(location(), &s, err, sizeof err), -1);
	CHECK(strstr(err, "99") != NULL);
	CHECK(strstr(err, "schema version") != NULL);
	CHECK(strstr(err, "newer") != NULL);
	snprintf(known, sizeof known, "%d", backend()->schema_version);
	CHECK(strstr(err, known) != NULL);

	/* and it did not touch the data: set the version back and everything is there */
	CHECK_EQ_INT(schema_version_set(backend()->schema_version), 0);
	if ((s = open_ok())) {
		CHECK_EQ_INT(count_instances(s), 1);
		store_close(s);
	}
	spec_free(&a.spec);
}

/* A store written by an older core (schema 2: the spec as text only) is migrated at open:
 * its rows read back whole, and the new typed columns hold what their specs say. */
static void test_migration_from_v2(void)
{
	fresh_dir();
	sqlite3 *db;
	CHECK_EQ_INT(sqlite3_open(dbpath, &db), SQLITE_OK);
	CHECK_EQ_INT(sqlite3_exec(db,
	                          "CREATE TABLE instances (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, driver TEXT NOT NULL,"
	                          " spec TEXT NOT NULL, state TEXT NOT NULL, stop_requested INTEGER NOT NULL DEFAULT 0,"
	                          " node_id TEXT, exit_code INTEGER, error TEXT, trace TEXT, created_us INTEGER NOT NULL,"
	                          " updated_us INTEGER NOT NULL);"
	                          "CREATE TABLE nodes (id TEXT PRIMARY KEY, name TEXT NOT NULL, info TEXT NOT NULL,"
	                          " updated_us INTEGER NOT NULL);"
	                          "CREATE TABLE idempotency (key TEXT PRIMARY KEY, digest TEXT NOT NULL,"
	                          " instance_ids TEXT NOT NULL, created_us INTEGER NOT NULL);"
	                          "CREATE TABLE images (name TEXT PRIMARY KEY, kernel TEXT NOT NULL, kernel_size INTEGER NOT NULL,"
	                          " initrd TEXT, initrd_size INTEGER, cmdline TEXT, created_us INTEGER NOT NULL);"
	                          "INSERT INTO instances VALUES ('0123456789abcdef', 'old', 'qemu',"
	                          " '{\"name\":\"old\",\"driver\":\"qemu\",\"resources\":{\"vcpus\":1.5,\"memory_mb\":32},"
	                          "\"image\":\"hello\",\"boot\":{\"kernel\":\"sha256:"
	                          "0000000000000000000000000000000000000000000000000000000000000001\"}}',"
	                          " 'running', 0, 'aaaaaaaaaaaaaaaa', NULL, NULL, NULL, 11, 12);"
	                          "PRAGMA user_version = 2;",
	                          NULL, NULL, NULL),
	             SQLITE_OK);
	sqlite3_close(db);

	struct store *s = open_ok();
	struct loaded l = {.n = 0};
	if (!s)
		return;
	CHECK_EQ_INT(schema_version_on_disk(), store_sqlite_ops.schema_version);
	CHECK_EQ_INT(store_instances_load(s, collect, &l), 0);
	CHECK_EQ_INT(l.n, 1);
	if (l.n == 1) {
		CHECK_STR(l.in[0].spec.name, "old");
		CHECK_STR(l.in[0].spec.image, "hello");
		CHECK(l.in[0].spec.has_boot);
		CHECK_EQ_INT(l.in[0].spec.vcpus_milli, 1500);
		CHECK_EQ_INT(l.in[0].status.state, INST_RUNNING);
		CHECK_STR(l.in[0].status.node_id, "aaaaaaaaaaaaaaaa");
	}
	loaded_free(&l);
	store_close(s);

	sqlite3_stmt *st;
	CHECK_EQ_INT(sqlite3_open(dbpath, &db), SQLITE_OK);
	CHECK_EQ_INT(sqlite3_prepare_v2(db, "SELECT image, vcpus_milli, memory_mb FROM instances", -1, &st, NULL), SQLITE_OK);
	CHECK_EQ_INT(sqlite3_step(st), SQLITE_ROW);
	CHECK_STR((const char *)sqlite3_column_text(st, 0), "hello");
	CHECK_EQ_INT(sqlite3_column_int64(st, 1), 1500);
	CHECK_EQ_INT(sqlite3_column_int64(st, 2), 32);
	sqlite3_finalize(st);
	sqlite3_close(db);
}

/* A schema 3 store (before images had a Xen guest type) is migrated to 4 at open: its
 * images read back with no type (booted PVH, as before), a new image keeps "pv", and the
 * column takes only "pv" or "pvh". */
static void test_migration_from_v3_image_xen_type(void)
{
	fresh_dir();
	sqlite3 *db;
	CHECK_EQ_INT(sqlite3_open(dbpath, &db), SQLITE_OK);
	CHECK_EQ_INT(sqlite3_exec(db,
	                          "CREATE TABLE instances (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, driver TEXT NOT NULL,"
	                          " spec TEXT NOT NULL, state TEXT NOT NULL, stop_requested INTEGER NOT NULL DEFAULT 0,"
	                          " node_id TEXT, exit_code INTEGER, error TEXT, trace TEXT, created_us INTEGER NOT NULL,"
	                          " updated_us INTEGER NOT NULL, image TEXT, vcpus_milli INTEGER NOT NULL DEFAULT 0,"
	                          " memory_mb INTEGER NOT NULL DEFAULT 0);"
	                          "CREATE INDEX instances_created ON instances (created_us, id);"
	                          "CREATE TABLE nodes (id TEXT PRIMARY KEY, name TEXT NOT NULL, info TEXT NOT NULL,"
	                          " updated_us INTEGER NOT NULL);"
	                          "CREATE TABLE idempotency (key TEXT PRIMARY KEY, digest TEXT NOT NULL,"
	                          " instance_ids TEXT NOT NULL, created_us INTEGER NOT NULL);"
	                          "CREATE TABLE images (name TEXT PRIMARY KEY, kernel TEXT NOT NULL, kernel_size INTEGER NOT NULL,"
	                          " initrd TEXT, initrd_size INTEGER, cmdline TEXT, created_us INTEGER NOT NULL);"
	                          "INSERT INTO images VALUES ('old', 'sha256:"
	                          "0000000000000000000000000000000000000000000000000000000000000001', 5, NULL, NULL,"
	                          " 'console=hvc0', 7);"
	                          "PRAGMA user_version = 3;",
	                          NULL, NULL, NULL),
	             SQLITE_OK);
	sqlite3_close(db);

	struct store *s = open_ok();
	struct loaded_images l = {.n = 0};
	struct store_image_row pv = {.xen_type = "pv", .kernel_size = 1, .created_us = 8};
	struct store_image_row bad = {.xen_type = "hvm", .kernel_size = 1, .created_us = 9};
	if (!s)
		return;
	CHECK_EQ_INT(schema_version_on_disk(), store_sqlite_ops.schema_version);
	CHECK(store_sqlite_ops.schema_version >= 4);
	CHECK_EQ_INT(store_images_load(s, collect_image, &l), 0);
	CHECK_EQ_INT(l.n, 1);
	if (l.n == 1) {
		CHECK_STR(l.img[0].name, "old");
		CHECK_STR(l.cmdline[0], "console=hvc0");
		CHECK_STR(l.img[0].xen_type, "");
		CHECK_STR(l.img[0].project, "admin"); /* schema 5: what came before is admin's */
	}
	snprintf(pv.name, sizeof pv.name, "clickos");
	snprintf(pv.kernel, sizeof pv.kernel, "sha256:%064d", 2);
	CHECK_EQ_INT(store_image_insert(s, &pv), 0);
	snprintf(bad.name, sizeof bad.name, "hvm");
	snprintf(bad.kernel, sizeof bad.kernel, "sha256:%064d", 3);
	CHECK_EQ_INT(store_image_insert(s, &bad), -1); /* the column's CHECK */
	l.n = 0;
	CHECK_EQ_INT(store_images_load(s, collect_image, &l), 0);
	CHECK_EQ_INT(l.n, 2);
	for (int i = 0; i < l.n; i++)
		CHECK_STR(l.img[i].xen_type, strcmp(l.img[i].name, "clickos") == 0 ? "pv" : "");
	store_close(s);
}

/* Schema 5: projects, users, tokens; a project's removal takes its users, a user's its
 * tokens; names and token hashes are unique; a role outside the three is refused; the
 * images migrated from schema 3 above belong to "admin". */
struct tenancy_seen {
	int projects, users, tokens, revoked;
	char last_user_project[MV_NAME_MAX + 1];
	char last_password[200];
};

static void seen_project(void *arg, const struct store_project_row *p)
{
	struct tenancy_seen *t = arg;
	t->projects++;
	if (strcmp(p->name, "blue") == 0)
		CHECK(p->quota_instances == 3 && p->quota_vcpus_milli == 2500 && p->quota_memory_mb == -1);
}

static void seen_user(void *arg, const struct store_user_row *u)
{
	struct tenancy_seen *t = arg;
	t->users++;
	snprintf(t->last_user_project, sizeof t->last_user_project, "%s", u->project);
	snprintf(t->last_password, sizeof t->last_password, "%s", u->password_hash ? u->password_hash : "(null)");
}

static void seen_token(void *arg, const struct store_token_row *r)
{
	struct tenancy_seen *t = arg;
	t->tokens++;
	t->revoked += r->revoked;
}

static struct tenancy_seen tenancy_load(struct store *s)
{
	struct tenancy_seen t = {0};
	CHECK_EQ_INT(store_projects_load(s, seen_project, &t), 0);
	CHECK_EQ_INT(store_users_load(s, seen_user, &t), 0);
	CHECK_EQ_INT(store_tokens_load(s, seen_token, &t), 0);
	return t;
}

static void test_tenancy(void)
{
	fresh_dir();
	struct store *s = open_ok();
	struct store_project_row blue = {.name = "blue", .quota_instances = 3, .quota_vcpus_milli = 2500,
	                                 .quota_memory_mb = -1, .created_us = 1};
	struct store_project_row red = {.name = "red", .quota_instances = -1, .quota_vcpus_milli = -1,
	                                .quota_memory_mb = -1, .created_us = 2};
	struct store_user_row alice = {.name = "alice", .project = "blue", .role = "member",
	                               .password_hash = "pbkdf2-sha256$1$00$00", .created_us = 3};
	struct store_user_row bob = {.name = "bob", .project = "red", .role = "reader", .created_us = 4};
	struct store_user_row eve = {.name = "eve", .project = "red", .role = "root", .created_us = 5};
	struct store_user_row ghost = {.name = "ghost", .project = "nowhere", .role = "reader", .created_us = 5};
	struct store_token_row t1 = {.id = "0000000000000001", .user = "alice", .expires_us = 0, .created_us = 6};
	struct store_token_row t2 = {.id = "0000000000000002", .user = "bob", .expires_us = 99, .created_us = 7};
	struct store_token_row t3 = {.id = "0000000000000003", .user = "bob", .created_us = 8};
	struct tenancy_seen t;
	if (!s)
		return;
	snprintf(t1.hash, sizeof t1.hash, "%064d", 1);
	snprintf(t2.hash, sizeof t2.hash, "%064d", 2);
	snprintf(t3.hash, sizeof t3.hash, "%064d", 1); /* t1's hash again */
	CHECK_EQ_INT(store_project_insert(s, &blue), 0);
	CHECK_EQ_INT(store_project_insert(s, &red), 0);
	CHECK_EQ_INT(store_project_insert(s, &red), STORE_TAKEN);
	CHECK_EQ_INT(store_user_insert(s, &alice), 0);
	CHECK_EQ_INT(store_user_insert(s, &bob), 0);
	CHECK_EQ_INT(store_user_insert(s, &alice), STORE_TAKEN);
	CHECK_EQ_INT(store_user_insert(s, &eve), -1);   /* no such role: a failure, not a taken name */
	CHECK_EQ_INT(store_user_insert(s, &ghost), -1); /* no such project */
	CHECK_EQ_INT(store_token_insert(s, &t1), 0);
	CHECK_EQ_INT(store_token_insert(s, &t2), 0);
	CHECK_EQ_INT(store_token_insert(s, &t3), -1);   /* hashes are unique */
	CHECK_EQ_INT(store_token_revoke(s, t2.id), 0);
	t = tenancy_load(s);
	CHECK(t.projects == 2 && t.users == 2 && t.tokens == 2 && t.revoked == 1);
	CHECK_EQ_INT(store_project_delete(s, "red"), 0); /* bob and his token go with it */
	t = tenancy_load(s);
	CHECK(t.projects == 1 && t.users == 1 && t.tokens == 1 && t.revoked == 0);
	CHECK_STR(t.last_user_project, "blue");
	CHECK_STR(t.last_password, "pbkdf2-sha256$1$00$00");
	CHECK_EQ_INT(store_user_delete(s, "alice"), 0);
	t = tenancy_load(s);
	CHECK(t.projects == 1 && t.users == 0 && t.tokens == 0);
	store_close(s);
}

/* Node identity (schema 6): join tokens and credentials round-trip with their fields ("" as
 * ""), one credential per node id, a taken id refused, a revocation kept. */
struct secrets_seen {
	int joins, nodes, revoked;
	struct store_node_secret_row cred;
};

static void count_secret(void *arg, const struct store_node_secret_row *r)
{
	struct secrets_seen *t = arg;
	if (strcmp(r->kind, "join") == 0) {
		t->joins++;
		CHECK_STR(r->node_id, "");
		CHECK_STR(r->join_id, "");
	} else {
		t->nodes++;
		if (r->hash[0])
			t->cred = *r;
	}
	t->revoked += r->revoked;
}

static void test_node_secrets(void)
{
	fresh_dir();
	struct store *s = open_ok();
	struct store_node_secret_row join = {.id = "00000000000000a1", .kind = "join", .expires_us = 99, .created_us = 1};
	struct store_node_secret_row cred = {.id = "00000000000000b1", .kind = "node", .node_id = "aaaaaaaaaaaaaaaa",
	                                     .join_id = "00000000000000a1", .created_us = 2};
	struct store_node_secret_row again = cred, cut = {.id = "00000000000000c1", .kind = "node",
	                                                  .node_id = "bbbbbbbbbbbbbbbb", .revoked = true,
	                                                  .created_us = 3};
	struct secrets_seen t = {0};
	if (!s)
		return;
	snprintf(join.hash, sizeof join.hash, "%064d", 1);
	snprintf(cred.hash, sizeof cred.hash, "%064d", 2);
	snprintf(again.id, sizeof again.id, "00000000000000b2"); /* a second credential of the same node */
	CHECK_EQ_INT(store_node_secret_insert(s, &join), 0);
	CHECK_EQ_INT(store_node_secret_insert(s, &cred), 0);
	CHECK_EQ_INT(store_node_secret_insert(s, &again), -1);
	CHECK_EQ_INT(store_node_secret_insert(s, &join), -1); /* a taken id */
	CHECK_EQ_INT(store_node_secret_insert(s, &cut), 0);   /* revoked, no hash */
	CHECK_EQ_INT(store_node_secret_revoke(s, join.id), 0);
	store_close(s);
	if (!(s = open_ok()))
		return;
	CHECK_EQ_INT(store_node_secrets_load(s, count_secret, &t), 0);
	CHECK(t.joins == 1 && t.nodes == 2 && t.revoked == 2);
	CHECK_STR(t.cred.hash, cred.hash);
	CHECK_STR(t.cred.node_id, "aaaaaaaaaaaaaaaa");
	CHECK_STR(t.cred.join_id, "00000000000000a1");
	CHECK(!t.cred.revoked && t.cred.created_us == 2 && t.cred.expires_us == 0);
	store_close(s);
}

/* A store at schema 5 (before node identity, runs and pools) moves to the present schema at
 * open, keeping its tenancy. */
static void test_migration_from_v5(void)
{
	struct store *s;
	struct store_project_row green = {.name = "green", .quota_instances = -1, .quota_vcpus_milli = -1,
	                                  .quota_memory_mb = -1, .created_us = 1};
	struct store_node_secret_row join = {.id = "00000000000000a1", .kind = "join", .created_us = 1};
	struct tenancy_seen t;
	struct secrets_seen n = {0};
	fresh_dir();
	if (!(s = open_ok()))
		return;
	CHECK_EQ_INT(store_project_insert(s, &green), 0);
	store_close(s);
	CHECK_EQ_INT(db_exec("DROP TABLE node_secrets; DROP TABLE pools"), 0);
	CHECK_EQ_INT(db_exec("ALTER TABLE instances DROP COLUMN run"), 0);
	CHECK_EQ_INT(schema_version_set(5), 0);
	if (!(s = open_ok()))
		return;
	CHECK_EQ_INT(schema_version_on_disk(), backend()->schema_version);
	t = tenancy_load(s);
	CHECK(t.projects == 1);
	snprintf(join.hash, sizeof join.hash, "%064d", 1);
	CHECK_EQ_INT(store_node_secret_insert(s, &join), 0);
	CHECK_EQ_INT(store_node_secrets_load(s, count_secret, &n), 0);
	CHECK_EQ_INT(n.joins, 1);
	store_close(s);
}

/* A PostgreSQL store at schema 4 (before tenancy) is migrated to 5 at open: its image is
 * the admin project's, and projects can be written. */
static void test_pg_migration_from_v4(void)
{
	struct store *s;
	struct loaded_images l = {.n = 0};
	struct store_project_row green = {.name = "green", .quota_instances = -1, .quota_vcpus_milli = -1,
	                                  .quota_memory_mb = -1, .created_us = 1};
	struct tenancy_seen t;
	fresh_dir();
	CHECK_EQ_INT(db_exec("CREATE TABLE schema_version (version INTEGER NOT NULL);"
	                     "INSERT INTO schema_version VALUES (4);"
	                     "CREATE TABLE instances (id TEXT COLLATE \"C\" PRIMARY KEY, name TEXT NOT NULL UNIQUE,"
	                     " driver TEXT NOT NULL, spec TEXT NOT NULL, state TEXT NOT NULL,"
	                     " stop_requested INTEGER NOT NULL DEFAULT 0, node_id TEXT, exit_code INTEGER, error TEXT,"
	                     " trace TEXT, created_us BIGINT NOT NULL, updated_us BIGINT NOT NULL, image TEXT,"
	                     " vcpus_milli BIGINT NOT NULL DEFAULT 0, memory_mb BIGINT NOT NULL DEFAULT 0);"
	                     "CREATE INDEX instances_created ON instances (created_us, id);"
	                     "CREATE TABLE nodes (id TEXT PRIMARY KEY, name TEXT NOT NULL, info TEXT NOT NULL,"
	                     " updated_us BIGINT NOT NULL);"
	                     "CREATE TABLE idempotency (key TEXT PRIMARY KEY, digest TEXT NOT NULL,"
	                     " instance_ids TEXT NOT NULL, created_us BIGINT NOT NULL);"
	                     "CREATE TABLE images (name TEXT PRIMARY KEY, kernel TEXT NOT NULL, kernel_size BIGINT NOT NULL,"
	                     " initrd TEXT, initrd_size BIGINT, cmdline TEXT, created_us BIGINT NOT NULL,"
	                     " xen_type TEXT CHECK (xen_type IN ('pv', 'pvh')));"
	                     "INSERT INTO images VALUES ('old', 'sha256:"
	                     "0000000000000000000000000000000000000000000000000000000000000001', 5, NULL, NULL,"
	                     " 'console=hvc0', 7, 'pv');"),
	             0);
	if (!(s = open_ok()))
		return;
	CHECK_EQ_INT(schema_version_on_disk(), store_pg_ops.schema_version);
	CHECK_EQ_INT(store_images_load(s, collect_image, &l), 0);
	CHECK_EQ_INT(l.n, 1);
	if (l.n == 1) {
		CHECK_STR(l.img[0].name, "old");
		CHECK_STR(l.img[0].xen_type, "pv");
		CHECK_STR(l.img[0].project, "admin");
	}
	CHECK_EQ_INT(store_project_insert(s, &green), 0);
	t = tenancy_load(s);
	CHECK(t.projects == 1 && t.users == 0 && t.tokens == 0);
	store_close(s);
}

/* A store file that is not a database is refused at open. */
static void test_garbage_file_refused(void)
{
	fresh_dir();
	static const char junk[] = "this is not an SQLite database, just some text that is long enough"
	                           " to fill the header and then some more text for good measure......";
	CHECK_EQ_INT(fs_write_atomic(dbpath, junk, sizeof junk - 1, false), 0);
	struct store *s = NULL;
	char err[512] = "";
	CHECK_EQ_INT(store_open(tmpdir, &s, err, sizeof err), -1);
	CHECK(err[0] != '\0');
}

/* ---- PostgreSQL's own ---- */

/* Two cores on one database: both open it (the schema is made once), each sees what the
 * other committed, and a name or an idempotency key taken through one is taken for both. */
static void test_pg_two_stores_one_database(void)
{
	fresh_dir();
	struct store *s1 = open_ok(), *s2 = open_ok();
	struct store_instance_row a = make_row("aaaaaaaaaaaaaaaa", "shared", 10);
	struct store_instance_row b = make_row("bbbbbbbbbbbbbbbb", "shared", 20);
	struct store_idem_row k = {.n_ids = 1, .created_us = 1}, got;
	char ids[1][MV_ID_LEN + 1] = {"aaaaaaaaaaaaaaaa"};
	bool found = false;
	if (s1 && s2) {
		k.ids = ids;
		snprintf(k.key, sizeof k.key, "once");
		snprintf(k.digest, sizeof k.digest, "d1");
		CHECK_EQ_INT(store_instance_insert(s1, &a), 0);
		CHECK_EQ_INT(count_instances(s2), 1);
		CHECK_EQ_INT(store_instance_insert(s2, &b), STORE_TAKEN); /* the name is taken, by the other core */
		CHECK_EQ_INT(store_idem_put(s2, &k), 0);
		CHECK_EQ_INT(store_idem_put(s1, &k), STORE_TAKEN); /* the first answer stays, whichever core gave it */
		CHECK_EQ_INT(store_idem_get(s1, "once", &got, &found), 0);
		CHECK(found && got.n_ids == 1);
		store_idem_row_free(&got);
		/* a transaction is seen by the other core only once committed */
		CHECK_EQ_INT(store_begin(s1), 0);
		CHECK_EQ_INT(store_instance_delete(s1, a.id), 0);
		CHECK_EQ_INT(count_instances(s2), 1);
		CHECK_EQ_INT(store_commit(s1), 0);
		CHECK_EQ_INT(count_instances(s2), 0);
	}
	store_close(s1);
	store_close(s2);
	spec_free(&a.spec);
	spec_free(&b.spec);
}

/* The server drops the store's connection (a restart, a failover): the next call outside a
 * transaction connects again and succeeds; inside one, the call fails, the rollback ends it,
 * and the store goes on. */
static void test_pg_reconnects(void)
{
	fresh_dir();
	struct store *s = open_ok();
	struct store_instance_row a = make_row("aaaaaaaaaaaaaaaa", "before", 10);
	struct store_instance_row b = make_row("bbbbbbbbbbbbbbbb", "after", 20);
	static const char kill_sql[] = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
	                               " WHERE application_name = 'microvim-core'";
	if (s) {
		CHECK_EQ_INT(store_instance_insert(s, &a), 0);
		CHECK_EQ_INT(db_exec(kill_sql), 0);
		CHECK_EQ_INT(count_instances(s), 1); /* reconnected */
		/* a transaction's BEGIN goes with its first statement: a connection lost before
		 * it is made again; one lost after takes the transaction with it */
		CHECK_EQ_INT(store_begin(s), 0);
		CHECK_EQ_INT(db_exec(kill_sql), 0);
		CHECK_EQ_INT(store_instance_insert(s, &b), 0);
		CHECK_EQ_INT(db_exec(kill_sql), 0);
		CHECK_EQ_INT(store_instance_update(s, b.id, &b.status), -1);
		store_rollback(s);
		CHECK_EQ_INT(store_instance_insert(s, &b), 0);
		CHECK_EQ_INT(count_instances(s), 2);
	}
	store_close(s);
	spec_free(&a.spec);
	spec_free(&b.spec);
}

/* PostgreSQL: the updates of no-flush units (node reports) and the commit of a turn of them
 * are sent without waiting (store_pg.c, "writes that can be learnt again"). They are
 * committed and ordered before what follows; a lost connection loses them with a warning,
 * never the process (they are learnt again), and the next write reconnects. */
static void test_reports_not_awaited(void)
{
	struct event_base *base = event_base_new();
	fresh_dir();
	struct store *s = open_ok();
	struct store_instance_row a = make_row("aaaaaaaaaaaaaaaa", "ra", 10);
	struct store_instance_row b = make_row("bbbbbbbbbbbbbbbb", "rb", 20);
	static const char kill_sql[] = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
	                               " WHERE application_name = 'microvim-core'";
	uint64_t commits, units, flushed;
	char v[2][64];
	if (!s || !base)
		goto out;
	CHECK_EQ_INT(store_instance_insert(s, &a), 0);
	CHECK_EQ_INT(store_instance_insert(s, &b), 0);
	store_group_start(s, base);
	/* a turn of two reports, one a unit of two writes: one commit, not waited for */
	store_no_flush_next(s);
	a.status.state = INST_RUNNING;
	CHECK_EQ_INT(store_instance_update(s, a.id, &a.status), 0);
	store_no_flush_next(s);
	CHECK_EQ_INT(store_begin(s), 0);
	b.status.state = INST_STARTING;
	CHECK_EQ_INT(store_instance_update(s, b.id, &b.status), 0);
	b.status.state = INST_RUNNING;
	CHECK_EQ_INT(store_instance_update(s, b.id, &b.status), 0);
	CHECK_EQ_INT(store_commit(s), 0);
	event_base_loop(base, EVLOOP_NONBLOCK);
	store_group_counts(s, &commits, &units, &flushed);
	CHECK(commits == 1 && units == 2 && flushed == 0);
	/* the next use of the connection reads the answers; then the rows are there */
	CHECK_EQ_INT(count_instances(s), 2);
	CHECK(db_row("SELECT state FROM instances WHERE id = 'aaaaaaaaaaaaaaaa'", v, 1) == 0 && strcmp(v[0], "running") == 0);
	CHECK(db_row("SELECT state FROM instances WHERE id = 'bbbbbbbbbbbbbbbb'", v, 1) == 0 && strcmp(v[0], "running") == 0);
	/* a report, then a durable write in the same turn: both in one commit, awaited */
	store_no_flush_next(s);
	a.status.state = INST_STOPPED;
	CHECK_EQ_INT(store_instance_update(s, a.id, &a.status), 0);
	b.status.stop_requested = true;
	CHECK_EQ_INT(store_instance_update(s, b.id, &b.status), 0);
	event_base_loop(base, EVLOOP_NONBLOCK);
	store_group_counts(s, &commits, &units, &flushed);
	CHECK(commits == 2 && units == 4 && flushed == 1);
	CHECK(db_row("SELECT state, stop_requested FROM instances WHERE id = 'aaaaaaaaaaaaaaaa'", v, 1) == 0 &&
	      strcmp(v[0], "stopped") == 0);
	CHECK(db_row("SELECT stop_requested FROM instances WHERE id = 'bbbbbbbbbbbbbbbb'", v, 1) == 0 &&
	      strcmp(v[0], "1") == 0);
	if (on_pg) {
		/* the connection dies before a turn of reports: they are lost with a warning, the
		 * process goes on, and the next write is made on a new connection */
		CHECK_EQ_INT(db_exec(kill_sql), 0);
		store_no_flush_next(s);
		a.status.state = INST_RUNNING;
		CHECK_EQ_INT(store_instance_update(s, a.id, &a.status), 0);
		event_base_loop(base, EVLOOP_NONBLOCK);
		b.status.stop_requested = false;
		CHECK_EQ_INT(store_instance_update(s, b.id, &b.status), 0);
		event_base_loop(base, EVLOOP_NONBLOCK);
		CHECK(db_row("SELECT stop_requested FROM instances WHERE id = 'bbbbbbbbbbbbbbbb'", v, 1) == 0 &&
		      strcmp(v[0], "0") == 0);
		/* dies with reports in the pipeline, then a durable write comes in the same turn: the
		 * reports are dropped, the durable write is made on a new connection */
		store_no_flush_next(s);
		CHECK_EQ_INT(store_instance_update(s, a.id, &a.status), 0);
		CHECK_EQ_INT(db_exec(kill_sql), 0);
		struct store_instance_row c = make_row("cccccccccccccccc", "rc", 30);
		CHECK_EQ_INT(store_instance_insert(s, &c), 0);
		event_base_loop(base, EVLOOP_NONBLOCK);
		CHECK(db_row("SELECT name FROM instances WHERE id = 'cccccccccccccccc'", v, 1) == 0 && strcmp(v[0], "rc") == 0);
		spec_free(&c.spec);
	}
out:
	store_close(s);
	if (base)
		event_base_free(base);
	spec_free(&a.spec);
	spec_free(&b.spec);
}

/* One core per database: the second claim is refused with words (after its bounded wait),
 * the first one's close frees it. SQLite has nothing to claim. */
static void test_claim(void)
{
	fresh_dir();
	struct store *s1 = open_ok(), *s2 = open_ok();
	char err[512] = "";
	if (s1 && s2) {
		CHECK_EQ_INT(store_claim(s1, err, sizeof err), 0);
		if (on_pg) {
			CHECK_EQ_INT(store_claim(s2, err, sizeof err), -1);
			CHECK(strstr(err, "another core") != NULL);
			store_close(s1);
			s1 = NULL;
		}
		CHECK_EQ_INT(store_claim(s2, err, sizeof err), 0);
	}
	store_close(s1);
	store_close(s2);
}

/* ---- running on both backends ---- */

static char pg_dir[256]; /* the server this test started ("" when given one or none) */

/* PostgreSQL for the _pg runs: the one MICROVIM_TEST_PG_URL names, else a private server.
 * false (having said why) when the binaries are not installed. */
static bool pg_setup(void)
{
	const char *url = getenv("MICROVIM_TEST_PG_URL");
	char line[1024];
	FILE *p;
	if (url && url[0]) {
		snprintf(pg_url, sizeof pg_url, "%s", url);
		return true;
	}
	if (system("python3 tests/integration/pgserver.py available") != 0) {
		printf("skip: the PostgreSQL runs: no PostgreSQL binaries (scripts/install-deps installs postgresql)\n");
		return false;
	}
	if (!(p = popen("python3 tests/integration/pgserver.py start", "r")))
		return true; /* pg_url stays "": test_pg_server_started fails */
	if (fgets(line, sizeof line, p) && sscanf(line, "%511s %255s", pg_url, pg_dir) != 2)
		pg_url[0] = pg_dir[0] = '\0';
	if (pclose(p) != 0)
		pg_url[0] = '\0';
	return true;
}

static void pg_teardown(void)
{
	char cmd[512];
	if (!pg_dir[0])
		return;
	snprintf(cmd, sizeof cmd, "python3 tests/integration/pgserver.py stop '%s'", pg_dir);
	if (system(cmd) != 0)
		fprintf(stderr, "test_store: stopping PostgreSQL in %s failed\n", pg_dir);
}

/* A name another core wrote a moment ago (a row this core's memory does not know yet) is a
 * 409 name_conflict from each catalog, not a 500: the store's STORE_TAKEN, told apart from
 * a failure. */
static void test_catalog_names_taken(void)
{
	fresh_dir();
	struct store *s = open_ok();
	struct tenants *t = NULL;
	struct images *im = NULL;
	struct pools *p = NULL;
	struct mv_error e;
	char err[256];
	const struct pool *pl;
	if (!s)
		return;
	if (!(t = tenants_open(s, err, sizeof err)) || !(im = images_open(s, tmpdir, err, sizeof err)) ||
	    !(p = pools_open(s, err, sizeof err))) {
		fprintf(stderr, "  %s\n", err);
		unit_current_failed = 1;
		goto out;
	}
	struct authz_quota none = {.instances = -1, .vcpus_milli = -1, .memory_mb = -1};
	CHECK_EQ_INT(tenants_project_create(t, "p0", &none, &e), 0);
	/* the other core's rows */
	struct store_project_row pr = {.name = "p1", .quota_instances = -1, .quota_vcpus_milli = -1,
	                               .quota_memory_mb = -1, .created_us = 1};
	struct store_user_row ur = {.name = "u1", .project = "p0", .role = "member", .created_us = 1};
	struct store_image_row ir = {.name = "i2", .project = "admin", .kernel_size = 1, .created_us = 1};
	snprintf(ir.kernel, sizeof ir.kernel, "sha256:%064d", 2);
	CHECK_EQ_INT(store_project_insert(s, &pr), 0);
	CHECK_EQ_INT(store_user_insert(s, &ur), 0);
	CHECK_EQ_INT(store_image_insert(s, &ir), 0);
	/* this core's creates of the same names */
	CHECK_EQ_INT(tenants_project_create(t, "p1", &none, &e), -1);
	CHECK(e.status == 409 && strcmp(e.code, "name_conflict") == 0 && strstr(e.message, "another core"));
	CHECK_EQ_INT(tenants_user_create(t, "u1", "p0", ROLE_MEMBER, NULL, &e), -1);
	CHECK(e.status == 409 && strcmp(e.code, "name_conflict") == 0);
	struct image img = {.name = "i2", .kernel_size = 1};
	snprintf(img.kernel, sizeof img.kernel, "sha256:%064d", 3);
	CHECK_EQ_INT(images_add(im, &img, &e), -1);
	CHECK(e.status == 409 && strcmp(e.code, "name_conflict") == 0);
	CHECK(images_get(im, "i2") == NULL); /* memory unchanged: it learns the other's on reload */
	/* a pool: of an image this core knows, its name written by the other core */
	struct image i1 = {.name = "i1", .kernel_size = 1};
	snprintf(i1.kernel, sizeof i1.kernel, "sha256:%064d", 1);
	CHECK_EQ_INT(images_add(im, &i1, &e), 0);
	json_t *body = json_pack("{s:s, s:s, s:s, s:{s:s}, s:i}", "name", "w1", "driver", "qemu", "image", "i1", "ready",
	                         "serial", "READY", "size", 1);
	json_t *spec = json_pack("{s:s, s:s}", "name", "w1", "driver", "qemu");
	struct store_pool_row wr = {.name = "w1", .size = 1, .spec = spec, .created_us = 1};
	CHECK_EQ_INT(store_pool_insert(s, &wr), 0);
	CHECK_EQ_INT(pools_create(p, body, im, &pl, &e), -1);
	CHECK(e.status == 409 && strcmp(e.code, "name_conflict") == 0);
	json_decref(spec);
	json_decref(body);
out:
	pools_close(p);
	images_close(im);
	tenants_close(t);
	store_close(s);
}

static void test_pg_server_started(void) { CHECK(pg_url[0] != '\0'); }

/* test_X_pg: test_X on PostgreSQL. */
#define ON_PG(test) \
	static void test##_pg(void) { on_pg = true; test(); on_pg = false; }
ON_PG(test_open_fresh)
ON_PG(test_instances_all_fields)
ON_PG(test_queried_columns)
ON_PG(test_delete)
ON_PG(test_name_unique)
ON_PG(test_transactions)
ON_PG(test_group_commit)
ON_PG(test_deferred_units)
ON_PG(test_pages)
ON_PG(test_nodes)
ON_PG(test_images)
ON_PG(test_idempotency)
ON_PG(test_pools)
ON_PG(test_reopen_keeps_data)
ON_PG(test_newer_schema_refused)
ON_PG(test_tenancy)
ON_PG(test_catalog_names_taken)
ON_PG(test_node_secrets)
ON_PG(test_migration_from_v5)
ON_PG(test_pg_migration_from_v4)
ON_PG(test_pg_two_stores_one_database)
ON_PG(test_pg_reconnects)
ON_PG(test_reports_not_awaited)
ON_PG(test_claim)

int main(void)
{
	RUN(test_open_fresh);
	RUN(test_instances_all_fields);
	RUN(test_queried_columns);
	RUN(test_delete);
	RUN(test_name_unique);
	RUN(test_transactions);
	RUN(test_group_commit);
	RUN(test_deferred_units);
	RUN(test_reports_not_awaited);
	RUN(test_pages);
	RUN(test_load_reads_ahead);
	RUN(test_nodes);
	RUN(test_images);
	RUN(test_idempotency);
	RUN(test_pools);
	RUN(test_pools_version_follows_nodes_only_with_pools);
	RUN(test_reopen_keeps_data);
	RUN(test_newer_schema_refused);
	RUN(test_migration_from_v2);
	RUN(test_migration_from_v3_image_xen_type);
	RUN(test_tenancy);
	RUN(test_catalog_names_taken);
	RUN(test_node_secrets);
	RUN(test_migration_from_v5);
	RUN(test_garbage_file_refused);
	RUN(test_claim);
	if (pg_setup()) {
		RUN(test_pg_server_started);
		if (pg_url[0]) {
			RUN(test_open_fresh_pg);
			RUN(test_instances_all_fields_pg);
			RUN(test_queried_columns_pg);
			RUN(test_delete_pg);
			RUN(test_name_unique_pg);
			RUN(test_transactions_pg);
			RUN(test_group_commit_pg);
			RUN(test_deferred_units_pg);
			RUN(test_pages_pg);
			RUN(test_nodes_pg);
			RUN(test_images_pg);
			RUN(test_idempotency_pg);
			RUN(test_pools_pg);
			RUN(test_reopen_keeps_data_pg);
			RUN(test_newer_schema_refused_pg);
			RUN(test_tenancy_pg);
			RUN(test_catalog_names_taken_pg);
			RUN(test_node_secrets_pg);
			RUN(test_migration_from_v5_pg);
			RUN(test_pg_migration_from_v4_pg);
			RUN(test_pg_two_stores_one_database_pg);
			RUN(test_pg_reconnects_pg);
			RUN(test_reports_not_awaited_pg);
			RUN(test_claim_pg);
		}
		pg_teardown();
	}
	if (tmpdir[0])
		fs_remove_tree(tmpdir);
	UNIT_END();
}
