/* Unit tests for core/keys: self-signed certificate contents, DKIM keys and
 * records, TLSA cross-checked against the openssl CLI, atomic writes and
 * bounded reads. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "core/keys.h"
#include "core/xmalloc.h"

static char test_dir[] = "/tmp/tern-test-keys.XXXXXX";

static char *
path_in(const char *name)
{
	return xasprintf("%s/%s", test_dir, name);
}

static int
dir_setup(void **state)
{
	(void)state;
	return mkdtemp(test_dir) != NULL ? 0 : -1;
}

static int
dir_teardown(void **state)
{
	DIR *d = opendir(test_dir);
	struct dirent *de;

	(void)state;
	while (d != NULL && (de = readdir(d)) != NULL) {
		char *p;
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		p = path_in(de->d_name);
		unlink(p);
		free(p);
	}
	if (d != NULL)
		closedir(d);
	return rmdir(test_dir);
}

static mode_t
file_mode(const char *path)
{
	struct stat st;

	assert_int_equal(stat(path, &st), 0);
	return st.st_mode & 07777;
}

/* No "*.tmp.*" file may survive a keys_write_file. */
static void
assert_no_tmp_files(void)
{
	DIR *d = opendir(test_dir);
	struct dirent *de;

	assert_non_null(d);
	while ((de = readdir(d)) != NULL)
		assert_null(strstr(de->d_name, ".tmp."));
	closedir(d);
}

static X509 *
read_cert(const char *path)
{
	FILE *f = fopen(path, "r");
	X509 *x;

	assert_non_null(f);
	x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	assert_non_null(x);
	return x;
}

static EVP_PKEY *
read_key(const char *path)
{
	FILE *f = fopen(path, "r");
	EVP_PKEY *pkey;
	char line[64];

	assert_non_null(f);
	/* PKCS#8, not a traditional "BEGIN EC PRIVATE KEY" block. */
	assert_non_null(fgets(line, sizeof(line), f));
	assert_string_equal(line, "-----BEGIN PRIVATE KEY-----\n");
	rewind(f);
	pkey = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	assert_non_null(pkey);
	return pkey;
}

static void
assert_only_dns_san(X509 *x, const char *name)
{
	GENERAL_NAMES *gens =
	    X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	const GENERAL_NAME *gn;

	assert_non_null(gens);
	assert_int_equal(sk_GENERAL_NAME_num(gens), 1);
	gn = sk_GENERAL_NAME_value(gens, 0);
	assert_int_equal(gn->type, GEN_DNS);
	assert_int_equal(ASN1_STRING_length(gn->d.dNSName), strlen(name));
	assert_memory_equal(ASN1_STRING_get0_data(gn->d.dNSName), name,
	                    strlen(name));
	GENERAL_NAMES_free(gens);
}

static void
assert_validity(X509 *x, int days)
{
	int pday, psec;

	/* notBefore about an hour ago. */
	assert_int_equal(
	    ASN1_TIME_diff(&pday, &psec, X509_get0_notBefore(x), NULL), 1);
	assert_int_equal(pday, 0);
	assert_in_range(psec, 3590, 3700);
	/* notAfter days from now. */
	assert_int_equal(
	    ASN1_TIME_diff(&pday, &psec, NULL, X509_get0_notAfter(x)), 1);
	assert_true(pday == days || (pday == days - 1 && psec > 86300));
}

static void
assert_serial_random(X509 *x)
{
	BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);

	assert_non_null(bn);
	assert_false(BN_is_negative(bn));
	/* 127 random bits: below 100 only with probability 2^-27. */
	assert_in_range(BN_num_bits(bn), 100, 127);
	BN_free(bn);
}

static void
assert_server_extensions(X509 *x)
{
	assert_int_equal(X509_get_extension_flags(x) & EXFLAG_CA, 0);
	assert_int_equal(X509_get_key_usage(x), KU_DIGITAL_SIGNATURE);
	assert_int_equal(X509_get_extended_key_usage(x), XKU_SSL_SERVER);
}

