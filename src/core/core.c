/* core — set-up of the core daemon and the route table every request goes through. */
#include "core/core.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include "common/clock.h"
#include "common/fs.h"
#include "common/hmap.h"
#include "common/http.h"
#include "common/httpguard.h"
#include "common/log.h"
#include "common/tls.h"
#include "core/api.h"
#include "core/audit.h"
#include "core/cluster.h"
#include "core/events.h"
#include "core/images.h"
#include "core/leader.h"
#include "core/leaderwatch.h"
#include "core/metrics.h"
#include "core/nodeauth.h"
#include "core/authz.h"
#include "core/offload.h"
#include "core/osapi.h"
#include "core/pools.h"
#include "core/store.h"
#include "core/stores.h"
#include "core/tenants.h"
#include "core/traces.h"

#define MAX_HEADERS_SIZE (16 * 1024) /* the guard's cap (431 in JSON) */
/* evhttp's own cap, above the guard's so that the guard answers first */
#define EVHTTP_HEADERS_CAP (MAX_HEADERS_SIZE + 4096)
/* evhttp's own cap, for a connection the guard could not watch; the guard gives each
 * request its route's cap (MV_BODY_MAX, or MV_BLOB_MAX for blobs) before the body is read. */
#define HARD_BODY_CAP (MV_BLOB_MAX + 4096)
/* A connection that sends nothing (or whose request is not read whole) this long is
 * closed. It does not cut long-polls and ?wait: a request the core holds is not idle. */
#define IDLE_TIMEOUT_S 30
#define ACCEPT_PAUSE_MS 100
#define FDS_RESERVED 32 /* descriptors the core keeps for itself besides client connections */

/* The daemon: the listener and its guard, the route table, the parts it wires together. */
struct core {
	struct core_options opts;
	struct event_base *base;
	struct evhttp *http;
	struct evhttp_bound_socket *bound;
	char url[128];
	char *token;         /* cluster token, NULL when none */
	struct tls_ctx *tls; /* HTTPS, NULL for plain HTTP */
	bool auth;           /* users' tokens: --auth, or a non-loopback --listen */
	struct hmap rate;    /* client address -> request token bucket */
	struct store *store;
	struct audit *audit; /* DATA_DIR/audit.log */
	struct api api;      /* what the handlers get: cluster, images, metrics, events, guard */
	struct osapi *os;    /* the OpenStack façade, or NULL */
	/* Several cores over PostgreSQL (leader.h); NULL with SQLite: always the leader */
	struct leader *leader;
	char app[48];               /* this core's application name on its PostgreSQL sessions */
	char *store_location;       /* the store URL with app in it */
	struct event *follow_timer; /* a follower's refresh while clients wait for states */
	unsigned follow_ticks;
	unsigned catalog_stale; /* CATALOG_ parts to load again (another core changed them) */
};

void core_options_default(struct core_options *o)
{
	*o = (struct core_options){
		.listen = "127.0.0.1:4650",
		.data_dir = "/var/lib/microvim/core",
		.cpu_ratio = 16.0,
		.policy = SCHED_BINPACK,
		.heartbeat_timeout_s = 15,
		.heartbeat_rate_max = 500,
		.max_rate = 10000,
		.max_conns_per_addr = 512,
		.read_timeout_s = 60,
		.max_inflight = CORE_MAX_INFLIGHT_DEFAULT,
	};
}

/* ---- routing ---- */

/* Who may call a route. READ, WRITE and ADMIN are authz.h's actions, checked against the
 * caller's role (403 forbidden); which project's objects it sees is the handler's (404).
 * PUBLIC: the dashboard's files only, which hold no data. NODE: the node whose id is in
 * the path, by the token of its registration or its credential (core/nodeauth.h).
 * LOGIN: with or without a token (POST /v1/tokens: a password logs in). */
enum route_access { ACCESS_READ, ACCESS_WRITE, ACCESS_ADMIN, ACCESS_NODE, ACCESS_LOGIN, ACCESS_PUBLIC };

struct route {
	enum evhttp_cmd_type method;
	const char *pattern; /* '*' matches one path segment, passed as id */
	enum route_access access;
	route_fn *handler;
};

