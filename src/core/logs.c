/* logs — GET /v1/instances/ID/logs?stream=stdout|stderr|serial&follow=1: an instance's
 * output, relayed from its node (node/logapi.h) to the client as a chunked stream.
 *
 * The core asks the node for the stream piece by piece (at most 64 KiB each) from the
 * offset where the last piece ended, and asks for the next piece only once the client has
 * taken the last one (evhttp_send_reply_chunk_with_cb): a slow client slows the reading,
 * it never makes the core hold more than one piece. Without follow the stream ends at the
 * end of what the node has; with follow the node's answer waits for more (a long-poll) and
 * the stream ends when the instance has ended and everything was sent. A client that goes
 * away ends the relay at once (its request to the node is dropped). */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "common/http.h"
#include "common/log.h"
#include "common/model.h"
#include "core/api.h"
#include "core/cluster.h"
#include "drivers/drivers.h"

#define NODE_WAIT_S 25                   /* each long-poll to the node (its cap is 30) */
#define NODE_TIMEOUT_S (NODE_WAIT_S + 10)

struct relay {
	struct api *api;
	struct evhttp_request *client;     /* NULL once the client is gone */
	struct evhttp_connection *conn;    /* to the node */
	char id[MV_ID_LEN + 1];
	char node_id[MV_ID_LEN + 1];
	char host[WIRE_ADDRESS_MAX + 1];
	char token[65];
	enum log_stream stream;
	uint64_t offset;
	bool follow, started;
	bool in_node_reply;                /* inside the node's answer: evhttp still uses conn */
	TAILQ_ENTRY(relay) link;
};
TAILQ_HEAD(log_relays, relay);

static bool fetch(struct relay *r);

static void conn_free_later(UNUSED evutil_socket_t fd, UNUSED short what, void *conn) { evhttp_connection_free(conn); }

static void relay_free(struct relay *r)
{
	TAILQ_REMOVE(r->api->log_relays, r, link);
	if (r->client)
		http_guard_on_close(r->api->guard, r->client, NULL, NULL);
	/* evhttp goes on using the connection after the answer's callback returns (also when
	 * the answer is a failure to connect): there it is freed on the next turn of the loop */
	if (!r->in_node_reply)
		evhttp_connection_free(r->conn); /* a request in flight goes with it, unanswered */
	else if (event_base_once(r->api->base, -1, EV_TIMEOUT, conn_free_later, r->conn, &(struct timeval){0}) < 0)
		evhttp_connection_free_on_completion(r->conn);
	free(r);
}

/* The client's connection closes. When the client went away, libevent detached the
 * unfinished request from the connection and left it to us: ending the reply frees it.
 * (Still attached, the connection is being freed with it: at shutdown.) */
static void client_gone(void *arg)
{
	struct relay *r = arg;
	struct evhttp_request *req = r->client;
	r->client = NULL;
	if (!evhttp_request_get_connection(req)) {
		if (r->started)
			evhttp_send_reply_end(req);
		else
			evhttp_send_reply(req, 503, "Gone", NULL);
	}
	if (!r->in_node_reply)
		relay_free(r);
}

/* The stream is over: the chunked reply ends. */
static void finish(struct relay *r)
{
	if (r->client) {
		http_guard_on_close(r->api->guard, r->client, NULL, NULL);
		evhttp_send_reply_end(r->client);
		r->client = NULL;
	}
	relay_free(r);
}

/* Before anything was sent: a JSON error instead of the stream. */
static void fail(struct relay *r, int status, const char *code, const char *message)
{
	struct mv_error err;
	if (r->client) {
		http_guard_on_close(r->api->guard, r->client, NULL, NULL);
		mv_fail(&err, status, code, "%s", message);
		http_reply_error(r->client, &err);
		r->client = NULL;
	}
	relay_free(r);
}

/* The node's own JSON error (404 for an instance it removed, ...) goes to the client as it is. */
static void relay_error(struct relay *r, struct evhttp_request *nreq, int status)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(nreq);
	if (r->client && evbuffer_get_length(in) > 0) {
		http_guard_on_close(r->api->guard, r->client, NULL, NULL);
		evhttp_add_header(evhttp_request_get_output_headers(r->client), "Content-Type", "application/json");
		evhttp_send_reply(r->client, status, status == 404 ? "Not Found" : "Error", in);
		r->client = NULL;
		relay_free(r);
		return;
	}
	fail(r, 502, "node_error", "the instance's node could not serve its logs");
}

