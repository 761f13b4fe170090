/* os_network — Neutron v2.0, the minimum a server create needs: the networks. A network
 * is a bridge some node advertises (node --bridge); its id is derived from the bridge's
 * name (os_uuid_of), and a server asking for it joins that bridge (its instance's
 * network.bridge, placed on a node that has it). Subnets, ports and security groups list
 * empty: microvim gives guests a tap on the bridge, not addresses. */
#include "core/os.h"

#include <stdio.h>
#include <string.h>

#include "common/http.h"
#include "core/api.h"
#include "core/cluster.h"

void os_network_root(struct osapi *o, struct os_req *r)
{
	char href[256];
	snprintf(href, sizeof href, "%s/network/v2.0/", o->url);
	http_reply_json(r->req, 200, json_pack("{s:[{s:s, s:s, s:[{s:s, s:s}]}]}", "versions", "id", "v2.0", "status",
	                                       "CURRENT", "links", "rel", "self", "href", href));
}

void os_network_v20(struct osapi *o, struct os_req *r)
{
	char href[256];
	snprintf(href, sizeof href, "%s/network/v2.0/", o->url);
	http_reply_json(r->req, 200, json_pack("{s:[{s:s, s:s, s:[{s:s, s:s}]}]}", "resources", "name", "network",
	                                       "collection", "networks", "links", "rel", "self", "href", href));
}

static json_t *network_json(const struct os_req *r, const char *bridge, const char *id)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:b, s:b, s:b, s:[], s:s, s:i, s:[s], s:b}", "id", id, "name", bridge,
	                 "status", "ACTIVE", "tenant_id", r->who.project_id, "project_id", r->who.project_id,
	                 "admin_state_up", true, "shared", true, "router:external", false, "subnets",
	                 "provider:network_type", "flat", "mtu", 1500, "availability_zones", "nova",
	                 "port_security_enabled", false);
}

/* Each bridge once, in the order the nodes list them; fn(arg, bridge, id) for each. */
static void bridges_foreach(struct osapi *o, void (*fn)(void *arg, const char *bridge, const char *id), void *arg)
{
	json_t *seen = json_object();
	for (int i = 0; i < cluster_node_count(o->native->cluster); i++) {
		const struct node *n = cluster_node_at(o->native->cluster, i);
		size_t k;
		json_t *b;
		json_array_foreach(n->bridges, k, b) {
			char id[OS_UUID_LEN + 1];
			if (!json_is_string(b) || json_object_get(seen, json_string_value(b)))
				continue;
			json_object_set_new(seen, json_string_value(b), json_true());
			os_uuid_of("network", json_string_value(b), id);
			fn(arg, json_string_value(b), id);
		}
	}
	json_decref(seen);
}

struct net_list {
	const struct os_req *r;
	char name[64], id[64];
	json_t *list;
};

static void list_one(void *arg, const char *bridge, const char *id)
{
	struct net_list *l = arg;
	if ((l->name[0] && strcmp(l->name, bridge) != 0) || (l->id[0] && strcmp(l->id, id) != 0))
		return;
	json_array_append_new(l->list, network_json(l->r, bridge, id));
}

void os_networks_list(struct osapi *o, struct os_req *r)
{
	struct net_list l = {.r = r, .list = json_array()};
	http_query(r->req, "name", l.name, sizeof l.name);
	http_query(r->req, "id", l.id, sizeof l.id);
	bridges_foreach(o, list_one, &l);
	http_reply_json(r->req, 200, json_pack("{s:o}", "networks", l.list));
}

void os_network_show(struct osapi *o, struct os_req *r)
{
	struct net_list l = {.r = r, .list = json_array()};
	struct mv_error err;
	snprintf(l.id, sizeof l.id, "%s", r->id);
	bridges_foreach(o, list_one, &l);
	if (json_array_size(l.list) == 0) {
		json_decref(l.list);
		mv_fail(&err, 404, "not_found", "Network %.64s could not be found.", r->id);
		os_reply_error(r->req, OS_NETWORK, &err);
		return;
	}
	http_reply_json(r->req, 200, json_pack("{s:O}", "network", json_array_get(l.list, 0)));
	json_decref(l.list);
}

void os_network_empty_list(UNUSED struct osapi *o, struct os_req *r)
{
	const char *path = http_path(r->req), *last = strrchr(path, '/');
	char key[32];
	snprintf(key, sizeof key, "%s", last && last[1] ? last + 1 : "items");
	if (strcmp(key, "security-groups") == 0)
		snprintf(key, sizeof key, "security_groups");
	http_reply_json(r->req, 200, json_pack("{s:[]}", key));
}
