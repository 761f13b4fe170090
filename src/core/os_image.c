/* os_image — Glance v2: images, their upload and download, over the native image
 * registry (images.h) and its content-addressed blobs.
 *
 * A Glance image is named (its name is the native image's, so names are unique here) and
 * its id is derived from the name (os_uuid_of). disk_format says what it is:
 *   aki  a kernel: once its file is uploaded it is a native image (kernel = the file; the
 *        property os_command_line, if any, its command line) that servers boot;
 *   ari  a ramdisk: its file is a blob, booted by an image that names it in ramdisk_id;
 *   ami  a machine image, with the properties kernel_id (an aki image), ramdisk_id (an ari
 *        image) and os_command_line: a diskless boot as OpenStack's AMI-style images make,
 *        active at once (it needs no file).
 * What Glance keeps that the registry does not (formats, visibility, properties, and the
 * images not yet uploaded) is DATA_DIR/openstack-images.json, by image name, written
 * atomically at every change. Native images made through /v1/images show as aki images.
 *
 * An image belongs to the project that made it (its "owner"; the native image's project,
 * or the record's "owner", admin for records older than projects), as native images do:
 * its project's users and admins see it; to others it does not exist (404), whatever its
 * visibility says (kept and shown, as a client set it). Names are unique across projects. */
#include "core/os.h"

#include <errno.h>
#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/digest.h"
#include "common/fs.h"
#include "common/http.h"
#include "common/log.h"
#include "core/api.h"
#include "core/cluster.h"
#include "core/images.h"

#define RECORDS_MAX 4096
#define PROPERTIES_MAX 64
#define PROPERTY_MAX 255

struct os_glance {
	char path[4096];
	json_t *records; /* image name -> {"disk_format", "container_format", "visibility", "status",
	                  * "properties", "blob", "size", "created_at", "updated_at"} */
};

static void reply_fail(struct os_req *r, const struct mv_error *err) { os_reply_error(r->req, OS_IMAGE, err); }

struct os_glance *os_glance_open(const char *data_dir, char *err, size_t errlen)
{
	struct os_glance *g = calloc(1, sizeof *g);
	char *text = NULL;
	size_t len;
	int rc;
	json_error_t je;

	if (!g)
		fatal("calloc");
	snprintf(g->path, sizeof g->path, "%s/%s", data_dir, OS_GLANCE_FILE);
	if ((rc = fs_read_file(g->path, 64 << 20, &text, &len)) == -ENOENT) {
		g->records = json_object();
		return g;
	}
	if (rc < 0) {
		snprintf(err, errlen, "cannot read %s: %s", g->path, strerror(-rc));
		free(g);
		return NULL;
	}
	g->records = json_loads(text, 0, &je);
	free(text);
	if (!json_is_object(g->records)) {
		snprintf(err, errlen, "%s is damaged: %s (line %d)", g->path, je.text, je.line);
		json_decref(g->records);
		free(g);
		return NULL;
	}
	return g;
}

void os_glance_free(struct os_glance *g)
{
	if (!g)
		return;
	json_decref(g->records);
	free(g);
}

static int glance_save(struct os_glance *g, struct mv_error *err)
{
	char *text = json_dumps(g->records, JSON_INDENT(1) | JSON_SORT_KEYS);
	int rc;
	if (!text)
		fatal("json_dumps");
	rc = fs_write_atomic(g->path, text, strlen(text), true);
	free(text);
	if (rc < 0)
		return mv_fail(err, 500, "store_failed", "cannot write %s: %s", g->path, strerror(-rc));
	return 0;
}

/* ---- the images as Glance shows them ---- */

/* The project an image belongs to (the module comment). */
static const char *record_owner(const json_t *rec)
{
	const char *p = json_string_value(json_object_get(rec, "owner"));
	return p ? p : AUTHZ_ADMIN_PROJECT;
}

