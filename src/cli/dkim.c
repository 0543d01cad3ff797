/* tern dkim list|genkey|rotate|activate|retire: the DKIM keys of each domain
 * and their life cycle. The state of a key is where its file is:
 * DATA_DIR/dkim/DOMAIN/SELECTOR.key signs (lookup signs with every *.key at
 * that level), pending/SELECTOR.key waits for its DNS record to be
 * published, retired/SELECTOR.key no longer signs while its record stays
 * published for mail in transit. A change is a rename, so lookup sees each
 * key whole or not at all.
 * SECURITY: runs as the operator, often root. Domains are normalized A-labels
 * and selectors [a-z0-9-] labels (a key found on disk: also "." and "_", as
 * lookup takes them) before they name a file; files are made 0600 and
 * directories 0700, given to lookup_user; changes to a domain hold an
 * exclusive flock on its directory. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "cli/cli.h"
#include "cli/dirutil.h"
#include "core/config.h"
#include "core/keys.h"
#include "core/proc.h"
#include "core/xmalloc.h"

#define EXIT_CANTCREAT 73
#define EXIT_IOERR 74

/* A new selector is one DNS label; one found on disk, a domain name. */
#define DKIM_SELECTOR_MAX 63
#define DKIM_NAME_MAX 253
#define DKIM_RSA_BITS_DEFAULT 2048
/* RFC 8301 3.2: verifiers must take 1024..4096 bits. */
#define DKIM_RSA_BITS_MIN 1024
#define DKIM_RSA_BITS_MAX 4096
/* "-2" … "-99" after a default selector that is taken. */
#define DKIM_SELECTOR_SUFFIX_MAX 99

enum dkim_state {
	DKIM_ACTIVE,
	DKIM_PENDING,
	DKIM_RETIRED,
};

static const char *const dkim_state_names[] = {"active", "pending", "retired"};
/* Under DATA_DIR/dkim/DOMAIN. */
static const char *const dkim_state_subdirs[] = {"", "/pending", "/retired"};

enum dkim_alg {
	DKIM_ALG_UNKNOWN,
	DKIM_ALG_RSA,
	DKIM_ALG_ED25519,
};

static const char *const dkim_alg_names[] = {"unknown", "rsa", "ed25519"};

struct dkim_key {
	char *domain;
	char *selector;
	char *path;
	enum dkim_state state;
	enum dkim_alg alg;
	int bits;      /* RSA only */
	int64_t mtime; /* set when the key entered its state */
	char *record;  /* the TXT value; NULL when the file is unreadable */
	char *error;   /* why record is NULL */
};

struct dkim_keyset {
	struct dkim_key *keys;
	size_t n, cap;
};

/* The options only genkey and rotate take; cli_subcommand_dispatch parses
 * the shared ones. Set by dkim_run before it dispatches. */
static struct {
	const char *selector;
	const char *algorithm;
	const char *bits;
} dkim_opts;

/* ------------------------------------------------------------ names */

/* A selector that can name a key file. Lax, for keys found on disk: what
 * lookup signs with ([a-z0-9._-], not starting with "." or "-", no "..").
 * Strict, for new keys: one DNS label of [a-z0-9-], no hyphen at an end. */
static bool
dkim_selector_ok(const char *s, bool strict)
{
	size_t n = strlen(s);

	if (n == 0 || n > (strict ? DKIM_SELECTOR_MAX : DKIM_NAME_MAX) ||
	    s[0] == '.' || s[0] == '-' || (strict && s[n - 1] == '-'))
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '-')
			continue;
		if (strict || (c != '_' && c != '.') ||
		    (c == '.' && s[i + 1] == '.'))
			return false;
	}
	return true;
}

/* Operator input echoed in a message: printable, and not too long. */
static void
dkim_shown(const char *in, char *out, size_t outlen)
{
	size_t o = 0;

	for (; *in != '\0' && o + 4 < outlen; in++) {
		unsigned char c = (unsigned char)*in;

		out[o++] = c < 0x20 || c >= 0x7f ? '?' : (char)c;
	}
	if (*in != '\0') {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
}

/* A selector argument, folded to lower case, into out (DKIM_NAME_MAX + 1
 * bytes); EXIT_DATAERR with the reason if bad. */
static int
dkim_selector_arg(const struct cli_admin *a, const char *text, bool strict,
                  char *out)
{
	size_t n = strlen(text);
	char shown[80];

	if (n <= DKIM_NAME_MAX) {
		for (size_t i = 0; i <= n; i++)
			out[i] = (char)tolower((unsigned char)text[i]);
		if (dkim_selector_ok(out, strict))
			return 0;
	}
	dkim_shown(text, shown, sizeof(shown));
	if (strict)
		return cli_admin_fail(a, EXIT_DATAERR,
		                      "\"%s\" is not a valid selector (one "
		                      "DNS label: letters, digits and inner "
		                      "hyphens, at most %d)",
		                      shown, DKIM_SELECTOR_MAX);
	return cli_admin_fail(a, EXIT_DATAERR,
	                      "\"%s\" is not a valid selector (letters, "
	                      "digits, \"-\", \"_\" and \".\")",
	                      shown);
}

static char *
dkim_domain_dir(const struct config *cfg, const char *domain)
{
	return xasprintf("%s/dkim/%s", cfg->data_dir, domain);
}

static char *
dkim_state_dir(const struct config *cfg, const char *domain, enum dkim_state st)
{
	return xasprintf("%s/dkim/%s%s", cfg->data_dir, domain,
	                 dkim_state_subdirs[st]);
}

static char *
dkim_key_path(const struct config *cfg, const char *domain, enum dkim_state st,
              const char *selector)
{
	return xasprintf("%s/dkim/%s%s/%s.key", cfg->data_dir, domain,
	                 dkim_state_subdirs[st], selector);
}

/* "rsa-2048", "ed25519" or "unknown". */
static void
dkim_alg_label(const struct dkim_key *k, char *out, size_t outlen)
{
	if (k->alg == DKIM_ALG_RSA)
		snprintf(out, outlen, "rsa-%d", k->bits);
	else
		snprintf(out, outlen, "%s", dkim_alg_names[k->alg]);
}

/* " -c FILE" when the config is not the default one, for the commands a
 * message suggests. */
static const char *
dkim_conf_flag(const struct cli_admin *a)
{
	static char buf[PATH_MAX + 8];

	if (strcmp(a->cfg->path, CLI_DEFAULT_CONFIG) == 0 ||
	    snprintf(buf, sizeof(buf), " -c %s", a->cfg->path) >=
	        (int)sizeof(buf))
		return "";
	return buf;
}

/* ------------------------------------------------------------ keys on disk */

static int
dkim_no_password(char *buf, int size, int rwflag, void *userdata)
{
	/* Encrypted keys are unsupported; NULL would prompt on a tty. */
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)userdata;
	return -1;
}

