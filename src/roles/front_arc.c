/* ARC sealing (RFC 8617 §5.1) of mail an alias of ours forwards to an
 * external address, so that the destination can see what we saw (SPF,
 * DKIM, DMARC before forwarding) when our forwarding breaks SPF or a
 * list-style change breaks DKIM. Split like DKIM signing: a worker
 * canonicalizes and hashes, lookup signs the AMS digest, then the seal
 * digest (which covers the AMS), and the three fields go with the
 * envelope for the forwarded copies only (queue puts them on top).
 * SECURITY: the message is untrusted; src/mailauth parses it with its
 * bounds. A message that cannot be sealed is still forwarded (unsealed,
 * logged): sealing is a courtesy to the destination, not a condition. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
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
#include "mailauth/arc.h"
#include "roles/front_arc.h"
#include "roles/front_conn.h"

/* Keys a domain may list (lookup answers at most as many). */
#define ARC_KEYS_MAX 8

struct front_arc {
	struct front_conn *c;
	front_arc_done_fn *done;
	int fd;
	uint8_t *map; /* the spool file, mapped read-only */
	size_t len;
	char domain[ADDRESS_DOMAIN_MAX + 1];
	char *selector;
	char *authres;
	int chain;
	struct arc_sealer *sealer;
	const char *why; /* why the worker could not begin, or NULL */
	bool sealed_ams; /* the AMS signature is in: the next is the seal's */
	bool busy;       /* a worker job is out */
	bool orphan;     /* the connection went away while busy */
};

static void
arc_free(struct front_arc *a)
{
	arc_sealer_free(&a->sealer);
	if (a->map != NULL)
		munmap(a->map, a->len);
	if (a->fd >= 0)
		close(a->fd);
	free(a->selector);
	free(a->authres);
	free(a);
}

/* Give the result to the session and forget the state. */
static void
arc_finish(struct front_conn *c, const char *fields, const char *why)
{
	struct front_arc *a = c->arc;

	if (why != NULL)
		log_warn(c->id, "event=arc-unsealed domain=%s reason=%s",
		         a->domain, why);
	else
		log_info(c->id, "event=arc-sealed domain=%s selector=%s i=%u",
		         a->domain, a->selector,
		         arc_sealer_instance(a->sealer));
	c->arc = NULL;
	a->done(c, fields != NULL ? fields : "");
	arc_free(a);
}

/* Ask lookup to sign one digest with the chosen key. */
static void
ask_signature(struct front_conn *c, const uint8_t *digest, size_t len)
{
	struct front_arc *a = c->arc;
	struct buf b;

	buf_init(&b, 0);
	ipc_put_str(&b, a->domain);
	ipc_put_u32(&b, 1);
	ipc_put_str(&b, a->selector);
	ipc_put_u32(&b, DKIM_ALG_RSA_SHA256);
	ipc_put_bytes(&b, digest, len);
	conn_request(c, "lookup", IPC_MSG_DKIM_SIGN, &b);
}

/* ---- step 2 (worker): the new set's AAR and the AMS digest ---- */

static void
begin_job(void *arg)
{
	struct front_arc *a = arg;
	struct stat sb;
	struct arc_seal_params p = {
	    .domain = a->domain,
	    .selector = a->selector,
	    .algorithm = DKIM_ALG_RSA_SHA256,
	    .authres = a->authres,
	    .chain = (enum arc_status)a->chain,
	    .headers = NULL,
	    .timestamp = time(NULL),
	};

	if (fstat(a->fd, &sb) < 0 || sb.st_size <= 0) {
		a->why = "empty message";
		return;
	}
	a->len = (size_t)sb.st_size;
	a->map = mmap(NULL, a->len, PROT_READ, MAP_PRIVATE, a->fd, 0);
	if (a->map == MAP_FAILED) {
		a->map = NULL;
		a->why = "cannot map the message";
		return;
	}
	if (arc_seal_begin(a->map, a->len, &p, &a->sealer, &a->why) < 0)
		a->sealer = NULL;
}

