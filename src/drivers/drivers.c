/* drivers — see drivers.h. */
#include "drivers/drivers.h"

#include <stdio.h>
#include <string.h>

#include "common/log.h"

extern const struct driver driver_exec;
extern const struct driver driver_qemu;
extern const struct driver driver_libvirt;
extern const struct driver driver_xen;
extern const struct driver driver_sim;

const struct driver *const drivers[] = {
	&driver_exec,
	&driver_qemu,
	&driver_libvirt,
	&driver_xen,
	&driver_sim, /* simulated nodes only (node --simulate): the scale harness */
	NULL,
};

const struct driver *driver_find(const char *name)
{
	for (int i = 0; drivers[i]; i++)
		if (strcmp(drivers[i]->name, name) == 0)
			return drivers[i];
	return NULL;
}

int driver_index(const char *name)
{
	for (int i = 0; drivers[i] && i < DRV_MAX; i++)
		if (strcmp(drivers[i]->name, name) == 0)
			return i;
	return -1;
}

const char *driver_names_text(void)
{
	static char text[128];
	size_t used = 0;
	if (text[0])
		return text;
	for (int i = 0; drivers[i]; i++) {
		int n = snprintf(text + used, sizeof text - used, "%s%s", i == 0 ? "" : drivers[i + 1] ? ", " : " or ",
		                 drivers[i]->name);
		if (n < 0 || (size_t)n >= sizeof text - used)
			fatalx("driver names do not fit %zu bytes", sizeof text);
		used += (size_t)n;
	}
	return text;
}

/* ---- specs ---- */

int drv_spec_check(struct inst_spec *s, enum spec_form form, struct mv_error *err)
{
	const struct driver *d = driver_find(s->driver);

	if (!d)
		return mv_fail(err, 400, "invalid_value", "driver \"%.32s\" is not known; use %s", s->driver,
		               driver_names_text());
	if (d->boots_image) {
		if (!s->image[0])
			return mv_fail(err, 400, "missing_field", "driver %s needs image (a registered image name)", d->name);
		if (form == SPEC_STORED && !s->has_boot)
			return mv_fail(err, 400, "missing_field", "a stored %s spec needs boot (the image's blobs)", d->name);
	} else {
		if (s->image[0])
			return mv_fail(err, 400, "invalid_field", "driver %s takes config, not image", d->name);
		if (s->has_boot)
			return mv_fail(err, 400, "invalid_field", "driver %s boots no image: boot does not go with it", d->name);
	}
	s->executable = NULL;
	if (d->config_check && d->config_check(s->config, &s->executable, err) < 0)
		return -1;
	if (!d->config_check && s->config && json_object_size(s->config) > 0)
		return mv_fail(err, 400, "unknown_field", "driver %s takes no config", d->name);
	if (s->ready_serial[0] && !d->boots_image)
		return mv_fail(err, 400, "invalid_field", "ready.serial needs a VM driver (a guest with a serial port)");
	return 0;
}

int drv_spec_parse(struct inst_spec *s, const json_t *j, enum spec_form form, struct mv_error *err)
{
	if (spec_decode(s, j, form, err) < 0)
		return -1;
	if (drv_spec_check(s, form, err) < 0) {
		spec_free(s);
		return -1;
	}
	return 0;
}
