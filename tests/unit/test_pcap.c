/* test_pcap — pcapread and the analyzer on captures made here, byte by byte: pcap file
 * headers, link headers (Ethernet, BSD loopback, Linux cooked v1/v2), IPv4/IPv6, TCP with
 * segments split, reordered and retransmitted, HTTP/1.1 with Content-Length, chunked and
 * close-delimited bodies and pipelining; then the correlation of a create, its
 * assignment, the node's report and the answer into wire phases. */
#include <errno.h>
#include <math.h> /* isnan: a macro */
#include <pcap/pcap.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tools/analyze.h"
#include "tools/pcapread.h"
#include "unit.h"

#ifndef DLT_LINUX_SLL2
#define DLT_LINUX_SLL2 276
#endif

#define PORT 4650
#define FIN 0x01
#define SYN 0x02
#define RST 0x04
#define PSH 0x08
#define ACK 0x10

/* ---- building frames ---- */

struct flow {
	int linktype;
	bool v6;
	uint16_t cport;
	uint32_t cseq0, sseq0; /* initial sequence numbers */
};

/* Where frames go: a pcap file image in memory, or straight into a reader. */
struct sink {
	uint8_t *buf;
	size_t len, cap;
	struct pcapread *direct;
};

static void put(struct sink *s, const void *p, size_t n)
{
	if (s->len + n > s->cap) {
		s->cap = (s->len + n) * 2 + 4096;
		s->buf = realloc(s->buf, s->cap);
		if (!s->buf)
			abort();
	}
	memcpy(s->buf + s->len, p, n);
	s->len += n;
}

static void put32le(struct sink *s, uint32_t v)
{
	uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
	put(s, b, 4);
}

