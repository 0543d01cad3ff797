/* lookup: the directory (domains, users, aliases) and every login check.
 * It alone opens the directory database and state.db, verifies passwords
 * and SCRAM proofs, and applies the login limits; front asks over its link.
 * queue asks where a DSN goes and has users over the sending limits suspended.
 * It keeps the SRS secrets: the sender of forwarded mail is rewritten at
 * RCPT, and a bounce to such an address is turned back here.
 * SECURITY: runs as its own unprivileged user. It takes structured
 * requests only (front has parsed the client's bytes), answers a failure
 * for an unknown user after the same work as for a wrong password, and
 * logs each failed login with the stable line
 * "event=auth-failed ip=IP user=USER service=SERVICE reason=REASON". */
#include <event2/event.h>
#include <malloc.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/workpool.h"
#include "core/xmalloc.h"
#include "directory/authlimit.h"
#include "directory/directory.h"
#include "directory/password.h"
#include "mail/address.h"
#include "mail/srs.h"
#include "roles/lookup_dkim.h"
#include "roles/roles.h"

/* Bound on app passwords tried for one login (each is a full hash check). */
#define APP_PASSWORDS_TRIED_MAX 8
/* Threads for password checks: each Argon2 verify takes argon2_memory
 * (64 MiB by default) while it runs. */
#define LOOKUP_AUTH_THREADS_MAX 4

struct lookup {
	struct directory *dir;
	struct authlimit *limits;
	struct password_policy policy;
	struct workpool *pool;    /* password checks (auth_job) */
	uint8_t scram_secret[32]; /* fake SCRAM salts for unknown users */
	struct srs_keys srs;      /* n == 0: no SRS (off, or no secrets) */
};

/* A login answer waiting out its delay. */
struct pending_reply {
	struct ipc_peer *peer;
	struct event *ev;
	uint32_t reqid;
	struct buf payload;
	struct child_ctx *ctx;
};

/* What front may ask. */
static const struct ipc_rule front_rules[] = {
    {IPC_MSG_AUTH_PASSWORD, 16, 8192, IPC_FD_NEVER},
    {IPC_MSG_AUTH_SCRAM_PARAMS, 12, 4096, IPC_FD_NEVER},
    {IPC_MSG_AUTH_SCRAM_CHECK, 20, 16384, IPC_FD_NEVER},
    {IPC_MSG_RCPT_CHECK, 12, 4096, IPC_FD_NEVER},
    {IPC_MSG_SENDER_CHECK, 8, 4096, IPC_FD_NEVER},
    {IPC_MSG_DKIM_KEYS, 4, 512, IPC_FD_NEVER},
    {IPC_MSG_DKIM_SIGN, 8, 8192, IPC_FD_NEVER},
    {IPC_MSG_PING, 0, 0, IPC_FD_NEVER},
    {IPC_MSG_PONG, 0, 0, IPC_FD_NEVER},
    {0, 0, 0, IPC_FD_NEVER},
};

static const struct ipc_rule queue_rules[] = {
    {IPC_MSG_RCPT_CHECK, 12, 4096, IPC_FD_NEVER},
    {IPC_MSG_DKIM_KEYS, 4, 512, IPC_FD_NEVER},
    {IPC_MSG_DKIM_SIGN, 8, 8192, IPC_FD_NEVER},
    {IPC_MSG_USER_SUSPEND, 8, 2048, IPC_FD_NEVER},
    {IPC_MSG_PING, 0, 0, IPC_FD_NEVER},
    {IPC_MSG_PONG, 0, 0, IPC_FD_NEVER},
    {0, 0, 0, IPC_FD_NEVER},
};

static const char *
lookup_user(const struct config *cfg)
{
	return cfg->lookup_user;
}

static unsigned
service_bit(const char *service)
{
	static const struct {
		const char *name;
		unsigned bit;
	} map[] = {
	    {"imap", DIR_SERVICE_IMAP},
	    {"pop3", DIR_SERVICE_POP3},
	    {"smtp", DIR_SERVICE_SMTP},
	    {"sieve", DIR_SERVICE_SIEVE},
	};

	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (strcmp(service, map[i].name) == 0)
			return map[i].bit;
	return 0;
}

/* ---- replies ---- */

static void
reply_send_cb(evutil_socket_t fd, short what, void *arg)
{
	struct pending_reply *r = arg;
	struct ipc_peer *peer = child_peer(r->ctx, "front");

	(void)fd;
	(void)what;
	/* The link may have been replaced while we waited: answer only on the
	 * one the question came from. */
	if (peer != NULL && peer == r->peer)
		ipc_send(peer, IPC_MSG_AUTH_REPLY, r->reqid, -1,
		         r->payload.data, r->payload.len);
	event_free(r->ev);
	buf_free(&r->payload);
	free(r);
}

