/* store_pg — the store in PostgreSQL (see store_pg.h). Statements are prepared once per
 * connection (again after a reconnect); parameters go as text. Columns mirror SQLite's
 * schema 5 one for one (a column named user is quoted, a reserved word here); ids sort byte-wise (COLLATE "C") as SQLite's do, so pages come in
 * the same order on both. */
#include "core/store_pg.h"

#include <inttypes.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/jsontext.h"
#include "common/log.h"

enum stmt_id {
	ST_INSERT_INSTANCE, ST_UPDATE_INSTANCE, ST_DELETE_INSTANCE, ST_PAGE_INSTANCES,
	ST_PUT_NODE, ST_LOAD_NODES,
	ST_IDEM_GET, ST_IDEM_PUT,
	ST_PUT_IMAGE, ST_DELETE_IMAGE, ST_LOAD_IMAGES,
	ST_PUT_PROJECT, ST_DELETE_PROJECT, ST_LOAD_PROJECTS,
	ST_PUT_USER, ST_DELETE_USER, ST_LOAD_USERS,
	ST_PUT_TOKEN, ST_REVOKE_TOKEN, ST_LOAD_TOKENS,
	ST_PUT_NODE_SECRET, ST_REVOKE_NODE_SECRET, ST_LOAD_NODE_SECRETS,
	ST_PUT_POOL, ST_DELETE_POOL, ST_LOAD_POOLS,
	ST_COUNT
};

static const char *const stmt_sql[ST_COUNT] = {
	/* a taken name or id is no error (it would end the turn's transaction, which holds other
	 * units): the insert writes nothing and gives no row back (STORE_TAKEN); so are the other
	 * inserts of a name (images, projects, users, pools) and of a key */
	[ST_INSERT_INSTANCE] =
		"INSERT INTO instances (id, name, driver, image, vcpus_milli, memory_mb, spec, state, stop_requested,"
		" node_id, exit_code, error, trace, updated_us, run, created_us, project)"
		" VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17) ON CONFLICT DO NOTHING RETURNING id",
	[ST_UPDATE_INSTANCE] =
		"UPDATE instances SET state = $1, stop_requested = $2, node_id = $3, exit_code = $4, error = $5,"
		" trace = CASE WHEN $10::boolean THEN trace ELSE $6 END, updated_us = $7, run = $8 WHERE id = $9",
	[ST_DELETE_INSTANCE] = "DELETE FROM instances WHERE id = $1",
	[ST_PAGE_INSTANCES] =
		"SELECT id, spec, state, stop_requested, node_id, exit_code, error, trace, created_us, updated_us,"
		" project, run FROM instances WHERE created_us > $1::bigint OR (created_us = $1::bigint AND id > $2)"
		" ORDER BY created_us, id LIMIT $3",
	[ST_PUT_NODE] = "INSERT INTO nodes (id, name, info, updated_us) VALUES ($1,$2,$3,$4) ON CONFLICT (id) DO UPDATE"
	                " SET name = EXCLUDED.name, info = EXCLUDED.info, updated_us = EXCLUDED.updated_us",
	[ST_LOAD_NODES] = "SELECT id, name, info FROM nodes",
	[ST_IDEM_GET] = "SELECT digest, instance_ids FROM idempotency WHERE key = $1",
	[ST_IDEM_PUT] = "INSERT INTO idempotency (key, digest, instance_ids, created_us) VALUES ($1,$2,$3,$4)"
	                " ON CONFLICT DO NOTHING RETURNING key",
	[ST_PUT_IMAGE] = "INSERT INTO images (name, kernel, kernel_size, initrd, initrd_size, cmdline, created_us,"
	                 " xen_type, project) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9) ON CONFLICT DO NOTHING RETURNING name",
	[ST_DELETE_IMAGE] = "DELETE FROM images WHERE name = $1",
	[ST_LOAD_IMAGES] = "SELECT name, kernel, kernel_size, initrd, initrd_size, cmdline, created_us, xen_type,"
	                    " project FROM images",
	[ST_PUT_PROJECT] = "INSERT INTO projects (name, quota_instances, quota_vcpus_milli, quota_memory_mb,"
	                   " created_us) VALUES ($1,$2,$3,$4,$5) ON CONFLICT DO NOTHING RETURNING name",
	[ST_DELETE_PROJECT] = "DELETE FROM projects WHERE name = $1",
	[ST_LOAD_PROJECTS] = "SELECT name, quota_instances, quota_vcpus_milli, quota_memory_mb, created_us"
	                     " FROM projects",
	[ST_PUT_USER] = "INSERT INTO users (name, project, role, password_hash, created_us) VALUES ($1,$2,$3,$4,$5)"
	                " ON CONFLICT DO NOTHING RETURNING name",
	[ST_DELETE_USER] = "DELETE FROM users WHERE name = $1",
	[ST_LOAD_USERS] = "SELECT name, project, role, password_hash, created_us FROM users",
	[ST_PUT_TOKEN] = "INSERT INTO tokens (id, hash, \"user\", expires_us, revoked, created_us)"
	                 " VALUES ($1,$2,$3,$4,$5,$6)",
	[ST_REVOKE_TOKEN] = "UPDATE tokens SET revoked = 1 WHERE id = $1",
	[ST_LOAD_TOKENS] = "SELECT id, hash, \"user\", expires_us, revoked, created_us FROM tokens",
	[ST_PUT_NODE_SECRET] = "INSERT INTO node_secrets (id, kind, hash, node_id, join_id, expires_us, revoked,"
	                       " created_us) VALUES ($1,$2,$3,$4,$5,$6,$7,$8)",
	[ST_REVOKE_NODE_SECRET] = "UPDATE node_secrets SET revoked = 1 WHERE id = $1",
	[ST_LOAD_NODE_SECRETS] = "SELECT id, kind, hash, node_id, join_id, expires_us, revoked, created_us"
	                         " FROM node_secrets",
	[ST_PUT_POOL] = "INSERT INTO pools (name, size, spec, created_us) VALUES ($1,$2,$3,$4)"
	                " ON CONFLICT DO NOTHING RETURNING name",
	[ST_DELETE_POOL] = "DELETE FROM pools WHERE name = $1",
	[ST_LOAD_POOLS] = "SELECT name, size, spec, created_us FROM pools",
};

/* The schema by version: PostgreSQL support came with SQLite's schema 4, so its first step
 * lands there at once; each later entry moves it one version, as SQLite's list does. */
struct pg_migration {
	int to;
	const char *sql;
};

