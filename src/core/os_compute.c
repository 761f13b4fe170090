/* os_compute — Nova v2.1 (microversions 2.1-2.79): servers as views of the cluster's
 * instances, flavors, limits, availability zones, key pairs.
 *
 * A server IS an instance: its id is the instance's 16 hex digits as the first half of a
 * UUID (os_server_id), its status is the instance's state seen as Nova's (server_status),
 * creating one builds the same typed spec a POST /v1/instances builds and calls
 * cluster_instances_create. What an instance does not have, a flavor gives at creation:
 *   ram                    memory_mb
 *   vcpus                  vcpus, unless the extra spec microvim:vcpus says a fraction ("0.1")
 *   microvim:driver        the driver (default qemu)
 *   microvim:config        the driver's config, JSON ({"accel": "tcg"})
 *   microvim:ready         the guest's ready marker on its serial console: the server is
 *                          BUILD until the guest prints it, then ACTIVE
 * Flavors are the façade's own (Nova's are too): DATA_DIR/openstack-flavors.json, written
 * atomically at every change. Deleting a server stops its instance and removes it once
 * stopped (task_state "deleting" meanwhile), as Nova's delete does; on a follower among
 * several cores, the leader is asked to (core/leader.h), as the native delete does. Its
 * actions: os-stop stops the instance (SHUTOFF); os-start runs a SHUTOFF one again
 * (cluster_instance_start: SHUTOFF with task_state "powering-on", then ACTIVE); reboot, SOFT
 * or HARD, restarts it on its node (cluster_instance_restart: REBOOT or HARD_REBOOT,
 * task_state "rebooting" or "rebooting_hard", then ACTIVE); SOFT needs an ACTIVE server,
 * HARD takes a SHUTOFF or ERROR one too, as Nova's do. */
#include "core/os.h"

#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/fs.h"
#include "common/http.h"
#include "common/log.h"
#include "core/api.h"
#include "core/cluster.h"
#include "core/images.h"
#include "core/leader.h"
#include "core/tenants.h"
#include "drivers/drivers.h"

#define FLAVORS_MAX 1024
#define FLAVOR_ID_MAX 255
#define FLAVOR_NAME_MAX 255
#define EXTRA_SPECS_MAX 64
#define EXTRA_SPEC_MAX 255
#define DELETE_WAIT_S 600.0
#define DEFAULT_DRIVER "qemu"
#define AZ "nova"

/* ---- flavors ---- */

struct os_flavor {
	char id[FLAVOR_ID_MAX + 1];
	char name[FLAVOR_NAME_MAX + 1];
	int64_t ram_mb, disk_gb, ephemeral_gb, swap_mb;
	int vcpus;
	double rxtx;
	bool is_public;
	json_t *description; /* string or null */
	json_t *extra_specs; /* {"k": "v"} */
};

struct os_flavors {
	char path[4096];
	struct os_flavor *items[FLAVORS_MAX];
	size_t n;
};

static void flavor_free(struct os_flavor *f)
{
	if (!f)
		return;
	json_decref(f->description);
	json_decref(f->extra_specs);
	free(f);
}

/* The flavor's fields as Nova shows them, and as the file keeps them. */
static json_t *flavor_json(const struct osapi *o, const struct os_flavor *f, int minor)
{
	json_t *j = json_pack("{s:s, s:s, s:I, s:I, s:i, s:I, s:b, s:f, s:b}", "id", f->id, "name", f->name, "ram",
	                      (json_int_t)f->ram_mb, "disk", (json_int_t)f->disk_gb, "vcpus", f->vcpus,
	                      "OS-FLV-EXT-DATA:ephemeral", (json_int_t)f->ephemeral_gb, "OS-FLV-DISABLED:disabled",
	                      false, "rxtx_factor", f->rxtx, "os-flavor-access:is_public", f->is_public);
	json_object_set_new(j, "swap", f->swap_mb ? json_integer(f->swap_mb) : json_string(""));
	if (o)
		json_object_set_new(j, "links", os_links(o, "/compute/v2.1/flavors", "/compute/flavors", f->id));
	if (!o || minor >= 55)
		json_object_set(j, "description", f->description);
	if (!o || minor >= 61)
		json_object_set(j, "extra_specs", f->extra_specs);
	return j;
}

static int flavors_save(struct os_flavors *fl, struct mv_error *err)
{
	json_t *list = json_array(), *doc;
	char *text;
	int rc;
	for (size_t i = 0; i < fl->n; i++)
		json_array_append_new(list, flavor_json(NULL, fl->items[i], 0));
	doc = json_pack("{s:o}", "flavors", list);
	if (!(text = json_dumps(doc, JSON_INDENT(1) | JSON_REAL_PRECISION(12))))
		fatal("json_dumps");
	json_decref(doc);
	rc = fs_write_atomic(fl->path, text, strlen(text), true);
	free(text);
	if (rc < 0)
		return mv_fail(err, 500, "store_failed", "cannot write %s: %s", fl->path, strerror(-rc));
	return 0;
}

static struct os_flavor *flavor_find(struct os_flavors *fl, const char *ref)
{
	const char *slash = strrchr(ref, '/'); /* a flavorRef may be the flavor's URL */
	if (slash)
		ref = slash + 1;
	for (size_t i = 0; i < fl->n; i++)
		if (strcmp(fl->items[i]->id, ref) == 0)
			return fl->items[i];
	return NULL;
}

