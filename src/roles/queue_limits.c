/* queue, sending limits (see queue_limits.h): each committed message of an
 * authenticated user with remote recipients goes into the sending ledger
 * (src/queue/sendlog.c); over sending_limit_messages or
 * sending_limit_recipients in the last hour, or a spike (more than
 * sending_spike_factor times the user's busiest hour of the last 7 days,
 * and more than sending_spike_floor messages), the user's queued mail is
 * held, lookup is asked to suspend the user, and a notice is queued for
 * postmaster (lookup says where "postmaster" lives, as for a DSN).
 * SECURITY: the user is the canonical name lookup gave at login, never
 * what the client typed; it reaches the notice only as printable ASCII.
 * The ledger failing lets mail through (logged): the limits are a brake,
 * not a gate. */
#include "roles/queue_limits.h"

#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/xmalloc.h"
#include "queue/sendlog.h"
#include "roles/queue_int.h"

#define HOUR_MS SENDLOG_HOUR_MS
/* The ledger keeps hourly totals 8 days (7 are looked at) and single
 * messages 2 hours (1 is looked at); pruned once an hour, a bounded
 * number of rows at a time. */
#define KEEP_HOURS_MS (8 * 24 * HOUR_MS)
#define KEEP_DETAIL_MS (2 * HOUR_MS)
#define PRUNE_EVERY_MS HOUR_MS
#define PRUNE_ROWS 10000
/* After a failed open, the ledger is tried again this much later. */
#define REOPEN_MS (60 * 1000)
/* Suspensions whose notice (or lookup's part) is not done yet. */
#define PENDING_MAX 16
/* Retries of what lookup has not done or answered. */
#define RETRY_MS 2000
#define ASK_AGAIN_MS (10 * 1000)
/* Our RCPT_CHECK request ids have the top bit set (DSNs count up from 1). */
#define REQID_BIT 0x80000000u
/* Held ids written into a notice, and the queue size up to which they are
 * looked up at all (spool_list reads the whole queue). */
#define NOTICE_IDS_MAX 100
#define NOTICE_LIST_QUEUE_MAX 10000
#define NOTICE_MAX (256 * 1024)
#define NOTICE_FINALS_MAX 1000
/* A notice that cannot be committed this many times is given up. */
#define NOTICE_TRIES_MAX 5

struct pending {
	bool active;
	bool suspend_sent; /* lookup has the USER_SUSPEND */
	bool asked;        /* where postmaster lives: asked, no answer yet */
	uint32_t reqid;
	uint64_t asked_ms;
	unsigned tries; /* failed commits of the notice */
	char *user;
	char *reason;
	char *id;   /* the message that went over */
	char *body; /* the notice's text, CRLF lines */
};

/* The queue process has one of these (one queue per process). */
static struct limits {
	struct sendlog *log;
	uint64_t reopen_ms;
	uint64_t prune_ms;
	struct event *retry_ev;
	uint32_t reqid;
	struct pending pending[PENDING_MAX];
} limits;

static struct sendlog *
limits_log(struct child_ctx *ctx, uint64_t now)
{
	char *path, *error = NULL;

	if (limits.log != NULL || now < limits.reopen_ms)
		return limits.log;
	path = xasprintf("%s/queue/sendlog.db", ctx->cfg->data_dir);
	limits.log = sendlog_open(path, &error);
	free(path);
	if (limits.log == NULL) {
		log_error(NULL,
		          "event=sendlog-open-failed error=%s "
		          "action=limits-off-for-60s",
		          error);
		free(error);
		limits.reopen_ms = now + REOPEN_MS;
	}
	return limits.log;
}

/* Once an hour, on the way of a message: forget what no rule looks at. */
static void
limits_prune(struct sendlog *log, uint64_t now)
{
	char *error = NULL;
	size_t removed = 0;

	if (now < limits.prune_ms)
		return;
	limits.prune_ms = now + PRUNE_EVERY_MS;
	if (now < KEEP_HOURS_MS)
		return;
	if (sendlog_prune(log, now - KEEP_HOURS_MS, now - KEEP_DETAIL_MS,
	                  PRUNE_ROWS, &removed, &error) < 0) {
		log_error(NULL, "event=sendlog-prune-failed error=%s", error);
		free(error);
		return;
	}
	if (removed == PRUNE_ROWS)
		limits.prune_ms = now + 60 * 1000; /* more left: sooner */
	log_debug(NULL, "event=sendlog-pruned rows=%zu", removed);
}

