/* Unit tests for DMARC aggregate reports (src/mailauth/dmarc_report*.c):
 * the schema on Google, Microsoft, Yahoo and DMARCbis-style reports in
 * $TERN_TEST_SRCDIR/tests/data/dmarc-reports, the XML reader's bounds and
 * refusals (table-driven), gzip and zip containers, bombs and truncated
 * archives refused quickly, and report attachments found in messages. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <zlib.h>

#include "core/base64.h"
#include "core/buf.h"
#include "core/xmalloc.h"
#include "mailauth/dmarc_report.h"
#include "mailauth/dmarc_report_int.h"

/* Bombs must be refused within this (generous, for sanitizer builds). */
#define BOMB_SECONDS 5.0

/* ------------------------------------------------------------ fixtures */

static char *
fixture(const char *name, size_t *len_r)
{
	const char *src = getenv("TERN_TEST_SRCDIR");
	char *path = xasprintf("%s/tests/data/dmarc-reports/%s",
	                       src != NULL && *src != '\0' ? src : ".", name);
	FILE *f = fopen(path, "rb");
	struct buf b;
	char chunk[65536];
	size_t n;

	if (f == NULL)
		fail_msg("cannot open %s (set TERN_TEST_SRCDIR)", path);
	buf_init(&b, 0);
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		assert_int_equal(buf_append(&b, chunk, n), 0);
	fclose(f);
	free(path);
	assert_non_null(buf_cstr(&b));
	*len_r = b.len;
	return (char *)b.data;
}

static struct dmarc_feedback *
parse_ok(const char *xml, size_t len)
{
	struct dmarc_feedback *fb = NULL;
	char *error = NULL;

	if (dmarc_report_parse(xml, len, &fb, &error) < 0)
		fail_msg("parse failed: %s", error);
	assert_non_null(fb);
	assert_null(error);
	return fb;
}

static struct dmarc_feedback *
parse_fixture(const char *name)
{
	size_t len;
	char *xml = fixture(name, &len);
	struct dmarc_feedback *fb = parse_ok(xml, len);

	free(xml);
	return fb;
}

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ------------------------------------------------------------ schema */

static void
test_google(void **state)
{
	struct dmarc_feedback *fb = parse_fixture("google.xml");
	const struct dmarc_feedback_record *r;

	(void)state;
	assert_string_equal(fb->org_name, "google.com");
	assert_string_equal(fb->email, "noreply-dmarc-support@google.com");
	assert_string_equal(fb->extra_contact_info,
	                    "https://support.google.com/a/answer/2466580");
	assert_string_equal(fb->report_id, "13837365129837483921");
	assert_int_equal(fb->begin, 1704067200);
	assert_int_equal(fb->end, 1704153599);
	assert_string_equal(fb->domain, "example.test");
	assert_int_equal(fb->adkim, DMARC_REPORT_A_RELAXED);
	assert_int_equal(fb->aspf, DMARC_REPORT_A_RELAXED);
	assert_int_equal(fb->p, DMARC_REPORT_P_NONE);
	assert_int_equal(fb->sp, DMARC_REPORT_P_NONE);
	assert_int_equal(fb->pct, 100);
	assert_null(fb->fo);
	assert_int_equal(fb->nrecords, 3);
	assert_int_equal(fb->messages, 20);

	r = &fb->records[0];
	assert_string_equal(r->source_ip, "192.0.2.10");
	assert_int_equal(r->count, 12);
	assert_int_equal(r->disposition, DMARC_REPORT_P_NONE);
	assert_int_equal(r->dkim, DMARC_REPORT_R_PASS);
	assert_int_equal(r->spf, DMARC_REPORT_R_PASS);
	assert_string_equal(r->header_from, "example.test");
	assert_null(r->envelope_from);
	assert_int_equal(r->ndkim, 2);
	assert_string_equal(r->dkim_results[0].selector, "20240101r");
	assert_string_equal(r->dkim_results[1].selector, "20240101e");
	assert_int_equal(r->dkim_results[1].result, DMARC_REPORT_R_PASS);
	assert_int_equal(r->nspf, 1);
	assert_string_equal(r->spf_results[0].domain, "example.test");
	assert_null(r->spf_results[0].scope);

	r = &fb->records[1];
	assert_string_equal(r->source_ip, "203.0.113.66");
	assert_int_equal(r->dkim, DMARC_REPORT_R_FAIL);
	assert_int_equal(r->spf, DMARC_REPORT_R_FAIL);
	assert_int_equal(r->ndkim, 0);
	assert_null(r->dkim_results);
	assert_int_equal(r->spf_results[0].result, DMARC_REPORT_R_SOFTFAIL);

	r = &fb->records[2];
	assert_string_equal(r->source_ip, "198.51.100.7");
	assert_int_equal(r->dkim, DMARC_REPORT_R_PASS);
	assert_int_equal(r->spf, DMARC_REPORT_R_FAIL);
	assert_string_equal(r->spf_results[0].domain, "forwarder.example");
	dmarc_report_free(&fb);
	assert_null(fb);
}

