/* DANE for SMTP (RFC 7672): the TLSA lookup for an MX host, the parse of
 * its records, and the per-connection setup and result of OpenSSL's DANE
 * verification. See dane.h.
 * SECURITY: TLSA records are untrusted DNS data. Each is parsed strictly
 * (three decimal fields of 0..255, even-length hex), its data length is
 * checked against its matching type and DANE_DATA_MAX, at most
 * DANE_TLSA_MAX are kept. Only a DNSSEC-secure RRset counts; a failed or
 * bogus lookup is DANE_TEMPFAIL, never a reason to send in cleartext. */
#include "queue/dane.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include <openssl/crypto.h>

#include "core/xmalloc.h"

#define DANE_NAME_MAX 300 /* "_65535._tcp." and a 253-byte host */

/* RFC 6698 2.1 and RFC 7218 (acronyms). */
enum {
	DANE_USAGE_PKIX_TA = 0,
	DANE_USAGE_PKIX_EE = 1,
	DANE_USAGE_DANE_TA = 2,
	DANE_USAGE_DANE_EE = 3,
	DANE_SELECTOR_CERT = 0,
	DANE_SELECTOR_SPKI = 1,
	DANE_MTYPE_FULL = 0,
	DANE_MTYPE_SHA256 = 1,
	DANE_MTYPE_SHA512 = 2,
};

