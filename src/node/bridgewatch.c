/* bridgewatch — see bridgewatch.h. */
#include "node/bridgewatch.h"

#include <errno.h>
#include <net/if.h> /* before the linux/ headers: glibc and uapi agree on struct ifreq */
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"

#define WATCH_RCVBUF (1 << 20) /* room for a burst of link changes (many instances at once) */
#define WATCH_READ_MAX 32768   /* the kernel puts at most 32 KiB in one dump datagram */
#define DUMP_SEQ 1

struct bridgewatch {
	int fd;
	struct event *ev;
	struct bridge_set set;
	bool dumping, dump_again; /* a dump is under way; another one is owed after it */
	uint32_t seq;
	void (*on_change)(void *arg);
	void *arg;
};

/* ---- parsing ---- */

/* The string of a string attribute, or "" when it is not one that fits `out`. */
static void attr_string(const struct rtattr *a, char *out, size_t outlen)
{
	size_t len = RTA_PAYLOAD(a);
	const char *s = RTA_DATA(a);
	size_t n = strnlen(s, len);
	out[0] = '\0';
	if (n < len && n < outlen) /* NUL-terminated inside the attribute, and fits */
		memcpy(out, s, n + 1);
}

static bool linkinfo_is_bridge(const struct rtattr *info)
{
	char kind[16];
	int len = (int)RTA_PAYLOAD(info);
	for (const struct rtattr *a = RTA_DATA(info); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
		if (a->rta_type == IFLA_INFO_KIND) {
			attr_string(a, kind, sizeof kind);
			return strcmp(kind, "bridge") == 0;
		}
	}
	return false;
}

static int parse_link(const struct nlmsghdr *h, struct link_event *ev)
{
	const struct ifinfomsg *ifi = NLMSG_DATA(h);
	int len;
	if (h->nlmsg_len < NLMSG_LENGTH(sizeof *ifi))
		return -EINVAL;
	*ev = (struct link_event){.type = h->nlmsg_type == RTM_NEWLINK ? LINK_NEW : LINK_DEL, .ifindex = ifi->ifi_index};
	len = (int)(h->nlmsg_len - NLMSG_LENGTH(sizeof *ifi));
	for (const struct rtattr *a = IFLA_RTA(ifi); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
		if (a->rta_type == IFLA_IFNAME)
			attr_string(a, ev->name, sizeof ev->name);
		else if (a->rta_type == IFLA_LINKINFO)
			ev->is_bridge = linkinfo_is_bridge(a);
	}
	/* RTA_OK stops at a truncated attribute: what is left must be padding only */
	return len >= (int)sizeof(struct rtattr) ? -EINVAL : 0;
}

int bridgewatch_parse(const void *buf, size_t len, void (*fn)(void *arg, const struct link_event *ev), void *arg)
{
	int left = len > INT32_MAX ? INT32_MAX : (int)len;
	for (const struct nlmsghdr *h = buf; left > 0; h = NLMSG_NEXT(h, left)) {
		struct link_event ev;
		if (!NLMSG_OK(h, left))
			return -EINVAL;
		switch (h->nlmsg_type) {
		case RTM_NEWLINK:
		case RTM_DELLINK:
			if (parse_link(h, &ev) < 0)
				return -EINVAL;
			fn(arg, &ev);
			break;
		case NLMSG_DONE:
		case NLMSG_ERROR: /* only a dump is ever asked on this socket: it ended */
			ev = (struct link_event){.type = LINK_DUMP_DONE};
			fn(arg, &ev);
			break;
		default: break;
		}
	}
	return 0;
}

/* ---- the set ---- */

static int set_find(const struct bridge_set *s, int ifindex)
{
	for (int i = 0; i < s->n; i++)
		if (s->items[i].ifindex == ifindex)
			return i;
	return -1;
}

static bool set_remove(struct bridge_set *s, int i)
{
	if (i < 0)
		return false;
	s->items[i] = s->items[--s->n];
	return true;
}

bool bridge_set_apply(struct bridge_set *s, const struct link_event *ev)
{
	int i = set_find(s, ev->ifindex);
	if (ev->type == LINK_DUMP_DONE)
		return false;
	/* deleted, moved to another namespace, or (never seen) no longer a bridge */
	if (ev->type == LINK_DEL || !ev->is_bridge || !ev->name[0])
		return set_remove(s, i);
	if (i >= 0) {
		if (strcmp(s->items[i].name, ev->name) == 0)
			return false;
		memcpy(s->items[i].name, ev->name, sizeof s->items[i].name); /* renamed */
		return true;
	}
	if (s->n >= BRIDGE_SET_MAX)
		return false;
	s->items[s->n].ifindex = ev->ifindex;
	memcpy(s->items[s->n].name, ev->name, sizeof s->items[s->n].name);
	s->n++;
	return true;
}

