/* Unit tests for src/directory/sasl.c: PLAIN, LOGIN and SCRAM-SHA-256 state
 * machines against a fake verifier, with the test as an independent SCRAM
 * client (OpenSSL PBKDF2/HMAC/SHA-256), RFC 7677's example, and base64. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include "directory/sasl.h"

#define RFC_CLIENT_FIRST "n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
#define RFC_SERVER_NONCE "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
#define RFC_NONCE "rOprNGfwEbeRWgbNEkqO" RFC_SERVER_NONCE
#define RFC_SALT "W22ZaJ0SNY7soEsUEjb6gQ=="
#define RFC_SERVER_FIRST "r=" RFC_NONCE ",s=" RFC_SALT ",i=4096"
#define RFC_PROOF "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
#define RFC_CLIENT_FINAL "c=biws,r=" RFC_NONCE ",p=" RFC_PROOF
#define RFC_AUTH_MESSAGE                                                       \
	"n=user,r=rOprNGfwEbeRWgbNEkqO," RFC_SERVER_FIRST ",c=biws,"           \
	"r=" RFC_NONCE
#define RFC_SERVER_FINAL "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="

/* SCRAM keys as lookup keeps them. */
struct keys {
	uint8_t client_key[32];
	uint8_t stored_key[32];
	uint8_t server_key[32];
};

/* The verifier: records every call; answers from inside the callback
 * (sync) or leaves it to the test (async). */
struct fake {
	struct sasl_session *s;
	bool async;
	int answer; /* for check_password and scram_check when sync */
	int password_calls, params_calls, check_calls;
	char authzid[1024], user[1024], password[8192];
	size_t password_len;
	/* SCRAM */
	const char *scram_password;
	uint8_t salt[64];
	size_t salt_len;
	uint32_t iterations;
	struct keys keys;
	uint8_t auth_message[5 * 4096];
	size_t auth_len;
	uint8_t proof[64];
	size_t proof_len;
};

static void
hmac256(const uint8_t *key, size_t key_len, const void *msg, size_t len,
        uint8_t out[32])
{
	unsigned int out_len = 32;

	assert_non_null(
	    HMAC(EVP_sha256(), key, (int)key_len, msg, len, out, &out_len));
	assert_int_equal(out_len, 32);
}

static void
derive_keys(const char *password, const uint8_t *salt, size_t salt_len,
            uint32_t iterations, struct keys *k)
{
	uint8_t salted[32];

	assert_int_equal(PKCS5_PBKDF2_HMAC(password, (int)strlen(password),
	                                   salt, (int)salt_len, (int)iterations,
	                                   EVP_sha256(), 32, salted),
	                 1);
	hmac256(salted, 32, "Client Key", 10, k->client_key);
	SHA256(k->client_key, 32, k->stored_key);
	hmac256(salted, 32, "Server Key", 10, k->server_key);
}

/* What lookup does with a proof: ClientKey = proof XOR
 * HMAC(StoredKey, AuthMessage); it must hash to StoredKey. */
static int
fake_scram_verify(const struct fake *f, uint8_t server_signature[32])
{
	uint8_t client_sig[32], client_key[32], stored[32];

	if (f->proof_len != 32)
		return 1;
	hmac256(f->keys.stored_key, 32, f->auth_message, f->auth_len,
	        client_sig);
	for (size_t i = 0; i < 32; i++)
		client_key[i] = f->proof[i] ^ client_sig[i];
	SHA256(client_key, 32, stored);
	if (CRYPTO_memcmp(stored, f->keys.stored_key, 32) != 0)
		return 1;
	hmac256(f->keys.server_key, 32, f->auth_message, f->auth_len,
	        server_signature);
	return 0;
}

static void
fake_check_password(void *arg, const char *authzid, const char *user,
                    const char *password, size_t password_len)
{
	struct fake *f = arg;

	f->password_calls++;
	assert_int_equal(sasl_status(f->s), SASL_PENDING);
	snprintf(f->authzid, sizeof(f->authzid), "%s", authzid);
	snprintf(f->user, sizeof(f->user), "%s", user);
	assert_true(password_len < sizeof(f->password));
	assert_int_equal(password[password_len], '\0');
	memcpy(f->password, password, password_len + 1);
	f->password_len = password_len;
	if (!f->async)
		sasl_password_result(f->s, f->answer);
}

static void
fake_scram_params(void *arg, const char *user)
{
	struct fake *f = arg;

	f->params_calls++;
	assert_int_equal(sasl_status(f->s), SASL_PENDING);
	snprintf(f->user, sizeof(f->user), "%s", user);
	if (!f->async)
		sasl_scram_params_result(f->s, 0, f->salt, f->salt_len,
		                         f->iterations);
}

static void
fake_scram_check(void *arg, const char *user, const uint8_t *auth_message,
                 size_t auth_len, const uint8_t *proof, size_t proof_len)
{
	struct fake *f = arg;
	uint8_t sig[32];
	int r;

	f->check_calls++;
	assert_int_equal(sasl_status(f->s), SASL_PENDING);
	snprintf(f->user, sizeof(f->user), "%s", user);
	assert_true(auth_len <= sizeof(f->auth_message));
	memcpy(f->auth_message, auth_message, auth_len);
	f->auth_len = auth_len;
	assert_true(proof_len <= sizeof(f->proof));
	memcpy(f->proof, proof, proof_len);
	f->proof_len = proof_len;
	if (!f->async) {
		r = fake_scram_verify(f, sig);
		sasl_scram_check_result(f->s, r, r == 0 ? sig : NULL);
	}
}

static const struct sasl_verifier fake_verifier_template = {
    .check_password = fake_check_password,
    .scram_params = fake_scram_params,
    .scram_check = fake_scram_check,
};

