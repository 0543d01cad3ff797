/* Password hashes (Dovecot schemes, new Argon2id hashes) and SCRAM-SHA-256
 * keys: see password.h.
 * SECURITY: runs in lookup; the stored hash comes from the database and the
 * password from a peer. Both are bounded before use, every comparison of
 * secret-dependent bytes is constant time (CRYPTO_memcmp, libsodium's and
 * libargon2's compare), cost parameters read from stored hashes are capped, and every
 * copy of a password or derived key is wiped (OPENSSL_cleanse). */
#include "directory/password.h"

#include <assert.h>
#include <crypt.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>

#include <argon2.h>
#include <sodium.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "core/base64.h"
#include "core/config.h"
#include "core/log.h"
#include "core/xmalloc.h"

#define SCHEME_NAME_MAX 32 /* "{…}" longer than this is no scheme */

#define SHA256_LEN 32
#define SHA512_LEN 64

#define ARGON2_SALT_LEN 16
#define ARGON2_HASH_LEN 32
/* Caps on the parameters of a stored Argon2 hash: the config maxima, so
 * anything tern can write verifies, and a bad row cannot ask for 1 TiB. */
#define ARGON2_VERIFY_MEMORY_MAX (UINT32_C(4) << 20) /* KiB */
#define ARGON2_VERIFY_TIME_MAX 100
#define ARGON2_VERIFY_LANES_MAX 64
#define ARGON2_SALT_B64_MIN 11 /* 8 bytes, libargon2's minimum */
#define ARGON2_HASH_B64_MIN 22 /* 16 bytes: shorter is a truncated row */

/* Caps on crypt(3) costs: about 2-3 s on one core of 2024 hardware. */
#define BCRYPT_COST_MIN 4
#define BCRYPT_COST_MAX 16
#define SHACRYPT_ROUNDS_MAX 10000000

#define SCRAM_SALT_LEN 16 /* new keys */
#define SCRAM_SALT_MIN 8  /* parsed keys */
#define SCRAM_ITER_MIN 4096
#define SCRAM_ITER_MAX 10000000
#define SCRAM_TEXT_MAX 256
#define SCRAM_PREFIX "SCRAM-SHA-256$"

struct scheme;
typedef enum password_result scheme_verify_fn(const struct scheme *s,
                                              const char *data,
                                              const char *password, size_t len);

struct scheme {
	const char *name;
	scheme_verify_fn *verify;
	bool plain;                        /* needs policy->allow_plain */
	argon2_type argon2;                /* verify_argon2 */
	const char *const *crypt_prefixes; /* verify_crypt */
};

/* A crypt(3) or OpenSSL primitive failing on valid input means memory
 * exhaustion or a broken library: like xmalloc, stop here. */
static void __attribute__((noreturn)) crypto_fail(const char *what)
{
	fatal(EX_SOFTWARE, "event=crypto_failure op=%s", what);
}

void
password_policy_default(struct password_policy *p)
{
	p->argon2_time = 3;
	p->argon2_memory_kib = 65536;
	p->argon2_parallelism = 1;
	p->allow_plain = false;
	p->scram_iterations = 10000;
}

/* Passwords we accept at all: bounded, no NUL (a C-string API somewhere
 * would cut the password short). */
static bool
password_acceptable(const char *password, size_t len)
{
	if (password == NULL)
		return false;
	if (len > PASSWORD_MAX)
		return false;
	return memchr(password, '\0', len) == NULL;
}

/* ---- encodings ---------------------------------------------------------- */

static const char b64_chars[] = BASE64_ALPHABET;

/* Stored hashes never hold empty base64 fields. */
static int
b64_decode(const char *in, size_t in_len, uint8_t *out, size_t out_max,
           size_t *out_len_r)
{
	if (in_len == 0)
		return -1;
	return base64_decode(in, in_len, out, out_max, out_len_r);
}

static void
b64_encode(const uint8_t *in, size_t len, char *out)
{
	base64_encode(in, len, out);
}

