/* DKIM shared parts: result names, DKIM-Signature semantics (RFC 6376
 * §3.5), the signed header data (§3.7) and Authentication-Results
 * fragments (RFC 8601, RFC 6008 header.b).
 * SECURITY: peer fields are validated before they reach fixed-size results;
 * what goes into Authentication-Results is a token or a quoted-string. */
#include "mailauth/dkim_int.h"

#include <stdio.h>
#include <string.h>

const char *
dkim_result_str(enum dkim_result result)
{
	switch (result) {
	case DKIM_NONE:
		return "none";
	case DKIM_PASS:
		return "pass";
	case DKIM_FAIL:
		return "fail";
	case DKIM_POLICY:
		return "policy";
	case DKIM_NEUTRAL:
		return "neutral";
	case DKIM_TEMPERROR:
		return "temperror";
	case DKIM_PERMERROR:
		return "permerror";
	}
	return "permerror";
}

static const char *const dkim_reasons[] = {
    [DKIM_R_OK] = "ok",
    [DKIM_R_BODY_HASH] = "body hash did not verify",
    [DKIM_R_SIGNATURE] = "signature did not verify",
    [DKIM_R_KEY_REVOKED] = "key revoked",
    [DKIM_R_EXPIRED] = "signature expired",
    [DKIM_R_SYNTAX] = "signature syntax error",
    [DKIM_R_VERSION] = "unsupported signature version",
    [DKIM_R_MISSING_TAG] = "required tag missing",
    [DKIM_R_ALGORITHM] = "unsupported algorithm",
    [DKIM_R_CANON] = "unsupported canonicalization",
    [DKIM_R_QUERY] = "unsupported query method",
    [DKIM_R_DOMAIN] = "invalid domain or selector",
    [DKIM_R_IDENTITY] = "identity outside the signing domain",
    [DKIM_R_FROM_UNSIGNED] = "From not signed",
    [DKIM_R_TIMESTAMPS] = "expiration not after timestamp",
    [DKIM_R_LENGTH] = "body shorter than l=",
    [DKIM_R_HEADERS] = "too many header fields",
    [DKIM_R_KEY_MISSING] = "no key",
    [DKIM_R_KEY_SYNTAX] = "key syntax error",
    [DKIM_R_KEY_TYPE] = "key type mismatch",
    [DKIM_R_KEY_HASH] = "hash not allowed by key",
    [DKIM_R_KEY_SERVICE] = "key not for email",
    [DKIM_R_KEY_STRICT] = "identity subdomain refused by key",
    [DKIM_R_KEY_SIZE] = "key too small",
    [DKIM_R_DNS] = "key lookup failed",
    [DKIM_R_INTERNAL] = "internal error",
    [DKIM_R_PARTIAL_BODY] = "body partially signed",
};

const char *
dkim_reason_str(enum dkim_reason reason)
{
	if ((size_t)reason >= sizeof(dkim_reasons) / sizeof(dkim_reasons[0]))
		return "unknown";
	return dkim_reasons[reason];
}

const char *
dkim_algorithm_str(enum dkim_algorithm algorithm)
{
	switch (algorithm) {
	case DKIM_ALG_RSA_SHA256:
		return "rsa-sha256";
	case DKIM_ALG_ED25519_SHA256:
		return "ed25519-sha256";
	case DKIM_ALG_RSA_SHA1:
		return "rsa-sha1";
	}
	return "unknown";
}

const EVP_MD *
dkim_algorithm_md(enum dkim_algorithm algorithm)
{
	return algorithm == DKIM_ALG_RSA_SHA1 ? EVP_sha1() : EVP_sha256();
}

/* ------------------------------------------------------ DKIM-Signature */

/* Copy a validated value into a fixed result field. */
static void
dkim_copy(char *dst, size_t dstsize, const char *src, size_t len)
{
	if (len >= dstsize)
		len = dstsize - 1;
	memcpy(dst, src, len);
	dst[len] = '\0';
}

