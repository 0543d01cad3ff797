/* MariaDB/MySQL driver for sql.h over libmariadb: the target is parsed
 * strictly ("host=H port=P socket=S user=U password=W database=D", values
 * bare or 'single-quoted' with \ escapes), the connection is utf8mb4 with
 * strict SQL mode and found-rows counting; statements are prepared once
 * (mysql_stmt_prepare) and bound as strings; a connection lost outside a
 * transaction is opened again once and the statement retried.
 * SECURITY: values are bound, never spliced; LOCAL INFILE is off; messages
 * that quote values (duplicate entry, bad value) are replaced by codes, and
 * no error ever names the password. */
#include <errmsg.h>
#include <mysql.h>
#include <mysqld_error.h>
#include <stdlib.h>
#include <string.h>

#include "core/xmalloc.h"
#include "directory/sql_driver.h"

#define MY_TARGET_MAX 4096
#define MY_VALUE_MAX 1024
#define MY_CONNECT_TIMEOUT 10 /* seconds */
#define MY_IO_TIMEOUT 60      /* seconds, each read or write */
#define MY_SESSION_SQL                                                         \
	"SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ZERO_DATE,"              \
	"ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION'"

struct my_target {
	char *host;
	char *socket;
	char *user;
	char *password;
	char *database;
	unsigned port;
};

struct my_ctx {
	MYSQL *my;
	struct my_target target;
	struct sql_cache cache;
	bool in_tx;
};

static void
target_clear(struct my_target *t)
{
	free(t->host);
	free(t->socket);
	free(t->user);
	if (t->password != NULL) {
		explicit_bzero(t->password, strlen(t->password));
		free(t->password);
	}
	free(t->database);
	memset(t, 0, sizeof(*t));
}

/* One value at *pp (bare up to a blank, or quoted); *pp moves past it. */
static char *
parse_value(const char **pp, const char **reason_r)
{
	const char *p = *pp;
	char out[MY_VALUE_MAX + 1];
	size_t n = 0;

	if (*p == '\'') {
		for (p++;; p++) {
			if (*p == '\0') {
				*reason_r = "unterminated quoted value";
				return NULL;
			}
			if (*p == '\'')
				break;
			if (*p == '\\' && p[1] != '\0')
				p++;
			if (n == MY_VALUE_MAX) {
				*reason_r = "value too long";
				return NULL;
			}
			out[n++] = *p;
		}
		p++;
		if (*p != '\0' && *p != ' ' && *p != '\t') {
			*reason_r = "text after a quoted value";
			return NULL;
		}
	} else {
		for (; *p != '\0' && *p != ' ' && *p != '\t'; p++) {
			if (*p == '\'' || *p == '\\') {
				*reason_r =
				    "quote or backslash in a bare value";
				return NULL;
			}
			if (n == MY_VALUE_MAX) {
				*reason_r = "value too long";
				return NULL;
			}
			out[n++] = *p;
		}
	}
	if (n == 0) {
		*reason_r = "empty value";
		return NULL;
	}
	*pp = p;
	return sql_strndup(out, n);
}

static int
parse_port(const char *s, unsigned *port_r)
{
	unsigned long v = 0;

	if (s[0] == '\0' || strlen(s) > 5)
		return -1;
	for (const char *p = s; *p != '\0'; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		v = v * 10 + (unsigned long)(*p - '0');
	}
	if (v == 0 || v > 65535)
		return -1;
	*port_r = (unsigned)v;
	return 0;
}

