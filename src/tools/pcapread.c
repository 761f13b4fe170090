/* pcapread — see pcapread.h. Layers, bottom up: frame -> IP -> TCP segment -> per
 * direction reassembly -> HTTP parser -> request queue per connection -> exchange. */
#include "tools/pcapread.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pcap/pcap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#ifndef DLT_LINUX_SLL2
#define DLT_LINUX_SLL2 276
#endif
#ifndef DLT_IPV4
#define DLT_IPV4 228
#endif
#ifndef DLT_IPV6
#define DLT_IPV6 229
#endif

#define CONN_BUCKETS 4096
#define MAX_LINE 4096          /* a chunk-size or trailer line */
#define MAX_CHUNK ((uint64_t)1 << 40)

#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_RST 0x04
#define TCP_ACK 0x10

enum { DIR_TO_SERVER = 0, DIR_TO_CLIENT = 1 };

enum parse_state {
	P_IDLE,       /* between messages */
	P_HEAD,       /* start line and headers */
	P_BODY_LEN,   /* Content-Length body */
	P_CHUNK_SIZE, /* chunked: size line */
	P_CHUNK_DATA,
	P_CHUNK_END,  /* the CRLF after a chunk's data */
	P_TRAILER,    /* trailer lines after the last chunk */
	P_BODY_CLOSE, /* response body delimited by the end of the stream */
};

struct seg {
	struct seg *next;
	uint32_t seq, len;
	int64_t ts;
	uint8_t data[];
};

struct parser {
	enum parse_state st;
	bool lost; /* dropping bytes until a segment starts a message */
	struct http_message *m;
	char *buf; /* the head, or one chunk-size/trailer line */
	size_t len, cap;
	size_t body_cap;
	uint64_t remaining;
};

struct direction {
	bool synced, saw_syn, fin, ended;
	uint32_t isn, next_seq, fin_seq;
	struct seg *ooo; /* sorted by seq */
	size_t ooo_bytes;
	struct parser p;
};

struct conn_key {
	uint8_t family; /* 4 or 6 */
	uint8_t cip[16], sip[16];
	uint16_t cport, sport;
};

struct request_node {
	struct http_message *m;
	struct request_node *next;
};

struct watched_port {
	uint16_t port;
	pcapread_stream_fn stream_fn; /* NULL: HTTP */
	void *stream_arg;
};

struct conn {
	struct conn *next; /* hash chain */
	struct conn_key key;
	const struct watched_port *watch; /* the server's port: HTTP or a raw stream */
	uint64_t number;
	char client[64], server[64];
	struct direction dir[2];
	struct request_node *req_head, *req_tail;
};

struct pcapread {
	struct watched_port ports[PCAPREAD_MAX_PORTS];
	size_t n_ports;
	pcapread_exchange_fn fn;
	void *arg;
	struct conn *buckets[CONN_BUCKETS];
	struct pcapread_stats stats;
};

/* ---- small helpers ---- */

static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t get32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }

static void message_free(struct http_message *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->n_headers; i++) {
		free(m->headers[i].name);
		free(m->headers[i].value);
	}
	free(m->headers);
	free(m->target);
	free(m->body);
	free(m);
}

const char *http_message_header(const struct http_message *m, const char *name)
{
	for (size_t i = 0; i < m->n_headers; i++)
		if (strcasecmp(m->headers[i].name, name) == 0)
			return m->headers[i].value;
	return NULL;
}

/* ---- HTTP ---- */

/* Does this segment begin a message of this direction? */
static bool starts_message(int d, const uint8_t *data, size_t len)
{
	size_t i = 0;
	if (d == DIR_TO_CLIENT)
		return len >= 5 && memcmp(data, "HTTP/", 5) == 0;
	while (i < len && i < 16 && data[i] >= 'A' && data[i] <= 'Z')
		i++;
	return i >= 3 && i < len && data[i] == ' ' && i + 1 < len &&
	       (data[i + 1] == '/' || data[i + 1] == '*' || (data[i + 1] >= 'a' && data[i + 1] <= 'z'));
}

static int buf_push(struct parser *p, const uint8_t *data, size_t n, size_t limit)
{
	if (p->len + n > limit)
		return -1;
	if (p->len + n + 1 > p->cap) {
		size_t cap = p->cap ? p->cap : 256;
		char *b;
		while (cap < p->len + n + 1)
			cap *= 2;
		if (!(b = realloc(p->buf, cap)))
			return -1;
		p->buf = b;
		p->cap = cap;
	}
	memcpy(p->buf + p->len, data, n);
	p->len += n;
	p->buf[p->len] = '\0';
	return 0;
}

