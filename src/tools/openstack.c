/* openstack — see openstack.h. */
#include "tools/openstack.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/fs.h"

#define YAML_MAX_TEXT (1024 * 1024)
#define YAML_MAX_DEPTH 32

/* ---- a small YAML reader ---- */

struct yline {
	int indent, lineno;
	char *text; /* without indentation, comment and trailing blanks */
};

struct yparse {
	struct yline *v;
	size_t n, i;
	char *err;
	size_t errlen;
};

static int yfail(struct yparse *y, int lineno, const char *why)
{
	snprintf(y->err, y->errlen, "line %d: %s", lineno, why);
	return -EINVAL;
}

/* Cuts a comment (" #..." or a line starting with #) outside quotes, and trailing blanks. */
static void strip_comment(char *s)
{
	char quote = 0;
	for (char *p = s; *p; p++) {
		if (quote) {
			if (*p == quote)
				quote = 0;
		} else if (*p == '\'' || *p == '"') {
			quote = *p;
		} else if (*p == '#' && (p == s || p[-1] == ' ' || p[-1] == '\t')) {
			*p = '\0';
			break;
		}
	}
	for (size_t n = strlen(s); n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'); n--)
		s[n - 1] = '\0';
}

/* A scalar: 'single' ('' is '), "double" (\" \\ \n \t), or plain. NULL: malformed. */
static json_t *yscalar(const char *s)
{
	size_t n = strlen(s);
	char *out, *w;
	json_t *j;
	if (n == 0)
		return json_string("");
	if (s[0] != '\'' && s[0] != '"') {
		if (strchr("&*!|>%@`{", s[0]))
			return NULL; /* anchors, aliases, tags, block scalars, directives, flow mappings */
		return json_string(s);
	}
	if (n < 2 || s[n - 1] != s[0])
		return NULL;
	if (!(out = malloc(n)))
		return NULL;
	w = out;
	for (size_t i = 1; i + 1 < n; i++) {
		if (s[0] == '\'' && s[i] == '\'') {
			if (s[i + 1] != '\'' || i + 2 >= n)
				goto bad;
			*w++ = '\'';
			i++;
		} else if (s[0] == '"' && s[i] == '\\') {
			char e = s[++i];
			if (i + 1 >= n)
				goto bad;
			*w++ = e == 'n' ? '\n' : e == 't' ? '\t' : e;
		} else if (s[0] == '"' && s[i] == '"') {
			goto bad;
		} else {
			*w++ = s[i];
		}
	}
	*w = '\0';
	j = json_string(out);
	free(out);
	return j;
bad:
	free(out);
	return NULL;
}

/* "[a, 'b', c]": a sequence of scalars. */
static json_t *yflow(const char *s)
{
	size_t n = strlen(s);
	json_t *arr;
	char *copy, *p;
	if (n < 2 || s[n - 1] != ']' || !(arr = json_array()))
		return NULL;
	if (!(copy = strndup(s + 1, n - 2))) {
		json_decref(arr);
		return NULL;
	}
	p = copy;
	while (*p) {
		char *end = p, quote = 0;
		json_t *item;
		while (*end && (quote || *end != ',')) {
			if (quote && *end == quote)
				quote = 0;
			else if (!quote && (*end == '\'' || *end == '"'))
				quote = *end;
			end++;
		}
		bool last = *end == '\0';
		*end = '\0';
		while (*p == ' ')
			p++;
		for (size_t k = strlen(p); k > 0 && p[k - 1] == ' '; k--)
			p[k - 1] = '\0';
		if (*p || !last) {
			if (!*p || strchr("[{", *p) || !(item = yscalar(p))) {
				json_decref(arr);
				free(copy);
				return NULL;
			}
			json_array_append_new(arr, item);
		}
		if (last)
			break;
		p = end + 1;
	}
	free(copy);
	return arr;
}

static json_t *yvalue(struct yparse *y, const char *s, int lineno, int *rc)
{
	json_t *v = s[0] == '[' ? yflow(s) : yscalar(s);
	if (!v)
		*rc = yfail(y, lineno, "a value this reader does not take (anchors, tags, block scalars, flow mappings) "
		                       "or a quote that does not close");
	return v;
}

static int yblock(struct yparse *y, int indent, int depth, json_t **out);

/* Where the key of "key: value" ends (the ':'), or NULL. */
static char *key_end(char *s)
{
	char quote = 0;
	for (char *p = s; *p; p++) {
		if (quote) {
			if (*p == quote)
				quote = 0;
		} else if (*p == '\'' || *p == '"') {
			quote = *p;
		} else if (*p == ':' && (p[1] == '\0' || p[1] == ' ')) {
			return p;
		}
	}
	return NULL;
}

/* The value of a key whose line ended at "key:": a deeper block, a sequence at the same
 * indentation, or nothing (""). */
static int ynested(struct yparse *y, int indent, int depth, json_t **out)
{
	if (y->i < y->n && y->v[y->i].indent > indent)
		return yblock(y, y->v[y->i].indent, depth + 1, out);
	if (y->i < y->n && y->v[y->i].indent == indent && y->v[y->i].text[0] == '-' &&
	    (y->v[y->i].text[1] == ' ' || y->v[y->i].text[1] == '\0'))
		return yblock(y, indent, depth + 1, out);
	*out = json_string("");
	return 0;
}

static int ymapping(struct yparse *y, int indent, int depth, json_t **out)
{
	json_t *map = json_object();
	int rc = 0;
	while (rc == 0 && y->i < y->n && y->v[y->i].indent == indent && y->v[y->i].text[0] != '-') {
		struct yline *l = &y->v[y->i];
		char *colon = key_end(l->text), *rest;
		json_t *key, *val = NULL;
		if (!colon) {
			rc = yfail(y, l->lineno, "expected \"key: value\"");
			break;
		}
		*colon = '\0';
		rest = colon + 1;
		while (*rest == ' ')
			rest++;
		if (!(key = yscalar(l->text)) || !json_string_value(key)[0]) {
			json_decref(key);
			rc = yfail(y, l->lineno, "a key this reader does not take");
			break;
		}
		y->i++;
		if (*rest)
			val = yvalue(y, rest, l->lineno, &rc);
		else
			rc = ynested(y, indent, depth, &val);
		if (rc == 0 && json_object_get(map, json_string_value(key)))
			rc = yfail(y, l->lineno, "a key given twice");
		if (rc == 0)
			json_object_set_new(map, json_string_value(key), val);
		else
			json_decref(val);
		json_decref(key);
	}
	if (rc == 0 && y->i < y->n && y->v[y->i].indent > indent)
		rc = yfail(y, y->v[y->i].lineno, "indented more than the lines before it");
	if (rc < 0) {
		json_decref(map);
		return rc;
	}
	*out = map;
	return 0;
}

static int ysequence(struct yparse *y, int indent, int depth, json_t **out)
{
	json_t *seq = json_array();
	int rc = 0;
	while (rc == 0 && y->i < y->n && y->v[y->i].indent == indent && y->v[y->i].text[0] == '-' &&
	       (y->v[y->i].text[1] == ' ' || y->v[y->i].text[1] == '\0')) {
		struct yline *l = &y->v[y->i];
		char *item = l->text + 1;
		json_t *val = NULL;
		while (*item == ' ')
			item++;
		if (!*item) {
			y->i++;
			rc = ynested(y, indent, depth, &val);
		} else if (key_end(item)) {
			/* "- key: value": a mapping whose first line starts after the dash */
			l->indent += (int)(item - l->text);
			l->text = item;
			rc = yblock(y, l->indent, depth + 1, &val);
		} else {
			y->i++;
			val = yvalue(y, item, l->lineno, &rc);
		}
		if (rc == 0)
			json_array_append_new(seq, val);
		else
			json_decref(val);
	}
	if (rc < 0) {
		json_decref(seq);
		return rc;
	}
	*out = seq;
	return 0;
}

static int yblock(struct yparse *y, int indent, int depth, json_t **out)
{
	if (depth > YAML_MAX_DEPTH)
		return yfail(y, y->v[y->i].lineno, "nested too deep");
	if (y->v[y->i].text[0] == '-' && (y->v[y->i].text[1] == ' ' || y->v[y->i].text[1] == '\0'))
		return ysequence(y, indent, depth, out);
	return ymapping(y, indent, depth, out);
}

int yaml_mini_parse(const char *text, json_t **out, char *err, size_t errlen)
{
	struct yparse y = {.err = err, .errlen = errlen};
	char *copy = strdup(text), *line, *save = NULL;
	int lineno = 0, rc;

	*out = NULL;
	if (!copy || !(y.v = calloc(strlen(text) / 2 + 2, sizeof *y.v))) {
		free(copy);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	/* strtok_r would skip empty lines and lose their numbers: split by hand */
	for (line = copy; line; line = save) {
		char *nl = strchr(line, '\n');
		int indent = 0;
		save = nl ? nl + 1 : NULL;
		if (nl)
			*nl = '\0';
		lineno++;
		while (line[indent] == ' ')
			indent++;
		if (line[indent] == '\t') {
			rc = yfail(&y, lineno, "a tab in the indentation (YAML takes spaces only)");
			goto out;
		}
		strip_comment(line + indent);
		if (!line[indent] || strcmp(line, "---") == 0) /* blank, a comment, the document's start */
			continue;
		y.v[y.n++] = (struct yline){.indent = indent, .lineno = lineno, .text = line + indent};
	}
	if (y.n == 0) {
		*out = json_object();
		rc = 0;
		goto out;
	}
	rc = yblock(&y, y.v[0].indent, 0, out);
	if (rc == 0 && y.i < y.n) {
		json_decref(*out);
		*out = NULL;
		rc = yfail(&y, y.v[y.i].lineno, "indented less than the first line, or a new block where none can start");
	}
out:
	free(y.v);
	free(copy);
	return rc;
}

/* ---- credentials ---- */

static void set(char *dst, size_t len, const char *value)
{
	if (value && *value)
		snprintf(dst, len, "%s", value); /* cut at OS_FIELD: no credential field is that long */
}

static int creds_check(struct os_creds *c, bool env, char *err, size_t errlen)
{
	const char *missing = NULL;
	if (!c->auth_url[0])
		missing = env ? "OS_AUTH_URL" : "auth.auth_url";
	else if (!c->username[0] && !c->user_id[0])
		missing = env ? "OS_USERNAME (or OS_USER_ID)" : "auth.username";
	else if (!c->password[0])
		missing = env ? "OS_PASSWORD" : "auth.password";
	else if (!c->project_name[0] && !c->project_id[0])
		missing = env ? "OS_PROJECT_NAME (or OS_PROJECT_ID)" : "auth.project_name";
	if (missing) {
		snprintf(err, errlen, "%s: %s is missing (the credentials are read as the openstack CLI reads them)",
		         c->source, missing);
		return -EINVAL;
	}
	if (!c->user_domain_name[0] && !c->user_domain_id[0])
		set(c->user_domain_name, sizeof c->user_domain_name, "Default");
	if (!c->project_domain_name[0] && !c->project_domain_id[0])
		set(c->project_domain_name, sizeof c->project_domain_name, "Default");
	if (!c->interface[0])
		set(c->interface, sizeof c->interface, "public");
	return 0;
}

int os_creds_from_env(struct os_creds *c, char *err, size_t errlen)
{
	memset(c, 0, sizeof *c);
	snprintf(c->source, sizeof c->source, "the OS_* variables");
	set(c->auth_url, sizeof c->auth_url, getenv("OS_AUTH_URL"));
	set(c->username, sizeof c->username, getenv("OS_USERNAME"));
	set(c->user_id, sizeof c->user_id, getenv("OS_USER_ID"));
	set(c->password, sizeof c->password, getenv("OS_PASSWORD"));
	set(c->project_name, sizeof c->project_name, getenv("OS_TENANT_NAME"));
	set(c->project_name, sizeof c->project_name, getenv("OS_PROJECT_NAME"));
	set(c->project_id, sizeof c->project_id, getenv("OS_TENANT_ID"));
	set(c->project_id, sizeof c->project_id, getenv("OS_PROJECT_ID"));
	set(c->user_domain_name, sizeof c->user_domain_name, getenv("OS_USER_DOMAIN_NAME"));
	set(c->user_domain_id, sizeof c->user_domain_id, getenv("OS_USER_DOMAIN_ID"));
	set(c->project_domain_name, sizeof c->project_domain_name, getenv("OS_PROJECT_DOMAIN_NAME"));
	set(c->project_domain_id, sizeof c->project_domain_id, getenv("OS_PROJECT_DOMAIN_ID"));
	set(c->region, sizeof c->region, getenv("OS_REGION_NAME"));
	set(c->interface, sizeof c->interface, getenv("OS_ENDPOINT_TYPE"));
	set(c->interface, sizeof c->interface, getenv("OS_INTERFACE"));
	if (strncmp(c->interface, "publicURL", 9) == 0 || strncmp(c->interface, "internalURL", 11) == 0 ||
	    strncmp(c->interface, "adminURL", 8) == 0)
		c->interface[strlen(c->interface) - 3] = '\0'; /* the old names */
	return creds_check(c, true, err, errlen);
}

static const char *yget(const json_t *o, const char *key) { return json_string_value(json_object_get(o, key)); }

int os_creds_from_clouds_yaml(struct os_creds *c, const char *text, const char *source, const char *cloud, char *err,
                              size_t errlen)
{
	json_t *doc, *clouds, *cl, *auth;
	char why[300];
	const char *type;
	int rc = -EINVAL;

	memset(c, 0, sizeof *c);
	snprintf(c->source, sizeof c->source, "cloud \"%.100s\" of %.400s", cloud, source);
	if (yaml_mini_parse(text, &doc, why, sizeof why) < 0) {
		snprintf(err, errlen, "%s: %s", source, why);
		return -EINVAL;
	}
	clouds = json_object_get(doc, "clouds");
	if (!json_is_object(clouds)) {
		snprintf(err, errlen, "%s: no \"clouds:\" mapping", source);
		goto out;
	}
	cl = json_object_get(clouds, cloud);
	if (!json_is_object(cl)) {
		const char *k;
		json_t *v;
		size_t used = 0;
		char names[300] = "";
		json_object_foreach(clouds, k, v) {
			int w = snprintf(names + used, sizeof names - used, "%s%s", used ? ", " : "", k);
			if (w < 0 || (size_t)w >= sizeof names - used)
				break; /* the list is an aid: a long one is cut */
			used += (size_t)w;
		}
		snprintf(err, errlen, "%s: no cloud \"%s\" (there are: %s)", source, cloud, names[0] ? names : "none");
		goto out;
	}
	type = yget(cl, "auth_type");
	if (type && strcmp(type, "password") != 0 && strcmp(type, "v3password") != 0) {
		snprintf(err, errlen, "%s: auth_type %s: only password authentication is supported", c->source, type);
		goto out;
	}
	auth = json_object_get(cl, "auth");
	set(c->auth_url, sizeof c->auth_url, yget(auth, "auth_url"));
	set(c->username, sizeof c->username, yget(auth, "username"));
	set(c->user_id, sizeof c->user_id, yget(auth, "user_id"));
	set(c->password, sizeof c->password, yget(auth, "password"));
	set(c->project_name, sizeof c->project_name, yget(auth, "project_name"));
	set(c->project_id, sizeof c->project_id, yget(auth, "project_id"));
	set(c->user_domain_name, sizeof c->user_domain_name, yget(auth, "domain_name"));
	set(c->project_domain_name, sizeof c->project_domain_name, yget(auth, "domain_name"));
	set(c->user_domain_name, sizeof c->user_domain_name, yget(auth, "user_domain_name"));
	set(c->user_domain_id, sizeof c->user_domain_id, yget(auth, "user_domain_id"));
	set(c->project_domain_name, sizeof c->project_domain_name, yget(auth, "project_domain_name"));
	set(c->project_domain_id, sizeof c->project_domain_id, yget(auth, "project_domain_id"));
	set(c->region, sizeof c->region, yget(cl, "region_name"));
	set(c->interface, sizeof c->interface, yget(cl, "interface"));
	rc = creds_check(c, false, err, errlen);
out:
	json_decref(doc);
	return rc;
}

int os_creds_from_cloud(struct os_creds *c, const char *cloud, char *err, size_t errlen)
{
	char paths[4][600];
	const char *home = getenv("HOME"), *env = getenv("OS_CLIENT_CONFIG_FILE");
	int n = 0;

	snprintf(paths[n++], sizeof paths[0], "clouds.yaml");
	if (env && *env)
		snprintf(paths[n++], sizeof paths[0], "%.590s", env);
	if (home && *home)
		snprintf(paths[n++], sizeof paths[0], "%.560s/.config/openstack/clouds.yaml", home);
	snprintf(paths[n++], sizeof paths[0], "/etc/openstack/clouds.yaml");
	for (int i = 0; i < n; i++) {
		char *text;
		size_t len;
		int rc = fs_read_file(paths[i], YAML_MAX_TEXT, &text, &len);
		if (rc == -ENOENT)
			continue;
		if (rc < 0) {
			snprintf(err, errlen, "%s: %s", paths[i], strerror(-rc));
			return -EINVAL;
		}
		rc = os_creds_from_clouds_yaml(c, text, paths[i], cloud, err, errlen);
		free(text);
		return rc;
	}
	snprintf(err, errlen, "--os-cloud %s: no clouds.yaml in ./, $OS_CLIENT_CONFIG_FILE, ~/.config/openstack/ or "
	                      "/etc/openstack/", cloud);
	return -ENOENT;
}

/* ---- URLs and requests ---- */

int os_url_split(const char *url, char *host, size_t hostlen, int *port, char *prefix, size_t prefixlen)
{
	const char *rest, *slash, *colon;
	size_t hn;
	if (strncmp(url, "http://", 7) != 0)
		return -EINVAL;
	rest = url + 7;
	slash = rest + strcspn(rest, "/?");
	if (rest[0] == '[') {
		const char *close = memchr(rest, ']', (size_t)(slash - rest));
		if (!close)
			return -EINVAL;
		hn = (size_t)(close - rest - 1);
		if (hn == 0 || hn >= hostlen)
			return -EINVAL;
		memcpy(host, rest + 1, hn);
		colon = close[1] == ':' ? close + 1 : NULL;
	} else {
		colon = memchr(rest, ':', (size_t)(slash - rest));
		hn = (size_t)((colon ? colon : slash) - rest);
		if (hn == 0 || hn >= hostlen)
			return -EINVAL;
		memcpy(host, rest, hn);
	}
	host[hn] = '\0';
	*port = 80;
	if (colon) {
		char *end;
		long v = strtol(colon + 1, &end, 10);
		if (end != slash || v < 1 || v > 65535)
			return -EINVAL;
		*port = (int)v;
	}
	if ((size_t)snprintf(prefix, prefixlen, "%s", *slash == '/' ? slash : "") >= prefixlen)
		return -EINVAL;
	for (size_t n = strlen(prefix); n > 0 && prefix[n - 1] == '/'; n--)
		prefix[n - 1] = '\0';
	return 0;
}

struct call {
	struct event_base *base;
	struct os_response *r;
};

static void call_done(struct evhttp_request *req, void *arg)
{
	struct call *c = arg;
	if (req && evhttp_request_get_response_code(req) > 0) {
		struct evbuffer *in = evhttp_request_get_input_buffer(req);
		size_t len = evbuffer_get_length(in);
		const char *tok = evhttp_find_header(evhttp_request_get_input_headers(req), "X-Subject-Token");
		c->r->status = evhttp_request_get_response_code(req);
		if (len > 0)
			c->r->body = json_loadb((const char *)evbuffer_pullup(in, -1), len, 0, NULL);
		if (tok)
			snprintf(c->r->subject_token, sizeof c->r->subject_token, "%s", tok);
	}
	event_base_loopbreak(c->base);
}

static enum evhttp_cmd_type cmd_of(const char *method)
{
	return strcmp(method, "POST") == 0 ? EVHTTP_REQ_POST : strcmp(method, "DELETE") == 0 ? EVHTTP_REQ_DELETE
	       : strcmp(method, "PUT") == 0 ? EVHTTP_REQ_PUT : EVHTTP_REQ_GET;
}

int os_request(const char *url, const char *method, const char *token, const char *const *headers, const json_t *body,
               double timeout_s, struct os_response *r, char *err, size_t errlen)
{
	char host[256], path[1024], hostport[300];
	int port, rc = -1;
	struct event_base *base = NULL;
	struct evhttp_connection *conn = NULL;
	struct evhttp_request *req;
	struct evkeyvalq *hdr;
	struct call c = {.r = r};
	char *text = NULL;

	memset(r, 0, sizeof *r);
	if (os_url_split(url, host, sizeof host, &port, path, sizeof path) < 0) {
		snprintf(err, errlen, "%s: not an http://HOST[:PORT]/PATH URL%s", url,
		         strncmp(url, "https://", 8) == 0 ? " (https is not supported by this build)" : "");
		return -1;
	}
	{ /* the path as given, query included ("/" when there is none) */
		const char *p0 = url + 7 + strcspn(url + 7, "/?");
		if ((size_t)snprintf(path, sizeof path, "%s%s", *p0 == '/' ? "" : "/", p0) >= sizeof path) {
			snprintf(err, errlen, "%.100s...: the URL is too long", url);
			return -1;
		}
	}
	if (!(base = event_base_new()) || !(conn = evhttp_connection_base_new(base, NULL, host, (unsigned short)port))) {
		snprintf(err, errlen, "could not set up an HTTP connection");
		goto out;
	}
	evhttp_connection_set_timeout_tv(conn, &(struct timeval){.tv_sec = (time_t)timeout_s,
	                                                         .tv_usec = (suseconds_t)((timeout_s - (time_t)timeout_s) * 1e6)});
	c.base = base;
	if (!(req = evhttp_request_new(call_done, &c))) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	hdr = evhttp_request_get_output_headers(req);
	snprintf(hostport, sizeof hostport, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
	evhttp_add_header(hdr, "Host", hostport);
	evhttp_add_header(hdr, "Connection", "close");
	evhttp_add_header(hdr, "Accept", "application/json");
	if (token && token[0])
		evhttp_add_header(hdr, "X-Auth-Token", token);
	for (int i = 0; headers && headers[i] && headers[i + 1]; i += 2)
		evhttp_add_header(hdr, headers[i], headers[i + 1]);
	if (body) {
		if (!(text = json_dumps(body, JSON_COMPACT))) {
			evhttp_request_free(req);
			snprintf(err, errlen, "out of memory");
			goto out;
		}
		evhttp_add_header(hdr, "Content-Type", "application/json");
		evbuffer_add(evhttp_request_get_output_buffer(req), text, strlen(text));
	}
	if (evhttp_make_request(conn, req, cmd_of(method), path) < 0) {
		snprintf(err, errlen, "could not send %s %s", method, url);
		goto out;
	}
	event_base_dispatch(base);
	if (r->status == 0) {
		snprintf(err, errlen, "no answer from %s:%d to %s %s (is the service running?)", host, port, method, path);
		goto out;
	}
	rc = 0;
out:
	free(text);
	if (conn)
		evhttp_connection_free(conn);
	if (base)
		event_base_free(base);
	return rc;
}

void os_response_free(struct os_response *r)
{
	json_decref(r->body);
	r->body = NULL;
}

const char *os_error_message(const json_t *body)
{
	const char *k;
	json_t *v;
	if (json_is_string(json_object_get(body, "message")))
		return json_string_value(json_object_get(body, "message"));
	json_object_foreach((json_t *)body, k, v)
	if (json_is_string(json_object_get(v, "message")))
		return json_string_value(json_object_get(v, "message"));
	return NULL;
}

/* ---- Keystone ---- */

static json_t *domain(const char *name, const char *id)
{
	return id[0] ? json_pack("{s:s}", "id", id) : json_pack("{s:s}", "name", name);
}

int os_authenticate(const struct os_creds *c, struct os_session *s, char *err, size_t errlen)
{
	char url[600];
	size_t n = strlen(c->auth_url);
	json_t *user, *project, *body;
	struct os_response r;
	int rc;

	memset(s, 0, sizeof *s);
	while (n > 0 && c->auth_url[n - 1] == '/')
		n--;
	/* keystoneauth takes the root or the /v3 URL */
	if (n >= 3 && strncmp(c->auth_url + n - 3, "/v3", 3) == 0)
		snprintf(url, sizeof url, "%.*s/auth/tokens", (int)n, c->auth_url);
	else
		snprintf(url, sizeof url, "%.*s/v3/auth/tokens", (int)n, c->auth_url);
	user = c->user_id[0] ? json_pack("{s:s, s:s}", "id", c->user_id, "password", c->password)
	                     : json_pack("{s:s, s:o, s:s}", "name", c->username, "domain",
	                                 domain(c->user_domain_name, c->user_domain_id), "password", c->password);
	project = c->project_id[0] ? json_pack("{s:s}", "id", c->project_id)
	                           : json_pack("{s:s, s:o}", "name", c->project_name, "domain",
	                                       domain(c->project_domain_name, c->project_domain_id));
	body = json_pack("{s:{s:{s:[s], s:{s:o}}, s:{s:o}}}", "auth", "identity", "methods", "password", "password", "user",
	                 user, "scope", "project", project);
	if (!body) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	rc = os_request(url, "POST", NULL, NULL, body, 30, &r, err, errlen);
	json_decref(body);
	if (rc < 0)
		return -ECONNREFUSED;
	if (r.status != 201 || !r.subject_token[0]) {
		const char *msg = os_error_message(r.body);
		snprintf(err, errlen, "Keystone (%s) answered %d%s%s (credentials from %s)", url, r.status, msg ? ": " : "",
		         msg ?: "", c->source);
		os_response_free(&r);
		return r.status == 401 || r.status == 403 ? -EACCES : -EINVAL;
	}
	snprintf(s->token, sizeof s->token, "%s", r.subject_token);
	s->catalog = json_incref(json_object_get(json_object_get(r.body, "token"), "catalog"));
	os_response_free(&r);
	if (!json_is_array(s->catalog)) {
		snprintf(err, errlen, "Keystone's token has no service catalog (is the project scope right?)");
		os_session_free(s);
		return -EINVAL;
	}
	return 0;
}

void os_session_free(struct os_session *s)
{
	json_decref(s->catalog);
	s->catalog = NULL;
}

int os_catalog_url(const json_t *catalog, const char *type, const char *interface, const char *region, char *url,
                   size_t len, char *err, size_t errlen)
{
	size_t i, k;
	const json_t *svc, *ep;
	if (!interface || !*interface)
		interface = "public";
	json_array_foreach(catalog, i, svc) {
		const char *t = json_string_value(json_object_get(svc, "type"));
		if (!t || strcmp(t, type) != 0)
			continue;
		json_array_foreach(json_object_get(svc, "endpoints"), k, ep) {
			const char *itf = json_string_value(json_object_get(ep, "interface"));
			const char *reg = json_string_value(json_object_get(ep, "region_id")) ?: json_string_value(json_object_get(ep, "region"));
			const char *u = json_string_value(json_object_get(ep, "url"));
			if (!itf || !u || strcmp(itf, interface) != 0)
				continue;
			if (region && *region && (!reg || strcmp(reg, region) != 0))
				continue;
			if ((size_t)snprintf(url, len, "%s", u) >= len) {
				snprintf(err, errlen, "the %s endpoint's URL is too long", type);
				return -EINVAL;
			}
			return 0;
		}
		snprintf(err, errlen, "the catalog has service %s but no %s endpoint%s%s", type, interface,
		         region && *region ? " in region " : "", region && *region ? region : "");
		return -ENOENT;
	}
	snprintf(err, errlen, "the catalog has no service of type %s", type);
	return -ENOENT;
}
