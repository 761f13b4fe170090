/* poolapi — the warm pools' routes (docs/API.md, "Warm pools"): make, list, show and remove
 * pools (the registry is pools.c), with what each node keeps of them and has warm (the
 * node-facing side, shares and the nodes' word on their stock, is nodeapi.c's). */
#include <stdio.h>
#include <string.h>

#include "common/clock.h"
#include "common/http.h"
#include "common/log.h"
#include "core/api.h"
#include "core/cluster.h"
#include "core/pools.h"

static json_t *pool_to_json(struct api *a, const struct pool *pl)
{
	char created[40];
	json_t *j = spec_to_json(&pl->spec), *nodes = json_array();
	int warm = 0, booting = 0;
	json_object_del(j, "boot");
	clock_iso8601(pl->created_wall_us, created, sizeof created);
	json_object_set_new(j, "size", json_integer(pl->size));
	json_object_set_new(j, "created_at", json_string(created));
	for (int i = 0; i < cluster_node_count(a->cluster); i++) {
		const struct node *n = cluster_node_at(a->cluster, i);
		int r, b;
		if (!nodeapi_keeps_pool(n, pl))
			continue;
		pools_stock(a->pools, n->id, pl->name, &r, &b);
		warm += r;
		booting += b;
		json_array_append_new(nodes, json_pack("{s:s, s:s, s:i, s:i, s:i}", "id", n->id, "name", n->name, "share",
		                                       nodeapi_pool_share(a, pl, n), "warm", r, "booting", b));
	}
	json_object_set_new(j, "warm", json_integer(warm));
	json_object_set_new(j, "booting", json_integer(booting));
	json_object_set_new(j, "nodes", nodes);
	return j;
}

struct pool_list {
	struct api *api;
	json_t *list;
};

/* ---- the routes ---- */

void api_pools_create(struct api *a, struct evhttp_request *req, UNUSED const char *id)
{
	const struct pool *pl;
	json_t *b = NULL;
	struct mv_error err;
	if (http_read_json(req, &b, &err) < 0 || pools_create(a->pools, b, a->images, &pl, &err) < 0) {
		json_decref(b);
		http_reply_error(req, &err);
		return;
	}
	json_decref(b);
	log_info("pool %s: %d guests of image %s (%s)", pl->name, pl->size, pl->spec.image, pl->spec.driver);
	nodeapi_pools_changed(a);
	http_reply_json(req, 201, pool_to_json(a, pl));
}

static void list_one(void *arg, const struct pool *pl)
{
	struct pool_list *np = arg;
	json_array_append_new(np->list, pool_to_json(np->api, pl));
}

void api_pools_list(struct api *a, struct evhttp_request *req, UNUSED const char *id)
{
	struct pool_list np = {.api = a, .list = json_array()};
	pools_foreach(a->pools, list_one, &np);
	http_reply_json(req, 200, json_pack("{s:o}", "pools", np.list));
}

void api_pool_show(struct api *a, struct evhttp_request *req, const char *name)
{
	const struct pool *pl = pools_get(a->pools, name);
	struct mv_error err;
	if (!pl) {
		mv_fail(&err, 404, "not_found", "no pool named %.64s", name);
		http_reply_error(req, &err);
		return;
	}
	http_reply_json(req, 200, pool_to_json(a, pl));
}

/* The nodes stop its guests when they learn of it (their next long-poll answer). An
 * instance already taken from it is an instance like any other: it stays. */
void api_pool_delete(struct api *a, struct evhttp_request *req, const char *name)
{
	struct mv_error err;
	if (pools_remove(a->pools, name, &err) < 0) {
		http_reply_error(req, &err);
		return;
	}
	log_info("pool %s removed", name);
	nodeapi_pools_changed(a);
	evhttp_send_reply(req, 204, "No Content", NULL);
}
