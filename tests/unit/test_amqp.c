/* test_amqp — the AMQP 0-9-1 stream reader (src/tools/amqp.h) on frames built here octet
 * by octet from the specification: whole and fragmented frames, several channels at once,
 * heartbeats, the protocol header, joining mid-stream, framing and content errors. */
#include <stdint.h>
#include <stdlib.h>

#include "tools/amqp.h"
#include "unit.h"

/* ---- building frames ---- */

struct buf {
	uint8_t *p;
	size_t n, cap;
};

static void put(struct buf *b, const void *data, size_t n)
{
	if (n == 0) /* an empty payload has no buffer: memcpy must not see NULL */
		return;
	if (b->n + n > b->cap) {
		b->cap = (b->n + n) * 2 + 64;
		b->p = realloc(b->p, b->cap);
		if (!b->p)
			abort();
	}
	memcpy(b->p + b->n, data, n);
	b->n += n;
}

static void put8(struct buf *b, uint8_t v) { put(b, &v, 1); }
static void put16(struct buf *b, uint16_t v)
{
	put8(b, (uint8_t)(v >> 8));
	put8(b, (uint8_t)v);
}
static void put32(struct buf *b, uint32_t v)
{
	put16(b, (uint16_t)(v >> 16));
	put16(b, (uint16_t)v);
}
static void put64(struct buf *b, uint64_t v)
{
	put32(b, (uint32_t)(v >> 32));
	put32(b, (uint32_t)v);
}
static void put_shortstr(struct buf *b, const char *s)
{
	put8(b, (uint8_t)strlen(s));
	put(b, s, strlen(s));
}

static void frame(struct buf *out, uint8_t type, uint16_t channel, const struct buf *payload)
{
	put8(out, type);
	put16(out, channel);
	put32(out, (uint32_t)payload->n);
	put(out, payload->p, payload->n);
	put8(out, 0xCE);
}

static void publish(struct buf *out, uint16_t channel, const char *exchange, const char *rk)
{
	struct buf p = {0};
	put16(&p, 60);
	put16(&p, 40);
	put16(&p, 0);
	put_shortstr(&p, exchange);
	put_shortstr(&p, rk);
	put8(&p, 0);
	frame(out, 1, channel, &p);
	free(p.p);
}

static void deliver_method(struct buf *out, uint16_t channel, const char *tag, uint64_t dtag, const char *exchange,
                           const char *rk)
{
	struct buf p = {0};
	put16(&p, 60);
	put16(&p, 60);
	put_shortstr(&p, tag);
	put64(&p, dtag);
	put8(&p, 1);
	put_shortstr(&p, exchange);
	put_shortstr(&p, rk);
	frame(out, 1, channel, &p);
	free(p.p);
}

/* content-type, headers (a table holding one longstr), delivery-mode, correlation-id,
 * reply-to, message-id: as oslo.messaging's kombu sends them */
static void header(struct buf *out, uint16_t channel, uint64_t body_size, const char *correlation_id)
{
	struct buf p = {0}, table = {0};
	put16(&p, 60);
	put16(&p, 0);
	put64(&p, body_size);
	put16(&p, 1u << 15 | 1u << 13 | 1u << 12 | 1u << 10 | 1u << 9 | 1u << 7);
	put_shortstr(&p, "application/json");
	put_shortstr(&table, "ttl");
	put8(&table, 'S');
	put32(&table, 5);
	put(&table, "60000", 5);
	put32(&p, (uint32_t)table.n);
	put(&p, table.p, table.n);
	put8(&p, 2);
	put_shortstr(&p, correlation_id);
	put_shortstr(&p, "reply_1234");
	put_shortstr(&p, "msg-1");
	frame(out, 2, channel, &p);
	free(p.p);
	free(table.p);
}

static void body(struct buf *out, uint16_t channel, const char *text, size_t n)
{
	struct buf p = {0};
	put(&p, text, n);
	frame(out, 3, channel, &p);
	free(p.p);
}

