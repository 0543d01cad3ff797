/* The spool (spool.h): message files DIR/<id> (flat) and their envelopes and
 * per-recipient state in DIR/queue.db (SQLite: WAL, synchronous=FULL).
 * Durability: file fsync, directory fsync, then one transaction and an fsync
 * of the WAL (spool_commit_*: the fsyncs may run on another thread); a
 * message is never in the database without its file, and a file without a
 * row is removed at the next spool_open(). A recipient's outcome commits
 * without waiting for the disk (the next accepted message's commit syncs it); a
 * message whose last outcome was such is unlinked only after a commit that
 * synced. SECURITY: ids are made here from getrandom(2) and checked (16
 * lowercase hex) wherever a caller passes one back, so a path is never built
 * from peer text; files are opened relative to the directory fd with
 * O_NOFOLLOW; envelope strings are bound parameters of prepared statements. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/durable.h"
#include "core/log.h"
#include "core/xmalloc.h"
#include "queue/spool.h"

#define SPOOL_DB_NAME "queue.db"
#define SPOOL_BUSY_MS 5000
#define SPOOL_SCHEMA_VERSION 6
/* EEXIST retries in spool_create(): with 64 random bits, more than one
 * means the random source is broken. */
#define SPOOL_CREATE_TRIES 16

/* Stored as integers; the CHECK in the schema keeps them in range. */
#define STATE_PENDING 0
#define STATE_DELIVERED 1
#define STATE_FAILED 2

/* DSN NOTIFY bits as smtp/server.h has them (SMTP_NOTIFY_*); stored as
 * given, 0 when RCPT had no NOTIFY. */
#define NOTIFY_NEVER 0x1
#define NOTIFY_SUCCESS 0x2
#define NOTIFY_FAILURE 0x4
#define NOTIFY_DELAY 0x8

static const char spool_schema[] =
    "CREATE TABLE IF NOT EXISTS messages ("
    " id TEXT PRIMARY KEY NOT NULL,"
    " mail_from TEXT NOT NULL,"
    " helo TEXT,"
    " client_ip TEXT,"
    " auth_user TEXT,"
    " ret TEXT,"
    " envid TEXT,"
    " smtputf8 INTEGER NOT NULL,"
    " size INTEGER NOT NULL,"
    " created_ms INTEGER NOT NULL,"
    " headers TEXT,"
    " flags INTEGER NOT NULL DEFAULT 0,"
    " held INTEGER NOT NULL DEFAULT 0,"
    " fwd_headers TEXT);"
    "CREATE TABLE IF NOT EXISTS rcpts ("
    " id TEXT NOT NULL REFERENCES messages(id) ON DELETE CASCADE,"
    " address TEXT NOT NULL,"
    " orcpt TEXT,"
    " notify INTEGER NOT NULL,"
    " local INTEGER NOT NULL,"
    " state INTEGER NOT NULL CHECK (state IN (0, 1, 2)),"
    " attempts INTEGER NOT NULL,"
    " next_try_ms INTEGER NOT NULL,"
    " diagnostic TEXT,"
    " dsn INTEGER NOT NULL DEFAULT 0,"
    " status TEXT,"
    " remote_mta TEXT,"
    " last_try_ms INTEGER NOT NULL DEFAULT 0,"
    " relayed INTEGER NOT NULL DEFAULT 0,"
    " delayed INTEGER NOT NULL DEFAULT 0,"
    " sender TEXT,"
    " forwarded INTEGER NOT NULL DEFAULT 0,"
    " PRIMARY KEY (id, address));";

/* After the tables exist with every column (created, or altered from an
 * older version). rcpts_dsn holds only the rows with a DSN due. */
static const char spool_indexes[] =
    "CREATE INDEX IF NOT EXISTS rcpts_due ON rcpts (state, next_try_ms);"
    "CREATE INDEX IF NOT EXISTS rcpts_dsn ON rcpts (id) WHERE dsn = 1;"
    /* queue's own messages waiting for their signatures: few, looked
     * for at every run (the WHERE must read as in ST_SIGN_DUE). */
    "CREATE INDEX IF NOT EXISTS messages_sign ON messages (created_ms)"
    " WHERE (flags & 2) != 0;";

/* From version 3 to 4: holds, DSNs due and what a DSN reports. */
static const char spool_migrate_4[] =
    "ALTER TABLE messages ADD COLUMN held INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE rcpts ADD COLUMN dsn INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE rcpts ADD COLUMN status TEXT;"
    "ALTER TABLE rcpts ADD COLUMN remote_mta TEXT;"
    "ALTER TABLE rcpts ADD COLUMN last_try_ms INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE rcpts ADD COLUMN relayed INTEGER NOT NULL DEFAULT 0;";

/* From version 4 to 5: a delay notice was sent for the recipient. */
static const char spool_migrate_5[] =
    "ALTER TABLE rcpts ADD COLUMN delayed INTEGER NOT NULL DEFAULT 0;";

/* From version 5 to 6: forwarding (SRS sender, ARC set for the copies
 * that leave for an alias's external destination). */
static const char spool_migrate_6[] =
    "ALTER TABLE messages ADD COLUMN fwd_headers TEXT;"
    "ALTER TABLE rcpts ADD COLUMN sender TEXT;"
    "ALTER TABLE rcpts ADD COLUMN forwarded INTEGER NOT NULL DEFAULT 0;";

enum spool_stmt {
	ST_BEGIN,
	ST_BEGIN_READ,
	ST_COMMIT,
	ST_ROLLBACK,
	ST_MSG_INSERT,
	ST_RCPT_INSERT,
	ST_MSG_EXISTS,
	ST_MSG_GET,
	ST_RCPT_LIST,
	ST_DUE,
	ST_RCPT_GET,
	ST_RCPT_UPDATE,
	ST_LIVE_OF,
	ST_MSG_DELETE,
	ST_COUNT_MSGS,
	ST_COUNT_PENDING,
	ST_ALL_IDS,
	ST_DELETE_DONE,
	ST_DSN_DUE,
	ST_DSN_RCPTS,
	ST_DSN_CLEAR,
	ST_INFO_LIST,
	ST_INFO_GET,
	ST_INFO_RCPTS,
	ST_HOLD,
	ST_HELD,
	ST_RETRY_NOW,
	ST_HOLD_USER,
	ST_SIGN_DUE,
	ST_SIGN_DONE,
	ST_SYNC_NORMAL,
	ST_SYNC_FULL,
	ST_SAVEPOINT,
	ST_RELEASE,
	ST_ROLLBACK_TO,
	ST_COUNT
};

static const char *const spool_sql[ST_COUNT] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    /* A consistent snapshot for the operator's view. */
    [ST_BEGIN_READ] = "BEGIN DEFERRED",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_MSG_INSERT] = "INSERT INTO messages (id, mail_from, helo, client_ip,"
                      " auth_user, ret, envid, smtputf8, size, created_ms,"
                      " headers, flags, fwd_headers)"
                      " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11,"
                      " ?12, ?13)",
    /* A repeated RCPT TO is delivered once: the first one wins. */
    [ST_RCPT_INSERT] =
        "INSERT INTO rcpts (id, address, orcpt, notify, local, state,"
        " attempts, next_try_ms, diagnostic, sender, forwarded)"
        " VALUES (?1, ?2, ?3, ?4, ?5, 0, 0, ?6, NULL, ?7, ?8)"
        " ON CONFLICT (id, address) DO NOTHING",
    [ST_MSG_EXISTS] = "SELECT 1 FROM messages WHERE id = ?1",
    [ST_MSG_GET] = "SELECT mail_from, helo, client_ip, auth_user, ret,"
                   " envid, smtputf8, size, headers, flags, fwd_headers"
                   " FROM messages"
                   " WHERE id = ?1",
    [ST_RCPT_LIST] = "SELECT address, orcpt, notify, local, sender,"
                     " forwarded FROM rcpts"
                     " WHERE id = ?1 ORDER BY rowid",
    [ST_DUE] = "SELECT r.id, r.address, r.local, r.attempts, m.created_ms,"
               " r.notify, r.orcpt, r.sender, r.forwarded"
               " FROM rcpts r JOIN messages m ON m.id = r.id"
               " WHERE r.state = 0 AND r.next_try_ms <= ?1 AND m.held = 0"
               " AND (m.flags & 2) = 0" /* SPOOL_FLAG_SIGN: not yet */
               " ORDER BY r.next_try_ms, r.rowid LIMIT ?2",
    [ST_RCPT_GET] = "SELECT r.state, r.notify, m.mail_from, r.delayed"
                    " FROM rcpts r JOIN messages m ON m.id = r.id"
                    " WHERE r.id = ?1 AND r.address = ?2",
    [ST_RCPT_UPDATE] = "UPDATE rcpts SET state = ?3,"
                       " attempts = attempts + 1, diagnostic = ?4,"
                       " next_try_ms = ?5, last_try_ms = ?6, status = ?7,"
                       " remote_mta = ?8, relayed = ?9, dsn = ?10,"
                       " delayed = max(delayed, ?10 * (?3 = 0))"
                       " WHERE id = ?1 AND address = ?2 AND state = 0",
    /* What keeps a message: a recipient pending or a DSN due. */
    [ST_LIVE_OF] = "SELECT count(*) FROM rcpts"
                   " WHERE id = ?1 AND (state = 0 OR dsn = 1)",
    [ST_MSG_DELETE] = "DELETE FROM messages WHERE id = ?1",
    [ST_COUNT_MSGS] = "SELECT count(*) FROM messages",
    [ST_COUNT_PENDING] = "SELECT count(*) FROM rcpts WHERE state = 0",
    [ST_ALL_IDS] = "SELECT id FROM messages",
    [ST_DELETE_DONE] = "DELETE FROM messages WHERE NOT EXISTS"
                       " (SELECT 1 FROM rcpts r WHERE r.id = messages.id"
                       " AND (r.state = 0 OR r.dsn = 1))",
    [ST_DSN_DUE] = "SELECT m.id FROM messages m WHERE m.held = 0"
                   " AND m.id IN (SELECT id FROM rcpts WHERE dsn = 1)"
                   " ORDER BY m.created_ms, m.rowid LIMIT ?1",
    [ST_DSN_RCPTS] = "SELECT address, orcpt, state, relayed, status,"
                     " diagnostic, remote_mta, last_try_ms FROM rcpts"
                     " WHERE id = ?1 AND dsn = 1 ORDER BY rowid",
    [ST_DSN_CLEAR] = "UPDATE rcpts SET dsn = 0 WHERE id = ?1 AND dsn = 1",
    [ST_INFO_LIST] = "SELECT id, mail_from, auth_user, client_ip, size,"
                     " created_ms, held, flags FROM messages"
                     " ORDER BY created_ms, rowid",
    [ST_INFO_GET] = "SELECT id, mail_from, auth_user, client_ip, size,"
                    " created_ms, held, flags FROM messages WHERE id = ?1",
    [ST_INFO_RCPTS] = "SELECT address, orcpt, local, state, attempts,"
                      " next_try_ms, last_try_ms, diagnostic, remote_mta,"
                      " sender, forwarded"
                      " FROM rcpts WHERE id = ?1 ORDER BY rowid",
    [ST_HOLD] = "UPDATE messages SET held = ?2 WHERE id = ?1",
    [ST_HELD] = "SELECT held FROM messages WHERE id = ?1",
    [ST_RETRY_NOW] = "UPDATE rcpts SET next_try_ms = 0"
                     " WHERE id = ?1 AND state = 0",
    [ST_HOLD_USER] = "UPDATE messages SET held = ?2"
                     " WHERE auth_user = ?1 AND held != ?2",
    [ST_SIGN_DUE] = "SELECT id FROM messages WHERE (flags & 2) != 0"
                    " ORDER BY created_ms, rowid LIMIT ?1",
    /* The signatures go on top of the other fields. */
    [ST_SIGN_DONE] = "UPDATE messages SET flags = flags & ~2,"
                     " headers = nullif(?2 || coalesce(headers, ''), '')"
                     " WHERE id = ?1 AND (flags & 2) != 0",
    [ST_SYNC_NORMAL] = "PRAGMA synchronous=NORMAL",
    [ST_SYNC_FULL] = "PRAGMA synchronous=FULL",
    [ST_SAVEPOINT] = "SAVEPOINT outcome",
    [ST_RELEASE] = "RELEASE outcome",
    [ST_ROLLBACK_TO] = "ROLLBACK TO outcome",
};

