/* test_sched — sched_pick: filters and the reason reported when nothing fits, binpack and
 * spread ranking, fractional vCPU accounting, boundaries. Pure logic: no timing here. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "common/model.h"
#include "core/sched.h"
#include "drivers/drivers.h"
#include "unit.h"

static struct exec_allow allow_sleep; /* /bin/sleep */
static json_t *labels_r1;    /* {"rack": "r1", "zone": "a"} */
static json_t *labels_r2;    /* {"rack": "r2", "zone": "a"} */

static unsigned bit(const char *driver) { return 1u << driver_index(driver); }

/* A ready exec+qemu node allowing /bin/sleep, rack r1, 1 vCPU (1000 milli) and 1024 MiB free. */
static struct sched_node node_ok(void)
{
	return (struct sched_node){
		.ready = true,
		.drivers = bit("exec") | bit("qemu"),
		.exec_allow = &allow_sleep,
		.labels = labels_r1,
		.vcpus_milli_total = 1000,
		.memory_mb_total = 1024,
	};
}

static struct sched_request req_exec(int64_t milli, int64_t mb)
{
	return (struct sched_request){
		.driver = driver_index("exec"),
		.executable = "/bin/sleep",
		.labels = NULL,
		.vcpus_milli = milli,
		.memory_mb = mb,
	};
}

static void test_zero_nodes(void)
{
	struct sched_request r = req_exec(100, 16);
	enum sched_miss miss = SCHED_OK;
	CHECK_EQ_INT(sched_pick(NULL, 0, &r, SCHED_BINPACK, &miss), -1);
	CHECK_EQ_INT(miss, SCHED_NO_NODE);
	miss = SCHED_OK;
	CHECK_EQ_INT(sched_pick(NULL, 0, &r, SCHED_SPREAD, &miss), -1);
	CHECK_EQ_INT(miss, SCHED_NO_NODE);
}

static void test_single_node_ok(void)
{
	struct sched_node n = node_ok();
	struct sched_request r = req_exec(100, 16);
	enum sched_miss miss = SCHED_NO_NODE;
	CHECK_EQ_INT(sched_pick(&n, 1, &r, SCHED_BINPACK, &miss), 0);
	CHECK_EQ_INT(miss, SCHED_OK);
	miss = SCHED_NO_NODE;
	CHECK_EQ_INT(sched_pick(&n, 1, &r, SCHED_SPREAD, &miss), 0);
	CHECK_EQ_INT(miss, SCHED_OK);
}

static void test_not_ready(void)
{
	struct sched_node n[2] = {node_ok(), node_ok()};
	struct sched_request r = req_exec(100, 16);
	enum sched_miss miss;
	n[0].ready = n[1].ready = false;
	CHECK_EQ_INT(sched_pick(n, 2, &r, SCHED_BINPACK, &miss), -1);
	/* A node that is not ready is no candidate at all: no more specific reason. */
	CHECK_EQ_INT(miss, SCHED_NO_NODE);

	/* The only ready node is picked even though the other one would be fuller. */
	n[1].ready = true;
	n[0].vcpus_milli_used = 800;
	CHECK_EQ_INT(sched_pick(n, 2, &r, SCHED_BINPACK, &miss), 1);
	CHECK_EQ_INT(miss, SCHED_OK);
}

static void test_no_driver(void)
{
	struct sched_node n = node_ok();
	struct sched_request r = req_exec(100, 16);
	enum sched_miss miss;
	n.drivers = bit("qemu");
	CHECK_EQ_INT(sched_pick(&n, 1, &r, SCHED_BINPACK, &miss), -1);
	CHECK_EQ_INT(miss, SCHED_NO_DRIVER);

	n.drivers = 0;
	CHECK_EQ_INT(sched_pick(&n, 1, &r, SCHED_SPREAD, &miss), -1);
	CHECK_EQ_INT(miss, SCHED_NO_DRIVER);

	/* A VM driver the node offers, with no executable to check. */
	n.drivers = bit("xen");
	r.driver = driver_index("xen");
	r.executable = NULL;
	n.exec_allow = NULL;
	CHECK_EQ_INT(sched_pick(&n, 1, &r, SCHED_BINPACK, &miss), 0);
	CHECK_EQ_INT(miss, SCHED_OK);
	r.driver = driver_index("libvirt");
	CHECK_EQ_INT(sched_pick(&n, 1, &r, SCHED_BINPACK, &miss), -1);
	CHECK_EQ_INT(miss, SCHED_NO_DRIVER);
}