/* Nova's flavor body (os-flavor-manage's schema): 400 naming the field. */
static int flavor_parse(const json_t *j, struct os_flavor *f, struct mv_error *err)
{
	static const char *const fields[] = {"name", "ram", "vcpus", "disk", "id", "swap", "OS-FLV-EXT-DATA:ephemeral",
	                                     "rxtx_factor", "os-flavor-access:is_public", "description", NULL};
	const json_t *v;
	if (!json_is_object(j))
		return mv_fail(err, 400, "invalid_type", "flavor must be an object");
	if (mv_check_fields(j, "flavor.", fields, err) < 0)
		return -1;
	v = json_object_get(j, "name");
	if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > FLAVOR_NAME_MAX ||
	    strlen(json_string_value(v)) != json_string_length(v))
		return mv_fail(err, 400, "invalid_field", "flavor.name must be a string of 1-%d characters", FLAVOR_NAME_MAX);
	snprintf(f->name, sizeof f->name, "%s", json_string_value(v));
	v = json_object_get(j, "ram");
	if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > MV_MEMORY_MB_MAX)
		return mv_fail(err, 400, "invalid_field", "flavor.ram must be MiB, 1-%d", MV_MEMORY_MB_MAX);
	f->ram_mb = json_integer_value(v);
	v = json_object_get(j, "vcpus");
	if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > MV_VCPUS_MAX)
		return mv_fail(err, 400, "invalid_field",
		               "flavor.vcpus must be 1-%d (a fraction goes in the extra spec microvim:vcpus)", MV_VCPUS_MAX);
	f->vcpus = (int)json_integer_value(v);
	v = json_object_get(j, "disk");
	if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 1000000)
		return mv_fail(err, 400, "invalid_field", "flavor.disk must be GiB, 0-1000000 (microvim boots diskless: 0)");
	f->disk_gb = json_integer_value(v);
	if ((v = json_object_get(j, "swap")) && !(json_is_string(v) && json_string_length(v) == 0)) {
		if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > MV_MEMORY_MB_MAX)
			return mv_fail(err, 400, "invalid_field", "flavor.swap must be MiB, 0-%d, or \"\"", MV_MEMORY_MB_MAX);
		f->swap_mb = json_integer_value(v);
	}
	if ((v = json_object_get(j, "OS-FLV-EXT-DATA:ephemeral"))) {
		if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 1000000)
			return mv_fail(err, 400, "invalid_field", "flavor.OS-FLV-EXT-DATA:ephemeral must be GiB, 0-1000000");
		f->ephemeral_gb = json_integer_value(v);
	}
	f->rxtx = 1.0;
	if ((v = json_object_get(j, "rxtx_factor"))) {
		if (!json_is_number(v) || json_number_value(v) <= 0 || json_number_value(v) > 3.4e38)
			return mv_fail(err, 400, "invalid_field", "flavor.rxtx_factor must be a positive number");
		f->rxtx = json_number_value(v);
	}
	f->is_public = true;
	if ((v = json_object_get(j, "os-flavor-access:is_public"))) {
		if (!json_is_boolean(v))
			return mv_fail(err, 400, "invalid_field", "flavor.os-flavor-access:is_public must be true or false");
		f->is_public = json_is_true(v);
	}
	v = json_object_get(j, "description");
	if (v && !json_is_null(v) && (!json_is_string(v) || json_string_length(v) > 65535))
		return mv_fail(err, 400, "invalid_field", "flavor.description must be a string of at most 65535 bytes, or null");
	f->description = v ? json_incref((json_t *)v) : json_null();
	return 0;
}

/* A flavor id: given (1-255 of [A-Za-z0-9._ -]), or null/"auto" for a new UUID. */
static int flavor_id(const json_t *v, char *out, struct mv_error *err)
{
	const char *s;
	if (!v || json_is_null(v) || (json_is_string(v) && strcmp(json_string_value(v), "auto") == 0)) {
		os_uuid_random(out);
		return 0;
	}
	if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > FLAVOR_ID_MAX)
		return mv_fail(err, 400, "invalid_field", "flavor.id must be a string of 1-%d characters, or null", FLAVOR_ID_MAX);
	s = json_string_value(v);
	if (strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._- ") != json_string_length(v))
		return mv_fail(err, 400, "invalid_field", "flavor.id may hold letters, digits, '.', '_', '-' and spaces");
	snprintf(out, FLAVOR_ID_MAX + 1, "%s", s);
	return 0;
}

/* The extra specs microvim reads, checked when they are set (a bad one would fail every
 * create); other keys are kept as Nova keeps them. */
static int extra_spec_check(const char *key, const json_t *v, struct mv_error *err)
{
	const char *s;
	if (!json_is_string(v) || json_string_length(v) > EXTRA_SPEC_MAX || strlen(key) > EXTRA_SPEC_MAX ||
	    strlen(json_string_value(v)) != json_string_length(v))
		return mv_fail(err, 400, "invalid_field", "extra_specs.%.64s must be a string of at most %d bytes", key,
		               EXTRA_SPEC_MAX);
	s = json_string_value(v);
	if (strcmp(key, "microvim:vcpus") == 0) {
		char *end;
		double d;
		errno = 0;
		d = strtod(s, &end);
		if (errno || end == s || *end || !(d >= 0.001 && d <= MV_VCPUS_MAX))
			return mv_fail(err, 400, "invalid_field", "extra_specs.microvim:vcpus must be a number of vCPUs, 0.001-%d",
			               MV_VCPUS_MAX);
	} else if (strcmp(key, "microvim:driver") == 0) {
		if (!driver_find(s))
			return mv_fail(err, 400, "invalid_field", "extra_specs.microvim:driver must be %s", driver_names_text());
	} else if (strcmp(key, "microvim:config") == 0) {
		json_t *c = json_loads(s, 0, NULL);
		bool ok = json_is_object(c);
		json_decref(c);
		if (!ok)
			return mv_fail(err, 400, "invalid_field", "extra_specs.microvim:config must be a JSON object (the driver's config)");
	} else if (strcmp(key, "microvim:ready") == 0) {
		if (json_string_length(v) == 0 || json_string_length(v) > MV_READY_PATTERN_MAX)
			return mv_fail(err, 400, "invalid_field", "extra_specs.microvim:ready must be a marker of 1-%d bytes",
			               MV_READY_PATTERN_MAX);
	}
	return 0;
}

struct os_flavors *os_flavors_open(const char *data_dir, char *err, size_t errlen)
{
	struct os_flavors *fl = calloc(1, sizeof *fl);
	struct mv_error e;
	json_t *j, *list, *v;
	char *text = NULL;
	size_t len, i;
	int rc;

	if (!fl)
		fatal("calloc");
	snprintf(fl->path, sizeof fl->path, "%s/%s", data_dir, OS_FLAVORS_FILE);
	if ((rc = fs_read_file(fl->path, 16 << 20, &text, &len)) == -ENOENT)
		return fl;
	if (rc < 0) {
		snprintf(err, errlen, "cannot read %s: %s", fl->path, strerror(-rc));
		goto fail;
	}
	j = json_loads(text, 0, NULL);
	free(text);
	list = json_object_get(j, "flavors");
	json_array_foreach(list, i, v) {
		struct os_flavor *f = calloc(1, sizeof *f);
		json_t *copy = json_deep_copy(v);
		if (!f || !copy)
			fatal("calloc");
		f->extra_specs = json_incref(json_object_get(copy, "extra_specs"));
		json_object_del(copy, "extra_specs");
		json_object_del(copy, "OS-FLV-DISABLED:disabled");
		if (fl->n == FLAVORS_MAX || flavor_parse(copy, f, &e) < 0 || flavor_id(json_object_get(copy, "id"), f->id, &e) < 0 ||
		    !json_is_object(f->extra_specs)) {
			snprintf(err, errlen, "%s: flavor %zu is damaged (%s)", fl->path, i, fl->n == FLAVORS_MAX ? "too many" : e.message);
			json_decref(copy);
			flavor_free(f);
			json_decref(j);
			goto fail;
		}
		json_decref(copy);
		fl->items[fl->n++] = f;
	}
	json_decref(j);
	return fl;
fail:
	os_flavors_free(fl);
	return NULL;
}

void os_flavors_free(struct os_flavors *fl)
{
	if (!fl)
		return;
	for (size_t i = 0; i < fl->n; i++)
		flavor_free(fl->items[i]);
	free(fl);
}

static void reply_fail(struct os_req *r, const struct mv_error *err) { os_reply_error(r->req, OS_COMPUTE, err); }

static struct os_flavor *flavor_or_404(struct osapi *o, struct os_req *r)
{
	struct os_flavor *f = flavor_find(o->flavors, r->id);
	struct mv_error err;
	if (!f) {
		mv_fail(&err, 404, "not_found", "Flavor %.64s could not be found.", r->id);
		reply_fail(r, &err);
	}
	return f;
}