/* The whole API, one row per route (handlers: api.h). */
static const struct route routes[] = {
	{EVHTTP_REQ_POST, "/v1/instances", ACCESS_WRITE, api_instances_create},
	{EVHTTP_REQ_GET, "/v1/instances", ACCESS_READ, api_instances_list},
	{EVHTTP_REQ_GET, "/v1/instances/*", ACCESS_READ, api_instance_show},
	{EVHTTP_REQ_DELETE, "/v1/instances/*", ACCESS_WRITE, api_instance_delete},
	{EVHTTP_REQ_POST, "/v1/instances/*/start", ACCESS_WRITE, api_instance_start},
	{EVHTTP_REQ_POST, "/v1/instances/*/restart", ACCESS_WRITE, api_instance_restart},
	{EVHTTP_REQ_GET, "/v1/instances/*/logs", ACCESS_READ, api_instance_logs},
	{EVHTTP_REQ_GET, "/v1/nodes", ACCESS_ADMIN, api_nodes_list},
	{EVHTTP_REQ_POST, "/v1/nodes/register", ACCESS_ADMIN, nodeapi_register},
	{EVHTTP_REQ_GET, "/v1/nodes/*", ACCESS_ADMIN, api_node_show},
	{EVHTTP_REQ_POST, "/v1/nodes/*/revoke", ACCESS_ADMIN, api_node_revoke},
	{EVHTTP_REQ_POST, "/v1/nodes/*/heartbeat", ACCESS_NODE, nodeapi_heartbeat},
	{EVHTTP_REQ_GET, "/v1/nodes/*/assignments", ACCESS_NODE, nodeapi_assignments},
	{EVHTTP_REQ_POST, "/v1/nodes/*/reports", ACCESS_NODE, nodeapi_reports},
	{EVHTTP_REQ_PUT, "/v1/nodes/*/bridges", ACCESS_NODE, nodeapi_bridges},
	{EVHTTP_REQ_PUT, "/v1/nodes/*/pools", ACCESS_NODE, nodeapi_pools_stock},
	{EVHTTP_REQ_POST, "/v1/pools", ACCESS_ADMIN, api_pools_create},
	{EVHTTP_REQ_GET, "/v1/pools", ACCESS_READ, api_pools_list},
	{EVHTTP_REQ_GET, "/v1/pools/*", ACCESS_READ, api_pool_show},
	{EVHTTP_REQ_DELETE, "/v1/pools/*", ACCESS_ADMIN, api_pool_delete},
	{EVHTTP_REQ_PUT, "/v1/blobs/*", ACCESS_WRITE, api_blob_put},
	{EVHTTP_REQ_GET, "/v1/blobs/*", ACCESS_READ, api_blob_get},
	{EVHTTP_REQ_POST, "/v1/images", ACCESS_WRITE, api_images_create},
	{EVHTTP_REQ_GET, "/v1/images", ACCESS_READ, api_images_list},
	{EVHTTP_REQ_GET, "/v1/images/*", ACCESS_READ, api_image_show},
	{EVHTTP_REQ_DELETE, "/v1/images/*", ACCESS_WRITE, api_image_delete},
	{EVHTTP_REQ_GET, "/v1/health", ACCESS_READ, api_health},
	{EVHTTP_REQ_GET, "/v1/leader", ACCESS_READ, api_leader_watch},
	{EVHTTP_REQ_GET, "/v1/events", ACCESS_READ, api_events},
	{EVHTTP_REQ_GET, "/metrics", ACCESS_ADMIN, api_metrics},
	{EVHTTP_REQ_GET, "/v1/traces", ACCESS_ADMIN, api_traces},
	{EVHTTP_REQ_POST, "/v1/projects", ACCESS_ADMIN, api_projects_create},
	{EVHTTP_REQ_GET, "/v1/projects", ACCESS_READ, api_projects_list},
	{EVHTTP_REQ_GET, "/v1/projects/*", ACCESS_READ, api_project_show},
	{EVHTTP_REQ_DELETE, "/v1/projects/*", ACCESS_ADMIN, api_project_delete},
	{EVHTTP_REQ_POST, "/v1/users", ACCESS_ADMIN, api_users_create},
	{EVHTTP_REQ_GET, "/v1/users", ACCESS_ADMIN, api_users_list},
	{EVHTTP_REQ_DELETE, "/v1/users/*", ACCESS_ADMIN, api_user_delete},
	{EVHTTP_REQ_POST, "/v1/tokens", ACCESS_LOGIN, api_tokens_create},
	{EVHTTP_REQ_GET, "/v1/tokens", ACCESS_READ, api_tokens_list},
	{EVHTTP_REQ_DELETE, "/v1/tokens/*", ACCESS_READ, api_token_delete}, /* one's own, or an admin any */
	{EVHTTP_REQ_POST, "/v1/node-tokens", ACCESS_ADMIN, api_node_tokens_create},
	{EVHTTP_REQ_GET, "/v1/node-tokens", ACCESS_ADMIN, api_node_tokens_list},
	{EVHTTP_REQ_DELETE, "/v1/node-tokens/*", ACCESS_ADMIN, api_node_token_delete},
	{EVHTTP_REQ_GET, "/ui", ACCESS_PUBLIC, ui_index},
	{EVHTTP_REQ_GET, "/ui/*", ACCESS_PUBLIC, ui_asset},
};

/* A join token or a node's credential may call these too (the handler checks for whom):
 * registering, the blobs of a node's instances, and which core leads (a node watches a
 * follower for that with what it registers with). Any other route gets them a 403. */
static bool nodes_too(const struct route *r)
{
	return r->handler == nodeapi_register || r->handler == api_blob_get || r->handler == api_leader_watch;
}

static const enum authz_action access_action[] = {
	[ACCESS_READ] = ACTION_READ, [ACCESS_WRITE] = ACTION_WRITE, [ACCESS_ADMIN] = ACTION_ADMIN,
};

/* The token of "Authorization: Bearer TOKEN", or NULL. */
static const char *bearer_of(struct evhttp_request *req)
{
	const char *h = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
	return h && strncmp(h, "Bearer ", 7) == 0 ? h + 7 : NULL;
}

/* Who calls: 0 with *who; 1 when no token came (anonymous); -1 with a 401 in err. With
 * neither --auth nor --token-file everyone is the open core's admin, as before. A join
 * token or a node's credential is known with either. */
