/* Subcommand dispatch, `tern help` and the helpers every command shares. */
#include "cli/cli.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "core/config.h"
#include "core/proc.h"
#include "core/xmalloc.h"

static const struct cli_command *const commands[] = {
    &cli_cmd_quickstart, &cli_cmd_serve,  &cli_cmd_stop,
    &cli_cmd_reload,     &cli_cmd_config, &cli_cmd_version,
    &cli_cmd_domain,     &cli_cmd_user,   &cli_cmd_alias,
    &cli_cmd_mailbox,    &cli_cmd_dkim,   &cli_cmd_dmarc,
    &cli_cmd_queue,
};

#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static void
cli_help_all(FILE *out)
{
	fprintf(out, "usage: tern [-c FILE] COMMAND [ARGS]\n\n"
	             "tern is a whole mail system in one program.\n\n"
	             "Commands:\n");
	for (size_t i = 0; i < NCOMMANDS; i++)
		fprintf(out, "  %-12s %s\n", commands[i]->name,
		        commands[i]->summary);
	fprintf(out, "  %-12s %s\n", "help", "show this, or help on COMMAND");
	fprintf(out,
	        "\n-c FILE  the configuration (default %s)\n"
	        "Run `tern COMMAND --help` for a command's options; "
	        "man tern(1) and tern.conf(5) say more.\n",
	        CLI_DEFAULT_CONFIG);
}

static void
cli_help_one(const struct cli_command *cmd)
{
	printf("usage: tern %s %s\n\n%s\n", cmd->name, cmd->usage,
	       cmd->summary);
	if (cmd->help != NULL && cmd->help[0] != '\0')
		printf("\n%s", cmd->help);
}

static const struct cli_command *
cli_find(const char *name)
{
	for (size_t i = 0; i < NCOMMANDS; i++)
		if (strcmp(commands[i]->name, name) == 0)
			return commands[i];
	return NULL;
}

int
cli_usage(const struct cli_command *cmd)
{
	fprintf(stderr, "usage: tern %s %s\n(see tern %s --help)\n", cmd->name,
	        cmd->usage, cmd->name);
	return EXIT_USAGE;
}

int
cli_dispatch(const struct cli_env *env, int argc, char **argv)
{
	const struct cli_command *cmd;

	if (argc < 1) {
		cli_help_all(stderr);
		return EXIT_USAGE;
	}
	if (strcmp(argv[0], "help") == 0 || strcmp(argv[0], "--help") == 0 ||
	    strcmp(argv[0], "-h") == 0) {
		if (argc > 1 && (cmd = cli_find(argv[1])) != NULL) {
			cli_help_one(cmd);
			return 0;
		}
		if (argc > 1) {
			fprintf(stderr, "tern: no command named %s\n", argv[1]);
			return EXIT_USAGE;
		}
		cli_help_all(stdout);
		return 0;
	}
	if ((cmd = cli_find(argv[0])) == NULL) {
		fprintf(stderr,
		        "tern: unknown command %s; `tern help` lists "
		        "them\n",
		        argv[0]);
		return EXIT_USAGE;
	}
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0)
			break;
		if (strcmp(argv[i], "--help") == 0 ||
		    strcmp(argv[i], "-h") == 0) {
			cli_help_one(cmd);
			return 0;
		}
	}
	return cmd->run(env, argc, argv);
}

struct config *
cli_load_config(const struct cli_env *env)
{
	struct config *cfg;
	char *error = NULL;

	if ((cfg = config_load(env->config_path, &error)) == NULL) {
		fprintf(stderr, "%s\n", error);
		if (!env->config_given)
			fprintf(stderr, "tern: use -c FILE to name another "
			                "config, or `tern quickstart` to "
			                "make one\n");
		free(error);
		exit(EXIT_CONFIG);
	}
	return cfg;
}

long
cli_running_pid(const struct config *cfg)
{
	char *path = xasprintf("%s/tern.pid", cfg->data_dir);
	char buf[32];
	long pid = 0;
	ssize_t n;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	free(path);
	if (fd < 0)
		return 0;
	/* The running parent holds an exclusive lock on its pid file. */
	if (flock(fd, LOCK_SH | LOCK_NB) == 0) {
		close(fd);
		return 0;
	}
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n > 0) {
		buf[n] = '\0';
		pid = strtol(buf, NULL, 10);
	}
	return pid > 1 ? pid : 0;
}
