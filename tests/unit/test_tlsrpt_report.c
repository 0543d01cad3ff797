/* Unit tests for SMTP TLS Reporting (src/mailauth/tlsrpt_report.c): the
 * _smtp._tls record (RFC 8460 §3: one v=TLSRPTv1 record among others,
 * rua URIs kept, skipped and capped), rua mailto: URIs (table-driven),
 * the §4.4 JSON (one exact document, the presence rules, escaping, a
 * small JSON checker, bounded output), the §5.1 file name and the §5.3
 * message (taken apart: headers, parts, base64 back to the gzip, CRLF
 * lines; header injection refused; bounded output). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/base64.h"
#include "core/buf.h"
#include "mailauth/dmarc_agg.h"
#include "mailauth/tlsrpt_report.h"

#define T_BEGIN 1704067200 /* 2024-01-01T00:00:00Z */
#define T_END (T_BEGIN + 86399)

/* ---------------------------------------------------------- the record */

static void
test_record_valid(void **state)
{
	struct tlsrpt_policy_record rec;
	const char *one[] = {"v=TLSRPTv1; rua=mailto:tlsrpt@example.com,"
	                     "https://reports.example.com/v1"};
	/* WSP around fields and URIs, unknown fields, a trailing ';', the
	 * scheme in any case (kept as given), a TXT of another kind and a
	 * lookalike beside it. */
	const char *spaced[] = {
	    "v=spf1 -all",
	    "  v=TLSRPTv1 ;\text=1; rua= MAILTO:A@example.com ,\t"
	    "Https://r.example/x ;future=v; ",
	    "v=TLSRPTv10; rua=mailto:other@example.com",
	    "rua=mailto:first@example.com; v=TLSRPTv1",
	    NULL,
	};
	/* Other schemes and non-URIs are skipped; one usable is enough. */
	const char *mixed[] = {"v=TLSRPTv1;rua=ftp://x.example/,http://"
	                       "x.example/,a@example.com,mailto:,https://,"
	                       "mailto:ok@example.com"};

	(void)state;
	assert_int_equal(tlsrpt_policy_parse(one, 1, &rec), 0);
	assert_int_equal(rec.nrua, 2);
	assert_string_equal(rec.rua[0], "mailto:tlsrpt@example.com");
	assert_string_equal(rec.rua[1], "https://reports.example.com/v1");

	assert_int_equal(tlsrpt_policy_parse(spaced, 5, &rec), 0);
	assert_int_equal(rec.nrua, 2);
	assert_string_equal(rec.rua[0], "MAILTO:A@example.com");
	assert_string_equal(rec.rua[1], "Https://r.example/x");

	assert_int_equal(tlsrpt_policy_parse(mixed, 1, &rec), 0);
	assert_int_equal(rec.nrua, 1);
	assert_string_equal(rec.rua[0], "mailto:ok@example.com");
}

static void
test_record_refused(void **state)
{
	static const char *const cases[][2] = {
	    /* Two records: §3 says the domain has none. */
	    {"v=TLSRPTv1; rua=mailto:a@example.com",
	     "v=TLSRPTv1; rua=mailto:b@example.com"},
	    /* Two, one of them malformed: still two. */
	    {"v=TLSRPTv1; rua=mailto:a@example.com", "v=TLSRPTv1"},
	    {"v=TLSRPTv1", NULL},                            /* no rua */
	    {"v=TLSRPTv1; rua=", NULL},                      /* empty rua */
	    {"v=TLSRPTv1; rua= , ,", NULL},                  /* only commas */
	    {"v=TLSRPTv1; rua=ftp://x.example/", NULL},      /* no usable */
	    {"v=TLSRPTv1; RUA=mailto:a@example.com", NULL},  /* %s"rua=" */
	    {"v=TLSRPTv1; rua =mailto:a@example.com", NULL}, /* not rua= */
	    {"v=TLSRPTv1 rua=mailto:a@example.com", NULL},   /* no ';' */
	    {"v=tlsrptv1; rua=mailto:a@example.com", NULL},  /* %s"v=" */
	    {"v=spf1 -all", "v=DMARC1; p=none"},             /* none */
	    /* Two rua fields: which one? */
	    {"v=TLSRPTv1; rua=mailto:a@example.com; rua=mailto:b@example.com",
	     NULL},
	    /* A URI with a control character or a space in it. */
	    {"v=TLSRPTv1; rua=mailto:a\x01@example.com", NULL},
	    {"v=TLSRPTv1; rua=mailto:a b@example.com", NULL},
	};
	struct tlsrpt_policy_record rec;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t n = cases[i][1] != NULL ? 2 : 1;

		if (tlsrpt_policy_parse(cases[i], n, &rec) != -1)
			fail_msg("case %zu accepted", i);
		assert_int_equal(rec.nrua, 0);
	}
	assert_int_equal(tlsrpt_policy_parse(NULL, 0, &rec), -1);
}

