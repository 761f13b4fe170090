/* tenancy — `microvim project|user|token|node-token`: the Keystone part (projects with
 * quotas, users with a role on a project, bearer tokens) and the join tokens of nodes,
 * clients of /v1/projects, /v1/users, /v1/tokens and /v1/node-tokens. A token is printed
 * once, when it is made; the core keeps only its hash. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/corelist.h"
#include "common/fs.h"
#include "common/http.h"
#include "common/tls.h"
#include "common/model.h"

struct tenancy_client {
	const char *cmd; /* "project", "user", "token": the prefix of messages */
	const char *core_arg;
	const char *core_from;
	struct corelist cores;
	char *token;
	bool json;
};

/* One call; EXIT_OK with the answer in *out (when wanted) on ok1/ok2, else prints why. */
static int call(struct tenancy_client *tc, const char *method, const char *path, const json_t *body, int ok,
                json_t **out)
{
	struct http_response r;
	char err[768];
	json_t *b;
	if (out)
		*out = NULL;
	struct corelist_request rq = {.method = method, .path = path, .token = tc->token, .body = body, .timeout_s = 30,
	                              .note = "microvim"};
	if (corelist_call(&tc->cores, &rq, &r, err, sizeof err) < 0) {
		fprintf(stderr, "microvim %s: %s\n", tc->cmd, err);
		return EXIT_UNREACHABLE;
	}
	b = r.len ? json_loads(r.body, 0, NULL) : NULL;
	http_response_free(&r);
	if (r.status != ok) {
		const json_t *e = json_object_get(b, "error");
		fprintf(stderr, "microvim %s: %d %s: %s\n", tc->cmd, r.status,
		        json_string_value(json_object_get(e, "code")) ?: "error",
		        json_string_value(json_object_get(e, "message")) ?: "(no message)");
		json_decref(b);
		return EXIT_FAILED;
	}
	if (tc->json && b) {
		json_dumpf(b, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(12));
		putchar('\n');
	}
	if (out)
		*out = b;
	else
		json_decref(b);
	return EXIT_OK;
}

static const char *str(const json_t *o, const char *key) { return json_string_value(json_object_get(o, key)) ?: "-"; }

/* A limit or a usage: a number, or "-" for none. */
static void fmt_num(const json_t *v, char *buf, size_t len)
{
	if (json_is_number(v))
		snprintf(buf, len, "%.12g", json_number_value(v));
	else
		snprintf(buf, len, "-");
}

static void print_quota_line(const json_t *p, const char *what)
{
	char used[32], limit[32];
	fmt_num(json_object_get(json_object_get(p, "usage"), what), used, sizeof used);
	fmt_num(json_object_get(json_object_get(p, "quota"), what), limit, sizeof limit);
	printf("  %-10s %10s of %s\n", what, used, strcmp(limit, "-") == 0 ? "no limit" : limit);
}

/* ---- project ---- */

static int project_create(struct tenancy_client *tc, const char *name, json_t *quota)
{
	json_t *body = json_pack("{s:s, s:O}", "name", name, "quota", quota), *out;
	int rc = call(tc, "POST", "/v1/projects", body, 201, &out);
	json_decref(body);
	if (rc == EXIT_OK && !tc->json)
		printf("project %s created\n", name);
	json_decref(out);
	return rc;
}

static int project_ls(struct tenancy_client *tc)
{
	json_t *out, *p;
	size_t i;
	int rc = call(tc, "GET", "/v1/projects", NULL, 200, &out);
	if (rc != EXIT_OK || tc->json) {
		json_decref(out);
		return rc;
	}
	printf("%-24s  %9s  %9s  %11s\n", "NAME", "INSTANCES", "VCPUS", "MEMORY_MB");
	json_array_foreach(json_object_get(out, "projects"), i, p) {
		char cell[3][48];
		const char *keys[] = {"instances", "vcpus", "memory_mb"};
		for (int k = 0; k < 3; k++) {
			char used[20], limit[20];
			fmt_num(json_object_get(json_object_get(p, "usage"), keys[k]), used, sizeof used);
			fmt_num(json_object_get(json_object_get(p, "quota"), keys[k]), limit, sizeof limit);
			snprintf(cell[k], sizeof cell[k], "%s/%s", used, limit);
		}
		printf("%-24s  %9s  %9s  %11s\n", str(p, "name"), cell[0], cell[1], cell[2]);
	}
	json_decref(out);
	return EXIT_OK;
}

