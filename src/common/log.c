#include "common/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static _Thread_local const char *log_tag = "microvim";
static bool log_verbose;
static bool log_quiet;

void log_set_tag(const char *tag) { log_tag = tag; }
const char *log_get_tag(void) { return log_tag; }
void log_set_verbose(bool on) { log_verbose = on; }
void log_set_quiet(bool on) { log_quiet = on; }

static void log_line(const char *level, const char *fmt, va_list ap, const char *suffix)
{
	char msg[1024];
	struct timespec ts;
	struct tm tm;

	vsnprintf(msg, sizeof msg, fmt, ap); /* truncation of a log line is acceptable */
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	fprintf(stderr, "%02d:%02d:%02d.%03ld %s %s: %s%s%s\n", tm.tm_hour, tm.tm_min, tm.tm_sec,
	        ts.tv_nsec / 1000000, log_tag, level, msg, suffix ? ": " : "", suffix ? suffix : "");
}

#define LOG_BODY(level, suffix)               \
	do {                                  \
		va_list ap;                   \
		va_start(ap, fmt);            \
		log_line(level, fmt, ap, suffix); \
		va_end(ap);                   \
	} while (0)

void log_info(const char *fmt, ...)
{
	if (log_quiet)
		return;
	LOG_BODY("info", NULL);
}

void log_debug(const char *fmt, ...)
{
	if (!log_verbose)
		return;
	LOG_BODY("debug", NULL);
}

void log_warn(const char *fmt, ...)
{
	const char *err = strerror(errno);
	LOG_BODY("warn", err);
}

void log_warnx(const char *fmt, ...) { LOG_BODY("warn", NULL); }

void fatal(const char *fmt, ...)
{
	const char *err = strerror(errno);
	LOG_BODY("fatal", err);
	exit(1);
}

void fatalx(const char *fmt, ...)
{
	LOG_BODY("fatal", NULL);
	exit(1);
}
