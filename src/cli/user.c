/* tern user add|del|passwd|suspend|resume|list|quota and
 * tern user app-password add|del|list: mailbox users and their app
 * passwords. Addresses are stored normalized (address_key).
 * SECURITY: passwords come from stdin or a no-echo prompt, never argv;
 * generated app passwords come from RAND_bytes and are shown once. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>

#include "cli/cli.h"
#include "cli/dirutil.h"
#include "core/config.h"
#include "core/proc.h"

#define APP_LABEL_MAX 64
/* 16 characters of [a-z0-9] in 4 groups: about 82 bits. */
#define APP_PASSWORD_GROUPS 4
#define APP_PASSWORD_GROUP_LEN 4
#define APP_PASSWORD_SIZE (APP_PASSWORD_GROUPS * (APP_PASSWORD_GROUP_LEN + 1))

static const struct {
	const char *name;
	unsigned bit;
} services[] = {
    {"imap", DIR_SERVICE_IMAP},
    {"pop3", DIR_SERVICE_POP3},
    {"smtp", DIR_SERVICE_SMTP},
    {"sieve", DIR_SERVICE_SIEVE},
};

#define NSERVICES (sizeof(services) / sizeof(services[0]))

static int
parse_quota(const struct cli_admin *a, const char *text, uint64_t *bytes_r)
{
	if (strcmp(text, "none") == 0) {
		*bytes_r = 0;
		return 0;
	}
	if (config_parse_size(text, bytes_r) < 0)
		return cli_admin_fail(a, EXIT_USAGE,
		                      "\"%.40s\" is not a size: a number with "
		                      "k, M, G or T (powers of 1024), or "
		                      "\"none\" (0) for no limit",
		                      text);
	return 0;
}

/* "imap,smtp" → DIR_SERVICE_* bits; "all" for every one. */
static int
parse_services(const struct cli_admin *a, const char *text, unsigned *bits_r)
{
	const char *p = text;

	*bits_r = 0;
	if (strcmp(text, "all") == 0) {
		*bits_r = DIR_SERVICE_ALL;
		return 0;
	}
	while (*p != '\0') {
		size_t len = strcspn(p, ","), i;

		for (i = 0; i < NSERVICES; i++)
			if (strlen(services[i].name) == len &&
			    strncmp(services[i].name, p, len) == 0)
				break;
		if (i == NSERVICES)
			return cli_admin_fail(a, EXIT_USAGE,
			                      "--services: \"%.*s\" is not "
			                      "one of imap, pop3, smtp, sieve "
			                      "(comma-separated), or all",
			                      (int)(len > 20 ? 20 : len), p);
		*bits_r |= services[i].bit;
		p += len;
		if (*p == ',')
			p++;
	}
	if (*bits_r == 0)
		return cli_admin_fail(a, EXIT_USAGE,
		                      "--services names no service");
	return 0;
}

static void
services_text(unsigned bits, char *out, size_t outlen)
{
	size_t o = 0;

	out[0] = '\0';
	for (size_t i = 0; i < NSERVICES; i++) {
		size_t len = strlen(services[i].name);

		if ((bits & services[i].bit) == 0 || o + len + 2 > outlen)
			continue;
		if (o > 0)
			out[o++] = ',';
		memcpy(out + o, services[i].name, len + 1);
		o += len;
	}
	if (o == 0)
		snprintf(out, outlen, "-");
}

/* ------------------------------------------------------------ users */