static void
test_microsoft(void **state)
{
	struct dmarc_feedback *fb = parse_fixture("microsoft.xml");
	const struct dmarc_feedback_record *r;

	(void)state;
	assert_string_equal(fb->org_name, "Enterprise Outlook");
	assert_string_equal(fb->report_id, "5b8fa1c2e3d44f0e9a7b6c5d4e3f2a1b");
	assert_string_equal(fb->fo, "0");
	assert_int_equal(fb->nrecords, 3);
	assert_int_equal(fb->messages, 7);
	r = &fb->records[0];
	assert_string_equal(r->envelope_to, "outlook.com");
	assert_string_equal(r->envelope_from, "example.test");
	assert_string_equal(r->spf_results[0].scope, "mfrom");
	/* The address in inet_ntop() form. */
	r = &fb->records[1];
	assert_string_equal(r->source_ip, "2001:db8::25");
	r = &fb->records[2];
	assert_int_equal(r->dkim_results[0].result, DMARC_REPORT_R_PERMERROR);
	assert_int_equal(r->spf_results[0].result, DMARC_REPORT_R_FAIL);
	dmarc_report_free(&fb);
}

static void
test_yahoo(void **state)
{
	struct dmarc_feedback *fb = parse_fixture("yahoo.xml");
	const struct dmarc_feedback_record *r;

	(void)state;
	assert_string_equal(fb->org_name, "Yahoo");
	assert_int_equal(fb->sp, DMARC_REPORT_P_MISSING);
	assert_int_equal(fb->nrecords, 3);
	assert_int_equal(fb->messages, 9);
	r = &fb->records[2];
	assert_int_equal(r->reasons, DMARC_REPORT_REASON_MAILING_LIST);
	assert_int_equal(r->spf_results[0].result, DMARC_REPORT_R_PASS);
	assert_int_equal(fb->records[1].spf_results[0].result,
	                 DMARC_REPORT_R_NEUTRAL);
	dmarc_report_free(&fb);
}

static void
test_dmarcbis(void **state)
{
	struct dmarc_feedback *fb = parse_fixture("dmarcbis.xml");
	const struct dmarc_feedback_record *r;

	(void)state;
	/* Entities, character references and CDATA decoded. */
	assert_string_equal(fb->org_name, "Example & Sons \xe2\x80\x94 Mail");
	assert_string_equal(fb->email, "dmarc@reporter.example");
	assert_string_equal(fb->report_id, "id<1>&2");
	assert_int_equal(fb->begin, 1704067200);
	assert_int_equal(fb->nerrors, 1);
	/* Lower case, no final dot. */
	assert_string_equal(fb->domain, "example.org");
	assert_int_equal(fb->p, DMARC_REPORT_P_REJECT);
	assert_int_equal(fb->sp, DMARC_REPORT_P_QUARANTINE);
	assert_int_equal(fb->adkim, DMARC_REPORT_A_STRICT);
	assert_int_equal(fb->aspf, DMARC_REPORT_A_MISSING);
	assert_int_equal(fb->pct, -1);
	/* <x:record> in the extension is not a record. */
	assert_int_equal(fb->nrecords, 1);
	r = &fb->records[0];
	assert_string_equal(r->source_ip, "2001:db8::1");
	assert_int_equal(r->count, 7);
	assert_int_equal(r->disposition, DMARC_REPORT_P_REJECT);
	assert_int_equal(r->dkim, DMARC_REPORT_R_FAIL);
	assert_int_equal(r->reasons, DMARC_REPORT_REASON_LOCAL_POLICY);
	assert_string_equal(r->header_from, "mail.example.org");
	assert_string_equal(r->envelope_from, "");
	assert_int_equal(r->dkim_results[0].result, DMARC_REPORT_R_FAIL);
	assert_string_equal(r->spf_results[0].scope, "helo");
	assert_int_equal(r->spf_results[0].result, DMARC_REPORT_R_TEMPERROR);
	dmarc_report_free(&fb);
}

