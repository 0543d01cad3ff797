/* Unit tests for the DMARC aggregate reports we send
 * (src/mailauth/dmarc_agg.c): records made from evaluations, their wire
 * form (round trip; every truncation, bad enum, bad string and non-mailto
 * URI refused), rua mailto: URIs (table-driven), external destination
 * names, the appendix C XML (read back by our own report parser, escaping
 * checked in the text, bounded output), gzip and the report message
 * (§7.2.1.1 Subject and file name; the attachment found and parsed by
 * dmarc_report_from_message). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/ipc.h"
#include "core/xmalloc.h"
#include "mailauth/dmarc_agg.h"
#include "mailauth/dmarc_report.h"

#define T_BEGIN 1704067200 /* 2024-01-01T00:00:00Z */
#define T_END (T_BEGIN + 86399)

/* ------------------------------------------------------------ fixtures */

static void
set(char *dst, size_t size, const char *s)
{
	snprintf(dst, size, "%s", s);
}

#define SET(field, s) set(field, sizeof(field), s)

static void
sample_record(struct dmarc_agg_record *rec)
{
	struct dmarc_agg_row *row = &rec->row;

	memset(rec, 0, sizeof(*rec));
	SET(rec->policy.domain, "example.com");
	rec->policy.p = DMARC_POLICY_REJECT;
	rec->policy.sp = DMARC_POLICY_QUARANTINE;
	rec->policy.adkim = DMARC_ALIGN_STRICT;
	rec->policy.aspf = DMARC_ALIGN_RELAXED;
	rec->policy.pct = 50;
	rec->result = DMARC_FAIL;
	SET(row->source_ip, "192.0.2.1");
	SET(row->header_from, "example.com");
	SET(row->envelope_from, "bounce.example.net");
	row->disposition = DMARC_POLICY_QUARANTINE;
	row->dkim_aligned = false;
	row->spf_aligned = false;
	row->reasons = DMARC_REPORT_REASON_SAMPLED_OUT;
	row->ndkim = 2;
	SET(row->dkim[0].domain, "example.net");
	SET(row->dkim[0].selector, "s1");
	row->dkim[0].result = DKIM_PASS;
	SET(row->dkim[1].domain, "example.com");
	SET(row->dkim[1].selector, "");
	row->dkim[1].result = DKIM_FAIL;
	row->spf_checked = true;
	row->spf_result = SPF_SOFTFAIL;
	row->count = 1;
	rec->nrua = 2;
	SET(rec->rua[0].uri, "mailto:dmarc@example.com");
	SET(rec->rua[1].uri, "mailto:reports@thirdparty.example");
	rec->rua[1].size_max = 10 * 1024 * 1024;
}

static void
assert_record_equal(const struct dmarc_agg_record *a,
                    const struct dmarc_agg_record *b)
{
	assert_string_equal(a->policy.domain, b->policy.domain);
	assert_int_equal(a->policy.p, b->policy.p);
	assert_int_equal(a->policy.sp, b->policy.sp);
	assert_int_equal(a->policy.adkim, b->policy.adkim);
	assert_int_equal(a->policy.aspf, b->policy.aspf);
	assert_int_equal(a->policy.pct, b->policy.pct);
	assert_int_equal(a->result, b->result);
	assert_string_equal(a->row.source_ip, b->row.source_ip);
	assert_string_equal(a->row.header_from, b->row.header_from);
	assert_string_equal(a->row.envelope_from, b->row.envelope_from);
	assert_int_equal(a->row.disposition, b->row.disposition);
	assert_int_equal(a->row.dkim_aligned, b->row.dkim_aligned);
	assert_int_equal(a->row.spf_aligned, b->row.spf_aligned);
	assert_int_equal(a->row.reasons, b->row.reasons);
	assert_int_equal(a->row.ndkim, b->row.ndkim);
	for (size_t i = 0; i < a->row.ndkim; i++) {
		assert_string_equal(a->row.dkim[i].domain,
		                    b->row.dkim[i].domain);
		assert_string_equal(a->row.dkim[i].selector,
		                    b->row.dkim[i].selector);
		assert_int_equal(a->row.dkim[i].result, b->row.dkim[i].result);
	}
	assert_int_equal(a->row.spf_checked, b->row.spf_checked);
	if (a->row.spf_checked)
		assert_int_equal(a->row.spf_result, b->row.spf_result);
	assert_int_equal(a->nrua, b->nrua);
	for (size_t i = 0; i < a->nrua; i++) {
		assert_string_equal(a->rua[i].uri, b->rua[i].uri);
		assert_int_equal(a->rua[i].size_max, b->rua[i].size_max);
	}
}

