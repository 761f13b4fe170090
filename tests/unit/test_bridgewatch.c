/* test_bridgewatch — the rtnetlink link messages the node follows bridges by: parsing of
 * datagrams built here byte by byte (new, deleted, renamed bridges, other kinds, end of a
 * dump, several messages in one datagram, truncated and malformed ones), and the set of
 * bridges they change. Pure: no socket, no privilege. */
#include <net/if.h>
#include <errno.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node/bridgewatch.h"
#include "unit.h"

/* ---- building datagrams ---- */

struct dgram {
	_Alignas(struct nlmsghdr) char buf[4096];
	size_t len;
};

static void *put(struct dgram *d, size_t len)
{
	void *p = d->buf + d->len;
	memset(p, 0, NLMSG_ALIGN(len));
	d->len += NLMSG_ALIGN(len);
	return p;
}

static struct rtattr *attr(struct dgram *d, unsigned short type, const void *data, size_t len)
{
	struct rtattr *a = put(d, RTA_LENGTH(len));
	a->rta_type = type;
	a->rta_len = (unsigned short)RTA_LENGTH(len);
	if (data)
		memcpy(RTA_DATA(a), data, len);
	return a;
}

/* One RTM_NEWLINK/RTM_DELLINK; kind NULL: no IFLA_LINKINFO; name NULL: no IFLA_IFNAME. */
static void link_msg(struct dgram *d, unsigned short type, int ifindex, const char *name, const char *kind)
{
	size_t start = d->len;
	struct nlmsghdr *h = put(d, NLMSG_HDRLEN);
	struct ifinfomsg *ifi = put(d, sizeof *ifi);
	h->nlmsg_type = type;
	ifi->ifi_index = ifindex;
	if (name)
		attr(d, IFLA_IFNAME, name, strlen(name) + 1);
	attr(d, IFLA_MTU, &(uint32_t){1500}, 4);
	if (kind) {
		size_t info_at = d->len;
		attr(d, IFLA_LINKINFO, NULL, 0);
		attr(d, IFLA_INFO_KIND, kind, strlen(kind) + 1);
		((struct rtattr *)(d->buf + info_at))->rta_len = (unsigned short)(d->len - info_at);
	}
	h = (struct nlmsghdr *)(d->buf + start);
	h->nlmsg_len = (uint32_t)(d->len - start);
}

static void done_msg(struct dgram *d)
{
	struct nlmsghdr *h = put(d, NLMSG_LENGTH(sizeof(int)));
	h->nlmsg_type = NLMSG_DONE;
	h->nlmsg_len = NLMSG_LENGTH(sizeof(int));
}

/* ---- collecting events ---- */

struct got {
	int n;
	struct link_event ev[8];
};

static void collect(void *arg, const struct link_event *ev)
{
	struct got *g = arg;
	if (g->n < 8)
		g->ev[g->n++] = *ev;
}

static struct got parse(const struct dgram *d, int *rc)
{
	struct got g = {0};
	*rc = bridgewatch_parse(d->buf, d->len, collect, &g);
	return g;
}

/* ---- parsing ---- */

static void test_new_bridge(void)
{
	struct dgram d = {0};
	int rc;
	link_msg(&d, RTM_NEWLINK, 7, "br-late", "bridge");
	struct got g = parse(&d, &rc);
	CHECK_EQ_INT(rc, 0);
	CHECK_EQ_INT(g.n, 1);
	CHECK_EQ_INT(g.ev[0].type, LINK_NEW);
	CHECK_EQ_INT(g.ev[0].ifindex, 7);
	CHECK(g.ev[0].is_bridge);
	CHECK_STR(g.ev[0].name, "br-late");
}

static void test_other_kinds_and_no_linkinfo(void)
{
	struct dgram d = {0};
	int rc;
	link_msg(&d, RTM_NEWLINK, 3, "veth0", "veth");
	link_msg(&d, RTM_NEWLINK, 1, "lo", NULL);
	link_msg(&d, RTM_NEWLINK, 9, "bridgey", "bridge_slave_not"); /* only "bridge" is a bridge */
	struct got g = parse(&d, &rc);
	CHECK_EQ_INT(rc, 0);
	CHECK_EQ_INT(g.n, 3);
	CHECK(!g.ev[0].is_bridge && !g.ev[1].is_bridge && !g.ev[2].is_bridge);
	CHECK_STR(g.ev[1].name, "lo");
}

static void test_several_in_one_datagram_and_dump_end(void)
{
	struct dgram d = {0};
	int rc;
	link_msg(&d, RTM_NEWLINK, 4, "br0", "bridge");
	link_msg(&d, RTM_DELLINK, 5, "br1", "bridge");
	done_msg(&d);
	struct got g = parse(&d, &rc);
	CHECK_EQ_INT(rc, 0);
	CHECK_EQ_INT(g.n, 3);
	CHECK_EQ_INT(g.ev[1].type, LINK_DEL);
	CHECK_STR(g.ev[1].name, "br1");
	CHECK_EQ_INT(g.ev[2].type, LINK_DUMP_DONE);
}

static void test_other_message_types_skipped(void)
{
	struct dgram d = {0};
	int rc;
	struct nlmsghdr *h = put(&d, NLMSG_LENGTH(sizeof(struct ifaddrmsg)));
	h->nlmsg_type = RTM_NEWADDR;
	h->nlmsg_len = NLMSG_LENGTH(sizeof(struct ifaddrmsg));
	link_msg(&d, RTM_NEWLINK, 4, "br0", "bridge");
	struct got g = parse(&d, &rc);
	CHECK_EQ_INT(rc, 0);
	CHECK_EQ_INT(g.n, 1);
}

