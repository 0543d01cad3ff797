/* store: the mailboxes — local delivery, IMAP and POP3 after login. This
 * build runs the process, its privilege drop and its link to parent, and
 * checks that it can use the mail directory.
 * SECURITY: runs as its own unprivileged user; it takes only messages
 * that parent sends (config, reload, shutdown, ping). */
#include "core/log.h"
#include "roles/roles.h"

static const char *
store_user(const struct config *cfg)
{
	return cfg->store_user;
}

static int
store_start(struct child_ctx *ctx, char **error_r)
{
	return role_check_dir(ctx->cfg, "mail", error_r);
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
	/* Nothing runs in the background here yet: done at once. */
	child_exit(ctx);
}

const struct role_ops role_store = {
	.name = "store",
	.user = store_user,
	.chroot = false,
	.start = store_start,
	.message = store_message,
	.shutdown = store_shutdown,
};