static const struct pg_migration migrations[] = {
	{4, "CREATE TABLE instances (id TEXT COLLATE \"C\" PRIMARY KEY, name TEXT NOT NULL UNIQUE,"
	    " driver TEXT NOT NULL, spec TEXT NOT NULL, state TEXT NOT NULL,"
	    " stop_requested INTEGER NOT NULL DEFAULT 0, node_id TEXT, exit_code INTEGER, error TEXT, trace TEXT,"
	    " created_us BIGINT NOT NULL, updated_us BIGINT NOT NULL, image TEXT,"
	    " vcpus_milli BIGINT NOT NULL DEFAULT 0, memory_mb BIGINT NOT NULL DEFAULT 0);"
	    "CREATE INDEX instances_created ON instances (created_us, id);"
	    "CREATE TABLE nodes (id TEXT PRIMARY KEY, name TEXT NOT NULL, info TEXT NOT NULL,"
	    " updated_us BIGINT NOT NULL);"
	    "CREATE TABLE idempotency (key TEXT PRIMARY KEY, digest TEXT NOT NULL,"
	    " instance_ids TEXT NOT NULL, created_us BIGINT NOT NULL);"
	    "CREATE TABLE images (name TEXT PRIMARY KEY, kernel TEXT NOT NULL, kernel_size BIGINT NOT NULL,"
	    " initrd TEXT, initrd_size BIGINT, cmdline TEXT, created_us BIGINT NOT NULL,"
	    " xen_type TEXT CHECK (xen_type IN ('pv', 'pvh')));"},
	/* 5: tenancy, as SQLite's 5: what was there goes to the "admin" project; removing a
	 * project removes its users, removing a user its tokens (cascades) */
	{5, "ALTER TABLE instances ADD COLUMN project TEXT NOT NULL DEFAULT 'admin';"
	    "ALTER TABLE images ADD COLUMN project TEXT NOT NULL DEFAULT 'admin';"
	    "CREATE INDEX instances_project ON instances (project);"
	    "CREATE TABLE projects (name TEXT PRIMARY KEY, quota_instances BIGINT NOT NULL,"
	    " quota_vcpus_milli BIGINT NOT NULL, quota_memory_mb BIGINT NOT NULL, created_us BIGINT NOT NULL);"
	    "CREATE TABLE users (name TEXT PRIMARY KEY,"
	    " project TEXT NOT NULL REFERENCES projects (name) ON DELETE CASCADE,"
	    " role TEXT NOT NULL CHECK (role IN ('reader', 'member', 'admin')), password_hash TEXT,"
	    " created_us BIGINT NOT NULL);"
	    "CREATE TABLE tokens (id TEXT PRIMARY KEY, hash TEXT NOT NULL UNIQUE,"
	    " \"user\" TEXT NOT NULL REFERENCES users (name) ON DELETE CASCADE, expires_us BIGINT NOT NULL,"
	    " revoked INTEGER NOT NULL DEFAULT 0, created_us BIGINT NOT NULL);"},
	/* 6: node identity, as SQLite's 6: join tokens and one credential per node id */
	{6, "CREATE TABLE node_secrets (id TEXT PRIMARY KEY, kind TEXT NOT NULL CHECK (kind IN ('join', 'node')),"
	    " hash TEXT, node_id TEXT, join_id TEXT,"
	    " expires_us BIGINT NOT NULL, revoked INTEGER NOT NULL DEFAULT 0, created_us BIGINT NOT NULL);"
	    "CREATE UNIQUE INDEX node_secrets_node ON node_secrets (node_id) WHERE kind = 'node';"},
	/* 7: an instance's run, as SQLite's 7 */
	{7, "ALTER TABLE instances ADD COLUMN run BIGINT NOT NULL DEFAULT 0;"},
	/* 8: warm pools, as SQLite's 8 */
	{8, "CREATE TABLE pools (name TEXT PRIMARY KEY, size INTEGER NOT NULL, spec TEXT NOT NULL,"
	    " created_us BIGINT NOT NULL);"},
};

#define N_MIGRATIONS (sizeof migrations / sizeof migrations[0])
#define PG_SCHEMA_VERSION 8 /* migrations[N_MIGRATIONS - 1].to */
/* The advisory lock key cores take while they migrate (any fixed number; "mvschema"). */
#define MIGRATE_LOCK_KEY "7166453736806510957"
/* The session lock of a store claimed whole (store_claim): a program that must be the
 * database's only writer. The core does not claim it: several cores share a database and
 * elect a leader (core/leader.h). Held by the connection, so it goes with the process's
 * death (kill -9 closes the socket; a dead host, with the keepalives). */
#define CLAIM_LOCK_KEY "7166453736806510958"
#define CLAIM_WAIT_MS 5000 /* at start, how long a claim waits for a dying core's session to end */

struct pg_store {
	struct store base;
	PGconn *conn;
	bool in_tx;
	bool begin_unsent; /* begun, its BEGIN to go with the first statement (begin_and_run) */
	bool claimed; /* holds CLAIM_LOCK_KEY: a reconnect must take it again */
	/* Writes sent without waiting (libpq's pipeline mode; see "Writes that can be learnt
	 * again" below): how many statements' results are still to be read, and whether a commit
	 * ended the pipeline (then nothing of it belongs to an open transaction any more). */
	int piped;
	bool piped_commit;
	bool piped_commit_flushed; /* that commit was a durable one (its caller waits for it) */
	/* Deferred inserts in the pipeline (store_defer_next): each one's place among the piped
	 * statements and its unit; one that gives no row back found its key taken. */
	struct piped_insert {
		int at, unit;
	} *deferred;
	int n_deferred, cap_deferred;
	int tx_waited; /* statements of the open transaction whose answers were awaited */
	/* Some writes sent without waiting failed: memory is ahead of the rows they were for, and
	 * each update writes its trace again, even one kept (store_instance_status.trace_kept). */
	bool piped_failed;
};

static struct pg_store *pg(struct store *s) { return (struct pg_store *)s; }

static int pipe_drain(struct pg_store *s);
static int reconnect(struct pg_store *s);

bool store_pg_location(const char *location)
{
	return location && (strncmp(location, "postgresql://", 13) == 0 || strncmp(location, "postgres://", 11) == 0);
}

/* libpq's message without its trailing newline. */
static const char *pg_words(const char *msg)
{
	static char buf[512];
	size_t n;
	snprintf(buf, sizeof buf, "%s", msg ? msg : "?");
	n = strlen(buf);
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		buf[--n] = '\0';
	return buf;
}

/* Runs SQL with no parameters and no rows wanted. */
static int exec_sql(struct pg_store *s, const char *sql, char *err, size_t errlen)
{
	PGresult *r = PQexec(s->conn, sql);
	int ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
	if (!ok) {
		if (err)
			snprintf(err, errlen, "%s", pg_words(PQresultErrorMessage(r)));
		else
			log_warnx("store: %.60s: %s", sql, pg_words(PQresultErrorMessage(r)));
	}
	PQclear(r);
	return ok ? 0 : -1;
}

static int prepare_all(struct pg_store *s, char *err, size_t errlen)
{
	for (int i = 0; i < ST_COUNT; i++) {
		char name[8];
		snprintf(name, sizeof name, "s%d", i);
		PGresult *r = PQprepare(s->conn, name, stmt_sql[i], 0, NULL);
		if (PQresultStatus(r) != PGRES_COMMAND_OK) {
			snprintf(err, errlen, "store statement failed to prepare: %s", pg_words(PQresultErrorMessage(r)));
			PQclear(r);
			return -1;
		}
		PQclear(r);
	}
	return 0;
}

