/* tenantapi — /v1/projects, /v1/users, /v1/tokens (Keystone's names): the routes over
 * tenants.c. A password is hashed or checked off the loop (offload.h); everything else is
 * answered at once. A token's clear text is in one reply only, and never in a log. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/http.h"
#include "common/log.h"
#include "common/secret.h"
#include "core/api.h"
#include "core/cluster.h"
#include "core/images.h"
#include "core/offload.h"
#include "core/tenants.h"

#define TOKEN_EXPIRES_DEFAULT_S (24 * 3600)
#define TOKEN_EXPIRES_MAX_S (366 * 24 * 3600)

/* ---- rendering ---- */

static json_t *limit_json(int64_t v, double scale)
{
	if (v == AUTHZ_UNLIMITED)
		return json_null();
	return scale == 1 ? json_integer(v) : json_real((double)v / scale);
}

static json_t *quota_json(const struct authz_quota *q)
{
	return json_pack("{s:o, s:o, s:o}", "instances", limit_json(q->instances, 1), "vcpus",
	                 limit_json(q->vcpus_milli, 1000), "memory_mb", limit_json(q->memory_mb, 1));
}

static json_t *project_json(struct api *a, const struct tenant_project *p)
{
	struct authz_quota used;
	char created[40];
	cluster_project_usage(a->cluster, p->name, &used);
	clock_iso8601(p->created_wall_us, created, sizeof created);
	return json_pack("{s:s, s:o, s:o, s:I, s:s}", "name", p->name, "quota", quota_json(&p->quota), "usage",
	                 quota_json(&used), "images", (json_int_t)images_project_count(a->images, p->name),
	                 "created_at", created);
}

static json_t *user_json(const struct tenant_user *u)
{
	char created[40];
	clock_iso8601(u->created_wall_us, created, sizeof created);
	return json_pack("{s:s, s:s, s:s, s:b, s:s}", "name", u->name, "project", u->project, "role",
	                 authz_role_names[u->role], "password", u->password_hash != NULL, "created_at", created);
}

json_t *api_when_json(int64_t wall_us)
{
	char buf[40];
	if (!wall_us)
		return json_null();
	clock_iso8601(wall_us, buf, sizeof buf);
	return json_string(buf);
}

static json_t *token_json(struct api *a, const struct tenant_token *k)
{
	const struct tenant_user *u = tenants_user(a->tenants, k->user);
	int64_t now = clock_wall_us();
	return json_pack("{s:s, s:s, s:s, s:s, s:o, s:o, s:b, s:b}", "id", k->id, "user", k->user, "project",
	                 u ? u->project : "", "role", u ? authz_role_names[u->role] : "", "created_at",
	                 api_when_json(k->created_wall_us), "expires_at", api_when_json(k->expires_wall_us), "revoked",
	                 k->revoked, "expired", k->expires_wall_us && now >= k->expires_wall_us);
}

/* Lists come in a stable order (the maps have none): by the string field sort_key. */
static const char *sort_key;

static int by_key(const void *a, const void *b)
{
	return strcmp(json_string_value(json_object_get(*(json_t *const *)a, sort_key)) ?: "",
	              json_string_value(json_object_get(*(json_t *const *)b, sort_key)) ?: "");
}

json_t *api_sorted(json_t *list, const char *key)
{
	size_t n = json_array_size(list);
	json_t **items = calloc(n + 1, sizeof *items), *out = json_array();
	if (!items)
		fatal("calloc");
	for (size_t i = 0; i < n; i++)
		items[i] = json_array_get(list, i);
	sort_key = key; /* one loop, no threads here: a file-scope key is enough for qsort */
	qsort(items, n, sizeof *items, by_key);
	for (size_t i = 0; i < n; i++)
		json_array_append(out, items[i]);
	free(items);
	json_decref(list);
	return out;
}

/* ---- body fields ---- */

static int name_field(const json_t *b, const char *field, bool required, const char **out, struct mv_error *err)
{
	const json_t *v = json_object_get(b, field);
	*out = NULL;
	if (!v)
		return required ? mv_fail(err, 400, "missing_field", "%s is required", field) : 0;
	if (!json_is_string(v) || !name_valid(json_string_value(v)))
		return mv_fail(err, 400, "invalid_value", "%s must be 1-%d characters [A-Za-z0-9._-], starting with a "
		               "letter or digit", field, MV_NAME_MAX);
	*out = json_string_value(v);
	return 0;
}

