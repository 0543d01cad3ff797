/* DMARC aggregate reports that we send (see dmarc_agg.h): records from
 * evaluations and their wire form, the appendix C XML, gzip through zlib,
 * rua mailto: URIs, external destination names and the report message
 * (report_mail_build, shared with the TLS reports of tlsrpt_report.c).
 * SECURITY: decoded records are checked field by field (lengths, enums,
 * printable ASCII); every string written into XML is escaped and every
 * header value is checked; all output is appended to bounded buffers. */
#include "mailauth/dmarc_agg.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <zlib.h>

#include <openssl/crypto.h>

#include "core/base64.h"
#include "core/ipc.h"
#include "mailauth/dmarc_report.h"
#include "mailauth/psl.h"

#define MAILTO "mailto:"
#define MAILTO_LEN (sizeof(MAILTO) - 1)
#define GZIP_CHUNK (64 * 1024)
#define B64_LINE 57 /* bytes per 76-character base64 line */
#define SPF_NOT_CHECKED UINT32_MAX

/* ------------------------------------------------------------ records */

static void
copy_printable(char *dst, size_t size, const char *src)
{
	size_t i = 0;

	for (; src != NULL && src[i] != '\0' && i + 1 < size; i++)
		dst[i] = (src[i] > 0x20 && src[i] < 0x7f) ? src[i] : '?';
	dst[i] = '\0';
}

static bool
is_mailto(const char *uri)
{
	return strncasecmp(uri, MAILTO, MAILTO_LEN) == 0;
}

bool
dmarc_agg_record_from(const struct dmarc_domain_result *d,
                      enum dmarc_policy applied, unsigned int reasons,
                      struct dmarc_agg_record *rec_r)
{
	const struct dmarc_report_row *row = &d->report;
	struct dmarc_agg_row *out = &rec_r->row;

	memset(rec_r, 0, sizeof(*rec_r));
	if (!row->record_found || row->policy_domain[0] == '\0')
		return false;
	for (size_t i = 0; i < row->record.nrua; i++) {
		if (!is_mailto(row->record.rua[i].uri) ||
		    rec_r->nrua == DMARC_AGG_RUA_MAX)
			continue;
		rec_r->rua[rec_r->nrua++] = row->record.rua[i];
	}
	if (rec_r->nrua == 0)
		return false;
	copy_printable(rec_r->policy.domain, sizeof(rec_r->policy.domain),
	               row->policy_domain);
	rec_r->policy.p = row->record.p;
	rec_r->policy.sp = row->record.sp;
	rec_r->policy.adkim = row->record.adkim;
	rec_r->policy.aspf = row->record.aspf;
	rec_r->policy.pct = row->record.pct;
	rec_r->result = d->result;
	copy_printable(out->source_ip, sizeof(out->source_ip), row->source_ip);
	copy_printable(out->header_from, sizeof(out->header_from),
	               row->header_from);
	copy_printable(out->envelope_from, sizeof(out->envelope_from),
	               row->envelope_from);
	out->disposition = applied;
	out->dkim_aligned = row->dkim_aligned;
	out->spf_aligned = row->spf_aligned;
	out->reasons = (reasons & DMARC_AGG_REASONS_ALL) |
	               (row->sampled_out ? DMARC_REPORT_REASON_SAMPLED_OUT : 0);
	for (size_t i = 0; i < row->ndkim && i < DMARC_AGG_DKIM_MAX; i++) {
		copy_printable(out->dkim[i].domain, sizeof(out->dkim[i].domain),
		               row->dkim[i].domain);
		copy_printable(out->dkim[i].selector,
		               sizeof(out->dkim[i].selector),
		               row->dkim[i].selector);
		out->dkim[i].result = row->dkim[i].result;
		out->ndkim = i + 1;
	}
	out->spf_checked = row->spf_checked;
	out->spf_result = row->spf_result;
	out->count = 1;
	return true;
}

/* Printable ASCII without space, shorter than size, or "" when empty_ok. */
static bool
field_ok(const char *s, size_t size, bool empty_ok)
{
	size_t n = strnlen(s, size);

	if (n == size || (n == 0 && !empty_ok))
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] <= 0x20 || s[i] >= 0x7f)
			return false;
	return true;
}

