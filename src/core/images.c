#include "core/images.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/fs.h"
#include "common/hmap.h"
#include "common/log.h"
#include "core/store.h"

struct images {
	struct store *store;
	char blob_dir[4096];
	struct hmap by_name; /* name -> struct image */
};

static void image_free(struct image *img)
{
	if (img) {
		free(img->cmdline);
		free(img);
	}
}

static void load_one(void *arg, const struct store_image_row *row)
{
	struct images *im = arg;
	struct image *img = calloc(1, sizeof *img);
	if (!img)
		fatal("calloc");
	memcpy(img->name, row->name, sizeof img->name);
	memcpy(img->kernel, row->kernel, sizeof img->kernel);
	memcpy(img->initrd, row->initrd, sizeof img->initrd);
	if (row->cmdline && !(img->cmdline = strdup(row->cmdline)))
		fatal("strdup");
	memcpy(img->xen_type, row->xen_type, sizeof img->xen_type);
	snprintf(img->project, sizeof img->project, "%s", row->project[0] ? row->project : "admin");
	img->kernel_size = row->kernel_size;
	img->initrd_size = row->initrd_size;
	img->created_wall_us = row->created_us;
	hmap_put(&im->by_name, img->name, img);
}

struct images *images_open(struct store *store, const char *data_dir, char *err, size_t errlen)
{
	struct images *im = calloc(1, sizeof *im);
	int rc;
	if (!im)
		fatal("calloc");
	im->store = store;
	hmap_init(&im->by_name);
	if (snprintf(im->blob_dir, sizeof im->blob_dir, "%s/blobs", data_dir) >= (int)sizeof im->blob_dir) {
		snprintf(err, errlen, "--data-dir path too long");
		goto fail;
	}
	if ((rc = fs_mkdir_p(im->blob_dir, 0700)) < 0) {
		snprintf(err, errlen, "cannot create %s: %s", im->blob_dir, strerror(-rc));
		goto fail;
	}
	if (store_images_load(store, load_one, im) < 0) {
		snprintf(err, errlen, "cannot load images from the store");
		goto fail;
	}
	return im;
fail:
	images_close(im);
	return NULL;
}

int images_reload(struct images *im)
{
	struct images fresh = {.store = im->store}, old;
	const char *k;
	void *v;
	hmap_init(&fresh.by_name);
	if (store_images_load(im->store, load_one, &fresh) < 0) {
		log_warnx("images: cannot load them again from the store; keeping what was loaded before");
		for (size_t i = 0; hmap_next(&fresh.by_name, &i, &k, &v);)
			image_free(v);
		hmap_free(&fresh.by_name);
		return -1;
	}
	old = *im;
	im->by_name = fresh.by_name;
	for (size_t i = 0; hmap_next(&old.by_name, &i, &k, &v);)
		image_free(v);
	hmap_free(&old.by_name);
	return 0;
}

void images_close(struct images *im)
{
	const char *k;
	void *v;
	if (!im)
		return;
	for (size_t i = 0; hmap_next(&im->by_name, &i, &k, &v);)
		image_free(v);
	hmap_free(&im->by_name);
	free(im);
}

const struct image *images_get(const struct images *im, const char *name)
{
	return hmap_get(&im->by_name, name);
}

void images_foreach(const struct images *im, void (*fn)(void *arg, const struct image *img), void *arg)
{
	const char *k;
	void *v;
	for (size_t i = 0; hmap_next(&im->by_name, &i, &k, &v);)
		fn(arg, v);
}

void images_boot_of(const struct image *img, struct inst_boot *out)
{
	memcpy(out->kernel, img->kernel, sizeof out->kernel);
	memcpy(out->initrd, img->initrd, sizeof out->initrd);
	out->cmdline = NULL;
	if (img->cmdline && !(out->cmdline = strdup(img->cmdline)))
		fatal("strdup");
	memcpy(out->xen_type, img->xen_type, sizeof out->xen_type);
}

size_t images_project_count(const struct images *im, const char *project)
{
	const char *k;
	void *v;
	size_t n = 0;
	for (size_t i = 0; hmap_next(&im->by_name, &i, &k, &v);)
		n += strcmp(((const struct image *)v)->project, project) == 0;
	return n;
}

