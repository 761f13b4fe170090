/* leader — see leader.h. One connection (libpq, blocking calls of one short round trip on
 * the loop, as the store's), one timer, one read event for NOTIFY. */
#include "core/leader.h"

#include <inttypes.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"

/* The advisory lock of the lead (any fixed number: "mvleader"), and the one taken while
 * the tables are made, so that cores starting together do not race on CREATE TABLE. */
#define LEAD_LOCK_KEY "7166453736806510959"
#define TABLES_LOCK_KEY "7166453736806510960"
#define CHANNEL "microvim_work"
#define CATALOG_CHANNEL "microvim_catalog"
#define CATALOG_TABLES_MAX 8 /* distinct tables told apart in one read of notifications */

/* The catalog's triggers: a statement that changes one of the tables every core keeps in
 * memory NOTIFYs its table's name and the writer's application name. A NOTIFY is
 * transactional: the others hear of it once it is committed, never before, and never when
 * it is rolled back. Made only when missing: CREATE TRIGGER locks its table. */
static const char tables_sql[] =
	"CREATE TABLE IF NOT EXISTS ha_leader (one INTEGER PRIMARY KEY CHECK (one = 1), url TEXT NOT NULL,"
	" app TEXT NOT NULL, renewed TIMESTAMPTZ NOT NULL);"
	"CREATE TABLE IF NOT EXISTS ha_intents (seq BIGSERIAL PRIMARY KEY, instance_id TEXT NOT NULL);"
	/* a server's delete (the OpenStack façade): stop, then remove once ended */
	"ALTER TABLE ha_intents ADD COLUMN IF NOT EXISTS remove_when_ended BOOLEAN NOT NULL DEFAULT false;"
	"CREATE OR REPLACE FUNCTION microvim_catalog_changed() RETURNS trigger LANGUAGE plpgsql AS $f$ BEGIN"
	" PERFORM pg_notify('" CATALOG_CHANNEL "', TG_TABLE_NAME || ' ' || current_setting('application_name'));"
	" RETURN NULL; END $f$;"
	"DO $d$ DECLARE t text; BEGIN"
	" FOREACH t IN ARRAY ARRAY['projects', 'users', 'tokens', 'images', 'node_secrets'] LOOP"
	"  IF to_regclass(t) IS NOT NULL AND NOT EXISTS (SELECT 1 FROM pg_trigger"
	"   WHERE tgname = 'microvim_catalog' AND tgrelid = to_regclass(t)) THEN"
	"   EXECUTE format('CREATE TRIGGER microvim_catalog AFTER INSERT OR UPDATE OR DELETE ON %I"
	" FOR EACH STATEMENT EXECUTE FUNCTION microvim_catalog_changed()', t);"
	"  END IF; END LOOP; END $d$";

struct leader {
	struct event_base *base;
	PGconn *conn;
	char *app, *advertise;
	struct leader_hooks hooks;
	struct event *tick, *readable;
	bool leading;
	bool suspended;         /* leading, but the lease lapsed: acting stops until it is renewed */
	bool catalog_owed;      /* reconnected: the catalog hook is told at the next tick */
	int64_t renew_sent_us;  /* when the last lease renewal that succeeded was sent */
	char url[256];          /* the leader's, as its lease row says ("" unknown) */
	bool url_fresh;         /* a follower: that lease was renewed lately at the last read */
};

static const char *pg_words(const PGconn *conn, const PGresult *r)
{
	static char buf[400];
	size_t n;
	snprintf(buf, sizeof buf, "%s", r ? PQresultErrorMessage(r) : PQerrorMessage(conn));
	n = strlen(buf);
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		buf[--n] = '\0';
	return buf;
}

/* Runs sql with text parameters; the result when it has the status wanted, else NULL
 * after logging. */
static PGresult *query(struct leader *l, const char *sql, int n, const char *const *params, ExecStatusType want)
{
	PGresult *r = PQexecParams(l->conn, sql, n, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(r) == want)
		return r;
	log_warnx("leader: %.40s...: %s", sql, pg_words(l->conn, r));
	PQclear(r);
	return NULL;
}

static bool query_ok(struct leader *l, const char *sql, int n, const char *const *params)
{
	PGresult *r = query(l, sql, n, params, PGRES_TUPLES_OK);
	PQclear(r);
	return r != NULL;
}

/* The settings of the store's connection, tighter: the election must notice a dead server
 * (or path to it) within about two seconds. */