static void flavors_reply(struct osapi *o, struct os_req *r, bool detail)
{
	json_t *list = json_array();
	for (size_t i = 0; i < o->flavors->n; i++) {
		const struct os_flavor *f = o->flavors->items[i];
		json_array_append_new(list, detail ? flavor_json(o, f, r->minor)
		                                   : json_pack("{s:s, s:s, s:o}", "id", f->id, "name", f->name, "links",
		                                               os_links(o, "/compute/v2.1/flavors", "/compute/flavors", f->id)));
	}
	http_reply_json(r->req, 200, json_pack("{s:o}", "flavors", list));
}

void os_flavors_list(struct osapi *o, struct os_req *r) { flavors_reply(o, r, false); }
void os_flavors_detail(struct osapi *o, struct os_req *r) { flavors_reply(o, r, true); }

void os_flavor_show(struct osapi *o, struct os_req *r)
{
	struct os_flavor *f = flavor_or_404(o, r);
	if (f)
		http_reply_json(r->req, 200, json_pack("{s:o}", "flavor", flavor_json(o, f, r->minor)));
}

void os_flavor_create(struct osapi *o, struct os_req *r)
{
	struct os_flavors *fl = o->flavors;
	struct os_flavor *f = calloc(1, sizeof *f);
	json_t *body = NULL, *fj;
	struct mv_error err;

	if (!f)
		fatal("calloc");
	f->extra_specs = json_object();
	if (os_read_body(r->req, &body, &err) < 0)
		goto fail;
	fj = json_object_get(body, "flavor");
	if (!fj || json_object_size(body) != 1) {
		mv_fail(&err, 400, "invalid_field", "the body must be {\"flavor\": {\"name\", \"ram\", \"vcpus\", \"disk\"}}");
		goto fail;
	}
	if (flavor_parse(fj, f, &err) < 0 || flavor_id(json_object_get(fj, "id"), f->id, &err) < 0)
		goto fail;
	for (size_t i = 0; i < fl->n; i++)
		if (strcmp(fl->items[i]->id, f->id) == 0 || strcmp(fl->items[i]->name, f->name) == 0) {
			mv_fail(&err, 409, "flavor_exists", "Flavor with %s %.64s already exists.",
			        strcmp(fl->items[i]->id, f->id) == 0 ? "ID" : "name",
			        strcmp(fl->items[i]->id, f->id) == 0 ? f->id : f->name);
			goto fail;
		}
	if (fl->n == FLAVORS_MAX) {
		mv_fail(&err, 413, "too_many_flavors", "at most %d flavors; delete some first", FLAVORS_MAX);
		goto fail;
	}
	fl->items[fl->n++] = f;
	if (flavors_save(fl, &err) < 0) {
		fl->n--;
		goto fail;
	}
	http_reply_json(r->req, 200, json_pack("{s:o}", "flavor", flavor_json(o, f, r->minor)));
	json_decref(body);
	return;
fail:
	reply_fail(r, &err);
	json_decref(body);
	flavor_free(f);
}

void os_flavor_delete(struct osapi *o, struct os_req *r)
{
	struct os_flavors *fl = o->flavors;
	struct os_flavor *f;
	struct mv_error err;
	size_t i;
	if (!(f = flavor_or_404(o, r)))
		return;
	for (i = 0; fl->items[i] != f; i++)
		;
	memmove(&fl->items[i], &fl->items[i + 1], (fl->n - i - 1) * sizeof fl->items[0]);
	fl->n--;
	if (flavors_save(fl, &err) < 0) {
		memmove(&fl->items[i + 1], &fl->items[i], (fl->n - i) * sizeof fl->items[0]);
		fl->items[i] = f;
		fl->n++;
		reply_fail(r, &err);
		return;
	}
	flavor_free(f);
	evhttp_send_reply(r->req, 202, "Accepted", NULL);
}

void os_flavor_specs_get(struct osapi *o, struct os_req *r)
{
	struct os_flavor *f = flavor_or_404(o, r);
	if (f)
		http_reply_json(r->req, 200, json_pack("{s:O}", "extra_specs", f->extra_specs));
}

void os_flavor_specs_set(struct osapi *o, struct os_req *r)
{
	struct os_flavor *f;
	json_t *body = NULL, *specs, *merged = NULL, *old, *v;
	const char *k;
	struct mv_error err;

	if (!(f = flavor_or_404(o, r)))
		return;
	if (os_read_body(r->req, &body, &err) < 0)
		goto fail;
	specs = json_object_get(body, "extra_specs");
	if (!json_is_object(specs) || json_object_size(body) != 1) {
		mv_fail(&err, 400, "invalid_field", "the body must be {\"extra_specs\": {\"KEY\": \"VALUE\"}}");
		goto fail;
	}
	json_object_foreach(specs, k, v)
		if (extra_spec_check(k, v, &err) < 0)
			goto fail;
	merged = json_deep_copy(f->extra_specs);
	json_object_update(merged, specs);
	if (json_object_size(merged) > EXTRA_SPECS_MAX) {
		mv_fail(&err, 400, "invalid_field", "a flavor has at most %d extra specs", EXTRA_SPECS_MAX);
		goto fail;
	}
	old = f->extra_specs;
	f->extra_specs = merged;
	if (flavors_save(o->flavors, &err) < 0) {
		f->extra_specs = old;
		goto fail;
	}
	json_decref(old);
	http_reply_json(r->req, 200, json_pack("{s:O}", "extra_specs", specs));
	json_decref(body);
	return;
fail:
	if (merged && f->extra_specs != merged)
		json_decref(merged);
	json_decref(body);
	reply_fail(r, &err);
}

/* ---- servers as Nova sees an instance ---- */

struct server_status {
	const char *status, *vm_state, *task_state; /* task_state NULL: none */
	int power_state; /* 0 no state, 1 running, 4 shutdown */
};

/* What a server is doing: a start or reboot the façade asked for, until the instance is
 * running (ready, with a marker) or has ended. */
enum os_action { ACT_START, ACT_REBOOT_SOFT, ACT_REBOOT_HARD };

struct acting {
	struct osapi *o;
	char id[MV_ID_LEN + 1];
	enum os_action what;
	uint32_t run; /* the run it began */
};

static struct server_status acting_status(enum os_action what)
{
	switch (what) {
	case ACT_START: return (struct server_status){"SHUTOFF", "stopped", "powering-on", 4};
	case ACT_REBOOT_SOFT: return (struct server_status){"REBOOT", "active", "rebooting", 1};
	case ACT_REBOOT_HARD: break;
	}
	return (struct server_status){"HARD_REBOOT", "active", "rebooting_hard", 1};
}

/* The start or reboot in effect for in, or NULL. */
static const struct acting *acting_now(const struct osapi *o, const struct instance *in)
{
	const struct acting *act = hmap_get(&o->acting, in->id);
	return act && act->run == in->run && !inst_state_terminal(in->state) && !in->stop_requested ? act : NULL;
}