/* ------------------------------------------------------------- records */

static void
test_record_from(void **state)
{
	struct dmarc_domain_result d;
	struct dmarc_report_row *row = &d.report;
	struct dmarc_agg_record rec;

	(void)state;
	memset(&d, 0, sizeof(d));
	d.result = DMARC_FAIL;
	SET(row->source_ip, "2001:db8::25");
	SET(row->header_from, "mail.example.com");
	SET(row->envelope_from, "example.com");
	SET(row->policy_domain, "example.com");
	row->disposition = DMARC_POLICY_QUARANTINE;
	row->sampled_out = true;
	row->spf_checked = true;
	row->spf_result = SPF_FAIL;
	row->ndkim = 1;
	SET(row->dkim[0].domain, "example.com");
	SET(row->dkim[0].selector, "sel\x01");
	row->dkim[0].result = DKIM_FAIL;
	/* No record: no report. */
	assert_false(dmarc_agg_record_from(&d, DMARC_POLICY_NONE, 0, &rec));
	row->record_found = true;
	row->record.p = DMARC_POLICY_REJECT;
	row->record.sp = DMARC_POLICY_REJECT;
	row->record.pct = 50;
	/* Only URIs that are not mailto: no report either. */
	row->record.nrua = 1;
	SET(row->record.rua[0].uri, "https://reports.example/dmarc");
	assert_false(dmarc_agg_record_from(&d, DMARC_POLICY_NONE, 0, &rec));
	row->record.nrua = 3;
	SET(row->record.rua[1].uri, "MAILTO:a@example.com");
	SET(row->record.rua[2].uri, "mailto:b@example.org");
	row->record.rua[2].size_max = 1000;
	assert_true(dmarc_agg_record_from(
	    &d, DMARC_POLICY_NONE, DMARC_REPORT_REASON_LOCAL_POLICY, &rec));
	assert_int_equal(rec.nrua, 2);
	assert_string_equal(rec.rua[0].uri, "MAILTO:a@example.com");
	assert_int_equal(rec.rua[1].size_max, 1000);
	assert_string_equal(rec.policy.domain, "example.com");
	assert_int_equal(rec.policy.pct, 50);
	assert_int_equal(rec.row.disposition, DMARC_POLICY_NONE);
	assert_int_equal(rec.row.reasons, DMARC_REPORT_REASON_LOCAL_POLICY |
	                                      DMARC_REPORT_REASON_SAMPLED_OUT);
	assert_string_equal(rec.row.dkim[0].selector, "sel?");
	assert_int_equal(rec.row.count, 1);
	assert_int_equal(rec.result, DMARC_FAIL);
}

static void
test_wire_roundtrip(void **state)
{
	struct dmarc_agg_record rec, back;
	const char *error = NULL;
	struct buf b;

	(void)state;
	sample_record(&rec);
	buf_init(&b, 0);
	assert_int_equal(dmarc_agg_record_put(&b, &rec), 0);
	assert_true(b.len <= DMARC_AGG_RECORD_WIRE_MAX);
	assert_int_equal(dmarc_agg_record_get(b.data, b.len, &back, &error), 0);
	assert_record_equal(&rec, &back);
	assert_int_equal(back.row.count, 1);

	/* Every truncation and a trailing byte are refused. */
	for (size_t n = 0; n < b.len; n++)
		assert_int_equal(dmarc_agg_record_get(b.data, n, &back, &error),
		                 -1);
	assert_int_equal(buf_append_byte(&b, 0), 0);
	assert_int_equal(dmarc_agg_record_get(b.data, b.len, &back, &error),
	                 -1);
	assert_non_null(error);

	/* SPF not checked travels as such. */
	rec.row.spf_checked = false;
	buf_reset(&b);
	assert_int_equal(dmarc_agg_record_put(&b, &rec), 0);
	assert_int_equal(dmarc_agg_record_get(b.data, b.len, &back, &error), 0);
	assert_false(back.row.spf_checked);

	/* The most of everything. */
	rec.row.ndkim = DMARC_AGG_DKIM_MAX;
	for (size_t i = 0; i < DMARC_AGG_DKIM_MAX; i++) {
		memset(rec.row.dkim[i].domain, 'd', DKIM_DOMAIN_MAX);
		rec.row.dkim[i].domain[DKIM_DOMAIN_MAX] = '\0';
		memset(rec.row.dkim[i].selector, 's', DKIM_DOMAIN_MAX);
		rec.row.dkim[i].selector[DKIM_DOMAIN_MAX] = '\0';
	}
	rec.nrua = DMARC_AGG_RUA_MAX;
	for (size_t i = 0; i < DMARC_AGG_RUA_MAX; i++) {
		memset(rec.rua[i].uri, 'u', DMARC_URI_MAX);
		memcpy(rec.rua[i].uri, "mailto:", 7);
		rec.rua[i].uri[DMARC_URI_MAX] = '\0';
	}
	buf_reset(&b);
	assert_int_equal(dmarc_agg_record_put(&b, &rec), 0);
	assert_true(b.len <= DMARC_AGG_RECORD_WIRE_MAX);
	assert_int_equal(dmarc_agg_record_get(b.data, b.len, &back, &error), 0);
	assert_record_equal(&rec, &back);
	buf_free(&b);
}

