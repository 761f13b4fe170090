/* clock — the two clocks microvim uses. Durations are always taken on the monotonic clock
 * of one host; wall time is only for display and records meant for people. */
#ifndef MICROVIM_CLOCK_H
#define MICROVIM_CLOCK_H

#include <stdint.h>
#include <sys/time.h>

int64_t clock_mono_us(void); /* CLOCK_MONOTONIC, microseconds */
int64_t clock_wall_us(void); /* CLOCK_REALTIME, microseconds since the epoch */
/* Seconds (fractional) as a struct timeval, for timers. */
struct timeval clock_timeval(double seconds);
void clock_iso8601(int64_t wall_us, char *buf, int len); /* 2026-11-25T13:18:46.123456Z */

#endif
