/* sched — choose a node for an instance: filter (ready, driver offered, executable
 * allowed, labels match, resources fit), then rank (binpack: the fullest node that fits,
 * so small functions pack onto few hosts; spread: the emptiest). Pure logic over an array
 * of candidate views: no I/O, no allocation (the caller gives scratch space), unit-tested.
 * A request that names a warm pool ranks the nodes holding a warm guest of it before all
 * others (a take there is a resume, elsewhere a cold boot); among those, and among the
 * rest, the policy's order. */
#ifndef MICROVIM_SCHED_H
#define MICROVIM_SCHED_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/model.h"

enum sched_policy { SCHED_BINPACK, SCHED_SPREAD };

struct sched_node {
	bool ready;
	unsigned drivers;         /* bit driver_index(name) set for each driver offered */
	const struct exec_allow *exec_allow; /* the executables its instances may run; NULL: none */
	uint64_t exec_bloom;      /* OR of sched_exec_bit() of each allowed path; 0 = not computed */
	uint64_t exec_mask;       /* with exec_exact: one bit per allowed path, ids given by the core */
	bool exec_exact;          /* every allowed path has an id: exec_mask is the whole list */
	const json_t *labels;  /* {"k": "v"} */
	const json_t *bridges; /* ["br0", ...]: bridges instances can attach to */
	int64_t vcpus_milli_total, memory_mb_total; /* capacity (cpus x ratio) */
	int64_t vcpus_milli_used, memory_mb_used;
};

struct sched_request {
	int driver;             /* driver_index() */
	const char *executable; /* exec only, else NULL */
	uint64_t exec_bit;      /* sched_exec_bit(executable) */
	bool exec_id_known;     /* exec_id_bit is the executable's id bit (0: no exact node allows it) */
	uint64_t exec_id_bit;
	const json_t *labels;   /* selector or NULL */
	const char *bridge;     /* network.bridge or NULL */
	int64_t vcpus_milli, memory_mb;
	const char *pool;       /* the warm pool it takes from, or NULL */
	const int *warm;        /* per node view: its warm guests of `pool` (NULL: no preference) */
};

/* Why nothing was chosen: the most specific reason among all nodes. */
enum sched_miss { SCHED_OK, SCHED_NO_NODE, SCHED_NO_DRIVER, SCHED_NOT_ALLOWED, SCHED_NO_LABELS, SCHED_NO_BRIDGE,
                  SCHED_NO_CAPACITY };

/* Index of the chosen node, or -1 with *miss set. */
int sched_pick(const struct sched_node *nodes, int n, const struct sched_request *req,
               enum sched_policy policy, enum sched_miss *miss);
/* Places `count` instances of one request, each where sched_pick() would put it had the
 * ones before it been reserved (the same choices, ties included): chosen[i] is the index of
 * the i-th one's node. Returns how many fit (count, or fewer with *miss saying why the next
 * one did not). One scan and a heap of the eligible nodes: O(n + count log n) where count
 * picks cost count x n. The views are not changed; scratch holds n slots. */
struct sched_slot {
	int64_t load; /* its rank: the share in use after one more instance */
	int idx;      /* index in the views */
	int placed;   /* instances of this call put there so far */
	int warm;     /* its warm guests of the request's pool: the first `warm` placed there are takes */
};
int sched_place(const struct sched_node *nodes, int n, const struct sched_request *req, enum sched_policy policy,
                int count, struct sched_slot *scratch, int *chosen, enum sched_miss *miss);
const char *sched_miss_message(enum sched_miss miss);
int sched_policy_parse(const char *s); /* enum value or -1 */
/* One bit of 64 for an executable path: a node's bloom of its allow list lets the filter
 * skip the string comparisons on every node that surely does not allow it. */
uint64_t sched_exec_bit(const char *path);
uint64_t sched_exec_bloom(const struct exec_allow *allow);

#endif