static struct server_status server_status(const struct osapi *o, const struct instance *in)
{
	bool deleting = hmap_get(&o->deleting, in->id) != NULL;
	const struct acting *act = acting_now(o, in);
	struct server_status s;
	switch (in->state) {
	case INST_PENDING:
	case INST_SCHEDULED: s = (struct server_status){"BUILD", "building", "scheduling", 0}; break;
	case INST_STARTING: s = (struct server_status){"BUILD", "building", "spawning", 0}; break;
	case INST_RUNNING:
		if (in->spec.ready_serial[0] && !in->ready && !in->stop_requested)
			s = (struct server_status){"BUILD", "building", "spawning", 1}; /* booting: not yet ready */
		else
			s = (struct server_status){"ACTIVE", "active", in->stop_requested ? "powering-off" : NULL, 1};
		break;
	case INST_STOPPED:
	case INST_EXITED: s = (struct server_status){"SHUTOFF", "stopped", NULL, 4}; break;
	case INST_FAILED:
	case INST_LOST:
	default: s = (struct server_status){"ERROR", "error", NULL, in->state == INST_LOST ? 0 : 4}; break;
	}
	if (act)
		s = acting_status(act->what);
	if (deleting)
		s.task_state = "deleting";
	return s;
}

/* The flavor an instance's resources and driver came from, when one still matches. */
static const struct os_flavor *flavor_of(const struct osapi *o, const struct instance *in)
{
	for (size_t i = 0; i < o->flavors->n; i++) {
		const struct os_flavor *f = o->flavors->items[i];
		const char *drv = json_string_value(json_object_get(f->extra_specs, "microvim:driver"));
		const char *fr = json_string_value(json_object_get(f->extra_specs, "microvim:vcpus"));
		int64_t milli = fr ? (int64_t)(strtod(fr, NULL) * 1000 + 0.5) : (int64_t)f->vcpus * 1000;
		if (f->ram_mb == in->spec.memory_mb && milli == in->spec.vcpus_milli &&
		    strcmp(drv ? drv : DEFAULT_DRIVER, in->spec.driver) == 0)
			return f;
	}
	return NULL;
}

static json_t *server_flavor(const struct osapi *o, const struct instance *in, int minor)
{
	const struct os_flavor *f = flavor_of(o, in);
	int vcpus = (int)((in->spec.vcpus_milli + 999) / 1000);
	if (minor < 47) /* a reference before 2.47, the flavor itself after */
		return f ? json_pack("{s:s, s:o}", "id", f->id, "links",
		                     os_links(o, "/compute/v2.1/flavors", "/compute/flavors", f->id))
		         : json_pack("{s:s, s:[]}", "id", "", "links");
	return json_pack("{s:i, s:I, s:I, s:i, s:i, s:s, s:o}", "vcpus", f ? f->vcpus : vcpus, "ram",
	                 (json_int_t)in->spec.memory_mb, "disk", (json_int_t)(f ? f->disk_gb : 0), "ephemeral", 0,
	                 "swap", 0, "original_name", f ? f->name : in->spec.driver, "extra_specs",
	                 f ? json_deep_copy(f->extra_specs) : json_object());
}

static json_t *server_brief(const struct osapi *o, const struct instance *in)
{
	char sid[OS_UUID_LEN + 1];
	os_server_id(in->id, sid);
	return json_pack("{s:s, s:s, s:o}", "id", sid, "name", in->spec.name, "links",
	                 os_links(o, "/compute/v2.1/servers", "/compute/servers", sid));
}

static json_t *server_json(const struct osapi *o, const struct os_req *r, const struct instance *in)
{
	char created[32], updated[32], iid[OS_UUID_LEN + 1], pid[OS_UUID_LEN + 1];
	struct server_status s = server_status(o, in);
	/* microvim keeps an instance's project, not the user who made it */
	bool own = strcmp(in->project, r->who.authz.project) == 0;
	const struct node *n = in->node_id[0] ? cluster_node(o->native->cluster, in->node_id) : NULL;
	json_t *j = server_brief(o, in), *addresses = json_object();

	os_time(in->created_wall_us, created, sizeof created);
	os_time(in->updated_wall_us, updated, sizeof updated);
	os_uuid_of("project", in->project, pid);
	if (in->spec.bridge[0])
		json_object_set_new(addresses, in->spec.bridge, json_array());
	json_object_update_new(j, json_pack("{s:s, s:s, s:s, s:s, s:s, s:{}, s:o, s:o, s:s, s:s, s:s, s:i}", "status",
	                                    s.status, "tenant_id", pid, "user_id", own ? r->who.user_id : "",
	                                    "created", created, "updated", updated, "metadata", "flavor",
	                                    server_flavor(o, in, r->minor), "addresses", addresses, "accessIPv4", "",
	                                    "accessIPv6", "", "OS-DCF:diskConfig", "MANUAL", "progress",
	                                    strcmp(s.status, "ACTIVE") == 0 ? 100 : 0));
	if (in->spec.image[0]) {
		os_uuid_of("image", in->spec.image, iid);
		json_object_set_new(j, "image", json_pack("{s:s, s:o}", "id", iid, "links",
		                                          os_links(o, "/image/v2/images", "/image/v2/images", iid)));
	} else
		json_object_set_new(j, "image", json_string(""));
	json_object_update_new(j, json_pack("{s:s, s:s, s:s?, s:i, s:[{s:s}], s:[], s:s, s:n, s:b, s:n}",
	                                    "OS-EXT-AZ:availability_zone", AZ, "OS-EXT-STS:vm_state", s.vm_state,
	                                    "OS-EXT-STS:task_state", s.task_state, "OS-EXT-STS:power_state",
	                                    s.power_state, "security_groups", "name", "default",
	                                    "os-extended-volumes:volumes_attached", "config_drive", "", "key_name",
	                                    "locked", false, "description"));
	if (!s.task_state)
		json_object_set_new(j, "OS-EXT-STS:task_state", json_null());
	json_object_set_new(j, "hostId", json_string(n ? n->id : ""));
	json_object_set_new(j, "OS-SRV-USG:launched_at", in->state >= INST_RUNNING ? json_string(created) : json_null());
	json_object_set_new(j, "OS-SRV-USG:terminated_at", json_null());
	if (r->minor >= 26)
		json_object_set_new(j, "tags", json_array());
	if (r->who.admin) {
		json_object_set_new(j, "OS-EXT-SRV-ATTR:host", n ? json_string(n->name) : json_null());
		json_object_set_new(j, "OS-EXT-SRV-ATTR:hypervisor_hostname", n ? json_string(n->name) : json_null());
		json_object_set_new(j, "OS-EXT-SRV-ATTR:instance_name", json_string(in->id));
	}
	if (strcmp(s.status, "ERROR") == 0)
		json_object_set_new(j, "fault", json_pack("{s:i, s:s, s:s}", "code", 500, "message",
		                                          in->error ? in->error
		                                          : in->state == INST_LOST ? "its node was lost"
		                                                                   : "the instance failed",
		                                          "created", updated));
	/* microvim's own view, for a client that wants it: the native state and the phase trace */
	json_object_set_new(j, "microvim:state", json_string(inst_state_names[in->state]));
	json_object_set_new(j, "microvim:driver", json_string(in->spec.driver));
	json_object_set_new(j, "microvim:run", json_integer(in->run)); /* one more at each os-start or reboot */
	if (in->has_trace)
		json_object_set_new(j, "microvim:trace", trace_to_json(&in->trace));
	return j;
}

