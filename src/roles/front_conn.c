/* One accepted connection in front: connection limits, the PROXY v2 header,
 * the TLS handshake (implicit or after STARTTLS), then lines to the
 * protocol (front_proto.c) and its replies back.
 * SECURITY: every byte here comes from the network. The PROXY header is
 * read exactly (peeked, never over-read) and strictly parsed; input lines
 * and unread output are bounded; on STARTTLS, whatever the client sent
 * after the command is discarded before the handshake (CVE-2011-0411). */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/listener.h"
#include "core/log.h"
#include "core/proxy.h"
#include "core/tls.h"
#include "core/xmalloc.h"
#include "directory/sasl.h"
#include "roles/front.h"
#include "roles/front_conn.h"
#include "roles/front_arc.h"
#include "roles/front_sign.h"
#include "roles/front_proto.h"
#include "smtp/server.h"

/* Bounds for the first words (the real protocol modules set their own). */
#define LINE_MAX_BYTES 2048
#define OUTPUT_MAX_BYTES (256 * 1024)
/* The most libevent 2.1 reads from a socket per wakeup (EVBUFFER_MAX_READ
 * in its buffer.c). */
#define LIBEVENT_READ_MAX 4096
#define INPUT_MAX_BYTES (256 * 1024)
#define PROXY_TIMEOUT_S 10
#define HANDSHAKE_TIMEOUT_S 30
#define IDLE_TIMEOUT_S 300
/* Reads of message bytes from plain sockets (conn_read_bulk), and how
 * many in a row before other connections get their turn. */
#define BULK_ROUNDS_MAX 4

static void conn_start_session(struct front_conn *c);
static void conn_start_proto(struct front_conn *c,
                             const struct config_listener *l);
static void conn_read_input(struct front_conn *c, bool maybe_more);
static void conn_start_tls(struct front_conn *c);

static const struct config_listener *
conn_listener(const struct front_conn *c)
{
	return &c->front->ctx->cfg->listeners[c->fl->index];
}

static void
conn_set_state(struct front_conn *c, enum conn_state state)
{
	log_trace(c->id, "event=state from=%d to=%d", c->state, state);
	c->state = state;
}

static void
conn_free(struct front_conn *c)
{
	struct front *f = c->front;

	log_info(c->id, "event=disconnect ip=%s", c->ip);
	if (c->proxy_ev != NULL)
		event_free(c->proxy_ev);
	if (c->req_ev != NULL)
		event_free(c->req_ev);
	if (c->flush_ev != NULL)
		event_free(c->flush_ev);
	buf_free(&c->out);
	front_smtp_free(c);
	front_sign_abandon(c);
	front_arc_abandon(c);
	front_relay_free(c);
	if (c->bev != NULL)
		bufferevent_free(c->bev);
	if (c->ssl != NULL)
		SSL_free(c->ssl);
	tls_server_unref(&c->tls);
	front_proto_free(&c->proto);
	if (c->fd >= 0)
		close(c->fd);
	if (c->counted[0] != '\0')
		ip_counter_remove(f->per_ip, c->counted);
	c->fl->active--;
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		f->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	f->nconns--;
	free(c);
	front_conn_gone(f);
}

void
conn_close_now(struct front_conn *c)
{
	conn_free(c);
}

/* ---- protocol interface ---- */

/* Bytes not yet with the kernel: ours, then the bufferevent's. */
static size_t
conn_output_len(struct front_conn *c)
{
	return c->out.len + evbuffer_get_length(bufferevent_get_output(c->bev));
}

/* What the bufferevent is to send. On a plain socket its write event is
 * off until then: on from the start, it fired once for nothing, two
 * epoll_ctl(2) calls and a loop round per connection. */
static void
conn_bev_write(struct front_conn *c, const void *data, size_t len)
{
	bufferevent_write(c->bev, data, len);
	if (!(bufferevent_get_enabled(c->bev) & EV_WRITE))
		bufferevent_enable(c->bev, EV_WRITE);
}