static bool visible(const struct authz_principal *who, const char *project)
{
	return !who || authz_sees(who, project);
}


static json_t *image_json(const struct osapi *o, const char *name, const struct image *img, const json_t *rec)
{
	char id[OS_UUID_LEN + 1], self[128], file[160], created[32] = "";
	const char *blob = json_string_value(json_object_get(rec, "blob"));
	json_t *j, *props = json_object_get(rec, "properties"), *v;
	const char *k;

	os_uuid_of("image", name, id);
	snprintf(self, sizeof self, "/v2/images/%s", id);
	snprintf(file, sizeof file, "/v2/images/%s/file", id);
	if (img) {
		os_time(img->created_wall_us, created, sizeof created);
		blob = img->kernel;
	}
	j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:i, s:i, s:b, s:b, s:[], s:s, s:s, s:s, s:n}", "id", id, "name", name,
	              "status", img ? "active" : json_string_value(json_object_get(rec, "status")), "disk_format",
	              rec ? json_string_value(json_object_get(rec, "disk_format")) : "aki", "container_format",
	              rec ? json_string_value(json_object_get(rec, "container_format")) : "aki", "visibility",
	              rec ? json_string_value(json_object_get(rec, "visibility")) : "public", "min_disk", 0, "min_ram", 0,
	              "protected", false, "os_hidden", false, "tags", "self", self, "file", file, "schema",
	              "/v2/schemas/image", "virtual_size");
	json_object_set_new(j, "created_at", json_string(img ? created : json_string_value(json_object_get(rec, "created_at"))));
	json_object_set_new(j, "updated_at", json_string(rec ? json_string_value(json_object_get(rec, "updated_at")) : created));
	if (blob) {
		int64_t size = img && !json_object_get(rec, "blob") ? img->kernel_size
		                                                     : json_integer_value(json_object_get(rec, "size"));
		json_object_update_new(j, json_pack("{s:I, s:s, s:s, s:n}", "size", (json_int_t)size, "os_hash_algo", "sha256",
		                                    "os_hash_value", digest_hex(blob), "checksum"));
	} else
		json_object_update_new(j, json_pack("{s:n, s:n, s:n, s:n}", "size", "os_hash_algo", "os_hash_value", "checksum"));
	json_object_foreach(props, k, v)
		json_object_set(j, k, v);
	if (img && !rec) {
		if (img->cmdline)
			json_object_set_new(j, "os_command_line", json_string(img->cmdline));
		if (img->initrd[0])
			json_object_set_new(j, "microvim_initrd", json_string(img->initrd));
	}
	os_uuid_of("project", img ? img->project : record_owner(rec), id);
	json_object_set_new(j, "owner", json_string(id));
	(void)o;
	return j;
}

/* The image an id or name refers to: its name in *name (and its native image, and its
 * record, either may be NULL); false when there is none. */
struct found {
	char name[MV_NAME_MAX + 1];
	const struct image *img;
	json_t *rec;
};

struct find_arg {
	const char *ref;
	const struct authz_principal *who; /* NULL: every project's */
	struct found *f;
};

static void find_native(void *arg, const struct image *img)
{
	struct find_arg *a = arg;
	char id[OS_UUID_LEN + 1];
	if (a->f->img)
		return;
	os_uuid_of("image", img->name, id);
	if ((strcmp(id, a->ref) == 0 || strcmp(img->name, a->ref) == 0) && visible(a->who, img->project)) {
		a->f->img = img;
		snprintf(a->f->name, sizeof a->f->name, "%s", img->name);
	}
}

/* A record whose registry image went (removed through /v1/images): an active aki or ami is
 * its registry image, so without it the image is gone (a new image of its name replaces it). */
static bool record_orphaned(const json_t *rec)
{
	const char *fmt = json_string_value(json_object_get(rec, "disk_format"));
	return strcmp(json_string_value(json_object_get(rec, "status")), "active") == 0 && strcmp(fmt, "ari") != 0;
}