static int
hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Exactly out_len bytes of hex. */
static int
hex_decode(const char *in, size_t in_len, uint8_t *out, size_t out_len)
{
	if (in_len != 2 * out_len)
		return -1;
	for (size_t i = 0; i < out_len; i++) {
		int hi = hex_value(in[2 * i]), lo = hex_value(in[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -1;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

/* Decimal without sign or leading zeros, at most max; advances *pp. */
static int
parse_uint(const char **pp, uint64_t max, uint64_t *value_r)
{
	const char *p = *pp;
	uint64_t v = 0;
	size_t n = 0;

	while (*p >= '0' && *p <= '9') {
		if (++n > 10)
			return -1;
		v = v * 10 + (uint64_t)(*p - '0');
		p++;
	}
	if (n == 0 || v > max || (n > 1 && **pp == '0'))
		return -1;
	*pp = p;
	*value_r = v;
	return 0;
}

/* ---- digests ------------------------------------------------------------ */

static void
sha256(const void *data, size_t len, uint8_t out[SHA256_LEN])
{
	if (EVP_Digest(data, len, out, NULL, EVP_sha256(), NULL) != 1)
		crypto_fail("sha256");
}

static void
sha512_2(const void *a, size_t a_len, const void *b, size_t b_len,
         uint8_t out[SHA512_LEN])
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();

	if (ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha512(), NULL) != 1 ||
	    EVP_DigestUpdate(ctx, a, a_len) != 1 ||
	    EVP_DigestUpdate(ctx, b, b_len) != 1 ||
	    EVP_DigestFinal_ex(ctx, out, NULL) != 1)
		crypto_fail("sha512");
	EVP_MD_CTX_free(ctx);
}

static void
hmac_sha256(const void *key, size_t key_len, const void *msg, size_t msg_len,
            uint8_t out[SHA256_LEN])
{
	static const uint8_t empty[1];

	/* HMAC() takes no NULL message, even of length 0. */
	if (HMAC(EVP_sha256(), key, (int)key_len, msg_len > 0 ? msg : empty,
	         msg_len, out, NULL) == NULL)
		crypto_fail("hmac-sha256");
}

/* ---- Argon2 ------------------------------------------------------------- */

/* After "$argon2id$": "[v=19$]m=M,t=T,p=P$SALT$HASH" with capped M, T, P
 * and salt and hash of sane length (libargon2 checks the rest). */
static int
argon2_params_ok(const char *p)
{
	uint64_t v, m, t, lanes;
	size_t salt_len, hash_len;

	if (strncmp(p, "v=", 2) == 0) {
		p += 2;
		if (parse_uint(&p, 255, &v) < 0 || (v != 16 && v != 19) ||
		    *p++ != '$')
			return -1;
	}
	if (strncmp(p, "m=", 2) != 0)
		return -1;
	p += 2;
	if (parse_uint(&p, ARGON2_VERIFY_MEMORY_MAX, &m) < 0 ||
	    strncmp(p, ",t=", 3) != 0)
		return -1;
	p += 3;
	if (parse_uint(&p, ARGON2_VERIFY_TIME_MAX, &t) < 0 ||
	    strncmp(p, ",p=", 3) != 0)
		return -1;
	p += 3;
	if (parse_uint(&p, ARGON2_VERIFY_LANES_MAX, &lanes) < 0 || *p++ != '$')
		return -1;
	if (t < 1 || lanes < 1 || m < 8 * lanes)
		return -1;
	salt_len = strspn(p, b64_chars);
	if (salt_len < ARGON2_SALT_B64_MIN || p[salt_len] != '$')
		return -1;
	p += salt_len + 1;
	hash_len = strspn(p, b64_chars);
	if (hash_len < ARGON2_HASH_B64_MIN || p[hash_len] != '\0')
		return -1;
	return 0;
}

/* libsodium's Argon2 uses the CPU's vector units and takes half the time
 * of Debian's libargon2 (its portable reference code); it knows version
 * 19 with one lane, which is what tern and most others write. The rest
 * goes to libargon2. */
static bool
argon2_sodium_can(const char *params)
{
	const char *p = strstr(params, ",p=");

	return sodium_init() >= 0 && strncmp(params, "v=19$", 5) == 0 &&
	       p != NULL && strncmp(p, ",p=1$", 5) == 0;
}

/* ARGON2_OK, ARGON2_VERIFY_MISMATCH or another libargon2 code. */
static int
argon2_check(const char *encoded, size_t prefix_len, const char *password,
             size_t len, argon2_type type)
{
	int rc;

	if (!argon2_sodium_can(encoded + prefix_len))
		return argon2_verify(encoded, password, len, type);
	errno = 0;
	rc = type == Argon2_id
	         ? crypto_pwhash_argon2id_str_verify(encoded, password, len)
	         : crypto_pwhash_argon2i_str_verify(encoded, password, len);
	if (rc == 0)
		return ARGON2_OK;
	/* libsodium says EINVAL for a mismatch and nothing for the rest. */
	return errno == EINVAL ? ARGON2_VERIFY_MISMATCH
	                       : ARGON2_MEMORY_ALLOCATION_ERROR;
}

static enum password_result
verify_argon2(const struct scheme *s, const char *data, const char *password,
              size_t len)
{
	const char *prefix =
	    s->argon2 == Argon2_id ? "$argon2id$" : "$argon2i$";
	size_t prefix_len = strlen(prefix);
	int rc;

	if (strncmp(data, prefix, prefix_len) != 0 ||
	    argon2_params_ok(data + prefix_len) < 0)
		return PASSWORD_INVALID_HASH;
	rc = argon2_check(data, prefix_len, password, len, s->argon2);
	switch (rc) {
	case ARGON2_OK:
		return PASSWORD_OK;
	case ARGON2_VERIFY_MISMATCH:
		return PASSWORD_MISMATCH;
	case ARGON2_MEMORY_ALLOCATION_ERROR:
	case ARGON2_THREAD_FAIL:
		log_error(NULL,
		          "event=password_verify_failed scheme=%s "
		          "error=%s",
		          s->name, argon2_error_message(rc));
		return PASSWORD_INVALID_HASH;
	default:
		return PASSWORD_INVALID_HASH;
	}
}

/* A new encoded Argon2id hash ("$argon2id$…", malloc'd), or NULL. */
static char *
argon2id_make(const struct password_policy *policy, const char *password,
              size_t len, char **error_r)
{
	uint8_t salt[ARGON2_SALT_LEN];
	size_t enc_len;
	char *enc;
	int rc;

	if (policy->argon2_parallelism == 1 && sodium_init() >= 0) {
		/* The same string libargon2 would make (16-byte salt, 32-byte
		 * hash), in half the time. */
		enc = xmalloc(crypto_pwhash_argon2id_STRBYTES);
		if (crypto_pwhash_argon2id_str(
		        enc, password, len, policy->argon2_time,
		        (size_t)policy->argon2_memory_kib * 1024) != 0) {
			*error_r = xstrdup("argon2id: out of memory");
			free(enc);
			return NULL;
		}
		return enc;
	}
	if (RAND_bytes(salt, sizeof(salt)) != 1) {
		*error_r = xstrdup("no random bytes for the salt");
		return NULL;
	}
	enc_len =
	    argon2_encodedlen(policy->argon2_time, policy->argon2_memory_kib,
	                      policy->argon2_parallelism, sizeof(salt),
	                      ARGON2_HASH_LEN, Argon2_id) +
	    1;
	enc = xmalloc(enc_len);
	rc = argon2id_hash_encoded(
	    policy->argon2_time, policy->argon2_memory_kib,
	    policy->argon2_parallelism, password, len, salt, sizeof(salt),
	    ARGON2_HASH_LEN, enc, enc_len);
	if (rc != ARGON2_OK) {
		*error_r = xasprintf("argon2id: %s", argon2_error_message(rc));
		free(enc);
		return NULL;
	}
	return enc;
}

/* ---- crypt(3) ----------------------------------------------------------- */

static const char *const crypt_blf[] = {"$2a$", "$2b$", "$2y$", NULL};
static const char *const crypt_sha512[] = {"$6$", NULL};
static const char *const crypt_sha256[] = {"$5$", NULL};
static const char *const crypt_any[] = {"$y$", "$2a$", "$2b$", "$2y$",
                                        "$6$", "$5$",  NULL};

/* Shape and cost of a crypt string whose prefix matched. */
static int
crypt_params_ok(const char *data)
{
	static const char crypt_chars[] = "./0123456789"
	                                  "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	                                  "abcdefghijklmnopqrstuvwxyz$=";
	const char *p;
	uint64_t v;

	if (data[strspn(data, crypt_chars)] != '\0' ||
	    strlen(data) >= CRYPT_OUTPUT_SIZE)
		return -1;
	if (data[1] == '2') {
		/* "$2y$NN$" + 53 */
		p = data + 4;
		if (p[0] < '0' || p[0] > '9' || p[1] < '0' || p[1] > '9' ||
		    p[2] != '$')
			return -1;
		v = (uint64_t)(p[0] - '0') * 10 + (uint64_t)(p[1] - '0');
		return v >= BCRYPT_COST_MIN && v <= BCRYPT_COST_MAX ? 0 : -1;
	}
	if (data[1] == '5' || data[1] == '6') {
		p = data + 3;
		if (strncmp(p, "rounds=", 7) == 0) {
			p += 7;
			if (parse_uint(&p, SHACRYPT_ROUNDS_MAX, &v) < 0 ||
			    *p != '$')
				return -1;
		}
	}
	return 0;
}

static enum password_result
verify_crypt(const struct scheme *s, const char *data, const char *password,
             size_t len)
{
	enum password_result ret;
	struct crypt_data *cd;
	const char *out;
	char *phrase;
	size_t i;

	for (i = 0; s->crypt_prefixes[i] != NULL; i++) {
		const char *pre = s->crypt_prefixes[i];

		if (strncmp(data, pre, strlen(pre)) == 0)
			break;
	}
	if (s->crypt_prefixes[i] == NULL || crypt_params_ok(data) < 0)
		return PASSWORD_INVALID_HASH;
	/* No crypt hash can have been made from a longer phrase. */
	if (len >= CRYPT_MAX_PASSPHRASE_SIZE)
		return PASSWORD_MISMATCH;

	phrase = xmalloc(len + 1);
	memcpy(phrase, password, len);
	phrase[len] = '\0';
	cd = xcalloc(1, sizeof(*cd));
	out = crypt_rn(phrase, data, cd, (int)sizeof(*cd));
	if (out == NULL) {
		/* EINVAL: a setting libxcrypt does not take. */
		ret = PASSWORD_INVALID_HASH;
	} else if (strlen(out) != strlen(data)) {
		/* The salt or hash part is malformed (crypt rewrote it). */
		ret = PASSWORD_INVALID_HASH;
	} else {
		ret = CRYPTO_memcmp(out, data, strlen(data)) == 0
		          ? PASSWORD_OK
		          : PASSWORD_MISMATCH;
	}
	OPENSSL_cleanse(cd, sizeof(*cd));
	free(cd);
	OPENSSL_cleanse(phrase, len + 1);
	free(phrase);
	return ret;
}

/* ---- SHA-512, SSHA-512, PLAIN ------------------------------------------- */

static enum password_result
verify_ssha512(const struct scheme *s, const char *data, const char *password,
               size_t len)
{
	uint8_t raw[PASSWORD_HASH_MAX], digest[SHA512_LEN];
	enum password_result ret;
	size_t raw_len;

	(void)s;
	if (b64_decode(data, strlen(data), raw, sizeof(raw), &raw_len) < 0 ||
	    raw_len <= SHA512_LEN)
		return PASSWORD_INVALID_HASH;
	sha512_2(password, len, raw + SHA512_LEN, raw_len - SHA512_LEN, digest);
	ret = CRYPTO_memcmp(digest, raw, SHA512_LEN) == 0 ? PASSWORD_OK
	                                                  : PASSWORD_MISMATCH;
	OPENSSL_cleanse(digest, sizeof(digest));
	return ret;
}

/* Unsalted, base64 (as doveadm writes it) or hex. */
static enum password_result
verify_sha512(const struct scheme *s, const char *data, const char *password,
              size_t len)
{
	uint8_t raw[SHA512_LEN + 3], digest[SHA512_LEN];
	enum password_result ret;
	size_t data_len = strlen(data), raw_len;

	(void)s;
	if (data_len == 2 * SHA512_LEN) {
		if (hex_decode(data, data_len, raw, SHA512_LEN) < 0)
			return PASSWORD_INVALID_HASH;
	} else if (b64_decode(data, data_len, raw, sizeof(raw), &raw_len) < 0 ||
	           raw_len != SHA512_LEN) {
		return PASSWORD_INVALID_HASH;
	}
	sha512_2(password, len, "", 0, digest);
	ret = CRYPTO_memcmp(digest, raw, SHA512_LEN) == 0 ? PASSWORD_OK
	                                                  : PASSWORD_MISMATCH;
	OPENSSL_cleanse(digest, sizeof(digest));
	return ret;
}

/* Compare digests, so the time does not depend on where the two differ or
 * on whether their lengths do. */
static enum password_result
verify_plain(const struct scheme *s, const char *data, const char *password,
             size_t len)
{
	uint8_t a[SHA256_LEN], b[SHA256_LEN];
	enum password_result ret;

	(void)s;
	sha256(data, strlen(data), a);
	sha256(password, len, b);
	ret = CRYPTO_memcmp(a, b, sizeof(a)) == 0 ? PASSWORD_OK
	                                          : PASSWORD_MISMATCH;
	OPENSSL_cleanse(a, sizeof(a));
	OPENSSL_cleanse(b, sizeof(b));
	return ret;
}

/* ---- SCRAM-SHA-256 ------------------------------------------------------ */

/* RFC 5802 §3: StoredKey and ServerKey from the password. */
static void
scram_derive(const char *password, size_t len, const uint8_t *salt,
             size_t salt_len, uint32_t iterations,
             uint8_t stored_key[SHA256_LEN], uint8_t server_key[SHA256_LEN])
{
	uint8_t salted[SHA256_LEN], client_key[SHA256_LEN];

	assert(len <= PASSWORD_MAX && salt_len <= 64 &&
	       iterations <= SCRAM_ITER_MAX);
	if (PKCS5_PBKDF2_HMAC(len > 0 ? password : "", (int)len, salt,
	                      (int)salt_len, (int)iterations, EVP_sha256(),
	                      (int)sizeof(salted), salted) != 1)
		crypto_fail("pbkdf2-hmac-sha256");
	hmac_sha256(salted, sizeof(salted), "Client Key", 10, client_key);
	sha256(client_key, sizeof(client_key), stored_key);
	hmac_sha256(salted, sizeof(salted), "Server Key", 10, server_key);
	OPENSSL_cleanse(salted, sizeof(salted));
	OPENSSL_cleanse(client_key, sizeof(client_key));
}

/* Dovecot's "{SCRAM-SHA-256}ITER,SALT,STOREDKEY,SERVERKEY". */
static enum password_result
verify_scram(const struct scheme *s, const char *data, const char *password,
             size_t len)
{
	uint8_t salt[64], want[SHA256_LEN], got[SHA256_LEN], server[SHA256_LEN];
	const char *p = data, *end;
	enum password_result ret;
	size_t salt_len, n;
	uint64_t iter;

	(void)s;
	if (parse_uint(&p, SCRAM_ITER_MAX, &iter) < 0 ||
	    iter < SCRAM_ITER_MIN || *p++ != ',')
		return PASSWORD_INVALID_HASH;
	if ((end = strchr(p, ',')) == NULL ||
	    b64_decode(p, (size_t)(end - p), salt, sizeof(salt), &salt_len) <
	        0 ||
	    salt_len < SCRAM_SALT_MIN)
		return PASSWORD_INVALID_HASH;
	p = end + 1;
	if ((end = strchr(p, ',')) == NULL ||
	    b64_decode(p, (size_t)(end - p), want, sizeof(want), &n) < 0 ||
	    n != SHA256_LEN)
		return PASSWORD_INVALID_HASH;
	p = end + 1;
	if (b64_decode(p, strlen(p), server, sizeof(server), &n) < 0 ||
	    n != SHA256_LEN)
		return PASSWORD_INVALID_HASH;
	scram_derive(password, len, salt, salt_len, (uint32_t)iter, got,
	             server);
	ret = CRYPTO_memcmp(got, want, SHA256_LEN) == 0 ? PASSWORD_OK
	                                                : PASSWORD_MISMATCH;
	OPENSSL_cleanse(got, sizeof(got));
	OPENSSL_cleanse(server, sizeof(server));
	return ret;
}

/* ---- schemes ------------------------------------------------------------ */

static const struct scheme schemes[] = {
    {.name = "ARGON2ID", .verify = verify_argon2, .argon2 = Argon2_id},
    {.name = "ARGON2I", .verify = verify_argon2, .argon2 = Argon2_i},
    {.name = "BLF-CRYPT", .verify = verify_crypt, .crypt_prefixes = crypt_blf},
    {.name = "SHA512-CRYPT",
     .verify = verify_crypt,
     .crypt_prefixes = crypt_sha512},
    {.name = "SHA256-CRYPT",
     .verify = verify_crypt,
     .crypt_prefixes = crypt_sha256},
    {.name = "CRYPT", .verify = verify_crypt, .crypt_prefixes = crypt_any},
    {.name = "SSHA512", .verify = verify_ssha512},
    {.name = "SHA512", .verify = verify_sha512},
    {.name = "SCRAM-SHA-256", .verify = verify_scram},
    {.name = "PLAIN", .verify = verify_plain, .plain = true},
    {.name = "CLEAR", .verify = verify_plain, .plain = true},
};

static const struct scheme *
scheme_by_name(const char *name, size_t n)
{
	for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++) {
		if (strlen(schemes[i].name) == n &&
		    strncasecmp(schemes[i].name, name, n) == 0)
			return &schemes[i];
	}
	return NULL;
}

/* The scheme of stored (NUL-terminated, bounded) and where its data
 * starts; NULL if unknown. A bare "$…" string is CRYPT. */
static const struct scheme *
scheme_find(const char *stored, const char **data_r)
{
	size_t n;

	if (stored[0] == '$') {
		*data_r = stored;
		return scheme_by_name("CRYPT", 5);
	}
	if (stored[0] != '{')
		return NULL;
	for (n = 1; n <= SCHEME_NAME_MAX + 1; n++) {
		if (stored[n] == '}' || stored[n] == '\0')
			break;
	}
	if (stored[n] != '}')
		return NULL;
	*data_r = stored + n + 1;
	return scheme_by_name(stored + 1, n - 1);
}

enum password_result
password_verify(const struct password_policy *policy, const char *stored,
                const char *password, size_t len)
{
	const struct scheme *s;
	const char *data;

	assert(policy != NULL);
	if (stored == NULL ||
	    strnlen(stored, PASSWORD_HASH_MAX + 1) > PASSWORD_HASH_MAX)
		return PASSWORD_INVALID_HASH;
	if ((s = scheme_find(stored, &data)) == NULL)
		return PASSWORD_INVALID_HASH;
	if (s->plain && !policy->allow_plain)
		return PASSWORD_SCHEME_REFUSED;
	if (!password_acceptable(password, len))
		return PASSWORD_MISMATCH;
	return s->verify(s, data, password, len);
}

const char *
password_scheme(const char *stored)
{
	const struct scheme *s;
	const char *data;

	if (stored == NULL ||
	    strnlen(stored, PASSWORD_HASH_MAX + 1) > PASSWORD_HASH_MAX ||
	    (s = scheme_find(stored, &data)) == NULL)
		return "UNKNOWN";
	return s->name;
}

/* The hash an unknown user is checked against; remade when the policy
 * changes. lookup checks passwords on several threads. */
static struct {
	pthread_mutex_t lock;
	char *encoded;
	uint32_t time, memory_kib, parallelism;
} dummy = {.lock = PTHREAD_MUTEX_INITIALIZER};

void
password_verify_dummy(const struct password_policy *policy,
                      const char *password, size_t len)
{
	uint8_t secret[32];
	char *error = NULL;

	assert(policy != NULL);
	/* The same early refusals as password_verify. */
	if (!password_acceptable(password, len))
		return;
	pthread_mutex_lock(&dummy.lock);
	if (dummy.encoded != NULL && dummy.time == policy->argon2_time &&
	    dummy.memory_kib == policy->argon2_memory_kib &&
	    dummy.parallelism == policy->argon2_parallelism) {
		char *encoded = xstrdup(dummy.encoded);

		pthread_mutex_unlock(&dummy.lock);
		(void)argon2_check(encoded, strlen("$argon2id$"), password,
		                   len, Argon2_id);
		free(encoded);
		return;
	}
	/* First call (or new policy): making the hash costs what verifying
	 * it does, so this call is no faster than later ones. Others wait
	 * for it rather than make their own. */
	xfree(&dummy.encoded);
	if (RAND_bytes(secret, sizeof(secret)) != 1)
		memset(secret, 0x5a, sizeof(secret)); /* only timing needed */
	dummy.encoded =
	    argon2id_make(policy, (const char *)secret, sizeof(secret), &error);
	OPENSSL_cleanse(secret, sizeof(secret));
	if (dummy.encoded == NULL) {
		pthread_mutex_unlock(&dummy.lock);
		log_error(NULL, "event=password_dummy_failed error=%s", error);
		free(error);
		return;
	}
	dummy.time = policy->argon2_time;
	dummy.memory_kib = policy->argon2_memory_kib;
	dummy.parallelism = policy->argon2_parallelism;
	pthread_mutex_unlock(&dummy.lock);
}

char *
password_hash(const struct password_policy *policy, const char *password,
              size_t len, char **error_r)
{
	char *enc, *ret;

	assert(policy != NULL);
	if (password == NULL || len == 0) {
		*error_r = xstrdup("empty password");
		return NULL;
	}
	if (len > PASSWORD_MAX) {
		*error_r =
		    xasprintf("password longer than %d bytes", PASSWORD_MAX);
		return NULL;
	}
	if (memchr(password, '\0', len) != NULL) {
		*error_r = xstrdup("password contains a NUL byte");
		return NULL;
	}
	if ((enc = argon2id_make(policy, password, len, error_r)) == NULL)
		return NULL;
	ret = xasprintf("{ARGON2ID}%s", enc);
	free(enc);
	return ret;
}

char *
password_scram_keys(const struct password_policy *policy, const char *password,
                    size_t len, char **error_r)
{
	uint8_t salt[SCRAM_SALT_LEN], stored[SHA256_LEN], server[SHA256_LEN];
	char salt64[32], stored64[48], server64[48];
	char *ret;

	assert(policy != NULL);
	if (policy->scram_iterations < SCRAM_ITER_MIN ||
	    policy->scram_iterations > SCRAM_ITER_MAX) {
		*error_r = xasprintf("scram_iterations %u out of range "
		                     "(%d..%d)",
		                     policy->scram_iterations, SCRAM_ITER_MIN,
		                     SCRAM_ITER_MAX);
		return NULL;
	}
	if (password == NULL || len == 0) {
		*error_r = xstrdup("empty password");
		return NULL;
	}
	if (len > PASSWORD_MAX) {
		*error_r =
		    xasprintf("password longer than %d bytes", PASSWORD_MAX);
		return NULL;
	}
	/* Printable ASCII is the one set SASLprep leaves as it is. */
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)password[i];

		if (c < 0x20 || c > 0x7e) {
			*error_r = xstrdup(
			    "password has non-ASCII or control characters: "
			    "SCRAM needs SASLprep, which is not "
			    "implemented; no SCRAM-SHA-256 keys stored");
			return NULL;
		}
	}
	if (RAND_bytes(salt, sizeof(salt)) != 1) {
		*error_r = xstrdup("no random bytes for the salt");
		return NULL;
	}
	scram_derive(password, len, salt, sizeof(salt),
	             policy->scram_iterations, stored, server);
	b64_encode(salt, sizeof(salt), salt64);
	b64_encode(stored, sizeof(stored), stored64);
	b64_encode(server, sizeof(server), server64);
	ret = xasprintf(SCRAM_PREFIX "%u$%s$%s$%s", policy->scram_iterations,
	                salt64, stored64, server64);
	OPENSSL_cleanse(stored, sizeof(stored));
	OPENSSL_cleanse(server, sizeof(server));
	OPENSSL_cleanse(stored64, sizeof(stored64));
	OPENSSL_cleanse(server64, sizeof(server64));
	return ret;
}