static int object_body(struct evhttp_request *req, const char *const *fields, json_t **out, struct mv_error *err)
{
	if (http_read_json(req, out, err) < 0)
		return -1;
	if (!json_is_object(*out))
		return mv_fail(err, 400, "invalid_type", "the body must be a JSON object");
	return mv_check_fields(*out, "", fields, err);
}

/* A quota limit: absent or null is none (-1); else a number >= 0 (vCPUs may be fractional). */
static int limit_field(const json_t *q, const char *field, double scale, int64_t *out, struct mv_error *err)
{
	const json_t *v = json_object_get(q, field);
	double d;
	*out = AUTHZ_UNLIMITED;
	if (!v || json_is_null(v))
		return 0;
	d = json_number_value(v);
	if (!json_is_number(v) || d < 0 || d > 1e12 || (scale == 1 && !json_is_integer(v)))
		return mv_fail(err, 400, "invalid_value", "quota.%s must be %s >= 0 (or null: no limit)", field,
		               scale == 1 ? "an integer" : "a number");
	*out = (int64_t)(d * scale + 0.5);
	return 0;
}

static int parse_quota(const json_t *b, struct authz_quota *q, struct mv_error *err)
{
	static const char *const fields[] = {"instances", "vcpus", "memory_mb", NULL};
	const json_t *v = json_object_get(b, "quota");
	*q = (struct authz_quota){AUTHZ_UNLIMITED, AUTHZ_UNLIMITED, AUTHZ_UNLIMITED};
	if (!v)
		return 0;
	if (!json_is_object(v))
		return mv_fail(err, 400, "invalid_type", "quota must be an object {\"instances\", \"vcpus\", \"memory_mb\"}");
	if (mv_check_fields(v, "quota.", fields, err) < 0 || limit_field(v, "instances", 1, &q->instances, err) < 0 ||
	    limit_field(v, "vcpus", 1000, &q->vcpus_milli, err) < 0 ||
	    limit_field(v, "memory_mb", 1, &q->memory_mb, err) < 0)
		return -1;
	return 0;
}

/* "24h", "30m", "90s", "7d" or a number of seconds; "never" or 0: no expiry (0 in *out). */
int api_parse_expires(const json_t *v, int64_t default_s, int64_t *out_s, struct mv_error *err)
{
	const char *s;
	char *end;
	double n, unit = 1;
	*out_s = default_s;
	if (!v)
		return 0;
	if (json_is_integer(v) && json_integer_value(v) >= 0 && json_integer_value(v) <= TOKEN_EXPIRES_MAX_S) {
		*out_s = json_integer_value(v);
		return 0;
	}
	if (!json_is_string(v))
		goto bad;
	s = json_string_value(v);
	if (strcmp(s, "never") == 0) {
		*out_s = 0;
		return 0;
	}
	n = strtod(s, &end);
	if (end == s || n < 0)
		goto bad;
	if (*end && end[1] == '\0')
		unit = *end == 's' ? 1 : *end == 'm' ? 60 : *end == 'h' ? 3600 : *end == 'd' ? 86400 : 0;
	else if (*end)
		unit = 0;
	if (unit == 0 || n * unit > TOKEN_EXPIRES_MAX_S)
		goto bad;
	*out_s = (int64_t)(n * unit);
	return 0;
bad:
	return mv_fail(err, 400, "invalid_value", "expires must be a duration such as \"24h\", \"30m\", \"7d\" or "
	               "seconds (at most 366 days), or \"never\"");
}

/* ---- projects ---- */

void api_projects_create(struct api *a, struct evhttp_request *req, UNUSED const char *id)
{
	static const char *const fields[] = {"name", "quota", NULL};
	struct authz_quota q;
	struct mv_error err;
	const char *name;
	json_t *b = NULL;

	if (object_body(req, fields, &b, &err) < 0 || name_field(b, "name", true, &name, &err) < 0 ||
	    parse_quota(b, &q, &err) < 0 || tenants_project_create(a->tenants, name, &q, &err) < 0) {
		http_reply_error(req, &err);
	} else {
		http_reply_json(req, 201, project_json(a, tenants_project(a->tenants, name)));
	}
	json_decref(b);
}

struct list_ctx {
	struct api *a;
	json_t *list;
	const char *project; /* "" or NULL: all */
	const char *user;    /* NULL: all */
};

static void list_project(void *arg, const struct tenant_project *p)
{
	struct list_ctx *l = arg;
	if (api_sees(l->a, p->name))
		json_array_append_new(l->list, project_json(l->a, p));
}

