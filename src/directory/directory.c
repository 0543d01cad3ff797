/* The directory: opening and migrating the schema, input checks, domains,
 * users and app passwords (aliases, resolution and sender permissions are
 * in directory_alias.c), on any sql.h backend.
 * SECURITY: every key is checked again here (normalized, bounded, no NUL or
 * control bytes, valid UTF-8) and travels as a bound parameter; error
 * messages name addresses and domains but never a hash. */
#include "directory/directory.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "core/utf8.h"
#include "core/xmalloc.h"
#include "directory/directory_int.h"
#include "mail/address.h"

#define USER_COLUMNS                                                           \
	"address, password_hash, scram, quota_bytes, suspended, created"

/* ---- helpers shared with directory_alias.c ---- */

int
dir_fail(char **error_r, const char *fmt, ...)
{
	va_list ap;

	if (error_r != NULL) {
		va_start(ap, fmt);
		*error_r = xvasprintf(fmt, ap);
		va_end(ap);
	}
	return -1;
}

int
dir_insert(struct directory *dir, const char *sql, const char *const *params,
           size_t nparams, char **error_r, const char *exists_fmt, ...)
{
	char *err = NULL;
	bool unique = false;
	va_list ap;

	if (dir_exec(dir, sql, params, nparams, NULL, NULL, &unique, &err) == 0)
		return 0;
	if (error_r != NULL && unique) {
		va_start(ap, exists_fmt);
		*error_r = xvasprintf(exists_fmt, ap);
		va_end(ap);
	} else {
		dir_fail(error_r, "%s", err);
	}
	free(err);
	return -1;
}

/* Length of a well-formed UTF-8 sequence at p (at most n bytes), 0 if
 * malformed, or a C0/C1 control or DEL. */
static size_t
utf8_char(const unsigned char *p, size_t n)
{
	uint32_t cp;
	size_t len = utf8_decode(p, n, &cp);

	if (len == 0 || cp < 0x20 || (cp >= 0x7f && cp <= 0x9f))
		return 0;
	return len;
}

int
dir_check_text(const char *s, size_t max, const char *what, char **error_r)
{
	size_t n, i = 0;

	if (s == NULL || s[0] == '\0')
		return dir_fail(error_r, "empty %s", what);
	n = strnlen(s, max + 1);
	if (n > max)
		return dir_fail(error_r, "%s over %zu bytes", what, max);
	while (i < n) {
		size_t k = utf8_char((const unsigned char *)s + i, n - i);

		if (k == 0)
			return dir_fail(error_r,
			                "%s: control character or invalid "
			                "UTF-8",
			                what);
		i += k;
	}
	return 0;
}

int
dir_check_domain(const char *domain, char **error_r)
{
	char norm[ADDRESS_DOMAIN_MAX + 1];
	const char *reason = NULL;

	if (dir_check_text(domain, ADDRESS_DOMAIN_MAX, "domain", error_r) < 0)
		return -1;
	if (address_domain_normalize(domain, strlen(domain), norm, &reason) < 0)
		return dir_fail(error_r, "invalid domain (%s)", reason);
	if (strcmp(norm, domain) != 0)
		return dir_fail(error_r, "domain not normalized (lower-case "
		                         "A-labels expected)");
	return 0;
}

int
dir_check_address(const char *address, char **error_r)
{
	char key[ADDRESS_MAX * 4 + 2];
	const char *reason = NULL;
	struct address a;

	if (dir_check_text(address, DIR_KEY_MAX, "address", error_r) < 0)
		return -1;
	if (address_parse(address, strlen(address), &a, &reason) < 0)
		return dir_fail(error_r, "invalid address (%s)", reason);
	address_key(&a, key, sizeof(key));
	if (strcmp(key, address) != 0)
		return dir_fail(error_r, "address not normalized (lower case "
		                         "and A-labels expected)");
	return 0;
}

