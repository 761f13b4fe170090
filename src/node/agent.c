/* agent — the node's conversation with the core: register, heartbeat, the long-poll that
 * brings assignments, status reports sent at once, image blobs fetched on first use; and
 * the node's start-up and orderly exit. */
#include <errno.h>
#include <event2/keyvalq_struct.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/magic.h>
#include <sys/statfs.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/fs.h"
#include "common/http.h"
#include "common/log.h"
#include "drivers/proc.h"
#include "node/internal.h"

#define POLL_WAIT_S 25
#define CTL_TIMEOUT_S 10
#define BLOB_TIMEOUT_S 120
#define BACKOFF_MIN_S 0.05
#define BACKOFF_MAX_S 5.0
#define SHUTDOWN_EXTRA_S 2.0

static void register_send(struct node_agent *a);
static void poll_send(struct node_agent *a);
static void report_flush(struct node_agent *a);

void node_options_default(struct node_options *o)
{
	*o = (struct node_options){
		.core_url = "http://127.0.0.1:4650",
		.data_dir = "/var/lib/microvim/node",
		.stop_grace_s = 5.0,
	};
}

/* ---- HTTP to the core ---- */

static struct evhttp_request *new_request(struct node_agent *a, const char *token,
                                          void (*cb)(struct evhttp_request *, void *), void *arg)
{
	struct evhttp_request *req = evhttp_request_new(cb, arg);
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	char buf[300];
	snprintf(buf, sizeof buf, "%s:%d", a->host, a->port);
	evhttp_add_header(h, "Host", buf);
	if (token && token[0]) {
		snprintf(buf, sizeof buf, "Bearer %s", token);
		evhttp_add_header(h, "Authorization", buf);
	}
	return req;
}