static void
test_selfsigned(void **state)
{
	char *cert = path_in("cert.pem"), *key = path_in("key.pem");
	char *error = NULL, cn[256];
	char group[64];
	EVP_PKEY *pkey;
	X509 *x;

	(void)state;
	assert_int_equal(
	    keys_create_selfsigned("mail.example.test", 90, cert, key, &error),
	    0);
	assert_int_equal(file_mode(key), 0600);
	assert_int_equal(file_mode(cert), 0644);
	assert_no_tmp_files();

	x = read_cert(cert);
	pkey = read_key(key);
	assert_int_equal(X509_get_version(x), X509_VERSION_3);
	assert_int_equal(X509_NAME_get_text_by_NID(X509_get_subject_name(x),
	                                           NID_commonName, cn,
	                                           sizeof(cn)),
	                 17);
	assert_string_equal(cn, "mail.example.test");
	assert_int_equal(
	    X509_NAME_cmp(X509_get_subject_name(x), X509_get_issuer_name(x)),
	    0);
	assert_only_dns_san(x, "mail.example.test");
	assert_validity(x, 90);
	assert_serial_random(x);
	assert_server_extensions(x);
	assert_int_equal(X509_get_signature_nid(x), NID_ecdsa_with_SHA256);
	assert_int_equal(X509_verify(x, X509_get0_pubkey(x)), 1);
	assert_int_equal(X509_check_private_key(x, pkey), 1);
	assert_int_equal(
	    EVP_PKEY_get_group_name(pkey, group, sizeof(group), NULL), 1);
	assert_string_equal(group, "prime256v1");

	EVP_PKEY_free(pkey);
	X509_free(x);
	unlink(cert);
	unlink(key);
	free(cert);
	free(key);
}

static void
test_selfsigned_bad_args(void **state)
{
	static const char *const bad_hosts[] = {
	    "",        "a,IP:1.2.3.4", "-a.test",  "a-.test",  "a..test",
	    ".a.test", "a.test.",      "*.a.test", "a b.test", "a\nb",
	};
	char *cert = path_in("bad-cert.pem"), *key = path_in("bad-key.pem");
	char *error = NULL;
	struct stat st;

	(void)state;
	for (size_t i = 0; i < sizeof(bad_hosts) / sizeof(bad_hosts[0]); i++) {
		assert_int_equal(
		    keys_create_selfsigned(bad_hosts[i], 30, cert, key, &error),
		    -1);
		assert_non_null(strstr(error, "invalid hostname"));
		free(error);
		error = NULL;
	}
	assert_int_equal(keys_create_selfsigned("a.test", 0, cert, key, &error),
	                 -1);
	free(error);
	assert_int_not_equal(stat(cert, &st), 0);
	assert_int_not_equal(stat(key, &st), 0);
	free(cert);
	free(key);
}

/* What `openssl x509 -pubkey | openssl pkey -pubin -outform DER |
 * sha256sum` prints: the reference value for TLSA 3 1 1. */
static void
tlsa_from_cli(const char *cert, char out[65])
{
	char *cmd = xasprintf("openssl x509 -in '%s' -pubkey -noout | "
	                      "openssl pkey -pubin -outform DER | sha256sum",
	                      cert);
	FILE *p = popen(cmd, "r");

	assert_non_null(p);
	assert_int_equal(fread(out, 1, 64, p), 64);
	out[64] = '\0';
	assert_int_equal(pclose(p), 0);
	free(cmd);
}

/* Same value through X509_PUBKEY and the one-shot digest, a path the
 * implementation does not use. */
static void
tlsa_from_x509_pubkey(const char *cert, char out[65])
{
	X509 *x = read_cert(cert);
	unsigned char *der = NULL, md[32];
	size_t md_len = 0;
	int len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &der);

	assert_true(len > 0);
	assert_int_equal(
	    EVP_Q_digest(NULL, "SHA256", NULL, der, (size_t)len, md, &md_len),
	    1);
	assert_int_equal(md_len, 32);
	for (size_t i = 0; i < md_len; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
	OPENSSL_free(der);
	X509_free(x);
}

