/* store: the mailboxes. This build delivers to Maildir for queue (local
 * delivery, fsync'd before it reports); IMAP and POP3 after login arrive
 * with the mailbox work.
 * SECURITY: runs as its own unprivileged user; only it opens mailboxes.
 * It takes a message descriptor and recipient addresses from queue; paths
 * are built and checked in src/store/maildir.c. */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/xmalloc.h"
#include "roles/roles.h"
#include "store/ledger.h"
#include "store/maildir.h"

#define DELIVER_RCPTS_MAX 10000

struct store {
	char *mail_root;
	struct ledger *ledger;
};

/* Deliver to the recipients the ledger has not seen for this message
 * (queue asks again after a crash), and record the ones that went in. */
static void
deliver_once(struct store *st, int fd, const char *id, const char *rp,
             char **rcpts, size_t n, enum maildir_result *results,
             char **errors)
{
	const char **todo = xcalloc(n, sizeof(*todo));
	enum maildir_result *res = xcalloc(n, sizeof(*res));
	char **err = xcalloc(n, sizeof(*err));
	size_t *map = xcalloc(n, sizeof(*map)), m = 0;
	uint64_t now = clock_wall_ms();

	for (size_t i = 0; i < n; i++) {
		if (ledger_seen(st->ledger, id, rcpts[i]) == 1) {
			log_info(id, "event=already-delivered to=<%s>",
			         rcpts[i]);
			results[i] = MAILDIR_OK;
			continue;
		}
		map[m] = i;
		todo[m++] = rcpts[i];
	}
	if (m > 0)
		maildir_deliver(st->mail_root, fd, rp, todo, m, res, err);
	for (size_t j = 0; j < m; j++) {
		results[map[j]] = res[j];
		errors[map[j]] = err[j];
		if (res[j] == MAILDIR_OK)
			ledger_record(st->ledger, id, todo[j], now);
	}
	ledger_prune(st->ledger, now);
	free(todo);
	free(res);
	free(err);
	free(map);
}

static const struct ipc_rule queue_rules[] = {
    {IPC_MSG_DELIVER, 12, IPC_MAX_PAYLOAD, IPC_FD_REQUIRED},
    {IPC_MSG_PING, 0, 0, IPC_FD_NEVER},
    {IPC_MSG_PONG, 0, 0, IPC_FD_NEVER},
    {0, 0, 0, IPC_FD_NEVER},
};

static const char *
store_user(const struct config *cfg)
{
	return cfg->store_user;
}

static void
deliver(struct child_ctx *ctx, struct ipc_peer *peer, struct ipc_msg *msg)
{
	struct store *st = ctx->role;
	struct ipc_reader r;
	enum maildir_result *results = NULL;
	char *id, *rp, **rcpts = NULL, **errors = NULL;
	uint32_t n;
	struct buf b;

	ipc_reader_init(&r, msg);
	id = ipc_get_str(&r);
	rp = ipc_get_str(&r);
	n = ipc_get_u32(&r);
	if (id == NULL || rp == NULL || r.error || n == 0 ||
	    n > DELIVER_RCPTS_MAX) {
		log_error(NULL, "event=bad-deliver-request");
		goto out;
	}
	rcpts = xcalloc(n, sizeof(*rcpts));
	for (uint32_t i = 0; i < n; i++)
		rcpts[i] = ipc_get_str(&r);
	if (ipc_reader_done(&r) < 0) {
		log_error(id, "event=bad-deliver-request");
		goto out;
	}
	results = xcalloc(n, sizeof(*results));
	errors = xcalloc(n, sizeof(*errors));
	deliver_once(st, msg->fd, id, rp, rcpts, n, results, errors);
	buf_init(&b, 0);
	ipc_put_str(&b, id);
	ipc_put_u32(&b, n);
	for (uint32_t i = 0; i < n; i++) {
		ipc_put_str(&b, rcpts[i]);
		ipc_put_u32(&b, results[i] == MAILDIR_OK         ? 0
		                : results[i] == MAILDIR_TEMPFAIL ? 1
		                                                 : 2);
		ipc_put_str(&b, errors[i] != NULL ? errors[i] : "");
	}
	ipc_send(peer, IPC_MSG_DELIVERED, 0, -1, b.data, b.len);
	buf_free(&b);
out:
	for (uint32_t i = 0; rcpts != NULL && i < n; i++) {
		free(rcpts[i]);
		if (errors != NULL)
			free(errors[i]);
	}
	free(rcpts);
	free(errors);
	free(results);
	free(id);
	free(rp);
}

static const struct ipc_rule *
store_peer_rules(const char *peer)
{
	return strcmp(peer, "queue") == 0 ? queue_rules : NULL;
}

static void
store_peer_message(struct child_ctx *ctx, struct child_link *link,
                   struct ipc_msg *msg)
{
	if (msg->type == IPC_MSG_DELIVER)
		deliver(ctx, link->peer, msg);
}

static int
store_start(struct child_ctx *ctx, char **error_r)
{
	struct store *st = xcalloc(1, sizeof(*st));

	ctx->role = st;
	char *path;

	st->mail_root = xasprintf("%s/mail", ctx->cfg->data_dir);
	if (role_check_dir(ctx->cfg, "mail", error_r) < 0)
		return -1;
	path = xasprintf("%s/.delivered.db", st->mail_root);
	st->ledger = ledger_open(path, error_r);
	free(path);
	return st->ledger != NULL ? 0 : -1;
}

static void
store_message(struct child_ctx *ctx, struct ipc_msg *msg)
{
	(void)ctx;
	log_warn(NULL, "event=unexpected-message type=%u", msg->type);
}

static void
store_shutdown(struct child_ctx *ctx)
{
	/* A delivery runs to completion inside one callback. */
	child_exit(ctx);
}

const struct role_ops role_store = {
    .name = "store",
    .user = store_user,
    .chroot = false,
    .start = store_start,
    .message = store_message,
    .shutdown = store_shutdown,
    .peer_rules = store_peer_rules,
    .peer_message = store_peer_message,
};
