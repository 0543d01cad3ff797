/* One outbound delivery attempt on a worker thread: find the hosts (relay
 * or MX), connect to each address in turn until one server takes the
 * transaction, and drive the SMTP client state machine over a blocking
 * socket (poll with the RFC 5321 timeouts), with TLS as the route asks.
 * SECURITY: the peer is any server on the internet. It only ever sees the
 * message and envelope; it gets AUTH credentials only over TLS (or on a
 * loopback relay with tls none); its replies are bounded by the client
 * module. A TLS failure on a relay never falls back to plaintext, nor on
 * an MX host with DNSSEC-secure TLSA records (DANE, RFC 7672): there TLS
 * is required and the certificate must match the records. */
#include "roles/queue_out.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "core/clock.h"
#include "core/config.h"
#include "core/log.h"
#include "core/tls.h"
#include "core/xmalloc.h"
#include "queue/dane.h"
#include "queue/mtasts.h"
#include "queue/tlsrpt.h"
#include "queue/mx.h"
#include "smtp/client.h"

#define OUT_READ_SIZE 16384
#define OUT_BODY_SLICE (256 * 1024)
/* A send that makes no progress for this long fails (RFC 5321 4.5.3.2
 * "data block": 3 minutes). */
#define OUT_SEND_TIMEOUT_MS (3 * 60 * 1000)
#define OUT_TLS_TIMEOUT_MS (60 * 1000)

struct conn {
	int fd;
	SSL *ssl;
	char what[300]; /* "host[ip]:port" for messages */
	/* DANE: the policy the handshake checks against, or NULL; after a
	 * verified handshake, the record that matched */
	const struct dane_policy *dane;
	char dane_matched[128];
	/* MTA-STS enforce: the certificate was checked for the MX name */
	bool sts;
};

/* The strings a session's client options point to: owned by the
 * session, so that it can outlive the job that opened it. */
struct session_strings {
	struct smtp_client_options opt;
	char log_id[17]; /* the current job's id */
	char *helo, *user, *password;
};

/* An idle session kept for the next message to the same destination
 * (connection reuse); owned by the cache while idle. */
struct idle_session {
	char key[300]; /* the destination: "relay:NAME", "mx:DOMAIN" */
	struct conn cn;
	struct smtp_client *c;
	struct session_strings *ss;
	char host[256];
	char tls_info[96];
	bool dsn;
	uint64_t born_ms, idle_since_ms;
	unsigned txns;
};

/* How one session ended. */
enum session_end {
	SESSION_DONE, /* the transaction got its answers */
	SESSION_NEXT, /* nothing decided: try the next address */
};

struct attempt {
	struct out_job *job;
	/* the session the last session_run() kept for reuse, or NULL */
	struct idle_session *kept;
	const uint8_t *msg; /* the spool file, mapped */
	size_t msg_len;
	bool body_8bit;
	/* the last failure that decided nothing, for the recipients if no
	 * server decides */
	char last_error[SMTP_CLIENT_REPLY_TEXT_MAX + 400];
	char last_status[16];
	bool last_permanent;
};

static void attempt_error(struct attempt *a, bool permanent, const char *status,
                          const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
attempt_error(struct attempt *a, bool permanent, const char *status,
              const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(a->last_error, sizeof(a->last_error), fmt, ap);
	va_end(ap);
	snprintf(a->last_status, sizeof(a->last_status), "%s", status);
	a->last_permanent = permanent;
}

/* ---- the connection ---- */

static int
wait_fd(int fd, short events, uint64_t timeout_ms)
{
	struct pollfd p = {.fd = fd, .events = events};
	int rc;

	do
		rc =
		    poll(&p, 1, timeout_ms > 600000 ? 600000 : (int)timeout_ms);
	while (rc < 0 && errno == EINTR);
	if (rc == 0)
		errno = ETIMEDOUT;
	return rc > 0 ? 0 : -1;
}

static int
conn_connect(struct conn *c, const char *ip, uint16_t port, uint64_t timeout_ms)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	int err = 0;
	socklen_t elen = sizeof(err);

	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, ip, &((struct sockaddr_in *)&ss)->sin_addr) ==
	    1) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

		s4->sin_family = AF_INET;
		s4->sin_port = htons(port);
		sl = sizeof(*s4);
	} else if (inet_pton(AF_INET6, ip,
	                     &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(port);
		sl = sizeof(*s6);
	} else {
		errno = EINVAL;
		return -1;
	}
	c->fd =
	    socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (c->fd < 0)
		return -1;
	if (connect(c->fd, (struct sockaddr *)&ss, sl) == 0)
		return 0;
	if (errno != EINPROGRESS || wait_fd(c->fd, POLLOUT, timeout_ms) < 0)
		goto fail;
	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0)
		goto fail;
	if (err != 0) {
		errno = err;
		goto fail;
	}
	return 0;
fail:
	err = errno;
	close(c->fd);
	c->fd = -1;
	errno = err;
	return -1;
}

