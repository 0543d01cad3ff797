/* DKIM signing in three steps (privilege separation): begin (body hash,
 * field up to "b=", digest), sign with the key (lookup), finish (fold).
 * SECURITY: parameters are validated so nothing breaks out of a tag; the
 * private key is used only in dkim_sign_with_key. */
#include "mailauth/dkim_int.h"

#include <inttypes.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/rsa.h>

#include "core/base64.h"
#include "core/xmalloc.h"

#define DKIM_RSA_BITS_MIN 1024
#define DKIM_SHA256_LEN 32
/* Longest header field name we sign. */
#define DKIM_NAME_MAX 76
/* The field before b=: h= at its longest, and the other tags. */
#define DKIM_FIELD_MAX (DKIM_HEADER_NAMES_MAX * (DKIM_NAME_MAX + 4) + 2048)

struct dkim_signer {
	enum dkim_algorithm algorithm;
	struct buf field; /* "DKIM-Signature: …; b=" */
	size_t col;       /* column after "b=" */
	struct buf data;  /* canonicalized header data */
	uint8_t digest[DKIM_SHA256_LEN];
	char bh[BASE64_ENCODED_SIZE(DKIM_SHA256_LEN)];
};

/* The default h= (RFC 6376 §5.4.1 plus MIME and list fields). Over-signed
 * names are listed once more than present, so adding one breaks the
 * signature. */
static const struct {
	const char *name;
	bool oversign;
} dkim_default_headers[] = {
    {"From", true},
    {"Reply-To", true},
    {"Subject", true},
    {"Date", true},
    {"To", true},
    {"Cc", true},
    {"Sender", false},
    {"Message-ID", false},
    {"In-Reply-To", false},
    {"References", false},
    {"MIME-Version", false},
    {"Content-Type", false},
    {"Content-Transfer-Encoding", false},
    {"Resent-Date", false},
    {"Resent-From", false},
    {"Resent-To", false},
    {"Resent-Cc", false},
    {"List-Id", false},
    {"List-Help", false},
    {"List-Unsubscribe", false},
    {"List-Unsubscribe-Post", false},
    {"List-Subscribe", false},
    {"List-Post", false},
    {"List-Owner", false},
    {"List-Archive", false},
};

/* ------------------------------------------------------------ folding */

/* Append tok, preceded by " " when space; fold first ("\r\n ") when the
 * line would pass DKIM_LINE_MAX with reserve more characters. */
int
dkim_fold_add(struct dkim_fold *f, const char *tok, size_t len, bool space,
              size_t reserve)
{
	size_t need = len + reserve + (space ? 1 : 0);

	if (f->col + need > DKIM_LINE_MAX && f->col > 1) {
		if (buf_append(f->out, "\r\n ", 3) < 0)
			return -1;
		f->col = 1;
	} else if (space) {
		if (buf_append_byte(f->out, ' ') < 0)
			return -1;
		f->col++;
	}
	if (buf_append(f->out, tok, len) < 0)
		return -1;
	f->col += len;
	return 0;
}

/* " tag=value;" */
int
dkim_fold_tag(struct dkim_fold *f, const char *tag, const char *value)
{
	char tok[DKIM_IDENTITY_MAX + 16];
	int n = snprintf(tok, sizeof(tok), "%s=%s;", tag, value);

	if (n < 0 || (size_t)n >= sizeof(tok))
		return -1;
	return dkim_fold_add(f, tok, (size_t)n, true, 0);
}

/* ------------------------------------------------------ parameters */

static bool
dkim_name_ok(const char *s)
{
	if (*s == '\0' || strlen(s) > DKIM_NAME_MAX)
		return false;
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 33 || (unsigned char)*s > 126 ||
		    *s == ':' || *s == ';')
			return false;
	return true;
}

/* i=: written without quoted-printable, so only dkim-safe-char ("=" and
 * ";" excluded) and no WSP; "@" and a domain in d=. */
static bool
dkim_identity_ok(const char *i, const char *domain)
{
	const char *at = strrchr(i, '@');
	size_t dl = strlen(domain), il;

	if (at == NULL || strlen(i) > DKIM_IDENTITY_MAX)
		return false;
	for (const char *p = i; *p != '\0'; p++)
		if ((unsigned char)*p < 33 || (unsigned char)*p > 126 ||
		    *p == ';' || *p == '=')
			return false;
	at++;
	il = strlen(at);
	if (!dkim_domain_valid(at, il))
		return false;
	if (il == dl)
		return dkim_ci_equal(at, il, domain, dl);
	return il > dl && at[il - dl - 1] == '.' &&
	       dkim_ci_equal(at + il - dl, dl, domain, dl);
}

