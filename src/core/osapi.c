/* osapi — the façade's listener and its route table: one row per route, with its service
 * (whose shape its errors take) and who may call it. Discovery documents and
 * POST /v3/auth/tokens are public, as in OpenStack; everything else needs X-Auth-Token,
 * and the role it carries must allow the route's action (authz.h: a reader reads, a
 * member also creates and deletes, an admin also manages flavors, projects and users). */
#include "core/osapi.h"

#include <errno.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ctype.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "common/fs.h"
#include "common/http.h"
#include "common/log.h"
#include "core/api.h"
#include "core/cluster.h"
#include "core/leader.h"
#include "core/os.h"

#define OS_PASSWORD_MAX 256

/* PUBLIC: no token; the others: authz.h's actions. */
enum os_access { OS_READ = ACTION_READ, OS_WRITE = ACTION_WRITE, OS_ADMIN = ACTION_ADMIN, OS_PUBLIC };

struct os_route {
	enum evhttp_cmd_type method;
	const char *pattern; /* '*' matches one path segment, the handler's r->id */
	enum os_service service;
	enum os_access access;
	os_route_fn *handler;
};

/* The whole façade, one row per route (handlers: os.h). A fixed path comes before the
 * pattern it would also match (servers/detail before servers/ *). */
static const struct os_route routes[] = {
	{EVHTTP_REQ_GET, "/identity", OS_IDENTITY, OS_PUBLIC, os_identity_root},
	{EVHTTP_REQ_GET, "/identity/v3", OS_IDENTITY, OS_PUBLIC, os_identity_v3},
	{EVHTTP_REQ_POST, "/identity/v3/auth/tokens", OS_IDENTITY, OS_PUBLIC, os_tokens_issue},
	{EVHTTP_REQ_GET, "/identity/v3/auth/tokens", OS_IDENTITY, OS_READ, os_tokens_check},
	{EVHTTP_REQ_HEAD, "/identity/v3/auth/tokens", OS_IDENTITY, OS_READ, os_tokens_check},
	{EVHTTP_REQ_DELETE, "/identity/v3/auth/tokens", OS_IDENTITY, OS_READ, os_tokens_revoke},
	{EVHTTP_REQ_GET, "/identity/v3/projects", OS_IDENTITY, OS_ADMIN, os_projects_list},
	{EVHTTP_REQ_GET, "/identity/v3/projects/*", OS_IDENTITY, OS_READ, os_project_show},
	{EVHTTP_REQ_GET, "/identity/v3/users", OS_IDENTITY, OS_ADMIN, os_users_list},

	{EVHTTP_REQ_GET, "/compute", OS_COMPUTE, OS_PUBLIC, os_compute_root},
	{EVHTTP_REQ_GET, "/compute/v2.1", OS_COMPUTE, OS_PUBLIC, os_compute_v21},
	{EVHTTP_REQ_POST, "/compute/v2.1/servers", OS_COMPUTE, OS_WRITE, os_servers_create},
	{EVHTTP_REQ_GET, "/compute/v2.1/servers", OS_COMPUTE, OS_READ, os_servers_list},
	{EVHTTP_REQ_GET, "/compute/v2.1/servers/detail", OS_COMPUTE, OS_READ, os_servers_detail},
	{EVHTTP_REQ_GET, "/compute/v2.1/servers/*", OS_COMPUTE, OS_READ, os_server_show},
	{EVHTTP_REQ_DELETE, "/compute/v2.1/servers/*", OS_COMPUTE, OS_WRITE, os_server_delete},
	{EVHTTP_REQ_POST, "/compute/v2.1/servers/*/action", OS_COMPUTE, OS_WRITE, os_server_action},
	{EVHTTP_REQ_GET, "/compute/v2.1/servers/*/ips", OS_COMPUTE, OS_READ, os_server_ips},
	{EVHTTP_REQ_GET, "/compute/v2.1/servers/*/metadata", OS_COMPUTE, OS_READ, os_server_metadata},
	{EVHTTP_REQ_GET, "/compute/v2.1/servers/*/os-volume_attachments", OS_COMPUTE, OS_READ, os_server_volumes},
	{EVHTTP_REQ_GET, "/compute/v2.1/flavors", OS_COMPUTE, OS_READ, os_flavors_list},
	{EVHTTP_REQ_POST, "/compute/v2.1/flavors", OS_COMPUTE, OS_ADMIN, os_flavor_create},
	{EVHTTP_REQ_GET, "/compute/v2.1/flavors/detail", OS_COMPUTE, OS_READ, os_flavors_detail},
	{EVHTTP_REQ_GET, "/compute/v2.1/flavors/*", OS_COMPUTE, OS_READ, os_flavor_show},
	{EVHTTP_REQ_DELETE, "/compute/v2.1/flavors/*", OS_COMPUTE, OS_ADMIN, os_flavor_delete},
	{EVHTTP_REQ_GET, "/compute/v2.1/flavors/*/os-extra_specs", OS_COMPUTE, OS_READ, os_flavor_specs_get},
	{EVHTTP_REQ_POST, "/compute/v2.1/flavors/*/os-extra_specs", OS_COMPUTE, OS_ADMIN, os_flavor_specs_set},
	{EVHTTP_REQ_GET, "/compute/v2.1/limits", OS_COMPUTE, OS_READ, os_limits},
	{EVHTTP_REQ_GET, "/compute/v2.1/os-availability-zone", OS_COMPUTE, OS_READ, os_zones},
	{EVHTTP_REQ_GET, "/compute/v2.1/os-availability-zone/detail", OS_COMPUTE, OS_READ, os_zones},
	{EVHTTP_REQ_GET, "/compute/v2.1/os-keypairs", OS_COMPUTE, OS_READ, os_keypairs},

	{EVHTTP_REQ_GET, "/image", OS_IMAGE, OS_PUBLIC, os_image_root},
	{EVHTTP_REQ_GET, "/image/versions", OS_IMAGE, OS_PUBLIC, os_image_root},
	{EVHTTP_REQ_GET, "/image/v2/schemas/image", OS_IMAGE, OS_READ, os_image_schemas},
	{EVHTTP_REQ_POST, "/image/v2/images", OS_IMAGE, OS_WRITE, os_images_create},
	{EVHTTP_REQ_GET, "/image/v2/images", OS_IMAGE, OS_READ, os_images_list},
	{EVHTTP_REQ_GET, "/image/v2/images/*", OS_IMAGE, OS_READ, os_image_show},
	{EVHTTP_REQ_DELETE, "/image/v2/images/*", OS_IMAGE, OS_WRITE, os_image_delete},
	{EVHTTP_REQ_PUT, "/image/v2/images/*/file", OS_IMAGE, OS_WRITE, os_image_upload},
	{EVHTTP_REQ_GET, "/image/v2/images/*/file", OS_IMAGE, OS_READ, os_image_download},

	{EVHTTP_REQ_GET, "/network", OS_NETWORK, OS_PUBLIC, os_network_root},
	{EVHTTP_REQ_GET, "/network/v2.0", OS_NETWORK, OS_PUBLIC, os_network_v20},
	{EVHTTP_REQ_GET, "/network/v2.0/networks", OS_NETWORK, OS_READ, os_networks_list},
	{EVHTTP_REQ_GET, "/network/v2.0/networks/*", OS_NETWORK, OS_READ, os_network_show},
	{EVHTTP_REQ_GET, "/network/v2.0/subnets", OS_NETWORK, OS_READ, os_network_empty_list},
	{EVHTTP_REQ_GET, "/network/v2.0/ports", OS_NETWORK, OS_READ, os_network_empty_list},
	{EVHTTP_REQ_GET, "/network/v2.0/security-groups", OS_NETWORK, OS_READ, os_network_empty_list},
	{EVHTTP_REQ_GET, "/network/v2.0/extensions", OS_NETWORK, OS_READ, os_network_empty_list},
};

