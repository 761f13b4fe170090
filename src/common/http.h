/* http — helpers around libevent's evhttp shared by core, node and the client tools:
 * JSON replies with the uniform error body, bounded body reading, query parameters,
 * bearer tokens, listen-address parsing, and a small synchronous client for the CLI. */
#ifndef MICROVIM_HTTP_H
#define MICROVIM_HTTP_H

#include <event2/http.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "common/error.h"

/* How microvim writes JSON: compact, and reals with 12 significant digits so that
 * 0.1 vCPU prints as 0.1 and milliseconds keep their microseconds. */
#define HTTP_JSON_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(12))

/* ---- server side ---- */

/* Sends `body` (stolen; may be NULL for an empty reply) as application/json. */
void http_reply_json(struct evhttp_request *req, int status, json_t *body);
/* Sends JSON text already written (common/jsontext.h; stolen: handed to the connection's
 * buffer without a copy, freed once sent) as application/json. */
struct jtext;
void http_reply_jtext(struct evhttp_request *req, int status, struct jtext *body);
/* {"error": {"code": ..., "message": ...}} with err->status. */
void http_reply_error(struct evhttp_request *req, const struct mv_error *err);
/* Parses the body as JSON: 413 above MV_BODY_MAX, 400 when malformed (with line/column). */
int http_read_json(struct evhttp_request *req, json_t **out, struct mv_error *err);
/* The same with a limit of the route's own (a node's registration: wire.h). */
int http_read_json_max(struct evhttp_request *req, size_t max, json_t **out, struct mv_error *err);
/* Value of query parameter `key` copied into buf; returns false when absent. */
bool http_query(struct evhttp_request *req, const char *key, char *buf, size_t len);
/* Parses a query parameter as a number in [min, max]; absent leaves *out alone. */
int http_query_double(struct evhttp_request *req, const char *key, double min, double max,
                      double *out, struct mv_error *err);
/* The request path without query string, e.g. "/v1/instances/abc". */
const char *http_path(struct evhttp_request *req);
/* True when the request carries "Authorization: Bearer <token>" (constant-time compare). */
bool http_bearer_matches(struct evhttp_request *req, const char *token);
const char *http_method_name(enum evhttp_cmd_type cmd);
/* A route table's match: path against pattern, where '*' matches one path segment (copied
 * into id, at most idlen - 1 bytes); one trailing slash of path is tolerated. */
bool http_route_match(const char *pattern, const char *path, char *id, size_t idlen);

/* "127.0.0.1:4650", "[::1]:4650", "0.0.0.0:80" -> host and port; 0 or -EINVAL. */
int http_parse_hostport(const char *s, char *host, size_t hostlen, int *port);
/* "http://host:port[/]" or "https://host:port[/]" -> host and port (default 80, 443);
 * 0 or -EINVAL. */
int http_parse_url(const char *url, char *host, size_t hostlen, int *port);
/* The URL's scheme is https. */
bool http_url_is_tls(const char *url);
/* Checks a base URL as a user typed it (--core, $MICROVIM_CORE): 0 when http_parse_url
 * takes it, else -EINVAL with a sentence in err that shows the fix, e.g. for
 * "127.0.0.1:4650": "\"127.0.0.1:4650\" lacks its scheme: use http://127.0.0.1:4650". */
int http_check_base_url(const char *url, char *err, size_t errlen);
bool http_host_is_loopback(const char *host);

/* ---- synchronous client (CLI and tools): one request, one answer ----
 *
 * An https:// base URL is verified with this process's client TLS settings: the files
 * given to http_client_tls_files (the CLI's --tls-ca or $MICROVIM_TLS_CA), or the system
 * store. Not for concurrent use: the CLI and tools call from one thread. */

struct tls_files;
struct tls_ctx;
/* Copies the paths (not the files: they are read on the first https call). */
void http_client_tls_files(const struct tls_files *f);
/* The context https calls use, made on first use; NULL with a sentence in err when its
 * files are bad. Owned by http.c (lives as long as the process). */
struct tls_ctx *http_client_tls(char *err, size_t errlen);

struct http_response {
	int status; /* 0 when no answer came (connection refused, timeout) */
	char *body; /* NUL-terminated, malloc'd; free with http_response_free */
	size_t len;
	char *location; /* a redirect's Location header (malloc'd), else NULL */
};

/* Sends `body` (may be NULL) and waits up to timeout_s. 0 when an HTTP answer came (any
 * status), -1 otherwise with a sentence in err (a host that does not resolve is named). */
int http_call(const char *base_url, const char *method, const char *path, const char *token,
              const char *const *headers, const json_t *body, double timeout_s,
              struct http_response *resp, char *err, size_t errlen);
/* The same with a raw body (e.g. an image blob) sent as application/octet-stream. */
int http_call_raw(const char *base_url, const char *method, const char *path, const char *token,
                  const void *data, size_t len, double timeout_s, struct http_response *resp, char *err,
                  size_t errlen);
void http_response_free(struct http_response *resp);

#endif
