/* libvirt — a diskless Micro-VNF as a transient libvirt domain, through the libvirt C API:
 * domain XML with direct kernel boot (<os><kernel>, <initrd>, <cmdline>), no <disk>, the
 * first serial port to a file, virDomainCreateXML (spawn = the call returned), shutdown /
 * destroy to stop, lookup + state for status. The same driver serves QEMU (qemu:///system,
 * KVM when the host's capabilities offer it, TCG otherwise) and Xen hosts (xen:///system,
 * libvirt's libxl driver), as the paper did through Nova.
 *
 * Connections: one per call, opened and closed inside it. The node runs start on worker
 * threads and status/stop wherever it likes; a connection per call shares nothing between
 * them, survives libvirtd restarts without reconnect logic, and costs one local socket
 * handshake (a few ms, measured in tests/unit/test_libvirt.c) next to the ~0.2-1 s that
 * virDomainCreateXML itself takes. The one thing cached is the domain type per URI.
 *
 * Exits are events (watch): one long-lived connection, owned by a thread of this file that
 * runs libvirt's default event loop, registers for lifecycle events and queues the name of
 * every domain that stopped (domevents.h) for the node's loop. That connection alone has
 * keepalive, a close callback and reconnecting (with a sweep after each reconnect, for
 * what ended unseen); while it is down watching() is false and the node polls status().
 *
 * A system daemon (qemu:///system) runs QEMU as a user of its own (libvirt-qemu on Debian),
 * not as the node: the directories above the kernel, initrd and serial file get a search
 * ACL for that user (lv_let_qemu_reach), and the serial file, which the node created and
 * follows, is appended to rather than replaced (build_xml).
 *
 * Every string put into the XML is escaped; control characters are refused (XML 1.0 cannot
 * carry them). The handle is the domain name ("mv-" + instance id): pid 0, pidfd -1.
 * signal and reap are NULL: stopping needs the URI, so it is stop(). */
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "common/fsacl.h"
#include "common/log.h"
#include "drivers/domevents.h"
#include "drivers/driver.h"

#define LIBVIRT_DEFAULT_URI "qemu:///system"

static const char *lv_uri(const struct drv_options *o)
{
	return o->libvirt_uri && o->libvirt_uri[0] ? o->libvirt_uri : LIBVIRT_DEFAULT_URI;
}

/* libvirt is loaded when a node first uses this driver (dlopen), not linked: the core, the
 * tools and nodes without libvirt never map it and the dozens of libraries it pulls in.
 * The headers still give every function its exact type. */
#define LV_FUNCS(X)                                                                              \
	X(virInitialize) X(virSetErrorFunc) X(virGetLastErrorMessage) X(virGetLastError)         \
	X(virConnectOpen) X(virConnectClose) X(virConnectGetType) X(virConnectGetVersion)        \
	X(virConnectGetURI) X(virConnectGetLibVersion) X(virConnectGetCapabilities)              \
	X(virDomainCreateXML) X(virDomainFree) X(virDomainLookupByName) X(virDomainShutdown)     \
	X(virDomainGetState) X(virDomainDestroy) X(virDomainDestroyFlags)
/* For exit events only: a library without them still starts and stops domains (polled). */
#define LV_EVENT_FUNCS(X)                                                                        \
	X(virEventRegisterDefaultImpl) X(virEventRunDefaultImpl) X(virEventAddTimeout)           \
	X(virEventUpdateTimeout) X(virEventRemoveTimeout) X(virConnectDomainEventRegisterAny)    \
	X(virConnectDomainEventDeregisterAny) X(virConnectRegisterCloseCallback)                 \
	X(virConnectUnregisterCloseCallback) X(virConnectSetKeepAlive) X(virDomainGetName)
#define LV_DECLARE(f) __typeof__(f) *f;
static struct {
	LV_FUNCS(LV_DECLARE)
	LV_EVENT_FUNCS(LV_DECLARE)
} lv;
static bool lv_loaded, lv_events_loaded;
static char lv_load_error[256], lv_events_error[256];

