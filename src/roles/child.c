/* The common life of a child role: take the config from parent over ipc,
 * drop privileges, start the role, serve until parent says shut down.
 * SECURITY: nothing is started before the drop succeeds; a failed drop or a
 * broken link to parent ends the process. */
#include <errno.h>
#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/log.h"
#include "core/proc.h"
#include "core/xmalloc.h"
#include "roles/roles.h"

static const struct role_ops *const roles[] = {
    &role_front,
    &role_lookup,
    &role_queue,
    &role_store,
};

/* What every child takes from parent; a role's own rules come first. */
static const struct ipc_rule common_rules[] = {
    {IPC_MSG_CONFIG, 1, IPC_MAX_PAYLOAD, IPC_FD_NEVER},
    {IPC_MSG_RELOAD, 1, IPC_MAX_PAYLOAD, IPC_FD_NEVER},
    {IPC_MSG_SHUTDOWN, 0, 0, IPC_FD_NEVER},
    {IPC_MSG_PING, 0, 0, IPC_FD_NEVER},
    {IPC_MSG_PONG, 0, 0, IPC_FD_NEVER},
    {IPC_MSG_LINK, 5, 64, IPC_FD_REQUIRED},
};

#define MAX_RULES 32

static struct ipc_rule child_rules[MAX_RULES];

static void
child_build_rules(const struct role_ops *ops)
{
	size_t n = 0;

	for (const struct ipc_rule *r = ops->rules; r != NULL && r->type != 0;
	     r++)
		child_rules[n++] = *r;
	for (size_t i = 0; i < sizeof(common_rules) / sizeof(common_rules[0]);
	     i++)
		child_rules[n++] = common_rules[i];
	child_rules[n].type = 0;
}

char *
role_empty_dir(const struct config *cfg)
{
	return xasprintf("%s/empty", cfg->data_dir);
}

int
role_check_dir(const struct config *cfg, const char *sub, char **error_r)
{
	char *dir = xasprintf("%s/%s", cfg->data_dir, sub);
	int rc = 0;

	if (access(dir, R_OK | W_OK | X_OK) < 0) {
		*error_r = xasprintf("%s: %s", dir, strerror(errno));
		rc = -1;
	}
	free(dir);
	return rc;
}

void
child_exit(struct child_ctx *ctx)
{
	log_info(NULL, "event=stopped");
	if (ctx->parent != NULL)
		ipc_flush(ctx->parent, 1000);
	exit(0);
}

static struct config *
child_parse_config(const struct ipc_msg *msg)
{
	struct config *cfg;
	char *error = NULL;

	cfg = config_parse("(from parent)", "/", (const char *)msg->data,
	                   msg->len, &error);
	if (cfg == NULL) {
		log_error(NULL, "event=bad-config error=%s", error);
		free(error);
	}
	return cfg;
}

static void
child_apply_logging(const struct config *cfg)
{
	log_set_level(cfg->log_level);
	log_close_syslog();
	if (cfg->log_syslog && log_open_syslog(cfg->syslog_facility) < 0)
		log_warn(NULL, "event=syslog-failed facility=%s",
		         cfg->syslog_facility);
}

static void
child_start(struct child_ctx *ctx, const struct ipc_msg *msg)
{
	char *error = NULL, *root = NULL;
	const struct role_ops *ops = ctx->ops;

	if ((ctx->cfg = child_parse_config(msg)) == NULL)
		exit(EXIT_CONFIG);
	child_apply_logging(ctx->cfg);
	if (ops->prepare != NULL && ops->prepare(ctx, &error) < 0)
		fatal(EXIT_UNAVAILABLE, "event=prepare-failed error=%s", error);
	if (ops->chroot && geteuid() == 0)
		root = role_empty_dir(ctx->cfg);
	if (proc_drop_privileges(ops->user(ctx->cfg), root, &error) < 0)
		fatal(EXIT_OSERR, "event=privilege-drop-failed error=%s",
		      error);
	log_debug(NULL, "event=privileges uid=%u gid=%u chroot=%s",
	          (unsigned)getuid(), (unsigned)getgid(),
	          root != NULL ? root : "none");
	free(root);
	if (ops->start(ctx, &error) < 0)
		fatal(EXIT_UNAVAILABLE, "event=start-failed error=%s", error);
	ctx->started = true;
	ipc_send(ctx->parent, IPC_MSG_READY, 0, -1, NULL, 0);
}

static void
child_reload(struct child_ctx *ctx, const struct ipc_msg *msg)
{
	struct config *old = ctx->cfg, *cfg;

	if ((cfg = child_parse_config(msg)) == NULL)
		return;
	ctx->cfg = cfg;
	child_apply_logging(cfg);
	if (ctx->ops->reload != NULL)
		ctx->ops->reload(ctx, old);
	config_free(&old);
	log_info(NULL, "event=reloaded");
}

struct ipc_peer *
child_peer(struct child_ctx *ctx, const char *name)
{
	for (size_t i = 0; i < CHILD_LINKS_MAX; i++)
		if (ctx->links[i].peer != NULL &&
		    strcmp(ctx->links[i].name, name) == 0)
			return ctx->links[i].peer;
	return NULL;
}

static void
link_on_msg(struct ipc_peer *peer, struct ipc_msg *msg, void *arg)
{
	struct child_link *link = arg;

	(void)peer;
	if (msg->type == IPC_MSG_PING) {
		ipc_send(link->peer, IPC_MSG_PONG, msg->reqid, -1, NULL, 0);
		return;
	}
	link->ctx->ops->peer_message(link->ctx, link, msg);
}

