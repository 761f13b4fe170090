/* unit.h — the smallest test harness that does the job: CHECK records a failure with its
 * line and goes on; each test binary ends with "N passed, N failed" and exits non-zero
 * on any failure. tests/run adds the binaries' lines up. */
#ifndef MICROVIM_UNIT_H
#define MICROVIM_UNIT_H

#include <stdio.h>
#include <string.h>

static int unit_passed, unit_failed, unit_current_failed;
static const char *unit_current;

#define CHECK(cond)                                                                       \
	do {                                                                              \
		if (!(cond)) {                                                            \
			fprintf(stderr, "  FAIL %s: %s:%d: %s\n", unit_current, __FILE__, __LINE__, #cond); \
			unit_current_failed = 1;                                          \
		}                                                                         \
	} while (0)

#define CHECK_EQ_INT(a, b)                                                                \
	do {                                                                              \
		long long unit_a = (long long)(a), unit_b = (long long)(b);               \
		if (unit_a != unit_b) {                                                   \
			fprintf(stderr, "  FAIL %s: %s:%d: %s == %s (%lld != %lld)\n", unit_current, \
			        __FILE__, __LINE__, #a, #b, unit_a, unit_b);              \
			unit_current_failed = 1;                                          \
		}                                                                         \
	} while (0)

#define CHECK_STR(a, b) CHECK(strcmp((a), (b)) == 0)

#define RUN(test)                                     \
	do {                                          \
		unit_current = #test;                 \
		unit_current_failed = 0;              \
		test();                               \
		if (unit_current_failed)              \
			unit_failed++;                \
		else                                  \
			unit_passed++;                \
		printf("%s %s\n", unit_current_failed ? "FAIL" : "ok  ", #test); \
	} while (0)

#define UNIT_END()                                                          \
	do {                                                                \
		printf("%d passed, %d failed\n", unit_passed, unit_failed); \
		return unit_failed ? 1 : 0;                                 \
	} while (0)

#endif
