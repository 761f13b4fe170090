/* sched_bench — how long sched_pick() takes over 100 .. 100,000 node views (the target:
 * "Scheduling one instance among 10,000 nodes: p99 <= 100 us"). Built and run by bench/sched.
 *
 * Each node is a real `struct node` of the core (core/cluster.h) with JSON built the way
 * node registration builds it (and the allow list read from it into its struct exec_allow): drivers {"exec": {"version", "allow": [...]}, ...}, labels
 * {"zone", "rack", "tier", "nic", ...}, bridges [...], capacity cpus x 16 and random use. Every
 * node is malloc'd on its own with its JSON interleaved, as registrations arrive one by one.
 *
 * For each size and each request shape and policy, it times `--calls` sched_pick() calls,
 * clock_gettime(CLOCK_MONOTONIC) before and after each, and prints p50 / p99 / max in us.
 * Beside it, in the same run:
 *   floor     a plain loop over the same view array doing one comparison per node (the
 *             memory-bandwidth floor of any scan of that array)
 *   timer     two clock_gettime calls and nothing between (the cost of the measurement)
 *   refresh   the loop that fills the views from the nodes: a copy of sched_view_refresh()
 *             in src/core/api.c (static there, so replicated here, field for field)
 *   create    the core's scheduling work for one POST of count 1: check_placeable()
 *             (refresh + sched_request_of + pick) and then schedule_instances() (refresh +
 *             sched_request_of + pick + the used += bookkeeping), replicated from api.c
 *
 * usage: sched_bench [--nodes 100,1000,10000,100000] [--calls N] [--seed S]
 *                    [--shape NAME] [--policy binpack|spread] [--raw DIR]
 * --calls is the number of timed calls for sizes up to 1,000; above, it is scaled down so
 * that calls x nodes <= calls x 1,000 (10,000 calls at 10,000 nodes, 1,000 at 100,000 by
 * default: a call over 10,000 nodes takes about a millisecond here, and 100,000 of them for
 * each of the 16 rows of a size would take half an hour). Each row also gives the thread's
 * CPU time over the timed loop divided by the calls: a mean free of preemption by other
 * processes, which the wall-clock percentiles include. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/model.h"
#include "core/cluster.h"
#include "core/sched.h"
#include "drivers/drivers.h"

static uint64_t rng_state = 88172645463325252ull;
static uint64_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}
static int rndi(int n) { return (int)(rnd() % (uint64_t)n); }
static double rndf(void) { return (double)(rnd() >> 11) / (double)(1ull << 53); }

static inline int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static const char *const exec_pool[] = {
	"/bin/sleep", "/usr/bin/true", "/opt/vnf/fw", "/opt/vnf/nat", "/opt/vnf/lb", "/opt/vnf/dpi",
	"/opt/vnf/ids", "/opt/vnf/proxy", "/usr/local/bin/click", "/usr/sbin/bird", "/opt/vnf/shaper",
	"/opt/vnf/vpn-gw",
};
#define EXEC_POOL_N (int)(sizeof exec_pool / sizeof *exec_pool)
#define RARE_EXEC "/opt/vnf/rare-5g-upf" /* allowed on 1% of the nodes */

/* ---- the cluster ---- */