static int authenticate(struct core *c, struct evhttp_request *req, struct authz_principal *who,
                        struct mv_error *err)
{
	const char *token;
	int rc;
	if (!c->auth && !c->token) {
		authz_principal_admin(who, AUTHZ_OPEN);
		return 0;
	}
	if (!(token = bearer_of(req)))
		return 1;
	/* the cluster token, or (without --auth) a Keystone token of the OpenStack façade, whose
	 * one user is admin of project admin; with --auth the façade's tokens are the users'
	 * own (tenants_authenticate below): one login for both APIs */
	if ((c->token && http_bearer_matches(req, c->token)) || (c->os && osapi_bearer_valid(c->os, req))) {
		authz_principal_admin(who, AUTHZ_CLUSTER);
		return 0;
	}
	if ((rc = nodeauth_authenticate(c->api.nodeauth, token, clock_wall_us(), who, err)) <= 0)
		return rc;
	if (!c->auth)
		return mv_fail(err, 401, "unauthorized", "missing or wrong bearer token (Authorization: Bearer TOKEN)");
	return tenants_authenticate(c->api.tenants, token, clock_wall_us(), who, err);
}

/* The caller of a user route: 0 when it may go on to the handler, else -1 with the answer
 * in err (401 unknown, 403 a role without the action). */
static int authorize(struct core *c, struct evhttp_request *req, const struct route *r, struct authz_principal *who,
                     bool *anonymous, struct mv_error *err)
{
	int rc = authenticate(c, req, who, err);
	*anonymous = rc == 1;
	if (rc < 0)
		return -1;
	if (r->access == ACCESS_LOGIN)
		return 0;
	if (rc == 1)
		return mv_fail(err, 401, "unauthorized", "missing bearer token (Authorization: Bearer TOKEN; "
		               "log in with POST /v1/tokens or microvim token create)");
	if (authz_is_node(who))
		return nodes_too(r) ? 0
		                    : mv_fail(err, 403, "forbidden", "a %s may not %s %s: it registers a node, and a "
		                              "node's credential serves that node's own routes only",
		                              who->kind == AUTHZ_JOIN ? "join token" : "node's credential",
		                              http_method_name(evhttp_request_get_command(req)), http_path(req));
	if (!authz_allows(who->role, access_action[r->access]))
		return mv_fail(err, 403, "forbidden", "role %s of project %s may not %s %s",
		               authz_role_names[who->role], who->project,
		               http_method_name(evhttp_request_get_command(req)), http_path(req));
	return 0;
}

/* A node route (ACCESS_NODE) for node `id`: 0 with the token of its registration (what
 * nodes send, as before) or its own credential; else -1 with a 401 (no, an unknown or a
 * revoked token) or a 403 (another node's credential, a join token: node_mismatch). */
static int node_authorized(struct core *c, struct evhttp_request *req, const char *id, struct mv_error *err)
{
	struct node *n = cluster_node(c->api.cluster, id);
	const char *token = bearer_of(req);
	struct authz_principal who;
	int rc;
	if (n && n->token[0] && http_bearer_matches(req, n->token))
		return 0;
	if (token && (rc = nodeauth_authenticate(c->api.nodeauth, token, clock_wall_us(), &who, err)) <= 0)
		return rc < 0 ? -1 : authz_node_route_check(&who, id, err);
	return mv_fail(err, 401, "unauthorized", "missing or wrong node token; register the node again");
}

/* With --tls-client-ca, what only nodes call (registering, heartbeats, long-polls,
 * reports) needs a client certificate that CA signed: a stolen token alone does not make
 * a node. People's routes take a token without a certificate. */
static bool node_cert_missing(struct core *c, const struct route *r, struct evhttp_request *req)
{
	bool node_route = r->access == ACCESS_NODE || r->handler == nodeapi_register;
	return node_route && tls_asks_client_cert(c->tls) && !tls_request_peer_verified(req);
}

static void count_reply(struct evhttp_request *req, void *arg)
{
	struct core *c = arg;
	metrics_count_request(c->api.metrics, evhttp_request_get_response_code(req));
	audit_replied(c->audit, req);
}

/* What the audit log records: requests that change something, not the nodes' own chatter. */
static bool audited(const struct route *r, enum evhttp_cmd_type method)
{
	return r->access != ACCESS_NODE && r->access != ACCESS_PUBLIC && method != EVHTTP_REQ_GET &&
	       method != EVHTTP_REQ_HEAD;
}

/* ---- several cores: what a follower answers itself ---- */

/* Routes whose answer is the leader's memory: nodes' own (registration, heartbeats,
 * long-polls, reports, bridges), the nodes' list, whose liveness only the leader sees, and
 * the warm pools (what each node keeps is the leader's word to its nodes). */
static bool leader_route(const struct route *r)
{
	return r->access == ACCESS_NODE || r->handler == nodeapi_register || r->handler == api_nodes_list ||
	       r->handler == api_node_show || r->handler == api_instance_start || r->handler == api_instance_restart ||
	       strncmp(r->pattern, "/v1/pools", 9) == 0;
}

/* 307 to the same path on the leader (a client follows it with the same method and
 * body); 503 while no core leads (an election takes up to about 2 s). */
static void redirect_to_leader(struct core *c, struct evhttp_request *req)
{
	const char *to = leader_url(c->leader);
	char loc[1024];
	struct mv_error err;
	int n = snprintf(loc, sizeof loc, "%s%s", to, evhttp_request_get_uri(req));
	if (!to[0] || n < 0 || (size_t)n >= sizeof loc) {
		mv_fail(&err, 503, "no_leader", "this core follows and no core leads right now (an election takes up "
		        "to about 2 s): retry in a second");
		evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", "1");
		http_reply_error(req, &err);
		return;
	}
	evhttp_add_header(evhttp_request_get_output_headers(req), "Location", loc);
	mv_fail(&err, 307, "not_leader", "this core follows; the leader is %s", to);
	http_reply_error(req, &err);
}

