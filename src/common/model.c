#include "common/model.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "common/log.h"

const char *const inst_state_names[INST_STATE_COUNT] = {
	[INST_PENDING] = "pending", [INST_SCHEDULED] = "scheduled", [INST_STARTING] = "starting",
	[INST_RUNNING] = "running", [INST_STOPPED] = "stopped",     [INST_EXITED] = "exited",
	[INST_FAILED] = "failed",   [INST_LOST] = "lost",
};

int inst_state_parse(const char *s)
{
	for (int i = 0; i < INST_STATE_COUNT; i++)
		if (strcmp(s, inst_state_names[i]) == 0)
			return i;
	return -1;
}

bool inst_state_terminal(enum inst_state s)
{
	return s == INST_STOPPED || s == INST_EXITED || s == INST_FAILED || s == INST_LOST;
}

bool inst_state_in_flight(enum inst_state s)
{
	return s == INST_PENDING || s == INST_SCHEDULED || s == INST_STARTING;
}

enum admission admission_check(int64_t limit, int64_t in_flight, int64_t count)
{
	if (limit <= 0)
		return ADMIT;
	if (count > limit)
		return ADMIT_NEVER;
	/* in_flight may exceed the limit: lost instances placed again (restart on-lost) and a
	 * core restarted with a lower limit are not refused, only new creates are */
	return in_flight > limit - count ? ADMIT_LATER : ADMIT;
}

bool name_valid(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > MV_NAME_MAX || !isalnum((unsigned char)s[0]))
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (!isalnum(c) && c != '.' && c != '_' && c != '-')
			return false;
	}
	return true;
}

bool label_value_valid(const char *s)
{
	size_t n = strlen(s);
	if (n > MV_LABEL_VALUE_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] < 0x20 || s[i] > 0x7e)
			return false;
	return true;
}

void id_generate(char out[MV_ID_LEN + 1])
{
	unsigned char raw[MV_ID_LEN / 2];
	if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw)
		fatal("getrandom");
	for (size_t i = 0; i < sizeof raw; i++)
		snprintf(out + 2 * i, 3, "%02x", raw[i]);
}

/* ---- driver config shapes ---------------------------------------------------------- */

static int check_string(const json_t *v, const char *field, size_t max, struct mv_error *err)
{
	if (!json_is_string(v))
		return mv_fail(err, 400, "invalid_type", "%s must be a string", field);
	if (json_string_length(v) > max || strlen(json_string_value(v)) != json_string_length(v))
		return mv_fail(err, 400, "invalid_value",
		               "%s must be at most %zu bytes without NUL characters", field, max);
	return 0;
}

static int check_only_fields(const json_t *obj, const char *where, const char *const *allowed,
                             struct mv_error *err)
{
	const char *key;
	json_t *v;
	json_object_foreach((json_t *)obj, key, v) {
		bool ok = false;
		for (int i = 0; allowed[i]; i++)
			ok = ok || strcmp(key, allowed[i]) == 0;
		if (!ok)
			return mv_fail(err, 400, "unknown_field", "unknown field %s%s", where, key);
	}
	return 0;
}

