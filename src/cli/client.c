/* client — the user commands: run, ps, show, stop, rm, nodes, logs. Clients of the public API
 * like any other; they print tables for people and the API's JSON with --json. */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <getopt.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/clock.h"
#include "common/corelist.h"
#include "common/fs.h"
#include "common/http.h"
#include "common/log.h"
#include "common/model.h"
#include "common/tls.h"
#include "common/trace.h"

struct client {
	const char *core_arg;  /* the URL or list as given */
	const char *core_from; /* where it came from, for messages: "--core" or "$MICROVIM_CORE" */
	struct corelist cores; /* parsed once the options are */
	char *token;
	bool json;
};

enum { C_CORE = 300, C_TOKEN_FILE, C_JSON, C_NAME, C_DRIVER, C_IMAGE, C_VCPUS, C_MEMORY, C_COUNT, C_ENV,
       C_LABEL, C_TIMEOUT, C_NO_WAIT, C_STATE, C_READY, C_CONFIG, C_BRIDGE, C_SETTLE, C_STREAM, C_FOLLOW, C_TLS_CA,
       C_IDEM_KEY, C_PAGE };

static const struct option client_options[] = {
	{"core", required_argument, NULL, C_CORE},
	{"token-file", required_argument, NULL, C_TOKEN_FILE},
	{"tls-ca", required_argument, NULL, C_TLS_CA},
	{"json", no_argument, NULL, C_JSON},
	{"name", required_argument, NULL, C_NAME},
	{"driver", required_argument, NULL, C_DRIVER},
	{"image", required_argument, NULL, C_IMAGE},
	{"vcpus", required_argument, NULL, C_VCPUS},
	{"memory-mb", required_argument, NULL, C_MEMORY},
	{"count", required_argument, NULL, C_COUNT},
	{"env", required_argument, NULL, C_ENV},
	{"label", required_argument, NULL, C_LABEL},
	{"timeout", required_argument, NULL, C_TIMEOUT},
	{"no-wait", no_argument, NULL, C_NO_WAIT},
	{"state", required_argument, NULL, C_STATE},
	{"ready", required_argument, NULL, C_READY},
	{"config", required_argument, NULL, C_CONFIG},
	{"bridge", required_argument, NULL, C_BRIDGE},
	{"settle", required_argument, NULL, C_SETTLE},
	{"stream", required_argument, NULL, C_STREAM},
	{"follow", no_argument, NULL, C_FOLLOW},
	{"idempotency-key", required_argument, NULL, C_IDEM_KEY},
	{"page", required_argument, NULL, C_PAGE},
	{NULL, 0, NULL, 0},
};

static int client_init(struct client *cl)
{
	const char *tf = getenv("MICROVIM_TOKEN");
	cl->core_arg = getenv("MICROVIM_CORE") ?: "http://127.0.0.1:4650";
	cl->core_from = getenv("MICROVIM_CORE") ? "$MICROVIM_CORE" : "the default core URL";
	cl->token = tf ? strdup(tf) : NULL;
	return 0;
}

int cli_core_list(struct corelist *l, const char *text, const char *from)
{
	char why[600];
	if (corelist_parse(l, text, why, sizeof why) == 0)
		return 0;
	fprintf(stderr, "microvim: %s: %s\n", from, why);
	return -1;
}

static int set_token_file(struct client *cl, const char *path)
{
	int rc;
	free(cl->token);
	cl->token = NULL;
	if ((rc = fs_read_token(path, &cl->token)) < 0) {
		fprintf(stderr, "microvim: cannot read --token-file %s: %s\n", path, strerror(-rc));
		return -1;
	}
	return 0;
}

/* One API call to the list (common/corelist.h: the next core when one does not answer, a
 * 307 followed). headers: name, value, ..., NULL, or NULL. Returns the HTTP status, or
 * -EXIT_UNREACHABLE after printing why. */
static int api_with(struct client *cl, const char *method, const char *path, const char *const *headers,
                    const json_t *body, double timeout_s, json_t **out)
{
	struct corelist_request rq = {.method = method, .path = path, .token = cl->token, .headers = headers,
	                              .body = body, .timeout_s = timeout_s, .note = "microvim"};
	struct http_response resp;
	char err[768];
	*out = NULL;
	if (corelist_call(&cl->cores, &rq, &resp, err, sizeof err) < 0) {
		fprintf(stderr, "microvim: %s\n", err);
		return -EXIT_UNREACHABLE;
	}
	if (resp.len > 0)
		*out = json_loads(resp.body, 0, NULL);
	http_response_free(&resp);
	return resp.status;
}

static int api(struct client *cl, const char *method, const char *path, const json_t *body, double timeout_s,
               json_t **out)
{
	return api_with(cl, method, path, NULL, body, timeout_s, out);
}

/* Prints the API's error body for a failed call; returns the exit code to use. */
static int report_error(int status, const json_t *body)
{
	const json_t *e = json_object_get(body, "error");
	if (status < 0)
		return -status;
	fprintf(stderr, "microvim: %d %s: %s\n", status, json_string_value(json_object_get(e, "code")) ?: "error",
	        json_string_value(json_object_get(e, "message")) ?: "(no message)");
	return EXIT_FAILED;
}

static void print_json(const json_t *j)
{
	json_dumpf(j, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(12));
	putchar('\n');
}

static double ms_of(const json_t *obj, const char *key) { return json_number_value(json_object_get(obj, key)); }

/* The phase table. client_total_ms > 0 adds the client's own total for this instance.
 * A guest asked for a ready marker that has not printed it yet ("ready": false): its
 * trace ends at running, and the time since is the guest's (boot, not over), never the
 * VIM's: no VIM overhead is derived from a client total that includes that wait. push
 * and analyze count such an instance the same way (not done, no overhead). */
