/* audit — `microvim audit [--data-dir DIR] [--since WHEN]`: the core's audit log (one JSON
 * line per mutating request, DATA_DIR/audit.log), read on the core's host, as a table or
 * (--json) the lines themselves. */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/clock.h"

#define LINE_MAX_BYTES 65536

/* "30m", "24h", "7d", "90s" ago, or an ISO 8601 time as the log writes it (UTC, Z). */
static int since_of(const char *s, char *out, size_t len)
{
	char *end;
	double n = strtod(s, &end);
	double unit = 0;
	if (end != s && end[0] && !end[1])
		unit = *end == 's' ? 1 : *end == 'm' ? 60 : *end == 'h' ? 3600 : *end == 'd' ? 86400 : 0;
	if (unit > 0 && n >= 0) {
		clock_iso8601(clock_wall_us() - (int64_t)(n * unit * 1e6), out, (int)len);
		return 0;
	}
	if (strlen(s) >= 10 && s[4] == '-' && s[7] == '-') { /* compared as text: same format, UTC */
		snprintf(out, len, "%s", s);
		return 0;
	}
	return -1;
}

static const char *field(const json_t *e, const char *k) { return json_string_value(json_object_get(e, k)) ?: "-"; }

int cmd_audit(int argc, char **argv)
{
	static const struct option opts[] = {
		{"data-dir", required_argument, NULL, 'd'}, {"since", required_argument, NULL, 's'},
		{"json", no_argument, NULL, 'j'}, {NULL, 0, NULL, 0},
	};
	const char *dir = "/var/lib/microvim/core";
	char path[4096], since[64] = "", *line;
	bool json = false;
	FILE *f;
	int opt;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'd': dir = optarg; break;
		case 's':
			if (since_of(optarg, since, sizeof since) < 0) {
				fprintf(stderr, "microvim audit: --since takes 30m, 24h, 7d, 90s or a time "
				        "2026-12-05T07:00:00Z\n");
				return EXIT_USAGE;
			}
			break;
		case 'j': json = true; break;
		default: cli_usage("audit", 1); return EXIT_USAGE;
		}
	}
	if (optind != argc) {
		cli_usage("audit", 1);
		return EXIT_USAGE;
	}
	snprintf(path, sizeof path, "%s/audit.log", dir);
	if (!(f = fopen(path, "r"))) {
		fprintf(stderr, "microvim audit: cannot read %s: %s (the core's --data-dir: give it with --data-dir)\n",
		        path, strerror(errno));
		return EXIT_FAILED;
	}
	if (!(line = malloc(LINE_MAX_BYTES)))
		return EXIT_FAILED;
	if (!json)
		printf("%-27s  %-6s  %-40s  %6s  %-16s  %-16s  %s\n", "TIME", "METHOD", "PATH", "STATUS", "USER", "PROJECT",
		       "ROLE");
	while (fgets(line, LINE_MAX_BYTES, f)) {
		json_t *e = json_loads(line, 0, NULL);
		const char *when = field(e, "time");
		if (!e || (since[0] && strcmp(when, since) < 0)) {
			json_decref(e);
			continue;
		}
		if (json) {
			fputs(line, stdout);
		} else {
			char status[8] = "-";
			if (json_is_integer(json_object_get(e, "status")))
				snprintf(status, sizeof status, "%lld", (long long)json_integer_value(json_object_get(e, "status")));
			printf("%-27s  %-6s  %-40s  %6s  %-16s  %-16s  %s\n", when, field(e, "method"), field(e, "path"), status,
			       json_object_get(e, "user") ? field(e, "user") : field(e, "auth"), field(e, "project"),
			       field(e, "role"));
		}
		json_decref(e);
	}
	free(line);
	fclose(f);
	return EXIT_OK;
}
