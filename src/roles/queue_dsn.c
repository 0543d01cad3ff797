/* queue, DSNs: when a recipient failed for good (or was delivered and its
 * NOTIFY asked for SUCCESS), the spool marks a DSN due; here lookup is
 * asked where the original sender lives (local mailbox, alias, or
 * elsewhere), the DSN is built (src/mail/dsn.c) and committed to the spool
 * as a new message from <>, and only then are the marks cleared.
 * A crash between the two sends the DSN twice, never not at all.
 * SECURITY: the DSN is addressed only to the envelope sender the message
 * arrived with, never to <> (the spool marks none for it), and quotes the
 * remote replies only through dsn_build's folding. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/xmalloc.h"
#include "mail/dsn.h"
#include "roles/queue_int.h"

#define DSN_BATCH 8
/* Beyond this, only the original's header section goes back (Postfix's
 * bounce_size_limit is 50 kB; a DSN is not a way to copy large mail). */
#define DSN_ORIGINAL_MAX (256 * 1024)
#define DSN_MESSAGE_MAX (DSN_ORIGINAL_MAX + 256 * 1024)
#define DSN_READ_MAX (64 * 1024 * 1024)

static struct dsn_pending *
pending_find(struct queue *q, const char *id)
{
	for (size_t i = 0; i < DSN_PENDING_MAX; i++)
		if (q->dsn[i].active && strcmp(q->dsn[i].id, id) == 0)
			return &q->dsn[i];
	return NULL;
}

static struct dsn_pending *
pending_free_slot(struct queue *q)
{
	for (size_t i = 0; i < DSN_PENDING_MAX; i++)
		if (!q->dsn[i].active)
			return &q->dsn[i];
	return NULL;
}

/* Ask lookup where the sender of id lives; the answer comes to
 * queue_dsn_reply(). */
static void
dsn_ask(struct child_ctx *ctx, struct ipc_peer *lookup, const char *id)
{
	struct queue *q = ctx->role;
	struct spool_envelope env;
	struct dsn_pending *p = pending_free_slot(q);
	char *error = NULL;
	struct buf b;

	if (p == NULL)
		return;
	if (spool_envelope(q->spool, id, &env, &error) < 0) {
		log_error(id, "event=spool-read-failed error=%s", error);
		free(error);
		return;
	}
	buf_init(&b, 0);
	ipc_put_str(&b, env.mail_from);
	ipc_put_u32(&b, 1);  /* as if authenticated: any domain resolves */
	ipc_put_str(&b, ""); /* a DSN's sender is <> */
	p->reqid = ++q->dsn_reqid;
	if (ipc_send(lookup, IPC_MSG_RCPT_CHECK, p->reqid, -1, b.data, b.len) ==
	    0) {
		snprintf(p->id, sizeof(p->id), "%s", id);
		p->active = true;
	}
	buf_free(&b);
	spool_envelope_clear(&env);
}

void
queue_dsn_run(struct child_ctx *ctx)
{
	struct queue *q = ctx->role;
	struct ipc_peer *lookup = child_peer(ctx, "lookup");
	char(*ids)[SPOOL_ID_SIZE] = NULL;
	char *error = NULL;
	size_t n = 0;

	if (lookup == NULL || ctx->stopping)
		return;
	if (spool_dsn_due(q->spool, DSN_BATCH, &ids, &n, &error) < 0) {
		log_error(NULL, "event=spool-dsn-due-failed error=%s", error);
		free(error);
		return;
	}
	for (size_t i = 0; i < n; i++)
		if (pending_find(q, ids[i]) == NULL)
			dsn_ask(ctx, lookup, ids[i]);
	free(ids);
}

void
queue_dsn_link_down(struct child_ctx *ctx)
{
	struct queue *q = ctx->role;

	/* Unanswered questions are asked again once lookup is back. */
	for (size_t i = 0; i < DSN_PENDING_MAX; i++)
		q->dsn[i].active = false;
}

