/* tenants — projects, users, tokens in memory, written through the store (tenants.h). */
#include "core/tenants.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/fs.h"
#include "common/hmap.h"
#include "common/log.h"
#include "core/store.h"

struct tenants {
	struct store *store;
	struct hmap projects;     /* name -> struct tenant_project */
	struct hmap users;        /* name -> struct tenant_user */
	struct hmap tokens;       /* id -> struct tenant_token */
	struct hmap token_hashes; /* hash -> the same struct tenant_token */
};

static void *zalloc(size_t n)
{
	void *p = calloc(1, n);
	if (!p)
		fatal("calloc");
	return p;
}

/* ---- loading ---- */

static void load_project(void *arg, const struct store_project_row *r)
{
	struct tenants *t = arg;
	struct tenant_project *p = zalloc(sizeof *p);
	snprintf(p->name, sizeof p->name, "%s", r->name);
	p->quota = (struct authz_quota){r->quota_instances, r->quota_vcpus_milli, r->quota_memory_mb};
	p->created_wall_us = r->created_us;
	hmap_put(&t->projects, p->name, p);
}

static void load_user(void *arg, const struct store_user_row *r)
{
	struct tenants *t = arg;
	struct tenant_user *u;
	int role = authz_role_parse(r->role);
	if (role < 0) {
		log_warnx("store: user %s has an unknown role %s; skipped", r->name, r->role);
		return;
	}
	u = zalloc(sizeof *u);
	snprintf(u->name, sizeof u->name, "%s", r->name);
	snprintf(u->project, sizeof u->project, "%s", r->project);
	u->role = (enum authz_role)role;
	if (r->password_hash && !(u->password_hash = strdup(r->password_hash)))
		fatal("strdup");
	u->created_wall_us = r->created_us;
	hmap_put(&t->users, u->name, u);
}

static void token_add(struct tenants *t, struct tenant_token *k)
{
	hmap_put(&t->tokens, k->id, k);
	hmap_put(&t->token_hashes, k->hash, k);
}

static void load_token(void *arg, const struct store_token_row *r)
{
	struct tenant_token *k = zalloc(sizeof *k);
	snprintf(k->id, sizeof k->id, "%s", r->id);
	snprintf(k->hash, sizeof k->hash, "%s", r->hash);
	snprintf(k->user, sizeof k->user, "%s", r->user);
	k->expires_wall_us = r->expires_us;
	k->revoked = r->revoked;
	k->created_wall_us = r->created_us;
	token_add(arg, k);
}

struct tenants *tenants_open(struct store *store, char *err, size_t errlen)
{
	struct tenants *t = zalloc(sizeof *t);
	t->store = store;
	hmap_init(&t->projects);
	hmap_init(&t->users);
	hmap_init(&t->tokens);
	hmap_init(&t->token_hashes);
	if (store_projects_load(store, load_project, t) < 0 || store_users_load(store, load_user, t) < 0 ||
	    store_tokens_load(store, load_token, t) < 0) {
		snprintf(err, errlen, "cannot load projects, users and tokens from the store");
		tenants_close(t);
		return NULL;
	}
	return t;
}

int tenants_reload(struct tenants *t)
{
	char err[160];
	struct tenants *fresh = tenants_open(t->store, err, sizeof err), old;
	if (!fresh) {
		log_warnx("tenants: %s; keeping what was loaded before", err);
		return -1;
	}
	old = *t; /* the caller's pointer stays valid: the contents change places */
	*t = *fresh;
	*fresh = old;
	tenants_close(fresh);
	return 0;
}

static void free_all(struct hmap *m, void (*free_one)(void *))
{
	const char *k;
	void *v;
	for (size_t i = 0; hmap_next(m, &i, &k, &v);)
		free_one(v);
	hmap_free(m);
}

static void user_free(void *v)
{
	struct tenant_user *u = v;
	free(u->password_hash);
	free(u);
}

