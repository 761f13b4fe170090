/* metrics — Prometheus text exposition: phase histograms per driver, instance and node
 * gauges, HTTP request counters. */
#ifndef MICROVIM_METRICS_H
#define MICROVIM_METRICS_H

#include <event2/buffer.h>

#include "common/trace.h"

#include "common/httpguard.h"
#include "common/model.h"

struct metrics;

/* What the metrics show besides their own counters, read from the cluster and the
 * connection guard by the caller when they are rendered. */
struct metrics_gauges {
	int instances[INST_STATE_COUNT];
	int64_t in_flight, in_flight_limit;
	uint64_t refused_saturated;
	int nodes_ready, nodes_down;
	uint64_t lost_unwritten; /* lost instances whose rows are still to be written */
	struct http_guard_stats http;
};

struct metrics *metrics_new(void);
void metrics_free(struct metrics *m);
void metrics_observe_trace(struct metrics *m, const char *driver, const struct trace *t);
void metrics_count_request(struct metrics *m, int status);
/* Renders everything: the histograms and counters, and the gauges given. */
void metrics_render(struct metrics *m, const struct metrics_gauges *g, struct evbuffer *out);

#endif