/* What the result can show before the signature is known to be good. */
static void
dkim_sig_describe(const struct dkim_tags *tags, struct dkim_sig_result *res)
{
	const struct dkim_tag *d = dkim_tags_get(tags, "d");
	const struct dkim_tag *s = dkim_tags_get(tags, "s");
	const struct dkim_tag *a = dkim_tags_get(tags, "a");
	const struct dkim_tag *b = dkim_tags_get(tags, "b");

	if (d != NULL && dkim_domain_valid(d->value, d->value_len))
		dkim_copy(res->domain, sizeof(res->domain), d->value,
		          d->value_len);
	if (s != NULL && dkim_domain_valid(s->value, s->value_len))
		dkim_copy(res->selector, sizeof(res->selector), s->value,
		          s->value_len);
	if (a != NULL && a->value_len < sizeof(res->algorithm)) {
		bool ok = a->value_len > 0;
		for (size_t i = 0; i < a->value_len; i++) {
			char c = a->value[i];
			ok = ok && ((c >= 'a' && c <= 'z') ||
			            (c >= '0' && c <= '9') || c == '-');
		}
		if (ok)
			dkim_copy(res->algorithm, sizeof(res->algorithm),
			          a->value, a->value_len);
	}
	if (b != NULL) {
		size_t n = 0;
		for (size_t i = 0; i < b->value_len && n < 8; i++) {
			char c = b->value[i];
			if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
			    (c >= '0' && c <= '9') || c == '+' || c == '/' ||
			    c == '=')
				res->b[n++] = c;
		}
		res->b[n] = '\0';
	}
}

static enum dkim_reason
dkim_sig_algorithm(const struct dkim_tag *a, const struct dkim_limits *limits,
                   struct dkim_sig *sig)
{
	if (dkim_tag_value_is(a, "rsa-sha256"))
		sig->algorithm = DKIM_ALG_RSA_SHA256;
	else if (dkim_tag_value_is(a, "ed25519-sha256"))
		sig->algorithm = DKIM_ALG_ED25519_SHA256;
	else if (dkim_tag_value_is(a, "rsa-sha1") && limits->rsa_sha1)
		sig->algorithm = DKIM_ALG_RSA_SHA1;
	else
		return DKIM_R_ALGORITHM;
	return DKIM_R_OK;
}

static bool
dkim_canon_name(const char *s, size_t len, enum dkim_canon *c)
{
	if (dkim_ci_equal(s, len, "simple", 6))
		*c = DKIM_CANON_SIMPLE;
	else if (dkim_ci_equal(s, len, "relaxed", 7))
		*c = DKIM_CANON_RELAXED;
	else
		return false;
	return true;
}

/* c=: "h/b", or "h" alone meaning h/simple; default simple/simple. */
static enum dkim_reason
dkim_sig_canon(const struct dkim_tag *c, struct dkim_sig *sig)
{
	const char *slash;
	size_t hlen;

	sig->header_canon = sig->body_canon = DKIM_CANON_SIMPLE;
	if (c == NULL)
		return DKIM_R_OK;
	slash = memchr(c->value, '/', c->value_len);
	hlen = slash == NULL ? c->value_len : (size_t)(slash - c->value);
	if (!dkim_canon_name(c->value, hlen, &sig->header_canon))
		return DKIM_R_CANON;
	if (slash != NULL &&
	    !dkim_canon_name(slash + 1, c->value_len - hlen - 1,
	                     &sig->body_canon))
		return DKIM_R_CANON;
	return DKIM_R_OK;
}

/* RFC 5322 ftext: printable ASCII but ":". */
static bool
dkim_field_name_valid(const char *s, size_t len)
{
	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 33 || (unsigned char)s[i] > 126 ||
		    s[i] == ':')
			return false;
	return true;
}

static enum dkim_reason
dkim_sig_headers(const struct dkim_tag *h, struct dkim_sig *sig)
{
	const char *item;
	size_t len, pos = 0, n = 0;
	bool from = false;

	while (dkim_list_next(h->value, h->value_len, &pos, &item, &len)) {
		if (!dkim_field_name_valid(item, len))
			return DKIM_R_SYNTAX;
		if (++n > DKIM_HEADER_NAMES_MAX)
			return DKIM_R_HEADERS;
		from = from || dkim_ci_equal(item, len, "from", 4);
	}
	if (!from)
		return DKIM_R_FROM_UNSIGNED;
	sig->h = h->value;
	sig->h_len = h->value_len;
	return DKIM_R_OK;
}

