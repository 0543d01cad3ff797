/* TLS contexts on OpenSSL 3: server certificate sets built from in-memory
 * PEM with SNI selection, client contexts, and small naming helpers.
 * SECURITY: TLS 1.2/1.3 only, ECDHE + AEAD ciphers, no compression or
 * renegotiation; the SNI callback runs on peer input before authentication. */
#include "core/tls.h"

#include <assert.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "core/log.h"
#include "core/xmalloc.h"

/* TLS 1.2 only (1.3 suites are OpenSSL's defaults): forward secrecy and
 * AEAD, Mozilla "intermediate" order. */
#define TLS12_CIPHERS                                                          \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"           \
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"           \
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

/* Same value in every context, so SSL_set_SSL_CTX keeps sessions valid. */
static const unsigned char tls_sid_ctx[] = "tern";

struct tls_cert {
	SSL_CTX *ctx;
	X509 *leaf; /* our own reference, for SNI matching and logging */
	char *name; /* subject CN (or first DNS name), for logging */
	time_t not_after;
};

/* Lifetime: the owner holds one reference, and every SSL made by
 * tls_server_new_ssl holds another in its ex_data slot (released by
 * tls_ssl_exdata_free when the SSL is freed). The SNI callback reads the
 * server from that slot, never from a raw callback argument, so a
 * connection that outlives a reload still finds its certificates.
 * The count is not atomic: each process runs one event loop and TLS stays
 * on it. */
struct tls_server {
	unsigned int refcount;
	size_t count;
	struct tls_cert *certs;
};

static int tls_ssl_index = -1;

static int
tls_no_password(char *buf, int size, int rwflag, void *userdata)
{
	/* Encrypted keys are unsupported; without this callback OpenSSL
	 * would prompt on the terminal. */
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)userdata;
	return -1;
}

const char *
tls_last_error(void)
{
	static char text[256];
	unsigned long e = ERR_get_error();

	ERR_clear_error();
	if (e == 0)
		return "unknown OpenSSL error";
	ERR_error_string_n(e, text, sizeof(text));
	return text;
}

/* True when the last queued error is the PEM reader hitting the end of
 * input; anything else is a malformed block. */
static bool
tls_pem_at_end(void)
{
	unsigned long e = ERR_peek_last_error();

	return e == 0 || (ERR_GET_LIB(e) == ERR_LIB_PEM &&
	                  ERR_GET_REASON(e) == PEM_R_NO_START_LINE);
}

static BIO *
tls_mem_bio(const char *data, size_t len)
{
	BIO *bio;

	if (len > INT_MAX)
		return NULL;
	if ((bio = BIO_new_mem_buf(data, (int)len)) == NULL)
		abort(); /* allocation failure, as with xmalloc */
	return bio;
}

/* The first CN of the subject as UTF-8, or NULL. */
static char *
tls_subject_cn(X509 *x)
{
	X509_NAME *subj = X509_get_subject_name(x);
	int i = X509_NAME_get_index_by_NID(subj, NID_commonName, -1);
	unsigned char *utf8 = NULL;
	char *cn;
	int len;

	if (i < 0)
		return NULL;
	len = ASN1_STRING_to_UTF8(
	    &utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subj, i)));
	if (len < 0)
		return NULL;
	cn = xstrndup((const char *)utf8, (size_t)len);
	OPENSSL_free(utf8);
	return cn;
}

/* The first subjectAltName dNSName, or NULL. */
static char *
tls_first_dns_name(X509 *x)
{
	GENERAL_NAMES *gens =
	    X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	char *name = NULL;

	for (int i = 0; name == NULL && i < sk_GENERAL_NAME_num(gens); i++) {
		const GENERAL_NAME *gn = sk_GENERAL_NAME_value(gens, i);
		if (gn->type != GEN_DNS)
			continue;
		name =
		    xstrndup((const char *)ASN1_STRING_get0_data(gn->d.dNSName),
		             (size_t)ASN1_STRING_length(gn->d.dNSName));
	}
	GENERAL_NAMES_free(gens);
	return name;
}

static char *
tls_cert_display_name(X509 *x)
{
	char *name = tls_subject_cn(x);

	if (name == NULL)
		name = tls_first_dns_name(x);
	return name != NULL ? name : xstrdup("");
}

static int
tls_asn1_time(const ASN1_TIME *t, time_t *time_r)
{
	struct tm tm;

	if (ASN1_TIME_to_tm(t, &tm) != 1)
		return -1;
	*time_r = timegm(&tm);
	return 0;
}

/* Only the leaf is checked: served chains often carry an expired
 * cross-signed root that clients ignore, and rejecting it would refuse a
 * working configuration. */
static int
tls_check_leaf(X509 *leaf, struct tls_cert *cert, char **error_r)
{
	if (X509_cmp_current_time(X509_get0_notAfter(leaf)) <= 0) {
		*error_r = xstrdup("certificate has expired");
		return -1;
	}
	if (tls_asn1_time(X509_get0_notAfter(leaf), &cert->not_after) < 0) {
		*error_r = xstrdup("certificate has an unreadable notAfter");
		return -1;
	}
	return 0;
}

