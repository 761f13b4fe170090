/* leaderwatch — GET /v1/leader?known=URL[&wait=S]: which core leads, answered as soon as
 * that is a core other than `known` (at once when it already is), else after wait seconds
 * (default 25, at most 60) with what this core knows then:
 *   {"leader": URL or null, "role": "leader"|"follower", "core": this core's URL}
 *
 * Why: a node talks to the leader only. A leader that stalls (SIGSTOP, a frozen VM) keeps
 * its sockets open and answers nothing, so the node would learn of the new leader only when
 * one of its requests there times out (a heartbeat: up to its interval + 2 s). A node that
 * lists several cores therefore keeps one watch waiting on another core (node/agent.c); the
 * followers read the lease every tick (core/leader.h), so the watch is answered within a
 * tick of the new leader's election, and the node moves at once.
 *
 * A read: any user's token, the cluster token, or a node's join token or credential (what
 * the node registers with; the registration's own token is known to the leader only). One
 * module per core, on its loop. */
#ifndef MICROVIM_LEADERWATCH_H
#define MICROVIM_LEADERWATCH_H

#include <event2/http.h>

struct api;
struct leaderwatch;

struct leaderwatch *leaderwatch_new(struct api *a);
/* The leader this core knows may have changed: answers the watches it concerns. Cheap
 * (a string comparison per watch): the core calls it every tick. */
void leaderwatch_check(struct leaderwatch *w);
/* Answers every watch with 503 (the core is going away). */
void leaderwatch_release(struct leaderwatch *w);
void leaderwatch_free(struct leaderwatch *w);

/* The leader's URL as this core knows it: its own when it leads or is alone, "" when no
 * core leads (an election). */
const char *leaderwatch_leader_url(const struct api *a);

/* GET /v1/leader (a route_fn, api.h). */
void api_leader_watch(struct api *a, struct evhttp_request *req, const char *id);

#endif
