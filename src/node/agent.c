/* agent — see agent.h. */
#include "node/agent.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/fs.h"
#include "common/log.h"
#include "common/wire.h"
#include "node/netdev.h"

#define POLL_WAIT_S 25
#define CTL_TIMEOUT_S 10
/* A heartbeat unanswered this long, with other cores to go to, moves the node on. A
 * stalled leader (SIGSTOP, a frozen VM) keeps its sockets open: the long-poll and the
 * control requests just wait, for up to CTL_TIMEOUT_S, while a follower led after 1.3 s
 * (its lease, core/leader.h); the node found the new leader 10-14 s after the stall. A
 * core answers a heartbeat in well under a millisecond when it is alive (it writes
 * nothing), so 2 s late is a core that is not there. With one core there is nowhere to
 * go: the usual timeout. */
#define HB_TIMEOUT_SEVERAL_CORES_S 2
#define BACKOFF_MIN_S 0.05
#define BACKOFF_MAX_S 5.0
#define SHUTDOWN_EXTRA_S 2.0
#define HEARTBEAT_DEFAULT_S 5
/* Several cores: the watch on another core for a new leader (core/leaderwatch.h). */
#define WATCH_WAIT_S 25
/* After a watch that failed (that core is down: a killed leader is often the next entry;
 * or too old to know the route), the next entry is watched after a wait that doubles from
 * the first to the last of these while failures follow each other. */
#define WATCH_RETRY_MIN_S 0.1
#define WATCH_RETRY_MAX_S 5.0

struct agent {
	struct agent_options o;
	char node_token[80];
	struct evhttp_connection *poll_conn, *ctl_conn, *report_conn;
	struct evhttp_connection *hb_conn; /* several cores: heartbeats, with their own timeout (HB_TIMEOUT_...) */
	bool registered, registering, shutting_down;
	uint64_t acked;
	double backoff_s;
	int hb_interval_s;
	struct event *hb_timer, *register_timer, *poll_timer, *report_timer, *shutdown_timer;
	struct event *move_timer; /* a move to another core (node/corelink.h) is due */
	bool moving;
	/* several cores: a GET /v1/leader waiting on another core than the one in use, so that
	 * a stalled leader is left as soon as another core leads (not at a heartbeat's timeout) */
	struct evhttp_connection *watch_conn;
	struct event *watch_timer;
	char watch_url[CORELIST_URL_MAX];
	int watch_entry; /* the list's entry watched last */
	double watch_retry_s; /* the wait after the next failure */
	bool watch_warned;
	struct event *batch_tick; /* --notify-batch-ms: the free-running tick that sends reports */
	json_t *bridges_sent;     /* the bridges the core has (from the registration or an update) */
	json_t *bridges_in_flight;
	bool bridges_dirty;       /* they may have changed since: compare and send */
	uint64_t pools_version;   /* of the pools the core last sent (0: none yet) */
	bool stock_dirty, stock_in_flight; /* what is warm here changed; an update is on its way */
	void (*on_shutdown)(void *arg);
	void *on_shutdown_arg;
};

static void register_send(struct agent *a);
static void poll_send(struct agent *a);
static bool core_failed(struct agent *a, int status);
static bool core_redirected(struct agent *a, struct evhttp_request *req);
static void report_flush(struct agent *a);
static void watch_later(struct agent *a, double delay_s);
static void shutdown_check(struct agent *a);
static void bridges_send(struct agent *a);
static void stock_send(struct agent *a);

/* ---- HTTP to the core ---- */

static int send_json(struct agent *a, struct evhttp_connection *conn, enum evhttp_cmd_type method, const char *path,
                     const char *token, json_t *body, void (*cb)(struct evhttp_request *, void *))
{
	struct evhttp_request *req = evhttp_request_new(cb, a);
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	char buf[300];
	snprintf(buf, sizeof buf, "%s:%d", a->o.link->host, a->o.link->port);
	evhttp_add_header(h, "Host", buf);
	if (token && token[0]) {
		snprintf(buf, sizeof buf, "Bearer %s", token);
		evhttp_add_header(h, "Authorization", buf);
	}
	if (body) {
		char *text = json_dumps(body, JSON_COMPACT);
		evhttp_add_header(h, "Content-Type", "application/json");
		evbuffer_add(evhttp_request_get_output_buffer(req), text, strlen(text));
		free(text);
		json_decref(body);
	}
	if (evhttp_make_request(conn, req, method, path) < 0) {
		log_warnx("cannot send %s to the core", path);
		return -1;
	}
	return 0;
}

