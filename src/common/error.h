/* error — the error object of the API layer. Functions that validate or serve requests
 * return 0 or -1 and fill a struct mv_error (HTTP status, a stable machine code and a
 * sentence a person can act on). Lower layers return 0 / -errno. */
#ifndef MICROVIM_ERROR_H
#define MICROVIM_ERROR_H

#include "common/log.h"

struct mv_error {
	int status;        /* HTTP status: 400, 401, 404, 409, 413, 422, 500, 503 */
	const char *code;  /* stable: "invalid_json", "invalid_field", "not_found", ... */
	char message[512]; /* names the field and what would be accepted */
};

/* Sets the error and returns -1 so callers can `return mv_fail(...)`. */
int mv_fail(struct mv_error *err, int status, const char *code, const char *fmt, ...)
	PRINTF_LIKE(4, 5);

#endif
