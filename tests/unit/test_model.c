/* test_model — spec_parse (accepted bodies, every rejection with its status and code),
 * names, limits, spec_to_json round trip, states, driver indexes and ids. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "common/hmap.h"
#include "common/model.h"
#include "common/wire.h"
#include "drivers/drivers.h"
#include "unit.h"

/* Parses a JSON text as a create body. Returns spec_parse's result; err filled. */
static int parse_text(const char *text, struct inst_spec *spec, struct mv_error *err)
{
	json_error_t jerr;
	json_t *body = json_loads(text, JSON_DECODE_ANY, &jerr);
	int rc;
	if (!body) {
		fprintf(stderr, "  bad test JSON: %s: %s\n", text, jerr.text);
		unit_current_failed = 1;
		return -2;
	}
	memset(err, 0, sizeof *err);
	rc = drv_spec_parse(spec, body, SPEC_REQUEST, err);
	json_decref(body);
	return rc;
}

/* Expects a rejection with status 400 and the given code; frees nothing (spec_parse
 * frees on failure) but calls spec_free again to prove it is safe. */
#define REJECT(text, want_code)                                                              \
	do {                                                                                     \
		struct inst_spec rj_spec;                                                        \
		struct mv_error rj_err;                                                          \
		int rj_rc = parse_text((text), &rj_spec, &rj_err);                               \
		CHECK_EQ_INT(rj_rc, -1);                                                         \
		if (rj_rc == -1) {                                                               \
			CHECK_EQ_INT(rj_err.status, 400);                                        \
			CHECK(rj_err.code != NULL);                                              \
			if (rj_err.code && strcmp(rj_err.code, (want_code)) != 0)                \
				fprintf(stderr, "  body %s: code %s, want %s (%s)\n", (text),     \
				        rj_err.code, (want_code), rj_err.message);               \
			CHECK(rj_err.code && strcmp(rj_err.code, (want_code)) == 0);             \
			CHECK(rj_err.message[0] != '\0');                                        \
			CHECK(rj_spec.config == NULL && rj_spec.labels == NULL);                 \
		}                                                                                \
		if (rj_rc == 0 || rj_rc == -1)                                                   \
			spec_free(&rj_spec);                                                     \
	} while (0)

#define ACCEPT(text)                                                                         \
	do {                                                                                     \
		struct inst_spec ac_spec;                                                        \
		struct mv_error ac_err;                                                          \
		int ac_rc = parse_text((text), &ac_spec, &ac_err);                               \
		if (ac_rc != 0)                                                                  \
			fprintf(stderr, "  body %s refused: %s %s\n", (text),                    \
			        ac_err.code ? ac_err.code : "-", ac_err.message);                \
		CHECK_EQ_INT(ac_rc, 0);                                                          \
		if (ac_rc == 0)                                                                  \
			spec_free(&ac_spec);                                                     \
	} while (0)

#define EXEC_CFG "\"config\": {\"command\": \"/bin/sleep\"}"

/* A body with `name` set to s (JSON-escaped by jansson). */
static json_t *body_named(const char *s)
{
	return json_pack("{s:s, s:s, s:{s:s}}", "name", s, "driver", "exec", "config", "command",
	                 "/bin/sleep");
}

static int parse_json(json_t *body, struct inst_spec *spec, struct mv_error *err)
{
	int rc;
	memset(err, 0, sizeof *err);
	rc = drv_spec_parse(spec, body, SPEC_REQUEST, err);
	json_decref(body);
	return rc;
}

static void test_minimal_exec_defaults(void)
{
	struct inst_spec s;
	struct mv_error err;
	CHECK_EQ_INT(parse_text("{\"name\": \"fw1\", \"driver\": \"exec\", " EXEC_CFG "}", &s, &err), 0);
	CHECK_STR(s.name, "fw1");
	CHECK_STR(s.driver, "exec");
	CHECK_STR(s.image, "");
	CHECK_STR(s.bridge, "");
	CHECK_EQ_INT(s.vcpus_milli, 100);
	CHECK_EQ_INT(s.vcpus_milli, MV_DEFAULT_VCPUS_MILLI);
	CHECK_EQ_INT(s.memory_mb, 16);
	CHECK_EQ_INT(s.memory_mb, MV_DEFAULT_MEMORY_MB);
	CHECK_EQ_INT(s.count, 1);
	CHECK(s.labels == NULL);
	CHECK(json_is_object(s.config));
	CHECK(s.executable != NULL && strcmp(s.executable, "/bin/sleep") == 0);
	/* the executable points into the spec's own config */
	CHECK(s.executable == json_string_value(json_object_get(s.config, "command")));
	spec_free(&s);
	CHECK(s.config == NULL && s.labels == NULL && s.executable == NULL);
	spec_free(&s); /* twice is harmless */
}

static void test_full_exec_body(void)
{
	struct inst_spec s;
	struct mv_error err;
	const char *text =
		"{\"name\": \"fw.1_a-b\", \"driver\": \"exec\","
		" \"config\": {\"command\": \"/bin/sleep\", \"args\": [\"60\", \"\"], \"env\": {\"K\": \"V\", \"E\": \"\"}},"
		" \"resources\": {\"vcpus\": 0.25, \"memory_mb\": 64},"
		" \"network\": {\"bridge\": \"br0\"}, \"count\": 3, \"labels\": {\"rack\": \"r1\", \"zone\": \"\"}}";
	CHECK_EQ_INT(parse_text(text, &s, &err), 0);
	CHECK_STR(s.name, "fw.1_a-b");
	CHECK_EQ_INT(s.vcpus_milli, 250);
	CHECK_EQ_INT(s.memory_mb, 64);
	CHECK_STR(s.bridge, "br0");
	CHECK_EQ_INT(s.count, 3);
	CHECK(json_is_object(s.labels));
	CHECK_STR(json_string_value(json_object_get(s.labels, "rack")), "r1");
	CHECK_EQ_INT(json_array_size(json_object_get(s.config, "args")), 2);
	spec_free(&s);

	/* Only vcpus, or only memory: the other keeps its default. */
	CHECK_EQ_INT(parse_text("{\"name\": \"a\", \"driver\": \"exec\", " EXEC_CFG ", \"resources\": {\"vcpus\": 2}}",
	                        &s, &err), 0);
	CHECK_EQ_INT(s.vcpus_milli, 2000);
	CHECK_EQ_INT(s.memory_mb, 16);
	spec_free(&s);
	CHECK_EQ_INT(parse_text("{\"name\": \"a\", \"driver\": \"exec\", " EXEC_CFG ", \"resources\": {\"memory_mb\": 3}}",
	                        &s, &err), 0);
	CHECK_EQ_INT(s.vcpus_milli, 100);
	CHECK_EQ_INT(s.memory_mb, 3);
	spec_free(&s);
	ACCEPT("{\"name\": \"a\", \"driver\": \"exec\", " EXEC_CFG ", \"resources\": {}}");
	ACCEPT("{\"name\": \"a\", \"driver\": \"exec\", " EXEC_CFG ", \"labels\": {}}");
	ACCEPT("{\"name\": \"a\", \"driver\": \"exec\", \"config\": {\"command\": \"/bin/true\", \"args\": [], \"env\": {}}}");
}

