/* os_identity — Keystone v3, the subset clients use to log in: version discovery, tokens
 * issued for the password and token methods with a project scope in domain Default,
 * validated and revoked; the projects and users an admin may list.
 *
 * Who may log in depends on the core:
 *   with --auth (tenants): the users of tenants.h, each a member of its one project with
 *     its role (admin, member, reader), by name or id and password; a password is checked
 *     on offload's threads, as POST /v1/tokens does. A token issued is a tenants.h token of
 *     that user (the same token works on /v1 with the same rights); the project scope must
 *     be the user's project. --openstack-password-file, if given, is also user admin's
 *     password (a core bootstrapped with --auth has no password for it).
 *   without (dev mode): one user, admin of project admin. Its password is the content of
 *     --openstack-password-file; without one, the core's --token-file token; with neither
 *     (a loopback core open to anyone, as the native API is then) any password. Tokens
 *     live in memory; the native API takes them as the admin's.
 * The token method takes a token the façade issued, or the core's own token (the admin). */
#include "core/os.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/http.h"
#include "common/log.h"
#include "common/secret.h"
#include "core/offload.h"
#include "core/tenants.h"

#define TOKEN_LIFETIME_US (12LL * 3600 * 1000000) /* Keystone's default expiration is 1 h; clients renew */
#define TOKENS_MAX 65536                          /* live tokens; past it, expired ones are swept */
#define TOKEN_HEX 32
#define ADMIN "admin"
#define DOMAIN_ID "default"
#define DOMAIN_NAME "Default"

struct os_token {
	char id[SECRET_TOKEN_LEN + 1]; /* dev mode: 32 hex; with tenants: the tenants token */
	struct os_principal who;
	int64_t issued_wall_us, expires_wall_us;
	char audit_id[SECRET_ID_LEN + 1];
	bool by_token; /* issued for the token method (else password) */
};

struct os_identity {
	char *password;     /* the admin's; NULL: any (open core) unless tenants */
	char *native_token; /* the core's --token-file token, or NULL */
	struct os_principal admin;
	struct hmap tokens; /* dev mode: id -> struct os_token */
	struct tenants *tenants; /* NULL: dev mode */
	struct offload *offload;
};

/* Keystone's view of a native principal: ids are derived from the names. */
static void principal_of(const struct authz_principal *a, struct os_principal *who)
{
	memset(who, 0, sizeof *who);
	who->authz = *a;
	snprintf(who->user_name, sizeof who->user_name, "%s", a->user[0] ? a->user : ADMIN);
	snprintf(who->project_name, sizeof who->project_name, "%s", a->project);
	os_uuid_of("user", who->user_name, who->user_id);
	os_uuid_of("project", who->project_name, who->project_id);
	who->admin = authz_allows(a->role, ACTION_ADMIN);
}

