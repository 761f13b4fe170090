/* metrics — Prometheus text exposition: phase histograms per driver, instance and node
 * gauges, HTTP request counters. */
#ifndef MICROVIM_METRICS_H
#define MICROVIM_METRICS_H

#include <event2/buffer.h>

#include "common/trace.h"

struct metrics;
struct core;

struct metrics *metrics_new(void);
void metrics_free(struct metrics *m);
void metrics_observe_trace(struct metrics *m, const char *driver, const struct trace *t);
void metrics_count_request(struct metrics *m, int status);
/* Renders everything, including gauges read from the core's state. */
void metrics_render(struct metrics *m, struct core *c, struct evbuffer *out);

#endif
