/* exec — a Micro-VNF as a plain process, never through a shell; the executable must be on
 * the node's --exec-allow list. The process leads its own session so the node's terminal
 * signals never reach it, and it starts with default signal dispositions and mask.
 * Like Nomad's exec driver, where the host has cgroups (cgroup.h) each instance runs in a
 * group of its own holding it to its vCPUs and memory, joined before it executes
 * (confine.h); with --exec-user it runs as that user rather than the node's (root on a
 * compute host). Without either it is posix_spawn'ed as Nomad's raw_exec would. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "common/log.h"
#include "drivers/cgroup.h"
#include "drivers/confine.h"
#include "drivers/driver.h"
#include "drivers/proc.h"

/* {"command": "/abs/path", "args": ["..."], "env": {"K": "V"}} */
static int exec_args_check(const json_t *args, struct mv_error *err)
{
	size_t i;
	json_t *a;
	if (!json_is_array(args))
		return mv_fail(err, 400, "invalid_type", "config.args must be an array of strings");
	if (json_array_size(args) > MV_ARGS_MAX)
		return mv_fail(err, 400, "invalid_value", "config.args has more than %d entries", MV_ARGS_MAX);
	json_array_foreach(args, i, a) {
		if (mv_check_string(a, "config.args[]", MV_STRING_MAX, err) < 0)
			return -1;
	}
	return 0;
}

static int exec_env_check(const json_t *env, struct mv_error *err)
{
	const char *k;
	json_t *v;
	if (!json_is_object(env))
		return mv_fail(err, 400, "invalid_type", "config.env must be an object of strings");
	if (json_object_size(env) > MV_ENV_MAX)
		return mv_fail(err, 400, "invalid_value", "config.env has more than %d entries", MV_ENV_MAX);
	json_object_foreach((json_t *)env, k, v) {
		if (k[0] == '\0' || strchr(k, '=') || strlen(k) > 255)
			return mv_fail(err, 400, "invalid_value", "config.env key \"%.64s\" must be 1-255 bytes without '='",
			               k);
		if (mv_check_string(v, "config.env value", MV_STRING_MAX, err) < 0)
			return -1;
	}
	return 0;
}

static int exec_config_check(const json_t *cfg, const char **executable, struct mv_error *err)
{
	static const char *const fields[] = {"command", "args", "env", NULL};
	const json_t *cmd, *args, *env;
	if (!cfg)
		return mv_fail(err, 400, "missing_field",
		               "driver exec needs config: {\"command\": \"/absolute/path\", \"args\": [...]}");
	if (!json_is_object(cfg))
		return mv_fail(err, 400, "invalid_type",
		               "config must be an object {\"command\": \"/absolute/path\", \"args\": [...]}");
	if (mv_check_fields(cfg, "config.", fields, err) < 0)
		return -1;
	if (!(cmd = json_object_get(cfg, "command")))
		return mv_fail(err, 400, "missing_field", "config.command is required (an absolute path)");
	if (mv_check_string(cmd, "config.command", MV_STRING_MAX, err) < 0)
		return -1;
	if (json_string_value(cmd)[0] != '/')
		return mv_fail(err, 400, "invalid_value", "config.command must be an absolute path (no shell, no PATH lookup)");
	if ((args = json_object_get(cfg, "args")) && exec_args_check(args, err) < 0)
		return -1;
	if ((env = json_object_get(cfg, "env")) && exec_env_check(env, err) < 0)
		return -1;
	*executable = json_string_value(cmd);
	return 0;
}

/* What holds its instances, for the core and `microvim nodes`:
 * {"cgroups": "v1"|"v2"|"off", "why": "..." (off), "user": NAME (--exec-user)}. */
static json_t *limits_info(const struct drv_options *o)
{
	const struct cgroup_host *c = o->cgroups;
	json_t *j = json_pack("{s:s}", "cgroups", cgroup_mode_name(c ? c->mode : CGROUP_OFF));
	if (!c || c->mode == CGROUP_OFF)
		json_object_set_new(j, "why", json_string(c ? c->why : "not set up by the node"));
	if (o->exec_user)
		json_object_set_new(j, "user", json_string(o->exec_user->name));
	return j;
}

static int exec_probe(const struct drv_options *o, json_t **info, char *err, size_t errlen)
{
	struct utsname u;
	json_t *allow;
	if (!o->exec_allow || o->exec_allow->n == 0) {
		snprintf(err, errlen, "exec is off: start the node with --exec-allow PATH[,PATH...]");
		return -ENOTSUP;
	}
	uname(&u);
	allow = exec_allow_to_json(o->exec_allow);
	*info = json_pack("{s:s, s:o, s:o}", "version", u.release, "allow", allow, "limits", limits_info(o));
	return 0;
}

