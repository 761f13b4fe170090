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
#include "core/api.h"
#include "core/cluster.h"
#include "core/events.h"
#include "core/images.h"
#include "core/metrics.h"
#include "core/osapi.h"
#include "core/store.h"
#include "core/stores.h"
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
	struct hmap rate;    /* client address -> request token bucket */
	struct store *store;
	struct api api;      /* what the handlers get: cluster, images, metrics, events, guard */
	struct osapi *os;    /* the OpenStack façade, or NULL */
};

void core_options_default(struct core_options *o)
{
	*o = (struct core_options){
		.listen = "127.0.0.1:4650",
		.data_dir = "/var/lib/microvim/core",
		.cpu_ratio = 16.0,
		.policy = SCHED_BINPACK,
		.heartbeat_timeout_s = 15,
		.max_rate = 10000,
		.max_conns_per_addr = 512,
		.read_timeout_s = 60,
		.max_inflight = CORE_MAX_INFLIGHT_DEFAULT,
	};
}

/* ---- routing ---- */

/* AUTH_PUBLIC: the dashboard's files only, which hold no data. */
enum route_auth { AUTH_USER, AUTH_NODE, AUTH_PUBLIC };

struct route {
	enum evhttp_cmd_type method;
	const char *pattern; /* '*' matches one path segment, passed as id */
	enum route_auth auth;
	route_fn *handler;
};

/* The whole API, one row per route (handlers: api.h). */
static const struct route routes[] = {
	{EVHTTP_REQ_POST, "/v1/instances", AUTH_USER, api_instances_create},
	{EVHTTP_REQ_GET, "/v1/instances", AUTH_USER, api_instances_list},
	{EVHTTP_REQ_GET, "/v1/instances/*", AUTH_USER, api_instance_show},
	{EVHTTP_REQ_DELETE, "/v1/instances/*", AUTH_USER, api_instance_delete},
	{EVHTTP_REQ_GET, "/v1/nodes", AUTH_USER, api_nodes_list},
	{EVHTTP_REQ_POST, "/v1/nodes/register", AUTH_USER, nodeapi_register},
	{EVHTTP_REQ_GET, "/v1/nodes/*", AUTH_USER, api_node_show},
	{EVHTTP_REQ_POST, "/v1/nodes/*/heartbeat", AUTH_NODE, nodeapi_heartbeat},
	{EVHTTP_REQ_GET, "/v1/nodes/*/assignments", AUTH_NODE, nodeapi_assignments},
	{EVHTTP_REQ_POST, "/v1/nodes/*/reports", AUTH_NODE, nodeapi_reports},
	{EVHTTP_REQ_PUT, "/v1/blobs/*", AUTH_USER, api_blob_put},
	{EVHTTP_REQ_GET, "/v1/blobs/*", AUTH_USER, api_blob_get},
	{EVHTTP_REQ_POST, "/v1/images", AUTH_USER, api_images_create},
	{EVHTTP_REQ_GET, "/v1/images", AUTH_USER, api_images_list},
	{EVHTTP_REQ_GET, "/v1/images/*", AUTH_USER, api_image_show},
	{EVHTTP_REQ_DELETE, "/v1/images/*", AUTH_USER, api_image_delete},
	{EVHTTP_REQ_GET, "/v1/health", AUTH_USER, api_health},
	{EVHTTP_REQ_GET, "/v1/events", AUTH_USER, api_events},
	{EVHTTP_REQ_GET, "/metrics", AUTH_USER, api_metrics},
	{EVHTTP_REQ_GET, "/v1/traces", AUTH_USER, api_traces},
	{EVHTTP_REQ_GET, "/ui", AUTH_PUBLIC, ui_index},
	{EVHTTP_REQ_GET, "/ui/*", AUTH_PUBLIC, ui_asset},
};

/* The cluster token, or a Keystone token of the OpenStack façade: one login for both APIs. */
static bool user_authorized(struct core *c, struct evhttp_request *req)
{
	return !c->token || http_bearer_matches(req, c->token) || (c->os && osapi_bearer_valid(c->os, req));
}

static bool node_authorized(struct core *c, struct evhttp_request *req, const char *id)
{
	struct node *n = cluster_node(c->api.cluster, id);
	return n && n->token[0] && http_bearer_matches(req, n->token);
}

