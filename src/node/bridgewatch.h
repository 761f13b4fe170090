/* bridgewatch — follows the host's bridges while the node runs, so that a bridge made or
 * deleted after the node started reaches the core (which places network.bridge instances
 * only on nodes that have the bridge).
 *
 * An rtnetlink socket subscribed to link changes (RTMGRP_LINK) is read on the node's event
 * loop: no polling. It keeps the set of bridges as (ifindex, name), filled by a dump at
 * start and then changed by RTM_NEWLINK / RTM_DELLINK messages whose IFLA_INFO_KIND is
 * "bridge" (a rename keeps the ifindex). The many link messages about a bridge that does
 * not change as a set member (a port attached, carrier up) change nothing and cost only
 * their parsing. When the kernel had to drop notifications (ENOBUFS: the socket's buffer
 * overflowed), the set is read again by a dump. on_change(arg) runs on the loop when the
 * set of names may have changed: after each dump, and after each message that changed it.
 * Needs no privilege. */
#ifndef MICROVIM_BRIDGEWATCH_H
#define MICROVIM_BRIDGEWATCH_H

#include <event2/event.h>
#include <stdbool.h>
#include <stddef.h>

#include "node/netdev.h"

struct bridgewatch;

/* NULL with -errno in *err when the socket cannot be had (the node then advertises its
 * bridges at registration only, and says so). */
struct bridgewatch *bridgewatch_new(struct event_base *base, void (*on_change)(void *arg), void *arg, int *err);
void bridgewatch_free(struct bridgewatch *w);

/* ---- the parts, public for the unit tests ---- */

enum link_event_type { LINK_NEW, LINK_DEL, LINK_DUMP_DONE };

struct link_event {
	enum link_event_type type;
	int ifindex;
	bool is_bridge;                    /* IFLA_LINKINFO / IFLA_INFO_KIND is "bridge" */
	char name[NETDEV_NAME_MAX + 1];    /* IFLA_IFNAME; "" when absent or too long */
};

/* Calls fn(arg, ev) for each link message (RTM_NEWLINK, RTM_DELLINK) in one datagram read
 * from the socket, and for the end of a dump (NLMSG_DONE, or an NLMSG_ERROR answering the
 * dump). Other messages are skipped. 0, or -EINVAL at the first malformed message or
 * attribute (what came before it was delivered). */
int bridgewatch_parse(const void *buf, size_t len, void (*fn)(void *arg, const struct link_event *ev), void *arg);

#define BRIDGE_SET_MAX 1024 /* as many as a registration may carry (WIRE_BRIDGES_MAX) */

struct bridge_set {
	int n;
	struct {
		int ifindex;
		char name[NETDEV_NAME_MAX + 1];
	} items[BRIDGE_SET_MAX];
};

/* Applies one link event; true when the set of bridge names changed. A bridge past
 * BRIDGE_SET_MAX is not kept (and the core would refuse it anyway). */
bool bridge_set_apply(struct bridge_set *s, const struct link_event *ev);

#endif
