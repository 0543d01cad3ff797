/* One accepted connection in front, shared by front_conn.c (the
 * connection: limits, PROXY, TLS, input and output) and front_smtp.c (the
 * SMTP session's questions to lookup and queue). Private to src/roles. */
#ifndef TERN_ROLES_FRONT_CONN_H
#define TERN_ROLES_FRONT_CONN_H

#include <stdbool.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "core/buf.h"
#include "core/config.h"
#include "directory/sasl.h"
#include "roles/front.h"

struct bufferevent;
struct event;
struct front_proto;
struct smtp_server;
struct front_smtp;
struct front_sign;
struct front_arc;

enum conn_state {
	CONN_PROXY,     /* waiting for the PROXY v2 header */
	CONN_HANDSHAKE, /* TLS handshake in progress */
	CONN_OPEN,      /* protocol lines flowing */
	CONN_STARTTLS,  /* flushing the go-ahead before the handshake */
	CONN_CLOSING,   /* flushing the last words */
	CONN_RELAY,     /* logged in: bytes relayed to and from store */
};

struct front_conn {
	struct front *front;
	struct front_listener *fl;
	enum listener_service service;
	enum listener_tls tls_mode;
	char id[20];
	char ip[64];      /* the client, after PROXY when used */
	char counted[64]; /* the address counted in per_ip */
	uint16_t port;
	int fd;
	enum conn_state state;
	struct event *proxy_ev;
	struct bufferevent *bev;
	/* Plain sockets: replies written during one callback, sent together
	 * by flush_ev right after it (front_conn.c conn_io_write). */
	struct buf out;
	struct event *flush_ev;
	SSL *ssl;
	struct tls_server *tls; /* the set this connection's SSL came from */
	struct front_proto *proto;
	bool tls_active;
	bool discarding;          /* skipping the rest of an over-long line */
	bool login_logged;        /* event=login written */
	uint32_t req_id;          /* a question out with another role, or 0 */
	uint16_t req_type;        /* its IPC_MSG_* */
	const char *req_peer;     /* "lookup" or "queue" */
	struct event *req_ev;     /* a question that could not be sent */
	struct smtp_server *smtp; /* SMTP, submission, LMTP sessions */
	struct front_smtp *tx;    /* their transaction state in front */
	struct sasl_verifier verifier; /* lookup, for this connection */
	struct bufferevent *relay;     /* CONN_RELAY: the socketpair to store */
	struct front_sign *sign;       /* DKIM signing under way */
	struct front_arc *arc;         /* ARC sealing under way */
	struct front_conn *prev, *next;
};

/* Ask another role (peer "lookup" or "queue") a question; the answer comes
 * back through front_conn_find(). If it cannot be sent, the failure is
 * reported later from the loop (the caller may be inside a protocol
 * step). payload is wiped and freed. */
void conn_request(struct front_conn *c, const char *peer, uint16_t type,
                  struct buf *payload);
/* The connection waiting for the answer reqid, or NULL (it left). The
 * caller clears c->req_id and c->req_type once it has the answer. */
struct front_conn *front_conn_take(struct front *f, uint32_t reqid);
/* After an answer: carry on with buffered input, flush replies. */
void conn_resume(struct front_conn *c);

/* The connection side of a protocol session: write, start TLS once
 * flushed, close once flushed (arg is the front_conn). */
void conn_io_write(void *arg, const char *data, size_t len);
void conn_io_starttls(void *arg);
void conn_io_close(void *arg);
/* Logins for this connection go to lookup. */
const struct sasl_verifier *conn_verifier(struct front_conn *c);
/* "smtp", "imap", "pop3", "sieve": the service name lookup sees. */
const char *conn_auth_service(const struct front_conn *c);

/* front_relay.c: after an IMAP login, hand the session to store and relay
 * bytes both ways (TLS stays here). */
void conn_io_handoff(void *arg, const char *tag);
/* Client input arrived / client output drained, in CONN_RELAY. */
void front_relay_client_read(struct front_conn *c);
void front_relay_client_drained(struct front_conn *c);
/* Free what conn_free must (called from it). */
void front_relay_free(struct front_conn *c);
/* Set the connection free (front_conn.c). */
void conn_close_now(struct front_conn *c);

/* front_smtp.c */
void front_smtp_start(struct front_conn *c);
void front_smtp_free(struct front_conn *c);
/* A question of type could not be asked (or its peer went away). */
void front_smtp_failed(struct front_conn *c, uint16_t type);
/* An answer from lookup or queue for an SMTP session. */
void front_smtp_reply(struct front *f, struct ipc_msg *msg);

#endif