/* Answer after delay_ms: a failed guess costs the guesser time, not us. */
static void
reply(struct child_ctx *ctx, struct ipc_peer *peer, uint32_t reqid,
      uint32_t result, const char *user, const uint8_t *salt, size_t salt_len,
      uint32_t iterations, const uint8_t *sig, size_t sig_len,
      uint64_t delay_ms)
{
	struct pending_reply *r = xcalloc(1, sizeof(*r));
	struct timeval tv = {(time_t)(delay_ms / 1000),
	                     (suseconds_t)(delay_ms % 1000) * 1000};

	r->ctx = ctx;
	r->peer = peer;
	r->reqid = reqid;
	buf_init(&r->payload, 0);
	ipc_put_u32(&r->payload, result);
	ipc_put_str(&r->payload, user != NULL ? user : "");
	ipc_put_bytes(&r->payload, salt, salt_len);
	ipc_put_u32(&r->payload, iterations);
	ipc_put_bytes(&r->payload, sig, sig_len);
	r->ev = evtimer_new(ctx->base, reply_send_cb, r);
	evtimer_add(r->ev, &tv);
}

/* ---- the checks ---- */

struct auth_request {
	char *service;
	char *ip;
	char *user;
	char key[ADDRESS_MAX * 4 + 2]; /* the normalized address, or "" */
};

static int
auth_request_read(struct ipc_reader *r, struct auth_request *a)
{
	struct address addr;
	const char *why;

	memset(a, 0, sizeof(*a));
	a->service = ipc_get_str(r);
	a->ip = ipc_get_str(r);
	a->user = ipc_get_str(r);
	if (a->service == NULL || a->ip == NULL || a->user == NULL)
		return -1;
	if (address_parse(a->user, strlen(a->user), &addr, &why) == 0)
		address_key(&addr, a->key, sizeof(a->key));
	return 0;
}

static void
auth_request_free(struct auth_request *a)
{
	free(a->service);
	free(a->ip);
	free(a->user);
}

/* The account name failures are counted under: the address when it
 * parses, else what was typed (bounded by the message rules). */
static const char *
account_of(const struct auth_request *a)
{
	return a->key[0] != '\0' ? a->key : a->user;
}

static void
log_failure(const struct auth_request *a, const char *reason)
{
	log_notice(NULL, "event=auth-failed ip=%s user=%s service=%s reason=%s",
	           a->ip, account_of(a), a->service, reason);
}

/* Count the failure; say so when it bans the address. */
static void
count_failure(struct lookup *l, const struct auth_request *a,
              const struct config *cfg)
{
	if (authlimit_failure(l->limits, a->ip, account_of(a), clock_wall_ms()))
		log_warn(NULL, "event=auth-ban ip=%s failures=%u ban_s=%llu",
		         a->ip, cfg->auth_max_failures,
		         (unsigned long long)(cfg->auth_ban_time_ms / 1000));
}

/* A password check, run on the pool: an Argon2 verify takes a core for
 * 0.2 s, and the loop keeps answering RCPT, DKIM and SRS questions (and
 * other logins, on the other threads) meanwhile. The directory is read on
 * the loop before, the limits are counted on the loop after. */
struct auth_job {
	struct child_ctx *ctx;
	struct ipc_peer *peer;
	uint32_t reqid;
	struct auth_request a;
	uint8_t *pw;
	size_t pwlen;
	uint64_t delay;
	struct password_policy policy;
	const char *refused; /* "authzid", "unknown-user": a dummy check */
	bool suspended;
	char *hash;        /* the user's own, or NULL */
	char **app_hashes; /* app passwords for this service */
	char **app_labels;
	size_t napps;
	/* Results. */
	enum password_result res;
	const char *app_label; /* the app password that matched */
};

static void
auth_job_free(struct auth_job *j)
{
	if (j->pw != NULL)
		OPENSSL_cleanse(j->pw, j->pwlen);
	free(j->pw);
	free(j->hash);
	for (size_t i = 0; i < j->napps; i++) {
		free(j->app_hashes[i]);
		free(j->app_labels[i]);
	}
	free(j->app_hashes);
	free(j->app_labels);
	auth_request_free(&j->a);
	free(j);
}

/* The app passwords of user u that may log in to this service. */
static void
auth_job_apps(struct lookup *l, struct auth_job *j, const char *address)
{
	struct dir_app_password *apps = NULL;
	unsigned bit = service_bit(j->a.service);
	size_t n = 0;
	char *error = NULL;

	if (bit == 0)
		return;
	if (directory_app_password_list(l->dir, address, &apps, &n, &error) <
	    0) {
		log_error(NULL, "event=directory-error error=%s", error);
		free(error);
		return;
	}
	for (size_t i = 0; i < n && j->napps < APP_PASSWORDS_TRIED_MAX; i++) {
		if (!(apps[i].services & bit) || apps[i].password_hash == NULL)
			continue;
		j->app_hashes = xreallocarray(j->app_hashes, j->napps + 1,
		                              sizeof(*j->app_hashes));
		j->app_labels = xreallocarray(j->app_labels, j->napps + 1,
		                              sizeof(*j->app_labels));
		j->app_hashes[j->napps] = xstrdup(apps[i].password_hash);
		j->app_labels[j->napps] = xstrdup(apps[i].label);
		j->napps++;
	}
	dir_app_passwords_free(&apps, n);
}