/* ---- the notice ---- */

/* s as printable ASCII (anything else becomes '?'), malloc'd. */
static char *
ascii(const char *s)
{
	char *out = xstrdup(s);

	for (char *p = out; *p != '\0'; p++)
		if (*p < 0x20 || *p > 0x7e)
			*p = '?';
	return out;
}

static void
format_utc(uint64_t ms, char *out, size_t size, const char *fmt)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL || strftime(out, size, fmt, &tm) == 0)
		snprintf(out, size, "?");
}

/* The held messages of user, for the notice: their ids, or what to run
 * to see them when the queue is too large to look through here. */
static void
notice_held_ids(struct queue *q, const char *user, struct buf *b)
{
	struct spool_info *list = NULL;
	size_t n = 0, messages = 0, pending = 0, held = 0;
	char *error = NULL;

	if (spool_count(q->spool, &messages, &pending, &error) < 0 ||
	    messages > NOTICE_LIST_QUEUE_MAX ||
	    spool_list(q->spool, &list, &n, &error) < 0) {
		free(error);
		buf_printf(b,
		           "  (see `tern queue list`: they show as HELD)\r\n");
		return;
	}
	for (size_t i = 0; i < n; i++) {
		if (!list[i].held || list[i].auth_user == NULL ||
		    strcmp(list[i].auth_user, user) != 0)
			continue;
		if (held++ < NOTICE_IDS_MAX)
			buf_printf(b, "    tern queue release %s\r\n",
			           list[i].id);
	}
	if (held > NOTICE_IDS_MAX)
		buf_printf(b, "    ... and %zu more (`tern queue list`)\r\n",
		           held - NOTICE_IDS_MAX);
	else if (held == 0)
		buf_printf(b, "    (none is left in the queue)\r\n");
	spool_list_free(&list, n);
}

/* The notice's body (CRLF lines, ASCII), made when the user is suspended
 * so that it says what was true then. */
