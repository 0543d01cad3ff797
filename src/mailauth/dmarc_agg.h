/* DMARC aggregate reports that we send (RFC 7489 §7.2, appendix C): what
 * one evaluation leaves for the report (a record, and its wire form from
 * front to queue), the <feedback> XML of one period's aggregated rows,
 * gzip, the rua mailto: URIs, and the report message (§7.2.1.1).
 * Pure: no I/O, no clock; rows in, bytes out.
 * SECURITY: a record's strings come from DNS answers and message headers
 * (untrusted) through front (which may be compromised): decoding checks
 * every length, enum and character (printable ASCII only), and the XML
 * and message writers escape or refuse anything else. Every output goes
 * into a bounded buffer. */
#ifndef TERN_MAILAUTH_DMARC_AGG_H
#define TERN_MAILAUTH_DMARC_AGG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "core/buf.h"
#include "mailauth/dkim.h"
#include "mailauth/dmarc.h"
#include "mailauth/spf.h"

#define DMARC_AGG_DKIM_MAX 8                  /* auth_results/dkim per record */
#define DMARC_AGG_RUA_MAX DMARC_URIS_MAX      /* rua URIs kept (4) */
#define DMARC_AGG_RECORD_WIRE_MAX 16384       /* bytes of an encoded record */
#define DMARC_AGG_ADDRESS_MAX 254             /* a decoded mailto: address */
#define DMARC_AGG_REPORT_ID_MAX 64            /* bytes of a report id */
#define DMARC_AGG_XML_MAX (24u * 1024 * 1024) /* one report's XML */
/* policy_evaluated/reason/type: the DMARC_REPORT_REASON_* bits of
 * dmarc_report.h (forwarded, sampled_out, trusted_forwarder, mailing_list,
 * local_policy, other). */
#define DMARC_AGG_REASONS_ALL 0x3fu

struct dmarc_agg_dkim {
	char domain[DKIM_DOMAIN_MAX + 1];
	char selector[DKIM_DOMAIN_MAX + 1];
	enum dkim_result result;
};

/* policy_published: the record that applied, where it was found. */
struct dmarc_agg_policy {
	char domain[DMARC_DOMAIN_MAX + 1];
	enum dmarc_policy p, sp;
	enum dmarc_align adkim, aspf;
	unsigned int pct;
};

/* One <record>: count messages alike in everything else. */
struct dmarc_agg_row {
	char source_ip[SPF_IP_TEXT_MAX];
	char header_from[DMARC_DOMAIN_MAX + 1];
	char envelope_from[DMARC_DOMAIN_MAX + 1]; /* SPF's domain, or "" */
	/* policy_evaluated */
	enum dmarc_policy disposition; /* what was applied */
	bool dkim_aligned, spf_aligned;
	unsigned int reasons; /* DMARC_REPORT_REASON_* */
	/* auth_results */
	size_t ndkim;
	struct dmarc_agg_dkim dkim[DMARC_AGG_DKIM_MAX];
	bool spf_checked; /* scope mfrom; else no SPF result */
	enum spf_result spf_result;
	uint64_t count;
};

/* What front hands queue for one message and one From domain whose DMARC
 * record asks for aggregate reports. */
struct dmarc_agg_record {
	struct dmarc_agg_policy policy;
	enum dmarc_result result;
	struct dmarc_agg_row row; /* count 1 */
	size_t nrua;
	struct dmarc_uri rua[DMARC_AGG_RUA_MAX]; /* mailto: only */
};

/* The record of one evaluated From domain, with the disposition the
 * receiver applied and why it differs from the policy (reasons). false
 * when the domain has no DMARC record or no mailto: rua (no report). */
bool dmarc_agg_record_from(const struct dmarc_domain_result *d,
                           enum dmarc_policy applied, unsigned int reasons,
                           struct dmarc_agg_record *rec_r);

/* Strings printable ASCII without space, the source an IPv4 or IPv6
 * address, enums in range, counts within the bounds, every rua a mailto:
 * URI, the policy domain and header From set. 0, or -1 with a static
 * reason. */
int dmarc_agg_record_check(const struct dmarc_agg_record *rec,
                           const char **error_r);
/* The wire form (IPC_MSG_DMARC_RECORD, core/ipc.h encoding): str
 * header_from, str policy domain, str source ip, str envelope_from, u32
 * spf result (0xffffffff: not checked), u32 ndkim, ndkim × (str domain,
 * str selector, u32 result), u32 dmarc result, u32 disposition applied,
 * u32 flags (1 dkim aligned, 2 spf aligned), u32 reasons, u32 p, u32 sp,
 * u32 pct, u32 adkim, u32 aspf, u32 nrua, nrua × (str uri, u64 size).
 * put: -1 when the record does not pass dmarc_agg_record_check. get: 0,
 * or -1 with a static reason (short, trailing bytes, or check failed). */
int dmarc_agg_record_put(struct buf *b, const struct dmarc_agg_record *rec);
int dmarc_agg_record_get(const void *data, size_t len,
                         struct dmarc_agg_record *rec_r, const char **error_r);