static struct sasl_session *
fake_session(struct fake *f, enum sasl_mech mech)
{
	struct sasl_verifier v = fake_verifier_template;

	v.arg = f;
	f->s = sasl_new(mech, &v);
	assert_string_equal(sasl_user(f->s), "");
	return f->s;
}

/* A verifier for SCRAM with RFC 7677's salt and password "pencil". */
static void
fake_init_scram(struct fake *f, const char *password)
{
	assert_int_equal(sasl_base64_decode(RFC_SALT, strlen(RFC_SALT), f->salt,
	                                    sizeof(f->salt), &f->salt_len),
	                 0);
	f->iterations = 4096;
	f->scram_password = password;
	derive_keys(password, f->salt, f->salt_len, f->iterations, &f->keys);
}

static enum sasl_status
step_bin(struct sasl_session *s, const void *data, size_t len)
{
	enum sasl_status st = sasl_step(s, data, len);

	assert_int_equal(st, sasl_status(s));
	return st;
}

static enum sasl_status
step_str(struct sasl_session *s, const char *str)
{
	return step_bin(s, str, strlen(str));
}

static void
assert_challenge(const struct sasl_session *s, const char *want)
{
	const uint8_t *data;
	size_t len;

	sasl_challenge(s, &data, &len);
	assert_non_null(data);
	assert_int_equal(len, strlen(want));
	assert_memory_equal(data, want, len);
}

static void
test_mech_names(void **state)
{
	enum sasl_mech m;

	(void)state;
	assert_int_equal(sasl_mech_parse("plain", &m), 0);
	assert_int_equal(m, SASL_MECH_PLAIN);
	assert_int_equal(sasl_mech_parse("LOGIN", &m), 0);
	assert_int_equal(m, SASL_MECH_LOGIN);
	assert_int_equal(sasl_mech_parse("Scram-Sha-256", &m), 0);
	assert_int_equal(m, SASL_MECH_SCRAM_SHA_256);
	assert_int_equal(sasl_mech_parse("SCRAM-SHA-256-PLUS", &m), -1);
	assert_int_equal(sasl_mech_parse("CRAM-MD5", &m), -1);
	assert_int_equal(sasl_mech_parse("", &m), -1);
	assert_int_equal(sasl_mech_parse(NULL, &m), -1);
	assert_string_equal(sasl_mech_name(SASL_MECH_SCRAM_SHA_256),
	                    "SCRAM-SHA-256");
	assert_string_equal(sasl_mech_name(SASL_MECH_PLAIN), "PLAIN");
}

static const char plain_msg[] = "\0user\0pencil";

static void
test_plain_initial_response(void **state)
{
	struct fake f = {.answer = 0};
	struct sasl_session *s = fake_session(&f, SASL_MECH_PLAIN);

	(void)state;
	assert_int_equal(step_bin(s, plain_msg, sizeof(plain_msg) - 1),
	                 SASL_SUCCESS);
	assert_int_equal(f.password_calls, 1);
	assert_string_equal(f.authzid, "");
	assert_string_equal(f.user, "user");
	assert_int_equal(f.password_len, 6);
	assert_string_equal(f.password, "pencil");
	assert_string_equal(sasl_user(s), "user");
	assert_challenge(s, "");
	/* Nothing more may be fed after the end. */
	assert_int_equal(step_str(s, "x"), SASL_ERROR);
	assert_int_equal(f.password_calls, 1);
	sasl_free(&s);
	assert_null(s);
	sasl_free(&s);
}

static void
test_plain_no_initial_response(void **state)
{
	struct fake f = {.async = true};
	struct sasl_session *s = fake_session(&f, SASL_MECH_PLAIN);

	(void)state;
	assert_int_equal(step_bin(s, NULL, 0), SASL_CONTINUE);
	assert_challenge(s, "");
	assert_int_equal(step_bin(s, plain_msg, sizeof(plain_msg) - 1),
	                 SASL_PENDING);
	assert_int_equal(f.password_calls, 1);
	assert_string_equal(sasl_user(s), "user");
	assert_int_equal(sasl_password_result(s, 0), SASL_SUCCESS);
	assert_int_equal(sasl_status(s), SASL_SUCCESS);
	/* A second answer changes nothing. */
	assert_int_equal(sasl_password_result(s, 1), SASL_SUCCESS);
	sasl_free(&s);
}

static void
test_plain_authzid(void **state)
{
	static const char msg[] = "admin\0user\0secret";
	struct fake f = {.answer = 0};
	struct sasl_session *s = fake_session(&f, SASL_MECH_PLAIN);

	(void)state;
	assert_int_equal(step_bin(s, msg, sizeof(msg) - 1), SASL_SUCCESS);
	assert_string_equal(f.authzid, "admin");
	assert_string_equal(f.user, "user");
	assert_string_equal(f.password, "secret");
	sasl_free(&s);
}

static void
test_plain_results(void **state)
{
	static const struct {
		int answer;
		enum sasl_status want;
	} cases[] = {
	    {0, SASL_SUCCESS},
	    {1, SASL_FAIL},
	    {-1, SASL_TEMPFAIL},
	    {42, SASL_TEMPFAIL}, /* garbled: never success */
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct fake f = {.answer = cases[i].answer};
		struct sasl_session *s = fake_session(&f, SASL_MECH_PLAIN);

		assert_int_equal(step_bin(s, plain_msg, sizeof(plain_msg) - 1),
		                 cases[i].want);
		sasl_free(&s);
	}
}

