/* queue, reports of its own (DMARC aggregate reports, TLS-RPT reports) to
 * an address from DNS: lookup says where the address lives (a mailbox
 * here, an alias, or another domain, as for a DSN), then the message is
 * committed to the spool from the report address with NOTIFY=NEVER (no
 * report may bounce into a loop) and queue_sign.c signs it. The caller
 * learns the outcome through its callback, on the loop. A batch is one
 * run's reports with their messages: its owner hears when each report's
 * messages are all answered, and when all reports are.
 * SECURITY: the address was parsed by the caller (dmarc_agg_mailto,
 * tlsrpt_mailto); lookup resolves it like any recipient. */
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/clock.h"
#include "core/ipc.h"
#include "core/log.h"
#include "core/xmalloc.h"
#include "roles/queue_int.h"

/* Our RCPT_CHECK request ids: this bit set and the two above it clear
 * (0x80000000 is queue_limits.c's, 0x40000000 is kept free; DSNs count
 * up from 1). */
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

/* ------------------------------------------------------------- batches */

struct report_batch *
report_batch_new(const struct report_batch_ops *ops, void *owner,
                 const char *from, size_t nreports)
{
	struct report_batch *b = xcalloc(1, sizeof(*b));

	b->ops = ops;
	b->owner = owner;
	b->from = xstrdup(from);
	b->nreports = nreports;
	b->finished = xcalloc(nreports > 0 ? nreports : 1, sizeof(bool));
	return b;
}

static struct report_msg *
batch_msg(struct report_batch *b, size_t report, const char *address)
{
	struct report_msg *m;

	b->msgs = xreallocarray(b->msgs, b->nmsgs + 1, sizeof(*b->msgs));
	m = &b->msgs[b->nmsgs++];
	memset(m, 0, sizeof(*m));
	m->report = report;
	snprintf(m->address, sizeof(m->address), "%s", address);
	return m;
}

void
report_batch_add(struct report_batch *b, size_t report, const char *address,
                 struct buf *msg)
{
	struct report_msg *m = batch_msg(b, report, address);

	m->state = REPORT_READY;
	m->msg = *msg;
	memset(msg, 0, sizeof(*msg));
}

void
report_batch_skip(struct report_batch *b, size_t report, const char *address,
                  bool later, const char *why)
{
	struct report_msg *m = batch_msg(b, report, address);

	m->state = later ? REPORT_LATER : REPORT_DROPPED;
	m->why = why;
}

/* Report i is done when none of its messages waits: the owner hears
 * whether one went, and whether one may go at a later run. */
static void
batch_report_check(struct child_ctx *ctx, struct report_batch *b, size_t i)
{
	bool sent = false, later = false;

	if (b->finished[i])
		return;
	for (size_t k = 0; k < b->nmsgs; k++) {
		const struct report_msg *m = &b->msgs[k];

		if (m->report != i)
			continue;
		if (m->state == REPORT_READY || m->state == REPORT_ASKED)
			return;
		sent |= m->state == REPORT_SENT;
		later |= m->state == REPORT_LATER;
	}
	b->finished[i] = true;
	b->ops->report_done(ctx, b->owner, i, sent, later);
}

static void
batch_check(struct child_ctx *ctx, struct report_batch *b)
{
	if (b->sending)
		return; /* report_batch_send checks when all are out */
	for (size_t i = 0; i < b->nreports; i++)
		batch_report_check(ctx, b, i);
	for (size_t i = 0; i < b->nreports; i++)
		if (!b->finished[i])
			return;
	b->ops->done(ctx, b->owner);
}

static void
batch_msg_done(struct child_ctx *ctx, void *arg, enum queue_outbox_result r,
               const char *why, const char *queue_id)
{
	struct report_msg *m = arg;
	struct report_batch *b = m->batch;

	m->state = r == QUEUE_OUTBOX_SENT    ? REPORT_SENT
	           : r == QUEUE_OUTBOX_LATER ? REPORT_LATER
	                                     : REPORT_DROPPED;
	m->why = why;
	b->ops->log(ctx, b->owner, m, queue_id);
	batch_check(ctx, b);
}

void
report_batch_send(struct child_ctx *ctx, struct report_batch *b)
{
	/* Answers may come at once: every state is set, and the batch
	 * marked sending, before the first message goes. */
	b->sending = true;
	for (size_t k = 0; k < b->nmsgs; k++) {
		struct report_msg *m = &b->msgs[k];

		m->batch = b;
		if (m->state == REPORT_READY)
			m->state = REPORT_ASKED;
		else
			b->ops->log(ctx, b->owner, m, NULL);
	}
	for (size_t k = 0; k < b->nmsgs; k++)
		if (b->msgs[k].state == REPORT_ASKED)
			queue_outbox_send(ctx, b->from, b->msgs[k].address,
			                  &b->msgs[k].msg, batch_msg_done,
			                  &b->msgs[k]);
	b->sending = false;
	batch_check(ctx, b);
}

void
report_batch_free(struct report_batch **bp)
{
	struct report_batch *b = *bp;

	if (b == NULL)
		return;
	for (size_t k = 0; k < b->nmsgs; k++)
		buf_free(&b->msgs[k].msg);
	free(b->msgs);
	free(b->finished);
	free(b->from);
	free(b);
	*bp = NULL;
}

void
queue_timer_set(struct event **ev, struct child_ctx *ctx, event_callback_fn cb,
                uint64_t delay_ms)
{
	struct timeval tv = {
	    .tv_sec = (time_t)(delay_ms / 1000),
	    .tv_usec = (suseconds_t)(delay_ms % 1000) * 1000,
	};

	if (*ev == NULL)
		*ev = evtimer_new(ctx->base, cb, ctx);
	if (*ev != NULL)
		evtimer_add(*ev, &tv);
}