/* On a follower: the leader's routes are redirected there (false: answered); instances'
 * routes first read the instances again from the database, so that a follower answers
 * what the leader last wrote, not what it loaded at its start. */
static bool follower_may_answer(struct core *c, const struct route *r, struct evhttp_request *req)
{
	if (leader_is_leader(c->leader))
		return true;
	if (leader_route(r)) {
		redirect_to_leader(c, req);
		return false;
	}
	if ((strncmp(r->pattern, "/v1/instances", 13) == 0 || r->handler == api_health || r->handler == api_metrics) &&
	    leader_follows(c->leader))
		cluster_refresh(c->api.cluster); /* not a lapsed leader's (leader_follows) */
	if (r->handler == api_instances_create && pools_reload(c->api.pools) < 0)
		log_warnx("could not read the pools again; a create naming a new pool may be refused");
	return true;
}

/* ---- per-client request rate: a token bucket per peer address ---- */

#define RATE_CLIENTS_MAX 65536 /* addresses remembered; past that the table starts afresh */

struct rate_bucket {
	char addr[48];
	double tokens;
	int64_t last_us;
};

static void rate_forget(struct core *c);

static bool rate_allows(struct core *c, struct evhttp_request *req)
{
	struct evhttp_connection *conn = evhttp_request_get_connection(req);
	struct rate_bucket *b;
	char *addr = NULL;
	ev_uint16_t port;
	int64_t now = clock_mono_us();
	double burst = 2 * c->opts.max_rate;

	if (c->opts.max_rate <= 0 || !conn)
		return true;
	evhttp_connection_get_peer(conn, &addr, &port);
	if (!addr)
		return true;
	if (!(b = hmap_get(&c->rate, addr))) {
		if (hmap_size(&c->rate) >= RATE_CLIENTS_MAX)
			rate_forget(c);
		if (!(b = calloc(1, sizeof *b)))
			fatal("calloc");
		snprintf(b->addr, sizeof b->addr, "%s", addr);
		b->tokens = burst;
		b->last_us = now;
		hmap_put(&c->rate, b->addr, b);
	}
	b->tokens += (double)(now - b->last_us) / 1e6 * c->opts.max_rate;
	if (b->tokens > burst)
		b->tokens = burst;
	b->last_us = now;
	if (b->tokens < 1)
		return false;
	b->tokens -= 1;
	return true;
}

static void rate_forget(struct core *c)
{
	const char *k;
	void *v;
	for (size_t i = 0; hmap_next(&c->rate, &i, &k, &v);)
		free(v);
	hmap_free(&c->rate);
	hmap_init(&c->rate);
}

/* The path's '*' segment of a route that has one, else "" (id may hold a segment of a
 * pattern that matched only in part). */
static const char *route_id(const struct route *r, const char *id) { return strchr(r->pattern, '*') ? id : ""; }

static void dispatch(struct evhttp_request *req, void *arg)
{
	struct core *c = arg;
	const char *path = http_path(req);
	enum evhttp_cmd_type method = evhttp_request_get_command(req);
	bool path_known = false, anonymous = false;
	char id[128];
	struct mv_error err;
	struct authz_principal who;

	http_guard_request_arrived(c->api.guard, req);
	if (!rate_allows(c, req)) {
		mv_fail(&err, 429, "rate_limited", "more than %g requests/s from this address; retry in a second",
		        c->opts.max_rate);
		evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", "1");
		http_reply_error(req, &err);
		return;
	}
	for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
		const struct route *r = &routes[i];
		if (!http_route_match(r->pattern, path, id, sizeof id))
			continue;
		path_known = true;
		if (r->method != method)
			continue;
		if (c->leader && !follower_may_answer(c, r, req))
			return;
		if (node_cert_missing(c, r, req)) {
			mv_fail(&err, 403, "client_certificate_required",
			        "%s is a node's route: the core takes it only over a client certificate signed by "
			        "its --tls-client-ca (node --tls-cert FILE --tls-key FILE)", path);
			http_reply_error(req, &err);
			return;
		}
		if (r->access == ACCESS_NODE && node_authorized(c, req, id, &err) < 0) {
			http_reply_error(req, &err);
			return;
		}
		if (r->access != ACCESS_NODE && r->access != ACCESS_PUBLIC &&
		    authorize(c, req, r, &who, &anonymous, &err) < 0) {
			http_reply_error(req, &err);
			if (audited(r, method))
				audit_request(c->audit, req, r->pattern, route_id(r, id),
				              anonymous || err.status == 401 ? NULL : &who);
			return;
		}
		c->api.who = anonymous ? NULL : &who;
		r->handler(&c->api, req, id);
		c->api.who = NULL;
		if (audited(r, method))
			audit_request(c->audit, req, r->pattern, route_id(r, id), anonymous ? NULL : &who);
		return;
	}
	if (path_known)
		mv_fail(&err, 405, "method_not_allowed", "%s is not supported on %s", http_method_name(method), path);
	else
		mv_fail(&err, 404, "not_found", "no such API path: %s (see docs/API.md)", path);
	http_reply_error(req, &err);
}

