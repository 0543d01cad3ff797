/* DKIM key records (RFC 6376 §3.6.1, RFC 8301, RFC 8463 §4.2): v=, k=, h=,
 * s=, t=y/s, p= (empty: revoked).
 * SECURITY: DNS data the sender controls; p= is decoded into a fixed buffer
 * and OpenSSL's DER parser must consume it exactly. */
#include "mailauth/dkim_int.h"

#include <string.h>

#include <openssl/err.h>
#include <openssl/x509.h>

#define DKIM_ED25519_LEN 32

static bool
dkim_item_is(const char *item, size_t len, const char *s)
{
	return dkim_ci_equal(item, len, s, strlen(s));
}

/* h=: the hash algorithms the key may be used with. */
static enum dkim_reason
dkim_key_hashes(const struct dkim_tag *tag, struct dkim_key *key)
{
	const char *item;
	size_t len, pos = 0;

	key->hashes = 0;
	while (dkim_list_next(tag->value, tag->value_len, &pos, &item, &len)) {
		if (dkim_item_is(item, len, "sha1"))
			key->hashes |= DKIM_KEY_HASH_SHA1;
		else if (dkim_item_is(item, len, "sha256"))
			key->hashes |= DKIM_KEY_HASH_SHA256;
		/* others are ignored (§3.6.1) */
	}
	return DKIM_R_OK;
}

/* s=: "*" or "email" among the service types. */
static enum dkim_reason
dkim_key_services(const struct dkim_tag *tag)
{
	const char *item;
	size_t len, pos = 0;

	while (dkim_list_next(tag->value, tag->value_len, &pos, &item, &len))
		if (dkim_item_is(item, len, "*") ||
		    dkim_item_is(item, len, "email"))
			return DKIM_R_OK;
	return DKIM_R_KEY_SERVICE;
}

static void
dkim_key_flags(const struct dkim_tag *tag, struct dkim_key *key)
{
	const char *item;
	size_t len, pos = 0;

	while (dkim_list_next(tag->value, tag->value_len, &pos, &item, &len)) {
		if (len == 1 && item[0] == 'y')
			key->testing = true;
		else if (len == 1 && item[0] == 's')
			key->strict = true;
	}
}

/* SubjectPublicKeyInfo, as everyone publishes; a bare PKCS#1
 * RSAPublicKey, which RFC 6376 §3.6.1's wording allows and some do. */
static EVP_PKEY *
dkim_rsa_from_der(const uint8_t *der, size_t len)
{
	const unsigned char *p = der;
	EVP_PKEY *pkey = d2i_PUBKEY(NULL, &p, (long)len);

	if (pkey != NULL && p != der + len) {
		EVP_PKEY_free(pkey);
		pkey = NULL;
	}
	if (pkey == NULL) {
		p = der;
		pkey = d2i_PublicKey(EVP_PKEY_RSA, NULL, &p, (long)len);
		if (pkey != NULL && p != der + len) {
			EVP_PKEY_free(pkey);
			pkey = NULL;
		}
	}
	ERR_clear_error();
	if (pkey != NULL && !EVP_PKEY_is_a(pkey, "RSA")) {
		EVP_PKEY_free(pkey);
		pkey = NULL;
	}
	return pkey;
}

static enum dkim_reason
dkim_key_material(const struct dkim_tag *p, struct dkim_key *key)
{
	uint8_t der[DKIM_KEY_DER_MAX];
	size_t len;

	if (dkim_base64_decode(p->value, p->value_len, der, sizeof(der), &len) <
	    0)
		return DKIM_R_KEY_SYNTAX;
	if (len == 0) {
		key->revoked = true;
		return DKIM_R_OK;
	}
	if (key->type == DKIM_KEY_ED25519) {
		if (len != DKIM_ED25519_LEN)
			return DKIM_R_KEY_SYNTAX;
		key->pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL,
		                                        der, len);
		ERR_clear_error();
		return key->pkey != NULL ? DKIM_R_OK : DKIM_R_KEY_SYNTAX;
	}
	if ((key->pkey = dkim_rsa_from_der(der, len)) == NULL)
		return DKIM_R_KEY_SYNTAX;
	key->bits = (unsigned)EVP_PKEY_get_bits(key->pkey);
	return DKIM_R_OK;
}

static enum dkim_reason
dkim_key_tags(const struct dkim_tags *tags, struct dkim_key *key)
{
	const struct dkim_tag *v = dkim_tags_get(tags, "v");
	const struct dkim_tag *k = dkim_tags_get(tags, "k");
	const struct dkim_tag *h = dkim_tags_get(tags, "h");
	const struct dkim_tag *s = dkim_tags_get(tags, "s");
	const struct dkim_tag *t = dkim_tags_get(tags, "t");
	const struct dkim_tag *p = dkim_tags_get(tags, "p");
	enum dkim_reason r;

	/* v= is optional, but when there it is first and DKIM1. */
	if (v != NULL && (v != &tags->tag[0] || !dkim_tag_value_is(v, "DKIM1")))
		return DKIM_R_KEY_SYNTAX;
	if (p == NULL)
		return DKIM_R_KEY_SYNTAX;
	key->type = DKIM_KEY_RSA;
	if (k != NULL) {
		if (dkim_tag_value_is(k, "ed25519"))
			key->type = DKIM_KEY_ED25519;
		else if (!dkim_tag_value_is(k, "rsa"))
			return DKIM_R_KEY_TYPE;
	}
	key->hashes = DKIM_KEY_HASH_SHA1 | DKIM_KEY_HASH_SHA256;
	if (h != NULL && (r = dkim_key_hashes(h, key)) != DKIM_R_OK)
		return r;
	if (s != NULL && (r = dkim_key_services(s)) != DKIM_R_OK)
		return r;
	if (t != NULL)
		dkim_key_flags(t, key);
	return dkim_key_material(p, key);
}

enum dkim_reason
dkim_key_parse(const char *text, size_t len, struct dkim_key *key)
{
	struct dkim_tags tags;
	const char *error;
	enum dkim_reason r;

	memset(key, 0, sizeof(*key));
	if (dkim_tags_parse(text, len, &tags, &error) < 0)
		return DKIM_R_KEY_SYNTAX;
	if ((r = dkim_key_tags(&tags, key)) != DKIM_R_OK)
		dkim_key_clear(key);
	return r;
}

void
dkim_key_clear(struct dkim_key *key)
{
	EVP_PKEY_free(key->pkey);
	memset(key, 0, sizeof(*key));
}
