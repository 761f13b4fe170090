/* test_cluster — the core's model driven without HTTP, as any front end drives it: nodes
 * register, instances are created, placed, dispatched, reported, stopped and removed, and
 * the faults of tests/integration/test_faults.py happen in between: the core killed and
 * reopened on its store at each step, a node killed and registering again with or without
 * its instances, a lost "running" report with both killed, a partition with and without
 * "restart": "on-lost" (and its heal before the instance was placed again), a shutdown
 * with clients waiting. A store wrapped to fail on demand (a second backend behind the
 * same interface) shows that a refused write leaves memory as it was. */
#include <event2/event.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/fs.h"
#include "common/log.h"
#include "core/cluster.h"
#include "core/images.h"
#include "core/metrics.h"
#include "core/store.h"
#include "core/stores.h"
#include "drivers/drivers.h"
#include "unit.h"

static char tmpdir[64];

/* ---- a store that fails on demand, around the SQLite one ---- */

struct failing_store {
	struct store base;
	struct store *inner;
	int fail_commits; /* the next N commits fail (and roll back) */
	int fail_writes;  /* the next N instance updates and deletes fail */
	int taken_insert; /* the Nth instance insert from now finds its name taken (another core's) */
	bool taken_key;   /* the next idempotency key put finds the key taken */
};

static struct store *inner(struct store *s) { return ((struct failing_store *)s)->inner; }
static struct failing_store *fs(struct store *s) { return (struct failing_store *)s; }

static void f_close(struct store *s)
{
	store_close(inner(s));
	free(s);
}
static int f_begin(struct store *s) { return store_begin(inner(s)); }
static int f_commit(struct store *s)
{
	if (fs(s)->fail_commits > 0) {
		fs(s)->fail_commits--;
		store_rollback(inner(s));
		return -1;
	}
	return store_commit(inner(s));
}
static void f_rollback(struct store *s) { store_rollback(inner(s)); }
static bool write_fails(struct store *s)
{
	if (fs(s)->fail_writes <= 0)
		return false;
	fs(s)->fail_writes--;
	return true;
}
static int f_insert(struct store *s, const struct store_instance_row *r)
{
	if (fs(s)->taken_insert > 0 && --fs(s)->taken_insert == 0)
		return STORE_TAKEN;
	return store_instance_insert(inner(s), r);
}
static int f_update(struct store *s, const char *id, const struct store_instance_status *st)
{
	return write_fails(s) ? -1 : store_instance_update(inner(s), id, st);
}
static int f_delete(struct store *s, const char *id) { return write_fails(s) ? -1 : store_instance_delete(inner(s), id); }
static int f_page(struct store *s, const struct store_cursor *after, size_t limit, store_instance_fn *fn, void *arg,
                  struct store_cursor *last, size_t *got)
{
	return inner(s)->ops->instances_page(inner(s), after, limit, fn, arg, last, got);
}
static int f_node_put(struct store *s, const struct store_node_row *r) { return store_node_put(inner(s), r); }
static int f_nodes_load(struct store *s, store_node_fn *fn, void *arg) { return store_nodes_load(inner(s), fn, arg); }
static int f_image_insert(struct store *s, const struct store_image_row *r) { return store_image_insert(inner(s), r); }
static int f_image_delete(struct store *s, const char *name) { return store_image_delete(inner(s), name); }
static int f_images_load(struct store *s, store_image_fn *fn, void *arg) { return store_images_load(inner(s), fn, arg); }
static int f_idem_get(struct store *s, const char *k, struct store_idem_row *out, bool *found)
{
	return store_idem_get(inner(s), k, out, found);
}
static int f_idem_put(struct store *s, const struct store_idem_row *r)
{
	if (fs(s)->taken_key) {
		fs(s)->taken_key = false;
		return STORE_TAKEN;
	}
	return store_idem_put(inner(s), r);
}

static const struct store_ops failing_ops = {
	.name = "failing", .schema_version = 1, .close = f_close, .begin = f_begin, .commit = f_commit,
	.rollback = f_rollback, .instance_insert = f_insert, .instance_update = f_update, .instance_delete = f_delete,
	.instances_page = f_page, .node_put = f_node_put, .nodes_load = f_nodes_load, .image_insert = f_image_insert,
	.image_delete = f_image_delete, .images_load = f_images_load, .idem_get = f_idem_get, .idem_put = f_idem_put,
};

/* ---- a core without HTTP ---- */

struct world {
	struct event_base *base;
	struct failing_store *store;
	struct images *images;
	struct metrics *metrics;
	struct cluster *c;
	int wakes, events;
	int64_t max_inflight;
	int heartbeat_rate_max;
};

static void on_wake(void *arg, UNUSED struct node *n) { ((struct world *)arg)->wakes++; }
static void on_instance(void *arg, UNUSED const struct instance *in) { ((struct world *)arg)->events++; }
static void on_node(UNUSED void *arg, UNUSED const struct node *n, UNUSED const char *what) {}

/* Opens (or reopens: a core restarted after kill -9) the core on the test's data dir. */
static void world_open(struct world *w)
{
	struct cluster_options o = {.cpu_ratio = 16, .policy = SCHED_BINPACK, .heartbeat_timeout_s = 15,
	                            .max_inflight = w->max_inflight, .heartbeat_rate_max = w->heartbeat_rate_max};
	struct cluster_hooks h = {.arg = w, .node_wake = on_wake, .instance_event = on_instance, .node_event = on_node};
	char err[256];
	if (!w->base)
		w->base = event_base_new();
	w->store = calloc(1, sizeof *w->store);
	w->store->base.ops = &failing_ops;
	if (store_open(tmpdir, &w->store->inner, err, sizeof err) < 0 ||
	    !(w->images = images_open(&w->store->base, tmpdir, err, sizeof err))) {
		fprintf(stderr, "  cannot open the store: %s\n", err);
		exit(2);
	}
	w->metrics = metrics_new();
	if (!(w->c = cluster_create(w->base, &w->store->base, w->images, w->metrics, &o, &h, err, sizeof err))) {
		fprintf(stderr, "  cluster_create: %s\n", err);
		exit(2);
	}
}

/* kill -9 of the core: its memory goes; what is stored stays. */
static void world_crash(struct world *w)
{
	cluster_destroy(w->c);
	images_close(w->images);
	store_close(&w->store->base);
	metrics_free(w->metrics);
	w->c = NULL;
}

static void world_fresh(struct world *w)
{
	if (tmpdir[0])
		fs_remove_tree(tmpdir);
	snprintf(tmpdir, sizeof tmpdir, "/tmp/mv-test-cluster-XXXXXX");
	if (!mkdtemp(tmpdir))
		exit(2);
	memset(w, 0, sizeof *w);
	world_open(w);
}

