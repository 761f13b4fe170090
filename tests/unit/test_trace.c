/* test_trace — trace_compute arithmetic (phases add up to total, wire time split, clamping,
 * the node's tail, overhead), JSON round trips and node timing validation. */
#include <errno.h>
#include <math.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/trace.h"
#include "unit.h"

static int64_t phase_sum(const struct trace *t)
{
	int64_t sum = 0;
	for (int p = 0; p < PHASE_COUNT; p++)
		sum += t->phase_us[p];
	return sum;
}

/* Marks for a consistent run: each step takes the given time on the core's clock, the
 * network takes wire_us in total (both directions) and the node works work_us. */
static struct core_marks marks_for(int64_t t0, int64_t accept, int64_t schedule, int64_t send,
                                   int64_t wire, int64_t work, int64_t wake)
{
	struct core_marks m;
	m.accepted_us = t0;
	m.persisted_us = m.accepted_us + accept;
	m.scheduled_us = m.persisted_us + schedule;
	m.sent_us = m.scheduled_us + send;
	m.reported_us = m.sent_us + wire + work;
	m.notified_us = m.reported_us + wake;
	return m;
}

static void test_example_by_hand(void)
{
	struct core_marks m = marks_for(1000, 100, 50, 150, 1501, 2500, 99);
	struct node_timing n = {.prepare_us = 200, .network_us = 30, .spawn_us = 2000, .boot_us = 0, .work_us = 2500};
	struct trace t;
	memset(&t, 0xab, sizeof t);
	trace_compute(&t, &m, &n);
	CHECK_EQ_INT(t.total_us, 100 + 50 + 150 + 1501 + 2500 + 99);
	CHECK_EQ_INT(t.phase_us[PHASE_ACCEPT], 100);
	CHECK_EQ_INT(t.phase_us[PHASE_SCHEDULE], 50);
	CHECK_EQ_INT(t.phase_us[PHASE_DISPATCH], 150 + 750);       /* wire 1501: 750 there */
	CHECK_EQ_INT(t.phase_us[PHASE_PREPARE], 200);
	CHECK_EQ_INT(t.phase_us[PHASE_NETWORK], 30);
	CHECK_EQ_INT(t.phase_us[PHASE_SPAWN], 2000);
	CHECK_EQ_INT(t.phase_us[PHASE_BOOT], 0);
	CHECK(!t.has_boot);
	CHECK_EQ_INT(t.phase_us[PHASE_NOTIFY], 751 + 270 + 99);    /* 751 back, node tail, wake */
	CHECK_EQ_INT(phase_sum(&t), t.total_us);
	CHECK_EQ_INT(trace_overhead_us(&t), t.total_us - 2000);
}

/* Whatever the numbers, as long as the node's report is consistent (its steps fit in its
 * work and its work fits in the round trip), the phases add up exactly to the total. */
static void test_phases_sum_to_total(void)
{
	uint64_t x = 88172645463325252ULL; /* xorshift: reproducible */
	for (int i = 0; i < 20000; i++) {
		int64_t r[10];
		for (int k = 0; k < 10; k++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			r[k] = (int64_t)(x % 5000000); /* up to 5 s each */
		}
		if (i % 7 == 0)
			r[3] = i % 2; /* tiny wire times: 0 and 1 µs */
		struct node_timing n = {.prepare_us = r[4], .network_us = r[5] % 1000, .spawn_us = r[6],
		                        .boot_us = i % 3 == 0 ? r[5] % 100000 : 0};
		/* the node's steps, its boot wait, then the tail */
		n.work_us = n.prepare_us + n.network_us + n.spawn_us + n.boot_us + r[7] % 3000;
		struct core_marks m = marks_for(r[8], r[0], r[1], r[2], r[3], n.work_us, r[9]);
		struct trace t;
		trace_compute(&t, &m, &n);
		CHECK_EQ_INT(phase_sum(&t), t.total_us);
		CHECK_EQ_INT(t.total_us, m.notified_us - m.accepted_us);
		CHECK_EQ_INT(trace_overhead_us(&t), t.total_us - n.spawn_us - n.boot_us);
		CHECK_EQ_INT(t.has_boot, n.boot_us > 0);
		for (int p = 0; p < PHASE_COUNT; p++)
			CHECK(t.phase_us[p] >= 0);
		if (unit_current_failed)
			break;
	}
}

