/* fuzz_pcap — the capture reader of `microvim analyze` (src/tools/pcapread.h) on bytes
 * nobody checked. Two ways in, chosen by the input's first bytes:
 *   - a pcap or pcapng file (its magic number first): handed to pcapread_file through a
 *     memfd, libpcap reads the records, pcapread takes every frame;
 *   - anything else, a compact list of frames for pcapread_frame directly (no libpcap, so
 *     the mutations land in our parser):
 *         byte 0        link type: index into linktypes[] below (one unsupported one)
 *         then records  u16 length (little-endian), u8 time step (ms), `length` bytes
 *     then pcapread_finish, as at the end of a capture.
 * The reader watches TCP port 4650 (HTTP) and 5672 (a raw stream, as analyze --vim nova
 * watches AMQP). Every exchange and stream event handed out is walked byte by byte (ASan
 * sees any read past a buffer) and checked against what pcapread.h promises. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "tools/pcapread.h"

#define PORT 4650
#define STREAM_PORT 5672

#define CHECK(cond)                                                                                   \
	do {                                                                                          \
		if (!(cond)) {                                                                        \
			fprintf(stderr, "fuzz_pcap: invariant failed: %s (line %d)\n", #cond, __LINE__); \
			abort();                                                                      \
		}                                                                                     \
	} while (0)

static const int linktypes[] = {1 /* EN10MB */, 0 /* NULL */, 108 /* LOOP */, 113 /* LINUX_SLL */,
                                276 /* LINUX_SLL2 */, 12 /* RAW (12 on Linux) */, 228 /* IPV4 */,
                                229 /* IPV6 */, 101 /* LINKTYPE_RAW */, 147 /* unsupported: USER0 */};

static volatile unsigned sink; /* keeps the walks below from being optimized away */

static void walk_string(const char *s, size_t max)
{
	CHECK(s);
	size_t n = strnlen(s, max + 1);
	CHECK(n <= max);
	for (size_t i = 0; i < n; i++)
		sink += (unsigned char)s[i];
}

static void check_message(const struct http_message *m, bool is_request)
{
	CHECK(m->is_request == is_request);
	CHECK(m->first_ns <= m->last_ns);
	if (is_request) {
		CHECK(memchr(m->method, '\0', sizeof m->method));
		walk_string(m->method, sizeof m->method - 1);
		walk_string(m->target, PCAPREAD_MAX_HEAD);
	} else {
		CHECK(m->status >= 100 && m->status <= 999);
	}
	CHECK(m->n_headers == 0 || m->headers);
	for (size_t i = 0; i < m->n_headers; i++) {
		walk_string(m->headers[i].name, PCAPREAD_MAX_HEAD);
		walk_string(m->headers[i].value, PCAPREAD_MAX_HEAD);
		/* the lookup finds a header by its own name (the first of that name) */
		CHECK(http_message_header(m, m->headers[i].name) != NULL);
	}
	CHECK(m->body_len <= PCAPREAD_MAX_BODY);
	if (m->body) {
		for (size_t i = 0; i < m->body_len; i++)
			sink += m->body[i];
		CHECK(m->body[m->body_len] == '\0');
	} else {
		CHECK(m->body_len == 0);
	}
}

static void on_exchange(const struct http_exchange *x, void *arg)
{
	uint64_t *n = arg;
	(*n)++;
	CHECK(x->conn >= 1);
	CHECK(x->request || x->response);
	CHECK(memchr(x->client, '\0', sizeof x->client) && memchr(x->server, '\0', sizeof x->server));
	if (x->request)
		check_message(x->request, true);
	if (x->response)
		check_message(x->response, false);
}

static void on_stream(const struct pcapread_stream *x, void *arg)
{
	uint64_t *n = arg;
	(*n)++;
	CHECK(x->conn >= 1);
	CHECK(memchr(x->client, '\0', sizeof x->client) && memchr(x->server, '\0', sizeof x->server));
	if (x->event == PCAPREAD_STREAM_DATA) {
		CHECK(x->data && x->len > 0);
		for (size_t i = 0; i < x->len; i++)
			sink += x->data[i];
	} else {
		CHECK(x->event == PCAPREAD_STREAM_GAP || x->event == PCAPREAD_STREAM_END);
	}
}