static void test_not_allowed(void)
{
	struct sched_node n = node_ok();
	struct sched_request r = req_exec(100, 16);
	struct exec_allow allow_many, allow_prefix, empty = {0};
	enum sched_miss miss;
	char err[128];
	CHECK_EQ_INT(exec_allow_parse(&allow_many, "/usr/bin/true,/bin/sleep", err, sizeof err), 0);
	CHECK_EQ_INT(exec_allow_parse(&allow_prefix, "/bin/slee,/bin/sleep2", err, sizeof err), 0);

	r.executable = "/bin/true";
	CHECK_EQ_INT(sched_pick(&n, 1, &r, SCHED_BINPACK, &miss), -1);
	CHECK_EQ_INT(miss, SCHED_NOT_ALLOWED);

	/* No allow list at all: nothing may run. */
	n.exec_allow = NULL;
	r.executable = "/bin/sleep";
	CHECK_EQ_INT(sched_pick(&n, 1, &r, SCHED_BINPACK, &miss), -1);
	CHECK_EQ_INT(miss, SCHED_NOT_ALLOWED);

	/* An empty list, likewise. */
	n.exec_allow = &empty;
	CHECK_EQ_INT(sched_pick(&n, 1, &r, SCHED_BINPACK, &miss), -1);
	CHECK_EQ_INT(miss, SCHED_NOT_ALLOWED);

	/* Exact match only: no prefixes, any position. */
	n.exec_allow = &allow_prefix;
	CHECK_EQ_INT(sched_pick(&n, 1, &r, SCHED_BINPACK, &miss), -1);
	CHECK_EQ_INT(miss, SCHED_NOT_ALLOWED);
	n.exec_allow = &allow_many;
	CHECK_EQ_INT(sched_pick(&n, 1, &r, SCHED_BINPACK, &miss), 0);
	CHECK_EQ_INT(miss, SCHED_OK);

	exec_allow_free(&allow_many);
	exec_allow_free(&allow_prefix);
}

static void test_labels(void)
{
	struct sched_node n = node_ok();
	struct sched_request r = req_exec(100, 16);
	json_t *want_r1 = json_pack("{s:s}", "rack", "r1");
	json_t *want_r1_a = json_pack("{s:s, s:s}", "rack", "r1", "zone", "a");
	json_t *want_r1_b = json_pack("{s:s, s:s}", "rack", "r1", "zone", "b");
	json_t *want_gpu = json_pack("{s:s}", "gpu", "yes");
	json_t *want_none = json_object();
	enum sched_miss miss;

	r.labels = want_r1;
	CHECK_EQ_INT(sched_pick(&n, 1, &r, SCHED_BINPACK, &miss), 0);
	CHECK_EQ_INT(miss, SCHED_OK);
	r.labels = want_r1_a;
	CHECK_EQ_INT(sched_pick(&n, 1, &r, SCHED_BINPACK, &miss), 0);
	CHECK_EQ_INT(miss, SCHED_OK);
	r.labels = want_none; /* an empty selector matches every node */
	CHECK_EQ_INT(sched_pick(&n, 1, &r, SCHED_BINPACK, &miss), 0);
	CHECK_EQ_INT(miss, SCHED_OK);

	r.labels = want_r1_b; /* one value differs */
	CHECK_EQ_INT(sched_pick(&n, 1, &r, SCHED_BINPACK, &miss), -1);
	CHECK_EQ_INT(miss, SCHED_NO_LABELS);
	r.labels = want_gpu; /* key absent on the node */
	CHECK_EQ_INT(sched_pick(&n, 1, &r, SCHED_BINPACK, &miss), -1);
	CHECK_EQ_INT(miss, SCHED_NO_LABELS);

	n.labels = NULL; /* a node without labels matches only the empty selector */
	r.labels = want_r1;
	CHECK_EQ_INT(sched_pick(&n, 1, &r, SCHED_BINPACK, &miss), -1);
	CHECK_EQ_INT(miss, SCHED_NO_LABELS);
	r.labels = want_none;
	CHECK_EQ_INT(sched_pick(&n, 1, &r, SCHED_BINPACK, &miss), 0);

	/* Among two nodes, only the matching one is chosen, whatever the policy. */
	struct sched_node two[2] = {node_ok(), node_ok()};
	two[0].labels = labels_r2;
	two[0].vcpus_milli_used = 500; /* fuller: binpack would prefer it */
	r.labels = want_r1;
	CHECK_EQ_INT(sched_pick(two, 2, &r, SCHED_BINPACK, &miss), 1);
	CHECK_EQ_INT(miss, SCHED_OK);
	two[0].vcpus_milli_used = 0;
	two[1].vcpus_milli_used = 500; /* fuller: spread would avoid it */
	CHECK_EQ_INT(sched_pick(two, 2, &r, SCHED_SPREAD, &miss), 1);

	json_decref(want_r1);
	json_decref(want_r1_a);
	json_decref(want_r1_b);
	json_decref(want_gpu);
	json_decref(want_none);
}

