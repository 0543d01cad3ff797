/* Private to the IMAP session (session.c, cmd_*.c): the session, its view
 * of the selected mailbox, and the calls between the command files. */
#ifndef TERN_IMAP_SESSION_INT_H
#define TERN_IMAP_SESSION_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "imap/parser.h"
#include "imap/session.h"
#include "store/mailbox.h"

/* Consecutive BAD answers before the session says BYE. */
#define IMAP_BAD_MAX 20
/* Mailboxes whose \Recent boundary the session remembers. */
#define IMAP_RECENT_MEMORY_MAX 256
/* The store's cache field of imap_hdr_cache_block(): FETCH and SEARCH. */
#define IMAP_CACHE_HEADERS "imap.headers"

/* The session: one state at a time, changed only by imap_set_state(). */
enum imap_state {
	IMAP_STATE_AUTH,     /* logged in, no mailbox selected */
	IMAP_STATE_SELECTED, /* a mailbox is selected (the view is open) */
	IMAP_STATE_IDLE,     /* IDLE: waiting for DONE (view open or not) */
	IMAP_STATE_LOGOUT,   /* LOGOUT answered or fatal error: closing */
};

/* Command table flags: the RFC rules of each command. */
enum imap_cmd_flag {
	IMAP_CMD_AUTH = 1u << 0,       /* valid in the authenticated state */
	IMAP_CMD_SELECTED = 1u << 1,   /* valid in the selected state */
	IMAP_CMD_NO_EXPUNGE = 1u << 2, /* no EXPUNGE while it runs (RFC 9051
	                                  7.5.1: FETCH, STORE, SEARCH) */
	IMAP_CMD_UID = 1u << 3,        /* the UID form: numbers are UIDs */
	IMAP_CMD_WRITE = 1u << 4,      /* needs a read-write mailbox */
};

struct imap_session;

struct imap_cmd_def {
	const char *name; /* as the parser spells it: "UID FETCH" */
	unsigned flags;   /* enum imap_cmd_flag */
	uint8_t args_min; /* top-level arguments */
	uint8_t args_max; /* 255: no upper bound */
	void (*run)(struct imap_session *s, const struct imap_command *cmd);
};

/* Bits of imap_msg.flags beyond the mbox_flag ones. */
#define IMAP_MSG_SYSFLAGS 0x1fu
#define IMAP_MSG_EXPUNGED (1u << 30) /* gone from the store, not reported */
#define IMAP_MSG_DIRTY (1u << 29)    /* flags changed, FETCH not yet sent */
#define IMAP_MSG_SIZE_UNKNOWN (1u << 28) /* size, date: guesses (mbox_sizes)   \
	                                  */

/* One message as this session sees it (index + 1 = sequence number). */
struct imap_msg {
	uint32_t uid;
	uint32_t flags; /* mbox_flag | IMAP_MSG_* */
	uint64_t modseq;
	int64_t internaldate;
	uint64_t size;
	char *keywords; /* space-separated, or NULL */
};

/* The selected mailbox: the session's copy of UIDs, flags and MODSEQs,
 * brought up to date from mbox_changes() only when the RFC lets the client
 * hear about it. */
struct imap_view {
	struct mbox *box;
	char *name; /* canonical, UTF-8 */
	bool readonly;
	uint32_t uidvalidity;
	uint32_t uidnext;    /* what the store said last */
	uint64_t modseq;     /* every change up to here is in msgs[] */
	uint32_t recent_min; /* UIDs >= this are \Recent to this session */

	struct imap_msg *msgs; /* ascending UIDs; NULL while asleep */
	size_t n, cap;
	/* Asleep (in IDLE with nothing left to tell): msgs[] is given back
	 * and only its UIDs are kept, as ranges first..last (pairs), n still
	 * counting them; woken from the store when anything needs more. */
	uint32_t *asleep;
	size_t nasleep;
	size_t n_expunged; /* marked IMAP_MSG_EXPUNGED */

