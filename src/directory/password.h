/* Password hashes: verify the schemes Dovecot's `doveadm pw` writes, so an
 * existing user table imports as it is, and make new ones (Argon2id).
 * Stored form: "{SCHEME}data", e.g. "{ARGON2ID}$argon2id$v=19$m=65536,t=3,
 * p=1$salt$hash", "{SHA512-CRYPT}$6$salt$hash", "{BLF-CRYPT}$2y$05$…",
 * "{SSHA512}base64", "{PLAIN}secret"; a bare "$y$…"/"$6$…" crypt string is
 * taken as CRYPT. SECURITY: runs in lookup only. Comparisons are constant
 * time; inputs (stored hash from the database, password from a peer) are
 * bounded; secrets are wiped after use. */
#ifndef TERN_DIRECTORY_PASSWORD_H
#define TERN_DIRECTORY_PASSWORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PASSWORD_MAX 1024      /* longer passwords are refused */
#define PASSWORD_HASH_MAX 1024 /* stored hashes longer than this: invalid */

struct password_policy {
	uint32_t argon2_time;	    /* iterations, default 3 */
	uint32_t argon2_memory_kib; /* default 65536 (64 MiB) */
	uint32_t argon2_parallelism; /* default 1 */
	bool allow_plain;	    /* accept {PLAIN} hashes (default no) */
	uint32_t scram_iterations;  /* default 10000 (RFC 7677 minimum 4096) */
};

void password_policy_default(struct password_policy *p);
struct config;
/* The policy tern.conf asks for (argon2_*, scram_iterations,
 * allow_plain_passwords). */
void password_policy_from_config(const struct config *cfg,
				 struct password_policy *p);

enum password_result {
	PASSWORD_OK = 0,
	PASSWORD_MISMATCH = 1,
	PASSWORD_INVALID_HASH = -1,	/* unknown scheme or malformed */
	PASSWORD_SCHEME_REFUSED = -2, /* {PLAIN} while not allowed */
};

/* Verify password (len bytes, may hold any byte but NUL) against stored. */
enum password_result password_verify(const struct password_policy *policy,
				     const char *stored, const char *password,
				     size_t len);
/* Spend the time a real verification with the default scheme would, for
 * unknown users: login timing must not tell which addresses exist. */
void password_verify_dummy(const struct password_policy *policy,
			   const char *password, size_t len);
/* A new "{ARGON2ID}…" hash (malloc'd), or NULL with *error_r. */
char *password_hash(const struct password_policy *policy, const char *password,
		    size_t len, char **error_r);
/* The scheme name of a stored hash ("ARGON2ID", "SHA512-CRYPT", …), for
 * listings; "UNKNOWN" if none. */
const char *password_scheme(const char *stored);

/* SCRAM-SHA-256 (RFC 5802, RFC 7677) credentials kept beside the hash:
 * "SCRAM-SHA-256$ITER$SALT_B64$STOREDKEY_B64$SERVERKEY_B64". The password
 * is taken as given (SASLprep of non-ASCII is not applied: such passwords
 * are refused for SCRAM with *error_r, and the caller stores no keys). */
char *password_scram_keys(const struct password_policy *policy,
			  const char *password, size_t len, char **error_r);

struct scram_keys {
	uint32_t iterations;
	uint8_t salt[64];
	size_t salt_len;
	uint8_t stored_key[32];
	uint8_t server_key[32];
};
int password_scram_parse(const char *text, struct scram_keys *keys);
/* Deterministic fake keys for an unknown user (salt derived from the name
 * and a per-instance secret), so probing SCRAM does not reveal users. */
void password_scram_fake(const char *username, const uint8_t secret[32],
			 uint32_t iterations, struct scram_keys *keys);
/* The server side of the final step: true if proof matches for the
 * AuthMessage; server_signature_r (32 bytes) is filled when it does. */
bool password_scram_check(const struct scram_keys *keys,
			  const uint8_t *auth_message, size_t auth_len,
			  const uint8_t *proof, size_t proof_len,
			  uint8_t server_signature_r[32]);

#endif
