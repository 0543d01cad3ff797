/* DKIM signing of submitted mail, split so that the private keys never
 * leave lookup: a worker reads the From: domain from the spool file, lookup
 * says which keys that domain has, a worker canonicalizes and hashes the
 * message for each, lookup signs the digests, and the DKIM-Signature
 * fields go with the envelope (queue puts them before the message).
 * SECURITY: the message is the authenticated user's, still untrusted
 * input; src/mail and src/mailauth parse it with their bounds. A message
 * that cannot be signed is still accepted (unsigned, logged), as a relay
 * outage must not lose mail. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/ipc.h"
#include "core/log.h"
#include "core/workpool.h"
#include "core/xmalloc.h"
#include "mail/address.h"
#include "mail/header.h"
#include "mailauth/dkim.h"
#include "roles/front_conn.h"
#include "roles/front_sign.h"
#include "smtp/server.h"

#define SIGN_KEYS_MAX 8

struct sign_key {
	char *selector;
	enum dkim_algorithm alg;
	struct dkim_signer *signer;
	char *field; /* the finished DKIM-Signature field */
};

struct front_sign {
	struct front_conn *c;
	char conn_id[20];
	front_sign_done_fn *done;
	int fd;
	uint8_t *map; /* the spool file, mapped read-only */
	size_t len;
	char domain[ADDRESS_DOMAIN_MAX + 1]; /* From:'s, A-label */
	char from[ADDRESS_MAX * 4 + 2];      /* the From: address */
	size_t nfrom;                        /* From: fields seen */
	struct sign_key keys[SIGN_KEYS_MAX];
	size_t nkeys;
	bool busy;   /* a worker job is out */
	bool orphan; /* the connection went away while busy */
};

static void
sign_free(struct front_sign *s)
{
	for (size_t i = 0; i < s->nkeys; i++) {
		free(s->keys[i].selector);
		dkim_signer_free(&s->keys[i].signer);
		free(s->keys[i].field);
	}
	if (s->map != NULL)
		munmap(s->map, s->len);
	if (s->fd >= 0)
		close(s->fd);
	free(s);
}

/* The logged-in user whose message this is. */
static const char *
sign_user(const struct front_conn *c)
{
	const char *u = c->smtp != NULL ? smtp_server_auth_user(c->smtp) : NULL;

	return u != NULL ? u : "";
}

/* The message is refused (From: check): no signing. */
static void
sign_refuse(struct front_conn *c, const char *why)
{
	struct front_sign *s = c->sign;

	log_notice(c->id, "event=from-refused from=<%s> user=%s reason=%s",
	           s->from, sign_user(c), why);
	c->sign = NULL;
	s->done(c, "", why);
	sign_free(s);
}

/* Give the result to the session and forget the state. */
static void
sign_finish(struct front_conn *c, const char *why)
{
	struct front_sign *s = c->sign;
	struct buf out;

	buf_init(&out, 0);
	for (size_t i = 0; i < s->nkeys; i++)
		if (s->keys[i].field != NULL)
			buf_append_str(&out, s->keys[i].field);
	if (why != NULL)
		log_warn(c->id, "event=dkim-unsigned domain=%s reason=%s",
		         s->domain[0] != '\0' ? s->domain : "-", why);
	else
		log_info(c->id, "event=dkim-signed domain=%s signatures=%zu",
		         s->domain, s->nkeys);
	c->sign = NULL;
	s->done(c, buf_cstr(&out) != NULL ? (const char *)out.data : "", NULL);
	buf_free(&out);
	sign_free(s);
}

/* ---- step 1 (worker): the From: domain ---- */

