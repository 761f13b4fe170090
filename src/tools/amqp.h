/* amqp — AMQP 0-9-1 frames and messages out of one direction of a captured TCP stream:
 * what RabbitMQ carries between OpenStack's services (oslo.messaging), for
 * `microvim analyze --vim nova`. A reader, not a client: it never answers, it follows.
 *
 *   protocol header  "AMQP" 0 0 9 1, sent by a client when it connects (skipped)
 *   frame            type (1 octet) | channel (2) | size (4) | payload (size octets) | 0xCE
 *     1 METHOD       class-id (2) method-id (2) arguments
 *     2 HEADER       class-id (2) weight (2) body-size (8) property flags (2, a further
 *                    flags word follows while bit 0 is set) then the properties present
 *     3 BODY         content octets
 *     8 HEARTBEAT    channel 0, no payload
 *   message          a content method (basic.publish, basic.return, basic.deliver,
 *                    basic.get-ok), then one HEADER frame, then BODY frames until body-size
 *                    octets have come, all on one channel; frames of other channels may come
 *                    between, and a frame may be split over any number of TCP segments
 *
 * Integers are big-endian (network order). A message is handed out whole, with its method's
 * arguments, its basic properties and its body (kept up to AMQP_MAX_BODY octets; a longer
 * body is delimited and marked truncated).
 *
 * Joining a stream mid-way: a capture rarely holds the start of oslo.messaging's
 * long-lived connections. A stream made with at_start false (or one that lost bytes, or
 * met bytes that are not AMQP) waits for a feed whose first bytes are the protocol header
 * or a whole frame whose frame-end octet is where its size says (callers feed one TCP
 * segment at a time, and senders start segments at frame boundaries often enough); bytes
 * before are counted as skipped. Header and body frames of a message whose method frame
 * was not seen are counted as orphans and skipped without losing the stream.
 *
 * Limits (a frame larger is a framing error): AMQP_MAX_FRAME payload octets, AMQP_MAX_ASSEMBLIES
 * messages being assembled at once on one stream (one per channel). Memory per stream: one
 * frame's method or header payload, plus the bodies being assembled. */
#ifndef MICROVIM_AMQP_H
#define MICROVIM_AMQP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AMQP_MAX_FRAME (4u * 1024 * 1024)
#define AMQP_MAX_BODY (8u * 1024 * 1024)
#define AMQP_MAX_ASSEMBLIES 256

enum amqp_frame_type {
	AMQP_FRAME_METHOD = 1,
	AMQP_FRAME_HEADER = 2,
	AMQP_FRAME_BODY = 3,
	AMQP_FRAME_HEARTBEAT = 8,
};

/* class and method ids of the content methods */
#define AMQP_CLASS_BASIC 60
#define AMQP_BASIC_PUBLISH 40
#define AMQP_BASIC_RETURN 50
#define AMQP_BASIC_DELIVER 60
#define AMQP_BASIC_GET_OK 71

/* The basic class's properties; a string property absent is "". */
struct amqp_properties {
	char content_type[256], content_encoding[256];
	char correlation_id[256], reply_to[256], expiration[256], message_id[256];
	char type[256], user_id[256], app_id[256];
	uint8_t delivery_mode, priority;
	uint64_t timestamp;
	uint32_t present; /* bit i: the i-th property (content-type = 0 .. cluster-id = 13) was sent */
};

struct amqp_message {
	uint16_t channel;
	uint16_t class_id, method_id; /* the content method */
	char exchange[256], routing_key[256]; /* publish, return, deliver, get-ok */
	char consumer_tag[256];               /* deliver */
	uint64_t delivery_tag;                /* deliver, get-ok */
	bool redelivered;                     /* deliver, get-ok */
	uint16_t reply_code;                  /* return */
	struct amqp_properties props;
	uint64_t body_size;  /* as the header frame declared it */
	const uint8_t *body; /* NUL-terminated (not counted in body_len); never NULL */
	size_t body_len;     /* < body_size only when truncated */
	bool body_truncated;
	/* capture time of the first octet of the method frame and of the last octet of the
	 * message's last frame (its frame-end) */
	int64_t first_ns, last_ns;
};

/* Every method frame, content or not (connection.tune, basic.ack, channel.close ...). */
struct amqp_method {
	uint16_t channel, class_id, method_id;
	int64_t ts_ns; /* the frame's first octet */
};

struct amqp_callbacks {
	void (*method)(const struct amqp_method *m, void *arg);   /* may be NULL */
	void (*message)(const struct amqp_message *m, void *arg); /* may be NULL */
	void *arg;
};

struct amqp_stats {
	uint64_t frames;           /* whole frames, heartbeats included */
	uint64_t methods, headers, bodies, heartbeats;
	uint64_t messages;         /* handed to the callback */
	uint64_t protocol_headers;
	uint64_t framing_errors;   /* unknown frame type, size over the limit, bad frame-end */
	uint64_t content_errors;   /* a frame out of place in a message, bad properties or arguments */
	uint64_t orphans;          /* header/body frames of a message whose method was not seen */
	uint64_t incomplete;       /* messages cut short by a gap, an error or the end */
	uint64_t skipped_bytes;    /* dropped while looking for a frame start */
	uint64_t resyncs;          /* times the stream found its frames again */
};

struct amqp_stream;

/* A reader for one direction of one connection. at_start: the stream's first octets will
 * be fed (the capture saw the connection open); otherwise it joins at the first frame it
 * can recognise. Counts go to *stats, which may be shared by many streams and must
 * outlive this one. NULL when out of memory. */
struct amqp_stream *amqp_stream_new(bool at_start, const struct amqp_callbacks *cb, struct amqp_stats *stats);
void amqp_stream_free(struct amqp_stream *s);

/* The next len octets of the stream, in order, all captured at ts_ns. A feed that begins a
 * TCP segment is where a stream that is not in step may find frames again. */
void amqp_stream_feed(struct amqp_stream *s, const uint8_t *data, size_t len, int64_t ts_ns);
/* Octets between the last feed and the next one were never captured: messages in progress
 * are dropped and the stream waits for a recognisable frame. */
void amqp_stream_gap(struct amqp_stream *s);
/* The stream ended; messages in progress are counted incomplete. Idempotent. */
void amqp_stream_end(struct amqp_stream *s);

/* Whether data begins with the protocol header or a whole, well-formed frame (the test a
 * stream not in step applies to a feed). */
bool amqp_looks_like_frames(const uint8_t *data, size_t len);

#endif