static void
conn_close(struct conn *c)
{
	if (c->ssl != NULL) {
		(void)SSL_shutdown(c->ssl);
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}

/* Wait for what OpenSSL asked for; -1 on timeout or a real error. */
static int
tls_wait(struct conn *c, int rc, uint64_t timeout_ms)
{
	switch (SSL_get_error(c->ssl, rc)) {
	case SSL_ERROR_WANT_READ:
		return wait_fd(c->fd, POLLIN, timeout_ms);
	case SSL_ERROR_WANT_WRITE:
		return wait_fd(c->fd, POLLOUT, timeout_ms);
	default:
		return -1;
	}
}

/* Bytes read (0 at EOF), or -1 (timeout, error). */
static ssize_t
conn_read(struct conn *c, uint8_t *buf, size_t len, uint64_t timeout_ms)
{
	ssize_t n;

	for (;;) {
		if (c->ssl != NULL) {
			int rc = SSL_read(c->ssl, buf, (int)len);

			if (rc > 0)
				return rc;
			if (SSL_get_error(c->ssl, rc) == SSL_ERROR_ZERO_RETURN)
				return 0;
			if (tls_wait(c, rc, timeout_ms) < 0)
				return -1;
			continue;
		}
		n = recv(c->fd, buf, len, 0);
		if (n >= 0)
			return n;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN || wait_fd(c->fd, POLLIN, timeout_ms) < 0)
			return -1;
	}
}

static int
conn_write(struct conn *c, const uint8_t *data, size_t len)
{
	while (len > 0) {
		ssize_t n;

		if (c->ssl != NULL) {
			int rc =
			    SSL_write(c->ssl, data,
			              len > INT32_MAX ? INT32_MAX : (int)len);

			if (rc <= 0) {
				if (tls_wait(c, rc, OUT_SEND_TIMEOUT_MS) < 0)
					return -1;
				continue;
			}
			n = rc;
		} else {
			n = send(c->fd, data, len, MSG_NOSIGNAL);
			if (n < 0) {
				if (errno == EINTR)
					continue;
				if (errno != EAGAIN ||
				    wait_fd(c->fd, POLLOUT,
				            OUT_SEND_TIMEOUT_MS) < 0)
					return -1;
				continue;
			}
		}
		data += n;
		len -= (size_t)n;
	}
	return 0;
}

/* The handshake with a DANE host (RFC 7672 3): the certificate must match
 * one of its TLSA records (OpenSSL's DANE verification, required). What
 * fails here is said as DANE's, for logs and DSNs. */
static int
conn_tls_dane(struct conn *c, const char *host, char *err, size_t errlen)
{
	char why[160];
	int rc;

	c->dane_matched[0] = '\0';
	if (dane_apply(c->ssl, host, c->dane, why, sizeof(why)) < 0) {
		snprintf(err, errlen, "%s (%s)", why, c->what);
		return -1;
	}
	ERR_clear_error();
	while ((rc = SSL_connect(c->ssl)) != 1) {
		if (tls_wait(c, rc, OUT_TLS_TIMEOUT_MS) < 0) {
			long v = SSL_get_verify_result(c->ssl);

			if (v != X509_V_OK)
				snprintf(err, errlen,
				         "DANE: certificate of %s does not "
				         "match its TLSA records (%s)",
				         c->what,
				         X509_verify_cert_error_string(v));
			else
				snprintf(err, errlen,
				         "DANE: TLS handshake with %s failed: "
				         "%s",
				         c->what, tls_last_error());
			return -1;
		}
	}
	if (dane_verified(c->ssl, c->dane_matched, sizeof(c->dane_matched)) <
	    0) {
		snprintf(err, errlen,
		         "DANE: certificate of %s does not match its TLSA "
		         "records (%s)",
		         c->what, c->dane_matched);
		c->dane_matched[0] = '\0';
		return -1;
	}
	return 0;
}

/* The handshake; verify_name: the name the certificate must carry, or
 * NULL (opportunistic TLS: encryption without authentication, as RFC 7435
 * describes for MX delivery without DANE or MTA-STS). With c->dane, the
 * certificate must match its TLSA records instead (RFC 7672 3); the
 * message then says DANE, whole, for the recipients. */
static int
conn_tls(struct conn *c, SSL_CTX *ctx, const char *sni, const char *verify_name,
         char *err, size_t errlen)
{
	int rc;

	c->ssl = SSL_new(ctx);
	if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1) {
		snprintf(err, errlen, "TLS setup: %s", tls_last_error());
		return -1;
	}
	/* SNI only for names, never for address literals (RFC 6066). */
	if (sni != NULL && strchr(sni, ':') == NULL &&
	    strspn(sni, "0123456789.") != strlen(sni))
		SSL_set_tlsext_host_name(c->ssl, sni);
	if (c->dane != NULL)
		return conn_tls_dane(c, sni, err, errlen);
	if (verify_name != NULL) {
		SSL_set_verify(c->ssl, SSL_VERIFY_PEER, NULL);
		if (SSL_set1_host(c->ssl, verify_name) != 1) {
			snprintf(err, errlen, "TLS setup: %s",
			         tls_last_error());
			return -1;
		}
	} else {
		SSL_set_verify(c->ssl, SSL_VERIFY_NONE, NULL);
	}
	ERR_clear_error();
	while ((rc = SSL_connect(c->ssl)) != 1) {
		if (tls_wait(c, rc, OUT_TLS_TIMEOUT_MS) < 0) {
			long v = SSL_get_verify_result(c->ssl);

			if (verify_name != NULL && v != X509_V_OK)
				snprintf(err, errlen,
				         "TLS handshake: certificate not "
				         "trusted: %s",
				         X509_verify_cert_error_string(v));
			else
				snprintf(err, errlen, "TLS handshake: %s",
				         tls_last_error());
			return -1;
		}
	}
	return 0;
}

/* ---- sessions kept for reuse ---- */

/* Idle sessions are kept this long (Postfix keeps its cached connections
 * 2 s by default), for at most this many messages and this long in all,
 * at most SESSION_CACHE_MAX at once. */
#define SESSION_IDLE_MS 2000
#define SESSION_TXNS_MAX 100
#define SESSION_AGE_MS (300 * 1000)
#define SESSION_CACHE_MAX 32

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static struct idle_session *cache[SESSION_CACHE_MAX];

