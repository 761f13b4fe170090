#include "common/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/keyvalq_struct.h>
#include <netdb.h>
#include <sys/queue.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/jsontext.h"
#include "common/model.h"
#include "common/tls.h"

/* ---- server side ---- */

/* jansson hands its output over token by token (a quote, a key, a comma): gathered here
 * and given to the evbuffer a few KiB at a time, since an evbuffer_add per token made the
 * dump of a 1000-instance answer cost more than building it. */
struct json_sink {
	struct evbuffer *out;
	size_t len;
	char buf[8192]; /* on the stack of http_reply_json */
};

static int json_sink_flush(struct json_sink *s)
{
	int rc = s->len ? evbuffer_add(s->out, s->buf, s->len) : 0;
	s->len = 0;
	return rc;
}

static int json_to_sink(const char *buf, size_t size, void *data)
{
	struct json_sink *s = data;
	if (s->len + size > sizeof s->buf && json_sink_flush(s) < 0)
		return -1;
	if (size > sizeof s->buf)
		return evbuffer_add(s->out, buf, size);
	memcpy(s->buf + s->len, buf, size);
	s->len += size;
	return 0;
}

void http_reply_json(struct evhttp_request *req, int status, json_t *body)
{
	struct evbuffer *out = evhttp_request_get_output_buffer(req);
	struct evkeyvalq *hdr = evhttp_request_get_output_headers(req);

	evhttp_add_header(hdr, "Content-Type", "application/json");
	if (body) {
		struct json_sink s;
		s.out = out;
		s.len = 0;
		if (json_dump_callback(body, json_to_sink, &s, HTTP_JSON_FLAGS) < 0 || json_to_sink("\n", 1, &s) < 0 ||
		    json_sink_flush(&s) < 0) {
			log_warnx("http: could not encode a reply");
			status = 500;
		}
		json_decref(body);
	}
	evhttp_send_reply(req, status, NULL, NULL);
}

static void free_sent(UNUSED const void *data, UNUSED size_t len, void *arg) { free(arg); }

void http_reply_jtext(struct evhttp_request *req, int status, struct jtext *body)
{
	size_t len;
	char *text;
	jtext_raw(body, "\n", 1);
	text = jtext_take(body, &len);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
	if (evbuffer_add_reference(evhttp_request_get_output_buffer(req), text, len, free_sent, text) < 0) {
		free(text);
		log_warnx("http: could not queue a reply");
		status = 500;
	}
	evhttp_send_reply(req, status, NULL, NULL);
}

void http_reply_error(struct evhttp_request *req, const struct mv_error *err)
{
	http_reply_json(req, err->status,
	                json_pack("{s:{s:s, s:s}}", "error", "code", err->code, "message", err->message));
}

int http_read_json(struct evhttp_request *req, json_t **out, struct mv_error *err)
{
	return http_read_json_max(req, MV_BODY_MAX, out, err);
}

int http_read_json_max(struct evhttp_request *req, size_t max, json_t **out, struct mv_error *err)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	json_error_t jerr;
	unsigned char *data;

	if (len > max)
		return mv_fail(err, 413, "body_too_large", "the body is %zu bytes; at most %zu are accepted", len, max);
	if (len == 0)
		return mv_fail(err, 400, "invalid_json", "the body is empty; a JSON object is expected");
	data = evbuffer_pullup(in, (ev_ssize_t)len);
	*out = json_loadb((const char *)data, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!*out)
		return mv_fail(err, 400, "invalid_json", "the body is not valid JSON: %s (line %d, column %d)",
		               jerr.text, jerr.line, jerr.column);
	return 0;
}

bool http_query(struct evhttp_request *req, const char *key, char *buf, size_t len)
{
	const char *q = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
	struct evkeyvalq params;
	const char *v;
	bool found = false;

	if (!q)
		return false;
	TAILQ_INIT(&params);
	if (evhttp_parse_query_str(q, &params) == 0 && (v = evhttp_find_header(&params, key))) {
		snprintf(buf, len, "%s", v);
		found = true;
	}
	evhttp_clear_headers(&params);
	return found;
}

