/* DMARC (RFC 7489) policy evaluation: the record parser, policy discovery
 * through the mailauth DNS interface, the RFC5322.From domain, identifier
 * alignment against the SPF and DKIM outcomes, the disposition (pct sampled
 * with a value the caller draws) and the Authentication-Results resinfo;
 * each evaluation leaves a dmarc_report_row for the aggregate reports.
 * SECURITY: the header and every DNS answer are untrusted. Header fields,
 * From addresses, From domains, URIs and all copied strings are bounded;
 * at most two TXT queries per From domain and DMARC_FROM_DOMAINS_MAX
 * domains per message. Several From domains cannot dilute a policy: each
 * is evaluated and the strictest failing policy applies (RFC 7489 §6.6.1). */
#ifndef TERN_MAILAUTH_DMARC_H
#define TERN_MAILAUTH_DMARC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "mailauth/dkim.h"
#include "mailauth/dnsif.h"
#include "mailauth/psl.h"
#include "mailauth/spf.h"

#define DMARC_DOMAIN_MAX 253         /* a domain name, no final dot */
#define DMARC_URIS_MAX 4             /* rua= / ruf= URIs kept (§6.2: >= 2) */
#define DMARC_URI_MAX 256            /* bytes of one kept URI */
#define DMARC_FROM_DOMAINS_MAX 4     /* distinct From domains evaluated */
#define DMARC_FROM_ADDRESSES_MAX 32  /* addresses read from one From field */
#define DMARC_HEADER_FIELDS_MAX 1024 /* header fields looked at */
#define DMARC_PROBLEM_MAX 160        /* problem text, bytes with the NUL */
#define DMARC_RI_DEFAULT 86400

/* RFC 8601 §2.7.1 results. */
enum dmarc_result {
	DMARC_NONE,      /* no policy: no record, several, or no usable name */
	DMARC_PASS,      /* an aligned identifier passed */
	DMARC_FAIL,      /* a policy exists, nothing aligned passed */
	DMARC_TEMPERROR, /* DNS failed while looking for the policy */
	DMARC_PERMERROR, /* the From domain or the record is unusable */
};

/* Ordered: a stricter policy compares greater. */
enum dmarc_policy {
	DMARC_POLICY_NONE,
	DMARC_POLICY_QUARANTINE,
	DMARC_POLICY_REJECT,
};

enum dmarc_align {
	DMARC_ALIGN_RELAXED,
	DMARC_ALIGN_STRICT,
};

/* fo= options (§6.3). */
enum {
	DMARC_FO_0 = 1 << 0,
	DMARC_FO_1 = 1 << 1,
	DMARC_FO_D = 1 << 2,
	DMARC_FO_S = 1 << 3,
};

/* rf= formats; afrf is the only one defined. */
enum {
	DMARC_RF_AFRF = 1 << 0,
};

struct dmarc_uri {
	char uri[DMARC_URI_MAX + 1]; /* as written, "mailto:d@example.com" */
	uint64_t size_max;           /* "!10m" in bytes; 0: no limit given */
};

/* A parsed record with the defaults of §6.3 filled in. */
struct dmarc_record {
	enum dmarc_policy p;
	enum dmarc_policy sp; /* p when sp= is absent */
	bool sp_given;        /* a valid sp= was present */
	/* §6.6.3: no valid p= (or an invalid sp=) but a valid rua=: the
	 * record counts as "v=DMARC1; p=none" (p, sp none, rua kept). */
	bool p_fallback;
	enum dmarc_align adkim, aspf; /* relaxed by default */
	unsigned int pct;             /* 0..100, 100 by default */
	unsigned int fo;              /* DMARC_FO_*, DMARC_FO_0 by default */
	unsigned int rf;              /* DMARC_RF_*, afrf by default */
	uint32_t ri;                  /* seconds, DMARC_RI_DEFAULT */
	size_t nrua, nruf;
	struct dmarc_uri rua[DMARC_URIS_MAX], ruf[DMARC_URIS_MAX];
	/* Unknown tags, repeated tags, invalid values (their defaults apply)
	 * and URIs dropped (invalid, too long, past DMARC_URIS_MAX): counted
	 * for logs. */
	unsigned int ignored;
};

/* Whether a TXT record is a DMARC record at all: its first tag is
 * v=DMARC1 (§6.6.3 discards the others before counting). */
bool dmarc_record_is_dmarc(const char *txt, size_t len);
/* Parse a TXT record (strings joined). 0 with *rec_r filled (§6.3: unknown
 * tags and bad values of optional tags are ignored, defaults apply), or -1
 * with a static reason: not v=DMARC1 first, or no usable p= and no valid
 * rua= to fall back on (§6.6.3: no DMARC processing). */
int dmarc_record_parse(const char *txt, size_t len, struct dmarc_record *rec_r,
                       const char **error_r);

/* What an aggregate report (RFC 7489 appendix C) needs of one message and
 * one From domain: a plain struct, copyable, nothing to free. */
