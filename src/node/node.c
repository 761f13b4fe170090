/* node — the agent's conversation with the core (register, heartbeat, long-poll,
 * reports) and the life of each instance on this host (prepare, spawn on a worker,
 * watch its exit, stop it). */
#include "node/node.h"

#include <dirent.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/fs.h"
#include "common/hmap.h"
#include "common/http.h"
#include "common/log.h"
#include "common/model.h"
#include "common/trace.h"
#include "drivers/driver.h"
#include "node/worker.h"

#define POLL_WAIT_S 25
#define CTL_TIMEOUT_S 10
#define BACKOFF_MIN_S 0.05
#define BACKOFF_MAX_S 5.0
#define SHUTDOWN_EXTRA_S 2.0

enum ninst_phase { NI_SPAWNING, NI_RUNNING, NI_ENDED };

struct ninst {
	struct node_agent *agent;
	char id[MV_ID_LEN + 1];
	char name[MV_NAME_MAX + 1];
	json_t *spec;
	const struct driver *drv;
	enum ninst_phase phase;
	enum inst_state final_state; /* when ended */
	bool stop_requested;
	struct drv_handle h;
	struct event *exit_ev, *kill_timer;
	int stdout_fd, stderr_fd;
	char dir[PATH_MAX];
	int64_t received_us;
	struct node_timing timing;
	int start_rc;
	char start_err[256];
	bool has_exit_code;
	int exit_code;
	char error[256];
};

struct report {
	char id[MV_ID_LEN + 1];
	enum inst_state state;
	bool has_exit_code;
	int exit_code;
	char error[256];
	bool has_timing;
	struct node_timing timing;
	int64_t received_us; /* for work_us, computed when the report is sent */
	struct report *next;
};

struct node_agent {
	struct node_options opts;
	struct event_base *base;
	char id[MV_ID_LEN + 1];
	char name[MV_NAME_MAX + 1];
	char host[256];
	int port;
	char *cluster_token;
	char node_token[80];
	struct evhttp_connection *poll_conn, *ctl_conn, *report_conn;
	json_t *drivers_info;
	struct drv_options drv_opts;
	struct worker_pool *workers;
	struct hmap instances;
	int cpus;
	int64_t memory_mb;
	bool registered, registering, shutting_down;
	uint64_t acked;
	double backoff_s;
	int hb_interval_s;
	struct event *hb_timer, *register_timer, *poll_timer, *report_timer, *shutdown_timer;
	struct report *reports, **reports_tail; /* queued, not yet sent */
	struct report *in_flight;               /* sent, answer pending */
	void (*on_shutdown)(void *arg);
	void *on_shutdown_arg;
};

static void register_send(struct node_agent *a);
static void poll_send(struct node_agent *a);
static void report_flush(struct node_agent *a);
static void shutdown_check(struct node_agent *a);

void node_options_default(struct node_options *o)
{
	*o = (struct node_options){
		.core_url = "http://127.0.0.1:4650",
		.data_dir = "/var/lib/microvim/node",
		.stop_grace_s = 5.0,
	};
}

/* ---- talking to the core ---- */

static void add_headers(struct node_agent *a, struct evhttp_request *req, const char *token)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	char buf[300];
	snprintf(buf, sizeof buf, "%s:%d", a->host, a->port);
	evhttp_add_header(h, "Host", buf);
	if (token && token[0]) {
		snprintf(buf, sizeof buf, "Bearer %s", token);
		evhttp_add_header(h, "Authorization", buf);
	}
}

