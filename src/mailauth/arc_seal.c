/* ARC sealing (RFC 8617 §5.1) in steps like DKIM signing: begin (instance,
 * AAR, AMS digest), AMS signature in (then the seal digest), seal
 * signature in (the three fields). The keys sign in lookup.
 * SECURITY: parameters are validated so nothing breaks out of a tag or a
 * header field; the message's ARC fields are peer bytes, only sorted and
 * canonicalized here. */
#include "mailauth/arc_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "core/base64.h"
#include "core/xmalloc.h"

#define ARC_NAME_MAX 76 /* longest h= name (as dkim_sign.c) */
#define ARC_FIELD_MAX (DKIM_HEADER_NAMES_MAX * (ARC_NAME_MAX + 4) + 2048)
#define ARC_TIME_MAX 999999999999ULL

enum arc_seal_state {
	ARC_SEAL_AMS,  /* waiting for the AMS signature */
	ARC_SEAL_SEAL, /* waiting for the seal signature */
	ARC_SEAL_DONE,
};

struct arc_sealer {
	enum arc_seal_state state;
	enum dkim_algorithm algorithm;
	unsigned instance;
	enum arc_status cv;
	char domain[DKIM_DOMAIN_MAX + 1];
	char selector[DKIM_DOMAIN_MAX + 1];
	time_t timestamp;
	struct buf aar;   /* "ARC-Authentication-Results: i=N; …\r\n" */
	struct buf chain; /* the earlier sets, relaxed (cv=pass only) */
	struct dkim_signer *ams, *seal;
	char *ams_field; /* "ARC-Message-Signature: …\r\n" once signed */
};

/* ---------------------------------------------------------- parameters */

static bool
arc_wsp(uint8_t c)
{
	return c == ' ' || c == '\t';
}

/* The Authentication-Results value unfolded and trimmed into out: a
 * fold (CRLF before WSP) goes, any other control byte is refused. */
static int
arc_authres_clean(const char *in, struct buf *out)
{
	size_t len = strlen(in), start = 0;

	while (start < len && arc_wsp((uint8_t)in[start]))
		start++;
	while (len > start && (arc_wsp((uint8_t)in[len - 1]) ||
	                       in[len - 1] == '\r' || in[len - 1] == '\n'))
		len--;
	for (size_t i = start; i < len; i++) {
		uint8_t c = (uint8_t)in[i];
		if (c == '\r' && i + 2 < len && in[i + 1] == '\n' &&
		    arc_wsp((uint8_t)in[i + 2])) {
			i++;
			continue;
		}
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return -1;
		if (buf_append_byte(out, c) < 0)
			return -1;
	}
	return out->len > 0 ? 0 : -1;
}

/* RFC 8617 §4.1.2: no ARC field nor Authentication-Results in h=. */
static bool
arc_h_name_allowed(const char *name)
{
	static const char *const refused[] = {
	    "ARC-Seal", "ARC-Message-Signature", "ARC-Authentication-Results",
	    "Authentication-Results"};
	size_t n = strlen(name);

	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
		if (dkim_ci_equal(name, n, refused[i], strlen(refused[i])))
			return false;
	return true;
}

static int
arc_params_check(const struct arc_seal_params *p, const char **error_r)
{
	if (dkim_signing_id_check(p->domain, p->selector, p->algorithm,
	                          error_r) < 0)
		return -1;
	if (p->chain != ARC_NONE && p->chain != ARC_PASS &&
	    p->chain != ARC_FAIL) {
		*error_r = "invalid chain status";
		return -1;
	}
	if (p->authres == NULL) {
		*error_r = "the Authentication-Results value is required";
		return -1;
	}
	if (p->timestamp < 0 || (uint64_t)p->timestamp > ARC_TIME_MAX) {
		*error_r = "invalid timestamp";
		return -1;
	}
	for (size_t i = 0; p->headers != NULL && p->headers[i] != NULL; i++) {
		if (!arc_h_name_allowed(p->headers[i])) {
			*error_r = "ARC and Authentication-Results fields must "
			           "not be signed";
			return -1;
		}
	}
	return 0;
}

