/* DMARC aggregate reports (RFC 7489 appendix C): the <feedback> schema read
 * from the XML reader's events into a struct dmarc_feedback. Unknown
 * elements (extensions, DMARCbis additions) are skipped wherever they are;
 * required values (report_id, date_range, policy_published/domain, and
 * source_ip and count of each record) must be there and well-formed.
 * SECURITY: the document is untrusted: see dmarc_report_xml.c for the
 * reader's bounds. Values are bounded by DMARC_REPORT_VALUE_MAX, records
 * by DMARC_REPORT_RECORDS_MAX, results kept per record by
 * DMARC_REPORT_AUTH_MAX; strings live in one pool freed with the report. */
#include "mailauth/dmarc_report.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/xmalloc.h"
#include "mail/header.h"
#include "mailauth/dmarc_report_int.h"

/* The elements the schema knows; everything else is EL_OTHER. */
enum el {
	EL_OTHER,
	EL_ADKIM,
	EL_ASPF,
	EL_AUTH_RESULTS,
	EL_BEGIN,
	EL_COUNT,
	EL_DATE_RANGE,
	EL_DISPOSITION,
	EL_DKIM,
	EL_DOMAIN,
	EL_EMAIL,
	EL_END,
	EL_ENVELOPE_FROM,
	EL_ENVELOPE_TO,
	EL_ERROR,
	EL_EXTRA_CONTACT_INFO,
	EL_FEEDBACK,
	EL_FO,
	EL_HEADER_FROM,
	EL_IDENTIFIERS,
	EL_ORG_NAME,
	EL_P,
	EL_PCT,
	EL_POLICY_EVALUATED,
	EL_POLICY_PUBLISHED,
	EL_REASON,
	EL_RECORD,
	EL_REPORT_ID,
	EL_REPORT_METADATA,
	EL_RESULT,
	EL_ROW,
	EL_SCOPE,
	EL_SELECTOR,
	EL_SOURCE_IP,
	EL_SP,
	EL_SPF,
	EL_TYPE,
};

/* Sorted by name for bsearch. */
static const struct el_name {
	const char *name;
	enum el el;
} el_names[] = {
    {"adkim", EL_ADKIM},
    {"aspf", EL_ASPF},
    {"auth_results", EL_AUTH_RESULTS},
    {"begin", EL_BEGIN},
    {"count", EL_COUNT},
    {"date_range", EL_DATE_RANGE},
    {"disposition", EL_DISPOSITION},
    {"dkim", EL_DKIM},
    {"domain", EL_DOMAIN},
    {"email", EL_EMAIL},
    {"end", EL_END},
    {"envelope_from", EL_ENVELOPE_FROM},
    {"envelope_to", EL_ENVELOPE_TO},
    {"error", EL_ERROR},
    {"extra_contact_info", EL_EXTRA_CONTACT_INFO},
    {"feedback", EL_FEEDBACK},
    {"fo", EL_FO},
    {"header_from", EL_HEADER_FROM},
    {"identifiers", EL_IDENTIFIERS},
    {"org_name", EL_ORG_NAME},
    {"p", EL_P},
    {"pct", EL_PCT},
    {"policy_evaluated", EL_POLICY_EVALUATED},
    {"policy_published", EL_POLICY_PUBLISHED},
    {"reason", EL_REASON},
    {"record", EL_RECORD},
    {"report_id", EL_REPORT_ID},
    {"report_metadata", EL_REPORT_METADATA},
    {"result", EL_RESULT},
    {"row", EL_ROW},
    {"scope", EL_SCOPE},
    {"selector", EL_SELECTOR},
    {"source_ip", EL_SOURCE_IP},
    {"sp", EL_SP},
    {"spf", EL_SPF},
    {"type", EL_TYPE},
};

