/* ARC (RFC 8617): chain validation of ARC-Seal, ARC-Message-Signature and
 * ARC-Authentication-Results sets, and sealing split like DKIM signing so
 * the private key is used only where it is kept (lookup).
 * SECURITY: ARC fields, key records and the message are untrusted; at most
 * ARC_INSTANCE_MAX sets are read and every failure is a result. */
#ifndef TERN_MAILAUTH_ARC_H
#define TERN_MAILAUTH_ARC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <openssl/types.h>

#include "core/buf.h"
#include "mailauth/dkim.h"
#include "mailauth/dnsif.h"

#define ARC_INSTANCE_MAX 50 /* RFC 8617 §4.2.1: i=1..50 */
#define ARC_AAR_MAX 16384   /* bytes of an AAR payload, kept or written */

/* Chain validation status, and the cv= a seal declares (§4.4). */
enum arc_status {
	ARC_NONE,
	ARC_PASS,
	ARC_FAIL,
};

enum arc_reason {
	ARC_R_OK,
	ARC_R_HEADERS,   /* too many header fields to see every ARC field */
	ARC_R_TOO_MANY,  /* more sets than allowed, or i= above the limit */
	ARC_R_ENDED,     /* the newest seal says cv=fail (§5.2 step 2) */
	ARC_R_SYNTAX,    /* an ARC field without a usable i= */
	ARC_R_DUPLICATE, /* two fields of one kind in one instance */
	ARC_R_MISSING,   /* an instance of 1..N lacks a field (or a set) */
	ARC_R_CV,        /* cv= missing, or not none at i=1 / pass above */
	ARC_R_AMS,       /* the newest ARC-Message-Signature did not verify */
	ARC_R_SEAL,      /* an ARC-Seal did not verify */
};

struct arc_set_result {
	unsigned instance;  /* i= */
	enum arc_status cv; /* cv= of the seal; fail when absent or bad */
	/* The seal: d= is the sealer a caller may trust (when the chain
	 * passes). result is DKIM_NONE when it was not checked. */
	struct dkim_sig_result seal;
	/* The AMS: checked for the newest set (and the older ones while
	 * looking for oldest-pass); DKIM_NONE when not checked. */
	struct dkim_sig_result ams;
	/* The AAR payload after "i=N;" unfolded, WSP runs as one SP: the
	 * authserv-id, then the results ("mx.example.net; spf=pass …;
	 * dmarc=pass …"). NULL when absent or longer than ARC_AAR_MAX. */
	char *aar;
};

struct arc_verify_result {
	enum arc_status status;
	enum arc_reason reason;
	unsigned reason_instance; /* the instance reason is about, or 0 */
	/* With status pass: the oldest instance whose AMS still verifies, 0
	 * when all do (header.oldest-pass, §5.2 step 5). */
	unsigned oldest_pass;
	bool ended; /* the newest seal has cv=fail: never seal again */
	/* set[k] is instance k + 1, for k < count (the highest i= seen, at
	 * most ARC_INSTANCE_MAX); parts may be missing when the structure
	 * failed. */
	size_t count;
	struct arc_set_result *set;
};

/* A zeroed struct (or NULL) gives the defaults. */
struct arc_limits {
	unsigned instances;    /* 0: ARC_INSTANCE_MAX (also the ceiling);
	                          longer chains fail */
	unsigned rsa_bits_min; /* 0: 1024 (RFC 8301) */
	bool skip_oldest_pass; /* skip the optional older-AMS walk */
};

/* Validate the ARC chain of msg (CRLF form) at time now (AMS x=), keys
 * through dns (RFC 8617 §5.2; the optional oldest-pass walk runs after
 * the seals, only on a passing chain). Failures are results: always 0
 * with *res_r (free with arc_verify_result_free). */
int arc_verify(const struct ma_dns *dns, const uint8_t *msg, size_t len,
               time_t now, const struct arc_limits *limits,
               struct arc_verify_result **res_r);
void arc_verify_result_free(struct arc_verify_result **res);

const char *arc_status_str(enum arc_status status);
const char *arc_reason_str(enum arc_reason reason);

/* The newest set of a passing chain sealed (AS d=, case-insensitive) by
 * one of domains (NULL-terminated); NULL when none or the chain did not
 * pass. Its aar is the forwarder's own assessment of the message. */