/* ------------------------------------------------------------- the chain */

/* The instance and cv= (§5.1 steps 2-3) and, for a passing chain, the
 * earlier sets as the seal covers them. */
static int
arc_seal_chain(const struct dkim_msg *m, const struct arc_seal_params *p,
               struct arc_sealer *s, const char **error_r)
{
	struct arc_chain c;
	unsigned instance;
	enum arc_reason r;

	arc_chain_collect(m, ARC_INSTANCE_MAX, &c);
	r = arc_chain_check(&c, &instance);
	if (r == ARC_R_ENDED) {
		*error_r = "the ARC chain already failed (cv=fail): not sealed";
		return -1;
	}
	if (c.too_many || c.n >= ARC_INSTANCE_MAX) {
		*error_r = "the ARC chain is at its limit of 50 sets";
		return -1;
	}
	s->cv = p->chain;
	s->instance = c.n + 1;
	switch (p->chain) {
	case ARC_NONE:
		if (m->arc_fields > 0) {
			*error_r = "ARC fields present: the chain status must "
			           "be pass or fail";
			return -1;
		}
		return 0;
	case ARC_PASS:
		if (r != ARC_R_OK || c.n == 0) {
			*error_r = "the ARC chain is not complete: seal it as "
			           "failed";
			return -1;
		}
		for (unsigned i = 1; i <= c.n; i++)
			if (dkim_canon_header(DKIM_CANON_RELAXED,
			                      c.aar[i]->data, c.aar[i]->len,
			                      false, &s->chain) < 0 ||
			    dkim_canon_header(DKIM_CANON_RELAXED,
			                      c.ams[i]->data, c.ams[i]->len,
			                      false, &s->chain) < 0 ||
			    dkim_canon_header(DKIM_CANON_RELAXED,
			                      c.seal[i]->data, c.seal[i]->len,
			                      false, &s->chain) < 0) {
				*error_r = "ARC fields too large";
				return -1;
			}
		return 0;
	case ARC_FAIL:
		if (m->arc_fields == 0) {
			*error_r =
			    "no ARC chain: the chain status must be none";
			return -1;
		}
		/* §5.1.2: the seal covers the new set alone. */
		return 0;
	}
	*error_r = "invalid chain status";
	return -1;
}

/* "ARC-Authentication-Results: i=N; " + value, folded before a WSP when
 * a line would pass DKIM_LINE_MAX (the WSP stays: unfolding restores
 * the value exactly). */
static int
arc_seal_aar(struct arc_sealer *s, const struct buf *value)
{
	size_t col, i = 0;

	if (buf_printf(&s->aar, "ARC-Authentication-Results: i=%u;",
	               s->instance) < 0)
		return -1;
	col = s->aar.len;
	while (i < value->len) {
		size_t w = i;
		/* a word: its leading WSP, then up to the next WSP */
		while (w < value->len && arc_wsp(value->data[w]))
			w++;
		while (w < value->len && !arc_wsp(value->data[w]))
			w++;
		if (i == 0) { /* after "i=N;" */
			if (buf_append_byte(&s->aar, ' ') < 0)
				return -1;
			col++;
		} else if (col + (w - i) > DKIM_LINE_MAX && col > 1) {
			if (buf_append(&s->aar, "\r\n", 2) < 0)
				return -1;
			col = 0;
		}
		if (buf_append(&s->aar, value->data + i, w - i) < 0)
			return -1;
		col += w - i;
		i = w;
	}
	return buf_append(&s->aar, "\r\n", 2);
}

/* ------------------------------------------------------------- the AMS */

