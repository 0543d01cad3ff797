/* SMTP TLS Reporting (see tlsrpt_report.h): the _smtp._tls TXT record,
 * rua mailto: URIs, the report JSON, its file name and the mail that
 * carries it (through report_mail_build, shared with the DMARC reports).
 * SECURITY: TXT records, MX host names and failure details come from DNS
 * and remote servers: records and URIs are bounded and checked byte by
 * byte, every JSON string is escaped (invalid UTF-8 replaced), every
 * header value checked, all output appended to bounded buffers. */
#include "mailauth/tlsrpt_report.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#include "core/utf8.h"
#include "core/xmalloc.h"
#include "mailauth/dmarc_agg.h"

#define TXT_MAX 4096 /* a longer TXT record is not one we read */
#define VERSION "v=TLSRPTv1"
#define VERSION_LEN (sizeof(VERSION) - 1)
#define RUA "rua="
#define RUA_LEN (sizeof(RUA) - 1)
#define MAILTO "mailto:"
#define MAILTO_LEN (sizeof(MAILTO) - 1)
#define HTTPS "https://"
#define HTTPS_LEN (sizeof(HTTPS) - 1)
#define JSON_DEPTH_MAX 8 /* the report nests 5 deep */
#define BOUNDARY_TAG "tlsrpt"
/* RFC 2046 §5.1.1: a boundary is at most 70 characters. */
#define BOUNDARY_ID_MAX (70 - (sizeof("=_tern_" BOUNDARY_TAG "_") - 1))
#define DATE_MAX sizeof("YYYY-MM-DDThh:mm:ssZ")

static const char *
str(const char *s)
{
	return s != NULL ? s : "";
}

/* --------------------------------------------------------- the record */

static bool
is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

/* The next field of [*p, end) up to c, without the WSP around it, into
 * [*b, *e); *p moves past c. */
static void
next_item(const char **p, const char *end, char c, const char **b,
          const char **e)
{
	const char *sep = memchr(*p, c, (size_t)(end - *p));

	*b = *p;
	*e = sep != NULL ? sep : end;
	*p = sep != NULL ? sep + 1 : end;
	while (*b < *e && is_wsp(**b))
		(*b)++;
	while (*e > *b && is_wsp((*e)[-1]))
		(*e)--;
}

/* Is the first field "v=TLSRPTv1" (§3: case-sensitive)? */
static bool
is_tlsrpt(const char *txt, size_t len)
{
	const char *p = txt, *b, *e;

	next_item(&p, txt + len, ';', &b, &e);
	return (size_t)(e - b) == VERSION_LEN &&
	       memcmp(b, VERSION, VERSION_LEN) == 0;
}

/* One of the rua URIs, kept when it is a mailto: or https: URI of
 * printable ASCII that fits, and not already there. */
static void
add_uri(struct tlsrpt_policy_record *rec, const char *uri, size_t len)
{
	if (len > TLSRPT_URI_MAX || rec->nrua == TLSRPT_RUA_MAX)
		return;
	for (size_t i = 0; i < len; i++)
		if (uri[i] <= 0x20 || uri[i] >= 0x7f)
			return;
	/* Something after the scheme: an address, a host. */
	if (!(len > MAILTO_LEN && strncasecmp(uri, MAILTO, MAILTO_LEN) == 0) &&
	    !(len > HTTPS_LEN && strncasecmp(uri, HTTPS, HTTPS_LEN) == 0))
		return;
	for (size_t i = 0; i < rec->nrua; i++)
		if (strlen(rec->rua[i]) == len &&
		    memcmp(rec->rua[i], uri, len) == 0)
			return;
	memcpy(rec->rua[rec->nrua], uri, len);
	rec->rua[rec->nrua][len] = '\0';
	rec->nrua++;
}

/* "rua=" and its comma-separated URIs, the tag already skipped. */
static void
parse_rua(struct tlsrpt_policy_record *rec, const char *p, const char *end)
{
	const char *b, *e;

	while (p < end) {
		next_item(&p, end, ',', &b, &e);
		if (e > b)
			add_uri(rec, b, (size_t)(e - b));
	}
}

/* The fields after the version: one rua= (a second is ambiguous: -1),
 * anything else ignored. */
