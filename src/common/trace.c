#include "common/trace.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const phase_names[PHASE_COUNT] = {
	[PHASE_ACCEPT] = "accept",   [PHASE_SCHEDULE] = "schedule", [PHASE_DISPATCH] = "dispatch",
	[PHASE_PREPARE] = "prepare", [PHASE_NETWORK] = "network",   [PHASE_SPAWN] = "spawn",
	[PHASE_BOOT] = "boot",       [PHASE_NOTIFY] = "notify",
};

const char *const step_names[STEP_COUNT] = {
	[STEP_ARTIFACT] = "artifact", [STEP_ENVIRONMENT] = "environment", [STEP_CONFIG] = "config", [STEP_CALL] = "call",
};

const char *const stop_step_names[STOP_STEP_COUNT] = {[STOP_STEP_STOP] = "stop", [STOP_STEP_CLEANUP] = "cleanup"};

static int64_t nonneg(int64_t v) { return v < 0 ? 0 : v; }

void trace_compute(struct trace *t, const struct core_marks *m, const struct node_timing *n)
{
	int64_t node_steps = n->prepare_us + n->network_us + n->spawn_us + n->boot_us;
	/* Time the node worked after its last step (building and sending the report)
	 * belongs to notify. */
	int64_t node_tail = nonneg(n->work_us - node_steps);
	/* Network time there and back, on the core's clock alone. */
	int64_t wire = nonneg(m->reported_us - m->sent_us - n->work_us);

	t->phase_us[PHASE_ACCEPT] = nonneg(m->persisted_us - m->accepted_us);
	t->phase_us[PHASE_SCHEDULE] = nonneg(m->scheduled_us - m->persisted_us);
	t->phase_us[PHASE_DISPATCH] = nonneg(m->sent_us - m->scheduled_us) + wire / 2;
	t->phase_us[PHASE_PREPARE] = n->prepare_us;
	t->phase_us[PHASE_NETWORK] = n->network_us;
	t->phase_us[PHASE_SPAWN] = n->spawn_us;
	t->phase_us[PHASE_BOOT] = n->boot_us;
	t->has_boot = n->boot_us > 0;
	t->phase_us[PHASE_NOTIFY] = (wire - wire / 2) + node_tail + nonneg(m->notified_us - m->reported_us);
	t->total_us = nonneg(m->notified_us - m->accepted_us);
	t->image_cache = n->image_cache;
	t->pool = n->pool;
	t->has_steps = n->has_steps;
	memcpy(t->step_us, n->step_us, sizeof t->step_us);
	/* an instantiation's trace: its stop, if any, comes later (cluster.c adds it) */
	t->has_stop = false;
	memset(t->stop_us, 0, sizeof t->stop_us);
}

static const char *const image_cache_names[] = {[IMAGE_NONE] = "none", [IMAGE_HIT] = "hit", [IMAGE_MISS] = "miss"};
static const char *const pool_use_names[] = {[POOL_NONE] = "none", [POOL_HIT] = "hit", [POOL_MISS] = "miss"};

/* One of names[0..2] (absent: 0). */
static int hit_miss_parse(const json_t *v, const char *const names[3], int *out)
{
	*out = 0;
	if (!v)
		return 0;
	for (int i = 0; i < 3; i++) {
		if (json_is_string(v) && strcmp(json_string_value(v), names[i]) == 0) {
			*out = i;
			return 0;
		}
	}
	return -EINVAL;
}

static int image_cache_parse(const json_t *v, enum image_cache *out)
{
	int i, rc = hit_miss_parse(v, image_cache_names, &i);
	*out = (enum image_cache)i;
	return rc;
}

static int pool_use_parse(const json_t *v, enum pool_use *out)
{
	int i, rc = hit_miss_parse(v, pool_use_names, &i);
	*out = (enum pool_use)i;
	return rc;
}

int64_t trace_overhead_us(const struct trace *t)
{
	return nonneg(t->total_us - t->phase_us[PHASE_SPAWN] - t->phase_us[PHASE_BOOT]);
}

static json_t *ms(int64_t us) { return json_real((double)us / 1000.0); }