/* What an element at a path means. */
enum field {
	F_ORG_NAME,
	F_EMAIL,
	F_EXTRA_CONTACT_INFO,
	F_REPORT_ID,
	F_BEGIN,
	F_END,
	F_ERROR,
	F_DOMAIN,
	F_ADKIM,
	F_ASPF,
	F_P,
	F_SP,
	F_PCT,
	F_FO,
	F_RECORD, /* container: a record starts and ends */
	F_SOURCE_IP,
	F_COUNT,
	F_DISPOSITION,
	F_EVAL_DKIM,
	F_EVAL_SPF,
	F_REASON_TYPE,
	F_HEADER_FROM,
	F_ENVELOPE_FROM,
	F_ENVELOPE_TO,
	F_DKIM, /* container: one DKIM result */
	F_DKIM_DOMAIN,
	F_DKIM_SELECTOR,
	F_DKIM_RESULT,
	F_SPF, /* container: one SPF result */
	F_SPF_DOMAIN,
	F_SPF_SCOPE,
	F_SPF_RESULT,
	F_NONE,
};

#define PATH_MAX_LEN 6

static const struct rule {
	enum field field;
	unsigned char len;
	unsigned char path[PATH_MAX_LEN]; /* enum el from the root */
} rules[] = {
#define META EL_FEEDBACK, EL_REPORT_METADATA
#define POL EL_FEEDBACK, EL_POLICY_PUBLISHED
#define ROW EL_FEEDBACK, EL_RECORD, EL_ROW
#define EVAL ROW, EL_POLICY_EVALUATED
#define IDS EL_FEEDBACK, EL_RECORD, EL_IDENTIFIERS
#define AUTH EL_FEEDBACK, EL_RECORD, EL_AUTH_RESULTS
    {F_ORG_NAME, 3, {META, EL_ORG_NAME}},
    {F_EMAIL, 3, {META, EL_EMAIL}},
    {F_EXTRA_CONTACT_INFO, 3, {META, EL_EXTRA_CONTACT_INFO}},
    {F_REPORT_ID, 3, {META, EL_REPORT_ID}},
    {F_BEGIN, 4, {META, EL_DATE_RANGE, EL_BEGIN}},
    {F_END, 4, {META, EL_DATE_RANGE, EL_END}},
    {F_ERROR, 3, {META, EL_ERROR}},
    {F_DOMAIN, 3, {POL, EL_DOMAIN}},
    {F_ADKIM, 3, {POL, EL_ADKIM}},
    {F_ASPF, 3, {POL, EL_ASPF}},
    {F_P, 3, {POL, EL_P}},
    {F_SP, 3, {POL, EL_SP}},
    {F_PCT, 3, {POL, EL_PCT}},
    {F_FO, 3, {POL, EL_FO}},
    {F_RECORD, 2, {EL_FEEDBACK, EL_RECORD}},
    {F_SOURCE_IP, 4, {ROW, EL_SOURCE_IP}},
    {F_COUNT, 4, {ROW, EL_COUNT}},
    {F_DISPOSITION, 5, {EVAL, EL_DISPOSITION}},
    {F_EVAL_DKIM, 5, {EVAL, EL_DKIM}},
    {F_EVAL_SPF, 5, {EVAL, EL_SPF}},
    {F_REASON_TYPE, 6, {EVAL, EL_REASON, EL_TYPE}},
    {F_HEADER_FROM, 4, {IDS, EL_HEADER_FROM}},
    {F_ENVELOPE_FROM, 4, {IDS, EL_ENVELOPE_FROM}},
    {F_ENVELOPE_TO, 4, {IDS, EL_ENVELOPE_TO}},
    {F_DKIM, 4, {AUTH, EL_DKIM}},
    {F_DKIM_DOMAIN, 5, {AUTH, EL_DKIM, EL_DOMAIN}},
    {F_DKIM_SELECTOR, 5, {AUTH, EL_DKIM, EL_SELECTOR}},
    {F_DKIM_RESULT, 5, {AUTH, EL_DKIM, EL_RESULT}},
    {F_SPF, 4, {AUTH, EL_SPF}},
    {F_SPF_DOMAIN, 5, {AUTH, EL_SPF, EL_DOMAIN}},
    {F_SPF_SCOPE, 5, {AUTH, EL_SPF, EL_SCOPE}},
    {F_SPF_RESULT, 5, {AUTH, EL_SPF, EL_RESULT}},
#undef META
#undef POL
#undef ROW
#undef EVAL
#undef IDS
#undef AUTH
};

/* Where a record's results start in the shared arrays, until the end. */
struct rec_offsets {
	size_t dkim, spf;
};

