/* Internal to the SQL layer: the driver table that sql.c dispatches to, and
 * the helpers every driver shares (statement cache keyed by SQL text, result
 * building). Nothing outside src/directory/sql*.c includes this.
 * SECURITY: drivers bind every value; their error messages must not carry
 * parameter values (sql.c scrubs them again before returning). */
#ifndef TERN_DIRECTORY_SQL_DRIVER_H
#define TERN_DIRECTORY_SQL_DRIVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "directory/sql.h"

/* Most parameters one statement may take. */
#define SQL_PARAMS_MAX 64
/* Prepared statements kept per connection; our SQL is static, so this is
 * far above what the directory uses. Past it, statements are prepared for
 * one use and released. */
#define SQL_CACHE_MAX 128

enum sql_tx { SQL_TX_BEGIN, SQL_TX_COMMIT, SQL_TX_ROLLBACK };

struct sql_driver {
	enum sql_backend backend;
	const char *name;
	/* A driver context, or NULL with *error_r. */
	void *(*open)(const char *target, char **error_r);
	void (*close)(void *ctx);
	/* As sql_exec(); res_r NULL means rows are read and dropped. The
	 * outputs are set only on success (unique_r on failure). */
	int (*exec)(void *ctx, const char *sql, const char *const *params,
	            size_t nparams, struct sql_result **res_r,
	            uint64_t *affected_r, bool *unique_r, char **error_r);
	int (*tx)(void *ctx, enum sql_tx op, char **error_r);
};

extern const struct sql_driver sql_driver_sqlite;
extern const struct sql_driver sql_driver_pgsql;
extern const struct sql_driver sql_driver_mysql;

/* Statement cache: SQL text → driver statement. */
struct sql_cache_entry {
	char *sql;
	uint32_t hash;
	void *stmt;
};

struct sql_cache {
	struct sql_cache_entry entries[SQL_CACHE_MAX];
	size_t n;
};

void *sql_cache_find(const struct sql_cache *cache, const char *sql);
bool sql_cache_full(const struct sql_cache *cache);
/* Takes stmt; the cache must not be full. */
void sql_cache_add(struct sql_cache *cache, const char *sql, void *stmt);
/* Release every statement through destroy and empty the cache. */
void sql_cache_clear(struct sql_cache *cache,
                     void (*destroy)(void *stmt, void *arg), void *arg);

/* Results: an empty result of ncols columns, then one row at a time (the
 * returned ncols cells are NULL until set). */
struct sql_result *sql_result_new(size_t ncols);
char **sql_result_add_row(struct sql_result *res);
/* A malloc'd copy of len bytes plus a NUL. */
char *sql_strndup(const char *p, size_t len);

#endif
