/* images — the registry of diskless images (the Glance part): blobs stored by content
 * address (sha256) in the core's data dir, image metadata in the store. Nodes fetch a
 * blob by digest on first use and keep it in their cache. */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/fs.h"
#include "common/http.h"
#include "common/log.h"
#include "core/internal.h"
#include "core/store.h"

typedef void route_fn(struct core *c, struct evhttp_request *req, const char *id);
route_fn api_blob_put, api_blob_get, api_images_create, api_images_list, api_image_show, api_image_delete;

static void blob_path(struct core *c, const char *digest, char *out, size_t len)
{
	if (snprintf(out, len, "%s/blobs/%s", c->opts.data_dir, digest_hex(digest)) >= (int)len)
		fatalx("blob path too long");
}

static bool blob_exists(struct core *c, const char *digest, int64_t *size)
{
	char path[4200];
	struct stat st;
	blob_path(c, digest, path, sizeof path);
	if (stat(path, &st) < 0)
		return false;
	if (size)
		*size = st.st_size;
	return true;
}

static void image_free(struct image *img)
{
	if (img) {
		free(img->cmdline);
		free(img);
	}
}

static void load_one(void *arg, struct image *img)
{
	struct core *c = arg;
	hmap_put(&c->images, img->name, img);
}

int images_load(struct core *c, char *err, size_t errlen)
{
	char dir[4200];
	int rc;
	snprintf(dir, sizeof dir, "%s/blobs", c->opts.data_dir);
	if ((rc = fs_mkdir_p(dir, 0700)) < 0) {
		snprintf(err, errlen, "cannot create %s: %s", dir, strerror(-rc));
		return -1;
	}
	hmap_init(&c->images);
	if (store_load_images(c->store, load_one, c) < 0) {
		snprintf(err, errlen, "cannot load images from the store");
		return -1;
	}
	return 0;
}

void images_free(struct core *c)
{
	const char *k;
	void *v;
	for (size_t i = 0; hmap_next(&c->images, &i, &k, &v);)
		image_free(v);
	hmap_free(&c->images);
}

static json_t *image_to_json(const struct image *img)
{
	char created[40];
	clock_iso8601(img->created_wall_us, created, sizeof created);
	json_t *j = json_pack("{s:s, s:s, s:I, s:s}", "name", img->name, "kernel", img->kernel, "kernel_size",
	                      (json_int_t)img->kernel_size, "created_at", created);
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

json_t *images_boot_of(struct core *c, const char *name)
{
	struct image *img = hmap_get(&c->images, name);
	json_t *b;
	if (!img)
		return NULL;
	b = json_pack("{s:s}", "kernel", img->kernel);
	if (img->initrd[0])
		json_object_set_new(b, "initrd", json_string(img->initrd));
	if (img->cmdline)
		json_object_set_new(b, "cmdline", json_string(img->cmdline));
	if (img->xen_type[0]) /* the xen driver boots it PV or PVH (PVH when not said) */
		json_object_set_new(b, "xen_type", json_string(img->xen_type));
	return b;
}

/* ---- blobs ---- */

void api_blob_put(struct core *c, struct evhttp_request *req, const char *digest)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	char actual[DIGEST_LEN + 1], path[4200];
	struct mv_error err;
	unsigned char *data;
	int rc;

	if (!digest_valid(digest)) {
		mv_fail(&err, 400, "invalid_digest", "a blob is addressed as sha256:<64 lower-case hex>");
		goto fail;
	}
	if (len > MV_BLOB_MAX) {
		mv_fail(&err, 413, "body_too_large", "a blob may be at most %d MiB", MV_BLOB_MAX >> 20);
		goto fail;
	}
	if (blob_exists(c, digest, NULL)) {
		http_reply_json(req, 200, json_pack("{s:s, s:I}", "digest", digest, "size", (json_int_t)len));
		return;
	}
	data = evbuffer_pullup(in, (ev_ssize_t)len);
	digest_sha256(data, len, actual);
	if (strcmp(actual, digest) != 0) {
		mv_fail(&err, 400, "digest_mismatch", "the body's digest is %s, not %s; nothing was stored", actual,
		        digest);
		goto fail;
	}
	blob_path(c, digest, path, sizeof path);
	/* fsync: an image that was acknowledged must survive a power cut, not only a crash */
	if ((rc = fs_write_atomic(path, data, len, true)) < 0) {
		mv_fail(&err, 500, "store_failed", "cannot write the blob: %s", strerror(-rc));
		goto fail;
	}
	http_reply_json(req, 201, json_pack("{s:s, s:I}", "digest", digest, "size", (json_int_t)len));
	return;
fail:
	http_reply_error(req, &err);
}

