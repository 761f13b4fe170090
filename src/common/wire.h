/* wire — the core <-> node protocol, typed at both ends (docs/architecture.md, "Core and
 * node"): what a node says when it registers, the assignments the core hands it on its
 * long-poll, the status reports it sends back. The side that receives a message parses it
 * once into these structs, with the same module that writes it; operations and states
 * are enums on both ends, never strings compared.
 *
 * Parsers return 0 or -1 with a 400 mv_error naming the field; on failure the struct owns
 * nothing. Encoders return a new JSON object. */
#ifndef MICROVIM_WIRE_H
#define MICROVIM_WIRE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/error.h"
#include "common/model.h"
#include "common/trace.h"

/* ---- assignments: core -> node, on the node's long-poll ---- */

enum node_op {
	NODE_OP_START, /* run the instance (its spec comes with it); a start already done is answered with its state */
	NODE_OP_STOP,  /* stop it (gently, then by force after the node's grace period) */
	NODE_OP_PURGE, /* it has ended and the core forgot it: remove its files */
	NODE_OP_COUNT
};
extern const char *const node_op_names[NODE_OP_COUNT];

#define WIRE_ASSIGNMENTS_MAX 100000 /* in one long-poll answer */

/* An instance's run: 0 for its first start, one more at each start again (POST
 * /v1/instances/ID/start or /restart). A start names the run it begins; a report names the
 * run it speaks of, so that news of an earlier run (a stop's end arriving after the start
 * that followed it) is told from news of the current one. Absent on the wire: 0. */
#define WIRE_RUN_MAX 1000000000

/* {"seq": N, "op": "start"|"stop"|"purge", "instance": {"id": ID[, "spec": SPEC][, "run": N]}} */
struct wire_assignment {
	uint64_t seq;
	enum node_op op;
	char id[MV_ID_LEN + 1];
	bool has_spec;         /* start: the stored-form spec (generic checks; the node's driver table checks the rest) */
	struct inst_spec spec;
	uint32_t run;          /* start: the run it begins */
};

/* spec may be NULL (stop, purge; a start whose instance is gone). */
json_t *wire_assignment_to_json(uint64_t seq, enum node_op op, const char *id, const struct inst_spec *spec,
                                uint32_t run);
int wire_assignment_parse(struct wire_assignment *a, const json_t *j, struct mv_error *err);
void wire_assignment_free(struct wire_assignment *a);

/* ---- status reports: node -> core ---- */

#define WIRE_REPORTS_MAX 4096 /* in one POST */
#define WIRE_ERROR_MAX 255    /* bytes of a report's error sentence */

/* {"id", "state": "starting"|"running"|"stopped"|"exited"|"failed", "ready": true (with
 *  running), "exit_code": N, "error": "...", "timing": {...node_timing_to_json...}, "run": N} */
struct wire_report {
	char id[MV_ID_LEN + 1];
	uint32_t run;          /* the run it speaks of */
	enum inst_state state;
	bool ready;            /* the guest printed its ready marker */
	bool has_exit_code;
	int exit_code;
	char error[WIRE_ERROR_MAX + 1]; /* "" when none */
	bool has_timing;       /* what the node measured (an instantiation it saw from its assignment on) */
	struct node_timing timing;
	bool has_stop_timing;  /* an end after a stop the node was asked for, measured */
	struct stop_timing stop_timing;
};

json_t *wire_report_to_json(const struct wire_report *r);
int wire_report_parse(struct wire_report *r, const json_t *j, struct mv_error *err);
/* {"reports": [REPORT...]}: *out is a malloc'd array of *n (at most WIRE_REPORTS_MAX). */
int wire_reports_parse(const json_t *body, struct wire_report **out, size_t *n, struct mv_error *err);

/* ---- registration: node -> core ---- */

#define WIRE_BRIDGES_MAX 1024
#define WIRE_ADDRESS_MAX 63
#define WIRE_ALIVE_MAX 1000000
/* A registration's body: its instance ids (~20 bytes each in JSON) and the node's facts. */
#define WIRE_REGISTER_BODY_MAX ((size_t)WIRE_ALIVE_MAX * 20 + MV_BODY_MAX)
#define WIRE_RUN_DIR_MAX 1024

/* {"id", "name", "address", "resources": {"cpus", "memory_mb"}, "drivers": {NAME: INFO},
 *  "labels": {"k": "v"}, "bridges": ["br0", ...], "instances": [ID, ...], "run_dir": "/run/..."} */
struct wire_register {
	char id[MV_ID_LEN + 1];
	char name[MV_NAME_MAX + 1];
	char address[WIRE_ADDRESS_MAX + 1];
	int cpus;
	int64_t memory_mb;
	json_t *drivers; /* each available driver's probe info, by driver name (names checked by the core's
	                  * driver table) */
	json_t *labels;  /* {"k": "v"} */
	json_t *bridges; /* ["br0", ...]: bridges instances can attach to */
	json_t *run_dir; /* a string: where the node keeps instance dirs and records (shown, not used);
	                  * NULL when not said */
	size_t n_alive;  /* the instances the node has alive, for reconciliation */
	char (*alive)[MV_ID_LEN + 1];
};

/* The json members are borrowed (referenced by the result). */
json_t *wire_register_to_json(const struct wire_register *r);
int wire_register_parse(struct wire_register *r, const json_t *j, struct mv_error *err);
void wire_register_free(struct wire_register *r);

/* ---- bridges changed: node -> core ---- */

/* {"bridges": ["br0", ...]}: the node's bridges now, sent when they change while it runs
 * (registration carries them at start). *bridges gets a reference to the array. */
int wire_bridges_parse(const json_t *body, json_t **bridges, struct mv_error *err);

/* An instance or node id: MV_ID_LEN lower-case hex characters. */
bool wire_id_valid(const char *s);

#endif