static void heartbeat(struct buf *out)
{
	struct buf p = {0};
	frame(out, 8, 0, &p);
}

static void method(struct buf *out, uint16_t channel, uint16_t class_id, uint16_t method_id)
{
	struct buf p = {0};
	put16(&p, class_id);
	put16(&p, method_id);
	put64(&p, 7); /* e.g. basic.ack's delivery tag */
	put8(&p, 0);
	frame(out, 1, channel, &p);
	free(p.p);
}

/* ---- collecting what the reader hands out ---- */

struct seen {
	int n;
	struct {
		uint16_t channel, method_id;
		char exchange[256], routing_key[256], consumer_tag[256], correlation_id[256], reply_to[256],
			content_type[256], message_id[256];
		uint8_t delivery_mode;
		uint64_t delivery_tag, body_size;
		char body[256];
		size_t body_len;
		bool truncated;
		int64_t first_ns, last_ns;
	} m[16];
	int methods;
};

static void on_message(const struct amqp_message *m, void *arg)
{
	struct seen *s = arg;
	if (s->n == 16)
		return;
	s->m[s->n].channel = m->channel;
	s->m[s->n].method_id = m->method_id;
	memcpy(s->m[s->n].exchange, m->exchange, 256);
	memcpy(s->m[s->n].routing_key, m->routing_key, 256);
	memcpy(s->m[s->n].consumer_tag, m->consumer_tag, 256);
	memcpy(s->m[s->n].correlation_id, m->props.correlation_id, 256);
	memcpy(s->m[s->n].reply_to, m->props.reply_to, 256);
	memcpy(s->m[s->n].content_type, m->props.content_type, 256);
	memcpy(s->m[s->n].message_id, m->props.message_id, 256);
	s->m[s->n].delivery_mode = m->props.delivery_mode;
	s->m[s->n].delivery_tag = m->delivery_tag;
	s->m[s->n].body_size = m->body_size;
	s->m[s->n].body_len = m->body_len;
	s->m[s->n].truncated = m->body_truncated;
	snprintf(s->m[s->n].body, sizeof s->m[s->n].body, "%s", (const char *)m->body);
	s->m[s->n].first_ns = m->first_ns;
	s->m[s->n].last_ns = m->last_ns;
	s->n++;
}

static void on_method(const struct amqp_method *m, void *arg)
{
	(void)m;
	((struct seen *)arg)->methods++;
}

static const char BODY1[] = "{\"oslo.version\": \"2.0\", \"oslo.message\": \"{\\\"method\\\": \\\"select_destinations\\\"}\"}";

/* publish on channel 1: method, header, the body in two frames */
static void one_message(struct buf *b, uint16_t channel)
{
	size_t n = strlen(BODY1), half = n / 2;
	publish(b, channel, "nova", "scheduler");
	header(b, channel, n, "corr-7");
	body(b, channel, BODY1, half);
	body(b, channel, BODY1 + half, n - half);
}

static void check_one(const struct seen *s, int i, uint16_t channel)
{
	CHECK_EQ_INT(s->m[i].channel, channel);
	CHECK_EQ_INT(s->m[i].method_id, AMQP_BASIC_PUBLISH);
	CHECK_STR(s->m[i].exchange, "nova");
	CHECK_STR(s->m[i].routing_key, "scheduler");
	CHECK_STR(s->m[i].content_type, "application/json");
	CHECK_STR(s->m[i].correlation_id, "corr-7");
	CHECK_STR(s->m[i].reply_to, "reply_1234");
	CHECK_STR(s->m[i].message_id, "msg-1");
	CHECK_EQ_INT(s->m[i].delivery_mode, 2);
	CHECK_EQ_INT(s->m[i].body_size, strlen(BODY1));
	CHECK_EQ_INT(s->m[i].body_len, strlen(BODY1));
	CHECK_STR(s->m[i].body, BODY1);
	CHECK(!s->m[i].truncated);
}

