/* test_lifecycle — the two lifecycle tables, walked whole: the core's instance
 * (core/lifecycle.h) and the node's (node/lifecycle.h). Every cell of both is checked
 * against the rules the rest of the code relies on (no forgotten cell; resources reserved
 * exactly while an instance holds a node; every change stored, published, and the waiting
 * clients woken; ended instances stay ended; a pid is never reaped while a stop call may
 * signal it; nothing alive is purged; everything can end), and the event sequences the
 * fault suite (tests/integration/test_faults.py) injects are played through them: kill -9
 * of the core and of a node at every step, a lost report with both killed, a partition
 * with and without "restart": "on-lost", graceful stops. And docs/architecture.md shows
 * both tables as they are (`test_lifecycle --print` prints them). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fs.h"

#include "core/lifecycle.h"
#include "node/lifecycle.h"
#include "unit.h"

/* ---- the core's table ---- */

static bool holds(enum inst_state s) { return s == INST_SCHEDULED || s == INST_STARTING || s == INST_RUNNING; }

static bool recount(enum inst_event e) { return e == IEV_NODE_HAS_IT || e == IEV_NODE_LACKS_IT; }

static bool is_report(enum inst_event e) { return e >= IEV_REPORT_STARTING && e <= IEV_REPORT_FAILED; }

static bool is_start(enum inst_event e) { return e == IEV_START || e == IEV_START_NO_NODE || e == IEV_RESTART; }

#define CELL_FAIL(what)                                                                                   \
	do {                                                                                              \
		fprintf(stderr, "  core table [%s][%s] flags %u: %s\n", inst_state_names[s], inst_event_names[e], \
		        f, what);                                                                         \
		unit_current_failed = 1;                                                                  \
	} while (0)

static void test_core_every_cell(void)
{
	for (int s = 0; s < INST_STATE_COUNT; s++) {
		for (int e = 0; e < IEV_COUNT; e++) {
			if (lifecycle_entry(s, e)->kind == T_UNSET) {
				unsigned f = 0;
				CELL_FAIL("not in the table");
			}
			for (unsigned f = 0; f < 4; f++) {
				struct inst_transition t = lifecycle_step(s, e, f);
				uint32_t a = t.actions;
				int n = t.next;
				if (t.kind != T_MOVE && t.kind != T_REPEAT && t.kind != T_REFUSE)
					CELL_FAIL("kind out of range");
				if (t.kind != T_MOVE)
					continue;
				if (n < 0 || n >= INST_STATE_COUNT)
					CELL_FAIL("next state out of range");
				/* resources: counted on a node exactly while the instance holds one */
				if (recount(e)) {
					if (holds(n) != !!(a & IA_RESERVE))
						CELL_FAIL("a recount must reserve exactly what holds a node");
					if (a & IA_RELEASE)
						CELL_FAIL("a recount starts from zero: nothing to release");
				} else {
					if (holds(s) && !holds(n) && !(a & IA_RELEASE))
						CELL_FAIL("leaves a node without releasing");
					if (!holds(s) && holds(n) && !(a & IA_RESERVE))
						CELL_FAIL("takes a node without reserving");
					if (holds(s) == holds(n) && (a & (IA_RESERVE | IA_RELEASE)))
						CELL_FAIL("counts twice or uncounts what it keeps");
				}
				/* a change of state is stored and told; only the dispatch is not stored */
				if (n != s) {
					if (!(a & IA_STORE) && !(s == INST_SCHEDULED && e == IEV_DISPATCHED))
						CELL_FAIL("changes state without storing it");
					if (!(a & IA_PUBLISH))
						CELL_FAIL("changes state without telling the event stream");
					if ((n == INST_RUNNING || inst_state_terminal(n)) && !(a & IA_WAKE))
						CELL_FAIL("reaches a waited-for state without waking the clients");
				}
				if (a & (IA_PUBLISH | IA_WAKE) && !(a & IA_STORE) && !(s == INST_SCHEDULED && e == IEV_DISPATCHED))
					CELL_FAIL("tells the world what is not stored");
				/* ended stays ended, but for a lost instance that comes back or is placed again,
				 * and a client's start: a new run */
				if (inst_state_terminal(s) && n != s &&
				    !(s == INST_LOST && ((e == IEV_REPLACE && n == INST_PENDING) ||
				                         (e == IEV_NODE_HAS_IT && n == INST_RUNNING) ||
				                         (is_report(e) && inst_state_terminal(n)))) &&
				    !(is_start(e) && a & IA_NEW_RUN))
					CELL_FAIL("leaves an ended state");
				if (n == INST_PENDING && s != INST_PENDING && e != IEV_REPLACE && e != IEV_START_NO_NODE)
					CELL_FAIL("back to pending other than to be placed again");
				/* a new run only on a client's start, never of a lost instance */
				if (a & IA_NEW_RUN && (!is_start(e) || s == INST_LOST))
					CELL_FAIL("a new run other than by a client's start");
				if (is_start(e) && t.kind == T_MOVE && !(a & IA_NEW_RUN))
					CELL_FAIL("a start that begins no new run");
				if (is_report(e) && inst_state_terminal(s) && n != s && s != INST_LOST)
					CELL_FAIL("a node's report moves an ended instance");
				if (a & IA_DELETE && (!inst_state_terminal(s) || e != IEV_REMOVE))
					CELL_FAIL("deletes what is not ended, or not on a removal");
				if (a & (IA_TRACE | IA_OBSERVE) && n != INST_RUNNING)
					CELL_FAIL("a trace for what is not running");
				if (a & IA_SEND_START && !holds(n))
					CELL_FAIL("sends a start for what holds no node");
			}
		}
	}
}

