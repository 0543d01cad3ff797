/* The mailbox index (index.db in the user's directory): schema, forward
 * migrations, prepared statements and the small queries the other mailbox
 * files share. WAL, synchronous=FULL, foreign keys, busy timeout; every
 * change runs in a BEGIN IMMEDIATE transaction.
 * SECURITY: names, keywords and cached values are bound parameters; the
 * file is created 0600 and opened with SQLITE_OPEN_NOFOLLOW. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/xmalloc.h"
#include "store/mailbox_int.h"

#define MI_BOX_COLS                                                            \
	"id, name, dir, uidvalidity, uidnext, highestmodseq, special,"         \
	" new_mtime, cur_mtime, n_messages, n_unseen, n_deleted, total_size"

/* Version 1. A later version adds a step to mi_migrations[]. */
static const char mi_schema_v1[] =
    "CREATE TABLE schema_version (version INTEGER NOT NULL);"
    "CREATE TABLE meta (key TEXT PRIMARY KEY NOT NULL,"
    " value INTEGER NOT NULL);"
    "CREATE TABLE mailboxes ("
    " id INTEGER PRIMARY KEY,"
    " name TEXT NOT NULL UNIQUE,"
    " dir TEXT NOT NULL UNIQUE,"
    " uidvalidity INTEGER NOT NULL,"
    " uidnext INTEGER NOT NULL,"
    " highestmodseq INTEGER NOT NULL,"
    " special INTEGER NOT NULL DEFAULT 0,"
    " created INTEGER NOT NULL,"
    " new_mtime INTEGER NOT NULL DEFAULT 0,"
    " cur_mtime INTEGER NOT NULL DEFAULT 0,"
    " n_messages INTEGER NOT NULL DEFAULT 0,"
    " n_unseen INTEGER NOT NULL DEFAULT 0,"
    " n_deleted INTEGER NOT NULL DEFAULT 0,"
    " total_size INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE messages ("
    " mailbox_id INTEGER NOT NULL REFERENCES mailboxes (id)"
    "  ON DELETE CASCADE,"
    " uid INTEGER NOT NULL,"
    " modseq INTEGER NOT NULL,"
    " flags INTEGER NOT NULL,"
    " keywords TEXT,"
    " internaldate INTEGER NOT NULL,"
    " size INTEGER NOT NULL,"
    " filename TEXT NOT NULL,"
    " PRIMARY KEY (mailbox_id, uid)) WITHOUT ROWID;"
    "CREATE INDEX messages_modseq ON messages (mailbox_id, modseq);"
    "CREATE TABLE expunged ("
    " mailbox_id INTEGER NOT NULL REFERENCES mailboxes (id)"
    "  ON DELETE CASCADE,"
    " uid INTEGER NOT NULL,"
    " modseq INTEGER NOT NULL,"
    " PRIMARY KEY (mailbox_id, uid)) WITHOUT ROWID;"
    "CREATE INDEX expunged_modseq ON expunged (mailbox_id, modseq);"
    "CREATE TABLE subscriptions (name TEXT PRIMARY KEY NOT NULL);"
    "CREATE TABLE keywords ("
    " mailbox_id INTEGER NOT NULL REFERENCES mailboxes (id)"
    "  ON DELETE CASCADE,"
    " name TEXT NOT NULL COLLATE NOCASE,"
    " PRIMARY KEY (mailbox_id, name));"
    "CREATE TABLE cache ("
    " mailbox_id INTEGER NOT NULL,"
    " uid INTEGER NOT NULL,"
    " field TEXT NOT NULL,"
    " value BLOB NOT NULL,"
    " PRIMARY KEY (mailbox_id, uid, field),"
    " FOREIGN KEY (mailbox_id, uid) REFERENCES messages (mailbox_id, uid)"
    "  ON DELETE CASCADE ON UPDATE CASCADE) WITHOUT ROWID;"
    /* The counters of each mailbox follow its messages. */
    "CREATE TRIGGER messages_ai AFTER INSERT ON messages BEGIN"
    " UPDATE mailboxes SET n_messages = n_messages + 1,"
    "  n_unseen = n_unseen + ((NEW.flags & 1) = 0),"
    "  n_deleted = n_deleted + ((NEW.flags & 8) != 0),"
    "  total_size = total_size + NEW.size"
    " WHERE id = NEW.mailbox_id; END;"
    "CREATE TRIGGER messages_ad AFTER DELETE ON messages BEGIN"
    " UPDATE mailboxes SET n_messages = n_messages - 1,"
    "  n_unseen = n_unseen - ((OLD.flags & 1) = 0),"
    "  n_deleted = n_deleted - ((OLD.flags & 8) != 0),"
    "  total_size = total_size - OLD.size"
    " WHERE id = OLD.mailbox_id; END;"
    "CREATE TRIGGER messages_au AFTER UPDATE OF mailbox_id, flags, size"
    " ON messages BEGIN"
    " UPDATE mailboxes SET n_messages = n_messages - 1,"
    "  n_unseen = n_unseen - ((OLD.flags & 1) = 0),"
    "  n_deleted = n_deleted - ((OLD.flags & 8) != 0),"
    "  total_size = total_size - OLD.size"
    " WHERE id = OLD.mailbox_id;"
    " UPDATE mailboxes SET n_messages = n_messages + 1,"
    "  n_unseen = n_unseen + ((NEW.flags & 1) = 0),"
    "  n_deleted = n_deleted + ((NEW.flags & 8) != 0),"
    "  total_size = total_size + NEW.size"
    " WHERE id = NEW.mailbox_id; END;"
    "INSERT INTO schema_version (version) VALUES (1);";

/* Version 2: a scan of files other tools left reads none of them; the
 * CRLF size of such a message is read when first asked for. */
static const char mi_schema_v2[] =
    "ALTER TABLE messages ADD COLUMN size_known INTEGER NOT NULL DEFAULT 1;"
    "CREATE INDEX messages_size_todo ON messages (mailbox_id, uid)"
    " WHERE size_known = 0;"
    "UPDATE schema_version SET version = 2;";

/* Version 3: the text index (mailbox_text.c). Messages already there are
 * indexed in the background (no text_next row: from UID 1). */
