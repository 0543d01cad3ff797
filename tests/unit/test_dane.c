/* Tests for DANE (src/queue/dane.c): the TLSA lookup against a table-backed
 * DNS (secure and insecure answers, failures, PKIX usages, malformed
 * records, the caps), then OpenSSL's DANE checks in real in-process TLS
 * handshakes over a socketpair with certificates made here: DANE-EE by
 * SPKI and by certificate, DANE-EE ignoring names and expiry, DANE-TA with
 * a CA and the reference name, and mismatches. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "core/xmalloc.h"
#include "mailauth/dnsif.h"
#include "queue/dane.h"

/* ---------------------------------------------------------------- DNS */

#define FAKE_RR_MAX 80

/* One answer for every TLSA lookup; the names asked for are logged. */
struct fake {
	int rc;                    /* what lookup returns */
	enum ma_dns_status status; /* default MA_DNS_OK */
	bool insecure;             /* default: DNSSEC-secure */
	const char *rr[FAKE_RR_MAX];
	size_t n;
	unsigned calls;
	char asked[512];
};

static int
fake_lookup(void *arg, const char *name, enum ma_dns_type type,
            struct ma_dns_answer *ans)
{
	struct fake *f = arg;

	f->calls++;
	snprintf(f->asked, sizeof(f->asked), "%s", name);
	assert_int_equal(type, MA_DNS_TLSA);
	if (f->rc < 0) {
		ans->status = MA_DNS_TEMPFAIL;
		return -1;
	}
	ans->status = f->status;
	ans->secure = !f->insecure;
	if (f->status == MA_DNS_OK && f->n > 0) {
		ans->rr = xcalloc(f->n, sizeof(*ans->rr));
		for (size_t i = 0; i < f->n; i++)
			ans->rr[i] = xstrdup(f->rr[i]);
		ans->count = f->n;
	}
	return 0;
}

#define FAKE(...)                                                              \
	struct fake f = {__VA_ARGS__};                                         \
	struct ma_dns dns = {.lookup = fake_lookup, .arg = &f}

static const char *const EE_SHA256 =
    "3 1 1 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
static const char *const TA_SHA256 =
    "2 0 1 fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";

static void
insecure_mx_means_no_lookup(void **state)
{
	FAKE(.rr = {EE_SHA256}, .n = 1);
	struct dane_policy p;

	(void)state;
	dane_lookup(&dns, "mx.example.org", 25, false, &p);
	assert_int_equal(p.status, DANE_NONE);
	assert_false(p.tls_mandatory);
	assert_int_equal(p.n, 0);
	assert_int_equal(f.calls, 0);
}

static void
usable_records_require_dane(void **state)
{
	FAKE(.rr = {"1 1 1 0123456789abcdef0123456789abcdef0123456789abcdef"
	            "0123456789abcdef",
	            EE_SHA256,
	            "0 0 1 0123456789abcdef0123456789abcdef0123456789"
	            "abcdef0123456789abcdef",
	            TA_SHA256},
	     .n = 4);
	struct dane_policy p;

	(void)state;
	dane_lookup(&dns, "mx.example.org", 2525, true, &p);
	assert_int_equal(f.calls, 1);
	assert_string_equal(f.asked, "_2525._tcp.mx.example.org");
	assert_int_equal(p.status, DANE_REQUIRED);
	assert_int_equal(p.n, 2); /* PKIX-TA and PKIX-EE left out */
	assert_int_equal(p.rec[0].usage, 3);
	assert_int_equal(p.rec[0].selector, 1);
	assert_int_equal(p.rec[0].mtype, 1);
	assert_int_equal(p.rec[0].len, 32);
	assert_int_equal(p.rec[0].data[0], 0x01);
	assert_int_equal(p.rec[0].data[31], 0xef);
	assert_int_equal(p.rec[1].usage, 2);
	assert_int_equal(p.rec[1].selector, 0);
	assert_int_equal(p.rec[1].data[0], 0xfe);
	assert_non_null(strstr(p.why, "2 usable TLSA records"));
}

