/* tern reload: the running instance reads its config and certificates
 * again; open connections stay. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "core/config.h"
#include "core/proc.h"

static int
reload_run(const struct cli_env *env, int argc, char **argv)
{
	struct config *cfg;
	long pid;

	(void)argv;
	if (argc != 1)
		return cli_usage(&cli_cmd_reload);
	/* Check the new file first: a running server keeps its old config
	 * on error, but the operator should hear about it here. */
	cfg = cli_load_config(env);
	pid = cli_running_pid(cfg);
	config_free(&cfg);
	if (pid == 0) {
		fprintf(stderr, "tern: not running\n");
		return EXIT_UNAVAILABLE;
	}
	if (kill((pid_t)pid, SIGHUP) < 0) {
		fprintf(stderr, "tern: cannot signal pid %ld: %s\n", pid,
		        strerror(errno));
		return EXIT_UNAVAILABLE;
	}
	return 0;
}

const struct cli_command cli_cmd_reload = {
    .name = "reload",
    .usage = "",
    .summary = "reload the config and certificates of the running "
               "instance",
    .help = "Checks the config, then sends SIGHUP to the running parent.\n",
    .run = reload_run,
};
