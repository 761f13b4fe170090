/* events — GET /v1/events: a chunked stream, one JSON object per line, for every state
 * change of an instance or node. The cluster's hooks feed it (core.c wires them). Lines
 * are sent in batches, at most 10 a second per stream (a lone line at once). */
#ifndef MICROVIM_EVENTS_H
#define MICROVIM_EVENTS_H

#include <event2/event.h>
#include <event2/http.h>
#include <jansson.h>

struct http_guard;
struct instance;
struct node;
struct events;

/* base: the loop whose timer sends the batches. */
struct events *events_new(struct event_base *base, struct http_guard *guard);
/* Ends every stream and frees. */
void events_free(struct events *ev);
/* Takes req as a subscriber: the stream stays open until the client closes it. project:
 * only that project's instances (no nodes); "": everything. */
void events_subscribe(struct events *ev, struct evhttp_request *req, const char *project);
/* Cluster hooks (arg: struct events *). */
void events_publish_instance(void *arg, const struct instance *in);
void events_publish_node(void *arg, const struct node *n, const char *what);
/* An audit line (audit.h), for the subscribers who see every project. */
void events_publish_audit(struct events *ev, const json_t *line);
/* Sends what is pending, then ends every stream (at shutdown). */
void events_close_all(struct events *ev);

#endif