void api_projects_list(struct api *a, struct evhttp_request *req, UNUSED const char *id)
{
	struct list_ctx l = {.a = a, .list = json_array()};
	tenants_projects_foreach(a->tenants, list_project, &l);
	http_reply_json(req, 200, json_pack("{s:o}", "projects", api_sorted(l.list, "name")));
}

static const struct tenant_project *project_or_404(struct api *a, struct evhttp_request *req, const char *name)
{
	const struct tenant_project *p = tenants_project(a->tenants, name);
	struct mv_error err;
	if (!p || !api_sees(a, name)) {
		mv_fail(&err, 404, "not_found", "no project %.64s", name);
		http_reply_error(req, &err);
		return NULL;
	}
	return p;
}

void api_project_show(struct api *a, struct evhttp_request *req, const char *name)
{
	const struct tenant_project *p = project_or_404(a, req, name);
	if (p)
		http_reply_json(req, 200, project_json(a, p));
}

void api_project_delete(struct api *a, struct evhttp_request *req, const char *name)
{
	struct authz_quota used;
	struct mv_error err;
	size_t images;

	if (!project_or_404(a, req, name))
		return;
	cluster_project_usage(a->cluster, name, &used);
	images = images_project_count(a->images, name);
	if (strcmp(name, AUTHZ_ADMIN_PROJECT) == 0)
		mv_fail(&err, 409, "in_use", "the admin project cannot be removed");
	else if (used.instances > 0 || images > 0)
		mv_fail(&err, 409, "in_use", "project %s owns %lld instances and %zu images: remove them first", name,
		        (long long)used.instances, images);
	else if (tenants_project_remove(a->tenants, name, &err) == 0) {
		evhttp_send_reply(req, 204, "No Content", NULL);
		return;
	}
	http_reply_error(req, &err);
}

/* ---- users ---- */

/* A user with a password: the hash is made off the loop, then the user is created (the
 * checks run again then: the name may have been taken meanwhile). */
struct user_job {
	struct api *a;
	struct evhttp_request *req;
	char name[MV_NAME_MAX + 1], project[MV_NAME_MAX + 1];
	enum authz_role role;
	char password[SECRET_PASSWORD_MAX + 1];
	char hash[SECRET_PASSWORD_HASH_MAX + 1];
	int rc;
	/* log-in only */
	bool login, ok;
	int64_t expires_s;
};

static void job_free(struct user_job *j)
{
	memset(j->password, 0, sizeof j->password);
	free(j);
}

static void user_hash_work(void *arg)
{
	struct user_job *j = arg;
	j->rc = secret_password_hash(j->password, SECRET_PBKDF2_ITERATIONS, j->hash);
}

static void user_create_reply(struct api *a, struct evhttp_request *req, const char *name, const char *project,
                              enum authz_role role, const char *hash)
{
	struct mv_error err;
	if (tenants_user_create(a->tenants, name, project, role, hash, &err) < 0)
		http_reply_error(req, &err);
	else
		http_reply_json(req, 201, user_json(tenants_user(a->tenants, name)));
}

static void user_hash_done(void *arg)
{
	struct user_job *j = arg;
	struct mv_error err;
	if (j->rc < 0) {
		mv_fail(&err, 500, "internal", "could not hash the password (libcrypto failed)");
		http_reply_error(j->req, &err);
	} else {
		user_create_reply(j->a, j->req, j->name, j->project, j->role, j->hash);
	}
	job_free(j);
}

static int password_field(const json_t *b, const char **out, struct mv_error *err)
{
	const json_t *v = json_object_get(b, "password");
	*out = NULL;
	if (!v)
		return 0;
	if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > SECRET_PASSWORD_MAX ||
	    strlen(json_string_value(v)) != json_string_length(v))
		return mv_fail(err, 400, "invalid_value", "password must be a string of 1-%d bytes without NUL",
		               SECRET_PASSWORD_MAX);
	*out = json_string_value(v);
	return 0;
}

static int offload_or_503(struct api *a, struct user_job *j, void (*work)(void *), void (*done)(void *),
                          struct mv_error *err)
{
	if (offload_run(a->offload, work, done, j) == 0)
		return 0;
	evhttp_add_header(evhttp_request_get_output_headers(j->req), "Retry-After", "1");
	return mv_fail(err, 503, "busy", "%d password checks are running already; retry in a second", OFFLOAD_MAX);
}

