/* The shared half of the administration commands: subcommand dispatch and
 * options, opening the directory named by the config, passwords from stdin
 * or a no-echo prompt, and text and JSON output.
 * SECURITY: runs as the operator (often root). Passwords are read byte by
 * byte into bounded stack buffers (no stdio copy), wiped after use, and
 * never taken from argv; the prompt restores the terminal on signals. A new
 * SQLite file is created mode 0600 (it holds password hashes). */
#include "cli/dirutil.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "core/config.h"
#include "core/log.h"
#include "core/utf8.h"
#include "core/proc.h"
#include "core/xmalloc.h"

/* ------------------------------------------------------------ options */

static const struct {
	const char *name;
	unsigned bit;
	bool value;
} admin_options[] = {
    {"json", CLI_OPT_JSON, false},
    {"force", CLI_OPT_FORCE, false},
    {"password-stdin", CLI_OPT_PASSWORD_STDIN, false},
    {"quota", CLI_OPT_QUOTA, true},
    {"services", CLI_OPT_SERVICES, true},
};

#define NOPTIONS (sizeof(admin_options) / sizeof(admin_options[0]))

/* One option at argv[*i] (which starts with '-'); 0 or -1 (said why). */
static int
args_option(const struct cli_admin *a, const struct cli_subcommand *sub,
            int argc, char **argv, int *i, struct cli_args *args)
{
	const char *arg = argv[*i], *name, *value;
	size_t len;

	if (arg[1] != '-') {
		fprintf(stderr, "%s: unknown option %.2s\n", a->what, arg);
		return -1;
	}
	name = arg + 2;
	len = strcspn(name, "=");
	value = name[len] == '=' ? name + len + 1 : NULL;
	for (size_t o = 0; o < NOPTIONS; o++) {
		if (strlen(admin_options[o].name) != len ||
		    strncmp(admin_options[o].name, name, len) != 0 ||
		    (sub->options & admin_options[o].bit) == 0)
			continue;
		if (admin_options[o].value && value == NULL) {
			if (*i + 1 >= argc) {
				fprintf(stderr, "%s: --%s needs a value\n",
				        a->what, admin_options[o].name);
				return -1;
			}
			value = argv[++*i];
		} else if (!admin_options[o].value && value != NULL) {
			fprintf(stderr, "%s: --%s takes no value\n", a->what,
			        admin_options[o].name);
			return -1;
		}
		switch (admin_options[o].bit) {
		case CLI_OPT_JSON:
			args->json = true;
			break;
		case CLI_OPT_FORCE:
			args->force = true;
			break;
		case CLI_OPT_PASSWORD_STDIN:
			args->password_stdin = true;
			break;
		case CLI_OPT_QUOTA:
			args->quota = value;
			break;
		case CLI_OPT_SERVICES:
			args->services = value;
			break;
		}
		return 0;
	}
	/* The name only: a value after '=' may be a secret. */
	fprintf(stderr, "%s: unknown option --%.*s%s\n", a->what,
	        (int)(len > 40 ? 40 : len), name,
	        strncmp(name, "password", 8) == 0 &&
	                (sub->options & CLI_OPT_PASSWORD_STDIN)
	            ? " (passwords are never taken from the command "
	              "line: use --password-stdin or the prompt)"
	            : "");
	return -1;
}

static int
args_parse(const struct cli_admin *a, const struct cli_subcommand *sub,
           int argc, char **argv, int first, struct cli_args *args)
{
	bool options_done = false;

	memset(args, 0, sizeof(*args));
	for (int i = first; i < argc; i++) {
		const char *arg = argv[i];

		if (!options_done && strcmp(arg, "--") == 0) {
			options_done = true;
			continue;
		}
		if (!options_done && arg[0] == '-' && arg[1] != '\0') {
			if (args_option(a, sub, argc, argv, &i, args) < 0)
				return -1;
			continue;
		}
		if (args->npos == CLI_ARGS_MAX || args->npos == sub->max_args) {
			fprintf(stderr, "%s: too many arguments\n", a->what);
			return -1;
		}
		args->pos[args->npos++] = arg;
	}
	if (args->npos < sub->min_args) {
		fprintf(stderr, "%s: missing argument\n", a->what);
		return -1;
	}
	return 0;
}