/* libvirt prints every error to stderr unless told otherwise; we report them ourselves. */
static void lv_quiet(UNUSED void *arg, UNUSED virErrorPtr e) {}
static pthread_once_t lv_once = PTHREAD_ONCE_INIT;
static void lv_init(void)
{
	void *h = dlopen("libvirt.so.0", RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		snprintf(lv_load_error, sizeof lv_load_error, "libvirt is not installed (%s)", dlerror());
		return;
	}
#define LV_RESOLVE(f)                                                                              \
	if (!(*(void **)&lv.f = dlsym(h, #f))) {                                                    \
		snprintf(lv_load_error, sizeof lv_load_error, "libvirt.so.0 lacks %s", #f);          \
		return;                                                                            \
	}
	LV_FUNCS(LV_RESOLVE)
	lv.virInitialize();
	lv.virSetErrorFunc(NULL, lv_quiet);
	lv_loaded = true;
#define LV_RESOLVE_EVENT(f)                                                                        \
	if (!(*(void **)&lv.f = dlsym(h, #f))) {                                                    \
		snprintf(lv_events_error, sizeof lv_events_error, "libvirt.so.0 lacks %s", #f);      \
		return;                                                                            \
	}
	LV_EVENT_FUNCS(LV_RESOLVE_EVENT)
	lv_events_loaded = true;
}

/* This thread's last error, made printable: libvirt passes on what QEMU and its helpers
 * wrote, bytes that are not always text, and err ends up in JSON (which must be UTF-8). */
static const char *lv_error(void)
{
	static _Thread_local char msg[512];
	const char *m = lv.virGetLastErrorMessage();
	snprintf(msg, sizeof msg, "%s", m ? m : "unknown libvirt error");
	for (char *p = msg; *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
			*p = (*p == '\n') ? ' ' : '?';
	return msg;
}

static int lv_errno(void)
{
	virErrorPtr e = lv.virGetLastError();
	if (!e)
		return -EIO;
	switch (e->code) {
	case VIR_ERR_NO_DOMAIN:
		return -ESRCH;
	case VIR_ERR_NO_CONNECT:
	case VIR_ERR_SYSTEM_ERROR:
		return -ECONNREFUSED;
	case VIR_ERR_OPERATION_INVALID:
		return -EINVAL;
	case VIR_ERR_AUTH_FAILED:
	case VIR_ERR_OPERATION_DENIED:
		return -EACCES;
	default:
		return -EIO;
	}
}

static virConnectPtr lv_open(const struct drv_options *o, char *err, size_t errlen, int *rc)
{
	virConnectPtr c;
	pthread_once(&lv_once, lv_init);
	if (!lv_loaded) {
		*rc = -ENOTSUP;
		if (err)
			snprintf(err, errlen, "%s", lv_load_error);
		return NULL;
	}
	if (!(c = lv.virConnectOpen(lv_uri(o)))) {
		*rc = lv_errno() == -EACCES ? -EACCES : -ECONNREFUSED;
		if (err)
			snprintf(err, errlen, "libvirt %s: %s", lv_uri(o), lv_error());
	}
	return c;
}

/* ---- what the daemon does with our domains ---- */

enum lv_kind { LV_QEMU, LV_KVM, LV_XEN };

struct lv_host {
	enum lv_kind kind;
	bool qemu_user_known; /* whom QEMU runs as (the DAC model's base label), when said */
	uid_t qemu_uid;
	gid_t qemu_gid;
};

static pthread_mutex_t host_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
	char uri[256];
	struct lv_host host;
} host_cache[8];
static int hosts_cached;

/* One id of a DAC label, "+N" or "N", ended by stop; *p moves past stop. */
static bool label_id(const char **p, char stop, unsigned long *id)
{
	const char *s = *p + (**p == '+');
	char *end;
	if (*s < '0' || *s > '9')
		return false;
	*id = strtoul(s, &end, 10);
	if (*end != stop)
		return false;
	*p = end + 1;
	return true;
}

/* The user QEMU runs as, from the capabilities: the DAC security model's base label for
 * the domain type, "+UID:+GID" (a system daemon: its qemu.conf user, libvirt-qemu on
 * Debian; a session daemon: its own user).
 *   <secmodel><model>dac</model><doi>0</doi><baselabel type='qemu'>+64055:+64055</baselabel> */
static bool dac_base_label(const char *caps, const char *type, uid_t *uid, gid_t *gid)
{
	char open_tag[64];
	const char *sec = caps, *end, *label, *model;
	unsigned long u, g;

	snprintf(open_tag, sizeof open_tag, "<baselabel type='%s'>", type);
	for (; (sec = strstr(sec, "<secmodel>")) && (end = strstr(sec, "</secmodel>")); sec = end) {
		model = strstr(sec, "<model>dac</model>");
		label = strstr(sec, open_tag);
		if (!model || model > end || !label || label > end)
			continue;
		label += strlen(open_tag);
		if (!label_id(&label, ':', &u) || !label_id(&label, '<', &g))
			return false;
		*uid = (uid_t)u;
		*gid = (gid_t)g;
		return true;
	}
	return false;
}

/* QEMU: "kvm" when the host's capabilities list it (a usable /dev/kvm), else "qemu" (TCG),
 * and whom QEMU runs as. Xen (libxl): "xen". Looked up once per URI: capabilities do not
 * change under a node. */
static int lv_host_of(virConnectPtr c, const char *uri, struct lv_host *host, char *err, size_t errlen)
{
	const char *type;
	char *caps;
	pthread_mutex_lock(&host_lock);
	for (int i = 0; i < hosts_cached; i++) {
		if (strcmp(host_cache[i].uri, uri) == 0) {
			*host = host_cache[i].host;
			pthread_mutex_unlock(&host_lock);
			return 0;
		}
	}
	pthread_mutex_unlock(&host_lock);

	*host = (struct lv_host){0};
	if (!(type = lv.virConnectGetType(c))) {
		snprintf(err, errlen, "libvirt: cannot get the hypervisor type: %s", lv_error());
		return lv_errno();
	}
	if (strcasecmp(type, "Xen") == 0 || strcasecmp(type, "libxl") == 0) {
		host->kind = LV_XEN;
	} else if (strcasecmp(type, "QEMU") == 0) {
		if (!(caps = lv.virConnectGetCapabilities(c))) {
			snprintf(err, errlen, "libvirt: cannot get the capabilities: %s", lv_error());
			return lv_errno();
		}
		host->kind = strstr(caps, "<domain type='kvm'") ? LV_KVM : LV_QEMU;
		host->qemu_user_known = dac_base_label(caps, host->kind == LV_KVM ? "kvm" : "qemu", &host->qemu_uid,
		                                       &host->qemu_gid);
		free(caps);
	} else {
		snprintf(err, errlen, "libvirt: hypervisor \"%.32s\" is not supported (QEMU or Xen)", type);
		return -ENOTSUP;
	}
	pthread_mutex_lock(&host_lock);
	if (hosts_cached < (int)(sizeof host_cache / sizeof host_cache[0]) && strlen(uri) < sizeof host_cache[0].uri) {
		snprintf(host_cache[hosts_cached].uri, sizeof host_cache[0].uri, "%s", uri);
		host_cache[hosts_cached++].host = *host;
	}
	pthread_mutex_unlock(&host_lock);
	return 0;
}

/* ---- letting QEMU reach its files ---- */

/* Is the daemon on this host (no host in the URI: "qemu:///system", "qemu+unix:///...")?
 * Only then are the paths in the XML ours to prepare. */
static bool lv_local(const char *uri)
{
	const char *p = strstr(uri, "://");
	return p && p[3] == '/';
}

struct reach_log {
	const char *instance_dir;
	uid_t uid;
};

static void reach_changed(const char *dir, void *arg)
{
	const struct reach_log *l = arg;
	if (strcmp(dir, l->instance_dir) == 0) /* every instance's: not worth a line each */
		log_debug("libvirt: QEMU (uid %u) may search %s", (unsigned)l->uid, dir);
	else
		log_info("libvirt: QEMU runs as uid %u here: gave it search permission on %s (ACL user:%u:--x)",
		         (unsigned)l->uid, dir, (unsigned)l->uid);
}

/* A system daemon runs QEMU as a user of its own (libvirt-qemu on Debian). Its DAC driver
 * (dynamic_ownership, as shipped) hands QEMU the kernel and initrd file for the domain's
 * life, but not the directories above them: a node's image cache and instance dirs are
 * 0700/0750, so QEMU failed with "could not open kernel file ...: Permission denied". Each
 * directory above the kernel, initrd and serial file that QEMU's user cannot search gets
 * an ACL entry letting it search, no more (fsacl.h); the instance dir's goes with it when
 * the instance is purged, the node's own dirs keep theirs for the next instances. libvirt
 * 9 passes the serial file to QEMU as an open descriptor; older ones let QEMU open it by
 * its path, hence the serial file too. Not needed (so not done) when QEMU runs as us (a
 * session daemon, or user = "root"), or when the daemon is on another host. */
static int lv_let_qemu_reach(const char *uri, const struct lv_host *host, const struct drv_start_request *r,
                             const char *serial, char *err, size_t errlen)
{
	static pthread_mutex_t reach_lock = PTHREAD_MUTEX_INITIALIZER; /* one read-modify-write per dir */
	const char *paths[] = {r->kernel, r->initrd, host->kind == LV_XEN ? NULL : serial};
	struct reach_log l = {r->dir, host->qemu_uid};
	char failed[PATH_MAX];
	int rc = 0;

	if (host->kind == LV_XEN || !host->qemu_user_known || host->qemu_uid == geteuid() || !lv_local(uri))
		return 0;
	pthread_mutex_lock(&reach_lock);
	for (size_t i = 0; rc == 0 && i < sizeof paths / sizeof paths[0]; i++)
		if (paths[i])
			rc = fsacl_allow_search_above(paths[i], host->qemu_uid, host->qemu_gid, reach_changed, &l, failed,
			                              sizeof failed);
	pthread_mutex_unlock(&reach_lock);
	if (rc < 0)
		snprintf(err, errlen, "libvirt: cannot let QEMU (uid %u) search %s: %s%s", (unsigned)host->qemu_uid, failed,
		         strerror(-rc), rc == -EOPNOTSUPP ? " (no ACLs there: chmod o+x it, or move --data-dir/--run-dir)" : "");
	return rc;
}

/* ---- the domain XML ---- */

struct xml {
	FILE *f;
	int rc;
	char *err;
	size_t errlen;
};

/* Writes s escaped for XML text and attribute values; refuses control characters. */
static void xml_text(struct xml *x, const char *what, const char *s)
{
	if (x->rc < 0)
		return;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p < 0x20 || *p == 0x7f) {
			snprintf(x->err, x->errlen, "libvirt: %s holds a control character (0x%02x): XML cannot carry it",
			         what, *p);
			x->rc = -EINVAL;
			return;
		}
	}
	for (const char *p = s; *p; p++) {
		switch (*p) {
		case '&': fputs("&amp;", x->f); break;
		case '<': fputs("&lt;", x->f); break;
		case '>': fputs("&gt;", x->f); break;
		case '\'': fputs("&apos;", x->f); break;
		case '"': fputs("&quot;", x->f); break;
		default: fputc(*p, x->f);
		}
	}
}

/* "<open>escaped</close>\n" */
static void xml_element(struct xml *x, const char *indent, const char *name, const char *value)
{
	fprintf(x->f, "%s<%s>", indent, name);
	xml_text(x, name, value);
	fprintf(x->f, "</%s>\n", name);
}

static bool xen_pv(const struct drv_start_request *r)
{
	const json_t *t = json_object_get(r->config, "type");
	return json_is_string(t) && strcmp(json_string_value(t), "pv") == 0;
}

/* The domain XML for r; *out is malloc'd. */
static int build_xml(const struct drv_start_request *r, enum lv_kind kind, const char *name, const char *serial,
                     char **out, char *err, size_t errlen)
{
	size_t len;
	long vcpus;
	struct xml x = {.err = err, .errlen = errlen};

	if (drv_vm_request_check("libvirt", r, &vcpus, err, errlen) < 0)
		return -EINVAL;
	if (!(x.f = open_memstream(out, &len)))
		return -errno;
	fprintf(x.f, "<domain type='%s'>\n", kind == LV_KVM ? "kvm" : kind == LV_XEN ? "xen" : "qemu");
	xml_element(&x, "  ", "name", name);
	fprintf(x.f, "  <description>microvim instance ");
	xml_text(&x, "instance id", r->instance_id);
	fprintf(x.f, "</description>\n");
	fprintf(x.f, "  <memory unit='MiB'>%lld</memory>\n  <vcpu>%ld</vcpu>\n  <os>\n", r->memory_mb, vcpus);
	if (kind == LV_XEN) /* libxl: a PV or PVH guest, like the xen driver's */
		fprintf(x.f, "    <type arch='x86_64'>%s</type>\n", xen_pv(r) ? "xen" : "xenpvh");
	else /* i440fx: QEMU's multiboot and PVH loaders both work there, with or without KVM */
		fprintf(x.f, "    <type arch='x86_64' machine='pc'>hvm</type>\n");
	xml_element(&x, "    ", "kernel", r->kernel);
	if (r->initrd)
		xml_element(&x, "    ", "initrd", r->initrd);
	if (r->cmdline && r->cmdline[0])
		xml_element(&x, "    ", "cmdline", r->cmdline);
	fprintf(x.f, "  </os>\n  <clock offset='utc'/>\n"
	             "  <on_poweroff>destroy</on_poweroff>\n  <on_reboot>destroy</on_reboot>\n"
	             "  <on_crash>destroy</on_crash>\n  <devices>\n");
	if (kind == LV_XEN) {
		/* PV/PVH consoles go through xenconsoled: libxl has no file backend for them */
		fprintf(x.f, "    <console type='pty'><target type='xen' port='0'/></console>\n");
	} else {
		/* nothing the guest does not need: no USB controller, no balloon, no disk */
		fprintf(x.f, "    <controller type='usb' model='none'/>\n    <memballoon model='none'/>\n");
		/* append: the file the node made is written as it is. Without it, libvirt truncates
		 * it, which virtlogd (the writer of a system daemon's file consoles) does by
		 * deleting it and making a new one: another file than the node follows, with
		 * virtlogd's owner and mode, and a step that failed with "Unable to delete file
		 * .../serial.log: Permission denied" where the daemon may not change the node's
		 * instance dir. */
		fprintf(x.f, "    <serial type='file'><source path='");
		xml_text(&x, "serial log path", serial);
		fprintf(x.f, "' append='on'/><target port='0'/></serial>\n    <console type='file'><source path='");
		xml_text(&x, "serial log path", serial);
		fprintf(x.f, "' append='on'/><target type='serial' port='0'/></console>\n");
	}
	if (r->bridge) {
		fprintf(x.f, "    <interface type='bridge'><source bridge='");
		xml_text(&x, "bridge", r->bridge);
		fprintf(x.f, "'/>%s</interface>\n", kind == LV_XEN ? "" : "<model type='virtio'/>");
	}
	fprintf(x.f, "  </devices>\n</domain>\n");
	if (fclose(x.f) != 0 && x.rc == 0) {
		x.rc = -errno;
		snprintf(err, errlen, "libvirt: cannot build the domain XML: %s", strerror(errno));
	}
	if (x.rc < 0) {
		free(*out);
		*out = NULL;
	}
	return x.rc;
}

/* ---- the driver ---- */

static int lv_probe(const struct drv_options *o, json_t **info, char *err, size_t errlen)
{
	unsigned long lib = 0, hv = 0;
	const char *type;
	char *uri, version[32], hypervisor[96];
	struct lv_host host;
	virConnectPtr c;
	int rc;

	if (!(c = lv_open(o, err, errlen, &rc)))
		return rc;
	if (lv.virConnectGetLibVersion(c, &lib) < 0 || !(type = lv.virConnectGetType(c)) || lv.virConnectGetVersion(c, &hv) < 0) {
		snprintf(err, errlen, "libvirt %s: %s", lv_uri(o), lv_error());
		rc = lv_errno();
		lv.virConnectClose(c);
		return rc;
	}
	if ((rc = lv_host_of(c, lv_uri(o), &host, err, errlen)) < 0) {
		lv.virConnectClose(c);
		return rc;
	}
	snprintf(version, sizeof version, "%lu.%lu.%lu", lib / 1000000, lib / 1000 % 1000, lib % 1000);
	snprintf(hypervisor, sizeof hypervisor, "%s %lu.%lu.%lu", type, hv / 1000000, hv / 1000 % 1000, hv % 1000);
	uri = lv.virConnectGetURI(c);
	*info = json_pack("{s:s, s:s, s:s, s:s}", "version", version, "uri", uri ? uri : lv_uri(o), "hypervisor",
	                  hypervisor, "domain_type", host.kind == LV_KVM ? "kvm" : host.kind == LV_XEN ? "xen" : "qemu");
	free(uri);
	lv.virConnectClose(c);
	return 0;
}

static int lv_start(const struct drv_options *o, const struct drv_start_request *r, struct drv_handle *h, char *err,
                    size_t errlen)
{
	char name[sizeof h->domain], serial[PATH_MAX], *xml = NULL;
	struct lv_host host;
	virConnectPtr c;
	virDomainPtr d;
	int rc;

	h->pid = 0;
	h->start_time = 0;
	h->pidfd = -1;
	h->is_child = false;
	h->domain[0] = h->control[0] = '\0';
	if (snprintf(name, sizeof name, "mv-%s", r->instance_id) >= (int)sizeof name) {
		snprintf(err, errlen, "libvirt: instance id too long for a domain name");
		return -ENAMETOOLONG;
	}
	if (r->serial_log ? snprintf(serial, sizeof serial, "%s", r->serial_log) >= (int)sizeof serial
	                  : snprintf(serial, sizeof serial, "%s/serial.log", r->dir) >= (int)sizeof serial) {
		snprintf(err, errlen, "libvirt: serial log path too long");
		return -ENAMETOOLONG;
	}
	if (!(c = lv_open(o, err, errlen, &rc)))
		return rc;
	if ((rc = lv_host_of(c, lv_uri(o), &host, err, errlen)) < 0 ||
	    (rc = build_xml(r, host.kind, name, serial, &xml, err, errlen)) < 0 ||
	    (rc = lv_let_qemu_reach(lv_uri(o), &host, r, serial, err, errlen)) < 0) {
		free(xml);
		lv.virConnectClose(c);
		return rc;
	}
	drv_config_done(r); /* the XML (the connection and the host's facts count as config too) */
	d = lv.virDomainCreateXML(c, xml, 0); /* transient: gone from libvirt once it stops */
	free(xml);
	if (!d) {
		snprintf(err, errlen, "libvirt: cannot create domain %s: %s", name, lv_error());
		rc = lv_errno();
		lv.virConnectClose(c);
		return rc == -ESRCH ? -EIO : rc;
	}
	lv.virDomainFree(d);
	lv.virConnectClose(c);
	snprintf(h->domain, sizeof h->domain, "%s", name);
	return 0;
}

static int lv_status(const struct drv_options *o, struct drv_handle *h, bool *alive)
{
	virConnectPtr c;
	virDomainPtr d;
	int state = 0, reason = 0, rc = 0;

	*alive = false;
	if (!h->domain[0])
		return -EINVAL;
	if (!(c = lv_open(o, NULL, 0, &rc)))
		return rc;
	if (!(d = lv.virDomainLookupByName(c, h->domain))) {
		rc = lv_errno();
		lv.virConnectClose(c);
		return rc == -ESRCH ? 0 : rc; /* no such domain: a transient domain that ended */
	}
	if (lv.virDomainGetState(d, &state, &reason, 0) < 0)
		rc = lv_errno();
	else
		*alive = state != VIR_DOMAIN_SHUTOFF && state != VIR_DOMAIN_CRASHED && state != VIR_DOMAIN_NOSTATE;
	lv.virDomainFree(d);
	lv.virConnectClose(c);
	return rc == -ESRCH ? 0 : rc;
}

/* The gentle stop of a diskless guest: its hypervisor process is asked to end (SIGTERM to
 * QEMU: VIR_DOMAIN_DESTROY_GRACEFUL), as the qemu driver's QMP quit does. There is no disk
 * to flush, and a guest power-off (ACPI) is what a unikernel like the sample VNF ignores,
 * which made every delete wait the node's whole grace period. A hypervisor driver that
 * refuses the flag (libxl) gets the guest shutdown request instead (PV shutdown on Xen). */
static int lv_stop_gently(virDomainPtr d)
{
	virErrorPtr e;
	if (lv.virDomainDestroyFlags(d, VIR_DOMAIN_DESTROY_GRACEFUL) == 0)
		return 0;
	e = lv.virGetLastError();
	if (!e || (e->code != VIR_ERR_INVALID_ARG && e->code != VIR_ERR_NO_SUPPORT &&
	           e->code != VIR_ERR_ARGUMENT_UNSUPPORTED))
		return -1;
	return lv.virDomainShutdown(d);
}

static int lv_stop(const struct drv_options *o, struct drv_handle *h, bool force)
{
	virConnectPtr c;
	virDomainPtr d;
	int rc = 0;

	if (!h->domain[0])
		return -EINVAL;
	if (!(c = lv_open(o, NULL, 0, &rc)))
		return rc;
	if (!(d = lv.virDomainLookupByName(c, h->domain))) {
		rc = lv_errno();
		lv.virConnectClose(c);
		return rc;
	}
	if ((force ? lv.virDomainDestroy(d) : lv_stop_gently(d)) < 0) {
		rc = lv_errno();
		if (rc == -EINVAL) /* "domain is not running": it ended meanwhile */
			rc = -ESRCH;
		log_debug("libvirt: %s %s: %s", force ? "destroy" : "gentle stop", h->domain, lv_error());
	}
	lv.virDomainFree(d);
	lv.virConnectClose(c);
	return rc;
}

/* ---- exit events ---- */

#define WATCH_QUEUE_MAX 4096      /* names queued for the node; beyond, one sweep */
#define WATCH_RETRY_MIN_MS 1000   /* reconnecting: first try after 1 s, doubling... */
#define WATCH_RETRY_MAX_MS 30000  /* ...up to 30 s (the node polls meanwhile) */
#define WATCH_KEEPALIVE_S 5       /* a hung libvirtd is noticed after ~5 * (1 + 3) s */
#define WATCH_KEEPALIVE_COUNT 3

/* The watcher. Fields marked (thread) are touched by its thread only, after watch() started
 * it and before unwatch() joined it. */
static struct {
	bool started;              /* the node's thread: between watch and unwatch */
	pthread_t thread;
	char uri[256];
	struct domevents q;
	atomic_bool live;          /* registered for events on a connection that is up */
	atomic_bool stopping;
	atomic_bool closed;        /* the connection closed under us (close callback) */
	int timer;                 /* libvirt timeout: reconnect, and unwatch's wake-up */
	virConnectPtr conn;        /* (thread) */
	int callback_id;           /* (thread) */
	bool retry_due;            /* (thread) */
	int retry_ms;              /* (thread) */
	bool ever_up, down_logged; /* (thread) for the log */
} w = {.timer = -1};

static pthread_once_t lv_event_impl_once = PTHREAD_ONCE_INIT;
static int lv_event_impl_rc;
static void lv_event_impl(void)
{
	lv_event_impl_rc = lv.virEventRegisterDefaultImpl();
}

/* Which lifecycle events end a domain: stopped (destroyed, shut down, crashed with
 * on_crash=destroy, failed), and crashed (a domain left in the crashed state is dead too:
 * status() says so as well). */
static bool lv_event_ends_domain(int event)
{
	return event == VIR_DOMAIN_EVENT_STOPPED || event == VIR_DOMAIN_EVENT_CRASHED;
}

/* On the watcher's thread, inside libvirt's event loop: queue only, never call libvirt. */
static int watch_on_lifecycle(UNUSED virConnectPtr c, virDomainPtr d, int event, UNUSED int detail,
                              UNUSED void *opaque)
{
	const char *name;
	if (lv_event_ends_domain(event) && (name = lv.virDomainGetName(d)))
		domevents_push(&w.q, name);
	return 0;
}

static void watch_on_close(UNUSED virConnectPtr c, UNUSED int reason, UNUSED void *opaque)
{
	atomic_store(&w.live, false);
	atomic_store(&w.closed, true); /* closed by the thread once the loop returns */
}

static void watch_on_timer(UNUSED int timer, UNUSED void *opaque)
{
	w.retry_due = true;
}

static void watch_retry_later(void)
{
	lv.virEventUpdateTimeout(w.timer, w.retry_ms);
	w.retry_ms = w.retry_ms * 2 > WATCH_RETRY_MAX_MS ? WATCH_RETRY_MAX_MS : w.retry_ms * 2;
}

/* Opens the watcher's connection and registers for lifecycle events; on failure, tries
 * again later. A sweep follows every success: ends before it were not seen as events. */
static void watch_connect(void)
{
	virConnectPtr c;
	int id;
	w.retry_due = false;
	if (!(c = lv.virConnectOpen(w.uri))) {
		if (!w.down_logged)
			log_warnx("libvirt %s: no domain events yet (%s): polling, retrying", w.uri, lv_error());
		w.down_logged = true;
		watch_retry_later();
		return;
	}
	if (lv.virConnectRegisterCloseCallback(c, watch_on_close, NULL, NULL) < 0 ||
	    (id = lv.virConnectDomainEventRegisterAny(c, NULL, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
	                                              VIR_DOMAIN_EVENT_CALLBACK(watch_on_lifecycle), NULL, NULL)) < 0) {
		if (!w.down_logged)
			log_warnx("libvirt %s: cannot register for domain events (%s): polling, retrying", w.uri,
			          lv_error());
		w.down_logged = true;
		lv.virConnectUnregisterCloseCallback(c, watch_on_close);
		lv.virConnectClose(c);
		watch_retry_later();
		return;
	}
	/* without it a libvirtd that hangs (rather than closes) would keep events "live" */
	if (lv.virConnectSetKeepAlive(c, WATCH_KEEPALIVE_S, WATCH_KEEPALIVE_COUNT) < 0)
		log_debug("libvirt %s: no keepalive on the events connection: %s", w.uri, lv_error());
	w.conn = c;
	w.callback_id = id;
	w.retry_ms = WATCH_RETRY_MIN_MS;
	lv.virEventUpdateTimeout(w.timer, -1);
	atomic_store(&w.closed, false);
	atomic_store(&w.live, true);
	domevents_push_sweep(&w.q);
	log_info("libvirt %s: domain events %s: exits are reported as they happen", w.uri,
	         w.ever_up ? "again" : "on");
	w.ever_up = true;
	w.down_logged = false;
}

static void watch_disconnect(void)
{
	if (!w.conn)
		return;
	atomic_store(&w.live, false);
	/* on a closed connection deregistering fails; what matters is that it is freed */
	lv.virConnectDomainEventDeregisterAny(w.conn, w.callback_id);
	lv.virConnectUnregisterCloseCallback(w.conn, watch_on_close);
	lv.virConnectClose(w.conn);
	w.conn = NULL;
}

static void *watch_main(UNUSED void *arg)
{
	log_set_tag("node"); /* its lines are the node's */
	while (!atomic_load(&w.stopping)) {
		if (!w.conn && w.retry_due)
			watch_connect();
		if (lv.virEventRunDefaultImpl() < 0) {
			log_warnx("libvirt: the event loop failed (%s): domains are polled from now on", lv_error());
			break;
		}
		if (atomic_load(&w.closed) && w.conn) {
			log_warnx("libvirt %s: the events connection closed: polling until it is back", w.uri);
			watch_disconnect();
			atomic_store(&w.closed, false);
			watch_retry_later();
		}
	}
	watch_disconnect();
	/* one more turn frees what the close left to the loop (the socket's watch) */
	lv.virEventUpdateTimeout(w.timer, 0);
	lv.virEventRunDefaultImpl();
	return NULL;
}

static int lv_watch(const struct drv_options *o, int *fd, char *err, size_t errlen)
{
	sigset_t all, old;
	int rc;

	pthread_once(&lv_once, lv_init);
	if (!lv_loaded || !lv_events_loaded) {
		snprintf(err, errlen, "%s", lv_loaded ? lv_events_error : lv_load_error);
		return -ENOTSUP;
	}
	if (w.started) {
		snprintf(err, errlen, "libvirt: domain events are already watched in this process");
		return -EBUSY;
	}
	/* must come before the connection whose events we want; libvirt allows it once */
	pthread_once(&lv_event_impl_once, lv_event_impl);
	if (lv_event_impl_rc < 0) {
		snprintf(err, errlen, "libvirt: no event loop: %s", lv_error());
		return -ENOTSUP;
	}
	if (snprintf(w.uri, sizeof w.uri, "%s", lv_uri(o)) >= (int)sizeof w.uri) {
		snprintf(err, errlen, "libvirt: URI too long");
		return -ENAMETOOLONG;
	}
	if ((rc = domevents_init(&w.q, WATCH_QUEUE_MAX)) < 0) {
		snprintf(err, errlen, "libvirt: domain events queue: %s", strerror(-rc));
		return rc;
	}
	if ((w.timer = lv.virEventAddTimeout(-1, watch_on_timer, NULL, NULL)) < 0) {
		snprintf(err, errlen, "libvirt: cannot add an event loop timer: %s", lv_error());
		domevents_free(&w.q);
		return -EIO;
	}
	atomic_store(&w.live, false);
	atomic_store(&w.stopping, false);
	atomic_store(&w.closed, false);
	w.conn = NULL;
	w.retry_due = true;
	w.retry_ms = WATCH_RETRY_MIN_MS;
	w.ever_up = w.down_logged = false;
	/* the thread takes no signals: they belong to the node's loop */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	rc = pthread_create(&w.thread, NULL, watch_main, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		snprintf(err, errlen, "libvirt: cannot start the events thread: %s", strerror(rc));
		lv.virEventRemoveTimeout(w.timer);
		domevents_free(&w.q);
		return -rc;
	}
	w.started = true;
	*fd = w.q.efd;
	return 0;
}

static bool lv_watch_next(char *domain, size_t len)
{
	return w.started && domevents_pop(&w.q, domain, len);
}

static bool lv_watching(void)
{
	return w.started && atomic_load(&w.live);
}

static void lv_unwatch(void)
{
	if (!w.started)
		return;
	atomic_store(&w.stopping, true);
	lv.virEventUpdateTimeout(w.timer, 0); /* wakes the loop at once */
	pthread_join(w.thread, NULL);
	lv.virEventRemoveTimeout(w.timer);
	w.timer = -1;
	domevents_free(&w.q);
	w.started = false;
}

/* {"type": "pvh"|"pv"}: the guest type under xen:///system */
static const char *const config_fields[] = {"type", NULL};
static const char *const guest_types[] = {"pvh", "pv", NULL};
static const char *const *const config_choices[] = {guest_types};

static int lv_config_check(const json_t *config, const char **executable, struct mv_error *err)
{
	*executable = NULL;
	return drv_config_choices(config, config_fields, config_choices, err);
}

const struct driver driver_libvirt = {
	.name = "libvirt",
	.boots_image = true,
	.network = DRV_NET_BRIDGE,
	.config_check = lv_config_check,
	.probe = lv_probe,
	.start = lv_start,
	.recover = drv_domain_recover,
	.adopt = drv_domain_adopt,
	.status = lv_status,
	.stop = lv_stop,
	.watch = lv_watch,
	.watch_next = lv_watch_next,
	.watching = lv_watching,
	.unwatch = lv_unwatch,
};