static void count_reply(struct evhttp_request *req, void *arg)
{
	metrics_count_request(arg, evhttp_request_get_response_code(req));
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

static void dispatch(struct evhttp_request *req, void *arg)
{
	struct core *c = arg;
	const char *path = http_path(req);
	enum evhttp_cmd_type method = evhttp_request_get_command(req);
	bool path_known = false;
	char id[128];
	struct mv_error err;

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
		if (r->auth != AUTH_PUBLIC &&
		    (r->auth == AUTH_USER ? !user_authorized(c, req) : !node_authorized(c, req, id))) {
			mv_fail(&err, 401, "unauthorized",
			        r->auth == AUTH_USER ? "missing or wrong bearer token (Authorization: Bearer TOKEN)"
			                             : "missing or wrong node token; register the node again");
			http_reply_error(req, &err);
			return;
		}
		r->handler(&c->api, req, id);
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
		.big_body_line = "PUT /v1/blobs/",
		.on_reply = count_reply,
		.on_reply_arg = c->api.metrics,
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
	                           .data_dir = c->opts.data_dir};
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
	if (!http_host_is_loopback(host) && !c->token) {
		snprintf(err, errlen, "--listen %s is not a loopback address: give --token-file so that "
		         "every request must carry a bearer token", c->opts.listen);
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
		snprintf(c->url, sizeof c->url, "http://[%s]:%d", addr, ntohs(s6->sin6_port));
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		inet_ntop(AF_INET, &s4->sin_addr, addr, sizeof addr);
		snprintf(c->url, sizeof c->url, "http://%s:%d", addr, ntohs(s4->sin_port));
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
	events_publish_node(((struct api *)arg)->events, n, what);
}

static void on_instance_traced(void *arg, const struct instance *in)
{
	traces_record(((struct api *)arg)->traces, in->spec.driver, in->id, in->spec.name, in->node_id, &in->trace,
	              clock_wall_us());
}

static int open_parts(struct core *c, char *err, size_t errlen)
{
	struct cluster_options co = {.cpu_ratio = c->opts.cpu_ratio, .policy = c->opts.policy,
	                             .heartbeat_timeout_s = c->opts.heartbeat_timeout_s,
	                             .max_inflight = c->opts.max_inflight};
	struct cluster_hooks hooks = {.arg = &c->api, .node_wake = nodeapi_node_wake,
	                              .instance_event = on_instance_event, .node_event = on_node_event,
	                              .instance_traced = on_instance_traced};
	int rc;
	if ((rc = fs_mkdir_p(c->opts.data_dir, 0700)) < 0) {
		snprintf(err, errlen, "cannot create --data-dir %s: %s", c->opts.data_dir, strerror(-rc));
		return -1;
	}
	if (store_open(c->opts.data_dir, &c->store, err, errlen) < 0 ||
	    !(c->api.images = images_open(c->store, c->opts.data_dir, err, errlen)))
		return -1;
	if (!(c->api.cluster = cluster_create(c->base, c->store, c->api.images, c->api.metrics, &co, &hooks, err, errlen)))
		return -1;
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
	c->http = evhttp_new(base);
	evhttp_set_max_headers_size(c->http, EVHTTP_HEADERS_CAP);
	evhttp_set_max_body_size(c->http, HARD_BODY_CAP);
	evhttp_set_timeout(c->http, IDLE_TIMEOUT_S);
	evhttp_set_allowed_methods(c->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_DELETE |
	                                        EVHTTP_REQ_PUT | EVHTTP_REQ_HEAD | EVHTTP_REQ_PATCH);
	evhttp_set_gencb(c->http, dispatch, c);
	attach_guard(c);
	c->api.events = events_new(c->api.guard);
	if (open_parts(c, err, errlen) < 0 || bind_listener(c, err, errlen) < 0 || open_openstack(c, err, errlen) < 0)
		goto fail;
	log_info("core listening on %s (store %s/core.db, %zu instances, %d nodes known)", c->url, opts->data_dir,
	         cluster_instance_count(c->api.cluster), cluster_node_count(c->api.cluster));
	return c;
fail:
	core_destroy(c);
	return NULL;
}

const char *core_url(const struct core *c) { return c->url; }

const char *core_openstack_url(const struct core *c) { return c->os ? osapi_url(c->os) : NULL; }

void core_drain(struct core *c)
{
	if (c->bound) {
		evhttp_del_accept_socket(c->http, c->bound);
		c->bound = NULL;
	}
	osapi_drain(c->os);
	if (c->api.cluster)
		cluster_drain(c->api.cluster);
	events_close_all(c->api.events);
	if (c->api.cluster)
		nodeapi_release_polls(&c->api);
	log_info("draining: waiting clients answered, no new connections");
}

void core_destroy(struct core *c)
{
	if (!c)
		return;
	if (c->api.events)
		events_close_all(c->api.events);
	if (c->api.cluster) {
		cluster_drain(c->api.cluster);
		nodeapi_release_polls(&c->api);
	}
	osapi_free(c->os); /* after the drain: its servers being deleted had waits on the cluster */
	cluster_destroy(c->api.cluster);
	images_close(c->api.images);
	rate_forget(c);
	hmap_free(&c->rate);
	if (c->http)
		evhttp_free(c->http); /* closes the connections, through the guard */
	events_free(c->api.events);
	http_guard_free(c->api.guard);
	store_close(c->store);
	metrics_free(c->api.metrics);
	traces_free(c->api.traces);
	free(c->token);
	free(c);
}