static const char mi_schema_v3[] =
    "CREATE VIRTUAL TABLE msgtext USING fts5(text, content='',"
    " detail=none, tokenize='unicode61 remove_diacritics 0');"
    "CREATE VIRTUAL TABLE msgtext_terms USING fts5vocab(msgtext, 'row');"
    "CREATE TABLE text_next ("
    " mailbox_id INTEGER PRIMARY KEY REFERENCES mailboxes (id)"
    "  ON DELETE CASCADE,"
    " uid INTEGER NOT NULL);"
    "UPDATE schema_version SET version = 3;";

/* mi_migrations[v] takes a version v index to v + 1. */
static const char *const mi_migrations[] = {
    [0] = mi_schema_v1,
    [1] = mi_schema_v2,
    [2] = mi_schema_v3,
};

static const char *const mi_sql[MI_ST_COUNT] = {
    [MI_BEGIN] = "BEGIN IMMEDIATE",
    [MI_COMMIT] = "COMMIT",
    [MI_ROLLBACK] = "ROLLBACK",
    [MI_META_GET] = "SELECT value FROM meta WHERE key = ?1",
    [MI_META_SET] = "INSERT INTO meta (key, value) VALUES (?1, ?2)"
                    " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    [MI_BOX_BY_NAME] = "SELECT " MI_BOX_COLS " FROM mailboxes WHERE name = ?1",
    [MI_BOX_BY_ID] = "SELECT " MI_BOX_COLS " FROM mailboxes WHERE id = ?1",
    [MI_BOX_BY_DIR] = "SELECT " MI_BOX_COLS " FROM mailboxes WHERE dir = ?1",
    [MI_BOX_ALL] = "SELECT " MI_BOX_COLS " FROM mailboxes",
    [MI_BOX_INSERT] = "INSERT INTO mailboxes (name, dir, uidvalidity, uidnext,"
                      " highestmodseq, special, created)"
                      " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    [MI_BOX_DELETE] = "DELETE FROM mailboxes WHERE id = ?1",
    [MI_BOX_RENAME] = "UPDATE mailboxes SET name = ?2, dir = ?3 WHERE id = ?1",
    [MI_BOX_SET_SPECIAL] = "UPDATE mailboxes SET special = ?2 WHERE id = ?1",
    [MI_BOX_COUNTERS] = "UPDATE mailboxes SET uidnext = ?2, highestmodseq = ?3"
                        " WHERE id = ?1",
    [MI_BOX_ADD_COUNTS] = "UPDATE mailboxes SET n_messages = n_messages + ?2,"
                          " n_unseen = n_unseen + ?3,"
                          " n_deleted = n_deleted + ?4,"
                          " total_size = total_size + ?5 WHERE id = ?1",
    [MI_BOX_STAMPS] = "UPDATE mailboxes SET new_mtime = ?2, cur_mtime = ?3"
                      " WHERE id = ?1",
    [MI_BOX_COUNT] = "SELECT count(*) FROM mailboxes",
    /* Children of "A": names in ["A/", "A0") ("0" follows "/"). */
    [MI_BOX_RANGE] = "SELECT " MI_BOX_COLS " FROM mailboxes"
                     " WHERE name >= ?1 AND name < ?2 ORDER BY name",
    [MI_USED] = "SELECT coalesce(sum(total_size), 0) FROM mailboxes",
    [MI_SUB_ALL] = "SELECT name FROM subscriptions",
    [MI_SUB_GET] = "SELECT 1 FROM subscriptions WHERE name = ?1",
    [MI_SUB_ADD] = "INSERT INTO subscriptions (name) VALUES (?1)"
                   " ON CONFLICT (name) DO NOTHING",
    [MI_SUB_DEL] = "DELETE FROM subscriptions WHERE name = ?1",
    [MI_SUB_RANGE] = "SELECT name FROM subscriptions"
                     " WHERE name = ?1 OR (name >= ?2 AND name < ?3)",
    [MI_SUB_RENAME] = "UPDATE OR REPLACE subscriptions SET name = ?2"
                      " WHERE name = ?1",
    [MI_MSG_LIST] = "SELECT uid, modseq, flags, keywords, internaldate, size,"
                    " size_known FROM messages WHERE mailbox_id = ?1"
                    " ORDER BY uid",
    /* INDEXED BY: for the ORDER BY, the planner would walk every row of
     * a big mailbox in UID order rather than sort the few changed ones. */
    [MI_MSG_CHANGED] = "SELECT uid, modseq, flags, keywords, internaldate,"
                       " size, size_known FROM messages"
                       " INDEXED BY messages_modseq"
                       " WHERE mailbox_id = ?1 AND modseq > ?2 ORDER BY uid",
    [MI_MSG_CHANGED_COUNT] = "SELECT count(*) FROM messages"
                             " WHERE mailbox_id = ?1 AND modseq > ?2",
    [MI_EXP_COUNT] = "SELECT count(*) FROM expunged"
                     " WHERE mailbox_id = ?1 AND modseq > ?2",
    [MI_CACHE_WINDOW] = "SELECT uid, value FROM cache WHERE mailbox_id = ?1"
                        " AND uid >= ?2 AND field = ?3 ORDER BY uid"
                        " LIMIT ?4",
    [MI_TEXT_INSERT] = "INSERT INTO msgtext (rowid, text) VALUES (?1, ?2)",
    [MI_TEXT_NEXT_GET] = "SELECT uid FROM text_next WHERE mailbox_id = ?1",
    [MI_TEXT_NEXT_SET] = "INSERT INTO text_next (mailbox_id, uid)"
                         " VALUES (?1, ?2) ON CONFLICT (mailbox_id)"
                         " DO UPDATE SET uid = excluded.uid",
    [MI_TEXT_LAGGING] = "SELECT b.id, b.dir, b.uidnext, coalesce(t.uid, 1)"
                        " FROM mailboxes b LEFT JOIN text_next t"
                        " ON t.mailbox_id = b.id"
                        " WHERE coalesce(t.uid, 1) < b.uidnext LIMIT 1",
    [MI_TEXT_TERMS] = "SELECT term FROM msgtext_terms"
                      " WHERE instr(term, ?1) > 0",
    [MI_TEXT_MATCH] = "SELECT rowid FROM msgtext WHERE msgtext MATCH ?1"
                      " AND rowid >= ?2 AND rowid <= ?3",
    /* One row per indexed message, counted from the b-tree (0.2 ms for
     * 100,000); the FTS5 table itself would be walked. */
    [MI_TEXT_ROWS] = "SELECT count(*) FROM msgtext_docsize",
    [MI_MSG_TOTAL] = "SELECT coalesce(sum(n_messages), 0) FROM mailboxes",
    [MI_MSG_WINDOW] = "SELECT uid, size, size_known, filename FROM messages"
                      " WHERE mailbox_id = ?1 AND uid >= ?2 ORDER BY uid"
                      " LIMIT ?3",
    [MI_EXP_SINCE] = "SELECT uid FROM expunged INDEXED BY expunged_modseq"
                     " WHERE mailbox_id = ?1 AND modseq > ?2 ORDER BY uid",
    [MI_MSG_GET] = "SELECT modseq, flags, keywords, internaldate, size,"
                   " filename, size_known FROM messages"
                   " WHERE mailbox_id = ?1 AND uid = ?2",
    [MI_MSG_FILES] = "SELECT uid, flags, filename FROM messages"
                     " WHERE mailbox_id = ?1",
    [MI_MSG_INSERT] = "INSERT INTO messages (mailbox_id, uid, modseq, flags,"
                      " keywords, internaldate, size, filename, size_known)"
                      " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    /* Not a change a client sees: no new MODSEQ. */
    [MI_MSG_SET_SIZE] = "UPDATE messages SET size = ?3, internaldate = ?4,"
                        " size_known = 1"
                        " WHERE mailbox_id = ?1 AND uid = ?2"
                        " AND size_known = 0",
    [MI_MSG_SIZE_TODO] = "SELECT uid FROM messages"
                         " WHERE mailbox_id = ?1 AND size_known = 0"
                         " ORDER BY uid",
    [MI_MSG_DELETE] = "DELETE FROM messages WHERE mailbox_id = ?1"
                      " AND uid = ?2",
    [MI_EXP_INSERT] = "INSERT OR REPLACE INTO expunged (mailbox_id, uid,"
                      " modseq) VALUES (?1, ?2, ?3)",
    [MI_MSG_SET_FLAGS] = "UPDATE messages SET flags = ?3, keywords = ?4,"
                         " modseq = ?5, filename = ?6"
                         " WHERE mailbox_id = ?1 AND uid = ?2",
    [MI_MSG_SET_NAME] = "UPDATE messages SET filename = ?3"
                        " WHERE mailbox_id = ?1 AND uid = ?2",
    [MI_MSG_SET_SYSFLAGS] = "UPDATE messages SET flags = ?3, modseq = ?4,"
                            " filename = ?5 WHERE mailbox_id = ?1 AND uid = ?2",
    [MI_MSG_DELETED] = "SELECT uid, filename FROM messages"
                       " WHERE mailbox_id = ?1 AND (flags & 8) != 0"
                       " ORDER BY uid",
    [MI_MSG_MOVE_ALL] = "UPDATE messages SET mailbox_id = ?2"
                        " WHERE mailbox_id = ?1",
    [MI_EXP_ALL] = "INSERT OR REPLACE INTO expunged (mailbox_id, uid, modseq)"
                   " SELECT mailbox_id, uid, ?2 FROM messages"
                   " WHERE mailbox_id = ?1",
    [MI_MSG_MAXUID] = "SELECT coalesce(max(uid), 0) FROM messages"
                      " WHERE mailbox_id = ?1",
    [MI_KW_COUNT] = "SELECT count(*) FROM keywords WHERE mailbox_id = ?1",
    [MI_KW_GET] = "SELECT name FROM keywords WHERE mailbox_id = ?1"
                  " AND name = ?2",
    [MI_KW_ADD] = "INSERT INTO keywords (mailbox_id, name) VALUES (?1, ?2)",
    [MI_KW_COPY] = "INSERT OR IGNORE INTO keywords (mailbox_id, name)"
                   " SELECT ?2, name FROM keywords WHERE mailbox_id = ?1",
    [MI_CACHE_GET] = "SELECT value FROM cache WHERE mailbox_id = ?1"
                     " AND uid = ?2 AND field = ?3",
    [MI_CACHE_SET] = "INSERT OR REPLACE INTO cache (mailbox_id, uid, field,"
                     " value) VALUES (?1, ?2, ?3, ?4)",
    [MI_CACHE_COPY] = "INSERT OR REPLACE INTO cache (mailbox_id, uid, field,"
                      " value) SELECT ?3, ?4, field, value FROM cache"
                      " WHERE mailbox_id = ?1 AND uid = ?2",
    [MI_RECOUNT] =
        "UPDATE mailboxes SET"
        " n_messages = (SELECT count(*) FROM messages m"
        "  WHERE m.mailbox_id = mailboxes.id),"
        " n_unseen = (SELECT count(*) FROM messages m"
        "  WHERE m.mailbox_id = mailboxes.id AND (m.flags & 1) = 0),"
        " n_deleted = (SELECT count(*) FROM messages m"
        "  WHERE m.mailbox_id = mailboxes.id AND (m.flags & 8) != 0),"
        " total_size = (SELECT coalesce(sum(size), 0) FROM messages m"
        "  WHERE m.mailbox_id = mailboxes.id)",
};