static int status_of(struct evhttp_request *req) { return req ? evhttp_request_get_response_code(req) : 0; }

static json_t *body_of(struct evhttp_request *req)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	return json_loadb((const char *)evbuffer_pullup(in, (ev_ssize_t)len), len, 0, NULL);
}

static void backoff_later(struct agent *a, struct event *timer)
{
	struct timeval tv = clock_timeval(a->backoff_s);
	a->backoff_s = a->backoff_s * 2 > BACKOFF_MAX_S ? BACKOFF_MAX_S : a->backoff_s * 2;
	evtimer_add(timer, &tv);
}

/* The core forgot us or our token (its restart, or we were away): register again. */
static void need_register(struct agent *a)
{
	if (a->registering || a->shutting_down)
		return;
	a->registered = false;
	evtimer_del(a->hb_timer);
	register_send(a);
}

/* ---- several cores: following the leader, failing over ---- */

static struct evhttp_connection *connection(struct agent *a, int timeout_s);

static void connections_make(struct agent *a)
{
	a->poll_conn = connection(a, POLL_WAIT_S + 10);
	a->ctl_conn = connection(a, CTL_TIMEOUT_S);
	a->report_conn = connection(a, CTL_TIMEOUT_S);
	/* With one core the heartbeats share the control connection: a connection more per
	 * node is a file descriptor more at the core, which holds one per connection of every
	 * node (bench/scale: the hard limit of open files caps the nodes a core takes). */
	a->hb_conn = a->o.link->list.n > 1 ? connection(a, HB_TIMEOUT_SEVERAL_CORES_S) : NULL;
}

/* Points the connections at the link's core. Requests still on the old ones are dropped
 * with them (libevent calls no callback): what they carried is put back to go again. */
static void connections_replace(struct agent *a)
{
	struct evhttp_connection **conns[] = {&a->poll_conn, &a->ctl_conn, &a->report_conn, &a->hb_conn};
	if (reports_in_flight(a->o.reports))
		reports_requeue(a->o.reports);
	if (a->bridges_in_flight) {
		json_decref(a->bridges_in_flight);
		a->bridges_in_flight = NULL;
		a->bridges_dirty = true;
	}
	a->registering = false;
	for (size_t i = 0; i < sizeof conns / sizeof conns[0]; i++) {
		if (*conns[i])
			evhttp_connection_free(*conns[i]);
		*conns[i] = NULL;
	}
	connections_make(a);
}

/* On the loop, never inside a callback of the connections it replaces. */
static void on_move_timer(UNUSED evutil_socket_t fd, UNUSED short what, void *arg)
{
	struct agent *a = arg;
	a->moving = false;
	if (a->shutting_down)
		return;
	connections_replace(a);
	register_send(a);
	watch_later(a, 0); /* the core in use changed: watch another one, knowing this one */
}

/* The link moved: nothing more goes to the old core; the new one gets a registration with
 * the instances alive (as after a core's restart) after delay_s. */
static void move_later(struct agent *a, double delay_s)
{
	struct timeval tv = clock_timeval(delay_s);
	a->moving = true;
	a->registered = false;
	evtimer_del(a->hb_timer);
	evtimer_del(a->poll_timer);
	evtimer_del(a->report_timer);
	evtimer_del(a->register_timer);
	evtimer_add(a->move_timer, &tv);
}

/* No answer, or 502/503/504: with another core in the list, move there (after a backoff
 * when each failed since the last answer) and return true. False when there is no other
 * (a list of one): the caller backs off and tries the same core again. */
static bool core_failed(struct agent *a, int status)
{
	char was[CORELIST_URL_MAX];
	double delay_s;
	if (!corelist_status_fails_over(status) || a->shutting_down)
		return false;
	if (a->moving)
		return true; /* another request saw it first */
	snprintf(was, sizeof was, "%s", a->o.link->url);
	if (!corelink_failed(a->o.link, &delay_s))
		return false;
	if (status)
		log_warnx("the core at %s answered %d; moving to %s in %.2f s", was, status, a->o.link->url, delay_s);
	else
		log_warnx("no answer from the core at %s; moving to %s in %.2f s", was, a->o.link->url, delay_s);
	move_later(a, delay_s);
	return true;
}