json_t *trace_to_json(const struct trace *t)
{
	json_t *phases = json_object();
	for (int p = 0; p < PHASE_COUNT; p++) {
		if (p == PHASE_BOOT && !t->has_boot)
			continue;
		json_object_set_new(phases, phase_names[p], ms(t->phase_us[p]));
	}
	json_t *j = json_pack("{s:o, s:o, s:o}", "phases", phases, "total_ms", ms(t->total_us), "overhead_ms",
	                      ms(trace_overhead_us(t)));
	if (t->image_cache != IMAGE_NONE)
		json_object_set_new(j, "image_cache", json_string(image_cache_names[t->image_cache]));
	if (t->pool != POOL_NONE)
		json_object_set_new(j, "pool", json_string(pool_use_names[t->pool]));
	if (t->has_steps) {
		json_t *steps = json_object();
		for (int s = 0; s < STEP_COUNT; s++)
			json_object_set_new(steps, step_names[s], ms(t->step_us[s]));
		json_object_set_new(j, "steps", steps);
	}
	if (t->has_stop) {
		json_t *stop = json_object();
		for (int s = 0; s < STOP_STEP_COUNT; s++)
			json_object_set_new(stop, stop_step_names[s], ms(t->stop_us[s]));
		json_object_set_new(j, "stop_steps", stop);
	}
	return j;
}

/* Appends us as milliseconds with their three decimals ("12.345") at *pos in buf; digits
 * by hand, not printf: a million of these are written when a million instances are lost
 * or placed (their traces go to the store), and printf's parsing of its format was a
 * visible share of that. */
static void put_ms(char *buf, size_t len, size_t *pos, int64_t us)
{
	uint64_t mag = us < 0 ? (uint64_t)0 - (uint64_t)us : (uint64_t)us;
	char tmp[32], *p = tmp + sizeof tmp;
	for (int i = 0; i < 3; i++, mag /= 10) /* the fraction, always three digits */
		*--p = (char)('0' + mag % 10);
	*--p = '.';
	do
		*--p = (char)('0' + mag % 10);
	while ((mag /= 10) > 0);
	if (us < 0)
		*--p = '-';
	size_t n = (size_t)(tmp + sizeof tmp - p);
	if (*pos + n < len)
		memcpy(buf + *pos, p, n);
	*pos += n;
}

static void put_str(char *buf, size_t len, size_t *pos, const char *s)
{
	size_t n = strlen(s);
	if (*pos + n < len)
		memcpy(buf + *pos, s, n);
	*pos += n;
}

int trace_format(const struct trace *t, char *buf, size_t len)
{
	size_t pos = 0;
	const char *sep = "";

	put_str(buf, len, &pos, "{\"phases\":{");
	for (int p = 0; p < PHASE_COUNT; p++) {
		if (p == PHASE_BOOT && !t->has_boot)
			continue;
		put_str(buf, len, &pos, sep);
		put_str(buf, len, &pos, "\"");
		put_str(buf, len, &pos, phase_names[p]);
		put_str(buf, len, &pos, "\":");
		put_ms(buf, len, &pos, t->phase_us[p]);
		sep = ",";
	}
	put_str(buf, len, &pos, "},\"total_ms\":");
	put_ms(buf, len, &pos, t->total_us);
	put_str(buf, len, &pos, ",\"overhead_ms\":");
	put_ms(buf, len, &pos, trace_overhead_us(t));
	if (t->image_cache != IMAGE_NONE) {
		put_str(buf, len, &pos, ",\"image_cache\":\"");
		put_str(buf, len, &pos, image_cache_names[t->image_cache]);
		put_str(buf, len, &pos, "\"");
	}
	if (t->pool != POOL_NONE) {
		put_str(buf, len, &pos, ",\"pool\":\"");
		put_str(buf, len, &pos, pool_use_names[t->pool]);
		put_str(buf, len, &pos, "\"");
	}
	if (t->has_steps) {
		for (int s = 0; s < STEP_COUNT; s++) {
			put_str(buf, len, &pos, s == 0 ? ",\"steps\":{\"" : ",\"");
			put_str(buf, len, &pos, step_names[s]);
			put_str(buf, len, &pos, "\":");
			put_ms(buf, len, &pos, t->step_us[s]);
		}
		put_str(buf, len, &pos, "}");
	}
	if (t->has_stop) {
		for (int s = 0; s < STOP_STEP_COUNT; s++) {
			put_str(buf, len, &pos, s == 0 ? ",\"stop_steps\":{\"" : ",\"");
			put_str(buf, len, &pos, stop_step_names[s]);
			put_str(buf, len, &pos, "\":");
			put_ms(buf, len, &pos, t->stop_us[s]);
		}
		put_str(buf, len, &pos, "}");
	}
	put_str(buf, len, &pos, "}");
	if (pos >= len)
		return -1;
	buf[pos] = '\0';
	return (int)pos;
}

