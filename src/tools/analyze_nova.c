/* analyze_nova — see analyze_nova.h. Everything seen is kept as an event in capture order
 * of completion (HTTP exchanges when answered, AMQP messages when whole), then each
 * instance's markers are picked from the events once the capture is over: the UUID of an
 * instance is only known from the answer to its POST, which comes after the cast that
 * carries it. */
#include "tools/analyze_nova.h"

#include <errno.h>
#include <jansson.h>
#include <math.h> /* NAN, isnan: macros only */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/hmap.h"
#include "common/log.h"
#include "tools/amqp.h"
#include "tools/stats.h"

#define UUID_LEN 36
#define MAX_UUIDS 32 /* kept per message: build_and_run_instance names a dozen */

const char *const nova_phase_names[NOVA_PHASE_COUNT] = {
	"api_auth_ms", "image_ms", "scheduling_ms", "compute_network_ms", "compute_spawn_ms", "notification_ms",
};
const char *const nova_detail_names[NOVA_DETAIL_COUNT] = {
	"auth_ms", "placement_ms", "select_ms", "neutron_ms", "compute_image_ms", "delete_ms",
};

static const char *const service_names[NOVA_SERVICE_COUNT] = {"nova", "keystone", "glance", "placement", "neutron", "amqp"};
static const uint16_t default_ports[NOVA_SERVICE_COUNT] = {8774, 5000, 9292, 8778, 9696, 5672};

/* ---- events ---- */

enum event_kind {
	EV_CREATE,  /* client: POST /servers */
	EV_SHOW,    /* client: GET /servers/{id} */
	EV_DELETE,  /* client: DELETE /servers/{id} */
	EV_SERVICE, /* a call to Keystone, Glance, Placement or Neutron */
	EV_RPC,     /* an oslo.messaging message published to RabbitMQ */
};

struct event {
	enum event_kind kind;
	enum nova_service service; /* EV_SERVICE */
	int64_t first_ns, last_ns; /* request F .. answer L (HTTP); publish F .. L (RPC) */
	int64_t answer_first_ns;   /* HTTP: answer F (0: none) */
	int status;                /* HTTP answer */
	char what[160];            /* "GET /v2/images/..." or "build_and_run_instance" */
	char id[UUID_LEN + 1];     /* create/show/delete: the server; RPC save: objinst's uuid */
	char server_status[16];    /* show: "ACTIVE", "BUILD", "ERROR" */
	char fault[200];           /* show: fault.message */
	/* RPC */
	char method[64], objmethod[48], msg_id[40];
	char task_state[32], vm_state[32];
	bool reply;
	char uuids[MAX_UUIDS][UUID_LEN + 1];
	int n_uuids;
};

struct analyze_nova {
	struct nova_ports ports;
	struct event *ev;
	size_t n_ev, cap_ev;
	struct hmap streams; /* "conn/dir" -> struct stream */
	struct amqp_stats amqp;
	uint64_t rpc_unparsed; /* published bodies that are not oslo.messaging JSON */
};

struct stream {
	char key[32];
	struct amqp_stream *s;
	struct analyze_nova *a;
};

static struct event *event_add(struct analyze_nova *a, enum event_kind kind)
{
	struct event *e;
	if (a->n_ev == a->cap_ev) {
		size_t cap = a->cap_ev ? a->cap_ev * 2 : 1024;
		struct event *v = realloc(a->ev, cap * sizeof *v);
		if (!v)
			fatal("out of memory");
		a->ev = v;
		a->cap_ev = cap;
	}
	e = &a->ev[a->n_ev++];
	memset(e, 0, sizeof *e);
	e->kind = kind;
	return e;
}

static bool is_hex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }

/* Is s[0..35] a UUID in its canonical form (lower-case hex, dashes at 8, 13, 18, 23)? */
static bool uuid_at(const char *s, size_t left)
{
	if (left < UUID_LEN)
		return false;
	for (int i = 0; i < UUID_LEN; i++) {
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;
		if (dash ? s[i] != '-' : !is_hex(s[i]))
			return false;
	}
	return left == UUID_LEN || !is_hex(s[UUID_LEN]);
}

