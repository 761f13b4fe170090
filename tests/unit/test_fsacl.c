/* test_fsacl — search ACLs for another user on the directories above a path, checked by
 * the kernel itself: a child that becomes that user (nobody) tries to open the file.
 * Needs root (to become nobody and to own the dirs); otherwise it says so and counts
 * nothing. */
#include <dirent.h>
#include <errno.h>
#include <grp.h>
#include <stdbool.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "common/fs.h"
#include "common/fsacl.h"
#include "unit.h"

static char base[64];
static uid_t nobody_uid;
static gid_t nobody_gid;

/* What the kernel lets (uid, gid) do: 0 when the child could open path for reading (and,
 * for a directory, list it). */
static int as_user(uid_t uid, gid_t gid, const char *path, bool list)
{
	pid_t pid = fork();
	int status;
	if (pid == 0) {
		if (setgroups(0, NULL) < 0 || setgid(gid) < 0 || setuid(uid) < 0)
			_exit(3);
		if (list) {
			DIR *d = opendir(path);
			_exit(d ? 0 : 1);
		}
		_exit(open(path, O_RDONLY) >= 0 ? 0 : 1);
	}
	if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

/* out = dir/name (out holds PATH_MAX); a path that does not fit fails the test run */
static void join(char *out, const char *dir, const char *name)
{
	if (snprintf(out, PATH_MAX, "%s/%s", dir, name) >= PATH_MAX) {
		fprintf(stderr, "path too long: %s/%s\n", dir, name);
		exit(1);
	}
}

static void mk(const char *rel, mode_t mode, char *out)
{
	join(out, base, rel);
	if (mkdir(out, mode) < 0 || chmod(out, mode) < 0)
		perror(out);
}

static void touch(const char *path, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
	if (fd >= 0) {
		fchmod(fd, mode);
		close(fd);
	}
}

static int changes;
static char last_changed[PATH_MAX];
static void on_changed(const char *dir, void *arg)
{
	(void)arg;
	changes++;
	snprintf(last_changed, sizeof last_changed, "%s", dir);
}

/* The owner-group-other view of a directory's access: its mode, whose group bits are the
 * ACL's mask once it has one. */
static mode_t mode_of(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 ? st.st_mode & 07777 : (mode_t)-1;
}

static void test_reach_a_file_through_private_dirs(void)
{
	char a[PATH_MAX], b[PATH_MAX], file[PATH_MAX], failed[PATH_MAX];

	mk("a", 0750, a);
	mk("a/b", 0700, b);
	join(file, b, "kernel");
	touch(file, 0644);
	CHECK_EQ_INT(as_user(nobody_uid, nobody_gid, file, false), 1); /* the dirs keep it out */
	CHECK_EQ_INT(fsacl_can_search(a, nobody_uid, nobody_gid), 0);

	changes = 0;
	CHECK_EQ_INT(fsacl_allow_search_above(file, nobody_uid, nobody_gid, on_changed, NULL, failed, sizeof failed), 0);
	CHECK_EQ_INT(changes, 3); /* base, a, b: /tmp lets everyone search already */
	CHECK_STR(last_changed, base);
	CHECK_EQ_INT(as_user(nobody_uid, nobody_gid, file, false), 0);
	CHECK_EQ_INT(fsacl_can_search(b, nobody_uid, nobody_gid), 1);
	/* search only: the directories cannot be listed */
	CHECK_EQ_INT(as_user(nobody_uid, nobody_gid, a, true), 1);
	CHECK_EQ_INT(as_user(nobody_uid, nobody_gid, b, true), 1);
	/* the owning group keeps what it had: r-x on a, nothing on b (shown as the mask) */
	CHECK_EQ_INT(mode_of(a), 0750);
	CHECK_EQ_INT(mode_of(b), 0710);
	CHECK_EQ_INT(fsacl_can_search(b, 4242, 0), 0); /* a member of b's group, not nobody */
	CHECK_EQ_INT(as_user(4242, 0, file, false), 1);
	CHECK_EQ_INT(as_user(4243, 4243, file, false), 1); /* anyone else: still kept out */

	changes = 0; /* again: nothing to do */
	CHECK_EQ_INT(fsacl_allow_search_above(file, nobody_uid, nobody_gid, on_changed, NULL, failed, sizeof failed), 0);
	CHECK_EQ_INT(changes, 0);
}

static void test_existing_entries_are_kept(void)
{
	char c[PATH_MAX], file[PATH_MAX];

	mk("c", 0700, c);
	join(file, c, "f");
	touch(file, 0644);
	CHECK_EQ_INT(fsacl_allow_search_above(file, 5000, 5000, NULL, NULL, NULL, 0), 0);
	CHECK_EQ_INT(fsacl_allow_search_above(file, nobody_uid, nobody_gid, NULL, NULL, NULL, 0), 0);
	CHECK_EQ_INT(fsacl_allow_search_above(file, 4000, 4000, NULL, NULL, NULL, 0), 0);
	CHECK_EQ_INT(as_user(5000, 5000, file, false), 0);
	CHECK_EQ_INT(as_user(4000, 4000, file, false), 0);
	CHECK_EQ_INT(as_user(nobody_uid, nobody_gid, file, false), 0);
	CHECK_EQ_INT(as_user(4500, 4500, file, false), 1);
	CHECK_EQ_INT(fsacl_can_search(c, 4500, 4500), 0);
	CHECK_EQ_INT(mode_of(c), 0710);
	/* the kernel kept it as written: header + owner, 3 users, group, mask, other */
	CHECK_EQ_INT(getxattr(c, "system.posix_acl_access", NULL, 0), 4 + 7 * 8);
}

static void test_through_a_symlink(void)
{
	char d[PATH_MAX], e[PATH_MAX], link[PATH_MAX], file[PATH_MAX], real[PATH_MAX];

	mk("d", 0700, d);  /* where the link is */
	mk("e", 0700, e);  /* where it points */
	join(real, e, "f");
	touch(real, 0644);
	join(link, d, "to-e");
	CHECK_EQ_INT(symlink(e, link), 0);
	join(file, link, "f");
	CHECK_EQ_INT(fsacl_allow_search_above(file, nobody_uid, nobody_gid, NULL, NULL, NULL, 0), 0);
	CHECK_EQ_INT(fsacl_can_search(d, nobody_uid, nobody_gid), 1);
	CHECK_EQ_INT(fsacl_can_search(e, nobody_uid, nobody_gid), 1);
	CHECK_EQ_INT(as_user(nobody_uid, nobody_gid, file, false), 0);
}

static void test_a_file_not_there_yet(void)
{
	char g[PATH_MAX], file[PATH_MAX];

	mk("g", 0700, g);
	join(file, g, "serial.log"); /* created later, by whoever was let through */
	CHECK_EQ_INT(fsacl_allow_search_above(file, nobody_uid, nobody_gid, NULL, NULL, NULL, 0), 0);
	CHECK_EQ_INT(fsacl_can_search(g, nobody_uid, nobody_gid), 1);
	CHECK_EQ_INT(fsacl_can_search(base, nobody_uid, nobody_gid), 1);
}

static void test_refusals(void)
{
	char failed[PATH_MAX], missing[PATH_MAX], own[PATH_MAX], file[PATH_MAX];

	CHECK_EQ_INT(fsacl_allow_search_above("relative/path", nobody_uid, nobody_gid, NULL, NULL, failed, sizeof failed),
	             -EINVAL);
	join(missing, base, "nowhere/f");
	CHECK_EQ_INT(fsacl_allow_search_above(missing, nobody_uid, nobody_gid, NULL, NULL, failed, sizeof failed),
	             -ENOENT);
	CHECK(strstr(failed, "/nowhere") != NULL);
	/* a directory of the user itself, whose mode denies it: an ACL entry would not count */
	mk("own", 0600, own);
	CHECK_EQ_INT(chown(own, nobody_uid, nobody_gid), 0);
	join(file, own, "f");
	touch(file, 0644);
	CHECK_EQ_INT(fsacl_allow_search_above(file, nobody_uid, nobody_gid, NULL, NULL, failed, sizeof failed), -EACCES);
	CHECK_STR(failed, own);
	CHECK_EQ_INT(fsacl_can_search(file, nobody_uid, nobody_gid), -ENOTDIR);
}

int main(void)
{
	struct passwd *pw = getpwnam("nobody");
	if (geteuid() != 0 || !pw) {
		printf("  SKIP: needs root and the user nobody\n");
		UNIT_END();
	}
	nobody_uid = pw->pw_uid;
	nobody_gid = pw->pw_gid;
	snprintf(base, sizeof base, "/tmp/mv-fsacl-XXXXXX");
	if (!mkdtemp(base))
		return 1;
	chmod(base, 0700);
	if (getxattr(base, "system.posix_acl_access", NULL, 0) < 0 && errno == EOPNOTSUPP) {
		printf("  SKIP: /tmp has no ACLs\n");
		fs_remove_tree(base);
		UNIT_END();
	}
	RUN(test_reach_a_file_through_private_dirs);
	RUN(test_existing_entries_are_kept);
	RUN(test_through_a_symlink);
	RUN(test_a_file_not_there_yet);
	RUN(test_refusals);
	fs_remove_tree(base);
	UNIT_END();
}