static void
strings_free(struct session_strings **ssp)
{
	struct session_strings *ss = *ssp;

	if (ss == NULL)
		return;
	free(ss->helo);
	free(ss->user);
	if (ss->password != NULL) {
		explicit_bzero(ss->password, strlen(ss->password));
		free(ss->password);
	}
	free(ss);
	*ssp = NULL;
}

static void
idle_free(struct idle_session **sp)
{
	struct idle_session *s = *sp;

	if (s == NULL)
		return;
	smtp_client_free(&s->c);
	conn_close(&s->cn);
	strings_free(&s->ss);
	free(s);
	*sp = NULL;
}

/* Polite close of an idle session: QUIT if it can go out at once. */
static void
idle_close(struct idle_session **sp)
{
	struct idle_session *s = *sp;

	if (s->cn.ssl == NULL && s->cn.fd >= 0)
		(void)send(s->cn.fd, "QUIT\r\n", 6,
		           MSG_NOSIGNAL | MSG_DONTWAIT);
	idle_free(sp);
}

/* Still usable: young enough, and nothing (a 421, an EOF) arrived while
 * it was idle. */
static bool
idle_usable(const struct idle_session *s, uint64_t now)
{
	struct pollfd p = {.fd = s->cn.fd, .events = POLLIN};

	return now - s->idle_since_ms <= SESSION_IDLE_MS &&
	       now - s->born_ms <= SESSION_AGE_MS && s->cn.fd >= 0 &&
	       poll(&p, 1, 0) == 0;
}

static struct idle_session *
cache_take(const char *key)
{
	struct idle_session *found = NULL, *stale[SESSION_CACHE_MAX];
	uint64_t now = clock_wall_ms();
	size_t nstale = 0;

	pthread_mutex_lock(&cache_lock);
	for (size_t i = 0; i < SESSION_CACHE_MAX; i++) {
		struct idle_session *s = cache[i];

		if (s == NULL)
			continue;
		if (!idle_usable(s, now)) {
			stale[nstale++] = s;
			cache[i] = NULL;
		} else if (found == NULL && strcmp(s->key, key) == 0) {
			found = s;
			cache[i] = NULL;
		}
	}
	pthread_mutex_unlock(&cache_lock);
	for (size_t i = 0; i < nstale; i++)
		idle_close(&stale[i]);
	return found;
}

static void
cache_put(struct idle_session *s)
{
	struct idle_session *out = s;

	s->idle_since_ms = clock_wall_ms();
	pthread_mutex_lock(&cache_lock);
	for (size_t i = 0; i < SESSION_CACHE_MAX && out != NULL; i++) {
		if (cache[i] == NULL) {
			cache[i] = s;
			out = NULL;
		}
	}
	pthread_mutex_unlock(&cache_lock);
	if (out != NULL)
		idle_close(&out); /* full: this one goes */
}

/* ---- one session ---- */

/* The body to the client: header fields added at reception, then the
 * spool file, in slices. */
static void
feed_body(struct attempt *a, struct smtp_client *c)
{
	const struct out_job *job = a->job;

	if (job->headers != NULL)
		smtp_client_body(c, (const uint8_t *)job->headers,
		                 strlen(job->headers));
	smtp_client_body(c, a->msg, a->msg_len);
}

static int
flush_output(struct conn *cn, struct smtp_client *c)
{
	size_t len;
	const uint8_t *out = smtp_client_output(c, &len);

	while (len > 0) {
		size_t n = len > OUT_BODY_SLICE ? OUT_BODY_SLICE : len;

		if (conn_write(cn, out, n) < 0)
			return -1;
		smtp_client_output_consume(c, n);
		out = smtp_client_output(c, &len);
	}
	return 0;
}

static void
rcpt_results(struct attempt *a, const struct smtp_client_txn *txn)
{
	for (size_t i = 0; i < txn->nrcpts; i++) {
		const struct smtp_client_rcpt *r = &txn->rcpts[i];
		struct out_rcpt *o = &a->job->rcpts[i];
		const char *reply = r->reply != NULL ? r->reply : "";

		o->outcome = r->code >= 200 && r->code < 300   ? OUT_DELIVERED
		             : r->code >= 500 && r->code < 600 ? OUT_PERMFAIL
		                                               : OUT_TEMPFAIL;
		snprintf(o->status, sizeof(o->status), "%s",
		         r->status[0] != '\0'          ? r->status
		         : o->outcome == OUT_DELIVERED ? "2.0.0"
		         : o->outcome == OUT_PERMFAIL  ? "5.0.0"
		                                       : "4.0.0");
		free(o->diagnostic);
		/* The reply with its code, as a DSN's Diagnostic-Code wants. */
		if (r->code > 0 && reply[0] != '\0' &&
		    !(strlen(reply) >= 3 && reply[0] >= '2' &&
		      reply[0] <= '5' && reply[1] >= '0' && reply[1] <= '9' &&
		      reply[2] >= '0' && reply[2] <= '9'))
			o->diagnostic = xasprintf("%d %s", r->code, reply);
		else if (r->code > 0)
			o->diagnostic = xstrdup(reply[0] != '\0' ? reply : "-");
		else
			o->diagnostic = xasprintf(
			    "%s", reply[0] != '\0' ? reply : "connection lost");
	}
}

/* A failed handshake: DANE's own words are whole, others get the peer. */
static void
tls_error(struct attempt *a, const struct conn *cn, const char *err)
{
	if (cn->dane != NULL)
		attempt_error(a, false, "4.7.5", "%s", err);
	else if (cn->sts)
		attempt_error(a, false, "4.7.5", "MTA-STS: %s: %s", cn->what,
		              err);
	else
		attempt_error(a, false, "4.7.5", "%s: %s", cn->what, err);
}