/* The original message as spooled, up to DSN_READ_MAX bytes. */
static int
read_original(struct queue *q, const char *id, struct buf *out, char **error_r)
{
	int fd = spool_open_message(q->spool, id, error_r);
	uint8_t chunk[65536];
	ssize_t r;

	if (fd < 0)
		return -1;
	while ((r = read(fd, chunk, sizeof(chunk))) != 0) {
		if (r < 0) {
			if (errno == EINTR)
				continue;
			*error_r = xasprintf("read: %s", strerror(errno));
			close(fd);
			return -1;
		}
		if (buf_append(out, chunk, (size_t)r) < 0)
			break; /* the rest goes unquoted */
	}
	close(fd);
	return 0;
}

static enum dsn_action
dsn_action_of(const struct spool_dsn_rcpt *r)
{
	if (r->state == SPOOL_RCPT_FAILED)
		return DSN_FAILED;
	if (r->state == SPOOL_RCPT_PENDING)
		return DSN_DELAYED;
	return r->relayed ? DSN_RELAYED : DSN_DELIVERED;
}

/* Build the DSN for id and commit it addressed to finals. 0 done (or
 * nothing to send), -1 try again later. */
static int
dsn_send(struct child_ctx *ctx, const char *id, char **finals,
         const bool *locals, size_t nfinals)
{
	struct queue *q = ctx->role;
	struct spool_envelope env, denv;
	struct spool_dsn_rcpt *rc = NULL;
	struct spool_info info;
	struct dsn_rcpt *dr = NULL;
	struct dsn_report rep;
	struct buf orig, msg;
	char newid[SPOOL_ID_SIZE], msgid[128], *error = NULL;
	size_t nrc = 0;
	int ret = -1;

	memset(&env, 0, sizeof(env));
	memset(&denv, 0, sizeof(denv));
	memset(&info, 0, sizeof(info));
	buf_init(&orig, DSN_READ_MAX);
	buf_init(&msg, DSN_MESSAGE_MAX);
	if (spool_envelope(q->spool, id, &env, &error) < 0 ||
	    spool_show(q->spool, id, &info, &error) != 0 ||
	    spool_dsn_rcpts(q->spool, id, &rc, &nrc, &error) < 0 ||
	    read_original(q, id, &orig, &error) < 0)
		goto out;
	if (nrc == 0) {
		ret = spool_dsn_done(q->spool, id, &error);
		goto out;
	}
	dr = xcalloc(nrc, sizeof(*dr));
	for (size_t i = 0; i < nrc; i++) {
		dr[i].address = rc[i].address;
		/* Original-Recipient only when the client gave ORCPT
		 * (type;address); otherwise the spool keeps the address
		 * as given, which Final-Recipient already shows. */
		dr[i].orcpt =
		    rc[i].orcpt != NULL && strchr(rc[i].orcpt, ';') != NULL
		        ? rc[i].orcpt
		        : NULL;
		dr[i].action = dsn_action_of(&rc[i]);
		dr[i].status = rc[i].status != NULL         ? rc[i].status
		               : dr[i].action == DSN_FAILED ? "5.0.0"
		                                            : "2.0.0";
		dr[i].remote_mta = rc[i].remote_mta;
		dr[i].diagnostic = rc[i].diagnostic;
		dr[i].last_attempt = (time_t)(rc[i].last_try_ms / 1000);
		if (dr[i].action == DSN_DELAYED)
			dr[i].will_retry_until =
			    (time_t)((info.created_ms +
			              ctx->cfg->queue_lifetime_ms) /
			             1000);
	}
	snprintf(msgid, sizeof(msgid), "<%s.dsn.%llu@%s>", id,
	         (unsigned long long)clock_wall_ms(), ctx->cfg->hostname);
	memset(&rep, 0, sizeof(rep));
	rep.reporting_mta = ctx->cfg->hostname;
	rep.sender = env.mail_from;
	rep.queue_id = id;
	rep.envid = env.envid;
	rep.arrival = (time_t)(info.created_ms / 1000);
	rep.now = time(NULL);
	rep.message_id = msgid;
	rep.smtputf8 = env.smtputf8;
	rep.headers_only = env.ret != NULL && strcasecmp(env.ret, "HDRS") == 0;
	rep.max_original = DSN_ORIGINAL_MAX;
	rep.rcpts = dr;
	rep.nrcpts = nrc;
	/* The header fields front added travel with the original. */
	{
		struct buf full;

		buf_init(&full, DSN_READ_MAX);
		if (env.headers != NULL)
			(void)buf_append_str(&full, env.headers);
		(void)buf_append(&full, orig.data, orig.len);
		if (dsn_build(&rep, full.data, full.len, &msg) < 0) {
			buf_free(&full);
			error = xstrdup("DSN too large");
			goto out;
		}
		buf_free(&full);
	}
	denv.mail_from = "";
	denv.helo = ctx->cfg->hostname;
	denv.client_ip = "";
	denv.smtputf8 = env.smtputf8;
	denv.rcpts = xcalloc(nfinals, sizeof(*denv.rcpts));
	denv.nrcpts = nfinals;
	for (size_t i = 0; i < nfinals; i++) {
		denv.rcpts[i].address = finals[i];
		denv.rcpts[i].notify = 0x1; /* NEVER: no DSN about a DSN */
		denv.rcpts[i].local = locals[i];
	}
	if (queue_inject(q, msg.data, msg.len, &denv, newid, &error) < 0) {
		free(denv.rcpts);
		goto out;
	}
	free(denv.rcpts);
	log_info(newid, "event=queued from=<> size=%zu rcpts=%zu dsn-for=%s",
	         msg.len, nfinals, id);
	for (size_t i = 0; i < nrc; i++)
		log_info(id,
		         "event=dsn-queued to=<%s> action=%s rcpt=<%s> "
		         "dsn=%s",
		         env.mail_from,
		         dr[i].action == DSN_FAILED    ? "failed"
		         : dr[i].action == DSN_RELAYED ? "relayed"
		         : dr[i].action == DSN_DELAYED ? "delayed"
		                                       : "delivered",
		         dr[i].address, newid);
	ret = spool_dsn_done(q->spool, id, &error);
	queue_kick(q);
out:
	if (ret < 0 && error != NULL)
		log_error(id, "event=dsn-failed error=%s", error);
	free(error);
	free(dr);
	spool_dsn_rcpts_free(&rc, nrc);
	spool_info_clear(&info);
	spool_envelope_clear(&env);
	buf_free(&orig);
	buf_free(&msg);
	return ret;
}

