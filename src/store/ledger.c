/* The delivery ledger: see ledger.h.
 * SECURITY: prepared statements only; opened 0600 by store's user. */
#include "store/ledger.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "core/xmalloc.h"

struct ledger {
	sqlite3 *db;
	sqlite3_stmt *seen, *record, *prune;
};

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS delivered ("
    " id TEXT NOT NULL, rcpt TEXT NOT NULL, at_ms INTEGER NOT NULL,"
    " PRIMARY KEY (id, rcpt));"
    "CREATE INDEX IF NOT EXISTS delivered_at ON delivered (at_ms);";

struct ledger *
ledger_open(const char *path, char **error_r)
{
	struct ledger *l = xcalloc(1, sizeof(*l));
	int fd;

	/* Create it 0600 before SQLite does (it would use the umask). */
	if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW,
	               0600)) >= 0)
		close(fd);
	if (sqlite3_open_v2(path, &l->db,
	                    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
	                    NULL) != SQLITE_OK ||
	    sqlite3_exec(l->db,
	                 "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;",
	                 NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_exec(l->db, schema, NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(l->db,
	                       "SELECT 1 FROM delivered WHERE id = ? AND "
	                       "rcpt = ?",
	                       -1, &l->seen, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(l->db,
	                       "INSERT OR IGNORE INTO delivered (id, rcpt, "
	                       "at_ms) VALUES (?, ?, ?)",
	                       -1, &l->record, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(l->db, "DELETE FROM delivered WHERE at_ms < ?",
	                       -1, &l->prune, NULL) != SQLITE_OK) {
		*error_r = xasprintf("%s: %s", path,
		                     l->db != NULL ? sqlite3_errmsg(l->db)
		                                   : "cannot open");
		ledger_close(&l);
		return NULL;
	}
	sqlite3_busy_timeout(l->db, 5000);
	return l;
}

void
ledger_close(struct ledger **l)
{
	if (*l == NULL)
		return;
	sqlite3_finalize((*l)->seen);
	sqlite3_finalize((*l)->record);
	sqlite3_finalize((*l)->prune);
	sqlite3_close((*l)->db);
	xfree(l);
}

int
ledger_seen(struct ledger *l, const char *id, const char *rcpt)
{
	int rc;

	sqlite3_bind_text(l->seen, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_text(l->seen, 2, rcpt, -1, SQLITE_STATIC);
	rc = sqlite3_step(l->seen);
	sqlite3_reset(l->seen);
	sqlite3_clear_bindings(l->seen);
	if (rc == SQLITE_ROW)
		return 1;
	return rc == SQLITE_DONE ? 0 : -1;
}

int
ledger_record(struct ledger *l, const char *id, const char *rcpt,
              uint64_t now_ms)
{
	int rc;

	sqlite3_bind_text(l->record, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_text(l->record, 2, rcpt, -1, SQLITE_STATIC);
	sqlite3_bind_int64(l->record, 3, (sqlite3_int64)now_ms);
	rc = sqlite3_step(l->record);
	sqlite3_reset(l->record);
	sqlite3_clear_bindings(l->record);
	if (rc != SQLITE_DONE) {
		log_error(id, "event=ledger-failed error=%s",
		          sqlite3_errmsg(l->db));
		return -1;
	}
	return 0;
}

void
ledger_prune(struct ledger *l, uint64_t now_ms)
{
	if (now_ms < LEDGER_KEEP_MS)
		return;
	sqlite3_bind_int64(l->prune, 1,
	                   (sqlite3_int64)(now_ms - LEDGER_KEEP_MS));
	sqlite3_step(l->prune);
	sqlite3_reset(l->prune);
}

void
ledger_begin(struct ledger *l)
{
	if (sqlite3_exec(l->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) !=
	    SQLITE_OK)
		log_warn(NULL, "event=ledger-failed error=%s",
		         sqlite3_errmsg(l->db));
}

int
ledger_commit(struct ledger *l)
{
	if (sqlite3_get_autocommit(l->db))
		return 0; /* no transaction: each record committed */
	if (sqlite3_exec(l->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		log_error(NULL, "event=ledger-failed error=%s",
		          sqlite3_errmsg(l->db));
		(void)sqlite3_exec(l->db, "ROLLBACK", NULL, NULL, NULL);
		return -1;
	}
	return 0;
}