static void test_no_capacity(void)
{
	struct sched_node n = node_ok();
	struct sched_request r = req_exec(100, 16);
	enum sched_miss miss;

	n.vcpus_milli_used = 950; /* cpu short by 50 milli, memory plenty */
	CHECK_EQ_INT(sched_pick(&n, 1, &r, SCHED_BINPACK, &miss), -1);
	CHECK_EQ_INT(miss, SCHED_NO_CAPACITY);

	n.vcpus_milli_used = 0;
	n.memory_mb_used = 1020; /* memory short by 12 MiB, cpu plenty */
	CHECK_EQ_INT(sched_pick(&n, 1, &r, SCHED_SPREAD, &miss), -1);
	CHECK_EQ_INT(miss, SCHED_NO_CAPACITY);

	/* A node with no capacity declared fits nothing. */
	n = node_ok();
	n.vcpus_milli_total = 0;
	CHECK_EQ_INT(sched_pick(&n, 1, &r, SCHED_BINPACK, &miss), -1);
	CHECK_EQ_INT(miss, SCHED_NO_CAPACITY);
	n = node_ok();
	n.memory_mb_total = 0;
	CHECK_EQ_INT(sched_pick(&n, 1, &r, SCHED_SPREAD, &miss), -1);
	CHECK_EQ_INT(miss, SCHED_NO_CAPACITY);

	/* A request larger than any node. */
	n = node_ok();
	r = req_exec(1001, 16);
	CHECK_EQ_INT(sched_pick(&n, 1, &r, SCHED_BINPACK, &miss), -1);
	CHECK_EQ_INT(miss, SCHED_NO_CAPACITY);
	r = req_exec(100, 1025);
	CHECK_EQ_INT(sched_pick(&n, 1, &r, SCHED_BINPACK, &miss), -1);
	CHECK_EQ_INT(miss, SCHED_NO_CAPACITY);
}

/* Nodes failing for different reasons: the most specific reason is reported, whatever
 * their order. Order of specificity: no driver < not allowed < no labels < no capacity. */
static void test_most_specific_reason(void)
{
	json_t *want = json_pack("{s:s}", "rack", "r1");
	struct sched_request r = req_exec(100, 16);
	struct sched_node proto[5];
	static const int perms[][4] = {
		{0, 1, 2, 3}, {3, 2, 1, 0}, {1, 3, 0, 2}, {2, 0, 3, 1}, {3, 0, 1, 2}, {0, 3, 2, 1},
	};
	enum sched_miss miss;

	r.labels = want;
	for (int i = 0; i < 5; i++)
		proto[i] = node_ok();
	proto[0].drivers = bit("qemu");          /* no driver */
	proto[1].exec_allow = NULL;              /* not allowed */
	proto[2].labels = labels_r2;             /* no labels */
	proto[3].vcpus_milli_used = 1000;        /* no capacity */
	proto[4].ready = false;                  /* would fit, but is not ready */

	for (size_t p = 0; p < sizeof perms / sizeof perms[0]; p++) {
		struct sched_node n[5];
		for (int k = 0; k < 4; k++)
			n[k] = proto[perms[p][k]];
		n[4] = proto[4];
		/* All four reasons present: capacity wins. */
		CHECK_EQ_INT(sched_pick(n, 5, &r, SCHED_BINPACK, &miss), -1);
		CHECK_EQ_INT(miss, SCHED_NO_CAPACITY);
		CHECK_EQ_INT(sched_pick(n, 5, &r, SCHED_SPREAD, &miss), -1);
		CHECK_EQ_INT(miss, SCHED_NO_CAPACITY);
	}

	/* Subsets, in both orders. */
	struct {
		int a, b;
		enum sched_miss want;
	} pairs[] = {
		{0, 1, SCHED_NOT_ALLOWED}, {0, 2, SCHED_NO_LABELS},   {0, 3, SCHED_NO_CAPACITY},
		{1, 2, SCHED_NO_LABELS},   {1, 3, SCHED_NO_CAPACITY}, {2, 3, SCHED_NO_CAPACITY},
		{0, 4, SCHED_NO_DRIVER},   {1, 4, SCHED_NOT_ALLOWED}, {2, 4, SCHED_NO_LABELS},
	};
	for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
		struct sched_node ab[2] = {proto[pairs[i].a], proto[pairs[i].b]};
		struct sched_node ba[2] = {proto[pairs[i].b], proto[pairs[i].a]};
		CHECK_EQ_INT(sched_pick(ab, 2, &r, SCHED_BINPACK, &miss), -1);
		CHECK_EQ_INT(miss, pairs[i].want);
		CHECK_EQ_INT(sched_pick(ba, 2, &r, SCHED_BINPACK, &miss), -1);
		CHECK_EQ_INT(miss, pairs[i].want);
	}

	/* One good node among all the bad ones is found, at any position. */
	for (int pos = 0; pos < 5; pos++) {
		struct sched_node n[6];
		int k = 0;
		for (int i = 0; i < 6; i++)
			n[i] = i == pos ? node_ok() : proto[k++];
		CHECK_EQ_INT(sched_pick(n, 6, &r, SCHED_BINPACK, &miss), pos);
		CHECK_EQ_INT(miss, SCHED_OK);
		CHECK_EQ_INT(sched_pick(n, 6, &r, SCHED_SPREAD, &miss), pos);
		CHECK_EQ_INT(miss, SCHED_OK);
	}
	json_decref(want);
}

