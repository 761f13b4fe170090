/* sim — see sim.h. */
#include "drivers/sim.h"

#include <errno.h>
#include <stdio.h>

#include "common/log.h"

static const char *const sim_fields[] = {"spawn_ms", "fail_rate", NULL};

static int sim_number(const json_t *config, const char *field, double max, struct mv_error *err)
{
	const json_t *v = json_object_get(config, field);
	if (!v)
		return 0;
	if (!json_is_number(v))
		return mv_fail(err, 400, "invalid_type", "config.%s must be a number", field);
	if (json_number_value(v) < 0 || json_number_value(v) > max)
		return mv_fail(err, 400, "invalid_value", "config.%s must be within [0, %g]", field, max);
	return 0;
}

static int sim_config_check(const json_t *config, const char **executable, struct mv_error *err)
{
	*executable = NULL;
	if (!config)
		return 0;
	if (!json_is_object(config))
		return mv_fail(err, 400, "invalid_type", "config must be an object");
	if (mv_check_fields(config, "config.", sim_fields, err) < 0 ||
	    sim_number(config, "spawn_ms", SIM_SPAWN_MS_MAX, err) < 0 || sim_number(config, "fail_rate", 1, err) < 0)
		return -1;
	return 0;
}

/* A real host never offers sim: only the simulator's nodes register it. */
static int sim_probe(UNUSED const struct drv_options *o, json_t **info, char *err, size_t errlen)
{
	*info = NULL;
	snprintf(err, errlen, "only simulated nodes offer it (microvim node --simulate N)");
	return -ENOTSUP;
}

void sim_params_apply(struct sim_params *p, const json_t *config)
{
	const json_t *v;
	if ((v = json_object_get(config, "spawn_ms")) && json_is_number(v))
		p->spawn_ms = json_number_value(v);
	if ((v = json_object_get(config, "fail_rate")) && json_is_number(v))
		p->fail_rate = json_number_value(v);
}

const struct driver driver_sim = {
	.name = "sim",
	.boots_image = false,
	.network = DRV_NET_BRIDGE, /* nothing to attach: a simulated node advertises no bridge */
	.config_check = sim_config_check,
	.probe = sim_probe,
};
