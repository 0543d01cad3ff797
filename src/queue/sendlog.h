/* The sending ledger: per authenticated user, what was sent when
 * (data/queue/sendlog.db, SQLite in WAL mode), for the abuse limits of
 * roles/queue_limits.c: messages and recipients in the last hour, the
 * user's usual hourly volume, and when the user was last suspended. Pure:
 * no event loop, no IPC; time is the now_ms the caller passes.
 * SECURITY: user names come from lookup's canonical addresses; they are
 * bound parameters, bounded at SENDLOG_USER_MAX bytes. Every statement
 * reads a bounded number of rows (one hour of one user's messages, at most
 * SENDLOG_USUAL_HOURS totals, at most `max` rows per prune). */
#ifndef TERN_QUEUE_SENDLOG_H
#define TERN_QUEUE_SENDLOG_H

#include <stddef.h>
#include <stdint.h>

#define SENDLOG_USER_MAX 512
#define SENDLOG_HOUR_MS (60ULL * 60 * 1000)
/* sendlog_usual looks this many whole hours back (7 days). */
#define SENDLOG_USUAL_HOURS (7 * 24)

struct sendlog;

/* path: the database file (made 0600 if missing). NULL with *error_r. */
struct sendlog *sendlog_open(const char *path, char **error_r);
void sendlog_close(struct sendlog **log);

/* One message sent by user at now_ms to nrcpts recipients (the remote
 * ones: the caller counts only those). nrcpts 0 records nothing. One
 * transaction: the message's row and its hour's totals. 0 or -1. */
int sendlog_record(struct sendlog *log, const char *user, uint64_t now_ms,
                   unsigned nrcpts, char **error_r);
/* Messages and recipients of user recorded at or after since_ms, and
 * after the user's last suspension (sendlog_suspended): a resumed user
 * starts from zero. 0 or -1. */
int sendlog_window(struct sendlog *log, const char *user, uint64_t since_ms,
                   uint64_t *msgs_r, uint64_t *rcpts_r, char **error_r);
/* The most messages user sent in one whole clock hour of the
 * SENDLOG_USUAL_HOURS before now_ms's hour (that hour left out), leaving
 * out hours marked by a suspension; 0 for a user with no history. */
int sendlog_usual(struct sendlog *log, const char *user, uint64_t now_ms,
                  uint64_t *hourly_max_r, char **error_r);
/* user was suspended at now_ms: sendlog_window counts from here on, and
 * the hours the last hour's window touched (now_ms's and the one before)
 * no longer count as usual. */
int sendlog_suspended(struct sendlog *log, const char *user, uint64_t now_ms,
                      char **error_r);
/* Forget hourly totals of hours that ended before before_ms, single
 * messages recorded before detail_before_ms, and suspensions before
 * before_ms: at most max rows of each kind per call. *removed_r is the
 * most rows of one kind removed: when it is max, more may be left. */
int sendlog_prune(struct sendlog *log, uint64_t before_ms,
                  uint64_t detail_before_ms, size_t max, size_t *removed_r,
                  char **error_r);

#endif