/* Files of finished messages are kept for new ones, emptied and renamed
 * "pool.ID", rather than unlinked: on ext4 without a journal, making a
 * file walks past every inode freed in the last minutes, one by one, and
 * with a file made and removed per message that walk was a third of the
 * queue's and the store's CPU at 500 messages/s. Only the queue's own
 * open keeps a pool; it takes over the pool files it finds at start. */
#define SPOOL_POOL_MAX 256
#define SPOOL_POOL_PREFIX "pool."
#define SPOOL_POOL_NAME (sizeof(SPOOL_POOL_PREFIX) - 1 + SPOOL_ID_SIZE)

struct spool {
	char *dir;
	int dirfd;
	sqlite3 *db;
	sqlite3_stmt *st[ST_COUNT];
	bool lazy; /* synchronous=NORMAL for this transaction */
	/* Files to unlink after the next commit that syncs. */
	char (*later)[SPOOL_ID_SIZE];
	size_t nlater;
	size_t later_base; /* entries ever flushed: later[0]'s number */
	bool owner;        /* the queue's open: keeps a pool */
	char (*pool)[SPOOL_POOL_NAME];
	size_t npool;
	/* spool_defer_removals(): files whose removal is due wait here for
	 * spool_recycle_take(); pool_pending is the room in the pool that
	 * recycles under way may fill. */
	bool defer_removals;
	char (*removing)[SPOOL_ID_SIZE];
	size_t nremoving;
	size_t pool_pending;
};

/* Files on their way out, off the owner's thread (spool.h). */
struct spool_recycle {
	int dirfd;
	size_t n;
	size_t room; /* the first room files may go to the pool */
	char (*ids)[SPOOL_ID_SIZE];
	bool *pooled;
	int *errs; /* errno of a failed unlink */
};

static void later_flush(struct spool *sp);
static void remove_file(struct spool *sp, const char *id);
static void later_flush_to(struct spool *sp, size_t mark);
static int wal_sync(struct spool *sp);
static int lazy_end(struct spool *sp, char **error_r);

static uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* SQLite integers are signed; clamp rather than wrap. */
static sqlite3_int64
to_i64(uint64_t v)
{
	return v > (uint64_t)INT64_MAX ? INT64_MAX : (sqlite3_int64)v;
}

static bool
id_valid(const char *id)
{
	size_t i;

	if (id == NULL)
		return false;
	for (i = 0; i < SPOOL_ID_SIZE - 1; i++) {
		char c = id[i];

		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			return false;
	}
	return id[i] == '\0';
}

static int
check_id(const char *id, char **error_r)
{
	if (id_valid(id))
		return 0;
	*error_r = xstrdup("invalid spool id");
	return -1;
}

/* Reset a statement after use so that it holds no locks or bindings. */
static void
st_done(sqlite3_stmt *st)
{
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
}

static int
db_error(struct spool *sp, const char *what, char **error_r)
{
	*error_r = xasprintf("%s/%s: %s: %s", sp->dir, SPOOL_DB_NAME, what,
	                     sqlite3_errmsg(sp->db));
	return -1;
}

/* Step a statement that returns no row. */
static int
st_exec(struct spool *sp, enum spool_stmt which, char **error_r)
{
	sqlite3_stmt *st = sp->st[which];
	int rc = sqlite3_step(st);

	if (rc != SQLITE_DONE) {
		db_error(sp, spool_sql[which], error_r);
		st_done(st);
		return -1;
	}
	st_done(st);
	return 0;
}

/* Step a statement that returns one integer (count(*), SELECT 1);
 * *v_r is 0 when there is no row. */
static int
st_int(struct spool *sp, enum spool_stmt which, int64_t *v_r, char **error_r)
{
	sqlite3_stmt *st = sp->st[which];
	int rc = sqlite3_step(st);

	*v_r = 0;
	if (rc == SQLITE_ROW) {
		*v_r = sqlite3_column_int64(st, 0);
		rc = sqlite3_step(st);
	}
	if (rc != SQLITE_DONE) {
		db_error(sp, spool_sql[which], error_r);
		st_done(st);
		return -1;
	}
	st_done(st);
	return 0;
}

static int
bind_text(sqlite3_stmt *st, int i, const char *s)
{
	if (s == NULL)
		return sqlite3_bind_null(st, i);
	return sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
}

static void
rollback(struct spool *sp)
{
	char *error = NULL;

	if (sqlite3_get_autocommit(sp->db))
		return; /* SQLite already rolled back */
	if (st_exec(sp, ST_ROLLBACK, &error) < 0) {
		log_error(NULL, "event=spool_rollback_failed error=%s", error);
		free(error);
	}
}

static int
commit(struct spool *sp, char **error_r)
{
	if (st_exec(sp, ST_COMMIT, error_r) < 0) {
		rollback(sp);
		return -1;
	}
	/* A synced commit also syncs the WAL frames of the lazy ones. */
	if (!sp->lazy)
		later_flush(sp);
	return 0;
}

static int
message_exists(struct spool *sp, const char *id, bool *exists_r, char **error_r)
{
	int64_t v;
	int ret;

	sqlite3_bind_text(sp->st[ST_MSG_EXISTS], 1, id, -1, SQLITE_STATIC);
	ret = st_int(sp, ST_MSG_EXISTS, &v, error_r);
	*exists_r = v != 0;
	return ret;
}

static int
fsync_dir(struct spool *sp, char **error_r)
{
	if (fsync(sp->dirfd) < 0) {
		*error_r = xasprintf("fsync %s: %s", sp->dir, strerror(errno));
		return -1;
	}
	return 0;
}

/* A copy of a text column; NULL stays NULL. -1 when SQLite is out of
 * memory (a NULL pointer for a non-NULL value). */
static int
col_strdup(sqlite3_stmt *st, int i, char **s_r)
{
	const unsigned char *v;

	*s_r = NULL;
	if (sqlite3_column_type(st, i) == SQLITE_NULL)
		return 0;
	if ((v = sqlite3_column_text(st, i)) == NULL)
		return -1;
	*s_r = xstrdup((const char *)v);
	return 0;
}

/* Recovery, step 1: messages with nothing pending and no DSN due (none
 * are left so by spool_rcpt_update() and spool_dsn_done(), which delete in
 * the same transaction; this only guards against a database edited by
 * hand) lose their rows; their files then go in step 3. */
static int
recover_done_messages(struct spool *sp, char **error_r)
{
	if (st_exec(sp, ST_DELETE_DONE, error_r) < 0)
		return -1;
	if (sqlite3_changes(sp->db) > 0)
		log_warn(NULL, "event=spool_recover_done messages=%d",
		         sqlite3_changes(sp->db));
	return 0;
}

/* Recovery, step 2: a row whose file is gone. spool_commit() fsyncs the
 * file and the directory before the row exists, and a file is unlinked only
 * after its row is deleted, so this is a bug or someone deleting spool
 * files by hand. There is nothing left to deliver and no content to bounce,
 * and keeping the rows would make the scheduler fail on them forever: log
 * each one at error level, with its recipients, and delete the rows. */
static int
recover_missing_files(struct spool *sp, char **error_r)
{
	sqlite3_stmt *st = sp->st[ST_ALL_IDS];
	char(*ids)[SPOOL_ID_SIZE] = NULL;
	size_t n = 0, i;
	int rc;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *id = (const char *)sqlite3_column_text(st, 0);
		struct stat sb;

		if (!id_valid(id)) {
			log_error(NULL, "event=spool_bad_row id=%s",
			          id != NULL ? id : "");
			continue;
		}
		if (fstatat(sp->dirfd, id, &sb, AT_SYMLINK_NOFOLLOW) == 0) {
			if (!S_ISREG(sb.st_mode))
				log_error(id, "event=spool_file_not_regular");
			continue;
		}
		if (errno != ENOENT) {
			*error_r = xasprintf("stat %s/%s: %s", sp->dir, id,
			                     strerror(errno));
			st_done(st);
			free(ids);
			return -1;
		}
		ids = xreallocarray(ids, n + 1, sizeof(*ids));
		memcpy(ids[n++], id, SPOOL_ID_SIZE);
	}
	if (rc != SQLITE_DONE) {
		db_error(sp, spool_sql[ST_ALL_IDS], error_r);
		st_done(st);
		free(ids);
		return -1;
	}
	st_done(st);

	for (i = 0; i < n; i++) {
		struct spool_envelope env;
		char *error = NULL;
		size_t r;

		if (spool_envelope(sp, ids[i], &env, &error) == 0) {
			for (r = 0; r < env.nrcpts; r++)
				log_error(ids[i],
				          "event=spool_file_missing "
				          "from=%s rcpt=%s",
				          env.mail_from, env.rcpts[r].address);
			spool_envelope_clear(&env);
		} else {
			log_error(ids[i], "event=spool_file_missing error=%s",
			          error);
			free(error);
		}
		sqlite3_bind_text(sp->st[ST_MSG_DELETE], 1, ids[i], -1,
		                  SQLITE_STATIC);
		if (st_exec(sp, ST_MSG_DELETE, error_r) < 0) {
			free(ids);
			return -1;
		}
	}
	free(ids);
	return 0;
}

static bool
is_db_file(const char *name)
{
	static const char *const names[] = {SPOOL_DB_NAME, SPOOL_DB_NAME "-wal",
	                                    SPOOL_DB_NAME "-shm",
	                                    SPOOL_DB_NAME "-journal"};
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(name, names[i]) == 0)
			return true;
	return false;
}

/* Recovery, step 3: files with no row: a crash (or a refused commit)
 * between spool_create() and spool_commit(), or between the last
 * recipient's result and the unlink. Nothing was acknowledged for the
 * former; the latter is done. */
/* A pool file found at start: kept (emptied) while there is room,
 * otherwise removed. False when name is no pool file's. */
