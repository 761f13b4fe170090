/* openstack — the client side of OpenStack that `microvim push --api openstack` needs, done
 * as the openstack CLI (openstacksdk, keystoneauth) does it:
 *
 *   credentials   the OS_* variables, or a cloud of clouds.yaml (--os-cloud NAME, or
 *                 $OS_CLOUD), looked for where openstacksdk looks: ./clouds.yaml,
 *                 $OS_CLIENT_CONFIG_FILE, ~/.config/openstack/clouds.yaml,
 *                 /etc/openstack/clouds.yaml (secure.yaml is not read)
 *   Keystone v3   password authentication scoped to a project: the token (X-Subject-Token)
 *                 and the service catalog
 *   endpoints     a service's URL from the catalog by type, interface (public unless
 *                 OS_INTERFACE / interface says otherwise) and region
 *   requests      synchronous, for the set-up only (name -> id look-ups); push's own
 *                 requests run on its event loop
 *
 * Only http:// endpoints (no TLS in this build): an https URL is refused with a message. */
#ifndef MICROVIM_OPENSTACK_H
#define MICROVIM_OPENSTACK_H

#include <jansson.h>
#include <stddef.h>

#define OS_FIELD 256

struct os_creds {
	char auth_url[512];
	char username[OS_FIELD], user_id[OS_FIELD], password[OS_FIELD];
	char project_name[OS_FIELD], project_id[OS_FIELD];
	char user_domain_name[OS_FIELD], user_domain_id[OS_FIELD];
	char project_domain_name[OS_FIELD], project_domain_id[OS_FIELD];
	char region[OS_FIELD];
	char interface[32];
	char source[600]; /* where they came from, for messages: "OS_* variables", "cloud X of FILE" */
};

/* From the OS_* variables (OS_AUTH_URL, OS_USERNAME or OS_USER_ID, OS_PASSWORD,
 * OS_PROJECT_NAME or OS_PROJECT_ID (OS_TENANT_NAME too), OS_USER_DOMAIN_NAME/_ID,
 * OS_PROJECT_DOMAIN_NAME/_ID, OS_REGION_NAME, OS_INTERFACE). 0, or -EINVAL naming what is
 * missing. Domains default to "Default", as devstack's and Debian's set-ups name them. */
int os_creds_from_env(struct os_creds *c, char *err, size_t errlen);
/* Cloud `cloud` of the clouds.yaml found as above. 0, -ENOENT (no clouds.yaml), -EINVAL. */
int os_creds_from_cloud(struct os_creds *c, const char *cloud, char *err, size_t errlen);
/* The same from the text of a clouds.yaml (source names it in messages). */
int os_creds_from_clouds_yaml(struct os_creds *c, const char *text, const char *source, const char *cloud, char *err,
                              size_t errlen);

/* The subset of YAML that clouds.yaml files use: block mappings and sequences by
 * indentation (spaces), plain, 'single' and "double" quoted scalars, [flow, sequences] of
 * scalars, comments, a leading "---". Scalars become JSON strings (numbers and booleans
 * too), an empty value "". Anchors, tags, multi-line scalars and flow mappings are refused
 * with the line. 0 with *out, or -EINVAL with "line N: why" in err. */
int yaml_mini_parse(const char *text, json_t **out, char *err, size_t errlen);

struct os_session {
	char token[2048];
	json_t *catalog; /* the token's "catalog" array */
};

/* Authenticates (POST {auth_url}/v3/auth/tokens). 0; -ECONNREFUSED when Keystone does
 * not answer; -EACCES when it refuses the credentials; -EINVAL otherwise; with a sentence
 * in err. */
int os_authenticate(const struct os_creds *c, struct os_session *s, char *err, size_t errlen);
void os_session_free(struct os_session *s);

/* The URL of service `type` from a catalog: the endpoint of `interface` (public when NULL
 * or "") in `region` (any when NULL or ""). 0, or -ENOENT with what there is in err. */
int os_catalog_url(const json_t *catalog, const char *type, const char *interface, const char *region, char *url,
                   size_t len, char *err, size_t errlen);

/* "http://host:port/prefix" -> host, port (80 by default), the path prefix without a final
 * "/" ("" for none). 0 or -EINVAL (not http://, bad port). */
int os_url_split(const char *url, char *host, size_t hostlen, int *port, char *prefix, size_t prefixlen);

struct os_response {
	int status;
	json_t *body;        /* NULL when empty or not JSON */
	char subject_token[2048];
};

/* One synchronous request to url (http://host:port/path?query) with the token (may be
 * NULL) and extra headers (NULL-terminated name/value pairs). 0 once any answer came; -1
 * with err otherwise. */
int os_request(const char *url, const char *method, const char *token, const char *const *headers, const json_t *body,
               double timeout_s, struct os_response *r, char *err, size_t errlen);
void os_response_free(struct os_response *r);

/* The error message OpenStack APIs put in their bodies ({"badRequest": {"message": M}},
 * {"error": {"message": M}}, {"NeutronError": {"message": M}}, {"message": M}), or NULL. */
const char *os_error_message(const json_t *body);

#endif
