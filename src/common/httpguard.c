/* httpguard — per-connection limits in front of evhttp (see httpguard.h).
 *
 * How it sees connections without libevent's internals (2.1 has no accept hook that
 * names the peer, nor a per-route body cap):
 *   1. evhttp_set_bevcb lets the guard make each connection's bufferevent. evhttp then
 *      sets it up and makes it call back with the evhttp_connection as argument; a
 *      deferred event on the same loop pass reads that argument back and adopts the
 *      connection: counts its peer address, owns its close callback.
 *   2. An evbuffer callback on the connection's input sees each chunk before evhttp
 *      parses it: the first byte of a request starts its deadline, the request line sets
 *      the body cap of the route, a Content-Length over that cap is answered at once.
 *   3. The request handler calls http_guard_request_arrived; the reply's completion
 *      callback returns the connection to idle.
 * A connection the guard answers itself (429, 408, 413) gets a complete JSON reply
 * written straight to the socket, since evhttp has no parsed request to answer on. */
#include "common/httpguard.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "common/clock.h"
#include "common/hmap.h"
#include "common/http.h"
#include "common/log.h"

/* A body the guard refused is read and dropped this long at most, so that a client
 * still sending it sees the 413 instead of a connection reset. */
#define LINGER_S 5
/* Bytes of a line the guard looks at: enough for a request line's method and path
 * prefix and for "Content-Length: <20 digits>". */
#define LINE_PEEK 64

enum conn_phase {
	CONN_HANDSHAKE, /* TLS: accepted, no request byte decrypted yet; the deadline runs */
	CONN_IDLE,     /* between requests; evhttp's idle timeout applies */
	CONN_READING,  /* a request has begun arriving: its deadline runs */
	CONN_HANDLED,  /* arrived whole: the handler owns it until the reply is written */
	CONN_DRAINING, /* answered 413 by the guard: dropping the body, then closing */
};

struct guard_addr {
	char addr[48];
	unsigned conns;
};

struct guard_conn {
	struct http_guard *g;
	struct evhttp_connection *evcon;
	struct bufferevent *bev;
	struct evbuffer_cb_entry *input_cb;
	struct event *timer; /* the request's deadline, or the end of a linger */
	struct guard_addr *addr;
	enum conn_phase phase;
	size_t scanned;      /* bytes at the head of the input already looked at */
	size_t head_bytes;   /* this request's line and headers so far */
	bool line_seen;      /* this request's request line */
	bool headers_done;
	size_t body_max;     /* this request's cap */
	void (*on_close)(void *arg);
	void *on_close_arg;
	char key[2 + 2 * sizeof(void *) + 1]; /* "%p" of evcon, the key in g->conns */
};

struct http_guard {
	struct event_base *base;
	struct evhttp *http;
	struct http_guard_limits lim;
	struct event *adopt_ev;
	struct bufferevent **fresh; /* made for evhttp, not adopted yet; each holds a reference */
	size_t n_fresh, cap_fresh;
	struct hmap conns;          /* evcon -> guard_conn */
	struct hmap addrs;          /* peer address -> guard_addr */
	struct http_guard_stats stats;
	int64_t last_refusal_log_us;
};

/* ---- answers written straight to the socket ---- */

static void send_raw_error(struct http_guard *g, struct bufferevent *bev, int status, const char *reason,
                           const char *code, const char *extra_headers, const char *fmt, ...) PRINTF_LIKE(7, 8);

/* Over TLS through the bufferevent (encrypted, sent as the loop runs); plain, straight to
 * the socket, as evhttp may be about to free the bufferevent. */
static void send_raw_error(struct http_guard *g, struct bufferevent *bev, int status, const char *reason,
                           const char *code, const char *extra_headers, const char *fmt, ...)
{
	char msg[512], head[256];
	va_list ap;
	json_t *body;
	char *text;
	int n;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	body = json_pack("{s:{s:s, s:s}}", "error", "code", code, "message", msg);
	text = body ? json_dumps(body, HTTP_JSON_FLAGS) : NULL;
	json_decref(body);
	if (!text) {
		log_warnx("cannot encode the %d answer (%s)", status, code);
		return;
	}
	n = snprintf(head, sizeof head,
	             "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
	             "Connection: close\r\n%s\r\n",
	             status, reason, strlen(text), extra_headers ? extra_headers : "");
	if (g->lim.tls) {
		if (bufferevent_write(bev, head, (size_t)n) < 0 || bufferevent_write(bev, text, strlen(text)) < 0 ||
		    bufferevent_enable(bev, EV_WRITE) < 0)
			log_warnx("answering %d %s: cannot queue the answer", status, code);
		free(text);
		return;
	}
	/* A fresh or idle socket's send buffer is empty: one non-blocking send fits. */
	struct iovec iov[2] = {{head, (size_t)n}, {text, strlen(text)}};
	struct msghdr mh = {.msg_iov = iov, .msg_iovlen = 2};
	if (sendmsg(bufferevent_getfd(bev), &mh, MSG_NOSIGNAL | MSG_DONTWAIT) < 0 && errno != EPIPE &&
	    errno != ECONNRESET)
		log_warnx("answering %d %s: %s", status, code, strerror(errno));
	free(text);
}

