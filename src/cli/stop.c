/* tern stop: ask the running instance to finish what is in flight and exit,
 * and wait until it has. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/config.h"
#include "core/proc.h"

static int
stop_run(const struct cli_env *env, int argc, char **argv)
{
	struct config *cfg;
	struct timespec pause = {0, 50 * 1000 * 1000};
	uint64_t waited = 0, limit;
	long pid;

	(void)argv;
	if (argc != 1)
		return cli_usage(&cli_cmd_stop);
	cfg = cli_load_config(env);
	limit = cfg->shutdown_timeout_ms + 10000;
	if ((pid = cli_running_pid(cfg)) == 0) {
		fprintf(stderr,
		        "tern: not running (no live pid file in "
		        "%s)\n",
		        cfg->data_dir);
		config_free(&cfg);
		return 0;
	}
	if (kill((pid_t)pid, SIGTERM) < 0) {
		fprintf(stderr, "tern: cannot signal pid %ld: %s\n", pid,
		        strerror(errno));
		config_free(&cfg);
		return EXIT_UNAVAILABLE;
	}
	while (cli_running_pid(cfg) != 0 && waited < limit) {
		nanosleep(&pause, NULL);
		waited += 50;
	}
	if (cli_running_pid(cfg) != 0) {
		fprintf(stderr, "tern: pid %ld still running after %llu ms\n",
		        pid, (unsigned long long)waited);
		config_free(&cfg);
		return EXIT_TEMPFAIL;
	}
	config_free(&cfg);
	return 0;
}

const struct cli_command cli_cmd_stop = {
    .name = "stop",
    .usage = "",
    .summary = "stop the running instance (waits until it has exited)",
    .help = "Sends SIGTERM to the parent named in DATA_DIR/tern.pid.\n",
    .run = stop_run,
};
