/* test_authz — tokens and password hashes (common/secret), the permission table,
 * visibility across projects and the quota check (core/authz). */
#include <stdio.h>
#include <string.h>

#include "common/secret.h"
#include "core/authz.h"
#include "unit.h"

static void test_token_shape(void)
{
	char a[SECRET_TOKEN_LEN + 1], b[SECRET_TOKEN_LEN + 1];
	CHECK_EQ_INT(secret_token_new(a), 0);
	CHECK_EQ_INT(secret_token_new(b), 0);
	CHECK_EQ_INT(strlen(a), SECRET_TOKEN_LEN);
	CHECK(strncmp(a, "mvt_", 4) == 0);
	CHECK(strcmp(a, b) != 0);
	CHECK(secret_token_well_formed(a));
	CHECK(!secret_token_well_formed("mvt_"));
	CHECK(!secret_token_well_formed("garbage"));
	a[10] = 'G'; /* not lower-case hex */
	CHECK(!secret_token_well_formed(a));
}

static void test_token_hash(void)
{
	char h1[SECRET_HASH_HEX_LEN + 1], h2[SECRET_HASH_HEX_LEN + 1];
	/* SHA-256("abc"), the FIPS 180-2 example */
	secret_token_hash("abc", h1);
	CHECK_STR(h1, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	secret_token_hash("abd", h2);
	CHECK(!secret_hash_equal(h1, h2));
	CHECK(secret_hash_equal(h1, h1));
	CHECK(!secret_hash_equal(h1, "ba78"));
}

static void test_ids(void)
{
	char a[SECRET_ID_LEN + 1], b[SECRET_ID_LEN + 1];
	CHECK_EQ_INT(secret_id_new(a), 0);
	CHECK_EQ_INT(secret_id_new(b), 0);
	CHECK_EQ_INT(strlen(a), SECRET_ID_LEN);
	CHECK(strcmp(a, b) != 0);
}

static void test_password(void)
{
	char h[SECRET_PASSWORD_HASH_MAX + 1], h2[SECRET_PASSWORD_HASH_MAX + 1];
	CHECK_EQ_INT(secret_password_hash("correct horse", 1000, h), 0);
	CHECK(strncmp(h, "pbkdf2-sha256$1000$", 19) == 0);
	CHECK(secret_password_verify("correct horse", h));
	CHECK(!secret_password_verify("correct horsE", h));
	CHECK(!secret_password_verify("", h));
	CHECK_EQ_INT(secret_password_hash("correct horse", 1000, h2), 0);
	CHECK(strcmp(h, h2) != 0); /* salted */
	CHECK(!secret_password_verify("x", "pbkdf2-sha256$0$00$00"));
	CHECK(!secret_password_verify("x", "md5$whatever"));
	CHECK(!secret_password_verify("x", "pbkdf2-sha256$1000$zz$zz"));
	CHECK(!secret_password_verify("x", ""));
}

static void test_password_full_rounds(void)
{
	char h[SECRET_PASSWORD_HASH_MAX + 1];
	CHECK_EQ_INT(secret_password_hash("pw", SECRET_PBKDF2_ITERATIONS, h), 0);
	CHECK(strncmp(h, "pbkdf2-sha256$310000$", 21) == 0);
	CHECK(secret_password_verify("pw", h));
}

static void test_permission_table(void)
{
	CHECK(authz_allows(ROLE_READER, ACTION_READ));
	CHECK(!authz_allows(ROLE_READER, ACTION_WRITE));
	CHECK(!authz_allows(ROLE_READER, ACTION_ADMIN));
	CHECK(authz_allows(ROLE_MEMBER, ACTION_READ));
	CHECK(authz_allows(ROLE_MEMBER, ACTION_WRITE));
	CHECK(!authz_allows(ROLE_MEMBER, ACTION_ADMIN));
	for (int a = 0; a < ACTION_COUNT; a++)
		CHECK(authz_allows(ROLE_ADMIN, (enum authz_action)a));
	CHECK(!authz_allows((enum authz_role)7, ACTION_READ));
	CHECK_EQ_INT(authz_role_parse("member"), ROLE_MEMBER);
	CHECK_EQ_INT(authz_role_parse("Admin"), -1);
	CHECK_EQ_INT(authz_role_parse(NULL), -1);
}

static void test_visibility(void)
{
	struct authz_principal admin, m = {.kind = AUTHZ_USER, .role = ROLE_MEMBER, .project = "blue"};
	authz_principal_admin(&admin, AUTHZ_CLUSTER);
	CHECK_STR(admin.project, "admin");
	CHECK(authz_sees(&admin, "blue"));
	CHECK(authz_sees(&m, "blue"));
	CHECK(!authz_sees(&m, "red"));
	CHECK(!authz_sees(&m, "blue2"));
}

static void test_quota(void)
{
	struct authz_quota lim = {.instances = 3, .vcpus_milli = 2000, .memory_mb = AUTHZ_UNLIMITED};
	struct authz_quota use = {.instances = 2, .vcpus_milli = 1500, .memory_mb = 1 << 20};
	struct authz_quota want = {.instances = 1, .vcpus_milli = 500, .memory_mb = 4096};
	struct mv_error err;
	CHECK_EQ_INT(authz_quota_check("p", &lim, &use, &want, &err), 0); /* exactly at the limit */
	want.instances = 2;
	CHECK_EQ_INT(authz_quota_check("p", &lim, &use, &want, &err), -1);
	CHECK_EQ_INT(err.status, 403);
	CHECK_STR(err.code, "quota_exceeded");
	CHECK(strstr(err.message, "instances") && strstr(err.message, "limit 3") && strstr(err.message, "usage 2"));
	want.instances = 1;
	want.vcpus_milli = 600;
	CHECK_EQ_INT(authz_quota_check("p", &lim, &use, &want, &err), -1);
	CHECK(strstr(err.message, "vcpus") && strstr(err.message, "limit 2,") && strstr(err.message, "usage 1.5"));
	lim.instances = lim.vcpus_milli = AUTHZ_UNLIMITED;
	CHECK_EQ_INT(authz_quota_check("p", &lim, &use, &want, &err), 0);
	lim.memory_mb = 0; /* a zero quota refuses everything */
	CHECK_EQ_INT(authz_quota_check("p", &lim, &use, &want, &err), -1);
	CHECK(strstr(err.message, "memory_mb"));
}

/* Who may register which node id, and act as which node (core/nodeauth.h's policy). */
static void test_node_identity(void)
{
	struct authz_principal admin, a = {.kind = AUTHZ_NODE, .node_id = "aaaaaaaaaaaaaaaa", .token_id = "k1"};
	struct authz_principal join = {.kind = AUTHZ_JOIN, .token_id = "j1"};
	struct authz_principal user = {.kind = AUTHZ_USER, .role = ROLE_MEMBER, .project = "blue"};
	struct mv_error err;
	authz_principal_admin(&admin, AUTHZ_CLUSTER);
	CHECK(authz_is_node(&a) && authz_is_node(&join) && !authz_is_node(&admin) && !authz_is_node(&user));
	/* registering */
	CHECK_EQ_INT(authz_node_register_check(&a, "aaaaaaaaaaaaaaaa", true, false, &err), 0);
	CHECK_EQ_INT(authz_node_register_check(&a, "bbbbbbbbbbbbbbbb", true, false, &err), -1);
	CHECK(err.status == 403 && strcmp(err.code, "node_mismatch") == 0 && strstr(err.message, "bbbbbbbbbbbbbbbb"));
	CHECK_EQ_INT(authz_node_register_check(&join, "bbbbbbbbbbbbbbbb", false, false, &err), 0);
	CHECK_EQ_INT(authz_node_register_check(&join, "bbbbbbbbbbbbbbbb", true, false, &err), -1);
	CHECK(err.status == 403 && strcmp(err.code, "node_id_taken") == 0);
	CHECK_EQ_INT(authz_node_register_check(&admin, "bbbbbbbbbbbbbbbb", true, false, &err), 0);
	for (const struct authz_principal *p = &admin; p; p = p == &admin ? &a : p == &a ? &join : NULL) {
		CHECK_EQ_INT(authz_node_register_check(p, "aaaaaaaaaaaaaaaa", false, true, &err), -1);
		CHECK(err.status == 403 && strcmp(err.code, "node_revoked") == 0);
	}
	/* the node routes */
	CHECK_EQ_INT(authz_node_route_check(&a, "aaaaaaaaaaaaaaaa", &err), 0);
	CHECK_EQ_INT(authz_node_route_check(&a, "bbbbbbbbbbbbbbbb", &err), -1);
	CHECK(err.status == 403 && strcmp(err.code, "node_mismatch") == 0);
	CHECK_EQ_INT(authz_node_route_check(&join, "aaaaaaaaaaaaaaaa", &err), -1);
	CHECK(err.status == 403 && strcmp(err.code, "forbidden") == 0);
	CHECK_EQ_INT(authz_node_route_check(&admin, "bbbbbbbbbbbbbbbb", &err), 0);
}

int main(void)
{
	RUN(test_token_shape);
	RUN(test_token_hash);
	RUN(test_ids);
	RUN(test_password);
	RUN(test_password_full_rounds);
	RUN(test_permission_table);
	RUN(test_visibility);
	RUN(test_quota);
	RUN(test_node_identity);
	UNIT_END();
}