/* An address in inet_ntop() form (the report's source_ip). */
static bool
ip_ok(const char *s, size_t size)
{
	unsigned char bin[sizeof(struct in6_addr)];

	return strnlen(s, size) < size && (inet_pton(AF_INET, s, bin) == 1 ||
	                                   inet_pton(AF_INET6, s, bin) == 1);
}

int
dmarc_agg_record_check(const struct dmarc_agg_record *rec, const char **error_r)
{
	const struct dmarc_agg_row *row = &rec->row;
	const struct dmarc_agg_policy *pol = &rec->policy;

	if (!field_ok(pol->domain, sizeof(pol->domain), false) ||
	    !field_ok(row->header_from, sizeof(row->header_from), false) ||
	    !ip_ok(row->source_ip, sizeof(row->source_ip)) ||
	    !field_ok(row->envelope_from, sizeof(row->envelope_from), true)) {
		*error_r = "bad domain or address";
		return -1;
	}
	if (pol->p > DMARC_POLICY_REJECT || pol->sp > DMARC_POLICY_REJECT ||
	    row->disposition > DMARC_POLICY_REJECT ||
	    pol->adkim > DMARC_ALIGN_STRICT || pol->aspf > DMARC_ALIGN_STRICT ||
	    pol->pct > 100 || rec->result > DMARC_PERMERROR ||
	    row->spf_result > SPF_PERMERROR ||
	    (row->reasons & ~DMARC_AGG_REASONS_ALL) != 0) {
		*error_r = "value out of range";
		return -1;
	}
	if (row->ndkim > DMARC_AGG_DKIM_MAX) {
		*error_r = "too many DKIM results";
		return -1;
	}
	for (size_t i = 0; i < row->ndkim; i++)
		if (!field_ok(row->dkim[i].domain, sizeof(row->dkim[i].domain),
		              true) ||
		    !field_ok(row->dkim[i].selector,
		              sizeof(row->dkim[i].selector), true) ||
		    row->dkim[i].result > DKIM_PERMERROR) {
			*error_r = "bad DKIM result";
			return -1;
		}
	if (rec->nrua == 0 || rec->nrua > DMARC_AGG_RUA_MAX) {
		*error_r = "no rua, or too many";
		return -1;
	}
	for (size_t i = 0; i < rec->nrua; i++)
		if (!field_ok(rec->rua[i].uri, sizeof(rec->rua[i].uri),
		              false) ||
		    !is_mailto(rec->rua[i].uri)) {
			*error_r = "bad rua URI";
			return -1;
		}
	return 0;
}

int
dmarc_agg_record_put(struct buf *b, const struct dmarc_agg_record *rec)
{
	const struct dmarc_agg_row *row = &rec->row;
	const char *error;

	if (dmarc_agg_record_check(rec, &error) < 0)
		return -1;
	ipc_put_str(b, row->header_from);
	ipc_put_str(b, rec->policy.domain);
	ipc_put_str(b, row->source_ip);
	ipc_put_str(b, row->envelope_from);
	ipc_put_u32(b, row->spf_checked ? (uint32_t)row->spf_result
	                                : SPF_NOT_CHECKED);
	ipc_put_u32(b, (uint32_t)row->ndkim);
	for (size_t i = 0; i < row->ndkim; i++) {
		ipc_put_str(b, row->dkim[i].domain);
		ipc_put_str(b, row->dkim[i].selector);
		ipc_put_u32(b, (uint32_t)row->dkim[i].result);
	}
	ipc_put_u32(b, (uint32_t)rec->result);
	ipc_put_u32(b, (uint32_t)row->disposition);
	ipc_put_u32(b, (row->dkim_aligned ? 1u : 0u) |
	                   (row->spf_aligned ? 2u : 0u));
	ipc_put_u32(b, row->reasons);
	ipc_put_u32(b, (uint32_t)rec->policy.p);
	ipc_put_u32(b, (uint32_t)rec->policy.sp);
	ipc_put_u32(b, rec->policy.pct);
	ipc_put_u32(b, (uint32_t)rec->policy.adkim);
	ipc_put_u32(b, (uint32_t)rec->policy.aspf);
	ipc_put_u32(b, (uint32_t)rec->nrua);
	for (size_t i = 0; i < rec->nrua; i++) {
		ipc_put_str(b, rec->rua[i].uri);
		ipc_put_u64(b, rec->rua[i].size_max);
	}
	return 0;
}