/* A follower among several cores (core/leader.h): it acts on no instance itself. */
static bool following(const struct osapi *o) { return o->native->leader && !leader_is_leader(o->native->leader); }

static struct instance *server_or_404(struct osapi *o, struct os_req *r)
{
	char iid[MV_ID_LEN + 1];
	bool well_formed = os_instance_id(r->id, iid);
	struct instance *in = well_formed ? cluster_instance(o->native->cluster, iid) : NULL;
	struct mv_error err;
	/* the leader reads what followers stored before saying 404 (api.c's find_or_404) */
	if (!in && well_formed && !following(o) && o->native->leader && cluster_pick_up(o->native->cluster) == 0)
		in = cluster_instance(o->native->cluster, iid);
	if (in && !authz_sees(&r->who.authz, in->project))
		in = NULL; /* another project's: not found, so that its existence does not leak */
	if (!in) {
		mv_fail(&err, 404, "not_found", "Instance %.64s could not be found.", r->id);
		reply_fail(r, &err);
	}
	return in;
}

void os_server_show(struct osapi *o, struct os_req *r)
{
	struct instance *in = server_or_404(o, r);
	if (in)
		http_reply_json(r->req, 200, json_pack("{s:o}", "server", server_json(o, r, in)));
}

/* ---- GET /servers, /servers/detail: name (a substring, as Nova's regular expression
 * matches a plain word), status, limit, marker ---- */

struct server_list {
	struct osapi *o;
	struct os_req *r;
	bool detail;
	char name[256];
	char status[16];
	size_t limit, n;
	json_t *list;
	char last[OS_UUID_LEN + 1];
	bool all_projects; /* an admin's ?all_tenants=1; else the caller's project only, as Nova lists */
};

static bool list_one(void *arg, const struct instance *in)
{
	struct server_list *l = arg;
	if ((!l->all_projects && strcmp(in->project, l->r->who.authz.project) != 0) ||
	    (l->name[0] && !strstr(in->spec.name, l->name)) ||
	    (l->status[0] && strcasecmp(server_status(l->o, in).status, l->status) != 0))
		return false;
	json_array_append_new(l->list, l->detail ? server_json(l->o, l->r, in) : server_brief(l->o, in));
	os_server_id(in->id, l->last);
	l->n++;
	return true;
}

static void servers_reply(struct osapi *o, struct os_req *r, bool detail)
{
	/* Nova's osapi_max_limit: a list without a limit is a page of 1000 with a next link,
	 * so that a million servers are never one answer. */
	struct server_list l = {.o = o, .r = r, .detail = detail, .limit = 1000};
	char marker[64] = "", limit[32], iid[MV_ID_LEN + 1], all[8] = "";
	struct mv_error err;
	json_t *body;

	http_query(r->req, "name", l.name, sizeof l.name);
	http_query(r->req, "all_tenants", all, sizeof all);
	l.all_projects = r->who.admin && all[0] && strcmp(all, "0") != 0 && strcasecmp(all, "false") != 0;
	http_query(r->req, "status", l.status, sizeof l.status);
	if (http_query(r->req, "limit", limit, sizeof limit)) {
		char *end;
		long v = strtol(limit, &end, 10);
		if (end == limit || *end || v < 0 || v > 100000) {
			mv_fail(&err, 400, "invalid_query", "limit must be a whole number, 0-100000");
			goto fail;
		}
		l.limit = (size_t)v;
	}
	if (http_query(r->req, "marker", marker, sizeof marker) &&
	    (!os_instance_id(marker, iid) || !cluster_instance(o->native->cluster, iid) ||
	     !authz_sees(&r->who.authz, cluster_instance(o->native->cluster, iid)->project))) {
		mv_fail(&err, 400, "invalid_query", "marker [%.64s] not found", marker);
		goto fail;
	}
	l.list = json_array();
	cluster_instances_list(o->native->cluster, -1, marker[0] ? iid : NULL, l.limit, list_one, &l);
	body = json_pack("{s:o}", "servers", l.list);
	if (l.n == l.limit && l.n > 0) {
		char next[512];
		snprintf(next, sizeof next, "%s/compute/v2.1/servers%s?limit=%zu&marker=%s", o->url, detail ? "/detail" : "",
		         l.limit, l.last);
		json_object_set_new(body, "servers_links", json_pack("[{s:s, s:s}]", "rel", "next", "href", next));
	}
	http_reply_json(r->req, 200, body);
	return;
fail:
	reply_fail(r, &err);
}

void os_servers_list(struct osapi *o, struct os_req *r) { servers_reply(o, r, false); }
void os_servers_detail(struct osapi *o, struct os_req *r) { servers_reply(o, r, true); }

/* ---- POST /servers ---- */

/* The bridge a "networks" value asks for ("" for none): "auto" and "none" (2.37), or one
 * [{"uuid": NETWORK}] whose network is a bridge some node advertises. */
static int server_bridge(struct osapi *o, const json_t *nets, int minor, char *bridge, struct mv_error *err)
{
	const json_t *uuid;
	bridge[0] = '\0';
	if (!nets)
		return minor >= 37 ? mv_fail(err, 400, "invalid_field",
		                             "networks is required from microversion 2.37: \"auto\", \"none\" or [{\"uuid\": NETWORK}]")
		                   : 0;
	if (json_is_string(nets) && (strcmp(json_string_value(nets), "auto") == 0 || strcmp(json_string_value(nets), "none") == 0))
		return 0; /* microvim gives an instance no network unless asked for a bridge */
	if (!json_is_array(nets) || json_array_size(nets) > 1)
		return mv_fail(err, 400, "invalid_field",
		               "networks must be \"auto\", \"none\" or one [{\"uuid\": NETWORK}]: an instance joins one bridge");
	if (json_array_size(nets) == 0)
		return 0;
	uuid = json_object_get(json_array_get(nets, 0), "uuid");
	if (!json_is_string(uuid) || json_object_size(json_array_get(nets, 0)) != 1)
		return mv_fail(err, 400, "invalid_field", "networks[0] must be {\"uuid\": NETWORK} (no ports or fixed IPs)");
	for (int i = 0; i < cluster_node_count(o->native->cluster); i++) {
		const struct node *n = cluster_node_at(o->native->cluster, i);
		size_t k;
		json_t *b;
		json_array_foreach(n->bridges, k, b) {
			char id[OS_UUID_LEN + 1];
			os_uuid_of("network", json_string_value(b), id);
			if (strcmp(id, json_string_value(uuid)) == 0) {
				snprintf(bridge, MV_BRIDGE_MAX + 1, "%s", json_string_value(b));
				return 0;
			}
		}
	}
	return mv_fail(err, 400, "invalid_field", "Network %.64s could not be found.", json_string_value(uuid));
}