struct dmarc_feedback_private {
	struct header_pool pool;
	struct dmarc_feedback_record *records;
	struct rec_offsets *offsets;
	size_t nrecords, cap_records;
	struct dmarc_feedback_dkim *dkim;
	size_t ndkim, cap_dkim;
	struct dmarc_feedback_spf *spf;
	size_t nspf, cap_spf;
};

/* The parse in progress. */
struct parse {
	struct dmarc_feedback *fb;
	struct dmarc_feedback_private *priv;
	struct dmarc_xml x;
	unsigned char path[DMARC_REPORT_DEPTH_MAX]; /* enum el */
	size_t depth;
	bool have_begin, have_end;
	/* the record being read */
	bool in_record;
	struct dmarc_feedback_record rec;
	struct rec_offsets off;
	bool have_count;
	struct dmarc_feedback_dkim *dkim; /* the result being read, or NULL */
	struct dmarc_feedback_spf *spf;
	char *error;
};

/* ------------------------------------------------------------ names */

static const char *const result_names[] = {
    [DMARC_REPORT_R_MISSING] = "missing",
    [DMARC_REPORT_R_NONE] = "none",
    [DMARC_REPORT_R_PASS] = "pass",
    [DMARC_REPORT_R_FAIL] = "fail",
    [DMARC_REPORT_R_SOFTFAIL] = "softfail",
    [DMARC_REPORT_R_NEUTRAL] = "neutral",
    [DMARC_REPORT_R_POLICY] = "policy",
    [DMARC_REPORT_R_TEMPERROR] = "temperror",
    [DMARC_REPORT_R_PERMERROR] = "permerror",
    [DMARC_REPORT_R_OTHER] = "other",
};

static const char *const policy_names[] = {
    [DMARC_REPORT_P_MISSING] = "missing",
    [DMARC_REPORT_P_NONE] = "none",
    [DMARC_REPORT_P_QUARANTINE] = "quarantine",
    [DMARC_REPORT_P_REJECT] = "reject",
    [DMARC_REPORT_P_OTHER] = "other",
};

const char *
dmarc_report_result_name(enum dmarc_report_result r)
{
	return (size_t)r < sizeof(result_names) / sizeof(result_names[0])
	           ? result_names[r]
	           : "other";
}

const char *
dmarc_report_policy_name(enum dmarc_report_policy p)
{
	return (size_t)p < sizeof(policy_names) / sizeof(policy_names[0])
	           ? policy_names[p]
	           : "other";
}

static enum dmarc_report_result
parse_result(const char *s)
{
	static const struct {
		const char *name;
		enum dmarc_report_result r;
	} map[] = {
	    {"none", DMARC_REPORT_R_NONE},
	    {"pass", DMARC_REPORT_R_PASS},
	    {"fail", DMARC_REPORT_R_FAIL},
	    {"hardfail", DMARC_REPORT_R_FAIL},
	    {"softfail", DMARC_REPORT_R_SOFTFAIL},
	    {"neutral", DMARC_REPORT_R_NEUTRAL},
	    {"policy", DMARC_REPORT_R_POLICY},
	    {"temperror", DMARC_REPORT_R_TEMPERROR},
	    {"permerror", DMARC_REPORT_R_PERMERROR},
	};

	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (strcasecmp(s, map[i].name) == 0)
			return map[i].r;
	return DMARC_REPORT_R_OTHER;
}

static enum dmarc_report_policy
parse_policy(const char *s)
{
	for (int p = DMARC_REPORT_P_NONE; p <= DMARC_REPORT_P_REJECT; p++)
		if (strcasecmp(s, policy_names[p]) == 0)
			return (enum dmarc_report_policy)p;
	return DMARC_REPORT_P_OTHER;
}

static enum dmarc_report_align
parse_align(const char *s)
{
	if (strcasecmp(s, "r") == 0 || strcasecmp(s, "relaxed") == 0)
		return DMARC_REPORT_A_RELAXED;
	if (strcasecmp(s, "s") == 0 || strcasecmp(s, "strict") == 0)
		return DMARC_REPORT_A_STRICT;
	return DMARC_REPORT_A_MISSING;
}