static int project_show(struct tenancy_client *tc, const char *name)
{
	char path[128];
	json_t *out;
	int rc;
	snprintf(path, sizeof path, "/v1/projects/%s", name);
	if ((rc = call(tc, "GET", path, NULL, 200, &out)) == EXIT_OK && !tc->json) {
		printf("project %s (created %s), %lld images\nusage of quota:\n", str(out, "name"), str(out, "created_at"),
		       (long long)json_integer_value(json_object_get(out, "images")));
		print_quota_line(out, "instances");
		print_quota_line(out, "vcpus");
		print_quota_line(out, "memory_mb");
	}
	json_decref(out);
	return rc;
}

static int remove_one(struct tenancy_client *tc, const char *collection, const char *what, const char *name)
{
	char path[128];
	int rc;
	snprintf(path, sizeof path, "/v1/%s/%s", collection, name);
	if ((rc = call(tc, "DELETE", path, NULL, 204, NULL)) == EXIT_OK && !tc->json)
		printf("%s %s %s\n", what, name, strstr(what, "token") ? "revoked" : "removed");
	return rc;
}

/* ---- user ---- */

static int user_create(struct tenancy_client *tc, const char *name, const char *project, const char *role,
                       const char *password_file)
{
	json_t *body = json_pack("{s:s, s:s, s:s}", "name", name, "project", project, "role", role), *out;
	int rc;
	if (password_file) {
		char *pw = NULL;
		if ((rc = fs_read_token(password_file, &pw)) < 0) {
			fprintf(stderr, "microvim user: cannot read --password-file %s: %s\n", password_file, strerror(-rc));
			json_decref(body);
			return EXIT_FAILED;
		}
		json_object_set_new(body, "password", json_string(pw));
		memset(pw, 0, strlen(pw));
		free(pw);
	}
	rc = call(tc, "POST", "/v1/users", body, 201, &out);
	json_decref(body);
	if (rc == EXIT_OK && !tc->json)
		printf("user %s created: role %s on project %s%s\n", name, role, project,
		       password_file ? ", with a password" : " (no password: give it tokens with token create)");
	json_decref(out);
	return rc;
}

static int user_ls(struct tenancy_client *tc)
{
	json_t *out, *u;
	size_t i;
	int rc = call(tc, "GET", "/v1/users", NULL, 200, &out);
	if (rc == EXIT_OK && !tc->json) {
		printf("%-24s  %-24s  %-7s  %s\n", "NAME", "PROJECT", "ROLE", "PASSWORD");
		json_array_foreach(json_object_get(out, "users"), i, u)
			printf("%-24s  %-24s  %-7s  %s\n", str(u, "name"), str(u, "project"), str(u, "role"),
			       json_is_true(json_object_get(u, "password")) ? "yes" : "no");
	}
	json_decref(out);
	return rc;
}

/* ---- token ---- */

static int token_create(struct tenancy_client *tc, const char *user, const char *expires)
{
	json_t *body = json_pack("{s:s}", "user", user), *out;
	int rc;
	if (expires)
		json_object_set_new(body, "expires", json_string(expires));
	rc = call(tc, "POST", "/v1/tokens", body, 201, &out);
	json_decref(body);
	if (rc == EXIT_OK && !tc->json) {
		/* the token alone on stdout, so that `microvim token create ... > FILE` makes a token file */
		printf("%s\n", str(out, "token"));
		fprintf(stderr, "token %s for user %s (project %s, role %s), expires %s: shown this once\n", str(out, "id"),
		        user, str(out, "project"), str(out, "role"),
		        json_is_null(json_object_get(out, "expires_at")) ? "never" : str(out, "expires_at"));
	}
	json_decref(out);
	return rc;
}

static int token_ls(struct tenancy_client *tc)
{
	json_t *out, *k;
	size_t i;
	int rc = call(tc, "GET", "/v1/tokens", NULL, 200, &out);
	if (rc == EXIT_OK && !tc->json) {
		printf("%-16s  %-20s  %-20s  %-7s  %-27s  %s\n", "ID", "USER", "PROJECT", "ROLE", "EXPIRES", "STATE");
		json_array_foreach(json_object_get(out, "tokens"), i, k)
			printf("%-16s  %-20s  %-20s  %-7s  %-27s  %s\n", str(k, "id"), str(k, "user"), str(k, "project"),
			       str(k, "role"), json_is_null(json_object_get(k, "expires_at")) ? "never" : str(k, "expires_at"),
			       json_is_true(json_object_get(k, "revoked")) ? "revoked"
			       : json_is_true(json_object_get(k, "expired")) ? "expired" : "valid");
	}
	json_decref(out);
	return rc;
}

