/* store — what every backend shares: closing, loading page by page, freeing a row. */
#include "core/store.h"

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