/* The node's steps inside prepare and spawn (trace.steps), under their phase. */
static void print_steps(const json_t *steps, int phase)
{
	static const struct {
		int phase, step;
		const char *what;
	} rows[] = {
		{PHASE_PREPARE, STEP_ARTIFACT, "image blobs in the node's cache"},
		{PHASE_PREPARE, STEP_ENVIRONMENT, "instance dir and logs (and the wait for a worker)"},
		{PHASE_SPAWN, STEP_CONFIG, "the driver's configuration (argv, XML, xl config)"},
		{PHASE_SPAWN, STEP_CALL, "the toolstack or hypervisor call"},
	};
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		const json_t *v = json_object_get(steps, step_names[rows[i].step]);
		if (rows[i].phase == phase && v)
			printf("    %-20s %12.3f   %s\n", step_names[rows[i].step], json_number_value(v), rows[i].what);
	}
}

static void print_trace(const json_t *inst, double client_total_ms)
{
	const json_t *trace = json_object_get(inst, "trace"), *phases = json_object_get(trace, "phases");
	const char *cache = json_string_value(json_object_get(trace, "image_cache"));
	const char *pool = json_string_value(json_object_get(trace, "pool"));
	double spawn = ms_of(phases, "spawn"), boot = ms_of(phases, "boot");
	bool not_ready = json_is_false(json_object_get(inst, "ready"));
	if (!trace) {
		printf("  (no phase trace: the instance did not reach running)\n");
		return;
	}
	printf("  %-22s %12s\n", "phase", "ms");
	for (int p = 0; p < PHASE_COUNT; p++) {
		const json_t *v = json_object_get(phases, phase_names[p]);
		if (v)
			printf("  %-22s %12.3f\n", phase_names[p], json_number_value(v));
		print_steps(json_object_get(trace, "steps"), p);
	}
	if (cache)
		printf("  %-22s %12s   %s\n", "image_cache", cache,
		       strcmp(cache, "hit") == 0 ? "the node had the image (prepare)" : "prepare fetched the image");
	if (pool)
		printf("  %-22s %12s   %s\n", "pool", pool,
		       strcmp(pool, "hit") == 0 ? "a warm guest was taken: spawn is its resume" : "none was warm: booted cold");
	printf("  %-22s %12.3f%s\n", "total (core)", ms_of(trace, "total_ms"),
	       not_ready ? "   until running: the guest has not printed its ready marker" : "");
	printf("  %-22s %12.3f   = total - spawn - boot\n", "VIM overhead (core)", ms_of(trace, "overhead_ms"));
	if (client_total_ms <= 0)
		return;
	if (not_ready) {
		printf("  %-22s %12.3f   request sent -> the wait for the ready marker ended\n", "total (client)",
		       client_total_ms);
		printf("  %-22s %12s   not charged: waiting for a marker that never came is the guest's time\n",
		       "VIM overhead (client)", "-");
		return;
	}
	printf("  %-22s %12.3f   request sent -> %s seen\n", "total (client)", client_total_ms,
	       json_is_true(json_object_get(inst, "ready")) ? "ready" : "running");
	printf("  %-22s %12.3f   = total - spawn - boot\n", "VIM overhead (client)", client_total_ms - spawn - boot);
}

static void print_instance_line(const json_t *in)
{
	printf("%-16s  %-24s  %-7s  %-9s  %-16s  %s\n", json_string_value(json_object_get(in, "id")),
	       json_string_value(json_object_get(in, "name")), json_string_value(json_object_get(in, "driver")),
	       json_string_value(json_object_get(in, "state")), json_string_value(json_object_get(in, "node")) ?: "-",
	       json_string_value(json_object_get(in, "created_at")));
}

static int parse_kv_into(json_t *obj, const char *kv, const char *what)
{
	const char *eq = strchr(kv, '=');
	char key[256];
	if (!eq || eq == kv || (size_t)(eq - kv) >= sizeof key) {
		fprintf(stderr, "microvim: --%s takes KEY=VALUE\n", what);
		return -1;
	}
	memcpy(key, kv, (size_t)(eq - kv));
	key[eq - kv] = '\0';
	json_object_set_new(obj, key, json_string(eq + 1));
	return 0;
}

/* Options common to every client command; returns 1 when handled, -1 on error, 0 if not. */
static int common_option(struct client *cl, int opt)
{
	switch (opt) {
	case C_CORE: cl->core_arg = optarg; cl->core_from = "--core"; return 1;
	case C_TOKEN_FILE: return set_token_file(cl, optarg) < 0 ? -1 : 1;
	case C_TLS_CA: http_client_tls_files(&(struct tls_files){.ca = optarg}); return 1;
	case C_JSON: cl->json = true; return 1;
	default: return 0;
	}
}

static int parse_number(const char *s, double min, double max, double *out, const char *what)
{
	char *end;
	errno = 0;
	*out = strtod(s, &end);
	if (errno || end == s || *end || *out < min || *out > max) {
		/* %.12g: 1048576 and 0.1 as people write them, not 1.04858e+06 */
		fprintf(stderr, "microvim: --%s must be a number between %.12g and %.12g\n", what, min, max);
		return -1;
	}
	return 0;
}

/* ---- run ---- */

#define RUN_SETTLE_DEFAULT_S 0.5 /* --settle: see "the instance's first moments" below */

struct run_args {
	const char *name, *driver, *image, *ready, *bridge;
	json_t *config;
	double vcpus, memory_mb, count, timeout;
	double settle; /* seconds to watch a running instance for an early end */
	bool no_wait;
	json_t *env, *labels;
	const char *idem_key; /* --idempotency-key, else one made up for this run */
};

static json_t *run_body(const struct run_args *r, int argc, char **argv, int first)
{
	json_t *b = json_pack("{s:s, s:s}", "name", r->name, "driver", r->driver);
	json_t *res = json_object();
	if (r->image)
		json_object_set_new(b, "image", json_string(r->image));
	if (r->config)
		json_object_set(b, "config", r->config);
	if (r->ready)
		json_object_set_new(b, "ready", json_pack("{s:s}", "serial", r->ready));
	if (r->bridge)
		json_object_set_new(b, "network", json_pack("{s:s}", "bridge", r->bridge));
	if (first < argc) {
		json_t *args = json_array();
		for (int i = first + 1; i < argc; i++)
			json_array_append_new(args, json_string(argv[i]));
		json_object_set_new(b, "config", json_pack("{s:s, s:o}", "command", argv[first], "args", args));
		if (json_object_size(r->env) > 0)
			json_object_set(json_object_get(b, "config"), "env", r->env);
	}
	if (r->vcpus > 0)
		json_object_set_new(res, "vcpus", json_real(r->vcpus));
	if (r->memory_mb > 0)
		json_object_set_new(res, "memory_mb", json_integer((json_int_t)r->memory_mb));
	if (json_object_size(res) > 0)
		json_object_set_new(b, "resources", res);
	else
		json_decref(res);
	if (r->count > 1)
		json_object_set_new(b, "count", json_integer((json_int_t)r->count));
	if (json_object_size(r->labels) > 0)
		json_object_set(b, "labels", r->labels);
	return b;
}