static struct amqp_stream *stream(bool at_start, struct seen *seen, struct amqp_stats *st)
{
	struct amqp_callbacks cb = {.method = on_method, .message = on_message, .arg = seen};
	struct amqp_stream *s;
	memset(seen, 0, sizeof *seen);
	memset(st, 0, sizeof *st);
	s = amqp_stream_new(at_start, &cb, st);
	if (!s)
		abort();
	return s;
}

/* ---- tests ---- */

static void test_whole_message(void)
{
	struct buf b = {0};
	struct seen seen;
	struct amqp_stats st;
	struct amqp_stream *s = stream(true, &seen, &st);
	put(&b, "AMQP\0\0\x09\x01", 8);
	one_message(&b, 1);
	amqp_stream_feed(s, b.p, b.n, 1000);
	CHECK_EQ_INT(seen.n, 1);
	check_one(&seen, 0, 1);
	CHECK_EQ_INT(st.protocol_headers, 1);
	CHECK_EQ_INT(st.frames, 4);
	CHECK_EQ_INT(st.methods, 1);
	CHECK_EQ_INT(st.headers, 1);
	CHECK_EQ_INT(st.bodies, 2);
	CHECK_EQ_INT(st.messages, 1);
	CHECK_EQ_INT(st.framing_errors + st.content_errors + st.skipped_bytes + st.incomplete, 0);
	CHECK_EQ_INT(seen.m[0].first_ns, 1000);
	CHECK_EQ_INT(seen.m[0].last_ns, 1000);
	amqp_stream_free(s);
	free(b.p);
}

/* Every split of the stream into two feeds, then one octet per feed: the same message, and
 * its times are those of the feeds that carried its first and last octet. */
static void test_fragmented(void)
{
	struct buf b = {0};
	struct seen seen;
	struct amqp_stats st;
	one_message(&b, 3);
	for (size_t cut = 1; cut < b.n; cut++) {
		struct amqp_stream *s = stream(true, &seen, &st);
		amqp_stream_feed(s, b.p, cut, 10);
		amqp_stream_feed(s, b.p + cut, b.n - cut, 20);
		CHECK_EQ_INT(seen.n, 1);
		check_one(&seen, 0, 3);
		CHECK_EQ_INT(seen.m[0].first_ns, 10);
		CHECK_EQ_INT(seen.m[0].last_ns, 20);
		CHECK_EQ_INT(st.framing_errors + st.content_errors, 0);
		amqp_stream_free(s);
	}
	{
		struct amqp_stream *s = stream(true, &seen, &st);
		for (size_t i = 0; i < b.n; i++)
			amqp_stream_feed(s, b.p + i, 1, (int64_t)i);
		CHECK_EQ_INT(seen.n, 1);
		check_one(&seen, 0, 3);
		CHECK_EQ_INT(seen.m[0].first_ns, 0);
		CHECK_EQ_INT(seen.m[0].last_ns, (int64_t)b.n - 1);
		CHECK_EQ_INT(st.frames, 4);
		amqp_stream_free(s);
	}
	free(b.p);
}

/* Two messages interleaved frame by frame on channels 1 and 2 (ch1 starts first, ch2 ends
 * first), a basic.ack on channel 5 between them. */
