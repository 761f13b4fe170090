/* nodeauth — join tokens and node credentials, written through the store (nodeauth.h). */
#include "core/nodeauth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/hmap.h"
#include "common/log.h"
#include "core/store.h"

#define KIND_JOIN "join"
#define KIND_NODE "node"

struct nodeauth {
	struct store *store;
	struct hmap joins;       /* id -> struct node_join_token */
	struct hmap credentials; /* node id -> struct node_credential */
	struct hmap hashes;      /* hash -> a join token or a credential (told apart by kinds) */
	struct hmap kinds;       /* hash -> KIND_JOIN or KIND_NODE */
};

static void *zalloc(size_t n)
{
	void *p = calloc(1, n);
	if (!p)
		fatal("calloc");
	return p;
}

static void hash_add(struct nodeauth *na, const char *hash, void *v, const char *kind)
{
	if (!hash[0]) /* a revoked node that never had a credential: nothing to look up */
		return;
	hmap_put(&na->hashes, hash, v);
	hmap_put(&na->kinds, hash, (void *)kind);
}

static struct node_join_token *join_add(struct nodeauth *na, const struct store_node_secret_row *r)
{
	struct node_join_token *j = zalloc(sizeof *j);
	snprintf(j->id, sizeof j->id, "%s", r->id);
	snprintf(j->hash, sizeof j->hash, "%s", r->hash);
	j->expires_wall_us = r->expires_us;
	j->revoked = r->revoked;
	j->created_wall_us = r->created_us;
	hmap_put(&na->joins, j->id, j);
	hash_add(na, j->hash, j, KIND_JOIN);
	return j;
}

static struct node_credential *credential_add(struct nodeauth *na, const struct store_node_secret_row *r)
{
	struct node_credential *k = zalloc(sizeof *k);
	snprintf(k->id, sizeof k->id, "%s", r->id);
	snprintf(k->hash, sizeof k->hash, "%s", r->hash);
	snprintf(k->node_id, sizeof k->node_id, "%s", r->node_id);
	snprintf(k->join_id, sizeof k->join_id, "%s", r->join_id);
	k->revoked = r->revoked;
	k->created_wall_us = r->created_us;
	hmap_put(&na->credentials, k->node_id, k);
	hash_add(na, k->hash, k, KIND_NODE);
	return k;
}

static void count_join(struct nodeauth *na, const char *join_id)
{
	struct node_join_token *j = hmap_get(&na->joins, join_id);
	if (j)
		j->nodes++;
}

static void load_secret(void *arg, const struct store_node_secret_row *r)
{
	struct nodeauth *na = arg;
	if (strcmp(r->kind, KIND_JOIN) == 0)
		join_add(na, r);
	else if (strcmp(r->kind, KIND_NODE) == 0 && r->node_id[0])
		credential_add(na, r);
	else
		log_warnx("store: node secret %s of kind %s does not read back; skipped", r->id, r->kind);
}

static void count_loaded(struct nodeauth *na)
{
	const char *k;
	void *v;
	for (size_t i = 0; hmap_next(&na->credentials, &i, &k, &v);)
		count_join(na, ((struct node_credential *)v)->join_id);
}

struct nodeauth *nodeauth_open(struct store *store, char *err, size_t errlen)
{
	struct nodeauth *na = zalloc(sizeof *na);
	na->store = store;
	hmap_init(&na->joins);
	hmap_init(&na->credentials);
	hmap_init(&na->hashes);
	hmap_init(&na->kinds);
	if (store_node_secrets_load(store, load_secret, na) < 0) {
		snprintf(err, errlen, "cannot load join tokens and node credentials from the store");
		nodeauth_close(na);
		return NULL;
	}
	count_loaded(na); /* joins come in any order with the credentials */
	return na;
}

int nodeauth_reload(struct nodeauth *na)
{
	char err[160];
	struct nodeauth *fresh = nodeauth_open(na->store, err, sizeof err), old;
	if (!fresh) {
		log_warnx("nodeauth: %s; keeping what was loaded before", err);
		return -1;
	}
	old = *na; /* the caller's pointer stays valid: the contents change places */
	*na = *fresh;
	*fresh = old;
	nodeauth_close(fresh);
	return 0;
}

static void free_values(struct hmap *m)
{
	const char *k;
	void *v;
	for (size_t i = 0; hmap_next(m, &i, &k, &v);)
		free(v);
	hmap_free(m);
}

void nodeauth_close(struct nodeauth *na)
{
	if (!na)
		return;
	hmap_free(&na->hashes);
	hmap_free(&na->kinds);
	free_values(&na->joins);
	free_values(&na->credentials);
	free(na);
}

/* ---- authentication ---- */

