/* spawnbase — see spawnbase.h. */
#include "tools/spawnbase.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "common/clock.h"
#include "common/log.h"
#include "tools/record.h"
#include "tools/stats.h"

extern char **environ;

struct sample {
	pid_t pid;
	int error; /* errno of posix_spawn, 0 when it worked */
	int64_t start_us, end_us;
};

struct spawnbase {
	char **argv; /* the command: argv[0] is an absolute path */
	size_t count;
	bool reap_each; /* kill and reap each child right after its spawn (else all at the end) */
	atomic_size_t next;
	struct sample *samples;
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
};

static void *spawner(void *arg)
{
	struct spawnbase *b = arg;
	size_t i;
	while ((i = atomic_fetch_add(&b->next, 1)) < b->count) {
		struct sample *s = &b->samples[i];
		int status;
		s->start_us = clock_mono_us();
		s->error = posix_spawn(&s->pid, b->argv[0], &b->fa, &b->attr, b->argv, environ);
		s->end_us = clock_mono_us();
		if (s->error || !b->reap_each)
			continue;
		/* our own child: killed and reaped here (PID 1 reaps orphans slowly) */
		kill(s->pid, SIGKILL);
		while (waitpid(s->pid, &status, 0) < 0 && errno == EINTR)
			;
	}
	return NULL;
}

/* --reap end: every child still alive is killed, then every one reaped. */
static void reap_all(struct spawnbase *b)
{
	int status;
	for (size_t i = 0; i < b->count; i++)
		if (!b->samples[i].error && b->samples[i].pid > 0)
			kill(b->samples[i].pid, SIGKILL);
	for (size_t i = 0; i < b->count; i++)
		if (!b->samples[i].error && b->samples[i].pid > 0)
			while (waitpid(b->samples[i].pid, &status, 0) < 0 && errno == EINTR)
				;
}

static int parse_count(const char *s, double max, size_t *out, const char *what)
{
	char *end;
	double v;
	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !(v >= 1 && v <= max) || v != (double)(size_t)v) {
		fprintf(stderr, "microvim spawn-baseline: --%s must be an integer between 1 and %g\n", what, max);
		return -1;
	}
	*out = (size_t)v;
	return 0;
}

enum { S_COUNT = 500, S_CONCURRENCY, S_OUT, S_QUIET, S_REAP };

static const struct option spawnbase_options[] = {
	{"count", required_argument, NULL, S_COUNT},
	{"concurrency", required_argument, NULL, S_CONCURRENCY},
	{"out", required_argument, NULL, S_OUT},
	{"quiet", no_argument, NULL, S_QUIET},
	{"reap", required_argument, NULL, S_REAP},
	{NULL, 0, NULL, 0},
};

static void print_row(const char *label, const double *v, size_t n)
{
	struct stats_summary s;
	if (stats_summarize(v, n, &s) < 0)
		fatalx("out of memory");
	stats_print_row(stdout, label, &s);
}