static int send_json(struct node_agent *a, struct evhttp_connection *conn, enum evhttp_cmd_type method,
                     const char *path, const char *token, json_t *body,
                     void (*cb)(struct evhttp_request *, void *))
{
	struct evhttp_request *req = evhttp_request_new(cb, a);
	add_headers(a, req, token);
	if (body) {
		char *text = json_dumps(body, JSON_COMPACT);
		evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
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

static void backoff_later(struct node_agent *a, struct event *timer)
{
	struct timeval tv = clock_timeval(a->backoff_s);
	a->backoff_s = a->backoff_s * 2 > BACKOFF_MAX_S ? BACKOFF_MAX_S : a->backoff_s * 2;
	evtimer_add(timer, &tv);
}

/* The core forgot us or our token (its restart, or we were away): register again. */
static void need_register(struct node_agent *a)
{
	if (a->registering || a->shutting_down)
		return;
	a->registered = false;
	evtimer_del(a->hb_timer);
	register_send(a);
}

static json_t *register_body(struct node_agent *a)
{
	return json_pack("{s:s, s:s, s:s, s:{s:i, s:I}, s:O, s:O}", "id", a->id, "name", a->name, "address",
	                 a->host, "resources", "cpus", a->cpus, "memory_mb", (json_int_t)a->memory_mb,
	                 "drivers", a->drivers_info, "labels", a->opts.labels);
}

static void on_register(struct evhttp_request *req, void *arg)
{
	struct node_agent *a = arg;
	int status = status_of(req);
	json_t *b;
	struct timeval tv;

	a->registering = false;
	if (a->shutting_down)
		return;
	if (status != 200 || !(b = body_of(req))) {
		if (a->backoff_s <= BACKOFF_MIN_S)
			log_warnx("cannot register with %s (%s); retrying with backoff", a->opts.core_url,
			          status ? "refused" : "no answer");
		backoff_later(a, a->register_timer);
		return;
	}
	snprintf(a->node_token, sizeof a->node_token, "%s", json_string_value(json_object_get(b, "token")) ?: "");
	a->hb_interval_s = (int)json_integer_value(json_object_get(b, "heartbeat_interval_s"));
	if (a->hb_interval_s <= 0)
		a->hb_interval_s = 5;
	json_decref(b);
	a->registered = true;
	a->backoff_s = BACKOFF_MIN_S;
	log_info("registered with %s as %s (%s)", a->opts.core_url, a->name, a->id);
	tv = clock_timeval(a->hb_interval_s);
	evtimer_add(a->hb_timer, &tv);
	a->acked = 0; /* a core that restarted numbers its assignments anew */
	poll_send(a);
	report_flush(a);
}

static void register_send(struct node_agent *a)
{
	if (a->registering || a->shutting_down)
		return;
	a->registering = true;
	if (send_json(a, a->ctl_conn, EVHTTP_REQ_POST, "/v1/nodes/register", a->cluster_token, register_body(a),
	              on_register) < 0) {
		a->registering = false;
		backoff_later(a, a->register_timer);
	}
}

static void on_register_timer(UNUSED evutil_socket_t fd, UNUSED short what, void *arg) { register_send(arg); }

static void on_heartbeat(struct evhttp_request *req, void *arg)
{
	struct node_agent *a = arg;
	int status = status_of(req);
	if (status == 401 || status == 404)
		need_register(a);
}

static void on_heartbeat_timer(UNUSED evutil_socket_t fd, UNUSED short what, void *arg)
{
	struct node_agent *a = arg;
	char path[128];
	struct timeval tv = clock_timeval(a->hb_interval_s);
	if (!a->registered || a->shutting_down)
		return;
	snprintf(path, sizeof path, "/v1/nodes/%s/heartbeat", a->id);
	send_json(a, a->ctl_conn, EVHTTP_REQ_POST, path, a->node_token, NULL, on_heartbeat);
	evtimer_add(a->hb_timer, &tv);
}

/* ---- reports ---- */

static void report_state(struct node_agent *a, struct ninst *ni, enum inst_state st)
{
	struct report *r = calloc(1, sizeof *r);
	if (!r)
		fatal("calloc");
	memcpy(r->id, ni->id, sizeof r->id);
	r->state = st;
	r->has_exit_code = ni->has_exit_code;
	r->exit_code = ni->exit_code;
	snprintf(r->error, sizeof r->error, "%s", ni->error);
	if (st == INST_RUNNING) {
		r->has_timing = true;
		r->timing = ni->timing;
		r->received_us = ni->received_us;
	}
	*a->reports_tail = r;
	a->reports_tail = &r->next;
	report_flush(a);
}

static void report_unknown_stopped(struct node_agent *a, const char *id)
{
	struct ninst tmp = {0};
	snprintf(tmp.id, sizeof tmp.id, "%s", id);
	report_state(a, &tmp, INST_STOPPED);
}

static void reports_free(struct report *r)
{
	while (r) {
		struct report *next = r->next;
		free(r);
		r = next;
	}
}

/* Puts an unanswered batch back in front of the queue, to be sent again. */
static void reports_requeue(struct node_agent *a)
{
	struct report *last = a->in_flight;
	if (!last)
		return;
	while (last->next)
		last = last->next;
	last->next = a->reports;
	if (!a->reports)
		a->reports_tail = &last->next;
	a->reports = a->in_flight;
	a->in_flight = NULL;
}

/* The core refused the batch as malformed: resending would be refused again. */
static void reports_drop(struct node_agent *a)
{
	log_warnx("the core refused a status report (400); dropping it");
	reports_free(a->reports);
	a->reports = NULL;
	a->reports_tail = &a->reports;
}

static void on_reports(struct evhttp_request *req, void *arg)
{
	struct node_agent *a = arg;
	int status = status_of(req);
	if (status == 200) {
		reports_free(a->in_flight);
		a->in_flight = NULL;
		report_flush(a);
	} else {
		reports_requeue(a);
		if (status == 401 || status == 404)
			need_register(a);
		else if (status == 400)
			reports_drop(a);
		else
			backoff_later(a, a->report_timer);
	}
	shutdown_check(a);
}

static void report_flush(struct node_agent *a)
{
	json_t *list;
	char path[128];
	int64_t now = clock_mono_us();

	if (a->in_flight || !a->reports || !a->registered)
		return;
	list = json_array();
	for (struct report *r = a->reports; r; r = r->next) {
		json_t *j = json_pack("{s:s, s:s}", "id", r->id, "state", inst_state_names[r->state]);
		if (r->has_exit_code)
			json_object_set_new(j, "exit_code", json_integer(r->exit_code));
		if (r->error[0])
			json_object_set_new(j, "error", json_string(r->error));
		if (r->has_timing) {
			r->timing.work_us = now - r->received_us;
			json_object_set_new(j, "timing", node_timing_to_json(&r->timing));
		}
		json_array_append_new(list, j);
	}
	a->in_flight = a->reports;
	a->reports = NULL;
	a->reports_tail = &a->reports;
	snprintf(path, sizeof path, "/v1/nodes/%s/reports", a->id);
	if (send_json(a, a->report_conn, EVHTTP_REQ_POST, path, a->node_token, json_pack("{s:o}", "reports", list),
	              on_reports) < 0) {
		reports_requeue(a);
		backoff_later(a, a->report_timer);
	}
}

static void on_report_timer(UNUSED evutil_socket_t fd, UNUSED short what, void *arg) { report_flush(arg); }

/* ---- instance records on disk ---- */

static void record_write(struct ninst *ni, const char *state)
{
	char path[PATH_MAX + 16];
	json_t *j = json_pack("{s:s, s:s, s:O, s:i, s:I, s:s}", "id", ni->id, "name", ni->name, "spec", ni->spec,
	                      "pid", (int)ni->h.pid, "start_time", (json_int_t)ni->h.start_time, "state", state);
	char *text = json_dumps(j, JSON_COMPACT);
	int rc;
	json_decref(j);
	snprintf(path, sizeof path, "%s/record.json", ni->dir);
	/* No fsync: the record must survive the node's crash, which rename alone ensures. */
	if ((rc = fs_write_atomic(path, text, strlen(text), false)) < 0)
		log_warnx("instance %s: cannot write %s: %s", ni->id, path, strerror(-rc));
	free(text);
}

/* ---- instance life ---- */

static void ninst_free(struct ninst *ni)
{
	if (ni->exit_ev)
		event_free(ni->exit_ev);
	if (ni->kill_timer)
		event_free(ni->kill_timer);
	if (ni->stdout_fd >= 0)
		close(ni->stdout_fd);
	if (ni->stderr_fd >= 0)
		close(ni->stderr_fd);
	json_decref(ni->spec);
	free(ni);
}

static void ninst_end(struct ninst *ni, enum inst_state st)
{
	struct node_agent *a = ni->agent;
	ni->phase = NI_ENDED;
	ni->final_state = st;
	if (ni->kill_timer)
		evtimer_del(ni->kill_timer);
	if (ni->exit_ev)
		event_del(ni->exit_ev);
	record_write(ni, inst_state_names[st]);
	report_state(a, ni, st);
	shutdown_check(a);
}

static void on_instance_exit(UNUSED evutil_socket_t fd, UNUSED short what, void *arg)
{
	struct ninst *ni = arg;
	int code = 0;
	bool known = false;
	int rc = ni->drv->reap(&ni->h, &code, &known);
	if (rc == -EAGAIN)
		return;
	if (rc < 0)
		log_warnx("instance %s: reap: %s", ni->id, strerror(-rc));
	ni->has_exit_code = known;
	ni->exit_code = code;
	if (ni->stop_requested) {
		ninst_end(ni, INST_STOPPED);
	} else if (known && code == 0) {
		ninst_end(ni, INST_EXITED);
	} else {
		if (known)
			snprintf(ni->error, sizeof ni->error, code > 128 ? "killed by signal %d" : "exited with code %d",
			         code > 128 ? code - 128 : code);
		else
			snprintf(ni->error, sizeof ni->error, "ended while the node was not watching (exit code unknown)");
		ninst_end(ni, known ? INST_FAILED : INST_EXITED);
	}
}

static void on_kill_timer(UNUSED evutil_socket_t fd, UNUSED short what, void *arg)
{
	struct ninst *ni = arg;
	if (ni->phase != NI_RUNNING)
		return;
	log_info("instance %s did not stop within %.1f s: SIGKILL", ni->id, ni->agent->opts.stop_grace_s);
	drv_signal(ni->drv, &ni->h, true);
}

static void ninst_stop(struct ninst *ni)
{
	struct timeval tv = clock_timeval(ni->agent->opts.stop_grace_s);
	int rc;
	ni->stop_requested = true;
	if (ni->phase != NI_RUNNING)
		return; /* spawning: stopped when the spawn returns; ended: nothing to do */
	rc = drv_signal(ni->drv, &ni->h, false);
	if (rc < 0 && rc != -ESRCH)
		log_warnx("instance %s: stop: %s", ni->id, strerror(-rc));
	evtimer_add(ni->kill_timer, &tv);
}

static void watch_exit(struct ninst *ni)
{
	struct node_agent *a = ni->agent;
	ni->exit_ev = event_new(a->base, ni->h.pidfd, EV_READ, on_instance_exit, ni);
	event_add(ni->exit_ev, NULL);
	ni->kill_timer = evtimer_new(a->base, on_kill_timer, ni);
	ni->phase = NI_RUNNING;
}

/* On a worker: the driver call (the spawn phase) and the record that lets a restarted node
 * find the instance again. */
static void start_work(void *arg)
{
	struct ninst *ni = arg;
	int64_t t0 = clock_mono_us();
	struct drv_start_request r = {.instance_id = ni->id, .name = ni->name, .spec = ni->spec, .dir = ni->dir,
	                              .stdout_fd = ni->stdout_fd, .stderr_fd = ni->stderr_fd};
	ni->timing.prepare_us = t0 - ni->received_us - ni->timing.network_us;
	ni->start_rc = ni->drv->start(&ni->agent->drv_opts, &r, &ni->h, ni->start_err, sizeof ni->start_err);
	ni->timing.spawn_us = clock_mono_us() - t0;
	if (ni->start_rc == 0)
		record_write(ni, "running");
}

static void start_done(void *arg)
{
	struct ninst *ni = arg;
	close(ni->stdout_fd);
	close(ni->stderr_fd);
	ni->stdout_fd = ni->stderr_fd = -1;
	if (ni->start_rc < 0) {
		snprintf(ni->error, sizeof ni->error, "%s", ni->start_err);
		log_warnx("instance %s failed to start: %s", ni->id, ni->error);
		ninst_end(ni, INST_FAILED);
		return;
	}
	watch_exit(ni);
	report_state(ni->agent, ni, INST_RUNNING);
	if (ni->stop_requested || (ni->agent->shutting_down && ni->agent->opts.stop_instances_on_exit))
		ninst_stop(ni);
}

static int open_log(const char *dir, const char *name)
{
	char path[PATH_MAX + 16];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	return open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
}

/* The prepare phase: instance dir and logs (images come with the drivers issue). */
static int prepare(struct ninst *ni)
{
	int rc;
	if (snprintf(ni->dir, sizeof ni->dir, "%s/instances/%s", ni->agent->opts.data_dir, ni->id) >=
	    (int)sizeof ni->dir) {
		snprintf(ni->error, sizeof ni->error, "instance dir path too long");
		return -ENAMETOOLONG;
	}
	if ((rc = fs_mkdir_p(ni->dir, 0750)) < 0) {
		snprintf(ni->error, sizeof ni->error, "cannot create %.160s: %s", ni->dir, strerror(-rc));
		return rc;
	}
	ni->stdout_fd = open_log(ni->dir, "stdout.log");
	ni->stderr_fd = open_log(ni->dir, "stderr.log");
	if (ni->stdout_fd < 0 || ni->stderr_fd < 0) {
		snprintf(ni->error, sizeof ni->error, "cannot open the logs in %.160s: %s", ni->dir, strerror(errno));
		return -EIO;
	}
	return 0;
}

static struct ninst *ninst_new(struct node_agent *a, const char *id, const json_t *spec)
{
	struct ninst *ni = calloc(1, sizeof *ni);
	if (!ni)
		fatal("calloc");
	ni->agent = a;
	ni->stdout_fd = ni->stderr_fd = -1;
	ni->h.pidfd = -1;
	snprintf(ni->id, sizeof ni->id, "%s", id);
	snprintf(ni->name, sizeof ni->name, "%s", json_string_value(json_object_get(spec, "name")) ?: id);
	ni->spec = json_incref((json_t *)spec);
	hmap_put(&a->instances, ni->id, ni);
	return ni;
}

static void handle_start(struct node_agent *a, const char *id, const json_t *spec)
{
	struct ninst *ni = hmap_get(&a->instances, id);
	const char *driver = json_string_value(json_object_get(spec, "driver"));

	if (ni) { /* sent again after a reconnect: say where it stands */
		if (ni->phase == NI_RUNNING)
			report_state(a, ni, INST_RUNNING);
		else if (ni->phase == NI_ENDED)
			report_state(a, ni, ni->final_state);
		return;
	}
	if (!json_is_object(spec) || !driver) {
		log_warnx("assignment for %s has no usable spec; ignored", id);
		return;
	}
	ni = ninst_new(a, id, spec);
	ni->received_us = clock_mono_us();
	ni->drv = driver_find(driver);
	if (!ni->drv || !json_object_get(a->drivers_info, driver)) {
		snprintf(ni->error, sizeof ni->error, "driver %s is not available on this node", driver);
		ninst_end(ni, INST_FAILED);
		return;
	}
	if (prepare(ni) < 0) {
		ninst_end(ni, INST_FAILED);
		return;
	}
	ni->timing.network_us = 0; /* no network requested: the bridge work comes with the drivers issue */
	ni->phase = NI_SPAWNING;
	worker_submit(a->workers, start_work, start_done, ni);
}

static void handle_stop(struct node_agent *a, const char *id)
{
	struct ninst *ni = hmap_get(&a->instances, id);
	if (!ni) {
		report_unknown_stopped(a, id);
		return;
	}
	if (ni->phase == NI_ENDED)
		report_state(a, ni, ni->final_state);
	else
		ninst_stop(ni);
}

static void handle_purge(struct node_agent *a, const char *id)
{
	struct ninst *ni = hmap_get(&a->instances, id);
	char dir[PATH_MAX];
	int rc;
	if (ni && ni->phase != NI_ENDED)
		return; /* never remove the files of something alive */
	snprintf(dir, sizeof dir, "%s/instances/%s", a->opts.data_dir, id);
	if ((rc = fs_remove_tree(dir)) < 0)
		log_warnx("cannot remove %s: %s", dir, strerror(-rc));
	if (ni) {
		hmap_remove(&a->instances, id);
		ninst_free(ni);
	}
}

/* ---- the long-poll ---- */

static void handle_assignments(struct node_agent *a, const json_t *list)
{
	size_t i;
	json_t *as;
	json_array_foreach(list, i, as) {
		uint64_t seq = (uint64_t)json_integer_value(json_object_get(as, "seq"));
		const char *op = json_string_value(json_object_get(as, "op"));
		const json_t *inst = json_object_get(as, "instance");
		const char *id = json_string_value(json_object_get(inst, "id"));
		if (seq <= a->acked)
			continue;
		a->acked = seq;
		if (!op || !id || strlen(id) != MV_ID_LEN) {
			log_warnx("malformed assignment %" PRIu64 " ignored", seq);
			continue;
		}
		if (strcmp(op, "start") == 0)
			handle_start(a, id, json_object_get(inst, "spec"));
		else if (strcmp(op, "stop") == 0)
			handle_stop(a, id);
		else if (strcmp(op, "purge") == 0)
			handle_purge(a, id);
		else
			log_warnx("unknown assignment op %s ignored", op);
	}
}

static void on_poll(struct evhttp_request *req, void *arg)
{
	struct node_agent *a = arg;
	int status = status_of(req);
	json_t *b;

	if (a->shutting_down)
		return;
	if (status == 200 && (b = body_of(req))) {
		a->backoff_s = BACKOFF_MIN_S;
		handle_assignments(a, json_object_get(b, "assignments"));
		json_decref(b);
		poll_send(a);
		return;
	}
	if (status == 401 || status == 404) {
		need_register(a);
		return;
	}
	backoff_later(a, a->poll_timer);
}

static void poll_send(struct node_agent *a)
{
	char path[160];
	if (!a->registered || a->shutting_down)
		return;
	snprintf(path, sizeof path, "/v1/nodes/%s/assignments?after=%" PRIu64 "&wait=%d", a->id, a->acked, POLL_WAIT_S);
	if (send_json(a, a->poll_conn, EVHTTP_REQ_GET, path, a->node_token, NULL, on_poll) < 0)
		backoff_later(a, a->poll_timer);
}

static void on_poll_timer(UNUSED evutil_socket_t fd, UNUSED short what, void *arg) { poll_send(arg); }

/* ---- start-up: identity, host resources, drivers, records ---- */

static int load_identity(struct node_agent *a, char *err, size_t errlen)
{
	char path[PATH_MAX], *text = NULL;
	int rc;
	snprintf(path, sizeof path, "%s/node-id", a->opts.data_dir);
	rc = fs_read_file(path, 64, &text, NULL);
	if (rc == 0 && strlen(text) >= MV_ID_LEN && strspn(text, "0123456789abcdef") >= MV_ID_LEN) {
		memcpy(a->id, text, MV_ID_LEN);
		a->id[MV_ID_LEN] = '\0';
		free(text);
		return 0;
	}
	free(text);
	id_generate(a->id);
	if ((rc = fs_write_atomic(path, a->id, MV_ID_LEN, true)) < 0) {
		snprintf(err, errlen, "cannot write %s: %s", path, strerror(-rc));
		return -1;
	}
	return 0;
}

static void read_host(struct node_agent *a)
{
	struct sysinfo si;
	char hostname[256] = "node";
	a->cpus = (int)sysconf(_SC_NPROCESSORS_ONLN);
	if (a->cpus < 1)
		a->cpus = 1;
	if (sysinfo(&si) == 0)
		a->memory_mb = (int64_t)((unsigned long long)si.totalram * si.mem_unit / (1024 * 1024));
	if (a->memory_mb < 1)
		a->memory_mb = 1;
	gethostname(hostname, sizeof hostname - 1);
	hostname[strcspn(hostname, ".")] = '\0';
	snprintf(a->name, sizeof a->name, "%.63s", a->opts.name ? a->opts.name : hostname);
	if (!name_valid(a->name))
		snprintf(a->name, sizeof a->name, "node-%.8s", a->id);
}

static void probe_drivers(struct node_agent *a)
{
	a->drivers_info = json_object();
	for (int i = 0; drivers[i]; i++) {
		json_t *info = NULL;
		char why[256] = "";
		if (drivers[i]->probe(&a->drv_opts, &info, why, sizeof why) == 0) {
			json_object_set_new(a->drivers_info, drivers[i]->name, info);
			log_info("driver %s: available", drivers[i]->name);
		} else {
			log_info("driver %s: not available: %s", drivers[i]->name, why);
		}
	}
}

/* Re-attaches to instances a previous run of this node started. */
static void recover_instances(struct node_agent *a)
{
	char dirpath[PATH_MAX];
	DIR *d;
	struct dirent *e;
	snprintf(dirpath, sizeof dirpath, "%s/instances", a->opts.data_dir);
	if (!(d = opendir(dirpath)))
		return;
	while ((e = readdir(d))) {
		char path[PATH_MAX + 300], *text;
		json_t *rec;
		struct ninst *ni;
		const char *state;
		if (strlen(e->d_name) != MV_ID_LEN || hmap_get(&a->instances, e->d_name))
			continue;
		snprintf(path, sizeof path, "%s/%s/record.json", dirpath, e->d_name);
		if (fs_read_file(path, 1 << 20, &text, NULL) < 0)
			continue;
		rec = json_loads(text, 0, NULL);
		free(text);
		state = json_string_value(json_object_get(rec, "state"));
		if (!rec || !state || !json_is_object(json_object_get(rec, "spec"))) {
			json_decref(rec);
			continue;
		}
		ni = ninst_new(a, e->d_name, json_object_get(rec, "spec"));
		if (snprintf(ni->dir, sizeof ni->dir, "%.4000s/%.16s", dirpath, e->d_name) >= (int)sizeof ni->dir)
			log_warnx("instance dir path truncated: %s", ni->dir);
		ni->drv = driver_find(json_string_value(json_object_get(ni->spec, "driver")) ?: "");
		ni->h.pid = (pid_t)json_integer_value(json_object_get(rec, "pid"));
		ni->h.start_time = (unsigned long long)json_integer_value(json_object_get(rec, "start_time"));
		if (strcmp(state, "running") != 0) {
			ni->phase = NI_ENDED;
			ni->final_state = inst_state_parse(state) >= 0 ? (enum inst_state)inst_state_parse(state) : INST_EXITED;
		} else if (ni->drv && drv_recover(ni->drv, &ni->h) == 0) {
			watch_exit(ni);
			log_info("instance %s (pid %d) is still running: re-attached", ni->id, (int)ni->h.pid);
		} else {
			snprintf(ni->error, sizeof ni->error, "ended while the node was not running (exit code unknown)");
			ninst_end(ni, INST_EXITED);
		}
		json_decref(rec);
	}
	closedir(d);
}

struct node_agent *node_create(struct event_base *base, const struct node_options *o, char *err, size_t errlen)
{
	struct node_agent *a = calloc(1, sizeof *a);
	int rc;
	if (!a)
		fatal("calloc");
	a->opts = *o;
	a->base = base;
	a->backoff_s = BACKOFF_MIN_S;
	a->reports_tail = &a->reports;
	a->drv_opts.exec_allow = o->exec_allow;
	hmap_init(&a->instances);
	if (http_parse_url(o->core_url, a->host, sizeof a->host, &a->port) < 0) {
		snprintf(err, errlen, "--core %s is not a URL like http://HOST:PORT", o->core_url);
		goto fail;
	}
	if (o->token_file) {
		size_t len;
		if ((rc = fs_read_file(o->token_file, 4096, &a->cluster_token, &len)) < 0) {
			snprintf(err, errlen, "cannot read --token-file %s: %s", o->token_file, strerror(-rc));
			goto fail;
		}
		while (len > 0 && strchr("\r\n ", a->cluster_token[len - 1]))
			a->cluster_token[--len] = '\0';
	}
	if ((rc = fs_mkdir_p(o->data_dir, 0700)) < 0) {
		snprintf(err, errlen, "cannot create --data-dir %s: %s", o->data_dir, strerror(-rc));
		goto fail;
	}
	if (load_identity(a, err, errlen) < 0)
		goto fail;
	read_host(a);
	probe_drivers(a);
	if (!(a->workers = worker_pool_new(base, 0))) {
		snprintf(err, errlen, "cannot start worker threads: %s", strerror(errno));
		goto fail;
	}
	a->poll_conn = evhttp_connection_base_new(base, NULL, a->host, (unsigned short)a->port);
	a->ctl_conn = evhttp_connection_base_new(base, NULL, a->host, (unsigned short)a->port);
	a->report_conn = evhttp_connection_base_new(base, NULL, a->host, (unsigned short)a->port);
	evhttp_connection_set_timeout(a->poll_conn, POLL_WAIT_S + 10);
	evhttp_connection_set_timeout(a->ctl_conn, CTL_TIMEOUT_S);
	evhttp_connection_set_timeout(a->report_conn, CTL_TIMEOUT_S);
	a->hb_timer = evtimer_new(base, on_heartbeat_timer, a);
	a->register_timer = evtimer_new(base, on_register_timer, a);
	a->poll_timer = evtimer_new(base, on_poll_timer, a);
	a->report_timer = evtimer_new(base, on_report_timer, a);
	recover_instances(a);
	register_send(a);
	return a;
fail:
	node_destroy(a);
	return NULL;
}

/* ---- shutdown ---- */

static bool anything_alive(struct node_agent *a)
{
	const char *k;
	void *v;
	for (size_t i = 0; hmap_next(&a->instances, &i, &k, &v);)
		if (((struct ninst *)v)->phase != NI_ENDED)
			return true;
	return false;
}

static void shutdown_finish(struct node_agent *a)
{
	void (*done)(void *) = a->on_shutdown;
	if (!done)
		return;
	a->on_shutdown = NULL;
	evtimer_del(a->shutdown_timer);
	done(a->on_shutdown_arg);
}

static void shutdown_check(struct node_agent *a)
{
	if (!a->on_shutdown)
		return;
	if (a->opts.stop_instances_on_exit && anything_alive(a))
		return;
	if (a->registered && (a->reports || a->in_flight))
		return; /* let the core hear the last states */
	shutdown_finish(a);
}

static void on_shutdown_deadline(UNUSED evutil_socket_t fd, UNUSED short what, void *arg)
{
	struct node_agent *a = arg;
	const char *k;
	void *v;
	for (size_t i = 0; hmap_next(&a->instances, &i, &k, &v);) {
		struct ninst *ni = v;
		if (ni->phase == NI_RUNNING && a->opts.stop_instances_on_exit) {
			log_warnx("instance %s still alive at shutdown: SIGKILL", ni->id);
			drv_signal(ni->drv, &ni->h, true);
		}
	}
	shutdown_finish(a);
}

void node_shutdown(struct node_agent *a, void (*done)(void *arg), void *arg)
{
	const char *k;
	void *v;
	struct timeval tv = clock_timeval(a->opts.stop_grace_s + SHUTDOWN_EXTRA_S);
	a->on_shutdown = done;
	a->on_shutdown_arg = arg;
	a->shutdown_timer = evtimer_new(a->base, on_shutdown_deadline, a);
	evtimer_add(a->shutdown_timer, &tv);
	if (a->opts.stop_instances_on_exit) {
		for (size_t i = 0; hmap_next(&a->instances, &i, &k, &v);)
			if (((struct ninst *)v)->phase == NI_RUNNING)
				ninst_stop(v);
	}
	/* Stop taking new work only now, so that the final reports still go out. */
	evtimer_del(a->hb_timer);
	evtimer_del(a->poll_timer);
	shutdown_check(a);
}

/* Blocks until our own children that were killed are reaped (bounded), so no zombie or
 * orphan is left to a slow init. */
static void reap_killed_children(struct node_agent *a)
{
	const char *k;
	void *v;
	for (size_t i = 0; hmap_next(&a->instances, &i, &k, &v);) {
		struct ninst *ni = v;
		if (ni->phase != NI_RUNNING || !ni->h.is_child || !a->opts.stop_instances_on_exit)
			continue;
		for (int tries = 0; tries < 100; tries++) {
			int code;
			bool known;
			if (ni->drv->reap(&ni->h, &code, &known) != -EAGAIN)
				break;
			usleep(10000); /* shutdown only: the loop has stopped */
		}
	}
}

void node_destroy(struct node_agent *a)
{
	const char *k;
	void *v;
	if (!a)
		return;
	a->shutting_down = true;
	worker_pool_free(a->workers);
	reap_killed_children(a);
	if (a->poll_conn)
		evhttp_connection_free(a->poll_conn);
	if (a->ctl_conn)
		evhttp_connection_free(a->ctl_conn);
	if (a->report_conn)
		evhttp_connection_free(a->report_conn);
	for (size_t i = 0; hmap_next(&a->instances, &i, &k, &v);) {
		struct ninst *ni = v;
		if (ni->h.pidfd >= 0)
			close(ni->h.pidfd);
		ninst_free(ni);
	}
	hmap_free(&a->instances);
	reports_free(a->reports);
	reports_free(a->in_flight);
	struct event *timers[] = {a->hb_timer, a->register_timer, a->poll_timer, a->report_timer, a->shutdown_timer};
	for (size_t i = 0; i < sizeof timers / sizeof timers[0]; i++)
		if (timers[i])
			event_free(timers[i]);
	json_decref(a->drivers_info);
	free(a->cluster_token);
	free(a);
}