/* The algorithm (and RSA size) and the DNS record of k->path. */
static void
dkim_key_inspect(struct dkim_key *k)
{
	EVP_PKEY *pkey = NULL;
	FILE *f;

	if ((f = fopen(k->path, "re")) != NULL) {
		pkey = PEM_read_PrivateKey(f, NULL, dkim_no_password, NULL);
		fclose(f);
	}
	if (pkey != NULL) {
		switch (EVP_PKEY_get_base_id(pkey)) {
		case EVP_PKEY_RSA:
			k->alg = DKIM_ALG_RSA;
			k->bits = EVP_PKEY_get_bits(pkey);
			break;
		case EVP_PKEY_ED25519:
			k->alg = DKIM_ALG_ED25519;
			break;
		default:
			break;
		}
		EVP_PKEY_free(pkey);
	}
	if (k->alg == DKIM_ALG_UNKNOWN) {
		k->error = f == NULL
		               ? xasprintf("%s: %s", k->path, strerror(errno))
		               : xasprintf("%s: not an RSA or Ed25519 "
		                           "private key in PEM form",
		                           k->path);
		return;
	}
	k->record = keys_dkim_record(k->path, &k->error);
}

static void
dkim_key_clear(struct dkim_key *k)
{
	free(k->domain);
	free(k->selector);
	free(k->path);
	free(k->record);
	free(k->error);
	memset(k, 0, sizeof(*k));
}

static void
dkim_keyset_free(struct dkim_keyset *set)
{
	for (size_t i = 0; i < set->n; i++)
		dkim_key_clear(&set->keys[i]);
	free(set->keys);
	memset(set, 0, sizeof(*set));
}

/* Append a key (taking selector and path) and read what it is. */
static struct dkim_key *
dkim_keyset_add(struct dkim_keyset *set, const char *domain, char *selector,
                char *path, enum dkim_state st, int64_t mtime)
{
	struct dkim_key *k;

	if (set->n == set->cap) {
		set->cap = set->cap == 0 ? 8 : set->cap * 2;
		set->keys =
		    xreallocarray(set->keys, set->cap, sizeof(set->keys[0]));
	}
	k = &set->keys[set->n++];
	memset(k, 0, sizeof(*k));
	k->domain = xstrdup(domain);
	k->selector = selector;
	k->path = path;
	k->state = st;
	k->mtime = mtime;
	dkim_key_inspect(k);
	return k;
}

/* Append the keys of one state directory of domain. A missing directory
 * has none. 0 or EXIT_IOERR. */
static int
dkim_scan_state(const struct cli_admin *a, const char *domain,
                enum dkim_state st, struct dkim_keyset *set)
{
	char *dir = dkim_state_dir(a->cfg, domain, st);
	struct dirent *e;
	struct stat sb;
	DIR *d;

	if ((d = opendir(dir)) == NULL) {
		int err = errno;

		if (err == ENOENT) {
			free(dir);
			return 0;
		}
		cli_admin_fail(a, EXIT_IOERR, "cannot read %s: %s%s", dir,
		               strerror(err),
		               err == EACCES ? " (run as root, or as the user "
		                               "that owns the instance)"
		                             : "");
		free(dir);
		return EXIT_IOERR;
	}
	while ((e = readdir(d)) != NULL) {
		size_t len = strlen(e->d_name);
		char *sel, *path;

		if (len <= 4 || strcmp(e->d_name + len - 4, ".key") != 0)
			continue;
		sel = xstrndup(e->d_name, len - 4);
		path = xasprintf("%s/%s", dir, e->d_name);
		/* lookup skips what it cannot name; so does the listing. */
		if (!dkim_selector_ok(sel, false) || stat(path, &sb) < 0 ||
		    !S_ISREG(sb.st_mode)) {
			free(sel);
			free(path);
			continue;
		}
		dkim_keyset_add(set, domain, sel, path, st,
		                (int64_t)sb.st_mtime);
	}
	closedir(d);
	free(dir);
	return 0;
}

static int
dkim_key_cmp(const void *pa, const void *pb)
{
	const struct dkim_key *x = pa, *y = pb;
	int c;

	if ((c = strcmp(x->domain, y->domain)) != 0)
		return c;
	if (x->state != y->state)
		return x->state < y->state ? -1 : 1;
	return strcmp(x->selector, y->selector);
}

/* Every key of domain, in all three states. 0 or EXIT_IOERR. */
static int
dkim_scan(const struct cli_admin *a, const char *domain,
          struct dkim_keyset *set)
{
	int rc;

	for (int st = DKIM_ACTIVE; st <= DKIM_RETIRED; st++)
		if ((rc = dkim_scan_state(a, domain, (enum dkim_state)st,
		                          set)) != 0)
			return rc;
	return 0;
}

static void
dkim_sort(struct dkim_keyset *set)
{
	if (set->n > 1)
		qsort(set->keys, set->n, sizeof(set->keys[0]), dkim_key_cmp);
}

static struct dkim_key *
dkim_find(const struct dkim_keyset *set, const char *selector)
{
	for (size_t i = 0; i < set->n; i++)
		if (strcmp(set->keys[i].selector, selector) == 0)
			return &set->keys[i];
	return NULL;
}

/* The first key of alg in state st, or NULL. */
static struct dkim_key *
dkim_find_alg(const struct dkim_keyset *set, enum dkim_alg alg,
              enum dkim_state st)
{
	for (size_t i = 0; i < set->n; i++)
		if (set->keys[i].alg == alg && set->keys[i].state == st)
			return &set->keys[i];
	return NULL;
}

/* ------------------------------------------------------------ changes */

static int
dkim_fsync_dir(const struct cli_admin *a, const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0 || fsync(fd) < 0) {
		cli_admin_fail(a, EXIT_IOERR, "fsync %s: %s", dir,
		               strerror(errno));
		if (fd >= 0)
			close(fd);
		return EXIT_IOERR;
	}
	close(fd);
	return 0;
}

