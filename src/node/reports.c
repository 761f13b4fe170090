#include "node/reports.h"

#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"

struct report {
	struct wire_report r;
	int64_t received_us;
	struct report *next;
};

struct report_queue {
	struct report *queued, **tail; /* not yet sent */
	struct report *in_flight;      /* sent, answer pending */
	void (*on_push)(void *arg);
	void *arg;
};

struct report_queue *reports_new(void (*on_push)(void *arg), void *arg)
{
	struct report_queue *q = calloc(1, sizeof *q);
	if (!q)
		fatal("calloc");
	q->tail = &q->queued;
	q->on_push = on_push;
	q->arg = arg;
	return q;
}

static void list_free(struct report *r)
{
	while (r) {
		struct report *next = r->next;
		free(r);
		r = next;
	}
}

void reports_free(struct report_queue *q)
{
	if (!q)
		return;
	list_free(q->queued);
	list_free(q->in_flight);
	free(q);
}

void reports_push(struct report_queue *q, const struct wire_report *r, int64_t received_us)
{
	struct report *e = calloc(1, sizeof *e);
	if (!e)
		fatal("calloc");
	e->r = *r;
	e->received_us = received_us;
	*q->tail = e;
	q->tail = &e->next;
	if (q->on_push)
		q->on_push(q->arg);
}

json_t *reports_take(struct report_queue *q)
{
	int64_t now = clock_mono_us();
	json_t *list;
	if (q->in_flight || !q->queued)
		return NULL;
	list = json_array();
	/* at most WIRE_REPORTS_MAX in one POST (the core refuses more with 400): the rest go
	 * in the next, once this one is answered */
	struct report *e = q->queued, *last = NULL;
	for (int n = 0; e && n < WIRE_REPORTS_MAX; n++, last = e, e = e->next) {
		if (e->r.has_timing)
			e->r.timing.work_us = now - e->received_us;
		json_array_append_new(list, wire_report_to_json(&e->r));
	}
	q->in_flight = q->queued;
	last->next = NULL;
	q->queued = e;
	if (!e)
		q->tail = &q->queued;
	return json_pack("{s:o}", "reports", list);
}

void reports_taken(struct report_queue *q)
{
	list_free(q->in_flight);
	q->in_flight = NULL;
}

void reports_requeue(struct report_queue *q)
{
	struct report *last = q->in_flight;
	if (!last)
		return;
	while (last->next)
		last = last->next;
	last->next = q->queued;
	if (!q->queued)
		q->tail = &last->next;
	q->queued = q->in_flight;
	q->in_flight = NULL;
}

void reports_drop(struct report_queue *q)
{
	log_warnx("the core refused a status report (400); dropping it");
	list_free(q->in_flight);
	q->in_flight = NULL;
}

bool reports_pending(const struct report_queue *q) { return q->queued || q->in_flight; }
bool reports_in_flight(const struct report_queue *q) { return q->in_flight != NULL; }
