/* nodeidapi — /v1/node-tokens: the join tokens an admin makes for new nodes (the routes
 * over core/nodeauth.h). A token's clear text is in the create's reply only, never in a
 * log. Registering with one, and revoking a node, are nodeapi.c's. */
#include <event2/buffer.h>
#include <stdio.h>
#include <string.h>

#include "common/clock.h"
#include "common/http.h"
#include "common/secret.h"
#include "core/api.h"
#include "core/nodeauth.h"

static json_t *join_json(const struct node_join_token *j)
{
	int64_t now = clock_wall_us();
	return json_pack("{s:s, s:o, s:o, s:b, s:b, s:i}", "id", j->id, "created_at", api_when_json(j->created_wall_us),
	                 "expires_at", api_when_json(j->expires_wall_us), "revoked", j->revoked, "expired",
	                 j->expires_wall_us && now >= j->expires_wall_us, "nodes", j->nodes);
}

void api_node_tokens_create(struct api *a, struct evhttp_request *req, UNUSED const char *id)
{
	static const char *const fields[] = {"expires", NULL};
	char token[SECRET_TOKEN_LEN + 1];
	const struct node_join_token *j;
	struct mv_error err;
	int64_t expires_s;
	json_t *b = NULL, *out;

	if (evbuffer_get_length(evhttp_request_get_input_buffer(req)) == 0)
		b = json_object(); /* no body: the defaults */
	else if (http_read_json(req, &b, &err) < 0)
		goto fail;
	if (!json_is_object(b)) {
		mv_fail(&err, 400, "invalid_type", "the body must be a JSON object, {} or {\"expires\": \"1h\"}");
		goto fail;
	}
	if (mv_check_fields(b, "", fields, &err) < 0 ||
	    api_parse_expires(json_object_get(b, "expires"), NODEAUTH_JOIN_EXPIRES_DEFAULT_S, &expires_s, &err) < 0 ||
	    nodeauth_join_issue(a->nodeauth, expires_s ? clock_wall_us() + expires_s * 1000000 : 0, token, &j, &err) < 0)
		goto fail;
	json_decref(b);
	out = join_json(j);
	json_object_set_new(out, "token", json_string(token));
	memset(token, 0, sizeof token);
	http_reply_json(req, 201, out);
	return;
fail:
	json_decref(b);
	http_reply_error(req, &err);
}

static void list_join(void *arg, const struct node_join_token *j) { json_array_append_new(arg, join_json(j)); }

void api_node_tokens_list(struct api *a, struct evhttp_request *req, UNUSED const char *id)
{
	json_t *list = json_array();
	nodeauth_joins_foreach(a->nodeauth, list_join, list);
	http_reply_json(req, 200, json_pack("{s:o}", "node_tokens", api_sorted(list, "created_at")));
}

void api_node_token_delete(struct api *a, struct evhttp_request *req, const char *id)
{
	struct mv_error err;
	if (nodeauth_join_revoke(a->nodeauth, id, &err) < 0) {
		http_reply_error(req, &err);
		return;
	}
	evhttp_send_reply(req, 204, "No Content", NULL);
}