void tenants_close(struct tenants *t)
{
	if (!t)
		return;
	free_all(&t->projects, free);
	free_all(&t->users, user_free);
	hmap_free(&t->token_hashes);
	free_all(&t->tokens, free);
	free(t);
}

/* ---- authentication ---- */

int tenants_authenticate(const struct tenants *t, const char *token, int64_t now_wall_us,
                         struct authz_principal *out, struct mv_error *err)
{
	char hash[SECRET_HASH_HEX_LEN + 1];
	const struct tenant_token *k;
	const struct tenant_user *u;

	if (!secret_token_well_formed(token))
		return mv_fail(err, 401, "unauthorized", "the bearer token is not a microvim token (mvt_ and 64 hex)");
	secret_token_hash(token, hash);
	/* the lookup is by hash, so its timing says nothing of the token; the compare confirms */
	if (!(k = hmap_get(&t->token_hashes, hash)) || !secret_hash_equal(k->hash, hash) ||
	    !(u = hmap_get(&t->users, k->user)))
		return mv_fail(err, 401, "unauthorized", "unknown token: log in again (POST /v1/tokens)");
	if (k->revoked)
		return mv_fail(err, 401, "unauthorized", "token %s was revoked: log in again", k->id);
	if (k->expires_wall_us && now_wall_us >= k->expires_wall_us)
		return mv_fail(err, 401, "unauthorized", "token %s has expired: log in again", k->id);
	*out = (struct authz_principal){.kind = AUTHZ_USER, .role = u->role};
	snprintf(out->project, sizeof out->project, "%s", u->project);
	snprintf(out->user, sizeof out->user, "%s", u->name);
	snprintf(out->token_id, sizeof out->token_id, "%s", k->id);
	return 0;
}

/* ---- writes: one transaction each, memory changed only after the commit ---- */

static int store_failed(struct tenants *t, struct mv_error *err, const char *what)
{
	store_rollback(t->store);
	return mv_fail(err, 500, "store_failed", "could not %s in the store (see the core's log)", what);
}

const struct tenant_project *tenants_project(const struct tenants *t, const char *name)
{
	return hmap_get(&t->projects, name);
}

int tenants_project_create(struct tenants *t, const char *name, const struct authz_quota *quota,
                           struct mv_error *err)
{
	struct store_project_row row = {.quota_instances = quota->instances, .quota_vcpus_milli = quota->vcpus_milli,
	                                .quota_memory_mb = quota->memory_mb, .created_us = clock_wall_us()};
	struct tenant_project *p;
	int rc;
	if (hmap_get(&t->projects, name))
		return mv_fail(err, 409, "name_conflict", "project %s exists already", name);
	snprintf(row.name, sizeof row.name, "%s", name);
	if ((rc = store_project_insert(t->store, &row)) == STORE_TAKEN) /* by another core, a moment ago */
		return mv_fail(err, 409, "name_conflict", "project %s was created at the same moment through another core",
		               name);
	if (rc < 0)
		return store_failed(t, err, "write the project");
	p = zalloc(sizeof *p);
	snprintf(p->name, sizeof p->name, "%s", name);
	p->quota = *quota;
	p->created_wall_us = row.created_us;
	hmap_put(&t->projects, p->name, p);
	return 0;
}

static void tokens_of_user_forget(struct tenants *t, const char *user)
{
	const char *k;
	void *v;
	struct tenant_token **gone = NULL;
	size_t n = 0;
	for (size_t i = 0; hmap_next(&t->tokens, &i, &k, &v);) {
		struct tenant_token *tok = v;
		if (strcmp(tok->user, user) != 0)
			continue;
		if (!(gone = realloc(gone, (n + 1) * sizeof *gone)))
			fatal("realloc");
		gone[n++] = tok;
	}
	for (size_t i = 0; i < n; i++) { /* not while iterating */
		hmap_remove(&t->tokens, gone[i]->id);
		hmap_remove(&t->token_hashes, gone[i]->hash);
		free(gone[i]);
	}
	free(gone);
}