/* Documents that parse, and what they say. */
static void
test_tolerated(void **state)
{
	static const struct {
		const char *xml;
		const char *report_id;
		size_t nrecords;
	} cases[] = {
	    /* BOM, CRLF, single quotes, self-closing unknown elements */
	    {"\xef\xbb\xbf<?xml version='1.0'?>\r\n<feedback a='1' b=\"2\">"
	     "<report_metadata><report_id>x</report_id><date_range><begin>1"
	     "</begin><end>2</end></date_range><x/></report_metadata>"
	     "<policy_published><domain>d.example</domain></policy_published>"
	     "</feedback>\r\n",
	     "x", 0},
	    /* end tags with white space, comments everywhere */
	    {"<!--a--><feedback ><!--b--><report_metadata><report_id >y"
	     "</report_id ><date_range><begin>1</begin><end>2</end>"
	     "</date_range></report_metadata><policy_published><domain>d"
	     "</domain></policy_published><record><row><source_ip>192.0.2.1"
	     "</source_ip><count>0</count></row></record></feedback><!--c-->",
	     "y", 1},
	    /* a default namespace, repeated elements: the first counts */
	    {"<feedback xmlns=\"urn:ietf:params:xml:ns:dmarc-2.0\">"
	     "<report_metadata><report_id>first</report_id><report_id>second"
	     "</report_id><date_range><begin>1</begin><end>2</end>"
	     "</date_range></report_metadata><policy_published><domain>d"
	     "</domain><p>bogus</p></policy_published></feedback>",
	     "first", 0},
	    /* more DKIM results than are kept */
	    {"<feedback><report_metadata><report_id>z</report_id><date_range>"
	     "<begin>1</begin><end>2</end></date_range></report_metadata>"
	     "<policy_published><domain>d</domain></policy_published><record>"
	     "<row><source_ip>::1</source_ip><count>1</count></row>"
	     "<auth_results><dkim/><dkim/><dkim/><dkim/><dkim/><dkim/><dkim/>"
	     "<dkim/><dkim/><dkim/><dkim/><dkim/><dkim/><dkim/><dkim/><dkim/>"
	     "<dkim/><dkim/><dkim><domain>x</domain></dkim></auth_results>"
	     "</record></feedback>",
	     "z", 1},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct dmarc_feedback *fb =
		    parse_ok(cases[i].xml, strlen(cases[i].xml));

		assert_string_equal(fb->report_id, cases[i].report_id);
		assert_int_equal(fb->nrecords, cases[i].nrecords);
		if (i == 2)
			assert_int_equal(fb->p, DMARC_REPORT_P_OTHER);
		if (i == 3)
			assert_int_equal(fb->records[0].ndkim,
			                 DMARC_REPORT_AUTH_MAX);
		dmarc_report_free(&fb);
	}
}

#define GOOD_HEAD                                                              \
	"<feedback><report_metadata><report_id>r</report_id><date_range>"      \
	"<begin>1</begin><end>2</end></date_range></report_metadata>"          \
	"<policy_published><domain>d</domain></policy_published>"