static PGconn *connect_url(const char *url, const char *app)
{
	static const char *const keys[] = {"connect_timeout", "keepalives", "keepalives_idle", "keepalives_interval",
	                                   "keepalives_count", "tcp_user_timeout", "dbname", "application_name",
	                                   NULL};
	const char *values[] = {"2", "1", "1", "1", "1", "2000", url, app, NULL};
	/* app after the URL: the fence finds this core's sessions by it */
	return PQconnectdbParams(keys, values, 1);
}

/* tables: make the election's tables when missing (at the start; a reconnect only
 * listens again, so that a leader fenced while stalled writes nothing before it finds its
 * term over). */
static int setup(struct leader *l, bool tables, char *err, size_t errlen)
{
	PGresult *r;
	bool ok;
	if (!tables) {
		r = PQexec(l->conn, "SET client_min_messages = warning; LISTEN " CHANNEL "; LISTEN " CATALOG_CHANNEL);
		ok = PQresultStatus(r) == PGRES_COMMAND_OK;
		if (!ok)
			snprintf(err, errlen, "cannot listen for the followers' writes: %s", pg_words(l->conn, r));
		PQclear(r);
		return ok ? 0 : -1;
	}
	r = PQexec(l->conn, "SET client_min_messages = warning; BEGIN; SELECT pg_advisory_xact_lock(" TABLES_LOCK_KEY ")");
	ok = PQresultStatus(r) == PGRES_TUPLES_OK;
	PQclear(r);
	if (ok) {
		r = PQexec(l->conn, tables_sql);
		ok = PQresultStatus(r) == PGRES_COMMAND_OK;
		if (!ok)
			snprintf(err, errlen, "cannot make the election's tables: %s", pg_words(l->conn, r));
		PQclear(r);
	} else {
		snprintf(err, errlen, "cannot make the election's tables: %s", pg_words(l->conn, NULL));
	}
	r = PQexec(l->conn, ok ? "COMMIT; LISTEN " CHANNEL "; LISTEN " CATALOG_CHANNEL : "ROLLBACK");
	if (ok && PQresultStatus(r) != PGRES_COMMAND_OK) {
		snprintf(err, errlen, "cannot listen for the followers' writes: %s", pg_words(l->conn, r));
		ok = false;
	}
	PQclear(r);
	return ok ? 0 : -1;
}

/* ---- the lead ---- */

/* A leader that lost its lock, its connection or its lease must not act one moment more:
 * what it holds in memory (queued assignments, waiting clients) belongs to a term that is
 * over. Exiting hands every client and node to the new leader at once; _exit, because no
 * cleanup of ours may write anything now. */
static void step_down(const char *why)
{
	log_warnx("leader: lost the lead (%s): exiting so that only the new leader acts (restart this core: it "
	          "comes back as a follower)", why);
	_exit(LEADER_EXIT_LOST);
}

/* Writes the lease row (the URL and application name with it); 0 when it is written. */
static int renew(struct leader *l)
{
	const char *params[] = {l->advertise, l->app};
	int64_t sent = clock_mono_us();
	PGresult *r = query(l,
	                    "INSERT INTO ha_leader (one, url, app, renewed) VALUES (1, $1, $2, clock_timestamp())"
	                    " ON CONFLICT (one) DO UPDATE SET url = $1, app = $2, renewed = clock_timestamp()",
	                    2, params, PGRES_COMMAND_OK);
	PQclear(r);
	if (!r)
		return -1;
	l->renew_sent_us = sent;
	return 0;
}

/* 1: this session holds the lock now; 0: another has it; -1: the query failed. */
static int try_lock(struct leader *l)
{
	PGresult *r = query(l, "SELECT pg_try_advisory_lock(" LEAD_LOCK_KEY ")", 0, NULL, PGRES_TUPLES_OK);
	int got = r ? strcmp(PQgetvalue(r, 0, 0), "t") == 0 : -1;
	PQclear(r);
	return got;
}

/* Whether the lease row names another core (read before this one writes its own). */
static bool led_by_another(struct leader *l)
{
	PGresult *r = query(l, "SELECT app FROM ha_leader WHERE one = 1", 0, NULL, PGRES_TUPLES_OK);
	bool another = r && PQntuples(r) == 1 && strcmp(PQgetvalue(r, 0, 0), l->app) != 0;
	PQclear(r);
	return another;
}