static void
begin_done(void *arg)
{
	struct front_arc *a = arg;
	const uint8_t *d;
	size_t dlen;

	a->busy = false;
	if (a->orphan) {
		arc_free(a);
		return;
	}
	if (a->sealer == NULL) {
		arc_finish(a->c, NULL, a->why != NULL ? a->why : "cannot seal");
		return;
	}
	d = arc_sealer_ams_digest(a->sealer, &dlen);
	ask_signature(a->c, d, dlen);
}

/* ---- step 1: lookup's keys ---- */

void
front_arc_keys_reply(struct front_conn *c, struct ipc_reader *r)
{
	struct front_arc *a = c->arc;
	uint32_t n = ipc_get_u32(r);

	if (a == NULL)
		return;
	/* RFC 8617 knows rsa-sha256 only: the domain's RSA key. */
	for (uint32_t i = 0; i < n && i < ARC_KEYS_MAX && !r->error; i++) {
		char *sel = ipc_get_str(r);
		uint32_t alg = ipc_get_u32(r);

		if (sel != NULL && alg == DKIM_ALG_RSA_SHA256 &&
		    a->selector == NULL)
			a->selector = sel;
		else
			free(sel);
	}
	if (ipc_reader_done(r) < 0 || n > ARC_KEYS_MAX) {
		arc_finish(c, NULL, "bad answer from lookup");
		return;
	}
	if (a->selector == NULL) {
		arc_finish(c, NULL, "no RSA DKIM key for the domain");
		return;
	}
	a->busy = true;
	workpool_submit(c->front->pool, NULL, begin_job, begin_done, a);
}

/* ---- steps 3 and 4: the AMS signature, then the seal's ---- */

void
front_arc_signatures_reply(struct front_conn *c, struct ipc_reader *r)
{
	struct front_arc *a = c->arc;
	uint32_t n = ipc_get_u32(r);
	const uint8_t *sig = NULL, *d;
	size_t slen = 0, dlen;
	const char *why = NULL;
	char *fields;

	if (a == NULL)
		return;
	if (n == 1)
		sig = ipc_get_bytes(r, &slen);
	if (ipc_reader_done(r) < 0 || n != 1 || sig == NULL || slen == 0) {
		arc_finish(c, NULL, "lookup could not sign");
		return;
	}
	if (!a->sealed_ams) {
		if (arc_seal_ams(a->sealer, sig, slen, &why) < 0) {
			arc_finish(c, NULL, why);
			return;
		}
		a->sealed_ams = true;
		d = arc_sealer_seal_digest(a->sealer, &dlen);
		ask_signature(c, d, dlen);
		return;
	}
	fields = arc_seal_finish(a->sealer, sig, slen, &why);
	arc_finish(c, fields, fields == NULL ? why : NULL);
	free(fields);
}

/* ---- the session's side ---- */

void
front_arc_start(struct front_conn *c, int spool_fd, const char *domain,
                const char *authres, int chain, front_arc_done_fn *done)
{
	struct front_arc *a = xcalloc(1, sizeof(*a));
	struct buf b;

	a->c = c;
	a->done = done;
	a->fd = dup(spool_fd);
	a->chain = chain;
	a->authres = xstrdup(authres);
	snprintf(a->domain, sizeof(a->domain), "%s", domain);
	c->arc = a;
	if (a->fd < 0) {
		arc_finish(c, NULL, strerror(errno));
		return;
	}
	buf_init(&b, 0);
	ipc_put_str(&b, a->domain);
	conn_request(c, "lookup", IPC_MSG_DKIM_KEYS, &b);
}

void
front_arc_failed(struct front_conn *c)
{
	if (c->arc != NULL)
		arc_finish(c, NULL, "lookup unavailable");
}

void
front_arc_abandon(struct front_conn *c)
{
	struct front_arc *a = c->arc;

	if (a == NULL)
		return;
	c->arc = NULL;
	if (a->busy)
		a->orphan = true; /* the job's done function frees it */
	else
		arc_free(a);
}
