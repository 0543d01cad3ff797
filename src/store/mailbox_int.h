/* Internals of the mailbox store (mailbox.h) shared by its files: mailbox.c
 * (user, names, folder operations), mailbox_index.c (SQLite),
 * mailbox_maildir.c (on-disk names, message files), mailbox_sync.c (Maildir
 * ↔ index), mailbox_msg.c and mailbox_append.c (one open mailbox, new mail).
 * SECURITY: on-disk names come only from mi_name_to_dir() (escaped, never
 * "/" or "..") and from readdir(); every open is relative to the user's
 * directory fd with O_NOFOLLOW. */
#ifndef TERN_STORE_MAILBOX_INT_H
#define TERN_STORE_MAILBOX_INT_H

#include <fcntl.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

#include "store/mailbox.h"

#define MI_DB_NAME "index.db"
#define MI_UIDV_FILE "tern-uidvalidity"
#define MI_BUSY_MS 5000
#define MI_SCHEMA_VERSION 3
#define MI_DIR_FLAGS (O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
#define MI_CHUNK (64 * 1024)
/* A directory whose mtime is this recent may change again within the same
 * timestamp tick: it is scanned again on the next sync. */
#define MI_SYNC_SLACK_NS 1000000000LL
#define MI_INBOX_DIR "."
#define MI_DELETED_PREFIX "deleted."
#define MI_FLAGS_MASK 0x1fu
/* Bigger messages are not indexed word by word (mailbox_text.c). */
#define MI_TEXT_MESSAGE_MAX (32u * 1024 * 1024)

enum mi_st {
	MI_BEGIN,
	MI_COMMIT,
	MI_ROLLBACK,
	MI_META_GET,
	MI_META_SET,
	MI_BOX_BY_NAME,
	MI_BOX_BY_ID,
	MI_BOX_BY_DIR,
	MI_BOX_ALL,
	MI_BOX_INSERT,
	MI_BOX_DELETE,
	MI_BOX_RENAME,
	MI_BOX_SET_SPECIAL,
	MI_BOX_COUNTERS,
	MI_BOX_ADD_COUNTS,
	MI_BOX_STAMPS,
	MI_BOX_COUNT,
	MI_BOX_RANGE,
	MI_USED,
	MI_SUB_ALL,
	MI_SUB_GET,
	MI_SUB_ADD,
	MI_SUB_DEL,
	MI_SUB_RANGE,
	MI_SUB_RENAME,
	MI_MSG_LIST,
	MI_MSG_CHANGED,
	MI_EXP_SINCE,
	MI_MSG_GET,
	MI_MSG_FILES,
	MI_MSG_INSERT,
	MI_MSG_DELETE,
	MI_EXP_INSERT,
	MI_MSG_SET_FLAGS,
	MI_MSG_SET_NAME,
	MI_MSG_SET_SYSFLAGS,
	MI_MSG_DELETED,
	MI_MSG_MOVE_ALL,
	MI_EXP_ALL,
	MI_MSG_MAXUID,
	MI_KW_COUNT,
	MI_KW_GET,
	MI_KW_ADD,
	MI_KW_COPY,
	MI_CACHE_GET,
	MI_CACHE_SET,
	MI_CACHE_COPY,
	MI_RECOUNT,
	MI_MSG_SET_SIZE,
	MI_MSG_SIZE_TODO,
	MI_MSG_CHANGED_COUNT,
	MI_EXP_COUNT,
	MI_MSG_WINDOW,
	MI_CACHE_WINDOW,
	MI_TEXT_INSERT,
	MI_TEXT_NEXT_GET,
	MI_TEXT_NEXT_SET,
	MI_TEXT_LAGGING,
	MI_TEXT_TERMS,
	MI_TEXT_MATCH,
	MI_TEXT_ROWS,
	MI_MSG_TOTAL,
	MI_MSG_INSERT_ROWS, /* made by mi_msg_insert_many, not in mi_sql */
	MI_ST_COUNT
};

/* Rows read ahead for reads in UID order (FETCH 1:1000, SEARCH): one
 * query per MI_WINDOW_ROWS messages instead of one each. A name may be
 * stale (a flag change renames the file): a failed open asks the index. */
#define MI_WINDOW_ROWS 256
/* Where the reads of one mailbox are: the UIDs read ahead, and how many
 * reads in a row went up. */
struct mi_ahead {
	int64_t box_id;
	uint32_t lo, hi;   /* rows with lo <= uid <= hi are all read (0, 0:
	                      none; UIDs start at 1) */
	uint32_t last_uid; /* the read before */
	unsigned run;      /* reads in a row in UID order */
};
/* Rows of a window start with their UID (mi_rows_find). */
struct mi_window_row {
	uint32_t uid;
	bool size_known;
	uint64_t size;
	char *filename;
};
struct mi_window {
	struct mi_ahead ah;
	struct mi_window_row *rows;
	size_t n;
};

