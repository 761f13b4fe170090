#include "core/sched.h"

#include <string.h>

static bool driver_offered(const struct sched_node *n, const struct sched_request *r, bool *allowed)
{
	*allowed = true;
	if (!(n->drivers & (1u << r->driver)))
		return false;
	if (r->executable) {
		*allowed = false;
		if (n->exec_exact && r->exec_id_known) { /* the common case: one AND */
			*allowed = (n->exec_mask & r->exec_id_bit) != 0;
			return true;
		}
		if (n->exec_bloom && !(n->exec_bloom & r->exec_bit))
			return true; /* surely not on its list */
		/* the loop itself, not exec_allow_contains(): a call here made every pick slower,
		 * even of requests that run no executable (bench/ab: the qemu shape twice as slow) */
		for (size_t i = 0; n->exec_allow && i < n->exec_allow->n && !*allowed; i++)
			*allowed = strcmp(n->exec_allow->paths[i], r->executable) == 0;
	}
	return true;
}

static bool labels_match(const struct sched_node *n, const json_t *selector)
{
	const char *k;
	json_t *want;
	json_object_foreach((json_t *)selector, k, want) {
		const json_t *have = json_object_get(n->labels, k);
		if (!have || !json_equal(have, want))
			return false;
	}
	return true;
}

static bool has_bridge(const struct sched_node *n, const char *bridge)
{
	const json_t *b;
	size_t i;
	json_array_foreach(n->bridges, i, b) {
		if (json_is_string(b) && strcmp(json_string_value(b), bridge) == 0)
			return true;
	}
	return false;
}

static bool fits(const struct sched_node *n, const struct sched_request *r)
{
	return n->vcpus_milli_used + r->vcpus_milli <= n->vcpus_milli_total &&
	       n->memory_mb_used + r->memory_mb <= n->memory_mb_total;
}

/* Share of the node in use after placing r, in parts per million of the scarcer of
 * cpu and memory. Binpack picks the highest, spread the lowest. */
static int64_t load_after(const struct sched_node *n, const struct sched_request *r)
{
	int64_t cpu = n->vcpus_milli_total ? (n->vcpus_milli_used + r->vcpus_milli) * 1000000 / n->vcpus_milli_total : 0;
	int64_t mem = n->memory_mb_total ? (n->memory_mb_used + r->memory_mb) * 1000000 / n->memory_mb_total : 0;
	return cpu > mem ? cpu : mem;
}

/* Whether node c can take req at all (ready, driver, executable, labels, bridge: what
 * placing instances cannot change), raising *why to the most specific reason when not. */
static bool eligible(const struct sched_node *c, const struct sched_request *req, enum sched_miss *why)
{
	bool allowed;
	if (!c->ready)
		return false;
	if (!driver_offered(c, req, &allowed)) {
		*why = *why < SCHED_NO_DRIVER ? SCHED_NO_DRIVER : *why;
		return false;
	}
	if (!allowed) {
		*why = *why < SCHED_NOT_ALLOWED ? SCHED_NOT_ALLOWED : *why;
		return false;
	}
	if (req->labels && !labels_match(c, req->labels)) {
		*why = *why < SCHED_NO_LABELS ? SCHED_NO_LABELS : *why;
		return false;
	}
	if (req->bridge && !has_bridge(c, req->bridge)) {
		*why = *why < SCHED_NO_BRIDGE ? SCHED_NO_BRIDGE : *why;
		return false;
	}
	return true;
}

/* Whether a node with `warm` guests of the pool, `placed` of them taken by this call, has
 * one left: it ranks before every node without. */
static bool has_warm(int warm, int placed) { return warm > placed; }

int sched_pick(const struct sched_node *nodes, int n, const struct sched_request *req,
               enum sched_policy policy, enum sched_miss *miss)
{
	int best = -1;
	int64_t best_load = 0;
	bool best_warm = false;
	enum sched_miss why = SCHED_NO_NODE;

	for (int i = 0; i < n; i++) {
		const struct sched_node *c = &nodes[i];
		int64_t load;
		if (!eligible(c, req, &why))
			continue;
		if (!fits(c, req)) {
			why = SCHED_NO_CAPACITY;
			continue;
		}
		load = load_after(c, req);
		bool warm = req->warm && has_warm(req->warm[i], 0);
		if (best < 0 || warm > best_warm ||
		    (warm == best_warm && (policy == SCHED_BINPACK ? load > best_load : load < best_load))) {
			best = i;
			best_load = load;
			best_warm = warm;
		}
	}
	*miss = best < 0 ? why : SCHED_OK;
	return best;
}

/* ---- many instances of one request: a heap of the nodes that still fit ---- */