static int body_append(struct parser *p, const uint8_t *data, size_t n)
{
	struct http_message *m = p->m;
	size_t room = PCAPREAD_MAX_BODY - m->body_len;
	if (n > room) {
		m->body_truncated = true;
		n = room;
	}
	if (n == 0)
		return 0;
	if (m->body_len + n + 1 > p->body_cap) {
		size_t cap = p->body_cap ? p->body_cap : 512;
		uint8_t *b;
		while (cap < m->body_len + n + 1)
			cap *= 2;
		if (!(b = realloc(m->body, cap)))
			return -1;
		m->body = b;
		p->body_cap = cap;
	}
	memcpy(m->body + m->body_len, data, n);
	m->body_len += n;
	m->body[m->body_len] = '\0';
	return 0;
}

static char *trimmed_dup(const char *s, size_t n)
{
	char *out;
	while (n > 0 && (*s == ' ' || *s == '\t')) {
		s++;
		n--;
	}
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
		n--;
	if (!(out = malloc(n + 1)))
		return NULL;
	memcpy(out, s, n);
	out[n] = '\0';
	return out;
}

static bool is_token_char(char ch)
{
	return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || strchr("!#$%&'*+-.^_`|~", ch);
}

static int parse_start_line(struct http_message *m, const char *line, size_t n)
{
	const char *sp1, *sp2, *end = line + n;
	if (m->is_request) {
		if (!(sp1 = memchr(line, ' ', n)) || sp1 == line || (size_t)(sp1 - line) >= sizeof m->method)
			return -1;
		for (const char *q = line; q < sp1; q++)
			if (!is_token_char(*q))
				return -1;
		memcpy(m->method, line, (size_t)(sp1 - line));
		m->method[sp1 - line] = '\0';
		if (!(sp2 = memchr(sp1 + 1, ' ', (size_t)(end - sp1 - 1))) || sp2 == sp1 + 1)
			return -1;
		if ((size_t)(end - sp2 - 1) < 8 || memcmp(sp2 + 1, "HTTP/1.", 7) != 0)
			return -1;
		if (!(m->target = trimmed_dup(sp1 + 1, (size_t)(sp2 - sp1 - 1))))
			return -1;
		return 0;
	}
	if (n < 12 || memcmp(line, "HTTP/1.", 7) != 0 || line[8] != ' ')
		return -1;
	if (line[9] < '1' || line[9] > '5' || line[10] < '0' || line[10] > '9' || line[11] < '0' || line[11] > '9')
		return -1;
	if (n > 12 && line[12] != ' ')
		return -1;
	m->status = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
	return 0;
}

static int parse_headers(struct http_message *m, const char *head, size_t n)
{
	const char *line = head, *end = head + n;
	bool first = true;
	while (line < end) {
		const char *nl = memchr(line, '\n', (size_t)(end - line));
		size_t len = nl ? (size_t)(nl - line) : (size_t)(end - line);
		if (len > 0 && line[len - 1] == '\r')
			len--;
		if (first) {
			if (parse_start_line(m, line, len) < 0)
				return -1;
			first = false;
		} else if (len > 0) {
			const char *colon = memchr(line, ':', len);
			struct http_header *h;
			if (!colon || colon == line)
				return -1;
			for (const char *q = line; q < colon; q++)
				if (!is_token_char(*q))
					return -1;
			if (m->n_headers >= 256)
				return -1;
			if (!(h = realloc(m->headers, (m->n_headers + 1) * sizeof *h)))
				return -1;
			m->headers = h;
			h = &m->headers[m->n_headers];
			h->name = trimmed_dup(line, (size_t)(colon - line));
			h->value = trimmed_dup(colon + 1, (size_t)(line + len - colon - 1));
			if (!h->name || !h->value) {
				free(h->name);
				free(h->value);
				return -1;
			}
			m->n_headers++;
		}
		if (!nl)
			break;
		line = nl + 1;
	}
	return first ? -1 : 0;
}

/* Content-Length: digits only; repeated values must agree. 1 found, 0 none, -1 bad. */
static int content_length(const struct http_message *m, uint64_t *out)
{
	int found = 0;
	for (size_t i = 0; i < m->n_headers; i++) {
		const char *v = m->headers[i].value;
		uint64_t x = 0;
		if (strcasecmp(m->headers[i].name, "Content-Length") != 0)
			continue;
		if (!*v)
			return -1;
		for (; *v; v++) {
			if (*v < '0' || *v > '9' || x > (UINT64_MAX - 9) / 10)
				return -1;
			x = x * 10 + (uint64_t)(*v - '0');
		}
		if (found && x != *out)
			return -1;
		*out = x;
		found = 1;
	}
	return found;
}