static int run_parse(struct client *cl, struct run_args *r, int argc, char **argv)
{
	int opt, h;
	*r = (struct run_args){.driver = "exec", .timeout = 30, .settle = RUN_SETTLE_DEFAULT_S, .env = json_object(),
	                       .labels = json_object()};
	optind = 1;
	while ((opt = getopt_long(argc, argv, "+", client_options, NULL)) != -1) {
		if ((h = common_option(cl, opt)) != 0) {
			if (h < 0)
				return -1;
			continue;
		}
		switch (opt) {
		case C_NAME: r->name = optarg; break;
		case C_DRIVER: r->driver = optarg; break;
		case C_IMAGE: r->image = optarg; break;
		case C_VCPUS: if (parse_number(optarg, 0.001, MV_VCPUS_MAX, &r->vcpus, "vcpus") < 0) return -1; break;
		case C_MEMORY: if (parse_number(optarg, 1, MV_MEMORY_MB_MAX, &r->memory_mb, "memory-mb") < 0) return -1; break;
		case C_COUNT: if (parse_number(optarg, 1, MV_COUNT_MAX, &r->count, "count") < 0) return -1; break;
		case C_TIMEOUT: if (parse_number(optarg, 0, 600, &r->timeout, "timeout") < 0) return -1; break;
		case C_SETTLE: if (parse_number(optarg, 0, 600, &r->settle, "settle") < 0) return -1; break;
		case C_NO_WAIT: r->no_wait = true; break;
		case C_ENV: if (parse_kv_into(r->env, optarg, "env") < 0) return -1; break;
		case C_LABEL: if (parse_kv_into(r->labels, optarg, "label") < 0) return -1; break;
		case C_READY: r->ready = optarg; break;
		case C_BRIDGE: r->bridge = optarg; break;
		case C_IDEM_KEY:
			if (!idem_key_valid(optarg)) {
				fprintf(stderr, "microvim run: --idempotency-key takes 1-%d printable characters without spaces\n",
				        MV_IDEM_KEY_MAX);
				return -1;
			}
			r->idem_key = optarg;
			break;
		case C_CONFIG:
			json_decref(r->config);
			r->config = json_loads(optarg, 0, NULL); /* not inside json_is_object: a macro that
			                                           * evaluates its argument twice */
			if (!json_is_object(r->config)) {
				fprintf(stderr, "microvim run: --config takes a JSON object, e.g. '{\"accel\": \"tcg\"}'\n");
				return -1;
			}
			break;
		default: cli_usage("run", 1); return -1;
		}
	}
	if (optind >= argc && !r->image && !r->config) {
		fprintf(stderr, "microvim run: give a command after -- (exec), --image NAME (VM drivers) or --config\n");
		return -1;
	}
	return cli_core_list(&cl->cores, cl->core_arg, cl->core_from);
}

/* ---- run: the instance's first moments ----
 *
 * "running" means the process or domain exists; the node may report a moment later that
 * it already ended (a command with a wrong argument exits at once). So run watches each
 * running instance for --settle seconds (RUN_SETTLE_DEFAULT_S) through the event stream
 * before it reports: an instance that ends within that time is reported as ended, and
 * one that failed makes run exit 1. The stream is subscribed before the instances are
 * read once, so an end between the create's answer and the subscription is seen too.
 * An end after the window shows in `ps` and `show`. */

#define WATCH_SUBSCRIBE_S 10   /* how long the core may take to open the event stream */
#define WATCH_LINE_MAX 65536   /* an event line longer than this is not the core's */

struct watch {
	struct client *cl;
	struct event_base *base;
	struct evbuffer *pending; /* stream bytes not yet split into lines */
	json_t *list;             /* the instances; an ended one is replaced by its record */
	size_t live;              /* instances still running */
	bool subscribed, closed;
};

static bool state_running(const json_t *in)
{
	return strcmp(json_string_value(json_object_get(in, "state")) ?: "", "running") == 0;
}

/* Reads the instance at index i again; an ended one replaces the running copy. */
static void watch_refresh(struct watch *w, size_t i)
{
	const json_t *in = json_array_get(w->list, i);
	char path[128];
	json_t *now = NULL;
	int status;
	if (!state_running(in))
		return;
	snprintf(path, sizeof path, "/v1/instances/%s", json_string_value(json_object_get(in, "id")));
	status = api(w->cl, "GET", path, NULL, 10, &now);
	if (status == 200 && json_is_object(now) && !state_running(now)) {
		json_array_set(w->list, i, now);
		w->live--;
	}
	json_decref(now);
	if (w->live == 0)
		event_base_loopbreak(w->base);
}

static void watch_event(struct watch *w, const char *line)
{
	json_t *ev = json_loads(line, 0, NULL);
	const char *id = json_string_value(json_object_get(ev, "id"));
	int st = inst_state_parse(json_string_value(json_object_get(ev, "state")) ?: "");
	size_t i;
	json_t *in;
	if (id && st >= 0 && inst_state_terminal((enum inst_state)st) &&
	    strcmp(json_string_value(json_object_get(ev, "type")) ?: "", "instance") == 0) {
		json_array_foreach(w->list, i, in)
			if (strcmp(json_string_value(json_object_get(in, "id")) ?: "", id) == 0)
				watch_refresh(w, i);
	}
	json_decref(ev);
}

static void watch_chunk(struct evhttp_request *req, void *arg)
{
	struct watch *w = arg;
	char *line;
	/* libevent drains its buffer after this callback: keep a partial line */
	evbuffer_add_buffer(w->pending, evhttp_request_get_input_buffer(req));
	while ((line = evbuffer_readln(w->pending, NULL, EVBUFFER_EOL_LF))) {
		watch_event(w, line);
		free(line);
	}
	if (evbuffer_get_length(w->pending) > WATCH_LINE_MAX)
		evbuffer_drain(w->pending, evbuffer_get_length(w->pending));
}

