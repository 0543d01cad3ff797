/* The sending ledger (see sendlog.h): one row per message sent by an
 * authenticated user (for the last hour's window), one row of totals per
 * user and clock hour (for the usual rate), and each user's last
 * suspension. WAL with synchronous=NORMAL: a ledger, not acknowledged mail
 * (a power cut may forget the last few rows, never corrupt the file).
 * SECURITY: user names are bound parameters, bounded in length; every
 * statement is prepared once, with constant text. */
#include "queue/sendlog.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "core/xmalloc.h"

#define SENDLOG_BUSY_MS 5000
#define SENDLOG_SCHEMA_VERSION 1

static const char sendlog_schema[] =
    "CREATE TABLE IF NOT EXISTS sent ("
    " user TEXT NOT NULL, at_ms INTEGER NOT NULL,"
    " rcpts INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS sent_user_at ON sent (user, at_ms);"
    "CREATE INDEX IF NOT EXISTS sent_at ON sent (at_ms);"
    "CREATE TABLE IF NOT EXISTS hours ("
    " user TEXT NOT NULL, hour INTEGER NOT NULL,"
    " msgs INTEGER NOT NULL, rcpts INTEGER NOT NULL,"
    " flagged INTEGER NOT NULL DEFAULT 0,"
    " PRIMARY KEY (user, hour)) WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS hours_hour ON hours (hour);"
    "CREATE TABLE IF NOT EXISTS suspensions ("
    " user TEXT NOT NULL PRIMARY KEY, at_ms INTEGER NOT NULL)"
    " WITHOUT ROWID;"
    "PRAGMA user_version = 1;";

enum {
	ST_BEGIN,
	ST_COMMIT,
	ST_ROLLBACK,
	ST_INSERT,
	ST_HOUR_ADD,
	ST_WINDOW,
	ST_USUAL,
	ST_SUSPEND,
	ST_FLAG,
	ST_PRUNE_SENT,
	ST_PRUNE_HOURS,
	ST_PRUNE_SUSPENSIONS,
	ST_COUNT
};

static const char *const sendlog_sql[ST_COUNT] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_INSERT] = "INSERT INTO sent (user, at_ms, rcpts) VALUES (?1, ?2, ?3)",
    [ST_HOUR_ADD] = "INSERT INTO hours (user, hour, msgs, rcpts)"
                    " VALUES (?1, ?2, 1, ?3)"
                    " ON CONFLICT (user, hour) DO UPDATE"
                    " SET msgs = msgs + 1, rcpts = rcpts + excluded.rcpts",
    /* Reads the user's rows of the window only (the index). */
    [ST_WINDOW] = "SELECT COUNT(*), COALESCE(SUM(rcpts), 0) FROM sent"
                  " WHERE user = ?1 AND at_ms >= MAX(?2,"
                  " COALESCE((SELECT at_ms + 1 FROM suspensions"
                  " WHERE user = ?1), 0))",
    /* At most SENDLOG_USUAL_HOURS rows (the primary key's range). */
    [ST_USUAL] = "SELECT COALESCE(MAX(msgs), 0) FROM hours"
                 " WHERE user = ?1 AND hour >= ?2 AND hour < ?3"
                 " AND flagged = 0",
    [ST_SUSPEND] = "INSERT INTO suspensions (user, at_ms) VALUES (?1, ?2)"
                   " ON CONFLICT (user) DO UPDATE SET at_ms = excluded.at_ms",
    [ST_FLAG] = "UPDATE hours SET flagged = 1"
                " WHERE user = ?1 AND hour >= ?2 AND hour <= ?3",
    [ST_PRUNE_SENT] = "DELETE FROM sent WHERE rowid IN"
                      " (SELECT rowid FROM sent WHERE at_ms < ?1 LIMIT ?2)",
    [ST_PRUNE_HOURS] = "DELETE FROM hours WHERE (user, hour) IN"
                       " (SELECT user, hour FROM hours WHERE hour < ?1"
                       " LIMIT ?2)",
    [ST_PRUNE_SUSPENSIONS] = "DELETE FROM suspensions WHERE user IN"
                             " (SELECT user FROM suspensions"
                             " WHERE at_ms < ?1 LIMIT ?2)",
};

struct sendlog {
	sqlite3 *db;
	char *path;
	sqlite3_stmt *st[ST_COUNT];
};

static int
db_error(struct sendlog *log, const char *what, char **error_r)
{
	*error_r = xasprintf("%s: %s: %s", log->path, what,
	                     log->db != NULL ? sqlite3_errmsg(log->db)
	                                     : "cannot open");
	return -1;
}

/* Reset and clear a statement after use (bound text is SQLITE_STATIC). */
static void
st_done(sqlite3_stmt *st)
{
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
}

/* Run a statement that returns no rows. */
static int
st_exec(struct sendlog *log, int which, char **error_r)
{
	sqlite3_stmt *st = log->st[which];
	int rc = sqlite3_step(st);

	if (rc != SQLITE_DONE) {
		db_error(log, sendlog_sql[which], error_r);
		st_done(st);
		return -1;
	}
	st_done(st);
	return 0;
}