/* TLS is up: one line for a session DANE authenticated. */
static void
tls_started(struct attempt *a, const struct conn *cn)
{
	if (cn->dane_matched[0] != '\0')
		log_info(a->job->id, "event=dane-verified to=%s matched=%s",
		         cn->what, cn->dane_matched);
}

static struct session_strings *
strings_new(const struct out_job *job, enum smtp_client_tls tls)
{
	struct session_strings *ss = xcalloc(1, sizeof(*ss));

	ss->helo = xstrdup(job->helo_name);
	snprintf(ss->log_id, sizeof(ss->log_id), "%s", job->id);
	ss->opt.helo_name = ss->helo;
	ss->opt.log_id = ss->log_id;
	ss->opt.tls = tls;
	ss->opt.use_chunking = true;
	if (job->relay != NULL && job->relay->user != NULL) {
		ss->user = xstrdup(job->relay->user);
		ss->password = xstrdup(job->relay->password);
		ss->opt.auth_user = ss->user;
		ss->opt.auth_password = ss->password;
		ss->opt.auth_without_tls = job->relay->tls == RELAY_TLS_NONE;
	}
	return ss;
}

/* May this session carry the next message to the same destination? */
static bool
session_keepable(const struct out_job *job, const struct idle_session *reuse,
                 unsigned txns)
{
	return job->dest_key != NULL && txns < SESSION_TXNS_MAX &&
	       (reuse == NULL ||
	        clock_wall_ms() - reuse->born_ms < SESSION_AGE_MS);
}

/* Keep the session (its connection moves out of *cn) for the cache. */
static struct idle_session *
session_keep(struct attempt *a, struct conn *cn, struct smtp_client *c,
             struct session_strings *ss, const char *host,
             struct idle_session *reuse)
{
	struct idle_session *k = reuse;

	if (k == NULL) {
		k = xcalloc(1, sizeof(*k));
		k->born_ms = clock_wall_ms();
		snprintf(k->key, sizeof(k->key), "%s", a->job->dest_key);
		snprintf(k->host, sizeof(k->host), "%s", host);
		snprintf(k->tls_info, sizeof(k->tls_info), "%s",
		         a->job->tls_info);
		k->cn = *cn;
		k->cn.dane = NULL; /* the policy lived on the job's stack */
		cn->fd = -1;
		cn->ssl = NULL;
		k->c = c;
		k->ss = ss;
	}
	k->dsn = smtp_client_ext(c)->dsn;
	k->txns++;
	return k;
}

/* One SMTP session on a connected socket, or one more transaction on an
 * idle session (reuse: cn is &reuse->cn). After a transaction the
 * session is kept for the next message (a->kept) when the job names its
 * destination, else it says QUIT. */
static enum session_end
session_run(struct attempt *a, struct conn *cn, const char *host,
            enum smtp_client_tls tls, SSL_CTX *ctx, const char *verify_name,
            struct idle_session *reuse)
{
	struct out_job *job = a->job;
	struct smtp_client_txn txn = {
	    .mail_from = job->mail_from,
	    .body_8bit = a->body_8bit,
	    .smtputf8 = job->smtputf8,
	    .ret = job->ret,
	    .envid = job->envid,
	    .nrcpts = job->nrcpts,
	};
	struct session_strings *ss;
	struct smtp_client *c = NULL;
	enum smtp_client_event ev;
	enum session_end end = SESSION_NEXT;
	bool begun = false, done = false, dead = false, keep = false;
	uint8_t buf[OUT_READ_SIZE];
	char err[512];

