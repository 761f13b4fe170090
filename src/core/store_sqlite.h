/* store_sqlite — the store in SQLite: one file (WAL), statements prepared once, the schema
 * moved one version at a time at open (PRAGMA user_version holds it). */
#ifndef MICROVIM_STORE_SQLITE_H
#define MICROVIM_STORE_SQLITE_H

#include <stddef.h>

#include "core/store.h"

extern const struct store_ops store_sqlite_ops;

/* Opens path (creating and migrating it as needed). -1 with words in err. */
int store_sqlite_open(const char *path, struct store **out, char *err, size_t errlen);

#endif
