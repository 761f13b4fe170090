/* daemons — `microvim core`, `node` and `dev`. Each daemon runs its event loop on its own
 * thread; the main thread only waits for signals (sigwait) and turns them into an
 * orderly stop on the loops. `dev` runs a core and a node side by side, talking HTTP over
 * loopback exactly as two hosts would. */
#include <errno.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <ftw.h>
#include <getopt.h>
#include <grp.h>
#include <pwd.h>
#include <stddef.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/clock.h"
#include "common/corelist.h"
#include "common/fs.h"
#include "common/log.h"
#include "common/model.h"
#include "core/core.h"
#include "node/logbuf.h"
#include "core/store_pg.h"
#include "node/node.h"
#include "node/simulate.h"

/* ---- a loop on a thread, stoppable from the signal thread ---- */

struct loop_thread {
	const char *tag;
	struct event_base *base;
	struct event *stop_ev;
	pthread_t tid;
	void (*on_stop)(struct loop_thread *lt); /* runs on the loop when asked to stop */
	void *daemon;
};

static void *loop_main(void *arg)
{
	struct loop_thread *lt = arg;
	log_set_tag(lt->tag);
	event_base_dispatch(lt->base);
	return NULL;
}

static void on_stop_event(UNUSED evutil_socket_t fd, UNUSED short what, void *arg)
{
	struct loop_thread *lt = arg;
	lt->on_stop(lt);
}

static void loop_init(struct loop_thread *lt, const char *tag, void (*on_stop)(struct loop_thread *))
{
	struct event_config *cfg = event_config_new();
	lt->tag = tag;
	lt->on_stop = on_stop;
	if (!cfg)
		fatalx("cannot create an event loop");
	/* epoll's changes are gathered and applied once per turn, at the next epoll_wait: an
	 * HTTP exchange that turns reading off, then on with writing, then writing off again
	 * costs one epoll_ctl instead of three or four, each a few µs on a virtual machine. No
	 * fd watched here is a dup of another (the trap this mode has). */
	event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
	lt->base = event_base_new_with_config(cfg);
	event_config_free(cfg);
	if (!lt->base)
		fatalx("cannot create an event loop");
	lt->stop_ev = event_new(lt->base, -1, 0, on_stop_event, lt);
}

static void loop_start(struct loop_thread *lt)
{
	if (pthread_create(&lt->tid, NULL, loop_main, lt) != 0)
		fatalx("cannot start the %s thread", lt->tag);
}

static void loop_stop_and_join(struct loop_thread *lt)
{
	event_active(lt->stop_ev, 0, 0); /* thread-safe: evthread_use_pthreads() */
	pthread_join(lt->tid, NULL);
	event_free(lt->stop_ev);
}

/* For a daemon that failed to start: the loop never ran. */
static void loop_free(struct loop_thread *lt)
{
	if (lt->stop_ev)
		event_free(lt->stop_ev);
	if (lt->base)
		event_base_free(lt->base);
	lt->stop_ev = NULL;
	lt->base = NULL;
}

#define CORE_DRAIN_S 0.2 /* time for the last answers to reach the wire */

static void core_on_stop(struct loop_thread *lt)
{
	struct timeval tv = clock_timeval(CORE_DRAIN_S);
	core_drain(lt->daemon);
	event_base_loopexit(lt->base, &tv);
}

static void node_stopped(void *arg)
{
	struct loop_thread *lt = arg;
	event_base_loopbreak(lt->base);
}

static void node_on_stop(struct loop_thread *lt) { node_shutdown(lt->daemon, node_stopped, lt); }

/* Blocks the signals the main thread will wait for; threads created later inherit the mask.
 * Children get a clean mask from the drivers (POSIX_SPAWN_SETSIGMASK). */
/* Daemons hold a descriptor per connection, instance and pidfd: use all the hard limit
 * allows rather than the default soft limit of 1024. */
static void raise_open_files(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			log_warn("cannot raise the open files limit");
	}
}

static void signals_block(sigset_t *set)
{
	raise_open_files();
	sigemptyset(set);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, set, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (evthread_use_pthreads() < 0)
		fatalx("libevent has no thread support");
}

static int wait_for_signal(const sigset_t *set)
{
	int sig = 0;
	while (sigwait(set, &sig) != 0)
		;
	return sig;
}

/* ---- the daemons' options: one table ----
 *
 * Every option of `core`, `node` and `dev` is one row: its name, the daemon it belongs to,
 * its type and where its value goes, its default and its help (Redis's config table is
 * the model). getopt's array, the refusal of another daemon's option and the help text
 * are all made from the rows, so none can drift from the others. */

static uid_t chown_uid;
static gid_t chown_gid;

