/* lifecycle — an instance's life on its node as one table: state × event → next state and
 * actions (s6-supervise's actions[state][event]). Pure: no I/O; instance.c carries the
 * actions out, and refuses (and logs) in one place an event its state does not take. The
 * table is printed in docs/architecture.md.
 *
 * The states say what is in progress, so that no boolean has to: a blob still on its
 * way, the start on a worker, a stop call on a worker (while it runs, the process is not
 * reaped: its pid must not be reused under the signal), the grace period running out. Two
 * facts stay beside the state: a stop was asked (the end is then "stopped"; asked while
 * the instance was still starting, it is carried out once started), and the guest said it
 * is ready.
 *
 * A start of a newer run (POST /v1/instances/ID/start or /restart at the core) is the
 * third fact, kept by instance.c as the run asked for: a live instance is stopped first
 * (as for a stop), and the new run begins at its end, from "ended" back to "fetching". */
#ifndef MICROVIM_NODE_LIFECYCLE_H
#define MICROVIM_NODE_LIFECYCLE_H

#include <stdint.h>

enum ni_state {
	NI_RECOVERING,      /* read back from its record by a restarted node */
	NI_FETCHING,        /* prepare: image blobs on their way from the core */
	NI_FETCH_FAILED,    /* a blob failed; waiting for the others before it ends failed */
	NI_SPAWNING,        /* prepare, network and the driver's start on a worker */
	NI_RUNNING,
	NI_STOPPING,        /* a stop call on a worker */
	NI_STOPPING_FORCE,  /* the same, and the grace period passed: force when it returns */
	NI_STOPPING_EXITED, /* the same, and the process ended: reaped when the call returns */
	NI_STOP_SENT,       /* stop delivered; waiting for the end (forced at the grace period) */
	NI_ENDED,           /* its final state is recorded and reported */
	NI_PURGED,          /* its files are removed; freed when its last worker job returns */
	NI_STATE_COUNT
};

enum ni_event {
	NE_BLOB_FAILED,   /* an image blob could not be fetched or did not match its digest */
	NE_BLOBS_DONE,    /* every blob resolved (each fetched or failed) */
	NE_SPAWNED,       /* the driver's start returned a handle */
	NE_SPAWN_FAILED,  /* prepare, network or start failed */
	NE_READY,         /* its ready marker appeared on the serial log */
	NE_EXITED,        /* its process's pidfd became readable */
	NE_GONE,          /* the toolstack says the domain is gone (status poll or exit event) */
	NE_STOP,          /* a stop assignment (or the node's exit with --stop-instances-on-exit) */
	NE_STOP_DONE,     /* a stop call returned from its worker */
	NE_GRACE,         /* the grace period after the gentle stop passed */
	NE_START_AGAIN,   /* a start assignment for an instance it already has (sent again) */
	NE_RESTART,       /* a start of a newer run (common/wire.h) than the one it has: end that one, then run anew */
	NE_PURGE,         /* a purge assignment: the core forgot it */
	NE_ADOPTED,       /* recovery: the record said spawning and the driver found what was started */
	NE_NOT_STARTED,   /* recovery: the record said spawning and nothing was started */
	NE_REATTACHED,    /* recovery: the record said running and it still runs (same pid and start time) */
	NE_ENDED_AWAY,    /* recovery: the record said running and it ended while the node was down */
	NE_RECORD_ENDED,  /* recovery: the record says it ended */
	NE_COUNT
};

extern const char *const ni_state_names[NI_STATE_COUNT];
extern const char *const ni_event_names[NE_COUNT];

enum {
	NF_READY = 1u << 0,          /* the guest printed its ready marker */
	NF_STOP_REQUESTED = 1u << 1, /* a stop was asked */
};

/* The actions, in the order instance.c carries them out. */
enum {
	NA_REAP = 1u << 0,          /* collect the exit status (a spurious wakeup ends the step here) */
	NA_DESIRE_STOP = 1u << 1,   /* a stop was asked: the end will be "stopped" */
	NA_NOTE_ERROR = 1u << 2,    /* keep the event's error (the first one) */
	NA_END = 1u << 3,           /* the final state (from the exit, the stop asked, the error); network removed */
	NA_READY = 1u << 4,         /* the boot phase ends: ready */
	NA_RECORD = 1u << 5,        /* write its record (the state it is in) */
	NA_REPORT = 1u << 6,        /* report where it stands to the core */
	NA_WATCH = 1u << 7,         /* follow its end: pidfd, or the toolstack (events, or a poll) */
	NA_SPAWN = 1u << 8,         /* prepare, network and the driver's start, on a worker */
	NA_STOP_GENTLE = 1u << 9,   /* a gentle stop call, on a worker */
	NA_STOP_FORCE = 1u << 10,   /* a forced stop call, on a worker */
	NA_ARM_GRACE = 1u << 11,    /* the kill timer, at the grace period */
	NA_STATUS_CHECK = 1u << 12, /* ask the toolstack now (a domain just stopped) */
	NA_BOOT_WATCH = 1u << 13,   /* watch the serial log for the ready marker */
	NA_STOP_IF_ASKED = 1u << 14, /* just started: carry out a stop asked meanwhile */
	NA_FORGET = 1u << 15,       /* remove its dir and drop it: nothing was started */
	NA_REMOVE = 1u << 16,       /* remove its dir; freed when the last job returns */
	NA_RESTART_IF_ASKED = 1u << 17, /* just ended: begin the newer run asked meanwhile */
	NA_NEW_RUN = 1u << 18,      /* the newer run begins: its facts reset, prepare again (blobs, then spawn) */
};

enum {
	NT_UNSET = 0, /* a cell the table forgot (a test fails on any); taken as NT_REFUSE */
	NT_REFUSE,    /* the state does not take the event: logged, nothing done */
	NT_MOVE,      /* to next (maybe the same state) with the actions */
	NT_REPEAT,    /* already done, or late news of it: nothing to do */
};

struct ni_transition {
	uint8_t kind;      /* NT_* */
	uint8_t next;      /* enum ni_state */
	uint8_t repeat_if; /* NF_* facts that make it an NT_REPEAT */
	uint32_t actions;  /* NA_*, carried out in the order of their bits */
};

/* The step for event e in state s with the facts `flags`. */
struct ni_transition ni_lifecycle_step(enum ni_state s, enum ni_event e, unsigned flags);
const struct ni_transition *ni_lifecycle_entry(enum ni_state s, enum ni_event e);
/* Is an instance in s alive in the core's sense (not ended, not forgotten)? */
int ni_state_alive(enum ni_state s);

#endif