static int
user_add(struct cli_admin *a, const struct cli_args *args)
{
	char key[CLI_KEY_SIZE], password[PASSWORD_MAX + 1];
	char *hash = NULL, *scram = NULL, *error = NULL;
	struct address addr, base;
	struct dir_user user;
	uint64_t quota = 0;
	size_t len = 0;
	int rc;

	if ((rc = cli_admin_address(a, args->pos[0], key, &addr)) != 0)
		return rc;
	if (args->quota != NULL &&
	    (rc = parse_quota(a, args->quota, &quota)) != 0)
		return rc;
	if ((rc = cli_admin_domain_exists(a, addr.domain)) != 0)
		return rc;
	memset(&user, 0, sizeof(user));
	switch (directory_user_get(a->dir, key, &user, &error)) {
	case 1:
		dir_user_clear(&user);
		return cli_admin_fail(a, EXIT_DATAERR,
		                      "user %s exists (`tern user passwd %s` "
		                      "changes its password)",
		                      key, key);
	case 0:
		break;
	default:
		return cli_admin_dir_fail(a, EXIT_TEMPFAIL, &error);
	}
	base = addr;
	if (a->cfg->subaddress_separator[0] != '\0' &&
	    address_strip_subaddress(&base, a->cfg->subaddress_separator)) {
		char stripped[CLI_KEY_SIZE];

		address_key(&base, stripped, sizeof(stripped));
		cli_admin_note(a,
		               "mail to %s will go to %s (\"%s\" starts a "
		               "subaddress)",
		               key, stripped, a->cfg->subaddress_separator);
	}
	if ((rc = cli_password_read(a, args->password_stdin, true, password,
	                            &len)) != 0)
		return rc;
	if (len > 0) {
		rc = cli_password_make(a, password, len, &hash, &scram);
		explicit_bzero(password, sizeof(password));
		if (rc != 0)
			return rc;
	}
	user.address = key;
	user.password_hash = hash;
	user.scram = scram;
	user.quota_bytes = quota;
	user.suspended = false;
	user.created = (int64_t)time(NULL);
	if (directory_user_add(a->dir, &user, &error) < 0)
		rc = cli_admin_dir_fail(a, EXIT_DATAERR, &error);
	free(hash);
	free(scram);
	if (rc != 0)
		return rc;
	if (len == 0)
		cli_admin_note(a,
		               "%s has no password and cannot log in; set "
		               "one with `tern user passwd %s`",
		               key, key);
	cli_notify_directory_changed(a->cfg);
	return 0;
}

static int
user_del(struct cli_admin *a, const struct cli_args *args)
{
	char key[CLI_KEY_SIZE], *error = NULL;
	int rc;

	if ((rc = cli_admin_address(a, args->pos[0], key, NULL)) != 0 ||
	    (rc = cli_admin_user_exists(a, key)) != 0)
		return rc;
	if (directory_user_del(a->dir, key, &error) < 0)
		return cli_admin_dir_fail(a, EXIT_DATAERR, &error);
	cli_notify_directory_changed(a->cfg);
	return 0;
}

static int
user_passwd(struct cli_admin *a, const struct cli_args *args)
{
	char key[CLI_KEY_SIZE], password[PASSWORD_MAX + 1];
	char *hash = NULL, *scram = NULL, *error = NULL;
	size_t len = 0;
	int rc;

	if ((rc = cli_admin_address(a, args->pos[0], key, NULL)) != 0 ||
	    (rc = cli_admin_user_exists(a, key)) != 0)
		return rc;
	if ((rc = cli_password_read(a, args->password_stdin, false, password,
	                            &len)) != 0)
		return rc;
	if (len == 0)
		return cli_admin_fail(a, EXIT_USAGE,
		                      "no password given: pipe it in with "
		                      "--password-stdin, or run this on a "
		                      "terminal to be asked");
	rc = cli_password_make(a, password, len, &hash, &scram);
	explicit_bzero(password, sizeof(password));
	if (rc != 0)
		return rc;
	if (directory_user_set_password(a->dir, key, hash, scram, &error) < 0)
		rc = cli_admin_dir_fail(a, EXIT_DATAERR, &error);
	free(hash);
	free(scram);
	if (rc == 0)
		cli_notify_directory_changed(a->cfg);
	return rc;
}

static int
set_suspended(struct cli_admin *a, const struct cli_args *args, bool on)
{
	char key[CLI_KEY_SIZE], *error = NULL;
	int rc;

	if ((rc = cli_admin_address(a, args->pos[0], key, NULL)) != 0 ||
	    (rc = cli_admin_user_exists(a, key)) != 0)
		return rc;
	if (directory_user_set_suspended(a->dir, key, on, &error) < 0)
		return cli_admin_dir_fail(a, EXIT_DATAERR, &error);
	cli_notify_directory_changed(a->cfg);
	return 0;
}

static int
user_suspend(struct cli_admin *a, const struct cli_args *args)
{
	return set_suspended(a, args, true);
}

static int
user_resume(struct cli_admin *a, const struct cli_args *args)
{
	return set_suspended(a, args, false);
}

static int
user_quota(struct cli_admin *a, const struct cli_args *args)
{
	char key[CLI_KEY_SIZE], *error = NULL;
	uint64_t quota;
	int rc;

	if ((rc = cli_admin_address(a, args->pos[0], key, NULL)) != 0 ||
	    (rc = parse_quota(a, args->pos[1], &quota)) != 0 ||
	    (rc = cli_admin_user_exists(a, key)) != 0)
		return rc;
	if (directory_user_set_quota(a->dir, key, quota, &error) < 0)
		return cli_admin_dir_fail(a, EXIT_DATAERR, &error);
	cli_notify_directory_changed(a->cfg);
	return 0;
}

