/* The summary `tern dmarc report` prints: DMARC aggregate reports added one
 * by one (a report sent twice counts once), grouped per policy domain and
 * per source IP with pass/fail counts and a verdict, printed as text or as
 * one JSON document.
 * SECURITY: every string comes from a report, so from anyone who can mail
 * us: JSON output escapes it (invalid UTF-8 as U+FFFD), text output shows
 * control characters as '?' and cuts long values; the names kept per
 * source are bounded (DMARC_SUMMARY_NAMES_MAX). */
#include "cli/dmarc_summary.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "cli/dirutil.h"
#include "core/xmalloc.h"

/* Names kept per source (From domains, DKIM and SPF domains, reporters). */
#define DMARC_SUMMARY_NAMES_MAX 8
/* Longest report id and reporter shown in the text table. */
#define DMARC_SUMMARY_CELL_MAX 32

/* ------------------------------------------------------------ string map */

/* Strings to indexes, open addressing (FNV-1a), for sources and the
 * reports already counted. */
struct strmap {
	char **keys;
	size_t *vals;
	size_t cap, n;
};

static uint64_t
strmap_hash(const char *s)
{
	uint64_t h = 1469598103934665603ull;

	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

/* The slot of key: where it is, or where it would go. */
static size_t
strmap_slot(const struct strmap *m, const char *key)
{
	size_t i = (size_t)strmap_hash(key) & (m->cap - 1);

	while (m->keys[i] != NULL && strcmp(m->keys[i], key) != 0)
		i = (i + 1) & (m->cap - 1);
	return i;
}

static bool
strmap_get(const struct strmap *m, const char *key, size_t *val_r)
{
	size_t i;

	if (m->cap == 0)
		return false;
	i = strmap_slot(m, key);
	if (m->keys[i] == NULL)
		return false;
	*val_r = m->vals[i];
	return true;
}

static void
strmap_put(struct strmap *m, const char *key, size_t val)
{
	size_t i;

	if ((m->n + 1) * 2 > m->cap) {
		struct strmap bigger = {0};

		bigger.cap = m->cap == 0 ? 64 : m->cap * 2;
		bigger.keys = xcalloc(bigger.cap, sizeof(bigger.keys[0]));
		bigger.vals = xcalloc(bigger.cap, sizeof(bigger.vals[0]));
		for (size_t j = 0; j < m->cap; j++) {
			if (m->keys[j] == NULL)
				continue;
			i = strmap_slot(&bigger, m->keys[j]);
			bigger.keys[i] = m->keys[j];
			bigger.vals[i] = m->vals[j];
		}
		bigger.n = m->n;
		free(m->keys);
		free(m->vals);
		*m = bigger;
	}
	i = strmap_slot(m, key);
	if (m->keys[i] == NULL) {
		m->keys[i] = xstrdup(key);
		m->n++;
	}
	m->vals[i] = val;
}

static void
strmap_free(struct strmap *m)
{
	for (size_t i = 0; i < m->cap; i++)
		free(m->keys[i]);
	free(m->keys);
	free(m->vals);
	memset(m, 0, sizeof(*m));
}

/* ------------------------------------------------------------ summary */

/* A few distinct names; more only sets the flag. */
struct names {
	char *v[DMARC_SUMMARY_NAMES_MAX];
	size_t n;
	bool more;
};

static void
names_add(struct names *s, const char *name)
{
	if (name == NULL || name[0] == '\0')
		return;
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->v[i], name) == 0)
			return;
	if (s->n == DMARC_SUMMARY_NAMES_MAX)
		s->more = true;
	else
		s->v[s->n++] = xstrdup(name);
}

static void
names_free(struct names *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i]);
	memset(s, 0, sizeof(*s));
}

enum disp { DISP_NONE, DISP_QUARANTINE, DISP_REJECT, DISP_OTHER, NDISP };

static const char *const disp_names[NDISP] = {"none", "quarantine", "reject",
                                              "other"};

enum verdict {
	VERDICT_AUTHORIZED, /* everything passed, aligned SPF included */
	VERDICT_FORWARDER,  /* passed by DKIM alone, or failed with a
	                       forwarding reason */
	VERDICT_MIXED,      /* some failed both */
	VERDICT_SUSPECT,    /* everything failed both: a spoofer? */
};