/* Facts make repeats: a second stop, a ready report that came twice. */
static void test_core_repeats(void)
{
	CHECK_EQ_INT(lifecycle_step(INST_RUNNING, IEV_STOP, 0).kind, T_MOVE);
	CHECK_EQ_INT(lifecycle_step(INST_RUNNING, IEV_STOP, LF_STOP_REQUESTED).kind, T_REPEAT);
	CHECK_EQ_INT(lifecycle_step(INST_SCHEDULED, IEV_STOP, LF_STOP_REQUESTED).kind, T_REPEAT);
	CHECK_EQ_INT(lifecycle_step(INST_RUNNING, IEV_REPORT_READY, 0).kind, T_MOVE);
	CHECK_EQ_INT(lifecycle_step(INST_RUNNING, IEV_REPORT_READY, LF_READY).kind, T_REPEAT);
	CHECK_EQ_INT(lifecycle_step(INST_RUNNING, IEV_REPORT_RUNNING, 0).kind, T_REPEAT);
	CHECK_EQ_INT(lifecycle_step(INST_LOST, IEV_REPLACE, LF_STOP_REQUESTED).kind, T_REPEAT);
	/* illegal events are refused, not done */
	CHECK_EQ_INT(lifecycle_step(INST_RUNNING, IEV_REMOVE, 0).kind, T_REFUSE);
	CHECK_EQ_INT(lifecycle_step(INST_STOPPED, IEV_STOP, 0).kind, T_REFUSE);
	CHECK_EQ_INT(lifecycle_step(INST_RUNNING, IEV_PLACE, 0).kind, T_REFUSE);
	CHECK_EQ_INT(lifecycle_step(INST_PENDING, IEV_REPORT_RUNNING, 0).kind, T_REFUSE);
	CHECK_EQ_INT(lifecycle_step(INST_PENDING, IEV_NODE_DOWN, 0).kind, T_REFUSE);
	/* a node's report maps to its event */
	CHECK_EQ_INT(lifecycle_report_event(INST_RUNNING, false), IEV_REPORT_RUNNING);
	CHECK_EQ_INT(lifecycle_report_event(INST_RUNNING, true), IEV_REPORT_READY);
	CHECK_EQ_INT(lifecycle_report_event(INST_FAILED, false), IEV_REPORT_FAILED);
	CHECK_EQ_INT(lifecycle_report_event(INST_PENDING, false), -1);
	CHECK_EQ_INT(lifecycle_report_event(INST_LOST, false), -1);
}

/* Every state is reachable from pending, and every event is taken somewhere. */
static void test_core_reachable(void)
{
	bool seen[INST_STATE_COUNT] = {[INST_PENDING] = true};
	for (int round = 0; round < INST_STATE_COUNT; round++)
		for (int s = 0; s < INST_STATE_COUNT; s++)
			for (int e = 0; seen[s] && e < IEV_COUNT; e++)
				for (unsigned f = 0; f < 4; f++) {
					struct inst_transition t = lifecycle_step(s, e, f);
					if (t.kind == T_MOVE)
						seen[t.next] = true;
				}
	for (int s = 0; s < INST_STATE_COUNT; s++) {
		if (!seen[s])
			fprintf(stderr, "  %s is never reached\n", inst_state_names[s]);
		CHECK(seen[s]);
	}
	for (int e = 0; e < IEV_COUNT; e++) {
		bool taken = false;
		for (int s = 0; s < INST_STATE_COUNT; s++)
			taken = taken || lifecycle_step(s, e, 0).kind == T_MOVE;
		if (!taken)
			fprintf(stderr, "  event %s is taken by no state\n", inst_event_names[e]);
		CHECK(taken);
	}
}

/* A walk: events from a state, each a move (or a repeat where said), ending where said,
 * with every action the walk expects done on the way. */
struct step_want {
	enum inst_event e;
	unsigned flags;
	int kind;             /* T_MOVE or T_REPEAT */
	enum inst_state next; /* with T_MOVE */
	uint32_t must;        /* actions it must carry */
};

