/* store — what every backend shares: closing, loading page by page, freeing a row, the
 * JSON forms of a node's offers and of an idempotency key's ids. */
#include "core/store.h"

#include "common/log.h"

#include <stdio.h>
#include <stdlib.h>

void store_close(struct store *s)
{
	if (s)
		s->ops->close(s);
}

int store_instances_load(struct store *s, store_instance_fn *fn, void *arg)
{
	struct store_cursor at = {0}, last;
	size_t got;
	do {
		if (s->ops->instances_page(s, &at, STORE_PAGE_DEFAULT, fn, arg, &last, &got) < 0)
			return -1;
		at = last;
	} while (got == STORE_PAGE_DEFAULT);
	return 0;
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