/* On a plain socket, replies wait in c->out until the callback that wrote
 * them is over, then go in one send(2). Through the bufferevent, each
 * reply cost two epoll_ctl(2) calls (its write event added, then removed
 * once written) and a loop round: 14 of the 18 epoll_ctl calls of a
 * message from a client that does not pipeline. The bufferevent still
 * takes what the socket does not (and any error, which it reports). */
void
conn_io_write(void *arg, const char *data, size_t len)
{
	struct front_conn *c = arg;

	if (c->bev == NULL)
		return;
	if (c->out.len > 0 ||
	    (c->flush_ev != NULL && c->ssl == NULL &&
	     evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)) {
		if (c->out.len == 0)
			event_active(c->flush_ev, EV_TIMEOUT, 0);
		if (buf_append(&c->out, data, len) == 0)
			return;
		/* Past the limit: all of it to the bufferevent, in order,
		 * where the overflow check sees it. */
		conn_bev_write(c, c->out.data, c->out.len);
		buf_reset(&c->out);
	}
	conn_bev_write(c, data, len);
}

static void
conn_flush_cb(evutil_socket_t fd, short what, void *arg)
{
	struct front_conn *c = arg;
	size_t off = 0;

	(void)fd;
	(void)what;
	if (c->bev == NULL) {
		buf_reset(&c->out);
		return;
	}
	while (off < c->out.len) {
		ssize_t n = send(c->fd, c->out.data + off, c->out.len - off,
		                 MSG_DONTWAIT | MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	if (off < c->out.len)
		conn_bev_write(c, c->out.data + off, c->out.len - off);
	buf_reset(&c->out);
	/* All gone: what waited for that (a close, TLS) goes on. */
	if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0 &&
	    (c->state == CONN_STARTTLS || c->state == CONN_CLOSING))
		bufferevent_trigger(c->bev, EV_WRITE,
		                    BEV_TRIG_IGNORE_WATERMARKS);
}

void
conn_io_starttls(void *arg)
{
	struct front_conn *c = arg;

	conn_set_state(c, CONN_STARTTLS);
}

void
conn_io_close(void *arg)
{
	struct front_conn *c = arg;

	conn_set_state(c, CONN_CLOSING);
	/* The session is over: a client that reconnects at once (after
	 * QUIT) must not find itself still counted. */
	if (c->counted[0] != '\0') {
		ip_counter_remove(c->front->per_ip, c->counted);
		c->counted[0] = '\0';
	}
}

/* ---- bufferevent callbacks ---- */

/* Say once that the session logged in (after whichever step finished it:
 * the verifier's answer, or SCRAM's final empty line). */
static void
conn_note_login(struct front_conn *c)
{
	const char *user = c->smtp != NULL ? smtp_server_auth_user(c->smtp)
	                                   : front_proto_user(c->proto);

	if (user != NULL && !c->login_logged) {
		c->login_logged = true;
		log_info(c->id, "event=login user=%s service=%s", user,
		         conn_auth_service(c));
	}
}

static void
conn_read_lines(struct front_conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	char *line;
	size_t len;

	while (c->state == CONN_OPEN && !front_proto_busy(c->proto)) {
		line = evbuffer_readln(in, &len, EVBUFFER_EOL_CRLF);
		if (line == NULL) {
			if (evbuffer_get_length(in) > LINE_MAX_BYTES) {
				/* Drop what we have; skip to the line end. */
				evbuffer_drain(in, evbuffer_get_length(in));
				if (!c->discarding)
					front_proto_line_too_long(c->proto);
				c->discarding = true;
			}
			break;
		}
		if (c->discarding || len > LINE_MAX_BYTES) {
			if (!c->discarding)
				front_proto_line_too_long(c->proto);
			c->discarding = false;
			free(line);
			continue;
		}
		front_proto_line(c->proto, line, len);
		/* The line may hold a password: wipe it. */
		OPENSSL_cleanse(line, len);
		free(line);
		conn_note_login(c);
	}
}

/* Whether the SMTP session takes input now. */
static bool
conn_smtp_ready(const struct front_conn *c)
{
	return c->state == CONN_OPEN && !smtp_server_busy(c->smtp);
}

/* A message's bytes straight from a plain TCP socket, 64 KB at a time.
 * libevent 2.1 reads at most 4 KB per wakeup (EVBUFFER_MAX_READ), each with an
 * ioctl and a readv: 16 rounds for a 64 KB message. Only once the input buffer
 * is empty, so bytes stay in order; what the session does not take (what
 * follows the message) goes into that buffer. An end of stream or an error read
 * here is read again by the bufferevent at its next wakeup. */
static void
conn_read_bulk(struct front_conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	uint8_t *buf = c->front->bulk;

	for (int round = 0; round < BULK_ROUNDS_MAX; round++) {
		ssize_t r;
		size_t used = 0;

		if (!conn_smtp_ready(c) || !smtp_server_in_message(c->smtp))
			return;
		r = recv(c->fd, buf, sizeof(c->front->bulk), MSG_DONTWAIT);
		if (r <= 0)
			return;
		while (used < (size_t)r && conn_smtp_ready(c)) {
			size_t n = smtp_server_input(c->smtp, buf + used,
			                             (size_t)r - used);

			if (n == 0)
				break;
			used += n;
		}
		if (used < (size_t)r) {
			/* in is empty: at its start is in order. (Its end
			 * takes bytes only while libevent reads.) */
			if (evbuffer_prepend(in, buf + used, (size_t)r - used) <
			    0) {
				log_error(c->id,
				          "event=input-lost action=close");
				conn_set_state(c, CONN_CLOSING);
				bufferevent_trigger(c->bev, EV_WRITE,
				                    BEV_TRIG_IGNORE_WATERMARKS);
			}
			return;
		}
		if ((size_t)r < sizeof(c->front->bulk))
			return; /* the socket is empty: its next bytes wake us
			         */
	}
}

/* SMTP sessions take raw bytes (commands, DATA, BDAT chunks) and say how
 * many they used; they stop while a question is out. */
static void
conn_read_smtp(struct front_conn *c, bool maybe_more)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	size_t len, used;
	uint8_t *data;

	while (conn_smtp_ready(c) &&
	       (len = evbuffer_get_contiguous_space(in)) > 0) {
		data = evbuffer_pullup(in, (ssize_t)len);
		used = smtp_server_input(c->smtp, data, len);
		evbuffer_drain(in, used);
		if (used == 0)
			break;
	}
	if (c->ssl == NULL && maybe_more && evbuffer_get_length(in) == 0)
		conn_read_bulk(c);
}