static int
parse_target(const char *s, struct my_target *t, char **error_r)
{
	static const char *const keys[] = {"host", "port",     "socket",
	                                   "user", "password", "database"};
	char **slots[] = {&t->host, NULL,         &t->socket,
	                  &t->user, &t->password, &t->database};
	bool seen[6] = {false};
	const char *p = s, *reason = NULL;

	memset(t, 0, sizeof(*t));
	if (strlen(s) > MY_TARGET_MAX) {
		*error_r = xstrdup("target: too long");
		return -1;
	}
	for (;;) {
		size_t klen, k;
		char *value;

		p += strspn(p, " \t");
		if (*p == '\0')
			break;
		klen = strspn(p, "abcdefghijklmnopqrstuvwxyz");
		if (klen == 0 || p[klen] != '=') {
			*error_r = xstrdup("target: expected key=value");
			goto fail;
		}
		for (k = 0; k < 6; k++) {
			if (strlen(keys[k]) == klen &&
			    strncmp(p, keys[k], klen) == 0)
				break;
		}
		if (k == 6) {
			*error_r =
			    xasprintf("target: unknown key %.*s", (int)klen, p);
			goto fail;
		}
		if (seen[k]) {
			*error_r = xasprintf("target: %s given twice", keys[k]);
			goto fail;
		}
		seen[k] = true;
		p += klen + 1;
		if ((value = parse_value(&p, &reason)) == NULL) {
			*error_r = xasprintf("target: %s: %s", keys[k], reason);
			goto fail;
		}
		if (slots[k] != NULL) {
			*slots[k] = value;
			continue;
		}
		if (parse_port(value, &t->port) < 0) {
			free(value);
			*error_r = xstrdup("target: port: not 1..65535");
			goto fail;
		}
		free(value);
	}
	if (t->database == NULL) {
		*error_r = xstrdup("target: database is required");
		goto fail;
	}
	return 0;
fail:
	target_clear(t);
	return -1;
}

static void
close_stmt(void *stmt, void *arg)
{
	(void)arg;
	mysql_stmt_close(stmt);
}

static MYSQL *
connect_db(const struct my_target *t, char **error_r)
{
	unsigned connect_timeout = MY_CONNECT_TIMEOUT;
	unsigned io_timeout = MY_IO_TIMEOUT;
	my_bool off = 0;
	MYSQL *my;

	if ((my = mysql_init(NULL)) == NULL) {
		*error_r = xstrdup("out of memory");
		return NULL;
	}
	mysql_options(my, MYSQL_SET_CHARSET_NAME, "utf8mb4");
	mysql_options(my, MYSQL_OPT_CONNECT_TIMEOUT, &connect_timeout);
	mysql_options(my, MYSQL_OPT_READ_TIMEOUT, &io_timeout);
	mysql_options(my, MYSQL_OPT_WRITE_TIMEOUT, &io_timeout);
	mysql_options(my, MYSQL_OPT_RECONNECT, &off);
	mysql_options(my, MYSQL_OPT_LOCAL_INFILE, &off);
	/* FOUND_ROWS: an UPDATE that sets a value to itself still counts
	 * the row, as on SQLite and PostgreSQL. */
	if (mysql_real_connect(my, t->host, t->user, t->password, t->database,
	                       t->port, t->socket, CLIENT_FOUND_ROWS) == NULL) {
		*error_r = xasprintf("connect: %s", mysql_error(my));
		mysql_close(my);
		return NULL;
	}
	/* Strict: a value that does not fit is an error, never truncated. */
	if (mysql_real_query(my, MY_SESSION_SQL, strlen(MY_SESSION_SQL)) != 0) {
		*error_r = xasprintf("sql_mode: %s", mysql_error(my));
		mysql_close(my);
		return NULL;
	}
	return my;
}

static void
my_close(void *vctx)
{
	struct my_ctx *ctx = vctx;

	if (ctx == NULL)
		return;
	sql_cache_clear(&ctx->cache, close_stmt, NULL);
	mysql_close(ctx->my);
	target_clear(&ctx->target);
	free(ctx);
}

static void *
my_open(const char *target, char **error_r)
{
	struct my_ctx *ctx = xcalloc(1, sizeof(*ctx));

	if (parse_target(target, &ctx->target, error_r) < 0) {
		free(ctx);
		return NULL;
	}
	if ((ctx->my = connect_db(&ctx->target, error_r)) == NULL) {
		target_clear(&ctx->target);
		free(ctx);
		return NULL;
	}
	return ctx;
}

static bool
is_connection_error(unsigned err)
{
	return err == CR_SERVER_GONE_ERROR || err == CR_SERVER_LOST ||
	       err == ER_CONNECTION_KILLED;
}

/* The message for error err, without values. */
static char *
error_message(unsigned err, const char *state, const char *msg, bool *unique_r)
{
	if (unique_r != NULL)
		*unique_r =
		    err == ER_DUP_ENTRY || err == ER_DUP_ENTRY_WITH_KEY_NAME;
	switch (err) {
	case ER_DUP_ENTRY:
	case ER_DUP_ENTRY_WITH_KEY_NAME:
		return xasprintf("duplicate key (error %u)", err);
	case ER_TRUNCATED_WRONG_VALUE:
	case ER_TRUNCATED_WRONG_VALUE_FOR_FIELD:
	case ER_WRONG_VALUE_FOR_TYPE:
		return xasprintf("invalid value (error %u, SQLSTATE %s)", err,
		                 state);
	default:
		/* Class 22 (data exception) messages may quote the value. */
		if (strncmp(state, "22", 2) == 0)
			return xasprintf(
			    "invalid value (error %u, SQLSTATE %s)", err,
			    state);
		return xasprintf("%s (error %u, SQLSTATE %s)", msg, err, state);
	}
}