/* DATA_DIR/dkim, DATA_DIR/dkim/DOMAIN and its pending/ and retired/: 0700,
 * lookup_user's. 0 or EXIT_CANTCREAT. */
static int
dkim_prepare_dirs(const struct cli_admin *a, const char *domain)
{
	char *path, *error = NULL;
	int rc = 0;

	path = xasprintf("%s/dkim", a->cfg->data_dir);
	if (proc_mkdir(path, 0700, a->cfg->lookup_user, &error) < 0)
		rc = EXIT_CANTCREAT;
	free(path);
	for (int st = DKIM_ACTIVE; st <= DKIM_RETIRED && rc == 0; st++) {
		path = dkim_state_dir(a->cfg, domain, (enum dkim_state)st);
		if (proc_mkdir(path, 0700, a->cfg->lookup_user, &error) < 0)
			rc = EXIT_CANTCREAT;
		free(path);
	}
	if (rc != 0) {
		cli_admin_fail(a, rc, "%s", error);
		free(error);
	}
	return rc;
}

/* Hold an exclusive lock on the domain's key directory until *fd_r is
 * closed. 0, or EXIT_DATAERR when the domain has no keys directory. */
static int
dkim_lock(const struct cli_admin *a, const char *domain, int *fd_r)
{
	char *dir = dkim_domain_dir(a->cfg, domain);
	int fd, err;

	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		err = errno;
		if (err == ENOENT)
			cli_admin_fail(a, EXIT_DATAERR,
			               "%s has no DKIM keys; `tern%s dkim "
			               "list` shows the domains that have",
			               domain, dkim_conf_flag(a));
		else
			cli_admin_fail(a, EXIT_IOERR, "cannot open %s: %s", dir,
			               strerror(err));
		free(dir);
		return err == ENOENT ? EXIT_DATAERR : EXIT_IOERR;
	}
	if (flock(fd, LOCK_EX) < 0) {
		cli_admin_fail(a, EXIT_IOERR, "flock %s: %s", dir,
		               strerror(errno));
		close(fd);
		free(dir);
		return EXIT_IOERR;
	}
	free(dir);
	*fd_r = fd;
	return 0;
}

/* Move k to state st: rename (atomic for lookup), set the file's time to
 * now (when it entered the state), make both directories durable. */
static int
dkim_move(const struct cli_admin *a, struct dkim_key *k, enum dkim_state st)
{
	char *to = dkim_key_path(a->cfg, k->domain, st, k->selector);
	char *from_dir, *to_dir;
	int rc;

	if (rename(k->path, to) < 0) {
		cli_admin_fail(a, EXIT_IOERR, "rename %s to %s: %s", k->path,
		               to, strerror(errno));
		free(to);
		return EXIT_IOERR;
	}
	if (utimensat(AT_FDCWD, to, NULL, 0) < 0)
		cli_admin_note(a, "cannot set the time of %s: %s", to,
		               strerror(errno));
	from_dir = dkim_state_dir(a->cfg, k->domain, k->state);
	to_dir = dkim_state_dir(a->cfg, k->domain, st);
	rc = dkim_fsync_dir(a, from_dir);
	if (rc == 0)
		rc = dkim_fsync_dir(a, to_dir);
	free(from_dir);
	free(to_dir);
	free(k->path);
	k->path = to;
	k->state = st;
	k->mtime = (int64_t)time(NULL);
	return rc;
}

/* retired/SELECTOR.deleted: an empty file that keeps a deleted key's
 * selector from being chosen again while its record may still be in DNS
 * caches (or in the zone). */
static char *
dkim_deleted_path(const struct config *cfg, const char *domain,
                  const char *selector)
{
	return xasprintf("%s/dkim/%s%s/%s.deleted", cfg->data_dir, domain,
	                 dkim_state_subdirs[DKIM_RETIRED], selector);
}

static int
dkim_delete(const struct cli_admin *a, const struct dkim_key *k)
{
	char *dir, *mark;
	int rc, fd;

	if (unlink(k->path) < 0) {
		cli_admin_fail(a, EXIT_IOERR, "unlink %s: %s", k->path,
		               strerror(errno));
		return EXIT_IOERR;
	}
	dir = dkim_state_dir(a->cfg, k->domain, k->state);
	rc = dkim_fsync_dir(a, dir);
	free(dir);
	mark = dkim_deleted_path(a->cfg, k->domain, k->selector);
	if ((fd = open(mark, O_WRONLY | O_CREAT | O_CLOEXEC, 0600)) >= 0)
		close(fd);
	free(mark);
	return rc;
}

/* A key has the selector, or had it (see dkim_deleted_path). */
static bool
dkim_selector_taken(const struct cli_admin *a, const struct dkim_keyset *set,
                    const char *domain, const char *selector)
{
	char *mark;
	bool taken;

	if (dkim_find(set, selector) != NULL)
		return true;
	mark = dkim_deleted_path(a->cfg, domain, selector);
	taken = access(mark, F_OK) == 0;
	free(mark);
	return taken;
}

/* The default selector for a new key of alg: the UTC date and "r" or "e",
 * as quickstart names its keys, then "-2", "-3"… while taken. */
static int
dkim_selector_new(const struct cli_admin *a, const struct dkim_keyset *set,
                  const char *domain, enum dkim_alg alg, char *out)
{
	char day[16];
	time_t now = time(NULL);
	char c = alg == DKIM_ALG_RSA ? 'r' : 'e';
	struct tm tm;

	if (gmtime_r(&now, &tm) == NULL ||
	    strftime(day, sizeof(day), "%Y%m%d", &tm) == 0)
		snprintf(day, sizeof(day), "tern");
	snprintf(out, DKIM_SELECTOR_MAX + 1, "%s%c", day, c);
	for (int n = 2; dkim_selector_taken(a, set, domain, out); n++) {
		if (n > DKIM_SELECTOR_SUFFIX_MAX)
			return cli_admin_fail(a, EXIT_DATAERR,
			                      "too many keys made today; name "
			                      "one with --selector");
		snprintf(out, DKIM_SELECTOR_MAX + 1, "%s%c-%d", day, c, n);
	}
	return 0;
}

/* A new key of alg as pending/SELECTOR.key, given to lookup_user, and
 * appended to set. 0 or EXIT_CANTCREAT. */
