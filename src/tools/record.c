#include "tools/record.h"

#include <errno.h>
#include <jansson.h>
#include <math.h> /* NAN, isnan: macros only */
#include <stdlib.h>
#include <string.h>

void record_init(struct record *r)
{
	memset(r, 0, sizeof *r);
	for (int p = 0; p < PHASE_COUNT; p++)
		r->phase_ms[p] = NAN;
	for (int s = 0; s < STEP_COUNT; s++)
		r->step_ms[s] = NAN;
	for (int s = 0; s < STOP_STEP_COUNT; s++)
		r->stop_step_ms[s] = NAN;
	r->total_ms = r->core_total_ms = r->overhead_ms = NAN;
}

static int has_suffix(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);
	return n > k && strcmp(s + n - k, suffix) == 0;
}

int record_format_of(const char *path, enum record_format *fmt)
{
	if (has_suffix(path, ".jsonl"))
		*fmt = RECORD_JSONL;
	else if (has_suffix(path, ".csv"))
		*fmt = RECORD_CSV;
	else
		return -EINVAL;
	return 0;
}

int record_open(struct record_writer *w, const char *path)
{
	w->f = NULL;
	if (record_format_of(path, &w->format) < 0)
		return -EINVAL;
	if (!(w->f = fopen(path, "w")))
		return -errno;
	if (w->format == RECORD_CSV) {
		fprintf(w->f, "id,intended_send_us,actual_send_us");
		for (int p = 0; p < PHASE_COUNT; p++)
			fprintf(w->f, ",%s", phase_names[p]);
		for (int s = 0; s < STEP_COUNT; s++)
			fprintf(w->f, ",%s", step_names[s]);
		for (int s = 0; s < STOP_STEP_COUNT; s++)
			fprintf(w->f, ",%s", stop_step_names[s]);
		fprintf(w->f, ",total_ms,core_total_ms,overhead_ms,state,error\n");
	}
	return ferror(w->f) ? -EIO : 0;
}

json_t *record_json_ms(double v)
{
	/* ms with µs precision: round so that 0.1 + 0.2 does not print as 0.30000000000000004 */
	return isnan(v) ? json_null() : json_real((double)(int64_t)(v * 1000.0 + (v < 0 ? -0.5 : 0.5)) / 1000.0);
}

void record_csv_number(FILE *f, double v)
{
	if (!isnan(v))
		fprintf(f, "%.3f", v);
}

/* RFC 4180: quoted when it holds a comma, quote or line break; quotes doubled. */
void record_csv_string(FILE *f, const char *s)
{
	if (!strpbrk(s, ",\"\r\n")) {
		fputs(s, f);
		return;
	}
	fputc('"', f);
	for (; *s; s++) {
		if (*s == '"')
			fputc('"', f);
		fputc(*s, f);
	}
	fputc('"', f);
}

json_t *record_json_head(const struct record *r)
{
	json_t *o = json_object();
	json_object_set_new(o, "id", json_string(r->id));
	json_object_set_new(o, "intended_send_us", json_integer(r->intended_send_us));
	json_object_set_new(o, "actual_send_us", json_integer(r->actual_send_us));
	for (int p = 0; p < PHASE_COUNT; p++)
		json_object_set_new(o, phase_names[p], record_json_ms(r->phase_ms[p]));
	return o;
}

int record_json_line(FILE *f, json_t *o)
{
	char *line = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(12)) : NULL;
	int rc = 0;
	json_decref(o);
	if (!line)
		return -ENOMEM;
	if (fprintf(f, "%s\n", line) < 0)
		rc = -EIO;
	free(line);
	return rc;
}

int record_json_finish(FILE *f, json_t *o, const struct record *r)
{
	json_object_set_new(o, "total_ms", record_json_ms(r->total_ms));
	json_object_set_new(o, "core_total_ms", record_json_ms(r->core_total_ms));
	json_object_set_new(o, "overhead_ms", record_json_ms(r->overhead_ms));
	json_object_set_new(o, "state", json_string(r->state));
	json_object_set_new(o, "error", json_string(r->error));
	return record_json_line(f, o);
}

int record_file_write(const char *path, record_header_fn *header, record_row_fn *row, size_t n, const void *ctx)
{
	enum record_format fmt;
	FILE *f;
	int rc = 0;
	if (record_format_of(path, &fmt) < 0)
		return -EINVAL;
	if (!(f = fopen(path, "w")))
		return -errno;
	if (fmt == RECORD_CSV)
		header(f, ctx);
	for (size_t i = 0; i < n && rc == 0; i++)
		rc = row(f, fmt, i, ctx);
	if (rc == 0 && ferror(f))
		rc = -EIO;
	if (fclose(f) != 0 && rc == 0)
		rc = -errno;
	return rc;
}

int record_write(struct record_writer *w, const struct record *r)
{
	if (w->format == RECORD_JSONL) {
		json_t *o = record_json_head(r);
		int rc;
		for (int s = 0; s < STEP_COUNT; s++)
			json_object_set_new(o, step_names[s], record_json_ms(r->step_ms[s]));
		for (int s = 0; s < STOP_STEP_COUNT; s++)
			json_object_set_new(o, stop_step_names[s], record_json_ms(r->stop_step_ms[s]));
		if ((rc = record_json_finish(w->f, o, r)) < 0)
			return rc;
	} else {
		record_csv_string(w->f, r->id);
		fprintf(w->f, ",%lld,%lld", (long long)r->intended_send_us, (long long)r->actual_send_us);
		for (int p = 0; p < PHASE_COUNT; p++) {
			fputc(',', w->f);
			record_csv_number(w->f, r->phase_ms[p]);
		}
		for (int s = 0; s < STEP_COUNT; s++) {
			fputc(',', w->f);
			record_csv_number(w->f, r->step_ms[s]);
		}
		for (int s = 0; s < STOP_STEP_COUNT; s++) {
			fputc(',', w->f);
			record_csv_number(w->f, r->stop_step_ms[s]);
		}
		fputc(',', w->f);
		record_csv_number(w->f, r->total_ms);
		fputc(',', w->f);
		record_csv_number(w->f, r->core_total_ms);
		fputc(',', w->f);
		record_csv_number(w->f, r->overhead_ms);
		fputc(',', w->f);
		record_csv_string(w->f, r->state);
		fputc(',', w->f);
		record_csv_string(w->f, r->error);
		fputc('\n', w->f);
	}
	return ferror(w->f) ? -EIO : 0;
}

int record_close(struct record_writer *w)
{
	int rc = 0;
	if (!w->f)
		return 0;
	if (ferror(w->f))
		rc = -EIO;
	if (fclose(w->f) != 0 && rc == 0)
		rc = -errno;
	w->f = NULL;
	return rc;
}