static bool
pool_adopt(struct spool *sp, const char *name)
{
	size_t plen = strlen(SPOOL_POOL_PREFIX);
	struct stat sb;
	int fd;

	if (strncmp(name, SPOOL_POOL_PREFIX, plen) != 0 ||
	    !id_valid(name + plen))
		return false;
	if (sp->npool < SPOOL_POOL_MAX &&
	    fstatat(sp->dirfd, name, &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
	    S_ISREG(sb.st_mode) &&
	    (fd = openat(sp->dirfd, name,
	                 O_WRONLY | O_TRUNC | O_CLOEXEC | O_NOFOLLOW)) >= 0) {
		close(fd);
		memcpy(sp->pool[sp->npool++], name, SPOOL_POOL_NAME);
		return true;
	}
	(void)unlinkat(sp->dirfd, name, 0);
	return true;
}

static int
recover_orphan_files(struct spool *sp, char **error_r)
{
	struct dirent *de;
	size_t removed = 0;
	DIR *d;
	int fd;

	if ((fd = openat(sp->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) <
	        0 ||
	    (d = fdopendir(fd)) == NULL) {
		*error_r =
		    xasprintf("opendir %s: %s", sp->dir, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	while ((errno = 0, de = readdir(d)) != NULL) {
		struct stat sb;
		bool exists;

		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0 || is_db_file(de->d_name))
			continue;
		if (pool_adopt(sp, de->d_name))
			continue;
		if (!id_valid(de->d_name)) {
			log_warn(NULL, "event=spool_unknown_file name=%s",
			         de->d_name);
			continue;
		}
		if (message_exists(sp, de->d_name, &exists, error_r) < 0)
			goto fail;
		if (exists)
			continue;
		if (fstatat(sp->dirfd, de->d_name, &sb, AT_SYMLINK_NOFOLLOW) <
		        0 ||
		    !S_ISREG(sb.st_mode)) {
			log_warn(de->d_name, "event=spool_unknown_file");
			continue;
		}
		if (unlinkat(sp->dirfd, de->d_name, 0) < 0) {
			*error_r = xasprintf("unlink %s/%s: %s", sp->dir,
			                     de->d_name, strerror(errno));
			goto fail;
		}
		log_notice(de->d_name, "event=spool_orphan_removed size=%lld",
		           (long long)sb.st_size);
		removed++;
	}
	if (errno != 0) {
		*error_r =
		    xasprintf("readdir %s: %s", sp->dir, strerror(errno));
		goto fail;
	}
	closedir(d);
	if (removed > 0)
		return fsync_dir(sp, error_r);
	return 0;
fail:
	closedir(d);
	return -1;
}

static int
open_db(struct spool *sp, char **error_r)
{
	char *path = xasprintf("%s/%s", sp->dir, SPOOL_DB_NAME);
	sqlite3_stmt *st;
	int fd, rc, version;
	size_t i;

	/* Create it 0600 ourselves: SQLite would use 0644, and its -wal and
	 * -shm files copy the database's mode. */
	fd = openat(sp->dirfd, SPOOL_DB_NAME,
	            O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		*error_r = xasprintf("open %s: %s", path, strerror(errno));
		free(path);
		return -1;
	}
	close(fd);
	rc = sqlite3_open_v2(path, &sp->db,
	                     SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX |
	                         SQLITE_OPEN_NOFOLLOW,
	                     NULL);
	free(path);
	if (rc != SQLITE_OK) {
		*error_r = xasprintf("%s/%s: %s", sp->dir, SPOOL_DB_NAME,
		                     sp->db != NULL ? sqlite3_errmsg(sp->db)
		                                    : sqlite3_errstr(rc));
		return -1;
	}
	sqlite3_extended_result_codes(sp->db, 1);
	sqlite3_busy_timeout(sp->db, SPOOL_BUSY_MS);
	sqlite3_db_config(sp->db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
	sqlite3_db_config(sp->db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, NULL);

	/* Constant statements without parameters. */
	if (sqlite3_exec(sp->db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL) !=
	        SQLITE_OK ||
	    sqlite3_exec(sp->db, "PRAGMA synchronous=FULL", NULL, NULL, NULL) !=
	        SQLITE_OK ||
	    sqlite3_exec(sp->db, "PRAGMA foreign_keys=ON", NULL, NULL, NULL) !=
	        SQLITE_OK)
		return db_error(sp, "pragma", error_r);

	/* Check that the settings durability depends on took effect. */
	if (sqlite3_prepare_v2(sp->db, "PRAGMA journal_mode", -1, &st, NULL) !=
	        SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_ROW ||
	    sqlite3_column_text(st, 0) == NULL ||
	    strcmp((const char *)sqlite3_column_text(st, 0), "wal") != 0) {
		sqlite3_finalize(st);
		*error_r = xasprintf("%s/%s: cannot switch to WAL mode",
		                     sp->dir, SPOOL_DB_NAME);
		return -1;
	}
	sqlite3_finalize(st);
	if (sqlite3_prepare_v2(sp->db, "PRAGMA foreign_keys", -1, &st, NULL) !=
	        SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_ROW || sqlite3_column_int(st, 0) != 1) {
		sqlite3_finalize(st);
		*error_r = xstrdup("SQLite without foreign keys");
		return -1;
	}
	sqlite3_finalize(st);
	if (sqlite3_prepare_v2(sp->db, "PRAGMA user_version", -1, &st, NULL) !=
	        SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_ROW) {
		sqlite3_finalize(st);
		return db_error(sp, "PRAGMA user_version", error_r);
	}
	version = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	if (version > SPOOL_SCHEMA_VERSION) {
		*error_r = xasprintf("%s/%s: schema version %d is newer than "
		                     "this program (%d)",
		                     sp->dir, SPOOL_DB_NAME, version,
		                     SPOOL_SCHEMA_VERSION);
		return -1;
	}
	/* Version 2 added messages.headers (the header fields front adds
	 * after its checks), version 3 messages.flags, version 4 holds and
	 * DSNs (spool_migrate_4), version 5 delay notices, version 6
	 * forwarding (spool_migrate_6). The version is a
	 * constant: no parameter can reach this text. */
	if (sqlite3_exec(sp->db,
	                 "BEGIN IMMEDIATE;"
	                 "PRAGMA user_version = 6;",
	                 NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_exec(sp->db, spool_schema, NULL, NULL, NULL) != SQLITE_OK ||
	    (version >= 1 && version < 2 &&
	     sqlite3_exec(sp->db,
	                  "ALTER TABLE messages ADD COLUMN headers TEXT", NULL,
	                  NULL, NULL) != SQLITE_OK) ||
	    (version >= 1 && version < 3 &&
	     sqlite3_exec(sp->db,
	                  "ALTER TABLE messages ADD COLUMN flags INTEGER NOT "
	                  "NULL DEFAULT 0",
	                  NULL, NULL, NULL) != SQLITE_OK) ||
	    (version >= 1 && version < 4 &&
	     sqlite3_exec(sp->db, spool_migrate_4, NULL, NULL, NULL) !=
	         SQLITE_OK) ||
	    (version >= 1 && version < 5 &&
	     sqlite3_exec(sp->db, spool_migrate_5, NULL, NULL, NULL) !=
	         SQLITE_OK) ||
	    (version >= 1 && version < 6 &&
	     sqlite3_exec(sp->db, spool_migrate_6, NULL, NULL, NULL) !=
	         SQLITE_OK) ||
	    sqlite3_exec(sp->db, spool_indexes, NULL, NULL, NULL) !=
	        SQLITE_OK ||
	    sqlite3_exec(sp->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		db_error(sp, "schema", error_r);
		if (!sqlite3_get_autocommit(sp->db))
			sqlite3_exec(sp->db, "ROLLBACK", NULL, NULL, NULL);
		return -1;
	}

	for (i = 0; i < ST_COUNT; i++) {
		if (sqlite3_prepare_v3(sp->db, spool_sql[i], -1,
		                       SQLITE_PREPARE_PERSISTENT, &sp->st[i],
		                       NULL) != SQLITE_OK)
			return db_error(sp, spool_sql[i], error_r);
	}
	return 0;
}

/* recover: the queue's own open, which cleans up after a crash (only
 * the queue may: a file without a row may be a message front is writing
 * right now when anyone else opens the spool). Both opens wait up to
 * SPOOL_BUSY_MS for the other's write transaction (open_db). */
static struct spool *
spool_open_with(const char *dir, bool recover, char **error_r)
{
	struct spool *sp = xcalloc(1, sizeof(*sp));

	sp->dir = xstrdup(dir);
	sp->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (sp->dirfd < 0) {
		*error_r = xasprintf("open %s: %s", dir, strerror(errno));
		goto fail;
	}
	if (open_db(sp, error_r) < 0)
		goto fail;
	/* The database file (and its -wal) must be found after a crash. */
	if (fsync_dir(sp, error_r) < 0)
		goto fail;
	if (recover) {
		sp->owner = true;
		sp->pool =
		    xreallocarray(NULL, SPOOL_POOL_MAX, sizeof(*sp->pool));
	}
	if (recover && (recover_done_messages(sp, error_r) < 0 ||
	                recover_missing_files(sp, error_r) < 0 ||
	                recover_orphan_files(sp, error_r) < 0))
		goto fail;
	return sp;
fail:
	spool_close(&sp);
	return NULL;
}

struct spool *
spool_open(const char *dir, char **error_r)
{
	return spool_open_with(dir, true, error_r);
}

struct spool *
spool_open_admin(const char *dir, char **error_r)
{
	return spool_open_with(dir, false, error_r);
}

void
spool_close(struct spool **spp)
{
	struct spool *sp = *spp;
	size_t i;

	if (sp == NULL)
		return;
	for (i = 0; i < ST_COUNT; i++)
		sqlite3_finalize(sp->st[i]);
	/* close_v2: never fails with statements still open. */
	sqlite3_close_v2(sp->db);
	if (sp->nlater > 0 && wal_sync(sp) == 0)
		later_flush(sp);
	/* What waits for a recycle goes now. */
	sp->defer_removals = false;
	for (size_t k = 0; k < sp->nremoving; k++)
		remove_file(sp, sp->removing[k]);
	free(sp->removing);
	free(sp->later);
	free(sp->pool);
	if (sp->dirfd >= 0)
		close(sp->dirfd);
	free(sp->dir);
	free(sp);
	*spp = NULL;
}

static int
random_id(char id_r[SPOOL_ID_SIZE], char **error_r)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char rnd[(SPOOL_ID_SIZE - 1) / 2];
	size_t got = 0, i;

	while (got < sizeof(rnd)) {
		ssize_t r = getrandom(rnd + got, sizeof(rnd) - got, 0);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			*error_r = xasprintf("getrandom: %s", strerror(errno));
			return -1;
		}
		got += (size_t)r;
	}
	for (i = 0; i < sizeof(rnd); i++) {
		id_r[2 * i] = hex[rnd[i] >> 4];
		id_r[2 * i + 1] = hex[rnd[i] & 0xf];
	}
	id_r[SPOOL_ID_SIZE - 1] = '\0';
	return 0;
}

/* A pool file under the name id, open and empty; -1 (errno EEXIST: the
 * id is taken) when there is none to take. */
static int
pool_take(struct spool *sp, const char *id)
{
	while (sp->npool > 0) {
		const char *name = sp->pool[sp->npool - 1];
		struct stat sb;
		int fd;

		if (renameat2(sp->dirfd, name, sp->dirfd, id,
		              RENAME_NOREPLACE) < 0) {
			if (errno == EEXIST)
				return -1;
			sp->npool--; /* gone: the next one */
			continue;
		}
		sp->npool--;
		/* Emptied when it went into the pool. An O_TRUNC here would
		 * set ext4's replace-by-truncate mark, and front's close of
		 * the file would then start its writeback there, on front's
		 * loop (a tenth of its time at 64 KB); the commit's sync
		 * starts it anyway. */
		fd = openat(sp->dirfd, id, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
		if (fd >= 0 && (fstat(fd, &sb) < 0 ||
		                (sb.st_size != 0 && ftruncate(fd, 0) < 0))) {
			close(fd);
			fd = -1;
		}
		if (fd >= 0)
			return fd;
		(void)unlinkat(sp->dirfd, id, 0);
	}
	errno = 0;
	return -1;
}

/* pool.ID, the name of id's file in the pool. Copied, not printed: GCC's
 * format check cannot see that an id taken from an array is never null. */
static void
pool_name(char out[SPOOL_POOL_NAME], const char *id)
{
	size_t plen = sizeof(SPOOL_POOL_PREFIX) - 1;
	size_t n = strnlen(id, SPOOL_ID_SIZE - 1);

	memcpy(out, SPOOL_POOL_PREFIX, plen);
	memcpy(out + plen, id, n);
	out[plen + n] = '\0';
}

/* id's file gone: emptied and renamed pool.ID when may_pool (true), else
 * (or when that fails) unlinked, *err_r the unlink's errno or 0. Only the
 * file system: any thread. */
static bool
file_remove(int dirfd, const char *id, bool may_pool, int *err_r)
{
	char name[SPOOL_POOL_NAME];
	int fd;

	*err_r = 0;
	/* Emptied first: a kept file holds no mail. */
	if (may_pool &&
	    (fd = openat(dirfd, id,
	                 O_WRONLY | O_TRUNC | O_CLOEXEC | O_NOFOLLOW)) >= 0) {
		close(fd);
		pool_name(name, id);
		if (renameat(dirfd, id, dirfd, name) == 0)
			return true;
	}
	if (unlinkat(dirfd, id, 0) < 0 && errno != ENOENT)
		*err_r = errno;
	return false;
}

/* After file_remove, on the owner's thread: a pooled file joins the pool
 * (or goes, should it be full), and the log says what happened. */
static void
file_removed(struct spool *sp, const char *id, bool pooled, int err)
{
	if (pooled) {
		char name[SPOOL_POOL_NAME];

		pool_name(name, id);
		if (sp->npool < SPOOL_POOL_MAX)
			memcpy(sp->pool[sp->npool++], name, sizeof(name));
		else
			(void)unlinkat(sp->dirfd, name, 0);
	}
	if (err != 0)
		log_error(id, "event=spool_unlink_failed error=%s",
		          strerror(err));
	log_debug(id, "event=spool_removed");
}

int
spool_create(struct spool *sp, char id_r[SPOOL_ID_SIZE], char **error_r)
{
	int tries, fd;

	for (tries = 0; tries < SPOOL_CREATE_TRIES; tries++) {
		if (random_id(id_r, error_r) < 0)
			return -1;
		if ((fd = pool_take(sp, id_r)) >= 0)
			return fd;
		if (errno == EEXIST)
			continue;
		fd = openat(sp->dirfd, id_r,
		            O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC | O_NOFOLLOW,
		            0600);
		if (fd >= 0)
			return fd;
		if (errno != EEXIST) {
			*error_r = xasprintf("create %s/%s: %s", sp->dir, id_r,
			                     strerror(errno));
			return -1;
		}
	}
	*error_r = xasprintf("create in %s: %d ids taken in a row", sp->dir,
	                     SPOOL_CREATE_TRIES);
	return -1;
}

/* A fresh read-only descriptor of the message file (the one the caller
 * wrote through is in another process) and its size. -1 with *error_r. */
static int
open_message_file(struct spool *sp, const char *id, uint64_t *size_r,
                  char **error_r)
{
	struct stat sb;
	int fd;

	fd = openat(sp->dirfd, id, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		*error_r =
		    xasprintf("open %s/%s: %s", sp->dir, id, strerror(errno));
		return -1;
	}
	if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
		*error_r = xasprintf("%s/%s: not a regular file", sp->dir, id);
		close(fd);
		return -1;
	}
	*size_r = (uint64_t)sb.st_size;
	return fd;
}

/* The checks that need no disk: a valid id and a complete envelope. */
static int
check_envelope(const char *id, const struct spool_envelope *env, char **error_r)
{
	size_t i;

	if (check_id(id, error_r) < 0)
		return -1;
	if (env == NULL || env->mail_from == NULL || env->nrcpts == 0) {
		*error_r = xstrdup("envelope without sender or recipients");
		return -1;
	}
	for (i = 0; i < env->nrcpts; i++) {
		if (env->rcpts[i].address == NULL) {
			*error_r = xstrdup("recipient without address");
			return -1;
		}
	}
	return 0;
}

/* The file checked and opened (*fd_r), its envelope checked already
 * (spool_commit_begin): the size the writer counted (0: not counted) must
 * be the file's; a difference means lost writes. *size_r is the file's
 * size, which the row records. */
static int
prepare_message(struct spool *sp, const char *id,
                const struct spool_envelope *env, int *fd_r, uint64_t *size_r,
                char **error_r)
{
	if ((*fd_r = open_message_file(sp, id, size_r, error_r)) < 0)
		return -1;
	if (env->size != 0 && *size_r != env->size) {
		*error_r = xasprintf("%s/%s: %llu bytes, envelope says %llu",
		                     sp->dir, id, (unsigned long long)*size_r,
		                     (unsigned long long)env->size);
		close(*fd_r);
		*fd_r = -1;
		return -1;
	}
	return 0;
}

/* The files of the messages still ready (results[i] == 0), and the
 * directory, on disk at once (durable_sync); the others fail. */
static void
sync_messages(struct spool *sp, const char *const *ids, int *fds, size_t n,
              int *results, char **errors)
{
	int *ready = xcalloc(n, sizeof(*ready)),
	    *errs = xcalloc(n, sizeof(*errs));
	size_t k = 0;

	for (size_t i = 0; i < n; i++)
		if (results[i] == 0)
			ready[k++] = fds[i];
	if (k == 0) {
		free(errs);
		free(ready);
		return;
	}
	(void)durable_sync(sp->dirfd, ready, k, errs);
	k = 0;
	for (size_t i = 0; i < n; i++) {
		if (results[i] != 0)
			continue;
		if (errs[k] != 0) {
			results[i] = -1;
			errors[i] = xasprintf("fsync %s/%s: %s", sp->dir,
			                      ids[i], strerror(errs[k]));
		}
		k++;
	}
	free(errs);
	free(ready);
}

/* The message's rows, inside the caller's transaction. */
static int
insert_message(struct spool *sp, const char *id,
               const struct spool_envelope *env, uint64_t size, uint64_t now,
               char **error_r)
{
	sqlite3_stmt *st = sp->st[ST_MSG_INSERT];
	size_t i;

	bind_text(st, 1, id);
	bind_text(st, 2, env->mail_from);
	bind_text(st, 3, env->helo);
	bind_text(st, 4, env->client_ip);
	bind_text(st, 5, env->auth_user);
	bind_text(st, 6, env->ret);
	bind_text(st, 7, env->envid);
	sqlite3_bind_int(st, 8, env->smtputf8 ? 1 : 0);
	sqlite3_bind_int64(st, 9, to_i64(size));
	sqlite3_bind_int64(st, 10, to_i64(now));
	bind_text(st, 11, env->headers);
	sqlite3_bind_int64(st, 12, (sqlite3_int64)env->flags);
	bind_text(st, 13, env->fwd_headers);
	if (st_exec(sp, ST_MSG_INSERT, error_r) < 0)
		return -1;
	st = sp->st[ST_RCPT_INSERT];
	for (i = 0; i < env->nrcpts; i++) {
		const struct spool_rcpt *r = &env->rcpts[i];

		bind_text(st, 1, id);
		bind_text(st, 2, r->address);
		bind_text(st, 3, r->orcpt);
		sqlite3_bind_int64(st, 4, r->notify);
		sqlite3_bind_int(st, 5, r->local ? 1 : 0);
		sqlite3_bind_int64(st, 6, to_i64(now));
		bind_text(st, 7, r->sender);
		sqlite3_bind_int(st, 8, r->forwarded ? 1 : 0);
		if (st_exec(sp, ST_RCPT_INSERT, error_r) < 0)
			return -1;
	}
	return 0;
}

/* One transaction for the messages whose results[i] is 0 (the others
 * are skipped). On failure nothing of it is recorded and *error_r says
 * why: -1 when BEGIN failed (no message can have caused that), -2 when
 * it failed later (a row refused, COMMIT failing). */
static int
insert_messages(struct spool *sp, const char *const *ids,
                const struct spool_envelope *const *envs, const uint64_t *sizes,
                size_t n, const int *results, uint64_t now, char **error_r)
{
	size_t i;

	if (st_exec(sp, ST_BEGIN, error_r) < 0)
		return -1;
	for (i = 0; i < n; i++) {
		if (results[i] != 0)
			continue;
		if (insert_message(sp, ids[i], envs[i], sizes[i], now,
		                   error_r) < 0) {
			rollback(sp);
			return -2;
		}
	}
	return commit(sp, error_r) < 0 ? -2 : 0;
}

/* Every message still ready (results[i] == 0) fails with error. */
static void
fail_ready(size_t n, int *results, char **errors, const char *error)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (results[i] == 0) {
			results[i] = -1;
			errors[i] = xstrdup(error);
		}
	}
}

/* A group commit under way (spool.h): one entry per message. */
struct spool_commit {
	struct spool *sp;
	size_t n;
	const char *const *ids;
	const struct spool_envelope *const *envs;
	int *results;      /* 0 while message i is on its way */
	char **errors;     /* why message i failed */
	uint64_t *sizes;   /* the files' sizes, for the rows */
	bool rows;         /* rows were committed: the WAL needs its sync */
	int wal_err;       /* errno of the WAL's sync, or 0 */
	size_t later_mark; /* later entries before this one the sync covers */
};

struct spool_commit *
spool_commit_begin(struct spool *sp, const char *const *ids,
                   const struct spool_envelope *const *envs, size_t n)
{
	struct spool_commit *c = xcalloc(1, sizeof(*c));

	c->sp = sp;
	c->n = n;
	c->ids = ids;
	c->envs = envs;
	c->results = xcalloc(n, sizeof(*c->results));
	c->errors = xcalloc(n, sizeof(*c->errors));
	c->sizes = xcalloc(n, sizeof(*c->sizes));
	for (size_t i = 0; i < n; i++)
		c->results[i] = check_envelope(ids[i], envs[i], &c->errors[i]);
	return c;
}

/* Each file checked (its size must be the one the writer counted), then
 * the files and the directory put on disk together. Touches only c, the
 * spool's directory descriptor and its name: safe on another thread. */
void
spool_commit_sync_files(struct spool_commit *c)
{
	int *fds = xcalloc(c->n, sizeof(*fds));

	for (size_t i = 0; i < c->n; i++) {
		fds[i] = -1;
		if (c->results[i] == 0)
			c->results[i] = prepare_message(
			    c->sp, c->ids[i], c->envs[i], &fds[i], &c->sizes[i],
			    &c->errors[i]);
	}
	sync_messages(c->sp, c->ids, fds, c->n, c->results, c->errors);
	for (size_t i = 0; i < c->n; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	free(fds);
}

/* One transaction for every message whose file is on disk, which does not
 * wait for the disk: spool_commit_sync_rows() does. When that transaction
 * fails after it began (a row refused, COMMIT failing), each message is
 * tried again in a transaction of its own, so that one bad message cannot
 * fail the others. A failed BEGIN fails them all: nothing in one message
 * can cause it. */
void
spool_commit_insert(struct spool_commit *c)
{
	struct spool *sp = c->sp;
	uint64_t now = now_ms();
	char *error = NULL;
	size_t ready = 0;
	int rc;

	for (size_t i = 0; i < c->n; i++)
		if (c->results[i] == 0)
			ready++;
	if (ready == 0)
		return;
	if (st_exec(sp, ST_SYNC_NORMAL, &error) < 0) {
		fail_ready(c->n, c->results, c->errors, error);
		free(error);
		return;
	}
	sp->lazy = true;
	rc = insert_messages(sp, c->ids, c->envs, c->sizes, c->n, c->results,
	                     now, &error);
	if (rc == -2 && ready > 1) {
		log_warn(NULL,
		         "event=spool_batch_failed messages=%zu "
		         "error=%s action=one-by-one",
		         ready, error);
		for (size_t i = 0; i < c->n; i++) {
			const int one = 0;

			if (c->results[i] == 0 &&
			    insert_messages(sp, &c->ids[i], &c->envs[i],
			                    &c->sizes[i], 1, &one, now,
			                    &c->errors[i]) < 0)
				c->results[i] = -1;
		}
	} else if (rc < 0) {
		fail_ready(c->n, c->results, c->errors, error);
	}
	xfree(&error);
	/* Back to FULL for the others; failing that, the outcomes stay
	 * lazy until it works, which the sync below covers anyway. */
	if (lazy_end(sp, &error) < 0) {
		log_error(NULL, "event=spool_sync_mode_failed error=%s", error);
		free(error);
	}
	for (size_t i = 0; i < c->n; i++)
		if (c->results[i] == 0)
			c->rows = true;
	/* Every outcome committed so far is in the WAL the sync will put
	 * on disk. */
	c->later_mark = sp->later_base + sp->nlater;
}

/* The WAL on disk, with the rows just committed and every commit before
 * them. Safe on another thread, as spool_commit_sync_files(). */
void
spool_commit_sync_rows(struct spool_commit *c)
{
	if (c->rows && wal_sync(c->sp) < 0)
		c->wal_err = errno != 0 ? errno : EIO;
}

size_t
spool_commit_end(struct spool_commit **cp, int *results, char **error_r)
{
	struct spool_commit *c = *cp;
	struct spool *sp = c->sp;
	size_t failed = 0;

	if (c->rows && c->wal_err == 0)
		later_flush_to(sp, c->later_mark);
	for (size_t i = 0; i < c->n; i++) {
		if (c->results[i] == 0 && c->wal_err != 0) {
			/* The rows are in but maybe not on disk: not
			 * acknowledged, yet delivered (spool_discard keeps
			 * a file with a row); the sender's retry makes a
			 * duplicate, never a loss. */
			c->results[i] = -1;
			c->errors[i] =
			    xasprintf("fsync %s/%s-wal: %s", sp->dir,
			              SPOOL_DB_NAME, strerror(c->wal_err));
		}
		results[i] = c->results[i];
		if (results[i] != 0) {
			const char *why =
			    c->errors[i] != NULL ? c->errors[i] : "unknown";

			log_error(id_valid(c->ids[i]) ? c->ids[i] : NULL,
			          "event=spool_commit_failed error=%s", why);
			if (failed++ == 0 && error_r != NULL)
				*error_r = xstrdup(why);
			continue;
		}
		log_debug(c->ids[i],
		          "event=spool_commit from=%s size=%llu rcpts=%zu",
		          c->envs[i]->mail_from,
		          (unsigned long long)c->sizes[i], c->envs[i]->nrcpts);
	}
	if (c->n > 1)
		log_debug(NULL,
		          "event=spool_commit_batch messages=%zu failed=%zu",
		          c->n, failed);
	for (size_t i = 0; i < c->n; i++)
		free(c->errors[i]);
	free(c->errors);
	free(c->results);
	free(c->sizes);
	free(c);
	*cp = NULL;
	return failed;
}

/* The steps above in a row, on the caller's thread. */
static size_t
commit_batch(struct spool *sp, const char *const *ids,
             const struct spool_envelope *const *envs, size_t n, int *results,
             char **error_r)
{
	struct spool_commit *c = spool_commit_begin(sp, ids, envs, n);

	spool_commit_sync_files(c);
	spool_commit_insert(c);
	spool_commit_sync_rows(c);
	return spool_commit_end(&c, results, error_r);
}

/* On failure nothing is recorded for that message, with one exception
 * that SQLite cannot rule out: COMMIT failing with an I/O error after the
 * WAL frames reached the disk may still show the rows after a crash.
 * spool_discard() therefore refuses to remove a file that has a row: a
 * duplicate, never a loss. */
int
spool_commit_batch(struct spool *sp, const char *const *ids,
                   const struct spool_envelope *const *envs, size_t n,
                   int *results, char **error_r)
{
	char *error = NULL;

	if (n == 0 || commit_batch(sp, ids, envs, n, results, &error) == 0) {
		free(error);
		return 0;
	}
	*error_r = error != NULL ? error : xstrdup("commit failed");
	return -1;
}

int
spool_commit(struct spool *sp, const char *id, const struct spool_envelope *env,
             char **error_r)
{
	char *error = NULL;
	int result;

	if (commit_batch(sp, &id, &env, 1, &result, &error) == 0) {
		free(error);
		return 0;
	}
	*error_r = error != NULL ? error : xstrdup("commit failed");
	return -1;
}

void
spool_discard(struct spool *sp, const char *id)
{
	char *error = NULL;
	bool exists;

	if (!id_valid(id)) {
		log_error(NULL, "event=spool_discard_bad_id");
		return;
	}
	if (message_exists(sp, id, &exists, &error) < 0) {
		/* Keep the file: spool_open() removes it if it has no row. */
		log_error(id, "event=spool_discard_failed error=%s", error);
		free(error);
		return;
	}
	if (exists) {
		log_error(id, "event=spool_discard_refused reason=committed");
		return;
	}
	if (unlinkat(sp->dirfd, id, 0) < 0 && errno != ENOENT)
		log_error(id, "event=spool_discard_failed error=%s",
		          strerror(errno));
	else
		log_debug(id, "event=spool_discard");
}

int
spool_due(struct spool *sp, uint64_t now, size_t max, struct spool_due **due_r,
          size_t *n_r, char **error_r)
{
	sqlite3_stmt *st = sp->st[ST_DUE];
	struct spool_due *due = NULL;
	size_t n = 0;
	int rc;

	*due_r = NULL;
	*n_r = 0;
	if (max == 0)
		return 0;
	sqlite3_bind_int64(st, 1, to_i64(now));
	sqlite3_bind_int64(st, 2, to_i64(max));
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *id = (const char *)sqlite3_column_text(st, 0);
		struct spool_due *d;
		sqlite3_int64 attempts, created;

		if (!id_valid(id)) {
			log_error(NULL, "event=spool_bad_row id=%s",
			          id != NULL ? id : "");
			continue;
		}
		due = xreallocarray(due, n + 1, sizeof(*due));
		d = &due[n];
		memcpy(d->id, id, SPOOL_ID_SIZE);
		if (col_strdup(st, 1, &d->address) < 0 || d->address == NULL) {
			*error_r = xstrdup("out of memory reading queue.db");
			st_done(st);
			spool_due_free(&due, n);
			return -1;
		}
		d->local = sqlite3_column_int(st, 2) != 0;
		attempts = sqlite3_column_int64(st, 3);
		d->attempts = attempts < 0            ? 0
		              : attempts > UINT32_MAX ? UINT32_MAX
		                                      : (unsigned)attempts;
		created = sqlite3_column_int64(st, 4);
		d->created_ms = created < 0 ? 0 : (uint64_t)created;
		d->notify = (unsigned)sqlite3_column_int64(st, 5);
		d->orcpt = NULL;
		d->sender = NULL;
		d->forwarded = sqlite3_column_int(st, 8) != 0;
		n++; /* counted now: spool_due_free() frees address */
		if (col_strdup(st, 6, &d->orcpt) < 0 ||
		    col_strdup(st, 7, &d->sender) < 0) {
			*error_r = xstrdup("out of memory reading queue.db");
			st_done(st);
			spool_due_free(&due, n);
			return -1;
		}
	}
	if (rc != SQLITE_DONE) {
		db_error(sp, spool_sql[ST_DUE], error_r);
		st_done(st);
		spool_due_free(&due, n);
		return -1;
	}
	st_done(st);
	*due_r = due;
	*n_r = n;
	return 0;
}

void
spool_due_free(struct spool_due **due, size_t n)
{
	size_t i;

	if (*due == NULL)
		return;
	for (i = 0; i < n; i++) {
		free((*due)[i].address);
		free((*due)[i].orcpt);
		free((*due)[i].sender);
	}
	xfree(due);
}

int
spool_open_message(struct spool *sp, const char *id, char **error_r)
{
	bool exists;
	int fd;

	if (check_id(id, error_r) < 0 ||
	    message_exists(sp, id, &exists, error_r) < 0)
		return -1;
	if (!exists) {
		*error_r = xasprintf("%s: no such message", id);
		return -1;
	}
	fd = openat(sp->dirfd, id, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		*error_r =
		    xasprintf("open %s/%s: %s", sp->dir, id, strerror(errno));
		return -1;
	}
	return fd;
}

static int
read_recipients(struct spool *sp, const char *id, struct spool_envelope *env,
                char **error_r)
{
	sqlite3_stmt *st = sp->st[ST_RCPT_LIST];
	int rc;

	bind_text(st, 1, id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct spool_rcpt *r;

		env->rcpts =
		    xreallocarray(env->rcpts, env->nrcpts + 1, sizeof(*r));
		r = &env->rcpts[env->nrcpts++];
		memset(r, 0, sizeof(*r));
		if (col_strdup(st, 0, &r->address) < 0 ||
		    col_strdup(st, 1, &r->orcpt) < 0 ||
		    col_strdup(st, 4, &r->sender) < 0) {
			*error_r = xstrdup("out of memory reading queue.db");
			st_done(st);
			return -1;
		}
		r->notify = (unsigned)sqlite3_column_int64(st, 2);
		r->local = sqlite3_column_int(st, 3) != 0;
		r->forwarded = sqlite3_column_int(st, 5) != 0;
	}
	if (rc != SQLITE_DONE) {
		db_error(sp, spool_sql[ST_RCPT_LIST], error_r);
		st_done(st);
		return -1;
	}
	st_done(st);
	return 0;
}

int
spool_envelope(struct spool *sp, const char *id, struct spool_envelope *env_r,
               char **error_r)
{
	sqlite3_stmt *st = sp->st[ST_MSG_GET];
	sqlite3_int64 size;
	int rc;

	memset(env_r, 0, sizeof(*env_r));
	if (check_id(id, error_r) < 0)
		return -1;
	bind_text(st, 1, id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		st_done(st);
		*error_r = xasprintf("%s: no such message", id);
		return -1;
	}
	if (rc != SQLITE_ROW) {
		db_error(sp, spool_sql[ST_MSG_GET], error_r);
		st_done(st);
		return -1;
	}
	if (col_strdup(st, 0, &env_r->mail_from) < 0 ||
	    col_strdup(st, 1, &env_r->helo) < 0 ||
	    col_strdup(st, 2, &env_r->client_ip) < 0 ||
	    col_strdup(st, 3, &env_r->auth_user) < 0 ||
	    col_strdup(st, 4, &env_r->ret) < 0 ||
	    col_strdup(st, 5, &env_r->envid) < 0 ||
	    col_strdup(st, 8, &env_r->headers) < 0 ||
	    col_strdup(st, 10, &env_r->fwd_headers) < 0) {
		*error_r = xstrdup("out of memory reading queue.db");
		st_done(st);
		spool_envelope_clear(env_r);
		return -1;
	}
	env_r->smtputf8 = sqlite3_column_int(st, 6) != 0;
	env_r->flags = (uint32_t)sqlite3_column_int64(st, 9);
	size = sqlite3_column_int64(st, 7);
	env_r->size = size < 0 ? 0 : (uint64_t)size;
	st_done(st);
	if (read_recipients(sp, id, env_r, error_r) < 0) {
		spool_envelope_clear(env_r);
		return -1;
	}
	return 0;
}

void
spool_envelope_clear(struct spool_envelope *env)
{
	size_t i;

	free(env->mail_from);
	free(env->helo);
	free(env->client_ip);
	free(env->auth_user);
	free(env->ret);
	free(env->envid);
	free(env->headers);
	free(env->fwd_headers);
	for (i = 0; i < env->nrcpts; i++) {
		free(env->rcpts[i].address);
		free(env->rcpts[i].orcpt);
		free(env->rcpts[i].sender);
	}
	free(env->rcpts);
	memset(env, 0, sizeof(*env));
}

static const char *
state_name(enum spool_rcpt_state state)
{
	switch (state) {
	case SPOOL_RCPT_PENDING:
		return "deferred";
	case SPOOL_RCPT_DELIVERED:
		return "delivered";
	case SPOOL_RCPT_FAILED:
		return "failed";
	}
	return "?";
}

static int
db_state_of(enum spool_rcpt_state state, int *db_state_r, char **error_r)
{
	switch (state) {
	case SPOOL_RCPT_PENDING:
		*db_state_r = STATE_PENDING;
		return 0;
	case SPOOL_RCPT_DELIVERED:
		*db_state_r = STATE_DELIVERED;
		return 0;
	case SPOOL_RCPT_FAILED:
		*db_state_r = STATE_FAILED;
		return 0;
	}
	*error_r = xstrdup("invalid recipient state");
	return -1;
}

static enum spool_rcpt_state
state_of_db(int64_t v)
{
	return v == STATE_DELIVERED ? SPOOL_RCPT_DELIVERED
	       : v == STATE_FAILED  ? SPOOL_RCPT_FAILED
	                            : SPOOL_RCPT_PENDING;
}

static uint64_t
col_u64(sqlite3_stmt *st, int i)
{
	sqlite3_int64 v = sqlite3_column_int64(st, i);

	return v < 0 ? 0 : (uint64_t)v;
}

static unsigned
col_uint(sqlite3_stmt *st, int i)
{
	sqlite3_int64 v = sqlite3_column_int64(st, i);

	return v < 0 ? 0 : v > UINT32_MAX ? UINT32_MAX : (unsigned)v;
}

/* RFC 3461 §5.2 (asked for) and §4.1 (never to <>): does this outcome
 * call for a DSN to the sender? notify 0: NOTIFY not given, which means
 * FAILURE and DELAY. A delay notice goes once per recipient. */
static bool
dsn_wanted(const char *mail_from, unsigned notify, bool delayed,
           const struct spool_result *res)
{
	if (mail_from == NULL || mail_from[0] == '\0')
		return false;
	if (res->state == SPOOL_RCPT_PENDING)
		return res->delay_notice && !delayed &&
		       (notify == 0 || (notify & NOTIFY_DELAY) != 0);
	switch (res->state) {
	case SPOOL_RCPT_FAILED:
		return (notify & NOTIFY_NEVER) == 0 &&
		       (notify == 0 || (notify & NOTIFY_FAILURE) != 0);
	case SPOOL_RCPT_DELIVERED:
		return (notify & NOTIFY_SUCCESS) != 0 && !res->dsn_passed;
	case SPOOL_RCPT_PENDING:
		break;
	}
	return false;
}

/* Inside the caller's transaction: delete the message's rows (ON DELETE
 * CASCADE) when nothing keeps it, no recipient pending and no DSN due.
 * *removed_r says whether it did; the caller unlinks the file after the
 * commit. */
static int
drop_if_done(struct spool *sp, const char *id, bool *removed_r, char **error_r)
{
	int64_t live;

	*removed_r = false;
	bind_text(sp->st[ST_LIVE_OF], 1, id);
	if (st_int(sp, ST_LIVE_OF, &live, error_r) < 0)
		return -1;
	if (live > 0)
		return 0;
	bind_text(sp->st[ST_MSG_DELETE], 1, id);
	if (st_exec(sp, ST_MSG_DELETE, error_r) < 0)
		return -1;
	*removed_r = true;
	return 0;
}

/* After the commit that deleted id's rows, synced. The outcome is
 * recorded: failing to remove the file is not the caller's error
 * (spool_open() removes a file without a row), only worth a log line; for
 * the same reason the unlink need not reach the disk (no directory fsync):
 * a file that comes back in a crash goes at the next start. */
/* How many more files the pool may take, counting those that recycles
 * under way may add. Only the queue's open keeps a pool. */
static size_t
pool_room(const struct spool *sp)
{
	size_t taken = sp->npool + sp->pool_pending;

	return sp->owner && taken < SPOOL_POOL_MAX ? SPOOL_POOL_MAX - taken : 0;
}

static void
remove_file(struct spool *sp, const char *id)
{
	bool may_pool = pool_room(sp) > 0;
	bool pooled;
	int err;

	if (sp->defer_removals) {
		sp->removing = xreallocarray(sp->removing, sp->nremoving + 1,
		                             sizeof(*sp->removing));
		memcpy(sp->removing[sp->nremoving++], id, SPOOL_ID_SIZE);
		return;
	}
	pooled = file_remove(sp->dirfd, id, may_pool, &err);
	file_removed(sp, id, pooled, err);
}

void
spool_defer_removals(struct spool *sp)
{
	sp->defer_removals = true;
}

struct spool_recycle *
spool_recycle_take(struct spool *sp)
{
	struct spool_recycle *r;
	size_t room = pool_room(sp);

	if (sp->nremoving == 0)
		return NULL;
	r = xcalloc(1, sizeof(*r));
	r->dirfd = sp->dirfd;
	r->ids = sp->removing;
	r->n = sp->nremoving;
	sp->removing = NULL;
	sp->nremoving = 0;
	r->room = room < r->n ? room : r->n;
	sp->pool_pending += r->room;
	r->pooled = xcalloc(r->n, sizeof(*r->pooled));
	r->errs = xcalloc(r->n, sizeof(*r->errs));
	return r;
}

void
spool_recycle_run(struct spool_recycle *r)
{
	for (size_t i = 0; i < r->n; i++)
		if (!r->pooled[i]) /* else done by a first run */
			r->pooled[i] = file_remove(r->dirfd, r->ids[i],
			                           i < r->room, &r->errs[i]);
}

void
spool_recycle_done(struct spool *sp, struct spool_recycle **rp)
{
	struct spool_recycle *r = *rp;

	if (r == NULL)
		return;
	*rp = NULL;
	sp->pool_pending -= r->room;
	for (size_t i = 0; i < r->n; i++)
		file_removed(sp, r->ids[i], r->pooled[i], r->errs[i]);
	free(r->errs);
	free(r->pooled);
	free(r->ids);
	free(r);
}

/* The WAL's frames on disk, whatever the connection's mode (a close
 * checkpoints only when it is the last connection). 0 when there is no
 * WAL: the close checkpointed and removed it. */
static int
wal_sync(struct spool *sp)
{
	int fd = openat(sp->dirfd, SPOOL_DB_NAME "-wal",
	                O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	int rc, err;

	if (fd < 0)
		return errno == ENOENT ? 0 : -1;
	rc = fdatasync(fd);
	err = errno;
	close(fd);
	errno = err;
	return rc;
}

/* The files whose rows' deletion a synced commit has now made durable:
 * those numbered below mark (later_base counts the ones gone before). */
static void
later_flush_to(struct spool *sp, size_t mark)
{
	size_t k = mark > sp->later_base ? mark - sp->later_base : 0;

	if (k > sp->nlater)
		k = sp->nlater;
	if (k == 0)
		return;
	for (size_t i = 0; i < k; i++)
		remove_file(sp, sp->later[i]);
	memmove(sp->later, sp->later + k,
	        (sp->nlater - k) * sizeof(*sp->later));
	sp->nlater -= k;
	sp->later_base += k;
}

static void
later_flush(struct spool *sp)
{
	later_flush_to(sp, sp->later_base + sp->nlater);
}

void
spool_flush(struct spool *sp)
{
	if (sp->nlater == 0)
		return;
	if (wal_sync(sp) < 0) {
		log_error(NULL, "event=spool_sync_failed error=%s",
		          strerror(errno));
		return;
	}
	later_flush(sp);
}

/* An outcome without waiting for the disk, for spool_rcpt_update. */
static int
lazy_begin(struct spool *sp, char **error_r)
{
	if (sp->nlater >= SPOOL_LATER_MAX)
		return 0; /* this one syncs, and flushes the others */
	if (st_exec(sp, ST_SYNC_NORMAL, error_r) < 0)
		return -1;
	sp->lazy = true;
	return 0;
}

/* Back to synchronous=FULL. Should that fail, sp->lazy stays set and
 * the next one tries again; a message's commit syncs the WAL itself
 * (spool_commit_sync_rows), so no acknowledged message depends on it. */
static int
lazy_end(struct spool *sp, char **error_r)
{
	if (!sp->lazy)
		return 0;
	if (st_exec(sp, ST_SYNC_FULL, error_r) < 0)
		return -1;
	sp->lazy = false;
	return 0;
}

/* The recipient's row, and when nothing keeps the message any more, the
 * message's rows, inside the caller's transaction (*removed_r: the
 * message is done, its file goes after the commit). 1 when the message
 * or the recipient is gone (tern queue delete), nothing changed. */
static int
rcpt_update_in(struct spool *sp, const char *id, const char *address,
               const struct spool_result *res, bool *removed_r, char **error_r)
{
	sqlite3_stmt *st = sp->st[ST_RCPT_GET];
	int64_t old_state;
	unsigned notify;
	bool dsn;
	int db_state, rc;

	*removed_r = false;
	if (check_id(id, error_r) < 0 ||
	    db_state_of(res->state, &db_state, error_r) < 0)
		return -1;
	if (address == NULL) {
		*error_r = xstrdup("no recipient address");
		return -1;
	}
	bind_text(st, 1, id);
	bind_text(st, 2, address);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		st_done(st);
		return 1; /* deleted meanwhile (tern queue delete) */
	}
	if (rc != SQLITE_ROW) {
		db_error(sp, spool_sql[ST_RCPT_GET], error_r);
		st_done(st);
		return -1;
	}
	old_state = sqlite3_column_int64(st, 0);
	notify = col_uint(st, 1);
	dsn = dsn_wanted((const char *)sqlite3_column_text(st, 2), notify,
	                 sqlite3_column_int(st, 3) != 0, res);
	st_done(st);
	if (old_state != STATE_PENDING) {
		*error_r =
		    xasprintf("%s: recipient %s is not pending", id, address);
		return -1;
	}

	st = sp->st[ST_RCPT_UPDATE];
	bind_text(st, 1, id);
	bind_text(st, 2, address);
	sqlite3_bind_int(st, 3, db_state);
	bind_text(st, 4, res->diagnostic);
	sqlite3_bind_int64(st, 5, to_i64(res->next_try_ms));
	sqlite3_bind_int64(st, 6, to_i64(now_ms()));
	bind_text(st, 7, res->status);
	bind_text(st, 8, res->remote_mta);
	sqlite3_bind_int(st, 9, res->relayed ? 1 : 0);
	sqlite3_bind_int(st, 10, dsn ? 1 : 0);
	if (st_exec(sp, ST_RCPT_UPDATE, error_r) < 0)
		return -1;
	if (sqlite3_changes(sp->db) != 1) {
		*error_r =
		    xasprintf("%s: no pending recipient %s", id, address);
		return -1;
	}
	if (drop_if_done(sp, id, removed_r, error_r) < 0)
		return -1;
	/* The queue logs the outcome for the operator; this is the spool's
	 * own trace of it. */
	log_msg(LOG_LEVEL_DEBUG, id,
	        "event=rcpt_%s rcpt=%s diagnostic=%s dsn=%s",
	        state_name(res->state), address,
	        res->diagnostic != NULL ? res->diagnostic : "",
	        dsn ? "due" : "none");
	return 0;
}

/* A message the committed transaction finished: its file goes now, or
 * once the deletion is on disk when the commit did not sync. */
static void
message_done(struct spool *sp, const char *id)
{
	if (sp->lazy) {
		sp->later = xreallocarray(sp->later, sp->nlater + 1,
		                          sizeof(*sp->later));
		memcpy(sp->later[sp->nlater++], id, SPOOL_ID_SIZE);
	} else {
		remove_file(sp, id);
	}
}

/* One transaction for the one outcome. */
static int
rcpt_update(struct spool *sp, const char *id, const char *address,
            const struct spool_result *res, char **error_r)
{
	bool removed;
	int rc;

	if (st_exec(sp, ST_BEGIN, error_r) < 0)
		return -1;
	rc = rcpt_update_in(sp, id, address, res, &removed, error_r);
	if (rc != 0) {
		rollback(sp);
		return rc;
	}
	if (commit(sp, error_r) < 0)
		return -1;
	if (removed)
		message_done(sp, id);
	return 0;
}

/* An outcome is not worth an fsync of its own: lost in a power cut, the
 * recipient is tried again, which the store's delivery ledger answers for
 * local mail (a remote recipient may get a duplicate, as with Postfix).
 * The message's file stays until the deletion is durable. */
int
spool_rcpt_update(struct spool *sp, const char *id, const char *address,
                  const struct spool_result *res, char **error_r)
{
	char *error = NULL;
	int rc;

	if (lazy_begin(sp, error_r) < 0)
		return -1;
	rc = rcpt_update(sp, id, address, res, error_r);
	if (lazy_end(sp, &error) < 0) {
		/* The outcome may be in; the caller logs the failure. */
		if (rc >= 0)
			*error_r = error;
		else
			free(error);
		return -1;
	}
	return rc;
}

/* The outcomes in one transaction, each inside a savepoint so that one
 * refused leaves the others. */
static int
rcpt_update_batch(struct spool *sp, const struct spool_outcome *o, size_t n,
                  int *rcs, char **errors, char **error_r)
{
	bool *removed = xcalloc(n, sizeof(*removed));

	if (st_exec(sp, ST_BEGIN, error_r) < 0) {
		free(removed);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		if (st_exec(sp, ST_SAVEPOINT, error_r) < 0)
			goto fail;
		rcs[i] = rcpt_update_in(sp, o[i].id, o[i].address, o[i].res,
		                        &removed[i], &errors[i]);
		if (rcs[i] != 0 && st_exec(sp, ST_ROLLBACK_TO, error_r) < 0)
			goto fail;
		if (st_exec(sp, ST_RELEASE, error_r) < 0)
			goto fail;
		if (rcs[i] != 0)
			removed[i] = false;
	}
	if (commit(sp, error_r) < 0)
		goto fail;
	for (size_t i = 0; i < n; i++)
		if (removed[i])
			message_done(sp, o[i].id);
	free(removed);
	return 0;
fail:
	rollback(sp);
	for (size_t i = 0; i < n; i++)
		xfree(&errors[i]);
	free(removed);
	return -1;
}

void
spool_rcpt_update_many(struct spool *sp, const struct spool_outcome *o,
                       size_t n, int *rcs, char **errors)
{
	char *error = NULL;

	for (size_t i = 0; i < n; i++) {
		rcs[i] = -1;
		errors[i] = NULL;
	}
	if (n == 0)
		return;
	if (lazy_begin(sp, &error) == 0 &&
	    rcpt_update_batch(sp, o, n, rcs, errors, &error) == 0) {
		if (lazy_end(sp, &error) < 0) {
			log_error(NULL, "event=spool_sync_mode_failed error=%s",
			          error);
			free(error);
		}
		return;
	}
	/* Nothing of the batch is in: one by one, so that only what is
	 * wrong with one outcome fails it. */
	log_warn(NULL,
	         "event=spool_outcomes_failed outcomes=%zu error=%s "
	         "action=one-by-one",
	         n, error != NULL ? error : "");
	xfree(&error);
	for (size_t i = 0; i < n; i++)
		rcs[i] = spool_rcpt_update(sp, o[i].id, o[i].address, o[i].res,
		                           &errors[i]);
}

/* ---------------------------------------------------------- DSNs due */

/* The message ids a statement with a LIMIT ?1 selects. */
static int
select_ids(struct spool *sp, enum spool_stmt which, size_t max,
           char (**ids_r)[SPOOL_ID_SIZE], size_t *n_r, char **error_r)
{
	sqlite3_stmt *st = sp->st[which];
	char(*ids)[SPOOL_ID_SIZE] = NULL;
	size_t n = 0;
	int rc;

	*ids_r = NULL;
	*n_r = 0;
	if (max == 0)
		return 0;
	sqlite3_bind_int64(st, 1, to_i64(max));
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *id = (const char *)sqlite3_column_text(st, 0);

		if (!id_valid(id)) {
			log_error(NULL, "event=spool_bad_row id=%s",
			          id != NULL ? id : "");
			continue;
		}
		ids = xreallocarray(ids, n + 1, sizeof(*ids));
		memcpy(ids[n++], id, SPOOL_ID_SIZE);
	}
	if (rc != SQLITE_DONE) {
		db_error(sp, spool_sql[which], error_r);
		st_done(st);
		free(ids);
		return -1;
	}
	st_done(st);
	*ids_r = ids;
	*n_r = n;
	return 0;
}

int
spool_dsn_due(struct spool *sp, size_t max, char (**ids_r)[SPOOL_ID_SIZE],
              size_t *n_r, char **error_r)
{
	return select_ids(sp, ST_DSN_DUE, max, ids_r, n_r, error_r);
}

int
spool_sign_due(struct spool *sp, size_t max, char (**ids_r)[SPOOL_ID_SIZE],
               size_t *n_r, char **error_r)
{
	return select_ids(sp, ST_SIGN_DUE, max, ids_r, n_r, error_r);
}

int
spool_sign_done(struct spool *sp, const char *id, const char *fields,
                char **error_r)
{
	if (check_id(id, error_r) < 0)
		return -1;
	bind_text(sp->st[ST_SIGN_DONE], 1, id);
	bind_text(sp->st[ST_SIGN_DONE], 2, fields);
	if (st_exec(sp, ST_SIGN_DONE, error_r) < 0)
		return -1;
	return sqlite3_changes(sp->db) > 0 ? 0 : 1;
}

int
spool_dsn_rcpts(struct spool *sp, const char *id,
                struct spool_dsn_rcpt **rcpts_r, size_t *n_r, char **error_r)
{
	sqlite3_stmt *st = sp->st[ST_DSN_RCPTS];
	struct spool_dsn_rcpt *rcpts = NULL, *r;
	size_t n = 0;
	int rc;

	*rcpts_r = NULL;
	*n_r = 0;
	if (check_id(id, error_r) < 0)
		return -1;
	bind_text(st, 1, id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		rcpts = xreallocarray(rcpts, n + 1, sizeof(*rcpts));
		r = &rcpts[n++];
		memset(r, 0, sizeof(*r));
		if (col_strdup(st, 0, &r->address) < 0 || r->address == NULL ||
		    col_strdup(st, 1, &r->orcpt) < 0 ||
		    col_strdup(st, 4, &r->status) < 0 ||
		    col_strdup(st, 5, &r->diagnostic) < 0 ||
		    col_strdup(st, 6, &r->remote_mta) < 0) {
			*error_r = xstrdup("out of memory reading queue.db");
			st_done(st);
			spool_dsn_rcpts_free(&rcpts, n);
			return -1;
		}
		r->state = state_of_db(sqlite3_column_int64(st, 2));
		r->relayed = sqlite3_column_int(st, 3) != 0;
		r->last_try_ms = col_u64(st, 7);
	}
	if (rc != SQLITE_DONE) {
		db_error(sp, spool_sql[ST_DSN_RCPTS], error_r);
		st_done(st);
		spool_dsn_rcpts_free(&rcpts, n);
		return -1;
	}
	st_done(st);
	*rcpts_r = rcpts;
	*n_r = n;
	return 0;
}

void
spool_dsn_rcpts_free(struct spool_dsn_rcpt **rcpts, size_t n)
{
	size_t i;

	if (*rcpts == NULL)
		return;
	for (i = 0; i < n; i++) {
		struct spool_dsn_rcpt *r = &(*rcpts)[i];

		free(r->address);
		free(r->orcpt);
		free(r->status);
		free(r->diagnostic);
		free(r->remote_mta);
	}
	xfree(rcpts);
}

/* 0, 1 when there is no such message (deleted meanwhile), -1. */
int
spool_dsn_done(struct spool *sp, const char *id, char **error_r)
{
	bool exists, removed;
	int changed;

	if (check_id(id, error_r) < 0 || st_exec(sp, ST_BEGIN, error_r) < 0)
		return -1;
	if (message_exists(sp, id, &exists, error_r) < 0)
		goto fail;
	if (!exists) {
		rollback(sp);
		return 1;
	}
	bind_text(sp->st[ST_DSN_CLEAR], 1, id);
	if (st_exec(sp, ST_DSN_CLEAR, error_r) < 0)
		goto fail;
	changed = sqlite3_changes(sp->db);
	if (drop_if_done(sp, id, &removed, error_r) < 0 ||
	    commit(sp, error_r) < 0)
		goto fail;
	log_info(id, "event=spool_dsn_done rcpts=%d", changed);
	if (removed)
		remove_file(sp, id);
	return 0;
fail:
	rollback(sp);
	return -1;
}

/* ------------------------------------------------- the operator's view */

static void
rcpt_info_clear(struct spool_rcpt_info *r)
{
	free(r->address);
	free(r->orcpt);
	free(r->diagnostic);
	free(r->remote_mta);
	free(r->sender);
}

void
spool_info_clear(struct spool_info *info)
{
	size_t i;

	free(info->mail_from);
	free(info->auth_user);
	free(info->client_ip);
	for (i = 0; i < info->nrcpts; i++)
		rcpt_info_clear(&info->rcpts[i]);
	free(info->rcpts);
	memset(info, 0, sizeof(*info));
}

void
spool_list_free(struct spool_info **list, size_t n)
{
	size_t i;

	if (*list == NULL)
		return;
	for (i = 0; i < n; i++)
		spool_info_clear(&(*list)[i]);
	xfree(list);
}

/* The recipients of info->id, and the counts made from them. */
static int
info_rcpts(struct spool *sp, struct spool_info *info, char **error_r)
{
	sqlite3_stmt *st = sp->st[ST_INFO_RCPTS];
	struct spool_rcpt_info *r;
	int rc;

	bind_text(st, 1, info->id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		info->rcpts = xreallocarray(info->rcpts, info->nrcpts + 1,
		                            sizeof(*info->rcpts));
		r = &info->rcpts[info->nrcpts++];
		memset(r, 0, sizeof(*r));
		if (col_strdup(st, 0, &r->address) < 0 || r->address == NULL ||
		    col_strdup(st, 1, &r->orcpt) < 0 ||
		    col_strdup(st, 7, &r->diagnostic) < 0 ||
		    col_strdup(st, 8, &r->remote_mta) < 0 ||
		    col_strdup(st, 9, &r->sender) < 0) {
			*error_r = xstrdup("out of memory reading queue.db");
			st_done(st);
			return -1;
		}
		r->local = sqlite3_column_int(st, 2) != 0;
		r->forwarded = sqlite3_column_int(st, 10) != 0;
		r->state = state_of_db(sqlite3_column_int64(st, 3));
		r->attempts = col_uint(st, 4);
		r->next_try_ms = col_u64(st, 5);
		r->last_try_ms = col_u64(st, 6);
		if (r->state == SPOOL_RCPT_PENDING) {
			info->npending++;
			if (info->next_try_ms == 0 ||
			    r->next_try_ms < info->next_try_ms)
				info->next_try_ms = r->next_try_ms;
		}
	}
	if (rc != SQLITE_DONE) {
		db_error(sp, spool_sql[ST_INFO_RCPTS], error_r);
		st_done(st);
		return -1;
	}
	st_done(st);
	return 0;
}

/* The message row st is on (ST_INFO_LIST or ST_INFO_GET), then its
 * recipients. 1: a row with a bad id (logged, skipped). */
static int
info_read(struct spool *sp, sqlite3_stmt *st, struct spool_info *info,
          char **error_r)
{
	const char *id = (const char *)sqlite3_column_text(st, 0);

	memset(info, 0, sizeof(*info));
	if (!id_valid(id)) {
		log_error(NULL, "event=spool_bad_row id=%s",
		          id != NULL ? id : "");
		return 1;
	}
	memcpy(info->id, id, SPOOL_ID_SIZE);
	if (col_strdup(st, 1, &info->mail_from) < 0 ||
	    info->mail_from == NULL ||
	    col_strdup(st, 2, &info->auth_user) < 0 ||
	    col_strdup(st, 3, &info->client_ip) < 0) {
		*error_r = xstrdup("out of memory reading queue.db");
		return -1;
	}
	info->size = col_u64(st, 4);
	info->created_ms = col_u64(st, 5);
	info->held = sqlite3_column_int(st, 6) != 0;
	info->signing = (sqlite3_column_int64(st, 7) & SPOOL_FLAG_SIGN) != 0;
	return info_rcpts(sp, info, error_r);
}

/* The end of a read transaction; nothing to lose when it fails. */
static void
end_read(struct spool *sp)
{
	char *error = NULL;

	if (sqlite3_get_autocommit(sp->db))
		return;
	if (st_exec(sp, ST_COMMIT, &error) < 0) {
		free(error);
		rollback(sp);
	}
}

int
spool_list(struct spool *sp, struct spool_info **list_r, size_t *n_r,
           char **error_r)
{
	sqlite3_stmt *st = sp->st[ST_INFO_LIST];
	struct spool_info *list = NULL;
	size_t n = 0;
	int rc;

	*list_r = NULL;
	*n_r = 0;
	if (st_exec(sp, ST_BEGIN_READ, error_r) < 0)
		return -1;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		list = xreallocarray(list, n + 1, sizeof(*list));
		rc = info_read(sp, st, &list[n], error_r);
		if (rc < 0) {
			spool_info_clear(&list[n]);
			st_done(st);
			spool_list_free(&list, n);
			end_read(sp);
			return -1;
		}
		if (rc == 0)
			n++;
	}
	if (rc != SQLITE_DONE) {
		db_error(sp, spool_sql[ST_INFO_LIST], error_r);
		st_done(st);
		spool_list_free(&list, n);
		end_read(sp);
		return -1;
	}
	st_done(st);
	end_read(sp);
	*list_r = list;
	*n_r = n;
	return 0;
}