int
dkim_signing_id_check(const char *domain, const char *selector,
                      enum dkim_algorithm algorithm, const char **error_r)
{
	size_t dl, sl;

	if (domain == NULL || selector == NULL) {
		*error_r = "domain and selector are required";
		return -1;
	}
	dl = strlen(domain);
	sl = strlen(selector);
	/* "SELECTOR._domainkey.DOMAIN" must still be a domain name. */
	if (!dkim_domain_valid(domain, dl) || !dkim_domain_valid(selector, sl) ||
	    dl + sl + 12 > DKIM_DOMAIN_MAX) {
		*error_r = "invalid domain or selector";
		return -1;
	}
	if (algorithm != DKIM_ALG_RSA_SHA256 &&
	    algorithm != DKIM_ALG_ED25519_SHA256) {
		*error_r = "signing algorithm must be rsa-sha256 or "
		           "ed25519-sha256";
		return -1;
	}
	return 0;
}

static int
dkim_params_check(const struct dkim_sign_params *p, const char **error_r)
{
	if (dkim_signing_id_check(p->domain, p->selector, p->algorithm,
	                          error_r) < 0)
		return -1;
	if ((p->header_canon != DKIM_CANON_RELAXED &&
	     p->header_canon != DKIM_CANON_SIMPLE) ||
	    (p->body_canon != DKIM_CANON_RELAXED &&
	     p->body_canon != DKIM_CANON_SIMPLE)) {
		*error_r = "invalid canonicalization";
		return -1;
	}
	if (p->timestamp < 0 || (uint64_t)p->timestamp > 999999999999ULL ||
	    (p->expiration != 0 &&
	     (p->expiration <= p->timestamp ||
	      (uint64_t)p->expiration > 999999999999ULL))) {
		*error_r = "expiration must be later than the timestamp";
		return -1;
	}
	if (p->identity != NULL && !dkim_identity_ok(p->identity, p->domain)) {
		*error_r = "identity must be an address in the signing domain";
		return -1;
	}
	return 0;
}

static size_t
dkim_count_fields(const struct dkim_msg *m, const char *name)
{
	size_t n = 0, len = strlen(name);

	for (size_t i = 0; i < m->count; i++)
		n += dkim_field_is(&m->fields[i], name, len);
	return n;
}

/* The h= value ("From:From:To:…") into out. */
int
dkim_sign_header_list(const struct dkim_msg *m, const char *const *headers,
                      struct buf *out, const char **error_r)
{
	size_t names = 0;
	bool from = false;

	if (headers != NULL) {
		for (size_t i = 0; headers[i] != NULL; i++) {
			if (!dkim_name_ok(headers[i])) {
				*error_r = "invalid header field name";
				return -1;
			}
			from = from ||
			       dkim_ci_equal(headers[i], strlen(headers[i]),
			                     "from", 4);
			if (++names > DKIM_HEADER_NAMES_MAX ||
			    (i > 0 && buf_append_byte(out, ':') < 0) ||
			    buf_append_str(out, headers[i]) < 0) {
				*error_r = "too many header fields to sign";
				return -1;
			}
		}
		if (!from) {
			*error_r = "the header list must include From";
			return -1;
		}
		return 0;
	}
	for (size_t i = 0;
	     i < sizeof(dkim_default_headers) / sizeof(dkim_default_headers[0]);
	     i++) {
		size_t n = dkim_count_fields(m, dkim_default_headers[i].name) +
		           dkim_default_headers[i].oversign;
		for (; n > 0; n--) {
			if (++names > DKIM_HEADER_NAMES_MAX ||
			    (out->len > 0 && buf_append_byte(out, ':') < 0) ||
			    buf_append_str(out, dkim_default_headers[i].name) <
			        0) {
				*error_r = "too many header fields to sign";
				return -1;
			}
		}
	}
	return 0;
}

/* ------------------------------------------------------------ begin */