/* A follower's 307: the leader is at Location; true when the agent moves there (or the
 * redirect was no core's URL and another core is tried), false when not a 307. */
static bool core_redirected(struct agent *a, struct evhttp_request *req)
{
	const char *loc;
	char was[CORELIST_URL_MAX];
	if (status_of(req) != 307 || a->shutting_down)
		return false;
	if (a->moving)
		return true;
	loc = evhttp_find_header(evhttp_request_get_input_headers(req), "Location");
	snprintf(was, sizeof was, "%s", a->o.link->url);
	if (!loc || corelink_redirect(a->o.link, loc) < 0) {
		log_warnx("the core at %s redirected to \"%.200s\", which is no other core's URL", was, loc ? loc : "");
		return core_failed(a, 0);
	}
	log_info("the core at %s is a follower: moving to the leader at %s", was, a->o.link->url);
	move_later(a, 0);
	return true;
}

/* ---- register and heartbeat ---- */

static json_t *bridges_json(void)
{
	json_t *list = json_array();
	char **names = NULL;
	if (netdev_bridges(&names) == 0) {
		for (int i = 0; names[i]; i++)
			if (name_valid(names[i]))
				json_array_append_new(list, json_string(names[i]));
		netdev_list_free(names);
	}
	return list;
}

/* Register says who we are, what we offer, and which instances we have alive, so that
 * the core can reconcile its record with ours. */
static json_t *register_body(struct agent *a)
{
	struct wire_register r = {.cpus = a->o.cpus, .memory_mb = a->o.memory_mb, .drivers = (json_t *)a->o.drivers_info,
	                          .labels = (json_t *)a->o.labels, .bridges = bridges_json(),
	                          .run_dir = json_string(a->o.run_dir)};
	json_t *body;
	snprintf(r.id, sizeof r.id, "%s", a->o.id);
	snprintf(r.name, sizeof r.name, "%s", a->o.name);
	snprintf(r.address, sizeof r.address, "%s", a->o.address ? a->o.address : "");
	instances_alive_ids(a->o.instances, &r.alive, &r.n_alive);
	body = wire_register_to_json(&r);
	json_decref(a->bridges_sent);
	a->bridges_sent = r.bridges; /* taken */
	json_decref(r.run_dir);
	free(r.alive);
	return body;
}

/* The core's error message of a refused request, in why; false when it gave none. */
static bool core_said(struct evhttp_request *req, char *why, size_t len)
{
	json_t *b = body_of(req);
	const char *msg = json_string_value(json_object_get(json_object_get(b, "error"), "message"));
	if (msg)
		snprintf(why, len, "%s: %s", status_of(req) == 401 ? "unauthorized: check --token-file" : "forbidden", msg);
	json_decref(b);
	return msg != NULL;
}

/* A join gave this node its own credential: kept in the data dir (0600; written on the
 * loop once, as the node id is) before it is used, so that a restart registers with it and
 * the join token is not needed again. -1 when it cannot be kept: the registration is
 * retried (a second join of the same id is refused, so the node says why loudly). */
static int keep_credential(struct agent *a, const char *credential)
{
	int rc;
	if (!credential)
		return 0;
	if (strlen(credential) > AGENT_TOKEN_MAX || !a->o.credential_path) {
		log_warnx("the core sent a credential this node cannot keep");
		return -1;
	}
	if ((rc = fs_write_atomic(a->o.credential_path, credential, strlen(credential), true)) < 0) {
		log_warnx("cannot keep the node's credential in %s: %s (the core will refuse a second join of this "
		          "node id: free the disk, then `microvim nodes revoke %s` and join with a new id)",
		          a->o.credential_path, strerror(-rc), a->o.id);
		return -1;
	}
	snprintf(a->o.core_token, AGENT_TOKEN_MAX + 1, "%s", credential);
	log_info("joined: this node's credential is in %s (mode 0600); it registers with it from now on",
	         a->o.credential_path);
	return 0;
}