static void user_forget(struct tenants *t, struct tenant_user *u)
{
	tokens_of_user_forget(t, u->name);
	hmap_remove(&t->users, u->name);
	user_free(u);
}

int tenants_project_remove(struct tenants *t, const char *name, struct mv_error *err)
{
	struct tenant_project *p = hmap_get(&t->projects, name);
	const char *k;
	void *v;
	struct tenant_user **gone = NULL;
	size_t n = 0;

	if (!p)
		return mv_fail(err, 404, "not_found", "no project %.64s", name);
	if (store_project_delete(t->store, name) < 0)
		return store_failed(t, err, "remove the project");
	for (size_t i = 0; hmap_next(&t->users, &i, &k, &v);) {
		struct tenant_user *u = v;
		if (strcmp(u->project, name) != 0)
			continue;
		if (!(gone = realloc(gone, (n + 1) * sizeof *gone)))
			fatal("realloc");
		gone[n++] = u;
	}
	for (size_t i = 0; i < n; i++)
		user_forget(t, gone[i]);
	free(gone);
	hmap_remove(&t->projects, name);
	free(p);
	return 0;
}

void tenants_projects_foreach(const struct tenants *t, void (*fn)(void *arg, const struct tenant_project *p),
                              void *arg)
{
	const char *k;
	void *v;
	for (size_t i = 0; hmap_next(&t->projects, &i, &k, &v);)
		fn(arg, v);
}

const struct tenant_user *tenants_user(const struct tenants *t, const char *name)
{
	return hmap_get(&t->users, name);
}

int tenants_user_create(struct tenants *t, const char *name, const char *project, enum authz_role role,
                        const char *password_hash, struct mv_error *err)
{
	struct store_user_row row = {.password_hash = password_hash, .created_us = clock_wall_us()};
	struct tenant_user *u;
	int rc;
	if (!hmap_get(&t->projects, project))
		return mv_fail(err, 404, "not_found", "no project %s (create it first: microvim project create %s)",
		               project, project);
	if (hmap_get(&t->users, name))
		return mv_fail(err, 409, "name_conflict", "user %s exists already", name);
	snprintf(row.name, sizeof row.name, "%s", name);
	snprintf(row.project, sizeof row.project, "%s", project);
	snprintf(row.role, sizeof row.role, "%s", authz_role_names[role]);
	if ((rc = store_user_insert(t->store, &row)) == STORE_TAKEN) /* by another core, a moment ago */
		return mv_fail(err, 409, "name_conflict", "user %s was created at the same moment through another core", name);
	if (rc < 0)
		return store_failed(t, err, "write the user");
	u = zalloc(sizeof *u);
	snprintf(u->name, sizeof u->name, "%s", name);
	snprintf(u->project, sizeof u->project, "%s", project);
	u->role = role;
	if (password_hash && !(u->password_hash = strdup(password_hash)))
		fatal("strdup");
	u->created_wall_us = row.created_us;
	hmap_put(&t->users, u->name, u);
	return 0;
}

int tenants_user_remove(struct tenants *t, const char *name, struct mv_error *err)
{
	struct tenant_user *u = hmap_get(&t->users, name);
	if (!u)
		return mv_fail(err, 404, "not_found", "no user %.64s", name);
	if (store_user_delete(t->store, name) < 0)
		return store_failed(t, err, "remove the user");
	user_forget(t, u);
	return 0;
}

void tenants_users_foreach(const struct tenants *t, void (*fn)(void *arg, const struct tenant_user *u), void *arg)
{
	const char *k;
	void *v;
	for (size_t i = 0; hmap_next(&t->users, &i, &k, &v);)
		fn(arg, v);
}