/* ---- bookkeeping ---- */

static struct guard_addr *addr_hold(struct http_guard *g, const char *peer)
{
	struct guard_addr *a = hmap_get(&g->addrs, peer);
	if (!a) {
		if (!(a = calloc(1, sizeof *a)))
			fatal("calloc");
		snprintf(a->addr, sizeof a->addr, "%s", peer);
		hmap_put(&g->addrs, a->addr, a);
	}
	a->conns++;
	return a;
}

static void addr_release(struct http_guard *g, struct guard_addr *a)
{
	if (--a->conns == 0) {
		hmap_remove(&g->addrs, a->addr);
		free(a);
	}
}

static struct guard_conn *conn_of(struct http_guard *g, struct evhttp_connection *evcon)
{
	char key[2 + 2 * sizeof(void *) + 1];
	if (!evcon)
		return NULL;
	snprintf(key, sizeof key, "%p", (void *)evcon);
	return hmap_get(&g->conns, key);
}

/* evhttp closes the connection (any reason): the guard lets go of it. */
static void conn_closed(struct evhttp_connection *evcon, void *arg)
{
	struct guard_conn *c = arg;
	struct http_guard *g = c->g;

	if (c->on_close)
		c->on_close(c->on_close_arg);
	evhttp_connection_set_closecb(evcon, NULL, NULL);
	evbuffer_remove_cb_entry(bufferevent_get_input(c->bev), c->input_cb);
	event_free(c->timer);
	hmap_remove(&g->conns, c->key);
	addr_release(g, c->addr);
	g->stats.open--;
	free(c);
}

static void arm_timer(struct guard_conn *c, int seconds)
{
	struct timeval tv = {.tv_sec = seconds};
	if (event_add(c->timer, &tv) < 0)
		log_warnx("cannot arm a connection deadline; this connection is bounded by the idle timeout only");
}

/* ---- a refused body: answered, then read and dropped until the client stops ---- */

static void drain_read(struct bufferevent *bev, UNUSED void *arg)
{
	struct evbuffer *in = bufferevent_get_input(bev);
	evbuffer_drain(in, evbuffer_get_length(in));
}

static void drain_done(UNUSED struct bufferevent *bev, UNUSED short what, void *arg)
{
	struct guard_conn *c = arg;
	evhttp_connection_free(c->evcon); /* conn_closed frees c */
}

/* After the guard's own answer: the connection leaves evhttp's hands (its callbacks are
 * the guard's from now on; evhttp sets them again only when it starts a new request, which
 * it will not), and what the client still sends is read and dropped for LINGER_S at most. */
static void drain_and_close(struct guard_conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);

	/* Over TLS the answer is still in the output buffer, to be encrypted: the client's
	 * close (or the linger's end) closes the connection instead. */
	if (!c->g->lim.tls)
		shutdown(bufferevent_getfd(c->bev), SHUT_WR);
	c->phase = CONN_DRAINING;
	bufferevent_setcb(c->bev, drain_read, NULL, drain_done, c);
	/* What is buffered goes too: evhttp may have a read of it scheduled (a request sent
	 * right behind the previous one), and it must find nothing to parse. */
	evbuffer_drain(in, evbuffer_get_length(in));
	bufferevent_enable(c->bev, EV_READ);
	event_del(c->timer);
	arm_timer(c, LINGER_S);
}

static void refuse_body(struct guard_conn *c, unsigned long long length)
{
	c->g->stats.bodies_too_large++;
	send_raw_error(c->g, c->bev, 413, "Payload Too Large", "body_too_large", NULL,
	               "the body is %llu bytes; at most %zu are accepted here", length, c->body_max);
	drain_and_close(c);
}

