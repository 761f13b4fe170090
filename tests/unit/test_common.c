/* test_common — hmap, idset, the host:port and URL parsers, loopback detection, and the fs helpers. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fs.h"
#include "common/hmap.h"
#include "common/idset.h"
#include "common/http.h"
#include "unit.h"

/* ---- hmap ---------------------------------------------------------------------------- */

static void *val(size_t i) { return (void *)(uintptr_t)(i + 1); }

static void test_hmap_basic(void)
{
	struct hmap m;
	const char *k;
	void *v;
	size_t pos = 0;

	hmap_init(&m);
	CHECK_EQ_INT(hmap_size(&m), 0);
	CHECK(hmap_get(&m, "a") == NULL);          /* empty map, no slots yet */
	CHECK(hmap_remove(&m, "a") == NULL);
	CHECK_EQ_INT(hmap_next(&m, &pos, &k, &v), 0);

	hmap_put(&m, "a", val(0));
	hmap_put(&m, "b", val(1));
	hmap_put(&m, "", val(2)); /* the empty string is a key like any other */
	CHECK_EQ_INT(hmap_size(&m), 3);
	CHECK(hmap_get(&m, "a") == val(0));
	CHECK(hmap_get(&m, "b") == val(1));
	CHECK(hmap_get(&m, "") == val(2));
	CHECK(hmap_get(&m, "c") == NULL);
	CHECK(hmap_get(&m, "A") == NULL);
	CHECK(hmap_get(&m, "a ") == NULL);

	/* lookups compare strings, not pointers */
	char copy[2] = {'a', '\0'};
	CHECK(hmap_get(&m, copy) == val(0));

	/* replace: same size, new value */
	hmap_put(&m, "a", val(10));
	CHECK_EQ_INT(hmap_size(&m), 3);
	CHECK(hmap_get(&m, "a") == val(10));

	/* remove returns the old value; a second remove finds nothing */
	CHECK(hmap_remove(&m, "a") == val(10));
	CHECK_EQ_INT(hmap_size(&m), 2);
	CHECK(hmap_get(&m, "a") == NULL);
	CHECK(hmap_remove(&m, "a") == NULL);
	CHECK_EQ_INT(hmap_size(&m), 2);
	CHECK(hmap_get(&m, "b") == val(1));

	/* and it can come back */
	hmap_put(&m, "a", val(20));
	CHECK(hmap_get(&m, "a") == val(20));
	CHECK_EQ_INT(hmap_size(&m), 3);

	hmap_free(&m);
	CHECK_EQ_INT(hmap_size(&m), 0);
	CHECK(hmap_get(&m, "a") == NULL);
	/* usable again after free */
	hmap_put(&m, "z", val(5));
	CHECK(hmap_get(&m, "z") == val(5));
	hmap_free(&m);
}

/* Replacing an entry with an equal key from another object makes the map hold the new
 * key: the old object (and its key) can then be freed. */
static void test_hmap_replace_takes_new_key(void)
{
	struct hmap m;
	char *k1 = strdup("instance-1"), *k2 = strdup("instance-1");
	const char *k;
	void *v;
	size_t pos = 0;

	hmap_init(&m);
	hmap_put(&m, k1, val(1));
	hmap_put(&m, k2, val(2));
	CHECK_EQ_INT(hmap_size(&m), 1);
	memset(k1, 'X', strlen(k1)); /* the old key is gone (under ASan: freed below) */
	free(k1);
	CHECK(hmap_get(&m, "instance-1") == val(2));
	CHECK_EQ_INT(hmap_next(&m, &pos, &k, &v), 1);
	CHECK(k == k2);
	CHECK(v == val(2));
	CHECK_EQ_INT(hmap_next(&m, &pos, &k, &v), 0);
	hmap_free(&m);
	free(k2);
}

enum { BIG = 12000 };
static char keys[BIG][16];

