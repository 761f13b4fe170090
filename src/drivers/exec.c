/* exec — a Micro-VNF as a plain process. posix_spawn, never a shell; the executable must
 * be on the node's --exec-allow list (like Nomad's raw_exec, it runs as the node's user,
 * root on a compute host). The process leads its own session so the node's terminal
 * signals never reach it, and it starts with default signal dispositions and mask. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>

#include "common/log.h"
#include "drivers/driver.h"
#include "drivers/proc.h"

static bool exec_allowed(const struct drv_options *o, const char *path)
{
	for (int i = 0; o->exec_allow && o->exec_allow[i]; i++)
		if (strcmp(o->exec_allow[i], path) == 0)
			return true;
	return false;
}

static int exec_probe(const struct drv_options *o, json_t **info, char *err, size_t errlen)
{
	struct utsname u;
	json_t *allow;
	if (!o->exec_allow || !o->exec_allow[0]) {
		snprintf(err, errlen, "exec is off: start the node with --exec-allow PATH[,PATH...]");
		return -ENOTSUP;
	}
	uname(&u);
	allow = json_array();
	for (int i = 0; o->exec_allow[i]; i++)
		json_array_append_new(allow, json_string(o->exec_allow[i]));
	*info = json_pack("{s:s, s:o}", "version", u.release, "allow", allow);
	return 0;
}

/* argv and envp from the spec: [command, args...] and the spec's env plus a minimal base. */
static int build_vectors(const struct drv_start_request *r, const char *command, char ***argv_out, char ***envp_out)
{
	const json_t *cfg = json_object_get(r->spec, "config");
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

static int exec_start(const struct drv_options *o, const struct drv_start_request *r, struct drv_handle *h,
                      char *err, size_t errlen)
{
	const char *command = json_string_value(json_object_get(json_object_get(r->spec, "config"), "command"));
	char **argv, **envp;
	int rc;

	if (!command || !exec_allowed(o, command)) {
		snprintf(err, errlen, "%s is not on this node's --exec-allow list", command ? command : "(none)");
		return -EPERM;
	}
	build_vectors(r, command, &argv, &envp);
	struct proc_spawn_request sr = {
		.path = command, .argv = argv, .envp = envp, .fds = {-1, r->stdout_fd, r->stderr_fd},
		.dir = r->dir, .netns = r->netns,
	};
	rc = proc_spawn(&sr, h, err, errlen);
	free_vector(argv);
	free_vector(envp);
	return rc;
}

const struct driver driver_exec = {
	.name = "exec",
	.probe = exec_probe,
	.start = exec_start,
	.signal = proc_signal,
	.reap = proc_reap,
	.recover = proc_recover,
	.adopt = proc_adopt,
};
