/* pools — warm pools (the core's part; the node's is node/warmpool.h): a pool is a named
 * guest spec and a size. Each ready node that offers the pool's driver keeps its share of
 * the size booted to the ready marker and paused; a create that names the pool, or whose
 * guest is the pool's exactly, takes one there instead of booting its own.
 *
 * A pooled guest booted before anyone asked for it, so it cannot have what is chosen per
 * instance at boot: its own kernel command line, or a network interface (the sample
 * machine, microvm, has no hot-plug bus). A create with a cmdline or a network never
 * matches a pool by itself; one that names a pool and has either is refused (422).
 *
 * The registry lives in the store (table pools, schema 8) and in memory here; what each
 * node has ready (its stock) is what the node last said (PUT /v1/nodes/{id}/pools), kept
 * in memory only. No HTTP here (poolapi.c serves it). Errors: 0, or -1 with an mv_error. */
#ifndef MICROVIM_POOLS_H
#define MICROVIM_POOLS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/error.h"
#include "common/model.h"

#define POOL_SIZE_MAX 256 /* guests of one pool, over all nodes */
#define POOLS_MAX 64      /* pools a core keeps */

struct pool {
	char name[MV_NAME_MAX + 1];
	int size;
	struct inst_spec spec; /* stored form, named as the pool: driver, image (boot resolved), config,
	                        * resources, ready */
	int64_t created_wall_us;
};

struct store;
struct images;
struct pools;

/* Loads the pools from the store. NULL with words in err. */
struct pools *pools_open(struct store *store, char *err, size_t errlen);
void pools_close(struct pools *p);
/* Reads the pools again from the store (several cores: another core changed them): on a
 * follower before a create, and when the lead is taken. The version is bumped. -1: the
 * store failed (logged); what was in memory stays. */
int pools_reload(struct pools *p);

const struct pool *pools_get(const struct pools *p, const char *name);
/* In name order. */
void pools_foreach(const struct pools *p, void (*fn)(void *arg, const struct pool *pool), void *arg);
/* A pool whose guests boot image `name`, or NULL (an image a pool boots stays). */
const struct pool *pools_image_user(const struct pools *p, const char *image);

/* POST /v1/pools: {"name", "driver", "image", "size", "resources", "ready": {"serial"},
 * "config"} checked (400 naming the field; 422 unknown_image, driver_cannot_pool; 409
 * name_conflict; 422 too_many_pools) and stored. */
int pools_create(struct pools *p, const json_t *body, const struct images *im, const struct pool **out,
                 struct mv_error *err);
int pools_remove(struct pools *p, const char *name, struct mv_error *err);

/* A create body that names a pool ("pool": NAME) takes what it leaves out (driver, image,
 * resources, ready, config) from the pool: 422 unknown_pool. A body without a string
 * "pool" is left as it is (spec_decode judges it). */
int pools_fill_request(const struct pools *p, json_t *body, struct mv_error *err);
/* A decoded create (SPEC_REQUEST): one that names a pool must be its guest exactly and
 * have no cmdline or network (422 naming what differs); one that does not gets the pool
 * whose guest it is exactly, if any (never with a cmdline or network). */
int pools_resolve(const struct pools *p, struct inst_spec *spec, struct mv_error *err);

/* Bumped by every change of what nodes must keep: a pool made or removed, a node that came
 * or went (the shares change). Nodes say which version they have on their long-poll. */
uint64_t pools_version(const struct pools *p);
void pools_changed(struct pools *p);
/* A node came or went: the shares change only when there are pools (true: bumped). Without
 * any, nothing is bumped, so the nodes' long-polls are not all answered at each node event. */
bool pools_nodes_changed(struct pools *p);
/* Node idx (0-based) of k that offer a pool's driver keeps this many of size. */
int pools_share(int size, int idx, int k);

/* A node's word on its stock, {"pools": {"NAME": {"ready": N, "booting": N}}}: 400 naming
 * what is wrong. */
int pools_stock_check(const json_t *body, struct mv_error *err);
/* A node's stock: {"POOL": {"ready": N, "booting": N}, ...} as it last said; replaces what
 * it said before (borrowed: a reference is taken). NULL: forget the node's. */
void pools_set_stock(struct pools *p, const char *node_id, json_t *stock);
/* What node_id said of pool `name`: its ready and booting guests (0 when it said nothing). */
void pools_stock(const struct pools *p, const char *node_id, const char *name, int *ready, int *booting);
/* fn for each node that last said it has warm guests of pool `name` (placement prefers
 * them): a walk of the nodes that sent a stock, not of all nodes. */
void pools_warm_nodes(const struct pools *p, const char *name, void (*fn)(void *arg, const char *node_id, int ready),
                      void *arg);

#endif
