/* The node's worker pool (node/worker.h): the order a free worker takes queued jobs in —
 * a stop ahead of the starts (worker_submit_first), clean-up only when nothing else waits
 * (worker_submit_background) — and that freeing the pool runs what was queued. */
#include <errno.h>
#include <event2/event.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>

#include "node/worker.h"
#include "unit.h"

#define BLOCKERS 4 /* the pool's least number of threads: all held but one */

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static sem_t release[BLOCKERS];
static int started;
static char order[16];
static int n_order, n_done;

static void deadline_in(struct timespec *ts, int seconds)
{
	clock_gettime(CLOCK_REALTIME, ts);
	ts->tv_sec += seconds;
}

static void blocker_work(void *arg)
{
	struct timespec ts;
	pthread_mutex_lock(&lock);
	started++;
	pthread_mutex_unlock(&lock);
	deadline_in(&ts, 10); /* bounded: a test that goes wrong ends, it does not hang */
	while (sem_timedwait(&release[*(int *)arg], &ts) < 0 && errno == EINTR)
		;
}

static void record_work(void *arg)
{
	pthread_mutex_lock(&lock);
	if (n_order < (int)sizeof order - 1)
		order[n_order++] = *(const char *)arg;
	pthread_mutex_unlock(&lock);
}

static void count_done(void *arg)
{
	(void)arg;
	n_done++; /* on the loop's thread (here: worker_pool_free's caller) */
}

/* Polls cond (under lock) every ms for at most 5 s. */
static bool wait_for(bool (*cond)(void))
{
	struct timespec ms = {0, 1000000};
	for (int i = 0; i < 5000; i++) {
		pthread_mutex_lock(&lock);
		bool ok = cond();
		pthread_mutex_unlock(&lock);
		if (ok)
			return true;
		nanosleep(&ms, NULL);
	}
	return false;
}

static bool all_started(void) { return started == BLOCKERS; }
static bool four_ran(void) { return n_order == 4; }

static void test_order(void)
{
	struct event_base *base = event_base_new();
	struct worker_pool *p = worker_pool_new(base, BLOCKERS);
	static int ids[BLOCKERS];
	static const char a = 'A', b = 'B', c = 'C', d = 'D';
	CHECK(p != NULL);
	if (!p)
		return;
	for (int i = 0; i < BLOCKERS; i++) {
		ids[i] = i;
		sem_init(&release[i], 0, 0);
		worker_submit(p, blocker_work, count_done, &ids[i]);
	}
	CHECK(wait_for(all_started));
	/* every worker is busy: these wait in the queue */
	worker_submit(p, record_work, count_done, (void *)&a);
	worker_submit_background(p, record_work, (void *)&b);
	worker_submit_first(p, record_work, count_done, (void *)&c);
	worker_submit(p, record_work, count_done, (void *)&d);
	sem_post(&release[0]); /* one worker free: it takes them one at a time */
	CHECK(wait_for(four_ran));
	CHECK_STR(order, "CADB");
	for (int i = 1; i < BLOCKERS; i++)
		sem_post(&release[i]);
	worker_pool_free(p); /* runs the done callbacks still due: the background job has none */
	CHECK_EQ_INT(n_done, BLOCKERS + 3);
	for (int i = 0; i < BLOCKERS; i++)
		sem_destroy(&release[i]);
	event_base_free(base);
}

int main(void)
{
	RUN(test_order);
	UNIT_END();
}