void api_users_create(struct api *a, struct evhttp_request *req, UNUSED const char *id)
{
	static const char *const fields[] = {"name", "project", "role", "password", NULL};
	const char *name, *project, *password, *role_s;
	const json_t *role_v;
	struct mv_error err;
	struct user_job *j;
	json_t *b = NULL;
	int role;

	if (object_body(req, fields, &b, &err) < 0 || name_field(b, "name", true, &name, &err) < 0 ||
	    name_field(b, "project", true, &project, &err) < 0 || password_field(b, &password, &err) < 0)
		goto fail;
	role_v = json_object_get(b, "role");
	role_s = json_string_value(role_v);
	if (!role_v) {
		mv_fail(&err, 400, "missing_field", "role is required: reader, member or admin");
		goto fail;
	}
	if ((role = authz_role_parse(role_s)) < 0) {
		mv_fail(&err, 400, "invalid_value", "role must be reader, member or admin");
		goto fail;
	}
	/* checked now too, so that a mistake costs no hashing */
	if (!tenants_project(a->tenants, project)) {
		mv_fail(&err, 404, "not_found", "no project %s (create it first: microvim project create %s)", project,
		        project);
		goto fail;
	}
	if (tenants_user(a->tenants, name)) {
		mv_fail(&err, 409, "name_conflict", "user %s exists already", name);
		goto fail;
	}
	if (!password) {
		user_create_reply(a, req, name, project, (enum authz_role)role, NULL);
		json_decref(b);
		return;
	}
	if (!(j = calloc(1, sizeof *j)))
		fatal("calloc");
	*j = (struct user_job){.a = a, .req = req, .role = (enum authz_role)role};
	snprintf(j->name, sizeof j->name, "%s", name);
	snprintf(j->project, sizeof j->project, "%s", project);
	snprintf(j->password, sizeof j->password, "%s", password);
	if (offload_or_503(a, j, user_hash_work, user_hash_done, &err) < 0) {
		job_free(j);
		goto fail;
	}
	json_decref(b);
	return;
fail:
	http_reply_error(req, &err);
	json_decref(b);
}

static void list_user(void *arg, const struct tenant_user *u)
{
	json_array_append_new(((struct list_ctx *)arg)->list, user_json(u));
}

void api_users_list(struct api *a, struct evhttp_request *req, UNUSED const char *id)
{
	struct list_ctx l = {.a = a, .list = json_array()};
	tenants_users_foreach(a->tenants, list_user, &l);
	http_reply_json(req, 200, json_pack("{s:o}", "users", api_sorted(l.list, "name")));
}

void api_user_delete(struct api *a, struct evhttp_request *req, const char *name)
{
	struct mv_error err;
	if (tenants_user_remove(a->tenants, name, &err) < 0)
		http_reply_error(req, &err);
	else
		evhttp_send_reply(req, 204, "No Content", NULL);
}

/* ---- tokens ---- */

static void token_issue_reply(struct api *a, struct evhttp_request *req, const char *user, int64_t expires_s)
{
	char token[SECRET_TOKEN_LEN + 1];
	const struct tenant_token *k;
	struct mv_error err;
	json_t *j;
	if (tenants_token_issue(a->tenants, user, expires_s ? clock_wall_us() + expires_s * 1000000 : 0, token, &k,
	                        &err) < 0) {
		http_reply_error(req, &err);
		return;
	}
	j = token_json(a, k);
	json_object_set_new(j, "token", json_string(token));
	memset(token, 0, sizeof token);
	http_reply_json(req, 201, j);
}

static void login_work(void *arg)
{
	struct user_job *j = arg;
	char unused[SECRET_PASSWORD_HASH_MAX + 1];
	if (j->hash[0]) {
		j->ok = secret_password_verify(j->password, j->hash);
		return;
	}
	/* no such user, or one without a password: the same derivation, so that a refused
	 * log-in takes as long whether the user exists or not */
	secret_password_hash(j->password, SECRET_PBKDF2_ITERATIONS, unused);
	j->ok = false;
}

static void login_done(void *arg)
{
	struct user_job *j = arg;
	const struct tenant_user *u = tenants_user(j->a->tenants, j->name);
	struct mv_error err;
	/* the user must still be the one checked: removed or given a new password meanwhile, no */
	if (!j->ok || !u || !u->password_hash || strcmp(u->password_hash, j->hash) != 0 ||
	    (j->project[0] && strcmp(j->project, u->project) != 0)) {
		mv_fail(&err, 401, "unauthorized", "wrong user, password or project");
		http_reply_error(j->req, &err);
	} else {
		token_issue_reply(j->a, j->req, j->name, j->expires_s);
	}
	job_free(j);
}

