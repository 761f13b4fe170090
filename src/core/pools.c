/* pools — see pools.h. Few pools (POOLS_MAX), kept in an array in name order. */
#include "core/pools.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/hmap.h"
#include "common/log.h"
#include "core/images.h"
#include "core/store.h"
#include "drivers/drivers.h"

/* What one node said it has, pool by pool. */
struct node_stock {
	char node_id[MV_ID_LEN + 1];
	json_t *stock;
};

struct pools {
	struct store *store;
	struct pool *list[POOLS_MAX];
	int n;
	uint64_t version;
	struct hmap stock; /* node id -> struct node_stock */
};

static void pool_free(struct pool *pl)
{
	if (pl) {
		spec_free(&pl->spec);
		free(pl);
	}
}

static int find(const struct pools *p, const char *name)
{
	for (int i = 0; i < p->n; i++)
		if (strcmp(p->list[i]->name, name) == 0)
			return i;
	return -1;
}

static void insert_sorted(struct pools *p, struct pool *pl)
{
	int i = p->n++;
	for (; i > 0 && strcmp(p->list[i - 1]->name, pl->name) > 0; i--)
		p->list[i] = p->list[i - 1];
	p->list[i] = pl;
}

static void load_one(void *arg, struct store_pool_row *row)
{
	struct pools *p = arg;
	struct pool *pl = calloc(1, sizeof *pl);
	struct mv_error err;
	if (!pl)
		fatal("calloc");
	if (p->n == POOLS_MAX || drv_spec_parse(&pl->spec, row->spec, SPEC_STORED, &err) < 0) {
		log_warnx("pool %s in the store is not loaded: %s", row->name,
		          p->n == POOLS_MAX ? "too many pools" : err.message);
		free(pl);
		return;
	}
	memcpy(pl->name, row->name, sizeof pl->name);
	pl->size = row->size;
	pl->created_wall_us = row->created_us;
	insert_sorted(p, pl);
}

struct pools *pools_open(struct store *store, char *err, size_t errlen)
{
	struct pools *p = calloc(1, sizeof *p);
	if (!p)
		fatal("calloc");
	p->store = store;
	/* a restarted core's versions never meet an earlier run's that a node still has */
	p->version = (uint64_t)clock_wall_us();
	hmap_init(&p->stock);
	if (store_pools_load(store, load_one, p) < 0) {
		snprintf(err, errlen, "cannot load the pools from the store");
		pools_close(p);
		return NULL;
	}
	return p;
}

int pools_reload(struct pools *p)
{
	struct pools fresh = {.store = p->store};
	if (store_pools_load(p->store, load_one, &fresh) < 0) {
		for (int i = 0; i < fresh.n; i++)
			pool_free(fresh.list[i]);
		return -1;
	}
	for (int i = 0; i < p->n; i++)
		pool_free(p->list[i]);
	memcpy(p->list, fresh.list, sizeof p->list);
	p->n = fresh.n;
	pools_changed(p);
	return 0;
}

void pools_close(struct pools *p)
{
	const char *k;
	void *v;
	if (!p)
		return;
	for (int i = 0; i < p->n; i++)
		pool_free(p->list[i]);
	for (size_t i = 0; hmap_next(&p->stock, &i, &k, &v);) {
		json_decref(((struct node_stock *)v)->stock);
		free(v);
	}
	hmap_free(&p->stock);
	free(p);
}

const struct pool *pools_get(const struct pools *p, const char *name)
{
	int i = find(p, name);
	return i < 0 ? NULL : p->list[i];
}

void pools_foreach(const struct pools *p, void (*fn)(void *arg, const struct pool *pool), void *arg)
{
	for (int i = 0; i < p->n; i++)
		fn(arg, p->list[i]);
}

const struct pool *pools_image_user(const struct pools *p, const char *image)
{
	for (int i = 0; i < p->n; i++)
		if (strcmp(p->list[i]->spec.image, image) == 0)
			return p->list[i];
	return NULL;
}

uint64_t pools_version(const struct pools *p) { return p->version; }
void pools_changed(struct pools *p) { p->version++; }

bool pools_nodes_changed(struct pools *p)
{
	if (p->n == 0)
		return false;
	pools_changed(p);
	return true;
}

int pools_share(int size, int idx, int k)
{
	if (k <= 0 || idx < 0 || idx >= k)
		return 0;
	return size / k + (idx < size % k);
}

/* ---- making and removing ---- */

/* The body's size: an integer 1..POOL_SIZE_MAX. */
static int parse_size(const json_t *v, int *size, struct mv_error *err)
{
	if (!v)
		return mv_fail(err, 400, "missing_field", "size is required: how many warm guests the pool keeps over all nodes");
	if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > POOL_SIZE_MAX)
		return mv_fail(err, 400, "invalid_value", "size must be an integer between 1 and %d", POOL_SIZE_MAX);
	*size = (int)json_integer_value(v);
	return 0;
}