static uint64_t header_u64(struct evhttp_request *req, const char *name)
{
	const char *v = evhttp_find_header(evhttp_request_get_input_headers(req), name);
	return v ? strtoull(v, NULL, 10) : 0;
}

static void on_flushed(UNUSED struct evhttp_connection *c, void *arg) { (void)fetch(arg); }
static void on_last_flushed(UNUSED struct evhttp_connection *c, void *arg) { finish(arg); }

/* The first piece: the reply begins, with where the stream starts and what was dropped. */
static void start_reply(struct relay *r, struct evhttp_request *nreq)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(r->client);
	const char *names[] = {"X-Log-Start", "X-Log-Dropped"};
	evhttp_add_header(h, "Content-Type", "text/plain; charset=utf-8");
	evhttp_add_header(h, "X-Log-Stream", log_stream_names[r->stream]);
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		const char *v = evhttp_find_header(evhttp_request_get_input_headers(nreq), names[i]);
		if (v)
			evhttp_add_header(h, names[i], v);
	}
	evhttp_send_reply_start(r->client, 200, "OK");
	r->started = true;
}

/* False when r was freed (the stream ended or failed). */
static bool handle_piece(struct relay *r, struct evhttp_request *nreq)
{
	int status = nreq ? evhttp_request_get_response_code(nreq) : 0;
	struct evbuffer *body;
	bool ended, done;
	char why[200];

	if (status == 0) {
		snprintf(why, sizeof why, "node %s did not answer for the logs (is its --logs-listen reachable?)", r->node_id);
		if (r->started)
			finish(r);
		else
			fail(r, 503, "node_unreachable", why);
		return false;
	}
	if (status != 200) {
		if (r->started)
			finish(r); /* removed meanwhile: what was there has been sent */
		else
			relay_error(r, nreq, status);
		return false;
	}
	if (!r->started)
		start_reply(r, nreq);
	body = evhttp_request_get_input_buffer(nreq);
	ended = header_u64(nreq, "X-Log-Ended") == 1;
	r->offset = header_u64(nreq, "X-Log-Next");
	/* without follow: up to what there is now */
	done = ended || (!r->follow && r->offset >= header_u64(nreq, "X-Log-End"));
	if (evbuffer_get_length(body) == 0) {
		if (done) {
			finish(r);
			return false;
		}
		return fetch(r); /* the node's wait ran out: ask again */
	}
	/* the next piece is asked for once the client has taken this one */
	evhttp_send_reply_chunk_with_cb(r->client, body, done ? on_last_flushed : on_flushed, r);
	return true;
}

static void on_node_reply(struct evhttp_request *nreq, void *arg)
{
	struct relay *r = arg;
	if (!r->client) { /* gone while the answer came */
		relay_free(r);
		return;
	}
	r->in_node_reply = true;
	if (handle_piece(r, nreq))
		r->in_node_reply = false;
}

static bool fetch(struct relay *r)
{
	struct evhttp_request *nreq;
	struct evkeyvalq *h;
	char path[160], auth[80];

	if (!r->client) {
		relay_free(r);
		return false;
	}
	nreq = evhttp_request_new(on_node_reply, r);
	h = evhttp_request_get_output_headers(nreq);
	evhttp_add_header(h, "Host", r->host);
	snprintf(auth, sizeof auth, "Bearer %s", r->token);
	evhttp_add_header(h, "Authorization", auth);
	snprintf(path, sizeof path, "/v1/instances/%s/logs?stream=%s&offset=%" PRIu64 "&wait=%d", r->id,
	         log_stream_names[r->stream], r->offset, r->follow ? NODE_WAIT_S : 0);
	if (evhttp_make_request(r->conn, nreq, EVHTTP_REQ_GET, path) < 0) {
		if (r->started)
			finish(r);
		else
			fail(r, 503, "node_unreachable", "cannot ask the instance's node for its logs");
		return false;
	}
	return true;
}

/* ---- the route ---- */

static int parse_follow(struct evhttp_request *req, bool *follow, struct mv_error *err)
{
	char v[16];
	*follow = false;
	if (!http_query(req, "follow", v, sizeof v))
		return 0;
	if (strcmp(v, "1") == 0 || strcmp(v, "true") == 0)
		*follow = true;
	else if (strcmp(v, "0") != 0 && strcmp(v, "false") != 0)
		return mv_fail(err, 400, "invalid_query", "follow must be 1 or 0 (true or false)");
	return 0;
}