/* A record on the wire built by hand, one field wrong at a time. */
enum wire_fault {
	W_OK,
	W_NDKIM,
	W_DKIM_RESULT,
	W_SPF,
	W_DISPOSITION,
	W_FLAGS,
	W_REASONS,
	W_PCT,
	W_ALIGN,
	W_NRUA0,
	W_NRUA,
	W_HTTP,
	W_SPACE,
	W_NUL,
	W_NO_FROM,
};

static void
wire(struct buf *b, enum wire_fault f)
{
	uint32_t ndkim = f == W_NDKIM ? DMARC_AGG_DKIM_MAX + 1 : 1;
	uint32_t nrua = f == W_NRUA0  ? 0
	                : f == W_NRUA ? DMARC_AGG_RUA_MAX + 1
	                              : 1;

	buf_reset(b);
	ipc_put_str(b, f == W_NO_FROM ? "" : "example.com");
	ipc_put_str(b, f == W_SPACE ? "exa mple.com" : "example.com");
	if (f == W_NUL)
		ipc_put_bytes(b, "192.0.2.1\0", 10);
	else
		ipc_put_str(b, "192.0.2.1");
	ipc_put_str(b, "example.com");
	ipc_put_u32(b, f == W_SPF ? 7 : SPF_PASS);
	ipc_put_u32(b, ndkim);
	for (uint32_t i = 0; i < ndkim; i++) {
		ipc_put_str(b, "example.com");
		ipc_put_str(b, "sel");
		ipc_put_u32(b, f == W_DKIM_RESULT ? 7 : DKIM_PASS);
	}
	ipc_put_u32(b, DMARC_PASS);
	ipc_put_u32(b, f == W_DISPOSITION ? 3 : DMARC_POLICY_NONE);
	ipc_put_u32(b, f == W_FLAGS ? 4 : 3);
	ipc_put_u32(b, f == W_REASONS ? 0x40 : 0);
	ipc_put_u32(b, DMARC_POLICY_REJECT);
	ipc_put_u32(b, DMARC_POLICY_REJECT);
	ipc_put_u32(b, f == W_PCT ? 101 : 100);
	ipc_put_u32(b, f == W_ALIGN ? 2 : DMARC_ALIGN_RELAXED);
	ipc_put_u32(b, DMARC_ALIGN_RELAXED);
	ipc_put_u32(b, nrua);
	for (uint32_t i = 0; i < nrua; i++) {
		ipc_put_str(b, f == W_HTTP ? "https://example.com/"
		                           : "mailto:d@example.com");
		ipc_put_u64(b, 0);
	}
}

