/* imagecache — image blobs on a node, content-addressed: DATA/images/<sha256 hex>. A blob
 * is fetched from the core on first use, its digest checked, and reused afterwards; with
 * --image-cache off every instance fetches its own copy into its dir (the paper's stock
 * behaviour). Fetches are HTTP on the loop; checking and writing on a worker. */
#ifndef MICROVIM_IMAGECACHE_H
#define MICROVIM_IMAGECACHE_H

#include <event2/event.h>
#include <stdbool.h>
#include <stddef.h>

#include "common/tls.h"
#include "node/corelink.h"
#include "node/worker.h"

struct imagecache;

struct imagecache_options {
	struct event_base *base;
	struct worker_pool *workers;
	const char *data_dir; /* the cache is DATA_DIR/images */
	bool off;             /* --image-cache off */
	struct corelink *link; /* the core in use (the agent moves it; blobs follow) */
	struct tls_ctx *tls;  /* an https:// core; NULL: plain HTTP */
	const char *token;    /* the node's credential or the cluster token (node/agent.h), read at each fetch */
};

/* Creates DATA_DIR/images. NULL with words in err. */
struct imagecache *imagecache_new(const struct imagecache_options *o, char *err, size_t errlen);
void imagecache_free(struct imagecache *ic);
/* Where digest lives for an instance whose dir is inst_dir; true when it is there already. */
bool imagecache_lookup(const struct imagecache *ic, const char *inst_dir, const char *digest, char *path,
                       size_t len);
/* Fetches digest from the core, checks it and stores it at path; done(arg, rc, why) on the
 * loop: rc 0 (why NULL), or -errno with a sentence naming the blob and what went wrong. */
typedef void imagecache_done_fn(void *arg, int rc, const char *why);
void imagecache_fetch(struct imagecache *ic, const char *digest, const char *path, imagecache_done_fn *done,
                      void *arg);

#endif