int
dir_check_source(const char *source, char **error_r)
{
	if (source != NULL && source[0] == '@')
		return dir_check_domain(source + 1, error_r);
	return dir_check_address(source, error_r);
}

const char *
dir_domain_of(const char *address)
{
	const char *at = strrchr(address, '@');

	return at != NULL ? at + 1 : address;
}

int
dir_exec(struct directory *dir, const char *sql, const char *const *params,
         size_t nparams, struct sql_result **res_r, uint64_t *affected_r,
         bool *unique_r, char **error_r)
{
	return sql_exec(dir->sql, sql, params, nparams, res_r, affected_r,
	                unique_r, error_r);
}

int
dir_exists(struct directory *dir, const char *sql, const char *const *params,
           size_t nparams, char **error_r)
{
	struct sql_result *res = NULL;
	int found;

	if (dir_exec(dir, sql, params, nparams, &res, NULL, NULL, error_r) < 0)
		return -1;
	found = res->nrows > 0;
	sql_result_free(&res);
	return found;
}

int
dir_begin(struct directory *dir, char **error_r)
{
	return sql_begin(dir->sql, error_r);
}

int
dir_commit(struct directory *dir, char **error_r)
{
	if (sql_commit(dir->sql, error_r) < 0)
		return dir_rollback(dir);
	return 0;
}

int
dir_rollback(struct directory *dir)
{
	sql_rollback(dir->sql);
	return -1;
}

const char *
dir_i64(char buf[DIR_INT_MAX], int64_t v)
{
	snprintf(buf, DIR_INT_MAX, "%lld", (long long)v);
	return buf;
}

int
dir_parse_i64(const char *s, int64_t *v_r)
{
	long long v;
	char *end;

	if (s == NULL || s[0] == '\0')
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0')
		return -1;
	*v_r = v;
	return 0;
}

static char *
now_text(char buf[DIR_INT_MAX])
{
	dir_i64(buf, (int64_t)time(NULL));
	return buf;
}

/* ---- open and migrate ---- */

static int
read_version(struct directory *dir, int *version_r, char **error_r)
{
	struct sql_result *res = NULL;
	const char *v;
	int64_t n = 0;

	if (dir_exec(dir, "SELECT MAX(version) FROM schema_version", NULL, 0,
	             &res, NULL, NULL, error_r) < 0)
		return -1;
	v = res->nrows > 0 && res->ncols > 0 ? sql_cell(res, 0, 0) : NULL;
	if (v != NULL && (dir_parse_i64(v, &n) < 0 || n < 0 || n > INT_MAX)) {
		sql_result_free(&res);
		return dir_fail(error_r, "schema_version: not a version");
	}
	sql_result_free(&res);
	*version_r = (int)n;
	return 0;
}

static int
migrate(struct directory *dir, char **error_r)
{
	enum sql_backend b = sql_backend(dir->sql);
	char buf[DIR_INT_MAX];
	const char *param, *lock;
	int from;

	if (dir_begin(dir, error_r) < 0)
		return -1;
	if ((lock = directory_schema_lock(b)) != NULL &&
	    dir_exec(dir, lock, NULL, 0, NULL, NULL, NULL, error_r) < 0)
		return dir_rollback(dir);
	if (dir_exec(dir, directory_schema_bootstrap(b), NULL, 0, NULL, NULL,
	             NULL, error_r) < 0 ||
	    read_version(dir, &from, error_r) < 0)
		return dir_rollback(dir);
	if (from > DIRECTORY_SCHEMA_VERSION) {
		dir_rollback(dir);
		return dir_fail(error_r,
		                "directory schema version %d is newer than "
		                "this build (%d)",
		                from, DIRECTORY_SCHEMA_VERSION);
	}
	if (from == DIRECTORY_SCHEMA_VERSION)
		return dir_commit(dir, error_r);
	for (int v = from + 1; v <= DIRECTORY_SCHEMA_VERSION; v++) {
		const char *const *stmts = directory_schema(b, v);

		for (size_t i = 0; stmts != NULL && stmts[i] != NULL; i++) {
			char *err = NULL;

			if (dir_exec(dir, stmts[i], NULL, 0, NULL, NULL, NULL,
			             &err) < 0) {
				dir_rollback(dir);
				dir_fail(error_r,
				         "schema version %d, step %zu: %s", v,
				         i + 1, err);
				free(err);
				return -1;
			}
		}
	}
	param = dir_i64(buf, DIRECTORY_SCHEMA_VERSION);
	if (dir_exec(dir, "DELETE FROM schema_version", NULL, 0, NULL, NULL,
	             NULL, error_r) < 0 ||
	    dir_exec(dir, "INSERT INTO schema_version (version) VALUES (?)",
	             &param, 1, NULL, NULL, NULL, error_r) < 0)
		return dir_rollback(dir);
	if (dir_commit(dir, error_r) < 0)
		return -1;
	log_info(NULL, "event=directory_migrated backend=%s from=%d to=%d",
	         sql_backend_name(b), from, DIRECTORY_SCHEMA_VERSION);
	return 0;
}

