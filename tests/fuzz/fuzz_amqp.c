/* fuzz_amqp — the AMQP 0-9-1 stream reader of `microvim analyze --vim nova`
 * (src/tools/amqp.h) on bytes nobody checked, cut into feeds as TCP segments would be:
 *     byte 0        bit 0: the stream is read from its start (else it joins mid-way)
 *     then records  u16 length (little-endian), u8 op, `length` bytes:
 *                   op 0xff: a gap (bytes never captured) before the record's bytes
 *                   other:   the time step (µs) of the feed
 * then the end of the stream. Every message handed out is walked byte by byte (ASan sees a
 * read past a buffer) and checked against what amqp.h promises; so are the counters. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/amqp.h"

#define CHECK(cond)                                                                                   \
	do {                                                                                          \
		if (!(cond)) {                                                                        \
			fprintf(stderr, "fuzz_amqp: invariant failed: %s (line %d)\n", #cond, __LINE__); \
			abort();                                                                      \
		}                                                                                     \
	} while (0)

static volatile unsigned sink;

static void walk_short(const char *s)
{
	size_t n = strnlen(s, 256);
	CHECK(n < 256);
	for (size_t i = 0; i < n; i++)
		sink += (unsigned char)s[i];
}

struct state {
	uint64_t messages, methods;
	int64_t last_ts;
};

static void on_message(const struct amqp_message *m, void *arg)
{
	struct state *st = arg;
	st->messages++;
	CHECK(m->class_id == AMQP_CLASS_BASIC);
	CHECK(m->method_id == AMQP_BASIC_PUBLISH || m->method_id == AMQP_BASIC_RETURN ||
	      m->method_id == AMQP_BASIC_DELIVER || m->method_id == AMQP_BASIC_GET_OK);
	CHECK(m->first_ns <= m->last_ns && m->last_ns <= st->last_ts);
	CHECK(m->body != NULL);
	CHECK(m->body_len <= AMQP_MAX_BODY);
	CHECK(m->body_truncated ? m->body_len == AMQP_MAX_BODY && m->body_size > m->body_len : m->body_len == m->body_size);
	CHECK(m->body[m->body_len] == '\0');
	for (size_t i = 0; i < m->body_len; i++)
		sink += m->body[i];
	walk_short(m->exchange);
	walk_short(m->routing_key);
	walk_short(m->consumer_tag);
	walk_short(m->props.content_type);
	walk_short(m->props.correlation_id);
	walk_short(m->props.reply_to);
	walk_short(m->props.message_id);
	walk_short(m->props.app_id);
	CHECK((m->props.present >> 14) == 0);
}

static void on_method(const struct amqp_method *m, void *arg)
{
	struct state *st = arg;
	st->methods++;
	CHECK(m->ts_ns <= st->last_ts);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct state st = {0};
	struct amqp_stats stats = {0};
	struct amqp_callbacks cb = {.method = on_method, .message = on_message, .arg = &st};
	struct amqp_stream *s;
	size_t pos = 1;

	if (size < 1)
		return 0;
	if (!(s = amqp_stream_new(data[0] & 1, &cb, &stats)))
		abort();
	while (pos + 3 <= size) {
		size_t len = (size_t)data[pos] | (size_t)data[pos + 1] << 8;
		uint8_t op = data[pos + 2];
		pos += 3;
		if (len > size - pos)
			len = size - pos;
		if (op == 0xff)
			amqp_stream_gap(s);
		else
			st.last_ts += op;
		/* a copy of exactly `len` bytes: a read past the feed is a heap overflow ASan reports */
		uint8_t *feed = malloc(len ? len : 1);
		if (!feed)
			abort();
		memcpy(feed, data + pos, len);
		amqp_stream_feed(s, feed, len, st.last_ts);
		free(feed);
		pos += len;
	}
	amqp_stream_end(s);
	amqp_stream_end(s);
	CHECK(stats.frames == stats.methods + stats.headers + stats.bodies + stats.heartbeats);
	CHECK(stats.messages == st.messages && st.methods <= stats.methods); /* a method frame too short for its ids is counted, not handed out */
	CHECK(stats.messages <= stats.methods);
	amqp_stream_free(s);
	return 0;
}
