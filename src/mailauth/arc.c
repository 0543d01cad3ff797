/* ARC chain validation (RFC 8617 §5.2): the ARC fields sorted into sets,
 * the structure, the newest AMS, every seal, oldest-pass; and the "arc"
 * method of Authentication-Results (RFC 8617 §6, RFC 8601).
 * SECURITY: fields and key records are sender-controlled; at most
 * limits->instances sets, one lookup per distinct key (two per set at
 * most) and ARC_BODIES_MAX body passes, whatever the message says. */
#include "mailauth/arc_int.h"

#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "core/xmalloc.h"

#define ARC_SHA256_LEN 32
#define ARC_BODIES_MAX 4 /* distinct (c=, l=) body hashes per message */
#define ARC_KEYS_MAX (2 * ARC_INSTANCE_MAX)
#define ARC_RSA_BITS_MIN 1024
#define ARC_RSA_BITS_FLOOR 512

static const char arc_aar_name[] = "ARC-Authentication-Results";
static const char arc_ams_name[] = "ARC-Message-Signature";
static const char arc_seal_name[] = "ARC-Seal";

/* ------------------------------------------------------------- sorting */

/* CFWS (RFC 5322 §3.2.2): WSP, CR, LF and nested comments. */
static size_t
arc_skip_cfws(const char *s, size_t len, size_t i)
{
	unsigned depth = 0;

	for (; i < len; i++) {
		char c = s[i];
		if (depth > 0) {
			if (c == '\\' && i + 1 < len)
				i++;
			else if (c == '(')
				depth++;
			else if (c == ')')
				depth--;
			continue;
		}
		if (c == '(')
			depth = 1;
		else if (c != ' ' && c != '\t' && c != '\r' && c != '\n')
			break;
	}
	return i;
}

/* position (1*2DIGIT, RFC 8617 §3.9); digits beyond the limit count as
 * too many sets, anything else is a syntax error. */
static enum arc_reason
arc_instance_value(const char *s, size_t len, unsigned limit, unsigned *i_r)
{
	uint64_t v;

	if (!dkim_parse_uint(s, len, 9, &v) || v == 0)
		return ARC_R_SYNTAX;
	if (v > limit)
		return ARC_R_TOO_MANY;
	*i_r = (unsigned)v;
	return ARC_R_OK;
}

/* arc-info = instance [CFWS] ";" authres-payload (§4.1.1). */
static enum arc_reason
arc_aar_instance(const struct dkim_field *f, unsigned limit, unsigned *i_r,
                 size_t *payload_r)
{
	const char *s = (const char *)f->data;
	size_t len = f->len, i, start;
	enum arc_reason r;

	i = arc_skip_cfws(s, len, f->value_off);
	if (i == len || s[i] != 'i')
		return ARC_R_SYNTAX;
	i = arc_skip_cfws(s, len, i + 1);
	if (i == len || s[i] != '=')
		return ARC_R_SYNTAX;
	start = i = arc_skip_cfws(s, len, i + 1);
	while (i < len && s[i] >= '0' && s[i] <= '9')
		i++;
	if ((r = arc_instance_value(s + start, i - start, limit, i_r)) !=
	    ARC_R_OK)
		return r;
	i = arc_skip_cfws(s, len, i);
	if (i == len || s[i] != ';')
		return ARC_R_SYNTAX;
	*payload_r = i + 1;
	return ARC_R_OK;
}

/* i= (and cv= for a seal) from the tag list of an AMS or AS. */
static enum arc_reason
arc_tags_instance(const struct dkim_field *f, unsigned limit, unsigned *i_r,
                  enum arc_status *cv_r, bool *cv_ok_r)
{
	const char *value = (const char *)f->data + f->value_off, *error;
	size_t len = f->len - f->value_off;
	const struct dkim_tag *i, *cv;
	struct dkim_tags tags;

