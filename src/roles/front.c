/* front: the network-facing role. Takes listening sockets and certificates
 * from parent, accepts connections, and runs each one (front_conn.c).
 * SECURITY: runs as an unprivileged user in an empty chroot; it holds no
 * files but the descriptors parent passed and the PEM bytes it was sent. */
#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/ssl.h>
#include <stdlib.h>
#include <string.h>

#include "core/listener.h"
#include "core/log.h"
#include "core/tls.h"
#include "core/xmalloc.h"
#include "roles/front.h"
#include "roles/front_auth.h"
#include "roles/front_conn.h"

#define CERTS_MAX 64

static const struct ipc_rule front_rules[] = {
    {IPC_MSG_LISTENER, 12, 256, IPC_FD_REQUIRED},
    {IPC_MSG_CERTIFICATES, 4, IPC_MAX_PAYLOAD, IPC_FD_NEVER},
    {0, 0, 0, IPC_FD_NEVER},
};

static const char *
front_user(const struct config *cfg)
{
	return cfg->front_user;
}

static void
front_accept_cb(struct evconnlistener *lev, evutil_socket_t fd,
                struct sockaddr *sa, int salen, void *arg)
{
	(void)lev;
	front_conn_accept(arg, fd, sa, salen);
}

static void
front_accept_error_cb(struct evconnlistener *lev, void *arg)
{
	struct front_listener *fl = arg;

	(void)lev;
	/* EMFILE and friends: log; libevent keeps the listener enabled. */
	log_warn(NULL, "event=accept-failed address=%s port=%u error=%s",
	         fl->address, fl->port,
	         evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
}

static void
front_add_listener(struct front *f, struct ipc_msg *msg)
{
	struct front_listener *fl;
	struct ipc_reader r;
	char *addr;
	uint32_t index, port;

	ipc_reader_init(&r, msg);
	index = ipc_get_u32(&r);
	addr = ipc_get_str(&r);
	port = ipc_get_u32(&r);
	if (ipc_reader_done(&r) < 0 || index >= f->ctx->cfg->nlisteners ||
	    port > 65535) {
		log_error(NULL, "event=bad-listener-message");
		free(addr);
		return;
	}
	fl = xcalloc(1, sizeof(*fl));
	fl->front = f;
	fl->index = index;
	fl->port = (uint16_t)port;
	snprintf(fl->address, sizeof(fl->address), "%s", addr);
	free(addr);
	fl->lev = evconnlistener_new(
	    f->ctx->base, front_accept_cb, fl,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0, msg->fd);
	if (fl->lev == NULL) {
		log_error(NULL, "event=listener-failed address=%s port=%u",
		          fl->address, fl->port);
		free(fl);
		return;
	}
	msg->fd = -1; /* the listener owns it now */
	evconnlistener_set_error_cb(fl->lev, front_accept_error_cb);
	f->listeners = xreallocarray(f->listeners, f->nlisteners + 1,
	                             sizeof(*f->listeners));
	f->listeners[f->nlisteners++] = fl;
	log_info(NULL, "event=listening service=%s address=%s port=%u tls=%s",
	         config_service_name(f->ctx->cfg->listeners[index].service),
	         fl->address, fl->port,
	         config_tls_name(f->ctx->cfg->listeners[index].tls));
}

static void
front_set_certificates(struct front *f, struct ipc_msg *msg)
{
	struct tls_pem pems[CERTS_MAX];
	struct tls_server *srv;
	struct ipc_reader r;
	uint32_t n;
	char *error = NULL;

	ipc_reader_init(&r, msg);
	n = ipc_get_u32(&r);
	if (n == 0 || n > CERTS_MAX) {
		log_error(NULL, "event=bad-certificates-message count=%u", n);
		return;
	}
	for (uint32_t i = 0; i < n; i++) {
		pems[i].cert =
		    (const char *)ipc_get_bytes(&r, &pems[i].cert_len);
		pems[i].key = (const char *)ipc_get_bytes(&r, &pems[i].key_len);
	}
	if (ipc_reader_done(&r) < 0) {
		log_error(NULL, "event=bad-certificates-message");
		return;
	}
	if ((srv = tls_server_new(pems, n, &error)) == NULL) {
		log_error(NULL, "event=certificates-rejected error=%s", error);
		free(error);
		return;
	}
	/* Connections that started with the old set keep their reference. */
	tls_server_unref(&f->tls);
	f->tls = srv;
	for (size_t i = 0; i < tls_server_cert_count(srv); i++)
		log_info(NULL,
		         "event=certificate-installed name=%s "
		         "not_after=%lld",
		         tls_server_cert_name(srv, i),
		         (long long)tls_server_cert_not_after(srv, i));
}

static int
front_prepare(struct child_ctx *ctx, char **error_r)
{
	SSL_CTX *probe;

	/* OpenSSL loads its configuration and providers lazily from files
	 * that the chroot hides: load them now. */
	OPENSSL_init_ssl(OPENSSL_INIT_LOAD_CONFIG, NULL);
	if ((probe = SSL_CTX_new(TLS_server_method())) != NULL)
		SSL_CTX_free(probe);
	ctx->role = xcalloc(1, sizeof(struct front));
	((struct front *)ctx->role)->ctx = ctx;
	/* The resolver reads resolv.conf and the trust anchor now: the
	 * chroot hides them. */
	return front_auth_init(ctx->role, error_r);
}

static int
front_start(struct child_ctx *ctx, char **error_r)
{
	struct front *f = ctx->role;

	(void)error_r;
	f->ctx = ctx;
	f->per_ip = ip_counter_new();
	front_auth_start(f);
	return 0;
}

static void
front_message(struct child_ctx *ctx, struct ipc_msg *msg)
{
	struct front *f = ctx->role;

	switch (msg->type) {
	case IPC_MSG_LISTENER:
		if (!f->stopping)
			front_add_listener(f, msg);
		break;
	case IPC_MSG_CERTIFICATES:
		front_set_certificates(f, msg);
		break;
	default:
		break;
	}
}

void
front_conn_gone(struct front *f)
{
	if (f->stopping && f->nconns == 0)
		child_exit(f->ctx);
}

static void
front_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct front *f = arg;

	(void)fd;
	(void)what;
	log_warn(NULL, "event=shutdown-timeout connections=%zu", f->nconns);
	child_exit(f->ctx);
}

