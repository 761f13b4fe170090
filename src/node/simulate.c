/* simulate — see simulate.h. */
#include "node/simulate.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/hmap.h"
#include "common/http.h"
#include "common/log.h"
#include "common/version.h"
#include "common/wire.h"
#include "node/corelink.h"

#define POLL_WAIT_S 25
#define CTL_TIMEOUT_S 10
#define BACKOFF_MIN_S 0.05
#define BACKOFF_MAX_S 5.0
#define HEARTBEAT_DEFAULT_S 5
#define NODES_PER_ADDRESS 200 /* x 2 connections: under the core's 512 per client address */

struct simnode;

struct siminst {
	struct simnode *node;
	char id[MV_ID_LEN + 1];
	enum inst_state state;
	struct sim_params params;
	int64_t received_us; /* the start assignment arrived */
	uint32_t run;        /* the run its last start began (common/wire.h) */
	struct event *timer; /* the end of the simulated spawn */
};

struct simnode {
	struct simulator *sim;
	int index;
	char id[MV_ID_LEN + 1], name[MV_NAME_MAX + 1], token[80];
	char local_addr[16];  /* "" or the loopback source address its connections use */
	struct evhttp_connection *poll_conn, *ctl_conn;
	unsigned gen; /* of the link its connections were made for */
	bool registered, registering;
	json_t *in_flight; /* the reports sent and not answered yet, or NULL */
	uint64_t acked;
	int hb_interval_s;
	int refused_logged; /* the last refusal status said (refused_said) */
	double backoff_s;
	struct event *hb_timer, *retry_timer;
	struct hmap instances; /* id -> struct siminst */
	json_t *reports;       /* the reports not sent yet */
};

struct simulator {
	struct sim_options o;
	struct corelink link; /* the core in use, shared by every node; moved by the first to see it fail */
	bool loopback;
	struct simnode *nodes;
	int registered;
	int next_to_register, registering; /* the registration window */
	unsigned short rand_state[3];
	json_t *drivers_info;
};

static void node_register(struct simnode *n);
static void node_poll(struct simnode *n);
static void node_report_flush(struct simnode *n);
static bool core_moved(struct simnode *n, struct evhttp_request *req);
static void node_reconnect(struct simnode *n);

/* ---- ids ---- */

/* FNV-1a over "PREFIX/INDEX", as 16 hex characters: stable across restarts. */
void simulator_node_id(const char *prefix, int index, char out[MV_ID_LEN + 1])
{
	char key[128];
	uint64_t h = 1469598103934665603ULL;
	snprintf(key, sizeof key, "%.100s/%d", prefix, index);
	for (const char *p = key; *p; p++) {
		h ^= (unsigned char)*p;
		h *= 1099511628211ULL;
	}
	snprintf(out, MV_ID_LEN + 1, "%016" PRIx64, h);
}

/* ---- HTTP to the core ---- */

static int send_json(struct simnode *n, struct evhttp_connection *conn, enum evhttp_cmd_type method,
                     const char *path, const char *token, json_t *body, void (*cb)(struct evhttp_request *, void *))
{
	struct evhttp_request *req = evhttp_request_new(cb, n);
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	char buf[300];
	snprintf(buf, sizeof buf, "%s:%d", n->sim->link.host, n->sim->link.port);
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
	return evhttp_make_request(conn, req, method, path);
}

static int status_of(struct evhttp_request *req) { return req ? evhttp_request_get_response_code(req) : 0; }

static json_t *body_of(struct evhttp_request *req)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	return json_loadb((const char *)evbuffer_pullup(in, (ev_ssize_t)len), len, 0, NULL);
}

static void retry_later(struct simnode *n)
{
	struct timeval tv = clock_timeval(n->backoff_s);
	n->backoff_s = n->backoff_s * 2 > BACKOFF_MAX_S ? BACKOFF_MAX_S : n->backoff_s * 2;
	evtimer_add(n->retry_timer, &tv);
}