	if (len >= 2 && value[len - 2] == '\r' && value[len - 1] == '\n')
		len -= 2;
	if (dkim_tags_parse(value, len, &tags, &error) < 0 ||
	    (i = dkim_tags_get(&tags, "i")) == NULL)
		return ARC_R_SYNTAX;
	if (cv_r != NULL && (cv = dkim_tags_get(&tags, "cv")) != NULL) {
		*cv_ok_r = true;
		if (dkim_ci_equal(cv->value, cv->value_len, "none", 4))
			*cv_r = ARC_NONE;
		else if (dkim_ci_equal(cv->value, cv->value_len, "pass", 4))
			*cv_r = ARC_PASS;
		else if (dkim_ci_equal(cv->value, cv->value_len, "fail", 4))
			*cv_r = ARC_FAIL;
		else
			*cv_ok_r = false;
	}
	return arc_instance_value(i->value, i->value_len, limit, i_r);
}

static void
arc_sort_error(struct arc_chain *c, enum arc_reason r, unsigned instance)
{
	if (c->sort_error != ARC_R_OK)
		return;
	c->sort_error = r;
	c->sort_instance = instance;
}

void
arc_chain_collect(const struct dkim_msg *m, unsigned limit, struct arc_chain *c)
{
	memset(c, 0, sizeof(*c));
	/* Three fields a set: more can only be duplicates or extra sets. */
	if (m->arc_fields > 3 * (size_t)limit) {
		c->too_many = true;
		return;
	}
	for (size_t j = 0; j < m->count; j++) {
		const struct dkim_field *f = &m->fields[j], **slot;
		enum arc_status cv = ARC_FAIL;
		bool cv_ok = false;
		size_t payload = 0;
		unsigned i = 0;
		enum arc_reason r;

		if (dkim_field_is(f, arc_aar_name, sizeof(arc_aar_name) - 1)) {
			slot = c->aar;
			r = arc_aar_instance(f, limit, &i, &payload);
		} else if (dkim_field_is(f, arc_ams_name,
		                         sizeof(arc_ams_name) - 1)) {
			slot = c->ams;
			r = arc_tags_instance(f, limit, &i, NULL, NULL);
		} else if (dkim_field_is(f, arc_seal_name,
		                         sizeof(arc_seal_name) - 1)) {
			slot = c->seal;
			r = arc_tags_instance(f, limit, &i, &cv, &cv_ok);
		} else {
			continue;
		}
		if (r == ARC_R_TOO_MANY) {
			c->too_many = true;
			continue;
		}
		if (r != ARC_R_OK) {
			arc_sort_error(c, ARC_R_SYNTAX, 0);
			continue;
		}
		if (slot[i] != NULL) { /* the topmost one is kept */
			arc_sort_error(c, ARC_R_DUPLICATE, i);
			continue;
		}
		slot[i] = f;
		if (slot == c->aar)
			c->aar_payload[i] = payload;
		if (slot == c->seal) {
			c->cv[i] = cv;
			c->cv_ok[i] = cv_ok;
		}
		if (i > c->n)
			c->n = i;
	}
}

enum arc_reason
arc_chain_check(const struct arc_chain *c, unsigned *instance_r)
{
	*instance_r = 0;
	if (c->too_many)
		return ARC_R_TOO_MANY;
	if (c->n > 0 && c->seal[c->n] != NULL && c->cv_ok[c->n] &&
	    c->cv[c->n] == ARC_FAIL) {
		*instance_r = c->n;
		return ARC_R_ENDED;
	}
	if (c->sort_error != ARC_R_OK) {
		*instance_r = c->sort_instance;
		return c->sort_error;
	}
	for (unsigned i = 1; i <= c->n; i++) {
		if (c->aar[i] == NULL || c->ams[i] == NULL ||
		    c->seal[i] == NULL) {
			*instance_r = i;
			return ARC_R_MISSING;
		}
	}
	for (unsigned i = 1; i <= c->n; i++) {
		if (!c->cv_ok[i] ||
		    c->cv[i] != (i == 1 ? ARC_NONE : ARC_PASS)) {
			*instance_r = i;
			return ARC_R_CV;
		}
	}
	return ARC_R_OK;
}

