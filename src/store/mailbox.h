/* The mailbox store of one user: Maildir++ under the user's directory
 * (data/mail/DOMAIN/LOCAL/: INBOX in cur/ new/ tmp/, other mailboxes in
 * .Name/ with "." for the hierarchy, flags in the file names so other
 * Maildir tools still work) plus index.db (SQLite, WAL), the authority for
 * UIDs, MODSEQs, flags, keywords, internal dates, sizes and cached fields.
 * Messages are kept with LF line ends on disk (Maildir convention); every
 * size and every byte handed out is the CRLF form IMAP speaks.
 * A struct mbox_user and its mailboxes are used by one thread at a time;
 * other threads and processes may open the same user at once (SQLite
 * locking with a busy timeout serialises writers).
 * SECURITY: mailbox names come from clients. Each is checked
 * (mbox_name_valid) before it touches the disk; on-disk names are derived
 * by a reversible escaping that never yields "/", "..", or a control
 * character, and every open uses O_NOFOLLOW under the user's directory. */
#ifndef TERN_STORE_MAILBOX_H
#define TERN_STORE_MAILBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

#define MBOX_NAME_MAX 255     /* bytes of UTF-8 in a full name */
#define MBOX_DEPTH_MAX 16     /* levels of "/" */
#define MBOX_COUNT_MAX 10000  /* mailboxes per user */
#define MBOX_KEYWORDS_MAX 64  /* distinct keywords per mailbox */
#define MBOX_KEYWORD_LEN_MAX 64
#define MBOX_DELIM '/'

/* System flags as stored. \Recent is a session notion (src/imap). */
enum mbox_flag {
	MBOX_F_SEEN = 1u << 0,
	MBOX_F_ANSWERED = 1u << 1,
	MBOX_F_FLAGGED = 1u << 2,
	MBOX_F_DELETED = 1u << 3,
	MBOX_F_DRAFT = 1u << 4,
};

enum mbox_special {
	MBOX_SPECIAL_NONE,
	MBOX_SPECIAL_DRAFTS,
	MBOX_SPECIAL_SENT,
	MBOX_SPECIAL_JUNK,
	MBOX_SPECIAL_TRASH,
	MBOX_SPECIAL_ARCHIVE,
};

/* Results; every failing call also sets a human-readable *error_r
 * (malloc'd) for the log. */
enum mbox_err {
	MBOX_OK = 0,
	MBOX_ERR_NOTFOUND = -1,    /* no such mailbox / message */
	MBOX_ERR_EXISTS = -2,      /* CREATE/RENAME target exists */
	MBOX_ERR_BADNAME = -3,     /* mbox_name_valid refused it */
	MBOX_ERR_LIMIT = -4,       /* count, depth, keyword limits */
	MBOX_ERR_CANNOT = -5,      /* e.g. DELETE INBOX, DELETE with children */
	MBOX_ERR_TEMP = -6,        /* I/O, SQLite busy past the timeout */
	MBOX_ERR_QUOTA = -7,       /* over the user's quota */
	MBOX_ERR_MODIFIED = -8,    /* UNCHANGEDSINCE failed (not all applied) */
};

struct mbox_user;
struct mbox;

/* Open (creating when missing: the directory 0700, index.db, INBOX, and
 * Drafts, Sent, Junk, Trash, Archive with their special-use) the store of
 * one user at dir (data/mail/DOMAIN/LOCAL). quota_bytes: 0 = none. */
int mbox_user_open(const char *dir, uint64_t quota_bytes,
                   struct mbox_user **user_r, char **error_r);
void mbox_user_close(struct mbox_user **user);
/* Give back the memory kept only to make the next call faster: SQLite's
 * page cache, with MBOX_TRIM_STATEMENTS the prepared statements too (made
 * again when next used), with MBOX_TRIM_CLOSE index.db's connection itself
 * (opened again by the next call that needs it; not inside a change). For
 * a session that now waits for its client, perhaps for hours in IDLE. */
enum mbox_trim { MBOX_TRIM_CACHE, MBOX_TRIM_STATEMENTS, MBOX_TRIM_CLOSE };
void mbox_user_trim(struct mbox_user *u, enum mbox_trim what);

/* Whether name (UTF-8, "/" hierarchy) may be a mailbox: not empty, at most
 * MBOX_NAME_MAX bytes and MBOX_DEPTH_MAX levels, valid UTF-8, no control
 * characters, no empty level, no "." or ".." level, no leading or trailing
 * "/", no "*" or "%". "INBOX" matches case-insensitively (also as the
 * first level). */
bool mbox_name_valid(const char *name);

struct mbox_info {
	char *name;  /* canonical ("INBOX" upper case) */
	bool exists; /* false: only subscribed (\NonExistent) */
	bool subscribed;
	bool has_children;
	enum mbox_special special;
	uint32_t uidvalidity;
	uint32_t uidnext;
	uint64_t highestmodseq;
	uint32_t messages;
	uint32_t unseen;  /* messages without \Seen */
	uint32_t deleted; /* messages with \Deleted */
	uint64_t size;    /* sum of RFC822.SIZE */
};