/* The microversion asked for: "OpenStack-API-Version: compute 2.X" (or "latest"), else
 * "X-OpenStack-Nova-API-Version: 2.X"; none: 2.1. -1 when asked for one outside ours. */
static int nova_minor(struct evhttp_request *req)
{
	struct evkeyvalq *h = evhttp_request_get_input_headers(req);
	const char *v = evhttp_find_header(h, "OpenStack-API-Version");
	char *end;
	long minor;

	if (v) {
		while (isspace((unsigned char)*v))
			v++;
		if (strncasecmp(v, "compute", 7) != 0)
			v = NULL; /* another service's: not ours */
		else
			for (v += 7; isspace((unsigned char)*v);)
				v++;
	}
	if (!v)
		v = evhttp_find_header(h, "X-OpenStack-Nova-API-Version");
	if (!v)
		return OS_NOVA_MIN_MINOR;
	if (strcasecmp(v, "latest") == 0)
		return OS_NOVA_MAX_MINOR;
	if (strncmp(v, "2.", 2) != 0)
		return -1;
	errno = 0;
	minor = strtol(v + 2, &end, 10);
	if (errno || end == v + 2 || *end || minor < OS_NOVA_MIN_MINOR || minor > OS_NOVA_MAX_MINOR)
		return -1;
	return (int)minor;
}

