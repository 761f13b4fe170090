/* amqp — see amqp.h. One state machine per stream reads frames octet-exact (a frame may
 * end in the middle of a feed and the next begin there); method and header payloads are
 * kept until their frame-end, body payloads go straight into their message. */
#include "tools/amqp.h"

#include <stdlib.h>
#include <string.h>

#define FRAME_END 0xCE
#define FRAME_HEAD_LEN 7
#define PROTOCOL_HEADER_LEN 8
#define MAX_FLAG_WORDS 4 /* basic has 14 properties: one flags word; more are tolerated */

enum reader_state { R_HEAD, R_PROTOCOL, R_PAYLOAD, R_END };

/* A message being put together on one channel. */
struct assembly {
	enum { AS_HEADER, AS_BODY } st;
	uint64_t received; /* body octets seen (stored or not) */
	size_t cap;
	uint8_t *body;
	struct amqp_message msg;
};

struct amqp_stream {
	bool synced, ended;
	struct amqp_callbacks cb;
	struct amqp_stats *stats;
	/* the frame being read */
	enum reader_state st;
	uint8_t head[PROTOCOL_HEADER_LEN];
	size_t head_len;
	uint8_t type;
	uint16_t channel;
	uint32_t size, got;
	int64_t frame_first_ns;
	uint8_t *buf; /* method or header payload */
	size_t buf_cap;
	struct assembly *body_target; /* the message a body frame feeds; NULL: skip its octets */
	/* messages in progress, at most one per channel */
	struct assembly **as;
	size_t n_as, cap_as;
};

/* ---- reading typed values out of a payload ---- */

struct cursor {
	const uint8_t *p;
	size_t n, off;
	bool bad;
};

static bool need(struct cursor *c, size_t k)
{
	if (c->bad || c->n - c->off < k) {
		c->bad = true;
		return false;
	}
	return true;
}

static uint8_t get8(struct cursor *c) { return need(c, 1) ? c->p[c->off++] : 0; }

static uint16_t get16(struct cursor *c)
{
	uint16_t v;
	if (!need(c, 2))
		return 0;
	v = (uint16_t)(c->p[c->off] << 8 | c->p[c->off + 1]);
	c->off += 2;
	return v;
}

static uint32_t be32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }

static uint32_t get32(struct cursor *c)
{
	uint32_t v;
	if (!need(c, 4))
		return 0;
	v = be32(c->p + c->off);
	c->off += 4;
	return v;
}

static uint64_t get64(struct cursor *c)
{
	uint64_t hi = get32(c);
	return hi << 32 | get32(c);
}

/* shortstr: a length octet, then that many octets; kept NUL-terminated in out (256 octets
 * always hold it). NUL octets inside are kept as they are, so C string use sees a prefix. */
static void get_shortstr(struct cursor *c, char out[256])
{
	uint8_t len = get8(c);
	out[0] = '\0';
	if (!need(c, len))
		return;
	memcpy(out, c->p + c->off, len);
	out[len] = '\0';
	c->off += len;
}

/* longstr and field table: a 4-octet length, then the octets (skipped). */
static void skip_long(struct cursor *c)
{
	uint32_t len = get32(c);
	if (need(c, len))
		c->off += len;
}

/* ---- messages in progress ---- */

static struct assembly *assembly_find(struct amqp_stream *s, uint16_t channel)
{
	for (size_t i = 0; i < s->n_as; i++)
		if (s->as[i]->msg.channel == channel)
			return s->as[i];
	return NULL;
}

static void assembly_drop(struct amqp_stream *s, struct assembly *a)
{
	for (size_t i = 0; i < s->n_as; i++) {
		if (s->as[i] == a) {
			s->as[i] = s->as[--s->n_as];
			break;
		}
	}
	if (s->body_target == a)
		s->body_target = NULL;
	free(a->body);
	free(a);
}

/* A message cut short: counted, dropped. */
static void assembly_abandon(struct amqp_stream *s, struct assembly *a)
{
	s->stats->incomplete++;
	assembly_drop(s, a);
}