static void set_why(char *why, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A longer text is cut: it is for logs and humans. */
static void
set_why(char *why, size_t len, const char *fmt, ...)
{
	va_list ap;

	if (len == 0)
		return;
	va_start(ap, fmt);
	if (vsnprintf(why, len, fmt, ap) < 0)
		why[0] = '\0';
	va_end(ap);
}

static const char *
usage_name(uint8_t u)
{
	switch (u) {
	case DANE_USAGE_PKIX_TA:
		return "PKIX-TA";
	case DANE_USAGE_PKIX_EE:
		return "PKIX-EE";
	case DANE_USAGE_DANE_TA:
		return "DANE-TA";
	case DANE_USAGE_DANE_EE:
		return "DANE-EE";
	}
	return "?";
}

static const char *
selector_name(uint8_t s)
{
	return s == DANE_SELECTOR_CERT   ? "Cert"
	       : s == DANE_SELECTOR_SPKI ? "SPKI"
	                                 : "?";
}

static const char *
mtype_name(uint8_t m)
{
	return m == DANE_MTYPE_FULL     ? "Full"
	       : m == DANE_MTYPE_SHA256 ? "SHA2-256"
	       : m == DANE_MTYPE_SHA512 ? "SHA2-512"
	                                : "?";
}

/* One decimal field of 0..255 ending in a single space. */
static int
parse_u8(const char **pp, uint8_t *out)
{
	const char *p = *pp;
	unsigned v = 0;
	size_t digits = 0;

	while (*p >= '0' && *p <= '9' && digits < 3) {
		v = v * 10 + (unsigned)(*p - '0');
		p++;
		digits++;
	}
	if (digits == 0 || v > 255 || *p != ' ')
		return -1;
	*out = (uint8_t)v;
	*pp = p + 1;
	return 0;
}

/* "USAGE SELECTOR MTYPE HEX" (dnsif.h). 0, or -1 when malformed or the
 * data is longer than DANE_DATA_MAX. */
static int
parse_tlsa(const char *text, struct dane_tlsa *t)
{
	const char *p = text;
	size_t hexlen;

	if (parse_u8(&p, &t->usage) < 0 || parse_u8(&p, &t->selector) < 0 ||
	    parse_u8(&p, &t->mtype) < 0)
		return -1;
	hexlen = strlen(p);
	if (hexlen == 0 || hexlen % 2 != 0 || hexlen / 2 > DANE_DATA_MAX)
		return -1;
	for (size_t i = 0; i < hexlen / 2; i++) {
		int hi = OPENSSL_hexchar2int((unsigned char)p[2 * i]),
		    lo = OPENSSL_hexchar2int((unsigned char)p[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -1;
		t->data[i] = (uint8_t)(hi << 4 | lo);
	}
	t->len = hexlen / 2;
	return 0;
}

/* Usable for SMTP (RFC 7672 3.1): DANE-TA or DANE-EE, a known selector,
 * a matching type OpenSSL implements with the digest length it has. */
static bool
usable(const struct dane_tlsa *t)
{
	if (t->usage != DANE_USAGE_DANE_TA && t->usage != DANE_USAGE_DANE_EE)
		return false;
	if (t->selector != DANE_SELECTOR_CERT &&
	    t->selector != DANE_SELECTOR_SPKI)
		return false;
	switch (t->mtype) {
	case DANE_MTYPE_FULL:
		return t->len > 0;
	case DANE_MTYPE_SHA256:
		return t->len == 32;
	case DANE_MTYPE_SHA512:
		return t->len == 64;
	}
	return false;
}

void
dane_lookup(const struct ma_dns *dns, const char *host, uint16_t port,
            bool mx_secure, struct dane_policy *p)
{
	struct ma_dns_answer ans = {0};
	char name[DANE_NAME_MAX];
	size_t present = 0;
	int n, rc;

	memset(p, 0, sizeof(*p));
	p->status = DANE_NONE;
	if (!mx_secure) {
		set_why(p->why, sizeof(p->why),
		        "MX or address of %.200s not DNSSEC-secure", host);
		return;
	}
	n = snprintf(name, sizeof(name), "_%u._tcp.%s", (unsigned)port, host);
	if (n < 0 || (size_t)n >= sizeof(name)) {
		p->status = DANE_TEMPFAIL;
		set_why(p->why, sizeof(p->why), "DANE: host name too long");
		return;
	}
	rc = dns->lookup(dns->arg, name, MA_DNS_TLSA, &ans);
	if (rc < 0 || ans.status == MA_DNS_TEMPFAIL) {
		/* RFC 7672 2.2.1: a TLSA lookup that fails (bogus included)
		 * makes the host unusable for now. */
		p->status = DANE_TEMPFAIL;
		set_why(p->why, sizeof(p->why),
		        "DANE: TLSA lookup for %.140s failed", name);
		goto out;
	}
	if (ans.status != MA_DNS_OK) {
		set_why(p->why, sizeof(p->why), "no TLSA records at %.140s",
		        name);
		goto out;
	}
	if (!ans.secure) {
		set_why(p->why, sizeof(p->why),
		        "TLSA records at %.140s not DNSSEC-secure", name);
		goto out;
	}
	for (size_t i = 0; i < ans.count && i < MA_DNS_RR_MAX; i++) {
		struct dane_tlsa *t;

		present++;
		if (p->n >= DANE_TLSA_MAX)
			break;
		t = &p->rec[p->n];
		if (ans.rr[i] == NULL || parse_tlsa(ans.rr[i], t) < 0 ||
		    !usable(t)) {
			memset(t, 0, sizeof(*t));
			continue;
		}
		p->n++;
	}
	if (p->n > 0) {
		p->status = DANE_REQUIRED;
		set_why(p->why, sizeof(p->why),
		        "%zu usable TLSA record%s at %.140s", p->n,
		        p->n == 1 ? "" : "s", name);
	} else if (present > 0) {
		p->tls_mandatory = true;
		set_why(p->why, sizeof(p->why),
		        "no usable TLSA record at %.140s: TLS without "
		        "authentication",
		        name);
	}
out:
	ma_dns_answer_clear(&ans);
}

static const char *
ssl_error(void)
{
	unsigned long e = ERR_peek_last_error();

	return e != 0 ? ERR_reason_error_string(e) : "unknown error";
}

SSL_CTX *
dane_ctx_enable(SSL_CTX *ctx, char **error_r)
{
	if (ctx == NULL)
		return NULL;
	ERR_clear_error();
	if (SSL_CTX_dane_enable(ctx) <= 0) {
		*error_r = xasprintf("SSL_CTX_dane_enable: %s", ssl_error());
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

int
dane_apply(SSL *ssl, const char *host, const struct dane_policy *p, char *why,
           size_t whylen)
{
	size_t added = 0;

	if (p->status != DANE_REQUIRED || p->n == 0) {
		set_why(why, whylen, "DANE: no usable TLSA record");
		return -1;
	}
	ERR_clear_error();
	/* The TLSA base domain is the reference name for DANE-TA (RFC 7672
	 * 3.2.2) and the SNI; no partial wildcards ("mx*.example"). */
	if (SSL_dane_enable(ssl, host) <= 0) {
		set_why(why, whylen, "DANE: SSL_dane_enable: %s", ssl_error());
		return -1;
	}
	SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	/* DANE-EE(3): the key is the identity; no name or expiry checks
	 * (RFC 7672 3.1.1). OpenSSL skips expiry for a matched DANE-EE
	 * leaf by itself; names only with this flag. */
	SSL_dane_set_flags(ssl, DANE_FLAG_NO_DANE_EE_NAMECHECKS);
	for (size_t i = 0; i < p->n && i < DANE_TLSA_MAX; i++) {
		const struct dane_tlsa *t = &p->rec[i];
		int rc = SSL_dane_tlsa_add(ssl, t->usage, t->selector, t->mtype,
		                           t->data, t->len);

		if (rc < 0) {
			set_why(why, whylen, "DANE: SSL_dane_tlsa_add: %s",
			        ssl_error());
			return -1;
		}
		if (rc > 0)
			added++;
	}
	if (added == 0) {
		set_why(why, whylen, "DANE: no TLSA record usable by OpenSSL");
		return -1;
	}
	SSL_set_verify(ssl, SSL_VERIFY_PEER, NULL);
	return 0;
}

int
dane_verified(SSL *ssl, char *matched, size_t matchedlen)
{
	long v = SSL_get_verify_result(ssl);
	uint8_t usage, selector, mtype;
	const unsigned char *data;
	size_t dlen;
	X509 *peer;
	int depth;

	peer = SSL_get0_peer_certificate(ssl);
	if (peer == NULL) {
		set_why(matched, matchedlen, "no peer certificate");
		return -1;
	}
	if (v != X509_V_OK) {
		set_why(matched, matchedlen, "%s",
		        X509_verify_cert_error_string(v));
		return -1;
	}
	depth =
	    SSL_get0_dane_tlsa(ssl, &usage, &selector, &mtype, &data, &dlen);
	if (depth < 0) {
		set_why(matched, matchedlen, "no TLSA record matched");
		return -1;
	}
	set_why(matched, matchedlen, "%s(%u) %s(%u) %s(%u) depth %d",
	        usage_name(usage), (unsigned)usage, selector_name(selector),
	        (unsigned)selector, mtype_name(mtype), (unsigned)mtype, depth);
	return 0;
}
