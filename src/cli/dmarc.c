/* tern dmarc report [DOMAIN] [--rua ADDRESS] [--json]: the DMARC aggregate
 * reports that receivers sent to our rua address (quickstart publishes
 * rua=mailto:postmaster@DOMAIN), read from every folder of the mailbox(es)
 * that address delivers to, summarized per domain: who reported what for
 * which period, and per source IP how much mail passed aligned SPF, DKIM
 * and DMARC and what was done with it; sources that fail both look like
 * spoofers, sources that pass DKIM alone like forwarders.
 * SECURITY: runs as the operator (often root); the directory is read first,
 * then, as root, the process becomes store_user before it opens a mailbox
 * (as `tern mailbox reindex` does), and only mailboxes the rua address
 * delivers to are opened. Reports are attacker-controlled: they are parsed
 * by src/mailauth/dmarc_report (bounded decompression and XML), messages
 * over DMARC_CLI_MESSAGE_MAX are not read, and dmarc_summary.c escapes
 * every string it prints. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/dirutil.h"
#include "cli/dmarc_summary.h"
#include "core/config.h"
#include "core/proc.h"
#include "core/xmalloc.h"
#include "mailauth/dmarc_report.h"
#include "store/mailbox.h"

/* Messages larger than this are not read (a report is rarely 1 MiB). */
#define DMARC_CLI_MESSAGE_MAX (32u * 1024 * 1024)

/* The option only report takes; cli_subcommand_dispatch parses the rest. */
static const char *dmarc_opt_rua;

/* ------------------------------------------------------------ reading */

/* Every report in one message. */
static void
read_message(struct dmarc_summary *s, const char *where, const struct buf *msg)
{
	struct dmarc_report_item *items = NULL;
	size_t n = dmarc_report_from_message((const char *)msg->data, msg->len,
	                                     &items);

	for (size_t i = 0; i < n; i++) {
		char *at = items[i].filename[0] != '\0'
		               ? xasprintf("%s %s", where, items[i].filename)
		               : xstrdup(where);

		if (items[i].feedback != NULL)
			dmarc_summary_add(s, items[i].feedback, at);
		else
			dmarc_summary_problem(s, at, items[i].error);
		free(at);
	}
	dmarc_report_items_free(&items, n);
}

/* One folder of a store. 0 or a sysexits code. */
static int
read_folder(struct cli_admin *a, struct dmarc_summary *s, struct mbox_user *u,
            const char *key, const char *folder)
{
	struct mbox *box = NULL;
	struct mbox_msg *msgs = NULL;
	size_t n = 0;
	char *error = NULL;
	struct buf b;

	if (mbox_open(u, folder, true, &box, &error) != MBOX_OK ||
	    mbox_messages(box, &msgs, &n, &error) != MBOX_OK) {
		cli_admin_fail(a, EXIT_TEMPFAIL, "%s, folder %s: %s", key,
		               folder, error != NULL ? error : "cannot read");
		free(error);
		mbox_close(&box);
		return EXIT_TEMPFAIL;
	}
	buf_init(&b, DMARC_CLI_MESSAGE_MAX);
	for (size_t i = 0; i < n; i++) {
		char *where =
		    xasprintf("%s %s uid %u", key, folder, msgs[i].uid);
		int rc;

		s->messages_read++;
		buf_reset(&b);
		if (msgs[i].size > DMARC_CLI_MESSAGE_MAX) {
			dmarc_summary_problem(s, where,
			                      "not read: larger than 32 MiB");
		} else if ((rc = mbox_read(box, msgs[i].uid, &b, &error)) !=
		           MBOX_OK) {
			if (rc != MBOX_ERR_NOTFOUND)
				dmarc_summary_problem(
				    s, where,
				    error != NULL ? error : "cannot read");
			xfree(&error);
		} else {
			read_message(s, where, &b);
		}
		free(where);
	}
	buf_free(&b);
	mbox_msg_free_list(&msgs, n);
	mbox_close(&box);
	return 0;
}

/* A directory key's two halves are path components: no "/", no control
 * byte, no leading "." (as src/store/maildir.c checks them). */