/* ---- instances: records ---- */

static void report(struct simnode *n, const struct siminst *in, const char *error)
{
	struct wire_report r = {.state = in->state, .run = in->run};
	snprintf(r.id, sizeof r.id, "%s", in->id);
	if (error)
		snprintf(r.error, sizeof r.error, "%s", error);
	if (in->state == INST_RUNNING || (in->state == INST_FAILED && in->received_us)) {
		int64_t took = clock_mono_us() - in->received_us;
		r.has_timing = true;
		r.timing = (struct node_timing){.spawn_us = took, .work_us = took, .image_cache = IMAGE_NONE};
	}
	json_array_append_new(n->reports, wire_report_to_json(&r));
	node_report_flush(n);
}

static double sim_random(struct simulator *s) { return erand48(s->rand_state); }

static void on_spawned(UNUSED evutil_socket_t fd, UNUSED short what, void *arg)
{
	struct siminst *in = arg;
	if (in->state != INST_STARTING)
		return;
	if (in->params.fail_rate > 0 && sim_random(in->node->sim) < in->params.fail_rate) {
		in->state = INST_FAILED;
		report(in->node, in, "simulated start failure (--sim-fail-rate)");
	} else {
		in->state = INST_RUNNING;
		report(in->node, in, NULL);
	}
}

static void inst_start(struct simnode *n, const char *id, const struct inst_spec *spec, uint32_t run)
{
	struct siminst *in = hmap_get(&n->instances, id);
	if (in && run <= in->run) { /* a start already taken: answer with its state */
		if (in->state != INST_STARTING)
			report(n, in, NULL);
		return;
	}
	if (in) { /* a new run: what is left of the old one ends at once (nothing runs) */
		evtimer_del(in->timer);
	} else {
		if (!(in = calloc(1, sizeof *in)) || !(in->timer = evtimer_new(n->sim->o.base, on_spawned, in)))
			fatal("calloc");
		in->node = n;
		snprintf(in->id, sizeof in->id, "%s", id);
		hmap_put(&n->instances, in->id, in);
	}
	in->run = run;
	in->state = INST_STARTING;
	in->params = n->sim->o.params;
	sim_params_apply(&in->params, spec->config);
	in->received_us = clock_mono_us();
	struct timeval tv = clock_timeval(in->params.spawn_ms / 1000.0);
	evtimer_add(in->timer, &tv);
}

static void inst_stop(struct simnode *n, const char *id)
{
	struct siminst *in = hmap_get(&n->instances, id);
	if (!in)
		return;
	if (!inst_state_terminal(in->state)) {
		evtimer_del(in->timer);
		in->state = INST_STOPPED;
	}
	report(n, in, NULL);
}

static void inst_free(struct siminst *in)
{
	event_free(in->timer);
	free(in);
}

static void inst_purge(struct simnode *n, const char *id)
{
	struct siminst *in = hmap_remove(&n->instances, id);
	if (in)
		inst_free(in);
}

/* ---- reports ---- */

/* The batch in flight goes back in front of what came meanwhile. */
static void reports_requeue(struct simnode *n)
{
	if (!n->in_flight)
		return;
	json_array_extend(n->in_flight, n->reports);
	json_decref(n->reports);
	n->reports = n->in_flight;
	n->in_flight = NULL;
}

static void on_reports(struct evhttp_request *req, void *arg)
{
	struct simnode *n = arg;
	int status = status_of(req);
	if (status == 200 || status == 400) {
		json_decref(n->in_flight);
		n->in_flight = NULL;
		node_report_flush(n); /* what came meanwhile */
		return;
	}
	reports_requeue(n);
	if (core_moved(n, req))
		return;
	if (status == 401 || status == 404)
		node_register(n);
	else
		retry_later(n);
}

