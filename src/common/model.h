/* model — what an instance is, as the API accepts it: states, limits, and the instance
 * spec parsed and checked once at the boundary into a typed struct that core, store and
 * node all keep. Shared by core (which validates) and node (which runs what the core
 * sends). Knows no driver: a driver's name is a string here, and what it accepts is the
 * driver table's (drivers/driver.h). */
#ifndef MICROVIM_MODEL_H
#define MICROVIM_MODEL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/digest.h"
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
#define MV_IDEM_KEY_MAX 128         /* an Idempotency-Key header */
#define MV_READY_PATTERN_MAX 128    /* ready.serial marker */
#define MV_CLICK_MAX (64 * 1024)    /* xen config.click: a Click configuration, 128 xenstore chunks */
#define MV_EXEC_ALLOW_MAX 1024      /* executables a node allows */

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

/* An instance's log streams (GET /v1/instances/ID/logs?stream=): what a process writes on
 * its stdout and stderr, and a guest's first serial port (its console). */
enum log_stream { LOG_STDOUT, LOG_STDERR, LOG_SERIAL, LOG_STREAM_COUNT };
extern const char *const log_stream_names[LOG_STREAM_COUNT];
int log_stream_parse(const char *s); /* enum value or -1 */
/* serial only for instances that boot an image (a guest); stdout and stderr for all. */
bool log_stream_kept(enum log_stream s, bool boots_image);

/* Admission of a create of `count` instances with `in_flight` already in flight under a
 * limit (core --max-inflight; 0: none). NEVER: count alone is over the limit, so waiting
 * cannot help; LATER: it would be over now and fits once some have started. */
enum admission { ADMIT, ADMIT_LATER, ADMIT_NEVER };
enum admission admission_check(int64_t limit, int64_t in_flight, int64_t count);

/* Drivers are named by the API and chosen by name; what each one is and accepts is the
 * driver table's (drivers/driver.h). Here only the length of a name. */
#define MV_DRIVER_NAME_MAX 15

/* The image an instance boots, resolved from its name when the core accepted it: blobs by
 * content address (a later change of the image does not change the instance). */
struct inst_boot {
	char kernel[DIGEST_LEN + 1];
	char initrd[DIGEST_LEN + 1]; /* "" when none */
	char *cmdline;               /* NULL when none; owned */
	char xen_type[4];            /* "pv" or "pvh" when the image has a Xen guest type; "" otherwise */
};

/* The two shapes of a spec in JSON (docs/architecture.md, "The instance spec"):
 *   SPEC_REQUEST  a create body (POST /v1/instances): may have count and cmdline; never boot.
 *   SPEC_STORED   one instance as the core stores it and sends it to its node: the name
 *                 as given (NAME-i for count > 1), no count, boot once the image is known. */
enum spec_form { SPEC_REQUEST, SPEC_STORED };

/* One instance's spec, parsed and checked once at the boundary, then trusted. All strings
 * are bounded; the json members are owned, immutable once parsed. */
struct inst_spec {
	char name[MV_NAME_MAX + 1];
	char driver[MV_DRIVER_NAME_MAX + 1];
	char image[MV_NAME_MAX + 1]; /* "" when the driver takes a config instead */
	bool has_boot;
	struct inst_boot boot;       /* with has_boot */
	json_t *config;              /* the driver's config, checked by the driver (config_check); or NULL */
	int64_t vcpus_milli;         /* fractional vCPUs, in thousandths */
	int64_t memory_mb;
	char bridge[MV_BRIDGE_MAX + 1]; /* "" when not networked */
	json_t *labels;              /* node selector: every k=v must be a label of the node */
	char ready_serial[MV_READY_PATTERN_MAX + 1]; /* "" or the guest's ready marker on serial */
	bool restart_on_lost;        /* "restart": "on-lost": placed elsewhere when its node is lost */
	char pool[MV_NAME_MAX + 1];  /* "" or the warm pool it is taken from (said, or matched by the core) */
	char *cmdline;               /* SPEC_REQUEST: its own kernel command line instead of the image's
	                              * (the stored form has it in boot); NULL when none; owned */
	int count;                   /* SPEC_REQUEST; 1 in a stored spec */
	const char *executable;      /* the host executable it runs, when its driver runs one (set by
	                              * the driver's config_check; points into config) */
};

/* Parses and checks a spec of the given form, every field but the driver's own (its name
 * must look like one; the driver table checks the rest: drv_spec_parse). Unknown fields,
 * wrong types, bad names and out-of-range values are refused with 400 naming the field. On
 * success the spec owns its parts; on failure it owns nothing. */
int spec_decode(struct inst_spec *spec, const json_t *j, enum spec_form form, struct mv_error *err);
void spec_free(struct inst_spec *spec);
/* The spec in SPEC_STORED form (no count; the name as it is), as JSON text appended to t
 * (common/jsontext.h: answers and stored rows are written without jansson), or as a json_t
 * (the same text, read back). */
struct jtext;
void spec_write_json(const struct inst_spec *spec, struct jtext *t);
json_t *spec_to_json(const struct inst_spec *spec);
/* A copy that owns its parts (the immutable json parts are shared by reference; all on one
 * loop: jansson's counts are not atomic). */
void spec_copy(struct inst_spec *dst, const struct inst_spec *src);
/* Name of instance i (0-based) of a spec with `count`: the name itself for one, NAME-(i+1)
 * otherwise (spec_decode made sure that fits). */
void spec_instance_name(const struct inst_spec *spec, int i, char *out, size_t len);

/* Field checks shared by spec_decode and the drivers' config checks, each refusing with
 * 400 and the field's name: a string of at most max bytes without NUL; an object with no
 * field outside `allowed` (NULL-terminated), `where` prefixing the field ("config."). */
int mv_check_string(const json_t *v, const char *field, size_t max, struct mv_error *err);
int mv_check_fields(const json_t *obj, const char *where, const char *const *allowed, struct mv_error *err);
/* A string field that must be one of `choices` (NULL-terminated); *out points at the choice. */
int mv_check_choice(const json_t *v, const char *field, const char *const *choices, const char **out,
                    struct mv_error *err);

/* The executables a node lets its instances run (node --exec-allow): absolute paths. One
 * type from the command line to the scheduler; on the wire a JSON array. */
struct exec_allow {
	size_t n;
	char **paths; /* owned */
};
/* "PATH[,PATH...]" (each absolute); 0 or -EINVAL with a sentence in err. */
int exec_allow_parse(struct exec_allow *a, const char *list, char *err, size_t errlen);
/* A JSON array of absolute paths (at most MV_EXEC_ALLOW_MAX); 0 or -EINVAL. */
int exec_allow_from_json(struct exec_allow *a, const json_t *arr);
json_t *exec_allow_to_json(const struct exec_allow *a);
bool exec_allow_contains(const struct exec_allow *a, const char *path);
void exec_allow_free(struct exec_allow *a);

bool name_valid(const char *s);
/* A label key follows the name rule; a value is printable ASCII up to 255 bytes. */
bool label_value_valid(const char *s);
/* An Idempotency-Key: 1 to MV_IDEM_KEY_MAX printable characters, no spaces. */
bool idem_key_valid(const char *k);
/* {"k": "v", ...}: at most MV_LABELS_MAX, keys and values as above; 400 naming the label. */
int labels_check(const json_t *labels, struct mv_error *err);

/* Random lower-case hex id of MV_ID_LEN characters (getrandom). */
void id_generate(char out[MV_ID_LEN + 1]);

#endif
