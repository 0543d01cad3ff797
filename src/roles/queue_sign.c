/* DKIM signing of queue's own messages (bounces and delay notices, DMARC
 * aggregate reports, sending-limit notices), so that they pass DMARC where
 * they arrive (RFC 7489 7.2.1.1 asks it of reports). queue_inject commits
 * them with SPOOL_FLAG_SIGN: nothing of such a message is due until this
 * module has had lookup sign it with the keys of its From: domain (or of
 * a parent domain, for MAILER-DAEMON@mail.example.org: relaxed alignment)
 * and put the DKIM-Signature fields on top, or found no key and let it go
 * unsigned. One message at a time: there are few of them.
 * SECURITY: the private keys stay in lookup (ARCHITECTURE.md invariant
 * 2); queue only hashes. The messages are queue's own, but a DSN quotes
 * the original, so header parsing keeps its bounds. */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/clock.h"
#include "core/ipc.h"
#include "core/log.h"
#include "core/xmalloc.h"
#include "mail/address.h"
#include "mail/header.h"
#include "mailauth/dkim.h"
#include "roles/queue_int.h"

#define SIGN_KEYS_MAX 8
/* lookup answers at once; past this the question is asked again. */
#define SIGN_ANSWER_MS (30 * 1000)
/* How far up a From: domain keys are looked for ("a.b.example" tries
 * itself, "b.example"): never a bare TLD. */
#define SIGN_PARENTS_MAX 4

struct sign_key {
	char *selector;
	enum dkim_algorithm alg;
	struct dkim_signer *signer;
};

static struct {
	bool active;
	char id[SPOOL_ID_SIZE];
	uint32_t reqid;
	uint64_t asked_ms;
	bool signing; /* the DKIM_SIGN question is out (else DKIM_KEYS) */
	uint8_t *map; /* the spool file */
	size_t len;
	char domain[ADDRESS_DOMAIN_MAX + 1]; /* asked about now */
	unsigned parents;                    /* labels dropped so far */
	struct sign_key keys[SIGN_KEYS_MAX];
	size_t nkeys;
} qs;

/* Forget the message; request ids keep counting, so that a late answer
 * to a question given up on is ignored. */
static void
sign_reset(void)
{
	uint32_t reqid = qs.reqid;

	for (size_t i = 0; i < qs.nkeys; i++) {
		free(qs.keys[i].selector);
		dkim_signer_free(&qs.keys[i].signer);
	}
	if (qs.map != NULL)
		munmap(qs.map, qs.len);
	memset(&qs, 0, sizeof(qs));
	qs.reqid = reqid;
}

/* The message is done with: signed (fields), or unsigned (why). */
static void
sign_finish(struct child_ctx *ctx, const char *fields, const char *why)
{
	struct queue *q = ctx->role;
	char *error = NULL;

	if (spool_sign_done(q->spool, qs.id, fields, &error) < 0) {
		/* Tried again on the next run. */
		log_error(qs.id, "event=spool-sign-failed error=%s", error);
		free(error);
	} else if (why != NULL) {
		log_notice(qs.id, "event=dkim-unsigned reason=%s", why);
	} else {
		log_info(qs.id, "event=dkim-signed domain=%s signatures=%zu",
		         qs.domain, qs.nkeys);
	}
	sign_reset();
	queue_kick(q);
}

static void
ask(struct child_ctx *ctx, uint16_t type, struct buf *b)
{
	struct ipc_peer *lookup = child_peer(ctx, "lookup");

	qs.reqid = (qs.reqid + 1) & 0x3fffffffu;
	qs.asked_ms = clock_mono_ms();
	if (lookup == NULL ||
	    ipc_send(lookup, type, qs.reqid, -1, b->data, b->len) < 0) {
		/* lookup is away: start again on a later run */
		sign_reset();
	}
	buf_free(b);
}

static void
ask_keys(struct child_ctx *ctx)
{
	struct buf b;

	buf_init(&b, 0);
	ipc_put_str(&b, qs.domain);
	qs.signing = false;
	ask(ctx, IPC_MSG_DKIM_KEYS, &b);
}

static void
sign_start(struct child_ctx *ctx, const char *id)
{
	struct queue *q = ctx->role;
	char *error = NULL, addr[ADDRESS_MAX * 4 + 2];
	char domain[ADDRESS_DOMAIN_MAX * 4 + 1];
	struct stat sb;
	size_t nfrom;
	int fd;

	qs.active = true;
	snprintf(qs.id, sizeof(qs.id), "%s", id);
	if ((fd = spool_open_message(q->spool, id, &error)) < 0) {
		log_error(id, "event=spool-read-failed error=%s", error);
		free(error);
		sign_finish(ctx, "", "unreadable");
		return;
	}
	if (fstat(fd, &sb) == 0 && sb.st_size > 0) {
		qs.len = (size_t)sb.st_size;
		qs.map = mmap(NULL, qs.len, PROT_READ, MAP_PRIVATE, fd, 0);
		if (qs.map == MAP_FAILED)
			qs.map = NULL;
	}
	close(fd);
	if (qs.map == NULL ||
	    header_single_from(qs.map, qs.len, &nfrom, addr, sizeof(addr),
	                       domain, sizeof(domain)) < 0 ||
	    address_domain_normalize(domain, strlen(domain), qs.domain, NULL) <
	        0) {
		sign_finish(ctx, "", "no single From: address");
		return;
	}
	ask_keys(ctx);
}