static bool is_chunked(const struct http_message *m)
{
	const char *te = http_message_header(m, "Transfer-Encoding");
	size_t n;
	if (!te)
		return false;
	n = strlen(te);
	/* chunked is the last coding when present */
	return n >= 7 && strcasecmp(te + n - 7, "chunked") == 0;
}

static struct request_node *oldest_request(struct conn *c) { return c->req_head; }

static void deliver_exchange(struct pcapread *r, struct conn *c, struct http_message *req, struct http_message *resp)
{
	struct http_exchange x = {.conn = c->number, .request = req, .response = resp};
	memcpy(x.client, c->client, sizeof x.client);
	memcpy(x.server, c->server, sizeof x.server);
	r->fn(&x, r->arg);
}

static void message_done(struct pcapread *r, struct conn *c, int d)
{
	struct parser *p = &c->dir[d].p;
	struct http_message *m = p->m;
	p->m = NULL;
	p->st = P_IDLE;
	p->body_cap = 0;
	if (d == DIR_TO_SERVER) {
		struct request_node *n = calloc(1, sizeof *n);
		r->stats.requests++;
		if (!n) {
			message_free(m);
			return;
		}
		n->m = m;
		if (c->req_tail)
			c->req_tail->next = n;
		else
			c->req_head = n;
		c->req_tail = n;
	} else {
		struct request_node *n = c->req_head;
		struct http_message *req = NULL;
		r->stats.responses++;
		if (n) {
			req = n->m;
			if (!(c->req_head = n->next))
				c->req_tail = NULL;
			free(n);
		}
		deliver_exchange(r, c, req, m);
		message_free(req);
		message_free(m);
	}
}

static void parse_error(struct pcapread *r, struct parser *p)
{
	r->stats.parse_errors++;
	message_free(p->m);
	p->m = NULL;
	p->st = P_IDLE;
	p->lost = true;
	p->len = 0;
	p->body_cap = 0;
}

/* The head is in p->buf: decide how the body ends. 0, or -1 on a malformed head. */
static int head_done(struct pcapread *r, struct conn *c, int d)
{
	struct parser *p = &c->dir[d].p;
	struct http_message *m = p->m;
	uint64_t cl = 0;
	int has_cl;

	if (parse_headers(m, p->buf, p->len) < 0)
		return -1;
	p->len = 0;
	if ((has_cl = content_length(m, &cl)) < 0)
		return -1;
	if (!m->is_request) {
		struct request_node *q = oldest_request(c);
		if (m->status < 200) { /* 100 Continue and friends: not the answer */
			message_free(m);
			p->m = NULL;
			p->st = P_IDLE;
			return 0;
		}
		if (m->status == 204 || m->status == 304 || (q && strcmp(q->m->method, "HEAD") == 0)) {
			message_done(r, c, d);
			return 0;
		}
	}
	if (is_chunked(m)) {
		p->st = P_CHUNK_SIZE;
	} else if (has_cl) {
		if (cl == 0) {
			message_done(r, c, d);
			return 0;
		}
		p->remaining = cl;
		p->st = P_BODY_LEN;
	} else if (m->is_request) {
		message_done(r, c, d);
	} else {
		p->st = P_BODY_CLOSE;
	}
	return 0;
}

/* Takes one line (up to '\n') into p->buf; returns bytes used, and *done when whole. */
static size_t take_line(struct parser *p, const uint8_t *data, size_t len, bool *done, bool *bad)
{
	const uint8_t *nl = memchr(data, '\n', len);
	size_t n = nl ? (size_t)(nl - data) + 1 : len;
	*done = nl != NULL;
	*bad = buf_push(p, data, n, MAX_LINE) < 0;
	return n;
}

static bool line_is_empty(const struct parser *p)
{
	return p->len == 1 || (p->len == 2 && p->buf[0] == '\r');
}

static int parse_chunk_size(struct parser *p)
{
	uint64_t x = 0;
	size_t i = 0, digits = 0;
	for (; i < p->len; i++, digits++) {
		char ch = p->buf[i];
		int v = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
		      : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10 : -1;
		if (v < 0)
			break;
		x = x * 16 + (uint64_t)v;
		if (x > MAX_CHUNK)
			return -1;
	}
	if (digits == 0)
		return -1;
	for (; i < p->len; i++) { /* then white space, extensions, CRLF */
		char ch = p->buf[i];
		if (ch == ';')
			break;
		if (ch != ' ' && ch != '\t' && ch != '\r' && ch != '\n')
			return -1;
	}
	p->remaining = x;
	return 0;
}

