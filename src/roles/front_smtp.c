/* SMTP, submission and LMTP sessions in front: the glue between the
 * session state machine (src/smtp/server.c) and the other roles — lookup
 * decides recipients and senders, queue hands out spool files and makes
 * messages durable before the session answers 250.
 * SECURITY: front never opens a file: it writes message bytes into the
 * descriptor queue passed it, and gives it back (closed) before asking
 * queue to commit. Recipient expansions come from lookup, not the peer. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/ipc.h"
#include "core/log.h"
#include "core/xmalloc.h"
#include "mail/address.h"
#include "queue/spool.h"
#include "roles/front_arc.h"
#include "roles/front_auth.h"
#include "roles/front_conn.h"
#include "roles/front_sign.h"
#include "smtp/server.h"

/* What lookup said about each recipient the session accepted, kept until
 * the message is committed: remembered by the address as given, newest
 * last (a transaction reset leaves old ones, which a bound trims). */
struct expansion {
	char *rcpt;
	char **finals;
	uint32_t *how; /* IPC_RCPT_* */
	char **sender; /* SRS sender, or NULL */
	size_t n;
};

#define EXPANSIONS_MAX 1024

struct front_smtp {
	int spool_fd;
	char spool_id[32];
	char *pending_rcpt; /* the RCPT out with lookup */
	/* The message, for the log line once it is queued. */
	char *log_from, *log_auth;
	long long log_size;
	size_t log_rcpts;
	struct expansion *exp;
	size_t nexp;
	/* Header fields to put before the message (the checks' results), or
	 * NULL; and before those in forwarded copies (the ARC set). */
	char *headers;
	char *fwd_headers;
	const struct smtp_envelope *env; /* while the checks run */
	uint32_t flags;                  /* SPOOL_FLAG_* from the checks */
};

static void
expansion_clear(struct expansion *e)
{
	for (size_t i = 0; i < e->n; i++) {
		free(e->finals[i]);
		free(e->sender[i]);
	}
	free(e->finals);
	free(e->how);
	free(e->sender);
	free(e->rcpt);
	memset(e, 0, sizeof(*e));
}

static void
expansions_reset(struct front_smtp *tx)
{
	for (size_t i = 0; i < tx->nexp; i++)
		expansion_clear(&tx->exp[i]);
	tx->nexp = 0;
}

static const struct expansion *
expansion_find(const struct front_smtp *tx, const char *rcpt)
{
	for (size_t i = tx->nexp; i > 0; i--)
		if (strcmp(tx->exp[i - 1].rcpt, rcpt) == 0)
			return &tx->exp[i - 1];
	return NULL;
}

/* Give the spool file back: front keeps no descriptor past a message. */
static void
spool_close_fd(struct front_smtp *tx)
{
	if (tx->spool_fd >= 0)
		close(tx->spool_fd);
	tx->spool_fd = -1;
}

static void
spool_abort(struct front_conn *c)
{
	struct front_smtp *tx = c->tx;
	struct buf b;

	spool_close_fd(tx);
	if (tx->spool_id[0] == '\0')
		return;
	buf_init(&b, 0);
	ipc_put_str(&b, tx->spool_id);
	if (child_peer(c->front->ctx, "queue") != NULL)
		ipc_send(child_peer(c->front->ctx, "queue"),
		         IPC_MSG_SPOOL_ABORT, 0, -1, b.data, b.len);
	buf_free(&b);
	tx->spool_id[0] = '\0';
}

/* ---- the session's questions ---- */

static void
smtp_check_rcpt(void *arg, const char *address)
{
	struct front_conn *c = arg;
	struct buf b;

	free(c->tx->pending_rcpt);
	c->tx->pending_rcpt = xstrdup(address);
	buf_init(&b, 0);
	ipc_put_str(&b, address);
	ipc_put_u32(&b, smtp_server_auth_user(c->smtp) != NULL);
	ipc_put_str(&b, smtp_server_mail_from(c->smtp));
	conn_request(c, "lookup", IPC_MSG_RCPT_CHECK, &b);
}

static void
smtp_check_sender(void *arg, const char *user, const char *address)
{
	struct front_conn *c = arg;
	struct buf b;

	buf_init(&b, 0);
	ipc_put_str(&b, user);
	ipc_put_str(&b, address);
	conn_request(c, "lookup", IPC_MSG_SENDER_CHECK, &b);
}