/* The image ref names, among those who sees (NULL: all). */
static bool image_find(struct osapi *o, const struct authz_principal *who, const char *ref, struct found *f)
{
	struct find_arg a = {.ref = ref, .who = who, .f = f};
	const char *k;
	json_t *v;
	memset(f, 0, sizeof *f);
	images_foreach(o->native->images, find_native, &a);
	if (f->img) {
		f->rec = json_object_get(o->glance->records, f->name);
		return true;
	}
	json_object_foreach(o->glance->records, k, v) {
		char id[OS_UUID_LEN + 1];
		if (record_orphaned(v) || !visible(who, record_owner(v)))
			continue;
		os_uuid_of("image", k, id);
		if (strcmp(id, ref) == 0 || strcmp(k, ref) == 0) {
			snprintf(f->name, sizeof f->name, "%s", k);
			f->rec = v;
			return true;
		}
	}
	return false;
}

const char *os_glance_native_name(struct osapi *o, const struct os_principal *who, const char *image_ref, char *buf,
                                  size_t len)
{
	struct found f;
	const char *slash = strrchr(image_ref, '/'); /* an imageRef may be the image's URL */
	if (slash)
		image_ref = slash + 1;
	if (!image_find(o, &who->authz, image_ref, &f) || !f.img)
		return NULL;
	snprintf(buf, len, "%s", f.name);
	return buf;
}

static bool image_or_404(struct osapi *o, struct os_req *r, struct found *f)
{
	struct mv_error err;
	if (image_find(o, &r->who.authz, r->id, f))
		return true;
	mv_fail(&err, 404, "not_found", "No image found with ID %.64s", r->id);
	reply_fail(r, &err);
	return false;
}

void os_image_show(struct osapi *o, struct os_req *r)
{
	struct found f;
	if (image_or_404(o, r, &f))
		http_reply_json(r->req, 200, image_json(o, f.name, f.img, f.rec));
}

/* ---- GET /v2/images: name, status, disk_format, visibility; limit, marker ---- */

struct image_list {
	struct osapi *o;
	const struct authz_principal *who;
	char name[MV_NAME_MAX + 2], status[16], disk_format[16], visibility[16];
	json_t *list;
};

static void list_add(struct image_list *l, const char *name, const struct image *img, const json_t *rec)
{
	json_t *j = image_json(l->o, name, img, rec);
	if ((l->name[0] && strcmp(l->name, name) != 0) ||
	    (l->status[0] && strcmp(l->status, json_string_value(json_object_get(j, "status"))) != 0) ||
	    (l->disk_format[0] && strcmp(l->disk_format, json_string_value(json_object_get(j, "disk_format"))) != 0) ||
	    (l->visibility[0] && strcmp(l->visibility, "all") != 0 &&
	     strcmp(l->visibility, json_string_value(json_object_get(j, "visibility"))) != 0)) {
		json_decref(j);
		return;
	}
	json_array_append_new(l->list, j);
}

static void list_native(void *arg, const struct image *img)
{
	struct image_list *l = arg;
	if (visible(l->who, img->project))
		list_add(l, img->name, img, json_object_get(l->o->glance->records, img->name));
}

