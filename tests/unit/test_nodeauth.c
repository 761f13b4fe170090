/* test_nodeauth — join tokens and node credentials (core/nodeauth.h) over a SQLite store in
 * a temp dir: issued tokens authenticate as what they are, expired and revoked ones are
 * refused saying which, a node id gets one credential, a revocation is kept, and all of it
 * is there again after a reopen. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fs.h"
#include "core/nodeauth.h"
#include "core/store.h"
#include "core/stores.h"
#include "unit.h"

static char tmpdir[64];

static struct store *open_store(void)
{
	struct store *s = NULL;
	char err[256] = "";
	if (store_open(tmpdir, &s, err, sizeof err) != 0) {
		fprintf(stderr, "  store_open %s: %s\n", tmpdir, err);
		unit_current_failed = 1;
	}
	return s;
}

static void count_join(void *arg, const struct node_join_token *j)
{
	(void)j;
	(*(int *)arg)++;
}

static void test_join_and_credentials(void)
{
	struct store *s = open_store();
	struct nodeauth *na;
	char join_id[SECRET_ID_LEN + 1];
	char err[256], join[SECRET_TOKEN_LEN + 1], old[SECRET_TOKEN_LEN + 1], cred[SECRET_TOKEN_LEN + 1];
	const struct node_join_token *j, *jo;
	const struct node_credential *k;
	struct authz_principal p;
	struct mv_error e;
	int n = 0;
	if (!s || !(na = nodeauth_open(s, err, sizeof err)))
		return;
	CHECK_EQ_INT(nodeauth_join_issue(na, 0, join, &j, &e), 0);
	CHECK(secret_token_well_formed(join) && j->nodes == 0 && !j->revoked);
	CHECK_EQ_INT(nodeauth_join_issue(na, 1000, old, &jo, &e), 0); /* expired at wall time 1000 */
	CHECK_EQ_INT(nodeauth_authenticate(na, join, 5000, &p, &e), 0);
	CHECK(p.kind == AUTHZ_JOIN && strcmp(p.token_id, j->id) == 0 && p.node_id[0] == '\0');
	CHECK_EQ_INT(nodeauth_authenticate(na, old, 5000, &p, &e), -1);
	CHECK(e.status == 401 && strstr(e.message, "expired") && !strstr(e.message, old));
	CHECK_EQ_INT(nodeauth_authenticate(na, old, 999, &p, &e), 0);
	CHECK_EQ_INT(nodeauth_authenticate(na, "garbage", 0, &p, &e), 1); /* not ours */
	old[10] = old[10] == 'a' ? 'b' : 'a';
	CHECK_EQ_INT(nodeauth_authenticate(na, old, 0, &p, &e), 1);
	/* one credential per node id */
	CHECK_EQ_INT(nodeauth_credential_issue(na, "aaaaaaaaaaaaaaaa", j->id, cred, &k, &e), 0);
	CHECK(strcmp(cred, join) != 0 && strcmp(k->node_id, "aaaaaaaaaaaaaaaa") == 0 && j->nodes == 1);
	CHECK_EQ_INT(nodeauth_credential_issue(na, "aaaaaaaaaaaaaaaa", j->id, old, &k, &e), -1);
	CHECK_EQ_INT(e.status, 409);
	CHECK_EQ_INT(nodeauth_authenticate(na, cred, 0, &p, &e), 0);
	CHECK(p.kind == AUTHZ_NODE && strcmp(p.node_id, "aaaaaaaaaaaaaaaa") == 0);
	/* revocations: a join token; a node with a credential; one without */
	CHECK_EQ_INT(nodeauth_join_revoke(na, j->id, &e), 0);
	CHECK_EQ_INT(nodeauth_authenticate(na, join, 0, &p, &e), -1);
	CHECK(strstr(e.message, "revoked") != NULL);
	CHECK_EQ_INT(nodeauth_join_revoke(na, "nope", &e), -1);
	CHECK_EQ_INT(e.status, 404);
	CHECK_EQ_INT(nodeauth_authenticate(na, cred, 0, &p, &e), 0); /* a node keeps its credential */
	CHECK_EQ_INT(nodeauth_node_revoke(na, "aaaaaaaaaaaaaaaa", &e), 0);
	CHECK_EQ_INT(nodeauth_authenticate(na, cred, 0, &p, &e), -1);
	CHECK(e.status == 401 && strstr(e.message, "revoked"));
	CHECK_EQ_INT(nodeauth_node_revoke(na, "bbbbbbbbbbbbbbbb", &e), 0);
	CHECK(nodeauth_node_revoked(na, "aaaaaaaaaaaaaaaa") && nodeauth_node_revoked(na, "bbbbbbbbbbbbbbbb"));
	CHECK(!nodeauth_node_revoked(na, "cccccccccccccccc"));
	snprintf(join_id, sizeof join_id, "%s", j->id);
	nodeauth_close(na);
	store_close(s);

	/* all of it again after a reopen */
	if (!(s = open_store()) || !(na = nodeauth_open(s, err, sizeof err)))
		return;
	nodeauth_joins_foreach(na, count_join, &n);
	CHECK_EQ_INT(n, 2);
	CHECK(nodeauth_node_revoked(na, "aaaaaaaaaaaaaaaa") && nodeauth_node_revoked(na, "bbbbbbbbbbbbbbbb"));
	k = nodeauth_credential(na, "aaaaaaaaaaaaaaaa");
	CHECK(k && strcmp(k->join_id, join_id) == 0 && nodeauth_join(na, join_id) && nodeauth_join(na, join_id)->nodes == 1);
	CHECK_EQ_INT(nodeauth_authenticate(na, cred, 0, &p, &e), -1);
	CHECK_EQ_INT(nodeauth_authenticate(na, join, 0, &p, &e), -1);
	nodeauth_close(na);
	store_close(s);
}

int main(void)
{
	snprintf(tmpdir, sizeof tmpdir, "/tmp/mv-test-nodeauth-XXXXXX");
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 2;
	}
	RUN(test_join_and_credentials);
	fs_remove_tree(tmpdir);
	UNIT_END();
}