struct daemon_args {
	struct core_options core;
	struct node_options node;
	struct exec_allow exec_allow;
	const char *bridges[17];
	int n_bridges;
	json_t *labels;
	bool temp_data_dir;
	char data_dir_buf[4096];
	const char *user; /* core: drop root for this user */
};

/* Which daemon an option is for. `dev` runs both and takes both, except an option marked
 * NOT_DEV: it has no meaning in one process (--core, --user: dev talks to its own core and
 * stays the user it is). */
enum { FOR_CORE = 1, FOR_NODE = 2, FOR_BOTH = 3, NOT_DEV = 4 };

enum opt_type {
	OT_STRING, /* const char *, at off (and off2 when not 0) */
	OT_FLAG,   /* bool set to true */
	OT_NUMBER, /* double in [min, max] */
	OT_INT,    /* a number in [min, max], kept as int (fractions cut) */
	OT_WHOLE,  /* decimal digits only in [min, max], int */
	OT_WHOLE64, /* the same, int64_t */
	OT_PARSE,  /* its own parser */
};

#define NO_OFF ((size_t)-1)
#define CORE(field) offsetof(struct daemon_args, core.field)
#define NODE(field) offsetof(struct daemon_args, node.field)

struct daemon_option {
	const char *name;
	int owner;           /* FOR_*, with NOT_DEV */
	enum opt_type type;
	size_t off, off2;    /* where the value goes (off2: a second field, for options of both) */
	double min, max;
	int (*parse)(struct daemon_args *d, const char *value, char *err, size_t errlen);
	const char *arg;     /* what the value looks like in the help ("HOST:PORT"); NULL: a flag */
	const char *dflt;    /* the default, as the help says it; NULL: none to say */
	const char *help;
	const char *want;    /* what a bad value should have been, for the error */
};

static int parse_schedule(struct daemon_args *d, const char *v, char *err, size_t errlen)
{
	int sched = sched_policy_parse(v);
	if (sched < 0) {
		snprintf(err, errlen, "give binpack or spread");
		return -1;
	}
	d->core.policy = (enum sched_policy)sched;
	return 0;
}

static int parse_label(struct daemon_args *d, const char *kv, char *err, size_t errlen)
{
	const char *eq = strchr(kv, '=');
	char key[MV_NAME_MAX + 2];
	if (!eq || eq == kv || (size_t)(eq - kv) > MV_NAME_MAX) {
		snprintf(err, errlen, "give KEY=VALUE");
		return -1;
	}
	memcpy(key, kv, (size_t)(eq - kv));
	key[eq - kv] = '\0';
	if (!name_valid(key) || !label_value_valid(eq + 1)) {
		snprintf(err, errlen, "key [A-Za-z0-9._-]{1,63}, value printable up to 255");
		return -1;
	}
	json_object_set_new(d->labels, key, json_string(eq + 1));
	return 0;
}

static int parse_exec_allow(struct daemon_args *d, const char *list, char *err, size_t errlen)
{
	exec_allow_free(&d->exec_allow);
	if (exec_allow_parse(&d->exec_allow, list, err, errlen) < 0)
		return -1;
	for (size_t i = 0; i < d->exec_allow.n; i++)
		if (access(d->exec_allow.paths[i], X_OK) != 0)
			fprintf(stderr, "microvim: warning: --exec-allow %s: %s\n", d->exec_allow.paths[i], strerror(errno));
	return 0;
}

static int parse_bridge(struct daemon_args *d, const char *v, char *err, size_t errlen)
{
	if (d->n_bridges == 16 || strlen(v) > MV_BRIDGE_MAX || !name_valid(v)) {
		snprintf(err, errlen, "give an interface name of 1-%d characters [A-Za-z0-9._-] (at most 16 bridges)",
		         MV_BRIDGE_MAX);
		return -1;
	}
	d->bridges[d->n_bridges++] = v;
	return 0;
}

static int parse_image_cache(struct daemon_args *d, const char *v, char *err, size_t errlen)
{
	if (strcmp(v, "on") != 0 && strcmp(v, "off") != 0) {
		snprintf(err, errlen, "give on or off");
		return -1;
	}
	d->node.image_cache_off = strcmp(v, "off") == 0;
	return 0;
}

static int parse_cgroups(struct daemon_args *d, const char *v, char *err, size_t errlen)
{
	if (cgroup_mode_parse(v, &d->node.cgroups) < 0) {
		snprintf(err, errlen, "give auto, v1, v2 or off");
		return -1;
	}
	return 0;
}

static int parse_cgroup_parent(struct daemon_args *d, const char *v, char *err, size_t errlen)
{
	if (!cgroup_parent_valid(v)) {
		snprintf(err, errlen, "give 1-4 path components of [A-Za-z0-9._-] joined by '/', like microvim or vnf/prod");
		return -1;
	}
	d->node.cgroup_parent = v;
	return 0;
}