static void put16le(struct sink *s, uint16_t v)
{
	uint8_t b[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
	put(s, b, 2);
}

static void pcap_header(struct sink *s, int linktype)
{
	put32le(s, 0xa1b2c3d4); /* microseconds */
	put16le(s, 2);
	put16le(s, 4);
	put32le(s, 0);
	put32le(s, 0);
	put32le(s, 65535);
	put32le(s, (uint32_t)linktype);
}

static void be16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static void be32(uint8_t *p, uint32_t v) { be16(p, (uint16_t)(v >> 16)); be16(p + 2, (uint16_t)v); }

/* One frame of the flow: dir 0 client -> server; rel: sequence number relative to the
 * sender's ISN + 1 (the first data byte is 0; a SYN is at -1). */
static size_t build(const struct flow *f, int dir, int32_t rel, uint8_t flags, const void *data, size_t len, uint8_t *out)
{
	size_t n = 0, iplen = f->v6 ? 40 : 20, tcplen = 20;
	uint16_t ethertype = f->v6 ? 0x86dd : 0x0800;
	uint8_t *ip, *tcp;
	uint32_t seq = (dir == 0 ? f->cseq0 : f->sseq0) + 1 + (uint32_t)rel;
	uint32_t ack = (dir == 0 ? f->sseq0 : f->cseq0) + 1;

	switch (f->linktype) {
	case DLT_EN10MB:
		memset(out, 0, 12);
		out[5] = 1;
		out[11] = 2;
		be16(out + 12, ethertype);
		n = 14;
		break;
	case DLT_NULL: /* host order, little-endian here */
		out[0] = f->v6 ? 10 : 2;
		out[1] = out[2] = out[3] = 0;
		n = 4;
		break;
	case DLT_LOOP:
		be32(out, f->v6 ? 24 : 2);
		n = 4;
		break;
	case DLT_LINUX_SLL:
		memset(out, 0, 16);
		be16(out + 2, 772);
		be16(out + 14, ethertype);
		n = 16;
		break;
	case DLT_LINUX_SLL2:
		memset(out, 0, 20);
		be16(out, ethertype);
		be16(out + 8, 772);
		n = 20;
		break;
	}
	ip = out + n;
	memset(ip, 0, iplen);
	if (f->v6) {
		ip[0] = 0x60;
		be16(ip + 4, (uint16_t)(tcplen + len));
		ip[6] = 6;
		ip[7] = 64;
		ip[8 + 15] = dir == 0 ? 1 : 2; /* ::1 -> ::2 */
		ip[24 + 15] = dir == 0 ? 2 : 1;
	} else {
		ip[0] = 0x45;
		be16(ip + 2, (uint16_t)(iplen + tcplen + len));
		be16(ip + 6, 0x4000); /* DF */
		ip[8] = 64;
		ip[9] = 6;
		uint8_t c[4] = {10, 0, 0, 1}, s[4] = {10, 0, 0, 2};
		memcpy(ip + 12, dir == 0 ? c : s, 4);
		memcpy(ip + 16, dir == 0 ? s : c, 4);
	}
	tcp = ip + iplen;
	memset(tcp, 0, tcplen);
	be16(tcp, dir == 0 ? f->cport : PORT);
	be16(tcp + 2, dir == 0 ? PORT : f->cport);
	be32(tcp + 4, seq);
	be32(tcp + 8, ack);
	tcp[12] = 5 << 4;
	tcp[13] = flags | ((flags & SYN) && dir == 0 ? 0 : ACK);
	be16(tcp + 14, 65535);
	memcpy(tcp + tcplen, data, len);
	return n + iplen + tcplen + len;
}

static void emit(struct sink *s, const struct flow *f, int64_t ts_us, int dir, int32_t rel, uint8_t flags, const char *data,
                 size_t len)
{
	uint8_t frame[4096];
	size_t n = build(f, dir, rel, flags, data, len, frame);
	if (s->direct) {
		pcapread_frame(s->direct, f->linktype, ts_us * 1000, frame, n);
		return;
	}
	put32le(s, (uint32_t)(ts_us / 1000000));
	put32le(s, (uint32_t)(ts_us % 1000000));
	put32le(s, (uint32_t)n);
	put32le(s, (uint32_t)n);
	put(s, frame, n);
}

static void handshake(struct sink *s, const struct flow *f, int64_t ts_us)
{
	emit(s, f, ts_us, 0, -1, SYN, "", 0);
	emit(s, f, ts_us + 1, 1, -1, SYN, "", 0);
	emit(s, f, ts_us + 2, 0, 0, 0, "", 0);
}

/* ---- collecting exchanges ---- */

struct seen {
	int n;
	struct {
		char method[16], target[128];
		int status;
		char req_body[512], resp_body[512];
		int64_t req_first, req_last, resp_first, resp_last;
		bool has_req, has_resp;
		uint64_t conn;
		char client[64];
	} x[16];
};

static void collect(const struct http_exchange *x, void *arg)
{
	struct seen *s = arg;
	if (s->n == 16)
		return;
	if (x->request) {
		s->x[s->n].has_req = true;
		snprintf(s->x[s->n].method, sizeof s->x[s->n].method, "%s", x->request->method);
		snprintf(s->x[s->n].target, sizeof s->x[s->n].target, "%s", x->request->target);
		snprintf(s->x[s->n].req_body, sizeof s->x[s->n].req_body, "%s", x->request->body ? (char *)x->request->body : "");
		s->x[s->n].req_first = x->request->first_ns;
		s->x[s->n].req_last = x->request->last_ns;
	}
	if (x->response) {
		s->x[s->n].has_resp = true;
		s->x[s->n].status = x->response->status;
		snprintf(s->x[s->n].resp_body, sizeof s->x[s->n].resp_body, "%s", x->response->body ? (char *)x->response->body : "");
		s->x[s->n].resp_first = x->response->first_ns;
		s->x[s->n].resp_last = x->response->last_ns;
	}
	s->x[s->n].conn = x->conn;
	snprintf(s->x[s->n].client, sizeof s->x[s->n].client, "%s", x->client);
	s->n++;
}

static char tmpdir[] = "/tmp/test_pcap.XXXXXX";

static int read_capture(struct sink *s, struct pcapread *r, char *err, size_t errlen)
{
	char path[128];
	FILE *f;
	int rc;
	snprintf(path, sizeof path, "%s/cap.pcap", tmpdir);
	f = fopen(path, "w");
	if (!f)
		return -errno;
	fwrite(s->buf, 1, s->len, f);
	fclose(f);
	rc = pcapread_file(r, path, err, errlen);
	unlink(path);
	return rc;
}

/* ---- tests ---- */

static const char REQ[] = "POST /v1/instances?wait=running HTTP/1.1\r\nHost: core\r\nContent-Type: application/json\r\n"
                          "Content-Length: 27\r\n\r\n{\"name\":\"fw1\",\"count\":null}";

/* A request in three segments: the second arrives first, the first is retransmitted; a
 * chunked answer split inside its chunk-size lines and data. */
static void test_reassembly_out_of_order_retransmit_chunked(void)
{
	struct sink s = {0};
	struct seen seen = {0};
	struct flow f = {.linktype = DLT_EN10MB, .cport = 40001, .cseq0 = 1000, .sseq0 = 0xfffffff0u /* wraps */};
	struct pcapread *r = pcapread_new(PORT, collect, &seen);
	const size_t n = sizeof REQ - 1, a = 30, b = 90;
	const char *resp[] = {"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n",
	                      "7\r\n{\"id", "\":\"\r\n5", "\r\nab", "c\"}\r\n0\r", "\n\r\n"};
	char err[256] = "";
	int32_t off = 0;

	pcap_header(&s, DLT_EN10MB);
	handshake(&s, &f, 1000000);
	emit(&s, &f, 1000100, 0, (int32_t)a, PSH, REQ + a, b - a);         /* ahead of a hole */
	emit(&s, &f, 1000200, 0, 0, PSH, REQ, a);                          /* fills it */
	emit(&s, &f, 1000250, 0, 0, PSH, REQ, a);                          /* retransmitted */
	emit(&s, &f, 1000300, 0, (int32_t)b - 10, PSH, REQ + b - 10, n - b + 10); /* overlaps by 10 */
	for (int i = 0; i < 6; i++) {
		emit(&s, &f, 1000500 + i * 100, 1, off, PSH, resp[i], strlen(resp[i]));
		off += (int32_t)strlen(resp[i]);
	}
	CHECK_EQ_INT(read_capture(&s, r, err, sizeof err), 0);
	CHECK_EQ_INT(seen.n, 1);
	CHECK(seen.x[0].has_req && seen.x[0].has_resp);
	CHECK_STR(seen.x[0].method, "POST");
	CHECK_STR(seen.x[0].target, "/v1/instances?wait=running");
	CHECK_STR(seen.x[0].req_body, "{\"name\":\"fw1\",\"count\":null}");
	CHECK_EQ_INT(seen.x[0].status, 201);
	CHECK_STR(seen.x[0].resp_body, "{\"id\":\"abc\"}");
	/* first byte: the segment that carried byte 0 (the original, not its retransmission);
	 * the segment ahead of the hole came earlier and counts as the earliest */
	CHECK_EQ_INT(seen.x[0].req_first, 1000100000LL);
	CHECK_EQ_INT(seen.x[0].req_last, 1000300000LL);
	CHECK_EQ_INT(seen.x[0].resp_first, 1000500000LL);
	CHECK_EQ_INT(seen.x[0].resp_last, 1001000000LL);
	CHECK_EQ_INT(pcapread_get_stats(r)->out_of_order, 1);
	CHECK_EQ_INT(pcapread_get_stats(r)->retransmitted, 1);
	CHECK_EQ_INT(pcapread_get_stats(r)->parse_errors, 0);
	CHECK_EQ_INT(pcapread_get_stats(r)->connections, 1);
	pcapread_free(r);
	free(s.buf);
}

/* In order, the times are simply those of the first and the last segment. */
static void test_times_in_order(void)
{
	struct sink s = {0};
	struct seen seen = {0};
	struct flow f = {.linktype = DLT_EN10MB, .cport = 40002, .cseq0 = 5, .sseq0 = 9};
	struct pcapread *r = pcapread_new(PORT, collect, &seen);
	const char resp[] = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
	char err[256];

	pcap_header(&s, DLT_EN10MB);
	handshake(&s, &f, 2000000);
	emit(&s, &f, 2000010, 0, 0, PSH, REQ, 10);
	emit(&s, &f, 2000020, 0, 10, PSH, REQ + 10, sizeof REQ - 1 - 10);
	emit(&s, &f, 2000030, 1, 0, PSH, resp, 20);
	emit(&s, &f, 2000045, 1, 20, PSH, resp + 20, sizeof resp - 1 - 20);
	CHECK_EQ_INT(read_capture(&s, r, err, sizeof err), 0);
	CHECK_EQ_INT(seen.n, 1);
	CHECK_EQ_INT(seen.x[0].req_first, 2000010000LL);
	CHECK_EQ_INT(seen.x[0].req_last, 2000020000LL);
	CHECK_EQ_INT(seen.x[0].resp_first, 2000030000LL);
	CHECK_EQ_INT(seen.x[0].resp_last, 2000045000LL);
	CHECK_STR(seen.x[0].resp_body, "hello");
	pcapread_free(r);
	free(s.buf);
}

/* Keep-alive: two requests in one segment, two answers in one; then a HEAD, a 204, a 100
 * Continue, and a close-delimited answer ended by FIN. */
static void test_pipelining_and_bodyless(void)
{
	struct sink s = {0};
	struct seen seen = {0};
	struct flow f = {.linktype = DLT_EN10MB, .cport = 40003, .cseq0 = 77, .sseq0 = 88};
	struct pcapread *r = pcapread_new(PORT, collect, &seen);
	const char reqs[] = "GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n"
	                    "HEAD /c HTTP/1.1\r\n\r\nDELETE /d HTTP/1.1\r\n\r\nPOST /e HTTP/1.1\r\nExpect: 100-continue\r\n"
	                    "Content-Length: 2\r\n\r\nhi"
	                    "GET /f HTTP/1.1\r\n\r\n";
	const char resps[] = "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nAHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nB"
	                     "HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n" /* HEAD: no body */
	                     "HTTP/1.1 204 No Content\r\n\r\n"
	                     "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok"
	                     "HTTP/1.0 200 OK\r\n\r\nuntil the end";
	char err[256];

	pcap_header(&s, DLT_EN10MB);
	handshake(&s, &f, 3000000);
	emit(&s, &f, 3000010, 0, 0, PSH, reqs, sizeof reqs - 1);
	emit(&s, &f, 3000020, 1, 0, PSH, resps, sizeof resps - 1);
	emit(&s, &f, 3000030, 1, (int32_t)(sizeof resps - 1), FIN, "", 0);
	emit(&s, &f, 3000040, 0, (int32_t)(sizeof reqs - 1), FIN, "", 0);
	CHECK_EQ_INT(read_capture(&s, r, err, sizeof err), 0);
	CHECK_EQ_INT(seen.n, 6);
	CHECK_STR(seen.x[0].target, "/a");
	CHECK_STR(seen.x[0].resp_body, "A");
	CHECK_STR(seen.x[1].target, "/b");
	CHECK_STR(seen.x[1].resp_body, "B");
	CHECK_STR(seen.x[2].method, "HEAD");
	CHECK_STR(seen.x[2].resp_body, "");
	CHECK_EQ_INT(seen.x[3].status, 204);
	CHECK_STR(seen.x[4].target, "/e");
	CHECK_STR(seen.x[4].req_body, "hi");
	CHECK_EQ_INT(seen.x[4].status, 201);
	CHECK_STR(seen.x[4].resp_body, "ok");
	CHECK_STR(seen.x[5].target, "/f");
	CHECK_STR(seen.x[5].resp_body, "until the end");
	CHECK_EQ_INT(pcapread_get_stats(r)->parse_errors, 0);
	CHECK_EQ_INT(pcapread_get_stats(r)->incomplete, 0);
	pcapread_free(r);
	free(s.buf);
}

/* The capture begins during a connection: bytes mid-message are skipped, the next
 * message start is joined; an answer with no captured request comes out alone, and a
 * request never answered comes out at the end. */
static void test_join_midstream(void)
{
	struct sink s = {0};
	struct seen seen = {0};
	struct flow f = {.linktype = DLT_EN10MB, .cport = 40004, .cseq0 = 1, .sseq0 = 1};
	struct pcapread *r = pcapread_new(PORT, collect, &seen);
	const char tail[] = "ignments\": []}";
	const char resp[] = "HTTP/1.1 200 OK\r\nContent-Length: 18\r\n\r\n{\"assignments\":[]}";
	const char req[] = "GET /v1/nodes/n1/assignments?after=3&wait=30 HTTP/1.1\r\n\r\n";
	char err[256];

	pcap_header(&s, DLT_EN10MB);
	emit(&s, &f, 4000000, 1, 500, PSH, tail, sizeof tail - 1);
	emit(&s, &f, 4000010, 1, 500 + (int32_t)(sizeof tail - 1), PSH, resp, sizeof resp - 1);
	emit(&s, &f, 4000020, 0, 900, PSH, req, sizeof req - 1);
	CHECK_EQ_INT(read_capture(&s, r, err, sizeof err), 0);
	CHECK_EQ_INT(seen.n, 2);
	CHECK(!seen.x[0].has_req && seen.x[0].has_resp);
	CHECK_STR(seen.x[0].resp_body, "{\"assignments\":[]}");
	CHECK(seen.x[1].has_req && !seen.x[1].has_resp);
	CHECK_STR(seen.x[1].target, "/v1/nodes/n1/assignments?after=3&wait=30");
	CHECK_EQ_INT(pcapread_get_stats(r)->skipped_bytes, sizeof tail - 1);
	pcapread_free(r);
	free(s.buf);
}

/* The same exchange over every link type, IPv4 and IPv6, fed frame by frame. */
static void test_link_types(void)
{
	const int links[] = {DLT_EN10MB, DLT_NULL, DLT_LOOP, DLT_LINUX_SLL, DLT_LINUX_SLL2};
	const char resp[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";
	for (size_t i = 0; i < sizeof links / sizeof links[0]; i++) {
		for (int v6 = 0; v6 < 2; v6++) {
			struct seen seen = {0};
			struct pcapread *r = pcapread_new(PORT, collect, &seen);
			struct sink s = {.direct = r};
			struct flow f = {.linktype = links[i], .v6 = v6, .cport = 40010, .cseq0 = 3, .sseq0 = 4};
			CHECK(pcapread_linktype_supported(links[i]));
			handshake(&s, &f, 5000000);
			emit(&s, &f, 5000010, 0, 0, PSH, REQ, sizeof REQ - 1);
			emit(&s, &f, 5000020, 1, 0, PSH, resp, sizeof resp - 1);
			pcapread_finish(r);
			if (seen.n != 1 || !seen.x[0].has_resp)
				fprintf(stderr, "  link %d v6 %d: %d exchanges\n", links[i], v6, seen.n);
			CHECK_EQ_INT(seen.n, 1);
			CHECK_STR(seen.x[0].resp_body, "{}");
			CHECK_STR(seen.x[0].client, v6 ? "[::1]:40010" : "10.0.0.1:40010");
			pcapread_free(r);
		}
	}
	CHECK(!pcapread_linktype_supported(DLT_IEEE802_11));
}

/* A new connection on the same 4-tuple (new SYN) is a new connection; RST ends one. */
static void test_port_reuse_and_reset(void)
{
	struct seen seen = {0};
	struct pcapread *r = pcapread_new(PORT, collect, &seen);
	struct sink s = {.direct = r};
	struct flow f1 = {.linktype = DLT_EN10MB, .cport = 40020, .cseq0 = 100, .sseq0 = 200};
	struct flow f2 = {.linktype = DLT_EN10MB, .cport = 40020, .cseq0 = 90000, .sseq0 = 7};
	const char req[] = "GET /x HTTP/1.1\r\n\r\n", part[] = "HTTP/1.1 200 OK\r\nContent-Len";

	handshake(&s, &f1, 6000000);
	emit(&s, &f1, 6000010, 0, 0, PSH, req, sizeof req - 1);
	handshake(&s, &f2, 6000020); /* f1's request is never answered */
	emit(&s, &f2, 6000030, 0, 0, PSH, req, sizeof req - 1);
	emit(&s, &f2, 6000040, 1, 0, PSH, part, sizeof part - 1);
	emit(&s, &f2, 6000050, 0, (int32_t)(sizeof req - 1), RST, "", 0);
	CHECK_EQ_INT(seen.n, 2);
	CHECK(seen.x[0].has_req && !seen.x[0].has_resp && seen.x[0].conn == 1);
	CHECK(seen.x[1].has_req && !seen.x[1].has_resp && seen.x[1].conn == 2);
	CHECK_EQ_INT(pcapread_get_stats(r)->incomplete, 1);
	pcapread_finish(r);
	pcapread_finish(r); /* idempotent */
	CHECK_EQ_INT(seen.n, 2);
	pcapread_free(r);
}

/* Malformed messages are counted, and the stream resyncs at the next message. */
static void test_bad_http_resyncs(void)
{
	struct seen seen = {0};
	struct pcapread *r = pcapread_new(PORT, collect, &seen);
	struct sink s = {.direct = r};
	struct flow f = {.linktype = DLT_EN10MB, .cport = 40030, .cseq0 = 1, .sseq0 = 1};
	const char bad[] = "GET /x HTTP/1.1\r\nContent-Length: 1x\r\n\r\n", junk[] = "garbage garbage\r\n";
	const char good[] = "GET /y HTTP/1.1\r\n\r\n", chunk_bad[] = "POST /z HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n";
	const char resp[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
	int32_t off = 0;

	handshake(&s, &f, 7000000);
	emit(&s, &f, 7000010, 0, off, PSH, bad, sizeof bad - 1);
	off += (int32_t)(sizeof bad - 1);
	emit(&s, &f, 7000020, 0, off, PSH, junk, sizeof junk - 1);
	off += (int32_t)(sizeof junk - 1);
	emit(&s, &f, 7000030, 0, off, PSH, chunk_bad, sizeof chunk_bad - 1);
	off += (int32_t)(sizeof chunk_bad - 1);
	emit(&s, &f, 7000040, 0, off, PSH, good, sizeof good - 1);
	emit(&s, &f, 7000050, 1, 0, PSH, resp, sizeof resp - 1);
	pcapread_finish(r);
	CHECK_EQ_INT(pcapread_get_stats(r)->parse_errors, 2);
	CHECK_EQ_INT(seen.n, 1);
	CHECK_STR(seen.x[0].target, "/y");
	CHECK_EQ_INT(seen.x[0].status, 200);
	pcapread_free(r);
}

static void test_file_errors(void)
{
	struct seen seen = {0};
	struct pcapread *r = pcapread_new(PORT, collect, &seen);
	struct sink s = {0};
	struct flow f = {.linktype = DLT_EN10MB, .cport = 40040, .cseq0 = 1, .sseq0 = 1};
	const char resp[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
	char err[256] = "";

	CHECK_EQ_INT(pcapread_file(r, "/nonexistent/x.pcap", err, sizeof err), -EINVAL);
	CHECK(strstr(err, "/nonexistent/x.pcap") != NULL);
	pcap_header(&s, 105 /* IEEE 802.11 */);
	CHECK_EQ_INT(read_capture(&s, r, err, sizeof err), -EINVAL);
	CHECK(strstr(err, "not supported") != NULL);
	free(s.buf);
	/* cut short in the middle of a record: what came before is read */
	s = (struct sink){0};
	pcap_header(&s, DLT_EN10MB);
	handshake(&s, &f, 8000000);
	emit(&s, &f, 8000010, 0, 0, PSH, REQ, sizeof REQ - 1);
	emit(&s, &f, 8000020, 1, 0, PSH, resp, sizeof resp - 1);
	emit(&s, &f, 8000030, 0, (int32_t)(sizeof REQ - 1), PSH, REQ, sizeof REQ - 1);
	s.len -= 20;
	CHECK_EQ_INT(read_capture(&s, r, err, sizeof err), -EIO);
	CHECK_EQ_INT(seen.n, 1);
	CHECK_EQ_INT(seen.x[0].status, 200);
	free(s.buf);
	pcapread_free(r);
}

/* Random damage to every byte position of a capture: never a crash (ASan, UBSan). */
static void test_mutations(void)
{
	struct flow f = {.linktype = DLT_EN10MB, .cport = 40050, .cseq0 = 10, .sseq0 = 20};
	const char resp[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
	uint8_t frames[8][1024];
	size_t lens[8];
	unsigned long long x = 88172645463325252ULL;
	int nf = 0;

	{ /* the frames of one exchange */
		struct flow g = f;
		lens[nf] = build(&g, 0, -1, SYN, "", 0, frames[nf]), nf++;
		lens[nf] = build(&g, 1, -1, SYN, "", 0, frames[nf]), nf++;
		lens[nf] = build(&g, 0, 0, PSH, REQ, 40, frames[nf]), nf++;
		lens[nf] = build(&g, 0, 40, PSH, REQ + 40, sizeof REQ - 1 - 40, frames[nf]), nf++;
		lens[nf] = build(&g, 1, 0, PSH, resp, 30, frames[nf]), nf++;
		lens[nf] = build(&g, 1, 30, PSH, resp + 30, sizeof resp - 1 - 30, frames[nf]), nf++;
		lens[nf] = build(&g, 0, (int32_t)(sizeof REQ - 1), FIN, "", 0, frames[nf]), nf++;
	}
	for (int round = 0; round < 3000; round++) {
		struct seen seen = {0};
		struct pcapread *r = pcapread_new(PORT, collect, &seen);
		for (int i = 0; i < nf; i++) {
			uint8_t copy[1024];
			size_t n = lens[i];
			memcpy(copy, frames[i], n);
			for (int k = 0; k < 3; k++) {
				x ^= x << 13;
				x ^= x >> 7;
				x ^= x << 17;
				if ((x & 3) == 0)
					copy[(x >> 8) % n] = (uint8_t)(x >> 40);
			}
			if ((x >> 20) % 7 == 0)
				n = (size_t)((x >> 24) % (n + 1)); /* truncated */
			pcapread_frame(r, (x >> 30) % 11 == 0 ? DLT_LINUX_SLL : DLT_EN10MB, i, copy, n);
		}
		pcapread_finish(r);
		pcapread_free(r);
	}
	CHECK(1);
}

/* ---- the analyzer: the four exchanges of one instantiation ---- */

static bool near(double a, double b) { return a - b < 1e-9 && b - a < 1e-9; } /* no libm */

static void test_analyze_correlation(void)
{
	struct analyze *a = analyze_new();
	struct pcapread *r = pcapread_new(PORT, analyze_exchange, a);
	struct sink s = {.direct = r};
	struct flow client = {.linktype = DLT_EN10MB, .cport = 41000, .cseq0 = 1, .sseq0 = 1};
	struct flow node = {.linktype = DLT_EN10MB, .cport = 41001, .cseq0 = 1, .sseq0 = 1};
	struct flow refused = {.linktype = DLT_EN10MB, .cport = 41002, .cseq0 = 1, .sseq0 = 1};
	const char create[] = "POST /v1/instances?wait=running&timeout=30 HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}";
	const char poll[] = "GET /v1/nodes/n1/assignments?after=0&wait=30 HTTP/1.1\r\n\r\n";
	const char assign_body[] = "{\"assignments\":[{\"seq\":1,\"op\":\"start\",\"instance\":{\"id\":\"00000000000000aa\"}}]}";
	const char report_body[] = "{\"reports\":[{\"id\":\"00000000000000aa\",\"state\":\"running\",\"timing\":{\"prepare_us\":100,"
	                           "\"network_us\":0,\"spawn_us\":2000,\"boot_us\":0,\"work_us\":2300}}]}";
	const char answer_body[] = "{\"id\":\"00000000000000aa\",\"state\":\"running\"}";
	const char refusal_body[] = "{\"error\":{\"code\":\"no_node\",\"message\":\"nothing\"}}";
	char refusal[256];
	char assign[512], report[512], answer[512], ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";
	int32_t coff = 0, noff = 0, nsoff = 0;
	struct analyze_record *recs;
	size_t n;
	int la, lr, lans;

	la = snprintf(assign, sizeof assign, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n%s", strlen(assign_body), assign_body);
	lr = snprintf(report, sizeof report, "POST /v1/nodes/n1/reports HTTP/1.1\r\nContent-Length: %zu\r\n\r\n%s",
	              strlen(report_body), report_body);
	snprintf(refusal, sizeof refusal, "HTTP/1.1 422 Unprocessable Entity\r\nContent-Length: %zu\r\n\r\n%s",
	         strlen(refusal_body), refusal_body);
	lans = snprintf(answer, sizeof answer, "HTTP/1.1 201 Created\r\nContent-Length: %zu\r\n\r\n%s", strlen(answer_body),
	                answer_body);

	/* times in µs: the node's poll waits before the capture's create */
	handshake(&s, &node, 100);
	emit(&s, &node, 200, 0, noff, PSH, poll, sizeof poll - 1);
	noff += (int32_t)(sizeof poll - 1);
	handshake(&s, &client, 1000);
	emit(&s, &client, 1010, 0, coff, PSH, create, 40);                      /* request F */
	emit(&s, &client, 1020, 0, coff + 40, PSH, create + 40, sizeof create - 1 - 40); /* request L */
	coff += (int32_t)(sizeof create - 1);
	emit(&s, &node, 1300, 1, nsoff, PSH, assign, 50);                       /* assignment F */
	emit(&s, &node, 1310, 1, nsoff + 50, PSH, assign + 50, (size_t)la - 50); /* assignment L */
	nsoff += la;
	emit(&s, &node, 3700, 0, noff, PSH, report, 60);                        /* report F */
	emit(&s, &node, 3720, 0, noff + 60, PSH, report + 60, (size_t)lr - 60); /* report L */
	noff += lr;
	emit(&s, &node, 3800, 1, nsoff, PSH, ok, sizeof ok - 1);
	emit(&s, &client, 3900, 1, 0, PSH, answer, 30);                         /* answer F */
	emit(&s, &client, 3950, 1, 30, PSH, answer + 30, (size_t)lans - 30);     /* answer L */
	/* a refused create */
	handshake(&s, &refused, 5000);
	emit(&s, &refused, 5010, 0, 0, PSH, create, sizeof create - 1);
	emit(&s, &refused, 5020, 1, 0, PSH, refusal, strlen(refusal));
	pcapread_finish(r);

	CHECK_EQ_INT(analyze_records(a, &recs, &n), 0);
	CHECK_EQ_INT(n, 2);
	if (n == 2) {
		struct analyze_record *x = &recs[0];
		CHECK_STR(x->rec.id, "00000000000000aa");
		CHECK_STR(x->rec.state, "running");
		CHECK_EQ_INT(x->rec.intended_send_us, 0);
		CHECK(near(x->core_ms, 0.280));   /* 1020 -> 1300 */
		CHECK(near(x->node_ms, 2.390));   /* 1310 -> 3700 */
		CHECK(near(x->notify_ms, 0.180)); /* 3720 -> 3900 */
		CHECK(near(x->rec.total_ms, 2.940)); /* 1010 -> 3950 */
		CHECK(near(x->rec.core_total_ms, 2.880)); /* 1020 -> 3900 */
		CHECK(near(x->rec.phase_ms[PHASE_PREPARE], 0.1));
		CHECK(near(x->rec.phase_ms[PHASE_SPAWN], 2.0));
		CHECK(isnan(x->rec.phase_ms[PHASE_BOOT]) && isnan(x->rec.phase_ms[PHASE_ACCEPT]));
		CHECK(near(x->rec.overhead_ms, 0.940));
		CHECK(near(x->node_work_ms, 2.3));
		CHECK_STR(recs[1].rec.state, "error");
		CHECK_STR(recs[1].rec.id, "");
		CHECK(strstr(recs[1].rec.error, "422 no_node") != NULL);
		CHECK_EQ_INT(recs[1].rec.intended_send_us, 4000);
	}
	{ /* both record formats */
		char path[128], *line = NULL;
		size_t cap = 0;
		FILE *f;
		snprintf(path, sizeof path, "%s/an.csv", tmpdir);
		CHECK_EQ_INT(analyze_write(path, recs, n), 0);
		f = fopen(path, "r");
		CHECK(f != NULL);
		if (f) {
			CHECK(getline(&line, &cap, f) > 0);
			CHECK(strncmp(line, "id,intended_send_us,actual_send_us,accept,", 42) == 0);
			CHECK(strstr(line, ",core_ms,node_ms,notify_ms,node_work_ms,total_ms,core_total_ms,overhead_ms,state,error") != NULL);
			CHECK(getline(&line, &cap, f) > 0);
			const char want[] = "00000000000000aa,0,0,,,,0.100,0.000,2.000,,,0.280,2.390,0.180,2.300,2.940,2.880,0.940,running,\n";
			CHECK_STR(line, want);
			fclose(f);
		}
		unlink(path);
		snprintf(path, sizeof path, "%s/an.jsonl", tmpdir);
		CHECK_EQ_INT(analyze_write(path, recs, n), 0);
		f = fopen(path, "r");
		if (f) {
			CHECK(getline(&line, &cap, f) > 0);
			CHECK(strstr(line, "\"core_ms\":0.28,\"node_ms\":2.39,\"notify_ms\":0.18,\"node_work_ms\":2.3,\"total_ms\":2.94") != NULL);
			fclose(f);
		}
		unlink(path);
		CHECK_EQ_INT(analyze_write("/tmp/x.txt", recs, n), -EINVAL);
		free(line);
	}
	free(recs);
	pcapread_free(r);
	analyze_free(a);
}

int main(void)
{
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	RUN(test_reassembly_out_of_order_retransmit_chunked);
	RUN(test_times_in_order);
	RUN(test_pipelining_and_bodyless);
	RUN(test_join_midstream);
	RUN(test_link_types);
	RUN(test_port_reuse_and_reset);
	RUN(test_bad_http_resyncs);
	RUN(test_file_errors);
	RUN(test_mutations);
	RUN(test_analyze_correlation);
	rmdir(tmpdir);
	UNIT_END();
}
