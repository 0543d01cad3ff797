/* DKIM verification (RFC 6376 §6, RFC 8301, RFC 8463): each signature up
 * to a bound, body hashes shared, keys through the mailauth DNS interface.
 * SECURITY: all of it is sender-controlled; at most DKIM_VERIFY_MAX DNS
 * queries and public-key operations, one body pass per distinct hash. */
#include "mailauth/dkim_int.h"

#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/rsa.h>

#include "core/xmalloc.h"

#define DKIM_RSA_BITS_MIN 1024
#define DKIM_RSA_BITS_FLOOR 512
#define DKIM_BODY_CHUNK 16384

struct dkim_job {
	const struct dkim_field *field;
	struct dkim_sig sig;
	struct dkim_sig_result *res;
	enum dkim_reason reason; /* DKIM_R_OK while still in the running */
	size_t body;             /* index into the body hashes */
};

struct dkim_bodyhash {
	enum dkim_canon canon;
	enum dkim_algorithm algorithm;
	uint64_t limit;
	struct dkim_body body;
	uint8_t md[EVP_MAX_MD_SIZE];
	unsigned md_len;
	bool ok;
};

static void
dkim_set(struct dkim_sig_result *res, enum dkim_result result,
         enum dkim_reason reason)
{
	res->result = result;
	res->reason = reason;
}

/* The result a reason found before the key decides. */
enum dkim_result
dkim_reason_result(enum dkim_reason reason)
{
	switch (reason) {
	case DKIM_R_OK:
		return DKIM_PASS;
	case DKIM_R_BODY_HASH:
	case DKIM_R_SIGNATURE:
	case DKIM_R_KEY_REVOKED:
	case DKIM_R_EXPIRED:
		return DKIM_FAIL;
	case DKIM_R_DNS:
	case DKIM_R_INTERNAL:
		return DKIM_TEMPERROR;
	case DKIM_R_PARTIAL_BODY:
		return DKIM_POLICY;
	default:
		return DKIM_PERMERROR;
	}
}

/* ------------------------------------------------------------ body */

/* One body hash per (canonicalization, hash, l=): signatures that agree
 * share it, and the body is read once for all of them. */
static int
dkim_bodies(const struct dkim_msg *m, struct dkim_job *jobs, size_t njobs,
            struct dkim_bodyhash *bodies, size_t *nbodies_r)
{
	size_t n = 0;

	for (size_t i = 0; i < njobs; i++) {
		struct dkim_sig *sig = &jobs[i].sig;
		uint64_t limit = sig->has_l ? sig->l : UINT64_MAX;
		size_t j;

		if (jobs[i].reason != DKIM_R_OK)
			continue;
		for (j = 0; j < n; j++)
			if (bodies[j].canon == sig->body_canon &&
			    dkim_algorithm_md(bodies[j].algorithm) ==
			        dkim_algorithm_md(sig->algorithm) &&
			    bodies[j].limit == limit)
				break;
		if (j == n) {
			bodies[n].canon = sig->body_canon;
			bodies[n].algorithm = sig->algorithm;
			bodies[n].limit = limit;
			if (dkim_body_init(&bodies[n].body, sig->body_canon,
			                   dkim_algorithm_md(sig->algorithm),
			                   limit) < 0)
				return -1;
			n++;
		}
		jobs[i].body = j;
	}
	*nbodies_r = n;
	for (size_t off = 0; m->body != NULL && off < m->body_len;) {
		size_t len = m->body_len - off;
		if (len > DKIM_BODY_CHUNK)
			len = DKIM_BODY_CHUNK;
		for (size_t j = 0; j < n; j++)
			dkim_body_update(&bodies[j].body, m->body + off, len);
		off += len;
	}
	for (size_t j = 0; j < n; j++)
		bodies[j].ok = dkim_body_final(&bodies[j].body, bodies[j].md,
		                               &bodies[j].md_len) == 0;
	return 0;
}

/* ------------------------------------------------------------- key */

enum dkim_reason
dkim_fetch_key(const struct ma_dns *dns, const struct dkim_sig *sig,
               struct dkim_key *key)
{
	struct ma_dns_answer ans;
	char name[DKIM_DOMAIN_MAX + 1];
	enum dkim_reason first = DKIM_R_KEY_SYNTAX;
	int n;

