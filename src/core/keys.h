/* Key material on disk: the self-signed certificate and the DKIM keys that
 * quickstart creates, and the DNS record values derived from them (DKIM p=,
 * TLSA 3 1 1). Private keys are written 0600 via tmp + fsync + rename. */
#ifndef TERN_CORE_KEYS_H
#define TERN_CORE_KEYS_H

#include <stddef.h>

/* A self-signed certificate for hostname (CN and subjectAltName DNS) with a
 * new ECDSA P-256 key, valid for days days. */
int keys_create_selfsigned(const char *hostname, int days,
			   const char *cert_path, const char *key_path,
			   char **error_r);
/* DKIM private keys: RSA of bits (>= 1024) or Ed25519 (RFC 8463). */
int keys_create_dkim_rsa(const char *key_path, int bits, char **error_r);
int keys_create_dkim_ed25519(const char *key_path, char **error_r);
/* The DKIM DNS record value for a private key file:
 * "v=DKIM1; k=rsa; p=BASE64" or "v=DKIM1; k=ed25519; p=BASE64" (malloc'd). */
char *keys_dkim_record(const char *key_path, char **error_r);
/* TLSA 3 1 1 data (SHA-256 of the leaf's SubjectPublicKeyInfo) as 64
 * lowercase hex digits plus NUL. */
int keys_tlsa_311(const char *cert_path, char hex_r[65], char **error_r);
/* Write data to path atomically (tmp, fsync, rename, fsync dir) with mode. */
int keys_write_file(const char *path, const void *data, size_t len, int mode,
		    char **error_r);
/* Read a whole file of at most max bytes (malloc'd, NUL-terminated). */
char *keys_read_file(const char *path, size_t max, size_t *len_r,
		     char **error_r);

#endif