static void
test_plain_malformed(void **state)
{
	static const struct {
		const char *data;
		size_t len;
	} cases[] = {
#define C(x) {x, sizeof(x) - 1}
	    C(""),
	    C("user"),
	    C("user\0pencil"),                 /* one NUL */
	    C("\0\0pencil"),                   /* empty user */
	    C("\0user\0"),                     /* empty password */
	    C("\0us\0er\0pencil"),             /* NUL in password */
	    C("a\0user\0pen\0cil"),            /* NUL in password */
	    C("\0us\xffr\0pencil"),            /* invalid UTF-8 user */
	    C("\0us\xc0\xafr\0pencil"),        /* overlong */
	    C("\0us\xed\xa0\x80r\0pencil"),    /* surrogate */
	    C("\0us\xf4\x90\x80\x80\0pencil"), /* > U+10FFFF */
	    C("\0user\0pen\xe2\x82"),          /* truncated sequence */
	    C("\xfe\0user\0pencil"),           /* invalid authzid */
#undef C
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct fake f = {.answer = 0};
		struct sasl_session *s = fake_session(&f, SASL_MECH_PLAIN);

		assert_int_equal(step_bin(s, cases[i].data, cases[i].len),
		                 SASL_ERROR);
		assert_string_not_equal(sasl_error(s), "");
		assert_int_equal(f.password_calls, 0);
		sasl_free(&s);
	}
}

static void
test_plain_utf8_and_bounds(void **state)
{
	uint8_t msg[SASL_INPUT_MAX + 16];
	struct fake f = {.answer = 0};
	struct sasl_session *s;
	size_t n;

	(void)state;
	/* Valid multi-byte UTF-8 everywhere. */
	s = fake_session(&f, SASL_MECH_PLAIN);
	static const char utf8[] =
	    "\0j\xc3\xb6rg\0\xe2\x82\xac\xf0\x9f\x90\xa6";
	assert_int_equal(step_bin(s, utf8, sizeof(utf8) - 1), SASL_SUCCESS);
	assert_string_equal(sasl_user(s), "j\xc3\xb6rg");
	sasl_free(&s);

	/* A user of exactly SASL_USER_MAX bytes passes, one more does not. */
	for (size_t extra = 0; extra < 2; extra++) {
		s = fake_session(&f, SASL_MECH_PLAIN);
		n = 0;
		msg[n++] = '\0';
		memset(msg + n, 'u', SASL_USER_MAX + extra);
		n += SASL_USER_MAX + extra;
		msg[n++] = '\0';
		msg[n++] = 'p';
		assert_int_equal(step_bin(s, msg, n),
		                 extra == 0 ? SASL_SUCCESS : SASL_ERROR);
		sasl_free(&s);
	}
	/* The same for authzid. */
	s = fake_session(&f, SASL_MECH_PLAIN);
	memset(msg, 'a', SASL_USER_MAX + 1);
	n = SASL_USER_MAX + 1;
	memcpy(msg + n, "\0u\0p", 4);
	assert_int_equal(step_bin(s, msg, n + 4), SASL_ERROR);
	sasl_free(&s);

	/* More than SASL_INPUT_MAX bytes in one step. */
	s = fake_session(&f, SASL_MECH_PLAIN);
	memset(msg, 'p', sizeof(msg));
	memcpy(msg, "\0u\0", 3);
	assert_int_equal(step_bin(s, msg, SASL_INPUT_MAX + 1), SASL_ERROR);
	sasl_free(&s);
	s = fake_session(&f, SASL_MECH_PLAIN);
	assert_int_equal(step_bin(s, msg, SASL_INPUT_MAX), SASL_SUCCESS);
	assert_int_equal(f.password_len, SASL_INPUT_MAX - 3);
	sasl_free(&s);
}

static void
test_wrong_state(void **state)
{
	struct fake f = {.async = true};
	struct sasl_session *s = fake_session(&f, SASL_MECH_PLAIN);

	(void)state;
	assert_int_equal(step_bin(s, plain_msg, sizeof(plain_msg) - 1),
	                 SASL_PENDING);
	assert_int_equal(step_str(s, "more"), SASL_ERROR);
	assert_string_not_equal(sasl_error(s), "");
	/* The late answer does not revive the session. */
	assert_int_equal(sasl_password_result(s, 0), SASL_ERROR);
	assert_int_equal(sasl_status(s), SASL_ERROR);
	sasl_free(&s);

	/* An answer of the wrong kind is ignored. */
	s = fake_session(&f, SASL_MECH_PLAIN);
	assert_int_equal(step_bin(s, plain_msg, sizeof(plain_msg) - 1),
	                 SASL_PENDING);
	assert_int_equal(sasl_scram_check_result(
	                     s, 0,
	                     (const uint8_t *)"0123456789abcdef0123456789"
	                                      "abcdef"),
	                 SASL_PENDING);
	assert_int_equal(sasl_password_result(s, 1), SASL_FAIL);
	assert_int_equal(step_bin(s, NULL, 0), SASL_ERROR);
	sasl_free(&s);

	/* Before any step, answers are ignored. */
	s = fake_session(&f, SASL_MECH_PLAIN);
	assert_int_equal(sasl_password_result(s, 0), SASL_CONTINUE);
	sasl_free(&s);
}

static void
test_abort(void **state)
{
	struct fake f = {.async = true};
	struct sasl_session *s;

	(void)state;
	s = fake_session(&f, SASL_MECH_LOGIN);
	assert_int_equal(step_bin(s, NULL, 0), SASL_CONTINUE);
	sasl_abort(s);
	assert_int_equal(sasl_status(s), SASL_FAIL);
	assert_string_equal(sasl_error(s), "aborted");
	assert_challenge(s, "");
	assert_int_equal(step_str(s, "user"), SASL_ERROR);
	sasl_free(&s);

	/* Aborted while the verifier works: its answer is ignored. */
	s = fake_session(&f, SASL_MECH_PLAIN);
	assert_int_equal(step_bin(s, plain_msg, sizeof(plain_msg) - 1),
	                 SASL_PENDING);
	sasl_abort(s);
	assert_int_equal(sasl_password_result(s, 0), SASL_FAIL);
	sasl_free(&s);

	/* Abort after the end changes nothing. */
	f.async = false;
	s = fake_session(&f, SASL_MECH_PLAIN);
	assert_int_equal(step_bin(s, plain_msg, sizeof(plain_msg) - 1),
	                 SASL_SUCCESS);
	sasl_abort(s);
	assert_int_equal(sasl_status(s), SASL_SUCCESS);
	sasl_free(&s);
}

