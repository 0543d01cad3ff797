/* Tests for MTA-STS (src/queue/mtasts.c): the policy and TXT parsers
 * (tables), MX pattern matching, the TXT lookup against an in-memory DNS
 * table, the SQLite cache, the RFC 8461 5.1 decision with a replaceable
 * fetch, and the real libcurl fetch against an HTTPS server run by the
 * test itself on 127.0.0.1 (status, Content-Type, redirects, size,
 * certificate and timeout checks). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sqlite3.h>

#include "core/clock.h"
#include "core/keys.h"
#include "core/xmalloc.h"
#include "mailauth/dnsif.h"
#include "queue/mtasts.h"

static char test_dir[] = "/tmp/tern-test-mtasts.XXXXXX";

/* ----------------------------------------------------------- policy text */

struct parse_case {
	const char *name;
	const char *body;
	int rc;
	enum mtasts_mode mode;
	size_t nmx;
	uint32_t max_age;
	const char *mx0, *mx1;
};

static const struct parse_case parse_cases[] = {
    {"crlf",
     "version: STSv1\r\nmode: enforce\r\nmx: mx1.example.com\r\nmx: "
     "*.example.net\r\nmax_age: 86400\r\n",
     0, MTASTS_ENFORCE, 2, 86400, "mx1.example.com", "*.example.net"},
    {"lf",
     "version: STSv1\nmode: enforce\nmx: mx1.example.com\nmx: "
     "*.example.net\nmax_age: 86400\n",
     0, MTASTS_ENFORCE, 2, 86400, "mx1.example.com", "*.example.net"},
    {"mixed endings, no final newline",
     "version: STSv1\r\nmode: testing\nmx: mx.example.com\r\nmax_age: 60", 0,
     MTASTS_TESTING, 1, 60, "mx.example.com", NULL},
    {"any order", "max_age: 5\nmx: a.example\nmode: enforce\nversion: STSv1\n",
     0, MTASTS_ENFORCE, 1, 5, "a.example", NULL},
    {"whitespace trimmed",
     "version:STSv1 \nmode:\t enforce\t\nmx:   mx.example.com  \nmax_age:  "
     "7 \n",
     0, MTASTS_ENFORCE, 1, 7, "mx.example.com", NULL},
    {"unknown keys ignored",
     "version: STSv1\nfoo: bar=baz;qux\nmode: enforce\nx-ext_1.a: "
     "v\nmx: mx.example.com\nmax_age: 1\n",
     0, MTASTS_ENFORCE, 1, 1, "mx.example.com", NULL},
    {"mode none without mx", "version: STSv1\nmode: none\nmax_age: 0\n", 0,
     MTASTS_NONE, 0, 0, NULL, NULL},
    {"mode none with mx",
     "version: STSv1\nmode: none\nmx: a.example\nmax_age: 10\n", 0, MTASTS_NONE,
     1, 10, "a.example", NULL},
    {"blank lines and BOM",
     "\xef\xbb\xbfversion: STSv1\n\n  \r\nmode: testing\nmx: "
     "m.example\nmax_age: 3\n\n",
     0, MTASTS_TESTING, 1, 3, "m.example", NULL},
    {"first duplicate wins",
     "version: STSv1\nmode: testing\nmode: enforce\nmx: m.example\nmax_age: "
     "3\nmax_age: 99\nversion: STSv2\n",
     0, MTASTS_TESTING, 1, 3, "m.example", NULL},
    {"duplicate mx counted once",
     "version: STSv1\nmode: enforce\nmx: m.example\nmx: M.Example\nmax_age: "
     "3\n",
     0, MTASTS_ENFORCE, 1, 3, "m.example", NULL},
    {"max_age max", "version: STSv1\nmode: none\nmax_age: 31557600\n", 0,
     MTASTS_NONE, 0, 31557600, NULL, NULL},
    {"max_age clamped", "version: STSv1\nmode: none\nmax_age: 9999999999\n", 0,
     MTASTS_NONE, 0, 31557600, NULL, NULL},
    {"max_age leading zeros", "version: STSv1\nmode: none\nmax_age: 00042\n", 0,
     MTASTS_NONE, 0, 42, NULL, NULL},

    {"empty", "", -1, 0, 0, 0, NULL, NULL},
    {"missing version", "mode: enforce\nmx: m.example\nmax_age: 3\n", -1, 0, 0,
     0, NULL, NULL},
    {"wrong version",
     "version: STSv2\nmode: enforce\nmx: m.example\nmax_age: 3\n", -1, 0, 0, 0,
     NULL, NULL},
    {"version case",
     "version: stsv1\nmode: enforce\nmx: m.example\nmax_age: 3\n", -1, 0, 0, 0,
     NULL, NULL},
    {"field name case",
     "Version: STSv1\nmode: enforce\nmx: m.example\nmax_age: 3\n", -1, 0, 0, 0,
     NULL, NULL},
    {"missing mode", "version: STSv1\nmx: m.example\nmax_age: 3\n", -1, 0, 0, 0,
     NULL, NULL},
    {"bad mode", "version: STSv1\nmode: strict\nmx: m.example\nmax_age: 3\n",
     -1, 0, 0, 0, NULL, NULL},
    {"mode case", "version: STSv1\nmode: Enforce\nmx: m.example\nmax_age: 3\n",
     -1, 0, 0, 0, NULL, NULL},
    {"enforce without mx", "version: STSv1\nmode: enforce\nmax_age: 3\n", -1, 0,
     0, 0, NULL, NULL},
    {"testing without mx", "version: STSv1\nmode: testing\nmax_age: 3\n", -1, 0,
     0, 0, NULL, NULL},
    {"missing max_age", "version: STSv1\nmode: enforce\nmx: m.example\n", -1, 0,
     0, 0, NULL, NULL},
    {"max_age negative",
     "version: STSv1\nmode: enforce\nmx: m.example\nmax_age: -1\n", -1, 0, 0, 0,
     NULL, NULL},
    {"max_age 11 digits",
     "version: STSv1\nmode: enforce\nmx: m.example\nmax_age: 10000000000\n", -1,
     0, 0, 0, NULL, NULL},
    {"max_age empty", "version: STSv1\nmode: none\nmax_age:\n", -1, 0, 0, 0,
     NULL, NULL},
    {"max_age junk", "version: STSv1\nmode: none\nmax_age: 12s\n", -1, 0, 0, 0,
     NULL, NULL},
    {"bad mx: two wildcards",
     "version: STSv1\nmode: enforce\nmx: *.*.example\nmax_age: 3\n", -1, 0, 0,
     0, NULL, NULL},
    {"bad mx: inner wildcard",
     "version: STSv1\nmode: enforce\nmx: mx.*.example\nmax_age: 3\n", -1, 0, 0,
     0, NULL, NULL},
    {"bad mx: bare star", "version: STSv1\nmode: enforce\nmx: *\nmax_age: 3\n",
     -1, 0, 0, 0, NULL, NULL},
    {"bad mx: final dot",
     "version: STSv1\nmode: enforce\nmx: mx.example.\nmax_age: 3\n", -1, 0, 0,
     0, NULL, NULL},
    {"bad mx: space inside",
     "version: STSv1\nmode: enforce\nmx: mx example\nmax_age: 3\n", -1, 0, 0, 0,
     NULL, NULL},
    {"bad mx: empty", "version: STSv1\nmode: enforce\nmx:\nmax_age: 3\n", -1, 0,
     0, 0, NULL, NULL},
    {"bad mx: hyphen",
     "version: STSv1\nmode: enforce\nmx: -a.example\nmax_age: 3\n", -1, 0, 0, 0,
     NULL, NULL},
    {"bad mx: long label",
     "version: STSv1\nmode: enforce\nmx: "
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa."
     "example\nmax_age: 3\n",
     -1, 0, 0, 0, NULL, NULL},
    {"line without colon",
     "version: STSv1\nmode: enforce\nmx m.example\nmax_age: 3\n", -1, 0, 0, 0,
     NULL, NULL},
    {"space before colon",
     "version : STSv1\nmode: enforce\nmx: m.example\nmax_age: 3\n", -1, 0, 0, 0,
     NULL, NULL},
    {"bare CR", "version: STSv1\rmode: enforce\nmx: m.example\nmax_age: 3\n",
     -1, 0, 0, 0, NULL, NULL},
    {"control byte",
     "version: STSv1\nmode: enforce\nfoo: a\x01\nmx: m.example\nmax_age: "
     "3\n",
     -1, 0, 0, 0, NULL, NULL},
    {"extension without value",
     "version: STSv1\nmode: enforce\nfoo:\nmx: m.example\nmax_age: 3\n", -1, 0,
     0, 0, NULL, NULL},
    {"html page", "<html><body>Not found</body></html>\n", -1, 0, 0, 0, NULL,
     NULL},
};

