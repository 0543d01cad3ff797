/* The `tern` command line: one subcommand per file, each a const struct
 * cli_command; main.c only dispatches. */
#ifndef TERN_CLI_CLI_H
#define TERN_CLI_CLI_H

#include <stdbool.h>

#define CLI_DEFAULT_CONFIG "/etc/tern/tern.conf"

struct cli_env {
	const char *config_path; /* -c FILE, or the default */
	bool config_given;
};

struct cli_command {
	const char *name;
	const char *usage;   /* after "tern NAME " */
	const char *summary; /* one line for `tern help` */
	const char *help;    /* the rest of `tern NAME --help` */
	/* argv[0] is the command name; returns a sysexits code. */
	int (*run)(const struct cli_env *env, int argc, char **argv);
};

extern const struct cli_command cli_cmd_quickstart;
extern const struct cli_command cli_cmd_serve;
extern const struct cli_command cli_cmd_stop;
extern const struct cli_command cli_cmd_reload;
extern const struct cli_command cli_cmd_config;
extern const struct cli_command cli_cmd_version;
extern const struct cli_command cli_cmd_domain;
extern const struct cli_command cli_cmd_user;
extern const struct cli_command cli_cmd_alias;
extern const struct cli_command cli_cmd_mailbox;
extern const struct cli_command cli_cmd_dkim;
extern const struct cli_command cli_cmd_dmarc;
extern const struct cli_command cli_cmd_queue;

/* Run argv as a tern command line (after global options). */
int cli_dispatch(const struct cli_env *env, int argc, char **argv);
/* Print "usage: tern NAME USAGE" to stderr and return EXIT_USAGE. */
int cli_usage(const struct cli_command *cmd);
/* Load the config named by env or exit EXIT_CONFIG with FILE:LINE. */
struct config *cli_load_config(const struct cli_env *env);
/* The pid of the running instance for cfg (0 if none), from its pid file. */
long cli_running_pid(const struct config *cfg);

#endif
