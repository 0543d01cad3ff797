/* The delivery ledger: which (queue id, recipient) pairs store has already
 * put into a mailbox. queue records a delivery only after store reports
 * it, so a crash in between makes queue ask again: the ledger turns that
 * second attempt into "already delivered" instead of a second copy.
 * SECURITY: ids and addresses are bound parameters; the file is 0600. */
#ifndef TERN_STORE_LEDGER_H
#define TERN_STORE_LEDGER_H

#include <stdbool.h>
#include <stdint.h>

/* How long a pair is remembered: longer than any retry of one message. */
#define LEDGER_KEEP_MS (10ULL * 24 * 60 * 60 * 1000)

struct ledger;

struct ledger *ledger_open(const char *path, char **error_r);
void ledger_close(struct ledger **l);
/* 1 seen, 0 not, -1 error (treated as not seen by callers: a duplicate is
 * better than a loss). */
int ledger_seen(struct ledger *l, const char *id, const char *rcpt);
/* After the message is durable in the mailbox. */
int ledger_record(struct ledger *l, const char *id, const char *rcpt,
                  uint64_t now_ms);
/* Forget pairs older than LEDGER_KEEP_MS. */
void ledger_prune(struct ledger *l, uint64_t now_ms);
/* The records and prunes in between are one transaction, one sync at
 * ledger_commit (when BEGIN fails, each commits on its own). */
void ledger_begin(struct ledger *l);
int ledger_commit(struct ledger *l);

#endif