static void test_hmap_growth_and_iteration(void)
{
	struct hmap m;
	static unsigned char seen[BIG];
	const char *k;
	void *v;
	size_t n = 0;

	hmap_init(&m);
	for (size_t i = 0; i < BIG; i++) {
		snprintf(keys[i], sizeof keys[i], "key-%zu", i);
		hmap_put(&m, keys[i], val(i));
		if (hmap_size(&m) != i + 1) {
			CHECK_EQ_INT(hmap_size(&m), i + 1);
			break;
		}
	}
	CHECK_EQ_INT(hmap_size(&m), BIG);
	CHECK(m.cap >= BIG);
	CHECK((m.cap & (m.cap - 1)) == 0); /* a power of two */
	for (size_t i = 0; i < BIG; i++)
		if (hmap_get(&m, keys[i]) != val(i)) {
			CHECK(hmap_get(&m, keys[i]) == val(i));
			break;
		}

	/* every live entry visited exactly once */
	memset(seen, 0, sizeof seen);
	for (size_t pos = 0; hmap_next(&m, &pos, &k, &v);) {
		size_t i = (size_t)(uintptr_t)v - 1;
		CHECK(i < BIG);
		if (i >= BIG)
			break;
		CHECK(k == keys[i]);
		seen[i]++;
		n++;
	}
	CHECK_EQ_INT(n, BIG);
	for (size_t i = 0; i < BIG; i++)
		if (seen[i] != 1) {
			CHECK_EQ_INT(seen[i], 1);
			break;
		}

	/* remove every other one: the rest are still found (probing past tombstones) */
	for (size_t i = 0; i < BIG; i += 2)
		CHECK(hmap_remove(&m, keys[i]) == val(i));
	CHECK_EQ_INT(hmap_size(&m), BIG / 2);
	for (size_t i = 0; i < BIG; i++) {
		void *want = i % 2 ? val(i) : NULL;
		if (hmap_get(&m, keys[i]) != want) {
			CHECK(hmap_get(&m, keys[i]) == want);
			break;
		}
	}
	memset(seen, 0, sizeof seen);
	n = 0;
	for (size_t pos = 0; hmap_next(&m, &pos, &k, &v);) {
		size_t i = (size_t)(uintptr_t)v - 1;
		CHECK(i < BIG && i % 2 == 1);
		if (i >= BIG)
			break;
		seen[i]++;
		n++;
	}
	CHECK_EQ_INT(n, BIG / 2);
	for (size_t i = 1; i < BIG; i += 2)
		if (seen[i] != 1) {
			CHECK_EQ_INT(seen[i], 1);
			break;
		}

	/* put them back with new values: found again, no duplicates */
	for (size_t i = 0; i < BIG; i += 2)
		hmap_put(&m, keys[i], val(i + BIG));
	CHECK_EQ_INT(hmap_size(&m), BIG);
	for (size_t i = 0; i < BIG; i++) {
		void *want = i % 2 ? val(i) : val(i + BIG);
		if (hmap_get(&m, keys[i]) != want) {
			CHECK(hmap_get(&m, keys[i]) == want);
			break;
		}
	}
	n = 0;
	for (size_t pos = 0; hmap_next(&m, &pos, &k, &v);)
		n++;
	CHECK_EQ_INT(n, BIG);

	/* remove all: empty */
	for (size_t i = 0; i < BIG; i++)
		hmap_remove(&m, keys[i]);
	CHECK_EQ_INT(hmap_size(&m), 0);
	n = 0;
	for (size_t pos = 0; hmap_next(&m, &pos, &k, &v);)
		n++;
	CHECK_EQ_INT(n, 0);
	hmap_free(&m);
}

/* Insert/remove churn with few live entries: tombstones are reused or swept, so the table
 * stays small and lookups keep terminating. */
static void test_hmap_tombstone_reuse(void)
{
	struct hmap m;
	hmap_init(&m);

	/* the same key in and out */
	for (int i = 0; i < 100000; i++) {
		hmap_put(&m, "same", val(1));
		CHECK(hmap_remove(&m, "same") == val(1));
	}
	CHECK_EQ_INT(hmap_size(&m), 0);
	CHECK(m.cap <= 64);

	/* always-new keys, at most 4 live at a time */
	for (size_t i = 0; i < BIG; i++) {
		hmap_put(&m, keys[i], val(i));
		if (i >= 4)
			CHECK(hmap_remove(&m, keys[i - 4]) == val(i - 4));
		if (unit_current_failed)
			break;
	}
	CHECK_EQ_INT(hmap_size(&m), 4);
	CHECK(m.cap <= 128);
	CHECK(m.used < m.cap); /* an empty slot remains: misses terminate early */
	for (size_t i = BIG - 4; i < BIG; i++)
		CHECK(hmap_get(&m, keys[i]) == val(i));
	CHECK(hmap_get(&m, keys[0]) == NULL);
	CHECK(hmap_get(&m, "never-there") == NULL);

	/* a removed slot is reused by the next insert of that key */
	size_t used = m.used;
	hmap_remove(&m, keys[BIG - 1]);
	hmap_put(&m, keys[BIG - 1], val(7));
	CHECK(m.used <= used); /* no fresh slot taken (a rehash may even lower it) */
	CHECK(hmap_get(&m, keys[BIG - 1]) == val(7));
	hmap_free(&m);
}

