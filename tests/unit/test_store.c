/* test_store — the SQLite store on a temp dir: instances (every field), delete, the name
 * UNIQUE constraint, transactions, nodes, idempotency keys, reopen, schema versions.
 * Failures the test provokes on purpose make the store log a warning on stderr. */
#include <jansson.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fs.h"
#include "core/internal.h"
#include "core/store.h"
#include "unit.h"

static char tmpdir[64];
static char dbpath[128];

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
}

static struct store *open_ok(void)
{
	struct store *s = NULL;
	char err[256] = "";
	if (store_open(dbpath, &s, err, sizeof err) != 0) {
		fprintf(stderr, "  store_open %s: %s\n", dbpath, err);
		unit_current_failed = 1;
		return NULL;
	}
	return s;
}

static struct instance *make_instance(const char *id, const char *name, int64_t created)
{
	struct instance *in = calloc(1, sizeof *in);
	if (!in)
		abort();
	snprintf(in->id, sizeof in->id, "%s", id);
	snprintf(in->name, sizeof in->name, "%s", name);
	snprintf(in->driver, sizeof in->driver, "exec");
	json_t *spec = json_pack("{s:s, s:s, s:{s:s, s:[s]}, s:{s:f, s:I}}", "name", name, "driver", "exec",
	                         "config", "command", "/bin/sleep", "args", "60", "resources", "vcpus", 0.25,
	                         "memory_mb", (json_int_t)64);
	CHECK(instance_set_spec(in, spec) == 0);
	json_decref(spec);
	in->vcpus_milli = 250;
	in->memory_mb = 64;
	in->state = INST_PENDING;
	in->created_wall_us = created;
	in->updated_wall_us = created + 1;
	return in;
}

/* Collects loaded instances. */
struct loaded {
	struct instance *in[64];
	int n;
};

static void collect(void *arg, struct instance *in)
{
	struct loaded *l = arg;
	if (l->n < 64)
		l->in[l->n++] = in;
	else
		instance_free(in);
}

static void loaded_free(struct loaded *l)
{
	for (int i = 0; i < l->n; i++)
		instance_free(l->in[i]);
	l->n = 0;
}

static int count_instances(struct store *s)
{
	struct loaded l = {.n = 0};
	if (store_load_instances(s, collect, &l) != 0)
		return -1;
	int n = l.n;
	loaded_free(&l);
	return n;
}

static struct instance *find(struct loaded *l, const char *id)
{
	for (int i = 0; i < l->n; i++)
		if (strcmp(l->in[i]->id, id) == 0)
			return l->in[i];
	return NULL;
}

static void test_open_fresh(void)
{
	fresh_dir();
	struct store *s = open_ok();
	CHECK(s != NULL);
	if (!s)
		return;
	CHECK_EQ_INT(count_instances(s), 0);
	store_close(s);

	/* The schema version is recorded. */
	sqlite3 *db;
	sqlite3_stmt *st;
	CHECK_EQ_INT(sqlite3_open(dbpath, &db), SQLITE_OK);
	CHECK_EQ_INT(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL), SQLITE_OK);
	CHECK_EQ_INT(sqlite3_step(st), SQLITE_ROW);
	CHECK_EQ_INT(sqlite3_column_int(st, 0), STORE_SCHEMA_VERSION);
	sqlite3_finalize(st);
	sqlite3_close(db);

	/* A path whose directory does not exist: refused with words. */
	char bad[200], err[256] = "";
	snprintf(bad, sizeof bad, "%s/missing/dir/core.db", tmpdir);
	s = (struct store *)1;
	CHECK_EQ_INT(store_open(bad, &s, err, sizeof err), -1);
	CHECK(err[0] != '\0');
	CHECK(strstr(err, bad) != NULL);
}