/* ---- start-up ---- */

/* Connections the core takes in all: its open-files limit less what the core needs
 * besides (store, listener, event loop, logs), so accept() never fails for want of a
 * descriptor; past it a client gets 503 at once. */
static unsigned connections_max(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > UINT_MAX)
		return 0;
	return rl.rlim_cur > 2 * FDS_RESERVED ? (unsigned)(rl.rlim_cur - FDS_RESERVED) : (unsigned)rl.rlim_cur / 2;
}

static struct bufferevent *server_bufferevent(struct event_base *base, void *tls)
{
	return tls_server_bufferevent(base, tls);
}

/* The requests whose body may be big: an image's blob, and a node's registration, which
 * lists every instance the node runs (~20 bytes each: past 50,000 it outgrows the 1 MiB of
 * any other request; a simulated node can hold 262,144). */
static const char *const big_body_lines[] = {"PUT /v1/blobs/", "POST /v1/nodes/register ", NULL};

/* The connection limits, the same on the native API and the OpenStack façade. */
static void guard_limits(struct core *c, struct http_guard_limits *lim)
{
	*lim = (struct http_guard_limits){
		.conns_max = connections_max(),
		.conns_per_addr = (unsigned)c->opts.max_conns_per_addr,
		.read_timeout_s = c->opts.read_timeout_s,
		.head_max = MAX_HEADERS_SIZE,
		.body_max = MV_BODY_MAX,
		.big_body_max = MV_BLOB_MAX,
		.big_body_lines = big_body_lines,
		.on_reply = count_reply,
		.on_reply_arg = c,
		.new_bufferevent = c->tls ? server_bufferevent : NULL,
		.new_bufferevent_arg = c->tls,
		.tls = c->tls != NULL,
	};
}

static void attach_guard(struct core *c)
{
	struct http_guard_limits lim;
	guard_limits(c, &lim);
	c->api.guard = http_guard_attach(c->base, c->http, &lim);
}

static int open_openstack(struct core *c, char *err, size_t errlen)
{
	struct osapi_options oo = {.listen = c->opts.openstack_listen,
	                           .password_file = c->opts.openstack_password_file,
	                           .native_token = c->token,
	                           .data_dir = c->opts.data_dir,
	                           .auth = c->auth};
	if (!c->opts.openstack_listen)
		return 0;
	guard_limits(c, &oo.guard);
	c->os = osapi_create(c->base, &c->api, &oo, err, errlen);
	return c->os ? 0 : -1;
}

static int read_token(const char *path, char **out, char *err, size_t errlen)
{
	size_t len;
	int rc = fs_read_token(path, out);
	if (rc < 0) {
		snprintf(err, errlen, "cannot read --token-file %s: %s", path, strerror(-rc));
		return -1;
	}
	len = strlen(*out);
	if (len < 16 || len > 256) {
		free(*out);
		*out = NULL;
		snprintf(err, errlen, "--token-file %s must hold a token of 16-256 characters", path);
		return -1;
	}
	return 0;
}

/* --auth, or a listen address others can reach: a VIM shared beyond this host checks who
 * calls (loopback stays open for development, as before, unless --auth). */
static int auth_wanted(const struct core_options *o, bool *auth, char *err, size_t errlen)
{
	char host[256];
	int port;
	if (http_parse_hostport(o->listen, host, sizeof host, &port) < 0) {
		snprintf(err, errlen, "--listen %s is not HOST:PORT", o->listen);
		return -1;
	}
	*auth = o->auth || !http_host_is_loopback(host);
	return 0;
}

static void accept_resume(UNUSED evutil_socket_t fd, UNUSED short what, void *arg)
{
	evconnlistener_enable(arg);
}

/* accept() failed. Out of descriptors (EMFILE, ENFILE), retrying at once would spin and
 * log without end: stop accepting for a moment, let connections close, then resume.
 * (libevent hands this callback evhttp's pointer, so it works from the listener alone.) */
static void accept_error(struct evconnlistener *l, UNUSED void *arg)
{
	static int64_t last_log_us;
	int e = EVUTIL_SOCKET_ERROR();
	struct timeval tv = clock_timeval(ACCEPT_PAUSE_MS / 1000.0);
	if (e != EMFILE && e != ENFILE && e != ENOBUFS && e != ENOMEM) {
		log_warnx("accept: %s", evutil_socket_error_to_string(e));
		return;
	}
	if (clock_mono_us() - last_log_us > 10 * 1000000) { /* at most one line per 10 s */
		log_warnx("accept: %s: pausing %d ms (raise the open files limit?)", evutil_socket_error_to_string(e),
		          ACCEPT_PAUSE_MS);
		last_log_us = clock_mono_us();
	}
	evconnlistener_disable(l);
	if (event_base_once(evconnlistener_get_base(l), -1, EV_TIMEOUT, accept_resume, l, &tv) < 0)
		evconnlistener_enable(l);
}

