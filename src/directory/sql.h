/* A small SQL driver interface so the directory logic is written once and
 * runs on SQLite, PostgreSQL (libpq) and MariaDB/MySQL (libmariadb).
 * Statements are static SQL with "?" placeholders; every value goes as a
 * parameter of a prepared statement (each driver prepares a statement once
 * per connection and reuses it). Values travel as text or NULL; integers
 * are written in decimal. Never build SQL from values.
 * SECURITY: values are bound, never spliced; results are copied out with
 * their lengths. */
#ifndef TERN_DIRECTORY_SQL_H
#define TERN_DIRECTORY_SQL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum sql_backend { SQL_SQLITE, SQL_PGSQL, SQL_MYSQL };

struct sql_conn;

struct sql_result {
	size_t nrows;
	size_t ncols;
	char **cells; /* nrows * ncols, row-major; NULL is SQL NULL */
};

/* target: the SQLite file path; a libpq conninfo string ("host=/tmp
 * dbname=tern user=tern"); or for MySQL "host=H port=P socket=S user=U
 * password=W database=D" (each optional but database). */
struct sql_conn *sql_open(enum sql_backend backend, const char *target,
			  char **error_r);
void sql_close(struct sql_conn **conn);
enum sql_backend sql_backend(const struct sql_conn *conn);
const char *sql_backend_name(enum sql_backend b);
int sql_backend_parse(const char *name, enum sql_backend *b_r);

/* Run one statement. res_r may be NULL for statements without rows; on
 * success with rows, *res_r is malloc'd (sql_result_free). affected_r (may
 * be NULL) gets the number of rows changed. -1 with *error_r on failure;
 * *unique_violation_r (may be NULL) is set when the failure is a duplicate
 * key, so callers can say "exists" instead of a driver message. */
int sql_exec(struct sql_conn *conn, const char *sql,
	     const char *const *params, size_t nparams,
	     struct sql_result **res_r, uint64_t *affected_r,
	     bool *unique_violation_r, char **error_r);
void sql_result_free(struct sql_result **res);
const char *sql_cell(const struct sql_result *res, size_t row, size_t col);

/* Transactions: begin/commit/rollback, each 0 or -1. */
int sql_begin(struct sql_conn *conn, char **error_r);
int sql_commit(struct sql_conn *conn, char **error_r);
int sql_rollback(struct sql_conn *conn);

#endif
