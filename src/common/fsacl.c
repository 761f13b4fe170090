/* fsacl — search permission for one user on the directories above a path (fsacl.h).
 *
 * An access ACL is read and written whole, as the attribute the kernel keeps it in:
 * a 4-byte version header, then 8-byte entries {tag, perm, id}, little-endian, ordered
 * owner, named users (by id), owning group, named groups (by id), mask, other. A
 * directory without one is read as the three entries its mode stands for. */
#include <endian.h>
#include <errno.h>
#include <limits.h>
#include <linux/posix_acl.h>
#include <linux/posix_acl_xattr.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>

#include "common/fsacl.h"

#define ACL_XATTR "system.posix_acl_access"
#define ACL_MAX_ENTRIES 128 /* far beyond what a directory of a node carries */
#define ACL_HEADER_SIZE sizeof(struct posix_acl_xattr_header)
#define ACL_ENTRY_SIZE sizeof(struct posix_acl_xattr_entry)

struct acl_entry {
	uint16_t tag, perm;
	uint32_t id;
};

struct acl {
	size_t n;
	struct acl_entry e[ACL_MAX_ENTRIES];
};

static void acl_from_mode(struct acl *a, mode_t mode)
{
	a->n = 3;
	a->e[0] = (struct acl_entry){ACL_USER_OBJ, (mode >> 6) & 7, (uint32_t)ACL_UNDEFINED_ID};
	a->e[1] = (struct acl_entry){ACL_GROUP_OBJ, (mode >> 3) & 7, (uint32_t)ACL_UNDEFINED_ID};
	a->e[2] = (struct acl_entry){ACL_OTHER, mode & 7, (uint32_t)ACL_UNDEFINED_ID};
}

/* path's access ACL, or the one its mode stands for when it has none (or its filesystem
 * keeps none: then writing one fails later, with EOPNOTSUPP). */
static int acl_read(const char *path, mode_t mode, struct acl *a)
{
	unsigned char buf[ACL_HEADER_SIZE + ACL_MAX_ENTRIES * ACL_ENTRY_SIZE];
	struct posix_acl_xattr_header h;
	ssize_t len = getxattr(path, ACL_XATTR, buf, sizeof buf);

	if (len < 0) {
		if (errno == ENODATA || errno == EOPNOTSUPP) {
			acl_from_mode(a, mode);
			return 0;
		}
		return errno == ERANGE ? -E2BIG : -errno;
	}
	memcpy(&h, buf, sizeof h < (size_t)len ? sizeof h : (size_t)len);
	if ((size_t)len < ACL_HEADER_SIZE || le32toh(h.a_version) != POSIX_ACL_XATTR_VERSION ||
	    ((size_t)len - ACL_HEADER_SIZE) % ACL_ENTRY_SIZE != 0)
		return -EBADMSG;
	a->n = ((size_t)len - ACL_HEADER_SIZE) / ACL_ENTRY_SIZE;
	for (size_t i = 0; i < a->n; i++) {
		struct posix_acl_xattr_entry raw;
		memcpy(&raw, buf + ACL_HEADER_SIZE + i * ACL_ENTRY_SIZE, sizeof raw);
		a->e[i] = (struct acl_entry){le16toh(raw.e_tag), le16toh(raw.e_perm), le32toh(raw.e_id)};
	}
	return 0;
}

static int acl_write(const char *path, const struct acl *a)
{
	unsigned char buf[ACL_HEADER_SIZE + ACL_MAX_ENTRIES * ACL_ENTRY_SIZE];
	struct posix_acl_xattr_header h = {.a_version = htole32(POSIX_ACL_XATTR_VERSION)};

	memcpy(buf, &h, sizeof h);
	for (size_t i = 0; i < a->n; i++) {
		struct posix_acl_xattr_entry raw = {htole16(a->e[i].tag), htole16(a->e[i].perm), htole32(a->e[i].id)};
		memcpy(buf + ACL_HEADER_SIZE + i * ACL_ENTRY_SIZE, &raw, sizeof raw);
	}
	return setxattr(path, ACL_XATTR, buf, ACL_HEADER_SIZE + a->n * ACL_ENTRY_SIZE, 0) < 0 ? -errno : 0;
}

static const struct acl_entry *acl_find(const struct acl *a, uint16_t tag)
{
	for (size_t i = 0; i < a->n; i++)
		if (a->e[i].tag == tag)
			return &a->e[i];
	return NULL;
}

/* The access check of POSIX.1e for "x", as the kernel makes it (owner, named user,
 * groups, other), with gid as uid's only group. */
static bool acl_allows_search(const struct acl *a, const struct stat *st, uid_t uid, gid_t gid)
{
	const struct acl_entry *owner = acl_find(a, ACL_USER_OBJ), *mask = acl_find(a, ACL_MASK),
	                       *other = acl_find(a, ACL_OTHER);
	unsigned masked = mask ? mask->perm : 7;
	bool group_matched = false, group_allows = false;

	if (st->st_uid == uid)
		return owner && (owner->perm & ACL_EXECUTE);
	for (size_t i = 0; i < a->n; i++)
		if (a->e[i].tag == ACL_USER && a->e[i].id == uid)
			return a->e[i].perm & masked & ACL_EXECUTE;
	for (size_t i = 0; i < a->n; i++) {
		const struct acl_entry *e = &a->e[i];
		if ((e->tag == ACL_GROUP_OBJ && st->st_gid == gid) || (e->tag == ACL_GROUP && e->id == gid)) {
			group_matched = true;
			group_allows |= (e->perm & masked & ACL_EXECUTE) != 0;
		}
	}
	if (group_matched)
		return group_allows;
	return other && (other->perm & ACL_EXECUTE);
}