	a->kept = NULL;
	txn.size =
	    a->msg_len + (job->headers != NULL ? strlen(job->headers) : 0);
	txn.rcpts = xcalloc(job->nrcpts, sizeof(*txn.rcpts));
	for (size_t i = 0; i < job->nrcpts; i++) {
		txn.rcpts[i].address = job->rcpts[i].address;
		txn.rcpts[i].notify = job->rcpts[i].notify;
		txn.rcpts[i].orcpt = job->rcpts[i].orcpt;
	}
	if (reuse != NULL) {
		ss = reuse->ss;
		snprintf(ss->log_id, sizeof(ss->log_id), "%s", job->id);
		c = reuse->c;
		snprintf(job->tls_info, sizeof(job->tls_info), "%s",
		         reuse->tls_info);
		ev = SMTP_CLIENT_READY;
	} else {
		ss = strings_new(job, tls);
		if (tls == SMTP_CLIENT_TLS_IMPLICIT &&
		    conn_tls(cn, ctx, host, verify_name, err, sizeof(err)) <
		        0) {
			tls_error(a, cn, err);
			strings_free(&ss);
			goto out;
		}
		c = smtp_client_new(&ss->opt);
		ev = smtp_client_event(c);
	}
	while (ev != SMTP_CLIENT_CLOSED && !keep) {
		size_t pending;
		ssize_t n;

		if (!dead && flush_output(cn, c) < 0) {
			/* The peer is gone: the client ends the transaction
			 * (TXN_DONE with temporary results) and closes. */
			dead = true;
			if (!begun)
				attempt_error(a, false, "4.4.2",
				              "%s: connection lost", cn->what);
			ev = smtp_client_eof(c);
			continue;
		}
		if (dead) {
			(void)smtp_client_output(c, &pending);
			smtp_client_output_consume(c, pending);
			if (ev != SMTP_CLIENT_TXN_DONE)
				break;
		}
		switch (ev) {
		case SMTP_CLIENT_WAIT:
			n = conn_read(cn, buf, sizeof(buf),
			              smtp_client_timeout_ms(c));
			if (n > 0) {
				ev = smtp_client_input(c, buf, (size_t)n);
			} else {
				if (n < 0 && !begun)
					attempt_error(a, false, "4.4.2",
					              "%s: %s", cn->what,
					              errno == ETIMEDOUT
					                  ? "timed out"
					                  : "connection lost");
				dead = true;
				ev = smtp_client_eof(c);
			}
			break;
		case SMTP_CLIENT_STARTTLS:
			if (conn_tls(cn, ctx, host, verify_name, err,
			             sizeof(err)) < 0) {
				tls_error(a, cn, err);
				smtp_client_free(&c);
				strings_free(&ss);
				goto out;
			}
			tls_started(a, cn);
			ev = smtp_client_tls_started(c);
			break;
		case SMTP_CLIENT_READY:
			if (!begun) {
				begun = true;
				if (cn->ssl != NULL && reuse == NULL)
					snprintf(job->tls_info,
					         sizeof(job->tls_info),
					         "%s %s%s",
					         tls_version_name(cn->ssl),
					         tls_cipher_name(cn->ssl),
					         cn->dane_matched[0] != '\0'
					             ? " dane"
					         : cn->sts ? " mta-sts"
					                   : "");
				ev = smtp_client_begin(c, &txn);
			} else if (done &&
			           session_keepable(job, reuse,
			                            reuse != NULL ? reuse->txns
			                                          : 0)) {
				keep = true;
			} else {
				ev = smtp_client_quit(c);
			}
			break;
		case SMTP_CLIENT_BODY:
			feed_body(a, c);
			ev = smtp_client_body_end(c);
			break;
		case SMTP_CLIENT_TXN_DONE:
			rcpt_results(a, &txn);
			job->dsn_passed = smtp_client_ext(c)->dsn;
			done = true;
			ev = smtp_client_event(c);
			break;
		case SMTP_CLIENT_CLOSED:
			break;
		}
	}
	if (keep) {
		a->kept = session_keep(a, cn, c, ss, host, reuse);
		end = SESSION_DONE;
		goto out;
	}
	/* A QUIT the client queued with its CLOSED still goes out. */
	if (!dead)
		(void)flush_output(cn, c);
	if (done) {
		const struct smtp_client_error *e = smtp_client_error(c);

		end = SESSION_DONE;
		/* A kept session the server had dropped before this message:
		 * nothing was decided, a new connection tries again. */
		if (reuse != NULL && dead && e != NULL && e->code == 0 &&
		    strcmp(e->stage, "mail") == 0)
			end = SESSION_NEXT;
	} else {
		const struct smtp_client_error *e = smtp_client_error(c);

		if (e != NULL && cn->dane != NULL && cn->ssl == NULL &&
		    strcmp(e->stage, "starttls") == 0)
			/* No TLS with a host whose TLSA records ask for it
			 * (RFC 7672 2.2): not even tried in cleartext. */
			attempt_error(a, false, "4.7.5",
			              "DANE: %s did not start TLS, which its "
			              "TLSA records require (%s): %d %s",
			              cn->what, e->stage, e->code, e->text);
		else if (e != NULL)
			attempt_error(a, e->permanent, e->status,
			              "%s said (%s): %d %s", cn->what, e->stage,
			              e->code, e->text);
	}
	if (reuse != NULL) {
		/* The caller frees the idle session (client included). */
		reuse->c = c;
	} else {
		smtp_client_free(&c);
		strings_free(&ss);
	}
out:
	smtp_client_txn_clear(&txn);
	free(txn.rcpts);
	return end;
}

/* ---- hosts ---- */

/* ---- TLS-RPT (RFC 8460) ---- */

/* Count one outcome for the recipients' domain (MX delivery only). */
static void
tls_note(struct attempt *a, const char *mx, enum tlsrpt_policy policy,
         enum tlsrpt_result result, const char *detail)
{
	struct out_job *job = a->job;
	char *error = NULL;

	if (job->tlsrpt == NULL || job->relay != NULL)
		return;
	if (tlsrpt_record(job->tlsrpt, clock_wall_ms(), job->domain, policy, mx,
	                  result, detail, &error) < 0) {
		log_warn(job->id, "event=tlsrpt-failed error=%s", error);
		free(error);
	}
}

/* What a failed TLS session was, in RFC 8460 4.3 terms. */
static enum tlsrpt_result
tls_failure_kind(const char *error, bool dane)
{
	if (strstr(error, "did not start TLS") != NULL ||
	    strstr(error, "(starttls)") != NULL)
		return TLSRPT_STARTTLS_NOT_SUPPORTED;
	if (dane)
		return TLSRPT_VALIDATION_FAILURE;
	if (strstr(error, "hostname mismatch") != NULL)
		return TLSRPT_CERTIFICATE_HOST_MISMATCH;
	return TLSRPT_CERTIFICATE_NOT_TRUSTED;
}

/* DANE for one MX host (RFC 7672 2.2): its TLSA records when its MX and
 * address answers were secure. Returns false when the host is to be
 * skipped for now (the lookup failed); else *tls_r is what the host gets
 * and *dane_r its policy to verify against, or NULL. */
