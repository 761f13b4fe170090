/* sim — the simulated driver of `microvim node --simulate N` (the scale harness): its
 * instances are records kept by a simulated node, never processes or domains. Only
 * simulated nodes offer it (its probe says so on a real host), so the core places "sim"
 * instances on them alone; everything between the client and the node (API, store,
 * placement, dispatch, reports) is the real path.
 *
 * config (optional): {"spawn_ms": 0..60000, "fail_rate": 0..1}, overriding the simulated
 * node's --sim-spawn-ms and --sim-fail-rate for one instance. */
#ifndef MICROVIM_SIM_H
#define MICROVIM_SIM_H

#include <jansson.h>

#include "drivers/driver.h"

extern const struct driver driver_sim;

#define SIM_SPAWN_MS_MAX 60000

struct sim_params {
	double spawn_ms;  /* how long "spawning" takes */
	double fail_rate; /* the chance that a start fails */
};

/* p holds the node's defaults; the config's fields (already checked) replace them. */
void sim_params_apply(struct sim_params *p, const json_t *config);

#endif
