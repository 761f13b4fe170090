/* tenants — projects, users and tokens (Keystone's names), kept in memory from the store
 * and written through it; and authentication: a bearer token to the principal it stands
 * for. No HTTP here (tenantapi.c serves /v1/projects, /v1/users, /v1/tokens). Everything
 * runs on the core's loop; password hashing does not (the caller runs it off the loop).
 *
 * A token is looked up by its SHA-256 (the clear text is never kept), then its hash is
 * compared in constant time; an expired or revoked token, or one of a removed user, does
 * not authenticate. Errors: 0, or -1 with an mv_error. */
#ifndef MICROVIM_TENANTS_H
#define MICROVIM_TENANTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "common/model.h"
#include "common/secret.h"
#include "core/authz.h"

#define TENANTS_ADMIN_USER "admin"
#define TENANTS_ADMIN_TOKEN_FILE "admin.token" /* in the data dir, 0600 */

struct tenant_project {
	char name[MV_NAME_MAX + 1];
	struct authz_quota quota;
	int64_t created_wall_us;
};

struct tenant_user {
	char name[MV_NAME_MAX + 1];
	char project[MV_NAME_MAX + 1];
	enum authz_role role;
	char *password_hash; /* NULL: none (log in with tokens an admin made) */
	int64_t created_wall_us;
};

struct tenant_token {
	char id[SECRET_ID_LEN + 1];
	char hash[SECRET_HASH_HEX_LEN + 1];
	char user[MV_NAME_MAX + 1];
	int64_t expires_wall_us; /* 0: never */
	bool revoked;
	int64_t created_wall_us;
};

struct store;
struct tenants;

/* Loads projects, users and tokens. NULL with words in err. */
struct tenants *tenants_open(struct store *store, char *err, size_t errlen);
void tenants_close(struct tenants *t);
/* Loads everything again from the store (another core sharing it changed something): 0,
 * memory now what the store holds; -1 after logging, memory as it was. What the getters
 * returned before does not outlive it. */
int tenants_reload(struct tenants *t);
/* First start with authentication: creates project admin, user admin (role admin) and a
 * token written to DATA_DIR/admin.token (0600), whose path it logs. Nothing when the
 * admin user exists. */
int tenants_bootstrap(struct tenants *t, const char *data_dir, char *err, size_t errlen);

/* The principal of a bearer token: 401 unauthorized (malformed, unknown, expired,
 * revoked; the message says which of expired/revoked, never the token). */
int tenants_authenticate(const struct tenants *t, const char *token, int64_t now_wall_us,
                         struct authz_principal *out, struct mv_error *err);

/* ---- projects ---- */
const struct tenant_project *tenants_project(const struct tenants *t, const char *name);
int tenants_project_create(struct tenants *t, const char *name, const struct authz_quota *quota,
                           struct mv_error *err);
/* With its users and their tokens; the caller checked it owns nothing. */
int tenants_project_remove(struct tenants *t, const char *name, struct mv_error *err);
void tenants_projects_foreach(const struct tenants *t, void (*fn)(void *arg, const struct tenant_project *p),
                              void *arg);

/* ---- users ---- */
const struct tenant_user *tenants_user(const struct tenants *t, const char *name);
/* password_hash: secret_password_hash's, or NULL. 404 when the project does not exist. */
int tenants_user_create(struct tenants *t, const char *name, const char *project, enum authz_role role,
                        const char *password_hash, struct mv_error *err);
/* With its tokens. */
int tenants_user_remove(struct tenants *t, const char *name, struct mv_error *err);
void tenants_users_foreach(const struct tenants *t, void (*fn)(void *arg, const struct tenant_user *u), void *arg);

/* ---- tokens ---- */
/* A new token for user: clear text in token_out (shown once, never kept), its record in
 * *out. expires_wall_us 0: never. */
int tenants_token_issue(struct tenants *t, const char *user, int64_t expires_wall_us,
                        char token_out[SECRET_TOKEN_LEN + 1], const struct tenant_token **out,
                        struct mv_error *err);
const struct tenant_token *tenants_token(const struct tenants *t, const char *id);
int tenants_token_revoke(struct tenants *t, const char *id, struct mv_error *err);
void tenants_tokens_foreach(const struct tenants *t, void (*fn)(void *arg, const struct tenant_token *tok),
                            void *arg);

#endif