/* Only PostgreSQL is named by a URL; SQLite is the default and needs none. */
static int parse_store(struct daemon_args *d, const char *v, char *err, size_t errlen)
{
	if (!store_pg_location(v)) {
		snprintf(err, errlen, "give a PostgreSQL URL, postgresql://USER@HOST:PORT/DB (leave --store out for "
		         "SQLite in --data-dir)");
		return -1;
	}
	d->core.store = v;
	return 0;
}

/* One core or several of one control plane (common/corelist.h): each URL checked now. */
static int parse_core(struct daemon_args *d, const char *v, char *err, size_t errlen)
{
	struct corelist l;
	if (corelist_parse(&l, v, err, errlen) < 0)
		return -1;
	d->node.core_url = v;
	return 0;
}

static int parse_user(struct daemon_args *d, const char *v, UNUSED char *err, UNUSED size_t errlen)
{
	d->user = v;
	return 0;
}

#define MAX_INFLIGHT_MAX 10000000 /* ~20 GiB of instance records: far past any real need */
#define STR(x) #x
#define XSTR(x) STR(x)

static const struct daemon_option options[] = {
	/* both */
	{"data-dir", FOR_BOTH, OT_STRING, CORE(data_dir), NODE(data_dir), 0, 0, NULL, "DIR",
	 "core /var/lib/microvim/core, node /var/lib/microvim/node, dev a new temporary dir removed at exit",
	 "the daemon's state: the core's store and image blobs, the node's id, credential and image cache", NULL},
	{"token-file", FOR_BOTH, OT_STRING, CORE(token_file), NODE(token_file), 0, 0, NULL, "FILE", NULL,
	 "core: require 'Authorization: Bearer TOKEN' on every request; node: a join token (microvim "
	 "node-token create: the node then keeps its own credential in DATA_DIR/node.credential and uses "
	 "that), or the core's token", NULL},
	{"tls-cert", FOR_BOTH, OT_STRING, CORE(tls_cert), NODE(tls_cert), 0, 0, NULL, "FILE", NULL,
	 "core: serve HTTPS (only) with this PEM certificate chain; node: the client certificate shown to an "
	 "https:// core (for its --tls-client-ca)", NULL},
	{"tls-key", FOR_BOTH, OT_STRING, CORE(tls_key), NODE(tls_key), 0, 0, NULL, "FILE", NULL,
	 "the PEM private key of --tls-cert", NULL},
	/* core */
	{"store", FOR_CORE, OT_PARSE, NO_OFF, 0, 0, 0, parse_store, "URL", "SQLite in --data-dir",
	 "postgresql://USER@HOST:PORT/DB: the store in that PostgreSQL database, for several cores (image blobs "
	 "stay in --data-dir, which those cores must then share)", NULL},
	{"advertise", FOR_CORE | NOT_DEV, OT_STRING, CORE(advertise), 0, 0, 0, NULL, "URL", "the --listen address",
	 "with --store postgresql://: the URL other cores send nodes and clients to while this one leads", NULL},
	{"listen", FOR_CORE, OT_STRING, CORE(listen), 0, 0, 0, NULL, "HOST:PORT", "127.0.0.1:4650",
	 "where the core listens; a non-loopback address turns --auth on", NULL},
	{"auth", FOR_CORE | NOT_DEV, OT_FLAG, CORE(auth), 0, 0, 0, NULL, NULL, NULL,
	 "users' tokens, roles and projects (the first start writes DATA_DIR/admin.token); "
	 "--token-file's token stays an admin's", NULL},
	{"cpu-ratio", FOR_CORE, OT_NUMBER, CORE(cpu_ratio), 0, 0.01, 1000, NULL, "R", "16",
	 "vCPUs offered per node CPU (as Nova's cpu_allocation_ratio)", "give a number, 0.01-1000"},
	{"schedule", FOR_CORE, OT_PARSE, NO_OFF, 0, 0, 0, parse_schedule, "binpack|spread", "binpack",
	 "placement: the fullest node that fits, or the emptiest", NULL},
	{"heartbeat-timeout", FOR_CORE, OT_INT, CORE(heartbeat_timeout_s), 0, 1, 3600, NULL, "S", "15",
	 "a node silent this long is down (longer when --heartbeat-rate-max stretches the interval)",
	 "give seconds, 1-3600"},
	{"heartbeat-rate-max", FOR_CORE, OT_WHOLE, CORE(heartbeat_rate_max), 0, 0, 1000000, NULL, "N", "500",
	 "heartbeats/s from all nodes together; with more nodes their interval grows (nodes/N s) "
	 "and so does the time to notice one down (0: no cap)", "give a whole number of heartbeats/s, 0-1000000"},
	{"user", FOR_CORE | NOT_DEV, OT_PARSE, NO_OFF, 0, 0, 0, parse_user, "NAME", NULL,
	 "run as this user (the core needs no root; it gets the data dir)", NULL},
	{"max-rate", FOR_CORE, OT_NUMBER, CORE(max_rate), 0, 0, 1e9, NULL, "N", "10000",
	 "requests/s per client address, bursts of 2N (0: off)", "give a number of requests/s, 0-1e9"},
	{"max-inflight", FOR_CORE, OT_WHOLE64, CORE(max_inflight), 0, 0, MAX_INFLIGHT_MAX, NULL, "N",
	 XSTR(CORE_MAX_INFLIGHT_DEFAULT),
	 "instances pending, scheduled or starting at once; past it a create gets 503 saturated (0: no limit)",
	 "give a whole number of instances, 0-" XSTR(MAX_INFLIGHT_MAX) " (0: no limit; default "
	 XSTR(CORE_MAX_INFLIGHT_DEFAULT) ")"},
	{"max-conns-per-addr", FOR_CORE, OT_WHOLE, CORE(max_conns_per_addr), 0, 0, 1000000, NULL, "N", "512",
	 "open connections per client address; past it 429 (0: off)",
	 "give a whole number of connections, 0-1000000 (0: no limit)"},
	{"tls-client-ca", FOR_CORE, OT_STRING, CORE(tls_client_ca), 0, 0, 0, NULL, "FILE", NULL,
	 "with --tls-cert: nodes' routes need a client certificate this CA signed (mTLS; 403 without); a "
	 "certificate it did not sign fails the handshake; people's commands still need only a token", NULL},
	{"read-timeout", FOR_CORE, OT_WHOLE, CORE(read_timeout_s), 0, 1, 3600, NULL, "S", "60",
	 "a request must arrive whole within S s of its first byte", "give whole seconds, 1-3600"},
	{"openstack-listen", FOR_CORE, OT_STRING, CORE(openstack_listen), 0, 0, 0, NULL, "HOST:PORT", "off",
	 "serve the OpenStack façade (Keystone, Nova, Glance, Neutron) here: OS_AUTH_URL=http://HOST:PORT/identity/v3",
	 NULL},
	{"openstack-password-file", FOR_CORE, OT_STRING, CORE(openstack_password_file), 0, 0, 0, NULL, "FILE",
	 "the --token-file token; neither: any password (loopback only)",
	 "the Keystone password of the façade's user admin (project admin); with --auth every user of the "
	 "core logs in with its own password", NULL},
	/* node */
	{"core", FOR_NODE | NOT_DEV, OT_PARSE, NO_OFF, 0, 0, 0, parse_core, "URL[,URL...]", "http://127.0.0.1:4650",
	 "the core, or the cores of one control plane: the node follows their leader and fails over along the list",
	 NULL},
	{"tls-ca", FOR_NODE, OT_STRING, NODE(tls_ca), 0, 0, 0, NULL, "FILE", "the system's CA store",
	 "an https:// core: the CAs its certificate must be signed by", NULL},
	{"run-dir", FOR_NODE, OT_STRING, NODE(run_dir), 0, 0, 0, NULL, "DIR", "/run/microvim/NODE-ID on tmpfs",
	 "instance dirs, logs and records; dev removes it at exit", NULL},
	{"name", FOR_NODE, OT_STRING, NODE(name), 0, 0, 0, NULL, "NAME", "the host name; dev: dev", "node name", NULL},
	{"label", FOR_NODE, OT_PARSE, NO_OFF, 0, 0, 0, parse_label, "K=V", NULL,
	 "a label for placement (repeatable)", NULL},
	{"exec-allow", FOR_NODE, OT_PARSE, NO_OFF, 0, 0, 0, parse_exec_allow, "PATH[,PATH]", "none: exec is off",
	 "executables the exec driver may run", NULL},
	{"cgroups", FOR_NODE, OT_PARSE, NO_OFF, 0, 0, 0, parse_cgroups, "auto|v1|v2|off", "auto",
	 "hold each exec instance to its vCPUs and memory in a cgroup of its own (auto: v2 where its cpu and "
	 "memory controllers are writable, else v1; none: the node says so)", NULL},
	{"cgroup-parent", FOR_NODE, OT_PARSE, NO_OFF, 0, 0, 0, parse_cgroup_parent, "PATH", "microvim",
	 "exec instances' cgroups go under PATH/NODE-ID in each hierarchy", NULL},
	{"exec-user", FOR_NODE, OT_STRING, NODE(exec_user), 0, 0, 0, NULL, "USER", "the node's user",
	 "run exec instances as this user", NULL},
	{"stop-grace", FOR_NODE, OT_NUMBER, NODE(stop_grace_s), 0, 0, 3600, NULL, "S", "5",
	 "seconds between the gentle stop and the forced one", "give seconds, 0-3600"},
	{"stop-instances-on-exit", FOR_NODE, OT_FLAG, NODE(stop_instances_on_exit), 0, 0, 0, NULL, NULL,
	 "off: they keep running; dev: on", "stop every instance when the node exits", NULL},
	{"bridge", FOR_NODE, OT_PARSE, NO_OFF, 0, 0, 0, parse_bridge, "NAME", NULL,
	 "create this bridge at start if missing (repeatable); instances with network.bridge are placed only on "
	 "nodes that have it", NULL},
	{"image-cache", FOR_NODE, OT_PARSE, NO_OFF, 0, 0, 0, parse_image_cache, "on|off", "on",
	 "off: fetch the image for every instance (the paper's stock drivers)", NULL},
	{"notify-batch-ms", FOR_NODE, OT_INT, NODE(notify_batch_ms), 0, 0, 60000, NULL, "N", "0: at once",
	 "send status reports on a free-running N ms tick (stock Nomad: 200)", "give milliseconds, 0-60000"},
	{"qemu", FOR_NODE, OT_STRING, NODE(qemu_binary), 0, 0, 0, NULL, "PATH", "qemu-system-x86_64",
	 "the QEMU binary", NULL},
	{"libvirt-uri", FOR_NODE, OT_STRING, NODE(libvirt_uri), 0, 0, 0, NULL, "URI", "qemu:///system",
	 "libvirt's URI; xen:///system on a Xen host", NULL},
	{"xl", FOR_NODE, OT_STRING, NODE(xl_binary), 0, 0, 0, NULL, "PATH", "xl", "the Xen toolstack", NULL},
	{"xenstore", FOR_NODE, OT_STRING, NODE(xenstore_binary), 0, 0, 0, NULL, "PATH", "xenstore",
	 "Xen's xenstore client: Click configurations, domain exits", NULL},
	{"logs-listen", FOR_NODE, OT_STRING, NODE(logs_listen), 0, 0, 0, NULL, "HOST:PORT", "127.0.0.1:0 (any free port)",
	 "where the core reads instance logs from this node (it registers the address); give an address the core "
	 "can reach when it runs on another host", NULL},
	{"log-max-bytes", FOR_NODE, OT_WHOLE64, NODE(log_max_bytes), 0, LOGBUF_MAX_MIN, LOGBUF_MAX_MAX, NULL, "N",
	 "1048576", "bytes kept per log stream of an instance (stdout, stderr, serial); the oldest are dropped",
	 "give a whole number of bytes, 4096-1073741824"},
	{"xen-console-dir", FOR_NODE, OT_STRING, NODE(xen_console_dir), 0, 0, 0, NULL, "DIR", "/var/log/xen/console",
	 "where xenconsoled logs guest consoles", NULL},
	{"simulate", FOR_NODE | NOT_DEV, OT_WHOLE, NODE(simulate), 0, 1, SIM_NODES_MAX, NULL, "N", NULL,
	 "run N simulated nodes (driver sim, instances are records) instead of this host: the scale harness",
	 "give a whole number of nodes, 1-100000"},
	{"sim-spawn-ms", FOR_NODE | NOT_DEV, OT_NUMBER, NODE(sim_spawn_ms), 0, 0, SIM_SPAWN_MS_MAX, NULL, "MS", "1",
	 "--simulate: how long a simulated start takes", "give milliseconds, 0-60000"},
	{"sim-fail-rate", FOR_NODE | NOT_DEV, OT_NUMBER, NODE(sim_fail_rate), 0, 0, 1, NULL, "P", "0",
	 "--simulate: the share of starts that fail", "give a fraction, 0-1"},
	{"sim-cpus", FOR_NODE | NOT_DEV, OT_WHOLE, NODE(sim_cpus), 0, 1, 100000, NULL, "N", "64",
	 "--simulate: each node's CPUs", "give a whole number, 1-100000"},
	{"sim-memory-mb", FOR_NODE | NOT_DEV, OT_WHOLE64, NODE(sim_memory_mb), 0, 1, 1e12, NULL, "MB", "262144",
	 "--simulate: each node's memory", "give whole MiB"},
	/* all */
	{"verbose", FOR_BOTH, OT_FLAG, NO_OFF, 0, 0, 0, NULL, NULL, NULL, "debug logs (-v)", NULL},
};

