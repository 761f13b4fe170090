/* os_identity — Keystone v3, the subset clients use to log in: version discovery, tokens
 * issued for the password and token methods with a project scope in domain Default,
 * validated and revoked; the projects and users an admin may list.
 *
 * Who may log in: the admin (user "admin", project "admin", role admin). Its password is
 * the content of --openstack-password-file; without one, the core's --token-file token;
 * with neither (a loopback core open to anyone, as the native API is then) any password.
 * The token method takes a token the façade issued or the core's own token. The principal
 * is kept in Keystone's terms (user, project, roles) so that a store of many users and
 * projects replaces os_identity_login's one admin without changing the routes. */
#include "core/os.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/http.h"
#include "common/log.h"

#define TOKEN_LIFETIME_US (12LL * 3600 * 1000000) /* Keystone's default expiration is 1 h; clients renew */
#define TOKENS_MAX 65536                          /* live tokens; past it, expired ones are swept */
#define TOKEN_HEX 32
#define ADMIN "admin"
#define DOMAIN_ID "default"
#define DOMAIN_NAME "Default"

struct os_token {
	char id[TOKEN_HEX + 1];
	struct os_principal who;
	int64_t issued_wall_us, expires_wall_us;
	char audit_id[MV_ID_LEN + 1];
	bool by_token; /* issued for the token method (else password) */
};

struct os_identity {
	char *password;     /* NULL: any (open core) */
	char *native_token; /* the core's --token-file token, or NULL */
	struct os_principal admin;
	struct hmap tokens; /* id -> struct os_token */
};

struct os_identity *os_identity_new(const char *admin_password, const char *native_token)
{
	struct os_identity *id = calloc(1, sizeof *id);
	if (!id)
		fatal("calloc");
	if (admin_password || native_token)
		id->password = strdup(admin_password ? admin_password : native_token);
	if (native_token)
		id->native_token = strdup(native_token);
	hmap_init(&id->tokens);
	os_uuid_of("user", ADMIN, id->admin.user_id);
	os_uuid_of("project", ADMIN, id->admin.project_id);
	snprintf(id->admin.user_name, sizeof id->admin.user_name, ADMIN);
	snprintf(id->admin.project_name, sizeof id->admin.project_name, ADMIN);
	id->admin.admin = true;
	return id;
}

void os_identity_free(struct os_identity *id)
{
	const char *k;
	void *v;
	if (!id)
		return;
	for (size_t i = 0; hmap_next(&id->tokens, &i, &k, &v);)
		free(v);
	hmap_free(&id->tokens);
	free(id->password);
	free(id->native_token);
	free(id);
}

/* Secrets compared in constant time (for a given length). */
static bool secret_equal(const char *a, const char *b)
{
	size_t n = strlen(b);
	unsigned char diff = 0;
	if (strlen(a) != n)
		return false;
	for (size_t i = 0; i < n; i++)
		diff |= (unsigned char)(a[i] ^ b[i]);
	return diff == 0;
}

static struct os_token *token_find(struct os_identity *id, const char *token)
{
	struct os_token *t = hmap_get(&id->tokens, token);
	if (t && t->expires_wall_us <= clock_wall_us()) {
		hmap_remove(&id->tokens, t->id);
		free(t);
		return NULL;
	}
	return t;
}

bool os_identity_authenticate(struct os_identity *id, const char *token, struct os_principal *who)
{
	struct os_token *t;
	if (id->native_token && secret_equal(token, id->native_token)) {
		*who = id->admin;
		return true;
	}
	if (!(t = token_find(id, token)))
		return false;
	*who = t->who;
	return true;
}

/* ---- discovery ---- */

static json_t *v3_version(const struct osapi *o)
{
	char href[256];
	snprintf(href, sizeof href, "%s/identity/v3/", o->url);
	return json_pack("{s:s, s:s, s:s, s:[{s:s, s:s}], s:[{s:s, s:s}]}", "id", "v3.14", "status", "stable",
	                 "updated", "2020-04-07T00:00:00Z", "links", "rel", "self", "href", href, "media-types", "base",
	                 "application/json", "type", "application/vnd.openstack.identity-v3+json");
}

void os_identity_root(struct osapi *o, struct os_req *r)
{
	http_reply_json(r->req, 300, json_pack("{s:{s:[o]}}", "versions", "values", v3_version(o)));
}

void os_identity_v3(struct osapi *o, struct os_req *r)
{
	http_reply_json(r->req, 200, json_pack("{s:o}", "version", v3_version(o)));
}