/* On a worker: nothing but the hashes and the password. */
static void
auth_job_run(void *arg)
{
	struct auth_job *j = arg;
	const char *pw = (const char *)j->pw;

	j->res = PASSWORD_MISMATCH;
	if (j->refused != NULL) {
		password_verify_dummy(&j->policy, pw, j->pwlen);
		return;
	}
	if (j->hash != NULL)
		j->res = password_verify(&j->policy, j->hash, pw, j->pwlen);
	for (size_t i = 0; i < j->napps && j->res != PASSWORD_OK; i++) {
		if (password_verify(&j->policy, j->app_hashes[i], pw,
		                    j->pwlen) == PASSWORD_OK) {
			j->res = PASSWORD_OK;
			j->app_label = j->app_labels[i];
		}
	}
}

/* Back on the loop: log, count, answer. */
static void
auth_job_done(void *arg)
{
	struct auth_job *j = arg;
	struct lookup *l = j->ctx->role;
	struct auth_request *a = &j->a;
	enum password_result res = j->res;

	if (j->refused != NULL) {
		res = PASSWORD_MISMATCH;
		log_failure(a, j->refused);
	} else if (res != PASSWORD_OK) {
		log_failure(a,
		            res == PASSWORD_MISMATCH ? "password" : "bad-hash");
	} else if (j->suspended) {
		res = PASSWORD_MISMATCH;
		log_failure(a, "suspended");
	}
	if (res == PASSWORD_OK) {
		if (j->app_label != NULL)
			log_info(NULL, "event=app-password user=%s label=%s",
			         a->key, j->app_label);
		authlimit_success(l->limits, a->ip, a->key, clock_wall_ms());
		log_info(NULL, "event=auth-ok ip=%s user=%s service=%s", a->ip,
		         a->key, a->service);
		reply(j->ctx, j->peer, j->reqid, 0, a->key, NULL, 0, 0, NULL, 0,
		      j->delay);
	} else {
		count_failure(l, a, j->ctx->cfg);
		reply(j->ctx, j->peer, j->reqid, 1, NULL, NULL, 0, 0, NULL, 0,
		      j->delay);
	}
	auth_job_free(j);
}

static void
auth_password(struct child_ctx *ctx, struct ipc_peer *peer, struct ipc_msg *msg)
{
	struct lookup *l = ctx->role;
	struct auth_job *j = xcalloc(1, sizeof(*j));
	struct ipc_reader r;
	struct dir_user u;
	const uint8_t *pw;
	char *authzid, *error = NULL;
	int found;

	ipc_reader_init(&r, msg);
	if (auth_request_read(&r, &j->a) < 0) {
		auth_job_free(j);
		log_error(NULL, "event=bad-auth-request");
		return;
	}
	authzid = ipc_get_str(&r);
	pw = ipc_get_bytes(&r, &j->pwlen);
	if (ipc_reader_done(&r) < 0 || authzid == NULL) {
		log_error(NULL, "event=bad-auth-request");
		free(authzid);
		auth_job_free(j);
		return;
	}
	j->ctx = ctx;
	j->peer = peer;
	j->reqid = msg->reqid;
	j->policy = l->policy;
	j->pw = xmalloc(j->pwlen + 1);
	if (j->pwlen > 0)
		memcpy(j->pw, pw, j->pwlen);
	if (authlimit_banned(l->limits, j->a.ip, clock_wall_ms()) > 0) {
		log_failure(&j->a, "banned");
		reply(ctx, peer, msg->reqid, 2, NULL, NULL, 0, 0, NULL, 0, 0);
		free(authzid);
		auth_job_free(j);
		return;
	}
	j->delay = authlimit_delay(l->limits, j->a.ip, account_of(&j->a),
	                           clock_wall_ms());
	memset(&u, 0, sizeof(u));
	found = j->a.key[0] != '\0'
	            ? directory_user_get(l->dir, j->a.key, &u, &error)
	            : 0;
	if (found < 0) {
		log_error(NULL, "event=directory-error error=%s", error);
		free(error);
		reply(ctx, peer, msg->reqid, 2, NULL, NULL, 0, 0, NULL, 0, 0);
		free(authzid);
		auth_job_free(j);
		return;
	}
	/* An authorization identity other than the user is not offered. */
	if (authzid[0] != '\0' && strcmp(authzid, j->a.user) != 0 &&
	    strcmp(authzid, j->a.key) != 0) {
		j->refused = "authzid";
	} else if (found == 0) {
		j->refused = "unknown-user";
	} else {
		j->hash =
		    u.password_hash != NULL ? xstrdup(u.password_hash) : NULL;
		j->suspended = u.suspended;
		auth_job_apps(l, j, u.address);
	}
	dir_user_clear(&u);
	free(authzid);
	workpool_submit(l->pool, NULL, auth_job_run, auth_job_done, j);
}

/* The user's SCRAM keys, or fake ones that fail every proof. Returns NULL
 * for real keys of an active user, else why there are none (for the log:
 * the client sees the same either way). */
