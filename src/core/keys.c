/* Key material on disk: self-signed certificate and DKIM keys for
 * quickstart, DNS record values derived from them, atomic file writes.
 * SECURITY: private keys are written 0600 through tmp + fsync + rename and
 * the in-memory PEM is wiped; key files are read with a size bound. */
#include "core/keys.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509v3.h>

#include "core/base64.h"
#include "core/xmalloc.h"

/* Far above any PEM key or certificate chain we write or read. */
#define KEYS_PEM_MAX (1024 * 1024)
#define KEYS_SERIAL_BYTES 16
#define KEYS_RSA_BITS_MIN 1024
#define KEYS_RSA_BITS_MAX 16384
#define KEYS_DAYS_MAX (100 * 366)
#define KEYS_ED25519_LEN 32

/* The first OpenSSL error as text; clears the queue. */
static char *
keys_ssl_error(const char *what)
{
	char text[256] = "unknown OpenSSL error";
	unsigned long e = ERR_get_error();

	if (e != 0)
		ERR_error_string_n(e, text, sizeof(text));
	ERR_clear_error();
	return xasprintf("%s: %s", what, text);
}

static int
keys_no_password(char *buf, int size, int rwflag, void *userdata)
{
	/* Encrypted keys are unsupported; NULL would prompt on a tty. */
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)userdata;
	return -1;
}

static int
keys_write_all(int fd, const void *data, size_t len)
{
	const unsigned char *p = data;

	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Create tmp exclusively with exactly mode (fchmod: umask must not make a
 * certificate unreadable to the roles), write, fsync, close. */
static int
keys_write_tmp(const char *tmp, const void *data, size_t len, int mode,
               char **error_r)
{
	int fd =
	    open(tmp, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, (mode_t)mode);
	int err;

	if (fd < 0) {
		*error_r = xasprintf("open(%s): %s", tmp, strerror(errno));
		return -1;
	}
	if (fchmod(fd, (mode_t)mode) < 0 || keys_write_all(fd, data, len) < 0 ||
	    fsync(fd) < 0) {
		err = errno;
		close(fd);
		*error_r = xasprintf("write(%s): %s", tmp, strerror(err));
		return -1;
	}
	if (close(fd) < 0) {
		*error_r = xasprintf("close(%s): %s", tmp, strerror(errno));
		return -1;
	}
	return 0;
}

/* Make the rename durable: fsync the directory that holds path. */
static int
keys_fsync_dir(const char *path, char **error_r)
{
	const char *slash = strrchr(path, '/');
	char *dir = slash == NULL   ? xstrdup(".")
	            : slash == path ? xstrdup("/")
	                            : xstrndup(path, (size_t)(slash - path));
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int ret = 0;

	if (fd < 0 || fsync(fd) < 0) {
		*error_r = xasprintf("fsync(%s): %s", dir, strerror(errno));
		ret = -1;
	}
	if (fd >= 0)
		close(fd);
	free(dir);
	return ret;
}

int
keys_write_file(const char *path, const void *data, size_t len, int mode,
                char **error_r)
{
	char *tmp;

	if (mode < 0 || (mode & ~07777) != 0) {
		*error_r = xasprintf("%s: bad file mode %o", path, mode);
		return -1;
	}
	tmp = xasprintf("%s.tmp.%ld", path, (long)getpid());
	if (keys_write_tmp(tmp, data, len, mode, error_r) < 0) {
		unlink(tmp);
		free(tmp);
		return -1;
	}
	if (rename(tmp, path) < 0) {
		*error_r =
		    xasprintf("rename(%s, %s): %s", tmp, path, strerror(errno));
		unlink(tmp);
		free(tmp);
		return -1;
	}
	free(tmp);
	return keys_fsync_dir(path, error_r);
}

/* Read fd to EOF into a NUL-terminated buffer; -1 with errno, or with
 * *too_big set when more than max bytes arrive (the file grew). */
static char *
keys_read_fd(int fd, size_t hint, size_t max, size_t *len_r, bool *too_big)
{
	size_t cap = hint + 1, len = 0;
	char *data = xmalloc(cap + 1);

	for (;;) {
		ssize_t n;
		if (len == cap) {
			if (cap > max) {
				*too_big = true;
				free(data);
				return NULL;
			}
			cap = max - cap < cap ? max + 1 : cap * 2;
			data = xreallocarray(data, cap + 1, 1);
		}
		n = read(fd, data + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int err = errno;
			free(data);
			errno = err;
			return NULL;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	data[len] = '\0';
	*len_r = len;
	return data;
}

static char *
keys_read_open(int fd, const char *path, size_t max, size_t *len_r,
               char **error_r)
{
	struct stat st;
	bool too_big = true;
	size_t len = 0;
	char *data = NULL;

	if (fstat(fd, &st) < 0) {
		*error_r = xasprintf("fstat(%s): %s", path, strerror(errno));
		return NULL;
	}
	if (!S_ISREG(st.st_mode)) {
		*error_r = xasprintf("%s: not a regular file", path);
		return NULL;
	}
	if ((uintmax_t)st.st_size <= max) {
		too_big = false;
		data =
		    keys_read_fd(fd, (size_t)st.st_size, max, &len, &too_big);
	}
	if (data == NULL) {
		*error_r =
		    too_big ? xasprintf("%s: larger than %zu bytes", path, max)
		            : xasprintf("read(%s): %s", path, strerror(errno));
		return NULL;
	}
	if (len_r != NULL)
		*len_r = len;
	return data;
}

char *
keys_read_file(const char *path, size_t max, size_t *len_r, char **error_r)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	char *data;

	if (fd < 0) {
		*error_r = xasprintf("open(%s): %s", path, strerror(errno));
		return NULL;
	}
	/* Keeps max + 1 and the doubling in keys_read_fd from overflowing. */
	if (max > SIZE_MAX / 4)
		max = SIZE_MAX / 4;
	data = keys_read_open(fd, path, max, len_r, error_r);
	close(fd);
	return data;
}

/* A PEM file's bytes may hold a private key: wipe before freeing. */
static void
keys_free_secret(char *data, size_t len)
{
	OPENSSL_cleanse(data, len + 1);
	free(data);
}

static int
keys_write_private_key(const char *path, EVP_PKEY *pkey, char **error_r)
{
	/* secmem: the PEM buffer is wiped when the BIO is freed. */
	BIO *bio = BIO_new(BIO_s_secmem());
	char *pem;
	long len;
	int ret;

	if (bio == NULL || PEM_write_bio_PKCS8PrivateKey(bio, pkey, NULL, NULL,
	                                                 0, NULL, NULL) != 1) {
		*error_r = keys_ssl_error("PEM_write_bio_PKCS8PrivateKey");
		BIO_free(bio);
		return -1;
	}
	len = BIO_get_mem_data(bio, &pem);
	ret = keys_write_file(path, pem, (size_t)len, 0600, error_r);
	BIO_free(bio);
	return ret;
}

static int
keys_write_cert(const char *path, X509 *x, char **error_r)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *pem;
	long len;
	int ret;

	if (bio == NULL || PEM_write_bio_X509(bio, x) != 1) {
		*error_r = keys_ssl_error("PEM_write_bio_X509");
		BIO_free(bio);
		return -1;
	}
	len = BIO_get_mem_data(bio, &pem);
	ret = keys_write_file(path, pem, (size_t)len, 0644, error_r);
	BIO_free(bio);
	return ret;
}

/* LDH labels of 1..63 bytes, 253 in all: the name goes into a certificate
 * and must not smuggle anything else into it. */
static bool
keys_hostname_valid(const char *name)
{
	size_t total = strlen(name), label = 0;

	if (total == 0 || total > 253)
		return false;
	for (size_t i = 0; i <= total; i++) {
		char c = name[i];
		if (c == '.' || c == '\0') {
			if (label == 0 || label > 63 || name[i - 1] == '-')
				return false;
			label = 0;
			continue;
		}
		if (label == 0 && c == '-')
			return false;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '-'))
			return false;
		label++;
	}
	return true;
}