static void stamp(struct http_message *m, int64_t ts)
{
	if (ts < m->first_ns)
		m->first_ns = ts;
	if (ts > m->last_ns)
		m->last_ns = ts;
}

/* Feeds in-order bytes of one direction, all carried by a segment captured at ts. */
static void parser_feed(struct pcapread *r, struct conn *c, int d, const uint8_t *data, size_t len, int64_t ts)
{
	struct parser *p = &c->dir[d].p;

	if (p->lost) {
		if (p->st != P_IDLE || !starts_message(d, data, len)) {
			r->stats.skipped_bytes += len;
			return;
		}
		p->lost = false;
	}
	while (len > 0) {
		size_t used = 0;
		bool done = false, bad = false;
		switch (p->st) {
		case P_IDLE:
			if (*data == '\r' || *data == '\n') { /* stray CRLF between messages */
				used = 1;
				break;
			}
			if (!(p->m = calloc(1, sizeof *p->m))) {
				parse_error(r, p);
				return;
			}
			p->m->is_request = d == DIR_TO_SERVER;
			p->m->first_ns = p->m->last_ns = ts;
			p->len = 0;
			p->body_cap = 0;
			p->st = P_HEAD;
			continue;
		case P_HEAD:
			while (used < len) {
				uint8_t ch = data[used++];
				if (buf_push(p, &ch, 1, PCAPREAD_MAX_HEAD) < 0) {
					bad = true;
					break;
				}
				if (ch == '\n' && p->len >= 2 &&
				    (p->buf[p->len - 2] == '\n' || (p->len >= 3 && p->buf[p->len - 2] == '\r' && p->buf[p->len - 3] == '\n'))) {
					done = true;
					break;
				}
			}
			stamp(p->m, ts);
			if (!bad && done && head_done(r, c, d) < 0)
				bad = true;
			break;
		case P_BODY_LEN:
		case P_CHUNK_DATA:
			used = p->remaining < len ? (size_t)p->remaining : len;
			stamp(p->m, ts);
			bad = body_append(p, data, used) < 0;
			p->remaining -= used;
			if (!bad && p->remaining == 0) {
				if (p->st == P_BODY_LEN)
					message_done(r, c, d);
				else
					p->st = P_CHUNK_END;
			}
			break;
		case P_CHUNK_SIZE:
			used = take_line(p, data, len, &done, &bad);
			stamp(p->m, ts);
			if (!bad && done) {
				bad = parse_chunk_size(p) < 0;
				p->len = 0;
				p->st = p->remaining == 0 ? P_TRAILER : P_CHUNK_DATA;
			}
			break;
		case P_CHUNK_END:
			used = take_line(p, data, len, &done, &bad);
			stamp(p->m, ts);
			if (!bad && done) {
				bad = !line_is_empty(p);
				p->len = 0;
				p->st = P_CHUNK_SIZE;
			}
			break;
		case P_TRAILER:
			used = take_line(p, data, len, &done, &bad);
			stamp(p->m, ts);
			if (!bad && done) {
				bool end = line_is_empty(p);
				p->len = 0;
				if (end)
					message_done(r, c, d);
			}
			break;
		case P_BODY_CLOSE:
			used = len;
			stamp(p->m, ts);
			bad = body_append(p, data, used) < 0;
			break;
		}
		if (bad) {
			parse_error(r, p);
			r->stats.skipped_bytes += len - used;
			return;
		}
		data += used;
		len -= used;
	}
}

/* The stream of direction d ended (FIN, RST, end of capture). */
static void parser_eof(struct pcapread *r, struct conn *c, int d)
{
	struct parser *p = &c->dir[d].p;
	if (p->st == P_BODY_CLOSE) {
		message_done(r, c, d);
	} else if (p->st != P_IDLE) {
		r->stats.incomplete++;
		message_free(p->m);
		p->m = NULL;
		p->st = P_IDLE;
	}
	p->len = 0;
}

/* A hole will not be filled: the message in progress is lost. */
static void parser_hole(struct pcapread *r, struct parser *p)
{
	if (p->st != P_IDLE) {
		r->stats.incomplete++;
		message_free(p->m);
		p->m = NULL;
		p->st = P_IDLE;
	}
	p->len = 0;
	p->lost = true;
}

/* ---- raw streams ---- */

static void stream_event(struct conn *c, int d, enum pcapread_stream_event ev, const uint8_t *data, size_t len, int64_t ts)
{
	struct pcapread_stream x = {.conn = c->number, .to_server = d == DIR_TO_SERVER, .from_start = c->dir[d].saw_syn,
	                            .event = ev, .data = data, .len = len, .ts_ns = ts};
	memcpy(x.client, c->client, sizeof x.client);
	memcpy(x.server, c->server, sizeof x.server);
	c->watch->stream_fn(&x, c->watch->stream_arg);
}

