/* queue: the spool. It alone creates message files (front writes into the
 * descriptor it is handed), makes each message durable before front may
 * answer 250 (group commit: the commits that arrive while one is under way
 * share the next one's directory fsync, transaction and WAL fsync, which
 * run off the loop), and delivers: local
 * recipients through store, the others by SMTP (queue_send.c), retrying
 * temporary failures with growing waits until queue_lifetime, and sending
 * DSNs (queue_dsn.c) and DMARC aggregate reports (queue_dmarc.c).
 * SECURITY: runs as its own unprivileged user. Requests come from front
 * (parsed envelope fields, never paths: spool ids are made here), results
 * from store and from remote servers (through the SMTP client). */
#include <event2/event.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/workpool.h"
#include "core/xmalloc.h"
#include "queue/spool.h"
#include "roles/queue_dmarc.h"
#include "roles/queue_int.h"
#include "roles/queue_limits.h"
#include "roles/roles.h"

#define DELIVERY_BATCH 64
/* Commits made durable together (one directory fsync, one transaction). */
#define COMMIT_BATCH 64

/* A commit request waiting for the next group commit. */
struct commit_req {
	struct commit_req *next;
	struct ipc_peer *peer; /* whom to answer */
	uint32_t reqid;
	char *id;
	struct spool_envelope env;
};

static const struct ipc_rule front_rules[] = {
    {IPC_MSG_SPOOL_CREATE, 0, 0, IPC_FD_NEVER},
    {IPC_MSG_SPOOL_COMMIT, 20, IPC_MAX_PAYLOAD, IPC_FD_NEVER},
    {IPC_MSG_SPOOL_ABORT, 4, 64, IPC_FD_NEVER},
    {IPC_MSG_DMARC_RECORD, QUEUE_DMARC_RECORD_MIN, QUEUE_DMARC_RECORD_MAX,
     IPC_FD_NEVER},
    {IPC_MSG_PING, 0, 0, IPC_FD_NEVER},
    {IPC_MSG_PONG, 0, 0, IPC_FD_NEVER},
    {0, 0, 0, IPC_FD_NEVER},
};

static const struct ipc_rule lookup_rules[] = {
    {IPC_MSG_RCPT_REPLY, 8, IPC_MAX_PAYLOAD, IPC_FD_NEVER},
    {IPC_MSG_DKIM_KEYS_REPLY, 4, 8192, IPC_FD_NEVER},
    {IPC_MSG_DKIM_SIGNATURES, 4, 65536, IPC_FD_NEVER},
    {IPC_MSG_PING, 0, 0, IPC_FD_NEVER},
    {IPC_MSG_PONG, 0, 0, IPC_FD_NEVER},
    {0, 0, 0, IPC_FD_NEVER},
};

static const struct ipc_rule store_rules[] = {
    {IPC_MSG_DELIVERED, 8, IPC_MAX_PAYLOAD, IPC_FD_NEVER},
    {IPC_MSG_PING, 0, 0, IPC_FD_NEVER},
    {IPC_MSG_PONG, 0, 0, IPC_FD_NEVER},
    {0, 0, 0, IPC_FD_NEVER},
};

static const char *
queue_user(const struct config *cfg)
{
	return cfg->queue_user;
}

/* ---- from front: spool files ---- */

static void
spool_file_create(struct queue *q, struct ipc_peer *peer, uint32_t reqid)
{
	char id[SPOOL_ID_SIZE] = "", *error = NULL;
	int fd = spool_create(q->spool, id, &error);
	struct buf b;

	if (fd < 0) {
		log_error(NULL, "event=spool-create-failed error=%s", error);
		free(error);
		id[0] = '\0';
	}
	buf_init(&b, 0);
	ipc_put_str(&b, id);
	ipc_send(peer, IPC_MSG_SPOOL_FILE, reqid, fd, b.data, b.len);
	buf_free(&b);
}

/* The envelope as front sends it (see ipc.h): every field is checked for
 * presence; the addresses were checked by lookup at RCPT time. */