static void
rollback(struct sendlog *log)
{
	if (!sqlite3_get_autocommit(log->db)) {
		char *ignored = NULL;

		(void)st_exec(log, ST_ROLLBACK, &ignored);
		free(ignored);
	}
}

static int
check_user(const char *user, char **error_r)
{
	size_t len = user != NULL ? strlen(user) : 0;

	if (len == 0 || len > SENDLOG_USER_MAX) {
		*error_r = xstrdup(len == 0 ? "no user" : "user name too long");
		return -1;
	}
	return 0;
}

/* SQLite integers are signed: times past 2^63 ms are not ours to keep. */
static sqlite3_int64
i64(uint64_t v)
{
	return v > (uint64_t)INT64_MAX ? INT64_MAX : (sqlite3_int64)v;
}

static int
open_db(struct sendlog *log, char **error_r)
{
	sqlite3_stmt *st = NULL;
	int fd, version;

	/* 0600 before SQLite makes it (its -wal and -shm copy the mode). */
	fd = open(log->path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		*error_r = xasprintf("open %s: %s", log->path, strerror(errno));
		return -1;
	}
	close(fd);
	if (sqlite3_open_v2(log->path, &log->db,
	                    SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX |
	                        SQLITE_OPEN_NOFOLLOW,
	                    NULL) != SQLITE_OK)
		return db_error(log, "open", error_r);
	sqlite3_extended_result_codes(log->db, 1);
	sqlite3_busy_timeout(log->db, SENDLOG_BUSY_MS);
	sqlite3_db_config(log->db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
	sqlite3_db_config(log->db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, NULL);
	if (sqlite3_exec(log->db, "PRAGMA journal_mode=WAL", NULL, NULL,
	                 NULL) != SQLITE_OK ||
	    sqlite3_exec(log->db, "PRAGMA synchronous=NORMAL", NULL, NULL,
	                 NULL) != SQLITE_OK)
		return db_error(log, "pragma", error_r);
	if (sqlite3_prepare_v2(log->db, "PRAGMA user_version", -1, &st, NULL) !=
	        SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_ROW) {
		sqlite3_finalize(st);
		return db_error(log, "PRAGMA user_version", error_r);
	}
	version = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	if (version > SENDLOG_SCHEMA_VERSION) {
		*error_r =
		    xasprintf("%s: schema version %d is newer than this "
		              "program (%d)",
		              log->path, version, SENDLOG_SCHEMA_VERSION);
		return -1;
	}
	if (sqlite3_exec(log->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) !=
	        SQLITE_OK ||
	    sqlite3_exec(log->db, sendlog_schema, NULL, NULL, NULL) !=
	        SQLITE_OK ||
	    sqlite3_exec(log->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		db_error(log, "schema", error_r);
		if (!sqlite3_get_autocommit(log->db))
			sqlite3_exec(log->db, "ROLLBACK", NULL, NULL, NULL);
		return -1;
	}
	for (size_t i = 0; i < ST_COUNT; i++)
		if (sqlite3_prepare_v3(log->db, sendlog_sql[i], -1,
		                       SQLITE_PREPARE_PERSISTENT, &log->st[i],
		                       NULL) != SQLITE_OK)
			return db_error(log, sendlog_sql[i], error_r);
	return 0;
}

struct sendlog *
sendlog_open(const char *path, char **error_r)
{
	struct sendlog *log = xcalloc(1, sizeof(*log));

	log->path = xstrdup(path);
	if (open_db(log, error_r) < 0) {
		sendlog_close(&log);
		return NULL;
	}
	return log;
}

void
sendlog_close(struct sendlog **logp)
{
	struct sendlog *log = *logp;

	if (log == NULL)
		return;
	for (size_t i = 0; i < ST_COUNT; i++)
		sqlite3_finalize(log->st[i]);
	if (log->db != NULL)
		sqlite3_close(log->db);
	free(log->path);
	free(log);
	*logp = NULL;
}

int
sendlog_record(struct sendlog *log, const char *user, uint64_t now_ms,
               unsigned nrcpts, char **error_r)
{
	sqlite3_stmt *ins = log->st[ST_INSERT], *hour = log->st[ST_HOUR_ADD];

	if (check_user(user, error_r) < 0)
		return -1;
	if (nrcpts == 0)
		return 0;
	if (st_exec(log, ST_BEGIN, error_r) < 0)
		return -1;
	sqlite3_bind_text(ins, 1, user, -1, SQLITE_STATIC);
	sqlite3_bind_int64(ins, 2, i64(now_ms));
	sqlite3_bind_int64(ins, 3, nrcpts);
	sqlite3_bind_text(hour, 1, user, -1, SQLITE_STATIC);
	sqlite3_bind_int64(hour, 2, i64(now_ms / SENDLOG_HOUR_MS));
	sqlite3_bind_int64(hour, 3, nrcpts);
	if (st_exec(log, ST_INSERT, error_r) < 0 ||
	    st_exec(log, ST_HOUR_ADD, error_r) < 0 ||
	    st_exec(log, ST_COMMIT, error_r) < 0) {
		st_done(ins);
		st_done(hour);
		rollback(log);
		return -1;
	}
	return 0;
}

/* Step a statement that returns one row of two (or one) integers. */
static int
st_row(struct sendlog *log, int which, uint64_t *a_r, uint64_t *b_r,
       char **error_r)
{
	sqlite3_stmt *st = log->st[which];
	sqlite3_int64 a, b = 0;

	if (sqlite3_step(st) != SQLITE_ROW) {
		db_error(log, sendlog_sql[which], error_r);
		st_done(st);
		return -1;
	}
	a = sqlite3_column_int64(st, 0);
	if (b_r != NULL)
		b = sqlite3_column_int64(st, 1);
	st_done(st);
	*a_r = a > 0 ? (uint64_t)a : 0;
	if (b_r != NULL)
		*b_r = b > 0 ? (uint64_t)b : 0;
	return 0;
}

int
sendlog_window(struct sendlog *log, const char *user, uint64_t since_ms,
               uint64_t *msgs_r, uint64_t *rcpts_r, char **error_r)
{
	sqlite3_stmt *st = log->st[ST_WINDOW];

	*msgs_r = *rcpts_r = 0;
	if (check_user(user, error_r) < 0)
		return -1;
	sqlite3_bind_text(st, 1, user, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, i64(since_ms));
	return st_row(log, ST_WINDOW, msgs_r, rcpts_r, error_r);
}

int
sendlog_usual(struct sendlog *log, const char *user, uint64_t now_ms,
              uint64_t *hourly_max_r, char **error_r)
{
	sqlite3_stmt *st = log->st[ST_USUAL];
	uint64_t hour = now_ms / SENDLOG_HOUR_MS;

	*hourly_max_r = 0;
	if (check_user(user, error_r) < 0)
		return -1;
	sqlite3_bind_text(st, 1, user, -1, SQLITE_STATIC);
	sqlite3_bind_int64(
	    st, 2,
	    i64(hour > SENDLOG_USUAL_HOURS ? hour - SENDLOG_USUAL_HOURS : 0));
	sqlite3_bind_int64(st, 3, i64(hour));
	return st_row(log, ST_USUAL, hourly_max_r, NULL, error_r);
}

int
sendlog_suspended(struct sendlog *log, const char *user, uint64_t now_ms,
                  char **error_r)
{
	sqlite3_stmt *sus = log->st[ST_SUSPEND], *flag = log->st[ST_FLAG];
	uint64_t hour = now_ms / SENDLOG_HOUR_MS;

	if (check_user(user, error_r) < 0 ||
	    st_exec(log, ST_BEGIN, error_r) < 0)
		return -1;
	sqlite3_bind_text(sus, 1, user, -1, SQLITE_STATIC);
	sqlite3_bind_int64(sus, 2, i64(now_ms));
	sqlite3_bind_text(flag, 1, user, -1, SQLITE_STATIC);
	sqlite3_bind_int64(flag, 2, i64(hour > 0 ? hour - 1 : 0));
	sqlite3_bind_int64(flag, 3, i64(hour));
	if (st_exec(log, ST_SUSPEND, error_r) < 0 ||
	    st_exec(log, ST_FLAG, error_r) < 0 ||
	    st_exec(log, ST_COMMIT, error_r) < 0) {
		st_done(sus);
		st_done(flag);
		rollback(log);
		return -1;
	}
	return 0;
}

/* One bounded DELETE; the rows it removed. */
static int
prune_one(struct sendlog *log, int which, uint64_t before, size_t max,
          size_t *removed_r, char **error_r)
{
	sqlite3_stmt *st = log->st[which];
	int changed;

	sqlite3_bind_int64(st, 1, i64(before));
	sqlite3_bind_int64(st, 2, i64(max));
	if (st_exec(log, which, error_r) < 0)
		return -1;
	changed = sqlite3_changes(log->db);
	if (changed > 0 && (size_t)changed > *removed_r)
		*removed_r = (size_t)changed;
	return 0;
}

int
sendlog_prune(struct sendlog *log, uint64_t before_ms,
              uint64_t detail_before_ms, size_t max, size_t *removed_r,
              char **error_r)
{
	*removed_r = 0;
	if (max == 0)
		return 0;
	/* Hours that ended before before_ms: hour + 1 <= before / H. */
	return prune_one(log, ST_PRUNE_HOURS, before_ms / SENDLOG_HOUR_MS, max,
	                 removed_r, error_r) < 0 ||
	               prune_one(log, ST_PRUNE_SENT, detail_before_ms, max,
	                         removed_r, error_r) < 0 ||
	               prune_one(log, ST_PRUNE_SUSPENSIONS, before_ms, max,
	                         removed_r, error_r) < 0
	           ? -1
	           : 0;
}