/* The distinct UUIDs in text (up to MAX_UUIDS). */
static void collect_uuids(struct event *e, const char *text, size_t len)
{
	for (size_t i = 0; i + UUID_LEN <= len && e->n_uuids < MAX_UUIDS; i++) {
		bool dup = false;
		if ((i > 0 && is_hex(text[i - 1])) || !uuid_at(text + i, len - i))
			continue;
		for (int k = 0; k < e->n_uuids && !dup; k++)
			dup = memcmp(e->uuids[k], text + i, UUID_LEN) == 0;
		if (!dup) {
			memcpy(e->uuids[e->n_uuids], text + i, UUID_LEN);
			e->uuids[e->n_uuids++][UUID_LEN] = '\0';
		}
		i += UUID_LEN - 1;
	}
}

static bool event_names(const struct event *e, const char *uuid)
{
	for (int k = 0; k < e->n_uuids; k++)
		if (strcmp(e->uuids[k], uuid) == 0)
			return true;
	return false;
}

/* ---- HTTP ---- */

static enum nova_service service_of(const struct analyze_nova *a, const char *server)
{
	const char *colon = strrchr(server, ':');
	long port = colon ? strtol(colon + 1, NULL, 10) : 0;
	for (int s = 0; s < NOVA_SERVICE_COUNT; s++)
		if (a->ports.port[s] == port)
			return (enum nova_service)s;
	return NOVA_SERVICE_COUNT;
}

/* The path without its query. */
static void path_of(const char *target, char *out, size_t len)
{
	size_t n = strcspn(target, "?");
	snprintf(out, len, "%.*s", (int)(n < len ? n : len - 1), target);
}

/* ".../servers" (create) or ".../servers/{uuid}" (show, delete: the uuid into id). */
static bool servers_path(const char *path, char id[UUID_LEN + 1])
{
	const char *p = strstr(path, "/servers");
	id[0] = '\0';
	if (!p)
		return false;
	p += 8;
	if (*p == '\0')
		return true;
	if (*p != '/' || !uuid_at(p + 1, strlen(p + 1)) || p[1 + UUID_LEN] != '\0')
		return false;
	memcpy(id, p + 1, UUID_LEN);
	id[UUID_LEN] = '\0';
	return true;
}

static json_t *body_json(const struct http_message *m)
{
	if (!m || !m->body || m->body_len == 0 || m->body_truncated)
		return NULL;
	return json_loadb((const char *)m->body, m->body_len, 0, NULL);
}

static void api_exchange(struct analyze_nova *a, const struct http_exchange *x)
{
	const struct http_message *req = x->request, *resp = x->response;
	char path[512], id[UUID_LEN + 1];
	struct event *e;
	json_t *b, *server;

	path_of(req->target, path, sizeof path);
	if (!servers_path(path, id))
		return;
	if (strcmp(req->method, "POST") == 0 && !id[0])
		e = event_add(a, EV_CREATE);
	else if (strcmp(req->method, "GET") == 0 && id[0])
		e = event_add(a, EV_SHOW);
	else if (strcmp(req->method, "DELETE") == 0 && id[0])
		e = event_add(a, EV_DELETE);
	else
		return;
	e->first_ns = req->first_ns;
	e->last_ns = resp ? resp->last_ns : req->last_ns;
	e->answer_first_ns = resp ? resp->first_ns : 0;
	e->status = resp ? resp->status : 0;
	snprintf(e->what, sizeof e->what, "%s %.140s", req->method, path); /* a label: cut if long */
	snprintf(e->id, sizeof e->id, "%s", id);
	b = body_json(resp);
	server = json_object_get(b, "server");
	if (e->kind == EV_CREATE) {
		const char *sid = json_string_value(json_object_get(server, "id"));
		if (sid && uuid_at(sid, strlen(sid)))
			snprintf(e->id, sizeof e->id, "%s", sid);
		if (resp && resp->status / 100 != 2) {
			const json_t *err = NULL;
			const char *k;
			json_t *v;
			json_object_foreach(b, k, v) { /* {"badRequest": {"message": ...}} */
				err = json_object_get(v, "message");
				break;
			}
			snprintf(e->fault, sizeof e->fault, "%s", json_string_value(err) ?: "");
		}
	} else if (e->kind == EV_SHOW) {
		snprintf(e->server_status, sizeof e->server_status, "%s",
		         json_string_value(json_object_get(server, "status")) ?: "");
		snprintf(e->fault, sizeof e->fault, "%s",
		         json_string_value(json_object_get(json_object_get(server, "fault"), "message")) ?: "");
	}
	json_decref(b);
}