static int
envelope_read(struct ipc_reader *r, struct spool_envelope *env)
{
	uint32_t n;

	memset(env, 0, sizeof(*env));
	env->mail_from = ipc_get_str(r);
	env->helo = ipc_get_str(r);
	env->client_ip = ipc_get_str(r);
	env->auth_user = ipc_get_str(r);
	env->ret = ipc_get_str(r);
	env->envid = ipc_get_str(r);
	env->smtputf8 = ipc_get_u32(r) != 0;
	env->size = ipc_get_u64(r);
	env->headers = ipc_get_str(r);
	env->fwd_headers = ipc_get_str(r);
	env->flags = ipc_get_u32(r) & SPOOL_FLAG_JUNK;
	n = ipc_get_u32(r);
	if (r->error || n == 0 || n > 10000)
		return -1;
	env->rcpts = xcalloc(n, sizeof(*env->rcpts));
	env->nrcpts = n;
	for (uint32_t i = 0; i < n && !r->error; i++) {
		env->rcpts[i].address = ipc_get_str(r);
		env->rcpts[i].orcpt = ipc_get_str(r);
		uint32_t how;

		env->rcpts[i].notify = ipc_get_u32(r);
		how = ipc_get_u32(r);
		env->rcpts[i].local = (how & IPC_RCPT_LOCAL) != 0;
		env->rcpts[i].forwarded = (how & IPC_RCPT_FORWARDED) != 0;
		env->rcpts[i].sender = ipc_get_str(r);
		if (env->rcpts[i].sender != NULL &&
		    env->rcpts[i].sender[0] == '\0')
			xfree(&env->rcpts[i].sender);
	}
	/* Empty strings on the wire stand for "none". */
	if (env->auth_user != NULL && env->auth_user[0] == '\0')
		xfree(&env->auth_user);
	if (env->ret != NULL && env->ret[0] == '\0')
		xfree(&env->ret);
	if (env->envid != NULL && env->envid[0] == '\0')
		xfree(&env->envid);
	if (env->headers != NULL && env->headers[0] == '\0')
		xfree(&env->headers);
	if (env->fwd_headers != NULL && env->fwd_headers[0] == '\0')
		xfree(&env->fwd_headers);
	return ipc_reader_done(r);
}

static void
commit_answer(struct ipc_peer *peer, uint32_t reqid, const char *id,
              uint32_t result)
{
	struct buf b;

	buf_init(&b, 0);
	ipc_put_u32(&b, result);
	ipc_put_str(&b, id != NULL ? id : "");
	ipc_send(peer, IPC_MSG_SPOOL_COMMITTED, reqid, -1, b.data, b.len);
	buf_free(&b);
}

static void
commit_req_free(struct commit_req **reqp)
{
	struct commit_req *req = *reqp;

	spool_envelope_clear(&req->env);
	free(req->id);
	free(req);
	*reqp = NULL;
}

static void
log_queued(const char *id, const struct spool_envelope *env)
{
	log_info(id,
	         "event=queued from=<%s> size=%llu rcpts=%zu "
	         "client=%s auth=%s",
	         env->mail_from, (unsigned long long)env->size, env->nrcpts,
	         env->client_ip, env->auth_user != NULL ? env->auth_user : "-");
	for (size_t i = 0; i < env->nrcpts; i++)
		log_info(id,
		         "event=rcpt to=<%s> orcpt=<%s> local=%s forwarded=%s "
		         "sender=<%s>",
		         env->rcpts[i].address,
		         env->rcpts[i].orcpt != NULL ? env->rcpts[i].orcpt : "",
		         env->rcpts[i].local ? "yes" : "no",
		         env->rcpts[i].forwarded ? "yes" : "no",
		         env->rcpts[i].sender != NULL ? env->rcpts[i].sender
		                                      : env->mail_from);
}

/* A group commit under way. The disk's waits (the files and the
 * directory, then the WAL) run on the queue's sync thread; the rows go in
 * on the loop between them. Meanwhile the loop goes on handing out spool
 * files, taking the next commits and recording deliveries. */
struct commit_batch {
	struct queue *q;
	struct commit_req *reqs[COMMIT_BATCH];
	const char *ids[COMMIT_BATCH];
	const struct spool_envelope *envs[COMMIT_BATCH];
	size_t n;
	struct spool_commit *sc;
	bool rows_in; /* rows in the database, not yet on disk */
};

static void
commit_files_job(void *arg)
{
	struct commit_batch *b = arg;

	spool_commit_sync_files(b->sc);
}

static void
commit_rows_job(void *arg)
{
	struct commit_batch *b = arg;

	spool_commit_sync_rows(b->sc);
}

/* The batch is durable (or failed): answer each, 0 only for a message
 * whose rows are on disk. More waiting: the next batch starts. */
static void
commit_rows_done(void *arg)
{
	struct commit_batch *b = arg;
	struct queue *q = b->q;
	int results[COMMIT_BATCH];
	size_t committed = 0;

	(void)spool_commit_end(&b->sc, results, NULL);
	for (size_t i = 0; i < b->n; i++) {
		struct commit_req *req = b->reqs[i];

		if (results[i] == 0) {
			committed++;
			log_queued(req->id, &req->env);
			queue_limits_committed(q->ctx, req->id, &req->env);
		} else {
			log_error(req->id, "event=commit-failed");
			spool_discard(q->spool, req->id);
		}
		if (req->peer != NULL)
			commit_answer(req->peer, req->reqid, req->id,
			              results[i] == 0 ? 0 : 1);
		commit_req_free(&req);
	}
	if (b->n > 1)
		log_debug(NULL, "event=group-commit messages=%zu committed=%zu",
		          b->n, committed);
	q->batch = NULL;
	free(b);
	if (q->commits != NULL)
		event_active(q->commit_ev, EV_TIMEOUT, 0);
	if (committed > 0 || q->run_deferred) {
		q->run_deferred = false;
		queue_kick(q);
	}
}

