/* tern domain add|del|list: the mail domains this instance receives for.
 * Names are stored as lower-case A-labels (IDN U-labels are converted). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/dirutil.h"
#include "core/proc.h"

static int
domain_add(struct cli_admin *a, const struct cli_args *args)
{
	char domain[ADDRESS_DOMAIN_MAX + 1], *error = NULL;
	int rc;

	if ((rc = cli_admin_domain(a, args->pos[0], domain)) != 0)
		return rc;
	switch (directory_domain_exists(a->dir, domain, &error)) {
	case 1:
		return cli_admin_fail(a, EXIT_DATAERR, "domain %s exists",
		                      domain);
	case 0:
		break;
	default:
		return cli_admin_dir_fail(a, EXIT_TEMPFAIL, &error);
	}
	if (directory_domain_add(a->dir, domain, &error) < 0)
		return cli_admin_dir_fail(a, EXIT_DATAERR, &error);
	cli_notify_directory_changed(a->cfg);
	return 0;
}

/* Aliases whose source is in domain ("x@domain" or "@domain"). */
static int
count_aliases(struct cli_admin *a, const char *domain, size_t *n_r)
{
	char **sources = NULL, **dests = NULL, *error = NULL, *at;
	size_t n = 0;

	if (directory_alias_list(a->dir, &sources, &dests, &n, &error) < 0)
		return cli_admin_dir_fail(a, EXIT_TEMPFAIL, &error);
	*n_r = 0;
	for (size_t i = 0; i < n; i++)
		if ((at = strrchr(sources[i], '@')) != NULL &&
		    strcmp(at + 1, domain) == 0)
			(*n_r)++;
	directory_strings_free(&sources, n);
	directory_strings_free(&dests, n);
	return 0;
}

static int
domain_del(struct cli_admin *a, const struct cli_args *args)
{
	char domain[ADDRESS_DOMAIN_MAX + 1], *error = NULL;
	struct dir_user *users = NULL;
	size_t nusers = 0, naliases = 0;
	int rc;

	if ((rc = cli_admin_domain(a, args->pos[0], domain)) != 0 ||
	    (rc = cli_admin_domain_exists(a, domain)) != 0)
		return rc;
	if (directory_user_list(a->dir, domain, &users, &nusers, &error) < 0)
		return cli_admin_dir_fail(a, EXIT_TEMPFAIL, &error);
	dir_users_free(&users, nusers);
	if ((rc = count_aliases(a, domain, &naliases)) != 0)
		return rc;
	if ((nusers > 0 || naliases > 0) && !args->force)
		return cli_admin_fail(a, EXIT_DATAERR,
		                      "domain %s has %zu user%s and %zu "
		                      "alias%s; delete them first, or add "
		                      "--force to delete them with it",
		                      domain, nusers, nusers == 1 ? "" : "s",
		                      naliases, naliases == 1 ? "" : "es");
	if (directory_domain_del(a->dir, domain, args->force, &error) < 0)
		return cli_admin_dir_fail(a, EXIT_DATAERR, &error);
	if (nusers > 0)
		cli_admin_note(a,
		               "deleted %zu user%s; mail already stored "
		               "for them stays on disk",
		               nusers, nusers == 1 ? "" : "s");
	cli_notify_directory_changed(a->cfg);
	return 0;
}

static int
domain_list(struct cli_admin *a, const struct cli_args *args)
{
	char **domains = NULL, *error = NULL;
	size_t n = 0;

	if (directory_domain_list(a->dir, &domains, &n, &error) < 0)
		return cli_admin_dir_fail(a, EXIT_TEMPFAIL, &error);
	if (args->json) {
		fputs("[", stdout);
		for (size_t i = 0; i < n; i++) {
			fputs(i == 0 ? "\n  {\"domain\": "
			             : ",\n  {"
			               "\"domain\": ",
			      stdout);
			cli_json_string(stdout, domains[i]);
			fputs("}", stdout);
		}
		fputs(n > 0 ? "\n]\n" : "]\n", stdout);
	} else {
		for (size_t i = 0; i < n; i++) {
			cli_text_cell(stdout, domains[i], 0);
			putchar('\n');
		}
	}
	directory_strings_free(&domains, n);
	return 0;
}

static const struct cli_subcommand domain_subs[] = {
    {"add", "add DOMAIN", 0, 1, 1, domain_add},
    {"del", "del DOMAIN [--force]", CLI_OPT_FORCE, 1, 1, domain_del},
    {"list", "list [--json]", CLI_OPT_JSON, 0, 0, domain_list},
};

static int
domain_run(const struct cli_env *env, int argc, char **argv)
{
	return cli_subcommand_dispatch(
	    &cli_cmd_domain, domain_subs,
	    sizeof(domain_subs) / sizeof(domain_subs[0]), env, argc, argv);
}

const struct cli_command cli_cmd_domain = {
    .name = "domain",
    .usage = "add|del|list [DOMAIN] [--force] [--json]",
    .summary = "add, delete or list the mail domains",
    .help = "add DOMAIN\n"
            "    receive mail for DOMAIN (an IDN name is stored as its xn-- "
            "A-label)\n"
            "del DOMAIN [--force]\n"
            "    refused while the domain has users or aliases, unless --force "
            "deletes\n"
            "    them too (their mail stays on disk)\n"
            "list [--json]\n"
            "    every domain, one a line, or a JSON array\n"
            "\n"
            "Exit 65 for a bad or unknown name, or a domain that exists.\n",
    .run = domain_run,
};
