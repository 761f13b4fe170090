/* logapi — the node's one HTTP route, for the core (which relays it to clients, GET
 * /v1/instances/ID/logs in docs/API.md):
 *
 *   GET /v1/instances/ID/logs?stream=stdout|stderr|serial&offset=N&wait=S
 *
 * answers up to LOGAPI_CHUNK_MAX bytes of the stream from offset N (moved up to the oldest
 * byte kept: node/logbuf.h), as application/octet-stream with headers
 *   X-Log-Start    offset of the first byte sent      X-Log-Next   offset to ask for next
 *   X-Log-End      the stream's length when read       X-Log-Dropped  bytes dropped (oldest)
 *   X-Log-Ended    1: the instance has ended and nothing is left after X-Log-Next
 * With wait=S (at most LOGAPI_WAIT_MAX) and nothing new at N, the answer waits until the
 * stream grows, the instance ends or S seconds pass (a long-poll, woken by the instance
 * dir's inotify events). Errors are the API's JSON errors: 401 without the node's token (the
 * one the core gave it at registration), 404 for an instance this node does not have, 400
 * for a stream it does not keep.
 *
 * The node listens only for this: the core reaches it at the address it registered with
 * (--logs-listen). Everything runs on the node's loop; reads are of tmpfs files. */
#ifndef MICROVIM_LOGAPI_H
#define MICROVIM_LOGAPI_H

#include <event2/event.h>
#include <stddef.h>
#include <stdint.h>

#include "node/instance.h"

#define LOGAPI_CHUNK_MAX (64 * 1024)
#define LOGAPI_WAIT_MAX 30

struct logapi_options {
	struct event_base *base;
	const char *listen;          /* "HOST:PORT"; port 0: any free one */
	struct instances *instances;
	uint64_t max_bytes;          /* --log-max-bytes: the window readers see */
	/* The bearer token the core must show (the node's current one), or NULL/"" while the
	 * node is not registered (every request is then refused). */
	const char *(*token)(void *arg);
	void *token_arg;
};

struct logapi;

/* Listens. NULL with words in err. */
struct logapi *logapi_new(const struct logapi_options *o, char *err, size_t errlen);
/* "HOST:PORT" where it listens (the port chosen when 0 was asked for). */
const char *logapi_address(const struct logapi *l);
/* An instance's logs grew, or it ended or went: answer its waiting readers (instances hook). */
void logapi_written(struct logapi *l, const char *id);
/* Answers the waiting readers (503), closes. */
void logapi_free(struct logapi *l);

#endif