int nodeauth_authenticate(const struct nodeauth *na, const char *token, int64_t now_wall_us,
                          struct authz_principal *out, struct mv_error *err)
{
	char hash[SECRET_HASH_HEX_LEN + 1];
	const char *kind;
	if (!secret_token_well_formed(token))
		return 1;
	secret_token_hash(token, hash);
	/* the lookup is by hash, so its timing says nothing of the token; the compare confirms */
	if (!(kind = hmap_get(&na->kinds, hash)))
		return 1;
	*out = (struct authz_principal){.role = ROLE_READER}; /* no role applies: authz_is_node */
	if (strcmp(kind, KIND_JOIN) == 0) {
		const struct node_join_token *j = hmap_get(&na->hashes, hash);
		if (!secret_hash_equal(j->hash, hash))
			return 1;
		if (j->revoked)
			return mv_fail(err, 401, "unauthorized", "join token %s was revoked: ask an admin for a new one "
			               "(microvim node-token create)", j->id);
		if (j->expires_wall_us && now_wall_us >= j->expires_wall_us)
			return mv_fail(err, 401, "unauthorized", "join token %s has expired: ask an admin for a new one "
			               "(microvim node-token create)", j->id);
		out->kind = AUTHZ_JOIN;
		snprintf(out->token_id, sizeof out->token_id, "%s", j->id);
		return 0;
	}
	const struct node_credential *k = hmap_get(&na->hashes, hash);
	if (!secret_hash_equal(k->hash, hash))
		return 1;
	if (k->revoked)
		return mv_fail(err, 401, "unauthorized", "the credential of node %s was revoked (microvim nodes revoke)",
		               k->node_id);
	out->kind = AUTHZ_NODE;
	snprintf(out->token_id, sizeof out->token_id, "%s", k->id);
	snprintf(out->node_id, sizeof out->node_id, "%s", k->node_id);
	return 0;
}

/* ---- writes: memory changed only after the store has them ---- */

static int store_failed(struct mv_error *err, const char *what)
{
	return mv_fail(err, 500, "store_failed", "could not %s in the store (see the core's log)", what);
}

/* A new secret: its clear text in token_out, its row (id, hash, created) in row. */
static int secret_new(struct store_node_secret_row *row, const char *kind, char token_out[SECRET_TOKEN_LEN + 1],
                      struct mv_error *err)
{
	if (secret_token_new(token_out) < 0 || secret_id_new(row->id) < 0)
		return mv_fail(err, 500, "internal", "no randomness for a token (libcrypto's RAND_bytes failed)");
	snprintf(row->kind, sizeof row->kind, "%s", kind);
	secret_token_hash(token_out, row->hash);
	row->created_us = clock_wall_us();
	return 0;
}

int nodeauth_join_issue(struct nodeauth *na, int64_t expires_wall_us, char token_out[SECRET_TOKEN_LEN + 1],
                        const struct node_join_token **out, struct mv_error *err)
{
	struct store_node_secret_row row = {.expires_us = expires_wall_us};
	if (secret_new(&row, KIND_JOIN, token_out, err) < 0)
		return -1;
	if (store_node_secret_insert(na->store, &row) < 0) {
		memset(token_out, 0, SECRET_TOKEN_LEN + 1);
		return store_failed(err, "write the join token");
	}
	*out = join_add(na, &row);
	return 0;
}

const struct node_join_token *nodeauth_join(const struct nodeauth *na, const char *id)
{
	return hmap_get(&na->joins, id);
}

int nodeauth_join_revoke(struct nodeauth *na, const char *id, struct mv_error *err)
{
	struct node_join_token *j = hmap_get(&na->joins, id);
	if (!j)
		return mv_fail(err, 404, "not_found", "no join token %.64s", id);
	if (!j->revoked && store_node_secret_revoke(na->store, id) < 0)
		return store_failed(err, "revoke the join token");
	j->revoked = true;
	return 0;
}

void nodeauth_joins_foreach(const struct nodeauth *na, void (*fn)(void *arg, const struct node_join_token *j),
                            void *arg)
{
	const char *k;
	void *v;
	for (size_t i = 0; hmap_next(&na->joins, &i, &k, &v);)
		fn(arg, v);
}

const struct node_credential *nodeauth_credential(const struct nodeauth *na, const char *node_id)
{
	return hmap_get(&na->credentials, node_id);
}

bool nodeauth_node_revoked(const struct nodeauth *na, const char *node_id)
{
	const struct node_credential *k = hmap_get(&na->credentials, node_id);
	return k && k->revoked;
}

int nodeauth_credential_issue(struct nodeauth *na, const char *node_id, const char *join_id,
                              char token_out[SECRET_TOKEN_LEN + 1], const struct node_credential **out,
                              struct mv_error *err)
{
	struct store_node_secret_row row = {0};
	if (hmap_get(&na->credentials, node_id))
		return mv_fail(err, 409, "node_id_taken", "node %s has a credential already", node_id);
	if (secret_new(&row, KIND_NODE, token_out, err) < 0)
		return -1;
	snprintf(row.node_id, sizeof row.node_id, "%s", node_id);
	snprintf(row.join_id, sizeof row.join_id, "%s", join_id ? join_id : "");
	if (store_node_secret_insert(na->store, &row) < 0) {
		memset(token_out, 0, SECRET_TOKEN_LEN + 1);
		return store_failed(err, "write the node's credential");
	}
	*out = credential_add(na, &row);
	count_join(na, row.join_id);
	return 0;
}

int nodeauth_node_revoke(struct nodeauth *na, const char *node_id, struct mv_error *err)
{
	struct node_credential *k = hmap_get(&na->credentials, node_id);
	struct store_node_secret_row row = {.revoked = true};
	if (k) {
		if (!k->revoked && store_node_secret_revoke(na->store, k->id) < 0)
			return store_failed(err, "revoke the node's credential");
		k->revoked = true;
		return 0;
	}
	/* it registered with an admin's token and has no credential: a revoked record keeps
	 * its id refused all the same */
	if (secret_id_new(row.id) < 0)
		return mv_fail(err, 500, "internal", "no randomness for an id (libcrypto's RAND_bytes failed)");
	snprintf(row.kind, sizeof row.kind, "%s", KIND_NODE);
	snprintf(row.node_id, sizeof row.node_id, "%s", node_id);
	row.created_us = clock_wall_us();
	if (store_node_secret_insert(na->store, &row) < 0)
		return store_failed(err, "record the node's revocation");
	credential_add(na, &row);
	return 0;
}
