/* netdev — bridges, taps, veth pairs and network namespaces, made with rtnetlink, the
 * tun ioctls and mount(2): no `ip`, `brctl` or shell on this path.
 *
 * Netlink requests are built in a fixed buffer (struct nlreq) with rtattr nesting; an
 * attribute that does not fit makes the request fail with -EMSGSIZE when it is sent.
 * Every request asks for an ACK and the answer is read into a bounded buffer.
 *
 * Namespaces: a veth peer is created directly inside its namespace under its inner name
 * (IFLA_IFNAME and IFLA_NET_NS_FD in VETH_INFO_PEER). Work inside a namespace goes through
 * a netlink socket opened there: the calling thread switches its network namespace only
 * around socket() (and, in netdev_netns_create, around unshare and the bind mount), and
 * ns_restore puts it back on every path. */
#include "node/netdev.h"

#include <errno.h>
#include <fcntl.h>
#include <net/if.h> /* before the linux/ headers: glibc and uapi agree on struct ifreq */
#include <linux/if_link.h>
#include <linux/if_tun.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "common/log.h"

#define NETNS_RUN_DIR "/run/netns"
#define NETNS_NAME_MAX 200
#define NL_REQ_MAX 2048     /* our largest request (veth) is < 200 bytes */
#define NL_ACK_MAX 8192     /* ACKs are small (NETLINK_CAP_ACK); one link is a few KiB */
#define NL_DUMP_MAX 32768   /* the kernel never puts more than 32 KiB in one dump read */
#define NL_TIMEOUT_S 5

/* ---- names ---- */

static bool ifname_ok(const char *name)
{
	if (!name)
		return false;
	size_t n = strnlen(name, NETDEV_NAME_MAX + 1);
	if (n == 0 || n > NETDEV_NAME_MAX || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)name[i];
		if (c <= ' ' || c == '/' || c == ':' || c >= 0x7f)
			return false;
	}
	return true;
}

static bool netns_name_ok(const char *name)
{
	if (!name)
		return false;
	size_t n = strnlen(name, NETNS_NAME_MAX + 1);
	if (n == 0 || n > NETNS_NAME_MAX || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)name[i];
		if (c <= ' ' || c == '/' || c >= 0x7f)
			return false;
	}
	return true;
}

