/* fuzz_openstack — the OpenStack façade's JSON bodies (core --openstack-listen): each input
 * is a body sent, on fresh loopback connections to a fresh core with one node, as
 *   POST /identity/v3/auth/tokens      (Keystone: password and token methods, scopes)
 *   POST /compute/v2.1/servers         (Nova: server, flavor "f" of the exec driver)
 *   POST /compute/v2.1/flavors         (Nova: flavor create)
 *   POST /compute/v2.1/flavors/f/os-extra_specs
 *   POST /image/v2/images              (Glance: image create, properties)
 * the last four with a token the harness logged in for. Invariants: every answer is a
 * 2xx or a 4xx with a JSON body (never a 5xx, never silence); then the native
 * GET /v1/health still answers 200 and the core is destroyed (ASan/LSan see every leak). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzzcore.h"

#define HEALTH "GET /v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
#define LOGIN                                                                                                  \
	"{\"auth\": {\"identity\": {\"methods\": [\"password\"], \"password\": {\"user\": {\"name\": \"admin\", " \
	"\"domain\": {\"id\": \"default\"}, \"password\": \"x\"}}}, \"scope\": {\"project\": {\"name\": "       \
	"\"admin\", \"domain\": {\"id\": \"default\"}}}}}"
#define FLAVOR "{\"flavor\": {\"name\": \"f\", \"id\": \"f\", \"ram\": 16, \"vcpus\": 1, \"disk\": 0}}"
#define SPECS                                                                                                  \
	"{\"extra_specs\": {\"microvim:driver\": \"exec\", \"microvim:vcpus\": \"0.01\", \"microvim:config\": " \
	"\"{\\\"command\\\": \\\"/bin/true\\\"}\"}}"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	fuzzcore_init();
	return 0;
}

/* POST path with body to the façade; the answer in ans (cleared first). */
static void post(struct fuzzcore *fc, const char *path, const char *token, const void *body, size_t len,
                 struct evbuffer *ans)
{
	struct evbuffer *req = evbuffer_new();
	int saved = fc->port;
	if (!req)
		abort();
	evbuffer_drain(ans, evbuffer_get_length(ans));
	evbuffer_add_printf(req, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
	                         "Content-Length: %zu\r\nConnection: close\r\n", path, len);
	if (token)
		evbuffer_add_printf(req, "X-Auth-Token: %s\r\n", token);
	evbuffer_add(req, "\r\n", 2);
	evbuffer_add(req, body, len);
	fc->port = fc->os_port;
	fuzzcore_exchange(fc, evbuffer_pullup(req, -1), evbuffer_get_length(req), 1, 0, 5000, ans);
	fc->port = saved;
	evbuffer_free(req);
}

/* A 2xx, or a 4xx whose body is a JSON object. */
static void check_answer(const char *path, struct evbuffer *ans)
{
	int status = fuzzcore_status(ans);
	size_t len = evbuffer_get_length(ans);
	const char *text = (const char *)evbuffer_pullup(ans, -1);
	const char *body = len ? strstr(text, "\r\n\r\n") : NULL;
	if (status >= 200 && status < 300)
		return;
	if (status >= 400 && status < 500 && body && body[4] == '{')
		return;
	fprintf(stderr, "fuzz_openstack: POST %s answered %d (%zu bytes: %.*s)\n", path, status, len,
	        (int)(len > 600 ? 600 : len), text ? text : "");
	abort();
}

/* Logs in and sets up flavor "f"; the token in tok. */
static void setup(struct fuzzcore *fc, struct evbuffer *ans, char tok[65])
{
	const char *text, *h;
	post(fc, "/identity/v3/auth/tokens", NULL, LOGIN, strlen(LOGIN), ans);
	text = (const char *)evbuffer_pullup(ans, -1);
	if (fuzzcore_status(ans) != 201 || !text || !(h = strstr(text, "X-Subject-Token: ")) ||
	    sscanf(h + 17, "%64[0-9a-f]", tok) != 1) {
		fprintf(stderr, "fuzz_openstack: cannot log in\n");
		abort();
	}
	post(fc, "/compute/v2.1/flavors", tok, FLAVOR, strlen(FLAVOR), ans);
	if (fuzzcore_status(ans) != 200)
		abort();
	post(fc, "/compute/v2.1/flavors/f/os-extra_specs", tok, SPECS, strlen(SPECS), ans);
	if (fuzzcore_status(ans) != 200)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const paths[] = {"/identity/v3/auth/tokens", "/compute/v2.1/servers",
	                                    "/compute/v2.1/flavors", "/compute/v2.1/flavors/f/os-extra_specs",
	                                    "/image/v2/images"};
	struct fuzzcore fc;
	struct evbuffer *ans = evbuffer_new();
	char tok[65];

	if (!ans)
		abort();
	fuzzcore_start(&fc);
	fuzzcore_setup_node(&fc);
	setup(&fc, ans, tok);
	for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
		post(&fc, paths[i], i ? tok : NULL, data, size, ans);
		check_answer(paths[i], ans);
	}
	evbuffer_drain(ans, evbuffer_get_length(ans));
	fuzzcore_exchange(&fc, HEALTH, sizeof HEALTH - 1, 0, 0, 5000, ans);
	if (fuzzcore_status(ans) != 200) {
		fprintf(stderr, "fuzz_openstack: after the input, GET /v1/health got no 200\n");
		abort();
	}
	evbuffer_free(ans);
	fuzzcore_stop(&fc);
	return 0;
}