/* Boot is part of the node's work (the node reports "running" once the guest said it is
 * ready), so with a boot phase the phases must still add up to the total. */
static void test_phases_sum_with_boot(void)
{
	struct node_timing n = {.prepare_us = 200, .network_us = 30, .spawn_us = 2000, .boot_us = 500};
	n.work_us = 200 + 30 + 2000 + 500 + 270; /* steps, boot, then 270 µs to send the report */
	struct core_marks m = marks_for(1000, 100, 50, 150, 1501, n.work_us, 99);
	struct trace t;
	trace_compute(&t, &m, &n);
	CHECK(t.has_boot);
	CHECK_EQ_INT(t.phase_us[PHASE_BOOT], 500);
	CHECK_EQ_INT(t.total_us, 100 + 50 + 150 + 1501 + n.work_us + 99);
	CHECK_EQ_INT(t.phase_us[PHASE_DISPATCH], 150 + 750);
	CHECK_EQ_INT(t.phase_us[PHASE_NOTIFY], 751 + 270 + 99);
	if (phase_sum(&t) != t.total_us)
		fprintf(stderr, "  with boot_us=500: phases add up to %lld, total is %lld\n",
		        (long long)phase_sum(&t), (long long)t.total_us);
	CHECK_EQ_INT(phase_sum(&t), t.total_us);
	/* overhead = total - spawn - boot */
	CHECK_EQ_INT(trace_overhead_us(&t), t.total_us - 2000 - 500);
}

static void test_wire_split(void)
{
	struct node_timing n = {.prepare_us = 10, .network_us = 0, .spawn_us = 20, .work_us = 30};
	struct {
		int64_t wire, there, back;
	} cases[] = {
		{0, 0, 0}, {1, 0, 1}, {2, 1, 1}, {3, 1, 2}, {999, 499, 500}, {1000, 500, 500}, {1000001, 500000, 500001},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct core_marks m = marks_for(5, 0, 0, 0, cases[i].wire, n.work_us, 0);
		struct trace t;
		trace_compute(&t, &m, &n);
		CHECK_EQ_INT(t.phase_us[PHASE_DISPATCH], cases[i].there);
		CHECK_EQ_INT(t.phase_us[PHASE_NOTIFY], cases[i].back);
		CHECK_EQ_INT(t.phase_us[PHASE_DISPATCH] + t.phase_us[PHASE_NOTIFY], cases[i].wire);
		CHECK_EQ_INT(phase_sum(&t), t.total_us);
	}
}

static void test_node_tail_goes_to_notify(void)
{
	/* No network time at all: notify is the node's tail plus the core's wake-up. */
	struct node_timing n = {.prepare_us = 100, .network_us = 50, .spawn_us = 1000, .work_us = 1400};
	struct core_marks m = marks_for(0, 10, 10, 10, 0, n.work_us, 40);
	struct trace t;
	trace_compute(&t, &m, &n);
	CHECK_EQ_INT(t.phase_us[PHASE_NOTIFY], 250 + 40);
	CHECK_EQ_INT(t.phase_us[PHASE_DISPATCH], 10);
	CHECK_EQ_INT(phase_sum(&t), t.total_us);

	/* A node whose steps exactly fill its work has no tail. */
	n.work_us = 1150;
	m = marks_for(0, 10, 10, 10, 0, n.work_us, 40);
	trace_compute(&t, &m, &n);
	CHECK_EQ_INT(t.phase_us[PHASE_NOTIFY], 40);
	CHECK_EQ_INT(phase_sum(&t), t.total_us);
}