/* The version the database holds: 0 for a new one. The caller holds the migration lock. */
static int read_version(struct pg_store *s, char *err, size_t errlen)
{
	PGresult *r;
	int v = -1;
	if (exec_sql(s, "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)", err, errlen) < 0)
		return -1;
	r = PQexec(s->conn, "SELECT max(version) FROM schema_version");
	if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
		v = PQgetisnull(r, 0, 0) ? 0 : atoi(PQgetvalue(r, 0, 0));
	else
		snprintf(err, errlen, "cannot read the store's schema version: %s", pg_words(PQresultErrorMessage(r)));
	PQclear(r);
	return v;
}

/* One transaction: the lock (held to its end), the version, the steps from there. */
static int migrate(struct pg_store *s, char *err, size_t errlen)
{
	char why[400] = "", sql[96];
	int have;
	if (exec_sql(s, "BEGIN", err, errlen) < 0)
		return -1;
	if (exec_sql(s, "SELECT pg_advisory_xact_lock(" MIGRATE_LOCK_KEY ")", why, sizeof why) < 0 ||
	    (have = read_version(s, why, sizeof why)) < 0)
		goto fail;
	if (have > PG_SCHEMA_VERSION) {
		exec_sql(s, "ROLLBACK", NULL, 0);
		snprintf(err, errlen, "the store has schema version %d; this microvim knows up to %d "
		         "(a newer microvim wrote it)", have, PG_SCHEMA_VERSION);
		return -1;
	}
	for (size_t i = 0; i < N_MIGRATIONS; i++) {
		if (migrations[i].to <= have)
			continue;
		snprintf(sql, sizeof sql, "DELETE FROM schema_version; INSERT INTO schema_version VALUES (%d)",
		         migrations[i].to);
		if (exec_sql(s, migrations[i].sql, why, sizeof why) < 0 || exec_sql(s, sql, why, sizeof why) < 0) {
			exec_sql(s, "ROLLBACK", NULL, 0);
			snprintf(err, errlen, "store migration to version %d failed: %s", migrations[i].to, why);
			return -1;
		}
	}
	if (exec_sql(s, "COMMIT", why, sizeof why) < 0)
		goto fail;
	return 0;
fail:
	exec_sql(s, "ROLLBACK", NULL, 0);
	snprintf(err, errlen, "cannot set up the store's schema: %s", why);
	return -1;
}

static void pg_close(struct store *base)
{
	struct pg_store *s = pg(base);
	if (!s)
		return;
	if (s->conn && s->piped)
		pipe_drain(s); /* the last commit's answer: said if it failed */
	if (s->conn)
		PQfinish(s->conn);
	free(s->deferred);
	free(s);
}

/* Connection settings a core needs whatever the URL says (the URL's own win): a dead or
 * stalled server is noticed within ~10 s (keepalives, unacknowledged data), a connect gives
 * up after 5 s and goes on to the next host. */
static PGconn *connect_url(const char *url)
{
	static const char *const keys[] = {"connect_timeout", "keepalives", "keepalives_idle", "keepalives_interval",
	                                   "keepalives_count", "tcp_user_timeout", "application_name", "dbname",
	                                   NULL};
	const char *values[] = {"5", "1", "5", "2", "3", "10000", "microvim-core", url, NULL};
	return PQconnectdbParams(keys, values, 1);
}

/* A write is committed before the answer when synchronous_commit is on (the default). The
 * URL may turn it off (options=-c synchronous_commit=off): the operator's choice, said once. */
static void warn_commit_mode(struct pg_store *s)
{
	PGresult *r = PQexec(s->conn, "SHOW synchronous_commit");
	if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 && strcmp(PQgetvalue(r, 0, 0), "off") == 0)
		log_warnx("store: synchronous_commit is off: an answer may come before its commit is on disk, and a "
		          "PostgreSQL crash can lose the last ones");
	PQclear(r);
}

int store_pg_open(const char *url, struct store **out, char *err, size_t errlen)
{
	struct pg_store *s = calloc(1, sizeof *s);
	if (!s)
		fatal("calloc");
	s->base.ops = &store_pg_ops;
	s->conn = connect_url(url);
	if (!s->conn || PQstatus(s->conn) != CONNECTION_OK) {
		snprintf(err, errlen, "cannot connect to the PostgreSQL store: %s",
		         s->conn ? pg_words(PQerrorMessage(s->conn)) : "out of memory");
		goto fail;
	}
	if (exec_sql(s, "SET client_min_messages = warning", err, errlen) < 0 || migrate(s, err, errlen) < 0 ||
	    prepare_all(s, err, errlen) < 0)
		goto fail;
	warn_commit_mode(s);
	/* the URL may hold a password: only where it led is logged */
	log_info("store: PostgreSQL at %s:%s, database %s, schema version %d", PQhost(s->conn), PQport(s->conn),
	         PQdb(s->conn), PG_SCHEMA_VERSION);
	*out = &s->base;
	return 0;
fail:
	pg_close(&s->base);
	return -1;
}

/* 1 when this session got the claim lock, 0 when another has it, -1 on failure. */
static int try_claim(struct pg_store *s, char *err, size_t errlen)
{
	PGresult *r = PQexec(s->conn, "SELECT pg_try_advisory_lock(" CLAIM_LOCK_KEY ")");
	int got = -1;
	if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
		got = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
	else
		snprintf(err, errlen, "cannot claim the store: %s", pg_words(PQresultErrorMessage(r)));
	PQclear(r);
	return got;
}

static int pg_claim(struct store *base, char *err, size_t errlen)
{
	struct pg_store *s = pg(base);
	int64_t until = clock_mono_us() + CLAIM_WAIT_MS * 1000LL;
	int got;
	/* a core restarted at once after kill -9 may meet its old session still ending */
	while ((got = try_claim(s, err, errlen)) == 0 && clock_mono_us() < until)
		nanosleep(&(struct timespec){.tv_nsec = 100 * 1000 * 1000}, NULL); /* start-up only */
	if (got == 0)
		snprintf(err, errlen, "another core is using this PostgreSQL database (one core per database: stop it, or "
		         "give this core a database of its own)");
	s->claimed = got == 1;
	return got == 1 ? 0 : -1;
}

/* ---- writes that can be learnt again: sent without waiting ----
 *
 * A unit the core marked no-flush (store_no_flush_next: a node's report, which the node
 * gives again when it registers) loses nothing that matters if its write is lost. Its
 * updates go out in libpq's pipeline mode without waiting for their answers, and a turn of
 * such units only is committed the same way: BEGIN, the updates, SET LOCAL
 * synchronous_commit = off and COMMIT leave in one write, and the answers of the turn go
 * out without a round trip to the server (before, a report cost two). The results are
 * read before the connection is used again (pipe_drain). A failure found then is logged:
 * the core's memory keeps the reported states and its next write of each instance writes
 * them again (an update writes the whole status); a new leader learns them from the nodes.
 * When a unit that must be durable comes in the same transaction, the pending results are
 * read first, and a failure among them fails that unit, as any failure after accepted
 * units of a turn does (store.h). */

/* Reads what the pipeline holds: 0 when every statement (and a commit, if one ended it)
 * succeeded; -1 after logging the first failure. The connection leaves pipeline mode. */