static char *
notice_body(struct child_ctx *ctx, const char *id, const char *user,
            const char *why, uint64_t msgs, uint64_t rcpts, uint64_t usual,
            size_t held, uint64_t now)
{
	struct queue *q = ctx->role;
	char when[64], *u = ascii(user), *body;
	struct buf b;

	buf_init(&b, NOTICE_MAX);
	format_utc(now, when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ");
	buf_printf(&b,
	           "tern on %s suspended sending for\r\n"
	           "  %s\r\n"
	           "at %s.\r\n\r\n"
	           "Why: %s.\r\n"
	           "In the last hour: %llu messages to %llu remote "
	           "recipients;\r\n"
	           "their busiest hour of the last 7 days: %llu messages.\r\n"
	           "\r\n",
	           ctx->cfg->hostname, u, when, why, (unsigned long long)msgs,
	           (unsigned long long)rcpts, (unsigned long long)usual);
	buf_printf(&b,
	           "What was done:\r\n"
	           "- The message that went over (queue id %s) and the "
	           "user's other\r\n"
	           "  queued messages are held: %zu held now. Held mail is "
	           "not delivered\r\n"
	           "  until it is released.\r\n"
	           "- The user is suspended: no login, no new message.\r\n"
	           "\r\n",
	           id, held);
	buf_printf(&b,
	           "If the account is compromised: change its password\r\n"
	           "(tern user passwd %s), delete the held messages\r\n"
	           "(tern queue delete ID), then resume the user.\r\n"
	           "\r\n"
	           "If the mail is legitimate:\r\n"
	           "  tern queue list\r\n"
	           "shows the queue (held messages say HELD); release each "
	           "held message:\r\n",
	           u);
	notice_held_ids(q, user, &b);
	buf_printf(&b,
	           "and let the user log in and send again:\r\n"
	           "    tern user resume %s\r\n"
	           "The limits are sending_limit_messages, "
	           "sending_limit_recipients,\r\n"
	           "sending_spike_factor and sending_spike_floor in "
	           "tern.conf.\r\n"
	           "After a resume the user's hourly count starts again "
	           "from zero.\r\n",
	           u);
	body = xstrndup((const char *)b.data, b.len);
	buf_free(&b);
	free(u);
	return body;
}

/* Commit the notice of p to finals. 0 done, -1 try again later. */
static int
notice_send(struct child_ctx *ctx, struct pending *p, char **finals,
            const bool *locals, size_t n)
{
	struct queue *q = ctx->role;
	struct spool_envelope env;
	char newid[SPOOL_ID_SIZE], date[64], *u = ascii(p->user), *error = NULL;
	struct buf msg;
	int fd, ret = -1;

	buf_init(&msg, NOTICE_MAX + 64 * 1024);
	format_utc(clock_wall_ms(), date, sizeof(date),
	           "%a, %d %b %Y %H:%M:%S +0000");
	buf_printf(&msg,
	           "From: Mail Delivery System <MAILER-DAEMON@%s>\r\n"
	           "To: ",
	           ctx->cfg->hostname);
	for (size_t i = 0; i < n && i < 10; i++) {
		char *a = ascii(finals[i]);

		buf_printf(&msg, "%s<%s>", i > 0 ? ",\r\n " : "", a);
		free(a);
	}
	buf_printf(&msg,
	           "\r\n"
	           "Subject: tern: sending suspended for %s\r\n"
	           "Date: %s\r\n"
	           "Message-ID: <%s.limits.%llu@%s>\r\n"
	           "Auto-Submitted: auto-generated\r\n"
	           "MIME-Version: 1.0\r\n"
	           "Content-Type: text/plain; charset=us-ascii\r\n"
	           "Content-Transfer-Encoding: 7bit\r\n"
	           "\r\n",
	           u, date, p->id, (unsigned long long)clock_wall_ms(),
	           ctx->cfg->hostname);
	if (buf_append_str(&msg, p->body) < 0) {
		error = xstrdup("notice too large");
		goto out;
	}
	if ((fd = spool_create(q->spool, newid, &error)) < 0)
		goto out;
	for (size_t off = 0; off < msg.len;) {
		ssize_t w = write(fd, msg.data + off, msg.len - off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			error = xasprintf("write: %s", strerror(errno));
			close(fd);
			spool_discard(q->spool, newid);
			goto out;
		}
		off += (size_t)w;
	}
	close(fd);
	memset(&env, 0, sizeof(env));
	env.mail_from = "";
	env.helo = ctx->cfg->hostname;
	env.client_ip = "";
	env.size = msg.len;
	env.rcpts = xcalloc(n, sizeof(*env.rcpts));
	env.nrcpts = n;
	for (size_t i = 0; i < n; i++) {
		env.rcpts[i].address = finals[i];
		env.rcpts[i].notify = 0x1; /* NEVER: nothing comes back */
		env.rcpts[i].local = locals[i];
	}
	if (spool_commit(q->spool, newid, &env, &error) < 0) {
		spool_discard(q->spool, newid);
		free(env.rcpts);
		goto out;
	}
	free(env.rcpts);
	log_info(newid,
	         "event=queued from=<> size=%zu rcpts=%zu "
	         "notice=sending-suspended user=%s",
	         msg.len, n, p->user);
	for (size_t i = 0; i < n; i++)
		log_info(newid,
		         "event=rcpt to=<%s> orcpt=<postmaster> local=%s",
		         finals[i], locals[i] ? "yes" : "no");
	queue_kick(q);
	ret = 0;
out:
	if (ret < 0)
		log_error(p->id, "event=notice-failed user=%s error=%s",
		          p->user, error != NULL ? error : "?");
	free(error);
	free(u);
	buf_free(&msg);
	return ret;
}

/* ---- pending suspensions: lookup's part and the notice ---- */

static void
pending_clear(struct pending *p)
{
	free(p->user);
	free(p->reason);
	free(p->id);
	free(p->body);
	memset(p, 0, sizeof(*p));
}

static bool
pending_done(const struct pending *p)
{
	return p->suspend_sent && p->body == NULL;
}

static void retry_cb(evutil_socket_t fd, short what, void *arg);

/* Do what can be done now for each pending suspension; come back later
 * for the rest. */
static void
pending_run(struct child_ctx *ctx)
{
	struct ipc_peer *lookup = child_peer(ctx, "lookup");
	uint64_t now = clock_wall_ms();
	bool left = false;

	for (size_t i = 0; i < PENDING_MAX; i++) {
		struct pending *p = &limits.pending[i];

		if (!p->active)
			continue;
		if (!p->suspend_sent && lookup != NULL && !ctx->stopping) {
			struct buf b;

			buf_init(&b, 0);
			ipc_put_str(&b, p->user);
			ipc_put_str(&b, p->reason);
			p->suspend_sent = ipc_send(lookup, IPC_MSG_USER_SUSPEND,
			                           0, -1, b.data, b.len) == 0;
			buf_free(&b);
		}
		if (p->body != NULL && lookup != NULL && !ctx->stopping &&
		    (!p->asked || now - p->asked_ms > ASK_AGAIN_MS)) {
			struct buf b;

			buf_init(&b, 0);
			ipc_put_str(&b, "postmaster");
			ipc_put_u32(&b, 1); /* any domain resolves */
			ipc_put_str(&b, "");
			p->reqid = REQID_BIT | (++limits.reqid & ~REQID_BIT);
			p->asked = ipc_send(lookup, IPC_MSG_RCPT_CHECK,
			                    p->reqid, -1, b.data, b.len) == 0;
			p->asked_ms = now;
			buf_free(&b);
		}
		if (pending_done(p))
			pending_clear(p);
		else
			left = true;
	}
	if (!left || ctx->stopping)
		return;
	if (limits.retry_ev == NULL)
		limits.retry_ev = evtimer_new(ctx->base, retry_cb, ctx);
	if (limits.retry_ev != NULL &&
	    !evtimer_pending(limits.retry_ev, NULL)) {
		struct timeval tv = {RETRY_MS / 1000, (RETRY_MS % 1000) * 1000};

		evtimer_add(limits.retry_ev, &tv);
	}
}

static void
retry_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	pending_run(arg);
}

