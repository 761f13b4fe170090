/* events — see events.h. Subscribers are held in a list; a closed connection removes its
 * subscriber.
 *
 * Why lines are batched: at 100 instantiations/s the cluster changes state ~500 times a
 * second. Written one chunk per line, each line was a write(2) on every subscriber's
 * socket (on loopback the sender also pays the receiver's TCP path) and two epoll_ctl
 * calls to arm and disarm the write event: most of what an open dashboard cost the core.
 * Lines are now encoded once into one buffer shared by all subscribers and sent as one
 * chunk per subscriber at most EVENTS_FLUSH_HZ times a second. When the stream was quiet
 * for a flush interval a line leaves at once (in the same turn of the event loop), so a
 * single change is not delayed; under load a line waits at most one interval. */
#include "core/events.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/http.h"
#include "common/httpguard.h"
#include "common/log.h"
#include "core/cluster.h"

#define EVENTS_FLUSH_HZ 10
#define EVENTS_FLUSH_US (1000000 / EVENTS_FLUSH_HZ)

struct subscriber {
	struct evhttp_request *req;
	struct subscriber *next;
	struct events *events;
	char project[MV_NAME_MAX + 1]; /* only this project's instances; "": everything */
	struct evbuffer *mine;         /* with a project: its own pending lines (the shared ones are everyone's) */
};

struct events {
	struct http_guard *guard;
	struct subscriber *subscribers;
	uint64_t seq;
	struct evbuffer *pending; /* lines not yet sent, the same for every subscriber */
	struct event *flush_ev;   /* armed while lines are pending */
	int64_t last_flush_us;    /* monotonic */
};

static void flush_cb(evutil_socket_t fd, short what, void *arg);

struct events *events_new(struct event_base *base, struct http_guard *guard)
{
	struct events *ev = calloc(1, sizeof *ev);
	if (!ev)
		fatal("calloc");
	ev->guard = guard;
	if (!(ev->pending = evbuffer_new()) || !(ev->flush_ev = evtimer_new(base, flush_cb, ev)))
		fatal("events: out of memory");
	return ev;
}

void events_free(struct events *ev)
{
	if (!ev)
		return;
	events_close_all(ev);
	event_free(ev->flush_ev);
	evbuffer_free(ev->pending);
	free(ev);
}

static void unsubscribe(struct events *ev, struct subscriber *gone)
{
	for (struct subscriber **p = &ev->subscribers; *p; p = &(*p)->next) {
		if (*p == gone) {
			*p = gone->next;
			if (gone->mine)
				evbuffer_free(gone->mine);
			free(gone);
			return;
		}
	}
}

/* The client went away. libevent detached the unfinished request from the dying
 * connection and left it to us: ending the reply now frees it. */
static void subscriber_closed(void *arg)
{
	struct subscriber *s = arg;
	evhttp_send_reply_end(s->req);
	unsubscribe(s->events, s);
}

/* Sends the pending lines to every subscriber, one chunk each. */
static void flush(struct events *ev)
{
	size_t len = evbuffer_get_length(ev->pending);
	const unsigned char *data;

	event_del(ev->flush_ev);
	ev->last_flush_us = clock_mono_us();
	data = len ? evbuffer_pullup(ev->pending, -1) : NULL;
	for (struct subscriber *s = ev->subscribers; s; s = s->next) {
		struct evbuffer *from = s->project[0] ? s->mine : ev->pending;
		size_t n = s->project[0] ? evbuffer_get_length(s->mine) : len;
		struct evbuffer *chunk;
		if (n == 0)
			continue;
		if (!(chunk = evbuffer_new()) ||
		    evbuffer_add(chunk, s->project[0] ? evbuffer_pullup(s->mine, -1) : data, n) < 0)
			fatal("events: out of memory");
		evhttp_send_reply_chunk(s->req, chunk);
		evbuffer_free(chunk);
		if (s->project[0])
			evbuffer_drain(from, n);
	}
	evbuffer_drain(ev->pending, len);
}

static void flush_cb(UNUSED evutil_socket_t fd, UNUSED short what, void *arg)
{
	flush(arg);
}

/* Arms the flush: at once after a quiet interval, else one interval after the last. */
static void flush_soon(struct events *ev)
{
	int64_t wait_us;
	struct timeval tv;

	if (evtimer_pending(ev->flush_ev, NULL))
		return;
	wait_us = ev->last_flush_us + EVENTS_FLUSH_US - clock_mono_us();
	if (wait_us < 0)
		wait_us = 0;
	tv.tv_sec = wait_us / 1000000;
	tv.tv_usec = wait_us % 1000000;
	evtimer_add(ev->flush_ev, &tv);
}

/* True when s needs no escaping inside a JSON string: printable ASCII but '"' and '\\'.
 * Ids, state names and names checked by name_valid() always are. */
static bool json_plain(const char *s)
{
	for (; *s; s++)
		if (*s < 0x20 || *s > 0x7e || *s == '"' || *s == '\\')
			return false;
	return true;
}