/* Documents refused, and a word of why. */
static void
test_refused(void **state)
{
	static const struct {
		const char *xml;
		const char *why;
	} cases[] = {
	    {"", "no root element"},
	    {"  \n", "no root element"},
	    {"not xml", "outside the root"},
	    {"<report><x/></report>", "not a DMARC aggregate report"},
	    {GOOD_HEAD, "ends inside <feedback>"},
	    {GOOD_HEAD "</record></feedback>", "closes <feedback>"},
	    {GOOD_HEAD "</feedback><feedback/>", "after the end of the root"},
	    {GOOD_HEAD "</feedback>trailing", "outside the root"},
	    {GOOD_HEAD "<x>&foo;</x></feedback>", "bad entity"},
	    {GOOD_HEAD "<x>&#0;</x></feedback>", "bad entity"},
	    {GOOD_HEAD "<x>&#xD800;</x></feedback>", "bad entity"},
	    {GOOD_HEAD "<x>& </x></feedback>", "bad entity"},
	    {GOOD_HEAD "<x a=1/></feedback>", "attribute"},
	    {GOOD_HEAD "<x a=\"<\"/></feedback>", "attribute"},
	    {GOOD_HEAD "<x a=\"1\"b=\"2\"/></feedback>", "attribute"},
	    {GOOD_HEAD "<x><!-- open </x></feedback>", "unterminated comment"},
	    {GOOD_HEAD "<x><![CDATA[ open </x></feedback>", "CDATA"},
	    {GOOD_HEAD "<x><? open </x></feedback>", "processing instruction"},
	    {GOOD_HEAD "<x><!ENTITY a \"b\"></x></feedback>", "markup"},
	    {GOOD_HEAD "< x/></feedback>", "starts no tag"},
	    {"<!DOCTYPE lolz [<!ENTITY lol \"lol\"><!ENTITY lol2 "
	     "\"&lol;&lol;\">]><feedback>&lol2;</feedback>",
	     "internal subset"},
	    {"<feedback><report_metadata><date_range><begin>1</begin><end>2"
	     "</end></date_range></report_metadata><policy_published><domain>d"
	     "</domain></policy_published></feedback>",
	     "report_id"},
	    {"<feedback><report_metadata><report_id>r</report_id>"
	     "</report_metadata><policy_published><domain>d</domain>"
	     "</policy_published></feedback>",
	     "date_range"},
	    {"<feedback><report_metadata><report_id>r</report_id><date_range>"
	     "<begin>1</begin><end>-2</end></date_range></report_metadata>"
	     "<policy_published><domain>d</domain></policy_published>"
	     "</feedback>",
	     "not a time"},
	    {"<feedback><report_metadata><report_id>r</report_id><date_range>"
	     "<begin>1</begin><end>2</end></date_range></report_metadata>"
	     "</feedback>",
	     "<domain>"},
	    {GOOD_HEAD
	     "<record><row><count>1</count></row></record></feedback>",
	     "no <source_ip>"},
	    {GOOD_HEAD "<record><row><source_ip>192.0.2.1</source_ip></row>"
	               "</record></feedback>",
	     "no <count>"},
	    {GOOD_HEAD "<record><row><source_ip>192.0.2.256</source_ip><count>1"
	               "</count></row></record></feedback>",
	     "not an IP"},
	    {GOOD_HEAD "<record><row><source_ip>example.com</source_ip><count>1"
	               "</count></row></record></feedback>",
	     "not an IP"},
	    {GOOD_HEAD "<record><row><source_ip>192.0.2.1</source_ip><count>12a"
	               "</count></row></record></feedback>",
	     "not a number"},
	    {GOOD_HEAD "<record><row><source_ip>192.0.2.1</source_ip><count>"
	               "99999999999999999999</count></row></record></feedback>",
	     "not a number"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct dmarc_feedback *fb = NULL;
		char *error = NULL;

		if (dmarc_report_parse(cases[i].xml, strlen(cases[i].xml), &fb,
		                       &error) == 0)
			fail_msg("case %zu parsed: %s", i, cases[i].xml);
		assert_null(fb);
		assert_non_null(error);
		if (strstr(error, cases[i].why) == NULL)
			fail_msg("case %zu: \"%s\" does not say \"%s\"", i,
			         error, cases[i].why);
		assert_non_null(strstr(error, "line "));
		free(error);
	}
}

/* A document made of head, n copies of unit, and tail. */
static char *
repeat(const char *head, const char *unit, size_t n, const char *tail,
       size_t *len_r)
{
	struct buf b;

	buf_init(&b, 0);
	assert_int_equal(buf_append_str(&b, head), 0);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(buf_append_str(&b, unit), 0);
	assert_int_equal(buf_append_str(&b, tail), 0);
	assert_non_null(buf_cstr(&b)); /* the callers use it as a string */
	*len_r = b.len;
	return (char *)b.data;
}

static void
expect_refused(const char *xml, size_t len, const char *why)
{
	struct dmarc_feedback *fb = NULL;
	char *error = NULL;

	assert_int_equal(dmarc_report_parse(xml, len, &fb, &error), -1);
	assert_null(fb);
	if (strstr(error, why) == NULL)
		fail_msg("\"%s\" does not say \"%s\"", error, why);
	free(error);
}

/* Depth, text, value, name, record and NUL bounds. */
static void
test_bounds(void **state)
{
	char *xml, *open, *close;
	size_t len;

	(void)state;
	/* One level past the depth bound; the bound itself is fine. */
	open = repeat("", "<a>", DMARC_REPORT_DEPTH_MAX, "", &len);
	close = repeat("", "</a>", DMARC_REPORT_DEPTH_MAX, "", &len);
	xml = xasprintf("<feedback>%s%s</feedback>", open + 3, close + 4);
	expect_refused(xml, strlen(xml), "report_id"); /* depth 32: read */
	free(xml);
	xml = xasprintf("<feedback>%s%s</feedback>", open, close);
	expect_refused(xml, strlen(xml), "deeper than");
	free(xml);
	free(open);
	free(close);

	/* Character data of one element. */
	xml = repeat(GOOD_HEAD "<x>", "0123456789abcdef",
	             DMARC_REPORT_TEXT_MAX / 16 + 1, "</x></feedback>", &len);
	expect_refused(xml, len, "bytes of text");
	free(xml);
	/* Many short text nodes in one element are not one long one. */
	xml = repeat(GOOD_HEAD "<x>", "0123456789abcdef<y/>",
	             DMARC_REPORT_TEXT_MAX / 16 + 1, "</x></feedback>", &len);
	{
		struct dmarc_feedback *fb = parse_ok(xml, len);

		dmarc_report_free(&fb);
	}
	free(xml);
	/* A value the schema reads. */
	xml = repeat(
	    "<feedback><report_metadata><org_name>", "x",
	    DMARC_REPORT_VALUE_MAX + 1,
	    "</org_name><report_id>r</report_id><date_range><begin>1</begin>"
	    "<end>2</end></date_range></report_metadata><policy_published>"
	    "<domain>d</domain></policy_published></feedback>",
	    &len);
	expect_refused(xml, len, "longer than");
	free(xml);
	/* An element name. */
	xml = repeat(GOOD_HEAD "<", "n", DMARC_REPORT_NAME_MAX + 1,
	             "/></feedback>", &len);
	expect_refused(xml, len, "name longer");
	free(xml);
	/* NUL bytes. */
	{
		static const char nul[] = GOOD_HEAD "<x>a\0b</x></feedback>";

		expect_refused(nul, sizeof(nul) - 1, "NUL");
	}
	/* Records. */
	xml = repeat(GOOD_HEAD,
	             "<record><row><source_ip>192.0.2.1</source_ip><count>1"
	             "</count></row></record>",
	             DMARC_REPORT_RECORDS_MAX + 1, "</feedback>", &len);
	expect_refused(xml, len, "more than 100000 records");
	free(xml);
	/* At the bound: read, and the message count adds up. */
	xml = repeat(GOOD_HEAD,
	             "<record><row><source_ip>192.0.2.1</source_ip><count>3"
	             "</count></row></record>",
	             DMARC_REPORT_RECORDS_MAX, "</feedback>", &len);
	{
		struct dmarc_feedback *fb = parse_ok(xml, len);

		assert_int_equal(fb->nrecords, DMARC_REPORT_RECORDS_MAX);
		assert_int_equal(fb->messages, 3 * DMARC_REPORT_RECORDS_MAX);
		dmarc_report_free(&fb);
	}
	free(xml);
	/* Elements (cheap ones, so the test stays quick). */
	xml = repeat(GOOD_HEAD, "<a/>", DMARC_REPORT_ELEMENTS_MAX,
	             "</feedback>", &len);
	expect_refused(xml, len, "more than 4000000 elements");
	free(xml);
}

/* Every prefix of a report is refused without harm, and the reader sees
 * the same events in a document with the same content split differently
 * (CDATA, references). */
static void
test_prefixes(void **state)
{
	size_t len;
	char *xml = fixture("google.xml", &len);

	(void)state;
	for (size_t n = 0; n < len; n++) {
		struct dmarc_feedback *fb = NULL;
		char *error = NULL;
		int rc = dmarc_report_parse(xml, n, &fb, &error);

		/* Only the final newline may go. */
		if (n + 1 < len) {
			assert_int_equal(rc, -1);
			assert_non_null(error);
		} else {
			assert_int_equal(rc, 0);
		}
		free(error);
		dmarc_report_free(&fb);
	}
	free(xml);
}

static void
test_xml_events(void **state)
{
	static const char doc[] =
	    "<?xml version=\"1.0\"?><a:r xmlns:a=\"u\"><b>x&lt;<![CDATA[y]]>"
	    "&#122;</b><c/><d>\n</d></a:r>";
	static const struct {
		enum dmarc_xml_event ev;
		const char *name, *text;
	} want[] = {
	    {DMARC_XML_START, "r", ""},   {DMARC_XML_START, "b", ""},
	    {DMARC_XML_END, "b", "x<yz"}, {DMARC_XML_START, "c", ""},
	    {DMARC_XML_END, "c", ""},     {DMARC_XML_START, "d", ""},
	    {DMARC_XML_END, "d", "\n"},   {DMARC_XML_END, "r", ""},
	    {DMARC_XML_DONE, NULL, NULL},
	};
	struct dmarc_xml x;

	(void)state;
	dmarc_xml_init(&x, doc, sizeof(doc) - 1);
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		enum dmarc_xml_event ev = dmarc_xml_next(&x);

		assert_int_equal(ev, want[i].ev);
		if (want[i].name == NULL)
			continue;
		assert_string_equal(x.name, want[i].name);
		if (ev == DMARC_XML_END)
			assert_string_equal(buf_cstr(&x.text), want[i].text);
	}
	assert_int_equal(dmarc_xml_next(&x), DMARC_XML_DONE);
	dmarc_xml_clear(&x);
}

