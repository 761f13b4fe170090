/* core — the VIM core daemon: the REST API, the store, the scheduler, and the hand-off
 * of assignments to nodes' long-polls. One event loop; all state lives on that loop. */
#ifndef MICROVIM_CORE_H
#define MICROVIM_CORE_H

#include <event2/event.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/sched.h"

/* Default of --max-inflight. By Little's law the wait a request can meet in the core's
 * queues is about in-flight / throughput: on the reference 2-CPU VM (exec saturates at
 * ~920 instantiations/s) 4096 is ~4.5 s, the most a client's ?wait should ever sit behind
 * others. It is also 4 of the largest batches (count 1000), room for many nodes booting
 * slow VMs at once, and at ~2 KiB per instance a bounded 8 MiB of memory. */
#define CORE_MAX_INFLIGHT_DEFAULT 4096

struct core_options {
	const char *listen;        /* "127.0.0.1:4650" */
	const char *data_dir;      /* the SQLite store and the image blobs live here */
	const char *store;         /* NULL: SQLite in data_dir; "postgresql://...": that database,
	                            * shared with other cores: one leads (core/leader.h) */
	const char *advertise;     /* the URL other cores send nodes to when this one leads;
	                            * NULL: the address bound */
	const char *token_file;    /* a shared token that acts as an admin; NULL: none */
	bool auth;                 /* users' tokens (projects, roles); a non-loopback listen implies it.
	                            * Neither this nor token_file: no authentication (loopback only) */
	double cpu_ratio;          /* vCPUs offered per host CPU (Nova's cpu_allocation_ratio) */
	enum sched_policy policy;
	int heartbeat_timeout_s;   /* a node silent this long is down */
	int heartbeat_rate_max;    /* heartbeats/s from all nodes together (cluster.h); 0: no cap */
	double max_rate;           /* requests/s per client address (burst: twice that); 0: no limit */
	int max_conns_per_addr;    /* open connections per client address; 0: no limit */
	int read_timeout_s;        /* a request must arrive whole within this of its first byte */
	int64_t max_inflight;      /* instances pending, scheduled or starting at once; past it a
	                            * create gets 503 (admission control); 0: no limit */
	const char *tls_cert;      /* with tls_key: serve HTTPS only (NULL: plain HTTP) */
	const char *tls_key;
	const char *tls_client_ca; /* nodes' routes need a client certificate this CA signed */
	const char *openstack_listen;        /* the OpenStack façade's HOST:PORT; NULL: none */
	const char *openstack_password_file; /* its admin's Keystone password; NULL: the token */
};

void core_options_default(struct core_options *o);

struct core;

/* Opens the store, loads it, binds the listener. NULL with a message in err. */
struct core *core_create(struct event_base *base, const struct core_options *opts, char *err,
                         size_t errlen);
/* The address actually bound (useful with port 0): "http://127.0.0.1:4650", or
 * "https://..." with TLS. */
const char *core_url(const struct core *c);
/* The OpenStack façade's address ("http://127.0.0.1:5000"), or NULL when it has none. */
const char *core_openstack_url(const struct core *c);
/* An orderly stop, on the loop: no new connections; every client still waiting
 * (?wait=..., node long-polls, event streams) gets its answer. The loop should run a
 * moment longer so that the answers reach the wire. */
void core_drain(struct core *c);
/* Answers anything still waiting, closes the store, frees everything. */
void core_destroy(struct core *c);

#endif
