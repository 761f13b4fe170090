/* test_ui — the dashboard's pieces in the core: the rings of recent traces behind
 * GET /v1/traces (order, after, limit, per-driver filter, overwrite of the oldest, unknown
 * drivers), and the file helpers behind /ui/ (lookup in the embedded table, content types,
 * If-None-Match matching). */
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "common/model.h"
#include "core/traces.h"
#include "drivers/drivers.h"
#include "core/ui.h"
#include "unit.h"

static struct trace trace_of(int64_t spawn_us)
{
	struct trace t = {.total_us = spawn_us + 300};
	t.phase_us[PHASE_ACCEPT] = 100;
	t.phase_us[PHASE_SPAWN] = spawn_us;
	t.phase_us[PHASE_NOTIFY] = 200;
	return t;
}

static void record(struct traces *t, const char *driver, int i)
{
	char id[MV_ID_LEN + 1], name[32];
	struct trace tr = trace_of(1000 + i);
	snprintf(id, sizeof id, "%016x", i);
	snprintf(name, sizeof name, "n-%d", i);
	traces_record(t, driver, id, name, "00000000000000aa", &tr, 1700000000000000LL + i);
}

/* The seq numbers of a query's answer, and its "seq". */
static size_t seqs_of(json_t *ans, uint64_t *out, size_t cap, uint64_t *last)
{
	json_t *list = json_object_get(ans, "traces"), *e;
	size_t i, n = 0;
	*last = (uint64_t)json_integer_value(json_object_get(ans, "seq"));
	json_array_foreach(list, i, e) {
		if (n < cap)
			out[n++] = (uint64_t)json_integer_value(json_object_get(e, "seq"));
	}
	return json_array_size(list);
}

static void test_empty(void)
{
	struct traces *t = traces_new();
	json_t *ans = traces_query(t, -1, 0, 100);
	uint64_t s[1], last;
	CHECK_EQ_INT(seqs_of(ans, s, 1, &last), 0);
	CHECK_EQ_INT(last, 0);
	CHECK_EQ_INT(json_integer_value(json_object_get(ans, "capacity")), TRACES_PER_DRIVER);
	json_decref(ans);
	traces_free(t);
}

static void test_order_after_limit_driver(void)
{
	struct traces *t = traces_new();
	uint64_t s[16], last;
	size_t n;
	json_t *ans, *first;

	record(t, "exec", 1);    /* seq 1 */
	record(t, "qemu", 2);    /* seq 2 */
	record(t, "exec", 3);    /* seq 3 */
	record(t, "nosuch", 4);  /* ignored: the API knows no such driver */
	record(t, "xen", 5);     /* seq 4 */

	ans = traces_query(t, -1, 0, 100);
	n = seqs_of(ans, s, 16, &last);
	CHECK_EQ_INT(n, 4);
	CHECK_EQ_INT(last, 4);
	for (size_t i = 0; i < n; i++)
		CHECK_EQ_INT(s[i], i + 1); /* oldest first, across drivers */
	first = json_array_get(json_object_get(ans, "traces"), 0);
	CHECK_STR(json_string_value(json_object_get(first, "driver")), "exec");
	CHECK_STR(json_string_value(json_object_get(first, "id")), "0000000000000001");
	CHECK_STR(json_string_value(json_object_get(first, "name")), "n-1");
	CHECK_STR(json_string_value(json_object_get(first, "node")), "00000000000000aa");
	CHECK_STR(json_string_value(json_object_get(first, "running_at")), "2023-11-14T22:13:20.000001Z");
	CHECK(json_real_value(json_object_get(json_object_get(json_object_get(first, "trace"), "phases"), "spawn")) ==
	      1.001);
	json_decref(ans);

	ans = traces_query(t, -1, 2, 100); /* after */
	n = seqs_of(ans, s, 16, &last);
	CHECK_EQ_INT(n, 2);
	CHECK_EQ_INT(s[0], 3);
	CHECK_EQ_INT(s[1], 4);
	json_decref(ans);

	ans = traces_query(t, -1, 0, 2); /* limit: the newest */
	n = seqs_of(ans, s, 16, &last);
	CHECK_EQ_INT(n, 2);
	CHECK_EQ_INT(s[0], 3);
	CHECK_EQ_INT(s[1], 4);
	json_decref(ans);

	ans = traces_query(t, driver_index("exec"), 0, 100); /* one driver */
	n = seqs_of(ans, s, 16, &last);
	CHECK_EQ_INT(n, 2);
	CHECK_EQ_INT(s[0], 1);
	CHECK_EQ_INT(s[1], 3);
	CHECK_EQ_INT(last, 4); /* the last number given, whatever the filter */
	json_decref(ans);

	ans = traces_query(t, driver_index("libvirt"), 0, 100);
	CHECK_EQ_INT(seqs_of(ans, s, 16, &last), 0);
	json_decref(ans);
	traces_free(t);
}