/* ------------------------------------------------------------ containers */

static void
expect_docs(const char *name, size_t ndocs, const char *first_report_id)
{
	struct dmarc_report_docs docs;
	struct dmarc_feedback *fb;
	char *error = NULL, *data;
	size_t len;

	data = fixture(name, &len);
	if (dmarc_report_unpack(data, len, &docs, &error) < 0)
		fail_msg("%s: %s", name, error);
	assert_int_equal(docs.n, ndocs);
	fb = parse_ok((const char *)docs.xml[0].data, docs.xml[0].len);
	assert_string_equal(fb->report_id, first_report_id);
	dmarc_report_free(&fb);
	dmarc_report_docs_clear(&docs);
	free(data);
}

static void
test_containers(void **state)
{
	struct dmarc_report_docs docs;
	char *error = NULL, *data;
	size_t len;

	(void)state;
	expect_docs("google.com!example.test!1704067200!1704153599.zip", 1,
	            "13837365129837483921");
	expect_docs("google-stored.zip", 1, "13837365129837483921");
	expect_docs("enterprise.protection.outlook.com!example.test!"
	            "1704067200!1704153600.xml.gz",
	            1, "5b8fa1c2e3d44f0e9a7b6c5d4e3f2a1b");
	expect_docs("yahoo.com!example.test!1704067200!1704153599.xml.gz", 1,
	            "1704153600.470123");
	expect_docs("yahoo.xml", 1, "1704153600.470123");

	/* Only the XML members of a zip, with their names. */
	data = fixture("two-reports.zip", &len);
	assert_int_equal(dmarc_report_unpack(data, len, &docs, &error), 0);
	assert_int_equal(docs.n, 2);
	assert_string_equal(docs.name[0], "a/google.xml");
	assert_string_equal(docs.name[1], "yahoo.xml");
	dmarc_report_docs_clear(&docs);
	free(data);

	/* Concatenated gzip members are one document. */
	{
		size_t l1, l2;
		char *g = fixture("yahoo.com!example.test!1704067200!"
		                  "1704153599.xml.gz",
		                  &l1);
		char *x = fixture("yahoo.xml", &l2);
		struct buf two, out;

		buf_init(&two, 0);
		buf_append(&two, g, l1);
		buf_append(&two, g, l1);
		buf_append(&two, "junk", 4);
		buf_init(&out, 0);
		assert_int_equal(
		    dmarc_report_gunzip(two.data, two.len, &out, &error), 0);
		assert_int_equal(out.len, 2 * l2);
		assert_memory_equal(out.data, x, l2);
		assert_memory_equal(out.data + l2, x, l2);
		buf_free(&out);
		buf_free(&two);
		free(g);
		free(x);
	}

	/* Neither XML, gzip nor zip. */
	assert_int_equal(dmarc_report_unpack("%PDF-1.4", 8, &docs, &error), -1);
	assert_non_null(strstr(error, "neither"));
	free(error);
	assert_int_equal(dmarc_report_sniff("  \r\n<x", 6),
	                 DMARC_REPORT_FMT_XML);
	assert_int_equal(dmarc_report_sniff("\x1f\x8b", 2),
	                 DMARC_REPORT_FMT_GZIP);
	assert_int_equal(dmarc_report_sniff("PK\5\6", 4), DMARC_REPORT_FMT_ZIP);
	assert_int_equal(dmarc_report_sniff("", 0), DMARC_REPORT_FMT_UNKNOWN);
}