static void
test_record_bounds(void **state)
{
	static char uri512[TLSRPT_URI_MAX + 1], uri513[TLSRPT_URI_MAX + 2];
	static char txt[8192], longtxt[4200];
	struct tlsrpt_policy_record rec;
	const char *v[2];
	size_t n;

	(void)state;
	/* A URI of TLSRPT_URI_MAX bytes is kept, one more is skipped. */
	memset(uri512, 'a', TLSRPT_URI_MAX);
	memcpy(uri512, "mailto:", 7);
	memcpy(uri512 + TLSRPT_URI_MAX - 12, "@example.com", 12);
	memset(uri513, 'a', TLSRPT_URI_MAX + 1);
	memcpy(uri513, "mailto:", 7);
	memcpy(uri513 + TLSRPT_URI_MAX + 1 - 12, "@example.com", 12);
	snprintf(txt, sizeof(txt), "v=TLSRPTv1; rua=%s,%s,mailto:x@example.com",
	         uri513, uri512);
	v[0] = txt;
	assert_int_equal(tlsrpt_policy_parse(v, 1, &rec), 0);
	assert_int_equal(rec.nrua, 2);
	assert_string_equal(rec.rua[0], uri512);
	assert_string_equal(rec.rua[1], "mailto:x@example.com");
	snprintf(txt, sizeof(txt), "v=TLSRPTv1; rua=%s", uri513);
	assert_int_equal(tlsrpt_policy_parse(v, 1, &rec), -1);

	/* Ten URIs: the first TLSRPT_RUA_MAX; a repeated one counts once. */
	n = (size_t)snprintf(txt, sizeof(txt),
	                     "v=TLSRPTv1; rua=mailto:r0@example.com");
	for (int i = 0; i < 10; i++)
		n += (size_t)snprintf(txt + n, sizeof(txt) - n,
		                      ",mailto:r%d@example.com", i);
	assert_int_equal(tlsrpt_policy_parse(v, 1, &rec), 0);
	assert_int_equal(rec.nrua, TLSRPT_RUA_MAX);
	assert_string_equal(rec.rua[0], "mailto:r0@example.com");
	assert_string_equal(rec.rua[1], "mailto:r1@example.com");
	assert_string_equal(rec.rua[TLSRPT_RUA_MAX - 1],
	                    "mailto:r7@example.com");

	/* A TXT over 4096 bytes is not read: the other one is the record. */
	memset(longtxt, 'x', sizeof(longtxt) - 1);
	memcpy(longtxt, "v=TLSRPTv1; rua=mailto:l@example.com; x=", 40);
	longtxt[sizeof(longtxt) - 1] = '\0';
	v[0] = longtxt;
	v[1] = "v=TLSRPTv1; rua=https://r.example/";
	assert_int_equal(tlsrpt_policy_parse(v, 2, &rec), 0);
	assert_int_equal(rec.nrua, 1);
	assert_string_equal(rec.rua[0], "https://r.example/");
	assert_int_equal(tlsrpt_policy_parse(v, 1, &rec), -1);
	longtxt[4096] = '\0'; /* exactly 4096: read */
	assert_int_equal(tlsrpt_policy_parse(v, 1, &rec), 0);
	assert_string_equal(rec.rua[0], "mailto:l@example.com");
}

/* ------------------------------------------------------------ mailto: */