static void test_instances_all_fields(void)
{
	fresh_dir();
	struct store *s = open_ok();
	if (!s)
		return;
	struct instance *a = make_instance("0123456789abcdef", "fw1", 1000);
	struct instance *b = make_instance("fedcba9876543210", "fw2", 2000);

	/* a: running on a node, with a trace (boot included) */
	a->state = INST_RUNNING;
	snprintf(a->node_id, sizeof a->node_id, "00000000000000aa");
	a->has_trace = true;
	for (int p = 0; p < PHASE_COUNT; p++)
		a->trace.phase_us[p] = 1000 * p + p + 1; /* odd microseconds */
	a->trace.has_boot = true;
	a->trace.total_us = 123456789;
	a->stop_requested = true;

	/* b: failed with an exit code and an error, no trace, no node */
	b->state = INST_FAILED;
	b->has_exit_code = true;
	b->exit_code = -9;
	b->error = strdup("exec: \"/bin/nope\": No such file or directory — ünïcödé");

	CHECK_EQ_INT(store_put_instance(s, a), 0);
	CHECK_EQ_INT(store_put_instance(s, b), 0);

	struct loaded l = {.n = 0};
	CHECK_EQ_INT(store_load_instances(s, collect, &l), 0);
	CHECK_EQ_INT(l.n, 2);
	/* ordered by creation time */
	if (l.n == 2) {
		CHECK_STR(l.in[0]->id, a->id);
		CHECK_STR(l.in[1]->id, b->id);
	}
	struct instance *la = find(&l, a->id), *lb = find(&l, b->id);
	CHECK(la != NULL && lb != NULL);
	if (la && lb) {
		CHECK_STR(la->name, "fw1");
		CHECK_STR(la->driver, "exec");
		json_t *sa = instance_spec(a), *sla = instance_spec(la);
		CHECK(json_equal(sla, sa));
		CHECK_EQ_INT(la->vcpus_milli, 250);
		CHECK_EQ_INT(la->memory_mb, 64);
		json_decref(sa);
		json_decref(sla);
		CHECK_EQ_INT(la->vcpus_milli, 250);
		CHECK_EQ_INT(la->memory_mb, 64);
		CHECK_EQ_INT(la->state, INST_RUNNING);
		CHECK(la->stop_requested);
		CHECK_STR(la->node_id, "00000000000000aa");
		CHECK(!la->has_exit_code);
		CHECK(la->error == NULL);
		CHECK(la->has_trace);
		for (int p = 0; p < PHASE_COUNT; p++)
			CHECK_EQ_INT(la->trace.phase_us[p], a->trace.phase_us[p]);
		CHECK(la->trace.has_boot);
		CHECK_EQ_INT(la->trace.total_us, 123456789);
		CHECK_EQ_INT(la->created_wall_us, 1000);
		CHECK_EQ_INT(la->updated_wall_us, 1001);
		CHECK(la->waiters == NULL && la->n_waiters == 0);

		CHECK_STR(lb->name, "fw2");
		CHECK_EQ_INT(lb->state, INST_FAILED);
		CHECK(!lb->stop_requested);
		CHECK_STR(lb->node_id, "");
		CHECK(lb->has_exit_code);
		CHECK_EQ_INT(lb->exit_code, -9);
		CHECK(lb->error != NULL && strcmp(lb->error, b->error) == 0);
		CHECK(!lb->has_trace);
		CHECK_EQ_INT(lb->created_wall_us, 2000);
	}
	loaded_free(&l);

	/* exit code 0 is a value, not "none" */
	b->exit_code = 0;
	b->state = INST_EXITED;
	CHECK_EQ_INT(store_put_instance(s, b), 0);
	CHECK_EQ_INT(store_load_instances(s, collect, &l), 0);
	lb = find(&l, b->id);
	CHECK(lb && lb->has_exit_code && lb->exit_code == 0 && lb->state == INST_EXITED);
	loaded_free(&l);

	/* every state survives */
	for (int st = 0; st < INST_STATE_COUNT; st++) {
		a->state = (enum inst_state)st;
		CHECK_EQ_INT(store_put_instance(s, a), 0);
		CHECK_EQ_INT(store_load_instances(s, collect, &l), 0);
		la = find(&l, a->id);
		CHECK(la && (int)la->state == st);
		loaded_free(&l);
	}

	instance_free(a);
	instance_free(b);
	store_close(s);
}

