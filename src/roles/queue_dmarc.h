/* queue, DMARC aggregate reports (RFC 7489 §7.2): front hands over one
 * record per message it checked on the MX listener (IPC_MSG_DMARC_RECORD);
 * they are counted in data/queue/dmarc.db per dmarc_report_interval, and
 * when a period ends each policy domain's report is sent to its rua
 * mailto: addresses (external ones only when they agree, §7.1). */
#ifndef TERN_ROLES_QUEUE_DMARC_H
#define TERN_ROLES_QUEUE_DMARC_H

#include <stdbool.h>

#include "core/ipc.h"
#include "mailauth/dmarc_agg.h"
#include "roles/roles.h"

/* Bounds of IPC_MSG_DMARC_RECORD: ten u32 and four strings at least. */
#define QUEUE_DMARC_RECORD_MIN 64
#define QUEUE_DMARC_RECORD_MAX DMARC_AGG_RECORD_WIRE_MAX

/* After queue_send_start (the worker pool and resolver exist). */
void queue_dmarc_start(struct child_ctx *ctx);
/* The config changed (the interval may have). */
void queue_dmarc_reload(struct child_ctx *ctx);
void queue_dmarc_stop(struct child_ctx *ctx);
/* IPC_MSG_DMARC_RECORD from front. */
void queue_dmarc_record(struct child_ctx *ctx, struct ipc_msg *msg);

#endif