void os_images_list(struct osapi *o, struct os_req *r)
{
	struct image_list l = {.o = o, .who = &r->who.authz, .list = json_array()};
	char marker[64] = "", limit[16];
	size_t from = 0, max = SIZE_MAX, i;
	json_t *v, *page, *body;
	const char *k;
	struct mv_error err;

	http_query(r->req, "name", l.name, sizeof l.name);
	http_query(r->req, "status", l.status, sizeof l.status);
	http_query(r->req, "disk_format", l.disk_format, sizeof l.disk_format);
	http_query(r->req, "visibility", l.visibility, sizeof l.visibility);
	images_foreach(o->native->images, list_native, &l);
	json_object_foreach(o->glance->records, k, v)
		if (!images_get(o->native->images, k) && !record_orphaned(v) && visible(l.who, record_owner(v)))
			list_add(&l, k, NULL, v);
	if (http_query(r->req, "limit", limit, sizeof limit)) {
		char *end;
		long n = strtol(limit, &end, 10);
		if (end == limit || *end || n < 0 || n > 100000) {
			mv_fail(&err, 400, "invalid_query", "limit must be a whole number, 0-100000");
			json_decref(l.list);
			reply_fail(r, &err);
			return;
		}
		max = (size_t)n;
	}
	if (http_query(r->req, "marker", marker, sizeof marker)) {
		json_array_foreach(l.list, i, v)
			if (strcmp(json_string_value(json_object_get(v, "id")), marker) == 0)
				from = i + 1;
		if (!from) {
			mv_fail(&err, 400, "invalid_query", "marker %.64s is not an image of this list", marker);
			json_decref(l.list);
			reply_fail(r, &err);
			return;
		}
	}
	page = json_array();
	for (i = from; i < json_array_size(l.list) && json_array_size(page) < max; i++)
		json_array_append(page, json_array_get(l.list, i));
	body = json_pack("{s:o, s:s, s:s}", "images", page, "first", "/v2/images", "schema", "/v2/schemas/images");
	if (max != SIZE_MAX && json_array_size(page) == max && i < json_array_size(l.list) && max > 0) {
		char next[160];
		snprintf(next, sizeof next, "/v2/images?limit=%zu&marker=%s", max,
		         json_string_value(json_object_get(json_array_get(page, max - 1), "id")));
		json_object_set_new(body, "next", json_string(next));
	}
	json_decref(l.list);
	http_reply_json(r->req, 200, body);
}

/* ---- POST /v2/images ---- */

/* An image's kernel and ramdisk by reference (kernel_id, ramdisk_id): the blob of an
 * active aki (or ari) image. */
static int blob_of(struct osapi *o, const struct authz_principal *who, const char *prop, const char *ref,
                   const char *format, char *digest, struct mv_error *err)
{
	struct found f;
	const char *fmt;
	if (!image_find(o, who, ref, &f))
		return mv_fail(err, 400, "invalid_field", "%s %.64s: no such image", prop, ref);
	fmt = f.rec ? json_string_value(json_object_get(f.rec, "disk_format")) : "aki";
	if (strcmp(fmt, format) != 0)
		return mv_fail(err, 400, "invalid_field", "%s %.64s is a %s image, not %s", prop, ref, fmt, format);
	if (f.img) {
		snprintf(digest, DIGEST_LEN + 1, "%s", f.img->kernel);
		return 0;
	}
	if (!json_string_value(json_object_get(f.rec, "blob")))
		return mv_fail(err, 400, "invalid_field", "%s %.64s has no data yet: upload its file first", prop, ref);
	snprintf(digest, DIGEST_LEN + 1, "%s", json_string_value(json_object_get(f.rec, "blob")));
	if (!images_blob_exists(o->native->images, digest, NULL))
		return mv_fail(err, 409, "invalid_state", "%s %.64s lost its data; upload its file again", prop, ref);
	return 0;
}

/* Registers the native image of an aki (its kernel uploaded) or an ami (kernel_id ...),
 * project's; who must see the kernel and ramdisk it names. */