static bool
dkim_in_domain(const char *sub, const char *domain)
{
	size_t ls = strlen(sub), ld = strlen(domain);

	if (ls == ld)
		return dkim_ci_equal(sub, ls, domain, ld);
	return ls > ld && sub[ls - ld - 1] == '.' &&
	       dkim_ci_equal(sub + ls - ld, ld, domain, ld);
}

/* i=: [local-part] "@" domain, in d= or a subdomain of it. */
static enum dkim_reason
dkim_sig_identity(const struct dkim_tag *i, struct dkim_sig *sig,
                  struct dkim_sig_result *res)
{
	const char *at;

	sig->identity_domain = sig->domain;
	if (i == NULL)
		return DKIM_R_OK;
	if (dkim_qp_decode(i->value, i->value_len, sig->identity,
	                   sizeof(sig->identity)) < 0)
		return DKIM_R_SYNTAX;
	memcpy(res->identity, sig->identity, sizeof(res->identity));
	if ((at = strrchr(sig->identity, '@')) == NULL ||
	    !dkim_domain_valid(at + 1, strlen(at + 1)))
		return DKIM_R_SYNTAX;
	if (!dkim_in_domain(at + 1, sig->domain))
		return DKIM_R_IDENTITY;
	sig->identity_domain = at + 1;
	return DKIM_R_OK;
}

static enum dkim_reason
dkim_sig_query(const struct dkim_tag *q)
{
	const char *item;
	size_t len, pos = 0;

	if (q == NULL)
		return DKIM_R_OK;
	while (dkim_list_next(q->value, q->value_len, &pos, &item, &len))
		if (dkim_ci_equal(item, len, "dns/txt", 7))
			return DKIM_R_OK;
	return DKIM_R_QUERY;
}

/* l=: 1*76DIGIT; past 19 significant digits it exceeds any body. */
static enum dkim_reason
dkim_sig_length(const struct dkim_tag *l, struct dkim_sig *sig)
{
	const char *v = l->value;
	size_t n = l->value_len;

	if (n == 0 || n > 76)
		return DKIM_R_SYNTAX;
	for (size_t i = 0; i < n; i++)
		if (v[i] < '0' || v[i] > '9')
			return DKIM_R_SYNTAX;
	while (n > 1 && v[0] == '0') {
		v++;
		n--;
	}
	if (!dkim_parse_uint(v, n, 19, &sig->l))
		return DKIM_R_LENGTH;
	sig->has_l = true;
	return DKIM_R_OK;
}

static enum dkim_reason
dkim_sig_times(const struct dkim_tag *t, const struct dkim_tag *x,
               struct dkim_sig *sig)
{
	if (t != NULL) {
		if (!dkim_parse_uint(t->value, t->value_len, 12, &sig->t))
			return DKIM_R_SYNTAX;
		sig->has_t = true;
	}
	if (x != NULL) {
		if (!dkim_parse_uint(x->value, x->value_len, 12, &sig->x))
			return DKIM_R_SYNTAX;
		sig->has_x = true;
	}
	if (sig->has_t && sig->has_x && sig->x <= sig->t)
		return DKIM_R_TIMESTAMPS;
	return DKIM_R_OK;
}

static enum dkim_reason
dkim_sig_names(const struct dkim_tag *d, const struct dkim_tag *s,
               struct dkim_sig *sig)
{
	if (!dkim_domain_valid(d->value, d->value_len) ||
	    !dkim_domain_valid(s->value, s->value_len) ||
	    s->value_len + d->value_len + 12 > DKIM_DOMAIN_MAX)
		return DKIM_R_DOMAIN;
	dkim_copy(sig->domain, sizeof(sig->domain), d->value, d->value_len);
	dkim_copy(sig->selector, sizeof(sig->selector), s->value, s->value_len);
	return DKIM_R_OK;
}