int http_query_double(struct evhttp_request *req, const char *key, double min, double max,
                      double *out, struct mv_error *err)
{
	char buf[64], *end;
	double v;
	if (!http_query(req, key, buf, sizeof buf))
		return 0;
	errno = 0;
	v = strtod(buf, &end);
	if (errno || end == buf || *end || !(v >= min && v <= max))
		return mv_fail(err, 400, "invalid_query", "query parameter %s must be a number between %g and %g",
		               key, min, max);
	*out = v;
	return 0;
}

const char *http_path(struct evhttp_request *req)
{
	const char *p = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
	return p ? p : "/";
}

bool http_bearer_matches(struct evhttp_request *req, const char *token)
{
	const char *h = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
	size_t n = strlen(token), i;
	unsigned char diff = 0;

	if (!h || strncmp(h, "Bearer ", 7) != 0 || strlen(h + 7) != n)
		return false;
	for (i = 0; i < n; i++)
		diff |= (unsigned char)(h[7 + i] ^ token[i]);
	return diff == 0;
}

/* Matches path against pattern; copies the '*' segment into id. */
bool http_route_match(const char *pattern, const char *path, char *id, size_t idlen)
{
	while (*pattern && *path) {
		if (*pattern == '*') {
			size_t n = strcspn(path, "/");
			if (n == 0 || n >= idlen)
				return false;
			memcpy(id, path, n);
			id[n] = '\0';
			path += n;
			pattern++;
			continue;
		}
		if (*pattern++ != *path++)
			return false;
	}
	if (*path == '/' && path[1] == '\0') /* tolerate one trailing slash */
		path++;
	return *pattern == '\0' && *path == '\0';
}

const char *http_method_name(enum evhttp_cmd_type cmd)
{
	switch (cmd) {
	case EVHTTP_REQ_GET: return "GET";
	case EVHTTP_REQ_POST: return "POST";
	case EVHTTP_REQ_PUT: return "PUT";
	case EVHTTP_REQ_DELETE: return "DELETE";
	case EVHTTP_REQ_HEAD: return "HEAD";
	case EVHTTP_REQ_PATCH: return "PATCH";
	default: return "OTHER";
	}
}

int http_parse_hostport(const char *s, char *host, size_t hostlen, int *port)
{
	const char *colon, *hs = s;
	size_t hl;
	char *end;
	long p;

	if (s[0] == '[') {
		const char *close = strchr(s, ']');
		if (!close || close[1] != ':')
			return -EINVAL;
		hs = s + 1;
		hl = (size_t)(close - hs);
		colon = close + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon)
			return -EINVAL;
		hl = (size_t)(colon - s);
	}
	if (hl == 0 || hl >= hostlen)
		return -EINVAL;
	errno = 0;
	p = strtol(colon + 1, &end, 10);
	if (errno || end == colon + 1 || *end || p < 0 || p > 65535)
		return -EINVAL;
	memcpy(host, hs, hl);
	host[hl] = '\0';
	*port = (int)p;
	return 0;
}

bool http_url_is_tls(const char *url) { return strncmp(url, "https://", 8) == 0; }

int http_parse_url(const char *url, char *host, size_t hostlen, int *port)
{
	char hp[300];
	const char *rest;
	size_t n;
	if (strncmp(url, "http://", 7) == 0)
		rest = url + 7;
	else if (http_url_is_tls(url))
		rest = url + 8;
	else
		return -EINVAL;
	n = strcspn(rest, "/");
	if (n == 0 || n >= sizeof hp || (rest[n] == '/' && rest[n + 1] != '\0'))
		return -EINVAL;
	memcpy(hp, rest, n);
	hp[n] = '\0';
	if (!strchr(hp, ':') || (hp[0] == '[' && !strstr(hp, "]:"))) {
		/* no port: the scheme's default */
		if (n >= hostlen || hp[0] == '[')
			return -EINVAL;
		snprintf(host, hostlen, "%s", hp);
		*port = http_url_is_tls(url) ? 443 : 80;
		return 0;
	}
	return http_parse_hostport(hp, host, hostlen, port);
}

