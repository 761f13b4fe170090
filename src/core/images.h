/* images — the registry of diskless images (the Glance part): blobs stored by content
 * address (sha256) in the core's data dir, image rows in the store. Nodes fetch a blob by
 * digest on first use and keep it in their cache. No HTTP here (imageapi.c serves it). */
#ifndef MICROVIM_IMAGES_H
#define MICROVIM_IMAGES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/digest.h"
#include "common/error.h"
#include "common/model.h"

#define MV_BLOB_MAX (64 << 20) /* bytes per image blob (kernel or initrd) */

/* A registered image: blobs by content address, and a command line. */
struct image {
	char name[MV_NAME_MAX + 1];
	char kernel[DIGEST_LEN + 1];
	char initrd[DIGEST_LEN + 1]; /* "" when none */
	char *cmdline;               /* NULL when none */
	char xen_type[4];            /* "pv" or "pvh": how the xen driver boots it; "" when not said (PVH) */
	char project[MV_NAME_MAX + 1]; /* its owner: instances of this project (or an admin's) boot it */
	int64_t kernel_size, initrd_size;
	int64_t created_wall_us;
};

struct store;
struct images;

/* Creates DATA_DIR/blobs and loads the images from the store. NULL with words in err. */
struct images *images_open(struct store *store, const char *data_dir, char *err, size_t errlen);
void images_close(struct images *im);
/* Loads the image rows again from the store (another core sharing it changed them): 0,
 * or -1 after logging with memory as it was. What images_get returned before does not
 * outlive it. (Blobs are files: cores that share a store share the data dir's blobs.) */
int images_reload(struct images *im);

const struct image *images_get(const struct images *im, const char *name);
/* How many images project owns. */
size_t images_project_count(const struct images *im, const char *project);
void images_foreach(const struct images *im, void (*fn)(void *arg, const struct image *img), void *arg);
/* The boot of an instance of img: its blobs, command line and Xen guest type, resolved now. */
void images_boot_of(const struct image *img, struct inst_boot *out);
/* Adds img (name, blobs and cmdline checked by the caller; the blobs uploaded): 409
 * name_conflict, 500 store_failed. The registry takes img's cmdline. */
int images_add(struct images *im, struct image *img, struct mv_error *err);
/* Removes an image; blobs no image refers to any more go too. The caller checked it is
 * not in use. */
int images_remove(struct images *im, const char *name, struct mv_error *err);

/* ---- blobs ---- */
bool images_blob_exists(const struct images *im, const char *digest, int64_t *size);
/* Checks data against digest (400 digest_mismatch) and stores it durably; *created false
 * when it was there already. */
int images_blob_put(struct images *im, const char *digest, const void *data, size_t len, bool *created,
                    struct mv_error *err);
/* Opens a blob for reading: 0 with *fd and *size, or -errno. */
int images_blob_open(const struct images *im, const char *digest, int *fd, int64_t *size);

#endif