static int send_json(struct node_agent *a, struct evhttp_connection *conn, enum evhttp_cmd_type method,
                     const char *path, const char *token, json_t *body,
                     void (*cb)(struct evhttp_request *, void *))
{
	struct evhttp_request *req = new_request(a, token, cb, a);
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
static json_t *register_body(struct node_agent *a)
{
	return json_pack("{s:s, s:s, s:s, s:{s:i, s:I}, s:O, s:O, s:o, s:o}", "id", a->id, "name", a->name,
	                 "address", a->host, "resources", "cpus", a->cpus, "memory_mb", (json_int_t)a->memory_mb,
	                 "drivers", a->drivers_info, "labels", a->opts.labels, "bridges", bridges_json(),
	                 "instances", instances_alive_ids(a));
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
			          status == 401 ? "unauthorized: check --token-file" : status ? "refused" : "no answer");
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
	int status = status_of(req);
	if (status == 401 || status == 404)
		need_register(arg);
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

void agent_report(struct node_agent *a, const struct ninst *ni, enum inst_state st)
{
	struct report *r = calloc(1, sizeof *r);
	if (!r)
		fatal("calloc");
	memcpy(r->id, ni->id, sizeof r->id);
	r->state = st;
	r->ready = st == INST_RUNNING && ni->ready;
	r->has_exit_code = ni->has_exit_code;
	r->exit_code = ni->exit_code;
	snprintf(r->error, sizeof r->error, "%s", ni->error);
	if (st == INST_RUNNING && ni->received_us) { /* none for an instance re-attached after a restart */
		r->has_timing = true;
		r->timing = ni->timing;
		r->received_us = ni->received_us;
	}
	*a->reports_tail = r;
	a->reports_tail = &r->next;
	if (a->opts.notify_batch_ms > 0) {
		/* the stock behaviour the paper measured: reports wait and go out together */
		if (!evtimer_pending(a->report_timer, NULL)) {
			struct timeval tv = clock_timeval(a->opts.notify_batch_ms / 1000.0);
			evtimer_add(a->report_timer, &tv);
		}
		return;
	}
	report_flush(a);
}

void agent_report_unknown_stopped(struct node_agent *a, const char *id)
{
	struct ninst tmp = {0};
	snprintf(tmp.id, sizeof tmp.id, "%s", id);
	agent_report(a, &tmp, INST_STOPPED);
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

/* The core refused the batch as malformed: sending it again would be refused again. */
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
		if (a->opts.notify_batch_ms == 0)
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
	agent_shutdown_check(a);
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
		if (r->ready)
			json_object_set_new(j, "ready", json_true());
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

/* ---- image blobs ---- */

struct blob_fetch {
	struct node_agent *a;
	struct ninst *ni;
	char digest[DIGEST_LEN + 1];
	blob_fetched_fn *done;
};

static void on_blob(struct evhttp_request *req, void *arg)
{
	struct blob_fetch *f = arg;
	int status = status_of(req);
	char why[128];
	if (status == 200) {
		f->done(f->a, f->ni, f->digest, evhttp_request_get_input_buffer(req), NULL);
	} else {
		snprintf(why, sizeof why, status ? "the core answered %d" : "no answer from the core", status);
		f->done(f->a, f->ni, f->digest, NULL, why);
	}
	free(f);
}

void agent_fetch_blob(struct node_agent *a, struct ninst *ni, const char *digest, blob_fetched_fn *done)
{
	struct blob_fetch *f = calloc(1, sizeof *f);
	struct evhttp_request *req;
	char path[128];
	if (!f)
		fatal("calloc");
	*f = (struct blob_fetch){.a = a, .ni = ni, .done = done};
	snprintf(f->digest, sizeof f->digest, "%s", digest);
	snprintf(path, sizeof path, "/v1/blobs/%s", digest);
	/* blobs use the cluster token, like any client of the images API */
	req = new_request(a, a->cluster_token, on_blob, f);
	if (evhttp_make_request(a->blob_conn, req, EVHTTP_REQ_GET, path) < 0) {
		done(a, ni, digest, NULL, "cannot send the request");
		free(f);
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
		if (!op || !id || strlen(id) != MV_ID_LEN || strspn(id, "0123456789abcdef") != MV_ID_LEN) {
			log_warnx("malformed assignment %" PRIu64 " ignored", seq);
			continue;
		}
		if (strcmp(op, "start") == 0)
			instance_start(a, id, json_object_get(inst, "spec"));
		else if (strcmp(op, "stop") == 0)
			instance_stop(a, id);
		else if (strcmp(op, "purge") == 0)
			instance_purge(a, id);
		else
			log_warnx("unknown assignment op %s ignored", op);
	}
}

static void on_poll(struct evhttp_request *req, void *arg)
{
	struct node_agent *a = arg;
	int status = status_of(req);
	json_t *b;

	if (a->shutting_down || a->on_shutdown)
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
	if (!a->registered || a->shutting_down || a->on_shutdown)
		return;
	snprintf(path, sizeof path, "/v1/nodes/%s/assignments?after=%" PRIu64 "&wait=%d", a->id, a->acked, POLL_WAIT_S);
	if (send_json(a, a->poll_conn, EVHTTP_REQ_GET, path, a->node_token, NULL, on_poll) < 0)
		backoff_later(a, a->poll_timer);
}

static void on_poll_timer(UNUSED evutil_socket_t fd, UNUSED short what, void *arg) { poll_send(arg); }

/* ---- start-up: identity, host resources, drivers ---- */

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

static bool on_tmpfs(const char *path)
{
	struct statfs st;
	return statfs(path, &st) == 0 && st.f_type == TMPFS_MAGIC && access(path, W_OK) == 0;
}

static int choose_run_dir(struct node_agent *a, char *err, size_t errlen)
{
	int rc;
	if (a->opts.run_dir)
		snprintf(a->run_dir, sizeof a->run_dir, "%s", a->opts.run_dir);
	else if (on_tmpfs("/run"))
		snprintf(a->run_dir, sizeof a->run_dir, "/run/microvim/%s", a->id);
	else if (on_tmpfs("/dev/shm")) /* hosts whose /run is on disk */
		snprintf(a->run_dir, sizeof a->run_dir, "/dev/shm/microvim/%s", a->id);
	else
		snprintf(a->run_dir, sizeof a->run_dir, "%.4000s/run", a->opts.data_dir);
	if ((rc = fs_mkdir_p(a->run_dir, 0700)) < 0) {
		snprintf(err, errlen, "cannot create the run dir %s: %s", a->run_dir, strerror(-rc));
		return -1;
	}
	return 0;
}

static int create_bridges(struct node_agent *a, char *err, size_t errlen)
{
	for (int i = 0; a->opts.bridges && a->opts.bridges[i]; i++) {
		int rc = netdev_bridge_create(a->opts.bridges[i]);
		if (rc < 0) {
			snprintf(err, errlen, "cannot create bridge %s: %s", a->opts.bridges[i], strerror(-rc));
			return -1;
		}
	}
	return 0;
}

static int read_token_file(struct node_agent *a, char *err, size_t errlen)
{
	int rc = fs_read_token(a->opts.token_file, &a->cluster_token);
	if (rc < 0) {
		snprintf(err, errlen, "cannot read --token-file %s: %s", a->opts.token_file, strerror(-rc));
		return -1;
	}
	return 0;
}

static struct evhttp_connection *connection(struct node_agent *a, int timeout_s)
{
	struct evhttp_connection *c = evhttp_connection_base_new(a->base, NULL, a->host, (unsigned short)a->port);
	if (!c)
		fatalx("cannot create an HTTP connection");
	evhttp_connection_set_timeout(c, timeout_s);
	return c;
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
	a->inotify_fd = -1;
	a->drv_opts = (struct drv_options){.exec_allow = o->exec_allow, .qemu_binary = o->qemu_binary,
	                                   .libvirt_uri = o->libvirt_uri, .xl_binary = o->xl_binary,
	                                   .xenstore_binary = o->xenstore_binary,
	                                   .xen_console_dir = o->xen_console_dir};
	hmap_init(&a->instances);
	if (http_parse_url(o->core_url, a->host, sizeof a->host, &a->port) < 0) {
		snprintf(err, errlen, "--core %s is not a URL like http://HOST:PORT", o->core_url);
		goto fail;
	}
	if (o->token_file && read_token_file(a, err, errlen) < 0)
		goto fail;
	if ((rc = fs_mkdir_p(o->data_dir, 0700)) < 0) {
		snprintf(err, errlen, "cannot create --data-dir %s: %s", o->data_dir, strerror(-rc));
		goto fail;
	}
	if (load_identity(a, err, errlen) < 0 || choose_run_dir(a, err, errlen) < 0 || create_bridges(a, err, errlen) < 0)
		goto fail;
	read_host(a);
	/* now, while the process holds few descriptors: each spawner thread copies the table
	 * once (a failure is not fatal: proc_spawn then spawns from the workers, and says so) */
	proc_spawner_start();
	probe_drivers(a);
	if (!(a->workers = worker_pool_new(base, 0))) {
		snprintf(err, errlen, "cannot start worker threads: %s", strerror(errno));
		goto fail;
	}
	if (instances_init(a, err, errlen) < 0)
		goto fail;
	a->poll_conn = connection(a, POLL_WAIT_S + 10);
	a->ctl_conn = connection(a, CTL_TIMEOUT_S);
	a->report_conn = connection(a, CTL_TIMEOUT_S);
	a->blob_conn = connection(a, BLOB_TIMEOUT_S);
	a->hb_timer = evtimer_new(base, on_heartbeat_timer, a);
	a->register_timer = evtimer_new(base, on_register_timer, a);
	a->poll_timer = evtimer_new(base, on_poll_timer, a);
	a->report_timer = evtimer_new(base, on_report_timer, a);
	instances_recover(a);
	register_send(a);
	return a;
fail:
	node_destroy(a);
	return NULL;
}

/* ---- orderly exit ---- */

static void shutdown_finish(struct node_agent *a)
{
	void (*done)(void *) = a->on_shutdown;
	if (!done)
		return;
	a->on_shutdown = NULL;
	evtimer_del(a->shutdown_timer);
	done(a->on_shutdown_arg);
}

void agent_shutdown_check(struct node_agent *a)
{
	if (!a->on_shutdown)
		return;
	if (a->opts.stop_instances_on_exit && instances_alive(a))
		return;
	/* Let the core hear the last states, unless it is away (we are backing off): the
	 * records keep them and the next start reports them. */
	if (a->registered && (a->reports || a->in_flight) && a->backoff_s <= BACKOFF_MIN_S)
		return;
	shutdown_finish(a);
}

static void on_shutdown_deadline(UNUSED evutil_socket_t fd, UNUSED short what, void *arg)
{
	struct node_agent *a = arg;
	if (a->opts.stop_instances_on_exit)
		instances_kill_all(a);
	shutdown_finish(a);
}

void node_shutdown(struct node_agent *a, void (*done)(void *arg), void *arg)
{
	struct timeval tv = clock_timeval(a->opts.stop_grace_s + SHUTDOWN_EXTRA_S);
	a->on_shutdown = done;
	a->on_shutdown_arg = arg;
	a->shutdown_timer = evtimer_new(a->base, on_shutdown_deadline, a);
	evtimer_add(a->shutdown_timer, &tv);
	if (a->opts.stop_instances_on_exit)
		instances_stop_all(a);
	/* Take no new work; the reports connection stays so that the final states go out. */
	evtimer_del(a->hb_timer);
	evtimer_del(a->poll_timer);
	report_flush(a);
	agent_shutdown_check(a);
}

void node_destroy(struct node_agent *a)
{
	if (!a)
		return;
	a->shutting_down = true;
	worker_pool_free(a->workers);
	proc_spawner_stop(); /* no spawn can be in flight: the workers are gone */
	instances_free(a);
	struct evhttp_connection *conns[] = {a->poll_conn, a->ctl_conn, a->report_conn, a->blob_conn};
	for (size_t i = 0; i < sizeof conns / sizeof conns[0]; i++)
		if (conns[i])
			evhttp_connection_free(conns[i]);
	reports_free(a->reports);
	reports_free(a->in_flight);
	struct event *timers[] = {a->hb_timer, a->register_timer, a->poll_timer, a->report_timer, a->shutdown_timer};
	for (size_t i = 0; i < sizeof timers / sizeof timers[0]; i++)
		if (timers[i])
			event_free(timers[i]);
	json_decref(a->drivers_info);
	if (a->opts.remove_run_dir && a->run_dir[0] && fs_remove_tree(a->run_dir) < 0)
		log_warnx("could not remove %s", a->run_dir);
	free(a->cluster_token);
	free(a);
}