/* Leaf then chain certificates from PEM into ctx; keeps a leaf ref. */
static int
tls_load_chain(SSL_CTX *ctx, const struct tls_pem *pem, struct tls_cert *cert,
               char **error_r)
{
	BIO *bio = tls_mem_bio(pem->cert, pem->cert_len);
	X509 *x;
	int ret = 0;

	if (bio == NULL) {
		*error_r = xstrdup("certificate PEM too large");
		return -1;
	}
	ERR_clear_error();
	while (ret == 0 &&
	       (x = PEM_read_bio_X509(bio, NULL, tls_no_password, NULL))) {
		if (cert->leaf == NULL) {
			cert->leaf = x;
			if (SSL_CTX_use_certificate(ctx, x) != 1)
				ret = -1;
			continue;
		}
		if (SSL_CTX_add1_chain_cert(ctx, x) != 1)
			ret = -1;
		X509_free(x);
	}
	BIO_free(bio);
	if (ret < 0 || !tls_pem_at_end()) {
		*error_r =
		    xasprintf("bad certificate PEM: %s", tls_last_error());
		return -1;
	}
	ERR_clear_error();
	if (cert->leaf == NULL) {
		*error_r = xstrdup("no certificate in PEM");
		return -1;
	}
	return 0;
}

static int
tls_load_key(SSL_CTX *ctx, const struct tls_pem *pem, char **error_r)
{
	BIO *bio = tls_mem_bio(pem->key, pem->key_len);
	EVP_PKEY *pkey;
	int ok;

	if (bio == NULL) {
		*error_r = xstrdup("private key PEM too large");
		return -1;
	}
	pkey = PEM_read_bio_PrivateKey(bio, NULL, tls_no_password, NULL);
	BIO_free(bio);
	if (pkey == NULL) {
		*error_r =
		    xasprintf("bad private key PEM: %s", tls_last_error());
		return -1;
	}
	/* use_PrivateKey already compares with a leaf of the same key type;
	 * check_private_key also catches a key of another type. */
	ok = SSL_CTX_use_PrivateKey(ctx, pkey) == 1 &&
	     SSL_CTX_check_private_key(ctx) == 1;
	EVP_PKEY_free(pkey);
	if (!ok) {
		*error_r = xasprintf("private key does not match: %s",
		                     tls_last_error());
		return -1;
	}
	return 0;
}

static bool
tls_ctx_harden(SSL_CTX *ctx)
{
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION |
	                             SSL_OP_NO_RENEGOTIATION |
	                             SSL_OP_CIPHER_SERVER_PREFERENCE);
	/* An idle connection (IMAP IDLE, hours long) keeps no 17 KB read
	 * and write buffers: they are allocated while records flow. */
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	return SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) == 1 &&
	       SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) == 1 &&
	       SSL_CTX_set_cipher_list(ctx, TLS12_CIPHERS) == 1 &&
	       SSL_CTX_set_session_id_context(ctx, tls_sid_ctx,
	                                      sizeof(tls_sid_ctx) - 1) == 1;
}

static int tls_servername_cb(SSL *ssl, int *alert, void *arg);

static int
tls_cert_init(struct tls_cert *cert, const struct tls_pem *pem, bool first,
              char **error_r)
{
	if ((cert->ctx = SSL_CTX_new(TLS_server_method())) == NULL ||
	    !tls_ctx_harden(cert->ctx)) {
		*error_r = xasprintf("SSL_CTX setup: %s", tls_last_error());
		return -1;
	}
	/* Only the context an SSL starts with runs the callback. */
	if (first)
		SSL_CTX_set_tlsext_servername_callback(cert->ctx,
		                                       tls_servername_cb);
	if (tls_load_chain(cert->ctx, pem, cert, error_r) < 0 ||
	    tls_check_leaf(cert->leaf, cert, error_r) < 0 ||
	    tls_load_key(cert->ctx, pem, error_r) < 0)
		return -1;
	cert->name = tls_cert_display_name(cert->leaf);
	return 0;
}

static void
tls_cert_deinit(struct tls_cert *cert)
{
	SSL_CTX_free(cert->ctx);
	X509_free(cert->leaf);
	free(cert->name);
}

static void
tls_ssl_exdata_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx,
                    long argl, void *argp)
{
	struct tls_server *srv = ptr;

	(void)parent;
	(void)ad;
	(void)idx;
	(void)argl;
	(void)argp;
	if (srv != NULL)
		tls_server_unref(&srv);
}

/* SSL_dup copies the slot: the copy needs its own reference. */
static int
tls_ssl_exdata_dup(CRYPTO_EX_DATA *to, const CRYPTO_EX_DATA *from,
                   void **from_d, int idx, long argl, void *argp)
{
	(void)to;
	(void)from;
	(void)idx;
	(void)argl;
	(void)argp;
	if (*from_d != NULL)
		tls_server_ref(*from_d);
	return 1;
}

static int
tls_ssl_index_get(void)
{
	if (tls_ssl_index < 0)
		tls_ssl_index = SSL_get_ex_new_index(
		    0, NULL, NULL, tls_ssl_exdata_dup, tls_ssl_exdata_free);
	return tls_ssl_index;
}

