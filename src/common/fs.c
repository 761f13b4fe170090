#define _XOPEN_SOURCE 700
#include "common/fs.h"
#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int write_all(int fd, const void *data, size_t len)
{
	const char *p = data;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int fs_write_atomic(const char *path, const void *data, size_t len, bool sync)
{
	char tmp[4096];
	int fd, rc;

	/* A temp file of its own (mkostemp, mode 0600): writers of the same path at once (two
	 * instances fetching one image blob on a node's workers, cores sharing a blob dir) must
	 * not share one. With a fixed "PATH.tmp" the second truncated the first's file before its
	 * rename, or found it renamed away: ENOENT, and an instance failed (Rally, in CI). */
	if (snprintf(tmp, sizeof tmp, "%s.tmp.XXXXXX", path) >= (int)sizeof tmp)
		return -ENAMETOOLONG;
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return -errno;
	rc = write_all(fd, data, len);
	if (rc == 0 && sync && fsync(fd) < 0)
		rc = -errno;
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	if (rc == 0 && rename(tmp, path) < 0)
		rc = -errno;
	if (rc < 0)
		unlink(tmp);
	return rc;
}

int fs_read_file(const char *path, size_t max, char **out, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t cap = 4096, n = 0;
	char *buf;

	if (fd < 0)
		return -errno;
	buf = malloc(cap + 1);
	if (!buf)
		fatal("malloc");
	for (;;) {
		ssize_t r;
		if (n == cap) {
			char *nb;
			if (cap > max) {
				free(buf);
				close(fd);
				return -EFBIG;
			}
			cap *= 2;
			if (!(nb = realloc(buf, cap + 1)))
				fatal("realloc");
			buf = nb;
		}
		r = read(fd, buf + n, cap - n);
		if (r < 0) {
			int e = errno;
			if (e == EINTR)
				continue;
			free(buf);
			close(fd);
			return -e;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	if (n > max) {
		free(buf);
		return -EFBIG;
	}
	buf[n] = '\0';
	*out = buf;
	if (len)
		*len = n;
	return 0;
}

int fs_read_token(const char *path, char **out)
{
	size_t len;
	int rc = fs_read_file(path, 4096, out, &len);
	if (rc < 0)
		return rc;
	while (len > 0 && strchr("\r\n \t", (*out)[len - 1]))
		(*out)[--len] = '\0';
	return 0;
}

int fs_mkdir_p(const char *path, unsigned mode)
{
	char buf[4096];
	struct stat leaf;
	size_t n = strlen(path);
	if (n == 0 || n >= sizeof buf)
		return -ENAMETOOLONG;
	/* The common case first, a new dir in one that exists (each instance's dir): one
	 * system call instead of a stat per level, which a virtual machine pays dearly for. */
	if (mkdir(path, mode) == 0)
		return 0;
	if (errno == EEXIST)
		return stat(path, &leaf) == 0 && S_ISDIR(leaf.st_mode) ? 0 : -ENOTDIR;
	memcpy(buf, path, n + 1);
	for (size_t i = 1; i <= n; i++) {
		struct stat st;
		if (buf[i] != '/' && buf[i] != '\0')
			continue;
		buf[i] = '\0';
		/* look before creating: an existing dir may sit in one we cannot write to */
		if (stat(buf, &st) == 0) {
			if (!S_ISDIR(st.st_mode))
				return -ENOTDIR;
		} else if (errno != ENOENT) {
			return -errno;
		} else if (mkdir(buf, i == n ? mode : 0755) < 0 && errno != EEXIST) {
			/* parents as `mkdir -p -m MODE` makes them: 0755 (less the umask) */
			return -errno;
		}
		buf[i] = i == n ? '\0' : '/';
	}
	return 0;
}

static int remove_entry(const char *path, UNUSED const struct stat *sb, UNUSED int flag,
                        UNUSED struct FTW *ftw)
{
	return remove(path) < 0 && errno != ENOENT ? -1 : 0;
}

int fs_remove_tree(const char *path)
{
	if (nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS) < 0)
		return errno == ENOENT ? 0 : -errno;
	return 0;
}