static const char *
scram_keys_for(struct lookup *l, const struct auth_request *a,
               struct scram_keys *keys)
{
	struct dir_user u;
	char *error = NULL;
	const char *why = "unknown-user";
	int found = 0;

	memset(&u, 0, sizeof(u));
	if (a->key[0] != '\0')
		found = directory_user_get(l->dir, a->key, &u, &error);
	if (found < 0) {
		log_error(NULL, "event=directory-error error=%s", error);
		free(error);
		why = "directory-error";
	} else if (found > 0 && u.suspended) {
		why = "suspended";
	} else if (found > 0 && (u.scram == NULL ||
	                         password_scram_parse(u.scram, keys) < 0)) {
		/* Imported hashes and non-ASCII passwords have no keys. */
		why = "no-scram-keys";
	} else if (found > 0) {
		why = NULL;
	}
	dir_user_clear(&u);
	if (why != NULL)
		password_scram_fake(account_of(a), l->scram_secret,
		                    l->policy.scram_iterations, keys);
	return why;
}

static void
auth_scram_params(struct child_ctx *ctx, struct ipc_peer *peer,
                  struct ipc_msg *msg)
{
	struct lookup *l = ctx->role;
	struct auth_request a;
	struct scram_keys keys;
	struct ipc_reader r;

	ipc_reader_init(&r, msg);
	if (auth_request_read(&r, &a) < 0 || ipc_reader_done(&r) < 0) {
		log_error(NULL, "event=bad-auth-request");
		auth_request_free(&a);
		return;
	}
	if (authlimit_banned(l->limits, a.ip, clock_wall_ms()) > 0) {
		log_failure(&a, "banned");
		reply(ctx, peer, msg->reqid, 2, NULL, NULL, 0, 0, NULL, 0, 0);
	} else {
		scram_keys_for(l, &a, &keys);
		reply(ctx, peer, msg->reqid, 0, NULL, keys.salt, keys.salt_len,
		      keys.iterations, NULL, 0, 0);
	}
	OPENSSL_cleanse(&keys, sizeof(keys));
	auth_request_free(&a);
}

static void
auth_scram_check(struct child_ctx *ctx, struct ipc_peer *peer,
                 struct ipc_msg *msg)
{
	struct lookup *l = ctx->role;
	struct auth_request a;
	struct scram_keys keys;
	struct ipc_reader r;
	const uint8_t *am, *proof;
	uint8_t sig[32];
	size_t am_len = 0, proof_len = 0;
	uint64_t delay;
	const char *why;

	ipc_reader_init(&r, msg);
	if (auth_request_read(&r, &a) < 0) {
		auth_request_free(&a);
		log_error(NULL, "event=bad-auth-request");
		return;
	}
	am = ipc_get_bytes(&r, &am_len);
	proof = ipc_get_bytes(&r, &proof_len);
	if (ipc_reader_done(&r) < 0) {
		log_error(NULL, "event=bad-auth-request");
		auth_request_free(&a);
		return;
	}
	if (authlimit_banned(l->limits, a.ip, clock_wall_ms()) > 0) {
		log_failure(&a, "banned");
		reply(ctx, peer, msg->reqid, 2, NULL, NULL, 0, 0, NULL, 0, 0);
		auth_request_free(&a);
		return;
	}
	delay =
	    authlimit_delay(l->limits, a.ip, account_of(&a), clock_wall_ms());
	why = scram_keys_for(l, &a, &keys);
	if (why == NULL &&
	    password_scram_check(&keys, am, am_len, proof, proof_len, sig)) {
		authlimit_success(l->limits, a.ip, a.key, clock_wall_ms());
		log_info(NULL,
		         "event=auth-ok ip=%s user=%s service=%s "
		         "mech=SCRAM-SHA-256",
		         a.ip, a.key, a.service);
		reply(ctx, peer, msg->reqid, 0, a.key, NULL, 0, 0, sig,
		      sizeof(sig), delay);
	} else {
		log_failure(&a, why != NULL ? why : "password");
		count_failure(l, &a, ctx->cfg);
		reply(ctx, peer, msg->reqid, 1, NULL, NULL, 0, 0, NULL, 0,
		      delay);
	}
	OPENSSL_cleanse(&keys, sizeof(keys));
	auth_request_free(&a);
}

/* ---- recipients and senders (SMTP) ---- */

enum rcpt_result {
	RCPT_OK,
	RCPT_UNKNOWN,
	RCPT_RELAY,
	RCPT_DISABLED,
	RCPT_TEMP
};

/* Where one recipient goes: its final addresses, how each is reached
 * (IPC_RCPT_*) and the sender to use for it (SRS) or NULL. */
struct rcpt_finals {
	char **addr;
	uint32_t *how;
	char **sender;
	size_t n;
};

static void
rcpt_finals_clear(struct rcpt_finals *f)
{
	directory_strings_free(&f->addr, f->n);
	for (size_t i = 0; f->sender != NULL && i < f->n; i++)
		free(f->sender[i]);
	free(f->sender);
	free(f->how);
	memset(f, 0, sizeof(*f));
}