static void
test_login_two_steps(void **state)
{
	struct fake f = {.async = true};
	struct sasl_session *s = fake_session(&f, SASL_MECH_LOGIN);

	(void)state;
	assert_int_equal(step_bin(s, NULL, 0), SASL_CONTINUE);
	assert_challenge(s, "Username:");
	assert_int_equal(step_str(s, "user"), SASL_CONTINUE);
	assert_challenge(s, "Password:");
	assert_string_equal(sasl_user(s), "user");
	assert_int_equal(step_str(s, "pencil"), SASL_PENDING);
	assert_challenge(s, ""); /* "Password:" is not due again */
	assert_int_equal(f.password_calls, 1);
	assert_string_equal(f.authzid, "");
	assert_string_equal(f.user, "user");
	assert_string_equal(f.password, "pencil");
	assert_int_equal(sasl_password_result(s, 1), SASL_FAIL);
	sasl_free(&s);
}

static void
test_login_initial_response(void **state)
{
	struct fake f = {.answer = 0};
	struct sasl_session *s = fake_session(&f, SASL_MECH_LOGIN);

	(void)state;
	assert_int_equal(step_str(s, "user"), SASL_CONTINUE);
	assert_challenge(s, "Password:");
	/* A Latin-1 password from an old client is passed on as is. */
	assert_int_equal(step_str(s, "p\xe9ncil"), SASL_SUCCESS);
	assert_string_equal(f.password, "p\xe9ncil");
	sasl_free(&s);
}

static void
test_login_malformed(void **state)
{
	struct fake f = {.answer = 0};
	struct sasl_session *s;

	(void)state;
	s = fake_session(&f, SASL_MECH_LOGIN);
	assert_int_equal(step_str(s, ""), SASL_ERROR); /* empty user */
	sasl_free(&s);
	s = fake_session(&f, SASL_MECH_LOGIN);
	assert_int_equal(step_bin(s, NULL, 0), SASL_CONTINUE);
	assert_int_equal(step_bin(s, "us\0er", 5), SASL_ERROR);
	sasl_free(&s);
	s = fake_session(&f, SASL_MECH_LOGIN);
	assert_int_equal(step_str(s, "us\xff"), SASL_ERROR);
	sasl_free(&s);
	s = fake_session(&f, SASL_MECH_LOGIN);
	assert_int_equal(step_str(s, "user"), SASL_CONTINUE);
	assert_int_equal(step_bin(s, NULL, 0), SASL_ERROR); /* empty pw */
	sasl_free(&s);
	s = fake_session(&f, SASL_MECH_LOGIN);
	assert_int_equal(step_str(s, "user"), SASL_CONTINUE);
	assert_int_equal(step_bin(s, "pen\0cil", 7), SASL_ERROR);
	assert_int_equal(f.password_calls, 0);
	sasl_free(&s);
}

/* The test's own SCRAM client: from server-first, build client-final and
 * the ServerSignature the server must send back. */
static void
client_final(const char *gs2, const char *bare, const char *password,
             const struct sasl_session *s, char *out, size_t outsz,
             uint8_t server_sig_r[32])
{
	char server_first[1024], without_proof[1024], am[4096];
	char gs2_b64[256], proof_b64[64], salt_b64[256];
	uint8_t salt[256], client_sig[32], proof[32];
	const uint8_t *data;
	const char *nonce, *salt_p, *iter_p;
	size_t len, salt_len;
	struct keys k;
	int n;

	sasl_challenge(s, &data, &len);
	assert_true(len < sizeof(server_first));
	memcpy(server_first, data, len);
	server_first[len] = '\0';
	assert_memory_equal(server_first, "r=", 2);
	nonce = server_first + 2;
	salt_p = strstr(server_first, ",s=");
	iter_p = strstr(server_first, ",i=");
	assert_non_null(salt_p);
	assert_non_null(iter_p);
	assert_true(salt_p < iter_p);
	memcpy(salt_b64, salt_p + 3, (size_t)(iter_p - salt_p - 3));
	salt_b64[iter_p - salt_p - 3] = '\0';
	n = EVP_DecodeBlock(salt, (const unsigned char *)salt_b64,
	                    (int)strlen(salt_b64));
	assert_true(n > 0);
	salt_len = (size_t)n;
	for (const char *p = strchr(salt_b64, '='); p != NULL && *p == '='; p++)
		salt_len--;

	derive_keys(password, salt, salt_len,
	            (uint32_t)strtoul(iter_p + 3, NULL, 10), &k);
	EVP_EncodeBlock((unsigned char *)gs2_b64, (const unsigned char *)gs2,
	                (int)strlen(gs2));
	n = snprintf(without_proof, sizeof(without_proof), "c=%s,r=%.*s",
	             gs2_b64, (int)(salt_p - nonce), nonce);
	assert_true(n > 0 && (size_t)n < sizeof(without_proof));
	n = snprintf(am, sizeof(am), "%s,%s,%s", bare, server_first,
	             without_proof);
	assert_true(n > 0 && (size_t)n < sizeof(am));
	hmac256(k.stored_key, 32, am, strlen(am), client_sig);
	for (size_t i = 0; i < 32; i++)
		proof[i] = k.client_key[i] ^ client_sig[i];
	EVP_EncodeBlock((unsigned char *)proof_b64, proof, 32);
	n = snprintf(out, outsz, "%s,p=%s", without_proof, proof_b64);
	assert_true(n > 0 && (size_t)n < outsz);
	hmac256(k.server_key, 32, am, strlen(am), server_sig_r);
}

