#include "core/lifecycle.h"

#include <stddef.h>

const char *const inst_event_names[IEV_COUNT] = {
	[IEV_PLACE] = "place",
	[IEV_DISPATCHED] = "dispatched",
	[IEV_REPORT_STARTING] = "report starting",
	[IEV_REPORT_RUNNING] = "report running",
	[IEV_REPORT_READY] = "report ready",
	[IEV_REPORT_STOPPED] = "report stopped",
	[IEV_REPORT_EXITED] = "report exited",
	[IEV_REPORT_FAILED] = "report failed",
	[IEV_STOP] = "stop",
	[IEV_START] = "start",
	[IEV_START_NO_NODE] = "start (no node)",
	[IEV_RESTART] = "restart",
	[IEV_STOP_NO_NODE] = "stop (node unknown)",
	[IEV_REMOVE] = "remove",
	[IEV_NODE_DOWN] = "node down",
	[IEV_REPLACE] = "replace",
	[IEV_NODE_HAS_IT] = "node has it",
	[IEV_NODE_LACKS_IT] = "node lacks it",
};

#define MOVE(to, acts) {.kind = T_MOVE, .next = (to), .actions = (acts)}
#define MOVE_UNLESS(to, acts, facts) {.kind = T_MOVE, .next = (to), .actions = (acts), .repeat_if = (facts)}
#define REPEAT {.kind = T_REPEAT}
#define REFUSE {.kind = T_REFUSE}

/* What a change of state always does once stored: tell the event stream and the clients. */
#define CHANGED (IA_STORE | IA_PUBLISH | IA_WAKE)
/* A node's report that the instance is up: stored, but its loss in a crash of the database
 * server costs nothing (the node reports it again when it registers), so it waits for no
 * disk flush; how an instance ended is the node's to forget once purged, and is flushed. */
#define UP_BY_REPORT (IA_REPORT | IA_TRACE | CHANGED | IA_OBSERVE | IA_STORE_NO_FLUSH)
/* A node's report that the instance ended. */
#define ENDED_BY_REPORT (IA_REPORT | IA_RELEASE | CHANGED)
/* A node's report of how an instance the core had given up as lost ended. */
#define ENDED_BY_NODE_AFTER_LOST (IA_CLEAR_ERROR | IA_REPORT | CHANGED)
/* A client asked it to run again on its node: its start goes there (the node ends what is
 * left of the previous run first). The schedule phase is empty: the node is the same. */
#define RUN_AGAIN (IA_NEW_RUN | CHANGED | IA_MARK_SCHEDULED | IA_SEND_START)
/* A copy the core does not count on any more ended: its node may remove it. */
#define ENDED_COPY(s) MOVE(s, IA_SEND_PURGE)

/* Rows that are alike for the four ended states; s is the row's own state. */
#define ENDED_ROW(s)                                                                                   \
	{                                                                                              \
		[IEV_PLACE] = REFUSE, [IEV_DISPATCHED] = REPEAT, [IEV_REPORT_STARTING] = REPEAT,       \
		[IEV_REPORT_RUNNING] = REPEAT, [IEV_REPORT_READY] = REPEAT,                            \
		[IEV_REPORT_STOPPED] = ENDED_COPY(s), [IEV_REPORT_EXITED] = ENDED_COPY(s),                   \
		[IEV_REPORT_FAILED] = ENDED_COPY(s), [IEV_STOP] = REFUSE, [IEV_STOP_NO_NODE] = REFUSE,    \
		[IEV_START] = MOVE(INST_SCHEDULED, IA_RESERVE | RUN_AGAIN),                            \
		[IEV_START_NO_NODE] = MOVE(INST_PENDING, IA_NEW_RUN | CHANGED),                        \
		[IEV_RESTART] = MOVE(INST_SCHEDULED, IA_RESERVE | RUN_AGAIN),                          \
		[IEV_REMOVE] = MOVE(s, IA_DELETE | IA_SEND_PURGE), [IEV_NODE_DOWN] = REFUSE,           \
		[IEV_REPLACE] = REFUSE, [IEV_NODE_HAS_IT] = MOVE(s, IA_SEND_STOP),                     \
		[IEV_NODE_LACKS_IT] = REPEAT,                                                          \
	}