static void world_close(struct world *w)
{
	world_crash(w);
	event_base_free(w->base);
}

/* A node offering exec of /bin/sleep, 2 CPUs (32 vCPUs at the ratio), with these alive. */
static struct node *reg(struct world *w, const char *id, const char *name, const char *const *alive)
{
	struct wire_register r = {.cpus = 2, .memory_mb = 4096};
	struct mv_error err;
	struct node *n = NULL;
	int k = 0;
	snprintf(r.id, sizeof r.id, "%s", id);
	snprintf(r.name, sizeof r.name, "%s", name);
	r.drivers = json_pack("{s:{s:s, s:[s]}}", "exec", "version", "test", "allow", "/bin/sleep");
	r.labels = json_object();
	r.bridges = json_array();
	r.run_dir = json_string("/run/microvim/test");
	while (alive && alive[k])
		k++;
	r.alive = calloc((size_t)k + 1, sizeof *r.alive);
	for (int i = 0; i < k; i++)
		snprintf(r.alive[i], sizeof r.alive[i], "%s", alive[i]);
	r.n_alive = (size_t)k;
	if (cluster_node_register(w->c, &r, &n, &err) < 0) {
		fprintf(stderr, "  register %s: %s\n", name, err.message);
		unit_current_failed = 1;
	}
	wire_register_free(&r);
	return n;
}

/* cluster_instances_create, its answer taken at once (no group commit here: done is called
 * before it returns, which this checks). */
struct created_now {
	bool called, replayed;
	struct instance **insts;
	int n;
	struct mv_error err;
	int rc;
};

static void on_created(void *arg, struct instance *const *insts, int n, bool replayed, const struct mv_error *err)
{
	struct created_now *k = arg;
	k->called = true;
	k->replayed = replayed;
	k->rc = err ? -1 : 0;
	if (err) {
		k->err = *err;
		return; /* no instances: *out stays NULL, as the callers expect */
	}
	if (!(k->insts = calloc((size_t)n + 1, sizeof *k->insts)))
		abort();
	if (n > 0)
		memcpy(k->insts, insts, sizeof *insts * (size_t)n);
	k->n = n;
}

static int create_now(struct cluster *c, const struct cluster_create_req *r, struct instance ***out, int *n,
                      bool *replayed, struct mv_error *err)
{
	struct created_now k = {0};
	cluster_instances_create(c, r, on_created, &k);
	CHECK(k.called);
	*out = k.insts;
	*n = k.n;
	*replayed = k.replayed;
	if (k.rc < 0)
		*err = k.err;
	return k.rc;
}

/* Creates one instance from a request body (taken). */
static struct instance *create_from(struct world *w, json_t *body, struct mv_error *err)
{
	struct inst_spec spec;
	struct instance **out = NULL, *in = NULL;
	int n = 0;
	bool replayed;
	struct cluster_create_req r = {.spec = &spec, .accepted_us = 1};
	if (drv_spec_parse(&spec, body, SPEC_REQUEST, err) < 0)
		abort();
	json_decref(body);
	if (create_now(w->c, &r, &out, &n, &replayed, err) == 0 && n == 1)
		in = out[0];
	free(out);
	spec_free(&spec);
	return in;
}

static struct instance *create(struct world *w, const char *name, bool on_lost, struct mv_error *err)
{
	return create_from(w, json_pack("{s:s, s:s, s:{s:s, s:[s]}, s:s}", "name", name, "driver", "exec", "config",
	                                "command", "/bin/sleep", "args", "60", "restart", on_lost ? "on-lost" : "never"),
	                   err);
}

/* The assignments queued for n: "start:ID stop:ID ..." into buf; returns the last seq. */
struct taken {
	char text[2048];
	uint64_t last;
};

static void take_one(void *arg, uint64_t seq, enum node_op op, const char *id, UNUSED const struct inst_spec *spec,
                     UNUSED uint32_t run)
{
	struct taken *t = arg;
	size_t used = strlen(t->text);
	snprintf(t->text + used, sizeof t->text - used, "%s%s:%s", used ? " " : "", node_op_names[op], id);
	t->last = seq;
}

static struct taken take(struct world *w, struct node *n)
{
	struct taken t = {.text = ""};
	cluster_node_take(w->c, n, take_one, &t);
	cluster_node_ack(w->c, n, t.last); /* the next poll acknowledges them */
	return t;
}

static bool has(const struct taken *t, const char *op, const char *id)
{
	char want[64];
	snprintf(want, sizeof want, "%s:%s", op, id);
	return strstr(t->text, want) != NULL;
}

static int report_run(struct world *w, struct node *n, const char *id, enum inst_state st, bool timing, uint32_t run)
{
	struct wire_report r = {.state = st, .has_timing = timing, .run = run};
	struct mv_error err;
	snprintf(r.id, sizeof r.id, "%s", id);
	if (timing)
		r.timing = (struct node_timing){.prepare_us = 100, .spawn_us = 1000, .work_us = 1500};
	return cluster_node_reports(w->c, n, &r, 1, 1000000, &err);
}

static int report(struct world *w, struct node *n, const char *id, enum inst_state st, bool timing)
{
	return report_run(w, n, id, st, timing, 0);
}

static const char N1[] = "00000000000000a1", N2[] = "00000000000000a2";

/* ---- scenarios ---- */

static void test_a_life(void)
{
	struct world w;
	struct mv_error err;
	world_fresh(&w);
	struct node *n = reg(&w, N1, "n1", NULL);
	struct instance *in = create(&w, "fw", false, &err);
	CHECK(in != NULL);
	if (!in || !n)
		return world_close(&w);
	char id[MV_ID_LEN + 1];
	memcpy(id, in->id, sizeof id);
	CHECK_EQ_INT(in->state, INST_SCHEDULED);
	CHECK_STR(in->node_id, N1);
	CHECK_EQ_INT(n->vcpus_milli_used, 100);
	CHECK(w.wakes > 0);
	struct taken t = take(&w, n);
	CHECK(has(&t, "start", id));
	CHECK_EQ_INT(in->state, INST_STARTING); /* taken: dispatched */
	CHECK(in->marks.sent_us > 0);
	CHECK_EQ_INT(report(&w, n, id, INST_RUNNING, true), 0);
	CHECK_EQ_INT(in->state, INST_RUNNING);
	CHECK(in->has_trace);
	CHECK_EQ_INT(cluster_in_flight(w.c), 0);
	CHECK_EQ_INT(cluster_instance_stop(w.c, in, &err), 0);
	CHECK(in->stop_requested && in->state == INST_RUNNING);
	t = take(&w, n);
	CHECK(has(&t, "stop", id));
	CHECK_EQ_INT(cluster_instance_stop(w.c, in, &err), 0); /* a second DELETE: the same request */
	CHECK_EQ_INT(take(&w, n).text[0], '\0');
	CHECK_EQ_INT(report(&w, n, id, INST_STOPPED, false), 0);
	CHECK_EQ_INT(in->state, INST_STOPPED);
	CHECK_EQ_INT(n->vcpus_milli_used, 0);
	CHECK_EQ_INT(n->n_instances, 0);
	/* a stop of an ended instance is refused (the front end removes it instead) */
	CHECK_EQ_INT(cluster_instance_stop(w.c, in, &err), -1);
	CHECK_EQ_INT(err.status, 409);
	CHECK_EQ_INT(cluster_instance_remove(w.c, in, &err), 0);
	CHECK(cluster_instance(w.c, id) == NULL);
	t = take(&w, n);
	CHECK(has(&t, "purge", id));
	world_close(&w);
}