/* In-order bytes of one direction: to the HTTP parser or the stream's consumer. */
static void bytes_in_order(struct pcapread *r, struct conn *c, int d, const uint8_t *data, size_t len, int64_t ts)
{
	if (c->watch->stream_fn)
		stream_event(c, d, PCAPREAD_STREAM_DATA, data, len, ts);
	else
		parser_feed(r, c, d, data, len, ts);
}

static void bytes_hole(struct pcapread *r, struct conn *c, int d)
{
	if (c->watch->stream_fn)
		stream_event(c, d, PCAPREAD_STREAM_GAP, NULL, 0, 0);
	else
		parser_hole(r, &c->dir[d].p);
}

static void bytes_end(struct pcapread *r, struct conn *c, int d)
{
	if (c->watch->stream_fn)
		stream_event(c, d, PCAPREAD_STREAM_END, NULL, 0, 0);
	else
		parser_eof(r, c, d);
}

/* ---- TCP ---- */

static void check_fin(struct pcapread *r, struct conn *c, int d)
{
	struct direction *dir = &c->dir[d];
	if (dir->fin && !dir->ended && dir->synced && dir->next_seq == dir->fin_seq && !dir->ooo) {
		dir->ended = true;
		bytes_end(r, c, d);
	}
}

static void drain(struct pcapread *r, struct conn *c, int d)
{
	struct direction *dir = &c->dir[d];
	while (dir->ooo) {
		struct seg *s = dir->ooo;
		int32_t off = (int32_t)(s->seq - dir->next_seq);
		if (off > 0)
			break;
		dir->ooo = s->next;
		dir->ooo_bytes -= s->len;
		if ((int64_t)s->len > -(int64_t)off) {
			uint32_t skip = (uint32_t)-off;
			bytes_in_order(r, c, d, s->data + skip, s->len - skip, s->ts);
			dir->next_seq += s->len - skip;
		}
		free(s);
	}
}

/* Gives up the hole before the first waiting segment: its bytes were never captured. */
static void skip_hole(struct pcapread *r, struct conn *c, int d)
{
	struct direction *dir = &c->dir[d];
	if (!dir->ooo)
		return;
	r->stats.lost_bytes += (uint32_t)(dir->ooo->seq - dir->next_seq);
	bytes_hole(r, c, d);
	dir->next_seq = dir->ooo->seq;
	drain(r, c, d);
}

static void ooo_insert(struct pcapread *r, struct conn *c, int d, uint32_t seq, const uint8_t *data, uint32_t len, int64_t ts)
{
	struct direction *dir = &c->dir[d];
	struct seg **at = &dir->ooo, *s;
	while (*at && (int32_t)((*at)->seq - seq) < 0)
		at = &(*at)->next;
	if (*at && (*at)->seq == seq && (*at)->len >= len) {
		r->stats.retransmitted++;
		return;
	}
	if (!(s = malloc(sizeof *s + len)))
		return;
	s->seq = seq;
	s->len = len;
	s->ts = ts;
	memcpy(s->data, data, len);
	s->next = *at;
	*at = s;
	dir->ooo_bytes += len;
	r->stats.out_of_order++;
	while (dir->ooo_bytes > PCAPREAD_MAX_OOO && dir->ooo)
		skip_hole(r, c, d);
}

static void direction_data(struct pcapread *r, struct conn *c, int d, uint32_t seq, const uint8_t *data, uint32_t len, int64_t ts)
{
	struct direction *dir = &c->dir[d];
	int32_t off;

	if (!dir->synced) {
		/* joined mid-stream: wait for a segment that starts a message (a raw stream's
		 * consumer finds its own framing) */
		if (!c->watch->stream_fn && !starts_message(d, data, len)) {
			r->stats.skipped_bytes += len;
			return;
		}
		dir->synced = true;
		dir->next_seq = seq;
	}
	off = (int32_t)(seq - dir->next_seq);
	if (off < 0) {
		if ((int64_t)len <= -(int64_t)off) {
			r->stats.retransmitted++;
			return;
		}
		data += (uint32_t)-off;
		len -= (uint32_t)-off;
		seq = dir->next_seq;
	} else if (off > 0) {
		ooo_insert(r, c, d, seq, data, len, ts);
		return;
	}
	bytes_in_order(r, c, d, data, len, ts);
	dir->next_seq += len;
	drain(r, c, d);
}