static bool
arc_has_from(const struct dkim_msg *m)
{
	for (size_t i = 0; i < m->count; i++)
		if (dkim_field_is(&m->fields[i], "From", 4))
			return true;
	return false;
}

/* h=: as given, or DKIM's default plus each DKIM-Signature present (as
 * many as fit in DKIM_HEADER_NAMES_MAX). */
static int
arc_ams_h(const struct dkim_msg *m, const struct arc_seal_params *p,
          struct buf *h, const char **error_r)
{
	size_t names = 1;

	if (dkim_sign_header_list(m, p->headers, h, error_r) < 0)
		return -1;
	if (p->headers != NULL)
		return 0;
	for (size_t i = 0; i < h->len; i++)
		names += h->data[i] == ':';
	for (size_t i = 0; i < m->dkim_sigs && names < DKIM_HEADER_NAMES_MAX;
	     i++, names++)
		if (buf_append_str(h, ":DKIM-Signature") < 0)
			break;
	return 0;
}

static int
arc_ams_field(const struct arc_sealer *s, const struct buf *h, const char *bh,
              struct buf *field, size_t *col_r)
{
	struct dkim_fold f = {.out = field, .col = 0};
	char i[8], t[24];

	snprintf(i, sizeof(i), "%u", s->instance);
	snprintf(t, sizeof(t), "%" PRIu64, (uint64_t)s->timestamp);
	/* i= first and "ARC-Message-Signature: i=N;" on one line: dkimpy
	 * finds the AMS of an instance by " i=N;". */
	if (dkim_fold_add(&f, "ARC-Message-Signature:", 22, false, 0) < 0 ||
	    dkim_fold_tag(&f, "i", i) < 0 ||
	    dkim_fold_tag(&f, "a", dkim_algorithm_str(s->algorithm)) < 0 ||
	    dkim_fold_tag(&f, "c", "relaxed/relaxed") < 0 ||
	    dkim_fold_tag(&f, "d", s->domain) < 0 ||
	    dkim_fold_tag(&f, "s", s->selector) < 0 ||
	    dkim_fold_tag(&f, "t", t) < 0 || dkim_sign_h(&f, h) < 0 ||
	    dkim_fold_tag(&f, "bh", bh) < 0 ||
	    dkim_fold_add(&f, "b=", 2, true, DKIM_B_RESERVE) < 0)
		return -1;
	*col_r = f.col;
	return 0;
}

static int
arc_seal_ams_begin(const struct dkim_msg *m, const struct arc_seal_params *p,
                   size_t header_bytes, struct arc_sealer *s,
                   const char **error_r)
{
	char bh[BASE64_ENCODED_SIZE(DKIM_DIGEST_MAX)];
	struct buf h, field, data;
	uint64_t body_len;
	size_t col = 0;
	int ret = -1;

	buf_init(&h, DKIM_HEADER_NAMES_MAX * (ARC_NAME_MAX + 1));
	buf_init(&field, ARC_FIELD_MAX);
	buf_init(&data, 0);
	if (arc_ams_h(m, p, &h, error_r) < 0)
		goto out;
	buf_init(&data, header_bytes + ARC_FIELD_MAX + 64);
	if (dkim_sign_body_hash(m, DKIM_CANON_RELAXED, bh, &body_len) < 0 ||
	    arc_ams_field(s, &h, bh, &field, &col) < 0 ||
	    dkim_header_data(m, DKIM_CANON_RELAXED, (const char *)h.data, h.len,
	                     field.data, field.len, field.len, field.len,
	                     &data) < 0 ||
	    (s->ams = dkim_signer_new(s->algorithm, &field, col, &data)) ==
	        NULL) {
		*error_r = "canonicalization or hashing failed";
		goto out;
	}
	ret = 0;
out:
	buf_free(&h);
	buf_free(&field);
	buf_free(&data);
	return ret;
}

