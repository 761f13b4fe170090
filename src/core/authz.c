/* authz — roles, the permission table, visibility and quotas (authz.h). */
#include "core/authz.h"

#include <stdio.h>
#include <string.h>

const char *const authz_role_names[ROLE_COUNT] = {
	[ROLE_READER] = "reader",
	[ROLE_MEMBER] = "member",
	[ROLE_ADMIN] = "admin",
};

/* The whole policy: one row per role, one column per action. */
static const bool permitted[ROLE_COUNT][ACTION_COUNT] = {
	[ROLE_READER] = {[ACTION_READ] = true},
	[ROLE_MEMBER] = {[ACTION_READ] = true, [ACTION_WRITE] = true},
	[ROLE_ADMIN] = {[ACTION_READ] = true, [ACTION_WRITE] = true, [ACTION_ADMIN] = true},
};

int authz_role_parse(const char *s)
{
	for (int r = 0; r < ROLE_COUNT; r++)
		if (s && strcmp(s, authz_role_names[r]) == 0)
			return r;
	return -1;
}

void authz_principal_admin(struct authz_principal *p, enum authz_kind kind)
{
	*p = (struct authz_principal){.kind = kind, .role = ROLE_ADMIN};
	snprintf(p->project, sizeof p->project, "%s", AUTHZ_ADMIN_PROJECT);
}

bool authz_allows(enum authz_role role, enum authz_action action)
{
	return (unsigned)role < ROLE_COUNT && (unsigned)action < ACTION_COUNT && permitted[role][action];
}

bool authz_sees(const struct authz_principal *p, const char *project)
{
	return authz_allows(p->role, ACTION_ADMIN) || strcmp(p->project, project) == 0;
}

bool authz_is_node(const struct authz_principal *p) { return p->kind == AUTHZ_JOIN || p->kind == AUTHZ_NODE; }

int authz_node_register_check(const struct authz_principal *who, const char *node_id, bool has_credential,
                              bool revoked, struct mv_error *err)
{
	if (revoked)
		return mv_fail(err, 403, "node_revoked", "node %s was revoked (microvim nodes revoke): it may not register "
		               "again; to bring the host back, remove its DATA_DIR/node-id and node.credential and join "
		               "with a new join token", node_id);
	if (who->kind == AUTHZ_NODE && strcmp(who->node_id, node_id) != 0)
		return mv_fail(err, 403, "node_mismatch", "this credential is node %s's: it may not register as node %s",
		               who->node_id, node_id);
	if (who->kind == AUTHZ_JOIN && has_credential)
		return mv_fail(err, 403, "node_id_taken", "node %s has its own credential already: register with it "
		               "(DATA_DIR/node.credential), not with a join token", node_id);
	return 0;
}

int authz_node_route_check(const struct authz_principal *who, const char *node_id, struct mv_error *err)
{
	if (who->kind == AUTHZ_JOIN)
		return mv_fail(err, 403, "forbidden", "a join token only registers a node (POST /v1/nodes/register); "
		               "use the credential the registration gave");
	if (who->kind == AUTHZ_NODE && strcmp(who->node_id, node_id) != 0)
		return mv_fail(err, 403, "node_mismatch", "this credential is node %s's: it may not act as node %.64s",
		               who->node_id, node_id);
	return 0;
}

static bool over(int64_t limit, int64_t used, int64_t want)
{
	return limit != AUTHZ_UNLIMITED && want > 0 && used + want > limit;
}

int authz_quota_check(const char *project, const struct authz_quota *limits, const struct authz_quota *usage,
                      const struct authz_quota *want, struct mv_error *err)
{
	static const char *const what[] = {"instances", "vcpus", "memory_mb"};
	int64_t l[] = {limits->instances, limits->vcpus_milli, limits->memory_mb};
	int64_t u[] = {usage->instances, usage->vcpus_milli, usage->memory_mb};
	int64_t w[] = {want->instances, want->vcpus_milli, want->memory_mb};
	for (int i = 0; i < 3; i++) {
		if (!over(l[i], u[i], w[i]))
			continue;
		if (i == 1) /* vCPUs are kept in thousandths */
			return mv_fail(err, 403, "quota_exceeded",
			               "quota exceeded for vcpus in project %s: limit %g, usage %g, requested %g",
			               project, l[i] / 1000.0, u[i] / 1000.0, w[i] / 1000.0);
		return mv_fail(err, 403, "quota_exceeded",
		               "quota exceeded for %s in project %s: limit %lld, usage %lld, requested %lld", what[i],
		               project, (long long)l[i], (long long)u[i], (long long)w[i]);
	}
	return 0;
}