static void
expect_unpack_error(const char *data, size_t len, const char *why)
{
	struct dmarc_report_docs docs;
	char *error = NULL;

	assert_int_equal(dmarc_report_unpack(data, len, &docs, &error), -1);
	assert_int_equal(docs.n, 0);
	assert_non_null(error);
	if (strstr(error, why) == NULL)
		fail_msg("\"%s\" does not say \"%s\"", error, why);
	free(error);
}

static void
test_bombs(void **state)
{
	/* A zip that tells its real size is refused before inflating. */
	static const struct {
		const char *name, *why;
		bool lie; /* claim 1000 bytes in the central directory */
	} bombs[] = {
	    {"bomb.xml.gz", "decompression bomb", false},
	    {"bomb.zip", "more than 20 MiB", false},
	    {"bomb.zip", "decompression bomb", true},
	    {"bomb-xml.zip", "more than 20 MiB", false},
	    {"bomb-xml.zip", "decompression bomb", true},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(bombs) / sizeof(bombs[0]); i++) {
		size_t len;
		char *data = fixture(bombs[i].name, &len);
		double t0, dt;

		if (bombs[i].lie)
			for (size_t j = 0; j + 4 <= len; j++)
				if (memcmp(data + j, "PK\1\2", 4) == 0)
					memcpy(data + j + 24, "\xe8\x03\0\0",
					       4);
		t0 = now();
		expect_unpack_error(data, len, bombs[i].why);
		dt = now() - t0;
		if (dt > BOMB_SECONDS)
			fail_msg("%s took %.1f s to refuse", bombs[i].name, dt);
		free(data);
	}
}

