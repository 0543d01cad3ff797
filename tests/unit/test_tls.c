/* Unit tests for core/tls: real in-process handshakes over memory BIO
 * pairs (SNI choice, protocol versions, ciphers, client verification),
 * loading errors, and the reference count across a connection's life. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "core/keys.h"
#include "core/tls.h"
#include "core/xmalloc.h"

struct test_pem {
	char *cert;
	char *key;
};

static char test_dir[] = "/tmp/tern-test-tls.XXXXXX";
static struct test_pem pem_a, pem_b; /* keys_create_selfsigned: a/b.test */
static char *cert_a_path, *cert_b_path;

static struct tls_pem
tls_pem_of(const struct test_pem *p)
{
	return (struct tls_pem){p->cert, strlen(p->cert), p->key,
	                        strlen(p->key)};
}

static void
test_pem_free(struct test_pem *p)
{
	free(p->cert);
	free(p->key);
}

static char *
read_whole(const char *path)
{
	char *error = NULL, *data = keys_read_file(path, 65536, NULL, &error);

	if (data == NULL) {
		print_error("%s\n", error);
		free(error);
	}
	return data;
}

static int
make_selfsigned(const char *host, struct test_pem *pem, char **cert_path_r)
{
	char *cert = xasprintf("%s/%s.crt", test_dir, host);
	char *key = xasprintf("%s/%s.key", test_dir, host);
	char *error = NULL;
	int ret = keys_create_selfsigned(host, 30, cert, key, &error);

	if (ret == 0) {
		pem->cert = read_whole(cert);
		pem->key = read_whole(key);
		ret = pem->cert != NULL && pem->key != NULL ? 0 : -1;
	} else {
		print_error("%s\n", error);
		free(error);
	}
	unlink(key);
	free(key);
	*cert_path_r = cert;
	return ret;
}

static int
group_setup(void **state)
{
	(void)state;
	if (mkdtemp(test_dir) == NULL)
		return -1;
	if (make_selfsigned("a.test", &pem_a, &cert_a_path) < 0 ||
	    make_selfsigned("b.test", &pem_b, &cert_b_path) < 0)
		return -1;
	return 0;
}

static int
group_teardown(void **state)
{
	(void)state;
	unlink(cert_a_path);
	unlink(cert_b_path);
	free(cert_a_path);
	free(cert_b_path);
	test_pem_free(&pem_a);
	test_pem_free(&pem_b);
	return rmdir(test_dir);
}

/* Test-local certificate factory, independent of keys.c, for what
 * keys_create_selfsigned refuses to make: wildcards, CN-only names, and
 * validity windows in the past. san may be NULL. */
static char *
bio_string(BIO *bio)
{
	char *data;
	long len = BIO_get_mem_data(bio, &data);
	char *s = xstrndup(data, (size_t)len);

	BIO_free(bio);
	return s;
}

static X509 *
build_cert(const char *cn, const char *san, long from_s, long to_s,
           EVP_PKEY *pkey)
{
	X509 *x = X509_new();
	X509_NAME *name = X509_get_subject_name(x);

	assert_int_equal(X509_set_version(x, X509_VERSION_3), 1);
	assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(x), 1), 1);
	assert_int_equal(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
	                                            (const unsigned char *)cn,
	                                            -1, -1, 0),
	                 1);
	assert_int_equal(X509_set_issuer_name(x, name), 1);
	assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), from_s));
	assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), to_s));
	assert_int_equal(X509_set_pubkey(x, pkey), 1);
	if (san != NULL) {
		X509V3_CTX v3;
		X509_EXTENSION *ext;
		X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
		ext =
		    X509V3_EXT_nconf_nid(NULL, &v3, NID_subject_alt_name, san);
		assert_non_null(ext);
		assert_int_equal(X509_add_ext(x, ext, -1), 1);
		X509_EXTENSION_free(ext);
	}
	assert_true(X509_sign(x, pkey, EVP_sha256()) > 0);
	return x;
}