static void
test_parse_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(parse_cases) / sizeof(parse_cases[0]);
	     i++) {
		const struct parse_case *c = &parse_cases[i];
		struct mtasts_policy p;
		char why[128];
		int rc = mtasts_parse(c->body, strlen(c->body), &p, why,
		                      sizeof(why));

		if (rc != c->rc)
			print_error("case '%s': rc %d (%s)\n", c->name, rc,
			            why);
		assert_int_equal(rc, c->rc);
		if (rc < 0) {
			assert_int_equal(p.nmx, 0);
			assert_int_equal(p.mode, MTASTS_NONE);
			assert_true(why[0] != '\0');
			continue;
		}
		assert_int_equal(p.mode, c->mode);
		assert_int_equal(p.nmx, c->nmx);
		assert_int_equal(p.max_age, c->max_age);
		if (c->mx0 != NULL)
			assert_string_equal(p.mx[0], c->mx0);
		if (c->mx1 != NULL)
			assert_string_equal(p.mx[1], c->mx1);
		mtasts_policy_clear(&p);
		assert_int_equal(p.nmx, 0);
	}
}

/* A body with n mx lines, padded with an extension line to total bytes
 * (0: no padding). */
static char *
make_body(size_t nmx, size_t total)
{
	size_t cap = 256 + nmx * 32 + total, len;
	char *b = xmalloc(cap), *s = b;

	s += snprintf(s, cap, "version: STSv1\r\nmode: enforce\r\n");
	for (size_t i = 0; i < nmx; i++)
		s += snprintf(s, cap - (size_t)(s - b), "mx: mx%zu.example\r\n",
		              i);
	s += snprintf(s, cap - (size_t)(s - b), "max_age: 600\r\n");
	len = (size_t)(s - b);
	if (total > len + 5) {
		size_t k = total - len - 5; /* "x: " k "\r\n" */

		memcpy(s, "x: ", 3);
		memset(s + 3, 'a', k);
		memcpy(s + 3 + k, "\r\n", 2);
		s += k + 5;
	}
	*s = '\0';
	return b;
}

static void
test_parse_limits(void **state)
{
	struct mtasts_policy p;
	char why[128], *b;

	(void)state;
	b = make_body(MTASTS_MX_MAX, 0);
	assert_int_equal(mtasts_parse(b, strlen(b), &p, why, sizeof(why)), 0);
	assert_int_equal(p.nmx, MTASTS_MX_MAX);
	assert_string_equal(p.mx[MTASTS_MX_MAX - 1], "mx31.example");
	mtasts_policy_clear(&p);
	free(b);

	b = make_body(MTASTS_MX_MAX + 1, 0);
	assert_int_equal(mtasts_parse(b, strlen(b), &p, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "mx patterns"));
	free(b);

	b = make_body(1, MTASTS_BODY_MAX);
	assert_int_equal(strlen(b), MTASTS_BODY_MAX);
	assert_int_equal(mtasts_parse(b, strlen(b), &p, why, sizeof(why)), 0);
	mtasts_policy_clear(&p);
	free(b);

	b = make_body(1, MTASTS_BODY_MAX + 1);
	assert_int_equal(strlen(b), MTASTS_BODY_MAX + 1);
	assert_int_equal(mtasts_parse(b, strlen(b), &p, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "larger"));
	free(b);

	/* A NUL byte is a control character, not an end. */
	{
		static const char nul[] = "version: STSv1\nmode: none\0\n"
		                          "max_age: 1\n";

		assert_int_equal(
		    mtasts_parse(nul, sizeof(nul) - 1, &p, why, sizeof(why)),
		    -1);
		assert_int_equal(mtasts_parse(nul, 25, &p, why, sizeof(why)),
		                 -1); /* no max_age */
	}
	/* A why buffer is optional. */
	assert_int_equal(mtasts_parse("x", 1, &p, NULL, 0), -1);
}

