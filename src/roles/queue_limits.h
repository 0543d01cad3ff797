/* queue, sending limits: per authenticated user, messages and recipients
 * per hour, and a spike detector (far above the user's own usual rate).
 * Over a limit, the user's outbound mail is held, the user is suspended
 * (through lookup), the operator is told (a log line and a notice to
 * postmaster). `tern queue release ID` and `tern user resume ADDRESS`
 * undo it. */
#ifndef TERN_ROLES_QUEUE_LIMITS_H
#define TERN_ROLES_QUEUE_LIMITS_H

#include <stdbool.h>

#include "queue/spool.h"
#include "roles/roles.h"

/* Once per committed message (on the loop), before any delivery of it. */
void queue_limits_committed(struct child_ctx *ctx, const char *id,
                            const struct spool_envelope *env);
/* A RCPT_REPLY from lookup: true when it answers one of ours (where the
 * notice to postmaster goes), false when it is someone else's (a DSN's). */
bool queue_limits_reply(struct child_ctx *ctx, struct ipc_msg *msg);

#endif
