/* simulate — many simulated nodes in one process (`microvim node --simulate N`), the
 * scale harness: each registers with the core over real HTTP as a node of its own, keeps
 * its own long-poll and heartbeat, and answers its assignments through the same wire
 * (common/wire.h) as a real node. What it does not have is hosts: its only driver is
 * `sim` (drivers/sim.h), whose instances are records that "spawn" after a configurable
 * time and fail at a configurable rate. So the core, its store, placement, dispatch and
 * reports are measured at a size no test host could give them real nodes for.
 *
 * Ids are derived from --name and the node's number, so a restarted simulator registers
 * the same nodes again (their instances are gone: the core reconciles them as lost). */
#ifndef MICROVIM_SIMULATE_H
#define MICROVIM_SIMULATE_H

#include <event2/event.h>
#include <jansson.h>
#include <stdint.h>

#include "drivers/sim.h"

#define SIM_NODES_MAX 100000

struct sim_options {
	struct event_base *base;
	const char *core_url;
	const char *cluster_token; /* NULL when the core has none */
	int count;                 /* nodes, 1..SIM_NODES_MAX */
	const char *name_prefix;   /* nodes are PREFIX-00001 ...; default "sim" */
	int cpus;                  /* each node's */
	int64_t memory_mb;
	const json_t *labels;      /* borrowed */
	struct sim_params params;  /* each instance's, unless its config says otherwise */
	int register_window;       /* registrations in flight at once (bounds the connect burst) */
};

struct simulator;

struct simulator *simulator_create(const struct sim_options *o, char *err, size_t errlen);
/* How many of the nodes are registered right now. */
int simulator_registered(const struct simulator *s);
void simulator_destroy(struct simulator *s);

/* The id of simulated node `index` under `prefix` (exposed for tests). */
void simulator_node_id(const char *prefix, int index, char out[MV_ID_LEN + 1]);

#endif
