/* microvim — one binary, a table of subcommands. `microvim --help` and
 * `microvim COMMAND --help` come from the table. */
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/http.h"
#include "common/tls.h"
#include "common/version.h"

static const struct command commands[] = {
	{"dev", cmd_dev, "run a core and one node in one process (throw-away state): demos, tests",
	 NULL}, /* from the options table: daemon_usage() */
	{"core", cmd_core, "run the VIM core: REST API, store, scheduler",
	 NULL}, /* from the options table: daemon_usage() */
	{"node", cmd_node, "run the agent of one compute host",
	 NULL}, /* from the options table: daemon_usage() */
	{"run", cmd_run, "create an instance, wait until it runs, print its phase breakdown",
	 "  microvim run [OPTIONS] -- COMMAND [ARG...]     (exec driver)\n"
	 "  microvim run [OPTIONS] --driver qemu --image NAME\n"
	 "  --name NAME              default: the command's base name and a random suffix\n"
	 "  --driver D               exec (default), qemu, libvirt, xen\n"
	 "  --image NAME             a registered image (VM drivers)\n"
	 "  --vcpus V                fractional vCPUs (default 0.1)\n"
	 "  --memory-mb M            MiB (default 16)\n"
	 "  --count N                create N instances NAME-1..NAME-N\n"
	 "  --config JSON            driver config, e.g. '{\"accel\": \"tcg\"}' for qemu\n"
	 "  --ready MARKER           wait until the guest prints MARKER on its serial port (boot phase)\n"
	 "  --bridge NAME            attach the instance to this bridge (network phase)\n"
	 "  --env K=V                environment for exec (repeatable)\n"
	 "  --label K=V              run only on nodes with this label (repeatable)\n"
	 "  --timeout S              how long to wait for running (default 30)\n"
	 "  --idempotency-key KEY    the create's Idempotency-Key, sent again on a retry (default: a\n"
	 "                           random one per run; a script retrying run gives its own)\n"
	 "  --settle S               then watch it S s more (default 0.5; 0: not at all): an instance\n"
	 "                           that ends meanwhile is reported, exit 1 if it failed\n"
	 "  --no-wait                return once accepted\n"},
	{"ps", cmd_ps, "list instances (in id order, fetched in pages of 1000)",
	 "  --state STATE            only instances in this state\n"
	 "  --page N                 instances per request (1-10000, default 1000)\n"},
	{"show", cmd_show, "show one instance with its phase trace", "  microvim show ID\n"},
	{"stop", cmd_stop, "stop an instance (the record stays)", "  microvim stop ID [--timeout S]\n"},
	{"start", cmd_start, "run a stopped (or ended) instance again on its node, print its new trace",
	 "  microvim start ID [ID...] [--timeout S]\n"
	 "  same spec, resources and network, on the same node; a new run (\"run\" in show --json)\n"
	 "  --timeout S              how long to wait for running (default 30)\n"},
	{"restart", cmd_restart, "stop a running instance and run it again on its node",
	 "  microvim restart ID [ID...] [--timeout S]\n"
	 "  an ended instance is started as by start\n"
	 "  --timeout S              how long to wait for running (default 30)\n"},
	{"rm", cmd_rm, "stop an instance if needed and remove it", "  microvim rm ID [ID...] [--timeout S]\n"},
	{"nodes", cmd_nodes, "list nodes, or cut one off",
	 "  microvim nodes             the nodes, their state and resources\n"
	 "  microvim nodes revoke ID   (an admin) the node's credential stops working at once, its id may not\n"
	 "                           register again, and its instances are lost (restart on-lost ones move)\n"},
	{"logs", cmd_logs, "print an instance's output: stdout, stderr or a guest's serial console",
	 "  microvim logs ID [--stream stdout|stderr|serial] [-f]\n"
	 "  --stream S               stdout (a process's default), stderr, serial (a guest's console, its\n"
	 "                           default); the node keeps the last --log-max-bytes of each\n"
	 "  -f, --follow             go on printing as the instance writes, until it ends\n"},
	{"push", push_main, "workload generator: instantiate many, print phase statistics (docs/tools.md)",
	 "  microvim push [OPTIONS] --replicate N                one at a time, each deleted before the next\n"
	 "  microvim push [OPTIONS] --count N --concurrency C    closed loop\n"
	 "  microvim push [OPTIONS] --rate R [--arrival A] (--duration S | --count N)   open loop\n"
	 "  --driver D               exec (default), qemu, libvirt, xen\n"
	 "  --image NAME             a registered image (VM drivers)\n"
	 "  --ready MARKER           VM guests: wait until MARKER appears on serial (boot phase)\n"
	 "  --config JSON            e.g. '{\"command\":\"/bin/sleep\",\"args\":[\"60\"]}'\n"
	 "  --vcpus V, --memory-mb M resources of each instance (default: the core's)\n"
	 "  --arrival A              constant (default), poisson, burst:K (K at once, R/s on average)\n"
	 "  --concurrency C          requests in flight (closed loop, default 1; open loop cap, default 256)\n"
	 "  --delete | --keep        delete each instance once it ran (default: on for --replicate only)\n"
	 "  --name-prefix P          instance names P-RUN-NNNNNN (default push)\n"
	 "  --timeout S              the core's wait for running (default 30)\n"
	 "  --out FILE               one record per instance: .jsonl or .csv\n"
	 "  --seed N                 seed of the poisson schedule\n"
	 "  -q, --quiet              no progress bar (there is none when stderr is not a terminal)\n"
	 "  --api A                  microvim (default) or openstack: Nova's API, credentials as the\n"
	 "                           openstack CLI takes them (OS_* variables or --os-cloud)\n"
	 "  --os-cloud NAME          openstack: a cloud of clouds.yaml (default $OS_CLOUD)\n"
	 "  --flavor F, --network N  openstack: flavor name or id; network none (default), auto, name or id\n"
	 "  --poll-ms MS             openstack: how often to GET the server until ACTIVE (default 10)\n"},
	{"spawn-baseline", spawnbase_main, "the bare ceiling: posix_spawn a binary N times, C at a time",
	 "  microvim spawn-baseline [--count N] [--concurrency C] [--out FILE.jsonl|.csv] -- /ABS/PATH [ARG...]\n"
	 "  --reap end|each          kill and reap the children after the last spawn (default) or each at once\n"},
	{"analyze", analyze_main, "VIM message analyzer: instantiations in a capture (microvim's core, or Nova), timed on the wire",
	 "  microvim analyze FILE.pcap [--port P] [--out FILE.jsonl|.csv]\n"
	 "  microvim analyze --iface IFACE [--port P] [--duration S] [--write FILE.pcap] [--out FILE]\n"
	 "  --port P                 the core's TCP port (default 4650)\n"
	 "  --iface IFACE            capture live (needs root or CAP_NET_RAW), e.g. lo\n"
	 "  --duration S             stop after S seconds (default: at SIGINT or SIGTERM)\n"
	 "  --write FILE.pcap        keep the live capture\n"
	 "  --out FILE               one record per instance (.jsonl or .csv): push's fields and the\n"
	 "                           wire phases core_ms, node_ms, notify_ms (docs/tools.md)\n"
	 "  -q, --quiet              no summary\n"
	 "  --vim nova               OpenStack Nova's controller instead: HTTP to nova-api, Keystone,\n"
	 "                           Glance, Placement, Neutron and AMQP to RabbitMQ; the paper's Fig. 6a\n"
	 "                           phases per server (docs/tools.md)\n"
	 "  --ports LIST             nova: SERVICE=PORT,... (default nova=8774,keystone=5000,glance=9292,\n"
	 "                           placement=8778,neutron=9696,amqp=5672)\n"
	 "  --events                 nova: each server's messages in time order\n"},
	{"report", report_main, "plot records with gnuplot: phases (Fig. 6), driver steps (6b), latency vs rate, CDF",
	 "  microvim report FILE... -o OUT.svg|OUT.png [--kind phases|driver|latency|cdf] [--label NAME ...]\n"
	 "  -o, --output OUT         the plot: .svg or .png\n"
	 "  --kind K                 phases (default): stacked phase means with 95% CI, one bar per file;\n"
	 "                           driver: the node's steps inside prepare and spawn (artifact,\n"
	 "                           environment, network, config, call), one bar per file (a driver);\n"
	 "                           latency: p50 and p99 of total_ms against offered rate;\n"
	 "                           cdf: the distribution of total_ms, one curve per file\n"
	 "  --label NAME             the name of each FILE in order (default: the file's base name)\n"
	 "  --rate R                 offered rate of each FILE in order, instantiations/s (latency;\n"
	 "                           default: from the records' intended send times)\n"
	 "  --title T                the plot's title (default: one per kind)\n"
	 "  --gnuplot PATH           the gnuplot program (default $MICROVIM_GNUPLOT or gnuplot)\n"},
	{"image", cmd_image, "manage diskless images: add, ls, rm",
	 "  microvim image add NAME --kernel FILE [--initrd FILE] [--cmdline STR]\n"
	 "  microvim image ls\n"
	 "  microvim image rm NAME     (refused while an instance uses it)\n"
	 "  --core URL[,URL...], --token-file FILE, --tls-ca FILE, --json as for the other client commands\n"},
	{"pool", cmd_pool, "warm pools of paused guests: create, ls, rm",
	 "  microvim pool create NAME --image IMG --size N [--driver qemu] [--ready MARKER]\n"
	 "                           [--vcpus X] [--memory-mb M] [--accel tcg|kvm] [--machine microvm|pc]\n"
	 "                           each node keeps its share of N guests booted to MARKER and paused;\n"
	 "                           a create with \"pool\": NAME (or the same guest exactly, without\n"
	 "                           cmdline or network) resumes one instead of booting\n"
	 "  microvim pool ls           size, warm and booting guests of each pool\n"
	 "  microvim pool rm NAME      (its guests are stopped; instances taken from it stay)\n"
	 "  --core URL[,URL...], --token-file FILE, --tls-ca FILE, --json as for the other client commands\n"},
	{"project", cmd_project, "manage projects (tenants) and their quotas: create, ls, show, rm",
	 "  microvim project create NAME [--quota-instances N] [--quota-vcpus X] [--quota-memory-mb M]\n"
	 "  microvim project ls        every project for an admin, one's own otherwise; usage/limit\n"
	 "  microvim project show NAME usage of each quota\n"
	 "  microvim project rm NAME   (refused while it owns instances or images; its users go too)\n"
	 "  --core URL[,URL...], --token-file FILE, --tls-ca FILE, --json as for the other client commands\n"},
	{"user", cmd_user, "manage users, each with one role on one project: create, ls, rm",
	 "  microvim user create NAME --project P --role admin|member|reader [--password-file F]\n"
	 "  microvim user ls\n"
	 "  microvim user rm NAME      (its tokens stop working)\n"
	 "  roles: reader reads its project, member also creates and deletes in it, admin does\n"
	 "  everything in every project\n"
	 "  --core URL[,URL...], --token-file FILE, --tls-ca FILE, --json as for the other client commands\n"},
	{"token", cmd_token, "bearer tokens: create (printed once), ls, revoke",
	 "  microvim token create --user NAME [--expires 24h]   (an admin; the token alone on stdout)\n"
	 "  microvim token ls          every token for an admin, one's own otherwise (never the secret)\n"
	 "  microvim token revoke ID\n"
	 "  --expires D                24h (default), 30m, 7d, seconds, or never\n"
	 "  log in with a password: POST /v1/tokens {\"user\", \"password\", \"project\"} (docs/API.md)\n"
	 "  --core URL[,URL...], --token-file FILE, --tls-ca FILE, --json as for the other client commands\n"},
	{"node-token", cmd_node_token, "join tokens for new nodes: create (printed once), ls, revoke",
	 "  microvim node-token create [--expires 24h]   (an admin; the token alone on stdout)\n"
	 "  microvim node-token ls     (never the secret; NODES: how many joined with it)\n"
	 "  microvim node-token revoke ID   (nodes that joined keep their own credentials)\n"
	 "  --expires D                24h (default), 1h, 30m, 7d, seconds, or never\n"
	 "  A join token is multi-use until it expires or is revoked. A node started with\n"
	 "  `microvim node --token-file FILE` registers with it once and gets its own credential,\n"
	 "  bound to its node id and kept in DATA_DIR/node.credential (0600); it registers with\n"
	 "  that from then on. Cut a node off with `microvim nodes revoke ID`.\n"
	 "  --core URL[,URL...], --token-file FILE, --tls-ca FILE, --json as for the other client commands\n"},
	{"audit", cmd_audit, "read the core's audit log: every mutating request, who, what, the result",
	 "  microvim audit [--data-dir DIR] [--since 24h|2026-12-05T07:00:00Z] [--json]\n"
	 "  --data-dir DIR           the core's (default /var/lib/microvim/core): run it on the core's host\n"
	 "  --since WHEN             lines from this time on: 30m, 24h, 7d, 90s ago, or an ISO 8601 time\n"
	 "  --json                   the lines as the core wrote them\n"},
};