static int make_native(struct osapi *o, const struct authz_principal *who, const char *name, const char *project,
                       const char *kernel, const json_t *props, struct mv_error *err)
{
	struct image img = {0};
	const char *kid = json_string_value(json_object_get(props, "kernel_id"));
	const char *rid = json_string_value(json_object_get(props, "ramdisk_id"));
	const char *cmd = json_string_value(json_object_get(props, "os_command_line"));

	snprintf(img.name, sizeof img.name, "%s", name);
	snprintf(img.project, sizeof img.project, "%s", project);
	if (kernel)
		snprintf(img.kernel, sizeof img.kernel, "%s", kernel);
	else if (blob_of(o, who, "kernel_id", kid, "aki", img.kernel, err) < 0)
		return -1;
	if (rid && blob_of(o, who, "ramdisk_id", rid, "ari", img.initrd, err) < 0)
		return -1;
	images_blob_exists(o->native->images, img.kernel, &img.kernel_size);
	if (img.initrd[0])
		images_blob_exists(o->native->images, img.initrd, &img.initrd_size);
	if (cmd && !(img.cmdline = strdup(cmd)))
		fatal("strdup");
	if (images_add(o->native->images, &img, err) < 0) {
		free(img.cmdline);
		return -1;
	}
	return 0;
}

static int choice(const json_t *v, const char *field, const char *const *choices, const char *dflt, const char **out,
                  struct mv_error *err)
{
	if (!v) {
		*out = dflt;
		return 0;
	}
	return mv_check_choice(v, field, choices, out, err);
}

/* Glance's create body: its fields, the rest string properties. 400 naming the field. */
static int parse_create(struct osapi *o, const struct os_req *r, const json_t *b, json_t **rec, const char **name,
                        struct mv_error *err)
{
	static const char *const disk_formats[] = {"aki", "ari", "ami", NULL};
	static const char *const containers[] = {"aki", "ari", "ami", "bare", NULL};
	static const char *const visibilities[] = {"public", "private", "shared", "community", NULL};
	static const char *const reserved[] = {"id", "status", "size", "checksum", "os_hash_value", "os_hash_algo",
	                                       "location", "locations", "owner", "self", "file", "schema",
	                                       "created_at", "updated_at", "virtual_size", "direct_url", NULL};
	const char *df, *cf, *vis, *k;
	const json_t *n = json_object_get(b, "name"), *v;
	json_t *props;
	char now[32];
	struct found f;

	if (!json_is_string(n) || !name_valid(json_string_value(n)))
		return mv_fail(err, 400, "invalid_field", "name is required: 1-%d characters [A-Za-z0-9._-] (unique here)",
		               MV_NAME_MAX);
	*name = json_string_value(n);
	if (image_find(o, NULL, *name, &f)) {
		char id[OS_UUID_LEN + 1];
		os_uuid_of("image", f.name, id);
		return mv_fail(err, 409, "name_conflict", "an image named %s exists (its id %s): names are unique here",
		               *name, id);
	}
	if (choice(json_object_get(b, "disk_format"), "disk_format", disk_formats, "aki", &df, err) < 0 ||
	    choice(json_object_get(b, "container_format"), "container_format", containers, df, &cf, err) < 0 ||
	    choice(json_object_get(b, "visibility"), "visibility", visibilities, "public", &vis, err) < 0)
		return -1;
	props = json_object();
	json_object_foreach((json_t *)b, k, v) {
		if (strcmp(k, "name") == 0 || strcmp(k, "disk_format") == 0 || strcmp(k, "container_format") == 0 ||
		    strcmp(k, "visibility") == 0 || strcmp(k, "tags") == 0 || strcmp(k, "min_disk") == 0 ||
		    strcmp(k, "min_ram") == 0 || strcmp(k, "protected") == 0 || strcmp(k, "os_hidden") == 0)
			continue;
		for (const char *const *res = reserved; *res; res++)
			if (strcmp(k, *res) == 0) {
				json_decref(props);
				return mv_fail(err, 403, "forbidden", "Attribute '%s' is read-only.", k);
			}
		if (!json_is_string(v) || json_string_length(v) > PROPERTY_MAX || strlen(k) > PROPERTY_MAX ||
		    json_object_size(props) == PROPERTIES_MAX) {
			json_decref(props);
			return mv_fail(err, 400, "invalid_field", "property %.64s must be a string of at most %d bytes (at most %d properties)",
			               k, PROPERTY_MAX, PROPERTIES_MAX);
		}
		json_object_set(props, k, (json_t *)v);
	}
	if ((v = json_object_get(props, "os_command_line")) && json_string_length(v) > MV_STRING_MAX) {
		json_decref(props);
		return mv_fail(err, 400, "invalid_field", "os_command_line is at most %d bytes", MV_STRING_MAX);
	}
	if (strcmp(df, "ami") == 0 && !json_object_get(props, "kernel_id")) {
		json_decref(props);
		return mv_fail(err, 400, "invalid_field",
		               "an ami image boots its kernel_id (an aki image; with ramdisk_id and os_command_line): "
		               "microvim boots no disk images");
	}
	os_time(clock_wall_us(), now, sizeof now);
	*rec = json_pack("{s:s, s:s, s:s, s:s, s:o, s:s, s:s, s:s}", "disk_format", df, "container_format", cf,
	                 "visibility", vis, "status", "queued", "properties", props, "created_at", now, "updated_at", now,
	                 "owner", r->who.authz.project);
	return 0;
}