static void test_update_and_delete(void)
{
	fresh_dir();
	struct store *s = open_ok();
	if (!s)
		return;
	struct instance *a = make_instance("aaaaaaaaaaaaaaaa", "one", 10);
	struct instance *b = make_instance("bbbbbbbbbbbbbbbb", "two", 20);
	struct loaded l = {.n = 0};

	CHECK_EQ_INT(store_put_instance(s, a), 0);
	CHECK_EQ_INT(store_put_instance(s, b), 0);
	/* writing the same id again updates it in place */
	a->state = INST_SCHEDULED;
	snprintf(a->node_id, sizeof a->node_id, "1111111111111111");
	a->updated_wall_us = 99;
	CHECK_EQ_INT(store_put_instance(s, a), 0);
	CHECK_EQ_INT(store_load_instances(s, collect, &l), 0);
	CHECK_EQ_INT(l.n, 2);
	struct instance *la = find(&l, a->id);
	CHECK(la && la->state == INST_SCHEDULED && strcmp(la->node_id, "1111111111111111") == 0 &&
	      la->updated_wall_us == 99);
	loaded_free(&l);

	/* the node id can go back to none */
	a->node_id[0] = '\0';
	CHECK_EQ_INT(store_put_instance(s, a), 0);
	CHECK_EQ_INT(store_load_instances(s, collect, &l), 0);
	la = find(&l, a->id);
	CHECK(la && la->node_id[0] == '\0');
	loaded_free(&l);

	CHECK_EQ_INT(store_delete_instance(s, a->id), 0);
	CHECK_EQ_INT(store_load_instances(s, collect, &l), 0);
	CHECK_EQ_INT(l.n, 1);
	CHECK(find(&l, a->id) == NULL && find(&l, b->id) != NULL);
	loaded_free(&l);
	/* deleting what is not there is not an error */
	CHECK_EQ_INT(store_delete_instance(s, a->id), 0);
	CHECK_EQ_INT(store_delete_instance(s, "0000000000000000"), 0);

	/* the name is free again once deleted */
	struct instance *c = make_instance("cccccccccccccccc", "one", 30);
	CHECK_EQ_INT(store_put_instance(s, c), 0);
	CHECK_EQ_INT(count_instances(s), 2);

	instance_free(a);
	instance_free(b);
	instance_free(c);
	store_close(s);
}

/* Two instances may not share a name: the second write fails and the first is intact. */
static void test_name_unique(void)
{
	fresh_dir();
	struct store *s = open_ok();
	if (!s)
		return;
	struct instance *a = make_instance("aaaaaaaaaaaaaaaa", "same", 10);
	struct instance *b = make_instance("bbbbbbbbbbbbbbbb", "same", 20);
	struct instance *c = make_instance("cccccccccccccccc", "other", 30);
	struct loaded l = {.n = 0};

	a->state = INST_RUNNING;
	CHECK_EQ_INT(store_put_instance(s, a), 0);
	int rc = store_put_instance(s, b);
	if (rc != -1)
		fprintf(stderr, "  a second instance named \"same\" was written (rc %d)\n", rc);
	CHECK_EQ_INT(rc, -1);

	CHECK_EQ_INT(store_load_instances(s, collect, &l), 0);
	CHECK_EQ_INT(l.n, 1);
	struct instance *la = find(&l, a->id);
	if (!la)
		fprintf(stderr, "  instance %s (\"same\") is gone from the store\n", a->id);
	CHECK(la != NULL);
	CHECK(la && la->state == INST_RUNNING);
	CHECK(find(&l, b->id) == NULL);
	loaded_free(&l);

	/* the store is still usable */
	CHECK_EQ_INT(store_put_instance(s, c), 0);
	CHECK_EQ_INT(store_begin(s), 0);
	CHECK_EQ_INT(store_delete_instance(s, c->id), 0);
	CHECK_EQ_INT(store_commit(s), 0);
	CHECK_EQ_INT(count_instances(s), 1);

	/* inside a transaction: the failed write, then rollback, leaves the earlier state */
	CHECK_EQ_INT(store_begin(s), 0);
	CHECK_EQ_INT(store_put_instance(s, c), 0);
	CHECK_EQ_INT(store_put_instance(s, b), -1);
	store_rollback(s);
	CHECK_EQ_INT(store_load_instances(s, collect, &l), 0);
	CHECK_EQ_INT(l.n, 1);
	CHECK(find(&l, a->id) != NULL);
	loaded_free(&l);
	CHECK_EQ_INT(store_begin(s), 0); /* no transaction left open */
	CHECK_EQ_INT(store_commit(s), 0);

	instance_free(a);
	instance_free(b);
	instance_free(c);
	store_close(s);
}