void mbox_info_clear(struct mbox_info *info);
void mbox_info_free_list(struct mbox_info **list, size_t n);

/* Every mailbox and every subscription, sorted by name (INBOX first).
 * counts: fill messages/unseen/deleted/size too (costs a query each). */
int mbox_list(struct mbox_user *u, bool counts, struct mbox_info **list_r,
              size_t *n_r, char **error_r);
/* STATUS of one mailbox without opening it (picks up new Maildir files
 * first, so counts are current). */
int mbox_status(struct mbox_user *u, const char *name,
                struct mbox_info *info_r, char **error_r);
int mbox_create(struct mbox_user *u, const char *name,
                enum mbox_special special, char **error_r);
/* Refuses INBOX and a mailbox with children (MBOX_ERR_CANNOT). */
int mbox_delete(struct mbox_user *u, const char *name, char **error_r);
/* Children move along; renaming INBOX moves its messages to a new mailbox
 * and leaves INBOX empty (RFC 9051 6.3.6). */
int mbox_rename(struct mbox_user *u, const char *from, const char *to,
                char **error_r);
int mbox_subscribe(struct mbox_user *u, const char *name, bool on,
                   char **error_r);
/* Change counter of a mailbox for IDLE polling: its highestmodseq and
 * uidnext, cheap (one indexed row); also picks up files another Maildir
 * tool dropped into new/ (the mtime of new/ and cur/ tells when to look). */
int mbox_peek(struct mbox_user *u, const char *name, uint64_t *modseq_r,
              uint32_t *uidnext_r, char **error_r);

/* ---- one open mailbox ---- */

struct mbox_msg {
	uint32_t uid;
	uint64_t modseq;
	uint32_t flags;     /* enum mbox_flag */
	char *keywords;     /* space-separated, or NULL */
	int64_t internaldate; /* seconds since the epoch */
	uint64_t size;      /* RFC822.SIZE: CRLF form */
	bool size_known;    /* false: size and internaldate are guesses, see
	                       mbox_sizes */
};

void mbox_msg_clear(struct mbox_msg *m);
void mbox_msg_free_list(struct mbox_msg **list, size_t n);

/* Open a mailbox after synchronising it with its Maildir (new files get
 * UIDs and move to cur/, files renamed by other tools update the flags,
 * files gone are expunged). */
int mbox_open(struct mbox_user *u, const char *name, bool readonly,
              struct mbox **box_r, char **error_r);
void mbox_close(struct mbox **box);
/* Current counters (refreshed by mbox_sync and by every change made
 * through this handle). */
const struct mbox_info *mbox_get_info(const struct mbox *box);
/* Look at the Maildir again (as mbox_open does) and refresh the info. */
int mbox_sync(struct mbox *box, char **error_r);
/* For an IDLE session's polls without SQLite: mark records the stamps of
 * index.db, its WAL and the mailbox's new/ and cur/ (stat(2) only);
 * mbox_quiet is true when none changed since (every tern change goes
 * through the WAL, every other tool's through new/ or cur/). Stamps too
 * recent to trust (the clock's granularity) make it false. */
void mbox_quiet_mark(struct mbox *box);
bool mbox_quiet(struct mbox *box);

/* Every message, in UID order. */
int mbox_messages(struct mbox *box, struct mbox_msg **list_r, size_t *n_r,
                  char **error_r);
/* The same, one at a time to fn, without a list (SELECT of 100,000
 * messages: one array fewer). fn may take m->keywords (set it NULL). */
typedef void mbox_msg_fn(void *ctx, struct mbox_msg *m);
int mbox_messages_each(struct mbox *box, mbox_msg_fn *fn, void *ctx,
                       char **error_r);
/* What changed since modseq: messages whose MODSEQ is greater (new ones
 * included), in UID order, and the UIDs expunged since then, ascending. */
int mbox_changes(struct mbox *box, uint64_t since_modseq,
                 struct mbox_msg **changed_r, size_t *nchanged_r,
                 uint32_t **expunged_r, size_t *nexpunged_r,
                 char **error_r);

/* Messages whose files another tool left get their UIDs without being
 * read or even stat(2)ed (a first SELECT of 100,000 of them stays fast);
 * their exact RFC822.SIZE and INTERNALDATE (the file's mtime) are read
 * when first needed: sizes_r[i] and dates_r[i] (may be NULL) for uids[i]
 * (0 when it is gone), and recorded in the index. */
int mbox_sizes(struct mbox *box, const uint32_t *uids, size_t n,
               uint64_t *sizes_r, int64_t *dates_r, char **error_r);
/* Every size of mailbox name that mbox_sizes has not read yet (STATUS
 * SIZE must not be less than the sum of the RFC822.SIZEs). */
int mbox_sizes_settle(struct mbox_user *u, const char *name, char **error_r);

/* The whole message in CRLF form into out (appended). MBOX_ERR_NOTFOUND
 * when it was expunged meanwhile. */
int mbox_read(struct mbox *box, uint32_t uid, struct buf *out,
              char **error_r);
/* Opaque per-message cache (e.g. IMAP ENVELOPE and BODYSTRUCTURE strings)
 * kept in the index: get returns 1 found (value malloc'd), 0 not cached. */
