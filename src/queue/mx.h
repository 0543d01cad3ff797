/* Where mail for a domain goes by DNS (RFC 5321 section 5.1): its MX
 * records in preference order (equal preferences shuffled), the implicit
 * MX (the domain's own A/AAAA) when there is no MX, the null MX of RFC
 * 7505, and the addresses of each host. Pure: lookups go through the
 * mailauth DNS interface (libunbound on a worker thread in the queue, a
 * table in the tests).
 * SECURITY: answers are untrusted: hosts, addresses and the names in them
 * are bounded (MX_HOSTS_MAX, MX_ADDRS_MAX) and checked (an MX that is an
 * address, not a name, is skipped as RFC 5321 asks). */
#ifndef TERN_QUEUE_MX_H
#define TERN_QUEUE_MX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mailauth/dnsif.h"

#define MX_HOSTS_MAX 10 /* MX hosts tried for one domain */
#define MX_ADDRS_MAX 20 /* addresses tried for one domain, all hosts */

enum mx_status {
	MX_OK,       /* hosts[] has at least one address to try */
	MX_NULL,     /* null MX (RFC 7505): the domain takes no mail */
	MX_NODOMAIN, /* NXDOMAIN, or no MX and no address: permanent */
	MX_TEMPFAIL, /* DNS failed or no host resolved for now */
	MX_LOOP,     /* we are the best MX ourselves and no better one
			exists: a configuration error (permanent, 5.4.6) */
};

struct mx_addr {
	char ip[46]; /* "192.0.2.1", "2001:db8::1" */
	bool v6;
};

struct mx_host {
	char *name; /* without the final dot; for a domain literal, the IP */
	uint16_t pref;
	bool secure; /* the MX (or implicit MX) answer and this host's
			addresses validated under DNSSEC (for DANE) */
	struct mx_addr *addrs;
	size_t naddrs;
};

struct mx_list {
	enum mx_status status;
	bool implicit; /* no MX: the domain itself */
	char why[256]; /* for logs and DSNs when status != MX_OK */
	struct mx_host *hosts;
	size_t nhosts;
};

struct mx_options {
	bool ipv4, ipv6; /* address families to use (at least one) */
	/* Our own names: an MX naming one of these, and every MX of equal
	 * or worse preference, is dropped (RFC 5321 5.1). NULL-terminated,
	 * or NULL. */
	const char *const *self_names;
	/* Shuffle of equal preferences: returns a number in [0, n). NULL:
	 * random(). The tests make it fixed. */
	size_t (*pick)(void *arg, size_t n);
	void *pick_arg;
};

/* domain: an ASCII (A-label) domain, or a domain literal "[192.0.2.1]" /
 * "[IPv6:2001:db8::1]" which becomes one host with that address. Always
 * fills *list (status says how it went); free with mx_list_clear. */
void mx_resolve(const struct ma_dns *dns, const char *domain,
                const struct mx_options *opt, struct mx_list *list);
void mx_list_clear(struct mx_list *list);

#endif
