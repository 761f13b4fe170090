/* fsacl — letting one other user reach a file, and no more: POSIX ACL entries
 * "user:UID:--x" on the directories above it, written as the kernel's
 * system.posix_acl_access attribute (no libacl). For hypervisors that run as a user of
 * their own: libvirt's system daemon runs QEMU as libvirt-qemu, which must open the
 * kernel in a node's image cache (and, with older libvirt, the serial file) through
 * directories the node keeps at 0700/0750. Search permission lets it follow a path it
 * was given; it cannot list the directories or read what their modes keep from it.
 * virt-manager and virt-install fix paths for QEMU's user the same way.
 *
 * The names carry the prefix fsacl_ because this program loads libvirt, which links
 * libacl (acl_*). All functions return 0 (or 1 for yes) or -errno. */
#ifndef MICROVIM_FSACL_H
#define MICROVIM_FSACL_H

#include <stddef.h>
#include <sys/types.h>

/* May uid, whose primary group is gid, search the directory dir (by its owner, mode and
 * access ACL)? 1 yes, 0 no. Supplementary groups are not considered. */
int fsacl_can_search(const char *dir, uid_t uid, gid_t gid);

/* Makes every directory above path searchable by uid: from path's parent up to "/", both
 * along path as written and along its canonical form (symlinks resolved). A directory uid
 * cannot search yet gets the entry user:uid:--x, and its mask is widened by x (a directory
 * without an ACL gets the mask its owning group's bits and x: the group keeps exactly what
 * it had); nothing else changes, and a directory that already lets uid search is not
 * touched. changed(dir, arg) is called for each directory given the entry
 * (changed may be NULL). path must be absolute; it need not exist yet (a file about to be
 * created), its directory must. 0, or -errno with the directory in
 * failed: -EOPNOTSUPP when its filesystem has no ACLs, -EPERM when we neither own it nor
 * are root, -EACCES when uid owns it and its mode denies uid search. */
int fsacl_allow_search_above(const char *path, uid_t uid, gid_t gid, void (*changed)(const char *dir, void *arg),
                             void *arg, char *failed, size_t failed_len);

#endif
