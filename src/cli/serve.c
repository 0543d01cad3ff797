/* tern serve: run the mail system in the foreground. */
#include "cli/cli.h"
#include "core/config.h"
#include "roles/roles.h"

static int
serve_run(const struct cli_env *env, int argc, char **argv)
{
	(void)argv;
	if (argc != 1)
		return cli_usage(&cli_cmd_serve);
	return parent_main(env->config_path, cli_load_config(env));
}

const struct cli_command cli_cmd_serve = {
    .name = "serve",
    .usage = "",
    .summary = "run tern in the foreground (logs to stderr)",
    .help = "Starts the parent process and the roles front, lookup, "
            "queue and store.\n"
            "SIGTERM (or tern stop): finish what is in flight, exit 0.\n"
            "SIGHUP (or tern reload): reload the config and "
            "certificates,\nkeeping open connections.\n",
    .run = serve_run,
};