static void test_clamping(void)
{
	struct trace t;
	struct node_timing n = {.prepare_us = 100, .network_us = 0, .spawn_us = 100, .work_us = 300};
	struct core_marks m;

	/* Out-of-order core marks (should not happen) give zeros, not negative phases. */
	m = (struct core_marks){.accepted_us = 1000, .persisted_us = 900, .scheduled_us = 800,
	                        .sent_us = 700, .reported_us = 600, .notified_us = 500};
	trace_compute(&t, &m, &n);
	CHECK_EQ_INT(t.phase_us[PHASE_ACCEPT], 0);
	CHECK_EQ_INT(t.phase_us[PHASE_SCHEDULE], 0);
	CHECK_EQ_INT(t.total_us, 0);
	CHECK_EQ_INT(trace_overhead_us(&t), 0);
	for (int p = 0; p < PHASE_COUNT; p++)
		CHECK(t.phase_us[p] >= 0);

	/* The node says it worked longer than the whole round trip (its clock runs fast):
	 * no negative wire time. */
	m = marks_for(0, 10, 10, 10, 0, 0, 5);
	m.reported_us = m.sent_us + 200; /* round trip 200 < work 300 */
	m.notified_us = m.reported_us + 5;
	trace_compute(&t, &m, &n);
	CHECK_EQ_INT(t.phase_us[PHASE_DISPATCH], 10);
	CHECK_EQ_INT(t.phase_us[PHASE_NOTIFY], 100 + 5); /* tail 300 - 200, wire 0 */
	for (int p = 0; p < PHASE_COUNT; p++)
		CHECK(t.phase_us[p] >= 0);

	/* The node's steps exceed its work: no negative tail. */
	n = (struct node_timing){.prepare_us = 500, .network_us = 0, .spawn_us = 500, .work_us = 10};
	m = marks_for(0, 10, 10, 10, 20, n.work_us, 5);
	trace_compute(&t, &m, &n);
	CHECK_EQ_INT(t.phase_us[PHASE_NOTIFY], 10 + 5); /* half the wire + wake, tail 0 */
	CHECK_EQ_INT(t.phase_us[PHASE_DISPATCH], 10 + 10);
	for (int p = 0; p < PHASE_COUNT; p++)
		CHECK(t.phase_us[p] >= 0);

	/* notified before reported */
	n = (struct node_timing){.prepare_us = 1, .network_us = 0, .spawn_us = 1, .work_us = 2};
	m = marks_for(0, 10, 10, 10, 0, n.work_us, 0);
	m.notified_us = m.reported_us - 3;
	trace_compute(&t, &m, &n);
	CHECK_EQ_INT(t.phase_us[PHASE_NOTIFY], 0);
}

static void test_overhead(void)
{
	struct trace t = {0};
	t.total_us = 10000;
	t.phase_us[PHASE_SPAWN] = 3000;
	CHECK_EQ_INT(trace_overhead_us(&t), 7000);
	t.phase_us[PHASE_BOOT] = 2000;
	t.has_boot = true;
	CHECK_EQ_INT(trace_overhead_us(&t), 5000);
	t.phase_us[PHASE_SPAWN] = 9000; /* inconsistent: never negative */
	CHECK_EQ_INT(trace_overhead_us(&t), 0);
	t = (struct trace){0};
	CHECK_EQ_INT(trace_overhead_us(&t), 0);
}

static int64_t ms_to_us(const json_t *v) { return (int64_t)(json_number_value(v) * 1000.0 + (json_number_value(v) >= 0 ? 0.5 : -0.5)); }

/* One duration through trace_to_json, text, and trace_from_json. */
static bool round_trip_us(int64_t us)
{
	struct trace t = {0}, back;
	bool ok;
	t.total_us = us;
	t.phase_us[PHASE_SPAWN] = us;
	json_t *j = trace_to_json(&t);
	char *text = json_dumps(j, JSON_COMPACT);
	json_t *j2 = json_loads(text, 0, NULL);
	ok = trace_from_json(&back, j2) == 0 && back.total_us == us && back.phase_us[PHASE_SPAWN] == us;
	if (!ok)
		fprintf(stderr, "  %lld µs -> %s\n", (long long)us, text);
	free(text);
	json_decref(j);
	json_decref(j2);
	return ok;
}

