/* libFuzzer target for DMARC and the PSL (src/mailauth/dmarc.c, psl.c): the
 * input's first line is a DMARC record, its second line names (SPF domain,
 * then DKIM d= domains, space-separated), the rest a header block.
 * SECURITY: records, names and headers are attacker-controlled; parsing,
 * PSL lookups and evaluation must stay in bounds and produce header values
 * that cannot end a header field.
 *
 * Every record parses or is refused; every name is looked up in the system
 * PSL (a small built-in list when it is not installed) and in a list made
 * of the header block; the header is evaluated against a fake DNS that
 * answers each _dmarc query with the record, the last input byte choosing
 * the status of the first two queries (2 bits each: OK, NXDOMAIN, NODATA,
 * TEMPFAIL). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/xmalloc.h"
#include "mailauth/dmarc.h"
#include "mailauth/dnsif.h"
#include "mailauth/psl.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct psl *system_psl;

static const char fallback_list[] = "com\nuk\nco.uk\n*.ck\n!www.ck\n"
                                    "jp\nkobe.jp\n*.kobe.jp\n!city.kobe.jp\n"
                                    "za.org\norg\nnet\nexample\n";

struct script {
	const char *record;
	unsigned int statuses, calls;
};

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char *error = NULL;

	(void)argc;
	(void)argv;
	system_psl = psl_load(PSL_DEFAULT_PATH, &error);
	if (system_psl == NULL) {
		free(error);
		system_psl =
		    psl_parse(fallback_list, sizeof(fallback_list) - 1, &error);
		if (system_psl == NULL)
			abort();
	}
	return 0;
}

static int
fake_lookup(void *arg, const char *name, enum ma_dns_type type,
            struct ma_dns_answer *ans)
{
	struct script *sc = arg;
	unsigned int st =
	    sc->calls < 2 ? (sc->statuses >> (2 * sc->calls)) & 3 : 1;

	sc->calls++;
	if (type != MA_DNS_TXT || strncmp(name, "_dmarc.", 7) != 0 ||
	    strlen(name) > DMARC_DOMAIN_MAX || sc->calls > 2)
		abort(); /* two TXT queries per From domain, and only
		            single-domain headers are evaluated */
	switch (st) {
	case 0:
		ans->status = MA_DNS_OK;
		ans->rr = xcalloc(1, sizeof(*ans->rr));
		ans->rr[0] = xstrdup(sc->record);
		ans->count = 1;
		break;
	case 1:
		ans->status = MA_DNS_NXDOMAIN;
		break;
	case 2:
		ans->status = MA_DNS_NODATA;
		break;
	default:
		ans->status = MA_DNS_TEMPFAIL;
		break;
	}
	return 0;
}

static void
check_header_value(const struct buf *b)
{
	for (size_t i = 0; i < b->len; i++) {
		if (b->data[i] < 0x20 || b->data[i] >= 0x7f ||
		    b->data[i] == ';')
			abort(); /* a value could end the field or resinfo */
	}
}

static void
fuzz_record(const char *rec, size_t len)
{
	struct dmarc_record r;
	const char *error = NULL;
	int rc = dmarc_record_parse(rec, len, &r, &error);

	if (rc < 0) {
		if (error == NULL)
			abort();
		return;
	}
	if (!dmarc_record_is_dmarc(rec, len) || r.pct > 100 ||
	    r.nrua > DMARC_URIS_MAX || r.nruf > DMARC_URIS_MAX ||
	    (!r.sp_given && r.sp != r.p) || r.p > DMARC_POLICY_REJECT)
		abort();
	for (size_t i = 0; i < r.nrua; i++) {
		if (strlen(r.rua[i].uri) > DMARC_URI_MAX)
			abort();
	}
}

static void
fuzz_name(const struct psl *psl, const char *name, size_t len)
{
	char norm[PSL_NAME_MAX + 1], reg[PSL_NAME_MAX + 1],
	    again[PSL_NAME_MAX + 1];
	char *copy = xstrndup(name, len);
	int n = psl_domain_normalize(name, len, norm, sizeof(norm));
	int rc = psl_registrable_domain(psl, copy, reg, sizeof(reg));

	if (n >= 0) {
		if ((size_t)n != strlen(norm) || n > PSL_NAME_MAX)
			abort();
		/* normalizing is idempotent */
		if (psl_domain_normalize(norm, (size_t)n, again,
		                         sizeof(again)) != n ||
		    strcmp(norm, again) != 0)
			abort();
	}
	if (rc >= 0 && strlen(copy) == len) {
		size_t rl = strlen(reg);

		/* the registrable domain is a suffix of the name, at a
		 * label boundary, and its own registrable domain */
		if (n < 0 || rl > (size_t)n ||
		    strcmp(norm + (size_t)n - rl, reg) != 0 ||
		    (rl < (size_t)n && norm[(size_t)n - rl - 1] != '.'))
			abort();
		if (psl_registrable_domain(psl, reg, again, sizeof(again)) !=
		        rc ||
		    strcmp(again, reg) != 0)
			abort();
		if (!dmarc_aligned(psl, copy, reg, DMARC_ALIGN_RELAXED))
			abort();
	}
	free(copy);
}