static int
dkim_create(const struct cli_admin *a, struct dkim_keyset *set,
            const char *domain, enum dkim_alg alg, int bits,
            const char *selector)
{
	char *path = dkim_key_path(a->cfg, domain, DKIM_PENDING, selector);
	char *error = NULL;
	struct dkim_key *k;
	uid_t uid;
	gid_t gid;
	int ret;

	ret = alg == DKIM_ALG_RSA ? keys_create_dkim_rsa(path, bits, &error)
	                          : keys_create_dkim_ed25519(path, &error);
	if (ret < 0) {
		cli_admin_fail(a, EXIT_CANTCREAT, "%s", error);
		free(error);
		free(path);
		return EXIT_CANTCREAT;
	}
	if (geteuid() == 0 &&
	    (proc_user_ids(a->cfg->lookup_user, &uid, &gid) < 0 ||
	     chown(path, uid, gid) < 0)) {
		cli_admin_fail(a, EXIT_CANTCREAT, "cannot give %s to %s", path,
		               a->cfg->lookup_user);
		unlink(path);
		free(path);
		return EXIT_CANTCREAT;
	}
	k = dkim_keyset_add(set, domain, xstrdup(selector), path, DKIM_PENDING,
	                    (int64_t)time(NULL));
	if (k->record == NULL) {
		cli_admin_fail(a, EXIT_CANTCREAT, "%s", k->error);
		unlink(k->path);
		dkim_key_clear(k);
		set->n--;
		return EXIT_CANTCREAT;
	}
	return 0;
}

/* ------------------------------------------------------------ output */

/* A TXT record as BIND wants it: strings of at most 255 bytes. */
static void
dkim_print_txt(const char *indent, const char *owner, const char *value)
{
	size_t len = strlen(value);
	int col;

	col = printf("%s%-28s IN TXT   ", indent, owner);
	if (len > 255)
		col += printf("( ");
	for (size_t i = 0; i < len; i += 255)
		printf("%s%*s\"%.*s\"", i > 0 ? "\n" : "", i > 0 ? col : 0, "",
		       (int)(len - i < 255 ? len - i : 255), value + i);
	printf("%s\n", len > 255 ? " )" : "");
}

static void
dkim_print_record(const char *indent, const struct dkim_key *k)
{
	char *owner = xasprintf("%s._domainkey.%s.", k->selector, k->domain);

	dkim_print_txt(indent, owner, k->record);
	free(owner);
}

static void
dkim_list_json(const struct dkim_keyset *set)
{
	char alg[32];

	fputs("[", stdout);
	for (size_t i = 0; i < set->n; i++) {
		const struct dkim_key *k = &set->keys[i];
		char *name =
		    xasprintf("%s._domainkey.%s", k->selector, k->domain);

		fputs(i == 0 ? "\n  {\"domain\": " : ",\n  {\"domain\": ",
		      stdout);
		cli_json_string(stdout, k->domain);
		fputs(", \"selector\": ", stdout);
		cli_json_string(stdout, k->selector);
		fputs(", \"algorithm\": ", stdout);
		dkim_alg_label(k, alg, sizeof(alg));
		if (k->alg == DKIM_ALG_UNKNOWN)
			fputs("null", stdout);
		else
			cli_json_string(stdout, alg);
		printf(", \"state\": \"%s\", \"mtime\": %lld, \"path\": ",
		       dkim_state_names[k->state], (long long)k->mtime);
		cli_json_string(stdout, k->path);
		fputs(", \"record_name\": ", stdout);
		cli_json_string(stdout, name);
		fputs(", \"record_value\": ", stdout);
		if (k->record != NULL)
			cli_json_string(stdout, k->record);
		else
			fputs("null", stdout);
		fputs("}", stdout);
		free(name);
	}
	fputs(set->n > 0 ? "\n]\n" : "]\n", stdout);
}

/* DOMAIN  SELECTOR  ALGORITHM  STATE  SINCE, aligned, each followed by its
 * record. */
static void
dkim_list_text(const struct dkim_keyset *set)
{
	int w_dom = 0, w_sel = 0, w;
	char alg[32], date[16];

	for (size_t i = 0; i < set->n; i++) {
		if ((w = (int)strlen(set->keys[i].domain)) > w_dom)
			w_dom = w;
		if ((w = (int)strlen(set->keys[i].selector)) > w_sel)
			w_sel = w;
	}
	for (size_t i = 0; i < set->n; i++) {
		const struct dkim_key *k = &set->keys[i];

		dkim_alg_label(k, alg, sizeof(alg));
		cli_format_date(k->mtime, date, sizeof(date));
		printf("%-*s  %-*s  %-9s  %-7s  %s\n", w_dom, k->domain, w_sel,
		       k->selector, alg, dkim_state_names[k->state], date);
		if (k->record != NULL)
			dkim_print_record("    ", k);
	}
}

/* ------------------------------------------------------------ options */

/* --algorithm (NULL: not given) → alg, or a usage error. */
static int
dkim_opt_alg(const struct cli_admin *a, enum dkim_alg *alg_r)
{
	const char *s = dkim_opts.algorithm;

	*alg_r = DKIM_ALG_UNKNOWN;
	if (s == NULL)
		return 0;
	if (strcmp(s, "rsa") == 0 || strcmp(s, "rsa-sha256") == 0)
		*alg_r = DKIM_ALG_RSA;
	else if (strcmp(s, "ed25519") == 0 || strcmp(s, "ed25519-sha256") == 0)
		*alg_r = DKIM_ALG_ED25519;
	else
		return cli_admin_fail(a, EXIT_USAGE,
		                      "--algorithm is rsa or ed25519");
	return 0;
}

/* --bits (0: not given), only with RSA keys. */
static int
dkim_opt_bits(const struct cli_admin *a, enum dkim_alg alg, int *bits_r)
{
	const char *s = dkim_opts.bits;
	char *end;
	long v;

	*bits_r = 0;
	if (s == NULL)
		return 0;
	if (alg == DKIM_ALG_ED25519)
		return cli_admin_fail(a, EXIT_USAGE,
		                      "--bits is for RSA keys; Ed25519 keys "
		                      "have one size");
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < DKIM_RSA_BITS_MIN ||
	    v > DKIM_RSA_BITS_MAX)
		return cli_admin_fail(a, EXIT_USAGE,
		                      "--bits must be %d..%d (2048 is usual)",
		                      DKIM_RSA_BITS_MIN, DKIM_RSA_BITS_MAX);
	*bits_r = (int)v;
	return 0;
}