/* Nova's server body into the native create body, the flavor's extra specs applied. */
static int server_to_spec(struct osapi *o, struct os_req *r, const json_t *s, json_t **spec, struct mv_error *err)
{
	static const char *const fields[] = {"name", "imageRef", "flavorRef", "networks", "metadata", "min_count",
	                                     "max_count", "availability_zone", "security_groups", "config_drive",
	                                     "description", "user_data", "adminPass", "OS-DCF:diskConfig",
	                                     "return_reservation_id", "tags", NULL};
	const json_t *name = json_object_get(s, "name"), *img = json_object_get(s, "imageRef"),
		     *fref = json_object_get(s, "flavorRef"), *meta = json_object_get(s, "metadata"),
		     *maxc = json_object_get(s, "max_count"), *minc = json_object_get(s, "min_count"),
		     *az = json_object_get(s, "availability_zone");
	const struct os_flavor *f;
	const char *drv, *vc, *cfg, *ready;
	char image[MV_NAME_MAX + 1], bridge[MV_BRIDGE_MAX + 1];
	json_int_t count = 1;

	if (!json_is_object(s))
		return mv_fail(err, 400, "invalid_field", "the body must be {\"server\": {\"name\", \"imageRef\", \"flavorRef\"}}");
	if (mv_check_fields(s, "server.", fields, err) < 0)
		return -1;
	if (!json_is_string(name))
		return mv_fail(err, 400, "invalid_field", "server.name is required, a string");
	if (!json_is_string(fref) || !(f = flavor_find(o->flavors, json_string_value(fref))))
		return mv_fail(err, 400, "invalid_field", "Flavor %.64s could not be found (server.flavorRef: a flavor id)",
		               json_is_string(fref) ? json_string_value(fref) : "(none)");
	drv = json_string_value(json_object_get(f->extra_specs, "microvim:driver"));
	if (!drv)
		drv = DEFAULT_DRIVER;
	image[0] = '\0';
	if (!driver_find(drv)->boots_image) { /* a config says what runs (exec): no image to boot */
		if (img && !(json_is_string(img) && json_string_length(img) == 0))
			return mv_fail(err, 400, "invalid_field",
			               "server.imageRef must be \"\" with flavor %s: its driver %s runs its microvim:config, "
			               "not an image", f->name, drv);
	} else if (!json_is_string(img) || !os_glance_native_name(o, &r->who, json_string_value(img), image, sizeof image))
		return mv_fail(err, 400, "invalid_field",
		               "Image %.64s could not be found or has no data yet (server.imageRef: an active image's id)",
		               json_is_string(img) ? json_string_value(img) : "(none)");
	if (meta && (!json_is_object(meta) || json_object_size(meta) > 0))
		return mv_fail(err, 400, "invalid_field",
		               "server.metadata must be empty: microvim keeps no server metadata (flavor extra specs say what to run)");
	if (az && (!json_is_string(az) || strcmp(json_string_value(az), AZ) != 0))
		return mv_fail(err, 400, "invalid_field", "server.availability_zone: the only zone is \"" AZ "\"");
	if (maxc || minc) {
		const json_t *c = maxc ? maxc : minc;
		if (!json_is_integer(c) || json_integer_value(c) < 1 || json_integer_value(c) > MV_COUNT_MAX ||
		    (minc && (!json_is_integer(minc) || json_integer_value(minc) > json_integer_value(c))))
			return mv_fail(err, 400, "invalid_field", "server.min_count and max_count must be 1-%d, min <= max",
			               MV_COUNT_MAX);
		count = json_integer_value(c);
	}
	if (server_bridge(o, json_object_get(s, "networks"), r->minor, bridge, err) < 0)
		return -1;
	vc = json_string_value(json_object_get(f->extra_specs, "microvim:vcpus"));
	cfg = json_string_value(json_object_get(f->extra_specs, "microvim:config"));
	ready = json_string_value(json_object_get(f->extra_specs, "microvim:ready"));
	*spec = json_pack("{s:s, s:s, s:{s:f, s:I}}", "name", json_string_value(name), "driver", drv, "resources",
	                  "vcpus", vc ? strtod(vc, NULL) : (double)f->vcpus, "memory_mb", (json_int_t)f->ram_mb);
	if (image[0])
		json_object_set_new(*spec, "image", json_string(image));
	if (count > 1)
		json_object_set_new(*spec, "count", json_integer(count));
	if (cfg)
		json_object_set_new(*spec, "config", json_loads(cfg, 0, NULL));
	if (ready)
		json_object_set_new(*spec, "ready", json_pack("{s:s}", "serial", ready));
	if (bridge[0])
		json_object_set_new(*spec, "network", json_pack("{s:s}", "bridge", bridge));
	return 0;
}

/* A create's answer, once the cluster has it (at once, or at the end of the turn). */
struct server_answer {
	struct osapi *o;
	struct evhttp_request *req;
};

static void server_created(void *arg, struct instance *const *insts, UNUSED int n, UNUSED bool replayed,
                           const struct mv_error *err)
{
	struct server_answer *sa = arg;
	json_t *srv;
	if (err) {
		if (err->status == 503)
			evhttp_add_header(evhttp_request_get_output_headers(sa->req), "Retry-After", "1");
		os_reply_error(sa->req, OS_COMPUTE, err);
		free(sa);
		return;
	}
	srv = server_brief(sa->o, insts[0]);
	json_object_del(srv, "name");
	json_object_update_new(srv, json_pack("{s:s, s:[{s:s}]}", "OS-DCF:diskConfig", "MANUAL", "security_groups",
	                                      "name", "default"));
	http_reply_json(sa->req, 202, json_pack("{s:o}", "server", srv));
	free(sa);
}

void os_servers_create(struct osapi *o, struct os_req *r)
{
	json_t *body = NULL, *spec_json = NULL;
	struct inst_spec spec = {0};
	const struct tenant_project *p = tenants_project(o->native->tenants, r->who.authz.project);
	struct cluster_create_req cr = {.spec = &spec, .accepted_us = clock_mono_us(), .project = r->who.authz.project,
	                                .quota = p ? &p->quota : NULL, .any_image = r->who.admin};
	struct server_answer *sa;
	struct mv_error err;
	static const char *const top[] = {"server", "os:scheduler_hints", "OS-SCH-HNT:scheduler_hints", NULL};

	if (os_read_body(r->req, &body, &err) < 0 || mv_check_fields(body, "", top, &err) < 0 ||
	    server_to_spec(o, r, json_object_get(body, "server"), &spec_json, &err) < 0 ||
	    drv_spec_parse(&spec, spec_json, SPEC_REQUEST, &err) < 0) {
		json_decref(spec_json);
		json_decref(body);
		reply_fail(r, &err);
		return;
	}
	if (!(sa = malloc(sizeof *sa)))
		fatal("malloc");
	*sa = (struct server_answer){.o = o, .req = r->req};
	cluster_instances_create(o->native->cluster, &cr, server_created, sa); /* done with spec when it returns */
	spec_free(&spec);
	json_decref(spec_json);
	json_decref(body);
}