static unsigned int
parse_reason(const char *s)
{
	static const struct {
		const char *name;
		unsigned int bit;
	} map[] = {
	    {"forwarded", DMARC_REPORT_REASON_FORWARDED},
	    {"sampled_out", DMARC_REPORT_REASON_SAMPLED_OUT},
	    {"trusted_forwarder", DMARC_REPORT_REASON_TRUSTED_FORWARDER},
	    {"mailing_list", DMARC_REPORT_REASON_MAILING_LIST},
	    {"local_policy", DMARC_REPORT_REASON_LOCAL_POLICY},
	};

	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (strcasecmp(s, map[i].name) == 0)
			return map[i].bit;
	return DMARC_REPORT_REASON_OTHER;
}

/* Decimal digits only, at most max. */
static bool
parse_uint(const char *s, uint64_t max, uint64_t *v_r)
{
	uint64_t v = 0;

	if (*s == '\0')
		return false;
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9')
			return false;
		if (v > (max - (uint64_t)(*s - '0')) / 10)
			return false;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	*v_r = v;
	return true;
}

static int
el_cmp(const void *key, const void *elem)
{
	return strcmp(key, ((const struct el_name *)elem)->name);
}

static enum el
el_lookup(const char *name)
{
	const struct el_name *e =
	    bsearch(name, el_names, sizeof(el_names) / sizeof(el_names[0]),
	            sizeof(el_names[0]), el_cmp);

	return e != NULL ? e->el : EL_OTHER;
}

/* The field the current path names, or F_NONE. */
static enum field
path_field(const struct parse *ps)
{
	if (ps->depth > PATH_MAX_LEN || ps->depth == 0 ||
	    ps->path[ps->depth - 1] == EL_OTHER)
		return F_NONE;
	for (size_t i = 0; i < sizeof(rules) / sizeof(rules[0]); i++)
		if (rules[i].len == ps->depth &&
		    memcmp(rules[i].path, ps->path, ps->depth) == 0)
			return rules[i].field;
	return F_NONE;
}

/* ------------------------------------------------------------ the parse */