static void test_vm_drivers(void)
{
	struct inst_spec s;
	struct mv_error err;
	static const char *const vms[] = {"qemu", "libvirt", "xen"};
	for (size_t i = 0; i < 3; i++) {
		char text[256];
		snprintf(text, sizeof text, "{\"name\": \"vm\", \"driver\": \"%s\", \"image\": \"clickos-1.0\"}", vms[i]);
		CHECK_EQ_INT(parse_text(text, &s, &err), 0);
		CHECK_STR(s.driver, vms[i]);
		CHECK_STR(s.image, "clickos-1.0");
		CHECK(s.config == NULL);
		CHECK(s.executable == NULL);
		spec_free(&s);

		/* Without an image: missing_field. */
		snprintf(text, sizeof text, "{\"name\": \"vm\", \"driver\": \"%s\"}", vms[i]);
		REJECT(text, "missing_field");
		/* A config only is not enough for a VM driver. */
		snprintf(text, sizeof text, "{\"name\": \"vm\", \"driver\": \"%s\", \"config\": {}}", vms[i]);
		REJECT(text, "missing_field");
		/* The driver checks its config at the boundary: an empty one is accepted, a
		 * field it does not know is refused, naming the field (a typo must not pass). */
		snprintf(text, sizeof text, "{\"name\": \"vm\", \"driver\": \"%s\", \"image\": \"k\", \"config\": {}}", vms[i]);
		ACCEPT(text);
		snprintf(text, sizeof text, "{\"name\": \"vm\", \"driver\": \"%s\", \"image\": \"k\", \"config\": {\"x\": 1}}", vms[i]);
		REJECT(text, "unknown_field");
		CHECK_EQ_INT(parse_text(text, &s, &err), -1);
		CHECK(strstr(err.message, "config.x") != NULL);
		snprintf(text, sizeof text, "{\"name\": \"vm\", \"driver\": \"%s\", \"image\": \"k\", \"config\": [1]}", vms[i]);
		REJECT(text, "invalid_type");
		snprintf(text, sizeof text, "{\"name\": \"vm\", \"driver\": \"%s\", \"image\": 5}", vms[i]);
		REJECT(text, "invalid_type");
		snprintf(text, sizeof text, "{\"name\": \"vm\", \"driver\": \"%s\", \"image\": \"../etc/passwd\"}", vms[i]);
		REJECT(text, "invalid_value");
		snprintf(text, sizeof text, "{\"name\": \"vm\", \"driver\": \"%s\", \"image\": \"\"}", vms[i]);
		REJECT(text, "invalid_value");
	}
}

static void test_reject_body_and_fields(void)
{
	REJECT("[]", "invalid_type");
	REJECT("\"fw1\"", "invalid_type");
	REJECT("42", "invalid_type");
	REJECT("null", "invalid_type");
	REJECT("{}", "missing_field");
	REJECT("{\"driver\": \"exec\", " EXEC_CFG "}", "missing_field");
	REJECT("{\"name\": \"a\", " EXEC_CFG "}", "missing_field");
	REJECT("{\"name\": \"a\", \"driver\": \"exec\", " EXEC_CFG ", \"extra\": 1}", "unknown_field");
	REJECT("{\"name\": \"a\", \"driver\": \"exec\", " EXEC_CFG ", \"Name\": \"b\"}", "unknown_field");
	REJECT("{\"name\": \"a\", \"driver\": \"exec\", " EXEC_CFG ", \"id\": \"x\"}", "unknown_field");
	REJECT("{\"name\": 1, \"driver\": \"exec\", " EXEC_CFG "}", "invalid_type");
	REJECT("{\"name\": null, \"driver\": \"exec\", " EXEC_CFG "}", "invalid_type");
	REJECT("{\"name\": \"a\", \"driver\": 1, " EXEC_CFG "}", "invalid_type");
	REJECT("{\"name\": \"a\", \"driver\": \"docker\", " EXEC_CFG "}", "invalid_value");
	REJECT("{\"name\": \"a\", \"driver\": \"EXEC\", " EXEC_CFG "}", "invalid_value");
	REJECT("{\"name\": \"a\", \"driver\": \"\", " EXEC_CFG "}", "invalid_value");
}