/* ------------------------------------------------------------- context */

struct arc_key_entry {
	char name[DKIM_DOMAIN_MAX + 1]; /* selector._domainkey.domain */
	enum dkim_reason reason;
	struct dkim_key key;
};

struct arc_body_entry {
	enum dkim_canon canon;
	uint64_t limit, total;
	uint8_t md[EVP_MAX_MD_SIZE];
	unsigned md_len;
};

struct arc_ctx {
	const struct ma_dns *dns;
	const struct dkim_msg *m;
	size_t header_bytes;
	time_t now;
	struct dkim_limits dlim; /* rsa_bits_min; never rsa-sha1 */
	struct arc_chain chain;
	size_t nkeys, nbodies;
	struct arc_key_entry keys[ARC_KEYS_MAX];
	struct arc_body_entry bodies[ARC_BODIES_MAX];
};

/* The key of sig, fetched once per name for the whole chain. */
static enum dkim_reason
arc_key(struct arc_ctx *c, const struct dkim_sig *sig,
        const struct dkim_key **key_r)
{
	char name[DKIM_DOMAIN_MAX + 1];
	struct arc_key_entry *e = NULL;
	int n = snprintf(name, sizeof(name), "%s._domainkey.%s", sig->selector,
	                 sig->domain);

	if (n < 0 || (size_t)n >= sizeof(name))
		return DKIM_R_DOMAIN;
	for (size_t i = 0; i < c->nkeys && e == NULL; i++)
		if (dkim_ci_equal(c->keys[i].name, strlen(c->keys[i].name),
		                  name, (size_t)n))
			e = &c->keys[i];
	if (e == NULL) {
		if (c->nkeys == ARC_KEYS_MAX) /* two per set: never */
			return DKIM_R_INTERNAL;
		e = &c->keys[c->nkeys++];
		memcpy(e->name, name, (size_t)n + 1);
		e->reason = dkim_fetch_key(c->dns, sig, &e->key);
	}
	*key_r = &e->key;
	return e->reason;
}

/* The body hash sig needs, computed once per (c=, l=). */
static const struct arc_body_entry *
arc_body(struct arc_ctx *c, const struct dkim_sig *sig)
{
	uint64_t limit = sig->has_l ? sig->l : UINT64_MAX;
	struct arc_body_entry *e;
	struct dkim_body body;
	int ret;

	for (size_t i = 0; i < c->nbodies; i++)
		if (c->bodies[i].canon == sig->body_canon &&
		    c->bodies[i].limit == limit)
			return &c->bodies[i];
	if (c->nbodies == ARC_BODIES_MAX ||
	    dkim_body_init(&body, sig->body_canon, EVP_sha256(), limit) < 0)
		return NULL;
	e = &c->bodies[c->nbodies];
	if (c->m->body != NULL)
		dkim_body_update(&body, c->m->body, c->m->body_len);
	ret = dkim_body_final(&body, e->md, &e->md_len);
	e->total = body.total;
	dkim_body_clear(&body);
	if (ret < 0)
		return NULL;
	e->canon = sig->body_canon;
	e->limit = limit;
	c->nbodies++;
	return e;
}

static void
arc_ctx_clear(struct arc_ctx *c)
{
	for (size_t i = 0; i < c->nkeys; i++)
		dkim_key_clear(&c->keys[i].key);
	c->nkeys = 0;
}

/* ------------------------------------------------------------ the AMS */

/* RFC 8617 §4.1.2: the AMS never covers a seal (made after it). */
static bool
arc_h_has_seal(const struct dkim_sig *sig)
{
	const char *item;
	size_t len, pos = 0;

	while (dkim_list_next(sig->h, sig->h_len, &pos, &item, &len))
		if (dkim_ci_equal(item, len, arc_seal_name,
		                  sizeof(arc_seal_name) - 1))
			return true;
	return false;
}