/* One '$'-terminated (or final) base64 field into out, min..max bytes;
 * advances *pp past the '$'. */
static int
scram_field(const char **pp, bool final, uint8_t *out, size_t min, size_t max,
            size_t *len_r)
{
	const char *p = *pp, *end;
	size_t n;

	end = final ? p + strlen(p) : strchr(p, '$');
	if (end == NULL || b64_decode(p, (size_t)(end - p), out, max, &n) < 0 ||
	    n < min)
		return -1;
	*len_r = n;
	*pp = final ? end : end + 1;
	return 0;
}

int
password_scram_parse(const char *text, struct scram_keys *keys)
{
	const char *p = text;
	uint64_t iter;
	size_t n;

	memset(keys, 0, sizeof(*keys));
	if (text == NULL ||
	    strnlen(text, SCRAM_TEXT_MAX + 1) > SCRAM_TEXT_MAX ||
	    strncmp(p, SCRAM_PREFIX, strlen(SCRAM_PREFIX)) != 0)
		return -1;
	p += strlen(SCRAM_PREFIX);
	if (parse_uint(&p, SCRAM_ITER_MAX, &iter) < 0 ||
	    iter < SCRAM_ITER_MIN || *p++ != '$')
		goto fail;
	keys->iterations = (uint32_t)iter;
	if (scram_field(&p, false, keys->salt, SCRAM_SALT_MIN,
	                sizeof(keys->salt), &keys->salt_len) < 0 ||
	    scram_field(&p, false, keys->stored_key, SHA256_LEN, SHA256_LEN,
	                &n) < 0 ||
	    scram_field(&p, true, keys->server_key, SHA256_LEN, SHA256_LEN,
	                &n) < 0)
		goto fail;
	return 0;
fail:
	OPENSSL_cleanse(keys, sizeof(*keys));
	return -1;
}