static void
from_domain_job(void *arg)
{
	struct front_sign *s = arg;
	struct stat sb;
	char domain[ADDRESS_DOMAIN_MAX * 4 + 1];

	if (fstat(s->fd, &sb) < 0 || sb.st_size <= 0)
		return;
	s->len = (size_t)sb.st_size;
	s->map = mmap(NULL, s->len, PROT_READ, MAP_PRIVATE, s->fd, 0);
	if (s->map == MAP_FAILED) {
		s->map = NULL;
		return;
	}
	/* Exactly one From: field with exactly one address (RFC 5322). */
	if (header_single_from(s->map, s->len, &s->nfrom, s->from,
	                       sizeof(s->from), domain, sizeof(domain)) < 0 ||
	    address_domain_normalize(domain, strlen(domain), s->domain, NULL) <
	        0) {
		s->from[0] = '\0';
		s->domain[0] = '\0';
	}
}

static void
from_domain_done(void *arg)
{
	struct front_sign *s = arg;
	struct front_conn *c = s->c;
	struct buf b;

	s->busy = false;
	if (s->orphan) {
		sign_free(s);
		return;
	}
	/* RFC 6409 / the submission policy: the From: header names one
	 * address the user may send as (the envelope sender was checked at
	 * MAIL FROM the same way). */
	if (s->map == NULL || s->nfrom == 0) {
		/* Nothing to check (a message without From: is not
		 * refused here) and nothing to sign for. */
		sign_finish(c, "no From address");
		return;
	}
	if (s->domain[0] == '\0' || s->from[0] == '\0') {
		sign_refuse(c, "From: must be one address you may send as");
		return;
	}
	buf_init(&b, 0);
	ipc_put_str(&b, sign_user(c));
	ipc_put_str(&b, s->from);
	conn_request(c, "lookup", IPC_MSG_SENDER_CHECK, &b);
}

void
front_sign_from_reply(struct front_conn *c, struct ipc_reader *r)
{
	struct front_sign *s = c->sign;
	uint32_t result = ipc_get_u32(r);
	struct buf b;

	if (s == NULL)
		return;
	if (ipc_reader_done(r) < 0 || result > 2) {
		sign_finish(c, "bad answer from lookup");
		return;
	}
	if (result == 1) {
		sign_refuse(c, "From: header address not owned by user");
		return;
	}
	/* 2 (lookup could not tell now): not refused, as at MAIL FROM the
	 * envelope sender already passed. */
	buf_init(&b, 0);
	ipc_put_str(&b, s->domain);
	conn_request(c, "lookup", IPC_MSG_DKIM_KEYS, &b);
}

/* ---- step 2: lookup's keys; step 3 (worker): the digests ---- */

static void
digests_job(void *arg)
{
	struct front_sign *s = arg;
	time_t now = time(NULL);

	for (size_t i = 0; i < s->nkeys; i++) {
		struct dkim_sign_params p = {
		    .domain = s->domain,
		    .selector = s->keys[i].selector,
		    .algorithm = s->keys[i].alg,
		    .header_canon = DKIM_CANON_RELAXED,
		    .body_canon = DKIM_CANON_RELAXED,
		    .timestamp = now,
		};
		const char *why;

		if (dkim_sign_begin(s->map, s->len, &p, &s->keys[i].signer,
		                    &why) < 0)
			s->keys[i].signer = NULL;
	}
}

static void
digests_done(void *arg)
{
	struct front_sign *s = arg;
	struct front_conn *c = s->c;
	struct buf b;
	uint32_t n = 0;

	s->busy = false;
	if (s->orphan) {
		sign_free(s);
		return;
	}
	for (size_t i = 0; i < s->nkeys; i++)
		n += s->keys[i].signer != NULL;
	if (n == 0) {
		sign_finish(c, "message cannot be signed");
		return;
	}
	buf_init(&b, 0);
	ipc_put_str(&b, s->domain);
	ipc_put_u32(&b, n);
	for (size_t i = 0; i < s->nkeys; i++) {
		const uint8_t *d;
		size_t dlen;

		if (s->keys[i].signer == NULL)
			continue;
		d = dkim_signer_digest(s->keys[i].signer, &dlen);
		ipc_put_str(&b, s->keys[i].selector);
		ipc_put_u32(&b, (uint32_t)s->keys[i].alg);
		ipc_put_bytes(&b, d, dlen);
	}
	conn_request(c, "lookup", IPC_MSG_DKIM_SIGN, &b);
}