int
dkim_sign_body_hash(const struct dkim_msg *m, enum dkim_canon canon, char *bh,
                    uint64_t *len_r)
{
	struct dkim_body body;
	uint8_t md[EVP_MAX_MD_SIZE];
	unsigned mdlen;
	int ret;

	if (dkim_body_init(&body, canon, EVP_sha256(), UINT64_MAX) < 0)
		return -1;
	if (m->body != NULL)
		dkim_body_update(&body, m->body, m->body_len);
	ret = dkim_body_final(&body, md, &mdlen);
	*len_r = body.total;
	dkim_body_clear(&body);
	if (ret < 0 || mdlen != DKIM_SHA256_LEN)
		return -1;
	base64_encode(md, mdlen, bh);
	return 0;
}

static int
dkim_sign_body(const struct dkim_msg *m, const struct dkim_sign_params *p,
               struct dkim_signer *s, uint64_t *len_r)
{
	return dkim_sign_body_hash(m, p->body_canon, s->bh, len_r);
}

/* h=: "name : name : …;", a token per name and per ":" so the list can
 * fold anywhere ([FWS] ":" [FWS] in RFC 6376 §3.5). */
int
dkim_sign_h(struct dkim_fold *f, const struct buf *h)
{
	size_t i = 0;

	while (i < h->len) {
		const uint8_t *colon = memchr(h->data + i, ':', h->len - i);
		size_t end = colon == NULL ? h->len : (size_t)(colon - h->data);
		char tok[DKIM_NAME_MAX + 4];
		int n =
		    snprintf(tok, sizeof(tok), "%s%.*s%s", i == 0 ? "h=" : "",
		             (int)(end - i), (const char *)h->data + i,
		             colon == NULL ? ";" : "");
		if (n < 0 || (size_t)n >= sizeof(tok) ||
		    dkim_fold_add(f, tok, (size_t)n, true, 0) < 0 ||
		    (colon != NULL && dkim_fold_add(f, ":", 1, true, 0) < 0))
			return -1;
		i = end + 1;
	}
	return 0;
}

/* "DKIM-Signature: v=1; a=…; …; bh=…;" then " b=" with room after it.
 * The tag order and h= spacing are dkimpy's, those of the RFC 8463
 * example, so that example re-signs to the same bytes. */
static int
dkim_sign_field(const struct dkim_sign_params *p, const struct buf *h,
                uint64_t body_len, struct dkim_signer *s)
{
	struct dkim_fold f = {.out = &s->field, .col = 0};
	static const char *const canon[] = {"relaxed", "simple"};
	char t[24], x[24], l[24], c[24];

	snprintf(c, sizeof(c), "%s/%s", canon[p->header_canon],
	         canon[p->body_canon]);
	snprintf(t, sizeof(t), "%" PRIu64, (uint64_t)p->timestamp);
	snprintf(x, sizeof(x), "%" PRIu64, (uint64_t)p->expiration);
	snprintf(l, sizeof(l), "%" PRIu64, body_len);
	if (dkim_fold_add(&f, "DKIM-Signature:", 15, false, 0) < 0 ||
	    dkim_fold_tag(&f, "v", "1") < 0 ||
	    dkim_fold_tag(&f, "a", dkim_algorithm_str(p->algorithm)) < 0 ||
	    dkim_fold_tag(&f, "c", c) < 0 ||
	    dkim_fold_tag(&f, "d", p->domain) < 0 ||
	    (p->identity != NULL && dkim_fold_tag(&f, "i", p->identity) < 0) ||
	    dkim_fold_tag(&f, "q", "dns/txt") < 0 ||
	    dkim_fold_tag(&f, "s", p->selector) < 0 ||
	    dkim_fold_tag(&f, "t", t) < 0 ||
	    (p->expiration != 0 && dkim_fold_tag(&f, "x", x) < 0) ||
	    (p->body_length && dkim_fold_tag(&f, "l", l) < 0) ||
	    dkim_sign_h(&f, h) < 0 || dkim_fold_tag(&f, "bh", s->bh) < 0 ||
	    dkim_fold_add(&f, "b=", 2, true, DKIM_B_RESERVE) < 0)
		return -1;
	s->col = f.col;
	return 0;
}

static int
dkim_sign_digest(const struct dkim_msg *m, const struct dkim_sign_params *p,
                 const struct buf *h, size_t header_bytes,
                 struct dkim_signer *s)
{
	unsigned len = 0;

	buf_init(&s->data, header_bytes + s->field.len + 64);
	if (dkim_header_data(m, p->header_canon, (const char *)h->data, h->len,
	                     s->field.data, s->field.len, s->field.len,
	                     s->field.len, &s->data) < 0)
		return -1;
	if (EVP_Digest(s->data.data, s->data.len, s->digest, &len, EVP_sha256(),
	               NULL) != 1 ||
	    len != DKIM_SHA256_LEN)
		return -1;
	return 0;
}

