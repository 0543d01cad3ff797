/* lookup: the directory (domains, users, aliases), password checks and
 * DKIM signing. This build runs the process, its privilege drop and its
 * link to parent; the directory arrives with its own work.
 * SECURITY: runs as its own unprivileged user; it takes only messages
 * that parent sends (config, reload, shutdown, ping). */
#include "core/log.h"
#include "roles/roles.h"

static const char *
lookup_user(const struct config *cfg)
{
	return cfg->lookup_user;
}

static int
lookup_start(struct child_ctx *ctx, char **error_r)
{
	return role_check_dir(ctx->cfg, "dkim", error_r);
}

static void
lookup_message(struct child_ctx *ctx, struct ipc_msg *msg)
{
	(void)ctx;
	log_warn(NULL, "event=unexpected-message type=%u", msg->type);
}

static void
lookup_shutdown(struct child_ctx *ctx)
{
	/* Nothing runs in the background here yet: done at once. */
	child_exit(ctx);
}

const struct role_ops role_lookup = {
	.name = "lookup",
	.user = lookup_user,
	.chroot = false,
	.start = lookup_start,
	.message = lookup_message,
	.shutdown = lookup_shutdown,
};