static int bind_listener(struct core *c, char *err, size_t errlen)
{
	char host[256];
	int port;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	char addr[INET6_ADDRSTRLEN];

	if (http_parse_hostport(c->opts.listen, host, sizeof host, &port) < 0) {
		snprintf(err, errlen, "--listen %s is not HOST:PORT", c->opts.listen);
		return -1;
	}
	c->bound = evhttp_bind_socket_with_handle(c->http, host, (unsigned short)port);
	if (!c->bound) {
		snprintf(err, errlen, "cannot listen on %s: %s", c->opts.listen, strerror(errno));
		return -1;
	}
	evconnlistener_set_error_cb(evhttp_bound_socket_get_listener(c->bound), accept_error);
	if (getsockname(evhttp_bound_socket_get_fd(c->bound), (struct sockaddr *)&ss, &sl) < 0) {
		snprintf(err, errlen, "getsockname: %s", strerror(errno));
		return -1;
	}
	if (ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		inet_ntop(AF_INET6, &s6->sin6_addr, addr, sizeof addr);
		snprintf(c->url, sizeof c->url, "%s://[%s]:%d", c->tls ? "https" : "http", addr, ntohs(s6->sin6_port));
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		inet_ntop(AF_INET, &s4->sin_addr, addr, sizeof addr);
		snprintf(c->url, sizeof c->url, "%s://%s:%d", c->tls ? "https" : "http", addr, ntohs(s4->sin_port));
	}
	return 0;
}

/* The cluster's hooks: the event stream, and the recent traces the dashboard reads. */
static void on_instance_event(void *arg, const struct instance *in)
{
	events_publish_instance(((struct api *)arg)->events, in);
}

static void on_node_event(void *arg, const struct node *n, const char *what)
{
	struct api *a = arg;
	events_publish_node(a->events, n, what);
	/* a node came or went: the pools' shares change (when there are pools) */
	if (pools_nodes_changed(a->pools) && a->cluster)
		nodeapi_pools_changed(a);
}

static void on_instance_traced(void *arg, const struct instance *in)
{
	traces_record(((struct api *)arg)->traces, in->spec.driver, in->id, in->spec.name, in->node_id, &in->trace,
	              clock_wall_us());
}

/* ---- several cores over PostgreSQL ---- */

/* The cluster's hooks (their arg is the api): a core leads once its election says so. */
static bool core_leading(void *arg)
{
	struct api *a = arg;
	return a->leader && leader_is_leader(a->leader);
}

static void notify_leader(UNUSED evutil_socket_t fd, UNUSED short what, void *arg)
{
	struct api *a = arg;
	if (a->leader && leader_notify(a->leader) < 0)
		log_warnx("could not wake the leader; it takes the new instances within a second (its sweep)");
}

/* The NOTIFY goes on the election's connection, not in the store's transaction: sent at
 * once it could reach the leader before the rows it announces are committed (the store
 * may commit at the end of the loop's turn). A timer of 0 s fires in the next turn. */
static void core_follower_wrote(void *arg)
{
	struct api *a = arg;
	struct timeval now = {0, 0};
	if (event_base_once(a->base, -1, EV_TIMEOUT, notify_leader, a, &now) < 0)
		notify_leader(-1, 0, a);
}

/* A delete a follower took: what DELETE /v1/instances/ID does on the leader, or a
 * server's delete (remove_when_ended: stop, then remove once ended; kept until then).
 * Taken twice (a leader died between doing it and forgetting it), the second is refused
 * harmlessly. Done (true) unless it waits for the end, or the store failed. */
static bool apply_delete(void *arg, const char *id, bool remove_when_ended)
{
	struct core *c = arg;
	struct instance *in = cluster_instance(c->api.cluster, id);
	struct mv_error err = {0};
	int rc = 0;
	bool ended;
	if (!in)
		return true;
	ended = inst_state_terminal(in->state);
	if (ended)
		rc = cluster_instance_remove(c->api.cluster, in, &err);
	else if (!in->stop_requested)
		rc = cluster_instance_stop(c->api.cluster, in, &err);
	if (rc < 0)
		log_warnx("a delete of %s taken by another core: %s", id, err.message);
	if (rc < 0 && err.status >= 500)
		return false; /* the store failed: tried again at the next sweep */
	return ended || !remove_when_ended;
}

/* What apply_delete wrote, committed before its intents are forgotten (leader.h). */
static void commit_deletes(void *arg) { store_group_flush(((struct core *)arg)->store); }

static void on_work(void *arg)
{
	struct core *c = arg;
	cluster_pick_up(c->api.cluster);
	leader_take_intents(c->leader, apply_delete, commit_deletes, c);
}

/* The lead was just taken: memory becomes what the database says (the old leader's last
 * writes), then on_work places what waits. Nodes come to register (their heartbeats to
 * this core get register_again), and registration reconciles what each one runs. */
static void on_promoted(void *arg, bool after_another)
{
	struct core *c = arg;
	cluster_refresh(c->api.cluster);
	if (pools_reload(c->api.pools) < 0)
		log_warnx("could not read the pools again; nodes keep what this core loaded at its start");
	if (after_another)
		cluster_took_lead(c->api.cluster);
}

/* Another core changed what every core keeps in memory (leader.h, the catalog hook): that
 * part is loaded again from the database. One that fails to load stays marked and is
 * tried again on the next follow tick, so a change is seen within a bounded time. */
enum { CATALOG_TENANTS = 1, CATALOG_IMAGES = 2, CATALOG_NODEAUTH = 4, CATALOG_ALL = 7 };