int
spool_show(struct spool *sp, const char *id, struct spool_info *info_r,
           char **error_r)
{
	sqlite3_stmt *st = sp->st[ST_INFO_GET];
	int rc;

	memset(info_r, 0, sizeof(*info_r));
	if (check_id(id, error_r) < 0 ||
	    st_exec(sp, ST_BEGIN_READ, error_r) < 0)
		return -1;
	bind_text(st, 1, id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		rc = info_read(sp, st, info_r, error_r);
		if (rc != 0)
			spool_info_clear(info_r);
		if (rc > 0) {
			*error_r = xasprintf("%s: bad row", id);
			rc = -1;
		}
	} else if (rc == SQLITE_DONE) {
		rc = 1;
	} else {
		db_error(sp, spool_sql[ST_INFO_GET], error_r);
		rc = -1;
	}
	st_done(st);
	end_read(sp);
	return rc;
}

int
spool_hold(struct spool *sp, const char *id, bool hold, char **error_r)
{
	sqlite3_stmt *st = sp->st[ST_HOLD];

	if (check_id(id, error_r) < 0)
		return -1;
	/* One statement: its own transaction. */
	bind_text(st, 1, id);
	sqlite3_bind_int(st, 2, hold ? 1 : 0);
	if (st_exec(sp, ST_HOLD, error_r) < 0)
		return -1;
	if (sqlite3_changes(sp->db) == 0)
		return 1;
	log_notice(id, "event=spool_%s", hold ? "held" : "released");
	return 0;
}