/* A string into dst (size bytes with the NUL): too long or holding a NUL
 * is an error. */
static void
get_str(struct ipc_reader *r, char *dst, size_t size)
{
	size_t len = 0;
	const uint8_t *p = ipc_get_bytes(r, &len);

	dst[0] = '\0';
	if (p == NULL)
		return;
	if (len >= size || memchr(p, '\0', len) != NULL) {
		r->error = true;
		return;
	}
	memcpy(dst, p, len);
	dst[len] = '\0';
}

/* A u32 that must be at most max. */
static uint32_t
get_enum(struct ipc_reader *r, uint32_t max)
{
	uint32_t v = ipc_get_u32(r);

	if (v > max) {
		r->error = true;
		return 0;
	}
	return v;
}

int
dmarc_agg_record_get(const void *data, size_t len,
                     struct dmarc_agg_record *rec_r, const char **error_r)
{
	struct ipc_reader r = {.p = data, .left = len, .error = false};
	struct dmarc_agg_row *row = &rec_r->row;
	uint32_t spf, flags, n;

	memset(rec_r, 0, sizeof(*rec_r));
	if (len > DMARC_AGG_RECORD_WIRE_MAX) {
		*error_r = "record too long";
		return -1;
	}
	get_str(&r, row->header_from, sizeof(row->header_from));
	get_str(&r, rec_r->policy.domain, sizeof(rec_r->policy.domain));
	get_str(&r, row->source_ip, sizeof(row->source_ip));
	get_str(&r, row->envelope_from, sizeof(row->envelope_from));
	spf = ipc_get_u32(&r);
	if (spf == SPF_NOT_CHECKED) {
		row->spf_checked = false;
	} else if (spf <= SPF_PERMERROR) {
		row->spf_checked = true;
		row->spf_result = (enum spf_result)spf;
	} else {
		r.error = true;
	}
	n = get_enum(&r, DMARC_AGG_DKIM_MAX);
	for (uint32_t i = 0; i < n && !r.error; i++) {
		get_str(&r, row->dkim[i].domain, sizeof(row->dkim[i].domain));
		get_str(&r, row->dkim[i].selector,
		        sizeof(row->dkim[i].selector));
		row->dkim[i].result =
		    (enum dkim_result)get_enum(&r, DKIM_PERMERROR);
	}
	row->ndkim = n;
	rec_r->result = (enum dmarc_result)get_enum(&r, DMARC_PERMERROR);
	row->disposition = (enum dmarc_policy)get_enum(&r, DMARC_POLICY_REJECT);
	flags = get_enum(&r, 3);
	row->dkim_aligned = (flags & 1) != 0;
	row->spf_aligned = (flags & 2) != 0;
	row->reasons = get_enum(&r, DMARC_AGG_REASONS_ALL);
	rec_r->policy.p = (enum dmarc_policy)get_enum(&r, DMARC_POLICY_REJECT);
	rec_r->policy.sp = (enum dmarc_policy)get_enum(&r, DMARC_POLICY_REJECT);
	rec_r->policy.pct = get_enum(&r, 100);
	rec_r->policy.adkim =
	    (enum dmarc_align)get_enum(&r, DMARC_ALIGN_STRICT);
	rec_r->policy.aspf = (enum dmarc_align)get_enum(&r, DMARC_ALIGN_STRICT);
	n = get_enum(&r, DMARC_AGG_RUA_MAX);
	for (uint32_t i = 0; i < n && !r.error; i++) {
		get_str(&r, rec_r->rua[i].uri, sizeof(rec_r->rua[i].uri));
		rec_r->rua[i].size_max = ipc_get_u64(&r);
	}
	rec_r->nrua = n;
	row->count = 1;
	if (r.error || ipc_reader_done(&r) < 0) {
		*error_r = "malformed record";
		memset(rec_r, 0, sizeof(*rec_r));
		return -1;
	}
	if (dmarc_agg_record_check(rec_r, error_r) < 0) {
		memset(rec_r, 0, sizeof(*rec_r));
		return -1;
	}
	return 0;
}

