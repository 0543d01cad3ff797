/* The processes of a running tern: parent supervises; each child role
 * (front, lookup, queue, store) is the same binary re-executed as
 * "tern __role NAME" with its ipc link to parent on descriptor 3.
 * Only src/roles and main.c know about processes and ipc wiring. */
#ifndef TERN_ROLES_ROLES_H
#define TERN_ROLES_ROLES_H

#include <stdbool.h>

#include "core/config.h"
#include "core/ipc.h"

/* The descriptor a child finds its link to parent on. */
#define ROLE_IPC_FD 3

/* A direct link to another role, which parent sets up (and sets up again
 * when either side restarts). */
struct child_link {
	struct child_ctx *ctx;
	char name[16]; /* the peer role */
	struct ipc_peer *peer;
};

#define CHILD_LINKS_MAX 4

struct child_ctx {
	const struct role_ops *ops;
	struct child_link links[CHILD_LINKS_MAX];
	struct event_base *base;
	struct ipc_peer *parent;
	struct config *cfg;
	bool started;
	bool stopping;
	void *role; /* the role's own state */
};

struct role_ops {
	const char *name;
	/* The system user this role runs as (when started as root). */
	const char *(*user)(const struct config *cfg);
	/* Confine the role to an empty, read-only root. */
	bool chroot;
	/* Messages this role takes from parent beyond the common ones. */
	const struct ipc_rule *rules;
	/* Before privileges are dropped: open what needs root or files. */
	int (*prepare)(struct child_ctx *ctx, char **error_r);
	/* After the drop: start serving. */
	int (*start)(struct child_ctx *ctx, char **error_r);
	void (*message)(struct child_ctx *ctx, struct ipc_msg *msg);
	/* ctx->cfg is the new config; old is freed after this returns. */
	void (*reload)(struct child_ctx *ctx, const struct config *old);
	/* Stop taking work, finish what is in flight, then child_exit(). */
	void (*shutdown)(struct child_ctx *ctx);
	/* Links: what the named peer may send (NULL: no link expected from
	 * it), its messages, and the link coming up or going down. */
	const struct ipc_rule *(*peer_rules)(const char *peer);
	void (*peer_message)(struct child_ctx *ctx, struct child_link *link,
	                     struct ipc_msg *msg);
	void (*peer_up)(struct child_ctx *ctx, struct child_link *link);
	void (*peer_down)(struct child_ctx *ctx, struct child_link *link);
};

/* The live link to the named role, or NULL. */
struct ipc_peer *child_peer(struct child_ctx *ctx, const char *name);

extern const struct role_ops role_front;
extern const struct role_ops role_lookup;
extern const struct role_ops role_queue;
extern const struct role_ops role_store;

/* main() for "tern __role NAME". */
int child_main(const char *name);
/* A role has finished its shutdown: flush to parent and exit 0. */
void child_exit(struct child_ctx *ctx) __attribute__((noreturn));

/* `tern serve`: run the parent in the foreground until SIGTERM. */
int parent_main(const char *config_path, struct config *cfg);

/* The data subdirectory a role owns must be usable by it, now (after the
 * privilege drop): 0, or -1 with *error_r. */
int role_check_dir(const struct config *cfg, const char *sub, char **error_r);

/* The directory front is confined to: empty, owned by root, not writable. */
char *role_empty_dir(const struct config *cfg);

#endif