static void
users_json(const struct dir_user *users, size_t n)
{
	fputs("[", stdout);
	for (size_t i = 0; i < n; i++) {
		const struct dir_user *u = &users[i];

		fputs(i == 0 ? "\n  {\"address\": " : ",\n  {\"address\": ",
		      stdout);
		cli_json_string(stdout, u->address);
		printf(", \"quota_bytes\": %llu, \"suspended\": %s, "
		       "\"created\": %lld, \"scheme\": ",
		       (unsigned long long)u->quota_bytes,
		       u->suspended ? "true" : "false", (long long)u->created);
		if (u->password_hash != NULL)
			cli_json_string(stdout,
			                password_scheme(u->password_hash));
		else
			fputs("null", stdout);
		fputs("}", stdout);
	}
	fputs(n > 0 ? "\n]\n" : "]\n", stdout);
}

/* ADDRESS  QUOTA  STATE  SCHEME  CREATED, aligned. */
static void
users_text(const struct dir_user *users, size_t n)
{
	size_t w_addr = 0, w_quota = 0, w_scheme = 0, w;
	char size[32], date[32];

	for (size_t i = 0; i < n; i++) {
		if ((w = cli_text_width(users[i].address)) > w_addr)
			w_addr = w;
		cli_format_size(users[i].quota_bytes, size, sizeof(size));
		if ((w = strlen(size)) > w_quota)
			w_quota = w;
		if (users[i].password_hash != NULL &&
		    (w = strlen(password_scheme(users[i].password_hash))) >
		        w_scheme)
			w_scheme = w;
	}
	if (w_scheme < strlen("no-password"))
		w_scheme = strlen("no-password");
	for (size_t i = 0; i < n; i++) {
		const struct dir_user *u = &users[i];

		cli_text_cell(stdout, u->address, w_addr);
		cli_format_size(u->quota_bytes, size, sizeof(size));
		cli_format_date(u->created, date, sizeof(date));
		printf("  %-*s  %-9s  %-*s  %s\n", (int)w_quota, size,
		       u->suspended ? "suspended" : "active", (int)w_scheme,
		       u->password_hash != NULL
		           ? password_scheme(u->password_hash)
		           : "no-password",
		       date);
	}
}

static int
user_list(struct cli_admin *a, const struct cli_args *args)
{
	char domain[ADDRESS_DOMAIN_MAX + 1], *error = NULL;
	struct dir_user *users = NULL;
	size_t n = 0;
	int rc;

	if (args->npos > 0 &&
	    ((rc = cli_admin_domain(a, args->pos[0], domain)) != 0 ||
	     (rc = cli_admin_domain_exists(a, domain)) != 0))
		return rc;
	if (directory_user_list(a->dir, args->npos > 0 ? domain : NULL, &users,
	                        &n, &error) < 0)
		return cli_admin_dir_fail(a, EXIT_TEMPFAIL, &error);
	if (args->json)
		users_json(users, n);
	else
		users_text(users, n);
	dir_users_free(&users, n);
	return 0;
}

/* ------------------------------------------------------------ app passwords */

static int
app_password_generate(char out[APP_PASSWORD_SIZE])
{
	static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
	const unsigned limit = 256 - 256 % (sizeof(alphabet) - 1);
	unsigned char rnd[64];
	size_t used = sizeof(rnd), o = 0;
	int chars = 0;

	while (chars < APP_PASSWORD_GROUPS * APP_PASSWORD_GROUP_LEN) {
		if (used == sizeof(rnd)) {
			if (RAND_bytes(rnd, sizeof(rnd)) != 1)
				return -1;
			used = 0;
		}
		/* Rejection sampling keeps every character equally likely. */
		if (rnd[used] >= limit) {
			used++;
			continue;
		}
		if (chars > 0 && chars % APP_PASSWORD_GROUP_LEN == 0)
			out[o++] = '-';
		out[o++] = alphabet[rnd[used++] % (sizeof(alphabet) - 1)];
		chars++;
	}
	out[o] = '\0';
	explicit_bzero(rnd, sizeof(rnd));
	return 0;
}

