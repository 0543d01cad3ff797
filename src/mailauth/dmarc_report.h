/* DMARC aggregate reports that others send us (RFC 7489 §7.2, appendix C):
 * the report attachments of a message (XML, gzip or zip, told by their
 * first bytes), bounded decompression, and a small XML reader for the
 * <feedback> schema (the five predefined entities and character
 * references, CDATA, comments, PIs, namespace prefixes; no DTD).
 * SECURITY: reports come from anyone who can send us mail. Decompression
 * stops at DMARC_REPORT_XML_MAX bytes and at a ratio of
 * DMARC_REPORT_RATIO_MAX:1 past the first DMARC_REPORT_RATIO_FREE bytes,
 * so a bomb is refused after a few MiB of work; zip archives are read from
 * their central directory with every offset checked, stored and deflate
 * members only, CRC and sizes verified. The XML reader bounds the depth,
 * the element count, each text node and each value, and expands no entity
 * it does not know (no DTD, no billion laughs). No recursion. */
#ifndef TERN_MAILAUTH_DMARC_REPORT_H
#define TERN_MAILAUTH_DMARC_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

/* Decompression. */
#define DMARC_REPORT_XML_MAX (20u * 1024 * 1024)   /* bytes out, all members */
#define DMARC_REPORT_RATIO_FREE (1u * 1024 * 1024) /* before the ratio cap */
#define DMARC_REPORT_RATIO_MAX 100                 /* bytes out per byte in */
#define DMARC_REPORT_MEMBERS_MAX 4      /* XML documents read from one zip */
#define DMARC_REPORT_ZIP_ENTRIES_MAX 64 /* central directory entries */
/* Report attachments read from one message. */
#define DMARC_REPORT_PARTS_MAX 8

/* The XML reader. */
#define DMARC_REPORT_DEPTH_MAX 32          /* nested elements */
#define DMARC_REPORT_ELEMENTS_MAX 4000000  /* elements in a document */
#define DMARC_REPORT_NAME_MAX 256          /* bytes of an element name */
#define DMARC_REPORT_TEXT_MAX (64u * 1024) /* character data of one element */
#define DMARC_REPORT_VALUE_MAX 1024        /* a value the schema reads */
#define DMARC_REPORT_RECORDS_MAX 100000    /* <record>s in a report */
#define DMARC_REPORT_AUTH_MAX 16 /* DKIM and SPF results kept per record */

/* A result as the report states it: policy_evaluated dkim/spf (pass or
 * fail: the aligned outcome DMARC used) or an auth_results result (the
 * raw outcome). Values compare without case; "hardfail" is fail. */
enum dmarc_report_result {
	DMARC_REPORT_R_MISSING, /* no such element */
	DMARC_REPORT_R_NONE,
	DMARC_REPORT_R_PASS,
	DMARC_REPORT_R_FAIL,
	DMARC_REPORT_R_SOFTFAIL,
	DMARC_REPORT_R_NEUTRAL,
	DMARC_REPORT_R_POLICY,
	DMARC_REPORT_R_TEMPERROR,
	DMARC_REPORT_R_PERMERROR,
	DMARC_REPORT_R_OTHER, /* a value RFC 7489 does not define */
};

/* p=, sp= and the disposition applied. */
enum dmarc_report_policy {
	DMARC_REPORT_P_MISSING,
	DMARC_REPORT_P_NONE,
	DMARC_REPORT_P_QUARANTINE,
	DMARC_REPORT_P_REJECT,
	DMARC_REPORT_P_OTHER,
};

enum dmarc_report_align {
	DMARC_REPORT_A_MISSING,
	DMARC_REPORT_A_RELAXED,
	DMARC_REPORT_A_STRICT,
};

/* policy_evaluated/reason/type, a bit each. */
enum {
	DMARC_REPORT_REASON_FORWARDED = 1 << 0,
	DMARC_REPORT_REASON_SAMPLED_OUT = 1 << 1,
	DMARC_REPORT_REASON_TRUSTED_FORWARDER = 1 << 2,
	DMARC_REPORT_REASON_MAILING_LIST = 1 << 3,
	DMARC_REPORT_REASON_LOCAL_POLICY = 1 << 4,
	DMARC_REPORT_REASON_OTHER = 1 << 5,
};

/* Strings are NUL-terminated, trimmed of XML white space, at most
 * DMARC_REPORT_VALUE_MAX bytes, as the reporter wrote them (not checked
 * for UTF-8: sanitize before showing) except where noted; NULL when the
 * element is absent. */
struct dmarc_feedback_dkim {
	const char *domain; /* lower case (ASCII), no final dot */
	const char *selector;
	enum dmarc_report_result result;
};

