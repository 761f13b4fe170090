/* store — choosing a backend, and what every backend's rows share. */
#include "core/store.h"

#include <stdio.h>
#include <stdlib.h>

int store_open(const char *data_dir, struct store **out, char *err, size_t errlen)
{
	char path[4096];
	if (snprintf(path, sizeof path, "%s/core.db", data_dir) >= (int)sizeof path) {
		snprintf(err, errlen, "--data-dir path too long");
		return -1;
	}
	return store_sqlite_open(path, out, err, errlen);
}

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