/* One POST in flight per node; what comes meanwhile goes with the next. */
static void node_report_flush(struct simnode *n)
{
	char path[128];
	json_t *batch;
	if (!n->registered || n->in_flight || json_array_size(n->reports) == 0)
		return;
	batch = n->reports;
	if (!(n->reports = json_array()))
		fatalx("json_array");
	/* at most WIRE_REPORTS_MAX in one POST (the core refuses more with 400): the rest
	 * stay queued for the next, sent once this one is answered */
	for (size_t i = WIRE_REPORTS_MAX; i < json_array_size(batch); i++)
		json_array_append(n->reports, json_array_get(batch, i));
	while (json_array_size(batch) > WIRE_REPORTS_MAX)
		json_array_remove(batch, json_array_size(batch) - 1);
	snprintf(path, sizeof path, "/v1/nodes/%s/reports", n->id);
	n->in_flight = batch;
	if (send_json(n, n->ctl_conn, EVHTTP_REQ_POST, path, n->token, json_pack("{s:O}", "reports", batch),
	              on_reports) < 0) {
		reports_requeue(n);
		retry_later(n);
	}
}

/* ---- the long-poll ---- */

static void handle_assignment(struct simnode *n, const json_t *j)
{
	struct wire_assignment as;
	struct mv_error err;
	const json_t *seq = json_object_get(j, "seq");

	if (json_is_integer(seq) && (uint64_t)json_integer_value(seq) <= n->acked)
		return;
	if (wire_assignment_parse(&as, j, &err) < 0) {
		if (json_is_integer(seq) && json_integer_value(seq) > 0)
			n->acked = (uint64_t)json_integer_value(seq);
		log_warnx("%s: malformed assignment ignored: %s", n->name, err.message);
		return;
	}
	n->acked = as.seq;
	switch (as.op) {
	case NODE_OP_START:
		if (as.has_spec)
			inst_start(n, as.id, &as.spec, as.run);
		break;
	case NODE_OP_STOP: inst_stop(n, as.id); break;
	case NODE_OP_PURGE: inst_purge(n, as.id); break;
	case NODE_OP_COUNT: break;
	}
	wire_assignment_free(&as);
}

static void on_poll(struct evhttp_request *req, void *arg)
{
	struct simnode *n = arg;
	int status = status_of(req);
	const json_t *as;
	size_t i;
	json_t *b;

	if (status == 200 && (b = body_of(req))) {
		json_array_foreach(json_object_get(b, "assignments"), i, as) {
			if (i >= WIRE_ASSIGNMENTS_MAX)
				break;
			handle_assignment(n, as);
		}
		json_decref(b);
		node_poll(n);
	} else if (core_moved(n, req)) {
		return;
	} else if (status == 401 || status == 404) {
		node_register(n);
	} else {
		retry_later(n);
	}
}

static void node_poll(struct simnode *n)
{
	char path[160];
	if (!n->registered)
		return;
	snprintf(path, sizeof path, "/v1/nodes/%s/assignments?after=%" PRIu64 "&wait=%d", n->id, n->acked,
	         POLL_WAIT_S);
	if (send_json(n, n->poll_conn, EVHTTP_REQ_GET, path, n->token, NULL, on_poll) < 0)
		retry_later(n);
}

/* ---- register and heartbeat ---- */

static void on_heartbeat(struct evhttp_request *req, void *arg)
{
	struct simnode *n = arg;
	int status = status_of(req);
	json_t *b;
	if (core_moved(n, req))
		return;
	if (status == 401 || status == 404)
		node_register(n);
	if (status == 200 && (b = body_of(req))) { /* the interval the core wants now (agent.c) */
		int s = (int)json_integer_value(json_object_get(b, "heartbeat_interval_s"));
		if (s > 0)
			n->hb_interval_s = s;
		json_decref(b);
	}
}

static void on_heartbeat_timer(UNUSED evutil_socket_t fd, UNUSED short what, void *arg)
{
	struct simnode *n = arg;
	char path[128];
	struct timeval tv = clock_timeval(n->hb_interval_s);
	if (!n->registered)
		return;
	snprintf(path, sizeof path, "/v1/nodes/%s/heartbeat", n->id);
	send_json(n, n->ctl_conn, EVHTTP_REQ_POST, path, n->token, NULL, on_heartbeat);
	evtimer_add(n->hb_timer, &tv);
}

