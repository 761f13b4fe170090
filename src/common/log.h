/* log — a tiny logging API. Lines go to stderr, tagged with the process or thread's role
 * ("core", "node", "cli"), so the two loops of `microvim dev` stay distinguishable.
 *   log_warn   adds strerror(errno);  log_warnx  does not.
 *   fatal      logs and exits(1): only at start-up or for a broken invariant. */
#ifndef MICROVIM_LOG_H
#define MICROVIM_LOG_H

#include <stdbool.h>

#define PRINTF_LIKE(f, a) __attribute__((format(printf, f, a)))
#define UNUSED __attribute__((unused)) /* callback parameters a handler ignores */

void log_set_tag(const char *tag); /* per thread */
const char *log_get_tag(void);     /* this thread's: for a thread it starts */
void log_set_verbose(bool on);
void log_set_quiet(bool on);

void log_info(const char *fmt, ...) PRINTF_LIKE(1, 2);
void log_debug(const char *fmt, ...) PRINTF_LIKE(1, 2);
void log_warn(const char *fmt, ...) PRINTF_LIKE(1, 2);
void log_warnx(const char *fmt, ...) PRINTF_LIKE(1, 2);
_Noreturn void fatal(const char *fmt, ...) PRINTF_LIKE(1, 2);
_Noreturn void fatalx(const char *fmt, ...) PRINTF_LIKE(1, 2);

#endif