/* How many words of argv[1…] name matches, or 0. */
static int
sub_match(const char *name, int argc, char **argv)
{
	int words = 0;

	while (*name != '\0') {
		size_t n = strcspn(name, " ");

		if (1 + words >= argc || strlen(argv[1 + words]) != n ||
		    strncmp(argv[1 + words], name, n) != 0)
			return 0;
		words++;
		name += n;
		if (*name == ' ')
			name++;
	}
	return words;
}

/* ------------------------------------------------------------ opening */

/* A SQLite file made by root here belongs to lookup_user, which reads it
 * (SQLite gives its -wal and -shm files the same owner). */
static void
give_to_lookup(const struct cli_admin *a, const char *path)
{
	uid_t uid;
	gid_t gid;

	if (geteuid() != 0 ||
	    proc_user_ids(a->cfg->lookup_user, &uid, &gid) < 0)
		return;
	if (chown(path, uid, gid) < 0)
		cli_admin_note(a, "cannot give %s to %s: %s", path,
		               a->cfg->lookup_user, strerror(errno));
}

static int
admin_open(struct cli_admin *a)
{
	const struct config *cfg = a->cfg;
	enum sql_backend backend = (enum sql_backend)cfg->directory_backend;
	char *target, *error = NULL;
	struct stat st;
	bool created = false;

	if (backend == SQL_SQLITE) {
		target = cfg->directory_connect[0] != '\0'
		             ? xstrdup(cfg->directory_connect)
		             : xasprintf("%s/directory.db", cfg->data_dir);
		created = stat(target, &st) < 0 && errno == ENOENT;
	} else if (cfg->directory_connect[0] == '\0') {
		return cli_admin_fail(a, EXIT_CONFIG,
		                      "directory_backend %s needs "
		                      "directory_connect in %s",
		                      sql_backend_name(backend), cfg->path);
	} else {
		target = xstrdup(cfg->directory_connect);
	}
	/* Password hashes: nothing this process creates is for others. */
	umask(077);
	a->dir = directory_open(backend, target, true, &error);
	if (a->dir == NULL) {
		/* A connect string may hold a password: name only sqlite's. */
		fprintf(stderr,
		        "%s: cannot open the %s directory%s%s: %s%s%s%s\n",
		        a->what, sql_backend_name(backend),
		        backend == SQL_SQLITE ? " " : "",
		        backend == SQL_SQLITE ? target : "",
		        error != NULL ? error : "unknown error",
		        created ? " (check that " : "",
		        created ? cfg->data_dir : "",
		        created ? " exists and is writable)" : "");
		free(error);
		free(target);
		return EXIT_UNAVAILABLE;
	}
	if (backend == SQL_SQLITE && created)
		give_to_lookup(a, target);
	free(target);
	return 0;
}

int
cli_subcommand_dispatch(const struct cli_command *cmd,
                        const struct cli_subcommand *subs, size_t nsubs,
                        const struct cli_env *env, int argc, char **argv)
{
	const struct cli_subcommand *sub = NULL;
	struct cli_admin a;
	struct cli_args args;
	int words = 0, n, rc;

	for (size_t i = 0; i < nsubs && sub == NULL; i++)
		if ((words = sub_match(subs[i].name, argc, argv)) > 0)
			sub = &subs[i];
	if (sub == NULL) {
		if (argc < 2)
			return cli_usage(cmd);
		fprintf(stderr,
		        "tern %s: no subcommand %.40s; `tern %s "
		        "--help` lists them\n",
		        cmd->name, argv[1], cmd->name);
		return EXIT_USAGE;
	}
	memset(&a, 0, sizeof(a));
	n = snprintf(a.what, sizeof(a.what), "tern %s %s", cmd->name,
	             sub->name);
	if (n < 0 || (size_t)n >= sizeof(a.what))
		abort(); /* the names are constants */
	if (args_parse(&a, sub, argc, argv, 1 + words, &args) < 0) {
		fprintf(stderr, "usage: tern %s %s\n", cmd->name, sub->usage);
		return EXIT_USAGE;
	}
	a.cfg = cli_load_config(env);
	/* The directory logs warnings for lookup; here each command says
	 * what matters in its own words. */
	log_init("cli", LOG_LEVEL_ERROR, true);
	password_policy_from_config(a.cfg, &a.policy);
	if ((rc = admin_open(&a)) == 0) {
		rc = sub->run(&a, &args);
		directory_close(&a.dir);
	}
	config_free(&a.cfg);
	return rc;
}

