/* drivers — the drivers microvim has, in one list, and what is done with them by name:
 * look one up, check the driver's part of an instance spec. The core and the node find a
 * driver here by the name a spec carries; what a driver is, is drivers/driver.h. */
#ifndef MICROVIM_DRIVERS_H
#define MICROVIM_DRIVERS_H

#include <jansson.h>

#include "common/error.h"
#include "common/model.h"
#include "drivers/driver.h"

/* NULL-terminated; the order is the order of their indexes. */
extern const struct driver *const drivers[];
#define DRV_MAX 32 /* indexes fit a bitmask */

const struct driver *driver_find(const char *name);
/* Stable small index of a driver (for bitmasks and metrics), or -1 when unknown. */
int driver_index(const char *name);
/* "exec, qemu, libvirt, xen or sim": for messages. */
const char *driver_names_text(void);

/* spec_decode, then the driver's part: the driver is known, image or config as it needs
 * (image for boots_image drivers, in the stored form boot too), config_check, ready only
 * for guests. 400 naming the field; on failure the spec owns nothing. */
int drv_spec_parse(struct inst_spec *spec, const json_t *j, enum spec_form form, struct mv_error *err);
/* The driver's part alone, on a spec spec_decode accepted (sets spec->executable). */
int drv_spec_check(struct inst_spec *spec, enum spec_form form, struct mv_error *err);

#endif