static void test_json_round_trip(void)
{
	static const int64_t values[] = {0, 1, 2, 9, 10, 99, 999, 1000, 1001, 12345, 999999, 1000001,
	                                 1234567, 123456789, 3599999999LL, 86400000000LL};
	for (int with_boot = 0; with_boot <= 1; with_boot++) {
		for (size_t v = 0; v < sizeof values / sizeof values[0]; v++) {
			struct trace t = {0}, back;
			json_t *j, *phases;
			for (int p = 0; p < PHASE_COUNT; p++)
				t.phase_us[p] = values[(v + (size_t)p) % (sizeof values / sizeof values[0])];
			if (!with_boot)
				t.phase_us[PHASE_BOOT] = 0;
			t.has_boot = with_boot;
			t.total_us = 0;
			for (int p = 0; p < PHASE_COUNT; p++)
				t.total_us += t.phase_us[p];

			j = trace_to_json(&t);
			CHECK(json_is_object(j));
			phases = json_object_get(j, "phases");
			CHECK(json_is_object(phases));
			CHECK_EQ_INT(json_object_size(phases), with_boot ? PHASE_COUNT : PHASE_COUNT - 1);
			CHECK((json_object_get(phases, "boot") != NULL) == with_boot);
			for (int p = 0; p < PHASE_COUNT; p++) {
				json_t *ms = json_object_get(phases, phase_names[p]);
				if (p == PHASE_BOOT && !with_boot)
					continue;
				CHECK(json_is_number(ms));
				CHECK_EQ_INT(ms_to_us(ms), t.phase_us[p]);
			}
			CHECK_EQ_INT(ms_to_us(json_object_get(j, "total_ms")), t.total_us);
			CHECK_EQ_INT(ms_to_us(json_object_get(j, "overhead_ms")), trace_overhead_us(&t));

			/* through text, as the store and the API do */
			char *text = json_dumps(j, JSON_COMPACT);
			json_t *j2 = json_loads(text, 0, NULL);
			memset(&back, 0x5a, sizeof back);
			CHECK_EQ_INT(trace_from_json(&back, j2), 0);
			for (int p = 0; p < PHASE_COUNT; p++)
				CHECK_EQ_INT(back.phase_us[p], t.phase_us[p]);
			CHECK_EQ_INT(back.total_us, t.total_us);
			CHECK_EQ_INT(back.has_boot, t.has_boot);
			free(text);
			json_decref(j);
			json_decref(j2);
		}
	}

	/* Every microsecond up to 20 ms, and a pseudo-random sample up to an hour, survives
	 * (ms with three decimals). */
	uint64_t x = 2463534242ULL;
	for (int64_t i = 0; i < 40000; i++) {
		int64_t us = i;
		if (i >= 20000) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			us = (int64_t)(x % (3600ULL * 1000000 + 1));
		}
		if (!round_trip_us(us)) {
			CHECK(!"µs round trip");
			break;
		}
	}
}

/* trace_format writes the object trace_to_json builds: the same members, the same numbers. */
static void test_format_matches_json(void)
{
	static const int64_t values[] = {0, 1, 9, 999, 1000, 1001, 12345, 999999, 1234567, 86400000000LL};
	const size_t nv = sizeof values / sizeof values[0];
	for (size_t v = 0; v < nv; v++) {
		struct trace t = {0};
		char buf[TRACE_TEXT_MAX];
		json_t *want, *got;
		for (int p = 0; p < PHASE_COUNT; p++)
			t.phase_us[p] = values[(v + (size_t)p) % nv];
		t.has_boot = v % 2;
		t.total_us = values[(v + 3) % nv] * 9;
		t.image_cache = (enum image_cache)(v % 3);
		t.has_steps = v % 3 == 0; /* the node's sub-steps, when it measured them */
		for (int s = 0; s < STEP_COUNT; s++)
			t.step_us[s] = values[(v + 5 + (size_t)s) % nv];
		t.has_stop = v % 2 == 0; /* once stopped on request */
		for (int s = 0; s < STOP_STEP_COUNT; s++)
			t.stop_us[s] = values[(v + 7 + (size_t)s) % nv];
		CHECK(trace_format(&t, buf, sizeof buf) > 0);
		want = trace_to_json(&t);
		got = json_loads(buf, 0, NULL);
		CHECK(got != NULL);
		if (!json_equal(want, got))
			fprintf(stderr, "  %s\n", buf);
		CHECK(json_equal(want, got));
		json_decref(want);
		json_decref(got);
	}
	{ /* too small a buffer is refused, not cut */
		struct trace t = {0};
		char small[16];
		CHECK_EQ_INT(trace_format(&t, small, sizeof small), -1);
	}
}