/* Started again and restarted: a new run on the same node, its resources held again (or
 * kept), a new trace; news of an earlier run ignored; refusals change nothing; a core
 * killed after storing a restart sends the new run's start again. */
static void test_start_again(void)
{
	struct world w;
	struct mv_error err;
	world_fresh(&w);
	struct node *n = reg(&w, N1, "n1", NULL);
	struct instance *in = create(&w, "fw", false, &err);
	char id[MV_ID_LEN + 1];
	if (!in || !n)
		return world_close(&w);
	memcpy(id, in->id, sizeof id);
	take(&w, n);
	CHECK_EQ_INT(report(&w, n, id, INST_RUNNING, true), 0);
	/* a start of a running instance: 409, nothing changes */
	CHECK_EQ_INT(cluster_instance_start(w.c, in, 1, &err), -1);
	CHECK_EQ_INT(err.status, 409);
	CHECK(strstr(err.message, "restart") != NULL);
	CHECK(in->state == INST_RUNNING && in->run == 0);
	CHECK_EQ_INT(cluster_instance_stop(w.c, in, &err), 0);
	take(&w, n);
	CHECK_EQ_INT(report(&w, n, id, INST_STOPPED, false), 0);
	CHECK_EQ_INT(n->vcpus_milli_used, 0);
	/* started again: scheduled on the same node, held again, a start of run 1 */
	CHECK_EQ_INT(cluster_instance_start(w.c, in, clock_mono_us(), &err), 0);
	CHECK(in->state == INST_SCHEDULED && in->run == 1 && !in->stop_requested && !in->has_trace);
	CHECK_STR(in->node_id, N1);
	CHECK_EQ_INT(n->vcpus_milli_used, 100);
	CHECK_EQ_INT(cluster_instance_start(w.c, in, 1, &err), -1); /* on its way already */
	CHECK_EQ_INT(err.status, 409);
	struct taken t = take(&w, n);
	CHECK(has(&t, "start", id));
	/* a late report of run 0 is old news */
	CHECK_EQ_INT(report_run(&w, n, id, INST_STOPPED, false, 0), 0);
	CHECK_EQ_INT(in->state, INST_STARTING);
	CHECK_EQ_INT(report_run(&w, n, id, INST_RUNNING, true, 1), 0);
	CHECK_EQ_INT(in->state, INST_RUNNING);
	CHECK(in->has_trace); /* the new run's, measured from the start request */
	/* restart: resources kept, run 2 */
	CHECK_EQ_INT(cluster_instance_restart(w.c, in, clock_mono_us(), &err), 0);
	CHECK(in->state == INST_SCHEDULED && in->run == 2);
	CHECK_EQ_INT(n->vcpus_milli_used, 100);
	CHECK_EQ_INT(n->n_instances, 1);
	/* the core is killed before the node took it: the record says run 2, scheduled */
	world_crash(&w);
	world_open(&w);
	in = cluster_instance(w.c, id);
	CHECK(in && in->state == INST_SCHEDULED && in->run == 2);
	const char *alive[] = {id, NULL};
	n = reg(&w, N1, "n1", alive); /* alive: run 1 still, on the node */
	if (!in || !n)
		return world_close(&w);
	t = take(&w, n);
	CHECK(has(&t, "start", id));
	CHECK_EQ_INT(n->vcpus_milli_used, 100);
	CHECK_EQ_INT(report_run(&w, n, id, INST_STOPPED, false, 1), 0); /* the old run's end */
	CHECK_EQ_INT(in->state, INST_STARTING);
	CHECK_EQ_INT(report_run(&w, n, id, INST_RUNNING, false, 2), 0);
	CHECK_EQ_INT(in->state, INST_RUNNING);
	/* a lost instance does not start again */
	world_crash(&w);
	world_open(&w);
	in = cluster_instance(w.c, id);
	n = cluster_node(w.c, N1);
	if (!in || !n)
		return world_close(&w);
	CHECK_EQ_INT(cluster_instance_restart(w.c, in, 1, &err), -1); /* its node is down */
	CHECK_EQ_INT(err.status, 409);
	CHECK_STR(err.code, "node_down");
	world_close(&w);
}

/* kill -9 of the core at each step; the node registers again with what it has alive. */
static void test_core_killed(void)
{
	struct world w;
	struct mv_error err;
	world_fresh(&w);
	struct node *n = reg(&w, N1, "n1", NULL);
	struct instance *a = create(&w, "a", false, &err), *b = create(&w, "b", false, &err);
	char ida[MV_ID_LEN + 1], idb[MV_ID_LEN + 1];
	if (!a || !b || !n)
		return world_close(&w);
	memcpy(ida, a->id, sizeof ida);
	memcpy(idb, b->id, sizeof idb);
	take(&w, n);
	CHECK_EQ_INT(report(&w, n, ida, INST_RUNNING, true), 0);
	/* a runs; b was taken (starting in memory, "scheduled" on disk) but its report is lost */
	world_crash(&w);
	world_open(&w);
	a = cluster_instance(w.c, ida);
	b = cluster_instance(w.c, idb);
	CHECK(a && a->state == INST_RUNNING && !a->marks.accepted_us);
	CHECK(b && b->state == INST_SCHEDULED);
	CHECK_EQ_INT(cluster_node_instance_records(w.c, N1), 2); /* loaded by node */
	n = cluster_node(w.c, N1);
	CHECK(n && !n->ready); /* down until it registers again */
	CHECK_EQ_INT(cluster_in_flight(w.c), 1);
	/* the node was killed too: it comes back with both alive */
	const char *alive[] = {ida, idb, NULL};
	n = reg(&w, N1, "n1", alive);
	if (!n)
		return world_close(&w);
	struct taken t = take(&w, n);
	CHECK(has(&t, "start", idb));  /* sent again: the node answers with where it stands */
	CHECK(!has(&t, "start", ida)); /* running: nothing to send */
	CHECK_EQ_INT(n->n_instances, 2);
	CHECK_EQ_INT(report(&w, n, idb, INST_RUNNING, false), 0);
	CHECK_EQ_INT(cluster_instance(w.c, idb)->state, INST_RUNNING);
	CHECK(!cluster_instance(w.c, idb)->has_trace); /* not an instantiation this core saw whole */
	world_close(&w);
}

