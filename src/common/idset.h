/* idset — an ordered map of string keys to pointers, for paging through a million records
 * without sorting or copying them: `after KEY, at most N` costs O(log n + N) and no memory.
 *
 * The order: keys are spread over 65,536 buckets by their first four characters read as
 * hex digits (a non-hex character counts as 0), and ordered by strcmp within a bucket. For
 * lower-case hex keys (instance ids) this is exactly strcmp order; for any other keys it is
 * still one total, stable order, which is all a pager needs. Each bucket is a small sorted
 * array (random ids: a million keys are ~15 a bucket), so an insert or a removal moves a
 * few entries. Each entry keeps its key's first 8 bytes as a number that orders as they
 * do, so that a search reads a key itself (a cache miss at a million keys) only when those
 * are equal. Like hmap, the set does not own keys or values: a key must stay valid while
 * its entry exists. */
#ifndef MICROVIM_IDSET_H
#define MICROVIM_IDSET_H

#include <stddef.h>
#include <stdint.h>

struct idset {
	struct idset_bucket {
		struct idset_entry {
			const char *key;
			void *value;
			uint64_t prefix; /* the key's first 8 bytes, big-endian, 0 after its end */
		} *entries;
		uint32_t n, cap;
	} *buckets; /* NULL until the first put */
	size_t size;
};

void idset_init(struct idset *s);
void idset_free(struct idset *s);
void idset_put(struct idset *s, const char *key, void *value); /* replaces */
void *idset_remove(struct idset *s, const char *key);          /* returns the old value */
size_t idset_size(const struct idset *s);

/* Calls fn for each entry whose key comes after `after` (NULL: from the first), in order,
 * until fn returns non-zero; returns that value (0: the end was reached). No changes to the
 * set meanwhile. `after` need not be in the set. */
typedef int idset_fn(void *arg, const char *key, void *value);
int idset_walk(const struct idset *s, const char *after, idset_fn *fn, void *arg);

#endif