/* First certificate whose names match (SAN dNSName, else CN; one-label
 * wildcards, case-insensitive: X509_check_host's defaults). */
static size_t
tls_server_find(const struct tls_server *srv, const char *name)
{
	for (size_t i = 0; i < srv->count; i++) {
		if (X509_check_host(srv->certs[i].leaf, name, 0,
		                    X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS,
		                    NULL) == 1)
			return i;
	}
	return 0;
}

static int
tls_servername_cb(SSL *ssl, int *alert, void *arg)
{
	struct tls_server *srv = SSL_get_ex_data(ssl, tls_ssl_index);
	const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
	size_t i;

	(void)alert;
	(void)arg;
	/* No name, or an SSL not made by tls_server_new_ssl: default. */
	if (srv == NULL || name == NULL)
		return SSL_TLSEXT_ERR_OK;
	i = tls_server_find(srv, name);
	log_trace(NULL, "event=tls_sni name=%s cert=%s", name,
	          srv->certs[i].name);
	if (i != 0 && SSL_set_SSL_CTX(ssl, srv->certs[i].ctx) == NULL)
		return SSL_TLSEXT_ERR_ALERT_FATAL;
	return SSL_TLSEXT_ERR_OK;
}

struct tls_server *
tls_server_new(const struct tls_pem *pems, size_t n, char **error_r)
{
	struct tls_server *srv;
	char *error;

	assert(n >= 1);
	if (tls_ssl_index_get() < 0) {
		*error_r = xasprintf("SSL ex_data: %s", tls_last_error());
		return NULL;
	}
	srv = xcalloc(1, sizeof(*srv));
	srv->refcount = 1;
	srv->certs = xcalloc(n, sizeof(*srv->certs));
	for (; srv->count < n; srv->count++) {
		struct tls_cert *cert = &srv->certs[srv->count];
		if (tls_cert_init(cert, &pems[srv->count], srv->count == 0,
		                  &error) < 0) {
			*error_r = xasprintf("certificate %zu: %s",
			                     srv->count + 1, error);
			free(error);
			srv->count++; /* deinit the partial one too */
			tls_server_unref(&srv);
			return NULL;
		}
	}
	return srv;
}

struct tls_server *
tls_server_ref(struct tls_server *srv)
{
	assert(srv->refcount > 0);
	srv->refcount++;
	return srv;
}

void
tls_server_unref(struct tls_server **srvp)
{
	struct tls_server *srv = *srvp;

	*srvp = NULL;
	if (srv == NULL)
		return;
	assert(srv->refcount > 0);
	if (--srv->refcount > 0)
		return;
	for (size_t i = 0; i < srv->count; i++)
		tls_cert_deinit(&srv->certs[i]);
	free(srv->certs);
	free(srv);
}

SSL *
tls_server_new_ssl(struct tls_server *srv)
{
	SSL *ssl = SSL_new(srv->certs[0].ctx);

	if (ssl == NULL)
		return NULL;
	if (SSL_set_ex_data(ssl, tls_ssl_index, srv) != 1) {
		SSL_free(ssl);
		return NULL;
	}
	tls_server_ref(srv); /* released by tls_ssl_exdata_free */
	SSL_set_accept_state(ssl);
	return ssl;
}

const char *
tls_server_cert_name(const struct tls_server *srv, size_t i)
{
	assert(i < srv->count);
	return srv->certs[i].name;
}

time_t
tls_server_cert_not_after(const struct tls_server *srv, size_t i)
{
	assert(i < srv->count);
	return srv->certs[i].not_after;
}

size_t
tls_server_cert_count(const struct tls_server *srv)
{
	return srv->count;
}

static bool
tls_client_load_ca(SSL_CTX *ctx, const char *ca_file)
{
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	if (ca_file == NULL)
		return SSL_CTX_set_default_verify_paths(ctx) == 1;
	return SSL_CTX_load_verify_locations(ctx, ca_file, NULL) == 1;
}

/* Hostname checks are per connection: callers set SSL_set1_host and
 * SSL_set_tlsext_host_name on each SSL. Ciphers stay OpenSSL's defaults:
 * the peers (MX hosts) are not ours to choose. */
SSL_CTX *
tls_client_ctx_new(bool verify, const char *ca_file, char **error_r)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	if (ctx == NULL) {
		*error_r = xasprintf("SSL_CTX_new: %s", tls_last_error());
		return NULL;
	}
	SSL_CTX_set_options(ctx,
	                    SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
	    (verify && !tls_client_load_ca(ctx, ca_file))) {
		*error_r = xasprintf("client TLS setup (CA %s): %s",
		                     ca_file != NULL ? ca_file : "default",
		                     tls_last_error());
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

const char *
tls_version_name(const SSL *ssl)
{
	return SSL_get_version(ssl);
}

const char *
tls_cipher_name(const SSL *ssl)
{
	const SSL_CIPHER *cipher = SSL_get_current_cipher(ssl);

	return cipher != NULL ? SSL_CIPHER_get_name(cipher) : "(none)";
}