static enum dkim_reason
dkim_sig_tags(const struct dkim_tags *tags, const struct dkim_limits *limits,
              enum dkim_sig_kind kind, struct dkim_sig *sig,
              struct dkim_sig_result *res)
{
	const struct dkim_tag *v = dkim_tags_get(tags, "v");
	const struct dkim_tag *a = dkim_tags_get(tags, "a");
	const struct dkim_tag *b = dkim_tags_get(tags, "b");
	const struct dkim_tag *bh = dkim_tags_get(tags, "bh");
	const struct dkim_tag *d = dkim_tags_get(tags, "d");
	const struct dkim_tag *h = dkim_tags_get(tags, "h");
	const struct dkim_tag *s = dkim_tags_get(tags, "s");
	const struct dkim_tag *l = dkim_tags_get(tags, "l");
	bool seal = kind == DKIM_SIG_ARC_SEAL;
	enum dkim_reason r;

	if (kind == DKIM_SIG_DKIM) {
		if (v == NULL)
			return DKIM_R_MISSING_TAG;
		if (!dkim_tag_value_is(v, "1"))
			return DKIM_R_VERSION;
	}
	if (a == NULL || b == NULL || d == NULL || s == NULL ||
	    (!seal && (bh == NULL || h == NULL)))
		return DKIM_R_MISSING_TAG;
	if (seal && h != NULL)
		return DKIM_R_SYNTAX; /* RFC 8617 §4.1.3 */
	if ((r = dkim_sig_algorithm(a, limits, sig)) != DKIM_R_OK)
		return r;
	if (seal)
		sig->header_canon = sig->body_canon = DKIM_CANON_RELAXED;
	else if ((r = dkim_sig_canon(dkim_tags_get(tags, "c"), sig)) !=
	             DKIM_R_OK ||
	         (r = dkim_sig_query(dkim_tags_get(tags, "q"))) != DKIM_R_OK)
		return r;
	if ((r = dkim_sig_names(d, s, sig)) != DKIM_R_OK ||
	    (!seal && (r = dkim_sig_headers(h, sig)) != DKIM_R_OK))
		return r;
	if (kind == DKIM_SIG_DKIM)
		r = dkim_sig_identity(dkim_tags_get(tags, "i"), sig, res);
	else
		sig->identity_domain = sig->domain;
	if (r != DKIM_R_OK ||
	    (r = dkim_sig_times(dkim_tags_get(tags, "t"),
	                        dkim_tags_get(tags, "x"), sig)) != DKIM_R_OK)
		return r;
	if (!seal && l != NULL && (r = dkim_sig_length(l, sig)) != DKIM_R_OK)
		return r;
	if (dkim_base64_decode(b->value, b->value_len, sig->b, sizeof(sig->b),
	                       &sig->b_len) < 0 ||
	    sig->b_len == 0 ||
	    (!seal && dkim_base64_decode(bh->value, bh->value_len, sig->bh,
	                                 sizeof(sig->bh), &sig->bh_len) < 0))
		return DKIM_R_SYNTAX;
	return DKIM_R_OK;
}

enum dkim_reason
dkim_sig_parse_kind(const struct dkim_field *field,
                    const struct dkim_limits *limits, enum dkim_sig_kind kind,
                    struct dkim_sig *sig, struct dkim_sig_result *res)
{
	const char *value = (const char *)field->data + field->value_off;
	size_t len = field->len - field->value_off;
	struct dkim_tags tags;
	const struct dkim_tag *b;
	const char *error;

	memset(sig, 0, sizeof(*sig));
	if (field->value_off == 0)
		return DKIM_R_SYNTAX;
	if (len >= 2 && value[len - 2] == '\r' && value[len - 1] == '\n')
		len -= 2;
	if (dkim_tags_parse(value, len, &tags, &error) < 0)
		return DKIM_R_SYNTAX;
	dkim_sig_describe(&tags, res);
	if ((b = dkim_tags_get(&tags, "b")) != NULL) {
		sig->b_start = field->value_off + b->raw_start;
		sig->b_end = field->value_off + b->raw_end;
	}
	return dkim_sig_tags(&tags, limits, kind, sig, res);
}

enum dkim_reason
dkim_sig_parse(const struct dkim_field *field, const struct dkim_limits *limits,
               struct dkim_sig *sig, struct dkim_sig_result *res)
{
	return dkim_sig_parse_kind(field, limits, DKIM_SIG_DKIM, sig, res);
}

/* ---------------------------------------------------------- header data */

