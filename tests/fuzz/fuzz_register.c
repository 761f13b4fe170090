/* fuzz_register — every JSON body the core accepts, each through its real route on a
 * fresh core (one node registered, one exec instance placed on it):
 *   byte 0 % 4 == 0: POST /v1/nodes/register          (node registration)
 *                 1: POST /v1/nodes/NODE/reports      (status reports, with the node's token)
 *                 2: POST /v1/images                  (image metadata)
 *                 3: POST /v1/instances               (create; spec_parse and the scheduler)
 * the rest of the input is the body (placeholders as in fuzz_http: 16 'I' become the
 * instance's id). Invariants:
 *   - an answer comes, it is not 5xx, and an error answer is the uniform error body;
 *   - the instance, node and image lists still serialize as JSON;
 *   - after a restart of the core on the same data dir, what was accepted is all still
 *     there: the instance and image lists are equal, every node keeps its description. */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzzcore.h"

static const char *const paths[] = {
	"/v1/nodes/register",
	"/v1/nodes/" FUZZ_NODE_ID "/reports",
	"/v1/images",
	"/v1/instances",
};

static void fail(const char *what, struct evbuffer *ans)
{
	fprintf(stderr, "fuzz_register: %s\n--- answer ---\n%.*s\n", what, ans ? (int)evbuffer_get_length(ans) : 0,
	        ans ? (char *)evbuffer_pullup(ans, -1) : "");
	abort();
}

static void check_answer(struct evbuffer *ans)
{
	int status = fuzzcore_status(ans);
	size_t len = evbuffer_get_length(ans);
	unsigned char *text = evbuffer_pullup(ans, -1);
	unsigned char *sep = text ? memmem(text, len, "\r\n\r\n", 4) : NULL;
	json_t *body = NULL, *e;

	if (status == 0)
		fail("no HTTP answer", ans);
	if (status >= 500)
		fail("a 5xx answer to a body", ans);
	if (status < 400)
		return;
	if (!sep || !(body = json_loadb((char *)sep + 4, len - (size_t)(sep + 4 - text), 0, NULL)))
		fail("an error answer without a JSON body", ans);
	e = json_object_get(body, "error");
	if (!json_is_string(json_object_get(e, "code")) || !json_is_string(json_object_get(e, "message")) ||
	    json_object_size(body) != 1 || json_object_size(e) != 2)
		fail("an error answer that is not {\"error\": {\"code\", \"message\"}}", ans);
	json_decref(body);
}

/* What must survive a restart of a node: its description, not its liveness. */
static json_t *nodes_durable(json_t *nodes)
{
	json_t *out = json_array(), *n;
	size_t i;
	json_array_foreach(json_object_get(nodes, "nodes"), i, n) {
		json_array_append_new(out, json_pack("{s:O?, s:O?, s:O?, s:O?, s:O?, s:O?}", "id", json_object_get(n, "id"),
		                                     "name", json_object_get(n, "name"), "address",
		                                     json_object_get(n, "address"), "drivers",
		                                     json_object_get(n, "drivers"), "labels", json_object_get(n, "labels"),
		                                     "resources", json_object_get(n, "resources")));
	}
	json_decref(nodes);
	return out;
}

static void must_equal(const char *what, json_t *before, json_t *after)
{
	if (!json_equal(before, after)) {
		char *a = json_dumps(before, JSON_SORT_KEYS | JSON_INDENT(1)), *b = json_dumps(after, JSON_SORT_KEYS | JSON_INDENT(1));
		fprintf(stderr, "fuzz_register: %s differ after a restart\n--- before ---\n%s\n--- after ---\n%s\n", what, a, b);
		abort();
	}
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	fuzzcore_init();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzzcore fc;
	struct evbuffer *req, *ans;
	json_t *inst, *nodes, *images;

	if (size < 1)
		return 0;
	if (!(req = evbuffer_new()) || !(ans = evbuffer_new()))
		abort();
	fuzzcore_start(&fc);
	fuzzcore_setup_node(&fc);
	evbuffer_add_printf(req,
	                    "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
	                    "Authorization: Bearer " FUZZ_TOKEN_PLACEHOLDER "\r\n"
	                    "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
	                    paths[data[0] % 4], size - 1);
	evbuffer_add(req, data + 1, size - 1);
	fuzzcore_exchange(&fc, evbuffer_pullup(req, -1), evbuffer_get_length(req), 0, 0, 10000, ans);
	check_answer(ans);

	inst = fuzzcore_call(&fc, "GET", "/v1/instances", "", 200);
	nodes = nodes_durable(fuzzcore_call(&fc, "GET", "/v1/nodes", "", 200));
	images = fuzzcore_call(&fc, "GET", "/v1/images", "", 200);
	fuzzcore_restart(&fc);
	json_t *inst2 = fuzzcore_call(&fc, "GET", "/v1/instances", "", 200);
	json_t *nodes2 = nodes_durable(fuzzcore_call(&fc, "GET", "/v1/nodes", "", 200));
	json_t *images2 = fuzzcore_call(&fc, "GET", "/v1/images", "", 200);
	must_equal("instances", inst, inst2);
	must_equal("nodes", nodes, nodes2);
	must_equal("images", images, images2);

	json_decref(inst);
	json_decref(nodes);
	json_decref(images);
	json_decref(inst2);
	json_decref(nodes2);
	json_decref(images2);
	evbuffer_free(req);
	evbuffer_free(ans);
	fuzzcore_stop(&fc);
	return 0;
}