	/* What the client was told. */
	size_t told_exists;
	size_t told_recent;
	bool kw_changed; /* a new keyword: FLAGS and PERMANENTFLAGS again */
	char **kw;       /* keywords in use (FLAGS) */
	size_t nkw;

	/* Pending FETCH FLAGS notifications (UIDs; DIRTY bit set). */
	uint32_t *notify;
	size_t nnotify, notify_cap, notify_pos;

	/* EXPUNGE responses being written (across output slices). */
	bool xp_active;
	size_t xp_pos;
	size_t xp_removed;
};

/* A command that continues over several calls (output slices): step
 * returns true when it is done. */
typedef bool imap_step_fn(struct imap_session *s);
typedef void imap_step_free_fn(void *ctx);

struct imap_recent_mark {
	char *name;
	uint32_t uidvalidity;
	uint32_t uidnext;
};

struct imap_session {
	enum imap_state state;
	enum imap_state idle_return; /* the state IDLE goes back to */
	char *user;
	struct mbox_user *store;
	struct imap_session_settings set;
	struct imap_parser *parser;

	/* Output of the current call. */
	struct buf *out;
	size_t out_base;

	/* ENABLEd extensions. */
	bool rev2;
	bool condstore;

	/* The command in progress. */
	bool busy;
	char tag[IMAP_TAG_MAX + 1];
	const struct imap_cmd_def *def;
	struct buf tagged; /* "OK …" without the tag */
	bool tagged_bad;
	bool synced; /* the end-of-command sync was done */
	imap_step_fn *step;
	imap_step_free_fn *step_free;
	void *step_ctx;
	unsigned bad_count;

	struct imap_view view; /* valid while view.box != NULL */

	/* SEARCHRES "$": UIDs, ascending. */
	uint32_t *saved;
	size_t nsaved;

	struct imap_recent_mark *recent;
	size_t nrecent;

	char *store_error; /* imap_store_error, for the role to log */
};

/* ---- session.c ---- */