/* A random positive 127-bit serial (RFC 5280 asks for at most 20 bytes,
 * CA/B rules for at least 64 random bits). */
static int
keys_set_serial(X509 *x)
{
	unsigned char rnd[KEYS_SERIAL_BYTES];
	BIGNUM *bn;
	int ok;

	if (RAND_bytes(rnd, sizeof(rnd)) != 1)
		return -1;
	rnd[0] &= 0x7f;
	if ((bn = BN_bin2bn(rnd, sizeof(rnd), NULL)) == NULL)
		return -1;
	ok = BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL;
	BN_free(bn);
	return ok ? 0 : -1;
}

static int
keys_set_names(X509 *x, const char *hostname)
{
	X509_NAME *name = X509_get_subject_name(x);

	if (X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
	                               (const unsigned char *)hostname, -1, -1,
	                               0) != 1)
		return -1;
	return X509_set_issuer_name(x, name) == 1 ? 0 : -1;
}

static int
keys_set_validity(X509 *x, int days)
{
	/* An hour back: tolerate clocks on clients that run a little slow. */
	if (X509_gmtime_adj(X509_getm_notBefore(x), -3600) == NULL)
		return -1;
	return X509_time_adj_ex(X509_getm_notAfter(x), days, 0, NULL) != NULL
	           ? 0
	           : -1;
}