static void test_channels(void)
{
	struct buf b = {0};
	struct seen seen;
	struct amqp_stats st;
	struct amqp_stream *s = stream(true, &seen, &st);
	size_t n = strlen(BODY1);
	publish(&b, 1, "nova", "scheduler");
	deliver_method(&b, 2, "amq.ctag-1", 42, "", "reply_abc");
	header(&b, 1, n, "corr-7");
	method(&b, 5, 60, 80);
	header(&b, 2, 5, "c2");
	body(&b, 1, BODY1, 10);
	body(&b, 2, "hello", 5);
	body(&b, 1, BODY1 + 10, n - 10);
	amqp_stream_feed(s, b.p, b.n, 5);
	CHECK_EQ_INT(seen.n, 2);
	CHECK_EQ_INT(seen.m[0].channel, 2);
	CHECK_EQ_INT(seen.m[0].method_id, AMQP_BASIC_DELIVER);
	CHECK_STR(seen.m[0].consumer_tag, "amq.ctag-1");
	CHECK_EQ_INT(seen.m[0].delivery_tag, 42);
	CHECK_STR(seen.m[0].exchange, "");
	CHECK_STR(seen.m[0].routing_key, "reply_abc");
	CHECK_STR(seen.m[0].body, "hello");
	CHECK_STR(seen.m[0].correlation_id, "c2");
	check_one(&seen, 1, 1);
	CHECK_EQ_INT(seen.methods, 3);
	CHECK_EQ_INT(st.framing_errors + st.content_errors + st.orphans, 0);
	amqp_stream_free(s);
	free(b.p);
}

/* Heartbeats between a message's frames (they are on channel 0) change nothing. */
static void test_heartbeats(void)
{
	struct buf b = {0};
	struct seen seen;
	struct amqp_stats st;
	struct amqp_stream *s = stream(true, &seen, &st);
	size_t n = strlen(BODY1);
	heartbeat(&b);
	publish(&b, 1, "nova", "scheduler");
	heartbeat(&b);
	header(&b, 1, n, "corr-7");
	heartbeat(&b);
	body(&b, 1, BODY1, 3);
	heartbeat(&b);
	body(&b, 1, BODY1 + 3, n - 3);
	heartbeat(&b);
	for (size_t i = 0; i < b.n; i += 5) /* and fragmented */
		amqp_stream_feed(s, b.p + i, b.n - i < 5 ? b.n - i : 5, 1);
	CHECK_EQ_INT(seen.n, 1);
	check_one(&seen, 0, 1);
	CHECK_EQ_INT(st.heartbeats, 5);
	CHECK_EQ_INT(st.frames, 9);
	CHECK_EQ_INT(st.framing_errors + st.content_errors, 0);
	amqp_stream_free(s);
	free(b.p);
}

/* A message with an empty body ends at its header frame. */
static void test_empty_body(void)
{
	struct buf b = {0};
	struct seen seen;
	struct amqp_stats st;
	struct amqp_stream *s = stream(true, &seen, &st);
	publish(&b, 1, "nova", "scheduler");
	header(&b, 1, 0, "x");
	amqp_stream_feed(s, b.p, b.n, 1);
	CHECK_EQ_INT(seen.n, 1);
	CHECK_EQ_INT(seen.m[0].body_len, 0);
	CHECK_STR(seen.m[0].body, "");
	amqp_stream_free(s);
	free(b.p);
}

/* Joined mid-stream: the tail of a message (a body frame cut at the front) is skipped, the
 * orphan body frame that follows too, then the next message is read whole. */
static void test_join_midstream(void)
{
	struct buf b = {0}, tail = {0};
	struct seen seen;
	struct amqp_stats st;
	struct amqp_stream *s = stream(false, &seen, &st);
	body(&tail, 4, "0123456789abcdef", 16);
	amqp_stream_feed(s, tail.p + 5, tail.n - 5, 1); /* begins inside a frame: not recognisable */
	CHECK_EQ_INT(st.skipped_bytes, tail.n - 5);
	CHECK_EQ_INT(st.resyncs, 0);
	body(&b, 4, "xyz", 3); /* whole, but of a message whose method came before the capture */
	one_message(&b, 1);
	amqp_stream_feed(s, b.p, b.n, 2);
	CHECK_EQ_INT(st.resyncs, 1);
	CHECK_EQ_INT(st.orphans, 1);
	CHECK_EQ_INT(seen.n, 1);
	check_one(&seen, 0, 1);
	amqp_stream_free(s);
	free(b.p);
	free(tail.p);
}