static int watch_headers(struct evhttp_request *req, void *arg)
{
	struct watch *w = arg;
	w->subscribed = evhttp_request_get_response_code(req) == 200;
	event_base_loopbreak(w->base);
	return 0;
}

static void watch_done(struct evhttp_request *req UNUSED, void *arg)
{
	struct watch *w = arg;
	w->closed = true;
	event_base_loopbreak(w->base);
}

static void watch_timeout(evutil_socket_t fd UNUSED, short what UNUSED, void *arg)
{
	event_base_loopbreak(((struct watch *)arg)->base);
}

/* Opens GET /v1/events on w->base; false when it could not be sent. */
static bool watch_subscribe(struct watch *w, struct evhttp_connection *conn, const char *hostport)
{
	struct evhttp_request *req = evhttp_request_new(watch_done, w);
	struct evkeyvalq *hdr;
	if (!req)
		return false;
	evhttp_request_set_header_cb(req, watch_headers);
	evhttp_request_set_chunked_cb(req, watch_chunk);
	hdr = evhttp_request_get_output_headers(req);
	evhttp_add_header(hdr, "Host", hostport);
	if (w->cl->token && w->cl->token[0]) {
		char auth[600];
		snprintf(auth, sizeof auth, "Bearer %s", w->cl->token);
		evhttp_add_header(hdr, "Authorization", auth);
	}
	return evhttp_make_request(conn, req, EVHTTP_REQ_GET, "/v1/events") == 0; /* frees req on failure */
}

/* Watches the running instances of list for settle_s seconds (see above). */
static void run_settle(struct client *cl, json_t *list, double settle_s)
{
	struct watch w = {.cl = cl, .list = list};
	struct evhttp_connection *conn = NULL;
	struct event *timer = NULL;
	struct tls_ctx *tls = NULL;
	char host[256], hostport[300], err[512];
	int port;
	size_t i;
	json_t *in;

	json_array_foreach(list, i, in)
		w.live += state_running(in);
	/* the core that answered the run */
	if (w.live == 0 || settle_s <= 0 || http_parse_url(corelist_current(&cl->cores), host, sizeof host, &port) < 0)
		return;
	/* the run itself went through this context already: it is made and good */
	if (http_url_is_tls(corelist_current(&cl->cores)) && !(tls = http_client_tls(err, sizeof err))) {
		fprintf(stderr, "microvim run: %s\n", err);
		return;
	}
	snprintf(hostport, sizeof hostport, "%s:%d", host, port);
	if (!(w.base = event_base_new()) || !(w.pending = evbuffer_new()) ||
	    !(conn = tls_http_connection(w.base, tls, host, port)) ||
	    !(timer = evtimer_new(w.base, watch_timeout, &w)))
		fatalx("cannot set up the event stream");
	/* the stream is idle while nothing changes: no read timeout below the whole watch */
	evhttp_connection_set_timeout(conn, WATCH_SUBSCRIBE_S + (int)settle_s + 1);
	if (watch_subscribe(&w, conn, hostport)) {
		struct timeval limit = {.tv_sec = WATCH_SUBSCRIBE_S};
		evtimer_add(timer, &limit);
		event_base_dispatch(w.base);
	}
	if (!w.subscribed)
		fprintf(stderr, "microvim run: cannot follow the core's event stream: the state shown is as of "
		                "the instance's start and one read after it\n");
	json_array_foreach(list, i, in)
		watch_refresh(&w, i);
	if (w.subscribed && !w.closed && w.live > 0) {
		struct timeval window = {.tv_sec = (time_t)settle_s,
		                         .tv_usec = (suseconds_t)((settle_s - (time_t)settle_s) * 1e6)};
		evtimer_add(timer, &window);
		event_base_dispatch(w.base);
	}
	event_free(timer);
	evhttp_connection_free(conn);
	evbuffer_free(w.pending);
	event_base_free(w.base);
}

/* "STATE: ERROR", or "STATE (exit code N)" when the node gave no error (an exit with 0):
 * the node's error of a failed exit already names the code or the signal. */
static void print_end(const char *state, const json_t *in)
{
	const char *error = json_string_value(json_object_get(in, "error"));
	const json_t *code = json_object_get(in, "exit_code");
	if (error)
		fprintf(stderr, "%s: %s\n", state, error);
	else if (code)
		fprintf(stderr, "%s (exit code %lld)\n", state, (long long)json_integer_value(code));
	else
		fprintf(stderr, "%s\n", state);
}

#define STDERR_TAIL_LINES 10
#define STDERR_TAIL_BYTES 2048

/* The last lines of a failed instance's stderr (GET .../logs?stream=stderr), indented. */
static void print_stderr_tail(struct client *cl, const char *id)
{
	struct http_response resp;
	char path[128], err[768];
	const char *tail;
	int lines = 0;
	struct corelist_request rq = {.method = "GET", .path = path, .token = cl->token, .timeout_s = 10};

	snprintf(path, sizeof path, "/v1/instances/%s/logs?stream=stderr", id);
	if (corelist_call(&cl->cores, &rq, &resp, err, sizeof err) < 0)
		return;
	if (resp.status == 200 && resp.len > 0) {
		size_t n = resp.len;
		while (n > 0 && resp.body[n - 1] == '\n')
			n--;
		tail = resp.body + n;
		while (tail > resp.body && resp.body + n - tail < STDERR_TAIL_BYTES)
			if (*--tail == '\n' && ++lines == STDERR_TAIL_LINES) {
				tail++;
				break;
			}
		fprintf(stderr, "  its stderr ends with:\n");
		for (const char *p = tail; p < resp.body + n;) {
			const char *eol = memchr(p, '\n', (size_t)(resp.body + n - p));
			int len = (int)((eol ? eol : resp.body + n) - p);
			fprintf(stderr, "    %.*s\n", len, p);
			p += len + 1;
		}
	}
	http_response_free(&resp);
}