#define N_OPTIONS (sizeof options / sizeof options[0])

static bool daemon_takes(const char *cmd, const struct daemon_option *o)
{
	if (strcmp(cmd, "dev") == 0)
		return !(o->owner & NOT_DEV);
	return o->owner & (strcmp(cmd, "core") == 0 ? FOR_CORE : FOR_NODE);
}

#define HELP_INDENT 27 /* where the help text starts */
#define HELP_WIDTH 100

/* Prints text from column `at`, word-wrapped at HELP_WIDTH, continuing at HELP_INDENT. */
static void help_wrap(FILE *out, int at, const char *text)
{
	const char *p = text;
	int col = at;
	while (*p) {
		int word = (int)strcspn(p, " ");
		if (col > HELP_INDENT && col + 1 + word > HELP_WIDTH) {
			fprintf(out, "\n%*s", HELP_INDENT, "");
			col = HELP_INDENT;
		} else if (col > at) {
			fputc(' ', out);
			col++;
		}
		fprintf(out, "%.*s", word, p);
		col += word;
		p += word;
		p += strspn(p, " ");
	}
	fputc('\n', out);
}

void daemon_usage(const char *cmd, FILE *out)
{
	char flag[64], text[512];
	for (size_t i = 0; i < N_OPTIONS; i++) {
		const struct daemon_option *o = &options[i];
		int n;
		if (!daemon_takes(cmd, o))
			continue;
		snprintf(flag, sizeof flag, "--%s%s%s", o->name, o->arg ? " " : "", o->arg ? o->arg : "");
		n = fprintf(out, "  %-24s ", flag);
		if (n > HELP_INDENT) { /* a long flag: its help on the next line */
			fprintf(out, "\n%*s", HELP_INDENT, "");
			n = HELP_INDENT;
		}
		if (snprintf(text, sizeof text, "%s%s%s%s", o->help, o->dflt ? " (default " : "", o->dflt ? o->dflt : "",
		             o->dflt ? ")" : "") >= (int)sizeof text)
			fatalx("the help of --%s is longer than %zu bytes", o->name, sizeof text);
		help_wrap(out, n, text);
	}
	fprintf(out, "  -h, --help               this text\n\n"
	             "Options and defaults: README.md (Quick start, Multi-host, Limits); the API: docs/API.md;\n"
	             "how core and node fit together: docs/architecture.md.\n");
}