/* A wrong frame-end octet: a framing error; the message in progress is lost, octets are
 * skipped until a feed begins with frames again. */
static void test_bad_frame_end(void)
{
	struct buf b = {0}, good = {0};
	struct seen seen;
	struct amqp_stats st;
	struct amqp_stream *s = stream(true, &seen, &st);
	publish(&b, 1, "nova", "scheduler");
	header(&b, 1, 100, "x");
	b.p[b.n - 1] = 0xCD;
	put(&b, "junk after", 10);
	amqp_stream_feed(s, b.p, b.n, 1);
	CHECK_EQ_INT(st.framing_errors, 1);
	CHECK_EQ_INT(st.incomplete, 1);
	CHECK_EQ_INT(st.skipped_bytes, 11); /* the bad octet and what followed it */
	amqp_stream_feed(s, (const uint8_t *)"more junk", 9, 2);
	CHECK_EQ_INT(st.skipped_bytes, 20);
	one_message(&good, 2);
	amqp_stream_feed(s, good.p, good.n, 3);
	CHECK_EQ_INT(seen.n, 1);
	check_one(&seen, 0, 2);
	amqp_stream_free(s);
	free(b.p);
	free(good.p);
}

/* Content out of place: a body longer than its header announced, a body before the
 * header, a method in the middle of a message. Each drops its message; framing goes on. */
static void test_content_errors(void)
{
	struct buf b = {0};
	struct seen seen;
	struct amqp_stats st;
	struct amqp_stream *s = stream(true, &seen, &st);
	publish(&b, 1, "nova", "a");
	header(&b, 1, 4, "x");
	body(&b, 1, "12345", 5); /* one octet too many */
	publish(&b, 2, "nova", "b");
	body(&b, 2, "12", 2); /* before the header */
	publish(&b, 3, "nova", "c");
	header(&b, 3, 4, "x");
	method(&b, 3, 60, 80); /* basic.ack where a body frame belonged */
	one_message(&b, 4);
	amqp_stream_feed(s, b.p, b.n, 1);
	CHECK_EQ_INT(st.content_errors, 3);
	CHECK_EQ_INT(st.incomplete, 3);
	CHECK_EQ_INT(st.framing_errors, 0);
	CHECK_EQ_INT(seen.n, 1);
	check_one(&seen, 0, 4);
	amqp_stream_free(s);
	free(b.p);
}

/* Unknown frame type and an oversized frame are framing errors. */
static void test_framing_limits(void)
{
	struct buf b = {0};
	struct seen seen;
	struct amqp_stats st;
	struct amqp_stream *s = stream(true, &seen, &st);
	static const uint8_t bad_type[] = {9, 0, 0, 0, 0, 0, 0, 0xCE};
	static const uint8_t too_big[] = {3, 0, 1, 0xff, 0xff, 0xff, 0xff};
	amqp_stream_feed(s, bad_type, sizeof bad_type, 1);
	CHECK_EQ_INT(st.framing_errors, 1);
	CHECK(!amqp_looks_like_frames(bad_type, sizeof bad_type));
	one_message(&b, 1);
	amqp_stream_feed(s, b.p, b.n, 2);
	CHECK_EQ_INT(seen.n, 1);
	amqp_stream_feed(s, too_big, sizeof too_big, 3);
	CHECK_EQ_INT(st.framing_errors, 2);
	amqp_stream_free(s);
	free(b.p);
}