/* ---- http parsers ---------------------------------------------------------------------- */

static void test_parse_hostport(void)
{
	char host[64];
	int port;
	struct {
		const char *in, *host;
		int port;
	} good[] = {
		{"127.0.0.1:4650", "127.0.0.1", 4650},
		{"0.0.0.0:80", "0.0.0.0", 80},
		{"[::1]:4650", "::1", 4650},
		{"[fe80::1%eth0]:1", "fe80::1%eth0", 1},
		{"localhost:65535", "localhost", 65535},
		{"example.org:443", "example.org", 443},
		{"127.0.0.1:0", "127.0.0.1", 0}, /* port 0: any free port, for listening */
	};
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		memset(host, 'Z', sizeof host);
		port = -7;
		int rc = http_parse_hostport(good[i].in, host, sizeof host, &port);
		if (rc != 0)
			fprintf(stderr, "  refused %s\n", good[i].in);
		CHECK_EQ_INT(rc, 0);
		if (rc == 0) {
			CHECK_STR(host, good[i].host);
			CHECK_EQ_INT(port, good[i].port);
		}
	}
	static const char *const bad[] = {
		"", ":", "127.0.0.1", "127.0.0.1:", ":4650", "127.0.0.1:65536", "127.0.0.1:-1",
		"127.0.0.1:abc", "127.0.0.1:80x", "127.0.0.1:4650 ", "127.0.0.1:99999999999999999999",
		"[::1]", "[::1]4650", "[::1", "[]:80", "[::1]:", "[::1]:x",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		port = -7;
		int rc = http_parse_hostport(bad[i], host, sizeof host, &port);
		if (rc != -EINVAL)
			fprintf(stderr, "  accepted \"%s\" (port %d)\n", bad[i], port);
		CHECK_EQ_INT(rc, -EINVAL);
	}
	/* a host that does not fit the caller's buffer */
	char small[5];
	CHECK_EQ_INT(http_parse_hostport("abcd:1", small, sizeof small, &port), 0);
	CHECK_STR(small, "abcd");
	CHECK_EQ_INT(http_parse_hostport("abcde:1", small, sizeof small, &port), -EINVAL);
	CHECK_EQ_INT(http_parse_hostport("[abcde]:1", small, sizeof small, &port), -EINVAL);
}

static void test_parse_url(void)
{
	char host[64];
	int port;
	struct {
		const char *in, *host;
		int port;
	} good[] = {
		{"http://127.0.0.1:4650", "127.0.0.1", 4650},
		{"http://127.0.0.1:4650/", "127.0.0.1", 4650},
		{"http://[::1]:4650", "::1", 4650},
		{"http://[::1]:4650/", "::1", 4650},
		{"http://localhost", "localhost", 80},
		{"http://localhost/", "localhost", 80},
		{"http://core.example.org:8080", "core.example.org", 8080},
		{"https://127.0.0.1:4650", "127.0.0.1", 4650},
		{"https://[::1]:4650/", "::1", 4650},
		{"https://core.example.org", "core.example.org", 443},
	};
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		port = -7;
		int rc = http_parse_url(good[i].in, host, sizeof host, &port);
		if (rc != 0)
			fprintf(stderr, "  refused %s\n", good[i].in);
		CHECK_EQ_INT(rc, 0);
		if (rc == 0) {
			CHECK_STR(host, good[i].host);
			CHECK_EQ_INT(port, good[i].port);
		}
	}
	static const char *const bad[] = {
		"", "127.0.0.1:4650", "https:/127.0.0.1:4650", "https://", "https://h:1/v1", "ftp://h:1", "http://", "http:///",
		"http://h:1/v1", "http://h:1/v1/instances", "http://h:", "http://h:65536",
		"http://h:-5", "http://:80", "HTTP//h:1", "http://[::1",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		port = -7;
		int rc = http_parse_url(bad[i], host, sizeof host, &port);
		if (rc != -EINVAL)
			fprintf(stderr, "  accepted \"%s\" (host %s port %d)\n", bad[i], host, port);
		CHECK_EQ_INT(rc, -EINVAL);
	}
	/* a host too long for the caller's buffer is refused, not truncated */
	char small[5];
	CHECK_EQ_INT(http_parse_url("http://abcdefgh", small, sizeof small, &port), -EINVAL);
	CHECK_EQ_INT(http_parse_url("http://abcdefgh:80", small, sizeof small, &port), -EINVAL);
	/* very long input does not overflow anything */
	char longurl[1200];
	memcpy(longurl, "http://", 7);
	memset(longurl + 7, 'h', sizeof longurl - 7 - 6);
	memcpy(longurl + sizeof longurl - 6, ":4650", 6);
	CHECK_EQ_INT(http_parse_url(longurl, host, sizeof host, &port), -EINVAL);
}