static int pipe_drain(struct pg_store *s)
{
	PGresult *r;
	int rc = 0, i, d = 0;
	bool commit = s->piped_commit;
	if (s->piped == 0)
		return 0;
	if (!commit && PQpipelineSync(s->conn) != 1)
		rc = -1;
	/* each statement's result, then a NULL; after a failure the others are "aborted" */
	for (i = 0; rc == 0 && i < s->piped; i++) {
		if (!(r = PQgetResult(s->conn))) {
			rc = -1;
			break;
		}
		bool deferred = d < s->n_deferred && s->deferred[d].at == i;
		ExecStatusType want = deferred ? PGRES_TUPLES_OK : PGRES_COMMAND_OK;
		if (PQresultStatus(r) != want ||
		    (commit && i == s->piped - 1 && strcmp(PQcmdStatus(r), "COMMIT") != 0)) {
			log_warnx("store: a write sent without waiting failed: %s",
			          PQresultStatus(r) == want ? "its transaction had failed" : pg_words(PQresultErrorMessage(r)));
			rc = -1;
		} else if (deferred && PQntuples(r) == 0) {
			store_unit_refused(&s->base, s->deferred[d].unit);
		}
		d += deferred;
		PQclear(r);
		PQclear(PQgetResult(s->conn)); /* the NULL that ends a statement's results */
	}
	/* what is left after a failure, up to the sync point (bounded: two per statement) */
	for (int left = 2 * (s->piped - i) + 2; left > 0 && PQstatus(s->conn) == CONNECTION_OK; left--) {
		r = PQgetResult(s->conn);
		bool sync = r && PQresultStatus(r) == PGRES_PIPELINE_SYNC;
		PQclear(r);
		if (sync)
			break;
	}
	if (PQexitPipelineMode(s->conn) != 1 && PQstatus(s->conn) == CONNECTION_OK) {
		log_warnx("store: after a pipeline: %s; connecting again", pg_words(PQerrorMessage(s->conn)));
		s->piped = 0;
		s->piped_commit = false;
		s->n_deferred = 0;
		reconnect(s); /* a session in an unknown state is not written again */
	}
	s->piped = 0;
	s->piped_commit = false;
	s->n_deferred = 0;
	if (rc < 0)
		s->piped_failed = true;
	if (rc < 0 && commit && !s->piped_commit_flushed)
		log_warnx("store: the last commit of node reports failed: the core keeps them in memory and writes them "
		          "with each instance's next change; a new leader learns them from the nodes");
	return rc;
}

/* Sends a prepared statement into the pipeline (with the transaction's BEGIN when it is the
 * first): -1 when it could not be sent. */
static int pipe_send(struct pg_store *s, const char *name, int n, const char *const *params)
{
	if (s->piped == 0 && PQenterPipelineMode(s->conn) != 1)
		return -1;
	if (s->begin_unsent) {
		if (PQsendQueryParams(s->conn, "BEGIN", 0, NULL, NULL, NULL, NULL, 0) != 1)
			return -1;
		s->begin_unsent = false;
		s->piped++;
	}
	if (PQsendQueryPrepared(s->conn, name, n, params, NULL, NULL, 0) != 1)
		return -1;
	s->piped++;
	return 0;
}

/* A lost connection, outside a transaction, is made again (every host of the URL tried)
 * and the statements prepared on it. Inside one, the transaction is gone: the caller's
 * rollback ends it. */
static int reconnect(struct pg_store *s)
{
	char err[400] = "";
	if (!s->conn) /* fenced: it lost its claim */
		return -1;
	s->piped = 0; /* what was sent on the old session went with it */
	s->piped_commit = false;
	s->n_deferred = 0;
	PQreset(s->conn);
	if (PQstatus(s->conn) != CONNECTION_OK) {
		log_warnx("store: PostgreSQL reconnect failed: %s", pg_words(PQerrorMessage(s->conn)));
		return -1;
	}
	if (exec_sql(s, "SET client_min_messages = warning", err, sizeof err) < 0 || prepare_all(s, err, sizeof err) < 0) {
		log_warnx("store: after reconnecting: %s", err);
		return -1;
	}
	/* the claim went with the old session: without it again, another core may be writing */
	if (s->claimed && try_claim(s, err, sizeof err) != 1) {
		log_warnx("store: after reconnecting, this core no longer holds the database: %s",
		          err[0] ? err : "another core claimed it");
		PQfinish(s->conn);
		s->conn = NULL;
		return -1;
	}
	log_info("store: reconnected to PostgreSQL (%s:%s)", PQhost(s->conn), PQport(s->conn));
	return 0;
}

/* One exchange of a pipeline: BEGIN and the statement; the statement's result, or NULL
 * (and *begun false when BEGIN did not take). */
static PGresult *pipeline_begin(struct pg_store *s, const char *name, int n, const char *const *params, bool *begun)
{
	PGresult *r = NULL, *x;
	*begun = false;
	if (PQenterPipelineMode(s->conn) != 1)
		return NULL;
	if (PQsendQueryParams(s->conn, "BEGIN", 0, NULL, NULL, NULL, NULL, 0) == 1 &&
	    PQsendQueryPrepared(s->conn, name, n, params, NULL, NULL, 0) == 1 && PQpipelineSync(s->conn) == 1) {
		/* each query's results end with a NULL; the sync point's result comes last */
		if ((x = PQgetResult(s->conn))) {
			*begun = PQresultStatus(x) == PGRES_COMMAND_OK;
			PQclear(x);
			while ((x = PQgetResult(s->conn)))
				PQclear(x);
			if ((r = PQgetResult(s->conn))) {
				while ((x = PQgetResult(s->conn)))
					PQclear(x);
				PQclear(PQgetResult(s->conn)); /* PGRES_PIPELINE_SYNC */
			}
		}
	}
	if (PQexitPipelineMode(s->conn) != 1 && PQstatus(s->conn) == CONNECTION_OK)
		log_warnx("store: after a pipeline: %s", pg_words(PQerrorMessage(s->conn)));
	return r;
}

/* A transaction's BEGIN goes with its first statement, in one round trip (libpq's pipeline
 * mode): a turn of one write costs one round trip for it and one for COMMIT. A connection
 * that broke while idle is known to be broken only once used: then nothing was written,
 * and the pair is sent once more on a new connection. */
static PGresult *begin_and_run(struct pg_store *s, const char *name, int n, const char *const *params)
{
	bool begun;
	PGresult *r = pipeline_begin(s, name, n, params, &begun);
	if (!begun && PQstatus(s->conn) != CONNECTION_OK) {
		PQclear(r);
		r = reconnect(s) == 0 ? pipeline_begin(s, name, n, params, &begun) : NULL;
	}
	if (begun)
		s->begin_unsent = false;
	return r;
}

/* Runs a prepared statement; the result (NULL after logging on failure) is the caller's.
 * A statement that failed because the connection broke, outside a transaction, is sent once
 * more on a new connection: a write is then done at most twice, and the second try of an
 * insert that had committed finds its key taken (STORE_TAKEN). The core writes inside
 * transactions only (group commit), where nothing is sent twice. */
