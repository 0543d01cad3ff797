/* SASL server mechanisms (PLAIN, LOGIN — RFC 4616, draft-murchison-sasl-
 * login — and SCRAM-SHA-256, RFC 5802/7677) as state machines, shared by
 * the SMTP, IMAP, POP3 and ManageSieve front ends.
 *
 * Split by trust: this module runs in front and parses everything the
 * client sends; it never sees a password hash or SCRAM key. Checks go to a
 * verifier (in practice lookup, over ipc) through callbacks, and come back
 * through the sasl_*_result() calls; until then sasl_step() answers
 * SASL_PENDING.
 * SECURITY: client input is bounded (SASL_INPUT_MAX decoded bytes per step,
 * SASL_STEPS_MAX steps), must be valid base64 / UTF-8 where the RFCs say,
 * and NUL is refused inside names; passwords are wiped after the check. */
#ifndef TERN_DIRECTORY_SASL_H
#define TERN_DIRECTORY_SASL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SASL_INPUT_MAX 4096
#define SASL_STEPS_MAX 4
#define SASL_USER_MAX 512

enum sasl_mech {
	SASL_MECH_PLAIN,
	SASL_MECH_LOGIN,
	SASL_MECH_SCRAM_SHA_256,
};

enum sasl_status {
	SASL_CONTINUE, /* a challenge is ready: sasl_challenge() */
	SASL_PENDING,  /* waiting for the verifier's answer */
	SASL_SUCCESS,  /* authenticated as sasl_user() (a final server
			  message may be waiting: sasl_challenge()) */
	SASL_FAIL,     /* wrong credentials */
	SASL_TEMPFAIL, /* could not check now (verifier down, banned IP) */
	SASL_ERROR,    /* malformed exchange: sasl_error() says why */
};

struct sasl_verifier {
	/* PLAIN, LOGIN: answer with sasl_password_result(). authzid is ""
	 * when the client gave none (always for LOGIN); password is also
	 * NUL-terminated and is wiped as soon as this returns. */
	void (*check_password)(void *arg, const char *authzid, const char *user,
			       const char *password, size_t password_len);
	/* SCRAM: salt and iterations for user → sasl_scram_params_result(). */
	void (*scram_params)(void *arg, const char *user);
	/* SCRAM: check the proof → sasl_scram_check_result(). */
	void (*scram_check)(void *arg, const char *user,
			    const uint8_t *auth_message, size_t auth_len,
			    const uint8_t *proof, size_t proof_len);
	void *arg;
};

struct sasl_session;

/* By name as clients send it ("PLAIN", "LOGIN", "SCRAM-SHA-256",
 * case-insensitive); -1 if unknown. */
int sasl_mech_parse(const char *name, enum sasl_mech *mech_r);
const char *sasl_mech_name(enum sasl_mech mech);

struct sasl_session *sasl_new(enum sasl_mech mech,
			      const struct sasl_verifier *verifier);
void sasl_free(struct sasl_session **s);

/* Feed one client message, already base64-decoded (in may be NULL with
 * len 0 for "no initial response"; an empty initial response is in != NULL,
 * len 0). Returns the new status. */
enum sasl_status sasl_step(struct sasl_session *s, const uint8_t *in,
			   size_t len);
/* The client aborted ("*"): the session ends as SASL_FAIL with
 * sasl_error() "aborted"; a verifier answer still due is then ignored. */
void sasl_abort(struct sasl_session *s);

/* The verifier's answers; each returns the new status. result: 0 ok,
 * 1 wrong, -1 temporary failure (any other value counts as -1). They may be
 * called from inside the verifier callback (sasl_step() then returns the
 * final status), but the session must not be freed from there. An answer
 * the session is not waiting for is ignored. */
enum sasl_status sasl_password_result(struct sasl_session *s, int result);
enum sasl_status sasl_scram_params_result(struct sasl_session *s, int result,
					  const uint8_t *salt, size_t salt_len,
					  uint32_t iterations);
enum sasl_status sasl_scram_check_result(struct sasl_session *s, int result,
					 const uint8_t server_signature[32]);

enum sasl_status sasl_status(const struct sasl_session *s);
/* The challenge (or final success data) to send, raw (the protocol
 * base64-encodes it); valid until the next call. */
void sasl_challenge(const struct sasl_session *s, const uint8_t **data_r,
		    size_t *len_r);
/* The authenticated (or attempted) user name, "" if none yet. */
const char *sasl_user(const struct sasl_session *s);
/* For SASL_ERROR: what was wrong, for the log. */
const char *sasl_error(const struct sasl_session *s);

/* For tests: use nonce (printable ASCII without ',', 1..64 bytes) as the
 * SCRAM server nonce instead of a random one, to replay RFC 7677's
 * example. Production code never calls it. */
void sasl_test_set_server_nonce(struct sasl_session *s, const char *nonce);

/* Base64 (RFC 4648, no line breaks, padding required) for the protocols.
 * decode: -1 on anything that is not strict base64 or decodes to more than
 * outmax bytes. encode: out must hold 4 * ((len + 2) / 3) + 1 bytes. */
int sasl_base64_decode(const char *in, size_t len, uint8_t *out,
		       size_t outmax, size_t *outlen_r);
size_t sasl_base64_encode(const uint8_t *in, size_t len, char *out);

#endif