/* maybe_more: the socket may hold more than the input buffer has (a
 * recv(2) that finds it empty is a wasted call per message). */
static void
conn_read_input(struct front_conn *c, bool maybe_more)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	size_t n;

	if (c->smtp != NULL)
		conn_read_smtp(c, maybe_more);
	else
		conn_read_lines(c);
	if (c->state == CONN_STARTTLS && (n = evbuffer_get_length(in)) > 0) {
		/* Anything pipelined after STARTTLS is not to be trusted. */
		log_notice(c->id, "event=starttls-discard bytes=%zu", n);
		evbuffer_drain(in, n);
	}
}

static void
conn_read_cb(struct bufferevent *bev, void *arg)
{
	struct front_conn *c = arg;

	(void)bev;
	if (c->state == CONN_RELAY) {
		front_relay_client_read(c);
		return;
	}
	/* libevent read less than its most (4 KB): it took all there was. */
	if (c->state == CONN_OPEN)
		conn_read_input(c, evbuffer_get_length(bufferevent_get_input(
		                       c->bev)) >= LIBEVENT_READ_MAX);
	else
		evbuffer_drain(
		    bufferevent_get_input(c->bev),
		    evbuffer_get_length(bufferevent_get_input(c->bev)));
	if (conn_output_len(c) > OUTPUT_MAX_BYTES) {
		log_notice(c->id, "event=output-overflow action=close");
		conn_free(c);
		return;
	}
	/* A reply that fits the socket buffer is gone already: act now. */
	if (conn_output_len(c) == 0 &&
	    (c->state == CONN_STARTTLS || c->state == CONN_CLOSING))
		bufferevent_trigger(c->bev, EV_WRITE,
		                    BEV_TRIG_IGNORE_WATERMARKS);
}

