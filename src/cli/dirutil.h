/* What the administration commands (domain, user, alias) share: their
 * subcommand tables and option parsing, opening the directory named by the
 * config, reading a password without echo or from stdin, hashing it, and
 * writing text tables and JSON.
 * SECURITY: passwords never come from argv; they are read into a bounded
 * buffer that the caller wipes, and the terminal's echo is restored even
 * when a signal interrupts the prompt. */
#ifndef TERN_CLI_DIRUTIL_H
#define TERN_CLI_DIRUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "cli/cli.h"
#include "directory/directory.h"
#include "directory/password.h"
#include "mail/address.h"

struct config;

/* A directory key: address_key() output. */
#define CLI_KEY_SIZE (ADDRESS_MAX * 4 + 2)
/* "@" + an A-label domain. */
#define CLI_DOMAIN_KEY_SIZE (ADDRESS_DOMAIN_MAX + 2)
/* Positional arguments one subcommand may take. */
#define CLI_ARGS_MAX 32

/* The options of the administration commands, a bit each; a subcommand
 * names the ones it takes and any other is a usage error. */
#define CLI_OPT_JSON 0x01           /* --json */
#define CLI_OPT_FORCE 0x02          /* --force */
#define CLI_OPT_PASSWORD_STDIN 0x04 /* --password-stdin */
#define CLI_OPT_QUOTA 0x08          /* --quota SIZE */
#define CLI_OPT_SERVICES 0x10       /* --services LIST */

struct cli_args {
	const char *pos[CLI_ARGS_MAX];
	size_t npos;
	bool json;
	bool force;
	bool password_stdin;
	const char *quota;    /* NULL: not given */
	const char *services; /* NULL: not given */
};

/* A running administration subcommand. */
struct cli_admin {
	char what[64]; /* "tern user add": the prefix of every message */
	struct config *cfg;
	struct directory *dir;
	struct password_policy policy;
};

struct cli_subcommand {
	const char *name;  /* one word or two: "add", "app-password add" */
	const char *usage; /* after "tern COMMAND " */
	unsigned options;  /* CLI_OPT_* */
	size_t min_args, max_args;
	/* Returns a sysexits code; the directory is open. */
	int (*run)(struct cli_admin *a, const struct cli_args *args);
};

/* Find the subcommand named by argv[1] (and argv[2]), parse its options,
 * load the config, open the directory (creating or upgrading the schema),
 * run it and close everything. Returns a sysexits code. */
int cli_subcommand_dispatch(const struct cli_command *cmd,
                            const struct cli_subcommand *subs, size_t nsubs,
                            const struct cli_env *env, int argc, char **argv);

/* "tern CMD SUB: message" on stderr; returns code. */
int cli_admin_fail(const struct cli_admin *a, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* "tern CMD SUB: note: message" on stderr. */
void cli_admin_note(const struct cli_admin *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Report a directory error (freeing it) and return code. */
int cli_admin_dir_fail(const struct cli_admin *a, int code, char **error);

/* Normalize operator input, or print why not and return EXIT_DATAERR.
 * address: address_parse + address_key, into key (CLI_KEY_SIZE bytes);
 * addr_r (may be NULL) gets the parsed address. domain: the A-label, lower
 * case (ADDRESS_DOMAIN_MAX + 1 bytes). */
int cli_admin_address(const struct cli_admin *a, const char *text, char *key,
                      struct address *addr_r);
int cli_admin_domain(const struct cli_admin *a, const char *text, char *domain);
/* 0 when it exists; else the message ("no domain X: add it with …") and
 * EXIT_DATAERR, or EXIT_TEMPFAIL when the directory fails. */
int cli_admin_domain_exists(const struct cli_admin *a, const char *domain);
int cli_admin_user_exists(const struct cli_admin *a, const char *address);

/* Read a password into buf (PASSWORD_MAX + 1 bytes, NUL-terminated; the
 * caller wipes it with explicit_bzero). from_stdin: one line of standard
 * input, CR/LF stripped, NUL refused, at most PASSWORD_MAX bytes, not
 * empty. Otherwise, when standard input is a terminal, prompt twice without
 * echo (an empty answer is allowed only with allow_empty); when it is not,
 * *len_r is 0 (no password given). Returns 0 or a sysexits code. */
int cli_password_read(const struct cli_admin *a, bool from_stdin,
                      bool allow_empty, char *buf, size_t *len_r);
/* The stored forms of a password: the Argon2id hash and, when
 * password_scram_keys() accepts it, the SCRAM-SHA-256 keys (else *scram_r
 * is NULL and a note says that SCRAM logins will not work). 0 or
 * EXIT_SOFTWARE. Both are malloc'd. */
int cli_password_make(const struct cli_admin *a, const char *password,
                      size_t len, char **hash_r, char **scram_r);

/* After a successful change: let the running instance know. */
void cli_notify_directory_changed(const struct config *cfg);

/* Output. A JSON string with its quotes (invalid UTF-8 becomes U+FFFD). */
void cli_json_string(FILE *out, const char *s);
/* Text for a terminal: control bytes shown as '?', padded with spaces to
 * width columns (UTF-8 characters count one each). */
void cli_text_cell(FILE *out, const char *s, size_t width);
size_t cli_text_width(const char *s);
/* Valid UTF-8 without control characters (for labels). */
bool cli_text_valid(const char *s);
/* "1G", "512M", "1000" (exact, powers of 1024); "none" for 0. */
void cli_format_size(uint64_t bytes, char *out, size_t outlen);
/* "2025-01-31" (UTC); "-" for 0. */
void cli_format_date(int64_t t, char *out, size_t outlen);

#endif