static enum dkim_reason
arc_ams_headers(struct arc_ctx *c, const struct dkim_field *f,
                const struct dkim_sig *sig, const struct dkim_key *key)
{
	uint8_t digest[EVP_MAX_MD_SIZE];
	unsigned dlen = 0;
	struct buf data;
	enum dkim_reason r = DKIM_R_SIGNATURE;

	buf_init(&data, c->header_bytes + 64);
	if (dkim_header_data(c->m, sig->header_canon, sig->h, sig->h_len,
	                     f->data, f->len, sig->b_start, sig->b_end,
	                     &data) == 0 &&
	    EVP_Digest(data.data != NULL ? data.data : (const uint8_t *)"",
	               data.len, digest, &dlen, EVP_sha256(), NULL) == 1 &&
	    dkim_check_signature(key, sig, digest, dlen))
		r = DKIM_R_OK;
	buf_free(&data);
	return r;
}

/* Verify the AMS of instance i like a DKIM-Signature (RFC 6376 §6). */
static void
arc_ams_check(struct arc_ctx *c, unsigned i, struct dkim_sig_result *res)
{
	const struct dkim_field *f = c->chain.ams[i];
	const struct arc_body_entry *body = NULL;
	const struct dkim_key *key = NULL;
	struct dkim_sig sig;
	enum dkim_reason r;

	r = dkim_sig_parse_kind(f, &c->dlim, DKIM_SIG_ARC_AMS, &sig, res);
	if (r == DKIM_R_OK && arc_h_has_seal(&sig))
		r = DKIM_R_SYNTAX;
	if (r == DKIM_R_OK && sig.has_x && c->now >= 0 &&
	    (uint64_t)c->now > sig.x)
		r = DKIM_R_EXPIRED;
	if (r == DKIM_R_OK && (body = arc_body(c, &sig)) == NULL)
		r = DKIM_R_INTERNAL;
	if (r == DKIM_R_OK && sig.has_l) {
		res->length_limited = true;
		if (body->total < sig.l)
			r = DKIM_R_LENGTH;
		else
			res->body_partial = body->total > sig.l;
	}
	if (r == DKIM_R_OK && (r = arc_key(c, &sig, &key)) == DKIM_R_OK) {
		res->key_bits = key->bits;
		res->testing = key->testing;
		r = dkim_key_check(key, &sig, c->dlim.rsa_bits_min);
	}
	if (r == DKIM_R_OK &&
	    (sig.bh_len != body->md_len ||
	     CRYPTO_memcmp(sig.bh, body->md, body->md_len) != 0))
		r = DKIM_R_BODY_HASH;
	if (r == DKIM_R_OK)
		r = arc_ams_headers(c, f, &sig, key);
	res->result = dkim_reason_result(r);
	res->reason = r;
}

/* ----------------------------------------------------------- the seals */

/* The relaxed form of a seal with b='s value removed, no final CRLF. */
static int
arc_seal_unsigned(const struct dkim_field *f, const struct dkim_sig *sig,
                  struct buf *out)
{
	struct buf tmp;
	int ret;

	if (sig->b_start > sig->b_end || sig->b_end > f->len)
		return -1;
	buf_init(&tmp, f->len + 1);
	ret = buf_append(&tmp, f->data, sig->b_start) < 0 ||
	              buf_append(&tmp, f->data + sig->b_end,
	                         f->len - sig->b_end) < 0 ||
	              dkim_canon_header(DKIM_CANON_RELAXED,
	                                tmp.data != NULL ? tmp.data : f->data,
	                                tmp.len, true, out) < 0
	          ? -1
	          : 0;
	buf_free(&tmp);
	return ret;
}

/* The digest each seal signs (§5.1.1): sets 1..i-1 whole, then AAR_i,
 * AMS_i and AS_i without b=, all relaxed; one running hash of the
 * complete sets, copied for each seal. have[i] false: not computable. */
