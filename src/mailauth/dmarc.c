/* DMARC (RFC 7489): record parsing (§6.3, §6.4), policy discovery (§6.6.3),
 * the From domains (§6.6.1), identifier alignment (§3.1), the disposition
 * with pct sampling (§6.6.4) and the Authentication-Results resinfo.
 * SECURITY: records and header fields are parsed in place with explicit
 * lengths, copied only into fixed-size fields, and every name that reaches
 * a DNS query or a header field has been normalized to [a-z0-9_-.]. */
#include "mailauth/dmarc.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/xmalloc.h"
#include "mail/header.h"

/* A From field longer than this is not parsed (RFC 5322 lines are 998). */
#define DMARC_FROM_FIELD_MAX 16384

struct span {
	const char *p;
	size_t n;
};

static bool
is_fws(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static bool
is_alpha(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static char
lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c + 32) : c;
}

static struct span
trim(const char *p, size_t n)
{
	while (n > 0 && is_fws(p[0])) {
		p++;
		n--;
	}
	while (n > 0 && is_fws(p[n - 1]))
		n--;
	return (struct span){p, n};
}

/* ASCII case-insensitive comparison with a lower-case literal (tag names
 * and the values that are ABNF literals, RFC 5234 §2.3). */
static bool
span_is(struct span s, const char *lit)
{
	size_t n = strlen(lit);

	if (s.n != n)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (lower(s.p[i]) != lit[i])
			return false;
	}
	return true;
}

/* The next element of a list separated by sep, trimmed; false at the
 * end. *pos walks through whole. */
static bool
next_item(struct span whole, size_t *pos, char sep, struct span *item_r)
{
	const char *p, *e;
	size_t n;

	if (*pos > whole.n)
		return false;
	p = whole.p + *pos;
	n = whole.n - *pos;
	e = memchr(p, sep, n);
	if (e != NULL)
		n = (size_t)(e - p);
	*pos += n + 1;
	*item_r = trim(p, n);
	return true;
}

static void
copy_str(char *dst, size_t size, const char *src)
{
	size_t n = strnlen(src, size - 1);

	memcpy(dst, src, n);
	dst[n] = '\0';
}

