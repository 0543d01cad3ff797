/* The spool: one file per message in data/queue/ and the envelopes in
 * data/queue/queue.db (SQLite), with each recipient's state, attempts and
 * next try. Only queue creates spool files (ARCHITECTURE.md invariant 3):
 * front writes into a descriptor from spool_create().
 * Durable before acknowledged: spool_commit() returns only once the file
 * and its directory are fsync'd and the envelope row is committed.
 * SECURITY: ids are generated here (hex), never taken from peers; paths are
 * built from ids only; envelope strings are bound parameters. */
#ifndef TERN_QUEUE_SPOOL_H
#define TERN_QUEUE_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SPOOL_ID_SIZE 17 /* 16 hex digits + NUL */

enum spool_rcpt_state {
	SPOOL_RCPT_PENDING,   /* to be delivered (next_try says when) */
	SPOOL_RCPT_DELIVERED, /* done */
	SPOOL_RCPT_FAILED,    /* permanent failure (a bounce is due) */
};

struct spool_rcpt {
	char *address;   /* the final address (after alias expansion) */
	char *orcpt;     /* the address as the client gave it, or NULL */
	unsigned notify; /* DSN NOTIFY bits, as smtp/server.h */
	bool local;      /* deliver to a mailbox here (else: outbound) */
	/* Forwarded: an alias of ours sends the message on to this
	 * external address (its copy carries fwd_headers, the ARC set). */
	bool forwarded;
	/* The envelope sender for this recipient (SRS), or NULL for the
	 * message's mail_from. */
	char *sender;
};

/* What front's checks decided about the message. */
#define SPOOL_FLAG_JUNK 0x1 /* deliver to the Junk mailbox (DMARC) */
/* A message of queue's own, to be DKIM-signed before it is due: no
 * recipient is looked at until spool_sign_done. */
#define SPOOL_FLAG_SIGN 0x2

struct spool_envelope {
	char *mail_from; /* "" for <> */
	char *helo;
	char *client_ip;
	char *auth_user; /* or NULL */
	char *ret;       /* DSN RET or NULL */
	char *envid;     /* DSN ENVID or NULL */
	bool smtputf8;
	uint64_t size; /* bytes in the spool file */
	/* Header fields front added after its checks (Authentication-Results,
	 * Received-SPF, DKIM-Signature…), CRLF-terminated, to be put before
	 * the message wherever it goes; or NULL. */
	char *headers;
	/* Header fields to put before those for forwarded recipients only
	 * (the ARC set), or NULL. */
	char *fwd_headers;
	uint32_t flags; /* SPOOL_FLAG_* */
	struct spool_rcpt *rcpts;
	size_t nrcpts;
};

/* A recipient due for an attempt. */
struct spool_due {
	char id[SPOOL_ID_SIZE];
	char *address;
	bool local;
	unsigned attempts;
	uint64_t created_ms; /* when the message was committed */
	unsigned notify;     /* DSN NOTIFY bits given at RCPT */
	char *orcpt;         /* or NULL */
	char *sender;        /* SRS envelope sender, or NULL (mail_from) */
	bool forwarded;      /* see spool_rcpt */
};

struct spool;

/* dir: data/queue (must exist). Creates or opens queue.db. Files in dir
 * with no committed envelope (a crash between create and commit) are
 * removed here. */
struct spool *spool_open(const char *dir, char **error_r);
/* For the CLI beside a running queue: no clean-up of uncommitted files
 * (they may be a session's message being written right now). */
struct spool *spool_open_admin(const char *dir, char **error_r);
void spool_close(struct spool **sp);

/* A new, empty message file (O_RDWR, 0600). The caller passes the fd on;
 * nothing is durable until spool_commit(). -1 with *error_r. */
int spool_create(struct spool *sp, char id_r[SPOOL_ID_SIZE], char **error_r);
/* fsync the file and the directory, then record env in one transaction. */
int spool_commit(struct spool *sp, const char *id,
                 const struct spool_envelope *env, char **error_r);
/* Group commit: fsync each file, the directory once, then record every
 * envelope in one transaction; if that transaction fails, each message is
 * tried again on its own, so that one bad message fails no other.
 * results[i] is 0 once message i is durable, else -1 (each failure is
 * logged here with its id). 0 when all are durable, else -1 with the first
 * failure in *error_r. */
int spool_commit_batch(struct spool *sp, const char *const *ids,
                       const struct spool_envelope *const *envs, size_t n,
                       int *results, char **error_r);
