/* Internal to the directory (directory.c, directory_alias.c,
 * directory_schema.c): the handle, input checks, small SQL helpers and the
 * per-backend schema. Nothing outside src/directory includes this.
 * SECURITY: every key is checked here before it reaches SQL. */
#ifndef TERN_DIRECTORY_DIRECTORY_INT_H
#define TERN_DIRECTORY_DIRECTORY_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "directory/directory.h"
#include "directory/sql.h"

#define DIR_KEY_MAX 320     /* an address or "@domain", bytes */
#define DIR_LABEL_MAX 64    /* an app password label, bytes */
#define DIR_SECRET_MAX 4096 /* a password hash or SCRAM text, bytes */
#define DIR_INT_MAX 24      /* room for a decimal int64 and its NUL */

struct directory {
	struct sql_conn *sql;
};

/* Sets *error_r (when error_r is not NULL) and returns -1. */
int dir_fail(char **error_r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Input checks: 0, or -1 with a reason that never quotes the input. */
int dir_check_domain(const char *domain, char **error_r);
/* A normalized "local@domain" (address_key() form). */
int dir_check_address(const char *address, char **error_r);
/* An address or "@domain". */
int dir_check_source(const char *source, char **error_r);
/* Free text (labels, hashes): non-empty, at most max bytes, valid UTF-8,
 * no control characters. */
int dir_check_text(const char *s, size_t max, const char *what, char **error_r);
/* The domain of a checked address or source (after its last "@"). */
const char *dir_domain_of(const char *address);

/* sql_exec() on the directory's connection. */
int dir_exec(struct directory *dir, const char *sql, const char *const *params,
             size_t nparams, struct sql_result **res_r, uint64_t *affected_r,
             bool *unique_r, char **error_r);
/* An INSERT: 0, or -1 with *error_r set to exists_fmt… when the row's key
 * is taken, else to the driver's message. */
int dir_insert(struct directory *dir, const char *sql,
               const char *const *params, size_t nparams, char **error_r,
               const char *exists_fmt, ...)
    __attribute__((format(printf, 6, 7)));
/* 1 when the query returns a row, 0 when not, -1 on error. */
int dir_exists(struct directory *dir, const char *sql,
               const char *const *params, size_t nparams, char **error_r);
int dir_begin(struct directory *dir, char **error_r);
int dir_commit(struct directory *dir, char **error_r);
/* Roll back and return -1 (for "goto fail" paths). */
int dir_rollback(struct directory *dir);

const char *dir_i64(char buf[DIR_INT_MAX], int64_t v);
int dir_parse_i64(const char *s, int64_t *v_r);

/* A statement that serializes migrations (run first in the migration's
 * transaction), or NULL when the backend needs none. */
const char *directory_schema_lock(enum sql_backend backend);
/* The statements that create schema_version, and those that take the
 * schema from version - 1 to version (NULL-terminated; NULL when there is
 * no such version). */
const char *directory_schema_bootstrap(enum sql_backend backend);
const char *const *directory_schema(enum sql_backend backend, int version);
/* Every table, children first (for tests and tools that start over). */
extern const char *const directory_schema_tables[];

#endif
