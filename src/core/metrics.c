#include "core/metrics.h"

#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "drivers/drivers.h"

/* Bucket bounds in seconds: from 50 µs (the core's own steps) to 10 s (a slow VM boot). */
static const double bounds[] = {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                0.025,   0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10};
#define N_BOUNDS (sizeof bounds / sizeof bounds[0])
#define N_SERIES (PHASE_COUNT + 2) /* phases, total, overhead */
#define MAX_DRIVERS DRV_MAX

struct histogram {
	uint64_t bucket[N_BOUNDS]; /* non-cumulative; made cumulative when rendered */
	uint64_t count;
	double sum;
};

struct metrics {
	struct histogram h[MAX_DRIVERS][N_SERIES];
	bool used[MAX_DRIVERS];
	uint64_t requests[6]; /* by status class: 1xx..5xx, index 0 unused */
};

struct metrics *metrics_new(void)
{
	struct metrics *m = calloc(1, sizeof *m);
	if (!m)
		fatal("calloc");
	return m;
}

void metrics_free(struct metrics *m) { free(m); }

static void observe(struct histogram *h, int64_t us)
{
	double s = (double)us / 1e6;
	for (size_t i = 0; i < N_BOUNDS; i++) {
		if (s <= bounds[i]) {
			h->bucket[i]++;
			break;
		}
	}
	h->count++;
	h->sum += s;
}

void metrics_observe_trace(struct metrics *m, const char *driver, const struct trace *t)
{
	int d = driver_index(driver);
	if (d < 0 || d >= MAX_DRIVERS)
		return;
	m->used[d] = true;
	for (int p = 0; p < PHASE_COUNT; p++)
		if (p != PHASE_BOOT || t->has_boot)
			observe(&m->h[d][p], t->phase_us[p]);
	observe(&m->h[d][PHASE_COUNT], t->total_us);
	observe(&m->h[d][PHASE_COUNT + 1], trace_overhead_us(t));
}

void metrics_count_request(struct metrics *m, int status)
{
	int cls = status / 100;
	if (cls >= 1 && cls <= 5)
		m->requests[cls]++;
}

static const char *series_name(int s)
{
	return s < PHASE_COUNT ? phase_names[s] : s == PHASE_COUNT ? "total" : "overhead";
}

static void render_histograms(struct metrics *m, struct evbuffer *out)
{
	evbuffer_add_printf(out, "# HELP microvim_phase_seconds Duration of each instantiation phase "
	                         "(total = request to running; overhead = total - spawn - boot).\n"
	                         "# TYPE microvim_phase_seconds histogram\n");
	for (int d = 0; d < MAX_DRIVERS; d++) {
		if (!m->used[d])
			continue;
		for (int s = 0; s < N_SERIES; s++) {
			struct histogram *h = &m->h[d][s];
			uint64_t cum = 0;
			if (h->count == 0)
				continue;
			for (size_t i = 0; i < N_BOUNDS; i++) {
				cum += h->bucket[i];
				evbuffer_add_printf(out, "microvim_phase_seconds_bucket{phase=\"%s\",driver=\"%s\",le=\"%g\"} %llu\n",
				                    series_name(s), drivers[d]->name, bounds[i], (unsigned long long)cum);
			}
			evbuffer_add_printf(out,
			                    "microvim_phase_seconds_bucket{phase=\"%s\",driver=\"%s\",le=\"+Inf\"} %llu\n"
			                    "microvim_phase_seconds_sum{phase=\"%s\",driver=\"%s\"} %.6f\n"
			                    "microvim_phase_seconds_count{phase=\"%s\",driver=\"%s\"} %llu\n",
			                    series_name(s), drivers[d]->name, (unsigned long long)h->count,
			                    series_name(s), drivers[d]->name, h->sum, series_name(s),
			                    drivers[d]->name, (unsigned long long)h->count);
		}
	}
}

/* What the connection guard saw: open connections and those it closed itself. */
static void render_connections(const struct http_guard_stats *st, struct evbuffer *out)
{
	evbuffer_add_printf(out, "# HELP microvim_http_connections Client connections open.\n"
	                         "# TYPE microvim_http_connections gauge\nmicrovim_http_connections %lu\n"
	                         "# HELP microvim_http_connections_refused_total Connections the core answered "
	                         "and closed itself, by reason.\n"
	                         "# TYPE microvim_http_connections_refused_total counter\n"
	                         "microvim_http_connections_refused_total{reason=\"total_cap\"} %lu\n"
	                         "microvim_http_connections_refused_total{reason=\"per_address_cap\"} %lu\n"
	                         "microvim_http_connections_refused_total{reason=\"read_timeout\"} %lu\n"
	                         "microvim_http_connections_refused_total{reason=\"body_too_large\"} %lu\n"
	                         "microvim_http_connections_refused_total{reason=\"headers_too_large\"} %lu\n",
	                    st->open, st->refused_full, st->refused_per_addr, st->read_timeouts, st->bodies_too_large,
	                    st->heads_too_large);
}

void metrics_render(struct metrics *m, const struct metrics_gauges *g, struct evbuffer *out)
{
	render_histograms(m, out);
	evbuffer_add_printf(out, "# HELP microvim_instances Stored instances by state.\n"
	                         "# TYPE microvim_instances gauge\n");
	for (int s = 0; s < INST_STATE_COUNT; s++)
		evbuffer_add_printf(out, "microvim_instances{state=\"%s\"} %d\n", inst_state_names[s], g->instances[s]);
	evbuffer_add_printf(out, "# HELP microvim_instances_inflight Instances pending, scheduled or starting "
	                         "(what --max-inflight bounds).\n# TYPE microvim_instances_inflight gauge\n"
	                         "microvim_instances_inflight %lld\n"
	                         "# HELP microvim_instances_inflight_limit The core's --max-inflight (0: no limit).\n"
	                         "# TYPE microvim_instances_inflight_limit gauge\nmicrovim_instances_inflight_limit %lld\n"
	                         "# HELP microvim_admission_refused_total Creates refused with 503 saturated.\n"
	                         "# TYPE microvim_admission_refused_total counter\nmicrovim_admission_refused_total %llu\n",
	                    (long long)g->in_flight, (long long)g->in_flight_limit,
	                    (unsigned long long)g->refused_saturated);
	evbuffer_add_printf(out, "# HELP microvim_nodes Known nodes by state.\n# TYPE microvim_nodes gauge\n"
	                         "microvim_nodes{state=\"ready\"} %d\nmicrovim_nodes{state=\"down\"} %d\n",
	                    g->nodes_ready, g->nodes_down);
	evbuffer_add_printf(out, "# HELP microvim_instances_lost_unwritten Instances lost with their nodes whose "
	                         "rows the store does not have yet (written a chunk per loop turn).\n"
	                         "# TYPE microvim_instances_lost_unwritten gauge\nmicrovim_instances_lost_unwritten %llu\n",
	                    (unsigned long long)g->lost_unwritten);
	evbuffer_add_printf(out, "# HELP microvim_http_requests_total Requests answered, by status class.\n"
	                         "# TYPE microvim_http_requests_total counter\n");
	for (int cls = 1; cls <= 5; cls++)
		evbuffer_add_printf(out, "microvim_http_requests_total{code=\"%dxx\"} %llu\n", cls,
		                    (unsigned long long)m->requests[cls]);
	render_connections(&g->http, out);
}