static void test_json_from_rejects(void)
{
	struct trace t;
	static const char *const bad[] = {
		"null",
		"[]",
		"{}",
		"{\"total_ms\": 1}",
		"{\"phases\": {}}",
		"{\"phases\": [], \"total_ms\": 1}",
		"{\"phases\": {}, \"total_ms\": \"1\"}",
		"{\"phases\": {}, \"total_ms\": -1}",
		"{\"phases\": {\"spawn\": -0.001}, \"total_ms\": 1}",
		"{\"phases\": {\"spawn\": \"1\"}, \"total_ms\": 1}",
		"{\"phases\": {\"boot\": null}, \"total_ms\": 1}",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		json_t *j = json_loads(bad[i], JSON_DECODE_ANY, NULL);
		CHECK(j != NULL);
		if (trace_from_json(&t, j) != -EINVAL) {
			fprintf(stderr, "  accepted %s\n", bad[i]);
			CHECK(!"trace_from_json should refuse");
		}
		json_decref(j);
	}
	CHECK_EQ_INT(trace_from_json(&t, NULL), -EINVAL);

	/* A minimal trace: phases may be absent (they read as 0); integers are fine. */
	json_t *j = json_loads("{\"phases\": {\"spawn\": 2}, \"total_ms\": 3}", 0, NULL);
	CHECK_EQ_INT(trace_from_json(&t, j), 0);
	CHECK_EQ_INT(t.phase_us[PHASE_SPAWN], 2000);
	CHECK_EQ_INT(t.total_us, 3000);
	CHECK_EQ_INT(t.phase_us[PHASE_ACCEPT], 0);
	CHECK(!t.has_boot);
	json_decref(j);
}

static void test_node_timing_json(void)
{
	struct node_timing n = {.prepare_us = 1, .network_us = 0, .spawn_us = 123456, .boot_us = 3600000000LL,
	                        .work_us = 3600000000LL}, back;
	json_t *j = node_timing_to_json(&n);
	CHECK(json_is_object(j));
	CHECK_EQ_INT(node_timing_from_json(&back, j), 0);
	CHECK_EQ_INT(back.prepare_us, 1);
	CHECK_EQ_INT(back.network_us, 0);
	CHECK_EQ_INT(back.spawn_us, 123456);
	CHECK_EQ_INT(back.boot_us, 3600000000LL);
	CHECK_EQ_INT(back.work_us, 3600000000LL);
	json_decref(j);

	/* absent fields are 0 */
	j = json_object();
	memset(&back, 0x7f, sizeof back);
	CHECK_EQ_INT(node_timing_from_json(&back, j), 0);
	CHECK_EQ_INT(back.prepare_us + back.network_us + back.spawn_us + back.boot_us + back.work_us, 0);
	json_decref(j);

	static const char *const fields[] = {"prepare_us", "network_us", "spawn_us", "boot_us", "work_us"};
	for (size_t f = 0; f < 5; f++) {
		json_t *bad[] = {
			json_integer(-1),
			json_integer(3600LL * 1000000 + 1),       /* more than an hour */
			json_integer(INT64_MAX),
			json_integer(INT64_MIN),
			json_real(1.5),                           /* not an integer */
			json_real(100.0),                         /* an integer-valued real is still a real */
			json_string("100"),
			json_true(),
			json_null(),
			json_array(),
		};
		for (size_t b = 0; b < sizeof bad / sizeof bad[0]; b++) {
			j = json_pack("{s:I}", "work_us", (json_int_t)10);
			json_object_set_new(j, fields[f], bad[b]);
			if (node_timing_from_json(&back, j) != -EINVAL) {
				char *text = json_dumps(j, JSON_COMPACT);
				fprintf(stderr, "  accepted %s\n", text);
				free(text);
				CHECK(!"node_timing_from_json should refuse");
			}
			json_decref(j);
		}
		/* exactly one hour is the largest accepted */
		j = json_pack("{s:I}", fields[f], (json_int_t)3600LL * 1000000);
		CHECK_EQ_INT(node_timing_from_json(&back, j), 0);
		json_decref(j);
	}

	j = json_array();
	CHECK_EQ_INT(node_timing_from_json(&back, j), -EINVAL);
	json_decref(j);
	CHECK_EQ_INT(node_timing_from_json(&back, NULL), -EINVAL);
}

/* The node's steps of prepare and spawn: on the wire in µs, in the trace in ms; they
 * must split their phases exactly, or the report is refused. */