void os_images_create(struct osapi *o, struct os_req *r)
{
	json_t *body = NULL, *rec = NULL;
	const char *name = NULL;
	struct mv_error err;
	bool native = false;

	if (os_read_body(r->req, &body, &err) < 0 || parse_create(o, r, body, &rec, &name, &err) < 0)
		goto fail;
	if (json_object_size(o->glance->records) >= RECORDS_MAX) {
		mv_fail(&err, 413, "too_many_images", "at most %d images; delete some first", RECORDS_MAX);
		goto fail;
	}
	if (json_object_get(json_object_get(rec, "properties"), "kernel_id")) { /* AMI style: bootable now */
		if (make_native(o, &r->who.authz, name, r->who.authz.project, NULL, json_object_get(rec, "properties"), &err) < 0)
			goto fail;
		native = true;
		json_object_set_new(rec, "status", json_string("active"));
	}
	json_object_set(o->glance->records, name, rec);
	if (glance_save(o->glance, &err) < 0) {
		struct mv_error ignored;
		json_object_del(o->glance->records, name);
		if (native)
			images_remove(o->native->images, name, &ignored);
		goto fail;
	}
	http_reply_json(r->req, 201, image_json(o, name, images_get(o->native->images, name), rec));
	json_decref(rec);
	json_decref(body);
	return;
fail:
	json_decref(rec);
	json_decref(body);
	reply_fail(r, &err);
}

/* ---- PUT/GET /v2/images/{id}/file ---- */

void os_image_upload(struct osapi *o, struct os_req *r)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(r->req);
	size_t len = evbuffer_get_length(in);
	char digest[DIGEST_LEN + 1], now[32];
	const char *fmt;
	struct found f;
	struct mv_error err;
	bool created;
	json_t *rec;

	if (!image_or_404(o, r, &f))
		return;
	if (f.img || !f.rec || strcmp(json_string_value(json_object_get(f.rec, "status")), "queued") != 0) {
		mv_fail(&err, 409, "invalid_state", "Image status transition from active to saving is not allowed (%s has its data)",
		        f.name);
		goto fail;
	}
	if (len == 0 || len > MV_BLOB_MAX) {
		mv_fail(&err, len ? 413 : 400, len ? "body_too_large" : "invalid_body",
		        "an image's file must be 1 byte to %d MiB", MV_BLOB_MAX >> 20);
		goto fail;
	}
	digest_sha256(evbuffer_pullup(in, (ev_ssize_t)len), len, digest);
	if (images_blob_put(o->native->images, digest, evbuffer_pullup(in, (ev_ssize_t)len), len, &created, &err) < 0)
		goto fail;
	rec = json_deep_copy(f.rec);
	fmt = json_string_value(json_object_get(rec, "disk_format"));
	os_time(clock_wall_us(), now, sizeof now);
	json_object_update_new(rec, json_pack("{s:s, s:s, s:I, s:s}", "status", "active", "blob", digest, "size",
	                                      (json_int_t)len, "updated_at", now));
	if (strcmp(fmt, "aki") == 0 && make_native(o, &r->who.authz, f.name, record_owner(rec), digest, json_object_get(rec, "properties"), &err) < 0) {
		json_decref(rec);
		goto fail;
	}
	json_object_set_new(o->glance->records, f.name, rec);
	if (glance_save(o->glance, &err) < 0)
		goto fail;
	evhttp_send_reply(r->req, 204, "No Content", NULL);
	return;