/* Durations in a stored trace: 0 to 10^12 ms (31 years), so that the conversion to
 * microseconds cannot overflow, whatever a damaged store holds. */
#define TRACE_MS_MAX 1e12

static int ms_field(const json_t *obj, const char *key, int64_t *us)
{
	json_t *v = json_object_get(obj, key);
	if (!json_is_number(v) || !(json_number_value(v) >= 0 && json_number_value(v) <= TRACE_MS_MAX))
		return -EINVAL;
	*us = (int64_t)(json_number_value(v) * 1000.0 + 0.5);
	return 0;
}

int trace_from_json(struct trace *t, const json_t *j)
{
	json_t *phases = json_object_get(j, "phases");
	*t = (struct trace){0};
	if (!json_is_object(phases) || ms_field(j, "total_ms", &t->total_us) < 0 ||
	    image_cache_parse(json_object_get(j, "image_cache"), &t->image_cache) < 0 ||
	    pool_use_parse(json_object_get(j, "pool"), &t->pool) < 0)
		return -EINVAL;
	for (int p = 0; p < PHASE_COUNT; p++) {
		if (!json_object_get(phases, phase_names[p]))
			continue;
		if (ms_field(phases, phase_names[p], &t->phase_us[p]) < 0)
			return -EINVAL;
		if (p == PHASE_BOOT)
			t->has_boot = true;
	}
	json_t *steps = json_object_get(j, "steps");
	if (steps) {
		if (!json_is_object(steps))
			return -EINVAL;
		for (int s = 0; s < STEP_COUNT; s++)
			if (ms_field(steps, step_names[s], &t->step_us[s]) < 0)
				return -EINVAL;
		t->has_steps = true;
	}
	json_t *stop = json_object_get(j, "stop_steps");
	if (stop) {
		if (!json_is_object(stop))
			return -EINVAL;
		for (int s = 0; s < STOP_STEP_COUNT; s++)
			if (ms_field(stop, stop_step_names[s], &t->stop_us[s]) < 0)
				return -EINVAL;
		t->has_stop = true;
	}
	return 0;
}

/* ---- a stored trace's text, read without jansson ----
 *
 * fast_* read the subset of JSON that trace_to_json writes when dumped compact: no
 * whitespace, keys and string values of [a-z_], numbers, objects of numbers. Each returns
 * -1 ("not this form, ask jansson") on anything else, and also where jansson could answer
 * otherwise than the checks below (a number it would refuse, a key given twice), so that
 * the fast read is taken only when its answer is jansson's. */

#define FAST_KEY_MAX 31

static int fast_string(const char **p, char *out)
{
	const char *s = *p;
	size_t n = 0;
	if (*s++ != '"')
		return -1;
	for (; (*s >= 'a' && *s <= 'z') || *s == '_'; s++) {
		if (n == FAST_KEY_MAX)
			return -1;
		out[n++] = *s;
	}
	if (*s++ != '"')
		return -1;
	out[n] = '\0';
	*p = s;
	return 0;
}

static int fast_digits(const char **s)
{
	int n = 0;
	for (; **s >= '0' && **s <= '9'; (*s)++)
		n++;
	return n;
}

/* A JSON number by its grammar; jansson reads an integer (no fraction or exponent) with
 * strtoll and refuses one past int64: those long ones, and any that overflow a double, are
 * left to it. */
static int fast_number(const char **p, double *out)
{
	const char *s = *p;
	bool integer = true;
	int n;
	char buf[64], *end;
	if (*s == '-')
		s++;
	if (*s == '0')
		s++;
	else if (fast_digits(&s) == 0)
		return -1;
	if (*s == '.') {
		s++;
		integer = false;
		if (fast_digits(&s) == 0)
			return -1;
	}
	if (*s == 'e' || *s == 'E') {
		s++;
		integer = false;
		if (*s == '+' || *s == '-')
			s++;
		if (fast_digits(&s) == 0)
			return -1;
	}
	n = (int)(s - *p);
	if (n >= (int)sizeof buf || (integer && n > 15))
		return -1;
	memcpy(buf, *p, (size_t)n);
	buf[n] = '\0';
	*out = strtod(buf, &end);
	if (end != buf + n || isinf(*out))
		return -1;
	*p = s;
	return 0;
}

/* {"key":value,...}: fn reads each member's value (and returns -1 to decline). */
static int fast_object(const char **p, int (*fn)(void *arg, const char *key, const char **p), void *arg)
{
	char key[FAST_KEY_MAX + 1];
	if (*(*p)++ != '{')
		return -1;
	if (**p == '}') {
		(*p)++;
		return 0;
	}
	for (;;) {
		if (fast_string(p, key) < 0 || *(*p)++ != ':' || fn(arg, key, p) < 0)
			return -1;
		if (**p == '}') {
			(*p)++;
			return 0;
		}
		if (*(*p)++ != ',')
			return -1;
	}
}

