/* tern mailbox reindex ADDRESS: rebuild a user's index.db from the Maildir
 * (after a restore, or when another tool moved files around). Runs as the
 * store user, as the store process would, so that every file it makes is
 * the store's.
 * SECURITY: the address is parsed and normalised before it names a
 * directory (maildir_path checks it again). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/config.h"
#include "core/proc.h"
#include "core/xmalloc.h"
#include "mail/address.h"
#include "store/mailbox.h"
#include "store/maildir.h"

static int
mailbox_reindex(const struct config *cfg, const char *text)
{
	struct address addr;
	char key[ADDRESS_MAX * 4 + 2], *root, *dir, *error = NULL;
	int ret;

	if (address_parse(text, strlen(text), &addr, NULL) < 0) {
		fprintf(stderr, "tern mailbox reindex: not an address: %s\n",
		        text);
		return EXIT_DATAERR;
	}
	address_key(&addr, key, sizeof(key));
	if (geteuid() == 0 &&
	    proc_drop_privileges(cfg->store_user, NULL, &error) < 0) {
		fprintf(stderr, "tern mailbox reindex: cannot become %s: %s\n",
		        cfg->store_user, error);
		free(error);
		return EXIT_OSERR;
	}
	root = xasprintf("%s/mail", cfg->data_dir);
	dir = maildir_path(root, key, &error);
	free(root);
	if (dir == NULL) {
		fprintf(stderr, "tern mailbox reindex: %s: %s\n", key, error);
		free(error);
		return EXIT_TEMPFAIL;
	}
	if ((ret = mbox_reindex(dir, &error)) != MBOX_OK) {
		fprintf(stderr, "tern mailbox reindex: %s: %s\n", key,
		        error != NULL ? error : "failed");
		free(error);
		free(dir);
		return EXIT_TEMPFAIL;
	}
	printf("reindexed %s\n", key);
	free(dir);
	return 0;
}

static int
mailbox_run(const struct cli_env *env, int argc, char **argv)
{
	struct config *cfg;
	int ret;

	if (argc != 3 || strcmp(argv[1], "reindex") != 0)
		return cli_usage(&cli_cmd_mailbox);
	cfg = cli_load_config(env);
	ret = mailbox_reindex(cfg, argv[2]);
	config_free(&cfg);
	return ret;
}

const struct cli_command cli_cmd_mailbox = {
    .name = "mailbox",
    .usage = "reindex ADDRESS",
    .summary = "rebuild a user's mailbox index from the Maildir",
    .help = "reindex ADDRESS   rebuild DATA_DIR/mail/DOMAIN/LOCAL/index.db "
            "from the files;\n"
            "                  UIDs are kept where the old index still "
            "maps a file.\n"
            "Safe while the server runs (sessions see the result at their "
            "next command).\n",
    .run = mailbox_run,
};