static void walk(const char *name, enum inst_state from, const struct step_want *w, int n)
{
	enum inst_state s = from;
	for (int i = 0; i < n; i++) {
		struct inst_transition t = lifecycle_step(s, w[i].e, w[i].flags);
		if (t.kind != w[i].kind || (t.kind == T_MOVE && (t.next != w[i].next || (t.actions & w[i].must) != w[i].must))) {
			fprintf(stderr, "  %s, step %d (%s in %s): kind %d next %s actions %#x; want kind %d next %s with %#x\n",
			        name, i, inst_event_names[w[i].e], inst_state_names[s], t.kind,
			        t.kind == T_MOVE ? inst_state_names[t.next] : "-", (unsigned)t.actions, w[i].kind,
			        inst_state_names[w[i].next], (unsigned)w[i].must);
			unit_current_failed = 1;
			return;
		}
		if (t.kind == T_MOVE)
			s = t.next;
	}
}

#define WALK(name, from, ...)                                                                  \
	do {                                                                                   \
		static const struct step_want steps_[] = {__VA_ARGS__};                        \
		walk(name, from, steps_, (int)(sizeof steps_ / sizeof steps_[0]));             \
	} while (0)
#define MOVE_TO(ev, st, acts) {.e = (ev), .kind = T_MOVE, .next = (st), .must = (acts)}
#define MOVE_F(ev, fl, st, acts) {.e = (ev), .flags = (fl), .kind = T_MOVE, .next = (st), .must = (acts)}
#define REPEATS(ev, fl) {.e = (ev), .flags = (fl), .kind = T_REPEAT}

