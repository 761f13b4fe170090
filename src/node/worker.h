/* worker — a small thread pool for driver calls that block (posix_spawn of a large
 * binary, xl create, a libvirt call). Work runs on a thread; its completion runs back on
 * the node's event loop, signalled through an eventfd. The loop itself never blocks. */
#ifndef MICROVIM_WORKER_H
#define MICROVIM_WORKER_H

#include <event2/event.h>

struct worker_pool;

typedef void worker_fn(void *arg);

/* threads <= 0: 16 per online CPU, at most 64. NULL with errno set on failure. */
struct worker_pool *worker_pool_new(struct event_base *base, int threads);
/* work(arg) on a worker thread, then done(arg) on the loop. */
void worker_submit(struct worker_pool *p, worker_fn *work, worker_fn *done, void *arg);
/* The same, ahead of every job waiting: a short call that ends something (a stop's signal)
 * should not wait behind the starts queued meanwhile. */
void worker_submit_first(struct worker_pool *p, worker_fn *work, worker_fn *done, void *arg);
/* work(arg) on a worker thread when no other job waits, and nothing on the loop after it
 * (work owns arg): clean-up nobody waits for, which must not delay a start. */
void worker_submit_background(struct worker_pool *p, worker_fn *work, void *arg);
/* Waits for queued work to finish (background jobs included; runs the done callbacks),
 * then stops the threads. */
void worker_pool_free(struct worker_pool *p);

#endif