static void
conn_write_cb(struct bufferevent *bev, void *arg)
{
	struct front_conn *c = arg;

	(void)bev;
	if (conn_output_len(c) > 0)
		return; /* conn_flush_cb comes back */
	if (c->state == CONN_RELAY)
		front_relay_client_drained(c);
	else if (c->state == CONN_CLOSING)
		conn_free(c);
	else if (c->state == CONN_STARTTLS)
		conn_start_tls(c);
}

/* SMTP sessions wait as long as smtp_idle_timeout says; the first words
 * of the other protocols, IDLE_TIMEOUT_S. */
static struct timeval
conn_idle_timeout(const struct front_conn *c)
{
	struct timeval tv = {IDLE_TIMEOUT_S, 0};

	switch (c->service) {
	case SERVICE_SMTP:
	case SERVICE_SUBMISSION:
	case SERVICE_SUBMISSIONS:
	case SERVICE_LMTP:
		tv.tv_sec =
		    (time_t)(c->front->ctx->cfg->smtp_idle_timeout_ms / 1000);
		break;
	default:
		break;
	}
	return tv;
}

static void
conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct front_conn *c = arg;
	struct timeval idle = conn_idle_timeout(c);

	(void)bev;
	if (what & BEV_EVENT_CONNECTED) {
		/* The TLS handshake finished. */
		c->tls_active = true;
		log_info(c->id, "event=tls version=%s cipher=%s",
		         tls_version_name(c->ssl), tls_cipher_name(c->ssl));
		bufferevent_set_timeouts(c->bev, &idle, &idle);
		conn_set_state(c, CONN_OPEN);
		if (c->proto == NULL && c->smtp == NULL)
			conn_start_session(c);
		else if (c->smtp != NULL)
			smtp_server_tls_started(c->smtp,
			                        tls_version_name(c->ssl),
			                        tls_cipher_name(c->ssl));
		else
			front_proto_tls_started(c->proto);
		return;
	}
	if (what & BEV_EVENT_TIMEOUT) {
		log_info(c->id, "event=timeout state=%d", c->state);
		if (c->state == CONN_OPEN &&
		    (c->proto != NULL || c->smtp != NULL)) {
			if (c->smtp != NULL)
				smtp_server_timeout(c->smtp);
			else
				front_proto_timeout(c->proto);
			bufferevent_disable(c->bev, EV_READ);
			bufferevent_enable(c->bev, EV_WRITE);
			return;
		}
		conn_free(c);
		return;
	}
	if (what & BEV_EVENT_ERROR) {
		unsigned long e;

		if (c->ssl != NULL && (e = bufferevent_get_openssl_error(bev)))
			log_info(c->id, "event=tls-error state=%d error=%s",
			         c->state, ERR_reason_error_string(e));
		else
			log_info(c->id, "event=io-error error=%s",
			         strerror(errno));
	}
	conn_free(c);
}

/* ---- session start ---- */

static void
conn_use_bev(struct front_conn *c, struct bufferevent *bev, int timeout_s)
{
	c->bev = bev;
	bufferevent_setcb(bev, conn_read_cb, conn_write_cb, conn_event_cb, c);
	/* While a session waits for an answer its input stays buffered:
	 * stop reading past this much. */
	bufferevent_setwatermark(bev, EV_READ, 0, INPUT_MAX_BYTES);
	bufferevent_set_timeouts(bev, &(struct timeval){timeout_s, 0},
	                         &(struct timeval){timeout_s, 0});
	bufferevent_enable(bev, c->ssl != NULL ? EV_READ | EV_WRITE : EV_READ);
	if (c->ssl == NULL && c->flush_ev == NULL) {
		buf_init(&c->out, OUTPUT_MAX_BYTES);
		c->flush_ev =
		    event_new(c->front->ctx->base, -1, 0, conn_flush_cb, c);
	}
}