/* --------------------------------------------------- URIs and names */

/* RFC 5322 atext, and '.' (a dot-atom, checked for dots below). */
static bool
local_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || strchr("!#$%&'*+-/=?^_`{|}~.", c);
}

int
dmarc_agg_mailto(const char *uri, char *addr_r, char *domain_r)
{
	char dec[DMARC_URI_MAX + 1];
	const char *p, *at = NULL;
	size_t n = 0, local_len;
	int dlen;

	addr_r[0] = '\0';
	domain_r[0] = '\0';
	if (uri == NULL || !is_mailto(uri))
		return -1;
	for (p = uri + MAILTO_LEN; *p != '\0' && *p != '?'; p++) {
		char c = *p;

		if (n == sizeof(dec) - 1)
			return -1;
		if (c == '%') {
			int hi = OPENSSL_hexchar2int((unsigned char)p[1]),
			    lo = hi < 0
			             ? -1
			             : OPENSSL_hexchar2int((unsigned char)p[2]);

			if (lo < 0)
				return -1;
			c = (char)(hi << 4 | lo);
			p += 2;
		}
		if (c == '@') {
			if (at != NULL)
				return -1;
			at = dec + n;
		} else if (c <= 0x20 || c >= 0x7f) {
			return -1;
		}
		dec[n++] = c;
	}
	dec[n] = '\0';
	if (at == NULL)
		return -1;
	local_len = (size_t)(at - dec);
	if (local_len == 0 || dec[0] == '.' || dec[local_len - 1] == '.')
		return -1;
	for (size_t i = 0; i < local_len; i++)
		if (!local_char(dec[i]) ||
		    (dec[i] == '.' && i > 0 && dec[i - 1] == '.'))
			return -1;
	dlen = psl_domain_normalize(at + 1, n - local_len - 1, domain_r,
	                            DMARC_DOMAIN_MAX + 1);
	if (dlen < 0 || local_len + 1 + (size_t)dlen > DMARC_AGG_ADDRESS_MAX) {
		domain_r[0] = '\0';
		return -1;
	}
	memcpy(addr_r, dec, local_len);
	addr_r[local_len] = '@';
	memcpy(addr_r + local_len + 1, domain_r, (size_t)dlen + 1);
	return 0;
}

int
dmarc_agg_auth_name(const char *policy_domain, const char *rua_domain,
                    char *out, size_t outlen)
{
	int n = snprintf(out, outlen, "%s._report._dmarc.%s", policy_domain,
	                 rua_domain);

	if (n < 0 || (size_t)n >= outlen || n > DMARC_DOMAIN_MAX) {
		if (outlen > 0)
			out[0] = '\0';
		return -1;
	}
	return 0;
}

bool
dmarc_agg_auth_ok(char *const *txt, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (txt[i] != NULL &&
		    dmarc_record_is_dmarc(txt[i], strlen(txt[i])))
			return true;
	return false;
}

/* ----------------------------------------------------------------- XML */

/* Character data: the five specials as entities, anything outside
 * printable ASCII as '?'. */
static int
xml_text(struct buf *out, const char *s)
{
	for (; s != NULL && *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;
		int rc;

		switch (c) {
		case '&':
			rc = buf_append_str(out, "&amp;");
			break;
		case '<':
			rc = buf_append_str(out, "&lt;");
			break;
		case '>':
			rc = buf_append_str(out, "&gt;");
			break;
		case '"':
			rc = buf_append_str(out, "&quot;");
			break;
		case '\'':
			rc = buf_append_str(out, "&apos;");
			break;
		default:
			rc = buf_append_byte(out, c >= 0x20 && c < 0x7f
			                              ? c
			                              : (unsigned char)'?');
		}
		if (rc < 0)
			return -1;
	}
	return 0;
}

/* <name>text</name> on a line of its own, indented. */
static int
xml_elem(struct buf *out, int indent, const char *name, const char *text)
{
	return buf_printf(out, "%*s<%s>", indent, "", name) < 0 ||
	               xml_text(out, text) < 0 ||
	               buf_printf(out, "</%s>\n", name) < 0
	           ? -1
	           : 0;
}

