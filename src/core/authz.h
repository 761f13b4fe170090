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
	AUTHZ_JOIN,    /* a join token (core/nodeauth.h): may register a new node, nothing else */
	AUTHZ_NODE,    /* a node's credential: may act as its node_id only */
};

struct authz_principal {
	enum authz_kind kind;
	enum authz_role role;
	char project[MV_NAME_MAX + 1];
	char user[MV_NAME_MAX + 1];        /* "" unless AUTHZ_USER */
	char token_id[SECRET_ID_LEN + 1];  /* a user's token, a join token, a credential; else "" */
	char node_id[MV_ID_LEN + 1];       /* "" unless AUTHZ_NODE */
};

/* The principal of an open core or of the shared token: admin of the admin project. */
void authz_principal_admin(struct authz_principal *p, enum authz_kind kind);
bool authz_allows(enum authz_role role, enum authz_action action);
/* May p see an object of `project`? */
bool authz_sees(const struct authz_principal *p, const char *project);

/* ---- node identity ---- */

/* A join token's or a node credential's: such a caller may register, call the node routes
 * and fetch blobs, and nothing else (no role applies to it). */
bool authz_is_node(const struct authz_principal *p);
/* May who register node `node_id`, which has its own credential (has_credential) or was
 * revoked? A revoked id: 403 node_revoked for everyone. A credential: only as its own
 * node (403 node_mismatch). A join token: only an id without a credential (403
 * node_id_taken: a node's id cannot be taken over by joining again). An admin (the
 * cluster token, an open core) registers any id not revoked, as before. */
int authz_node_register_check(const struct authz_principal *who, const char *node_id, bool has_credential,
                              bool revoked, struct mv_error *err);
/* May who act as node `node_id` on a node route (long-poll, heartbeat, reports, bridges,
 * the blobs of its instances)? A credential of another node: 403 node_mismatch; a join
 * token: 403 forbidden (register first). */
int authz_node_route_check(const struct authz_principal *who, const char *node_id, struct mv_error *err);

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