static void
conn_start_tls(struct front_conn *c)
{
	struct bufferevent *bev;

	if (c->front->tls == NULL) {
		log_warn(c->id, "event=tls-unavailable reason=no-certificate");
		conn_free(c);
		return;
	}
	/* The plaintext bufferevent goes, and with it any bytes it read. */
	if (c->bev != NULL) {
		bufferevent_free(c->bev);
		c->bev = NULL;
	}
	c->tls = tls_server_ref(c->front->tls);
	c->ssl = tls_server_new_ssl(c->tls);
	bev = bufferevent_openssl_socket_new(c->front->ctx->base, c->fd, c->ssl,
	                                     BUFFEREVENT_SSL_ACCEPTING,
	                                     BEV_OPT_DEFER_CALLBACKS);
	if (bev == NULL) {
		log_error(c->id, "event=tls-setup-failed");
		conn_free(c);
		return;
	}
	conn_set_state(c, CONN_HANDSHAKE);
	conn_use_bev(c, bev, HANDSHAKE_TIMEOUT_S);
}

/* ---- logins: the verifier is lookup, over the front ↔ lookup link ---- */

const char *
conn_auth_service(const struct front_conn *c)
{
	switch (c->service) {
	case SERVICE_IMAP:
	case SERVICE_IMAPS:
		return "imap";
	case SERVICE_POP3:
	case SERVICE_POP3S:
		return "pop3";
	case SERVICE_MANAGESIEVE:
		return "sieve";
	default:
		return "smtp";
	}
}

void
conn_resume(struct front_conn *c)
{
	if (c->bev == NULL)
		return;
	if (c->state == CONN_OPEN)
		conn_read_input(c, true);
	if (c->state == CONN_CLOSING || c->state == CONN_STARTTLS)
		bufferevent_trigger(c->bev, EV_WRITE,
		                    BEV_TRIG_IGNORE_WATERMARKS);
}

/* Deliver an answer (or a temporary failure) to the protocol. */
static void
conn_auth_answer(struct front_conn *c, uint32_t result, const char *user,
                 const uint8_t *salt, size_t salt_len, uint32_t iterations,
                 const uint8_t *sig, size_t sig_len)
{
	int r = result == 0 ? 0 : result == 1 ? 1 : -1;
	uint16_t type = c->req_type;

	c->req_id = 0;
	c->req_type = 0;
	int params = r == 0 && salt_len > 0 ? 0 : -1;
	int check = r == 0 && sig_len == 32 ? 0 : r == 0 ? -1 : r;

	/* SMTP sessions have their own login state; the first words of the
	 * other protocols theirs. */
	switch (type) {
	case IPC_MSG_AUTH_PASSWORD:
		if (c->smtp != NULL)
			smtp_server_auth_password_result(c->smtp, r, user);
		else
			front_proto_auth_password_result(c->proto, r, user);
		break;
	case IPC_MSG_AUTH_SCRAM_PARAMS:
		if (c->smtp != NULL)
			smtp_server_auth_scram_params_result(
			    c->smtp, params, salt, salt_len, iterations);
		else
			front_proto_auth_scram_params_result(
			    c->proto, params, salt, salt_len, iterations);
		break;
	case IPC_MSG_AUTH_SCRAM_CHECK:
		if (c->smtp != NULL)
			smtp_server_auth_scram_check_result(c->smtp, check,
			                                    user, sig);
		else
			front_proto_auth_scram_check_result(c->proto, check,
			                                    user, sig);
		break;
	default:
		return;
	}
	conn_note_login(c);
	conn_resume(c);
}

static bool
is_auth_request(uint16_t type)
{
	return type == IPC_MSG_AUTH_PASSWORD ||
	       type == IPC_MSG_AUTH_SCRAM_PARAMS ||
	       type == IPC_MSG_AUTH_SCRAM_CHECK;
}

/* The question is not going to be answered: say so to whoever asked. */
static void
conn_request_failed(struct front_conn *c)
{
	uint16_t type = c->req_type;

	if (is_auth_request(type)) {
		conn_auth_answer(c, 2, NULL, NULL, 0, 0, NULL, 0);
		return;
	}
	c->req_id = 0;
	c->req_type = 0;
	front_smtp_failed(c, type);
}