int
dkim_sign_begin(const uint8_t *msg, size_t len,
                const struct dkim_sign_params *params,
                struct dkim_signer **signer_r, const char **error_r)
{
	struct dkim_signer *s;
	struct dkim_msg m;
	struct buf h;
	uint64_t body_len = 0;
	size_t header_bytes;
	int ret = -1;

	if (dkim_params_check(params, error_r) < 0)
		return -1;
	dkim_msg_parse(msg, len, &m);
	header_bytes = m.body != NULL ? (size_t)(m.body - msg) : len;
	if (m.too_many) {
		*error_r = "too many header fields";
		dkim_msg_clear(&m);
		return -1;
	}
	if (dkim_count_fields(&m, "From") == 0) {
		*error_r = "no From field to sign";
		dkim_msg_clear(&m);
		return -1;
	}
	s = xcalloc(1, sizeof(*s));
	s->algorithm = params->algorithm;
	buf_init(&s->field, DKIM_FIELD_MAX);
	buf_init(&h, DKIM_HEADER_NAMES_MAX * (DKIM_NAME_MAX + 1));
	if (dkim_sign_header_list(&m, params->headers, &h, error_r) < 0)
		goto out;
	if (dkim_sign_body(&m, params, s, &body_len) < 0 ||
	    dkim_sign_field(params, &h, body_len, s) < 0 ||
	    dkim_sign_digest(&m, params, &h, header_bytes, s) < 0) {
		*error_r = "canonicalization or hashing failed";
		goto out;
	}
	*signer_r = s;
	s = NULL;
	ret = 0;
out:
	buf_free(&h);
	dkim_msg_clear(&m);
	dkim_signer_free(&s);
	return ret;
}

enum dkim_algorithm
dkim_signer_algorithm(const struct dkim_signer *signer)
{
	return signer->algorithm;
}

const uint8_t *
dkim_signer_digest(const struct dkim_signer *signer, size_t *len_r)
{
	*len_r = sizeof(signer->digest);
	return signer->digest;
}

const uint8_t *
dkim_signer_data(const struct dkim_signer *signer, size_t *len_r)
{
	*len_r = signer->data.len;
	return signer->data.data;
}

const char *
dkim_signer_body_hash(const struct dkim_signer *signer)
{
	return signer->bh;
}

struct dkim_signer *
dkim_signer_new(enum dkim_algorithm algorithm, struct buf *field, size_t col,
                struct buf *data)
{
	struct dkim_signer *s = xcalloc(1, sizeof(*s));
	unsigned len = 0;

	s->algorithm = algorithm;
	s->field = *field;
	s->col = col;
	s->data = *data;
	memset(field, 0, sizeof(*field));
	memset(data, 0, sizeof(*data));
	if (EVP_Digest(s->data.data != NULL ? s->data.data
	                                    : (const uint8_t *)"",
	               s->data.len, s->digest, &len, EVP_sha256(), NULL) != 1 ||
	    len != DKIM_SHA256_LEN)
		dkim_signer_free(&s);
	return s;
}

void
dkim_signer_free(struct dkim_signer **signer)
{
	if (*signer == NULL)
		return;
	buf_free(&(*signer)->field);
	buf_free(&(*signer)->data);
	xfree(signer);
}

/* ------------------------------------------------------------ the key */

static int
dkim_sign_rsa(EVP_PKEY *key, const uint8_t *digest, uint8_t *sig, size_t sigmax,
              size_t *siglen_r)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(key, NULL);
	size_t len = 0;
	int ok = ctx != NULL && EVP_PKEY_sign_init(ctx) == 1 &&
	         EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) == 1 &&
	         EVP_PKEY_CTX_set_signature_md(ctx, EVP_sha256()) == 1 &&
	         EVP_PKEY_sign(ctx, NULL, &len, digest, DKIM_SHA256_LEN) == 1 &&
	         len <= sigmax &&
	         EVP_PKEY_sign(ctx, sig, &len, digest, DKIM_SHA256_LEN) == 1;

	EVP_PKEY_CTX_free(ctx);
	*siglen_r = len;
	return ok ? 0 : -1;
}

