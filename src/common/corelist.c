/* corelist — see corelist.h. */
#include "common/corelist.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "common/clock.h"

/* One entry, blanks around it trimmed, copied into out; its length, or -1 when too long. */
static int entry_copy(const char *start, size_t len, char *out, size_t outlen)
{
	while (len > 0 && (*start == ' ' || *start == '\t'))
		start++, len--;
	while (len > 0 && (start[len - 1] == ' ' || start[len - 1] == '\t'))
		len--;
	if (len >= outlen)
		return -1;
	memcpy(out, start, len);
	out[len] = '\0';
	return (int)len;
}

/* "entry 2 of 3, " in a list, nothing for a single URL: the message names the bad one. */
static void entry_fail(char *err, size_t errlen, int index, int total, const char *why)
{
	if (total > 1)
		snprintf(err, errlen, "entry %d of %d, %s", index + 1, total, why);
	else
		snprintf(err, errlen, "%s", why);
}

int corelist_parse(struct corelist *l, const char *text, char *err, size_t errlen)
{
	int total = 1;
	const char *p = text;
	memset(l, 0, sizeof *l);
	for (const char *c = text; *c; c++)
		total += *c == ',';
	if (total > CORELIST_MAX) {
		snprintf(err, errlen, "%d core URLs given; a list holds at most %d", total, CORELIST_MAX);
		return -EINVAL;
	}
	for (int i = 0; i < total; i++) {
		const char *end = strchr(p, ',');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		char why[400], *url = l->urls[i];
		int n = entry_copy(p, len, url, CORELIST_URL_MAX);
		if (n < 0) {
			snprintf(why, sizeof why, "a URL longer than %d bytes", CORELIST_URL_MAX - 1);
			entry_fail(err, errlen, i, total, why);
			return -EINVAL;
		}
		if (n == 0) {
			entry_fail(err, errlen, i, total,
			           "is empty: give URLs separated by single commas, e.g. http://10.0.0.1:4650,http://10.0.0.2:4650");
			return -EINVAL;
		}
		if (http_check_base_url(url, why, sizeof why) < 0) {
			entry_fail(err, errlen, i, total, why);
			return -EINVAL;
		}
		for (int k = 0; k < i; k++)
			if (strcmp(l->urls[k], url) == 0) {
				snprintf(why, sizeof why, "\"%s\", is entry %d again: give each core once", url, k + 1);
				entry_fail(err, errlen, i, total, why);
				return -EINVAL;
			}
		p = end ? end + 1 : p + len;
	}
	l->n = total;
	return 0;
}

const char *corelist_current(const struct corelist *l) { return l->urls[l->current]; }

bool corelist_advance(struct corelist *l)
{
	l->current = (l->current + 1) % l->n;
	return l->current == l->round_start;
}

void corelist_answered(struct corelist *l) { l->round_start = l->current; }

double corelist_backoff_s(int round)
{
	double s = CORELIST_BACKOFF_MIN_S;
	for (int i = 1; i < round && s < CORELIST_BACKOFF_MAX_S; i++)
		s *= 2;
	return s > CORELIST_BACKOFF_MAX_S ? CORELIST_BACKOFF_MAX_S : s;
}

bool corelist_status_fails_over(int status) { return status == 0 || status == 502 || status == 503 || status == 504; }

int corelist_redirect(const char *location, const char *path, char *base, size_t baselen, char *newpath,
                      size_t pathlen)
{
	const char *scheme_end = strstr(location, "://"), *slash;
	char host[256];
	int port, n;
	if (!scheme_end)
		return -EINVAL;
	slash = strchr(scheme_end + 3, '/');
	n = slash ? (int)(slash - location) : (int)strlen(location);
	if (n <= 0 || (size_t)n >= baselen)
		return -EINVAL;
	memcpy(base, location, (size_t)n);
	base[n] = '\0';
	if (http_parse_url(base, host, sizeof host, &port) < 0)
		return -EINVAL;
	/* "http://leader:4650/" is a base URL too: its lone slash is no path */
	n = snprintf(newpath, pathlen, "%s", slash && slash[1] ? slash : path);
	return n < 0 || (size_t)n >= pathlen ? -EINVAL : 0;
}

