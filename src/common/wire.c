#include "common/wire.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

const char *const node_op_names[NODE_OP_COUNT] = {
	[NODE_OP_START] = "start",
	[NODE_OP_STOP] = "stop",
	[NODE_OP_PURGE] = "purge",
};

bool wire_id_valid(const char *s)
{
	return s && strlen(s) == MV_ID_LEN && strspn(s, "0123456789abcdef") == MV_ID_LEN;
}

static int copy_id(char out[MV_ID_LEN + 1], const json_t *v, const char *field, struct mv_error *err)
{
	if (!json_is_string(v) || !wire_id_valid(json_string_value(v)))
		return mv_fail(err, 400, "invalid_value", "%s must be %d lower-case hex characters", field, MV_ID_LEN);
	memcpy(out, json_string_value(v), MV_ID_LEN + 1);
	return 0;
}

/* ---- assignments ---- */

/* An optional run number (absent: 0). */
static int parse_run(uint32_t *out, const json_t *v, struct mv_error *err)
{
	*out = 0;
	if (!v)
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > WIRE_RUN_MAX)
		return mv_fail(err, 400, "invalid_value", "run must be an integer from 0 to %d", WIRE_RUN_MAX);
	*out = (uint32_t)json_integer_value(v);
	return 0;
}

json_t *wire_assignment_to_json(uint64_t seq, enum node_op op, const char *id, const struct inst_spec *spec,
                                uint32_t run)
{
	json_t *inst = json_pack("{s:s}", "id", id);
	if (spec)
		json_object_set_new(inst, "spec", spec_to_json(spec));
	if (run)
		json_object_set_new(inst, "run", json_integer(run));
	return json_pack("{s:I, s:s, s:o}", "seq", (json_int_t)seq, "op", node_op_names[op], "instance", inst);
}

int wire_assignment_parse(struct wire_assignment *a, const json_t *j, struct mv_error *err)
{
	const json_t *seq = json_object_get(j, "seq"), *op = json_object_get(j, "op");
	const json_t *inst = json_object_get(j, "instance"), *spec = json_object_get(inst, "spec");
	int i;

	memset(a, 0, sizeof *a);
	if (!json_is_integer(seq) || json_integer_value(seq) < 1)
		return mv_fail(err, 400, "invalid_value", "assignment seq must be a positive integer");
	a->seq = (uint64_t)json_integer_value(seq);
	for (i = 0; i < NODE_OP_COUNT; i++)
		if (json_is_string(op) && strcmp(json_string_value(op), node_op_names[i]) == 0)
			break;
	if (i == NODE_OP_COUNT)
		return mv_fail(err, 400, "invalid_value", "assignment %llu: op must be start, stop or purge",
		               (unsigned long long)a->seq);
	a->op = (enum node_op)i;
	if (copy_id(a->id, json_object_get(inst, "id"), "assignment instance.id", err) < 0)
		return -1;
	if (a->op == NODE_OP_START) {
		if (!spec)
			return mv_fail(err, 400, "missing_field", "assignment %llu: a start needs instance.spec",
			               (unsigned long long)a->seq);
		if (parse_run(&a->run, json_object_get(inst, "run"), err) < 0 ||
		    spec_decode(&a->spec, spec, SPEC_STORED, err) < 0)
			return -1;
		a->has_spec = true;
	}
	return 0;
}

void wire_assignment_free(struct wire_assignment *a)
{
	if (a->has_spec)
		spec_free(&a->spec);
	a->has_spec = false;
}

/* ---- reports ---- */

json_t *wire_report_to_json(const struct wire_report *r)
{
	json_t *j = json_pack("{s:s, s:s}", "id", r->id, "state", inst_state_names[r->state]);
	if (r->run)
		json_object_set_new(j, "run", json_integer(r->run));
	if (r->ready)
		json_object_set_new(j, "ready", json_true());
	if (r->has_exit_code)
		json_object_set_new(j, "exit_code", json_integer(r->exit_code));
	if (r->error[0])
		json_object_set_new(j, "error", json_string(r->error));
	if (r->has_timing)
		json_object_set_new(j, "timing", node_timing_to_json(&r->timing));
	if (r->has_stop_timing)
		json_object_set_new(j, "stop_timing", stop_timing_to_json(&r->stop_timing));
	return j;
}

