/* authz — who may do what: Keystone's roles on a project, the permission table, the
 * visibility of a project's objects, and quotas. Pure functions of typed values (no
 * store, no HTTP): core.c asks before a handler runs, the cluster asks before a create.
 *
 *   role     read (its project)   write (its project)   admin (every project, the cluster)
 *   reader        yes                   -                      -
 *   member        yes                  yes                     -
 *   admin         yes                  yes                    yes
 *
 * "write" is create and delete of instances and images; "admin" is projects, users,
 * other users' tokens, nodes, metrics and traces. An object of another project is not
 * visible to a reader or member at all (a 404, so its existence does not leak); an admin
 * sees every project's. */
#ifndef MICROVIM_AUTHZ_H
#define MICROVIM_AUTHZ_H

#include <stdbool.h>
#include <stdint.h>

#include "common/error.h"
#include "common/model.h"
#include "common/secret.h"

#define AUTHZ_ADMIN_PROJECT "admin" /* made at first start with auth; owns what came before */
#define AUTHZ_UNLIMITED (-1)

enum authz_role { ROLE_READER, ROLE_MEMBER, ROLE_ADMIN, ROLE_COUNT };
extern const char *const authz_role_names[ROLE_COUNT];
/* "reader", "member", "admin" -> the role; -1 otherwise. */
int authz_role_parse(const char *s);

enum authz_action { ACTION_READ, ACTION_WRITE, ACTION_ADMIN, ACTION_COUNT };

/* Who made a request. */
enum authz_kind {
	AUTHZ_OPEN,    /* authentication off (loopback without --auth): an admin */
	AUTHZ_CLUSTER, /* the shared --token-file token: an admin */
	AUTHZ_USER,    /* a user's token */
};

struct authz_principal {
	enum authz_kind kind;
	enum authz_role role;
	char project[MV_NAME_MAX + 1];
	char user[MV_NAME_MAX + 1];        /* "" unless AUTHZ_USER */
	char token_id[SECRET_ID_LEN + 1];  /* "" unless AUTHZ_USER */
};

/* The principal of an open core or of the shared token: admin of the admin project. */
void authz_principal_admin(struct authz_principal *p, enum authz_kind kind);
bool authz_allows(enum authz_role role, enum authz_action action);
/* May p see an object of `project`? */
bool authz_sees(const struct authz_principal *p, const char *project);

/* ---- quotas ---- */

/* A project's limits, or what it uses; AUTHZ_UNLIMITED (-1) in a limit: none. */
struct authz_quota {
	int64_t instances;
	int64_t vcpus_milli;
	int64_t memory_mb;
};

/* Would usage + want stay within limits? Else 403 quota_exceeded naming the first
 * resource over, its limit, the usage and what was asked. */
int authz_quota_check(const char *project, const struct authz_quota *limits, const struct authz_quota *usage,
                      const struct authz_quota *want, struct mv_error *err);

#endif