static void
fuzz_evaluate(const char *record, const char *names, size_t names_len,
              const char *header, size_t header_len, unsigned int statuses)
{
	char domains[DMARC_FROM_DOMAINS_MAX][DMARC_DOMAIN_MAX + 1];
	struct script sc = {record, statuses, 0};
	struct ma_dns dns = {fake_lookup, &sc};
	struct dkim_verify_result dkim;
	struct spf_outcome spf;
	struct dmarc_request req;
	struct dmarc_outcome *o;
	const char *problem;
	char *list = xstrndup(names, names_len), *tok, *save = NULL;
	bool invalid;
	size_t n;
	struct buf ar;

	memset(&dkim, 0, sizeof(dkim));
	memset(&spf, 0, sizeof(spf));
	spf.result = SPF_PASS;
	spf.identity = SPF_IDENTITY_MAILFROM;
	spf.domain = (char *)"";
	for (tok = strtok_r(list, " ", &save); tok != NULL;
	     tok = strtok_r(NULL, " ", &save)) {
		if (spf.domain[0] == '\0') {
			spf.domain = tok;
		} else if (dkim.count < DKIM_VERIFY_MAX) {
			struct dkim_sig_result *s = &dkim.sig[dkim.count++];

			size_t tl = strnlen(tok, sizeof(s->domain) - 1);

			memcpy(s->domain, tok, tl);
			s->domain[tl] = '\0';
			s->result = dkim.count % 2 ? DKIM_PASS : DKIM_FAIL;
		}
	}

	n = dmarc_from_domains(header, header_len, domains, &invalid, &problem);
	if (n > DMARC_FROM_DOMAINS_MAX || invalid != (problem != NULL))
		abort();
	for (size_t i = 0; i < n; i++) {
		if (strlen(domains[i]) > DMARC_DOMAIN_MAX ||
		    strspn(domains[i],
		           "abcdefghijklmnopqrstuvwxyz0123456789-_.") !=
		        strlen(domains[i]))
			abort();
	}

	memset(&req, 0, sizeof(req));
	req.msg = header;
	req.len = header_len;
	req.spf = &spf;
	req.dkim = &dkim;
	req.psl = system_psl;
	req.pct_sample = statuses;
	/* only one From domain may query, so the fake can count to two */
	if (n <= 1) {
		o = dmarc_evaluate(&dns, &req);
		if (o->ndomains != n || o->disposition > DMARC_POLICY_REJECT ||
		    (n == 0 && o->result != DMARC_PERMERROR) ||
		    (o->result != DMARC_FAIL &&
		     o->disposition != DMARC_POLICY_NONE))
			abort();
		buf_init(&ar, 1024);
		if (dmarc_auth_results(o, &ar) < 0)
			abort();
		check_header_value(&ar);
		buf_free(&ar);
		dmarc_outcome_free(&o);
	}
	free(list);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = xmalloc(size + 1);
	const char *rec, *names, *header;
	size_t rec_len, names_len, header_len;
	char *nl;
	struct psl *own;
	char *error = NULL;

	/* NUL bytes become DEL: records and names are C strings in DNS */
	for (size_t i = 0; i < size; i++)
		text[i] = data[i] == '\0' ? '\x7f' : (char)data[i];
	text[size] = '\0';

	rec = text;
	nl = strchr(rec, '\n');
	rec_len = nl != NULL ? (size_t)(nl - rec) : size;
	names = nl != NULL ? nl + 1 : text + size;
	nl = strchr(names, '\n');
	names_len = nl != NULL ? (size_t)(nl - names) : strlen(names);
	header = nl != NULL ? nl + 1 : names + names_len;
	header_len = (size_t)(text + size - header);

	fuzz_record(rec, rec_len);
	fuzz_name(system_psl, rec, rec_len);
	fuzz_name(system_psl, names, names_len);

	/* the header block as a list, then the names looked up in it */
	own = psl_parse(header, header_len, &error);
	if (own != NULL) {
		fuzz_name(own, names, names_len);
		fuzz_name(own, rec, rec_len);
		psl_free(&own);
	} else {
		free(error);
	}

	{
		char *record = xstrndup(rec, rec_len);

		fuzz_evaluate(record, names, names_len, header, header_len,
		              size > 0 ? data[size - 1] : 0);
		free(record);
	}
	free(text);
	return 0;
}
