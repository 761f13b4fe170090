/* jsontext — JSON text written straight into a growing buffer, for answers that are hot
 * enough for jansson's cost to show: building a json_t per field and dumping it token by
 * token was a sixth of the core's CPU while it placed batches of 1,000 instances (each
 * batch's answer lists them all) and most of a listing page's time.
 *
 * The writer knows no structure: callers write keys, values, commas and braces in order.
 * Strings are escaped as jansson escapes them (", \, and control characters; UTF-8 as
 * is), so a reader sees the same values jansson would have written. Allocation failure
 * is fatal, as everywhere in microvim. */
#ifndef MICROVIM_JSONTEXT_H
#define MICROVIM_JSONTEXT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct jtext {
	char *s;   /* NUL-terminated once anything was written; owned (jtext_take or free) */
	size_t len, cap;
};

void jtext_raw(struct jtext *t, const char *s, size_t n);
void jtext_lit(struct jtext *t, const char *s);        /* s as is (a literal piece of JSON) */
void jtext_str(struct jtext *t, const char *s);        /* "s", escaped */
void jtext_int(struct jtext *t, int64_t v);
void jtext_milli(struct jtext *t, int64_t milli);      /* milli/1000 as a JSON number: 0.5, 1.0, 0.001 */
void jtext_json(struct jtext *t, const json_t *j);     /* j dumped compact (null for NULL) */
/* Room for n more bytes at t->s + t->len (then add what was written to t->len). */
char *jtext_reserve(struct jtext *t, size_t n);
/* The text, handed over (the caller frees it); t is empty again. */
char *jtext_take(struct jtext *t, size_t *len);
void jtext_free(struct jtext *t);

#endif