struct dmarc_feedback_spf {
	const char *domain; /* lower case (ASCII), no final dot */
	const char *scope;  /* "mfrom", "helo" */
	enum dmarc_report_result result;
};

struct dmarc_feedback_record {
	const char *source_ip; /* required; inet_ntop() form */
	uint64_t count;        /* required */
	/* policy_evaluated */
	enum dmarc_report_policy disposition;
	enum dmarc_report_result dkim, spf; /* aligned: pass, fail */
	unsigned int reasons;               /* DMARC_REPORT_REASON_* */
	/* identifiers: domains, lower case (ASCII), no final dot */
	const char *header_from, *envelope_from, *envelope_to;
	/* auth_results, at most DMARC_REPORT_AUTH_MAX of each */
	const struct dmarc_feedback_dkim *dkim_results;
	size_t ndkim;
	const struct dmarc_feedback_spf *spf_results;
	size_t nspf;
};

struct dmarc_feedback_private;

struct dmarc_feedback {
	/* report_metadata: report_id and date_range are required */
	const char *org_name, *email, *extra_contact_info, *report_id;
	int64_t begin, end; /* seconds since the epoch, UTC */
	size_t nerrors;     /* <error> elements */
	/* policy_published: domain is required (lower case, no final dot) */
	const char *domain;
	enum dmarc_report_align adkim, aspf;
	enum dmarc_report_policy p, sp;
	int pct; /* 0..100, -1 when absent or invalid */
	const char *fo;
	/* the records, in document order */
	const struct dmarc_feedback_record *records;
	size_t nrecords;
	uint64_t messages; /* the sum of the counts (saturating) */
	struct dmarc_feedback_private *priv;
};

/* Parse one XML document into a feedback. 0, or -1 with *error_r
 * (malloc'd: "line 12: </row> closes <count>"). */
int dmarc_report_parse(const void *xml, size_t len,
                       struct dmarc_feedback **feedback_r, char **error_r);
void dmarc_report_free(struct dmarc_feedback **feedback);

const char *dmarc_report_result_name(enum dmarc_report_result r);
const char *dmarc_report_policy_name(enum dmarc_report_policy p);

/* ---- containers ---- */

enum dmarc_report_format {
	DMARC_REPORT_FMT_UNKNOWN,
	DMARC_REPORT_FMT_XML,  /* '<' after an optional BOM and white space */
	DMARC_REPORT_FMT_GZIP, /* 1f 8b */
	DMARC_REPORT_FMT_ZIP,  /* "PK\3\4", or "PK\5\6" (empty) */
};

enum dmarc_report_format dmarc_report_sniff(const void *data, size_t len);

/* The XML documents of one attachment: one for XML and gzip, up to
 * DMARC_REPORT_MEMBERS_MAX for zip (the members named *.xml, or every
 * file when none is), DMARC_REPORT_XML_MAX bytes in all. */
struct dmarc_report_docs {
	size_t n;
	struct buf xml[DMARC_REPORT_MEMBERS_MAX];
	char *name[DMARC_REPORT_MEMBERS_MAX]; /* zip member names, else NULL */
};

void dmarc_report_docs_clear(struct dmarc_report_docs *docs);
/* The documents of data, by its format (docs starts empty). 0, or -1 with
 * *error_r (malloc'd); docs is then empty. */
int dmarc_report_unpack(const void *data, size_t len,
                        struct dmarc_report_docs *docs, char **error_r);
/* The two containers alone (the same bounds). gunzip reads concatenated
 * members; bytes after the last are ignored. */
int dmarc_report_gunzip(const void *data, size_t len, struct buf *out,
                        char **error_r);
int dmarc_report_unzip(const void *data, size_t len,
                       struct dmarc_report_docs *docs, char **error_r);

/* ---- messages ---- */

/* One report document of a message, or one attachment that failed. */
struct dmarc_report_item {
	char *filename; /* the attachment's name as UTF-8, a zip member's
	                   after "/"; "" when unnamed */
	struct dmarc_feedback *feedback; /* NULL when error is set */
	char *error;
};

/* Every report attachment of a message (leaf parts typed
 * application/gzip, application/zip, text/xml and their aliases, or named
 * *.xml, *.gz, *.zip; at most DMARC_REPORT_PARTS_MAX), unpacked and
 * parsed: one item per document, or per attachment that failed. Returns
 * the number of items; 0 means the message holds no report. */
size_t dmarc_report_from_message(const char *msg, size_t len,
                                 struct dmarc_report_item **items_r);
void dmarc_report_items_free(struct dmarc_report_item **items, size_t n);

#endif
