/* driver — what is done with any driver through its table: stop, signal, recover, adopt,
 * and the checks the VM drivers share. */
#include "drivers/driver.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"

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

void drv_config_done(const struct drv_start_request *r)
{
	if (r->config_done_us)
		*r->config_done_us = clock_mono_us();
}

int drv_stop(const struct driver *d, const struct drv_options *o, struct drv_handle *h, bool force)
{
	if (d->stop)
		return d->stop(o, h, force);
	return drv_signal(d, h, force ? SIGKILL : SIGTERM);
}

void drv_force_end(const struct driver *d, const struct drv_options *o, const char *instance_id)
{
	if (d->force_end)
		d->force_end(o, instance_id);
}

int drv_signal(const struct driver *d, struct drv_handle *h, int signo)
{
	return d->signal ? d->signal(h, signo) : -ENOTSUP;
}

bool drv_can_pool(const struct driver *d) { return d->boots_image && d->pause && d->resume; }

int drv_pause(const struct driver *d, const struct drv_options *o, struct drv_handle *h, int *keep, char *err,
              size_t errlen)
{
	if (keep)
		*keep = -1;
	if (!d->pause) {
		snprintf(err, errlen, "the %s driver cannot pause a guest", d->name);
		return -ENOTSUP;
	}
	return d->pause(o, h, keep, err, errlen);
}

int drv_resume(const struct driver *d, const struct drv_options *o, struct drv_handle *h, int keep, char *err,
               size_t errlen)
{
	if (!d->resume) {
		if (keep >= 0)
			close(keep);
		snprintf(err, errlen, "the %s driver cannot resume a guest", d->name);
		return -ENOTSUP;
	}
	return d->resume(o, h, keep, err, errlen);
}

int drv_recover(const struct driver *d, struct drv_handle *h)
{
	return d->recover ? d->recover(h) : -ENOTSUP;
}

void drv_release(const struct driver *d, const struct drv_options *o, const char *instance_id, char *why,
                 size_t whylen)
{
	if (whylen)
		why[0] = '\0';
	if (d->release)
		d->release(o, instance_id, why, whylen);
}

int drv_adopt(const struct driver *d, const struct drv_options *o, const char *instance_id, struct drv_handle *h)
{
	bool alive = false;
	int rc;
	if (!d->adopt)
		return -ENOTSUP;
	if ((rc = d->adopt(o, instance_id, h)) < 0)
		return rc;
	/* a domain's handle is its name: only the toolstack knows whether it was started */
	if (h->pidfd < 0 && d->status && (d->status(o, h, &alive) < 0 || !alive))
		return -ESRCH;
	return 0;
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

int drv_domain_adopt(UNUSED const struct drv_options *o, const char *instance_id, struct drv_handle *h)
{
	snprintf(h->domain, sizeof h->domain, "mv-%s", instance_id);
	return drv_domain_recover(h);
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