static struct node *node_make(int i)
{
	struct node *n = calloc(1, sizeof *n);
	json_t *allow, *labels, *bridges;
	static const int cpus_pool[] = {2, 4, 8, 16, 32, 64};
	char buf[64];
	if (!n)
		abort();
	snprintf(n->id, sizeof n->id, "node-%06d", i);
	snprintf(n->name, sizeof n->name, "host-%06d", i);
	n->ready = rndf() < 0.99;
	n->drivers = json_object();
	/* drivers: exec on 90%, qemu on 60%, libvirt on 30%, xen on 10% */
	if (rndf() < 0.90) {
		int k = 1 + rndi(8);
		allow = json_array();
		if (rndf() < 0.95) /* /bin/sleep is on most allow lists, the rest have their own */
			json_array_append_new(allow, json_string("/bin/sleep"));
		for (int j = 0; j < k; j++)
			json_array_append_new(allow, json_string(exec_pool[1 + rndi(EXEC_POOL_N - 1)]));
		if (i % 100 == 37) /* 1% of the nodes, spread over the array */
			json_array_append_new(allow, json_string(RARE_EXEC));
		json_object_set_new(n->drivers, "exec", json_pack("{s:s, s:o}", "version", "1", "allow", allow));
		n->driver_mask |= 1u << driver_index("exec");
	}
	if (rndf() < 0.60) {
		json_object_set_new(n->drivers, "qemu", json_pack("{s:s, s:b}", "version", "8.2.2", "kvm", 1));
		n->driver_mask |= 1u << driver_index("qemu");
	}
	if (rndf() < 0.30) {
		json_object_set_new(n->drivers, "libvirt", json_pack("{s:s}", "version", "10.0.0"));
		n->driver_mask |= 1u << driver_index("libvirt");
	}
	if (rndf() < 0.10) {
		json_object_set_new(n->drivers, "xen", json_pack("{s:s}", "version", "4.17"));
		n->driver_mask |= 1u << driver_index("xen");
	}
	labels = json_object();
	snprintf(buf, sizeof buf, "z%d", rndi(10));
	json_object_set_new(labels, "zone", json_string(buf));
	snprintf(buf, sizeof buf, "r%03d", rndi(200));
	json_object_set_new(labels, "rack", json_string(buf));
	json_object_set_new(labels, "tier", json_string(rndf() < 0.5 ? "edge" : "core"));
	json_object_set_new(labels, "nic", json_string(rndf() < 0.3 ? "sriov" : "virtio"));
	if (rndf() < 0.5)
		json_object_set_new(labels, "gpu", json_string(rndf() < 0.5 ? "none" : "t4"));
	if (rndf() < 0.3) {
		snprintf(buf, sizeof buf, "tenant-%d", rndi(50));
		json_object_set_new(labels, "owner", json_string(buf));
	}
	/* as the cluster does at registration: the allow list read once into its struct */
	if (exec_allow_from_json(&n->exec_allow, json_object_get(json_object_get(n->drivers, "exec"), "allow")) < 0)
		abort();
	n->exec_bloom = sched_exec_bloom(&n->exec_allow);
	n->labels = labels;
	bridges = json_array();
	json_array_append_new(bridges, json_string("br0"));
	if (rndf() < 0.3)
		json_array_append_new(bridges, json_string("br-data"));
	if (rndf() < 0.1)
		json_array_append_new(bridges, json_string("br-mgmt"));
	n->bridges = bridges;
	n->cpus = cpus_pool[rndi(6)];
	n->memory_mb = (int64_t)n->cpus * 4096;
	n->vcpus_milli_total = (int64_t)n->cpus * 16 * 1000;
	n->memory_mb_total = n->memory_mb;
	n->vcpus_milli_used = (int64_t)(rndf() * 0.9 * (double)n->vcpus_milli_total);
	n->memory_mb_used = (int64_t)(rndf() * 0.9 * (double)n->memory_mb_total);
	TAILQ_INIT(&n->queue);
	/* what else a core allocates per registration, between the nodes' JSON */
	free(malloc(64 + (size_t)rndi(512)));
	return n;
}

static void bench_node_free(struct node *n)
{
	exec_allow_free(&n->exec_allow);
	json_decref(n->drivers);
	json_decref(n->labels);
	json_decref(n->bridges);
	free(n);
}

/* Replica of node_view_sync() in src/core/cluster.c, for every node (the core syncs one node
 * where it changes; the refresh of all is the bound). */
static void view_refresh(struct node **nodes, int n_nodes, struct sched_node *view)
{
	for (int i = 0; i < n_nodes; i++) {
		struct node *n = nodes[i];
		view[i] = (struct sched_node){
			.ready = n->ready, .drivers = n->driver_mask,
			.exec_allow = &n->exec_allow, .exec_bloom = n->exec_bloom,
			.labels = n->labels, .bridges = n->bridges, .vcpus_milli_total = n->vcpus_milli_total,
			.memory_mb_total = n->memory_mb_total, .vcpus_milli_used = n->vcpus_milli_used,
			.memory_mb_used = n->memory_mb_used};
	}
}