static struct test_pem
make_cert(const char *cn, const char *san, long from_s, long to_s)
{
	EVP_PKEY *pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	X509 *x;
	BIO *cb = BIO_new(BIO_s_mem()), *kb = BIO_new(BIO_s_mem());
	struct test_pem pem;

	assert_non_null(pkey);
	x = build_cert(cn, san, from_s, to_s, pkey);
	assert_int_equal(PEM_write_bio_X509(cb, x), 1);
	assert_int_equal(
	    PEM_write_bio_PrivateKey(kb, pkey, NULL, NULL, 0, NULL, NULL), 1);
	pem.cert = bio_string(cb);
	pem.key = bio_string(kb);
	X509_free(x);
	EVP_PKEY_free(pkey);
	return pem;
}

/* Drive both ends of a memory BIO pair until both finish or one fails. */
static int
handshake(SSL *client, SSL *server)
{
	BIO *bc, *bs;
	bool cdone = false, sdone = false;

	assert_int_equal(BIO_new_bio_pair(&bc, 0, &bs, 0), 1);
	SSL_set_bio(client, bc, bc);
	SSL_set_bio(server, bs, bs);
	for (int i = 0; i < 50 && !(cdone && sdone); i++) {
		SSL *ends[2] = {client, server};
		bool *done[2] = {&cdone, &sdone};
		for (int e = 0; e < 2; e++) {
			int r;
			if (*done[e])
				continue;
			if ((r = SSL_do_handshake(ends[e])) == 1) {
				*done[e] = true;
				continue;
			}
			r = SSL_get_error(ends[e], r);
			if (r != SSL_ERROR_WANT_READ &&
			    r != SSL_ERROR_WANT_WRITE)
				return -1;
		}
	}
	return cdone && sdone ? 0 : -1;
}

static SSL_CTX *
client_ctx(void)
{
	char *error = NULL;
	SSL_CTX *ctx = tls_client_ctx_new(false, NULL, &error);

	assert_non_null(ctx);
	return ctx;
}

static SSL *
client_ssl(SSL_CTX *ctx, const char *sni)
{
	SSL *ssl = SSL_new(ctx);

	assert_non_null(ssl);
	if (sni != NULL)
		assert_int_equal(SSL_set_tlsext_host_name(ssl, sni), 1);
	SSL_set_connect_state(ssl);
	return ssl;
}

static struct tls_server *
server_new(const struct test_pem *pems, size_t n)
{
	struct tls_pem tp[8];
	char *error = NULL;
	struct tls_server *srv;

	assert_true(n <= 8);
	for (size_t i = 0; i < n; i++)
		tp[i] = tls_pem_of(&pems[i]);
	srv = tls_server_new(tp, n, &error);
	if (srv == NULL)
		fail_msg("tls_server_new: %s", error);
	return srv;
}

/* CN of the certificate the client received. */
static void
assert_peer_cn(SSL *client, const char *cn)
{
	X509 *peer = SSL_get1_peer_certificate(client);
	char buf[256];

	assert_non_null(peer);
	assert_true(X509_NAME_get_text_by_NID(X509_get_subject_name(peer),
	                                      NID_commonName, buf,
	                                      sizeof(buf)) > 0);
	assert_string_equal(buf, cn);
	X509_free(peer);
}

/* Connect with sni and check which certificate came back. */
static void
check_sni(struct tls_server *srv, const char *sni, const char *cn)
{
	SSL_CTX *cctx = client_ctx();
	SSL *client = client_ssl(cctx, sni);
	SSL *server = tls_server_new_ssl(srv);

	assert_non_null(server);
	if (handshake(client, server) < 0)
		fail_msg("handshake sni=%s: %s", sni ? sni : "(none)",
		         tls_last_error());
	assert_peer_cn(client, cn);
	SSL_free(client);
	SSL_free(server);
	SSL_CTX_free(cctx);
}

static void
test_sni(void **state)
{
	static const struct {
		const char *sni, *cn;
	} cases[] = {
	    {"a.test", "a.test"},   {"b.test", "b.test"},
	    {"B.Test", "b.test"},   {"unknown.test", "a.test"},
	    {"x.b.test", "a.test"}, {NULL, "a.test"},
	};
	struct test_pem pems[2] = {pem_a, pem_b};
	struct tls_server *srv = server_new(pems, 2);

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		check_sni(srv, cases[i].sni, cases[i].cn);
	tls_server_unref(&srv);
	assert_null(srv);
}

