/* tern config check|defaults|show: validate the config file, print every
 * setting with its default, or print the effective config. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "core/config.h"
#include "core/proc.h"

static int
config_run(const struct cli_env *env, int argc, char **argv)
{
	struct config *cfg;
	char *text;

	if (argc != 2)
		return cli_usage(&cli_cmd_config);
	if (strcmp(argv[1], "defaults") == 0) {
		text = config_describe_defaults();
		fputs(text, stdout);
		free(text);
		return 0;
	}
	if (strcmp(argv[1], "check") != 0 && strcmp(argv[1], "show") != 0)
		return cli_usage(&cli_cmd_config);
	cfg = cli_load_config(env);
	if (strcmp(argv[1], "show") == 0) {
		text = config_serialize(cfg);
		fputs(text, stdout);
		free(text);
	} else {
		printf("%s: ok\n", cfg->path);
	}
	config_free(&cfg);
	return 0;
}

const struct cli_command cli_cmd_config = {
    .name = "config",
    .usage = "check|show|defaults",
    .summary = "check the config, show it in full, or list every setting",
    .help = "check     parse and validate; errors as FILE:LINE: why, "
            "exit 78\n"
            "show      the effective config, every setting spelled out\n"
            "defaults  every setting with its default, range and help\n",
    .run = config_run,
};