static int netns_path(const char *name, char *buf, size_t len)
{
	if (!netns_name_ok(name))
		return -EINVAL;
	int n = snprintf(buf, len, NETNS_RUN_DIR "/%s", name);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

void netdev_netns_path(const char *name, char *buf, int len)
{
	if (!buf || len <= 0)
		return;
	int n = snprintf(buf, (size_t)len, NETNS_RUN_DIR "/%s", name ? name : "");
	if (n < 0)
		buf[0] = '\0';
}

/* ---- netlink requests ---- */

/* A request: its header, and the body (family header and attributes) after it; sent as
 * one datagram. nlmsg_len is set when it is sent. */
struct nlreq {
	struct nlmsghdr hdr;
	_Alignas(NLMSG_ALIGNTO) char body[NL_REQ_MAX];
	size_t len; /* of body */
	bool overflow;
};

static void nl_init(struct nlreq *r, uint16_t type, uint16_t flags)
{
	memset(r, 0, sizeof(*r));
	r->hdr.nlmsg_type = type;
	r->hdr.nlmsg_flags = NLM_F_REQUEST | flags;
}

/* Appends `len` bytes at the aligned end of the message; NULL when it does not fit. */
static void *nl_reserve(struct nlreq *r, size_t len)
{
	size_t off = NLMSG_ALIGN(r->len);
	if (r->overflow || len > sizeof(r->body) || off > sizeof(r->body) - NLMSG_ALIGN(len)) {
		r->overflow = true;
		return NULL;
	}
	char *p = r->body + off;
	memset(p, 0, NLMSG_ALIGN(len));
	r->len = off + len;
	return p;
}

static void nl_put_raw(struct nlreq *r, const void *data, size_t len)
{
	void *p = nl_reserve(r, len);
	if (p)
		memcpy(p, data, len);
}

static void nl_put(struct nlreq *r, unsigned short type, const void *data, size_t len)
{
	struct rtattr *rta = nl_reserve(r, RTA_LENGTH(len));
	if (!rta)
		return;
	rta->rta_type = type;
	rta->rta_len = (unsigned short)RTA_LENGTH(len);
	if (len)
		memcpy(RTA_DATA(rta), data, len);
}

static void nl_put_str(struct nlreq *r, unsigned short type, const char *s)
{
	nl_put(r, type, s, strlen(s) + 1);
}

static void nl_put_u32(struct nlreq *r, unsigned short type, uint32_t v)
{
	nl_put(r, type, &v, sizeof(v));
}

static struct rtattr *nl_nest_begin(struct nlreq *r, unsigned short type)
{
	struct rtattr *rta = nl_reserve(r, RTA_LENGTH(0));
	if (rta) {
		rta->rta_type = type;
		rta->rta_len = RTA_LENGTH(0);
	}
	return rta;
}

static void nl_nest_end(struct nlreq *r, struct rtattr *nest)
{
	if (!nest || r->overflow)
		return;
	nest->rta_len = (unsigned short)(r->body + r->len - (char *)nest);
}

static void nl_put_ifinfo(struct nlreq *r, int index, unsigned flags, unsigned change)
{
	struct ifinfomsg ifi = {.ifi_family = AF_UNSPEC, .ifi_index = index, .ifi_flags = flags,
	                        .ifi_change = change};
	nl_put_raw(r, &ifi, sizeof(ifi));
}

/* ---- netlink socket ---- */

struct nlsock {
	int fd;
	uint32_t seq;
};

static int nl_open(struct nlsock *s)
{
	s->seq = 0;
	s->fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	if (s->fd < 0)
		return -errno;
	int one = 1;
	struct timeval tv = {.tv_sec = NL_TIMEOUT_S};
	/* CAP_ACK: error messages do not echo our request back, so ACKs stay small. */
	(void)setsockopt(s->fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one));
	if (setsockopt(s->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0) {
		int err = -errno;
		close(s->fd);
		s->fd = -1;
		return err;
	}
	return 0;
}

static void nl_close(struct nlsock *s)
{
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
}

static int nl_send(struct nlsock *s, struct nlreq *r)
{
	if (r->overflow)
		return -EMSGSIZE;
	r->hdr.nlmsg_seq = ++s->seq;
	r->hdr.nlmsg_len = (uint32_t)NLMSG_LENGTH(r->len);
	struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
	struct iovec iov[2] = {{.iov_base = &r->hdr, .iov_len = NLMSG_HDRLEN},
	                       {.iov_base = r->body, .iov_len = r->len}};
	struct msghdr msg = {.msg_name = &kernel, .msg_namelen = sizeof(kernel), .msg_iov = iov,
	                     .msg_iovlen = 2};
	ssize_t n;
	do
		n = sendmsg(s->fd, &msg, 0);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	return (size_t)n == r->hdr.nlmsg_len ? 0 : -EIO;
}

static ssize_t nl_recv(struct nlsock *s, void *buf, size_t len)
{
	struct sockaddr_nl from;
	struct iovec iov = {.iov_base = buf, .iov_len = len};
	struct msghdr msg = {.msg_name = &from, .msg_namelen = sizeof(from), .msg_iov = &iov,
	                     .msg_iovlen = 1};
	ssize_t n;
	do
		n = recvmsg(s->fd, &msg, 0);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK ? -ETIMEDOUT : -errno;
	if (msg.msg_flags & MSG_TRUNC)
		return -EMSGSIZE;
	if (from.nl_pid != 0)
		return 0; /* not from the kernel: ignore */
	return n;
}

/* Calls `each` for every message answering request `seq` until the ACK (NLMSG_ERROR),
 * the end of a dump (NLMSG_DONE) or an error. `each` returns 0 to go on, or -errno. */
typedef int (*nl_each_fn)(const struct nlmsghdr *h, void *arg);

static int nl_read(struct nlsock *s, size_t bufsize, nl_each_fn each, void *arg)
{
	char *buf = malloc(bufsize);
	if (!buf)
		return -ENOMEM;
	int rc = 1; /* 1: not finished */
	while (rc == 1) {
		ssize_t n = nl_recv(s, buf, bufsize);
		if (n < 0) {
			rc = (int)n;
			break;
		}
		size_t left = (size_t)n;
		for (struct nlmsghdr *h = (struct nlmsghdr *)buf; rc == 1 && NLMSG_OK(h, left);
		     h = NLMSG_NEXT(h, left)) {
			if (h->nlmsg_seq != s->seq)
				continue; /* stale answer to an earlier request */
			if (h->nlmsg_type == NLMSG_DONE) {
				rc = 0;
			} else if (h->nlmsg_type == NLMSG_ERROR) {
				const struct nlmsgerr *e = NLMSG_DATA(h);
				if (h->nlmsg_len < NLMSG_LENGTH(sizeof(*e)))
					rc = -EIO;
				else
					rc = e->error <= 0 ? e->error : -EIO;
			} else if (h->nlmsg_type >= NLMSG_MIN_TYPE && each) {
				int r = each(h, arg);
				if (r < 0)
					rc = r;
			}
		}
	}
	free(buf);
	return rc;
}

/* Sends a request asking for an ACK, passes the answers (if any) to `each` and waits
 * for the ACK, or the end of a dump: 0 or -errno. */
static int nl_call(struct nlsock *s, struct nlreq *r, size_t bufsize, nl_each_fn each, void *arg)
{
	r->hdr.nlmsg_flags |= NLM_F_ACK;
	int rc = nl_send(s, r);
	return rc < 0 ? rc : nl_read(s, bufsize, each, arg);
}

static int nl_request(struct nlsock *s, struct nlreq *r)
{
	return nl_call(s, r, NL_ACK_MAX, NULL, NULL);
}

/* One request on a fresh socket of the calling thread's namespace. */
static int nl_transact(struct nlreq *r)
{
	struct nlsock s;
	int rc = nl_open(&s);
	if (rc < 0)
		return rc;
	rc = nl_request(&s, r);
	nl_close(&s);
	return rc;
}

/* ---- links ---- */

struct linkinfo {
	char name[IFNAMSIZ];
	char kind[32];
	int index;
	unsigned flags;
};

static void parse_link(const struct nlmsghdr *h, struct linkinfo *li)
{
	memset(li, 0, sizeof(*li));
	if (h->nlmsg_type != RTM_NEWLINK || h->nlmsg_len < NLMSG_LENGTH(sizeof(struct ifinfomsg)))
		return;
	const struct ifinfomsg *ifi = NLMSG_DATA(h);
	li->index = ifi->ifi_index;
	li->flags = ifi->ifi_flags;
	int len = (int)(h->nlmsg_len - NLMSG_LENGTH(sizeof(*ifi)));
	for (const struct rtattr *a = IFLA_RTA(ifi); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
		if (a->rta_type == IFLA_IFNAME) {
			size_t n = RTA_PAYLOAD(a) < sizeof(li->name) ? RTA_PAYLOAD(a) : sizeof(li->name) - 1;
			memcpy(li->name, RTA_DATA(a), n);
			li->name[sizeof(li->name) - 1] = '\0';
		} else if (a->rta_type == IFLA_LINKINFO) {
			int ilen = (int)RTA_PAYLOAD(a);
			for (const struct rtattr *b = RTA_DATA(a); RTA_OK(b, ilen); b = RTA_NEXT(b, ilen)) {
				if (b->rta_type != IFLA_INFO_KIND)
					continue;
				size_t n = RTA_PAYLOAD(b) < sizeof(li->kind) ? RTA_PAYLOAD(b)
				                                              : sizeof(li->kind) - 1;
				memcpy(li->kind, RTA_DATA(b), n);
				li->kind[sizeof(li->kind) - 1] = '\0';
			}
		}
	}
}

static int link_one_cb(const struct nlmsghdr *h, void *arg)
{
	parse_link(h, arg);
	return 0;
}

/* Looks a link up by name: 0, -ENODEV when missing, or another -errno. */
static int link_get(const char *name, struct linkinfo *li)
{
	if (!ifname_ok(name))
		return -EINVAL;
	struct nlreq r;
	nl_init(&r, RTM_GETLINK, 0);
	nl_put_ifinfo(&r, 0, 0, 0);
	nl_put_str(&r, IFLA_IFNAME, name);
	nl_put_u32(&r, IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
	struct nlsock s;
	int rc = nl_open(&s);
	if (rc < 0)
		return rc;
	memset(li, 0, sizeof(*li));
	rc = nl_call(&s, &r, NL_ACK_MAX, link_one_cb, li);
	nl_close(&s);
	if (rc == 0 && li->index == 0)
		return -ENODEV;
	return rc;
}

/* Sets flags (under mask `change`) and, when master > 0, the master of link `index`. */
static int link_set(struct nlsock *s, int index, unsigned flags, unsigned change, int master)
{
	struct nlreq r;
	nl_init(&r, RTM_NEWLINK, 0);
	nl_put_ifinfo(&r, index, flags, change);
	if (master > 0)
		nl_put_u32(&r, IFLA_MASTER, (uint32_t)master);
	return nl_request(s, &r);
}

bool netdev_exists(const char *name)
{
	return ifname_ok(name) && if_nametoindex(name) != 0;
}

bool netdev_is_bridge(const char *name)
{
	struct linkinfo li;
	return link_get(name, &li) == 0 && strcmp(li.kind, "bridge") == 0;
}

/* The index of bridge `name`: > 0, -ENODEV when missing, -EINVAL when it is not a
 * bridge. */
static int bridge_index(const char *name)
{
	struct linkinfo li;
	int rc = link_get(name, &li);
	if (rc < 0)
		return rc;
	return strcmp(li.kind, "bridge") == 0 ? li.index : -EINVAL;
}

int netdev_bridge_create(const char *name)
{
	if (!ifname_ok(name))
		return -EINVAL;
	struct nlreq r;
	nl_init(&r, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
	nl_put_ifinfo(&r, 0, IFF_UP, IFF_UP);
	nl_put_str(&r, IFLA_IFNAME, name);
	struct rtattr *info = nl_nest_begin(&r, IFLA_LINKINFO);
	nl_put_str(&r, IFLA_INFO_KIND, "bridge");
	nl_nest_end(&r, info);
	int rc = nl_transact(&r);
	if (rc != -EEXIST)
		return rc;
	/* Already there: fine if it is a bridge; make sure it is up. */
	int index = bridge_index(name);
	if (index == -EINVAL)
		return -EEXIST;
	if (index < 0)
		return index;
	struct nlsock s;
	rc = nl_open(&s);
	if (rc < 0)
		return rc;
	rc = link_set(&s, index, IFF_UP, IFF_UP, 0);
	nl_close(&s);
	return rc;
}

struct bridge_list {
	char **names;
	size_t len, cap;
};

static int bridge_list_cb(const struct nlmsghdr *h, void *arg)
{
	struct bridge_list *bl = arg;
	struct linkinfo li;
	parse_link(h, &li);
	if (strcmp(li.kind, "bridge") != 0 || li.name[0] == '\0')
		return 0;
	if (bl->len + 2 > bl->cap) {
		size_t cap = bl->cap ? bl->cap * 2 : 8;
		char **names = realloc(bl->names, cap * sizeof(*names));
		if (!names)
			return -ENOMEM;
		bl->names = names;
		bl->cap = cap;
	}
	if (!(bl->names[bl->len] = strdup(li.name)))
		return -ENOMEM;
	bl->names[++bl->len] = NULL;
	return 0;
}

int netdev_bridges(char ***names)
{
	*names = NULL;
	struct nlreq r;
	nl_init(&r, RTM_GETLINK, NLM_F_DUMP);
	nl_put_ifinfo(&r, 0, 0, 0);
	nl_put_u32(&r, IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
	struct rtattr *info = nl_nest_begin(&r, IFLA_LINKINFO); /* kernel-side filter */
	nl_put_str(&r, IFLA_INFO_KIND, "bridge");
	nl_nest_end(&r, info);

	struct nlsock s;
	int rc = nl_open(&s);
	if (rc < 0)
		return rc;
	struct bridge_list bl = {0};
	rc = nl_call(&s, &r, NL_DUMP_MAX, bridge_list_cb, &bl);
	nl_close(&s);
	if (rc == 0 && !bl.names) {
		bl.names = calloc(1, sizeof(*bl.names));
		if (!bl.names)
			rc = -ENOMEM;
	}
	if (rc < 0) {
		netdev_list_free(bl.names);
		return rc;
	}
	*names = bl.names;
	return 0;
}

void netdev_list_free(char **names)
{
	if (!names)
		return;
	for (char **p = names; *p; p++)
		free(*p);
	free(names);
}

int netdev_delete(const char *name)
{
	if (!ifname_ok(name))
		return -EINVAL;
	struct nlreq r;
	nl_init(&r, RTM_DELLINK, 0);
	nl_put_ifinfo(&r, 0, 0, 0);
	nl_put_str(&r, IFLA_IFNAME, name);
	int rc = nl_transact(&r);
	return rc == -ENODEV ? 0 : rc;
}

/* ---- taps ---- */

int netdev_tap_create(const char *name, const char *bridge)
{
	if (!ifname_ok(name) || !ifname_ok(bridge))
		return -EINVAL;
	int master = bridge_index(bridge);
	if (master < 0)
		return master;

	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct ifreq ifr = {0};
	ifr.ifr_flags = (short)(IFF_TAP | IFF_NO_PI | IFF_TUN_EXCL); /* > SHRT_MAX; read unsigned */
	memcpy(ifr.ifr_name, name, strlen(name)); /* ifname_ok: < IFNAMSIZ */
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		int err = errno == EBUSY ? -EEXIST : -errno;
		close(fd);
		return err;
	}
	int rc = 0;
	if (ioctl(fd, TUNSETPERSIST, 1L) < 0)
		rc = -errno;
	if (rc == 0) {
		int index = (int)if_nametoindex(name);
		struct nlsock s;
		if (index == 0)
			rc = -ENODEV;
		else if ((rc = nl_open(&s)) == 0) {
			rc = link_set(&s, index, IFF_UP, IFF_UP, master);
			nl_close(&s);
		}
	}
	/* On failure, dropping persistence makes the kernel remove the tap on close. */
	if (rc < 0)
		(void)ioctl(fd, TUNSETPERSIST, 0L);
	close(fd);
	return rc;
}

/* ---- network namespaces ---- */

static pthread_mutex_t netns_dir_lock = PTHREAD_MUTEX_INITIALIZER;

/* mkdir -p /run/netns and make it a shared mount point, as `ip netns add` does, so
 * namespace mounts propagate to every mount namespace that sees /run/netns. */
static int netns_dir_prepare(void)
{
	if (mkdir("/run", 0755) < 0 && errno != EEXIST)
		return -errno;
	if (mkdir(NETNS_RUN_DIR, 0755) < 0 && errno != EEXIST)
		return -errno;
	int rc = 0;
	pthread_mutex_lock(&netns_dir_lock);
	for (bool bound = false;;) {
		if (mount("", NETNS_RUN_DIR, "none", MS_SHARED | MS_REC, NULL) == 0)
			break;
		/* EINVAL: not a mount point yet; bind it onto itself once and retry. */
		if (errno != EINVAL || bound) {
			rc = -errno;
			break;
		}
		if (mount(NETNS_RUN_DIR, NETNS_RUN_DIR, "none", MS_BIND | MS_REC, NULL) < 0) {
			rc = -errno;
			break;
		}
		bound = true;
	}
	pthread_mutex_unlock(&netns_dir_lock);
	return rc;
}

/* Returns the calling thread to the network namespace `saved` and closes it. Failing
 * would leave this thread in another namespace for good: a broken invariant. */
static void ns_restore(int saved)
{
	if (setns(saved, CLONE_NEWNET) < 0)
		fatal("netdev: cannot return to the original network namespace");
	close(saved);
}

int netdev_netns_create(const char *name)
{
	char path[sizeof(NETNS_RUN_DIR) + NETNS_NAME_MAX + 2];
	int rc = netns_path(name, path, sizeof(path));
	if (rc < 0)
		return rc;
	if ((rc = netns_dir_prepare()) < 0)
		return rc;
	int fd = open(path, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	close(fd);

	int saved = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	if (saved < 0) {
		rc = -errno;
		unlink(path);
		return rc;
	}
	/* In the new namespace only long enough to pin it and open a socket there. */
	if (unshare(CLONE_NEWNET) < 0) {
		rc = -errno;
		close(saved);
		unlink(path);
		return rc;
	}
	bool mounted = false;
	struct nlsock s = {.fd = -1};
	if (mount("/proc/thread-self/ns/net", path, "none", MS_BIND, NULL) < 0)
		rc = -errno;
	else {
		mounted = true;
		rc = nl_open(&s);
	}
	ns_restore(saved);

	/* The socket stays in the new namespace: bring lo up there. */
	if (rc == 0) {
		int lo = 1; /* loopback is always index 1 in a fresh namespace */
		rc = link_set(&s, lo, IFF_UP, IFF_UP, 0);
	}
	nl_close(&s);
	if (rc < 0) {
		if (mounted)
			(void)umount2(path, MNT_DETACH);
		unlink(path);
	}
	return rc;
}

int netdev_netns_delete(const char *name)
{
	char path[sizeof(NETNS_RUN_DIR) + NETNS_NAME_MAX + 2];
	int rc = netns_path(name, path, sizeof(path));
	if (rc < 0)
		return rc;
	if (umount2(path, MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT)
		return -errno;
	if (unlink(path) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

/* ---- veth ---- */

/* A netlink socket in the network namespace `nsfd`: the calling thread enters it only to
 * open the socket, which stays bound to that namespace after the thread returns. */
static int nl_open_in(struct nlsock *s, int nsfd)
{
	s->fd = -1;
	int saved = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	if (saved < 0)
		return -errno;
	if (setns(nsfd, CLONE_NEWNET) < 0) {
		int err = -errno;
		close(saved);
		return err;
	}
	int rc = nl_open(s);
	ns_restore(saved);
	return rc;
}

/* Sets link `name` of the socket's namespace up. */
static int link_up_by_name(struct nlsock *s, const char *name)
{
	struct nlreq r;
	nl_init(&r, RTM_NEWLINK, 0);
	nl_put_ifinfo(&r, 0, IFF_UP, IFF_UP);
	nl_put_str(&r, IFLA_IFNAME, name);
	return nl_request(s, &r);
}

int netdev_veth_create(const char *host, const char *bridge, const char *netns, const char *inner)
{
	if (!ifname_ok(host) || !ifname_ok(bridge) || !ifname_ok(inner))
		return -EINVAL;
	char path[sizeof(NETNS_RUN_DIR) + NETNS_NAME_MAX + 2];
	int rc = netns_path(netns, path, sizeof(path));
	if (rc < 0)
		return rc;
	int master = bridge_index(bridge);
	if (master < 0)
		return master;
	int nsfd = open(path, O_RDONLY | O_CLOEXEC);
	if (nsfd < 0)
		return -errno;

	/* Host end named, on the bridge and up; the peer created directly inside the
	 * namespace under its inner name (the kernel undoes all of it on failure). */
	struct nlreq r;
	nl_init(&r, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
	nl_put_ifinfo(&r, 0, IFF_UP, IFF_UP);
	nl_put_str(&r, IFLA_IFNAME, host);
	nl_put_u32(&r, IFLA_MASTER, (uint32_t)master);
	struct rtattr *info = nl_nest_begin(&r, IFLA_LINKINFO);
	nl_put_str(&r, IFLA_INFO_KIND, "veth");
	struct rtattr *data = nl_nest_begin(&r, IFLA_INFO_DATA);
	struct rtattr *peer = nl_nest_begin(&r, VETH_INFO_PEER);
	nl_put_ifinfo(&r, 0, 0, 0);
	nl_put_str(&r, IFLA_IFNAME, inner);
	nl_put_u32(&r, IFLA_NET_NS_FD, (uint32_t)nsfd);
	nl_nest_end(&r, peer);
	nl_nest_end(&r, data);
	nl_nest_end(&r, info);
	rc = nl_transact(&r);

	/* The inner end is brought up afterwards, from inside its namespace: IFF_UP on the
	 * peer in the create request fails with ENOTCONN (the peer is opened before the
	 * pair is linked). */
	if (rc == 0) {
		struct nlsock s;
		rc = nl_open_in(&s, nsfd);
		if (rc == 0) {
			rc = link_up_by_name(&s, inner);
			nl_close(&s);
		}
		if (rc < 0)
			(void)netdev_delete(host); /* takes the peer with it */
	}
	close(nsfd);
	return rc;
}
