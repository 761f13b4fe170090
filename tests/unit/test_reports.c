/* test_reports — the node's report queue: a batch carries at most WIRE_REPORTS_MAX (the
 * core refuses more with 400, and a refused batch is dropped), the rest follow in order,
 * and a batch put back goes in front of what came meanwhile. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/wire.h"
#include "node/reports.h"
#include "unit.h"

static void push(struct report_queue *q, int i)
{
	struct wire_report r = {.state = INST_RUNNING};
	snprintf(r.id, sizeof r.id, "%016x", i);
	reports_push(q, &r, 0);
}

/* The batch's size, and whether its ids are first, first+1, ... */
static size_t batch_check(json_t *body, int first)
{
	json_t *list = json_object_get(body, "reports");
	for (size_t i = 0; i < json_array_size(list); i++) {
		char want[MV_ID_LEN + 1];
		snprintf(want, sizeof want, "%016x", first + (int)i);
		CHECK_STR(json_string_value(json_object_get(json_array_get(list, i), "id")), want);
	}
	return json_array_size(list);
}

static void test_batches_bounded_in_order(void)
{
	struct report_queue *q = reports_new(NULL, NULL);
	const int total = WIRE_REPORTS_MAX + 904;
	json_t *b;
	for (int i = 0; i < total; i++)
		push(q, i);
	b = reports_take(q);
	CHECK_EQ_INT(batch_check(b, 0), WIRE_REPORTS_MAX);
	CHECK(reports_take(q) == NULL); /* one in flight at a time */
	json_decref(b);
	push(q, total);                 /* came while the batch was out */
	reports_requeue(q);             /* not taken: back in front */
	b = reports_take(q);
	CHECK_EQ_INT(batch_check(b, 0), WIRE_REPORTS_MAX);
	json_decref(b);
	reports_taken(q);
	b = reports_take(q);
	CHECK_EQ_INT(batch_check(b, WIRE_REPORTS_MAX), 905);
	json_decref(b);
	reports_taken(q);
	CHECK(!reports_pending(q));
	push(q, 7); /* the queue's tail is right after a partial take */
	b = reports_take(q);
	CHECK_EQ_INT(batch_check(b, 7), 1);
	json_decref(b);
	reports_free(q);
}

int main(void)
{
	RUN(test_batches_bounded_in_order);
	UNIT_END();
}
