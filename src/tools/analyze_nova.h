/* analyze_nova — `microvim analyze --vim nova`: OpenStack Nova's instantiations in a capture
 * of its controller, split into the phases of the paper's Fig. 4 / Fig. 6a.
 *
 *   microvim analyze --vim nova FILE.pcap [--ports LIST] [--out FILE] [--events]
 *   microvim analyze --vim nova --iface lo [--duration S] [--write FILE.pcap] ...
 *
 * What it reads (ports: --ports nova=8774,keystone=5000,glance=9292,placement=8778,
 * neutron=9696,amqp=5672, the defaults; any subset may be given):
 *   HTTP       the client and nova-api (POST /servers, GET /servers/{id}, DELETE), and every
 *              service's calls to Keystone, Glance, Placement and Neutron
 *   AMQP 0-9-1 RabbitMQ's connections (amqp.h), whose basic.publish bodies are
 *              oslo.messaging envelopes ({"oslo.version": "2.0", "oslo.message": "<JSON>"})
 *              holding RPC calls and casts ({"method", "args", "_msg_id", "_reply_q"}) and
 *              their replies ({"result"|"failure", "_msg_id"})
 * An instance is known by the id in the answer to its POST /servers; messages are tied to it
 * by that UUID in their bodies and paths, the calls to other services by time (they carry
 * no instance id: the analysis assumes instances are created one at a time, as the paper's
 * protocol does, and says so when creations overlap).
 *
 * Markers of one instance (F: the first byte of the message on the wire):
 *   post        the client's POST /servers request F
 *   cast        nova-api's cast schedule_and_build_instances (to nova-conductor), publish F
 *   build       nova-conductor's cast build_and_run_instance (to nova-compute), publish F
 *   spawning    nova-compute's instance.save (object_action) with task_state "spawning"
 *   active      nova-compute's instance.save with vm_state "active"
 *   seen        the client's first GET /servers/{id} whose answer says ACTIVE: answer's last byte
 * Phases (ms), named as the paper's Fig. 6a:
 *   api_auth_ms        post -> cast, less image_ms: nova-api, token checks (Keystone), quota,
 *                      the build request in the database
 *   image_ms           Glance exchanges that began between post and cast (the image and its
 *                      kernel looked up by nova-api), each from request F to answer's last byte
 *   scheduling_ms      cast -> build: nova-conductor, its select_destinations call to
 *                      nova-scheduler (Placement's allocation candidates and claim), the
 *                      instance written into its cell
 *   compute_network_ms build -> spawning: nova-compute's claim, network allocation (Neutron)
 *                      and block devices
 *   compute_spawn_ms   spawning -> active: the virt driver's spawn (images, XML, hypervisor)
 *   notification_ms    active -> seen: the state reaching the client (what it waits for:
 *                      the poll interval included)
 *   total_ms           post -> seen (the phases add up to it)
 * Details (ms, inside the phases above): auth_ms (Keystone exchanges in api_auth),
 * placement_ms (Placement exchanges in scheduling), select_ms (the select_destinations call,
 * publish F -> its reply's publish F), neutron_ms (Neutron exchanges between build and
 * active), compute_image_ms (Glance exchanges between build and active: the image fetched
 * into nova-compute's cache), delete_ms (the client's DELETE F -> the first answer 404 to
 * its GET, last byte).
 *
 * Records (--out .jsonl or .csv), one per POST /servers answered 202 in the capture, in the
 * order of their requests: id, intended_send_us, actual_send_us (post, µs after the first
 * post), the phases and details above, state ("running" once ACTIVE was seen, "failed"
 * after ERROR, "error" when neither), error. `microvim report` stacks the phases. */
#ifndef MICROVIM_ANALYZE_NOVA_H
#define MICROVIM_ANALYZE_NOVA_H

#include <stddef.h>
#include <stdint.h>

#include "tools/amqp.h"
#include "tools/analyze.h"

enum nova_service { NOVA_API, NOVA_KEYSTONE, NOVA_GLANCE, NOVA_PLACEMENT, NOVA_NEUTRON, NOVA_AMQP, NOVA_SERVICE_COUNT };

struct nova_ports {
	uint16_t port[NOVA_SERVICE_COUNT];
};

/* The defaults, then SERVICE=PORT,... (services: nova, keystone, glance, placement, neutron,
 * amqp) over them. 0, or -EINVAL with what is wrong in err. */
int nova_ports_parse(const char *spec, struct nova_ports *p, char *err, size_t errlen);

enum nova_phase {
	NOVA_PHASE_API_AUTH,
	NOVA_PHASE_IMAGE,
	NOVA_PHASE_SCHEDULING,
	NOVA_PHASE_COMPUTE_NETWORK,
	NOVA_PHASE_COMPUTE_SPAWN,
	NOVA_PHASE_NOTIFICATION,
	NOVA_PHASE_COUNT
};

enum nova_detail {
	NOVA_DETAIL_AUTH,
	NOVA_DETAIL_PLACEMENT,
	NOVA_DETAIL_SELECT,
	NOVA_DETAIL_NEUTRON,
	NOVA_DETAIL_COMPUTE_IMAGE,
	NOVA_DETAIL_DELETE,
	NOVA_DETAIL_COUNT
};

/* Column names: "api_auth_ms" ... and "auth_ms" ... */
extern const char *const nova_phase_names[NOVA_PHASE_COUNT];
extern const char *const nova_detail_names[NOVA_DETAIL_COUNT];

struct nova_record {
	char id[40];
	int64_t send_us;                      /* post, µs after the first post */
	double phase_ms[NOVA_PHASE_COUNT];    /* NaN when a marker is missing */
	double detail_ms[NOVA_DETAIL_COUNT];  /* NaN when absent */
	double total_ms;
	char state[16];
	char error[256];
};

struct analyze_nova;

struct analyze_nova *analyze_nova_new(const struct nova_ports *p); /* NULL: out of memory */
void analyze_nova_free(struct analyze_nova *a);

/* A reader of every port in p, feeding a. NULL: out of memory. */
struct pcapread *analyze_nova_reader(struct analyze_nova *a);
/* The BPF expression for a live capture of those ports. */
void analyze_nova_filter(const struct nova_ports *p, char *buf, size_t len);

/* The records of the instances created in what was read (see above); *out is malloc'ed.
 * 0 or -ENOMEM. */
int analyze_nova_records(const struct analyze_nova *a, struct nova_record **out, size_t *n);
/* Writes them to path (.jsonl or .csv). 0 or -errno. */
int analyze_nova_write(const char *path, const struct nova_record *v, size_t n);

/* The AMQP reader's counters (all connections). */
const struct amqp_stats *analyze_nova_amqp_stats(const struct analyze_nova *a);

/* `microvim analyze --vim nova`. */
int analyze_nova_run(const struct analyze_job *job);

#endif
