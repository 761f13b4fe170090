/* xenstore-standin — part of the xl STAND-IN toolstack (tests only), NOT Xen's xenstore.
 *
 * This machine has no Xen, hence no xenstored. This program answers the calls the xen
 * driver makes of Xen's xenstore client (`xenstore MODE ...`, the multi-call binary of
 * Debian's xenstore-utils) over a fake store: a directory tree, one directory per node
 * with its value in a file ".value" (a name xenstore cannot have), under
 * $XL_STANDIN_DIR/xenstore. Every change is appended to a journal ("W PATH" written,
 * "R PATH" removed) that `watch` follows with inotify, so watches fire as xenstored's do.
 *
 * What it checks as xenstored and the real client would (and refuses the same way,
 * exit 1 and a message on stderr):
 *   - options are parsed as the client's getopt_long does: an argument that starts with
 *     '-' before "--" is an option, and an unknown one is an error (so a value such as a
 *     Click configuration chunk "-> out;" must come after "--");
 *   - node paths: absolute, characters [A-Za-z0-9_/@-], no "//", no trailing '/', at most
 *     3072 bytes (XENSTORE_ABS_PATH_MAX); a write's path + NUL + value at most 4096 bytes
 *     (XENSTORE_PAYLOAD_MAX);
 *   - `write` takes key value pairs and writes them in one transaction; values are
 *     unescaped as the client does without -R (\\ \n \t \r \xNN \NNN);
 *   - a watch fires once when it is set (with the watched path), then for each change of
 *     the node or below it, and for the removal of a node above it; @releaseDomain fires
 *     when the stand-in xl destroys a domain.
 *
 * Modes: write [-R] [--] K V..., read [-R] K..., exists K..., rm K..., watch [-n N] K...
 * Stand-in-only modes, used by the stand-in xl (tests/xl-standin/xl):
 *   standin-release        fire @releaseDomain
 *   standin-boot DOMID MS  MS milliseconds later the "guest" boots: it writes its console lines (as xenconsoled
 *                          would log them, to $XL_STANDIN_CONSOLE_DIR/guest-NAME.log, default
 *                          $XL_STANDIN_DIR/console) and, for a Mini-OS kernel, does what
 *                          ClickOS's main() does first: writes data/clickos = "" under its
 *                          home and sets its watch there.
 * And it plays the ClickOS guest's side of the control protocol (minios/click.cc): once
 * its watch is set, a write of data/clickos/R/status = "Running" makes it read
 * data/clickos/R/config/0, /1, ... and log "Starting driver..." (an empty configuration:
 * "Router init failed!"). A status written before the guest's watch existed is never seen,
 * as with the real guest. It keeps the configuration it read in
 * $XL_STANDIN_DIR/guests/DOMID/click-R.conf for the tests. No Click runs.
 *
 * The watch exits with its parent (PR_SET_PDEATHSIG), so a node killed by a test leaves no
 * watch behind; Xen's own client would linger until its next event. */
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define ABS_PATH_MAX 3072 /* XENSTORE_ABS_PATH_MAX */
#define PAYLOAD_MAX 4096  /* XENSTORE_PAYLOAD_MAX */
#define VALUE_FILE ".value"