static void nova_version_headers(struct evhttp_request *req, int minor)
{
	struct evkeyvalq *out = evhttp_request_get_output_headers(req);
	char v[32];
	snprintf(v, sizeof v, "compute 2.%d", minor);
	evhttp_add_header(out, "OpenStack-API-Version", v);
	evhttp_add_header(out, "X-OpenStack-Nova-API-Version", v + 8);
	evhttp_add_header(out, "Vary", "OpenStack-API-Version, X-OpenStack-Nova-API-Version");
}

/* ---- several cores sharing a data dir ---- */

/* The façade's files (flavors, Glance's records) may be written by another core's façade
 * when the cores share --data-dir: each is read again when it changed. A writer renames a
 * new file into place, so a new inode, size or mtime says so; one stat a request. */
static bool file_changed(const char *data_dir, const char *name, struct os_file_stamp *seen)
{
	char path[4096];
	struct stat st;
	struct os_file_stamp now = {0};
	if (snprintf(path, sizeof path, "%s/%s", data_dir, name) >= (int)sizeof path)
		return false;
	if (stat(path, &st) == 0)
		now = (struct os_file_stamp){.known = true, .dev = st.st_dev, .ino = st.st_ino, .size = st.st_size,
		                             .mtime = st.st_mtim};
	if (now.known == seen->known && now.dev == seen->dev && now.ino == seen->ino && now.size == seen->size &&
	    now.mtime.tv_sec == seen->mtime.tv_sec && now.mtime.tv_nsec == seen->mtime.tv_nsec)
		return false;
	*seen = now;
	return true;
}

static void files_refresh(struct osapi *o)
{
	char err[512];
	struct os_flavors *fl;
	struct os_glance *g;
	if (file_changed(o->data_dir, OS_FLAVORS_FILE, &o->flavors_seen)) {
		if ((fl = os_flavors_open(o->data_dir, err, sizeof err))) {
			os_flavors_free(o->flavors);
			o->flavors = fl;
		} else {
			log_warnx("openstack: %s; keeping the flavors read before", err);
		}
	}
	if (file_changed(o->data_dir, OS_GLANCE_FILE, &o->glance_seen)) {
		if ((g = os_glance_open(o->data_dir, err, sizeof err))) {
			os_glance_free(o->glance);
			o->glance = g;
		} else {
			log_warnx("openstack: %s; keeping the image records read before", err);
		}
	}
}