static void
only_pkix_is_none_but_tls_mandatory(void **state)
{
	FAKE(.rr = {"0 0 1 0123456789abcdef0123456789abcdef0123456789abcdef"
	            "0123456789abcdef",
	            "1 1 2 00"},
	     .n = 2);
	struct dane_policy p;

	(void)state;
	dane_lookup(&dns, "mx.example.org", 25, true, &p);
	assert_int_equal(f.calls, 1);
	assert_int_equal(p.status, DANE_NONE);
	assert_int_equal(p.n, 0);
	assert_true(p.tls_mandatory);
}

static void
failures_are_temporary(void **state)
{
	struct dane_policy p;

	(void)state;
	{
		FAKE(.status = MA_DNS_TEMPFAIL, .insecure = true);

		dane_lookup(&dns, "mx.example.org", 25, true, &p);
		assert_int_equal(p.status, DANE_TEMPFAIL);
		assert_string_equal(p.why, "DANE: TLSA lookup for "
		                           "_25._tcp.mx.example.org failed");
	}
	{
		FAKE(.rc = -1);

		dane_lookup(&dns, "mx.example.org", 25, true, &p);
		assert_int_equal(p.status, DANE_TEMPFAIL);
		assert_int_equal(f.calls, 1);
	}
	{
		/* A name that cannot be a DNS name: not asked, not a
		 * reason to go without DANE either. */
		char host[400];
		FAKE(.rr = {EE_SHA256}, .n = 1);

		memset(host, 'a', sizeof(host) - 1);
		host[sizeof(host) - 1] = '\0';
		dane_lookup(&dns, host, 25, true, &p);
		assert_int_equal(p.status, DANE_TEMPFAIL);
		assert_int_equal(f.calls, 0);
	}
}

static void
no_or_insecure_tlsa_is_none(void **state)
{
	struct dane_policy p;
	const enum ma_dns_status st[] = {MA_DNS_NODATA, MA_DNS_NXDOMAIN};

	(void)state;
	for (size_t i = 0; i < 2; i++) {
		FAKE(.status = st[i]);

		dane_lookup(&dns, "mx.example.org", 25, true, &p);
		assert_int_equal(p.status, DANE_NONE);
		assert_false(p.tls_mandatory);
	}
	{
		FAKE(.insecure = true, .rr = {EE_SHA256}, .n = 1);

		dane_lookup(&dns, "mx.example.org", 25, true, &p);
		assert_int_equal(p.status, DANE_NONE);
		assert_false(p.tls_mandatory);
		assert_int_equal(p.n, 0);
	}
}

/* Each alone is unusable (TLS stays mandatory); beside a good one, the
 * good one is all that is kept. */