static void
conn_request_failed_cb(evutil_socket_t fd, short what, void *arg)
{
	struct front_conn *c = arg;

	(void)fd;
	(void)what;
	event_free(c->req_ev);
	c->req_ev = NULL;
	conn_request_failed(c);
}

void
conn_request(struct front_conn *c, const char *peer, uint16_t type,
             struct buf *payload)
{
	struct ipc_peer *link = child_peer(c->front->ctx, peer);
	struct timeval now = {0, 0};

	c->req_type = type;
	c->req_peer = peer;
	c->req_id = ++c->front->next_reqid;
	if (c->req_id == 0)
		c->req_id = ++c->front->next_reqid;
	if (link == NULL || ipc_send(link, type, c->req_id, -1, payload->data,
	                             payload->len) < 0) {
		log_warn(c->id, "event=request-failed peer=%s type=%u", peer,
		         type);
		c->req_ev =
		    evtimer_new(c->front->ctx->base, conn_request_failed_cb, c);
		evtimer_add(c->req_ev, &now);
	}
	OPENSSL_cleanse(payload->data, payload->len);
	buf_free(payload);
}

struct front_conn *
front_conn_take(struct front *f, uint32_t reqid)
{
	for (struct front_conn *c = f->conns; c != NULL; c = c->next) {
		if (c->req_id != 0 && c->req_id == reqid && c->req_ev == NULL)
			return c;
	}
	return NULL;
}

static void
conn_auth_send(struct front_conn *c, uint16_t type, struct buf *payload)
{
	conn_request(c, "lookup", type, payload);
}

static void
conn_auth_header(struct front_conn *c, struct buf *b, const char *user)
{
	buf_init(b, 0);
	ipc_put_str(b, conn_auth_service(c));
	ipc_put_str(b, c->ip);
	ipc_put_str(b, user);
}

static void
verify_password(void *arg, const char *authzid, const char *user,
                const char *password, size_t len)
{
	struct front_conn *c = arg;
	struct buf b;

	conn_auth_header(c, &b, user);
	ipc_put_str(&b, authzid != NULL ? authzid : "");
	ipc_put_bytes(&b, password, len);
	conn_auth_send(c, IPC_MSG_AUTH_PASSWORD, &b);
}

static void
verify_scram_params(void *arg, const char *user)
{
	struct front_conn *c = arg;
	struct buf b;

	conn_auth_header(c, &b, user);
	conn_auth_send(c, IPC_MSG_AUTH_SCRAM_PARAMS, &b);
}

static void
verify_scram_check(void *arg, const char *user, const uint8_t *auth_message,
                   size_t auth_len, const uint8_t *proof, size_t proof_len)
{
	struct front_conn *c = arg;
	struct buf b;

	conn_auth_header(c, &b, user);
	ipc_put_bytes(&b, auth_message, auth_len);
	ipc_put_bytes(&b, proof, proof_len);
	conn_auth_send(c, IPC_MSG_AUTH_SCRAM_CHECK, &b);
}

void
front_conn_auth_reply(struct front *f, struct ipc_msg *msg)
{
	struct front_conn *c;
	struct ipc_reader r;
	const uint8_t *salt, *sig;
	size_t salt_len = 0, sig_len = 0;
	uint32_t result, iterations;
	char *user;

	if ((c = front_conn_take(f, msg->reqid)) == NULL ||
	    !is_auth_request(c->req_type))
		return; /* the client left meanwhile */
	ipc_reader_init(&r, msg);
	result = ipc_get_u32(&r);
	user = ipc_get_str(&r);
	salt = ipc_get_bytes(&r, &salt_len);
	iterations = ipc_get_u32(&r);
	sig = ipc_get_bytes(&r, &sig_len);
	if (ipc_reader_done(&r) < 0) {
		log_error(c->id, "event=bad-auth-reply");
		conn_auth_answer(c, 2, NULL, NULL, 0, 0, NULL, 0);
	} else {
		conn_auth_answer(c, result, user, salt, salt_len, iterations,
		                 sig, sig_len);
	}
	free(user);
}