static void test_steps(void)
{
	struct node_timing n = {.prepare_us = 700, .spawn_us = 3000, .work_us = 5000, .has_steps = true,
	                        .step_us = {[STEP_ARTIFACT] = 200, [STEP_ENVIRONMENT] = 500, [STEP_CONFIG] = 400,
	                                    [STEP_CALL] = 2600}},
	                   back;
	json_t *j = node_timing_to_json(&n);
	CHECK_EQ_INT(node_timing_from_json(&back, j), 0);
	CHECK(back.has_steps);
	CHECK_EQ_INT(back.step_us[STEP_ARTIFACT], 200);
	CHECK_EQ_INT(back.step_us[STEP_CALL], 2600);
	CHECK_EQ_INT(json_integer_value(json_object_get(json_object_get(j, "steps"), "config_us")), 400);

	/* steps that do not add up to their phase, a missing or a negative step: refused */
	json_t *steps = json_object_get(j, "steps");
	json_object_set_new(steps, "call_us", json_integer(2599));
	CHECK_EQ_INT(node_timing_from_json(&back, j), -EINVAL);
	json_object_del(steps, "call_us");
	CHECK_EQ_INT(node_timing_from_json(&back, j), -EINVAL);
	json_object_set_new(steps, "call_us", json_integer(-1));
	CHECK_EQ_INT(node_timing_from_json(&back, j), -EINVAL);
	json_object_set_new(j, "steps", json_string("x"));
	CHECK_EQ_INT(node_timing_from_json(&back, j), -EINVAL);
	json_decref(j);

	/* without steps (an older node): none in the trace */
	n.has_steps = false;
	j = node_timing_to_json(&n);
	CHECK(!json_object_get(j, "steps"));
	CHECK_EQ_INT(node_timing_from_json(&back, j), 0);
	CHECK(!back.has_steps);
	json_decref(j);

	/* into the trace, and its JSON both ways */
	struct core_marks m = {.accepted_us = 1000, .persisted_us = 1100, .scheduled_us = 1200, .sent_us = 1300,
	                       .reported_us = 7300, .notified_us = 7400};
	struct trace t, t2;
	n.has_steps = true;
	trace_compute(&t, &m, &n);
	CHECK(t.has_steps);
	j = trace_to_json(&t);
	json_t *js = json_object_get(j, "steps");
	CHECK(json_is_object(js) && json_object_size(js) == STEP_COUNT);
	CHECK(fabs(json_number_value(json_object_get(js, "environment")) - 0.5) < 1e-9);
	CHECK_EQ_INT(trace_from_json(&t2, j), 0);
	CHECK(t2.has_steps && t2.step_us[STEP_CONFIG] == 400 && t2.step_us[STEP_ARTIFACT] == 200);
	json_object_set_new(js, "call", json_string("x"));
	CHECK_EQ_INT(trace_from_json(&t2, j), -EINVAL);
	json_decref(j);
	CHECK_STR(step_names[STEP_ARTIFACT], "artifact");
	CHECK_STR(step_names[STEP_CALL], "call");
}

/* The stop's steps: the node's wire form (both keys, 0 to 1 h), and the trace's. */
static void test_stop_steps(void)
{
	struct stop_timing st = {.step_us = {[STOP_STEP_STOP] = 1500, [STOP_STEP_CLEANUP] = 250}}, back;
	json_t *j = stop_timing_to_json(&st);
	CHECK_EQ_INT(stop_timing_from_json(&back, j), 0);
	CHECK_EQ_INT(back.step_us[STOP_STEP_STOP], 1500);
	CHECK_EQ_INT(back.step_us[STOP_STEP_CLEANUP], 250);
	json_object_del(j, "cleanup_us"); /* half a stop is a broken node */
	CHECK_EQ_INT(stop_timing_from_json(&back, j), -EINVAL);
	json_object_set_new(j, "cleanup_us", json_integer(-1));
	CHECK_EQ_INT(stop_timing_from_json(&back, j), -EINVAL);
	json_object_set_new(j, "cleanup_us", json_integer(3600LL * 1000000 + 1));
	CHECK_EQ_INT(stop_timing_from_json(&back, j), -EINVAL);
	json_decref(j);
	j = json_string("x");
	CHECK_EQ_INT(stop_timing_from_json(&back, j), -EINVAL);
	json_decref(j);

	struct trace t = {.total_us = 1000, .has_stop = true, .stop_us = {2000, 300}}, t2;
	j = trace_to_json(&t);
	json_t *js = json_object_get(j, "stop_steps");
	CHECK(json_is_object(js) && json_object_size(js) == STOP_STEP_COUNT);
	CHECK(fabs(json_number_value(json_object_get(js, "cleanup")) - 0.3) < 1e-9);
	CHECK_EQ_INT(trace_from_json(&t2, j), 0);
	CHECK(t2.has_stop && t2.stop_us[STOP_STEP_STOP] == 2000 && t2.stop_us[STOP_STEP_CLEANUP] == 300);
	json_object_set_new(js, "stop", json_integer(-5));
	CHECK_EQ_INT(trace_from_json(&t2, j), -EINVAL);
	json_decref(j);
	t.has_stop = false; /* not stopped (yet): no key at all */
	j = trace_to_json(&t);
	CHECK(json_object_get(j, "stop_steps") == NULL);
	json_decref(j);
	CHECK_STR(stop_step_names[STOP_STEP_CLEANUP], "cleanup");
}