/* The algorithms a genkey or rotate makes keys of (from --algorithm, else
 * dflt), with --selector checked: it names one key. */
static int
dkim_opt_algs(const struct cli_admin *a, bool dflt[3], bool algs_r[3],
              char *selector, int *bits_r)
{
	enum dkim_alg alg;
	int rc;

	if ((rc = dkim_opt_alg(a, &alg)) != 0 ||
	    (rc = dkim_opt_bits(a, alg, bits_r)) != 0)
		return rc;
	memset(algs_r, 0, 3 * sizeof(bool));
	if (alg != DKIM_ALG_UNKNOWN)
		algs_r[alg] = true;
	else
		memcpy(algs_r, dflt, 3 * sizeof(bool));
	selector[0] = '\0';
	if (dkim_opts.selector != NULL) {
		if (alg == DKIM_ALG_UNKNOWN)
			return cli_admin_fail(a, EXIT_USAGE,
			                      "--selector names one key: add "
			                      "--algorithm rsa or ed25519");
		if ((rc = dkim_selector_arg(a, dkim_opts.selector, true,
		                            selector)) != 0)
			return rc;
	}
	return 0;
}

/* ------------------------------------------------------------ list */

static int
dkim_list_domains(const struct cli_admin *a, char ***names_r, size_t *n_r)
{
	char *dir = xasprintf("%s/dkim", a->cfg->data_dir);
	char norm[ADDRESS_DOMAIN_MAX + 1], **names = NULL, *path;
	size_t n = 0, cap = 0;
	struct dirent *e;
	struct stat sb;
	DIR *d;

	*names_r = NULL;
	*n_r = 0;
	if ((d = opendir(dir)) == NULL) {
		int err = errno;

		if (err != ENOENT)
			cli_admin_fail(a, EXIT_IOERR, "cannot read %s: %s", dir,
			               strerror(err));
		free(dir);
		return err == ENOENT ? 0 : EXIT_IOERR;
	}
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.' ||
		    address_domain_normalize(e->d_name, strlen(e->d_name), norm,
		                             NULL) < 0 ||
		    strcmp(norm, e->d_name) != 0)
			continue;
		path = xasprintf("%s/%s", dir, e->d_name);
		if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) {
			if (n == cap) {
				cap = cap == 0 ? 8 : cap * 2;
				names =
				    xreallocarray(names, cap, sizeof(names[0]));
			}
			names[n++] = xstrdup(e->d_name);
		}
		free(path);
	}
	closedir(d);
	free(dir);
	*names_r = names;
	*n_r = n;
	return 0;
}

/* Domains of the directory that sign nothing. */
static void
dkim_note_unsigned(const struct cli_admin *a, const struct dkim_keyset *set,
                   char **domains, size_t n)
{

	for (size_t i = 0; i < n; i++) {
		bool active = false;

		for (size_t j = 0; j < set->n && !active; j++)
			active = set->keys[j].state == DKIM_ACTIVE &&
			         set->keys[j].alg != DKIM_ALG_UNKNOWN &&
			         strcmp(set->keys[j].domain, domains[i]) == 0;
		if (!active)
			cli_admin_note(a,
			               "%s has no active DKIM key, so its mail "
			               "goes out unsigned: `tern%s dkim genkey "
			               "%s` makes one",
			               domains[i], dkim_conf_flag(a),
			               domains[i]);
	}
}

static int
dkim_list(struct cli_admin *a, const struct cli_args *args)
{
	char domain[ADDRESS_DOMAIN_MAX + 1], **names = NULL, *error = NULL;
	struct dkim_keyset set = {0};
	size_t n = 0;
	int rc;

	if (args->npos == 1) {
		if ((rc = cli_admin_domain(a, args->pos[0], domain)) != 0)
			return rc;
		if ((rc = dkim_scan(a, domain, &set)) != 0)
			goto out;
		if (set.n == 0 &&
		    (rc = cli_admin_domain_exists(a, domain)) != 0)
			goto out;
		names = xcalloc(1, sizeof(names[0]));
		names[n++] = xstrdup(domain);
	} else {
		if ((rc = dkim_list_domains(a, &names, &n)) != 0)
			goto out;
		for (size_t i = 0; i < n; i++)
			if ((rc = dkim_scan(a, names[i], &set)) != 0)
				goto out;
		directory_strings_free(&names, n);
		n = 0;
		if (directory_domain_list(a->dir, &names, &n, &error) < 0) {
			rc = cli_admin_dir_fail(a, EXIT_TEMPFAIL, &error);
			goto out;
		}
	}
	dkim_sort(&set);
	if (args->json)
		dkim_list_json(&set);
	else
		dkim_list_text(&set);
	for (size_t i = 0; i < set.n; i++)
		if (set.keys[i].record == NULL)
			cli_admin_note(a, "%s", set.keys[i].error);
	dkim_note_unsigned(a, &set, names, n);
out:
	if (names != NULL)
		directory_strings_free(&names, n);
	dkim_keyset_free(&set);
	return rc;
}

/* ------------------------------------------------------------ genkey */

/* Print the records of the keys made (the last nmade of set). */
static void
dkim_print_made(const struct dkim_keyset *set, size_t nmade)
{
	putchar('\n');
	for (size_t i = set->n - nmade; i < set->n; i++)
		dkim_print_record("", &set->keys[i]);
	putchar('\n');
}

/* Check that a domain of the directory may get new keys of algs, and make
 * them pending. */
static int
dkim_make_keys(struct cli_admin *a, const char *domain, const bool algs[3],
               const char *selector, int bits, bool replace,
               struct dkim_keyset *set, size_t *nmade_r)
{
	char sel[DKIM_NAME_MAX + 1];
	const struct dkim_key *k;
	int rc;