static void
test_wire_refused(void **state)
{
	struct dmarc_agg_record rec;
	const char *error;
	struct buf b;

	(void)state;
	buf_init(&b, 0);
	wire(&b, W_OK);
	assert_int_equal(dmarc_agg_record_get(b.data, b.len, &rec, &error), 0);
	assert_true(rec.row.dkim_aligned && rec.row.spf_aligned);
	for (int f = W_NDKIM; f <= W_NO_FROM; f++) {
		wire(&b, (enum wire_fault)f);
		error = NULL;
		if (dmarc_agg_record_get(b.data, b.len, &rec, &error) != -1)
			fail_msg("fault %d accepted", f);
		assert_non_null(error);
		/* Nothing half-decoded is left behind. */
		assert_string_equal(rec.policy.domain, "");
	}
	/* put refuses what get would. */
	sample_record(&rec);
	SET(rec.rua[0].uri, "http://example.com/");
	buf_reset(&b);
	assert_int_equal(dmarc_agg_record_put(&b, &rec), -1);
	assert_int_equal(b.len, 0);
	buf_free(&b);
}

/* --------------------------------------------------------------- URIs */

static void
test_mailto(void **state)
{
	static const struct {
		const char *uri, *addr, *domain;
	} cases[] = {
	    {"mailto:dmarc@example.com", "dmarc@example.com", "example.com"},
	    {"MAILTO:Dmarc@EXAMPLE.com", "Dmarc@example.com", "example.com"},
	    {"mailto:d+rua@example.com?subject=x", "d+rua@example.com",
	     "example.com"},
	    {"mailto:a%2Cb@example.com", NULL, NULL}, /* ',' is no atext */
	    {"mailto:rua%40example.com", "rua@example.com", "example.com"},
	    {"mailto:first.last@sub.example.org", "first.last@sub.example.org",
	     "sub.example.org"},
	    {"https://example.com/", NULL, NULL},
	    {"mailto:", NULL, NULL},
	    {"mailto:@example.com", NULL, NULL},
	    {"mailto:a@", NULL, NULL},
	    {"mailto:a@b@example.com", NULL, NULL},
	    {"mailto:a%40b@example.com", NULL, NULL},
	    {"mailto:a<b>@example.com", NULL, NULL},
	    {"mailto:a@example.com%0d%0aBcc:x@evil.example", NULL, NULL},
	    {"mailto:a%00@example.com", NULL, NULL},
	    {"mailto:a%zz@example.com", NULL, NULL},
	    {"mailto:a%4@example.com", NULL, NULL},
	    {"mailto:.a@example.com", NULL, NULL},
	    {"mailto:a..b@example.com", NULL, NULL},
	    {"mailto:a\"b@example.com", NULL, NULL},
	    {"mailto:a@exa mple.com", NULL, NULL},
	};
	char addr[DMARC_AGG_ADDRESS_MAX + 1], domain[DMARC_DOMAIN_MAX + 1];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc = dmarc_agg_mailto(cases[i].uri, addr, domain);

		if (cases[i].addr == NULL) {
			if (rc != -1)
				fail_msg("%s: accepted as %s", cases[i].uri,
				         addr);
			assert_string_equal(addr, "");
			continue;
		}
		if (rc != 0)
			fail_msg("%s: refused", cases[i].uri);
		assert_string_equal(addr, cases[i].addr);
		if (cases[i].domain != NULL)
			assert_string_equal(domain, cases[i].domain);
	}
	assert_int_equal(dmarc_agg_mailto(NULL, addr, domain), -1);
}

static void
test_auth_name(void **state)
{
	char name[DMARC_DOMAIN_MAX + 1], longd[DMARC_DOMAIN_MAX + 1];
	char *ok[] = {"v=spf1 -all", "v=DMARC1"};
	char *ok2[] = {"v=DMARC1; rua=mailto:x@thirdparty.example"};
	char *bad[] = {"v=DMARC2", "p=none; v=DMARC1", "v=spf1"};

	(void)state;
	assert_int_equal(dmarc_agg_auth_name("example.com",
	                                     "thirdparty.example", name,
	                                     sizeof(name)),
	                 0);
	assert_string_equal(name,
	                    "example.com._report._dmarc.thirdparty.example");
	memset(longd, 'a', 240);
	longd[240] = '\0';
	assert_int_equal(dmarc_agg_auth_name(longd, "thirdparty.example", name,
	                                     sizeof(name)),
	                 -1);
	assert_string_equal(name, "");
	assert_true(dmarc_agg_auth_ok(ok, 2));
	assert_true(dmarc_agg_auth_ok(ok2, 1));
	assert_false(dmarc_agg_auth_ok(bad, 3));
	assert_false(dmarc_agg_auth_ok(NULL, 0));
}

/* ---------------------------------------------------------------- XML */