static void test_binpack_fullest(void)
{
	struct sched_node n[4] = {node_ok(), node_ok(), node_ok(), node_ok()};
	struct sched_request r = req_exec(100, 16);
	enum sched_miss miss;

	n[0].vcpus_milli_used = 0;
	n[1].vcpus_milli_used = 500;
	n[2].vcpus_milli_used = 900; /* fullest that fits: exactly full after */
	n[3].vcpus_milli_used = 950; /* fuller, but does not fit */
	CHECK_EQ_INT(sched_pick(n, 4, &r, SCHED_BINPACK, &miss), 2);
	CHECK_EQ_INT(miss, SCHED_OK);

	n[2].vcpus_milli_used = 300;
	CHECK_EQ_INT(sched_pick(n, 4, &r, SCHED_BINPACK, &miss), 1);

	/* The scarcer resource counts: node 0 is 80% full in cpu, node 1 50% in both. */
	struct sched_node m[2] = {node_ok(), node_ok()};
	m[0].vcpus_milli_used = 700; /* after: 80% cpu */
	m[0].memory_mb_used = 0;
	m[1].vcpus_milli_used = 400; /* after: 50% cpu */
	m[1].memory_mb_used = 496;   /* after: 50% memory */
	CHECK_EQ_INT(sched_pick(m, 2, &r, SCHED_BINPACK, &miss), 0);
	/* and memory can be the scarcer one */
	m[0].vcpus_milli_used = 0;
	m[0].memory_mb_used = 0;
	m[1].vcpus_milli_used = 0;
	m[1].memory_mb_used = 900;
	CHECK_EQ_INT(sched_pick(m, 2, &r, SCHED_BINPACK, &miss), 1);

	/* Different sizes: share, not absolute use, decides. */
	struct sched_node big_small[2] = {node_ok(), node_ok()};
	big_small[0].vcpus_milli_total = 64000; /* 64 vCPU, 32 used: 50% */
	big_small[0].vcpus_milli_used = 32000;
	big_small[0].memory_mb_total = 65536;
	big_small[1].vcpus_milli_used = 600; /* 1 vCPU, 0.6 used: 70% after */
	CHECK_EQ_INT(sched_pick(big_small, 2, &r, SCHED_BINPACK, &miss), 1);
	CHECK_EQ_INT(sched_pick(big_small, 2, &r, SCHED_SPREAD, &miss), 0);
}

static void test_spread_emptiest(void)
{
	struct sched_node n[4] = {node_ok(), node_ok(), node_ok(), node_ok()};
	struct sched_request r = req_exec(100, 16);
	enum sched_miss miss;

	n[0].vcpus_milli_used = 500;
	n[1].vcpus_milli_used = 200; /* emptiest */
	n[2].vcpus_milli_used = 900;
	n[3].vcpus_milli_used = 300;
	CHECK_EQ_INT(sched_pick(n, 4, &r, SCHED_SPREAD, &miss), 1);
	CHECK_EQ_INT(miss, SCHED_OK);

	/* The emptiest in cpu is the fullest in memory: memory decides. */
	n[1].memory_mb_used = 1000;
	CHECK_EQ_INT(sched_pick(n, 4, &r, SCHED_SPREAD, &miss), 3);

	/* Placing one at a time with spread fills nodes evenly. */
	struct sched_node e[3] = {node_ok(), node_ok(), node_ok()};
	int placed[3] = {0, 0, 0};
	for (int i = 0; i < 9; i++) {
		int k = sched_pick(e, 3, &r, SCHED_SPREAD, &miss);
		CHECK(k >= 0 && k < 3);
		if (k < 0)
			break;
		placed[k]++;
		e[k].vcpus_milli_used += r.vcpus_milli;
		e[k].memory_mb_used += r.memory_mb;
	}
	CHECK_EQ_INT(placed[0], 3);
	CHECK_EQ_INT(placed[1], 3);
	CHECK_EQ_INT(placed[2], 3);

	/* ... and binpack fills the first before touching the next. */
	struct sched_node b[3] = {node_ok(), node_ok(), node_ok()};
	int first = -1;
	for (int i = 0; i < 10; i++) {
		int k = sched_pick(b, 3, &r, SCHED_BINPACK, &miss);
		CHECK(k >= 0);
		if (k < 0)
			break;
		if (first < 0)
			first = k;
		CHECK_EQ_INT(k, first);
		b[k].vcpus_milli_used += r.vcpus_milli;
		b[k].memory_mb_used += r.memory_mb;
	}
	/* the first node is now full in cpu: the eleventh goes elsewhere */
	int k = sched_pick(b, 3, &r, SCHED_BINPACK, &miss);
	CHECK(k >= 0 && k != first);
}

static void test_ties_lowest_index(void)
{
	struct sched_node n[3] = {node_ok(), node_ok(), node_ok()};
	struct sched_request r = req_exec(100, 16);
	enum sched_miss miss;
	CHECK_EQ_INT(sched_pick(n, 3, &r, SCHED_BINPACK, &miss), 0);
	CHECK_EQ_INT(sched_pick(n, 3, &r, SCHED_SPREAD, &miss), 0);
	n[0].vcpus_milli_used = 100;
	CHECK_EQ_INT(sched_pick(n, 3, &r, SCHED_SPREAD, &miss), 1);
	CHECK_EQ_INT(sched_pick(n, 3, &r, SCHED_BINPACK, &miss), 0);
}