static void test_core_walks(void)
{
	WALK("a life", INST_PENDING,
	     MOVE_TO(IEV_PLACE, INST_SCHEDULED, IA_SET_NODE | IA_RESERVE | IA_STORE | IA_SEND_START),
	     MOVE_TO(IEV_DISPATCHED, INST_STARTING, IA_PUBLISH),
	     MOVE_TO(IEV_REPORT_RUNNING, INST_RUNNING, IA_STORE | IA_WAKE | IA_TRACE),
	     MOVE_TO(IEV_STOP, INST_RUNNING, IA_DESIRE_STOP | IA_STORE | IA_SEND_STOP),
	     REPEATS(IEV_STOP, LF_STOP_REQUESTED),
	     MOVE_F(IEV_REPORT_STOPPED, LF_STOP_REQUESTED, INST_STOPPED, IA_RELEASE | IA_STORE | IA_WAKE),
	     MOVE_TO(IEV_REMOVE, INST_STOPPED, IA_DELETE | IA_SEND_PURGE));
	WALK("a guest with a ready marker", INST_SCHEDULED,
	     MOVE_TO(IEV_REPORT_RUNNING, INST_RUNNING, IA_TRACE),
	     MOVE_TO(IEV_REPORT_READY, INST_RUNNING, IA_TRACE | IA_OBSERVE | IA_WAKE),
	     REPEATS(IEV_REPORT_READY, LF_READY));
	/* kill -9 of the core after the placement was stored, before the node took the start:
	 * the record says scheduled; the node registers (without it, or with it) and the start
	 * goes out again; the node runs it once */
	WALK("core killed after placing", INST_SCHEDULED,
	     MOVE_TO(IEV_NODE_LACKS_IT, INST_SCHEDULED, IA_RESERVE | IA_SEND_START),
	     MOVE_TO(IEV_REPORT_RUNNING, INST_RUNNING, IA_STORE));
	/* the running report lost, core and node killed: the node lists it alive; the start is
	 * sent again and the node answers it with "running" */
	WALK("running report lost, both killed", INST_STARTING,
	     MOVE_TO(IEV_NODE_HAS_IT, INST_STARTING, IA_RESERVE | IA_SEND_START),
	     MOVE_TO(IEV_REPORT_RUNNING, INST_RUNNING, IA_STORE | IA_WAKE));
	/* kill -9 of a node: it re-attaches and registers listing its instances */
	WALK("node killed, instance alive", INST_RUNNING, MOVE_TO(IEV_NODE_HAS_IT, INST_RUNNING, IA_RESERVE));
	WALK("node killed, instance ended meanwhile (record kept)", INST_RUNNING,
	     MOVE_TO(IEV_NODE_HAS_IT, INST_RUNNING, IA_RESERVE),
	     MOVE_TO(IEV_REPORT_EXITED, INST_EXITED, IA_RELEASE | IA_STORE));
	WALK("node killed, instance gone with its records", INST_RUNNING,
	     MOVE_TO(IEV_NODE_LACKS_IT, INST_LOST, IA_ERROR_GONE | IA_STORE | IA_WAKE));
	WALK("a stop asked while the node was away is sent again", INST_RUNNING,
	     MOVE_TO(IEV_STOP, INST_RUNNING, IA_SEND_STOP),
	     MOVE_F(IEV_NODE_HAS_IT, LF_STOP_REQUESTED, INST_RUNNING, IA_RESERVE | IA_SEND_STOP_IF_ASKED));
	/* partition with "restart": "on-lost": lost, placed again elsewhere; the old node's copy
	 * is someone else's after the heal (stopped outside the table) */
	WALK("partition, on-lost", INST_RUNNING,
	     MOVE_TO(IEV_NODE_DOWN, INST_LOST, IA_RELEASE | IA_ERROR_NODE_DOWN | IA_STORE | IA_WAKE),
	     MOVE_TO(IEV_REPLACE, INST_PENDING, IA_FORGET_NODE | IA_STORE),
	     MOVE_TO(IEV_PLACE, INST_SCHEDULED, IA_SET_NODE | IA_RESERVE | IA_SEND_START));
	/* ... and when it healed before the instance could be placed again: adopted back */
	WALK("partition, on-lost, healed before placed", INST_RUNNING, MOVE_TO(IEV_NODE_DOWN, INST_LOST, IA_RELEASE),
	     MOVE_TO(IEV_REPLACE, INST_PENDING, IA_FORGET_NODE),
	     MOVE_TO(IEV_NODE_HAS_IT, INST_RUNNING, IA_SET_NODE | IA_CLEAR_ERROR | IA_RESERVE | IA_STORE));
	WALK("partition, no restart: running again after the heal", INST_RUNNING,
	     MOVE_TO(IEV_NODE_DOWN, INST_LOST, IA_RELEASE),
	     MOVE_TO(IEV_NODE_HAS_IT, INST_RUNNING, IA_CLEAR_ERROR | IA_RESERVE | IA_STORE | IA_WAKE));
	/* a late "running" of the cut-off node changes nothing; how the instance ended (e.g.
	 * reaped while its node was down, told once it is back) replaces the core's guess */
	WALK("partition: a late report of the cut-off node; then how it ended", INST_RUNNING,
	     MOVE_TO(IEV_NODE_DOWN, INST_LOST, IA_RELEASE), REPEATS(IEV_REPORT_RUNNING, 0),
	     MOVE_TO(IEV_REPORT_EXITED, INST_EXITED, IA_CLEAR_ERROR | IA_REPORT | IA_STORE | IA_WAKE));
	WALK("stopped in the core, alive on its node after a restart", INST_STOPPED,
	     MOVE_TO(IEV_NODE_HAS_IT, INST_STOPPED, IA_SEND_STOP));
	WALK("delete of an instance not placed yet", INST_PENDING,
	     MOVE_TO(IEV_STOP, INST_STOPPED, IA_DESIRE_STOP | IA_STORE | IA_WAKE));
	WALK("delete on a node the core does not know", INST_RUNNING,
	     MOVE_TO(IEV_STOP_NO_NODE, INST_STOPPED, IA_STORE | IA_WAKE));
	/* start again: a new run on the same node, its resources held again, a new trace */
	WALK("stopped, started again, stopped again", INST_RUNNING,
	     MOVE_TO(IEV_STOP, INST_RUNNING, IA_DESIRE_STOP | IA_SEND_STOP),
	     MOVE_F(IEV_REPORT_STOPPED, LF_STOP_REQUESTED, INST_STOPPED, IA_RELEASE),
	     MOVE_F(IEV_START, LF_STOP_REQUESTED, INST_SCHEDULED,
	            IA_NEW_RUN | IA_RESERVE | IA_STORE | IA_PUBLISH | IA_WAKE | IA_MARK_SCHEDULED | IA_SEND_START),
	     MOVE_TO(IEV_DISPATCHED, INST_STARTING, IA_PUBLISH),
	     MOVE_TO(IEV_REPORT_RUNNING, INST_RUNNING, IA_TRACE | IA_STORE | IA_WAKE),
	     MOVE_TO(IEV_STOP, INST_RUNNING, IA_SEND_STOP));
	WALK("an instance that exited by itself is started again", INST_EXITED,
	     MOVE_TO(IEV_START, INST_SCHEDULED, IA_NEW_RUN | IA_RESERVE | IA_SEND_START));
	WALK("stopped before it had a node: placed like a new one", INST_STOPPED,
	     MOVE_TO(IEV_START_NO_NODE, INST_PENDING, IA_NEW_RUN | IA_STORE),
	     MOVE_TO(IEV_PLACE, INST_SCHEDULED, IA_SET_NODE | IA_RESERVE | IA_SEND_START));
	/* restart: its resources stay held; the node ends the old run before the new one */
	WALK("restart of a running instance", INST_RUNNING,
	     MOVE_TO(IEV_RESTART, INST_SCHEDULED, IA_NEW_RUN | IA_STORE | IA_WAKE | IA_SEND_START),
	     MOVE_TO(IEV_DISPATCHED, INST_STARTING, 0), MOVE_TO(IEV_REPORT_READY, INST_RUNNING, IA_TRACE));
	/* kill -9 of the core after the restart was stored: the record says scheduled (the new
	 * run); the node registers listing it alive (the old run, or the new) and the start of
	 * the new run goes out again */
	WALK("core killed during a restart", INST_SCHEDULED,
	     MOVE_TO(IEV_NODE_HAS_IT, INST_SCHEDULED, IA_RESERVE | IA_SEND_START),
	     MOVE_TO(IEV_REPORT_RUNNING, INST_RUNNING, IA_STORE));
	/* start and restart refused where they make no sense */
	CHECK_EQ_INT(lifecycle_step(INST_RUNNING, IEV_START, 0).kind, T_REFUSE);
	CHECK_EQ_INT(lifecycle_step(INST_STARTING, IEV_RESTART, 0).kind, T_REFUSE);
	CHECK_EQ_INT(lifecycle_step(INST_PENDING, IEV_START, 0).kind, T_REFUSE);
	CHECK_EQ_INT(lifecycle_step(INST_LOST, IEV_START, 0).kind, T_REFUSE);
	CHECK_EQ_INT(lifecycle_step(INST_LOST, IEV_RESTART, 0).kind, T_REFUSE);
}