/* exec: {"command": "/abs/path", "args": ["..."], "env": {"K": "V"}} */
static int exec_config_check(const json_t *cfg, struct mv_error *err)
{
	static const char *const fields[] = {"command", "args", "env", NULL};
	const json_t *cmd, *args, *env;
	if (!cfg)
		return mv_fail(err, 400, "missing_field",
		               "driver exec needs config: {\"command\": \"/absolute/path\", \"args\": [...]}");
	if (!json_is_object(cfg))
		return mv_fail(err, 400, "invalid_type",
		               "config must be an object {\"command\": \"/absolute/path\", \"args\": [...]}");
	if (check_only_fields(cfg, "config.", fields, err) < 0)
		return -1;
	cmd = json_object_get(cfg, "command");
	if (!cmd)
		return mv_fail(err, 400, "missing_field", "config.command is required (an absolute path)");
	if (check_string(cmd, "config.command", MV_STRING_MAX, err) < 0)
		return -1;
	if (json_string_value(cmd)[0] != '/')
		return mv_fail(err, 400, "invalid_value",
		               "config.command must be an absolute path (no shell, no PATH lookup)");
	args = json_object_get(cfg, "args");
	if (args) {
		size_t i;
		json_t *a;
		if (!json_is_array(args))
			return mv_fail(err, 400, "invalid_type", "config.args must be an array of strings");
		if (json_array_size(args) > MV_ARGS_MAX)
			return mv_fail(err, 400, "invalid_value", "config.args has more than %d entries",
			               MV_ARGS_MAX);
		json_array_foreach(args, i, a) {
			if (check_string(a, "config.args[]", MV_STRING_MAX, err) < 0)
				return -1;
		}
	}
	env = json_object_get(cfg, "env");
	if (env) {
		const char *k;
		json_t *v;
		if (!json_is_object(env))
			return mv_fail(err, 400, "invalid_type", "config.env must be an object of strings");
		if (json_object_size(env) > MV_ENV_MAX)
			return mv_fail(err, 400, "invalid_value", "config.env has more than %d entries",
			               MV_ENV_MAX);
		json_object_foreach((json_t *)env, k, v) {
			if (k[0] == '\0' || strchr(k, '=') || strlen(k) > 255)
				return mv_fail(err, 400, "invalid_value",
				               "config.env key \"%.64s\" must be 1-255 bytes without '='", k);
			if (check_string(v, "config.env value", MV_STRING_MAX, err) < 0)
				return -1;
		}
	}
	return 0;
}

/* A VM driver boots a registered image; its config is optional and driver-specific. */
static int vm_config_check(const json_t *cfg, struct mv_error *err)
{
	if (cfg && !json_is_object(cfg))
		return mv_fail(err, 400, "invalid_type", "config must be an object");
	return 0;
}

/* xen: {"click": "..."}, a ClickOS router's Click configuration (printable ASCII text,
 * tabs and line ends: it goes into xenstore values). The guest type is the image's. */
static int xen_config_check(const json_t *cfg, struct mv_error *err)
{
	static const char *const fields[] = {"click", NULL};
	const json_t *click;
	if (vm_config_check(cfg, err) < 0)
		return -1;
	if (!cfg)
		return 0;
	if (json_object_get(cfg, "type"))
		return mv_fail(err, 400, "unknown_field",
		               "unknown field config.type: the Xen guest type is the image's "
		               "(microvim image add NAME --kernel FILE --xen-type pv|pvh)");
	if (check_only_fields(cfg, "config.", fields, err) < 0)
		return -1;
	if (!(click = json_object_get(cfg, "click")))
		return 0;
	if (check_string(click, "config.click", MV_CLICK_MAX, err) < 0)
		return -1;
	if (json_string_length(click) == 0)
		return mv_fail(err, 400, "invalid_value", "config.click must not be empty");
	for (const unsigned char *p = (const unsigned char *)json_string_value(click); *p; p++)
		if ((*p < 0x20 && *p != '\n' && *p != '\t' && *p != '\r') || *p >= 0x7f)
			return mv_fail(err, 400, "invalid_value",
			               "config.click holds the byte 0x%02x: a Click configuration is printable ASCII text", *p);
	return 0;
}

struct driver_shape {
	const char *name;
	bool needs_image;
	int (*config_check)(const json_t *cfg, struct mv_error *err);
};

static const struct driver_shape driver_shapes[] = {
	{.name = "exec", .needs_image = false, .config_check = exec_config_check},
	{.name = "qemu", .needs_image = true, .config_check = vm_config_check},
	{.name = "libvirt", .needs_image = true, .config_check = vm_config_check},
	{.name = "xen", .needs_image = true, .config_check = xen_config_check},
};

