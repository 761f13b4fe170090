#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "drivers/driver.h"

extern const struct driver driver_exec;
extern const struct driver driver_qemu;
extern const struct driver driver_xen;
extern const struct driver driver_libvirt;

const struct driver *const drivers[] = {
	&driver_exec,
	&driver_qemu,
	&driver_xen,
	&driver_libvirt,
	NULL,
};

const struct driver *driver_find(const char *name)
{
	for (int i = 0; drivers[i]; i++)
		if (strcmp(drivers[i]->name, name) == 0)
			return drivers[i];
	return NULL;
}

int drv_signal(const struct driver *d, struct drv_handle *h, bool force)
{
	return d->signal ? d->signal(h, force) : -ENOTSUP;
}

int drv_recover(const struct driver *d, struct drv_handle *h)
{
	return d->recover ? d->recover(h) : -ENOTSUP;
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
	if (r->memory_mb <= 0 || r->memory_mb > 16 * 1024 * 1024) {
		snprintf(err, errlen, "%s: memory must be 1 MiB or more (got %lld)", driver, r->memory_mb);
		return -EINVAL;
	}
	if (!(r->vcpus > 0) || r->vcpus > 512) {
		snprintf(err, errlen, "%s: vcpus must be more than 0 and at most 512", driver);
		return -EINVAL;
	}
	*vcpus = (long)r->vcpus; /* whole vCPUs: round up */
	if ((double)*vcpus < r->vcpus)
		(*vcpus)++;
	return 0;
}