/* Data that compresses at a plausible ratio but expands past the cap. */
static void
test_too_large(void **state)
{
	size_t n = DMARC_REPORT_XML_MAX + 1024 * 1024, clen;
	unsigned char *plain = xmalloc(n), *comp;
	uint64_t s = 88172645463325252ull;
	z_stream zs;
	double t0;

	(void)state;
	for (size_t i = 0; i < n; i++) {
		s ^= s << 13;
		s ^= s >> 7;
		s ^= s << 17;
		plain[i] = "0123456789abcdef"[s & 15];
	}
	memset(&zs, 0, sizeof(zs));
	assert_int_equal(deflateInit2(&zs, 1, Z_DEFLATED, 16 + MAX_WBITS, 8,
	                              Z_DEFAULT_STRATEGY),
	                 Z_OK);
	clen = deflateBound(&zs, n);
	comp = xmalloc(clen);
	zs.next_in = plain;
	zs.avail_in = (uInt)n;
	zs.next_out = comp;
	zs.avail_out = (uInt)clen;
	assert_int_equal(deflate(&zs, Z_FINISH), Z_STREAM_END);
	clen = zs.total_out;
	deflateEnd(&zs);
	free(plain);
	t0 = now();
	expect_unpack_error((const char *)comp, clen, "more than 20 MiB");
	assert_true(now() - t0 < BOMB_SECONDS);
	free(comp);
}

static void
test_broken_archives(void **state)
{
	size_t len;
	char *data;

	(void)state;
	data = fixture("google-truncated.zip", &len);
	expect_unpack_error(data, len, "no central directory");
	free(data);
	data = fixture("microsoft-truncated.xml.gz", &len);
	expect_unpack_error(data, len, "truncated");
	free(data);

	data = fixture("google-stored.zip", &len);
	/* The stored member is at offset 30 + name: flip a byte of it. */
	{
		char *copy = xmalloc(len);

		memcpy(copy, data, len);
		copy[30 + 49 + 100] ^= 1;
		expect_unpack_error(copy, len, "CRC mismatch");
		/* Encrypted: general purpose flag bit 0 in the directory. */
		memcpy(copy, data, len);
		for (size_t i = 0; i + 4 <= len; i++)
			if (memcmp(copy + i, "PK\1\2", 4) == 0)
				copy[i + 8] |= 1;
		expect_unpack_error(copy, len, "encrypted");
		/* Another method. */
		memcpy(copy, data, len);
		for (size_t i = 0; i + 4 <= len; i++)
			if (memcmp(copy + i, "PK\1\2", 4) == 0)
				copy[i + 10] = 12; /* bzip2 */
		expect_unpack_error(copy, len, "method 12");
		/* A local header offset past the directory. */
		memcpy(copy, data, len);
		for (size_t i = 0; i + 4 <= len; i++)
			if (memcmp(copy + i, "PK\1\2", 4) == 0)
				copy[i + 44] = 0x7f;
		expect_unpack_error(copy, len, "local header");
		/* A member that claims more than there is. */
		memcpy(copy, data, len);
		for (size_t i = 0; i + 4 <= len; i++)
			if (memcmp(copy + i, "PK\1\2", 4) == 0)
				copy[i + 23] = 0x10;
		expect_unpack_error(copy, len, "past the end");
		free(copy);
	}
	free(data);

	/* Corrupt deflate data. */
	data = fixture("yahoo.com!example.test!1704067200!1704153599.xml.gz",
	               &len);
	data[20] ^= 0xff;
	data[21] ^= 0xff;
	{
		struct dmarc_report_docs docs;
		char *error = NULL;

		assert_int_equal(dmarc_report_unpack(data, len, &docs, &error),
		                 -1);
		assert_non_null(strstr(error, "gzip"));
		free(error);
	}
	free(data);
	/* An empty zip has no file. */
	expect_unpack_error("PK\5\6\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 22,
	                    "no file");
}

/* ------------------------------------------------------------ messages */

/* base64 of data in lines of 76 (as mail has it). */
static void
append_base64(struct buf *b, const char *data, size_t len, const char *eol)
{
	char *enc = xmalloc(BASE64_ENCODED_SIZE(len));
	size_t n = base64_encode((const uint8_t *)data, len, enc);

	for (size_t i = 0; i < n; i += 76) {
		buf_append(b, enc + i, n - i < 76 ? n - i : 76);
		buf_append_str(b, eol);
	}
	free(enc);
}