int images_add(struct images *im, struct image *img, struct mv_error *err)
{
	struct image *copy;
	int rc;
	struct store_image_row row = {.cmdline = img->cmdline, .kernel_size = img->kernel_size,
	                              .initrd_size = img->initrd_size};
	if (hmap_get(&im->by_name, img->name))
		return mv_fail(err, 409, "name_conflict", "an image named %s exists; remove it first", img->name);
	img->created_wall_us = clock_wall_us();
	memcpy(row.name, img->name, sizeof row.name);
	memcpy(row.kernel, img->kernel, sizeof row.kernel);
	memcpy(row.initrd, img->initrd, sizeof row.initrd);
	memcpy(row.xen_type, img->xen_type, sizeof row.xen_type);
	if (!img->project[0]) /* as every image was before projects */
		snprintf(img->project, sizeof img->project, "admin");
	memcpy(row.project, img->project, sizeof row.project);
	row.created_us = img->created_wall_us;
	if ((rc = store_image_insert(im->store, &row)) == STORE_TAKEN) /* by another core, a moment ago */
		return mv_fail(err, 409, "name_conflict", "an image named %s was added at the same moment through another "
		               "core; nothing changed", img->name);
	if (rc < 0)
		return mv_fail(err, 500, "store_failed", "the store could not save the image; nothing changed");
	if (!(copy = malloc(sizeof *copy)))
		fatal("malloc");
	*copy = *img;
	img->cmdline = NULL; /* taken */
	hmap_put(&im->by_name, copy->name, copy);
	return 0;
}

static void blob_path(const struct images *im, const char *digest, char *out, size_t len)
{
	if (snprintf(out, len, "%s/%s", im->blob_dir, digest_hex(digest)) >= (int)len)
		fatalx("blob path too long");
}

/* Removes a blob no image refers to any more. */
static void blob_collect(struct images *im, const char *digest)
{
	const char *k;
	void *v;
	char path[4200];
	if (!digest[0])
		return;
	for (size_t i = 0; hmap_next(&im->by_name, &i, &k, &v);) {
		struct image *img = v;
		if (strcmp(img->kernel, digest) == 0 || strcmp(img->initrd, digest) == 0)
			return;
	}
	blob_path(im, digest, path, sizeof path);
	if (unlink(path) < 0 && errno != ENOENT)
		log_warn("cannot remove blob %s", path);
}

int images_remove(struct images *im, const char *name, struct mv_error *err)
{
	struct image *img = hmap_get(&im->by_name, name);
	if (!img)
		return mv_fail(err, 404, "not_found", "no image named %.64s", name);
	if (store_image_delete(im->store, name) < 0)
		return mv_fail(err, 500, "store_failed", "the store could not remove the image; it is kept");
	hmap_remove(&im->by_name, name);
	blob_collect(im, img->kernel);
	blob_collect(im, img->initrd);
	image_free(img);
	return 0;
}

bool images_blob_exists(const struct images *im, const char *digest, int64_t *size)
{
	char path[4200];
	struct stat st;
	blob_path(im, digest, path, sizeof path);
	if (stat(path, &st) < 0)
		return false;
	if (size)
		*size = st.st_size;
	return true;
}

int images_blob_put(struct images *im, const char *digest, const void *data, size_t len, bool *created,
                    struct mv_error *err)
{
	char actual[DIGEST_LEN + 1], path[4200];
	int rc;
	*created = false;
	if (images_blob_exists(im, digest, NULL))
		return 0;
	digest_sha256(data, len, actual);
	if (strcmp(actual, digest) != 0)
		return mv_fail(err, 400, "digest_mismatch", "the body's digest is %s, not %s; nothing was stored", actual,
		               digest);
	blob_path(im, digest, path, sizeof path);
	/* fsync: an image that was acknowledged must survive a power cut, not only a crash */
	if ((rc = fs_write_atomic(path, data, len, true)) < 0)
		return mv_fail(err, 500, "store_failed", "cannot write the blob: %s", strerror(-rc));
	*created = true;
	return 0;
}

int images_blob_open(const struct images *im, const char *digest, int *fd, int64_t *size)
{
	char path[4200];
	struct stat st;
	blob_path(im, digest, path, sizeof path);
	if ((*fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return -errno;
	if (fstat(*fd, &st) < 0) {
		int e = errno;
		close(*fd);
		*fd = -1;
		return -e;
	}
	*size = st.st_size;
	return 0;
}