/* The address of a mailto: URI (RFC 6068: "?" headers dropped, %XX
 * decoded) into addr_r (DMARC_AGG_ADDRESS_MAX + 1 bytes): one '@', a
 * non-empty local part of printable ASCII without space, '<', '>', '"',
 * ',', '\\', and a domain that normalizes (lower case, into domain_r,
 * DMARC_DOMAIN_MAX + 1 bytes). 0, or -1. */
int dmarc_agg_mailto(const char *uri, char *addr_r, char *domain_r);

/* External destination verification (§7.1): the name to look up,
 * "<policy domain>._report._dmarc.<rua domain>", into out (at least 254
 * bytes). 0, or -1 when too long. */
int dmarc_agg_auth_name(const char *policy_domain, const char *rua_domain,
                        char *out, size_t outlen);
/* Does one of these TXT records (n of them) authorize the reports: its
 * first tag is v=DMARC1? */
bool dmarc_agg_auth_ok(char *const *txt, size_t n);

/* report_metadata. */
struct dmarc_agg_meta {
	const char *org_name;  /* our host name */
	const char *email;     /* the report address */
	const char *report_id; /* unique: a token, DMARC_AGG_REPORT_ID_MAX */
	int64_t begin, end;    /* seconds since the epoch, end inclusive */
};

/* The <feedback> document for rows (n of them) under policy, appended to
 * out (bounded by the caller, at most DMARC_AGG_XML_MAX makes sense).
 * Every string is escaped; bytes outside printable ASCII become '?'.
 * 0, or -1 when out is full (its contents are then incomplete). */
int dmarc_agg_xml(const struct dmarc_agg_meta *meta,
                  const struct dmarc_agg_policy *policy,
                  const struct dmarc_agg_row *rows, size_t n, struct buf *out);

/* gzip (RFC 1952) of data into out (bounded by the caller). 0, or -1 when
 * out is full or zlib failed. */
int dmarc_agg_gzip(const void *data, size_t len, struct buf *out);

/* The report message (RFC 7489 §7.2.1.1). */
struct dmarc_agg_mail {
	const char *from;       /* the report address */
	const char *to;         /* the rua address */
	const char *hostname;   /* Submitter, the file name's receiver */
	const char *domain;     /* the policy domain */
	const char *report_id;  /* as in the XML */
	const char *message_id; /* "<...>" */
	int64_t begin, end;     /* as in the XML */
	time_t date;
};

/* "<receiver>!<policy domain>!<begin>!<end>.xml.gz" into out. 0, or -1
 * when it does not fit. */
int dmarc_agg_filename(const struct dmarc_agg_mail *m, char *out,
                       size_t outlen);
/* The whole message: header (From, To, Date, Subject "Report Domain: D
 * Submitter: H Report-ID: <ID>", Message-ID, MIME), a short text part
 * and the gzip as an application/gzip attachment, base64, CRLF lines.
 * Appended to out (bounded by the caller). 0, or -1 when out is full or
 * a header value holds anything but printable ASCII. */
int dmarc_agg_message(const struct dmarc_agg_mail *m, const void *gz,
                      size_t gzlen, struct buf *out);

/* ------------------------------------------------------ report mail */

/* The mail that carries a gzipped report, shared by the DMARC aggregate
 * reports (dmarc_agg_message) and the SMTP TLS reports
 * (tlsrpt_report_message): one place checks the header values and folds
 * the base64. */
struct report_mail_header {
	const char *name;  /* a field name: printable ASCII, no ':' */
	const char *value; /* printable ASCII */
};

struct report_mail_spec {
	const char *from;       /* the report address */
	const char *to;         /* the rua address */
	const char *message_id; /* "<...>" */
	time_t date;
	/* Subject "Report Domain: D Submitter: S Report-ID: <ID>"; the id
	 * without space, '<' or '>'. */
	const char *domain, *submitter, *report_id;
	/* The boundary "=_tern_<tag>_<id>": both letters, digits, '.',
	 * '-', '_'; the id at most boundary_id_max of them. */
	const char *boundary_tag, *boundary_id;
	size_t boundary_id_max;
	const struct report_mail_header *headers; /* after Subject */
	size_t nheaders;
	/* The top-level type with its parameters but the boundary, e.g.
	 * "multipart/mixed". */
	const char *content_type;
	const char *preamble;        /* one line before the first part */
	const char *text;            /* the text/plain part: CRLF lines */
	const char *attachment_type; /* e.g. "application/gzip" */
	const char *filename;        /* no '"', '\\' or space */
};

/* From, To, Date, Subject, the extra headers, Message-ID,
 * Auto-Submitted, MIME; the text part, and the gzip as a base64
 * attachment (76-character lines). Appended to out (bounded by the
 * caller). 0, or -1 with out as it was when out is full, a header value
 * is missing, empty or holds anything but printable ASCII, the boundary
 * does not fit, or a line would be over RFC 5322's 998 characters. */
int report_mail_build(const struct report_mail_spec *s, const void *gz,
                      size_t gzlen, struct buf *out);

#endif