/* One final address the caller owns (not an alias expansion). */
static void
rcpt_finals_one(struct rcpt_finals *f, const char *addr, uint32_t how)
{
	f->addr = xcalloc(1, sizeof(char *));
	f->addr[0] = xstrdup(addr);
	f->how = xcalloc(1, sizeof(uint32_t));
	f->how[0] = how;
	f->n = 1;
}

static void
rcpt_reply(struct ipc_peer *peer, uint32_t reqid, enum rcpt_result r,
           const struct rcpt_finals *f)
{
	struct buf b;

	buf_init(&b, 0);
	ipc_put_u32(&b, r);
	ipc_put_u32(&b, (uint32_t)f->n);
	for (size_t i = 0; i < f->n; i++) {
		ipc_put_str(&b, f->addr[i]);
		ipc_put_u32(&b, f->how[i]);
		ipc_put_str(&b, f->sender != NULL && f->sender[i] != NULL
		                    ? f->sender[i]
		                    : "");
	}
	if (ipc_send(peer, IPC_MSG_RCPT_REPLY, reqid, -1, b.data, b.len) < 0)
		log_error(NULL, "event=rcpt-reply-too-large n=%zu", f->n);
	buf_free(&b);
}

/* Is domain (the A-label) one of ours? 1 yes, 0 no, -1 error. */
static int
domain_local(struct lookup *l, const char *domain)
{
	char *error = NULL;
	int rc = directory_domain_exists(l->dir, domain, &error);

	if (rc < 0) {
		log_error(NULL, "event=directory-error error=%s", error);
		free(error);
	}
	return rc;
}

/* A user that exists but is suspended, when inbound mail for it is to be
 * refused. */
static bool
user_refuses_mail(struct lookup *l, const struct config *cfg,
                  const char *address)
{
	struct dir_user u;
	char *error = NULL;
	bool refuse = false;

	if (cfg->suspended_inbound == 0)
		return false;
	memset(&u, 0, sizeof(u));
	if (directory_user_get(l->dir, address, &u, &error) > 0)
		refuse = u.suspended;
	free(error);
	dir_user_clear(&u);
	return refuse;
}

/* Today for SRS: days since the epoch. */
static uint64_t
srs_today(void)
{
	return (uint64_t)time(NULL) / 86400;
}

/* A bounce to one of our SRS addresses: back to the original sender (or
 * the first forwarder), forwarded from here. RCPT_UNKNOWN when it is not
 * one we made or has expired (never relayed). */
static enum rcpt_result
rcpt_srs_reverse(struct lookup *l, const struct address *addr,
                 struct rcpt_finals *f)
{
	char orig[ADDRESS_MAX + 1];
	enum srs_reverse_result r =
	    srs_reverse(&l->srs, addr->local, srs_today(), orig, sizeof(orig));

	if (r != SRS_OK) {
		log_warn(NULL, "event=srs-refused address=%s@%s reason=%s",
		         addr->local, addr->domain,
		         r == SRS_BAD_HASH  ? "hash"
		         : r == SRS_EXPIRED ? "expired"
		                            : "malformed");
		return RCPT_UNKNOWN;
	}
	rcpt_finals_one(f, orig, IPC_RCPT_FORWARDED);
	return RCPT_OK;
}

static enum rcpt_result
rcpt_resolve(struct lookup *l, const struct config *cfg,
             const struct address *addr, bool authenticated,
             struct rcpt_finals *f)
{
	struct address base = *addr;
	char key[ADDRESS_MAX * 4 + 2], *error = NULL;
	int rc;

	if ((rc = domain_local(l, addr->domain)) < 0)
		return RCPT_TEMP;
	if (rc == 0) {
		/* Not ours: only a logged-in user may send there. */
		if (!authenticated)
			return RCPT_RELAY;
		address_key(addr, key, sizeof(key));
		rcpt_finals_one(f, key, 0);
		return RCPT_OK;
	}
	if (l->srs.n > 0 && srs_is_srs(addr->local))
		return rcpt_srs_reverse(l, addr, f);
	address_strip_subaddress(&base, cfg->subaddress_separator);
	address_key(&base, key, sizeof(key));
	rc = directory_resolve(l->dir, key, &f->addr, &f->n, &error);
	if (rc < 0) {
		log_error(NULL, "event=resolve-failed address=%s error=%s", key,
		          error);
		free(error);
		return RCPT_TEMP;
	}
	if (rc == 0)
		return RCPT_UNKNOWN;
	f->how = xcalloc(f->n, sizeof(uint32_t));
	for (size_t i = 0; i < f->n; i++) {
		const char *at = strrchr(f->addr[i], '@');
		bool local = at != NULL && domain_local(l, at + 1) > 0;

		/* An external address reached through one of our domains:
		 * an alias forwards it. */
		f->how[i] = local ? IPC_RCPT_LOCAL : IPC_RCPT_FORWARDED;
		if (local && user_refuses_mail(l, cfg, f->addr[i])) {
			rcpt_finals_clear(f);
			return RCPT_DISABLED;
		}
	}
	return RCPT_OK;
}