bool
queue_limits_reply(struct child_ctx *ctx, struct ipc_msg *msg)
{
	struct pending *p = NULL;
	struct queue_finals f;

	if (!(msg->reqid & REQID_BIT))
		return false;
	for (size_t i = 0; i < PENDING_MAX && p == NULL; i++)
		if (limits.pending[i].active && limits.pending[i].asked &&
		    limits.pending[i].reqid == msg->reqid)
			p = &limits.pending[i];
	if (p == NULL)
		return true; /* asked again since, or done */
	p->asked = false;
	if (queue_finals_read(msg, NOTICE_FINALS_MAX, &f) < 0) {
		log_error(p->id, "event=bad-rcpt-reply");
	} else if (f.result == 0 && f.n > 0) {
		if (notice_send(ctx, p, f.addr, f.local, f.n) == 0 ||
		    ++p->tries == NOTICE_TRIES_MAX)
			xfree(&p->body);
	} else if (f.result == 4) {
		/* lookup could not tell now: asked again later */
	} else {
		log_warn(p->id,
		         "event=notice-dropped user=%s reason=no-postmaster "
		         "result=%u",
		         p->user, f.result);
		xfree(&p->body);
	}
	queue_finals_clear(&f);
	if (pending_done(p))
		pending_clear(p);
	else
		pending_run(ctx);
	return true;
}

/* ---- the rules ---- */