static json_t *register_body(struct simnode *n)
{
	struct simulator *s = n->sim;
	struct wire_register r = {.cpus = s->o.cpus, .memory_mb = s->o.memory_mb, .drivers = s->drivers_info,
	                          .labels = (json_t *)s->o.labels, .bridges = json_array()};
	const char *k;
	void *v;
	json_t *body;
	size_t i = 0, have = 0;

	snprintf(r.id, sizeof r.id, "%s", n->id);
	snprintf(r.name, sizeof r.name, "%s", n->name);
	snprintf(r.address, sizeof r.address, "%.63s", n->local_addr[0] ? n->local_addr : s->link.host);
	if (!(r.alive = calloc(hmap_size(&n->instances) + 1, sizeof *r.alive)))
		fatal("calloc");
	while (hmap_next(&n->instances, &i, &k, &v))
		if (!inst_state_terminal(((struct siminst *)v)->state))
			snprintf(r.alive[have++], MV_ID_LEN + 1, "%s", k);
	r.n_alive = have;
	body = wire_register_to_json(&r);
	json_decref(r.bridges);
	free(r.alive);
	return body;
}

static void window_next(struct simulator *s);

/* A registration the core refused (not merely busy): its words, once per node and status,
 * so that a node that can never register says why (it kept retrying in silence). */
static void refused_said(struct simnode *n, struct evhttp_request *req, int status)
{
	json_t *b = body_of(req);
	const char *msg = json_string_value(json_object_get(json_object_get(b, "error"), "message"));
	if (n->refused_logged != status)
		log_warnx("%s: registration refused: HTTP %d: %s; retrying", n->name, status, msg ? msg : "(no words)");
	n->refused_logged = status;
	json_decref(b);
}

static void on_register(struct evhttp_request *req, void *arg)
{
	struct simnode *n = arg;
	struct simulator *s = n->sim;
	int status = status_of(req);
	struct timeval tv;
	json_t *b;

	n->registering = false;
	s->registering--;
	if (core_moved(n, req)) {
		window_next(s);
		return;
	}
	if (status != 200 || !(b = body_of(req))) {
		if (status == 401)
			log_warnx("%s: cannot register: unauthorized (check --token-file)", n->name);
		else if (status >= 400 && status != 429 && status != 503)
			refused_said(n, req, status);
		retry_later(n);
		window_next(s);
		return;
	}
	snprintf(n->token, sizeof n->token, "%s", json_string_value(json_object_get(b, "token")) ?: "");
	n->hb_interval_s = (int)json_integer_value(json_object_get(b, "heartbeat_interval_s"));
	if (n->hb_interval_s <= 0)
		n->hb_interval_s = HEARTBEAT_DEFAULT_S;
	json_decref(b);
	if (!n->registered)
		s->registered++;
	n->registered = true;
	n->backoff_s = BACKOFF_MIN_S;
	n->acked = 0; /* a core that restarted numbers its assignments anew */
	corelink_answered(&s->link);
	/* The first beat at a random point of the interval: N nodes started together must not
	 * beat together ever after. */
	tv = clock_timeval(n->hb_interval_s * (0.1 + 0.9 * sim_random(s)));
	evtimer_add(n->hb_timer, &tv);
	node_poll(n);
	node_report_flush(n);
	if (s->registered == s->o.count)
		log_info("all %d simulated nodes registered with %s", s->o.count, s->link.url);
	window_next(s);
}

static void node_register(struct simnode *n)
{
	struct simulator *s = n->sim;
	if (n->registering)
		return;
	if (n->registered) {
		n->registered = false;
		s->registered--;
		evtimer_del(n->hb_timer);
	}
	n->registering = true;
	s->registering++;
	if (send_json(n, n->ctl_conn, EVHTTP_REQ_POST, "/v1/nodes/register", s->o.cluster_token, register_body(n),
	              on_register) < 0) {
		n->registering = false;
		s->registering--;
		retry_later(n);
	}
}

