/* ui — the web dashboard's files, embedded in the binary and served at /ui/.
 *
 * The files are ui/ in the source tree: plain HTML, CSS and JavaScript modules, nothing
 * fetched from elsewhere, so the dashboard works on a network with no way out. At build
 * time scripts/embed-ui turns them into a C array (build/gen/ui_files.c) with an ETag per
 * file, the start of the file's SHA-256: a browser revalidates (Cache-Control: no-cache)
 * and gets 304 until a build changes the file.
 *
 * The files are public (no bearer token): they hold no data. The page asks for the token
 * itself when the API answers 401 and sends it on every API call. Names are looked up in
 * the embedded table only, never on a file system, so no path can reach anything else. */
#ifndef MICROVIM_UI_H
#define MICROVIM_UI_H

#include <stdbool.h>
#include <stddef.h>

struct ui_file {
	const char *name; /* "index.html", "app.js": one path segment */
	const unsigned char *data;
	size_t len;
	const char *etag; /* quoted, e.g. "\"3f2a9c1b7d4e5f60\"" */
};

/* Defined in the generated build/gen/ui_files.c. */
extern const struct ui_file ui_files[];
extern const size_t ui_files_count;

/* The embedded file of that name, or NULL. */
const struct ui_file *ui_file_find(const char *name);
/* Content-Type by the name's extension (application/octet-stream when unknown). */
const char *ui_content_type(const char *name);
/* True when an If-None-Match header value names etag ("*", a list, weak W/ tags). */
bool ui_etag_matches(const char *if_none_match, const char *etag);

#endif