static unsigned catalog_part(const char *table)
{
	if (!table)
		return CATALOG_ALL;
	if (strcmp(table, "projects") == 0 || strcmp(table, "users") == 0 || strcmp(table, "tokens") == 0)
		return CATALOG_TENANTS;
	if (strcmp(table, "images") == 0)
		return CATALOG_IMAGES;
	return strcmp(table, "node_secrets") == 0 ? CATALOG_NODEAUTH : CATALOG_ALL;
}

static void catalog_reload(struct core *c)
{
	unsigned todo = c->catalog_stale;
	c->catalog_stale = 0;
	if ((todo & CATALOG_TENANTS) && tenants_reload(c->api.tenants) < 0)
		c->catalog_stale |= CATALOG_TENANTS;
	if ((todo & CATALOG_IMAGES) && images_reload(c->api.images) < 0)
		c->catalog_stale |= CATALOG_IMAGES;
	if ((todo & CATALOG_NODEAUTH) && nodeauth_reload(c->api.nodeauth) < 0)
		c->catalog_stale |= CATALOG_NODEAUTH;
}

static void on_catalog(void *arg, const char *table)
{
	struct core *c = arg;
	c->catalog_stale |= catalog_part(table);
	catalog_reload(c);
}

#define FOLLOW_REFRESH_S 0.2 /* how soon a client waiting on a follower sees a state */
#define LEADER_SWEEP_TICKS 5 /* the leader picks up other cores' writes each second anyway */

/* A follower refreshes while clients wait there; the leader picks up what other cores
 * wrote each second even without a NOTIFY (one lost with a connection, say). */
static void on_follow_tick(UNUSED evutil_socket_t fd, UNUSED short what, void *arg)
{
	struct core *c = arg;
	if (c->catalog_stale)
		catalog_reload(c);
	leaderwatch_check(c->api.leaderwatch);
	if (leader_is_leader(c->leader)) {
		if (++c->follow_ticks % LEADER_SWEEP_TICKS == 0)
			on_work(c);
	} else if (leader_follows(c->leader) && cluster_waiting(c->api.cluster) > 0) {
		cluster_refresh(c->api.cluster);
	}
}

/* The store URL with this core's application name: the election fences a stalled leader
 * by it, its store's session with the rest. */
static void ha_prepare(struct core *c)
{
	char id[MV_ID_LEN + 1];
	size_t n;
	if (!c->opts.store)
		return;
	id_generate(id);
	snprintf(c->app, sizeof c->app, "microvim-core-%s", id);
	n = strlen(c->opts.store) + strlen(c->app) + 32;
	if (!(c->store_location = malloc(n)))
		fatal("malloc");
	snprintf(c->store_location, n, "%s%sapplication_name=%s", c->opts.store,
	         strchr(c->opts.store, '?') ? "&" : "?", c->app);
}

static int ha_open(struct core *c, char *err, size_t errlen)
{
	struct leader_hooks h = {.arg = c, .promoted = on_promoted, .work = on_work, .catalog = on_catalog};
	struct timeval tv = clock_timeval(FOLLOW_REFRESH_S);
	if (!c->store_location)
		return 0;
	if (!(c->leader = leader_open(c->base, c->opts.store, c->app, c->opts.advertise ? c->opts.advertise : c->url,
	                              &h, err, errlen)))
		return -1;
	c->api.leader = c->leader;
	leader_start(c->leader);
	c->follow_timer = event_new(c->base, -1, EV_PERSIST, on_follow_tick, c);
	event_add(c->follow_timer, &tv);
	return 0;
}

/* A turn's commit failed and the core is about to exit. A leader stopped amid a turn
 * (SIGSTOP between its writes and their commit) and fenced meanwhile finds its sessions
 * ended at that commit, before any check of its lease: asking now whether it still leads
 * makes it exit as a lost leader does (LEADER_EXIT_LOST, which supervisors and tests
 * expect), not with the store's failure. A leader that still leads goes on to the exit. */
static void on_store_fatal(void *arg)
{
	struct core *c = arg;
	if (c->leader)
		leader_is_leader(c->leader);
}

static int open_parts(struct core *c, char *err, size_t errlen)
{
	struct cluster_options co = {.cpu_ratio = c->opts.cpu_ratio, .policy = c->opts.policy,
	                             .heartbeat_timeout_s = c->opts.heartbeat_timeout_s,
	                             .heartbeat_rate_max = c->opts.heartbeat_rate_max,
	                             .max_inflight = c->opts.max_inflight};
	struct cluster_hooks hooks = {.arg = &c->api, .node_wake = nodeapi_node_wake,
	                              .instance_event = on_instance_event, .node_event = on_node_event,
	                              .instance_traced = on_instance_traced};
	if (c->store_location) {
		hooks.leading = core_leading;
		hooks.follower_wrote = core_follower_wrote;
	}
	int rc;
	if ((rc = fs_mkdir_p(c->opts.data_dir, 0700)) < 0) {
		snprintf(err, errlen, "cannot create --data-dir %s: %s", c->opts.data_dir, strerror(-rc));
		return -1;
	}
	if (store_open(c->store_location ? c->store_location : c->opts.data_dir, &c->store, err, errlen) < 0 ||
	    (!c->store_location && store_claim(c->store, err, errlen) < 0) ||
	    !(c->api.images = images_open(c->store, c->opts.data_dir, err, errlen)) ||
	    !(c->api.pools = pools_open(c->store, err, errlen)))
		return -1;
	if (!(c->api.cluster = cluster_create(c->base, c->store, c->api.images, c->api.metrics, &co, &hooks, err, errlen)))
		return -1;
	cluster_set_pools(c->api.cluster, c->api.pools);
	if (!(c->api.tenants = tenants_open(c->store, err, errlen)) ||
	    !(c->api.nodeauth = nodeauth_open(c->store, err, errlen)) ||
	    !(c->audit = audit_open(c->opts.data_dir, c->api.events, err, errlen)))
		return -1;
	if (c->auth && tenants_bootstrap(c->api.tenants, c->opts.data_dir, err, errlen) < 0)
		return -1;
	/* from here on (start-up wrote at once), one transaction per loop turn */
	store_group_start(c->store, c->base);
	store_group_on_fatal(c->store, on_store_fatal, c);
	return 0;
}