static void test_phase_names(void)
{
	static const char *const want[PHASE_COUNT] = {"accept", "schedule", "dispatch", "prepare",
	                                              "network", "spawn", "boot", "notify"};
	for (int p = 0; p < PHASE_COUNT; p++)
		CHECK_STR(phase_names[p], want[p]);
}

/* What json_loads and trace_from_json answer for a text: the reference trace_from_text
 * must match, whether it took its own reader or jansson's. */
static int reference_from_text(struct trace *t, const char *text)
{
	json_t *j = json_loads(text, 0, NULL);
	int rc;
	*t = (struct trace){0};
	if (!j)
		return -EINVAL;
	rc = trace_from_json(t, j);
	json_decref(j);
	return rc;
}

static bool traces_equal(const struct trace *a, const struct trace *b)
{
	return memcmp(a->phase_us, b->phase_us, sizeof a->phase_us) == 0 && a->has_boot == b->has_boot &&
	       a->total_us == b->total_us && a->image_cache == b->image_cache && a->pool == b->pool &&
	       a->has_steps == b->has_steps && memcmp(a->step_us, b->step_us, sizeof a->step_us) == 0 &&
	       a->has_stop == b->has_stop && memcmp(a->stop_us, b->stop_us, sizeof a->stop_us) == 0;
}

static void check_text_as_jansson(const char *text)
{
	struct trace fast, ref;
	int rc = trace_from_text(&fast, text), want = reference_from_text(&ref, text);
	if (rc != want || (rc == 0 && !traces_equal(&fast, &ref))) {
		fprintf(stderr, "  trace_from_text(%s): %d, jansson's way %d\n", text, rc, want);
		CHECK(!"trace_from_text differs from json_loads + trace_from_json");
	}
}

/* Stored traces (as the stores write them: compact, 12 digits) of random content, and
 * texts around the compact form's edges (whitespace, keys twice, unknown members, numbers
 * jansson refuses or reads otherwise, escapes, a part of steps): the same answer and the
 * same trace as jansson's way, every time. */