/* The error message names the field it is about. */
static void test_messages_name_the_field(void)
{
	struct {
		const char *body, *field;
	} cases[] = {
		{"{\"driver\": \"exec\", " EXEC_CFG "}", "name"},
		{"{\"name\": \"a\", \"driver\": \"exec\", " EXEC_CFG ", \"bogus\": 1}", "bogus"},
		{"{\"name\": \"a\", \"driver\": \"exec\", " EXEC_CFG ", \"resources\": {\"vcpus\": 0}}", "resources.vcpus"},
		{"{\"name\": \"a\", \"driver\": \"exec\", " EXEC_CFG ", \"resources\": {\"memory_mb\": 0}}", "resources.memory_mb"},
		{"{\"name\": \"a\", \"driver\": \"exec\", " EXEC_CFG ", \"resources\": {\"disk\": 1}}", "resources.disk"},
		{"{\"name\": \"a\", \"driver\": \"exec\", " EXEC_CFG ", \"count\": 0}", "count"},
		{"{\"name\": \"a\", \"driver\": \"exec\", \"config\": {\"command\": \"sleep\"}}", "config.command"},
		{"{\"name\": \"a\", \"driver\": \"exec\", " EXEC_CFG ", \"network\": {}}", "network.bridge"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct inst_spec s;
		struct mv_error err;
		CHECK_EQ_INT(parse_text(cases[i].body, &s, &err), -1);
		CHECK(strstr(err.message, cases[i].field) != NULL);
	}
}

static void test_names(void)
{
	static const char *const good[] = {
		"a", "A", "0", "fw1", "fw.1", "fw_1", "fw-1", "9lives", "a.b-c_d", "a--", "a..", "x_",
	};
	static const char *const bad[] = {
		"", "-a", ".a", "_a", "a b", " a", "a ", "a/b", "a:b", "a@b", "a\tb", "a\nb",
		"f\xc3\xa9",   /* é in UTF-8 */
		"\xc3\xa9t\xc3\xa9", "na\xefve", "a*", "a;rm", "..", "a=b",
	};
	char n63[64], n64[65];
	memset(n63, 'a', 63);
	n63[63] = '\0';
	memset(n64, 'b', 64);
	n64[64] = '\0';

	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		CHECK(name_valid(good[i]));
		struct inst_spec s;
		struct mv_error err;
		CHECK_EQ_INT(parse_json(body_named(good[i]), &s, &err), 0);
		if (err.status == 0) {
			CHECK_STR(s.name, good[i]);
			spec_free(&s);
		}
	}
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		CHECK(!name_valid(bad[i]));
		struct inst_spec s;
		struct mv_error err;
		json_t *body = body_named(bad[i]);
		if (!body) /* jansson refuses invalid UTF-8: that is a rejection too */
			continue;
		CHECK_EQ_INT(parse_json(body, &s, &err), -1);
		CHECK_EQ_INT(err.status, 400);
		CHECK(err.code && strcmp(err.code, "invalid_value") == 0);
	}

	/* 63 characters is the limit; 64 is one too many. */
	CHECK(name_valid(n63));
	CHECK(!name_valid(n64));
	{
		struct inst_spec s;
		struct mv_error err;
		CHECK_EQ_INT(parse_json(body_named(n63), &s, &err), 0);
		if (err.status == 0) {
			CHECK_EQ_INT(strlen(s.name), 63);
			CHECK_STR(s.name, n63);
			spec_free(&s);
		}
		CHECK_EQ_INT(parse_json(body_named(n64), &s, &err), -1);
		CHECK_EQ_INT(err.status, 400);
		CHECK(err.code && strcmp(err.code, "invalid_value") == 0);
	}

	/* A NUL inside the JSON string must not let "a\0/x" pass as "a" (as config strings
	 * are checked for NULs, so should the name be). */
	{
		struct inst_spec s;
		struct mv_error err;
		json_t *body = json_pack("{s:s, s:{s:s}}", "driver", "exec", "config", "command", "/bin/sleep");
		json_object_set_new(body, "name", json_stringn("a\0/x", 4));
		int rc = parse_json(body, &s, &err);
		CHECK_EQ_INT(rc, -1);
		if (rc == 0)
			spec_free(&s);
	}
}

static void test_label_keys_and_values(void)
{
	char text[1024];
	char v255[256], v256[257], k63[64], k64[65];
	memset(v255, 'v', 255);
	v255[255] = '\0';
	memset(v256, 'v', 256);
	v256[256] = '\0';
	memset(k63, 'k', 63);
	k63[63] = '\0';
	memset(k64, 'k', 64);
	k64[64] = '\0';

	CHECK(label_value_valid(""));
	CHECK(label_value_valid("r1 with spaces ~!"));
	CHECK(label_value_valid(v255));
	CHECK(!label_value_valid(v256));
	CHECK(!label_value_valid("a\tb"));
	CHECK(!label_value_valid("a\x7f"));
	CHECK(!label_value_valid("\xc3\xa9"));

#define LABELS(fmt, ...) \
	(snprintf(text, sizeof text, "{\"name\": \"a\", \"driver\": \"exec\", " EXEC_CFG ", \"labels\": " fmt "}", __VA_ARGS__), text)
	ACCEPT(LABELS("{\"%s\": \"%s\"}", k63, v255));
	REJECT(LABELS("{\"%s\": \"x\"}", k64), "invalid_value");
	REJECT(LABELS("{\"k\": \"%s\"}", v256), "invalid_value");
	REJECT(LABELS("{\"%s\": \"x\"}", "-k"), "invalid_value");
	REJECT(LABELS("{\"%s\": \"x\"}", ""), "invalid_value");
	REJECT(LABELS("{\"%s\": \"x\"}", "a b"), "invalid_value");
	REJECT(LABELS("{\"k\": \"%s\"}", "tab\\there"), "invalid_value");
	REJECT(LABELS("{\"k\": \"%s\"}", "caf\\u00e9"), "invalid_value");
	REJECT(LABELS("%s", "[\"rack\"]"), "invalid_type");
	REJECT(LABELS("%s", "\"rack=r1\""), "invalid_type");
#undef LABELS

	/* A non-string value is refused (either as a type or a value error). */
	{
		struct inst_spec s;
		struct mv_error err;
		CHECK_EQ_INT(parse_text("{\"name\": \"a\", \"driver\": \"exec\", " EXEC_CFG ", \"labels\": {\"k\": 1}}", &s, &err), -1);
		CHECK_EQ_INT(err.status, 400);
		CHECK(err.code && (strcmp(err.code, "invalid_type") == 0 || strcmp(err.code, "invalid_value") == 0));
	}

	/* 64 labels are accepted, 65 are not. */
	for (int n = 64; n <= 65; n++) {
		json_t *body = body_named("a"), *labels = json_object();
		struct inst_spec s;
		struct mv_error err;
		for (int i = 0; i < n; i++) {
			char k[16];
			snprintf(k, sizeof k, "k%d", i);
			json_object_set_new(labels, k, json_string("v"));
		}
		json_object_set_new(body, "labels", labels);
		int rc = parse_json(body, &s, &err);
		if (n == MV_LABELS_MAX) {
			CHECK_EQ_INT(rc, 0);
			if (rc == 0) {
				CHECK_EQ_INT(json_object_size(s.labels), 64);
				spec_free(&s);
			}
		} else {
			CHECK_EQ_INT(rc, -1);
			CHECK(err.code && strcmp(err.code, "invalid_value") == 0);
		}
	}
}

static void test_count(void)
{
	struct inst_spec s;
	struct mv_error err;
	ACCEPT("{\"name\": \"a\", \"driver\": \"exec\", " EXEC_CFG ", \"count\": 1}");
	CHECK_EQ_INT(parse_text("{\"name\": \"a\", \"driver\": \"exec\", " EXEC_CFG ", \"count\": 1000}", &s, &err), 0);
	if (err.status == 0) {
		CHECK_EQ_INT(s.count, 1000);
		spec_free(&s);
	}
	REJECT("{\"name\": \"a\", \"driver\": \"exec\", " EXEC_CFG ", \"count\": 0}", "invalid_value");
	REJECT("{\"name\": \"a\", \"driver\": \"exec\", " EXEC_CFG ", \"count\": -1}", "invalid_value");
	REJECT("{\"name\": \"a\", \"driver\": \"exec\", " EXEC_CFG ", \"count\": 1001}", "invalid_value");
	REJECT("{\"name\": \"a\", \"driver\": \"exec\", " EXEC_CFG ", \"count\": 4294967297}", "invalid_value");
	REJECT("{\"name\": \"a\", \"driver\": \"exec\", " EXEC_CFG ", \"count\": 2.0}", "invalid_type");
	REJECT("{\"name\": \"a\", \"driver\": \"exec\", " EXEC_CFG ", \"count\": \"2\"}", "invalid_type");
	REJECT("{\"name\": \"a\", \"driver\": \"exec\", " EXEC_CFG ", \"count\": null}", "invalid_type");
	REJECT("{\"name\": \"a\", \"driver\": \"exec\", " EXEC_CFG ", \"count\": true}", "invalid_type");
}