static void drop_all(struct amqp_stream *s)
{
	while (s->n_as > 0)
		assembly_abandon(s, s->as[s->n_as - 1]);
}

static struct assembly *assembly_new(struct amqp_stream *s, uint16_t channel)
{
	struct assembly *a;
	if (s->n_as == AMQP_MAX_ASSEMBLIES)
		return NULL;
	if (s->n_as == s->cap_as) {
		size_t cap = s->cap_as ? s->cap_as * 2 : 8;
		struct assembly **v = realloc(s->as, cap * sizeof *v);
		if (!v)
			return NULL;
		s->as = v;
		s->cap_as = cap;
	}
	if (!(a = calloc(1, sizeof *a)))
		return NULL;
	a->msg.channel = channel;
	s->as[s->n_as++] = a;
	return a;
}

static void deliver(struct amqp_stream *s, struct assembly *a, int64_t ts)
{
	static const uint8_t empty[1] = {0};
	a->msg.body = a->body ? a->body : empty;
	a->msg.last_ns = ts;
	s->stats->messages++;
	if (s->cb.message)
		s->cb.message(&a->msg, s->cb.arg);
	assembly_drop(s, a);
}

/* Body octets: stored up to AMQP_MAX_BODY, counted all. -1 when out of memory. */
static int body_append(struct assembly *a, const uint8_t *data, size_t n)
{
	size_t room = AMQP_MAX_BODY - a->msg.body_len, keep = n < room ? n : room;
	a->received += n;
	if (keep < n)
		a->msg.body_truncated = true;
	if (keep == 0)
		return 0;
	if (a->msg.body_len + keep + 1 > a->cap) {
		/* the declared size is known: one allocation for ordinary messages */
		uint64_t want = a->msg.body_size < AMQP_MAX_BODY ? a->msg.body_size : AMQP_MAX_BODY;
		size_t cap = a->cap ? a->cap * 2 : (size_t)want + 1;
		uint8_t *b;
		while (cap < a->msg.body_len + keep + 1)
			cap *= 2;
		if (!(b = realloc(a->body, cap)))
			return -1;
		a->body = b;
		a->cap = cap;
	}
	memcpy(a->body + a->msg.body_len, data, keep);
	a->msg.body_len += keep;
	a->body[a->msg.body_len] = '\0';
	return 0;
}

/* ---- frames ---- */

static bool is_content_method(uint16_t class_id, uint16_t method_id)
{
	return class_id == AMQP_CLASS_BASIC && (method_id == AMQP_BASIC_PUBLISH || method_id == AMQP_BASIC_RETURN ||
	                                        method_id == AMQP_BASIC_DELIVER || method_id == AMQP_BASIC_GET_OK);
}

static bool is_known_class(uint16_t class_id)
{
	/* connection, channel, exchange, queue, basic, confirm, tx */
	return class_id == 10 || class_id == 20 || class_id == 40 || class_id == 50 || class_id == 60 || class_id == 85 ||
	       class_id == 90;
}

/* The arguments of a content method into m. false when they do not parse. */
static bool content_arguments(struct cursor *c, struct amqp_message *m)
{
	char ignored[256];
	switch (m->method_id) {
	case AMQP_BASIC_PUBLISH:
		get16(c); /* reserved (ticket) */
		get_shortstr(c, m->exchange);
		get_shortstr(c, m->routing_key);
		get8(c); /* mandatory, immediate */
		break;
	case AMQP_BASIC_RETURN:
		m->reply_code = get16(c);
		get_shortstr(c, ignored); /* reply-text */
		get_shortstr(c, m->exchange);
		get_shortstr(c, m->routing_key);
		break;
	case AMQP_BASIC_DELIVER:
		get_shortstr(c, m->consumer_tag);
		m->delivery_tag = get64(c);
		m->redelivered = get8(c) & 1;
		get_shortstr(c, m->exchange);
		get_shortstr(c, m->routing_key);
		break;
	case AMQP_BASIC_GET_OK:
		m->delivery_tag = get64(c);
		m->redelivered = get8(c) & 1;
		get_shortstr(c, m->exchange);
		get_shortstr(c, m->routing_key);
		get32(c); /* message-count */
		break;
	default:
		return false;
	}
	return !c->bad;
}