static void on_exchange(const struct http_exchange *x, void *arg)
{
	struct analyze_nova *a = arg;
	enum nova_service s = service_of(a, x->server);
	struct event *e;
	char path[512];

	if (!x->request) /* the answer to a request made before the capture began */
		return;
	if (s == NOVA_API) {
		api_exchange(a, x);
		return;
	}
	if (s == NOVA_SERVICE_COUNT || s == NOVA_AMQP)
		return;
	e = event_add(a, EV_SERVICE);
	e->service = s;
	e->first_ns = x->request->first_ns;
	e->last_ns = x->response ? x->response->last_ns : x->request->last_ns;
	e->answer_first_ns = x->response ? x->response->first_ns : 0;
	e->status = x->response ? x->response->status : 0;
	path_of(x->request->target, path, sizeof path);
	snprintf(e->what, sizeof e->what, "%s %s %.120s", service_names[s], x->request->method, path); /* a label */
	collect_uuids(e, x->request->target, strlen(x->request->target));
}

/* ---- AMQP: oslo.messaging ---- */

static void copy_string(char *out, size_t len, const json_t *j)
{
	snprintf(out, len, "%s", json_is_string(j) ? json_string_value(j) : json_is_null(j) ? "null" : "");
}

static void rpc_message(struct analyze_nova *a, const struct amqp_message *m)
{
	json_t *outer, *inner = NULL, *args, *objinst, *data;
	const char *text;
	struct event *e;
	json_error_t je;

	if (m->method_id != AMQP_BASIC_PUBLISH || m->body_truncated)
		return;
	if (!(outer = json_loadb((const char *)m->body, m->body_len, 0, &je))) {
		a->rpc_unparsed++;
		return;
	}
	text = json_string_value(json_object_get(outer, "oslo.message"));
	if (!text || !(inner = json_loads(text, 0, &je)) || !json_is_object(inner)) {
		a->rpc_unparsed++;
		goto out;
	}
	e = event_add(a, EV_RPC);
	e->first_ns = m->first_ns;
	e->last_ns = m->last_ns;
	copy_string(e->method, sizeof e->method, json_object_get(inner, "method"));
	copy_string(e->msg_id, sizeof e->msg_id, json_object_get(inner, "_msg_id"));
	e->reply = !json_object_get(inner, "method") &&
	           (json_object_get(inner, "result") || json_object_get(inner, "failure"));
	args = json_object_get(inner, "args");
	copy_string(e->objmethod, sizeof e->objmethod, json_object_get(args, "objmethod"));
	objinst = json_object_get(args, "objinst");
	data = json_object_get(objinst, "nova_object.data");
	if (json_is_object(data) && json_is_string(json_object_get(objinst, "nova_object.name")) &&
	    strcmp(json_string_value(json_object_get(objinst, "nova_object.name")), "Instance") == 0) {
		copy_string(e->id, sizeof e->id, json_object_get(data, "uuid"));
		copy_string(e->task_state, sizeof e->task_state, json_object_get(data, "task_state"));
		copy_string(e->vm_state, sizeof e->vm_state, json_object_get(data, "vm_state"));
	}
	if (e->reply)
		snprintf(e->what, sizeof e->what, "reply to %s", e->msg_id);
	else if (e->objmethod[0])
		snprintf(e->what, sizeof e->what, "%.30s %.30s%s%.20s%s%.20s -> %.30s", e->method, e->objmethod,
		         e->task_state[0] ? " task_state=" : "", e->task_state, e->vm_state[0] ? " vm_state=" : "",
		         e->vm_state, m->routing_key[0] ? m->routing_key : m->exchange); /* labels: cut if long */
	else
		snprintf(e->what, sizeof e->what, "%.60s -> %.60s", e->method[0] ? e->method : "(no method)",
		         m->routing_key[0] ? m->routing_key : m->exchange);
	collect_uuids(e, text, strlen(text));
out:
	json_decref(inner);
	json_decref(outer);
}

static void on_amqp_message(const struct amqp_message *m, void *arg)
{
	struct stream *st = arg;
	rpc_message(st->a, m);
}

