/* queue, reports of its own (DMARC aggregate reports, TLS-RPT reports) to
 * an address from DNS: lookup says where the address lives (a mailbox
 * here, an alias, or another domain, as for a DSN), then the message is
 * committed to the spool from the report address with NOTIFY=NEVER (no
 * report may bounce into a loop) and queue_sign.c signs it. The caller
 * learns the outcome through its callback, on the loop.
 * SECURITY: the address was parsed by the caller (dmarc_agg_mailto,
 * tlsrpt_mailto); lookup resolves it like any recipient. */
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/clock.h"
#include "core/ipc.h"
#include "core/log.h"
#include "core/xmalloc.h"
#include "roles/queue_int.h"

/* Our RCPT_CHECK request ids: this bit set and the two above it clear
 * (0x80000000 is queue_limits.c's, 0x40000000 was queue_dmarc.c's;
 * DSNs count up from 1). */
#define REQID_BIT 0x20000000u
#define PENDING_MAX 256
/* lookup answers at once; a question out this long is given up. */
#define ANSWER_MS (60 * 1000)

struct outbox_item {
	bool active;
	uint32_t reqid;
	uint64_t asked_ms;
	char *from, *to;
	struct buf msg;
	queue_outbox_done_fn *done;
	void *arg;
};

static struct {
	struct outbox_item item[PENDING_MAX];
	uint32_t reqid;
} ob;

static void
item_finish(struct child_ctx *ctx, struct outbox_item *it,
            enum queue_outbox_result r, const char *why, const char *id)
{
	queue_outbox_done_fn *done = it->done;
	void *arg = it->arg;

	free(it->from);
	free(it->to);
	buf_free(&it->msg);
	memset(it, 0, sizeof(*it));
	done(ctx, arg, r, why, id);
}

void
queue_outbox_send(struct child_ctx *ctx, const char *from, const char *to,
                  struct buf *msg, queue_outbox_done_fn *done, void *arg)
{
	struct ipc_peer *lookup = child_peer(ctx, "lookup");
	struct outbox_item *it = NULL;
	struct buf b;

	for (size_t i = 0; i < PENDING_MAX && it == NULL; i++)
		if (!ob.item[i].active)
			it = &ob.item[i];
	if (it == NULL || lookup == NULL) {
		buf_free(msg);
		done(ctx, arg, QUEUE_OUTBOX_LATER,
		     it == NULL ? "busy" : "lookup-down", NULL);
		return;
	}
	it->active = true;
	it->from = xstrdup(from);
	it->to = xstrdup(to);
	it->msg = *msg;
	memset(msg, 0, sizeof(*msg));
	it->done = done;
	it->arg = arg;
	it->reqid = REQID_BIT | (++ob.reqid & (REQID_BIT - 1));
	it->asked_ms = clock_mono_ms();
	buf_init(&b, 0);
	ipc_put_str(&b, to);
	ipc_put_u32(&b, 1); /* as if authenticated: any domain resolves */
	ipc_put_str(&b, from);
	if (ipc_send(lookup, IPC_MSG_RCPT_CHECK, it->reqid, -1, b.data, b.len) <
	    0)
		item_finish(ctx, it, QUEUE_OUTBOX_LATER, "lookup-down", NULL);
	buf_free(&b);
}

/* Commit it for the final addresses lookup gave. */
static void
commit(struct child_ctx *ctx, struct outbox_item *it,
       const struct queue_finals *f)
{
	struct queue *q = ctx->role;
	struct spool_envelope env;
	char newid[SPOOL_ID_SIZE], *error = NULL;
	size_t len = it->msg.len;

	memset(&env, 0, sizeof(env));
	env.mail_from = it->from;
	env.helo = ctx->cfg->hostname;
	env.client_ip = "";
	env.rcpts = xcalloc(f->n, sizeof(*env.rcpts));
	env.nrcpts = f->n;
	for (size_t i = 0; i < f->n; i++) {
		env.rcpts[i].address = f->addr[i];
		env.rcpts[i].notify = 0x1; /* NEVER: nothing comes back */
		env.rcpts[i].local = f->local[i];
	}
	if (queue_inject(q, it->msg.data, len, &env, newid, &error) < 0) {
		log_error(NULL, "event=report-spool-failed to=<%s> error=%s",
		          it->to, error);
		free(error);
		free(env.rcpts);
		item_finish(ctx, it, QUEUE_OUTBOX_LATER, "spool", NULL);
		return;
	}
	log_info(newid, "event=queued from=<%s> size=%zu rcpts=%zu", it->from,
	         len, f->n);
	for (size_t i = 0; i < f->n; i++)
		log_info(newid, "event=rcpt to=<%s> orcpt=<%s> local=%s",
		         f->addr[i], it->to, f->local[i] ? "yes" : "no");
	free(env.rcpts);
	queue_kick(q);
	item_finish(ctx, it, QUEUE_OUTBOX_SENT, NULL, newid);
}

bool
queue_outbox_reply(struct child_ctx *ctx, struct ipc_msg *msg)
{
	struct outbox_item *it = NULL;
	struct queue_finals f;

	if ((msg->reqid & 0xe0000000u) != REQID_BIT)
		return false;
	for (size_t i = 0; i < PENDING_MAX && it == NULL; i++)
		if (ob.item[i].active && ob.item[i].reqid == msg->reqid)
			it = &ob.item[i];
	if (it == NULL)
		return true; /* given up since */
	if (queue_finals_read(msg, 1000, &f) < 0) {
		log_error(NULL, "event=bad-rcpt-reply");
		item_finish(ctx, it, QUEUE_OUTBOX_LATER, "lookup", NULL);
		return true;
	}
	if (f.result == 0 && f.n > 0)
		commit(ctx, it, &f);
	else if (f.result == 4)
		item_finish(ctx, it, QUEUE_OUTBOX_LATER, "lookup", NULL);
	else
		item_finish(ctx, it, QUEUE_OUTBOX_NEVER, "undeliverable", NULL);
	queue_finals_clear(&f);
	return true;
}

void
queue_outbox_run(struct child_ctx *ctx)
{
	uint64_t now = clock_mono_ms();

	for (size_t i = 0; i < PENDING_MAX; i++)
		if (ob.item[i].active && now - ob.item[i].asked_ms > ANSWER_MS)
			item_finish(ctx, &ob.item[i], QUEUE_OUTBOX_LATER,
			            "timeout", NULL);
}

void
queue_outbox_link_down(struct child_ctx *ctx)
{
	for (size_t i = 0; i < PENDING_MAX; i++)
		if (ob.item[i].active)
			item_finish(ctx, &ob.item[i], QUEUE_OUTBOX_LATER,
			            "lookup-down", NULL);
}