static PGresult *run(struct pg_store *s, enum stmt_id id, int n, const char *const *params, const char *what)
{
	char name[8];
	PGresult *r;
	ExecStatusType want = id == ST_PAGE_INSTANCES || id == ST_LOAD_NODES || id == ST_IDEM_GET ||
	                      id == ST_INSERT_INSTANCE || id == ST_IDEM_PUT || id == ST_PUT_IMAGE ||
	                      id == ST_PUT_PROJECT || id == ST_PUT_USER || id == ST_PUT_POOL ||
	                      id == ST_LOAD_IMAGES || id == ST_LOAD_PROJECTS || id == ST_LOAD_USERS ||
	                      id == ST_LOAD_TOKENS || id == ST_LOAD_NODE_SECRETS ||
	                      id == ST_LOAD_POOLS ? PGRES_TUPLES_OK : PGRES_COMMAND_OK;
	bool durable_piped = s->n_deferred > 0;
	snprintf(name, sizeof name, "s%d", (int)id);
	/* writes sent without waiting go first: a failure among those of this transaction fails it,
	 * unless they were all it held and only reports (then they are dropped, and it starts
	 * again); a deferred insert is a unit already accepted */
	if (s->piped && pipe_drain(s) < 0 && s->in_tx) {
		if (s->tx_waited > 0 || durable_piped) {
			log_warnx("store: %s: not sent: the transaction's earlier writes failed", what);
			return NULL;
		}
		if (PQstatus(s->conn) == CONNECTION_OK)
			exec_sql(s, "ROLLBACK", NULL, 0);
		s->begin_unsent = true;
	}
	if (s->in_tx)
		s->tx_waited++;
	if (!s->in_tx && PQstatus(s->conn) != CONNECTION_OK && reconnect(s) < 0)
		return NULL;
	if (s->begin_unsent)
		r = begin_and_run(s, name, n, params);
	else
		r = PQexecPrepared(s->conn, name, n, params, NULL, NULL, 0);
	if (PQresultStatus(r) != want && !s->in_tx && PQstatus(s->conn) != CONNECTION_OK) {
		PQclear(r);
		r = reconnect(s) == 0 ? PQexecPrepared(s->conn, name, n, params, NULL, NULL, 0) : NULL;
	}
	if (PQresultStatus(r) != want) {
		log_warnx("store: %s: %s", what, pg_words(r ? PQresultErrorMessage(r) : PQerrorMessage(s->conn)));
		PQclear(r);
		return NULL;
	}
	return r;
}

static int run_done(struct pg_store *s, enum stmt_id id, int n, const char *const *params, const char *what)
{
	PGresult *r = run(s, id, n, params, what);
	PQclear(r);
	return r ? 0 : -1;
}

/* An insert ... ON CONFLICT DO NOTHING RETURNING: 0, STORE_TAKEN (no row came back), or -1. */
static int run_insert(struct pg_store *s, enum stmt_id id, int n, const char *const *params, const char *what)
{
	PGresult *r = run(s, id, n, params, what);
	int rc = !r ? -1 : PQntuples(r) == 0 ? STORE_TAKEN : 0;
	PQclear(r);
	return rc;
}

static int pg_begin(struct store *base)
{
	struct pg_store *s = pg(base);
	if (s->in_tx) {
		log_warnx("store: begin: a transaction is already open");
		return -1;
	}
	if (PQstatus(s->conn) != CONNECTION_OK && reconnect(s) < 0)
		return -1;
	s->in_tx = s->begin_unsent = true; /* sent with the first statement (begin_and_run) */
	s->tx_waited = 0;
	return 0;
}

/* Ends the pipeline of this transaction with its COMMIT (after SET LOCAL synchronous_commit
 * = off when no_flush). A durable commit waits for every answer; one of no-flush units only
 * is left to be read before the next use of the connection (pipe_drain). */
static int commit_piped(struct pg_store *s, bool no_flush)
{
	static const char *const no_flush_sql = "SET LOCAL synchronous_commit = off";
	if (s->piped == 0 && PQenterPipelineMode(s->conn) != 1)
		return -1;
	if (no_flush) {
		if (PQsendQueryParams(s->conn, no_flush_sql, 0, NULL, NULL, NULL, NULL, 0) != 1)
			return -1;
		s->piped++;
	}
	if (PQsendQueryParams(s->conn, "COMMIT", 0, NULL, NULL, NULL, NULL, 0) != 1)
		return -1;
	s->piped++;
	s->piped_commit = true;
	s->piped_commit_flushed = !no_flush;
	if (PQpipelineSync(s->conn) != 1)
		return -1;
	return no_flush ? 0 : pipe_drain(s);
}

/* The transaction's COMMIT, waiting for it unless no_flush (see commit_piped). */
static int commit_with(struct pg_store *s, bool no_flush)
{
	PGresult *r;
	bool ok;
	int rc;
	if (!s->in_tx) {
		log_warnx("store: commit: no transaction is open");
		return -1;
	}
	if (s->begin_unsent) { /* nothing was sent: nothing to commit */
		s->in_tx = s->begin_unsent = false;
		return 0;
	}
	if (s->piped || no_flush) {
		s->in_tx = false;
		if ((rc = commit_piped(s, no_flush)) < 0 && s->piped)
			pipe_drain(s); /* says what failed */
		if (rc < 0 && no_flush) { /* what it held is learnt again: not worth the process */
			log_warnx("store: a commit of node reports could not be sent: the core keeps them in memory");
			return 0;
		}
		return rc;
	}
	/* COMMIT of a transaction a statement aborted answers ROLLBACK, with no error; PQexec
	 * gives the last statement's result */
	r = PQexec(s->conn, "COMMIT");
	ok = PQresultStatus(r) == PGRES_COMMAND_OK && strcmp(PQcmdStatus(r), "COMMIT") == 0;
	if (!ok)
		log_warnx("store: commit: %s", PQresultStatus(r) == PGRES_COMMAND_OK ? "the transaction had failed"
		                                                                         : pg_words(PQresultErrorMessage(r)));
	PQclear(r);
	s->in_tx = false;
	return ok ? 0 : -1;
}

static int pg_commit(struct store *base) { return commit_with(pg(base), false); }

/* A transaction whose loss in a crash of the server costs nothing that cannot be learnt
 * again (store.h, "Durability"): committed, visible and ordered before any later commit,
 * without waiting for its WAL flush (that comes within wal_writer_delay, or with the next
 * synchronous commit, whichever is first). */
static int pg_commit_no_flush(struct store *base)
{
	return commit_with(pg(base), true);
}

static void pg_rollback(struct store *base)
{
	struct pg_store *s = pg(base);
	if (s->piped)
		pipe_drain(s);
	if (!s->in_tx)
		return;
	s->in_tx = false;
	if (s->begin_unsent) { /* nothing was sent */
		s->begin_unsent = false;
		return;
	}
	if (PQstatus(s->conn) == CONNECTION_OK)
		exec_sql(s, "ROLLBACK", NULL, 0);
}

/* ---- parameters as text ---- */

#define PARAMS_MAX 20 /* the most a statement binds: an instance's insert, 17 */

