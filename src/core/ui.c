/* ui — GET /ui/ and /ui/FILE: the embedded dashboard files (see ui.h). */
#include "core/ui.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <string.h>

#include "common/http.h"
#include "common/log.h"
#include "core/api.h"

/* What the page may load: its own files and its own API, nothing else (no CDN, no inline
 * script). Styles set from scripts through element.style are not inline markup and pass. */
#define UI_CSP "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " \
               "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "    \
               "frame-ancestors 'none'"

static const struct {
	const char *ext, *type;
} content_types[] = {
	{".html", "text/html; charset=utf-8"},
	{".css", "text/css; charset=utf-8"},
	{".js", "text/javascript; charset=utf-8"},
	{".svg", "image/svg+xml"},
	{".png", "image/png"},
	{".json", "application/json"},
};

const char *ui_content_type(const char *name)
{
	size_t n = strlen(name);
	for (size_t i = 0; i < sizeof content_types / sizeof content_types[0]; i++) {
		size_t e = strlen(content_types[i].ext);
		if (n > e && strcmp(name + n - e, content_types[i].ext) == 0)
			return content_types[i].type;
	}
	return "application/octet-stream";
}

const struct ui_file *ui_file_find(const char *name)
{
	for (size_t i = 0; i < ui_files_count; i++)
		if (strcmp(ui_files[i].name, name) == 0)
			return &ui_files[i];
	return NULL;
}

bool ui_etag_matches(const char *h, const char *etag)
{
	size_t n = strlen(etag);
	while (h && *h) {
		h += strspn(h, " \t,");
		if (*h == '*')
			return true;
		if (strncmp(h, "W/", 2) == 0) /* If-None-Match compares weakly */
			h += 2;
		if (strncmp(h, etag, n) == 0 && (h[n] == '\0' || h[n] == ',' || h[n] == ' ' || h[n] == '\t'))
			return true;
		h += strcspn(h, ",");
	}
	return false;
}

static void serve(struct evhttp_request *req, const struct ui_file *f)
{
	struct evkeyvalq *out = evhttp_request_get_output_headers(req);
	const char *inm = evhttp_find_header(evhttp_request_get_input_headers(req), "If-None-Match");

	evhttp_add_header(out, "ETag", f->etag);
	evhttp_add_header(out, "Cache-Control", "no-cache"); /* revalidate: a new build shows at once */
	if (inm && ui_etag_matches(inm, f->etag)) {
		evhttp_send_reply(req, 304, "Not Modified", NULL);
		return;
	}
	evhttp_add_header(out, "Content-Type", ui_content_type(f->name));
	evhttp_add_header(out, "X-Content-Type-Options", "nosniff");
	evhttp_add_header(out, "Referrer-Policy", "no-referrer");
	evhttp_add_header(out, "Content-Security-Policy", UI_CSP);
	if (evbuffer_add_reference(evhttp_request_get_output_buffer(req), f->data, f->len, NULL, NULL) < 0) {
		struct mv_error err;
		mv_fail(&err, 500, "out_of_memory", "the core could not queue %s; try again", f->name);
		http_reply_error(req, &err);
		return;
	}
	evhttp_send_reply(req, 200, "OK", NULL);
}

static void not_found(struct evhttp_request *req, const char *name)
{
	struct mv_error err;
	mv_fail(&err, 404, "not_found", "no dashboard file %.64s (the dashboard is at /ui/)", name);
	http_reply_error(req, &err);
}

/* GET /ui and /ui/: the page. Without the slash, relative module paths would resolve
 * against /, so /ui is sent to /ui/. */
void ui_index(UNUSED struct api *a, struct evhttp_request *req, UNUSED const char *id)
{
	const struct ui_file *f = ui_file_find("index.html");
	if (strcmp(http_path(req), "/ui") == 0) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "Location", "/ui/");
		evhttp_send_reply(req, 301, "Moved Permanently", NULL);
		return;
	}
	if (!f) {
		not_found(req, "index.html");
		return;
	}
	serve(req, f);
}

/* GET /ui/NAME: one embedded file; NAME is one path segment (the route's '*'). */
void ui_asset(UNUSED struct api *a, struct evhttp_request *req, const char *name)
{
	const struct ui_file *f = ui_file_find(name);
	if (!f) {
		not_found(req, name);
		return;
	}
	serve(req, f);
}
