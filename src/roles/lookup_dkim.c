/* lookup's half of DKIM signing: the private keys stay here
 * (ARCHITECTURE.md invariant 2). front asks which keys a domain has
 * (DATA_DIR/dkim/DOMAIN/SELECTOR.key), hashes the message itself, and
 * sends the digests; lookup answers with the signatures.
 * SECURITY: front may be compromised: the domain and selectors it names
 * are checked (lower-case A-label characters only, no "/", no leading
 * ".") before they name a file, digests must be exactly 32 bytes, and the
 * number of signatures per request is bounded. A compromised front can
 * still have digests signed for our own domains; it cannot read a key. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "core/buf.h"
#include "core/ipc.h"
#include "core/log.h"
#include "core/xmalloc.h"
#include "mailauth/dkim.h"
#include "roles/lookup_dkim.h"

#define DKIM_KEYS_MAX 8
#define DKIM_NAME_MAX 253

/* A domain or selector that can name a directory entry: [a-z0-9._-],
 * not starting with ".", not empty, bounded. */
static bool
dkim_name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > DKIM_NAME_MAX || s[0] == '.' || s[0] == '-')
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '-' || c == '_'))
			return false;
		if (c == '.' && s[i + 1] == '.')
			return false;
	}
	return true;
}

static EVP_PKEY *
key_load(const char *data_dir, const char *domain, const char *selector)
{
	char *path = xasprintf("%s/dkim/%s/%s.key", data_dir, domain, selector);
	EVP_PKEY *key = NULL;
	FILE *f = fopen(path, "re");

	if (f != NULL) {
		key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
		fclose(f);
	}
	if (key == NULL)
		log_error(NULL, "event=dkim-key-unreadable path=%s error=%s",
		          path, f == NULL ? strerror(errno) : "not a PEM key");
	free(path);
	return key;
}

static int
key_algorithm(EVP_PKEY *key)
{
	switch (EVP_PKEY_get_base_id(key)) {
	case EVP_PKEY_RSA:
		return DKIM_ALG_RSA_SHA256;
	case EVP_PKEY_ED25519:
		return DKIM_ALG_ED25519_SHA256;
	default:
		return -1;
	}
}

static int
selector_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

void
lookup_dkim_keys(const char *data_dir, struct ipc_peer *peer,
                 struct ipc_msg *msg)
{
	struct ipc_reader r;
	char *domain, *sels[DKIM_KEYS_MAX], *path;
	int algs[DKIM_KEYS_MAX];
	size_t n = 0, kept = 0;
	struct dirent *e;
	struct buf b;
	DIR *d = NULL;

	ipc_reader_init(&r, msg);
	domain = ipc_get_str(&r);
	buf_init(&b, 0);
	if (ipc_reader_done(&r) < 0 || !dkim_name_ok(domain)) {
		log_warn(NULL, "event=bad-dkim-keys-request");
		goto answer;
	}
	path = xasprintf("%s/dkim/%s", data_dir, domain);
	d = opendir(path);
	free(path);
	while (d != NULL && n < DKIM_KEYS_MAX && (e = readdir(d)) != NULL) {
		size_t len = strlen(e->d_name);

		if (len <= 4 || strcmp(e->d_name + len - 4, ".key") != 0)
			continue;
		sels[n] = xstrndup(e->d_name, len - 4);
		if (!dkim_name_ok(sels[n])) {
			free(sels[n]);
			continue;
		}
		n++;
	}
	if (d != NULL)
		closedir(d);
	/* The same order every time: signatures come out the same way. */
	qsort(sels, n, sizeof(sels[0]), selector_cmp);
	for (size_t i = 0; i < n; i++) {
		EVP_PKEY *key = key_load(data_dir, domain, sels[i]);

		algs[i] = key != NULL ? key_algorithm(key) : -1;
		EVP_PKEY_free(key);
	}
answer:
	for (size_t i = 0; i < n; i++)
		kept += algs[i] >= 0;
	ipc_put_u32(&b, (uint32_t)kept);
	for (size_t i = 0; i < n; i++) {
		if (algs[i] >= 0) {
			ipc_put_str(&b, sels[i]);
			ipc_put_u32(&b, (uint32_t)algs[i]);
		}
		free(sels[i]);
	}
	ipc_send(peer, IPC_MSG_DKIM_KEYS_REPLY, msg->reqid, -1, b.data, b.len);
	buf_free(&b);
	free(domain);
}

void
lookup_dkim_sign(const char *data_dir, struct ipc_peer *peer,
                 struct ipc_msg *msg)
{
	struct ipc_reader r;
	char *domain;
	uint32_t n;
	struct buf b;

	ipc_reader_init(&r, msg);
	domain = ipc_get_str(&r);
	n = ipc_get_u32(&r);
	buf_init(&b, 0);
	if (r.error || !dkim_name_ok(domain) || n > DKIM_KEYS_MAX) {
		log_warn(NULL, "event=bad-dkim-sign-request");
		ipc_put_u32(&b, 0);
		goto answer;
	}
	ipc_put_u32(&b, n);
	for (uint32_t i = 0; i < n; i++) {
		char *selector = ipc_get_str(&r);
		uint32_t alg = ipc_get_u32(&r);
		size_t dlen = 0, slen = 0;
		const uint8_t *digest = ipc_get_bytes(&r, &dlen);
		uint8_t sig[DKIM_SIGNATURE_MAX];
		const char *why = "bad request";
		EVP_PKEY *key = NULL;

		if (selector != NULL && dkim_name_ok(selector) &&
		    digest != NULL && dlen == DKIM_DIGEST_MAX &&
		    (alg == DKIM_ALG_RSA_SHA256 ||
		     alg == DKIM_ALG_ED25519_SHA256) &&
		    (key = key_load(data_dir, domain, selector)) != NULL &&
		    key_algorithm(key) == (int)alg &&
		    dkim_sign_with_key(key, (enum dkim_algorithm)alg, digest,
		                       dlen, sig, sizeof(sig), &slen,
		                       &why) == 0) {
			ipc_put_bytes(&b, sig, slen);
		} else {
			log_error(NULL,
			          "event=dkim-sign-failed domain=%s selector=%s "
			          "error=%s",
			          domain, selector != NULL ? selector : "",
			          key == NULL ? "no key" : why);
			ipc_put_bytes(&b, "", 0);
		}
		EVP_PKEY_free(key);
		free(selector);
	}
	if (ipc_reader_done(&r) < 0) {
		buf_reset(&b);
		ipc_put_u32(&b, 0);
	}
answer:
	ipc_send(peer, IPC_MSG_DKIM_SIGNATURES, msg->reqid, -1, b.data, b.len);
	buf_free(&b);
	free(domain);
}