static const char *const verdict_json[] = {"authorized", "forwarder", "mixed",
                                           "suspect"};
static const char *const verdict_text[] = {"authorized", "forwarder", "mixed",
                                           "spoofer?"};

struct counts {
	uint64_t messages;
	uint64_t spf_pass, dkim_pass;       /* auth_results */
	uint64_t spf_aligned, dkim_aligned; /* policy_evaluated */
	uint64_t dmarc_pass, dkim_only, forwarded_fail;
	uint64_t disp[NDISP];
};

struct source {
	char *ip;
	struct counts c;
	struct names header_from, envelope_from, dkim_domains, spf_domains,
	    reporters;
};

struct report {
	char *org_name, *email, *report_id, *where;
	int64_t begin, end;
	enum dmarc_report_policy p, sp;
	enum dmarc_report_align adkim, aspf;
	int pct;
	size_t records;
	uint64_t messages;
};

struct domain {
	char *name;
	struct counts c;
	int64_t begin, end;
	struct report *reports;
	size_t nreports, cap_reports;
	struct source *sources;
	size_t nsources, cap_sources;
	struct strmap source_index;
};

struct problem {
	char *where;
	char *error;
};

struct dmarc_summary_private {
	struct domain *domains;
	size_t ndomains, cap_domains;
	struct strmap seen; /* reports counted: org, id, domain */
	struct problem *problems;
	size_t nproblems, cap_problems;
};

static uint64_t
add_sat(uint64_t a, uint64_t b)
{
	return a + b < a ? UINT64_MAX : a + b;
}

void
dmarc_summary_problem(struct dmarc_summary *s, const char *where,
                      const char *error)
{
	if (s->priv->nproblems == s->priv->cap_problems) {
		s->priv->cap_problems =
		    s->priv->cap_problems == 0 ? 8 : s->priv->cap_problems * 2;
		s->priv->problems =
		    xreallocarray(s->priv->problems, s->priv->cap_problems,
		                  sizeof(s->priv->problems[0]));
	}
	s->priv->problems[s->priv->nproblems].where = xstrdup(where);
	s->priv->problems[s->priv->nproblems].error = xstrdup(error);
	s->priv->nproblems++;
}

static struct domain *
domain_get(struct dmarc_summary *s, const char *name)
{
	struct domain *d;

	for (size_t i = 0; i < s->priv->ndomains; i++)
		if (strcmp(s->priv->domains[i].name, name) == 0)
			return &s->priv->domains[i];
	if (s->priv->ndomains == s->priv->cap_domains) {
		s->priv->cap_domains =
		    s->priv->cap_domains == 0 ? 4 : s->priv->cap_domains * 2;
		s->priv->domains =
		    xreallocarray(s->priv->domains, s->priv->cap_domains,
		                  sizeof(s->priv->domains[0]));
	}
	d = &s->priv->domains[s->priv->ndomains++];
	memset(d, 0, sizeof(*d));
	d->name = xstrdup(name);
	return d;
}

static struct source *
source_get(struct domain *d, const char *ip)
{
	struct source *src;
	size_t i;

	if (strmap_get(&d->source_index, ip, &i))
		return &d->sources[i];
	if (d->nsources == d->cap_sources) {
		d->cap_sources = d->cap_sources == 0 ? 16 : d->cap_sources * 2;
		d->sources = xreallocarray(d->sources, d->cap_sources,
		                           sizeof(d->sources[0]));
	}
	strmap_put(&d->source_index, ip, d->nsources);
	src = &d->sources[d->nsources++];
	memset(src, 0, sizeof(*src));
	src->ip = xstrdup(ip);
	return src;
}

static enum disp
disp_of(enum dmarc_report_policy p)
{
	switch (p) {
	case DMARC_REPORT_P_NONE:
		return DISP_NONE;
	case DMARC_REPORT_P_QUARANTINE:
		return DISP_QUARANTINE;
	case DMARC_REPORT_P_REJECT:
		return DISP_REJECT;
	default:
		return DISP_OTHER;
	}
}