/* Replica of sched_request_of() in src/core/cluster.c: the spec was parsed once when the
 * request came (drv_spec_parse, below in main); a schedule only reads its typed fields. */
static struct sched_request request_of(const struct inst_spec *spec)
{
	return (struct sched_request){
		.driver = driver_index(spec->driver),
		.executable = spec->executable,
		.exec_bit = sched_exec_bit(spec->executable),
		.labels = spec->labels,
		.bridge = spec->bridge[0] ? spec->bridge : NULL,
		.vcpus_milli = spec->vcpus_milli,
		.memory_mb = spec->memory_mb,
	};
}

/* A shape's canonical spec, parsed as the core parses a create body. */
static int spec_of(const char *text, struct inst_spec *spec)
{
	struct mv_error err;
	json_error_t jerr;
	json_t *j = json_loads(text, 0, &jerr);
	int rc;
	if (!j) {
		fprintf(stderr, "bad spec %s: %s\n", text, jerr.text);
		return -1;
	}
	json_object_set_new(j, "name", json_string("bench"));
	rc = drv_spec_parse(spec, j, SPEC_REQUEST, &err);
	if (rc < 0)
		fprintf(stderr, "spec %s refused: %s\n", text, err.message);
	json_decref(j);
	return rc;
}

/* ---- statistics ---- */

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

/* nearest rank */
static double pct_us(const int64_t *sorted, int n, double p)
{
	int k = (int)(p / 100.0 * n + 0.999999) - 1;
	if (k < 0)
		k = 0;
	if (k >= n)
		k = n - 1;
	return (double)sorted[k] / 1000.0;
}

static const char *raw_dir;
static double cpu_mean_us; /* thread CPU time of the last timed loop / its calls, or < 0 */

static inline int64_t cpu_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void report(int nodes, const char *what, const char *policy, const char *result, int64_t *s, int n)
{
	qsort(s, (size_t)n, sizeof *s, cmp_i64);
	double sum = 0;
	for (int i = 0; i < n; i++)
		sum += (double)s[i];
	printf("| %d | %s | %s | %d | %.3f | %.3f | %.3f | %.3f | %.3f | %s |\n", nodes, what, policy, n,
	       pct_us(s, n, 50), pct_us(s, n, 99), (double)s[n - 1] / 1000.0, sum / n / 1000.0, cpu_mean_us, result);
	fflush(stdout);
	if (raw_dir) {
		char path[512];
		FILE *f;
		snprintf(path, sizeof path, "%s/sched-%d-%s-%s.txt", raw_dir, nodes, what, policy);
		if ((f = fopen(path, "w"))) {
			for (int i = 0; i < n; i++)
				fprintf(f, "%lld\n", (long long)s[i]);
			fclose(f);
		}
	}
}

/* ---- shapes ---- */

struct shape {
	const char *name;
	const char *spec; /* a canonical spec, as the core keeps it */
	bool full;        /* against the nearly-full cluster */
};

static const struct shape shapes[] = {
	{"plain", "{\"driver\":\"exec\",\"config\":{\"command\":\"/bin/sleep\",\"args\":[\"60\"]},"
	          "\"resources\":{\"vcpus\":0.1,\"memory_mb\":16}}", false},
	{"labels", "{\"driver\":\"exec\",\"config\":{\"command\":\"/bin/sleep\",\"args\":[\"60\"]},"
	           "\"resources\":{\"vcpus\":0.1,\"memory_mb\":16},"
	           "\"labels\":{\"zone\":\"z3\",\"tier\":\"edge\",\"nic\":\"sriov\"}}", false},
	{"rare-exec", "{\"driver\":\"exec\",\"config\":{\"command\":\"" RARE_EXEC "\"},"
	              "\"resources\":{\"vcpus\":0.1,\"memory_mb\":16}}", false},
	{"bridge", "{\"driver\":\"exec\",\"config\":{\"command\":\"/bin/sleep\",\"args\":[\"60\"]},"
	           "\"resources\":{\"vcpus\":0.1,\"memory_mb\":16},\"network\":{\"bridge\":\"br-data\"}}", false},
	{"qemu", "{\"driver\":\"qemu\",\"image\":\"clickos\",\"resources\":{\"vcpus\":1,\"memory_mb\":64}}", false},
	{"nearly-full", "{\"driver\":\"exec\",\"config\":{\"command\":\"/bin/sleep\",\"args\":[\"60\"]},"
	                "\"resources\":{\"vcpus\":0.5,\"memory_mb\":256}}", true},
};
#define N_SHAPES (int)(sizeof shapes / sizeof *shapes)