static bool
host_dane(struct attempt *a, const struct mx_host *host, uint16_t port,
          struct dane_policy *pol, enum smtp_client_tls *tls_r,
          const struct dane_policy **dane_r)
{
	struct out_job *job = a->job;

	*dane_r = NULL;
	dane_lookup(&job->dns, host->name, port, host->secure, pol);
	switch (pol->status) {
	case DANE_TEMPFAIL:
		attempt_error(a, false, "4.7.5", "%s", pol->why);
		tls_note(a, host->name, TLSRPT_POLICY_TLSA,
		         strstr(pol->why, "bogus") != NULL
		             ? TLSRPT_DNSSEC_INVALID
		             : TLSRPT_TLSA_INVALID,
		         pol->why);
		log_info(job->id, "event=dane-tempfail host=%s error=%s",
		         host->name, pol->why);
		return false;
	case DANE_REQUIRED:
		*tls_r = SMTP_CLIENT_TLS_REQUIRED;
		*dane_r = pol;
		log_debug(job->id, "event=dane host=%s policy=%s", host->name,
		          pol->why);
		return true;
	case DANE_NONE:
		break;
	}
	if (pol->tls_mandatory) {
		*tls_r = SMTP_CLIENT_TLS_REQUIRED;
		log_info(job->id, "event=dane-unusable host=%s policy=%s",
		         host->name, pol->why);
	}
	return true;
}

/* Try every address of every host until one session decides. For MX
 * hosts (no relay), DANE decides per host what TLS it gets. */
static bool
try_hosts(struct attempt *a, const struct mx_list *hosts, uint16_t port,
          enum smtp_client_tls tls_default, SSL_CTX *ctx_default, bool verify,
          const struct mtasts_policy *sts)
{
	struct out_job *job = a->job;

	for (size_t h = 0; h < hosts->nhosts; h++) {
		const struct mx_host *host = &hosts->hosts[h];
		enum smtp_client_tls tls = tls_default;
		const struct dane_policy *dane = NULL;
		struct dane_policy pol;
		SSL_CTX *ctx = ctx_default;
		bool sts_host = false;
		enum tlsrpt_policy policy = TLSRPT_POLICY_NONE;

		if (job->relay == NULL &&
		    !host_dane(a, host, port, &pol, &tls, &dane))
			continue;
		/* MTA-STS, unless DANE already authenticates the host (RFC
		 * 8461 2): only hosts the policy names, over TLS with a
		 * certificate valid for the host's name. */
		if (sts != NULL && sts->mode != MTASTS_NONE && dane == NULL &&
		    !mtasts_mx_match(sts, host->name)) {
			log_info(job->id,
			         "event=mta-sts-mismatch host=%s domain=%s "
			         "mode=%s",
			         host->name, job->domain,
			         sts->mode == MTASTS_ENFORCE ? "enforce"
			                                     : "testing");
			tls_note(a, host->name, TLSRPT_POLICY_STS,
			         TLSRPT_VALIDATION_FAILURE,
			         "MX host not in the policy");
			if (sts->mode == MTASTS_ENFORCE) {
				attempt_error(a, false, "4.7.5",
				              "MTA-STS: MX host %s is not in "
				              "the policy of %s",
				              host->name, job->domain);
				continue;
			}
		} else if (sts != NULL && sts->mode == MTASTS_ENFORCE &&
		           dane == NULL) {
			tls = SMTP_CLIENT_TLS_REQUIRED;
			ctx = job->sts_ctx;
			sts_host = true;
		}
		if (dane != NULL)
			policy = TLSRPT_POLICY_TLSA;
		else if (sts != NULL && sts->mode != MTASTS_NONE)
			policy = TLSRPT_POLICY_STS;
		for (size_t i = 0; i < host->naddrs; i++) {
			struct conn cn = {
			    .fd = -1, .dane = dane, .sts = sts_host};
			enum session_end end;

			snprintf(cn.what, sizeof(cn.what), "%s[%s]:%u",
			         host->name, host->addrs[i].ip, (unsigned)port);
			if (conn_connect(&cn, host->addrs[i].ip, port,
			                 job->connect_timeout_ms) < 0) {
				attempt_error(a, false, "4.4.1",
				              "connect to %s: %s", cn.what,
				              strerror(errno));
				log_info(job->id,
				         "event=connect-failed to=%s "
				         "error=%s",
				         cn.what, strerror(errno));
				continue;
			}
			job->tls_info[0] = '\0';
			end = session_run(
			    a, &cn, host->name, tls, ctx,
			    verify || sts_host ? host->name : NULL, NULL);
			/* Opportunistic TLS that fails is tried once more
			 * in plaintext, as a server that cannot do TLS
			 * would otherwise never get its mail. Never for a
			 * DANE host (its TLS is required anyway). */
			if (end == SESSION_NEXT &&
			    tls == SMTP_CLIENT_TLS_OPPORTUNISTIC &&
			    dane == NULL && !sts_host && cn.ssl != NULL &&
			    strcmp(a->last_status, "4.7.5") == 0) {
				conn_close(&cn);
				log_info(job->id,
				         "event=tls-failed to=%s error=%s "
				         "retry=plaintext",
				         cn.what, a->last_error);
				if (conn_connect(&cn, host->addrs[i].ip, port,
				                 job->connect_timeout_ms) == 0)
					end = session_run(a, &cn, host->name,
					                  SMTP_CLIENT_TLS_NONE,
					                  ctx, NULL, NULL);
			}
			conn_close(&cn);
			if (end == SESSION_DONE)
				tls_note(a, host->name, policy,
				         job->tls_info[0] != '\0'
				             ? TLSRPT_SUCCESS
				             : TLSRPT_STARTTLS_NOT_SUPPORTED,
				         NULL);
			else if (strcmp(a->last_status, "4.7.5") == 0)
				tls_note(a, host->name, policy,
				         tls_failure_kind(a->last_error,
				                          dane != NULL),
				         a->last_error);
			if (end == SESSION_DONE) {
				free(job->remote_mta);
				job->remote_mta = xstrdup(host->name);
				if (a->kept != NULL)
					cache_put(a->kept);
				a->kept = NULL;
				return true;
			}
			log_info(job->id,
			         "event=session-failed to=%s "
			         "error=%s",
			         cn.what, a->last_error);
		}
	}
	return false;
}

