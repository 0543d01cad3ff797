/* tern: one program that is a whole mail system. main() only sorts out the
 * global options and hands over to a subcommand or, for "__role NAME", to
 * the child role that parent re-executed. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "core/proc.h"
#include "roles/roles.h"

int
main(int argc, char **argv)
{
	struct cli_env env = {CLI_DEFAULT_CONFIG, false};
	int i = 1;

	proc_title_init(argc, argv);
	if (argc == 3 && strcmp(argv[1], "__role") == 0)
		return child_main(argv[2]);
	while (i < argc && argv[i][0] == '-' && argv[i][1] != '\0') {
		if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) {
			env.config_path = argv[i + 1];
			env.config_given = true;
			i += 2;
		} else if (strncmp(argv[i], "--config=", 9) == 0) {
			env.config_path = argv[i] + 9;
			env.config_given = true;
			i++;
		} else if (strcmp(argv[i], "--version") == 0) {
			argv[i] = "version";
			break;
		} else if (strcmp(argv[i], "-h") == 0 ||
		           strcmp(argv[i], "--help") == 0) {
			break;
		} else {
			fprintf(stderr,
			        "tern: unknown option %s; see "
			        "`tern help`\n",
			        argv[i]);
			return EXIT_USAGE;
		}
	}
	return cli_dispatch(&env, argc - i, argv + i);
}