int
mi_err(char **error_r, int code, const char *fmt, ...)
{
	va_list ap;

	if (error_r != NULL) {
		va_start(ap, fmt);
		*error_r = xvasprintf(fmt, ap);
		va_end(ap);
	}
	return code;
}

int
mi_syserr(char **error_r, const char *fmt, ...)
{
	int err = errno;
	va_list ap;
	char *what;

	if (error_r == NULL)
		return MBOX_ERR_TEMP;
	va_start(ap, fmt);
	what = xvasprintf(fmt, ap);
	va_end(ap);
	*error_r = xasprintf("%s: %s", what, strerror(err));
	free(what);
	return MBOX_ERR_TEMP;
}

int
mi_dberr(struct mbox_user *u, char **error_r, const char *what)
{
	return mi_err(error_r, MBOX_ERR_TEMP, "%s/%s: %s: %s", u->dir,
	              MI_DB_NAME, what,
	              u->db != NULL ? sqlite3_errmsg(u->db) : "not open");
}

sqlite3_stmt *
mi_st(struct mbox_user *u, enum mi_st which, char **error_r)
{
	if (u->db == NULL) {
		/* Closed while its session was idle (mbox_user_trim). */
		bool created;

		if (mi_db_open(u, &created, error_r) != MBOX_OK) {
			mi_db_close(u);
			return NULL;
		}
		if (created) {
			mi_rollback(u);
			mi_db_close(u);
			mi_err(error_r, MBOX_ERR_TEMP, "%s/%s vanished", u->dir,
			       MI_DB_NAME);
			return NULL;
		}
	}
	if (u->st[which] == NULL &&
	    sqlite3_prepare_v3(u->db, mi_sql[which], -1,
	                       SQLITE_PREPARE_PERSISTENT, &u->st[which],
	                       NULL) != SQLITE_OK) {
		mi_dberr(u, error_r, mi_sql[which]);
		return NULL;
	}
	return u->st[which];
}