static void on_stream(const struct pcapread_stream *x, void *arg)
{
	struct analyze_nova *a = arg;
	char key[32];
	struct stream *st;

	snprintf(key, sizeof key, "%llu/%d", (unsigned long long)x->conn, x->to_server);
	st = hmap_get(&a->streams, key);
	if (x->event == PCAPREAD_STREAM_END) {
		if (st) {
			amqp_stream_end(st->s);
			hmap_remove(&a->streams, st->key);
			amqp_stream_free(st->s);
			free(st);
		}
		return;
	}
	if (!st) {
		struct amqp_callbacks cb = {.message = on_amqp_message};
		if (!(st = calloc(1, sizeof *st)))
			fatal("out of memory");
		snprintf(st->key, sizeof st->key, "%s", key);
		st->a = a;
		cb.arg = st;
		if (!(st->s = amqp_stream_new(x->from_start, &cb, &a->amqp)))
			fatal("out of memory");
		hmap_put(&a->streams, st->key, st);
	}
	if (x->event == PCAPREAD_STREAM_GAP)
		amqp_stream_gap(st->s);
	else
		amqp_stream_feed(st->s, x->data, x->len, x->ts_ns);
}

/* ---- life cycle ---- */

int nova_ports_parse(const char *spec, struct nova_ports *p, char *err, size_t errlen)
{
	memcpy(p->port, default_ports, sizeof p->port);
	while (spec && *spec) {
		size_t n = strcspn(spec, ","), k = strcspn(spec, "=");
		char *end;
		long v;
		int s;
		if (k >= n) {
			snprintf(err, errlen, "--ports: \"%.*s\" is not SERVICE=PORT", (int)n, spec);
			return -EINVAL;
		}
		for (s = 0; s < NOVA_SERVICE_COUNT; s++)
			if (strlen(service_names[s]) == k && strncmp(spec, service_names[s], k) == 0)
				break;
		if (s == NOVA_SERVICE_COUNT) {
			snprintf(err, errlen, "--ports: unknown service \"%.*s\" (nova, keystone, glance, placement, neutron, amqp)",
			         (int)k, spec);
			return -EINVAL;
		}
		v = strtol(spec + k + 1, &end, 10);
		if (end != spec + n || v < 1 || v > 65535) {
			snprintf(err, errlen, "--ports: %s: a TCP port, 1..65535", service_names[s]);
			return -EINVAL;
		}
		p->port[s] = (uint16_t)v;
		spec += n + (spec[n] == ',');
	}
	for (int i = 0; i < NOVA_SERVICE_COUNT; i++)
		for (int j = i + 1; j < NOVA_SERVICE_COUNT; j++)
			if (p->port[i] == p->port[j]) {
				snprintf(err, errlen, "--ports: %s and %s both on port %u", service_names[i], service_names[j],
				         p->port[i]);
				return -EINVAL;
			}
	return 0;
}

struct analyze_nova *analyze_nova_new(const struct nova_ports *p)
{
	struct analyze_nova *a = calloc(1, sizeof *a);
	if (!a)
		return NULL;
	a->ports = *p;
	hmap_init(&a->streams);
	return a;
}

void analyze_nova_free(struct analyze_nova *a)
{
	const char *k;
	void *v;
	if (!a)
		return;
	for (size_t i = 0; hmap_next(&a->streams, &i, &k, &v);) {
		struct stream *st = v;
		amqp_stream_free(st->s);
		free(st);
	}
	hmap_free(&a->streams);
	free(a->ev);
	free(a);
}

struct pcapread *analyze_nova_reader(struct analyze_nova *a)
{
	struct pcapread *r = pcapread_new(a->ports.port[NOVA_API], on_exchange, a);
	if (!r)
		return NULL;
	for (int s = NOVA_KEYSTONE; s <= NOVA_NEUTRON; s++)
		if (pcapread_add_http_port(r, a->ports.port[s]) < 0)
			goto fail;
	if (pcapread_add_stream_port(r, a->ports.port[NOVA_AMQP], on_stream, a) < 0)
		goto fail;
	return r;
fail:
	pcapread_free(r);
	return NULL;
}

void analyze_nova_filter(const struct nova_ports *p, char *buf, size_t len)
{
	size_t used = 0;
	buf[0] = '\0';
	for (int s = 0; s < NOVA_SERVICE_COUNT && used < len; s++) {
		int n = snprintf(buf + used, len - used, "%stcp port %u", s ? " or " : "", p->port[s]);
		if (n < 0 || (size_t)n >= len - used)
			break; /* the caller's buffer is sized for six ports */
		used += (size_t)n;
	}
}