static bool
component_ok(const char *s, size_t len)
{
	if (len == 0 || len > 255 || s[0] == '.')
		return false;
	for (size_t i = 0; i < len; i++)
		if (s[i] == '/' || (unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return false;
	return true;
}

/* Every folder of the store of key. 0 or a sysexits code. */
static int
read_store(struct cli_admin *a, struct dmarc_summary *s, const char *key)
{
	const char *at = strrchr(key, '@');
	struct mbox_user *u = NULL;
	struct mbox_info *list = NULL;
	size_t n = 0;
	char *dir, *error = NULL;
	struct stat st;
	int rc = 0;

	if (at == NULL || !component_ok(key, (size_t)(at - key)) ||
	    !component_ok(at + 1, strlen(at + 1)))
		return cli_admin_fail(a, EXIT_DATAERR,
		                      "%s cannot name a mailbox", key);
	dir = xasprintf("%s/mail/%s/%.*s", a->cfg->data_dir, at + 1,
	                (int)(at - key), key);
	if (lstat(dir, &st) < 0) {
		int err = errno;

		if (err == ENOENT) {
			cli_admin_note(a, "%s has received no mail yet", key);
			free(dir);
			return 0;
		}
		cli_admin_fail(a, EXIT_UNAVAILABLE, "cannot read %s: %s%s", dir,
		               strerror(err),
		               err == EACCES ? " (run as root, or as the store "
		                               "user)"
		                             : "");
		free(dir);
		return EXIT_UNAVAILABLE;
	}
	if (!S_ISDIR(st.st_mode)) {
		cli_admin_fail(a, EXIT_UNAVAILABLE, "%s is not a directory",
		               dir);
		free(dir);
		return EXIT_UNAVAILABLE;
	}
	if (access(dir, R_OK | W_OK | X_OK) < 0) {
		cli_admin_fail(
		    a, EXIT_UNAVAILABLE,
		    "cannot read %s: %s (run as root, or as the store "
		    "user %s)",
		    dir, strerror(errno), a->cfg->store_user);
		free(dir);
		return EXIT_UNAVAILABLE;
	}
	if (mbox_user_open(dir, 0, &u, &error) != MBOX_OK ||
	    mbox_list(u, false, &list, &n, &error) != MBOX_OK) {
		cli_admin_fail(a, EXIT_TEMPFAIL,
		               "cannot open the mailbox of %s: "
		               "%s",
		               key, error != NULL ? error : "failed");
		free(error);
		mbox_user_close(&u);
		free(dir);
		return EXIT_TEMPFAIL;
	}
	for (size_t i = 0; i < n && rc == 0; i++)
		if (list[i].exists)
			rc = read_folder(a, s, u, key, list[i].name);
	mbox_info_free_list(&list, n);
	mbox_user_close(&u);
	free(dir);
	return rc;
}

/* ------------------------------------------------------------ rua */

/* The local mailboxes that mail to rua (an address key) reaches. 0 or a
 * sysexits code; what is not found is a note. */
static int
resolve_rua(struct cli_admin *a, struct dmarc_summary *s, const char *rua)
{
	const char *at = strrchr(rua, '@');
	char **finals = NULL, *error = NULL;
	size_t n = 0;
	int rc;

	switch (directory_domain_exists(a->dir, at + 1, &error)) {
	case 1:
		break;
	case 0:
		cli_admin_note(a,
		               "%s is not at a domain of this instance: the "
		               "reports sent there are not here",
		               rua);
		return 0;
	default:
		return cli_admin_dir_fail(a, EXIT_TEMPFAIL, &error);
	}
	rc = directory_resolve(a->dir, rua, &finals, &n, &error);
	if (rc < 0)
		return cli_admin_dir_fail(a, EXIT_TEMPFAIL, &error);
	if (rc == 0) {
		cli_admin_note(
		    a,
		    "no user or alias %s, so reports sent to it are "
		    "refused: `tern alias add %s USER` (or `tern user "
		    "add %s`) receives them",
		    rua, rua, rua);
		return 0;
	}
	for (size_t i = 0; i < n; i++) {
		const char *fat = strrchr(finals[i], '@');

		if (fat != NULL &&
		    directory_domain_exists(a->dir, fat + 1, &error) == 1)
			dmarc_summary_store(s, finals[i]);
		else
			cli_admin_note(
			    a,
			    "%s forwards to %s; reports there are not "
			    "read",
			    rua, finals[i]);
		xfree(&error);
	}
	directory_strings_free(&finals, n);
	return 0;
}

/* ------------------------------------------------------------ report */

static int
dmarc_report_cmd(struct cli_admin *a, const struct cli_args *args)
{
	char domain[ADDRESS_DOMAIN_MAX + 1], rua[CLI_KEY_SIZE],
	    **domains = NULL, *error = NULL;
	struct dmarc_summary s;
	struct address addr;
	size_t ndomains = 0;
	int rc = 0;

	dmarc_summary_init(&s, NULL);
	if (args->npos == 1) {
		if ((rc = cli_admin_domain(a, args->pos[0], domain)) != 0)
			goto out;
		s.filter = domain;
		if (dmarc_opt_rua == NULL &&
		    (rc = cli_admin_domain_exists(a, domain)) != 0)
			goto out;
	}
	if (dmarc_opt_rua != NULL) {
		if ((rc = cli_admin_address(a, dmarc_opt_rua, rua, &addr)) != 0)
			goto out;
		/* As delivery does: dmarc+reports@ is dmarc@. */
		if (address_strip_subaddress(&addr,
		                             a->cfg->subaddress_separator))
			address_key(&addr, rua, sizeof(rua));
		rc = resolve_rua(a, &s, rua);
	} else if (s.filter != NULL) {
		snprintf(rua, sizeof(rua), "postmaster@%s", domain);
		rc = resolve_rua(a, &s, rua);
	} else {
		if (directory_domain_list(a->dir, &domains, &ndomains, &error) <
		    0) {
			rc = cli_admin_dir_fail(a, EXIT_TEMPFAIL, &error);
			goto out;
		}
		for (size_t i = 0; i < ndomains && rc == 0; i++) {
			snprintf(rua, sizeof(rua), "postmaster@%s", domains[i]);
			rc = resolve_rua(a, &s, rua);
		}
		directory_strings_free(&domains, ndomains);
		if (ndomains == 0) {
			cli_admin_fail(a, EXIT_UNAVAILABLE,
			               "no domains yet: `tern domain add` adds "
			               "one");
			rc = EXIT_UNAVAILABLE;
		}
	}
	if (rc == 0 && s.nstores == 0)
		rc = cli_admin_fail(a, EXIT_UNAVAILABLE,
		                    "no mailbox here receives DMARC reports");
	if (rc != 0)
		goto out;
	/* The directory is done with; mailboxes are the store's. */
	directory_close(&a->dir);
	if (geteuid() == 0 &&
	    proc_drop_privileges(a->cfg->store_user, NULL, &error) < 0) {
		rc = cli_admin_fail(a, EXIT_OSERR, "cannot become %s: %s",
		                    a->cfg->store_user, error);
		free(error);
		goto out;
	}
	for (size_t i = 0; i < s.nstores && rc == 0; i++)
		rc = read_store(a, &s, s.stores[i]);
	if (rc != 0)
		goto out;
	dmarc_summary_print(&s, args->json);
	if (s.reports == 0)
		cli_admin_note(a, "no DMARC aggregate reports%s%s found",
		               s.filter != NULL ? " for " : "",
		               s.filter != NULL ? s.filter : "");
out:
	dmarc_summary_free(&s);
	return rc;
}

/* ------------------------------------------------------------ dispatch */

static const struct cli_subcommand dmarc_subs[] = {
    {"report", "report [DOMAIN] [--rua ADDRESS] [--json]", CLI_OPT_JSON, 0, 1,
     dmarc_report_cmd},
};

/* Take --rua ADDRESS (or --rua=ADDRESS) out of argv for report; the rest
 * goes to cli_subcommand_dispatch. The new argc, or -1 after a message. */
static int
dmarc_take_options(int argc, char **argv, char **out)
{
	bool done = false;
	int n = 0;

	dmarc_opt_rua = NULL;
	for (int i = 0; i < argc; i++) {
		const char *arg = argv[i];

		if (i < 2 || done || strncmp(arg, "--rua", 5) != 0 ||
		    (arg[5] != '\0' && arg[5] != '=')) {
			if (strcmp(arg, "--") == 0 && i >= 2)
				done = true;
			out[n++] = argv[i];
			continue;
		}
		if (strcmp(argv[1], "report") != 0) {
			fprintf(stderr, "tern dmarc %s: unknown option --rua\n",
			        argv[1]);
			return -1;
		}
		if (arg[5] == '=') {
			dmarc_opt_rua = arg + 6;
		} else if (i + 1 < argc) {
			dmarc_opt_rua = argv[++i];
		} else {
			fprintf(stderr, "tern dmarc report: --rua needs an "
			                "address\n");
			return -1;
		}
	}
	out[n] = NULL;
	return n;
}

static int
dmarc_run(const struct cli_env *env, int argc, char **argv)
{
	char **args = xcalloc((size_t)argc + 1, sizeof(args[0]));
	int n, rc;

	if ((n = dmarc_take_options(argc, argv, args)) < 0) {
		fprintf(stderr, "usage: tern dmarc %s\n", dmarc_subs[0].usage);
		free(args);
		return EXIT_USAGE;
	}
	rc = cli_subcommand_dispatch(&cli_cmd_dmarc, dmarc_subs,
	                             sizeof(dmarc_subs) / sizeof(dmarc_subs[0]),
	                             env, n, args);
	free(args);
	return rc;
}

const struct cli_command cli_cmd_dmarc = {
    .name = "dmarc",
    .usage = "report [DOMAIN] [--rua ADDRESS] [--json]",
    .summary = "summarize the DMARC aggregate reports sent to us",
    .help =
        "report [DOMAIN] [--rua ADDRESS] [--json]\n"
        "    read the DMARC aggregate reports (XML, .gz or .zip attachments)"
        "\n"
        "    in every folder of the mailbox that the rua address delivers "
        "to,\n"
        "    and summarize them per domain: the reports (who, which "
        "period,\n"
        "    which policy) and per source IP the messages that passed or "
        "failed\n"
        "    aligned SPF, DKIM and DMARC and what was done with them.\n"
        "    Verdicts: authorized (passes), forwarder (passes by DKIM "
        "alone),\n"
        "    spoofer? (fails both), mixed (some fail both).\n"
        "\n"
        "The rua address is postmaster@DOMAIN, as quickstart publishes it "
        "(for\n"
        "every domain without DOMAIN), or --rua ADDRESS; an alias is "
        "followed\n"
        "to its local users. With DOMAIN, reports for DOMAIN and its "
        "subdomains\n"
        "count. --json prints one JSON document. Exit 0 also when no "
        "report\n"
        "was found (a note says so), 65 for a bad name, 69 when no "
        "mailbox\n"
        "receives the reports or it cannot be read, 75 when reading "
        "fails.\n",
    .run = dmarc_run,
};