/* Wildcards match one label; CN counts only when there is no DNS SAN. */
static void
test_sni_names(void **state)
{
	static const struct {
		const char *sni, *cn;
	} cases[] = {
	    {"x.w.test", "wild"},           {"X.W.TEST", "wild"},
	    {"a.x.w.test", "a.test"},       {"w.test", "a.test"},
	    {"cnonly.test", "cnonly.test"}, {"CNonly.test", "cnonly.test"},
	    {"san.test", "ignored.test"},   {"ignored.test", "a.test"},
	    {"foo.p.test", "a.test"},
	};
	struct test_pem pems[5] = {
	    pem_a,
	    make_cert("wild", "DNS:*.w.test", -60, 86400),
	    make_cert("cnonly.test", NULL, -60, 86400),
	    make_cert("ignored.test", "DNS:san.test", -60, 86400),
	    make_cert("partial", "DNS:f*.p.test", -60, 86400),
	};
	struct tls_server *srv = server_new(pems, 5);

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		check_sni(srv, cases[i].sni, cases[i].cn);
	tls_server_unref(&srv);
	for (size_t i = 1; i < 5; i++)
		test_pem_free(&pems[i]);
}

static void
test_cert_info(void **state)
{
	struct test_pem pems[2] = {pem_a, pem_b};
	struct tls_server *srv = server_new(pems, 2);
	time_t now = time(NULL), na = tls_server_cert_not_after(srv, 1);

	(void)state;
	assert_int_equal(tls_server_cert_count(srv), 2);
	assert_string_equal(tls_server_cert_name(srv, 0), "a.test");
	assert_string_equal(tls_server_cert_name(srv, 1), "b.test");
	/* keys_create_selfsigned(…, 30, …) */
	assert_in_range(na - now, 30 * 86400 - 60, 30 * 86400 + 60);
	tls_server_unref(&srv);
}

/* What the handshakes below cannot show: OpenSSL 3 already refuses TLS
 * below 1.2 at its default security level, so check the settings too. */
static void
test_server_settings(void **state)
{
	struct test_pem pems[2] = {pem_a, pem_b};
	struct tls_server *srv = server_new(pems, 2);
	SSL *ssl = tls_server_new_ssl(srv);
	uint64_t want = SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
	                SSL_OP_CIPHER_SERVER_PREFERENCE;

	(void)state;
	assert_non_null(ssl);
	assert_false(SSL_is_server(ssl) == 0);
	assert_int_equal(SSL_get_min_proto_version(ssl), TLS1_2_VERSION);
	assert_int_equal(SSL_get_max_proto_version(ssl), TLS1_3_VERSION);
	assert_int_equal(SSL_get_options(ssl) & want, want);
	assert_int_equal(SSL_get_options(ssl) & SSL_OP_NO_TICKET, 0);
	SSL_free(ssl);
	tls_server_unref(&srv);
}

/* Handshake with a client limited to [min, max]; NULL ciphers: default. */
static int
versioned_handshake(int min, int max, const char *ciphers, char *version_r,
                    char *cipher_r)
{
	struct test_pem pems[1] = {pem_a};
	struct tls_server *srv = server_new(pems, 1);
	SSL_CTX *cctx = client_ctx();
	SSL *client, *server = tls_server_new_ssl(srv);
	int ret;

	/* Level 0, so OpenSSL lets the client offer TLS 1.1 and it is the
	 * server that refuses. */
	SSL_CTX_set_security_level(cctx, 0);
	assert_int_equal(SSL_CTX_set_min_proto_version(cctx, min), 1);
	assert_int_equal(SSL_CTX_set_max_proto_version(cctx, max), 1);
	if (ciphers != NULL)
		assert_int_equal(SSL_CTX_set_cipher_list(cctx, ciphers), 1);
	client = client_ssl(cctx, "a.test");
	ret = handshake(client, server);
	if (ret == 0) {
		snprintf(version_r, 64, "%s", tls_version_name(client));
		snprintf(cipher_r, 128, "%s", tls_cipher_name(server));
		assert_string_equal(version_r, tls_version_name(server));
	}
	SSL_free(client);
	SSL_free(server);
	SSL_CTX_free(cctx);
	tls_server_unref(&srv);
	return ret;
}