/* A gap loses the message in progress; the stream finds the next one. */
static void test_gap(void)
{
	struct buf b = {0};
	struct seen seen;
	struct amqp_stats st;
	struct amqp_stream *s = stream(true, &seen, &st);
	one_message(&b, 1);
	amqp_stream_feed(s, b.p, 30, 1);
	amqp_stream_gap(s);
	CHECK_EQ_INT(st.incomplete, 1);
	amqp_stream_feed(s, b.p + 30, b.n - 30, 2); /* the rest of that message: not recognisable, or orphans */
	amqp_stream_feed(s, b.p, b.n, 3);
	CHECK_EQ_INT(seen.n, 1);
	check_one(&seen, 0, 1);
	CHECK_EQ_INT(seen.m[0].first_ns, 3);
	amqp_stream_end(s);
	amqp_stream_end(s);
	amqp_stream_feed(s, b.p, b.n, 4); /* ended: ignored */
	CHECK_EQ_INT(seen.n, 1);
	amqp_stream_free(s);
	free(b.p);
}

/* The end of the stream in the middle of a message counts it incomplete. */
static void test_end_incomplete(void)
{
	struct buf b = {0};
	struct seen seen;
	struct amqp_stats st;
	struct amqp_stream *s = stream(true, &seen, &st);
	one_message(&b, 1);
	amqp_stream_feed(s, b.p, b.n - 3, 1);
	amqp_stream_end(s);
	CHECK_EQ_INT(seen.n, 0);
	CHECK_EQ_INT(st.incomplete, 1);
	amqp_stream_free(s); /* frees nothing twice (ASan) */
	free(b.p);
}

/* A body over AMQP_MAX_BODY is delimited exactly, kept up to the limit, marked truncated. */
static void test_truncated_body(void)
{
	struct buf b = {0};
	struct seen seen;
	struct amqp_stats st;
	struct amqp_stream *s = stream(true, &seen, &st);
	size_t total = AMQP_MAX_BODY + 100, chunk = 128 * 1024;
	uint8_t *data = malloc(chunk);
	if (!data)
		abort();
	memset(data, 'x', chunk);
	publish(&b, 1, "nova", "big");
	header(&b, 1, total, "x");
	amqp_stream_feed(s, b.p, b.n, 1);
	for (size_t sent = 0; sent < total;) {
		struct buf f = {0}, p = {0};
		size_t n = total - sent < chunk ? total - sent : chunk;
		put(&p, data, n);
		frame(&f, 3, 1, &p);
		amqp_stream_feed(s, f.p, f.n, 2);
		sent += n;
		free(f.p);
		free(p.p);
	}
	one_message(&b, 2); /* and framing goes on after it */
	amqp_stream_feed(s, b.p, b.n, 3);
	CHECK_EQ_INT(seen.n, 2);
	CHECK(seen.m[0].truncated);
	CHECK_EQ_INT(seen.m[0].body_len, AMQP_MAX_BODY);
	CHECK_EQ_INT(seen.m[0].body_size, total);
	check_one(&seen, 1, 2);
	amqp_stream_free(s);
	free(data);
	free(b.p);
}

static void test_looks_like_frames(void)
{
	struct buf b = {0};
	one_message(&b, 1);
	CHECK(amqp_looks_like_frames(b.p, b.n));
	CHECK(amqp_looks_like_frames(b.p, 35)); /* the method frame (30 octets) whole, the header begun */
	CHECK(!amqp_looks_like_frames(b.p, 29)); /* no frame whole */
	CHECK(!amqp_looks_like_frames(b.p, 5)); /* no whole frame */
	CHECK(!amqp_looks_like_frames(b.p + 1, b.n - 1));
	CHECK(amqp_looks_like_frames((const uint8_t *)"AMQP\0\0\x09\x01", 8));
	CHECK(!amqp_looks_like_frames((const uint8_t *)"GET / HTTP/1.1\r\n", 16));
	free(b.p);
}

int main(void)
{
	RUN(test_whole_message);
	RUN(test_fragmented);
	RUN(test_channels);
	RUN(test_heartbeats);
	RUN(test_empty_body);
	RUN(test_join_midstream);
	RUN(test_bad_frame_end);
	RUN(test_content_errors);
	RUN(test_framing_limits);
	RUN(test_gap);
	RUN(test_end_incomplete);
	RUN(test_truncated_body);
	RUN(test_looks_like_frames);
	UNIT_END();
}
