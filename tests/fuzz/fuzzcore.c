/* fuzzcore — a fresh core per input, fed raw bytes over loopback TCP (see fuzzcore.h). */
#include "fuzzcore.h"

#include <arpa/inet.h>
#include <event2/bufferevent.h>
#include <ftw.h>
#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"

static char root[200];

void fuzzcore_init(void)
{
	struct stat st;
	const char *tmp = getenv("TMPDIR");
	signal(SIGPIPE, SIG_IGN);
	log_set_quiet(true);
	if (stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) && access("/dev/shm", W_OK) == 0)
		tmp = "/dev/shm";
	snprintf(root, sizeof root, "%s", tmp && tmp[0] ? tmp : "/tmp");
}

static void core_start_here(struct fuzzcore *fc);

void fuzzcore_start(struct fuzzcore *fc)
{
	memset(fc, 0, sizeof *fc);
	if (!root[0])
		fuzzcore_init();
	if (snprintf(fc->dir, sizeof fc->dir, "%s/mvfuzz.XXXXXX", root) >= (int)sizeof fc->dir || !mkdtemp(fc->dir)) {
		perror("fuzzcore: mkdtemp");
		abort();
	}
	if (!(fc->base = event_base_new())) {
		fprintf(stderr, "fuzzcore: event_base_new failed\n");
		abort();
	}
	core_start_here(fc);
}

static void core_start_here(struct fuzzcore *fc)
{
	struct core_options o;
	char err[512], host[64];
	int port;

	core_options_default(&o);
	o.listen = "127.0.0.1:0";
	o.openstack_listen = "127.0.0.1:0"; /* the OpenStack façade: fuzz_openstack's way in */
	o.data_dir = fc->dir;
	/* Binding 127.0.0.1:0 can fail for a moment when the host is short of ports. */
	for (int attempt = 0; !(fc->core = core_create(fc->base, &o, err, sizeof err)); attempt++) {
		if (attempt == 100 || !strstr(err, "cannot listen")) {
			fprintf(stderr, "fuzzcore: core_create: %s\n", err);
			abort();
		}
		usleep(20000);
	}
	if (sscanf(core_url(fc->core), "http://%63[0-9.]:%d", host, &port) != 2) {
		fprintf(stderr, "fuzzcore: unexpected core URL %s\n", core_url(fc->core));
		abort();
	}
	fc->port = port;
	if (sscanf(core_openstack_url(fc->core), "http://%63[0-9.]:%d", host, &port) != 2) {
		fprintf(stderr, "fuzzcore: unexpected OpenStack URL %s\n", core_openstack_url(fc->core));
		abort();
	}
	fc->os_port = port;
}

void fuzzcore_restart(struct fuzzcore *fc)
{
	core_destroy(fc->core);
	event_base_loop(fc->base, EVLOOP_NONBLOCK);
	core_start_here(fc);
}

static int remove_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb, (void)flag, (void)ftw;
	return remove(path) < 0 ? -1 : 0;
}

void fuzzcore_stop(struct fuzzcore *fc)
{
	core_destroy(fc->core);
	fc->core = NULL;
	/* Let the connections the core closed finish closing before the loop goes away. */
	event_base_loop(fc->base, EVLOOP_NONBLOCK);
	event_base_free(fc->base);
	fc->base = NULL;
	if (fc->dir[0] && nftw(fc->dir, remove_one, 16, FTW_DEPTH | FTW_PHYS) < 0) {
		perror("fuzzcore: removing the data dir");
		abort();
	}
	fc->dir[0] = '\0';
}

/* ---- one client connection ---- */

struct client {
	struct fuzzcore *fc;
	struct bufferevent *bev;
	struct evbuffer *answer;
	struct event *quiet, *deadline;
	size_t got;
	int half_close, quiet_ms, sent, done;
	int connected, connect_err; /* connect_err: errno of a connect that failed */
};

static void client_finish(struct client *cl)
{
	cl->done = 1;
	event_base_loopbreak(cl->fc->base);
}