void
cli_notify_directory_changed(const struct config *cfg)
{
	/* lookup keeps no cache yet: a change takes effect at once. When it
	 * does cache, tell the running instance (cli_running_pid(cfg)) here
	 * with a message that drops the cache, not with SIGHUP, which reloads
	 * everything. */
	(void)cfg;
}

/* ------------------------------------------------------------ messages */

int
cli_admin_fail(const struct cli_admin *a, int code, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", a->what);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return code;
}

void
cli_admin_note(const struct cli_admin *a, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: note: ", a->what);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int
cli_admin_dir_fail(const struct cli_admin *a, int code, char **error)
{
	cli_admin_fail(a, code, "%s",
	               *error != NULL ? *error : "directory error");
	xfree(error);
	return code;
}

/* Operator input echoed in a message: printable, and not too long. */
static void
sanitize(const char *in, char *out, size_t outlen)
{
	size_t o = 0;

	for (; *in != '\0' && o + 4 < outlen; in++) {
		unsigned char c = (unsigned char)*in;

		out[o++] = c < 0x20 || c == 0x7f ? '?' : (char)c;
	}
	if (*in != '\0') {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
}

int
cli_admin_address(const struct cli_admin *a, const char *text, char *key,
                  struct address *addr_r)
{
	struct address addr;
	const char *why = NULL;
	char shown[128];

	if (address_parse(text, strlen(text), &addr, &why) < 0) {
		sanitize(text, shown, sizeof(shown));
		return cli_admin_fail(a, EXIT_DATAERR,
		                      "\"%s\" is not a valid address (%s); "
		                      "write it as local@domain",
		                      shown, why != NULL ? why : "?");
	}
	address_key(&addr, key, CLI_KEY_SIZE);
	if (addr_r != NULL)
		*addr_r = addr;
	return 0;
}

int
cli_admin_domain(const struct cli_admin *a, const char *text, char *domain)
{
	const char *why = NULL;
	char shown[128];

	if (address_domain_normalize(text, strlen(text), domain, &why) < 0) {
		sanitize(text, shown, sizeof(shown));
		return cli_admin_fail(a, EXIT_DATAERR,
		                      "\"%s\" is not a valid domain name (%s)",
		                      shown, why != NULL ? why : "?");
	}
	return 0;
}

int
cli_admin_domain_exists(const struct cli_admin *a, const char *domain)
{
	char *error = NULL;

	switch (directory_domain_exists(a->dir, domain, &error)) {
	case 1:
		return 0;
	case 0:
		return cli_admin_fail(a, EXIT_DATAERR,
		                      "no domain %s; add it first with `tern "
		                      "domain add %s`",
		                      domain, domain);
	default:
		return cli_admin_dir_fail(a, EXIT_TEMPFAIL, &error);
	}
}

int
cli_admin_user_exists(const struct cli_admin *a, const char *address)
{
	struct dir_user user;
	char *error = NULL;

	memset(&user, 0, sizeof(user));
	switch (directory_user_get(a->dir, address, &user, &error)) {
	case 1:
		dir_user_clear(&user);
		return 0;
	case 0:
		return cli_admin_fail(a, EXIT_DATAERR,
		                      "no user %s; `tern user list` shows "
		                      "them",
		                      address);
	default:
		return cli_admin_dir_fail(a, EXIT_TEMPFAIL, &error);
	}
}

/* ------------------------------------------------------------ passwords */

enum line_result {
	LINE_OK,
	LINE_READ_ERROR,
	LINE_TOO_LONG,
	LINE_NUL,
};

/* One line of fd into buf (PASSWORD_MAX + 1 bytes), without its trailing
 * CR and LF. Byte by byte, so nothing past the line is consumed and no
 * stdio buffer keeps a copy. */
static enum line_result
read_line(int fd, char *buf, size_t *len_r)
{
	char line[PASSWORD_MAX + 2], c;
	enum line_result r = LINE_OK;
	size_t len = 0;
	ssize_t n;

	for (;;) {
		n = read(fd, &c, 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = LINE_READ_ERROR;
			break;
		}
		if (n == 0 || c == '\n')
			break;
		if (c == '\0') {
			r = LINE_NUL;
			break;
		}
		if (len == sizeof(line)) {
			r = LINE_TOO_LONG;
			break;
		}
		line[len++] = c;
	}
	while (r == LINE_OK && len > 0 &&
	       (line[len - 1] == '\r' || line[len - 1] == '\n'))
		len--;
	if (r == LINE_OK && len > PASSWORD_MAX)
		r = LINE_TOO_LONG;
	if (r == LINE_OK) {
		memcpy(buf, line, len);
		buf[len] = '\0';
		*len_r = len;
	}
	explicit_bzero(line, sizeof(line));
	explicit_bzero(&c, sizeof(c));
	return r;
}

static struct termios tty_saved;
static volatile sig_atomic_t tty_changed;

static void
tty_restore_and_die(int sig)
{
	if (tty_changed)
		(void)tcsetattr(STDIN_FILENO, TCSAFLUSH, &tty_saved);
	signal(sig, SIG_DFL);
	raise(sig);
}

static const int tty_signals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
#define NTTY_SIGNALS (sizeof(tty_signals) / sizeof(tty_signals[0]))

/* Ask on the terminal without echo. */
static enum line_result
prompt(const char *question, char *buf, size_t *len_r)
{
	struct sigaction sa, old[NTTY_SIGNALS];
	struct termios quiet;
	enum line_result r;

	if (tcgetattr(STDIN_FILENO, &tty_saved) < 0)
		return LINE_READ_ERROR;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = tty_restore_and_die;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < NTTY_SIGNALS; i++)
		sigaction(tty_signals[i], &sa, &old[i]);
	quiet = tty_saved;
	quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHOE | ECHOK);
	quiet.c_lflag |= ECHONL | ICANON;
	tty_changed = 1;
	/* Echo goes off before the question is shown: an answer typed as
	 * soon as it appears must never be echoed (or thrown away). */
	if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet) < 0) {
		tty_changed = 0;
		r = LINE_READ_ERROR;
	} else {
		fputs(question, stderr);
		fflush(stderr);
		r = read_line(STDIN_FILENO, buf, len_r);
		(void)tcsetattr(STDIN_FILENO, TCSADRAIN, &tty_saved);
		tty_changed = 0;
	}
	for (size_t i = 0; i < NTTY_SIGNALS; i++)
		sigaction(tty_signals[i], &old[i], NULL);
	return r;
}