static int
parse_record(const char *txt, size_t len, struct tlsrpt_policy_record *rec)
{
	const char *p = txt, *end = txt + len, *b, *e;
	bool rua = false;

	next_item(&p, end, ';', &b, &e); /* the version */
	while (p < end) {
		next_item(&p, end, ';', &b, &e);
		if ((size_t)(e - b) < RUA_LEN || memcmp(b, RUA, RUA_LEN) != 0)
			continue;
		if (rua)
			return -1;
		rua = true;
		parse_rua(rec, b + RUA_LEN, e);
	}
	return rec->nrua > 0 ? 0 : -1;
}

int
tlsrpt_policy_parse(const char *const *txt, size_t n,
                    struct tlsrpt_policy_record *rec)
{
	const char *found = NULL;
	size_t found_len = 0;

	memset(rec, 0, sizeof(*rec));
	for (size_t i = 0; i < n; i++) {
		size_t len;

		if (txt[i] == NULL)
			continue;
		len = strnlen(txt[i], TXT_MAX + 1);
		if (len > TXT_MAX || !is_tlsrpt(txt[i], len))
			continue;
		if (found != NULL)
			return -1; /* §3: not exactly one */
		found = txt[i];
		found_len = len;
	}
	if (found == NULL || parse_record(found, found_len, rec) < 0) {
		memset(rec, 0, sizeof(*rec));
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------------ mailto: */

/* Printable ASCII, and nothing that would end or quote an address. */
static bool
address_char(int c)
{
	return c > 0x20 && c < 0x7f && strchr(",<>\"\\", c) == NULL;
}

int
tlsrpt_mailto(const char *uri, char out[TLSRPT_ADDRESS_MAX + 1])
{
	size_t n = 0, ats = 0;
	const char *at;

	out[0] = '\0';
	if (uri == NULL || strncasecmp(uri, MAILTO, MAILTO_LEN) != 0)
		return -1;
	/* RFC 6068: the "?" header fields are not ours to take. */
	for (const char *p = uri + MAILTO_LEN; *p != '\0' && *p != '?'; p++) {
		int c = (unsigned char)*p;

		if (c == '%') {
			int hi = OPENSSL_hexchar2int((unsigned char)p[1]);
			int lo = hi < 0
			             ? -1
			             : OPENSSL_hexchar2int((unsigned char)p[2]);

			if (lo < 0)
				goto fail;
			c = hi << 4 | lo;
			p += 2;
		}
		if (!address_char(c) || n == TLSRPT_ADDRESS_MAX)
			goto fail;
		ats += c == '@';
		out[n++] = (char)c;
	}
	out[n] = '\0';
	at = strchr(out, '@');
	if (ats != 1 || at == out || at[1] == '\0')
		goto fail;
	return 0;
fail:
	out[0] = '\0';
	return -1;
}

/* --------------------------------------------------------------- JSON */

/* A pretty-printing writer (two spaces a level): it puts the commas and
 * the indentation, and remembers the first failure. */
struct json {
	struct buf *out;
	int depth;
	bool empty[JSON_DEPTH_MAX]; /* nothing in this level yet */
	bool failed;
};

static void
json_raw(struct json *j, const void *p, size_t len)
{
	if (!j->failed && buf_append(j->out, p, len) < 0)
		j->failed = true;
}

static void
json_put(struct json *j, const char *s)
{
	json_raw(j, s, strlen(s));
}

static void
json_indent(struct json *j)
{
	for (int i = 0; i < j->depth; i++)
		json_put(j, "  ");
}

/* A JSON string (RFC 8259 §7): '"' and '\\' escaped, control characters
 * as \u00XX, valid UTF-8 as it is, any other byte as U+FFFD. */
static void
json_string(struct json *j, const char *s)
{
	const unsigned char *p = (const unsigned char *)str(s);

	json_put(j, "\"");
	while (*p != '\0') {
		size_t n = utf8_seq_len(p, strnlen((const char *)p, 4));
		char esc[8];

		if (*p == '"' || *p == '\\') {
			esc[0] = '\\';
			esc[1] = (char)*p;
			json_raw(j, esc, 2);
		} else if (*p < 0x20 || *p == 0x7f) {
			snprintf(esc, sizeof(esc), "\\u%04x", *p);
			json_put(j, esc);
		} else if (n == 0) {
			json_put(j, "\\ufffd");
			n = 1;
		} else {
			json_raw(j, p, n);
		}
		p += n;
	}
	json_put(j, "\"");
}

/* Before a member (key) or an element (key NULL): the comma, the line,
 * the indentation. */
static void
json_next(struct json *j, const char *key)
{
	if (j->depth > 0) {
		json_put(j, j->empty[j->depth - 1] ? "\n" : ",\n");
		j->empty[j->depth - 1] = false;
	}
	json_indent(j);
	if (key != NULL) {
		json_string(j, key);
		json_put(j, ": ");
	}
}

static void
json_open(struct json *j, const char *key, const char *bracket)
{
	json_next(j, key);
	json_put(j, bracket);
	if (j->depth == JSON_DEPTH_MAX)
		abort(); /* a bug: the report has a fixed shape */
	j->empty[j->depth++] = true;
}

static void
json_close(struct json *j, const char *bracket)
{
	if (!j->empty[--j->depth]) {
		json_put(j, "\n");
		json_indent(j);
	}
	json_put(j, bracket);
}

static void
json_str(struct json *j, const char *key, const char *value)
{
	json_next(j, key);
	json_string(j, value);
}

static void
json_u64(struct json *j, const char *key, uint64_t v)
{
	char num[24];

	json_next(j, key);
	snprintf(num, sizeof(num), "%" PRIu64, v);
	json_put(j, num);
}

static void
json_strings(struct json *j, const char *key, const char *const *v, size_t n)
{
	json_open(j, key, "[");
	for (size_t i = 0; i < n; i++)
		json_str(j, NULL, v[i]);
	json_close(j, "]");
}

/* ------------------------------------------------------------- report */

static const char *const policy_types[] = {"sts", "tlsa", "no-policy-found"};

/* Rows alike in (policy, mx, result, detail) count once: the first of
 * them carries the total. */
struct row_sum {
	uint64_t total;
	bool lead;    /* the first row of its (policy, mx, result, detail) */
	bool mx_lead; /* the first row of its (policy, mx) */
};

static uint64_t
add_sat(uint64_t a, uint64_t b)
{
	return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static bool
is_success(const struct tlsrpt_row *r)
{
	return strcmp(str(r->result), "success") == 0;
}

/* The first nkeys of (policy, mx, result, detail). */
static int
row_key_cmp(const struct tlsrpt_row *a, const struct tlsrpt_row *b, int nkeys)
{
	const char *ka[] = {a->policy, a->mx, a->result, a->detail};
	const char *kb[] = {b->policy, b->mx, b->result, b->detail};

	for (int i = 0; i < nkeys; i++) {
		int c = strcmp(str(ka[i]), str(kb[i]));

		if (c != 0)
			return c;
	}
	return 0;
}

/* By key, then by place: the first of a run is the first row given. */
static int
row_ptr_cmp(const void *a, const void *b)
{
	const struct tlsrpt_row *ra = *(const struct tlsrpt_row *const *)a;
	const struct tlsrpt_row *rb = *(const struct tlsrpt_row *const *)b;
	int c = row_key_cmp(ra, rb, 4);

	if (c != 0)
		return c;
	return ra < rb ? -1 : ra > rb;
}

/* Sorted, not compared pairwise: a day's rows stay O(n log n). */
static struct row_sum *
rows_merge(const struct tlsrpt_row *rows, size_t n)
{
	const struct tlsrpt_row **ix;
	struct row_sum *sums;

	if (n == 0)
		return NULL;
	ix = xcalloc(n, sizeof(*ix));
	sums = xcalloc(n, sizeof(*sums));
	for (size_t i = 0; i < n; i++)
		ix[i] = &rows[i];
	qsort(ix, n, sizeof(*ix), row_ptr_cmp);
	for (size_t i = 0, k; i < n; i = k) {
		struct row_sum *lead = &sums[ix[i] - rows];

		lead->lead = true;
		for (k = i; k < n && row_key_cmp(ix[i], ix[k], 4) == 0; k++)
			lead->total = add_sat(lead->total, ix[k]->count);
	}
	for (size_t i = 0, k; i < n; i = k) {
		const struct tlsrpt_row *first = ix[i];

		for (k = i; k < n && row_key_cmp(ix[i], ix[k], 2) == 0; k++)
			if (ix[k] < first)
				first = ix[k];
		sums[first - rows].mx_lead = true;
	}
	free(ix);
	return sums;
}

/* What the writer of one policy entry needs. */
struct policy_ctx {
	struct json *j;
	const struct tlsrpt_report_meta *m;
	const struct tlsrpt_row *rows;
	const struct row_sum *sums;
	size_t n;
	const char *type;
};

static bool
of_type(const struct policy_ctx *c, size_t i)
{
	return strcmp(str(c->rows[i].policy), c->type) == 0;
}

/* The row is the first of its failure-details entry, which counts. */
static bool
is_failure_entry(const struct policy_ctx *c, size_t i)
{
	return of_type(c, i) && !is_success(&c->rows[i]) && c->sums[i].lead &&
	       c->sums[i].total > 0;
}

/* The distinct MX host names of the rows, in the order first seen. */
static void
json_row_mx(const struct policy_ctx *c)
{
	size_t i, count = 0;

	for (i = 0; i < c->n; i++)
		if (of_type(c, i) && c->sums[i].mx_lead &&
		    str(c->rows[i].mx)[0] != '\0')
			count++;
	if (count == 0)
		return;
	json_open(c->j, "mx-host", "[");
	for (i = 0; i < c->n; i++)
		if (of_type(c, i) && c->sums[i].mx_lead &&
		    str(c->rows[i].mx)[0] != '\0')
			json_str(c->j, NULL, c->rows[i].mx);
	json_close(c->j, "]");
}

/* "policy": what applied. The MTA-STS policy's lines and mx patterns
 * when known; for DANE the MX hosts we met. */
static void
json_policy_desc(const struct policy_ctx *c)
{
	const struct tlsrpt_report_meta *m = c->m;
	bool sts = strcmp(c->type, "sts") == 0;

	json_open(c->j, "policy", "{");
	json_str(c->j, "policy-type", c->type);
	if (sts && m->nsts_lines > 0)
		json_strings(c->j, "policy-string", m->sts_lines,
		             m->nsts_lines);
	json_str(c->j, "policy-domain", m->domain);
	if (sts && m->nsts_mx > 0)
		json_strings(c->j, "mx-host", m->sts_mx, m->nsts_mx);
	else if (strcmp(c->type, "tlsa") == 0)
		json_row_mx(c);
	json_close(c->j, "}");
}

static void
json_summary(const struct policy_ctx *c)
{
	uint64_t ok = 0, failed = 0;

	for (size_t i = 0; i < c->n; i++) {
		if (!of_type(c, i))
			continue;
		if (is_success(&c->rows[i]))
			ok = add_sat(ok, c->rows[i].count);
		else
			failed = add_sat(failed, c->rows[i].count);
	}
	json_open(c->j, "summary", "{");
	json_u64(c->j, "total-successful-session-count", ok);
	json_u64(c->j, "total-failure-session-count", failed);
	json_close(c->j, "}");
}

/* One entry per (result, MX host, detail); left out when there is none.
 * An empty MX host (no MX reached) or detail is left out of its entry. */
static void
json_failures(const struct policy_ctx *c)
{
	size_t i;

	for (i = 0; i < c->n && !is_failure_entry(c, i); i++)
		;
	if (i == c->n)
		return;
	json_open(c->j, "failure-details", "[");
	for (; i < c->n; i++) {
		const struct tlsrpt_row *r = &c->rows[i];

		if (!is_failure_entry(c, i))
			continue;
		json_open(c->j, NULL, "{");
		json_str(c->j, "result-type", r->result);
		if (str(r->mx)[0] != '\0')
			json_str(c->j, "receiving-mx-hostname", r->mx);
		json_u64(c->j, "failed-session-count", c->sums[i].total);
		if (str(r->detail)[0] != '\0')
			json_str(c->j, "failure-reason-code", r->detail);
		json_close(c->j, "}");
	}
	json_close(c->j, "]");
}

/* One "policies" entry, when a row has this type. */
static void
json_policy(struct policy_ctx *c)
{
	size_t i;

	for (i = 0; i < c->n && !of_type(c, i); i++)
		;
	if (i == c->n)
		return;
	json_open(c->j, NULL, "{");
	json_policy_desc(c);
	json_summary(c);
	json_failures(c);
	json_close(c->j, "}");
}

/* RFC 3339 in UTC; %Y gives four digits for the years 1000 to 9999. */
static int
format_date(int64_t t, char out[DATE_MAX])
{
	time_t tt = (time_t)t;
	struct tm tm;

	if ((int64_t)tt != t || gmtime_r(&tt, &tm) == NULL ||
	    tm.tm_year < 1000 - 1900 || tm.tm_year > 9999 - 1900 ||
	    strftime(out, DATE_MAX, "%Y-%m-%dT%H:%M:%SZ", &tm) != DATE_MAX - 1)
		return -1;
	return 0;
}

int
tlsrpt_report_json(const struct tlsrpt_report_meta *m,
                   const struct tlsrpt_row *rows, size_t n, struct buf *out)
{
	struct json j = {.out = out};
	struct policy_ctx c = {.j = &j, .m = m, .rows = rows, .n = n};
	char begin[DATE_MAX], end[DATE_MAX];
	size_t start = out->len;
	struct row_sum *sums;

	if (format_date(m->begin, begin) < 0 || format_date(m->end, end) < 0)
		return -1;
	sums = rows_merge(rows, n);
	c.sums = sums;
	json_open(&j, NULL, "{");
	json_str(&j, "organization-name", m->org_name);
	json_open(&j, "date-range", "{");
	json_str(&j, "start-datetime", begin);
	json_str(&j, "end-datetime", end);
	json_close(&j, "}");
	json_str(&j, "contact-info", m->contact);
	json_str(&j, "report-id", m->report_id);
	json_open(&j, "policies", "[");
	for (size_t t = 0; t < sizeof(policy_types) / sizeof(policy_types[0]);
	     t++) {
		c.type = policy_types[t];
		json_policy(&c);
	}
	json_close(&j, "]");
	json_close(&j, "}");
	json_put(&j, "\n");
	free(sums);
	if (j.failed) {
		out->len = start;
		return -1;
	}
	return 0;
}

/* ---------------------------------------------------------- the mail */

/* A part of the file name: printable ASCII without space, and nothing
 * that separates the parts, makes a path or ends the quoted name. */
static bool
file_part_ok(const char *s)
{
	if (s == NULL || *s == '\0')
		return false;
	for (; *s != '\0'; s++)
		if (*s <= 0x20 || *s >= 0x7f || strchr("!/\"\\", *s) != NULL)
			return false;
	return true;
}

int
tlsrpt_filename(const struct tlsrpt_mail *m, char *out, size_t outlen)
{
	int n = -1;

	if (file_part_ok(m->submitter) && file_part_ok(m->domain) &&
	    file_part_ok(m->report_id))
		n = snprintf(
		    out, outlen, "%s!%s!%" PRId64 "!%" PRId64 "!%s.json.gz",
		    m->submitter, m->domain, m->begin, m->end, m->report_id);
	if (n < 0 || (size_t)n >= outlen) {
		if (outlen > 0)
			out[0] = '\0';
		return -1;
	}
	return 0;
}

/* The report id as a boundary token: other characters as '_', cut at
 * BOUNDARY_ID_MAX. Unique enough: nothing in the body starts with "--=". */
static void
boundary_id(const char *report_id, char out[BOUNDARY_ID_MAX + 1])
{
	size_t i;

	for (i = 0; report_id[i] != '\0' && i < BOUNDARY_ID_MAX; i++) {
		char c = report_id[i];

		out[i] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		                 (c >= '0' && c <= '9') || c == '.' || c == '-'
		             ? c
		             : '_';
	}
	out[i] = '\0';
}

int
tlsrpt_report_message(const struct tlsrpt_mail *m, const void *gz, size_t gzlen,
                      struct buf *out)
{
	char file[1024], begin[DATE_MAX], end[DATE_MAX], text[2048];
	char bid[BOUNDARY_ID_MAX + 1];
	const struct report_mail_header headers[] = {
	    {"TLS-Report-Domain", m->domain},
	    {"TLS-Report-Submitter", m->submitter},
	};
	struct report_mail_spec s = {
	    .from = m->from,
	    .to = m->to,
	    .message_id = m->message_id,
	    .date = m->date,
	    .domain = m->domain,
	    .submitter = m->submitter,
	    .report_id = m->report_id,
	    .boundary_tag = BOUNDARY_TAG,
	    .boundary_id = bid,
	    .boundary_id_max = BOUNDARY_ID_MAX,
	    .headers = headers,
	    .nheaders = sizeof(headers) / sizeof(headers[0]),
	    .content_type = "multipart/report; report-type=\"tlsrpt\"",
	    .preamble = "This is an SMTP TLS report in MIME format.",
	    .text = text,
	    .attachment_type = "application/tlsrpt+gzip",
	    .filename = file,
	};
	int n;

	/* The file name checks domain, submitter and report id first. */
	if (tlsrpt_filename(m, file, sizeof(file)) < 0 ||
	    format_date(m->begin, begin) < 0 || format_date(m->end, end) < 0)
		return -1;
	boundary_id(m->report_id, bid);
	n = snprintf(text, sizeof(text),
	             "This is an SMTP TLS report (RFC 8460) for %s\r\n"
	             "from %s, for the sessions from %s\r\n"
	             "to %s.\r\n",
	             m->domain, m->submitter, begin, end);
	if (n < 0 || (size_t)n >= sizeof(text))
		return -1;
	return report_mail_build(&s, gz, gzlen, out);
}