/* ---- DELETE /servers/{id}: stop, then remove once stopped ---- */

struct deleting {
	struct osapi *o;
	char id[MV_ID_LEN + 1];
	struct event *later; /* the removal, on the loop's next turn */
};

/* Stopped (or the wait ended): removed now, out of the cluster's wake-up of its waiters. */
static void delete_remove(UNUSED evutil_socket_t fd, UNUSED short what, void *arg)
{
	struct deleting *d = arg;
	struct instance *in = cluster_instance(d->o->native->cluster, d->id);
	struct mv_error err;
	hmap_remove(&d->o->deleting, d->id);
	if (in && inst_state_terminal(in->state) && cluster_instance_remove(d->o->native->cluster, in, &err) < 0)
		log_warnx("openstack: server %s stopped but not removed: %s", d->id, err.message);
	event_free(d->later);
	free(d);
}

/* The cluster calls this while it walks the instance's waiters: removing the instance here
 * would free what it walks, so the removal waits for the loop's next turn. */
static void delete_stopped(void *arg, UNUSED char (*ids)[MV_ID_LEN + 1], UNUSED int n)
{
	struct deleting *d = arg;
	struct timeval now = {0, 0};
	evtimer_add(d->later, &now);
}

void os_deleting_free(struct osapi *o)
{
	const char *k;
	void *v;
	for (size_t i = 0; hmap_next(&o->deleting, &i, &k, &v);) {
		struct deleting *d = v;
		event_free(d->later);
		free(d);
	}
	hmap_free(&o->deleting);
}

/* A follower acts on no instance (core/leader.h): it records the delete for the leader,
 * durably, which stops the instance and removes it once ended, as below. */

static int delete_on_follower(struct osapi *o, struct os_req *r, struct instance *in, bool remove_when_ended,
                              struct mv_error *err)
{
	if (leader_request_delete(o->native->leader, in->id, remove_when_ended) < 0) {
		evhttp_add_header(evhttp_request_get_output_headers(r->req), "Retry-After", "1");
		return mv_fail(err, 503, "store_failed", "this core could not record the request for the leader; retry");
	}
	in->stop_requested = true; /* until the next read of the database, which the leader has written */
	return 0;
}

void os_server_delete(struct osapi *o, struct os_req *r)
{
	struct instance *in = server_or_404(o, r);
	struct deleting *d;
	struct mv_error err;

	if (!in)
		return;
	if (following(o)) {
		if (delete_on_follower(o, r, in, true, &err) < 0)
			goto fail;
		evhttp_send_reply(r->req, 204, "No Content", NULL);
		return;
	}
	if (hmap_get(&o->deleting, in->id)) {
		evhttp_send_reply(r->req, 204, "No Content", NULL);
		return;
	}
	if (!inst_state_terminal(in->state) && cluster_instance_stop(o->native->cluster, in, &err) < 0)
		goto fail;
	if (inst_state_terminal(in->state)) {
		if (cluster_instance_remove(o->native->cluster, in, &err) < 0)
			goto fail;
		evhttp_send_reply(r->req, 204, "No Content", NULL);
		return;
	}
	if (!(d = calloc(1, sizeof *d)))
		fatal("calloc");
	d->o = o;
	snprintf(d->id, sizeof d->id, "%s", in->id);
	if (!(d->later = evtimer_new(o->native->base, delete_remove, d)))
		fatal("evtimer_new");
	hmap_put(&o->deleting, d->id, d);
	cluster_wait(o->native->cluster, &in, 1, WAIT_STOPPED, DELETE_WAIT_S, delete_stopped, d);
	evhttp_send_reply(r->req, 204, "No Content", NULL);
	return;
fail:
	reply_fail(r, &err);
}

/* ---- POST /servers/{id}/action ---- */

/* The instance is running again (or ended, or the wait ran out): the action is over. */
static void acting_done(void *arg, UNUSED char (*ids)[MV_ID_LEN + 1], UNUSED int n)
{
	struct acting *act = arg;
	if (hmap_get(&act->o->acting, act->id) == act)
		hmap_remove(&act->o->acting, act->id);
	free(act);
}

void os_acting_free(struct osapi *o)
{
	/* every entry's wait was answered by the cluster's drain, which freed it */
	hmap_free(&o->acting);
}

/* Nova's 409 for an action the server's state does not take. */
static int action_conflict(struct osapi *o, const struct instance *in, const char *server_id, const char *action,
                           struct mv_error *err)
{
	struct server_status s = server_status(o, in);
	if (s.task_state)
		return mv_fail(err, 409, "invalid_state", "Cannot '%s' instance %s while it is in task_state %s", action,
		               server_id, s.task_state);
	return mv_fail(err, 409, "invalid_state", "Cannot '%s' instance %s while it is in vm_state %s", action,
	               server_id, s.vm_state);
}

/* os-start and reboot: a new run (cluster.h), followed until the server is ACTIVE. */
static int start_action(struct osapi *o, struct instance *in, enum os_action what, struct mv_error *err)
{
	struct cluster *c = o->native->cluster;
	int64_t accepted_us = clock_mono_us();
	struct acting *act;
	int rc;
	/* a new run is the leader's to begin (it talks to the node); a follower has no way to
	 * ask for one yet, as it has for a delete */
	if (following(o))
		return mv_fail(err, 503, "not_leader",
		               "this core follows the leader at %s: send os-start and reboot to the leader's OpenStack "
		               "listener",
		               leader_url(o->native->leader) ? leader_url(o->native->leader) : "(none elected yet)");
	rc = what == ACT_START ? cluster_instance_start(c, in, accepted_us, err)
	                       : cluster_instance_restart(c, in, accepted_us, err);
	if (rc < 0)
		return -1;
	if (!(act = calloc(1, sizeof *act)))
		fatal("calloc");
	*act = (struct acting){.o = o, .what = what, .run = in->run};
	snprintf(act->id, sizeof act->id, "%s", in->id);
	hmap_put(&o->acting, act->id, act);
	cluster_wait(c, &in, 1, in->spec.ready_serial[0] ? WAIT_READY : WAIT_RUNNING, DELETE_WAIT_S, acting_done, act);
	return 0;
}

/* {"reboot": {"type": "SOFT"|"HARD"}}: 400 naming the field otherwise. */
static int reboot_type(const json_t *arg, enum os_action *what, struct mv_error *err)
{
	const json_t *type = json_object_get(arg, "type");
	if (!json_is_object(arg) || json_object_size(arg) != 1 || !json_is_string(type))
		return mv_fail(err, 400, "invalid_field", "reboot must be {\"type\": \"SOFT\"} or {\"type\": \"HARD\"}");
	if (strcasecmp(json_string_value(type), "SOFT") == 0)
		*what = ACT_REBOOT_SOFT;
	else if (strcasecmp(json_string_value(type), "HARD") == 0)
		*what = ACT_REBOOT_HARD;
	else
		return mv_fail(err, 400, "invalid_field", "reboot.type must be SOFT or HARD, not %.32s",
		               json_string_value(type));
	return 0;
}