static void
test_scram_rfc7677_vector(void **state)
{
	struct fake f = {.async = true};
	struct sasl_session *s = fake_session(&f, SASL_MECH_SCRAM_SHA_256);
	char final[512];
	uint8_t sig[32];

	(void)state;
	fake_init_scram(&f, "pencil");
	sasl_test_set_server_nonce(s, RFC_SERVER_NONCE);
	assert_int_equal(step_str(s, RFC_CLIENT_FIRST), SASL_PENDING);
	assert_int_equal(f.params_calls, 1);
	assert_string_equal(f.user, "user");
	assert_int_equal(
	    sasl_scram_params_result(s, 0, f.salt, f.salt_len, f.iterations),
	    SASL_CONTINUE);
	assert_challenge(s, RFC_SERVER_FIRST);

	/* The test's client computes the RFC's proof from "pencil". */
	client_final("n,,", "n=user,r=rOprNGfwEbeRWgbNEkqO", "pencil", s, final,
	             sizeof(final), sig);
	assert_string_equal(final, RFC_CLIENT_FINAL);

	assert_int_equal(step_str(s, RFC_CLIENT_FINAL), SASL_PENDING);
	assert_int_equal(f.check_calls, 1);
	assert_int_equal(f.auth_len, strlen(RFC_AUTH_MESSAGE));
	assert_memory_equal(f.auth_message, RFC_AUTH_MESSAGE, f.auth_len);
	assert_int_equal(f.proof_len, 32);
	assert_int_equal(fake_scram_verify(&f, sig), 0);
	assert_int_equal(sasl_scram_check_result(s, 0, sig), SASL_SUCCESS);
	assert_challenge(s, RFC_SERVER_FINAL);
	assert_string_equal(sasl_user(s), "user");
	sasl_free(&s);
}

/* A whole exchange with a random server nonce; the verifier answers from
 * inside its callbacks (sync) or later (async). */
static enum sasl_status
scram_exchange(struct fake *f, const char *client_first, const char *gs2,
               const char *bare, const char *password)
{
	struct sasl_session *s = fake_session(f, SASL_MECH_SCRAM_SHA_256);
	char final[1024], want[64];
	uint8_t sig[32], server_sig[32];
	enum sasl_status st;
	int r;

	assert_int_equal(step_bin(s, NULL, 0), SASL_CONTINUE);
	assert_challenge(s, "");
	st = step_str(s, client_first);
	if (f->async) {
		assert_int_equal(st, SASL_PENDING);
		st = sasl_scram_params_result(s, 0, f->salt, f->salt_len,
		                              f->iterations);
	}
	assert_int_equal(st, SASL_CONTINUE);
	client_final(gs2, bare, password, s, final, sizeof(final), sig);
	st = step_str(s, final);
	if (f->async) {
		assert_int_equal(st, SASL_PENDING);
		r = fake_scram_verify(f, server_sig);
		st = sasl_scram_check_result(s, r, r == 0 ? server_sig : NULL);
	}
	if (st == SASL_SUCCESS) {
		memcpy(want, "v=", 2);
		EVP_EncodeBlock((unsigned char *)want + 2, sig, 32);
		assert_challenge(s, want);
	} else {
		assert_challenge(s, "");
	}
	sasl_free(&s);
	return st;
}

static void
test_scram_exchange(void **state)
{
	(void)state;
	for (int async = 0; async < 2; async++) {
		struct fake f = {.async = async != 0};

		fake_init_scram(&f, "pencil");
		assert_int_equal(scram_exchange(&f,
		                                "n,,n=user,r=fyko+d2lbbFgONRv9"
		                                "qkxdawL",
		                                "n,,",
		                                "n=user,r=fyko+d2lbbFgONRv9qkx"
		                                "dawL",
		                                "pencil"),
		                 SASL_SUCCESS);
		assert_int_equal(f.check_calls, 1);
		/* Wrong password: the proof does not verify. */
		assert_int_equal(scram_exchange(&f, "n,,n=user,r=abc", "n,,",
		                                "n=user,r=abc", "pencils"),
		                 SASL_FAIL);
		/* "y" flag, authzid equal to the user, escaped name and an
		 * optional extension that is ignored but kept in the
		 * AuthMessage. */
		assert_int_equal(scram_exchange(&f,
		                                "y,a=u=2Cs=3Der,n=u=2Cs=3Der,"
		                                "r=abc,x=ext",
		                                "y,a=u=2Cs=3Der,",
		                                "n=u=2Cs=3Der,r=abc,x=ext",
		                                "pencil"),
		                 SASL_SUCCESS);
		assert_string_equal(f.user, "u,s=er");
	}
}