static void
test_mailto(void **state)
{
	static const struct {
		const char *uri, *addr;
	} cases[] = {
	    {"mailto:tlsrpt@example.com", "tlsrpt@example.com"},
	    {"MailTo:TLS@Example.COM", "TLS@Example.COM"},
	    {"mailto:t+rua@example.com?subject=x&cc=y@evil.example",
	     "t+rua@example.com"},
	    {"mailto:rua%40example.com", "rua@example.com"},
	    {"mailto:a%2eb@example.com", "a.b@example.com"},
	    {"mailto:a@", NULL},
	    {"mailto:@example.com", NULL},
	    {"mailto:", NULL},
	    {"mailto:?to=a@example.com", NULL},
	    {"mailto:example.com", NULL},
	    {"mailto:a@b@example.com", NULL},
	    {"mailto:a%40b@example.com", NULL},
	    {"mailto:a@example.com,b@example.com", NULL},
	    {"mailto:a%2Cb@example.com", NULL},
	    {"mailto:<a@example.com>", NULL},
	    {"mailto:a\"b@example.com", NULL},
	    {"mailto:a\\b@example.com", NULL},
	    {"mailto:a b@example.com", NULL},
	    {"mailto:a%20b@example.com", NULL},
	    {"mailto:a@example.com%0d%0aBcc:x@evil.example", NULL},
	    {"mailto:a%00@example.com", NULL},
	    {"mailto:a%zz@example.com", NULL},
	    {"mailto:a%4@example.com", NULL},
	    {"mailto:a%@example.com", NULL},
	    {"mailto:caf\xc3\xa9@example.com", NULL},
	    {"mailto:a@example.com%ff", NULL},
	    {"https://r.example/", NULL},
	    {"mail:a@example.com", NULL},
	};
	char addr[TLSRPT_ADDRESS_MAX + 1], uri[TLSRPT_ADDRESS_MAX + 64];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc = tlsrpt_mailto(cases[i].uri, addr);

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
	}
	assert_int_equal(tlsrpt_mailto(NULL, addr), -1);

	/* TLSRPT_ADDRESS_MAX bytes after decoding, not one more. */
	memcpy(uri, "mailto:", 7);
	memset(uri + 7, 'a', TLSRPT_ADDRESS_MAX - 12);
	memcpy(uri + 7 + TLSRPT_ADDRESS_MAX - 12, "@example.com", 13);
	assert_int_equal(tlsrpt_mailto(uri, addr), 0);
	assert_int_equal(strlen(addr), TLSRPT_ADDRESS_MAX);
	memcpy(uri + 7 + TLSRPT_ADDRESS_MAX - 12, "@example.comx", 14);
	assert_int_equal(tlsrpt_mailto(uri, addr), -1);
	/* Encoded bytes count once decoded. */
	memcpy(uri + 7 + TLSRPT_ADDRESS_MAX - 12, "@example.co%6d", 15);
	assert_int_equal(tlsrpt_mailto(uri, addr), 0);
	assert_int_equal(strlen(addr), TLSRPT_ADDRESS_MAX);
}

/* --------------------------------------------------------------- JSON */

/* A small RFC 8259 checker, enough to say a report parses: objects,
 * arrays, strings with their escapes, unsigned integers. */
static const char *check_value(const char *p, int depth);