/* A held message is left as it is (0): release it first. */
int
spool_retry_now(struct spool *sp, const char *id, char **error_r)
{
	sqlite3_stmt *st = sp->st[ST_HELD];
	int rc, changed;
	bool held;

	if (check_id(id, error_r) < 0 || st_exec(sp, ST_BEGIN, error_r) < 0)
		return -1;
	bind_text(st, 1, id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		st_done(st);
		rollback(sp);
		return 1;
	}
	if (rc != SQLITE_ROW) {
		db_error(sp, spool_sql[ST_HELD], error_r);
		st_done(st);
		goto fail;
	}
	held = sqlite3_column_int(st, 0) != 0;
	st_done(st);
	if (held) {
		rollback(sp);
		log_info(id, "event=spool_retry_ignored reason=held");
		return 0;
	}
	bind_text(sp->st[ST_RETRY_NOW], 1, id);
	if (st_exec(sp, ST_RETRY_NOW, error_r) < 0)
		goto fail;
	changed = sqlite3_changes(sp->db);
	if (commit(sp, error_r) < 0)
		return -1;
	log_notice(id, "event=spool_retry_now rcpts=%d", changed);
	return 0;
fail:
	rollback(sp);
	return -1;
}

int
spool_delete(struct spool *sp, const char *id, char **error_r)
{
	if (check_id(id, error_r) < 0)
		return -1;
	/* One statement (the recipients go by ON DELETE CASCADE): its own
	 * transaction. */
	bind_text(sp->st[ST_MSG_DELETE], 1, id);
	if (st_exec(sp, ST_MSG_DELETE, error_r) < 0)
		return -1;
	if (sqlite3_changes(sp->db) == 0)
		return 1;
	log_notice(id, "event=spool_deleted");
	remove_file(sp, id);
	return 0;
}