/* stream: as asked, else the guest's console for VM drivers and stdout for processes. */
static int parse_stream(struct evhttp_request *req, const struct instance *in, enum log_stream *s,
                        struct mv_error *err)
{
	const struct driver *d = driver_find(in->spec.driver);
	bool boots = d && d->boots_image;
	char v[32];
	int i;
	if (!http_query(req, "stream", v, sizeof v)) {
		*s = boots ? LOG_SERIAL : LOG_STDOUT;
		return 0;
	}
	if ((i = log_stream_parse(v)) < 0)
		return mv_fail(err, 400, "invalid_query", "stream must be stdout, stderr or serial");
	if (!log_stream_kept((enum log_stream)i, boots))
		return mv_fail(err, 400, "invalid_query",
		               "instance %s (driver %s) is a process: it has stdout and stderr, no serial console",
		               in->id, in->spec.driver);
	*s = (enum log_stream)i;
	return 0;
}

/* Where its node serves logs: 0, or an error a person can act on. */
static int node_of(struct api *a, const struct instance *in, struct relay *r, char *host, int *port,
                   struct mv_error *err)
{
	const struct node *n = in->node_id[0] ? cluster_node(a->cluster, in->node_id) : NULL;
	if (!in->node_id[0])
		return mv_fail(err, 409, "not_placed",
		               "instance %s is %s: it has no node yet, so no logs; ask again once it is starting",
		               in->id, inst_state_names[in->state]);
	if (!n || !n->ready)
		return mv_fail(err, 503, "node_unavailable", "node %s of instance %s is not connected: its logs cannot "
		               "be read now", in->node_id, in->id);
	if (http_parse_hostport(n->address, host, WIRE_ADDRESS_MAX + 1, port) < 0 || *port == 0)
		return mv_fail(err, 503, "node_unavailable",
		               "node %s does not serve logs (it registered no address: a microvim node from before logs?)",
		               n->name);
	memcpy(r->node_id, n->id, sizeof r->node_id);
	snprintf(r->host, sizeof r->host, "%s", n->address);
	snprintf(r->token, sizeof r->token, "%s", n->token);
	return 0;
}

void api_instance_logs(struct api *a, struct evhttp_request *req, const char *id)
{
	struct instance *in = cluster_instance(a->cluster, id);
	struct relay *r;
	struct mv_error err;
	char host[WIRE_ADDRESS_MAX + 1];
	int port;

	if (!in || !api_sees(a, in->project)) { /* another project's: as if it did not exist */
		mv_fail(&err, 404, "not_found", "no instance with id %.64s", id);
		http_reply_error(req, &err);
		return;
	}
	if (!(r = calloc(1, sizeof *r)))
		fatal("calloc");
	*r = (struct relay){.api = a, .client = req};
	memcpy(r->id, in->id, sizeof r->id);
	if (parse_stream(req, in, &r->stream, &err) < 0 || parse_follow(req, &r->follow, &err) < 0 ||
	    node_of(a, in, r, host, &port, &err) < 0) {
		http_reply_error(req, &err);
		free(r);
		return;
	}
	if (!(r->conn = evhttp_connection_base_new(a->base, NULL, host, (unsigned short)port)))
		fatalx("cannot create an HTTP connection");
	evhttp_connection_set_timeout(r->conn, NODE_TIMEOUT_S);
	if (!a->log_relays) {
		if (!(a->log_relays = calloc(1, sizeof *a->log_relays)))
			fatal("calloc");
		TAILQ_INIT(a->log_relays);
	}
	TAILQ_INSERT_TAIL(a->log_relays, r, link);
	http_guard_on_close(a->guard, req, client_gone, r);
	fetch(r);
}

void logs_close_all(struct api *a)
{
	struct relay *r;
	if (!a->log_relays)
		return;
	while ((r = TAILQ_FIRST(a->log_relays))) {
		r->in_node_reply = false; /* the loop is not running: no answer is being handled */
		if (r->started)
			finish(r);
		else
			fail(r, 503, "unavailable", "the core is stopping");
	}
	free(a->log_relays);
	a->log_relays = NULL;
}
