/* corelist — the cores a client or a node talks to, and how it fails over among them.
 *
 * `--core URL1,URL2,...` (and $MICROVIM_CORE) name several cores of one control plane
 * (cores over one PostgreSQL: any of them answers reads and takes creates and deletes; one
 * leads, and followers redirect node routes to it with 307). The rules, in one place:
 *
 *   - the list is tried from where it last answered: the first URL, then whichever answered;
 *   - no answer (refused, reset, timeout) or 502/503/504 from one core: the next one;
 *   - a whole round without a usable answer: wait (CORELIST_BACKOFF_*), go round again,
 *     for up to CORELIST_WINDOW_S (a leader's election and a core's restart take about a
 *     second or two); a list of one URL is tried once, as before there were lists;
 *   - 307 with a Location: followed once (the leader's URL, with or without a path);
 *   - a request is only retried when sending it again is safe: reads, deletes (idempotent
 *     by nature), and creates that carry an Idempotency-Key, kept the same on every try, so
 *     that a create the dead core committed is answered from its first result elsewhere.
 *
 * The list logic is pure (unit-tested); corelist_call is the synchronous client of the CLI
 * built on http_call. The node's agent applies the same rules on its event loop. */
#ifndef MICROVIM_CORELIST_H
#define MICROVIM_CORELIST_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "common/http.h"

#define CORELIST_MAX 16       /* URLs in one list */
#define CORELIST_URL_MAX 256  /* bytes of one URL */
#define CORELIST_WINDOW_S 15.0 /* how long a list of several cores is tried before giving up */
#define CORELIST_BACKOFF_MIN_S 0.1
#define CORELIST_BACKOFF_MAX_S 2.0
#define CORELIST_IDEM_KEY_LEN 32 /* hex characters of a generated Idempotency-Key */

struct corelist {
	char urls[CORELIST_MAX][CORELIST_URL_MAX];
	int n;
	int current;     /* the URL in use: the one that answered last */
	int round_start; /* where the present round of failures began */
};

/* Parses "URL1,URL2,..." (blanks around commas tolerated). Each URL is checked as a base
 * URL (http_check_base_url); 0, or -EINVAL with a sentence in err naming the bad entry and,
 * in a list, its position, e.g. "entry 2 of 2, \"127.0.0.1:4651\", lacks its scheme: use
 * http://127.0.0.1:4651 ...". An empty entry, duplicates and more than CORELIST_MAX URLs
 * are refused too. */
int corelist_parse(struct corelist *l, const char *text, char *err, size_t errlen);
const char *corelist_current(const struct corelist *l);
/* The present URL failed: move to the next one. True when that closes a round (every URL
 * failed since the last answer): the caller waits corelist_backoff_s before going on. */
bool corelist_advance(struct corelist *l);
/* The present URL answered: a later failure starts a new round from it. */
void corelist_answered(struct corelist *l);
/* The wait after the round-th (1, 2, ...) round without an answer: doubling, capped. */
double corelist_backoff_s(int round);
/* True when this outcome of a request means "ask another core": 0 (no answer), 502, 503
 * or 504. */
bool corelist_status_fails_over(int status);
/* A 307's Location as a base URL and the path to request there: a Location with a path
 * (and query) is taken whole; a bare base URL keeps the request's own path. 0, or -EINVAL
 * when Location is not an http(s)://HOST:PORT URL. */
int corelist_redirect(const char *location, const char *path, char *base, size_t baselen, char *newpath,
                      size_t pathlen);
/* A fresh Idempotency-Key: CORELIST_IDEM_KEY_LEN random hex characters. */
void corelist_idem_key(char out[CORELIST_IDEM_KEY_LEN + 1]);

/* One request to the list, with the rules above (a sleep between rounds: for the CLI and
 * the tools' set-up calls, never a daemon's loop). */
struct corelist_request {
	const char *method, *path, *token;
	const char *const *headers; /* name, value, ..., NULL (e.g. the Idempotency-Key) */
	const json_t *body;         /* JSON body, or NULL */
	const void *raw;            /* or a raw body (application/octet-stream) of raw_len bytes */
	size_t raw_len;
	double timeout_s;           /* of each try */
	const char *note;           /* prefix of a line on stderr for each failover ("microvim"); NULL: quiet */
};

/* 0 when an answer came (any status but the ones that fail over, or the last of those when
 * every core gave one), with the list left on the core that answered; -1 otherwise with a
 * sentence in err naming the cores tried. */
int corelist_call(struct corelist *l, const struct corelist_request *rq, struct http_response *resp, char *err,
                  size_t errlen);

#endif