/* With count > 1 the instances are NAME-1 .. NAME-N; NAME-N must fit in 63 characters. */
static void test_count_name_length(void)
{
	char name[64];
	struct {
		int len, count;
		int ok;
	} cases[] = {
		{63, 1, 1},    /* count 1 keeps the name as it is */
		{61, 9, 1},    /* 61 + "-9" = 63 */
		{62, 9, 0},    /* 62 + "-9" = 64 */
		{60, 10, 1},   /* 60 + "-10" = 63 */
		{61, 10, 0},   /* 61 + "-10" = 64 */
		{60, 99, 1},   /* 60 + "-99" = 63 */
		{60, 100, 0},  /* 60 + "-100" = 64 */
		{59, 1000, 0}, /* 59 + "-1000" = 64 */
		{58, 1000, 1}, /* 58 + "-1000" = 63 */
		{62, 2, 0},
		{1, 1000, 1},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct inst_spec s;
		struct mv_error err;
		json_t *body;
		memset(name, 'n', (size_t)cases[i].len);
		name[cases[i].len] = '\0';
		body = body_named(name);
		json_object_set_new(body, "count", json_integer(cases[i].count));
		int rc = parse_json(body, &s, &err);
		if (cases[i].ok) {
			CHECK_EQ_INT(rc, 0);
			if (rc == 0) {
				/* the longest derived name is valid */
				char derived[128];
				if (cases[i].count > 1)
					snprintf(derived, sizeof derived, "%s-%d", s.name, s.count);
				else
					snprintf(derived, sizeof derived, "%s", s.name);
				CHECK(name_valid(derived));
				spec_free(&s);
			}
		} else {
			if (rc != -1)
				fprintf(stderr, "  len %d count %d accepted\n", cases[i].len, cases[i].count);
			CHECK_EQ_INT(rc, -1);
			CHECK_EQ_INT(err.status, 400);
			CHECK(err.code && strcmp(err.code, "invalid_value") == 0);
			CHECK(strstr(err.message, "name") != NULL);
		}
	}
}

static void test_resources(void)
{
	struct {
		const char *res;
		const char *code; /* NULL: accepted */
		int64_t milli, mb;
	} cases[] = {
		{"{\"vcpus\": 0.001}", NULL, 1, 16},
		{"{\"vcpus\": 0.1}", NULL, 100, 16},
		{"{\"vcpus\": 0.25}", NULL, 250, 16},
		{"{\"vcpus\": 0.333}", NULL, 333, 16},
		{"{\"vcpus\": 1}", NULL, 1000, 16},
		{"{\"vcpus\": 1.5}", NULL, 1500, 16},
		{"{\"vcpus\": 256}", NULL, 256000, 16},
		{"{\"vcpus\": 256.0}", NULL, 256000, 16},
		{"{\"vcpus\": 0.0009}", "invalid_value", 0, 0},
		{"{\"vcpus\": 0}", "invalid_value", 0, 0},
		{"{\"vcpus\": -1}", "invalid_value", 0, 0},
		{"{\"vcpus\": 256.001}", "invalid_value", 0, 0},
		{"{\"vcpus\": 257}", "invalid_value", 0, 0},
		{"{\"vcpus\": 1e300}", "invalid_value", 0, 0},
		{"{\"vcpus\": \"1\"}", "invalid_type", 0, 0},
		{"{\"vcpus\": true}", "invalid_type", 0, 0},
		{"{\"vcpus\": null}", "invalid_type", 0, 0},
		{"{\"memory_mb\": 1}", NULL, 100, 1},
		{"{\"memory_mb\": 1048576}", NULL, 100, 1048576},
		{"{\"memory_mb\": 1048577}", "invalid_value", 0, 0},
		{"{\"memory_mb\": 0}", "invalid_value", 0, 0},
		{"{\"memory_mb\": -16}", "invalid_value", 0, 0},
		{"{\"memory_mb\": 16.5}", "invalid_type", 0, 0},
		{"{\"memory_mb\": 16.0}", "invalid_type", 0, 0},
		{"{\"memory_mb\": \"16\"}", "invalid_type", 0, 0},
		{"{\"cpus\": 1}", "unknown_field", 0, 0},
		{"[1, 16]", "invalid_type", 0, 0},
		{"1", "invalid_type", 0, 0},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char text[512];
		snprintf(text, sizeof text, "{\"name\": \"a\", \"driver\": \"exec\", " EXEC_CFG ", \"resources\": %s}",
		         cases[i].res);
		if (cases[i].code) {
			REJECT(text, cases[i].code);
		} else {
			struct inst_spec s;
			struct mv_error err;
			int rc = parse_text(text, &s, &err);
			CHECK_EQ_INT(rc, 0);
			if (rc == 0) {
				CHECK_EQ_INT(s.vcpus_milli, cases[i].milli);
				CHECK_EQ_INT(s.memory_mb, cases[i].mb);
				spec_free(&s);
			}
		}
	}
}

static void test_network(void)
{
	ACCEPT("{\"name\": \"a\", \"driver\": \"exec\", " EXEC_CFG ", \"network\": {\"bridge\": \"br0\"}}");
	ACCEPT("{\"name\": \"a\", \"driver\": \"exec\", " EXEC_CFG ", \"network\": {\"bridge\": \"abcdefghijklmno\"}}");
	REJECT("{\"name\": \"a\", \"driver\": \"exec\", " EXEC_CFG ", \"network\": {\"bridge\": \"abcdefghijklmnop\"}}", "invalid_value");
	REJECT("{\"name\": \"a\", \"driver\": \"exec\", " EXEC_CFG ", \"network\": {\"bridge\": \"\"}}", "invalid_value");
	REJECT("{\"name\": \"a\", \"driver\": \"exec\", " EXEC_CFG ", \"network\": {\"bridge\": \"br 0\"}}", "invalid_value");
	REJECT("{\"name\": \"a\", \"driver\": \"exec\", " EXEC_CFG ", \"network\": {\"bridge\": \"br/0\"}}", "invalid_value");
	REJECT("{\"name\": \"a\", \"driver\": \"exec\", " EXEC_CFG ", \"network\": {\"bridge\": 0}}", "invalid_type");
	REJECT("{\"name\": \"a\", \"driver\": \"exec\", " EXEC_CFG ", \"network\": {}}", "missing_field");
	REJECT("{\"name\": \"a\", \"driver\": \"exec\", " EXEC_CFG ", \"network\": {\"bridge\": \"br0\", \"mac\": \"x\"}}", "unknown_field");
	REJECT("{\"name\": \"a\", \"driver\": \"exec\", " EXEC_CFG ", \"network\": \"br0\"}", "invalid_type");
}