/* ---- the node's table ---- */

#define NCELL_FAIL(what)                                                                                  \
	do {                                                                                              \
		fprintf(stderr, "  node table [%s][%s] flags %u: %s\n", ni_state_names[s], ni_event_names[e], f, \
		        what);                                                                            \
		unit_current_failed = 1;                                                                  \
	} while (0)

static void test_node_every_cell(void)
{
	for (int s = 0; s < NI_STATE_COUNT; s++) {
		for (int e = 0; e < NE_COUNT; e++) {
			if (ni_lifecycle_entry(s, e)->kind == NT_UNSET) {
				unsigned f = 0;
				NCELL_FAIL("not in the table");
			}
			for (unsigned f = 0; f < 4; f++) {
				struct ni_transition t = ni_lifecycle_step(s, e, f);
				uint32_t a = t.actions;
				int n = t.next;
				if (t.kind != NT_MOVE)
					continue;
				if (n < 0 || n >= NI_STATE_COUNT)
					NCELL_FAIL("next state out of range");
				/* a stop call on a worker may be signalling the process: no reaping then */
				if (a & NA_REAP && (s == NI_STOPPING || s == NI_STOPPING_FORCE))
					NCELL_FAIL("reaps while a stop call may signal the pid");
				if (e == NE_EXITED && (s == NI_STOPPING || s == NI_STOPPING_FORCE) && n != NI_STOPPING_EXITED)
					NCELL_FAIL("an exit during a stop call must wait for the call");
				/* never the files of something alive */
				if (a & NA_REMOVE && s != NI_ENDED)
					NCELL_FAIL("removes an instance that has not ended");
				if (a & NA_FORGET && s != NI_RECOVERING)
					NCELL_FAIL("forgets what it did not just read back");
				if ((a & (NA_REMOVE | NA_FORGET)) && n != NI_PURGED)
					NCELL_FAIL("removed but not purged");
				/* an end is recorded where it is said, and said */
				if (n == NI_ENDED && s != NI_ENDED && !(a & NA_REPORT))
					NCELL_FAIL("ends without telling the core");
				if (a & NA_END && n != NI_ENDED)
					NCELL_FAIL("an end that does not end");
				if (n == NI_ENDED && s != NI_ENDED && s != NI_RECOVERING && !(a & NA_END))
					NCELL_FAIL("ends without the end (network, watches)");
				if (s == NI_ENDED && n != NI_ENDED && n != NI_PURGED && !(e == NE_RESTART && a & NA_NEW_RUN))
					NCELL_FAIL("leaves the end");
				if (a & NA_NEW_RUN && (s != NI_ENDED || n != NI_FETCHING))
					NCELL_FAIL("a new run begins from what has not ended, or not with prepare");
				/* every end looks for a newer run asked meanwhile */
				if (a & NA_END && !(a & NA_RESTART_IF_ASKED))
					NCELL_FAIL("an end that forgets a newer run asked");
				if (s == NI_PURGED && n != NI_PURGED)
					NCELL_FAIL("leaves purged");
				/* the gentle stop always has its grace period */
				if (a & NA_STOP_GENTLE && !(a & NA_ARM_GRACE))
					NCELL_FAIL("a gentle stop without a grace period");
				if (a & (NA_STOP_GENTLE | NA_STOP_FORCE) && n != NI_STOPPING)
					NCELL_FAIL("a stop call on a worker outside STOPPING");
				if (a & NA_SPAWN && n != NI_SPAWNING)
					NCELL_FAIL("a start job outside SPAWNING");
				if (e == NE_PURGE && ni_state_alive(s) && t.kind == NT_MOVE)
					NCELL_FAIL("a purge acts on something alive");
			}
		}
	}
}

/* From every state the instance can end (ENDED) and be forgotten (PURGED). */
static void test_node_everything_ends(void)
{
	for (int from = 0; from < NI_STATE_COUNT; from++) {
		bool seen[NI_STATE_COUNT] = {0};
		seen[from] = true;
		for (int round = 0; round < NI_STATE_COUNT; round++)
			for (int s = 0; s < NI_STATE_COUNT; s++)
				for (int e = 0; seen[s] && e < NE_COUNT; e++)
					for (unsigned f = 0; f < 4; f++) {
						struct ni_transition t = ni_lifecycle_step(s, e, f);
						if (t.kind == NT_MOVE)
							seen[t.next] = true;
					}
		if (!seen[NI_PURGED])
			fprintf(stderr, "  from %s it never ends\n", ni_state_names[from]);
		CHECK(seen[NI_PURGED]);
	}
}

struct nstep_want {
	enum ni_event e;
	unsigned flags;
	int kind;
	enum ni_state next;
	uint32_t must;
};