/* Gives one line to those who see it: everyone who sees every project (the shared
 * pending lines), and the subscribers of its project. project NULL: a node's or an audit
 * line, for those who see everything only. */
static void deliver(struct events *ev, struct evbuffer *line, const char *project)
{
	size_t len = evbuffer_get_length(line);
	const unsigned char *data = evbuffer_pullup(line, -1);
	for (struct subscriber *s = ev->subscribers; s; s = s->next)
		if (s->project[0] && project && strcmp(project, s->project) == 0)
			evbuffer_add(s->mine, data, len);
	evbuffer_add(ev->pending, data, len);
	flush_soon(ev);
}

static void deliver_json(struct events *ev, json_t *e, const char *project)
{
	char *text = json_dumps(e, HTTP_JSON_FLAGS);
	struct evbuffer *line = evbuffer_new();
	if (!line)
		fatal("events: out of memory");
	if (text) {
		evbuffer_add_printf(line, "%s\n", text);
		deliver(ev, line, project);
	}
	free(text);
	evbuffer_free(line);
}

/* One line {"type","id","name"[,"project"],"state"[,"node"],"seq","time"} ("node" for
 * instance events only). Formatted directly, not through jansson: at ~500 lines a second
 * the objects and their allocations were a quarter of the stream's cost. */
static void publish(struct events *ev, const char *type, const char *id, const char *name, const char *project,
                    const char *state, const char *node)
{
	char when[40];
	uint64_t seq = ++ev->seq;

	clock_iso8601(clock_wall_us(), when, sizeof when);
	if (json_plain(id) && json_plain(name) && (!node || json_plain(node)) && (!project || json_plain(project))) {
		struct evbuffer *line = evbuffer_new();
		if (!line)
			fatal("events: out of memory");
		evbuffer_add_printf(line, "{\"type\":\"%s\",\"id\":\"%s\",\"name\":\"%s\",%s%s%s\"state\":\"%s\"%s%s%s,"
		                          "\"seq\":%llu,\"time\":\"%s\"}\n",
		                    type, id, name, project ? "\"project\":\"" : "", project ? project : "",
		                    project ? "\"," : "", state, node ? ",\"node\":\"" : "", node ? node : "",
		                    node ? "\"" : "", (unsigned long long)seq, when);
		deliver(ev, line, project);
		evbuffer_free(line);
	} else {
		/* a name from before names were checked: let jansson escape it */
		json_t *e = json_pack("{s:s, s:s, s:s, s:s}", "type", type, "id", id, "name", name, "state", state);
		if (!e) /* not UTF-8: nothing a client could read */
			return;
		if (project)
			json_object_set_new(e, "project", json_string(project));
		if (node)
			json_object_set_new(e, "node", json_string(node));
		json_object_set_new(e, "seq", json_integer((json_int_t)seq));
		json_object_set_new(e, "time", json_string(when));
		deliver_json(ev, e, project);
		json_decref(e);
	}
}

void events_publish_instance(void *arg, const struct instance *in)
{
	struct events *ev = arg;
	if (!ev->subscribers)
		return;
	publish(ev, "instance", in->id, in->spec.name, in->project, inst_state_names[in->state], in->node_id);
}

void events_publish_node(void *arg, const struct node *n, const char *what)
{
	struct events *ev = arg;
	if (!ev->subscribers)
		return;
	publish(ev, "node", n->id, n->name, NULL, what, NULL);
}

void events_publish_audit(struct events *ev, const json_t *line)
{
	json_t *e;
	if (!ev->subscribers)
		return;
	e = json_deep_copy(line);
	json_object_set_new(e, "type", json_string("audit"));
	json_object_set_new(e, "seq", json_integer((json_int_t)++ev->seq));
	deliver_json(ev, e, NULL);
	json_decref(e);
}

void events_subscribe(struct events *ev, struct evhttp_request *req, const char *project)
{
	struct subscriber *s = calloc(1, sizeof *s);
	if (!s)
		fatal("calloc");
	snprintf(s->project, sizeof s->project, "%s", project);
	if (s->project[0] && !(s->mine = evbuffer_new()))
		fatal("events: out of memory");
	/* lines published before this subscriber came are not its own: send them first */
	flush(ev);
	s->req = req;
	s->events = ev;
	s->next = ev->subscribers;
	ev->subscribers = s;
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/x-ndjson");
	http_guard_on_close(ev->guard, req, subscriber_closed, s);
	evhttp_send_reply_start(req, 200, "OK");
}

void events_close_all(struct events *ev)
{
	flush(ev);
	while (ev->subscribers) {
		struct subscriber *s = ev->subscribers;
		http_guard_on_close(ev->guard, s->req, NULL, NULL);
		evhttp_send_reply_end(s->req);
		ev->subscribers = s->next;
		if (s->mine)
			evbuffer_free(s->mine);
		free(s);
	}
}
