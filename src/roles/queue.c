/* queue: the spool; it alone creates message files and delivers them on.
 * This build runs the process, its privilege drop and its link to parent,
 * and checks that it can use its spool directory.
 * SECURITY: runs as its own unprivileged user; it takes only messages
 * that parent sends (config, reload, shutdown, ping). */
#include "core/log.h"
#include "roles/roles.h"

static const char *
queue_user(const struct config *cfg)
{
	return cfg->queue_user;
}

static int
queue_start(struct child_ctx *ctx, char **error_r)
{
	return role_check_dir(ctx->cfg, "queue", error_r);
}

static void
queue_message(struct child_ctx *ctx, struct ipc_msg *msg)
{
	(void)ctx;
	log_warn(NULL, "event=unexpected-message type=%u", msg->type);
}

static void
queue_shutdown(struct child_ctx *ctx)
{
	/* Nothing runs in the background here yet: done at once. */
	child_exit(ctx);
}

const struct role_ops role_queue = {
	.name = "queue",
	.user = queue_user,
	.chroot = false,
	.start = queue_start,
	.message = queue_message,
	.shutdown = queue_shutdown,
};