static void
sample_rows(struct dmarc_agg_row rows[2])
{
	struct dmarc_agg_record rec;

	sample_record(&rec);
	rows[0] = rec.row;
	rows[0].count = 7;
	memset(&rows[1], 0, sizeof(rows[1]));
	SET(rows[1].source_ip, "2001:db8::1");
	SET(rows[1].header_from, "example.com");
	rows[1].disposition = DMARC_POLICY_NONE;
	rows[1].dkim_aligned = true;
	rows[1].spf_aligned = false;
	rows[1].count = 3;
}

static const struct dmarc_agg_policy sample_policy = {
    .domain = "example.com",
    .p = DMARC_POLICY_REJECT,
    .sp = DMARC_POLICY_QUARANTINE,
    .adkim = DMARC_ALIGN_STRICT,
    .aspf = DMARC_ALIGN_RELAXED,
    .pct = 50,
};

static const struct dmarc_agg_meta sample_meta = {
    .org_name = "A&B <x> \"q\" 'a'\x01\xc3",
    .email = "postmaster@mx.example.org",
    .report_id = "1704067200.0123456789abcdef",
    .begin = T_BEGIN,
    .end = T_END,
};

static void
test_xml(void **state)
{
	struct dmarc_agg_row rows[2];
	struct dmarc_feedback *fb = NULL;
	const struct dmarc_feedback_record *r;
	char *error = NULL;
	struct buf out;

	(void)state;
	sample_rows(rows);
	buf_init(&out, DMARC_AGG_XML_MAX);
	assert_int_equal(
	    dmarc_agg_xml(&sample_meta, &sample_policy, rows, 2, &out), 0);
	assert_non_null(buf_cstr(&out));
	/* Escaped in the text: the five specials, and '?' for the rest. */
	assert_non_null(strstr((const char *)out.data,
	                       "<org_name>A&amp;B &lt;x&gt; &quot;q&quot; "
	                       "&apos;a&apos;?"
	                       "?</org_name>"));
	assert_non_null(strstr((const char *)out.data,
	                       "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
	                       "<feedback>\n"));

	/* Read back by the reader of reports that others send us. */
	if (dmarc_report_parse(out.data, out.len, &fb, &error) < 0)
		fail_msg("parse: %s\n%s", error, (const char *)out.data);
	assert_string_equal(fb->org_name, "A&B <x> \"q\" 'a'?"
	                                  "?");
	assert_string_equal(fb->email, "postmaster@mx.example.org");
	assert_string_equal(fb->report_id, "1704067200.0123456789abcdef");
	assert_int_equal(fb->begin, T_BEGIN);
	assert_int_equal(fb->end, T_END);
	assert_string_equal(fb->domain, "example.com");
	assert_int_equal(fb->p, DMARC_REPORT_P_REJECT);
	assert_int_equal(fb->sp, DMARC_REPORT_P_QUARANTINE);
	assert_int_equal(fb->adkim, DMARC_REPORT_A_STRICT);
	assert_int_equal(fb->aspf, DMARC_REPORT_A_RELAXED);
	assert_int_equal(fb->pct, 50);
	assert_int_equal(fb->nerrors, 0);
	assert_int_equal(fb->nrecords, 2);
	assert_int_equal(fb->messages, 10);

	r = &fb->records[0];
	assert_string_equal(r->source_ip, "192.0.2.1");
	assert_int_equal(r->count, 7);
	assert_int_equal(r->disposition, DMARC_REPORT_P_QUARANTINE);
	assert_int_equal(r->dkim, DMARC_REPORT_R_FAIL);
	assert_int_equal(r->spf, DMARC_REPORT_R_FAIL);
	assert_int_equal(r->reasons, DMARC_REPORT_REASON_SAMPLED_OUT);
	assert_string_equal(r->header_from, "example.com");
	assert_string_equal(r->envelope_from, "bounce.example.net");
	assert_int_equal(r->ndkim, 2);
	assert_string_equal(r->dkim_results[0].domain, "example.net");
	assert_string_equal(r->dkim_results[0].selector, "s1");
	assert_int_equal(r->dkim_results[0].result, DMARC_REPORT_R_PASS);
	assert_null(r->dkim_results[1].selector);
	assert_int_equal(r->dkim_results[1].result, DMARC_REPORT_R_FAIL);
	assert_int_equal(r->nspf, 1);
	assert_string_equal(r->spf_results[0].domain, "bounce.example.net");
	assert_string_equal(r->spf_results[0].scope, "mfrom");
	assert_int_equal(r->spf_results[0].result, DMARC_REPORT_R_SOFTFAIL);

	r = &fb->records[1];
	assert_string_equal(r->source_ip, "2001:db8::1");
	assert_int_equal(r->count, 3);
	assert_int_equal(r->disposition, DMARC_REPORT_P_NONE);
	assert_int_equal(r->dkim, DMARC_REPORT_R_PASS);
	assert_int_equal(r->spf, DMARC_REPORT_R_FAIL);
	assert_int_equal(r->reasons, 0);
	assert_null(r->envelope_from);
	assert_int_equal(r->ndkim, 0);
	/* Not checked: "none" for the header From domain. */
	assert_int_equal(r->nspf, 1);
	assert_string_equal(r->spf_results[0].domain, "example.com");
	assert_int_equal(r->spf_results[0].result, DMARC_REPORT_R_NONE);
	dmarc_report_free(&fb);
	buf_free(&out);
}

