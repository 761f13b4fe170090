/* driver — the one list of drivers, and what the node and core do with any driver through
 * it: look one up, check a spec with it, stop, signal, recover, adopt. */
#include "drivers/driver.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"

extern const struct driver driver_exec;
extern const struct driver driver_qemu;
extern const struct driver driver_libvirt;
extern const struct driver driver_xen;

const struct driver *const drivers[] = {
	&driver_exec,
	&driver_qemu,
	&driver_libvirt,
	&driver_xen,
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

int drv_config_choices(const json_t *config, const char *const *fields, const char *const *const *choices,
                       struct mv_error *err)
{
	const char *chosen;
	char name[64];
	if (!config)
		return 0;
	if (mv_check_fields(config, "config.", fields, err) < 0)
		return -1;
	for (int i = 0; fields[i]; i++) {
		const json_t *v = json_object_get(config, fields[i]);
		if (!v)
			continue;
		snprintf(name, sizeof name, "config.%s", fields[i]);
		if (mv_check_choice(v, name, choices[i], &chosen, err) < 0)
			return -1;
	}
	return 0;
}

/* ---- the lifecycle ---- */

int drv_stop(const struct driver *d, const struct drv_options *o, struct drv_handle *h, bool force)
{
	if (d->stop)
		return d->stop(o, h, force);
	return drv_signal(d, h, force ? SIGKILL : SIGTERM);
}

int drv_signal(const struct driver *d, struct drv_handle *h, int signo)
{
	return d->signal ? d->signal(h, signo) : -ENOTSUP;
}

int drv_recover(const struct driver *d, struct drv_handle *h)
{
	return d->recover ? d->recover(h) : -ENOTSUP;
}

int drv_adopt(const struct driver *d, const struct drv_options *o, const char *instance_id, struct drv_handle *h)
{
	return d->adopt ? d->adopt(o, instance_id, h) : -ENOTSUP;
}

bool drv_watching(const struct driver *d)
{
	return d->watching && d->watching();
}

int drv_domain_recover(struct drv_handle *h)
{
	h->pid = 0;
	h->pidfd = -1;
	h->is_child = false;
	return h->domain[0] ? 0 : -ESRCH;
}

int drv_domain_adopt(const struct drv_options *o, const char *instance_id, struct drv_handle *h)
{
	const struct driver *d = NULL;
	bool alive = false;
	snprintf(h->domain, sizeof h->domain, "mv-%s", instance_id);
	drv_domain_recover(h);
	/* which driver: the caller's; both domain drivers name domains the same way */
	for (int i = 0; drivers[i]; i++)
		if (drivers[i]->adopt == drv_domain_adopt && drivers[i]->status &&
		    drivers[i]->status(o, h, &alive) == 0 && alive)
			d = drivers[i];
	return d ? 0 : -ESRCH;
}

int drv_vm_request_check(const char *driver, const struct drv_start_request *r, long *vcpus, char *err,
                         size_t errlen)
{
	if (!r->kernel || r->kernel[0] != '/') {
		snprintf(err, errlen, "%s: the kernel must be an absolute path", driver);
		return -EINVAL;
	}
	if (r->initrd && r->initrd[0] != '/') {
		snprintf(err, errlen, "%s: the initrd must be an absolute path", driver);
		return -EINVAL;
	}
	if (r->memory_mb <= 0 || r->memory_mb > MV_MEMORY_MB_MAX) {
		snprintf(err, errlen, "%s: memory must be 1 to %d MiB (got %lld)", driver, MV_MEMORY_MB_MAX, r->memory_mb);
		return -EINVAL;
	}
	if (!(r->vcpus > 0) || r->vcpus > MV_VCPUS_MAX) {
		snprintf(err, errlen, "%s: vcpus must be more than 0 and at most %d", driver, MV_VCPUS_MAX);
		return -EINVAL;
	}
	*vcpus = (long)r->vcpus; /* whole vCPUs: round up */
	if ((double)*vcpus < r->vcpus)
		(*vcpus)++;
	return 0;
}