/* Whatever a node retries (register, poll, reports) after a failure. */
static void on_retry_timer(UNUSED evutil_socket_t fd, UNUSED short what, void *arg)
{
	struct simnode *n = arg;
	if (n->gen != n->sim->link.gen)
		node_reconnect(n);
	if (!n->registered) {
		node_register(n);
		return;
	}
	node_poll(n);
	node_report_flush(n);
}

/* First registrations go out a window at a time, so N nodes do not open N connections in
 * the same instant (the core's accept backlog is finite). */
static void window_next(struct simulator *s)
{
	while (s->next_to_register < s->o.count && s->registering < s->o.register_window)
		node_register(&s->nodes[s->next_to_register++]);
}

/* ---- start and end ---- */

static struct evhttp_connection *connection(struct simnode *n, int timeout_s)
{
	struct simulator *s = n->sim;
	struct evhttp_connection *c = evhttp_connection_base_new(s->o.base, NULL, s->link.host, (unsigned short)s->link.port);
	if (!c)
		fatalx("cannot create an HTTP connection");
	evhttp_connection_set_timeout(c, timeout_s);
	if (n->local_addr[0])
		evhttp_connection_set_local_address(c, n->local_addr);
	return c;
}

/* ---- several cores: the shared link, each node's connections ---- */

/* New connections to the link's core; what was in flight on the old ones is dropped with
 * them (no callback): reports go back in the queue, a registration is over. */
static void node_reconnect(struct simnode *n)
{
	struct simulator *s = n->sim;
	reports_requeue(n);
	if (n->registering) {
		n->registering = false;
		s->registering--;
	}
	if (n->registered) {
		n->registered = false;
		s->registered--;
		evtimer_del(n->hb_timer);
	}
	evhttp_connection_free(n->poll_conn);
	evhttp_connection_free(n->ctl_conn);
	n->poll_conn = connection(n, POLL_WAIT_S + 10);
	n->ctl_conn = connection(n, CTL_TIMEOUT_S);
	n->gen = s->link.gen;
}

/* A 307, no answer or 502/503/504 (node/corelink.h): true when the node goes to another
 * core. The first node to see the core in use fail moves the shared link; the others,
 * their connections made for the old one, follow it. The move happens on the node's retry
 * timer, never inside a callback of the connection it replaces. */
static bool core_moved(struct simnode *n, struct evhttp_request *req)
{
	struct simulator *s = n->sim;
	int status = status_of(req);
	char was[CORELIST_URL_MAX];
	double delay_s = 0;
	if (status != 307 && !corelist_status_fails_over(status))
		return false;
	if (n->gen == s->link.gen) {
		const char *loc = status == 307 ? evhttp_find_header(evhttp_request_get_input_headers(req), "Location") : NULL;
		snprintf(was, sizeof was, "%s", s->link.url);
		if (loc && corelink_redirect(&s->link, loc) == 0)
			log_info("the core at %s is a follower: the simulated nodes move to the leader at %s", was, s->link.url);
		else if (corelink_failed(&s->link, &delay_s))
			log_warnx("the core at %s failed (%d); the simulated nodes move to %s", was, status, s->link.url);
		else
			return false; /* a list of one: back off and try it again */
	}
	if (n->registered) { /* nothing more to the old core */
		n->registered = false;
		s->registered--;
		evtimer_del(n->hb_timer);
	}
	evtimer_del(n->retry_timer);
	struct timeval tv = clock_timeval(delay_s);
	evtimer_add(n->retry_timer, &tv);
	return true;
}

