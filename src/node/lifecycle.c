#include "node/lifecycle.h"

const char *const ni_state_names[NI_STATE_COUNT] = {
	[NI_RECOVERING] = "recovering",       [NI_FETCHING] = "fetching",   [NI_FETCH_FAILED] = "fetch failed",
	[NI_SPAWNING] = "spawning",           [NI_RUNNING] = "running",     [NI_STOPPING] = "stopping",
	[NI_STOPPING_FORCE] = "stopping (force next)", [NI_STOPPING_EXITED] = "stopping (exited)",
	[NI_STOP_SENT] = "stop sent",         [NI_ENDED] = "ended",         [NI_PURGED] = "purged",
};

const char *const ni_event_names[NE_COUNT] = {
	[NE_BLOB_FAILED] = "blob failed", [NE_BLOBS_DONE] = "blobs done",   [NE_SPAWNED] = "spawned",
	[NE_SPAWN_FAILED] = "spawn failed", [NE_READY] = "ready",           [NE_EXITED] = "exited",
	[NE_GONE] = "gone",               [NE_STOP] = "stop",               [NE_STOP_DONE] = "stop done",
	[NE_GRACE] = "grace over",        [NE_START_AGAIN] = "start again", [NE_RESTART] = "restart",
	[NE_PURGE] = "purge",
	[NE_ADOPTED] = "adopted",         [NE_NOT_STARTED] = "not started", [NE_REATTACHED] = "re-attached",
	[NE_ENDED_AWAY] = "ended away",   [NE_RECORD_ENDED] = "record ended",
};

#define MOVE(to, acts) {.kind = NT_MOVE, .next = (to), .actions = (acts)}
#define MOVE_UNLESS(to, acts, facts) {.kind = NT_MOVE, .next = (to), .actions = (acts), .repeat_if = (facts)}
#define REPEAT {.kind = NT_REPEAT}
#define REFUSE {.kind = NT_REFUSE}

/* The end: network removed, record written, reported; then a newer run asked meanwhile begins. */
#define END (NA_END | NA_RECORD | NA_REPORT | NA_RESTART_IF_ASKED)
/* A newer run asked before this one runs: stopped once it runs, and the new run follows. */
#define RESTART_LATER(s) MOVE(s, NA_DESIRE_STOP)
/* A newer run asked while a stop is under way: it follows the end (the run asked is noted). */
#define RESTART_AT_END REPEAT
/* Asked to stop before it runs: said so, done once it runs. */
#define STOP_LATER(s) MOVE(s, NA_DESIRE_STOP)
/* Where it stands, said again (an assignment sent again after a reconnect). */
#define SAY_AGAIN(s) MOVE(s, NA_REPORT)
/* The guest got ready (while it runs, or while a stop is under way). */
#define GOT_READY(s) MOVE_UNLESS(s, NA_READY | NA_RECORD | NA_REPORT, NF_READY)

/* Events that cannot reach a state which has no process or domain yet. */
#define NOT_STARTED_YET                                                                        \
	[NE_READY] = REFUSE, [NE_EXITED] = REFUSE, [NE_GONE] = REFUSE, [NE_STOP_DONE] = REFUSE, \
	[NE_GRACE] = REFUSE
/* Events for a node's start only. */
#define NOT_RECOVERING                                                                           \
	[NE_ADOPTED] = REFUSE, [NE_NOT_STARTED] = REFUSE, [NE_REATTACHED] = REFUSE, [NE_ENDED_AWAY] = REFUSE, \
	[NE_RECORD_ENDED] = REFUSE
/* Prepare events, after prepare. */
#define PREPARED                                                                                  \
	[NE_BLOB_FAILED] = REFUSE, [NE_BLOBS_DONE] = REFUSE, [NE_SPAWNED] = REFUSE, [NE_SPAWN_FAILED] = REFUSE

