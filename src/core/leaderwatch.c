/* leaderwatch — see leaderwatch.h. */
#include "core/leaderwatch.h"

#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "common/clock.h"
#include "common/corelist.h"
#include "common/http.h"
#include "common/log.h"
#include "common/httpguard.h"
#include "core/api.h"
#include "core/leader.h"

#define WATCH_DEFAULT_S 25.0
#define WATCH_MAX_S 60.0

struct watch {
	TAILQ_ENTRY(watch) link;
	struct leaderwatch *w;
	struct evhttp_request *req;
	struct event *timer;
	char known[CORELIST_URL_MAX];
};

struct leaderwatch {
	struct api *api;
	TAILQ_HEAD(, watch) watches;
};

struct leaderwatch *leaderwatch_new(struct api *a)
{
	struct leaderwatch *w = calloc(1, sizeof *w);
	if (!w)
		fatal("calloc");
	w->api = a;
	TAILQ_INIT(&w->watches);
	return w;
}

const char *leaderwatch_leader_url(const struct api *a)
{
	if (!a->leader)
		return a->url;
	return leader_url_live(a->leader);
}

static void watch_free(struct watch *x)
{
	TAILQ_REMOVE(&x->w->watches, x, link);
	event_free(x->timer);
	free(x);
}

static void answer(struct watch *x)
{
	struct api *a = x->w->api;
	const char *leader = leaderwatch_leader_url(a);
	bool leads = !a->leader || leader_is_leader(a->leader);
	http_guard_on_close(a->guard, x->req, NULL, NULL);
	http_reply_json(x->req, 200, json_pack("{s:s?, s:s, s:s}", "leader", leader[0] ? leader : NULL, "role",
	                                       leads ? "leader" : "follower", "core", a->url));
	watch_free(x);
}

/* Worth telling: a leader is known and it is not the one the watcher knows. */
static bool news_for(const struct watch *x, const char *leader) { return leader[0] && strcmp(leader, x->known) != 0; }

static void on_timeout(UNUSED evutil_socket_t fd, UNUSED short what, void *arg) { answer(arg); }

/* The watcher went away: its request goes with its connection, unanswered. */
static void on_gone(void *arg) { watch_free(arg); }

void api_leader_watch(struct api *a, struct evhttp_request *req, UNUSED const char *id)
{
	struct leaderwatch *w = a->leaderwatch;
	struct mv_error err;
	double wait_s = WATCH_DEFAULT_S;
	struct watch *x = calloc(1, sizeof *x);
	if (!x)
		fatal("calloc");
	if (http_query_double(req, "wait", 0, WATCH_MAX_S, &wait_s, &err) < 0) {
		free(x);
		http_reply_error(req, &err);
		return;
	}
	if (!http_query(req, "known", x->known, sizeof x->known))
		x->known[0] = '\0';
	x->w = w;
	x->req = req;
	x->timer = evtimer_new(a->base, on_timeout, x);
	TAILQ_INSERT_TAIL(&w->watches, x, link);
	if (wait_s <= 0 || news_for(x, leaderwatch_leader_url(a))) {
		answer(x);
		return;
	}
	struct timeval tv = clock_timeval(wait_s);
	evtimer_add(x->timer, &tv);
	http_guard_on_close(a->guard, req, on_gone, x);
}

void leaderwatch_check(struct leaderwatch *w)
{
	const char *leader = leaderwatch_leader_url(w->api);
	struct watch *x, *next;
	if (!leader[0])
		return;
	for (x = TAILQ_FIRST(&w->watches); x; x = next) {
		next = TAILQ_NEXT(x, link);
		if (news_for(x, leader))
			answer(x);
	}
}

void leaderwatch_release(struct leaderwatch *w)
{
	struct mv_error err;
	struct watch *x;
	if (!w)
		return;
	mv_fail(&err, 503, "shutting_down", "the core is shutting down");
	while ((x = TAILQ_FIRST(&w->watches))) {
		http_guard_on_close(w->api->guard, x->req, NULL, NULL);
		http_reply_error(x->req, &err);
		watch_free(x);
	}
}

void leaderwatch_free(struct leaderwatch *w)
{
	leaderwatch_release(w);
	free(w);
}