void os_server_action(struct osapi *o, struct os_req *r)
{
	struct instance *in = server_or_404(o, r);
	json_t *body = NULL;
	struct mv_error err;
	const char *action;
	const json_t *arg;
	enum os_action what = ACT_REBOOT_SOFT;
	bool busy;

	if (!in)
		return;
	if (os_read_body(r->req, &body, &err) < 0)
		goto fail;
	if (json_object_size(body) != 1) {
		mv_fail(&err, 400, "invalid_field", "the body must name one action: {\"os-stop\": null}");
		goto fail;
	}
	action = json_object_iter_key(json_object_iter(body));
	arg = json_object_iter_value(json_object_iter(body));
	/* a server being deleted, starting again or rebooting takes no other action */
	busy = hmap_get(&o->deleting, in->id) || acting_now(o, in);
	if (strcmp(action, "os-stop") == 0) {
		if (inst_state_terminal(in->state) || in->stop_requested || busy) {
			action_conflict(o, in, r->id, "stop", &err);
			goto fail;
		}
		if (following(o) ? delete_on_follower(o, r, in, false, &err) < 0
		                 : cluster_instance_stop(o->native->cluster, in, &err) < 0)
			goto fail;
	} else if (strcmp(action, "os-start") == 0) {
		if (busy || strcmp(server_status(o, in).status, "SHUTOFF") != 0) {
			action_conflict(o, in, r->id, "start", &err);
			goto fail;
		}
		if (start_action(o, in, ACT_START, &err) < 0)
			goto fail;
	} else if (strcmp(action, "reboot") == 0) {
		const char *status = server_status(o, in).status;
		if (reboot_type(arg, &what, &err) < 0)
			goto fail;
		/* SOFT asks the guest of an ACTIVE server; HARD also powers on a SHUTOFF or ERROR one
		 * (a lost instance's node is gone: nothing to reboot it on) */
		if (busy || in->state == INST_LOST ||
		    !(strcmp(status, "ACTIVE") == 0 ||
		      (what == ACT_REBOOT_HARD && (strcmp(status, "SHUTOFF") == 0 || strcmp(status, "ERROR") == 0)))) {
			action_conflict(o, in, r->id, "reboot", &err);
			goto fail;
		}
		if (start_action(o, in, what, &err) < 0)
			goto fail;
	} else {
		mv_fail(&err, 400, "invalid_field", "action %.64s is not offered: os-stop, os-start, reboot", action);
		goto fail;
	}
	evhttp_send_reply(r->req, 202, "Accepted", NULL);
	json_decref(body);
	return;
fail:
	json_decref(body);
	reply_fail(r, &err);
}

void os_server_ips(struct osapi *o, struct os_req *r)
{
	if (server_or_404(o, r))
		http_reply_json(r->req, 200, json_pack("{s:{}}", "addresses"));
}

void os_server_metadata(struct osapi *o, struct os_req *r)
{
	if (server_or_404(o, r))
		http_reply_json(r->req, 200, json_pack("{s:{}}", "metadata"));
}

void os_server_volumes(struct osapi *o, struct os_req *r)
{
	if (server_or_404(o, r))
		http_reply_json(r->req, 200, json_pack("{s:[]}", "volumeAttachments"));
}

/* ---- discovery, limits, zones, key pairs ---- */

static json_t *v21_version(const struct osapi *o)
{
	char href[256], max[8];
	snprintf(href, sizeof href, "%s/compute/v2.1/", o->url);
	snprintf(max, sizeof max, "2.%d", OS_NOVA_MAX_MINOR);
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:[{s:s, s:s}], s:[{s:s, s:s}]}", "id", "v2.1", "status", "CURRENT",
	                 "version", max, "min_version", "2.1", "updated", "2013-07-23T11:33:21Z", "links", "rel", "self",
	                 "href", href, "media-types", "base", "application/json", "type",
	                 "application/vnd.openstack.compute+json;version=2.1");
}

void os_compute_root(struct osapi *o, struct os_req *r)
{
	http_reply_json(r->req, 200, json_pack("{s:[o]}", "versions", v21_version(o)));
}

void os_compute_v21(struct osapi *o, struct os_req *r)
{
	http_reply_json(r->req, 200, json_pack("{s:o}", "version", v21_version(o)));
}

/* The caller's project: what it holds (every record counts, as Nova counts a stopped
 * server) and its limits, each the project's quota where it has one, else the cluster's
 * capacity (what the ready nodes offer, vCPUs after --cpu-ratio; the in-flight admission
 * limit for instances). */
void os_limits(struct osapi *o, struct os_req *r)
{
	struct cluster *c = o->native->cluster;
	const struct tenant_project *p = tenants_project(o->native->tenants, r->who.authz.project);
	struct authz_quota used;
	int64_t cores = 0, ram = 0, inflight = cluster_options(c)->max_inflight;
	for (int i = 0; i < cluster_node_count(c); i++) {
		const struct node *n = cluster_node_at(c, i);
		if (n->ready) {
			cores += n->vcpus_milli_total / 1000;
			ram += n->memory_mb_total;
		}
	}
	if (!inflight)
		inflight = -1;
	if (p && p->quota.instances != AUTHZ_UNLIMITED)
		inflight = p->quota.instances;
	if (p && p->quota.vcpus_milli != AUTHZ_UNLIMITED)
		cores = p->quota.vcpus_milli / 1000;
	if (p && p->quota.memory_mb != AUTHZ_UNLIMITED)
		ram = p->quota.memory_mb;
	cluster_project_usage(c, r->who.authz.project, &used);
	http_reply_json(r->req, 200, json_pack("{s:{s:[], s:{s:I, s:I, s:I, s:I, s:I, s:I, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i}}}",
	                                       "limits", "rate", "absolute", "maxTotalInstances", (json_int_t)inflight,
	                                       "maxTotalCores", (json_int_t)cores, "maxTotalRAMSize", (json_int_t)ram,
	                                       "totalInstancesUsed", (json_int_t)used.instances, "totalCoresUsed",
	                                       (json_int_t)((used.vcpus_milli + 999) / 1000), "totalRAMUsed",
	                                       (json_int_t)used.memory_mb, "maxServerMeta", 0, "maxImageMeta", 128,
	                                       "maxPersonality", 0, "maxPersonalitySize", 0, "maxTotalKeypairs", 0,
	                                       "maxServerGroups", 0, "maxServerGroupMembers", 0, "totalServerGroupsUsed",
	                                       0));
}

void os_zones(UNUSED struct osapi *o, struct os_req *r)
{
	http_reply_json(r->req, 200, json_pack("{s:[{s:s, s:{s:b}, s:n}]}", "availabilityZoneInfo", "zoneName", AZ,
	                                       "zoneState", "available", true, "hosts"));
}

/* Guests boot diskless images and take no SSH keys: the list is empty. */
void os_keypairs(UNUSED struct osapi *o, struct os_req *r)
{
	http_reply_json(r->req, 200, json_pack("{s:[]}", "keypairs"));
}