static void nwalk(const char *name, enum ni_state from, const struct nstep_want *w, int n)
{
	enum ni_state s = from;
	for (int i = 0; i < n; i++) {
		struct ni_transition t = ni_lifecycle_step(s, w[i].e, w[i].flags);
		if (t.kind != w[i].kind || (t.kind == NT_MOVE && (t.next != w[i].next || (t.actions & w[i].must) != w[i].must))) {
			fprintf(stderr, "  %s, step %d (%s in %s): kind %d next %s actions %#x; want kind %d next %s with %#x\n",
			        name, i, ni_event_names[w[i].e], ni_state_names[s], t.kind,
			        t.kind == NT_MOVE ? ni_state_names[t.next] : "-", (unsigned)t.actions, w[i].kind,
			        ni_state_names[w[i].next], (unsigned)w[i].must);
			unit_current_failed = 1;
			return;
		}
		if (t.kind == NT_MOVE)
			s = t.next;
	}
}

#define NWALK(name, from, ...)                                                                 \
	do {                                                                                   \
		static const struct nstep_want steps_[] = {__VA_ARGS__};                       \
		nwalk(name, from, steps_, (int)(sizeof steps_ / sizeof steps_[0]));            \
	} while (0)
#define NMOVE(ev, st, acts) {.e = (ev), .kind = NT_MOVE, .next = (st), .must = (acts)}
#define NMOVE_F(ev, fl, st, acts) {.e = (ev), .flags = (fl), .kind = NT_MOVE, .next = (st), .must = (acts)}
#define NREPEAT(ev, fl) {.e = (ev), .flags = (fl), .kind = NT_REPEAT}