/* Fractional vCPUs: thousandths add up exactly; no rounding lets an extra one in. */
static void test_fractional_milli(void)
{
	enum sched_miss miss;
	struct sched_node n = node_ok();
	n.memory_mb_total = 1 << 20;

	/* 0.1 vCPU x 10 = exactly 1 vCPU; the 11th does not fit. */
	struct sched_request r = req_exec(100, 1);
	for (int i = 0; i < 10; i++) {
		CHECK_EQ_INT(sched_pick(&n, 1, &r, SCHED_BINPACK, &miss), 0);
		n.vcpus_milli_used += r.vcpus_milli;
		n.memory_mb_used += r.memory_mb;
	}
	CHECK_EQ_INT(n.vcpus_milli_used, 1000);
	CHECK_EQ_INT(sched_pick(&n, 1, &r, SCHED_BINPACK, &miss), -1);
	CHECK_EQ_INT(miss, SCHED_NO_CAPACITY);

	/* 0.333 x 3 = 0.999 fits; a fourth does not, but 0.001 still does. */
	n = node_ok();
	r = req_exec(333, 1);
	for (int i = 0; i < 3; i++) {
		CHECK_EQ_INT(sched_pick(&n, 1, &r, SCHED_SPREAD, &miss), 0);
		n.vcpus_milli_used += r.vcpus_milli;
	}
	CHECK_EQ_INT(sched_pick(&n, 1, &r, SCHED_SPREAD, &miss), -1);
	CHECK_EQ_INT(miss, SCHED_NO_CAPACITY);
	r = req_exec(1, 1);
	CHECK_EQ_INT(sched_pick(&n, 1, &r, SCHED_SPREAD, &miss), 0);
	n.vcpus_milli_used += 1;
	CHECK_EQ_INT(sched_pick(&n, 1, &r, SCHED_SPREAD, &miss), -1);
	CHECK_EQ_INT(miss, SCHED_NO_CAPACITY);

	/* 1000 instances of 0.001 vCPU on one vCPU (the smallest unit). */
	n = node_ok();
	n.memory_mb_total = 1 << 20;
	int placed = 0;
	while (sched_pick(&n, 1, &r, SCHED_BINPACK, &miss) == 0 && placed < 2000) {
		n.vcpus_milli_used += r.vcpus_milli;
		n.memory_mb_used += r.memory_mb;
		placed++;
	}
	CHECK_EQ_INT(placed, 1000);
	CHECK_EQ_INT(miss, SCHED_NO_CAPACITY);

	/* Overcommitted capacity (cpus x ratio): 2 cpus x 4 = 8000 milli. */
	n = node_ok();
	n.vcpus_milli_total = 8000;
	n.memory_mb_total = 1 << 20;
	r = req_exec(250, 1);
	placed = 0;
	while (sched_pick(&n, 1, &r, SCHED_BINPACK, &miss) == 0 && placed < 100) {
		n.vcpus_milli_used += r.vcpus_milli;
		n.memory_mb_used += r.memory_mb;
		placed++;
	}
	CHECK_EQ_INT(placed, 32);
}

static void test_exact_fit_boundary(void)
{
	enum sched_miss miss;
	struct sched_node n = node_ok();
	struct sched_request r = req_exec(100, 16);

	/* Exactly full after placement, in cpu, in memory, in both. */
	n.vcpus_milli_used = 900;
	CHECK_EQ_INT(sched_pick(&n, 1, &r, SCHED_BINPACK, &miss), 0);
	n.vcpus_milli_used = 0;
	n.memory_mb_used = 1008;
	CHECK_EQ_INT(sched_pick(&n, 1, &r, SCHED_BINPACK, &miss), 0);
	n.vcpus_milli_used = 900;
	CHECK_EQ_INT(sched_pick(&n, 1, &r, SCHED_SPREAD, &miss), 0);
	CHECK_EQ_INT(miss, SCHED_OK);

	/* One unit over, in either. */
	n.vcpus_milli_used = 901;
	n.memory_mb_used = 0;
	CHECK_EQ_INT(sched_pick(&n, 1, &r, SCHED_BINPACK, &miss), -1);
	CHECK_EQ_INT(miss, SCHED_NO_CAPACITY);
	n.vcpus_milli_used = 0;
	n.memory_mb_used = 1009;
	CHECK_EQ_INT(sched_pick(&n, 1, &r, SCHED_BINPACK, &miss), -1);
	CHECK_EQ_INT(miss, SCHED_NO_CAPACITY);

	/* A request of exactly the whole node. */
	n = node_ok();
	r = req_exec(1000, 1024);
	CHECK_EQ_INT(sched_pick(&n, 1, &r, SCHED_BINPACK, &miss), 0);

	/* The largest sizes the API accepts do not overflow the ranking. */
	n = node_ok();
	n.vcpus_milli_total = (int64_t)MV_VCPUS_MAX * 1000 * 16;
	n.memory_mb_total = (int64_t)MV_MEMORY_MB_MAX * 16;
	struct sched_node two[2] = {n, n};
	two[1].vcpus_milli_used = (int64_t)MV_VCPUS_MAX * 1000;
	two[1].memory_mb_used = MV_MEMORY_MB_MAX;
	r = req_exec((int64_t)MV_VCPUS_MAX * 1000, MV_MEMORY_MB_MAX);
	CHECK_EQ_INT(sched_pick(two, 2, &r, SCHED_BINPACK, &miss), 1);
	CHECK_EQ_INT(sched_pick(two, 2, &r, SCHED_SPREAD, &miss), 0);
}