/* The relay's addresses: an IP literal, or its A/AAAA records. */
static void
relay_hosts(const struct out_job *job, struct mx_list *list)
{
	const struct out_relay *r = job->relay;
	char literal[300];
	struct mx_options opt = {.ipv4 = true, .ipv6 = job->ipv6};
	unsigned char tmp[16];

	if (inet_pton(AF_INET, r->host, tmp) == 1)
		snprintf(literal, sizeof(literal), "[%s]", r->host);
	else if (inet_pton(AF_INET6, r->host, tmp) == 1)
		snprintf(literal, sizeof(literal), "[IPv6:%s]", r->host);
	else
		literal[0] = '\0';
	if (literal[0] != '\0') {
		mx_resolve(&job->dns, literal, &opt, list);
		if (list->status == MX_OK && list->nhosts == 1) {
			free(list->hosts[0].name);
			list->hosts[0].name = xstrdup(r->host);
		}
		return;
	}
	/* A relay is a host, not a mail domain: its own addresses, never
	 * its MX. A domain literal of each address found keeps one path. */
	memset(list, 0, sizeof(*list));
	list->hosts = xcalloc(1, sizeof(*list->hosts));
	list->hosts[0].name = xstrdup(r->host);
	list->hosts[0].addrs = xcalloc(MX_ADDRS_MAX, sizeof(struct mx_addr));
	list->nhosts = 1;
	for (int pass = 0; pass < 2; pass++) {
		enum ma_dns_type type = pass == 0 ? MA_DNS_AAAA : MA_DNS_A;
		struct ma_dns_answer ans = {0};
		struct mx_host *h = &list->hosts[0];

		if (type == MA_DNS_AAAA && !job->ipv6)
			continue;
		if (job->dns.lookup(job->dns.arg, r->host, type, &ans) == 0 &&
		    ans.status == MA_DNS_OK) {
			for (size_t i = 0;
			     i < ans.count && h->naddrs < MX_ADDRS_MAX; i++) {
				snprintf(h->addrs[h->naddrs].ip,
				         sizeof(h->addrs[0].ip), "%s",
				         ans.rr[i]);
				h->addrs[h->naddrs].v6 = type == MA_DNS_AAAA;
				h->naddrs++;
			}
		}
		ma_dns_answer_clear(&ans);
	}
	list->status = list->hosts[0].naddrs > 0 ? MX_OK : MX_TEMPFAIL;
	if (list->status != MX_OK)
		snprintf(list->why, sizeof(list->why),
		         "no address for relay host %s", r->host);
}

static void
all_rcpts(struct out_job *job, enum out_outcome outcome, const char *status,
          const char *text)
{
	for (size_t i = 0; i < job->nrcpts; i++) {
		job->rcpts[i].outcome = outcome;
		snprintf(job->rcpts[i].status, sizeof(job->rcpts[i].status),
		         "%s", status);
		free(job->rcpts[i].diagnostic);
		job->rcpts[i].diagnostic = xstrdup(text);
	}
}

static bool
has_8bit(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] & 0x80)
			return true;
	return false;
}

/* The policy fetch, with mta-sts.DOMAIN resolved through tern's resolver
 * (the one tern.conf names, DNSSEC and all), not libcurl's. */
static int
sts_fetch(void *arg, const char *domain, const struct mtasts_fetch_opts *o,
          struct mtasts_policy *p, char *why, size_t whylen)
{
	const struct out_job *job = arg;
	char *host = xasprintf("mta-sts.%s", domain);
	char ip[64] = "";

	for (int pass = 0; pass < 2 && ip[0] == '\0'; pass++) {
		enum ma_dns_type type = pass == 0 ? MA_DNS_A : MA_DNS_AAAA;
		struct ma_dns_answer ans = {0};

		if (type == MA_DNS_AAAA && !job->ipv6)
			continue;
		if (job->dns.lookup(job->dns.arg, host, type, &ans) == 0 &&
		    ans.status == MA_DNS_OK && ans.count > 0)
			snprintf(ip, sizeof(ip), "%s", ans.rr[0]);
		ma_dns_answer_clear(&ans);
	}
	free(host);
	if (ip[0] == '\0') {
		snprintf(why, whylen, "no address for mta-sts.%s", domain);
		return -1;
	}
	return mtasts_fetch(domain, o->ca_file, o->port, ip, o->timeout_ms, p,
	                    why, whylen);
}

/* An idle session to the same destination, if one is cached: the
 * message goes over it without a new connection, DNS or handshake (the
 * policies that applied when it was opened still hold). */
static bool
try_cached(struct attempt *a)
{
	struct out_job *job = a->job;
	struct idle_session *s;
	enum session_end end;

	if (job->dest_key == NULL || (s = cache_take(job->dest_key)) == NULL)
		return false;
	end = session_run(a, &s->cn, s->host, SMTP_CLIENT_TLS_NONE, NULL, NULL,
	                  s);
	if (end != SESSION_DONE) {
		idle_free(&s);
		return false;
	}
	free(job->remote_mta);
	job->remote_mta = xstrdup(s->host);
	log_debug(job->id, "event=session-reused to=%s txns=%u", s->cn.what,
	          s->txns);
	if (a->kept == s)
		cache_put(s);
	else
		idle_free(&s);
	a->kept = NULL;
	return true;
}