void
front_sign_keys_reply(struct front_conn *c, struct ipc_reader *r)
{
	struct front_sign *s = c->sign;
	uint32_t n = ipc_get_u32(r);

	if (s == NULL)
		return;
	for (uint32_t i = 0; i < n && i < SIGN_KEYS_MAX && !r->error; i++) {
		char *sel = ipc_get_str(r);
		uint32_t alg = ipc_get_u32(r);

		if (sel == NULL || (alg != DKIM_ALG_RSA_SHA256 &&
		                    alg != DKIM_ALG_ED25519_SHA256)) {
			free(sel);
			continue;
		}
		s->keys[s->nkeys].selector = sel;
		s->keys[s->nkeys].alg = (enum dkim_algorithm)alg;
		s->nkeys++;
	}
	if (ipc_reader_done(r) < 0 || n > SIGN_KEYS_MAX) {
		sign_finish(c, "bad answer from lookup");
		return;
	}
	if (s->nkeys == 0) {
		/* Not one of ours, or no keys: nothing to sign with. */
		log_debug(c->id, "event=dkim-no-keys domain=%s", s->domain);
		s->domain[0] = '\0';
		c->sign = NULL;
		s->done(c, "", NULL);
		sign_free(s);
		return;
	}
	s->busy = true;
	workpool_submit(c->front->pool, NULL, digests_job, digests_done, s);
}

/* ---- step 4: the signatures ---- */

void
front_sign_signatures_reply(struct front_conn *c, struct ipc_reader *r)
{
	struct front_sign *s = c->sign;
	uint32_t n = ipc_get_u32(r);
	size_t got = 0;

	if (s == NULL)
		return;
	for (size_t i = 0; i < s->nkeys && !r->error; i++) {
		const uint8_t *sig;
		size_t slen = 0;
		const char *why;

		if (s->keys[i].signer == NULL)
			continue;
		if (got++ >= n)
			break;
		sig = ipc_get_bytes(r, &slen);
		if (sig == NULL || slen == 0)
			continue;
		s->keys[i].field =
		    dkim_sign_finish(s->keys[i].signer, sig, slen, &why);
	}
	if (ipc_reader_done(r) < 0) {
		for (size_t i = 0; i < s->nkeys; i++)
			xfree(&s->keys[i].field);
		sign_finish(c, "bad answer from lookup");
		return;
	}
	for (size_t i = 0; i < s->nkeys; i++)
		if (s->keys[i].field == NULL) {
			sign_finish(c, "lookup could not sign");
			return;
		}
	sign_finish(c, NULL);
}

/* ---- the session's side ---- */

bool
front_sign_wanted(const struct front_conn *c, const char *auth_user)
{
	return (c->service == SERVICE_SUBMISSION ||
	        c->service == SERVICE_SUBMISSIONS) &&
	       auth_user != NULL && c->front->pool != NULL;
}

void
front_sign_start(struct front_conn *c, int spool_fd, front_sign_done_fn *done)
{
	struct front_sign *s = xcalloc(1, sizeof(*s));

	s->c = c;
	s->done = done;
	s->fd = dup(spool_fd);
	c->sign = s;
	if (s->fd < 0) {
		sign_finish(c, strerror(errno));
		return;
	}
	s->busy = true;
	workpool_submit(c->front->pool, NULL, from_domain_job, from_domain_done,
	                s);
}

void
front_sign_failed(struct front_conn *c)
{
	if (c->sign != NULL)
		sign_finish(c, "lookup unavailable");
}

void
front_sign_abandon(struct front_conn *c)
{
	struct front_sign *s = c->sign;

	if (s == NULL)
		return;
	c->sign = NULL;
	if (s->busy)
		s->orphan = true; /* the job's done function frees it */
	else
		sign_free(s);
}
