/* test_jsontext — the JSON text writer: strings escaped exactly as jansson escapes them,
 * numbers that read back as the values written, a document that parses, and the spec's
 * text (spec_write_json) read back by spec_decode as the same spec. */
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/jsontext.h"
#include "common/model.h"
#include "unit.h"

static void test_strings_as_jansson(void)
{
	static const char *const cases[] = {
		"", "plain", "with \"quotes\"", "back\\slash", "a/slash", "tab\there", "new\nline\r\n",
		"\b\f", "\x01\x02\x1f", "\x7f del", "UTF-8: h\xc3\xa9llo \xe2\x82\xac", "end\\",
		"\"", "mixed \x1b[1m\"x\"\\y\n",
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct jtext t = {0};
		json_t *s = json_string(cases[i]);
		char *want = json_dumps(s, JSON_ENCODE_ANY | JSON_COMPACT);
		jtext_str(&t, cases[i]);
		CHECK(want != NULL);
		if (want && strcmp(t.s, want) != 0) {
			fprintf(stderr, "  case %zu: got %s, jansson %s\n", i, t.s, want);
			CHECK(0);
		}
		free(want);
		json_decref(s);
		jtext_free(&t);
	}
}

static void check_number(void (*put)(struct jtext *, int64_t), int64_t v, double want, const char *text)
{
	struct jtext t = {0};
	json_t *j;
	put(&t, v);
	j = json_loads(t.s, JSON_DECODE_ANY, NULL);
	CHECK(j && json_is_number(j));
	CHECK(j && fabs(json_number_value(j) - want) < 1e-9);
	if (text && strcmp(t.s, text) != 0) {
		fprintf(stderr, "  %lld: got %s, want %s\n", (long long)v, t.s, text);
		CHECK(0);
	}
	json_decref(j);
	jtext_free(&t);
}

static void test_numbers(void)
{
	check_number(jtext_int, 0, 0, "0");
	check_number(jtext_int, 42, 42, "42");
	check_number(jtext_int, -7, -7, "-7");
	check_number(jtext_int, INT64_MAX, (double)INT64_MAX, "9223372036854775807");
	check_number(jtext_int, INT64_MIN, (double)INT64_MIN, "-9223372036854775808");
	/* milli: as jansson writes the double milli / 1000 (at least one decimal) */
	check_number(jtext_milli, 1, 0.001, "0.001");
	check_number(jtext_milli, 500, 0.5, "0.5");
	check_number(jtext_milli, 1000, 1.0, "1.0");
	check_number(jtext_milli, 1250, 1.25, "1.25");
	check_number(jtext_milli, 0, 0.0, "0.0");
	check_number(jtext_milli, 64010, 64.01, "64.01");
	check_number(jtext_milli, -1500, -1.5, "-1.5");
}

static void test_document_parses(void)
{
	struct jtext t = {0};
	json_t *inner = json_pack("{s:[i, s, b], s:f}", "a", 1, "x\"y", 1, "r", 0.25), *j;
	size_t len;
	char *s;
	jtext_lit(&t, "{");
	jtext_str(&t, "k\n");
	jtext_lit(&t, ":");
	jtext_json(&t, inner);
	jtext_lit(&t, ",");
	jtext_str(&t, "none");
	jtext_lit(&t, ":");
	jtext_json(&t, NULL);
	jtext_lit(&t, "}");
	/* growth past the first allocation keeps what was written */
	for (int i = 0; i < 1000; i++)
		jtext_lit(&t, " ");
	s = jtext_take(&t, &len);
	CHECK(t.s == NULL && t.len == 0);
	CHECK_EQ_INT(strlen(s), len);
	j = json_loads(s, 0, NULL);
	CHECK(j != NULL);
	CHECK(j && json_equal(json_object_get(j, "k\n"), inner));
	CHECK(j && json_is_null(json_object_get(j, "none")));
	json_decref(j);
	json_decref(inner);
	free(s);
	s = jtext_take(&t, &len); /* nothing written: an empty string, not NULL */
	CHECK(s && s[0] == '\0' && len == 0);
	free(s);
}

#define D16(c) c c c c c c c c c c c c c c c c
#define D64(c) D16(c) D16(c) D16(c) D16(c)

static void test_spec_text_reads_back(void)
{
	const char *body = "{\"name\":\"web-1\",\"driver\":\"qemu\",\"resources\":{\"vcpus\":0.5,\"memory_mb\":64},"
	                   "\"image\":\"clickos\",\"network\":{\"bridge\":\"br0\"},\"labels\":{\"tier\":\"edge\\\"x\"},"
	                   "\"ready\":{\"serial\":\"READY \\\"now\\\" \\\\ok\"},\"restart\":\"on-lost\",\"pool\":\"warm\","
	                   "\"config\":{\"append\":[\"a\",1,2.5,null,true]},"
	                   "\"boot\":{\"kernel\":\"sha256:" D64("0") "\",\"initrd\":\"sha256:" D64("1") "\",\"cmdline\":\"console=ttyS0 x=\\\"y\\\"\","
	                   "\"xen_type\":\"pvh\"}}";
	json_t *j = json_loads(body, 0, NULL), *again;
	struct inst_spec a, b;
	struct mv_error err;
	CHECK(j != NULL);
	if (spec_decode(&a, j, SPEC_STORED, &err) < 0) {
		fprintf(stderr, "  spec_decode: %s\n", err.message);
		CHECK(0);
		json_decref(j);
		return;
	}
	again = spec_to_json(&a);
	CHECK(again != NULL);
	CHECK_EQ_INT(spec_decode(&b, again, SPEC_STORED, &err), 0);
	CHECK_STR(a.name, b.name);
	CHECK_STR(a.boot.cmdline, b.boot.cmdline);
	CHECK_STR(a.ready_serial, b.ready_serial);
	CHECK_EQ_INT(a.vcpus_milli, b.vcpus_milli);
	CHECK(json_equal(a.labels, b.labels) && json_equal(a.config, b.config));
	CHECK(json_equal(j, again)); /* every field written, with its value */
	spec_free(&a);
	spec_free(&b);
	json_decref(again);
	json_decref(j);
}

int main(void)
{
	RUN(test_strings_as_jansson);
	RUN(test_numbers);
	RUN(test_document_parses);
	RUN(test_spec_text_reads_back);
	UNIT_END();
}
