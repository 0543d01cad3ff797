/* front's own state, shared by front.c (role wiring) and front_conn.c
 * (one accepted connection). Nothing outside src/roles includes this. */
#ifndef TERN_ROLES_FRONT_H
#define TERN_ROLES_FRONT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "roles/roles.h"

struct event;
struct evconnlistener;
struct front_conn;
struct dns_resolver;
struct workpool;
struct psl;

struct front_listener {
	struct front *front;
	struct evconnlistener *lev;
	size_t index; /* into ctx->cfg->listeners */
	char address[64];
	uint16_t port;
	uint32_t active; /* live connections */
};

struct front {
	struct child_ctx *ctx;
	struct tls_server *tls; /* NULL until parent sends certificates */
	struct ip_counter *per_ip;
	struct front_listener **listeners;
	size_t nlisteners;
	struct front_conn *conns; /* every live connection */
	size_t nconns;
	uint64_t next_id;
	uint32_t next_reqid;    /* login checks sent to lookup */
	struct event *deadline; /* set when stopping */
	bool stopping;
	struct dns_resolver *resolver; /* mail checks (front_auth.c) */
	struct workpool *pool;         /* their worker threads */
	struct psl *psl;               /* public suffixes, for DMARC */
	/* Message bytes read from plain sockets (front_conn.c), on the
	 * loop only. */
	uint8_t bulk[64 * 1024];
};

void front_conn_accept(struct front_listener *fl, int fd,
                       const struct sockaddr *sa, int salen);
/* Say goodbye to every connection at its next safe point. */
void front_conn_shutdown_all(struct front *f);
/* lookup answered a login check (IPC_MSG_AUTH_REPLY). */
void front_conn_auth_reply(struct front *f, struct ipc_msg *msg);
/* The link to peer went down: questions out with it fail temporarily. */
void front_conn_link_down(struct front *f, const char *peer);
/* A connection ended: front exits when stopping and none are left. */
void front_conn_gone(struct front *f);

#endif