static void
test_xml_bounded(void **state)
{
	struct dmarc_agg_row rows[2];
	struct buf full, out;

	(void)state;
	sample_rows(rows);
	buf_init(&full, 0);
	assert_int_equal(
	    dmarc_agg_xml(&sample_meta, &sample_policy, rows, 2, &full), 0);
	/* Every bound short of the document fails, none overruns. */
	for (size_t max = 1; max < full.len; max += 7) {
		buf_init(&out, max);
		assert_int_equal(
		    dmarc_agg_xml(&sample_meta, &sample_policy, rows, 2, &out),
		    -1);
		assert_true(out.len <= max);
		buf_free(&out);
	}
	buf_init(&out, full.len);
	assert_int_equal(
	    dmarc_agg_xml(&sample_meta, &sample_policy, rows, 2, &out), 0);
	assert_memory_equal(out.data, full.data, full.len);
	/* No rows: still a valid report. */
	buf_reset(&out);
	assert_int_equal(
	    dmarc_agg_xml(&sample_meta, &sample_policy, rows, 0, &out), 0);
	buf_free(&out);
	buf_free(&full);
}

/* --------------------------------------------------------------- gzip */

static void
test_gzip(void **state)
{
	size_t sizes[] = {0, 1, 1000, 200000, 3 * 64 * 1024 + 5};
	char *error = NULL;

	(void)state;
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		size_t n = sizes[i];
		unsigned char *data = xmalloc(n + 1);
		struct buf gz, back;

		for (size_t j = 0; j < n; j++)
			data[j] = (unsigned char)("<record>"[j % 8] + j % 3);
		buf_init(&gz, 0);
		buf_init(&back, 0);
		assert_int_equal(dmarc_agg_gzip(data, n, &gz), 0);
		assert_true(gz.len >= 18 && gz.data[0] == 0x1f &&
		            gz.data[1] == 0x8b);
		if (dmarc_report_gunzip(gz.data, gz.len, &back, &error) < 0)
			fail_msg("gunzip: %s", error);
		assert_int_equal(back.len, n);
		if (n > 0)
			assert_memory_equal(back.data, data, n);
		buf_free(&gz);
		buf_free(&back);
		free(data);
	}
	{
		struct buf small;

		buf_init(&small, 10);
		assert_int_equal(
		    dmarc_agg_gzip("hello hello hello", 17, &small), -1);
		buf_free(&small);
	}
}

/* ------------------------------------------------------------ message */

