/* target_openstack — push's target for OpenStack Nova (--api openstack), the client side of
 * the paper's Nova measurements done as a user of the compute API does it:
 *
 *   set-up   credentials as the openstack CLI takes them (openstack.h), one Keystone token
 *            for the whole run, the compute endpoint from the catalog; --image (a name via
 *            Glance, or an id), --flavor (a name or an id), --network (none (default), auto,
 *            a network's name via Neutron, or an id) resolved once
 *   create   POST /servers {"server": {"name", "imageRef", "flavorRef", "networks"}}
 *            (microversion 2.37, which "networks": "none" needs), 202 with the server's id;
 *            then GET /servers/{id} every --poll-ms (default 10) until its status is ACTIVE
 *            (running: total_ms from the intended send to that answer), ERROR (failed, with
 *            Nova's fault message) or --timeout passes
 *   delete   DELETE /servers/{id}, then GET every --poll-ms until 404
 *
 * Records carry no phases (Nova keeps no per-instance trace): `microvim analyze --vim nova`
 * splits the same runs from a capture. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"
#include "tools/openstack.h"
#include "tools/push_target.h"

#define COMPUTE_MICROVERSION "2.37"
#define SETUP_TIMEOUT_S 30

enum step { STEP_CREATE, STEP_POLL, STEP_DELETE, STEP_GONE };

struct openstack {
	const struct push_options *o;
	struct os_session session;
	char prefix[512]; /* the compute endpoint's path, e.g. "/v2.1" */
	char compute_url[600];
	char image_id[64], flavor_id[128];
	char region[OS_FIELD], interface[32]; /* of the credentials: every look-up uses them */
	json_t *networks; /* "none", "auto", or [{"uuid": ID}] */
};

static bool is_uuid(const char *s)
{
	static const char hex[] = "0123456789abcdefABCDEF";
	size_t n = strlen(s);
	if (n == 32)
		return strspn(s, hex) == 32;
	if (n != 36)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((i == 8 || i == 13 || i == 18 || i == 23) ? s[i] != '-' : !strchr(hex, s[i]))
			return false;
	return true;
}

static int check(const struct push_options *o)
{
	if (!o->image || !o->flavor) {
		fprintf(stderr, "microvim push: --api openstack needs --image NAME|ID and --flavor NAME|ID\n");
		return -1;
	}
	if (o->config || o->ready || o->vcpus > 0 || o->memory_mb > 0 || strcmp(o->driver, "exec") != 0) {
		fprintf(stderr, "microvim push: --driver, --config, --ready, --vcpus and --memory-mb go with --api microvim "
		                "(with openstack the flavor sizes the server)\n");
		return -1;
	}
	return 0;
}

/* GET url: 0 and the body, or -1 after saying why. */
static int get(struct openstack *s, const char *url, struct os_response *r)
{
	char err[512];
	if (os_request(url, "GET", s->session.token, NULL, NULL, SETUP_TIMEOUT_S, r, err, sizeof err) < 0) {
		fprintf(stderr, "microvim push: %s\n", err);
		return -1;
	}
	return 0;
}

/* One item of a list look-up by name: 0, or -1 after saying why (none, several). */
static int one_by_name(const json_t *list, const char *what, const char *name, char *id, size_t idlen)
{
	size_t i, found = 0;
	const json_t *it;
	json_array_foreach(list, i, it) {
		const char *n = json_string_value(json_object_get(it, "name"));
		if (n && strcmp(n, name) == 0) {
			if (found++ == 0)
				snprintf(id, idlen, "%s", json_string_value(json_object_get(it, "id")) ?: "");
		}
	}
	if (found == 1 && id[0])
		return 0;
	fprintf(stderr, "microvim push: %s \"%s\": %s\n", what, name,
	        found ? "several have that name: give its id" : "none has that name");
	return -1;
}