static void refuse_head(struct guard_conn *c)
{
	c->g->stats.heads_too_large++;
	send_raw_error(c->g, c->bev, 431, "Request Header Fields Too Large", "headers_too_large",
	               NULL, "the request line and headers exceed %zu bytes, the most accepted",
	               c->g->lim.head_max);
	drain_and_close(c);
}

/* ---- watching a request arrive ---- */

/* One line of the request head (its first LINE_PEEK bytes in `line`, `len` in all).
 * Returns false once the guard has answered the request itself. */
static bool look_at_line(struct guard_conn *c, const char *line, size_t len)
{
	const struct http_guard_limits *lim = &c->g->lim;

	if (!c->line_seen) {
		if (len == 0) /* empty lines before a request line are allowed (RFC 9112, 2.2) */
			return true;
		c->line_seen = true;
		for (const char *const *big = lim->big_body_lines; big && *big; big++) {
			if (strncmp(line, *big, strlen(*big)) == 0) {
				c->body_max = lim->big_body_max;
				evhttp_connection_set_max_body_size(c->evcon, (ev_ssize_t)c->body_max);
				break;
			}
		}
		return true;
	}
	if (len == 0) {
		c->headers_done = true;
		return true;
	}
	if (strncasecmp(line, "content-length:", 15) == 0) {
		char *end;
		const char *p = line + 15 + strspn(line + 15, " \t");
		unsigned long long v = strtoull(p, &end, 10);
		if (end != p && v > c->body_max) {
			refuse_body(c, v);
			return false;
		}
	}
	return true;
}

/* The head so far (plus `partial` bytes of a line not ended yet) over the cap: answered.
 * The guard's cap is below evhttp's, so a client always gets this JSON answer. */
static bool head_too_large(struct guard_conn *c, size_t partial)
{
	if (!c->g->lim.head_max || c->head_bytes + partial <= c->g->lim.head_max)
		return false;
	refuse_head(c);
	return true;
}

/* Looks at the complete lines of the request head not looked at yet. evhttp consumes
 * lines as it parses them (the n_deleted of later callbacks), so each line is seen once. */
static void scan_request(struct guard_conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);

	while (!c->headers_done) {
		struct evbuffer_ptr at, eol;
		size_t eol_len, len;
		char line[LINE_PEEK + 1];
		ev_ssize_t got;

		if (c->scanned >= evbuffer_get_length(in) || evbuffer_ptr_set(in, &at, c->scanned, EVBUFFER_PTR_SET) < 0)
			return;
		eol = evbuffer_search_eol(in, &at, &eol_len, EVBUFFER_EOL_CRLF);
		if (eol.pos < 0) { /* the rest of the line has not arrived */
			head_too_large(c, evbuffer_get_length(in) - c->scanned);
			return;
		}
		len = (size_t)eol.pos - c->scanned;
		c->head_bytes += len + eol_len;
		if (head_too_large(c, 0))
			return;
		got = evbuffer_copyout_from(in, &at, line, len < LINE_PEEK ? len : LINE_PEEK);
		if (got < 0)
			return;
		line[got] = '\0';
		c->scanned = (size_t)eol.pos + eol_len;
		if (!look_at_line(c, line, len))
			return;
	}
}

static void begin_request(struct guard_conn *c)
{
	c->phase = CONN_READING;
	c->scanned = 0;
	c->line_seen = c->headers_done = false;
	c->head_bytes = 0;
	c->body_max = c->g->lim.body_max;
	evhttp_connection_set_max_body_size(c->evcon, (ev_ssize_t)c->body_max);
	if (c->g->lim.read_timeout_s > 0)
		arm_timer(c, c->g->lim.read_timeout_s);
	scan_request(c);
}

/* Runs inside the bufferevent's read, before evhttp sees the new bytes. */
static void input_changed(UNUSED struct evbuffer *in, const struct evbuffer_cb_info *info, void *arg)
{
	struct guard_conn *c = arg;

	c->scanned = c->scanned > info->n_deleted ? c->scanned - info->n_deleted : 0;
	if (info->n_added == 0)
		return;
	if (c->phase == CONN_IDLE || c->phase == CONN_HANDSHAKE)
		begin_request(c);
	else if (c->phase == CONN_READING)
		scan_request(c);
}

