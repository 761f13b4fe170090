#include "node/worker.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "common/log.h"

#define WORKER_THREADS_PER_CPU 16
#define WORKER_THREADS_MAX 64 /* the drivers' spawner threads match (drivers/proc.c) */

struct job {
	worker_fn *work, *done;
	void *arg;
	struct job *next;
};

struct job_queue {
	struct job *head, *tail;
};

struct worker_pool {
	pthread_mutex_t lock;
	pthread_cond_t wake;
	struct job_queue todo, finished;
	struct job_queue later; /* background jobs: taken only when todo is empty */
	int pending; /* submitted, done callback not yet run */
	bool stopping;
	int n_threads;
	pthread_t *threads;
	int efd;
	struct event *ev;
};

static void push(struct job_queue *q, struct job *j)
{
	j->next = NULL;
	if (q->tail)
		q->tail->next = j;
	else
		q->head = j;
	q->tail = j;
}

static struct job *pop(struct job_queue *q)
{
	struct job *j = q->head;
	if (j && !(q->head = j->next))
		q->tail = NULL;
	return j;
}

static void *worker_main(void *arg)
{
	struct worker_pool *p = arg;
	uint64_t one = 1;
	for (;;) {
		struct job *j;
		pthread_mutex_lock(&p->lock);
		while (!p->todo.head && !p->later.head && !p->stopping)
			pthread_cond_wait(&p->wake, &p->lock);
		if (!(j = pop(&p->todo)))
			j = pop(&p->later);
		pthread_mutex_unlock(&p->lock);
		if (!j)
			return NULL; /* stopping and nothing left */
		j->work(j->arg);
		if (!j->done) { /* a background job: nothing to run on the loop, no wake-up */
			free(j);
			continue;
		}
		pthread_mutex_lock(&p->lock);
		push(&p->finished, j);
		pthread_mutex_unlock(&p->lock);
		if (write(p->efd, &one, sizeof one) != sizeof one)
			log_warn("worker: eventfd write");
	}
}

/* Runs the done callbacks of finished jobs on the loop. */
static void run_finished(struct worker_pool *p)
{
	for (;;) {
		struct job *j;
		pthread_mutex_lock(&p->lock);
		j = pop(&p->finished);
		pthread_mutex_unlock(&p->lock);
		if (!j)
			return;
		p->pending--;
		j->done(j->arg);
		free(j);
	}
}

static void on_finished(UNUSED evutil_socket_t fd, UNUSED short what, void *arg)
{
	struct worker_pool *p = arg;
	uint64_t n;
	if (read(p->efd, &n, sizeof n) < 0 && errno != EAGAIN)
		log_warn("worker: eventfd read");
	run_finished(p);
}

struct worker_pool *worker_pool_new(struct event_base *base, int threads)
{
	struct worker_pool *p = calloc(1, sizeof *p);
	sigset_t all, old;
	if (!p)
		fatal("calloc");
	/* Driver calls mostly wait (exec in the kernel, a toolstack, a disk): more threads than
	 * CPUs keep the CPUs busy while some wait. A start holds its worker for the whole call,
	 * so the pool is the node's start concurrency: with 4 per CPU, 64 clients on a busy host
	 * queued ~0.7 s for a worker while each posix_spawn took ~0.1 s in the kernel, and the
	 * node started a quarter of what 64 bare threads spawn (BENCHMARKS.md, "The overhead
	 * floor"). Idle threads cost a stack of address space each, no CPU. */
	if (threads <= 0)
		threads = WORKER_THREADS_PER_CPU * (int)sysconf(_SC_NPROCESSORS_ONLN);
	if (threads > WORKER_THREADS_MAX)
		threads = WORKER_THREADS_MAX;
	if (threads < 4)
		threads = 4;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->wake, NULL);
	p->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (p->efd < 0) {
		free(p);
		return NULL;
	}
	p->ev = event_new(base, p->efd, EV_READ | EV_PERSIST, on_finished, p);
	event_add(p->ev, NULL);
	p->threads = calloc((size_t)threads, sizeof *p->threads);
	/* Workers take no signals: those belong to the thread that waits for them. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	for (int i = 0; i < threads; i++) {
		if (pthread_create(&p->threads[i], NULL, worker_main, p) != 0)
			fatal("pthread_create");
		p->n_threads++;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return p;
}

void worker_submit(struct worker_pool *p, worker_fn *work, worker_fn *done, void *arg)
{
	struct job *j = calloc(1, sizeof *j);
	if (!j)
		fatal("calloc");
	*j = (struct job){.work = work, .done = done, .arg = arg};
	pthread_mutex_lock(&p->lock);
	push(&p->todo, j);
	p->pending++;
	pthread_cond_signal(&p->wake);
	pthread_mutex_unlock(&p->lock);
}

void worker_submit_first(struct worker_pool *p, worker_fn *work, worker_fn *done, void *arg)
{
	struct job *j = calloc(1, sizeof *j);
	if (!j)
		fatal("calloc");
	*j = (struct job){.work = work, .done = done, .arg = arg};
	pthread_mutex_lock(&p->lock);
	if (!(j->next = p->todo.head))
		p->todo.tail = j;
	p->todo.head = j;
	p->pending++;
	pthread_cond_signal(&p->wake);
	pthread_mutex_unlock(&p->lock);
}

void worker_submit_background(struct worker_pool *p, worker_fn *work, void *arg)
{
	struct job *j = calloc(1, sizeof *j);
	if (!j)
		fatal("calloc");
	*j = (struct job){.work = work, .arg = arg};
	pthread_mutex_lock(&p->lock);
	push(&p->later, j);
	pthread_cond_signal(&p->wake);
	pthread_mutex_unlock(&p->lock);
}

void worker_pool_free(struct worker_pool *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	p->stopping = true;
	pthread_cond_broadcast(&p->wake);
	pthread_mutex_unlock(&p->lock);
	for (int i = 0; i < p->n_threads; i++)
		pthread_join(p->threads[i], NULL);
	/* A done callback run here may submit more work (a start that ended during the
	 * shutdown queues its record): with the threads gone, it runs here, so that nothing
	 * submitted is lost or leaked. Bounded: each round runs what the previous one queued. */
	for (;;) {
		struct job *j;
		run_finished(p);
		if (!(j = pop(&p->todo)) && !(j = pop(&p->later)))
			break;
		j->work(j->arg);
		if (j->done)
			push(&p->finished, j);
		else
			free(j);
	}
	event_free(p->ev);
	close(p->efd);
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->wake);
	free(p->threads);
	free(p);
}