static void promote(struct leader *l)
{
	bool after_another = led_by_another(l);
	if (renew(l) < 0) {
		/* leading without a lease would let followers fence us at once: give it back */
		PQclear(PQexec(l->conn, "SELECT pg_advisory_unlock(" LEAD_LOCK_KEY ")"));
		return;
	}
	l->leading = true;
	snprintf(l->url, sizeof l->url, "%s", l->advertise);
	log_info("leader: this core leads (advertised as %s)", l->advertise);
	if (l->hooks.promoted)
		l->hooks.promoted(l->hooks.arg, after_another);
	if (l->hooks.work)
		l->hooks.work(l->hooks.arg);
}

/* Ends every session of a leader whose lease lapsed (its lock's and its store's), waiting
 * up to 500 ms for each to be gone so that the lock is free for our next try. */
static void fence(struct leader *l, const char *app, long long age_ms)
{
	const char *params[] = {app};
	PGresult *r = query(l,
	                    "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 500)) FROM pg_stat_activity"
	                    " WHERE application_name = $1 AND pid <> pg_backend_pid()",
	                    1, params, PGRES_TUPLES_OK);
	if (r)
		log_warnx("leader: the leader %s has not renewed its lease for %lld ms (stalled?): ended its %s "
		          "session(s)", l->url, age_ms, PQgetvalue(r, 0, 0));
	PQclear(r);
}

/* A follower reads who leads, and fences a leader whose lease lapsed; 1 after a fence. */
static int watch(struct leader *l)
{
	PGresult *r = query(l,
	                    "SELECT url, app, (extract(epoch FROM clock_timestamp() - renewed) * 1000)::bigint"
	                    " FROM ha_leader WHERE one = 1",
	                    0, NULL, PGRES_TUPLES_OK);
	int fenced = 0;
	if (!r)
		return 0;
	if (PQntuples(r) == 1) {
		long long age = strtoll(PQgetvalue(r, 0, 2), NULL, 10);
		snprintf(l->url, sizeof l->url, "%s", PQgetvalue(r, 0, 0));
		l->url_fresh = age <= LEADER_FRESH_MS;
		if (age > LEADER_LEASE_MS) {
			fence(l, PQgetvalue(r, 0, 1), age);
			l->url[0] = '\0';
			fenced = 1;
		}
	}
	PQclear(r);
	return fenced;
}

/* The tables other cores changed, each once however many notifications name it. */
struct catalog_changes {
	char tables[CATALOG_TABLES_MAX][64];
	int n;
	bool overflow; /* more tables than room: everything is loaded again */
};

/* A catalog notification's payload is "TABLE APP": this core's own writes are in its
 * memory already. */
static void catalog_note(struct leader *l, struct catalog_changes *c, const char *payload)
{
	const char *space = strchr(payload, ' ');
	size_t len = space ? (size_t)(space - payload) : strlen(payload);
	if (space && strcmp(space + 1, l->app) == 0)
		return;
	for (int i = 0; i < c->n; i++)
		if (strlen(c->tables[i]) == len && strncmp(c->tables[i], payload, len) == 0)
			return;
	if (c->n == CATALOG_TABLES_MAX || len >= sizeof c->tables[0]) {
		c->overflow = true;
		return;
	}
	memcpy(c->tables[c->n], payload, len);
	c->tables[c->n++][len] = '\0';
}

static void catalog_tell(struct leader *l, const struct catalog_changes *c)
{
	if (!l->hooks.catalog)
		return;
	if (c->overflow) {
		l->hooks.catalog(l->hooks.arg, NULL);
		return;
	}
	for (int i = 0; i < c->n; i++)
		l->hooks.catalog(l->hooks.arg, c->tables[i]);
}

static void drain_notifies(struct leader *l)
{
	PGnotify *n;
	int got = 0;
	struct catalog_changes changed = {.n = 0};
	if (PQconsumeInput(l->conn) == 0)
		return; /* the connection broke: the next tick makes it again */
	while ((n = PQnotifies(l->conn))) {
		if (strcmp(n->relname, CATALOG_CHANNEL) == 0)
			catalog_note(l, &changed, n->extra);
		else
			got++;
		PQfreemem(n);
	}
	catalog_tell(l, &changed);
	if (got && leader_is_leader(l) && l->hooks.work)
		l->hooks.work(l->hooks.arg);
}

static void on_readable(UNUSED evutil_socket_t fd, UNUSED short what, void *arg) { drain_notifies(arg); }