/* ---- node-token: join tokens for new nodes ---- */

static int node_token_create(struct tenancy_client *tc, const char *expires)
{
	json_t *body = json_object(), *out;
	int rc;
	if (expires)
		json_object_set_new(body, "expires", json_string(expires));
	rc = call(tc, "POST", "/v1/node-tokens", body, 201, &out);
	json_decref(body);
	if (rc == EXIT_OK && !tc->json) {
		/* alone on stdout: `microvim node-token create > JOIN` makes the node's --token-file */
		printf("%s\n", str(out, "token"));
		fprintf(stderr, "join token %s, expires %s: shown this once; start nodes with --token-file FILE "
		        "(each gets its own credential)\n", str(out, "id"),
		        json_is_null(json_object_get(out, "expires_at")) ? "never" : str(out, "expires_at"));
	}
	json_decref(out);
	return rc;
}

static int node_token_ls(struct tenancy_client *tc)
{
	json_t *out, *k;
	size_t i;
	int rc = call(tc, "GET", "/v1/node-tokens", NULL, 200, &out);
	if (rc == EXIT_OK && !tc->json) {
		printf("%-16s  %-27s  %-5s  %s\n", "ID", "EXPIRES", "NODES", "STATE");
		json_array_foreach(json_object_get(out, "node_tokens"), i, k)
			printf("%-16s  %-27s  %5lld  %s\n", str(k, "id"),
			       json_is_null(json_object_get(k, "expires_at")) ? "never" : str(k, "expires_at"),
			       (long long)json_integer_value(json_object_get(k, "nodes")),
			       json_is_true(json_object_get(k, "revoked")) ? "revoked"
			       : json_is_true(json_object_get(k, "expired")) ? "expired" : "valid");
	}
	json_decref(out);
	return rc;
}

/* ---- the commands ---- */

enum { T_CORE = 400, T_TOKEN_FILE, T_JSON, T_PROJECT, T_ROLE, T_PASSWORD_FILE, T_USER, T_EXPIRES, T_QI, T_QV, T_QM, T_TLS_CA };

static const struct option tenancy_options[] = {
	{"core", required_argument, NULL, T_CORE},
	{"token-file", required_argument, NULL, T_TOKEN_FILE},
	{"json", no_argument, NULL, T_JSON},
	{"project", required_argument, NULL, T_PROJECT},
	{"role", required_argument, NULL, T_ROLE},
	{"password-file", required_argument, NULL, T_PASSWORD_FILE},
	{"user", required_argument, NULL, T_USER},
	{"expires", required_argument, NULL, T_EXPIRES},
	{"quota-instances", required_argument, NULL, T_QI},
	{"quota-vcpus", required_argument, NULL, T_QV},
	{"quota-memory-mb", required_argument, NULL, T_QM},
	{"tls-ca", required_argument, NULL, T_TLS_CA},
	{NULL, 0, NULL, 0},
};

struct tenancy_args {
	const char *project, *role, *password_file, *user, *expires;
	json_t *quota;
};

static int quota_arg(json_t *quota, const char *key, const char *v, bool whole)
{
	char *end;
	double d;
	errno = 0;
	d = strtod(v, &end);
	if (errno || end == v || *end || d < 0 || d > 1e12 || (whole && d != (double)(long long)d)) {
		fprintf(stderr, "microvim project: --quota-%s takes %s >= 0\n",
		        strcmp(key, "memory_mb") == 0 ? "memory-mb" : key, whole ? "a whole number" : "a number");
		return -1;
	}
	json_object_set_new(quota, key, whole ? json_integer((json_int_t)d) : json_real(d));
	return 0;
}