static void
test_scram_verifier_answers(void **state)
{
	struct fake f = {.async = true};
	struct sasl_session *s;
	uint8_t sig[32] = {0};

	(void)state;
	fake_init_scram(&f, "pencil");
	/* Params: temporary failure, refusal, nonsense from the verifier. */
	s = fake_session(&f, SASL_MECH_SCRAM_SHA_256);
	assert_int_equal(step_str(s, RFC_CLIENT_FIRST), SASL_PENDING);
	assert_int_equal(sasl_scram_params_result(s, -1, NULL, 0, 0),
	                 SASL_TEMPFAIL);
	sasl_free(&s);
	s = fake_session(&f, SASL_MECH_SCRAM_SHA_256);
	assert_int_equal(step_str(s, RFC_CLIENT_FIRST), SASL_PENDING);
	assert_int_equal(sasl_scram_params_result(s, 1, NULL, 0, 0), SASL_FAIL);
	sasl_free(&s);
	s = fake_session(&f, SASL_MECH_SCRAM_SHA_256);
	assert_int_equal(step_str(s, RFC_CLIENT_FIRST), SASL_PENDING);
	assert_int_equal(sasl_scram_params_result(s, 0, f.salt, f.salt_len, 0),
	                 SASL_TEMPFAIL);
	sasl_free(&s);
	s = fake_session(&f, SASL_MECH_SCRAM_SHA_256);
	assert_int_equal(step_str(s, RFC_CLIENT_FIRST), SASL_PENDING);
	assert_int_equal(sasl_scram_params_result(s, 0, f.salt, 0, 4096),
	                 SASL_TEMPFAIL);
	sasl_free(&s);

	/* The random server nonce: 24 bytes, base64, after the client's. */
	s = fake_session(&f, SASL_MECH_SCRAM_SHA_256);
	assert_int_equal(step_str(s, "n,,n=user,r=abc"), SASL_PENDING);
	assert_int_equal(
	    sasl_scram_params_result(s, 0, f.salt, f.salt_len, f.iterations),
	    SASL_CONTINUE);
	{
		const uint8_t *data;
		size_t len;
		uint8_t raw[32];
		size_t raw_len;

		sasl_challenge(s, &data, &len);
		assert_int_equal(len,
		                 strlen("r=abc,s=" RFC_SALT ",i=4096") + 32);
		assert_memory_equal(data, "r=abc", 5);
		assert_int_equal(sasl_base64_decode((const char *)data + 5, 32,
		                                    raw, sizeof(raw), &raw_len),
		                 0);
		assert_int_equal(raw_len, 24);
	}
	/* The client must echo the whole nonce. */
	assert_int_equal(step_str(s, "c=biws,r=abc,p=" RFC_PROOF), SASL_ERROR);
	sasl_free(&s);
	s = fake_session(&f, SASL_MECH_SCRAM_SHA_256);
	sasl_test_set_server_nonce(s, RFC_SERVER_NONCE);
	assert_int_equal(step_str(s, RFC_CLIENT_FIRST), SASL_PENDING);
	assert_int_equal(
	    sasl_scram_params_result(s, 0, f.salt, f.salt_len, f.iterations),
	    SASL_CONTINUE);
	assert_int_equal(step_str(s, RFC_CLIENT_FINAL), SASL_PENDING);
	assert_int_equal(step_str(s, RFC_CLIENT_FINAL), SASL_ERROR);
	sasl_free(&s);
	/* A check that fails, and one that cannot be done now. */
	s = fake_session(&f, SASL_MECH_SCRAM_SHA_256);
	sasl_test_set_server_nonce(s, RFC_SERVER_NONCE);
	assert_int_equal(step_str(s, RFC_CLIENT_FIRST), SASL_PENDING);
	assert_int_equal(
	    sasl_scram_params_result(s, 0, f.salt, f.salt_len, f.iterations),
	    SASL_CONTINUE);
	assert_int_equal(step_str(s, RFC_CLIENT_FINAL), SASL_PENDING);
	assert_int_equal(sasl_scram_check_result(s, 1, NULL), SASL_FAIL);
	assert_challenge(s, "");
	assert_int_equal(sasl_scram_check_result(s, 0, sig), SASL_FAIL);
	sasl_free(&s);
	s = fake_session(&f, SASL_MECH_SCRAM_SHA_256);
	sasl_test_set_server_nonce(s, RFC_SERVER_NONCE);
	assert_int_equal(step_str(s, RFC_CLIENT_FIRST), SASL_PENDING);
	assert_int_equal(
	    sasl_scram_params_result(s, 0, f.salt, f.salt_len, f.iterations),
	    SASL_CONTINUE);
	assert_int_equal(step_str(s, RFC_CLIENT_FINAL), SASL_PENDING);
	assert_int_equal(sasl_scram_check_result(s, -1, NULL), SASL_TEMPFAIL);
	sasl_free(&s);
}

static void
test_scram_client_first_errors(void **state)
{
	static const char *const bad[] = {
	    "",
	    "n",
	    "n,,",
	    "p=tls-unique,,n=user,r=abc",   /* channel binding */
	    "p=tls-exporter,,n=user,r=abc", /* channel binding */
	    "x,,n=user,r=abc",              /* unknown flag */
	    "nn,,n=user,r=abc",
	    "F,n,,n=user,r=abc",      /* GS2 non-standard flag */
	    "n,a=other,n=user,r=abc", /* authzid is someone else */
	    "n,b=user,n=user,r=abc",
	    "n,a=,n=user,r=abc",
	    "n,,m=ext,n=user,r=abc", /* mandatory extension */
	    "n,,n=us=3Er,r=abc",     /* bad saslname escape */
	    "n,,n=us=2c,r=abc",      /* escapes are upper case */
	    "n,,n=user=,r=abc",
	    "n,,n=user=2,r=abc",
	    "n,,n=,r=abc", /* empty user */
	    "n,,n=user",   /* no nonce */
	    "n,,n=user,r=",
	    "n,,r=abc,n=user", /* order */
	    "n,,n=user,r=a\x7f",
	    "n,,n=user,r=a b",
	    "n,,n=user,r=abc,",      /* empty extension */
	    "n,,n=user,r=abc,r=def", /* attribute repeated */
	    "n,,n=user,r=abc,p=xyz",
	    "n,,n=user,r=abc,1=x",
	    "n,,n=user,r=abc,x=",
	    "n,,n=us\xff,r=abc",
	    ("c=biws,r=abc,p=" RFC_PROOF), /* client-final first */
	};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct fake f = {.async = true};
		struct sasl_session *s =
		    fake_session(&f, SASL_MECH_SCRAM_SHA_256);

		if (step_str(s, bad[i]) != SASL_ERROR)
			fail_msg("accepted client-first %zu: %s", i, bad[i]);
		assert_string_not_equal(sasl_error(s), "");
		assert_int_equal(f.params_calls, 0);
		sasl_free(&s);
	}
	/* NUL anywhere is refused too. */
	{
		struct fake f = {.async = true};
		struct sasl_session *s =
		    fake_session(&f, SASL_MECH_SCRAM_SHA_256);

		assert_int_equal(step_bin(s, "n,,n=us\0r,r=abc", 15),
		                 SASL_ERROR);
		sasl_free(&s);
	}
	/* A user name of SASL_USER_MAX bytes after decoding passes. */
	{
		struct fake f = {.async = true};
		struct sasl_session *s;
		char msg[3 * SASL_USER_MAX + 32];
		size_t n;

		for (int extra = 0; extra < 2; extra++) {
			s = fake_session(&f, SASL_MECH_SCRAM_SHA_256);
			n = (size_t)snprintf(msg, sizeof(msg), "n,,n=");
			for (int k = 0; k < SASL_USER_MAX + extra; k++) {
				memcpy(msg + n, "=2C", 3);
				n += 3;
			}
			memcpy(msg + n, ",r=abc", 7);
			assert_int_equal(step_str(s, msg), extra == 0
			                                       ? SASL_PENDING
			                                       : SASL_ERROR);
			sasl_free(&s);
		}
	}
}