static void
counts_add(struct counts *c, const struct dmarc_feedback_record *r)
{
	bool spf_pass = false, dkim_pass = false;
	bool spf_al = r->spf == DMARC_REPORT_R_PASS;
	bool dkim_al = r->dkim == DMARC_REPORT_R_PASS;
	uint64_t n = r->count;

	for (size_t i = 0; i < r->nspf; i++)
		spf_pass |= r->spf_results[i].result == DMARC_REPORT_R_PASS;
	for (size_t i = 0; i < r->ndkim; i++)
		dkim_pass |= r->dkim_results[i].result == DMARC_REPORT_R_PASS;
	c->messages = add_sat(c->messages, n);
	if (spf_pass)
		c->spf_pass = add_sat(c->spf_pass, n);
	if (dkim_pass)
		c->dkim_pass = add_sat(c->dkim_pass, n);
	if (spf_al)
		c->spf_aligned = add_sat(c->spf_aligned, n);
	if (dkim_al)
		c->dkim_aligned = add_sat(c->dkim_aligned, n);
	if (spf_al || dkim_al)
		c->dmarc_pass = add_sat(c->dmarc_pass, n);
	if (dkim_al && !spf_al)
		c->dkim_only = add_sat(c->dkim_only, n);
	if (!spf_al && !dkim_al &&
	    (r->reasons & (DMARC_REPORT_REASON_FORWARDED |
	                   DMARC_REPORT_REASON_TRUSTED_FORWARDER |
	                   DMARC_REPORT_REASON_MAILING_LIST)))
		c->forwarded_fail = add_sat(c->forwarded_fail, n);
	c->disp[disp_of(r->disposition)] =
	    add_sat(c->disp[disp_of(r->disposition)], n);
}

static enum verdict
verdict_of(const struct counts *c)
{
	uint64_t fail = c->messages - c->dmarc_pass;

	if (fail == 0)
		return c->messages > 0 && c->dkim_only == c->messages
		           ? VERDICT_FORWARDER
		           : VERDICT_AUTHORIZED;
	if (c->forwarded_fail == fail)
		return VERDICT_FORWARDER;
	return fail == c->messages ? VERDICT_SUSPECT : VERDICT_MIXED;
}

/* Does the report's domain fall under the filter (itself or below)? */
static bool
domain_matches(const char *domain, const char *filter)
{
	size_t dl = strlen(domain), fl = strlen(filter);

	if (dl == fl)
		return strcmp(domain, filter) == 0;
	return dl > fl && domain[dl - fl - 1] == '.' &&
	       strcmp(domain + dl - fl, filter) == 0;
}

void
dmarc_summary_add(struct dmarc_summary *s, const struct dmarc_feedback *fb,
                  const char *where)
{
	const char *org = fb->org_name != NULL ? fb->org_name
	                  : fb->email != NULL  ? fb->email
	                                       : "";
	char *key;
	struct domain *d;
	struct report *rep;
	size_t dummy;

	if (s->filter != NULL && !domain_matches(fb->domain, s->filter)) {
		s->other_domains++;
		return;
	}
	/* Joined with a byte that XML text cannot hold. */
	key = xasprintf("%s\x01%s\x01%s", org, fb->report_id, fb->domain);
	if (strmap_get(&s->priv->seen, key, &dummy)) {
		s->duplicates++;
		free(key);
		return;
	}
	strmap_put(&s->priv->seen, key, 0);
	free(key);
	s->reports++;
	d = domain_get(s, fb->domain);
	if (d->nreports == d->cap_reports) {
		d->cap_reports = d->cap_reports == 0 ? 8 : d->cap_reports * 2;
		d->reports = xreallocarray(d->reports, d->cap_reports,
		                           sizeof(d->reports[0]));
	}
	rep = &d->reports[d->nreports++];
	memset(rep, 0, sizeof(*rep));
	rep->org_name = xstrdup(org);
	rep->email = fb->email != NULL ? xstrdup(fb->email) : NULL;
	rep->report_id = xstrdup(fb->report_id);
	rep->where = xstrdup(where);
	rep->begin = fb->begin;
	rep->end = fb->end;
	rep->p = fb->p;
	rep->sp = fb->sp;
	rep->adkim = fb->adkim;
	rep->aspf = fb->aspf;
	rep->pct = fb->pct;
	rep->records = fb->nrecords;
	rep->messages = fb->messages;
	if (d->nreports == 1 || fb->begin < d->begin)
		d->begin = fb->begin;
	if (d->nreports == 1 || fb->end > d->end)
		d->end = fb->end;
	for (size_t i = 0; i < fb->nrecords; i++) {
		const struct dmarc_feedback_record *r = &fb->records[i];
		struct source *src = source_get(d, r->source_ip);

		counts_add(&src->c, r);
		counts_add(&d->c, r);
		names_add(&src->header_from, r->header_from);
		names_add(&src->envelope_from, r->envelope_from);
		names_add(&src->reporters, org);
		for (size_t j = 0; j < r->ndkim; j++)
			if (r->dkim_results[j].result == DMARC_REPORT_R_PASS)
				names_add(&src->dkim_domains,
				          r->dkim_results[j].domain);
		for (size_t j = 0; j < r->nspf; j++)
			if (r->spf_results[j].result == DMARC_REPORT_R_PASS)
				names_add(&src->spf_domains,
				          r->spf_results[j].domain);
	}
}

