/* corelink — which core a node talks to, of the cores its --core lists (common/corelist.h):
 * the one in use, or the leader a follower redirected it to (307 Location). The agent and
 * the simulated nodes keep their connections on link->url; when it changes, gen does, and
 * they make new connections and register there, with their alive instances (the same
 * re-registration as after a core's restart: nothing is stopped or started again).
 *
 * The rules: a list of one URL never moves (the node backs off and tries that core again,
 * as before lists); with several, no answer or 502/503/504 moves to the next entry at once,
 * and a round of failures since the last answer waits corelist_backoff_s first. */
#ifndef MICROVIM_CORELINK_H
#define MICROVIM_CORELINK_H

#include <stdbool.h>

#include "common/corelist.h"

struct corelink {
	struct corelist list;
	char url[CORELIST_URL_MAX]; /* in use: an entry of the list, or a Location */
	char host[256];
	int port;
	unsigned gen;   /* changes with url */
	int rounds;     /* rounds of failures since the last answer */
};

/* The list as --core gave it (already checked by the command line; checked again). 0, or
 * -EINVAL with words in err. */
int corelink_init(struct corelink *l, const char *list, char *err, size_t errlen);
/* The core in use gave no answer or 502/503/504. True when the link moved to another core
 * (with *delay_s to wait before using it); false when there is no other (a list of one). */
bool corelink_failed(struct corelink *l, double *delay_s);
/* A 307 to location: the link moves there. 0, or -EINVAL when it is no core's URL or the
 * core in use itself (the caller treats that as a failure). */
int corelink_redirect(struct corelink *l, const char *location);
/* The core in use answered (a registration was taken). */
void corelink_answered(struct corelink *l);
/* The scheme of every entry: true when all are https://, false when all are http://;
 * -EINVAL in *mixed when they differ. */
bool corelink_tls(const struct corelink *l, bool *mixed);

#endif