/* ---- the catalog ---- */

static json_t *catalog_entry(const struct osapi *o, const char *type, const char *name, const char *path)
{
	char url[256], eid[OS_UUID_LEN + 1], sid[OS_UUID_LEN + 1];
	json_t *eps = json_array();
	static const char *const interfaces[] = {"public", "internal", "admin"};
	snprintf(url, sizeof url, "%s%s", o->url, path);
	os_uuid_of("service", type, sid);
	for (size_t i = 0; i < 3; i++) {
		char k[64];
		snprintf(k, sizeof k, "%s-%s", type, interfaces[i]);
		os_uuid_of("endpoint", k, eid);
		json_array_append_new(eps, json_pack("{s:s, s:s, s:s, s:s, s:s}", "id", eid, "interface", interfaces[i],
		                                     "region", "RegionOne", "region_id", "RegionOne", "url", url));
	}
	return json_pack("{s:s, s:s, s:s, s:o}", "id", sid, "type", type, "name", name, "endpoints", eps);
}

static json_t *catalog(const struct osapi *o)
{
	return json_pack("[o, o, o, o]", catalog_entry(o, "identity", "keystone", "/identity"),
	                 catalog_entry(o, "compute", "nova", "/compute/v2.1"),
	                 catalog_entry(o, "image", "glance", "/image"),
	                 catalog_entry(o, "network", "neutron", "/network"));
}

static json_t *domain_json(void) { return json_pack("{s:s, s:s}", "id", DOMAIN_ID, "name", DOMAIN_NAME); }

static json_t *token_json(const struct osapi *o, const struct os_token *t)
{
	char issued[40], expires[40], rid[OS_UUID_LEN + 1];
	json_t *j;
	clock_iso8601(t->issued_wall_us, issued, sizeof issued);
	clock_iso8601(t->expires_wall_us, expires, sizeof expires);
	j = json_pack("{s:[s], s:{s:s, s:s, s:o, s:n}, s:s, s:s, s:[s], s:b}", "methods",
	              t->by_token ? "token" : "password", "user", "id", t->who.user_id, "name", t->who.user_name,
	              "domain", domain_json(), "password_expires_at", "issued_at", issued, "expires_at", expires,
	              "audit_ids", t->audit_id, "is_domain", false);
	if (t->who.project_id[0]) {
		os_uuid_of("role", "admin", rid);
		json_object_set_new(j, "project", json_pack("{s:s, s:s, s:o}", "id", t->who.project_id, "name",
		                                             t->who.project_name, "domain", domain_json()));
		json_object_set_new(j, "roles", t->who.admin ? json_pack("[{s:s, s:s}, {s:s, s:s}]", "id", rid, "name",
		                                                         "admin", "id", rid, "name", "member")
		                                             : json_array());
		json_object_set_new(j, "catalog", catalog(o));
	}
	return json_pack("{s:o}", "token", j);
}

/* ---- POST /v3/auth/tokens ---- */

/* A name or id in domain Default: {"id": ...} or {"name": ..., "domain": {"id"|"name"}}. */
static int check_named(const json_t *obj, const char *what, const char *name, const char *uuid,
                       struct mv_error *err)
{
	const json_t *i = json_object_get(obj, "id"), *n = json_object_get(obj, "name"),
		     *dom = json_object_get(obj, "domain");
	if (!json_is_object(obj))
		return mv_fail(err, 400, "invalid_field", "%s must be an object with id, or name and domain", what);
	if (i)
		return json_is_string(i) && strcmp(json_string_value(i), uuid) == 0
		       ? 0 : mv_fail(err, 401, "unauthorized", "no %s with that id", what);
	if (!json_is_string(n))
		return mv_fail(err, 400, "invalid_field", "%s needs an id, or a name (a string) and its domain", what);
	if (dom) {
		const json_t *di = json_object_get(dom, "id"), *dn = json_object_get(dom, "name");
		if (!(json_is_string(di) && strcmp(json_string_value(di), DOMAIN_ID) == 0) &&
		    !(json_is_string(dn) && strcmp(json_string_value(dn), DOMAIN_NAME) == 0))
			return mv_fail(err, 401, "unauthorized", "the only domain is Default (id \"default\")");
	}
	if (strcmp(json_string_value(n), name) != 0)
		return mv_fail(err, 401, "unauthorized", "no %s named %.64s in domain Default", what, json_string_value(n));
	return 0;
}

