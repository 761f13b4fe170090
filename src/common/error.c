#include "common/error.h"

#include <stdarg.h>
#include <stdio.h>

int mv_fail(struct mv_error *err, int status, const char *code, const char *fmt, ...)
{
	va_list ap;
	err->status = status;
	err->code = code;
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof err->message, fmt, ap);
	va_end(ap);
	return -1;
}