void
queue_sign_run(struct child_ctx *ctx)
{
	struct queue *q = ctx->role;
	char(*ids)[SPOOL_ID_SIZE] = NULL;
	char *error = NULL;
	size_t n = 0;

	if (ctx->stopping || child_peer(ctx, "lookup") == NULL)
		return;
	if (qs.active) {
		if (clock_mono_ms() - qs.asked_ms < SIGN_ANSWER_MS)
			return;
		log_warn(qs.id, "event=dkim-sign-timeout action=retry");
		sign_reset();
	}
	if (spool_sign_due(q->spool, 1, &ids, &n, &error) < 0) {
		log_error(NULL, "event=spool-sign-due-failed error=%s", error);
		free(error);
		return;
	}
	if (n > 0)
		sign_start(ctx, ids[0]);
	free(ids);
}

/* lookup's keys for qs.domain: hash for each, or look one label up. */
static void
keys_reply(struct child_ctx *ctx, struct ipc_msg *msg)
{
	struct ipc_reader r;
	struct buf b;
	uint32_t n, asked = 0;
	const char *dot;
	time_t now = time(NULL);

	ipc_reader_init(&r, msg);
	n = ipc_get_u32(&r);
	for (uint32_t i = 0; i < n && i < SIGN_KEYS_MAX && !r.error; i++) {
		char *sel = ipc_get_str(&r);
		uint32_t alg = ipc_get_u32(&r);

		if (sel == NULL || (alg != DKIM_ALG_RSA_SHA256 &&
		                    alg != DKIM_ALG_ED25519_SHA256)) {
			free(sel);
			continue;
		}
		qs.keys[qs.nkeys].selector = sel;
		qs.keys[qs.nkeys++].alg = (enum dkim_algorithm)alg;
	}
	if (ipc_reader_done(&r) < 0 || n > SIGN_KEYS_MAX) {
		sign_finish(ctx, "", "bad answer from lookup");
		return;
	}
	if (qs.nkeys == 0) {
		dot = strchr(qs.domain, '.');
		if (dot != NULL && strchr(dot + 1, '.') != NULL &&
		    ++qs.parents < SIGN_PARENTS_MAX) {
			memmove(qs.domain, dot + 1, strlen(dot + 1) + 1);
			ask_keys(ctx);
		} else {
			sign_finish(ctx, "", "no DKIM key");
		}
		return;
	}
	for (size_t i = 0; i < qs.nkeys; i++) {
		struct dkim_sign_params p = {
		    .domain = qs.domain,
		    .selector = qs.keys[i].selector,
		    .algorithm = qs.keys[i].alg,
		    .header_canon = DKIM_CANON_RELAXED,
		    .body_canon = DKIM_CANON_RELAXED,
		    .timestamp = now,
		};
		const char *why;

		if (dkim_sign_begin(qs.map, qs.len, &p, &qs.keys[i].signer,
		                    &why) < 0)
			qs.keys[i].signer = NULL;
		else
			asked++;
	}
	if (asked == 0) {
		sign_finish(ctx, "", "message cannot be signed");
		return;
	}
	buf_init(&b, 0);
	ipc_put_str(&b, qs.domain);
	ipc_put_u32(&b, asked);
	for (size_t i = 0; i < qs.nkeys; i++) {
		const uint8_t *d;
		size_t dlen;

		if (qs.keys[i].signer == NULL)
			continue;
		d = dkim_signer_digest(qs.keys[i].signer, &dlen);
		ipc_put_str(&b, qs.keys[i].selector);
		ipc_put_u32(&b, (uint32_t)qs.keys[i].alg);
		ipc_put_bytes(&b, d, dlen);
	}
	qs.signing = true;
	ask(ctx, IPC_MSG_DKIM_SIGN, &b);
}

static void
signatures_reply(struct child_ctx *ctx, struct ipc_msg *msg)
{
	struct ipc_reader r;
	struct buf out;
	uint32_t n;
	size_t got = 0;

	ipc_reader_init(&r, msg);
	n = ipc_get_u32(&r);
	buf_init(&out, 0);
	for (size_t i = 0; i < qs.nkeys && !r.error; i++) {
		const uint8_t *sig;
		size_t slen = 0;
		const char *why;
		char *field;

		if (qs.keys[i].signer == NULL)
			continue;
		if (got++ >= n)
			break;
		sig = ipc_get_bytes(&r, &slen);
		if (sig == NULL || slen == 0)
			continue;
		field = dkim_sign_finish(qs.keys[i].signer, sig, slen, &why);
		if (field != NULL)
			buf_append_str(&out, field);
		free(field);
	}
	if (ipc_reader_done(&r) < 0 || buf_cstr(&out) == NULL || out.len == 0)
		sign_finish(ctx, "", "lookup could not sign");
	else
		sign_finish(ctx, (const char *)out.data, NULL);
	buf_free(&out);
}

void
queue_sign_reply(struct child_ctx *ctx, struct ipc_msg *msg)
{
	if (!qs.active || msg->reqid != qs.reqid)
		return; /* an answer to a question given up on */
	if (msg->type == IPC_MSG_DKIM_KEYS_REPLY && !qs.signing)
		keys_reply(ctx, msg);
	else if (msg->type == IPC_MSG_DKIM_SIGNATURES && qs.signing)
		signatures_reply(ctx, msg);
}

void
queue_sign_link_down(struct child_ctx *ctx)
{
	(void)ctx;
	sign_reset();
}