static const char *
skip_ws(const char *p)
{
	while (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')
		p++;
	return p;
}

static const char *
check_string(const char *p)
{
	if (*p != '"')
		return NULL;
	for (p++; *p != '"'; p++) {
		if ((unsigned char)*p < 0x20) /* the NUL too */
			return NULL;
		if (*p != '\\')
			continue;
		p++;
		if (*p == 'u') {
			for (int i = 1; i <= 4; i++)
				if (!isxdigit((unsigned char)p[i]))
					return NULL;
			p += 4;
		} else if (*p == '\0' || strchr("\"\\/bfnrt", *p) == NULL) {
			return NULL;
		}
	}
	return p + 1;
}

/* The members or elements of an object or an array, p past its bracket. */
static const char *
check_items(const char *p, int depth, bool object)
{
	char close = object ? '}' : ']';

	p = skip_ws(p);
	if (*p == close)
		return p + 1;
	for (;;) {
		if (object) {
			p = check_string(skip_ws(p));
			if (p == NULL || *(p = skip_ws(p)) != ':')
				return NULL;
			p++;
		}
		p = check_value(p, depth + 1);
		if (p == NULL)
			return NULL;
		p = skip_ws(p);
		if (*p == close)
			return p + 1;
		if (*p++ != ',')
			return NULL;
	}
}

static const char *
check_value(const char *p, int depth)
{
	if (depth > 32)
		return NULL;
	p = skip_ws(p);
	if (*p == '{' || *p == '[')
		return check_items(p + 1, depth, *p == '{');
	if (*p == '"')
		return check_string(p);
	if (!isdigit((unsigned char)*p) ||
	    (*p == '0' && isdigit((unsigned char)p[1])))
		return NULL;
	while (isdigit((unsigned char)*p))
		p++;
	return p;
}

static void
assert_json(struct buf *b)
{
	const char *s = buf_cstr(b), *end;

	assert_non_null(s);
	end = check_value(s, 0);
	if (end == NULL || *skip_ws(end) != '\0')
		fail_msg("not JSON:\n%s", s);
}

static const char *const sts_lines[] = {"version: STSv1", "mode: enforce",
                                        "mx: *.mail.example.com",
                                        "max_age: 86400"};
static const char *const sts_mx[] = {"*.mail.example.com"};

static const struct tlsrpt_report_meta sample_meta = {
    .org_name = "mx.example.org",
    .contact = "tlsrpt@mx.example.org",
    .report_id = "2024-01-01.1",
    .domain = "example.com",
    .begin = T_BEGIN,
    .end = T_END,
    .sts_lines = sts_lines,
    .nsts_lines = 4,
    .sts_mx = sts_mx,
    .nsts_mx = 1,
};

/* Out of order, and alike rows split (the caller's are distinct, but). */
static const struct tlsrpt_row sample_rows[] = {
    {"tlsa", "mx2.example.com", "success", "", 3},
    {"sts", "mx1.mail.example.com", "success", "", 10},
    {"sts", "mx1.mail.example.com", "certificate-expired", "", 2},
    {"tlsa", "mx1.example.com", "tlsa-invalid", "no usable TLSA", 1},
    {"sts", "mx1.mail.example.com", "success", "", 5},
    {"no-policy-found", "mx.other.example", "success", "", 7},
    {"tlsa", "mx2.example.com", "tlsa-invalid", "no usable TLSA", 4},
    {"sts", "mx1.mail.example.com", "certificate-expired", "", 1},
    {"tlsa", "mx1.example.com", "tlsa-invalid", "no usable TLSA", 2},
    {"tlsa", "mx1.example.com", "success", "", 1},
};
#define NSAMPLE (sizeof(sample_rows) / sizeof(sample_rows[0]))

static const char sample_json[] =
    "{\n"
    "  \"organization-name\": \"mx.example.org\",\n"
    "  \"date-range\": {\n"
    "    \"start-datetime\": \"2024-01-01T00:00:00Z\",\n"
    "    \"end-datetime\": \"2024-01-01T23:59:59Z\"\n"
    "  },\n"
    "  \"contact-info\": \"tlsrpt@mx.example.org\",\n"
    "  \"report-id\": \"2024-01-01.1\",\n"
    "  \"policies\": [\n"
    "    {\n"
    "      \"policy\": {\n"
    "        \"policy-type\": \"sts\",\n"
    "        \"policy-string\": [\n"
    "          \"version: STSv1\",\n"
    "          \"mode: enforce\",\n"
    "          \"mx: *.mail.example.com\",\n"
    "          \"max_age: 86400\"\n"
    "        ],\n"
    "        \"policy-domain\": \"example.com\",\n"
    "        \"mx-host\": [\n"
    "          \"*.mail.example.com\"\n"
    "        ]\n"
    "      },\n"
    "      \"summary\": {\n"
    "        \"total-successful-session-count\": 15,\n"
    "        \"total-failure-session-count\": 3\n"
    "      },\n"
    "      \"failure-details\": [\n"
    "        {\n"
    "          \"result-type\": \"certificate-expired\",\n"
    "          \"receiving-mx-hostname\": \"mx1.mail.example.com\",\n"
    "          \"failed-session-count\": 3\n"
    "        }\n"
    "      ]\n"
    "    },\n"
    "    {\n"
    "      \"policy\": {\n"
    "        \"policy-type\": \"tlsa\",\n"
    "        \"policy-domain\": \"example.com\",\n"
    "        \"mx-host\": [\n"
    "          \"mx2.example.com\",\n"
    "          \"mx1.example.com\"\n"
    "        ]\n"
    "      },\n"
    "      \"summary\": {\n"
    "        \"total-successful-session-count\": 4,\n"
    "        \"total-failure-session-count\": 7\n"
    "      },\n"
    "      \"failure-details\": [\n"
    "        {\n"
    "          \"result-type\": \"tlsa-invalid\",\n"
    "          \"receiving-mx-hostname\": \"mx1.example.com\",\n"
    "          \"failed-session-count\": 3,\n"
    "          \"failure-reason-code\": \"no usable TLSA\"\n"
    "        },\n"
    "        {\n"
    "          \"result-type\": \"tlsa-invalid\",\n"
    "          \"receiving-mx-hostname\": \"mx2.example.com\",\n"
    "          \"failed-session-count\": 4,\n"
    "          \"failure-reason-code\": \"no usable TLSA\"\n"
    "        }\n"
    "      ]\n"
    "    },\n"
    "    {\n"
    "      \"policy\": {\n"
    "        \"policy-type\": \"no-policy-found\",\n"
    "        \"policy-domain\": \"example.com\"\n"
    "      },\n"
    "      \"summary\": {\n"
    "        \"total-successful-session-count\": 7,\n"
    "        \"total-failure-session-count\": 0\n"
    "      }\n"
    "    }\n"
    "  ]\n"
    "}\n";

/* §4.4 field by field: sts, tlsa, no-policy-found in that order whatever
 * the rows' order; alike rows merged; the sums. */
static void
test_json_exact(void **state)
{
	struct buf b;

	(void)state;
	buf_init(&b, 0);
	assert_int_equal(
	    tlsrpt_report_json(&sample_meta, sample_rows, NSAMPLE, &b), 0);
	assert_json(&b);
	assert_string_equal(buf_cstr(&b), sample_json);
	buf_free(&b);
}

static const char *
json_of(const struct tlsrpt_report_meta *m, const struct tlsrpt_row *rows,
        size_t n, struct buf *b)
{
	buf_reset(b);
	assert_int_equal(tlsrpt_report_json(m, rows, n, b), 0);
	assert_json(b);
	return buf_cstr(b);
}

static void
test_json_rules(void **state)
{
	struct tlsrpt_report_meta m = sample_meta;
	const struct tlsrpt_row ok_only[] = {
	    {"sts", "mx1.example.com", "success", "", 4},
	    {"tlsa", "", "starttls-not-supported", "", 2},
	    {"bogus", "mx9.example.com", "success", "", 99},
	};
	const struct tlsrpt_row huge[] = {
	    {"no-policy-found", "a", "success", "", UINT64_MAX},
	    {"no-policy-found", "a", "success", "", 5},
	    {"no-policy-found", "a", "validation-failure", "", 0},
	};
	struct buf b;
	const char *s;

	(void)state;
	buf_init(&b, 0);
	/* sts without a known policy: no policy-string, no mx-host. Only
	 * successes: no failure-details. tlsa with no MX reached: no
	 * mx-host, no receiving-mx-hostname. Unknown types: left out. */
	m.nsts_lines = 0;
	m.nsts_mx = 0;
	s = json_of(&m, ok_only, 3, &b);
	assert_null(strstr(s, "policy-string"));
	assert_null(strstr(s, "mx-host"));
	assert_null(strstr(s, "receiving-mx-hostname"));
	assert_null(strstr(s, "bogus"));
	assert_null(strstr(s, "99"));
	assert_non_null(strstr(s, "\"policy-type\": \"sts\",\n"
	                          "        \"policy-domain\": \"example.com\"\n"
	                          "      },\n"
	                          "      \"summary\": {\n"
	                          "        \"total-successful-session-count\":"
	                          " 4,\n"
	                          "        \"total-failure-session-count\": 0\n"
	                          "      }\n"
	                          "    },\n"));
	assert_non_null(strstr(s, "\"failure-details\": [\n"
	                          "        {\n"
	                          "          \"result-type\": "
	                          "\"starttls-not-supported\",\n"
	                          "          \"failed-session-count\": 2\n"
	                          "        }\n"
	                          "      ]\n"));
	assert_null(strstr(s, "no-policy-found"));

	/* The policy lines without the mx patterns, and the other way. */
	m.nsts_lines = 4;
	s = json_of(&m, ok_only, 1, &b);
	assert_non_null(strstr(s, "\"policy-string\": [\n"));
	assert_null(strstr(s, "mx-host"));
	m.nsts_lines = 0;
	m.nsts_mx = 1;
	s = json_of(&m, ok_only, 1, &b);
	assert_null(strstr(s, "policy-string"));
	assert_non_null(strstr(s, "\"mx-host\": [\n"
	                          "          \"*.mail.example.com\"\n"));

	/* Counts saturate; a failure of no sessions is no entry. */
	s = json_of(&m, huge, 3, &b);
	assert_non_null(strstr(s, "\"total-successful-session-count\": "
	                          "18446744073709551615,\n"));
	assert_non_null(strstr(s, "\"total-failure-session-count\": 0\n"));
	assert_null(strstr(s, "failure-details"));

	/* No rows: an empty list. */
	s = json_of(&m, NULL, 0, &b);
	assert_non_null(strstr(s, "\"policies\": []\n}\n"));

	/* Dates out of the four-digit years. */
	m.end = INT64_MAX;
	buf_reset(&b);
	assert_int_equal(tlsrpt_report_json(&m, huge, 1, &b), -1);
	m.end = T_END;
	m.begin = -62135596801; /* 0000-12-31T23:59:59Z */
	assert_int_equal(tlsrpt_report_json(&m, huge, 1, &b), -1);
	assert_int_equal(b.len, 0);
	buf_free(&b);
}

static void
test_json_escape(void **state)
{
	struct tlsrpt_report_meta m = sample_meta;
	const struct tlsrpt_row rows[] = {
	    {"tlsa", "mx\n1.example.com", "validation-failure",
	     "say \"hi\"\\\x01\t\x7f caf\xc3\xa9 \xff \xed\xa0\x80 "
	     "\xf0\x9f\x98\x80 \xc0\xaf \xe2\x82 end",
	     1},
	};
	struct buf b;
	const char *s;

	(void)state;
	buf_init(&b, 0);
	m.org_name = "Org \"X\"";
	m.report_id = NULL; /* as "" */
	s = json_of(&m, rows, 1, &b);
	assert_non_null(strstr(s, "\"organization-name\": \"Org \\\"X\\\"\""));
	assert_non_null(strstr(s, "\"report-id\": \"\",\n"));
	assert_non_null(strstr(s, "\"mx-host\": [\n"
	                          "          \"mx\\u000a1.example.com\"\n"));
	assert_non_null(strstr(s, "\"receiving-mx-hostname\": "
	                          "\"mx\\u000a1.example.com\",\n"));
	/* Valid UTF-8 (é, U+1F600) as it is; a stray byte, a surrogate, an
	 * overlong form and a cut sequence as U+FFFD, byte by byte. */
	assert_non_null(strstr(s, "\"failure-reason-code\": \"say \\\"hi\\\""
	                          "\\\\\\u0001\\u0009\\u007f caf\xc3\xa9 "
	                          "\\ufffd \\ufffd\\ufffd\\ufffd "
	                          "\xf0\x9f\x98\x80 \\ufffd\\ufffd "
	                          "\\ufffd\\ufffd end\"\n"));
	buf_free(&b);
}

/* Every bound below the size the report needs: -1, nothing written. */
static void
test_json_bounded(void **state)
{
	struct buf b;
	size_t need = strlen(sample_json);

	(void)state;
	for (size_t max = 1; max < need; max++) {
		buf_init(&b, max);
		assert_int_equal(
		    tlsrpt_report_json(&sample_meta, sample_rows, NSAMPLE, &b),
		    -1);
		assert_int_equal(b.len, 0);
		buf_free(&b);
	}
	buf_init(&b, need);
	assert_int_equal(
	    tlsrpt_report_json(&sample_meta, sample_rows, NSAMPLE, &b), 0);
	assert_int_equal(b.len, need);
	buf_free(&b);
}

/* --------------------------------------------------------- the mail */

static const struct tlsrpt_mail sample_mail = {
    .from = "tlsrpt@mx.example.org",
    .to = "reports@example.com",
    .submitter = "mx.example.org",
    .domain = "example.com",
    /* As queue_tlsrpt.c makes them: day, domain, random. */
    .report_id = "2024-01-01T00:00:00Z_example.com_0123abcd",
    .message_id = "<2024-01-01.1.0@mx.example.org>",
    .begin = T_BEGIN,
    .end = T_END,
    .date = T_END + 60,
};

#define SAMPLE_FILE                                                            \
	"mx.example.org!example.com!1704067200!1704153599!"                    \
	"2024-01-01T00:00:00Z_example.com_0123abcd.json.gz"

static void
test_filename(void **state)
{
	static const char *const bad[] = {
	    "", "a!b", "a/b", "a b", "a\"b", "a\\b", "a\r\nb", "caf\xc3\xa9",
	};
	struct tlsrpt_mail m = sample_mail;
	char file[256];

	(void)state;
	assert_int_equal(tlsrpt_filename(&m, file, sizeof(file)), 0);
	assert_string_equal(file, SAMPLE_FILE);
	assert_int_equal(tlsrpt_filename(&m, file, sizeof(SAMPLE_FILE)), 0);
	assert_int_equal(tlsrpt_filename(&m, file, sizeof(SAMPLE_FILE) - 1),
	                 -1);
	assert_string_equal(file, "");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		m = sample_mail;
		m.submitter = bad[i];
		assert_int_equal(tlsrpt_filename(&m, file, sizeof(file)), -1);
		m = sample_mail;
		m.domain = bad[i];
		assert_int_equal(tlsrpt_filename(&m, file, sizeof(file)), -1);
		m = sample_mail;
		m.report_id = bad[i];
		assert_int_equal(tlsrpt_filename(&m, file, sizeof(file)), -1);
	}
	m = sample_mail;
	m.domain = NULL;
	assert_int_equal(tlsrpt_filename(&m, file, sizeof(file)), -1);
}