/* The rows of an instance placed but not yet running; s is the row's own state. */
#define PLACED_ROW(s)                                                                                  \
	[IEV_PLACE] = REFUSE,                                                                          \
	[IEV_REPORT_RUNNING] = MOVE(INST_RUNNING, UP_BY_REPORT),                                       \
	[IEV_REPORT_READY] = MOVE(INST_RUNNING, UP_BY_REPORT),                                         \
	[IEV_REPORT_STOPPED] = MOVE(INST_STOPPED, ENDED_BY_REPORT),                                    \
	[IEV_REPORT_EXITED] = MOVE(INST_EXITED, ENDED_BY_REPORT),                                      \
	[IEV_REPORT_FAILED] = MOVE(INST_FAILED, ENDED_BY_REPORT),                                      \
	[IEV_STOP] = MOVE_UNLESS(s, IA_DESIRE_STOP | IA_STORE | IA_SEND_STOP, LF_STOP_REQUESTED),       \
	[IEV_STOP_NO_NODE] = MOVE(INST_STOPPED, IA_DESIRE_STOP | IA_RELEASE | CHANGED),                \
	[IEV_START] = REFUSE, [IEV_START_NO_NODE] = REFUSE, [IEV_RESTART] = REFUSE,                     \
	[IEV_REMOVE] = REFUSE,                                                                         \
	[IEV_NODE_DOWN] = MOVE(INST_LOST, IA_RELEASE | IA_ERROR_NODE_DOWN | CHANGED),                  \
	[IEV_REPLACE] = REFUSE,                                                                        \
	[IEV_NODE_HAS_IT] = MOVE(s, IA_RESERVE | IA_SEND_START | IA_SEND_STOP_IF_ASKED),               \
	[IEV_NODE_LACKS_IT] = MOVE(s, IA_RESERVE | IA_SEND_START | IA_SEND_STOP_IF_ASKED)