static void dispatch(struct evhttp_request *req, void *arg)
{
	struct osapi *o = arg;
	const char *path = http_path(req);
	enum evhttp_cmd_type method = evhttp_request_get_command(req);
	const struct os_route *known = NULL;
	char id[128];
	struct os_req r = {.req = req, .id = id, .minor = OS_NOVA_MIN_MINOR};
	struct mv_error err;

	http_guard_request_arrived(o->guard, req);
	for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
		const struct os_route *rt = &routes[i];
		const char *token;
		if (!http_route_match(rt->pattern, path, id, sizeof id))
			continue;
		known = rt;
		if (rt->method != method)
			continue;
		if (rt->service == OS_COMPUTE) {
			if ((r.minor = nova_minor(req)) < 0) {
				mv_fail(&err, 406, "version_not_acceptable",
				        "this compute API speaks microversions 2.%d to 2.%d (OpenStack-API-Version: compute 2.X)",
				        OS_NOVA_MIN_MINOR, OS_NOVA_MAX_MINOR);
				os_reply_error(req, rt->service, &err);
				return;
			}
			nova_version_headers(req, r.minor);
		}
		token = evhttp_find_header(evhttp_request_get_input_headers(req), "X-Auth-Token");
		if (rt->access != OS_PUBLIC && (!token || !os_identity_authenticate(o->identity, token, &r.who))) {
			evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate",
			                  "Keystone uri=\"/identity/v3\"");
			mv_fail(&err, 401, "unauthorized",
			        "%s X-Auth-Token: get one with POST /identity/v3/auth/tokens (openstack token issue)",
			        token ? "unknown or expired" : "missing");
			os_reply_error(req, rt->service, &err);
			return;
		}
		if (rt->access != OS_PUBLIC && !authz_allows(r.who.authz.role, (enum authz_action)rt->access)) {
			mv_fail(&err, 403, "forbidden", "Policy doesn't allow %s %s to be performed: role %s of project %s",
			        http_method_name(method), path, authz_role_names[r.who.authz.role], r.who.authz.project);
			os_reply_error(req, rt->service, &err);
			return;
		}
		/* a follower among several cores answers what the leader last wrote (core/leader.h) */
		if (rt->service == OS_COMPUTE && o->native->leader && !leader_is_leader(o->native->leader) &&
		    leader_follows(o->native->leader))
			cluster_refresh(o->native->cluster);
		if (o->native->leader)
			files_refresh(o);
		rt->handler(o, &r);
		return;
	}
	if (known)
		mv_fail(&err, 405, "method_not_allowed", "%s is not supported on %s", http_method_name(method), path);
	else
		mv_fail(&err, 404, "not_found", "no such OpenStack API path: %s (see docs/API.md, \"OpenStack façade\")",
		        path);
	os_reply_error(req, known ? known->service
	                          : strncmp(path, "/identity", 9) == 0 ? OS_IDENTITY
	                          : strncmp(path, "/image", 6) == 0     ? OS_IMAGE
	                          : strncmp(path, "/network", 8) == 0   ? OS_NETWORK
	                                                                : OS_COMPUTE,
	               &err);
}

/* ---- start-up ---- */

static int bind_listener(struct osapi *o, const char *listen, bool has_auth, char *err, size_t errlen)
{
	char host[256], addr[INET6_ADDRSTRLEN];
	int port;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;

	if (http_parse_hostport(listen, host, sizeof host, &port) < 0) {
		snprintf(err, errlen, "--openstack-listen %s is not HOST:PORT", listen);
		return -1;
	}
	if (!http_host_is_loopback(host) && !has_auth) {
		snprintf(err, errlen, "--openstack-listen %s is not a loopback address: give "
		         "--openstack-password-file so that only the admin gets tokens", listen);
		return -1;
	}
	if (!(o->bound = evhttp_bind_socket_with_handle(o->http, host, (unsigned short)port))) {
		snprintf(err, errlen, "cannot listen on %s (--openstack-listen): %s", listen, strerror(errno));
		return -1;
	}
	if (getsockname(evhttp_bound_socket_get_fd(o->bound), (struct sockaddr *)&ss, &sl) < 0) {
		snprintf(err, errlen, "getsockname: %s", strerror(errno));
		return -1;
	}
	if (ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		inet_ntop(AF_INET6, &s6->sin6_addr, addr, sizeof addr);
		snprintf(o->url, sizeof o->url, "http://[%s]:%d", addr, ntohs(s6->sin6_port));
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		inet_ntop(AF_INET, &s4->sin_addr, addr, sizeof addr);
		snprintf(o->url, sizeof o->url, "http://%s:%d", addr, ntohs(s4->sin_port));
	}
	return 0;
}