static const struct driver_shape *driver_shape(const char *name)
{
	for (size_t i = 0; i < sizeof driver_shapes / sizeof driver_shapes[0]; i++)
		if (strcmp(driver_shapes[i].name, name) == 0)
			return &driver_shapes[i];
	return NULL;
}

bool driver_name_known(const char *name) { return driver_shape(name) != NULL; }

const char *const driver_names[] = {"exec", "qemu", "libvirt", "xen", NULL};

int driver_index(const char *name)
{
	const struct driver_shape *s = driver_shape(name);
	return s ? (int)(s - driver_shapes) : -1;
}

/* ---- the create body ---------------------------------------------------------------- */

static int parse_resources(struct inst_spec *s, const json_t *res, struct mv_error *err)
{
	static const char *const fields[] = {"vcpus", "memory_mb", NULL};
	json_t *v;
	if (!json_is_object(res))
		return mv_fail(err, 400, "invalid_type", "resources must be an object {\"vcpus\", \"memory_mb\"}");
	if (check_only_fields(res, "resources.", fields, err) < 0)
		return -1;
	if ((v = json_object_get(res, "vcpus"))) {
		double d;
		if (!json_is_number(v))
			return mv_fail(err, 400, "invalid_type", "resources.vcpus must be a number");
		d = json_number_value(v);
		if (!(d >= 0.001 && d <= MV_VCPUS_MAX))
			return mv_fail(err, 400, "invalid_value",
			               "resources.vcpus must be between 0.001 and %d (fractions allowed)",
			               MV_VCPUS_MAX);
		s->vcpus_milli = (int64_t)(d * 1000.0 + 0.5);
	}
	if ((v = json_object_get(res, "memory_mb"))) {
		if (!json_is_integer(v))
			return mv_fail(err, 400, "invalid_type", "resources.memory_mb must be an integer (MiB)");
		if (json_integer_value(v) < 1 || json_integer_value(v) > MV_MEMORY_MB_MAX)
			return mv_fail(err, 400, "invalid_value", "resources.memory_mb must be between 1 and %d",
			               MV_MEMORY_MB_MAX);
		s->memory_mb = json_integer_value(v);
	}
	return 0;
}

static int parse_network(struct inst_spec *s, const json_t *net, struct mv_error *err)
{
	static const char *const fields[] = {"bridge", NULL};
	json_t *br;
	if (!json_is_object(net))
		return mv_fail(err, 400, "invalid_type", "network must be an object {\"bridge\": NAME}");
	if (check_only_fields(net, "network.", fields, err) < 0)
		return -1;
	br = json_object_get(net, "bridge");
	if (!br)
		return mv_fail(err, 400, "missing_field", "network.bridge is required when network is given");
	if (!json_is_string(br))
		return mv_fail(err, 400, "invalid_type", "network.bridge must be a string");
	if (json_string_length(br) > MV_BRIDGE_MAX || !name_valid(json_string_value(br)))
		return mv_fail(err, 400, "invalid_value",
		               "network.bridge must be an interface name of 1-%d characters [A-Za-z0-9._-]",
		               MV_BRIDGE_MAX);
	snprintf(s->bridge, sizeof s->bridge, "%s", json_string_value(br));
	return 0;
}

static int parse_labels(struct inst_spec *s, const json_t *labels, struct mv_error *err)
{
	const char *k;
	json_t *v;
	if (!json_is_object(labels))
		return mv_fail(err, 400, "invalid_type", "labels must be an object of strings");
	if (json_object_size(labels) > MV_LABELS_MAX)
		return mv_fail(err, 400, "invalid_value", "labels has more than %d entries", MV_LABELS_MAX);
	json_object_foreach((json_t *)labels, k, v) {
		if (!name_valid(k))
			return mv_fail(err, 400, "invalid_value",
			               "label key \"%.64s\" must be 1-%d characters [A-Za-z0-9._-]", k, MV_NAME_MAX);
		if (!json_is_string(v) || !label_value_valid(json_string_value(v)))
			return mv_fail(err, 400, "invalid_value",
			               "label %s must be a string of printable ASCII up to %d bytes", k,
			               MV_LABEL_VALUE_MAX);
	}
	s->labels = json_deep_copy(labels);
	return 0;
}

