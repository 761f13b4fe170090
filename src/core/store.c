/* store — what every backend shares: group commit, closing, loading page by page, freeing
 * a row, the JSON forms of a node's offers and of an idempotency key's ids. */
#include "core/store.h"

#include "common/log.h"

#include <errno.h>
#include <event2/event.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- group commit (see store.h) ---- */

struct store_group {
	struct store *s;
	struct event *commit_ev; /* made active by the turn's first write: runs at the turn's end */
	bool open;               /* the backend transaction of this turn is open */
	bool in_unit;            /* between store_begin and store_commit */
	bool next_no_flush;      /* store_no_flush_next: for the unit under way or the next one */
	bool next_deferred;      /* store_defer_next: likewise */
	bool flush;              /* a unit of the open transaction needs the disk */
	int units;               /* units accepted in the open transaction */
	uint64_t commits, units_total, flushed;
	void (*on_fatal)(void *arg); /* store_group_on_fatal */
	void *on_fatal_arg;
	/* deferred units of the open transaction (store_unit_then), and those of them refused */
	struct settle *settles;
	size_t n_settles, cap_settles;
	int *refused;
	size_t n_refused, cap_refused;
};

struct settle {
	store_settled_fn *fn;
	void *arg;
	int unit;    /* in the open transaction */
	bool stored; /* at the commit: the unit's insert took */
};

void store_group_on_fatal(struct store *s, void (*fn)(void *arg), void *arg)
{
	s->group->on_fatal = fn;
	s->group->on_fatal_arg = arg;
}

/* Before the process exits for a turn it cannot commit: the owner may know better why
 * (a fenced leader's sessions were ended) and exit its own way. */
static void group_fatal_hook(struct store_group *g)
{
	if (g->on_fatal)
		g->on_fatal(g->on_fatal_arg);
}

static void on_group_commit(UNUSED evutil_socket_t fd, UNUSED short what, void *arg) { store_group_flush(arg); }

void store_group_start(struct store *s, struct event_base *base)
{
	struct store_group *g = calloc(1, sizeof *g);
	if (!g || !(g->commit_ev = event_new(base, -1, 0, on_group_commit, s)))
		fatal("store: cannot set up group commit");
	g->s = s;
	s->group = g;
}

static bool unit_was_refused(const struct store_group *g, int unit)
{
	for (size_t i = 0; i < g->n_refused; i++)
		if (g->refused[i] == unit)
			return true;
	return false;
}

/* After the turn's commit: each deferred unit's owner learns whether its row is stored.
 * The list is taken first: an fn may write, which opens the next transaction. */
static void settle_units(struct store_group *g)
{
	struct settle *settles = g->settles;
	size_t n = g->n_settles;
	for (size_t i = 0; i < n; i++)
		settles[i].stored = !unit_was_refused(g, settles[i].unit);
	g->settles = NULL;
	g->n_settles = g->cap_settles = 0;
	g->n_refused = 0;
	for (size_t i = 0; i < n; i++)
		settles[i].fn(settles[i].arg, settles[i].stored);
	free(settles);
}

void store_group_flush(struct store *s)
{
	struct store_group *g = s->group;
	int rc;
	if (!g || !g->open)
		return;
	if (g->in_unit) /* units begin and end within one callback */
		fatal("store: group commit inside an open unit");
	rc = g->flush || !s->ops->commit_no_flush ? s->ops->commit(s) : s->ops->commit_no_flush(s);
	if (rc < 0)
		group_fatal_hook(g);
	if (rc < 0)
		fatal("store: the commit of this loop turn's %d writes failed: their answers are queued and must not go "
		      "out uncommitted; exiting (a restart reloads what the store holds)", g->units);
	g->commits++;
	g->units_total += (uint64_t)g->units;
	g->flushed += g->flush;
	g->open = g->flush = false;
	g->units = 0;
	settle_units(g);
}

void store_defer_next(struct store *s)
{
	if (s->group)
		s->group->next_deferred = true;
}

bool store_unit_deferred(const struct store *s) { return s->group && s->group->in_unit && s->group->next_deferred; }

int store_unit_index(const struct store *s) { return s->group ? s->group->units : 0; }

void store_unit_refused(struct store *s, int unit)
{
	struct store_group *g = s->group;
	if (g->n_refused == g->cap_refused &&
	    !(g->refused = realloc(g->refused, sizeof *g->refused * (g->cap_refused = g->cap_refused ? g->cap_refused * 2 : 8))))
		fatal("realloc");
	g->refused[g->n_refused++] = unit;
}

