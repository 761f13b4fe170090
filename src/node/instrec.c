#include "node/instrec.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "common/fs.h"
#include "common/log.h"
#include "common/wire.h"

#define RECORD_MAX (1 << 20)

int instrec_write(const char *dir, const struct instrec *r)
{
	char path[4200];
	const char *state = r->state == INSTREC_SPAWNING ? "spawning"
	                    : r->state == INSTREC_RUNNING ? "running"
	                                                  : inst_state_names[r->ended_as];
	json_t *j = json_pack("{s:s, s:s, s:o, s:i, s:I, s:s, s:s, s:s, s:s, s:b, s:s}", "id", r->id, "name",
	                      r->spec.name, "spec", spec_to_json(&r->spec), "pid", (int)r->h.pid, "start_time",
	                      (json_int_t)r->h.start_time, "domain", r->h.domain, "control", r->h.control, "tap", r->tap,
	                      "netns", r->netns, "ready", r->ready, "state", state);
	char *text;
	int rc;
	if (r->has_exit_code)
		json_object_set_new(j, "exit_code", json_integer(r->exit_code));
	if (r->run)
		json_object_set_new(j, "run", json_integer(r->run));
	if (r->error[0])
		json_object_set_new(j, "error", json_string(r->error));
	text = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	if (!text)
		return -ENOMEM;
	if (snprintf(path, sizeof path, "%s/record.json", dir) >= (int)sizeof path)
		rc = -ENAMETOOLONG;
	else
		rc = fs_write_atomic(path, text, strlen(text), false);
	free(text);
	return rc;
}

static int hold_path(const char *dir, char *path, size_t len)
{
	return snprintf(path, len, "%s/spawning.lock", dir) >= (int)len ? -ENAMETOOLONG : 0;
}

int instrec_hold_take(const char *dir)
{
	char path[4200];
	int fd, rc;
	if ((rc = hold_path(dir, path, sizeof path)) < 0)
		return rc;
	if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0)
		return -errno;
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) { /* a child of a previous start still holds it */
		rc = -errno;
		close(fd);
		return rc;
	}
	return fd;
}

int instrec_hold_wait(const char *dir, int timeout_ms)
{
	char path[4200];
	const struct timespec step = {.tv_nsec = 5 * 1000 * 1000};
	int fd, rc = -ETIMEDOUT;
	if (hold_path(dir, path, sizeof path) < 0 || (fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return 0; /* none: the node stopped before it took one (or an older node wrote this record) */
	for (int waited = 0; waited <= timeout_ms; waited += 5) {
		if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
			flock(fd, LOCK_UN);
			rc = 0;
			break;
		}
		if (errno != EWOULDBLOCK && errno != EINTR) {
			rc = -errno;
			break;
		}
		nanosleep(&step, NULL);
	}
	close(fd);
	return rc;
}

static void copy_string(char *dst, size_t len, const json_t *v) { snprintf(dst, len, "%s", json_string_value(v) ?: ""); }

int instrec_read(const char *dir, struct instrec *r)
{
	char path[4200], *text = NULL;
	const char *state;
	struct mv_error err;
	json_t *j;
	int rc, st;

	memset(r, 0, sizeof *r);
	r->h.pidfd = -1;
	if (snprintf(path, sizeof path, "%s/record.json", dir) >= (int)sizeof path)
		return -ENAMETOOLONG;
	if ((rc = fs_read_file(path, RECORD_MAX, &text, NULL)) < 0)
		return rc;
	j = json_loads(text, 0, NULL);
	free(text);
	state = json_string_value(json_object_get(j, "state"));
	if (!state || spec_decode(&r->spec, json_object_get(j, "spec"), SPEC_STORED, &err) < 0) {
		json_decref(j);
		return -EINVAL;
	}
	copy_string(r->id, sizeof r->id, json_object_get(j, "id"));
	if (strcmp(state, "spawning") == 0) {
		r->state = INSTREC_SPAWNING;
	} else if (strcmp(state, "running") == 0) {
		r->state = INSTREC_RUNNING;
	} else {
		r->state = INSTREC_ENDED;
		st = inst_state_parse(state);
		r->ended_as = st >= 0 && inst_state_terminal((enum inst_state)st) ? (enum inst_state)st : INST_EXITED;
	}
	r->h.pid = (pid_t)json_integer_value(json_object_get(j, "pid"));
	r->h.start_time = (unsigned long long)json_integer_value(json_object_get(j, "start_time"));
	copy_string(r->h.domain, sizeof r->h.domain, json_object_get(j, "domain"));
	copy_string(r->h.control, sizeof r->h.control, json_object_get(j, "control"));
	copy_string(r->tap, sizeof r->tap, json_object_get(j, "tap"));
	copy_string(r->netns, sizeof r->netns, json_object_get(j, "netns"));
	r->ready = json_is_true(json_object_get(j, "ready"));
	if (json_is_integer(json_object_get(j, "exit_code"))) {
		r->has_exit_code = true;
		r->exit_code = (int)json_integer_value(json_object_get(j, "exit_code"));
	}
	copy_string(r->error, sizeof r->error, json_object_get(j, "error"));
	if (json_integer_value(json_object_get(j, "run")) > 0 && json_integer_value(json_object_get(j, "run")) <= WIRE_RUN_MAX)
		r->run = (uint32_t)json_integer_value(json_object_get(j, "run"));
	json_decref(j);
	return 0;
}