	*nmade_r = 0;
	if (selector[0] != '\0' && (k = dkim_find(set, selector)) != NULL)
		return cli_admin_fail(a, EXIT_DATAERR,
		                      "%s has a %s key %s already; choose "
		                      "another --selector",
		                      domain, dkim_state_names[k->state],
		                      selector);
	for (int alg = DKIM_ALG_RSA; alg <= DKIM_ALG_ED25519; alg++) {
		if (!algs[alg])
			continue;
		if (!replace && (k = dkim_find_alg(set, (enum dkim_alg)alg,
		                                   DKIM_ACTIVE)) != NULL)
			return cli_admin_fail(
			    a, EXIT_DATAERR,
			    "%s signs with the %s key %s already; `tern%s dkim "
			    "rotate %s` replaces it",
			    domain, dkim_alg_names[alg], k->selector,
			    dkim_conf_flag(a), domain);
		if ((k = dkim_find_alg(set, (enum dkim_alg)alg,
		                       DKIM_PENDING)) != NULL)
			return cli_admin_fail(
			    a, EXIT_DATAERR,
			    "%s has a pending %s key %s already: activate it "
			    "with `tern%s dkim activate %s %s`, or delete it "
			    "with `tern%s dkim retire %s %s`",
			    domain, dkim_alg_names[alg], k->selector,
			    dkim_conf_flag(a), domain, k->selector,
			    dkim_conf_flag(a), domain, k->selector);
	}
	for (int alg = DKIM_ALG_RSA; alg <= DKIM_ALG_ED25519; alg++) {
		int b = bits;

		if (!algs[alg])
			continue;
		if (selector[0] != '\0')
			snprintf(sel, sizeof(sel), "%s", selector);
		else if ((rc = dkim_selector_new(a, set, domain,
		                                 (enum dkim_alg)alg, sel)) != 0)
			return rc;
		if (alg == DKIM_ALG_RSA && b == 0) {
			/* A rotation keeps the size in use. */
			k = dkim_find_alg(set, DKIM_ALG_RSA, DKIM_ACTIVE);
			b = k != NULL && k->bits >= DKIM_RSA_BITS_MIN &&
			            k->bits <= DKIM_RSA_BITS_MAX
			        ? k->bits
			        : DKIM_RSA_BITS_DEFAULT;
		}
		if ((rc = dkim_create(a, set, domain, (enum dkim_alg)alg, b,
		                      sel)) != 0)
			return rc;
		(*nmade_r)++;
	}
	return 0;
}

/* The domain argument of genkey and rotate: valid, and a domain of the
 * directory; its key directories exist and are locked. */
static int
dkim_open_domain(struct cli_admin *a, const char *text, char *domain,
                 int *lock_r)
{
	int rc;

	if ((rc = cli_admin_domain(a, text, domain)) != 0 ||
	    (rc = cli_admin_domain_exists(a, domain)) != 0 ||
	    (rc = dkim_prepare_dirs(a, domain)) != 0)
		return rc;
	return dkim_lock(a, domain, lock_r);
}

static int
dkim_genkey(struct cli_admin *a, const struct cli_args *args)
{
	char domain[ADDRESS_DOMAIN_MAX + 1], sel[DKIM_NAME_MAX + 1];
	bool both[3] = {false, true, true}, algs[3];
	struct dkim_keyset set = {0};
	size_t nmade = 0;
	int rc, bits, lock = -1;

	if ((rc = dkim_opt_algs(a, both, algs, sel, &bits)) != 0 ||
	    (rc = dkim_open_domain(a, args->pos[0], domain, &lock)) != 0 ||
	    (rc = dkim_scan(a, domain, &set)) != 0)
		goto out;
	rc = dkim_make_keys(a, domain, algs, sel, bits, false, &set, &nmade);
	/* Made pending first, so lookup never sees a file before it is
	 * lookup_user's. */
	for (size_t i = set.n - nmade; i < set.n && rc == 0; i++)
		rc = dkim_move(a, &set.keys[i], DKIM_ACTIVE);
	if (rc == 0) {
		printf("Mail from %s is signed with %s now. Publish %s DNS "
		       "record%s at once (BIND syntax):\n",
		       domain, nmade == 1 ? "this key" : "these keys",
		       nmade == 1 ? "its" : "their", nmade == 1 ? "" : "s");
		dkim_print_made(&set, nmade);
	} else {
		/* Leave nothing half made behind. */
		for (size_t i = set.n - nmade; i < set.n; i++)
			unlink(set.keys[i].path);
	}
out:
	if (lock >= 0)
		close(lock);
	dkim_keyset_free(&set);
	return rc;
}

/* ------------------------------------------------------------ rotate */

static int
dkim_rotate(struct cli_admin *a, const struct cli_args *args)
{
	char domain[ADDRESS_DOMAIN_MAX + 1], sel[DKIM_NAME_MAX + 1];
	bool none[3] = {false, false, false}, algs[3];
	struct dkim_keyset set = {0};
	size_t nmade = 0;
	int rc, bits, lock = -1;

	if ((rc = dkim_opt_algs(a, none, algs, sel, &bits)) != 0 ||
	    (rc = dkim_open_domain(a, args->pos[0], domain, &lock)) != 0 ||
	    (rc = dkim_scan(a, domain, &set)) != 0)
		goto out;
	if (!algs[DKIM_ALG_RSA] && !algs[DKIM_ALG_ED25519]) {
		/* The algorithms signing now; a domain without keys gets
		 * both. */
		for (size_t i = 0; i < set.n; i++)
			if (set.keys[i].state == DKIM_ACTIVE)
				algs[set.keys[i].alg] = true;
		if (!algs[DKIM_ALG_RSA] && !algs[DKIM_ALG_ED25519])
			algs[DKIM_ALG_RSA] = algs[DKIM_ALG_ED25519] = true;
		algs[DKIM_ALG_UNKNOWN] = false;
	}
	rc = dkim_make_keys(a, domain, algs, sel, bits, true, &set, &nmade);
	if (rc != 0) {
		for (size_t i = set.n - nmade; i < set.n; i++)
			unlink(set.keys[i].path);
		goto out;
	}
	printf("New DKIM key%s for %s, not signing yet. Publish %s DNS "
	       "record%s (BIND syntax):\n",
	       nmade == 1 ? "" : "s", domain, nmade == 1 ? "its" : "their",
	       nmade == 1 ? "" : "s");
	dkim_print_made(&set, nmade);
	printf("When the record%s resolve%s, start signing with the new "
	       "key%s:\n  tern%s dkim activate %s",
	       nmade == 1 ? "" : "s", nmade == 1 ? "s" : "",
	       nmade == 1 ? "" : "s", dkim_conf_flag(a), domain);
	for (size_t i = set.n - nmade; i < set.n; i++)
		printf(" %s", set.keys[i].selector);
	printf("\nThe keys they replace then stop signing: keep their "
	       "records published a few days\nmore, for mail in transit, "
	       "until you retire them.\n");
out:
	if (lock >= 0)
		close(lock);
	dkim_keyset_free(&set);
	return rc;
}