/* ---------------------------------------------------------------- mx match */

static void
test_mx_match(void **state)
{
	static const struct {
		const char *pattern, *host;
		bool match;
	} cases[] = {
	    {"mx.example.com", "mx.example.com", true},
	    {"mx.example.com", "MX.Example.COM", true},
	    {"mx.example.com", "mx.example.com.", true},
	    {"MX.example.com", "mx.example.com", true},
	    {"mx.example.com", "mx.example.co", false},
	    {"mx.example.com", "xmx.example.com", false},
	    {"mx.example.com", "a.mx.example.com", false},
	    {"mx.example.com", "", false},
	    {"mx.example.com", ".", false},
	    {"*.example.com", "mx.example.com", true},
	    {"*.example.com", "MX.EXAMPLE.COM.", true},
	    {"*.example.com", "example.com", false},
	    {"*.example.com", "a.b.example.com", false},
	    {"*.example.com", ".example.com", false},
	    {"*.example.com", "mxexample.com", false},
	    {"*.example.com", "mx.example.com.evil", false},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct mtasts_policy p = {.mode = MTASTS_ENFORCE, .nmx = 1};

		p.mx[0] = (char *)cases[i].pattern;
		if (mtasts_mx_match(&p, cases[i].host) != cases[i].match)
			print_error("case %zu: %s vs %s\n", i, cases[i].pattern,
			            cases[i].host);
		assert_int_equal(mtasts_mx_match(&p, cases[i].host),
		                 cases[i].match);
	}
	{
		struct mtasts_policy p = {.mode = MTASTS_ENFORCE, .nmx = 2};

		p.mx[0] = "a.example";
		p.mx[1] = "*.b.example";
		assert_true(mtasts_mx_match(&p, "a.example"));
		assert_true(mtasts_mx_match(&p, "x.b.example"));
		assert_false(mtasts_mx_match(&p, "b.example"));
		p.nmx = 0;
		assert_false(mtasts_mx_match(&p, "a.example"));
	}
}

/* -------------------------------------------------------------- TXT record */

static void
test_txt_parse(void **state)
{
	static const struct {
		const char *txt;
		int rc;
		const char *id;
	} cases[] = {
	    {"v=STSv1; id=20160831085700Z;", 1, "20160831085700Z"},
	    {"v=STSv1;id=abc", 1, "abc"},
	    {"v=STSv1 ; id=abc ;", 1, "abc"},
	    {"v=STSv1;\tid=abc\t", 1, "abc"},
	    {"v=STSv1; ext=x!:<>~; id=A1", 1, "A1"},
	    {"v=STSv1; id=a; id=b", 1, "a"},
	    {"v=STSv1; id=12345678901234567890123456789012", 1,
	     "12345678901234567890123456789012"},
	    {"v=STSv1; id=123456789012345678901234567890123", -1, ""},
	    {"v=STSv1;", -1, ""},
	    {"v=STSv1; ", -1, ""},
	    {"v=STSv1; foo=bar", -1, ""},
	    {"v=STSv1; id=", -1, ""},
	    {"v=STSv1; id=a-b", -1, ""},
	    {"v=STSv1; id=a b", -1, ""},
	    {"v=STSv1; id", -1, ""},
	    {"v=STSv1;; id=a", -1, ""},
	    {"v=STSv1; id=a;;", -1, ""},
	    {"v=STSv1; ext=a=b; id=a", -1, ""},
	    {"v=STSv1; =x; id=a", -1, ""},
	    {"v=STSv1; _x=1; id=a", -1, ""},
	    {"v=STSv1", 0, ""},
	    {"v=STSv1 id=a", 0, ""},
	    {"v=STSv10; id=a", 0, ""},
	    {"v=stsv1; id=a", 0, ""},
	    {" v=STSv1; id=a", 0, ""},
	    {"v=spf1 -all", 0, ""},
	    {"", 0, ""},
	};
	char id[MTASTS_ID_MAX + 1];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc =
		    mtasts_txt_parse(cases[i].txt, strlen(cases[i].txt), id);

		if (rc != cases[i].rc)
			print_error("case %zu '%s': rc %d\n", i, cases[i].txt,
			            rc);
		assert_int_equal(rc, cases[i].rc);
		assert_string_equal(id, cases[i].id);
	}
	/* An embedded NUL makes an STSv1 record invalid. */
	assert_int_equal(mtasts_txt_parse("v=STSv1; id=a\0b", 15, id), -1);
}

/* The DNS table of tests/unit/test_mx.c: the entry for name and type
 * answers; a name known only with other types is NODATA, an unknown one
 * NXDOMAIN. */
#define ZRR_MAX 4

struct zrec {
	const char *name;
	enum ma_dns_type type;
	enum ma_dns_status status;
	const char *rr[ZRR_MAX]; /* NULL-terminated */
};

struct zone {
	const struct zrec *rec;
	size_t n;
	bool fail_all;
	unsigned int calls;
};

static int
zone_lookup(void *arg, const char *name, enum ma_dns_type type,
            struct ma_dns_answer *ans)
{
	struct zone *z = arg;
	bool known = false;

	z->calls++;
	if (z->fail_all)
		return -1;
	for (size_t i = 0; i < z->n; i++) {
		const struct zrec *r = &z->rec[i];
		size_t n = 0;

		if (strcasecmp(r->name, name) != 0)
			continue;
		known = true;
		if (r->type != type)
			continue;
		ans->status = r->status;
		while (n < ZRR_MAX && r->rr[n] != NULL)
			n++;
		if (r->status == MA_DNS_OK && n > 0) {
			ans->rr = xcalloc(n, sizeof(*ans->rr));
			for (size_t j = 0; j < n; j++)
				ans->rr[j] = xstrdup(r->rr[j]);
			ans->count = n;
		}
		return 0;
	}
	ans->status = known ? MA_DNS_NODATA : MA_DNS_NXDOMAIN;
	return 0;
}

