/* The DNS interface of src/mailauth (dnsif.h) backed by core/dns: blocking
 * lookups for worker threads, answers turned into presentation form and
 * bounded (MA_DNS_RR_MAX records, MA_DNS_TXT_MAX bytes of TXT).
 * SECURITY: answers are untrusted; every record goes through the checked
 * core/dns decoders, and one that does not decode is dropped. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/dns.h"
#include "core/xmalloc.h"
#include "mailauth/dnsif.h"
#include "roles/mailauth_dns.h"

struct answer_fill {
	enum ma_dns_type type;
	struct ma_dns_answer *ans;
};

/* TLSA (RFC 6698 2.1): usage, selector, matching type, then the
 * association data, shown as in RFC 6698 2.2. The rdata length is bounded
 * by the DNS (65535), so the text is too. */
static char *
tlsa_text(const uint8_t *rd, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	char *out, *p;
	size_t cap;

	if (len < 3)
		return NULL;
	cap = 3 * 4 + 2 * (len - 3) + 1;
	out = xmalloc(cap);
	p = out + snprintf(out, cap, "%u %u %u ", (unsigned)rd[0],
	                   (unsigned)rd[1], (unsigned)rd[2]);
	for (size_t i = 3; i < len; i++) {
		*p++ = hex[rd[i] >> 4];
		*p++ = hex[rd[i] & 0xf];
	}
	*p = '\0';
	return out;
}

static char *
record_text(enum ma_dns_type type, const uint8_t *rd, size_t len)
{
	char text[1100], *txt;
	uint16_t pref;

	switch (type) {
	case MA_DNS_A:
		return dns_rdata_a(rd, len, text, sizeof(text)) == 0
		           ? xstrdup(text)
		           : NULL;
	case MA_DNS_AAAA:
		return dns_rdata_aaaa(rd, len, text, sizeof(text)) == 0
		           ? xstrdup(text)
		           : NULL;
	case MA_DNS_MX: {
		char host[1030];

		if (dns_rdata_mx(rd, len, &pref, host, sizeof(host)) < 0)
			return NULL;
		return xasprintf("%u %s", (unsigned)pref, host);
	}
	case MA_DNS_PTR:
		return dns_rdata_ptr(rd, len, text, sizeof(text)) == 0
		           ? xstrdup(text)
		           : NULL;
	case MA_DNS_TLSA:
		return tlsa_text(rd, len);
	case MA_DNS_TXT:
		if (dns_rdata_txt(rd, len, &txt) < 0)
			return NULL;
		if (strlen(txt) > MA_DNS_TXT_MAX) {
			free(txt);
			return NULL;
		}
		return txt;
	}
	return NULL;
}

static void
fill_done(void *arg, int status, const struct dns_result *res)
{
	struct answer_fill *f = arg;
	struct ma_dns_answer *ans = f->ans;

	if (status < 0 || res == NULL || res->security == DNS_BOGUS ||
	    (res->rcode != 0 && res->rcode != 3)) {
		ans->status = MA_DNS_TEMPFAIL;
		return;
	}
	ans->secure = res->security == DNS_SECURE;
	if (res->nxdomain || res->rcode == 3) {
		ans->status = MA_DNS_NXDOMAIN;
		return;
	}
	if (res->count > 0)
		ans->rr = xcalloc(res->count < MA_DNS_RR_MAX ? res->count
		                                             : MA_DNS_RR_MAX,
		                  sizeof(*ans->rr));
	for (size_t i = 0; i < res->count && ans->count < MA_DNS_RR_MAX; i++) {
		char *t =
		    record_text(f->type, res->rdata[i], res->rdata_len[i]);

		if (t != NULL)
			ans->rr[ans->count++] = t;
	}
	ans->status = ans->count > 0 ? MA_DNS_OK : MA_DNS_NODATA;
}

static int
lookup(void *arg, const char *name, enum ma_dns_type type,
       struct ma_dns_answer *ans)
{
	struct answer_fill f = {type, ans};

	memset(ans, 0, sizeof(*ans));
	if (dns_resolve_sync(arg, name, (int)type, fill_done, &f) < 0) {
		ans->status = MA_DNS_TEMPFAIL;
		return -1;
	}
	return 0;
}

void
mailauth_dns_init(struct ma_dns *dns, struct dns_resolver *r)
{
	dns->lookup = lookup;
	dns->arg = r;
}