/* A name as a query value: unreserved characters as they are, the rest %-encoded. */
static void query_escape(const char *in, char *out, size_t len)
{
	static const char unreserved[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-~";
	size_t w = 0;
	for (; *in && w + 4 <= len; in++) {
		if (strchr(unreserved, *in)) {
			out[w++] = *in;
		} else {
			static const char hex[] = "0123456789ABCDEF";
			out[w++] = '%';
			out[w++] = hex[(unsigned char)*in >> 4];
			out[w++] = hex[(unsigned char)*in & 15];
		}
	}
	out[w] = '\0';
}

static int resolve_image(struct openstack *s, const char *image)
{
	char url[1400], base[600], err[512], esc[768];
	struct os_response r;
	int rc;
	if (is_uuid(image)) {
		snprintf(s->image_id, sizeof s->image_id, "%s", image);
		return 0;
	}
	if (os_catalog_url(s->session.catalog, "image", s->interface, s->region, base, sizeof base, err, sizeof err) < 0) {
		fprintf(stderr, "microvim push: --image %s is a name, and Glance cannot be found to look it up: %s\n", image,
		        err);
		return -1;
	}
	query_escape(image, esc, sizeof esc);
	snprintf(url, sizeof url, "%s/v2/images?name=%s", base, esc);
	if (get(s, url, &r) < 0)
		return -1;
	rc = r.status == 200 ? one_by_name(json_object_get(r.body, "images"), "image", image, s->image_id, sizeof s->image_id)
	                     : -1;
	if (r.status != 200)
		fprintf(stderr, "microvim push: Glance answered %d to %s\n", r.status, url);
	os_response_free(&r);
	return rc;
}

static int resolve_flavor(struct openstack *s, const char *flavor)
{
	char url[1400], esc[768];
	struct os_response r;
	int rc = -1;
	query_escape(flavor, esc, sizeof esc); /* an id in the path: escaped the same way */
	snprintf(url, sizeof url, "%s/flavors/%s", s->compute_url, esc);
	{
		if (get(s, url, &r) < 0)
			return -1;
		if (r.status == 200) {
			snprintf(s->flavor_id, sizeof s->flavor_id, "%s",
			         json_string_value(json_object_get(json_object_get(r.body, "flavor"), "id")) ?: flavor);
			os_response_free(&r);
			return 0;
		}
		os_response_free(&r);
	}
	snprintf(url, sizeof url, "%s/flavors?is_public=None", s->compute_url);
	if (get(s, url, &r) < 0)
		return -1;
	if (r.status == 200)
		rc = one_by_name(json_object_get(r.body, "flavors"), "flavor", flavor, s->flavor_id, sizeof s->flavor_id);
	else
		fprintf(stderr, "microvim push: Nova answered %d to %s\n", r.status, url);
	os_response_free(&r);
	return rc;
}

static int resolve_network(struct openstack *s, const char *network)
{
	char url[1400], base[600], err[512], id[128] = "", esc[768];
	struct os_response r;
	int rc = -1;
	if (!network || strcmp(network, "none") == 0 || strcmp(network, "auto") == 0) {
		s->networks = json_string(network ? network : "none");
		return 0;
	}
	if (is_uuid(network)) {
		s->networks = json_pack("[{s:s}]", "uuid", network);
		return 0;
	}
	if (os_catalog_url(s->session.catalog, "network", s->interface, s->region, base, sizeof base, err, sizeof err) < 0) {
		fprintf(stderr, "microvim push: --network %s is a name, and Neutron cannot be found to look it up: %s\n",
		        network, err);
		return -1;
	}
	query_escape(network, esc, sizeof esc);
	snprintf(url, sizeof url, "%s/v2.0/networks?name=%s", base, esc);
	if (get(s, url, &r) < 0)
		return -1;
	if (r.status == 200)
		rc = one_by_name(json_object_get(r.body, "networks"), "network", network, id, sizeof id);
	else
		fprintf(stderr, "microvim push: Neutron answered %d to %s\n", r.status, url);
	os_response_free(&r);
	if (rc == 0)
		s->networks = json_pack("[{s:s}]", "uuid", id);
	return rc;
}

static void header(struct push_endpoint *ep, const char *name, const char *value)
{
	snprintf(ep->headers[ep->n_headers][0], sizeof ep->headers[0][0], "%s", name);
	snprintf(ep->headers[ep->n_headers][1], sizeof ep->headers[0][1], "%s", value); /* values are short here */
	ep->n_headers++;
}

static void close_(void *state)
{
	struct openstack *s = state;
	if (!s)
		return;
	os_session_free(&s->session);
	json_decref(s->networks);
	free(s);
}

static int open_(const struct push_options *o, struct push_endpoint *ep, void **state)
{
	struct openstack *s = calloc(1, sizeof *s);
	struct os_creds c;
	/* as the openstack CLI: --os-cloud, else $OS_CLOUD unless OS_AUTH_URL says to take OS_* */
	const char *auth_url = getenv("OS_AUTH_URL");
	const char *cloud = o->os_cloud ? o->os_cloud : auth_url && *auth_url ? NULL : getenv("OS_CLOUD");
	char err[1024];
	int rc;

	if (!s)
		fatal("out of memory");
	s->o = o;
	rc = cloud && *cloud ? os_creds_from_cloud(&c, cloud, err, sizeof err) : os_creds_from_env(&c, err, sizeof err);
	if (rc < 0) {
		fprintf(stderr, "microvim push: %s\n", err);
		goto usage;
	}
	snprintf(s->region, sizeof s->region, "%s", c.region);
	snprintf(s->interface, sizeof s->interface, "%s", c.interface);
	if ((rc = os_authenticate(&c, &s->session, err, sizeof err)) < 0) {
		fprintf(stderr, "microvim push: %s\n", err);
		close_(s);
		return rc == -ECONNREFUSED ? PUSH_EXIT_UNREACHABLE : PUSH_EXIT_USAGE;
	}
	if (os_catalog_url(s->session.catalog, "compute", c.interface, c.region, s->compute_url, sizeof s->compute_url, err,
	                   sizeof err) < 0 ||
	    os_url_split(s->compute_url, ep->host, sizeof ep->host, &ep->port, s->prefix, sizeof s->prefix) < 0) {
		fprintf(stderr, "microvim push: Nova's endpoint: %s\n", err[0] ? err : s->compute_url);
		goto usage;
	}
	if (resolve_image(s, o->image) < 0 || resolve_flavor(s, o->flavor) < 0 || resolve_network(s, o->network) < 0)
		goto usage;
	if (strlen(s->session.token) >= sizeof ep->headers[0][1]) {
		fprintf(stderr, "microvim push: Keystone's token is longer than %zu bytes\n", sizeof ep->headers[0][1] - 1);
		goto usage;
	}
	header(ep, "X-Auth-Token", s->session.token);
	header(ep, "Accept", "application/json");
	header(ep, "OpenStack-API-Version", "compute " COMPUTE_MICROVERSION);
	header(ep, "X-OpenStack-Nova-API-Version", COMPUTE_MICROVERSION);
	*state = s;
	return PUSH_EXIT_OK;
usage:
	close_(s);
	return PUSH_EXIT_USAGE;
}

/* ---- one server ---- */

static void failed_http(struct push_job *j, const char *what, int status, const json_t *body)
{
	char code[16];
	if (status == 0) {
		push_job_failed(j, "no_answer", "no answer from Nova to %s", what);
		return;
	}
	snprintf(code, sizeof code, "http_%d", status);
	push_job_failed(j, code, "%s: HTTP %d: %s", what, status, os_error_message(body) ?: "(no message)");
}

static void poll_status(struct push_job *j, void *state);

static void on_poll(struct push_job *j, int status, json_t *body, void *state)
{
	struct openstack *s = state;
	const json_t *server = json_object_get(body, "server");
	const char *st = json_string_value(json_object_get(server, "status")) ?: "";

	if (status == 200 && strcmp(st, "ACTIVE") == 0) {
		push_job_reached(j);
		snprintf(j->rec.state, sizeof j->rec.state, "running");
		push_job_instantiated(j);
		return;
	}
	if (status == 200 && strcmp(st, "ERROR") == 0) {
		snprintf(j->rec.state, sizeof j->rec.state, "failed");
		push_job_failed(j, "ERROR", "ERROR: %s",
		                json_string_value(json_object_get(json_object_get(server, "fault"), "message")) ?: "(no fault)");
		push_job_instantiated(j);
		return;
	}
	if (status != 200) {
		snprintf(j->rec.state, sizeof j->rec.state, "error");
		failed_http(j, "GET /servers/{id}", status, body);
		push_job_instantiated(j);
		return;
	}
	if ((double)(clock_mono_us() - j->intended_us) / 1e6 > s->o->timeout) {
		snprintf(j->rec.state, sizeof j->rec.state, "%.23s", st);
		push_job_failed(j, "timeout", "still %s after %.12g s", st, s->o->timeout);
		push_job_instantiated(j);
		return;
	}
	push_job_later(j, (int64_t)(s->o->poll_ms * 1000), poll_status);
}

static void poll_status(struct push_job *j, void *state)
{
	struct openstack *s = state;
	char path[700];
	j->step = STEP_POLL;
	snprintf(path, sizeof path, "%s/servers/%s", s->prefix, j->rec.id);
	push_job_send(j, "GET", path, NULL, on_poll);
}

static void on_create(struct push_job *j, int status, json_t *body, void *state)
{
	struct openstack *s = state;
	const char *id = json_string_value(json_object_get(json_object_get(body, "server"), "id"));
	if (status != 202 || !id) {
		snprintf(j->rec.state, sizeof j->rec.state, "error");
		j->rec.total_ms = (double)(clock_mono_us() - j->intended_us) / 1000.0;
		failed_http(j, "POST /servers", status, body);
		push_job_instantiated(j);
		return;
	}
	snprintf(j->rec.id, sizeof j->rec.id, "%s", id);
	push_job_later(j, (int64_t)(s->o->poll_ms * 1000), poll_status);
}

static void create(struct push_job *j, void *state)
{
	struct openstack *s = state;
	char path[600], *text;
	json_t *body = json_pack("{s:{s:s, s:s, s:s, s:O}}", "server", "name", j->name, "imageRef", s->image_id, "flavorRef",
	                         s->flavor_id, "networks", s->networks);
	if (!body || !(text = json_dumps(body, JSON_COMPACT)))
		fatal("out of memory");
	json_decref(body);
	snprintf(path, sizeof path, "%s/servers", s->prefix);
	j->step = STEP_CREATE;
	push_job_send(j, "POST", path, text, on_create);
	free(text);
}

static void gone_poll(struct push_job *j, void *state);

static void on_gone_poll(struct push_job *j, int status, json_t *body UNUSED, void *state)
{
	struct openstack *s = state;
	if (status == 404) {
		push_job_deleted(j, true);
		return;
	}
	if (status != 200 || (double)(clock_mono_us() - j->since_us) / 1e6 > PUSH_STOP_TIMEOUT_S) {
		push_job_deleted(j, false);
		return;
	}
	push_job_later(j, (int64_t)(s->o->poll_ms * 1000), gone_poll);
}

static void gone_poll(struct push_job *j, void *state)
{
	struct openstack *s = state;
	char path[700];
	j->step = STEP_GONE;
	snprintf(path, sizeof path, "%s/servers/%s", s->prefix, j->rec.id);
	push_job_send(j, "GET", path, NULL, on_gone_poll);
}

static void on_delete(struct push_job *j, int status, json_t *body UNUSED, void *state)
{
	struct openstack *s = state;
	if (status == 404) {
		push_job_deleted(j, true);
		return;
	}
	if (status != 204 && status != 202) {
		push_job_deleted(j, false);
		return;
	}
	push_job_later(j, (int64_t)(s->o->poll_ms * 1000), gone_poll);
}

static void remove_(struct push_job *j, void *state)
{
	struct openstack *s = state;
	char path[700];
	j->step = STEP_DELETE;
	j->since_us = clock_mono_us();
	snprintf(path, sizeof path, "%s/servers/%s", s->prefix, j->rec.id);
	push_job_send(j, "DELETE", path, NULL, on_delete);
}

const struct push_target push_target_openstack = {
	.name = "openstack",
	.has_trace = false,
	.check = check,
	.open = open_,
	.create = create,
	.remove = remove_,
	.close = close_,
};
