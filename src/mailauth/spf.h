/* SPF (RFC 7208): check_host() against the mailauth DNS interface, the
 * Received-SPF header field (§9.1) and the Authentication-Results fragment.
 * SECURITY: HELO and MAIL FROM come from the peer and records from any DNS
 * publisher. Work is bounded by struct spf_limits (DNS terms, void lookups,
 * MX and PTR names, total queries, nesting); elapsed time is the caller's:
 * its DNS provider answers TEMPFAIL once the check's deadline (RFC 7208
 * §4.6.4: at least 20 s) has passed, which ends the check in temperror. */
#ifndef TERN_MAILAUTH_SPF_H
#define TERN_MAILAUTH_SPF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <sys/socket.h>

#include "core/buf.h"
#include "mailauth/dnsif.h"

#define SPF_DOMAIN_MAX 253      /* a name we query (§4.3, §7.3) */
#define SPF_SENDER_MAX 1024     /* MAIL FROM longer than this: "none" */
#define SPF_EXPLANATION_MAX 512 /* expanded explanation, bytes */
#define SPF_PROBLEM_MAX 160     /* the problem text, bytes with the NUL */
#define SPF_IP_TEXT_MAX 46      /* INET6_ADDRSTRLEN */

enum spf_result {
	SPF_NONE,
	SPF_NEUTRAL,
	SPF_PASS,
	SPF_FAIL,
	SPF_SOFTFAIL,
	SPF_TEMPERROR,
	SPF_PERMERROR,
};

enum spf_identity {
	SPF_IDENTITY_MAILFROM, /* MAIL FROM, or postmaster@HELO when null */
	SPF_IDENTITY_HELO,     /* the HELO/EHLO name (§2.3) */
};

/* A client address; IPv4-mapped IPv6 is stored as IPv4 (§5). */
struct spf_ip {
	int family;       /* AF_INET or AF_INET6 */
	uint8_t addr[16]; /* 4 or 16 bytes used, network order */
};

struct spf_limits {
	unsigned int dns_terms;    /* include a mx ptr exists redirect (10) */
	unsigned int void_lookups; /* NXDOMAIN/empty answers (2) */
	unsigned int mx_names;     /* MX records per mx; more: permerror (10) */
	unsigned int ptr_names;    /* PTR names validated; rest ignored (10) */
	unsigned int queries;      /* all DNS queries of one check (128) */
};

/* RFC 7208 §4.6.4 values; under them the query cap is never reached. */
extern const struct spf_limits spf_default_limits;

struct spf_request {
	struct spf_ip ip; /* spf_ip_parse() or spf_ip_from_sockaddr() */
	enum spf_identity identity;
	const char *helo;      /* HELO/EHLO argument, NULL if none */
	const char *mail_from; /* reverse-path without <>; NULL or "": null */
	const char *receiver;  /* our host name (%{r}); NULL: "unknown" */
	/* Macro string used when a fail has no usable exp= (NULL: built in,
	 * "%{o} does not designate %{c} as permitted sender"). */
	const char *default_explanation;
	time_t now;                      /* %{t}; 0: time(NULL) */
	const struct spf_limits *limits; /* NULL: spf_default_limits */
};

struct spf_outcome {
	enum spf_result result;
	enum spf_identity identity;
	char *domain;   /* <domain> first checked (A-label); "" if malformed */
	char *sender;   /* <sender>: MAIL FROM, or postmaster@HELO */
	char *helo;     /* as given; NULL if none */
	char *receiver; /* as given; NULL if none */
	char client_ip[SPF_IP_TEXT_MAX]; /* "192.0.2.1", "2001:db8::1" */
	/* The term that decided, as written ("-all", "include:_spf.example"),
	 * "default" when none matched; NULL for none and errors. */
	char *mechanism;
	char *explanation; /* fail only: exp= text or the default; else NULL */
	char problem[SPF_PROBLEM_MAX]; /* none/temperror/permerror: why */
	unsigned int dns_terms, void_lookups, queries; /* work done, for logs */
};

/* "192.0.2.1" or "2001:db8::1" (no brackets, no zone). 0 or -1. */
int spf_ip_parse(const char *text, struct spf_ip *ip_r);
/* AF_INET or AF_INET6 socket address (port ignored). 0 or -1. */
int spf_ip_from_sockaddr(const struct sockaddr *sa, socklen_t len,
                         struct spf_ip *ip_r);

/* check_host() for req's identity (§4). Never NULL; synchronous: every
 * lookup goes through dns, so run it where blocking is allowed. */
struct spf_outcome *spf_check_host(const struct ma_dns *dns,
                                   const struct spf_request *req);
void spf_outcome_free(struct spf_outcome **outcome);

/* "pass", "fail", … as in RFC 7208 §2.6 and RFC 8601. */
const char *spf_result_name(enum spf_result result);

/* Append the Received-SPF field value (§9.1), one line without the field
 * name or CRLF; "; " separators are the places to fold. 0, or -1 when out
 * is full (its contents are then incomplete). */
int spf_received_spf(const struct spf_outcome *outcome, struct buf *out);
/* Append the Authentication-Results resinfo "spf=pass smtp.mailfrom=a@b"
 * (or smtp.helo=NAME for the HELO identity). 0 or -1 as above. */
int spf_auth_results(const struct spf_outcome *outcome, struct buf *out);

#endif