static void
malformed_records_are_skipped(void **state)
{
	static const char *const bad[] = {
	    "",
	    "3",
	    "3 1 1",
	    "3 1 1 ",
	    "3 1 1 abc",   /* odd hex */
	    "3 1 1 zz",    /* not hex */
	    "3 1 1 0x00",  /* not hex */
	    "3  1 1 00",   /* two spaces */
	    " 3 1 1 00",   /* leading space */
	    "3 1 1 00 ",   /* trailing space */
	    "256 1 1 00",  /* out of range */
	    "0003 1 1 00", /* more than three digits */
	    "-3 1 1 00",
	    "3 1 1 0123456789abcdef0123456789abcdef0123456789abcdef"
	    "0123456789abcd", /* SHA2-256 of 31 bytes */
	    "3 1 2 0123456789abcdef0123456789abcdef0123456789abcdef"
	    "0123456789abcdef", /* SHA2-512 of 32 bytes */
	    "3 2 1 0123456789abcdef0123456789abcdef0123456789abcdef"
	    "0123456789abcdef", /* unknown selector */
	    "3 1 3 0123456789abcdef0123456789abcdef0123456789abcdef"
	    "0123456789abcdef", /* unknown matching type */
	    "4 1 1 0123456789abcdef0123456789abcdef0123456789abcdef"
	    "0123456789abcdef", /* unknown usage */
	};
	struct dane_policy p;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		FAKE(.rr = {bad[i]}, .n = 1);

		dane_lookup(&dns, "mx.example.org", 25, true, &p);
		if (p.status != DANE_NONE || !p.tls_mandatory)
			fail_msg("\"%s\" was taken", bad[i]);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		FAKE(.rr = {bad[i], EE_SHA256, bad[i]}, .n = 3);

		dane_lookup(&dns, "mx.example.org", 25, true, &p);
		assert_int_equal(p.status, DANE_REQUIRED);
		assert_int_equal(p.n, 1);
		assert_int_equal(p.rec[0].usage, 3);
	}
	{
		/* Upper-case hex is hex. */
		FAKE(.rr = {"3 1 1 0123456789ABCDEF0123456789abcdef0123456789"
		            "abcdef0123456789ABCDEF"},
		     .n = 1);

		dane_lookup(&dns, "mx.example.org", 25, true, &p);
		assert_int_equal(p.status, DANE_REQUIRED);
		assert_int_equal(p.rec[0].data[7], 0xef);
		assert_int_equal(p.rec[0].data[31], 0xef);
	}
}

static void
bounds(void **state)
{
	char *full = xmalloc(6 + 2 * (DANE_DATA_MAX + 1) + 1);
	char *over = xmalloc(6 + 2 * (DANE_DATA_MAX + 1) + 1);
	struct dane_policy p;

	(void)state;
	/* Full data (matching type 0): DANE_DATA_MAX bytes, not one more. */
	memcpy(full, "3 0 0 ", 6);
	memset(full + 6, 'a', 2 * DANE_DATA_MAX);
	full[6 + 2 * DANE_DATA_MAX] = '\0';
	memcpy(over, "3 0 0 ", 6);
	memset(over + 6, 'b', 2 * (DANE_DATA_MAX + 1));
	over[6 + 2 * (DANE_DATA_MAX + 1)] = '\0';
	{
		FAKE(.rr = {full}, .n = 1);

		dane_lookup(&dns, "mx.example.org", 25, true, &p);
		assert_int_equal(p.status, DANE_REQUIRED);
		assert_int_equal(p.rec[0].len, DANE_DATA_MAX);
		assert_int_equal(p.rec[0].data[DANE_DATA_MAX - 1], 0xaa);
	}
	{
		FAKE(.rr = {over}, .n = 1);

		dane_lookup(&dns, "mx.example.org", 25, true, &p);
		assert_int_equal(p.status, DANE_NONE);
		assert_true(p.tls_mandatory);
	}
	{
		/* More usable records than DANE_TLSA_MAX: the first ones. */
		FAKE(.n = MA_DNS_RR_MAX);

		for (size_t i = 0; i < f.n; i++)
			f.rr[i] = i % 2 == 0 ? EE_SHA256 : TA_SHA256;
		dane_lookup(&dns, "mx.example.org", 25, true, &p);
		assert_int_equal(p.status, DANE_REQUIRED);
		assert_int_equal(p.n, DANE_TLSA_MAX);
		assert_int_equal(p.rec[DANE_TLSA_MAX - 1].usage, 2);
	}
	{
		/* Unusable ones do not use up the slots. */
		FAKE(.n = 40);

		for (size_t i = 0; i < 39; i++)
			f.rr[i] = "1 1 1 00";
		f.rr[39] = EE_SHA256;
		dane_lookup(&dns, "mx.example.org", 25, true, &p);
		assert_int_equal(p.status, DANE_REQUIRED);
		assert_int_equal(p.n, 1);
	}
	free(full);
	free(over);
}

/* ---------------------------------------------------------------- TLS */

