/* The SQL layer: backend names, dispatch to the SQLite, PostgreSQL and
 * MariaDB/MySQL drivers, the per-connection statement cache and results.
 * SECURITY: values are bound by the drivers, never spliced into SQL; error
 * messages are scrubbed of every parameter value before they are returned,
 * since values include password hashes. */
#include "directory/sql.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/xmalloc.h"
#include "directory/sql_driver.h"

/* Parameter values shorter than this are not scrubbed from messages: they
 * are digits and flags, and "1" would eat every number in a message. */
#define SQL_SCRUB_MIN 4
#define SQL_ERROR_MAX 1024

struct sql_conn {
	const struct sql_driver *drv;
	void *ctx;
};

static const struct sql_driver *const drivers[] = {
    [SQL_SQLITE] = &sql_driver_sqlite,
    [SQL_PGSQL] = &sql_driver_pgsql,
    [SQL_MYSQL] = &sql_driver_mysql,
};

static void
set_error(char **error_r, char *msg)
{
	if (error_r != NULL)
		*error_r = msg;
	else
		free(msg);
}

const char *
sql_backend_name(enum sql_backend b)
{
	switch (b) {
	case SQL_SQLITE:
		return "sqlite";
	case SQL_PGSQL:
		return "pgsql";
	case SQL_MYSQL:
		return "mysql";
	}
	return "unknown";
}

int
sql_backend_parse(const char *name, enum sql_backend *b_r)
{
	static const enum sql_backend all[] = {SQL_SQLITE, SQL_PGSQL,
	                                       SQL_MYSQL};

	if (name == NULL)
		return -1;
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		if (strcmp(name, sql_backend_name(all[i])) == 0) {
			*b_r = all[i];
			return 0;
		}
	}
	return -1;
}

struct sql_conn *
sql_open(enum sql_backend backend, const char *target, char **error_r)
{
	const struct sql_driver *drv;
	struct sql_conn *conn;
	char *err = NULL;
	void *ctx;

	if ((unsigned)backend >= sizeof(drivers) / sizeof(drivers[0])) {
		set_error(error_r, xstrdup("unknown SQL backend"));
		return NULL;
	}
	drv = drivers[backend];
	if (target == NULL) {
		set_error(error_r, xasprintf("%s: no target", drv->name));
		return NULL;
	}
	if ((ctx = drv->open(target, &err)) == NULL) {
		set_error(error_r,
		          xasprintf("%s: %s", drv->name,
		                    err != NULL ? err : "open failed"));
		free(err);
		return NULL;
	}
	conn = xcalloc(1, sizeof(*conn));
	conn->drv = drv;
	conn->ctx = ctx;
	return conn;
}

void
sql_close(struct sql_conn **conn)
{
	if (conn == NULL || *conn == NULL)
		return;
	(*conn)->drv->close((*conn)->ctx);
	xfree(conn);
}

enum sql_backend
sql_backend(const struct sql_conn *conn)
{
	return conn->drv->backend;
}

/* Replace every occurrence of a (long enough) parameter value in msg by
 * "?", and cap the length. Returns a new string; msg is freed. */
static char *
scrub(char *msg, const char *const *params, size_t nparams)
{
	struct buf out;
	const char *p = msg;
	char *res;

	buf_init(&out, SQL_ERROR_MAX);
	while (*p != '\0') {
		size_t best = 0;

		for (size_t i = 0; i < nparams; i++) {
			size_t n;

			if (params[i] == NULL)
				continue;
			n = strlen(params[i]);
			if (n >= SQL_SCRUB_MIN && n > best &&
			    strncmp(p, params[i], n) == 0)
				best = n;
		}
		if (best > 0) {
			p += best;
			if (buf_append_byte(&out, '?') < 0)
				break;
		} else if (buf_append_byte(&out, (uint8_t)*p++) < 0) {
			break;
		}
	}
	/* Drop a trailing newline or space (libpq ends messages with one). */
	while (out.len > 0 &&
	       (out.data[out.len - 1] == '\n' || out.data[out.len - 1] == ' '))
		out.len--;
	if (out.len + 1 > out.max)
		out.len = out.max - 1;
	res = xstrndup(out.len > 0 ? (const char *)out.data : "", out.len);
	buf_free(&out);
	free(msg);
	return res;
}