int tenants_token_issue(struct tenants *t, const char *user, int64_t expires_wall_us,
                        char token_out[SECRET_TOKEN_LEN + 1], const struct tenant_token **out,
                        struct mv_error *err)
{
	struct store_token_row row = {.expires_us = expires_wall_us, .created_us = clock_wall_us()};
	struct tenant_token *k;
	if (!hmap_get(&t->users, user))
		return mv_fail(err, 404, "not_found", "no user %.64s", user);
	if (secret_token_new(token_out) < 0 || secret_id_new(row.id) < 0)
		return mv_fail(err, 500, "internal", "no randomness for a token (libcrypto's RAND_bytes failed)");
	secret_token_hash(token_out, row.hash);
	snprintf(row.user, sizeof row.user, "%s", user);
	if (store_token_insert(t->store, &row) < 0) {
		memset(token_out, 0, SECRET_TOKEN_LEN + 1);
		return store_failed(t, err, "write the token");
	}
	k = zalloc(sizeof *k);
	snprintf(k->id, sizeof k->id, "%s", row.id);
	snprintf(k->hash, sizeof k->hash, "%s", row.hash);
	snprintf(k->user, sizeof k->user, "%s", user);
	k->expires_wall_us = expires_wall_us;
	k->created_wall_us = row.created_us;
	token_add(t, k);
	*out = k;
	return 0;
}

const struct tenant_token *tenants_token(const struct tenants *t, const char *id) { return hmap_get(&t->tokens, id); }

int tenants_token_revoke(struct tenants *t, const char *id, struct mv_error *err)
{
	struct tenant_token *k = hmap_get(&t->tokens, id);
	if (!k)
		return mv_fail(err, 404, "not_found", "no token %.64s", id);
	if (!k->revoked && store_token_revoke(t->store, id) < 0)
		return store_failed(t, err, "revoke the token");
	k->revoked = true;
	return 0;
}

void tenants_tokens_foreach(const struct tenants *t, void (*fn)(void *arg, const struct tenant_token *tok),
                            void *arg)
{
	const char *k;
	void *v;
	for (size_t i = 0; hmap_next(&t->tokens, &i, &k, &v);)
		fn(arg, v);
}

/* ---- first start ---- */

int tenants_bootstrap(struct tenants *t, const char *data_dir, char *err, size_t errlen)
{
	static const struct authz_quota unlimited = {AUTHZ_UNLIMITED, AUTHZ_UNLIMITED, AUTHZ_UNLIMITED};
	char token[SECRET_TOKEN_LEN + 2], path[4096];
	const struct tenant_token *k;
	struct mv_error e;
	int rc;

	if (hmap_get(&t->users, TENANTS_ADMIN_USER))
		return 0;
	if (snprintf(path, sizeof path, "%s/%s", data_dir, TENANTS_ADMIN_TOKEN_FILE) >= (int)sizeof path) {
		snprintf(err, errlen, "--data-dir path too long");
		return -1;
	}
	if ((!hmap_get(&t->projects, AUTHZ_ADMIN_PROJECT) &&
	     tenants_project_create(t, AUTHZ_ADMIN_PROJECT, &unlimited, &e) < 0) ||
	    tenants_user_create(t, TENANTS_ADMIN_USER, AUTHZ_ADMIN_PROJECT, ROLE_ADMIN, NULL, &e) < 0 ||
	    tenants_token_issue(t, TENANTS_ADMIN_USER, 0, token, &k, &e) < 0) {
		snprintf(err, errlen, "cannot create the admin project, user and token: %s", e.message);
		return -1;
	}
	token[SECRET_TOKEN_LEN] = '\n'; /* room reserved above: SECRET_TOKEN_LEN + 2 */
	token[SECRET_TOKEN_LEN + 1] = '\0';
	if ((rc = fs_write_atomic(path, token, strlen(token), true)) < 0) {
		snprintf(err, errlen, "cannot write %s: %s", path, strerror(-rc));
		return -1;
	}
	memset(token, 0, sizeof token);
	log_info("authentication on: first start, project admin and user admin created; the admin's token is in %s "
	         "(mode 0600; give it with --token-file)", path);
	return 0;
}
