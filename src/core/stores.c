/* stores — see stores.h. */
#include "core/stores.h"

#include <stdio.h>

#include "core/store_sqlite.h"

int store_open(const char *data_dir, struct store **out, char *err, size_t errlen)
{
	char path[4096];
	if (snprintf(path, sizeof path, "%s/core.db", data_dir) >= (int)sizeof path) {
		snprintf(err, errlen, "--data-dir path too long");
		return -1;
	}
	return store_sqlite_open(path, out, err, errlen);
}