static void test_transactions(void)
{
	fresh_dir();
	struct store *s = open_ok();
	if (!s)
		return;
	struct instance *in[5];
	for (int i = 0; i < 5; i++) {
		char id[17], name[16];
		snprintf(id, sizeof id, "%016x", i + 1);
		snprintf(name, sizeof name, "t-%d", i + 1);
		in[i] = make_instance(id, name, 100 + i);
	}

	/* begin + writes + rollback: nothing */
	CHECK_EQ_INT(store_begin(s), 0);
	for (int i = 0; i < 3; i++)
		CHECK_EQ_INT(store_put_instance(s, in[i]), 0);
	store_rollback(s);
	CHECK_EQ_INT(count_instances(s), 0);

	/* a rollback also undoes deletes */
	CHECK_EQ_INT(store_put_instance(s, in[0]), 0);
	CHECK_EQ_INT(store_begin(s), 0);
	CHECK_EQ_INT(store_delete_instance(s, in[0]->id), 0);
	store_rollback(s);
	CHECK_EQ_INT(count_instances(s), 1);

	/* begin + writes + commit: all (a `count` request) */
	CHECK_EQ_INT(store_begin(s), 0);
	for (int i = 1; i < 5; i++)
		CHECK_EQ_INT(store_put_instance(s, in[i]), 0);
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
	CHECK_EQ_INT(store_delete_instance(s, in[4]->id), 0);
	store_rollback(s);
	store_close(s);
	s = open_ok();
	if (s) {
		CHECK_EQ_INT(count_instances(s), 5);
		store_close(s);
	}
	for (int i = 0; i < 5; i++)
		instance_free(in[i]);
}

struct loaded_nodes {
	struct node *n[16];
	int count;
};

static void collect_node(void *arg, struct node *n)
{
	struct loaded_nodes *l = arg;
	if (l->count < 16)
		l->n[l->count++] = n;
	else
		node_free(n);
}

static void nodes_free(struct loaded_nodes *l)
{
	for (int i = 0; i < l->count; i++)
		node_free(l->n[i]);
	l->count = 0;
}