/* {"serial": "MARKER"}: the node watches the guest's serial output for MARKER. */
static int parse_ready(struct inst_spec *s, const json_t *ready, struct mv_error *err)
{
	static const char *const fields[] = {"serial", NULL};
	const json_t *pat;
	if (!json_is_object(ready))
		return mv_fail(err, 400, "invalid_type", "ready must be an object {\"serial\": \"MARKER\"}");
	if (check_only_fields(ready, "ready.", fields, err) < 0)
		return -1;
	pat = json_object_get(ready, "serial");
	if (!pat)
		return mv_fail(err, 400, "missing_field", "ready.serial is required when ready is given");
	if (!json_is_string(pat) || json_string_length(pat) == 0 || json_string_length(pat) > MV_READY_PATTERN_MAX ||
	    !label_value_valid(json_string_value(pat)))
		return mv_fail(err, 400, "invalid_value", "ready.serial must be 1-%d printable ASCII characters",
		               MV_READY_PATTERN_MAX);
	if (strcmp(s->driver, "exec") == 0)
		return mv_fail(err, 400, "invalid_field", "ready.serial needs a VM driver (a guest with a serial port)");
	snprintf(s->ready_serial, sizeof s->ready_serial, "%s", json_string_value(pat));
	return 0;
}

static int parse_name(struct inst_spec *s, const json_t *name, struct mv_error *err)
{
	if (!name)
		return mv_fail(err, 400, "missing_field", "name is required");
	if (!json_is_string(name))
		return mv_fail(err, 400, "invalid_type", "name must be a string");
	if (strlen(json_string_value(name)) != json_string_length(name) || !name_valid(json_string_value(name)))
		return mv_fail(err, 400, "invalid_value",
		               "name must be 1-%d characters [A-Za-z0-9._-], starting with a letter or digit",
		               MV_NAME_MAX);
	snprintf(s->name, sizeof s->name, "%s", json_string_value(name));
	return 0;
}

static int parse_count(struct inst_spec *s, const json_t *count, struct mv_error *err)
{
	if (!count)
		return 0;
	if (!json_is_integer(count))
		return mv_fail(err, 400, "invalid_type", "count must be an integer");
	if (json_integer_value(count) < 1 || json_integer_value(count) > MV_COUNT_MAX)
		return mv_fail(err, 400, "invalid_value", "count must be between 1 and %d", MV_COUNT_MAX);
	s->count = (int)json_integer_value(count);
	return 0;
}

static int parse_driver(struct inst_spec *s, const json_t *body, struct mv_error *err)
{
	const json_t *drv = json_object_get(body, "driver");
	const json_t *image = json_object_get(body, "image");
	const json_t *cfg = json_object_get(body, "config");
	const struct driver_shape *shape;

	if (!drv)
		return mv_fail(err, 400, "missing_field", "driver is required (exec, qemu, libvirt or xen)");
	if (!json_is_string(drv))
		return mv_fail(err, 400, "invalid_type", "driver must be a string");
	shape = driver_shape(json_string_value(drv));
	if (!shape)
		return mv_fail(err, 400, "invalid_value",
		               "driver \"%.32s\" is not known; use exec, qemu, libvirt or xen",
		               json_string_value(drv));
	snprintf(s->driver, sizeof s->driver, "%s", shape->name);

	if (shape->needs_image) {
		if (!image)
			return mv_fail(err, 400, "missing_field", "driver %s needs image (a registered image name)",
			               shape->name);
		if (!json_is_string(image))
			return mv_fail(err, 400, "invalid_type", "image must be a string");
		if (!name_valid(json_string_value(image)))
			return mv_fail(err, 400, "invalid_value", "image must be a name of 1-%d characters [A-Za-z0-9._-]",
			               MV_NAME_MAX);
		snprintf(s->image, sizeof s->image, "%s", json_string_value(image));
	} else if (image) {
		return mv_fail(err, 400, "invalid_field", "driver %s takes config, not image", shape->name);
	}
	if (shape->config_check(cfg, err) < 0)
		return -1;
	if (cfg)
		s->config = json_deep_copy(cfg);
	if (strcmp(shape->name, "exec") == 0)
		s->executable = json_string_value(json_object_get(s->config, "command"));
	return 0;
}

