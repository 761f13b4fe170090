/* logbuf — a bounded log stream kept in the very file its writer appends to (an exec
 * instance's stdout.log or stderr.log, a guest's serial.log written by QEMU, virtlogd or
 * xenconsoled). Offsets are the file's own: byte N of the stream is byte N of the file, for
 * ever, so a reader that follows can resume where it was, across node restarts.
 *
 * The bound: only the last `max` bytes are kept. The older ones are freed with a punched
 * hole (fallocate PUNCH_HOLE): the writer keeps appending as it did, never blocks and never
 * learns of it, the file's blocks (tmpfs: memory) stay near max, and the number of bytes
 * dropped is the window's start. Copying into a buffer of the node's instead would need the
 * node alive for the writer to go on, and an instance outlives its node's restart.
 *
 * Pure file operations, no state: the node calls logbuf_trim when the file grew (inotify)
 * and logbuf_read for a reader. Both return 0 or -errno. */
#ifndef MICROVIM_LOGBUF_H
#define MICROVIM_LOGBUF_H

#include <stddef.h>
#include <stdint.h>

#define LOGBUF_MAX_DEFAULT (1024 * 1024) /* --log-max-bytes */
#define LOGBUF_MAX_MIN 4096              /* one page: holes are punched in whole pages */
#define LOGBUF_MAX_MAX (1024LL * 1024 * 1024)
/* How far past max the file may grow before the next punch: a chatty writer costs one
 * fallocate per this many bytes, not one per write. */
#define LOGBUF_SLACK (64 * 1024)

/* What a read found. */
struct logbuf_span {
	uint64_t start;   /* offset of the first byte returned (>= the offset asked for, unless
	                   * the file was replaced by a shorter one: then the window's start) */
	uint64_t next;    /* offset to ask for next: start + bytes returned */
	uint64_t end;     /* the stream's length when read */
	uint64_t dropped; /* bytes before the window, freed (the window's start) */
};

/* The first offset kept of a stream of `end` bytes bounded to max. */
uint64_t logbuf_window_start(uint64_t end, uint64_t max);
/* Frees what lies before the window, in whole pages, once at least LOGBUF_SLACK bytes can be
 * freed. fd open for writing. -EOPNOTSUPP: the file system has no holes (the file is then
 * unbounded, as before). */
int logbuf_trim(int fd, uint64_t max);
/* Up to len bytes from offset (moved up to the window's start when older), into buf;
 * *n bytes read. */
int logbuf_read(int fd, uint64_t max, uint64_t offset, char *buf, size_t len, size_t *n, struct logbuf_span *span);

#endif