static void test_node_walks(void)
{
	NWALK("an exec instance", NI_FETCHING, NMOVE(NE_BLOBS_DONE, NI_SPAWNING, NA_SPAWN),
	      NMOVE(NE_SPAWNED, NI_RUNNING, NA_WATCH | NA_REPORT),
	      NMOVE(NE_STOP, NI_STOPPING, NA_DESIRE_STOP | NA_STOP_GENTLE | NA_ARM_GRACE),
	      NMOVE(NE_STOP_DONE, NI_STOP_SENT, 0),
	      NMOVE_F(NE_EXITED, NF_STOP_REQUESTED, NI_ENDED, NA_REAP | NA_END | NA_RECORD | NA_REPORT),
	      NMOVE(NE_PURGE, NI_PURGED, NA_REMOVE));
	NWALK("a guest gets ready", NI_SPAWNING, NMOVE(NE_SPAWNED, NI_RUNNING, NA_BOOT_WATCH),
	      NMOVE(NE_READY, NI_RUNNING, NA_READY | NA_RECORD | NA_REPORT), NREPEAT(NE_READY, NF_READY));
	NWALK("a blob fails", NI_FETCHING, NMOVE(NE_BLOB_FAILED, NI_FETCH_FAILED, NA_NOTE_ERROR),
	      NREPEAT(NE_BLOB_FAILED, 0), NMOVE(NE_BLOBS_DONE, NI_ENDED, NA_END | NA_REPORT));
	NWALK("a stop asked while it starts is done once it runs", NI_FETCHING, NMOVE(NE_STOP, NI_FETCHING, NA_DESIRE_STOP),
	      NMOVE_F(NE_BLOBS_DONE, NF_STOP_REQUESTED, NI_SPAWNING, NA_SPAWN),
	      NMOVE_F(NE_SPAWNED, NF_STOP_REQUESTED, NI_RUNNING, NA_STOP_IF_ASKED),
	      NMOVE_F(NE_STOP, NF_STOP_REQUESTED, NI_STOPPING, NA_STOP_GENTLE));
	/* --stop-grace 0 (the libvirt test): the grace passes while the gentle call is on its
	 * worker; the forced call follows when it returns */
	NWALK("grace over during the gentle call", NI_RUNNING, NMOVE(NE_STOP, NI_STOPPING, NA_STOP_GENTLE),
	      NMOVE(NE_GRACE, NI_STOPPING_FORCE, 0), NMOVE(NE_STOP_DONE, NI_STOPPING, NA_STOP_FORCE),
	      NMOVE(NE_STOP_DONE, NI_STOP_SENT, NA_STATUS_CHECK), NMOVE(NE_GONE, NI_ENDED, NA_END | NA_REPORT));
	NWALK("grace over after the gentle call", NI_RUNNING, NMOVE(NE_STOP, NI_STOPPING, 0),
	      NMOVE(NE_STOP_DONE, NI_STOP_SENT, 0), NMOVE(NE_GRACE, NI_STOPPING, NA_STOP_FORCE),
	      NMOVE(NE_EXITED, NI_STOPPING_EXITED, 0), NMOVE(NE_STOP_DONE, NI_ENDED, NA_REAP | NA_END));
	NWALK("it ends by itself", NI_RUNNING, NMOVE(NE_EXITED, NI_ENDED, NA_REAP | NA_END | NA_RECORD | NA_REPORT),
	      NREPEAT(NE_GRACE, 0), NMOVE(NE_STOP, NI_ENDED, NA_REPORT), NMOVE(NE_START_AGAIN, NI_ENDED, NA_REPORT));
	NWALK("a domain gone while its stop call runs", NI_RUNNING, NMOVE(NE_STOP, NI_STOPPING, 0),
	      NMOVE(NE_GONE, NI_ENDED, NA_END), NREPEAT(NE_STOP_DONE, 0));
	NWALK("assignments sent again after a reconnect", NI_RUNNING, NMOVE(NE_START_AGAIN, NI_RUNNING, NA_REPORT),
	      NREPEAT(NE_PURGE, 0));
	NWALK("the spawn fails", NI_SPAWNING, NMOVE(NE_SPAWN_FAILED, NI_ENDED, NA_NOTE_ERROR | NA_END | NA_REPORT));
	/* kill -9 of the node, at each point its record can say */
	NWALK("node killed between the record and the start: adopted", NI_RECOVERING,
	      NMOVE(NE_ADOPTED, NI_RUNNING, NA_WATCH | NA_RECORD | NA_REPORT));
	NWALK("node killed before the start: forgotten, started afresh by the core", NI_RECOVERING,
	      NMOVE(NE_NOT_STARTED, NI_PURGED, NA_FORGET));
	NWALK("node killed while it ran: re-attached", NI_RECOVERING, NMOVE(NE_REATTACHED, NI_RUNNING, NA_WATCH),
	      NMOVE(NE_EXITED, NI_ENDED, NA_REAP | NA_END));
	NWALK("it ended while the node was down", NI_RECOVERING,
	      NMOVE(NE_ENDED_AWAY, NI_ENDED, NA_END | NA_RECORD | NA_REPORT));
	NWALK("its end was recorded before the node died", NI_RECOVERING, NMOVE(NE_RECORD_ENDED, NI_ENDED, NA_REPORT),
	      NMOVE(NE_PURGE, NI_PURGED, NA_REMOVE));
	/* a newer run: the old one is stopped, and at its end the new one prepares */
	NWALK("restart of a running instance", NI_RUNNING,
	      NMOVE(NE_RESTART, NI_STOPPING, NA_DESIRE_STOP | NA_STOP_GENTLE | NA_ARM_GRACE),
	      NMOVE(NE_STOP_DONE, NI_STOP_SENT, 0), NMOVE(NE_EXITED, NI_ENDED, NA_REAP | NA_END | NA_RESTART_IF_ASKED),
	      NMOVE(NE_RESTART, NI_FETCHING, NA_NEW_RUN), NMOVE(NE_BLOBS_DONE, NI_SPAWNING, NA_SPAWN),
	      NMOVE(NE_SPAWNED, NI_RUNNING, NA_WATCH | NA_REPORT));
	NWALK("restart asked while a stop is under way", NI_STOPPING, NREPEAT(NE_RESTART, NF_STOP_REQUESTED),
	      NMOVE(NE_STOP_DONE, NI_STOP_SENT, 0), NMOVE(NE_EXITED, NI_ENDED, NA_RESTART_IF_ASKED));
	NWALK("restart asked while it starts: stopped once it runs, then run anew", NI_SPAWNING,
	      NMOVE(NE_RESTART, NI_SPAWNING, NA_DESIRE_STOP),
	      NMOVE_F(NE_SPAWNED, NF_STOP_REQUESTED, NI_RUNNING, NA_STOP_IF_ASKED));
	NWALK("an ended instance started again", NI_ENDED, NMOVE(NE_RESTART, NI_FETCHING, NA_NEW_RUN));
	NWALK("a purged instance is not started again", NI_PURGED, NREPEAT(NE_RESTART, 0));
	/* refusals: events that cannot come in a state */
	CHECK_EQ_INT(ni_lifecycle_step(NI_RUNNING, NE_SPAWNED, 0).kind, NT_REFUSE);
	CHECK_EQ_INT(ni_lifecycle_step(NI_FETCHING, NE_EXITED, 0).kind, NT_REFUSE);
	CHECK_EQ_INT(ni_lifecycle_step(NI_RUNNING, NE_ADOPTED, 0).kind, NT_REFUSE);
	CHECK_EQ_INT(ni_lifecycle_step(NI_RECOVERING, NE_STOP, 0).kind, NT_REFUSE);
	/* what the registration calls alive */
	CHECK(ni_state_alive(NI_FETCHING) && ni_state_alive(NI_SPAWNING) && ni_state_alive(NI_STOP_SENT));
	CHECK(!ni_state_alive(NI_ENDED) && !ni_state_alive(NI_PURGED) && !ni_state_alive(NI_RECOVERING));
}

/* ---- the tables as docs/architecture.md shows them ---- */

static const char *const core_actions[] = {
	"release", "set node", "reserve", "stop asked", "clear error", "error: node down", "error: gone",
	"take the report", "trace", "forget node", "store", "delete", "schedule ends", "metrics", "publish",
	"wake", "send start", "send stop", "send stop if asked", "send purge", "no flush", "new run",
};
static const char *const node_actions[] = {
	"reap", "stop asked", "note error", "end", "ready", "record", "report", "watch the end", "spawn job",
	"gentle stop job", "forced stop job", "grace timer", "ask status", "boot watch", "stop if asked",
	"forget", "remove", "restart if asked", "new run",
};