void api_blob_get(struct core *c, struct evhttp_request *req, const char *digest)
{
	char path[4200];
	struct mv_error err;
	int fd;
	struct stat st;

	if (!digest_valid(digest) || !blob_exists(c, digest, NULL)) {
		mv_fail(&err, 404, "not_found", "no blob %.80s", digest);
		http_reply_error(req, &err);
		return;
	}
	blob_path(c, digest, path, sizeof path);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		if (fd >= 0)
			close(fd);
		mv_fail(&err, 500, "store_failed", "cannot read blob %s: %s", digest, strerror(errno));
		http_reply_error(req, &err);
		return;
	}
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/octet-stream");
	/* evbuffer_add_file takes the fd and sends the file without copying it into memory */
	if (evbuffer_add_file(evhttp_request_get_output_buffer(req), fd, 0, st.st_size) < 0) {
		mv_fail(&err, 500, "store_failed", "cannot send blob %s", digest);
		http_reply_error(req, &err);
		return;
	}
	evhttp_send_reply(req, 200, "OK", NULL);
}

/* ---- images ---- */

static int check_blob_field(struct core *c, const json_t *v, const char *field, bool required, char *out,
                            int64_t *size, struct mv_error *err)
{
	if (!v) {
		if (required)
			return mv_fail(err, 400, "missing_field", "%s is required (a blob digest sha256:...)", field);
		return 0;
	}
	if (!json_is_string(v) || !digest_valid(json_string_value(v)))
		return mv_fail(err, 400, "invalid_value", "%s must be a digest sha256:<64 hex>", field);
	if (!blob_exists(c, json_string_value(v), size))
		return mv_fail(err, 422, "unknown_blob", "%s %s was not uploaded (PUT /v1/blobs/DIGEST first)", field,
		               json_string_value(v));
	snprintf(out, DIGEST_LEN + 1, "%s", json_string_value(v));
	return 0;
}

static int parse_image(struct core *c, const json_t *b, struct image *img, struct mv_error *err)
{
	static const char *const fields[] = {"name", "kernel", "initrd", "cmdline", "xen_type", NULL};
	const json_t *name = json_object_get(b, "name"), *cmd = json_object_get(b, "cmdline"),
		     *xen_type = json_object_get(b, "xen_type");
	const char *k;
	json_t *v;

	if (!json_is_object(b))
		return mv_fail(err, 400, "invalid_type", "the body must be a JSON object");
	json_object_foreach((json_t *)b, k, v) {
		bool ok = false;
		for (int i = 0; fields[i]; i++)
			ok = ok || strcmp(k, fields[i]) == 0;
		if (!ok)
			return mv_fail(err, 400, "unknown_field", "unknown field %.64s", k);
	}
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
	if (check_blob_field(c, json_object_get(b, "kernel"), "kernel", true, img->kernel, &img->kernel_size, err) < 0 ||
	    check_blob_field(c, json_object_get(b, "initrd"), "initrd", false, img->initrd, &img->initrd_size, err) < 0)
		return -1;
	if (cmd && !(img->cmdline = strdup(json_string_value(cmd))))
		fatal("strdup");
	return 0;
}