static unsigned key_hash(const struct conn_key *k)
{
	const uint8_t *b = (const uint8_t *)k;
	uint32_t h = 2166136261u; /* FNV-1a */
	for (size_t i = 0; i < sizeof *k; i++)
		h = (h ^ b[i]) * 16777619u;
	return h % CONN_BUCKETS;
}

static void format_addr(char *out, size_t n, int family, const uint8_t *ip, uint16_t port)
{
	char a[INET6_ADDRSTRLEN] = "?";
	inet_ntop(family == 4 ? AF_INET : AF_INET6, ip, a, sizeof a);
	snprintf(out, n, family == 4 ? "%s:%u" : "[%s]:%u", a, port);
}

static struct conn *conn_new(struct pcapread *r, const struct conn_key *k, const struct watched_port *watch)
{
	struct conn *c = calloc(1, sizeof *c);
	unsigned h = key_hash(k);
	if (!c)
		return NULL;
	c->key = *k;
	c->watch = watch;
	c->number = ++r->stats.connections;
	format_addr(c->client, sizeof c->client, k->family, k->cip, k->cport);
	format_addr(c->server, sizeof c->server, k->family, k->sip, k->sport);
	c->next = r->buckets[h];
	r->buckets[h] = c;
	return c;
}

static struct conn *conn_find(struct pcapread *r, const struct conn_key *k)
{
	for (struct conn *c = r->buckets[key_hash(k)]; c; c = c->next)
		if (memcmp(&c->key, k, sizeof *k) == 0)
			return c;
	return NULL;
}

/* Ends both streams, hands out what remains and frees the connection (unlinked first). */
static void conn_end(struct pcapread *r, struct conn *c)
{
	struct conn **at = &r->buckets[key_hash(&c->key)];
	while (*at && *at != c)
		at = &(*at)->next;
	if (*at)
		*at = c->next;
	/* the client's side first: a request cut short is no exchange; then the server's,
	 * whose close-delimited answer may complete one */
	for (int d = 0; d < 2; d++) {
		struct direction *dir = &c->dir[d];
		while (dir->ooo)
			skip_hole(r, c, d);
		if (!dir->ended) {
			dir->ended = true;
			bytes_end(r, c, d);
		}
		free(dir->p.buf);
	}
	while (c->req_head) {
		struct request_node *n = c->req_head;
		c->req_head = n->next;
		deliver_exchange(r, c, n->m, NULL);
		message_free(n->m);
		free(n);
	}
	free(c);
}

static void tcp_segment(struct pcapread *r, const struct conn_key *k, const struct watched_port *watch, int d,
                        uint8_t flags, uint32_t seq, const uint8_t *data, uint32_t len, int64_t ts)
{
	struct conn *c = conn_find(r, k);
	struct direction *dir;

	r->stats.segments++;
	if (c && (flags & TCP_SYN) && c->dir[d].saw_syn && c->dir[d].isn != seq) {
		conn_end(r, c); /* the 4-tuple is reused by a new connection */
		c = NULL;
	}
	if (!c) {
		if (!(flags & TCP_SYN) && len == 0)
			return;
		if (!(c = conn_new(r, k, watch)))
			return;
	}
	dir = &c->dir[d];
	if (flags & TCP_RST) {
		conn_end(r, c);
		return;
	}
	if ((flags & TCP_SYN) && !dir->saw_syn) {
		dir->saw_syn = true;
		dir->isn = seq;
		if (!dir->synced) {
			dir->synced = true;
			dir->next_seq = seq + 1;
		}
	}
	if (flags & TCP_SYN)
		seq++; /* data on a SYN (TFO) starts after it */
	if (len > 0 && !dir->ended)
		direction_data(r, c, d, seq, data, len, ts);
	if ((flags & TCP_FIN) && !dir->fin) {
		dir->fin = true;
		dir->fin_seq = seq + len;
	}
	check_fin(r, c, d);
	if (c->dir[0].ended && c->dir[1].ended)
		conn_end(r, c);
}

/* ---- IP and links ---- */

static const struct watched_port *watched(const struct pcapread *r, uint16_t port)
{
	for (size_t i = 0; i < r->n_ports; i++)
		if (r->ports[i].port == port)
			return &r->ports[i];
	return NULL;
}