static const struct zrec txt_zone[] = {
    {"_mta-sts.one.example", MA_DNS_TXT, MA_DNS_OK, {"v=STSv1; id=one1;"}},
    {"_mta-sts.mixed.example",
     MA_DNS_TXT,
     MA_DNS_OK,
     {"v=spf1 -all", "v=STSv1; id=mix2", "hello"}},
    {"_mta-sts.two.example",
     MA_DNS_TXT,
     MA_DNS_OK,
     {"v=STSv1; id=a", "v=STSv1; id=b"}},
    {"_mta-sts.twobad.example",
     MA_DNS_TXT,
     MA_DNS_OK,
     {"v=STSv1; id=a", "v=STSv1;"}},
    {"_mta-sts.bad.example", MA_DNS_TXT, MA_DNS_OK, {"v=STSv1; id=a_b"}},
    {"_mta-sts.other.example", MA_DNS_TXT, MA_DNS_OK, {"v=spf1 -all"}},
    {"_mta-sts.nodata.example", MA_DNS_A, MA_DNS_OK, {"192.0.2.1"}},
    {"_mta-sts.temp.example", MA_DNS_TXT, MA_DNS_TEMPFAIL, {NULL}},
    {"_mta-sts.okempty.example", MA_DNS_TXT, MA_DNS_OK, {NULL}},
};

static void
test_txt_id(void **state)
{
	static const struct {
		const char *domain;
		int rc;
		const char *id;
	} cases[] = {
	    {"one.example", 1, "one1"},
	    {"ONE.Example.", 1, "one1"},
	    {"mixed.example", 1, "mix2"},
	    {"two.example", 0, ""},
	    {"twobad.example", 0, ""},
	    {"bad.example", 0, ""},
	    {"other.example", 0, ""},
	    {"nodata.example", 0, ""},
	    {"missing.example", 0, ""},
	    {"okempty.example", 0, ""},
	    {"temp.example", -1, ""},
	    {"bad domain.example", 0, ""},
	    {"", 0, ""},
	};
	struct zone z = {.rec = txt_zone,
	                 .n = sizeof(txt_zone) / sizeof(txt_zone[0])};
	struct ma_dns dns = {.lookup = zone_lookup, .arg = &z};
	char id[MTASTS_ID_MAX + 1];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc = mtasts_txt_id(&dns, cases[i].domain, id);

		if (rc != cases[i].rc)
			print_error("case %s: rc %d\n", cases[i].domain, rc);
		assert_int_equal(rc, cases[i].rc);
		assert_string_equal(id, cases[i].id);
	}
	z.fail_all = true;
	assert_int_equal(mtasts_txt_id(&dns, "one.example", id), -1);
}

/* ------------------------------------------------------------------ cache */

static struct mtasts_policy
policy(enum mtasts_mode mode, uint32_t max_age, const char *id,
       uint64_t fetched_ms, const char *mx0, const char *mx1)
{
	struct mtasts_policy p = {
	    .mode = mode, .max_age = max_age, .fetched_ms = fetched_ms};

	snprintf(p.id, sizeof(p.id), "%s", id);
	if (mx0 != NULL)
		p.mx[p.nmx++] = xstrdup(mx0);
	if (mx1 != NULL)
		p.mx[p.nmx++] = xstrdup(mx1);
	return p;
}

static void
test_cache(void **state)
{
	char *path = xasprintf("%s/cache.db", test_dir), *error = NULL;
	struct mtasts_cache *c = mtasts_cache_open(path, &error);
	struct mtasts_policy p = policy(MTASTS_ENFORCE, 100, "id1", 1000000,
	                                "mx.a.example", "*.b.example");
	struct mtasts_policy got;
	sqlite3 *db;

	(void)state;
	assert_non_null(c);
	assert_int_equal(mtasts_cache_get(c, "a.example", 1000000, &got), 0);
	assert_int_equal(mtasts_cache_put(c, "A.Example.", &p), 0);

	assert_int_equal(mtasts_cache_get(c, "a.example", 1000000, &got), 1);
	assert_int_equal(got.mode, MTASTS_ENFORCE);
	assert_int_equal(got.max_age, 100);
	assert_string_equal(got.id, "id1");
	assert_int_equal(got.fetched_ms, 1000000);
	assert_int_equal(got.nmx, 2);
	assert_string_equal(got.mx[0], "mx.a.example");
	assert_string_equal(got.mx[1], "*.b.example");
	mtasts_policy_clear(&got);

	/* Expiry: fetched_ms + max_age s > now_ms. */
	assert_int_equal(mtasts_cache_get(c, "a.example", 1099999, &got), 1);
	mtasts_policy_clear(&got);
	assert_int_equal(mtasts_cache_get(c, "a.example", 1100000, &got), 0);
	assert_int_equal(got.nmx, 0);
	assert_int_equal(mtasts_cache_get(c, "b.example", 0, &got), 0);

	/* Replace, and survive a reopen. */
	mtasts_policy_clear(&p);
	p = policy(MTASTS_NONE, 31557600, "id2", 5, NULL, NULL);
	assert_int_equal(mtasts_cache_put(c, "a.example", &p), 0);
	mtasts_cache_close(&c);
	assert_null(c);
	mtasts_cache_close(&c);
	c = mtasts_cache_open(path, &error);
	assert_non_null(c);
	assert_int_equal(mtasts_cache_get(c, "a.example", 1000000, &got), 1);
	assert_int_equal(got.mode, MTASTS_NONE);
	assert_int_equal(got.nmx, 0);
	assert_string_equal(got.id, "id2");
	mtasts_policy_clear(&got);
	mtasts_policy_clear(&p);

	/* A row that does not validate is an error, not a policy. */
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(
	    sqlite3_exec(db,
	                 "INSERT INTO policies VALUES "
	                 "('c.example', 'x', 2, 'bad pattern', 10, 0),"
	                 "('d.example', 'x', 7, 'm.example', 10, 0),"
	                 "('e.example', 'x', 2, '', 10, 0),"
	                 "('f.example', 'x-y', 2, 'm.example', 10, 0),"
	                 "('g.example', 'x', 2, 'm.example', 99999999999, 0)",
	                 NULL, NULL, NULL),
	    SQLITE_OK);
	sqlite3_close(db);
	for (char d = 'c'; d <= 'g'; d++) {
		char name[16];

		snprintf(name, sizeof(name), "%c.example", d);
		assert_int_equal(mtasts_cache_get(c, name, 0, &got), -1);
		assert_int_equal(got.nmx, 0);
	}
	assert_int_equal(mtasts_cache_get(c, "not a domain", 0, &got), 0);
	assert_int_equal(mtasts_cache_put(c, "not a domain", &got), -1);
	mtasts_cache_close(&c);

	/* Open errors come back as text. */
	free(path);
	path = xasprintf("%s/missing/cache.db", test_dir);
	assert_null(mtasts_cache_open(path, &error));
	assert_non_null(error);
	free(error);
	free(path);
	path = xasprintf("%s/cache.db", test_dir);
	unlink(path);
	free(path);
	path = xasprintf("%s/cache.db-wal", test_dir);
	unlink(path);
	free(path);
	path = xasprintf("%s/cache.db-shm", test_dir);
	unlink(path);
	free(path);
}