void api_images_create(struct core *c, struct evhttp_request *req, UNUSED const char *unused)
{
	json_t *b = NULL;
	struct image *img = calloc(1, sizeof *img);
	struct mv_error err;

	if (!img)
		fatal("calloc");
	if (http_read_json(req, &b, &err) < 0 || parse_image(c, b, img, &err) < 0)
		goto fail;
	if (hmap_get(&c->images, img->name)) {
		mv_fail(&err, 409, "name_conflict", "an image named %s exists; remove it first", img->name);
		goto fail;
	}
	img->created_wall_us = clock_wall_us();
	if (store_put_image(c->store, img) < 0) {
		mv_fail(&err, 500, "store_failed", "the store could not save the image; nothing changed");
		goto fail;
	}
	hmap_put(&c->images, img->name, img);
	json_decref(b);
	http_reply_json(req, 201, image_to_json(img));
	return;
fail:
	json_decref(b);
	image_free(img);
	http_reply_error(req, &err);
}

void api_images_list(struct core *c, struct evhttp_request *req, UNUSED const char *unused)
{
	json_t *list = json_array();
	const char *k;
	void *v;
	for (size_t i = 0; hmap_next(&c->images, &i, &k, &v);)
		json_array_append_new(list, image_to_json(v));
	http_reply_json(req, 200, json_pack("{s:o}", "images", list));
}

void api_image_show(struct core *c, struct evhttp_request *req, const char *name)
{
	struct image *img = hmap_get(&c->images, name);
	struct mv_error err;
	if (!img) {
		mv_fail(&err, 404, "not_found", "no image named %.64s", name);
		http_reply_error(req, &err);
		return;
	}
	http_reply_json(req, 200, image_to_json(img));
}

static const char *image_user(struct core *c, const char *name)
{
	const char *k;
	void *v;
	for (size_t i = 0; hmap_next(&c->instances, &i, &k, &v);) {
		struct instance *in = v;
		json_t *spec;
		bool uses;
		if (inst_state_terminal(in->state))
			continue;
		spec = instance_spec(in);
		uses = json_string_value(json_object_get(spec, "image")) &&
		       strcmp(json_string_value(json_object_get(spec, "image")), name) == 0;
		json_decref(spec);
		if (uses)
			return in->id;
	}
	return NULL;
}

/* Removes a blob no image refers to any more. */
static void blob_collect(struct core *c, const char *digest)
{
	const char *k;
	void *v;
	char path[4200];
	if (!digest[0])
		return;
	for (size_t i = 0; hmap_next(&c->images, &i, &k, &v);) {
		struct image *img = v;
		if (strcmp(img->kernel, digest) == 0 || strcmp(img->initrd, digest) == 0)
			return;
	}
	blob_path(c, digest, path, sizeof path);
	if (unlink(path) < 0 && errno != ENOENT)
		log_warn("cannot remove blob %s", path);
}

void api_image_delete(struct core *c, struct evhttp_request *req, const char *name)
{
	struct image *img = hmap_get(&c->images, name);
	struct mv_error err;
	const char *user;

	if (!img) {
		mv_fail(&err, 404, "not_found", "no image named %.64s", name);
		goto fail;
	}
	if ((user = image_user(c, name))) {
		mv_fail(&err, 409, "image_in_use", "image %s is used by instance %s; stop it first", name, user);
		goto fail;
	}
	if (store_delete_image(c->store, name) < 0) {
		mv_fail(&err, 500, "store_failed", "the store could not remove the image; it is kept");
		goto fail;
	}
	hmap_remove(&c->images, name);
	blob_collect(c, img->kernel);
	blob_collect(c, img->initrd);
	image_free(img);
	evhttp_send_reply(req, 204, "No Content", NULL);
	return;
fail:
	http_reply_error(req, &err);
}