static int
xml_elem_u64(struct buf *out, int indent, const char *name, uint64_t v)
{
	return buf_printf(out, "%*s<%s>%" PRIu64 "</%s>\n", indent, "", name, v,
	                  name);
}

static int
xml_open(struct buf *out, int indent, const char *name)
{
	return buf_printf(out, "%*s<%s>\n", indent, "", name);
}

static int
xml_close(struct buf *out, int indent, const char *name)
{
	return buf_printf(out, "%*s</%s>\n", indent, "", name);
}

static const char *
align_name(enum dmarc_align a)
{
	return a == DMARC_ALIGN_STRICT ? "s" : "r";
}

static const struct {
	unsigned int bit;
	const char *name;
} reason_names[] = {
    {DMARC_REPORT_REASON_FORWARDED, "forwarded"},
    {DMARC_REPORT_REASON_SAMPLED_OUT, "sampled_out"},
    {DMARC_REPORT_REASON_TRUSTED_FORWARDER, "trusted_forwarder"},
    {DMARC_REPORT_REASON_MAILING_LIST, "mailing_list"},
    {DMARC_REPORT_REASON_LOCAL_POLICY, "local_policy"},
    {DMARC_REPORT_REASON_OTHER, "other"},
};

static int
xml_record(struct buf *out, const struct dmarc_agg_row *row)
{
	if (xml_open(out, 2, "record") < 0 || xml_open(out, 4, "row") < 0 ||
	    xml_elem(out, 6, "source_ip", row->source_ip) < 0 ||
	    xml_elem_u64(out, 6, "count", row->count) < 0 ||
	    xml_open(out, 6, "policy_evaluated") < 0 ||
	    xml_elem(out, 8, "disposition",
	             dmarc_policy_name(row->disposition)) < 0 ||
	    xml_elem(out, 8, "dkim", row->dkim_aligned ? "pass" : "fail") < 0 ||
	    xml_elem(out, 8, "spf", row->spf_aligned ? "pass" : "fail") < 0)
		return -1;
	for (size_t i = 0; i < sizeof(reason_names) / sizeof(reason_names[0]);
	     i++) {
		if ((row->reasons & reason_names[i].bit) == 0)
			continue;
		if (xml_open(out, 8, "reason") < 0 ||
		    xml_elem(out, 10, "type", reason_names[i].name) < 0 ||
		    xml_close(out, 8, "reason") < 0)
			return -1;
	}
	if (xml_close(out, 6, "policy_evaluated") < 0 ||
	    xml_close(out, 4, "row") < 0 || xml_open(out, 4, "identifiers") < 0)
		return -1;
	if (row->envelope_from[0] != '\0' &&
	    xml_elem(out, 6, "envelope_from", row->envelope_from) < 0)
		return -1;
	if (xml_elem(out, 6, "header_from", row->header_from) < 0 ||
	    xml_close(out, 4, "identifiers") < 0 ||
	    xml_open(out, 4, "auth_results") < 0)
		return -1;
	for (size_t i = 0; i < row->ndkim && i < DMARC_AGG_DKIM_MAX; i++) {
		const struct dmarc_agg_dkim *d = &row->dkim[i];

		if (xml_open(out, 6, "dkim") < 0 ||
		    xml_elem(out, 8, "domain", d->domain) < 0 ||
		    (d->selector[0] != '\0' &&
		     xml_elem(out, 8, "selector", d->selector) < 0) ||
		    xml_elem(out, 8, "result", dkim_result_str(d->result)) <
		        0 ||
		    xml_close(out, 6, "dkim") < 0)
			return -1;
	}
	/* The schema wants one spf result: "none" when it was not checked. */
	if (xml_open(out, 6, "spf") < 0 ||
	    xml_elem(out, 8, "domain",
	             row->envelope_from[0] != '\0' ? row->envelope_from
	                                           : row->header_from) < 0 ||
	    xml_elem(out, 8, "scope", "mfrom") < 0 ||
	    xml_elem(out, 8, "result",
	             row->spf_checked ? spf_result_name(row->spf_result)
	                              : "none") < 0 ||
	    xml_close(out, 6, "spf") < 0 ||
	    xml_close(out, 4, "auth_results") < 0 ||
	    xml_close(out, 2, "record") < 0)
		return -1;
	return 0;
}