/* --------------------------------------------------------------- decision */

struct fake_fetch {
	int rc;
	const char *body; /* parsed into the policy when rc == 0 */
	unsigned int calls;
	char domain[256];
};

static int
fake_fetch(void *arg, const char *domain, const struct mtasts_fetch_opts *o,
           struct mtasts_policy *p, char *why, size_t whylen)
{
	struct fake_fetch *f = arg;

	(void)o;
	f->calls++;
	snprintf(f->domain, sizeof(f->domain), "%s", domain);
	if (f->rc < 0) {
		memset(p, 0, sizeof(*p));
		snprintf(why, whylen, "fake failure");
		return -1;
	}
	return mtasts_parse(f->body, strlen(f->body), p, why, whylen);
}

#define BODY_ENFORCE                                                           \
	"version: STSv1\nmode: enforce\nmx: mx.new.example\nmax_age: 1000\n"
#define BODY_NONE "version: STSv1\nmode: none\nmax_age: 1000\n"

enum txt_kind { TXT_ID_A, TXT_ID_B, TXT_NONE, TXT_TEMP, TXT_TWO };
enum cache_kind { CACHE_NONE, CACHE_A, CACHE_A_EXPIRED };
enum want { WANT_NONE, WANT_CACHED, WANT_FETCHED, WANT_FETCHED_NONE };

struct decision_case {
	const char *name;
	enum txt_kind txt;
	enum cache_kind cache;
	int fetch_rc;
	const char *fetch_body;
	unsigned int fetches;
	enum want want;
	const char *cache_id_after; /* NULL: no (unexpired) cache row */
};

static const struct decision_case decision_cases[] = {
    {"new id, no cache, fetched", TXT_ID_A, CACHE_NONE, 0, BODY_ENFORCE, 1,
     WANT_FETCHED, "A"},
    {"same id, cached", TXT_ID_A, CACHE_A, 0, BODY_ENFORCE, 0, WANT_CACHED,
     "A"},
    {"changed id, fetched", TXT_ID_B, CACHE_A, 0, BODY_ENFORCE, 1, WANT_FETCHED,
     "B"},
    {"changed id, fetch fails, cached", TXT_ID_B, CACHE_A, -1, NULL, 1,
     WANT_CACHED, "A"},
    {"changed id, invalid policy, cached", TXT_ID_B, CACHE_A, 0,
     "version: STSv1\nmode: enforce\nmax_age: 5\n", 1, WANT_CACHED, "A"},
    {"changed id, mode none fetched", TXT_ID_B, CACHE_A, 0, BODY_NONE, 1,
     WANT_FETCHED_NONE, "B"},
    {"no cache, fetch fails", TXT_ID_A, CACHE_NONE, -1, NULL, 1, WANT_NONE,
     NULL},
    {"same id, expired cache, fetched", TXT_ID_A, CACHE_A_EXPIRED, 0,
     BODY_ENFORCE, 1, WANT_FETCHED, "A"},
    {"expired cache, fetch fails", TXT_ID_A, CACHE_A_EXPIRED, -1, NULL, 1,
     WANT_NONE, NULL},
    {"no TXT, cached", TXT_NONE, CACHE_A, 0, BODY_ENFORCE, 0, WANT_CACHED, "A"},
    {"no TXT, no cache", TXT_NONE, CACHE_NONE, 0, BODY_ENFORCE, 0, WANT_NONE,
     NULL},
    {"no TXT, expired cache", TXT_NONE, CACHE_A_EXPIRED, 0, BODY_ENFORCE, 0,
     WANT_NONE, NULL},
    {"TXT tempfail, cached", TXT_TEMP, CACHE_A, 0, BODY_ENFORCE, 0, WANT_CACHED,
     "A"},
    {"TXT tempfail, no cache", TXT_TEMP, CACHE_NONE, 0, BODY_ENFORCE, 0,
     WANT_NONE, NULL},
    {"two STSv1 records, cached", TXT_TWO, CACHE_A, 0, BODY_ENFORCE, 0,
     WANT_CACHED, "A"},
    {"two STSv1 records, no cache", TXT_TWO, CACHE_NONE, 0, BODY_ENFORCE, 0,
     WANT_NONE, NULL},
};

static const struct zrec decision_zone[][1] = {
    [TXT_ID_A] =
        {{"_mta-sts.d.example", MA_DNS_TXT, MA_DNS_OK, {"v=STSv1; id=A"}}},
    [TXT_ID_B] =
        {{"_mta-sts.d.example", MA_DNS_TXT, MA_DNS_OK, {"v=STSv1; id=B"}}},
    [TXT_NONE] = {{"_mta-sts.d.example", MA_DNS_TXT, MA_DNS_NXDOMAIN, {NULL}}},
    [TXT_TEMP] = {{"_mta-sts.d.example", MA_DNS_TXT, MA_DNS_TEMPFAIL, {NULL}}},
    [TXT_TWO] = {{"_mta-sts.d.example",
                  MA_DNS_TXT,
                  MA_DNS_OK,
                  {"v=STSv1; id=A", "v=STSv1; id=B"}}},
};

