/* model — what an instance is, as the API accepts it: states, limits, and the instance
 * spec parsed and checked once at the boundary. Shared by core (which validates) and
 * node (which runs what the core sends). Knows driver *names* and the shape of their
 * config, never driver code. */
#ifndef MICROVIM_MODEL_H
#define MICROVIM_MODEL_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/error.h"

/* Limits, documented in README.md ("Limits"). */
#define MV_NAME_MAX 63              /* [A-Za-z0-9][A-Za-z0-9._-]{0,62} */
#define MV_BODY_MAX (1 << 20)       /* request body, bytes */
#define MV_COUNT_MAX 1000           /* instances per create request */
#define MV_VCPUS_MAX 256            /* per instance */
#define MV_MEMORY_MB_MAX (1 << 20)  /* per instance: 1 TiB */
#define MV_ARGS_MAX 256
#define MV_STRING_MAX 4096          /* one argument, env value, path */
#define MV_ENV_MAX 256
#define MV_LABELS_MAX 64
#define MV_LABEL_VALUE_MAX 255
#define MV_BRIDGE_MAX 15            /* IFNAMSIZ - 1 */
#define MV_ID_LEN 16                /* hex characters of an instance or node id */
#define MV_READY_PATTERN_MAX 128    /* ready.serial marker */
#define MV_CLICK_MAX (64 * 1024)    /* xen config.click: a Click configuration, 128 xenstore chunks */

#define MV_DEFAULT_VCPUS_MILLI 100  /* Micro-VNFs are tiny: 0.1 vCPU ... */
#define MV_DEFAULT_MEMORY_MB 16     /* ... and 16 MiB unless asked otherwise */

enum inst_state {
	INST_PENDING,   /* accepted and stored, no node yet */
	INST_SCHEDULED, /* node chosen, assignment queued for it */
	INST_STARTING,  /* the node has the assignment */
	INST_RUNNING,   /* process or domain exists */
	INST_STOPPED,   /* stopped on request */
	INST_EXITED,    /* ended by itself with code 0 */
	INST_FAILED,    /* could not start, or ended with a non-zero code */
	INST_LOST,      /* its node went away */
	INST_STATE_COUNT
};

extern const char *const inst_state_names[INST_STATE_COUNT];
int inst_state_parse(const char *s); /* enum value or -1 */
bool inst_state_terminal(enum inst_state s);
/* In flight: accepted but not yet past starting (pending, scheduled, starting). */
bool inst_state_in_flight(enum inst_state s);

/* Admission of a create of `count` instances with `in_flight` already in flight under a
 * limit (core --max-inflight; 0: none). NEVER: count alone is over the limit, so waiting
 * cannot help; LATER: it would be over now and fits once some have started. */
enum admission { ADMIT, ADMIT_LATER, ADMIT_NEVER };
enum admission admission_check(int64_t limit, int64_t in_flight, int64_t count);

/* The drivers the API knows by name. Whether a node offers one is the node's business. */
bool driver_name_known(const char *name);
/* Stable small index of a known driver (for bitmasks), or -1. */
int driver_index(const char *name);
extern const char *const driver_names[]; /* NULL-terminated, in index order */

/* One validated create request. All strings are bounded; json members are owned. */
struct inst_spec {
	char name[MV_NAME_MAX + 1];
	char driver[16];
	char image[MV_NAME_MAX + 1]; /* "" when the driver takes a config instead */
	json_t *config;              /* driver config, e.g. exec: {command, args, env}; or NULL */
	int64_t vcpus_milli;         /* fractional vCPUs, in thousandths */
	int64_t memory_mb;
	char bridge[MV_BRIDGE_MAX + 1]; /* "" when not networked */
	json_t *labels;              /* node selector: every k=v must be a label of the node */
	char ready_serial[MV_READY_PATTERN_MAX + 1]; /* "" or the guest's ready marker on serial */
	bool restart_on_lost;        /* "restart": "on-lost": placed elsewhere when its node is lost */
	int count;
	const char *executable;      /* exec: config.command (points into config) */
};

/* Parses and checks a create body. Unknown fields, wrong types, bad names and out-of-range
 * values are refused with 400 naming the field. On success the spec owns its json parts. */
int spec_parse(struct inst_spec *spec, const json_t *body, struct mv_error *err);
void spec_free(struct inst_spec *spec);
/* The spec as stored and as sent to a node (no count; name as given). */
json_t *spec_to_json(const struct inst_spec *spec);

bool name_valid(const char *s);
/* A label key follows the name rule; a value is printable ASCII up to 255 bytes. */
bool label_value_valid(const char *s);

/* Random lower-case hex id of MV_ID_LEN characters (getrandom). */
void id_generate(char out[MV_ID_LEN + 1]);

#endif