/* kill -9 of a node: it registers again; what it no longer has is lost. */
static void test_node_killed(void)
{
	struct world w;
	struct mv_error err;
	world_fresh(&w);
	struct node *n = reg(&w, N1, "n1", NULL);
	struct instance *a = create(&w, "a", false, &err), *b = create(&w, "b", false, &err);
	if (!a || !b || !n)
		return world_close(&w);
	take(&w, n);
	report(&w, n, a->id, INST_RUNNING, true);
	report(&w, n, b->id, INST_RUNNING, true);
	const char *alive[] = {a->id, NULL};
	n = reg(&w, N1, "n1", alive);
	CHECK_EQ_INT(a->state, INST_RUNNING);
	CHECK_EQ_INT(b->state, INST_LOST);
	CHECK(b->error && strstr(b->error, "no longer has it"));
	CHECK_EQ_INT(n->n_instances, 1);
	CHECK_EQ_INT(n->vcpus_milli_used, 100);
	/* an instance the core knows nothing of, alive there: stopped */
	const char *stray[] = {a->id, "0123456789abcdef", NULL};
	n = reg(&w, N1, "n1", stray);
	struct taken t = take(&w, n);
	CHECK(has(&t, "stop", "0123456789abcdef"));
	CHECK(!has(&t, "stop", a->id));
	world_close(&w);
}

/* A partition: the node goes silent, its instances are lost, the on-lost one is placed
 * on the other node; when it heals, the moved copy is stopped and the other runs again. */
/* A revoked node (core/nodeauth.h) is down at once, with its token of the moment gone: its
 * instances are lost, an on-lost one placed on the other node; an exec instance boots no
 * blob, so the node may fetch none for it. */
static void test_node_revoked(void)
{
	struct world w;
	struct mv_error err;
	world_fresh(&w);
	struct node *n1 = reg(&w, N1, "n1", NULL);
	struct instance *a = create(&w, "a", true, &err), *b = create(&w, "b", false, &err);
	struct node *n2 = reg(&w, N2, "n2", NULL);
	if (!a || !b || !n1 || !n2)
		return world_close(&w);
	take(&w, n1);
	report(&w, n1, a->id, INST_RUNNING, true);
	report(&w, n1, b->id, INST_RUNNING, true);
	CHECK(n1->token[0] != '\0');
	CHECK(!cluster_node_uses_blob(w.c, N1, "sha256:0000000000000000000000000000000000000000000000000000000000000001"));
	CHECK_EQ_INT(cluster_node_revoke(w.c, n1), 2);
	CHECK(!n1->ready && n2->ready && n1->token[0] == '\0');
	CHECK_EQ_INT(b->state, INST_LOST);
	CHECK(b->error && strstr(b->error, "n1 was revoked"));
	CHECK_STR(a->node_id, N2); /* on-lost: placed again */
	CHECK_EQ_INT(n1->n_instances, 0);
	CHECK_EQ_INT(cluster_node_revoke(w.c, n1), 0); /* down already */
	world_close(&w);
}

static void test_partition(void)
{
	struct world w;
	struct mv_error err;
	world_fresh(&w);
	struct node *n1 = reg(&w, N1, "n1", NULL);
	struct instance *a = create(&w, "a", true, &err), *b = create(&w, "b", false, &err);
	struct node *n2 = reg(&w, N2, "n2", NULL);
	if (!a || !b || !n1 || !n2)
		return world_close(&w);
	CHECK_STR(a->node_id, N1); /* binpack: both on the first */
	CHECK_STR(b->node_id, N1);
	take(&w, n1);
	report(&w, n1, a->id, INST_RUNNING, true);
	report(&w, n1, b->id, INST_RUNNING, true);
	n1->last_heartbeat_mono_us = 0; /* silent since long ago */
	cluster_sweep(w.c, n2->last_heartbeat_mono_us + 1);
	CHECK(!n1->ready && n2->ready);
	CHECK_EQ_INT(a->state, INST_SCHEDULED); /* lost, then placed again */
	CHECK_STR(a->node_id, N2);
	CHECK_EQ_INT(cluster_node_instance_records(w.c, N2), 1);
	CHECK_EQ_INT(cluster_node_instance_records(w.c, N1), 1); /* b, lost there */
	CHECK_STR(a->lost_node, "");
	CHECK_EQ_INT(b->state, INST_LOST);
	CHECK(b->error && strstr(b->error, "stopped heartbeating"));
	CHECK_EQ_INT(n1->n_instances, 0);
	struct taken t = take(&w, n2);
	CHECK(has(&t, "start", a->id));
	report(&w, n2, a->id, INST_RUNNING, true);
	/* a late "running" of the cut-off node changes nothing (how an instance ended would:
	 * test_lifecycle walks that) */
	struct mv_error e2;
	struct wire_report late = {.state = INST_RUNNING};
	memcpy(late.id, b->id, sizeof late.id);
	CHECK_EQ_INT(cluster_node_reports(w.c, n1, &late, 1, 1, &e2), 0);
	CHECK_EQ_INT(b->state, INST_LOST);
	/* the heal: n1 registers with both alive */
	const char *alive[] = {a->id, b->id, NULL};
	n1 = reg(&w, N1, "n1", alive);
	t = take(&w, n1);
	CHECK(has(&t, "stop", a->id)); /* exactly one copy runs: n2's */
	CHECK_STR(a->node_id, N2);
	CHECK_EQ_INT(a->state, INST_RUNNING);
	CHECK_EQ_INT(b->state, INST_RUNNING); /* no restart: running again where it was */
	CHECK(b->error == NULL);
	CHECK_EQ_INT(n1->n_instances, 1);
	CHECK_EQ_INT(cluster_node_instance_records(w.c, N1), 1);
	CHECK_EQ_INT(cluster_node_instance_records(w.c, N2), 1);
	world_close(&w);
}

/* The partition healed before the on-lost instance could be placed again (no room
 * elsewhere): its old node keeps it. */
