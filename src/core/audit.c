/* audit — JSON lines of mutating requests (audit.h). */
#include "core/audit.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/hmap.h"
#include "common/http.h"
#include "common/log.h"
#include "core/events.h"

#define WARN_EVERY_US (60 * 1000000LL)

struct audit {
	int fd;
	struct events *events;
	struct hmap pending; /* "%p" of a request answered later -> struct pending */
	int64_t last_warn_us;
};

/* The line of a request answered later, without its result yet. */
struct pending {
	char key[32];
	json_t *line;
};

struct audit *audit_open(const char *data_dir, struct events *events, char *err, size_t errlen)
{
	char path[4096];
	struct audit *a;
	if (snprintf(path, sizeof path, "%s/%s", data_dir, AUDIT_FILE) >= (int)sizeof path) {
		snprintf(err, errlen, "--data-dir path too long");
		return NULL;
	}
	if (!(a = calloc(1, sizeof *a)))
		fatal("calloc");
	if ((a->fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600)) < 0) {
		snprintf(err, errlen, "cannot open the audit log %s: %s", path, strerror(errno));
		free(a);
		return NULL;
	}
	a->events = events;
	hmap_init(&a->pending);
	return a;
}

void audit_close(struct audit *a)
{
	const char *k;
	void *v;
	if (!a)
		return;
	for (size_t i = 0; hmap_next(&a->pending, &i, &k, &v);) {
		json_decref(((struct pending *)v)->line);
		free(v);
	}
	hmap_free(&a->pending);
	if (a->fd >= 0 && close(a->fd) < 0)
		log_warn("audit log: close");
	free(a);
}

/* Writes the line (one write: O_APPEND keeps lines whole) and publishes it. Steals e. */
static void emit(struct audit *a, json_t *e, int status)
{
	char *line;
	size_t len;
	json_object_set_new(e, "status", status ? json_integer(status) : json_null());
	if ((line = json_dumps(e, HTTP_JSON_FLAGS))) {
		len = strlen(line);
		line[len] = '\n'; /* json_dumps's NUL becomes the newline; the length says where it ends */
		if (write(a->fd, line, len + 1) != (ssize_t)(len + 1) && clock_mono_us() - a->last_warn_us > WARN_EVERY_US) {
			log_warn("audit log: write");
			a->last_warn_us = clock_mono_us();
		}
		free(line);
	}
	events_publish_audit(a->events, e);
	json_decref(e);
}

static void request_key(struct evhttp_request *req, char *buf, size_t len) { snprintf(buf, len, "%p", (void *)req); }

void audit_request(struct audit *a, struct evhttp_request *req, const char *route, const char *id,
                   const struct authz_principal *who)
{
	static const char *const kinds[] = {[AUTHZ_OPEN] = "open", [AUTHZ_CLUSTER] = "token-file", [AUTHZ_USER] = "user",
	                                    [AUTHZ_JOIN] = "join-token", [AUTHZ_NODE] = "node"};
	char when[40];
	int status = evhttp_request_get_response_code(req);
	struct pending *p, *old;
	json_t *e;

	clock_iso8601(clock_wall_us(), when, sizeof when);
	e = json_pack("{s:s, s:s, s:s, s:s}", "time", when, "method",
	              http_method_name(evhttp_request_get_command(req)), "route", route, "path", http_path(req));
	if (id && id[0])
		json_object_set_new(e, "id", json_string(id));
	if (who && authz_is_node(who)) { /* a join token's or a node's: no project, no role */
		json_object_set_new(e, "auth", json_string(kinds[who->kind]));
		if (who->node_id[0])
			json_object_set_new(e, "node", json_string(who->node_id));
		json_object_set_new(e, "token_id", json_string(who->token_id));
	} else if (who) {
		json_object_set_new(e, "auth", json_string(kinds[who->kind]));
		json_object_set_new(e, "project", json_string(who->project));
		json_object_set_new(e, "role", json_string(authz_role_names[who->role]));
		if (who->user[0])
			json_object_set_new(e, "user", json_string(who->user));
		if (who->token_id[0])
			json_object_set_new(e, "token_id", json_string(who->token_id));
	} else {
		json_object_set_new(e, "auth", json_string("none"));
	}
	if (status) {
		emit(a, e, status);
		return;
	}
	if (!(p = calloc(1, sizeof *p)))
		fatal("calloc");
	request_key(req, p->key, sizeof p->key);
	p->line = e;
	if ((old = hmap_remove(&a->pending, p->key))) { /* a request freed unanswered had this address */
		json_object_set_new(old->line, "unanswered", json_true());
		emit(a, old->line, 0);
		free(old);
	}
	hmap_put(&a->pending, p->key, p);
}

void audit_replied(struct audit *a, struct evhttp_request *req)
{
	char key[32];
	struct pending *p;
	if (!a || hmap_size(&a->pending) == 0)
		return;
	request_key(req, key, sizeof key);
	if (!(p = hmap_remove(&a->pending, key)))
		return;
	emit(a, p->line, evhttp_request_get_response_code(req));
	free(p);
}