/* ------------------------------------------------------------ activate */

/* The keys named by args->pos[1…] (sels_r[i] = index in set), each once. */
static int
dkim_named_keys(struct cli_admin *a, const struct cli_args *args,
                const char *domain, const struct dkim_keyset *set,
                size_t *idx_r, size_t *n_r)
{
	char sel[DKIM_NAME_MAX + 1];
	const struct dkim_key *k;
	int rc;

	*n_r = 0;
	for (size_t i = 1; i < args->npos; i++) {
		if ((rc = dkim_selector_arg(a, args->pos[i], false, sel)) != 0)
			return rc;
		if ((k = dkim_find(set, sel)) == NULL)
			return cli_admin_fail(a, EXIT_DATAERR,
			                      "%s has no DKIM key %s; `tern%s "
			                      "dkim list %s` shows its keys",
			                      domain, sel, dkim_conf_flag(a),
			                      domain);
		for (size_t j = 0; j < *n_r; j++)
			if (idx_r[j] == (size_t)(k - set->keys))
				return cli_admin_fail(a, EXIT_USAGE,
				                      "%s is named twice", sel);
		idx_r[(*n_r)++] = (size_t)(k - set->keys);
	}
	return 0;
}

static int
dkim_activate(struct cli_admin *a, const struct cli_args *args)
{
	char domain[ADDRESS_DOMAIN_MAX + 1], alg[32];
	struct dkim_keyset set = {0};
	size_t idx[CLI_ARGS_MAX], n = 0;
	bool seen[3] = {false, false, false};
	int rc, lock = -1;

	if ((rc = cli_admin_domain(a, args->pos[0], domain)) != 0 ||
	    (rc = dkim_lock(a, domain, &lock)) != 0 ||
	    (rc = dkim_scan(a, domain, &set)) != 0 ||
	    (rc = dkim_named_keys(a, args, domain, &set, idx, &n)) != 0)
		goto out;
	if (args->npos == 1) {
		/* No selector: every pending key. */
		for (size_t i = 0; i < set.n && n < CLI_ARGS_MAX; i++)
			if (set.keys[i].state == DKIM_PENDING)
				idx[n++] = i;
		if (n == 0) {
			rc = cli_admin_fail(
			    a, EXIT_DATAERR,
			    "%s has no pending DKIM key; `tern%s "
			    "dkim rotate %s` makes new ones",
			    domain, dkim_conf_flag(a), domain);
			goto out;
		}
	}
	/* Check everything before changing anything. */
	for (size_t i = 0; i < n; i++) {
		const struct dkim_key *k = &set.keys[idx[i]];

		if (k->alg == DKIM_ALG_UNKNOWN) {
			rc = cli_admin_fail(a, EXIT_DATAERR, "%s", k->error);
			goto out;
		}
		if (seen[k->alg]) {
			rc =
			    cli_admin_fail(a, EXIT_DATAERR,
			                   "two %s keys named: one key of each "
			                   "algorithm signs",
			                   dkim_alg_names[k->alg]);
			goto out;
		}
		seen[k->alg] = true;
	}
	for (size_t i = 0; i < n; i++) {
		struct dkim_key *k = &set.keys[idx[i]];

		dkim_alg_label(k, alg, sizeof(alg));
		if (k->state == DKIM_ACTIVE) {
			printf("%s: %s (%s) is active already\n", domain,
			       k->selector, alg);
			continue;
		}
		/* The new key signs before the old one stops: no message
		 * goes out unsigned in between. */
		if ((rc = dkim_move(a, k, DKIM_ACTIVE)) != 0)
			goto out;
		printf("%s: %s (%s) signs now\n", domain, k->selector, alg);
	}
	for (size_t j = 0; j < set.n; j++) {
		struct dkim_key *old = &set.keys[j];
		bool named = false;

		for (size_t i = 0; i < n; i++)
			named = named || idx[i] == j;
		if (named || old->state != DKIM_ACTIVE ||
		    old->alg == DKIM_ALG_UNKNOWN || !seen[old->alg])
			continue;
		if ((rc = dkim_move(a, old, DKIM_RETIRED)) != 0)
			goto out;
		dkim_alg_label(old, alg, sizeof(alg));
		printf("%s: %s (%s) is retired: keep its DNS record published "
		       "a few days more for mail in transit, then run `tern%s "
		       "dkim retire %s %s`\n",
		       domain, old->selector, alg, dkim_conf_flag(a), domain,
		       old->selector);
	}
out:
	if (lock >= 0)
		close(lock);
	dkim_keyset_free(&set);
	return rc;
}

/* ------------------------------------------------------------ retire */

static int
dkim_retire(struct cli_admin *a, const struct cli_args *args)
{
	char domain[ADDRESS_DOMAIN_MAX + 1];
	struct dkim_keyset set = {0};
	size_t idx[CLI_ARGS_MAX], n = 0;
	bool signs = false;
	int rc, lock = -1;

	if ((rc = cli_admin_domain(a, args->pos[0], domain)) != 0 ||
	    (rc = dkim_lock(a, domain, &lock)) != 0 ||
	    (rc = dkim_scan(a, domain, &set)) != 0 ||
	    (rc = dkim_named_keys(a, args, domain, &set, idx, &n)) != 0)
		goto out;
	for (size_t i = 0; i < n; i++) {
		const struct dkim_key *k = &set.keys[idx[i]];

		if (k->state == DKIM_ACTIVE && !args->force) {
			rc = cli_admin_fail(
			    a, EXIT_DATAERR,
			    "%s signs mail now; replace it first (`tern%s "
			    "dkim rotate %s`, then `activate`), or add --force "
			    "to stop signing with it at once",
			    k->selector, dkim_conf_flag(a), domain);
			goto out;
		}
	}
	for (size_t i = 0; i < n; i++) {
		struct dkim_key *k = &set.keys[idx[i]];
		enum dkim_state was = k->state;

		if (was == DKIM_ACTIVE) {
			if ((rc = dkim_move(a, k, DKIM_RETIRED)) != 0)
				goto out;
			printf("%s: %s no longer signs; it is kept as retired "
			       "(run retire again to delete it)\n",
			       domain, k->selector);
			continue;
		}
		if ((rc = dkim_delete(a, k)) != 0)
			goto out;
		printf("%s: deleted the %s key %s; its DNS record "
		       "%s._domainkey.%s can be removed\n",
		       domain, dkim_state_names[was], k->selector, k->selector,
		       domain);
		k->state = DKIM_RETIRED;
		k->alg = DKIM_ALG_UNKNOWN; /* gone */
	}
	for (size_t i = 0; i < set.n; i++)
		signs = signs || (set.keys[i].state == DKIM_ACTIVE &&
		                  set.keys[i].alg != DKIM_ALG_UNKNOWN);
	if (!signs)
		cli_admin_note(
		    a,
		    "%s has no active DKIM key, so its mail goes "
		    "out unsigned: `tern%s dkim genkey %s` makes one",
		    domain, dkim_conf_flag(a), domain);
out:
	if (lock >= 0)
		close(lock);
	dkim_keyset_free(&set);
	return rc;
}