int
arc_seal_begin(const uint8_t *msg, size_t len,
               const struct arc_seal_params *params,
               struct arc_sealer **sealer_r, const char **error_r)
{
	struct arc_sealer *s = NULL;
	struct dkim_msg m;
	struct buf value;
	size_t header_bytes;
	int ret = -1;

	if (arc_params_check(params, error_r) < 0)
		return -1;
	buf_init(&value, ARC_AAR_MAX);
	dkim_msg_parse(msg, len, &m);
	header_bytes = m.body != NULL ? (size_t)(m.body - msg) : len;
	if (arc_authres_clean(params->authres, &value) < 0) {
		*error_r = "the Authentication-Results value is empty, too "
		           "long or has control characters";
		goto out;
	}
	if (m.too_many) {
		*error_r = "too many header fields";
		goto out;
	}
	s = xcalloc(1, sizeof(*s));
	s->algorithm = params->algorithm;
	s->timestamp = params->timestamp;
	memcpy(s->domain, params->domain, strlen(params->domain) + 1);
	memcpy(s->selector, params->selector, strlen(params->selector) + 1);
	buf_init(&s->aar, 2 * ARC_AAR_MAX + 64); /* room for the folds */
	buf_init(&s->chain, header_bytes + 64);
	if (arc_seal_chain(&m, params, s, error_r) < 0)
		goto out;
	if (arc_seal_aar(s, &value) < 0) {
		*error_r = "the Authentication-Results value is too long";
		goto out;
	}
	if (!arc_has_from(&m)) {
		*error_r = "no From field to sign";
		goto out;
	}
	if (arc_seal_ams_begin(&m, params, header_bytes, s, error_r) < 0)
		goto out;
	*sealer_r = s;
	s = NULL;
	ret = 0;
out:
	buf_free(&value);
	dkim_msg_clear(&m);
	arc_sealer_free(&s);
	return ret;
}

enum dkim_algorithm
arc_sealer_algorithm(const struct arc_sealer *sealer)
{
	return sealer->algorithm;
}

unsigned
arc_sealer_instance(const struct arc_sealer *sealer)
{
	return sealer->instance;
}

const uint8_t *
arc_sealer_ams_digest(const struct arc_sealer *sealer, size_t *len_r)
{
	return dkim_signer_digest(sealer->ams, len_r);
}

/* ------------------------------------------------------------ the seal */

static int
arc_seal_field(const struct arc_sealer *s, struct buf *field, size_t *col_r)
{
	struct dkim_fold f = {.out = field, .col = 0};
	char i[8], t[24];

	snprintf(i, sizeof(i), "%u", s->instance);
	snprintf(t, sizeof(t), "%" PRIu64, (uint64_t)s->timestamp);
	if (dkim_fold_add(&f, "ARC-Seal:", 9, false, 0) < 0 ||
	    dkim_fold_tag(&f, "i", i) < 0 ||
	    dkim_fold_tag(&f, "a", dkim_algorithm_str(s->algorithm)) < 0 ||
	    dkim_fold_tag(&f, "t", t) < 0 ||
	    dkim_fold_tag(&f, "cv", arc_status_str(s->cv)) < 0 ||
	    dkim_fold_tag(&f, "d", s->domain) < 0 ||
	    dkim_fold_tag(&f, "s", s->selector) < 0 ||
	    dkim_fold_add(&f, "b=", 2, true, DKIM_B_RESERVE) < 0)
		return -1;
	*col_r = f.col;
	return 0;
}

