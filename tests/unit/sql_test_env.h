/* Shared by the SQL-layer and directory conformance tests (test_sql.c,
 * test_directory.c): the backend under test, from the environment, a fresh
 * database for each test, and error-checking macros.
 *   TERN_TEST_SQL_BACKEND  sqlite (default) | pgsql | mysql
 *   TERN_TEST_SQL_TARGET   the sql_open() target (default: a new SQLite file
 *                          in a mkdtemp directory); its directory tables are
 *                          DROPPED before each test
 *   TERN_TEST_SQL_BIG=1    the lookup timing runs over 100,000 users
 * tests/directory/run-backends starts PostgreSQL and MariaDB and runs both.
 * Include after cmocka.h, in one file per program. */
#ifndef TERN_TESTS_SQL_TEST_ENV_H
#define TERN_TESTS_SQL_TEST_ENV_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "directory/directory.h"
#include "directory/sql.h"

#define TEST_UNUSED __attribute__((unused))

static enum sql_backend backend = SQL_SQLITE;
static const char *target;
static char tmpdir[64];
static char sqlite_path[128];
static bool big TEST_UNUSED;

/* The last error from a call checked with OK/EXPECT/FAILS. */
static char *last_err;
#define E (&last_err)

TEST_UNUSED static void
check_rc(int rc, int want, const char *what)
{
	if (rc != want)
		fail_msg("%s returned %d (wanted %d): %s", what, rc, want,
		         last_err != NULL ? last_err : "(no message)");
	free(last_err);
	last_err = NULL;
}

TEST_UNUSED static void
check_fail(int rc, const char *substr, const char *what)
{
	if (rc != -1)
		fail_msg("%s returned %d, wanted an error", what, rc);
	if (last_err == NULL)
		fail_msg("%s: no error message", what);
	if (substr != NULL && strstr(last_err, substr) == NULL)
		fail_msg("%s: error \"%s\" lacks \"%s\"", what, last_err,
		         substr);
	free(last_err);
	last_err = NULL;
}

#define OK(call) check_rc((call), 0, #call)
#define EXPECT(call, want) check_rc((call), (want), #call)
#define FAILS(call, substr) check_fail((call), (substr), #call)

static const char *const tables[] = {
    "sender_grants", "app_passwords", "aliases",
    "users",         "domains",       "schema_version",
};

TEST_UNUSED static struct sql_conn *
raw_open(void)
{
	struct sql_conn *c = sql_open(backend, target, E);

	if (c == NULL)
		fail_msg("sql_open(%s): %s", sql_backend_name(backend),
		         last_err);
	return c;
}

TEST_UNUSED static void
raw_exec(struct sql_conn *c, const char *sql, const char *const *params,
         size_t n)
{
	OK(sql_exec(c, sql, params, n, NULL, NULL, NULL, E));
}

TEST_UNUSED static int
setup(void **state)
{
	struct sql_conn *c = raw_open();
	struct directory *dir;

	for (size_t i = 0; i < sizeof(tables) / sizeof(tables[0]); i++) {
		char sql[64];

		snprintf(sql, sizeof(sql), "DROP TABLE IF EXISTS %s",
		         tables[i]);
		raw_exec(c, sql, NULL, 0);
	}
	sql_close(&c);
	dir = directory_open(backend, target, true, E);
	if (dir == NULL)
		fail_msg("directory_open: %s", last_err);
	*state = dir;
	return 0;
}

TEST_UNUSED static int
teardown(void **state)
{
	struct directory *dir = *state;

	directory_close(&dir);
	*state = NULL;
	return 0;
}

TEST_UNUSED static int
group_setup(void **state)
{
	const char *b = getenv("TERN_TEST_SQL_BACKEND");
	const char *t = getenv("TERN_TEST_SQL_TARGET");
	const char *g = getenv("TERN_TEST_SQL_BIG");

	(void)state;
	if (b != NULL && b[0] != '\0' && sql_backend_parse(b, &backend) < 0) {
		fprintf(stderr, "unknown TERN_TEST_SQL_BACKEND %s\n", b);
		return -1;
	}
	big = g != NULL && strcmp(g, "1") == 0;
	if (t != NULL && t[0] != '\0') {
		target = t;
		return 0;
	}
	if (backend != SQL_SQLITE) {
		fprintf(stderr, "TERN_TEST_SQL_TARGET is required for %s\n",
		        sql_backend_name(backend));
		return -1;
	}
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/tern-test-directory.XXXXXX");
	if (mkdtemp(tmpdir) == NULL)
		return -1;
	snprintf(sqlite_path, sizeof(sqlite_path), "%s/directory.db", tmpdir);
	target = sqlite_path;
	return 0;
}

TEST_UNUSED static int
group_teardown(void **state)
{
	static const char *const suffixes[] = {"", "-wal", "-shm", "-journal"};

	(void)state;
	free(last_err);
	last_err = NULL;
	if (tmpdir[0] == '\0')
		return 0;
	for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
		char path[160];

		snprintf(path, sizeof(path), "%s%s", sqlite_path, suffixes[i]);
		unlink(path);
	}
	rmdir(tmpdir);
	return 0;
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

#endif