/* ------------------------------------------------------------ dispatch */

static const struct cli_subcommand dkim_subs[] = {
    {"list", "list [DOMAIN] [--json]", CLI_OPT_JSON, 0, 1, dkim_list},
    {"genkey",
     "genkey DOMAIN [--algorithm rsa|ed25519 [--selector S]] [--bits N]", 0, 1,
     1, dkim_genkey},
    {"rotate",
     "rotate DOMAIN [--algorithm rsa|ed25519 [--selector S]] [--bits N]", 0, 1,
     1, dkim_rotate},
    {"activate", "activate DOMAIN [SELECTOR...]", 0, 1, CLI_ARGS_MAX,
     dkim_activate},
    {"retire", "retire DOMAIN SELECTOR... [--force]", CLI_OPT_FORCE, 2,
     CLI_ARGS_MAX, dkim_retire},
};

#define NSUBS (sizeof(dkim_subs) / sizeof(dkim_subs[0]))

static const char *const dkim_own_options[] = {"selector", "algorithm", "bits"};

/* Take --selector, --algorithm and --bits out of argv (into dkim_opts) for
 * genkey and rotate; the rest goes to cli_subcommand_dispatch. Returns the
 * new argc, or -1 after a usage message. */
static int
dkim_take_options(int argc, char **argv, char **out)
{
	bool takes = argc > 1 && (strcmp(argv[1], "genkey") == 0 ||
	                          strcmp(argv[1], "rotate") == 0);
	bool done = false;
	int n = 0;

	memset(&dkim_opts, 0, sizeof(dkim_opts));
	for (int i = 0; i < argc; i++) {
		const char *arg = argv[i], *name = arg + 2, *value;
		size_t len = strcspn(name, "=");
		size_t o;

		if (i < 2 || done || strncmp(arg, "--", 2) != 0) {
			out[n++] = argv[i];
			continue;
		}
		if (arg[2] == '\0') {
			done = true;
			out[n++] = argv[i];
			continue;
		}
		for (o = 0; o < 3; o++)
			if (strlen(dkim_own_options[o]) == len &&
			    strncmp(dkim_own_options[o], name, len) == 0)
				break;
		if (o == 3) {
			out[n++] = argv[i];
			continue;
		}
		if (!takes) {
			fprintf(stderr, "tern dkim %s: unknown option --%s\n",
			        argv[1], dkim_own_options[o]);
			return -1;
		}
		if (name[len] == '=') {
			value = name + len + 1;
		} else if (i + 1 < argc) {
			value = argv[++i];
		} else {
			fprintf(stderr, "tern dkim %s: --%s needs a value\n",
			        argv[1], dkim_own_options[o]);
			return -1;
		}
		if (o == 0)
			dkim_opts.selector = value;
		else if (o == 1)
			dkim_opts.algorithm = value;
		else
			dkim_opts.bits = value;
	}
	out[n] = NULL;
	return n;
}

static int
dkim_run(const struct cli_env *env, int argc, char **argv)
{
	char **args = xcalloc((size_t)argc + 1, sizeof(args[0]));
	int n, rc;

	if ((n = dkim_take_options(argc, argv, args)) < 0) {
		for (size_t i = 0; i < NSUBS; i++)
			if (strcmp(dkim_subs[i].name, argv[1]) == 0)
				fprintf(stderr, "usage: tern dkim %s\n",
				        dkim_subs[i].usage);
		free(args);
		return EXIT_USAGE;
	}
	rc = cli_subcommand_dispatch(&cli_cmd_dkim, dkim_subs, NSUBS, env, n,
	                             args);
	free(args);
	return rc;
}

const struct cli_command cli_cmd_dkim = {
    .name = "dkim",
    .usage = "list|genkey|rotate|activate|retire [DOMAIN] [SELECTOR...] "
             "[options]",
    .summary = "list, create, rotate and retire the DKIM signing keys",
    .help =
        "list [DOMAIN] [--json]\n"
        "    every key: domain, selector, algorithm, state (active, "
        "pending,\n"
        "    retired), since when, and its DNS record\n"
        "genkey DOMAIN [--algorithm rsa|ed25519 [--selector S]] [--bits "
        "N]\n"
        "    new keys that sign at once (both algorithms unless "
        "--algorithm),\n"
        "    for a domain that has none; prints the records to publish\n"
        "rotate DOMAIN [--algorithm rsa|ed25519 [--selector S]] [--bits "
        "N]\n"
        "    new pending keys (not signing yet) to replace the active "
        "ones;\n"
        "    prints the records to publish first\n"
        "activate DOMAIN [SELECTOR...]\n"
        "    once the records resolve: the pending keys (all, or those "
        "named)\n"
        "    sign, and the keys they replace are retired (they stop "
        "signing;\n"
        "    keep their records published a few days more)\n"
        "retire DOMAIN SELECTOR... [--force]\n"
        "    delete retired or pending keys (their records can go); an "
        "active\n"
        "    key only with --force, which makes it retired\n"
        "\n"
        "Selectors default to the UTC date and r (RSA) or e (Ed25519), as\n"
        "quickstart names its keys: 20260115r, then 20260115r-2. RSA keys "
        "have\n"
        "2048 bits unless --bits (1024..4096) says otherwise; a rotation "
        "keeps\n"
        "the size in use. Keys live in DATA_DIR/dkim/DOMAIN/ (active), "
        "pending/\n"
        "and retired/ below it. Exit 64 for a bad option, 65 for a bad or "
        "unknown\n"
        "name or a key in the wrong state, 73 when a key cannot be made, 74 "
        "when\na key file cannot be read, renamed or deleted.\n",
    .run = dkim_run,
};