static char *
stmt_error(MYSQL_STMT *st, bool *unique_r)
{
	return error_message(mysql_stmt_errno(st), mysql_stmt_sqlstate(st),
	                     mysql_stmt_error(st), unique_r);
}

/* Read every row of a statement that has a result set. */
static int
fetch_rows(MYSQL_STMT *st, MYSQL_RES *meta, struct sql_result **res_r,
           char **error_r)
{
	unsigned ncols = mysql_num_fields(meta);
	struct sql_result *res = NULL;
	MYSQL_BIND *bind;
	unsigned long *lens;
	my_bool *nulls;
	int rc = -1;

	if (ncols == 0)
		return 0;
	if (mysql_stmt_store_result(st) != 0) {
		*error_r = stmt_error(st, NULL);
		return -1;
	}
	bind = xcalloc(ncols, sizeof(*bind));
	lens = xcalloc(ncols, sizeof(*lens));
	nulls = xcalloc(ncols, sizeof(*nulls));
	/* No buffers: each fetch reports the lengths, then every column is
	 * read into an exact-size allocation. */
	for (unsigned c = 0; c < ncols; c++) {
		bind[c].buffer_type = MYSQL_TYPE_STRING;
		bind[c].length = &lens[c];
		bind[c].is_null = &nulls[c];
	}
	if (mysql_stmt_bind_result(st, bind) != 0) {
		*error_r = stmt_error(st, NULL);
		goto out;
	}
	if (res_r != NULL)
		res = sql_result_new(ncols);
	for (;;) {
		int f = mysql_stmt_fetch(st);
		char **row;

		if (f == MYSQL_NO_DATA)
			break;
		if (f != 0 && f != MYSQL_DATA_TRUNCATED) {
			*error_r = stmt_error(st, NULL);
			goto out;
		}
		if (res == NULL)
			continue;
		row = sql_result_add_row(res);
		for (unsigned c = 0; c < ncols; c++) {
			MYSQL_BIND one;

			if (nulls[c])
				continue;
			row[c] = xmalloc(lens[c] + 1);
			row[c][0] = '\0';
			if (lens[c] == 0)
				continue;
			memset(&one, 0, sizeof(one));
			one.buffer_type = MYSQL_TYPE_STRING;
			one.buffer = row[c];
			one.buffer_length = lens[c] + 1;
			if (mysql_stmt_fetch_column(st, &one, c, 0) != 0) {
				*error_r = stmt_error(st, NULL);
				goto out;
			}
			row[c][lens[c]] = '\0';
		}
	}
	if (res_r != NULL) {
		*res_r = res;
		res = NULL;
	}
	rc = 0;
out:
	sql_result_free(&res);
	free(bind);
	free(lens);
	free(nulls);
	return rc;
}

/* The statement for sql, prepared now or found in the cache; *errno_r is
 * the client error when preparing failed. */
static MYSQL_STMT *
prepare(struct my_ctx *ctx, const char *sql, bool *cached_r, unsigned *errno_r,
        char **error_r)
{
	MYSQL_STMT *st;

	*errno_r = 0;
	if ((st = sql_cache_find(&ctx->cache, sql)) != NULL) {
		*cached_r = true;
		return st;
	}
	if ((st = mysql_stmt_init(ctx->my)) == NULL) {
		*errno_r = mysql_errno(ctx->my);
		*error_r = xstrdup("out of memory");
		return NULL;
	}
	if (mysql_stmt_prepare(st, sql, strlen(sql)) != 0) {
		char *msg = stmt_error(st, NULL);

		*errno_r = mysql_stmt_errno(st);
		*error_r = xasprintf("prepare: %s", msg);
		free(msg);
		mysql_stmt_close(st);
		return NULL;
	}
	*cached_r = !sql_cache_full(&ctx->cache);
	if (*cached_r)
		sql_cache_add(&ctx->cache, sql, st);
	return st;
}