int
arc_seal_ams(struct arc_sealer *sealer, const uint8_t *sig, size_t siglen,
             const char **error_r)
{
	struct buf field, data;
	size_t col = 0;
	int ret = -1;

	if (sealer->state != ARC_SEAL_AMS) {
		*error_r = "the AMS is already signed";
		return -1;
	}
	if ((sealer->ams_field =
	         dkim_sign_finish(sealer->ams, sig, siglen, error_r)) == NULL)
		return -1;
	buf_init(&field, 1024);
	buf_init(&data, sealer->chain.len + sealer->aar.len +
	                    strlen(sealer->ams_field) + 1024);
	/* §5.1.1: the earlier sets, then AAR, AMS and this seal (b=
	 * empty, no CRLF), all relaxed. */
	if (arc_seal_field(sealer, &field, &col) < 0 ||
	    buf_append(&data, sealer->chain.data, sealer->chain.len) < 0 ||
	    dkim_canon_header(DKIM_CANON_RELAXED, sealer->aar.data,
	                      sealer->aar.len, false, &data) < 0 ||
	    dkim_canon_header(DKIM_CANON_RELAXED,
	                      (const uint8_t *)sealer->ams_field,
	                      strlen(sealer->ams_field), false, &data) < 0 ||
	    dkim_canon_header(DKIM_CANON_RELAXED, field.data, field.len, true,
	                      &data) < 0 ||
	    (sealer->seal = dkim_signer_new(sealer->algorithm, &field, col,
	                                    &data)) == NULL) {
		*error_r = "canonicalization or hashing failed";
		xfree(&sealer->ams_field);
		goto out;
	}
	sealer->state = ARC_SEAL_SEAL;
	ret = 0;
out:
	buf_free(&field);
	buf_free(&data);
	return ret;
}

const uint8_t *
arc_sealer_seal_digest(const struct arc_sealer *sealer, size_t *len_r)
{
	if (sealer->seal == NULL) {
		*len_r = 0;
		return NULL;
	}
	return dkim_signer_digest(sealer->seal, len_r);
}

char *
arc_seal_finish(struct arc_sealer *sealer, const uint8_t *sig, size_t siglen,
                const char **error_r)
{
	char *seal, *fields;

	if (sealer->state != ARC_SEAL_SEAL) {
		*error_r = sealer->state == ARC_SEAL_AMS
		               ? "the AMS is not signed yet"
		               : "the seal is already finished";
		return NULL;
	}
	if ((seal = dkim_sign_finish(sealer->seal, sig, siglen, error_r)) ==
	    NULL)
		return NULL;
	fields =
	    xasprintf("%s%s%.*s", seal, sealer->ams_field, (int)sealer->aar.len,
	              (const char *)sealer->aar.data);
	free(seal);
	sealer->state = ARC_SEAL_DONE;
	return fields;
}

void
arc_sealer_free(struct arc_sealer **sealer)
{
	if (*sealer == NULL)
		return;
	buf_free(&(*sealer)->aar);
	buf_free(&(*sealer)->chain);
	dkim_signer_free(&(*sealer)->ams);
	dkim_signer_free(&(*sealer)->seal);
	free((*sealer)->ams_field);
	xfree(sealer);
}

char *
arc_seal_message(const uint8_t *msg, size_t len,
                 const struct arc_seal_params *params, EVP_PKEY *key,
                 const char **error_r)
{
	struct arc_sealer *s = NULL;
	uint8_t sig[DKIM_SIGNATURE_MAX];
	const uint8_t *digest;
	size_t dlen, siglen;
	char *fields = NULL;

	if (arc_seal_begin(msg, len, params, &s, error_r) < 0)
		return NULL;
	digest = arc_sealer_ams_digest(s, &dlen);
	if (dkim_sign_with_key(key, s->algorithm, digest, dlen, sig,
	                       sizeof(sig), &siglen, error_r) < 0 ||
	    arc_seal_ams(s, sig, siglen, error_r) < 0)
		goto out;
	digest = arc_sealer_seal_digest(s, &dlen);
	if (dkim_sign_with_key(key, s->algorithm, digest, dlen, sig,
	                       sizeof(sig), &siglen, error_r) == 0)
		fields = arc_seal_finish(s, sig, siglen, error_r);
out:
	arc_sealer_free(&s);
	return fields;
}