static void
test_versions(void **state)
{
	char version[64], cipher[128];

	(void)state;
	assert_int_equal(versioned_handshake(0, 0, NULL, version, cipher), 0);
	assert_string_equal(version, "TLSv1.3");
	assert_int_equal(strncmp(cipher, "TLS_", 4), 0);

	assert_int_equal(versioned_handshake(TLS1_2_VERSION, TLS1_2_VERSION,
	                                     NULL, version, cipher),
	                 0);
	assert_string_equal(version, "TLSv1.2");
	assert_int_equal(strncmp(cipher, "ECDHE-ECDSA-", 12), 0);
	assert_true(strstr(cipher, "GCM") != NULL ||
	            strstr(cipher, "CHACHA20-POLY1305") != NULL);

	assert_int_equal(versioned_handshake(TLS1_VERSION, TLS1_1_VERSION, NULL,
	                                     version, cipher),
	                 -1);
	ERR_clear_error();
}

/* TLS 1.2 without forward secrecy, or with CBC, is refused. */
static void
test_ciphers_refused(void **state)
{
	static const char *const weak[] = {
	    "AES128-GCM-SHA256",
	    "ECDHE-ECDSA-AES128-SHA",
	    "ECDHE-ECDSA-AES256-SHA384",
	};
	char version[64], cipher[128];

	(void)state;
	for (size_t i = 0; i < sizeof(weak) / sizeof(weak[0]); i++) {
		assert_int_equal(versioned_handshake(TLS1_2_VERSION,
		                                     TLS1_2_VERSION, weak[i],
		                                     version, cipher),
		                 -1);
		ERR_clear_error();
	}
}

/* A chain after the leaf is sent along. */
static void
test_chain(void **state)
{
	char *chain = xasprintf("%s%s", pem_a.cert, pem_b.cert);
	struct test_pem pems[1] = {{chain, pem_a.key}};
	struct tls_server *srv = server_new(pems, 1);
	SSL_CTX *cctx = client_ctx();
	SSL *client = client_ssl(cctx, NULL), *server = tls_server_new_ssl(srv);

	(void)state;
	assert_int_equal(handshake(client, server), 0);
	assert_int_equal(sk_X509_num(SSL_get_peer_cert_chain(client)), 2);
	assert_peer_cn(client, "a.test");
	SSL_free(client);
	SSL_free(server);
	SSL_CTX_free(cctx);
	tls_server_unref(&srv);
	free(chain);
}

static void
assert_server_error(const struct test_pem *pems, size_t n, const char *want1,
                    const char *want2)
{
	struct tls_pem tp[4];
	char *error = NULL;

	for (size_t i = 0; i < n; i++)
		tp[i] = tls_pem_of(&pems[i]);
	assert_null(tls_server_new(tp, n, &error));
	assert_non_null(error);
	if (strstr(error, want1) == NULL || strstr(error, want2) == NULL)
		fail_msg("error \"%s\" lacks \"%s\" / \"%s\"", error, want1,
		         want2);
	free(error);
	ERR_clear_error();
}