struct params {
	const char *v[PARAMS_MAX];
	char num[PARAMS_MAX][24];
	char trace[TRACE_TEXT_MAX]; /* an instance's trace, as text */
	char *owned[4];
	int n, n_owned;
};

static void p_text(struct params *p, const char *v) { p->v[p->n++] = v && v[0] ? v : NULL; }

static void p_int(struct params *p, int64_t v)
{
	snprintf(p->num[p->n], sizeof p->num[0], "%" PRId64, v);
	p->v[p->n] = p->num[p->n];
	p->n++;
}

static void p_json(struct params *p, const json_t *j)
{
	char *text = j ? json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(12)) : NULL;
	if (text)
		p->owned[p->n_owned++] = text;
	p->v[p->n++] = text;
}

static void params_free(struct params *p)
{
	for (int i = 0; i < p->n_owned; i++)
		free(p->owned[i]);
}

static void p_status(struct params *p, const struct store_instance_status *v)
{
	p_text(p, inst_state_names[v->state]);
	p_int(p, v->stop_requested);
	p_text(p, v->node_id);
	if (v->has_exit_code)
		p_int(p, v->exit_code);
	else
		p_text(p, NULL);
	p_text(p, v->error);
	if (v->has_trace && !v->trace_kept && trace_format(&v->trace, p->trace, sizeof p->trace) >= 0) {
		p->v[p->n++] = p->trace; /* as text, without jansson (store_sqlite.c) */
	} else {
		p_text(p, NULL);
	}
	p_int(p, v->updated_us);
	p_int(p, v->run);
}

/* A row that names no project is the admin project's, as everything before schema 5 was. */
static const char *project_or_admin(const char *project) { return project[0] ? project : "admin"; }

/* ---- instances ---- */

/* A deferred unit's insert (store.h, "Units settled at the commit") goes without waiting,
 * with the turn's COMMIT: a create costs one round trip, not two. */
static bool insert_deferrable(const struct pg_store *s, const struct store *base)
{
	return s->in_tx && store_unit_deferred(base) && PQstatus(s->conn) == CONNECTION_OK && !s->piped_commit;
}

static int pipe_send_deferred(struct pg_store *s, enum stmt_id id, int n, const char *const *params, int unit)
{
	char name[8];
	snprintf(name, sizeof name, "s%d", (int)id);
	if (pipe_send(s, name, n, params) < 0) {
		log_warnx("store: an insert could not be sent: %s", pg_words(PQerrorMessage(s->conn)));
		return -1;
	}
	if (s->n_deferred == s->cap_deferred &&
	    !(s->deferred = realloc(s->deferred, sizeof *s->deferred *
	                                             (size_t)(s->cap_deferred = s->cap_deferred ? s->cap_deferred * 2 : 8))))
		fatal("realloc");
	s->deferred[s->n_deferred++] = (struct piped_insert){.at = s->piped - 1, .unit = unit};
	return 0;
}

static int pg_instance_insert(struct store *base, const struct store_instance_row *r)
{
	struct pg_store *s = pg(base);
	struct params p = {.n = 0};
	struct jtext spec = {0};
	size_t len;
	int rc;
	spec_write_json(&r->spec, &spec);
	p_text(&p, r->id);
	p_text(&p, r->spec.name);
	p_text(&p, r->spec.driver);
	p_text(&p, r->spec.image);
	p_int(&p, r->spec.vcpus_milli);
	p_int(&p, r->spec.memory_mb);
	p.v[p.n++] = p.owned[p.n_owned++] = jtext_take(&spec, &len);
	p_status(&p, &r->status); /* $8 .. $15 */
	p_int(&p, r->created_us);
	p_text(&p, project_or_admin(r->project));
	if (insert_deferrable(s, base))
		rc = pipe_send_deferred(s, ST_INSERT_INSTANCE, p.n, p.v, store_unit_index(base));
	else
		rc = run_insert(s, ST_INSERT_INSTANCE, p.n, p.v, "write instance");
	params_free(&p);
	return rc;
}

static int pg_instance_update(struct store *base, const char *id, const struct store_instance_status *v)
{
	struct pg_store *s = pg(base);
	struct params p = {.n = 0};
	struct store_instance_status st = *v;
	char name[8];
	int rc;
	st.trace_kept = v->trace_kept && !s->piped_failed;
	p_status(&p, &st);
	p_text(&p, id);
	p_text(&p, st.trace_kept ? "true" : "false");
	snprintf(name, sizeof name, "s%d", (int)ST_UPDATE_INSTANCE);
	/* a node's report inside a transaction: sent without waiting ("writes that can be learnt again") */
	if (s->in_tx && store_unit_no_flush(base) && PQstatus(s->conn) == CONNECTION_OK && !s->piped_commit) {
		if ((rc = pipe_send(s, name, p.n, p.v)) < 0)
			log_warnx("store: a node's report could not be sent: %s", pg_words(PQerrorMessage(s->conn)));
	} else
		rc = run_done(s, ST_UPDATE_INSTANCE, p.n, p.v, "write instance");
	params_free(&p);
	return rc;
}

static int pg_instance_delete(struct store *base, const char *id)
{
	const char *v[1] = {id};
	return run_done(pg(base), ST_DELETE_INSTANCE, 1, v, "delete instance");
}

static const char *cell(const PGresult *r, int row, int col)
{
	return PQgetisnull(r, row, col) ? NULL : PQgetvalue(r, row, col);
}

static json_t *cell_json(const PGresult *r, int row, int col)
{
	const char *text = cell(r, row, col);
	return text ? json_loads(text, 0, NULL) : NULL;
}

static void cell_copy(const PGresult *r, int row, int col, char *dst, size_t len)
{
	snprintf(dst, len, "%s", PQgetvalue(r, row, col)); /* "" for NULL */
}

/* One row of ST_PAGE_INSTANCES; -1 when it does not read back (skipped, with a warning). */
static int row_read(const PGresult *res, int i, struct store_instance_row *r)
{
	const char *trace;
	json_t *spec;
	struct mv_error err;
	int state;

	memset(r, 0, sizeof *r);
	cell_copy(res, i, 0, r->id, sizeof r->id);
	spec = cell_json(res, i, 1);
	state = inst_state_parse(cell(res, i, 2));
	if (!spec || state < 0 || spec_decode(&r->spec, spec, SPEC_STORED, &err) < 0) {
		log_warnx("store: instance %s has an unreadable record; skipped", r->id);
		json_decref(spec);
		return -1;
	}
	json_decref(spec);
	r->status.state = (enum inst_state)state;
	r->status.stop_requested = atoi(PQgetvalue(res, i, 3)) != 0;
	cell_copy(res, i, 4, r->status.node_id, sizeof r->status.node_id);
	if (!PQgetisnull(res, i, 5)) {
		r->status.has_exit_code = true;
		r->status.exit_code = atoi(PQgetvalue(res, i, 5));
	}
	r->status.error = cell(res, i, 6);
	if ((trace = cell(res, i, 7)))
		r->status.has_trace = trace_from_text(&r->status.trace, trace) == 0;
	r->created_us = strtoll(PQgetvalue(res, i, 8), NULL, 10);
	r->status.updated_us = strtoll(PQgetvalue(res, i, 9), NULL, 10);
	cell_copy(res, i, 10, r->project, sizeof r->project);
	r->status.run = (uint32_t)strtoul(PQgetvalue(res, i, 11), NULL, 10);
	return 0;
}