void store_unit_then(struct store *s, store_settled_fn *fn, void *arg)
{
	struct store_group *g = s->group;
	if (!g || !g->open) { /* nothing waits for a commit: its insert was answered already */
		fn(arg, true);
		return;
	}
	if (g->n_settles == g->cap_settles &&
	    !(g->settles = realloc(g->settles, sizeof *g->settles * (g->cap_settles = g->cap_settles ? g->cap_settles * 2 : 8))))
		fatal("realloc");
	g->settles[g->n_settles++] = (struct settle){.fn = fn, .arg = arg, .unit = g->units - 1};
}

void store_no_flush_next(struct store *s)
{
	if (s->group)
		s->group->next_no_flush = true;
}

bool store_unit_no_flush(const struct store *s) { return s->group && s->group->next_no_flush; }

void store_group_counts(const struct store *s, uint64_t *commits, uint64_t *units, uint64_t *flushed)
{
	const struct store_group *g = s->group;
	*commits = g ? g->commits : 0;
	*units = g ? g->units_total : 0;
	*flushed = g ? g->flushed : 0;
}

/* A unit failed: with the turn's transaction when it was the first; else nothing can take
 * the others back, and their answers are queued (store.h). */
static void group_abort(struct store *s)
{
	struct store_group *g = s->group;
	g->in_unit = g->next_no_flush = g->next_deferred = false;
	if (!g->open)
		return;
	if (g->units > 0)
		group_fatal_hook(g);
	if (g->units > 0)
		fatal("store: a write failed after %d others of this loop turn were accepted: they cannot be taken back "
		      "alone, and their answers must not go out uncommitted; exiting (a restart reloads what the "
		      "store holds)", g->units);
	s->ops->rollback(s);
	g->open = g->flush = false;
}

static void unit_done(struct store_group *g)
{
	g->units++;
	if (!g->next_no_flush)
		g->flush = true;
	g->next_no_flush = g->next_deferred = false;
}

int store_op_enter(struct store *s, bool write)
{
	struct store_group *g = s->group;
	if (!g || !write || g->open)
		return 0;
	if (s->ops->begin(s) < 0) {
		g->in_unit = g->next_no_flush = g->next_deferred = false;
		return -1;
	}
	g->open = true;
	/* appended to the turn's queue of active callbacks: it runs after those the poll made
	 * ready, before the loop polls (and so writes any socket) again */
	event_active(g->commit_ev, EV_TIMEOUT, 0);
	return 0;
}

int store_op_leave(struct store *s, bool write, int rc)
{
	struct store_group *g = s->group;
	if (!g || g->in_unit)
		return rc;
	if (rc < 0 && rc != STORE_TAKEN) /* a taken key wrote nothing, and failed nothing */
		group_abort(s);
	else if (write && rc == 0)
		unit_done(g);
	return rc;
}

int store_begin(struct store *s)
{
	struct store_group *g = s->group;
	if (!g)
		return s->ops->begin(s);
	if (g->in_unit) {
		log_warnx("store: begin: a transaction is already open");
		return -1;
	}
	if (store_op_enter(s, true) < 0)
		return -1;
	g->in_unit = true;
	return 0;
}

int store_commit(struct store *s)
{
	struct store_group *g = s->group;
	if (!g)
		return s->ops->commit(s);
	if (!g->in_unit) {
		log_warnx("store: commit: no transaction is open");
		return -1;
	}
	g->in_unit = false;
	unit_done(g); /* committed with the turn's others, before any answer of the turn goes out */
	return 0;
}

void store_rollback(struct store *s)
{
	struct store_group *g = s->group;
	if (!g)
		s->ops->rollback(s);
	else if (g->in_unit)
		group_abort(s);
}

void store_close(struct store *s)
{
	struct store_group *g;
	if (!s)
		return;
	if ((g = s->group)) {
		store_group_flush(s);
		log_info("store: %llu writes in %llu commits (%llu of them waited for the disk)",
		         (unsigned long long)g->units_total, (unsigned long long)g->commits,
		         (unsigned long long)g->flushed);
		event_free(g->commit_ev);
		free(g->settles);
		free(g->refused);
		free(g);
		s->group = NULL;
	}
	s->ops->close(s);
}

/* ---- loading every instance, the next page read ahead ----
 *
 * A million rows take seconds to read and decode (the backend's query, the JSON of each
 * spec and trace) and about as long again for the caller to take in. So a thread reads
 * and decodes page k+1 into a buffer of its own while the caller's fn takes page k's rows
 * on the calling thread: one page in each of two buffers, handed over by pthread_create
 * and pthread_join (nothing else is shared, so no lock). The backend's connection is used
 * by one thread at a time: the reader's, while the caller only runs fn. */

struct loaded_row {
	struct store_instance_row row;
	char *error; /* row.status.error, copied: the backend's text lives for its callback only */
};

struct page_read {
	struct store *s;
	struct store_cursor after, last;
	struct loaded_row *rows; /* STORE_PAGE_DEFAULT of them */
	size_t n;                /* rows decoded (an unreadable one is skipped, with a warning) */
	size_t got;              /* rows the backend gave */
	int rc;
	const char *log_tag;
};

