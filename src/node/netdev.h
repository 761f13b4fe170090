/* netdev — the network phase: bridges, taps and veth pairs made with ioctl and netlink
 * (no `ip` or `brctl` processes on the instantiation path), network namespaces made the
 * way `ip netns add` makes them (a bind mount under /run/netns). All functions return 0
 * or -errno; they need CAP_NET_ADMIN (CAP_SYS_ADMIN for namespaces). Safe to call from
 * worker threads: namespace work is confined to the calling thread and undone before
 * returning. */
#ifndef MICROVIM_NETDEV_H
#define MICROVIM_NETDEV_H

#include <stdbool.h>

#define NETDEV_NAME_MAX 15 /* IFNAMSIZ - 1 */

bool netdev_exists(const char *name);
bool netdev_is_bridge(const char *name);
/* Creates a bridge and sets it up; existing bridge: 0. */
int netdev_bridge_create(const char *name);
/* Names of the bridges on this host, as a NULL-terminated malloc'd array (free with
 * netdev_list_free). */
int netdev_bridges(char ***names);
void netdev_list_free(char **names);

/* A persistent tap named `name`, attached to `bridge` and up (qemu opens it by name). */
int netdev_tap_create(const char *name, const char *bridge);

/* A network namespace /run/netns/NAME (created empty, lo up). */
int netdev_netns_create(const char *name);
int netdev_netns_delete(const char *name);
/* "/run/netns/NAME" into buf. */
void netdev_netns_path(const char *name, char *buf, int len);

/* A veth pair: `host` attached to `bridge` and up; `peer` moved into netns `netns` and
 * renamed there to `inner` (e.g. "eth0"), up. */
int netdev_veth_create(const char *host, const char *bridge, const char *netns, const char *inner);

/* Deletes an interface (tap, veth end, bridge); missing is not an error. */
int netdev_delete(const char *name);

#endif