/* The password method: the admin, by name or id, with its password. */
static int login_password(struct os_identity *id, const json_t *pw, struct mv_error *err)
{
	const json_t *user = json_object_get(pw, "user"), *p;
	if (!json_is_object(pw) || !user)
		return mv_fail(err, 400, "invalid_field", "identity.password must be {\"user\": {\"name\", \"domain\", \"password\"}}");
	if (check_named(user, "user", ADMIN, id->admin.user_id, err) < 0)
		return -1;
	p = json_object_get(user, "password");
	if (!json_is_string(p))
		return mv_fail(err, 400, "invalid_field", "identity.password.user.password must be a string");
	if (id->password && !secret_equal(json_string_value(p), id->password))
		return mv_fail(err, 401, "unauthorized", "the password is not the admin's");
	return 0;
}

static int login_token(struct os_identity *id, const json_t *tok, struct os_principal *who, struct mv_error *err)
{
	const json_t *tid = json_object_get(tok, "id");
	if (!json_is_object(tok) || !json_is_string(tid))
		return mv_fail(err, 400, "invalid_field", "identity.token must be {\"id\": TOKEN}");
	if (!os_identity_authenticate(id, json_string_value(tid), who))
		return mv_fail(err, 401, "unauthorized", "the token is unknown, revoked or expired");
	return 0;
}

/* Who the auth body proves to be, scoped as it asks: 0, or -1 with err (401 for wrong
 * credentials, 400 for a malformed body). */
static int login(struct os_identity *id, const json_t *body, struct os_token *t, struct mv_error *err)
{
	const json_t *auth = json_object_get(body, "auth"), *ident = json_object_get(auth, "identity");
	const json_t *methods = json_object_get(ident, "methods"), *scope = json_object_get(auth, "scope");
	const char *m;

	if (!json_is_object(ident) || !json_is_array(methods) || json_array_size(methods) != 1 ||
	    !json_is_string(json_array_get(methods, 0)))
		return mv_fail(err, 400, "invalid_field",
		               "auth.identity.methods must be [\"password\"] or [\"token\"], with that method's object");
	m = json_string_value(json_array_get(methods, 0));
	t->who = id->admin;
	if (strcmp(m, "password") == 0) {
		if (login_password(id, json_object_get(ident, "password"), err) < 0)
			return -1;
	} else if (strcmp(m, "token") == 0) {
		if (login_token(id, json_object_get(ident, "token"), &t->who, err) < 0)
			return -1;
		t->by_token = true;
	} else
		return mv_fail(err, 401, "unauthorized", "method %.32s is not offered: use password or token", m);
	if (!scope || (json_is_string(scope) && strcmp(json_string_value(scope), "unscoped") == 0)) {
		t->who.project_id[0] = t->who.project_name[0] = '\0';
		return 0;
	}
	if (!json_is_object(scope) || !json_object_get(scope, "project"))
		return mv_fail(err, 401, "unauthorized", "only a project scope is offered: {\"project\": {\"name\", \"domain\"}}");
	if (check_named(json_object_get(scope, "project"), "project", ADMIN, id->admin.project_id, err) < 0)
		return -1;
	snprintf(t->who.project_id, sizeof t->who.project_id, "%s", id->admin.project_id);
	snprintf(t->who.project_name, sizeof t->who.project_name, "%s", id->admin.project_name);
	return 0;
}

static void sweep_expired(struct os_identity *id)
{
	int64_t now = clock_wall_us();
	const char *k;
	void *v;
	struct os_token **dead = calloc(hmap_size(&id->tokens) + 1, sizeof *dead);
	size_t n = 0;
	if (!dead)
		fatal("calloc");
	for (size_t i = 0; hmap_next(&id->tokens, &i, &k, &v);)
		if (((struct os_token *)v)->expires_wall_us <= now)
			dead[n++] = v;
	for (size_t i = 0; i < n; i++) {
		hmap_remove(&id->tokens, dead[i]->id);
		free(dead[i]);
	}
	free(dead);
}