/* 1 when address has an app password named label, 0 not, or -rc. */
static int
app_password_find(struct cli_admin *a, const char *address, const char *label,
                  int *rc_r)
{
	struct dir_app_password *list = NULL;
	char *error = NULL;
	size_t n = 0;
	int found = 0;

	*rc_r = 0;
	if (directory_app_password_list(a->dir, address, &list, &n, &error) <
	    0) {
		*rc_r = cli_admin_dir_fail(a, EXIT_TEMPFAIL, &error);
		return -1;
	}
	for (size_t i = 0; i < n && !found; i++)
		found = strcmp(list[i].label, label) == 0;
	dir_app_passwords_free(&list, n);
	return found;
}

static int
check_label(const struct cli_admin *a, const char *label)
{
	if (label[0] == '\0' || strlen(label) > APP_LABEL_MAX ||
	    !cli_text_valid(label))
		return cli_admin_fail(a, EXIT_DATAERR,
		                      "a label is 1 to %d bytes of UTF-8 "
		                      "text without control characters",
		                      APP_LABEL_MAX);
	return 0;
}

static int
app_password_add(struct cli_admin *a, const struct cli_args *args)
{
	char key[CLI_KEY_SIZE], password[PASSWORD_MAX + 1];
	char *hash = NULL, *scram = NULL, *error = NULL;
	const char *label = args->pos[1];
	unsigned bits = DIR_SERVICE_ALL;
	bool generated = false;
	size_t len = 0;
	int rc;

	if ((rc = cli_admin_address(a, args->pos[0], key, NULL)) != 0 ||
	    (rc = check_label(a, label)) != 0 ||
	    (args->services != NULL &&
	     (rc = parse_services(a, args->services, &bits)) != 0) ||
	    (rc = cli_admin_user_exists(a, key)) != 0)
		return rc;
	switch (app_password_find(a, key, label, &rc)) {
	case 1:
		return cli_admin_fail(a, EXIT_DATAERR,
		                      "%s already has an app password with "
		                      "that label; delete it first",
		                      key);
	case 0:
		break;
	default:
		return rc;
	}
	if (args->password_stdin) {
		if ((rc = cli_password_read(a, true, false, password, &len)) !=
		    0)
			return rc;
	} else {
		if (app_password_generate(password) < 0)
			return cli_admin_fail(a, EXIT_SOFTWARE,
			                      "the random generator failed");
		len = strlen(password);
		generated = true;
	}
	rc = cli_password_make(a, password, len, &hash, &scram);
	if (rc == 0 && directory_app_password_add(a->dir, key, label, hash,
	                                          scram, bits, &error) < 0)
		rc = cli_admin_dir_fail(a, EXIT_DATAERR, &error);
	free(hash);
	free(scram);
	if (rc == 0 && generated) {
		printf("%s\n", password);
		fflush(stdout);
		cli_admin_note(a, "this password is shown only once; use it "
		                  "in place of the account password");
	}
	explicit_bzero(password, sizeof(password));
	if (rc == 0)
		cli_notify_directory_changed(a->cfg);
	return rc;
}

static int
app_password_del(struct cli_admin *a, const struct cli_args *args)
{
	char key[CLI_KEY_SIZE], *error = NULL;
	int rc;

	if ((rc = cli_admin_address(a, args->pos[0], key, NULL)) != 0 ||
	    (rc = cli_admin_user_exists(a, key)) != 0)
		return rc;
	switch (app_password_find(a, key, args->pos[1], &rc)) {
	case 1:
		break;
	case 0:
		return cli_admin_fail(a, EXIT_DATAERR,
		                      "%s has no app password with that "
		                      "label; `tern user app-password list "
		                      "%s` shows them",
		                      key, key);
	default:
		return rc;
	}
	if (directory_app_password_del(a->dir, key, args->pos[1], &error) < 0)
		return cli_admin_dir_fail(a, EXIT_DATAERR, &error);
	cli_notify_directory_changed(a->cfg);
	return 0;
}

