/* events — see events.h. Subscribers are held in a list; a closed connection removes its
 * subscriber. */
#include "core/events.h"

#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/http.h"
#include "common/httpguard.h"
#include "common/log.h"
#include "core/cluster.h"

struct subscriber {
	struct evhttp_request *req;
	struct subscriber *next;
	struct events *events;
	char project[MV_NAME_MAX + 1]; /* only this project's instances; "": everything */
};

struct events {
	struct http_guard *guard;
	struct subscriber *subscribers;
	uint64_t seq;
};

struct events *events_new(struct http_guard *guard)
{
	struct events *ev = calloc(1, sizeof *ev);
	if (!ev)
		fatal("calloc");
	ev->guard = guard;
	return ev;
}

void events_free(struct events *ev)
{
	if (!ev)
		return;
	events_close_all(ev);
	free(ev);
}

static void unsubscribe(struct events *ev, struct subscriber *gone)
{
	for (struct subscriber **p = &ev->subscribers; *p; p = &(*p)->next) {
		if (*p == gone) {
			*p = gone->next;
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

/* project: the instance's, or NULL (a node: for those who see everything). */
static void publish(struct events *ev, json_t *e, const char *project)
{
	char *line;
	char when[40];
	json_object_set_new(e, "seq", json_integer((json_int_t)++ev->seq));
	clock_iso8601(clock_wall_us(), when, sizeof when);
	json_object_set_new(e, "time", json_string(when));
	line = json_dumps(e, HTTP_JSON_FLAGS);
	json_decref(e);
	if (!line)
		return;
	for (struct subscriber *s = ev->subscribers; s; s = s->next) {
		struct evbuffer *buf;
		if (s->project[0] && (!project || strcmp(project, s->project) != 0))
			continue;
		buf = evbuffer_new();
		evbuffer_add_printf(buf, "%s\n", line);
		evhttp_send_reply_chunk(s->req, buf);
		evbuffer_free(buf);
	}
	free(line);
}

void events_publish_instance(void *arg, const struct instance *in)
{
	struct events *ev = arg;
	if (!ev->subscribers)
		return;
	publish(ev, json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "type", "instance", "id", in->id, "name",
	                      in->spec.name, "project", in->project, "state", inst_state_names[in->state], "node",
	                      in->node_id), in->project);
}

void events_publish_node(void *arg, const struct node *n, const char *what)
{
	struct events *ev = arg;
	if (!ev->subscribers)
		return;
	publish(ev, json_pack("{s:s, s:s, s:s, s:s}", "type", "node", "id", n->id, "name", n->name, "state", what),
	        NULL);
}

void events_publish_audit(struct events *ev, const json_t *line)
{
	json_t *e;
	if (!ev->subscribers)
		return;
	e = json_deep_copy(line);
	json_object_set_new(e, "type", json_string("audit"));
	publish(ev, e, NULL);
}

void events_subscribe(struct events *ev, struct evhttp_request *req, const char *project)
{
	struct subscriber *s = calloc(1, sizeof *s);
	if (!s)
		fatal("calloc");
	snprintf(s->project, sizeof s->project, "%s", project);
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
	while (ev->subscribers) {
		struct subscriber *s = ev->subscribers;
		http_guard_on_close(ev->guard, s->req, NULL, NULL);
		evhttp_send_reply_end(s->req);
		ev->subscribers = s->next;
		free(s);
	}
}