static void test_nodes(void)
{
	fresh_dir();
	struct store *s = open_ok();
	if (!s)
		return;
	struct node n = {0};
	struct loaded_nodes l = {.count = 0};

	snprintf(n.id, sizeof n.id, "00000000000000aa");
	snprintf(n.name, sizeof n.name, "host-1");
	snprintf(n.address, sizeof n.address, "10.0.0.7:4651");
	snprintf(n.token, sizeof n.token, "secret-token-not-stored");
	n.drivers = json_pack("{s:{s:s, s:[s, s]}}", "exec", "version", "1", "allow", "/bin/sleep", "/bin/true");
	n.labels = json_pack("{s:s}", "rack", "r1");
	n.cpus = 8;
	n.memory_mb = 32768;
	n.ready = true;
	CHECK_EQ_INT(store_put_node(s, &n), 0);

	CHECK_EQ_INT(store_load_nodes(s, collect_node, &l), 0);
	CHECK_EQ_INT(l.count, 1);
	if (l.count == 1) {
		struct node *g = l.n[0];
		CHECK_STR(g->id, n.id);
		CHECK_STR(g->name, "host-1");
		CHECK_STR(g->address, "10.0.0.7:4651");
		CHECK(json_equal(g->drivers, n.drivers));
		CHECK(json_equal(g->labels, n.labels));
		CHECK_EQ_INT(g->cpus, 8);
		CHECK_EQ_INT(g->memory_mb, 32768);
		CHECK(!g->ready); /* restored as down until it registers again */
		CHECK_STR(g->token, "");
	}
	nodes_free(&l);

	/* re-registering with new facts replaces the record */
	json_object_set_new(n.labels, "zone", json_string("b"));
	n.cpus = 16;
	snprintf(n.name, sizeof n.name, "host-1b");
	CHECK_EQ_INT(store_put_node(s, &n), 0);
	struct node m = n;
	snprintf(m.id, sizeof m.id, "00000000000000bb");
	snprintf(m.name, sizeof m.name, "host-2");
	CHECK_EQ_INT(store_put_node(s, &m), 0);
	CHECK_EQ_INT(store_load_nodes(s, collect_node, &l), 0);
	CHECK_EQ_INT(l.count, 2);
	for (int i = 0; i < l.count; i++) {
		if (strcmp(l.n[i]->id, n.id) == 0) {
			CHECK_EQ_INT(l.n[i]->cpus, 16);
			CHECK_STR(l.n[i]->name, "host-1b");
			CHECK_STR(json_string_value(json_object_get(l.n[i]->labels, "zone")), "b");
		} else {
			CHECK_STR(l.n[i]->id, "00000000000000bb");
		}
	}
	nodes_free(&l);

	/* empty labels and drivers come back as objects */
	struct node e = {0};
	snprintf(e.id, sizeof e.id, "00000000000000cc");
	snprintf(e.name, sizeof e.name, "bare");
	e.drivers = json_object();
	e.labels = json_object();
	CHECK_EQ_INT(store_put_node(s, &e), 0);
	CHECK_EQ_INT(store_load_nodes(s, collect_node, &l), 0);
	CHECK_EQ_INT(l.count, 3);
	for (int i = 0; i < l.count; i++) {
		CHECK(json_is_object(l.n[i]->drivers));
		CHECK(json_is_object(l.n[i]->labels));
	}
	nodes_free(&l);

	json_decref(n.drivers);
	json_decref(n.labels);
	json_decref(e.drivers);
	json_decref(e.labels);
	store_close(s);
}

static void test_idempotency(void)
{
	fresh_dir();
	struct store *s = open_ok();
	if (!s)
		return;
	char *digest = (char *)1, *ids = (char *)1;

	CHECK_EQ_INT(store_idem_get(s, "k1", &digest, &ids), 0);
	CHECK(digest == NULL && ids == NULL);

	CHECK_EQ_INT(store_idem_put(s, "k1", "sha256:abc", "[\"0123456789abcdef\"]"), 0);
	CHECK_EQ_INT(store_idem_get(s, "k1", &digest, &ids), 0);
	CHECK(digest && strcmp(digest, "sha256:abc") == 0);
	CHECK(ids && strcmp(ids, "[\"0123456789abcdef\"]") == 0);
	free(digest);
	free(ids);

	/* keys are distinct, case-sensitive */
	CHECK_EQ_INT(store_idem_get(s, "K1", &digest, &ids), 0);
	CHECK(digest == NULL && ids == NULL);

	/* the first answer stays: a second put of the same key fails, the store goes on */
	CHECK_EQ_INT(store_idem_put(s, "k1", "sha256:other", "[]"), -1);
	CHECK_EQ_INT(store_idem_get(s, "k1", &digest, &ids), 0);
	CHECK(digest && strcmp(digest, "sha256:abc") == 0);
	free(digest);
	free(ids);
	CHECK_EQ_INT(store_idem_put(s, "k2 with spaces and ünicode", "d2", "[]"), 0);
	CHECK_EQ_INT(store_idem_get(s, "k2 with spaces and ünicode", &digest, &ids), 0);
	CHECK(digest && strcmp(digest, "d2") == 0 && ids && strcmp(ids, "[]") == 0);
	free(digest);
	free(ids);

	/* inside a rolled-back transaction, nothing */
	CHECK_EQ_INT(store_begin(s), 0);
	CHECK_EQ_INT(store_idem_put(s, "k3", "d3", "[]"), 0);
	store_rollback(s);
	CHECK_EQ_INT(store_idem_get(s, "k3", &digest, &ids), 0);
	CHECK(digest == NULL && ids == NULL);
	store_close(s);
}