static void
test_tlsa(void **state)
{
	char *cert = path_in("tlsa-cert.pem"), *key = path_in("tlsa-key.pem");
	char *error = NULL, hex[65], cli[65], ref[65];

	(void)state;
	assert_int_equal(
	    keys_create_selfsigned("mx.example.test", 30, cert, key, &error),
	    0);
	assert_int_equal(keys_tlsa_311(cert, hex, &error), 0);
	assert_int_equal(strlen(hex), 64);
	assert_int_equal(strspn(hex, "0123456789abcdef"), 64);
	tlsa_from_cli(cert, cli);
	tlsa_from_x509_pubkey(cert, ref);
	assert_string_equal(hex, cli);
	assert_string_equal(hex, ref);

	/* A key file is not a certificate. */
	assert_int_equal(keys_tlsa_311(key, hex, &error), -1);
	assert_non_null(strstr(error, key));
	free(error);
	unlink(cert);
	unlink(key);
	free(cert);
	free(key);
}

/* Decode the p= value of a record that starts with prefix. */
static unsigned char *
dkim_p_decode(const char *record, const char *prefix, size_t *len_r)
{
	const char *p;
	size_t b64_len, pad = 0;
	unsigned char *out;
	int n;

	assert_int_equal(strncmp(record, prefix, strlen(prefix)), 0);
	assert_null(strpbrk(record, "\r\n"));
	p = record + strlen(prefix);
	b64_len = strlen(p);
	assert_int_equal(b64_len % 4, 0);
	if (b64_len > 0 && p[b64_len - 1] == '=')
		pad++;
	if (b64_len > 1 && p[b64_len - 2] == '=')
		pad++;
	out = xmalloc(b64_len);
	n = EVP_DecodeBlock(out, (const unsigned char *)p, (int)b64_len);
	assert_true(n > 0);
	*len_r = (size_t)n - pad;
	return out;
}

static void
test_dkim_rsa(void **state)
{
	char *key = path_in("dkim-rsa.key"), *error = NULL, *record;
	const unsigned char *q;
	unsigned char *der;
	EVP_PKEY *priv, *pub;
	size_t len;

	(void)state;
	assert_int_equal(keys_create_dkim_rsa(key, 2048, &error), 0);
	assert_int_equal(file_mode(key), 0600);
	assert_no_tmp_files();
	record = keys_dkim_record(key, &error);
	assert_non_null(record);

	der = dkim_p_decode(record, "v=DKIM1; k=rsa; p=", &len);
	q = der;
	pub = d2i_PUBKEY(NULL, &q, (long)len);
	assert_non_null(pub);
	assert_ptr_equal(q, der + len); /* the whole value, nothing more */
	assert_true(EVP_PKEY_is_a(pub, "RSA"));
	assert_int_equal(EVP_PKEY_get_bits(pub), 2048);
	priv = read_key(key);
	assert_int_equal(EVP_PKEY_eq(pub, priv), 1);

	EVP_PKEY_free(priv);
	EVP_PKEY_free(pub);
	free(der);
	free(record);
	unlink(key);
	free(key);
}

static void
test_dkim_rsa_bad_bits(void **state)
{
	char *key = path_in("dkim-small.key"), *error = NULL;
	struct stat st;

	(void)state;
	assert_int_equal(keys_create_dkim_rsa(key, 512, &error), -1);
	assert_non_null(strstr(error, "512"));
	free(error);
	assert_int_not_equal(stat(key, &st), 0);
	free(key);
}

static void
test_dkim_ed25519(void **state)
{
	char *key = path_in("dkim-ed.key"), *error = NULL, *record;
	unsigned char *raw;
	EVP_PKEY *priv, *pub;
	size_t len;

	(void)state;
	assert_int_equal(keys_create_dkim_ed25519(key, &error), 0);
	assert_int_equal(file_mode(key), 0600);
	record = keys_dkim_record(key, &error);
	assert_non_null(record);
	/* RFC 8463: the bare 32-byte key, 44 base64 characters. */
	assert_int_equal(strlen(record), strlen("v=DKIM1; k=ed25519; p=") + 44);

	raw = dkim_p_decode(record, "v=DKIM1; k=ed25519; p=", &len);
	assert_int_equal(len, 32);
	pub = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, raw, len);
	assert_non_null(pub);
	priv = read_key(key);
	assert_int_equal(EVP_PKEY_eq(pub, priv), 1);

	EVP_PKEY_free(priv);
	EVP_PKEY_free(pub);
	free(raw);
	free(record);
	unlink(key);
	free(key);
}