static void test_partition_heals_before_replaced(void)
{
	struct world w;
	struct mv_error err;
	world_fresh(&w);
	struct node *n1 = reg(&w, N1, "n1", NULL);
	struct instance *a = create(&w, "a", true, &err);
	if (!a || !n1)
		return world_close(&w);
	take(&w, n1);
	report(&w, n1, a->id, INST_RUNNING, true);
	n1->last_heartbeat_mono_us = 0;
	cluster_sweep(w.c, 100000000);
	CHECK_EQ_INT(a->state, INST_PENDING);
	CHECK_STR(a->lost_node, N1);
	CHECK_EQ_INT(cluster_node_instance_records(w.c, N1), 0); /* placed nowhere now */
	const char *alive[] = {a->id, NULL};
	n1 = reg(&w, N1, "n1", alive); /* found through the node's list: it is placed on none */
	CHECK_EQ_INT(a->state, INST_RUNNING);
	CHECK_STR(a->node_id, N1);
	CHECK_EQ_INT(n1->n_instances, 1);
	CHECK_EQ_INT(cluster_node_instance_records(w.c, N1), 1);
	struct taken t = take(&w, n1);
	CHECK(!has(&t, "stop", a->id) && !has(&t, "start", a->id));
	world_close(&w);
}

struct waited {
	int calls, n;
	char first[MV_ID_LEN + 1];
};

static void on_waited(void *arg, char (*ids)[MV_ID_LEN + 1], int n)
{
	struct waited *wt = arg;
	wt->calls++;
	wt->n = n;
	if (n > 0)
		memcpy(wt->first, ids[0], sizeof wt->first);
}

/* Clients waiting: answered when the state comes, or at shutdown (SIGTERM of the core). */
static void test_waiters(void)
{
	struct world w;
	struct mv_error err;
	struct waited w1 = {0}, w2 = {0};
	world_fresh(&w);
	struct node *n = reg(&w, N1, "n1", NULL);
	struct instance *a = create(&w, "a", false, &err);
	if (!a || !n)
		return world_close(&w);
	cluster_wait(w.c, &a, 1, WAIT_RUNNING, 30, on_waited, &w1);
	cluster_wait(w.c, &a, 1, WAIT_STOPPED, 30, on_waited, &w2);
	CHECK_EQ_INT(w1.calls, 0);
	take(&w, n);
	report(&w, n, a->id, INST_RUNNING, true);
	CHECK_EQ_INT(w1.calls, 1);
	CHECK_STR(w1.first, a->id);
	CHECK_EQ_INT(w2.calls, 0);
	cluster_drain(w.c); /* the core stops: every client gets its answer */
	CHECK_EQ_INT(w2.calls, 1);
	/* a wait already satisfied answers at once */
	struct waited w3 = {0};
	cluster_wait(w.c, &a, 1, WAIT_RUNNING, 30, on_waited, &w3);
	CHECK_EQ_INT(w3.calls, 1);
	world_close(&w);
}

/* A refused write leaves memory as it was; the retry then succeeds. */
static void test_store_refusals_change_nothing(void)
{
	struct world w;
	struct mv_error err;
	world_fresh(&w);
	struct node *n = reg(&w, N1, "n1", NULL);
	if (!n)
		return world_close(&w);
	/* a create whose transaction fails: nothing */
	w.store->fail_commits = 1;
	CHECK(create(&w, "a", false, &err) == NULL);
	CHECK_EQ_INT(err.status, 500);
	CHECK_EQ_INT(cluster_instance_count(w.c), 0);
	CHECK_EQ_INT(cluster_in_flight(w.c), 0);
	CHECK_EQ_INT(n->vcpus_milli_used, 0); /* its placement was undone with it */
	CHECK_EQ_INT(cluster_node_instance_records(w.c, N1), 0);
	CHECK_EQ_INT(take(&w, n).text[0], '\0');
	/* the leader writes a new record once, placed: no update follows its insert */
	w.store->fail_writes = 1;
	struct instance *a = create(&w, "a", false, &err);
	CHECK(a != NULL);
	if (!a)
		return world_close(&w);
	CHECK_EQ_INT(w.store->fail_writes, 1); /* no update was tried */
	w.store->fail_writes = 0;
	CHECK_EQ_INT(a->state, INST_SCHEDULED);
	CHECK_EQ_INT(n->vcpus_milli_used, 100);
	struct taken sent = take(&w, n);
	CHECK(has(&sent, "start", a->id));
	/* a report batch that cannot be stored: state, resources and trace as they were */
	w.store->fail_commits = 1;
	CHECK_EQ_INT(report(&w, n, a->id, INST_RUNNING, true), -1);
	CHECK_EQ_INT(a->state, INST_STARTING);
	CHECK(!a->has_trace);
	CHECK_EQ_INT(cluster_in_flight(w.c), 1);
	CHECK_EQ_INT(report(&w, n, a->id, INST_RUNNING, true), 0); /* the node reports again */
	CHECK_EQ_INT(a->state, INST_RUNNING);
	/* a stop that cannot be stored: not asked */
	w.store->fail_writes = 1;
	CHECK_EQ_INT(cluster_instance_stop(w.c, a, &err), -1);
	CHECK(!a->stop_requested);
	CHECK_EQ_INT(take(&w, n).text[0], '\0');
	/* an end that cannot be stored keeps the node's resources counted */
	w.store->fail_commits = 1;
	CHECK_EQ_INT(report(&w, n, a->id, INST_EXITED, false), -1);
	CHECK_EQ_INT(n->n_instances, 1);
	CHECK_EQ_INT(a->state, INST_RUNNING);
	world_close(&w);
}

/* Another core took a name (or an Idempotency-Key) at the same moment: the store says
 * STORE_TAKEN, and the create is a 409 (a key: a 503 to retry) that changed nothing, not a
 * 500 (store.h, "A taken key"): placements undone, the rows a batch wrote before deleted
 * again, no start sent. */