static void
commit_files_done(void *arg)
{
	struct commit_batch *b = arg;

	spool_commit_insert(b->sc);
	b->rows_in = true;
	workpool_submit(b->q->sync, NULL, commit_rows_job, commit_rows_done, b);
}

/* Start a group commit of up to COMMIT_BATCH pending commits, unless one
 * is under way: those that come meanwhile make the next one. */
static void
commit_run(struct queue *q)
{
	struct commit_batch *b;

	if (q->batch != NULL || q->commits == NULL)
		return;
	b = xcalloc(1, sizeof(*b));
	b->q = q;
	while (q->commits != NULL && b->n < COMMIT_BATCH) {
		struct commit_req *req = q->commits;

		q->commits = req->next;
		b->reqs[b->n] = req;
		b->ids[b->n] = req->id;
		b->envs[b->n] = &req->env;
		b->n++;
	}
	if (q->commits == NULL)
		q->commits_tail = &q->commits;
	q->ncommits -= b->n;
	b->sc = spool_commit_begin(q->spool, b->ids, b->envs, b->n);
	q->batch = b;
	workpool_submit(q->sync, NULL, commit_files_job, commit_files_done, b);
}

static void
commit_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	commit_run(arg);
}

/* Queued for the next group commit, which starts once the loop has taken
 * in everything that arrived with this request and no other is under
 * way. */
static void
spool_file_commit(struct queue *q, struct ipc_peer *peer, struct ipc_msg *msg)
{
	struct commit_req *req = xcalloc(1, sizeof(*req));
	struct ipc_reader r;

	ipc_reader_init(&r, msg);
	req->id = ipc_get_str(&r);
	if (req->id == NULL || envelope_read(&r, &req->env) < 0) {
		log_error(NULL, "event=bad-commit-request");
		commit_answer(peer, msg->reqid, req->id, 1);
		commit_req_free(&req);
		return;
	}
	req->peer = peer;
	req->reqid = msg->reqid;
	*q->commits_tail = req;
	q->commits_tail = &req->next;
	q->ncommits++;
	event_active(q->commit_ev, EV_TIMEOUT, 0);
}

/* The peer is going away: its pending commits were never answered, so
 * nothing of them was acknowledged; their files go. */
static void
commit_drop_peer(struct queue *q, struct ipc_peer *peer)
{
	struct commit_req **p = &q->commits;

	while (*p != NULL) {
		struct commit_req *req = *p;

		if (req->peer != peer) {
			p = &req->next;
			continue;
		}
		*p = req->next;
		q->ncommits--;
		log_warn(req->id, "event=commit-dropped reason=link-down");
		spool_discard(q->spool, req->id);
		commit_req_free(&req);
	}
	q->commits_tail = p;
	/* Those of the commit under way go on (their files are being
	 * synced); nobody is left to answer. */
	for (size_t i = 0; q->batch != NULL && i < q->batch->n; i++) {
		if (q->batch->reqs[i]->peer != peer)
			continue;
		q->batch->reqs[i]->peer = NULL;
		log_warn(q->batch->reqs[i]->id,
		         "event=commit-unanswered reason=link-down");
	}
}

/* Is id waiting for a group commit or in the one under way? */
static bool
commit_pending(const struct queue *q, const char *id)
{
	for (const struct commit_req *req = q->commits; req != NULL;
	     req = req->next)
		if (strcmp(req->id, id) == 0)
			return true;
	for (size_t i = 0; q->batch != NULL && i < q->batch->n; i++)
		if (strcmp(q->batch->ids[i], id) == 0)
			return true;
	return false;
}

/* A file front gave up on. Not one it asked to commit: the commit runs
 * off the loop now, and its file must not go from under it. */
static void
spool_file_abort(struct queue *q, struct ipc_msg *msg)
{
	struct ipc_reader r;
	char *id;

	ipc_reader_init(&r, msg);
	id = ipc_get_str(&r);
	if (ipc_reader_done(&r) == 0 && id != NULL) {
		if (commit_pending(q, id))
			log_error(id, "event=abort-refused reason=committing");
		else
			spool_discard(q->spool, id);
	}
	free(id);
}

