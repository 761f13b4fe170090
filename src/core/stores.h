/* stores — the store backends this build has, and which one a core uses: SQLite in the
 * data dir (the default: one core, one host), or PostgreSQL when the core is given a
 * "postgresql://..." URL (several cores over one database). Nothing else of the core
 * changes: core/store.h is all it sees. */
#ifndef MICROVIM_STORES_H
#define MICROVIM_STORES_H

#include <stddef.h>

#include "core/store.h"

/* Opens (creating and migrating as needed) the store at location: a PostgreSQL URL
 * ("postgresql://..." or "postgres://..."), else a data dir whose DATA_DIR/core.db is
 * SQLite's. -1 with words in err. */
int store_open(const char *location, struct store **out, char *err, size_t errlen);

#endif