#define NOW_MS 1700000000000ULL

static void
test_decision_table(void **state)
{
	char *path = xasprintf("%s/decision.db", test_dir), *error = NULL;

	(void)state;
	for (size_t i = 0;
	     i < sizeof(decision_cases) / sizeof(decision_cases[0]); i++) {
		const struct decision_case *c = &decision_cases[i];
		struct zone z = {.rec = decision_zone[c->txt], .n = 1};
		struct ma_dns dns = {.lookup = zone_lookup, .arg = &z};
		struct fake_fetch f = {.rc = c->fetch_rc,
		                       .body = c->fetch_body};
		struct mtasts_fetch_opts o = {.fetch = fake_fetch,
		                              .fetch_arg = &f};
		struct mtasts_cache *cache;
		struct mtasts_policy p, row;

		unlink(path);
		cache = mtasts_cache_open(path, &error);
		assert_non_null(cache);
		if (c->cache != CACHE_NONE) {
			uint64_t at = c->cache == CACHE_A ? NOW_MS - 1000
			                                  : NOW_MS - 100000;
			struct mtasts_policy old =
			    policy(MTASTS_TESTING, 100, "A", at,
			           "mx.old.example", NULL);

			assert_int_equal(
			    mtasts_cache_put(cache, "d.example", &old), 0);
			mtasts_policy_clear(&old);
		}
		mtasts_get_policy(&dns, cache, "D.example", &o, NOW_MS, &p);
		print_message("# %s: %s\n", c->name, p.why);
		assert_int_equal(f.calls, c->fetches);
		if (f.calls > 0)
			assert_string_equal(f.domain, "d.example");
		assert_true(p.why[0] != '\0');
		switch (c->want) {
		case WANT_NONE:
			assert_int_equal(p.mode, MTASTS_NONE);
			assert_int_equal(p.nmx, 0);
			break;
		case WANT_CACHED:
			assert_int_equal(p.mode, MTASTS_TESTING);
			assert_int_equal(p.nmx, 1);
			assert_string_equal(p.mx[0], "mx.old.example");
			assert_string_equal(p.id, "A");
			break;
		case WANT_FETCHED:
			assert_int_equal(p.mode, MTASTS_ENFORCE);
			assert_int_equal(p.nmx, 1);
			assert_string_equal(p.mx[0], "mx.new.example");
			assert_int_equal(p.fetched_ms, NOW_MS);
			assert_int_equal(p.max_age, 1000);
			break;
		case WANT_FETCHED_NONE:
			assert_int_equal(p.mode, MTASTS_NONE);
			assert_int_equal(p.nmx, 0);
			assert_int_equal(p.max_age, 1000);
			break;
		}
		if (c->want == WANT_FETCHED || c->want == WANT_FETCHED_NONE)
			assert_string_equal(p.id, c->cache_id_after);
		mtasts_policy_clear(&p);

		if (c->cache_id_after == NULL) {
			assert_int_equal(
			    mtasts_cache_get(cache, "d.example", NOW_MS, &row),
			    0);
		} else {
			assert_int_equal(
			    mtasts_cache_get(cache, "d.example", NOW_MS, &row),
			    1);
			assert_string_equal(row.id, c->cache_id_after);
			mtasts_policy_clear(&row);
		}
		mtasts_cache_close(&cache);
	}
	{
		/* Without a cache, and without options. */
		struct zone z = {.rec = decision_zone[TXT_NONE], .n = 1};
		struct ma_dns dns = {.lookup = zone_lookup, .arg = &z};
		struct mtasts_policy p;

		mtasts_get_policy(&dns, NULL, "d.example", NULL, NOW_MS, &p);
		assert_int_equal(p.mode, MTASTS_NONE);
		mtasts_get_policy(&dns, NULL, "bad domain", NULL, NOW_MS, &p);
		assert_int_equal(p.mode, MTASTS_NONE);
		assert_int_equal(z.calls, 1);
	}
	unlink(path);
	free(path);
	path = xasprintf("%s/decision.db-wal", test_dir);
	unlink(path);
	free(path);
	path = xasprintf("%s/decision.db-shm", test_dir);
	unlink(path);
	free(path);
}

/* ------------------------------------------------------- a real HTTPS fetch
 * A one-connection HTTPS server on 127.0.0.1 in a thread: it reads the
 * request head, records it, and answers with a canned response (or
 * nothing, until the client goes away). */

#define STS_HOST "mta-sts.sts.example"

static char *cert_path, *key_path, *other_cert_path, *other_key_path;

struct https_server {
	int lfd;
	uint16_t port;
	SSL_CTX *ctx;
	pthread_t thread;
	const char *response; /* NULL: answer nothing */
	size_t response_len;
	char request[4096];
	unsigned int connections;
};

static void *
https_server_run(void *arg)
{
	struct https_server *s = arg;
	struct pollfd pfd = {.fd = s->lfd, .events = POLLIN};
	size_t got = 0;
	SSL *ssl;
	int fd;

	/* One connection, or none within 10 s (a failed client). */
	if (poll(&pfd, 1, 10000) != 1)
		return NULL;
	fd = accept(s->lfd, NULL, NULL);
	if (fd < 0)
		return NULL;
	s->connections++;
	ssl = SSL_new(s->ctx);
	SSL_set_fd(ssl, fd);
	if (SSL_accept(ssl) != 1)
		goto out;
	while (got < sizeof(s->request) - 1 &&
	       strstr(s->request, "\r\n\r\n") == NULL) {
		int n = SSL_read(ssl, s->request + got,
		                 (int)(sizeof(s->request) - 1 - got));

		if (n <= 0)
			goto out;
		got += (size_t)n;
		s->request[got] = '\0';
	}
	if (s->response == NULL) {
		char c;

		/* Hold the connection until the client gives up. */
		while (SSL_read(ssl, &c, 1) > 0)
			;
		goto out;
	}
	for (size_t off = 0; off < s->response_len;) {
		int n = SSL_write(ssl, s->response + off,
		                  (int)(s->response_len - off));

		if (n <= 0)
			goto out;
		off += (size_t)n;
	}
	SSL_shutdown(ssl);
out:
	SSL_free(ssl);
	close(fd);
	return NULL;
}

