/* fuzz_spec — drv_spec_parse on arbitrary bytes read as a create body (the same json_loadb
 * flags as http_read_json), and the invariants the rest of the core relies on:
 *   - a refusal is a 4xx with a code and a message;
 *   - an accepted spec holds only checked values (name, driver, ranges, bridge, command);
 *   - spec_to_json of it is accepted again, and re-serializes to the same JSON (also after
 *     a trip through text, as the store and the node see it). */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/model.h"
#include "drivers/drivers.h"

#define CHECK(cond)                                                                                   \
	do {                                                                                          \
		if (!(cond)) {                                                                        \
			fprintf(stderr, "fuzz_spec: invariant failed: %s (line %d)\n", #cond, __LINE__); \
			abort();                                                                      \
		}                                                                                     \
	} while (0)

static void check_refusal(const struct inst_spec *s, const struct mv_error *err)
{
	CHECK(err->status == 400);
	CHECK(err->code && err->code[0]);
	CHECK(memchr(err->message, '\0', sizeof err->message) && err->message[0]);
	CHECK(!s->config && !s->labels && !s->executable); /* nothing owned after a refusal */
}

static void check_accepted(const struct inst_spec *s)
{
	CHECK(name_valid(s->name));
	CHECK(driver_find(s->driver) != NULL);
	CHECK(s->vcpus_milli >= 1 && s->vcpus_milli <= (int64_t)MV_VCPUS_MAX * 1000);
	CHECK(s->memory_mb >= 1 && s->memory_mb <= MV_MEMORY_MB_MAX);
	CHECK(s->count >= 1 && s->count <= MV_COUNT_MAX);
	CHECK(!s->bridge[0] || (name_valid(s->bridge) && strlen(s->bridge) <= MV_BRIDGE_MAX));
	CHECK(!s->image[0] || name_valid(s->image));
	CHECK(!s->ready_serial[0] || label_value_valid(s->ready_serial));
	if (strcmp(s->driver, "exec") == 0) {
		CHECK(s->executable && s->executable[0] == '/');
		CHECK(strlen(s->executable) <= MV_STRING_MAX);
		CHECK(!s->image[0]);
	} else {
		CHECK(s->image[0]);
		CHECK(!s->config || json_is_object(s->config));
	}
	CHECK(!s->labels || (json_is_object(s->labels) && json_object_size(s->labels) <= MV_LABELS_MAX));
	if (s->count > 1) {
		char longest[MV_NAME_MAX + 16];
		snprintf(longest, sizeof longest, "%s-%d", s->name, s->count);
		CHECK(name_valid(longest));
	}
}

/* Parses j (which must be accepted), returns its spec_to_json and the spec in *out. */
static json_t *reparse(const json_t *j, struct inst_spec *out)
{
	struct mv_error err;
	if (drv_spec_parse(out, j, SPEC_REQUEST, &err) < 0) {
		char *text = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
		fprintf(stderr, "fuzz_spec: spec_to_json gave a body drv_spec_parse refuses: %s\n  %s: %s\n", text,
		        err.code, err.message);
		free(text);
		abort();
	}
	check_accepted(out);
	return spec_to_json(out);
}

static void check_same(const struct inst_spec *a, const struct inst_spec *b)
{
	CHECK(strcmp(a->name, b->name) == 0);
	CHECK(strcmp(a->driver, b->driver) == 0);
	CHECK(strcmp(a->image, b->image) == 0);
	CHECK(strcmp(a->bridge, b->bridge) == 0);
	CHECK(strcmp(a->ready_serial, b->ready_serial) == 0);
	CHECK(a->vcpus_milli == b->vcpus_milli);
	CHECK(a->memory_mb == b->memory_mb);
	CHECK(json_equal(a->config, b->config) || (!a->config && !b->config));
	CHECK(json_equal(a->labels, b->labels) || (!a->labels && !b->labels));
}

/* The same bytes as a stored spec (what the store and the node read): a refusal owns
 * nothing; an accepted one writes back to itself. */
static void stored_form(const json_t *body)
{
	struct inst_spec a, b;
	struct mv_error err;
	json_t *j, *k;
	if (drv_spec_parse(&a, body, SPEC_STORED, &err) < 0) {
		check_refusal(&a, &err);
		return;
	}
	CHECK(a.count == 1);
	CHECK(!a.has_boot || (digest_valid(a.boot.kernel) && (!a.boot.initrd[0] || digest_valid(a.boot.initrd))));
	j = spec_to_json(&a);
	CHECK(drv_spec_parse(&b, j, SPEC_STORED, &err) == 0);
	k = spec_to_json(&b);
	CHECK(json_equal(j, k));
	json_decref(j);
	json_decref(k);
	spec_free(&a);
	spec_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_error_t jerr;
	json_t *body, *j1, *j2, *j3, *text_back;
	struct inst_spec s1, s2, s3;
	struct mv_error err;
	char *text;

	if (size > MV_BODY_MAX)
		return 0;
	body = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &jerr);
	if (!body)
		return 0;
	stored_form(body);
	if (drv_spec_parse(&s1, body, SPEC_REQUEST, &err) < 0) {
		check_refusal(&s1, &err);
		spec_free(&s1);
		json_decref(body);
		return 0;
	}
	check_accepted(&s1);
	j1 = spec_to_json(&s1);
	CHECK(j1 && json_is_object(j1));

	/* The canonical form is accepted again and is a fixed point. */
	j2 = reparse(j1, &s2);
	CHECK(json_equal(j1, j2));
	check_same(&s1, &s2);

	/* Through text, as stored and as sent to a node. */
	text = json_dumps(j1, JSON_COMPACT | JSON_SORT_KEYS);
	CHECK(text);
	text_back = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
	if (!text_back) {
		fprintf(stderr, "fuzz_spec: spec_to_json text does not parse back: %s (%s)\n", text, jerr.text);
		abort();
	}
	j3 = reparse(text_back, &s3);
	CHECK(json_equal(j1, j3));
	check_same(&s1, &s3);

	free(text);
	json_decref(text_back);
	json_decref(j3);
	json_decref(j2);
	json_decref(j1);
	spec_free(&s3);
	spec_free(&s2);
	spec_free(&s1);
	json_decref(body);
	return 0;
}