static void on_register(struct evhttp_request *req, void *arg)
{
	struct agent *a = arg;
	int status = status_of(req);
	json_t *b;
	struct timeval tv;

	a->registering = false;
	if (a->shutting_down || core_redirected(a, req) || core_failed(a, status))
		return;
	if (status != 200 || !(b = body_of(req))) {
		char why[512];
		if (status == 0 && tls_connection_error(a->ctl_conn, why, sizeof why))
			; /* the TLS layer's reason: the core's certificate, or ours */
		else if ((status == 401 || status == 403) && core_said(req, why, sizeof why))
			; /* the core's own words: an expired join token, a revoked node, another's id */
		else
			snprintf(why, sizeof why, "%s",
			         status == 401   ? "unauthorized: check --token-file"
			         : status == 403 ? "forbidden: the core wants a client certificate its --tls-client-ca "
			                           "signed (--tls-cert, --tls-key)"
			         : status        ? "refused"
			         /* TLS 1.3: a server that refuses our certificate may reset the connection
			          * before its alert is read */
			         : a->o.tls ? "no answer: the core is down, or it closed the connection (does its "
			                      "--tls-client-ca take this node's --tls-cert?)"
			                    : "no answer");
		if (a->backoff_s <= BACKOFF_MIN_S)
			log_warnx("cannot register with %s (%s); retrying with backoff", a->o.link->url, why);
		backoff_later(a, a->register_timer);
		return;
	}
	if (keep_credential(a, json_string_value(json_object_get(b, "credential"))) < 0) {
		json_decref(b);
		backoff_later(a, a->register_timer);
		return;
	}
	snprintf(a->node_token, sizeof a->node_token, "%s", json_string_value(json_object_get(b, "token")) ?: "");
	a->hb_interval_s = (int)json_integer_value(json_object_get(b, "heartbeat_interval_s"));
	if (a->hb_interval_s <= 0)
		a->hb_interval_s = HEARTBEAT_DEFAULT_S;
	json_decref(b);
	a->registered = true;
	a->backoff_s = BACKOFF_MIN_S;
	log_info("registered with %s as %s (%s)", a->o.link->url, a->o.name, a->o.id);
	corelink_answered(a->o.link);
	if (a->watch_timer && !a->watch_conn && !evtimer_pending(a->watch_timer, NULL))
		watch_later(a, 0); /* the first registration: the watch starts */
	tv = clock_timeval(a->hb_interval_s);
	evtimer_add(a->hb_timer, &tv);
	a->acked = 0; /* a core that restarted numbers its assignments anew */
	a->pools_version = 0; /* the core may have other pools now: it sends them again */
	a->stock_dirty = true;
	poll_send(a);
	report_flush(a);
	bridges_send(a); /* a change seen while registering */
	stock_send(a);
}

static void register_send(struct agent *a)
{
	if (a->registering || a->shutting_down)
		return;
	a->registering = true;
	if (send_json(a, a->ctl_conn, EVHTTP_REQ_POST, "/v1/nodes/register", a->o.core_token, register_body(a),
	              on_register) < 0) {
		a->registering = false;
		backoff_later(a, a->register_timer);
	}
}

static void on_register_timer(UNUSED evutil_socket_t fd, UNUSED short what, void *arg) { register_send(arg); }

static void on_heartbeat(struct evhttp_request *req, void *arg)
{
	struct agent *a = arg;
	int status = status_of(req);
	json_t *b;
	if (core_redirected(a, req) || core_failed(a, status))
		return;
	if (status == 401 || status == 404)
		need_register(a);
	/* the interval grows with the cluster (the core's --heartbeat-rate-max): the next beat's
	 * timer takes it */
	if (status == 200 && (b = body_of(req))) {
		int s = (int)json_integer_value(json_object_get(b, "heartbeat_interval_s"));
		if (s > 0)
			a->hb_interval_s = s;
		json_decref(b);
	}
}

static void on_heartbeat_timer(UNUSED evutil_socket_t fd, UNUSED short what, void *arg)
{
	struct agent *a = arg;
	char path[128];
	struct timeval tv = clock_timeval(a->hb_interval_s);
	if (!a->registered || a->shutting_down)
		return;
	bridges_send(a); /* one that failed before */
	snprintf(path, sizeof path, "/v1/nodes/%s/heartbeat", a->o.id);
	send_json(a, a->hb_conn ? a->hb_conn : a->ctl_conn, EVHTTP_REQ_POST, path, a->node_token, NULL, on_heartbeat);
	evtimer_add(a->hb_timer, &tv);
}

/* ---- several cores: watching another core for a new leader ---- */

