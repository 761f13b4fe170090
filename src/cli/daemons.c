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
#include "common/fs.h"
#include "common/log.h"
#include "common/model.h"
#include "core/core.h"
#include "node/node.h"

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
	lt->tag = tag;
	lt->on_stop = on_stop;
	if (!(lt->base = event_base_new()))
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

/* ---- option parsing shared by the three daemons ---- */

static uid_t chown_uid;
static gid_t chown_gid;

struct daemon_args {
	struct core_options core;
	struct node_options node;
	char *exec_allow_buf;
	char **exec_allow;
	const char *bridges[17];
	int n_bridges;
	json_t *labels;
	bool temp_data_dir;
	char data_dir_buf[4096];
	const char *user; /* core: drop root for this user */
};

enum { OPT_LISTEN = 256, OPT_DATA_DIR, OPT_TOKEN_FILE, OPT_CPU_RATIO, OPT_SCHEDULE, OPT_HB_TIMEOUT, OPT_CORE,
       OPT_NAME, OPT_LABEL, OPT_EXEC_ALLOW, OPT_STOP_GRACE, OPT_STOP_ON_EXIT, OPT_BRIDGE, OPT_IMAGE_CACHE,
       OPT_NOTIFY_BATCH, OPT_QEMU, OPT_LIBVIRT_URI, OPT_XL, OPT_RUN_DIR, OPT_USER, OPT_MAX_RATE,
       OPT_MAX_INFLIGHT, OPT_MAX_CONNS, OPT_READ_TIMEOUT, OPT_XENSTORE, OPT_XEN_CONSOLE_DIR };

static const struct option daemon_options[] = {
	{"listen", required_argument, NULL, OPT_LISTEN},
	{"data-dir", required_argument, NULL, OPT_DATA_DIR},
	{"token-file", required_argument, NULL, OPT_TOKEN_FILE},
	{"cpu-ratio", required_argument, NULL, OPT_CPU_RATIO},
	{"schedule", required_argument, NULL, OPT_SCHEDULE},
	{"heartbeat-timeout", required_argument, NULL, OPT_HB_TIMEOUT},
	{"core", required_argument, NULL, OPT_CORE},
	{"name", required_argument, NULL, OPT_NAME},
	{"label", required_argument, NULL, OPT_LABEL},
	{"exec-allow", required_argument, NULL, OPT_EXEC_ALLOW},
	{"stop-grace", required_argument, NULL, OPT_STOP_GRACE},
	{"stop-instances-on-exit", no_argument, NULL, OPT_STOP_ON_EXIT},
	{"bridge", required_argument, NULL, OPT_BRIDGE},
	{"image-cache", required_argument, NULL, OPT_IMAGE_CACHE},
	{"notify-batch-ms", required_argument, NULL, OPT_NOTIFY_BATCH},
	{"qemu", required_argument, NULL, OPT_QEMU},
	{"libvirt-uri", required_argument, NULL, OPT_LIBVIRT_URI},
	{"xl", required_argument, NULL, OPT_XL},
	{"run-dir", required_argument, NULL, OPT_RUN_DIR},
	{"user", required_argument, NULL, OPT_USER},
	{"max-rate", required_argument, NULL, OPT_MAX_RATE},
	{"max-inflight", required_argument, NULL, OPT_MAX_INFLIGHT},
	{"max-conns-per-addr", required_argument, NULL, OPT_MAX_CONNS},
	{"read-timeout", required_argument, NULL, OPT_READ_TIMEOUT},
	{"xenstore", required_argument, NULL, OPT_XENSTORE},
	{"xen-console-dir", required_argument, NULL, OPT_XEN_CONSOLE_DIR},
	{"verbose", no_argument, NULL, 'v'},
	{NULL, 0, NULL, 0},
};

static int parse_double(const char *s, double min, double max, double *out)
{
	char *end;
	errno = 0;
	*out = strtod(s, &end);
	return errno || end == s || *end || *out < min || *out > max ? -1 : 0;
}

#define MAX_INFLIGHT_MAX 10000000 /* ~20 GiB of instance records: far past any real need */

/* A whole number 0..max in decimal digits only (no sign, no fraction, no spaces). */
static int parse_count(const char *s, int64_t max, int64_t *out)
{
	char *end;
	long long v;
	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || *end || v > max)
		return -1;
	*out = v;
	return 0;
}