void
mi_done(sqlite3_stmt *st)
{
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
}

int
mi_step_done(struct mbox_user *u, sqlite3_stmt *st, char **error_r)
{
	int rc = sqlite3_step(st);

	if (rc != SQLITE_DONE) {
		mi_dberr(u, error_r, sqlite3_sql(st));
		mi_done(st);
		return MBOX_ERR_TEMP;
	}
	mi_done(st);
	return MBOX_OK;
}

int
mi_step_int(struct mbox_user *u, sqlite3_stmt *st, int64_t *v_r, char **error_r)
{
	int rc = sqlite3_step(st);

	*v_r = 0;
	if (rc == SQLITE_ROW) {
		*v_r = sqlite3_column_int64(st, 0);
		rc = sqlite3_step(st);
	}
	if (rc != SQLITE_DONE) {
		mi_dberr(u, error_r, sqlite3_sql(st));
		mi_done(st);
		return MBOX_ERR_TEMP;
	}
	mi_done(st);
	return MBOX_OK;
}

static int
mi_exec_st(struct mbox_user *u, enum mi_st which, char **error_r)
{
	sqlite3_stmt *st = mi_st(u, which, error_r);

	if (st == NULL)
		return MBOX_ERR_TEMP;
	return mi_step_done(u, st, error_r);
}

int
mi_begin(struct mbox_user *u, char **error_r)
{
	int rc = mi_exec_st(u, MI_BEGIN, error_r);

	if (rc == MBOX_OK && u->ncw > 0)
		mi_cache_write_pending(u);
	return rc;
}

/* After a transaction whose commit was not to checkpoint: the next one
 * does (the bulk insert of mi_msg_insert_many). */
static void
mi_ckpt_restore(struct mbox_user *u)
{
	if (!u->ckpt_later || u->db == NULL)
		return;
	(void)sqlite3_wal_autocheckpoint(u->db, MI_WAL_AUTOCHECKPOINT);
	u->ckpt_later = false;
}

void
mi_rollback(struct mbox_user *u)
{
	u->text_gone = false;
	if (u->db == NULL || sqlite3_get_autocommit(u->db)) {
		mi_ckpt_restore(u);
		return; /* SQLite rolled back already */
	}
	if (mi_exec_st(u, MI_ROLLBACK, NULL) != MBOX_OK)
		(void)sqlite3_exec(u->db, "ROLLBACK", NULL, NULL, NULL);
	mi_ckpt_restore(u);
}

int
mi_commit(struct mbox_user *u, char **error_r)
{
	/* The text index keeps the rows of messages that went: the
	 * background job builds it again once they are too many. */
	if (u->text_gone) {
		u->text_gone = false;
		if (mi_text_prune_due(u))
			u->text_lag = true;
	}
	if (mi_exec_st(u, MI_COMMIT, error_r) != MBOX_OK) {
		mi_rollback(u);
		return MBOX_ERR_TEMP;
	}
	mi_ckpt_restore(u);
	return MBOX_OK;
}

int
mi_meta_get(struct mbox_user *u, const char *key, int64_t *v_r, char **error_r)
{
	sqlite3_stmt *st = mi_st(u, MI_META_GET, error_r);

	if (st == NULL)
		return MBOX_ERR_TEMP;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	return mi_step_int(u, st, v_r, error_r);
}

int
mi_meta_set(struct mbox_user *u, const char *key, int64_t v, char **error_r)
{
	sqlite3_stmt *st = mi_st(u, MI_META_SET, error_r);

	if (st == NULL)
		return MBOX_ERR_TEMP;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, v);
	return mi_step_done(u, st, error_r);
}

static char *
mi_col_strdup(sqlite3_stmt *st, int i)
{
	const unsigned char *v = sqlite3_column_text(st, i);

	return xstrdup(v != NULL ? (const char *)v : "");
}

void
mi_box_from_row(sqlite3_stmt *st, struct mi_box *b)
{
	int64_t special = sqlite3_column_int64(st, 6);

	b->id = sqlite3_column_int64(st, 0);
	b->name = mi_col_strdup(st, 1);
	b->dir = mi_col_strdup(st, 2);
	b->uidvalidity = (uint32_t)sqlite3_column_int64(st, 3);
	b->uidnext = (uint32_t)sqlite3_column_int64(st, 4);
	b->highestmodseq = (uint64_t)sqlite3_column_int64(st, 5);
	b->special =
	    special >= MBOX_SPECIAL_NONE && special <= MBOX_SPECIAL_ARCHIVE
	        ? (enum mbox_special)special
	        : MBOX_SPECIAL_NONE;
	b->new_mtime = sqlite3_column_int64(st, 7);
	b->cur_mtime = sqlite3_column_int64(st, 8);
	b->messages = (uint32_t)sqlite3_column_int64(st, 9);
	b->unseen = (uint32_t)sqlite3_column_int64(st, 10);
	b->deleted = (uint32_t)sqlite3_column_int64(st, 11);
	b->size = (uint64_t)sqlite3_column_int64(st, 12);
}

