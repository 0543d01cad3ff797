/* tern version: this build and the libraries it runs with. */
#include <event2/event.h>
#include <openssl/crypto.h>
#include <sqlite3.h>
#include <stdio.h>
#include <unbound.h>

#include "cli/cli.h"

static int
version_run(const struct cli_env *env, int argc, char **argv)
{
	(void)env;
	(void)argc;
	(void)argv;
	printf("tern %s\n", TERN_VERSION);
	printf("  %s\n", OpenSSL_version(OPENSSL_VERSION));
	printf("  libevent %s\n", event_get_version());
	printf("  libunbound %s\n", ub_version());
	printf("  SQLite %s\n", sqlite3_libversion());
	return 0;
}

const struct cli_command cli_cmd_version = {
    .name = "version",
    .usage = "",
    .summary = "print the version of tern and its libraries",
    .help = "",
    .run = version_run,
};