static int
app_password_list(struct cli_admin *a, const struct cli_args *args)
{
	char key[CLI_KEY_SIZE], svc[64], date[32], *error = NULL;
	struct dir_app_password *list = NULL;
	size_t n = 0, width = 0, w;
	int rc;

	if ((rc = cli_admin_address(a, args->pos[0], key, NULL)) != 0 ||
	    (rc = cli_admin_user_exists(a, key)) != 0)
		return rc;
	if (directory_app_password_list(a->dir, key, &list, &n, &error) < 0)
		return cli_admin_dir_fail(a, EXIT_TEMPFAIL, &error);
	if (args->json) {
		fputs("[", stdout);
		for (size_t i = 0; i < n; i++) {
			fputs(i == 0 ? "\n  {\"label\": " : ",\n  {\"label\": ",
			      stdout);
			cli_json_string(stdout, list[i].label);
			fputs(", \"services\": [", stdout);
			for (size_t s = 0, k = 0; s < NSERVICES; s++)
				if (list[i].services & services[s].bit)
					printf("%s\"%s\"", k++ > 0 ? ", " : "",
					       services[s].name);
			printf("], \"created\": %lld}",
			       (long long)list[i].created);
		}
		fputs(n > 0 ? "\n]\n" : "]\n", stdout);
	} else {
		for (size_t i = 0; i < n; i++)
			if ((w = cli_text_width(list[i].label)) > width)
				width = w;
		for (size_t i = 0; i < n; i++) {
			services_text(list[i].services, svc, sizeof(svc));
			cli_format_date(list[i].created, date, sizeof(date));
			cli_text_cell(stdout, list[i].label, width);
			printf("  %-21s  %s\n", svc, date);
		}
	}
	dir_app_passwords_free(&list, n);
	return 0;
}

static const struct cli_subcommand user_subs[] = {
    {"add", "add ADDRESS [--password-stdin] [--quota SIZE]",
     CLI_OPT_PASSWORD_STDIN | CLI_OPT_QUOTA, 1, 1, user_add},
    {"del", "del ADDRESS", 0, 1, 1, user_del},
    {"passwd", "passwd ADDRESS [--password-stdin]", CLI_OPT_PASSWORD_STDIN, 1,
     1, user_passwd},
    {"suspend", "suspend ADDRESS", 0, 1, 1, user_suspend},
    {"resume", "resume ADDRESS", 0, 1, 1, user_resume},
    {"list", "list [DOMAIN] [--json]", CLI_OPT_JSON, 0, 1, user_list},
    {"quota", "quota ADDRESS SIZE", 0, 2, 2, user_quota},
    {"app-password add",
     "app-password add ADDRESS LABEL [--services LIST] [--password-stdin]",
     CLI_OPT_SERVICES | CLI_OPT_PASSWORD_STDIN, 2, 2, app_password_add},
    {"app-password del", "app-password del ADDRESS LABEL", 0, 2, 2,
     app_password_del},
    {"app-password list", "app-password list ADDRESS [--json]", CLI_OPT_JSON, 1,
     1, app_password_list},
};

static int
user_run(const struct cli_env *env, int argc, char **argv)
{
	return cli_subcommand_dispatch(&cli_cmd_user, user_subs,
	                               sizeof(user_subs) / sizeof(user_subs[0]),
	                               env, argc, argv);
}

const struct cli_command cli_cmd_user = {
    .name = "user",
    .usage = "add|del|passwd|suspend|resume|list|quota|app-password ...",
    .summary = "add, change, suspend, delete or list mailbox users",
    .help =
        "add ADDRESS [--password-stdin] [--quota SIZE]\n"
        "    a new user in an existing domain; with no password (none on stdin "
        "and\n"
        "    no terminal) it cannot log in until `tern user passwd`\n"
        "del ADDRESS\n"
        "    delete the user and its app passwords (its mail stays on disk)\n"
        "passwd ADDRESS [--password-stdin]\n"
        "    set the password (asked twice, without echo, on a terminal)\n"
        "suspend ADDRESS | resume ADDRESS\n"
        "    turn logins and sending off or on\n"
        "list [DOMAIN] [--json]\n"
        "    address, quota, state, password scheme and creation day\n"
        "quota ADDRESS SIZE\n"
        "    10G, 500M, ... (powers of 1024); none or 0 for no limit\n"
        "app-password add ADDRESS LABEL [--services LIST] [--password-stdin]\n"
        "    an extra password for one device; LIST of imap,pop3,smtp,sieve\n"
        "    (default all); without --password-stdin one is generated and\n"
        "    printed once\n"
        "app-password del ADDRESS LABEL | app-password list ADDRESS [--json]\n"
        "\n"
        "Passwords never come from the command line: --password-stdin reads "
        "one\n"
        "line of standard input. Addresses are stored lower case, the domain "
        "as\n"
        "an A-label. Exit 65 for a bad address, an unknown domain or user.\n",
    .run = user_run,
};