/* The senders of forwarded recipients, rewritten with SRS (RFC 7208
 * §1.2.3 leaves forwarders this choice) unless the sender is <> or one
 * of our own domains, which SPF already allows from here. The rewritten
 * address is at srs_domain, or else at the recipient's (our) domain. */
static void
rcpt_srs_senders(struct lookup *l, const struct config *cfg,
                 const struct address *rcpt, const char *mail_from,
                 struct rcpt_finals *f)
{
	const char *at = strrchr(mail_from, '@'), *why;
	char srs[ADDRESS_MAX + 1];
	bool any = false;

	for (size_t i = 0; i < f->n; i++)
		any |= (f->how[i] & IPC_RCPT_FORWARDED) != 0;
	if (!any || l->srs.n == 0 || at == NULL || at[1] == '\0' ||
	    domain_local(l, at + 1) != 0)
		return;
	if (srs_forward(&l->srs, mail_from,
	                cfg->srs_domain[0] != '\0' ? cfg->srs_domain
	                                           : rcpt->domain,
	                srs_today(), srs, sizeof(srs), &why) < 0) {
		/* Forwarded as it is: SPF may fail at the destination. */
		log_warn(NULL, "event=srs-failed sender=<%s> reason=%s",
		         mail_from, why);
		return;
	}
	if (strrchr(srs, '@') - srs > ADDRESS_LOCAL_MAX) {
		/* A bounce to it would not pass our own RCPT (RFC 5321
		 * 4.5.3.1.1: 64 octets of local part): as it is, too. */
		log_warn(NULL,
		         "event=srs-failed sender=<%s> "
		         "reason=local-part-too-long",
		         mail_from);
		return;
	}
	f->sender = xcalloc(f->n, sizeof(char *));
	for (size_t i = 0; i < f->n; i++)
		if (f->how[i] & IPC_RCPT_FORWARDED)
			f->sender[i] = xstrdup(srs);
}

/* RFC 5321 4.5.1: <postmaster> with no domain must be accepted: it is the
 * postmaster of our first domain. */
static int
rcpt_postmaster(struct lookup *l, struct address *addr)
{
	char **domains = NULL, *error = NULL;
	size_t n = 0;

	if (directory_domain_list(l->dir, &domains, &n, &error) < 0 || n == 0) {
		free(error);
		directory_strings_free(&domains, n);
		return -1;
	}
	memset(addr, 0, sizeof(*addr));
	snprintf(addr->local, sizeof(addr->local), "postmaster");
	snprintf(addr->domain, sizeof(addr->domain), "%s", domains[0]);
	directory_strings_free(&domains, n);
	return 0;
}

static void
rcpt_check(struct child_ctx *ctx, struct ipc_peer *peer, struct ipc_msg *msg)
{
	struct lookup *l = ctx->role;
	struct ipc_reader r;
	struct address addr;
	struct rcpt_finals f = {0};
	char *text, *mail_from;
	uint32_t authenticated;
	const char *why;
	enum rcpt_result res;

	ipc_reader_init(&r, msg);
	text = ipc_get_str(&r);
	authenticated = ipc_get_u32(&r);
	mail_from = ipc_get_str(&r);
	if (ipc_reader_done(&r) < 0 || text == NULL || mail_from == NULL) {
		log_error(NULL, "event=bad-rcpt-request");
		free(text);
		free(mail_from);
		return;
	}
	if (strcasecmp(text, "postmaster") == 0)
		res = rcpt_postmaster(l, &addr) == 0
		          ? rcpt_resolve(l, ctx->cfg, &addr, authenticated, &f)
		          : RCPT_TEMP;
	else if (address_parse(text, strlen(text), &addr, &why) < 0)
		res = RCPT_UNKNOWN;
	else
		res = rcpt_resolve(l, ctx->cfg, &addr, authenticated, &f);
	if (res == RCPT_OK)
		rcpt_srs_senders(l, ctx->cfg, &addr, mail_from, &f);
	rcpt_reply(peer, msg->reqid, res, &f);
	rcpt_finals_clear(&f);
	free(text);
	free(mail_from);
}

/* 1 suspended, 0 not (or no such user: the login said otherwise), -1
 * directory error (logged). */
static int
user_suspended(struct lookup *l, const char *user)
{
	struct dir_user u;
	char *error = NULL;
	int found;

	memset(&u, 0, sizeof(u));
	found = directory_user_get(l->dir, user, &u, &error);
	if (found < 0) {
		log_error(NULL, "event=directory-error error=%s", error);
		free(error);
		return -1;
	}
	found = found > 0 && u.suspended ? 1 : 0;
	dir_user_clear(&u);
	return found;
}