/* A session in SCRAM_CLIENT_FINAL with nonce "abcSRV" and gs2 "n,,". */
static struct sasl_session *
scram_at_final(struct fake *f)
{
	struct sasl_session *s = fake_session(f, SASL_MECH_SCRAM_SHA_256);

	f->async = true;
	sasl_test_set_server_nonce(s, "SRV");
	assert_int_equal(step_str(s, "n,,n=user,r=abc"), SASL_PENDING);
	assert_int_equal(
	    sasl_scram_params_result(s, 0, (const uint8_t *)"salt", 4, 4096),
	    SASL_CONTINUE);
	assert_challenge(s, "r=abcSRV,s=c2FsdA==,i=4096");
	return s;
}

static void
test_scram_client_final_errors(void **state)
{
#define P32 "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
#define P31 "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=="
#define P33 "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	static const char *const bad[] = {
	    "",
	    "c=biws",
	    "c=biws,r=abcSRV",        /* no proof */
	    "c=eSws,r=abcSRV,p=" P32, /* "y,," is not what was sent */
	    "c=biws=,r=abcSRV,p=" P32,
	    "c=,r=abcSRV,p=" P32,
	    "r=abcSRV,c=biws,p=" P32, /* order */
	    "c=biws,r=abc,p=" P32,    /* nonce mismatch */
	    "c=biws,r=abcSRVx,p=" P32,
	    "c=biws,r=abcSR,p=" P32,
	    "c=biws,r=abcSRV,p=" P31, /* proof too short */
	    "c=biws,r=abcSRV,p=" P33, /* proof too long */
	    "c=biws,r=abcSRV,p=",
	    "c=biws,r=abcSRV,p=!!!!",        /* not base64 */
	    "c=biws,r=abcSRV,p=" P32 ",x=y", /* proof not last */
	    "c=biws,r=abcSRV,p=" P32 ",",
	    "c=biws,r=abcSRV,r=abcSRV,p=" P32,
	    "c=biws,r=abcSRV,x,p=" P32,
	    "n,,n=user,r=abc", /* client-first again */
	};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct fake f = {0};
		struct sasl_session *s = scram_at_final(&f);

		if (step_str(s, bad[i]) != SASL_ERROR)
			fail_msg("accepted client-final %zu: %s", i, bad[i]);
		assert_int_equal(f.check_calls, 0);
		sasl_free(&s);
	}
	/* The well-formed variants reach the verifier; an extension sits in
	 * the AuthMessage. */
	{
		static const char am[] = "n=user,r=abc,r=abcSRV,s=c2FsdA==,"
		                         "i=4096,c=biws,r=abcSRV,x=y";
		struct fake f = {0};
		struct sasl_session *s = scram_at_final(&f);

		assert_int_equal(step_str(s, "c=biws,r=abcSRV,x=y,p=" P32),
		                 SASL_PENDING);
		assert_int_equal(f.check_calls, 1);
		assert_int_equal(f.auth_len, sizeof(am) - 1);
		assert_memory_equal(f.auth_message, am, f.auth_len);
		assert_int_equal(f.proof_len, 32);
		sasl_free(&s);
	}
#undef P32
#undef P31
#undef P33
}

static void
test_scram_steps_out_of_order(void **state)
{
	struct fake f = {.async = true};
	struct sasl_session *s;

	(void)state;
	fake_init_scram(&f, "pencil");
	/* A step while waiting for params. */
	s = fake_session(&f, SASL_MECH_SCRAM_SHA_256);
	assert_int_equal(step_str(s, RFC_CLIENT_FIRST), SASL_PENDING);
	assert_int_equal(step_str(s, RFC_CLIENT_FINAL), SASL_ERROR);
	assert_int_equal(
	    sasl_scram_params_result(s, 0, f.salt, f.salt_len, f.iterations),
	    SASL_ERROR);
	sasl_free(&s);
	/* An empty first message (not the same as no initial response). */
	s = fake_session(&f, SASL_MECH_SCRAM_SHA_256);
	assert_int_equal(step_str(s, ""), SASL_ERROR);
	sasl_free(&s);
	/* The empty challenge, then nothing. */
	s = fake_session(&f, SASL_MECH_SCRAM_SHA_256);
	assert_int_equal(step_bin(s, NULL, 0), SASL_CONTINUE);
	assert_int_equal(step_bin(s, NULL, 0), SASL_ERROR);
	sasl_free(&s);
	/* After success: the client's empty answer to v= is the protocol's
	 * business, not a step. */
	f.async = false;
	s = fake_session(&f, SASL_MECH_SCRAM_SHA_256);
	sasl_test_set_server_nonce(s, RFC_SERVER_NONCE);
	assert_int_equal(step_str(s, RFC_CLIENT_FIRST), SASL_CONTINUE);
	assert_int_equal(step_str(s, RFC_CLIENT_FINAL), SASL_SUCCESS);
	assert_challenge(s, RFC_SERVER_FINAL);
	assert_int_equal(step_str(s, ""), SASL_ERROR);
	assert_challenge(s, "");
	sasl_free(&s);
}