/* argv and envp from the spec: [command, args...] and the spec's env plus a minimal base. */
static int build_vectors(const struct drv_start_request *r, const char *command, char ***argv_out, char ***envp_out)
{
	const json_t *cfg = r->config;
	const json_t *args = json_object_get(cfg, "args"), *env = json_object_get(cfg, "env"), *v;
	size_t nargs = json_array_size(args), nenv = json_object_size(env), i, k = 0;
	char **argv = calloc(nargs + 2, sizeof *argv), **envp = calloc(nenv + 4, sizeof *envp);
	const char *key;

	if (!argv || !envp)
		fatal("calloc");
	argv[0] = strdup(command);
	json_array_foreach(args, i, v)
		argv[i + 1] = strdup(json_string_value(v));
	if (asprintf(&envp[k++], "PATH=/usr/local/bin:/usr/bin:/bin") < 0 ||
	    asprintf(&envp[k++], "MICROVIM_INSTANCE_ID=%s", r->instance_id) < 0 ||
	    asprintf(&envp[k++], "MICROVIM_INSTANCE_NAME=%s", r->name) < 0)
		fatal("asprintf");
	json_object_foreach((json_t *)env, key, v) {
		if (asprintf(&envp[k++], "%s=%s", key, json_string_value(v)) < 0)
			fatal("asprintf");
	}
	*argv_out = argv;
	*envp_out = envp;
	return 0;
}

static void free_vector(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}

static bool limited(const struct drv_options *o)
{
	return o->cgroups && o->cgroups->mode != CGROUP_OFF;
}

static int exec_start(const struct drv_options *o, const struct drv_start_request *r, struct drv_handle *h,
                      char *err, size_t errlen)
{
	const char *command = json_string_value(json_object_get(r->config, "command"));
	char **argv, **envp;
	int rc;

	if (!command || !exec_allow_contains(o->exec_allow, command)) {
		snprintf(err, errlen, "%s is not on this node's --exec-allow list", command ? command : "(none)");
		return -EPERM;
	}
	struct proc_spawn_request sr = {
		.path = command, .fds = {-1, r->stdout_fd, r->stderr_fd}, .dir = r->dir, .netns = r->netns,
		.user = o->exec_user, .hold_fd = r->hold_fd,
	};
	char procs[2][PATH_MAX];
	if (limited(o)) {
		struct cgroup_limits l;
		cgroup_limits_from(r->vcpus, r->memory_mb, &l);
		if ((rc = cgroup_create(o->cgroups, r->instance_id, &l, err, errlen)) < 0 ||
		    (rc = cgroup_procs_paths(o->cgroups, r->instance_id, procs)) < 0) {
			if (rc == -ENAMETOOLONG)
				snprintf(err, errlen, "cgroup path too long");
			return rc;
		}
		sr.cgroup_procs[0] = procs[0];
		sr.cgroup_procs[1] = procs[1];
	}
	/* its own dir is its working dir: the user it runs as may write there (as Nomad gives
	 * a task its dir); the node's dirs above stay the node's */
	if (o->exec_user && r->dir && chown(r->dir, o->exec_user->uid, o->exec_user->gid) < 0) {
		rc = -errno;
		snprintf(err, errlen, "cannot give %s to user %s: %s", r->dir, o->exec_user->name, strerror(-rc));
		if (limited(o))
			cgroup_remove(o->cgroups, r->instance_id);
		return rc;
	}
	build_vectors(r, command, &argv, &envp);
	sr.argv = argv;
	sr.envp = envp;
	drv_config_done(r);
	if ((rc = proc_spawn(&sr, h, err, errlen)) < 0 && limited(o))
		cgroup_remove(o->cgroups, r->instance_id);
	free_vector(argv);
	free_vector(envp);
	return rc;
}

/* Forced: what is left in its group dies, unthrottled (cgroup.h). */
static void exec_force_end(const struct drv_options *o, const char *instance_id)
{
	int rc;
	if (limited(o) && (rc = cgroup_kill(o->cgroups, instance_id)) < 0 && rc != -ENOENT)
		log_warnx("instance %s: cannot lift its CPU quota for its end: %s", instance_id, strerror(-rc));
}

/* The group goes with the instance; a kill for its memory is the cause of its end. */
static void exec_release(const struct drv_options *o, const char *instance_id, char *why, size_t whylen)
{
	int rc;
	if (!limited(o))
		return;
	if (cgroup_oom_killed(o->cgroups, instance_id) == 1)
		snprintf(why, whylen, "oom: killed by the kernel for going over its memory (resources.memory_mb)");
	/* a process still dying in it keeps it busy: the sweep at the node's next start takes it */
	if ((rc = cgroup_remove(o->cgroups, instance_id)) < 0)
		log_info("instance %s: its cgroup stays for now: %s", instance_id, strerror(-rc));
}

const struct driver driver_exec = {
	.name = "exec",
	.boots_image = false,
	.network = DRV_NET_NETNS,
	.config_check = exec_config_check,
	.probe = exec_probe,
	.start = exec_start,
	.force_end = exec_force_end,
	.signal = proc_signal,
	.reap = proc_reap,
	.recover = proc_recover,
	.adopt = proc_adopt,
	.release = exec_release,
};
