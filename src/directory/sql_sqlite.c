/* SQLite driver for sql.h: one connection per sql_conn, WAL, foreign keys
 * on, a busy timeout, statements prepared once (sqlite3_prepare_v3,
 * persistent) and reset after each use. The database file is created 0600.
 * SECURITY: values are bound with sqlite3_bind_text; the connection runs in
 * defensive mode with untrusted schema functions off. */
#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/xmalloc.h"
#include "directory/sql_driver.h"

#define SQLITE_BUSY_MS 5000

struct sqlite_ctx {
	sqlite3 *db;
	struct sql_cache cache;
};

static void
finalize_stmt(void *stmt, void *arg)
{
	(void)arg;
	sqlite3_finalize(stmt);
}

static void
sqlite_close(void *vctx)
{
	struct sqlite_ctx *ctx = vctx;

	if (ctx == NULL)
		return;
	sql_cache_clear(&ctx->cache, finalize_stmt, NULL);
	/* close_v2: never fails with statements still open. */
	sqlite3_close_v2(ctx->db);
	free(ctx);
}

/* A pragma that returns one row; *value_r (may be NULL) gets its text. */
static int
pragma(sqlite3 *db, const char *sql, char **value_r, char **error_r)
{
	sqlite3_stmt *stmt;
	int rc;

	if (sqlite3_prepare_v2(db, sql, -1, &stmt, NULL) != SQLITE_OK) {
		*error_r = xasprintf("%s: %s", sql, sqlite3_errmsg(db));
		return -1;
	}
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		const unsigned char *v = sqlite3_column_text(stmt, 0);

		if (value_r != NULL && *value_r == NULL && v != NULL)
			*value_r = xstrdup((const char *)v);
	}
	if (rc != SQLITE_DONE) {
		*error_r = xasprintf("%s: %s", sql, sqlite3_errmsg(db));
		sqlite3_finalize(stmt);
		return -1;
	}
	sqlite3_finalize(stmt);
	return 0;
}

static void *
sqlite_open(const char *target, char **error_r)
{
	struct sqlite_ctx *ctx;
	char *mode = NULL, *fk = NULL;
	sqlite3 *db = NULL;
	bool memory;
	int rc;

	if (target[0] == '\0') {
		*error_r = xstrdup("empty database path");
		return NULL;
	}
	memory = strcmp(target, ":memory:") == 0;
	if (!memory) {
		/* Create the file 0600 ourselves: SQLite would use 0644, and
		 * its -wal and -shm files copy the database's mode. */
		int fd = open(target, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW,
		              0600);

		if (fd < 0) {
			*error_r =
			    xasprintf("open %s: %s", target, strerror(errno));
			return NULL;
		}
		close(fd);
	}
	rc = sqlite3_open_v2(target, &db,
	                     SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
	                         SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_NOFOLLOW,
	                     NULL);
	if (rc != SQLITE_OK) {
		*error_r = xasprintf("%s: %s", target,
		                     db != NULL ? sqlite3_errmsg(db)
		                                : sqlite3_errstr(rc));
		sqlite3_close_v2(db);
		return NULL;
	}
	sqlite3_extended_result_codes(db, 1);
	sqlite3_busy_timeout(db, SQLITE_BUSY_MS);
	sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
	sqlite3_db_config(db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, NULL);
	if (pragma(db, "PRAGMA journal_mode=WAL", &mode, error_r) < 0 ||
	    pragma(db, "PRAGMA synchronous=FULL", NULL, error_r) < 0 ||
	    pragma(db, "PRAGMA foreign_keys=ON", NULL, error_r) < 0 ||
	    pragma(db, "PRAGMA foreign_keys", &fk, error_r) < 0)
		goto fail;
	if (mode == NULL || (strcmp(mode, "wal") != 0 &&
	                     !(memory && strcmp(mode, "memory") == 0))) {
		*error_r = xasprintf("%s: cannot switch to WAL mode", target);
		goto fail;
	}
	if (fk == NULL || strcmp(fk, "1") != 0) {
		*error_r = xstrdup("foreign keys are not supported");
		goto fail;
	}
	free(mode);
	free(fk);
	ctx = xcalloc(1, sizeof(*ctx));
	ctx->db = db;
	return ctx;
fail:
	free(mode);
	free(fk);
	sqlite3_close_v2(db);
	return NULL;
}