void
password_scram_fake(const char *username, const uint8_t secret[32],
                    uint32_t iterations, struct scram_keys *keys)
{
	static const char stored_label[] = "tern scram fake StoredKey";
	static const char server_label[] = "tern scram fake ServerKey";
	uint8_t mac[SHA256_LEN], k[SHA256_LEN];
	size_t ulen;

	assert(username != NULL && secret != NULL && keys != NULL);
	ulen = strlen(username);
	memset(keys, 0, sizeof(*keys));
	keys->iterations = iterations;
	hmac_sha256(secret, 32, username, ulen, mac);
	memcpy(keys->salt, mac, SCRAM_SALT_LEN);
	keys->salt_len = SCRAM_SALT_LEN;
	/* Keys from per-label subkeys: unrelated to the salt, and no SCRAM
	 * proof can match them (nobody knows a preimage of StoredKey). */
	hmac_sha256(secret, 32, stored_label, sizeof(stored_label) - 1, k);
	hmac_sha256(k, sizeof(k), username, ulen, keys->stored_key);
	hmac_sha256(secret, 32, server_label, sizeof(server_label) - 1, k);
	hmac_sha256(k, sizeof(k), username, ulen, keys->server_key);
	OPENSSL_cleanse(mac, sizeof(mac));
	OPENSSL_cleanse(k, sizeof(k));
}

