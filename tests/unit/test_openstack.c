/* test_openstack — the client side of push --api openstack (src/tools/openstack.h): the YAML
 * subset clouds.yaml files use, credentials from clouds.yaml and from OS_* variables, the
 * service catalog, URLs, error bodies; and analyze --vim nova's --ports. */
#include <errno.h>
#include <stdlib.h>

#include "tools/analyze_nova.h"
#include "tools/openstack.h"
#include "unit.h"

static const char CLOUDS[] =
	"# as openstacksdk's documentation shows it\n"
	"---\n"
	"clouds:\n"
	"  bench:\n"
	"    auth:\n"
	"      auth_url: http://127.0.0.1:5000/v3   # keystone\n"
	"      username: \"admin\"\n"
	"      password: 'it''s # not a comment'\n"
	"      project_name: admin\n"
	"      user_domain_name: Default\n"
	"      project_domain_name: Default\n"
	"    region_name: RegionOne\n"
	"    interface: internal\n"
	"    identity_api_version: 3\n"
	"    regions:\n"
	"      - RegionOne\n"
	"      - name: RegionTwo\n"
	"        values:\n"
	"          x: y\n"
	"    flow: [a, 'b c', \"d\"]\n"
	"\n"
	"  other:\n"
	"    auth:\n"
	"      auth_url: http://10.0.0.1:5000\n"
	"      username: u\n"
	"      project_id: 0123456789abcdef0123456789abcdef\n"
	"    auth_type: token\n"
	"  nopass:\n"
	"    auth:\n"
	"      auth_url: http://10.0.0.1:5000\n"
	"      username: u\n"
	"      project_name: p\n";

static void test_yaml_subset(void)
{
	char err[256] = "";
	json_t *doc = NULL, *bench, *regions;
	CHECK_EQ_INT(yaml_mini_parse(CLOUDS, &doc, err, sizeof err), 0);
	bench = json_object_get(json_object_get(doc, "clouds"), "bench");
	CHECK_STR(json_string_value(json_object_get(json_object_get(bench, "auth"), "password")), "it's # not a comment");
	CHECK_STR(json_string_value(json_object_get(json_object_get(bench, "auth"), "auth_url")), "http://127.0.0.1:5000/v3");
	CHECK_STR(json_string_value(json_object_get(json_object_get(bench, "auth"), "username")), "admin");
	CHECK_STR(json_string_value(json_object_get(bench, "identity_api_version")), "3");
	regions = json_object_get(bench, "regions");
	CHECK_EQ_INT(json_array_size(regions), 2);
	CHECK_STR(json_string_value(json_array_get(regions, 0)), "RegionOne");
	CHECK_STR(json_string_value(json_object_get(json_array_get(regions, 1), "name")), "RegionTwo");
	CHECK_STR(json_string_value(json_object_get(json_object_get(json_array_get(regions, 1), "values"), "x")), "y");
	CHECK_EQ_INT(json_array_size(json_object_get(bench, "flow")), 3);
	CHECK_STR(json_string_value(json_array_get(json_object_get(bench, "flow"), 1)), "b c");
	CHECK(json_is_object(json_object_get(json_object_get(doc, "clouds"), "other")));
	json_decref(doc);

	/* an empty value, a sequence at the key's own indentation */
	CHECK_EQ_INT(yaml_mini_parse("a:\nb:\n- 1\n- 2\nc: \"x\\\"y\"\n", &doc, err, sizeof err), 0);
	CHECK_STR(json_string_value(json_object_get(doc, "a")), "");
	CHECK_EQ_INT(json_array_size(json_object_get(doc, "b")), 2);
	CHECK_STR(json_string_value(json_object_get(doc, "c")), "x\"y");
	json_decref(doc);
	CHECK_EQ_INT(yaml_mini_parse("# nothing\n\n", &doc, err, sizeof err), 0);
	CHECK(json_is_object(doc) && json_object_size(doc) == 0);
	json_decref(doc);
}

