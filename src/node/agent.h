/* agent — the node's conversation with the core: register (with the instances alive, for
 * reconciliation), heartbeat, the long-poll that brings assignments (each parsed once,
 * common/wire.h, and handed to the instances), the status reports sent as they come, and
 * the orderly exit. Backs off while the core is away; registers again when the core has
 * forgotten the node. With several cores (node/corelink.h) it keeps all of that on the
 * leader: a follower's 307 moves it to the Location, a core that stops answering to the
 * next of the list, and each move is a new registration there with the instances alive,
 * their reports not sent yet sent after it; nothing is stopped or started again. */
#ifndef MICROVIM_AGENT_H
#define MICROVIM_AGENT_H

#include <event2/event.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/tls.h"
#include "node/corelink.h"
#include "node/instance.h"
#include "node/reports.h"
#include "node/warmpool.h"

#define AGENT_TOKEN_MAX 256
#define AGENT_CREDENTIAL_FILE "node.credential" /* in the node's data dir */

struct agent_options {
	struct event_base *base;
	struct corelink *link;      /* the core in use; the agent moves it */
	const char *address;        /* where the node serves its logs to the core (node/logapi.h) */
	struct tls_ctx *tls;        /* an https:// core; NULL: plain HTTP */
	/* What the node shows the core to register and fetch blobs: its credential, or the
	 * --token-file's token (a join token, or the cluster's). A buffer of
	 * AGENT_TOKEN_MAX + 1 the agent rewrites when a join gives it a credential, which it
	 * first keeps in credential_path (0600). "" when the core asks for none. */
	char *core_token;
	const char *credential_path;
	const char *id, *name;
	int cpus;
	int64_t memory_mb;
	const json_t *drivers_info; /* each available driver's probe info */
	const json_t *labels;
	const char *run_dir;        /* shown by the core's node listing */
	int notify_batch_ms;        /* 0: report at once; N: send reports on a free-running N ms tick (stock Nomad) */
	bool stop_instances_on_exit;
	double stop_grace_s;
	struct instances *instances;
	struct report_queue *reports;
	struct warm_pools *pools;   /* what the core asks kept warm comes on the long-poll */
};

struct agent;

struct agent *agent_new(const struct agent_options *o);
/* Registers (then polls, beats, reports). */
void agent_start(struct agent *a);
/* The report queue got a report: send it (now, or with the batch). */
void agent_reports_pushed(struct agent *a);
/* The host's bridges may have changed (node/bridgewatch.h): the core is told when they
 * differ from what it has. */
void agent_bridges_changed(struct agent *a);
/* What the node has warm changed (warmpool.h): the core is told (one update in flight). */
void agent_pools_changed(struct agent *a);
/* Begins an orderly exit: no new work; with stop_instances_on_exit every instance is
 * stopped (grace, then force). done(arg) on the loop when the last reports went out (or
 * the deadline passed). */
void agent_shutdown(struct agent *a, void (*done)(void *arg), void *arg);
void agent_free(struct agent *a);
/* The bearer token the core gave this node at its last registration; "" before. */
const char *agent_node_token(const struct agent *a);

#endif