struct core *core_create(struct event_base *base, const struct core_options *opts, char *err, size_t errlen)
{
	struct core *c = calloc(1, sizeof *c);

	if (!c)
		fatal("calloc");
	c->opts = *opts;
	c->base = base;
	c->api.base = base;
	c->api.metrics = metrics_new();
	c->api.traces = traces_new();
	hmap_init(&c->rate);
	if (opts->token_file && read_token(opts->token_file, &c->token, err, errlen) < 0)
		goto fail;
	if ((opts->tls_cert || opts->tls_key || opts->tls_client_ca) &&
	    !(c->tls = tls_server_new(&(struct tls_files){.cert = opts->tls_cert, .key = opts->tls_key,
	                                                  .ca = opts->tls_client_ca},
	                              err, errlen)))
		goto fail;
	if (auth_wanted(opts, &c->auth, err, errlen) < 0)
		goto fail;
	c->api.offload = offload_new(base);
	c->http = evhttp_new(base);
	evhttp_set_max_headers_size(c->http, EVHTTP_HEADERS_CAP);
	evhttp_set_max_body_size(c->http, HARD_BODY_CAP);
	evhttp_set_timeout(c->http, IDLE_TIMEOUT_S);
	evhttp_set_allowed_methods(c->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_DELETE |
	                                        EVHTTP_REQ_PUT | EVHTTP_REQ_HEAD | EVHTTP_REQ_PATCH);
	evhttp_set_gencb(c->http, dispatch, c);
	attach_guard(c);
	c->api.events = events_new(base, c->api.guard);
	ha_prepare(c);
	if (open_parts(c, err, errlen) < 0 || bind_listener(c, err, errlen) < 0 ||
	    open_openstack(c, err, errlen) < 0 || ha_open(c, err, errlen) < 0)
		goto fail;
	c->api.url = c->opts.advertise ? c->opts.advertise : c->url;
	c->api.leaderwatch = leaderwatch_new(&c->api);
	log_info("core listening on %s (store %s%s, %zu instances, %d nodes known; authentication: %s)", c->url,
	         opts->store ? "in PostgreSQL" : opts->data_dir, opts->store ? "" : "/core.db",
	         cluster_instance_count(c->api.cluster), cluster_node_count(c->api.cluster),
	         c->auth ? "users' tokens" : c->token ? "--token-file" : "none (loopback)");
	return c;
fail:
	core_destroy(c);
	return NULL;
}

const char *core_url(const struct core *c) { return c->url; }

const char *core_openstack_url(const struct core *c) { return c->os ? osapi_url(c->os) : NULL; }

void core_drain(struct core *c)
{
	if (c->store) /* a create of this turn waiting for its commit is answered first */
		store_group_flush(c->store);
	if (c->bound) {
		evhttp_del_accept_socket(c->http, c->bound);
		c->bound = NULL;
	}
	osapi_drain(c->os);
	if (c->api.cluster)
		cluster_drain(c->api.cluster);
	events_close_all(c->api.events);
	logs_close_all(&c->api);
	if (c->api.cluster)
		nodeapi_release_polls(&c->api);
	leaderwatch_release(c->api.leaderwatch);
	log_info("draining: waiting clients answered, no new connections");
}

void core_destroy(struct core *c)
{
	if (!c)
		return;
	if (c->store) /* while what a waiting create's answer uses is still there */
		store_group_flush(c->store);
	if (c->api.events)
		events_close_all(c->api.events);
	logs_close_all(&c->api);
	if (c->api.cluster) {
		cluster_drain(c->api.cluster);
		nodeapi_release_polls(&c->api);
	}
	leaderwatch_free(c->api.leaderwatch);
	offload_free(c->api.offload); /* before what its jobs' requests refer to (the façade's log-ins too) */
	osapi_free(c->os); /* after the drain: its servers being deleted had waits on the cluster */
	if (c->follow_timer)
		event_free(c->follow_timer);
	leader_close(c->leader); /* after the drain: nothing calls it any more */
	cluster_destroy(c->api.cluster);
	tenants_close(c->api.tenants);
	nodeauth_close(c->api.nodeauth);
	images_close(c->api.images);
	pools_close(c->api.pools);
	rate_forget(c);
	hmap_free(&c->rate);
	if (c->http)
		evhttp_free(c->http); /* closes the connections, through the guard */
	audit_close(c->audit); /* after the last reply the guard reports */
	events_free(c->api.events);
	http_guard_free(c->api.guard);
	store_close(c->store);
	metrics_free(c->api.metrics);
	traces_free(c->api.traces);
	free(c->token);
	free(c->store_location);
	tls_ctx_free(c->tls); /* after evhttp_free: its connections used it */
	free(c);
}