const struct amqp_stats *analyze_nova_amqp_stats(const struct analyze_nova *a) { return &a->amqp; }

/* ---- one instance's markers and phases ---- */

struct marks {
	const struct event *create;
	int64_t post, cast, build, spawning, active, seen_last;
	int64_t select, select_reply, delete_first, gone_last;
	const struct event *last_show;
	bool overlapped; /* another create began before this one was seen ACTIVE */
};

static double span_ms(int64_t from, int64_t to)
{
	if (!from || !to)
		return NAN;
	return (double)(to - from) / 1e6;
}

/* Sum of the service's exchanges whose request began in [from, to), each request F to
 * answer L (unanswered ones are left out). */
static double service_ms(const struct analyze_nova *a, enum nova_service s, int64_t from, int64_t to)
{
	double sum = 0;
	if (!from || !to)
		return NAN;
	for (size_t i = 0; i < a->n_ev; i++) {
		const struct event *e = &a->ev[i];
		if (e->kind == EV_SERVICE && e->service == s && e->answer_first_ns && e->first_ns >= from && e->first_ns < to)
			sum += (double)(e->last_ns - e->first_ns) / 1e6;
	}
	return sum;
}

static void find_marks(const struct analyze_nova *a, const struct event *create, struct marks *m)
{
	const char *id = create->id;
	memset(m, 0, sizeof *m);
	m->create = create;
	m->post = create->first_ns;
	for (size_t i = 0; i < a->n_ev; i++) {
		const struct event *e = &a->ev[i];
		if (e->kind == EV_RPC && !e->reply && e->first_ns >= m->post) {
			if (!m->cast && strcmp(e->method, "schedule_and_build_instances") == 0 && event_names(e, id))
				m->cast = e->first_ns;
			else if (!m->select && strcmp(e->method, "select_destinations") == 0 && event_names(e, id))
				m->select = e->first_ns;
			else if (!m->build && strcmp(e->method, "build_and_run_instance") == 0 && event_names(e, id))
				m->build = e->first_ns;
			else if (strcmp(e->objmethod, "save") == 0 && strcmp(e->id, id) == 0) {
				if (!m->spawning && strcmp(e->task_state, "spawning") == 0)
					m->spawning = e->first_ns;
				if (!m->active && strcmp(e->vm_state, "active") == 0)
					m->active = e->first_ns;
			}
		} else if ((e->kind == EV_SHOW || e->kind == EV_DELETE) && strcmp(e->id, id) == 0) {
			if (e->kind == EV_DELETE && !m->delete_first)
				m->delete_first = e->first_ns;
			if (e->kind == EV_SHOW && e->status == 200) {
				m->last_show = e;
				if (!m->seen_last && strcmp(e->server_status, "ACTIVE") == 0)
					m->seen_last = e->last_ns;
			}
			if (e->kind == EV_SHOW && e->status == 404 && m->delete_first && !m->gone_last)
				m->gone_last = e->last_ns;
		} else if (e->kind == EV_CREATE && e != create && e->first_ns > m->post &&
		           (!m->seen_last || e->first_ns < m->seen_last)) {
			m->overlapped = true;
		}
	}
	if (m->select) { /* its reply: the same _msg_id */
		const char *msg_id = NULL;
		for (size_t i = 0; i < a->n_ev && !msg_id; i++)
			if (a->ev[i].kind == EV_RPC && a->ev[i].first_ns == m->select && a->ev[i].msg_id[0])
				msg_id = a->ev[i].msg_id;
		for (size_t i = 0; i < a->n_ev && msg_id && !m->select_reply; i++)
			if (a->ev[i].kind == EV_RPC && a->ev[i].reply && strcmp(a->ev[i].msg_id, msg_id) == 0)
				m->select_reply = a->ev[i].first_ns;
	}
}