static char base[PATH_MAX - 512], tree[PATH_MAX - 256];
static const char *prog = "xenstore";
static int lock_fd = -1;

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void fail(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "%s: ", prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static void lock(void)
{
	char path[PATH_MAX];
	snprintf(path, sizeof path, "%s/xenstore.lock", base);
	if ((lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0 || flock(lock_fd, LOCK_EX) < 0)
		fail("xl-standin: cannot lock %s: %s", path, strerror(errno));
}

static void unlock(void)
{
	close(lock_fd);
	lock_fd = -1;
}

static void journal(char op, const char *path)
{
	char file[PATH_MAX];
	FILE *f;
	snprintf(file, sizeof file, "%s/xenstore.journal", base);
	if (!(f = fopen(file, "a")) || fprintf(f, "%c %s\n", op, path) < 0 || fclose(f) != 0)
		fail("xl-standin: cannot append to %s", file);
}

static bool path_valid(const char *p)
{
	size_t n = strlen(p);
	if (p[0] != '/' || n > ABS_PATH_MAX || (n > 1 && p[n - 1] == '/') || strstr(p, "//"))
		return false;
	return strspn(p, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-/_@") == n;
}

static void node_dir(const char *p, char *out, size_t len)
{
	if (snprintf(out, len, "%s%s", tree, strcmp(p, "/") == 0 ? "" : p) >= (int)len)
		fail("xl-standin: path too long");
}

static bool node_exists(const char *p)
{
	char dir[PATH_MAX];
	struct stat st;
	node_dir(p, dir, sizeof dir);
	return stat(dir, &st) == 0 && S_ISDIR(st.st_mode);
}

static void mkdir_p(char *dir)
{
	for (char *s = dir + strlen(tree) + 1; (s = strchr(s, '/')); s++) {
		*s = '\0';
		if (mkdir(dir, 0755) < 0 && errno != EEXIST)
			fail("xl-standin: mkdir %s: %s", dir, strerror(errno));
		*s = '/';
	}
	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		fail("xl-standin: mkdir %s: %s", dir, strerror(errno));
}

static void node_write(const char *p, const char *value, size_t len)
{
	char dir[PATH_MAX], file[PATH_MAX + 16], tmp[PATH_MAX + 32];
	FILE *f;
	node_dir(p, dir, sizeof dir);
	mkdir_p(dir);
	snprintf(file, sizeof file, "%s/" VALUE_FILE, dir);
	snprintf(tmp, sizeof tmp, "%s.tmp", file);
	if (!(f = fopen(tmp, "wb")) || fwrite(value, 1, len, f) != len || fclose(f) != 0 || rename(tmp, file) < 0)
		fail("xl-standin: cannot write %s: %s", file, strerror(errno));
	journal('W', p);
}

/* The node's value (malloc'ed, NUL-terminated) or NULL when there is no such node. */
static char *node_read(const char *p, size_t *len)
{
	char dir[PATH_MAX], file[PATH_MAX + 16];
	FILE *f;
	char *buf = calloc(1, PAYLOAD_MAX + 1);
	if (!buf)
		fail("out of memory");
	*len = 0;
	if (!node_exists(p)) {
		free(buf);
		return NULL;
	}
	node_dir(p, dir, sizeof dir);
	snprintf(file, sizeof file, "%s/" VALUE_FILE, dir);
	if ((f = fopen(file, "rb"))) {
		*len = fread(buf, 1, PAYLOAD_MAX, f);
		fclose(f);
	}
	return buf;
}

static void remove_tree(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char sub[PATH_MAX];
	if (!d)
		return;
	while ((e = readdir(d))) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		snprintf(sub, sizeof sub, "%s/%s", dir, e->d_name);
		if (e->d_type == DT_DIR)
			remove_tree(sub);
		else
			unlink(sub);
	}
	closedir(d);
	rmdir(dir);
}

/* The client's unsanitise_value(): \t \n \r \\ \xNN and octal \NNN. */
static size_t unescape(const char *in, char *out)
{
	char *o = out;
	while (*in) {
		unsigned c = (unsigned char)*in++;
		int n = 0;
		if (c == '\\') {
			c = (unsigned char)*in++;
			switch (c) {
			case 't': c = '\t'; break;
			case 'n': c = '\n'; break;
			case 'r': c = '\r'; break;
			case '\\': c = '\\'; break;
			case 'x': sscanf(in, "%2x%n", &c, &n); in += n; break;
			case '0': case '1': case '2': case '3': case '4': case '5': case '6': case '7':
				--in;
				sscanf(in, "%3o%n", &c, &n);
				in += n;
				break;
			case 0: --in; break;
			default: break;
			}
		}
		*o++ = (char)c;
	}
	*o = '\0';
	return (size_t)(o - out);
}

/* GNU getopt_long as the client calls it: arguments before "--" that start with '-' are
 * option clusters; `valid` lists this mode's letters (':' after one that takes a value).
 * Returns the index of the first operand; operands are moved to the end in order. */
static int options(int argc, char **argv, const char *valid, bool *raw, long *count)
{
	char *operands[argc + 1];
	int n = 0, i;
	for (i = 0; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--") == 0) {
			i++;
			break;
		}
		if (a[0] != '-' || a[1] == '\0') {
			operands[n++] = argv[i];
			continue;
		}
		for (const char *c = a + 1; *c; c++) {
			const char *o = strchr(valid, *c);
			if (!o || *c == ':')
				fail("invalid option -- '%c'", *c);
			if (*c == 'R')
				*raw = true;
			if (o[1] == ':') {
				const char *v = c[1] ? c + 1 : i + 1 < argc ? argv[++i] : NULL;
				if (!v)
					fail("option requires an argument -- '%c'", *c);
				*count = strtol(v, NULL, 10);
				break;
			}
		}
	}
	for (; i < argc; i++)
		operands[n++] = argv[i];
	for (i = 0; i < n; i++)
		argv[argc - n + i] = operands[i];
	return argc - n;
}

/* ---- the ClickOS guest's side (minios/click.cc) ---- */

static bool guest_file(const char *domid, const char *name, char *out, size_t len)
{
	return snprintf(out, len, "%s/guests/%s/%s", base, domid, name) < (int)len;
}

static void console_write(const char *domid, const char *text)
{
	char path[PATH_MAX], name[128] = "", file[PATH_MAX + 160], *dir = getenv("XL_STANDIN_CONSOLE_DIR");
	char dflt[PATH_MAX];
	size_t len;
	char *v;
	int fd;
	snprintf(path, sizeof path, "/local/domain/%s/name", domid);
	if (!(v = node_read(path, &len)))
		return;
	snprintf(name, sizeof name, "%.*s", (int)len, v);
	free(v);
	if (!dir || !dir[0]) {
		snprintf(dflt, sizeof dflt, "%s/console", base);
		dir = dflt;
	}
	mkdir(dir, 0755);
	/* xenconsoled's create_domain_log: LOG_DIR/guest-NAME.log, O_WRONLY|O_CREAT|O_APPEND */
	snprintf(file, sizeof file, "%s/guest-%s.log", dir, name);
	if ((fd = open(file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644)) < 0)
		fail("xl-standin: cannot open the console log %s: %s", file, strerror(errno));
	if (write(fd, text, strlen(text)) != (ssize_t)strlen(text))
		fail("xl-standin: cannot write the console log %s", file);
	close(fd);
}

static void clickos_on_status(const char *domid, const char *rid)
{
	char flag[PATH_MAX], conf_file[PATH_MAX], path[256], line[512];
	char *config = NULL, *chunk;
	size_t total = 0, len;
	int chunks = 0;
	FILE *f;

	if (!guest_file(domid, "clickos-watch", flag, sizeof flag) || access(flag, F_OK) != 0)
		return; /* the guest has no watch yet: it will never see this write */
	for (;; chunks++) {
		snprintf(path, sizeof path, "/local/domain/%s/data/clickos/%s/config/%d", domid, rid, chunks);
		if (!(chunk = node_read(path, &len)))
			break;
		if (!(config = realloc(config, total + len + 1)))
			fail("out of memory");
		memcpy(config + total, chunk, len);
		total += len;
		free(chunk);
	}
	snprintf(conf_file, sizeof conf_file, "%s/guests/%s/click-%s.conf", base, domid, rid);
	if (!(f = fopen(conf_file, "wb")) || (total && fwrite(config, 1, total, f) != total) || fclose(f) != 0)
		fail("xl-standin: cannot write %s", conf_file);
	free(config);
	snprintf(line, sizeof line,
	         "[on_status] router id %s\n[on_status] status change to Running\n"
	         "xl-standin: ClickOS router %s read %zu bytes of Click configuration from %d chunks (no Click runs)\n"
	         "%s",
	         rid, rid, total, chunks, total ? "[router_thread] Starting driver...\n\n" : "[router_thread] Router init failed!\n");
	console_write(domid, line);
}

/* After a write: does the ClickOS guest of that domain react to it? */
static void guest_sees(const char *p, const char *value)
{
	char domid[16], rid[16], tail[16];
	if (sscanf(p, "/local/domain/%15[0-9]/data/clickos/%15[0-9]/%15s", domid, rid, tail) == 3 &&
	    strcmp(tail, "status") == 0 && strcmp(value, "Running") == 0)
		clickos_on_status(domid, rid);
}

static void standin_boot(const char *domid)
{
	char path[256], file[PATH_MAX], text[1024], type[16] = "?", guest_os[32] = "-", extra[700] = "";
	FILE *f;
	snprintf(path, sizeof path, "/local/domain/%s", domid);
	if (!node_exists(path))
		return; /* destroyed before it booted */
	if (guest_file(domid, "type", file, sizeof file) && (f = fopen(file, "r"))) {
		if (!fgets(type, sizeof type, f))
			type[0] = '\0';
		fclose(f);
	}
	if (guest_file(domid, "guest_os", file, sizeof file) && (f = fopen(file, "r"))) {
		if (!fgets(guest_os, sizeof guest_os, f))
			guest_os[0] = '\0';
		fclose(f);
	}
	if (guest_file(domid, "extra", file, sizeof file) && (f = fopen(file, "r"))) {
		if (!fgets(extra, sizeof extra, f))
			extra[0] = '\0';
		fclose(f);
	}
	type[strcspn(type, "\n")] = guest_os[strcspn(guest_os, "\n")] = extra[strcspn(extra, "\n")] = '\0';
	snprintf(text, sizeof text,
	         "xl-standin console: domain %s booted as %s, GUEST_OS %s (no guest runs: this is the stand-in)\n"
	         "  cmd_line: %s\n",
	         domid, type, guest_os, extra);
	console_write(domid, text);
	if (strcmp(guest_os, "Mini-OS") == 0) {
		/* ClickOS main(): xenbus_write("data/clickos", ""), then its watch on it */
		snprintf(path, sizeof path, "/local/domain/%s/data/clickos", domid);
		node_write(path, "", 0);
		if (guest_file(domid, "clickos-watch", file, sizeof file) && (f = fopen(file, "w")))
			fclose(f);
	}
}

/* ---- watch ---- */

static bool under(const char *p, const char *dir)
{
	size_t n = strlen(dir);
	return strncmp(p, dir, n) == 0 && (p[n] == '/' || (n == 1 && dir[0] == '/'));
}

static void fire(const char *event)
{
	if (printf("%s\n", event) < 0 || fflush(stdout) != 0)
		exit(0); /* the reader is gone */
}

static void watch(int nkeys, char **keys, long max)
{
	char file[PATH_MAX], buf[8192], line[ABS_PATH_MAX + 8];
	size_t line_len = 0;
	long fired = 0;
	off_t at;
	int fd, in;

	prctl(PR_SET_PDEATHSIG, SIGTERM);
	for (int k = 0; k < nkeys; k++)
		if (!path_valid(keys[k]) && strcmp(keys[k], "@releaseDomain") != 0 && strcmp(keys[k], "@introduceDomain") != 0)
			fail("Unable to add watch on %s", keys[k]);
	snprintf(file, sizeof file, "%s/xenstore.journal", base);
	lock();
	if ((fd = open(file, O_RDONLY | O_CREAT | O_CLOEXEC, 0644)) < 0)
		fail("xl-standin: %s: %s", file, strerror(errno));
	at = lseek(fd, 0, SEEK_END);
	if ((in = inotify_init1(IN_CLOEXEC)) < 0 || inotify_add_watch(in, file, IN_MODIFY) < 0)
		fail("xl-standin: inotify on %s: %s", file, strerror(errno));
	unlock();
	for (int k = 0; k < nkeys && (max < 0 || fired < max); k++, fired++)
		fire(keys[k]); /* xenstored fires each watch once when it is set */
	while (max < 0 || fired < max) {
		ssize_t n = pread(fd, buf, sizeof buf, at);
		if (n < 0)
			fail("xl-standin: read %s: %s", file, strerror(errno));
		if (n == 0) {
			char ev[4096];
			if (read(in, ev, sizeof ev) < 0 && errno != EINTR)
				fail("xl-standin: inotify read: %s", strerror(errno));
			continue;
		}
		at += n;
		for (ssize_t i = 0; i < n && (max < 0 || fired < max); i++) {
			if (buf[i] != '\n') {
				if (line_len < sizeof line - 1)
					line[line_len++] = buf[i];
				continue;
			}
			line[line_len] = '\0';
			line_len = 0;
			if (strlen(line) < 3)
				continue;
			for (int k = 0; k < nkeys; k++) {
				const char *p = line + 2;
				if (strcmp(p, keys[k]) == 0 || (keys[k][0] == '/' && under(p, keys[k]))) {
					fire(p);
					fired++;
				} else if (line[0] == 'R' && keys[k][0] == '/' && under(keys[k], p)) {
					fire(keys[k]); /* a node above the watched one was removed */
					fired++;
				}
			}
		}
	}
	exit(0);
}

/* ---- main ---- */

int main(int argc, char **argv)
{
	const char *dir = getenv("XL_STANDIN_DIR"), *mode;
	bool raw = false;
	long count = -1;
	int first, rc = 0;

	if (!dir || !dir[0]) {
		fprintf(stderr, "xenstore-standin: set XL_STANDIN_DIR (this is the xl stand-in's fake xenstore)\n");
		return 2;
	}
	snprintf(base, sizeof base, "%s", dir);
	snprintf(tree, sizeof tree, "%s/xenstore", base);
	if (argc < 2)
		fail("Usage: %s <mode> [-h] [...]", argv[0]);
	mode = argv[1];
	argc -= 2;
	argv += 2;

	if (strcmp(mode, "standin-boot") != 0) {
		mkdir(base, 0755);
		mkdir(tree, 0755);
	}
	if (strcmp(mode, "standin-release") == 0) {
		lock();
		journal('W', "@releaseDomain");
		unlock();
		return 0;
	}
	if (strcmp(mode, "standin-boot") == 0 && argc == 2) {
		long ms = strtol(argv[1], NULL, 10);
		struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
		if (access(tree, F_OK) != 0)
			return 0; /* the test is over */
		lock();
		standin_boot(argv[0]);
		unlock();
		return 0;
	}
	if (strcmp(mode, "write") == 0) {
		char **vals;
		size_t *lens;
		first = options(argc, argv, "hR", &raw, &count);
		if (argc - first < 2 || (argc - first) % 2)
			fail("Usage: xenstore write [-h] [-R] key value [...]");
		if (!(vals = calloc((size_t)argc, sizeof *vals)) || !(lens = calloc((size_t)argc, sizeof *lens)))
			fail("out of memory");
		for (int i = first; i < argc; i += 2) {
			if (!path_valid(argv[i]))
				fail("could not write path %s (xl-standin: not a valid xenstore path)", argv[i]);
			if (!(vals[i] = strdup(argv[i + 1])))
				fail("out of memory");
			lens[i] = raw ? strlen(vals[i]) : unescape(argv[i + 1], vals[i]);
			if (strlen(argv[i]) + 1 + lens[i] > PAYLOAD_MAX)
				fail("could not write path %s (xl-standin: path + value over the %d-byte payload limit: E2BIG)",
				     argv[i], PAYLOAD_MAX);
		}
		lock(); /* one transaction: all or nothing, then what the guest sees of it */
		for (int i = first; i < argc; i += 2)
			node_write(argv[i], vals[i], lens[i]);
		for (int i = first; i < argc; i += 2)
			guest_sees(argv[i], vals[i]);
		unlock();
		for (int i = first; i < argc; i += 2)
			free(vals[i]);
		free(vals);
		free(lens);
		return 0;
	}
	if (strcmp(mode, "read") == 0 || strcmp(mode, "exists") == 0 || strcmp(mode, "rm") == 0) {
		first = options(argc, argv, strcmp(mode, "read") == 0 ? "hpR" : strcmp(mode, "rm") == 0 ? "ht" : "h", &raw,
		                &count);
		if (first == argc)
			fail("Usage: xenstore %s [-h] key [...]", mode);
		lock();
		for (int i = first; i < argc && rc == 0; i++) {
			size_t len;
			char *v = path_valid(argv[i]) ? node_read(argv[i], &len) : NULL;
			if (strcmp(mode, "exists") == 0) {
				rc = v ? 0 : 1;
			} else if (!v) {
				fprintf(stderr, "%s: %s path %s\n", prog, strcmp(mode, "rm") == 0 ? "could not remove" : "couldn't read",
				        argv[i]);
				rc = 1;
			} else if (strcmp(mode, "rm") == 0) {
				char d[PATH_MAX];
				node_dir(argv[i], d, sizeof d);
				remove_tree(d);
				journal('R', argv[i]);
			} else {
				printf("%.*s\n", (int)len, v);
			}
			free(v);
		}
		unlock();
		return rc;
	}
	if (strcmp(mode, "watch") == 0) {
		first = options(argc, argv, "hn:", &raw, &count);
		if (first == argc)
			fail("Usage: xenstore watch [-h] [-n NR] key");
		watch(argc - first, argv + first, count);
	}
	fail("unknown mode %s", mode);
}