static int pg_instances_page(struct store *base, const struct store_cursor *after, size_t limit,
                             store_instance_fn *fn, void *arg, struct store_cursor *last, size_t *got)
{
	struct params p = {.n = 0};
	PGresult *res;
	*last = *after;
	*got = 0;
	p_int(&p, after->created_us);
	p.v[p.n++] = after->id; /* "" is a value here, not NULL */
	p_int(&p, (int64_t)limit);
	if (!(res = run(pg(base), ST_PAGE_INSTANCES, p.n, p.v, "load instances")))
		return -1;
	for (int i = 0; i < PQntuples(res); i++) {
		struct store_instance_row r;
		(*got)++;
		last->created_us = strtoll(PQgetvalue(res, i, 8), NULL, 10);
		cell_copy(res, i, 0, last->id, sizeof last->id);
		if (row_read(res, i, &r) < 0)
			continue;
		fn(arg, &r);
		spec_free(&r.spec);
	}
	PQclear(res);
	return 0;
}

/* ---- nodes ---- */

static int pg_node_put(struct store *base, const struct store_node_row *n)
{
	struct params p = {.n = 0};
	json_t *info = store_node_info(n);
	int rc;
	p_text(&p, n->id);
	p_text(&p, n->name);
	p_json(&p, info);
	p_int(&p, clock_wall_us());
	json_decref(info);
	rc = run_done(pg(base), ST_PUT_NODE, p.n, p.v, "write node");
	params_free(&p);
	return rc;
}

static int pg_nodes_load(struct store *base, store_node_fn *fn, void *arg)
{
	PGresult *res = run(pg(base), ST_LOAD_NODES, 0, NULL, "load nodes");
	if (!res)
		return -1;
	for (int i = 0; i < PQntuples(res); i++) {
		struct store_node_row n = {0};
		json_t *info = cell_json(res, i, 2);
		cell_copy(res, i, 0, n.id, sizeof n.id);
		cell_copy(res, i, 1, n.name, sizeof n.name);
		if (store_node_from_info(&n, info) < 0) {
			log_warnx("store: node %s has an unreadable record; skipped", n.id);
			json_decref(info);
			continue;
		}
		json_decref(info);
		fn(arg, &n);
		json_decref(n.drivers);
		json_decref(n.labels);
		json_decref(n.bridges);
		json_decref(n.run_dir);
	}
	PQclear(res);
	return 0;
}

/* ---- idempotency keys ---- */

static int pg_idem_get(struct store *base, const char *key, struct store_idem_row *out, bool *found)
{
	const char *v[1] = {key};
	PGresult *res;
	memset(out, 0, sizeof *out);
	*found = false;
	if (!(res = run(pg(base), ST_IDEM_GET, 1, v, "read idempotency key")))
		return -1;
	if (PQntuples(res) == 1) {
		json_t *ids = cell_json(res, 0, 1);
		snprintf(out->key, sizeof out->key, "%s", key);
		cell_copy(res, 0, 0, out->digest, sizeof out->digest);
		store_idem_ids_from_json(out, ids);
		json_decref(ids);
		*found = true;
	}
	PQclear(res);
	return 0;
}

static int pg_idem_put(struct store *base, const struct store_idem_row *r)
{
	struct params p = {.n = 0};
	json_t *ids = store_idem_ids_json(r);
	int rc;
	p_text(&p, r->key);
	p_text(&p, r->digest);
	p_json(&p, ids);
	json_decref(ids);
	p_int(&p, r->created_us);
	rc = run_insert(pg(base), ST_IDEM_PUT, p.n, p.v, "write idempotency key");
	params_free(&p);
	return rc;
}

/* ---- images ---- */

static int pg_image_insert(struct store *base, const struct store_image_row *img)
{
	struct params p = {.n = 0};
	p_text(&p, img->name);
	p_text(&p, img->kernel);
	p_int(&p, img->kernel_size);
	p_text(&p, img->initrd);
	p_int(&p, img->initrd_size);
	p_text(&p, img->cmdline);
	p_int(&p, img->created_us);
	p_text(&p, img->xen_type);
	p_text(&p, project_or_admin(img->project));
	return run_insert(pg(base), ST_PUT_IMAGE, p.n, p.v, "write image");
}

static int pg_image_delete(struct store *base, const char *name)
{
	const char *v[1] = {name};
	return run_done(pg(base), ST_DELETE_IMAGE, 1, v, "delete image");
}

static int pg_images_load(struct store *base, store_image_fn *fn, void *arg)
{
	PGresult *res = run(pg(base), ST_LOAD_IMAGES, 0, NULL, "load images");
	if (!res)
		return -1;
	for (int i = 0; i < PQntuples(res); i++) {
		struct store_image_row img = {0};
		cell_copy(res, i, 0, img.name, sizeof img.name);
		cell_copy(res, i, 1, img.kernel, sizeof img.kernel);
		img.kernel_size = strtoll(PQgetvalue(res, i, 2), NULL, 10);
		cell_copy(res, i, 3, img.initrd, sizeof img.initrd);
		img.initrd_size = strtoll(PQgetvalue(res, i, 4), NULL, 10);
		img.cmdline = cell(res, i, 5);
		img.created_us = strtoll(PQgetvalue(res, i, 6), NULL, 10);
		cell_copy(res, i, 7, img.xen_type, sizeof img.xen_type);
		cell_copy(res, i, 8, img.project, sizeof img.project);
		fn(arg, &img);
	}
	PQclear(res);
	return 0;
}

/* ---- warm pools ---- */

static int pg_pool_insert(struct store *base, const struct store_pool_row *r)
{
	struct params p = {.n = 0};
	int rc;
	p_text(&p, r->name);
	p_int(&p, r->size);
	p_json(&p, r->spec);
	p_int(&p, r->created_us);
	rc = run_insert(pg(base), ST_PUT_POOL, p.n, p.v, "write pool");
	params_free(&p);
	return rc;
}

static int pg_pool_delete(struct store *base, const char *name)
{
	const char *v[1] = {name};
	return run_done(pg(base), ST_DELETE_POOL, 1, v, "delete pool");
}

static int pg_pools_load(struct store *base, store_pool_fn *fn, void *arg)
{
	PGresult *res = run(pg(base), ST_LOAD_POOLS, 0, NULL, "load pools");
	if (!res)
		return -1;
	for (int i = 0; i < PQntuples(res); i++) {
		struct store_pool_row r = {0};
		cell_copy(res, i, 0, r.name, sizeof r.name);
		r.size = (int)strtol(PQgetvalue(res, i, 1), NULL, 10);
		r.spec = cell_json(res, i, 2);
		r.created_us = strtoll(PQgetvalue(res, i, 3), NULL, 10);
		fn(arg, &r);
		json_decref(r.spec);
	}
	PQclear(res);
	return 0;
}

/* ---- tenancy ---- */

static int64_t cell_int(const PGresult *r, int row, int col) { return strtoll(PQgetvalue(r, row, col), NULL, 10); }

