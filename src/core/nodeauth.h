/* nodeauth — node identity: the join tokens an admin makes and the credential each node
 * gets when it joins, kept in memory from the store and written through it. No HTTP here
 * (nodeidapi.c serves /v1/node-tokens and POST /v1/nodes/{id}/revoke; nodeapi.c issues a
 * credential at registration). Everything runs on the core's loop.
 *
 *   join token   "mvt_" + 256 random bits (common/secret.h), made by an admin with an
 *                expiry (24 h unless said). Multi-use until it expires or is revoked, like
 *                Kubernetes' bootstrap tokens: one token can bring up a rack of nodes. It
 *                only registers a node id that has no credential yet.
 *   credential   the same shape, issued once per node id at its first join and bound to
 *                that id; the node keeps it (DATA_DIR/node.credential, 0600) and registers
 *                with it from then on. It never expires; `microvim nodes revoke ID` ends
 *                it, and a revoked id stays refused (a node that must come back takes a
 *                new id: remove its DATA_DIR/node-id and node.credential).
 *
 * Like users' tokens, both are looked up by their SHA-256 (the clear text is never kept,
 * never logged) and the hash is then compared in constant time.
 * Errors: 0, or -1 with an mv_error. */
#ifndef MICROVIM_NODEAUTH_H
#define MICROVIM_NODEAUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "common/model.h"
#include "common/secret.h"
#include "core/authz.h"

#define NODEAUTH_JOIN_EXPIRES_DEFAULT_S (24 * 3600)

struct node_join_token {
	char id[SECRET_ID_LEN + 1];
	char hash[SECRET_HASH_HEX_LEN + 1];
	int64_t expires_wall_us; /* 0: never */
	bool revoked;
	int64_t created_wall_us;
	int nodes;               /* credentials issued with it (joins) */
};

struct node_credential {
	char id[SECRET_ID_LEN + 1];
	char hash[SECRET_HASH_HEX_LEN + 1]; /* "" for a node revoked before it had one */
	char node_id[MV_ID_LEN + 1];
	char join_id[SECRET_ID_LEN + 1];
	bool revoked;
	int64_t created_wall_us;
};

struct store;
struct nodeauth;

/* Loads join tokens and credentials. NULL with words in err. */
struct nodeauth *nodeauth_open(struct store *store, char *err, size_t errlen);
void nodeauth_close(struct nodeauth *na);
/* Loads everything again from the store (another core sharing it changed something): 0,
 * or -1 after logging with memory as it was. Earlier getters' pointers do not outlive it. */
int nodeauth_reload(struct nodeauth *na);

/* What a bearer token is to node identity: 0 with *out (AUTHZ_JOIN or AUTHZ_NODE) when it
 * is a join token or a credential; 1 when it is neither (someone else's to check); -1
 * with a 401 when it is one that expired or was revoked (the message says which, by id). */
int nodeauth_authenticate(const struct nodeauth *na, const char *token, int64_t now_wall_us,
                          struct authz_principal *out, struct mv_error *err);

/* ---- join tokens ---- */
/* A new join token: clear text in token_out (shown once), its record in *out. */
int nodeauth_join_issue(struct nodeauth *na, int64_t expires_wall_us, char token_out[SECRET_TOKEN_LEN + 1],
                        const struct node_join_token **out, struct mv_error *err);
const struct node_join_token *nodeauth_join(const struct nodeauth *na, const char *id);
/* Nodes that joined with it keep their credentials. */
int nodeauth_join_revoke(struct nodeauth *na, const char *id, struct mv_error *err);
void nodeauth_joins_foreach(const struct nodeauth *na, void (*fn)(void *arg, const struct node_join_token *j),
                            void *arg);

/* ---- node credentials ---- */
/* The credential (or revocation) of a node id, or NULL. */
const struct node_credential *nodeauth_credential(const struct nodeauth *na, const char *node_id);
bool nodeauth_node_revoked(const struct nodeauth *na, const char *node_id);
/* A new credential bound to node_id, issued with join token join_id: 409 when the id has
 * one already (the caller checked; this is the store's unique row). */
int nodeauth_credential_issue(struct nodeauth *na, const char *node_id, const char *join_id,
                              char token_out[SECRET_TOKEN_LEN + 1], const struct node_credential **out,
                              struct mv_error *err);
/* Cuts node_id off: its credential is revoked (a revoked record is made when it has
 * none), so it can neither register nor call a node route again. */
int nodeauth_node_revoke(struct nodeauth *na, const char *node_id, struct mv_error *err);

#endif
