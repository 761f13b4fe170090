/* domevents — names of domains that ended, handed from a toolstack's own thread (libvirt's
 * event loop) to the node's loop: a mutex-protected queue and an eventfd that is readable
 * while the queue holds something, the same shape as the worker pool's finished jobs.
 *
 * The queue is bounded: a node that falls far behind does not make the toolstack's thread
 * allocate without end. When it is full the names are dropped and replaced by one "sweep"
 * (popped as ""): "domains may have ended unseen, ask each one". A sweep is also what the
 * watcher pushes when its events come back after an outage. */
#ifndef MICROVIM_DOMEVENTS_H
#define MICROVIM_DOMEVENTS_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#define DOMEVENTS_NAME_MAX 63

struct domevents {
	pthread_mutex_t lock;
	int efd;                /* readable while something is queued; -1 when not initialised */
	bool signalled;         /* efd holds a count */
	size_t cap, head, len;  /* ring of cap names */
	char (*names)[DOMEVENTS_NAME_MAX + 1];
	bool sweep;             /* popped after the names */
};

/* cap names at most (> 0). 0 or -errno. */
int domevents_init(struct domevents *q, size_t cap);
void domevents_free(struct domevents *q);
/* Any thread. A name longer than DOMEVENTS_NAME_MAX is not a domain of ours: ignored. */
void domevents_push(struct domevents *q, const char *domain);
void domevents_push_sweep(struct domevents *q);
/* The next name ("" for a sweep) into domain; false when nothing is queued. */
bool domevents_pop(struct domevents *q, char *domain, size_t len);

#endif
