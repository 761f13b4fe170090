/* record — one line per instance, written by push and spawn-baseline with --out FILE:
 * JSON Lines when FILE ends in ".jsonl", CSV (with a header line) when it ends in ".csv".
 *
 * Fields, in this order (times in ms with µs precision unless named _us):
 *   id                 instance id (spawn-baseline: the child's pid)
 *   intended_send_us   when the request was due, µs after the run started
 *   actual_send_us     when it was handed to the connection, µs after the run started
 *   accept, schedule, dispatch, prepare, network, spawn, boot, notify
 *                      the instance's phase trace from the core (every phase of trace.h)
 *   artifact, environment, config, call
 *                      (push and spawn-baseline) the node's steps of prepare and spawn
 *                      (trace.steps; null when the node did not measure them)
 *   stop, cleanup      (push with deletion) the node's steps of the stop: asked -> ended,
 *                      then the clean-up (trace.stop_steps; null without them)
 *   total_ms           client-measured: intended send -> "running" seen (with a ready
 *                      marker: "ready" seen; null when the guest never printed it, as
 *                      that wait is the guest's, not the VIM's)
 *   core_total_ms      the core's own total (first byte -> waiting clients woken)
 *   overhead_ms        total_ms - spawn - boot: the VIM's part, seen from the client; only
 *                      for an instantiation that finished (running, and ready if asked)
 *   state              the instance's final state ("running", "failed", ...), or "error"
 *                      when the core refused or did not answer
 *   error              why, when it did not reach running ("" otherwise)
 * A value that does not exist (a phase never reached, no boot phase) is null in JSON
 * and an empty cell in CSV. */
#ifndef MICROVIM_RECORD_H
#define MICROVIM_RECORD_H

#include <stdint.h>
#include <stdio.h>

#include "common/trace.h"

enum record_format { RECORD_JSONL, RECORD_CSV };

struct record {
	char id[72];
	int64_t intended_send_us, actual_send_us;
	double phase_ms[PHASE_COUNT]; /* NaN when absent */
	double step_ms[STEP_COUNT];   /* NaN when absent */
	double stop_step_ms[STOP_STEP_COUNT]; /* NaN when absent */
	double total_ms, core_total_ms, overhead_ms; /* NaN when absent */
	char state[24];
	char error[256];
};

/* A record with every number NaN and empty strings. */
void record_init(struct record *r);

struct record_writer {
	FILE *f;
	enum record_format format;
};

/* Format from the file name: ".jsonl" or ".csv"; -EINVAL for anything else. */
int record_format_of(const char *path, enum record_format *fmt);
/* Creates (truncates) path and, for CSV, writes the header. 0 or -errno. */
int record_open(struct record_writer *w, const char *path);
/* Writes one record as one line. 0 or -errno. */
int record_write(struct record_writer *w, const struct record *r);

/* The pieces of the formats, for tools that add columns (analyze): ms with µs precision
 * (NaN -> null), a CSV number (NaN -> empty), a CSV string quoted as RFC 4180 says. */
json_t *record_json_ms(double v);
void record_csv_number(FILE *f, double v);
void record_csv_string(FILE *f, const char *s);
/* A JSONL line in two steps, so a tool can add its fields between: the head (id, send
 * times, phases), then the tail (totals, state, error) written as one line to f. The
 * finish takes o. 0 or -ENOMEM. */
json_t *record_json_head(const struct record *r);
int record_json_finish(FILE *f, json_t *o, const struct record *r);
/* o as one JSONL line to f (compact, in insertion order); takes o. 0 or -ENOMEM/-EIO. */
int record_json_line(FILE *f, json_t *o);
/* A whole file of rows for tools with columns of their own (analyze): path's name says
 * the format (record_format_of); for CSV, header(f, ctx) writes the header line first;
 * then row(f, fmt, i, ctx) writes row i as one line. 0, -EINVAL (the name), or -errno. */
typedef void record_header_fn(FILE *f, const void *ctx);
typedef int record_row_fn(FILE *f, enum record_format fmt, size_t i, const void *ctx);
int record_file_write(const char *path, record_header_fn *header, record_row_fn *row, size_t n, const void *ctx);
/* Flushes and closes; 0 or -errno (a failed write shows here too). */
int record_close(struct record_writer *w);

#endif