int
dmarc_agg_xml(const struct dmarc_agg_meta *meta,
              const struct dmarc_agg_policy *policy,
              const struct dmarc_agg_row *rows, size_t n, struct buf *out)
{
	if (buf_append_str(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
	                        "<feedback>\n"
	                        "  <version>1.0</version>\n") < 0 ||
	    xml_open(out, 2, "report_metadata") < 0 ||
	    xml_elem(out, 4, "org_name", meta->org_name) < 0 ||
	    xml_elem(out, 4, "email", meta->email) < 0 ||
	    xml_elem(out, 4, "report_id", meta->report_id) < 0 ||
	    xml_open(out, 4, "date_range") < 0 ||
	    buf_printf(out,
	               "      <begin>%" PRId64 "</begin>\n"
	               "      <end>%" PRId64 "</end>\n",
	               meta->begin, meta->end) < 0 ||
	    xml_close(out, 4, "date_range") < 0 ||
	    xml_close(out, 2, "report_metadata") < 0 ||
	    xml_open(out, 2, "policy_published") < 0 ||
	    xml_elem(out, 4, "domain", policy->domain) < 0 ||
	    xml_elem(out, 4, "adkim", align_name(policy->adkim)) < 0 ||
	    xml_elem(out, 4, "aspf", align_name(policy->aspf)) < 0 ||
	    xml_elem(out, 4, "p", dmarc_policy_name(policy->p)) < 0 ||
	    xml_elem(out, 4, "sp", dmarc_policy_name(policy->sp)) < 0 ||
	    xml_elem_u64(out, 4, "pct", policy->pct) < 0 ||
	    xml_close(out, 2, "policy_published") < 0)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (xml_record(out, &rows[i]) < 0)
			return -1;
	return buf_append_str(out, "</feedback>\n");
}

/* ----------------------------------------------------------------- gzip */

int
dmarc_agg_gzip(const void *data, size_t len, struct buf *out)
{
	const unsigned char *in = data;
	unsigned char chunk[GZIP_CHUNK];
	z_stream z;
	int rc = Z_OK, flush;

	memset(&z, 0, sizeof(z));
	/* windowBits 15 + 16: a gzip wrapper (RFC 1952) around deflate. */
	if (deflateInit2(&z, Z_BEST_COMPRESSION, Z_DEFLATED, 15 + 16, 8,
	                 Z_DEFAULT_STRATEGY) != Z_OK)
		return -1;
	do {
		size_t take = len > GZIP_CHUNK ? GZIP_CHUNK : len;

		z.next_in = (unsigned char *)(uintptr_t)in;
		z.avail_in = (uInt)take;
		in += take;
		len -= take;
		flush = len == 0 ? Z_FINISH : Z_NO_FLUSH;
		do {
			z.next_out = chunk;
			z.avail_out = sizeof(chunk);
			rc = deflate(&z, flush);
			if (rc == Z_STREAM_ERROR ||
			    buf_append(out, chunk,
			               sizeof(chunk) - z.avail_out) < 0) {
				deflateEnd(&z);
				return -1;
			}
		} while (z.avail_out == 0);
	} while (flush != Z_FINISH);
	deflateEnd(&z);
	return rc == Z_STREAM_END ? 0 : -1;
}

/* -------------------------------------------------------------- message */

static bool
header_value_ok(const char *s)
{
	if (s == NULL || *s == '\0')
		return false;
	for (; *s != '\0'; s++)
		if (*s < 0x20 || *s >= 0x7f)
			return false;
	return true;
}

/* A part of the MIME boundary: letters, digits, '.', '-', '_'. */
static bool
boundary_part_ok(const char *id, size_t max)
{
	size_t n = strlen(id);

	if (n == 0 || n > max)
		return false;
	for (; *id != '\0'; id++)
		if (!((*id >= 'a' && *id <= 'z') ||
		      (*id >= 'A' && *id <= 'Z') ||
		      (*id >= '0' && *id <= '9') || *id == '.' || *id == '-' ||
		      *id == '_'))
			return false;
	return true;
}