int wire_report_parse(struct wire_report *r, const json_t *j, struct mv_error *err)
{
	const json_t *st = json_object_get(j, "state"), *code = json_object_get(j, "exit_code");
	const json_t *msg = json_object_get(j, "error"), *ready = json_object_get(j, "ready");
	const json_t *timing = json_object_get(j, "timing"), *stop = json_object_get(j, "stop_timing");
	int s;

	memset(r, 0, sizeof *r);
	if (!json_is_object(j) || !json_is_string(json_object_get(j, "id")) || !json_is_string(st))
		return mv_fail(err, 400, "invalid_value", "each report needs id and state strings");
	if (copy_id(r->id, json_object_get(j, "id"), "report id", err) < 0 ||
	    parse_run(&r->run, json_object_get(j, "run"), err) < 0)
		return -1;
	s = inst_state_parse(json_string_value(st));
	if (s != INST_STARTING && s != INST_RUNNING && s != INST_STOPPED && s != INST_EXITED && s != INST_FAILED)
		return mv_fail(err, 400, "invalid_value", "a node reports starting, running, stopped, exited or failed");
	r->state = (enum inst_state)s;
	if (code && (!json_is_integer(code) || json_integer_value(code) < -1000000 || json_integer_value(code) > 1000000))
		return mv_fail(err, 400, "invalid_type", "exit_code must be an integer");
	if (msg && (!json_is_string(msg) || json_string_length(msg) > WIRE_ERROR_MAX ||
	            strlen(json_string_value(msg)) != json_string_length(msg)))
		return mv_fail(err, 400, "invalid_type", "error must be a string of at most %d bytes", WIRE_ERROR_MAX);
	if (ready && (!json_is_boolean(ready) || r->state != INST_RUNNING))
		return mv_fail(err, 400, "invalid_value", "ready must be a boolean and comes with state running");
	if (timing && node_timing_from_json(&r->timing, timing) < 0)
		return mv_fail(err, 400, "invalid_value", "timing must hold durations in microseconds (0 to 1 h)");
	r->has_timing = timing != NULL;
	if (stop && (r->state == INST_STARTING || r->state == INST_RUNNING))
		return mv_fail(err, 400, "invalid_value", "stop_timing comes with an end (stopped, exited or failed)");
	if (stop && stop_timing_from_json(&r->stop_timing, stop) < 0)
		return mv_fail(err, 400, "invalid_value", "stop_timing must hold stop_us and cleanup_us in microseconds (0 to 1 h)");
	r->has_stop_timing = stop != NULL;
	r->has_exit_code = code != NULL;
	r->exit_code = (int)json_integer_value(code);
	snprintf(r->error, sizeof r->error, "%s", msg ? json_string_value(msg) : "");
	r->ready = json_is_true(ready);
	return 0;
}

int wire_reports_parse(const json_t *body, struct wire_report **out, size_t *n, struct mv_error *err)
{
	const json_t *list = json_object_get(body, "reports"), *r;
	struct wire_report *reps;
	size_t i;

	*out = NULL;
	*n = 0;
	if (!json_is_array(list) || json_array_size(list) > WIRE_REPORTS_MAX)
		return mv_fail(err, 400, "invalid_type", "reports must be an array (at most %d)", WIRE_REPORTS_MAX);
	if (!(reps = calloc(json_array_size(list) + 1, sizeof *reps)))
		fatal("calloc");
	json_array_foreach(list, i, r) {
		if (wire_report_parse(&reps[i], r, err) < 0) {
			free(reps);
			return -1;
		}
	}
	*out = reps;
	*n = json_array_size(list);
	return 0;
}

/* ---- registration ---- */

json_t *wire_register_to_json(const struct wire_register *r)
{
	json_t *alive = json_array();
	for (size_t i = 0; i < r->n_alive; i++)
		json_array_append_new(alive, json_string(r->alive[i]));
	return json_pack("{s:s, s:s, s:s, s:{s:i, s:I}, s:O, s:O, s:O, s:o, s:O*}", "id", r->id, "name", r->name,
	                 "address", r->address, "resources", "cpus", r->cpus, "memory_mb", (json_int_t)r->memory_mb,
	                 "drivers", r->drivers, "labels", r->labels, "bridges", r->bridges, "instances", alive,
	                 "run_dir", r->run_dir);
}

/* An absolute path of printable ASCII, without NUL inside: it is shown to people. */
static bool run_dir_valid(const json_t *v)
{
	const char *s = json_string_value(v);
	size_t n = json_string_length(v);
	if (!s || n == 0 || n > WIRE_RUN_DIR_MAX || strlen(s) != n || s[0] != '/')
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] < 0x20 || s[i] > 0x7e)
			return false;
	return true;
}

static int parse_bridges(const json_t *bridges, struct mv_error *err)
{
	const json_t *v;
	size_t i;
	if (!json_is_array(bridges) || json_array_size(bridges) > WIRE_BRIDGES_MAX)
		return mv_fail(err, 400, "invalid_type", "bridges must be an array of interface names");
	json_array_foreach(bridges, i, v) {
		if (!json_is_string(v) || json_string_length(v) > MV_BRIDGE_MAX || !name_valid(json_string_value(v)))
			return mv_fail(err, 400, "invalid_value", "bridges[%zu] is not an interface name", i);
	}
	return 0;
}