/* Many nodes: the answer is still the right one (no timing asserted). */
static void test_many_nodes(void)
{
	enum { N = 10000 };
	struct sched_node *n = calloc(N, sizeof *n);
	struct sched_request r = req_exec(100, 16);
	enum sched_miss miss;
	CHECK(n != NULL);
	if (!n)
		return;
	for (int i = 0; i < N; i++) {
		n[i] = node_ok();
		n[i].vcpus_milli_used = 100 + (i * 7919) % 800; /* 100..899, varied */
	}
	n[4321].vcpus_milli_used = 900; /* the one fullest that fits */
	n[8765].vcpus_milli_used = 0;   /* the one emptiest */
	CHECK_EQ_INT(sched_pick(n, N, &r, SCHED_BINPACK, &miss), 4321);
	CHECK_EQ_INT(sched_pick(n, N, &r, SCHED_SPREAD, &miss), 8765);
	for (int i = 0; i < N; i++)
		n[i].vcpus_milli_used = 1000;
	CHECK_EQ_INT(sched_pick(n, N, &r, SCHED_BINPACK, &miss), -1);
	CHECK_EQ_INT(miss, SCHED_NO_CAPACITY);
	free(n);
}

static void test_policy_and_messages(void)
{
	CHECK_EQ_INT(sched_policy_parse("binpack"), SCHED_BINPACK);
	CHECK_EQ_INT(sched_policy_parse("spread"), SCHED_SPREAD);
	CHECK_EQ_INT(sched_policy_parse("Binpack"), -1);
	CHECK_EQ_INT(sched_policy_parse(""), -1);
	CHECK_EQ_INT(sched_policy_parse("random"), -1);

	enum sched_miss all[] = {SCHED_OK, SCHED_NO_NODE, SCHED_NO_DRIVER, SCHED_NOT_ALLOWED,
	                         SCHED_NO_LABELS, SCHED_NO_CAPACITY};
	for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
		const char *m = sched_miss_message(all[i]);
		CHECK(m != NULL && m[0] != '\0' && strcmp(m, "?") != 0);
		for (size_t j = 0; j < i; j++)
			CHECK(strcmp(m, sched_miss_message(all[j])) != 0);
	}
}

/* The allow-list bloom only skips nodes that surely do not allow the executable: over
 * 1,000 nodes with random lists, picks with and without it agree, executable by executable. */
static void test_exec_bloom_agrees(void)
{
	enum { N = 1000, PATHS = 300 };
	struct sched_node *a = calloc(N, sizeof *a), *b = calloc(N, sizeof *b), *e = calloc(N, sizeof *e);
	static struct exec_allow lists[N];
	char path[64], text[256], err[128];
	unsigned seed = 12345;
	for (int i = 0; i < N; i++) {
		text[0] = '\0';
		for (int k = 0; k < 3; k++) {
			seed = seed * 1103515245u + 12345u;
			snprintf(path, sizeof path, "%s/usr/bin/vnf%u", k ? "," : "", (seed >> 8) % PATHS);
			strncat(text, path, sizeof text - strlen(text) - 1);
		}
		CHECK_EQ_INT(exec_allow_parse(&lists[i], text, err, sizeof err), 0);
		a[i] = (struct sched_node){.ready = true, .drivers = 1u << driver_index("exec"), .exec_allow = &lists[i],
		                           .vcpus_milli_total = 1000, .memory_mb_total = 1000,
		                           .vcpus_milli_used = (i * 7) % 900, .memory_mb_used = (i * 13) % 900};
		b[i] = a[i];
		b[i].exec_bloom = sched_exec_bloom(&lists[i]);
		CHECK(b[i].exec_bloom != 0);
		/* exact masks as the core gives them: id = the path's number, for the first 64 */
		e[i] = a[i];
		e[i].exec_exact = true;
		for (size_t k = 0; k < lists[i].n; k++) {
			int id = atoi(lists[i].paths[k] + strlen("/usr/bin/vnf"));
			if (id < 64)
				e[i].exec_mask |= 1ULL << id;
			else
				e[i].exec_exact = false; /* falls back to the bloom and the scan */
		}
		e[i].exec_bloom = b[i].exec_bloom;
	}
	for (int p = 0; p < PATHS + 20; p++) {
		enum sched_miss ma, mb, me;
		snprintf(path, sizeof path, "/usr/bin/vnf%d", p);
		struct sched_request r = {.driver = driver_index("exec"), .executable = path,
		                          .exec_bit = sched_exec_bit(path), .vcpus_milli = 50, .memory_mb = 50};
		CHECK_EQ_INT(sched_pick(a, N, &r, SCHED_BINPACK, &ma), sched_pick(b, N, &r, SCHED_BINPACK, &mb));
		CHECK_EQ_INT(ma, mb);
		r.exec_id_known = true;
		r.exec_id_bit = p < 64 ? 1ULL << p : 0;
		CHECK_EQ_INT(sched_pick(a, N, &r, SCHED_BINPACK, &ma), sched_pick(e, N, &r, SCHED_BINPACK, &me));
		CHECK_EQ_INT(ma, me);
	}
	for (int i = 0; i < N; i++)
		exec_allow_free(&lists[i]);
	free(a);
	free(b);
	free(e);
}