int http_check_base_url(const char *url, char *err, size_t errlen)
{
	static const char example[] = "http://127.0.0.1:4650";
	char host[256], fixed[320];
	const char *scheme_end = strstr(url, "://");
	int port, w;

	if (http_parse_url(url, host, sizeof host, &port) == 0)
		return 0;
	if (!scheme_end) /* "127.0.0.1:4650", "localhost": the scheme is missing */
		w = snprintf(fixed, sizeof fixed, "http://%s", url);
	else if (strncmp(url, "http://", 7) == 0 && strchr(url + 7, '/')) /* a base URL has no path */
		w = snprintf(fixed, sizeof fixed, "%.*s", (int)(strchr(url + 7, '/') - url), url);
	else if (http_url_is_tls(url) && strchr(url + 8, '/'))
		w = snprintf(fixed, sizeof fixed, "%.*s", (int)(strchr(url + 8, '/') - url), url);
	else
		w = -1;
	if (w < 0 || (size_t)w >= sizeof fixed || http_parse_url(fixed, host, sizeof host, &port) < 0)
		w = snprintf(err, errlen, "\"%s\" is not a URL of the form http://HOST:PORT or https://HOST:PORT, e.g. %s",
		             url, example);
	else if (!scheme_end)
		w = snprintf(err, errlen, "\"%s\" lacks its scheme: use %s (https:// for a core with --tls-cert)", url,
		             fixed);
	else
		w = snprintf(err, errlen, "\"%s\": the core's URL has no path: use %s", url, fixed);
	if (w < 0 || (size_t)w >= errlen) /* a cut sentence still says what is wrong */
		snprintf(err, errlen, "not a URL of the form http(s)://HOST:PORT");
	return -EINVAL;
}

bool http_host_is_loopback(const char *host)
{
	struct in_addr a4;
	struct in6_addr a6;
	if (strcmp(host, "localhost") == 0)
		return true;
	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, host, &a6) == 1)
		return IN6_IS_ADDR_LOOPBACK(&a6);
	return false;
}

/* ---- synchronous client ---- */

static struct {
	char ca[4096], cert[4096], key[4096];
	struct tls_ctx *ctx;
} client_tls;

void http_client_tls_files(const struct tls_files *f)
{
	snprintf(client_tls.ca, sizeof client_tls.ca, "%s", f->ca ? f->ca : "");
	snprintf(client_tls.cert, sizeof client_tls.cert, "%s", f->cert ? f->cert : "");
	snprintf(client_tls.key, sizeof client_tls.key, "%s", f->key ? f->key : "");
	tls_ctx_free(client_tls.ctx);
	client_tls.ctx = NULL;
}

struct tls_ctx *http_client_tls(char *err, size_t errlen)
{
	struct tls_files f = {.ca = client_tls.ca[0] ? client_tls.ca : NULL,
	                      .cert = client_tls.cert[0] ? client_tls.cert : NULL,
	                      .key = client_tls.key[0] ? client_tls.key : NULL};
	if (!client_tls.ctx)
		client_tls.ctx = tls_client_new(&f, err, errlen);
	return client_tls.ctx;
}

struct call_state {
	struct http_response *resp;
	struct event_base *base;
	bool done;
};

static void call_done(struct evhttp_request *req, void *arg)
{
	struct call_state *st = arg;
	st->done = true;
	if (req && evhttp_request_get_response_code(req) > 0) {
		struct evbuffer *in = evhttp_request_get_input_buffer(req);
		size_t len = evbuffer_get_length(in);
		st->resp->status = evhttp_request_get_response_code(req);
		st->resp->body = malloc(len + 1);
		if (!st->resp->body)
			fatal("malloc");
		evbuffer_remove(in, st->resp->body, len);
		st->resp->body[len] = '\0';
		st->resp->len = len;
		const char *loc = evhttp_find_header(evhttp_request_get_input_headers(req), "Location");
		if (loc && st->resp->status / 100 == 3 && !(st->resp->location = strdup(loc)))
			fatal("strdup");
	}
	event_base_loopbreak(st->base);
}

static enum evhttp_cmd_type method_cmd(const char *m)
{
	if (strcmp(m, "POST") == 0)
		return EVHTTP_REQ_POST;
	if (strcmp(m, "DELETE") == 0)
		return EVHTTP_REQ_DELETE;
	if (strcmp(m, "PUT") == 0)
		return EVHTTP_REQ_PUT;
	return EVHTTP_REQ_GET;
}

struct call_body {
	const char *type;
	const void *data;
	size_t len;
};

/* No answer came: say whether the host name did not resolve (libevent's callback does not
 * tell) or nothing answered at the address. */