static void
arc_seal_digests(struct arc_ctx *c, uint8_t digest[][ARC_SHA256_LEN],
                 bool *have)
{
	EVP_MD_CTX *prefix = EVP_MD_CTX_new(), *ctx = EVP_MD_CTX_new();
	struct buf set, seal;

	buf_init(&set, c->header_bytes + 64);
	buf_init(&seal, c->header_bytes + 64);
	if (prefix == NULL || ctx == NULL ||
	    EVP_DigestInit_ex(prefix, EVP_sha256(), NULL) != 1)
		goto out;
	for (unsigned i = 1; i <= c->chain.n; i++) {
		const struct dkim_field *as = c->chain.seal[i];
		struct dkim_sig_result scratch;
		struct dkim_sig sig;
		unsigned len = 0;

		buf_reset(&set);
		buf_reset(&seal);
		if (dkim_canon_header(DKIM_CANON_RELAXED, c->chain.aar[i]->data,
		                      c->chain.aar[i]->len, false, &set) < 0 ||
		    dkim_canon_header(DKIM_CANON_RELAXED, c->chain.ams[i]->data,
		                      c->chain.ams[i]->len, false, &set) < 0)
			goto out;
		memset(&scratch, 0, sizeof(scratch));
		if (dkim_sig_parse_kind(as, &c->dlim, DKIM_SIG_ARC_SEAL, &sig,
		                        &scratch) == DKIM_R_OK &&
		    arc_seal_unsigned(as, &sig, &seal) == 0 &&
		    EVP_MD_CTX_copy_ex(ctx, prefix) == 1 &&
		    EVP_DigestUpdate(ctx, set.data, set.len) == 1 &&
		    EVP_DigestUpdate(ctx, seal.data, seal.len) == 1 &&
		    EVP_DigestFinal_ex(ctx, digest[i], &len) == 1 &&
		    len == ARC_SHA256_LEN)
			have[i] = true;
		buf_reset(&seal);
		if (dkim_canon_header(DKIM_CANON_RELAXED, as->data, as->len,
		                      false, &seal) < 0 ||
		    EVP_DigestUpdate(prefix, set.data, set.len) != 1 ||
		    EVP_DigestUpdate(prefix, seal.data, seal.len) != 1)
			goto out;
	}
out:
	buf_free(&set);
	buf_free(&seal);
	EVP_MD_CTX_free(prefix);
	EVP_MD_CTX_free(ctx);
}

/* §5.2 step 6: every seal, newest first; false at the first failure. */
static bool
arc_seals_check(struct arc_ctx *c, struct arc_verify_result *res)
{
	uint8_t digest[ARC_INSTANCE_MAX + 1][ARC_SHA256_LEN];
	bool have[ARC_INSTANCE_MAX + 1] = {false};

	arc_seal_digests(c, digest, have);
	for (unsigned i = c->chain.n; i >= 1; i--) {
		struct dkim_sig_result *sr = &res->set[i - 1].seal;
		const struct dkim_key *key = NULL;
		struct dkim_sig sig;
		enum dkim_reason r;

		r = dkim_sig_parse_kind(c->chain.seal[i], &c->dlim,
		                        DKIM_SIG_ARC_SEAL, &sig, sr);
		if (r == DKIM_R_OK && !have[i])
			r = DKIM_R_INTERNAL;
		if (r == DKIM_R_OK &&
		    (r = arc_key(c, &sig, &key)) == DKIM_R_OK) {
			sr->key_bits = key->bits;
			sr->testing = key->testing;
			r = dkim_key_check(key, &sig, c->dlim.rsa_bits_min);
		}
		if (r == DKIM_R_OK &&
		    !dkim_check_signature(key, &sig, digest[i], ARC_SHA256_LEN))
			r = DKIM_R_SIGNATURE;
		sr->result = dkim_reason_result(r);
		sr->reason = r;
		if (r != DKIM_R_OK) {
			res->reason = ARC_R_SEAL;
			res->reason_instance = i;
			return false;
		}
	}
	return true;
}

/* ---------------------------------------------------------- the result */