static int
step_error(struct sqlite_ctx *ctx, bool *unique_r, char **error_r)
{
	int ext = sqlite3_extended_errcode(ctx->db);

	*unique_r = ext == SQLITE_CONSTRAINT_UNIQUE ||
	            ext == SQLITE_CONSTRAINT_PRIMARYKEY;
	*error_r = xstrdup(sqlite3_errmsg(ctx->db));
	return -1;
}

static int
sqlite_exec(void *vctx, const char *sql, const char *const *params,
            size_t nparams, struct sql_result **res_r, uint64_t *affected_r,
            bool *unique_r, char **error_r)
{
	struct sqlite_ctx *ctx = vctx;
	struct sql_result *res = NULL;
	sqlite3_stmt *stmt;
	bool cached = true;
	int ncols, rc;

	if ((stmt = sql_cache_find(&ctx->cache, sql)) == NULL) {
		const char *tail = NULL;

		cached = !sql_cache_full(&ctx->cache);
		rc = sqlite3_prepare_v3(ctx->db, sql, -1,
		                        cached ? SQLITE_PREPARE_PERSISTENT : 0,
		                        &stmt, &tail);
		if (rc != SQLITE_OK) {
			*error_r =
			    xasprintf("prepare: %s", sqlite3_errmsg(ctx->db));
			return -1;
		}
		if (stmt == NULL ||
		    (tail != NULL && tail[strspn(tail, " \t\n;")] != '\0')) {
			sqlite3_finalize(stmt);
			*error_r =
			    xstrdup("prepare: not exactly one statement");
			return -1;
		}
		if (cached)
			sql_cache_add(&ctx->cache, sql, stmt);
	}
	if ((size_t)sqlite3_bind_parameter_count(stmt) != nparams) {
		*error_r = xstrdup("wrong number of parameters");
		rc = -1;
		goto out;
	}
	for (size_t i = 0; i < nparams; i++) {
		rc = params[i] == NULL
		         ? sqlite3_bind_null(stmt, (int)i + 1)
		         : sqlite3_bind_text(stmt, (int)i + 1, params[i], -1,
		                             SQLITE_STATIC);
		if (rc != SQLITE_OK) {
			*error_r = xasprintf("bind: %s", sqlite3_errstr(rc));
			rc = -1;
			goto out;
		}
	}
	ncols = sqlite3_column_count(stmt);
	if (res_r != NULL && ncols > 0)
		res = sql_result_new((size_t)ncols);
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		char **row;

		if (res == NULL)
			continue;
		row = sql_result_add_row(res);
		for (int c = 0; c < ncols; c++) {
			const unsigned char *v;

			if (sqlite3_column_type(stmt, c) == SQLITE_NULL)
				continue;
			v = sqlite3_column_text(stmt, c);
			row[c] =
			    sql_strndup(v != NULL ? (const char *)v : "",
			                (size_t)sqlite3_column_bytes(stmt, c));
		}
	}
	if (rc != SQLITE_DONE) {
		sql_result_free(&res);
		rc = step_error(ctx, unique_r, error_r);
		goto out;
	}
	*affected_r = ncols == 0 ? (uint64_t)sqlite3_changes64(ctx->db) : 0;
	if (res_r != NULL)
		*res_r = res;
	rc = 0;
out:
	sqlite3_reset(stmt);
	sqlite3_clear_bindings(stmt);
	if (!cached)
		sqlite3_finalize(stmt);
	return rc;
}

static int
sqlite_tx(void *vctx, enum sql_tx op, char **error_r)
{
	struct sqlite_ctx *ctx = vctx;
	uint64_t affected;
	bool unique;

	switch (op) {
	case SQL_TX_BEGIN:
		/* IMMEDIATE: take the write lock now, so a writer never has to
		 * upgrade a read lock and fail with SQLITE_BUSY mid-way. */
		return sqlite_exec(ctx, "BEGIN IMMEDIATE", NULL, 0, NULL,
		                   &affected, &unique, error_r);
	case SQL_TX_COMMIT:
		return sqlite_exec(ctx, "COMMIT", NULL, 0, NULL, &affected,
		                   &unique, error_r);
	case SQL_TX_ROLLBACK:
		/* An error may already have rolled the transaction back. */
		if (sqlite3_get_autocommit(ctx->db))
			return 0;
		return sqlite_exec(ctx, "ROLLBACK", NULL, 0, NULL, &affected,
		                   &unique, error_r);
	}
	return -1;
}

const struct sql_driver sql_driver_sqlite = {
    .backend = SQL_SQLITE,
    .name = "sqlite",
    .open = sqlite_open,
    .close = sqlite_close,
    .exec = sqlite_exec,
    .tx = sqlite_tx,
};
