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
};

/* What front's checks decided about the message. */
#define SPOOL_FLAG_JUNK 0x1 /* deliver to the Junk mailbox (DMARC) */

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
};

struct spool;

/* dir: data/queue (must exist). Creates or opens queue.db. Files in dir
 * with no committed envelope (a crash between create and commit) are
 * removed here. */
struct spool *spool_open(const char *dir, char **error_r);
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
/* Record an attempt's outcome for one recipient: delivered, failed for
 * good, or (SPOOL_RCPT_PENDING) retry at next_try_ms. When no recipient
 * of the message is pending any more, the file and rows go. */
int spool_rcpt_result(struct spool *sp, const char *id, const char *address,
                      enum spool_rcpt_state state, const char *diagnostic,
                      uint64_t next_try_ms, char **error_r);
/* The retry schedule: the wait after attempt n (1-based). */
uint64_t spool_retry_delay_ms(unsigned attempts);

/* Counts for `tern queue list` and the logs. */
int spool_count(struct spool *sp, size_t *messages_r, size_t *pending_r,
                char **error_r);

#endif