static void
sender_check(struct child_ctx *ctx, struct ipc_peer *peer, struct ipc_msg *msg)
{
	struct lookup *l = ctx->role;
	struct ipc_reader r;
	struct address addr;
	char *user, *text, key[ADDRESS_MAX * 4 + 2], *error = NULL;
	const char *why;
	uint32_t result = 1;
	int rc;
	struct buf b;

	ipc_reader_init(&r, msg);
	user = ipc_get_str(&r);
	text = ipc_get_str(&r);
	if (ipc_reader_done(&r) < 0 || user == NULL || text == NULL) {
		log_error(NULL, "event=bad-sender-request");
		goto out;
	}
	if (address_parse(text, strlen(text), &addr, &why) == 0) {
		address_key(&addr, key, sizeof(key));
		rc = directory_sender_allowed(l->dir, user, key, &error);
		if (rc < 0) {
			log_error(NULL, "event=directory-error error=%s",
			          error);
			free(error);
			result = 2;
		} else {
			result = rc > 0 ? 0 : 1;
		}
	}
	/* A user suspended after logging in sends nothing more in that
	 * session either (the sending limits suspend users that way). */
	if (result == 0 && (rc = user_suspended(l, user)) != 0) {
		result = rc < 0 ? 2 : 1;
		if (rc > 0)
			log_notice(NULL,
			           "event=sender-refused user=%s sender=%s "
			           "reason=suspended",
			           user, text);
	} else if (result == 1) {
		log_notice(NULL, "event=sender-refused user=%s sender=%s", user,
		           text);
	}
	buf_init(&b, 0);
	ipc_put_u32(&b, result);
	ipc_send(peer, IPC_MSG_SENDER_REPLY, msg->reqid, -1, b.data, b.len);
	buf_free(&b);
out:
	free(user);
	free(text);
}

/* ---- suspensions (queue) ---- */

/* The queue saw the user go over the sending limits: suspend the user
 * (no more logins, no more MAIL FROM) until `tern user resume`. */
static void
user_suspend(struct child_ctx *ctx, struct ipc_msg *msg)
{
	struct lookup *l = ctx->role;
	struct ipc_reader r;
	struct address addr;
	struct dir_user u;
	char *user, *reason, key[ADDRESS_MAX * 4 + 2], *error = NULL;
	const char *why;
	int found;

	ipc_reader_init(&r, msg);
	user = ipc_get_str(&r);
	reason = ipc_get_str(&r);
	if (ipc_reader_done(&r) < 0 || user == NULL || reason == NULL ||
	    address_parse(user, strlen(user), &addr, &why) < 0) {
		log_error(NULL, "event=bad-suspend-request");
		goto out;
	}
	address_key(&addr, key, sizeof(key));
	memset(&u, 0, sizeof(u));
	found = directory_user_get(l->dir, key, &u, &error);
	if (found > 0 && !u.suspended)
		found =
		    directory_user_set_suspended(l->dir, key, true, &error) < 0
		        ? -1
		        : 1;
	if (found < 0)
		log_error(NULL,
		          "event=user-suspend-failed user=%s reason=%s "
		          "error=%s",
		          key, reason, error);
	else if (found == 0)
		log_error(NULL,
		          "event=user-suspend-failed user=%s reason=%s "
		          "error=%s",
		          key, reason, "no such user");
	else
		log_warn(NULL, "event=user-suspended user=%s reason=%s", key,
		         reason);
	free(error);
	dir_user_clear(&u);
out:
	free(user);
	free(reason);
}

/* ---- role wiring ---- */

static const struct ipc_rule *
lookup_peer_rules(const char *peer)
{
	if (strcmp(peer, "front") == 0)
		return front_rules;
	/* queue asks where a DSN's recipient (a message's sender) lives,
	 * has users over the sending limits suspended, and has its own
	 * messages (DSNs, reports) signed. */
	if (strcmp(peer, "queue") == 0)
		return queue_rules;
	return NULL;
}

static void
lookup_peer_message(struct child_ctx *ctx, struct child_link *link,
                    struct ipc_msg *msg)
{
	if (ctx->stopping)
		return;
	switch (msg->type) {
	case IPC_MSG_AUTH_PASSWORD:
		auth_password(ctx, link->peer, msg);
		break;
	case IPC_MSG_AUTH_SCRAM_PARAMS:
		auth_scram_params(ctx, link->peer, msg);
		break;
	case IPC_MSG_AUTH_SCRAM_CHECK:
		auth_scram_check(ctx, link->peer, msg);
		break;
	case IPC_MSG_RCPT_CHECK:
		rcpt_check(ctx, link->peer, msg);
		break;
	case IPC_MSG_SENDER_CHECK:
		sender_check(ctx, link->peer, msg);
		break;
	case IPC_MSG_USER_SUSPEND:
		/* Only queue's rules let it through; checked again here. */
		if (strcmp(link->name, "queue") == 0)
			user_suspend(ctx, msg);
		break;
	case IPC_MSG_DKIM_KEYS:
		lookup_dkim_keys(ctx->cfg->data_dir, link->peer, msg);
		break;
	case IPC_MSG_DKIM_SIGN:
		lookup_dkim_sign(ctx->cfg->data_dir, link->peer, msg);
		break;
	default:
		break;
	}
}