static void test_reopen_keeps_data(void)
{
	fresh_dir();
	struct store *s = open_ok();
	if (!s)
		return;
	struct instance *a = make_instance("aaaaaaaaaaaaaaaa", "persist", 5);
	struct node n = {0};
	a->state = INST_RUNNING;
	a->has_trace = true;
	a->trace.phase_us[PHASE_SPAWN] = 1777;
	a->trace.total_us = 2001;
	snprintf(n.id, sizeof n.id, "00000000000000aa");
	snprintf(n.name, sizeof n.name, "h");
	n.drivers = json_object();
	n.labels = json_object();
	CHECK_EQ_INT(store_put_instance(s, a), 0);
	CHECK_EQ_INT(store_put_node(s, &n), 0);
	CHECK_EQ_INT(store_idem_put(s, "key", "dig", "[\"aaaaaaaaaaaaaaaa\"]"), 0);
	store_close(s);

	for (int round = 0; round < 2; round++) { /* and reopening twice migrates nothing again */
		s = open_ok();
		if (!s)
			break;
		struct loaded l = {.n = 0};
		struct loaded_nodes ln = {.count = 0};
		char *digest = NULL, *ids = NULL;
		CHECK_EQ_INT(store_load_instances(s, collect, &l), 0);
		CHECK_EQ_INT(l.n, 1);
		if (l.n == 1) {
			CHECK_STR(l.in[0]->name, "persist");
			CHECK_EQ_INT(l.in[0]->state, INST_RUNNING);
			CHECK(l.in[0]->has_trace);
			CHECK_EQ_INT(l.in[0]->trace.phase_us[PHASE_SPAWN], 1777);
			CHECK_EQ_INT(l.in[0]->trace.total_us, 2001);
			CHECK(!l.in[0]->trace.has_boot);
		}
		loaded_free(&l);
		CHECK_EQ_INT(store_load_nodes(s, collect_node, &ln), 0);
		CHECK_EQ_INT(ln.count, 1);
		nodes_free(&ln);
		CHECK_EQ_INT(store_idem_get(s, "key", &digest, &ids), 0);
		CHECK(digest && strcmp(digest, "dig") == 0);
		free(digest);
		free(ids);
		store_close(s);
	}
	json_decref(n.drivers);
	json_decref(n.labels);
	instance_free(a);
}

static void collect_image(void *arg, struct image *img)
{
	struct image **out = arg;
	if (*out) {
		free((*out)->cmdline);
		free(*out);
	}
	*out = img;
}

/* Version 3 gives images a Xen guest type: a version 2 store (images without it) is
 * migrated, its images keep loading (no type: the driver's default), new ones keep theirs. */