static int acl_insert(struct acl *a, size_t at, struct acl_entry e)
{
	if (a->n >= ACL_MAX_ENTRIES)
		return -E2BIG;
	memmove(&a->e[at + 1], &a->e[at], (a->n - at) * sizeof a->e[0]);
	a->e[at] = e;
	a->n++;
	return 0;
}

/* Gives uid x by a named-user entry, and makes the mask let it through. A mask the ACL
 * did not have yet is the union of the group class (owning group, named entries): what
 * the owning group had, it keeps; nothing more. */
static int acl_add_search(struct acl *a, uid_t uid)
{
	size_t at = 0;
	struct acl_entry *mask;
	bool found = false;
	int rc;

	for (size_t i = 0; i < a->n; i++) {
		if (a->e[i].tag == ACL_USER && a->e[i].id == uid) {
			a->e[i].perm |= ACL_EXECUTE;
			found = true;
		}
	}
	if (!found) {
		while (at < a->n && (a->e[at].tag == ACL_USER_OBJ || (a->e[at].tag == ACL_USER && a->e[at].id < uid)))
			at++;
		if ((rc = acl_insert(a, at, (struct acl_entry){ACL_USER, ACL_EXECUTE, uid})) < 0)
			return rc;
	}
	if ((mask = (struct acl_entry *)acl_find(a, ACL_MASK))) {
		mask->perm |= ACL_EXECUTE;
		return 0;
	}
	unsigned group_class = 0;
	for (at = 0; at < a->n; at++) {
		uint16_t t = a->e[at].tag;
		if (t == ACL_USER || t == ACL_GROUP_OBJ || t == ACL_GROUP)
			group_class |= a->e[at].perm;
	}
	for (at = 0; at < a->n && a->e[at].tag != ACL_OTHER; at++)
		;
	return acl_insert(a, at, (struct acl_entry){ACL_MASK, group_class, (uint32_t)ACL_UNDEFINED_ID});
}

static int read_dir(const char *dir, struct stat *st, struct acl *a)
{
	if (stat(dir, st) < 0)
		return -errno;
	if (!S_ISDIR(st->st_mode))
		return -ENOTDIR;
	return acl_read(dir, st->st_mode, a);
}

int fsacl_can_search(const char *dir, uid_t uid, gid_t gid)
{
	struct stat st;
	struct acl a;
	int rc = read_dir(dir, &st, &a);
	return rc < 0 ? rc : acl_allows_search(&a, &st, uid, gid);
}

struct walk {
	uid_t uid;
	gid_t gid;
	void (*changed)(const char *dir, void *arg);
	void *arg;
	char *failed;
	size_t failed_len;
};

static int allow_one(struct walk *w, const char *dir)
{
	struct stat st;
	struct acl a;
	int rc;

	if ((rc = read_dir(dir, &st, &a)) == 0 && !acl_allows_search(&a, &st, w->uid, w->gid)) {
		if (st.st_uid == w->uid) /* its own directory: only its owner bits count */
			rc = -EACCES;
		else if ((rc = acl_add_search(&a, w->uid)) == 0 && (rc = acl_write(dir, &a)) == 0 && w->changed)
			w->changed(dir, w->arg);
	}
	if (rc < 0 && w->failed_len)
		snprintf(w->failed, w->failed_len, "%s", dir);
	return rc;
}

/* path's parent, its parent, ... "/". */
static int allow_along(struct walk *w, const char *path)
{
	char dir[PATH_MAX];
	char *slash;
	int rc;

	if (snprintf(dir, sizeof dir, "%s", path) >= (int)sizeof dir)
		return -ENAMETOOLONG;
	while ((slash = strrchr(dir, '/'))) {
		if (slash == dir) {
			dir[1] = '\0';
			return allow_one(w, dir);
		}
		*slash = '\0';
		if ((rc = allow_one(w, dir)) < 0)
			return rc;
	}
	return 0;
}

int fsacl_allow_search_above(const char *path, uid_t uid, gid_t gid, void (*changed)(const char *dir, void *arg),
                             void *arg, char *failed, size_t failed_len)
{
	struct walk w = {uid, gid, changed, arg, failed, failed_len};
	char *canonical;
	int rc;

	if (failed_len)
		snprintf(failed, failed_len, "%s", path);
	if (path[0] != '/')
		return -EINVAL;
	if ((rc = allow_along(&w, path)) < 0)
		return rc;
	/* through a symlink the lookup also crosses the directories of its target */
	if (!(canonical = realpath(path, NULL)) && errno == ENOENT) {
		char parent[PATH_MAX], *resolved;
		snprintf(parent, sizeof parent, "%s", path); /* fits: allow_along took it */
		*strrchr(parent, '/') = '\0';
		/* a file to be created: its directory, resolved, then that directory itself */
		if ((resolved = realpath(parent[0] ? parent : "/", NULL))) {
			canonical = NULL;
			if (asprintf(&canonical, "%s/", resolved) < 0)
				canonical = NULL;
			free(resolved);
			if (!canonical)
				return -ENOMEM;
		}
	}
	if (!canonical)
		return -errno;
	if (strcmp(canonical, path) != 0)
		rc = allow_along(&w, canonical);
	free(canonical);
	return rc;
}