static volatile int64_t sink;
static int64_t cpu0_;
#define CPU_START() (cpu0_ = cpu_ns())
#define CPU_END(n) (cpu_mean_us = (double)(cpu_ns() - cpu0_) / 1000.0 / (double)(n))

/* ---- what if: copies of sched_pick() with one change each, to show where the time goes
 * (not the core's code; the rows are labelled "what-if") ---- */

static const char *intern_pool[EXEC_POOL_N + 1];
static uint64_t exec_bit(const char *path)
{
	for (int i = 0; i < EXEC_POOL_N + 1; i++)
		if (intern_pool[i] && strcmp(intern_pool[i], path) == 0)
			return 1ull << i;
	return 0;
}

/* allowed_bits == NULL: sched.c's loop over exec_allow with a break at the first match;
 * else the allow list interned into a bitmask per node (as registration could do once) */
static int pick_whatif(const struct sched_node *nodes, int n, const struct sched_request *r,
                       enum sched_policy policy, const uint64_t *allowed_bits, uint64_t want_bit)
{
	int best = -1;
	int64_t best_load = 0;
	for (int i = 0; i < n; i++) {
		const struct sched_node *c = &nodes[i];
		int64_t load, cpu, mem;
		if (!c->ready || !(c->drivers & (1u << r->driver)))
			continue;
		if (r->executable) {
			bool allowed = false;
			if (allowed_bits) {
				allowed = (allowed_bits[i] & want_bit) != 0;
			} else {
				for (size_t j = 0; c->exec_allow && j < c->exec_allow->n; j++) {
					if (strcmp(c->exec_allow->paths[j], r->executable) == 0) {
						allowed = true;
						break;
					}
				}
			}
			if (!allowed)
				continue;
		}
		/* labels and bridges: not in the shapes these rows run */
		if (!(c->vcpus_milli_used + r->vcpus_milli <= c->vcpus_milli_total &&
		      c->memory_mb_used + r->memory_mb <= c->memory_mb_total))
			continue;
		cpu = c->vcpus_milli_total ? (c->vcpus_milli_used + r->vcpus_milli) * 1000000 / c->vcpus_milli_total : 0;
		mem = c->memory_mb_total ? (c->memory_mb_used + r->memory_mb) * 1000000 / c->memory_mb_total : 0;
		load = cpu > mem ? cpu : mem;
		if (best < 0 || (policy == SCHED_BINPACK ? load > best_load : load < best_load)) {
			best = i;
			best_load = load;
		}
	}
	return best;
}