/* CRLF only, each line within 998 characters. */
static void
assert_crlf_lines(const char *p, size_t len)
{
	const char *end = p + len;

	assert_true(len >= 2 && end[-2] == '\r' && end[-1] == '\n');
	while (p < end) {
		const char *e = strstr(p, "\r\n");

		assert_non_null(e);
		assert_true(e - p <= 998);
		assert_null(memchr(p, '\n', (size_t)(e - p)));
		assert_null(memchr(p, '\r', (size_t)(e - p)));
		p = e + 2;
	}
}

/* The text between the part's header and the next boundary line. */
static const char *
part_body(const char *part, const char *next, size_t *len_r)
{
	const char *body = strstr(part, "\r\n\r\n");

	assert_non_null(body);
	assert_true(body < next);
	body += 4;
	*len_r = (size_t)(next - body);
	return body;
}

/* The attachment's base64 lines (76 characters but the last) decoded. */
static void
assert_base64_is(const char *b64, size_t len, const struct buf *gz)
{
	char *joined = malloc(len + 1);
	uint8_t *dec = malloc(len + 1);
	size_t n = 0, declen = 0;

	assert_non_null(joined);
	assert_non_null(dec);
	for (const char *p = b64; p < b64 + len;) {
		const char *e = strstr(p, "\r\n");

		assert_non_null(e);
		assert_true(e - p <= 76);
		if (e + 2 < b64 + len)
			assert_int_equal(e - p, 76);
		memcpy(joined + n, p, (size_t)(e - p));
		n += (size_t)(e - p);
		p = e + 2;
	}
	assert_int_equal(base64_decode(joined, n, dec, len, &declen), 0);
	assert_int_equal(declen, gz->len);
	assert_memory_equal(dec, gz->data, gz->len);
	free(joined);
	free(dec);
}