static const struct ni_transition table[NI_STATE_COUNT][NE_COUNT] = {
	[NI_RECOVERING] = {
		[NE_BLOB_FAILED] = REFUSE, [NE_BLOBS_DONE] = REFUSE, [NE_SPAWNED] = REFUSE, [NE_SPAWN_FAILED] = REFUSE,
		NOT_STARTED_YET, [NE_STOP] = REFUSE, [NE_START_AGAIN] = REFUSE, [NE_RESTART] = REFUSE, [NE_PURGE] = REFUSE,
		[NE_ADOPTED] = MOVE(NI_RUNNING, NA_WATCH | NA_RECORD | NA_REPORT),
		[NE_NOT_STARTED] = MOVE(NI_PURGED, NA_FORGET),
		/* the core learns it is alive from the registration's list */
		[NE_REATTACHED] = MOVE(NI_RUNNING, NA_WATCH),
		[NE_ENDED_AWAY] = MOVE(NI_ENDED, END),
		/* the core may not have heard it before the node went away: a repeat is harmless */
		[NE_RECORD_ENDED] = MOVE(NI_ENDED, NA_REPORT),
	},
	[NI_FETCHING] = {
		[NE_BLOB_FAILED] = MOVE(NI_FETCH_FAILED, NA_NOTE_ERROR),
		[NE_BLOBS_DONE] = MOVE(NI_SPAWNING, NA_SPAWN),
		[NE_SPAWNED] = REFUSE, [NE_SPAWN_FAILED] = REFUSE, NOT_STARTED_YET,
		[NE_STOP] = STOP_LATER(NI_FETCHING), [NE_START_AGAIN] = REPEAT, [NE_RESTART] = RESTART_LATER(NI_FETCHING),
		[NE_PURGE] = REPEAT, NOT_RECOVERING,
	},
	[NI_FETCH_FAILED] = {
		[NE_BLOB_FAILED] = REPEAT, /* the first error is the one said */
		[NE_BLOBS_DONE] = MOVE(NI_ENDED, END),
		[NE_SPAWNED] = REFUSE, [NE_SPAWN_FAILED] = REFUSE, NOT_STARTED_YET,
		[NE_STOP] = STOP_LATER(NI_FETCH_FAILED), [NE_START_AGAIN] = REPEAT,
		[NE_RESTART] = RESTART_LATER(NI_FETCH_FAILED), [NE_PURGE] = REPEAT, NOT_RECOVERING,
	},
	[NI_SPAWNING] = {
		[NE_BLOB_FAILED] = REFUSE, [NE_BLOBS_DONE] = REFUSE,
		[NE_SPAWNED] = MOVE(NI_RUNNING, NA_WATCH | NA_REPORT | NA_BOOT_WATCH | NA_STOP_IF_ASKED),
		[NE_SPAWN_FAILED] = MOVE(NI_ENDED, NA_NOTE_ERROR | END),
		NOT_STARTED_YET,
		[NE_STOP] = STOP_LATER(NI_SPAWNING), [NE_START_AGAIN] = REPEAT, [NE_RESTART] = RESTART_LATER(NI_SPAWNING),
		[NE_PURGE] = REPEAT, NOT_RECOVERING,
	},
	[NI_RUNNING] = {
		PREPARED,
		[NE_READY] = GOT_READY(NI_RUNNING),
		[NE_EXITED] = MOVE(NI_ENDED, NA_REAP | END),
		[NE_GONE] = MOVE(NI_ENDED, END),
		[NE_STOP] = MOVE(NI_STOPPING, NA_DESIRE_STOP | NA_STOP_GENTLE | NA_ARM_GRACE),
		[NE_STOP_DONE] = REFUSE, [NE_GRACE] = REPEAT,
		[NE_START_AGAIN] = SAY_AGAIN(NI_RUNNING),
		[NE_RESTART] = MOVE(NI_STOPPING, NA_DESIRE_STOP | NA_STOP_GENTLE | NA_ARM_GRACE),
		[NE_PURGE] = REPEAT, NOT_RECOVERING,
	},
	[NI_STOPPING] = {
		PREPARED,
		[NE_READY] = GOT_READY(NI_STOPPING),
		/* a worker may be signalling it: reaping now could free the pid for reuse under
		 * that signal. Reaped when the call returns. */
		[NE_EXITED] = MOVE(NI_STOPPING_EXITED, 0),
		[NE_GONE] = MOVE(NI_ENDED, END), /* a domain has no pid to reuse */
		[NE_STOP] = REPEAT,
		[NE_STOP_DONE] = MOVE(NI_STOP_SENT, NA_STATUS_CHECK),
		[NE_GRACE] = MOVE(NI_STOPPING_FORCE, 0),
		[NE_START_AGAIN] = SAY_AGAIN(NI_STOPPING), [NE_RESTART] = RESTART_AT_END, [NE_PURGE] = REPEAT,
		NOT_RECOVERING,
	},
	[NI_STOPPING_FORCE] = {
		PREPARED,
		[NE_READY] = GOT_READY(NI_STOPPING_FORCE),
		[NE_EXITED] = MOVE(NI_STOPPING_EXITED, 0),
		[NE_GONE] = MOVE(NI_ENDED, END),
		[NE_STOP] = REPEAT,
		[NE_STOP_DONE] = MOVE(NI_STOPPING, NA_STOP_FORCE),
		[NE_GRACE] = REPEAT,
		[NE_START_AGAIN] = SAY_AGAIN(NI_STOPPING_FORCE), [NE_RESTART] = RESTART_AT_END, [NE_PURGE] = REPEAT,
		NOT_RECOVERING,
	},
	[NI_STOPPING_EXITED] = {
		PREPARED,
		[NE_READY] = REPEAT, [NE_EXITED] = REPEAT, [NE_GONE] = REPEAT, [NE_STOP] = REPEAT,
		[NE_STOP_DONE] = MOVE(NI_ENDED, NA_REAP | END),
		[NE_GRACE] = REPEAT,
		[NE_START_AGAIN] = SAY_AGAIN(NI_STOPPING_EXITED), [NE_RESTART] = RESTART_AT_END, [NE_PURGE] = REPEAT,
		NOT_RECOVERING,
	},
	[NI_STOP_SENT] = {
		PREPARED,
		[NE_READY] = GOT_READY(NI_STOP_SENT),
		[NE_EXITED] = MOVE(NI_ENDED, NA_REAP | END),
		[NE_GONE] = MOVE(NI_ENDED, END),
		[NE_STOP] = REPEAT,
		[NE_STOP_DONE] = REPEAT,
		[NE_GRACE] = MOVE(NI_STOPPING, NA_STOP_FORCE),
		[NE_START_AGAIN] = SAY_AGAIN(NI_STOP_SENT), [NE_RESTART] = RESTART_AT_END, [NE_PURGE] = REPEAT,
		NOT_RECOVERING,
	},
	[NI_ENDED] = {
		PREPARED,
		/* late news of an end already recorded (a stop call returning, a status answer) */
		[NE_READY] = REPEAT, [NE_EXITED] = REPEAT, [NE_GONE] = REPEAT, [NE_STOP_DONE] = REPEAT,
		[NE_GRACE] = REPEAT,
		[NE_STOP] = SAY_AGAIN(NI_ENDED), [NE_START_AGAIN] = SAY_AGAIN(NI_ENDED),
		[NE_RESTART] = MOVE(NI_FETCHING, NA_NEW_RUN),
		[NE_PURGE] = MOVE(NI_PURGED, NA_REMOVE), NOT_RECOVERING,
	},
	[NI_PURGED] = {
		/* only its last worker jobs can still speak of it */
		PREPARED, [NE_READY] = REPEAT, [NE_EXITED] = REPEAT, [NE_GONE] = REPEAT, [NE_STOP] = REPEAT,
		[NE_STOP_DONE] = REPEAT, [NE_GRACE] = REPEAT, [NE_START_AGAIN] = REPEAT, [NE_RESTART] = REPEAT,
		[NE_PURGE] = REPEAT, NOT_RECOVERING,
	},
};

const struct ni_transition *ni_lifecycle_entry(enum ni_state s, enum ni_event e) { return &table[s][e]; }

struct ni_transition ni_lifecycle_step(enum ni_state s, enum ni_event e, unsigned flags)
{
	struct ni_transition t = table[s][e];
	if (t.kind == NT_UNSET)
		t = (struct ni_transition)REFUSE;
	else if (t.kind == NT_MOVE && (t.repeat_if & flags))
		t = (struct ni_transition)REPEAT;
	return t;
}

int ni_state_alive(enum ni_state s)
{
	return s != NI_ENDED && s != NI_PURGED && s != NI_RECOVERING;
}