static void method_frame(struct amqp_stream *s)
{
	struct cursor c = {.p = s->buf, .n = s->size};
	struct amqp_method m = {.channel = s->channel, .ts_ns = s->frame_first_ns};
	struct assembly *a = assembly_find(s, s->channel);

	s->stats->methods++;
	m.class_id = get16(&c);
	m.method_id = get16(&c);
	if (c.bad) {
		s->stats->content_errors++;
		return;
	}
	if (a) { /* a method where the header or a body frame of a message belonged */
		s->stats->content_errors++;
		assembly_abandon(s, a);
	}
	if (s->cb.method)
		s->cb.method(&m, s->cb.arg);
	if (!is_content_method(m.class_id, m.method_id))
		return;
	if (!(a = assembly_new(s, s->channel))) {
		s->stats->content_errors++; /* out of memory or too many at once: this message is lost */
		s->stats->incomplete++;
		return;
	}
	a->msg.class_id = m.class_id;
	a->msg.method_id = m.method_id;
	a->msg.first_ns = s->frame_first_ns;
	a->st = AS_HEADER;
	if (!content_arguments(&c, &a->msg)) {
		s->stats->content_errors++;
		assembly_abandon(s, a);
	}
}

static bool parse_properties(struct cursor *c, struct amqp_properties *p)
{
	uint16_t flags[MAX_FLAG_WORDS];
	int words = 0;
	do {
		if (words == MAX_FLAG_WORDS)
			return false;
		flags[words] = get16(c);
	} while (!c->bad && (flags[words++] & 1));
	for (int i = 0; i < 14 && !c->bad; i++) {
		if (!(flags[0] & (1u << (15 - i))))
			continue;
		p->present |= 1u << i;
		switch (i) {
		case 0: get_shortstr(c, p->content_type); break;
		case 1: get_shortstr(c, p->content_encoding); break;
		case 2: skip_long(c); break; /* headers: a field table */
		case 3: p->delivery_mode = get8(c); break;
		case 4: p->priority = get8(c); break;
		case 5: get_shortstr(c, p->correlation_id); break;
		case 6: get_shortstr(c, p->reply_to); break;
		case 7: get_shortstr(c, p->expiration); break;
		case 8: get_shortstr(c, p->message_id); break;
		case 9: p->timestamp = get64(c); break;
		case 10: get_shortstr(c, p->type); break;
		case 11: get_shortstr(c, p->user_id); break;
		case 12: get_shortstr(c, p->app_id); break;
		case 13: {
			char cluster_id[256];
			get_shortstr(c, cluster_id);
			break;
		}
		}
	}
	return !c->bad;
}

static void header_frame(struct amqp_stream *s, int64_t ts)
{
	struct cursor c = {.p = s->buf, .n = s->size};
	struct assembly *a = assembly_find(s, s->channel);
	uint16_t class_id;

	s->stats->headers++;
	if (!a) {
		s->stats->orphans++;
		return;
	}
	if (a->st != AS_HEADER) {
		s->stats->content_errors++;
		assembly_abandon(s, a);
		return;
	}
	class_id = get16(&c);
	get16(&c); /* weight */
	a->msg.body_size = get64(&c);
	if (c.bad || class_id != a->msg.class_id || !parse_properties(&c, &a->msg.props)) {
		s->stats->content_errors++;
		assembly_abandon(s, a);
		return;
	}
	if (a->msg.body_size == 0)
		deliver(s, a, ts);
	else
		a->st = AS_BODY;
}