struct dmarc_report_row {
	char source_ip[SPF_IP_TEXT_MAX];          /* "" when not known */
	char header_from[DMARC_DOMAIN_MAX + 1];   /* A-label, lower case */
	char envelope_from[DMARC_DOMAIN_MAX + 1]; /* SPF's domain, or "" */
	/* policy_evaluated */
	enum dmarc_policy disposition;
	bool dkim_aligned; /* dkim=pass: an aligned signature passed */
	bool spf_aligned;  /* spf=pass: SPF passed for an aligned domain */
	bool sampled_out;  /* reason type sampled_out: pct stepped it down */
	/* auth_results */
	size_t ndkim;
	struct {
		char domain[DKIM_DOMAIN_MAX + 1];
		char selector[DKIM_DOMAIN_MAX + 1];
		enum dkim_result result;
	} dkim[DKIM_VERIFY_MAX];
	bool spf_checked; /* scope mfrom */
	char spf_domain[DMARC_DOMAIN_MAX + 1];
	enum spf_result spf_result;
	/* policy_published: where the record was found, "" with none */
	char policy_domain[DMARC_DOMAIN_MAX + 1];
	bool record_found;
	struct dmarc_record record;
};

/* One From domain. */
struct dmarc_domain_result {
	enum dmarc_result result;
	char org_domain[DMARC_DOMAIN_MAX + 1]; /* header_from's (§3.2) */
	/* What the owner asks for failing mail: p=, or sp= when the record
	 * came from the organizational domain's _dmarc; none without one. */
	enum dmarc_policy policy;
	bool subdomain_policy;           /* policy is sp= */
	char problem[DMARC_PROBLEM_MAX]; /* none/temperror/permerror: why */
	struct dmarc_report_row report;
};

struct dmarc_request {
	const char *msg; /* the message, or its header alone */
	size_t len;
	/* check_host() for the MAIL FROM identity (spf.h; for a null
	 * reverse-path that is postmaster@HELO, RFC 7208 §2.4); NULL when
	 * SPF was not checked. A HELO-identity outcome is not used. */
	const struct spf_outcome *spf;
	const struct dkim_verify_result *dkim; /* NULL: not verified */
	const struct psl *psl;                 /* required */
	const char *client_ip; /* for the report; NULL: the SPF outcome's */
	/* A random number per message, uniform over 0..99 (taken modulo
	 * 100): a failing message is subject to its policy when it is below
	 * pct=, else the policy one step lower applies (§6.6.4). Tests pass
	 * fixed values. */
	unsigned int pct_sample;
};

struct dmarc_outcome {
	enum dmarc_result result;      /* the decisive domain's */
	enum dmarc_policy disposition; /* what to do with the message */
	/* Not RFC 5322 (§3.6: exactly one From field): no From field, more
	 * than one, none of its addresses usable, or more than
	 * DMARC_FROM_DOMAINS_MAX domains. Such mail "is typically rejected"
	 * (§6.6.1) and callers should do so; DMARC itself gives permerror
	 * (disposition none) when no domain could be evaluated. */
	bool from_invalid;
	char problem[DMARC_PROBLEM_MAX]; /* why from_invalid, or "" */
	/* Each distinct From domain (ndomains 0: none usable). The decisive
	 * one has the worst result (fail, temperror, permerror, none, pass)
	 * and among those the strictest disposition. */
	size_t ndomains, decisive;
	struct dmarc_domain_result domains[DMARC_FROM_DOMAINS_MAX];
};

/* Evaluate req against the policies found through dns. Never NULL;
 * synchronous (at most 2 * DMARC_FROM_DOMAINS_MAX lookups). */
struct dmarc_outcome *dmarc_evaluate(const struct ma_dns *dns,
                                     const struct dmarc_request *req);
void dmarc_outcome_free(struct dmarc_outcome **outcome);

/* The RFC5322.From domains of a header block (or a whole message): each
 * distinct usable domain, normalized, into domains_r (up to
 * DMARC_FROM_DOMAINS_MAX). Returns how many; *invalid_r and *problem_r (a
 * static string, NULL when valid) say whether the From field breaks RFC
 * 5322 as described at dmarc_outcome.from_invalid. */
size_t dmarc_from_domains(const char *msg, size_t len,
                          char domains_r[][DMARC_DOMAIN_MAX + 1],
                          bool *invalid_r, const char **problem_r);

/* Identifier alignment (§3.1): a and b are the same domain (strict), or
 * have the same organizational domain (relaxed). Names that do not
 * normalize never align. */
bool dmarc_aligned(const struct psl *psl, const char *a, const char *b,
                   enum dmarc_align mode);

/* "none", "pass", "fail", "temperror", "permerror". */
const char *dmarc_result_name(enum dmarc_result result);
/* "none", "quarantine", "reject". */
const char *dmarc_policy_name(enum dmarc_policy policy);

/* Append the decisive domain's resinfo without the leading "; ":
 * "dmarc=fail (p=reject dis=reject) header.from=example.com" (sp= in the
 * comment when the record has one; no comment without a record;
 * "dmarc=permerror" alone when no From domain was usable). 0, or -1 when
 * out is full (its contents are then incomplete). */
int dmarc_auth_results(const struct dmarc_outcome *outcome, struct buf *out);

#endif
