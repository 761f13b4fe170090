/* pcapread — from captured frames to the HTTP/1.1 exchanges on TCP ports (and to the raw
 * byte streams of other ports, see pcapread_add_stream_port): the wire
 * half of `microvim analyze`, kept apart from it so that it can be tested on captures
 * the tests build and fuzzed on bytes nobody checked.
 *
 *   frame      DLT_EN10MB (with up to two VLAN tags), DLT_NULL and DLT_LOOP (BSD loopback,
 *              either byte order), DLT_LINUX_SLL and DLT_LINUX_SLL2 (Linux cooked), and
 *              raw IP (DLT_RAW, DLT_IPV4, DLT_IPV6)
 *   IP         IPv4 (fragments are not reassembled: they are counted and skipped) and IPv6
 *              (hop-by-hop, routing and destination-options headers are skipped)
 *   TCP        segments to or from the port; each direction of each connection is put
 *              back in sequence order: out-of-order segments wait (bounded memory), bytes
 *              already delivered (retransmissions, overlaps) are dropped. A connection whose
 *              SYN was not captured is joined at the first segment that starts an HTTP
 *              message ("HTTP/1." from the server, "METHOD " from the client)
 *   HTTP/1.1   requests and responses with Content-Length, chunked or (responses)
 *              close-delimited bodies; keep-alive and pipelining: responses are paired
 *              with requests in order on their connection; 1xx answers are skipped; HEAD,
 *              204 and 304 answers have no body
 *
 * Time of a message: `first_ns` is the capture time of the earliest segment that carried
 * any of its bytes and `last_ns` that of the latest one — the instant it was whole on
 * the wire. A byte is timed by the segment that first carried it; retransmissions of it
 * change nothing.
 *
 * Bad bytes never fail anything: they are counted in the stats and the stream resyncs at
 * the next segment that starts a message. Memory is bounded per connection (headers
 * 64 KiB, a stored body 8 MiB — longer bodies are delimited but truncated —, out-of-order
 * data 4 MiB; beyond it the missing bytes are declared lost). */
#ifndef MICROVIM_PCAPREAD_H
#define MICROVIM_PCAPREAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PCAPREAD_MAX_HEAD (64 * 1024)
#define PCAPREAD_MAX_BODY (8 * 1024 * 1024)
#define PCAPREAD_MAX_OOO (4 * 1024 * 1024)

struct http_header {
	char *name, *value; /* value without surrounding white space */
};

struct http_message {
	bool is_request;
	char method[16];   /* request */
	char *target;      /* request: as sent, e.g. "/v1/instances?wait=running" */
	int status;        /* response */
	struct http_header *headers;
	size_t n_headers;
	uint8_t *body;     /* de-chunked; NUL-terminated (not counted in body_len) */
	size_t body_len;
	bool body_truncated;
	int64_t first_ns, last_ns; /* capture time (ns since the epoch, as the capture says) */
};

/* One request and its answer on one connection; either may be missing (NULL): a response
 * whose request came before the capture began, a request never answered in the capture. */
struct http_exchange {
	uint64_t conn;              /* connection number, from 1, in order of first sight */
	char client[64], server[64]; /* "ADDR:PORT" ("[ADDR]:PORT" for IPv6) */
	const struct http_message *request, *response;
};

typedef void (*pcapread_exchange_fn)(const struct http_exchange *x, void *arg);

struct pcapread_stats {
	uint64_t frames;         /* fed */
	uint64_t not_tcp;        /* other link or network protocols */
	uint64_t truncated;      /* shorter than their headers say (snap length, bad bytes) */
	uint64_t fragments;      /* IPv4/IPv6 fragments, skipped */
	uint64_t other_port;     /* TCP, but neither end is the port */
	uint64_t segments;       /* TCP segments of the port, with or without data */
	uint64_t retransmitted;  /* segments whose bytes had all been delivered already */
	uint64_t out_of_order;   /* segments that arrived ahead of a hole and waited */
	uint64_t lost_bytes;     /* bytes never captured (holes given up) */
	uint64_t skipped_bytes;  /* bytes dropped while looking for a message start */
	uint64_t connections;
	uint64_t requests, responses;
	uint64_t parse_errors;
	uint64_t incomplete;     /* messages cut short by the end of the capture or a hole */
};

struct pcapread;

/* A reader of exchanges on TCP port `port`, handed to fn(x, arg) as they complete (the
 * exchange and its messages live only during the call). NULL when out of memory. */
struct pcapread *pcapread_new(uint16_t port, pcapread_exchange_fn fn, void *arg);
void pcapread_free(struct pcapread *r);

#define PCAPREAD_MAX_PORTS 16

/* More HTTP ports, whose exchanges go to the same fn: a capture of a whole controller
 * (an API, its identity and image services ...). 0, -EEXIST (already watched) or
 * -ENOSPC (PCAPREAD_MAX_PORTS). */
int pcapread_add_http_port(struct pcapread *r, uint16_t port);

/* Raw streams: a port whose protocol is not HTTP (AMQP, for one). Each direction of each
 * of its connections is handed out as the TCP layer puts it back in order — the same
 * reassembly, without the HTTP parser:
 *   DATA  the next len bytes of the direction, all first carried by one segment captured
 *         at ts_ns; the first DATA of a stream begins a segment, and so does every DATA
 *         after a GAP (a consumer that is not in step with its protocol looks for its
 *         framing there)
 *   GAP   bytes before the next DATA were never captured
 *   END   the direction ended (FIN, RST, a reused 4-tuple, the end of the capture); no
 *         event follows for it
 * from_start: the capture saw the connection's SYN, so DATA begins at the stream's first
 * byte. A connection joined mid-way starts at the first segment with data. */
enum pcapread_stream_event { PCAPREAD_STREAM_DATA, PCAPREAD_STREAM_GAP, PCAPREAD_STREAM_END };

struct pcapread_stream {
	uint64_t conn;               /* as http_exchange.conn */
	char client[64], server[64];
	bool to_server;              /* the direction: client -> server, or back */
	bool from_start;
	enum pcapread_stream_event event;
	const uint8_t *data;         /* DATA only; lives during the call */
	size_t len;
	int64_t ts_ns;               /* DATA only */
};

typedef void (*pcapread_stream_fn)(const struct pcapread_stream *s, void *arg);

/* Watches `port` as raw streams handed to fn(s, arg). 0, -EEXIST or -ENOSPC. */
int pcapread_add_stream_port(struct pcapread *r, uint16_t port, pcapread_stream_fn fn, void *arg);

/* True for the link types above (DLT_* values of <pcap/dlt.h>). */
bool pcapread_linktype_supported(int linktype);

/* Feeds one captured frame (caplen bytes at frame, captured at ts_ns). */
void pcapread_frame(struct pcapread *r, int linktype, int64_t ts_ns, const uint8_t *frame, size_t caplen);

/* The capture is over: gives up holes, ends close-delimited bodies, hands out the
 * requests still waiting for an answer (response NULL). Idempotent. */
void pcapread_finish(struct pcapread *r);

const struct pcapread_stats *pcapread_get_stats(const struct pcapread *r);

/* Value of header `name` (case-insensitive) of m, or NULL. */
const char *http_message_header(const struct http_message *m, const char *name);

/* Reads a capture file (pcap or pcapng, through libpcap) into r and finishes it.
 * 0; -EINVAL (not a capture, unsupported link type: nothing was read) or -EIO (the file
 * ends mid-record or is damaged: what came before it is in r), with a message in err. */
int pcapread_file(struct pcapread *r, const char *path, char *err, size_t errlen);

#endif
