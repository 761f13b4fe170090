/* traces — the most recent instantiation traces of each driver, kept in memory for
 * GET /v1/traces: the dashboard's Phases view (per-phase distributions over the last N
 * instantiations per driver, the paper's Fig. 6) and its Overview (instantiations per
 * second, VIM overhead over the last minute).
 *
 * Why a ring of its own: an instance's trace lives in the instance, and an instance is
 * removed from the core by DELETE once it ended; under load (push --delete) that is a few
 * milliseconds after it ran, so the store cannot answer "the last 1,000 instantiations".
 * The Prometheus histograms (/metrics) keep every instantiation but only as bucket counts
 * since start, too coarse for percentiles of sub-millisecond phases.
 *
 * Each driver has TRACES_PER_DRIVER slots (~200 bytes each), allocated on its first trace;
 * the oldest is overwritten. Every trace gets a sequence number, one counter for all
 * drivers, so a reader asks for what came after the last number it has (?after=SEQ). The
 * traces are those of this core process: a restarted core starts with empty rings. */
#ifndef MICROVIM_TRACES_H
#define MICROVIM_TRACES_H

#include <event2/buffer.h>
#include <jansson.h>
#include <stdint.h>

#include "common/trace.h"

#define TRACES_PER_DRIVER 1024
#define TRACES_DRIVERS_MAX 8 /* driver_index() values kept; more drivers than that are not recorded */

struct traces;

/* An empty set of rings (nothing allocated per driver yet). Never NULL. */
struct traces *traces_new(void);
void traces_free(struct traces *t);

/* Records the final trace of one instantiation that became running at wall_us. An unknown
 * driver is ignored (the API accepts none). */
void traces_record(struct traces *t, const char *driver, const char *id, const char *name, const char *node,
                   const struct trace *tr, int64_t wall_us);

/* The traces with a sequence number > after, of one driver (driver_index()) or of all
 * (driver < 0), oldest first; of those, the newest `limit` only, written to out as JSON text
 * with a newline:
 * {"seq": the last number given, "capacity": TRACES_PER_DRIVER, "traces": [{"seq", "id",
 * "name", "driver", "node", "running_at", "trace": {...as in an INSTANCE}}]}. */
void traces_write(const struct traces *t, int driver, uint64_t after, size_t limit, struct evbuffer *out);
/* The same answer as a jansson object (tests, tools). */
json_t *traces_query(const struct traces *t, int driver, uint64_t after, size_t limit);

#endif