static void arm_quiet(struct client *cl)
{
	int ms = cl->got ? cl->quiet_ms : 4 * cl->quiet_ms;
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	if (cl->quiet_ms > 0)
		evtimer_add(cl->quiet, &tv);
}

static void on_read(struct bufferevent *bev, void *arg)
{
	struct client *cl = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	cl->got += evbuffer_get_length(in);
	if (cl->answer)
		evbuffer_add_buffer(cl->answer, in);
	else
		evbuffer_drain(in, evbuffer_get_length(in));
	if (cl->sent)
		arm_quiet(cl);
}

static void on_write(struct bufferevent *bev, void *arg)
{
	struct client *cl = arg;
	if (cl->sent || evbuffer_get_length(bufferevent_get_output(bev)) > 0)
		return;
	cl->sent = 1;
	if (cl->half_close)
		shutdown(bufferevent_getfd(bev), SHUT_WR);
	arm_quiet(cl);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	struct client *cl = arg;
	if (what & BEV_EVENT_CONNECTED) {
		/* Close with a reset: a fuzz run makes thousands of connections a second, and
		 * TIME_WAIT would use up the loopback's ephemeral ports. */
		struct linger lg = {.l_onoff = 1, .l_linger = 0};
		setsockopt(bufferevent_getfd(bev), SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
		cl->connected = 1;
		on_write(bev, arg); /* an empty input is "sent" at once */
		return;
	}
	if ((what & BEV_EVENT_ERROR) && !cl->connected)
		cl->connect_err = EVUTIL_SOCKET_ERROR() ? EVUTIL_SOCKET_ERROR() : -1;
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		client_finish(cl);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	client_finish(arg);
}

static void replace_all(char *buf, size_t len, const char *needle, const char *with)
{
	size_t n = strlen(needle);
	if (!with[0] || strlen(with) != n)
		return;
	for (char *p = buf; (p = memmem(p, len - (size_t)(p - buf), needle, n)); p += n)
		memcpy(p, with, n);
}

static size_t exchange_once(struct fuzzcore *fc, const void *data, size_t len, int half_close, int quiet_ms,
                            int max_ms, struct evbuffer *answer, int *connect_err)
{
	struct client cl = {.fc = fc, .answer = answer, .half_close = half_close, .quiet_ms = quiet_ms};
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)fc->port)};
	struct timeval limit = {max_ms / 1000, (max_ms % 1000) * 1000};
	char *copy = malloc(len + 1);

	if (!copy)
		abort();
	memcpy(copy, data, len);
	replace_all(copy, len, FUZZ_TOKEN_PLACEHOLDER, fc->node_token);
	replace_all(copy, len, FUZZ_INSTANCE_PLACEHOLDER, fc->instance_id);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cl.bev = bufferevent_socket_new(fc->base, -1, BEV_OPT_CLOSE_ON_FREE);
	cl.quiet = evtimer_new(fc->base, on_timer, &cl);
	cl.deadline = evtimer_new(fc->base, on_timer, &cl);
	if (!cl.bev || !cl.quiet || !cl.deadline)
		abort();
	bufferevent_setcb(cl.bev, on_read, on_write, on_event, &cl);
	bufferevent_enable(cl.bev, EV_READ | EV_WRITE);
	bufferevent_write(cl.bev, copy, len);
	free(copy);
	if (bufferevent_socket_connect(cl.bev, (struct sockaddr *)&sin, sizeof sin) < 0) {
		perror("fuzzcore: connect");
		abort();
	}
	evtimer_add(cl.deadline, &limit);
	for (int i = 0; !cl.done && i < 100000; i++)
		event_base_loop(fc->base, EVLOOP_ONCE);
	evtimer_del(cl.quiet);
	evtimer_del(cl.deadline);
	event_free(cl.quiet);
	event_free(cl.deadline);
	bufferevent_free(cl.bev);
	/* The core notices the close (its read side sees EOF) before the next input. */
	for (int i = 0; i < 4; i++)
		event_base_loop(fc->base, EVLOOP_NONBLOCK);
	*connect_err = cl.connect_err;
	return cl.got;
}