void
mi_box_clear(struct mi_box *b)
{
	free(b->name);
	free(b->dir);
	*b = (struct mi_box){0};
}

/* Run a bound MI_BOX_BY_* statement. */
static int
mi_box_get(struct mbox_user *u, sqlite3_stmt *st, struct mi_box *b,
           char **error_r)
{
	int rc = sqlite3_step(st);

	*b = (struct mi_box){0};
	if (rc == SQLITE_ROW) {
		mi_box_from_row(st, b);
		mi_done(st);
		return MBOX_OK;
	}
	if (rc != SQLITE_DONE) {
		mi_dberr(u, error_r, sqlite3_sql(st));
		mi_done(st);
		return MBOX_ERR_TEMP;
	}
	mi_done(st);
	return MBOX_ERR_NOTFOUND;
}

int
mi_box_by_name(struct mbox_user *u, const char *name, struct mi_box *b,
               char **error_r)
{
	sqlite3_stmt *st = mi_st(u, MI_BOX_BY_NAME, error_r);
	int rc;

	if (st == NULL)
		return MBOX_ERR_TEMP;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	rc = mi_box_get(u, st, b, error_r);
	if (rc == MBOX_ERR_NOTFOUND)
		mi_err(error_r, rc, "no mailbox %s", name);
	return rc;
}

int
mi_box_by_id(struct mbox_user *u, int64_t id, struct mi_box *b, char **error_r)
{
	sqlite3_stmt *st = mi_st(u, MI_BOX_BY_ID, error_r);
	int rc;

	if (st == NULL)
		return MBOX_ERR_TEMP;
	sqlite3_bind_int64(st, 1, id);
	rc = mi_box_get(u, st, b, error_r);
	if (rc == MBOX_ERR_NOTFOUND)
		mi_err(error_r, rc, "mailbox deleted");
	return rc;
}

int
mi_box_by_dir(struct mbox_user *u, const char *dir, struct mi_box *b,
              char **error_r)
{
	sqlite3_stmt *st = mi_st(u, MI_BOX_BY_DIR, error_r);
	int rc;

	if (st == NULL)
		return MBOX_ERR_TEMP;
	sqlite3_bind_text(st, 1, dir, -1, SQLITE_STATIC);
	rc = mi_box_get(u, st, b, error_r);
	if (rc == MBOX_ERR_NOTFOUND)
		mi_err(error_r, rc, "no mailbox in %s", dir);
	return rc;
}

/* The last UIDVALIDITY is also kept in a small file beside index.db, so
 * that an index rebuilt from scratch (lost or corrupt) never hands out a
 * value the old one used, even within the same second. */
static int64_t
mi_uidv_file_read(struct mbox_user *u)
{
	char text[32];
	ssize_t r;
	int fd =
	    openat(u->dirfd, MI_UIDV_FILE, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0)
		return 0;
	r = read(fd, text, sizeof(text) - 1);
	close(fd);
	if (r <= 0)
		return 0;
	text[r] = '\0';
	return strtoll(text, NULL, 10);
}

/* Best effort (the index is the authority): tmp file, rename. */
static void
mi_uidv_file_write(struct mbox_user *u, int64_t v)
{
	char text[32];
	int len = snprintf(text, sizeof(text), "%lld\n", (long long)v);
	int fd =
	    openat(u->dirfd, MI_UIDV_FILE ".tmp",
	           O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);

	if (fd < 0)
		return;
	if (len > 0 && write(fd, text, (size_t)len) == len && close(fd) == 0)
		(void)renameat(u->dirfd, MI_UIDV_FILE ".tmp", u->dirfd,
		               MI_UIDV_FILE);
	else
		close(fd);
}

int
mi_new_uidvalidity(struct mbox_user *u, uint32_t *v_r, char **error_r)
{
	int64_t last, file, now = (int64_t)time(NULL);
	int rc;

	if ((rc = mi_meta_get(u, "uidvalidity", &last, error_r)) != MBOX_OK)
		return rc;
	if ((file = mi_uidv_file_read(u)) > last && file <= UINT32_MAX)
		last = file;
	if (now <= last)
		now = last + 1;
	/* 32 bits, never 0; wraps in 2106 (then simply counts up from 1). */
	if (now > (int64_t)UINT32_MAX || now < 1)
		now = 1;
	*v_r = (uint32_t)now;
	mi_uidv_file_write(u, now);
	return mi_meta_set(u, "uidvalidity", now, error_r);
}

int
mi_box_insert(struct mbox_user *u, const char *name, const char *dir,
              enum mbox_special special, uint32_t uidvalidity, uint32_t uidnext,
              uint64_t modseq, int64_t *id_r, char **error_r)
{
	sqlite3_stmt *st = mi_st(u, MI_BOX_INSERT, error_r);
	int rc;

	if (st == NULL)
		return MBOX_ERR_TEMP;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, dir, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, uidvalidity);
	sqlite3_bind_int64(st, 4, uidnext);
	sqlite3_bind_int64(st, 5, (sqlite3_int64)modseq);
	sqlite3_bind_int(st, 6, (int)special);
	sqlite3_bind_int64(st, 7, (sqlite3_int64)time(NULL));
	if ((rc = mi_step_done(u, st, error_r)) != MBOX_OK)
		return rc;
	if (id_r != NULL)
		*id_r = sqlite3_last_insert_rowid(u->db);
	return MBOX_OK;
}

int
mi_box_set_counters(struct mbox_user *u, int64_t id, uint32_t uidnext,
                    uint64_t modseq, char **error_r)
{
	sqlite3_stmt *st = mi_st(u, MI_BOX_COUNTERS, error_r);

	if (st == NULL)
		return MBOX_ERR_TEMP;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, uidnext);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)modseq);
	return mi_step_done(u, st, error_r);
}