/* Says on stderr what became of an instance that is not (or no longer) as run wanted it
 * (with the tail of its stderr when it failed); returns the exit code it deserves. */
static int run_outcome(struct client *cl, const struct run_args *r, const json_t *in)
{
	const char *id = json_string_value(json_object_get(in, "id"));
	const char *state = json_string_value(json_object_get(in, "state")) ?: "?";
	int st = inst_state_parse(state);

	if (r->no_wait)
		return EXIT_OK;
	if (st >= 0 && inst_state_terminal((enum inst_state)st)) {
		/* it ran, then ended (before or after its running report reached the core): a
		 * failure is run's failure, a clean exit is not */
		fprintf(stderr, "microvim run: instance %s %s", id,
		        json_object_get(in, "trace") ? "started, then " : "ended before it was seen running: ");
		print_end(st == INST_STOPPED ? "was stopped" : state, in);
		if (st == INST_FAILED)
			print_stderr_tail(cl, id);
		return st == INST_FAILED || st == INST_LOST ? EXIT_FAILED : EXIT_OK;
	}
	if (st != INST_RUNNING) {
		fprintf(stderr, "microvim run: instance %s is ", id);
		print_end(state, in);
		return EXIT_FAILED;
	}
	if (r->ready && !json_is_true(json_object_get(in, "ready"))) {
		fprintf(stderr, "microvim run: instance %s is running but not ready: the guest did not print \"%s\" "
		                "within %.12g s\n", id, r->ready, r->timeout);
		return EXIT_FAILED;
	}
	return EXIT_OK;
}

int cmd_run(int argc, char **argv)
{
	struct client cl = {0};
	struct run_args r;
	char name_buf[MV_NAME_MAX + 1], path[128], key[CORELIST_IDEM_KEY_LEN + 1];
	json_t *body, *resp = NULL, *list;
	int status, rc = EXIT_OK;
	int64_t t0, t1;
	size_t i;
	json_t *in;
	bool batch;

	client_init(&cl);
	if (run_parse(&cl, &r, argc, argv) < 0) {
		rc = EXIT_USAGE;
		goto out;
	}
	if (!r.name) {
		unsigned short rnd = 0;
		char *base = strdup(optind < argc ? argv[optind] : r.image);
		if (getrandom(&rnd, sizeof rnd, 0) < 0)
			rnd = (unsigned short)clock_mono_us();
		snprintf(name_buf, sizeof name_buf, "%.50s-%04x", basename(base), rnd);
		free(base);
		r.name = name_buf;
	}
	body = run_body(&r, argc, argv, optind);
	if (r.no_wait)
		snprintf(path, sizeof path, "/v1/instances");
	else
		snprintf(path, sizeof path, "/v1/instances?wait=%s&timeout=%g", r.ready ? "ready" : "running", r.timeout);
	/* The same key on every core tried: a create that a core committed before it died is
	 * answered from that first result by the next, never made twice. */
	if (!r.idem_key) {
		corelist_idem_key(key);
		r.idem_key = key;
	}
	t0 = clock_mono_us();
	status = api_with(&cl, "POST", path, (const char *const[]){"Idempotency-Key", r.idem_key, NULL}, body,
	                  r.timeout + 10, &resp);
	t1 = clock_mono_us();
	json_decref(body);
	if (status != 201 && status != 200) {
		rc = report_error(status, resp);
		goto out;
	}
	/* one instance comes as itself, several (count) as {"instances": [...]} */
	batch = json_object_get(resp, "instances") != NULL;
	list = batch ? json_incref(json_object_get(resp, "instances")) : json_pack("[O]", resp);
	if (!r.no_wait)
		run_settle(&cl, list, r.settle);
	if (cl.json)
		print_json(batch ? resp : json_array_get(list, 0));
	json_array_foreach(list, i, in) {
		int orc;
		if (!cl.json) {
			printf("instance %s (%s): %s on node %s\n", json_string_value(json_object_get(in, "id")),
			       json_string_value(json_object_get(in, "name")), json_string_value(json_object_get(in, "state")),
			       json_string_value(json_object_get(in, "node")) ?: "-");
			if (!r.no_wait)
				print_trace(in, json_array_size(list) == 1 ? (double)(t1 - t0) / 1000.0 : 0);
			fflush(stdout); /* the table, then what went wrong with it */
		}
		if ((orc = run_outcome(&cl, &r, in)) != EXIT_OK)
			rc = orc;
	}
	json_decref(list);
out:
	json_decref(resp);
	json_decref(r.env);
	json_decref(r.labels);
	json_decref(r.config);
	free(cl.token);
	return rc;
}

/* ---- ps, show, stop, rm, nodes ---- */

/* Parses the common options and collects positional arguments. */
static int parse_simple(struct client *cl, const char *cmd, int argc, char **argv, double *timeout,
                        const char **state, double *page)
{
	int opt, h;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "", client_options, NULL)) != -1) {
		if ((h = common_option(cl, opt)) != 0) {
			if (h < 0)
				return -1;
			continue;
		}
		if (opt == C_TIMEOUT && timeout) {
			if (parse_number(optarg, 0, 600, timeout, "timeout") < 0)
				return -1;
		} else if (opt == C_STATE && state) {
			*state = optarg;
		} else if (opt == C_PAGE && page) {
			if (parse_number(optarg, 1, 10000, page, "page") < 0)
				return -1;
			if (*page != (int)*page) {
				fprintf(stderr, "microvim: --page takes a whole number of instances, 1-10000\n");
				return -1;
			}
		} else {
			cli_usage(cmd, 1);
			return -1;
		}
	}
	return cli_core_list(&cl->cores, cl->core_arg, cl->core_from);
}

/* One page of ps: its lines, or (--json) its elements inside the one array ps prints, so
 * that a million instances stream through in pages and are never all in memory. */
static void ps_print_page(const struct client *cl, const json_t *page, bool *first)
{
	const json_t *in;
	size_t i;
	json_array_foreach(json_object_get(page, "instances"), i, in) {
		if (!cl->json) {
			print_instance_line(in);
			continue;
		}
		fputs(*first ? "\n" : ",\n", stdout);
		json_dumpf(in, stdout, JSON_COMPACT | JSON_REAL_PRECISION(12));
		*first = false;
	}
}