const struct arc_set_result *
arc_trusted_set(const struct arc_verify_result *res,
                const char *const *domains);

/* The result of method (e.g. "dmarc") in an AAR or Authentication-Results
 * payload ("authserv-id; method=result …; …"), comments skipped: 0 with
 * a lower-case token in result, -1 when absent, malformed or too long. */
int arc_ar_method_result(const char *payload, const char *method, char *result,
                         size_t size);

/* Append one Authentication-Results resinfo without the leading "; ":
 * "arc=pass (i=2 spf=pass dkim=pass dmarc=pass) header.oldest-pass=0
 * smtp.remote-ip=192.0.2.1" (the comment from the newest AAR), "arc=fail
 * reason=\"…\"", or "arc=none"; remote_ip (this hop's SMTP client) may be
 * NULL. 0, or -1 when out is full. */
int arc_ar_append(struct buf *out, const struct arc_verify_result *res,
                  const char *remote_ip);

/* --------------------------------------------------------------- sealing
 * Five steps so that the private key is used only where it is kept:
 * arc_seal_begin (any process: instance, AAR, AMS body hash and digest),
 * dkim_sign_with_key (lookup) on arc_sealer_ams_digest, arc_seal_ams
 * (the AMS, then the ARC-Seal digest), dkim_sign_with_key on
 * arc_sealer_seal_digest, arc_seal_finish (the three fields). */

struct arc_seal_params {
	const char *domain;            /* d= of the AMS and the seal */
	const char *selector;          /* s= */
	enum dkim_algorithm algorithm; /* rsa-sha256 or ed25519-sha256 */
	/* The Authentication-Results value computed for this message, as
	 * it would follow "Authentication-Results:" (authserv-id first;
	 * folding allowed, no other control characters). */
	const char *authres;
	/* The chain status found at verification: none (no ARC field may
	 * be present), pass (the sets must be complete; the seal covers
	 * them all), fail (the seal covers only the new set, §5.1.2). */
	enum arc_status chain;
	/* AMS h= exactly as given, NULL-terminated, From required, no ARC
	 * or Authentication-Results field; NULL: DKIM's default list plus
	 * each DKIM-Signature present (§4.1.2). */
	const char *const *headers;
	time_t timestamp; /* t= of both */
};

struct arc_sealer;

/* Canonicalize msg (CRLF form), pick the instance, build the AAR and the
 * AMS digest. 0 with *sealer_r, or -1 with a static reason (bad
 * parameters, no From, chain at ARC_INSTANCE_MAX, chain already ended
 * with cv=fail, status not matching the ARC fields present). */
int arc_seal_begin(const uint8_t *msg, size_t len,
                   const struct arc_seal_params *params,
                   struct arc_sealer **sealer_r, const char **error_r);
enum dkim_algorithm arc_sealer_algorithm(const struct arc_sealer *sealer);
unsigned arc_sealer_instance(const struct arc_sealer *sealer);
/* The SHA-256 digest the AMS signature covers. */
const uint8_t *arc_sealer_ams_digest(const struct arc_sealer *sealer,
                                     size_t *len_r);
/* Add the AMS signature (from dkim_sign_with_key); builds the seal. */
int arc_seal_ams(struct arc_sealer *sealer, const uint8_t *sig, size_t siglen,
                 const char **error_r);
/* The SHA-256 digest the ARC-Seal covers; NULL before arc_seal_ams. */
const uint8_t *arc_sealer_seal_digest(const struct arc_sealer *sealer,
                                      size_t *len_r);
/* "ARC-Seal: …\r\nARC-Message-Signature: …\r\nARC-Authentication-Results:
 * …\r\n" to prepend to the message (malloc'd), or NULL with a reason. */
char *arc_seal_finish(struct arc_sealer *sealer, const uint8_t *sig,
                      size_t siglen, const char **error_r);
void arc_sealer_free(struct arc_sealer **sealer);
/* Every step at once (tests, tools); the three fields or NULL. */
char *arc_seal_message(const uint8_t *msg, size_t len,
                       const struct arc_seal_params *params, EVP_PKEY *key,
                       const char **error_r);

#endif
