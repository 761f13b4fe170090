#include "common/model.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "common/jsontext.h"
#include "common/log.h"

const char *const inst_state_names[INST_STATE_COUNT] = {
	[INST_PENDING] = "pending", [INST_SCHEDULED] = "scheduled", [INST_STARTING] = "starting",
	[INST_RUNNING] = "running", [INST_STOPPED] = "stopped",     [INST_EXITED] = "exited",
	[INST_FAILED] = "failed",   [INST_LOST] = "lost",
};

const char *const log_stream_names[LOG_STREAM_COUNT] = {"stdout", "stderr", "serial"};

int log_stream_parse(const char *s)
{
	for (int i = 0; i < LOG_STREAM_COUNT; i++)
		if (strcmp(s, log_stream_names[i]) == 0)
			return i;
	return -1;
}

bool log_stream_kept(enum log_stream s, bool boots_image) { return s != LOG_SERIAL || boots_image; }

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

bool idem_key_valid(const char *k)
{
	size_t n = strlen(k);
	if (n == 0 || n > MV_IDEM_KEY_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (k[i] < 0x21 || k[i] > 0x7e)
			return false;
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

/* Random bytes for ids, taken from the kernel a block at a time: one getrandom() per
 * id was a system call per instance of a batch (~3 µs each on a VM). Per thread; a forked
 * child starts a block of its own, so that it never repeats its parent's ids. */
#define ID_RANDOM_BLOCK 512

static _Thread_local unsigned char id_random[ID_RANDOM_BLOCK];
static _Thread_local size_t id_random_used = ID_RANDOM_BLOCK;
static pthread_once_t id_random_once = PTHREAD_ONCE_INIT;

static void id_random_forget(void) { id_random_used = ID_RANDOM_BLOCK; }
static void id_random_at_fork(void) { pthread_atfork(NULL, NULL, id_random_forget); }

void id_generate(char out[MV_ID_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	const size_t n = MV_ID_LEN / 2;
	pthread_once(&id_random_once, id_random_at_fork);
	if (id_random_used + n > ID_RANDOM_BLOCK) {
		if (getrandom(id_random, sizeof id_random, 0) != (ssize_t)sizeof id_random)
			fatal("getrandom");
		id_random_used = 0;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char b = id_random[id_random_used + i];
		out[2 * i] = hex[b >> 4];
		out[2 * i + 1] = hex[b & 15];
	}
	memset(id_random + id_random_used, 0, n); /* used bytes do not stay in memory */
	id_random_used += n;
	out[MV_ID_LEN] = '\0';
}

/* ---- field checks ------------------------------------------------------------------ */

int mv_check_string(const json_t *v, const char *field, size_t max, struct mv_error *err)
{
	if (!json_is_string(v))
		return mv_fail(err, 400, "invalid_type", "%s must be a string", field);
	if (json_string_length(v) > max || strlen(json_string_value(v)) != json_string_length(v))
		return mv_fail(err, 400, "invalid_value",
		               "%s must be at most %zu bytes without NUL characters", field, max);
	return 0;
}

int mv_check_fields(const json_t *obj, const char *where, const char *const *allowed, struct mv_error *err)
{
	const char *key;
	json_t *v;
	json_object_foreach((json_t *)obj, key, v) {
		bool ok = false;
		for (int i = 0; allowed[i]; i++)
			ok = ok || strcmp(key, allowed[i]) == 0;
		if (!ok)
			return mv_fail(err, 400, "unknown_field", "unknown field %s%.64s", where, key);
	}
	return 0;
}

int mv_check_choice(const json_t *v, const char *field, const char *const *choices, const char **out,
                    struct mv_error *err)
{
	char list[256] = "";
	size_t used = 0;
	for (int i = 0; choices[i]; i++) {
		if (json_is_string(v) && strcmp(json_string_value(v), choices[i]) == 0) {
			*out = choices[i];
			return 0;
		}
		int n = snprintf(list + used, sizeof list - used, "%s\"%s\"", i == 0 ? "" : choices[i + 1] ? ", " : " or ",
		                 choices[i]);
		if (n < 0 || (size_t)n >= sizeof list - used)
			fatalx("mv_check_choice: too many choices for %s", field);
		used += (size_t)n;
	}
	return mv_fail(err, 400, "invalid_value", "%s must be %s", field, list);
}

/* ---- the spec ------------------------------------------------------------------------- */

static int parse_resources(struct inst_spec *s, const json_t *res, struct mv_error *err)
{
	static const char *const fields[] = {"vcpus", "memory_mb", NULL};
	json_t *v;
	if (!json_is_object(res))
		return mv_fail(err, 400, "invalid_type", "resources must be an object {\"vcpus\", \"memory_mb\"}");
	if (mv_check_fields(res, "resources.", fields, err) < 0)
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
	if (mv_check_fields(net, "network.", fields, err) < 0)
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

int labels_check(const json_t *labels, struct mv_error *err)
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
	return 0;
}

static int parse_labels(struct inst_spec *s, const json_t *labels, struct mv_error *err)
{
	if (labels_check(labels, err) < 0)
		return -1;
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
	if (mv_check_fields(ready, "ready.", fields, err) < 0)
		return -1;
	pat = json_object_get(ready, "serial");
	if (!pat)
		return mv_fail(err, 400, "missing_field", "ready.serial is required when ready is given");
	if (!json_is_string(pat) || json_string_length(pat) == 0 || json_string_length(pat) > MV_READY_PATTERN_MAX ||
	    !label_value_valid(json_string_value(pat)))
		return mv_fail(err, 400, "invalid_value", "ready.serial must be 1-%d printable ASCII characters",
		               MV_READY_PATTERN_MAX);
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

/* The driver's name and, as types only, image and config: which of them a driver needs
 * and what its config holds is the driver table's to check. */
static int parse_driver(struct inst_spec *s, const json_t *body, struct mv_error *err)
{
	const json_t *drv = json_object_get(body, "driver");
	const json_t *image = json_object_get(body, "image");
	const json_t *cfg = json_object_get(body, "config");

	if (!drv)
		return mv_fail(err, 400, "missing_field", "driver is required (a driver's name: GET /v1/nodes shows what each node offers)");
	if (!json_is_string(drv))
		return mv_fail(err, 400, "invalid_type", "driver must be a string");
	if (json_string_length(drv) > MV_DRIVER_NAME_MAX || !name_valid(json_string_value(drv)))
		return mv_fail(err, 400, "invalid_value",
		               "driver \"%.32s\" is not a driver's name (GET /v1/nodes shows what each node offers)",
		               json_string_value(drv));
	snprintf(s->driver, sizeof s->driver, "%s", json_string_value(drv));
	if (image) {
		if (!json_is_string(image))
			return mv_fail(err, 400, "invalid_type", "image must be a string");
		if (!name_valid(json_string_value(image)))
			return mv_fail(err, 400, "invalid_value", "image must be a name of 1-%d characters [A-Za-z0-9._-]",
			               MV_NAME_MAX);
		snprintf(s->image, sizeof s->image, "%s", json_string_value(image));
	}
	if (cfg && !json_is_object(cfg))
		return mv_fail(err, 400, "invalid_type", "config must be an object");
	if (cfg)
		s->config = json_deep_copy(cfg);
	return 0;
}

/* boot (stored form): {"kernel": DIGEST, "initrd": DIGEST, "cmdline": STR, "xen_type": "pv"|"pvh"}. */
static int parse_boot(struct inst_spec *s, const json_t *boot, struct mv_error *err)
{
	static const char *const fields[] = {"kernel", "initrd", "cmdline", "xen_type", NULL};
	static const char *const xen_types[] = {"pvh", "pv", NULL};
	const json_t *k = json_object_get(boot, "kernel"), *i = json_object_get(boot, "initrd");
	const json_t *c = json_object_get(boot, "cmdline"), *x = json_object_get(boot, "xen_type");
	const char *xen_type = "";
	if (!json_is_object(boot))
		return mv_fail(err, 400, "invalid_type", "boot must be an object {\"kernel\", \"initrd\", \"cmdline\"}");
	if (mv_check_fields(boot, "boot.", fields, err) < 0)
		return -1;
	if (!json_is_string(k) || !digest_valid(json_string_value(k)))
		return mv_fail(err, 400, "invalid_value", "boot.kernel must be a digest sha256:<64 hex>");
	if (i && (!json_is_string(i) || !digest_valid(json_string_value(i))))
		return mv_fail(err, 400, "invalid_value", "boot.initrd must be a digest sha256:<64 hex>");
	if (c && mv_check_string(c, "boot.cmdline", MV_STRING_MAX, err) < 0)
		return -1;
	if (x && mv_check_choice(x, "boot.xen_type", xen_types, &xen_type, err) < 0)
		return -1;
	snprintf(s->boot.xen_type, sizeof s->boot.xen_type, "%s", xen_type);
	snprintf(s->boot.kernel, sizeof s->boot.kernel, "%s", json_string_value(k));
	snprintf(s->boot.initrd, sizeof s->boot.initrd, "%s", i ? json_string_value(i) : "");
	if (c && !(s->boot.cmdline = strdup(json_string_value(c))))
		fatal("strdup");
	s->has_boot = true;
	return 0;
}

static int parse_restart(struct inst_spec *s, const json_t *v, struct mv_error *err)
{
	if (!json_is_string(v) ||
	    (strcmp(json_string_value(v), "never") != 0 && strcmp(json_string_value(v), "on-lost") != 0))
		return mv_fail(err, 400, "invalid_value", "restart must be \"never\" (default) or \"on-lost\"");
	s->restart_on_lost = strcmp(json_string_value(v), "on-lost") == 0;
	return 0;
}

/* "pool": NAME, the warm pool to take a guest from (core/pools.h checks that it fits). */
static int parse_pool(struct inst_spec *s, const json_t *v, struct mv_error *err)
{
	if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v) ||
	    !name_valid(json_string_value(v)))
		return mv_fail(err, 400, "invalid_value", "pool must be a pool's name of 1-%d characters [A-Za-z0-9._-]",
		               MV_NAME_MAX);
	snprintf(s->pool, sizeof s->pool, "%s", json_string_value(v));
	return 0;
}

/* "cmdline": the instance's own kernel command line, instead of its image's. */
static int parse_cmdline(struct inst_spec *s, const json_t *v, struct mv_error *err)
{
	if (mv_check_string(v, "cmdline", MV_STRING_MAX, err) < 0)
		return -1;
	if (!(s->cmdline = strdup(json_string_value(v))))
		fatal("strdup");
	return 0;
}

int spec_decode(struct inst_spec *s, const json_t *body, enum spec_form form, struct mv_error *err)
{
	static const char *const request_fields[] = {"name", "driver", "image", "config", "resources", "network",
	                                             "count", "labels", "ready", "restart", "pool", "cmdline", NULL};
	static const char *const stored_fields[] = {"name", "driver", "image", "boot", "config", "resources",
	                                            "network", "labels", "ready", "restart", "pool", NULL};
	const json_t *v;

	memset(s, 0, sizeof *s);
	s->vcpus_milli = MV_DEFAULT_VCPUS_MILLI;
	s->memory_mb = MV_DEFAULT_MEMORY_MB;
	s->count = 1;
	if (!json_is_object(body))
		return mv_fail(err, 400, "invalid_type", "the body must be a JSON object");
	if (mv_check_fields(body, "", form == SPEC_REQUEST ? request_fields : stored_fields, err) < 0 ||
	    parse_name(s, json_object_get(body, "name"), err) < 0 || parse_driver(s, body, err) < 0 ||
	    (form == SPEC_REQUEST && parse_count(s, json_object_get(body, "count"), err) < 0))
		goto fail;
	if ((v = json_object_get(body, "boot")) && parse_boot(s, v, err) < 0)
		goto fail;
	if ((v = json_object_get(body, "resources")) && parse_resources(s, v, err) < 0)
		goto fail;
	if ((v = json_object_get(body, "network")) && parse_network(s, v, err) < 0)
		goto fail;
	if ((v = json_object_get(body, "labels")) && parse_labels(s, v, err) < 0)
		goto fail;
	if ((v = json_object_get(body, "ready")) && parse_ready(s, v, err) < 0)
		goto fail;
	if ((v = json_object_get(body, "restart")) && parse_restart(s, v, err) < 0)
		goto fail;
	if ((v = json_object_get(body, "pool")) && parse_pool(s, v, err) < 0)
		goto fail;
	if ((v = json_object_get(body, "cmdline")) && parse_cmdline(s, v, err) < 0)
		goto fail;
	/* count > 1 appends "-N"; the longest result must still be a valid name. */
	if (s->count > 1 && strlen(s->name) + 1 + (size_t)snprintf(NULL, 0, "%d", s->count) > MV_NAME_MAX) {
		mv_fail(err, 400, "invalid_value", "name is too long to append \"-%d\" for count", s->count);
		goto fail;
	}
	return 0;
fail:
	spec_free(s);
	return -1;
}

void spec_free(struct inst_spec *s)
{
	json_decref(s->config);
	json_decref(s->labels);
	free(s->boot.cmdline);
	free(s->cmdline);
	s->boot.cmdline = s->cmdline = NULL;
	s->config = s->labels = NULL;
	s->executable = NULL;
}

void spec_copy(struct inst_spec *dst, const struct inst_spec *src)
{
	/* config and labels are immutable once parsed: shared, not copied (count instances
	 * of one request hold one config), and the executable keeps pointing into it */
	*dst = *src;
	json_incref(dst->config);
	json_incref(dst->labels);
	if (src->boot.cmdline && !(dst->boot.cmdline = strdup(src->boot.cmdline)))
		fatal("strdup");
	if (src->cmdline && !(dst->cmdline = strdup(src->cmdline)))
		fatal("strdup");
}

void spec_instance_name(const struct inst_spec *s, int i, char *out, size_t len)
{
	int n = s->count == 1 ? snprintf(out, len, "%s", s->name) : snprintf(out, len, "%s-%d", s->name, i + 1);
	if (n < 0 || (size_t)n >= len)
		fatalx("instance name overflow: %s", s->name);
}

void spec_write_json(const struct inst_spec *s, struct jtext *t)
{
	jtext_lit(t, "{\"name\":");
	jtext_str(t, s->name);
	jtext_lit(t, ",\"driver\":");
	jtext_str(t, s->driver);
	jtext_lit(t, ",\"resources\":{\"vcpus\":");
	jtext_milli(t, s->vcpus_milli);
	jtext_lit(t, ",\"memory_mb\":");
	jtext_int(t, s->memory_mb);
	jtext_lit(t, "}");
	if (s->image[0]) {
		jtext_lit(t, ",\"image\":");
		jtext_str(t, s->image);
	}
	if (s->config) {
		jtext_lit(t, ",\"config\":");
		jtext_json(t, s->config);
	}
	if (s->bridge[0]) {
		jtext_lit(t, ",\"network\":{\"bridge\":");
		jtext_str(t, s->bridge);
		jtext_lit(t, "}");
	}
	if (s->labels) {
		jtext_lit(t, ",\"labels\":");
		jtext_json(t, s->labels);
	}
	if (s->ready_serial[0]) {
		jtext_lit(t, ",\"ready\":{\"serial\":");
		jtext_str(t, s->ready_serial);
		jtext_lit(t, "}");
	}
	if (s->restart_on_lost)
		jtext_lit(t, ",\"restart\":\"on-lost\"");
	if (s->pool[0]) {
		jtext_lit(t, ",\"pool\":");
		jtext_str(t, s->pool);
	}
	if (s->has_boot) {
		jtext_lit(t, ",\"boot\":{\"kernel\":");
		jtext_str(t, s->boot.kernel);
		if (s->boot.initrd[0]) {
			jtext_lit(t, ",\"initrd\":");
			jtext_str(t, s->boot.initrd);
		}
		if (s->boot.cmdline) {
			jtext_lit(t, ",\"cmdline\":");
			jtext_str(t, s->boot.cmdline);
		}
		if (s->boot.xen_type[0]) {
			jtext_lit(t, ",\"xen_type\":");
			jtext_str(t, s->boot.xen_type);
		}
		jtext_lit(t, "}");
	}
	jtext_lit(t, "}");
}

/* One form only: the text above, read back (the callers that want a json_t are not hot). */
json_t *spec_to_json(const struct inst_spec *s)
{
	struct jtext t = {0};
	json_error_t e;
	json_t *j;
	spec_write_json(s, &t);
	if (!(j = json_loadb(t.s, t.len, 0, &e)))
		fatal("spec_to_json: the spec's own text does not parse: %s", e.text);
	jtext_free(&t);
	return j;
}

/* ---- executables a node allows ---------------------------------------------------------- */

static void exec_allow_add(struct exec_allow *a, const char *path)
{
	char **grown = realloc(a->paths, sizeof *a->paths * (a->n + 1));
	if (!grown || !(grown[a->n] = strdup(path)))
		fatal("alloc");
	a->paths = grown;
	a->n++;
}

int exec_allow_parse(struct exec_allow *a, const char *list, char *err, size_t errlen)
{
	const char *p = list;
	memset(a, 0, sizeof *a);
	while (*p) {
		size_t len = strcspn(p, ",");
		char path[MV_STRING_MAX + 1];
		if (len == 0 || len > MV_STRING_MAX || p[0] != '/') {
			snprintf(err, errlen, "--exec-allow takes absolute paths; \"%.*s\" is not one", (int)(len > 200 ? 200 : len),
			         p);
			exec_allow_free(a);
			return -EINVAL;
		}
		if (a->n == MV_EXEC_ALLOW_MAX) {
			snprintf(err, errlen, "--exec-allow takes at most %d paths", MV_EXEC_ALLOW_MAX);
			exec_allow_free(a);
			return -EINVAL;
		}
		memcpy(path, p, len);
		path[len] = '\0';
		exec_allow_add(a, path);
		p += len + (p[len] == ',');
	}
	return 0;
}

int exec_allow_from_json(struct exec_allow *a, const json_t *arr)
{
	const json_t *v;
	size_t i;
	memset(a, 0, sizeof *a);
	if (!arr)
		return 0;
	if (!json_is_array(arr) || json_array_size(arr) > MV_EXEC_ALLOW_MAX)
		return -EINVAL;
	json_array_foreach(arr, i, v) {
		const char *p = json_string_value(v);
		if (!p || p[0] != '/' || json_string_length(v) > MV_STRING_MAX || strlen(p) != json_string_length(v)) {
			exec_allow_free(a);
			return -EINVAL;
		}
		exec_allow_add(a, p);
	}
	return 0;
}

json_t *exec_allow_to_json(const struct exec_allow *a)
{
	json_t *arr = json_array();
	for (size_t i = 0; a && i < a->n; i++)
		json_array_append_new(arr, json_string(a->paths[i]));
	return arr;
}

bool exec_allow_contains(const struct exec_allow *a, const char *path)
{
	for (size_t i = 0; a && path && i < a->n; i++)
		if (strcmp(a->paths[i], path) == 0)
			return true;
	return false;
}

void exec_allow_free(struct exec_allow *a)
{
	for (size_t i = 0; i < a->n; i++)
		free(a->paths[i]);
	free(a->paths);
	a->paths = NULL;
	a->n = 0;
}