static int parse_fail(struct parse *ps, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int
parse_fail(struct parse *ps, const char *fmt, ...)
{
	va_list ap;
	char *what;

	va_start(ap, fmt);
	what = xvasprintf(fmt, ap);
	va_end(ap);
	free(ps->error);
	ps->error = xasprintf("line %zu: %s", dmarc_xml_line(&ps->x), what);
	free(what);
	return -1;
}

/* The element's text with XML white space trimmed, pooled; NULL (after
 * parse_fail) when longer than DMARC_REPORT_VALUE_MAX. */
static const char *
value(struct parse *ps)
{
	const char *s = buf_cstr(&ps->x.text);
	size_t len = ps->x.text.len;

	while (len > 0 && strchr(" \t\r\n", s[0]) != NULL) {
		s++;
		len--;
	}
	while (len > 0 && strchr(" \t\r\n", s[len - 1]) != NULL)
		len--;
	if (len > DMARC_REPORT_VALUE_MAX) {
		parse_fail(ps, "<%s> is longer than %d bytes", ps->x.name,
		           DMARC_REPORT_VALUE_MAX);
		return NULL;
	}
	return header_pool_strndup(&ps->priv->pool, s, len);
}

/* A domain value: ASCII lower case, no final dot. */
static const char *
domain_value(struct parse *ps)
{
	char *s = (char *)value(ps);
	size_t len;

	if (s == NULL)
		return NULL;
	for (char *c = s; *c != '\0'; c++)
		if (*c >= 'A' && *c <= 'Z')
			*c = (char)(*c - 'A' + 'a');
	len = strlen(s);
	if (len > 0 && s[len - 1] == '.')
		s[len - 1] = '\0';
	return s;
}

/* Keep the first of repeated elements. */
static void
set_once(const char **slot, const char *v)
{
	if (*slot == NULL)
		*slot = v;
}

static int
record_start(struct parse *ps)
{
	struct dmarc_feedback_private *priv = ps->priv;

	if (priv->nrecords == DMARC_REPORT_RECORDS_MAX)
		return parse_fail(ps, "more than %d records",
		                  DMARC_REPORT_RECORDS_MAX);
	memset(&ps->rec, 0, sizeof(ps->rec));
	ps->off.dkim = priv->ndkim;
	ps->off.spf = priv->nspf;
	ps->in_record = true;
	ps->have_count = false;
	ps->dkim = NULL;
	ps->spf = NULL;
	return 0;
}

static int
record_end(struct parse *ps)
{
	struct dmarc_feedback_private *priv = ps->priv;
	struct dmarc_feedback *fb = ps->fb;

	if (ps->rec.source_ip == NULL)
		return parse_fail(ps, "record %zu has no <source_ip>",
		                  priv->nrecords + 1);
	if (!ps->have_count)
		return parse_fail(ps, "record %zu has no <count>",
		                  priv->nrecords + 1);
	if (priv->nrecords == priv->cap_records) {
		priv->cap_records =
		    priv->cap_records == 0 ? 16 : priv->cap_records * 2;
		priv->records = xreallocarray(priv->records, priv->cap_records,
		                              sizeof(priv->records[0]));
		priv->offsets = xreallocarray(priv->offsets, priv->cap_records,
		                              sizeof(priv->offsets[0]));
	}
	priv->records[priv->nrecords] = ps->rec;
	priv->offsets[priv->nrecords] = ps->off;
	priv->nrecords++;
	fb->messages = fb->messages + ps->rec.count < fb->messages
	                   ? UINT64_MAX
	                   : fb->messages + ps->rec.count;
	ps->in_record = false;
	ps->dkim = NULL;
	ps->spf = NULL;
	return 0;
}

static void
dkim_start(struct parse *ps)
{
	struct dmarc_feedback_private *priv = ps->priv;

	ps->dkim = NULL;
	if (!ps->in_record || ps->rec.ndkim == DMARC_REPORT_AUTH_MAX)
		return;
	if (priv->ndkim == priv->cap_dkim) {
		priv->cap_dkim = priv->cap_dkim == 0 ? 16 : priv->cap_dkim * 2;
		priv->dkim = xreallocarray(priv->dkim, priv->cap_dkim,
		                           sizeof(priv->dkim[0]));
	}
	ps->dkim = &priv->dkim[priv->ndkim++];
	memset(ps->dkim, 0, sizeof(*ps->dkim));
	ps->rec.ndkim++;
}

static void
spf_start(struct parse *ps)
{
	struct dmarc_feedback_private *priv = ps->priv;

	ps->spf = NULL;
	if (!ps->in_record || ps->rec.nspf == DMARC_REPORT_AUTH_MAX)
		return;
	if (priv->nspf == priv->cap_spf) {
		priv->cap_spf = priv->cap_spf == 0 ? 16 : priv->cap_spf * 2;
		priv->spf = xreallocarray(priv->spf, priv->cap_spf,
		                          sizeof(priv->spf[0]));
	}
	ps->spf = &priv->spf[priv->nspf++];
	memset(ps->spf, 0, sizeof(*ps->spf));
	ps->rec.nspf++;
}

static int
source_ip(struct parse *ps)
{
	unsigned char addr[16];
	char text[INET6_ADDRSTRLEN];
	const char *v = value(ps);
	int af;

	if (v == NULL)
		return -1;
	if (ps->rec.source_ip != NULL)
		return 0;
	af = strchr(v, ':') != NULL ? AF_INET6 : AF_INET;
	if (inet_pton(af, v, addr) != 1 ||
	    inet_ntop(af, addr, text, sizeof(text)) == NULL)
		return parse_fail(ps,
		                  "record %zu: <source_ip> is not an IP "
		                  "address",
		                  ps->priv->nrecords + 1);
	ps->rec.source_ip =
	    header_pool_strndup(&ps->priv->pool, text, strlen(text));
	return 0;
}

static int
date_value(struct parse *ps, int64_t *t_r, bool *have_r)
{
	const char *v = value(ps);
	uint64_t t;

	if (v == NULL)
		return -1;
	if (*have_r)
		return 0;
	if (!parse_uint(v, INT64_MAX, &t))
		return parse_fail(ps, "<%s> is not a time in seconds",
		                  ps->x.name);
	*t_r = (int64_t)t;
	*have_r = true;
	return 0;
}

/* An element that ended at a known path. */
static int
field_end(struct parse *ps, enum field f)
{
	struct dmarc_feedback *fb = ps->fb;
	const char *v = NULL;
	uint64_t n;

	switch (f) {
	case F_RECORD:
		return record_end(ps);
	case F_DKIM:
		ps->dkim = NULL;
		return 0;
	case F_SPF:
		ps->spf = NULL;
		return 0;
	case F_SOURCE_IP:
		return source_ip(ps);
	case F_BEGIN:
		return date_value(ps, &fb->begin, &ps->have_begin);
	case F_END:
		return date_value(ps, &fb->end, &ps->have_end);
	case F_ERROR:
		fb->nerrors++;
		return 0;
	case F_NONE:
		return 0;
	default:
		break;
	}
	switch (f) {
	case F_DOMAIN:
	case F_HEADER_FROM:
	case F_ENVELOPE_FROM:
	case F_ENVELOPE_TO:
	case F_DKIM_DOMAIN:
	case F_SPF_DOMAIN:
		v = domain_value(ps);
		break;
	default:
		v = value(ps);
		break;
	}
	if (v == NULL)
		return -1;
	switch (f) {
	case F_ORG_NAME:
		set_once(&fb->org_name, v);
		break;
	case F_EMAIL:
		set_once(&fb->email, v);
		break;
	case F_EXTRA_CONTACT_INFO:
		set_once(&fb->extra_contact_info, v);
		break;
	case F_REPORT_ID:
		set_once(&fb->report_id, v);
		break;
	case F_DOMAIN:
		set_once(&fb->domain, v);
		break;
	case F_ADKIM:
		if (fb->adkim == DMARC_REPORT_A_MISSING)
			fb->adkim = parse_align(v);
		break;
	case F_ASPF:
		if (fb->aspf == DMARC_REPORT_A_MISSING)
			fb->aspf = parse_align(v);
		break;
	case F_P:
		if (fb->p == DMARC_REPORT_P_MISSING)
			fb->p = parse_policy(v);
		break;
	case F_SP:
		if (fb->sp == DMARC_REPORT_P_MISSING)
			fb->sp = parse_policy(v);
		break;
	case F_PCT:
		if (fb->pct < 0 && parse_uint(v, 100, &n))
			fb->pct = (int)n;
		break;
	case F_FO:
		set_once(&fb->fo, v);
		break;
	case F_COUNT:
		if (ps->have_count)
			break;
		if (!parse_uint(v, UINT64_MAX, &n))
			return parse_fail(ps,
			                  "record %zu: <count> is not a "
			                  "number",
			                  ps->priv->nrecords + 1);
		ps->rec.count = n;
		ps->have_count = true;
		break;
	case F_DISPOSITION:
		if (ps->rec.disposition == DMARC_REPORT_P_MISSING)
			ps->rec.disposition = parse_policy(v);
		break;
	case F_EVAL_DKIM:
		if (ps->rec.dkim == DMARC_REPORT_R_MISSING)
			ps->rec.dkim = parse_result(v);
		break;
	case F_EVAL_SPF:
		if (ps->rec.spf == DMARC_REPORT_R_MISSING)
			ps->rec.spf = parse_result(v);
		break;
	case F_REASON_TYPE:
		ps->rec.reasons |= parse_reason(v);
		break;
	case F_HEADER_FROM:
		set_once(&ps->rec.header_from, v);
		break;
	case F_ENVELOPE_FROM:
		set_once(&ps->rec.envelope_from, v);
		break;
	case F_ENVELOPE_TO:
		set_once(&ps->rec.envelope_to, v);
		break;
	case F_DKIM_DOMAIN:
		if (ps->dkim != NULL)
			set_once(&ps->dkim->domain, v);
		break;
	case F_DKIM_SELECTOR:
		if (ps->dkim != NULL)
			set_once(&ps->dkim->selector, v);
		break;
	case F_DKIM_RESULT:
		if (ps->dkim != NULL &&
		    ps->dkim->result == DMARC_REPORT_R_MISSING)
			ps->dkim->result = parse_result(v);
		break;
	case F_SPF_DOMAIN:
		if (ps->spf != NULL)
			set_once(&ps->spf->domain, v);
		break;
	case F_SPF_SCOPE:
		if (ps->spf != NULL)
			set_once(&ps->spf->scope, v);
		break;
	case F_SPF_RESULT:
		if (ps->spf != NULL &&
		    ps->spf->result == DMARC_REPORT_R_MISSING)
			ps->spf->result = parse_result(v);
		break;
	default:
		break;
	}
	return 0;
}

static int
element_start(struct parse *ps)
{
	enum el el = el_lookup(ps->x.name);

	if (ps->depth == 0 && el != EL_FEEDBACK)
		return parse_fail(ps,
		                  "not a DMARC aggregate report: the root "
		                  "element is <%s>, not <feedback>",
		                  ps->x.name[0] != '\0' ? ps->x.name : "?");
	/* The reader bounds the depth the same way. */
	if (ps->depth == DMARC_REPORT_DEPTH_MAX)
		return parse_fail(ps, "elements nested too deep");
	ps->path[ps->depth++] = (unsigned char)el;
	switch (path_field(ps)) {
	case F_RECORD:
		return record_start(ps);
	case F_DKIM:
		dkim_start(ps);
		break;
	case F_SPF:
		spf_start(ps);
		break;
	default:
		break;
	}
	return 0;
}

static int
element_end(struct parse *ps)
{
	int rc = field_end(ps, path_field(ps));

	ps->depth--;
	return rc;
}

/* The pointers into the shared arrays, once they stop moving. */
static void
finish(struct parse *ps)
{
	struct dmarc_feedback_private *priv = ps->priv;

	for (size_t i = 0; i < priv->nrecords; i++) {
		struct dmarc_feedback_record *r = &priv->records[i];

		r->dkim_results =
		    r->ndkim > 0 ? priv->dkim + priv->offsets[i].dkim : NULL;
		r->spf_results =
		    r->nspf > 0 ? priv->spf + priv->offsets[i].spf : NULL;
	}
	ps->fb->records = priv->records;
	ps->fb->nrecords = priv->nrecords;
}

static int
check_required(struct parse *ps)
{
	const struct dmarc_feedback *fb = ps->fb;

	if (fb->report_id == NULL || fb->report_id[0] == '\0')
		return parse_fail(ps, "no <report_id> in <report_metadata>");
	if (!ps->have_begin || !ps->have_end)
		return parse_fail(ps, "no <date_range> with <begin> and <end> "
		                      "in <report_metadata>");
	if (fb->domain == NULL || fb->domain[0] == '\0')
		return parse_fail(ps, "no <domain> in <policy_published>");
	return 0;
}

int
dmarc_report_parse(const void *xml, size_t len,
                   struct dmarc_feedback **feedback_r, char **error_r)
{
	struct parse ps;
	int rc = -1;

	*feedback_r = NULL;
	*error_r = NULL;
	memset(&ps, 0, sizeof(ps));
	ps.fb = xcalloc(1, sizeof(*ps.fb));
	ps.priv = xcalloc(1, sizeof(*ps.priv));
	ps.fb->priv = ps.priv;
	ps.fb->pct = -1;
	dmarc_xml_init(&ps.x, xml, len);
	for (;;) {
		enum dmarc_xml_event ev = dmarc_xml_next(&ps.x);

		if (ev == DMARC_XML_ERROR) {
			ps.error = xstrdup(ps.x.error);
			break;
		}
		if (ev == DMARC_XML_DONE) {
			rc = check_required(&ps);
			break;
		}
		if ((ev == DMARC_XML_START ? element_start(&ps)
		                           : element_end(&ps)) < 0)
			break;
	}
	dmarc_xml_clear(&ps.x);
	finish(&ps);
	if (rc < 0) {
		dmarc_report_free(&ps.fb);
		*error_r = ps.error;
		return -1;
	}
	*feedback_r = ps.fb;
	return 0;
}

void
dmarc_report_free(struct dmarc_feedback **feedback)
{
	struct dmarc_feedback_private *priv;

	if (*feedback == NULL)
		return;
	priv = (*feedback)->priv;
	header_pool_clear(&priv->pool);
	free(priv->records);
	free(priv->offsets);
	free(priv->dkim);
	free(priv->spf);
	free(priv);
	xfree(feedback);
}