/* The same group commit in steps, for a caller whose thread must not wait
 * for the disk: begin, then spool_commit_sync_files() (on any thread),
 * spool_commit_insert(), spool_commit_sync_rows() (on any thread), end.
 * The steps of one commit run one at a time and in that order; between
 * them the caller may use the spool for anything else, but not close it.
 * ids and envs stay the caller's and must outlive the commit. From insert
 * on, the rows are in the database, not yet on disk: a crash before the
 * WAL's sync loses them, and the messages were not acknowledged. */
struct spool_commit;
struct spool_commit *
spool_commit_begin(struct spool *sp, const char *const *ids,
                   const struct spool_envelope *const *envs, size_t n);
void spool_commit_sync_files(struct spool_commit *c);
void spool_commit_insert(struct spool_commit *c);
void spool_commit_sync_rows(struct spool_commit *c);
/* results[i] is 0 once message i is durable, else -1 (logged here); the
 * number failed, the first one's words in *error_r when error_r is not
 * NULL. Frees *c. */
size_t spool_commit_end(struct spool_commit **c, int *results, char **error_r);
/* Forget an uncommitted file. */
void spool_discard(struct spool *sp, const char *id);

/* Recipients whose next try is due at now_ms (at most max). */
int spool_due(struct spool *sp, uint64_t now_ms, size_t max,
              struct spool_due **due_r, size_t *n_r, char **error_r);
void spool_due_free(struct spool_due **due, size_t n);
/* The message file, read-only, for a delivery. -1 with *error_r. */
int spool_open_message(struct spool *sp, const char *id, char **error_r);
/* The envelope of a committed message (for Return-Path, DSN…). */
int spool_envelope(struct spool *sp, const char *id,
                   struct spool_envelope *env_r, char **error_r);
void spool_envelope_clear(struct spool_envelope *env);
/* An attempt's outcome for one recipient, with what a DSN needs. */
struct spool_result {
	enum spool_rcpt_state state;
	const char *diagnostic; /* the remote's reply or our words, or NULL */
	const char *remote_mta; /* the host that answered, or NULL */
	const char *status;     /* enhanced status "5.1.1", or NULL */
	uint64_t next_try_ms;   /* PENDING: when to try again */
	/* DELIVERED: handed to a remote server (the DSN action is
	 * "relayed" rather than "delivered")… */
	bool relayed;
	/* …which offered DSN and took NOTIFY along: no success DSN here. */
	bool dsn_passed;
	/* PENDING: the recipient has waited long enough for a delay notice
	 * (NOTIFY=DELAY, or no NOTIFY); one is marked due, once. */
	bool delay_notice;
};
/* Record an attempt's outcome for one recipient: delivered, failed for
 * good, or (PENDING) retry at next_try_ms. Marks a DSN as due when the
 * recipient's NOTIFY asks for one (FAILED: unless NOTIFY=NEVER or NOTIFY
 * without FAILURE; DELIVERED: NOTIFY has SUCCESS and !dsn_passed) and the
 * envelope sender is not <>. The message stays while a DSN is due, even
 * when every recipient is final. Attempts count up by one; the last try
 * time is recorded. 0, 1 when the message or recipient is not in the
 * spool (deleted meanwhile), -1 with *error_r. */
int spool_rcpt_update(struct spool *sp, const char *id, const char *address,
                      const struct spool_result *res, char **error_r);
/* Several outcomes in one transaction (they arrive together from store):
 * rcs[i] and errors[i] (malloc'd, the caller frees) as spool_rcpt_update
 * returns them for o[i]. One that fails leaves the others. */
struct spool_outcome {
	const char *id;
	const char *address;
	const struct spool_result *res;
};
void spool_rcpt_update_many(struct spool *sp, const struct spool_outcome *o,
                            size_t n, int *rcs, char **errors);
/* The outcomes above commit without an fsync of their own (lost in a power
 * cut, the recipient is tried again); the file of a message they finish is
 * removed after the next commit that syncs (a message accepted), by
 * spool_flush(), which syncs now, or by spool_close(). */
void spool_flush(struct spool *sp);
/* Files waiting so at most: past that, an outcome commits with a sync. */
#define SPOOL_LATER_MAX 256

/* Removing a finished message's file (emptying it into the pool, or an
 * unlink) frees its blocks, which can wait for the disk (a discard): from
 * spool_defer_removals() on, such files wait until the owner takes them
 * (spool_recycle_take(), NULL when none wait), removes them on any thread
 * (spool_recycle_run(), which touches only the file system) and hands the
 * result back (spool_recycle_done(), which frees *r). Only after the
 * deletion of their rows is on disk, as before. spool_close() removes
 * the files still waiting; a recycle taken must be done before it. */