static void
test_load_errors(void **state)
{
	char garbage[] = "hello, world\n";
	char bad_block[] = "-----BEGIN CERTIFICATE-----\n!!!!\n"
	                   "-----END CERTIFICATE-----\n";
	char bad_key[] = "-----BEGIN PRIVATE KEY-----\nAAAA\n"
	                 "-----END PRIVATE KEY-----\n";
	struct test_pem expired =
	    make_cert("old.test", "DNS:old.test", -2 * 86400, -86400);
	struct test_pem cases[][2] = {
	    {{pem_a.cert, pem_b.key}, {pem_b.cert, pem_b.key}},
	    {{pem_a.cert, pem_a.key}, {pem_b.cert, pem_a.key}},
	    {{garbage, pem_a.key}, {pem_b.cert, pem_b.key}},
	    {{bad_block, pem_a.key}, {pem_b.cert, pem_b.key}},
	    {{pem_a.cert, garbage}, {pem_b.cert, pem_b.key}},
	    {{pem_a.cert, bad_key}, {pem_b.cert, pem_b.key}},
	    {{pem_a.cert, pem_a.key}, expired},
	};
	static const char *const want[][2] = {
	    {"certificate 1", "does not match"},
	    {"certificate 2", "does not match"},
	    {"certificate 1", "no certificate"},
	    {"certificate 1", "bad certificate PEM"},
	    {"certificate 1", "bad private key PEM"},
	    {"certificate 1", "bad private key PEM"},
	    {"certificate 2", "expired"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_server_error(cases[i], 2, want[i][0], want[i][1]);
	test_pem_free(&expired);
}

/* The owner drops its reference while a connection is still in its
 * handshake (a reload); the SNI callback must still find the server. */
static void
test_refcount(void **state)
{
	struct test_pem pems[2] = {pem_a, pem_b};
	struct tls_server *srv = server_new(pems, 2);
	struct tls_server *extra = tls_server_ref(srv);
	SSL_CTX *cctx = client_ctx();
	SSL *client = client_ssl(cctx, "b.test");
	SSL *server = tls_server_new_ssl(srv);

	(void)state;
	assert_ptr_equal(extra, srv);
	tls_server_unref(&extra);
	assert_null(extra);
	tls_server_unref(&srv);
	assert_null(srv);
	tls_server_unref(&srv); /* NULL is a no-op */

	assert_int_equal(handshake(client, server), 0);
	assert_peer_cn(client, "b.test");
	SSL_free(server); /* the last reference goes here */
	SSL_free(client);
	SSL_CTX_free(cctx);
}

/* Verification: a.test is trusted through its own certificate as CA
 * file; b.test is not. */
static int
verified_handshake(const char *sni)
{
	struct test_pem pems[2] = {pem_a, pem_b};
	struct tls_server *srv = server_new(pems, 2);
	char *error = NULL;
	SSL_CTX *cctx = tls_client_ctx_new(true, cert_a_path, &error);
	SSL *client, *server = tls_server_new_ssl(srv);
	int ret;

	assert_non_null(cctx);
	client = client_ssl(cctx, sni);
	assert_int_equal(SSL_set1_host(client, sni), 1);
	ret = handshake(client, server);
	if (ret == 0)
		assert_int_equal(SSL_get_verify_result(client), X509_V_OK);
	SSL_free(client);
	SSL_free(server);
	SSL_CTX_free(cctx);
	tls_server_unref(&srv);
	ERR_clear_error();
	return ret;
}

static void
test_client_verify(void **state)
{
	char *error = NULL;

	(void)state;
	assert_int_equal(verified_handshake("a.test"), 0);
	assert_int_equal(verified_handshake("b.test"), -1);
	assert_null(tls_client_ctx_new(true, "/nonexistent/ca.pem", &error));
	assert_non_null(strstr(error, "/nonexistent/ca.pem"));
	free(error);
}

static void
test_last_error(void **state)
{
	BIO *bio = BIO_new_mem_buf("junk", 4);

	(void)state;
	ERR_clear_error();
	assert_string_equal(tls_last_error(), "unknown OpenSSL error");
	assert_null(PEM_read_bio_X509(bio, NULL, NULL, NULL));
	assert_non_null(strstr(tls_last_error(), "error:"));
	assert_int_equal(ERR_peek_error(), 0); /* queue cleared */
	BIO_free(bio);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_sni),
	    cmocka_unit_test(test_sni_names),
	    cmocka_unit_test(test_cert_info),
	    cmocka_unit_test(test_server_settings),
	    cmocka_unit_test(test_versions),
	    cmocka_unit_test(test_ciphers_refused),
	    cmocka_unit_test(test_chain),
	    cmocka_unit_test(test_load_errors),
	    cmocka_unit_test(test_refcount),
	    cmocka_unit_test(test_client_verify),
	    cmocka_unit_test(test_last_error),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
