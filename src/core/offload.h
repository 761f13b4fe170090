/* offload — CPU work that must not hold the event loop (a password's PBKDF2: ~0.1-0.3 s),
 * run on a thread of its own; its result comes back to the loop as an event. At most
 * OFFLOAD_MAX jobs at once, so that a flood of logins costs a bounded share of the CPU
 * and no unbounded threads: past it offload_run refuses and the caller answers 503. */
#ifndef MICROVIM_OFFLOAD_H
#define MICROVIM_OFFLOAD_H

#include <event2/event.h>

#define OFFLOAD_MAX 4

struct offload;

struct offload *offload_new(struct event_base *base);
/* Waits for the jobs still running and calls their done (on the loop's thread), then
 * frees: call it while what the jobs' done uses still exists. */
void offload_free(struct offload *o);
/* work(arg) on a thread, then done(arg) on the loop. -1 (nothing started) when OFFLOAD_MAX
 * jobs run already or no thread could be made. */
int offload_run(struct offload *o, void (*work)(void *arg), void (*done)(void *arg), void *arg);

#endif
