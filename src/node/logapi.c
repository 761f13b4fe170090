/* logapi — see logapi.h. */
#include "node/logapi.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/http.h"
#include "common/log.h"
#include "node/logbuf.h"

#define IDLE_TIMEOUT_S (LOGAPI_WAIT_MAX + 30)
#define HEADERS_MAX 8192

/* A read that waits for the stream to grow (wait=S). */
struct parked {
	struct logapi *l;
	struct evhttp_request *req;
	char id[MV_ID_LEN + 1];
	enum log_stream stream;
	uint64_t offset;
	struct event *timer;
	TAILQ_ENTRY(parked) link;
};
TAILQ_HEAD(parked_list, parked);

struct logapi {
	struct logapi_options o;
	struct evhttp *http;
	char address[300];
	struct parked_list parked;
	char buf[LOGAPI_CHUNK_MAX];
};

/* What one request asks for. */
struct log_query {
	char id[MV_ID_LEN + 1];
	enum log_stream stream;
	uint64_t offset;
	double wait_s;
};

static void set_header_u64(struct evkeyvalq *h, const char *name, uint64_t v)
{
	char buf[24];
	snprintf(buf, sizeof buf, "%" PRIu64, v);
	evhttp_add_header(h, name, buf);
}

/* Answers from the stream when there is something to say: bytes, the end, or an error.
 * False (nothing sent) when there is nothing new yet and the reader may wait. */
static bool serve(struct logapi *l, struct evhttp_request *req, const struct log_query *q, bool may_wait)
{
	struct logbuf_span span = {.start = q->offset, .next = q->offset, .end = q->offset};
	struct mv_error err;
	struct evkeyvalq *h;
	struct evbuffer *out;
	bool ended = false;
	size_t n = 0;
	int fd, rc;

	rc = instances_log_open(l->o.instances, q->id, q->stream, &fd, &ended);
	if (rc == -ENOENT) {
		mv_fail(&err, 404, "not_found", "instance %s has no logs on this node (never here, or removed)", q->id);
		http_reply_error(req, &err);
		return true;
	}
	if (rc == -ENODATA) {
		mv_fail(&err, 400, "invalid_query", "instance %s has no %s stream: it is a process (stdout, stderr)", q->id,
		        log_stream_names[q->stream]);
		http_reply_error(req, &err);
		return true;
	}
	if (rc == 0 && fd >= 0) {
		rc = logbuf_read(fd, l->o.max_bytes, q->offset, l->buf, sizeof l->buf, &n, &span);
		close(fd);
	}
	if (rc < 0) {
		mv_fail(&err, 500, "internal", "cannot read the %s log of %s: %s", log_stream_names[q->stream], q->id,
		        strerror(-rc));
		http_reply_error(req, &err);
		return true;
	}
	if (n == 0 && !ended && may_wait)
		return false;
	h = evhttp_request_get_output_headers(req);
	evhttp_add_header(h, "Content-Type", "application/octet-stream");
	set_header_u64(h, "X-Log-Start", span.start);
	set_header_u64(h, "X-Log-Next", span.next);
	set_header_u64(h, "X-Log-End", span.end);
	set_header_u64(h, "X-Log-Dropped", span.dropped);
	evhttp_add_header(h, "X-Log-Ended", ended && span.next >= span.end ? "1" : "0");
	out = evbuffer_new();
	evbuffer_add(out, l->buf, n);
	evhttp_send_reply(req, 200, "OK", out);
	evbuffer_free(out);
	return true;
}

/* ---- waiting readers ---- */

static void parked_free(struct parked *p)
{
	TAILQ_REMOVE(&p->l->parked, p, link);
	event_free(p->timer);
	free(p);
}

/* Answered now: the connection's close no longer concerns the parked read. */
static void parked_answered(struct parked *p)
{
	evhttp_connection_set_closecb(evhttp_request_get_connection(p->req), NULL, NULL);
	parked_free(p);
}

/* The core went away: libevent detached the unanswered request from the dying connection
 * and left it to us, and answering it now frees it. */