/* ---- delivery ---- */

static struct inflight *
inflight_find(struct queue *q, const char *id)
{
	for (size_t i = 0; i < q->ninflight; i++)
		if (strcmp(q->inflight[i].id, id) == 0)
			return &q->inflight[i];
	return NULL;
}

struct inflight *
queue_inflight_add(struct queue *q, const char *id)
{
	struct inflight *f = inflight_find(q, id);

	if (f == NULL) {
		f = &q->inflight[q->ninflight++];
		memset(f, 0, sizeof(*f));
		snprintf(f->id, sizeof(f->id), "%s", id);
	}
	return f;
}

/* One part of the message's attempt is back (store's answer, or an
 * outbound job); the last one frees the slot. */
static void
inflight_part_done(struct queue *q, const char *id)
{
	struct inflight *f = inflight_find(q, id);

	if (f == NULL)
		return;
	if (f->parts > 0)
		f->parts--;
	if (f->parts == 0)
		*f = q->inflight[--q->ninflight];
}

/* The wait after the nth failed attempt (tern.conf's schedule). */
uint64_t
queue_retry_delay(const struct config *cfg, unsigned attempts)
{
	return spool_retry_delay_ms(cfg->queue_retry_first_ms,
	                            cfg->queue_retry_max_ms, attempts);
}

/* Has a message queued since created_ms waited long enough for a delay
 * notice (queue_delay_warning; 0: never)? */
static bool
delay_notice_due(const struct config *cfg, uint64_t created_ms, uint64_t now)
{
	return cfg->queue_delay_warning_ms > 0 && created_ms != 0 &&
	       now > created_ms &&
	       now - created_ms >= cfg->queue_delay_warning_ms;
}

/* The operator's line for one recipient's outcome (rc, error: what
 * recording it gave). */
static void
log_result(const char *id, const char *rcpt, const struct spool_result *res,
           const char *tls, int rc, const char *error)
{
	if (rc < 0) {
		log_error(id, "event=spool-update-failed to=<%s> error=%s",
		          rcpt, error != NULL ? error : "");
		return;
	}
	if (res->state == SPOOL_RCPT_DELIVERED)
		log_info(id,
		         "event=delivered to=<%s> relay=%s status=%s "
		         "reply=%s tls=%s",
		         rcpt,
		         res->remote_mta != NULL ? res->remote_mta : "local",
		         res->status != NULL ? res->status : "2.0.0",
		         res->diagnostic != NULL ? res->diagnostic : "",
		         tls != NULL && tls[0] != '\0' ? tls
		         : tls != NULL                 ? "none"
		                                       : "-");
	else
		log_notice(
		    id,
		    "event=%s to=<%s> relay=%s status=%s "
		    "reason=%s",
		    res->state == SPOOL_RCPT_FAILED ? "failed" : "deferred",
		    rcpt, res->remote_mta != NULL ? res->remote_mta : "none",
		    res->status != NULL ? res->status : "-",
		    res->diagnostic != NULL ? res->diagnostic : "");
}

/* Record one recipient's outcome, log it; a DSN that became due is
 * started by queue_dsn_run() on the next look. */
static void
record_result(struct queue *q, const char *id, const char *rcpt,
              const struct spool_result *res, const char *tls)
{
	char *error = NULL;
	int rc = spool_rcpt_update(q->spool, id, rcpt, res, &error);

	log_result(id, rcpt, res, tls, rc, error);
	free(error);
}

/* Hand one message's due local recipients to store. */
static void
deliver_local(struct child_ctx *ctx, struct ipc_peer *store, const char *id,
              const struct spool_due *due, size_t n)
{
	struct queue *q = ctx->role;
	struct spool_envelope env;
	char *error = NULL;
	struct buf b;
	uint32_t count = 0;
	unsigned attempts = 0;
	int fd;

	if ((fd = spool_open_message(q->spool, id, &error)) < 0 ||
	    spool_envelope(q->spool, id, &env, &error) < 0) {
		log_error(id, "event=spool-read-failed error=%s", error);
		free(error);
		if (fd >= 0)
			close(fd);
		return;
	}
	buf_init(&b, 0);
	ipc_put_str(&b, id);
	ipc_put_str(&b, env.mail_from);
	for (size_t i = 0; i < n; i++)
		count += strcmp(due[i].id, id) == 0 && due[i].local;
	ipc_put_u32(&b, count);
	for (size_t i = 0; i < n; i++) {
		if (strcmp(due[i].id, id) != 0 || !due[i].local)
			continue;
		ipc_put_str(&b, due[i].address);
		if (due[i].attempts > attempts)
			attempts = due[i].attempts;
	}
	ipc_put_str(&b, env.headers != NULL ? env.headers : "");
	ipc_put_u32(&b, env.flags);
	spool_envelope_clear(&env);
	if (ipc_send(store, IPC_MSG_DELIVER, 0, fd, b.data, b.len) == 0) {
		struct inflight *f = queue_inflight_add(q, id);

		f->parts++;
		f->local = true;
		f->attempts = attempts;
		for (size_t i = 0; i < n; i++)
			if (strcmp(due[i].id, id) == 0)
				f->created_ms = due[i].created_ms;
	}
	buf_free(&b);
}