/* The head of a body frame is read: which message its octets go to. */
static void body_frame_begins(struct amqp_stream *s)
{
	struct assembly *a = assembly_find(s, s->channel);
	s->body_target = NULL;
	if (!a) {
		s->stats->orphans++;
		return;
	}
	if (a->st != AS_BODY || s->size > a->msg.body_size - a->received) {
		s->stats->content_errors++; /* before the header, or more than the header announced */
		assembly_abandon(s, a);
		return;
	}
	s->body_target = a;
}

static void body_frame_ends(struct amqp_stream *s, int64_t ts)
{
	struct assembly *a = s->body_target;
	s->stats->bodies++;
	s->body_target = NULL;
	if (a && a->received == a->msg.body_size)
		deliver(s, a, ts);
}

/* ---- the stream ---- */

static void reader_reset(struct amqp_stream *s)
{
	s->st = R_HEAD;
	s->head_len = 0;
	s->got = 0;
	s->body_target = NULL;
}

/* The octets are not frames (or bytes went missing): out of step until a recognisable
 * frame begins a feed. */
static void lose_step(struct amqp_stream *s)
{
	drop_all(s);
	reader_reset(s);
	s->synced = false;
}

static void framing_error(struct amqp_stream *s)
{
	s->stats->framing_errors++;
	lose_step(s);
}

/* The 7 octets of a frame head are in s->head. false on a framing error. */
static bool frame_head_done(struct amqp_stream *s)
{
	s->type = s->head[0];
	s->channel = (uint16_t)(s->head[1] << 8 | s->head[2]);
	s->size = be32(s->head + 3);
	s->got = 0;
	if (s->size > AMQP_MAX_FRAME)
		return false;
	switch (s->type) {
	case AMQP_FRAME_METHOD:
	case AMQP_FRAME_HEADER:
		if (s->size > s->buf_cap) {
			size_t cap = s->buf_cap ? s->buf_cap : 1024;
			uint8_t *b;
			while (cap < s->size)
				cap *= 2;
			if (!(b = realloc(s->buf, cap)))
				return false;
			s->buf = b;
			s->buf_cap = cap;
		}
		break;
	case AMQP_FRAME_BODY:
		body_frame_begins(s);
		break;
	case AMQP_FRAME_HEARTBEAT:
		if (s->size != 0)
			return false;
		break;
	default:
		return false;
	}
	s->st = s->size > 0 ? R_PAYLOAD : R_END;
	return true;
}

static void frame_done(struct amqp_stream *s, int64_t ts)
{
	s->stats->frames++;
	switch (s->type) {
	case AMQP_FRAME_METHOD: method_frame(s); break;
	case AMQP_FRAME_HEADER: header_frame(s, ts); break;
	case AMQP_FRAME_BODY: body_frame_ends(s, ts); break;
	case AMQP_FRAME_HEARTBEAT: s->stats->heartbeats++; break;
	}
	reader_reset(s);
}

static bool frame_ok(const uint8_t *f, uint32_t size)
{
	uint16_t channel = (uint16_t)(f[1] << 8 | f[2]);
	switch (f[0]) {
	case AMQP_FRAME_METHOD: return size >= 4 && is_known_class((uint16_t)(f[7] << 8 | f[8]));
	case AMQP_FRAME_HEADER: return size >= 14 && is_known_class((uint16_t)(f[7] << 8 | f[8]));
	case AMQP_FRAME_BODY: return true;
	case AMQP_FRAME_HEARTBEAT: return channel == 0 && size == 0;
	default: return false;
	}
}

bool amqp_looks_like_frames(const uint8_t *data, size_t len)
{
	size_t off = 0;
	int whole = 0;
	if (len >= PROTOCOL_HEADER_LEN && memcmp(data, "AMQP", 4) == 0)
		return true;
	/* every frame that ends inside data must be well formed; at least one must */
	while (len - off >= FRAME_HEAD_LEN) {
		uint32_t size = be32(data + off + 3);
		if (size > AMQP_MAX_FRAME || (size_t)size + FRAME_HEAD_LEN + 1 > len - off)
			break;
		if (data[off + FRAME_HEAD_LEN + size] != FRAME_END || !frame_ok(data + off, size))
			return false;
		whole++;
		off += FRAME_HEAD_LEN + (size_t)size + 1;
	}
	if (whole == 0)
		return false;
	/* what is left is the start of one more frame: its type at least must be right */
	return off == len || data[off] == AMQP_FRAME_METHOD || data[off] == AMQP_FRAME_HEADER ||
	       data[off] == AMQP_FRAME_BODY || data[off] == AMQP_FRAME_HEARTBEAT || data[off] == 'A';
}