static void test_yaml_refusals(void)
{
	static const struct {
		const char *text, *line;
	} bad[] = {
		{"a:\n\tb: 1\n", "line 2: a tab"},
		{"a: &x 1\n", "line 1: a value this reader does not take"},
		{"a: 'open\n", "line 1: a value"},
		{"a: |\n  text\n", "line 1: a value"},
		{"a: 1\n  b: 2\n", "line 2: indented more"},
		{"a: 1\na: 2\n", "line 2: a key given twice"},
		{"a: {b: 1}\n", "line 1: a value"},
		{"just text\n", "line 1: expected \"key: value\""},
		{"  a: 1\nb: 2\n", "line 2: indented less"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char err[256] = "";
		json_t *doc = (json_t *)1;
		CHECK_EQ_INT(yaml_mini_parse(bad[i].text, &doc, err, sizeof err), -EINVAL);
		CHECK(doc == NULL);
		if (strncmp(err, bad[i].line, strlen(bad[i].line)) != 0)
			fprintf(stderr, "  case %zu: \"%s\"\n", i, err);
		CHECK(strncmp(err, bad[i].line, strlen(bad[i].line)) == 0);
	}
}

static void test_creds_from_clouds_yaml(void)
{
	struct os_creds c;
	char err[512] = "";
	CHECK_EQ_INT(os_creds_from_clouds_yaml(&c, CLOUDS, "clouds.yaml", "bench", err, sizeof err), 0);
	CHECK_STR(c.auth_url, "http://127.0.0.1:5000/v3");
	CHECK_STR(c.username, "admin");
	CHECK_STR(c.password, "it's # not a comment");
	CHECK_STR(c.project_name, "admin");
	CHECK_STR(c.user_domain_name, "Default");
	CHECK_STR(c.region, "RegionOne");
	CHECK_STR(c.interface, "internal");

	CHECK_EQ_INT(os_creds_from_clouds_yaml(&c, CLOUDS, "clouds.yaml", "nopass", err, sizeof err), -EINVAL);
	CHECK(strstr(err, "auth.password is missing") != NULL);
	CHECK(strstr(err, "cloud \"nopass\" of clouds.yaml") != NULL);
	CHECK_EQ_INT(os_creds_from_clouds_yaml(&c, CLOUDS, "clouds.yaml", "other", err, sizeof err), -EINVAL);
	CHECK(strstr(err, "auth_type token: only password") != NULL);
	CHECK_EQ_INT(os_creds_from_clouds_yaml(&c, CLOUDS, "clouds.yaml", "nope", err, sizeof err), -EINVAL);
	CHECK(strstr(err, "no cloud \"nope\" (there are: bench, other, nopass)") != NULL);
	CHECK_EQ_INT(os_creds_from_clouds_yaml(&c, "x: 1\n", "f.yaml", "bench", err, sizeof err), -EINVAL);
	CHECK(strstr(err, "no \"clouds:\" mapping") != NULL);
}

static void clear_env(void)
{
	static const char *const vars[] = {"OS_AUTH_URL", "OS_USERNAME", "OS_USER_ID", "OS_PASSWORD", "OS_PROJECT_NAME",
	                                   "OS_TENANT_NAME", "OS_PROJECT_ID", "OS_TENANT_ID", "OS_USER_DOMAIN_NAME",
	                                   "OS_USER_DOMAIN_ID", "OS_PROJECT_DOMAIN_NAME", "OS_PROJECT_DOMAIN_ID",
	                                   "OS_REGION_NAME", "OS_INTERFACE", "OS_ENDPOINT_TYPE"};
	for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
		unsetenv(vars[i]);
}

static void test_creds_from_env(void)
{
	struct os_creds c;
	char err[512] = "";
	clear_env();
	CHECK_EQ_INT(os_creds_from_env(&c, err, sizeof err), -EINVAL);
	CHECK(strstr(err, "OS_AUTH_URL is missing") != NULL);
	setenv("OS_AUTH_URL", "http://127.0.0.1:5000/v3", 1);
	setenv("OS_USERNAME", "admin", 1);
	setenv("OS_PASSWORD", "pw", 1);
	CHECK_EQ_INT(os_creds_from_env(&c, err, sizeof err), -EINVAL);
	CHECK(strstr(err, "OS_PROJECT_NAME (or OS_PROJECT_ID) is missing") != NULL);
	setenv("OS_TENANT_NAME", "admin", 1); /* the old name still counts */
	setenv("OS_ENDPOINT_TYPE", "internalURL", 1);
	CHECK_EQ_INT(os_creds_from_env(&c, err, sizeof err), 0);
	CHECK_STR(c.project_name, "admin");
	CHECK_STR(c.user_domain_name, "Default");
	CHECK_STR(c.project_domain_name, "Default");
	CHECK_STR(c.interface, "internal");
	setenv("OS_PROJECT_NAME", "demo", 1); /* the new name wins */
	setenv("OS_INTERFACE", "admin", 1);
	setenv("OS_USER_DOMAIN_ID", "default", 1);
	CHECK_EQ_INT(os_creds_from_env(&c, err, sizeof err), 0);
	CHECK_STR(c.project_name, "demo");
	CHECK_STR(c.interface, "admin");
	CHECK_STR(c.user_domain_id, "default");
	CHECK_STR(c.user_domain_name, ""); /* an id given: no default name beside it */
	clear_env();
}

static const char CATALOG[] =
	"[{\"type\": \"identity\", \"endpoints\": [{\"interface\": \"public\", \"region_id\": \"RegionOne\", "
	"\"url\": \"http://127.0.0.1:5000/v3\"}]},"
	" {\"type\": \"compute\", \"name\": \"nova\", \"endpoints\": ["
	"  {\"interface\": \"internal\", \"region_id\": \"RegionOne\", \"url\": \"http://10.0.0.1:8774/v2.1\"},"
	"  {\"interface\": \"public\", \"region_id\": \"RegionTwo\", \"url\": \"http://10.0.0.2:8774/v2.1\"},"
	"  {\"interface\": \"public\", \"region_id\": \"RegionOne\", \"url\": \"http://127.0.0.1:8774/v2.1/\"}]}]";

static void test_catalog(void)
{
	json_t *cat = json_loads(CATALOG, 0, NULL);
	char url[256], err[256];
	CHECK(cat != NULL);
	CHECK_EQ_INT(os_catalog_url(cat, "compute", NULL, NULL, url, sizeof url, err, sizeof err), 0);
	CHECK_STR(url, "http://10.0.0.2:8774/v2.1"); /* the first public one in any region */
	CHECK_EQ_INT(os_catalog_url(cat, "compute", "public", "RegionOne", url, sizeof url, err, sizeof err), 0);
	CHECK_STR(url, "http://127.0.0.1:8774/v2.1/");
	CHECK_EQ_INT(os_catalog_url(cat, "compute", "internal", "", url, sizeof url, err, sizeof err), 0);
	CHECK_STR(url, "http://10.0.0.1:8774/v2.1");
	CHECK_EQ_INT(os_catalog_url(cat, "compute", "admin", NULL, url, sizeof url, err, sizeof err), -ENOENT);
	CHECK(strstr(err, "no admin endpoint") != NULL);
	CHECK_EQ_INT(os_catalog_url(cat, "image", NULL, NULL, url, sizeof url, err, sizeof err), -ENOENT);
	CHECK(strstr(err, "no service of type image") != NULL);
	json_decref(cat);
}

static void test_url_split(void)
{
	char host[64], prefix[64];
	int port;
	CHECK_EQ_INT(os_url_split("http://127.0.0.1:8774/v2.1/", host, sizeof host, &port, prefix, sizeof prefix), 0);
	CHECK_STR(host, "127.0.0.1");
	CHECK_EQ_INT(port, 8774);
	CHECK_STR(prefix, "/v2.1");
	CHECK_EQ_INT(os_url_split("http://nova.example", host, sizeof host, &port, prefix, sizeof prefix), 0);
	CHECK_STR(host, "nova.example");
	CHECK_EQ_INT(port, 80);
	CHECK_STR(prefix, "");
	CHECK_EQ_INT(os_url_split("http://[::1]:5000/v3", host, sizeof host, &port, prefix, sizeof prefix), 0);
	CHECK_STR(host, "::1");
	CHECK_EQ_INT(port, 5000);
	CHECK_STR(prefix, "/v3");
	CHECK_EQ_INT(os_url_split("https://x:1/", host, sizeof host, &port, prefix, sizeof prefix), -EINVAL);
	CHECK_EQ_INT(os_url_split("http://x:0/", host, sizeof host, &port, prefix, sizeof prefix), -EINVAL);
	CHECK_EQ_INT(os_url_split("http://x:99999/", host, sizeof host, &port, prefix, sizeof prefix), -EINVAL);
	CHECK_EQ_INT(os_url_split("http://:80/", host, sizeof host, &port, prefix, sizeof prefix), -EINVAL);
}

static void test_error_message(void)
{
	json_t *a = json_loads("{\"badRequest\": {\"code\": 400, \"message\": \"Invalid flavorRef\"}}", 0, NULL);
	json_t *b = json_loads("{\"message\": \"top\"}", 0, NULL);
	json_t *c = json_loads("{\"x\": 1}", 0, NULL);
	CHECK_STR(os_error_message(a), "Invalid flavorRef");
	CHECK_STR(os_error_message(b), "top");
	CHECK(os_error_message(c) == NULL);
	CHECK(os_error_message(NULL) == NULL);
	json_decref(a);
	json_decref(b);
	json_decref(c);
}

static void test_nova_ports(void)
{
	struct nova_ports p;
	char err[256];
	CHECK_EQ_INT(nova_ports_parse(NULL, &p, err, sizeof err), 0);
	CHECK_EQ_INT(p.port[NOVA_API], 8774);
	CHECK_EQ_INT(p.port[NOVA_AMQP], 5672);
	CHECK_EQ_INT(nova_ports_parse("nova=18774,amqp=15672", &p, err, sizeof err), 0);
	CHECK_EQ_INT(p.port[NOVA_API], 18774);
	CHECK_EQ_INT(p.port[NOVA_AMQP], 15672);
	CHECK_EQ_INT(p.port[NOVA_KEYSTONE], 5000);
	CHECK_EQ_INT(nova_ports_parse("cinder=8776", &p, err, sizeof err), -EINVAL);
	CHECK(strstr(err, "unknown service \"cinder\"") != NULL);
	CHECK_EQ_INT(nova_ports_parse("nova=0", &p, err, sizeof err), -EINVAL);
	CHECK_EQ_INT(nova_ports_parse("nova", &p, err, sizeof err), -EINVAL);
	CHECK_EQ_INT(nova_ports_parse("glance=5000", &p, err, sizeof err), -EINVAL);
	CHECK(strstr(err, "keystone and glance both on port 5000") != NULL);
}

int main(void)
{
	RUN(test_yaml_subset);
	RUN(test_yaml_refusals);
	RUN(test_creds_from_clouds_yaml);
	RUN(test_creds_from_env);
	RUN(test_catalog);
	RUN(test_url_split);
	RUN(test_error_message);
	RUN(test_nova_ports);
	UNIT_END();
}