#define HOST "mx.example.org"
#define DAY (24L * 60 * 60)

static EVP_PKEY *
new_key(void)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");

	assert_non_null(k);
	return k;
}

static void
add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX v3;
	X509_EXTENSION *e;

	X509V3_set_ctx(&v3, issuer, x, NULL, NULL, 0);
	e = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
	assert_non_null(e);
	assert_int_equal(X509_add_ext(x, e, -1), 1);
	X509_EXTENSION_free(e);
}

/* A certificate for key named cn (a CA or a server with that DNS name),
 * valid from..to seconds from now, signed by issuer (NULL: itself). */
static X509 *
new_cert(EVP_PKEY *key, const char *cn, bool ca, long from, long to,
         X509 *issuer, EVP_PKEY *issuer_key)
{
	static long serial = 1;
	X509 *x = X509_new();
	X509_NAME *name = X509_get_subject_name(x);
	char san[300];

	assert_non_null(x);
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
	X509_gmtime_adj(X509_getm_notBefore(x), from);
	X509_gmtime_adj(X509_getm_notAfter(x), to);
	X509_set_pubkey(x, key);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
	                           (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(x, issuer != NULL ? X509_get_subject_name(issuer)
	                                       : name);
	if (ca) {
		add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE");
		add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign");
	} else {
		snprintf(san, sizeof(san), "DNS:%s", cn);
		add_ext(x, issuer != NULL ? issuer : x, NID_subject_alt_name,
		        san);
	}
	assert_true(X509_sign(x, issuer_key != NULL ? issuer_key : key,
	                      EVP_sha256()) > 0);
	return x;
}

static void
hex(const unsigned char *d, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		snprintf(out + 2 * i, 3, "%02x", d[i]);
}

/* "U S 1 <sha256>" of x's SPKI (selector 1) or whole DER (selector 0). */
static void
tlsa_of(X509 *x, unsigned usage, unsigned selector, char *out, size_t outlen)
{
	unsigned char md[EVP_MAX_MD_SIZE], *der = NULL;
	unsigned int mdlen = 0;
	char h[2 * EVP_MAX_MD_SIZE + 1];
	int len;

	if (selector == 1)
		len = i2d_PUBKEY(X509_get0_pubkey(x), &der);
	else
		len = i2d_X509(x, &der);
	assert_true(len > 0);
	assert_int_equal(
	    EVP_Digest(der, (size_t)len, md, &mdlen, EVP_sha256(), NULL), 1);
	OPENSSL_free(der);
	hex(md, mdlen, h);
	snprintf(out, outlen, "%u %u 1 %s", usage, selector, h);
}

/* The policy from records in presentation form, via dane_lookup. */
static void
policy_of(struct dane_policy *p, const char *r1, const char *r2)
{
	FAKE(.rr = {r1, r2}, .n = r2 != NULL ? 2 : 1);

	dane_lookup(&dns, HOST, 25, true, p);
}

struct server {
	X509 *cert;
	EVP_PKEY *key;
	X509 *chain; /* sent after cert, or NULL */
};

struct outcome {
	bool handshake; /* the client finished its handshake */
	int verified;   /* dane_verified */
	char matched[128];
	long verify_result;
};

static void
nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	assert_int_equal(fcntl(fd, F_SETFL, fl | O_NONBLOCK), 0);
}

/* One step of a handshake: 1 done, 0 wants more, -1 failed. */
static int
step(SSL *ssl, bool client)
{
	int rc = client ? SSL_connect(ssl) : SSL_accept(ssl);

	if (rc == 1)
		return 1;
	switch (SSL_get_error(ssl, rc)) {
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		return 0;
	default:
		return -1;
	}
}