static int
keys_add_ext(X509 *x, int nid, const char *value)
{
	X509V3_CTX v3;
	X509_EXTENSION *ext;
	int ok;

	X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
	if ((ext = X509V3_EXT_nconf_nid(NULL, &v3, nid, value)) == NULL)
		return -1;
	ok = X509_add_ext(x, ext, -1) == 1;
	X509_EXTENSION_free(ext);
	return ok ? 0 : -1;
}

/* Built from a GENERAL_NAME, not a config string, so the hostname is never
 * parsed as "DNS:a,IP:b". */
static int
keys_add_san(X509 *x, const char *hostname)
{
	GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
	GENERAL_NAME *gn = GENERAL_NAME_new();
	ASN1_IA5STRING *ia5 = ASN1_IA5STRING_new();
	int ok = gens != NULL && gn != NULL && ia5 != NULL &&
	         ASN1_STRING_set(ia5, hostname, -1) == 1;

	if (ok) {
		GENERAL_NAME_set0_value(gn, GEN_DNS, ia5);
		ia5 = NULL;
		ok = sk_GENERAL_NAME_push(gens, gn) > 0;
	}
	if (ok) {
		gn = NULL;
		ok = X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0,
		                       X509V3_ADD_DEFAULT) == 1;
	}
	ASN1_IA5STRING_free(ia5);
	GENERAL_NAME_free(gn);
	GENERAL_NAMES_free(gens);
	return ok ? 0 : -1;
}

static X509 *
keys_build_cert(const char *hostname, int days, EVP_PKEY *pkey)
{
	X509 *x = X509_new();

	if (x == NULL || X509_set_version(x, X509_VERSION_3) != 1 ||
	    keys_set_serial(x) < 0 || keys_set_names(x, hostname) < 0 ||
	    keys_set_validity(x, days) < 0 || X509_set_pubkey(x, pkey) != 1 ||
	    keys_add_ext(x, NID_basic_constraints, "critical,CA:FALSE") < 0 ||
	    keys_add_ext(x, NID_key_usage, "critical,digitalSignature") < 0 ||
	    keys_add_ext(x, NID_ext_key_usage, "serverAuth") < 0 ||
	    keys_add_san(x, hostname) < 0 ||
	    X509_sign(x, pkey, EVP_sha256()) <= 0) {
		X509_free(x);
		return NULL;
	}
	return x;
}

int
keys_create_selfsigned(const char *hostname, int days, const char *cert_path,
                       const char *key_path, char **error_r)
{
	EVP_PKEY *pkey;
	X509 *x;
	int ret;

	if (!keys_hostname_valid(hostname)) {
		*error_r = xasprintf("invalid hostname for a certificate: %s",
		                     hostname);
		return -1;
	}
	if (days < 1 || days > KEYS_DAYS_MAX) {
		*error_r = xasprintf("certificate validity %d days out of "
		                     "range 1..%d",
		                     days, KEYS_DAYS_MAX);
		return -1;
	}
	if ((pkey = EVP_EC_gen("P-256")) == NULL) {
		*error_r = keys_ssl_error("EC P-256 key generation");
		return -1;
	}
	if ((x = keys_build_cert(hostname, days, pkey)) == NULL) {
		*error_r = keys_ssl_error("building the certificate");
		EVP_PKEY_free(pkey);
		return -1;
	}
	/* Key first: a certificate never sits on disk without its key. */
	ret = keys_write_private_key(key_path, pkey, error_r);
	if (ret == 0)
		ret = keys_write_cert(cert_path, x, error_r);
	X509_free(x);
	EVP_PKEY_free(pkey);
	return ret;
}

int
keys_create_dkim_rsa(const char *key_path, int bits, char **error_r)
{
	EVP_PKEY *pkey;
	int ret;

	if (bits < KEYS_RSA_BITS_MIN || bits > KEYS_RSA_BITS_MAX) {
		*error_r =
		    xasprintf("RSA key size %d out of range %d..%d", bits,
		              KEYS_RSA_BITS_MIN, KEYS_RSA_BITS_MAX);
		return -1;
	}
	if ((pkey = EVP_RSA_gen((unsigned int)bits)) == NULL) {
		*error_r = keys_ssl_error("RSA key generation");
		return -1;
	}
	ret = keys_write_private_key(key_path, pkey, error_r);
	EVP_PKEY_free(pkey);
	return ret;
}

int
keys_create_dkim_ed25519(const char *key_path, char **error_r)
{
	EVP_PKEY *pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	int ret;

	if (pkey == NULL) {
		*error_r = keys_ssl_error("Ed25519 key generation");
		return -1;
	}
	ret = keys_write_private_key(key_path, pkey, error_r);
	EVP_PKEY_free(pkey);
	return ret;
}