static int parse_exec_allow(struct daemon_args *d, const char *list)
{
	int n = 1;
	char *save = NULL, *tok;
	for (const char *p = list; *p; p++)
		n += *p == ',';
	free(d->exec_allow_buf);
	free(d->exec_allow);
	d->exec_allow_buf = strdup(list);
	d->exec_allow = calloc((size_t)n + 1, sizeof *d->exec_allow);
	if (!d->exec_allow_buf || !d->exec_allow)
		fatal("alloc");
	n = 0;
	for (tok = strtok_r(d->exec_allow_buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (tok[0] != '/') {
			fprintf(stderr, "microvim: --exec-allow takes absolute paths; \"%s\" is not one\n", tok);
			return -1;
		}
		if (access(tok, X_OK) != 0)
			fprintf(stderr, "microvim: warning: --exec-allow %s: %s\n", tok, strerror(errno));
		d->exec_allow[n++] = tok;
	}
	return 0;
}

static int parse_label(struct daemon_args *d, const char *kv)
{
	const char *eq = strchr(kv, '=');
	char key[MV_NAME_MAX + 2];
	if (!eq || eq == kv || (size_t)(eq - kv) > MV_NAME_MAX) {
		fprintf(stderr, "microvim: --label takes KEY=VALUE\n");
		return -1;
	}
	memcpy(key, kv, (size_t)(eq - kv));
	key[eq - kv] = '\0';
	if (!name_valid(key) || !label_value_valid(eq + 1)) {
		fprintf(stderr, "microvim: --label %s: key [A-Za-z0-9._-]{1,63}, value printable up to 255\n", kv);
		return -1;
	}
	json_object_set_new(d->labels, key, json_string(eq + 1));
	return 0;
}

/* Which daemon an option is for. `dev` runs both and takes both, except what has no
 * meaning in one process (--core, --user: dev talks to its own core and stays as it is). */
enum { FOR_CORE = 1, FOR_NODE = 2, FOR_BOTH = 3 };

static int option_owner(int opt)
{
	switch (opt) {
	case OPT_DATA_DIR: case OPT_TOKEN_FILE: case 'v':
		return FOR_BOTH;
	case OPT_LISTEN: case OPT_CPU_RATIO: case OPT_SCHEDULE: case OPT_HB_TIMEOUT: case OPT_USER:
	case OPT_MAX_RATE: case OPT_MAX_INFLIGHT: case OPT_MAX_CONNS: case OPT_READ_TIMEOUT:
		return FOR_CORE;
	default:
		return FOR_NODE;
	}
}

/* An option another daemon takes is refused rather than ignored: `node --max-rate 5`
 * would otherwise look accepted and do nothing. */
static bool option_refused(const char *cmd, int opt)
{
	int owner = option_owner(opt);
	const char *name = opt >= OPT_LISTEN ? daemon_options[opt - OPT_LISTEN].name : "?";
	bool dev = strcmp(cmd, "dev") == 0;

	if (dev ? (opt == OPT_CORE || opt == OPT_USER)
	        : !(owner & (strcmp(cmd, "core") == 0 ? FOR_CORE : FOR_NODE))) {
		fprintf(stderr, "microvim %s: --%s is not an option of `microvim %s`%s (see microvim %s --help)\n", cmd,
		        name, cmd, dev ? "" : owner == FOR_CORE ? " but of `microvim core`" : " but of `microvim node`",
		        cmd);
		return true;
	}
	return false;
}

static int parse_daemon_args(const char *cmd, int argc, char **argv, struct daemon_args *d)
{
	int opt, sched;
	double v;
	int64_t n;
	core_options_default(&d->core);
	node_options_default(&d->node);
	d->labels = json_object();
	optind = 1;
	while ((opt = getopt_long(argc, argv, "v", daemon_options, NULL)) != -1) {
		if (opt >= OPT_LISTEN && option_refused(cmd, opt))
			return -1;
		switch (opt) {
		case OPT_LISTEN: d->core.listen = optarg; break;
		case OPT_DATA_DIR: d->core.data_dir = d->node.data_dir = optarg; break;
		case OPT_TOKEN_FILE: d->core.token_file = d->node.token_file = optarg; break;
		case OPT_CPU_RATIO:
			if (parse_double(optarg, 0.01, 1000, &d->core.cpu_ratio) < 0)
				goto bad_value;
			break;
		case OPT_SCHEDULE:
			if ((sched = sched_policy_parse(optarg)) < 0)
				goto bad_value;
			d->core.policy = (enum sched_policy)sched;
			break;
		case OPT_HB_TIMEOUT:
			if (parse_double(optarg, 1, 3600, &v) < 0)
				goto bad_value;
			d->core.heartbeat_timeout_s = (int)v;
			break;
		case OPT_CORE: d->node.core_url = optarg; break;
		case OPT_NAME: d->node.name = optarg; break;
		case OPT_LABEL:
			if (parse_label(d, optarg) < 0)
				return -1;
			break;
		case OPT_EXEC_ALLOW:
			if (parse_exec_allow(d, optarg) < 0)
				return -1;
			break;
		case OPT_STOP_GRACE:
			if (parse_double(optarg, 0, 3600, &d->node.stop_grace_s) < 0)
				goto bad_value;
			break;
		case OPT_STOP_ON_EXIT: d->node.stop_instances_on_exit = true; break;
		case OPT_BRIDGE:
			if (d->n_bridges == 16 || strlen(optarg) > MV_BRIDGE_MAX || !name_valid(optarg))
				goto bad_value;
			d->bridges[d->n_bridges++] = optarg;
			break;
		case OPT_IMAGE_CACHE:
			if (strcmp(optarg, "on") != 0 && strcmp(optarg, "off") != 0)
				goto bad_value;
			d->node.image_cache_off = strcmp(optarg, "off") == 0;
			break;
		case OPT_NOTIFY_BATCH:
			if (parse_double(optarg, 0, 60000, &v) < 0)
				goto bad_value;
			d->node.notify_batch_ms = (int)v;
			break;
		case OPT_QEMU: d->node.qemu_binary = optarg; break;
		case OPT_LIBVIRT_URI: d->node.libvirt_uri = optarg; break;
		case OPT_XL: d->node.xl_binary = optarg; break;
		case OPT_XENSTORE: d->node.xenstore_binary = optarg; break;
		case OPT_XEN_CONSOLE_DIR: d->node.xen_console_dir = optarg; break;
		case OPT_RUN_DIR: d->node.run_dir = optarg; break;
		case OPT_USER: d->user = optarg; break;
		case OPT_MAX_RATE:
			if (parse_double(optarg, 0, 1e9, &d->core.max_rate) < 0)
				goto bad_value;
			break;
		case OPT_MAX_INFLIGHT:
			if (parse_count(optarg, MAX_INFLIGHT_MAX, &d->core.max_inflight) < 0) {
				fprintf(stderr, "microvim %s: --max-inflight \"%s\": give a whole number of instances, "
				        "0-%d (0: no limit; default %d)\n", cmd, optarg, MAX_INFLIGHT_MAX,
				        CORE_MAX_INFLIGHT_DEFAULT);
				return -1;
			}
			break;
		case OPT_MAX_CONNS:
			if (parse_count(optarg, 1000000, &n) < 0) {
				fprintf(stderr, "microvim %s: --max-conns-per-addr \"%s\": give a whole number of "
				        "connections, 0-1000000 (0: no limit)\n", cmd, optarg);
				return -1;
			}
			d->core.max_conns_per_addr = (int)n;
			break;
		case OPT_READ_TIMEOUT:
			if (parse_count(optarg, 3600, &n) < 0 || n == 0) {
				fprintf(stderr, "microvim %s: --read-timeout \"%s\": give whole seconds, 1-3600\n", cmd,
				        optarg);
				return -1;
			}
			d->core.read_timeout_s = (int)n;
			break;
		case 'v': log_set_verbose(true); break;
		default: cli_usage(cmd, 1); return -1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "microvim %s: unexpected argument \"%s\"\n", cmd, argv[optind]);
		return -1;
	}
	d->node.labels = d->labels;
	d->node.bridges = d->bridges;
	d->node.exec_allow = (const char *const *)d->exec_allow;
	return 0;
bad_value:
	fprintf(stderr, "microvim %s: invalid value \"%s\" for --%s\n", cmd, optarg,
	        daemon_options[opt - OPT_LISTEN].name);
	return -1;
}

static void daemon_args_free(struct daemon_args *d)
{
	free(d->exec_allow_buf);
	free(d->exec_allow);
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

int cmd_node(int argc, char **argv)
{
	struct daemon_args d = {0};
	struct loop_thread lt = {0};
	char err[512];
	sigset_t set;
	struct node_agent *n;

	if (parse_daemon_args("node", argc, argv, &d) < 0)
		return daemon_args_free(&d), EXIT_USAGE;
	log_set_tag("node");
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