static void
suspend(struct child_ctx *ctx, const char *id, const char *user,
        const char *reason, const char *why, uint64_t msgs, uint64_t rcpts,
        uint64_t usual, uint64_t now)
{
	struct queue *q = ctx->role;
	struct pending *p = NULL;
	char *error = NULL;
	size_t held = 0;

	if (spool_hold_user(q->spool, user, true, &held, &error) < 0) {
		log_error(id, "event=spool-hold-failed user=%s error=%s", user,
		          error);
		xfree(&error);
		if (spool_hold(q->spool, id, true, &error) < 0) {
			log_error(id, "event=spool-hold-failed error=%s",
			          error);
			xfree(&error);
		}
	}
	if (sendlog_suspended(limits.log, user, now, &error) < 0) {
		log_error(id, "event=sendlog-failed error=%s", error);
		xfree(&error);
	}
	log_warn(id,
	         "event=sending-suspended user=%s reason=%s messages=%llu "
	         "rcpts=%llu window=1h usual=%llu held=%zu",
	         user, reason, (unsigned long long)msgs,
	         (unsigned long long)rcpts, (unsigned long long)usual, held);
	for (size_t i = 0; i < PENDING_MAX && p == NULL; i++)
		if (!limits.pending[i].active)
			p = &limits.pending[i];
	if (p == NULL) {
		/* So many at once that the oldest notice gives way. */
		p = &limits.pending[0];
		log_error(p->id, "event=notice-dropped user=%s reason=too-many",
		          p->user);
		pending_clear(p);
	}
	p->active = true;
	p->user = xstrdup(user);
	p->reason = xstrdup(reason);
	p->id = xstrdup(id);
	p->body =
	    notice_body(ctx, id, user, why, msgs, rcpts, usual, held, now);
	pending_run(ctx);
	if (!p->suspend_sent)
		log_error(id,
		          "event=user-suspend-delayed user=%s "
		          "reason=lookup-down",
		          user);
}

void
queue_limits_committed(struct child_ctx *ctx, const char *id,
                       const struct spool_envelope *env)
{
	const struct config *cfg = ctx->cfg;
	struct sendlog *log;
	uint64_t now, msgs = 0, rcpts = 0, usual = 0;
	unsigned remote = 0;
	const char *reason = NULL;
	char why[256], *error = NULL;
	bool have_usual = false;

	if (env->auth_user == NULL)
		return; /* MX mail: no limits */
	for (size_t i = 0; i < env->nrcpts; i++)
		remote += !env->rcpts[i].local;
	if (remote == 0)
		return;
	if (cfg->sending_limit_messages == 0 &&
	    cfg->sending_limit_recipients == 0 &&
	    cfg->sending_spike_factor == 0)
		return;
	now = clock_wall_ms();
	if ((log = limits_log(ctx, now)) == NULL)
		return;
	if (sendlog_record(log, env->auth_user, now, remote, &error) < 0 ||
	    sendlog_window(log, env->auth_user,
	                   now > HOUR_MS ? now - HOUR_MS : 0, &msgs, &rcpts,
	                   &error) < 0) {
		log_error(id, "event=sendlog-failed error=%s", error);
		free(error);
		return;
	}
	if (cfg->sending_limit_messages != 0 &&
	    msgs > cfg->sending_limit_messages) {
		reason = "limit";
		snprintf(why, sizeof(why),
		         "more than %u messages to remote recipients in an "
		         "hour\r\n(sending_limit_messages)",
		         cfg->sending_limit_messages);
	} else if (cfg->sending_limit_recipients != 0 &&
	           rcpts > cfg->sending_limit_recipients) {
		reason = "limit";
		snprintf(why, sizeof(why),
		         "more than %u remote recipients in an hour\r\n"
		         "(sending_limit_recipients)",
		         cfg->sending_limit_recipients);
	} else if (cfg->sending_spike_factor != 0 &&
	           msgs > cfg->sending_spike_floor) {
		if (sendlog_usual(log, env->auth_user, now, &usual, &error) <
		    0) {
			log_error(id, "event=sendlog-failed error=%s", error);
			free(error);
			return;
		}
		have_usual = true;
		if (msgs > (uint64_t)cfg->sending_spike_factor * usual) {
			reason = "spike";
			snprintf(why, sizeof(why),
			         "a spike: more than %u times the user's "
			         "busiest hour of the last\r\n7 days, and more "
			         "than %u messages in an hour\r\n"
			         "(sending_spike_factor, sending_spike_floor)",
			         cfg->sending_spike_factor,
			         cfg->sending_spike_floor);
		}
	}
	if (reason != NULL) {
		if (!have_usual &&
		    sendlog_usual(log, env->auth_user, now, &usual, &error) < 0)
			xfree(&error); /* only for the log line */
		suspend(ctx, id, env->auth_user, reason, why, msgs, rcpts,
		        usual, now);
	}
	limits_prune(log, now);
}