/* sched_place agrees with count picks one after the other, each reserved before the next:
 * the same node for every instance, ties included, and the same reason when they run out.
 * Random views (some nodes not ready, other labels, full, or of equal load), both policies,
 * counts from 1 to past the capacity of all nodes. */
static void place_agrees(struct sched_node *nodes, int n, const struct sched_request *r, enum sched_policy policy,
                         int count)
{
	struct sched_node *seq = malloc(sizeof *seq * (size_t)(n + 1));
	struct sched_slot *scratch = malloc(sizeof *scratch * (size_t)(n + 1));
	int *chosen = malloc(sizeof *chosen * (size_t)count);
	int *warm_left = malloc(sizeof *warm_left * (size_t)(n + 1)); /* a pick takes one warm guest */
	struct sched_request rs = *r;
	enum sched_miss miss_seq = SCHED_OK, miss_place = SCHED_OK;
	int placed_seq = 0, placed;
	CHECK(seq && scratch && chosen && warm_left);
	if (!seq || !scratch || !chosen || !warm_left)
		goto out;
	memcpy(seq, nodes, sizeof *seq * (size_t)n);
	if (r->warm) {
		memcpy(warm_left, r->warm, sizeof *warm_left * (size_t)n);
		rs.warm = warm_left;
	}
	placed = sched_place(nodes, n, r, policy, count, scratch, chosen, &miss_place);
	for (; placed_seq < count; placed_seq++) {
		int k = sched_pick(seq, n, &rs, policy, &miss_seq);
		if (k < 0)
			break;
		if (placed_seq < placed && k != chosen[placed_seq]) {
			CHECK_EQ_INT(chosen[placed_seq], k);
			break;
		}
		seq[k].vcpus_milli_used += r->vcpus_milli;
		seq[k].memory_mb_used += r->memory_mb;
		if (rs.warm && warm_left[k] > 0)
			warm_left[k]--;
	}
	CHECK_EQ_INT(placed, placed_seq);
	CHECK_EQ_INT(miss_place, placed_seq == count ? SCHED_OK : miss_seq);
out:
	free(seq);
	free(scratch);
	free(chosen);
	free(warm_left);
}

static void test_place_agrees_with_picks(void)
{
	enum { N = 200 };
	struct sched_node nodes[N];
	int warm[N];
	unsigned seed = 4242;
	for (int round = 0; round < 40; round++) {
		for (int i = 0; i < N; i++) {
			seed = seed * 1103515245u + 12345u;
			nodes[i] = node_ok();
			nodes[i].ready = (seed >> 8) % 10 != 0;
			nodes[i].labels = (seed >> 12) % 7 == 0 ? labels_r2 : labels_r1;
			/* coarse steps: many equal loads, so ties are decided by the index */
			nodes[i].vcpus_milli_used = 100 * (int64_t)((seed >> 16) % 11);
			nodes[i].memory_mb_used = 128 * (int64_t)((seed >> 20) % 9);
			warm[i] = (seed >> 24) % 13 == 0 ? 1 + (int)((seed >> 28) % 3) : 0; /* a few hold warm guests */
		}
		struct sched_request r = req_exec(round % 3 ? 100 : 250, round % 2 ? 16 : 128);
		r.labels = round % 4 == 0 ? labels_r1 : NULL;
		r.warm = round % 5 < 2 ? warm : NULL;
		int counts[] = {1, 2, 7, 50, 400, 5000};
		for (size_t k = 0; k < sizeof counts / sizeof counts[0]; k++) {
			place_agrees(nodes, N, &r, SCHED_BINPACK, counts[k]);
			place_agrees(nodes, N, &r, SCHED_SPREAD, counts[k]);
		}
	}
}

/* A request naming a warm pool: the nodes holding a warm guest of it first, whatever the
 * policy says of their load, while they fit and have one left; then the policy's order. */