/* A cache value waiting for a write transaction: written with the next
 * one (mi_begin), or MI_CACHE_BATCH at a time, or when the command ends
 * (mbox_user_trim). One commit and its fsync per message was most of a
 * first FETCH 1:1000 ENVELOPE. */
#define MI_CACHE_BATCH 256
struct mi_cache_write {
	int64_t box_id;
	uint32_t uid;
	char *field;
	char *value;
	size_t len;
};

/* Cache values of one field read ahead, as mi_window does for rows. */
struct mi_cache_window {
	struct mi_ahead ah;
	char *field;
	struct mi_cache_row {
		uint32_t uid;
		char *value;
		size_t len;
	} * rows;
	size_t n;
};

struct mbox_user {
	char *dir;
	int dirfd; /* the user's directory (INBOX's Maildir) */
	int tmpfd; /* its tmp/: every new message file starts here */
	uint64_t quota;
	sqlite3 *db;
	sqlite3_stmt *st[MI_ST_COUNT];
	struct mi_window win;
	struct mi_cache_window cwin;
	struct mi_cache_write *cw;
	size_t ncw;
	bool text_lag;   /* mbox_text_lagging */
	bool ckpt_later; /* this transaction's commit does not checkpoint */
	bool text_gone;  /* this transaction removed messages */
	/* Kept between the messages one call indexes (mbox_user_trim frees
	 * them): a new 64 KB buffer per message cost more in page faults
	 * than the indexing itself. text_msg holds at most
	 * MI_TEXT_MESSAGE_MAX + 1 bytes. */
	struct buf text_msg, text_out, text_words;
	/* The row texts of one mbox_deliver_many, one after the other, made
	 * as each file is written from text_msg. */
	struct buf text_batch;
};

/* One row of mailboxes. */
struct mi_box {
	int64_t id;
	char *name;
	char *dir; /* "." for INBOX, ".A.B" for "A/B" */
	uint32_t uidvalidity;
	uint32_t uidnext;
	uint64_t highestmodseq;
	enum mbox_special special;
	int64_t new_mtime; /* ns: what the last scan saw */
	int64_t cur_mtime;
	uint32_t messages, unseen, deleted;
	uint64_t size;
};

/* The open directories of one mailbox. */
struct mi_dirs {
	int dirfd;
	int curfd;
	int newfd;
};

/* What mbox_quiet compares: index.db, its WAL, new/ and cur/ (ns, bytes). */
struct mi_stamps {
	int64_t db_mtime, db_size, wal_mtime, wal_size, new_mtime, cur_mtime;
};

struct mbox {
	struct mbox_user *u;
	int64_t id;
	bool readonly;
	struct mi_dirs dirs;
	struct mbox_info info;
	struct mi_stamps quiet; /* mbox_quiet_mark */
	bool quiet_valid;
};

/* ---- errors (mailbox_index.c) ---- */