static int parse_drivers(const json_t *drivers, struct mv_error *err)
{
	const char *k;
	json_t *v;
	if (!json_is_object(drivers))
		return mv_fail(err, 400, "invalid_type", "drivers must be an object");
	json_object_foreach((json_t *)drivers, k, v) {
		if (strlen(k) > MV_DRIVER_NAME_MAX || !name_valid(k) || !json_is_object(v))
			return mv_fail(err, 400, "invalid_value", "drivers.%.32s is not a known driver description", k);
	}
	return 0;
}

static int parse_alive(struct wire_register *r, const json_t *list, struct mv_error *err)
{
	const json_t *v;
	size_t i;
	if (!list)
		return 0;
	if (!json_is_array(list) || json_array_size(list) > WIRE_ALIVE_MAX)
		return mv_fail(err, 400, "invalid_type", "instances must be an array of instance ids");
	if (!(r->alive = calloc(json_array_size(list) + 1, sizeof *r->alive)))
		fatal("calloc");
	json_array_foreach(list, i, v) {
		if (copy_id(r->alive[i], v, "instances[]", err) < 0)
			return -1;
	}
	r->n_alive = json_array_size(list);
	return 0;
}

int wire_register_parse(struct wire_register *r, const json_t *b, struct mv_error *err)
{
	const json_t *name = json_object_get(b, "name"), *addr = json_object_get(b, "address");
	const json_t *res = json_object_get(b, "resources");
	const json_t *cpus = json_object_get(res, "cpus"), *mem = json_object_get(res, "memory_mb");
	const json_t *drivers = json_object_get(b, "drivers"), *labels = json_object_get(b, "labels");
	const json_t *bridges = json_object_get(b, "bridges"), *run_dir = json_object_get(b, "run_dir");

	memset(r, 0, sizeof *r);
	if (!json_is_object(b))
		return mv_fail(err, 400, "invalid_type", "the body must be a JSON object");
	if (copy_id(r->id, json_object_get(b, "id"), "id", err) < 0)
		return -1;
	if (!json_is_string(name) || !name_valid(json_string_value(name)))
		return mv_fail(err, 400, "invalid_value", "name must be 1-%d characters [A-Za-z0-9._-]", MV_NAME_MAX);
	if (addr && (!json_is_string(addr) || json_string_length(addr) > WIRE_ADDRESS_MAX ||
	             strlen(json_string_value(addr)) != json_string_length(addr)))
		return mv_fail(err, 400, "invalid_value", "address must be a string of at most %d bytes", WIRE_ADDRESS_MAX);
	if (!json_is_integer(cpus) || json_integer_value(cpus) < 1 || json_integer_value(cpus) > 65536)
		return mv_fail(err, 400, "invalid_value", "resources.cpus must be an integer 1-65536");
	if (!json_is_integer(mem) || json_integer_value(mem) < 1 || json_integer_value(mem) > (1LL << 40))
		return mv_fail(err, 400, "invalid_value", "resources.memory_mb must be a positive integer");
	if (parse_drivers(drivers, err) < 0 || (bridges && parse_bridges(bridges, err) < 0) ||
	    (labels && labels_check(labels, err) < 0))
		return -1;
	if (run_dir && !run_dir_valid(run_dir))
		return mv_fail(err, 400, "invalid_value", "run_dir must be an absolute path of at most %d printable bytes",
		               WIRE_RUN_DIR_MAX);
	if (parse_alive(r, json_object_get(b, "instances"), err) < 0) {
		wire_register_free(r);
		return -1;
	}
	snprintf(r->name, sizeof r->name, "%s", json_string_value(name));
	snprintf(r->address, sizeof r->address, "%s", addr ? json_string_value(addr) : "");
	r->cpus = (int)json_integer_value(cpus);
	r->memory_mb = json_integer_value(mem);
	r->drivers = json_incref((json_t *)drivers);
	r->labels = labels ? json_incref((json_t *)labels) : json_object();
	r->bridges = bridges ? json_incref((json_t *)bridges) : json_array();
	r->run_dir = run_dir ? json_incref((json_t *)run_dir) : NULL;
	return 0;
}

int wire_bridges_parse(const json_t *body, json_t **bridges, struct mv_error *err)
{
	const json_t *list = json_object_get(body, "bridges");
	*bridges = NULL;
	if (!json_is_object(body))
		return mv_fail(err, 400, "invalid_type", "the body must be a JSON object {\"bridges\": [...]}");
	if (!list)
		return mv_fail(err, 400, "missing_field", "bridges is required: an array of interface names");
	if (parse_bridges(list, err) < 0)
		return -1;
	*bridges = json_incref((json_t *)list);
	return 0;
}

void wire_register_free(struct wire_register *r)
{
	json_decref(r->drivers);
	json_decref(r->labels);
	json_decref(r->bridges);
	json_decref(r->run_dir);
	free(r->alive);
	r->drivers = r->labels = r->bridges = r->run_dir = NULL;
	r->alive = NULL;
	r->n_alive = 0;
}