/* A full ring drops its oldest; another driver's ring keeps its own. */
static void test_overwrite(void)
{
	struct traces *t = traces_new();
	static uint64_t s[TRACES_PER_DRIVER * 2];
	uint64_t last;
	size_t n;
	json_t *ans;

	record(t, "qemu", 0); /* seq 1 */
	for (int i = 1; i <= TRACES_PER_DRIVER + 10; i++)
		record(t, "exec", i); /* seq 2 .. TRACES_PER_DRIVER + 11 */
	ans = traces_query(t, driver_index("exec"), 0, TRACES_PER_DRIVER * 2);
	n = seqs_of(ans, s, TRACES_PER_DRIVER * 2, &last);
	CHECK_EQ_INT(n, TRACES_PER_DRIVER);
	CHECK_EQ_INT(s[0], 12); /* seqs 2..11 were overwritten */
	CHECK_EQ_INT(s[n - 1], TRACES_PER_DRIVER + 11);
	for (size_t i = 1; i < n; i++)
		CHECK_EQ_INT(s[i], s[i - 1] + 1);
	json_decref(ans);

	ans = traces_query(t, -1, 0, TRACES_PER_DRIVER * 2);
	n = seqs_of(ans, s, TRACES_PER_DRIVER * 2, &last);
	CHECK_EQ_INT(n, TRACES_PER_DRIVER + 1);
	CHECK_EQ_INT(s[0], 1); /* qemu's one is still there, first by number */
	CHECK_EQ_INT(s[1], 12);
	json_decref(ans);
	traces_free(t);
}

static void test_content_types(void)
{
	CHECK_STR(ui_content_type("index.html"), "text/html; charset=utf-8");
	CHECK_STR(ui_content_type("app.js"), "text/javascript; charset=utf-8");
	CHECK_STR(ui_content_type("style.css"), "text/css; charset=utf-8");
	CHECK_STR(ui_content_type("favicon.svg"), "image/svg+xml");
	CHECK_STR(ui_content_type("a.png"), "image/png");
	CHECK_STR(ui_content_type("js"), "application/octet-stream"); /* an extension needs a name */
	CHECK_STR(ui_content_type(".js"), "application/octet-stream");
	CHECK_STR(ui_content_type("x.jsx"), "application/octet-stream");
	CHECK_STR(ui_content_type("noext"), "application/octet-stream");
}

static void test_embedded_table(void)
{
	const struct ui_file *f = ui_file_find("index.html");
	CHECK(ui_files_count >= 3);
	CHECK(f != NULL);
	if (f) {
		CHECK(f->len > 100 && memcmp(f->data, "<!doctype html>", 15) == 0);
		CHECK(strlen(f->etag) == 18 && f->etag[0] == '"' && f->etag[17] == '"');
	}
	CHECK(ui_file_find("app.js") != NULL);
	CHECK(ui_file_find("") == NULL);
	CHECK(ui_file_find("..") == NULL);
	CHECK(ui_file_find("../ui/index.html") == NULL);
	CHECK(ui_file_find("index.htm") == NULL);
	CHECK(ui_file_find("index.html/") == NULL);
	for (size_t i = 0; i < ui_files_count; i++) {
		CHECK(strchr(ui_files[i].name, '/') == NULL && ui_files[i].name[0] != '.');
		CHECK(ui_files[i].len > 0);
	}
}

static void test_etag_matches(void)
{
	const char *tag = "\"0123456789abcdef\"";
	CHECK(ui_etag_matches("\"0123456789abcdef\"", tag));
	CHECK(ui_etag_matches("W/\"0123456789abcdef\"", tag));
	CHECK(ui_etag_matches("\"x\", \"0123456789abcdef\"", tag));
	CHECK(ui_etag_matches("\"x\",W/\"0123456789abcdef\" ", tag));
	CHECK(ui_etag_matches("*", tag));
	CHECK(!ui_etag_matches("", tag));
	CHECK(!ui_etag_matches("\"0123456789abcde\"", tag));
	CHECK(!ui_etag_matches("\"0123456789abcdef0\"", tag));
	CHECK(!ui_etag_matches("0123456789abcdef", tag));
	CHECK(!ui_etag_matches("\"x\", \"y\"", tag));
	CHECK(!ui_etag_matches(", , ,", tag));
}

int main(void)
{
	RUN(test_empty);
	RUN(test_order_after_limit_driver);
	RUN(test_overwrite);
	RUN(test_content_types);
	RUN(test_embedded_table);
	RUN(test_etag_matches);
	UNIT_END();
}