/* The domain's MTA-STS policy (cached, or fetched on this thread). */
static void
sts_policy(struct out_job *job, struct mtasts_policy *p)
{
	struct mtasts_fetch_opts opts = {
	    .ca_file = job->sts_ca_file,
	    .port = job->sts_port,
	    .timeout_ms = 30000,
	    .fetch = sts_fetch,
	    .fetch_arg = job,
	};

	memset(p, 0, sizeof(*p));
	if (job->sts_cache == NULL)
		return;
	mtasts_get_policy(&job->dns, job->sts_cache, job->domain, &opts,
	                  clock_wall_ms(), p);
	if (p->mode == MTASTS_NONE)
		log_debug(job->id,
		          "event=mta-sts domain=%s mta-sts=none "
		          "detail=%s",
		          job->domain, p->why);
	else
		log_info(job->id,
		         "event=mta-sts domain=%s mta-sts=%s mx=%zu "
		         "detail=%s",
		         job->domain,
		         p->mode == MTASTS_ENFORCE ? "enforce" : "testing",
		         p->nmx, p->why);
}

void
queue_out_run(struct out_job *job)
{
	struct attempt a = {.job = job};
	struct mtasts_policy sts;
	struct mx_list hosts;
	struct stat st;
	void *map = NULL;

	memset(&hosts, 0, sizeof(hosts));
	memset(&sts, 0, sizeof(sts));
	if (fstat(job->fd, &st) < 0) {
		all_rcpts(job, OUT_TEMPFAIL, "4.3.0",
		          "cannot read the spool file");
		goto out;
	}
	if (st.st_size > 0) {
		map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE,
		           job->fd, 0);
		if (map == MAP_FAILED) {
			map = NULL;
			all_rcpts(job, OUT_TEMPFAIL, "4.3.0",
			          "cannot map the spool file");
			goto out;
		}
		a.msg = map;
		a.msg_len = (size_t)st.st_size;
	}
	a.body_8bit =
	    has_8bit(a.msg, a.msg_len) ||
	    (job->headers != NULL &&
	     has_8bit((const uint8_t *)job->headers, strlen(job->headers)));
	attempt_error(&a, false, "4.4.1", "no server answered");
	if (try_cached(&a))
		goto out;
	if (job->relay != NULL) {
		const struct out_relay *r = job->relay;
		enum smtp_client_tls tls =
		    r->tls == RELAY_TLS_IMPLICIT ? SMTP_CLIENT_TLS_IMPLICIT
		    : r->tls == RELAY_TLS_NONE   ? SMTP_CLIENT_TLS_NONE
		                                 : SMTP_CLIENT_TLS_REQUIRED;

		relay_hosts(job, &hosts);
		if (hosts.status != MX_OK) {
			all_rcpts(job, OUT_TEMPFAIL, "4.4.3", hosts.why);
			goto out;
		}
		if (!try_hosts(&a, &hosts, r->port, tls, r->ctx, r->verify,
		               NULL))
			/* A relay's refusal is a setup problem here, not
			 * the recipient's: it stays queued. */
			all_rcpts(job, OUT_TEMPFAIL,
			          a.last_permanent ? "4.4.0" : a.last_status,
			          a.last_error);
	} else {
		struct mx_options opt = {
		    .ipv4 = true,
		    .ipv6 = job->ipv6,
		    .self_names = (const char *const[]){job->helo_name, NULL},
		};

		mx_resolve(&job->dns, job->domain, &opt, &hosts);
		switch (hosts.status) {
		case MX_OK:
			break;
		case MX_NULL:
			all_rcpts(job, OUT_PERMFAIL, "5.1.10", hosts.why);
			goto out;
		case MX_NODOMAIN:
			all_rcpts(job, OUT_PERMFAIL, "5.1.2", hosts.why);
			goto out;
		case MX_LOOP:
			all_rcpts(job, OUT_PERMFAIL, "5.4.6", hosts.why);
			goto out;
		case MX_TEMPFAIL:
		default:
			all_rcpts(job, OUT_TEMPFAIL, "4.4.3", hosts.why);
			goto out;
		}
		sts_policy(job, &sts);
		if (!try_hosts(&a, &hosts, job->mx_port,
		               SMTP_CLIENT_TLS_OPPORTUNISTIC, job->mx_ctx,
		               false, &sts))
			all_rcpts(
			    job, a.last_permanent ? OUT_PERMFAIL : OUT_TEMPFAIL,
			    a.last_status, a.last_error);
	}
out:
	mtasts_policy_clear(&sts);
	mx_list_clear(&hosts);
	if (map != NULL)
		munmap(map, (size_t)st.st_size);
	close(job->fd);
	job->fd = -1;
}

void
queue_out_job_free(struct out_job **jobp)
{
	struct out_job *job = *jobp;

	if (job == NULL)
		return;
	if (job->fd >= 0)
		close(job->fd);
	for (size_t i = 0; i < job->nrcpts; i++) {
		free(job->rcpts[i].address);
		free(job->rcpts[i].orcpt);
		free(job->rcpts[i].diagnostic);
	}
	free(job->rcpts);
	if (job->relay != NULL) {
		free(job->relay->name);
		free(job->relay->host);
		free(job->relay->user);
		if (job->relay->password != NULL) {
			explicit_bzero(job->relay->password,
			               strlen(job->relay->password));
			free(job->relay->password);
		}
		SSL_CTX_free(job->relay->ctx);
		free(job->relay);
	}
	SSL_CTX_free(job->mx_ctx);
	SSL_CTX_free(job->sts_ctx);
	free(job->dest_key);
	free(job->sts_ca_file);
	free(job->headers);
	free(job->mail_from);
	free(job->ret);
	free(job->envid);
	free(job->domain);
	free(job->helo_name);
	free(job->remote_mta);
	free(job);
	*jobp = NULL;
}