static void
smtp_data_begin(void *arg)
{
	struct front_conn *c = arg;
	struct buf b;

	spool_abort(c);
	buf_init(&b, 0);
	conn_request(c, "queue", IPC_MSG_SPOOL_CREATE, &b);
}

static int
smtp_data_write(void *arg, const void *data, size_t len)
{
	struct front_conn *c = arg;
	const char *p = data;
	ssize_t n;

	/* A local file: short writes only on error, EINTR aside. */
	while (len > 0) {
		n = write(c->tx->spool_fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			log_error(c->id, "event=spool-write-failed error=%s",
			          n < 0 ? strerror(errno) : "short write");
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* The envelope for queue (see roles/queue.c envelope_read): each
 * recipient the session accepted becomes the final addresses lookup gave
 * for it, with the original as ORCPT. */
static int
envelope_write(struct front_conn *c, const struct smtp_envelope *env,
               struct buf *b)
{
	struct front_smtp *tx = c->tx;
	uint32_t count = 0;

	ipc_put_str(b, tx->spool_id);
	ipc_put_str(b, env->mail_from);
	ipc_put_str(b, env->helo != NULL ? env->helo : "");
	ipc_put_str(b, c->ip);
	ipc_put_str(b, env->auth_user != NULL ? env->auth_user : "");
	ipc_put_str(b, env->ret != NULL ? env->ret : "");
	ipc_put_str(b, env->envid != NULL ? env->envid : "");
	ipc_put_u32(b, env->smtputf8);
	ipc_put_u64(b, (uint64_t)tx->log_size);
	ipc_put_str(b, tx->headers != NULL ? tx->headers : "");
	ipc_put_str(b, tx->fwd_headers != NULL ? tx->fwd_headers : "");
	ipc_put_u32(b, tx->flags);
	for (size_t i = 0; i < env->nrcpts; i++) {
		const struct expansion *e =
		    expansion_find(tx, env->rcpts[i].address);

		if (e == NULL)
			return -1; /* accepted without lookup: a bug */
		count += (uint32_t)e->n;
	}
	ipc_put_u32(b, count);
	for (size_t i = 0; i < env->nrcpts; i++) {
		const struct expansion *e =
		    expansion_find(tx, env->rcpts[i].address);

		for (size_t j = 0; j < e->n; j++) {
			ipc_put_str(b, e->finals[j]);
			ipc_put_str(b, env->rcpts[i].orcpt != NULL
			                   ? env->rcpts[i].orcpt
			                   : env->rcpts[i].address);
			ipc_put_u32(b, env->rcpts[i].notify);
			ipc_put_u32(b, e->how[j]);
			ipc_put_str(b,
			            e->sender[j] != NULL ? e->sender[j] : "");
		}
	}
	return 0;
}

static void
commit_now(struct front_conn *c, const struct smtp_envelope *env)
{
	struct front_smtp *tx = c->tx;
	struct buf b;

	buf_init(&b, 0);
	/* The size the envelope says, which queue checks against the file. */
	if (tx->spool_fd >= 0)
		tx->log_size = (long long)lseek(tx->spool_fd, 0, SEEK_END);
	if (tx->spool_fd < 0 || envelope_write(c, env, &b) < 0) {
		log_error(c->id, "event=commit-impossible");
		buf_free(&b);
		spool_abort(c);
		smtp_server_commit_result(c->smtp, -1, NULL);
		return;
	}
	free(tx->log_from);
	free(tx->log_auth);
	tx->log_from = xstrdup(env->mail_from);
	tx->log_auth = xstrdup(env->auth_user != NULL ? env->auth_user : "-");
	tx->log_rcpts = env->nrcpts;
	spool_close_fd(tx);
	conn_request(c, "queue", IPC_MSG_SPOOL_COMMIT, &b);
}

/* The domain of the first recipient an alias of ours forwards outside
 * (the one whose key seals), or false when none is forwarded. */
static bool
forwarding_domain(const struct front_smtp *tx, const struct smtp_envelope *env,
                  char domain[ADDRESS_DOMAIN_MAX + 1])
{
	for (size_t i = 0; i < env->nrcpts; i++) {
		const struct expansion *e =
		    expansion_find(tx, env->rcpts[i].address);
		struct address a;
		const char *why;

		for (size_t j = 0; e != NULL && j < e->n; j++) {
			if (!(e->how[j] & IPC_RCPT_FORWARDED) ||
			    address_parse(e->rcpt, strlen(e->rcpt), &a, &why) <
			        0)
				continue;
			snprintf(domain, ADDRESS_DOMAIN_MAX + 1, "%s",
			         a.domain);
			return true;
		}
	}
	return false;
}

/* The ARC set for the forwarded copies is made (or not: ""). */
static void
arc_sealed(struct front_conn *c, const char *fields)
{
	struct front_smtp *tx = c->tx;

	xfree(&tx->fwd_headers);
	if (fields[0] != '\0')
		tx->fwd_headers = xstrdup(fields);
	commit_now(c, tx->env);
}

/* The checks are done: their results go with the envelope, or the
 * message is refused. Copies that an alias forwards outside get an ARC
 * set first. */
static void
auth_checked(struct front_conn *c, const struct front_auth_outcome *o)
{
	struct front_smtp *tx = c->tx;
	char domain[ADDRESS_DOMAIN_MAX + 1];

	if (o->verdict == FRONT_AUTH_REJECT) {
		spool_abort(c);
		expansions_reset(tx);
		smtp_server_commit_refused(c->smtp, o->reason);
		conn_resume(c);
		return;
	}
	xfree(&tx->headers);
	if (o->headers[0] != '\0')
		tx->headers = xstrdup(o->headers);
	tx->flags = o->verdict == FRONT_AUTH_JUNK ? SPOOL_FLAG_JUNK : 0;
	if (o->arc_chain >= 0 && o->authres[0] != '\0' && tx->spool_fd >= 0 &&
	    forwarding_domain(tx, tx->env, domain)) {
		front_arc_start(c, tx->spool_fd, domain, o->authres,
		                o->arc_chain, arc_sealed);
		return;
	}
	commit_now(c, tx->env);
}

/* Signing is done: the DKIM-Signature fields go with the envelope. */
static void
signed_done(struct front_conn *c, const char *fields, const char *refusal)
{
	struct front_auth_outcome o = {
	    .headers = fields,
	    .verdict = FRONT_AUTH_ACCEPT,
	    .reason = "",
	    .authres = "",
	    .arc_chain = -1,
	};

	if (refusal != NULL) {
		spool_abort(c);
		expansions_reset(c->tx);
		smtp_server_commit_refused_code(c->smtp, 553, refusal);
		conn_resume(c);
		return;
	}
	auth_checked(c, &o);
}

/* End of data: on the MX, check SPF and DKIM first; on submission, sign
 * (the session waits for the commit result meanwhile, and env stays valid
 * until then). */
static void
smtp_data_commit(void *arg, const struct smtp_envelope *env)
{
	struct front_conn *c = arg;

	xfree(&c->tx->headers);
	xfree(&c->tx->fwd_headers);
	c->tx->flags = 0;
	if (front_auth_wanted(c) && c->tx->spool_fd >= 0) {
		c->tx->env = env;
		front_auth_check(c, c->tx->spool_fd, env->helo, env->mail_from,
		                 auth_checked);
		return;
	}
	if (front_sign_wanted(c, env->auth_user) && c->tx->spool_fd >= 0) {
		c->tx->env = env;
		front_sign_start(c, c->tx->spool_fd, signed_done);
		return;
	}
	commit_now(c, env);
}

static void
smtp_data_abort(void *arg)
{
	struct front_conn *c = arg;

	spool_abort(c);
	expansions_reset(c->tx);
}

/* ---- answers ---- */

static void
rcpt_reply(struct front_conn *c, struct ipc_reader *r)
{
	struct front_smtp *tx = c->tx;
	struct expansion e = {0};
	uint32_t result = ipc_get_u32(r), n = ipc_get_u32(r);
	static const int map[] = {0, 1, 2, 3, -1};

	if (r->error || result > 4 || n > 1000 || (result == 0 && n == 0)) {
		smtp_server_rcpt_result(c->smtp, -1);
		return;
	}
	e.finals = n > 0 ? xcalloc(n, sizeof(char *)) : NULL;
	e.how = n > 0 ? xcalloc(n, sizeof(uint32_t)) : NULL;
	e.sender = n > 0 ? xcalloc(n, sizeof(char *)) : NULL;
	for (uint32_t i = 0; i < n; i++) {
		char *final = ipc_get_str(r), *sender;

		e.how[e.n] =
		    ipc_get_u32(r) & (IPC_RCPT_LOCAL | IPC_RCPT_FORWARDED);
		sender = ipc_get_str(r);
		if (final == NULL || sender == NULL) {
			free(final);
			free(sender);
			continue;
		}
		e.finals[e.n] = final;
		if (sender[0] == '\0')
			xfree(&sender);
		e.sender[e.n++] = sender;
	}
	if (ipc_reader_done(r) < 0 || e.n != n || tx->pending_rcpt == NULL) {
		expansion_clear(&e);
		smtp_server_rcpt_result(c->smtp, -1);
		return;
	}
	if (result == 0) {
		if (tx->nexp == EXPANSIONS_MAX) {
			expansion_clear(&tx->exp[0]);
			memmove(tx->exp, tx->exp + 1,
			        --tx->nexp * sizeof(*tx->exp));
		}
		e.rcpt = tx->pending_rcpt;
		tx->pending_rcpt = NULL;
		tx->exp =
		    xreallocarray(tx->exp, tx->nexp + 1, sizeof(*tx->exp));
		tx->exp[tx->nexp++] = e;
	} else {
		expansion_clear(&e);
	}
	smtp_server_rcpt_result(c->smtp, map[result]);
}

static void
spool_file(struct front_conn *c, struct ipc_msg *msg, struct ipc_reader *r)
{
	struct front_smtp *tx = c->tx;
	char *id = ipc_get_str(r);

	if (ipc_reader_done(r) < 0 || id == NULL || id[0] == '\0' ||
	    msg->fd < 0 || strlen(id) >= sizeof(tx->spool_id)) {
		free(id);
		smtp_server_data_ready(c->smtp, -1);
		return;
	}
	snprintf(tx->spool_id, sizeof(tx->spool_id), "%s", id);
	free(id);
	tx->spool_fd = msg->fd;
	msg->fd = -1;
	smtp_server_data_ready(c->smtp, 0);
}

static void
spool_committed(struct front_conn *c, struct ipc_reader *r)
{
	struct front_smtp *tx = c->tx;
	uint32_t result = ipc_get_u32(r);
	char *id = ipc_get_str(r);
	bool ok = ipc_reader_done(r) == 0 && result == 0 && id != NULL &&
	          strcmp(id, tx->spool_id) == 0;

	/* The one line per message (queue logs each recipient). */
	if (ok)
		log_info(c->id,
		         "event=accepted queue_id=%s ip=%s from=<%s> size=%lld "
		         "rcpts=%zu tls=%s auth=%s",
		         id, c->ip, tx->log_from != NULL ? tx->log_from : "",
		         tx->log_size, tx->log_rcpts,
		         c->ssl != NULL ? SSL_get_version(c->ssl) : "no",
		         tx->log_auth != NULL ? tx->log_auth : "-");
	tx->spool_id[0] = '\0';
	expansions_reset(tx);
	smtp_server_commit_result(c->smtp, ok ? 0 : -1, ok ? id : NULL);
	free(id);
}

/* The question a reply type answers. */
static uint16_t
reply_to(uint16_t type)
{
	switch (type) {
	case IPC_MSG_RCPT_REPLY:
		return IPC_MSG_RCPT_CHECK;
	case IPC_MSG_SENDER_REPLY:
		return IPC_MSG_SENDER_CHECK;
	case IPC_MSG_SPOOL_FILE:
		return IPC_MSG_SPOOL_CREATE;
	case IPC_MSG_SPOOL_COMMITTED:
		return IPC_MSG_SPOOL_COMMIT;
	case IPC_MSG_DKIM_KEYS_REPLY:
		return IPC_MSG_DKIM_KEYS;
	case IPC_MSG_DKIM_SIGNATURES:
		return IPC_MSG_DKIM_SIGN;
	default:
		return 0;
	}
}

void
front_smtp_reply(struct front *f, struct ipc_msg *msg)
{
	struct front_conn *c = front_conn_take(f, msg->reqid);
	struct ipc_reader r;
	uint32_t result;

	if (c == NULL || c->smtp == NULL)
		return; /* the client left meanwhile */
	if (reply_to(msg->type) != c->req_type) {
		log_error(c->id, "event=unexpected-reply type=%u asked=%u",
		          msg->type, c->req_type);
		return;
	}
	c->req_id = 0;
	c->req_type = 0;
	ipc_reader_init(&r, msg);
	switch (msg->type) {
	case IPC_MSG_RCPT_REPLY:
		rcpt_reply(c, &r);
		break;
	case IPC_MSG_SENDER_REPLY:
		if (c->sign != NULL) {
			/* the From: check of a message being signed */
			front_sign_from_reply(c, &r);
			break;
		}
		result = ipc_get_u32(&r);
		smtp_server_sender_result(
		    c->smtp,
		    ipc_reader_done(&r) < 0 || result > 1 ? -1 : (int)result);
		break;
	case IPC_MSG_SPOOL_FILE:
		spool_file(c, msg, &r);
		break;
	case IPC_MSG_SPOOL_COMMITTED:
		spool_committed(c, &r);
		break;
	case IPC_MSG_DKIM_KEYS_REPLY:
		if (c->arc != NULL)
			front_arc_keys_reply(c, &r);
		else
			front_sign_keys_reply(c, &r);
		break;
	case IPC_MSG_DKIM_SIGNATURES:
		if (c->arc != NULL)
			front_arc_signatures_reply(c, &r);
		else
			front_sign_signatures_reply(c, &r);
		break;
	default:
		return;
	}
	conn_resume(c);
}

void
front_smtp_failed(struct front_conn *c, uint16_t type)
{
	if (c->smtp == NULL)
		return;
	switch (type) {
	case IPC_MSG_RCPT_CHECK:
		smtp_server_rcpt_result(c->smtp, -1);
		break;
	case IPC_MSG_SENDER_CHECK:
		smtp_server_sender_result(c->smtp, -1);
		break;
	case IPC_MSG_DKIM_KEYS:
	case IPC_MSG_DKIM_SIGN:
		if (c->arc != NULL)
			front_arc_failed(c);
		else
			front_sign_failed(c);
		break;
	case IPC_MSG_SPOOL_CREATE:
		smtp_server_data_ready(c->smtp, -1);
		break;
	case IPC_MSG_SPOOL_COMMIT:
		/* queue went away before saying the message is safe: not
		 * acknowledged, so the client will try again. */
		c->tx->spool_id[0] = '\0';
		smtp_server_commit_result(c->smtp, -1, NULL);
		break;
	default:
		return;
	}
	conn_resume(c);
}

/* ---- life ---- */

void
front_smtp_start(struct front_conn *c)
{
	const struct config_listener *l =
	    &c->front->ctx->cfg->listeners[c->fl->index];
	struct smtp_limits limits;
	struct smtp_server_io io = {
	    .write = conn_io_write,
	    .starttls = conn_io_starttls,
	    .close = conn_io_close,
	    .check_rcpt = smtp_check_rcpt,
	    .check_sender = smtp_check_sender,
	    .data_begin = smtp_data_begin,
	    .data_write = smtp_data_write,
	    .data_commit = smtp_data_commit,
	    .data_abort = smtp_data_abort,
	    .verifier = conn_verifier(c),
	    .arg = c,
	};
	enum smtp_kind kind = c->service == SERVICE_LMTP ? SMTP_KIND_LMTP
	                      : c->service == SERVICE_SMTP
	                          ? SMTP_KIND_MX
	                          : SMTP_KIND_SUBMISSION;

	smtp_limits_default(&limits);
	limits.line_max = c->front->ctx->cfg->smtp_line_max;
	limits.message_max = c->front->ctx->cfg->message_size_max;
	limits.header_max = (size_t)c->front->ctx->cfg->smtp_header_max;
	limits.rcpt_max = c->front->ctx->cfg->smtp_recipients_max;
	limits.errors_max = c->front->ctx->cfg->smtp_errors_max;
	limits.reject_bare_lf = c->front->ctx->cfg->smtp_reject_bare_lf;
	c->tx = xcalloc(1, sizeof(*c->tx));
	c->tx->spool_fd = -1;
	c->smtp = smtp_server_new(
	    kind, &limits, c->front->ctx->cfg->hostname, c->ip, c->tls_active,
	    l->tls == LISTENER_TLS_STARTTLS && c->front->tls != NULL, &io);
	smtp_server_start(c->smtp);
}

void
front_smtp_free(struct front_conn *c)
{
	if (c->tx == NULL)
		return;
	/* The session may abort its transaction as it goes: free it while
	 * the transaction state it reports to still exists. */
	smtp_server_free(&c->smtp);
	spool_abort(c);
	expansions_reset(c->tx);
	free(c->tx->exp);
	free(c->tx->pending_rcpt);
	free(c->tx->log_from);
	free(c->tx->log_auth);
	free(c->tx->headers);
	free(c->tx->fwd_headers);
	xfree(&c->tx);
}