int
mi_quota_check(struct mbox_user *u, uint64_t add, char **error_r)
{
	sqlite3_stmt *st;
	int64_t used;
	int rc;

	if (u->quota == 0)
		return MBOX_OK;
	if ((st = mi_st(u, MI_USED, error_r)) == NULL)
		return MBOX_ERR_TEMP;
	if ((rc = mi_step_int(u, st, &used, error_r)) != MBOX_OK)
		return rc;
	if (used < 0)
		used = 0;
	if (add > u->quota || (uint64_t)used > u->quota - add)
		return mi_err(error_r, MBOX_ERR_QUOTA,
		              "quota exceeded: %lld used + %llu > %llu",
		              (long long)used, (unsigned long long)add,
		              (unsigned long long)u->quota);
	return MBOX_OK;
}

/* An IMAP atom character that may be in a keyword. */
static bool
mi_kw_char(unsigned char c)
{
	if (c <= 0x20 || c >= 0x7f)
		return false;
	return strchr("(){%*\"\\]", c) == NULL;
}

static bool
mi_kw_one_valid(const char *s, size_t len)
{
	if (len == 0 || len > MBOX_KEYWORD_LEN_MAX || s[0] == '\\')
		return false;
	for (size_t i = 0; i < len; i++)
		if (!mi_kw_char((unsigned char)s[i]))
			return false;
	return true;
}

bool
mi_keywords_valid(const char *kw)
{
	const char *p = kw;

	if (kw == NULL)
		return true;
	while (*p != '\0') {
		size_t len;

		while (*p == ' ')
			p++;
		if (*p == '\0')
			break;
		len = strcspn(p, " ");
		if (!mi_kw_one_valid(p, len))
			return false;
		p += len;
	}
	return true;
}

/* Whether the space-separated list holds word (case-insensitive). */
static bool
mi_kw_has(const char *list, size_t listlen, const char *word, size_t len)
{
	size_t i = 0;

	while (i < listlen) {
		size_t n = 0;

		while (i + n < listlen && list[i + n] != ' ')
			n++;
		if (n == len && strncasecmp(list + i, word, len) == 0)
			return true;
		i += n + 1;
	}
	return false;
}

int
mi_keywords_register(struct mbox_user *u, int64_t id, const char *kw,
                     char **canon_r, char **error_r)
{
	struct buf out;
	sqlite3_stmt *get, *add, *count;
	const char *p = kw;
	int rc = MBOX_OK;

	*canon_r = NULL;
	if (kw == NULL)
		return MBOX_OK;
	if (!mi_keywords_valid(kw))
		return mi_err(error_r, MBOX_ERR_BADNAME, "invalid keyword");
	if ((get = mi_st(u, MI_KW_GET, error_r)) == NULL ||
	    (add = mi_st(u, MI_KW_ADD, error_r)) == NULL ||
	    (count = mi_st(u, MI_KW_COUNT, error_r)) == NULL)
		return MBOX_ERR_TEMP;
	buf_init(&out, 0);
	while (*p != '\0' && rc == MBOX_OK) {
		size_t len;
		char *word;
		int step;

		while (*p == ' ')
			p++;
		if (*p == '\0')
			break;
		len = strcspn(p, " ");
		word = xstrndup(p, len);
		p += len;
		if (mi_kw_has((const char *)out.data, out.len, word, len)) {
			free(word);
			continue;
		}
		sqlite3_bind_int64(get, 1, id);
		sqlite3_bind_text(get, 2, word, -1, SQLITE_STATIC);
		step = sqlite3_step(get);
		if (step == SQLITE_ROW) {
			const unsigned char *known =
			    sqlite3_column_text(get, 0);

			if (known != NULL && strlen((const char *)known) == len)
				memcpy(word, known, len);
			mi_done(get);
		} else if (step == SQLITE_DONE) {
			int64_t n;

			mi_done(get);
			sqlite3_bind_int64(count, 1, id);
			if ((rc = mi_step_int(u, count, &n, error_r)) !=
			    MBOX_OK) {
				free(word);
				break;
			}
			if (n >= MBOX_KEYWORDS_MAX) {
				rc = mi_err(error_r, MBOX_ERR_LIMIT,
				            "more than %d keywords",
				            MBOX_KEYWORDS_MAX);
				free(word);
				break;
			}
			sqlite3_bind_int64(add, 1, id);
			sqlite3_bind_text(add, 2, word, -1, SQLITE_STATIC);
			rc = mi_step_done(u, add, error_r);
		} else {
			rc = mi_dberr(u, error_r, "keywords");
			mi_done(get);
		}
		if (rc == MBOX_OK) {
			if (out.len > 0)
				(void)buf_append_byte(&out, ' ');
			(void)buf_append(&out, word, len);
		}
		free(word);
	}
	if (rc == MBOX_OK && out.len > 0)
		*canon_r = xstrndup((const char *)out.data, out.len);
	buf_free(&out);
	return rc;
}

int
mi_msg_insert(struct mbox_user *u, int64_t id, uint32_t uid, uint64_t modseq,
              uint32_t flags, const char *keywords, int64_t internaldate,
              uint64_t size, bool size_known, const char *filename,
              char **error_r)
{
	sqlite3_stmt *st = mi_st(u, MI_MSG_INSERT, error_r);

	if (st == NULL)
		return MBOX_ERR_TEMP;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, uid);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)modseq);
	sqlite3_bind_int64(st, 4, flags & MI_FLAGS_MASK);
	if (keywords != NULL)
		sqlite3_bind_text(st, 5, keywords, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, 5);
	sqlite3_bind_int64(st, 6, internaldate);
	sqlite3_bind_int64(st, 7, (sqlite3_int64)size);
	sqlite3_bind_text(st, 8, filename, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 9, size_known);
	return mi_step_done(u, st, error_r);
}

/* "INSERT INTO messages … VALUES (…), …" for MI_INSERT_ROWS rows:
 * ?1 the mailbox, ?2 the MODSEQ, then six per row. */
static char *
mi_insert_rows_sql(void)
{
	struct buf b;

	buf_init(&b, 0);
	buf_append_str(&b, "INSERT INTO messages (mailbox_id, uid, modseq,"
	                   " flags, keywords, internaldate, size, filename,"
	                   " size_known) VALUES ");
	for (int i = 0; i < MI_INSERT_ROWS; i++) {
		int p = 3 + 6 * i;

		buf_printf(&b, "%s(?1, ?%d, ?2, ?%d, NULL, ?%d, ?%d, ?%d, ?%d)",
		           i > 0 ? ", " : "", p, p + 1, p + 2, p + 3, p + 4,
		           p + 5);
	}
	buf_append_byte(&b, '\0');
	return (char *)b.data;
}

