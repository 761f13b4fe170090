#include "drivers/domevents.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "common/log.h"

int domevents_init(struct domevents *q, size_t cap)
{
	memset(q, 0, sizeof *q);
	q->efd = -1;
	if (cap == 0)
		return -EINVAL;
	if (!(q->names = calloc(cap, sizeof *q->names)))
		return -ENOMEM;
	if ((q->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
		int rc = -errno;
		free(q->names);
		q->names = NULL;
		return rc;
	}
	q->cap = cap;
	pthread_mutex_init(&q->lock, NULL);
	return 0;
}

void domevents_free(struct domevents *q)
{
	if (q->efd < 0)
		return;
	close(q->efd);
	q->efd = -1;
	free(q->names);
	q->names = NULL;
	pthread_mutex_destroy(&q->lock);
}

/* Called with the lock held: makes efd readable once, however many are queued. */
static void signal_locked(struct domevents *q)
{
	uint64_t one = 1;
	if (q->signalled)
		return;
	if (write(q->efd, &one, sizeof one) != sizeof one)
		log_warn("domain events: eventfd write");
	else
		q->signalled = true;
}

/* Called with the lock held once the queue is empty: efd stops being readable. */
static void unsignal_locked(struct domevents *q)
{
	uint64_t n;
	if (!q->signalled)
		return;
	if (read(q->efd, &n, sizeof n) < 0 && errno != EAGAIN)
		log_warn("domain events: eventfd read");
	q->signalled = false;
}

void domevents_push(struct domevents *q, const char *domain)
{
	if (strlen(domain) > DOMEVENTS_NAME_MAX || !domain[0])
		return;
	pthread_mutex_lock(&q->lock);
	if (q->len == q->cap) {
		/* full: one sweep says at least as much as every name it replaces */
		q->len = 0;
		q->sweep = true;
	} else {
		snprintf(q->names[(q->head + q->len) % q->cap], sizeof q->names[0], "%s", domain);
		q->len++;
	}
	signal_locked(q);
	pthread_mutex_unlock(&q->lock);
}

void domevents_push_sweep(struct domevents *q)
{
	pthread_mutex_lock(&q->lock);
	q->sweep = true;
	signal_locked(q);
	pthread_mutex_unlock(&q->lock);
}

bool domevents_pop(struct domevents *q, char *domain, size_t len)
{
	bool got = true;
	pthread_mutex_lock(&q->lock);
	if (q->len > 0) {
		snprintf(domain, len, "%s", q->names[q->head]);
		q->head = (q->head + 1) % q->cap;
		q->len--;
	} else if (q->sweep) {
		snprintf(domain, len, "%s", "");
		q->sweep = false;
	} else {
		got = false;
	}
	if (q->len == 0 && !q->sweep)
		unsignal_locked(q);
	pthread_mutex_unlock(&q->lock);
	return got;
}