/* The next entry of the list after the one watched last that is not the core in use;
 * false when there is none (a list of one). */
static bool watch_next_target(struct agent *a)
{
	const struct corelist *l = &a->o.link->list;
	for (int k = 0; k < l->n; k++) {
		a->watch_entry = (a->watch_entry + 1) % l->n;
		if (strcmp(l->urls[a->watch_entry], a->o.link->url) != 0) {
			snprintf(a->watch_url, sizeof a->watch_url, "%s", l->urls[a->watch_entry]);
			return true;
		}
	}
	return false;
}

static void on_watch(struct evhttp_request *req, void *arg);
static void watch_failed(struct agent *a);

/* On the watch timer only: it frees the connection of the watch before (never inside
 * that connection's own callback). */
static void watch_send(struct agent *a)
{
	char host[256], path[CORELIST_URL_MAX * 3 + 64], hostport[300], auth[300];
	int port;
	char *known;
	struct evhttp_request *req;
	if (a->watch_conn) {
		evhttp_connection_free(a->watch_conn);
		a->watch_conn = NULL;
	}
	if (a->shutting_down || !watch_next_target(a) || http_parse_url(a->watch_url, host, sizeof host, &port) < 0)
		return;
	if (!(a->watch_conn = tls_http_connection(a->o.base, a->o.tls, host, port)))
		fatalx("cannot create an HTTP connection");
	evhttp_connection_set_timeout(a->watch_conn, WATCH_WAIT_S + 10);
	if (!(known = evhttp_encode_uri(a->o.link->url)))
		fatal("evhttp_encode_uri");
	snprintf(path, sizeof path, "/v1/leader?known=%s&wait=%d", known, WATCH_WAIT_S);
	free(known);
	req = evhttp_request_new(on_watch, a);
	snprintf(hostport, sizeof hostport, "%s:%d", host, port);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Host", hostport);
	if (a->o.core_token && a->o.core_token[0]) {
		snprintf(auth, sizeof auth, "Bearer %s", a->o.core_token);
		evhttp_add_header(evhttp_request_get_output_headers(req), "Authorization", auth);
	}
	if (evhttp_make_request(a->watch_conn, req, EVHTTP_REQ_GET, path) < 0) {
		log_warnx("cannot send a leader watch to %s", a->watch_url);
		watch_failed(a);
	}
}

static void watch_failed(struct agent *a)
{
	watch_later(a, a->watch_retry_s);
	a->watch_retry_s = a->watch_retry_s * 2 > WATCH_RETRY_MAX_S ? WATCH_RETRY_MAX_S : a->watch_retry_s * 2;
}

static void on_watch_timer(UNUSED evutil_socket_t fd, UNUSED short what, void *arg) { watch_send(arg); }

static void watch_later(struct agent *a, double delay_s)
{
	struct timeval tv = clock_timeval(delay_s);
	if (a->watch_timer && !a->shutting_down)
		evtimer_add(a->watch_timer, &tv);
}

/* The watched core answered: a leader other than the core in use is news, and the node
 * moves there as after a redirect. Any failure: another entry is watched a while later
 * (the heartbeat's timeout still moves the node if the watch cannot). */
static void on_watch(struct evhttp_request *req, void *arg)
{
	struct agent *a = arg;
	int status = status_of(req);
	json_t *b;
	const char *leader;
	if (a->shutting_down)
		return;
	if (status != 200 || !(b = body_of(req))) {
		if (status && status != 503 && !a->watch_warned) {
			a->watch_warned = true; /* once: an older core without the route, a token it refuses */
			log_warnx("the core at %s answers a leader watch with %d; a stalled leader is then noticed by a "
			          "heartbeat's timeout only", a->watch_url, status);
		}
		watch_failed(a);
		return;
	}
	a->watch_retry_s = WATCH_RETRY_MIN_S;
	leader = json_string_value(json_object_get(b, "leader"));
	if (leader && strcmp(leader, a->o.link->url) != 0 && !a->moving) {
		char was[CORELIST_URL_MAX];
		snprintf(was, sizeof was, "%s", a->o.link->url);
		if (corelink_redirect(a->o.link, leader) == 0) {
			log_info("the core at %s says %s leads now (was %s): moving there", a->watch_url, a->o.link->url, was);
			move_later(a, 0); /* its timer watches again */
		} else {
			watch_later(a, WATCH_RETRY_MAX_S); /* not a URL it can use: no spin */
		}
	} else {
		watch_later(a, 0);
	}
	json_decref(b);
}