static void
test_base64_vectors(void **state)
{
	static const struct {
		const char *raw, *b64;
	} cases[] = {
	    {"", ""},
	    {"f", "Zg=="},
	    {"fo", "Zm8="},
	    {"foo", "Zm9v"},
	    {"foob", "Zm9vYg=="},
	    {"fooba", "Zm9vYmE="},
	    {"foobar", "Zm9vYmFy"},
	    {"\xff\xfe\xfd", "//79"},
	    {"\xfb\xff", "+/8="},
	};
	char enc[64];
	uint8_t dec[64];
	size_t len;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t rl = strlen(cases[i].raw);

		assert_int_equal(
		    sasl_base64_encode((const uint8_t *)cases[i].raw, rl, enc),
		    strlen(cases[i].b64));
		assert_string_equal(enc, cases[i].b64);
		assert_int_equal(sasl_base64_decode(cases[i].b64,
		                                    strlen(cases[i].b64), dec,
		                                    sizeof(dec), &len),
		                 0);
		assert_int_equal(len, rl);
		assert_memory_equal(dec, cases[i].raw, rl);
	}
	/* outmax is a hard bound. */
	assert_int_equal(sasl_base64_decode("Zm9v", 4, dec, 3, &len), 0);
	assert_int_equal(sasl_base64_decode("Zm9v", 4, dec, 2, &len), -1);
	assert_int_equal(sasl_base64_decode("Zm9vYg==", 8, dec, 3, &len), -1);
	assert_int_equal(sasl_base64_decode("Zm8=", 4, dec, 2, &len), 0);
	assert_int_equal(sasl_base64_decode("", 0, NULL, 0, &len), 0);
	assert_int_equal(len, 0);
}

static void
test_base64_rejects(void **state)
{
	static const struct {
		const char *data;
		size_t len;
	} bad[] = {
#define C(x) {x, sizeof(x) - 1}
	    C("Zg"),           /* padding required */
	    C("Zg="),          /* length not a multiple of 4 */
	    C("Zm9vY"),        /* length not a multiple of 4 */
	    C("Z==="),         /* three pads */
	    C("===="),         /* only pads */
	    C("Zg==Zg=="),     /* padding in the middle */
	    C("Z=g="),         /* pad inside a quantum */
	    C("Zh=="),         /* non-zero trailing bits */
	    C("Zm9="),         /* non-zero trailing bits */
	    C("Zm 9"),         /* whitespace */
	    C("Zm9v\r\n"),     /* line break */
	    C("Zm\n9"),        /* line break */
	    C("-_8="),         /* base64url alphabet */
	    C("Zm9\0"),        /* NUL */
	    C("Zm9v\0\0\0\0"), /* NUL */
	    C("Zm9\xc3"),      /* non-ASCII */
	    C("Zg==="),        /* extra pad */
#undef C
	};
	uint8_t out[64];
	size_t len;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (sasl_base64_decode(bad[i].data, bad[i].len, out,
		                       sizeof(out), &len) != -1)
			fail_msg("accepted base64 case %zu", i);
	}
}

static void
test_base64_round_trip(void **state)
{
	uint8_t raw[300], dec[300];
	char enc[4 * ((sizeof(raw) + 2) / 3) + 1];
	size_t n, len;

	(void)state;
	for (size_t i = 0; i < sizeof(raw); i++)
		raw[i] = (uint8_t)(i * 37 + 11);
	for (size_t rl = 0; rl <= sizeof(raw); rl++) {
		n = sasl_base64_encode(raw, rl, enc);
		assert_int_equal(n, 4 * ((rl + 2) / 3));
		assert_int_equal(strlen(enc), n);
		/* OpenSSL agrees. */
		{
			char ossl[sizeof(enc)];

			assert_int_equal(EVP_EncodeBlock((unsigned char *)ossl,
			                                 raw, (int)rl),
			                 (int)n);
			assert_string_equal(enc, ossl);
		}
		assert_int_equal(sasl_base64_decode(enc, n, dec, rl, &len), 0);
		assert_int_equal(len, rl);
		assert_memory_equal(dec, raw, rl);
		if (rl > 0)
			assert_int_equal(
			    sasl_base64_decode(enc, n, dec, rl - 1, &len), -1);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_mech_names),
	    cmocka_unit_test(test_plain_initial_response),
	    cmocka_unit_test(test_plain_no_initial_response),
	    cmocka_unit_test(test_plain_authzid),
	    cmocka_unit_test(test_plain_results),
	    cmocka_unit_test(test_plain_malformed),
	    cmocka_unit_test(test_plain_utf8_and_bounds),
	    cmocka_unit_test(test_wrong_state),
	    cmocka_unit_test(test_abort),
	    cmocka_unit_test(test_login_two_steps),
	    cmocka_unit_test(test_login_initial_response),
	    cmocka_unit_test(test_login_malformed),
	    cmocka_unit_test(test_scram_rfc7677_vector),
	    cmocka_unit_test(test_scram_exchange),
	    cmocka_unit_test(test_scram_verifier_answers),
	    cmocka_unit_test(test_scram_client_first_errors),
	    cmocka_unit_test(test_scram_client_final_errors),
	    cmocka_unit_test(test_scram_steps_out_of_order),
	    cmocka_unit_test(test_base64_vectors),
	    cmocka_unit_test(test_base64_rejects),
	    cmocka_unit_test(test_base64_round_trip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