/* The SQL that made trigger name, or NULL. */
static char *
mi_trigger_sql(struct mbox_user *u, const char *name)
{
	sqlite3_stmt *st;
	char *sql = NULL;

	if (sqlite3_prepare_v2(u->db,
	                       "SELECT sql FROM sqlite_schema"
	                       " WHERE type = 'trigger' AND name = ?1",
	                       -1, &st, NULL) != SQLITE_OK)
		return NULL;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
		sql = xstrdup((const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	return sql;
}

/* The counters that trigger messages_ai would have added for rows. */
static int
mi_box_add_counts(struct mbox_user *u, int64_t id,
                  const struct mi_new_row *rows, size_t n, char **error_r)
{
	sqlite3_stmt *st = mi_st(u, MI_BOX_ADD_COUNTS, error_r);
	int64_t unseen = 0, deleted = 0, size = 0;

	if (st == NULL)
		return MBOX_ERR_TEMP;
	for (size_t i = 0; i < n; i++) {
		unseen += (rows[i].flags & MBOX_F_SEEN) == 0;
		deleted += (rows[i].flags & MBOX_F_DELETED) != 0;
		size += (int64_t)rows[i].size;
	}
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)n);
	sqlite3_bind_int64(st, 3, unseen);
	sqlite3_bind_int64(st, 4, deleted);
	sqlite3_bind_int64(st, 5, size);
	return mi_step_done(u, st, error_r);
}

static int mi_msg_insert_rows(struct mbox_user *u, int64_t id, uint64_t modseq,
                              const struct mi_new_row *rows, size_t n,
                              char **error_r);

int
mi_msg_insert_many(struct mbox_user *u, int64_t id, uint64_t modseq,
                   const struct mi_new_row *rows, size_t n, char **error_r)
{
	char *trigger;
	int rc;

	if (n < MI_BULK_ROWS)
		return mi_msg_insert_rows(u, id, modseq, rows, n, error_r);
	/* Many rows: the insert trigger is dropped for them and made again
	 * from its own SQL, all inside the caller's transaction, and the
	 * counters are added once. Its UPDATE per row was more than half of
	 * a first scan of 100,000 files. */
	if ((trigger = mi_trigger_sql(u, "messages_ai")) == NULL)
		return mi_dberr(u, error_r, "trigger messages_ai");
	if (sqlite3_exec(u->db, "DROP TRIGGER messages_ai", NULL, NULL, NULL) !=
	    SQLITE_OK) {
		free(trigger);
		return mi_dberr(u, error_r, "drop trigger messages_ai");
	}
	rc = mi_msg_insert_rows(u, id, modseq, rows, n, error_r);
	if (rc == MBOX_OK)
		rc = mi_box_add_counts(u, id, rows, n, error_r);
	/* The copy of these pages from the WAL into index.db is left to the
	 * next commit, off the first SELECT's path: that of the background
	 * job indexing their text, which a scan is followed by (30 ms for
	 * 100,000 rows). */
	(void)sqlite3_wal_autocheckpoint(u->db, 0);
	u->ckpt_later = true;
	if (rc == MBOX_OK &&
	    sqlite3_exec(u->db, trigger, NULL, NULL, NULL) != SQLITE_OK)
		rc = mi_dberr(u, error_r, "create trigger messages_ai");
	free(trigger);
	return rc;
}

static int
mi_msg_insert_rows(struct mbox_user *u, int64_t id, uint64_t modseq,
                   const struct mi_new_row *rows, size_t n, char **error_r)
{
	size_t i = 0;
	int rc = MBOX_OK;

	for (; n - i >= MI_INSERT_ROWS && rc == MBOX_OK; i += MI_INSERT_ROWS) {
		sqlite3_stmt *st = u->st[MI_MSG_INSERT_ROWS];

		if (st == NULL) {
			char *sql = mi_insert_rows_sql();
			int r = sqlite3_prepare_v3(
			    u->db, sql, -1, SQLITE_PREPARE_PERSISTENT,
			    &u->st[MI_MSG_INSERT_ROWS], NULL);

			free(sql);
			if (r != SQLITE_OK)
				return mi_dberr(u, error_r, "insert rows");
			st = u->st[MI_MSG_INSERT_ROWS];
		}
		sqlite3_bind_int64(st, 1, id);
		sqlite3_bind_int64(st, 2, (sqlite3_int64)modseq);
		for (int k = 0; k < MI_INSERT_ROWS; k++) {
			const struct mi_new_row *r = &rows[i + (size_t)k];
			int p = 3 + 6 * k;

			sqlite3_bind_int64(st, p, r->uid);
			sqlite3_bind_int64(st, p + 1, r->flags);
			sqlite3_bind_int64(st, p + 2, r->internaldate);
			sqlite3_bind_int64(st, p + 3, (sqlite3_int64)r->size);
			sqlite3_bind_text(st, p + 4, r->filename, -1,
			                  SQLITE_STATIC);
			sqlite3_bind_int(st, p + 5, r->size_known);
		}
		rc = mi_step_done(u, st, error_r);
	}
	for (; i < n && rc == MBOX_OK; i++)
		rc = mi_msg_insert(u, id, rows[i].uid, modseq, rows[i].flags,
		                   NULL, rows[i].internaldate, rows[i].size,
		                   rows[i].size_known, rows[i].filename,
		                   error_r);
	return rc;
}

int
mi_msg_expunge(struct mbox_user *u, int64_t id, uint32_t uid, uint64_t modseq,
               char **error_r)
{
	sqlite3_stmt *st = mi_st(u, MI_MSG_DELETE, error_r);
	int rc;

	if (st == NULL)
		return MBOX_ERR_TEMP;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, uid);
	if ((rc = mi_step_done(u, st, error_r)) != MBOX_OK)
		return rc;
	u->text_gone = true;
	if ((st = mi_st(u, MI_EXP_INSERT, error_r)) == NULL)
		return MBOX_ERR_TEMP;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, uid);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)modseq);
	return mi_step_done(u, st, error_r);
}