static void set_problem(char problem[DMARC_PROBLEM_MAX], const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
set_problem(char problem[DMARC_PROBLEM_MAX], const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(problem, DMARC_PROBLEM_MAX, fmt, ap);
	va_end(ap);
	/* a diagnostic may be cut; only a failed format is dropped */
	if (n < 0)
		problem[0] = '\0';
}

/* ------------------------------------------------------------ records */

enum tag {
	TAG_P,
	TAG_SP,
	TAG_ADKIM,
	TAG_ASPF,
	TAG_PCT,
	TAG_RUA,
	TAG_RUF,
	TAG_FO,
	TAG_RF,
	TAG_RI,
	TAG_UNKNOWN,
};

static const char *const tag_names[TAG_UNKNOWN] = {
    [TAG_P] = "p",       [TAG_SP] = "sp",   [TAG_ADKIM] = "adkim",
    [TAG_ASPF] = "aspf", [TAG_PCT] = "pct", [TAG_RUA] = "rua",
    [TAG_RUF] = "ruf",   [TAG_FO] = "fo",   [TAG_RF] = "rf",
    [TAG_RI] = "ri",
};

static enum tag
tag_lookup(struct span name)
{
	for (int t = 0; t < TAG_UNKNOWN; t++) {
		if (span_is(name, tag_names[t]))
			return (enum tag)t;
	}
	return TAG_UNKNOWN;
}

/* tag-name = ALPHA *ALNUMPUNC (RFC 6376 §3.2, ALNUMPUNC adds '_'). */
static bool
tag_name_valid(struct span s)
{
	if (s.n == 0 || !is_alpha(s.p[0]))
		return false;
	for (size_t i = 1; i < s.n; i++) {
		if (!is_alpha(s.p[i]) && !is_digit(s.p[i]) && s.p[i] != '_')
			return false;
	}
	return true;
}

/* Split "name = value" (trimmed). false without '='. */
static bool
split_tag(struct span spec, struct span *name_r, struct span *value_r)
{
	const char *eq = memchr(spec.p, '=', spec.n);

	if (eq == NULL)
		return false;
	*name_r = trim(spec.p, (size_t)(eq - spec.p));
	*value_r = trim(eq + 1, spec.n - (size_t)(eq + 1 - spec.p));
	return true;
}

bool
dmarc_record_is_dmarc(const char *txt, size_t len)
{
	const char *semi = memchr(txt, ';', len);
	struct span spec = trim(txt, semi != NULL ? (size_t)(semi - txt) : len);
	struct span name, value;

	/* "The value of this tag MUST match precisely" (§6.3): DMARC1 is
	 * case-sensitive, the tag name is not. */
	return split_tag(spec, &name, &value) && span_is(name, "v") &&
	       value.n == 6 && memcmp(value.p, "DMARC1", 6) == 0;
}

static bool
parse_policy(struct span v, enum dmarc_policy *policy_r)
{
	if (span_is(v, "none"))
		*policy_r = DMARC_POLICY_NONE;
	else if (span_is(v, "quarantine"))
		*policy_r = DMARC_POLICY_QUARANTINE;
	else if (span_is(v, "reject"))
		*policy_r = DMARC_POLICY_REJECT;
	else
		return false;
	return true;
}

static bool
parse_align(struct span v, enum dmarc_align *align_r)
{
	if (span_is(v, "r"))
		*align_r = DMARC_ALIGN_RELAXED;
	else if (span_is(v, "s"))
		*align_r = DMARC_ALIGN_STRICT;
	else
		return false;
	return true;
}

/* 1*DIGIT up to max. */
static bool
parse_uint(struct span v, uint64_t max, uint64_t *value_r)
{
	uint64_t x = 0;

	if (v.n == 0)
		return false;
	for (size_t i = 0; i < v.n; i++) {
		if (!is_digit(v.p[i]))
			return false;
		x = x * 10 + (uint64_t)(v.p[i] - '0');
		if (x > max)
			return false;
	}
	*value_r = x;
	return true;
}

/* fo = ("0" / "1" / "d" / "s") *(":" ...); any bad option voids the tag. */
static bool
parse_fo(struct span v, unsigned int *fo_r)
{
	unsigned int fo = 0;
	struct span opt;
	size_t pos = 0;

	while (next_item(v, &pos, ':', &opt)) {
		if (span_is(opt, "0"))
			fo |= DMARC_FO_0;
		else if (span_is(opt, "1"))
			fo |= DMARC_FO_1;
		else if (span_is(opt, "d"))
			fo |= DMARC_FO_D;
		else if (span_is(opt, "s"))
			fo |= DMARC_FO_S;
		else
			return false;
	}
	*fo_r = fo;
	return true;
}

/* rf = Keyword *(":" Keyword); formats other than afrf are not ours. */
static bool
parse_rf(struct span v, unsigned int *rf_r)
{
	unsigned int rf = 0;
	struct span kw;
	size_t pos = 0;

	while (next_item(v, &pos, ':', &kw)) {
		if (kw.n == 0 || !is_alpha(kw.p[0]))
			return false;
		for (size_t i = 1; i < kw.n; i++) {
			if (!is_alpha(kw.p[i]) && !is_digit(kw.p[i]) &&
			    kw.p[i] != '-')
				return false;
		}
		if (span_is(kw, "afrf"))
			rf |= DMARC_RF_AFRF;
	}
	*rf_r = rf;
	return true;
}

/* dmarc-uri = URI [ "!" 1*DIGIT [ "k" / "m" / "g" / "t" ] ] (§6.4): a
 * scheme, ':', visible ASCII, no literal '!' or ',' (they must be
 * percent-encoded), and the optional size limit in bytes. */
static bool
parse_uri(struct span v, struct dmarc_uri *uri_r)
{
	const char *bang = NULL;
	uint64_t size = 0, unit = 1;
	size_t n = v.n, i;

	for (i = 0; i < v.n; i++) {
		if (v.p[i] == '!')
			bang = v.p + i;
	}
	if (bang != NULL) {
		struct span num = {bang + 1, (size_t)(v.p + v.n - bang - 1)};

		n = (size_t)(bang - v.p);
		if (num.n > 0 && is_alpha(num.p[num.n - 1])) {
			switch (lower(num.p[num.n - 1])) {
			case 'k':
				unit = UINT64_C(1) << 10;
				break;
			case 'm':
				unit = UINT64_C(1) << 20;
				break;
			case 'g':
				unit = UINT64_C(1) << 30;
				break;
			case 't':
				unit = UINT64_C(1) << 40;
				break;
			default:
				return false;
			}
			num.n--;
		}
		if (!parse_uint(num, UINT64_MAX / unit, &size))
			return false;
		size *= unit;
	}
	if (n == 0 || n > DMARC_URI_MAX || !is_alpha(v.p[0]))
		return false;
	for (i = 1; i < n && v.p[i] != ':'; i++) {
		char c = v.p[i];

		if (!is_alpha(c) && !is_digit(c) && c != '+' && c != '-' &&
		    c != '.')
			return false;
	}
	if (i + 1 >= n) /* no ':' or nothing after it */
		return false;
	for (; i < n; i++) {
		unsigned char c = (unsigned char)v.p[i];

		if (c <= 0x20 || c >= 0x7f || c == '!')
			return false;
	}
	memcpy(uri_r->uri, v.p, n);
	uri_r->uri[n] = '\0';
	uri_r->size_max = size;
	return true;
}

static void
parse_urilist(struct span v, struct dmarc_uri *uris, size_t *n_r,
              unsigned int *ignored)
{
	struct span item;
	size_t pos = 0;

	while (next_item(v, &pos, ',', &item)) {
		if (*n_r < DMARC_URIS_MAX && parse_uri(item, &uris[*n_r]))
			(*n_r)++;
		else
			(*ignored)++;
	}
}

/* One known tag; false when its value is unusable (§6.3: "discarded in
 * favor of default values"). */
static bool
record_tag(struct dmarc_record *rec, enum tag tag, struct span v, bool *sp_bad)
{
	uint64_t x;

	switch (tag) {
	case TAG_P:
		return parse_policy(v, &rec->p);
	case TAG_SP:
		rec->sp_given = parse_policy(v, &rec->sp);
		*sp_bad = !rec->sp_given;
		return rec->sp_given;
	case TAG_ADKIM:
		return parse_align(v, &rec->adkim);
	case TAG_ASPF:
		return parse_align(v, &rec->aspf);
	case TAG_PCT:
		if (!parse_uint(v, 100, &x))
			return false;
		rec->pct = (unsigned int)x;
		return true;
	case TAG_RI:
		if (!parse_uint(v, UINT32_MAX, &x))
			return false;
		rec->ri = (uint32_t)x;
		return true;
	case TAG_FO:
		return parse_fo(v, &rec->fo);
	case TAG_RF:
		return parse_rf(v, &rec->rf);
	case TAG_RUA:
		parse_urilist(v, rec->rua, &rec->nrua, &rec->ignored);
		return true;
	case TAG_RUF:
		parse_urilist(v, rec->ruf, &rec->nruf, &rec->ignored);
		return true;
	case TAG_UNKNOWN:
		break;
	}
	return false;
}

int
dmarc_record_parse(const char *txt, size_t len, struct dmarc_record *rec,
                   const char **error_r)
{
	struct span whole = {txt, len}, spec, name, value;
	unsigned int seen = 0;
	bool p_ok = false, sp_bad = false;
	size_t pos = 0;

	memset(rec, 0, sizeof(*rec));
	rec->adkim = rec->aspf = DMARC_ALIGN_RELAXED;
	rec->pct = 100;
	rec->fo = DMARC_FO_0;
	rec->rf = DMARC_RF_AFRF;
	rec->ri = DMARC_RI_DEFAULT;
	if (!dmarc_record_is_dmarc(txt, len)) {
		*error_r = "not a DMARC record (v=DMARC1 first)";
		return -1;
	}
	(void)next_item(whole, &pos, ';', &spec); /* v=DMARC1 */
	while (next_item(whole, &pos, ';', &spec)) {
		enum tag tag;

		if (spec.n == 0) /* ";;" or the final ";" */
			continue;
		if (!split_tag(spec, &name, &value) || !tag_name_valid(name) ||
		    (tag = tag_lookup(name)) == TAG_UNKNOWN ||
		    (seen & (1u << tag)) != 0) {
			/* unknown tags MUST be ignored; a repeated tag or a
			 * broken tag-spec is ignored too, the first wins */
			rec->ignored++;
			continue;
		}
		seen |= 1u << tag;
		if (!record_tag(rec, tag, value, &sp_bad)) {
			rec->ignored++;
			continue;
		}
		if (tag == TAG_P)
			p_ok = true;
	}
	if (!p_ok || sp_bad) {
		/* §6.6.3: act as if "v=DMARC1; p=none" when rua= has a
		 * valid URI, else no DMARC processing */
		if (rec->nrua == 0) {
			*error_r =
			    !p_ok ? "no valid p= tag" : "invalid sp= tag";
			return -1;
		}
		rec->p_fallback = true;
		rec->p = DMARC_POLICY_NONE;
		rec->sp_given = false;
	}
	if (!rec->sp_given)
		rec->sp = rec->p;
	return 0;
}

/* --------------------------------------------------------- From domains */

static void
add_domain(const char *domain, char domains[][DMARC_DOMAIN_MAX + 1], size_t *n,
           bool *bad, bool *too_many)
{
	char norm[PSL_NAME_MAX + 1];

	if (psl_domain_normalize(domain, strnlen(domain, PSL_INPUT_MAX + 1),
	                         norm, sizeof(norm)) < 0) {
		*bad = true;
		return;
	}
	for (size_t i = 0; i < *n; i++) {
		if (strcmp(domains[i], norm) == 0)
			return;
	}
	if (*n == DMARC_FROM_DOMAINS_MAX) {
		*too_many = true;
		return;
	}
	memcpy(domains[(*n)++], norm, strlen(norm) + 1);
}

size_t
dmarc_from_domains(const char *msg, size_t len,
                   char domains_r[][DMARC_DOMAIN_MAX + 1], bool *invalid_r,
                   const char **problem_r)
{
	struct header_address_list list = {0};
	struct header_iter it;
	struct header_field f;
	struct buf value;
	size_t nfields = 0, nfrom = 0, n = 0;
	bool bad = false, too_many = false, too_long = false;

	*invalid_r = false;
	*problem_r = NULL;
	buf_init(&value, DMARC_FROM_FIELD_MAX);
	header_iter_init(&it, msg, len);
	while (header_iter_next(&it, &f)) {
		if (++nfields > DMARC_HEADER_FIELDS_MAX) {
			/* a From further down could change the answer */
			*problem_r = "too many header fields";
			break;
		}
		if (!header_field_is(&f, "From"))
			continue;
		nfrom++;
		if (f.value_len > DMARC_FROM_FIELD_MAX) {
			too_long = true;
			continue;
		}
		buf_reset(&value);
		header_field_unfold(&f, &value);
		header_address_parse(&list, (const char *)value.data, value.len,
		                     DMARC_FROM_ADDRESSES_MAX);
	}
	buf_free(&value);
	for (size_t i = 0; i < list.n; i++) {
		const struct header_address *a = &list.v[i];

		if (a->domain == NULL) /* the start or end of a group */
			continue;
		if (a->invalid)
			bad = true;
		else
			add_domain(a->domain, domains_r, &n, &bad, &too_many);
	}
	header_address_list_clear(&list);

	if (*problem_r != NULL)
		n = 0;
	else if (too_many) {
		n = 0;
		*problem_r = "too many From domains";
	} else if (nfrom == 0)
		*problem_r = "no From field";
	else if (n == 0)
		*problem_r = too_long ? "From field too long"
		                      : "no usable address in From";
	else if (nfrom > 1)
		*problem_r = "several From fields";
	else if (bad || too_long)
		*problem_r = "an unusable address in From";
	*invalid_r = *problem_r != NULL;
	return n;
}

/* ------------------------------------------------------------ alignment */

/* §3.2 with the PSL; a name that is itself a public suffix is its own
 * organizational domain. -1 when name does not normalize. */
static int
org_domain(const struct psl *psl, const char *name,
           char out[DMARC_DOMAIN_MAX + 1])
{
	return psl_registrable_domain(psl, name, out, DMARC_DOMAIN_MAX + 1) < 0
	           ? -1
	           : 0;
}

bool
dmarc_aligned(const struct psl *psl, const char *a, const char *b,
              enum dmarc_align mode)
{
	char na[PSL_NAME_MAX + 1], nb[PSL_NAME_MAX + 1];

	if (psl_domain_normalize(a, strnlen(a, PSL_INPUT_MAX + 1), na,
	                         sizeof(na)) < 0 ||
	    psl_domain_normalize(b, strnlen(b, PSL_INPUT_MAX + 1), nb,
	                         sizeof(nb)) < 0)
		return false;
	if (strcmp(na, nb) == 0)
		return true;
	if (mode == DMARC_ALIGN_STRICT || org_domain(psl, na, na) < 0 ||
	    org_domain(psl, nb, nb) < 0)
		return false;
	return strcmp(na, nb) == 0;
}

/* ------------------------------------------------------------ discovery */

enum found {
	FOUND_NONE,     /* no DMARC record */
	FOUND_RECORD,   /* exactly one, usable */
	FOUND_SEVERAL,  /* §6.6.3: terminate, DMARC does not apply */
	FOUND_UNUSABLE, /* one, but unusable: permerror */
	FOUND_TEMPFAIL,
};

static enum found
query_policy(const struct ma_dns *dns, const char *domain,
             struct dmarc_record *rec, char problem[DMARC_PROBLEM_MAX])
{
	struct ma_dns_answer ans;
	char name[DMARC_DOMAIN_MAX + 1];
	const char *rr = NULL, *error;
	enum found found = FOUND_NONE;
	size_t ndmarc = 0;
	int n;

	n = snprintf(name, sizeof(name), "_dmarc.%s", domain);
	if (n < 0 || (size_t)n >= sizeof(name)) {
		set_problem(problem, "_dmarc.%s is too long a name", domain);
		return FOUND_NONE;
	}
	memset(&ans, 0, sizeof(ans));
	if (dns->lookup(dns->arg, name, MA_DNS_TXT, &ans) < 0 ||
	    ans.status == MA_DNS_TEMPFAIL) {
		ma_dns_answer_clear(&ans);
		set_problem(problem, "DNS error looking up %s", name);
		return FOUND_TEMPFAIL;
	}
	if (ans.status == MA_DNS_OK) {
		for (size_t i = 0; i < ans.count && i < MA_DNS_RR_MAX; i++) {
			if (ans.rr[i] != NULL &&
			    dmarc_record_is_dmarc(ans.rr[i],
			                          strlen(ans.rr[i]))) {
				ndmarc++;
				rr = ans.rr[i];
			}
		}
	}
	if (ndmarc > 1) {
		set_problem(problem, "%zu DMARC records at %s", ndmarc, name);
		found = FOUND_SEVERAL;
	} else if (ndmarc == 1) {
		if (dmarc_record_parse(rr, strlen(rr), rec, &error) == 0)
			found = FOUND_RECORD;
		else {
			set_problem(problem, "%s: %s", name, error);
			found = FOUND_UNUSABLE;
		}
	} else
		set_problem(problem, "no DMARC record at %s", name);
	ma_dns_answer_clear(&ans);
	return found;
}

static void
report_auth_results(const struct dmarc_request *req,
                    struct dmarc_report_row *row)
{
	const struct spf_outcome *spf = req->spf;

	if (req->client_ip != NULL)
		copy_str(row->source_ip, sizeof(row->source_ip),
		         req->client_ip);
	else if (spf != NULL)
		copy_str(row->source_ip, sizeof(row->source_ip),
		         spf->client_ip);
	if (req->dkim != NULL) {
		for (size_t i = 0; i < req->dkim->count && i < DKIM_VERIFY_MAX;
		     i++) {
			const struct dkim_sig_result *s = &req->dkim->sig[i];

			copy_str(row->dkim[i].domain,
			         sizeof(row->dkim[i].domain), s->domain);
			for (char *p = row->dkim[i].domain; *p != '\0'; p++)
				*p = lower(*p);
			copy_str(row->dkim[i].selector,
			         sizeof(row->dkim[i].selector), s->selector);
			row->dkim[i].result = s->result;
			row->ndkim = i + 1;
		}
	}
	if (spf != NULL && spf->identity == SPF_IDENTITY_MAILFROM) {
		row->spf_checked = true;
		row->spf_result = spf->result;
		if (spf->domain != NULL) {
			copy_str(row->spf_domain, sizeof(row->spf_domain),
			         spf->domain);
			copy_str(row->envelope_from, sizeof(row->envelope_from),
			         spf->domain);
		}
	}
}

static void
evaluate_alignment(const struct dmarc_request *req,
                   struct dmarc_report_row *row)
{
	const struct dmarc_record *rec = &row->record;
	enum dmarc_align adkim =
	    row->record_found ? rec->adkim : DMARC_ALIGN_RELAXED;
	enum dmarc_align aspf =
	    row->record_found ? rec->aspf : DMARC_ALIGN_RELAXED;

	for (size_t i = 0; i < row->ndkim && !row->dkim_aligned; i++) {
		row->dkim_aligned = row->dkim[i].result == DKIM_PASS &&
		                    dmarc_aligned(req->psl, row->dkim[i].domain,
		                                  row->header_from, adkim);
	}
	row->spf_aligned =
	    row->spf_checked && row->spf_result == SPF_PASS &&
	    dmarc_aligned(req->psl, row->spf_domain, row->header_from, aspf);
}

static void
evaluate_domain(const struct ma_dns *dns, const struct dmarc_request *req,
                const char *from, struct dmarc_domain_result *dr)
{
	struct dmarc_report_row *row = &dr->report;
	enum found found;

	copy_str(row->header_from, sizeof(row->header_from), from);
	report_auth_results(req, row);
	if (org_domain(req->psl, from, dr->org_domain) < 0)
		copy_str(dr->org_domain, sizeof(dr->org_domain), from);

	copy_str(row->policy_domain, sizeof(row->policy_domain), from);
	found = query_policy(dns, from, &row->record, dr->problem);
	if (found == FOUND_NONE && strcmp(dr->org_domain, from) != 0) {
		copy_str(row->policy_domain, sizeof(row->policy_domain),
		         dr->org_domain);
		found = query_policy(dns, dr->org_domain, &row->record,
		                     dr->problem);
		dr->subdomain_policy = true;
	}
	row->record_found = found == FOUND_RECORD;
	if (!row->record_found) {
		memset(&row->record, 0, sizeof(row->record));
		row->policy_domain[0] = '\0';
		dr->subdomain_policy = false;
	}
	evaluate_alignment(req, row);

	switch (found) {
	case FOUND_NONE:
	case FOUND_SEVERAL:
		dr->result = DMARC_NONE;
		return;
	case FOUND_UNUSABLE:
		dr->result = DMARC_PERMERROR;
		return;
	case FOUND_TEMPFAIL:
		dr->result = DMARC_TEMPERROR;
		return;
	case FOUND_RECORD:
		break;
	}
	dr->problem[0] = '\0';
	dr->policy = dr->subdomain_policy ? row->record.sp : row->record.p;
	if (row->dkim_aligned || row->spf_aligned) {
		dr->result = DMARC_PASS;
		return;
	}
	dr->result = DMARC_FAIL;
	row->disposition = dr->policy;
	if (dr->policy != DMARC_POLICY_NONE &&
	    req->pct_sample % 100 >= row->record.pct) {
		/* not sampled: the next policy lower (§6.6.4) */
		row->disposition = (enum dmarc_policy)(dr->policy - 1);
		row->sampled_out = true;
	}
}

/* Worse results rank higher: the decisive domain is the worst. */
static int
result_rank(enum dmarc_result result)
{
	switch (result) {
	case DMARC_PASS:
		return 0;
	case DMARC_NONE:
		return 1;
	case DMARC_PERMERROR:
		return 2;
	case DMARC_TEMPERROR:
		return 3;
	case DMARC_FAIL:
		return 4;
	}
	return 4;
}

struct dmarc_outcome *
dmarc_evaluate(const struct ma_dns *dns, const struct dmarc_request *req)
{
	struct dmarc_outcome *o = xcalloc(1, sizeof(*o));
	char domains[DMARC_FROM_DOMAINS_MAX][DMARC_DOMAIN_MAX + 1];
	const char *problem;

	o->ndomains = dmarc_from_domains(req->msg, req->len, domains,
	                                 &o->from_invalid, &problem);
	if (problem != NULL)
		copy_str(o->problem, sizeof(o->problem), problem);
	if (o->ndomains == 0) {
		o->result = DMARC_PERMERROR;
		o->disposition = DMARC_POLICY_NONE;
		return o;
	}
	for (size_t i = 0; i < o->ndomains; i++) {
		const struct dmarc_domain_result *d = &o->domains[i];
		const struct dmarc_domain_result *best =
		    &o->domains[o->decisive];

		evaluate_domain(dns, req, domains[i], &o->domains[i]);
		if (result_rank(d->result) > result_rank(best->result) ||
		    (result_rank(d->result) == result_rank(best->result) &&
		     d->report.disposition > best->report.disposition))
			o->decisive = i;
	}
	o->result = o->domains[o->decisive].result;
	o->disposition = o->domains[o->decisive].report.disposition;
	return o;
}

void
dmarc_outcome_free(struct dmarc_outcome **outcome)
{
	xfree(outcome);
}

/* -------------------------------------------------------------- output */

const char *
dmarc_result_name(enum dmarc_result result)
{
	switch (result) {
	case DMARC_NONE:
		return "none";
	case DMARC_PASS:
		return "pass";
	case DMARC_FAIL:
		return "fail";
	case DMARC_TEMPERROR:
		return "temperror";
	case DMARC_PERMERROR:
		return "permerror";
	}
	return "permerror";
}

const char *
dmarc_policy_name(enum dmarc_policy policy)
{
	switch (policy) {
	case DMARC_POLICY_NONE:
		return "none";
	case DMARC_POLICY_QUARANTINE:
		return "quarantine";
	case DMARC_POLICY_REJECT:
		return "reject";
	}
	return "none";
}

int
dmarc_auth_results(const struct dmarc_outcome *o, struct buf *out)
{
	const struct dmarc_domain_result *d = &o->domains[o->decisive];
	const struct dmarc_report_row *row = &d->report;

	if (buf_printf(out, "dmarc=%s", dmarc_result_name(o->result)) < 0)
		return -1;
	if (o->ndomains == 0)
		return 0;
	if (row->record_found) {
		if (buf_printf(out, " (p=%s",
		               dmarc_policy_name(row->record.p)) < 0 ||
		    (row->record.sp_given &&
		     buf_printf(out, " sp=%s",
		                dmarc_policy_name(row->record.sp)) < 0) ||
		    buf_printf(out, " dis=%s)",
		               dmarc_policy_name(row->disposition)) < 0)
			return -1;
	}
	/* header_from went through psl_domain_normalize: [a-z0-9_-.] */
	return buf_printf(out, " header.from=%s", row->header_from);
}