struct os_identity *os_identity_new(const char *admin_password, const char *native_token, struct tenants *tenants,
                                    struct offload *offload)
{
	struct os_identity *id = calloc(1, sizeof *id);
	struct authz_principal a;
	if (!id)
		fatal("calloc");
	if (admin_password || (native_token && !tenants))
		id->password = strdup(admin_password ? admin_password : native_token);
	if (native_token)
		id->native_token = strdup(native_token);
	id->tenants = tenants;
	id->offload = offload;
	hmap_init(&id->tokens);
	authz_principal_admin(&a, native_token || tenants ? AUTHZ_CLUSTER : AUTHZ_OPEN);
	principal_of(&a, &id->admin);
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

/* A live token: its record (with tenants: made from the tenants token), or false. */
static bool token_find(struct os_identity *id, const char *token, struct os_token *out)
{
	struct os_token *t;
	if (id->tenants) {
		struct authz_principal a;
		struct mv_error err;
		const struct tenant_token *k;
		if (tenants_authenticate(id->tenants, token, clock_wall_us(), &a, &err) < 0 ||
		    !(k = tenants_token(id->tenants, a.token_id)))
			return false;
		*out = (struct os_token){.issued_wall_us = k->created_wall_us, .expires_wall_us = k->expires_wall_us};
		snprintf(out->id, sizeof out->id, "%s", token);
		snprintf(out->audit_id, sizeof out->audit_id, "%s", k->id);
		principal_of(&a, &out->who);
		return true;
	}
	if (!(t = hmap_get(&id->tokens, token)))
		return false;
	if (t->expires_wall_us <= clock_wall_us()) {
		hmap_remove(&id->tokens, t->id);
		free(t);
		return false;
	}
	*out = *t;
	return true;
}

bool os_identity_authenticate(struct os_identity *id, const char *token, struct os_principal *who)
{
	struct os_token t;
	if (id->native_token && secret_equal(token, id->native_token)) {
		*who = id->admin;
		return true;
	}
	if (!token_find(id, token, &t))
		return false;
	*who = t.who;
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

/* The roles a token shows: its role and those it implies (admin > member > reader), as
 * Keystone's implied roles list them. */
static json_t *roles_json(const struct os_principal *who)
{
	json_t *roles = json_array();
	for (int r = who->authz.role; r >= 0; r--) {
		char rid[OS_UUID_LEN + 1];
		os_uuid_of("role", authz_role_names[r], rid);
		json_array_append_new(roles, json_pack("{s:s, s:s}", "id", rid, "name", authz_role_names[r]));
	}
	return roles;
}

static json_t *token_json(const struct osapi *o, const struct os_token *t)
{
	char issued[40], expires[40];
	json_t *j;
	clock_iso8601(t->issued_wall_us, issued, sizeof issued);
	clock_iso8601(t->expires_wall_us, expires, sizeof expires);
	j = json_pack("{s:[s], s:{s:s, s:s, s:o, s:n}, s:s, s:s, s:[s], s:b}", "methods",
	              t->by_token ? "token" : "password", "user", "id", t->who.user_id, "name", t->who.user_name,
	              "domain", domain_json(), "password_expires_at", "issued_at", issued, "expires_at", expires,
	              "audit_ids", t->audit_id, "is_domain", false);
	if (t->who.project_id[0]) {
		json_object_set_new(j, "project", json_pack("{s:s, s:s, s:o}", "id", t->who.project_id, "name",
		                                             t->who.project_name, "domain", domain_json()));
		json_object_set_new(j, "roles", roles_json(&t->who));
		json_object_set_new(j, "catalog", catalog(o));
	}
	return json_pack("{s:o}", "token", j);
}

/* ---- POST /v3/auth/tokens ---- */

/* A user or a project as the body names it: {"id": ID} or {"name": NAME, "domain": ...}. */
struct os_ref {
	bool by_id;
	char v[MV_NAME_MAX + 1];
};

static int parse_ref(const json_t *obj, const char *what, struct os_ref *ref, struct mv_error *err)
{
	const json_t *i = json_object_get(obj, "id"), *n = json_object_get(obj, "name"),
		     *dom = json_object_get(obj, "domain"), *v = i ? i : n;
	if (!json_is_object(obj))
		return mv_fail(err, 400, "invalid_field", "%s must be an object with id, or name and domain", what);
	if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > MV_NAME_MAX)
		return mv_fail(err, 400, "invalid_field", "%s needs an id, or a name (a string of 1-%d characters) and its "
		               "domain", what, MV_NAME_MAX);
	if (!i && dom) {
		const json_t *di = json_object_get(dom, "id"), *dn = json_object_get(dom, "name");
		if (!(json_is_string(di) && strcmp(json_string_value(di), DOMAIN_ID) == 0) &&
		    !(json_is_string(dn) && strcmp(json_string_value(dn), DOMAIN_NAME) == 0))
			return mv_fail(err, 401, "unauthorized", "the only domain is Default (id \"default\")");
	}
	ref->by_id = i != NULL;
	snprintf(ref->v, sizeof ref->v, "%s", json_string_value(v));
	return 0;
}

/* Does ref name `name` (a user's or project's name; its id is derived from it)? */
static bool ref_names(const struct os_ref *ref, const char *kind, const char *name)
{
	char uuid[OS_UUID_LEN + 1];
	if (!ref->by_id)
		return strcmp(ref->v, name) == 0;
	os_uuid_of(kind, name, uuid);
	return strcmp(ref->v, uuid) == 0;
}

/* What a log-in asks for, once its body is read. */
struct login {
	struct osapi *o;
	struct evhttp_request *req;
	bool scoped;
	struct os_ref project;
	/* a password checked off the loop (tenants) */
	char user[MV_NAME_MAX + 1];
	char hash[SECRET_PASSWORD_HASH_MAX + 1];
	char password[SECRET_PASSWORD_MAX + 1];
	bool ok;
};

static void login_free(struct login *l)
{
	memset(l->password, 0, sizeof l->password);
	free(l);
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

/* Dev mode: a new token kept in memory. */
static int token_issue_memory(struct os_identity *id, struct os_token *t, struct mv_error *err)
{
	struct os_token *kept;
	char a[MV_ID_LEN + 1], b[MV_ID_LEN + 1];
	if (hmap_size(&id->tokens) >= TOKENS_MAX)
		sweep_expired(id);
	if (hmap_size(&id->tokens) >= TOKENS_MAX)
		return mv_fail(err, 503, "too_many_tokens", "%d tokens are live; revoke some (DELETE /v3/auth/tokens)",
		               TOKENS_MAX);
	id_generate(a);
	id_generate(b);
	snprintf(t->id, sizeof t->id, "%s%s", a, b);
	id_generate(t->audit_id);
	if (!(kept = malloc(sizeof *kept)))
		fatal("malloc");
	*kept = *t;
	hmap_put(&id->tokens, kept->id, kept);
	return 0;
}

/* A new token for t->who: a tenants token of its user, or (dev mode) one in memory. */
static int token_issue(struct os_identity *id, struct os_token *t, struct mv_error *err)
{
	const struct tenant_token *k;
	/* the cluster token is the admin's: its Keystone token is user admin's */
	const char *user = t->who.authz.kind == AUTHZ_USER ? t->who.authz.user : TENANTS_ADMIN_USER;
	t->issued_wall_us = clock_wall_us();
	t->expires_wall_us = t->issued_wall_us + TOKEN_LIFETIME_US;
	if (!id->tenants)
		return token_issue_memory(id, t, err);
	if (tenants_token_issue(id->tenants, user, t->expires_wall_us, t->id, &k, err) < 0)
		return -1;
	snprintf(t->audit_id, sizeof t->audit_id, "%s", k->id);
	t->who.authz.kind = AUTHZ_USER;
	snprintf(t->who.authz.user, sizeof t->who.authz.user, "%s", user);
	snprintf(t->who.authz.token_id, sizeof t->who.authz.token_id, "%s", k->id);
	return 0;
}

/* who proved who it is: scoped as the body asked (its own project only), a token issued
 * and the answer sent. */
static void login_finish(struct login *l, const struct os_principal *who, bool by_token)
{
	struct os_token t = {.who = *who, .by_token = by_token};
	struct mv_error err;

	if (!l->scoped) {
		t.who.project_id[0] = t.who.project_name[0] = '\0';
	} else if (!ref_names(&l->project, "project", who->project_name)) {
		mv_fail(&err, 401, "unauthorized", "user %s has no role on project %s (in domain Default): a user "
		        "works in its own project, %s", who->user_name, l->project.v, who->project_name);
		goto fail;
	}
	if (token_issue(l->o->identity, &t, &err) < 0)
		goto fail;
	evhttp_add_header(evhttp_request_get_output_headers(l->req), "X-Subject-Token", t.id);
	http_reply_json(l->req, 201, token_json(l->o, &t));
	memset(t.id, 0, sizeof t.id);
	return;
fail:
	os_reply_error(l->req, OS_IDENTITY, &err);
}

static void login_work(void *arg)
{
	struct login *l = arg;
	char unused[SECRET_PASSWORD_HASH_MAX + 1];
	if (l->hash[0]) {
		l->ok = secret_password_verify(l->password, l->hash);
		return;
	}
	/* no such user, or one without a password: the same derivation, so that a refused
	 * log-in takes as long whether the user exists or not */
	secret_password_hash(l->password, SECRET_PBKDF2_ITERATIONS, unused);
	l->ok = false;
}

static void login_done(void *arg)
{
	struct login *l = arg;
	const struct tenant_user *u = tenants_user(l->o->identity->tenants, l->user);
	struct authz_principal a = {.kind = AUTHZ_USER};
	struct os_principal who;
	struct mv_error err;
	/* the user must still be the one checked: removed or given a new password meanwhile, no */
	if (!l->ok || !u || !u->password_hash || strcmp(u->password_hash, l->hash) != 0) {
		mv_fail(&err, 401, "unauthorized", "wrong user name or password (a user of this core, domain Default)");
		os_reply_error(l->req, OS_IDENTITY, &err);
	} else {
		a.role = u->role;
		snprintf(a.project, sizeof a.project, "%s", u->project);
		snprintf(a.user, sizeof a.user, "%s", u->name);
		principal_of(&a, &who);
		login_finish(l, &who, false);
	}
	login_free(l);
}

struct user_by_id {
	const char *id;
	const struct tenant_user *found;
};

static void match_user_id(void *arg, const struct tenant_user *u)
{
	struct user_by_id *m = arg;
	char uuid[OS_UUID_LEN + 1];
	os_uuid_of("user", u->name, uuid);
	if (strcmp(uuid, m->id) == 0)
		m->found = u;
}

/* The password method. Dev mode: the admin, at once. With tenants: user admin with
 * --openstack-password-file's password at once; any user with its own password after
 * the check off the loop. 0: answered or under way; -1 with err. l is taken on 0. */
static int login_password(struct login *l, const json_t *pw, struct mv_error *err)
{
	struct os_identity *id = l->o->identity;
	const json_t *user = json_object_get(pw, "user"), *p = json_object_get(user, "password");
	struct os_ref ref;
	const struct tenant_user *u = NULL;

	if (!json_is_object(pw) || !user)
		return mv_fail(err, 400, "invalid_field",
		               "identity.password must be {\"user\": {\"name\", \"domain\", \"password\"}}");
	if (parse_ref(user, "identity.password.user", &ref, err) < 0)
		return -1;
	if (!json_is_string(p) || json_string_length(p) > SECRET_PASSWORD_MAX ||
	    strlen(json_string_value(p)) != json_string_length(p))
		return mv_fail(err, 400, "invalid_field", "identity.password.user.password must be a string of at most %d "
		               "bytes without NUL", SECRET_PASSWORD_MAX);
	if (!id->tenants || ref_names(&ref, "user", ADMIN)) {
		bool admin_ok = id->password ? secret_equal(json_string_value(p), id->password) : !id->tenants;
		if (!id->tenants && !ref_names(&ref, "user", ADMIN))
			return mv_fail(err, 401, "unauthorized", "no user %s %.64s in domain Default (the one user is admin)",
			               ref.by_id ? "with id" : "named", ref.v);
		if (admin_ok) {
			login_finish(l, &id->admin, false);
			login_free(l);
			return 0;
		}
		if (!id->tenants)
			return mv_fail(err, 401, "unauthorized", "the password is not the admin's");
	}
	if (ref.by_id) {
		struct user_by_id m = {.id = ref.v};
		tenants_users_foreach(id->tenants, match_user_id, &m);
		u = m.found;
	} else
		u = tenants_user(id->tenants, ref.v);
	snprintf(l->user, sizeof l->user, "%s", u ? u->name : "");
	snprintf(l->hash, sizeof l->hash, "%s", u && u->password_hash ? u->password_hash : "");
	snprintf(l->password, sizeof l->password, "%s", json_string_value(p));
	if (offload_run(id->offload, login_work, login_done, l) < 0) {
		evhttp_add_header(evhttp_request_get_output_headers(l->req), "Retry-After", "1");
		return mv_fail(err, 503, "busy", "%d password checks are running already; retry in a second", OFFLOAD_MAX);
	}
	return 0;
}

static int login_token(struct login *l, const json_t *tok, struct mv_error *err)
{
	const json_t *tid = json_object_get(tok, "id");
	struct os_principal who;
	if (!json_is_object(tok) || !json_is_string(tid))
		return mv_fail(err, 400, "invalid_field", "identity.token must be {\"id\": TOKEN}");
	if (!os_identity_authenticate(l->o->identity, json_string_value(tid), &who))
		return mv_fail(err, 401, "unauthorized", "the token is unknown, revoked or expired");
	login_finish(l, &who, true);
	login_free(l);
	return 0;
}

/* The body's scope into l: none ("unscoped") or a project. */
static int parse_scope(const json_t *scope, struct login *l, struct mv_error *err)
{
	if (!scope || (json_is_string(scope) && strcmp(json_string_value(scope), "unscoped") == 0))
		return 0;
	if (!json_is_object(scope) || !json_object_get(scope, "project"))
		return mv_fail(err, 401, "unauthorized",
		               "only a project scope is offered: {\"project\": {\"name\", \"domain\"}}");
	l->scoped = true;
	return parse_ref(json_object_get(scope, "project"), "auth.scope.project", &l->project, err);
}

void os_tokens_issue(struct osapi *o, struct os_req *r)
{
	struct login *l = calloc(1, sizeof *l);
	const json_t *auth, *ident, *methods;
	struct mv_error err;
	json_t *body = NULL;
	const char *m;
	int rc;

	if (!l)
		fatal("calloc");
	l->o = o;
	l->req = r->req;
	if (os_read_body(r->req, &body, &err) < 0)
		goto fail;
	auth = json_object_get(body, "auth");
	ident = json_object_get(auth, "identity");
	methods = json_object_get(ident, "methods");
	if (!json_is_object(ident) || !json_is_array(methods) || json_array_size(methods) != 1 ||
	    !json_is_string(json_array_get(methods, 0))) {
		mv_fail(&err, 400, "invalid_field",
		        "auth.identity.methods must be [\"password\"] or [\"token\"], with that method's object");
		goto fail;
	}
	if (parse_scope(json_object_get(auth, "scope"), l, &err) < 0)
		goto fail;
	m = json_string_value(json_array_get(methods, 0));
	if (strcmp(m, "password") == 0)
		rc = login_password(l, json_object_get(ident, "password"), &err);
	else if (strcmp(m, "token") == 0)
		rc = login_token(l, json_object_get(ident, "token"), &err);
	else
		rc = mv_fail(&err, 401, "unauthorized", "method %.32s is not offered: use password or token", m);
	if (rc < 0)
		goto fail;
	json_decref(body);
	return;
fail:
	login_free(l);
	json_decref(body);
	os_reply_error(r->req, OS_IDENTITY, &err);
}

/* The X-Subject-Token of a GET/HEAD/DELETE: true with *t, or false after a 404. */
static bool subject(struct osapi *o, struct os_req *r, struct os_token *t)
{
	const char *s = evhttp_find_header(evhttp_request_get_input_headers(r->req), "X-Subject-Token");
	struct mv_error err;
	if (s && token_find(o->identity, s, t))
		return true;
	mv_fail(&err, s ? 404 : 400, s ? "not_found" : "missing_header",
	        s ? "the X-Subject-Token is unknown, revoked or expired" : "X-Subject-Token is required");
	os_reply_error(r->req, OS_IDENTITY, &err);
	return false;
}

void os_tokens_check(struct osapi *o, struct os_req *r)
{
	struct os_token t;
	if (!subject(o, r, &t))
		return;
	evhttp_add_header(evhttp_request_get_output_headers(r->req), "X-Subject-Token", t.id);
	if (evhttp_request_get_command(r->req) == EVHTTP_REQ_HEAD)
		evhttp_send_reply(r->req, 200, "OK", NULL);
	else
		http_reply_json(r->req, 200, token_json(o, &t));
}

/* One's own token, or an admin any. */
void os_tokens_revoke(struct osapi *o, struct os_req *r)
{
	struct os_identity *id = o->identity;
	struct os_token t;
	struct mv_error err;
	if (!subject(o, r, &t))
		return;
	if (!r->who.admin && strcmp(r->who.user_name, t.who.user_name) != 0) {
		mv_fail(&err, 403, "forbidden", "a user revokes its own tokens only (an admin any)");
		os_reply_error(r->req, OS_IDENTITY, &err);
		return;
	}
	if (id->tenants) {
		if (tenants_token_revoke(id->tenants, t.audit_id, &err) < 0) {
			os_reply_error(r->req, OS_IDENTITY, &err);
			return;
		}
	} else {
		struct os_token *kept = hmap_get(&id->tokens, t.id);
		hmap_remove(&id->tokens, t.id);
		free(kept);
	}
	evhttp_send_reply(r->req, 204, "No Content", NULL);
}

/* ---- projects and users (listed by admins; a project shown to its users too) ---- */

static json_t *project_json(const struct osapi *o, const char *name)
{
	char self[256], pid[OS_UUID_LEN + 1];
	os_uuid_of("project", name, pid);
	snprintf(self, sizeof self, "%s/identity/v3/projects/%s", o->url, pid);
	return json_pack("{s:s, s:s, s:s, s:s, s:b, s:b, s:s, s:{s:s}, s:[]}", "id", pid, "name", name, "domain_id",
	                 DOMAIN_ID, "description", "", "enabled", true, "is_domain", false, "parent_id", DOMAIN_ID,
	                 "links", "self", self, "tags");
}

struct listing {
	const struct osapi *o;
	json_t *list;
	const struct os_ref *ref; /* project show: the one looked for */
	const char *found;
};

static void list_project(void *arg, const struct tenant_project *p)
{
	struct listing *l = arg;
	if (!l->ref)
		json_array_append_new(l->list, project_json(l->o, p->name));
	else if (ref_names(l->ref, "project", p->name))
		l->found = p->name;
}

void os_projects_list(struct osapi *o, struct os_req *r)
{
	struct listing l = {.o = o, .list = json_array()};
	if (o->identity->tenants)
		tenants_projects_foreach(o->identity->tenants, list_project, &l);
	else
		json_array_append_new(l.list, project_json(o, ADMIN));
	http_reply_json(r->req, 200, json_pack("{s:o}", "projects", l.list));
}

void os_project_show(struct osapi *o, struct os_req *r)
{
	struct os_ref ref = {.by_id = os_uuid_valid(r->id)};
	struct listing l = {.o = o, .ref = &ref};
	struct mv_error err;
	snprintf(ref.v, sizeof ref.v, "%s", r->id);
	if (o->identity->tenants)
		tenants_projects_foreach(o->identity->tenants, list_project, &l);
	else if (ref_names(&ref, "project", ADMIN))
		l.found = ADMIN;
	/* a project not one's own is not found, so that its existence does not leak */
	if (!l.found || (!r->who.admin && strcmp(l.found, r->who.authz.project) != 0)) {
		mv_fail(&err, 404, "not_found", "Could not find project: %.64s.", r->id);
		os_reply_error(r->req, OS_IDENTITY, &err);
		return;
	}
	http_reply_json(r->req, 200, json_pack("{s:o}", "project", project_json(o, l.found)));
}

static json_t *user_json(const char *name, const char *project)
{
	char uid[OS_UUID_LEN + 1], pid[OS_UUID_LEN + 1];
	os_uuid_of("user", name, uid);
	os_uuid_of("project", project, pid);
	return json_pack("{s:s, s:s, s:s, s:s, s:b, s:n}", "id", uid, "name", name, "domain_id", DOMAIN_ID,
	                 "default_project_id", pid, "enabled", true, "password_expires_at");
}

static void list_user(void *arg, const struct tenant_user *u)
{
	json_array_append_new(((struct listing *)arg)->list, user_json(u->name, u->project));
}

void os_users_list(struct osapi *o, struct os_req *r)
{
	struct listing l = {.o = o, .list = json_array()};
	if (o->identity->tenants)
		tenants_users_foreach(o->identity->tenants, list_user, &l);
	else
		json_array_append_new(l.list, user_json(ADMIN, ADMIN));
	http_reply_json(r->req, 200, json_pack("{s:o}", "users", l.list));
}