void api_tokens_create(struct api *a, struct evhttp_request *req, UNUSED const char *id)
{
	static const char *const fields[] = {"user", "password", "project", "expires", NULL};
	const char *user, *password, *project;
	const struct tenant_user *u;
	struct user_job *j;
	struct mv_error err;
	int64_t expires_s;
	json_t *b = NULL;

	if (object_body(req, fields, &b, &err) < 0 || name_field(b, "user", true, &user, &err) < 0 ||
	    name_field(b, "project", false, &project, &err) < 0 || password_field(b, &password, &err) < 0 ||
	    api_parse_expires(json_object_get(b, "expires"), TOKEN_EXPIRES_DEFAULT_S, &expires_s, &err) < 0)
		goto fail;
	if (!password) { /* an admin makes a token for a user */
		if (!a->who) {
			mv_fail(&err, 401, "unauthorized", "give a password to log in, or an admin's bearer token to make "
			        "a token for a user");
			goto fail;
		}
		if (!authz_allows(a->who->role, ACTION_ADMIN)) {
			mv_fail(&err, 403, "forbidden", "only an admin makes tokens for users; log in with a password");
			goto fail;
		}
		if (!(u = tenants_user(a->tenants, user)) || (project && strcmp(project, u->project) != 0)) {
			mv_fail(&err, 404, "not_found", "no user %s%s%s", user, project ? " in project " : "",
			        project ? project : "");
			goto fail;
		}
		token_issue_reply(a, req, user, expires_s);
		json_decref(b);
		return;
	}
	if (expires_s == 0) {
		mv_fail(&err, 400, "invalid_value", "a log-in token expires (at most in 366 days); only an admin makes "
		        "tokens that never do");
		goto fail;
	}
	u = tenants_user(a->tenants, user);
	if (!(j = calloc(1, sizeof *j)))
		fatal("calloc");
	*j = (struct user_job){.a = a, .req = req, .login = true, .expires_s = expires_s};
	snprintf(j->name, sizeof j->name, "%s", user);
	snprintf(j->project, sizeof j->project, "%s", project ? project : "");
	snprintf(j->password, sizeof j->password, "%s", password);
	snprintf(j->hash, sizeof j->hash, "%s", u && u->password_hash ? u->password_hash : "");
	if (offload_or_503(a, j, login_work, login_done, &err) < 0) {
		job_free(j);
		goto fail;
	}
	json_decref(b);
	return;
fail:
	http_reply_error(req, &err);
	json_decref(b);
}

/* An admin sees every token; a user its own. */
static bool token_visible(struct api *a, const struct tenant_token *k)
{
	return authz_allows(a->who->role, ACTION_ADMIN) || strcmp(k->user, a->who->user) == 0;
}

static void list_token(void *arg, const struct tenant_token *k)
{
	struct list_ctx *l = arg;
	if (token_visible(l->a, k) && (!l->user || strcmp(k->user, l->user) == 0))
		json_array_append_new(l->list, token_json(l->a, k));
}

void api_tokens_list(struct api *a, struct evhttp_request *req, UNUSED const char *id)
{
	char user[MV_NAME_MAX + 2];
	struct list_ctx l = {.a = a};
	struct mv_error err;
	if (http_query(req, "user", user, sizeof user)) {
		if (!name_valid(user)) {
			mv_fail(&err, 400, "invalid_query", "user must be a user's name");
			http_reply_error(req, &err);
			return;
		}
		l.user = user;
	}
	l.list = json_array();
	tenants_tokens_foreach(a->tenants, list_token, &l);
	http_reply_json(req, 200, json_pack("{s:o}", "tokens", api_sorted(l.list, "created_at")));
}

void api_token_delete(struct api *a, struct evhttp_request *req, const char *id)
{
	const struct tenant_token *k = tenants_token(a->tenants, id);
	struct mv_error err;
	if (!k || !token_visible(a, k))
		mv_fail(&err, 404, "not_found", "no token %.64s", id);
	else if (tenants_token_revoke(a->tenants, id, &err) == 0) {
		evhttp_send_reply(req, 204, "No Content", NULL);
		return;
	}
	http_reply_error(req, &err);
}