static int
exec_once(struct my_ctx *ctx, const char *sql, const char *const *params,
          size_t nparams, struct sql_result **res_r, uint64_t *affected_r,
          bool *unique_r, unsigned *errno_r, char **error_r)
{
	MYSQL_BIND bind[SQL_PARAMS_MAX];
	unsigned long lens[SQL_PARAMS_MAX];
	my_bool nulls[SQL_PARAMS_MAX];
	MYSQL_RES *meta;
	MYSQL_STMT *st;
	bool cached;
	int rc = -1;

	if ((st = prepare(ctx, sql, &cached, errno_r, error_r)) == NULL)
		return -1;
	if (mysql_stmt_param_count(st) != nparams) {
		*error_r = xstrdup("wrong number of parameters");
		goto out;
	}
	memset(bind, 0, sizeof(bind));
	for (size_t i = 0; i < nparams; i++) {
		nulls[i] = params[i] == NULL;
		lens[i] = params[i] == NULL ? 0 : strlen(params[i]);
		bind[i].buffer_type = MYSQL_TYPE_STRING;
		bind[i].buffer = (void *)(uintptr_t)params[i];
		bind[i].buffer_length = lens[i];
		bind[i].length = &lens[i];
		bind[i].is_null = &nulls[i];
	}
	if ((nparams > 0 && mysql_stmt_bind_param(st, bind) != 0) ||
	    mysql_stmt_execute(st) != 0) {
		*errno_r = mysql_stmt_errno(st);
		*error_r = stmt_error(st, unique_r);
		goto out;
	}
	if ((meta = mysql_stmt_result_metadata(st)) != NULL) {
		rc = fetch_rows(st, meta, res_r, error_r);
		*errno_r = rc < 0 ? mysql_stmt_errno(st) : 0;
		mysql_free_result(meta);
	} else {
		my_ulonglong n = mysql_stmt_affected_rows(st);

		*affected_r = n == (my_ulonglong)-1 ? 0 : (uint64_t)n;
		rc = 0;
	}
out:
	mysql_stmt_free_result(st);
	if (!cached)
		mysql_stmt_close(st);
	return rc;
}

/* Open the connection again; every prepared statement died with it. */
static int
reconnect(struct my_ctx *ctx, char **error_r)
{
	sql_cache_clear(&ctx->cache, close_stmt, NULL);
	mysql_close(ctx->my);
	ctx->in_tx = false;
	ctx->my = connect_db(&ctx->target, error_r);
	return ctx->my == NULL ? -1 : 0;
}

static int
my_exec(void *vctx, const char *sql, const char *const *params, size_t nparams,
        struct sql_result **res_r, uint64_t *affected_r, bool *unique_r,
        char **error_r)
{
	struct my_ctx *ctx = vctx;
	unsigned err = 0;
	char *msg = NULL;

	if (ctx->my == NULL && reconnect(ctx, error_r) < 0)
		return -1;
	if (exec_once(ctx, sql, params, nparams, res_r, affected_r, unique_r,
	              &err, &msg) == 0)
		return 0;
	/* The server went away (restart, wait_timeout): outside a
	 * transaction nothing is lost by connecting again and retrying. */
	if (is_connection_error(err) && !ctx->in_tx) {
		free(msg);
		if (reconnect(ctx, error_r) < 0)
			return -1;
		return exec_once(ctx, sql, params, nparams, res_r, affected_r,
		                 unique_r, &err, error_r);
	}
	if (is_connection_error(err))
		ctx->in_tx = false; /* the server rolled it back */
	*error_r = msg;
	return -1;
}

static int
my_tx(void *vctx, enum sql_tx op, char **error_r)
{
	static const char *const sql[] = {
	    [SQL_TX_BEGIN] = "START TRANSACTION",
	    [SQL_TX_COMMIT] = "COMMIT",
	    [SQL_TX_ROLLBACK] = "ROLLBACK",
	};
	struct my_ctx *ctx = vctx;
	uint64_t affected;
	bool unique = false;
	int rc;

	if (op == SQL_TX_ROLLBACK && (!ctx->in_tx || ctx->my == NULL)) {
		ctx->in_tx = false;
		return 0;
	}
	rc = my_exec(ctx, sql[op], NULL, 0, NULL, &affected, &unique, error_r);
	ctx->in_tx = op == SQL_TX_BEGIN && rc == 0;
	return rc;
}

const struct sql_driver sql_driver_mysql = {
    .backend = SQL_MYSQL,
    .name = "mysql",
    .open = my_open,
    .close = my_close,
    .exec = my_exec,
    .tx = my_tx,
};
