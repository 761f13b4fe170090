/* imagecache — image blobs on a node, content-addressed: DATA/images/<sha256 hex>. A blob
 * is fetched from the core on first use, its digest checked, and reused afterwards; with
 * --image-cache off every instance fetches its own copy (the paper's stock behaviour). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "common/fs.h"
#include "node/internal.h"

bool imagecache_lookup(struct node_agent *a, const struct ninst *ni, const char *digest, char *path, size_t len)
{
	struct stat st;
	int n = a->opts.image_cache_off ? snprintf(path, len, "%s/%s", ni->dir, digest_hex(digest))
	                                : snprintf(path, len, "%s/images/%s", a->opts.data_dir, digest_hex(digest));
	if (n >= (int)len)
		return false;
	return stat(path, &st) == 0;
}

int imagecache_store(const char *digest, const void *data, size_t len, const char *path)
{
	char actual[DIGEST_LEN + 1];
	digest_sha256(data, len, actual);
	if (strcmp(actual, digest) != 0)
		return -EBADMSG;
	return fs_write_atomic(path, data, len, false);
}
