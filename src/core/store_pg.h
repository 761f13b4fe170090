/* store_pg — the store in PostgreSQL (libpq), for several cores over one database: the same
 * rows and the same semantics as store_sqlite (a write is committed before the call returns;
 * the idempotency table; one schema version number, shared with SQLite: PostgreSQL starts at
 * version 4 and moves one version at a time at open, under an advisory lock so that cores
 * starting together migrate once). The connection has TCP keepalives and a user timeout, so
 * a dead server is noticed in seconds; when it is lost, the next call outside a transaction
 * reconnects (every host of a multi-host URL is tried: with target_session_attrs=read-write
 * that follows a promoted standby) and is tried once more. */
#ifndef MICROVIM_STORE_PG_H
#define MICROVIM_STORE_PG_H

#include <stdbool.h>
#include <stddef.h>

#include "core/store.h"

extern const struct store_ops store_pg_ops;

/* True for a location that names PostgreSQL: "postgresql://..." or "postgres://...". */
bool store_pg_location(const char *location);

/* Connects to url (a libpq connection URI), creating and migrating the schema as needed.
 * -1 with words in err (the password, if the URL has one, is never repeated). */
int store_pg_open(const char *url, struct store **out, char *err, size_t errlen);

#endif