	n = snprintf(name, sizeof(name), "%s._domainkey.%s", sig->selector,
	             sig->domain);
	if (n < 0 || (size_t)n >= sizeof(name))
		return DKIM_R_DOMAIN;
	memset(&ans, 0, sizeof(ans));
	if (dns->lookup(dns->arg, name, MA_DNS_TXT, &ans) < 0 ||
	    ans.status == MA_DNS_TEMPFAIL) {
		ma_dns_answer_clear(&ans);
		return DKIM_R_DNS;
	}
	if (ans.status != MA_DNS_OK || ans.count == 0) {
		ma_dns_answer_clear(&ans);
		return DKIM_R_KEY_MISSING;
	}
	/* Several records (§3.6.2.2): the first one that is a usable key. */
	for (size_t i = 0; i < ans.count && i < MA_DNS_RR_MAX; i++) {
		enum dkim_reason r;
		if (ans.rr[i] == NULL)
			continue;
		r = dkim_key_parse(ans.rr[i],
		                   strnlen(ans.rr[i], MA_DNS_TXT_MAX), key);
		if (r == DKIM_R_OK) {
			ma_dns_answer_clear(&ans);
			return DKIM_R_OK;
		}
		if (i == 0)
			first = r;
	}
	ma_dns_answer_clear(&ans);
	return first;
}

/* Does the key fit the signature (§3.6.1, RFC 8301 §3.2)? */
enum dkim_reason
dkim_key_check(const struct dkim_key *key, const struct dkim_sig *sig,
               unsigned rsa_bits_min)
{
	bool ed = sig->algorithm == DKIM_ALG_ED25519_SHA256;
	unsigned hash = sig->algorithm == DKIM_ALG_RSA_SHA1
	                    ? DKIM_KEY_HASH_SHA1
	                    : DKIM_KEY_HASH_SHA256;

	if (ed != (key->type == DKIM_KEY_ED25519))
		return DKIM_R_KEY_TYPE;
	if ((key->hashes & hash) == 0)
		return DKIM_R_KEY_HASH;
	if (key->revoked)
		return DKIM_R_KEY_REVOKED;
	if (!ed && key->bits < rsa_bits_min)
		return DKIM_R_KEY_SIZE;
	if (key->strict &&
	    !dkim_ci_equal(sig->identity_domain, strlen(sig->identity_domain),
	                   sig->domain, strlen(sig->domain)))
		return DKIM_R_KEY_STRICT;
	return DKIM_R_OK;
}

/* ------------------------------------------------------- signature */

bool
dkim_check_signature(const struct dkim_key *key, const struct dkim_sig *sig,
                     const uint8_t *digest, size_t dlen)
{
	bool ok;

	if (key->type == DKIM_KEY_ED25519) {
		EVP_MD_CTX *ctx = EVP_MD_CTX_new();
		ok = ctx != NULL &&
		     EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, key->pkey) ==
		         1 &&
		     EVP_DigestVerify(ctx, sig->b, sig->b_len, digest, dlen) ==
		         1;
		EVP_MD_CTX_free(ctx);
	} else {
		EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(key->pkey, NULL);
		ok =
		    ctx != NULL && EVP_PKEY_verify_init(ctx) == 1 &&
		    EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) == 1 &&
		    EVP_PKEY_CTX_set_signature_md(
		        ctx, dkim_algorithm_md(sig->algorithm)) == 1 &&
		    EVP_PKEY_verify(ctx, sig->b, sig->b_len, digest, dlen) == 1;
		EVP_PKEY_CTX_free(ctx);
	}
	ERR_clear_error();
	return ok;
}

static enum dkim_reason
dkim_check_headers(const struct dkim_msg *m, size_t header_bytes,
                   const struct dkim_job *job, const struct dkim_key *key)
{
	const struct dkim_sig *sig = &job->sig;
	uint8_t digest[EVP_MAX_MD_SIZE];
	unsigned dlen = 0;
	struct buf data;
	enum dkim_reason r = DKIM_R_SIGNATURE;

	buf_init(&data, header_bytes + 64);
	if (dkim_header_data(m, sig->header_canon, sig->h, sig->h_len,
	                     job->field->data, job->field->len, sig->b_start,
	                     sig->b_end, &data) == 0 &&
	    EVP_Digest(data.data != NULL ? data.data : (const uint8_t *)"",
	               data.len, digest, &dlen,
	               dkim_algorithm_md(sig->algorithm), NULL) == 1 &&
	    dkim_check_signature(key, sig, digest, dlen))
		r = DKIM_R_OK;
	buf_free(&data);
	return r;
}

/* Steps after the body hashes: l=, key, bh=, signature. */
static void
dkim_check_job(const struct ma_dns *dns, const struct dkim_msg *m,
               size_t header_bytes, const struct dkim_limits *limits,
               struct dkim_job *job, const struct dkim_bodyhash *body)
{
	struct dkim_sig *sig = &job->sig;
	struct dkim_sig_result *res = job->res;
	struct dkim_key key;
	enum dkim_reason r;