/* An option another daemon takes is refused rather than ignored: `node --max-rate 5`
 * would otherwise look accepted and do nothing. */
static bool option_refused(const char *cmd, const struct daemon_option *o)
{
	bool dev = strcmp(cmd, "dev") == 0;
	if (daemon_takes(cmd, o))
		return false;
	fprintf(stderr, "microvim %s: --%s is not an option of `microvim %s`%s (see microvim %s --help)\n", cmd, o->name,
	        cmd, dev ? "" : (o->owner & FOR_BOTH) == FOR_CORE ? " but of `microvim core`" : " but of `microvim node`",
	        cmd);
	return true;
}

static int parse_number(const char *s, double min, double max, double *out)
{
	char *end;
	errno = 0;
	*out = strtod(s, &end);
	return errno || end == s || *end || *out < min || *out > max ? -1 : 0;
}

/* A whole number min..max in decimal digits only (no sign, no fraction, no spaces). */
static int parse_whole(const char *s, double min, double max, int64_t *out)
{
	char *end;
	long long v;
	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || *end || (double)v < min || (double)v > max)
		return -1;
	*out = v;
	return 0;
}

/* Puts one value where its row says. 0, or -1 with what to give in err. */
static int option_apply(struct daemon_args *d, const struct daemon_option *o, const char *v, char *err, size_t errlen)
{
	char *base = (char *)d;
	double num;
	int64_t whole;

	switch (o->type) {
	case OT_STRING:
		*(const char **)(base + o->off) = v;
		if (o->off2)
			*(const char **)(base + o->off2) = v;
		return 0;
	case OT_FLAG:
		if (o->off == NO_OFF)
			log_set_verbose(true); /* --verbose: the one flag that is not a field */
		else
			*(bool *)(base + o->off) = true;
		return 0;
	case OT_NUMBER:
	case OT_INT:
		if (parse_number(v, o->min, o->max, &num) < 0)
			break;
		if (o->type == OT_NUMBER)
			*(double *)(base + o->off) = num;
		else
			*(int *)(base + o->off) = (int)num;
		return 0;
	case OT_WHOLE:
	case OT_WHOLE64:
		if (parse_whole(v, o->min, o->max, &whole) < 0)
			break;
		if (o->type == OT_WHOLE)
			*(int *)(base + o->off) = (int)whole;
		else
			*(int64_t *)(base + o->off) = whole;
		return 0;
	case OT_PARSE:
		return o->parse(d, v, err, errlen);
	}
	snprintf(err, errlen, "%s", o->want ? o->want : "see --help");
	return -1;
}

