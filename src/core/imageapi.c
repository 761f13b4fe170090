/* imageapi — the images routes (the Glance part): blobs by content address, image
 * records. The registry itself is images.c; whether an image is in use, the cluster's. */
#include <errno.h>
#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/http.h"
#include "common/log.h"
#include "core/api.h"
#include "core/cluster.h"
#include "core/images.h"
#include "core/pools.h"

static json_t *image_to_json(const struct image *img)
{
	char created[40];
	clock_iso8601(img->created_wall_us, created, sizeof created);
	json_t *j = json_pack("{s:s, s:s, s:s, s:I, s:s}", "name", img->name, "project", img->project, "kernel",
	                      img->kernel, "kernel_size", (json_int_t)img->kernel_size, "created_at", created);
	if (img->initrd[0]) {
		json_object_set_new(j, "initrd", json_string(img->initrd));
		json_object_set_new(j, "initrd_size", json_integer(img->initrd_size));
	}
	if (img->cmdline)
		json_object_set_new(j, "cmdline", json_string(img->cmdline));
	if (img->xen_type[0])
		json_object_set_new(j, "xen_type", json_string(img->xen_type));
	return j;
}

/* ---- blobs ---- */

void api_blob_put(struct api *a, struct evhttp_request *req, const char *digest)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	struct mv_error err;
	bool created;

	if (!digest_valid(digest)) {
		mv_fail(&err, 400, "invalid_digest", "a blob is addressed as sha256:<64 lower-case hex>");
		goto fail;
	}
	if (len > MV_BLOB_MAX) {
		mv_fail(&err, 413, "body_too_large", "a blob may be at most %d MiB", MV_BLOB_MAX >> 20);
		goto fail;
	}
	if (images_blob_put(a->images, digest, evbuffer_pullup(in, (ev_ssize_t)len), len, &created, &err) < 0)
		goto fail;
	http_reply_json(req, created ? 201 : 200, json_pack("{s:s, s:I}", "digest", digest, "size", (json_int_t)len));
	return;
fail:
	http_reply_error(req, &err);
}

/* A node's credential fetches what its own instances boot, nothing else; a join token
 * nothing (it only registers). People's tokens are not the business of this check. */
static int node_may_fetch(struct api *a, const char *digest, struct mv_error *err)
{
	if (!a->who || !authz_is_node(a->who))
		return 0;
	if (a->who->kind == AUTHZ_JOIN)
		return mv_fail(err, 403, "forbidden", "a join token only registers a node: fetch blobs with the "
		               "credential the registration gave");
	if (!cluster_node_uses_blob(a->cluster, a->who->node_id, digest))
		return mv_fail(err, 403, "forbidden", "node %s has no instance that boots blob %s", a->who->node_id,
		               digest);
	return 0;
}

void api_blob_get(struct api *a, struct evhttp_request *req, const char *digest)
{
	struct mv_error err;
	int64_t size;
	int fd, rc;

	if (!digest_valid(digest) || !images_blob_exists(a->images, digest, NULL)) {
		mv_fail(&err, 404, "not_found", "no blob %.80s", digest);
		http_reply_error(req, &err);
		return;
	}
	if (node_may_fetch(a, digest, &err) < 0) {
		http_reply_error(req, &err);
		return;
	}
	if ((rc = images_blob_open(a->images, digest, &fd, &size)) < 0) {
		mv_fail(&err, 500, "store_failed", "cannot read blob %s: %s", digest, strerror(-rc));
		http_reply_error(req, &err);
		return;
	}
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/octet-stream");
	/* evbuffer_add_file takes the fd and sends the file without copying it into memory */
	if (evbuffer_add_file(evhttp_request_get_output_buffer(req), fd, 0, size) < 0) {
		mv_fail(&err, 500, "store_failed", "cannot send blob %s", digest);
		http_reply_error(req, &err);
		return;
	}
	evhttp_send_reply(req, 200, "OK", NULL);
}

/* ---- images ---- */

static int check_blob_field(struct api *a, const json_t *v, const char *field, bool required, char *out,
                            int64_t *size, struct mv_error *err)
{
	if (!v) {
		if (required)
			return mv_fail(err, 400, "missing_field", "%s is required (a blob digest sha256:...)", field);
		return 0;
	}
	if (!json_is_string(v) || !digest_valid(json_string_value(v)))
		return mv_fail(err, 400, "invalid_value", "%s must be a digest sha256:<64 hex>", field);
	if (!images_blob_exists(a->images, json_string_value(v), size))
		return mv_fail(err, 422, "unknown_blob", "%s %s was not uploaded (PUT /v1/blobs/DIGEST first)", field,
		               json_string_value(v));
	snprintf(out, DIGEST_LEN + 1, "%s", json_string_value(v));
	return 0;
}