static void test_taken_by_another_core(void)
{
	struct world w;
	struct mv_error err;
	struct inst_spec spec;
	struct instance **out = NULL;
	int n = 0;
	bool replayed;
	world_fresh(&w);
	struct node *nd = reg(&w, N1, "n1", NULL);
	json_t *body = json_pack("{s:s, s:s, s:{s:s}, s:i}", "name", "b", "driver", "exec", "config", "command",
	                         "/bin/sleep", "count", 3);
	if (!nd || drv_spec_parse(&spec, body, SPEC_REQUEST, &err) < 0) {
		json_decref(body);
		return world_close(&w);
	}
	json_decref(body);
	/* one instance */
	w.store->taken_insert = 1;
	CHECK(create(&w, "a", false, &err) == NULL);
	CHECK_EQ_INT(err.status, 409);
	CHECK_STR(err.code, "name_conflict");
	CHECK(strstr(err.message, "instance named a ") != NULL);
	/* a batch whose second name is taken: the first's row is taken back */
	struct cluster_create_req r = {.spec = &spec, .accepted_us = 1};
	w.store->taken_insert = 2;
	CHECK_EQ_INT(create_now(w.c, &r, &out, &n, &replayed, &err), -1);
	free(out);
	CHECK_EQ_INT(err.status, 409);
	CHECK_STR(err.code, "name_conflict");
	/* the key, taken by a request in progress through another core */
	r.idem_key = "k-1";
	r.digest = "d";
	w.store->taken_key = true;
	CHECK_EQ_INT(create_now(w.c, &r, &out, &n, &replayed, &err), -1);
	free(out);
	CHECK_EQ_INT(err.status, 503);
	CHECK_STR(err.code, "idempotency_in_progress");
	/* nothing of them in memory, on the node, or in the store */
	CHECK_EQ_INT(cluster_instance_count(w.c), 0);
	CHECK_EQ_INT(cluster_in_flight(w.c), 0);
	CHECK_EQ_INT(nd->vcpus_milli_used, 0);
	CHECK_EQ_INT(take(&w, nd).text[0], '\0');
	world_crash(&w);
	world_open(&w);
	CHECK_EQ_INT(cluster_instance_count(w.c), 0);
	/* and the same creates go through once the names are free */
	nd = reg(&w, N1, "n1", NULL);
	CHECK_EQ_INT(create_now(w.c, &r, &out, &n, &replayed, &err), 0);
	CHECK(n == 3 && !replayed);
	free(out);
	CHECK(create(&w, "a", false, &err) != NULL);
	CHECK_EQ_INT(cluster_instance_count(w.c), 4);
	spec_free(&spec);
	world_close(&w);
}

static void test_idempotency_and_admission(void)
{
	struct world w;
	struct mv_error err;
	struct inst_spec spec;
	struct instance **out;
	int n;
	bool replayed;
	json_t *body = json_pack("{s:s, s:s, s:{s:s}}", "name", "k", "driver", "exec", "config", "command", "/bin/sleep");
	memset(&w, 0, sizeof w);
	w.max_inflight = 2;
	if (tmpdir[0])
		fs_remove_tree(tmpdir);
	snprintf(tmpdir, sizeof tmpdir, "/tmp/mv-test-cluster-XXXXXX");
	if (!mkdtemp(tmpdir))
		exit(2);
	world_open(&w);
	reg(&w, N1, "n1", NULL);
	CHECK_EQ_INT(drv_spec_parse(&spec, body, SPEC_REQUEST, &err), 0);
	struct cluster_create_req r = {.spec = &spec, .idem_key = "key-1", .digest = "d1", .accepted_us = 1};
	CHECK_EQ_INT(create_now(w.c, &r, &out, &n, &replayed, &err), 0);
	CHECK(!replayed && n == 1);
	char id[MV_ID_LEN + 1];
	memcpy(id, out[0]->id, sizeof id);
	free(out);
	/* the same key and body: the first answer, nothing new */
	CHECK_EQ_INT(create_now(w.c, &r, &out, &n, &replayed, &err), 0);
	CHECK(replayed && n == 1 && strcmp(out[0]->id, id) == 0);
	free(out);
	CHECK_EQ_INT(cluster_instance_count(w.c), 1);
	/* and after a restart of the core */
	world_crash(&w);
	world_open(&w);
	CHECK_EQ_INT(create_now(w.c, &r, &out, &n, &replayed, &err), 0);
	CHECK(replayed && n == 1 && strcmp(out[0]->id, id) == 0);
	free(out);
	/* the same key, another body */
	r.digest = "d2";
	CHECK_EQ_INT(create_now(w.c, &r, &out, &n, &replayed, &err), -1);
	CHECK_EQ_INT(err.status, 409);
	/* admission: 2 in flight at most (the first is still scheduled: its node is down) */
	r.idem_key = NULL;
	snprintf(spec.name, sizeof spec.name, "k2");
	CHECK_EQ_INT(create_now(w.c, &r, &out, &n, &replayed, &err), -1);
	CHECK_EQ_INT(err.status, 422); /* no node is ready: refused before it is stored */
	reg(&w, N1, "n1", NULL);
	CHECK_EQ_INT(create_now(w.c, &r, &out, &n, &replayed, &err), 0);
	free(out);
	snprintf(spec.name, sizeof spec.name, "k3");
	CHECK_EQ_INT(create_now(w.c, &r, &out, &n, &replayed, &err), -1);
	CHECK_EQ_INT(err.status, 503);
	CHECK_EQ_INT(cluster_refused_saturated(w.c), 1);
	spec_free(&spec);
	json_decref(body);
	world_close(&w);
}

/* The list comes in id order, from a cursor (which need not exist), bounded; what fn
 * skips does not count against the limit. */
static bool add_name(void *arg, const struct instance *in)
{
	strncat(arg, in->spec.name, 255 - strlen(arg));
	strncat(arg, " ", 255 - strlen(arg));
	return true;
}

static bool add_name_but_p0(void *arg, const struct instance *in)
{
	return strcmp(in->spec.name, "p0") != 0 && add_name(arg, in);
}

static int cmp_inst_id(const void *a, const void *b)
{
	return strcmp((*(struct instance *const *)a)->id, (*(struct instance *const *)b)->id);
}

static void test_list_pages(void)
{
	struct world w;
	struct mv_error err;
	char names[256] = "", want[256] = "", gone[MV_ID_LEN + 1];
	world_fresh(&w);
	reg(&w, N1, "n1", NULL);
	struct instance *in[4];
	const char *nm[4] = {"p0", "p1", "p2", "p3"};
	for (int i = 0; i < 4; i++)
		if (!(in[i] = create(&w, nm[i], false, &err)))
			return world_close(&w);
	struct instance *by_id[4];
	memcpy(by_id, in, sizeof by_id);
	qsort(by_id, 4, sizeof *by_id, cmp_inst_id);
	CHECK_EQ_INT(cluster_instances_list(w.c, -1, NULL, 2, add_name, names), 2);
	snprintf(want, sizeof want, "%s %s ", by_id[0]->spec.name, by_id[1]->spec.name);
	CHECK_STR(names, want);
	names[0] = '\0';
	CHECK_EQ_INT(cluster_instances_list(w.c, -1, by_id[1]->id, 10, add_name, names), 2);
	snprintf(want, sizeof want, "%s %s ", by_id[2]->spec.name, by_id[3]->spec.name);
	CHECK_STR(names, want);
	names[0] = '\0';
	CHECK_EQ_INT(cluster_instances_list(w.c, INST_RUNNING, NULL, 10, add_name, names), 0);
	CHECK_EQ_INT(cluster_instances_list(w.c, -1, NULL, 3, add_name_but_p0, names), 3);
	CHECK(strstr(names, "p0") == NULL);
	/* The last instance of a page removed: the next page starts where it was. */
	names[0] = '\0';
	snprintf(gone, sizeof gone, "%s", by_id[1]->id);
	struct node *n = cluster_node(w.c, N1);
	take(&w, n);
	CHECK_EQ_INT(report(&w, n, gone, INST_STOPPED, false), 0);
	CHECK_EQ_INT(cluster_instance_remove(w.c, by_id[1], &err), 0);
	CHECK(cluster_instance(w.c, gone) == NULL);
	CHECK_EQ_INT(cluster_instances_list(w.c, -1, gone, 10, add_name, names), 2);
	snprintf(want, sizeof want, "%s %s ", by_id[2]->spec.name, by_id[3]->spec.name);
	CHECK_STR(names, want);
	world_close(&w);
}