static void test_image_xen_type_migration(void)
{
	struct image img = {0}, *got = NULL;
	struct store *s;
	sqlite3 *db;

	fresh_dir();
	CHECK_EQ_INT(sqlite3_open(dbpath, &db), SQLITE_OK);
	CHECK_EQ_INT(sqlite3_exec(db,
	                          "CREATE TABLE images (name TEXT PRIMARY KEY, kernel TEXT NOT NULL, kernel_size INTEGER "
	                          "NOT NULL, initrd TEXT, initrd_size INTEGER, cmdline TEXT, created_us INTEGER NOT NULL);"
	                          "INSERT INTO images VALUES ('old', 'sha256:aa', 5, NULL, NULL, NULL, 1);"
	                          "PRAGMA user_version = 2;",
	                          NULL, NULL, NULL),
	             SQLITE_OK);
	sqlite3_close(db);
	/* a v2 store has the tables of version 1 too; make them as version 1 did */
	CHECK_EQ_INT(sqlite3_open(dbpath, &db), SQLITE_OK);
	CHECK_EQ_INT(sqlite3_exec(db,
	                          "CREATE TABLE instances (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, driver TEXT NOT "
	                          "NULL, spec TEXT NOT NULL, state TEXT NOT NULL, stop_requested INTEGER NOT NULL DEFAULT 0,"
	                          " node_id TEXT, exit_code INTEGER, error TEXT, trace TEXT, created_us INTEGER NOT NULL,"
	                          " updated_us INTEGER NOT NULL);"
	                          "CREATE TABLE nodes (id TEXT PRIMARY KEY, name TEXT NOT NULL, info TEXT NOT NULL,"
	                          " updated_us INTEGER NOT NULL);"
	                          "CREATE TABLE idempotency (key TEXT PRIMARY KEY, digest TEXT NOT NULL,"
	                          " instance_ids TEXT NOT NULL, created_us INTEGER NOT NULL);",
	                          NULL, NULL, NULL),
	             SQLITE_OK);
	sqlite3_close(db);

	if (!(s = open_ok()))
		return;
	CHECK_EQ_INT(store_load_images(s, collect_image, &got), 0);
	CHECK(got && strcmp(got->name, "old") == 0 && got->xen_type[0] == '\0');
	collect_image(&got, NULL); /* frees it */
	CHECK_EQ_INT(store_delete_image(s, "old"), 0);
	snprintf(img.name, sizeof img.name, "clickos");
	snprintf(img.kernel, sizeof img.kernel, "sha256:bb");
	snprintf(img.xen_type, sizeof img.xen_type, "pv");
	CHECK_EQ_INT(store_put_image(s, &img), 0);
	store_close(s);
	if (!(s = open_ok()))
		return;
	CHECK_EQ_INT(store_load_images(s, collect_image, &got), 0);
	CHECK(got && strcmp(got->name, "clickos") == 0 && strcmp(got->xen_type, "pv") == 0);
	collect_image(&got, NULL);
	store_close(s);
}

static void test_newer_schema_refused(void)
{
	fresh_dir();
	struct store *s = open_ok();
	if (!s)
		return;
	struct instance *a = make_instance("aaaaaaaaaaaaaaaa", "keep", 5);
	CHECK_EQ_INT(store_put_instance(s, a), 0);
	store_close(s);

	sqlite3 *db;
	CHECK_EQ_INT(sqlite3_open(dbpath, &db), SQLITE_OK);
	CHECK_EQ_INT(sqlite3_exec(db, "PRAGMA user_version=99", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);

	char err[512] = "";
	s = (struct store *)1;
	CHECK_EQ_INT(store_open(dbpath, &s, err, sizeof err), -1);
	CHECK(strstr(err, "99") != NULL);
	CHECK(strstr(err, "schema version") != NULL);
	CHECK(strstr(err, "newer") != NULL);
	{
		char known[16];
		snprintf(known, sizeof known, "%d", STORE_SCHEMA_VERSION);
		CHECK(strstr(err, known) != NULL);
	}

	/* and it did not touch the data: set the version back and everything is there */
	CHECK_EQ_INT(sqlite3_open(dbpath, &db), SQLITE_OK);
	char sql[64];
	snprintf(sql, sizeof sql, "PRAGMA user_version=%d", STORE_SCHEMA_VERSION);
	CHECK_EQ_INT(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	s = open_ok();
	if (s) {
		CHECK_EQ_INT(count_instances(s), 1);
		store_close(s);
	}
	instance_free(a);
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
	CHECK_EQ_INT(store_open(dbpath, &s, err, sizeof err), -1);
	CHECK(err[0] != '\0');
}

int main(void)
{
	RUN(test_open_fresh);
	RUN(test_instances_all_fields);
	RUN(test_update_and_delete);
	RUN(test_name_unique);
	RUN(test_transactions);
	RUN(test_nodes);
	RUN(test_idempotency);
	RUN(test_reopen_keeps_data);
	RUN(test_newer_schema_refused);
	RUN(test_image_xen_type_migration);
	RUN(test_garbage_file_refused);
	if (tmpdir[0])
		fs_remove_tree(tmpdir);
	UNIT_END();
}