/* The AAR payload unfolded, WSP runs as one SP, no control bytes. */
static char *
arc_aar_text(const struct dkim_field *f, size_t off)
{
	struct buf b;
	bool wsp = false, started = false;
	char *text = NULL;

	buf_init(&b, ARC_AAR_MAX);
	for (size_t i = off; i < f->len; i++) {
		uint8_t ch = f->data[i];
		if (ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n') {
			wsp = started;
			continue;
		}
		if (ch < 0x20 || ch == 0x7f)
			continue;
		if ((wsp && buf_append_byte(&b, ' ') < 0) ||
		    buf_append_byte(&b, ch) < 0)
			goto out;
		wsp = false;
		started = true;
	}
	text = b.len > 0 ? xstrndup((const char *)b.data, b.len) : xstrdup("");
out:
	buf_free(&b);
	return text;
}

/* What each set says before anything is checked: cv=, d= and s= of the
 * seal and the AMS, the AAR. */
static void
arc_describe(struct arc_ctx *c, struct arc_verify_result *res)
{
	const struct arc_chain *ch = &c->chain;

	res->count = ch->n;
	if (ch->n == 0)
		return;
	res->set = xcalloc(ch->n, sizeof(*res->set));
	for (unsigned i = 1; i <= ch->n; i++) {
		struct arc_set_result *s = &res->set[i - 1];
		struct dkim_sig sig;

		s->instance = i;
		s->cv =
		    ch->seal[i] != NULL && ch->cv_ok[i] ? ch->cv[i] : ARC_FAIL;
		if (ch->seal[i] != NULL)
			(void)dkim_sig_parse_kind(ch->seal[i], &c->dlim,
			                          DKIM_SIG_ARC_SEAL, &sig,
			                          &s->seal);
		if (ch->ams[i] != NULL)
			(void)dkim_sig_parse_kind(ch->ams[i], &c->dlim,
			                          DKIM_SIG_ARC_AMS, &sig,
			                          &s->ams);
		if (ch->aar[i] != NULL)
			s->aar = arc_aar_text(ch->aar[i], ch->aar_payload[i]);
	}
}

static void
arc_fail(struct arc_verify_result *res, enum arc_reason reason,
         unsigned instance)
{
	res->status = ARC_FAIL;
	res->reason = reason;
	res->reason_instance = instance;
}

/* §5.2 steps 3-7 on a chain that sorted well. */
static void
arc_validate(struct arc_ctx *c, bool oldest_pass, struct arc_verify_result *res)
{
	unsigned n = c->chain.n;

	arc_ams_check(c, n, &res->set[n - 1].ams);
	if (res->set[n - 1].ams.result != DKIM_PASS) {
		arc_fail(res, ARC_R_AMS, n);
		return;
	}
	/* The seals before the optional walk: a failing chain costs no
	 * lookup for older AMS fields (the outcome is the same). */
	if (!arc_seals_check(c, res)) {
		res->status = ARC_FAIL;
		return;
	}
	res->status = ARC_PASS;
	res->reason = ARC_R_OK;
	if (!oldest_pass)
		return;
	for (unsigned i = n - 1; i >= 1; i--) {
		arc_ams_check(c, i, &res->set[i - 1].ams);
		if (res->set[i - 1].ams.result != DKIM_PASS) {
			res->oldest_pass = i + 1;
			break;
		}
	}
}