/* The node of slot s as it would be with the slot's tentative placements reserved. */
static struct sched_node tentative(const struct sched_node *nodes, const struct sched_slot *s,
                                   const struct sched_request *r)
{
	struct sched_node c = nodes[s->idx];
	c.vcpus_milli_used += (int64_t)s->placed * r->vcpus_milli;
	c.memory_mb_used += (int64_t)s->placed * r->memory_mb;
	return c;
}

/* Whether slot a ranks before slot b: the order of sched_pick (a warm guest left first,
 * then binpack the fullest after placing, spread the emptiest, ties to the lower index). */
static bool ranks_before(const struct sched_slot *a, const struct sched_slot *b, enum sched_policy policy)
{
	bool aw = has_warm(a->warm, a->placed), bw = has_warm(b->warm, b->placed);
	if (aw != bw)
		return aw;
	if (a->load != b->load)
		return policy == SCHED_BINPACK ? a->load > b->load : a->load < b->load;
	return a->idx < b->idx;
}

static void sift_down(struct sched_slot *h, int n, int i, enum sched_policy policy)
{
	for (;;) {
		int l = 2 * i + 1, r = l + 1, top = i;
		struct sched_slot t;
		if (l < n && ranks_before(&h[l], &h[top], policy))
			top = l;
		if (r < n && ranks_before(&h[r], &h[top], policy))
			top = r;
		if (top == i)
			return;
		t = h[i];
		h[i] = h[top];
		h[top] = t;
		i = top;
	}
}

int sched_place(const struct sched_node *nodes, int n, const struct sched_request *req, enum sched_policy policy,
                int count, struct sched_slot *scratch, int *chosen, enum sched_miss *miss)
{
	enum sched_miss why = SCHED_NO_NODE;
	int h = 0, placed = 0;

	for (int i = 0; i < n; i++) {
		if (!eligible(&nodes[i], req, &why))
			continue;
		if (!fits(&nodes[i], req)) {
			why = SCHED_NO_CAPACITY;
			continue;
		}
		scratch[h++] = (struct sched_slot){.idx = i, .load = load_after(&nodes[i], req),
		                                   .warm = req->warm ? req->warm[i] : 0};
	}
	for (int i = h / 2 - 1; i >= 0; i--)
		sift_down(scratch, h, i, policy);
	/* The top is sched_pick's choice for the next instance. Its placement changes only its
	 * own rank: it goes down in the heap, or out once the next one no longer fits there
	 * (within one request nothing frees room, so it never fits again). */
	while (placed < count && h > 0) {
		struct sched_node c;
		chosen[placed++] = scratch[0].idx;
		scratch[0].placed++;
		c = tentative(nodes, &scratch[0], req);
		if (fits(&c, req))
			scratch[0].load = load_after(&c, req);
		else
			scratch[0] = scratch[--h];
		sift_down(scratch, h, 0, policy);
	}
	/* what stopped it: every eligible node is full */
	*miss = placed == count ? SCHED_OK : placed > 0 ? SCHED_NO_CAPACITY : why;
	return placed;
}

const char *sched_miss_message(enum sched_miss miss)
{
	switch (miss) {
	case SCHED_OK: return "placed";
	case SCHED_NO_NODE: return "no node is ready (start `microvim node --core URL`)";
	case SCHED_NO_DRIVER: return "no ready node offers this driver";
	case SCHED_NOT_ALLOWED: return "no ready node allows this executable (see the node's --exec-allow)";
	case SCHED_NO_LABELS: return "no ready node has all the requested labels";
	case SCHED_NO_BRIDGE: return "no ready node has the requested bridge (create it on a node's host, or start a node with --bridge NAME)";
	case SCHED_NO_CAPACITY: return "no ready node has room for the requested vcpus and memory_mb";
	}
	return "?";
}

uint64_t sched_exec_bit(const char *path)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */
	while (path && *path)
		h = (h ^ (unsigned char)*path++) * 1099511628211ULL;
	/* FNV's top bits barely depend on the last characters ("/usr/bin/vnf1", "vnf2"):
	 * mix before taking 6 bits (murmur3's finaliser) */
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	return 1ULL << (h & 63);
}

uint64_t sched_exec_bloom(const struct exec_allow *allow)
{
	uint64_t bloom = 0;
	for (size_t i = 0; allow && i < allow->n; i++)
		bloom |= sched_exec_bit(allow->paths[i]);
	return bloom;
}

int sched_policy_parse(const char *s)
{
	if (strcmp(s, "binpack") == 0)
		return SCHED_BINPACK;
	if (strcmp(s, "spread") == 0)
		return SCHED_SPREAD;
	return -1;
}
