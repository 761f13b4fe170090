/* os — what the OpenStack façade's files share (osapi.h is its interface to the daemon).
 * The façade speaks a subset of Keystone v3, Nova v2.1, Glance v2 and Neutron v2.0 on its
 * own listener, under the path prefixes its service catalog lists:
 *   os_identity.c  /identity: version discovery, tokens (POST/GET/DELETE /v3/auth/tokens),
 *                  projects and users
 *   os_compute.c   /compute: servers, flavors and their extra specs, limits, availability
 *                  zones, key pairs, microversions
 *   os_image.c     /image: images, their upload and download
 *   os_network.c   /network: networks (the bridges the nodes advertise)
 * Each handler parses OpenStack's request into the same typed values the native API
 * builds, calls the same cluster and image-registry functions (cluster.h, images.h) and
 * renders OpenStack's answer: there is no second model of instances or images. What
 * OpenStack has and microvim does not (flavors, Glance's metadata of an image) the façade
 * keeps in small JSON files in the core's data dir, next to the store.
 *
 * Errors: handlers fill an mv_error and reply through os_reply_error, which renders it in
 * the shape of the route's service ({"itemNotFound": {"code", "message"}} for Nova,
 * {"error": {"code", "title", "message"}} for Keystone, ...). */
#ifndef MICROVIM_OS_H
#define MICROVIM_OS_H

#include <event2/http.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "common/error.h"
#include "common/hmap.h"
#include "common/model.h"
#include "core/authz.h"

struct api;
struct instance;
struct offload;
struct tenants;

enum os_service { OS_IDENTITY, OS_COMPUTE, OS_IMAGE, OS_NETWORK, OS_SERVICE_COUNT };

/* The microversions of Nova the façade speaks (OpenStack-API-Version: compute 2.X). */
#define OS_NOVA_MIN_MINOR 1
#define OS_NOVA_MAX_MINOR 79
#define OS_UUID_LEN 36

/* Who a request is from: the principal a token carries, in Keystone's terms (user,
 * project, ids derived from their names) and in the native API's (authz.h: role, project
 * and user, what the same token means on /v1). */
struct os_principal {
	struct authz_principal authz;
	char user_id[OS_UUID_LEN + 1];
	char user_name[MV_NAME_MAX + 1];
	char project_id[OS_UUID_LEN + 1]; /* "" when the token is unscoped */
	char project_name[MV_NAME_MAX + 1];
	bool admin; /* authz's role is admin */
};

struct os_identity;
struct os_flavors;
struct os_glance;

/* What a file was when last read (osapi.c reads the façade's files again when they change). */
struct os_file_stamp {
	bool known; /* it existed */
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
};

/* The façade: what every handler gets. */
struct osapi {
	struct api *native;          /* the cluster, the image registry, the guard of the native API */
	char url[128];               /* "http://127.0.0.1:5000": how clients reach the façade */
	const char *data_dir;
	bool auth;                   /* --auth: Keystone's users are tenants.h's */
	struct os_identity *identity;
	struct os_flavors *flavors;
	struct os_glance *glance;
	struct os_file_stamp flavors_seen, glance_seen; /* several cores: files_refresh */
	struct hmap deleting;        /* instance id -> itself: a server being deleted (stopping, then removed) */
	struct hmap acting;          /* instance id -> what it is doing: a server starting or rebooting, until
	                              * it is ACTIVE again (or ended) */
	struct http_guard *guard;
	struct evhttp *http;
	struct evhttp_bound_socket *bound;
};

/* A request as the handlers see it: the '*' segment of its route, who sent it, and (for
 * Nova) the microversion it negotiated. */
struct os_req {
	struct evhttp_request *req;
	const char *id;
	struct os_principal who;
	int minor; /* Nova 2.minor */
};

typedef void os_route_fn(struct osapi *o, struct os_req *r);