/* A member that trace_from_json does not read: a number or a string is skipped. */
static int fast_skip(const char **p)
{
	char str[FAST_KEY_MAX + 1];
	double d;
	return **p == '"' ? fast_string(p, str) : fast_number(p, &d);
}

/* An object of durations named by names[0..n-1]: each in range (ms_field), none twice. */
struct fast_ms {
	const char *const *names;
	int n;
	int64_t *us;
	unsigned seen;
};

static int fast_ms_member(void *arg, const char *key, const char **p)
{
	struct fast_ms *m = arg;
	double v;
	for (int i = 0; i < m->n; i++) {
		if (strcmp(key, m->names[i]) != 0)
			continue;
		if ((m->seen & 1u << i) || fast_number(p, &v) < 0 || !(v >= 0 && v <= TRACE_MS_MAX))
			return -1;
		m->seen |= 1u << i;
		m->us[i] = (int64_t)(v * 1000.0 + 0.5);
		return 0;
	}
	return fast_skip(p);
}

enum { FAST_PHASES = 1, FAST_TOTAL = 2, FAST_IMAGE = 4, FAST_POOL = 8, FAST_STEPS = 16, FAST_STOP = 32 };

struct fast_trace {
	struct trace *t;
	unsigned seen;
	struct fast_ms phases, steps, stop;
};

static int fast_hit_miss(const char **p, const char *const names[3], int *out)
{
	char str[FAST_KEY_MAX + 1];
	if (fast_string(p, str) < 0)
		return -1;
	for (int i = 0; i < 3; i++)
		if (strcmp(str, names[i]) == 0) {
			*out = i;
			return 0;
		}
	return -1;
}

static int fast_trace_member(void *arg, const char *key, const char **p)
{
	static const char *const keys[] = {"phases", "total_ms", "image_cache", "pool", "steps", "stop_steps"};
	struct fast_trace *f = arg;
	unsigned bit = 0;
	double v;
	int i;
	for (i = 0; i < 6; i++)
		if (strcmp(key, keys[i]) == 0)
			bit = 1u << i;
	if (!bit)
		return fast_skip(p);
	if (f->seen & bit)
		return -1;
	f->seen |= bit;
	switch (bit) {
	case FAST_PHASES:
		return fast_object(p, fast_ms_member, &f->phases);
	case FAST_TOTAL:
		if (fast_number(p, &v) < 0 || !(v >= 0 && v <= TRACE_MS_MAX))
			return -1;
		f->t->total_us = (int64_t)(v * 1000.0 + 0.5);
		return 0;
	case FAST_IMAGE:
		if (fast_hit_miss(p, image_cache_names, &i) < 0)
			return -1;
		f->t->image_cache = (enum image_cache)i;
		return 0;
	case FAST_POOL:
		if (fast_hit_miss(p, pool_use_names, &i) < 0)
			return -1;
		f->t->pool = (enum pool_use)i;
		return 0;
	case FAST_STEPS:
		return fast_object(p, fast_ms_member, &f->steps);
	default:
		return fast_object(p, fast_ms_member, &f->stop);
	}
}

static int fast_trace(struct trace *t, const char *text)
{
	struct fast_trace f = {
		.t = t,
		.phases = {.names = phase_names, .n = PHASE_COUNT, .us = t->phase_us},
		.steps = {.names = step_names, .n = STEP_COUNT, .us = t->step_us},
		.stop = {.names = stop_step_names, .n = STOP_STEP_COUNT, .us = t->stop_us},
	};
	const char *p = text;
	if (fast_object(&p, fast_trace_member, &f) < 0 || *p != '\0' || !(f.seen & FAST_PHASES) ||
	    !(f.seen & FAST_TOTAL))
		return -1;
	/* steps and stop_steps count only whole (trace_from_json refuses a part) */
	if (((f.seen & FAST_STEPS) && f.steps.seen != (1u << STEP_COUNT) - 1) ||
	    ((f.seen & FAST_STOP) && f.stop.seen != (1u << STOP_STEP_COUNT) - 1))
		return -1;
	t->has_boot = (f.phases.seen & 1u << PHASE_BOOT) != 0;
	t->has_steps = (f.seen & FAST_STEPS) != 0;
	t->has_stop = (f.seen & FAST_STOP) != 0;
	return 0;
}