void
dmarc_summary_init(struct dmarc_summary *s, const char *filter)
{
	memset(s, 0, sizeof(*s));
	s->filter = filter;
	s->priv = xcalloc(1, sizeof(*s->priv));
}

void
dmarc_summary_free(struct dmarc_summary *s)
{
	if (s->priv == NULL)
		return;
	for (size_t i = 0; i < s->priv->ndomains; i++) {
		struct domain *d = &s->priv->domains[i];

		for (size_t j = 0; j < d->nreports; j++) {
			free(d->reports[j].org_name);
			free(d->reports[j].email);
			free(d->reports[j].report_id);
			free(d->reports[j].where);
		}
		for (size_t j = 0; j < d->nsources; j++) {
			struct source *src = &d->sources[j];

			free(src->ip);
			names_free(&src->header_from);
			names_free(&src->envelope_from);
			names_free(&src->dkim_domains);
			names_free(&src->spf_domains);
			names_free(&src->reporters);
		}
		free(d->reports);
		free(d->sources);
		strmap_free(&d->source_index);
		free(d->name);
	}
	free(s->priv->domains);
	for (size_t i = 0; i < s->priv->nproblems; i++) {
		free(s->priv->problems[i].where);
		free(s->priv->problems[i].error);
	}
	free(s->priv->problems);
	for (size_t i = 0; i < s->nstores; i++)
		free(s->stores[i]);
	free(s->stores);
	strmap_free(&s->priv->seen);
	xfree(&s->priv);
	memset(s, 0, sizeof(*s));
}

static int
source_cmp(const void *pa, const void *pb)
{
	const struct source *a = pa, *b = pb;

	if (a->c.messages != b->c.messages)
		return a->c.messages > b->c.messages ? -1 : 1;
	return strcmp(a->ip, b->ip);
}

static int
report_cmp(const void *pa, const void *pb)
{
	const struct report *a = pa, *b = pb;
	int c;

	if (a->begin != b->begin)
		return a->begin < b->begin ? -1 : 1;
	if ((c = strcasecmp(a->org_name, b->org_name)) != 0)
		return c;
	return strcmp(a->report_id, b->report_id);
}

static int
name_cmp(const void *pa, const void *pb)
{
	return strcasecmp(*(char *const *)pa, *(char *const *)pb);
}

static void
names_sort(struct names *s)
{
	if (s->n > 1)
		qsort(s->v, s->n, sizeof(s->v[0]), name_cmp);
}

static int
domain_cmp(const void *pa, const void *pb)
{
	return strcmp(((const struct domain *)pa)->name,
	              ((const struct domain *)pb)->name);
}

/* Sorted for output (the order mail was delivered in does not show); the
 * source indexes are stale after this. */
static void
summary_sort(struct dmarc_summary *s)
{
	if (s->priv->ndomains > 1)
		qsort(s->priv->domains, s->priv->ndomains,
		      sizeof(s->priv->domains[0]), domain_cmp);
	for (size_t i = 0; i < s->priv->ndomains; i++) {
		struct domain *d = &s->priv->domains[i];

		if (d->nsources > 1)
			qsort(d->sources, d->nsources, sizeof(d->sources[0]),
			      source_cmp);
		for (size_t j = 0; j < d->nsources; j++) {
			names_sort(&d->sources[j].header_from);
			names_sort(&d->sources[j].envelope_from);
			names_sort(&d->sources[j].dkim_domains);
			names_sort(&d->sources[j].spf_domains);
			names_sort(&d->sources[j].reporters);
		}
		if (d->nreports > 1)
			qsort(d->reports, d->nreports, sizeof(d->reports[0]),
			      report_cmp);
	}
}

