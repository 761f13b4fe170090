/* traces — rings of recent instantiation traces per driver, and GET /v1/traces. */
#include "core/traces.h"

#include <event2/buffer.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/http.h"
#include "common/log.h"
#include "common/model.h"
#include "core/api.h"
#include "drivers/drivers.h"

struct trace_entry {
	uint64_t seq;
	int driver;      /* driver_index() */
	int64_t wall_us; /* when it became running (for a ready marker: ready) */
	char id[MV_ID_LEN + 1];
	char node[MV_ID_LEN + 1];
	char name[MV_NAME_MAX + 1];
	struct trace trace;
};

struct trace_ring {
	struct trace_entry slot[TRACES_PER_DRIVER];
	size_t next;  /* where the next trace goes */
	size_t count; /* slots in use, up to TRACES_PER_DRIVER */
};

struct traces {
	struct trace_ring *ring[TRACES_DRIVERS_MAX]; /* by driver_index(); NULL until used */
	uint64_t seq;                                /* the last number given */
};

struct traces *traces_new(void)
{
	struct traces *t = calloc(1, sizeof *t);
	if (!t)
		fatal("calloc");
	return t;
}

void traces_free(struct traces *t)
{
	if (!t)
		return;
	for (int d = 0; d < TRACES_DRIVERS_MAX; d++)
		free(t->ring[d]);
	free(t);
}

void traces_record(struct traces *t, const char *driver, const char *id, const char *name, const char *node,
                   const struct trace *tr, int64_t wall_us)
{
	int d = driver_index(driver);
	struct trace_ring *r;
	struct trace_entry *e;

	if (d < 0 || d >= TRACES_DRIVERS_MAX)
		return;
	if (!t->ring[d] && !(t->ring[d] = calloc(1, sizeof *t->ring[d])))
		fatal("calloc");
	r = t->ring[d];
	e = &r->slot[r->next];
	e->seq = ++t->seq;
	e->driver = d;
	e->wall_us = wall_us;
	snprintf(e->id, sizeof e->id, "%s", id);
	snprintf(e->node, sizeof e->node, "%s", node);
	snprintf(e->name, sizeof e->name, "%s", name);
	e->trace = *tr;
	r->next = (r->next + 1) % TRACES_PER_DRIVER;
	if (r->count < TRACES_PER_DRIVER)
		r->count++;
}

/* The ring's entries in sequence order: the i-th oldest. */
static const struct trace_entry *ring_at(const struct trace_ring *r, size_t i)
{
	size_t oldest = r->count < TRACES_PER_DRIVER ? 0 : r->next;
	return &r->slot[(oldest + i) % TRACES_PER_DRIVER];
}

static int by_seq(const void *a, const void *b)
{
	uint64_t x = (*(const struct trace_entry *const *)a)->seq, y = (*(const struct trace_entry *const *)b)->seq;
	return x < y ? -1 : x > y;
}

/* One trace as JSON text. Written directly rather than through jansson objects: each
 * trace an open dashboard reads cost ~15 µs that way, ~2 µs this way. Ids are hex; a name
 * that name_valid() refuses (none the API takes) is escaped by jansson. */
static void entry_write(const struct trace_entry *e, struct evbuffer *out)
{
	char when[40], trace[TRACE_TEXT_MAX];
	char *quoted = NULL;
	if (!name_valid(e->name)) {
		json_t *js = json_string(e->name);
		if (!js) /* not UTF-8 */
			js = json_string("");
		quoted = json_dumps(js, JSON_ENCODE_ANY);
		json_decref(js);
	}
	clock_iso8601(e->wall_us, when, sizeof when);
	if (trace_format(&e->trace, trace, sizeof trace) < 0)
		fatal("traces: TRACE_TEXT_MAX too small");
	evbuffer_add_printf(out, "{\"seq\":%llu,\"id\":\"%s\",\"name\":%s%s%s,\"driver\":\"%s\",\"node\":\"%s\","
	                         "\"running_at\":\"%s\",\"trace\":%s}",
	                    (unsigned long long)e->seq, e->id, quoted ? "" : "\"", quoted ? quoted : e->name,
	                    quoted ? "" : "\"", drivers[e->driver]->name, e->node, when, trace);
	free(quoted);
}