int main(int argc, char **argv)
{
	int sizes[8] = {100, 1000, 10000, 100000}, n_sizes = 4;
	long calls = 100000;
	const char *only_shape = NULL, *only_policy = NULL;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--nodes") == 0 && i + 1 < argc) {
			char *s = argv[++i], *tok;
			n_sizes = 0;
			for (tok = strtok(s, ","); tok && n_sizes < 8; tok = strtok(NULL, ","))
				sizes[n_sizes++] = atoi(tok);
		} else if (strcmp(argv[i], "--calls") == 0 && i + 1 < argc) {
			calls = atol(argv[++i]);
		} else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc) {
			rng_state = strtoull(argv[++i], NULL, 0) | 1;
		} else if (strcmp(argv[i], "--shape") == 0 && i + 1 < argc) {
			only_shape = argv[++i];
		} else if (strcmp(argv[i], "--policy") == 0 && i + 1 < argc) {
			only_policy = argv[++i];
		} else if (strcmp(argv[i], "--raw") == 0 && i + 1 < argc) {
			raw_dir = argv[++i];
		} else {
			fprintf(stderr, "usage: sched_bench [--nodes 100,1000,10000,100000] [--calls N] [--seed S] "
			                "[--shape NAME] [--policy binpack|spread] [--raw DIR]\n");
			return 2;
		}
	}

	for (int i = 0; i < EXEC_POOL_N; i++)
		intern_pool[i] = exec_pool[i];
	intern_pool[EXEC_POOL_N] = RARE_EXEC;
	printf("| nodes | measurement | policy | calls | p50 us | p99 us | max us | mean us | CPU us/call | result |\n");
	printf("|---:|---|---|---:|---:|---:|---:|---:|---:|---|\n");
	for (int si = 0; si < n_sizes; si++) {
		int nn = sizes[si];
		long nc = calls;
		if ((long long)nc * nn > (long long)calls * 1000)
			nc = (long)((long long)calls * 1000 / nn);
		if (nc < 100)
			nc = 100;
		struct node **nodes = malloc(sizeof *nodes * (size_t)nn);
		struct sched_node *view = malloc(sizeof *view * (size_t)nn);
		struct sched_node *full = malloc(sizeof *full * (size_t)nn);
		int64_t *s = malloc(sizeof *s * (size_t)nc);
		if (!nodes || !view || !full || !s)
			abort();
		for (int i = 0; i < nn; i++)
			nodes[i] = node_make(i);
		view_refresh(nodes, nn, view);
		/* the nearly-full cluster: every node within a hair of its capacity, 1% with room */
		memcpy(full, view, sizeof *full * (size_t)nn);
		for (int i = 0; i < nn; i++) {
			bool room = i % 100 == 61;
			full[i].vcpus_milli_used = full[i].vcpus_milli_total - (room ? 1000 : rndi(400));
			full[i].memory_mb_used = full[i].memory_mb_total - (room ? 1024 : rndi(200));
		}

		/* timer: the cost of measuring */
		CPU_START();
		for (long k = 0; k < nc; k++) {
			int64_t t0 = now_ns();
			s[k] = now_ns() - t0;
		}
		CPU_END(nc);
		report(nn, "timer (clock_gettime x2, nothing between)", "-", "-", s, (int)nc);

		/* floor: one comparison per node over the same array */
		{
			const int64_t want = 100;
			CPU_START();
			for (long k = 0; k < nc + 100; k++) {
				int64_t t0 = now_ns();
				int cnt = 0;
				for (int i = 0; i < nn; i++)
					cnt += view[i].vcpus_milli_used + want <= view[i].vcpus_milli_total;
				sink = cnt;
				if (k >= 100)
					s[k - 100] = now_ns() - t0;
			}
			CPU_END(nc + 100);
			report(nn, "floor: loop with one comparison per view", "-", "-", s, (int)nc);
		}

		for (int pi = 0; pi < 2; pi++) {
			enum sched_policy pol = pi == 0 ? SCHED_BINPACK : SCHED_SPREAD;
			const char *pname = pi == 0 ? "binpack" : "spread";
			if (only_policy && strcmp(only_policy, pname) != 0)
				continue;
			for (int sh = 0; sh < N_SHAPES; sh++) {
				struct inst_spec spec_parsed, *spec = &spec_parsed;
				struct sched_request r;
				const struct sched_node *arr;
				enum sched_miss miss = SCHED_OK;
				int pick = -1;
				char result[96];
				if (only_shape && strcmp(only_shape, shapes[sh].name) != 0)
					continue;
				if (spec_of(shapes[sh].spec, spec) < 0)
					return 1;
				r = request_of(spec);
				arr = shapes[sh].full ? full : view;
				for (long k = 0; k < 100; k++)
					sink = sched_pick(arr, nn, &r, pol, &miss);
				CPU_START();
				for (long k = 0; k < nc; k++) {
					int64_t t0 = now_ns();
					pick = sched_pick(arr, nn, &r, pol, &miss);
					s[k] = now_ns() - t0;
				}
				CPU_END(nc);
				{
					int eligible = 0;
					for (int i = 0; i < nn; i++) {
						enum sched_miss m2;
						eligible += sched_pick(arr + i, 1, &r, pol, &m2) == 0;
					}
					snprintf(result, sizeof result, "%s (%d of %d nodes fit)",
					         pick >= 0 ? "placed" : sched_miss_message(miss), eligible, nn);
					if (pick < 0)
						snprintf(result, sizeof result, "none: %.40s… (0 of %d)", sched_miss_message(miss), nn);
				}
				{
					char what[64];
					snprintf(what, sizeof what, "sched_pick: %s", shapes[sh].name);
					report(nn, what, pname, result, s, (int)nc);
				}
				if (pi == 0 && (strcmp(shapes[sh].name, "plain") == 0 || strcmp(shapes[sh].name, "rare-exec") == 0)) {
					uint64_t *bits = malloc(sizeof *bits * (size_t)nn);
					uint64_t want = exec_bit(r.executable);
					int p2 = -1;
					if (!bits)
						abort();
					for (int i = 0; i < nn; i++) {
						bits[i] = 0;
						for (size_t j = 0; arr[i].exec_allow && j < arr[i].exec_allow->n; j++)
							bits[i] |= exec_bit(arr[i].exec_allow->paths[j]);
					}
					for (int variant = 0; variant < 2; variant++) {
						char what[96];
						CPU_START();
						for (long k = 0; k < nc; k++) {
							int64_t t0 = now_ns();
							p2 = pick_whatif(arr, nn, &r, pol, variant ? bits : NULL, want);
							s[k] = now_ns() - t0;
						}
						CPU_END(nc);
						snprintf(what, sizeof what, "what-if: %s, %s", shapes[sh].name,
						         variant ? "allow list as a per-node bitmask" : "sched_pick + break at first match");
						report(nn, what, pname, p2 == pick ? "same node" : "DIFFERENT node", s, (int)nc);
					}
					free(bits);
				}

				/* the core's per-create scheduling work (count 1), replicated from cluster.c:
				 * check_placeable(), then schedule() */
				if (strcmp(shapes[sh].name, "plain") == 0 && !only_shape) {
					int k2 = -1;
					CPU_START();
					for (long k = 0; k < nc; k++) {
						int64_t t0 = now_ns();
						struct sched_request rq = request_of(spec);
						view_refresh(nodes, nn, view);
						k2 = sched_pick(view, nn, &rq, pol, &miss);
						if (k2 >= 0) {
							view[k2].vcpus_milli_used += rq.vcpus_milli;
							view[k2].memory_mb_used += rq.memory_mb;
						}
						view_refresh(nodes, nn, view);
						rq = request_of(spec);
						k2 = sched_pick(view, nn, &rq, pol, &miss);
						if (k2 >= 0) {
							view[k2].vcpus_milli_used += rq.vcpus_milli;
							view[k2].memory_mb_used += rq.memory_mb;
						}
						s[k] = now_ns() - t0;
						sink = k2;
					}
					CPU_END(nc);
					report(nn, "core per create: 2 x (refresh + request + pick)", pname, "-", s, (int)nc);
					CPU_START();
					for (long k = 0; k < nc; k++) {
						int64_t t0 = now_ns();
						view_refresh(nodes, nn, view);
						s[k] = now_ns() - t0;
					}
					CPU_END(nc);
					report(nn, "refresh alone (sched_view_refresh replica)", pname, "-", s, (int)nc);
				}
				spec_free(spec);
			}
		}
		for (int i = 0; i < nn; i++)
			bench_node_free(nodes[i]);
		free(nodes);
		free(view);
		free(full);
		free(s);
	}
	return 0;
}
