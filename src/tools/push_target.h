/* push_target — what `microvim push` says to a VIM, one table per API (--api NAME).
 *
 * push.c makes the load: the modes (replicate, closed loop, open loop and its arrival
 * schedule), one keep-alive connection per request in flight, the records and the summary.
 * A target turns "create one instance" and "delete it" into its VIM's requests on the job's
 * connection, and tells push when each is over:
 *
 *   check   the options make sense for this API (no I/O); 0 or -1 after saying why
 *   open    once, before any job: the VIM answers, credentials are good, names resolve;
 *           fills the endpoint (one host:port every job's requests go to, and the headers
 *           they all carry); 0 or a push exit code after saying why on stderr
 *   create  starts one instantiation; ends, once, with push_job_instantiated()
 *   remove  deletes its instance; ends, once, with push_job_deleted()
 *   close   frees what open made
 *
 * Targets: microvim (target_microvim.c: the core's REST API, phases from its trace) and
 * openstack (target_openstack.c: Nova's API through Keystone, ACTIVE by polling). A VIM
 * with a REST API of its own (Nomad's jobs API, say) is one more file and one more row.
 *
 * Targets run on push's event loop and never block in create or remove: every request goes
 * through push_job_send, every wait through push_job_later. */
#ifndef MICROVIM_PUSH_TARGET_H
#define MICROVIM_PUSH_TARGET_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/tls.h"
#include "tools/record.h"

#define PUSH_EXIT_OK 0
#define PUSH_EXIT_FAILED 1
#define PUSH_EXIT_USAGE 2
#define PUSH_EXIT_UNREACHABLE 3

#define PUSH_STOP_TIMEOUT_S 30 /* how long a deletion may take */

enum push_mode { MODE_CLOSED, MODE_OPEN, MODE_REPLICATE };
enum arrival { ARRIVAL_CONSTANT, ARRIVAL_POISSON, ARRIVAL_BURST };

struct push_target;

/* The command line (push.c parses it; each target reads its part). */
struct push_options {
	const struct push_target *target;
	/* microvim */
	const char *core;
	const char *core_from; /* "--core" or "$MICROVIM_CORE", for messages */
	const char *driver, *ready;
	char *token;
	json_t *config;
	double vcpus, memory_mb; /* 0: the core's defaults */
	/* openstack */
	const char *flavor, *network, *os_cloud;
	double poll_ms;
	/* both */
	const char *image, *name_prefix, *out;
	double timeout; /* how long an instantiation may take, s */
	/* the load */
	enum push_mode mode;
	size_t count;
	int concurrency;
	double rate, duration;
	enum arrival arrival;
	int burst;
	int delete; /* -1: the mode's default */
	unsigned long long seed;
	bool quiet, json;
};

#define PUSH_MAX_HEADERS 8

/* Where every job's requests go. */
struct push_endpoint {
	char host[256];
	int port;
	struct tls_ctx *tls; /* https: the context of this process's client calls; NULL: plain */
	char headers[PUSH_MAX_HEADERS][2][1024]; /* name, value */
	int n_headers;
};

/* One instance's life. push owns it; the target fills rec (id, phases, state, error),
 * running and error_code, and may keep its own progress in step, since_us and data. */
struct push_job {
	size_t index;          /* 1, 2, ... in order of creation */
	char name[72];         /* PREFIX-RUNTAG-NNNNNN */
	int64_t intended_us;   /* monotonic: when the creation was due */
	struct record rec;
	bool running;          /* reached its running state (see push_job_reached) */
	char error_code[48];   /* when not: the API's code, or what push saw (timeout ...) */
	char idempotency_key[48]; /* sent with each of its requests when not "" (the target's) */
	unsigned endpoint_gen; /* push: the endpoint its last request went to (push_endpoint_move) */
	int step;              /* the target's */
	int64_t since_us;      /* the target's */
	void *data;            /* the target's; it frees it before the job ends */
};

typedef void (*push_reply_fn)(struct push_job *j, int status, json_t *body, void *state);
typedef void (*push_timer_fn)(struct push_job *j, void *state);

struct push_target {
	const char *name;
	bool has_trace; /* its records carry the VIM's own phase trace */
	int (*check)(const struct push_options *o);
	int (*open)(const struct push_options *o, struct push_endpoint *ep, void **state);
	void (*create)(struct push_job *j, void *state);
	void (*remove)(struct push_job *j, void *state);
	void (*close)(void *state);
};

extern const struct push_target push_target_microvim;
extern const struct push_target push_target_openstack;

/* ---- what push offers its targets ---- */

/* Sends a request on the job's connection (path: from the root, e.g. "/v2.1/servers"; body:
 * JSON text or NULL); fn gets the answer's status (0: none came) and its body parsed as
 * JSON (NULL when empty or not JSON; push frees it after fn). Never calls fn before it
 * returns. */
void push_job_send(struct push_job *j, const char *method, const char *path, const char *body, push_reply_fn fn);
/* Points every later request, of every job, at url (a failover to another core of a
 * list): idle connections are closed, busy ones once they come free. The endpoint's
 * number (later requests' endpoint_gen), or -1 when url is not a base URL of the same
 * scheme (http or https) as the endpoint's. */
int push_endpoint_move(struct push_job *j, const char *url);
/* Calls fn after delay_us. */
void push_job_later(struct push_job *j, int64_t delay_us, push_timer_fn fn);
/* The instance reached running now: total_ms is now - intended_us. */
void push_job_reached(struct push_job *j);
/* It will not: code and the record's error (printf format). */
void push_job_failed(struct push_job *j, const char *code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* The instantiation is over (reached or failed): push records it and deletes it if asked. */
void push_job_instantiated(struct push_job *j);
/* The deletion is over. */
void push_job_deleted(struct push_job *j, bool ok);

#endif