static void test_warm_preferred(void)
{
	struct sched_node n[3] = {node_ok(), node_ok(), node_ok()};
	struct sched_slot scratch[3];
	int chosen[8], warm[3] = {0, 2, 0};
	enum sched_miss miss = SCHED_OK;
	struct sched_request r = req_exec(100, 16);

	n[1].vcpus_milli_used = 500; /* spread would pick 0 (emptiest), binpack 1 anyway */
	n[2].vcpus_milli_used = 800; /* binpack's choice without warm guests */
	CHECK_EQ_INT(sched_pick(n, 3, &r, SCHED_SPREAD, &miss), 0);
	CHECK_EQ_INT(sched_pick(n, 3, &r, SCHED_BINPACK, &miss), 2);
	r.warm = warm;
	CHECK_EQ_INT(sched_pick(n, 3, &r, SCHED_SPREAD, &miss), 1);
	CHECK_EQ_INT(sched_pick(n, 3, &r, SCHED_BINPACK, &miss), 1);
	/* count 4: the two warm guests of node 1, then the policy's order */
	CHECK_EQ_INT(sched_place(n, 3, &r, SCHED_SPREAD, 4, scratch, chosen, &miss), 4);
	CHECK_EQ_INT(chosen[0], 1);
	CHECK_EQ_INT(chosen[1], 1);
	CHECK_EQ_INT(chosen[2], 0);
	CHECK_EQ_INT(chosen[3], 0);
	CHECK_EQ_INT(sched_place(n, 3, &r, SCHED_BINPACK, 3, scratch, chosen, &miss), 3);
	CHECK_EQ_INT(chosen[0], 1);
	CHECK_EQ_INT(chosen[1], 1);
	CHECK_EQ_INT(chosen[2], 2);
	/* a node with warm guests but no room is not chosen: the filter comes first */
	n[1].vcpus_milli_used = 950;
	CHECK_EQ_INT(sched_pick(n, 3, &r, SCHED_SPREAD, &miss), 0);
	/* not ready: neither */
	n[1].vcpus_milli_used = 0;
	n[1].ready = false;
	CHECK_EQ_INT(sched_pick(n, 3, &r, SCHED_BINPACK, &miss), 2);
}

/* Nothing placed: the most specific reason, as sched_pick gives it; part placed: no capacity. */
static void test_place_reasons(void)
{
	struct sched_node n[2] = {node_ok(), node_ok()};
	struct sched_slot scratch[2];
	int chosen[8];
	enum sched_miss miss = SCHED_OK;
	struct sched_request r = req_exec(500, 16);

	CHECK_EQ_INT(sched_place(NULL, 0, &r, SCHED_BINPACK, 1, scratch, chosen, &miss), 0);
	CHECK_EQ_INT(miss, SCHED_NO_NODE);
	r.labels = labels_r2;
	CHECK_EQ_INT(sched_place(n, 2, &r, SCHED_SPREAD, 1, scratch, chosen, &miss), 0);
	CHECK_EQ_INT(miss, SCHED_NO_LABELS);
	r.labels = NULL;
	/* two nodes of 1000 milli: four instances of 500 fit, the fifth does not */
	CHECK_EQ_INT(sched_place(n, 2, &r, SCHED_SPREAD, 5, scratch, chosen, &miss), 4);
	CHECK_EQ_INT(miss, SCHED_NO_CAPACITY);
	CHECK_EQ_INT(chosen[0], 0);
	CHECK_EQ_INT(chosen[1], 1);
	CHECK_EQ_INT(chosen[2], 0);
	CHECK_EQ_INT(chosen[3], 1);
	CHECK_EQ_INT(sched_place(n, 2, &r, SCHED_BINPACK, 4, scratch, chosen, &miss), 4);
	CHECK_EQ_INT(miss, SCHED_OK);
	CHECK_EQ_INT(chosen[0], 0);
	CHECK_EQ_INT(chosen[1], 0);
	CHECK_EQ_INT(chosen[2], 1);
	CHECK_EQ_INT(chosen[3], 1);
	/* the views themselves are not changed */
	CHECK_EQ_INT(n[0].vcpus_milli_used, 0);
	CHECK_EQ_INT(n[1].vcpus_milli_used, 0);
}

int main(void)
{
	char err[128];
	if (exec_allow_parse(&allow_sleep, "/bin/sleep", err, sizeof err) < 0)
		return 2;
	labels_r1 = json_pack("{s:s, s:s}", "rack", "r1", "zone", "a");
	labels_r2 = json_pack("{s:s, s:s}", "rack", "r2", "zone", "a");

	RUN(test_zero_nodes);
	RUN(test_single_node_ok);
	RUN(test_not_ready);
	RUN(test_no_driver);
	RUN(test_not_allowed);
	RUN(test_labels);
	RUN(test_no_capacity);
	RUN(test_most_specific_reason);
	RUN(test_binpack_fullest);
	RUN(test_spread_emptiest);
	RUN(test_ties_lowest_index);
	RUN(test_fractional_milli);
	RUN(test_exact_fit_boundary);
	RUN(test_many_nodes);
	RUN(test_policy_and_messages);
	RUN(test_exec_bloom_agrees);
	RUN(test_place_agrees_with_picks);
	RUN(test_place_reasons);
	RUN(test_warm_preferred);

	exec_allow_free(&allow_sleep);
	json_decref(labels_r1);
	json_decref(labels_r2);
	UNIT_END();
}