/* In the queue for longer than queue_lifetime (a clock set back makes a
 * message younger, never older). */
static bool
message_expired(const struct config *cfg, const struct spool_due *d,
                uint64_t now)
{
	return d->created_ms != 0 && now > d->created_ms &&
	       now - d->created_ms > cfg->queue_lifetime_ms;
}

static void
expire(struct queue *q, const struct config *cfg, const struct spool_due *d)
{
	char why[128];
	struct spool_result res = {
	    .state = SPOOL_RCPT_FAILED,
	    .status = "4.4.7",
	    .diagnostic = why,
	};

	snprintf(why, sizeof(why),
	         "delivery time expired: still undelivered after %llu hours "
	         "in the queue",
	         (unsigned long long)(cfg->queue_lifetime_ms / 3600000));
	record_result(q, d->id, d->address, &res, NULL);
}

static void
recycle_job(void *arg)
{
	struct queue *q = arg;

	spool_recycle_run(q->recycling);
}

static void recycle_kick(struct queue *q);

static void
recycle_done(void *arg)
{
	struct queue *q = arg;

	spool_recycle_done(q->spool, &q->recycling);
	recycle_kick(q);
}

/* The files whose removal is due, one batch at a time. */
static void
recycle_kick(struct queue *q)
{
	if (q->recycling != NULL ||
	    (q->recycling = spool_recycle_take(q->spool)) == NULL)
		return;
	workpool_submit(q->recycle, NULL, recycle_job, recycle_done, q);
}

/* At exit: the recycle taken last is finished here, whether its job ran
 * or was dropped (a second run only does what the first did not). */
static void
recycle_stop(struct queue *q)
{
	workpool_free(&q->recycle);
	if (q->recycling != NULL) {
		spool_recycle_run(q->recycling);
		spool_recycle_done(q->spool, &q->recycling);
	}
}

static void
queue_run(struct child_ctx *ctx)
{
	struct queue *q = ctx->role;
	struct ipc_peer *store = child_peer(ctx, "store");
	struct spool_due *due = NULL;
	char *error = NULL;
	size_t n = 0;
	uint64_t now = clock_wall_ms();

	recycle_kick(q);
	/* Rows of a commit not yet on disk are not looked at: a message
	 * is delivered only once it is durable. */
	if (q->batch != NULL && q->batch->rows_in) {
		q->run_deferred = true;
		return;
	}
	if (ctx->stopping ||
	    spool_due(q->spool, now, DELIVERY_BATCH, &due, &n, &error) < 0) {
		if (error != NULL) {
			log_error(NULL, "event=spool-due-failed error=%s",
			          error);
			free(error);
		}
		return;
	}
	for (size_t i = 0; i < n; i++) {
		bool first = true;

		if (inflight_find(q, due[i].id) != NULL)
			continue; /* its last attempt is not back yet */
		if (q->ninflight == INFLIGHT_MAX)
			break;
		if (message_expired(ctx->cfg, &due[i], now)) {
			expire(q, ctx->cfg, &due[i]);
			continue;
		}
		/* Once per message: all its due recipients go together. */
		for (size_t j = 0; j < i && first; j++)
			first = strcmp(due[j].id, due[i].id) != 0;
		if (!first)
			continue;
		if (store != NULL)
			for (size_t j = i; j < n; j++)
				if (strcmp(due[j].id, due[i].id) == 0 &&
				    due[j].local) {
					deliver_local(ctx, store, due[i].id,
					              due, n);
					break;
				}
		queue_out_dispatch(ctx, due[i].id, due, n);
	}
	spool_due_free(&due, n);
	queue_dsn_run(ctx);
	queue_sign_run(ctx);
	queue_outbox_run(ctx);
}

static void
tick_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	queue_run(arg);
}

/* Every second: the spool files of messages finished since the last synced
 * commit go now, if no accepted message has synced it meanwhile. */
static void
tick_periodic_cb(evutil_socket_t fd, short what, void *arg)
{
	struct child_ctx *ctx = arg;
	struct queue *q = ctx->role;

	spool_flush(q->spool);
	tick_cb(fd, what, arg);
}