int mbox_cache_get(struct mbox *box, uint32_t uid, const char *field,
                   char **value_r, size_t *len_r);
void mbox_cache_set(struct mbox *box, uint32_t uid, const char *field,
                    const char *value, size_t len);

enum mbox_flag_op { MBOX_FLAGS_SET, MBOX_FLAGS_ADD, MBOX_FLAGS_REMOVE };

/* STORE on uids[0..n) (ascending): flags and keywords (space-separated or
 * NULL). unchangedsince: 0 = no condition; otherwise messages whose
 * MODSEQ is greater are left alone and listed in *failed_r
 * (MBOX_ERR_MODIFIED returned when any). Each changed message gets a new
 * MODSEQ; the Maildir file name is renamed to match. */
int mbox_store_flags(struct mbox *box, const uint32_t *uids, size_t n,
                     enum mbox_flag_op op, uint32_t flags,
                     const char *keywords, uint64_t unchangedsince,
                     uint32_t **failed_r, size_t *nfailed_r,
                     char **error_r);
/* Remove uids[0..n) that carry \Deleted (n == 0 and uids == NULL: every
 * \Deleted message). The removed UIDs, ascending, in *expunged_r. */
int mbox_expunge(struct mbox *box, const uint32_t *uids, size_t n,
                 uint32_t **expunged_r, size_t *nexpunged_r, char **error_r);
/* COPY (move = false) or MOVE uids[0..n) to mailbox dest: the new UIDs in
 * *dst_uids_r in the same order as the source ones that still existed
 * (*src_uids_r). One transaction on dest: all or nothing. */
int mbox_copy(struct mbox *box, const uint32_t *uids, size_t n,
              const char *dest, bool move, uint32_t *dst_uidvalidity_r,
              uint32_t **src_uids_r, uint32_t **dst_uids_r, size_t *ncopied_r,
              char **error_r);

/* APPEND: data[0..len) is a message in CRLF form (bare LF tolerated).
 * Written to tmp/, fsync'd, linked into cur/, the directory fsync'd, and
 * the UID assigned in the transaction that makes it visible. internaldate:
 * 0 = now. */
int mbox_append(struct mbox_user *u, const char *name, const char *data,
                size_t len, uint32_t flags, const char *keywords,
                int64_t internaldate, uint32_t *uidvalidity_r,
                uint32_t *uid_r, char **error_r);
/* Local delivery: the prefix (e.g. "Return-Path: <…>\r\nDelivered-To:
 * …\r\n") then the message read from msg_fd from offset 0 (CRLF), streamed
 * to disk with bounded memory; otherwise as mbox_append. A mailbox that
 * does not exist falls back to INBOX. */
int mbox_deliver(struct mbox_user *u, const char *name, const char *prefix,
                 int msg_fd, uint32_t flags, uint32_t *uid_r,
                 char **error_r);

/* One message of mbox_deliver_many. In: name, prefix, msg_fd, flags as
 * for mbox_deliver. Out: rc (MBOX_OK or an error), uid, error (malloc'd,
 * NULL on success). */
struct mbox_delivery {
	const char *name;
	const char *prefix;
	int msg_fd;
	uint32_t flags;
	int rc;
	uint32_t uid;
	char *error;
};

/* Several local deliveries to one user as one group commit: each file is
 * written and fsync'd, then one transaction links them all into their
 * mailboxes, with one fsync of each mailbox's cur/ and one commit, where
 * one mbox_deliver each would take a directory fsync and a commit per
 * message. Each item succeeds or fails on its own (quota, UIDs), except
 * that a failing commit fails every item of the call. Returns how many
 * were delivered. */
size_t mbox_deliver_many(struct mbox_user *u, struct mbox_delivery *items,
                         size_t n);

/* Rebuild index.db from the Maildir (tern mailbox reindex): UIDs kept when
 * the old index still maps the file, UIDVALIDITY changed only for a
 * mailbox whose UIDs could not be kept. */
int mbox_reindex(const char *dir, char **error_r);

/* The text index of SEARCH BODY and TEXT (mailbox_text.c). */
/* The messages of box below *below_r that may contain str (as SEARCH
 * BODY or TEXT test it), ascending UIDs, malloc'd; a message at or above
 * *below_r is not in the index yet and may contain it too. *below_r 0:
 * the index cannot tell (nothing indexed, str of no word, or a word in
 * too many terms). */
int mbox_text_candidates(struct mbox *box, const char *str, uint32_t **uids_r,
                         size_t *n_r, uint32_t *below_r, char **error_r);
/* Some messages of the user that the index lacks (*indexed_r of them),
 * indexed in one short transaction; *more_r: call again, there may be
 * more. */
int mbox_text_catch_up(struct mbox_user *u, bool *more_r, size_t *indexed_r,
                       char **error_r);
/* Whether this handle saw messages the index lacks, or messages go that
 * it has, since the last call: the caller then runs mbox_text_catch_up on
 * some handle of the user (which also empties an index grown mostly of
 * gone messages' rows, to build it again). */
bool mbox_text_lagging(struct mbox_user *u);

#endif