static void parked_closed(UNUSED struct evhttp_connection *c, void *arg)
{
	struct parked *p = arg;
	struct evhttp_request *req = p->req;
	parked_free(p);
	if (!evhttp_request_get_connection(req))
		evhttp_send_reply(req, 503, "Gone", NULL);
}

static void parked_timeout(UNUSED evutil_socket_t fd, UNUSED short what, void *arg)
{
	struct parked *p = arg;
	struct log_query q = {.stream = p->stream, .offset = p->offset};
	struct evhttp_request *req = p->req;
	struct logapi *l = p->l;
	memcpy(q.id, p->id, sizeof q.id);
	parked_answered(p);
	serve(l, req, &q, false);
}

static void park(struct logapi *l, struct evhttp_request *req, const struct log_query *q)
{
	struct parked *p = calloc(1, sizeof *p);
	struct timeval tv = clock_timeval(q->wait_s);
	if (!p)
		fatal("calloc");
	*p = (struct parked){.l = l, .req = req, .stream = q->stream, .offset = q->offset};
	memcpy(p->id, q->id, sizeof p->id);
	p->timer = evtimer_new(l->o.base, parked_timeout, p);
	evtimer_add(p->timer, &tv);
	TAILQ_INSERT_TAIL(&l->parked, p, link);
	evhttp_connection_set_closecb(evhttp_request_get_connection(req), parked_closed, p);
}

void logapi_written(struct logapi *l, const char *id)
{
	struct parked *p, *next;
	if (!l)
		return;
	for (p = TAILQ_FIRST(&l->parked); p; p = next) {
		struct log_query q = {.stream = p->stream, .offset = p->offset};
		struct evhttp_request *req = p->req;
		next = TAILQ_NEXT(p, link);
		if (strcmp(p->id, id) != 0)
			continue;
		memcpy(q.id, p->id, sizeof q.id);
		/* the closecb goes first: a reply that fails may close the connection at once */
		evhttp_connection_set_closecb(evhttp_request_get_connection(req), NULL, NULL);
		if (serve(l, req, &q, true))
			parked_free(p);
		else
			evhttp_connection_set_closecb(evhttp_request_get_connection(req), parked_closed, p);
	}
}

/* ---- the route ---- */

static int parse_query(struct evhttp_request *req, const char *path, struct log_query *q, struct mv_error *err)
{
	static const char prefix[] = "/v1/instances/", suffix[] = "/logs";
	char buf[32], *end;
	const char *id = path + sizeof prefix - 1;
	double wait = 0;
	int s;

	if (strncmp(path, prefix, sizeof prefix - 1) != 0 || strlen(id) != MV_ID_LEN + sizeof suffix - 1 ||
	    strcmp(id + MV_ID_LEN, suffix) != 0)
		return mv_fail(err, 404, "not_found", "no route %s on a node (only GET /v1/instances/ID/logs)", path);
	memcpy(q->id, id, MV_ID_LEN);
	q->id[MV_ID_LEN] = '\0';
	if (!http_query(req, "stream", buf, sizeof buf) || (s = log_stream_parse(buf)) < 0)
		return mv_fail(err, 400, "invalid_query", "query parameter stream must be stdout, stderr or serial");
	q->stream = (enum log_stream)s;
	q->offset = 0;
	if (http_query(req, "offset", buf, sizeof buf)) {
		errno = 0;
		q->offset = strtoull(buf, &end, 10);
		if (errno || end == buf || *end || buf[0] == '-')
			return mv_fail(err, 400, "invalid_query", "query parameter offset must be a byte offset (0 or more)");
	}
	if (http_query_double(req, "wait", 0, LOGAPI_WAIT_MAX, &wait, err) < 0)
		return -1;
	q->wait_s = wait;
	return 0;
}