static int parse_daemon_args(const char *cmd, int argc, char **argv, struct daemon_args *d)
{
	struct option longopts[N_OPTIONS + 1];
	char err[512];
	int opt;

	core_options_default(&d->core);
	node_options_default(&d->node);
	d->labels = json_object();
	for (size_t i = 0; i < N_OPTIONS; i++)
		longopts[i] = (struct option){options[i].name, options[i].arg ? required_argument : no_argument, NULL,
		                              (int)(256 + i)};
	longopts[N_OPTIONS] = (struct option){NULL, 0, NULL, 0};
	optind = 1;
	while ((opt = getopt_long(argc, argv, "v", longopts, NULL)) != -1) {
		const struct daemon_option *o;
		if (opt == 'v') {
			log_set_verbose(true);
			continue;
		}
		if (opt < 256 || opt >= 256 + (int)N_OPTIONS) {
			cli_usage(cmd, 1);
			return -1;
		}
		o = &options[opt - 256];
		if (option_refused(cmd, o))
			return -1;
		err[0] = '\0';
		if (option_apply(d, o, optarg, err, sizeof err) < 0) {
			fprintf(stderr, "microvim %s: --%s \"%s\": %s\n", cmd, o->name, optarg, err);
			return -1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "microvim %s: unexpected argument \"%s\"\n", cmd, argv[optind]);
		return -1;
	}
	d->node.labels = d->labels;
	d->node.bridges = d->bridges;
	d->node.exec_allow = &d->exec_allow;
	return 0;
}