/* A mistyped --core gets the fix in its message: the URL to give instead. */
static void test_check_base_url(void)
{
	char err[400];
	struct {
		const char *in, *says;
	} cases[] = {
		{"127.0.0.1:4650", "use http://127.0.0.1:4650"},
		{"localhost", "use http://localhost"},
		{"[::1]:4650", "use http://[::1]:4650"},
		{"https://core:4650/v1", "no path: use https://core:4650"},
		{"http://core:4650/v1/instances", "no path: use http://core:4650"},
		{"ftp://h:1", "e.g. http://127.0.0.1:4650"},
		{"", "e.g. http://127.0.0.1:4650"},
		{"http://h:65536", "e.g. http://127.0.0.1:4650"},
		{"127.0.0.1:99999", "e.g. http://127.0.0.1:4650"}, /* no fix that would not work */
	};
	CHECK_EQ_INT(http_check_base_url("http://127.0.0.1:4650", err, sizeof err), 0);
	CHECK_EQ_INT(http_check_base_url("http://core.example.org", err, sizeof err), 0);
	CHECK_EQ_INT(http_check_base_url("https://127.0.0.1:4650", err, sizeof err), 0);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		err[0] = '\0';
		CHECK_EQ_INT(http_check_base_url(cases[i].in, err, sizeof err), -EINVAL);
		if (!strstr(err, cases[i].says))
			fprintf(stderr, "  \"%s\": \"%s\" lacks \"%s\"\n", cases[i].in, err, cases[i].says);
		CHECK(strstr(err, cases[i].says) != NULL);
	}
	/* a sentence too long for the buffer is replaced, never cut mid-word */
	char small[48];
	CHECK_EQ_INT(http_check_base_url("some.very.long.host.name.example.org:4650", small, sizeof small), -EINVAL);
	CHECK_STR(small, "not a URL of the form http(s)://HOST:PORT");
}

static void test_loopback(void)
{
	static const char *const yes[] = {"127.0.0.1", "127.0.0.53", "127.1.2.3", "127.255.255.254",
	                                  "localhost", "::1", "0:0:0:0:0:0:0:1"};
	static const char *const no[] = {"0.0.0.0", "::", "10.0.0.1", "192.168.1.1", "128.0.0.1",
	                                 "126.255.255.255", "1.127.0.0", "example.org", "", "[::1]",
	                                 "localhost.example.org", "127.0.0.1.example.org", "::2", "fe80::1"};
	for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
		if (!http_host_is_loopback(yes[i]))
			fprintf(stderr, "  %s: not loopback?\n", yes[i]);
		CHECK(http_host_is_loopback(yes[i]));
	}
	for (size_t i = 0; i < sizeof no / sizeof no[0]; i++) {
		if (http_host_is_loopback(no[i]))
			fprintf(stderr, "  %s: loopback?\n", no[i]);
		CHECK(!http_host_is_loopback(no[i]));
	}
	/* what the listen parser yields for [::1] is loopback */
	char host[64];
	int port;
	CHECK_EQ_INT(http_parse_hostport("[::1]:4650", host, sizeof host, &port), 0);
	CHECK(http_host_is_loopback(host));
	CHECK_EQ_INT(http_parse_hostport("0.0.0.0:4650", host, sizeof host, &port), 0);
	CHECK(!http_host_is_loopback(host));
}

/* ---- fs ------------------------------------------------------------------------------------ */

static char tmpdir[64];

static void path_in(char *buf, size_t len, const char *rel)
{
	snprintf(buf, len, "%s/%s", tmpdir, rel);
}

static int write_bytes(const char *path, size_t n, char fill)
{
	char *b = malloc(n ? n : 1);
	int rc;
	if (!b)
		abort();
	memset(b, fill, n);
	rc = fs_write_atomic(path, b, n, false);
	free(b);
	return rc;
}

/* Entries of path's dir named like its temp files ("NAME.tmp..."). */
static int temps_left(const char *path)
{
	char dir[256], prefix[300];
	const char *slash = strrchr(path, '/');
	int n = 0;
	struct dirent *e;
	DIR *d;
	snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
	snprintf(prefix, sizeof prefix, "%s.tmp", slash + 1);
	if (!(d = opendir(dir)))
		return -1;
	while ((e = readdir(d)))
		n += strncmp(e->d_name, prefix, strlen(prefix)) == 0;
	closedir(d);
	return n;
}