/* ------------------------------------------------------------ output */

static void
format_time(int64_t t, char *out, size_t outlen)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (gmtime_r(&tt, &tm) == NULL ||
	    strftime(out, outlen, "%Y-%m-%d %H:%M", &tm) == 0)
		snprintf(out, outlen, "-");
}

static void
format_iso(int64_t t, char *out, size_t outlen)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (gmtime_r(&tt, &tm) == NULL ||
	    strftime(out, outlen, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(out, outlen, "-");
}

static void
json_names(const char *key, const struct names *s)
{
	printf("\"%s\": [", key);
	for (size_t i = 0; i < s->n; i++) {
		if (i > 0)
			fputs(", ", stdout);
		cli_json_string(stdout, s->v[i]);
	}
	fputs("]", stdout);
}

static void
json_policy(enum dmarc_report_policy p)
{
	if (p == DMARC_REPORT_P_MISSING)
		fputs("null", stdout);
	else
		cli_json_string(stdout, dmarc_report_policy_name(p));
}

static void
json_align(enum dmarc_report_align al)
{
	fputs(al == DMARC_REPORT_A_RELAXED  ? "\"r\""
	      : al == DMARC_REPORT_A_STRICT ? "\"s\""
	                                    : "null",
	      stdout);
}

static void
json_counts(const struct counts *c, const char *indent)
{
	printf("%s\"messages\": %llu,\n", indent,
	       (unsigned long long)c->messages);
	printf("%s\"dmarc\": {\"pass\": %llu, \"fail\": %llu},\n", indent,
	       (unsigned long long)c->dmarc_pass,
	       (unsigned long long)(c->messages - c->dmarc_pass));
	printf("%s\"spf\": {\"pass\": %llu, \"fail\": %llu, \"aligned_pass\": "
	       "%llu, \"aligned_fail\": %llu},\n",
	       indent, (unsigned long long)c->spf_pass,
	       (unsigned long long)(c->messages - c->spf_pass),
	       (unsigned long long)c->spf_aligned,
	       (unsigned long long)(c->messages - c->spf_aligned));
	printf("%s\"dkim\": {\"pass\": %llu, \"fail\": %llu, \"aligned_pass\": "
	       "%llu, \"aligned_fail\": %llu},\n",
	       indent, (unsigned long long)c->dkim_pass,
	       (unsigned long long)(c->messages - c->dkim_pass),
	       (unsigned long long)c->dkim_aligned,
	       (unsigned long long)(c->messages - c->dkim_aligned));
	printf("%s\"disposition\": {", indent);
	for (int i = 0; i < NDISP; i++)
		printf("%s\"%s\": %llu", i > 0 ? ", " : "", disp_names[i],
		       (unsigned long long)c->disp[i]);
	fputs("}", stdout);
}

static void
json_report(const struct report *r)
{
	char b[32], e[32];

	format_iso(r->begin, b, sizeof(b));
	format_iso(r->end, e, sizeof(e));
	fputs("\n        {\"org_name\": ", stdout);
	cli_json_string(stdout, r->org_name);
	fputs(", \"email\": ", stdout);
	if (r->email != NULL)
		cli_json_string(stdout, r->email);
	else
		fputs("null", stdout);
	fputs(", \"report_id\": ", stdout);
	cli_json_string(stdout, r->report_id);
	printf(",\n         \"begin\": %lld, \"end\": %lld, \"begin_utc\": "
	       "\"%s\", \"end_utc\": \"%s\",\n         \"policy\": {\"p\": ",
	       (long long)r->begin, (long long)r->end, b, e);
	json_policy(r->p);
	fputs(", \"sp\": ", stdout);
	json_policy(r->sp);
	fputs(", \"pct\": ", stdout);
	if (r->pct >= 0)
		printf("%d", r->pct);
	else
		fputs("null", stdout);
	fputs(", \"adkim\": ", stdout);
	json_align(r->adkim);
	fputs(", \"aspf\": ", stdout);
	json_align(r->aspf);
	printf(
	    "},\n         \"records\": %zu, \"messages\": %llu, \"found_in\": ",
	    r->records, (unsigned long long)r->messages);
	cli_json_string(stdout, r->where);
	fputs("}", stdout);
}

static void
json_source(const struct source *src)
{
	fputs("\n        {\"source_ip\": ", stdout);
	cli_json_string(stdout, src->ip);
	printf(", \"verdict\": \"%s\",\n", verdict_json[verdict_of(&src->c)]);
	json_counts(&src->c, "         ");
	fputs(",\n         ", stdout);
	json_names("header_from", &src->header_from);
	fputs(", ", stdout);
	json_names("envelope_from", &src->envelope_from);
	fputs(",\n         ", stdout);
	json_names("dkim_pass_domains", &src->dkim_domains);
	fputs(", ", stdout);
	json_names("spf_pass_domains", &src->spf_domains);
	fputs(",\n         ", stdout);
	json_names("reporters", &src->reporters);
	fputs("}", stdout);
}

static void
output_json(const struct dmarc_summary *s)
{
	fputs("{\n  \"mailboxes\": [", stdout);
	for (size_t i = 0; i < s->nstores; i++) {
		if (i > 0)
			fputs(", ", stdout);
		cli_json_string(stdout, s->stores[i]);
	}
	printf("],\n  \"messages_read\": %llu,\n  \"reports\": %llu,\n"
	       "  \"duplicates\": %llu,\n  \"domains\": [",
	       (unsigned long long)s->messages_read,
	       (unsigned long long)s->reports,
	       (unsigned long long)s->duplicates);
	for (size_t i = 0; i < s->priv->ndomains; i++) {
		const struct domain *d = &s->priv->domains[i];
		char b[32], e[32];

		format_iso(d->begin, b, sizeof(b));
		format_iso(d->end, e, sizeof(e));
		fputs(i > 0 ? ",\n    {\"domain\": " : "\n    {\"domain\": ",
		      stdout);
		cli_json_string(stdout, d->name);
		printf(
		    ",\n      \"begin\": %lld, \"end\": %lld, \"begin_utc\": "
		    "\"%s\", \"end_utc\": \"%s\",\n",
		    (long long)d->begin, (long long)d->end, b, e);
		json_counts(&d->c, "      ");
		fputs(",\n      \"reports\": [", stdout);
		for (size_t j = 0; j < d->nreports; j++) {
			if (j > 0)
				fputs(",", stdout);
			json_report(&d->reports[j]);
		}
		fputs(d->nreports > 0 ? "\n      ],\n      \"sources\": ["
		                      : "],\n      \"sources\": [",
		      stdout);
		for (size_t j = 0; j < d->nsources; j++) {
			if (j > 0)
				fputs(",", stdout);
			json_source(&d->sources[j]);
		}
		fputs(d->nsources > 0 ? "\n      ]}" : "]}", stdout);
	}
	fputs(s->priv->ndomains > 0 ? "\n  ],\n  \"problems\": ["
	                            : "],\n  \"problems\": [",
	      stdout);
	for (size_t i = 0; i < s->priv->nproblems; i++) {
		fputs(i > 0 ? ",\n    {\"where\": " : "\n    {\"where\": ",
		      stdout);
		cli_json_string(stdout, s->priv->problems[i].where);
		fputs(", \"error\": ", stdout);
		cli_json_string(stdout, s->priv->problems[i].error);
		fputs("}", stdout);
	}
	fputs(s->priv->nproblems > 0 ? "\n  ]\n}\n" : "]\n}\n", stdout);
}

/* s shown in at most max columns ("..." when cut), padded to width. */
static void
text_cell(const char *s, size_t max, size_t width)
{
	size_t len = strlen(s), cut = len;
	char *copy;

	if (cli_text_width(s) <= max) {
		cli_text_cell(stdout, s, width);
		return;
	}
	/* Cut at a character boundary, then count again. */
	while (cut > 0 && cli_text_width(s) > 0) {
		cut--;
		while (cut > 0 && ((unsigned char)s[cut] & 0xc0) == 0x80)
			cut--;
		copy = xstrndup(s, cut);
		if (cli_text_width(copy) + 3 <= max) {
			char *shown = xasprintf("%s...", copy);

			cli_text_cell(stdout, shown, width);
			free(shown);
			free(copy);
			return;
		}
		free(copy);
	}
	cli_text_cell(stdout, "...", width);
}

static size_t
text_width_capped(const char *s, size_t max)
{
	size_t w = cli_text_width(s);

	return w < max ? w : max;
}

/* "10/0": passed and failed. */
static void
text_ratio(uint64_t pass, uint64_t total, int width)
{
	char cell[48];

	snprintf(cell, sizeof(cell), "%llu/%llu", (unsigned long long)pass,
	         (unsigned long long)(total - pass));
	printf("%*s", width, cell);
}

/* "none", or "quarantine 3, none 2" when mixed. */
static void
text_disposition(const struct counts *c, char *out, size_t outlen)
{
	size_t used = 0, kinds = 0;

	out[0] = '\0';
	for (int i = 0; i < NDISP; i++)
		kinds += c->disp[i] > 0;
	for (int i = 0; i < NDISP; i++) {
		int n;

		if (c->disp[i] == 0)
			continue;
		n = kinds == 1
		        ? snprintf(out + used, outlen - used, "%s",
		                   disp_names[i])
		        : snprintf(out + used, outlen - used, "%s%s %llu",
		                   used > 0 ? ", " : "", disp_names[i],
		                   (unsigned long long)c->disp[i]);
		if (n < 0 || (size_t)n >= outlen - used)
			break;
		used += (size_t)n;
	}
}

static void
text_names(const char *label, const struct names *s)
{
	if (s->n == 0)
		return;
	printf("; %s ", label);
	for (size_t i = 0; i < s->n; i++) {
		if (i > 0)
			fputs(", ", stdout);
		text_cell(s->v[i], 64, 0);
	}
	if (s->more)
		fputs(" ...", stdout);
}

static void
text_domain(const struct domain *d)
{
	size_t w_org = 8, w_id = 9, w_ip = 9, nsuspect = 0, norgs = 0;
	char b[32], e[32], disp[128], pol[48];
	struct names orgs = {0};

	for (size_t i = 0; i < d->nreports; i++) {
		const struct report *r = &d->reports[i];
		size_t w;

		names_add(&orgs, r->org_name);
		if ((w = text_width_capped(r->org_name,
		                           DMARC_SUMMARY_CELL_MAX)) > w_org)
			w_org = w;
		if ((w = text_width_capped(r->report_id,
		                           DMARC_SUMMARY_CELL_MAX)) > w_id)
			w_id = w;
	}
	norgs = orgs.n + (orgs.more ? 1 : 0);
	names_free(&orgs);
	for (size_t i = 0; i < d->nsources; i++)
		if (strlen(d->sources[i].ip) > w_ip)
			w_ip = strlen(d->sources[i].ip);
	cli_format_date(d->begin, b, sizeof(b));
	cli_format_date(d->end, e, sizeof(e));
	text_cell(d->name, 253, 0);
	printf(": %zu report%s from %zu%s reporter%s, %s to %s (UTC), %llu "
	       "message%s from %zu source%s\n",
	       d->nreports, d->nreports == 1 ? "" : "s", norgs,
	       norgs > DMARC_SUMMARY_NAMES_MAX ? "+" : "",
	       norgs == 1 ? "" : "s", b, e, (unsigned long long)d->c.messages,
	       d->c.messages == 1 ? "" : "s", d->nsources,
	       d->nsources == 1 ? "" : "s");
	text_disposition(&d->c, disp, sizeof(disp));
	printf("  DMARC pass %llu, fail %llu; aligned SPF pass %llu, aligned "
	       "DKIM pass %llu; applied: %s\n\n",
	       (unsigned long long)d->c.dmarc_pass,
	       (unsigned long long)(d->c.messages - d->c.dmarc_pass),
	       (unsigned long long)d->c.spf_aligned,
	       (unsigned long long)d->c.dkim_aligned,
	       disp[0] != '\0' ? disp : "-");

	printf("  %-*s  %-*s  %-16s  %-16s  %-16s  %8s\n", (int)w_org,
	       "REPORTER", (int)w_id, "REPORT ID", "BEGIN (UTC)", "END (UTC)",
	       "POLICY", "MESSAGES");
	for (size_t i = 0; i < d->nreports; i++) {
		const struct report *r = &d->reports[i];

		format_time(r->begin, b, sizeof(b));
		format_time(r->end, e, sizeof(e));
		if (r->pct >= 0 && r->pct < 100)
			snprintf(pol, sizeof(pol), "p=%s pct=%d",
			         dmarc_report_policy_name(r->p), r->pct);
		else
			snprintf(pol, sizeof(pol), "p=%s",
			         dmarc_report_policy_name(r->p));
		fputs("  ", stdout);
		text_cell(r->org_name, DMARC_SUMMARY_CELL_MAX, w_org);
		fputs("  ", stdout);
		text_cell(r->report_id, DMARC_SUMMARY_CELL_MAX, w_id);
		printf("  %-16s  %-16s  %-16s  %8llu\n", b, e, pol,
		       (unsigned long long)r->messages);
	}
	printf("\n  %-*s  %8s  %12s  %12s  %13s  %-20s  %s\n", (int)w_ip,
	       "SOURCE IP", "MESSAGES", "SPF pass/fail", "DKIM pass/fail",
	       "DMARC pass/fail", "APPLIED", "VERDICT");
	for (size_t i = 0; i < d->nsources; i++) {
		const struct source *src = &d->sources[i];
		enum verdict v = verdict_of(&src->c);

		text_disposition(&src->c, disp, sizeof(disp));
		printf("  %-*s  %8llu  ", (int)w_ip, src->ip,
		       (unsigned long long)src->c.messages);
		text_ratio(src->c.spf_aligned, src->c.messages, 13);
		fputs("  ", stdout);
		text_ratio(src->c.dkim_aligned, src->c.messages, 14);
		fputs("  ", stdout);
		text_ratio(src->c.dmarc_pass, src->c.messages, 15);
		printf("  %-20s  %s\n", disp, verdict_text[v]);
		nsuspect += v == VERDICT_SUSPECT || v == VERDICT_MIXED;
	}
	if (nsuspect == 0) {
		putchar('\n');
		return;
	}
	printf("\n  Failing both aligned SPF and DKIM (a spoofer, or a service "
	       "of yours not yet\n  set up to sign with DKIM for %s or to send "
	       "from your SPF):\n",
	       d->name);
	for (size_t i = 0; i < d->nsources; i++) {
		const struct source *src = &d->sources[i];
		enum verdict v = verdict_of(&src->c);

		if (v != VERDICT_SUSPECT && v != VERDICT_MIXED)
			continue;
		printf(
		    "    %s: %llu of %llu message%s failed", src->ip,
		    (unsigned long long)(src->c.messages - src->c.dmarc_pass),
		    (unsigned long long)src->c.messages,
		    src->c.messages == 1 ? "" : "s");
		text_names("From", &src->header_from);
		text_names("envelope", &src->envelope_from);
		text_names("reported by", &src->reporters);
		putchar('\n');
	}
	putchar('\n');
}

static void
output_text(const struct dmarc_summary *s)
{
	for (size_t i = 0; i < s->priv->ndomains; i++)
		text_domain(&s->priv->domains[i]);
	printf("Read %llu message%s in %zu mailbox%s: %llu report%s",
	       (unsigned long long)s->messages_read,
	       s->messages_read == 1 ? "" : "s", s->nstores,
	       s->nstores == 1 ? "" : "es", (unsigned long long)s->reports,
	       s->reports == 1 ? "" : "s");
	if (s->duplicates > 0)
		printf(", %llu duplicate%s skipped",
		       (unsigned long long)s->duplicates,
		       s->duplicates == 1 ? "" : "s");
	if (s->other_domains > 0)
		printf(", %llu for other domains",
		       (unsigned long long)s->other_domains);
	printf(".\nSPF, DKIM and DMARC count the aligned results the "
	       "reporters evaluated.\n");
	for (size_t i = 0; i < s->priv->nproblems; i++) {
		fputs(i == 0 ? "\nNot read:\n  " : "  ", stdout);
		text_cell(s->priv->problems[i].where, 200, 0);
		fputs(": ", stdout);
		text_cell(s->priv->problems[i].error, 300, 0);
		putchar('\n');
	}
}

void
dmarc_summary_store(struct dmarc_summary *s, const char *key)
{
	for (size_t i = 0; i < s->nstores; i++)
		if (strcmp(s->stores[i], key) == 0)
			return;
	s->stores =
	    xreallocarray(s->stores, s->nstores + 1, sizeof(s->stores[0]));
	s->stores[s->nstores++] = xstrdup(key);
}

void
dmarc_summary_print(struct dmarc_summary *s, bool json)
{
	summary_sort(s);
	if (json)
		output_json(s);
	else
		output_text(s);
}
