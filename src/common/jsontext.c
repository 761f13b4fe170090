/* jsontext — see jsontext.h. */
#include "common/jsontext.h"

#include <stdlib.h>
#include <string.h>

#include "common/log.h"

char *jtext_reserve(struct jtext *t, size_t n)
{
	if (t->len + n + 1 > t->cap) {
		size_t cap = t->cap ? t->cap : 256;
		while (cap < t->len + n + 1)
			cap *= 2;
		char *grown = realloc(t->s, cap);
		if (!grown)
			fatal("realloc");
		t->s = grown;
		t->cap = cap;
	}
	return t->s + t->len;
}

void jtext_raw(struct jtext *t, const char *s, size_t n)
{
	memcpy(jtext_reserve(t, n), s, n);
	t->len += n;
	t->s[t->len] = '\0';
}

void jtext_lit(struct jtext *t, const char *s) { jtext_raw(t, s, strlen(s)); }

void jtext_str(struct jtext *t, const char *s)
{
	static const char hex[] = "0123456789ABCDEF"; /* as jansson writes \u001B */
	const unsigned char *p = (const unsigned char *)s;
	jtext_raw(t, "\"", 1);
	while (*p) {
		const unsigned char *run = p;
		while (*p >= 0x20 && *p != '"' && *p != '\\')
			p++;
		if (p > run)
			jtext_raw(t, (const char *)run, (size_t)(p - run));
		if (!*p)
			break;
		char esc[6] = {'\\', 0};
		size_t n = 2;
		switch (*p) {
		case '"': esc[1] = '"'; break;
		case '\\': esc[1] = '\\'; break;
		case '\b': esc[1] = 'b'; break;
		case '\f': esc[1] = 'f'; break;
		case '\n': esc[1] = 'n'; break;
		case '\r': esc[1] = 'r'; break;
		case '\t': esc[1] = 't'; break;
		default: /* the other control characters: \u00XX */
			memcpy(esc + 1, "u00", 3);
			esc[4] = hex[*p >> 4];
			esc[5] = hex[*p & 15];
			n = 6;
		}
		jtext_raw(t, esc, n);
		p++;
	}
	jtext_raw(t, "\"", 1);
}

/* Digits by hand (this runs a few times per instance of every answer). */
static void put_uint(struct jtext *t, uint64_t v, int min_digits)
{
	char tmp[24], *p = tmp + sizeof tmp;
	int n = 0;
	do {
		*--p = (char)('0' + v % 10);
		v /= 10;
		n++;
	} while (v > 0 || n < min_digits);
	jtext_raw(t, p, (size_t)(tmp + sizeof tmp - p));
}

void jtext_int(struct jtext *t, int64_t v)
{
	if (v < 0)
		jtext_raw(t, "-", 1);
	put_uint(t, v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v, 1);
}

void jtext_milli(struct jtext *t, int64_t milli)
{
	uint64_t mag = milli < 0 ? (uint64_t)0 - (uint64_t)milli : (uint64_t)milli;
	unsigned frac = (unsigned)(mag % 1000);
	int digits = 3;
	if (milli < 0)
		jtext_raw(t, "-", 1);
	put_uint(t, mag / 1000, 1);
	jtext_raw(t, ".", 1);
	for (; digits > 1 && frac % 10 == 0; digits--) /* 0.5, 1.0: as jansson writes a double */
		frac /= 10;
	put_uint(t, frac, digits);
}

static int dump_into(const char *buf, size_t size, void *data)
{
	jtext_raw(data, buf, size);
	return 0;
}

void jtext_json(struct jtext *t, const json_t *j)
{
	if (!j || json_dump_callback(j, dump_into, t, JSON_COMPACT | JSON_REAL_PRECISION(12) | JSON_ENCODE_ANY) < 0)
		jtext_lit(t, "null");
}

char *jtext_take(struct jtext *t, size_t *len)
{
	char *s = t->s ? t->s : strdup("");
	if (!s)
		fatal("strdup");
	*len = t->len;
	*t = (struct jtext){0};
	return s;
}

void jtext_free(struct jtext *t)
{
	free(t->s);
	*t = (struct jtext){0};
}