static void
test_message(void **state)
{
	static const char *const files[] = {
	    "google.com!example.test!1704067200!1704153599.zip",
	    ("enterprise.protection.outlook.com!example.test!1704067200!"
	     "1704153600.xml.gz"),
	    "yahoo.xml",
	};
	static const char *const types[] = {
	    "application/zip",
	    "application/octet-stream",
	    "text/xml; charset=utf-8",
	};
	struct dmarc_report_item *items = NULL;
	struct buf m;
	size_t n;

	(void)state;
	buf_init(&m, 0);
	buf_append_str(&m, "From: noreply-dmarc-support@google.com\r\n"
	                   "To: postmaster@example.test\r\n"
	                   "Subject: Report domain: example.test\r\n"
	                   "MIME-Version: 1.0\r\n"
	                   "Content-Type: multipart/mixed; boundary=\"b1\"\r\n"
	                   "\r\n--b1\r\nContent-Type: text/plain\r\n\r\n"
	                   "This is an aggregate report.\r\n");
	for (size_t i = 0; i < 3; i++) {
		size_t len;
		char *data = fixture(files[i], &len);

		buf_printf(&m,
		           "--b1\r\nContent-Type: %s\r\nContent-Disposition: "
		           "attachment;\r\n\tfilename=\"%s\"\r\n"
		           "Content-Transfer-Encoding: base64\r\n\r\n",
		           types[i], files[i]);
		append_base64(&m, data, len, i == 1 ? "\n" : "\r\n");
		free(data);
	}
	buf_append_str(&m, "--b1--\r\n");

	n = dmarc_report_from_message((const char *)m.data, m.len, &items);
	assert_int_equal(n, 3);
	for (size_t i = 0; i < n; i++)
		if (items[i].error != NULL)
			fail_msg("%s: %s", items[i].filename, items[i].error);
	assert_string_equal(
	    items[0].filename,
	    "google.com!example.test!1704067200!1704153599.zip/"
	    "google.com!example.test!1704067200!1704153599.xml");
	assert_string_equal(items[0].feedback->org_name, "google.com");
	assert_string_equal(items[1].feedback->org_name, "Enterprise Outlook");
	assert_string_equal(items[2].filename, "yahoo.xml");
	assert_string_equal(items[2].feedback->org_name, "Yahoo");
	dmarc_report_items_free(&items, n);
	assert_null(items);
	buf_free(&m);

	/* A single-part report (Content-Type of the message itself) whose
	 * name alone says what it is; an RFC 2231 file name. */
	buf_init(&m, 0);
	buf_append_str(&m, "MIME-Version: 1.0\r\n"
	                   "Content-Type: application/octet-stream\r\n"
	                   "Content-Disposition: attachment; "
	                   "filename*=utf-8''r%C3%A9port.xml\r\n"
	                   "Content-Transfer-Encoding: 7bit\r\n\r\n");
	{
		size_t len;
		char *data = fixture("google.xml", &len);

		buf_append(&m, data, len);
		free(data);
	}
	n = dmarc_report_from_message((const char *)m.data, m.len, &items);
	assert_int_equal(n, 1);
	assert_string_equal(items[0].filename, "r\xc3\xa9port.xml");
	assert_non_null(items[0].feedback);
	dmarc_report_items_free(&items, n);
	buf_free(&m);

	/* A broken attachment is an item with an error. */
	buf_init(&m, 0);
	buf_append_str(&m, "MIME-Version: 1.0\r\n"
	                   "Content-Type: application/gzip; name=x.xml.gz\r\n"
	                   "Content-Transfer-Encoding: base64\r\n\r\n"
	                   "H4sIAAAAAAAAA/NIzcnJVyjPL8pJAQA=\r\n");
	n = dmarc_report_from_message((const char *)m.data, m.len, &items);
	assert_int_equal(n, 1);
	assert_null(items[0].feedback);
	assert_non_null(items[0].error);
	assert_string_equal(items[0].filename, "x.xml.gz");
	dmarc_report_items_free(&items, n);
	buf_free(&m);

	/* Not a report. */
	{
		static const char plain[] =
		    "From: a@example.test\r\nSubject: hi\r\n\r\nHello\r\n";

		n = dmarc_report_from_message(plain, sizeof(plain) - 1, &items);
		assert_int_equal(n, 0);
		dmarc_report_items_free(&items, n);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_google),
	    cmocka_unit_test(test_microsoft),
	    cmocka_unit_test(test_yahoo),
	    cmocka_unit_test(test_dmarcbis),
	    cmocka_unit_test(test_tolerated),
	    cmocka_unit_test(test_refused),
	    cmocka_unit_test(test_bounds),
	    cmocka_unit_test(test_prefixes),
	    cmocka_unit_test(test_xml_events),
	    cmocka_unit_test(test_containers),
	    cmocka_unit_test(test_bombs),
	    cmocka_unit_test(test_too_large),
	    cmocka_unit_test(test_broken_archives),
	    cmocka_unit_test(test_message),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
