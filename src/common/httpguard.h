/* httpguard — the per-connection limits libevent 2.1's evhttp does not enforce itself:
 *
 *   connections per client address  the one over the cap gets 429 and is closed;
 *   connections in all              the one over gets 503 (kept below the open-files
 *                                   limit, so accept() never fails for want of one);
 *   a deadline for a whole request  counted from its first byte, so a client sending one
 *                                   byte every 29 s (slowloris) cannot keep a connection:
 *                                   evhttp's own timeout restarts at every read;
 *   request head size               431 in JSON past head_max (evhttp's own answer is HTML);
 *   body size per route             decided from the request line before evhttp reads the
 *                                   body, so a JSON route holds at most its own cap, not
 *                                   the blob cap; a Content-Length over the route's cap is
 *                                   answered with a JSON 413 at once;
 *   a TLS handshake's deadline      with new_bufferevent making TLS connections, the
 *                                   handshake and the first request's first byte must come
 *                                   within read_timeout_s of the accept (a client dripping
 *                                   a handshake cannot hold a connection either).
 *
 * Over TLS the guard's answers go through the connection's bufferevent, encrypted; a
 * connection refused at accept (over a cap) is closed without an answer, as its handshake
 * has not happened. Plain HTTP sent to a TLS listener fails the handshake: closed, nothing
 * read past the first bytes.
 *
 * Refusals are JSON errors like every other answer of the API. Everything runs on the
 * evhttp's event loop; one guard per evhttp, attached before it serves. */
#ifndef MICROVIM_HTTPGUARD_H
#define MICROVIM_HTTPGUARD_H

#include <event2/event.h>
#include <event2/http.h>
#include <stdbool.h>
#include <stddef.h>

struct http_guard_limits {
	unsigned conns_max;         /* open connections in all; 0: no cap */
	unsigned conns_per_addr;    /* open connections per client address; 0: no cap */
	int read_timeout_s;         /* a request must arrive whole within this; 0: no deadline */
	size_t head_max;            /* request line + headers, bytes; 0: evhttp's cap only (set
	                             * evhttp's above this so that the guard answers, in JSON) */
	size_t body_max;            /* body bytes per request */
	size_t big_body_max;        /* ... for requests whose line begins with one of big_body_lines */
	const char *const *big_body_lines; /* NULL-terminated, e.g. {"PUT /v1/blobs/", NULL}; NULL: none */
	/* Called when a reply handed to evhttp has been written (evhttp allows one such
	 * callback per request, and the guard needs it). */
	void (*on_reply)(struct evhttp_request *req, void *arg);
	void *on_reply_arg;
	/* Makes each connection's bufferevent (tls_server_bufferevent, say); NULL: a plain
	 * socket. One that makes TLS connections must set tls. */
	struct bufferevent *(*new_bufferevent)(struct event_base *base, void *arg);
	void *new_bufferevent_arg;
	bool tls;
};

struct http_guard_stats {
	unsigned long open;               /* connections open now */
	unsigned long refused_full;       /* closed at once: over the cap in all */
	unsigned long refused_per_addr;   /* closed at once: over the per-address cap */
	unsigned long read_timeouts;      /* closed: request not whole within the deadline */
	unsigned long bodies_too_large;   /* answered 413 before the body was read */
	unsigned long heads_too_large;    /* answered 431: request line and headers over the cap */
	unsigned long handshake_timeouts; /* closed: TLS handshake and first byte not within the deadline */
};

struct http_guard;

/* Takes over evhttp_set_bevcb of http. */
struct http_guard *http_guard_attach(struct event_base *base, struct evhttp *http,
                                     const struct http_guard_limits *lim);
/* Call first thing in the request handler: the request has arrived whole, its read
 * deadline stops; the connection is the handler's until the reply is written. */
void http_guard_request_arrived(struct http_guard *g, struct evhttp_request *req);
/* Calls cb(arg) if the connection of req closes (say the client goes away) while this
 * is set; cb NULL unsets it. evhttp has one close callback per connection, the guard's. */
void http_guard_on_close(struct http_guard *g, struct evhttp_request *req, void (*cb)(void *arg),
                         void *arg);
void http_guard_stats(const struct http_guard *g, struct http_guard_stats *out);
/* After evhttp_free (which closes the connections through the guard). */
void http_guard_free(struct http_guard *g);

#endif