static void
https_server_start(struct https_server *s, const char *cert, const char *key,
                   const char *response, size_t len)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	socklen_t sl = sizeof(sin);

	memset(s, 0, sizeof(*s));
	s->response = response;
	s->response_len = len;
	s->ctx = SSL_CTX_new(TLS_server_method());
	assert_non_null(s->ctx);
	assert_int_equal(SSL_CTX_use_certificate_chain_file(s->ctx, cert), 1);
	assert_int_equal(
	    SSL_CTX_use_PrivateKey_file(s->ctx, key, SSL_FILETYPE_PEM), 1);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(s->lfd >= 0);
	assert_int_equal(bind(s->lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(s->lfd, 4), 0);
	assert_int_equal(getsockname(s->lfd, (struct sockaddr *)&sin, &sl), 0);
	s->port = ntohs(sin.sin_port);
	assert_int_equal(pthread_create(&s->thread, NULL, https_server_run, s),
	                 0);
}

static void
https_server_stop(struct https_server *s)
{
	assert_int_equal(pthread_join(s->thread, NULL), 0);
	close(s->lfd);
	SSL_CTX_free(s->ctx);
}

#define POLICY_TEXT                                                            \
	"version: STSv1\r\nmode: enforce\r\nmx: mx.sts.example\r\nmx: "        \
	"*.backup.sts.example\r\nmax_age: 604800\r\n"

struct fetch_case {
	const char *name;
	const char *head; /* status line and headers, without the blank line */
	const char *body; /* NULL: a large body */
	bool other_ca;    /* trust the wrong certificate */
	const char *domain;
	int rc;
	const char *why; /* a substring of why on failure */
};

static const struct fetch_case fetch_cases[] = {
    {"200 text/plain", "HTTP/1.1 200 OK\r\nContent-Type: text/plain",
     POLICY_TEXT, false, "sts.example", 0, NULL},
    {"HTTP/1.0 without length, params",
     "HTTP/1.0 200 OK\r\nContent-Type: Text/Plain; charset=utf-8\r\n"
     "Connection: close",
     POLICY_TEXT, false, "STS.example.", 0, NULL},
    {"404", "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain", "not found\n",
     false, "sts.example", -1, "HTTP status 404"},
    {"redirect not followed",
     "HTTP/1.1 301 Moved\r\nLocation: https://" STS_HOST
     "/elsewhere\r\nContent-Type: text/plain",
     POLICY_TEXT, false, "sts.example", -1, "HTTP status 301"},
    {"text/html", "HTTP/1.1 200 OK\r\nContent-Type: text/html", POLICY_TEXT,
     false, "sts.example", -1, "Content-Type"},
    {"text/plainx", "HTTP/1.1 200 OK\r\nContent-Type: text/plainx", POLICY_TEXT,
     false, "sts.example", -1, "Content-Type"},
    {"no Content-Type", "HTTP/1.1 200 OK", POLICY_TEXT, false, "sts.example",
     -1, "Content-Type"},
    {"invalid policy", "HTTP/1.1 200 OK\r\nContent-Type: text/plain",
     "version: STSv1\r\nmode: enforce\r\nmax_age: 5\r\n", false, "sts.example",
     -1, "invalid policy: no mx"},
    {"body too large, no length",
     "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close", NULL,
     false, "sts.example", -1, "larger than"},
    {"body too large, with length",
     "HTTP/1.1 200 OK\r\nContent-Type: text/plain", NULL, false, "sts.example",
     -1, "larger than"},
    {"wrong CA", "HTTP/1.1 200 OK\r\nContent-Type: text/plain", POLICY_TEXT,
     true, "sts.example", -1, NULL},
    {"wrong name", "HTTP/1.1 200 OK\r\nContent-Type: text/plain", POLICY_TEXT,
     false, "other.example", -1, NULL},
};

static void
test_fetch_real(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(fetch_cases) / sizeof(fetch_cases[0]);
	     i++) {
		const struct fetch_case *c = &fetch_cases[i];
		struct https_server s;
		struct mtasts_policy p;
		char why[256], *resp, *big = NULL, host[64];
		const char *body = c->body;
		int rc;

		if (body == NULL) {
			/* Over MTASTS_BODY_MAX, and valid if cut anywhere. */
			big = make_body(1, MTASTS_BODY_MAX + 4096);
			body = big;
		}
		if (strstr(c->head, "HTTP/1.0") != NULL ||
		    strstr(c->head, "close") != NULL)
			resp = xasprintf("%s\r\n\r\n%s", c->head, body);
		else
			resp = xasprintf("%s\r\nContent-Length: %zu\r\n\r\n%s",
			                 c->head, strlen(body), body);
		https_server_start(&s, cert_path, key_path, resp, strlen(resp));
		rc = mtasts_fetch(
		    c->domain, c->other_ca ? other_cert_path : cert_path,
		    s.port, "127.0.0.1", 5000, &p, why, sizeof(why));
		https_server_stop(&s);
		print_message("# %s: rc %d: %s\n", c->name, rc, why);
		assert_int_equal(rc, c->rc);
		assert_int_equal(s.connections, 1);
		if (c->why != NULL)
			assert_non_null(strstr(why, c->why));
		if (rc == 0) {
			uint64_t now = clock_wall_ms();

			assert_int_equal(p.mode, MTASTS_ENFORCE);
			assert_int_equal(p.nmx, 2);
			assert_string_equal(p.mx[1], "*.backup.sts.example");
			assert_int_equal(p.max_age, 604800);
			assert_true(p.fetched_ms <= now &&
			            p.fetched_ms + 60000 > now);
			assert_string_equal(p.id, "");
			assert_true(
			    mtasts_mx_match(&p, "a.backup.sts.example"));
			/* What was asked, and of which host. */
			assert_non_null(strstr(
			    s.request, "GET /.well-known/mta-sts.txt HTTP/1."));
			snprintf(host, sizeof(host), "\r\nHost: %s:%u\r\n",
			         STS_HOST, (unsigned int)s.port);
			assert_non_null(strstr(s.request, host));
			mtasts_policy_clear(&p);
		} else {
			assert_int_equal(p.nmx, 0);
		}
		free(resp);
		free(big);
	}
}

