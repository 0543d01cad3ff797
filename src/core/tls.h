/* TLS contexts (OpenSSL 3): server contexts built from PEM held in memory
 * (front never opens key files: parent reads them and sends the bytes),
 * SNI choosing among several certificates, and client contexts.
 * SECURITY: TLS 1.2 and 1.3 only, a modern AEAD-only cipher list with
 * forward secrecy, no compression, no renegotiation, server cipher order. */
#ifndef TERN_CORE_TLS_H
#define TERN_CORE_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include <openssl/ssl.h>

struct tls_pem {
	const char *cert; /* PEM chain: leaf first */
	size_t cert_len;
	const char *key; /* PEM private key matching the leaf */
	size_t key_len;
};

/* A set of server certificates. Reference counted: a connection that was
 * started with one keeps it (via tls_server_ref) after a reload installs a
 * new one, and the last unref frees it. */
struct tls_server;

/* n >= 1. The first certificate is the default; during the handshake the
 * client's SNI name picks the certificate whose subjectAltName DNS names
 * (or CN when it has none) match it, wildcards one label deep. Fails when a
 * PEM does not parse, a key does not match its certificate, or a
 * certificate has expired (error_r says which: "certificate 2: …"). */
struct tls_server *tls_server_new(const struct tls_pem *pems, size_t n,
				  char **error_r);
struct tls_server *tls_server_ref(struct tls_server *srv);
void tls_server_unref(struct tls_server **srv);
/* A new SSL for an accepted connection, in server mode. */
SSL *tls_server_new_ssl(struct tls_server *srv);
/* Subject CN of certificate i (0-based) and its notAfter, for logging. */
const char *tls_server_cert_name(const struct tls_server *srv, size_t i);
time_t tls_server_cert_not_after(const struct tls_server *srv, size_t i);
size_t tls_server_cert_count(const struct tls_server *srv);

/* A client context: TLS 1.2+, peer verification against ca_file (NULL: the
 * system store) when verify is true. */
SSL_CTX *tls_client_ctx_new(bool verify, const char *ca_file,
			    char **error_r);

/* "TLSv1.3", "TLS_AES_256_GCM_SHA384" of a live connection. */
const char *tls_version_name(const SSL *ssl);
const char *tls_cipher_name(const SSL *ssl);

/* The first OpenSSL error as text (clears the queue), for messages. */
const char *tls_last_error(void);

#endif