static void test_name_not_terminated_or_too_long(void)
{
	struct dgram d = {0};
	int rc;
	size_t start = d.len;
	struct nlmsghdr *h = put(&d, NLMSG_HDRLEN);
	put(&d, sizeof(struct ifinfomsg));
	attr(&d, IFLA_IFNAME, "abcd", 4); /* no NUL inside the attribute */
	h = (struct nlmsghdr *)(d.buf + start);
	h->nlmsg_type = RTM_NEWLINK;
	h->nlmsg_len = (uint32_t)(d.len - start);
	link_msg(&d, RTM_NEWLINK, 2, "a-name-of-20-chars!", "bridge"); /* > IFNAMSIZ - 1 */
	struct got g = parse(&d, &rc);
	CHECK_EQ_INT(rc, 0);
	CHECK_EQ_INT(g.n, 2);
	CHECK_STR(g.ev[0].name, "");
	CHECK_STR(g.ev[1].name, "");
}

static void test_malformed(void)
{
	struct dgram d = {0};
	int rc;
	struct got g;

	/* a header whose length runs past the datagram */
	link_msg(&d, RTM_NEWLINK, 4, "br0", "bridge");
	((struct nlmsghdr *)d.buf)->nlmsg_len += 64;
	g = parse(&d, &rc);
	CHECK_EQ_INT(rc, -EINVAL);
	CHECK_EQ_INT(g.n, 0);

	/* a link message too short for its ifinfomsg */
	memset(&d, 0, sizeof d);
	struct nlmsghdr *h = put(&d, NLMSG_HDRLEN + 4);
	h->nlmsg_type = RTM_NEWLINK;
	h->nlmsg_len = NLMSG_HDRLEN + 4;
	g = parse(&d, &rc);
	CHECK_EQ_INT(rc, -EINVAL);

	/* an attribute claiming more than the message has, after a good message */
	memset(&d, 0, sizeof d);
	link_msg(&d, RTM_NEWLINK, 4, "br0", "bridge");
	size_t second = d.len;
	link_msg(&d, RTM_NEWLINK, 5, "br1", "bridge");
	struct rtattr *first_attr = (struct rtattr *)(d.buf + second + NLMSG_HDRLEN + sizeof(struct ifinfomsg));
	first_attr->rta_len = 200;
	g = parse(&d, &rc);
	CHECK_EQ_INT(rc, -EINVAL);
	CHECK_EQ_INT(g.n, 1); /* the good one was delivered */

	/* a few stray bytes: not a message */
	memset(&d, 0, sizeof d);
	d.len = 3;
	g = parse(&d, &rc);
	CHECK_EQ_INT(rc, -EINVAL);
}

/* ---- the set ---- */

static struct link_event ev(enum link_event_type t, int ifindex, const char *name, bool bridge)
{
	struct link_event e = {.type = t, .ifindex = ifindex, .is_bridge = bridge};
	snprintf(e.name, sizeof e.name, "%s", name);
	return e;
}

static void test_set(void)
{
	struct bridge_set *s = calloc(1, sizeof *s);
	struct link_event e;
	CHECK(s != NULL);
	if (!s)
		return;
	e = ev(LINK_NEW, 4, "br0", true);
	CHECK(bridge_set_apply(s, &e));
	CHECK(!bridge_set_apply(s, &e)); /* the same again: a port attached, carrier, ... */
	CHECK_EQ_INT(s->n, 1);
	e = ev(LINK_NEW, 5, "veth0", false);
	CHECK(!bridge_set_apply(s, &e)); /* not a bridge */
	e = ev(LINK_DEL, 5, "veth0", false);
	CHECK(!bridge_set_apply(s, &e)); /* nor is its deletion news */
	e = ev(LINK_NEW, 4, "br-renamed", true);
	CHECK(bridge_set_apply(s, &e));
	CHECK_EQ_INT(s->n, 1);
	CHECK_STR(s->items[0].name, "br-renamed");
	e = ev(LINK_NEW, 6, "br1", true);
	CHECK(bridge_set_apply(s, &e));
	e = ev(LINK_DEL, 4, "br-renamed", true);
	CHECK(bridge_set_apply(s, &e));
	CHECK_EQ_INT(s->n, 1);
	CHECK_STR(s->items[0].name, "br1");
	e = ev(LINK_DEL, 4, "br-renamed", true);
	CHECK(!bridge_set_apply(s, &e)); /* gone already */
	e = ev(LINK_DUMP_DONE, 0, "", false);
	CHECK(!bridge_set_apply(s, &e));
	/* a bridge without a usable name is not kept */
	e = ev(LINK_NEW, 8, "", true);
	CHECK(!bridge_set_apply(s, &e));

	/* bounded */
	s->n = 0;
	for (int i = 0; i < BRIDGE_SET_MAX + 5; i++) {
		char name[16];
		snprintf(name, sizeof name, "b%d", i);
		e = ev(LINK_NEW, 100 + i, name, true);
		bridge_set_apply(s, &e);
	}
	CHECK_EQ_INT(s->n, BRIDGE_SET_MAX);
	free(s);
}

int main(void)
{
	RUN(test_new_bridge);
	RUN(test_other_kinds_and_no_linkinfo);
	RUN(test_several_in_one_datagram_and_dump_end);
	RUN(test_other_message_types_skipped);
	RUN(test_name_not_terminated_or_too_long);
	RUN(test_malformed);
	RUN(test_set);
	UNIT_END();
}