static void test_from_text_as_jansson(void)
{
	static const char *const texts[] = {
		"{\"phases\":{},\"total_ms\":1}",
		"{\"phases\":{\"spawn\":2},\"total_ms\":3}",
		"{\"phases\":{\"boot\":0.5,\"spawn\":1e3},\"total_ms\":1E-2,\"overhead_ms\":-4}",
		"{\"phases\": {}, \"total_ms\": 1}",
		"{\"phases\":{},\"total_ms\":1} ",
		"{\"phases\":{},\"total_ms\":1}x",
		"{\"phases\":{},\"total_ms\":1,\"total_ms\":2}",
		"{\"phases\":{\"spawn\":1,\"spawn\":2},\"total_ms\":1}",
		"{\"phases\":{},\"phases\":{\"spawn\":1},\"total_ms\":1}",
		"{\"phases\":{},\"total_ms\":01}",
		"{\"phases\":{},\"total_ms\":-0}",
		"{\"phases\":{},\"total_ms\":-0.0}",
		"{\"phases\":{},\"total_ms\":1.}",
		"{\"phases\":{},\"total_ms\":.5}",
		"{\"phases\":{},\"total_ms\":1e}",
		"{\"phases\":{},\"total_ms\":1e999}",
		"{\"phases\":{},\"total_ms\":1,\"overhead_ms\":1e999}",
		"{\"phases\":{},\"total_ms\":1,\"overhead_ms\":99999999999999999999}",
		"{\"phases\":{},\"total_ms\":1e-400}",
		"{\"phases\":{},\"total_ms\":1000000000000}",
		"{\"phases\":{},\"total_ms\":1000000000001}",
		"{\"phases\":{},\"total_ms\":123456789012345}",
		"{\"phases\":{},\"total_ms\":1234567890123456}",
		"{\"phases\":{},\"total_ms\":0.0005}",
		"{\"phases\":{},\"total_ms\":0.0015}",
		"{\"phases\":{},\"total_ms\":1,\"image_cache\":\"hit\",\"pool\":\"miss\"}",
		"{\"phases\":{},\"total_ms\":1,\"image_cache\":\"none\"}",
		"{\"phases\":{},\"total_ms\":1,\"image_cache\":\"warm\"}",
		"{\"phases\":{},\"total_ms\":1,\"image_cache\":null}",
		"{\"phases\":{},\"total_ms\":1,\"pool\":\"h\\u0069t\"}",
		"{\"phases\":{},\"total_ms\":1,\"extra\":[1,2],\"more\":{\"a\":true}}",
		"{\"phases\":{\"later\":\"x\",\"spawn\":1},\"total_ms\":1,\"note\":\"abc\"}",
		"{\"phases\":{},\"total_ms\":1,\"steps\":{\"artifact\":1,\"environment\":2,\"config\":3,\"call\":4}}",
		"{\"phases\":{},\"total_ms\":1,\"steps\":{\"artifact\":1,\"environment\":2,\"config\":3}}",
		"{\"phases\":{},\"total_ms\":1,\"steps\":{}}",
		"{\"phases\":{},\"total_ms\":1,\"steps\":[]}",
		"{\"phases\":{},\"total_ms\":1,\"stop_steps\":{\"stop\":1.5,\"cleanup\":0}}",
		"{\"phases\":{},\"total_ms\":1,\"stop_steps\":{\"stop\":1.5}}",
		"{\"phases\":[],\"total_ms\":1}",
		"{\"total_ms\":1}",
		"{\"phases\":{}}",
		"{\"phases\":{\"spawn\":-0.001},\"total_ms\":1}",
		"{}",
		"[]",
		"null",
		"",
		"{\"phases\":{},\"total_ms\":1",
		"{\"phases\":{},\"total_ms\":1,}",
		"{\"phases\":{},\"tot\\u0061l_ms\":1}",
		"{\"Phases\":{},\"total_ms\":1}",
	};
	for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++)
		check_text_as_jansson(texts[i]);

	srand(15);
	for (int n = 0; n < 20000; n++) {
		struct trace t = {0};
		for (int p = 0; p < PHASE_COUNT; p++)
			t.phase_us[p] = rand() % 4 == 0 ? 0 : (int64_t)rand() * (rand() % 1000 + 1);
		t.has_boot = rand() % 2;
		t.total_us = (int64_t)rand() * (rand() % 100000 + 1);
		t.image_cache = (enum image_cache)(rand() % 3);
		t.pool = (enum pool_use)(rand() % 3);
		t.has_steps = rand() % 2;
		for (int s = 0; t.has_steps && s < STEP_COUNT; s++)
			t.step_us[s] = rand() % 100000000;
		t.has_stop = rand() % 2;
		for (int s = 0; t.has_stop && s < STOP_STEP_COUNT; s++)
			t.stop_us[s] = rand() % 100000000;
		json_t *j = trace_to_json(&t);
		char *text = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(12));
		struct trace back;
		check_text_as_jansson(text);
		CHECK_EQ_INT(trace_from_text(&back, text), 0);
		free(text);
		json_decref(j);
	}
}

int main(void)
{
	RUN(test_from_text_as_jansson);
	RUN(test_example_by_hand);
	RUN(test_phases_sum_to_total);
	RUN(test_phases_sum_with_boot);
	RUN(test_wire_split);
	RUN(test_node_tail_goes_to_notify);
	RUN(test_clamping);
	RUN(test_overhead);
	RUN(test_json_round_trip);
	RUN(test_format_matches_json);
	RUN(test_json_from_rejects);
	RUN(test_node_timing_json);
	RUN(test_steps);
	RUN(test_stop_steps);
	RUN(test_phase_names);
	UNIT_END();
}