static int pg_project_insert(struct store *base, const struct store_project_row *pr)
{
	struct params p = {.n = 0};
	p_text(&p, pr->name);
	p_int(&p, pr->quota_instances);
	p_int(&p, pr->quota_vcpus_milli);
	p_int(&p, pr->quota_memory_mb);
	p_int(&p, pr->created_us);
	return run_insert(pg(base), ST_PUT_PROJECT, p.n, p.v, "write project");
}

static int pg_project_delete(struct store *base, const char *name)
{
	const char *v[1] = {name};
	return run_done(pg(base), ST_DELETE_PROJECT, 1, v, "delete project");
}

static int pg_projects_load(struct store *base, store_project_fn *fn, void *arg)
{
	PGresult *res = run(pg(base), ST_LOAD_PROJECTS, 0, NULL, "load projects");
	if (!res)
		return -1;
	for (int i = 0; i < PQntuples(res); i++) {
		struct store_project_row pr = {0};
		cell_copy(res, i, 0, pr.name, sizeof pr.name);
		pr.quota_instances = cell_int(res, i, 1);
		pr.quota_vcpus_milli = cell_int(res, i, 2);
		pr.quota_memory_mb = cell_int(res, i, 3);
		pr.created_us = cell_int(res, i, 4);
		fn(arg, &pr);
	}
	PQclear(res);
	return 0;
}

static int pg_user_insert(struct store *base, const struct store_user_row *u)
{
	struct params p = {.n = 0};
	p_text(&p, u->name);
	p_text(&p, u->project);
	p_text(&p, u->role);
	p_text(&p, u->password_hash);
	p_int(&p, u->created_us);
	return run_insert(pg(base), ST_PUT_USER, p.n, p.v, "write user");
}

static int pg_user_delete(struct store *base, const char *name)
{
	const char *v[1] = {name};
	return run_done(pg(base), ST_DELETE_USER, 1, v, "delete user");
}

static int pg_users_load(struct store *base, store_user_fn *fn, void *arg)
{
	PGresult *res = run(pg(base), ST_LOAD_USERS, 0, NULL, "load users");
	if (!res)
		return -1;
	for (int i = 0; i < PQntuples(res); i++) {
		struct store_user_row u = {0};
		cell_copy(res, i, 0, u.name, sizeof u.name);
		cell_copy(res, i, 1, u.project, sizeof u.project);
		cell_copy(res, i, 2, u.role, sizeof u.role);
		u.password_hash = cell(res, i, 3);
		u.created_us = cell_int(res, i, 4);
		fn(arg, &u);
	}
	PQclear(res);
	return 0;
}

static int pg_token_insert(struct store *base, const struct store_token_row *t)
{
	struct params p = {.n = 0};
	p_text(&p, t->id);
	p_text(&p, t->hash);
	p_text(&p, t->user);
	p_int(&p, t->expires_us);
	p_int(&p, t->revoked);
	p_int(&p, t->created_us);
	return run_done(pg(base), ST_PUT_TOKEN, p.n, p.v, "write token");
}

static int pg_token_revoke(struct store *base, const char *id)
{
	const char *v[1] = {id};
	return run_done(pg(base), ST_REVOKE_TOKEN, 1, v, "revoke token");
}

static int pg_tokens_load(struct store *base, store_token_fn *fn, void *arg)
{
	PGresult *res = run(pg(base), ST_LOAD_TOKENS, 0, NULL, "load tokens");
	if (!res)
		return -1;
	for (int i = 0; i < PQntuples(res); i++) {
		struct store_token_row t = {0};
		cell_copy(res, i, 0, t.id, sizeof t.id);
		cell_copy(res, i, 1, t.hash, sizeof t.hash);
		cell_copy(res, i, 2, t.user, sizeof t.user);
		t.expires_us = cell_int(res, i, 3);
		t.revoked = cell_int(res, i, 4) != 0;
		t.created_us = cell_int(res, i, 5);
		fn(arg, &t);
	}
	PQclear(res);
	return 0;
}

static int pg_node_secret_insert(struct store *base, const struct store_node_secret_row *r)
{
	struct params p = {.n = 0};
	p_text(&p, r->id);
	p_text(&p, r->kind);
	p_text(&p, r->hash);
	p_text(&p, r->node_id);
	p_text(&p, r->join_id);
	p_int(&p, r->expires_us);
	p_int(&p, r->revoked);
	p_int(&p, r->created_us);
	return run_done(pg(base), ST_PUT_NODE_SECRET, p.n, p.v, "write node secret");
}

static int pg_node_secret_revoke(struct store *base, const char *id)
{
	const char *v[1] = {id};
	return run_done(pg(base), ST_REVOKE_NODE_SECRET, 1, v, "revoke node secret");
}

static int pg_node_secrets_load(struct store *base, store_node_secret_fn *fn, void *arg)
{
	PGresult *res = run(pg(base), ST_LOAD_NODE_SECRETS, 0, NULL, "load node secrets");
	if (!res)
		return -1;
	for (int i = 0; i < PQntuples(res); i++) {
		struct store_node_secret_row r = {0};
		cell_copy(res, i, 0, r.id, sizeof r.id);
		cell_copy(res, i, 1, r.kind, sizeof r.kind);
		cell_copy(res, i, 2, r.hash, sizeof r.hash);
		cell_copy(res, i, 3, r.node_id, sizeof r.node_id);
		cell_copy(res, i, 4, r.join_id, sizeof r.join_id);
		r.expires_us = cell_int(res, i, 5);
		r.revoked = cell_int(res, i, 6) != 0;
		r.created_us = cell_int(res, i, 7);
		fn(arg, &r);
	}
	PQclear(res);
	return 0;
}

const struct store_ops store_pg_ops = {
	.name = "postgresql",
	.schema_version = PG_SCHEMA_VERSION,
	.close = pg_close,
	.claim = pg_claim,
	.begin = pg_begin,
	.commit = pg_commit,
	.rollback = pg_rollback,
	.commit_no_flush = pg_commit_no_flush,
	.instance_insert = pg_instance_insert,
	.instance_update = pg_instance_update,
	.instance_delete = pg_instance_delete,
	.instances_page = pg_instances_page,
	.node_put = pg_node_put,
	.nodes_load = pg_nodes_load,
	.image_insert = pg_image_insert,
	.image_delete = pg_image_delete,
	.images_load = pg_images_load,
	.idem_get = pg_idem_get,
	.idem_put = pg_idem_put,
	.project_insert = pg_project_insert,
	.project_delete = pg_project_delete,
	.projects_load = pg_projects_load,
	.user_insert = pg_user_insert,
	.user_delete = pg_user_delete,
	.users_load = pg_users_load,
	.token_insert = pg_token_insert,
	.token_revoke = pg_token_revoke,
	.tokens_load = pg_tokens_load,
	.node_secret_insert = pg_node_secret_insert,
	.node_secret_revoke = pg_node_secret_revoke,
	.node_secrets_load = pg_node_secrets_load,
	.pool_insert = pg_pool_insert,
	.pool_delete = pg_pool_delete,
	.pools_load = pg_pools_load,
};