static int
line_fail(const struct cli_admin *a, enum line_result r, const char *from)
{
	switch (r) {
	case LINE_TOO_LONG:
		return cli_admin_fail(a, EXIT_DATAERR,
		                      "the password from %s is longer than "
		                      "%d bytes",
		                      from, PASSWORD_MAX);
	case LINE_NUL:
		return cli_admin_fail(a, EXIT_DATAERR,
		                      "the password from %s contains a NUL "
		                      "byte",
		                      from);
	default:
		return cli_admin_fail(a, EXIT_OSERR,
		                      "cannot read the password from %s: %s",
		                      from, strerror(errno));
	}
}

int
cli_password_read(const struct cli_admin *a, bool from_stdin, bool allow_empty,
                  char *buf, size_t *len_r)
{
	char again[PASSWORD_MAX + 1];
	size_t len2 = 0;
	enum line_result r;
	int rc = 0;

	*len_r = 0;
	buf[0] = '\0';
	if (from_stdin) {
		if ((r = read_line(STDIN_FILENO, buf, len_r)) != LINE_OK)
			return line_fail(a, r, "standard input");
		if (*len_r == 0)
			return cli_admin_fail(a, EXIT_DATAERR,
			                      "no password on standard input "
			                      "(--password-stdin reads one "
			                      "line)");
		return 0;
	}
	if (!isatty(STDIN_FILENO))
		return 0;
	if ((r = prompt(allow_empty ? "Password (empty for none): "
	                            : "New password: ",
	                buf, len_r)) != LINE_OK)
		return line_fail(a, r, "the terminal");
	if (*len_r == 0) {
		if (allow_empty)
			return 0;
		return cli_admin_fail(a, EXIT_DATAERR,
		                      "empty password; nothing changed");
	}
	if ((r = prompt("Again: ", again, &len2)) != LINE_OK) {
		rc = line_fail(a, r, "the terminal");
	} else if (len2 != *len_r || memcmp(again, buf, len2) != 0) {
		rc = cli_admin_fail(a, EXIT_DATAERR,
		                    "the two passwords differ; nothing "
		                    "changed");
	}
	explicit_bzero(again, sizeof(again));
	if (rc != 0) {
		explicit_bzero(buf, PASSWORD_MAX + 1);
		*len_r = 0;
	}
	return rc;
}