static void
test_message(void **state)
{
	struct dmarc_agg_row rows[2];
	struct dmarc_agg_mail m = {
	    .from = "postmaster@mx.example.org",
	    .to = "dmarc@example.com",
	    .hostname = "mx.example.org",
	    .domain = "example.com",
	    .report_id = "1704067200.0123456789abcdef",
	    .message_id = "<1704067200.0123456789abcdef.0@mx.example.org>",
	    .begin = T_BEGIN,
	    .end = T_END,
	    .date = T_END + 60,
	};
	struct dmarc_agg_meta meta = sample_meta;
	struct dmarc_report_item *items = NULL;
	struct buf xml, gz, msg;
	char file[600];
	const char *p;
	size_t n;

	(void)state;
	sample_rows(rows);
	meta.org_name = "mx.example.org";
	buf_init(&xml, 0);
	buf_init(&gz, 0);
	buf_init(&msg, 0);
	assert_int_equal(dmarc_agg_xml(&meta, &sample_policy, rows, 2, &xml),
	                 0);
	assert_int_equal(dmarc_agg_gzip(xml.data, xml.len, &gz), 0);
	assert_int_equal(dmarc_agg_filename(&m, file, sizeof(file)), 0);
	assert_string_equal(file, "mx.example.org!example.com!1704067200!"
	                          "1704153599.xml.gz");
	assert_int_equal(dmarc_agg_filename(&m, file, 20), -1);
	assert_int_equal(dmarc_agg_message(&m, gz.data, gz.len, &msg), 0);
	assert_non_null(buf_cstr(&msg));
	p = (const char *)msg.data;
	assert_non_null(strstr(p, "From: <postmaster@mx.example.org>\r\n"));
	assert_non_null(strstr(p, "To: <dmarc@example.com>\r\n"));
	assert_non_null(strstr(p, "Date: Tue, 02 Jan 2024 00:00:59 +0000\r\n"));
	/* Folded (it is over 78 characters); unfolded it is §7.2.1.1's. */
	assert_non_null(strstr(p, "Subject: Report Domain: example.com\r\n"
	                          " Submitter: mx.example.org\r\n"
	                          " Report-ID: "
	                          "<1704067200.0123456789abcdef>\r\n"));
	assert_non_null(strstr(p, "Content-Type: application/gzip;\r\n"
	                          " name=\"mx.example.org!example.com!"
	                          "1704067200!1704153599.xml.gz\"\r\n"));
	assert_non_null(strstr(p, "Content-Disposition: attachment;\r\n"
	                          " filename=\"mx.example.org!example.com!"));
	/* CRLF only, lines within 998 (base64 within 76). */
	for (const char *l = p; *l != '\0';) {
		const char *e = strstr(l, "\r\n");

		assert_non_null(e);
		assert_true(e - l <= 998);
		assert_null(memchr(l, '\n', (size_t)(e - l)));
		l = e + 2;
	}

	/* The report reader finds the attachment and reads the report. */
	n = dmarc_report_from_message(p, msg.len, &items);
	assert_int_equal(n, 1);
	assert_null(items[0].error);
	assert_string_equal(items[0].filename, "mx.example.org!example.com!"
	                                       "1704067200!1704153599.xml.gz");
	assert_string_equal(items[0].feedback->report_id,
	                    "1704067200.0123456789abcdef");
	assert_int_equal(items[0].feedback->messages, 10);
	dmarc_report_items_free(&items, n);

	/* Header injection and odd ids are refused. */
	m.to = "dmarc@example.com\r\nBcc: x@evil.example";
	buf_reset(&msg);
	assert_int_equal(dmarc_agg_message(&m, gz.data, gz.len, &msg), -1);
	m.to = "dmarc@example.com";
	m.report_id = "a b";
	assert_int_equal(dmarc_agg_message(&m, gz.data, gz.len, &msg), -1);
	m.report_id = "1";
	/* Short: one line. */
	m.domain = "e.com";
	m.hostname = "mx.e.org";
	buf_reset(&msg);
	assert_int_equal(dmarc_agg_message(&m, gz.data, gz.len, &msg), 0);
	assert_non_null(buf_cstr(&msg));
	assert_non_null(strstr((const char *)msg.data,
	                       "Subject: Report Domain: e.com Submitter: "
	                       "mx.e.org Report-ID: <1>\r\n"));
	/* Bounded. */
	{
		struct buf small;

		buf_init(&small, 600);
		assert_int_equal(dmarc_agg_message(&m, gz.data, gz.len, &small),
		                 -1);
		buf_free(&small);
	}
	buf_free(&xml);
	buf_free(&gz);
	buf_free(&msg);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_record_from),
	    cmocka_unit_test(test_wire_roundtrip),
	    cmocka_unit_test(test_wire_refused),
	    cmocka_unit_test(test_mailto),
	    cmocka_unit_test(test_auth_name),
	    cmocka_unit_test(test_xml),
	    cmocka_unit_test(test_xml_bounded),
	    cmocka_unit_test(test_gzip),
	    cmocka_unit_test(test_message),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