static void daemon_args_free(struct daemon_args *d)
{
	exec_allow_free(&d->exec_allow);
	json_decref(d->labels);
}

/* ---- the three daemons ---- */

static int chown_entry(const char *path, UNUSED const struct stat *sb, UNUSED int flag, struct FTW *ftw)
{
	(void)ftw;
	return lchown(path, chown_uid, chown_gid) < 0 ? -1 : 0;
}

/* The core parses untrusted network input and needs no privilege: with --user it gives
 * its data dir to that user and becomes it before opening anything. */
static int drop_privileges(const char *user, const char *data_dir)
{
	struct passwd *pw = getpwnam(user);
	int rc;
	if (!pw) {
		fprintf(stderr, "microvim core: --user %s: no such user\n", user);
		return -1;
	}
	if ((rc = fs_mkdir_p(data_dir, 0700)) < 0) {
		fprintf(stderr, "microvim core: cannot create --data-dir %s: %s\n", data_dir, strerror(-rc));
		return -1;
	}
	chown_uid = pw->pw_uid;
	chown_gid = pw->pw_gid;
	if (nftw(data_dir, chown_entry, 16, FTW_PHYS) < 0 || setgroups(0, NULL) < 0 || setgid(pw->pw_gid) < 0 ||
	    setuid(pw->pw_uid) < 0) {
		fprintf(stderr, "microvim core: cannot become %s: %s\n", user, strerror(errno));
		return -1;
	}
	if (setuid(0) == 0) {
		fprintf(stderr, "microvim core: still able to regain root after --user %s; refusing to run\n", user);
		return -1;
	}
	return 0;
}

int cmd_core(int argc, char **argv)
{
	struct daemon_args d = {0};
	struct loop_thread lt = {0};
	char err[512];
	sigset_t set;
	struct core *c;

	if (parse_daemon_args("core", argc, argv, &d) < 0)
		return daemon_args_free(&d), EXIT_USAGE;
	log_set_tag("core");
	if (d.user && drop_privileges(d.user, d.core.data_dir) < 0)
		return daemon_args_free(&d), EXIT_FAILED;
	signals_block(&set);
	loop_init(&lt, "core", core_on_stop);
	if (!(c = core_create(lt.base, &d.core, err, sizeof err))) {
		fprintf(stderr, "microvim core: %s\n", err);
		loop_free(&lt);
		daemon_args_free(&d);
		return EXIT_FAILED;
	}
	lt.daemon = c;
	loop_start(&lt);
	log_info("stopping on %s", strsignal(wait_for_signal(&set)));
	loop_stop_and_join(&lt);
	core_destroy(c);
	event_base_free(lt.base);
	daemon_args_free(&d);
	return EXIT_OK;
}

static void simulator_on_stop(struct loop_thread *lt) { event_base_loopbreak(lt->base); }

/* node --simulate N: the simulated nodes instead of this host's agent. They hold nothing
 * to stop (their instances are records), so they go at once. */