/* ---- the socket ---- */

/* Asks the kernel for every bridge (filtered on its side by IFLA_INFO_KIND, as netdev's
 * list is); the answers are RTM_NEWLINK messages read like the notifications. */
static int dump_request(struct bridgewatch *w)
{
	struct {
		struct nlmsghdr h;
		struct ifinfomsg ifi;
		struct rtattr info;
		struct rtattr kind;
		char kind_name[8];
	} req;
	struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
	memset(&req, 0, sizeof req);
	req.h.nlmsg_len = sizeof req;
	req.h.nlmsg_type = RTM_GETLINK;
	req.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	req.h.nlmsg_seq = ++w->seq;
	req.ifi.ifi_family = AF_UNSPEC;
	req.info.rta_type = IFLA_LINKINFO;
	req.info.rta_len = (unsigned short)(sizeof req.info + sizeof req.kind + sizeof req.kind_name);
	req.kind.rta_type = IFLA_INFO_KIND;
	req.kind.rta_len = (unsigned short)(RTA_LENGTH(sizeof "bridge"));
	memcpy(req.kind_name, "bridge", sizeof "bridge");
	if (sendto(w->fd, &req, sizeof req, 0, (struct sockaddr *)&kernel, sizeof kernel) < 0)
		return -errno;
	w->dumping = true;
	w->set.n = 0; /* the dump says what is there now */
	return 0;
}

static void on_event(void *arg, const struct link_event *ev)
{
	struct bridgewatch *w = arg;
	if (ev->type == LINK_DUMP_DONE) {
		if (!w->dumping)
			return;
		w->dumping = false;
		if (w->dump_again && dump_request(w) == 0) {
			w->dump_again = false;
			return;
		}
		w->on_change(w->arg);
		return;
	}
	if (bridge_set_apply(&w->set, ev) && !w->dumping)
		w->on_change(w->arg);
}

static void resync(struct bridgewatch *w)
{
	int rc;
	if (w->dumping) {
		w->dump_again = true;
		return;
	}
	if ((rc = dump_request(w)) < 0)
		log_warnx("bridge changes: cannot ask for the bridges again: %s", strerror(-rc));
}

static void on_readable(UNUSED evutil_socket_t fd, UNUSED short what, void *arg)
{
	struct bridgewatch *w = arg;
	_Alignas(struct nlmsghdr) char buf[WATCH_READ_MAX];
	for (int i = 0; i < 64; i++) { /* bounded: the loop has other work */
		ssize_t n = recv(w->fd, buf, sizeof buf, MSG_DONTWAIT);
		if (n < 0) {
			if (errno == ENOBUFS) { /* notifications were dropped: read the set again */
				log_info("bridge changes: the kernel dropped link notifications; reading the bridges again");
				resync(w);
				continue;
			}
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
				log_warn("bridge changes: recv");
			return;
		}
		if (bridgewatch_parse(buf, (size_t)n, on_event, w) < 0) {
			log_warnx("bridge changes: a malformed rtnetlink message; reading the bridges again");
			resync(w);
		}
	}
}

struct bridgewatch *bridgewatch_new(struct event_base *base, void (*on_change)(void *arg), void *arg, int *err)
{
	struct sockaddr_nl local = {.nl_family = AF_NETLINK, .nl_groups = RTMGRP_LINK};
	int rcvbuf = WATCH_RCVBUF;
	struct bridgewatch *w = calloc(1, sizeof *w);
	if (!w)
		fatal("calloc");
	w->on_change = on_change;
	w->arg = arg;
	w->fd = socket(AF_NETLINK, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, NETLINK_ROUTE);
	if (w->fd < 0)
		goto fail;
	/* best effort: without it the default buffer holds fewer notifications before ENOBUFS */
	(void)setsockopt(w->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
	if (bind(w->fd, (struct sockaddr *)&local, sizeof local) < 0)
		goto fail;
	if ((*err = dump_request(w)) < 0) {
		errno = -*err;
		goto fail;
	}
	w->ev = event_new(base, w->fd, EV_READ | EV_PERSIST, on_readable, w);
	if (!w->ev || event_add(w->ev, NULL) < 0) {
		errno = ENOMEM;
		goto fail;
	}
	*err = 0;
	return w;
fail:
	*err = -errno;
	bridgewatch_free(w);
	return NULL;
}

void bridgewatch_free(struct bridgewatch *w)
{
	if (!w)
		return;
	if (w->ev)
		event_free(w->ev);
	if (w->fd >= 0)
		close(w->fd);
	free(w);
}