static void
front_shutdown(struct child_ctx *ctx)
{
	struct front *f = ctx->role;
	uint64_t ms = ctx->cfg->shutdown_timeout_ms;
	struct timeval tv = {(time_t)(ms / 1000),
	                     (suseconds_t)(ms % 1000) * 1000};

	f->stopping = true;
	/* Clients that never read their goodbye do not hold us up. */
	f->deadline = evtimer_new(ctx->base, front_deadline_cb, f);
	evtimer_add(f->deadline, &tv);
	for (size_t i = 0; i < f->nlisteners; i++) {
		evconnlistener_free(f->listeners[i]->lev);
		free(f->listeners[i]);
	}
	xfree(&f->listeners);
	f->nlisteners = 0;
	log_info(NULL, "event=draining connections=%zu", f->nconns);
	front_conn_shutdown_all(f);
	front_conn_gone(f);
}

/* What lookup may send on its link. */
static const struct ipc_rule lookup_rules[] = {
    {IPC_MSG_AUTH_REPLY, 20, 4096, IPC_FD_NEVER},
    {IPC_MSG_RCPT_REPLY, 8, IPC_MAX_PAYLOAD, IPC_FD_NEVER},
    {IPC_MSG_SENDER_REPLY, 4, 4, IPC_FD_NEVER},
    {IPC_MSG_DKIM_KEYS_REPLY, 4, 4096, IPC_FD_NEVER},
    {IPC_MSG_DKIM_SIGNATURES, 4, 32768, IPC_FD_NEVER},
    {IPC_MSG_PING, 0, 0, IPC_FD_NEVER},
    {IPC_MSG_PONG, 0, 0, IPC_FD_NEVER},
    {0, 0, 0, IPC_FD_NEVER},
};

/* What queue may send on its link. */
static const struct ipc_rule queue_rules[] = {
    {IPC_MSG_SPOOL_FILE, 4, 64, IPC_FD_OPTIONAL},
    {IPC_MSG_SPOOL_COMMITTED, 8, 64, IPC_FD_NEVER},
    {IPC_MSG_PING, 0, 0, IPC_FD_NEVER},
    {IPC_MSG_PONG, 0, 0, IPC_FD_NEVER},
    {0, 0, 0, IPC_FD_NEVER},
};

/* What store may send on its link: nothing but liveness. */
static const struct ipc_rule store_rules[] = {
    {IPC_MSG_PING, 0, 0, IPC_FD_NEVER},
    {IPC_MSG_PONG, 0, 0, IPC_FD_NEVER},
    {0, 0, 0, IPC_FD_NEVER},
};

static const struct ipc_rule *
front_peer_rules(const char *peer)
{
	if (strcmp(peer, "store") == 0)
		return store_rules;
	if (strcmp(peer, "lookup") == 0)
		return lookup_rules;
	if (strcmp(peer, "queue") == 0)
		return queue_rules;
	return NULL;
}

static void
front_peer_message(struct child_ctx *ctx, struct child_link *link,
                   struct ipc_msg *msg)
{
	(void)link;
	if (msg->type == IPC_MSG_AUTH_REPLY)
		front_conn_auth_reply(ctx->role, msg);
	else
		front_smtp_reply(ctx->role, msg);
}

static void
front_peer_down(struct child_ctx *ctx, struct child_link *link)
{
	front_conn_link_down(ctx->role, link->name);
}

const struct role_ops role_front = {
    .name = "front",
    .user = front_user,
    .chroot = true,
    .rules = front_rules,
    .prepare = front_prepare,
    .start = front_start,
    .message = front_message,
    .shutdown = front_shutdown,
    .peer_rules = front_peer_rules,
    .peer_message = front_peer_message,
    .peer_down = front_peer_down,
};