/* The guests' spec: the body without size, as a create body of one instance named as
 * the pool (so every field is checked as a create's is), then the pool's own rules. */
static int parse_guest(const json_t *body, struct inst_spec *spec, struct mv_error *err)
{
	static const char *const fields[] = {"name", "driver", "image", "size", "resources", "ready", "config", NULL};
	const struct driver *d;
	json_t *guest;
	int rc;

	if (!json_is_object(body))
		return mv_fail(err, 400, "invalid_type", "the body must be a JSON object");
	if (mv_check_fields(body, "", fields, err) < 0)
		return -1;
	guest = json_deep_copy(body);
	json_object_del(guest, "size");
	rc = drv_spec_parse(spec, guest, SPEC_REQUEST, err);
	json_decref(guest);
	if (rc < 0)
		return -1;
	d = driver_find(spec->driver);
	if (!d || !drv_can_pool(d)) {
		mv_fail(err, 422, "driver_cannot_pool",
		        "the %s driver cannot keep warm guests (a pool needs a driver that boots an image and can "
		        "pause and resume it: qemu)",
		        spec->driver);
		spec_free(spec);
		return -1;
	}
	return 0;
}

int pools_create(struct pools *p, const json_t *body, const struct images *im, const struct pool **out,
                 struct mv_error *err)
{
	struct pool *pl = calloc(1, sizeof *pl);
	const struct image *img;
	json_t *stored;
	int rc;

	if (!pl)
		fatal("calloc");
	if (parse_guest(body, &pl->spec, err) < 0) {
		free(pl);
		return -1;
	}
	if (parse_size(json_object_get(body, "size"), &pl->size, err) < 0)
		goto fail;
	memcpy(pl->name, pl->spec.name, sizeof pl->name);
	if (!(img = images_get(im, pl->spec.image))) {
		mv_fail(err, 422, "unknown_image", "image %s is not registered (microvim image add NAME --kernel FILE)",
		        pl->spec.image);
		goto fail;
	}
	if (find(p, pl->name) >= 0) {
		mv_fail(err, 409, "name_conflict", "a pool named %s exists; remove it or choose another name", pl->name);
		goto fail;
	}
	if (p->n == POOLS_MAX) {
		mv_fail(err, 422, "too_many_pools", "this core keeps at most %d pools; remove one first", POOLS_MAX);
		goto fail;
	}
	images_boot_of(img, &pl->spec.boot); /* resolved now, as an instance's */
	pl->spec.has_boot = true;
	pl->created_wall_us = clock_wall_us();
	stored = spec_to_json(&pl->spec);
	struct store_pool_row row = {.size = pl->size, .spec = stored, .created_us = pl->created_wall_us};
	memcpy(row.name, pl->name, sizeof row.name);
	rc = store_pool_insert(p->store, &row);
	json_decref(stored);
	if (rc == STORE_TAKEN) { /* by another core, a moment ago */
		mv_fail(err, 409, "name_conflict", "a pool named %s was made at the same moment through another core; "
		        "nothing was made", pl->name);
		goto fail;
	}
	if (rc < 0) {
		mv_fail(err, 500, "store_failed", "the store could not save the pool; nothing was made");
		goto fail;
	}
	insert_sorted(p, pl);
	pools_changed(p);
	*out = pl;
	return 0;
fail:
	pool_free(pl);
	return -1;
}

int pools_remove(struct pools *p, const char *name, struct mv_error *err)
{
	int i = find(p, name);
	if (i < 0)
		return mv_fail(err, 404, "not_found", "no pool named %.64s", name);
	if (store_pool_delete(p->store, name) < 0)
		return mv_fail(err, 500, "store_failed", "the store could not remove the pool; it stays");
	pool_free(p->list[i]);
	memmove(&p->list[i], &p->list[i + 1], sizeof p->list[0] * (size_t)(p->n - i - 1));
	p->n--;
	pools_changed(p);
	return 0;
}

/* ---- creates that take from a pool ---- */

int pools_fill_request(const struct pools *p, json_t *body, struct mv_error *err)
{
	static const char *const taken[] = {"driver", "image", "resources", "ready", "config", NULL};
	const json_t *name = json_object_get(body, "pool");
	const struct pool *pl;
	json_t *guest;

	if (!json_is_string(name) || !name_valid(json_string_value(name)))
		return 0;
	if (!(pl = pools_get(p, json_string_value(name))))
		return mv_fail(err, 422, "unknown_pool", "no pool named %s (GET /v1/pools lists them)",
		               json_string_value(name));
	guest = spec_to_json(&pl->spec);
	for (int i = 0; taken[i]; i++) {
		json_t *v = json_object_get(guest, taken[i]);
		if (v && !json_object_get(body, taken[i]))
			json_object_set(body, taken[i], v);
	}
	json_decref(guest);
	return 0;
}