static void
test_fetch_timeout(void **state)
{
	struct https_server s;
	struct mtasts_policy p;
	char why[256];
	uint64_t t0;
	int rc;

	(void)state;
	https_server_start(&s, cert_path, key_path, NULL, 0);
	t0 = clock_mono_ms();
	rc = mtasts_fetch("sts.example", cert_path, s.port, "127.0.0.1", 300,
	                  &p, why, sizeof(why));
	https_server_stop(&s);
	print_message("# timeout: %s\n", why);
	assert_int_equal(rc, -1);
	assert_true(clock_mono_ms() - t0 < 5000);
	assert_non_null(strstr(why, "timed out"));
}

static void
test_fetch_refused(void **state)
{
	struct mtasts_policy p;
	char why[256];
	struct sockaddr_in sin = {.sin_family = AF_INET};
	socklen_t sl = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	uint16_t port;

	(void)state;
	/* A port nobody listens on: bound, not listening. */
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &sl), 0);
	port = ntohs(sin.sin_port);
	assert_int_equal(mtasts_fetch("sts.example", cert_path, port,
	                              "127.0.0.1", 2000, &p, why, sizeof(why)),
	                 -1);
	close(fd);
	/* Arguments refused before any connection. */
	assert_int_equal(
	    mtasts_fetch("bad/domain", NULL, 0, NULL, 0, &p, why, sizeof(why)),
	    -1);
	assert_string_equal(why, "not a host name");
	assert_int_equal(mtasts_fetch("sts.example", NULL, port, "localhost", 0,
	                              &p, why, sizeof(why)),
	                 -1);
	assert_string_equal(why, "host_ip is not an address");
}

/* mtasts_get_policy with the real fetch: DNS table, server, cache. */
static void
test_get_policy_real(void **state)
{
	static const struct zrec zone[] = {
	    {"_mta-sts.sts.example",
	     MA_DNS_TXT,
	     MA_DNS_OK,
	     {"v=STSv1; id=20240101"}},
	};
	struct zone z = {.rec = zone, .n = 1};
	struct ma_dns dns = {.lookup = zone_lookup, .arg = &z};
	char *path = xasprintf("%s/real.db", test_dir), *error = NULL;
	char *resp = xasprintf("HTTP/1.1 200 OK\r\nContent-Type: "
	                       "text/plain\r\nContent-Length: %zu\r\n\r\n%s",
	                       strlen(POLICY_TEXT), POLICY_TEXT);
	struct mtasts_cache *cache = mtasts_cache_open(path, &error);
	struct https_server s;
	struct mtasts_fetch_opts o = {
	    .ca_file = cert_path, .host_ip = "127.0.0.1", .timeout_ms = 5000};
	struct mtasts_policy p;
	uint64_t now = clock_wall_ms();

	(void)state;
	assert_non_null(cache);
	https_server_start(&s, cert_path, key_path, resp, strlen(resp));
	o.port = s.port;
	mtasts_get_policy(&dns, cache, "sts.example", &o, now, &p);
	https_server_stop(&s);
	print_message("# %s\n", p.why);
	assert_int_equal(p.mode, MTASTS_ENFORCE);
	assert_string_equal(p.id, "20240101");
	assert_true(mtasts_mx_match(&p, "mx.sts.example"));
	assert_false(mtasts_mx_match(&p, "mx.evil.example"));
	mtasts_policy_clear(&p);

	/* The second time it comes from the cache: no server is running. */
	mtasts_get_policy(&dns, cache, "sts.example", &o, now + 1000, &p);
	assert_int_equal(p.mode, MTASTS_ENFORCE);
	assert_non_null(strstr(p.why, "cached"));
	mtasts_policy_clear(&p);
	mtasts_cache_close(&cache);
	unlink(path);
	free(path);
	free(resp);
	path = xasprintf("%s/real.db-wal", test_dir);
	unlink(path);
	free(path);
	path = xasprintf("%s/real.db-shm", test_dir);
	unlink(path);
	free(path);
}

/* ------------------------------------------------------------------- main */

static int
group_setup(void **state)
{
	char *error = NULL;

	(void)state;
	if (mkdtemp(test_dir) == NULL)
		return -1;
	cert_path = xasprintf("%s/sts.crt", test_dir);
	key_path = xasprintf("%s/sts.key", test_dir);
	other_cert_path = xasprintf("%s/other.crt", test_dir);
	other_key_path = xasprintf("%s/other.key", test_dir);
	/* Self-signed: each certificate is its own trust anchor. */
	if (keys_create_selfsigned(STS_HOST, 2, cert_path, key_path, &error) <
	        0 ||
	    keys_create_selfsigned(STS_HOST, 2, other_cert_path, other_key_path,
	                           &error) < 0) {
		print_error("%s\n", error);
		free(error);
		return -1;
	}
	return 0;
}

static int
group_teardown(void **state)
{
	(void)state;
	unlink(cert_path);
	unlink(key_path);
	unlink(other_cert_path);
	unlink(other_key_path);
	free(cert_path);
	free(key_path);
	free(other_cert_path);
	free(other_key_path);
	return rmdir(test_dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_table),
	    cmocka_unit_test(test_parse_limits),
	    cmocka_unit_test(test_mx_match),
	    cmocka_unit_test(test_txt_parse),
	    cmocka_unit_test(test_txt_id),
	    cmocka_unit_test(test_cache),
	    cmocka_unit_test(test_decision_table),
	    cmocka_unit_test(test_fetch_real),
	    cmocka_unit_test(test_fetch_timeout),
	    cmocka_unit_test(test_fetch_refused),
	    cmocka_unit_test(test_get_policy_real),
	};

	/* The test server writes to clients that hang up (too large). */
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