int
dmarc_agg_filename(const struct dmarc_agg_mail *m, char *out, size_t outlen)
{
	int n = snprintf(out, outlen, "%s!%s!%" PRId64 "!%" PRId64 ".xml.gz",
	                 m->hostname, m->domain, m->begin, m->end);

	if (n < 0 || (size_t)n >= outlen) {
		if (outlen > 0)
			out[0] = '\0';
		return -1;
	}
	return 0;
}

static void
format_utc(int64_t t, const char *fmt, char *out, size_t outlen)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (gmtime_r(&tt, &tm) == NULL || strftime(out, outlen, fmt, &tm) == 0)
		snprintf(out, outlen, "?");
}

/* The gzip as base64 lines of 76 characters. */
static int
append_base64(struct buf *out, const unsigned char *data, size_t len)
{
	char line[BASE64_ENCODED_SIZE(B64_LINE)];

	for (size_t off = 0; off < len; off += B64_LINE) {
		size_t take = len - off < B64_LINE ? len - off : B64_LINE;
		size_t n = base64_encode(data + off, take, line);

		if (buf_append(out, line, n) < 0 ||
		    buf_append_str(out, "\r\n") < 0)
			return -1;
	}
	return 0;
}

/* A field name: printable ASCII without space or ':' (RFC 5322 ftext). */
static bool
header_name_ok(const char *s)
{
	if (s == NULL || *s == '\0')
		return false;
	for (; *s != '\0'; s++)
		if (*s <= 0x20 || *s >= 0x7f || *s == ':')
			return false;
	return true;
}

/* Everything that comes from outside the module, before writing (what
 * the callers write themselves is checked in the result). */
static bool
mail_spec_ok(const struct report_mail_spec *s)
{
	if (s->content_type == NULL || s->preamble == NULL || s->text == NULL ||
	    s->attachment_type == NULL || s->boundary_tag == NULL ||
	    s->boundary_id == NULL || !boundary_part_ok(s->boundary_tag, 16) ||
	    !boundary_part_ok(s->boundary_id, s->boundary_id_max) ||
	    !header_value_ok(s->from) || !header_value_ok(s->to) ||
	    !header_value_ok(s->submitter) || !header_value_ok(s->domain) ||
	    !header_value_ok(s->report_id) || !header_value_ok(s->message_id) ||
	    strpbrk(s->report_id, " <>") != NULL ||
	    !header_value_ok(s->filename) ||
	    strpbrk(s->filename, "\"\\ ") != NULL)
		return false;
	for (size_t i = 0; i < s->nheaders; i++)
		if (!header_name_ok(s->headers[i].name) ||
		    !header_value_ok(s->headers[i].value))
			return false;
	return true;
}

/* What was written, whatever the values: printable ASCII in CRLF lines
 * of at most 998 characters (RFC 5322 §2.1.1). */
static bool
mail_lines_ok(const uint8_t *p, size_t len)
{
	size_t line = 0;

	for (size_t i = 0; i < len; i++) {
		if (p[i] == '\r') {
			if (i + 1 == len || p[i + 1] != '\n')
				return false;
			i++;
			line = 0;
		} else if (p[i] < 0x20 || p[i] >= 0x7f || ++line > 998) {
			return false;
		}
	}
	return line == 0;
}

static int
mail_header(const struct report_mail_spec *s, struct buf *out)
{
	char date[64];
	/* The Subject of RFC 7489 §7.2.1.1 and RFC 8460 §5.3, folded before
	 * "Submitter:" and "Report-ID:" when the line would be long (1*FWS
	 * allows it). */
	size_t subject =
	    strlen("Subject: Report Domain:  Submitter:  Report-ID: <>") +
	    strlen(s->domain) + strlen(s->submitter) + strlen(s->report_id);
	const char *fold = subject > 78 ? "\r\n " : " ";

	format_utc((int64_t)s->date, "%a, %d %b %Y %H:%M:%S +0000", date,
	           sizeof(date));
	if (buf_printf(out,
	               "From: <%s>\r\n"
	               "To: <%s>\r\n"
	               "Date: %s\r\n"
	               "Subject: Report Domain: %s%sSubmitter: %s%s"
	               "Report-ID: <%s>\r\n",
	               s->from, s->to, date, s->domain, fold, s->submitter,
	               fold, s->report_id) < 0)
		return -1;
	for (size_t i = 0; i < s->nheaders; i++)
		if (buf_printf(out, "%s: %s\r\n", s->headers[i].name,
		               s->headers[i].value) < 0)
			return -1;
	return buf_printf(out,
	                  "Message-ID: %s\r\n"
	                  "Auto-Submitted: auto-generated\r\n"
	                  "MIME-Version: 1.0\r\n"
	                  "Content-Type: %s;\r\n"
	                  " boundary=\"=_tern_%s_%s\"\r\n"
	                  "\r\n",
	                  s->message_id, s->content_type, s->boundary_tag,
	                  s->boundary_id);
}

