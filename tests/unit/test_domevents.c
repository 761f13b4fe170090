/* test_domevents — the queue that carries ended domains from libvirt's event thread to the
 * node's loop: order, the descriptor readable exactly while something is queued, a full queue
 * turned into one sweep, names that cannot be ours ignored, and pushes from other threads. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "drivers/domevents.h"
#include "unit.h"

static bool readable(const struct domevents *q)
{
	struct pollfd p = {.fd = q->efd, .events = POLLIN};
	return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

static void test_order_and_readiness(void)
{
	struct domevents q;
	char name[64];
	CHECK_EQ_INT(domevents_init(&q, 4), 0);
	CHECK(!readable(&q));
	CHECK(!domevents_pop(&q, name, sizeof name));
	domevents_push(&q, "mv-a");
	domevents_push(&q, "mv-b");
	CHECK(readable(&q));
	CHECK(domevents_pop(&q, name, sizeof name));
	CHECK_STR(name, "mv-a");
	CHECK(readable(&q)); /* one left */
	CHECK(domevents_pop(&q, name, sizeof name));
	CHECK_STR(name, "mv-b");
	CHECK(!readable(&q));
	CHECK(!domevents_pop(&q, name, sizeof name));
	/* the ring wraps */
	for (int round = 0; round < 3; round++) {
		domevents_push(&q, "mv-1");
		domevents_push(&q, "mv-2");
		domevents_push(&q, "mv-3");
		CHECK(domevents_pop(&q, name, sizeof name) && strcmp(name, "mv-1") == 0);
		CHECK(domevents_pop(&q, name, sizeof name) && strcmp(name, "mv-2") == 0);
		CHECK(domevents_pop(&q, name, sizeof name) && strcmp(name, "mv-3") == 0);
	}
	CHECK(!readable(&q));
	domevents_free(&q);
	domevents_free(&q); /* twice is harmless */
}

static void test_sweep(void)
{
	struct domevents q;
	char name[64];
	CHECK_EQ_INT(domevents_init(&q, 4), 0);
	domevents_push_sweep(&q);
	domevents_push_sweep(&q); /* one sweep covers both */
	domevents_push(&q, "mv-x");
	CHECK(readable(&q));
	CHECK(domevents_pop(&q, name, sizeof name));
	CHECK_STR(name, "mv-x"); /* names first: they end instances without asking */
	CHECK(domevents_pop(&q, name, sizeof name));
	CHECK_STR(name, "");
	CHECK(!domevents_pop(&q, name, sizeof name));
	CHECK(!readable(&q));
	domevents_free(&q);
}

static void test_full_becomes_a_sweep(void)
{
	struct domevents q;
	char name[64];
	CHECK_EQ_INT(domevents_init(&q, 3), 0);
	for (int i = 0; i < 5; i++) {
		char n[16];
		snprintf(n, sizeof n, "mv-%d", i);
		domevents_push(&q, n);
	}
	/* mv-0..2 filled it, mv-3 found it full: all dropped for a sweep; mv-4 queued after */
	CHECK(domevents_pop(&q, name, sizeof name));
	CHECK_STR(name, "mv-4");
	CHECK(domevents_pop(&q, name, sizeof name));
	CHECK_STR(name, "");
	CHECK(!domevents_pop(&q, name, sizeof name));
	domevents_free(&q);
}

static void test_not_ours(void)
{
	struct domevents q;
	char name[64], long_name[DOMEVENTS_NAME_MAX + 2];
	memset(long_name, 'a', sizeof long_name - 1);
	long_name[sizeof long_name - 1] = '\0';
	CHECK_EQ_INT(domevents_init(&q, 2), 0);
	domevents_push(&q, long_name); /* longer than any handle's domain name */
	domevents_push(&q, "");        /* "" means a sweep: only push_sweep makes one */
	CHECK(!readable(&q));
	CHECK(!domevents_pop(&q, name, sizeof name));
	domevents_free(&q);
	CHECK_EQ_INT(domevents_init(&q, 0), -EINVAL);
	domevents_free(&q); /* after a failed init too */
}

#define PUSHERS 4
#define PER_PUSHER 500

static struct domevents shared;

static void *pusher(void *arg)
{
	char n[32];
	for (int i = 0; i < PER_PUSHER; i++) {
		snprintf(n, sizeof n, "mv-%ld-%d", (long)arg, i);
		domevents_push(&shared, n);
	}
	return NULL;
}

static void test_threads(void)
{
	pthread_t t[PUSHERS];
	char name[64];
	int got = 0, sweeps = 0;
	CHECK_EQ_INT(domevents_init(&shared, PUSHERS * PER_PUSHER), 0);
	for (long i = 0; i < PUSHERS; i++)
		pthread_create(&t[i], NULL, pusher, (void *)i);
	/* the consumer drains while they push, as the node's loop would */
	for (int spins = 0; got < PUSHERS * PER_PUSHER && spins < 1000000; spins++) {
		struct pollfd p = {.fd = shared.efd, .events = POLLIN};
		if (poll(&p, 1, 100) != 1)
			continue;
		while (domevents_pop(&shared, name, sizeof name))
			name[0] ? got++ : sweeps++;
	}
	for (int i = 0; i < PUSHERS; i++)
		pthread_join(t[i], NULL);
	while (domevents_pop(&shared, name, sizeof name))
		name[0] ? got++ : sweeps++;
	CHECK_EQ_INT(got, PUSHERS * PER_PUSHER);
	CHECK_EQ_INT(sweeps, 0);
	CHECK(!readable(&shared));
	domevents_free(&shared);
}

int main(void)
{
	RUN(test_order_and_readiness);
	RUN(test_sweep);
	RUN(test_full_becomes_a_sweep);
	RUN(test_not_ours);
	RUN(test_threads);
	UNIT_END();
}