/* ---- bridges made or deleted while the node runs ---- */

static void on_bridges(struct evhttp_request *req, void *arg)
{
	struct agent *a = arg;
	int status = status_of(req);
	json_t *sent = a->bridges_in_flight;
	a->bridges_in_flight = NULL;
	if (a->shutting_down || core_redirected(a, req)) {
		json_decref(sent);
		a->bridges_dirty = !a->shutting_down;
		return;
	}
	if (status == 200) {
		json_decref(a->bridges_sent);
		a->bridges_sent = sent;
		bridges_send(a); /* changed again meanwhile */
		return;
	}
	json_decref(sent);
	if (status == 401 || status == 404) {
		need_register(a); /* the registration carries them */
		return;
	}
	log_warnx("the core did not take the node's bridges (%s); trying again with the next heartbeat",
	          status ? "refused" : "no answer");
	a->bridges_dirty = true;
}

/* Sends the bridges when they differ from what the core has; one update in flight at a
 * time; a failed one is tried again with the next heartbeat. */
static void bridges_send(struct agent *a)
{
	char path[128];
	json_t *now;
	if (!a->bridges_dirty || !a->registered || a->bridges_in_flight || a->shutting_down || a->on_shutdown)
		return;
	a->bridges_dirty = false;
	now = bridges_json();
	if (a->bridges_sent && json_equal(now, a->bridges_sent)) {
		json_decref(now);
		return;
	}
	log_info("bridges changed: advertising %zu to the core", json_array_size(now));
	snprintf(path, sizeof path, "/v1/nodes/%s/bridges", a->o.id);
	a->bridges_in_flight = now;
	if (send_json(a, a->ctl_conn, EVHTTP_REQ_PUT, path, a->node_token, json_pack("{s:O}", "bridges", now),
	              on_bridges) < 0) {
		a->bridges_in_flight = NULL;
		json_decref(now);
		a->bridges_dirty = true;
	}
}

void agent_bridges_changed(struct agent *a)
{
	a->bridges_dirty = true;
	bridges_send(a);
}

/* ---- warm pools: what is warm here ---- */

static void on_stock(struct evhttp_request *req, void *arg)
{
	struct agent *a = arg;
	int status = status_of(req);
	a->stock_in_flight = false;
	if (a->shutting_down)
		return;
	if (status == 401 || status == 404) {
		need_register(a); /* sent again once registered */
		return;
	}
	if (status != 200)
		a->stock_dirty = true; /* with the next change, or registration */
	stock_send(a);
}

static void stock_send(struct agent *a)
{
	char path[128];
	if (!a->stock_dirty || !a->o.pools || !a->registered || a->stock_in_flight || a->shutting_down ||
	    a->on_shutdown)
		return;
	a->stock_dirty = false;
	snprintf(path, sizeof path, "/v1/nodes/%s/pools", a->o.id);
	a->stock_in_flight = true;
	if (send_json(a, a->ctl_conn, EVHTTP_REQ_PUT, path, a->node_token,
	              json_pack("{s:o}", "pools", warm_pools_stock(a->o.pools)), on_stock) < 0) {
		a->stock_in_flight = false;
		a->stock_dirty = true;
	}
}

void agent_pools_changed(struct agent *a)
{
	a->stock_dirty = true;
	stock_send(a);
}

/* {"version": V, "list": [...]}: what the core wants kept warm here now. */
static void handle_pools(struct agent *a, const json_t *p)
{
	const json_t *v = json_object_get(p, "version"), *list = json_object_get(p, "list");
	if (!a->o.pools || !json_is_integer(v) || !json_is_array(list))
		return;
	a->pools_version = (uint64_t)json_integer_value(v);
	warm_pools_set(a->o.pools, list);
}

/* ---- reports ---- */

void agent_reports_pushed(struct agent *a)
{
	/* With --notify-batch-ms the report waits for the next batch tick (on_batch_tick). */
	if (a->o.notify_batch_ms == 0)
		report_flush(a);
	shutdown_check(a);
}

