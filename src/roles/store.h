/* The store role's state, shared by store.c (deliveries from queue) and
 * store_imap.c (IMAP sessions handed over by front). Private to
 * src/roles. */
#ifndef TERN_ROLES_STORE_H
#define TERN_ROLES_STORE_H

#include <stdbool.h>
#include <stddef.h>

struct event_base;
struct ipc_msg;
struct ledger;
struct workpool;
struct store_session;
struct store_handles;
struct child_ctx;

struct store {
	struct child_ctx *ctx;
	struct event_base *base;
	struct workpool *pool;
	char *mail_root;
	char *hostname;
	size_t append_max;
	struct ledger *ledger;
	struct store_handles *handles; /* store.c: kept for deliveries */
	struct rcpt_queue *rcpt_queues; /* store.c: deliveries per recipient */
	size_t deliveries;             /* out on the pool */
	struct store_session *sessions;
	size_t nsessions;
	struct text_todo *text_todo; /* store.c: text indexes to catch up */
	struct text_todo *text_running;
	bool stopping;
};

/* store_imap.c */
void store_session_open(struct store *st, struct ipc_msg *msg);
/* Mail arrived for user: IDLE sessions look now. */
void store_sessions_notify(struct store *st, const char *user);
/* Say BYE to every session and close them once flushed. */
void store_sessions_shutdown(struct store *st);

/* store.c: the text index of the user at dir lacks messages (a handle of
 * it said mbox_text_lagging): caught up in the background. */
void store_text_lag(struct store *st, const char *dir);

/* store.c: a session or a delivery ended; exit when stopping and idle. */
void store_session_gone(struct store *st);

#endif