static struct pcapread *reader(uint64_t *exchanges, uint64_t *stream_events)
{
	struct pcapread *r = pcapread_new(PORT, on_exchange, exchanges);
	if (!r || pcapread_add_stream_port(r, STREAM_PORT, on_stream, stream_events) < 0)
		abort();
	CHECK(pcapread_add_http_port(r, PORT) == -17 /* EEXIST */);
	return r;
}

static void check_stats(const struct pcapread *r, uint64_t exchanges, uint64_t frames_fed, bool fed_directly)
{
	const struct pcapread_stats *s = pcapread_get_stats(r);
	if (getenv("FUZZ_PCAP_VERBOSE")) /* to see what a seed reaches */
		fprintf(stderr, "fuzz_pcap: %llu frames, %llu segments, %llu connections, %llu requests, %llu responses, "
		        "%llu exchanges, %llu parse errors, %llu not tcp, %llu truncated\n",
		        (unsigned long long)s->frames, (unsigned long long)s->segments,
		        (unsigned long long)s->connections, (unsigned long long)s->requests,
		        (unsigned long long)s->responses, (unsigned long long)exchanges,
		        (unsigned long long)s->parse_errors, (unsigned long long)s->not_tcp,
		        (unsigned long long)s->truncated);
	if (fed_directly)
		CHECK(s->frames == frames_fed);
	CHECK(s->not_tcp + s->truncated + s->fragments + s->other_port + s->segments <= s->frames);
	CHECK(exchanges <= s->requests + s->responses);
}

static bool is_capture_file(const uint8_t *d, size_t n)
{
	static const uint8_t magics[][4] = {
		{0xd4, 0xc3, 0xb2, 0xa1}, {0xa1, 0xb2, 0xc3, 0xd4}, /* pcap, microseconds */
		{0x4d, 0x3c, 0xb2, 0xa1}, {0xa1, 0xb2, 0x3c, 0x4d}, /* pcap, nanoseconds */
		{0x0a, 0x0d, 0x0d, 0x0a},                           /* pcapng section header */
	};
	for (size_t i = 0; n >= 4 && i < sizeof magics / sizeof magics[0]; i++)
		if (memcmp(d, magics[i], 4) == 0)
			return true;
	return false;
}

static void run_file(const uint8_t *data, size_t size)
{
	char path[64], err[512];
	uint64_t exchanges = 0, stream_events = 0;
	struct pcapread *r;
	int fd = memfd_create("fuzz_pcap", MFD_CLOEXEC);
	if (fd < 0 || write(fd, data, size) != (ssize_t)size)
		abort();
	snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
	r = reader(&exchanges, &stream_events);
	int rc = pcapread_file(r, path, err, sizeof err);
	CHECK(rc == 0 || rc == -22 /* EINVAL */ || rc == -5 /* EIO */);
	if (rc < 0)
		walk_string(err, sizeof err - 1);
	check_stats(r, exchanges, 0, false);
	pcapread_free(r);
	close(fd);
}

static void run_frames(const uint8_t *data, size_t size)
{
	uint64_t exchanges = 0, fed = 0, stream_events = 0;
	int64_t ts = 1700000000LL * 1000000000;
	struct pcapread *r;
	int linktype;
	size_t pos = 1;

	if (size < 1)
		return;
	linktype = linktypes[data[0] % (sizeof linktypes / sizeof linktypes[0])];
	if (!pcapread_linktype_supported(linktype))
		return; /* pcapread_file refuses such a capture before any frame */
	r = reader(&exchanges, &stream_events);
	while (pos + 3 <= size) {
		size_t len = (size_t)data[pos] | (size_t)data[pos + 1] << 8;
		ts += (int64_t)data[pos + 2] * 1000000;
		pos += 3;
		if (len > size - pos)
			len = size - pos;
		/* a copy of exactly `len` bytes: a read past the frame is a heap overflow ASan reports */
		uint8_t *frame = malloc(len ? len : 1);
		if (!frame)
			abort();
		memcpy(frame, data + pos, len);
		pcapread_frame(r, linktype, ts, frame, len);
		free(frame);
		fed++;
		pos += len;
	}
	pcapread_finish(r);
	pcapread_finish(r); /* idempotent */
	check_stats(r, exchanges, fed, true);
	pcapread_free(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (is_capture_file(data, size))
		run_file(data, size);
	else
		run_frames(data, size);
	return 0;
}