static void on_reports(struct evhttp_request *req, void *arg)
{
	struct agent *a = arg;
	int status = status_of(req);
	if (status == 200) {
		reports_taken(a->o.reports);
		if (a->o.notify_batch_ms == 0)
			report_flush(a);
	} else if (status == 400) {
		reports_drop(a->o.reports);
	} else {
		reports_requeue(a->o.reports);
		if (core_redirected(a, req) || core_failed(a, status))
			; /* sent again once registered where the link points now */
		else if (status == 401 || status == 404)
			need_register(a);
		else
			backoff_later(a, a->report_timer);
	}
	shutdown_check(a);
}

static void report_flush(struct agent *a)
{
	char path[128];
	json_t *body;
	if (!a->registered || !(body = reports_take(a->o.reports)))
		return;
	snprintf(path, sizeof path, "/v1/nodes/%s/reports", a->o.id);
	if (send_json(a, a->report_conn, EVHTTP_REQ_POST, path, a->node_token, body, on_reports) < 0) {
		reports_requeue(a->o.reports);
		backoff_later(a, a->report_timer);
	}
}

static void on_report_timer(UNUSED evutil_socket_t fd, UNUSED short what, void *arg) { report_flush(arg); }

/* The stock behaviour the paper measured: Nomad's client sends its batched allocation
 * updates on a free-running 200 ms ticker, not on a timer started by the first update, so
 * a report waits anywhere between 0 and the period, depending on where in the period it
 * was queued. The tick runs from the node's start, whether or not anything is queued. */
static void on_batch_tick(UNUSED evutil_socket_t fd, UNUSED short what, void *arg) { report_flush(arg); }

/* ---- the long-poll ---- */

static void handle_assignment(struct agent *a, const json_t *j)
{
	struct wire_assignment as;
	struct mv_error err;
	const json_t *seq = json_object_get(j, "seq");

	if (json_is_integer(seq) && (uint64_t)json_integer_value(seq) <= a->acked)
		return; /* had it already */
	if (wire_assignment_parse(&as, j, &err) < 0) {
		if (json_is_integer(seq) && json_integer_value(seq) > 0)
			a->acked = (uint64_t)json_integer_value(seq);
		log_warnx("malformed assignment %" PRId64 " ignored: %s", (int64_t)json_integer_value(seq), err.message);
		return;
	}
	a->acked = as.seq;
	switch (as.op) {
	case NODE_OP_START: instances_start(a->o.instances, as.id, &as.spec, as.run); break;
	case NODE_OP_STOP: instances_stop(a->o.instances, as.id); break;
	case NODE_OP_PURGE: instances_purge(a->o.instances, as.id); break;
	case NODE_OP_COUNT: break;
	}
	wire_assignment_free(&as);
}

static void on_poll(struct evhttp_request *req, void *arg)
{
	struct agent *a = arg;
	int status = status_of(req);
	const json_t *as;
	size_t i;
	json_t *b;

	if (a->shutting_down || a->on_shutdown)
		return;
	if (status == 200 && (b = body_of(req))) {
		a->backoff_s = BACKOFF_MIN_S;
		/* pools first: a start in the same answer may take from them */
		handle_pools(a, json_object_get(b, "pools"));
		json_array_foreach(json_object_get(b, "assignments"), i, as) {
			if (i >= WIRE_ASSIGNMENTS_MAX)
				break;
			handle_assignment(a, as);
		}
		json_decref(b);
		poll_send(a);
		return;
	}
	if (core_redirected(a, req) || core_failed(a, status))
		return;
	if (status == 401 || status == 404) {
		need_register(a);
		return;
	}
	backoff_later(a, a->poll_timer);
}

static void poll_send(struct agent *a)
{
	char path[200];
	if (!a->registered || a->shutting_down || a->on_shutdown)
		return;
	snprintf(path, sizeof path, "/v1/nodes/%s/assignments?after=%" PRIu64 "&wait=%d%s", a->o.id, a->acked,
	         POLL_WAIT_S, a->o.pools ? "&pools=" : "");
	if (a->o.pools)
		snprintf(path + strlen(path), sizeof path - strlen(path), "%" PRIu64, a->pools_version);
	if (send_json(a, a->poll_conn, EVHTTP_REQ_GET, path, a->node_token, NULL, on_poll) < 0)
		backoff_later(a, a->poll_timer);
}

static void on_poll_timer(UNUSED evutil_socket_t fd, UNUSED short what, void *arg) { poll_send(arg); }

