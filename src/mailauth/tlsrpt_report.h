/* SMTP TLS Reporting (RFC 8460): the policy record a recipient domain
 * publishes at _smtp._tls.DOMAIN (§3), and the daily aggregate report we
 * send its rua addresses: the JSON (§4), and the mail that carries it
 * gzipped (§5.3). Pure: rows in, bytes out; queue_tlsrpt.c reads the rows
 * from tlsrpt.db and sends.
 * SECURITY: TXT records come from DNS (untrusted): bounded (at most
 * TLSRPT_RUA_MAX URIs of TLSRPT_URI_MAX bytes), strictly parsed. Every
 * string put into the JSON is escaped; header values must be printable
 * ASCII or the message is refused. */
#ifndef TERN_MAILAUTH_TLSRPT_REPORT_H
#define TERN_MAILAUTH_TLSRPT_REPORT_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "core/buf.h"

#define TLSRPT_RUA_MAX 8
#define TLSRPT_URI_MAX 512
#define TLSRPT_ADDRESS_MAX 256

struct tlsrpt_policy_record {
	size_t nrua;
	char rua[TLSRPT_RUA_MAX][TLSRPT_URI_MAX + 1];
};

/* The TXT records at _smtp._tls.DOMAIN (each the concatenation of its
 * strings): 0 when exactly one starts with "v=TLSRPTv1" and has a rua=
 * with at least one URI (more than TLSRPT_RUA_MAX: the first ones); -1
 * when there is none, several, or the one is malformed. */
int tlsrpt_policy_parse(const char *const *txt, size_t n,
                        struct tlsrpt_policy_record *rec);

/* "mailto:addr" (RFC 6068: %XX decoded, no "?" headers taken) → addr in
 * out (TLSRPT_ADDRESS_MAX + 1 bytes): 0, or -1 when uri is not a mailto:
 * URI with one plain address. */
int tlsrpt_mailto(const char *uri, char out[TLSRPT_ADDRESS_MAX + 1]);

/* One row of tlsrpt.db: sessions of one day to one recipient domain. */
struct tlsrpt_row {
	const char *policy; /* "sts", "tlsa", "no-policy-found" */
	const char *mx;     /* the receiving MX host name */
	const char *result; /* "success" or an RFC 8460 §4.3 result type */
	const char *detail; /* "" or a short reason */
	uint64_t count;
};

struct tlsrpt_report_meta {
	const char *org_name;  /* our host name */
	const char *contact;   /* the address reports come from */
	const char *report_id; /* unique */
	const char *domain;    /* the policy (recipient) domain */
	int64_t begin, end;    /* the UTC day: first and last second */
	/* For "sts" rows: the policy's lines ("version: STSv1", "mode:
	 * enforce", "mx: …", "max_age: …") and its mx patterns; n 0 when
	 * not known. */
	const char *const *sts_lines;
	size_t nsts_lines;
	const char *const *sts_mx;
	size_t nsts_mx;
};

/* The report JSON (§4.4): one "policies" entry per policy type present,
 * with its summary counts and one failure-details entry per (result,
 * MX host, detail) that is not success (an empty MX host or detail left
 * out of it); rows of another policy type are left out. Appended to out
 * (bounded by the caller). 0, or -1 (out as it was) when out is full or
 * begin or end is not a date of the years 1000 to 9999. */
int tlsrpt_report_json(const struct tlsrpt_report_meta *m,
                       const struct tlsrpt_row *rows, size_t n,
                       struct buf *out);

struct tlsrpt_mail {
	const char *from;      /* the report address */
	const char *to;        /* the rua address */
	const char *submitter; /* our host name */
	const char *domain;    /* the policy domain */
	const char *report_id;
	const char *message_id; /* "<…>" */
	int64_t begin, end;
	time_t date;
};

/* "<submitter>!<domain>!<begin>!<end>!<report_id>.json.gz" (§5.1) into
 * out: 0, or -1 when it does not fit or a part is empty or holds "!",
 * "/", '"', '\\' or anything but printable ASCII without space. */
int tlsrpt_filename(const struct tlsrpt_mail *m, char *out, size_t outlen);

/* The message (§5.3): From, To, Date, Subject "Report Domain: D
 * Submitter: S Report-ID: <ID>", TLS-Report-Domain, TLS-Report-Submitter,
 * Message-ID, MIME-Version, Content-Type multipart/report;
 * report-type="tlsrpt"; a short text part; the gzip as
 * application/tlsrpt+gzip with the file name, base64; CRLF lines.
 * Appended to out (bounded by the caller). 0, or -1 (out as it was)
 * when out is full, a header value holds anything but printable ASCII,
 * tlsrpt_filename refuses, or the report id holds a space, '<' or '>'. */
int tlsrpt_report_message(const struct tlsrpt_mail *m, const void *gz,
                          size_t gzlen, struct buf *out);

#endif