int
arc_verify(const struct ma_dns *dns, const uint8_t *msg, size_t len, time_t now,
           const struct arc_limits *limits, struct arc_verify_result **res_r)
{
	struct arc_verify_result *res = xcalloc(1, sizeof(*res));
	unsigned limit = ARC_INSTANCE_MAX, instance;
	struct arc_ctx *c;
	struct dkim_msg m;
	enum arc_reason r;

	*res_r = res;
	dkim_msg_parse(msg, len, &m);
	if (m.arc_fields == 0) {
		dkim_msg_clear(&m);
		return 0;
	}
	if (m.too_many) {
		arc_fail(res, ARC_R_HEADERS, 0);
		dkim_msg_clear(&m);
		return 0;
	}
	c = xcalloc(1, sizeof(*c));
	c->dns = dns;
	c->m = &m;
	c->header_bytes = m.body != NULL ? (size_t)(m.body - msg) : len;
	c->now = now;
	c->dlim.rsa_bits_min = ARC_RSA_BITS_MIN;
	if (limits != NULL && limits->instances > 0 &&
	    limits->instances < ARC_INSTANCE_MAX)
		limit = limits->instances;
	if (limits != NULL && limits->rsa_bits_min > 0)
		c->dlim.rsa_bits_min = limits->rsa_bits_min < ARC_RSA_BITS_FLOOR
		                           ? ARC_RSA_BITS_FLOOR
		                           : limits->rsa_bits_min;
	arc_chain_collect(&m, limit, &c->chain);
	arc_describe(c, res);
	if ((r = arc_chain_check(&c->chain, &instance)) != ARC_R_OK) {
		arc_fail(res, r, instance);
		res->ended = r == ARC_R_ENDED;
	} else if (c->chain.n == 0) {
		arc_fail(res, ARC_R_SYNTAX, 0); /* not reached: sorted out */
	} else {
		arc_validate(c, limits == NULL || !limits->skip_oldest_pass,
		             res);
	}
	arc_ctx_clear(c);
	xfree(&c);
	dkim_msg_clear(&m);
	return 0;
}

void
arc_verify_result_free(struct arc_verify_result **res)
{
	if (*res == NULL)
		return;
	for (size_t i = 0; i < (*res)->count; i++)
		free((*res)->set[i].aar);
	free((*res)->set);
	xfree(res);
}

const char *
arc_status_str(enum arc_status status)
{
	switch (status) {
	case ARC_NONE:
		return "none";
	case ARC_PASS:
		return "pass";
	case ARC_FAIL:
		return "fail";
	}
	return "fail";
}

static const char *const arc_reasons[] = {
    [ARC_R_OK] = "ok",
    [ARC_R_HEADERS] = "too many header fields",
    [ARC_R_TOO_MANY] = "too many ARC sets",
    [ARC_R_ENDED] = "chain already failed",
    [ARC_R_SYNTAX] = "ARC field without a usable instance",
    [ARC_R_DUPLICATE] = "duplicate ARC field",
    [ARC_R_MISSING] = "ARC set incomplete",
    [ARC_R_CV] = "invalid cv= value",
    [ARC_R_AMS] = "message signature did not verify",
    [ARC_R_SEAL] = "seal did not verify",
};

const char *
arc_reason_str(enum arc_reason reason)
{
	if ((size_t)reason >= sizeof(arc_reasons) / sizeof(arc_reasons[0]))
		return "unknown";
	return arc_reasons[reason];
}

const struct arc_set_result *
arc_trusted_set(const struct arc_verify_result *res, const char *const *domains)
{
	if (res->status != ARC_PASS || domains == NULL)
		return NULL;
	for (size_t k = res->count; k-- > 0;) {
		const char *d = res->set[k].seal.domain;
		for (size_t j = 0; domains[j] != NULL; j++)
			if (d[0] != '\0' &&
			    dkim_ci_equal(d, strlen(d), domains[j],
			                  strlen(domains[j])))
				return &res->set[k];
	}
	return NULL;
}

/* ----------------------------------------------- Authentication-Results */

/* RFC 8601 Keyword characters (ldh-str), "_" and "." for methods. */
static bool
arc_is_keychar(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
}

/* The next ";"-separated element at *pos, quoted-strings and comments
 * kept whole; false past the end. */