int
cli_password_make(const struct cli_admin *a, const char *password, size_t len,
                  char **hash_r, char **scram_r)
{
	char *error = NULL;

	*scram_r = NULL;
	*hash_r = password_hash(&a->policy, password, len, &error);
	if (*hash_r == NULL) {
		cli_admin_fail(a, EXIT_SOFTWARE, "cannot hash the password: %s",
		               error != NULL ? error : "unknown error");
		free(error);
		return EXIT_SOFTWARE;
	}
	*scram_r = password_scram_keys(&a->policy, password, len, &error);
	if (*scram_r == NULL) {
		bool ascii = true;

		for (size_t i = 0; i < len && ascii; i++)
			ascii = (unsigned char)password[i] >= 0x20 &&
			        (unsigned char)password[i] < 0x7f;
		/* The usual reason needs no library detail. */
		cli_admin_note(a,
		               "SCRAM-SHA-256 logins will not work with this "
		               "password (%s); PLAIN and LOGIN will",
		               !ascii          ? "it is not printable ASCII"
		               : error != NULL ? error
		                               : "refused");
		free(error);
	}
	return 0;
}

/* ------------------------------------------------------------ output */

void
cli_json_string(FILE *out, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n;

	putc('"', out);
	while (*p != '\0') {
		if ((n = utf8_seq_len(p, strnlen((const char *)p, 4))) == 0) {
			fputs("\\ufffd", out);
			p++;
			continue;
		}
		if (n > 1) {
			fwrite(p, 1, n, out);
			p += n;
			continue;
		}
		switch (*p) {
		case '"':
			fputs("\\\"", out);
			break;
		case '\\':
			fputs("\\\\", out);
			break;
		case '\n':
			fputs("\\n", out);
			break;
		case '\r':
			fputs("\\r", out);
			break;
		case '\t':
			fputs("\\t", out);
			break;
		default:
			if (*p < 0x20 || *p == 0x7f)
				fprintf(out, "\\u%04x", *p);
			else
				putc(*p, out);
		}
		p++;
	}
	putc('"', out);
}

/* A character a terminal shows as it is: not C0, DEL or C1 control. */
static bool
printable_at(const unsigned char *p, size_t n)
{
	if (n == 1)
		return *p >= 0x20 && *p != 0x7f;
	return !(n == 2 && p[0] == 0xc2 && p[1] < 0xa0);
}

bool
cli_text_valid(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n;

	while (*p != '\0') {
		if ((n = utf8_seq_len(p, strnlen((const char *)p, 4))) == 0 ||
		    !printable_at(p, n))
			return false;
		p += n;
	}
	return true;
}

size_t
cli_text_width(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t width = 0, n;

	while (*p != '\0') {
		n = utf8_seq_len(p, strnlen((const char *)p, 4));
		p += n == 0 ? 1 : n;
		width++;
	}
	return width;
}

void
cli_text_cell(FILE *out, const char *s, size_t width)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t used = 0, n;

	while (*p != '\0') {
		n = utf8_seq_len(p, strnlen((const char *)p, 4));
		if (n == 0 || !printable_at(p, n)) {
			putc('?', out);
			p += n == 0 ? 1 : n;
		} else {
			fwrite(p, 1, n, out);
			p += n;
		}
		used++;
	}
	for (; used < width; used++)
		putc(' ', out);
}

void
cli_format_size(uint64_t bytes, char *out, size_t outlen)
{
	static const char units[] = "TGMk";
	int n;

	if (bytes == 0) {
		n = snprintf(out, outlen, "none");
	} else {
		n = -1;
		for (int i = 0; i < 4 && n < 0; i++) {
			uint64_t unit = 1ULL << (10 * (4 - i));

			if (bytes % unit == 0)
				n = snprintf(out, outlen, "%llu%c",
				             (unsigned long long)(bytes / unit),
				             units[i]);
		}
		if (n < 0)
			n = snprintf(out, outlen, "%llu",
			             (unsigned long long)bytes);
	}
	if (n < 0 || (size_t)n >= outlen)
		out[0] = '\0';
}

void
cli_format_date(int64_t t, char *out, size_t outlen)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (t <= 0 || gmtime_r(&tt, &tm) == NULL ||
	    strftime(out, outlen, "%Y-%m-%d", &tm) == 0)
		snprintf(out, outlen, "-");
}
