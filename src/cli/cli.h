/* cli — the `microvim` program: a table of subcommands {name, handler, summary, usage}.
 * Exit codes scripts can rely on: */
#ifndef MICROVIM_CLI_H
#define MICROVIM_CLI_H

#include <stdio.h>

#define EXIT_OK 0          /* done as asked */
#define EXIT_FAILED 1      /* refused by the core, or the instance did not reach the state */
#define EXIT_USAGE 2       /* bad command line */
#define EXIT_UNREACHABLE 3 /* no answer from the core */

struct command {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *summary;
	const char *usage; /* options, printed by --help; NULL: the daemons' options table */
};

/* daemons.c */
int cmd_core(int argc, char **argv);
/* The options of `core`, `node` or `dev`, from the daemons' options table. */
void daemon_usage(const char *cmd, FILE *out);
int cmd_node(int argc, char **argv);
int cmd_dev(int argc, char **argv);
/* client.c */
int cmd_run(int argc, char **argv);
int cmd_ps(int argc, char **argv);
int cmd_show(int argc, char **argv);
int cmd_stop(int argc, char **argv);
int cmd_start(int argc, char **argv);
int cmd_restart(int argc, char **argv);
int cmd_rm(int argc, char **argv);
int cmd_nodes(int argc, char **argv);
int cmd_logs(int argc, char **argv);
/* tools (src/tools) */
int push_main(int argc, char **argv);
int spawnbase_main(int argc, char **argv);
int analyze_main(int argc, char **argv);
int report_main(int argc, char **argv);
/* image.c */
int cmd_image(int argc, char **argv);
int cmd_pool(int argc, char **argv);
/* tenancy.c */
int cmd_project(int argc, char **argv);
int cmd_user(int argc, char **argv);
int cmd_token(int argc, char **argv);
int cmd_node_token(int argc, char **argv);
/* audit.c */
int cmd_audit(int argc, char **argv);

/* Parses a core URL or a list of them (common/corelist.h) into l: 0, else -1 after printing,
 * on stderr, which entry is wrong and what to give instead. `from` names where it came from
 * ("--core", "$MICROVIM_CORE"). */
struct corelist;
int cli_core_list(struct corelist *l, const char *text, const char *from);

/* Prints the usage of `name` (to stdout when asked for, stderr on a mistake). */
void cli_usage(const char *name, int to_stderr);

#endif