/* RFC 8463 §3: PureEdDSA over the SHA-256 of the header data. */
static int
dkim_sign_ed25519(EVP_PKEY *key, const uint8_t *digest, uint8_t *sig,
                  size_t sigmax, size_t *siglen_r)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	size_t len = 0;
	int ok =
	    ctx != NULL &&
	    EVP_DigestSignInit(ctx, NULL, NULL, NULL, key) == 1 &&
	    EVP_DigestSign(ctx, NULL, &len, digest, DKIM_SHA256_LEN) == 1 &&
	    len <= sigmax &&
	    EVP_DigestSign(ctx, sig, &len, digest, DKIM_SHA256_LEN) == 1;

	EVP_MD_CTX_free(ctx);
	*siglen_r = len;
	return ok ? 0 : -1;
}

int
dkim_sign_with_key(EVP_PKEY *key, enum dkim_algorithm algorithm,
                   const uint8_t *digest, size_t digest_len, uint8_t *sig,
                   size_t sigmax, size_t *siglen_r, const char **error_r)
{
	int ret;

	if (digest_len != DKIM_SHA256_LEN) {
		*error_r = "digest is not SHA-256";
		return -1;
	}
	if (algorithm == DKIM_ALG_RSA_SHA256) {
		if (!EVP_PKEY_is_a(key, "RSA") ||
		    EVP_PKEY_get_bits(key) < DKIM_RSA_BITS_MIN) {
			*error_r = "rsa-sha256 needs an RSA key of 1024 bits "
			           "or more";
			return -1;
		}
		ret = dkim_sign_rsa(key, digest, sig, sigmax, siglen_r);
	} else if (algorithm == DKIM_ALG_ED25519_SHA256) {
		if (!EVP_PKEY_is_a(key, "ED25519")) {
			*error_r = "ed25519-sha256 needs an Ed25519 key";
			return -1;
		}
		ret = dkim_sign_ed25519(key, digest, sig, sigmax, siglen_r);
	} else {
		*error_r = "signing algorithm must be rsa-sha256 or "
		           "ed25519-sha256";
		return -1;
	}
	ERR_clear_error();
	if (ret < 0)
		*error_r = "signing failed (OpenSSL)";
	return ret;
}

/* ------------------------------------------------------------ finish */

char *
dkim_sign_finish(const struct dkim_signer *signer, const uint8_t *sig,
                 size_t siglen, const char **error_r)
{
	char b64[BASE64_ENCODED_SIZE(DKIM_SIGNATURE_MAX)];
	struct buf out;
	size_t n, i = 0, col = signer->col;
	char *field;

	if (siglen == 0 || siglen > DKIM_SIGNATURE_MAX) {
		*error_r = "bad signature length";
		return NULL;
	}
	n = base64_encode(sig, siglen, b64);
	/* The field as it was signed, then b= folded at DKIM_LINE_MAX. */
	buf_init(&out, signer->field.len + n + 3 * (n / 64 + 2) + 2);
	if (buf_append(&out, signer->field.data, signer->field.len) < 0)
		goto overflow;
	while (i < n) {
		size_t take = col < DKIM_LINE_MAX ? DKIM_LINE_MAX - col : 1;
		if (take > n - i)
			take = n - i;
		if (buf_append(&out, b64 + i, take) < 0)
			goto overflow;
		i += take;
		col += take;
		if (i < n) {
			if (buf_append(&out, "\r\n ", 3) < 0)
				goto overflow;
			col = 1;
		}
	}
	if (buf_append(&out, "\r\n", 2) < 0)
		goto overflow;
	field = xstrndup((const char *)out.data, out.len);
	buf_free(&out);
	return field;
overflow:
	buf_free(&out);
	*error_r = "signature field too long";
	return NULL;
}

char *
dkim_sign_message(const uint8_t *msg, size_t len,
                  const struct dkim_sign_params *params, EVP_PKEY *key,
                  const char **error_r)
{
	struct dkim_signer *s = NULL;
	uint8_t sig[DKIM_SIGNATURE_MAX];
	const uint8_t *digest;
	size_t dlen, siglen;
	char *field = NULL;

	if (dkim_sign_begin(msg, len, params, &s, error_r) < 0)
		return NULL;
	digest = dkim_signer_digest(s, &dlen);
	if (dkim_sign_with_key(key, dkim_signer_algorithm(s), digest, dlen, sig,
	                       sizeof(sig), &siglen, error_r) == 0)
		field = dkim_sign_finish(s, sig, siglen, error_r);
	dkim_signer_free(&s);
	return field;
}
