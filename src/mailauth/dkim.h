/* DKIM signing and verification (RFC 6376, RFC 8301, RFC 8463 Ed25519):
 * the digest is made here and signed where the key is kept (lookup).
 * SECURITY: messages, signatures and key records are untrusted; counts and
 * lengths are bounded, and the defaults refuse rsa-sha1 and RSA < 1024. */
#ifndef TERN_MAILAUTH_DKIM_H
#define TERN_MAILAUTH_DKIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <openssl/types.h>

#include "core/buf.h"
#include "mailauth/dnsif.h"

#define DKIM_VERIFY_MAX 5           /* signatures checked per message */
#define DKIM_DIGEST_MAX 32          /* SHA-256 */
#define DKIM_SIGNATURE_MAX 2048     /* bytes: RSA-16384 */
#define DKIM_DOMAIN_MAX 253         /* d=, and s= + "._domainkey." + d= */
#define DKIM_IDENTITY_MAX 320       /* i= once quoted-printable is decoded */
#define DKIM_HEADER_NAMES_MAX 128   /* h= entries */
#define DKIM_HEADER_FIELDS_MAX 1024 /* header fields looked at */
#define DKIM_LINE_MAX 78            /* folded DKIM-Signature lines, no CRLF */

enum dkim_algorithm {
	DKIM_ALG_RSA_SHA256,
	DKIM_ALG_ED25519_SHA256,
	DKIM_ALG_RSA_SHA1, /* verification only, with dkim_limits.rsa_sha1 */
};

/* Relaxed is 0 so a zeroed dkim_sign_params means relaxed/relaxed. */
enum dkim_canon {
	DKIM_CANON_RELAXED,
	DKIM_CANON_SIMPLE,
};

/* ---------------------------------------------------------------- signing
 * Three steps so that the private key is used only where it is kept:
 * dkim_sign_begin (any process: canonicalize, body hash, the digest to
 * sign), dkim_sign_with_key (lookup: digest + key → signature bytes),
 * dkim_sign_finish (any process: the folded header field). */

struct dkim_sign_params {
	const char *domain;            /* d= */
	const char *selector;          /* s= */
	enum dkim_algorithm algorithm; /* rsa-sha256 or ed25519-sha256 */
	enum dkim_canon header_canon, body_canon;
	/* h= exactly as given, NULL-terminated (repeat a name to over-sign);
	 * NULL: the default list (dkim_sign.c), names present in the message
	 * signed as often as they occur, From, To, Cc, Subject, Date and
	 * Reply-To once more than that. */
	const char *const *headers;
	const char *identity; /* i= ("user@sub.domain"), NULL: none */
	time_t timestamp;     /* t= */
	time_t expiration;    /* x=, 0: none; must be later than t= */
	bool body_length;     /* add l= (discouraged: RFC 6376 §8.2) */
};

struct dkim_signer;

/* Canonicalize msg (CRLF form, in memory) and compute bh= and the digest.
 * 0 with *signer_r, or -1 with a static reason (bad parameters, no From
 * field, header too large). */
int dkim_sign_begin(const uint8_t *msg, size_t len,
                    const struct dkim_sign_params *params,
                    struct dkim_signer **signer_r, const char **error_r);
/* What lookup is sent: the algorithm and the SHA-256 digest of the
 * canonicalized header data (RFC 8463: Ed25519 signs this digest too). */
enum dkim_algorithm dkim_signer_algorithm(const struct dkim_signer *signer);
const uint8_t *dkim_signer_digest(const struct dkim_signer *signer,
                                  size_t *len_r);
/* The exact canonicalized bytes the digest covers, and bh= (base64). */
const uint8_t *dkim_signer_data(const struct dkim_signer *signer,
                                size_t *len_r);
const char *dkim_signer_body_hash(const struct dkim_signer *signer);
/* Sign digest with key (RSA ≥ 1024 bits: PKCS#1 v1.5 SHA-256; Ed25519:
 * the 32 digest bytes are the message). The signature goes to sig
 * (sigmax ≥ DKIM_SIGNATURE_MAX is always enough); -1 when the key does not
 * fit the algorithm or OpenSSL fails. */
int dkim_sign_with_key(EVP_PKEY *key, enum dkim_algorithm algorithm,
                       const uint8_t *digest, size_t digest_len, uint8_t *sig,
                       size_t sigmax, size_t *siglen_r, const char **error_r);
/* The complete "DKIM-Signature: …\r\n" field, folded to lines of at most
 * DKIM_LINE_MAX characters (malloc'd), or NULL with a static reason. */
char *dkim_sign_finish(const struct dkim_signer *signer, const uint8_t *sig,
                       size_t siglen, const char **error_r);
void dkim_signer_free(struct dkim_signer **signer);
/* All three steps at once (tests, tools); malloc'd header field or NULL. */
char *dkim_sign_message(const uint8_t *msg, size_t len,
                        const struct dkim_sign_params *params, EVP_PKEY *key,
                        const char **error_r);

/* ----------------------------------------------------------- verification */