static void node_init(struct simulator *s, struct simnode *n, int index)
{
	n->sim = s;
	n->index = index;
	simulator_node_id(s->o.name_prefix, index, n->id);
	snprintf(n->name, sizeof n->name, "%.40s-%05d", s->o.name_prefix, index + 1);
	/* On loopback the nodes come from many source addresses, as N hosts would: the core's
	 * per-address connection cap is for clients, not for a whole cluster on one address. */
	if (s->loopback) {
		int group = index / NODES_PER_ADDRESS;
		snprintf(n->local_addr, sizeof n->local_addr, "127.1.%d.%d", 1 + group / 250, 1 + group % 250);
	}
	n->backoff_s = BACKOFF_MIN_S;
	n->poll_conn = connection(n, POLL_WAIT_S + 10);
	n->ctl_conn = connection(n, CTL_TIMEOUT_S);
	n->gen = s->link.gen;
	n->hb_timer = evtimer_new(s->o.base, on_heartbeat_timer, n);
	n->retry_timer = evtimer_new(s->o.base, on_retry_timer, n);
	if (!n->hb_timer || !n->retry_timer || !(n->reports = json_array()))
		fatalx("cannot create a simulated node");
	hmap_init(&n->instances);
}

static void node_free(struct simnode *n)
{
	const char *k;
	void *v;
	if (n->poll_conn)
		evhttp_connection_free(n->poll_conn);
	if (n->ctl_conn)
		evhttp_connection_free(n->ctl_conn);
	if (n->hb_timer)
		event_free(n->hb_timer);
	if (n->retry_timer)
		event_free(n->retry_timer);
	for (size_t i = 0; hmap_next(&n->instances, &i, &k, &v);)
		inst_free(v);
	hmap_free(&n->instances);
	json_decref(n->reports);
	json_decref(n->in_flight);
}

struct simulator *simulator_create(const struct sim_options *o, char *err, size_t errlen)
{
	struct simulator *s;
	if (o->count < 1 || o->count > SIM_NODES_MAX) {
		snprintf(err, errlen, "--simulate takes 1 to %d nodes", SIM_NODES_MAX);
		return NULL;
	}
	if (!(s = calloc(1, sizeof *s)))
		fatal("calloc");
	s->o = *o;
	if (!s->o.name_prefix || !s->o.name_prefix[0])
		s->o.name_prefix = "sim";
	if (s->o.register_window <= 0)
		s->o.register_window = 256;
	if (corelink_init(&s->link, o->core_url, err, errlen) < 0) {
		free(s);
		return NULL;
	}
	for (int i = 0; i < s->link.list.n; i++)
		if (http_url_is_tls(s->link.list.urls[i])) {
			snprintf(err, errlen, "--simulate speaks plain http:// only; --core %s has an https:// core", o->core_url);
			free(s);
			return NULL;
		}
	s->loopback = strncmp(s->link.host, "127.", 4) == 0;
	s->rand_state[0] = (unsigned short)getpid();
	s->rand_state[1] = (unsigned short)clock_mono_us();
	s->rand_state[2] = 0x330e;
	s->drivers_info = json_pack("{s:{s:s,s:b}}", driver_sim.name, "version", MICROVIM_VERSION, "simulated", 1);
	if (!(s->nodes = calloc((size_t)o->count, sizeof *s->nodes)))
		fatal("calloc");
	for (int i = 0; i < o->count; i++)
		node_init(s, &s->nodes[i], i);
	log_info("simulating %d nodes (%s-00001 ...; %d cpus, %" PRId64 " MiB each; spawn %g ms, fail rate %g)",
	         o->count, s->o.name_prefix, o->cpus, o->memory_mb, o->params.spawn_ms, o->params.fail_rate);
	window_next(s);
	return s;
}

int simulator_registered(const struct simulator *s) { return s->registered; }

void simulator_destroy(struct simulator *s)
{
	if (!s)
		return;
	for (int i = 0; i < s->o.count; i++)
		node_free(&s->nodes[i]);
	free(s->nodes);
	json_decref(s->drivers_info);
	free(s);
}
