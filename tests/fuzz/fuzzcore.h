/* fuzzcore — the fuzz targets' way into the real core: a fresh core per input on a private
 * event_base, its store in a throw-away directory, listening on 127.0.0.1:0; raw request
 * bytes go to it over a loopback TCP connection, exactly as a client's would.
 *
 * Everything here is test code: it aborts on set-up failures (a harness that silently
 * does nothing would make every fuzz run look clean). */
#ifndef MICROVIM_FUZZCORE_H
#define MICROVIM_FUZZCORE_H

#include <event2/buffer.h>
#include <event2/event.h>
#include <jansson.h>
#include <stddef.h>

#include "core/core.h"

/* The node the harness registers when asked to (fuzzcore_setup_node). */
#define FUZZ_NODE_ID "feedfacefeedface"
/* Placeholders an input may carry; replaced with same-length live values before sending
 * (so Content-Length stays right). */
#define FUZZ_TOKEN_PLACEHOLDER "TTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTT" /* 32: the node's token */
#define FUZZ_INSTANCE_PLACEHOLDER "IIIIIIIIIIIIIIII"               /* 16: the first instance id */

struct fuzzcore {
	struct event_base *base;
	struct core *core;
	char dir[256];
	int port;
	int os_port;           /* the OpenStack façade's (core --openstack-listen) */
	char node_token[65];   /* after fuzzcore_setup_node */
	char instance_id[17];  /* after fuzzcore_setup_node: one instance placed on the node */
};

/* Process-wide set-up, once: quiet logs, SIGPIPE ignored, the directory under which
 * every input's data dir is made (/dev/shm when it exists: store fsyncs stay cheap). */
void fuzzcore_init(void);

/* A fresh core. Aborts when it cannot start. */
void fuzzcore_start(struct fuzzcore *fc);
/* Destroys the core (answering held requests), frees the loop, removes the data dir. */
void fuzzcore_stop(struct fuzzcore *fc);

/* Registers FUZZ_NODE_ID (drivers exec with /bin/true allowed, qemu), and creates one exec
 * instance on it; fills node_token and instance_id. Aborts when the core refuses. */
void fuzzcore_setup_node(struct fuzzcore *fc);

/* Sends `len` raw bytes on a new loopback connection after replacing the placeholders,
 * then runs the loop until the core closes the connection, or max_ms passed, or (with
 * quiet_ms > 0) nothing came for quiet_ms once all was sent (4 x quiet_ms before the
 * first byte of an answer). With half_close the client shuts its write side once all is
 * sent (a client that sends one request and waits). The answer's bytes are appended to
 * `answer` when it is not NULL. Returns the number of answer bytes. */
size_t fuzzcore_exchange(struct fuzzcore *fc, const void *data, size_t len, int half_close, int quiet_ms,
                         int max_ms, struct evbuffer *answer);

/* Sends one well-formed request with a JSON body ("" for none) and returns the answer's
 * JSON body; aborts unless the answer has status want_status and a JSON body. */
json_t *fuzzcore_call(struct fuzzcore *fc, const char *method, const char *path, const char *body,
                      int want_status);

/* Destroys the core and starts a new one on the same data dir (a restart: everything
 * accepted must come back from the store). Aborts when the new core does not start. */
void fuzzcore_restart(struct fuzzcore *fc);

/* Status code of the first answer in `answer` ("HTTP/1.1 201 Created" -> 201), or 0. */
int fuzzcore_status(struct evbuffer *answer);

#endif