int
dkim_header_data(const struct dkim_msg *m, enum dkim_canon canon, const char *h,
                 size_t h_len, const uint8_t *sig_field, size_t sig_len,
                 size_t b_start, size_t b_end, struct buf *out)
{
	bool used[DKIM_HEADER_FIELDS_MAX] = {false};
	const char *item;
	size_t len, pos = 0;
	struct buf sig;
	int ret;

	for (size_t j = 0; j < m->count; j++)
		if (m->fields[j].data == sig_field)
			used[j] = true;
	while (dkim_list_next(h, h_len, &pos, &item, &len)) {
		for (size_t j = m->count; j-- > 0;) {
			const struct dkim_field *f = &m->fields[j];
			if (used[j] || !dkim_field_is(f, item, len))
				continue;
			used[j] = true;
			if (dkim_canon_header(canon, f->data, f->len, false,
			                      out) < 0)
				return -1;
			break;
		}
	}
	/* The signature field itself, b= treated as empty, no CRLF. */
	if (b_start > b_end || b_end > sig_len)
		return -1;
	buf_init(&sig, sig_len + 1);
	ret =
	    buf_append(&sig, sig_field, b_start) < 0 ||
	            buf_append(&sig, sig_field + b_end, sig_len - b_end) < 0 ||
	            dkim_canon_header(canon,
	                              sig.data != NULL ? sig.data : sig_field,
	                              sig.len, true, out) < 0
	        ? -1
	        : 0;
	buf_free(&sig);
	return ret;
}

/* ------------------------------------------------ Authentication-Results */

/* RFC 2045 token: printable ASCII but tspecials; at: "@" also allowed
 * (RFC 8601 pvalue for header.i). */
static bool
dkim_ar_token(const char *s, bool at)
{
	if (*s == '\0')
		return false;
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;
		if (c <= 32 || c >= 127 || (c == '@' && !at) ||
		    strchr("()<>,;:\\\"/[]?=", c) != NULL)
			return false;
	}
	return true;
}

static int
dkim_ar_prop(struct buf *out, const char *name, const char *value, bool at)
{
	if (value[0] == '\0')
		return 0;
	if (buf_printf(out, " %s=", name) < 0)
		return -1;
	if (dkim_ar_token(value, at))
		return buf_append_str(out, value);
	if (buf_append_byte(out, '"') < 0)
		return -1;
	for (; *value != '\0'; value++) {
		unsigned char c = (unsigned char)*value;
		if (c < 32 || c == 127)
			continue; /* never in a validated value; never let in */
		if ((c == '"' || c == '\\') && buf_append_byte(out, '\\') < 0)
			return -1;
		if (buf_append_byte(out, c) < 0)
			return -1;
	}
	return buf_append_byte(out, '"');
}

int
dkim_ar_append(struct buf *out, const struct dkim_sig_result *sig)
{
	if (buf_printf(out, "dkim=%s", dkim_result_str(sig->result)) < 0)
		return -1;
	if (sig->testing && buf_append_str(out, " (test mode)") < 0)
		return -1;
	if (sig->body_partial && sig->result == DKIM_PASS &&
	    buf_append_str(out, " (body partially signed)") < 0)
		return -1;
	if (sig->result != DKIM_PASS && sig->reason != DKIM_R_OK &&
	    buf_printf(out, " reason=\"%s\"", dkim_reason_str(sig->reason)) < 0)
		return -1;
	if (dkim_ar_prop(out, "header.d", sig->domain, false) < 0 ||
	    dkim_ar_prop(out, "header.i", sig->identity, true) < 0 ||
	    dkim_ar_prop(out, "header.s", sig->selector, false) < 0 ||
	    dkim_ar_prop(out, "header.a", sig->algorithm, false) < 0 ||
	    dkim_ar_prop(out, "header.b", sig->b, false) < 0)
		return -1;
	return 0;
}

int
dkim_ar_append_all(struct buf *out, const struct dkim_verify_result *res)
{
	if (res->count == 0)
		return buf_append_str(out, "dkim=none");
	for (size_t i = 0; i < res->count; i++) {
		if (i > 0 && buf_append_str(out, "; ") < 0)
			return -1;
		if (dkim_ar_append(out, &res->sig[i]) < 0)
			return -1;
	}
	return 0;
}