bool
password_scram_check(const struct scram_keys *keys, const uint8_t *auth_message,
                     size_t auth_len, const uint8_t *proof, size_t proof_len,
                     uint8_t server_signature_r[32])
{
	uint8_t signature[SHA256_LEN], client_key[SHA256_LEN],
	    stored[SHA256_LEN];
	bool ok;

	assert(keys != NULL && auth_message != NULL);
	if (proof == NULL || proof_len != SHA256_LEN)
		return false;
	/* ClientSignature = HMAC(StoredKey, AuthMessage);
	 * ClientKey = ClientProof XOR ClientSignature. */
	hmac_sha256(keys->stored_key, SHA256_LEN, auth_message, auth_len,
	            signature);
	for (size_t i = 0; i < SHA256_LEN; i++)
		client_key[i] = proof[i] ^ signature[i];
	sha256(client_key, sizeof(client_key), stored);
	ok = CRYPTO_memcmp(stored, keys->stored_key, SHA256_LEN) == 0;
	if (ok)
		hmac_sha256(keys->server_key, SHA256_LEN, auth_message,
		            auth_len, server_signature_r);
	OPENSSL_cleanse(signature, sizeof(signature));
	OPENSSL_cleanse(client_key, sizeof(client_key));
	OPENSSL_cleanse(stored, sizeof(stored));
	return ok;
}

void
password_policy_from_config(const struct config *cfg,
			    struct password_policy *p)
{
	password_policy_default(p);
	p->argon2_time = cfg->argon2_time;
	p->argon2_memory_kib = (uint32_t)(cfg->argon2_memory / 1024);
	p->argon2_parallelism = cfg->argon2_parallelism;
	p->allow_plain = cfg->allow_plain_passwords;
	p->scram_iterations = cfg->scram_iterations;
}