static void watch_socket(struct leader *l)
{
	if (l->readable)
		event_free(l->readable);
	l->readable = event_new(l->base, PQsocket(l->conn), EV_READ | EV_PERSIST, on_readable, l);
	event_add(l->readable, NULL);
}

/* A follower whose connection broke makes it again (the leader's break is its end). */
static int reconnect(struct leader *l)
{
	char err[400];
	PQreset(l->conn);
	if (PQstatus(l->conn) != CONNECTION_OK) {
		log_warnx("leader: cannot reach PostgreSQL: %s", pg_words(l->conn, NULL));
		return -1;
	}
	if (setup(l, false, err, sizeof err) < 0) {
		log_warnx("leader: %s", err);
		return -1;
	}
	watch_socket(l);
	/* notifications sent while the connection was down are lost: everything is loaded
	 * again, at the next tick (a reconnect may happen amid a request's handling, whose
	 * objects a reload must not free under it) */
	l->catalog_owed = true;
	return 0;
}

/* A leader whose lease lapsed (stalled, or PostgreSQL away, failing over to a standby)
 * may take it up again only if no core led meanwhile: it holds the lock again (a new
 * session after a reconnect, or still the old one) and the lease row is still its own
 * (every leader writes its row as it takes the lead). Otherwise its term is over: it
 * exits. 1: the term goes on; 0: not known yet (PostgreSQL away). */
static int term_goes_on(struct leader *l)
{
	PGresult *r;
	bool ours;
	int got = try_lock(l);
	if (got < 0 && PQstatus(l->conn) != CONNECTION_OK && reconnect(l) == 0)
		got = try_lock(l); /* a fence ended the session: a new one asks */
	if (got < 0)
		return 0;
	if (got == 0)
		step_down("another core holds the lead");
	r = query(l, "SELECT app FROM ha_leader WHERE one = 1", 0, NULL, PGRES_TUPLES_OK);
	if (!r)
		return 0;
	ours = PQntuples(r) == 1 && strcmp(PQgetvalue(r, 0, 0), l->app) == 0;
	PQclear(r);
	if (!ours)
		step_down("another core led while this one was away");
	return 1;
}

static void resume(struct leader *l)
{
	if (term_goes_on(l) != 1 || renew(l) < 0)
		return;
	l->suspended = false;
	log_info("leader: lease renewed after a pause: this core leads again");
	if (l->hooks.work)
		l->hooks.work(l->hooks.arg);
}

static void tick(struct leader *l)
{
	if (l->catalog_owed && PQstatus(l->conn) == CONNECTION_OK) {
		l->catalog_owed = false;
		if (l->hooks.catalog)
			l->hooks.catalog(l->hooks.arg, NULL);
	}
	if (l->leading) {
		if (PQstatus(l->conn) != CONNECTION_OK && reconnect(l) < 0)
			return;
		leader_is_leader(l); /* notices a lapse */
		if (l->suspended)
			resume(l);
		else
			renew(l); /* a failed renewal is not yet the end: the lease has room for a few */
		drain_notifies(l);
		return;
	}
	if (PQstatus(l->conn) != CONNECTION_OK && reconnect(l) < 0)
		return;
	if (try_lock(l) == 1 || (watch(l) && try_lock(l) == 1))
		promote(l);
	if (!l->leading)
		drain_notifies(l); /* followers drop them: the leader acts */
}

static void on_tick(UNUSED evutil_socket_t fd, UNUSED short what, void *arg) { tick(arg); }

/* ---- the interface ---- */

struct leader *leader_open(struct event_base *base, const char *url, const char *app, const char *advertise,
                           const struct leader_hooks *hooks, char *err, size_t errlen)
{
	struct leader *l = calloc(1, sizeof *l);
	if (!l || !(l->app = strdup(app)) || !(l->advertise = strdup(advertise)))
		fatal("calloc");
	l->base = base;
	l->hooks = *hooks;
	l->conn = connect_url(url, app);
	if (!l->conn || PQstatus(l->conn) != CONNECTION_OK) {
		snprintf(err, errlen, "the election cannot connect to PostgreSQL: %s",
		         l->conn ? pg_words(l->conn, NULL) : "out of memory");
		goto fail;
	}
	if (setup(l, true, err, errlen) < 0)
		goto fail;
	watch_socket(l);
	l->tick = event_new(base, -1, EV_PERSIST, on_tick, l);
	return l;
fail:
	leader_close(l);
	return NULL;
}

