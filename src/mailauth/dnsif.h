/* The DNS interface mailauth evaluates against: synchronous lookups whose
 * answers come back in presentation form. The roles back it with libunbound
 * (run on a worker thread, never on the event loop); the tests back it with
 * a table (the RFC 7208 suite's zonedata, dkim/dmarc fixtures).
 * SECURITY: every answer is untrusted input, bounded in count and length by
 * the provider (MA_DNS_RR_MAX, MA_DNS_TXT_MAX). */
#ifndef TERN_MAILAUTH_DNSIF_H
#define TERN_MAILAUTH_DNSIF_H

#include <stdbool.h>
#include <stddef.h>

#define MA_DNS_RR_MAX 64     /* records kept from one answer */
#define MA_DNS_TXT_MAX 65535 /* bytes of one TXT record, strings joined */

enum ma_dns_type {
	MA_DNS_A = 1,
	MA_DNS_PTR = 12,
	MA_DNS_MX = 15,
	MA_DNS_TXT = 16,
	MA_DNS_AAAA = 28,
	MA_DNS_TLSA = 52,
};

enum ma_dns_status {
	MA_DNS_OK,       /* count >= 1 records */
	MA_DNS_NXDOMAIN, /* the name does not exist */
	MA_DNS_NODATA,   /* the name exists, no record of this type */
	MA_DNS_TEMPFAIL, /* timeout, SERVFAIL, DNSSEC bogus */
};

struct ma_dns_answer {
	enum ma_dns_status status;
	bool secure; /* validated by DNSSEC */
	size_t count;
	/* malloc'd strings, one per record:
	 *   A, AAAA: the address ("192.0.2.1", "2001:db8::1")
	 *   MX:      "PREF HOST" with HOST without the final dot
	 *   TXT:     the character-strings joined without separator
	 *   PTR:     the name without the final dot
	 *   TLSA:    "USAGE SELECTOR MTYPE HEXDATA" in decimal and lower-case
	 *            hex, as in RFC 6698 2.2 ("3 1 1 0123…"); data of any
	 *            length the DNS allows, checked by the consumer */
	char **rr;
};

struct ma_dns {
	/* Fill *ans (zeroed by the caller); name has no final dot. Returns
	 * 0, or -1 for a failure that is not an answer (same as TEMPFAIL). */
	int (*lookup)(void *arg, const char *name, enum ma_dns_type type,
	              struct ma_dns_answer *ans);
	void *arg;
};

/* Free the records of ans and zero it. */
void ma_dns_answer_clear(struct ma_dns_answer *ans);

#endif
