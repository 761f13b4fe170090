/* events — GET /v1/events: a chunked stream, one JSON object per line, for every state
 * change of an instance or node. Subscribers are held in a list; a closed connection
 * removes its subscriber. */
#include <event2/buffer.h>
#include <stdlib.h>

#include "common/clock.h"
#include "common/http.h"
#include "common/httpguard.h"
#include "common/log.h"
#include "core/internal.h"

struct subscriber {
	struct evhttp_request *req;
	struct subscriber *next;
	struct core *core;
};

static void unsubscribe(struct core *c, struct subscriber *gone)
{
	for (struct subscriber **p = &c->subscribers; *p; p = &(*p)->next) {
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
	unsubscribe(s->core, s);
}

static void publish(struct core *c, json_t *ev)
{
	char *line;
	char when[40];
	json_object_set_new(ev, "seq", json_integer((json_int_t)++c->event_seq));
	clock_iso8601(clock_wall_us(), when, sizeof when);
	json_object_set_new(ev, "time", json_string(when));
	line = json_dumps(ev, HTTP_JSON_FLAGS);
	json_decref(ev);
	if (!line)
		return;
	for (struct subscriber *s = c->subscribers; s; s = s->next) {
		struct evbuffer *buf = evbuffer_new();
		evbuffer_add_printf(buf, "%s\n", line);
		evhttp_send_reply_chunk(s->req, buf);
		evbuffer_free(buf);
	}
	free(line);
}

void events_publish_instance(struct core *c, const struct instance *in)
{
	if (!c->subscribers)
		return;
	publish(c, json_pack("{s:s, s:s, s:s, s:s, s:s}", "type", "instance", "id", in->id, "name",
	                     in->name, "state", inst_state_names[in->state], "node", in->node_id));
}

void events_publish_node(struct core *c, const struct node *n, const char *what)
{
	if (!c->subscribers)
		return;
	publish(c, json_pack("{s:s, s:s, s:s, s:s}", "type", "node", "id", n->id, "name", n->name,
	                     "state", what));
}

void events_handle(struct core *c, struct evhttp_request *req)
{
	struct subscriber *s = calloc(1, sizeof *s);
	if (!s)
		fatal("calloc");
	s->req = req;
	s->core = c;
	s->next = c->subscribers;
	c->subscribers = s;
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/x-ndjson");
	http_guard_on_close(c->guard, req, subscriber_closed, s);
	evhttp_send_reply_start(req, 200, "OK");
}

void events_close_all(struct core *c)
{
	while (c->subscribers) {
		struct subscriber *s = c->subscribers;
		http_guard_on_close(c->guard, s->req, NULL, NULL);
		evhttp_send_reply_end(s->req);
		c->subscribers = s->next;
		free(s);
	}
}
