/* DNS: asynchronous lookups through libunbound on the libevent loop, with
 * the DNSSEC validation status of every answer.
 * SECURITY: answers are untrusted input; rdata is handed out raw with its
 * length, and the helpers that decode it check every length. */
#ifndef TERN_CORE_DNS_H
#define TERN_CORE_DNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct dns_resolver;
struct dns_query;

enum dns_security {
	DNS_INSECURE, /* no DNSSEC, or validation off */
	DNS_SECURE,   /* validated */
	DNS_BOGUS,    /* validation failed: treat as a temporary error */
};

struct dns_result {
	int rcode;	/* DNS RCODE: 0 NOERROR, 3 NXDOMAIN, 2 SERVFAIL… */
	bool nxdomain;
	bool havedata;
	enum dns_security security;
	const char *why_bogus; /* when BOGUS, else NULL */
	uint32_t ttl;
	int qtype;
	size_t count;
	const uint8_t *const *rdata; /* count entries, raw wire rdata */
	const size_t *rdata_len;
};

/* status 0: an answer arrived (which may be NXDOMAIN or empty); -1: the
 * lookup failed (timeout, network; result NULL). The result is valid during
 * the callback only. */
typedef void dns_done_fn(void *arg, int status, const struct dns_result *res);

/* server: "ADDR" or "ADDR:PORT" ("[::1]:53" for IPv6) to send every query
 * to, or NULL/"" for the system resolver (/etc/resolv.conf).
 * trust_anchor_file: a root key file (e.g. /usr/share/dns/root.key) to
 * validate DNSSEC, or NULL/"" for none. */
struct dns_resolver *dns_resolver_new(struct event_base *base,
				      const char *server,
				      const char *trust_anchor_file,
				      char **error_r);
/* Add a trust anchor in presentation format ("zone. DS …" or DNSKEY), for
 * test zones. */
int dns_resolver_add_trust_anchor(struct dns_resolver *r, const char *ta,
				  char **error_r);
void dns_resolver_free(struct dns_resolver **r);

/* Start a lookup (rrtype: 1 A, 28 AAAA, 15 MX, 16 TXT, 52 TLSA…). The
 * callback always runs later from the loop, never inside this call. The
 * returned handle is valid until the callback runs or dns_cancel(). */
struct dns_query *dns_lookup(struct dns_resolver *r, const char *name,
			     int rrtype, dns_done_fn *done, void *arg);
void dns_cancel(struct dns_query **q);
/* The same lookup, blocking: done runs inside this call. For worker
 * threads only (never the loop); libunbound allows several threads at
 * once on one resolver. Returns the status given to done. */
int dns_resolve_sync(struct dns_resolver *r, const char *name, int rrtype,
                     dns_done_fn *done, void *arg);

/* Decoders for one rdata; each 0 or -1 when malformed. */
int dns_rdata_a(const uint8_t *rd, size_t len, char *out, size_t outlen);
int dns_rdata_aaaa(const uint8_t *rd, size_t len, char *out, size_t outlen);
/* TXT: the character-strings joined without separator (malloc'd). */
int dns_rdata_txt(const uint8_t *rd, size_t len, char **out_r);
/* MX: preference and exchange name (uncompressed in libunbound results). */
int dns_rdata_mx(const uint8_t *rd, size_t len, uint16_t *pref_r,
		 char *host, size_t hostlen);
/* PTR (and any rdata that is one uncompressed name). */
int dns_rdata_ptr(const uint8_t *rd, size_t len, char *host, size_t hostlen);

#endif
