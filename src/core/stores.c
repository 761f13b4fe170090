/* stores — see stores.h. */
#include "core/stores.h"

#include <stdio.h>

#include "core/store_pg.h"
#include "core/store_sqlite.h"

int store_open(const char *location, struct store **out, char *err, size_t errlen)
{
	char path[4096];
	if (store_pg_location(location))
		return store_pg_open(location, out, err, errlen);
	if (snprintf(path, sizeof path, "%s/core.db", location) >= (int)sizeof path) {
		snprintf(err, errlen, "--data-dir path too long");
		return -1;
	}
	return store_sqlite_open(path, out, err, errlen);
}