int cmd_ps(int argc, char **argv)
{
	struct client cl = {0};
	const char *state = NULL;
	char path[192], after[MV_ID_LEN + 1] = "";
	json_t *resp = NULL;
	int status, rc = EXIT_OK;
	bool first = true, opened = false;
	double page = 1000; /* the core's default page */

	client_init(&cl);
	if (parse_simple(&cl, "ps", argc, argv, NULL, &state, &page) < 0 || optind < argc)
		return free(cl.token), EXIT_USAGE;
	/* GET /v1/instances pages by id; "next" is the after of the following page. Each page
	 * must move forward, so a confused server cannot keep ps looping. */
	for (;;) {
		const char *next;
		snprintf(path, sizeof path, "/v1/instances?limit=%d%s%s%s%.32s", (int)page, after[0] ? "&after=" : "", after,
		         state ? "&state=" : "", state ? state : "");
		status = api(&cl, "GET", path, NULL, 30, &resp);
		if (status != 200) {
			rc = report_error(status, resp);
			break;
		}
		if (!opened && cl.json)
			fputs("{\"instances\": [", stdout);
		else if (!opened)
			printf("%-16s  %-24s  %-7s  %-9s  %-16s  %s\n", "ID", "NAME", "DRIVER", "STATE", "NODE", "CREATED");
		opened = true;
		ps_print_page(&cl, resp, &first);
		next = json_string_value(json_object_get(resp, "next"));
		if (!next || strlen(next) > MV_ID_LEN || strcmp(next, after) <= 0)
			break;
		snprintf(after, sizeof after, "%s", next);
		json_decref(resp);
		resp = NULL;
	}
	if (opened && cl.json) /* closed even after a failed page: what came is valid JSON */
		fputs(first ? "]}\n" : "\n]}\n", stdout);
	json_decref(resp);
	free(cl.token);
	return rc;
}

static bool id_arg_valid(const char *id)
{
	return strlen(id) <= 64 && strspn(id, "0123456789abcdefABCDEF-_.") == strlen(id) && id[0];
}

int cmd_show(int argc, char **argv)
{
	struct client cl = {0};
	char path[128];
	json_t *resp;
	int status, rc = EXIT_OK;

	client_init(&cl);
	if (parse_simple(&cl, "show", argc, argv, NULL, NULL, NULL) < 0 || optind != argc - 1 || !id_arg_valid(argv[optind])) {
		fprintf(stderr, "usage: microvim show ID\n");
		return free(cl.token), EXIT_USAGE;
	}
	snprintf(path, sizeof path, "/v1/instances/%s", argv[optind]);
	status = api(&cl, "GET", path, NULL, 10, &resp);
	if (status != 200) {
		rc = report_error(status, resp);
	} else if (cl.json) {
		print_json(resp);
	} else {
		printf("id       %s\nname     %s\ndriver   %s\nstate    %s\nnode     %s\ncreated  %s\n",
		       json_string_value(json_object_get(resp, "id")), json_string_value(json_object_get(resp, "name")),
		       json_string_value(json_object_get(resp, "driver")), json_string_value(json_object_get(resp, "state")),
		       json_string_value(json_object_get(resp, "node")) ?: "-",
		       json_string_value(json_object_get(resp, "created_at")));
		if (json_object_get(resp, "ready"))
			printf("ready    %s\n", json_is_true(json_object_get(resp, "ready")) ? "yes" : "no (the guest has not printed its marker)");
		if (json_object_get(resp, "exit_code"))
			printf("exit     %d\n", (int)json_integer_value(json_object_get(resp, "exit_code")));
		if (json_object_get(resp, "error"))
			printf("error    %s\n", json_string_value(json_object_get(resp, "error")));
		printf("spec     ");
		json_dumpf(json_object_get(resp, "spec"), stdout, JSON_COMPACT | JSON_REAL_PRECISION(12));
		printf("\n");
		print_trace(resp, 0);
	}
	json_decref(resp);
	free(cl.token);
	return rc;
}

/* What one of the instance commands (stop, rm, start, restart) does with one id; returns
 * the exit code for it. */
typedef int id_op_fn(struct client *cl, const char *cmd, const char *id, double timeout);

/* CMD ID [ID...] [--timeout S]: op on each id; the exit code of the last that failed. */
static int each_id(const char *cmd, int argc, char **argv, id_op_fn *op)
{
	struct client cl = {0};
	double timeout = 30;
	int rc = EXIT_OK;

	client_init(&cl);
	if (parse_simple(&cl, cmd, argc, argv, &timeout, NULL, NULL) < 0 || optind >= argc) {
		fprintf(stderr, "usage: microvim %s ID [ID...] [--timeout S]\n", cmd);
		return free(cl.token), EXIT_USAGE;
	}
	for (int k = optind; k < argc; k++) {
		int one;
		if (!id_arg_valid(argv[k])) {
			fprintf(stderr, "microvim %s: \"%s\" is not an instance id\n", cmd, argv[k]);
			rc = EXIT_USAGE;
		} else if ((one = op(&cl, cmd, argv[k], timeout)) != EXIT_OK) {
			rc = one;
		}
	}
	free(cl.token);
	return rc;
}

/* DELETE with wait=stopped; for rm, a second DELETE removes the stopped record. */
static int stop_or_remove(struct client *cl, const char *cmd, const char *id, double timeout)
{
	bool purge = strcmp(cmd, "rm") == 0;
	char path[160];
	json_t *resp = NULL;
	int status, rc = EXIT_OK;
	snprintf(path, sizeof path, "/v1/instances/%s?wait=stopped&timeout=%g", id, timeout);
	status = api(cl, "DELETE", path, NULL, timeout + 10, &resp);
	if (status == 200 && purge) {
		json_decref(resp);
		snprintf(path, sizeof path, "/v1/instances/%s", id);
		status = api(cl, "DELETE", path, NULL, 10, &resp);
	}
	if (status != 200 && status != 204)
		rc = report_error(status, resp);
	else if (cl->json && resp)
		print_json(resp);
	else if (!cl->json)
		printf("%s %s\n", id, purge ? "removed" : "stopped");
	json_decref(resp);
	return rc;
}

