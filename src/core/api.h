/* api — the native REST API (docs/API.md): the route handlers and what they share. Each
 * handler parses its request into typed values, calls the cluster (or the image
 * registry), and replies; the model is not here. core.c's route table lists them, one row
 * per route:
 *   api.c       instances (create, list, show, delete), health, events, metrics
 *   nodeapi.c   nodes (list, show) and the node-facing routes (register, heartbeat,
 *               the long-poll for assignments, status reports)
 *   imageapi.c  images and their blobs
 *   tenantapi.c projects, users, tokens (log in)
 *   poolapi.c   warm pools, and the nodes' word on what they have warm
 *   nodeidapi.c join tokens (node-tokens) and revoking a node
 *   traces.c    recent instantiation traces; ui.c  the dashboard's files
 *   logs.c      an instance's logs, relayed from its node as a chunked stream */
#ifndef MICROVIM_API_H
#define MICROVIM_API_H

#include <event2/event.h>
#include <event2/http.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/httpguard.h"
#include "core/authz.h"

struct cluster;
struct images;
struct metrics;
struct events;
struct traces;
struct node;
struct tenants;
struct nodeauth;
struct offload;
struct pools;

/* What every handler gets. */
struct api {
	struct event_base *base;
	struct cluster *cluster;
	struct images *images;
	struct metrics *metrics;
	struct events *events;
	struct traces *traces; /* recent instantiation traces (GET /v1/traces) */
	struct log_relays *log_relays; /* the logs being relayed (logs.c; made at first use) */
	struct http_guard *guard;
	struct tenants *tenants;
	struct nodeauth *nodeauth; /* join tokens and node credentials */
	struct offload *offload; /* password hashing off the loop */
	struct pools *pools;     /* warm pools (pools.h) */
	struct leader *leader;   /* several cores over PostgreSQL; NULL: this core alone leads */
	struct leaderwatch *leaderwatch; /* GET /v1/leader's waiting watches (leaderwatch.h) */
	const char *url;         /* this core's advertised URL */
	/* Who made the request being handled (core.c's dispatch sets it): valid during the
	 * handler's call only, copied by what outlives it. NULL on POST /v1/tokens without
	 * a token (a log-in by password). */
	const struct authz_principal *who;
};

/* id: the path's '*' segment ("" when the route has none). */
typedef void route_fn(struct api *a, struct evhttp_request *req, const char *id);

route_fn api_instances_create, api_instances_list, api_instance_show, api_instance_delete;
/* POST /v1/instances/{id}/start and /restart: a new run on its node (?wait=running|ready). */
route_fn api_instance_start, api_instance_restart;
route_fn api_health, api_events, api_metrics;
route_fn api_nodes_list, api_node_show, nodeapi_register, nodeapi_heartbeat, nodeapi_assignments, nodeapi_reports,
    nodeapi_bridges;
route_fn api_blob_put, api_blob_get, api_images_create, api_images_list, api_image_show, api_image_delete;
route_fn api_traces, ui_index, ui_asset; /* traces.c, ui.c */
route_fn api_instance_logs;               /* logs.c */
/* Ends every relayed log stream (at shutdown, before the listener goes) and frees the list. */
void logs_close_all(struct api *a);
route_fn api_projects_create, api_projects_list, api_project_show, api_project_delete; /* tenantapi.c */
route_fn api_users_create, api_users_list, api_user_delete, api_tokens_create, api_tokens_list, api_token_delete;
route_fn api_node_tokens_create, api_node_tokens_list, api_node_token_delete, api_node_revoke; /* nodeidapi.c */

/* Shared by the token routes (tenantapi.c): an RFC 3339 time, or null for 0. */
json_t *api_when_json(int64_t wall_us);
/* A body's "expires": "24h", "30m", "90s", "7d" or seconds (at most 366 days), "never"
 * (0); absent: default_s. 400 invalid_value otherwise. */
int api_parse_expires(const json_t *v, int64_t default_s, int64_t *out_s, struct mv_error *err);
/* list sorted by the string field key (the list is taken; a new one returned). */
json_t *api_sorted(json_t *list, const char *key);

/* The project a list shows: ?project= (400 when not a valid name; a reader or member
 * may name only its own), else its own; "" for every project (an admin without it). */
int api_project_scope(struct api *a, struct evhttp_request *req, char out[MV_NAME_MAX + 1],
                      struct mv_error *err);
/* The 404 a caller gets for an object of a project it does not see. */
bool api_sees(const struct api *a, const char *project);

route_fn api_pools_create, api_pools_list, api_pool_show, api_pool_delete, nodeapi_pools_stock; /* poolapi.c */
struct pool;
/* Does n keep guests of pl (ready, offering its driver), and how many: its share among
 * the nodes that keep pl, in the cluster's order of nodes (stable while they stay). */
bool nodeapi_keeps_pool(const struct node *n, const struct pool *pl);
int nodeapi_pool_share(struct api *a, const struct pool *pl, const struct node *n);
/* The pools changed (made, removed, or the nodes that keep them): every node's waiting
 * long-poll that has an older version of them is answered with the new one. */
void nodeapi_pools_changed(struct api *a);
/* The live node of a node-facing route, or NULL after answering 404 register_again (or
 * what cluster_node_touch said). */
struct node *nodeapi_live_node(struct api *a, struct evhttp_request *req, const char *id);

/* Cluster hook (cluster_hooks.node_wake): answers the node's waiting long-poll. */
void nodeapi_node_wake(void *arg, struct node *n);
/* Answers n's waiting long-poll, if any, with err (the node was revoked). */
void nodeapi_poll_refuse(struct api *a, struct node *n, const struct mv_error *err);
/* Answers every waiting long-poll with 503 (the core is going away). */
void nodeapi_release_polls(struct api *a);

#endif