static void tcp_packet(struct pcapread *r, struct conn_key *k, const uint8_t *src, const uint8_t *dst, size_t alen,
                       const uint8_t *p, size_t len, int64_t ts)
{
	uint16_t sport, dport;
	size_t off;
	int d;
	const struct watched_port *watch;

	if (len < 20) {
		r->stats.truncated++;
		return;
	}
	sport = get16(p);
	dport = get16(p + 2);
	off = (size_t)(p[12] >> 4) * 4;
	if (off < 20 || off > len) {
		r->stats.truncated++;
		return;
	}
	if ((watch = watched(r, dport)))
		d = DIR_TO_SERVER;
	else if ((watch = watched(r, sport)))
		d = DIR_TO_CLIENT;
	else {
		r->stats.other_port++;
		return;
	}
	if (d == DIR_TO_SERVER) {
		memcpy(k->cip, src, alen);
		memcpy(k->sip, dst, alen);
		k->cport = sport;
		k->sport = dport;
	} else {
		memcpy(k->cip, dst, alen);
		memcpy(k->sip, src, alen);
		k->cport = dport;
		k->sport = sport;
	}
	tcp_segment(r, k, watch, d, p[13], get32(p + 4), p + off, (uint32_t)(len - off), ts);
}

static void ipv4_packet(struct pcapread *r, const uint8_t *p, size_t len, int64_t ts)
{
	struct conn_key k;
	size_t ihl, total;
	if (len < 20 || (p[0] >> 4) != 4) {
		r->stats.truncated++;
		return;
	}
	ihl = (size_t)(p[0] & 0x0f) * 4;
	total = get16(p + 2);
	if (ihl < 20 || total < ihl || total > len) {
		r->stats.truncated++;
		return;
	}
	if ((get16(p + 6) & 0x3fff) != 0) { /* MF or an offset */
		r->stats.fragments++;
		return;
	}
	if (p[9] != 6) {
		r->stats.not_tcp++;
		return;
	}
	memset(&k, 0, sizeof k);
	k.family = 4;
	tcp_packet(r, &k, p + 12, p + 16, 4, p + ihl, total - ihl, ts); /* total trims link padding */
}

static void ipv6_packet(struct pcapread *r, const uint8_t *p, size_t len, int64_t ts)
{
	struct conn_key k;
	size_t payload, off = 40;
	uint8_t next;
	if (len < 40 || (p[0] >> 4) != 6) {
		r->stats.truncated++;
		return;
	}
	payload = get16(p + 4);
	if (40 + payload > len) {
		r->stats.truncated++;
		return;
	}
	len = 40 + payload;
	next = p[6];
	for (int hops = 0; hops < 8 && (next == 0 || next == 43 || next == 60); hops++) {
		if (off + 8 > len) {
			r->stats.truncated++;
			return;
		}
		next = p[off];
		off += ((size_t)p[off + 1] + 1) * 8;
	}
	if (off > len) {
		r->stats.truncated++;
		return;
	}
	if (next == 44) {
		r->stats.fragments++;
		return;
	}
	if (next != 6) {
		r->stats.not_tcp++;
		return;
	}
	memset(&k, 0, sizeof k);
	k.family = 6;
	tcp_packet(r, &k, p + 8, p + 24, 16, p + off, len - off, ts);
}

static void ip_packet(struct pcapread *r, uint16_t ethertype, const uint8_t *p, size_t len, int64_t ts)
{
	if (ethertype == 0x0800)
		ipv4_packet(r, p, len, ts);
	else if (ethertype == 0x86dd)
		ipv6_packet(r, p, len, ts);
	else
		r->stats.not_tcp++;
}

/* BSD loopback: an address family, 4 bytes, host (DLT_NULL) or network (DLT_LOOP) order. */
static uint16_t loop_family(const uint8_t *p)
{
	uint32_t le = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
	uint32_t be = get32(p);
	if (le == 2 || be == 2)
		return 0x0800;
	for (int i = 0; i < 2; i++) {
		uint32_t f = i ? be : le;
		if (f == 10 || f == 24 || f == 28 || f == 30) /* AF_INET6: Linux, BSDs, macOS */
			return 0x86dd;
	}
	return 0;
}

bool pcapread_linktype_supported(int linktype)
{
	switch (linktype) {
	case DLT_EN10MB:
	case DLT_NULL:
	case DLT_LOOP:
	case DLT_LINUX_SLL:
	case DLT_LINUX_SLL2:
	case DLT_RAW:
	case DLT_IPV4:
	case DLT_IPV6:
		return true;
	default:
		return false;
	}
}