/* POST .../start or .../restart with wait=running; the new run's phase trace is printed. */
static int start_again(struct client *cl, const char *cmd, const char *id, double timeout)
{
	char path[160];
	json_t *resp = NULL;
	int status, rc = EXIT_OK;
	const char *state;
	snprintf(path, sizeof path, "/v1/instances/%s/%s?wait=running&timeout=%g", id, cmd, timeout);
	status = api(cl, "POST", path, NULL, timeout + 10, &resp);
	state = json_string_value(json_object_get(resp, "state"));
	if (status != 200) {
		rc = report_error(status, resp);
	} else if (cl->json) {
		print_json(resp);
	} else {
		printf("%s %s (run %lld)\n", id, state ? state : "?", (long long)json_integer_value(json_object_get(resp, "run")));
		if (state && strcmp(state, "running") == 0)
			print_trace(resp, 0);
	}
	if (status == 200 && (!state || strcmp(state, "running") != 0)) {
		if (!cl->json)
			fprintf(stderr, "microvim %s: %s did not reach running%s%s\n", cmd, id,
			        json_object_get(resp, "error") ? ": " : " (see microvim show ID)",
			        json_string_value(json_object_get(resp, "error")) ?: "");
		rc = EXIT_FAILED;
	}
	json_decref(resp);
	return rc;
}

int cmd_start(int argc, char **argv) { return each_id("start", argc, argv, start_again); }
int cmd_restart(int argc, char **argv) { return each_id("restart", argc, argv, start_again); }
int cmd_stop(int argc, char **argv) { return each_id("stop", argc, argv, stop_or_remove); }
int cmd_rm(int argc, char **argv) { return each_id("rm", argc, argv, stop_or_remove); }

/* What holds a node's exec instances (the exec driver's "limits"): "cgroups v1", with the
 * user they run as; "none" when the node has no cgroups; "-" without the exec driver. */
static void exec_limits_text(const json_t *exec, char *out, size_t len)
{
	const json_t *l = json_object_get(exec, "limits");
	const char *mode = json_string_value(json_object_get(l, "cgroups"));
	const char *user = json_string_value(json_object_get(l, "user"));
	bool off = mode && strcmp(mode, "off") == 0;
	if (!exec || !mode) {
		snprintf(out, len, "-");
		return;
	}
	snprintf(out, len, "%s%s%s%s", off ? "none" : "cgroups ", off ? "" : mode, user ? ", user " : "", user ? user : "");
}

/* `microvim nodes revoke ID`: the node is cut off at once (core/nodeauth.h). */
static int nodes_revoke(struct client *cl, const char *id)
{
	char path[160];
	json_t *resp;
	int status, rc = EXIT_OK;
	if (strlen(id) != MV_ID_LEN || strspn(id, "0123456789abcdef") != MV_ID_LEN) {
		fprintf(stderr, "microvim nodes revoke: %s is not a node id (%d hex characters; see microvim nodes)\n", id,
		        MV_ID_LEN);
		free(cl->token);
		return EXIT_USAGE;
	}
	snprintf(path, sizeof path, "/v1/nodes/%s/revoke", id);
	status = api(cl, "POST", path, NULL, 10, &resp);
	if (status != 200)
		rc = report_error(status, resp);
	else if (cl->json)
		print_json(resp);
	else
		printf("node %s revoked: its credential no longer works; %lld instances lost with it\n", id,
		       (long long)json_integer_value(json_object_get(resp, "instances_lost")));
	json_decref(resp);
	free(cl->token);
	return rc;
}

int cmd_nodes(int argc, char **argv)
{
	struct client cl = {0};
	json_t *resp, *n;
	int status, rc = EXIT_OK;
	size_t i;

	client_init(&cl);
	if (parse_simple(&cl, "nodes", argc, argv, NULL, NULL, NULL) < 0)
		return free(cl.token), EXIT_USAGE;
	if (optind + 2 == argc && strcmp(argv[optind], "revoke") == 0)
		return nodes_revoke(&cl, argv[optind + 1]);
	if (optind < argc) {
		cli_usage("nodes", 1);
		return free(cl.token), EXIT_USAGE;
	}
	status = api(&cl, "GET", "/v1/nodes", NULL, 10, &resp);
	if (status != 200) {
		rc = report_error(status, resp);
	} else if (cl.json) {
		print_json(resp);
	} else {
		printf("%-16s  %-16s  %-5s  %-20s  %-17s  %-24s  %-24s  %s\n", "ID", "NAME", "STATE", "VCPUS used/total",
		       "MEMORY MiB", "DRIVERS", "EXEC LIMITS", "RUN DIR");
		json_array_foreach(json_object_get(resp, "nodes"), i, n) {
			const json_t *res = json_object_get(n, "resources"), *al = json_object_get(n, "allocated");
			const char *k;
			json_t *v;
			char drivers[256] = "";
			size_t used = 0;
			json_object_foreach(json_object_get(n, "drivers"), k, v) {
				int w = snprintf(drivers + used, sizeof drivers - used, "%s%s", used ? "," : "", k);
				if (w > 0 && (size_t)w < sizeof drivers - used)
					used += (size_t)w;
			}
			char limits[128];
			exec_limits_text(json_object_get(json_object_get(n, "drivers"), "exec"), limits, sizeof limits);
			printf("%-16s  %-16s  %-5s  %8.12g/%-11.12g  %7lld/%-9lld  %-24s  %-24s  %s\n",
			       json_string_value(json_object_get(n, "id")),
			       json_string_value(json_object_get(n, "name")), json_string_value(json_object_get(n, "state")),
			       json_number_value(json_object_get(al, "vcpus")), json_number_value(json_object_get(res, "vcpus")),
			       (long long)json_integer_value(json_object_get(al, "memory_mb")),
			       (long long)json_integer_value(json_object_get(res, "memory_mb")), drivers, limits,
			       json_string_value(json_object_get(n, "run_dir")) ?: "-");
		}
	}
	json_decref(resp);
	free(cl.token);
	return rc;
}

/* ---- logs: an instance's output, relayed by the core from its node ---- */