int spawnbase_main(int argc, char **argv)
{
	struct spawnbase b = {0};
	size_t concurrency = 1, ok = 0, failed = 0;
	const char *out = NULL;
	pthread_t *threads = NULL;
	double *ms = NULL;
	sigset_t none, all;
	int64_t t0, t1;
	int opt, rc = 0;
	size_t started = 0;

	b.count = 1;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "+q", spawnbase_options, NULL)) != -1) {
		switch (opt) {
		case S_COUNT: if (parse_count(optarg, 1e8, &b.count, "count") < 0) return 2; break;
		case S_CONCURRENCY: if (parse_count(optarg, 4096, &concurrency, "concurrency") < 0) return 2; break;
		case S_OUT: out = optarg; break;
		case 'q':
		case S_QUIET: break; /* nothing to silence: there is no progress bar */
		case S_REAP:
			if (strcmp(optarg, "each") != 0 && strcmp(optarg, "end") != 0) {
				fprintf(stderr, "microvim spawn-baseline: --reap is each or end\n");
				return 2;
			}
			b.reap_each = strcmp(optarg, "each") == 0;
			break;
		default: return 2;
		}
	}
	if (optind >= argc || argv[optind][0] != '/') {
		fprintf(stderr, "microvim spawn-baseline: give an absolute command after --, e.g. -- /bin/sleep 60\n");
		return 2;
	}
	if (out) {
		enum record_format f;
		if (record_format_of(out, &f) < 0) {
			fprintf(stderr, "microvim spawn-baseline: --out FILE must end in .jsonl or .csv\n");
			return 2;
		}
	}
	if (concurrency > b.count)
		concurrency = b.count;
	b.argv = argv + optind;
	if (!(b.samples = calloc(b.count, sizeof *b.samples)) || !(threads = calloc(concurrency, sizeof *threads)) ||
	    !(ms = malloc(b.count * sizeof *ms)))
		fatalx("out of memory");

	/* the exec driver's attributes, /dev/null in place of its log files */
	posix_spawn_file_actions_init(&b.fa);
	posix_spawn_file_actions_addopen(&b.fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&b.fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_addopen(&b.fa, 2, "/dev/null", O_WRONLY, 0);
	posix_spawnattr_init(&b.attr);
	sigemptyset(&none);
	sigfillset(&all);
	posix_spawnattr_setsigmask(&b.attr, &none);
	posix_spawnattr_setsigdefault(&b.attr, &all);
	posix_spawnattr_setflags(&b.attr, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

	t0 = clock_mono_us();
	for (size_t i = 0; i < concurrency; i++) {
		int err = pthread_create(&threads[i], NULL, spawner, &b);
		if (err) {
			fprintf(stderr, "microvim spawn-baseline: pthread_create: %s (going on with %zu threads)\n",
			        strerror(err), started);
			break;
		}
		started++;
	}
	if (started == 0) /* no thread: spawn from here */
		spawner(&b);
	for (size_t i = 0; i < started; i++)
		pthread_join(threads[i], NULL);
	t1 = clock_mono_us();
	if (!b.reap_each)
		reap_all(&b);
	posix_spawnattr_destroy(&b.attr);
	posix_spawn_file_actions_destroy(&b.fa);

	for (size_t i = 0; i < b.count; i++) {
		struct sample *s = &b.samples[i];
		ms[i] = s->error ? NAN : (double)(s->end_us - s->start_us) / 1000.0;
		if (s->error)
			failed++;
		else
			ok++;
	}
	if (out) {
		struct record_writer w;
		int wrc = record_open(&w, out);
		for (size_t i = 0; wrc == 0 && i < b.count; i++) {
			struct sample *s = &b.samples[i];
			struct record r;
			record_init(&r);
			snprintf(r.id, sizeof r.id, "%d", (int)s->pid);
			r.intended_send_us = r.actual_send_us = s->start_us - t0;
			if (s->error) {
				snprintf(r.state, sizeof r.state, "error");
				snprintf(r.error, sizeof r.error, "posix_spawn: %s", strerror(s->error));
			} else {
				snprintf(r.state, sizeof r.state, "running");
				r.phase_ms[PHASE_SPAWN] = r.total_ms = ms[i];
				r.overhead_ms = 0;
			}
			wrc = record_write(&w, &r);
		}
		if (w.f && record_close(&w) < 0 && wrc == 0)
			wrc = -EIO;
		if (wrc < 0) {
			fprintf(stderr, "microvim spawn-baseline: writing %s failed: %s\n", out, strerror(-wrc));
			rc = 1;
		}
	}

	printf("microvim spawn-baseline: %zu x posix_spawn %s, concurrency %zu (%s)\n", b.count, b.argv[0],
	       started ? started : 1, b.reap_each ? "each child killed and reaped right after its spawn"
	                                          : "children live until the last spawn, then killed and reaped");
	stats_print_header(stdout);
	print_row("spawn", ms, b.count);
	print_row("total", ms, b.count);
	printf("(spawn = total: the posix_spawn call, returning once the child has exec'd)\n");
	printf("throughput %.1f spawns/s (%zu in %.3f s%s)\n", t1 > t0 ? (double)ok / ((double)(t1 - t0) / 1e6) : 0.0,
	       ok, (double)(t1 - t0) / 1e6, b.reap_each ? ", kill and reap included" : "");
	printf("errors %zu\n", failed);
	if (failed)
		rc = 1;
	free(b.samples);
	free(threads);
	free(ms);
	return rc;
}
