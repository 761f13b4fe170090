/* logbuf — see logbuf.h. */
#include "node/logbuf.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/stat.h>
#include <unistd.h>

#define PAGE 4096

uint64_t logbuf_window_start(uint64_t end, uint64_t max) { return end > max ? end - max : 0; }

int logbuf_trim(int fd, uint64_t max)
{
	struct stat st;
	off_t data;
	uint64_t cut;

	if (fstat(fd, &st) < 0)
		return -errno;
	/* whole pages only: a partly punched page would keep its bytes anyway */
	cut = logbuf_window_start((uint64_t)st.st_size, max) / PAGE * PAGE;
	/* where the kept data begins now: what earlier punches left */
	data = lseek(fd, 0, SEEK_DATA);
	if (data < 0)
		return errno == ENXIO ? 0 : -errno; /* ENXIO: no data at all (empty, or all holes) */
	if (cut < (uint64_t)data + LOGBUF_SLACK)
		return 0;
	if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, data, (off_t)cut - data) < 0)
		return -errno;
	return 0;
}

int logbuf_read(int fd, uint64_t max, uint64_t offset, char *buf, size_t len, size_t *n, struct logbuf_span *span)
{
	struct stat st;
	uint64_t end, start;
	ssize_t got = 0;

	*n = 0;
	if (fstat(fd, &st) < 0)
		return -errno;
	end = (uint64_t)st.st_size;
	start = logbuf_window_start(end, max);
	if (offset > end) /* the file was replaced (virtlogd's rotation): from the new window */
		offset = start;
	if (offset < start)
		offset = start;
	if (len > end - offset)
		len = (size_t)(end - offset);
	while (len > 0 && (got = pread(fd, buf, len, (off_t)offset)) < 0 && errno == EINTR)
		;
	if (got < 0)
		return -errno;
	*n = (size_t)got;
	*span = (struct logbuf_span){.start = offset, .next = offset + (uint64_t)got, .end = end, .dropped = start};
	return 0;
}
