/* trace — the phases of an instantiation, the vocabulary shared by code, API, tools and
 * plots (docs/architecture.md, "Phases"). All durations are microseconds on one host's monotonic clock.
 *
 * Durations that cross hosts are never computed by subtracting two hosts' clocks: the
 * core measures the round trip from handing an assignment to the node until the node's
 * report arrives, subtracts the work the node says it did (measured on the node's own
 * clock), and splits the remaining network time evenly between dispatch and notify. */
#ifndef MICROVIM_TRACE_H
#define MICROVIM_TRACE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum phase {
	PHASE_ACCEPT,   /* request parsed at core -> persisted */
	PHASE_SCHEDULE, /* persisted -> node chosen and recorded */
	PHASE_DISPATCH, /* node chosen -> assignment received by the node */
	PHASE_PREPARE,  /* received -> instance dir, logs (and image) ready to spawn */
	PHASE_NETWORK,  /* interfaces created and attached (0 without network) */
	PHASE_SPAWN,    /* driver call made -> returned: the process or domain exists */
	PHASE_BOOT,     /* spawned -> guest said it is ready (optional) */
	PHASE_NOTIFY,   /* node sends "running" -> the core has applied it (storing it with this
	                 * trace and waking the waiting clients follow at once) */
	PHASE_COUNT
};

extern const char *const phase_names[PHASE_COUNT];

/* The node's sub-steps of prepare and spawn (the paper's Fig. 6b: create image, generate
 * XML, libvirt spawn), measured on the node's clock:
 *   artifact + environment = prepare;   config + call = spawn. */
enum trace_step {
	STEP_ARTIFACT,    /* assignment received -> image blobs in the node's cache (0: no image) */
	STEP_ENVIRONMENT, /* -> instance dir, logs, serial log ready (includes the wait for a worker) */
	STEP_CONFIG,      /* driver: its configuration generated (argv, domain XML, xl config) */
	STEP_CALL,        /* driver: the toolstack or hypervisor call (spawn, virDomainCreateXML, xl create) */
	STEP_COUNT
};

extern const char *const step_names[STEP_COUNT];

/* The node's steps of a stop, on its clock (the clean-up the paper's Fig. 6b leaves out):
 *   stop    = the stop asked on the node -> the instance ended (the driver's stop call and
 *             the process's or guest's own exit: mostly the guest's time);
 *   cleanup = -> what it held released (the driver's release: its domain, cgroup, config
 *             files; the network torn down; its logs closed). */
enum stop_step { STOP_STEP_STOP, STOP_STEP_CLEANUP, STOP_STEP_COUNT };

extern const char *const stop_step_names[STOP_STEP_COUNT];

/* What the node measured of a stop it was asked for, sent with the report of the end. */
struct stop_timing {
	int64_t step_us[STOP_STEP_COUNT];
};

/* Where the prepare phase found the image: not needed, in the node's cache, fetched. */
enum image_cache { IMAGE_NONE, IMAGE_HIT, IMAGE_MISS };

/* Whether a guest came from a warm pool (core/pools.h): none asked for, a warm guest
 * taken (spawn is then its resume), or none was warm (booted cold). */
enum pool_use { POOL_NONE, POOL_HIT, POOL_MISS };

/* What the node measured on its own clock, sent in its status report. */
struct node_timing {
	int64_t prepare_us, network_us, spawn_us, boot_us;
	int64_t work_us; /* assignment received -> report handed to the network */
	enum image_cache image_cache;
	enum pool_use pool;
	bool has_steps;
	int64_t step_us[STEP_COUNT];
};

/* Instants on the core's monotonic clock. */
struct core_marks {
	int64_t accepted_us;  /* request parsed */
	int64_t persisted_us; /* pending record committed */
	int64_t scheduled_us; /* node recorded */
	int64_t sent_us;      /* assignment handed to the node's long-poll */
	int64_t reported_us;  /* node's "running" report arrived */
	int64_t notified_us;  /* stored and waiting clients woken */
};

struct trace {
	int64_t phase_us[PHASE_COUNT];
	bool has_boot;
	int64_t total_us;
	enum image_cache image_cache;
	enum pool_use pool;
	bool has_steps; /* the node measured its sub-steps */
	int64_t step_us[STEP_COUNT];
	bool has_stop; /* stopped on request, and the node measured the stop */
	int64_t stop_us[STOP_STEP_COUNT];
};

/* Derives every phase from the core's marks and the node's timing. The phases add up
 * exactly to total = notified - accepted. For a guest with a ready marker the marks and
 * timing are those of the "ready" report, so total runs until the guest is ready. */
void trace_compute(struct trace *t, const struct core_marks *m, const struct node_timing *n);

/* VIM overhead: total - spawn - boot, the part a VIM is responsible for. */
int64_t trace_overhead_us(const struct trace *t);

/* {"phases": {"accept": ms, ...}, "total_ms": ms, "overhead_ms": ms, "image_cache": "hit"|"miss"
 * (when an image was needed), "pool": "hit"|"miss" (when a warm pool was asked), "steps":
 * {"artifact": ms, "environment": ms, "config": ms, "call": ms} (when the node measured them),
 * "stop_steps": {"stop": ms, "cleanup": ms} (once stopped on request)}; ms with µs precision. */
json_t *trace_to_json(const struct trace *t);
/* The same object as JSON text, written straight into buf (no jansson objects: the
 * dashboard reads ~100 traces a second at 100 instantiations/s); ms with three decimals
 * ("1.000" where trace_to_json writes 1.0: the same number). The length written, or -1
 * when len (TRACE_TEXT_MAX is always enough) was too small. */
#define TRACE_TEXT_MAX 512
int trace_format(const struct trace *t, char *buf, size_t len);
/* Inverse of trace_to_json; 0 or -EINVAL. */
int trace_from_json(struct trace *t, const json_t *j);
/* The same from the JSON text a store keeps: 0 or -EINVAL, just as json_loads and
 * trace_from_json together answer (and fill t) for any text. Text in trace_to_json's own
 * compact form is read without building jansson objects (a core loading a million
 * instances reads a million traces); anything else goes through jansson. */
int trace_from_text(struct trace *t, const char *text);

/* Node timing as sent by the node: {"prepare_us":..,"network_us":..,"spawn_us":..,
 * "boot_us":..,"work_us":.., "image_cache": .., "pool": "hit"|"miss", "steps": {"artifact_us":.., "environment_us":.., "config_us":..,
 * "call_us":..}}. Parsing checks types and ranges, and that the steps add up to their phases
 * (artifact + environment = prepare, config + call = spawn); 0 or -EINVAL. */
json_t *node_timing_to_json(const struct node_timing *n);
int node_timing_from_json(struct node_timing *n, const json_t *j);

/* A stop as sent by the node: {"stop_us":.., "cleanup_us":..}, each 0 to 1 h; 0 or -EINVAL. */
json_t *stop_timing_to_json(const struct stop_timing *s);
int stop_timing_from_json(struct stop_timing *s, const json_t *j);

#endif