static void test_exec_config(void)
{
	char big[MV_STRING_MAX + 2];
	char text[MV_STRING_MAX + 256];

	REJECT("{\"name\": \"a\", \"driver\": \"exec\"}", "missing_field");
	REJECT("{\"name\": \"a\", \"driver\": \"exec\", \"config\": \"/bin/sleep\"}", "invalid_type");
	REJECT("{\"name\": \"a\", \"driver\": \"exec\", \"config\": {}}", "missing_field");
	REJECT("{\"name\": \"a\", \"driver\": \"exec\", \"config\": {\"args\": [\"1\"]}}", "missing_field");
	REJECT("{\"name\": \"a\", \"driver\": \"exec\", \"config\": {\"command\": 1}}", "invalid_type");
	/* relative commands: no shell, no PATH lookup */
	REJECT("{\"name\": \"a\", \"driver\": \"exec\", \"config\": {\"command\": \"sleep\"}}", "invalid_value");
	REJECT("{\"name\": \"a\", \"driver\": \"exec\", \"config\": {\"command\": \"./sleep\"}}", "invalid_value");
	REJECT("{\"name\": \"a\", \"driver\": \"exec\", \"config\": {\"command\": \"bin/sleep\"}}", "invalid_value");
	REJECT("{\"name\": \"a\", \"driver\": \"exec\", \"config\": {\"command\": \"\"}}", "invalid_value");
	/* a NUL inside the command (jansson keeps it when the body was built in memory) */
	{
		struct inst_spec s;
		struct mv_error err;
		json_t *body = body_named("a");
		json_object_set_new(json_object_get(body, "config"), "command", json_stringn("/bin/sleep\0x", 12));
		CHECK_EQ_INT(parse_json(body, &s, &err), -1);
		CHECK(err.code && strcmp(err.code, "invalid_value") == 0);
	}
	REJECT("{\"name\": \"a\", \"driver\": \"exec\", \"config\": {\"command\": \"/bin/sleep\", \"cwd\": \"/\"}}", "unknown_field");
	REJECT("{\"name\": \"a\", \"driver\": \"exec\", \"config\": {\"command\": \"/bin/sleep\", \"args\": \"60\"}}", "invalid_type");
	REJECT("{\"name\": \"a\", \"driver\": \"exec\", \"config\": {\"command\": \"/bin/sleep\", \"args\": [60]}}", "invalid_type");
	REJECT("{\"name\": \"a\", \"driver\": \"exec\", \"config\": {\"command\": \"/bin/sleep\", \"env\": [\"K=V\"]}}", "invalid_type");
	REJECT("{\"name\": \"a\", \"driver\": \"exec\", \"config\": {\"command\": \"/bin/sleep\", \"env\": {\"K\": 1}}}", "invalid_type");
	REJECT("{\"name\": \"a\", \"driver\": \"exec\", \"config\": {\"command\": \"/bin/sleep\", \"env\": {\"K=X\": \"V\"}}}", "invalid_value");
	REJECT("{\"name\": \"a\", \"driver\": \"exec\", \"config\": {\"command\": \"/bin/sleep\", \"env\": {\"\": \"V\"}}}", "invalid_value");

	/* the exec driver takes config, not image: refused with a documented code */
	{
		struct inst_spec s;
		struct mv_error err;
		int rc = parse_text("{\"name\": \"a\", \"driver\": \"exec\", \"image\": \"k\", " EXEC_CFG "}", &s, &err);
		CHECK_EQ_INT(rc, -1);
		CHECK_EQ_INT(err.status, 400);
		/* docs/API.md: invalid_field is a field that does not go with the driver */
		CHECK(err.code && (strcmp(err.code, "invalid_field") == 0));
	}

	/* String lengths: 4096 bytes accepted, 4097 refused (command and args). */
	big[0] = '/';
	memset(big + 1, 'x', MV_STRING_MAX - 1);
	big[MV_STRING_MAX] = '\0';
	snprintf(text, sizeof text, "{\"name\": \"a\", \"driver\": \"exec\", \"config\": {\"command\": \"%s\"}}", big);
	ACCEPT(text);
	big[MV_STRING_MAX] = 'x';
	big[MV_STRING_MAX + 1] = '\0';
	snprintf(text, sizeof text, "{\"name\": \"a\", \"driver\": \"exec\", \"config\": {\"command\": \"%s\"}}", big);
	REJECT(text, "invalid_value");
	snprintf(text, sizeof text, "{\"name\": \"a\", \"driver\": \"exec\", \"config\": {\"command\": \"/bin/echo\", \"args\": [\"%s\"]}}", big + 1);
	ACCEPT(text); /* big + 1 is 4096 bytes */
	snprintf(text, sizeof text, "{\"name\": \"a\", \"driver\": \"exec\", \"config\": {\"command\": \"/bin/echo\", \"args\": [\"%s\"]}}", big);
	REJECT(text, "invalid_value");

	/* 256 args accepted, 257 refused; 256 env entries accepted, 257 refused. */
	for (int n = MV_ARGS_MAX; n <= MV_ARGS_MAX + 1; n++) {
		json_t *body = body_named("a"), *args = json_array(), *env = json_object();
		json_t *cfg = json_object_get(body, "config");
		struct inst_spec s;
		struct mv_error err;
		for (int i = 0; i < n; i++) {
			char k[16];
			snprintf(k, sizeof k, "K%d", i);
			json_array_append_new(args, json_string("x"));
			json_object_set_new(env, k, json_string("v"));
		}
		json_object_set_new(cfg, "args", args);
		int rc = parse_json(json_incref(body), &s, &err);
		CHECK_EQ_INT(rc, n <= MV_ARGS_MAX ? 0 : -1);
		if (rc == 0)
			spec_free(&s);
		else
			CHECK(err.code && strcmp(err.code, "invalid_value") == 0);
		json_object_del(cfg, "args");
		json_object_set_new(cfg, "env", env);
		rc = parse_json(body, &s, &err);
		CHECK_EQ_INT(rc, n <= MV_ENV_MAX ? 0 : -1);
		if (rc == 0)
			spec_free(&s);
		else
			CHECK(err.code && strcmp(err.code, "invalid_value") == 0);
	}
}

