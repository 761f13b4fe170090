/* leader — which of several cores over one PostgreSQL database is the leader (issue 14).
 *
 * Only the leader schedules, dispatches to nodes and reconciles; every core answers reads
 * and takes creates and deletes. The election is a session-level advisory lock held on a
 * connection of this module's own (not the store's): the lock goes with its session, so a
 * leader killed (-9) or whose host dies loses it as its connection ends (TCP keepalives and
 * tcp_user_timeout bound a dead host). A stalled leader (SIGSTOP, a frozen VM) keeps its
 * socket open, so the lock alone does not bound it: the leader renews a lease row
 * (ha_leader) every LEADER_TICK_MS, followers fence a leader whose lease is older than
 * LEADER_LEASE_MS (pg_terminate_backend of every session with its application name: the
 * lock's and the store's), and a leader that could not renew for LEADER_SELF_LEASE_MS
 * stops acting (leader_is_leader false), shorter than the followers' wait, so that two
 * cores never act at once. It takes the lead up again only if no other core led meanwhile
 * (PostgreSQL failed over to a standby, say, and it got its lock back first); else it
 * exits (a supervisor restarts it as a follower): nothing it held in memory (queued
 * assignments, waiting clients) can leak into the new leader's term.
 *
 * Followers write creates into the database as pending rows and deletes as intents
 * (table ha_intents: a follower never writes a row the leader owns, so no write of the
 * leader's can undo one), then NOTIFY; the leader LISTENs and picks them up (the "work"
 * hook). The leader's URL is in the lease row: followers redirect nodes there (307).
 *
 * What every core keeps in memory besides (projects, users, tokens, images, node
 * identity) is told to all of them the same way: triggers NOTIFY each committed change,
 * and each core loads that part again (the "catalog" hook), so that a token revoked on
 * one core stops working on all within a loop turn or two.
 *
 * Everything runs on the core's loop; each call is one short round trip. Errors: 0, or -1
 * after logging (opening: words in err). */
#ifndef MICROVIM_LEADER_H
#define MICROVIM_LEADER_H

#include <event2/event.h>
#include <stdbool.h>
#include <stddef.h>

#define LEADER_TICK_MS 100        /* followers try the lock, the leader renews its lease */
#define LEADER_SELF_LEASE_MS 800  /* a leader that could not renew for this long exits */
#define LEADER_LEASE_MS 1200      /* followers fence a leader whose lease is this old */
#define LEADER_FRESH_MS 400       /* a lease renewed this lately is a leader alive (leader_url_live) */
#define LEADER_EXIT_LOST 75       /* the exit status of a core that lost the lead (EX_TEMPFAIL) */

struct leader_hooks {
	void *arg;
	/* This core just became the leader (the lock is held, the lease written);
	 * after_another: another core led before it (a failover, not a first start). */
	void (*promoted)(void *arg, bool after_another);
	/* Leader only: a follower wrote pending instances or intents (NOTIFY), or the lead was
	 * just taken: pick them up. */
	void (*work)(void *arg);
	/* Any core: another core committed a change to table (projects, users, tokens, images,
	 * node_secrets), which every core keeps in memory: load it again. NULL: any of them
	 * may have changed (at the start, after a lost connection). */
	void (*catalog)(void *arg, const char *table);
};

struct leader;

/* Connects to the database at url (the store's), creating the election's tables when
 * missing. app: this core's application name, unique among the cores (the store's
 * connection must carry the same, so that fencing ends both). advertise: the URL nodes and
 * clients reach this core at. Does not try the lock yet (leader_start). */
struct leader *leader_open(struct event_base *base, const char *url, const char *app, const char *advertise,
                           const struct leader_hooks *hooks, char *err, size_t errlen);
/* First try of the lock (now: a core that finds none leads at once), then every tick. */
void leader_start(struct leader *l);
void leader_close(struct leader *l);

/* True when this core leads now: call it before acting as the leader. False from the
 * moment its lease lapsed (it was stalled) until it is renewed. The call that notices the
 * lapse asks the database at once (one round trip, or a reconnect) whether another core
 * leads or led meanwhile, and then exits with LEADER_EXIT_LOST: a stalled leader, continued,
 * handles nothing as the leader, not even the event that woke it. */
bool leader_is_leader(struct leader *l);
/* As leader_url, but on a follower only while the leader's lease, at the last read, was
 * renewed within LEADER_FRESH_MS: a leader that stopped renewing (stalled, soon fenced) is
 * not named. What a node is told when it watches for a new leader (core/leaderwatch.h):
 * sent to a stalled core it would wait a whole timeout there. */
const char *leader_url_live(const struct leader *l);
/* True when this core follows: it does not lead and has not led. A leader whose lease
 * lapsed is no follower: its memory is the truth of its term, which may go on (resume), and
 * must not be overwritten from the database as a follower refreshes (after PostgreSQL
 * failed over to a standby the database may lack the last commits made without waiting
 * for the flush, store.h: a node's "running" report, which the node does not send again). */
bool leader_follows(const struct leader *l);
/* The leader's URL ("" when no core leads, none is known yet, or this one's lease lapsed). */
const char *leader_url(const struct leader *l);

/* A follower: asks the leader to delete instance id, durably, and wakes the leader: as
 * DELETE /v1/instances/ID does (stop it, or remove it once ended), or with
 * remove_when_ended as a server's delete does (stop it, and remove it once it has ended). */
int leader_request_delete(struct leader *l, const char *id, bool remove_when_ended);
/* A follower wrote new pending instances: wakes the leader. */
int leader_notify(struct leader *l);
/* The leader: every delete asked of it, oldest first, to fn; those fn says are done (true)
 * are then forgotten, the others given again at the next call (a server's delete waiting
 * for its instance to end). Forgetting is a write on this module's connection, not in the
 * store's transaction: commit(arg) first makes fn's writes durable, so that a leader killed
 * between the two leaves the intents to the next one rather than losing the deletes (the
 * follower that took one may have answered 204 already). fn must take one twice. */
typedef bool leader_intent_fn(void *arg, const char *instance_id, bool remove_when_ended);
int leader_take_intents(struct leader *l, leader_intent_fn *fn, void (*commit)(void *arg), void *arg);

#endif