/* Parses the options; -1 on a mistake (printed). */
static int parse(const char *cmd, int argc, char **argv, struct tenancy_client *tc, struct tenancy_args *a)
{
	const char *tf = getenv("MICROVIM_TOKEN");
	int opt, rc;
	*tc = (struct tenancy_client){.cmd = cmd, .core_arg = getenv("MICROVIM_CORE") ?: "http://127.0.0.1:4650",
	                              .core_from = getenv("MICROVIM_CORE") ? "$MICROVIM_CORE" : "the default core URL"};
	if (tf && !(tc->token = strdup(tf)))
		return -1;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "", tenancy_options, NULL)) != -1) {
		switch (opt) {
		case T_CORE: tc->core_arg = optarg; tc->core_from = "--core"; break;
		case T_TOKEN_FILE:
			free(tc->token);
			tc->token = NULL;
			if ((rc = fs_read_token(optarg, &tc->token)) < 0) {
				fprintf(stderr, "microvim %s: cannot read --token-file %s: %s\n", cmd, optarg, strerror(-rc));
				return -1;
			}
			break;
		case T_JSON: tc->json = true; break;
		case T_TLS_CA: http_client_tls_files(&(struct tls_files){.ca = optarg}); break; /* an https:// core */
		case T_PROJECT: a->project = optarg; break;
		case T_ROLE: a->role = optarg; break;
		case T_PASSWORD_FILE: a->password_file = optarg; break;
		case T_USER: a->user = optarg; break;
		case T_EXPIRES: a->expires = optarg; break;
		case T_QI: if (quota_arg(a->quota, "instances", optarg, true) < 0) return -1; break;
		case T_QV: if (quota_arg(a->quota, "vcpus", optarg, false) < 0) return -1; break;
		case T_QM: if (quota_arg(a->quota, "memory_mb", optarg, true) < 0) return -1; break;
		default: cli_usage(cmd, 1); return -1;
		}
	}
	return cli_core_list(&tc->cores, tc->core_arg, tc->core_from);
}

static bool verb_is(int argc, char **argv, const char *verb, int operands)
{
	return optind < argc && strcmp(argv[optind], verb) == 0 && optind + 1 + operands == argc &&
	       (operands == 0 || name_valid(argv[optind + 1]) || strcmp(verb, "revoke") == 0);
}

static int run(const char *cmd, int argc, char **argv, int (*dispatch)(struct tenancy_client *, struct tenancy_args *,
                                                                       int, char **))
{
	struct tenancy_client tc = {0};
	struct tenancy_args a = {.quota = json_object()};
	int rc = EXIT_USAGE;
	if (parse(cmd, argc, argv, &tc, &a) == 0)
		rc = dispatch(&tc, &a, argc, argv);
	json_decref(a.quota);
	free(tc.token);
	return rc;
}

static int project_dispatch(struct tenancy_client *tc, struct tenancy_args *a, int argc, char **argv)
{
	if (verb_is(argc, argv, "create", 1))
		return project_create(tc, argv[optind + 1], a->quota);
	if (verb_is(argc, argv, "ls", 0))
		return project_ls(tc);
	if (verb_is(argc, argv, "show", 1))
		return project_show(tc, argv[optind + 1]);
	if (verb_is(argc, argv, "rm", 1))
		return remove_one(tc, "projects", "project", argv[optind + 1]);
	cli_usage("project", 1);
	return EXIT_USAGE;
}

static int user_dispatch(struct tenancy_client *tc, struct tenancy_args *a, int argc, char **argv)
{
	if (verb_is(argc, argv, "create", 1) && a->project && a->role)
		return user_create(tc, argv[optind + 1], a->project, a->role, a->password_file);
	if (verb_is(argc, argv, "ls", 0))
		return user_ls(tc);
	if (verb_is(argc, argv, "rm", 1))
		return remove_one(tc, "users", "user", argv[optind + 1]);
	cli_usage("user", 1);
	return EXIT_USAGE;
}

static int token_dispatch(struct tenancy_client *tc, struct tenancy_args *a, int argc, char **argv)
{
	if (verb_is(argc, argv, "create", 0) && a->user)
		return token_create(tc, a->user, a->expires);
	if (verb_is(argc, argv, "ls", 0))
		return token_ls(tc);
	if (verb_is(argc, argv, "revoke", 1))
		return remove_one(tc, "tokens", "token", argv[optind + 1]);
	cli_usage("token", 1);
	return EXIT_USAGE;
}

static int node_token_dispatch(struct tenancy_client *tc, struct tenancy_args *a, int argc, char **argv)
{
	if (verb_is(argc, argv, "create", 0))
		return node_token_create(tc, a->expires);
	if (verb_is(argc, argv, "ls", 0))
		return node_token_ls(tc);
	if (verb_is(argc, argv, "revoke", 1))
		return remove_one(tc, "node-tokens", "join token", argv[optind + 1]);
	cli_usage("node-token", 1);
	return EXIT_USAGE;
}

int cmd_project(int argc, char **argv) { return run("project", argc, argv, project_dispatch); }
int cmd_user(int argc, char **argv) { return run("user", argc, argv, user_dispatch); }
int cmd_token(int argc, char **argv) { return run("token", argc, argv, token_dispatch); }
int cmd_node_token(int argc, char **argv) { return run("node-token", argc, argv, node_token_dispatch); }