/* os_identity.c */
os_route_fn os_identity_root, os_identity_v3, os_tokens_issue, os_tokens_check, os_tokens_revoke;
os_route_fn os_projects_list, os_users_list, os_project_show;
/* os_compute.c */
os_route_fn os_compute_root, os_compute_v21, os_servers_create, os_servers_list, os_servers_detail;
os_route_fn os_server_show, os_server_delete, os_server_action, os_flavors_list, os_flavors_detail;
os_route_fn os_flavor_show, os_flavor_create, os_flavor_delete, os_flavor_specs_get, os_flavor_specs_set;
os_route_fn os_limits, os_zones, os_keypairs, os_server_ips, os_server_metadata, os_server_volumes;
/* os_image.c */
os_route_fn os_image_root, os_images_create, os_images_list, os_image_show, os_image_delete;
os_route_fn os_image_upload, os_image_download, os_image_schemas;
/* os_network.c */
os_route_fn os_network_root, os_network_v20, os_networks_list, os_network_show, os_network_empty_list;

/* ---- os.c: what the handlers share ---- */

/* err in the shape of service's errors. */
void os_reply_error(struct evhttp_request *req, enum os_service service, const struct mv_error *err);
/* The JSON body of an OpenStack request (the native API's caps): 0, or -1 with err. */
int os_read_body(struct evhttp_request *req, json_t **out, struct mv_error *err);
/* [{"rel": "self", "href": URL/PREFIX/ID}, {"rel": "bookmark", ...}] ("" prefix: none). */
json_t *os_links(const struct osapi *o, const char *versioned, const char *bookmark, const char *id);
/* A UUID made of the 128 first bits of sha256(kind ":" name): stable names for what
 * microvim names by name (images, bridges) or by a short id. */
void os_uuid_of(const char *kind, const char *name, char out[OS_UUID_LEN + 1]);
/* A new random UUID (version 4). */
void os_uuid_random(char out[OS_UUID_LEN + 1]);
bool os_uuid_valid(const char *s);
/* An instance's server id: its 16 hex digits as the first half of a UUID
 * ("0123abcd-4567-89ab-8000-000000000000"), and back (either form; false when neither). */
void os_server_id(const char *instance_id, char out[OS_UUID_LEN + 1]);
bool os_instance_id(const char *server_id, char out[MV_ID_LEN + 1]);
/* The ISO 8601 time OpenStack writes: 2026-12-05T06:03:36Z. */
void os_time(int64_t wall_us, char *buf, int len);

/* ---- os_identity.c ---- */

/* tenants NULL (a core without --auth): one user, admin of project admin, whose password
 * is admin_password (NULL: native_token; both NULL: any). With tenants: its users log in
 * (their passwords checked on offload's threads) and the tokens issued are theirs, the
 * native API's too; admin_password, if given, is also user admin's. */
struct os_identity *os_identity_new(const char *admin_password, const char *native_token, struct tenants *tenants,
                                    struct offload *offload);
void os_identity_free(struct os_identity *id);
/* Who X-Auth-Token is: a token the façade issued and has not revoked, not expired; or
 * the core's own token (--token-file), which is the admin's. */
bool os_identity_authenticate(struct os_identity *id, const char *token, struct os_principal *who);

/* ---- os_compute.c / os_image.c: their state ---- */

/* Their files in the data dir, each written whole (temp file, rename) at every change. */
#define OS_FLAVORS_FILE "openstack-flavors.json"
#define OS_GLANCE_FILE "openstack-images.json"

struct os_flavors *os_flavors_open(const char *data_dir, char *err, size_t errlen);
void os_flavors_free(struct os_flavors *f);
struct os_glance *os_glance_open(const char *data_dir, char *err, size_t errlen);
void os_glance_free(struct os_glance *g);
/* Frees the servers being deleted whose removal has not come yet (at the end). */
void os_deleting_free(struct osapi *o);
void os_acting_free(struct osapi *o);
/* The native image an imageRef names (a Glance id or name) among those who sees, or NULL. */
const char *os_glance_native_name(struct osapi *o, const struct os_principal *who, const char *image_ref, char *buf,
                                  size_t len);

#endif
