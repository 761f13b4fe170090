/* offload — work on a thread, its end as an event on the loop (offload.h). The loop's
 * libevent is thread-safe (the daemons call evthread_use_pthreads), so a thread may
 * event_active() the job's event. */
#include "core/offload.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include "common/log.h"

struct job {
	struct offload *o;
	void (*work)(void *);
	void (*done)(void *);
	void *arg;
	struct event *ev;
	pthread_t thread;
	bool used;
};

struct offload {
	struct event_base *base;
	struct job jobs[OFFLOAD_MAX];
};

struct offload *offload_new(struct event_base *base)
{
	struct offload *o = calloc(1, sizeof *o);
	if (!o)
		fatal("calloc");
	o->base = base;
	return o;
}

static void *run(void *arg)
{
	struct job *j = arg;
	j->work(j->arg);
	event_active(j->ev, EV_TIMEOUT, 0);
	return NULL;
}

/* On the loop: the thread has finished its work. */
static void finished(UNUSED evutil_socket_t fd, UNUSED short what, void *arg)
{
	struct job *j = arg;
	pthread_join(j->thread, NULL);
	event_free(j->ev);
	j->used = false;
	j->done(j->arg);
}

int offload_run(struct offload *o, void (*work)(void *arg), void (*done)(void *arg), void *arg)
{
	struct job *j = NULL;
	for (int i = 0; i < OFFLOAD_MAX && !j; i++)
		if (!o->jobs[i].used)
			j = &o->jobs[i];
	if (!j)
		return -1;
	*j = (struct job){.o = o, .work = work, .done = done, .arg = arg, .used = true};
	if (!(j->ev = event_new(o->base, -1, 0, finished, j)))
		fatal("event_new");
	if (pthread_create(&j->thread, NULL, run, j) != 0) {
		event_free(j->ev);
		j->used = false;
		return -1;
	}
	return 0;
}

void offload_free(struct offload *o)
{
	if (!o)
		return;
	for (int i = 0; i < OFFLOAD_MAX; i++) {
		struct job *j = &o->jobs[i];
		if (!j->used)
			continue;
		pthread_join(j->thread, NULL);
		event_free(j->ev);
		j->used = false;
		j->done(j->arg); /* its client gets its answer; what it holds is freed */
	}
	free(o);
}