void os_tokens_issue(struct osapi *o, struct os_req *r)
{
	struct os_identity *id = o->identity;
	struct os_token t = {0}, *kept;
	struct mv_error err;
	json_t *body = NULL;
	char a[MV_ID_LEN + 1], b[MV_ID_LEN + 1];

	if (os_read_body(r->req, &body, &err) < 0 || login(id, body, &t, &err) < 0)
		goto fail;
	if (hmap_size(&id->tokens) >= TOKENS_MAX)
		sweep_expired(id);
	if (hmap_size(&id->tokens) >= TOKENS_MAX) {
		mv_fail(&err, 503, "too_many_tokens", "%d tokens are live; revoke some (DELETE /v3/auth/tokens)", TOKENS_MAX);
		goto fail;
	}
	id_generate(a);
	id_generate(b);
	snprintf(t.id, sizeof t.id, "%s%s", a, b);
	id_generate(t.audit_id);
	t.issued_wall_us = clock_wall_us();
	t.expires_wall_us = t.issued_wall_us + TOKEN_LIFETIME_US;
	if (!(kept = malloc(sizeof *kept)))
		fatal("malloc");
	*kept = t;
	hmap_put(&id->tokens, kept->id, kept);
	evhttp_add_header(evhttp_request_get_output_headers(r->req), "X-Subject-Token", kept->id);
	http_reply_json(r->req, 201, token_json(o, kept));
	json_decref(body);
	return;
fail:
	json_decref(body);
	os_reply_error(r->req, OS_IDENTITY, &err);
}

/* The X-Subject-Token of a GET/HEAD/DELETE: the token found, or NULL after a 404. */
static struct os_token *subject(struct osapi *o, struct os_req *r)
{
	const char *s = evhttp_find_header(evhttp_request_get_input_headers(r->req), "X-Subject-Token");
	struct os_token *t = s ? token_find(o->identity, s) : NULL;
	struct mv_error err;
	if (!t) {
		mv_fail(&err, s ? 404 : 400, s ? "not_found" : "missing_header",
		        s ? "the X-Subject-Token is unknown, revoked or expired" : "X-Subject-Token is required");
		os_reply_error(r->req, OS_IDENTITY, &err);
	}
	return t;
}

void os_tokens_check(struct osapi *o, struct os_req *r)
{
	struct os_token *t = subject(o, r);
	if (!t)
		return;
	evhttp_add_header(evhttp_request_get_output_headers(r->req), "X-Subject-Token", t->id);
	if (evhttp_request_get_command(r->req) == EVHTTP_REQ_HEAD)
		evhttp_send_reply(r->req, 200, "OK", NULL);
	else
		http_reply_json(r->req, 200, token_json(o, t));
}

void os_tokens_revoke(struct osapi *o, struct os_req *r)
{
	struct os_token *t = subject(o, r);
	if (!t)
		return;
	hmap_remove(&o->identity->tokens, t->id);
	free(t);
	evhttp_send_reply(r->req, 204, "No Content", NULL);
}

/* ---- projects and users (admins) ---- */

static bool admin_or_403(struct os_req *r)
{
	struct mv_error err;
	if (r->who.admin)
		return true;
	mv_fail(&err, 403, "forbidden", "listing projects and users is for admins");
	os_reply_error(r->req, OS_IDENTITY, &err);
	return false;
}

static json_t *project_json(const struct osapi *o, const struct os_principal *p)
{
	char self[256];
	snprintf(self, sizeof self, "%s/identity/v3/projects/%s", o->url, p->project_id);
	return json_pack("{s:s, s:s, s:s, s:s, s:b, s:b, s:s, s:{s:s}, s:[]}", "id", p->project_id, "name",
	                 p->project_name, "domain_id", DOMAIN_ID, "description", "microvim's one project", "enabled",
	                 true, "is_domain", false, "parent_id", DOMAIN_ID, "links", "self", self, "tags");
}

void os_projects_list(struct osapi *o, struct os_req *r)
{
	if (admin_or_403(r))
		http_reply_json(r->req, 200, json_pack("{s:[o]}", "projects", project_json(o, &o->identity->admin)));
}

void os_project_show(struct osapi *o, struct os_req *r)
{
	struct mv_error err;
	const struct os_principal *a = &o->identity->admin;
	if (strcmp(r->id, a->project_id) != 0 && strcmp(r->id, a->project_name) != 0) {
		mv_fail(&err, 404, "not_found", "no project %.64s", r->id);
		os_reply_error(r->req, OS_IDENTITY, &err);
		return;
	}
	http_reply_json(r->req, 200, json_pack("{s:o}", "project", project_json(o, a)));
}

void os_users_list(struct osapi *o, struct os_req *r)
{
	const struct os_principal *a = &o->identity->admin;
	if (admin_or_403(r))
		http_reply_json(r->req, 200, json_pack("{s:[{s:s, s:s, s:s, s:b, s:n}]}", "users", "id", a->user_id, "name",
		                                       a->user_name, "domain_id", DOMAIN_ID, "enabled", true,
		                                       "password_expires_at"));
}