#define N_COMMANDS (sizeof commands / sizeof commands[0])

static const char client_options[] =
	"  --core URL[,URL...]      the core, or the cores of one control plane, tried in order when\n"
	"                           one does not answer (default $MICROVIM_CORE or http://127.0.0.1:4650)\n"
	"  --token-file FILE        bearer token (default $MICROVIM_TOKEN)\n"
	"  --tls-ca FILE            an https:// core: the CA that signed its certificate\n"
	"                           (default $MICROVIM_TLS_CA, else the system's CA store)\n"
	"  --json                   print the API's JSON instead of a table\n";

void cli_usage(const char *name, int to_stderr)
{
	FILE *out = to_stderr ? stderr : stdout;
	for (size_t i = 0; i < N_COMMANDS; i++) {
		const struct command *c = &commands[i];
		bool is_client = c->run != cmd_core && c->run != cmd_node && c->run != cmd_dev;
		if (c->run == cmd_image || c->run == cmd_pool || c->run == cmd_project || c->run == cmd_user ||
		    c->run == cmd_token || c->run == cmd_node_token || c->run == cmd_audit)
			is_client = false; /* their own option sets */
		if (c->run == spawnbase_main) /* talks to no core */
			is_client = false;
		if (c->run == analyze_main || c->run == report_main) /* read files and captures */
			is_client = false;
		if (strcmp(c->name, name) != 0)
			continue;
		fprintf(out, "usage: microvim %s [OPTIONS]\n%s.\n\n%s%s", c->name, c->summary, c->usage ? c->usage : "",
		        is_client ? client_options : "");
		if (!c->usage)
			daemon_usage(c->name, out); /* ends with -h and where the docs are */
		else
			fprintf(out, "  -h, --help               this text\n");
		return;
	}
}

