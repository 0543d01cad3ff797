/* tern alias add|del|list: addresses that forward to others, and per-domain
 * catch-alls ("@domain"). Sources and destinations are stored normalized
 * (address_key); a change that would make the alias loop or exceed the
 * expansion bounds is undone. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/dirutil.h"
#include "core/proc.h"
#include "core/xmalloc.h"

/* The local part that tests where a catch-all leads. */
#define CATCH_ALL_PROBE "tern-catch-all-probe"

/* The next item of a comma-separated list of addresses, spaces around it
 * trimmed; a comma inside a quoted local part does not split. Returns its
 * length (p advanced past it and its comma), or 0 at the end. */
static size_t
list_next(const char **p, const char **item_r)
{
	const char *s = *p, *end;
	bool quoted = false;
	size_t len;

	while (*s == ' ' || *s == '\t')
		s++;
	if (*s == '\0') {
		*p = s;
		return 0;
	}
	for (end = s; *end != '\0' && (quoted || *end != ','); end++) {
		if (*end == '\\' && quoted && end[1] != '\0')
			end++;
		else if (*end == '"')
			quoted = !quoted;
	}
	*p = *end == ',' ? end + 1 : end;
	*item_r = s;
	for (len = (size_t)(end - s);
	     len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'); len--)
		;
	/* An empty item ("a,,b") is reported as one byte: the comma. */
	return len > 0 ? len : 1;
}

/* "@domain" → "@a-label"; "local@domain" → address_key. *domain_r points
 * into key, at the domain. */
static int
alias_source(struct cli_admin *a, const char *text, char *key,
             const char **domain_r)
{
	int rc;

	if (text[0] == '@') {
		key[0] = '@';
		if ((rc = cli_admin_domain(a, text + 1, key + 1)) != 0)
			return rc;
	} else if ((rc = cli_admin_address(a, text, key, NULL)) != 0) {
		return rc;
	}
	*domain_r = strrchr(key, '@') + 1;
	return 0;
}

/* The destinations from args->pos[1…], each split at commas,
 * normalized, deduplicated. */
static int
alias_dests(struct cli_admin *a, const struct cli_args *args,
            const char *source, char ***dests_r, size_t *n_r)
{
	char key[CLI_KEY_SIZE], **dests = NULL, *text;
	const char *p, *item;
	size_t n = 0, len, i;
	int rc = 0;

	for (size_t arg = 1; arg < args->npos && rc == 0; arg++) {
		p = args->pos[arg];
		while (rc == 0 && (len = list_next(&p, &item)) > 0) {
			if (item[0] == ',') {
				rc = cli_admin_fail(a, EXIT_DATAERR,
				                    "empty destination in the "
				                    "list");
				break;
			}
			text = xstrndup(item, len);
			rc = cli_admin_address(a, text, key, NULL);
			free(text);
			if (rc != 0)
				break;
			if (strcmp(key, source) == 0) {
				rc = cli_admin_fail(a, EXIT_DATAERR,
				                    "%s cannot forward to "
				                    "itself",
				                    source);
				break;
			}
			for (i = 0; i < n && strcmp(dests[i], key) != 0; i++)
				;
			if (i < n)
				continue;
			if (n == ALIAS_EXPANSION_MAX) {
				rc = cli_admin_fail(a, EXIT_DATAERR,
				                    "more than %d "
				                    "destinations",
				                    ALIAS_EXPANSION_MAX);
				break;
			}
			dests = xreallocarray(dests, n + 1, sizeof(*dests));
			dests[n++] = xstrdup(key);
		}
	}
	if (rc == 0 && n == 0)
		rc = cli_admin_fail(a, EXIT_DATAERR, "no destination given");
	if (rc != 0) {
		directory_strings_free(&dests, n);
		return rc;
	}
	*dests_r = dests;
	*n_r = n;
	return 0;
}

/* Put back what source had before (nothing: delete it). */
static void
alias_restore(struct cli_admin *a, const char *source, char **old, size_t n)
{
	char *error = NULL;
	int r;

	if (n > 0)
		r = directory_alias_set(a->dir, source,
		                        (const char *const *)old, n, &error);
	else
		r = directory_alias_del(a->dir, source, &error);
	if (r < 0) {
		cli_admin_note(a, "could not undo the change to %s: %s", source,
		               error != NULL ? error : "?");
		free(error);
	}
}

/* Note destinations in local domains that lead nowhere (no user, alias or
 * catch-all yet); true when all of them do, so that resolving the new
 * alias can only fail for that reason. */
static bool
alias_check_dests(struct cli_admin *a, char **dests, size_t n)
{
	char **to = NULL, *error = NULL;
	size_t nto = 0, ndangling = 0;

	for (size_t i = 0; i < n; i++) {
		const char *domain = strrchr(dests[i], '@') + 1;

		if (directory_domain_exists(a->dir, domain, &error) != 1) {
			xfree(&error);
			continue;
		}
		if (directory_resolve(a->dir, dests[i], &to, &nto, &error) ==
		    0) {
			cli_admin_note(a,
			               "%s is neither a user nor an alias; "
			               "mail to it will bounce until it is one",
			               dests[i]);
			ndangling++;
		}
		directory_strings_free(&to, nto);
		nto = 0;
		xfree(&error);
	}
	return ndangling == n;
}

/* A user's address takes its mail; an alias there would never be used. */
static int
source_not_user(struct cli_admin *a, const char *source)
{
	struct dir_user user;
	char *error = NULL;

	memset(&user, 0, sizeof(user));
	switch (directory_user_get(a->dir, source, &user, &error)) {
	case 0:
		return 0;
	case 1:
		dir_user_clear(&user);
		return cli_admin_fail(a, EXIT_DATAERR,
		                      "%s is a user; its mail goes to its "
		                      "mailbox, so the alias would never be "
		                      "used (delete the user first)",
		                      source);
	default:
		return cli_admin_dir_fail(a, EXIT_TEMPFAIL, &error);
	}
}

static int
alias_add(struct cli_admin *a, const struct cli_args *args)
{
	char source[CLI_KEY_SIZE], **dests = NULL, **old = NULL;
	char **to = NULL, *error = NULL, *probe = NULL;
	const char *domain;
	size_t n = 0, nold = 0, nto = 0;
	bool dangling;
	int rc;

	if ((rc = alias_source(a, args->pos[0], source, &domain)) != 0 ||
	    (rc = alias_dests(a, args, source, &dests, &n)) != 0)
		return rc;
	if ((rc = cli_admin_domain_exists(a, domain)) != 0)
		goto out;
	if (source[0] != '@' && (rc = source_not_user(a, source)) != 0)
		goto out;
	if (directory_alias_get(a->dir, source, &old, &nold, &error) < 0) {
		rc = cli_admin_dir_fail(a, EXIT_TEMPFAIL, &error);
		goto out;
	}
	dangling = alias_check_dests(a, dests, n);
	if (directory_alias_set(a->dir, source, (const char *const *)dests, n,
	                        &error) < 0) {
		rc = cli_admin_dir_fail(a, EXIT_DATAERR, &error);
		goto out;
	}
	/* A loop or a too-wide expansion shows only when resolving; a
	 * catch-all is tried with an address nobody has. */
	probe = source[0] == '@' ? xasprintf("%s%s", CATCH_ALL_PROBE, source)
	                         : xstrdup(source);
	if (directory_resolve(a->dir, probe, &to, &nto, &error) < 0 &&
	    !dangling) {
		alias_restore(a, source, old, nold);
		rc = cli_admin_fail(a, EXIT_DATAERR,
		                    "%s would not resolve (%s); nothing "
		                    "changed",
		                    source, error != NULL ? error : "?");
		xfree(&error);
		goto out;
	}
	xfree(&error);
	cli_notify_directory_changed(a->cfg);
out:
	free(probe);
	directory_strings_free(&to, nto);
	directory_strings_free(&old, nold);
	directory_strings_free(&dests, n);
	return rc;
}

static int
alias_del(struct cli_admin *a, const struct cli_args *args)
{
	char source[CLI_KEY_SIZE], **old = NULL, *error = NULL;
	const char *domain;
	size_t nold = 0;
	int rc;

	if ((rc = alias_source(a, args->pos[0], source, &domain)) != 0)
		return rc;
	switch (directory_alias_get(a->dir, source, &old, &nold, &error)) {
	case 1:
		directory_strings_free(&old, nold);
		break;
	case 0:
		return cli_admin_fail(a, EXIT_DATAERR,
		                      "no alias %s; `tern alias list` shows "
		                      "them",
		                      source);
	default:
		return cli_admin_dir_fail(a, EXIT_TEMPFAIL, &error);
	}
	if (directory_alias_del(a->dir, source, &error) < 0)
		return cli_admin_dir_fail(a, EXIT_DATAERR, &error);
	cli_notify_directory_changed(a->cfg);
	return 0;
}

static void
alias_json(char **sources, char **dests, size_t n)
{
	const char *p, *item;
	size_t len;
	char *one;

	fputs("[", stdout);
	for (size_t i = 0; i < n; i++) {
		fputs(i == 0 ? "\n  {\"source\": " : ",\n  {\"source\": ",
		      stdout);
		cli_json_string(stdout, sources[i]);
		printf(", \"catch_all\": %s, \"destinations\": [",
		       sources[i][0] == '@' ? "true" : "false");
		p = dests[i];
		for (size_t k = 0; (len = list_next(&p, &item)) > 0; k++) {
			one = xstrndup(item, len);
			fputs(k > 0 ? ", " : "", stdout);
			cli_json_string(stdout, one);
			free(one);
		}
		fputs("]}", stdout);
	}
	fputs(n > 0 ? "\n]\n" : "]\n", stdout);
}

static int
alias_list(struct cli_admin *a, const struct cli_args *args)
{
	char **sources = NULL, **dests = NULL, *error = NULL;
	size_t n = 0, width = 0, w;

	if (directory_alias_list(a->dir, &sources, &dests, &n, &error) < 0)
		return cli_admin_dir_fail(a, EXIT_TEMPFAIL, &error);
	if (args->json) {
		alias_json(sources, dests, n);
	} else {
		for (size_t i = 0; i < n; i++)
			if ((w = cli_text_width(sources[i])) > width)
				width = w;
		for (size_t i = 0; i < n; i++) {
			cli_text_cell(stdout, sources[i], width);
			fputs("  ", stdout);
			cli_text_cell(stdout, dests[i], 0);
			putchar('\n');
		}
	}
	directory_strings_free(&sources, n);
	directory_strings_free(&dests, n);
	return 0;
}

static const struct cli_subcommand alias_subs[] = {
    {"add", "add SOURCE DEST[,DEST...]", 0, 2, CLI_ARGS_MAX, alias_add},
    {"del", "del SOURCE", 0, 1, 1, alias_del},
    {"list", "list [--json]", CLI_OPT_JSON, 0, 0, alias_list},
};

static int
alias_run(const struct cli_env *env, int argc, char **argv)
{
	return cli_subcommand_dispatch(
	    &cli_cmd_alias, alias_subs,
	    sizeof(alias_subs) / sizeof(alias_subs[0]), env, argc, argv);
}

const struct cli_command cli_cmd_alias = {
    .name = "alias",
    .usage = "add SOURCE DEST[,DEST...] | del SOURCE | list [--json]",
    .summary = "forward addresses, or a whole domain (catch-all)",
    .help = "add SOURCE DEST[,DEST...]\n"
            "    mail for SOURCE goes to each DEST (users, other aliases, "
            "external\n"
            "    addresses); adding to an existing SOURCE replaces its "
            "destinations\n"
            "del SOURCE\n"
            "    remove the alias\n"
            "list [--json]\n"
            "    every alias: its source and destinations\n"
            "\n"
            "SOURCE is local@domain in an existing domain, or @domain for a "
            "catch-all:\n"
            "mail for any address of the domain that is neither a user nor an "
            "alias.\n"
            "An alias that would loop is refused. Exit 65 for bad input.\n",
    .run = alias_run,
};