void spool_defer_removals(struct spool *sp);
struct spool_recycle *spool_recycle_take(struct spool *sp);
void spool_recycle_run(struct spool_recycle *r);
void spool_recycle_done(struct spool *sp, struct spool_recycle **r);

/* ---- DSNs due ---- */
struct spool_dsn_rcpt {
	char *address;
	char *orcpt;                 /* or NULL */
	enum spool_rcpt_state state; /* FAILED or DELIVERED */
	bool relayed;
	char *status;         /* or NULL */
	char *diagnostic;     /* or NULL */
	char *remote_mta;     /* or NULL */
	uint64_t last_try_ms; /* 0: never tried */
};
/* Ids of messages with a DSN due (at most max), oldest first; *ids_r is
 * one malloc'd array. Held messages are left out until released. */
int spool_dsn_due(struct spool *sp, size_t max, char (**ids_r)[SPOOL_ID_SIZE],
                  size_t *n_r, char **error_r);
/* The recipients of id whose DSN is due. */
int spool_dsn_rcpts(struct spool *sp, const char *id,
                    struct spool_dsn_rcpt **rcpts_r, size_t *n_r,
                    char **error_r);
void spool_dsn_rcpts_free(struct spool_dsn_rcpt **rcpts, size_t n);
/* The DSN for those recipients is in the spool (or was not wanted):
 * clear their due marks, and drop the message (file and rows) when no
 * recipient is pending any more. 0, 1 when there is no such message
 * (deleted meanwhile), -1 with *error_r. */
int spool_dsn_done(struct spool *sp, const char *id, char **error_r);

/* Messages waiting to be signed (SPOOL_FLAG_SIGN), oldest first. */
int spool_sign_due(struct spool *sp, size_t max, char (**ids_r)[SPOOL_ID_SIZE],
                   size_t *n_r, char **error_r);
/* Put fields ("" for none: the message goes unsigned) on top of the
 * message's header fields and make it due. 0, 1 when there is no such
 * message waiting, -1 with *error_r. */
int spool_sign_done(struct spool *sp, const char *id, const char *fields,
                    char **error_r);

/* ---- the operator's view (tern queue) ---- */
struct spool_rcpt_info {
	char *address;
	char *orcpt;
	bool local;
	enum spool_rcpt_state state;
	unsigned attempts;
	uint64_t next_try_ms;
	uint64_t last_try_ms;
	char *diagnostic; /* the last attempt's outcome, or NULL */
	char *remote_mta; /* or NULL */
	bool forwarded;   /* an alias of ours sends it on outside */
	char *sender;     /* its SRS envelope sender, or NULL */
};
struct spool_info {
	char id[SPOOL_ID_SIZE];
	char *mail_from;
	char *auth_user; /* or NULL */
	char *client_ip;
	uint64_t size;
	uint64_t created_ms;
	bool held;
	bool signing;         /* queue's own, waiting for its signatures */
	size_t npending;      /* recipients still pending */
	uint64_t next_try_ms; /* earliest of the pending ones, 0: none */
	struct spool_rcpt_info *rcpts;
	size_t nrcpts;
};
/* Every message, oldest first, recipients included. */
int spool_list(struct spool *sp, struct spool_info **list_r, size_t *n_r,
               char **error_r);
/* One message: 0, 1 when there is no such id, -1 with *error_r. */
int spool_show(struct spool *sp, const char *id, struct spool_info *info_r,
               char **error_r);
void spool_info_clear(struct spool_info *info);
void spool_list_free(struct spool_info **list, size_t n);
/* Held messages are never due (spool_due skips them) until released.
 * Each: 0, 1 when there is no such id, -1 with *error_r. */
int spool_hold(struct spool *sp, const char *id, bool hold, char **error_r);
/* Every pending recipient of id is due now (next_try_ms 0). A held
 * message is left as it is (0): release it first. */
int spool_retry_now(struct spool *sp, const char *id, char **error_r);
/* Remove the message (rows and file) without any DSN. */
int spool_delete(struct spool *sp, const char *id, char **error_r);
/* Hold every message whose auth_user is user (the abuse limits):
 * how many in *n_r (those that changed: already held ones do not
 * count). */
int spool_hold_user(struct spool *sp, const char *user, bool hold, size_t *n_r,
                    char **error_r);

/* The retry schedule: the wait after the nth failed attempt (1-based;
 * 0 counts as 1) is first_ms, doubling, at most max_ms. */
uint64_t spool_retry_delay_ms(uint64_t first_ms, uint64_t max_ms,
                              unsigned attempts);

/* Counts for `tern queue list` and the logs. */
int spool_count(struct spool *sp, size_t *messages_r, size_t *pending_r,
                char **error_r);

#endif