static int
lookup_open(struct child_ctx *ctx, char **error_r)
{
	struct lookup *l = ctx->role;
	const struct config *cfg = ctx->cfg;
	struct authlimit_policy ap = {
	    .max_failures = cfg->auth_max_failures,
	    .window_ms = cfg->auth_failure_window_ms,
	    .ban_ms = cfg->auth_ban_time_ms,
	    .delay_base_ms = 250,
	    .delay_max_ms = cfg->auth_delay_max_ms,
	    .trusted = (const char *const *)cfg->auth_trusted_networks,
	    .ntrusted = cfg->nauth_trusted_networks,
	};
	char *target, *state;

	password_policy_from_config(cfg, &l->policy);
	target = cfg->directory_connect[0] != '\0'
	             ? xstrdup(cfg->directory_connect)
	             : xasprintf("%s/directory.db", cfg->data_dir);
	l->dir = directory_open((enum sql_backend)cfg->directory_backend,
	                        target, true, error_r);
	free(target);
	if (l->dir == NULL)
		return -1;
	state = xasprintf("%s/state.db", cfg->data_dir);
	l->limits = authlimit_open(state, &ap, error_r);
	free(state);
	if (l->limits == NULL) {
		directory_close(&l->dir);
		return -1;
	}
	return 0;
}

/* The SRS secrets (made at the first start). Without them forwarding
 * still works, unrewritten: said loudly, as SPF will fail for it. */
static void
lookup_srs_load(struct lookup *l, const struct config *cfg)
{
	char *path, *error = NULL;
	struct srs_keys keys;

	OPENSSL_cleanse(&l->srs, sizeof(l->srs));
	if (!cfg->srs)
		return;
	path = xasprintf("%s/srs.keys", cfg->data_dir);
	if (srs_keys_load(path, true, &keys, &error) < 0) {
		log_error(NULL, "event=srs-keys-failed error=%s action=no-srs",
		          error);
		free(error);
	} else {
		l->srs = keys;
	}
	OPENSSL_cleanse(&keys, sizeof(keys));
	free(path);
}

static int
lookup_start(struct child_ctx *ctx, char **error_r)
{
	struct lookup *l = xcalloc(1, sizeof(*l));

	ctx->role = l;
	/* Argon2 verifies allocate argon2_memory (64 MiB by default) per
	 * login. A fixed mmap threshold makes every such block a mapping of
	 * its own, unmapped when freed; glibc's adaptive threshold would
	 * otherwise move it to the heap after the first free and keep the
	 * largest one resident for good. */
	(void)mallopt(M_MMAP_THRESHOLD, 1024 * 1024);
	if (RAND_bytes(l->scram_secret, sizeof(l->scram_secret)) != 1) {
		*error_r = xstrdup("no random bytes for the SCRAM secret");
		return -1;
	}
	lookup_srs_load(l, ctx->cfg);
	if (lookup_open(ctx, error_r) < 0)
		return -1;
	{
		long cpus = sysconf(_SC_NPROCESSORS_ONLN);

		l->pool =
		    workpool_new(ctx->base, cpus < 1 ? 1
		                            : cpus > LOOKUP_AUTH_THREADS_MAX
		                                ? LOOKUP_AUTH_THREADS_MAX
		                                : (unsigned)cpus);
	}
	return 0;
}

/* Limits and the backend may have changed: open both again, keep the old
 * ones if the new ones do not open. */
static void
lookup_reload(struct child_ctx *ctx, const struct config *old)
{
	struct lookup *l = ctx->role, saved = *l;
	char *error = NULL;

	(void)old;
	if (lookup_open(ctx, &error) < 0) {
		log_error(NULL,
		          "event=reload-failed error=%s "
		          "action=keeping-old-directory",
		          error);
		free(error);
		l->dir = saved.dir;
		l->limits = saved.limits;
		l->policy = saved.policy;
		return;
	}
	directory_close(&saved.dir);
	authlimit_close(&saved.limits);
	lookup_srs_load(l, ctx->cfg);
	OPENSSL_cleanse(&saved, sizeof(saved));
}

static void
lookup_message(struct child_ctx *ctx, struct ipc_msg *msg)
{
	(void)ctx;
	log_warn(NULL, "event=unexpected-message type=%u", msg->type);
}

static void
lookup_shutdown(struct child_ctx *ctx)
{
	struct lookup *l = ctx->role;

	/* Password checks running finish (their answers are dropped with
	 * the queued ones); nothing else is in flight but delayed answers,
	 * which front no longer needs. */
	workpool_free(&l->pool);
	directory_close(&l->dir);
	authlimit_close(&l->limits);
	child_exit(ctx);
}

const struct role_ops role_lookup = {
    .name = "lookup",
    .user = lookup_user,
    .chroot = false,
    .start = lookup_start,
    .message = lookup_message,
    .reload = lookup_reload,
    .shutdown = lookup_shutdown,
    .peer_rules = lookup_peer_rules,
    .peer_message = lookup_peer_message,
};