/* ready: {"serial": MARKER} for VM drivers (the guest prints MARKER when it is up). */
static void test_ready_serial(void)
{
	struct inst_spec s;
	struct mv_error err;
	char text[512], m128[129], m129[130];
	memset(m128, 'M', 128);
	m128[128] = '\0';
	memset(m129, 'M', 129);
	m129[129] = '\0';

#define VM_READY(r) (snprintf(text, sizeof text, "{\"name\": \"vm\", \"driver\": \"qemu\", \"image\": \"k\", \"ready\": %s}", r), text)
	CHECK_EQ_INT(parse_text(VM_READY("{\"serial\": \"VNF READY\"}"), &s, &err), 0);
	if (err.status == 0) {
		CHECK_STR(s.ready_serial, "VNF READY");
		json_t *j = spec_to_json(&s);
		CHECK_STR(json_string_value(json_object_get(json_object_get(j, "ready"), "serial")), "VNF READY");
		struct inst_spec b;
		CHECK_EQ_INT(drv_spec_parse(&b, j, SPEC_REQUEST, &err), 0);
		if (err.status == 0) {
			CHECK_STR(b.ready_serial, "VNF READY");
			spec_free(&b);
		}
		json_decref(j);
		spec_free(&s);
	}
	/* without ready, none */
	CHECK_EQ_INT(parse_text("{\"name\": \"vm\", \"driver\": \"xen\", \"image\": \"k\"}", &s, &err), 0);
	if (err.status == 0) {
		CHECK_STR(s.ready_serial, "");
		json_t *j = spec_to_json(&s);
		CHECK(json_object_get(j, "ready") == NULL);
		json_decref(j);
		spec_free(&s);
	}
	{
		char r[160];
		snprintf(r, sizeof r, "{\"serial\": \"%s\"}", m128); /* 128: the limit */
		ACCEPT(VM_READY(r));
		snprintf(r, sizeof r, "{\"serial\": \"%s\"}", m129); /* 129: one over */
		REJECT(VM_READY(r), "invalid_value");
	}
	REJECT(VM_READY("{\"serial\": \"\"}"), "invalid_value");
	REJECT(VM_READY("{\"serial\": \"a\\nb\"}"), "invalid_value");
	REJECT(VM_READY("{\"serial\": 1}"), "invalid_value");
	REJECT(VM_READY("{}"), "missing_field");
	REJECT(VM_READY("{\"serial\": \"x\", \"fd\": 3}"), "unknown_field");
	REJECT(VM_READY("\"x\""), "invalid_type");
	REJECT(VM_READY("[\"x\"]"), "invalid_type");
#undef VM_READY

	/* exec has no serial port: refused, with a documented 400 code */
	int rc = parse_text("{\"name\": \"a\", \"driver\": \"exec\", " EXEC_CFG ", \"ready\": {\"serial\": \"x\"}}", &s, &err);
	CHECK_EQ_INT(rc, -1);
	CHECK_EQ_INT(err.status, 400);
	if (rc == 0)
		spec_free(&s);
	CHECK(err.code && (strcmp(err.code, "invalid_field") == 0));
}

/* The parsed spec does not depend on the caller's body (deep copies). */
/* Every driver's config is checked the same way, at the core, with the field named: the
 * typo of issue 9 ({"acel": "tcg"} for qemu) is refused like exec's config.comand. */
static void test_driver_configs(void)
{
	static const struct {
		const char *driver, *config, *code, *field; /* code NULL: accepted */
	} cases[] = {
		{"qemu", "{\"accel\": \"tcg\", \"machine\": \"pc\"}", NULL, NULL},
		{"qemu", "{\"acel\": \"tcg\"}", "unknown_field", "config.acel"},
		{"qemu", "{\"accel\": \"hvf\"}", "invalid_value", "config.accel"},
		{"qemu", "{\"machine\": 1}", "invalid_value", "config.machine"},
		{"libvirt", "{\"type\": \"pv\"}", NULL, NULL},
		{"libvirt", "{\"acel\": \"tcg\"}", "unknown_field", "config.acel"},
		{"xen", "{\"click\": \"Idle -> Discard;\"}", NULL, NULL},
		{"xen", "{\"type\": \"pv\"}", "unknown_field", "--xen-type"}, /* the type is the image's */
		{"xen", "{\"click\": \"\"}", "invalid_value", "config.click"},
		{"xen", "{\"acel\": \"tcg\"}", "unknown_field", "config.acel"},
		{"exec", "{\"comand\": \"/bin/sleep\"}", "unknown_field", "config.comand"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char text[512];
		struct inst_spec s;
		struct mv_error err;
		int rc;
		snprintf(text, sizeof text, "{\"name\": \"a\", \"driver\": \"%s\", %s \"config\": %s}", cases[i].driver,
		         strcmp(cases[i].driver, "exec") == 0 ? "" : "\"image\": \"k\",", cases[i].config);
		rc = parse_text(text, &s, &err);
		if (!cases[i].code) {
			if (rc != 0)
				fprintf(stderr, "  %s refused: %s\n", text, err.message);
			CHECK_EQ_INT(rc, 0);
			if (rc == 0)
				spec_free(&s);
			continue;
		}
		CHECK_EQ_INT(rc, -1);
		if (rc != -1)
			continue;
		if (strcmp(err.code, cases[i].code) != 0 || !strstr(err.message, cases[i].field))
			fprintf(stderr, "  %s: %s %s, want %s naming %s\n", text, err.code, err.message, cases[i].code,
			        cases[i].field);
		CHECK_STR(err.code, cases[i].code);
		CHECK(strstr(err.message, cases[i].field) != NULL);
	}
}

static void test_spec_owns_its_parts(void)
{
	struct inst_spec s;
	struct mv_error err;
	json_t *body = json_pack("{s:s, s:s, s:{s:s, s:[s]}, s:{s:s}}", "name", "a", "driver", "exec", "config",
	                         "command", "/bin/sleep", "args", "60", "labels", "rack", "r1");
	CHECK_EQ_INT(drv_spec_parse(&s, body, SPEC_REQUEST, &err), 0);
	json_decref(body); /* the body is gone; the spec must still be whole */
	CHECK_STR(s.executable, "/bin/sleep");
	CHECK_STR(json_string_value(json_array_get(json_object_get(s.config, "args"), 0)), "60");
	CHECK_STR(json_string_value(json_object_get(s.labels, "rack")), "r1");
	spec_free(&s);
}

static void test_spec_to_json_round_trip(void)
{
	const char *texts[] = {
		"{\"name\": \"fw1\", \"driver\": \"exec\", " EXEC_CFG "}",
		"{\"name\": \"fw2\", \"driver\": \"exec\", \"config\": {\"command\": \"/bin/sleep\", \"args\": [\"60\"],"
		" \"env\": {\"K\": \"V\"}}, \"resources\": {\"vcpus\": 0.333, \"memory_mb\": 64},"
		" \"network\": {\"bridge\": \"br0\"}, \"count\": 5, \"labels\": {\"rack\": \"r1\"}}",
		"{\"name\": \"vm\", \"driver\": \"xen\", \"image\": \"clickos\", \"resources\": {\"vcpus\": 2, \"memory_mb\": 8}}",
		"{\"name\": \"vm2\", \"driver\": \"qemu\", \"image\": \"k\", \"config\": {\"accel\": \"tcg\"}}",
	};
	for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
		struct inst_spec a, b;
		struct mv_error err;
		json_t *j, *j2;
		if (parse_text(texts[i], &a, &err) != 0) {
			CHECK(!"parse");
			continue;
		}
		j = spec_to_json(&a);
		CHECK(json_is_object(j));
		CHECK(json_object_get(j, "count") == NULL); /* count is not part of the stored spec */
		CHECK(json_is_object(json_object_get(j, "resources")));
		CHECK_EQ_INT(drv_spec_parse(&b, j, SPEC_REQUEST, &err), 0);
		CHECK_STR(a.name, b.name);
		CHECK_STR(a.driver, b.driver);
		CHECK_STR(a.image, b.image);
		CHECK_STR(a.bridge, b.bridge);
		CHECK_EQ_INT(a.vcpus_milli, b.vcpus_milli);
		CHECK_EQ_INT(a.memory_mb, b.memory_mb);
		CHECK_EQ_INT(b.count, 1);
		CHECK(json_equal(a.config, b.config) || (!a.config && !b.config));
		CHECK(json_equal(a.labels, b.labels) || (!a.labels && !b.labels));
		CHECK((a.executable == NULL) == (b.executable == NULL));
		if (a.executable && b.executable)
			CHECK_STR(a.executable, b.executable);
		/* and again: a fixed point */
		j2 = spec_to_json(&b);
		CHECK(json_equal(j, j2));
		json_decref(j);
		json_decref(j2);
		spec_free(&a);
		spec_free(&b);
	}

	/* Every thousandth of a vCPU survives the trip through a JSON number. */
	for (int64_t milli = 1; milli <= MV_VCPUS_MAX * 1000; milli += milli < 3000 ? 1 : 997) {
		struct inst_spec a, b;
		struct mv_error err;
		json_t *j;
		CHECK_EQ_INT(parse_json(body_named("m"), &a, &err), 0);
		a.vcpus_milli = milli;
		j = spec_to_json(&a);
		if (drv_spec_parse(&b, j, SPEC_REQUEST, &err) != 0) {
			fprintf(stderr, "  %lld milli refused: %s\n", (long long)milli, err.message);
			CHECK(!"milli round trip parse");
		} else {
			if (b.vcpus_milli != milli)
				CHECK_EQ_INT(b.vcpus_milli, milli);
			spec_free(&b);
		}
		json_decref(j);
		spec_free(&a);
	}
}