/* A bridge made or deleted on a node's host while it runs (PUT /v1/nodes/ID/bridges):
 * placement follows at once, and the list (with the run dir the node registered with)
 * survives a restart of the core. */
static struct instance *create_on_bridge(struct world *w, const char *name, struct mv_error *err)
{
	return create_from(w, json_pack("{s:s, s:s, s:{s:s, s:[s]}, s:{s:s}}", "name", name, "driver", "exec", "config",
	                                "command", "/bin/sleep", "args", "60", "network", "bridge", "brlate"),
	                   err);
}

static void test_node_bridges_follow(void)
{
	struct world w;
	struct mv_error err;
	json_t *some = json_pack("[s, s]", "br0", "brlate"), *none = json_array();
	world_fresh(&w);
	struct node *n = reg(&w, N1, "n1", NULL);
	CHECK(n != NULL);
	if (!n)
		return world_close(&w);
	CHECK(create_on_bridge(&w, "nb1", &err) == NULL);
	CHECK_EQ_INT(err.status, 422);
	CHECK_STR(err.code, "no_node");
	CHECK_EQ_INT(cluster_node_set_bridges(w.c, n, some, &err), 0);
	CHECK(json_equal(n->bridges, some));
	struct instance *in = create_on_bridge(&w, "nb2", &err);
	CHECK(in != NULL && strcmp(in->node_id, N1) == 0);
	CHECK_EQ_INT(cluster_node_set_bridges(w.c, n, some, &err), 0); /* the same again: nothing to do */

	world_crash(&w); /* the core restarts: the node is known, down, with its last bridges */
	world_open(&w);
	n = cluster_node(w.c, N1);
	CHECK(n != NULL && !n->ready && json_equal(n->bridges, some));
	CHECK(n != NULL && n->run_dir && strcmp(json_string_value(n->run_dir), "/run/microvim/test") == 0);
	n = reg(&w, N1, "n1", NULL);
	if (n) {
		CHECK_EQ_INT(cluster_node_set_bridges(w.c, n, none, &err), 0);
		CHECK(create_on_bridge(&w, "nb3", &err) == NULL);
		CHECK_EQ_INT(err.status, 422);
	}
	json_decref(some);
	json_decref(none);
	world_close(&w);
}


/* ---- several cores over one database: a follower beside the leader ---- */

struct follower {
	struct cluster *c;
	int wrote;
};

static bool never_leads(UNUSED void *arg) { return false; }
static void on_follower_wrote(void *arg) { ((struct follower *)arg)->wrote++; }

/* A second core's cluster on the same store, following (core/leader.h). */
static void follower_open(struct world *w, struct follower *f)
{
	struct cluster_options o = {.cpu_ratio = 16, .policy = SCHED_BINPACK, .heartbeat_timeout_s = 15};
	struct cluster_hooks h = {.arg = f, .leading = never_leads, .follower_wrote = on_follower_wrote};
	char err[256];
	if (!(f->c = cluster_create(w->base, &w->store->base, w->images, w->metrics, &o, &h, err, sizeof err))) {
		fprintf(stderr, "  cluster_create (follower): %s\n", err);
		exit(2);
	}
}

/* A create through the follower is stored pending, not placed, and wakes the leader, which
 * picks it up and places it; the follower's reads follow the leader's writes; a client
 * waiting on the follower is answered as the rows change; a row the leader removes goes. */
static void test_follower(void)
{
	struct world w;
	struct follower f = {0};
	struct mv_error err;
	struct waited wt = {0};
	struct cluster *leader_c;
	world_fresh(&w);
	struct node *n = reg(&w, N1, "n1", NULL);
	follower_open(&w, &f);
	leader_c = w.c;
	w.c = f.c; /* create() through the follower */
	struct instance *fa = create(&w, "fa", false, &err);
	w.c = leader_c;
	if (!fa || !n) {
		cluster_destroy(f.c);
		return world_close(&w);
	}
	CHECK_EQ_INT(fa->state, INST_PENDING);
	CHECK_EQ_INT(f.wrote, 1);
	CHECK(!cluster_leading(f.c) && cluster_leading(w.c));
	CHECK(cluster_instance(w.c, fa->id) == NULL); /* until the leader is woken */
	CHECK_EQ_INT(cluster_pick_up(w.c), 0);
	struct instance *la = cluster_instance(w.c, fa->id);
	CHECK(la != NULL);
	if (!la) {
		cluster_destroy(f.c);
		return world_close(&w);
	}
	CHECK_EQ_INT(la->state, INST_SCHEDULED);
	struct taken t = take(&w, n);
	CHECK(has(&t, "start", fa->id));
	cluster_wait(f.c, &fa, 1, WAIT_RUNNING, 30, on_waited, &wt);
	CHECK_EQ_INT(cluster_waiting(f.c), 1);
	report(&w, n, la->id, INST_RUNNING, true);
	CHECK_EQ_INT(wt.calls, 0);
	CHECK_EQ_INT(cluster_refresh(f.c), 0);
	CHECK_EQ_INT(wt.calls, 1);
	CHECK_EQ_INT(cluster_instance(f.c, fa->id)->state, INST_RUNNING);
	CHECK_STR(cluster_instance(f.c, fa->id)->node_id, N1);
	CHECK_EQ_INT(cluster_waiting(f.c), 0);
	/* stopped and removed by the leader: gone from the follower at its next read */
	CHECK_EQ_INT(cluster_instance_stop(w.c, la, &err), 0);
	report(&w, n, la->id, INST_STOPPED, false);
	CHECK_EQ_INT(cluster_instance_remove(w.c, la, &err), 0);
	CHECK_EQ_INT(cluster_refresh(f.c), 0);
	CHECK_EQ_INT(cluster_instance_count(f.c), 0);
	/* nodes register with the leader only: none is ready in the follower's view */
	CHECK_EQ_INT(cluster_nodes_ready(f.c), 0);
	cluster_destroy(f.c);
	world_close(&w);
}