static void usage_all(FILE *out)
{
	int width = 0; /* of the longest name: the summaries start in one column */
	for (size_t i = 0; i < N_COMMANDS; i++)
		if ((int)strlen(commands[i].name) > width)
			width = (int)strlen(commands[i].name);
	fprintf(out, "microvim %s — a VIM for Micro-VNFs: instantiation in milliseconds, every phase timed.\n\n"
	             "usage: microvim COMMAND [OPTIONS]\n\ncommands:\n", MICROVIM_VERSION);
	for (size_t i = 0; i < N_COMMANDS; i++)
		fprintf(out, "  %-*s  %s\n", width, commands[i].name, commands[i].summary);
	fprintf(out, "\n`microvim COMMAND --help` for its options. Exit codes: 0 done, 1 refused or failed,\n"
	             "2 bad usage, 3 core unreachable. API: docs/API.md.\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage_all(stderr);
		return EXIT_USAGE;
	}
	if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "help") == 0) {
		usage_all(stdout);
		return EXIT_OK;
	}
	if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
		printf("microvim %s\n", MICROVIM_VERSION);
		return EXIT_OK;
	}
	for (size_t i = 0; i < N_COMMANDS; i++) {
		if (strcmp(commands[i].name, argv[1]) != 0)
			continue;
		for (int k = 2; k < argc && strcmp(argv[k], "--") != 0; k++) {
			if (strcmp(argv[k], "-h") == 0 || strcmp(argv[k], "--help") == 0) {
				cli_usage(commands[i].name, 0);
				return EXIT_OK;
			}
		}
		/* A peer that closes its end makes a write fail with EPIPE instead of killing the
		 * client: OpenSSL writes to its sockets with plain write(). */
		signal(SIGPIPE, SIG_IGN);
		if (getenv("MICROVIM_TLS_CA")) /* --tls-ca, parsed by the command, overrides it */
			http_client_tls_files(&(struct tls_files){.ca = getenv("MICROVIM_TLS_CA")});
		return commands[i].run(argc - 1, argv + 1);
	}
	fprintf(stderr, "microvim: unknown command \"%s\"\n\n", argv[1]);
	usage_all(stderr);
	return EXIT_USAGE;
}
