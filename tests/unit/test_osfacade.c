/* test_osfacade — the OpenStack façade's pure helpers (core/os.h): the UUIDs it derives
 * from names, a server's id and back, its times, and who a token is. */
#include "core/os.h"

#include <stdlib.h>

#include "unit.h"

static void test_uuid_of_is_stable_and_v5(void)
{
	char a[OS_UUID_LEN + 1], b[OS_UUID_LEN + 1], c[OS_UUID_LEN + 1];
	os_uuid_of("image", "hello", a);
	os_uuid_of("image", "hello", b);
	os_uuid_of("network", "hello", c);
	CHECK_STR(a, b);
	CHECK(strcmp(a, c) != 0); /* the kind is part of the name */
	CHECK(os_uuid_valid(a));
	CHECK(a[14] == '5');
	CHECK(strchr("89ab", a[19]) != NULL);
}

static void test_uuid_random(void)
{
	char a[OS_UUID_LEN + 1], b[OS_UUID_LEN + 1];
	os_uuid_random(a);
	os_uuid_random(b);
	CHECK(os_uuid_valid(a) && os_uuid_valid(b));
	CHECK(strcmp(a, b) != 0);
	CHECK(a[14] == '4');
}

static void test_uuid_valid_refuses(void)
{
	CHECK(!os_uuid_valid(""));
	CHECK(!os_uuid_valid("0123456789abcdef0123456789abcdef"));                 /* no dashes */
	CHECK(!os_uuid_valid("0123456A-89ab-cdef-0123-456789abcdef"));             /* upper case */
	CHECK(!os_uuid_valid("01234567-89ab-cdef-0123-456789abcdef0"));            /* too long */
	CHECK(!os_uuid_valid("01234567-89ab-cdef-0123_456789abcdef"));
	CHECK(os_uuid_valid("01234567-89ab-cdef-0123-456789abcdef"));
}

static void test_server_id_round_trip(void)
{
	char sid[OS_UUID_LEN + 1], iid[MV_ID_LEN + 1];
	os_server_id("0123456789abcdef", sid);
	CHECK_STR(sid, "01234567-89ab-cdef-8000-000000000000");
	CHECK(os_uuid_valid(sid));
	CHECK(os_instance_id(sid, iid));
	CHECK_STR(iid, "0123456789abcdef");
	CHECK(os_instance_id("0123456789abcdef", iid)); /* the native id itself */
	CHECK_STR(iid, "0123456789abcdef");
	CHECK(!os_instance_id("01234567-89ab-cdef-8000-000000000001", iid)); /* not one of ours */
	CHECK(!os_instance_id("0123456789ABCDEF", iid));
	CHECK(!os_instance_id("0123456789abcde", iid));
	CHECK(!os_instance_id("nosuch", iid));
}

static void test_time(void)
{
	char t[32];
	os_time(1764921600LL * 1000000 + 999999, t, sizeof t);
	CHECK_STR(t, "2025-12-05T08:00:00Z");
}

static void test_identity_takes_the_native_token(void)
{
	struct os_identity *id = os_identity_new(NULL, "cluster-token-0123456789", NULL, NULL);
	struct os_principal who;
	CHECK(os_identity_authenticate(id, "cluster-token-0123456789", &who));
	CHECK_STR(who.user_name, "admin");
	CHECK_STR(who.project_name, "admin");
	CHECK(who.admin);
	CHECK(who.authz.role == ROLE_ADMIN && who.authz.kind == AUTHZ_CLUSTER);
	CHECK_STR(who.authz.project, "admin");
	CHECK(!os_identity_authenticate(id, "cluster-token-012345678", &who));
	CHECK(!os_identity_authenticate(id, "", &who));
	CHECK(!os_identity_authenticate(id, "0123456789abcdef0123456789abcdef", &who));
	os_identity_free(id);
}

int main(void)
{
	RUN(test_uuid_of_is_stable_and_v5);
	RUN(test_uuid_random);
	RUN(test_uuid_valid_refuses);
	RUN(test_server_id_round_trip);
	RUN(test_time);
	RUN(test_identity_takes_the_native_token);
	UNIT_END();
}