void leader_start(struct leader *l)
{
	struct timeval tv = clock_timeval(LEADER_TICK_MS / 1000.0);
	/* what other cores changed between the core's loading and this connection's LISTEN */
	if (l->hooks.catalog)
		l->hooks.catalog(l->hooks.arg, NULL);
	tick(l);
	if (!l->leading)
		log_info("leader: this core follows%s%s", l->url[0] ? " the leader at " : " (no leader yet)", l->url);
	event_add(l->tick, &tv);
}

void leader_close(struct leader *l)
{
	if (!l)
		return;
	if (l->tick)
		event_free(l->tick);
	if (l->readable)
		event_free(l->readable);
	if (l->conn)
		PQfinish(l->conn);
	free(l->app);
	free(l->advertise);
	free(l);
}

bool leader_is_leader(struct leader *l)
{
	if (!l->leading || l->suspended)
		return false;
	if (clock_mono_us() - l->renew_sent_us > LEADER_SELF_LEASE_MS * 1000LL) {
		l->suspended = true;
		log_warnx("leader: the lease was not renewed for %d ms (this core was stalled, or PostgreSQL is away): "
		          "acting stops until it is renewed, or the core exits if another led meanwhile",
		          LEADER_SELF_LEASE_MS);
		/* most often the first event a continued stalled leader handles (a request, a
		 * node's report, a timer of the cluster): its term found over, it exits before
		 * handling that event or any after it. A term that goes on is taken up by the
		 * tick (resume), not here: the work hook must not run inside another event. */
		term_goes_on(l);
		return false;
	}
	return true;
}

bool leader_follows(const struct leader *l) { return !l->leading; }

const char *leader_url_live(const struct leader *l)
{
	if (l->leading)
		return leader_url(l);
	return l->url_fresh ? l->url : "";
}

const char *leader_url(const struct leader *l) { return l->suspended ? "" : l->url; }

int leader_request_delete(struct leader *l, const char *id, bool remove_when_ended)
{
	const char *params[] = {id, remove_when_ended ? "t" : "f"};
	if (PQstatus(l->conn) != CONNECTION_OK && reconnect(l) < 0)
		return -1;
	return query_ok(l,
	                "WITH i AS (INSERT INTO ha_intents (instance_id, remove_when_ended) VALUES ($1, $2)"
	                " RETURNING seq) SELECT pg_notify('" CHANNEL "', '') FROM i",
	                2, params) ? 0 : -1;
}

int leader_notify(struct leader *l)
{
	if (PQstatus(l->conn) != CONNECTION_OK && reconnect(l) < 0)
		return -1;
	return query_ok(l, "SELECT pg_notify('" CHANNEL "', '')", 0, NULL) ? 0 : -1;
}

/* The array literal "{1,2,...}" of the intents taken, grown as they are. */
struct seq_list {
	char *text;
	size_t len, cap;
};

static void seq_list_add(struct seq_list *sl, const char *piece)
{
	size_t need = sl->len + strlen(piece) + 1;
	if (need > sl->cap) {
		sl->cap = need * 2;
		if (!(sl->text = realloc(sl->text, sl->cap)))
			fatal("realloc");
	}
	memcpy(sl->text + sl->len, piece, strlen(piece) + 1);
	sl->len += strlen(piece);
}

int leader_take_intents(struct leader *l, leader_intent_fn *fn, void (*commit)(void *arg), void *arg)
{
	PGresult *r = query(l, "SELECT seq, instance_id, remove_when_ended FROM ha_intents ORDER BY seq", 0, NULL,
	                    PGRES_TUPLES_OK);
	struct seq_list done = {0};
	const char *params[1];
	int n = 0;
	if (!r)
		return -1;
	seq_list_add(&done, "{");
	for (int i = 0; i < PQntuples(r); i++) {
		if (!fn(arg, PQgetvalue(r, i, 1), strcmp(PQgetvalue(r, i, 2), "t") == 0))
			continue; /* kept for a later sweep */
		if (n++ > 0)
			seq_list_add(&done, ",");
		seq_list_add(&done, PQgetvalue(r, i, 0));
	}
	seq_list_add(&done, "}");
	if (n > 0) {
		commit(arg);
		params[0] = done.text;
		PQclear(query(l, "DELETE FROM ha_intents WHERE seq = ANY($1::bigint[])", 1, params, PGRES_COMMAND_OK));
	}
	free(done.text);
	PQclear(r);
	return 0;
}