static int
check_version(struct directory *dir, char **error_r)
{
	char *err = NULL;
	int v;

	if (read_version(dir, &v, &err) < 0) {
		dir_fail(error_r, "no directory schema (%s)", err);
		free(err);
		return -1;
	}
	if (v > DIRECTORY_SCHEMA_VERSION)
		return dir_fail(error_r,
		                "directory schema version %d is newer than "
		                "this build (%d)",
		                v, DIRECTORY_SCHEMA_VERSION);
	if (v < DIRECTORY_SCHEMA_VERSION)
		return dir_fail(error_r,
		                "directory schema version %d needs migrating "
		                "to %d",
		                v, DIRECTORY_SCHEMA_VERSION);
	return 0;
}

struct directory *
directory_open(enum sql_backend backend, const char *target, bool migrate_,
               char **error_r)
{
	struct directory *dir;
	struct sql_conn *conn;

	if ((conn = sql_open(backend, target, error_r)) == NULL)
		return NULL;
	dir = xcalloc(1, sizeof(*dir));
	dir->sql = conn;
	if ((migrate_ ? migrate(dir, error_r) : check_version(dir, error_r)) <
	    0) {
		directory_close(&dir);
		return NULL;
	}
	return dir;
}

void
directory_close(struct directory **dir)
{
	if (dir == NULL || *dir == NULL)
		return;
	sql_close(&(*dir)->sql);
	xfree(dir);
}

int
directory_schema_version(struct directory *dir, int *version_r, char **error_r)
{
	return read_version(dir, version_r, error_r);
}