void
front_conn_link_down(struct front *f, const char *peer)
{
	struct front_conn *c, *next;

	for (c = f->conns; c != NULL; c = next) {
		next = c->next;
		if (c->req_id != 0 && c->req_ev == NULL &&
		    strcmp(c->req_peer, peer) == 0)
			conn_request_failed(c);
	}
}

const struct sasl_verifier *
conn_verifier(struct front_conn *c)
{
	c->verifier = (struct sasl_verifier){
	    .check_password = verify_password,
	    .scram_params = verify_scram_params,
	    .scram_check = verify_scram_check,
	    .arg = c,
	};
	return &c->verifier;
}

static void
conn_start_session(struct front_conn *c)
{
	const struct config_listener *l = conn_listener(c);

	switch (c->service) {
	case SERVICE_SMTP:
	case SERVICE_SUBMISSION:
	case SERVICE_SUBMISSIONS:
	case SERVICE_LMTP:
		front_smtp_start(c);
		return;
	default:
		break;
	}
	conn_start_proto(c, l);
}

static void
conn_start_proto(struct front_conn *c, const struct config_listener *l)
{
	struct front_io io = {conn_io_write,    conn_io_starttls,
	                      conn_io_close,    c,
	                      conn_verifier(c), NULL};

	if (c->service == SERVICE_IMAP || c->service == SERVICE_IMAPS)
		io.handoff = conn_io_handoff;

	c->proto = front_proto_new(
	    c->service, c->tls_active,
	    l->tls == LISTENER_TLS_STARTTLS && c->front->tls != NULL, &io);
	front_proto_start(c->proto);
}

/* After the PROXY header (if any): TLS first, or straight to the words. */
static void
conn_begin(struct front_conn *c)
{
	struct bufferevent *bev;

	log_info(c->id, "event=connect ip=%s port=%u service=%s local_port=%u",
	         c->ip, c->port, config_service_name(c->service), c->fl->port);
	if (c->tls_mode == LISTENER_TLS_IMPLICIT) {
		conn_start_tls(c);
		return;
	}
	bev = bufferevent_socket_new(c->front->ctx->base, c->fd,
	                             BEV_OPT_DEFER_CALLBACKS);
	if (bev == NULL) {
		conn_free(c);
		return;
	}
	conn_set_state(c, CONN_OPEN);
	conn_use_bev(c, bev, (int)(conn_idle_timeout(c).tv_sec));
	conn_start_session(c);
}

/* ---- PROXY v2 ---- */

/* Count the connection under addr; refuse it when over the limit. */
static int
conn_count_ip(struct front_conn *c, const char *addr)
{
	const struct config_listener *l = conn_listener(c);

	if (c->counted[0] != '\0') {
		ip_counter_remove(c->front->per_ip, c->counted);
		c->counted[0] = '\0';
	}
	if (ip_counter_add(c->front->per_ip, addr, l->max_connections_per_ip) <
	    0)
		return -1;
	snprintf(c->counted, sizeof(c->counted), "%s", addr);
	return 0;
}