static void actions_text(uint32_t a, const char *const *names, size_t n, char *out, size_t len)
{
	size_t used = 0;
	out[0] = '\0';
	for (size_t i = 0; i < n; i++)
		if (a & (1u << i))
			used += (size_t)snprintf(out + used, len - used, "%s%s", used ? ", " : "", names[i]);
	if (!out[0])
		snprintf(out, len, "-");
}

static const char *facts_text(unsigned f, const char *ready, const char *stop)
{
	return f == 0 ? "" : f == 1 ? ready : f == 2 ? stop : "both";
}

static void render_core(FILE *out)
{
	char acts[512];
	fprintf(out, "| state | event | next | actions (in order: memory, store, the world) |\n|---|---|---|---|\n");
	for (int s = 0; s < INST_STATE_COUNT; s++) {
		for (int e = 0; e < IEV_COUNT; e++) {
			const struct inst_transition *t = lifecycle_entry(s, e);
			if (t->kind == T_REFUSE || t->kind == T_UNSET)
				continue;
			if (t->kind == T_REPEAT) {
				fprintf(out, "| %s | %s | (repeat) | - |\n", inst_state_names[s], inst_event_names[e]);
				continue;
			}
			actions_text(t->actions, core_actions, sizeof core_actions / sizeof core_actions[0], acts, sizeof acts);
			fprintf(out, "| %s | %s | %s | %s%s%s |\n", inst_state_names[s], inst_event_names[e],
			        inst_state_names[t->next], acts, t->repeat_if ? "; a repeat when " : "",
			        facts_text(t->repeat_if, "ready", "stop asked"));
		}
	}
	fprintf(out, "\nEvery other pair is refused (logged, nothing done).\n");
}

static void render_node(FILE *out)
{
	char acts[512];
	fprintf(out, "| state | event | next | actions (in order) |\n|---|---|---|---|\n");
	for (int s = 0; s < NI_STATE_COUNT; s++) {
		for (int e = 0; e < NE_COUNT; e++) {
			const struct ni_transition *t = ni_lifecycle_entry(s, e);
			if (t->kind == NT_REFUSE || t->kind == NT_UNSET)
				continue;
			if (t->kind == NT_REPEAT) {
				fprintf(out, "| %s | %s | (repeat) | - |\n", ni_state_names[s], ni_event_names[e]);
				continue;
			}
			actions_text(t->actions, node_actions, sizeof node_actions / sizeof node_actions[0], acts, sizeof acts);
			fprintf(out, "| %s | %s | %s | %s%s%s |\n", ni_state_names[s], ni_event_names[e],
			        ni_state_names[t->next], acts, t->repeat_if ? "; a repeat when " : "",
			        facts_text(t->repeat_if, "ready", "stop asked"));
		}
	}
	fprintf(out, "\nEvery other pair is refused (logged, nothing done).\n");
}

static char *rendered(void (*render)(FILE *))
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	render(f);
	fclose(f);
	return text;
}

/* Every action has a name here (a new one must be named, and so documented). */
static void test_actions_named(void)
{
	CHECK(IA_NEW_RUN == 1u << (sizeof core_actions / sizeof core_actions[0] - 1));
	CHECK(NA_NEW_RUN == 1u << (sizeof node_actions / sizeof node_actions[0] - 1));
}

/* docs/architecture.md holds the tables exactly as the code has them. */
static void test_docs_show_the_tables(void)
{
	char *doc = NULL, *core = rendered(render_core), *node = rendered(render_node);
	if (fs_read_file("docs/architecture.md", 1 << 20, &doc, NULL) < 0) {
		fprintf(stderr, "  cannot read docs/architecture.md (run from the repository root)\n");
		unit_current_failed = 1;
	} else {
		if (!strstr(doc, core))
			fprintf(stderr, "  docs/architecture.md does not show the core's table as it is "
			                "(build/tests/test_lifecycle --print)\n");
		if (!strstr(doc, node))
			fprintf(stderr, "  docs/architecture.md does not show the node's table as it is "
			                "(build/tests/test_lifecycle --print)\n");
		CHECK(strstr(doc, core) != NULL);
		CHECK(strstr(doc, node) != NULL);
	}
	free(doc);
	free(core);
	free(node);
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "--print") == 0) {
		printf("The core's instance:\n\n");
		render_core(stdout);
		printf("\nThe node's instance:\n\n");
		render_node(stdout);
		return 0;
	}
	RUN(test_core_every_cell);
	RUN(test_core_repeats);
	RUN(test_core_reachable);
	RUN(test_core_walks);
	RUN(test_node_every_cell);
	RUN(test_node_everything_ends);
	RUN(test_node_walks);
	RUN(test_actions_named);
	RUN(test_docs_show_the_tables);
	UNIT_END();
}