fail:
	reply_fail(r, &err);
}

void os_image_download(struct osapi *o, struct os_req *r)
{
	struct found f;
	struct mv_error err;
	const char *blob;
	int64_t size;
	int fd, rc;

	if (!image_or_404(o, r, &f))
		return;
	blob = f.img ? f.img->kernel : json_string_value(json_object_get(f.rec, "blob"));
	if (!blob) {
		evhttp_send_reply(r->req, 204, "No Content", NULL); /* Glance: an image without data */
		return;
	}
	if ((rc = images_blob_open(o->native->images, blob, &fd, &size)) < 0) {
		mv_fail(&err, 500, "store_failed", "cannot read the data of %s: %s", f.name, strerror(-rc));
		reply_fail(r, &err);
		return;
	}
	evhttp_add_header(evhttp_request_get_output_headers(r->req), "Content-Type", "application/octet-stream");
	if (evbuffer_add_file(evhttp_request_get_output_buffer(r->req), fd, 0, size) < 0) {
		mv_fail(&err, 500, "store_failed", "cannot send the data of %s", f.name);
		reply_fail(r, &err);
		return;
	}
	evhttp_send_reply(r->req, 200, "OK", NULL);
}

/* ---- DELETE /v2/images/{id} ---- */

void os_image_delete(struct osapi *o, struct os_req *r)
{
	const struct instance *user;
	struct found f;
	struct mv_error err;

	if (!image_or_404(o, r, &f))
		return;
	if (f.img) {
		if ((user = cluster_image_user(o->native->cluster, f.name))) {
			char sid[OS_UUID_LEN + 1];
			os_server_id(user->id, sid);
			mv_fail(&err, 409, "image_in_use", "Image %s is in use by server %s; delete the server first", r->id, sid);
			goto fail;
		}
		if (images_remove(o->native->images, f.name, &err) < 0)
			goto fail;
	}
	if (f.rec) {
		json_object_del(o->glance->records, f.name);
		if (glance_save(o->glance, &err) < 0)
			goto fail;
	}
	evhttp_send_reply(r->req, 204, "No Content", NULL);
	return;
fail:
	reply_fail(r, &err);
}

/* ---- discovery and the schema clients read before a change ---- */

void os_image_root(struct osapi *o, struct os_req *r)
{
	char href[256];
	snprintf(href, sizeof href, "%s/image/v2/", o->url);
	http_reply_json(r->req, 200, json_pack("{s:[{s:s, s:s, s:[{s:s, s:s}]}]}", "versions", "id", "v2.9", "status",
	                                       "CURRENT", "links", "rel", "self", "href", href));
}

void os_image_schemas(UNUSED struct osapi *o, struct os_req *r)
{
	http_reply_json(r->req, 200,
	                json_pack("{s:s, s:{s:{s:s}, s:{s:[s, s]}, s:{s:[s, s, s]}, s:{s:[s, s, s, s]}, s:{s:s}, s:{s:s}},"
	                          " s:{s:s}}",
	                          "name", "image", "properties", "id", "type", "string", "name", "type", "string", "null",
	                          "disk_format", "enum", "aki", "ari", "ami", "visibility", "enum", "public", "private",
	                          "shared", "community", "status", "type", "string", "kernel_id", "type", "string",
	                          "additionalProperties", "type", "string"));
}