/* Set *error_r (when error_r is not NULL) and return code. */
int mi_err(char **error_r, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* "WHAT: strerror(errno)", MBOX_ERR_TEMP. */
int mi_syserr(char **error_r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* "DIR/index.db: WHAT: sqlite message", MBOX_ERR_TEMP. */
int mi_dberr(struct mbox_user *u, char **error_r, const char *what);

/* ---- index (mailbox_index.c) ---- */

/* Open (creating) index.db; *created_r: the schema was made now (the
 * caller then creates the default mailboxes in the same transaction,
 * which is left open: mi_commit() it). */
int mi_db_open(struct mbox_user *u, bool *created_r, char **error_r);
void mi_db_close(struct mbox_user *u);
/* The prepared statement, NULL with *error_r set on failure. */
sqlite3_stmt *mi_st(struct mbox_user *u, enum mi_st which, char **error_r);
void mi_done(sqlite3_stmt *st);
/* Step a bound statement that returns no row, then reset it. */
int mi_step_done(struct mbox_user *u, sqlite3_stmt *st, char **error_r);
/* Step a bound statement returning one integer (0 without a row). */
int mi_step_int(struct mbox_user *u, sqlite3_stmt *st, int64_t *v_r,
                char **error_r);
int mi_begin(struct mbox_user *u, char **error_r);
int mi_commit(struct mbox_user *u, char **error_r);
void mi_rollback(struct mbox_user *u);
int mi_meta_get(struct mbox_user *u, const char *key, int64_t *v_r,
                char **error_r);
int mi_meta_set(struct mbox_user *u, const char *key, int64_t v,
                char **error_r);
/* From a row of MI_BOX_* columns. */
void mi_box_from_row(sqlite3_stmt *st, struct mi_box *b);
void mi_box_clear(struct mi_box *b);
/* MBOX_OK, MBOX_ERR_NOTFOUND or MBOX_ERR_TEMP. */
int mi_box_by_name(struct mbox_user *u, const char *name, struct mi_box *b,
                   char **error_r);
int mi_box_by_id(struct mbox_user *u, int64_t id, struct mi_box *b,
                 char **error_r);
int mi_box_by_dir(struct mbox_user *u, const char *dir, struct mi_box *b,
                  char **error_r);
/* Inside a transaction: a new UIDVALIDITY (the time, but always greater
 * than every one handed out before in this index). */
int mi_new_uidvalidity(struct mbox_user *u, uint32_t *v_r, char **error_r);
int mi_box_insert(struct mbox_user *u, const char *name, const char *dir,
                  enum mbox_special special, uint32_t uidvalidity,
                  uint32_t uidnext, uint64_t modseq, int64_t *id_r,
                  char **error_r);
int mi_box_set_counters(struct mbox_user *u, int64_t id, uint32_t uidnext,
                        uint64_t modseq, char **error_r);
/* Inside a transaction: MBOX_ERR_QUOTA when adding add bytes passes the
 * quota. */
int mi_quota_check(struct mbox_user *u, uint64_t add, char **error_r);
/* Inside a transaction: keywords (space-separated, may be NULL) checked,
 * spelled as the mailbox already knows them (case-insensitive match) and
 * registered; *canon_r: malloc'd space-separated list, or NULL if empty.
 * MBOX_ERR_BADNAME for an invalid keyword, MBOX_ERR_LIMIT past
 * MBOX_KEYWORDS_MAX. */
int mi_keywords_register(struct mbox_user *u, int64_t id, const char *kw,
                         char **canon_r, char **error_r);
/* Syntax only (atom characters, not "\", 1..MBOX_KEYWORD_LEN_MAX). */
bool mi_keywords_valid(const char *kw);
/* Rows "uid flags filename" inserted/deleted, with the expunge record.
 * size_known false: size is the file's (LF) size, the exact CRLF one is
 * read from the file when first asked for (mbox_sizes). */
int mi_msg_insert(struct mbox_user *u, int64_t id, uint32_t uid,
                  uint64_t modseq, uint32_t flags, const char *keywords,
                  int64_t internaldate, uint64_t size, bool size_known,
                  const char *filename, char **error_r);
int mi_msg_expunge(struct mbox_user *u, int64_t id, uint32_t uid,
                   uint64_t modseq, char **error_r);
/* One row of mi_msg_insert_many. */
struct mi_new_row {
	uint32_t uid;
	uint32_t flags;
	int64_t internaldate;
	uint64_t size;
	bool size_known;
	const char *filename;
};
/* Inside a transaction: mi_msg_insert (without keywords) for n rows of
 * mailbox id that share one MODSEQ, MI_INSERT_ROWS per statement: each
 * statement journals a page once, not once per row (the counter triggers
 * make every INSERT a statement transaction of its own; that was half of
 * a first scan's time). From MI_BULK_ROWS rows on, the counters are
 * added once instead of by the trigger for each row. */
#define MI_INSERT_ROWS 64
#define MI_BULK_ROWS 1024
/* SQLite's default: the commit that leaves more WAL pages than this
 * copies them into index.db. */
#define MI_WAL_AUTOCHECKPOINT 1000
int mi_msg_insert_many(struct mbox_user *u, int64_t id, uint64_t modseq,
                       const struct mi_new_row *rows, size_t n, char **error_r);

/* ---- on-disk names (mailbox_maildir.c) ---- */

/* A valid name with "INBOX" (any case) as first level written "INBOX";
 * malloc'd. */
char *mi_name_canon(const char *name);
bool mi_name_is_inbox(const char *canon);
/* The directory of a canonical name ("." for INBOX); NULL when longer than
 * a file name may be. */
char *mi_name_to_dir(const char *canon);
/* The name of a folder directory (".A.B"); NULL when dir is not one this
 * escaping makes (not canonical, invalid, or INBOX itself). */
char *mi_dir_to_name(const char *dir);
/* The Maildir flags in a file name (":2,DFRST"). */
uint32_t mi_flags_from_name(const char *filename);
/* filename with its info set to flags (letters tern does not manage are
 * kept); malloc'd. */
char *mi_name_with_flags(const char *filename, uint32_t flags);
/* Length of the unique part (up to ":"). */
size_t mi_base_len(const char *filename);
/* ",S=" and ",W=" from the unique part; false when absent. */
bool mi_name_sizes(const char *filename, uint64_t *s_r, uint64_t *w_r);
/* A new unique part: "SECONDS.MUSECPPIDQN.HOST"; malloc'd. */
char *mi_unique_base(void);

/* ---- directories and files (mailbox_maildir.c) ---- */

/* Open dir (a mailbox directory) with its cur/ and new/.
 * MBOX_ERR_NOTFOUND when the directory is gone. */
int mi_dirs_open(struct mbox_user *u, const char *dir, struct mi_dirs *d,
                 char **error_r);
void mi_dirs_close(struct mi_dirs *d);
/* mkdir dir with cur/ new/ tmp/ (and "maildirfolder" for folders),
 * fsync'd; fine when it exists. */
int mi_folder_make(struct mbox_user *u, const char *dir, char **error_r);
/* Remove a directory tree below dirfd (never following a symlink). */
int mi_rmtree(int dirfd, const char *name);
int mi_fsync_dir(int fd, const char *what, char **error_r);
/* rename that fails with EEXIST instead of replacing. */
int mi_rename_noreplace(int olddirfd, const char *oldname, int newdirfd,
                        const char *newname);
/* mtime of an open directory in ns. */
int mi_mtime_ns(int fd, int64_t *ns_r);
int64_t mi_now_ns(void);

/* A new message file being written in the user's tmp/: CRLF → LF. */
struct mi_writer {
	int fd;
	char *tmpname;
	uint8_t *buf;
	size_t len;
	uint64_t lf_size;   /* bytes on disk */
	uint64_t crlf_size; /* bytes mbox_read hands out */
	bool cr;            /* an input CR waits for the next byte */
	uint8_t last;       /* the last byte written */
};

int mi_writer_open(struct mbox_user *u, struct mi_writer *w, char **error_r);
/* write(2) until done; -1 with errno. */
int mi_write_all(int fd, const uint8_t *p, size_t len);
int mi_writer_write(struct mi_writer *w, const void *data, size_t len);
/* Flush, set the mtime to internaldate, fsync, close. */
int mi_writer_finish(struct mbox_user *u, struct mi_writer *w,
                     int64_t internaldate, char **error_r);
/* The same in two steps: the last bytes and the date, writeback started
 * (no fsync); then the fsync and close. Several files finished first and
 * synced after share one journal commit. */
int mi_writer_finish_nosync(struct mbox_user *u, struct mi_writer *w,
                            int64_t internaldate, char **error_r);
int mi_writer_sync(struct mbox_user *u, struct mi_writer *w, char **error_r);
/* Remove the tmp file (if any) and free. */
void mi_writer_abort(struct mbox_user *u, struct mi_writer *w);
/* Move the finished tmp file to cur/<base>,S=,W=:2,<flags> of the mailbox
 * without replacing any file (a fresh base when the name is taken);
 * *filename_r malloc'd. */
int mi_writer_link(struct mbox_user *u, struct mi_writer *w, int curfd,
                   uint32_t flags, char **filename_r, char **error_r);

/* The CRLF size of a file with LF (or mixed) line ends. */
int mi_file_crlf_size(int fd, uint64_t *w_r);
/* Append the CRLF form of the file to out; *n_r: bytes appended. -1 with
 * errno (ENOBUFS when out is full). */
int mi_file_read_crlf(int fd, struct buf *out, uint64_t *n_r);

/* ---- synchronisation (mailbox_sync.c) ---- */

/* Bring the index rows of mailbox id in line with its Maildir. Without
 * force, only when the mtime of new/ or cur/ differs from the last scan. */
int mi_sync(struct mbox_user *u, int64_t id, const struct mi_dirs *d,
            bool force, char **error_r);
/* Folder directories created or removed by other tools (the user
 * directory's mtime says when to look). */
int mi_folders_sync(struct mbox_user *u, bool force, char **error_r);
/* mi_sync inside the caller's transaction, with the row read in it. */
int mi_sync_locked(struct mbox_user *u, struct mi_box *b,
                   const struct mi_dirs *d, bool force, char **error_r);
/* A canonical name's row; when unknown, after looking for folders made by
 * other tools. Not inside a transaction. */
int mi_box_lookup(struct mbox_user *u, const char *canon, struct mi_box *b,
                  char **error_r);
/* Look a canonical name up, sync it (cheaply), and read its row again. */
int mi_box_synced(struct mbox_user *u, const char *canon, struct mi_box *b,
                  char **error_r);

/* ---- message lists (mailbox_msg.c, mailbox_snapshot.c) ---- */

/* Each row of a bound MI_MSG_LIST / MI_MSG_CHANGED to fn. */
int mi_msg_each(struct mbox_user *u, sqlite3_stmt *st, mbox_msg_fn *fn,
                void *ctx, char **error_r);
/* Every message of box in UID order to fn: from its snapshot and the
 * changes since, or from the rows (then kept as a snapshot when the
 * mailbox has mi_snap_min messages or more). */
int mi_messages_all(struct mbox *box, mbox_msg_fn *fn, void *ctx,
                    char **error_r);
/* Drop the snapshot of mailbox id (0: of every mailbox), after a change
 * to its rows that carries no new MODSEQ, or when it is deleted. */
void mi_snap_forget(struct mbox_user *u, int64_t id);
/* After a committed scan that found mailbox id empty in the index and
 * added rows: the snapshot of those rows, all of MODSEQ modseq (from
 * mi_snap_min rows on). Saves reading them back from SQLite for the first
 * SELECT of a Maildir another tool filled (40 ms for 100,000). */
void mi_snap_of_rows(struct mbox_user *u, int64_t id, uint32_t uidvalidity,
                     uint64_t modseq, const struct mi_new_row *rows,
                     size_t n);
/* 8192; tests lower it. */
extern uint32_t mi_snap_min;
/* Rows of gone messages the text index keeps before it is built again
 * (when they also outnumber the messages): 10,000; tests lower it. */
extern int64_t mi_text_dead_min;
/* Inside a transaction: whether the text index is due to be built again
 * (mailbox_text.c); false when it cannot tell. */
bool mi_text_prune_due(struct mbox_user *u);
/* Forget the rows read ahead (mailbox_msg.c). */
void mi_window_drop(struct mbox_user *u);
/* Inside a transaction: write the waiting cache values. */
void mi_cache_write_pending(struct mbox_user *u);
/* Write them now, in a transaction of their own if none is open. */
void mi_cache_flush(struct mbox_user *u);

/* ---- text index (mailbox_text.c) ---- */

/* The first UID of mailbox id from which the text index may lack
 * messages (1: it has none). */
int mi_text_next(struct mbox_user *u, int64_t id, uint32_t *uid_r,
                 char **error_r);
int mi_text_set_next(struct mbox_user *u, int64_t id, uint32_t uid,
                     char **error_r);
/* The row text of a message, from its CRLF form (msg NULL: unreadable),
 * appended to out: its words, or the word of a message always searched.
 * No transaction needed: delivery makes it before its own. */
void mi_text_words(struct mbox_user *u, const char *msg, size_t len,
                   struct buf *out);
/* Inside a transaction: message uid of mailbox id into the text index
 * with row text words (from mi_text_words). */
int mi_text_put_words(struct mbox_user *u, int64_t id, uint32_t uid,
                      const uint8_t *words, size_t len, char **error_r);
/* Inside a transaction: message uid of mailbox id, file filename in its
 * cur/ (curfd), into the text index. */
int mi_text_add_file(struct mbox_user *u, int64_t id, uint32_t uid, int curfd,
                     const char *filename, char **error_r);
/* Inside a transaction: the new message uid indexed when the mailbox's
 * older ones are, else left to mbox_text_catch_up (text_lag set). */
int mi_text_added(struct mbox_user *u, int64_t id, uint32_t uid, int curfd,
                  const char *filename, char **error_r);

/* ---- shared by the operations (mailbox.c, mailbox_rename.c) ---- */

/* info from a row (+ subscribed, has_children). */
int mi_info_fill(struct mbox_user *u, const struct mi_box *b,
                 struct mbox_info *info, char **error_r);
/* Inside a transaction: create name's missing superiors (and name itself
 * when self is set, with special) as mailboxes; *made_r (may be NULL):
 * how many were made. MBOX_ERR_LIMIT past MBOX_COUNT_MAX. */
int mi_create_levels(struct mbox_user *u, const char *canon, bool self,
                     enum mbox_special special, size_t *made_r, char **error_r);
/* The [lo, hi) name range of name's children: "name/", "name0". */
void mi_child_range(const char *name, char **lo_r, char **hi_r);
/* Re-read the row and the counters of an open mailbox into its info. */
int mi_box_refresh(struct mbox *box, char **error_r);
/* Folder directories parked in tmp/ by a crash (mid-RENAME) are put
 * back; _locked inside the caller's transaction. */
int mi_tmp_recover(struct mbox_user *u, char **error_r);
int mi_tmp_recover_locked(struct mbox_user *u, char **error_r);

#endif