/* Writers of one path at once (two instances fetching one image blob on a node's workers):
 * every write succeeds and the file holds one writer's whole content, never a mix or a
 * truncation. With one fixed temp name for all, a second writer truncated the first's
 * file before its rename, or found it renamed away (ENOENT). */
#define RACE_WRITERS 4
#define RACE_ROUNDS 100
#define RACE_LEN 65536

struct race {
	const char *path;
	char fill;
	int failures;
};

static void *race_writer(void *arg)
{
	struct race *r = arg;
	char *buf = malloc(RACE_LEN);
	if (!buf)
		abort();
	memset(buf, r->fill, RACE_LEN);
	for (int i = 0; i < RACE_ROUNDS; i++)
		r->failures += fs_write_atomic(r->path, buf, RACE_LEN - (size_t)r->fill, false) != 0;
	free(buf);
	return NULL;
}

static void test_fs_write_atomic_concurrent(void)
{
	char p[256];
	pthread_t t[RACE_WRITERS];
	struct race r[RACE_WRITERS];
	char *out = NULL;
	size_t len = 0;
	path_in(p, sizeof p, "blob");
	for (int i = 0; i < RACE_WRITERS; i++) {
		r[i] = (struct race){.path = p, .fill = (char)('a' + i)};
		CHECK_EQ_INT(pthread_create(&t[i], NULL, race_writer, &r[i]), 0);
	}
	for (int i = 0; i < RACE_WRITERS; i++) {
		pthread_join(t[i], NULL);
		CHECK_EQ_INT(r[i].failures, 0);
	}
	CHECK_EQ_INT(fs_read_file(p, RACE_LEN, &out, &len), 0);
	/* one writer's whole content: its length says which, every byte its fill */
	char fill = out && len > 0 ? out[0] : 0;
	CHECK(fill >= 'a' && fill < 'a' + RACE_WRITERS);
	CHECK_EQ_INT((long)len, (long)(RACE_LEN - (size_t)fill));
	for (size_t i = 0; out && i < len; i++)
		if (out[i] != fill) {
			CHECK(!"mixed content");
			break;
		}
	free(out);
	CHECK_EQ_INT(temps_left(p), 0);
}

static void test_fs_write_read(void)
{
	char p[256], tmp[300];
	char *out = NULL;
	size_t len = 12345;
	struct stat st;

	path_in(p, sizeof p, "state.json");
	CHECK_EQ_INT(fs_write_atomic(p, "{\"a\":1}", 7, true), 0);
	CHECK_EQ_INT(fs_read_file(p, 1024, &out, &len), 0);
	CHECK_EQ_INT(len, 7);
	CHECK(out && strcmp(out, "{\"a\":1}") == 0);
	CHECK(out && out[7] == '\0');
	free(out);
	out = NULL;

	/* no temp file is left behind */
	CHECK_EQ_INT(temps_left(p), 0);
	snprintf(tmp, sizeof tmp, "%s.tmp", p);
	CHECK(stat(tmp, &st) < 0 && errno == ENOENT);

	/* only the owner can read it (it may hold tokens) */
	CHECK_EQ_INT(stat(p, &st), 0);
	CHECK_EQ_INT(st.st_mode & 077, 0);

	/* overwrite: the new content entirely, shorter than before */
	CHECK_EQ_INT(fs_write_atomic(p, "x", 1, false), 0);
	CHECK_EQ_INT(fs_read_file(p, 1024, &out, NULL), 0); /* len may be NULL */
	CHECK(out && strcmp(out, "x") == 0);
	free(out);
	out = NULL;

	/* binary content with NULs, length exact */
	static const char bin[] = {'a', '\0', 'b', '\0', '\xff'};
	CHECK_EQ_INT(fs_write_atomic(p, bin, sizeof bin, false), 0);
	CHECK_EQ_INT(fs_read_file(p, 1024, &out, &len), 0);
	CHECK_EQ_INT(len, sizeof bin);
	CHECK(out && memcmp(out, bin, sizeof bin) == 0 && out[sizeof bin] == '\0');
	free(out);
	out = NULL;

	/* empty file */
	CHECK_EQ_INT(fs_write_atomic(p, "", 0, true), 0);
	CHECK_EQ_INT(fs_read_file(p, 1024, &out, &len), 0);
	CHECK_EQ_INT(len, 0);
	CHECK(out && out[0] == '\0');
	free(out);
	out = NULL;

	/* errors */
	path_in(p, sizeof p, "no/such/dir/file");
	CHECK_EQ_INT(fs_write_atomic(p, "x", 1, false), -ENOENT);
	CHECK_EQ_INT(fs_read_file(p, 1024, &out, &len), -ENOENT);
	CHECK(out == NULL);
	path_in(p, sizeof p, "");
	CHECK_EQ_INT(fs_read_file(p, 1024, &out, &len) < 0, 1); /* a directory is not readable as a file */
	CHECK(out == NULL);
	free(out);

	/* a large file */
	path_in(p, sizeof p, "big");
	CHECK_EQ_INT(write_bytes(p, 300000, 'q'), 0);
	CHECK_EQ_INT(fs_read_file(p, 1 << 20, &out, &len), 0);
	CHECK_EQ_INT(len, 300000);
	CHECK(out && out[0] == 'q' && out[299999] == 'q' && out[300000] == '\0');
	free(out);
}