static int read_password(const char *path, char **out, char *err, size_t errlen)
{
	int rc = fs_read_token(path, out);
	if (rc < 0) {
		snprintf(err, errlen, "cannot read --openstack-password-file %s: %s", path, strerror(-rc));
		return -1;
	}
	if (strlen(*out) < 8 || strlen(*out) > OS_PASSWORD_MAX) {
		snprintf(err, errlen, "--openstack-password-file %s must hold a password of 8-%d characters", path,
		         OS_PASSWORD_MAX);
		free(*out);
		*out = NULL;
		return -1;
	}
	return 0;
}

/* The façade's only big body: an image's upload (Glance's PUT .../file), up to a blob. */
static const char *const image_upload_lines[] = {"PUT /image/v2/images/", NULL};


struct osapi *osapi_create(struct event_base *base, struct api *native, const struct osapi_options *opts,
                           char *err, size_t errlen)
{
	struct osapi *o = calloc(1, sizeof *o);
	struct http_guard_limits lim = opts->guard;
	char *password = NULL;

	if (!o)
		fatal("calloc");
	o->native = native;
	o->data_dir = opts->data_dir;
	hmap_init(&o->deleting);
	hmap_init(&o->acting);
	if (opts->password_file && read_password(opts->password_file, &password, err, errlen) < 0)
		goto fail;
	o->identity = os_identity_new(password, opts->native_token, opts->auth ? native->tenants : NULL,
	                              native->offload);
	o->auth = opts->auth;
	free(password);
	if (!(o->flavors = os_flavors_open(opts->data_dir, err, errlen)) ||
	    !(o->glance = os_glance_open(opts->data_dir, err, errlen)))
		goto fail;
	o->http = evhttp_new(base);
	evhttp_set_max_headers_size(o->http, lim.head_max + 4096);
	evhttp_set_max_body_size(o->http, lim.big_body_max + 4096);
	evhttp_set_timeout(o->http, 30);
	evhttp_set_allowed_methods(o->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_DELETE | EVHTTP_REQ_PUT |
	                                        EVHTTP_REQ_HEAD | EVHTTP_REQ_PATCH);
	evhttp_set_gencb(o->http, dispatch, o);
	lim.big_body_lines = image_upload_lines; /* an image's upload: up to a blob */
	o->guard = http_guard_attach(base, o->http, &lim);
	if (bind_listener(o, opts->listen, opts->auth || opts->password_file || opts->native_token, err, errlen) < 0)
		goto fail;
	log_info("OpenStack façade listening on %s (OS_AUTH_URL=%s/identity/v3)", o->url, o->url);
	return o;
fail:
	osapi_free(o);
	return NULL;
}

const char *osapi_url(const struct osapi *o) { return o->url; }

bool osapi_bearer_valid(struct osapi *o, struct evhttp_request *req)
{
	const char *h = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
	struct os_principal who;
	return !o->auth && h && strncmp(h, "Bearer ", 7) == 0 && os_identity_authenticate(o->identity, h + 7, &who);
}

void osapi_drain(struct osapi *o)
{
	if (o && o->bound) {
		evhttp_del_accept_socket(o->http, o->bound);
		o->bound = NULL;
	}
}

void osapi_free(struct osapi *o)
{
	if (!o)
		return;
	if (o->http)
		evhttp_free(o->http);
	http_guard_free(o->guard);
	os_identity_free(o->identity);
	os_flavors_free(o->flavors);
	os_glance_free(o->glance);
	os_deleting_free(o);
	os_acting_free(o);
	free(o);
}