/* The request's deadline passed (or a refused body's linger ended). */
static void deadline_passed(UNUSED evutil_socket_t fd, UNUSED short what, void *arg)
{
	struct guard_conn *c = arg;
	struct http_guard *g = c->g;

	if (c->phase == CONN_HANDSHAKE) {
		g->stats.handshake_timeouts++; /* no TLS session to answer in */
	} else if (c->phase == CONN_READING) {
		g->stats.read_timeouts++;
		send_raw_error(g, c->bev, 408, "Request Timeout", "request_timeout", NULL,
		               "the request did not arrive whole within %d s of its first byte; send it at once",
		               g->lim.read_timeout_s);
		if (g->lim.tls) { /* the answer leaves as the loop runs */
			drain_and_close(c);
			return;
		}
	} else if (c->phase != CONN_DRAINING) {
		return; /* the request arrived meanwhile */
	}
	evhttp_connection_free(c->evcon); /* conn_closed frees c */
}

/* ---- adopting the connections evhttp accepted ---- */

static bool log_refusal_now(struct http_guard *g)
{
	if (clock_mono_us() - g->last_refusal_log_us < 10 * 1000000) /* one line per 10 s at most */
		return false;
	g->last_refusal_log_us = clock_mono_us();
	return true;
}

/* Over a cap: answered and closed at once (status 429 or 503). */
static void refuse_connection(struct http_guard *g, struct evhttp_connection *evcon, struct bufferevent *bev,
                              const char *peer, bool full)
{
	if (full) {
		g->stats.refused_full++;
		if (log_refusal_now(g))
			log_warnx("%lu connections open, the most this process takes: refusing more (%lu refused "
			          "so far; raise the open-files limit?)", g->stats.open, g->stats.refused_full);
		if (!g->lim.tls) /* over TLS: closed unanswered, before any handshake work */
			send_raw_error(g, bev, 503, "Service Unavailable", "too_many_connections", "Retry-After: 1\r\n",
			               "the server has %u connections open, the most it takes; retry in a moment",
			               g->lim.conns_max);
	} else {
		g->stats.refused_per_addr++;
		if (log_refusal_now(g))
			log_warnx("%s holds %u connections, the most one address may: refusing more (%lu refused "
			          "so far)", peer, g->lim.conns_per_addr, g->stats.refused_per_addr);
		if (!g->lim.tls)
			send_raw_error(g, bev, 429, "Too Many Requests", "too_many_connections", "Retry-After: 1\r\n",
			               "%s has %u connections open, the most one address may hold; reuse them "
			               "(keep-alive) or close some",
			               peer, g->lim.conns_per_addr);
	}
	evhttp_connection_free(evcon);
}

static void adopt(struct http_guard *g, struct bufferevent *bev, struct evhttp_connection *evcon)
{
	char *host = NULL;
	ev_uint16_t port = 0;
	const char *peer;
	struct guard_addr *a;
	struct guard_conn *c;

	evhttp_connection_get_peer(evcon, &host, &port);
	peer = host ? host : "unknown";
	a = hmap_get(&g->addrs, peer);
	if (g->lim.conns_max && g->stats.open >= g->lim.conns_max) {
		refuse_connection(g, evcon, bev, peer, true);
		return;
	}
	if (g->lim.conns_per_addr && a && a->conns >= g->lim.conns_per_addr) {
		refuse_connection(g, evcon, bev, peer, false);
		return;
	}
	if (!(c = calloc(1, sizeof *c)))
		fatal("calloc");
	c->g = g;
	c->evcon = evcon;
	c->bev = bev;
	c->addr = addr_hold(g, peer);
	c->phase = g->lim.tls ? CONN_HANDSHAKE : CONN_IDLE;
	snprintf(c->key, sizeof c->key, "%p", (void *)evcon);
	if (!(c->timer = evtimer_new(g->base, deadline_passed, c)) ||
	    !(c->input_cb = evbuffer_add_cb(bufferevent_get_input(bev), input_changed, c)))
		fatal("cannot watch a new connection (out of memory)");
	hmap_put(&g->conns, c->key, c);
	g->stats.open++;
	evhttp_connection_set_closecb(evcon, conn_closed, c);
	evhttp_connection_set_max_body_size(evcon, (ev_ssize_t)g->lim.body_max);
	if (evbuffer_get_length(bufferevent_get_input(bev)) > 0)
		begin_request(c);
	else if (c->phase == CONN_HANDSHAKE && g->lim.read_timeout_s > 0)
		arm_timer(c, g->lim.read_timeout_s);
}

static void adopt_fresh(UNUSED evutil_socket_t fd, UNUSED short what, void *arg)
{
	struct http_guard *g = arg;

	/* In the order of accept(), so that the connection past a cap is the newest. */
	for (size_t i = 0; i < g->n_fresh; i++) {
		struct bufferevent *bev = g->fresh[i];
		void *evcon = NULL;
		/* evhttp made this bufferevent call back with its connection; NULL once evhttp
		 * has freed it already (set-up failed). */
		bufferevent_getcb(bev, NULL, NULL, NULL, &evcon);
		if (evcon)
			adopt(g, bev, evcon);
		bufferevent_decref(bev);
	}
	g->n_fresh = 0;
}