/* "" when spec's guest is pool's exactly, else the first field that differs. */
static const char *guest_differs(const struct pool *pl, const struct inst_spec *s)
{
	const struct inst_spec *g = &pl->spec;
	if (strcmp(g->driver, s->driver) != 0)
		return "driver";
	if (strcmp(g->image, s->image) != 0)
		return "image";
	if (g->vcpus_milli != s->vcpus_milli || g->memory_mb != s->memory_mb)
		return "resources";
	if (strcmp(g->ready_serial, s->ready_serial) != 0)
		return "ready";
	if (!(g->config == s->config || (g->config && s->config && json_equal(g->config, s->config))))
		return "config";
	return "";
}

int pools_resolve(const struct pools *p, struct inst_spec *spec, struct mv_error *err)
{
	const struct pool *pl;
	const char *diff;

	if (!spec->pool[0]) { /* a guest exactly as a pool's takes from it; never one chosen at boot */
		if (spec->cmdline || spec->bridge[0])
			return 0;
		for (int i = 0; i < p->n; i++)
			if (!guest_differs(p->list[i], spec)[0]) {
				memcpy(spec->pool, p->list[i]->name, sizeof spec->pool);
				break;
			}
		return 0;
	}
	if (!(pl = pools_get(p, spec->pool)))
		return mv_fail(err, 422, "unknown_pool", "no pool named %s (GET /v1/pools lists them)", spec->pool);
	if (spec->cmdline)
		return mv_fail(err, 422, "pool_cmdline",
		               "a guest of pool %s booted before this request, with its image's command line: leave out "
		               "cmdline, or leave out pool to boot a guest of its own",
		               pl->name);
	if (spec->bridge[0])
		return mv_fail(err, 422, "pool_network",
		               "guests of pool %s have no network interface (they booted before this request and are "
		               "not hot-plugged): leave out network, or leave out pool to boot a guest of its own",
		               pl->name);
	if ((diff = guest_differs(pl, spec))[0])
		return mv_fail(err, 422, "pool_mismatch",
		               "%s differs from pool %s's guests: leave it out (the pool's is taken) or leave out pool",
		               diff, pl->name);
	return 0;
}

/* ---- what nodes have ---- */

int pools_stock_check(const json_t *b, struct mv_error *err)
{
	const json_t *pools = json_object_get(b, "pools"), *v;
	const char *name;
	if (!json_is_object(pools))
		return mv_fail(err, 400, "invalid_type", "pools must be an object {\"NAME\": {\"ready\": N, \"booting\": N}}");
	if (json_object_size(pools) > POOLS_MAX)
		return mv_fail(err, 400, "invalid_value", "pools may name at most %d pools", POOLS_MAX);
	json_object_foreach((json_t *)pools, name, v) {
		const json_t *r = json_object_get(v, "ready"), *bo = json_object_get(v, "booting");
		if (!name_valid(name))
			return mv_fail(err, 400, "invalid_value", "pools: \"%.64s\" is not a pool's name", name);
		if (!json_is_integer(r) || !json_is_integer(bo) || json_integer_value(r) < 0 ||
		    json_integer_value(r) > POOL_SIZE_MAX || json_integer_value(bo) < 0 ||
		    json_integer_value(bo) > POOL_SIZE_MAX)
			return mv_fail(err, 400, "invalid_value", "pools.%s: ready and booting must be integers 0-%d", name,
			               POOL_SIZE_MAX);
	}
	return 0;
}

void pools_set_stock(struct pools *p, const char *node_id, json_t *stock)
{
	struct node_stock *ns = hmap_get(&p->stock, node_id);
	if (!ns && !stock)
		return;
	if (!ns) {
		if (!(ns = calloc(1, sizeof *ns)))
			fatal("calloc");
		snprintf(ns->node_id, sizeof ns->node_id, "%s", node_id);
		hmap_put(&p->stock, ns->node_id, ns);
	}
	json_decref(ns->stock);
	ns->stock = json_incref(stock);
	if (!stock) {
		hmap_remove(&p->stock, ns->node_id);
		free(ns);
	}
}

void pools_warm_nodes(const struct pools *p, const char *name, void (*fn)(void *arg, const char *node_id, int ready),
                      void *arg)
{
	const char *k;
	void *v;
	for (size_t i = 0; hmap_next(&p->stock, &i, &k, &v);) {
		const struct node_stock *ns = v;
		json_int_t ready = json_integer_value(json_object_get(json_object_get(ns->stock, name), "ready"));
		if (ready > 0)
			fn(arg, ns->node_id, ready > POOL_SIZE_MAX ? POOL_SIZE_MAX : (int)ready);
	}
}

void pools_stock(const struct pools *p, const char *node_id, const char *name, int *ready, int *booting)
{
	const struct node_stock *ns = hmap_get(&p->stock, node_id);
	const json_t *s = ns ? json_object_get(ns->stock, name) : NULL;
	*ready = (int)json_integer_value(json_object_get(s, "ready"));
	*booting = (int)json_integer_value(json_object_get(s, "booting"));
}