int trace_from_text(struct trace *t, const char *text)
{
	json_t *j;
	int rc;
	*t = (struct trace){0};
	if (fast_trace(t, text) == 0)
		return 0;
	*t = (struct trace){0};
	if (!(j = json_loads(text, 0, NULL)))
		return -EINVAL;
	rc = trace_from_json(t, j);
	json_decref(j);
	return rc;
}

json_t *node_timing_to_json(const struct node_timing *n)
{
	json_t *j = json_pack("{s:I, s:I, s:I, s:I, s:I}", "prepare_us", (json_int_t)n->prepare_us, "network_us",
	                      (json_int_t)n->network_us, "spawn_us", (json_int_t)n->spawn_us, "boot_us",
	                      (json_int_t)n->boot_us, "work_us", (json_int_t)n->work_us);
	if (n->image_cache != IMAGE_NONE)
		json_object_set_new(j, "image_cache", json_string(image_cache_names[n->image_cache]));
	if (n->pool != POOL_NONE)
		json_object_set_new(j, "pool", json_string(pool_use_names[n->pool]));
	if (n->has_steps) {
		json_t *steps = json_object();
		char key[32];
		for (int s = 0; s < STEP_COUNT; s++) {
			snprintf(key, sizeof key, "%s_us", step_names[s]);
			json_object_set_new(steps, key, json_integer((json_int_t)n->step_us[s]));
		}
		json_object_set_new(j, "steps", steps);
	}
	return j;
}

/* A node reports durations; anything negative or above an hour is a broken clock or a
 * hostile peer, and is refused rather than stored. */
static int us_field(const json_t *obj, const char *key, int64_t *out)
{
	json_t *v = json_object_get(obj, key);
	if (!v) {
		*out = 0;
		return 0;
	}
	if (!json_is_integer(v) || json_integer_value(v) < 0 ||
	    json_integer_value(v) > 3600LL * 1000000)
		return -EINVAL;
	*out = json_integer_value(v);
	return 0;
}

/* The steps split their phases exactly: a node whose steps do not add up is broken. */
static int steps_from_json(struct node_timing *n, const json_t *steps)
{
	char key[32];
	if (!steps)
		return 0;
	if (!json_is_object(steps))
		return -EINVAL;
	for (int s = 0; s < STEP_COUNT; s++) {
		snprintf(key, sizeof key, "%s_us", step_names[s]);
		if (!json_object_get(steps, key) || us_field(steps, key, &n->step_us[s]) < 0)
			return -EINVAL;
	}
	if (n->step_us[STEP_ARTIFACT] + n->step_us[STEP_ENVIRONMENT] != n->prepare_us ||
	    n->step_us[STEP_CONFIG] + n->step_us[STEP_CALL] != n->spawn_us)
		return -EINVAL;
	n->has_steps = true;
	return 0;
}

int node_timing_from_json(struct node_timing *n, const json_t *j)
{
	*n = (struct node_timing){0};
	if (!json_is_object(j))
		return -EINVAL;
	if (us_field(j, "prepare_us", &n->prepare_us) < 0 || us_field(j, "network_us", &n->network_us) < 0 ||
	    us_field(j, "spawn_us", &n->spawn_us) < 0 || us_field(j, "boot_us", &n->boot_us) < 0 ||
	    us_field(j, "work_us", &n->work_us) < 0 || image_cache_parse(json_object_get(j, "image_cache"), &n->image_cache) < 0 ||
	    pool_use_parse(json_object_get(j, "pool"), &n->pool) < 0)
		return -EINVAL;
	return steps_from_json(n, json_object_get(j, "steps"));
}

json_t *stop_timing_to_json(const struct stop_timing *s)
{
	json_t *j = json_object();
	char key[32];
	for (int i = 0; i < STOP_STEP_COUNT; i++) {
		snprintf(key, sizeof key, "%s_us", stop_step_names[i]);
		json_object_set_new(j, key, json_integer((json_int_t)s->step_us[i]));
	}
	return j;
}

int stop_timing_from_json(struct stop_timing *s, const json_t *j)
{
	char key[32];
	*s = (struct stop_timing){0};
	if (!json_is_object(j))
		return -EINVAL;
	for (int i = 0; i < STOP_STEP_COUNT; i++) {
		snprintf(key, sizeof key, "%s_us", stop_step_names[i]);
		if (!json_object_get(j, key) || us_field(j, key, &s->step_us[i]) < 0)
			return -EINVAL;
	}
	return 0;
}