size_t fuzzcore_exchange(struct fuzzcore *fc, const void *data, size_t len, int half_close, int quiet_ms,
                         int max_ms, struct evbuffer *answer)
{
	int err = 0;
	/* A connect that fails (the host short of ports: other fuzzers, other tests) is the
	 * machine's problem, not the core's: try again for up to ~2 s, then say so. */
	for (int attempt = 0; attempt < 100; attempt++) {
		size_t got = exchange_once(fc, data, len, half_close, quiet_ms, max_ms, answer, &err);
		if (!err)
			return got;
		usleep(20000);
	}
	fprintf(stderr, "fuzzcore: cannot connect to the core on 127.0.0.1:%d: %s\n", fc->port, strerror(err));
	abort();
}

int fuzzcore_status(struct evbuffer *answer)
{
	char line[64] = "";
	int status = 0;
	size_t n = evbuffer_get_length(answer);
	evbuffer_copyout(answer, line, n < sizeof line - 1 ? n : sizeof line - 1);
	if (sscanf(line, "HTTP/1.%*d %d", &status) != 1)
		return 0;
	return status;
}

/* ---- set-up requests ---- */

json_t *fuzzcore_call(struct fuzzcore *fc, const char *method, const char *path, const char *body,
                         int want_status)
{
	char req[4096];
	struct evbuffer *ans = evbuffer_new();
	json_t *j = NULL;
	int n = snprintf(req, sizeof req,
	                 "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
	                 "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
	                 method, path, strlen(body), body);
	size_t len;
	unsigned char *text;
	char *sep;

	if (n < 0 || n >= (int)sizeof req || !ans)
		abort();
	fuzzcore_exchange(fc, req, (size_t)n, 0, 0, 10000, ans);
	len = evbuffer_get_length(ans);
	text = evbuffer_pullup(ans, -1);
	if (fuzzcore_status(ans) != want_status || !text ||
	    !(sep = memmem(text, len, "\r\n\r\n", 4)) ||
	    !(j = json_loadb(sep + 4, len - (size_t)((unsigned char *)sep + 4 - text), 0, NULL))) {
		fprintf(stderr, "fuzzcore: %s %s did not answer %d with JSON: %.*s\n", method, path, want_status,
		        (int)len, text ? (char *)text : "");
		abort();
	}
	evbuffer_free(ans);
	return j;
}

void fuzzcore_setup_node(struct fuzzcore *fc)
{
	json_t *j = fuzzcore_call(fc, "POST", "/v1/nodes/register",
	                      "{\"id\":\"" FUZZ_NODE_ID "\",\"name\":\"fuzznode\",\"address\":\"127.0.0.1:4651\","
	                      "\"resources\":{\"cpus\":4,\"memory_mb\":4096},"
	                      "\"drivers\":{\"exec\":{\"allow\":[\"/bin/true\",\"/bin/sleep\"]},\"qemu\":{}},"
	                      "\"labels\":{\"rack\":\"r1\"}}",
	                      200);
	snprintf(fc->node_token, sizeof fc->node_token, "%s", json_string_value(json_object_get(j, "token")));
	json_decref(j);
	if (strlen(fc->node_token) != strlen(FUZZ_TOKEN_PLACEHOLDER))
		abort();
	j = fuzzcore_call(fc, "POST", "/v1/instances",
	              "{\"name\":\"seed\",\"driver\":\"exec\",\"config\":{\"command\":\"/bin/true\"}}", 201);
	snprintf(fc->instance_id, sizeof fc->instance_id, "%s", json_string_value(json_object_get(j, "id")));
	json_decref(j);
	if (strlen(fc->instance_id) != strlen(FUZZ_INSTANCE_PLACEHOLDER))
		abort();
}