void imap_set_state(struct imap_session *s, enum imap_state st);
/* Untagged output into the current call's buffer. */
void imap_printf(struct imap_session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void imap_write(struct imap_session *s, const void *data, size_t len);
/* The tagged reply of the command in progress ("OK …", "NO […] …",
 * "BAD …"), written when the command ends. */
void imap_reply(struct imap_session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* The command continues in slices. */
void imap_set_step(struct imap_session *s, imap_step_fn *step,
                   imap_step_free_fn *step_free, void *ctx);
/* The current call has produced a slice: stop and let it be written. */
bool imap_out_full(const struct imap_session *s);
/* CONDSTORE enabled now (RFC 7162 3.1): tell a selected mailbox's
 * HIGHESTMODSEQ. */
void imap_enable_condstore(struct imap_session *s);
/* A store call failed with r: a failure the operator must see (I/O,
 * SQLite: MBOX_ERR_TEMP) is kept for the role to log after this call
 * (imap_session_take_error); the others are the client's business. Frees
 * *err either way. */
void imap_store_error(struct imap_session *s, int r, char **err);
/* The response code for a store error ("[NONEXISTENT] …"). */
const char *imap_mbox_error(int err);
void imap_capability_string(const struct imap_session *s, struct buf *out);

/* Mailbox names: the client's (mUTF-7 or UTF-8) into canonical UTF-8 in
 * out. -1 when not a valid name in the client's encoding. */
int imap_name_from_client(struct imap_session *s, const struct imap_arg *a,
                          struct buf *out);
/* A name for the client (quoted or literal, mUTF-7 before rev2). */
void imap_write_mailbox(struct imap_session *s, const char *name);

/* ---- the view (session.c) ---- */

bool imap_selected(const struct imap_session *s);
/* Index of uid in the view, or -1. */
ptrdiff_t imap_view_find(const struct imap_view *v, uint32_t uid);
/* First index whose UID is >= uid. */
size_t imap_view_lower(const struct imap_view *v, uint32_t uid);
bool imap_msg_recent(const struct imap_session *s, const struct imap_msg *m);
size_t imap_view_recent_count(const struct imap_session *s);
/* Open name as the view (SELECT/EXAMINE); store error code or 0. */
int imap_view_open(struct imap_session *s, const char *name, bool readonly,
                   char **error_r);
/* Close the view; the \Recent boundary is remembered. */
void imap_view_close(struct imap_session *s);
/* Take in what changed in the store (no output). */
void imap_view_sync(struct imap_session *s);
/* Give msgs[] back when the client has heard everything (an IDLE that may
 * last hours); imap_view_wake() makes it again from the store. */
void imap_view_sleep(struct imap_session *s);
/* 0, or -1 when the store could not be read (the session must end). */
int imap_view_wake(struct imap_session *s);
/* Exact sizes and INTERNALDATEs for the messages at idx[0..n) (idx NULL:
 * all of them) whose files the store has not read yet; -1 (error_r set,
 * malloc'd) when it could not. */
int imap_view_sizes(struct imap_session *s, const uint32_t *idx, size_t n,
                    char **error_r);
/* Mark uids[0..n) expunged (our own EXPUNGE or MOVE). */
void imap_view_mark_expunged(struct imap_session *s, const uint32_t *uids,
                             size_t n);
/* Write what the client must hear: EXPUNGE (when allowed), FLAGS, EXISTS,
 * RECENT, FETCH FLAGS. false when the slice filled up first. */
bool imap_view_notify(struct imap_session *s, bool allow_expunge);
/* The flags of a message ("FLAGS (…)"), \Recent included before rev2. */
void imap_write_flags(struct imap_session *s, const struct imap_msg *m);
/* FLAGS and PERMANENTFLAGS (SELECT, and again after a new keyword). */
void imap_write_flags_responses(struct imap_session *s);
/* Them again now if a new keyword appeared (before a FETCH shows it). */
void imap_view_flags_notify(struct imap_session *s);
/* The messages named by a sequence set argument (or "$") as ascending
 * view indices. uid: UIDs instead of sequence numbers. -1 with *error_r
 * for a BAD answer. */
int imap_view_resolve(struct imap_session *s, const struct imap_arg *a,
                      bool uid, uint32_t **idx_r, size_t *n_r,
                      const char **error_r);
/* Append a compact set "1:3,7" of ascending numbers. */
void imap_write_set(struct buf *out, const uint32_t *v, size_t n);

/* ---- command run functions (one family per file) ---- */

/* cmd_mailbox.c */
void imap_cmd_select(struct imap_session *s, const struct imap_command *c);
void imap_cmd_examine(struct imap_session *s, const struct imap_command *c);
void imap_cmd_create(struct imap_session *s, const struct imap_command *c);
void imap_cmd_delete(struct imap_session *s, const struct imap_command *c);
void imap_cmd_rename(struct imap_session *s, const struct imap_command *c);
void imap_cmd_subscribe(struct imap_session *s, const struct imap_command *c);
void imap_cmd_unsubscribe(struct imap_session *s, const struct imap_command *c);
void imap_cmd_list(struct imap_session *s, const struct imap_command *c);
void imap_cmd_lsub(struct imap_session *s, const struct imap_command *c);
void imap_cmd_status(struct imap_session *s, const struct imap_command *c);

/* cmd_message.c */
void imap_cmd_append(struct imap_session *s, const struct imap_command *c);
void imap_cmd_store(struct imap_session *s, const struct imap_command *c);
void imap_cmd_copy(struct imap_session *s, const struct imap_command *c);
void imap_cmd_move(struct imap_session *s, const struct imap_command *c);
void imap_cmd_expunge(struct imap_session *s, const struct imap_command *c);
void imap_cmd_close(struct imap_session *s, const struct imap_command *c);
void imap_cmd_unselect(struct imap_session *s, const struct imap_command *c);

/* cmd_fetch.c */
void imap_cmd_fetch(struct imap_session *s, const struct imap_command *c);

/* cmd_search.c */
void imap_cmd_search(struct imap_session *s, const struct imap_command *c);
/* SEARCHRES: forget "$" (SELECT, EXAMINE, CLOSE, UNSELECT). */
void imap_saved_clear(struct imap_session *s);

#endif
