/* reports — the node's status reports waiting to go to the core, in order. Instances push
 * (instance.c); the agent takes them as one POST, and puts them back in front when the
 * core did not take them. Nothing here sends: on each push the queue calls its owner's
 * callback, which decides when (at once, or at the next --notify-batch-ms tick). */
#ifndef MICROVIM_REPORTS_H
#define MICROVIM_REPORTS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/wire.h"

struct report_queue;

struct report_queue *reports_new(void (*on_push)(void *arg), void *arg);
void reports_free(struct report_queue *q);
/* received_us: when the node got the instance's assignment (0: none, e.g. re-attached);
 * a report with timing gets work_us (received -> sent) when it is taken. */
void reports_push(struct report_queue *q, const struct wire_report *r, int64_t received_us);
/* {"reports": [...]} of the first WIRE_REPORTS_MAX queued (what one POST may carry), now in flight; NULL when nothing is queued or a
 * batch is already in flight. */
json_t *reports_take(struct report_queue *q);
/* The batch in flight: the core took it (drop), or it did not (back in front). */
void reports_taken(struct report_queue *q);
void reports_requeue(struct report_queue *q);
/* The core refused the batch as malformed: sending it again would be refused again. */
void reports_drop(struct report_queue *q);
bool reports_pending(const struct report_queue *q); /* queued or in flight */
bool reports_in_flight(const struct report_queue *q);

#endif