void
queue_kick(struct queue *q)
{
	event_active(q->kick, EV_TIMEOUT, 0);
}

/* store's outcomes, recorded together once the loop has read all that
 * came with them: one transaction for many deliveries. Until then their
 * messages stay in flight, so no look at what is due takes them again. */
struct outcome {
	char id[SPOOL_ID_SIZE];
	char *rcpt;
	char *why;
	struct spool_result res; /* rcpt NULL: the report's end marker */
};

static void
outcomes_flush(struct queue *q)
{
	size_t n = q->noutcomes, m = 0;
	struct spool_outcome *o;
	int *rcs;
	char **errors;

	if (n == 0)
		return;
	o = xcalloc(n, sizeof(*o));
	rcs = xcalloc(n, sizeof(*rcs));
	errors = xcalloc(n, sizeof(*errors));
	/* The recipients' outcomes, in order; a report's end marker (no
	 * recipient) only frees its message's slot below. */
	for (size_t i = 0; i < n; i++) {
		if (q->outcomes[i].rcpt == NULL)
			continue;
		o[m].id = q->outcomes[i].id;
		o[m].address = q->outcomes[i].rcpt;
		o[m].res = &q->outcomes[i].res;
		m++;
	}
	spool_rcpt_update_many(q->spool, o, m, rcs, errors);
	m = 0;
	for (size_t i = 0; i < n; i++) {
		struct outcome *out = &q->outcomes[i];

		if (out->rcpt != NULL) {
			log_result(out->id, out->rcpt, &out->res, NULL, rcs[m],
			           errors[m]);
			free(errors[m]);
			m++;
		} else {
			inflight_part_done(q, out->id);
		}
		free(out->rcpt);
		free(out->why);
	}
	q->noutcomes = 0;
	free(errors);
	free(rcs);
	free(o);
	/* Room for more: look again now rather than at the next tick. */
	queue_kick(q);
}

static void
outcomes_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	outcomes_flush(arg);
}

static struct outcome *
outcome_add(struct queue *q, const char *id)
{
	struct outcome *out;

	if (q->noutcomes == OUTCOMES_MAX)
		outcomes_flush(q);
	if (q->noutcomes == q->outcomes_cap) {
		q->outcomes_cap =
		    q->outcomes_cap == 0 ? 64 : q->outcomes_cap * 2;
		q->outcomes = xreallocarray(q->outcomes, q->outcomes_cap,
		                            sizeof(*q->outcomes));
	}
	out = &q->outcomes[q->noutcomes++];
	memset(out, 0, sizeof(*out));
	snprintf(out->id, sizeof(out->id), "%s", id);
	event_active(q->outcomes_ev, EV_TIMEOUT, 0);
	return out;
}

static void
delivered(struct child_ctx *ctx, struct ipc_msg *msg)
{
	struct queue *q = ctx->role;
	struct ipc_reader r;
	struct inflight *f;
	struct outcome *out;
	char *id;
	unsigned attempts = 0;
	uint64_t created_ms;
	uint32_t n;

	ipc_reader_init(&r, msg);
	id = ipc_get_str(&r);
	n = ipc_get_u32(&r);
	if (id == NULL || r.error || (f = inflight_find(q, id)) == NULL) {
		log_error(NULL, "event=bad-delivery-report");
		free(id);
		return;
	}
	attempts = f->attempts + 1;
	created_ms = f->created_ms;
	f->local = false;
	f = NULL; /* outcome_add() may flush, which moves the table */
	for (uint32_t i = 0; i < n && !r.error; i++) {
		char *rcpt = ipc_get_str(&r), *why;
		uint32_t result = ipc_get_u32(&r);

		why = ipc_get_str(&r);
		if (rcpt == NULL || why == NULL) {
			free(rcpt);
			free(why);
			break;
		}
		out = outcome_add(q, id);
		out->rcpt = rcpt;
		out->why = why;
		out->res.state = result == 0   ? SPOOL_RCPT_DELIVERED
		                 : result == 2 ? SPOOL_RCPT_FAILED
		                               : SPOOL_RCPT_PENDING;
		out->res.diagnostic = why;
		out->res.status = result == 0   ? "2.0.0"
		                  : result == 2 ? "5.2.0"
		                                : "4.2.0";
		out->res.next_try_ms =
		    clock_wall_ms() + queue_retry_delay(ctx->cfg, attempts);
		out->res.delay_notice =
		    delay_notice_due(ctx->cfg, created_ms, clock_wall_ms());
	}
	/* The message leaves the in-flight table with its outcomes. */
	(void)outcome_add(q, id);
	free(id);
}