#define LOGS_TIMEOUT_S 60                  /* without -f: the whole answer */
#define LOGS_FOLLOW_TIMEOUT_S (7 * 86400)  /* with -f a quiet instance sends nothing for long */
#define LOGS_ERROR_MAX 65536

struct logs_read {
	struct event_base *base;
	int status;              /* 0: no answer */
	struct evbuffer *error;  /* the JSON error body of a refusal */
	bool write_failed;
};

static int logs_headers(struct evhttp_request *req, void *arg)
{
	((struct logs_read *)arg)->status = evhttp_request_get_response_code(req);
	return 0;
}

/* Bytes as they come: to stdout at once (-f shows each line as the instance writes it). */
static void logs_chunk(struct evhttp_request *req, void *arg)
{
	struct logs_read *lr = arg;
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	if (lr->status != 200) {
		if (evbuffer_get_length(lr->error) < LOGS_ERROR_MAX)
			evbuffer_add_buffer(lr->error, in);
		return;
	}
	if (evbuffer_write(in, STDOUT_FILENO) < 0 || evbuffer_get_length(in) > 0) {
		/* a short write to a pipe: the rest, blocking (stdout is ours alone) */
		while (evbuffer_get_length(in) > 0)
			if (evbuffer_write(in, STDOUT_FILENO) < 0 && errno != EINTR && errno != EAGAIN) {
				lr->write_failed = true; /* the reader went away (| head) */
				event_base_loopbreak(lr->base);
				return;
			}
	}
}

static void logs_done(struct evhttp_request *req, void *arg)
{
	struct logs_read *lr = arg;
	if (req && lr->status == 0)
		lr->status = evhttp_request_get_response_code(req);
	if (req && lr->status != 200) /* a short error body may come whole, not as a chunk */
		evbuffer_add_buffer(lr->error, evhttp_request_get_input_buffer(req));
	event_base_loopbreak(lr->base);
}

static int logs_parse(struct client *cl, int argc, char **argv, const char **stream, bool *follow)
{
	int opt, h;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "f", client_options, NULL)) != -1) {
		if ((h = common_option(cl, opt)) != 0) {
			if (h < 0)
				return -1;
		} else if (opt == C_STREAM) {
			if (log_stream_parse(optarg) < 0) {
				fprintf(stderr, "microvim logs: --stream must be stdout, stderr or serial\n");
				return -1;
			}
			*stream = optarg;
		} else if (opt == 'f' || opt == C_FOLLOW) {
			*follow = true;
		} else {
			cli_usage("logs", 1);
			return -1;
		}
	}
	if (optind != argc - 1 || !id_arg_valid(argv[optind])) {
		fprintf(stderr, "usage: microvim logs ID [--stream stdout|stderr|serial] [-f]\n");
		return -1;
	}
	return cli_core_list(&cl->cores, cl->core_arg, cl->core_from);
}

/* Reads GET path from the core at url as a stream into stdout; *no_answer when nothing
 * answered there (another core may). */
static int logs_fetch_from(struct client *cl, const char *url, const char *path, bool follow, bool *no_answer)
{
	struct logs_read lr = {0};
	struct evhttp_connection *conn;
	struct evhttp_request *req;
	struct evkeyvalq *hdr;
	char host[256], hostport[300], auth[600];
	json_t *body;
	int port, rc = EXIT_OK;

	*no_answer = false;
	if (http_parse_url(url, host, sizeof host, &port) < 0)
		return EXIT_USAGE;
	snprintf(hostport, sizeof hostport, "%s:%d", host, port);
	if (!(lr.base = event_base_new()) || !(lr.error = evbuffer_new()) ||
	    !(conn = evhttp_connection_base_new(lr.base, NULL, host, (unsigned short)port)) ||
	    !(req = evhttp_request_new(logs_done, &lr)))
		fatalx("cannot set up the request");
	evhttp_connection_set_timeout(conn, follow ? LOGS_FOLLOW_TIMEOUT_S : LOGS_TIMEOUT_S);
	evhttp_request_set_header_cb(req, logs_headers);
	evhttp_request_set_chunked_cb(req, logs_chunk);
	hdr = evhttp_request_get_output_headers(req);
	evhttp_add_header(hdr, "Host", hostport);
	if (cl->token && cl->token[0]) {
		snprintf(auth, sizeof auth, "Bearer %s", cl->token);
		evhttp_add_header(hdr, "Authorization", auth);
	}
	if (evhttp_make_request(conn, req, EVHTTP_REQ_GET, path) == 0)
		event_base_dispatch(lr.base);
	if (lr.write_failed) {
		rc = EXIT_FAILED;
	} else if (lr.status == 0) {
		*no_answer = true;
		rc = EXIT_UNREACHABLE;
	} else if (lr.status != 200) {
		size_t n = evbuffer_get_length(lr.error);
		body = json_loadb((const char *)evbuffer_pullup(lr.error, (ev_ssize_t)n), n, 0, NULL);
		rc = report_error(lr.status, body);
		json_decref(body);
	}
	evhttp_connection_free(conn);
	evbuffer_free(lr.error);
	event_base_free(lr.base);
	return rc;
}

/* A stream is not retried once it has begun; before, each core of the list is tried once. */
static int logs_fetch(struct client *cl, const char *path, bool follow)
{
	bool no_answer;
	for (int tried = 0;; tried++) {
		int rc = logs_fetch_from(cl, corelist_current(&cl->cores), path, follow, &no_answer);
		if (!no_answer)
			return rc;
		fprintf(stderr, "microvim: no answer from the core at %s\n", corelist_current(&cl->cores));
		if (tried + 1 == cl->cores.n)
			return rc;
		corelist_advance(&cl->cores);
	}
}

int cmd_logs(int argc, char **argv)
{
	struct client cl = {0};
	const char *stream = NULL;
	bool follow = false;
	char path[160];
	int rc;

	client_init(&cl);
	if (logs_parse(&cl, argc, argv, &stream, &follow) < 0)
		return free(cl.token), EXIT_USAGE;
	snprintf(path, sizeof path, "/v1/instances/%s/logs?follow=%d%s%s", argv[optind], follow ? 1 : 0,
	         stream ? "&stream=" : "", stream ? stream : "");
	rc = logs_fetch(&cl, path, follow);
	free(cl.token);
	return rc;
}