void corelist_idem_key(char out[CORELIST_IDEM_KEY_LEN + 1])
{
	unsigned char rnd[CORELIST_IDEM_KEY_LEN / 2];
	if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) {
		/* no entropy source: time and address still make a key unique enough per client */
		uint64_t t = (uint64_t)clock_wall_us() ^ (uint64_t)(uintptr_t)out;
		for (size_t i = 0; i < sizeof rnd; i++)
			rnd[i] = (unsigned char)(t >> (8 * (i % 8))) ^ (unsigned char)(i * 37);
	}
	for (size_t i = 0; i < sizeof rnd; i++)
		snprintf(out + 2 * i, 3, "%02x", rnd[i]);
}

/* ---- the synchronous client ---- */

static int send_one(const char *base, const char *path, const struct corelist_request *rq,
                    struct http_response *resp, char *err, size_t errlen)
{
	if (rq->raw)
		return http_call_raw(base, rq->method, path, rq->token, rq->raw, rq->raw_len, rq->timeout_s, resp, err,
		                     errlen);
	return http_call(base, rq->method, path, rq->token, rq->headers, rq->body, rq->timeout_s, resp, err, errlen);
}

/* One try at the present core, with one 307 followed. */
static int try_current(struct corelist *l, const struct corelist_request *rq, struct http_response *resp, char *err,
                       size_t errlen)
{
	char base[CORELIST_URL_MAX], path[2048];
	if (send_one(corelist_current(l), rq->path, rq, resp, err, errlen) < 0)
		return -1;
	if (resp->status != 307 || !resp->location)
		return 0;
	if (corelist_redirect(resp->location, rq->path, base, sizeof base, path, sizeof path) < 0) {
		snprintf(err, errlen, "%s redirected to \"%.200s\", which is not a core's URL", corelist_current(l),
		         resp->location);
		http_response_free(resp);
		resp->status = 0;
		return -1;
	}
	http_response_free(resp);
	return send_one(base, path, rq, resp, err, errlen);
}

static void sleep_s(double s)
{
	struct timespec ts = {.tv_sec = (time_t)s, .tv_nsec = (long)((s - (double)(time_t)s) * 1e9)};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

int corelist_call(struct corelist *l, const struct corelist_request *rq, struct http_response *resp, char *err,
                  size_t errlen)
{
	int64_t deadline = clock_mono_us() + (int64_t)(CORELIST_WINDOW_S * 1e6);
	struct http_response last = {0}; /* the last 5xx answer, given when no core does better */
	int rounds = 0;
	char why[512];

	for (;;) {
		int rc = try_current(l, rq, resp, why, sizeof why);
		const char *failed = corelist_current(l);
		if (rc == 0 && !corelist_status_fails_over(resp->status)) {
			corelist_answered(l);
			http_response_free(&last);
			return 0;
		}
		if (rc == 0) { /* 502/503/504: kept, in case no core does better */
			http_response_free(&last);
			last = *resp;
			memset(resp, 0, sizeof *resp);
			snprintf(why, sizeof why, "%s answered %d", failed, last.status);
		}
		if (l->n == 1)
			break;
		if (!corelist_advance(l)) {
			if (rq->note && rounds == 0)
				fprintf(stderr, "%s: %s; trying %s\n", rq->note, why, corelist_current(l));
			continue;
		}
		/* a whole round failed: the cores may be electing a leader or restarting */
		rounds++;
		if (clock_mono_us() + (int64_t)(corelist_backoff_s(rounds) * 1e6) > deadline)
			break;
		if (rq->note && rounds == 1)
			fprintf(stderr, "%s: %s; no core answered: trying the list again for up to %.0f s\n", rq->note, why,
			        CORELIST_WINDOW_S);
		sleep_s(corelist_backoff_s(rounds));
	}
	if (last.status) {
		*resp = last;
		return 0;
	}
	if (l->n == 1)
		snprintf(err, errlen, "%s", why);
	else
		snprintf(err, errlen, "no core of the %d in the list answered within %.0f s (the last: %s)", l->n,
		         CORELIST_WINDOW_S, why);
	return -1;
}
