/* DANE for SMTP (RFC 7672, RFC 7671): the TLSA records of an MX host,
 * looked up only when its MX answer was DNSSEC-secure, and the checks of
 * the server's certificate against them, done by OpenSSL's DANE support
 * (SSL_dane_enable, SSL_dane_tlsa_add): DANE-EE(3) and DANE-TA(2) are
 * usable for SMTP; PKIX-TA(0) and PKIX-EE(1) records are not (RFC 7672
 * 3.1.3) and a host with only those is treated as having none usable.
 * SECURITY: TLSA answers are untrusted DNS data: counts and lengths are
 * bounded (DANE_TLSA_MAX, DANE_DATA_MAX); a bogus or failed lookup is a
 * temporary failure (never a downgrade to cleartext). */
#ifndef TERN_QUEUE_DANE_H
#define TERN_QUEUE_DANE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "mailauth/dnsif.h"

#define DANE_TLSA_MAX 16
#define DANE_DATA_MAX 512 /* bytes of one association (SHA2-512: 64) */

enum dane_status {
	DANE_NONE,     /* no secure, usable TLSA: opportunistic TLS as usual
	                  (but see tls_mandatory) */
	DANE_REQUIRED, /* usable TLSA: TLS required, certificate must match */
	DANE_TEMPFAIL, /* lookup failed or bogus: defer this host */
};

struct dane_tlsa {
	uint8_t usage, selector, mtype;
	uint8_t data[DANE_DATA_MAX];
	size_t len;
};

struct dane_policy {
	enum dane_status status;
	struct dane_tlsa rec[DANE_TLSA_MAX];
	size_t n;      /* usable records (usage 2 or 3) */
	char why[160]; /* for logs and DSNs when TEMPFAIL, or what was found */
	/* With DANE_NONE: the host has a secure TLSA RRset but no record
	 * in it is usable (PKIX usages, unknown selector or matching type,
	 * malformed or too long). RFC 7672 2.2 and 3.1.3: TLS is still
	 * mandatory there (no cleartext), but unauthenticated. */
	bool tls_mandatory;
};

/* SSL_CTX_dane_enable() on the client context used for MX hosts, made
 * to wrap its creation: returns ctx, or NULL with *error_r (ctx freed).
 * A NULL ctx passes through (its creator set *error_r). */
SSL_CTX *dane_ctx_enable(SSL_CTX *ctx, char **error_r);

/* The policy of host:port (TLSA at _PORT._tcp.HOST). mx_secure: the MX
 * (or implicit MX address) answer that named host was DNSSEC-secure; when
 * false there is no DANE for it (DANE_NONE) and nothing is looked up. */
void dane_lookup(const struct ma_dns *dns, const char *host, uint16_t port,
                 bool mx_secure, struct dane_policy *p);

/* Before SSL_connect on an SSL whose SSL_CTX had SSL_CTX_dane_enable():
 * enable DANE for host with p's records and require verification. 0, or
 * -1 with why. */
int dane_apply(SSL *ssl, const char *host, const struct dane_policy *p,
               char *why, size_t whylen);

/* After the handshake: 0 when the peer matched a record (what matched in
 * matched, e.g. "DANE-EE(3) SPKI(1) SHA2-256(1) depth 0"), -1 with why
 * (in matched). */
int dane_verified(SSL *ssl, char *matched, size_t matchedlen);

#endif
