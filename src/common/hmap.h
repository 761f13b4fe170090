/* hmap — a string-keyed hash map of pointers (open addressing, linear probing). The map
 * does not own keys or values: a key must stay valid while its entry exists, which is
 * natural when the key is a field of the value (an instance's id). Each slot keeps its
 * key's hash: a probe compares hashes and reads a key (another cache line, often a miss
 * at a million entries) only when they match, and growing never hashes a key again. */
#ifndef MICROVIM_HMAP_H
#define MICROVIM_HMAP_H

#include <stddef.h>
#include <stdint.h>

struct hmap {
	struct hmap_slot {
		const char *key; /* NULL: empty; HMAP_TOMBSTONE: deleted */
		void *value;
		uint64_t hash;   /* of key, while it is a key */
	} *slots;
	size_t cap, used, live;
};

void hmap_init(struct hmap *m);
void hmap_free(struct hmap *m);
void *hmap_get(const struct hmap *m, const char *key);
void hmap_put(struct hmap *m, const char *key, void *value); /* replaces */
void *hmap_remove(struct hmap *m, const char *key);         /* returns the old value */
size_t hmap_size(const struct hmap *m);

/* Iterates: for (size_t i = 0; hmap_next(m, &i, &k, &v);) { ... } (no changes meanwhile). */
int hmap_next(const struct hmap *m, size_t *pos, const char **key, void **value);

#endif
