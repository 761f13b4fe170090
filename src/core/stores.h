/* stores — the store backends this build has, and which one a core uses: for now SQLite
 * in the data dir; a location such as "postgresql://..." would choose another backend
 * here, and nothing else of the core would change (core/store.h is all it sees). */
#ifndef MICROVIM_STORES_H
#define MICROVIM_STORES_H

#include <stddef.h>

#include "core/store.h"

/* Opens (creating and migrating as needed) the store of a data dir: DATA_DIR/core.db. */
int store_open(const char *data_dir, struct store **out, char *err, size_t errlen);

#endif