static int parse_image(struct api *a, const json_t *b, struct image *img, struct mv_error *err)
{
	static const char *const fields[] = {"name", "kernel", "initrd", "cmdline", "xen_type", NULL};
	const json_t *name = json_object_get(b, "name"), *cmd = json_object_get(b, "cmdline"),
		     *xen_type = json_object_get(b, "xen_type");

	if (!json_is_object(b))
		return mv_fail(err, 400, "invalid_type", "the body must be a JSON object");
	if (mv_check_fields(b, "", fields, err) < 0)
		return -1;
	if (!name)
		return mv_fail(err, 400, "missing_field", "name is required");
	if (!json_is_string(name) || !name_valid(json_string_value(name)))
		return mv_fail(err, 400, "invalid_value", "name must be 1-%d characters [A-Za-z0-9._-]", MV_NAME_MAX);
	snprintf(img->name, sizeof img->name, "%s", json_string_value(name));
	if (cmd && (!json_is_string(cmd) || json_string_length(cmd) > MV_STRING_MAX ||
	            strlen(json_string_value(cmd)) != json_string_length(cmd)))
		return mv_fail(err, 400, "invalid_value", "cmdline must be a string of at most %d bytes", MV_STRING_MAX);
	if (xen_type && (!json_is_string(xen_type) || (strcmp(json_string_value(xen_type), "pv") != 0 &&
	                                               strcmp(json_string_value(xen_type), "pvh") != 0)))
		return mv_fail(err, 400, "invalid_value",
		               "xen_type must be \"pv\" (ClickOS, Mini-OS) or \"pvh\" (the default: Unikraft, Linux)");
	if (xen_type)
		snprintf(img->xen_type, sizeof img->xen_type, "%s", json_string_value(xen_type));
	if (check_blob_field(a, json_object_get(b, "kernel"), "kernel", true, img->kernel, &img->kernel_size, err) < 0 ||
	    check_blob_field(a, json_object_get(b, "initrd"), "initrd", false, img->initrd, &img->initrd_size, err) < 0)
		return -1;
	if (cmd && !(img->cmdline = strdup(json_string_value(cmd))))
		fatal("strdup");
	return 0;
}

void api_images_create(struct api *a, struct evhttp_request *req, UNUSED const char *unused)
{
	json_t *b = NULL;
	struct image img = {0};
	struct mv_error err;

	snprintf(img.project, sizeof img.project, "%s", a->who->project);
	if (http_read_json(req, &b, &err) < 0 || parse_image(a, b, &img, &err) < 0 || images_add(a->images, &img, &err) < 0) {
		json_decref(b);
		free(img.cmdline);
		http_reply_error(req, &err);
		return;
	}
	json_decref(b);
	http_reply_json(req, 201, image_to_json(images_get(a->images, img.name)));
}

struct image_list {
	json_t *list;
	const char *project; /* "": every project */
};

static void list_one(void *arg, const struct image *img)
{
	struct image_list *l = arg;
	if (!l->project[0] || strcmp(l->project, img->project) == 0)
		json_array_append_new(l->list, image_to_json(img));
}

void api_images_list(struct api *a, struct evhttp_request *req, UNUSED const char *unused)
{
	char project[MV_NAME_MAX + 1];
	struct image_list l = {.project = project};
	struct mv_error err;
	if (api_project_scope(a, req, project, &err) < 0) {
		http_reply_error(req, &err);
		return;
	}
	l.list = json_array();
	images_foreach(a->images, list_one, &l);
	http_reply_json(req, 200, json_pack("{s:o}", "images", l.list));
}

/* Another project's image is as missing as one that does not exist (no leak). */
static const struct image *visible_image(struct api *a, const char *name)
{
	const struct image *img = images_get(a->images, name);
	return img && api_sees(a, img->project) ? img : NULL;
}

void api_image_show(struct api *a, struct evhttp_request *req, const char *name)
{
	const struct image *img = visible_image(a, name);
	struct mv_error err;
	if (!img) {
		mv_fail(&err, 404, "not_found", "no image named %.64s", name);
		http_reply_error(req, &err);
		return;
	}
	http_reply_json(req, 200, image_to_json(img));
}

void api_image_delete(struct api *a, struct evhttp_request *req, const char *name)
{
	const struct instance *user;
	const struct pool *pool;
	struct mv_error err;

	if (!visible_image(a, name)) {
		mv_fail(&err, 404, "not_found", "no image named %.64s", name);
		goto fail;
	}
	if ((user = cluster_image_user(a->cluster, name))) {
		mv_fail(&err, 409, "image_in_use", "image %s is used by instance %s; stop it first", name, user->id);
		goto fail;
	}
	if ((pool = pools_image_user(a->pools, name))) {
		mv_fail(&err, 409, "image_in_use", "image %s is booted by pool %s; remove the pool first", name, pool->name);
		goto fail;
	}
	if (images_remove(a->images, name, &err) < 0)
		goto fail;
	evhttp_send_reply(req, 204, "No Content", NULL);
	return;
fail:
	http_reply_error(req, &err);
}