/* The reader's fn: keeps the row, taking its spec (store.h allows that) and copying its error. */
static void keep_row(void *arg, struct store_instance_row *row)
{
	struct page_read *p = arg;
	struct loaded_row *l = &p->rows[p->n++];
	l->row = *row;
	memset(&row->spec, 0, sizeof row->spec); /* taken */
	l->error = NULL;
	if (row->status.error && !(l->error = strdup(row->status.error)))
		fatal("strdup");
	l->row.status.error = l->error;
}

static void *page_read_main(void *arg)
{
	struct page_read *p = arg;
	log_set_tag(p->log_tag);
	p->n = 0;
	p->rc = p->s->ops->instances_page(p->s, &p->after, STORE_PAGE_DEFAULT, keep_row, p, &p->last, &p->got);
	return NULL;
}

static void page_start(struct page_read *p, pthread_t *thread)
{
	int rc = pthread_create(thread, NULL, page_read_main, p);
	if (rc != 0) {
		errno = rc;
		fatal("store: cannot start the thread that reads instances ahead");
	}
}

static void page_wait(pthread_t thread)
{
	int rc = pthread_join(thread, NULL);
	if (rc != 0) {
		errno = rc;
		fatal("store: pthread_join");
	}
}

int store_instances_load(struct store *s, store_instance_fn *fn, void *arg)
{
	struct page_read page[2];
	pthread_t reader;
	int cur = 0, rc = 0;
	for (int i = 0; i < 2; i++) {
		page[i] = (struct page_read){.s = s, .log_tag = log_get_tag()};
		if (!(page[i].rows = calloc(STORE_PAGE_DEFAULT, sizeof *page[i].rows)))
			fatal("calloc");
	}
	page_start(&page[cur], &reader);
	for (;;) {
		struct page_read *p = &page[cur];
		bool more;
		page_wait(reader);
		rc = STORE_READ(s, p->rc);
		more = rc == 0 && p->got == STORE_PAGE_DEFAULT;
		if (more) { /* the next page is read while this one is taken in */
			page[!cur].after = p->last;
			page_start(&page[!cur], &reader);
		}
		for (size_t i = 0; i < p->n; i++) { /* a failed page's rows read before the failure too, as before */
			fn(arg, &p->rows[i].row);
			spec_free(&p->rows[i].row.spec);
			free(p->rows[i].error);
		}
		if (!more)
			break;
		cur = !cur;
	}
	free(page[0].rows);
	free(page[1].rows);
	return rc < 0 ? -1 : 0;
}

void store_idem_row_free(struct store_idem_row *r)
{
	free(r->ids);
	r->ids = NULL;
	r->n_ids = 0;
}

json_t *store_node_info(const struct store_node_row *n)
{
	json_t *info = json_pack("{s:s, s:O, s:O, s:i, s:I}", "address", n->address, "drivers", n->drivers,
	                         "labels", n->labels, "cpus", n->cpus, "memory_mb", (json_int_t)n->memory_mb);
	if (n->bridges)
		json_object_set(info, "bridges", n->bridges);
	if (n->run_dir)
		json_object_set(info, "run_dir", n->run_dir);
	return info;
}

static json_t *object_or(json_t *v, json_t *(*empty)(void))
{
	return v ? json_incref(v) : empty();
}

int store_node_from_info(struct store_node_row *n, const json_t *info)
{
	if (!json_is_object(info))
		return -1;
	snprintf(n->address, sizeof n->address, "%s", json_string_value(json_object_get(info, "address")) ?: "");
	n->drivers = object_or(json_object_get(info, "drivers"), json_object);
	n->labels = object_or(json_object_get(info, "labels"), json_object);
	n->bridges = object_or(json_object_get(info, "bridges"), json_array);
	n->cpus = (int)json_integer_value(json_object_get(info, "cpus"));
	n->memory_mb = json_integer_value(json_object_get(info, "memory_mb"));
	if (json_is_string(json_object_get(info, "run_dir")))
		n->run_dir = json_incref(json_object_get(info, "run_dir"));
	return 0;
}

json_t *store_idem_ids_json(const struct store_idem_row *r)
{
	json_t *ids = json_array();
	for (size_t i = 0; i < r->n_ids; i++)
		json_array_append_new(ids, json_string(r->ids[i]));
	return ids;
}

void store_idem_ids_from_json(struct store_idem_row *out, const json_t *ids)
{
	const json_t *v;
	size_t i;
	if (!(out->ids = calloc(json_array_size(ids) + 1, sizeof *out->ids)))
		fatal("calloc");
	json_array_foreach(ids, i, v) {
		if (json_is_string(v))
			snprintf(out->ids[out->n_ids++], sizeof out->ids[0], "%s", json_string_value(v));
	}
}