static void test_states(void)
{
	for (int i = 0; i < INST_STATE_COUNT; i++) {
		CHECK(inst_state_names[i] != NULL);
		CHECK_EQ_INT(inst_state_parse(inst_state_names[i]), i);
	}
	CHECK_EQ_INT(inst_state_parse("pending"), INST_PENDING);
	CHECK_EQ_INT(inst_state_parse("running"), INST_RUNNING);
	CHECK_EQ_INT(inst_state_parse("lost"), INST_LOST);
	CHECK_EQ_INT(inst_state_parse("Running"), -1);
	CHECK_EQ_INT(inst_state_parse("running "), -1);
	CHECK_EQ_INT(inst_state_parse(""), -1);
	CHECK_EQ_INT(inst_state_parse("active"), -1);

	CHECK(!inst_state_terminal(INST_PENDING));
	CHECK(!inst_state_terminal(INST_SCHEDULED));
	CHECK(!inst_state_terminal(INST_STARTING));
	CHECK(!inst_state_terminal(INST_RUNNING));
	CHECK(inst_state_terminal(INST_STOPPED));
	CHECK(inst_state_terminal(INST_EXITED));
	CHECK(inst_state_terminal(INST_FAILED));
	CHECK(inst_state_terminal(INST_LOST));

	/* in flight: exactly the states before running that are not ended */
	for (int i = 0; i < INST_STATE_COUNT; i++)
		CHECK(inst_state_in_flight(i) == (i != INST_RUNNING && !inst_state_terminal(i)));
}

/* core --max-inflight: 0 is no limit; a batch is all or nothing; a batch larger than the
 * limit can never fit; being over the limit already (lost instances placed again, a lower
 * limit after a restart) refuses new work without breaking. */
static void test_admission(void)
{
	CHECK_EQ_INT(admission_check(0, 0, 1), ADMIT);
	CHECK_EQ_INT(admission_check(0, 1000000, 1000), ADMIT);
	CHECK_EQ_INT(admission_check(3, 0, 1), ADMIT);
	CHECK_EQ_INT(admission_check(3, 2, 1), ADMIT);
	CHECK_EQ_INT(admission_check(3, 3, 1), ADMIT_LATER);
	CHECK_EQ_INT(admission_check(3, 0, 3), ADMIT);
	CHECK_EQ_INT(admission_check(3, 1, 3), ADMIT_LATER);
	CHECK_EQ_INT(admission_check(3, 2, 2), ADMIT_LATER);
	CHECK_EQ_INT(admission_check(3, 0, 4), ADMIT_NEVER);
	CHECK_EQ_INT(admission_check(3, 10, 1), ADMIT_LATER);
	CHECK_EQ_INT(admission_check(1, 0, 1), ADMIT);
	CHECK_EQ_INT(admission_check(1, 1, 1), ADMIT_LATER);
	CHECK_EQ_INT(admission_check(4096, 3096, 1000), ADMIT);
	CHECK_EQ_INT(admission_check(4096, 3097, 1000), ADMIT_LATER);
	/* no overflow at the extremes */
	CHECK_EQ_INT(admission_check(INT64_MAX, INT64_MAX - 1, 1), ADMIT);
	CHECK_EQ_INT(admission_check(INT64_MAX, INT64_MAX, 1), ADMIT_LATER);
}

