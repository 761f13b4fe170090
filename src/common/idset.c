#include "common/idset.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

#define IDSET_BUCKETS 65536u

static unsigned hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return (unsigned)(c - '0');
	if (c >= 'a' && c <= 'f')
		return (unsigned)(c - 'a' + 10);
	return 0;
}

static unsigned bucket_of(const char *key)
{
	unsigned b = 0;
	for (int i = 0; i < 4; i++) {
		b = b << 4 | hex_digit(*key);
		if (*key)
			key++;
	}
	return b;
}

/* The key's first 8 bytes as a big-endian number (0 past its end): comparing two of them
 * orders as strcmp orders those bytes. */
static uint64_t prefix_of(const char *key)
{
	uint64_t p = 0;
	bool ended = false;
	for (int i = 0; i < 8; i++) {
		unsigned char c = ended ? 0 : (unsigned char)key[i];
		ended = c == 0;
		p = p << 8 | c;
	}
	return p;
}

/* The first index in bucket whose key is >= key (with *found when equal). */
static uint32_t lower_bound(const struct idset_bucket *b, const char *key, uint64_t prefix, int *found)
{
	uint32_t lo = 0, hi = b->n;
	*found = 0;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		const struct idset_entry *e = &b->entries[mid];
		int c = e->prefix < prefix ? -1 : e->prefix > prefix ? 1 : strcmp(e->key, key);
		if (c == 0) {
			*found = 1;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

void idset_init(struct idset *s) { memset(s, 0, sizeof *s); }

void idset_free(struct idset *s)
{
	if (s->buckets)
		for (unsigned i = 0; i < IDSET_BUCKETS; i++)
			free(s->buckets[i].entries);
	free(s->buckets);
	memset(s, 0, sizeof *s);
}

size_t idset_size(const struct idset *s) { return s->size; }

void idset_put(struct idset *s, const char *key, void *value)
{
	struct idset_bucket *b;
	uint32_t at;
	int found;

	if (!s->buckets && !(s->buckets = calloc(IDSET_BUCKETS, sizeof *s->buckets)))
		fatal("calloc");
	b = &s->buckets[bucket_of(key)];
	at = lower_bound(b, key, prefix_of(key), &found);
	if (found) {
		b->entries[at] = (struct idset_entry){key, value, b->entries[at].prefix};
		return;
	}
	if (b->n == b->cap) {
		uint32_t cap = b->cap ? b->cap * 2 : 4;
		struct idset_entry *e = realloc(b->entries, sizeof *e * cap);
		if (!e)
			fatal("realloc");
		b->entries = e;
		b->cap = cap;
	}
	memmove(&b->entries[at + 1], &b->entries[at], sizeof *b->entries * (b->n - at));
	b->entries[at] = (struct idset_entry){key, value, prefix_of(key)};
	b->n++;
	s->size++;
}

void *idset_remove(struct idset *s, const char *key)
{
	struct idset_bucket *b;
	uint32_t at;
	int found;
	void *old;

	if (!s->buckets)
		return NULL;
	b = &s->buckets[bucket_of(key)];
	at = lower_bound(b, key, prefix_of(key), &found);
	if (!found)
		return NULL;
	old = b->entries[at].value;
	memmove(&b->entries[at], &b->entries[at + 1], sizeof *b->entries * (b->n - at - 1));
	b->n--;
	s->size--;
	if (b->n == 0) { /* a bucket emptied (a mass delete) gives its memory back */
		free(b->entries);
		b->entries = NULL;
		b->cap = 0;
	}
	return old;
}

int idset_walk(const struct idset *s, const char *after, idset_fn *fn, void *arg)
{
	unsigned first = after ? bucket_of(after) : 0;
	uint32_t at = 0;
	int found, rc;

	if (!s->buckets || s->size == 0)
		return 0;
	if (after) {
		at = lower_bound(&s->buckets[first], after, prefix_of(after), &found);
		at += (uint32_t)found;
	}
	for (unsigned i = first; i < IDSET_BUCKETS; i++, at = 0) {
		const struct idset_bucket *b = &s->buckets[i];
		for (; at < b->n; at++)
			if ((rc = fn(arg, b->entries[at].key, b->entries[at].value)) != 0)
				return rc;
	}
	return 0;
}