static int run_simulator(struct daemon_args *d)
{
	struct loop_thread lt = {0};
	struct simulator *s;
	char err[512], *token = NULL;
	sigset_t set;
	int rc;

	if (d->node.token_file && (rc = fs_read_token(d->node.token_file, &token)) < 0) {
		fprintf(stderr, "microvim node: cannot read --token-file %s: %s\n", d->node.token_file, strerror(-rc));
		return EXIT_FAILED;
	}
	signals_block(&set);
	loop_init(&lt, "node", simulator_on_stop);
	struct sim_options so = {
		.base = lt.base, .core_url = d->node.core_url, .cluster_token = token, .count = d->node.simulate,
		.name_prefix = d->node.name, .cpus = d->node.sim_cpus, .memory_mb = d->node.sim_memory_mb,
		.labels = d->node.labels,
		.params = {.spawn_ms = d->node.sim_spawn_ms, .fail_rate = d->node.sim_fail_rate},
	};
	if (!(s = simulator_create(&so, err, sizeof err))) {
		fprintf(stderr, "microvim node: %s\n", err);
		loop_free(&lt);
		free(token);
		return EXIT_FAILED;
	}
	lt.daemon = s;
	loop_start(&lt);
	log_info("stopping on %s", strsignal(wait_for_signal(&set)));
	loop_stop_and_join(&lt);
	simulator_destroy(s);
	event_base_free(lt.base);
	free(token);
	return EXIT_OK;
}

int cmd_node(int argc, char **argv)
{
	struct daemon_args d = {0};
	struct loop_thread lt = {0};
	char err[512];
	sigset_t set;
	struct node_agent *n;
	int rc;

	if (parse_daemon_args("node", argc, argv, &d) < 0)
		return daemon_args_free(&d), EXIT_USAGE;
	log_set_tag("node");
	if (d.node.simulate > 0) {
		rc = run_simulator(&d);
		daemon_args_free(&d);
		return rc;
	}
	signals_block(&set);
	loop_init(&lt, "node", node_on_stop);
	if (!(n = node_create(lt.base, &d.node, err, sizeof err))) {
		fprintf(stderr, "microvim node: %s\n", err);
		loop_free(&lt);
		daemon_args_free(&d);
		return EXIT_FAILED;
	}
	lt.daemon = n;
	loop_start(&lt);
	log_info("stopping on %s", strsignal(wait_for_signal(&set)));
	loop_stop_and_join(&lt);
	node_destroy(n);
	event_base_free(lt.base);
	daemon_args_free(&d);
	return EXIT_OK;
}

int cmd_dev(int argc, char **argv)
{
	struct daemon_args d = {0};
	struct loop_thread core_lt = {0}, node_lt = {0};
	char err[512], node_dir[4200];
	sigset_t set;
	struct core *c;
	struct node_agent *n;
	int rc = EXIT_FAILED;

	if (parse_daemon_args("dev", argc, argv, &d) < 0)
		return daemon_args_free(&d), EXIT_USAGE;
	if (d.core.data_dir == NULL || strcmp(d.core.data_dir, "/var/lib/microvim/core") == 0) {
		snprintf(d.data_dir_buf, sizeof d.data_dir_buf, "%s/microvim-dev-XXXXXX", getenv("TMPDIR") ?: "/tmp");
		if (!mkdtemp(d.data_dir_buf))
			fatal("mkdtemp %s", d.data_dir_buf);
		d.core.data_dir = d.data_dir_buf;
		d.temp_data_dir = true;
	}
	snprintf(node_dir, sizeof node_dir, "%s/node", d.core.data_dir);
	d.node.data_dir = node_dir;
	d.node.stop_instances_on_exit = true;
	d.node.remove_run_dir = true; /* dev stops every instance at exit: nothing in it outlives dev */
	log_set_tag("dev");
	signals_block(&set);
	loop_init(&core_lt, "core", core_on_stop);
	loop_init(&node_lt, "node", node_on_stop);
	if (!(c = core_create(core_lt.base, &d.core, err, sizeof err))) {
		fprintf(stderr, "microvim dev: %s\n", err);
		goto out;
	}
	d.node.core_url = core_url(c);
	if (!d.node.name)
		d.node.name = "dev";
	if (!(n = node_create(node_lt.base, &d.node, err, sizeof err))) {
		fprintf(stderr, "microvim dev: %s\n", err);
		core_destroy(c);
		goto out;
	}
	node_lt.daemon = n;
	core_lt.daemon = c;
	loop_start(&core_lt);
	loop_start(&node_lt);
	printf("microvim dev: core at %s, data in %s (Ctrl-C stops everything)\n", core_url(c), d.core.data_dir);
	fflush(stdout);
	log_info("stopping on %s", strsignal(wait_for_signal(&set)));
	/* The node first, so that the core hears every instance stop. */
	loop_stop_and_join(&node_lt);
	node_destroy(n);
	loop_stop_and_join(&core_lt);
	core_destroy(c);
	rc = EXIT_OK;
out:
	if (rc != EXIT_OK) {
		loop_free(&core_lt);
		loop_free(&node_lt);
	} else {
		event_base_free(core_lt.base);
		event_base_free(node_lt.base);
	}
	if (d.temp_data_dir && fs_remove_tree(d.core.data_dir) < 0)
		log_warnx("could not remove %s", d.core.data_dir);
	daemon_args_free(&d);
	return rc;
}
