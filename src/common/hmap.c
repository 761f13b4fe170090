#include "common/hmap.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

static const char hmap_tombstone_mark;
#define HMAP_TOMBSTONE (&hmap_tombstone_mark)

static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */
	while (*s)
		h = (h ^ (unsigned char)*s++) * 1099511628211ULL;
	return h;
}

void hmap_init(struct hmap *m) { memset(m, 0, sizeof *m); }

void hmap_free(struct hmap *m)
{
	free(m->slots);
	memset(m, 0, sizeof *m);
}

static struct hmap_slot *find(const struct hmap *m, const char *key, uint64_t h)
{
	if (m->cap == 0)
		return NULL;
	for (size_t i = h & (m->cap - 1), n = 0; n < m->cap; i = (i + 1) & (m->cap - 1), n++) {
		struct hmap_slot *s = &m->slots[i];
		if (!s->key)
			return NULL;
		if (s->hash == h && s->key != HMAP_TOMBSTONE && strcmp(s->key, key) == 0)
			return s;
	}
	return NULL;
}

/* A key known to be absent, with its hash, into the first free slot of its probe run. */
static void place(struct hmap *m, const char *key, uint64_t h, void *value)
{
	struct hmap_slot *s;
	for (size_t i = h & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
		s = &m->slots[i];
		if (!s->key || s->key == HMAP_TOMBSTONE)
			break;
	}
	if (!s->key)
		m->used++;
	m->live++;
	*s = (struct hmap_slot){.key = key, .value = value, .hash = h};
}

static void grow(struct hmap *m)
{
	struct hmap old = *m;
	m->cap = old.cap ? old.cap * 2 : 64;
	if (old.cap && old.live * 4 < old.cap) /* mostly tombstones: rehash at the same size */
		m->cap = old.cap;
	m->slots = calloc(m->cap, sizeof *m->slots);
	if (!m->slots)
		fatal("calloc");
	m->used = m->live = 0;
	for (size_t i = 0; i < old.cap; i++) /* the keys are distinct: no lookup, no hashing */
		if (old.slots[i].key && old.slots[i].key != HMAP_TOMBSTONE)
			place(m, old.slots[i].key, old.slots[i].hash, old.slots[i].value);
	free(old.slots);
}

void *hmap_get(const struct hmap *m, const char *key)
{
	struct hmap_slot *s = find(m, key, hash_str(key));
	return s ? s->value : NULL;
}

void hmap_put(struct hmap *m, const char *key, void *value)
{
	uint64_t h = hash_str(key);
	struct hmap_slot *s = find(m, key, h);
	if (s) {
		s->key = key;
		s->value = value;
		return;
	}
	if ((m->used + 1) * 4 > m->cap * 3)
		grow(m);
	place(m, key, h, value);
}

void *hmap_remove(struct hmap *m, const char *key)
{
	struct hmap_slot *s = find(m, key, hash_str(key));
	void *v;
	if (!s)
		return NULL;
	v = s->value;
	s->key = HMAP_TOMBSTONE;
	s->value = NULL;
	m->live--;
	return v;
}

size_t hmap_size(const struct hmap *m) { return m->live; }

int hmap_next(const struct hmap *m, size_t *pos, const char **key, void **value)
{
	for (; *pos < m->cap; (*pos)++) {
		struct hmap_slot *s = &m->slots[*pos];
		if (s->key && s->key != HMAP_TOMBSTONE) {
			*key = s->key;
			*value = s->value;
			(*pos)++;
			return 1;
		}
	}
	return 0;
}