static void derive(const struct analyze_nova *a, const struct marks *m, int64_t t0, struct nova_record *r)
{
	const struct event *c = m->create;
	double image;

	memset(r, 0, sizeof *r);
	for (int p = 0; p < NOVA_PHASE_COUNT; p++)
		r->phase_ms[p] = NAN;
	for (int d = 0; d < NOVA_DETAIL_COUNT; d++)
		r->detail_ms[d] = NAN;
	r->total_ms = NAN;
	snprintf(r->id, sizeof r->id, "%s", c->id);
	r->send_us = (m->post - t0) / 1000;

	image = service_ms(a, NOVA_GLANCE, m->post, m->cast);
	r->phase_ms[NOVA_PHASE_IMAGE] = image;
	r->phase_ms[NOVA_PHASE_API_AUTH] = span_ms(m->post, m->cast) - image;
	r->phase_ms[NOVA_PHASE_SCHEDULING] = span_ms(m->cast, m->build);
	r->phase_ms[NOVA_PHASE_COMPUTE_NETWORK] = span_ms(m->build, m->spawning);
	r->phase_ms[NOVA_PHASE_COMPUTE_SPAWN] = span_ms(m->spawning, m->active);
	r->phase_ms[NOVA_PHASE_NOTIFICATION] = m->active && m->seen_last > m->active ? span_ms(m->active, m->seen_last) : NAN;
	r->total_ms = span_ms(m->post, m->seen_last);
	r->detail_ms[NOVA_DETAIL_AUTH] = service_ms(a, NOVA_KEYSTONE, m->post, m->cast);
	r->detail_ms[NOVA_DETAIL_PLACEMENT] = service_ms(a, NOVA_PLACEMENT, m->cast, m->build);
	r->detail_ms[NOVA_DETAIL_SELECT] = span_ms(m->select, m->select_reply);
	r->detail_ms[NOVA_DETAIL_NEUTRON] = service_ms(a, NOVA_NEUTRON, m->build, m->active);
	r->detail_ms[NOVA_DETAIL_COMPUTE_IMAGE] = service_ms(a, NOVA_GLANCE, m->build, m->active);
	r->detail_ms[NOVA_DETAIL_DELETE] = span_ms(m->delete_first, m->gone_last);

	if (c->status / 100 != 2) {
		snprintf(r->state, sizeof r->state, "error");
		snprintf(r->error, sizeof r->error, "POST /servers answered %d%s%s", c->status, c->fault[0] ? ": " : "", c->fault);
	} else if (m->seen_last) {
		snprintf(r->state, sizeof r->state, "running");
	} else if (m->last_show && strcmp(m->last_show->server_status, "ERROR") == 0) {
		snprintf(r->state, sizeof r->state, "failed");
		snprintf(r->error, sizeof r->error, "ERROR%s%s", m->last_show->fault[0] ? ": " : "", m->last_show->fault);
	} else {
		snprintf(r->state, sizeof r->state, "error");
		snprintf(r->error, sizeof r->error, "not seen ACTIVE in the capture (last status: %s)",
		         m->last_show ? m->last_show->server_status : "none seen");
	}
	if (m->overlapped && !r->error[0])
		snprintf(r->error, sizeof r->error, "another creation overlapped: calls by time may belong to either");
}

static int cmp_create(const void *x, const void *y)
{
	const struct event *a = *(const struct event *const *)x, *b = *(const struct event *const *)y;
	return (a->first_ns > b->first_ns) - (a->first_ns < b->first_ns);
}

static size_t creates(const struct analyze_nova *a, const struct event ***out)
{
	size_t n = 0;
	*out = malloc((a->n_ev ? a->n_ev : 1) * sizeof **out);
	if (!*out)
		return 0;
	for (size_t i = 0; i < a->n_ev; i++)
		if (a->ev[i].kind == EV_CREATE && a->ev[i].answer_first_ns)
			(*out)[n++] = &a->ev[i];
	qsort(*out, n, sizeof **out, cmp_create);
	return n;
}

int analyze_nova_records(const struct analyze_nova *a, struct nova_record **out, size_t *n)
{
	const struct event **c;
	size_t k = creates(a, &c);
	*out = NULL;
	*n = 0;
	if (!c)
		return -ENOMEM;
	if (!(*out = calloc(k ? k : 1, sizeof **out))) {
		free(c);
		return -ENOMEM;
	}
	for (size_t i = 0; i < k; i++) {
		struct marks m;
		find_marks(a, c[i], &m);
		derive(a, &m, c[0]->first_ns, &(*out)[i]);
	}
	*n = k;
	free(c);
	return 0;
}

/* ---- writing ---- */

