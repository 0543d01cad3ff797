/* store: the mailboxes: local delivery and IMAP/POP3 after login; this build runs the process, its privilege drop and its link to parent, and checks that it can use the mail directory.
 * SECURITY: runs as its own unprivileged user; it takes only messages
 * that parent sends (config, reload, shutdown, ping). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "core/xmalloc.h"
#include "roles/roles.h"

static const char *
store_user(const struct config *cfg)
{
	return cfg->store_user;
}

static int
store_start(struct child_ctx *ctx, char **error_r)
{
	char *dir = xasprintf("%s/mail", ctx->cfg->data_dir);
	int rc = 0;

	/* The directory this role owns must be usable by it, now. */
	if (access(dir, R_OK | W_OK | X_OK) < 0) {
		*error_r = xasprintf("%s: %s", dir, strerror(errno));
		rc = -1;
	}
	free(dir);
	return rc;
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