static void describe_no_answer(const char *base_url, const char *host, char *err, size_t errlen)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
	int rc = getaddrinfo(host, NULL, &hints, &ai);
	if (rc == 0) {
		freeaddrinfo(ai);
		snprintf(err, errlen, "no answer from %s (is `microvim core` running there?%s)", base_url,
		         http_url_is_tls(base_url) ? "" : " one with --tls-cert answers only https://");
	} else {
		snprintf(err, errlen, "cannot resolve the host \"%s\" of %s: %s", host, base_url,
		         rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
	}
}

static int call(const char *base_url, const char *method, const char *path, const char *token,
                const char *const *headers, const struct call_body *body, double timeout_s,
                struct http_response *resp, char *err, size_t errlen)
{
	char host[256], hostport[300];
	int port, rc = -1;
	struct event_base *base = NULL;
	struct evhttp_connection *conn = NULL;
	struct evhttp_request *req;
	struct evkeyvalq *hdr;
	struct call_state st = {.resp = resp};
	struct tls_ctx *tls = NULL;

	memset(resp, 0, sizeof *resp);
	if (http_parse_url(base_url, host, sizeof host, &port) < 0) {
		char why[400];
		http_check_base_url(base_url, why, sizeof why);
		snprintf(err, errlen, "invalid core URL %s", why);
		return -1;
	}
	if (http_url_is_tls(base_url) && !(tls = http_client_tls(err, errlen)))
		return -1;
	if (!(base = event_base_new()) || !(conn = tls_http_connection(base, tls, host, port))) {
		snprintf(err, errlen, "could not set up an HTTP connection");
		goto out;
	}
	evhttp_connection_set_timeout_tv(conn, &(struct timeval){.tv_sec = (time_t)timeout_s,
	                                                         .tv_usec = (suseconds_t)((timeout_s - (time_t)timeout_s) * 1e6)});
	st.base = base;
	req = evhttp_request_new(call_done, &st);
	hdr = evhttp_request_get_output_headers(req);
	snprintf(hostport, sizeof hostport, "%s:%d", host, port);
	evhttp_add_header(hdr, "Host", hostport);
	evhttp_add_header(hdr, "Connection", "close");
	if (token && token[0]) {
		char auth[600];
		snprintf(auth, sizeof auth, "Bearer %s", token);
		evhttp_add_header(hdr, "Authorization", auth);
	}
	for (int i = 0; headers && headers[i] && headers[i + 1]; i += 2)
		evhttp_add_header(hdr, headers[i], headers[i + 1]);
	if (body) {
		evhttp_add_header(hdr, "Content-Type", body->type);
		evbuffer_add(evhttp_request_get_output_buffer(req), body->data, body->len);
	}
	if (evhttp_make_request(conn, req, method_cmd(method), path) < 0) {
		snprintf(err, errlen, "could not send the request to %s", base_url);
		goto out;
	}
	event_base_dispatch(base);
	if (resp->status == 0) {
		if (!tls_connection_error(conn, err, errlen))
			describe_no_answer(base_url, host, err, errlen);
		goto out;
	}
	rc = 0;
out:
	if (conn)
		evhttp_connection_free(conn);
	if (base)
		event_base_free(base);
	return rc;
}

int http_call(const char *base_url, const char *method, const char *path, const char *token,
              const char *const *headers, const json_t *body, double timeout_s,
              struct http_response *resp, char *err, size_t errlen)
{
	char *text = body ? json_dumps(body, HTTP_JSON_FLAGS) : NULL;
	struct call_body b = {.type = "application/json", .data = text, .len = text ? strlen(text) : 0};
	int rc = call(base_url, method, path, token, headers, text ? &b : NULL, timeout_s, resp, err, errlen);
	free(text);
	return rc;
}

int http_call_raw(const char *base_url, const char *method, const char *path, const char *token,
                  const void *data, size_t len, double timeout_s, struct http_response *resp, char *err,
                  size_t errlen)
{
	struct call_body b = {.type = "application/octet-stream", .data = data, .len = len};
	return call(base_url, method, path, token, NULL, &b, timeout_s, resp, err, errlen);
}

void http_response_free(struct http_response *resp)
{
	free(resp->body);
	free(resp->location);
	resp->body = NULL;
	resp->location = NULL;
}
