/* test_logbuf — the bounded log stream (src/node/logbuf.c) on a real file: the window,
 * reads from an offset (inside, before and past the window), the bound held by punched
 * holes while a writer keeps appending, and what a replaced file reads as. */
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "node/logbuf.h"
#include "unit.h"

static char path[256];

/* Byte i of the stream: a pattern that tells offsets apart. */
static char byte_at(uint64_t i) { return (char)('a' + (i * 7 + i / 251) % 26); }

static int open_stream(void)
{
	const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : (getenv("TMPDIR") ?: "/tmp");
	snprintf(path, sizeof path, "%s/test_logbuf.%d", dir, (int)getpid());
	return open(path, O_RDWR | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
}

static void append(int fd, uint64_t from, size_t n)
{
	char buf[8192];
	while (n > 0) {
		size_t k = n < sizeof buf ? n : sizeof buf;
		for (size_t i = 0; i < k; i++)
			buf[i] = byte_at(from + i);
		CHECK(write(fd, buf, k) == (ssize_t)k);
		from += k;
		n -= k;
	}
}

static bool matches(const char *buf, uint64_t from, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (buf[i] != byte_at(from + i))
			return false;
	return true;
}

static void test_window(void)
{
	CHECK_EQ_INT(logbuf_window_start(0, 100), 0);
	CHECK_EQ_INT(logbuf_window_start(100, 100), 0);
	CHECK_EQ_INT(logbuf_window_start(101, 100), 1);
	CHECK_EQ_INT(logbuf_window_start(5000000, 1048576), 5000000 - 1048576);
}

static void test_read_small(void)
{
	int fd = open_stream();
	char buf[64];
	size_t n;
	struct logbuf_span sp;
	CHECK(fd >= 0);
	CHECK_EQ_INT(logbuf_read(fd, 1024, 0, buf, sizeof buf, &n, &sp), 0);
	CHECK_EQ_INT(n, 0);
	CHECK_EQ_INT(sp.end, 0);
	append(fd, 0, 100);
	CHECK_EQ_INT(logbuf_read(fd, 1024, 10, buf, 20, &n, &sp), 0);
	CHECK_EQ_INT(n, 20);
	CHECK(matches(buf, 10, 20));
	CHECK_EQ_INT(sp.start, 10);
	CHECK_EQ_INT(sp.next, 30);
	CHECK_EQ_INT(sp.end, 100);
	CHECK_EQ_INT(sp.dropped, 0);
	/* at the end: nothing, and next stays where the reader waits */
	CHECK_EQ_INT(logbuf_read(fd, 1024, 100, buf, sizeof buf, &n, &sp), 0);
	CHECK_EQ_INT(n, 0);
	CHECK_EQ_INT(sp.next, 100);
	/* a trim with nothing to drop changes nothing */
	CHECK_EQ_INT(logbuf_trim(fd, 1024), 0);
	CHECK_EQ_INT(logbuf_read(fd, 1024, 0, buf, sizeof buf, &n, &sp), 0);
	CHECK_EQ_INT(n, 64);
	CHECK(matches(buf, 0, 64));
	close(fd);
	unlink(path);
}

/* Past the bound: a reader from 0 gets the last max bytes, told how many were dropped. */
static void test_oldest_dropped(void)
{
	int fd = open_stream();
	const uint64_t max = 64 * 1024;
	static char buf[128 * 1024];
	size_t n;
	struct logbuf_span sp;
	append(fd, 0, 300000);
	CHECK_EQ_INT(logbuf_read(fd, max, 0, buf, sizeof buf, &n, &sp), 0);
	CHECK_EQ_INT(n, max);
	CHECK_EQ_INT(sp.start, 300000 - max);
	CHECK_EQ_INT(sp.dropped, 300000 - max);
	CHECK_EQ_INT(sp.next, 300000);
	CHECK(matches(buf, sp.start, n));
	/* inside the window: from there */
	CHECK_EQ_INT(logbuf_read(fd, max, 299000, buf, sizeof buf, &n, &sp), 0);
	CHECK_EQ_INT(n, 1000);
	CHECK(matches(buf, 299000, n));
	close(fd);
	unlink(path);
}

/* The file's blocks stay near max while a writer appends 8 MiB and the node trims as it
 * grows; the window reads the same before and after. */
static void test_bound_held(void)
{
	int fd = open_stream();
	const uint64_t max = 256 * 1024, total = 8 * 1024 * 1024;
	static char buf[4096];
	size_t n;
	struct logbuf_span sp;
	struct stat st;
	int rc = 0;
	for (uint64_t w = 0; w < total; w += 32768) {
		append(fd, w, 32768);
		if ((rc = logbuf_trim(fd, max)) < 0)
			break;
	}
	if (rc == -EOPNOTSUPP) {
		printf("     (no holes on this file system: %s; bound not checked)\n", path);
	} else {
		CHECK_EQ_INT(rc, 0);
		CHECK(fstat(fd, &st) == 0);
		CHECK_EQ_INT(st.st_size, total); /* the writer's offsets never move */
		CHECK((uint64_t)st.st_blocks * 512 <= max + LOGBUF_SLACK + 2 * 32768 + 4096);
	}
	CHECK_EQ_INT(logbuf_read(fd, max, 0, buf, sizeof buf, &n, &sp), 0);
	CHECK_EQ_INT(sp.start, total - max);
	CHECK_EQ_INT(n, sizeof buf);
	CHECK(matches(buf, sp.start, n));
	close(fd);
	unlink(path);
}

/* A file replaced by a shorter one (virtlogd rotates): a reader past its end starts over
 * at its window. */
static void test_replaced(void)
{
	int fd = open_stream();
	char buf[64];
	size_t n;
	struct logbuf_span sp;
	append(fd, 0, 50);
	CHECK_EQ_INT(logbuf_read(fd, 1024, 5000, buf, sizeof buf, &n, &sp), 0);
	CHECK_EQ_INT(sp.start, 0);
	CHECK_EQ_INT(n, 50);
	CHECK(matches(buf, 0, 50));
	close(fd);
	unlink(path);
	/* a descriptor that cannot be read */
	CHECK_EQ_INT(logbuf_read(-1, 1024, 0, buf, sizeof buf, &n, &sp), -EBADF);
	CHECK_EQ_INT(logbuf_trim(-1, 1024), -EBADF);
}

int main(void)
{
	RUN(test_window);
	RUN(test_read_small);
	RUN(test_oldest_dropped);
	RUN(test_bound_held);
	RUN(test_replaced);
	UNIT_END();
}