/* The report JSON gzipped, as queue_tlsrpt.c will. */
static void
sample_gz(struct buf *gz)
{
	struct buf json;

	buf_init(&json, 0);
	buf_init(gz, 0);
	assert_int_equal(
	    tlsrpt_report_json(&sample_meta, sample_rows, NSAMPLE, &json), 0);
	assert_int_equal(dmarc_agg_gzip(json.data, json.len, gz), 0);
	assert_true(gz->len > 2 * 57); /* several base64 lines */
	buf_free(&json);
}

static void
test_message(void **state)
{
	struct buf gz, msg;
	char boundary[128], delim[160], last[160];
	const char *p, *body, *bnd, *part1, *part2, *closing, *att;
	size_t len, n;

	(void)state;
	sample_gz(&gz);
	buf_init(&msg, 0);
	assert_int_equal(
	    tlsrpt_report_message(&sample_mail, gz.data, gz.len, &msg), 0);
	assert_non_null(buf_cstr(&msg));
	p = (const char *)msg.data;
	assert_int_equal(strlen(p), msg.len);
	assert_crlf_lines(p, msg.len);

	/* The header (§5.3). */
	body = strstr(p, "\r\n\r\n");
	assert_non_null(body);
	assert_true(strncmp(p, "From: <tlsrpt@mx.example.org>\r\n", 31) == 0);
	assert_non_null(strstr(p, "\r\nTo: <reports@example.com>\r\n"));
	assert_non_null(
	    strstr(p, "\r\nDate: Tue, 02 Jan 2024 00:00:59 +0000\r\n"));
	/* Over 78 characters: folded before Submitter: and Report-ID:. */
	assert_non_null(strstr(p, "\r\nSubject: Report Domain: example.com\r\n"
	                          " Submitter: mx.example.org\r\n"
	                          " Report-ID: "
	                          "<2024-01-01T00:00:00Z_example.com_0123abcd>"
	                          "\r\n"));
	assert_non_null(strstr(p, "\r\nTLS-Report-Domain: example.com\r\n"));
	assert_non_null(
	    strstr(p, "\r\nTLS-Report-Submitter: mx.example.org\r\n"));
	assert_non_null(
	    strstr(p, "\r\nMessage-ID: <2024-01-01.1.0@mx.example.org>\r\n"));
	assert_non_null(strstr(p, "\r\nMIME-Version: 1.0\r\n"));
	assert_non_null(strstr(p, "\r\nContent-Type: multipart/report; "
	                          "report-type=\"tlsrpt\";\r\n boundary=\""));
	assert_true(strstr(p, "TLS-Report-Domain") < body);

	/* The parts: text, the gzip, the closing delimiter. */
	bnd = strstr(p, "boundary=\"") + strlen("boundary=\"");
	n = strcspn(bnd, "\"");
	assert_true(n > 0 && n <= 70);
	snprintf(boundary, sizeof(boundary), "%.*s", (int)n, bnd);
	/* A token made of the report id. */
	assert_string_equal(
	    boundary,
	    "=_tern_tlsrpt_2024-01-01T00_00_00Z_example.com_0123abcd");
	snprintf(delim, sizeof(delim), "\r\n--%s\r\n", boundary);
	snprintf(last, sizeof(last), "\r\n--%s--\r\n", boundary);
	part1 = strstr(body, delim);
	assert_non_null(part1);
	part2 = strstr(part1 + 1, delim);
	assert_non_null(part2);
	assert_null(strstr(part2 + 1, delim));
	closing = strstr(p, last);
	assert_non_null(closing);
	assert_true(closing > part2);
	assert_int_equal(closing + strlen(last), p + msg.len);

	assert_true(strncmp(part1 + strlen(delim),
	                    "Content-Type: text/plain; charset=us-ascii\r\n",
	                    44) == 0);
	att = part2 + strlen(delim);
	assert_true(strncmp(att, "Content-Type: application/tlsrpt+gzip", 37) ==
	            0);
	assert_non_null(strstr(att, "\r\nContent-Disposition: attachment;\r\n"
	                            " filename=\"" SAMPLE_FILE "\"\r\n"));
	assert_non_null(strstr(att, "\r\nContent-Transfer-Encoding: base64\r\n"
	                            "\r\n"));
	/* The text part names the report; the base64 is the gzip. */
	{
		const char *text = part_body(part1 + 2, part2, &len);
		const char *rfc = strstr(text, "RFC 8460");

		assert_non_null(rfc);
		assert_true(rfc < part2);
	}
	body = part_body(att, closing + 2, &len);
	assert_base64_is(body, len, &gz);

	/* A short one is not. */
	{
		struct tlsrpt_mail m = sample_mail;

		m.domain = "e.com";
		m.submitter = "mx.e.org";
		m.report_id = "1";
		buf_reset(&msg);
		assert_int_equal(
		    tlsrpt_report_message(&m, gz.data, gz.len, &msg), 0);
		assert_non_null(buf_cstr(&msg));
		assert_non_null(
		    strstr((const char *)msg.data,
		           "\r\nSubject: Report Domain: e.com "
		           "Submitter: mx.e.org Report-ID: <1>\r\n"));
		assert_non_null(strstr((const char *)msg.data,
		                       " filename=\"mx.e.org!e.com!1704067200!"
		                       "1704153599!1.json.gz\"\r\n"));
		assert_crlf_lines((const char *)msg.data, msg.len);
	}
	buf_free(&gz);
	buf_free(&msg);
}