static void
conn_refuse(struct front_conn *c, const char *why)
{
	const char *msg = front_proto_refusal(c->service);

	log_notice(c->id, "event=refused ip=%s reason=%s", c->ip, why);
	/* Best effort, plaintext only: a TLS client would not read it. */
	if (c->tls_mode != LISTENER_TLS_IMPLICIT &&
	    send(c->fd, msg, strlen(msg), MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
		log_debug(c->id, "event=refusal-not-sent");
	conn_free(c);
}

static void
conn_proxy_cb(evutil_socket_t fd, short what, void *arg)
{
	struct front_conn *c = arg;
	uint8_t hdr[PROXY_V2_HEADER_LEN + PROXY_V2_MAX_LEN];
	struct proxy_info info;
	const char *error = NULL;
	size_t used = 0;
	ssize_t n;
	enum proxy_result rc;

	if (what & EV_TIMEOUT) {
		log_notice(c->id, "event=proxy-timeout ip=%s", c->ip);
		conn_free(c);
		return;
	}
	/* Peek, so that no byte after the header is taken from the stream. */
	n = recv(fd, hdr, sizeof(hdr), MSG_PEEK);
	if (n <= 0) {
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		conn_free(c);
		return;
	}
	rc = proxy_v2_parse(hdr, (size_t)n, &info, &used, &error);
	if (rc == PROXY_NEED_MORE)
		return;
	if (rc == PROXY_ERROR) {
		log_notice(c->id, "event=proxy-error ip=%s error=%s", c->ip,
		           error);
		conn_free(c);
		return;
	}
	if (recv(fd, hdr, used, 0) != (ssize_t)used) {
		conn_free(c);
		return;
	}
	event_free(c->proxy_ev);
	c->proxy_ev = NULL;
	if (!info.local) {
		char via[64];

		snprintf(via, sizeof(via), "%s", c->ip);
		listener_addr_string((struct sockaddr *)&info.src, c->ip,
		                     sizeof(c->ip), &c->port);
		log_info(c->id, "event=proxy ip=%s via=%s", c->ip, via);
		if (conn_count_ip(c, c->ip) < 0) {
			conn_refuse(c, "per-ip-limit");
			return;
		}
	}
	conn_begin(c);
}

/* ---- accept ---- */

void
front_conn_accept(struct front_listener *fl, int fd, const struct sockaddr *sa,
                  int salen)
{
	struct front *f = fl->front;
	const struct config_listener *l = &f->ctx->cfg->listeners[fl->index];
	struct front_conn *c = xcalloc(1, sizeof(*c));

	(void)salen;
	c->front = f;
	c->fl = fl;
	c->fd = fd;
	c->service = l->service;
	c->tls_mode = l->tls;
	snprintf(
	    c->id, sizeof(c->id), "%08llx",
	    (unsigned long long)(++f->next_id ^ ((uint64_t)getpid() << 20)));
	listener_addr_string(sa, c->ip, sizeof(c->ip), &c->port);
	c->next = f->conns;
	if (f->conns != NULL)
		f->conns->prev = c;
	f->conns = c;
	f->nconns++;
	fl->active++;

	if (f->stopping) {
		conn_free(c);
		return;
	}
	if (fl->active > l->max_connections) {
		conn_refuse(c, "listener-limit");
		return;
	}
	if (l->proxy_protocol) {
		/* Behind a proxy the socket address is the proxy's own: the
		 * client is counted once its header names it. */
		conn_set_state(c, CONN_PROXY);
		c->proxy_ev = event_new(f->ctx->base, fd, EV_READ | EV_PERSIST,
		                        conn_proxy_cb, c);
		event_add(c->proxy_ev, &(struct timeval){PROXY_TIMEOUT_S, 0});
		return;
	}
	if (conn_count_ip(c, c->ip) < 0) {
		conn_refuse(c, "per-ip-limit");
		return;
	}
	conn_begin(c);
}

void
front_conn_shutdown_all(struct front *f)
{
	struct front_conn *c, *next;

	for (c = f->conns; c != NULL; c = next) {
		next = c->next;
		if (c->state == CONN_OPEN && c->smtp != NULL) {
			/* Replies 421 now, or when the transaction in
			 * progress is done. */
			smtp_server_shutdown(c->smtp);
			bufferevent_trigger(c->bev, EV_WRITE,
			                    BEV_TRIG_IGNORE_WATERMARKS);
		} else if (c->state == CONN_OPEN && c->proto != NULL) {
			front_proto_shutdown(c->proto);
			bufferevent_disable(c->bev, EV_READ);
			bufferevent_trigger(c->bev, EV_WRITE,
			                    BEV_TRIG_IGNORE_WATERMARKS);
		} else if (c->state == CONN_RELAY) {
			/* store says BYE and closes its side. */
		} else if (c->state != CONN_CLOSING &&
		           c->state != CONN_STARTTLS) {
			/* Mid-handshake or before PROXY: nothing in flight. */
			conn_free(c);
		}
	}
}