/* A client with policy p (DANE for HOST) against server s, in process. */
static struct outcome
handshake(const struct server *s, const struct dane_policy *p)
{
	struct outcome o = {0};
	SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
	SSL_CTX *sctx = SSL_CTX_new(TLS_server_method());
	char why[160], *err = NULL;
	SSL *c, *sv;
	int fds[2], cs = 0, ss = 0;

	assert_non_null(cctx);
	assert_non_null(sctx);
	cctx = dane_ctx_enable(cctx, &err);
	assert_non_null(cctx);
	assert_int_equal(SSL_CTX_use_certificate(sctx, s->cert), 1);
	assert_int_equal(SSL_CTX_use_PrivateKey(sctx, s->key), 1);
	if (s->chain != NULL) {
		X509_up_ref(s->chain);
		assert_int_equal(SSL_CTX_add0_chain_cert(sctx, s->chain), 1);
	}
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
	nonblock(fds[0]);
	nonblock(fds[1]);
	c = SSL_new(cctx);
	sv = SSL_new(sctx);
	SSL_set_fd(c, fds[0]);
	SSL_set_fd(sv, fds[1]);
	SSL_set_tlsext_host_name(c, HOST);
	if (dane_apply(c, HOST, p, why, sizeof(why)) != 0)
		fail_msg("dane_apply: %s", why);
	for (int i = 0; i < 1000 && (cs == 0 || ss == 0); i++) {
		if (cs == 0)
			cs = step(c, true);
		if (ss == 0)
			ss = step(sv, false);
		if (cs < 0)
			break;
	}
	o.handshake = cs == 1;
	o.verify_result = SSL_get_verify_result(c);
	o.verified =
	    o.handshake ? dane_verified(c, o.matched, sizeof(o.matched)) : -1;
	SSL_free(c);
	SSL_free(sv);
	close(fds[0]);
	close(fds[1]);
	SSL_CTX_free(cctx);
	SSL_CTX_free(sctx);
	ERR_clear_error();
	return o;
}

static void
dane_ee_spki_matches(void **state)
{
	EVP_PKEY *k = new_key();
	/* Another name, and expired: DANE-EE looks at neither (RFC 7672
	 * 3.1.1). */
	X509 *x = new_cert(k, "other.example.net", false, -10 * DAY, -DAY, NULL,
	                   NULL);
	struct server s = {x, k, NULL};
	struct dane_policy p;
	struct outcome o;
	char r[200];

	(void)state;
	tlsa_of(x, 3, 1, r, sizeof(r));
	policy_of(&p, r, NULL);
	assert_int_equal(p.status, DANE_REQUIRED);
	o = handshake(&s, &p);
	assert_true(o.handshake);
	assert_int_equal(o.verified, 0);
	assert_string_equal(o.matched,
	                    "DANE-EE(3) SPKI(1) SHA2-256(1) depth 0");
	X509_free(x);
	EVP_PKEY_free(k);
}

static void
dane_ee_cert_matches(void **state)
{
	EVP_PKEY *k = new_key();
	X509 *x = new_cert(k, HOST, false, -DAY, DAY, NULL, NULL);
	struct server s = {x, k, NULL};
	struct dane_policy p;
	struct outcome o;
	char r[200];

	(void)state;
	tlsa_of(x, 3, 0, r, sizeof(r));
	/* A record that matches nothing beside it does no harm. */
	policy_of(&p, EE_SHA256, r);
	o = handshake(&s, &p);
	assert_true(o.handshake);
	assert_int_equal(o.verified, 0);
	assert_string_equal(o.matched,
	                    "DANE-EE(3) Cert(0) SHA2-256(1) depth 0");
	X509_free(x);
	EVP_PKEY_free(k);
}

static void
wrong_hash_fails(void **state)
{
	EVP_PKEY *k = new_key();
	X509 *x = new_cert(k, HOST, false, -DAY, DAY, NULL, NULL);
	struct server s = {x, k, NULL};
	struct dane_policy p;
	struct outcome o;

	(void)state;
	policy_of(&p, EE_SHA256, TA_SHA256);
	o = handshake(&s, &p);
	assert_false(o.handshake);
	assert_int_equal(o.verified, -1);
	assert_int_equal(o.verify_result, X509_V_ERR_DANE_NO_MATCH);
	X509_free(x);
	EVP_PKEY_free(k);
}