/* fs_read_file reads "at most max bytes": a file of exactly max bytes is accepted, one
 * byte more is -EFBIG, at every size around the internal buffer's growth steps. */
static void test_fs_read_max(void)
{
	char p[256];
	struct {
		size_t size, max;
		int rc;
	} cases[] = {
		{10, 5, -EFBIG},     {10, 9, -EFBIG},     {10, 10, 0},        {10, 11, 0},
		{0, 0, 0},           {1, 0, -EFBIG},      {4095, 4096, 0},    {4096, 4096, 0},
		{4097, 4096, -EFBIG}, {4096, 4095, -EFBIG}, {8192, 8192, 0},   {8193, 8192, -EFBIG},
		{8192, 10000, 0},    {16384, 10000, -EFBIG}, {5000, 5000, 0},  {5001, 5000, -EFBIG},
		{65536, 65536, 0},   {65537, 65536, -EFBIG}, {100000, 65536, -EFBIG},
	};
	path_in(p, sizeof p, "sized");
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char *out = NULL;
		size_t len = 0;
		CHECK_EQ_INT(write_bytes(p, cases[i].size, 'm'), 0);
		int rc = fs_read_file(p, cases[i].max, &out, &len);
		if (rc != cases[i].rc)
			fprintf(stderr, "  file of %zu bytes, max %zu: got %d, want %d\n", cases[i].size,
			        cases[i].max, rc, cases[i].rc);
		CHECK_EQ_INT(rc, cases[i].rc);
		if (rc == 0) {
			CHECK_EQ_INT(len, cases[i].size);
			CHECK(out != NULL);
		} else {
			CHECK(out == NULL);
		}
		free(out);
	}
}

static void test_fs_mkdir_p(void)
{
	char p[256], f[256];
	struct stat st;

	path_in(p, sizeof p, "a/b/c/d");
	CHECK_EQ_INT(fs_mkdir_p(p, 0700), 0);
	CHECK(stat(p, &st) == 0 && S_ISDIR(st.st_mode));
	CHECK_EQ_INT(st.st_mode & 0777, 0700);
	/* again: already there is fine */
	CHECK_EQ_INT(fs_mkdir_p(p, 0700), 0);
	/* trailing slash, doubled slashes */
	path_in(p, sizeof p, "a/b/e/");
	CHECK_EQ_INT(fs_mkdir_p(p, 0750), 0);
	path_in(p, sizeof p, "a//b//f");
	CHECK_EQ_INT(fs_mkdir_p(p, 0750), 0);
	path_in(p, sizeof p, "a/b/f");
	CHECK(stat(p, &st) == 0 && S_ISDIR(st.st_mode));
	/* the parent of tmpdir exists: absolute paths work from the root */
	CHECK_EQ_INT(fs_mkdir_p(tmpdir, 0700), 0);

	/* a file in the way: refused */
	path_in(f, sizeof f, "a/file");
	CHECK_EQ_INT(fs_write_atomic(f, "x", 1, false), 0);
	path_in(p, sizeof p, "a/file/sub");
	CHECK_EQ_INT(fs_mkdir_p(p, 0700), -ENOTDIR);
	/* the path itself is a file: not a directory, like `mkdir -p` */
	int rc = fs_mkdir_p(f, 0700);
	if (rc == 0)
		fprintf(stderr, "  fs_mkdir_p(\"%s\") on a regular file returned 0\n", f);
	CHECK(rc == -EEXIST || rc == -ENOTDIR);

	CHECK(fs_mkdir_p("", 0700) < 0);
}

