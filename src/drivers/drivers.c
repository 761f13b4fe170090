#include <errno.h>
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

int drv_domain_recover(struct drv_handle *h)
{
	h->pid = 0;
	h->pidfd = -1;
	h->is_child = false;
	return h->domain[0] ? 0 : -ESRCH;
}