void
queue_dsn_reply(struct child_ctx *ctx, struct ipc_msg *msg)
{
	struct queue *q = ctx->role;
	struct dsn_pending *p = NULL;
	struct queue_finals f;
	char *error = NULL;

	for (size_t i = 0; i < DSN_PENDING_MAX && p == NULL; i++)
		if (q->dsn[i].active && q->dsn[i].reqid == msg->reqid)
			p = &q->dsn[i];
	if (p == NULL)
		return; /* asked before a link reset */
	p->active = false;
	if (queue_finals_read(msg, 1000, &f) < 0) {
		log_error(p->id, "event=bad-rcpt-reply");
		return;
	}
	if (f.result == 0 && f.n > 0) {
		(void)dsn_send(ctx, p->id, f.addr, f.local, f.n);
	} else if (f.result == 4) {
		/* lookup could not tell now: asked again on a later look */
	} else {
		/* The sender cannot receive mail here (unknown local
		 * user, disabled): the DSN has nowhere to go. */
		log_notice(p->id,
		           "event=dsn-dropped reason=sender-"
		           "undeliverable result=%u",
		           f.result);
		if (spool_dsn_done(q->spool, p->id, &error) < 0) {
			log_error(p->id, "event=spool-update-failed error=%s",
			          error);
			free(error);
		}
	}
	queue_finals_clear(&f);
}
