/* osapi — the OpenStack façade of the core (docs/API.md, "OpenStack façade"): Keystone v3,
 * Nova v2.1, Glance v2 and Neutron v2.0, the subset OpenStack's own clients use, on a
 * listener of its own and on the core's loop. Its files share core/os.h; this header is
 * what the daemon sees. */
#ifndef MICROVIM_OSAPI_H
#define MICROVIM_OSAPI_H

#include <event2/event.h>
#include <event2/http.h>
#include <stdbool.h>
#include <stddef.h>

#include "common/httpguard.h"

struct api;
struct osapi;

struct osapi_options {
	const char *listen;         /* "127.0.0.1:5000" */
	const char *password_file;  /* the admin's Keystone password; NULL: see os_identity_new */
	const char *native_token;   /* the core's --token-file token, or NULL */
	const char *data_dir;       /* the core's: the façade's own files go next to the store */
	bool auth;                  /* the core's --auth: Keystone's users are native's (tenants.h) */
	struct http_guard_limits guard; /* the native API's connection limits (big_body_lines set here) */
};

/* Binds the listener and loads the façade's files. NULL with a message in err. */
struct osapi *osapi_create(struct event_base *base, struct api *native, const struct osapi_options *opts,
                           char *err, size_t errlen);
/* "http://127.0.0.1:5000" as bound (port 0 resolved). */
const char *osapi_url(const struct osapi *o);
/* The native API takes the façade's tokens too. With --auth they are the users' tokens
 * (tenants.h) and the native API knows them already; without, true when req's
 * "Authorization: Bearer TOKEN" is a Keystone token the façade issued (the admin's). */
bool osapi_bearer_valid(struct osapi *o, struct evhttp_request *req);
/* No new connections (core_drain). */
void osapi_drain(struct osapi *o);
void osapi_free(struct osapi *o);

#endif