static void
dane_ta_with_a_ca(void **state)
{
	EVP_PKEY *cak = new_key(), *k = new_key(), *k2 = new_key();
	X509 *ca = new_cert(cak, "Test CA", true, -DAY, 10 * DAY, NULL, NULL);
	X509 *x = new_cert(k, HOST, false, -DAY, DAY, ca, cak);
	/* Signed by the same CA, for a name that is not the MX host's. */
	X509 *other =
	    new_cert(k2, "other.example.org", false, -DAY, DAY, ca, cak);
	struct server s = {x, k, ca};
	struct dane_policy p;
	struct outcome o;
	char r[200];

	(void)state;
	tlsa_of(ca, 2, 0, r, sizeof(r));
	policy_of(&p, r, NULL);
	o = handshake(&s, &p);
	assert_true(o.handshake);
	assert_int_equal(o.verified, 0);
	assert_string_equal(o.matched,
	                    "DANE-TA(2) Cert(0) SHA2-256(1) depth 1");
	/* DANE-TA checks the name: the MX host's (RFC 7672 3.2.2). */
	s.cert = other;
	s.key = k2;
	o = handshake(&s, &p);
	assert_false(o.handshake);
	assert_int_equal(o.verify_result, X509_V_ERR_HOSTNAME_MISMATCH);
	/* The CA's record does not make the CA's own key an EE key. */
	tlsa_of(ca, 3, 1, r, sizeof(r));
	policy_of(&p, r, NULL);
	s.cert = x;
	s.key = k;
	o = handshake(&s, &p);
	assert_false(o.handshake);
	X509_free(other);
	X509_free(x);
	X509_free(ca);
	EVP_PKEY_free(k2);
	EVP_PKEY_free(k);
	EVP_PKEY_free(cak);
}

static void
apply_refuses_without_dane(void **state)
{
	SSL_CTX *plain = SSL_CTX_new(TLS_client_method());
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	char why[160], *err = NULL;
	struct dane_policy p;
	SSL *ssl;

	(void)state;
	/* No records: nothing to verify against. */
	ctx = dane_ctx_enable(ctx, &err);
	assert_non_null(ctx);
	ssl = SSL_new(ctx);
	policy_of(&p, "1 1 1 00", NULL);
	assert_int_equal(dane_apply(ssl, HOST, &p, why, sizeof(why)), -1);
	/* Not verified before any handshake. */
	assert_int_equal(dane_verified(ssl, why, sizeof(why)), -1);
	SSL_free(ssl);
	/* A context without SSL_CTX_dane_enable. */
	ssl = SSL_new(plain);
	policy_of(&p, EE_SHA256, NULL);
	assert_int_equal(dane_apply(ssl, HOST, &p, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "DANE"));
	SSL_free(ssl);
	SSL_CTX_free(plain);
	SSL_CTX_free(ctx);
	assert_null(dane_ctx_enable(NULL, &err));
	ERR_clear_error();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(insecure_mx_means_no_lookup),
	    cmocka_unit_test(usable_records_require_dane),
	    cmocka_unit_test(only_pkix_is_none_but_tls_mandatory),
	    cmocka_unit_test(failures_are_temporary),
	    cmocka_unit_test(no_or_insecure_tlsa_is_none),
	    cmocka_unit_test(malformed_records_are_skipped),
	    cmocka_unit_test(bounds),
	    cmocka_unit_test(dane_ee_spki_matches),
	    cmocka_unit_test(dane_ee_cert_matches),
	    cmocka_unit_test(wrong_hash_fails),
	    cmocka_unit_test(dane_ta_with_a_ca),
	    cmocka_unit_test(apply_refuses_without_dane),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