static void on_request(struct evhttp_request *req, void *arg)
{
	struct logapi *l = arg;
	const char *token = l->o.token ? l->o.token(l->o.token_arg) : NULL;
	struct log_query q;
	struct mv_error err;

	if (evhttp_request_get_command(req) != EVHTTP_REQ_GET) {
		mv_fail(&err, 405, "method_not_allowed", "a node serves only GET /v1/instances/ID/logs");
		http_reply_error(req, &err);
		return;
	}
	if (!token || !token[0] || !http_bearer_matches(req, token)) {
		mv_fail(&err, 401, "unauthorized", "a node's logs are for its core: the node's bearer token is needed");
		http_reply_error(req, &err);
		return;
	}
	if (parse_query(req, http_path(req), &q, &err) < 0) {
		http_reply_error(req, &err);
		return;
	}
	if (!serve(l, req, &q, q.wait_s > 0))
		park(l, req, &q);
}

/* ---- set-up ---- */

static int bound_address(struct logapi *l, struct evhttp_bound_socket *bs, const char *host)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;
	int port;
	if (getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&ss, &len) < 0)
		return -errno;
	port = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
	                                : ntohs(((struct sockaddr_in *)&ss)->sin_port);
	snprintf(l->address, sizeof l->address, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
	return 0;
}

/* HOST (an IPv4 or IPv6 address) and PORT as a socket address; its length, 0 if not numeric. */
static int numeric_sockaddr(const char *host, int port, struct sockaddr_storage *ss)
{
	struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
	memset(ss, 0, sizeof *ss);
	if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
		in4->sin_family = AF_INET;
		in4->sin_port = htons((uint16_t)port);
		return (int)sizeof *in4;
	}
	if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)port);
		return (int)sizeof *in6;
	}
	return 0;
}

struct logapi *logapi_new(const struct logapi_options *o, char *err, size_t errlen)
{
	struct logapi *l = calloc(1, sizeof *l);
	struct evhttp_bound_socket *bs = NULL;
	struct evconnlistener *lis;
	struct sockaddr_storage ss;
	int sslen;
	char host[256];
	int port;
	if (!l)
		fatal("calloc");
	l->o = *o;
	TAILQ_INIT(&l->parked);
	/* a numeric address, bound as it is: getaddrinfo's AI_ADDRCONFIG (evhttp_bind_socket)
	 * refuses 127.0.0.1 on a host whose only other interface is a bridge without IPv4 */
	if (http_parse_hostport(o->listen, host, sizeof host, &port) < 0 ||
	    (sslen = numeric_sockaddr(host, port, &ss)) == 0) {
		snprintf(err, errlen, "--logs-listen %s is not a numeric HOST:PORT (e.g. 127.0.0.1:0)", o->listen);
		goto fail;
	}
	if (!(l->http = evhttp_new(o->base)))
		fatalx("evhttp_new");
	evhttp_set_timeout(l->http, IDLE_TIMEOUT_S);
	evhttp_set_max_headers_size(l->http, HEADERS_MAX);
	evhttp_set_max_body_size(l->http, 0);
	evhttp_set_gencb(l->http, on_request, l);
	lis = evconnlistener_new_bind(o->base, NULL, NULL,
	                              LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC | LEV_OPT_REUSEABLE, -1,
	                              (struct sockaddr *)&ss, sslen);
	if (!lis || !(bs = evhttp_bind_listener(l->http, lis)) || bound_address(l, bs, host) < 0) {
		if (lis && !bs)
			evconnlistener_free(lis);
		snprintf(err, errlen, "cannot listen on --logs-listen %s: %s", o->listen, strerror(errno));
		goto fail;
	}
	return l;
fail:
	logapi_free(l);
	return NULL;
}

const char *logapi_address(const struct logapi *l) { return l->address; }

void logapi_free(struct logapi *l)
{
	struct parked *p;
	struct mv_error err;
	if (!l)
		return;
	mv_fail(&err, 503, "unavailable", "the node is stopping");
	while ((p = TAILQ_FIRST(&l->parked))) {
		struct evhttp_request *req = p->req;
		parked_answered(p);
		http_reply_error(req, &err);
	}
	if (l->http)
		evhttp_free(l->http);
	free(l);
}