static EVP_PKEY *
keys_load_private(const char *path, char **error_r)
{
	size_t len;
	char *pem = keys_read_file(path, KEYS_PEM_MAX, &len, error_r);
	EVP_PKEY *pkey = NULL;
	BIO *bio;

	if (pem == NULL)
		return NULL;
	if ((bio = BIO_new_mem_buf(pem, (int)len)) != NULL)
		pkey =
		    PEM_read_bio_PrivateKey(bio, NULL, keys_no_password, NULL);
	BIO_free(bio);
	keys_free_secret(pem, len);
	if (pkey == NULL) {
		char *e = keys_ssl_error("PEM_read_bio_PrivateKey");
		*error_r = xasprintf("%s: %s", path, e);
		free(e);
	}
	return pkey;
}

static X509 *
keys_load_cert(const char *path, char **error_r)
{
	size_t len;
	char *pem = keys_read_file(path, KEYS_PEM_MAX, &len, error_r);
	X509 *x = NULL;
	BIO *bio;

	if (pem == NULL)
		return NULL;
	if ((bio = BIO_new_mem_buf(pem, (int)len)) != NULL)
		x = PEM_read_bio_X509(bio, NULL, keys_no_password, NULL);
	BIO_free(bio);
	free(pem);
	if (x == NULL) {
		char *e = keys_ssl_error("PEM_read_bio_X509");
		*error_r = xasprintf("%s: %s", path, e);
		free(e);
	}
	return x;
}

/* Base64 on one line, as a DNS TXT value wants it. */
static char *
keys_base64(const unsigned char *data, size_t len)
{
	char *out = xmalloc(BASE64_ENCODED_SIZE(len));

	base64_encode(data, len, out);
	return out;
}

/* DER SubjectPublicKeyInfo of pkey (OPENSSL_malloc'd) or NULL. */
static unsigned char *
keys_spki_der(EVP_PKEY *pkey, size_t *len_r)
{
	unsigned char *der = NULL;
	int len = i2d_PUBKEY(pkey, &der);

	if (len <= 0)
		return NULL;
	*len_r = (size_t)len;
	return der;
}

/* RFC 6376 3.6.1: p= is the base64 SubjectPublicKeyInfo. */
static char *
keys_dkim_rsa_p(EVP_PKEY *pkey)
{
	size_t len;
	unsigned char *der = keys_spki_der(pkey, &len);
	char *p;

	if (der == NULL)
		return NULL;
	p = keys_base64(der, len);
	OPENSSL_free(der);
	return p;
}

/* RFC 8463 4.2: p= is the base64 of the raw 32-byte public key. */
static char *
keys_dkim_ed25519_p(EVP_PKEY *pkey)
{
	unsigned char raw[KEYS_ED25519_LEN];
	size_t len = sizeof(raw);

	if (EVP_PKEY_get_raw_public_key(pkey, raw, &len) != 1 ||
	    len != sizeof(raw))
		return NULL;
	return keys_base64(raw, len);
}

char *
keys_dkim_record(const char *key_path, char **error_r)
{
	EVP_PKEY *pkey = keys_load_private(key_path, error_r);
	const char *k = NULL;
	char *p = NULL, *record = NULL;

	if (pkey == NULL)
		return NULL;
	if (EVP_PKEY_is_a(pkey, "RSA")) {
		k = "rsa";
		p = keys_dkim_rsa_p(pkey);
	} else if (EVP_PKEY_is_a(pkey, "ED25519")) {
		k = "ed25519";
		p = keys_dkim_ed25519_p(pkey);
	}
	if (k == NULL)
		*error_r = xasprintf("%s: not an RSA or Ed25519 key", key_path);
	else if (p == NULL)
		*error_r = keys_ssl_error(key_path);
	else
		record = xasprintf("v=DKIM1; k=%s; p=%s", k, p);
	free(p);
	EVP_PKEY_free(pkey);
	return record;
}

int
keys_tlsa_311(const char *cert_path, char hex_r[65], char **error_r)
{
	static const char hexdigits[] = "0123456789abcdef";
	X509 *x = keys_load_cert(cert_path, error_r);
	unsigned char md[EVP_MAX_MD_SIZE], *der = NULL;
	unsigned int md_len = 0;
	size_t der_len = 0;
	int ok;

	if (x == NULL)
		return -1;
	der = keys_spki_der(X509_get0_pubkey(x), &der_len);
	ok = der != NULL &&
	     EVP_Digest(der, der_len, md, &md_len, EVP_sha256(), NULL) == 1;
	OPENSSL_free(der);
	X509_free(x);
	if (!ok || md_len != 32) {
		*error_r = keys_ssl_error(cert_path);
		return -1;
	}
	for (unsigned int i = 0; i < md_len; i++) {
		hex_r[2 * i] = hexdigits[md[i] >> 4];
		hex_r[2 * i + 1] = hexdigits[md[i] & 0x0f];
	}
	hex_r[64] = '\0';
	return 0;
}
