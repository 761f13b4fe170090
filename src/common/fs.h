/* fs — files that must survive a crash. All return 0 or -errno. */
#ifndef MICROVIM_FS_H
#define MICROVIM_FS_H

#include <stdbool.h>
#include <stddef.h>

/* Writes path atomically: a temp file of its own in the same dir (mode 0600), optional
 * fsync, rename. A crash leaves either the old content or the new, never a mix; writers of
 * one path at once each put their whole content there, the last rename winning. */
int fs_write_atomic(const char *path, const void *data, size_t len, bool sync);
/* Reads a whole file (at most max bytes) into a NUL-terminated malloc'd buffer. */
int fs_read_file(const char *path, size_t max, char **out, size_t *len);
/* mkdir -p: the last component gets mode, the parents 0755 (less the umask). */
int fs_mkdir_p(const char *path, unsigned mode);
/* A bearer token from a file (--token-file): at most 4 KiB, trailing blanks and newlines
 * removed. *out is malloc'd. */
int fs_read_token(const char *path, char **out);
/* Removes a directory tree (does not follow symlinks). Missing is not an error. */
int fs_remove_tree(const char *path);

#endif