int spec_parse(struct inst_spec *s, const json_t *body, struct mv_error *err)
{
	static const char *const fields[] = {"name", "driver", "image", "config", "resources",
	                                     "network", "count", "labels", "ready", "restart", NULL};
	const json_t *v;

	memset(s, 0, sizeof *s);
	s->vcpus_milli = MV_DEFAULT_VCPUS_MILLI;
	s->memory_mb = MV_DEFAULT_MEMORY_MB;
	s->count = 1;
	if (!json_is_object(body))
		return mv_fail(err, 400, "invalid_type", "the body must be a JSON object");
	if (check_only_fields(body, "", fields, err) < 0 ||
	    parse_name(s, json_object_get(body, "name"), err) < 0 ||
	    parse_driver(s, body, err) < 0 || parse_count(s, json_object_get(body, "count"), err) < 0)
		goto fail;
	if ((v = json_object_get(body, "resources")) && parse_resources(s, v, err) < 0)
		goto fail;
	if ((v = json_object_get(body, "network")) && parse_network(s, v, err) < 0)
		goto fail;
	if ((v = json_object_get(body, "labels")) && parse_labels(s, v, err) < 0)
		goto fail;
	if ((v = json_object_get(body, "ready")) && parse_ready(s, v, err) < 0)
		goto fail;
	if ((v = json_object_get(body, "restart"))) {
		if (!json_is_string(v) || (strcmp(json_string_value(v), "never") != 0 &&
		                           strcmp(json_string_value(v), "on-lost") != 0)) {
			mv_fail(err, 400, "invalid_value", "restart must be \"never\" (default) or \"on-lost\"");
			goto fail;
		}
		s->restart_on_lost = strcmp(json_string_value(v), "on-lost") == 0;
	}
	/* count > 1 appends "-N"; the longest result must still be a valid name. */
	if (s->count > 1 && strlen(s->name) + 1 + (size_t)snprintf(NULL, 0, "%d", s->count) > MV_NAME_MAX)
		return spec_free(s), mv_fail(err, 400, "invalid_value",
		                             "name is too long to append \"-%d\" for count", s->count);
	return 0;
fail:
	spec_free(s);
	return -1;
}

void spec_free(struct inst_spec *s)
{
	json_decref(s->config);
	json_decref(s->labels);
	s->config = s->labels = NULL;
	s->executable = NULL;
}

json_t *spec_to_json(const struct inst_spec *s)
{
	json_t *j = json_pack("{s:s, s:s, s:{s:f, s:I}}", "name", s->name, "driver", s->driver,
	                      "resources", "vcpus", (double)s->vcpus_milli / 1000.0, "memory_mb",
	                      (json_int_t)s->memory_mb);
	if (s->image[0])
		json_object_set_new(j, "image", json_string(s->image));
	if (s->config)
		json_object_set(j, "config", s->config);
	if (s->bridge[0])
		json_object_set_new(j, "network", json_pack("{s:s}", "bridge", s->bridge));
	if (s->labels)
		json_object_set(j, "labels", s->labels);
	if (s->ready_serial[0])
		json_object_set_new(j, "ready", json_pack("{s:s}", "serial", s->ready_serial));
	if (s->restart_on_lost)
		json_object_set_new(j, "restart", json_string("on-lost"));
	return j;
}