void
directory_strings_free(char ***strings, size_t n)
{
	if (strings == NULL || *strings == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		free((*strings)[i]);
	xfree(strings);
}

/* ---- domains ---- */

int
directory_domain_add(struct directory *dir, const char *domain, char **error_r)
{
	char now[DIR_INT_MAX];
	const char *params[] = {domain, now_text(now)};

	if (dir_check_domain(domain, error_r) < 0)
		return -1;
	return dir_insert(dir,
	                  "INSERT INTO domains (name, active, created)"
	                  " VALUES (?, 1, ?)",
	                  params, 2, error_r, "domain %s exists", domain);
}

/* "%@domain" for LIKE, with "!" escaping (portable: no backslashes). */
static char *
like_domain(const char *domain)
{
	size_t n = strlen(domain), o = 0;
	char *s = xmalloc(2 * n + 3);

	s[o++] = '%';
	s[o++] = '@';
	for (size_t i = 0; i < n; i++) {
		if (domain[i] == '%' || domain[i] == '_' || domain[i] == '!')
			s[o++] = '!';
		s[o++] = domain[i];
	}
	s[o] = '\0';
	return s;
}

static int
count(struct directory *dir, const char *sql, const char *const *params,
      size_t nparams, int64_t *n_r, char **error_r)
{
	struct sql_result *res = NULL;

	if (dir_exec(dir, sql, params, nparams, &res, NULL, NULL, error_r) < 0)
		return -1;
	if (res->nrows != 1 || res->ncols != 1 ||
	    dir_parse_i64(sql_cell(res, 0, 0), n_r) < 0) {
		sql_result_free(&res);
		return dir_fail(error_r, "COUNT: unexpected result");
	}
	sql_result_free(&res);
	return 0;
}

int
directory_domain_del(struct directory *dir, const char *domain, bool force,
                     char **error_r)
{
	const char *dparam[1] = {domain};
	const char *lparam[1];
	int64_t nusers = 0, naliases = 0;
	char *like;
	int found;

	if (dir_check_domain(domain, error_r) < 0)
		return -1;
	like = like_domain(domain);
	lparam[0] = like;
	if (dir_begin(dir, error_r) < 0)
		goto fail_nort;
	found = dir_exists(dir, "SELECT 1 FROM domains WHERE name = ?", dparam,
	                   1, error_r);
	if (found < 0)
		goto fail;
	if (found == 0) {
		dir_fail(error_r, "no domain %s", domain);
		goto fail;
	}
	if (count(dir, "SELECT COUNT(*) FROM users WHERE domain = ?", dparam, 1,
	          &nusers, error_r) < 0 ||
	    count(dir,
	          "SELECT COUNT(*) FROM aliases WHERE source LIKE ? ESCAPE '!'",
	          lparam, 1, &naliases, error_r) < 0)
		goto fail;
	if ((nusers > 0 || naliases > 0) && !force) {
		dir_fail(error_r,
		         "domain %s has %lld users and %lld aliases "
		         "(force deletes them)",
		         domain, (long long)nusers, (long long)naliases);
		goto fail;
	}
	/* Users take their app passwords and grants along (ON DELETE
	 * CASCADE); aliases pointing into the domain from elsewhere stay. */
	if (dir_exec(dir, "DELETE FROM aliases WHERE source LIKE ? ESCAPE '!'",
	             lparam, 1, NULL, NULL, NULL, error_r) < 0 ||
	    dir_exec(dir, "DELETE FROM users WHERE domain = ?", dparam, 1, NULL,
	             NULL, NULL, error_r) < 0 ||
	    dir_exec(dir, "DELETE FROM domains WHERE name = ?", dparam, 1, NULL,
	             NULL, NULL, error_r) < 0)
		goto fail;
	free(like);
	return dir_commit(dir, error_r);
fail:
	dir_rollback(dir);
fail_nort:
	free(like);
	return -1;
}

int
directory_domain_exists(struct directory *dir, const char *domain,
                        char **error_r)
{
	if (dir_check_domain(domain, error_r) < 0)
		return -1;
	return dir_exists(dir, "SELECT 1 FROM domains WHERE name = ?", &domain,
	                  1, error_r);
}

/* Column 0 of every row, as a malloc'd array (NULL when empty). */
static char **
column_strings(struct sql_result *res, size_t *n_r)
{
	char **out = NULL;
	size_t n = 0;

	if (res->nrows > 0)
		out = xcalloc(res->nrows, sizeof(*out));
	for (size_t i = 0; i < res->nrows; i++) {
		const char *v = sql_cell(res, i, 0);

		if (v != NULL)
			out[n++] = xstrdup(v);
	}
	*n_r = n;
	return out;
}

int
directory_domain_list(struct directory *dir, char ***domains_r, size_t *n_r,
                      char **error_r)
{
	struct sql_result *res = NULL;

	*domains_r = NULL;
	*n_r = 0;
	if (dir_exec(dir, "SELECT name FROM domains ORDER BY name", NULL, 0,
	             &res, NULL, NULL, error_r) < 0)
		return -1;
	*domains_r = column_strings(res, n_r);
	sql_result_free(&res);
	return 0;
}

/* ---- users ---- */

static int
check_secret(const char *s, const char *what, char **error_r)
{
	if (s == NULL)
		return 0;
	return dir_check_text(s, DIR_SECRET_MAX, what, error_r);
}

/* Fails with "no user ADDRESS" when an UPDATE or DELETE touched nothing. */
static int
exec_on_user(struct directory *dir, const char *sql, const char *const *params,
             size_t nparams, const char *address, char **error_r)
{
	uint64_t affected = 0;

	if (dir_exec(dir, sql, params, nparams, NULL, &affected, NULL,
	             error_r) < 0)
		return -1;
	if (affected == 0)
		return dir_fail(error_r, "no user %s", address);
	return 0;
}

int
directory_user_add(struct directory *dir, const struct dir_user *user,
                   char **error_r)
{
	char quota[DIR_INT_MAX], created[DIR_INT_MAX];
	const char *params[7];
	int found;

	if (dir_check_address(user->address, error_r) < 0 ||
	    check_secret(user->password_hash, "password hash", error_r) < 0 ||
	    check_secret(user->scram, "SCRAM keys", error_r) < 0)
		return -1;
	if (user->quota_bytes > INT64_MAX)
		return dir_fail(error_r, "quota too large");
	params[0] = user->address;
	params[1] = dir_domain_of(user->address);
	params[2] = user->password_hash;
	params[3] = user->scram;
	params[4] = dir_i64(quota, (int64_t)user->quota_bytes);
	params[5] = user->suspended ? "1" : "0";
	params[6] = user->created > 0 ? dir_i64(created, user->created)
	                              : now_text(created);
	found = dir_exists(dir, "SELECT 1 FROM domains WHERE name = ?",
	                   &params[1], 1, error_r);
	if (found < 0)
		return -1;
	if (found == 0)
		return dir_fail(error_r, "no domain %s", params[1]);
	return dir_insert(
	    dir,
	    "INSERT INTO users (address, domain, password_hash, scram,"
	    " quota_bytes, suspended, created)"
	    " VALUES (?, ?, ?, ?, ?, ?, ?)",
	    params, 7, error_r, "user %s exists", user->address);
}

int
directory_user_del(struct directory *dir, const char *address, char **error_r)
{
	if (dir_check_address(address, error_r) < 0)
		return -1;
	return exec_on_user(dir, "DELETE FROM users WHERE address = ?",
	                    &address, 1, address, error_r);
}

static int
row_to_user(const struct sql_result *res, size_t row, struct dir_user *u,
            char **error_r)
{
	const char *address = sql_cell(res, row, 0);
	const char *hash = sql_cell(res, row, 1);
	const char *scram = sql_cell(res, row, 2);
	int64_t quota, suspended, created;

	if (address == NULL ||
	    dir_parse_i64(sql_cell(res, row, 3), &quota) < 0 || quota < 0 ||
	    dir_parse_i64(sql_cell(res, row, 4), &suspended) < 0 ||
	    dir_parse_i64(sql_cell(res, row, 5), &created) < 0)
		return dir_fail(error_r, "users: malformed row");
	memset(u, 0, sizeof(*u));
	u->address = xstrdup(address);
	u->password_hash = hash != NULL ? xstrdup(hash) : NULL;
	u->scram = scram != NULL ? xstrdup(scram) : NULL;
	u->quota_bytes = (uint64_t)quota;
	u->suspended = suspended != 0;
	u->created = created;
	return 0;
}

int
directory_user_get(struct directory *dir, const char *address,
                   struct dir_user *user_r, char **error_r)
{
	struct sql_result *res = NULL;
	int rc;

	memset(user_r, 0, sizeof(*user_r));
	if (dir_check_address(address, error_r) < 0)
		return -1;
	if (dir_exec(dir,
	             "SELECT " USER_COLUMNS " FROM users WHERE address = ?",
	             &address, 1, &res, NULL, NULL, error_r) < 0)
		return -1;
	rc = res->nrows == 0                            ? 0
	     : row_to_user(res, 0, user_r, error_r) < 0 ? -1
	                                                : 1;
	sql_result_free(&res);
	return rc;
}

int
directory_user_set_password(struct directory *dir, const char *address,
                            const char *hash, const char *scram, char **error_r)
{
	const char *params[] = {hash, scram, address};

	if (dir_check_address(address, error_r) < 0 ||
	    check_secret(hash, "password hash", error_r) < 0 ||
	    check_secret(scram, "SCRAM keys", error_r) < 0)
		return -1;
	return exec_on_user(dir,
	                    "UPDATE users SET password_hash = ?, scram = ?"
	                    " WHERE address = ?",
	                    params, 3, address, error_r);
}

int
directory_user_set_suspended(struct directory *dir, const char *address,
                             bool suspended, char **error_r)
{
	const char *params[] = {suspended ? "1" : "0", address};

	if (dir_check_address(address, error_r) < 0)
		return -1;
	return exec_on_user(dir,
	                    "UPDATE users SET suspended = ? WHERE address = ?",
	                    params, 2, address, error_r);
}

int
directory_user_set_quota(struct directory *dir, const char *address,
                         uint64_t quota_bytes, char **error_r)
{
	char quota[DIR_INT_MAX];
	const char *params[] = {quota, address};

	if (dir_check_address(address, error_r) < 0)
		return -1;
	if (quota_bytes > INT64_MAX)
		return dir_fail(error_r, "quota too large");
	dir_i64(quota, (int64_t)quota_bytes);
	return exec_on_user(
	    dir, "UPDATE users SET quota_bytes = ? WHERE address = ?", params,
	    2, address, error_r);
}

int
directory_user_list(struct directory *dir, const char *domain,
                    struct dir_user **users_r, size_t *n_r, char **error_r)
{
	struct sql_result *res = NULL;
	struct dir_user *users = NULL;
	size_t n = 0;

	*users_r = NULL;
	*n_r = 0;
	if (domain != NULL && dir_check_domain(domain, error_r) < 0)
		return -1;
	if (dir_exec(dir,
	             domain != NULL ? "SELECT " USER_COLUMNS " FROM users"
	                              " WHERE domain = ? ORDER BY address"
	                            : "SELECT " USER_COLUMNS
	                              " FROM users ORDER BY address",
	             &domain, domain != NULL ? 1 : 0, &res, NULL, NULL,
	             error_r) < 0)
		return -1;
	if (res->nrows > 0)
		users = xcalloc(res->nrows, sizeof(*users));
	for (; n < res->nrows; n++) {
		if (row_to_user(res, n, &users[n], error_r) < 0) {
			dir_users_free(&users, n);
			sql_result_free(&res);
			return -1;
		}
	}
	sql_result_free(&res);
	*users_r = users;
	*n_r = n;
	return 0;
}

void
dir_user_clear(struct dir_user *user)
{
	if (user == NULL)
		return;
	free(user->address);
	if (user->password_hash != NULL) {
		explicit_bzero(user->password_hash,
		               strlen(user->password_hash));
		free(user->password_hash);
	}
	if (user->scram != NULL) {
		explicit_bzero(user->scram, strlen(user->scram));
		free(user->scram);
	}
	memset(user, 0, sizeof(*user));
}

void
dir_users_free(struct dir_user **users, size_t n)
{
	if (users == NULL || *users == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		dir_user_clear(&(*users)[i]);
	xfree(users);
}

/* ---- app passwords ---- */

int
directory_app_password_add(struct directory *dir, const char *address,
                           const char *label, const char *hash,
                           const char *scram, unsigned services, char **error_r)
{
	char svc[DIR_INT_MAX], now[DIR_INT_MAX];
	const char *params[] = {
	    address, label, hash, scram, dir_i64(svc, services), now_text(now)};
	int found;

	if (dir_check_address(address, error_r) < 0 ||
	    dir_check_text(label, DIR_LABEL_MAX, "label", error_r) < 0 ||
	    dir_check_text(hash, DIR_SECRET_MAX, "password hash", error_r) <
	        0 ||
	    check_secret(scram, "SCRAM keys", error_r) < 0)
		return -1;
	if (services == 0 || (services & ~(unsigned)DIR_SERVICE_ALL) != 0)
		return dir_fail(error_r, "invalid services");
	found = dir_exists(dir, "SELECT 1 FROM users WHERE address = ?",
	                   &address, 1, error_r);
	if (found <= 0)
		return found < 0 ? -1
		                 : dir_fail(error_r, "no user %s", address);
	return dir_insert(
	    dir,
	    "INSERT INTO app_passwords (address, label, password_hash,"
	    " scram, services, created) VALUES (?, ?, ?, ?, ?, ?)",
	    params, 6, error_r, "app password %s exists for %s", label,
	    address);
}

int
directory_app_password_del(struct directory *dir, const char *address,
                           const char *label, char **error_r)
{
	const char *params[] = {address, label};
	uint64_t affected = 0;

	if (dir_check_address(address, error_r) < 0 ||
	    dir_check_text(label, DIR_LABEL_MAX, "label", error_r) < 0)
		return -1;
	if (dir_exec(
	        dir,
	        "DELETE FROM app_passwords WHERE address = ? AND label = ?",
	        params, 2, NULL, &affected, NULL, error_r) < 0)
		return -1;
	if (affected == 0)
		return dir_fail(error_r, "no app password %s for %s", label,
		                address);
	return 0;
}

int
directory_app_password_list(struct directory *dir, const char *address,
                            struct dir_app_password **list_r, size_t *n_r,
                            char **error_r)
{
	struct dir_app_password *list = NULL;
	struct sql_result *res = NULL;
	size_t n = 0;

	*list_r = NULL;
	*n_r = 0;
	if (dir_check_address(address, error_r) < 0)
		return -1;
	if (dir_exec(dir,
	             "SELECT id, label, password_hash, scram, services, created"
	             " FROM app_passwords WHERE address = ? ORDER BY label",
	             &address, 1, &res, NULL, NULL, error_r) < 0)
		return -1;
	if (res->nrows > 0)
		list = xcalloc(res->nrows, sizeof(*list));
	for (; n < res->nrows; n++) {
		struct dir_app_password *p = &list[n];
		const char *scram = sql_cell(res, n, 3);
		int64_t services;

		if (dir_parse_i64(sql_cell(res, n, 0), &p->id) < 0 ||
		    sql_cell(res, n, 1) == NULL ||
		    sql_cell(res, n, 2) == NULL ||
		    dir_parse_i64(sql_cell(res, n, 4), &services) < 0 ||
		    services < 0 || services > DIR_SERVICE_ALL ||
		    dir_parse_i64(sql_cell(res, n, 5), &p->created) < 0) {
			dir_app_passwords_free(&list, n);
			sql_result_free(&res);
			return dir_fail(error_r,
			                "app_passwords: malformed row");
		}
		p->label = xstrdup(sql_cell(res, n, 1));
		p->password_hash = xstrdup(sql_cell(res, n, 2));
		p->scram = scram != NULL ? xstrdup(scram) : NULL;
		p->services = (unsigned)services;
	}
	sql_result_free(&res);
	*list_r = list;
	*n_r = n;
	return 0;
}

void
dir_app_passwords_free(struct dir_app_password **list, size_t n)
{
	if (list == NULL || *list == NULL)
		return;
	for (size_t i = 0; i < n; i++) {
		struct dir_app_password *p = &(*list)[i];

		free(p->label);
		if (p->password_hash != NULL) {
			explicit_bzero(p->password_hash,
			               strlen(p->password_hash));
			free(p->password_hash);
		}
		if (p->scram != NULL) {
			explicit_bzero(p->scram, strlen(p->scram));
			free(p->scram);
		}
	}
	xfree(list);
}