static void test_fs_remove_tree(void)
{
	char p[256], outside[256], link[256];
	struct stat st;

	path_in(p, sizeof p, "tree/x/y/z");
	CHECK_EQ_INT(fs_mkdir_p(p, 0700), 0);
	path_in(p, sizeof p, "tree/x/y/z/f1");
	CHECK_EQ_INT(fs_write_atomic(p, "1", 1, false), 0);
	path_in(p, sizeof p, "tree/x/f2");
	CHECK_EQ_INT(fs_write_atomic(p, "2", 1, false), 0);
	path_in(p, sizeof p, "tree/.hidden");
	CHECK_EQ_INT(fs_write_atomic(p, "3", 1, false), 0);
	path_in(p, sizeof p, "tree/ro");
	CHECK_EQ_INT(fs_mkdir_p(p, 0500), 0); /* an empty read-only dir is still removable */

	/* a symlink to a file and one to a dir outside the tree: removed, not followed */
	path_in(outside, sizeof outside, "keep");
	CHECK_EQ_INT(fs_mkdir_p(outside, 0700), 0);
	path_in(p, sizeof p, "keep/precious");
	CHECK_EQ_INT(fs_write_atomic(p, "do not delete", 13, false), 0);
	path_in(link, sizeof link, "tree/x/to-dir");
	CHECK_EQ_INT(symlink(outside, link), 0);
	path_in(link, sizeof link, "tree/x/to-file");
	CHECK_EQ_INT(symlink(p, link), 0);
	path_in(link, sizeof link, "tree/dangling");
	CHECK_EQ_INT(symlink("/nonexistent/target", link), 0);

	path_in(p, sizeof p, "tree");
	CHECK_EQ_INT(fs_remove_tree(p), 0);
	CHECK(lstat(p, &st) < 0 && errno == ENOENT);
	path_in(p, sizeof p, "keep/precious");
	CHECK_EQ_INT(stat(p, &st), 0);
	CHECK(stat(outside, &st) == 0 && S_ISDIR(st.st_mode));

	/* missing is not an error */
	path_in(p, sizeof p, "tree");
	CHECK_EQ_INT(fs_remove_tree(p), 0);
	path_in(p, sizeof p, "never/was/here");
	CHECK_EQ_INT(fs_remove_tree(p), 0);

	/* a single file */
	path_in(p, sizeof p, "lonely");
	CHECK_EQ_INT(fs_write_atomic(p, "x", 1, false), 0);
	CHECK_EQ_INT(fs_remove_tree(p), 0);
	CHECK(lstat(p, &st) < 0);
}

/* ---- idset --------------------------------------------------------------------------- */

struct walk_log {
	char keys[4096];
	int n, stop_at;
};

static int log_key(void *arg, const char *key, void *value)
{
	struct walk_log *w = arg;
	(void)value;
	strncat(w->keys, key, sizeof w->keys - strlen(w->keys) - 1);
	strncat(w->keys, " ", sizeof w->keys - strlen(w->keys) - 1);
	return ++w->n == w->stop_at;
}

/* Hex keys walk in strcmp order, also across buckets, from any boundary (present or not). */
static void test_idset_order_and_after(void)
{
	static const char *ids[] = {"ffff0000", "0000aaaa", "00001111", "8000", "80001", "7fffffff", "a"};
	struct idset s;
	struct walk_log w = {.stop_at = -1};
	int v = 1;
	idset_init(&s);
	CHECK_EQ_INT(idset_walk(&s, NULL, log_key, &w), 0);
	for (size_t i = 0; i < sizeof ids / sizeof *ids; i++)
		idset_put(&s, ids[i], &v);
	idset_put(&s, "8000", &v); /* a replacement, not a second entry */
	CHECK_EQ_INT(idset_size(&s), 7);
	idset_walk(&s, NULL, log_key, &w);
	CHECK_STR(w.keys, "00001111 0000aaaa 7fffffff 8000 80001 a ffff0000 ");
	w = (struct walk_log){.stop_at = 2};
	CHECK_EQ_INT(idset_walk(&s, "7", log_key, &w), 1); /* stopped by fn */
	CHECK_STR(w.keys, "7fffffff 8000 ");
	w = (struct walk_log){.stop_at = -1};
	idset_walk(&s, "8000", log_key, &w); /* after an existing key: that key excluded */
	CHECK_STR(w.keys, "80001 a ffff0000 ");
	CHECK(idset_remove(&s, "80001") == &v);
	CHECK(idset_remove(&s, "80001") == NULL);
	w = (struct walk_log){.stop_at = -1};
	idset_walk(&s, "80001", log_key, &w); /* after a removed key */
	CHECK_STR(w.keys, "a ffff0000 ");
	w = (struct walk_log){.stop_at = -1};
	idset_walk(&s, "ffff0000", log_key, &w);
	CHECK_STR(w.keys, "");
	idset_free(&s);
}