int
sql_exec(struct sql_conn *conn, const char *sql, const char *const *params,
         size_t nparams, struct sql_result **res_r, uint64_t *affected_r,
         bool *unique_violation_r, char **error_r)
{
	struct sql_result *res = NULL;
	uint64_t affected = 0;
	bool unique = false;
	char *err = NULL;

	assert(conn != NULL && sql != NULL);
	if (res_r != NULL)
		*res_r = NULL;
	if (affected_r != NULL)
		*affected_r = 0;
	if (unique_violation_r != NULL)
		*unique_violation_r = false;
	if (nparams > SQL_PARAMS_MAX || (nparams > 0 && params == NULL)) {
		set_error(error_r, xstrdup("too many SQL parameters"));
		return -1;
	}
	if (conn->drv->exec(conn->ctx, sql, params, nparams,
	                    res_r != NULL ? &res : NULL, &affected, &unique,
	                    &err) < 0) {
		assert(res == NULL);
		if (unique_violation_r != NULL)
			*unique_violation_r = unique;
		if (err == NULL)
			err = xstrdup("statement failed");
		set_error(error_r, scrub(err, params, nparams));
		return -1;
	}
	if (res_r != NULL) {
		if (res == NULL)
			res = sql_result_new(0);
		*res_r = res;
	}
	if (affected_r != NULL)
		*affected_r = affected;
	return 0;
}

void
sql_result_free(struct sql_result **res)
{
	if (res == NULL || *res == NULL)
		return;
	for (size_t i = 0; i < (*res)->nrows * (*res)->ncols; i++)
		free((*res)->cells[i]);
	free((*res)->cells);
	xfree(res);
}

const char *
sql_cell(const struct sql_result *res, size_t row, size_t col)
{
	assert(res != NULL && row < res->nrows && col < res->ncols);
	if (res == NULL || row >= res->nrows || col >= res->ncols)
		return NULL;
	return res->cells[row * res->ncols + col];
}

static int
tx(struct sql_conn *conn, enum sql_tx op, char **error_r)
{
	char *err = NULL;

	if (conn->drv->tx(conn->ctx, op, &err) < 0) {
		set_error(error_r,
		          err != NULL ? err : xstrdup("transaction failed"));
		return -1;
	}
	return 0;
}

int
sql_begin(struct sql_conn *conn, char **error_r)
{
	return tx(conn, SQL_TX_BEGIN, error_r);
}

int
sql_commit(struct sql_conn *conn, char **error_r)
{
	return tx(conn, SQL_TX_COMMIT, error_r);
}

int
sql_rollback(struct sql_conn *conn)
{
	return tx(conn, SQL_TX_ROLLBACK, NULL);
}

/* ---- shared by the drivers ---- */

static uint32_t
hash_sql(const char *s)
{
	uint32_t h = 2166136261u; /* FNV-1a */

	for (; *s != '\0'; s++) {
		h ^= (uint8_t)*s;
		h *= 16777619u;
	}
	return h;
}

void *
sql_cache_find(const struct sql_cache *cache, const char *sql)
{
	uint32_t h = hash_sql(sql);

	for (size_t i = 0; i < cache->n; i++) {
		if (cache->entries[i].hash == h &&
		    strcmp(cache->entries[i].sql, sql) == 0)
			return cache->entries[i].stmt;
	}
	return NULL;
}

bool
sql_cache_full(const struct sql_cache *cache)
{
	return cache->n >= SQL_CACHE_MAX;
}

void
sql_cache_add(struct sql_cache *cache, const char *sql, void *stmt)
{
	struct sql_cache_entry *e;

	assert(cache->n < SQL_CACHE_MAX);
	e = &cache->entries[cache->n++];
	e->sql = xstrdup(sql);
	e->hash = hash_sql(sql);
	e->stmt = stmt;
}

void
sql_cache_clear(struct sql_cache *cache, void (*destroy)(void *stmt, void *arg),
                void *arg)
{
	for (size_t i = 0; i < cache->n; i++) {
		destroy(cache->entries[i].stmt, arg);
		free(cache->entries[i].sql);
	}
	cache->n = 0;
}

struct sql_result *
sql_result_new(size_t ncols)
{
	struct sql_result *res = xcalloc(1, sizeof(*res));

	res->ncols = ncols;
	return res;
}

/* Capacity is implicit: the next power of two at or above nrows, so the
 * array grows whenever nrows is zero or a power of two. */
char **
sql_result_add_row(struct sql_result *res)
{
	size_t n = res->nrows, cap;
	char **row;

	assert(res->ncols > 0);
	if (n == 0 || (n & (n - 1)) == 0) {
		if (n > SIZE_MAX / 2 / res->ncols)
			abort();
		cap = n == 0 ? 1 : n * 2;
		res->cells = xreallocarray(res->cells, cap * res->ncols,
		                           sizeof(*res->cells));
	}
	row = &res->cells[n * res->ncols];
	for (size_t i = 0; i < res->ncols; i++)
		row[i] = NULL;
	res->nrows++;
	return row;
}

char *
sql_strndup(const char *p, size_t len)
{
	char *s;

	if (len == SIZE_MAX)
		abort();
	s = xmalloc(len + 1);
	if (len > 0)
		memcpy(s, p, len);
	s[len] = '\0';
	return s;
}