/* ---- start and orderly exit ---- */

static struct evhttp_connection *connection(struct agent *a, int timeout_s)
{
	struct evhttp_connection *c = tls_http_connection(a->o.base, a->o.tls, a->o.link->host, a->o.link->port);
	if (!c)
		fatalx("cannot create an HTTP connection");
	evhttp_connection_set_timeout(c, timeout_s);
	return c;
}

struct agent *agent_new(const struct agent_options *o)
{
	struct agent *a = calloc(1, sizeof *a);
	if (!a)
		fatal("calloc");
	a->o = *o;
	a->backoff_s = BACKOFF_MIN_S;
	connections_make(a);
	a->hb_timer = evtimer_new(o->base, on_heartbeat_timer, a);
	a->register_timer = evtimer_new(o->base, on_register_timer, a);
	a->poll_timer = evtimer_new(o->base, on_poll_timer, a);
	a->report_timer = evtimer_new(o->base, on_report_timer, a);
	a->move_timer = evtimer_new(o->base, on_move_timer, a);
	if (o->link->list.n > 1)
		a->watch_timer = evtimer_new(o->base, on_watch_timer, a);
	a->watch_retry_s = WATCH_RETRY_MIN_S;
	if (o->notify_batch_ms > 0)
		a->batch_tick = event_new(o->base, -1, EV_PERSIST, on_batch_tick, a);
	return a;
}

void agent_start(struct agent *a)
{
	if (a->batch_tick) {
		struct timeval tv = clock_timeval(a->o.notify_batch_ms / 1000.0);
		event_add(a->batch_tick, &tv);
	}
	register_send(a);
}

static void shutdown_finish(struct agent *a)
{
	void (*done)(void *) = a->on_shutdown;
	if (!done)
		return;
	a->on_shutdown = NULL;
	evtimer_del(a->shutdown_timer);
	done(a->on_shutdown_arg);
}

static void shutdown_check(struct agent *a)
{
	if (!a->on_shutdown)
		return;
	if (a->o.stop_instances_on_exit && instances_alive(a->o.instances))
		return;
	/* Let the core hear the last states, unless it is away (we are backing off): the
	 * records keep them and the next start reports them. */
	if (a->registered && reports_pending(a->o.reports) && a->backoff_s <= BACKOFF_MIN_S)
		return;
	shutdown_finish(a);
}

static void on_shutdown_deadline(UNUSED evutil_socket_t fd, UNUSED short what, void *arg)
{
	struct agent *a = arg;
	if (a->o.stop_instances_on_exit)
		instances_kill_all(a->o.instances);
	shutdown_finish(a);
}

void agent_shutdown(struct agent *a, void (*done)(void *arg), void *arg)
{
	struct timeval tv = clock_timeval(a->o.stop_grace_s + SHUTDOWN_EXTRA_S);
	a->on_shutdown = done;
	a->on_shutdown_arg = arg;
	a->shutdown_timer = evtimer_new(a->o.base, on_shutdown_deadline, a);
	evtimer_add(a->shutdown_timer, &tv);
	if (a->o.stop_instances_on_exit)
		instances_stop_all(a->o.instances);
	/* Take no new work; the reports connection stays so that the final states go out. */
	evtimer_del(a->hb_timer);
	evtimer_del(a->poll_timer);
	if (a->watch_timer)
		evtimer_del(a->watch_timer);
	report_flush(a);
	shutdown_check(a);
}

const char *agent_node_token(const struct agent *a) { return a->registered ? a->node_token : ""; }

void agent_free(struct agent *a)
{
	if (!a)
		return;
	a->shutting_down = true;
	struct evhttp_connection *conns[] = {a->poll_conn, a->ctl_conn, a->report_conn, a->hb_conn, a->watch_conn};
	for (size_t i = 0; i < sizeof conns / sizeof conns[0]; i++)
		if (conns[i])
			evhttp_connection_free(conns[i]);
	struct event *timers[] = {a->hb_timer,   a->register_timer, a->poll_timer,  a->report_timer,
	                          a->shutdown_timer, a->batch_tick, a->move_timer, a->watch_timer};
	for (size_t i = 0; i < sizeof timers / sizeof timers[0]; i++)
		if (timers[i])
			event_free(timers[i]);
	json_decref(a->bridges_sent);
	json_decref(a->bridges_in_flight);
	free(a);
}