static int write_row(FILE *f, enum record_format fmt, size_t i, const void *rows)
{
	const struct nova_record *r = (const struct nova_record *)rows + i;
	if (fmt == RECORD_JSONL) {
		json_t *o = json_object();
		if (!o)
			return -ENOMEM;
		json_object_set_new(o, "id", json_string(r->id));
		json_object_set_new(o, "intended_send_us", json_integer(r->send_us));
		json_object_set_new(o, "actual_send_us", json_integer(r->send_us));
		for (int p = 0; p < NOVA_PHASE_COUNT; p++)
			json_object_set_new(o, nova_phase_names[p], record_json_ms(r->phase_ms[p]));
		for (int d = 0; d < NOVA_DETAIL_COUNT; d++)
			json_object_set_new(o, nova_detail_names[d], record_json_ms(r->detail_ms[d]));
		json_object_set_new(o, "total_ms", record_json_ms(r->total_ms));
		json_object_set_new(o, "state", json_string(r->state));
		json_object_set_new(o, "error", json_string(r->error));
		return record_json_line(f, o);
	}
	record_csv_string(f, r->id);
	fprintf(f, ",%lld,%lld", (long long)r->send_us, (long long)r->send_us);
	for (int p = 0; p < NOVA_PHASE_COUNT; p++) {
		fputc(',', f);
		record_csv_number(f, r->phase_ms[p]);
	}
	for (int d = 0; d < NOVA_DETAIL_COUNT; d++) {
		fputc(',', f);
		record_csv_number(f, r->detail_ms[d]);
	}
	fputc(',', f);
	record_csv_number(f, r->total_ms);
	fputc(',', f);
	record_csv_string(f, r->state);
	fputc(',', f);
	record_csv_string(f, r->error);
	fputc('\n', f);
	return 0;
}

static void write_header(FILE *f, UNUSED const void *rows)
{
	fprintf(f, "id,intended_send_us,actual_send_us");
	for (int p = 0; p < NOVA_PHASE_COUNT; p++)
		fprintf(f, ",%s", nova_phase_names[p]);
	for (int d = 0; d < NOVA_DETAIL_COUNT; d++)
		fprintf(f, ",%s", nova_detail_names[d]);
	fprintf(f, ",total_ms,state,error\n");
}

int analyze_nova_write(const char *path, const struct nova_record *v, size_t n)
{
	return record_file_write(path, write_header, write_row, n, v);
}

/* ---- the command ---- */

static void print_events(FILE *out, const struct analyze_nova *a)
{
	const struct event **c;
	size_t k = creates(a, &c);
	for (size_t i = 0; i < k; i++) {
		struct marks m;
		int64_t end;
		find_marks(a, c[i], &m);
		end = m.seen_last ? m.seen_last : m.active ? m.active : c[i]->last_ns;
		fprintf(out, "instance %s (ms after its POST /servers):\n", c[i]->id);
		for (size_t j = 0; j < a->n_ev; j++) {
			const struct event *e = &a->ev[j];
			bool mine = e->kind == EV_SERVICE || (e->kind == EV_RPC && (event_names(e, c[i]->id) || e->reply)) ||
			            e == c[i] || ((e->kind == EV_SHOW || e->kind == EV_DELETE) && strcmp(e->id, c[i]->id) == 0);
			if (!mine || e->first_ns < m.post || e->first_ns > end)
				continue;
			if (e->kind == EV_RPC)
				fprintf(out, "  %10.3f            rpc  %s\n", (double)(e->first_ns - m.post) / 1e6, e->what);
			else
				fprintf(out, "  %10.3f %10.3f %s -> %d%s%s\n", (double)(e->first_ns - m.post) / 1e6,
				        (double)(e->last_ns - m.post) / 1e6, e->what, e->status, e->server_status[0] ? " " : "",
				        e->server_status);
		}
	}
	free(c);
}