static void
test_dkim_record_errors(void **state)
{
	char *missing = path_in("missing.key"), *junk = path_in("junk.key");
	char *cert = path_in("ec-cert.pem"), *ec = path_in("ec-key.pem");
	char *error = NULL;

	(void)state;
	assert_null(keys_dkim_record(missing, &error));
	assert_non_null(strstr(error, "missing.key"));
	free(error);

	assert_int_equal(keys_write_file(junk, "junk\n", 5, 0600, &error), 0);
	assert_null(keys_dkim_record(junk, &error));
	assert_non_null(strstr(error, "junk.key"));
	free(error);

	/* A P-256 key is neither of the DKIM algorithms. */
	assert_int_equal(keys_create_selfsigned("ec.test", 1, cert, ec, &error),
	                 0);
	assert_null(keys_dkim_record(ec, &error));
	assert_non_null(strstr(error, "not an RSA or Ed25519"));
	free(error);

	unlink(junk);
	unlink(cert);
	unlink(ec);
	free(missing);
	free(junk);
	free(cert);
	free(ec);
}

static void
test_write_file(void **state)
{
	char *path = path_in("data"), *tmp, *error = NULL, *data;
	size_t len;

	(void)state;
	assert_int_equal(keys_write_file(path, "first", 5, 0640, &error), 0);
	assert_int_equal(file_mode(path), 0640);
	/* Replaces the old file, including its mode. */
	assert_int_equal(keys_write_file(path, "second", 6, 0600, &error), 0);
	assert_int_equal(file_mode(path), 0600);
	data = keys_read_file(path, 100, &len, &error);
	assert_non_null(data);
	assert_int_equal(len, 6);
	assert_string_equal(data, "second");
	free(data);
	assert_no_tmp_files();

	/* A stale tmp file is never followed or reused; the target stays. */
	tmp = xasprintf("%s.tmp.%ld", path, (long)getpid());
	assert_int_equal(symlink("/nonexistent", tmp), 0);
	assert_int_equal(keys_write_file(path, "third", 5, 0600, &error), -1);
	assert_non_null(strstr(error, "open("));
	free(error);
	unlink(tmp);
	free(tmp);
	data = keys_read_file(path, 100, NULL, &error);
	assert_string_equal(data, "second");
	free(data);

	assert_int_equal(keys_write_file(path, "x", 1, 010000, &error), -1);
	free(error);
	unlink(path);
	free(path);
}

static void
test_write_file_no_dir(void **state)
{
	char *path = path_in("nodir/file"), *error = NULL;

	(void)state;
	assert_int_equal(keys_write_file(path, "x", 1, 0600, &error), -1);
	assert_non_null(strstr(error, "nodir"));
	free(error);
	free(path);
}

static void
test_read_file_bound(void **state)
{
	char *path = path_in("bound"), *empty = path_in("empty");
	char *error = NULL, *data, buf[100];
	size_t len = 1;

	(void)state;
	memset(buf, 'x', sizeof(buf));
	assert_int_equal(keys_write_file(path, buf, sizeof(buf), 0600, &error),
	                 0);
	data = keys_read_file(path, 100, &len, &error);
	assert_non_null(data);
	assert_int_equal(len, 100);
	assert_int_equal(data[100], '\0');
	free(data);

	assert_null(keys_read_file(path, 99, &len, &error));
	assert_non_null(strstr(error, "larger than 99"));
	free(error);

	assert_null(keys_read_file(test_dir, 100, &len, &error));
	assert_non_null(strstr(error, "not a regular file"));
	free(error);

	assert_int_equal(keys_write_file(empty, "", 0, 0600, &error), 0);
	data = keys_read_file(empty, 100, &len, &error);
	assert_non_null(data);
	assert_int_equal(len, 0);
	assert_string_equal(data, "");
	free(data);

	unlink(path);
	unlink(empty);
	free(path);
	free(empty);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_selfsigned),
	    cmocka_unit_test(test_selfsigned_bad_args),
	    cmocka_unit_test(test_tlsa),
	    cmocka_unit_test(test_dkim_rsa),
	    cmocka_unit_test(test_dkim_rsa_bad_bits),
	    cmocka_unit_test(test_dkim_ed25519),
	    cmocka_unit_test(test_dkim_record_errors),
	    cmocka_unit_test(test_write_file),
	    cmocka_unit_test(test_write_file_no_dir),
	    cmocka_unit_test(test_read_file_bound),
	};

	return cmocka_run_group_tests(tests, dir_setup, dir_teardown);
}