static void
test_message_refused(void **state)
{
	static char longto[1200];
	static char longid[301];
	struct tlsrpt_mail m;
	struct buf gz, msg;
	size_t need;

	(void)state;
	sample_gz(&gz);
	buf_init(&msg, 0);
#define REFUSED(field, value)                                                  \
	do {                                                                   \
		m = sample_mail;                                               \
		m.field = (value);                                             \
		buf_reset(&msg);                                               \
		assert_int_equal(                                              \
		    tlsrpt_report_message(&m, gz.data, gz.len, &msg), -1);     \
		assert_int_equal(msg.len, 0);                                  \
	} while (0)
	/* Header injection, odd values. */
	REFUSED(domain, "example.com\r\nBcc: x@evil.example");
	REFUSED(domain, "example.com\n");
	REFUSED(report_id, "1\r\nBcc: x@evil.example");
	REFUSED(report_id, "a b");
	REFUSED(report_id, "a<b>");
	REFUSED(submitter, "mx!example.org");
	REFUSED(to, "reports@example.com\r\nBcc: x@evil.example");
	REFUSED(from, "a\rb");
	REFUSED(message_id, "<a@b>\nX: y");
	REFUSED(from, "caf\xc3\xa9@example.org");
	REFUSED(to, "");
	REFUSED(to, NULL);
	REFUSED(message_id, NULL);
	REFUSED(end, INT64_MAX);
	/* A line over 998 characters. */
	memset(longto, 'a', sizeof(longto) - 1);
	REFUSED(to, longto);
#undef REFUSED

	/* Any report id the Subject can hold (§5.3's example is a msg-id);
	 * a long one is cut in the boundary (RFC 2046: at most 70). */
	m = sample_mail;
	m.report_id = "735ff.e317+bf22029@example.net";
	buf_reset(&msg);
	assert_int_equal(tlsrpt_report_message(&m, gz.data, gz.len, &msg), 0);
	assert_non_null(buf_cstr(&msg));
	assert_non_null(
	    strstr((const char *)msg.data,
	           " Report-ID: <735ff.e317+bf22029@example.net>\r\n"));
	assert_non_null(strstr((const char *)msg.data,
	                       " boundary=\"=_tern_tlsrpt_735ff.e317_bf22029_"
	                       "example.net\"\r\n"));
	memset(longid, 'a', sizeof(longid) - 1);
	m.report_id = longid;
	buf_reset(&msg);
	assert_int_equal(tlsrpt_report_message(&m, gz.data, gz.len, &msg), 0);
	assert_non_null(buf_cstr(&msg));
	assert_non_null(strstr((const char *)msg.data,
	                       " boundary=\"=_tern_tlsrpt_aaaaaaaaaaaaaaaaaaaa"
	                       "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"\r\n"));
	assert_crlf_lines((const char *)msg.data, msg.len);

	/* Bounded: every size short of the message fails without a byte. */
	buf_reset(&msg);
	assert_int_equal(
	    tlsrpt_report_message(&sample_mail, gz.data, gz.len, &msg), 0);
	need = msg.len;
	for (size_t max = 1; max < need; max += max < 64 ? 1 : 37) {
		struct buf small;

		buf_init(&small, max);
		assert_int_equal(tlsrpt_report_message(&sample_mail, gz.data,
		                                       gz.len, &small),
		                 -1);
		assert_int_equal(small.len, 0);
		buf_free(&small);
	}
	{
		struct buf small;

		buf_init(&small, 600);
		assert_int_equal(tlsrpt_report_message(&sample_mail, gz.data,
		                                       gz.len, &small),
		                 -1);
		buf_free(&small);
		buf_init(&small, need);
		assert_int_equal(tlsrpt_report_message(&sample_mail, gz.data,
		                                       gz.len, &small),
		                 0);
		buf_free(&small);
	}
	buf_free(&gz);
	buf_free(&msg);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_record_valid),
	    cmocka_unit_test(test_record_refused),
	    cmocka_unit_test(test_record_bounds),
	    cmocka_unit_test(test_mailto),
	    cmocka_unit_test(test_json_exact),
	    cmocka_unit_test(test_json_rules),
	    cmocka_unit_test(test_json_escape),
	    cmocka_unit_test(test_json_bounded),
	    cmocka_unit_test(test_filename),
	    cmocka_unit_test(test_message),
	    cmocka_unit_test(test_message_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
