/* analyze — the VIM message analyzer: the instantiations in a packet capture of the core's
 * port, timed on the wire (the paper's "VIM message analyzer").
 *
 *   microvim analyze FILE.pcap [--port 4650] [--out FILE.jsonl|.csv]
 *   microvim analyze --iface lo [--port 4650] [--duration S] [--write FILE.pcap] [--out ...]
 *
 * The exchanges (pcapread.h) are correlated by instance id:
 *   create      the client's POST /v1/instances and its answer; the ids are in the answer
 *               (an INSTANCE, or {"instances": [...]} for count). With ?wait=running (or
 *               wait=ready) that answer is the one the waiting client gets at the end.
 *   assignment  the first answer to a node's long-poll (GET /v1/nodes/{id}/assignments;
 *               recognised by its body when the capture began during the poll) whose body
 *               holds {"op": "start", "instance": {"id": ID}}
 *   report      the node's POST /v1/nodes/{id}/reports whose body holds {"id": ID,
 *               "state": "running"} (with wait=ready: the one that also says "ready": true),
 *               carrying the node's own timing of prepare, network, spawn and boot
 *
 * Wire phases of each instance (ms; F = first byte, L = last byte on the wire):
 *   core_ms     create request L -> assignment F    accept + schedule + the core's dispatch
 *   node_ms     assignment L -> report F             the node's work: receive .. report sent
 *   notify_ms   report L -> answer F                 the core storing "running", waking the client
 *   total_ms    create request F -> answer L         what the client waits, minus its own stack
 * (notify_ms and total_ms only for creates with ?wait=; the others answer at once.)
 *
 * Records: push's fields and order (record.h) with the wire phases after the trace phases:
 *   id, intended_send_us, actual_send_us   both: create request F, µs after the first create
 *                                          request F in the capture
 *   accept .. notify (trace.h)             prepare, network, spawn, boot: as the node reported
 *                                          them in its report; the others null (the wire does
 *                                          not show them: see core_ms and notify_ms)
 *   core_ms, node_ms, notify_ms            the wire phases above
 *   node_work_ms                           the node's own measure of its work (work_us of its
 *                                          report: assignment received -> report handed to the
 *                                          network); node_ms - node_work_ms is the time the
 *                                          assignment and the report spent between the wire and
 *                                          the node's clock marks (its sockets and event loop)
 *   total_ms                               the wire total above
 *   core_total_ms                          create request L -> answer F: the core's whole time
 *   overhead_ms                            total_ms - spawn - boot
 *   state, error                           the answer's state and error ("error" with the
 *                                          status and message when the core refused); without
 *                                          wait, the state the node reported
 * Only instances whose create request is in the capture get a record, in the order of
 * their create requests. */
#ifndef MICROVIM_ANALYZE_H
#define MICROVIM_ANALYZE_H

#include <stdbool.h>
#include <stddef.h>

#include "tools/pcapread.h"
#include "tools/record.h"

struct analyze_record {
	struct record rec;
	double core_ms, node_ms, notify_ms; /* NaN when absent */
	double node_work_ms;                /* the node's own measure, timing.work_us of its report */
};

struct analyze;

struct analyze *analyze_new(void); /* NULL when out of memory */
void analyze_free(struct analyze *a);

/* The pcapread_exchange_fn: arg is the struct analyze. */
void analyze_exchange(const struct http_exchange *x, void *arg);

/* The records of every instance created in the capture so far (see above); *out is
 * malloc'ed (free it). 0 or -ENOMEM. */
int analyze_records(const struct analyze *a, struct analyze_record **out, size_t *n);

/* Writes records to path (.jsonl or .csv). 0 or -errno (-EINVAL: another extension). */
int analyze_write(const char *path, const struct analyze_record *v, size_t n);

/* ---- shared by the VIMs analyze knows (analyze_nova.h) ---- */

#define ANALYZE_EXIT_OK 0
#define ANALYZE_EXIT_FAILED 1
#define ANALYZE_EXIT_USAGE 2
#define ANALYZE_DEFAULT_PORT 4650

/* Where the frames come from: a capture file, or a live capture on an interface. */
struct analyze_input {
	const char *file;
	struct analyze_capture {
		const char *iface; /* live capture (root or CAP_NET_RAW) */
		const char *write; /* keep the live capture in this pcap file (NULL: not kept) */
		double duration;   /* seconds; 0: until SIGINT or SIGTERM */
	} cap;
};

/* What the command line asked for. */
struct analyze_job {
	struct analyze_input in;
	const char *out;   /* records: .jsonl or .csv (NULL: none) */
	int port;          /* microvim: the core's port */
	const char *ports; /* nova: SERVICE=PORT,... (NULL: the defaults) */
	bool quiet;        /* no summary */
	bool events;       /* nova: print each instance's messages in time order */
};

/* Reads in->file into reader, or captures live what the BPF expression `filter` lets
 * through; finishes the reader either way. 0, or -1 (said why) when nothing could be read;
 * a file damaged part-way is read up to the damage, said, and is 0. */
int analyze_feed(const struct analyze_input *in, const char *filter, struct pcapread *reader);

int analyze_main(int argc, char **argv);

#endif