static const struct inst_transition table[INST_STATE_COUNT][IEV_COUNT] = {
	[INST_PENDING] = {
		[IEV_PLACE] = MOVE(INST_SCHEDULED, IA_SET_NODE | IA_RESERVE | IA_STORE | IA_PUBLISH |
		                                   IA_MARK_SCHEDULED | IA_SEND_START),
		[IEV_DISPATCHED] = REPEAT, /* a start from before it was lost */
		/* a pending instance has no node: no node reports on it */
		[IEV_REPORT_STARTING] = REFUSE, [IEV_REPORT_RUNNING] = REFUSE, [IEV_REPORT_READY] = REFUSE,
		[IEV_REPORT_STOPPED] = REFUSE, [IEV_REPORT_EXITED] = REFUSE, [IEV_REPORT_FAILED] = REFUSE,
		[IEV_STOP] = MOVE(INST_STOPPED, IA_DESIRE_STOP | CHANGED),
		[IEV_STOP_NO_NODE] = MOVE(INST_STOPPED, IA_DESIRE_STOP | CHANGED),
		[IEV_START] = REFUSE, [IEV_START_NO_NODE] = REFUSE, [IEV_RESTART] = REFUSE,
		[IEV_REMOVE] = REFUSE,
		[IEV_NODE_DOWN] = REFUSE,
		[IEV_REPLACE] = REFUSE,
		/* lost, not placed again yet, and its old node is back with it: adopted there */
		[IEV_NODE_HAS_IT] = MOVE(INST_RUNNING, IA_SET_NODE | IA_CLEAR_ERROR | IA_RESERVE | CHANGED),
		[IEV_NODE_LACKS_IT] = REFUSE,
	},
	[INST_SCHEDULED] = {
		PLACED_ROW(INST_SCHEDULED),
		[IEV_DISPATCHED] = MOVE(INST_STARTING, IA_PUBLISH),
		[IEV_REPORT_STARTING] = MOVE(INST_STARTING, IA_REPORT | CHANGED | IA_STORE_NO_FLUSH),
	},
	[INST_STARTING] = {
		PLACED_ROW(INST_STARTING),
		[IEV_DISPATCHED] = REPEAT,
		[IEV_REPORT_STARTING] = REPEAT,
	},
	[INST_RUNNING] = {
		[IEV_PLACE] = REFUSE,
		[IEV_DISPATCHED] = REPEAT,
		[IEV_REPORT_STARTING] = REPEAT,
		[IEV_REPORT_RUNNING] = REPEAT,
		[IEV_REPORT_READY] = MOVE_UNLESS(INST_RUNNING, UP_BY_REPORT, LF_READY),
		[IEV_REPORT_STOPPED] = MOVE(INST_STOPPED, ENDED_BY_REPORT),
		[IEV_REPORT_EXITED] = MOVE(INST_EXITED, ENDED_BY_REPORT),
		[IEV_REPORT_FAILED] = MOVE(INST_FAILED, ENDED_BY_REPORT),
		[IEV_STOP] = MOVE_UNLESS(INST_RUNNING, IA_DESIRE_STOP | IA_STORE | IA_SEND_STOP, LF_STOP_REQUESTED),
		[IEV_STOP_NO_NODE] = MOVE(INST_STOPPED, IA_DESIRE_STOP | IA_RELEASE | CHANGED),
		/* its vCPUs and memory stay held on its node through the restart */
		[IEV_START] = REFUSE, [IEV_START_NO_NODE] = REFUSE, [IEV_RESTART] = MOVE(INST_SCHEDULED, RUN_AGAIN),
		[IEV_REMOVE] = REFUSE,
		[IEV_NODE_DOWN] = MOVE(INST_LOST, IA_RELEASE | IA_ERROR_NODE_DOWN | CHANGED),
		[IEV_REPLACE] = REFUSE,
		[IEV_NODE_HAS_IT] = MOVE(INST_RUNNING, IA_RESERVE | IA_SEND_STOP_IF_ASKED),
		[IEV_NODE_LACKS_IT] = MOVE(INST_LOST, IA_ERROR_GONE | CHANGED),
	},
	[INST_STOPPED] = ENDED_ROW(INST_STOPPED),
	[INST_EXITED] = ENDED_ROW(INST_EXITED),
	[INST_FAILED] = ENDED_ROW(INST_FAILED),
	[INST_LOST] = {
		[IEV_PLACE] = REFUSE, [IEV_DISPATCHED] = REPEAT,
		/* its node was declared down: what it says of the instance now is stale, until it
		 * registers again and lists it (NODE_HAS_IT) */
		[IEV_REPORT_STARTING] = REPEAT, [IEV_REPORT_RUNNING] = REPEAT, [IEV_REPORT_READY] = REPEAT,
		/* but how it ended is news: lost was the core's guess (its node went down, or came
		 * back without it alive, e.g. reaped while the node was away); the node that ran it
		 * says how it ended, and its account replaces the guess (nothing was held since) */
		[IEV_REPORT_STOPPED] = MOVE(INST_STOPPED, ENDED_BY_NODE_AFTER_LOST),
		[IEV_REPORT_EXITED] = MOVE(INST_EXITED, ENDED_BY_NODE_AFTER_LOST),
		[IEV_REPORT_FAILED] = MOVE(INST_FAILED, ENDED_BY_NODE_AFTER_LOST),
		[IEV_STOP] = REFUSE, [IEV_STOP_NO_NODE] = REFUSE,
		[IEV_START] = REFUSE, [IEV_START_NO_NODE] = REFUSE, [IEV_RESTART] = REFUSE,
		[IEV_REMOVE] = MOVE(INST_LOST, IA_DELETE | IA_SEND_PURGE),
		[IEV_NODE_DOWN] = REFUSE,
		[IEV_REPLACE] = MOVE_UNLESS(INST_PENDING, IA_FORGET_NODE | CHANGED, LF_STOP_REQUESTED),
		[IEV_NODE_HAS_IT] = MOVE(INST_RUNNING, IA_CLEAR_ERROR | IA_RESERVE | CHANGED | IA_SEND_STOP_IF_ASKED),
		[IEV_NODE_LACKS_IT] = REPEAT,
	},
};

const struct inst_transition *lifecycle_entry(enum inst_state s, enum inst_event e)
{
	return &table[s][e];
}

struct inst_transition lifecycle_step(enum inst_state s, enum inst_event e, unsigned flags)
{
	struct inst_transition t = table[s][e];
	if (t.kind == T_UNSET)
		t = (struct inst_transition)REFUSE;
	else if (t.kind == T_MOVE && (t.repeat_if & flags))
		t = (struct inst_transition)REPEAT;
	return t;
}

int lifecycle_report_event(enum inst_state reported, bool ready)
{
	switch (reported) {
	case INST_STARTING: return IEV_REPORT_STARTING;
	case INST_RUNNING: return ready ? IEV_REPORT_READY : IEV_REPORT_RUNNING;
	case INST_STOPPED: return IEV_REPORT_STOPPED;
	case INST_EXITED: return IEV_REPORT_EXITED;
	case INST_FAILED: return IEV_REPORT_FAILED;
	default: return -1;
	}
}