/* Two nodes silent at once go down in one sweep, their instances lost in one pass: an
 * instance to be placed again never lands on the other node going down with it. */
static void test_nodes_down_together(void)
{
	struct world w;
	struct mv_error err;
	world_fresh(&w);
	struct node *n1 = reg(&w, N1, "n1", NULL);
	struct instance *a = create(&w, "a", true, &err), *b = create(&w, "b", false, &err);
	struct node *n2 = reg(&w, N2, "n2", NULL), *n3 = reg(&w, "00000000000000a3", "n3", NULL);
	if (!a || !b || !n1 || !n2 || !n3)
		return world_close(&w);
	take(&w, n1);
	report(&w, n1, a->id, INST_RUNNING, true);
	report(&w, n1, b->id, INST_RUNNING, true);
	n1->last_heartbeat_mono_us = n2->last_heartbeat_mono_us = 0; /* both silent since long ago */
	cluster_sweep(w.c, n3->last_heartbeat_mono_us + 1);
	CHECK(!n1->ready && !n2->ready && n3->ready);
	CHECK_EQ_INT(a->state, INST_SCHEDULED); /* lost, then placed again: on n3, the one left */
	CHECK_STR(a->node_id, n3->id);
	CHECK_EQ_INT(b->state, INST_LOST);
	CHECK_EQ_INT(n1->n_instances, 0);
	CHECK_EQ_INT(n2->n_instances, 0);
	int counts[INST_STATE_COUNT];
	cluster_count_states(w.c, counts); /* kept as states change, not counted by a scan */
	CHECK_EQ_INT(counts[INST_SCHEDULED], 1);
	CHECK_EQ_INT(counts[INST_LOST], 1);
	CHECK_EQ_INT(counts[INST_RUNNING], 0);
	CHECK_EQ_INT(counts[INST_PENDING], 0);
	/* b's row says "lost" only once the loop has written it, after the sweep; a crash
	 * before that loses nothing: the node is found down again and b lost again */
	char a_id[MV_ID_LEN + 1], b_id[MV_ID_LEN + 1];
	memcpy(a_id, a->id, sizeof a_id);
	int64_t b_total = b->trace.total_us;
	CHECK(b->has_trace && b_total > 0);
	memcpy(b_id, b->id, sizeof b_id);
	CHECK_EQ_INT(cluster_lost_unwritten(w.c), 2); /* a's too: its placement again was written at once */
	world_crash(&w);
	world_open(&w);
	b = cluster_instance(w.c, b_id);
	CHECK(b != NULL && b->state == INST_RUNNING);
	n1 = cluster_node(w.c, N1);
	if (!b || !n1)
		return world_close(&w);
	n1->ready = true; /* as registered again, then silent */
	n1->last_heartbeat_mono_us = 0;
	cluster_sweep(w.c, 60 * 1000000LL);
	CHECK_EQ_INT(b->state, INST_LOST);
	for (int i = 0; i < 10 && cluster_lost_unwritten(w.c) > 0; i++)
		event_base_loop(w.base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
	CHECK_EQ_INT(cluster_lost_unwritten(w.c), 0);
	/* written: kept across a restart, with its trace (not written again: trace_kept) */
	world_crash(&w);
	world_open(&w);
	b = cluster_instance(w.c, b_id);
	CHECK(b != NULL);
	if (!b)
		return world_close(&w);
	CHECK_EQ_INT(b->state, INST_LOST);
	CHECK(b->has_trace && b->trace.total_us == b_total);
	a = cluster_instance(w.c, a_id); /* its late write wrote what memory held: placed again */
	CHECK(a && a->state == INST_SCHEDULED && strcmp(a->node_id, "00000000000000a3") == 0);
	CHECK_EQ_INT(cluster_instance_remove(w.c, b, &err), 0);
	cluster_count_states(w.c, counts);
	CHECK_EQ_INT(counts[INST_LOST], 0);
	world_close(&w);
}

/* Past --heartbeat-rate-max the interval grows with the nodes, and a node is down only
 * after three of the longest interval it may still keep (Nomad's heartbeat TTL scaling). */
static void test_heartbeat_interval_grows(void)
{
	struct world w;
	char id[MV_ID_LEN + 1], name[16];
	struct node *n1 = NULL;
	world_fresh(&w);
	world_crash(&w);
	w.heartbeat_rate_max = 1; /* one a second: 5 nodes at the usual 5 s, then nodes/1 s */
	world_open(&w);
	for (int i = 0; i < 5; i++) {
		snprintf(id, sizeof id, "%016x", 0xa0 + i);
		snprintf(name, sizeof name, "hb%d", i);
		struct node *n = reg(&w, id, name, NULL);
		if (i == 0)
			n1 = n;
	}
	if (!n1)
		return world_close(&w);
	CHECK_EQ_INT(cluster_heartbeat_interval(w.c), 5);
	CHECK_EQ_INT(cluster_node_silence_limit_s(w.c, n1), 15);
	reg(&w, "00000000000000b0", "hb5", NULL);
	CHECK_EQ_INT(cluster_heartbeat_interval(w.c), 6);
	CHECK_EQ_INT(cluster_node_interval_tell(w.c, n1), 6); /* its heartbeat's answer */
	CHECK_EQ_INT(cluster_node_silence_limit_s(w.c, n1), 18);
	cluster_sweep(w.c, n1->last_heartbeat_mono_us + 17 * 1000000LL);
	CHECK(n1->ready); /* the fixed 15 s would have taken it down */
	cluster_sweep(w.c, n1->last_heartbeat_mono_us + 19 * 1000000LL);
	CHECK(!n1->ready);
	world_close(&w);
}

int main(void)
{
	log_set_quiet(true);
	RUN(test_a_life);
	RUN(test_core_killed);
	RUN(test_node_killed);
	RUN(test_partition);
	RUN(test_partition_heals_before_replaced);
	RUN(test_waiters);
	RUN(test_store_refusals_change_nothing);
	RUN(test_taken_by_another_core);
	RUN(test_idempotency_and_admission);
	RUN(test_list_pages);
	RUN(test_node_bridges_follow);
	RUN(test_node_revoked);
	RUN(test_follower);
	RUN(test_start_again);
	RUN(test_heartbeat_interval_grows);
	RUN(test_nodes_down_together);
	if (tmpdir[0])
		fs_remove_tree(tmpdir);
	UNIT_END();
}