static void summary(FILE *out, const struct analyze_nova *a, const struct pcapread_stats *st, const struct nova_record *v,
                    size_t n)
{
	struct stats_series s[NOVA_PHASE_COUNT + NOVA_DETAIL_COUNT + 1] = {{0}};
	size_t running = 0, nseries = NOVA_PHASE_COUNT + NOVA_DETAIL_COUNT + 1;
	const struct amqp_stats *q = &a->amqp;

	fprintf(out, "capture: %llu frames, %llu segments, %llu connections, %llu HTTP requests, %llu responses\n",
	        (unsigned long long)st->frames, (unsigned long long)st->segments, (unsigned long long)st->connections,
	        (unsigned long long)st->requests, (unsigned long long)st->responses);
	fprintf(out, "amqp:    %llu frames, %llu messages, %llu heartbeats, %llu framing errors, %llu content errors, "
	             "%llu bytes skipped to find frames, %llu orphan frames; %llu bodies not oslo.messaging JSON\n",
	        (unsigned long long)q->frames, (unsigned long long)q->messages, (unsigned long long)q->heartbeats,
	        (unsigned long long)q->framing_errors, (unsigned long long)q->content_errors,
	        (unsigned long long)q->skipped_bytes, (unsigned long long)q->orphans, (unsigned long long)a->rpc_unparsed);
	for (size_t i = 0; i < n; i++) {
		if (strcmp(v[i].state, "running") == 0)
			running++;
		for (int p = 0; p < NOVA_PHASE_COUNT; p++)
			if (stats_add(&s[p], v[i].phase_ms[p]) < 0)
				fatal("out of memory");
		for (int d = 0; d < NOVA_DETAIL_COUNT; d++)
			if (stats_add(&s[NOVA_PHASE_COUNT + d], v[i].detail_ms[d]) < 0)
				fatal("out of memory");
		if (strcmp(v[i].state, "running") == 0 && stats_add(&s[nseries - 1], v[i].total_ms) < 0)
			fatal("out of memory");
	}
	fprintf(out, "instances: %zu created in the capture, %zu seen ACTIVE\n", n, running);
	fprintf(out, "phases (ms; the paper's Fig. 6a; cmp_: nova-compute), then details inside them (indented):\n");
	stats_print_header(out);
	for (size_t k = 0; k < nseries; k++) {
		/* the table's column is 14 wide: the names without _ms, shortened where needed */
		static const char *const labels[NOVA_PHASE_COUNT + NOVA_DETAIL_COUNT + 1] = {
			"api_auth", "image", "scheduling", "cmp_network", "cmp_spawn", "notification",
			" auth", " placement", " select", " neutron", " cmp_image", "delete", "total"};
		const char *label = labels[k];
		struct stats_summary sum;
		if (stats_summarize(s[k].v, s[k].n, &sum) < 0)
			fatal("out of memory");
		stats_print_row(out, label, &sum);
		stats_series_free(&s[k]);
	}
	for (size_t i = 0; i < n; i++)
		if (v[i].error[0])
			fprintf(out, "  %s: %s: %s\n", v[i].id, v[i].state, v[i].error);
}

int analyze_nova_run(const struct analyze_job *job)
{
	struct nova_ports ports;
	struct analyze_nova *a;
	struct pcapread *reader;
	struct nova_record *recs = NULL;
	char err[256], filter[256];
	size_t n = 0;
	int rc, exit_code = ANALYZE_EXIT_OK;

	if (nova_ports_parse(job->ports, &ports, err, sizeof err) < 0) {
		fprintf(stderr, "analyze: %s\n", err);
		return ANALYZE_EXIT_USAGE;
	}
	if (job->port != ANALYZE_DEFAULT_PORT) {
		fprintf(stderr, "analyze: --port goes with --vim microvim (nova: --ports nova=PORT,...)\n");
		return ANALYZE_EXIT_USAGE;
	}
	if (!(a = analyze_nova_new(&ports)) || !(reader = analyze_nova_reader(a)))
		fatal("out of memory");
	analyze_nova_filter(&ports, filter, sizeof filter);
	if (analyze_feed(&job->in, filter, reader) < 0) {
		exit_code = ANALYZE_EXIT_FAILED;
		goto out;
	}
	if (analyze_nova_records(a, &recs, &n) < 0)
		fatal("out of memory");
	if (job->out && (rc = analyze_nova_write(job->out, recs, n)) < 0) {
		log_warnx("cannot write %s: %s", job->out, strerror(-rc));
		exit_code = ANALYZE_EXIT_FAILED;
	}
	if (job->events)
		print_events(stdout, a);
	if (!job->quiet)
		summary(stdout, a, pcapread_get_stats(reader), recs, n);
out:
	free(recs);
	pcapread_free(reader);
	analyze_nova_free(a);
	return exit_code;
}