static void test_drivers(void)
{
	int n = 0;
	for (; drivers[n]; n++) {
		CHECK_EQ_INT(driver_index(drivers[n]->name), n);
		CHECK(driver_find(drivers[n]->name) == drivers[n]);
	}
	CHECK_EQ_INT(n, 5); /* exec, qemu, libvirt, xen and sim (simulated nodes only) */
	CHECK(n <= 32); /* indexes fit a bitmask */
	CHECK(driver_index("exec") >= 0);
	CHECK(driver_index("qemu") >= 0);
	CHECK(driver_index("libvirt") >= 0);
	CHECK(driver_index("xen") >= 0);
	CHECK(driver_index("sim") >= 0);
	CHECK_EQ_INT(driver_index("docker"), -1);
	CHECK_EQ_INT(driver_index(""), -1);
	CHECK_EQ_INT(driver_index("Exec"), -1);
	CHECK_EQ_INT(driver_index("exec "), -1);
	CHECK(driver_find("kvm") == NULL);
	/* indexes are distinct */
	for (int i = 0; i < n; i++)
		for (int j = 0; j < i; j++)
			CHECK(driver_index(drivers[i]->name) != driver_index(drivers[j]->name));
}

static void test_id_generate(void)
{
	enum { N = 1000 };
	static char ids[N][MV_ID_LEN + 1];
	struct hmap seen;
	hmap_init(&seen);
	for (int i = 0; i < N; i++) {
		memset(ids[i], 'Z', sizeof ids[i]);
		id_generate(ids[i]);
		CHECK_EQ_INT(strlen(ids[i]), MV_ID_LEN);
		for (int k = 0; k < MV_ID_LEN; k++) {
			char c = ids[i][k];
			CHECK((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'));
		}
		CHECK(hmap_get(&seen, ids[i]) == NULL);
		hmap_put(&seen, ids[i], ids[i]);
	}
	CHECK_EQ_INT(hmap_size(&seen), N);
	hmap_free(&seen);
}

/* The stored form's boot carries the image's Xen guest type (the core resolves it from the
 * image): it reads back, goes out again in spec_to_json, and only "pv" or "pvh" is taken. */
static void test_boot_xen_type(void)
{
	static const char *const base = "{\"name\": \"c\", \"driver\": \"xen\", \"image\": \"clickos\", "
	                                "\"resources\": {\"vcpus\": 1, \"memory_mb\": 8}, \"boot\": {\"kernel\": \"sha256:"
	                                "0000000000000000000000000000000000000000000000000000000000000001\"%s}}";
	char text[512];
	struct inst_spec s;
	struct mv_error err = {0};
	json_t *j;

	snprintf(text, sizeof text, base, ", \"xen_type\": \"pv\"");
	j = json_loads(text, 0, NULL);
	CHECK_EQ_INT(drv_spec_parse(&s, j, SPEC_STORED, &err), 0);
	json_decref(j);
	if (err.status == 0) {
		CHECK_STR(s.boot.xen_type, "pv");
		j = spec_to_json(&s);
		CHECK_STR(json_string_value(json_object_get(json_object_get(j, "boot"), "xen_type")), "pv");
		json_decref(j);
		spec_free(&s);
	}
	snprintf(text, sizeof text, base, "");
	j = json_loads(text, 0, NULL);
	CHECK_EQ_INT(drv_spec_parse(&s, j, SPEC_STORED, &err), 0);
	json_decref(j);
	if (err.status == 0) {
		CHECK_STR(s.boot.xen_type, ""); /* not said: the driver boots it PVH */
		j = spec_to_json(&s);
		CHECK(json_object_get(json_object_get(j, "boot"), "xen_type") == NULL);
		json_decref(j);
		spec_free(&s);
	}
	snprintf(text, sizeof text, base, ", \"xen_type\": \"hvm\"");
	j = json_loads(text, 0, NULL);
	CHECK(drv_spec_parse(&s, j, SPEC_STORED, &err) < 0);
	json_decref(j);
	CHECK_EQ_INT(err.status, 400);
	CHECK(strstr(err.message, "boot.xen_type") != NULL);
}

/* A start names its run and a report the run it speaks of; absent is 0 (what a node or
 * core from before runs sends); out of range or of another type is refused. */
static void test_wire_run(void)
{
	struct mv_error err;
	struct wire_report r = {.id = "00000000000000a1", .state = INST_RUNNING, .run = 7}, back;
	struct wire_assignment a;
	struct inst_spec spec;
	json_t *j = wire_report_to_json(&r), *body, *spec_json;
	CHECK_EQ_INT(wire_report_parse(&back, j, &err), 0);
	CHECK_EQ_INT(back.run, 7);
	json_object_del(j, "run");
	CHECK_EQ_INT(wire_report_parse(&back, j, &err), 0);
	CHECK_EQ_INT(back.run, 0);
	json_object_set_new(j, "run", json_string("1"));
	CHECK_EQ_INT(wire_report_parse(&back, j, &err), -1);
	CHECK(strstr(err.message, "run") != NULL);
	json_object_set_new(j, "run", json_integer(-1));
	CHECK_EQ_INT(wire_report_parse(&back, j, &err), -1);
	json_decref(j);

	body = json_pack("{s:s, s:s, s:{s:s}}", "name", "fw", "driver", "exec", "config", "command", "/bin/true");
	CHECK_EQ_INT(spec_decode(&spec, body, SPEC_STORED, &err), 0);
	spec_json = wire_assignment_to_json(3, NODE_OP_START, "00000000000000a1", &spec, 2);
	CHECK_EQ_INT(wire_assignment_parse(&a, spec_json, &err), 0);
	CHECK_EQ_INT(a.run, 2);
	wire_assignment_free(&a);
	json_decref(spec_json);
	spec_json = wire_assignment_to_json(3, NODE_OP_START, "00000000000000a1", &spec, 0);
	CHECK(json_object_get(json_object_get(spec_json, "instance"), "run") == NULL);
	CHECK_EQ_INT(wire_assignment_parse(&a, spec_json, &err), 0);
	CHECK_EQ_INT(a.run, 0);
	wire_assignment_free(&a);
	json_decref(spec_json);
	spec_free(&spec);
	json_decref(body);
}

int main(void)
{
	RUN(test_boot_xen_type);
	RUN(test_minimal_exec_defaults);
	RUN(test_full_exec_body);
	RUN(test_vm_drivers);
	RUN(test_reject_body_and_fields);
	RUN(test_messages_name_the_field);
	RUN(test_names);
	RUN(test_label_keys_and_values);
	RUN(test_count);
	RUN(test_count_name_length);
	RUN(test_resources);
	RUN(test_network);
	RUN(test_exec_config);
	RUN(test_ready_serial);
	RUN(test_driver_configs);
	RUN(test_spec_owns_its_parts);
	RUN(test_spec_to_json_round_trip);
	RUN(test_states);
	RUN(test_admission);
	RUN(test_drivers);
	RUN(test_id_generate);
	RUN(test_wire_run);
	UNIT_END();
}