static int
mi_pragma_check(struct mbox_user *u, const char *sql, const char *want,
                char **error_r)
{
	sqlite3_stmt *st;
	bool ok;

	if (sqlite3_prepare_v2(u->db, sql, -1, &st, NULL) != SQLITE_OK)
		return mi_dberr(u, error_r, sql);
	ok = sqlite3_step(st) == SQLITE_ROW &&
	     sqlite3_column_text(st, 0) != NULL &&
	     strcmp((const char *)sqlite3_column_text(st, 0), want) == 0;
	sqlite3_finalize(st);
	if (!ok)
		return mi_err(error_r, MBOX_ERR_TEMP, "%s/%s: %s is not %s",
		              u->dir, MI_DB_NAME, sql, want);
	return MBOX_OK;
}

/* The schema version, 0 when the database is empty. */
static int
mi_schema_version(struct mbox_user *u, int *version_r, char **error_r)
{
	sqlite3_stmt *st;
	int rc;

	*version_r = 0;
	if (sqlite3_prepare_v2(
	        u->db,
	        "SELECT 1 FROM sqlite_master WHERE type = 'table'"
	        " AND name = 'schema_version'",
	        -1, &st, NULL) != SQLITE_OK)
		return mi_dberr(u, error_r, "sqlite_master");
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc == SQLITE_DONE)
		return MBOX_OK;
	if (rc != SQLITE_ROW)
		return mi_dberr(u, error_r, "sqlite_master");
	if (sqlite3_prepare_v2(u->db, "SELECT max(version) FROM schema_version",
	                       -1, &st, NULL) != SQLITE_OK)
		return mi_dberr(u, error_r, "schema_version");
	if (sqlite3_step(st) == SQLITE_ROW)
		*version_r = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return MBOX_OK;
}

int
mi_db_open(struct mbox_user *u, bool *created_r, char **error_r)
{
	char *path = xasprintf("%s/%s", u->dir, MI_DB_NAME);
	int fd, rc, version;

	*created_r = false;
	/* Create it 0600 ourselves: SQLite would use the umask, and its -wal
	 * and -shm files copy the database's mode. */
	fd = openat(u->dirfd, MI_DB_NAME,
	            O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		rc = mi_syserr(error_r, "open(%s)", path);
		free(path);
		return rc;
	}
	close(fd);
	rc = sqlite3_open_v2(path, &u->db,
	                     SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX |
	                         SQLITE_OPEN_NOFOLLOW,
	                     NULL);
	free(path);
	if (rc != SQLITE_OK)
		return mi_dberr(u, error_r, "open");
	sqlite3_extended_result_codes(u->db, 1);
	sqlite3_busy_timeout(u->db, MI_BUSY_MS);
	sqlite3_db_config(u->db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
	sqlite3_db_config(u->db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, NULL);
	/* cache_size: a big scan keeps its dirty pages instead of spilling
	 * them to the WAL again and again (the cache is given back after each
	 * command, mbox_user_trim). mmap_size: index.db's pages are read from
	 * the kernel's page cache, shared by every session, instead of being
	 * copied into each connection's (a warm SELECT of 100,000 messages
	 * read 7 MB each time). temp_store: statement journals (an INSERT
	 * with triggers has one) stay in memory instead of spilling to a
	 * file in /var/tmp (a first scan wrote 130,000 pages there). */
	if (sqlite3_exec(u->db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL) !=
	        SQLITE_OK ||
	    sqlite3_exec(u->db, "PRAGMA synchronous=FULL", NULL, NULL, NULL) !=
	        SQLITE_OK ||
	    sqlite3_exec(u->db, "PRAGMA foreign_keys=ON", NULL, NULL, NULL) !=
	        SQLITE_OK ||
	    sqlite3_exec(u->db, "PRAGMA cache_size=-65536", NULL, NULL, NULL) !=
	        SQLITE_OK ||
	    sqlite3_exec(u->db, "PRAGMA temp_store=MEMORY", NULL, NULL, NULL) !=
	        SQLITE_OK ||
	    sqlite3_exec(u->db, "PRAGMA mmap_size=1073741824", NULL, NULL,
	                 NULL) != SQLITE_OK)
		return mi_dberr(u, error_r, "pragma");
	if ((rc = mi_pragma_check(u, "PRAGMA journal_mode", "wal", error_r)) !=
	        MBOX_OK ||
	    (rc = mi_pragma_check(u, "PRAGMA foreign_keys", "1", error_r)) !=
	        MBOX_OK)
		return rc;

	/* Cheap check first; the one that counts runs under the lock. */
	if ((rc = mi_schema_version(u, &version, error_r)) != MBOX_OK)
		return rc;
	if (version == MI_SCHEMA_VERSION)
		return MBOX_OK;
	if ((rc = mi_begin(u, error_r)) != MBOX_OK)
		return rc;
	if ((rc = mi_schema_version(u, &version, error_r)) != MBOX_OK)
		goto fail;
	if (version > MI_SCHEMA_VERSION) {
		rc = mi_err(error_r, MBOX_ERR_TEMP,
		            "%s/%s: schema version %d is newer than this "
		            "program (%d)",
		            u->dir, MI_DB_NAME, version, MI_SCHEMA_VERSION);
		goto fail;
	}
	*created_r = version == 0;
	for (; version < MI_SCHEMA_VERSION; version++) {
		if (sqlite3_exec(u->db, mi_migrations[version], NULL, NULL,
		                 NULL) != SQLITE_OK) {
			rc = mi_dberr(u, error_r, "schema");
			goto fail;
		}
	}
	if (*created_r)
		return MBOX_OK; /* the caller fills it, then commits */
	return mi_commit(u, error_r);
fail:
	mi_rollback(u);
	return rc;
}

void
mi_db_close(struct mbox_user *u)
{
	for (size_t i = 0; i < MI_ST_COUNT; i++) {
		sqlite3_finalize(u->st[i]);
		u->st[i] = NULL;
	}
	sqlite3_close_v2(u->db);
	u->db = NULL;
}