/* Many keys in one bucket (same first four characters) stay sorted through removals. */
static void test_idset_one_bucket(void)
{
	char ids[200][8];
	struct idset s;
	struct walk_log w = {.stop_at = -1};
	idset_init(&s);
	for (int i = 0; i < 200; i++) {
		snprintf(ids[i], sizeof ids[i], "abcd%03d", (i * 7) % 200);
		idset_put(&s, ids[i], ids[i]);
	}
	for (int i = 0; i < 200; i += 2)
		CHECK(idset_remove(&s, ids[i]) == ids[i]); /* the even numbers go */
	CHECK_EQ_INT(idset_size(&s), 100);
	idset_walk(&s, "abcd100", log_key, &w);
	CHECK_EQ_INT(w.n, 50);
	CHECK(strncmp(w.keys, "abcd101 abcd103 ", 16) == 0);
	for (char *p = w.keys, *q; (q = strchr(p, ' ')) && q[1]; p = q + 1)
		CHECK(strncmp(p, q + 1, 7) < 0);
	idset_free(&s);
}

/* Keys that share their first eight bytes, end within them or past them, or are not hex
 * (all of these fall in bucket 0): found, replaced and walked in strcmp order, as the kept
 * prefixes decide most comparisons and the keys themselves the rest. */
static void test_idset_prefix_ties(void)
{
	static const char *names[] = {"zz", "zzzzzzzz", "zzzzzzzzb", "zzzzzzzza", "zzzzzzz", "z", "0000",
	                              "00000000", "000000001", "00000000\x80", "G", "g", "0000000", "00"};
	enum { N = sizeof names / sizeof *names };
	const char *sorted[N];
	char want[256];
	size_t len = 0;
	struct idset s;
	struct walk_log w = {.stop_at = -1};
	int v = 1, other = 2;
	idset_init(&s);
	for (size_t i = 0; i < N; i++)
		idset_put(&s, names[i], &v);
	for (size_t i = 0; i < N; i++)
		idset_put(&s, names[i], &other); /* replaced: one entry each */
	CHECK_EQ_INT(idset_size(&s), N);
	memcpy(sorted, names, sizeof sorted);
	for (size_t i = 1; i < N; i++) /* insertion sort by strcmp */
		for (size_t j = i; j > 0 && strcmp(sorted[j - 1], sorted[j]) > 0; j--) {
			const char *t = sorted[j];
			sorted[j] = sorted[j - 1];
			sorted[j - 1] = t;
		}
	for (size_t i = 0; i < N; i++)
		len += (size_t)snprintf(want + len, sizeof want - len, "%s ", sorted[i]);
	idset_walk(&s, NULL, log_key, &w);
	CHECK_STR(w.keys, want);
	w = (struct walk_log){.stop_at = 1};
	idset_walk(&s, "zzzzzzzza", log_key, &w);
	CHECK_STR(w.keys, "zzzzzzzzb ");
	for (size_t i = 0; i < N; i++)
		CHECK(idset_remove(&s, names[i]) == &other);
	CHECK_EQ_INT(idset_size(&s), 0);
	idset_free(&s);
}

int main(void)
{
	snprintf(tmpdir, sizeof tmpdir, "/tmp/mv-test-common-XXXXXX");
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 2;
	}
	RUN(test_hmap_basic);
	RUN(test_hmap_replace_takes_new_key);
	RUN(test_hmap_growth_and_iteration);
	RUN(test_hmap_tombstone_reuse);
	RUN(test_idset_order_and_after);
	RUN(test_idset_one_bucket);
	RUN(test_idset_prefix_ties);
	RUN(test_parse_hostport);
	RUN(test_parse_url);
	RUN(test_check_base_url);
	RUN(test_loopback);
	RUN(test_fs_write_read);
	RUN(test_fs_write_atomic_concurrent);
	RUN(test_fs_read_max);
	RUN(test_fs_mkdir_p);
	RUN(test_fs_remove_tree);
	if (fs_remove_tree(tmpdir) != 0)
		fprintf(stderr, "could not remove %s\n", tmpdir);
	UNIT_END();
}