	if (!body->ok) {
		dkim_set(res, DKIM_TEMPERROR, DKIM_R_INTERNAL);
		return;
	}
	if (sig->has_l) {
		res->length_limited = true;
		if (body->body.total < sig->l) {
			dkim_set(res, DKIM_PERMERROR, DKIM_R_LENGTH);
			return;
		}
		res->body_partial = body->body.total > sig->l;
	}
	if ((r = dkim_fetch_key(dns, sig, &key)) != DKIM_R_OK) {
		dkim_set(res, dkim_reason_result(r), r);
		return;
	}
	res->testing = key.testing;
	res->key_bits = key.bits;
	if ((r = dkim_key_check(&key, sig, limits->rsa_bits_min)) ==
	        DKIM_R_OK &&
	    (sig->bh_len != body->md_len ||
	     CRYPTO_memcmp(sig->bh, body->md, body->md_len) != 0))
		r = DKIM_R_BODY_HASH;
	if (r == DKIM_R_OK)
		r = dkim_check_headers(m, header_bytes, job, &key);
	if (r == DKIM_R_OK && res->body_partial && limits->partial_body_policy)
		r = DKIM_R_PARTIAL_BODY;
	dkim_set(res, dkim_reason_result(r), r);
	/* t=y: "not treated differently from unsigned mail" (§3.6.1). */
	if (key.testing && res->result == DKIM_FAIL)
		res->result = DKIM_NEUTRAL;
	dkim_key_clear(&key);
}

static void
dkim_limits_default(const struct dkim_limits *in, struct dkim_limits *out)
{
	if (in != NULL)
		*out = *in;
	else
		memset(out, 0, sizeof(*out));
	if (out->signatures == 0 || out->signatures > DKIM_VERIFY_MAX)
		out->signatures = DKIM_VERIFY_MAX;
	if (out->rsa_bits_min == 0)
		out->rsa_bits_min = DKIM_RSA_BITS_MIN;
	if (out->rsa_bits_min < DKIM_RSA_BITS_FLOOR)
		out->rsa_bits_min = DKIM_RSA_BITS_FLOOR;
}

/* Parse each signature and settle what needs no key: syntax, x=. */
static size_t
dkim_jobs(const struct dkim_msg *m, const struct dkim_limits *limits,
          time_t now, struct dkim_job *jobs, struct dkim_verify_result *res)
{
	static const char name[] = "DKIM-Signature";
	size_t n = 0;

	for (size_t i = 0; i < m->count; i++) {
		struct dkim_job *job = &jobs[n];
		if (!dkim_field_is(&m->fields[i], name, sizeof(name) - 1))
			continue;
		if (n == limits->signatures) {
			res->unchecked++;
			continue;
		}
		job->field = &m->fields[i];
		job->res = &res->sig[n];
		job->reason =
		    dkim_sig_parse(job->field, limits, &job->sig, job->res);
		if (job->reason == DKIM_R_OK && job->sig.has_x && now >= 0 &&
		    (uint64_t)now > job->sig.x)
			job->reason = DKIM_R_EXPIRED;
		if (job->reason != DKIM_R_OK)
			dkim_set(job->res, dkim_reason_result(job->reason),
			         job->reason);
		n++;
	}
	return n;
}

int
dkim_verify(const struct ma_dns *dns, const uint8_t *msg, size_t len,
            time_t now, const struct dkim_limits *limits,
            struct dkim_verify_result *res_r)
{
	struct dkim_limits lim;
	struct dkim_msg m;
	struct dkim_job *jobs;
	struct dkim_bodyhash *bodies;
	size_t njobs, nbodies = 0, header_bytes;

	memset(res_r, 0, sizeof(*res_r));
	dkim_limits_default(limits, &lim);
	dkim_msg_parse(msg, len, &m);
	header_bytes = m.body != NULL ? (size_t)(m.body - msg) : len;
	if (m.dkim_sigs == 0) {
		dkim_msg_clear(&m);
		return 0;
	}
	if (m.too_many) {
		/* Signed fields may lie past what was kept: one verdict. */
		res_r->count = 1;
		res_r->unchecked = m.dkim_sigs - 1;
		dkim_set(&res_r->sig[0], DKIM_PERMERROR, DKIM_R_HEADERS);
		dkim_msg_clear(&m);
		return 0;
	}
	jobs = xcalloc(lim.signatures, sizeof(*jobs));
	bodies = xcalloc(lim.signatures, sizeof(*bodies));
	njobs = dkim_jobs(&m, &lim, now, jobs, res_r);
	res_r->count = njobs;
	if (dkim_bodies(&m, jobs, njobs, bodies, &nbodies) < 0) {
		for (size_t i = 0; i < njobs; i++)
			if (jobs[i].reason == DKIM_R_OK)
				dkim_set(jobs[i].res, DKIM_TEMPERROR,
				         DKIM_R_INTERNAL);
	} else {
		for (size_t i = 0; i < njobs; i++)
			if (jobs[i].reason == DKIM_R_OK)
				dkim_check_job(dns, &m, header_bytes, &lim,
				               &jobs[i], &bodies[jobs[i].body]);
	}
	for (size_t j = 0; j < lim.signatures; j++)
		dkim_body_clear(&bodies[j].body);
	xfree(&bodies);
	xfree(&jobs);
	dkim_msg_clear(&m);
	return 0;
}