/* An outbound job is back (on the loop): record each recipient. */
void
queue_out_done(struct child_ctx *ctx, struct out_job *job,
               const unsigned *attempts, uint64_t created_ms)
{
	struct queue *q = ctx->role;
	uint64_t now = clock_wall_ms();

	for (size_t i = 0; i < job->nrcpts; i++) {
		const struct out_rcpt *o = &job->rcpts[i];
		struct spool_result res = {
		    .state = o->outcome == OUT_DELIVERED  ? SPOOL_RCPT_DELIVERED
		             : o->outcome == OUT_PERMFAIL ? SPOOL_RCPT_FAILED
		                                          : SPOOL_RCPT_PENDING,
		    .diagnostic = o->diagnostic,
		    .remote_mta = job->remote_mta,
		    .status = o->status,
		    .next_try_ms =
		        now + queue_retry_delay(ctx->cfg, attempts[i] + 1),
		    .relayed = true,
		    .dsn_passed = job->dsn_passed,
		    .delay_notice = delay_notice_due(ctx->cfg, created_ms, now),
		};

		record_result(q, job->id, o->address, &res, job->tls_info);
	}
	inflight_part_done(q, job->id);
	queue_kick(q);
}

/* ---- role wiring ---- */

static const struct ipc_rule *
queue_peer_rules(const char *peer)
{
	if (strcmp(peer, "front") == 0)
		return front_rules;
	if (strcmp(peer, "store") == 0)
		return store_rules;
	if (strcmp(peer, "lookup") == 0)
		return lookup_rules;
	return NULL;
}

static void
queue_peer_message(struct child_ctx *ctx, struct child_link *link,
                   struct ipc_msg *msg)
{
	struct queue *q = ctx->role;

	switch (msg->type) {
	case IPC_MSG_SPOOL_CREATE:
		spool_file_create(q, link->peer, msg->reqid);
		break;
	case IPC_MSG_SPOOL_COMMIT:
		spool_file_commit(q, link->peer, msg);
		break;
	case IPC_MSG_SPOOL_ABORT:
		spool_file_abort(q, msg);
		break;
	case IPC_MSG_DMARC_RECORD:
		queue_dmarc_record(ctx, msg);
		break;
	case IPC_MSG_DELIVERED:
		delivered(ctx, msg);
		break;
	case IPC_MSG_RCPT_REPLY:
		/* Where postmaster lives (a notice), a report's rua
		 * address (the outbox), or a DSN's sender. */
		if (!queue_limits_reply(ctx, msg) &&
		    !queue_outbox_reply(ctx, msg))
			queue_dsn_reply(ctx, msg);
		break;
	case IPC_MSG_DKIM_KEYS_REPLY:
	case IPC_MSG_DKIM_SIGNATURES:
		queue_sign_reply(ctx, msg);
		break;
	default:
		break;
	}
}

/* store went away: what it had in hand is retried on the next run. */
static void
queue_peer_down(struct child_ctx *ctx, struct child_link *link)
{
	struct queue *q = ctx->role;

	if (link->peer != NULL)
		commit_drop_peer(q, link->peer);
	if (strcmp(link->name, "store") == 0) {
		/* What store had in hand is retried; outbound parts of
		 * those messages come back on their own. */
		for (size_t i = 0; i < q->ninflight;) {
			struct inflight *f = &q->inflight[i];

			if (f->local && f->parts > 0) {
				f->local = false;
				f->parts--;
			}
			if (f->parts == 0)
				*f = q->inflight[--q->ninflight];
			else
				i++;
		}
	}
	if (strcmp(link->name, "lookup") == 0) {
		queue_dsn_link_down(ctx);
		queue_outbox_link_down(ctx);
		queue_sign_link_down(ctx);
	}
}

static void
queue_peer_up(struct child_ctx *ctx, struct child_link *link)
{
	struct queue *q = ctx->role;

	if (strcmp(link->name, "store") == 0 ||
	    strcmp(link->name, "lookup") == 0)
		event_active(q->kick, EV_TIMEOUT, 0);
}