static int
mail_body(const struct report_mail_spec *s, const void *gz, size_t gzlen,
          struct buf *out)
{
	if (buf_printf(out,
	               "%s\r\n"
	               "\r\n"
	               "--=_tern_%s_%s\r\n"
	               "Content-Type: text/plain; charset=us-ascii\r\n"
	               "Content-Transfer-Encoding: 7bit\r\n"
	               "\r\n"
	               "%s"
	               "\r\n"
	               "--=_tern_%s_%s\r\n"
	               "Content-Type: %s;\r\n"
	               " name=\"%s\"\r\n"
	               "Content-Disposition: attachment;\r\n"
	               " filename=\"%s\"\r\n"
	               "Content-Transfer-Encoding: base64\r\n"
	               "\r\n",
	               s->preamble, s->boundary_tag, s->boundary_id, s->text,
	               s->boundary_tag, s->boundary_id, s->attachment_type,
	               s->filename, s->filename) < 0 ||
	    append_base64(out, gz, gzlen) < 0)
		return -1;
	return buf_printf(out, "--=_tern_%s_%s--\r\n", s->boundary_tag,
	                  s->boundary_id);
}

int
report_mail_build(const struct report_mail_spec *s, const void *gz,
                  size_t gzlen, struct buf *out)
{
	size_t start = out->len;

	if (!mail_spec_ok(s))
		return -1;
	if (mail_header(s, out) < 0 || mail_body(s, gz, gzlen, out) < 0 ||
	    !mail_lines_ok(out->data + start, out->len - start)) {
		out->len = start;
		return -1;
	}
	return 0;
}

int
dmarc_agg_message(const struct dmarc_agg_mail *m, const void *gz, size_t gzlen,
                  struct buf *out)
{
	char file[3 * 256 + 64], begin[32], end[32];
	struct buf text;
	struct report_mail_spec s = {
	    .from = m->from,
	    .to = m->to,
	    .message_id = m->message_id,
	    .date = m->date,
	    .domain = m->domain,
	    .submitter = m->hostname,
	    .report_id = m->report_id,
	    .boundary_tag = "dmarc",
	    .boundary_id = m->report_id, /* a token: checked there */
	    .boundary_id_max = DMARC_AGG_REPORT_ID_MAX,
	    .content_type = "multipart/mixed",
	    .preamble = "This is a DMARC aggregate report in MIME format.",
	    .attachment_type = "application/gzip",
	    .filename = file,
	};
	int rc;

	/* The file name and the text hold them: checked before either. */
	if (!header_value_ok(m->hostname) || !header_value_ok(m->domain) ||
	    dmarc_agg_filename(m, file, sizeof(file)) < 0)
		return -1;
	format_utc(m->begin, "%Y-%m-%d %H:%M:%S", begin, sizeof(begin));
	format_utc(m->end, "%Y-%m-%d %H:%M:%S", end, sizeof(end));
	buf_init(&text, 4096);
	if (buf_printf(&text,
	               "This is a DMARC aggregate report (RFC 7489) for %s\r\n"
	               "from %s, for mail received from %s\r\n"
	               "to %s UTC.\r\n",
	               m->domain, m->hostname, begin, end) < 0 ||
	    (s.text = buf_cstr(&text)) == NULL)
		rc = -1;
	else
		rc = report_mail_build(&s, gz, gzlen, out);
	buf_free(&text);
	return rc;
}