void amqp_stream_feed(struct amqp_stream *s, const uint8_t *data, size_t len, int64_t ts_ns)
{
	if (s->ended || len == 0)
		return;
	if (!s->synced) {
		if (!amqp_looks_like_frames(data, len)) {
			s->stats->skipped_bytes += len;
			return;
		}
		s->synced = true;
		s->stats->resyncs++;
		reader_reset(s);
	}
	while (len > 0) {
		size_t n;
		switch (s->st) {
		case R_HEAD:
			if (s->head_len == 0) {
				s->frame_first_ns = ts_ns;
				if (data[0] == 'A') { /* "AMQP": a protocol header, not a frame type */
					s->st = R_PROTOCOL;
					continue;
				}
			}
			n = FRAME_HEAD_LEN - s->head_len < len ? FRAME_HEAD_LEN - s->head_len : len;
			memcpy(s->head + s->head_len, data, n);
			s->head_len += n;
			data += n;
			len -= n;
			if (s->head_len == FRAME_HEAD_LEN && !frame_head_done(s)) {
				framing_error(s);
				s->stats->skipped_bytes += len;
				return;
			}
			break;
		case R_PROTOCOL:
			n = PROTOCOL_HEADER_LEN - s->head_len < len ? PROTOCOL_HEADER_LEN - s->head_len : len;
			memcpy(s->head + s->head_len, data, n);
			s->head_len += n;
			data += n;
			len -= n;
			if (memcmp(s->head, "AMQP", s->head_len < 4 ? s->head_len : 4) != 0) {
				framing_error(s);
				s->stats->skipped_bytes += len;
				return;
			}
			if (s->head_len == PROTOCOL_HEADER_LEN) {
				s->stats->protocol_headers++;
				reader_reset(s);
			}
			break;
		case R_PAYLOAD:
			n = s->size - s->got < len ? s->size - s->got : len;
			if (s->type == AMQP_FRAME_BODY) {
				if (s->body_target && body_append(s->body_target, data, n) < 0) {
					s->stats->content_errors++;
					assembly_abandon(s, s->body_target);
				}
			} else {
				memcpy(s->buf + s->got, data, n);
			}
			s->got += (uint32_t)n;
			data += n;
			len -= n;
			if (s->got == s->size)
				s->st = R_END;
			break;
		case R_END:
			if (data[0] != FRAME_END) {
				framing_error(s);
				s->stats->skipped_bytes += len;
				return;
			}
			data++;
			len--;
			frame_done(s, ts_ns);
			break;
		}
	}
}

void amqp_stream_gap(struct amqp_stream *s)
{
	if (!s->ended)
		lose_step(s);
}

void amqp_stream_end(struct amqp_stream *s)
{
	if (s->ended)
		return;
	drop_all(s);
	reader_reset(s);
	s->ended = true;
}

struct amqp_stream *amqp_stream_new(bool at_start, const struct amqp_callbacks *cb, struct amqp_stats *stats)
{
	struct amqp_stream *s = calloc(1, sizeof *s);
	if (!s)
		return NULL;
	s->synced = at_start;
	if (cb)
		s->cb = *cb;
	s->stats = stats;
	return s;
}

void amqp_stream_free(struct amqp_stream *s)
{
	if (!s)
		return;
	while (s->n_as > 0)
		assembly_drop(s, s->as[s->n_as - 1]);
	free(s->as);
	free(s->buf);
	free(s);
}