static void
link_on_close(struct ipc_peer *peer, const char *why, void *arg)
{
	struct child_link *link = arg;
	struct child_ctx *ctx = link->ctx;

	(void)peer;
	log_info(NULL, "event=link-down peer=%s reason=%s", link->name, why);
	if (ctx->ops->peer_down != NULL)
		ctx->ops->peer_down(ctx, link);
	ipc_peer_free(&link->peer);
}

/* Parent handed us one end of a socketpair to another role. */
static void
child_add_link(struct child_ctx *ctx, struct ipc_msg *msg)
{
	const struct ipc_rule *rules = NULL;
	struct child_link *link = NULL;
	struct ipc_reader r;
	char *name;

	ipc_reader_init(&r, msg);
	name = ipc_get_str(&r);
	if (ipc_reader_done(&r) < 0 || name == NULL || strlen(name) >= 16 ||
	    ctx->ops->peer_rules == NULL ||
	    (rules = ctx->ops->peer_rules(name)) == NULL) {
		log_error(NULL, "event=link-refused peer=%s",
		          name != NULL ? name : "?");
		free(name);
		return;
	}
	/* A new link to the same role replaces the old (it restarted). */
	for (size_t i = 0; i < CHILD_LINKS_MAX && link == NULL; i++)
		if (strcmp(ctx->links[i].name, name) == 0)
			link = &ctx->links[i];
	for (size_t i = 0; i < CHILD_LINKS_MAX && link == NULL; i++)
		if (ctx->links[i].name[0] == '\0')
			link = &ctx->links[i];
	if (link == NULL) {
		log_error(NULL, "event=link-refused peer=%s reason=too-many",
		          name);
		free(name);
		return;
	}
	if (link->peer != NULL) {
		if (ctx->ops->peer_down != NULL)
			ctx->ops->peer_down(ctx, link);
		ipc_peer_free(&link->peer);
	}
	link->ctx = ctx;
	snprintf(link->name, sizeof(link->name), "%s", name);
	free(name);
	link->peer = ipc_peer_new(ctx->base, msg->fd, ctx->ops->name, rules,
	                          link_on_msg, link_on_close, link);
	msg->fd = -1;
	log_info(NULL, "event=link-up peer=%s", link->name);
	if (ctx->ops->peer_up != NULL)
		ctx->ops->peer_up(ctx, link);
}

static void
child_on_msg(struct ipc_peer *peer, struct ipc_msg *msg, void *arg)
{
	struct child_ctx *ctx = arg;

	switch (msg->type) {
	case IPC_MSG_CONFIG:
		if (ctx->started)
			fatal(EXIT_SOFTWARE, "event=protocol-error "
			                     "error=\"second CONFIG\"");
		child_start(ctx, msg);
		return;
	case IPC_MSG_PING:
		ipc_send(peer, IPC_MSG_PONG, msg->reqid, -1, NULL, 0);
		return;
	case IPC_MSG_PONG:
		return;
	default:
		break;
	}
	if (!ctx->started)
		fatal(EXIT_SOFTWARE,
		      "event=protocol-error error=\"message "
		      "before CONFIG\" type=%u",
		      msg->type);
	switch (msg->type) {
	case IPC_MSG_RELOAD:
		child_reload(ctx, msg);
		break;
	case IPC_MSG_LINK:
		child_add_link(ctx, msg);
		break;
	case IPC_MSG_SHUTDOWN:
		if (!ctx->stopping) {
			ctx->stopping = true;
			log_info(NULL, "event=stopping");
			ctx->ops->shutdown(ctx);
		}
		break;
	default:
		ctx->ops->message(ctx, msg);
		break;
	}
}

static void
child_on_close(struct ipc_peer *peer, const char *why, void *arg)
{
	(void)peer;
	(void)arg;
	/* Without parent there is no supervision: stop at once. */
	log_error(NULL, "event=parent-link-closed reason=%s", why);
	_exit(EXIT_SOFTWARE);
}

int
child_main(const char *name)
{
	struct child_ctx ctx;
	const struct role_ops *ops = NULL;
	char title[32];
	int type;
	socklen_t len = sizeof(type);

	for (size_t i = 0; i < sizeof(roles) / sizeof(roles[0]); i++)
		if (strcmp(roles[i]->name, name) == 0)
			ops = roles[i];
	if (ops == NULL) {
		fprintf(stderr, "tern: no role named %s\n", name);
		return EXIT_USAGE;
	}
	if (getsockopt(ROLE_IPC_FD, SOL_SOCKET, SO_TYPE, &type, &len) < 0 ||
	    type != SOCK_STREAM) {
		fprintf(stderr, "tern: roles are started by `tern serve`, "
		                "not by hand\n");
		return EXIT_USAGE;
	}
	/* The title overwrites argv, where name lives: use ops->name. */
	snprintf(title, sizeof(title), "tern: %s", ops->name);
	proc_set_title(title);
	log_init(ops->name, LOG_LEVEL_INFO, true);
	/* Parent coordinates shutdown: a terminal's ^C or a service
	 * manager's SIGTERM reaches every process of the group, but only
	 * parent acts on it; a child that loses parent exits by itself. */
	signal(SIGINT, SIG_IGN);
	signal(SIGTERM, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);

	memset(&ctx, 0, sizeof(ctx));
	ctx.ops = ops;
	if ((ctx.base = event_base_new()) == NULL)
		fatal(EXIT_OSERR, "event=event-base-failed");
	child_build_rules(ops);
	ctx.parent = ipc_peer_new(ctx.base, ROLE_IPC_FD, ops->name, child_rules,
	                          child_on_msg, child_on_close, &ctx);
	event_base_dispatch(ctx.base);
	return 0;
}