void traces_write(const struct traces *t, int driver, uint64_t after, size_t limit, struct evbuffer *out)
{
	const struct trace_entry **picked;
	size_t n = 0, total = 0;

	for (int d = 0; d < TRACES_DRIVERS_MAX; d++)
		total += t->ring[d] ? t->ring[d]->count : 0;
	if (!(picked = calloc(total + 1, sizeof *picked)))
		fatal("calloc");
	for (int d = 0; d < TRACES_DRIVERS_MAX; d++) {
		const struct trace_ring *r = t->ring[d];
		if (!r || (driver >= 0 && d != driver))
			continue;
		for (size_t i = 0; i < r->count; i++) {
			const struct trace_entry *e = ring_at(r, i);
			if (e->seq > after)
				picked[n++] = e;
		}
	}
	qsort(picked, n, sizeof picked[0], by_seq);
	evbuffer_add_printf(out, "{\"seq\":%llu,\"capacity\":%d,\"traces\":[", (unsigned long long)t->seq,
	                    TRACES_PER_DRIVER);
	for (size_t i = n > limit ? n - limit : 0; i < n; i++) {
		entry_write(picked[i], out);
		if (i + 1 < n)
			evbuffer_add(out, ",", 1);
	}
	evbuffer_add(out, "]}\n", 3);
	free(picked);
}

json_t *traces_query(const struct traces *t, int driver, uint64_t after, size_t limit)
{
	struct evbuffer *buf = evbuffer_new();
	json_t *j;
	json_error_t jerr;
	if (!buf)
		fatal("evbuffer_new");
	traces_write(t, driver, after, limit, buf);
	j = json_loadb((const char *)evbuffer_pullup(buf, -1), evbuffer_get_length(buf), 0, &jerr);
	if (!j)
		fatal("traces: unreadable JSON written: %s", jerr.text);
	evbuffer_free(buf);
	return j;
}

/* ---- GET /v1/traces[?driver=D][&after=SEQ][&limit=N] ---- */

#define TRACES_LIMIT_MAX (TRACES_PER_DRIVER * TRACES_DRIVERS_MAX)

/* A query parameter that must be a whole number in [min, max]; absent leaves *out alone. */
static int query_count(struct evhttp_request *req, const char *key, uint64_t min, uint64_t max, uint64_t *out,
                       struct mv_error *err)
{
	char buf[32], *end;
	unsigned long long v;
	if (!http_query(req, key, buf, sizeof buf))
		return 0;
	errno = 0;
	v = strtoull(buf, &end, 10);
	/* a value that filled buf may have been cut short: refused, not read as another number */
	if (buf[0] < '0' || buf[0] > '9' || errno || *end || strlen(buf) >= sizeof buf - 1 || v < min || v > max)
		return mv_fail(err, 400, "invalid_query", "query parameter %s must be a whole number from %llu to %llu",
		               key, (unsigned long long)min, (unsigned long long)max);
	*out = v;
	return 0;
}

void api_traces(struct api *a, struct evhttp_request *req, UNUSED const char *id)
{
	char name[32];
	int driver = -1;
	uint64_t after = 0, limit = TRACES_LIMIT_MAX;
	struct mv_error err;

	if (http_query(req, "driver", name, sizeof name) && (driver = driver_index(name)) < 0) {
		mv_fail(&err, 400, "invalid_query", "driver \"%.32s\" is not known; use %s", name, driver_names_text());
		goto fail;
	}
	if (query_count(req, "after", 0, UINT64_MAX / 2, &after, &err) < 0 ||
	    query_count(req, "limit", 1, TRACES_LIMIT_MAX, &limit, &err) < 0)
		goto fail;
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
	traces_write(a->traces, driver, after, (size_t)limit, evhttp_request_get_output_buffer(req));
	evhttp_send_reply(req, 200, NULL, NULL);
	return;
fail:
	http_reply_error(req, &err);
}