static struct bufferevent *make_bufferevent(struct event_base *base, void *arg)
{
	struct http_guard *g = arg;
	/* Plain: options 0, as evhttp's own: evhttp closes the socket itself when it frees the
	 * connection, so the short-lived reference below never holds a socket open. (A TLS
	 * bufferevent closes it itself, when the last reference goes on this loop pass.) */
	struct bufferevent *bev = g->lim.new_bufferevent ? g->lim.new_bufferevent(base, g->lim.new_bufferevent_arg)
	                                                 : bufferevent_socket_new(base, -1, 0);

	if (!bev) {
		log_warnx("cannot make a bufferevent for a new connection; evhttp serves it unguarded");
		return NULL;
	}
	if (g->n_fresh == g->cap_fresh) {
		size_t cap = g->cap_fresh ? 2 * g->cap_fresh : 16;
		struct bufferevent **grown = realloc(g->fresh, cap * sizeof *grown);
		if (!grown)
			fatal("realloc");
		g->fresh = grown;
		g->cap_fresh = cap;
	}
	bufferevent_incref(bev);
	g->fresh[g->n_fresh++] = bev;
	/* Runs on this loop pass after evhttp has set the connection up, before any of its
	 * bytes are read. */
	event_active(g->adopt_ev, EV_TIMEOUT, 1);
	return bev;
}

/* ---- interface ---- */

struct http_guard *http_guard_attach(struct event_base *base, struct evhttp *http,
                                     const struct http_guard_limits *lim)
{
	struct http_guard *g = calloc(1, sizeof *g);
	if (!g)
		fatal("calloc");
	g->base = base;
	g->http = http;
	g->lim = *lim;
	hmap_init(&g->conns);
	hmap_init(&g->addrs);
	if (!(g->adopt_ev = event_new(base, -1, 0, adopt_fresh, g)))
		fatal("event_new");
	evhttp_set_bevcb(http, make_bufferevent, g);
	return g;
}

static void reply_written(struct evhttp_request *req, void *arg)
{
	struct http_guard *g = arg;
	struct guard_conn *c = conn_of(g, evhttp_request_get_connection(req));

	if (g->lim.on_reply)
		g->lim.on_reply(req, g->lim.on_reply_arg);
	if (c && c->phase == CONN_HANDLED) {
		c->phase = CONN_IDLE;
		if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0)
			begin_request(c); /* the client sent its next request already */
	}
}

void http_guard_request_arrived(struct http_guard *g, struct evhttp_request *req)
{
	struct guard_conn *c = conn_of(g, evhttp_request_get_connection(req));

	evhttp_request_set_on_complete_cb(req, reply_written, g);
	if (!c)
		return;
	c->phase = CONN_HANDLED;
	event_del(c->timer);
}

void http_guard_on_close(struct http_guard *g, struct evhttp_request *req, void (*cb)(void *arg), void *arg)
{
	struct guard_conn *c = conn_of(g, evhttp_request_get_connection(req));
	if (!c) {
		if (cb)
			log_warnx("a connection the guard does not know: its close will go unnoticed");
		return;
	}
	c->on_close = cb;
	c->on_close_arg = arg;
}

void http_guard_stats(const struct http_guard *g, struct http_guard_stats *out)
{
	*out = g->stats;
}

void http_guard_free(struct http_guard *g)
{
	const char *key;
	void *v;

	if (!g)
		return;
	while (g->n_fresh > 0) /* not adopted yet: only the references go */
		bufferevent_decref(g->fresh[--g->n_fresh]);
	/* Connections still open (evhttp_free not called first) are let go of here. */
	for (size_t i = 0; hmap_next(&g->conns, &i, &key, &v);) {
		struct guard_conn *c = v;
		evhttp_connection_set_closecb(c->evcon, NULL, NULL);
		evbuffer_remove_cb_entry(bufferevent_get_input(c->bev), c->input_cb);
		event_free(c->timer);
		free(c);
	}
	for (size_t i = 0; hmap_next(&g->addrs, &i, &key, &v);)
		free(v);
	hmap_free(&g->conns);
	hmap_free(&g->addrs);
	event_free(g->adopt_ev);
	free(g->fresh);
	free(g);
}
