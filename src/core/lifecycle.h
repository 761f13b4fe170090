/* lifecycle — an instance's life in the core as one table: state × event → next state and
 * the actions to carry out (s6-supervise's actions[state][event]; Nomad's client state
 * machine). Pure: no I/O. cluster.c looks every event up here and carries the actions out;
 * an event the state does not take is refused in that one place, and logged. The table is
 * printed in docs/architecture.md.
 *
 * Two facts beside the state make an event a repeat rather than a step (a report that
 * came twice after a reconnect, a second DELETE): whether the guest said it is ready and
 * whether a stop was asked. An entry names the facts that turn it into "nothing to do". */
#ifndef MICROVIM_LIFECYCLE_H
#define MICROVIM_LIFECYCLE_H

#include <stdbool.h>
#include <stdint.h>

#include "common/model.h"

enum inst_event {
	IEV_PLACE,           /* the scheduler chose a node for it */
	IEV_DISPATCHED,      /* its node took the start (acknowledged on its long-poll); not stored */
	IEV_REPORT_STARTING, /* its node reports: ... */
	IEV_REPORT_RUNNING,
	IEV_REPORT_READY,    /* running, and the guest printed its ready marker */
	IEV_REPORT_STOPPED,
	IEV_REPORT_EXITED,
	IEV_REPORT_FAILED,
	IEV_STOP,            /* a client asked it to stop (DELETE of a live instance) */
	IEV_START,           /* a client asked an ended instance to run again, on its node (POST .../start) */
	IEV_START_NO_NODE,   /* the same, for one that never had a node (stopped while pending) */
	IEV_RESTART,         /* a client asked a running instance to stop and run again (POST .../restart) */
	IEV_STOP_NO_NODE,    /* the same, for an instance on a node the core does not know */
	IEV_REMOVE,          /* a client removed it (DELETE of an ended instance) */
	IEV_NODE_DOWN,       /* its node stopped heartbeating (or was cut off by a partition) */
	IEV_REPLACE,         /* lost, with "restart": "on-lost": to be placed again */
	IEV_NODE_HAS_IT,     /* its node registered (its restart, the core's, a healed partition) listing it alive */
	IEV_NODE_LACKS_IT,   /* its node registered without it */
	IEV_COUNT
};

extern const char *const inst_event_names[IEV_COUNT];

/* The facts beside the state (lifecycle_step's flags). */
enum {
	LF_READY = 1u << 0,          /* the guest printed its ready marker */
	LF_STOP_REQUESTED = 1u << 1, /* a client asked it to stop */
};

/* What a step does, in this order (the order of the bits): in memory, then the store, then
 * (once stored) the world: metrics, the event stream, the waiting clients, the nodes. */
enum {
	IA_RELEASE = 1u << 0,       /* its vCPUs and memory no longer count on its node */
	IA_SET_NODE = 1u << 1,      /* placed on the event's node (its lost_node forgotten) */
	IA_RESERVE = 1u << 2,       /* its vCPUs and memory count on its node */
	IA_DESIRE_STOP = 1u << 3,   /* a stop was asked */
	IA_CLEAR_ERROR = 1u << 4,
	IA_ERROR_NODE_DOWN = 1u << 5, /* error: its node stopped heartbeating */
	IA_ERROR_GONE = 1u << 6,    /* error, when it has none: its node no longer has it */
	IA_REPORT = 1u << 7,        /* take the report's exit code, error (when it has none yet) and ready */
	IA_TRACE = 1u << 8,         /* compute the phase trace (an instantiation this core saw from its request) */
	IA_FORGET_NODE = 1u << 9,   /* unplaced, remembering the lost node (for adoption); no trace, not ready */
	IA_STORE = 1u << 10,        /* write its status row */
	IA_DELETE = 1u << 11,       /* delete its row and forget it (memory freed last) */
	IA_MARK_SCHEDULED = 1u << 12, /* the schedule phase ends */
	IA_OBSERVE = 1u << 13,      /* the trace goes to the metrics (once final) */
	IA_PUBLISH = 1u << 14,      /* the event stream */
	IA_WAKE = 1u << 15,         /* clients waiting for a state */
	IA_SEND_START = 1u << 16,   /* queue a start for its node */
	IA_SEND_STOP = 1u << 17,    /* queue a stop for its node */
	IA_SEND_STOP_IF_ASKED = 1u << 18, /* queue a stop again when one was asked */
	IA_SEND_PURGE = 1u << 19,   /* its node may remove its files */
	/* its row (IA_STORE) needs no flush to disk before the answers go: the node's word that
	 * it is up, which the node gives again when it registers (store.h, "Durability") */
	IA_STORE_NO_FLUSH = 1u << 20,
	/* a new run begins (wire.h): no stop asked, not ready, no exit code, error or trace;
	 * its trace measured again from this request on (the accept phase) */
	IA_NEW_RUN = 1u << 21,
};

enum transition_kind {
	T_UNSET = 0, /* a cell the table forgot (a test fails on any); taken as T_REFUSE */
	T_REFUSE,    /* the state does not take the event: a bug or a stray message; logged, nothing done */
	T_MOVE,      /* to next (which may be the same state) with the actions */
	T_REPEAT,    /* already done (a repeat): nothing to do */
};

struct inst_transition {
	uint8_t kind;          /* enum transition_kind */
	uint8_t next;          /* enum inst_state */
	uint8_t repeat_if;     /* LF_* facts that make it a T_REPEAT */
	uint32_t actions;      /* IA_* */
};

/* The step for event e in state s with the facts `flags`: a T_MOVE, T_REPEAT or T_REFUSE. */
struct inst_transition lifecycle_step(enum inst_state s, enum inst_event e, unsigned flags);
/* The table's raw entry (for the tests and the docs). */
const struct inst_transition *lifecycle_entry(enum inst_state s, enum inst_event e);
/* The report event for a state a node reports (starting .. failed), ready for "running" with
 * the marker seen; -1 for a state a node never reports. */
int lifecycle_report_event(enum inst_state reported, bool ready);

#endif