static bool
arc_ar_next(const char *s, size_t len, size_t *pos, size_t *start_r,
            size_t *end_r)
{
	size_t i = *pos;
	unsigned depth = 0;
	bool quoted = false;

	if (i > len)
		return false;
	*start_r = i;
	for (; i < len; i++) {
		char c = s[i];
		if ((quoted || depth > 0) && c == '\\') {
			if (i + 1 < len)
				i++;
			continue;
		}
		if (quoted) {
			quoted = c != '"';
			continue;
		}
		if (depth > 0) {
			if (c == '(')
				depth++;
			else if (c == ')')
				depth--;
			continue;
		}
		if (c == '"')
			quoted = true;
		else if (c == '(')
			depth = 1;
		else if (c == ';')
			break;
	}
	*end_r = i;
	*pos = i + 1;
	return true;
}

int
arc_ar_method_result(const char *payload, const char *method, char *result,
                     size_t size)
{
	size_t len = strlen(payload), mlen = strlen(method), pos = 0;
	size_t start, end;
	bool first = true;

	while (arc_ar_next(payload, len, &pos, &start, &end)) {
		size_t i, mstart, rstart;

		if (first) { /* authserv-id [CFWS authres-version] */
			first = false;
			continue;
		}
		mstart = i = arc_skip_cfws(payload, end, start);
		while (i < end && arc_is_keychar(payload[i]))
			i++;
		if (!dkim_ci_equal(payload + mstart, i - mstart, method, mlen))
			continue;
		i = arc_skip_cfws(payload, end, i);
		if (i < end && payload[i] == '/') { /* method-version */
			i = arc_skip_cfws(payload, end, i + 1);
			while (i < end && payload[i] >= '0' &&
			       payload[i] <= '9')
				i++;
			i = arc_skip_cfws(payload, end, i);
		}
		if (i == end || payload[i] != '=')
			continue;
		rstart = i = arc_skip_cfws(payload, end, i + 1);
		while (i < end && arc_is_keychar(payload[i]))
			i++;
		if (i == rstart || i - rstart >= size)
			return -1;
		for (size_t k = 0; k < i - rstart; k++) {
			char c = payload[rstart + k];
			result[k] = c >= 'A' && c <= 'Z' ? (char)(c + 32) : c;
		}
		result[i - rstart] = '\0';
		return 0;
	}
	return -1;
}

/* An IPv4 or IPv6 address's characters only (it goes out unquoted). */
static bool
arc_ip_ok(const char *ip)
{
	size_t n = strlen(ip);

	if (n == 0 || n > 45)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((ip[i] >= '0' && ip[i] <= '9') ||
		      (ip[i] >= 'a' && ip[i] <= 'f') ||
		      (ip[i] >= 'A' && ip[i] <= 'F') || ip[i] == '.' ||
		      ip[i] == ':'))
			return false;
	return true;
}

int
arc_ar_append(struct buf *out, const struct arc_verify_result *res,
              const char *remote_ip)
{
	static const char *const methods[] = {"spf", "dkim", "dmarc"};

	if (buf_printf(out, "arc=%s", arc_status_str(res->status)) < 0)
		return -1;
	if (res->status == ARC_NONE)
		return 0;
	if (res->status == ARC_PASS && res->count > 0) {
		const struct arc_set_result *s = &res->set[res->count - 1];
		char r[32];

		if (buf_printf(out, " (i=%u", s->instance) < 0)
			return -1;
		for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]);
		     i++)
			if (s->aar != NULL &&
			    arc_ar_method_result(s->aar, methods[i], r,
			                         sizeof(r)) == 0 &&
			    buf_printf(out, " %s=%s", methods[i], r) < 0)
				return -1;
		if (buf_printf(out, ") header.oldest-pass=%u",
		               res->oldest_pass) < 0)
			return -1;
	} else if (res->status == ARC_FAIL) {
		if (buf_printf(out, " reason=\"%s",
		               arc_reason_str(res->reason)) < 0 ||
		    (res->reason_instance > 0 &&
		     buf_printf(out, " (i=%u)", res->reason_instance) < 0) ||
		    buf_append_byte(out, '"') < 0)
			return -1;
	}
	if (remote_ip != NULL && arc_ip_ok(remote_ip) &&
	    buf_printf(out, " smtp.remote-ip=%s", remote_ip) < 0)
		return -1;
	return 0;
}
