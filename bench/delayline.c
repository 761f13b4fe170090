/* delayline — a fixed one-way delay between pairs of TAP devices: a stand-in for
 * `tc qdisc add dev X root netem delay D` on kernels built without sch_netem (bench/netns
 * uses netem when the kernel has it, this otherwise).
 *
 *   delayline DELAY_US TAP_A TAP_B [TAP_C TAP_D ...]
 *
 * Creates the TAP devices (no packet information header, non-blocking), prints "ready" on
 * stdout once they exist (the caller then moves each into its network namespace and
 * configures it: the open descriptors follow the devices), and from then on forwards every
 * frame read from A to B and from B to A (and C <-> D ...) DELAY_US microseconds after it
 * was read, in order. It is the wire: each direction of each pair has its own queue, and a
 * frame leaves when its time comes (one timerfd, absolute CLOCK_MONOTONIC deadlines).
 *
 * Faithful to the microsecond only as far as the scheduler lets it: on exit (SIGTERM,
 * SIGINT) it prints how many frames it forwarded and dropped (queue full, or a frame over
 * 2 KiB), and how late they left: the mean and maximum lateness beyond DELAY_US. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define MAX_TAPS 8
#define SLOTS 4096
#define FRAME_MAX 2048

struct slot {
	int64_t due_ns;
	uint16_t len;
	uint8_t data[FRAME_MAX];
};

/* One direction: frames read from `from`, written to `to`. */
struct queue {
	int from, to;
	struct slot *ring;
	size_t head, n;
};

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int tap_open(const char *name)
{
	struct ifreq ifr;
	int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		perror("delayline: /dev/net/tun");
		exit(1);
	}
	memset(&ifr, 0, sizeof ifr);
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
	if (strlen(name) >= IFNAMSIZ) {
		fprintf(stderr, "delayline: %s: interface names are at most %d characters\n", name, IFNAMSIZ - 1);
		exit(2);
	}
	memcpy(ifr.ifr_name, name, strlen(name) + 1);
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		fprintf(stderr, "delayline: TUNSETIFF %s: %s\n", name, strerror(errno));
		exit(1);
	}
	return fd;
}

int main(int argc, char **argv)
{
	struct queue q[MAX_TAPS];
	int fds[MAX_TAPS], ntap = argc - 2, nq, ep, tfd, sfd;
	int64_t delay_ns, late_sum = 0, late_max = 0;
	uint64_t forwarded = 0, dropped = 0;
	char *end;
	sigset_t sigs;

	if (argc < 4 || ntap % 2 || ntap > MAX_TAPS) {
		fprintf(stderr, "usage: delayline DELAY_US TAP_A TAP_B [TAP_C TAP_D ...] (at most %d devices)\n", MAX_TAPS);
		return 2;
	}
	delay_ns = strtoll(argv[1], &end, 10) * 1000;
	if (*end || delay_ns < 0 || delay_ns > 10LL * 1000000000) {
		fprintf(stderr, "delayline: DELAY_US: 0 .. 10000000\n");
		return 2;
	}
	for (int i = 0; i < ntap; i++)
		fds[i] = tap_open(argv[2 + i]);
	nq = ntap;
	for (int i = 0; i < nq; i++) {
		q[i] = (struct queue){.from = fds[i], .to = fds[i ^ 1]};
		if (!(q[i].ring = calloc(SLOTS, sizeof *q[i].ring))) {
			fprintf(stderr, "delayline: out of memory\n");
			return 1;
		}
	}
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigprocmask(SIG_BLOCK, &sigs, NULL);
	if ((ep = epoll_create1(EPOLL_CLOEXEC)) < 0 || (tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)) < 0 ||
	    (sfd = signalfd(-1, &sigs, SFD_NONBLOCK | SFD_CLOEXEC)) < 0) {
		perror("delayline: epoll/timerfd/signalfd");
		return 1;
	}
	for (int i = 0; i < nq; i++)
		epoll_ctl(ep, EPOLL_CTL_ADD, q[i].from, &(struct epoll_event){.events = EPOLLIN, .data.u32 = (uint32_t)i});
	epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &(struct epoll_event){.events = EPOLLIN, .data.u32 = 100});
	epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &(struct epoll_event){.events = EPOLLIN, .data.u32 = 101});
	printf("ready\n");
	fflush(stdout);

	for (;;) {
		struct epoll_event evs[16];
		int64_t next = -1, t;
		int n = epoll_wait(ep, evs, 16, -1);
		if (n < 0 && errno != EINTR) {
			perror("delayline: epoll_wait");
			return 1;
		}
		for (int k = 0; k < n; k++) {
			uint32_t id = evs[k].data.u32;
			if (id == 101)
				goto done;
			if (id == 100) {
				uint64_t expirations;
				if (read(tfd, &expirations, sizeof expirations) < 0 && errno != EAGAIN)
					perror("delayline: timerfd");
				continue;
			}
			for (;;) { /* read what the device holds */
				struct queue *qq = &q[id];
				uint8_t buf[65536];
				ssize_t len = read(qq->from, buf, sizeof buf);
				if (len <= 0)
					break;
				if (qq->n == SLOTS || len > FRAME_MAX) {
					dropped++;
					continue;
				}
				struct slot *s = &qq->ring[(qq->head + qq->n) % SLOTS];
				s->due_ns = now_ns() + delay_ns;
				s->len = (uint16_t)len;
				memcpy(s->data, buf, (size_t)len);
				qq->n++;
			}
		}
		/* send what is due, in order; find the next deadline */
		t = now_ns();
		for (int i = 0; i < nq; i++) {
			struct queue *qq = &q[i];
			while (qq->n > 0 && qq->ring[qq->head].due_ns <= t) {
				struct slot *s = &qq->ring[qq->head];
				int64_t late = t - s->due_ns;
				if (write(qq->to, s->data, s->len) < 0 && errno != EAGAIN)
					dropped++;
				else
					forwarded++;
				late_sum += late;
				if (late > late_max)
					late_max = late;
				qq->head = (qq->head + 1) % SLOTS;
				qq->n--;
			}
			if (qq->n > 0 && (next < 0 || qq->ring[qq->head].due_ns < next))
				next = qq->ring[qq->head].due_ns;
		}
		if (next >= 0) {
			struct itimerspec its = {.it_value = {.tv_sec = next / 1000000000, .tv_nsec = next % 1000000000}};
			timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL);
		}
	}
done:
	fprintf(stderr, "delayline: %llu frames forwarded, %llu dropped; lateness beyond the delay: mean %.1f us, max %.1f us\n",
	        (unsigned long long)forwarded, (unsigned long long)dropped,
	        forwarded ? (double)late_sum / (double)forwarded / 1000.0 : 0.0, (double)late_max / 1000.0);
	return 0;
}