/* *n_r counts the messages that changed (already held ones are not
 * counted again). */
int
spool_hold_user(struct spool *sp, const char *user, bool hold, size_t *n_r,
                char **error_r)
{
	sqlite3_stmt *st = sp->st[ST_HOLD_USER];
	int changed;

	*n_r = 0;
	if (user == NULL) {
		*error_r = xstrdup("no user");
		return -1;
	}
	bind_text(st, 1, user);
	sqlite3_bind_int(st, 2, hold ? 1 : 0);
	if (st_exec(sp, ST_HOLD_USER, error_r) < 0)
		return -1;
	changed = sqlite3_changes(sp->db);
	*n_r = changed > 0 ? (size_t)changed : 0;
	if (changed > 0)
		log_notice(NULL, "event=spool_%s_user user=%s messages=%d",
		           hold ? "held" : "released", user, changed);
	return 0;
}

uint64_t
spool_retry_delay_ms(uint64_t first_ms, uint64_t max_ms, unsigned attempts)
{
	uint64_t d = first_ms;

	/* Doubling stops at max_ms, long before d could overflow. */
	for (unsigned i = 1; i < attempts && d < max_ms; i++)
		d *= 2;
	return d < max_ms ? d : max_ms;
}

/* *pending_r counts pending recipients (every message has at least one). */
int
spool_count(struct spool *sp, size_t *messages_r, size_t *pending_r,
            char **error_r)
{
	int64_t messages, pending;

	if (st_int(sp, ST_COUNT_MSGS, &messages, error_r) < 0 ||
	    st_int(sp, ST_COUNT_PENDING, &pending, error_r) < 0)
		return -1;
	*messages_r = (size_t)messages;
	*pending_r = (size_t)pending;
	return 0;
}