/* RFC 8601 §2.7.1 results. */
enum dkim_result {
	DKIM_NONE,
	DKIM_PASS,
	DKIM_FAIL,
	DKIM_POLICY,
	DKIM_NEUTRAL,
	DKIM_TEMPERROR,
	DKIM_PERMERROR,
};

enum dkim_reason {
	DKIM_R_OK,
	/* fail */
	DKIM_R_BODY_HASH,   /* body hash did not verify */
	DKIM_R_SIGNATURE,   /* signature did not verify */
	DKIM_R_KEY_REVOKED, /* empty p= */
	DKIM_R_EXPIRED,     /* x= is past */
	/* permerror */
	DKIM_R_SYNTAX,        /* tag-list syntax, duplicate tag, bad value */
	DKIM_R_VERSION,       /* v= missing or not 1 */
	DKIM_R_MISSING_TAG,   /* a b bh d h s required */
	DKIM_R_ALGORITHM,     /* a= unknown, or rsa-sha1 (RFC 8301) */
	DKIM_R_CANON,         /* c= unknown */
	DKIM_R_QUERY,         /* q= has no dns/txt */
	DKIM_R_DOMAIN,        /* d= or s= not a domain name */
	DKIM_R_IDENTITY,      /* i= not in d= */
	DKIM_R_FROM_UNSIGNED, /* h= lacks From */
	DKIM_R_TIMESTAMPS,    /* x= not later than t= */
	DKIM_R_LENGTH,        /* l= longer than the canonicalized body */
	DKIM_R_HEADERS,       /* too many header fields or h= names */
	DKIM_R_KEY_MISSING,   /* NXDOMAIN or no TXT */
	DKIM_R_KEY_SYNTAX,    /* key record unparseable, bad p= */
	DKIM_R_KEY_TYPE,      /* k= unknown or not a='s */
	DKIM_R_KEY_HASH,      /* key h= excludes a='s hash */
	DKIM_R_KEY_SERVICE,   /* key s= excludes email */
	DKIM_R_KEY_STRICT,    /* key t=s and i= in a subdomain of d= */
	DKIM_R_KEY_SIZE,      /* RSA below the minimum */
	/* temperror */
	DKIM_R_DNS,
	DKIM_R_INTERNAL, /* OpenSSL could not allocate or hash */
	/* policy */
	DKIM_R_PARTIAL_BODY, /* l= left bytes unsigned (partial_body_policy) */
};

struct dkim_sig_result {
	enum dkim_result result;
	enum dkim_reason reason;
	/* As far as the signature parsed; "" when absent or unusable. */
	char domain[DKIM_DOMAIN_MAX + 1];     /* d= */
	char selector[DKIM_DOMAIN_MAX + 1];   /* s= */
	char algorithm[24];                   /* a= */
	char identity[DKIM_IDENTITY_MAX + 1]; /* i= decoded, if present */
	char b[9];                            /* header.b: first 8 of b= */
	unsigned key_bits;                    /* RSA modulus bits */
	bool testing;        /* key t=y: the result is informational */
	bool length_limited; /* l= present (RFC 6376 §8.2) */
	bool body_partial;   /* l= shorter than the body: the rest unsigned */
};

struct dkim_verify_result {
	size_t count;     /* 0: no DKIM-Signature (dkim=none) */
	size_t unchecked; /* DKIM-Signature fields past the limit */
	struct dkim_sig_result sig[DKIM_VERIFY_MAX];
};

/* A zeroed struct (or NULL) gives the defaults. */
struct dkim_limits {
	unsigned signatures;   /* 0: DKIM_VERIFY_MAX (also the ceiling) */
	unsigned rsa_bits_min; /* 0: 1024 (RFC 8301); 512..1023 is only for
	                          replaying old conformance corpora */
	bool rsa_sha1;         /* accept rsa-sha1 (RFC 8301 forbids; corpora) */
	bool partial_body_policy; /* l= leaving bytes unsigned → policy */
};

/* Verify up to limits->signatures DKIM-Signature fields of msg (CRLF form)
 * at time now, fetching keys through dns; one result per signature, top
 * down. Failures are results, never errors: returns 0. */
int dkim_verify(const struct ma_dns *dns, const uint8_t *msg, size_t len,
                time_t now, const struct dkim_limits *limits,
                struct dkim_verify_result *res_r);

const char *dkim_result_str(enum dkim_result result);
const char *dkim_reason_str(enum dkim_reason reason);
const char *dkim_algorithm_str(enum dkim_algorithm algorithm);

/* Append one Authentication-Results resinfo without the leading "; ":
 * "dkim=pass header.d=example.com header.s=sel header.a=rsa-sha256
 * header.b=abcdEFGH" (header.i when i= was given, reason= when not pass,
 * values quoted when they are not RFC 2045 tokens). 0, or -1 when out is
 * full. */
int dkim_ar_append(struct buf *out, const struct dkim_sig_result *sig);
/* Every result joined with "; ", or "dkim=none". */
int dkim_ar_append_all(struct buf *out, const struct dkim_verify_result *res);

#endif