void pcapread_frame(struct pcapread *r, int linktype, int64_t ts_ns, const uint8_t *f, size_t len)
{
	uint16_t type;
	size_t off;

	r->stats.frames++;
	switch (linktype) {
	case DLT_EN10MB:
		if (len < 14)
			goto truncated;
		type = get16(f + 12);
		off = 14;
		for (int tags = 0; tags < 2 && (type == 0x8100 || type == 0x88a8); tags++) {
			if (off + 4 > len)
				goto truncated;
			type = get16(f + off + 2);
			off += 4;
		}
		break;
	case DLT_NULL:
	case DLT_LOOP:
		if (len < 4)
			goto truncated;
		type = loop_family(f);
		off = 4;
		break;
	case DLT_LINUX_SLL:
		if (len < 16)
			goto truncated;
		type = get16(f + 14);
		off = 16;
		break;
	case DLT_LINUX_SLL2:
		if (len < 20)
			goto truncated;
		type = get16(f);
		off = 20;
		break;
	case DLT_RAW:
	case DLT_IPV4:
	case DLT_IPV6:
		if (len < 1)
			goto truncated;
		type = (f[0] >> 4) == 4 ? 0x0800 : (f[0] >> 4) == 6 ? 0x86dd : 0;
		off = 0;
		break;
	default:
		r->stats.not_tcp++;
		return;
	}
	ip_packet(r, type, f + off, len - off, ts_ns);
	return;
truncated:
	r->stats.truncated++;
}

/* ---- life cycle ---- */

struct pcapread *pcapread_new(uint16_t port, pcapread_exchange_fn fn, void *arg)
{
	struct pcapread *r = calloc(1, sizeof *r);
	if (!r)
		return NULL;
	r->ports[0].port = port;
	r->n_ports = 1;
	r->fn = fn;
	r->arg = arg;
	return r;
}

static int add_port(struct pcapread *r, uint16_t port, pcapread_stream_fn fn, void *arg)
{
	if (watched(r, port))
		return -EEXIST;
	if (r->n_ports == PCAPREAD_MAX_PORTS)
		return -ENOSPC;
	r->ports[r->n_ports++] = (struct watched_port){.port = port, .stream_fn = fn, .stream_arg = arg};
	return 0;
}

int pcapread_add_http_port(struct pcapread *r, uint16_t port) { return add_port(r, port, NULL, NULL); }

int pcapread_add_stream_port(struct pcapread *r, uint16_t port, pcapread_stream_fn fn, void *arg)
{
	return add_port(r, port, fn, arg);
}

void pcapread_finish(struct pcapread *r)
{
	/* oldest connections first, so that exchanges come out roughly in time order */
	for (;;) {
		struct conn *oldest = NULL;
		for (int b = 0; b < CONN_BUCKETS; b++)
			for (struct conn *c = r->buckets[b]; c; c = c->next)
				if (!oldest || c->number < oldest->number)
					oldest = c;
		if (!oldest)
			break;
		conn_end(r, oldest);
	}
}

void pcapread_free(struct pcapread *r)
{
	if (!r)
		return;
	for (int b = 0; b < CONN_BUCKETS; b++) {
		while (r->buckets[b]) {
			struct conn *c = r->buckets[b];
			r->buckets[b] = c->next;
			for (int d = 0; d < 2; d++) {
				while (c->dir[d].ooo) {
					struct seg *s = c->dir[d].ooo;
					c->dir[d].ooo = s->next;
					free(s);
				}
				message_free(c->dir[d].p.m);
				free(c->dir[d].p.buf);
			}
			while (c->req_head) {
				struct request_node *n = c->req_head;
				c->req_head = n->next;
				message_free(n->m);
				free(n);
			}
			free(c);
		}
	}
	free(r);
}

const struct pcapread_stats *pcapread_get_stats(const struct pcapread *r) { return &r->stats; }

int pcapread_file(struct pcapread *r, const char *path, char *err, size_t errlen)
{
	char errbuf[PCAP_ERRBUF_SIZE] = "";
	struct pcap_pkthdr *h;
	const u_char *data;
	pcap_t *pc;
	int linktype, rc;

	if (!(pc = pcap_open_offline_with_tstamp_precision(path, PCAP_TSTAMP_PRECISION_NANO, errbuf))) {
		snprintf(err, errlen, "%s: %s", path, errbuf);
		return -EINVAL;
	}
	linktype = pcap_datalink(pc);
	if (!pcapread_linktype_supported(linktype)) {
		snprintf(err, errlen, "%s: link type %s (%d) is not supported", path,
		         pcap_datalink_val_to_name(linktype) ?: "unknown", linktype);
		pcap_close(pc);
		return -EINVAL;
	}
	while ((rc = pcap_next_ex(pc, &h, &data)) == 1)
		pcapread_frame(r, linktype, (int64_t)h->ts.tv_sec * 1000000000 + (int64_t)h->ts.tv_usec, data, h->caplen);
	if (rc == PCAP_ERROR)
		snprintf(err, errlen, "%s: %s", path, pcap_geterr(pc));
	pcap_close(pc);
	pcapread_finish(r);
	return rc == PCAP_ERROR ? -EIO : 0;
}