static int
queue_start(struct child_ctx *ctx, char **error_r)
{
	struct queue *q = xcalloc(1, sizeof(*q));
	struct timeval tv = {1, 0};
	char *dir;

	ctx->role = q;
	q->ctx = ctx;
	/* Memory freed at the top of the heap stays for the next message
	 * instead of going back with brk(2) at once: SQLite's temporary
	 * b-trees (the DSN and signing queries at every run) made each run
	 * a shrink, and each shrink a TLB flush on every CPU running one of
	 * queue's threads (7 % of its CPU at 20 sessions). A few MB at most.
	 * Allocations of 1 MB or more still get mappings of their own. */
	(void)mallopt(M_TRIM_THRESHOLD, 8 * 1024 * 1024);
	(void)mallopt(M_MMAP_THRESHOLD, 1024 * 1024);
	if (role_check_dir(ctx->cfg, "queue", error_r) < 0)
		return -1;
	dir = xasprintf("%s/queue", ctx->cfg->data_dir);
	q->spool = spool_open(dir, error_r);
	free(dir);
	if (q->spool == NULL)
		return -1;
	spool_defer_removals(q->spool);
	q->commits_tail = &q->commits;
	q->sync = workpool_new(ctx->base, 1);
	q->recycle = workpool_new(ctx->base, 1);
	q->commit_ev = event_new(ctx->base, -1, 0, commit_cb, q);
	q->outcomes_ev = event_new(ctx->base, -1, 0, outcomes_cb, q);
	q->tick = event_new(ctx->base, -1, EV_PERSIST, tick_periodic_cb, ctx);
	q->kick = event_new(ctx->base, -1, 0, tick_cb, ctx);
	if (q->commit_ev == NULL || q->outcomes_ev == NULL || q->tick == NULL ||
	    q->kick == NULL) {
		*error_r = xstrdup("event_new failed");
		return -1;
	}
	event_add(q->tick, &tv);
	if (queue_send_start(ctx, error_r) < 0)
		return -1;
	queue_dmarc_start(ctx);
	queue_tlsrpt_start(ctx);
	return 0;
}

static void
queue_reload(struct child_ctx *ctx, const struct config *old)
{
	(void)old;
	queue_send_reload(ctx);
	queue_dmarc_reload(ctx);
}

static void
queue_message(struct child_ctx *ctx, struct ipc_msg *msg)
{
	(void)ctx;
	log_warn(NULL, "event=unexpected-message type=%u", msg->type);
}

/* Outbound sessions under way get this long to finish and have their
 * outcome recorded; after it the process exits without them (their
 * recipients stay pending: at worst a message the remote had already
 * taken is sent again, never one lost). */
#define SHUTDOWN_OUTBOUND_GRACE_MS 3000

static void
queue_finish(struct child_ctx *ctx)
{
	struct queue *q = ctx->role;

	/* Not queue_send_stop(): a worker stuck in a slow session must not
	 * hold the exit up; exit() ends the threads. */
	outcomes_flush(q);
	free(q->outcomes);
	event_free(q->outcomes_ev);
	event_free(q->commit_ev);
	event_free(q->tick);
	event_free(q->kick);
	queue_dmarc_stop(ctx);
	queue_tlsrpt_stop(ctx);
	/* A commit still under way (a disk that hung past the grace) is
	 * cut by the exit, unanswered; its thread may still be using the
	 * spool, so it stays open. */
	if (q->batch == NULL) {
		workpool_free(&q->sync);
		recycle_stop(q);
		spool_close(&q->spool);
	} else
		log_warn(NULL, "event=commit-cut messages=%zu", q->batch->n);
	child_exit(ctx);
}

static void
shutdown_wait_cb(evutil_socket_t fd, short what, void *arg)
{
	struct child_ctx *ctx = arg;
	struct queue *q = ctx->role;
	bool late = clock_wall_ms() >= q->shutdown_deadline_ms;

	(void)fd;
	(void)what;
	/* Commits that arrived are made durable and answered, as they
	 * would have been; nothing acknowledged is in flight. */
	if ((q->batch != NULL || q->commits != NULL) && !late)
		return;
	if (!q->front_flushed) {
		struct ipc_peer *front = child_peer(ctx, "front");

		q->front_flushed = true;
		if (front != NULL)
			(void)ipc_flush(front, 1000);
	}
	if (q->out_active > 0 && !late)
		return;
	if (q->out_active > 0)
		log_warn(NULL, "event=outbound-cut sessions=%u", q->out_active);
	event_free(q->shutdown_ev);
	queue_finish(ctx);
}

/* Deliveries out with store are retried at the next start. */
static void
queue_shutdown(struct child_ctx *ctx)
{
	struct queue *q = ctx->role;
	struct timeval tv = {0, 10 * 1000};

	q->shutdown_deadline_ms = clock_wall_ms() + SHUTDOWN_OUTBOUND_GRACE_MS;
	q->shutdown_ev =
	    event_new(ctx->base, -1, EV_PERSIST, shutdown_wait_cb, ctx);
	event_add(q->shutdown_ev, &tv);
	commit_run(q);
}

const struct role_ops role_queue = {
    .name = "queue",
    .user = queue_user,
    .chroot = false,
    .start = queue_start,
    .message = queue_message,
    .reload = queue_reload,
    .shutdown = queue_shutdown,
    .peer_rules = queue_peer_rules,
    .peer_message = queue_peer_message,
    .peer_up = queue_peer_up,
    .peer_down = queue_peer_down,
};
