/* Tests for SPF (src/mailauth/spf*.c): the RFC 7208 §7.4 macro examples,
 * macro and record syntax, evaluation against an in-memory DNS table, the
 * §4.6.4 limits, identities, IDN, exp= and the result header fields. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/buf.h"
#include "core/xmalloc.h"
#include "mailauth/dnsif.h"
#include "mailauth/spf.h"
#include "mailauth/spf_int.h"

/* ---------------------------------------------------------------- DNS table
 */

#define TEMPFAIL "!tempfail" /* data: this name/type times out */

struct zrr {
	const char *name;
	enum ma_dns_type type;
	const char *data;
};

struct zone {
	const struct zrr *rr;
	size_t n;
	int fail_all;   /* lookup returns -1 */
	unsigned calls; /* lookups made */
	char log[4096]; /* "TYPE name\n" per lookup */
};

static const char *
type_name(enum ma_dns_type t)
{
	switch (t) {
	case MA_DNS_A:
		return "A";
	case MA_DNS_AAAA:
		return "AAAA";
	case MA_DNS_MX:
		return "MX";
	case MA_DNS_TXT:
		return "TXT";
	case MA_DNS_PTR:
		return "PTR";
	case MA_DNS_TLSA:
		return "TLSA";
	}
	return "?";
}

static int
zone_lookup(void *arg, const char *name, enum ma_dns_type type,
            struct ma_dns_answer *ans)
{
	struct zone *z = arg;
	bool found = false;
	size_t used = strlen(z->log);

	z->calls++;
	snprintf(z->log + used, sizeof(z->log) - used, "%s %s\n",
	         type_name(type), name);
	if (z->fail_all)
		return -1;
	for (size_t i = 0; i < z->n; i++) {
		if (strcasecmp(z->rr[i].name, name) != 0)
			continue;
		found = true;
		if (z->rr[i].type != type)
			continue;
		if (strcmp(z->rr[i].data, TEMPFAIL) == 0) {
			ma_dns_answer_clear(ans);
			ans->status = MA_DNS_TEMPFAIL;
			return 0;
		}
		ans->rr =
		    xreallocarray(ans->rr, ans->count + 1, sizeof(*ans->rr));
		ans->rr[ans->count++] = xstrdup(z->rr[i].data);
	}
	ans->status = ans->count > 0 ? MA_DNS_OK
	              : found        ? MA_DNS_NODATA
	                             : MA_DNS_NXDOMAIN;
	return 0;
}

#define ZONE(z, table)                                                         \
	struct zone z = {table, sizeof(table) / sizeof(table[0]), 0, 0, {0}}

static struct spf_outcome *
run(struct zone *z, const char *ip, const char *helo, const char *mail_from,
    const struct spf_limits *limits)
{
	struct ma_dns dns = {zone_lookup, z};
	struct spf_request req;

	memset(&req, 0, sizeof(req));
	assert_int_equal(spf_ip_parse(ip, &req.ip), 0);
	req.helo = helo;
	req.mail_from = mail_from;
	req.receiver = "mx.receiver.example";
	req.now = 1700000000;
	req.limits = limits;
	return spf_check_host(&dns, &req);
}

static enum spf_result
result_of(struct zone *z, const char *ip, const char *mail_from)
{
	struct spf_outcome *o = run(z, ip, "helo.example.org", mail_from, NULL);
	enum spf_result r = o->result;

	spf_outcome_free(&o);
	return r;
}

/* ---------------------------------------------------------------- macros */

static const char *
fake_ptr(void *arg, const char *domain)
{
	(void)arg;
	(void)domain;
	return "mx.example.com";
}

static void
env_for(struct spf_macro_env *env, struct spf_ip *ip, const char *addr)
{
	memset(env, 0, sizeof(*env));
	assert_int_equal(spf_ip_parse(addr, ip), 0);
	env->sender = "strong-bad@email.example.com";
	env->local = "strong-bad";
	env->sender_domain = "email.example.com";
	env->domain = "email.example.com";
	env->helo = "mx.example.org";
	env->ip = ip;
	env->now = 1234567890;
}

static char *
expand(const struct spf_macro_env *env, const char *s, enum spf_macro_mode mode)
{
	struct buf b;
	char *r;

	buf_init(&b, 0);
	if (spf_macro_expand(env, s, strlen(s), mode, &b, NULL) < 0) {
		buf_free(&b);
		return NULL;
	}
	r = xstrdup(buf_cstr(&b) != NULL ? buf_cstr(&b) : "");
	buf_free(&b);
	return r;
}

static void
expect_expansion(const struct spf_macro_env *env, const char *s,
                 enum spf_macro_mode mode, const char *want)
{
	char *got = expand(env, s, mode);

	if (got == NULL)
		fail_msg("%s: expansion failed", s);
	if (strcmp(got, want) != 0)
		fail_msg("%s: got \"%s\", want \"%s\"", s, got, want);
	free(got);
}

/* RFC 7208 §7.4, verbatim. */
static const struct {
	const char *macro;
	const char *want;
} rfc_examples[] = {
    {"%{s}", "strong-bad@email.example.com"},
    {"%{o}", "email.example.com"},
    {"%{d}", "email.example.com"},
    {"%{d4}", "email.example.com"},
    {"%{d3}", "email.example.com"},
    {"%{d2}", "example.com"},
    {"%{d1}", "com"},
    {"%{dr}", "com.example.email"},
    {"%{d2r}", "example.email"},
    {"%{l}", "strong-bad"},
    {"%{l-}", "strong.bad"},
    {"%{lr}", "strong-bad"},
    {"%{lr-}", "bad.strong"},
    {"%{l1r-}", "strong"},
    {"%{ir}.%{v}._spf.%{d2}", "3.2.0.192.in-addr._spf.example.com"},
    {"%{lr-}.lp._spf.%{d2}", "bad.strong.lp._spf.example.com"},
    {"%{lr-}.lp.%{ir}.%{v}._spf.%{d2}",
     "bad.strong.lp.3.2.0.192.in-addr._spf.example.com"},
    {"%{ir}.%{v}.%{l1r-}.lp._spf.%{d2}",
     "3.2.0.192.in-addr.strong.lp._spf.example.com"},
    {"%{d2}.trusted-domains.example.net",
     "example.com.trusted-domains.example.net"},
};

static void
macro_rfc_examples(void **state)
{
	struct spf_macro_env env;
	struct spf_ip ip;

	(void)state;
	env_for(&env, &ip, "192.0.2.3");
	for (size_t i = 0; i < sizeof(rfc_examples) / sizeof(rfc_examples[0]);
	     i++)
		expect_expansion(&env, rfc_examples[i].macro, SPF_MACRO_DOMAIN,
		                 rfc_examples[i].want);
	env_for(&env, &ip, "2001:db8::cb01");
	expect_expansion(&env, "%{ir}.%{v}._spf.%{d2}", SPF_MACRO_DOMAIN,
	                 "1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b."
	                 "d.0.1.0.0.2.ip6._spf.example.com");
}

static void
macro_letters_and_escapes(void **state)
{
	struct spf_macro_env env;
	struct spf_ip ip;

	(void)state;
	env_for(&env, &ip, "192.0.2.3");
	expect_expansion(&env, "%%%_%-", SPF_MACRO_DOMAIN, "% %20");
	expect_expansion(&env, "%{h}", SPF_MACRO_DOMAIN, "mx.example.org");
	expect_expansion(&env, "%{p}", SPF_MACRO_DOMAIN, "unknown");
	env.ptr_name = fake_ptr;
	expect_expansion(&env, "%{p}", SPF_MACRO_DOMAIN, "mx.example.com");
	expect_expansion(&env, "%{c} %{r} %{t} %{v}", SPF_MACRO_EXPLAIN,
	                 "192.0.2.3 unknown 1234567890 in-addr");
	env.receiver = "mx.receiver.example";
	expect_expansion(&env, "%{r}", SPF_MACRO_EXPLAIN,
	                 "mx.receiver.example");
	/* upper case: URL-escaped after the transformers (§7.3) */
	env.local = "~jack&jill=up-a_b3.c";
	expect_expansion(&env, "%{L}", SPF_MACRO_DOMAIN,
	                 "~jack%26jill%3Dup-a_b3.c");
	expect_expansion(&env, "%{L1r=}", SPF_MACRO_DOMAIN, "~jack%26jill");
	/* several delimiters, parts kept from the right, big counts */
	env.local = "foo-bar+zip+quux";
	expect_expansion(&env, "%{l2r+-}", SPF_MACRO_DOMAIN, "bar.foo");
	expect_expansion(&env, "%{l99999999999}", SPF_MACRO_DOMAIN,
	                 "foo-bar+zip+quux");
	expect_expansion(&env, "%{L+}", SPF_MACRO_DOMAIN, "foo-bar.zip.quux");
	/* empty parts survive the split */
	env.local = "a..b";
	expect_expansion(&env, "%{lr}", SPF_MACRO_DOMAIN, "b..a");
	/* IPv6: %{c} compressed, %{i} nibbles */
	env_for(&env, &ip, "2001:DB8::CB01");
	expect_expansion(&env, "%{c}", SPF_MACRO_EXPLAIN, "2001:db8::cb01");
	expect_expansion(&env, "%{i2r}", SPF_MACRO_DOMAIN, "0.2");
	expect_expansion(&env, "%{i2}", SPF_MACRO_DOMAIN, "0.1");
	expect_expansion(&env, "%{v}", SPF_MACRO_DOMAIN, "ip6");
}

static void
macro_syntax(void **state)
{
	static const char *bad_domain[] = {
	    "%",    "a%",    "%a",    "%(ir)",  "%{",      "%{}",   "%{d",
	    "%{x}", "%{d0}", "%{d2r", "%{d2r+", "%{d2rr}", "%{c}",  "%{r}",
	    "%{t}", "a b",   "\x80",  "%{d:}",  "a\x7f",   "%{ d}", "%{d 2}",
	};
	static const char *good_domain[] = {
	    "",        "%%",         "%_",      "%-",      "%{d}",
	    "%{D2r.}", "%{l-+,/_=}", "%{ir}.x", "%{s10r}", "foo.bar",
	};
	const char *error = NULL;

	(void)state;
	for (size_t i = 0; i < sizeof(bad_domain) / sizeof(bad_domain[0]);
	     i++) {
		error = NULL;
		if (spf_macro_check(bad_domain[i], strlen(bad_domain[i]),
		                    SPF_MACRO_DOMAIN, &error) == 0)
			fail_msg("accepted \"%s\"", bad_domain[i]);
		assert_non_null(error);
	}
	for (size_t i = 0; i < sizeof(good_domain) / sizeof(good_domain[0]);
	     i++)
		if (spf_macro_check(good_domain[i], strlen(good_domain[i]),
		                    SPF_MACRO_DOMAIN, &error) < 0)
			fail_msg("refused \"%s\": %s", good_domain[i], error);
	/* c r t and spaces: exp text only */
	assert_int_equal(
	    spf_macro_check("%{c} at %{t} %{r}", 17, SPF_MACRO_EXPLAIN, NULL),
	    0);
	assert_int_equal(spf_macro_check("%{c}", 4, SPF_MACRO_MODIFIER, NULL),
	                 0);
	assert_int_equal(spf_macro_check("a b", 3, SPF_MACRO_MODIFIER, NULL),
	                 -1);
	assert_int_equal(spf_macro_check("%{x}", 4, SPF_MACRO_EXPLAIN, NULL),
	                 -1);
}

static void
domain_specs(void **state)
{
	static const struct {
		const char *spec;
		bool valid;
	} cases[] = {
	    {"example.com", true},
	    {"example.com.", true},
	    {"foo:bar/baz.example.com", true},
	    {"%{d}", true},
	    {"_spf.%{d2}", true},
	    {"%{ir}.%{v}._spf.%{d2}", true},
	    {"foo%%", true},
	    {"x.xn--zckzah", true},
	    {"a.1-2", true},
	    {"mail.example...com", true},
	    {"", false},
	    {"museum", false},
	    {"museum.", false},
	    {"foo-bar", false},
	    {"111.222.33.44", false},
	    {"abc.123", false},
	    {"example.com:8080", false},
	    {"example.-com", false},
	    {"example.com-", false},
	    {"%{d}.", false},
	    {"%{d.}com", false},
	    {"-all", false},
	    {"example.com..", false},
	    {"%{x}.example.com", false},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (spf_domain_spec_valid(
		        cases[i].spec, strlen(cases[i].spec)) != cases[i].valid)
			fail_msg("\"%s\" should be %s", cases[i].spec,
			         cases[i].valid ? "valid" : "invalid");
}

static void
expand_domain_truncates(void **state)
{
	struct spf_macro_env env;
	struct spf_ip ip;
	char name[SPF_DOMAIN_MAX + 1];
	char spec[600];
	size_t o = 0;

	(void)state;
	env_for(&env, &ip, "192.0.2.3");
	/* 40 labels of 9 bytes: truncated from the left to <= 253 */
	for (int i = 0; i < 40; i++)
		o += (size_t)snprintf(spec + o, sizeof(spec) - o, "label%03d.",
		                      i);
	snprintf(spec + o, sizeof(spec) - o, "%%{d}.");
	assert_int_equal(
	    spf_expand_domain(&env, spec, strlen(spec), name, NULL), 0);
	assert_true(strlen(name) <= SPF_DOMAIN_MAX);
	assert_true(strlen(name) > SPF_DOMAIN_MAX - 10);
	assert_string_equal(name + strlen(name) - strlen("email.example.com"),
	                    "email.example.com");
	assert_memory_equal(name, "label", 5);
	/* a label that cannot be a DNS label: not a name we query */
	env.local = "a\\b";
	assert_int_equal(
	    spf_expand_domain(&env, "%{l}.example.com", 16, name, NULL), -1);
	env.local = "0123456789012345678901234567890123456789012345678901234"
	            "567890123";
	assert_int_equal(
	    spf_expand_domain(&env, "%{l}.example.com", 16, name, NULL), -1);
	env.local = "x";
	assert_int_equal(
	    spf_expand_domain(&env, "%{l}..example.com", 17, name, NULL), -1);
	assert_int_equal(
	    spf_expand_domain(&env, "%{l}.example.com.", 17, name, NULL), 0);
	assert_string_equal(name, "x.example.com");
}

/* ---------------------------------------------------------------- records */

static void
terms(void **state)
{
	static const struct {
		const char *text;
		enum spf_term_kind kind;
		enum spf_mech mech;
		enum spf_result q;
		unsigned int cidr4, cidr6;
		const char *arg;
	} good[] = {
	    {"all", SPF_TERM_MECHANISM, SPF_MECH_ALL, SPF_PASS, 32, 128, NULL},
	    {"-ALL", SPF_TERM_MECHANISM, SPF_MECH_ALL, SPF_FAIL, 32, 128, NULL},
	    {"~a", SPF_TERM_MECHANISM, SPF_MECH_A, SPF_SOFTFAIL, 32, 128, NULL},
	    {"?a/24//64", SPF_TERM_MECHANISM, SPF_MECH_A, SPF_NEUTRAL, 24, 64,
	     NULL},
	    {"a//0", SPF_TERM_MECHANISM, SPF_MECH_A, SPF_PASS, 32, 0, NULL},
	    {"a:foo.example.com/24", SPF_TERM_MECHANISM, SPF_MECH_A, SPF_PASS,
	     24, 128, "foo.example.com"},
	    {"a:foo:bar/baz.example.com", SPF_TERM_MECHANISM, SPF_MECH_A,
	     SPF_PASS, 32, 128, "foo:bar/baz.example.com"},
	    {"mx:%{d}//48", SPF_TERM_MECHANISM, SPF_MECH_MX, SPF_PASS, 32, 48,
	     "%{d}"},
	    {"ptr", SPF_TERM_MECHANISM, SPF_MECH_PTR, SPF_PASS, 32, 128, NULL},
	    {"ptr:example.com", SPF_TERM_MECHANISM, SPF_MECH_PTR, SPF_PASS, 32,
	     128, "example.com"},
	    {"ip4:192.0.2.0/24", SPF_TERM_MECHANISM, SPF_MECH_IP4, SPF_PASS, 24,
	     128, "192.0.2.0/24"},
	    {"ip6:2001:db8::/32", SPF_TERM_MECHANISM, SPF_MECH_IP6, SPF_PASS,
	     32, 32, "2001:db8::/32"},
	    {"ip6:::1.1.1.1/0", SPF_TERM_MECHANISM, SPF_MECH_IP6, SPF_PASS, 32,
	     0, "::1.1.1.1/0"},
	    {"include:_spf.example.com", SPF_TERM_MECHANISM, SPF_MECH_INCLUDE,
	     SPF_PASS, 32, 128, "_spf.example.com"},
	    {"exists:%{i}.bl.example", SPF_TERM_MECHANISM, SPF_MECH_EXISTS,
	     SPF_PASS, 32, 128, "%{i}.bl.example"},
	    {"redirect=_spf.example.com", SPF_TERM_REDIRECT, SPF_MECH_ALL,
	     SPF_PASS, 32, 128, "_spf.example.com"},
	    {"EXP=explain.%{d}", SPF_TERM_EXP, SPF_MECH_ALL, SPF_PASS, 32, 128,
	     "explain.%{d}"},
	    {"moo.cow-far_out=man:dog/cat", SPF_TERM_UNKNOWN, SPF_MECH_ALL,
	     SPF_PASS, 32, 128, "man:dog/cat"},
	    {"default=", SPF_TERM_UNKNOWN, SPF_MECH_ALL, SPF_PASS, 32, 128, ""},
	};
	static const char *bad[] = {
	    "",
	    "-",
	    "all.",
	    "all:foo",
	    "-all/8",
	    "moo",
	    "1up=foo",
	    "=all",
	    "-redirect=x.example.com",
	    "redirect:x.example.com",
	    "redirect=",
	    "redirect=-all",
	    "exp=",
	    "exp=%{r}.example.com",
	    "foo=%abc",
	    "moo.cow/far_out=man:dog/cat",
	    "a:",
	    "a/33",
	    "a//129",
	    "a/24/64",
	    "a/032",
	    "a:museum",
	    "a:111.222.33.44",
	    "a:example.com:8080",
	    "ptr/0",
	    "ptr:",
	    "include",
	    "include:",
	    "include:a.example.com/24",
	    "exists",
	    "exists:a.example.com/24",
	    "ip4",
	    "ip4:",
	    "ip4:1.2.3",
	    "ip4:1.2.3.4:8080",
	    "ip4:1.2.3.4//32",
	    "ip4:1.2.3.4/33",
	    "ip4:1.2.3.4/032",
	    "ip4:01.2.3.4",
	    "ip4:256.2.3.4",
	    "ip4:1.2.3.4/",
	    "ip6::CAFE::BABE",
	    "ip6:::1.1.1.1/129",
	    "ip6:::1.1.1.1//33",
	    "ip6:2001:db8::%eth0",
	    "prt",
	    "+exp=x.example.com",
	};
	struct spf_term t;
	const char *error;

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		error = NULL;
		if (spf_term_parse(good[i].text, strlen(good[i].text), &t,
		                   &error) < 0)
			fail_msg("refused \"%s\": %s", good[i].text, error);
		assert_int_equal(t.kind, good[i].kind);
		if (t.kind == SPF_TERM_MECHANISM) {
			assert_int_equal(t.mech, good[i].mech);
			assert_int_equal(t.qualifier, good[i].q);
			assert_int_equal(t.cidr4, good[i].cidr4);
			assert_int_equal(t.cidr6, good[i].cidr6);
		}
		if (good[i].arg == NULL) {
			assert_null(t.arg);
		} else {
			assert_non_null(t.arg);
			assert_int_equal(t.arg_len, strlen(good[i].arg));
			assert_memory_equal(t.arg, good[i].arg, t.arg_len);
		}
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		error = NULL;
		if (spf_term_parse(bad[i], strlen(bad[i]), &t, &error) == 0)
			fail_msg("accepted \"%s\"", bad[i]);
		assert_non_null(error);
	}
	/* the network is parsed */
	assert_int_equal(spf_term_parse("ip4:192.0.2.1", 13, &t, NULL), 0);
	assert_memory_equal(t.net, "\xc0\x00\x02\x01", 4);
}

static void
records(void **state)
{
	static const char *good[] = {
	    "v=spf1",
	    "V=SpF1 -all",
	    "v=spf1 a  -all ",
	    ("v=spf1 ip4:192.0.2.0/24 include:a.example redirect=b.example "
	     "exp=c.example x-y=%{d}"),
	};
	static const char *bad[] = {
	    "v=spf10",
	    "v=spf1 -all moo",
	    "v=spf1\t-all",
	    "v=spf1 a:ctrl.example.com\rptr -all",
	    "v=spf1 ip4:192.0.2.5\n include:x.example ~all",
	    "v=spf1 a:\xef\xbb\xbfgarbage.example.net -all",
	    "v=spf1 redirect=a.example redirect=a.example",
	    "v=spf1 exp=a.example -all exp=b.example",
	};
	struct spf_record_info info;
	const char *error;

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		if (spf_record_check(good[i], strlen(good[i]), &info, &error) <
		    0)
			fail_msg("refused \"%s\": %s", good[i], error);
	assert_true(info.has_redirect && info.has_exp);
	assert_memory_equal(info.redirect.arg, "b.example", 9);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		error = NULL;
		if (spf_record_check(bad[i], strlen(bad[i]), &info, &error) ==
		    0)
			fail_msg("accepted \"%s\"", bad[i]);
		assert_non_null(error);
	}
	assert_int_equal(spf_record_check("v=spf1 a moo -all", 17, &info, NULL),
	                 -1);
	assert_int_equal(info.bad_pos, 9);
	assert_int_equal(info.bad_len, 3);
	assert_true(spf_record_is_spf1("v=spf1"));
	assert_true(spf_record_is_spf1("v=SPF1 mx"));
	assert_false(spf_record_is_spf1("v=spf1mx"));
	assert_false(spf_record_is_spf1("v=spf10"));
	assert_false(spf_record_is_spf1(" v=spf1"));
}

/* ---------------------------------------------------------------- check_host
 */

static const struct zrr basic_zone[] = {
    {"example.com", MA_DNS_TXT,
     "v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 "
     "a:mail.example.com mx -all"},
    {"example.com", MA_DNS_TXT, "google-site-verification=abc"},
    {"example.com", MA_DNS_MX, "10 mx1.example.com"},
    {"example.com", MA_DNS_MX, "0 ."},
    {"mx1.example.com", MA_DNS_A, "198.51.100.25"},
    {"mail.example.com", MA_DNS_A, "203.0.113.5"},
    {"soft.example", MA_DNS_TXT, "v=spf1 ~all"},
    {"neutral.example", MA_DNS_TXT, "v=spf1 ip4:192.0.2.1"},
    {"two.example", MA_DNS_TXT, "v=spf1 -all"},
    {"two.example", MA_DNS_TXT, "v=spf1 +all"},
    {"slow.example", MA_DNS_TXT, TEMPFAIL},
    {"syntax.example", MA_DNS_TXT, "v=spf1 a:foo..bar ip5:1.2.3.4 -all"},
    {"inc.example", MA_DNS_TXT, "v=spf1 include:example.com ?all"},
    {"noinc.example", MA_DNS_TXT, "v=spf1 include:nothing.example ?all"},
    {"redir.example", MA_DNS_TXT, "v=spf1 exp=no.example redirect=example.com"},
    {"helo.example.org", MA_DNS_TXT, "v=spf1 a -all"},
    {"helo.example.org", MA_DNS_A, "192.0.2.200"},
    {"xn--bcher-kva.example", MA_DNS_TXT, "v=spf1 ip4:192.0.2.9 -all"},
};

static void
check_results(void **state)
{
	ZONE(z, basic_zone);
	struct spf_outcome *o;

	(void)state;
	o = run(&z, "192.0.2.10", "helo.example.org", "user@example.com", NULL);
	assert_int_equal(o->result, SPF_PASS);
	assert_string_equal(o->mechanism, "ip4:192.0.2.0/24");
	assert_string_equal(o->domain, "example.com");
	assert_string_equal(o->sender, "user@example.com");
	assert_null(o->explanation);
	assert_string_equal(o->problem, "");
	assert_int_equal(o->dns_terms, 0);
	spf_outcome_free(&o);
	assert_null(o);

	assert_int_equal(result_of(&z, "2001:db8:1::1", "u@example.com"),
	                 SPF_PASS);
	assert_int_equal(result_of(&z, "::ffff:192.0.2.10", "u@example.com"),
	                 SPF_PASS);
	assert_int_equal(result_of(&z, "203.0.113.5", "u@EXAMPLE.com."),
	                 SPF_PASS);
	/* mx: the null MX is skipped, the other host matches */
	o = run(&z, "198.51.100.25", "h.example", "u@example.com", NULL);
	assert_int_equal(o->result, SPF_PASS);
	assert_string_equal(o->mechanism, "mx");
	assert_int_equal(o->dns_terms, 2);
	spf_outcome_free(&o);

	o = run(&z, "198.51.100.26", "h.example", "u@example.com", NULL);
	assert_int_equal(o->result, SPF_FAIL);
	assert_string_equal(o->mechanism, "-all");
	assert_string_equal(o->explanation,
	                    "example.com does not designate 198.51.100.26 as "
	                    "permitted sender");
	spf_outcome_free(&o);

	assert_int_equal(result_of(&z, "192.0.2.1", "u@soft.example"),
	                 SPF_SOFTFAIL);
	assert_int_equal(result_of(&z, "192.0.2.2", "u@neutral.example"),
	                 SPF_NEUTRAL);
	assert_int_equal(result_of(&z, "192.0.2.1", "u@nothing.example"),
	                 SPF_NONE);
	assert_int_equal(result_of(&z, "192.0.2.1", "u@two.example"),
	                 SPF_PERMERROR);
	assert_int_equal(result_of(&z, "192.0.2.1", "u@slow.example"),
	                 SPF_TEMPERROR);
	assert_int_equal(result_of(&z, "192.0.2.10", "u@inc.example"),
	                 SPF_PASS);
	assert_int_equal(result_of(&z, "192.0.3.10", "u@inc.example"),
	                 SPF_NEUTRAL);
	assert_int_equal(result_of(&z, "192.0.2.10", "u@noinc.example"),
	                 SPF_PERMERROR);

	/* a syntax error anywhere, even after a match */
	o = run(&z, "192.0.2.1", "h.example", "u@syntax.example", NULL);
	assert_int_equal(o->result, SPF_PERMERROR);
	assert_null(o->mechanism);
	assert_non_null(strstr(o->problem, "ip5:1.2.3.4"));
	spf_outcome_free(&o);

	/* redirect: the target decides; our exp= is dropped (§6.2) */
	o = run(&z, "198.51.100.1", "h.example", "u@redir.example", NULL);
	assert_int_equal(o->result, SPF_FAIL);
	assert_string_equal(o->explanation,
	                    "redir.example does not designate 198.51.100.1 as "
	                    "permitted sender");
	spf_outcome_free(&o);

	/* the DNS interface failing is a temperror */
	z.fail_all = 1;
	assert_int_equal(result_of(&z, "192.0.2.1", "u@example.com"),
	                 SPF_TEMPERROR);
}

static void
identities(void **state)
{
	ZONE(z, basic_zone);
	struct ma_dns dns = {zone_lookup, &z};
	struct spf_request req;
	struct spf_outcome *o;

	(void)state;
	/* null reverse-path: postmaster@HELO */
	o = run(&z, "192.0.2.200", "helo.example.org", "", NULL);
	assert_int_equal(o->result, SPF_PASS);
	assert_string_equal(o->sender, "postmaster@helo.example.org");
	assert_int_equal(o->identity, SPF_IDENTITY_MAILFROM);
	spf_outcome_free(&o);
	o = run(&z, "192.0.2.201", "helo.example.org", NULL, NULL);
	assert_int_equal(o->result, SPF_FAIL);
	spf_outcome_free(&o);

	/* the HELO identity ignores MAIL FROM */
	memset(&req, 0, sizeof(req));
	assert_int_equal(spf_ip_parse("192.0.2.200", &req.ip), 0);
	req.identity = SPF_IDENTITY_HELO;
	req.helo = "helo.example.org";
	req.mail_from = "someone@example.com";
	o = spf_check_host(&dns, &req);
	assert_int_equal(o->result, SPF_PASS);
	assert_string_equal(o->sender, "postmaster@helo.example.org");
	assert_int_equal(o->identity, SPF_IDENTITY_HELO);
	spf_outcome_free(&o);

	/* a HELO that is not a multi-label name, or a literal: none, and no
	 * DNS query at all */
	z.calls = 0;
	req.helo = "OEMCOMPUTER";
	o = spf_check_host(&dns, &req);
	assert_int_equal(o->result, SPF_NONE);
	assert_string_equal(o->problem, "malformed domain");
	spf_outcome_free(&o);
	req.helo = "[192.0.2.200]";
	o = spf_check_host(&dns, &req);
	assert_int_equal(o->result, SPF_NONE);
	spf_outcome_free(&o);
	req.helo = NULL;
	o = spf_check_host(&dns, &req);
	assert_int_equal(o->result, SPF_NONE);
	assert_null(o->helo);
	spf_outcome_free(&o);
	assert_int_equal(z.calls, 0);

	/* no local part: postmaster */
	o = run(&z, "192.0.2.9", "h.example", "@example.com", NULL);
	assert_string_equal(o->sender, "postmaster@example.com");
	spf_outcome_free(&o);
	/* label of 64 octets, empty label, long sender: none */
	assert_int_equal(
	    result_of(&z, "192.0.2.1",
	              "u@a123456789012345678901234567890123456789012345678901"
	              "234567890123.example.com"),
	    SPF_NONE);
	assert_int_equal(result_of(&z, "192.0.2.1", "u@a..example.com"),
	                 SPF_NONE);
	assert_int_equal(result_of(&z, "192.0.2.1", "u@[192.0.2.1]"), SPF_NONE);
	{
		char longfrom[SPF_SENDER_MAX + 20];

		memset(longfrom, 'a', sizeof(longfrom) - 1);
		longfrom[sizeof(longfrom) - 1] = '\0';
		memcpy(longfrom + sizeof(longfrom) - 14, "@example.com", 13);
		o = run(&z, "192.0.2.1", "h.example", longfrom, NULL);
		assert_int_equal(o->result, SPF_NONE);
		assert_string_equal(o->problem, "sender too long");
		spf_outcome_free(&o);
	}
}

static void
idn_domain(void **state)
{
	ZONE(z, basic_zone);
	struct spf_outcome *o;

	(void)state;
	o = run(&z, "192.0.2.9", "h.example", "kim@bücher.example", NULL);
	assert_int_equal(o->result, SPF_PASS);
	assert_string_equal(o->domain, "xn--bcher-kva.example");
	assert_string_equal(o->sender, "kim@xn--bcher-kva.example");
	assert_non_null(strstr(z.log, "TXT xn--bcher-kva.example\n"));
	spf_outcome_free(&o);
	/* not IDNA2008: none */
	assert_int_equal(result_of(&z, "192.0.2.9", "kim@\xe2\x98\x83.example"),
	                 SPF_NONE);
	assert_int_equal(result_of(&z, "192.0.2.9",
	                           "kim@b\xfc"
	                           "cher.example"),
	                 SPF_NONE);
}

/* ---------------------------------------------------------------- limits */

static const struct zrr limit_zone[] = {
    /* 10 DNS terms, then ip4: at the limit */
    {"at.example", MA_DNS_TXT,
     "v=spf1 a mx a mx a mx a mx a exists:x.example ip4:192.0.2.1 -all"},
    {"at.example", MA_DNS_A, "192.0.2.50"},
    {"at.example", MA_DNS_MX, "10 at.example"},
    {"over.example", MA_DNS_TXT,
     "v=spf1 a mx a mx a mx a mx a a a ip4:192.0.2.1 -all"},
    {"over.example", MA_DNS_A, "192.0.2.50"},
    {"over.example", MA_DNS_MX, "10 over.example"},
    {"x.example", MA_DNS_A, "127.0.0.2"},
    {"loop.example", MA_DNS_TXT, "v=spf1 include:loop2.example -all"},
    {"loop2.example", MA_DNS_TXT, "v=spf1 include:loop.example -all"},
    {"self.example", MA_DNS_TXT, "v=spf1 redirect=self.example"},
    {"void2.example", MA_DNS_TXT,
     "v=spf1 a:n1.example exists:n2.example ip4:192.0.2.1 -all"},
    {"void3.example", MA_DNS_TXT,
     "v=spf1 a:n1.example exists:n2.example mx:n3.example ip4:192.0.2.1 "
     "-all"},
    {"mx10.example", MA_DNS_TXT, "v=spf1 mx -all"},
    {"mx11.example", MA_DNS_TXT, "v=spf1 mx -all"},
    {"ptr.example", MA_DNS_TXT, "v=spf1 ptr -all"},
    {"1.2.0.192.in-addr.arpa", MA_DNS_PTR, "p1.example."},
    {"1.2.0.192.in-addr.arpa", MA_DNS_PTR, "p2.example"},
    {"1.2.0.192.in-addr.arpa", MA_DNS_PTR, "p3.example"},
    {"1.2.0.192.in-addr.arpa", MA_DNS_PTR, "p4.example"},
    {"1.2.0.192.in-addr.arpa", MA_DNS_PTR, "p5.example"},
    {"1.2.0.192.in-addr.arpa", MA_DNS_PTR, "p6.example"},
    {"1.2.0.192.in-addr.arpa", MA_DNS_PTR, "p7.example"},
    {"1.2.0.192.in-addr.arpa", MA_DNS_PTR, "p8.example"},
    {"1.2.0.192.in-addr.arpa", MA_DNS_PTR, "p9.example"},
    {"1.2.0.192.in-addr.arpa", MA_DNS_PTR, "p10.example"},
    {"1.2.0.192.in-addr.arpa", MA_DNS_PTR, "mail.ptr.example"},
    {"mail.ptr.example", MA_DNS_A, "192.0.2.1"},
    {"p1.example", MA_DNS_A, "192.0.2.1"},
};

static struct zrr mx_zone[80];

static size_t
build_mx_zone(void)
{
	static char names[11][48];
	size_t n = 0;

	memcpy(mx_zone, limit_zone, sizeof(limit_zone));
	n = sizeof(limit_zone) / sizeof(limit_zone[0]);
	for (int i = 0; i < 11; i++) {
		snprintf(names[i], sizeof(names[i]), "%d mx%d.example", i, i);
		if (i < 10)
			mx_zone[n++] =
			    (struct zrr){"mx10.example", MA_DNS_MX, names[i]};
		mx_zone[n++] =
		    (struct zrr){"mx11.example", MA_DNS_MX, names[i]};
	}
	mx_zone[n++] = (struct zrr){"mx9.example", MA_DNS_A, "192.0.2.99"};
	return n;
}

static void
limits(void **state)
{
	ZONE(z, limit_zone);
	struct spf_limits lim = spf_default_limits;
	struct spf_outcome *o;

	(void)state;
	o = run(&z, "192.0.2.1", "h.example", "u@at.example", NULL);
	assert_int_equal(o->result, SPF_PASS);
	assert_int_equal(o->dns_terms, 10);
	spf_outcome_free(&o);
	o = run(&z, "192.0.2.1", "h.example", "u@over.example", NULL);
	assert_int_equal(o->result, SPF_PERMERROR);
	assert_string_equal(o->problem, "more than 10 DNS-querying terms");
	spf_outcome_free(&o);
	assert_int_equal(result_of(&z, "192.0.2.1", "u@loop.example"),
	                 SPF_PERMERROR);
	assert_int_equal(result_of(&z, "192.0.2.1", "u@self.example"),
	                 SPF_PERMERROR);

	/* void lookups: two are fine, the third is a permerror */
	o = run(&z, "192.0.2.1", "h.example", "u@void2.example", NULL);
	assert_int_equal(o->result, SPF_PASS);
	assert_int_equal(o->void_lookups, 2);
	spf_outcome_free(&o);
	o = run(&z, "192.0.2.1", "h.example", "u@void3.example", NULL);
	assert_int_equal(o->result, SPF_PERMERROR);
	assert_string_equal(o->problem, "more than 2 void lookups");
	spf_outcome_free(&o);

	/* the limits are the caller's to change */
	lim.void_lookups = 5;
	o = run(&z, "192.0.2.1", "h.example", "u@void3.example", &lim);
	assert_int_equal(o->result, SPF_PASS);
	spf_outcome_free(&o);
	lim = spf_default_limits;
	lim.dns_terms = 3;
	assert_int_equal(result_of(&z, "192.0.2.1", "u@at.example"), SPF_PASS);
	o = run(&z, "192.0.2.1", "h.example", "u@at.example", &lim);
	assert_int_equal(o->result, SPF_PERMERROR);
	spf_outcome_free(&o);
	/* and the query budget backs them all */
	lim = spf_default_limits;
	lim.queries = 4;
	o = run(&z, "192.0.2.1", "h.example", "u@at.example", &lim);
	assert_int_equal(o->result, SPF_PERMERROR);
	assert_string_equal(o->problem, "more than 4 DNS queries");
	assert_int_equal(o->queries, 4);
	spf_outcome_free(&o);
}

static void
mx_and_ptr_limits(void **state)
{
	size_t n = build_mx_zone();
	struct zone z = {mx_zone, n, 0, 0, {0}};
	ZONE(pz, limit_zone);
	struct spf_outcome *o;

	(void)state;
	/* ten MX names are looked up; eleven are a permerror (§4.6.4) */
	assert_int_equal(result_of(&z, "192.0.2.99", "u@mx10.example"),
	                 SPF_PASS);
	o = run(&z, "192.0.2.99", "h.example", "u@mx11.example", NULL);
	assert_int_equal(o->result, SPF_PERMERROR);
	assert_string_equal(o->problem,
	                    "more than 10 MX names at mx11.example");
	spf_outcome_free(&o);

	/* only the first ten PTR names are validated: mail.ptr.example, the
	 * eleventh, is ignored */
	o = run(&pz, "192.0.2.1", "h.example", "u@ptr.example", NULL);
	assert_int_equal(o->result, SPF_FAIL);
	assert_null(strstr(pz.log, "mail.ptr.example"));
	assert_non_null(strstr(pz.log, "PTR 1.2.0.192.in-addr.arpa\n"));
	assert_non_null(strstr(pz.log, "A p10.example\n"));
	spf_outcome_free(&o);
}

static const struct zrr ptr_zone[] = {
    {"e.example", MA_DNS_TXT, "v=spf1 ptr -all exp=why.%{d}"},
    {"why.e.example", MA_DNS_TXT, "%{c} is %{p}; %{i} %{v} at %{t} for %{r}"},
    {"p.example", MA_DNS_TXT, "v=spf1 exists:%{p}.ok.example -all"},
    {"1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa",
     MA_DNS_PTR, "other.example"},
    {"1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa",
     MA_DNS_PTR, "mx.e.example"},
    {"other.example", MA_DNS_AAAA, "2001:db8::cb01"},
    {"mx.e.example", MA_DNS_AAAA, "2001:DB8::CB01"},
    {"mx.e.example.ok.example", MA_DNS_A, "127.0.0.2"},
    {"other.example.ok.example", MA_DNS_A, "127.0.0.2"},
};

static void
ptr_and_p_macro(void **state)
{
	ZONE(z, ptr_zone);
	struct spf_outcome *o;

	(void)state;
	o = run(&z, "2001:db8::cb01", "h.example", "u@e.example", NULL);
	assert_int_equal(o->result, SPF_PASS);
	assert_string_equal(o->mechanism, "ptr");
	spf_outcome_free(&o);
	o = run(&z, "2001:db8::cb02", "h.example", "u@e.example", NULL);
	assert_int_equal(o->result, SPF_FAIL);
	assert_string_equal(o->explanation,
	                    "2001:db8::cb02 is unknown; "
	                    "2.0.0.1.0.d.b.8.0.0.0.0.0.0.0.0.0.0.0.0."
	                    "0.0.0.0.0.0.0.0.c.b.0.2 ip6 at 1700000000 for "
	                    "mx.receiver.example");
	spf_outcome_free(&o);
	/* %{p} prefers a name within <domain>, or any validated one */
	z.log[0] = '\0';
	o = run(&z, "2001:db8::cb01", "h.example", "u@p.example", NULL);
	assert_int_equal(o->result, SPF_PASS);
	assert_non_null(strstr(z.log, "A other.example.ok.example\n"));
	spf_outcome_free(&o);
}

#define X10 "xxxxxxxxxx"
#define X100 X10 X10 X10 X10 X10 X10 X10 X10 X10 X10

static const struct zrr exp_zone[] = {
    {"f.example", MA_DNS_TXT, "v=spf1 -all exp=why.f.example"},
    {"why.f.example", MA_DNS_TXT, X100 X100 X100 X100 X100 X10 "xx"},
    {"g.example", MA_DNS_TXT, "v=spf1 -all exp=why.g.example"},
    {"why.g.example", MA_DNS_TXT, X100 X100 X100 X100 X100 X10 "xx%%"},
    {"a.example", MA_DNS_TXT, "v=spf1 -all exp=why.a.example"},
    {"why.a.example", MA_DNS_TXT, "%{l} from %{o} may not use %{c}."},
    {"b.example", MA_DNS_TXT, "v=spf1 -all exp=why.b.example"},
    {"why.b.example", MA_DNS_TXT, "one"},
    {"why.b.example", MA_DNS_TXT, "two"},
    {"c.example", MA_DNS_TXT, "v=spf1 -all exp=why.c.example"},
    {"why.c.example", MA_DNS_TXT, "bad %{x} macro"},
    {"d.example", MA_DNS_TXT, "v=spf1 -all exp=why.d.example"},
    {"why.d.example", MA_DNS_TXT, TEMPFAIL},
    {"e.example", MA_DNS_TXT,
     "v=spf1 include:a.example -all "
     "exp=why.e.example"},
    {"why.e.example", MA_DNS_TXT, "from e"},
};

static void
explanations(void **state)
{
	ZONE(z, exp_zone);
	struct ma_dns dns = {zone_lookup, &z};
	struct spf_request req;
	struct spf_outcome *o;
	static const char *defaults[] = {"b.example", "c.example", "d.example"};

	(void)state;
	o = run(&z, "192.0.2.1", "h.example", "Jo@a.example", NULL);
	assert_int_equal(o->result, SPF_FAIL);
	assert_string_equal(o->explanation,
	                    "Jo from a.example may not use 192.0.2.1.");
	spf_outcome_free(&o);
	/* two records, a syntax error, a DNS error: the default */
	for (size_t i = 0; i < 3; i++) {
		char from[32];

		snprintf(from, sizeof(from), "u@%s", defaults[i]);
		o = run(&z, "192.0.2.1", "h.example", from, NULL);
		assert_int_equal(o->result, SPF_FAIL);
		assert_non_null(strstr(o->explanation, "does not designate"));
		spf_outcome_free(&o);
	}
	/* SPF_EXPLANATION_MAX bytes, expanded, at most */
	o = run(&z, "192.0.2.1", "h.example", "u@f.example", NULL);
	assert_int_equal(strlen(o->explanation), SPF_EXPLANATION_MAX);
	spf_outcome_free(&o);
	o = run(&z, "192.0.2.1", "h.example", "u@g.example", NULL);
	assert_non_null(strstr(o->explanation, "does not designate"));
	spf_outcome_free(&o);
	/* include: our own exp=, not the included one's */
	o = run(&z, "192.0.2.1", "h.example", "u@e.example", NULL);
	assert_string_equal(o->explanation, "from e");
	spf_outcome_free(&o);
	/* the caller's default, macros expanded; a broken one falls back */
	memset(&req, 0, sizeof(req));
	assert_int_equal(spf_ip_parse("192.0.2.7", &req.ip), 0);
	req.mail_from = "u@b.example";
	req.default_explanation = "see https://example.net/spf?ip=%{c}";
	o = spf_check_host(&dns, &req);
	assert_string_equal(o->explanation,
	                    "see https://example.net/spf?ip=192.0.2.7");
	spf_outcome_free(&o);
	req.default_explanation = "%{x}";
	o = spf_check_host(&dns, &req);
	assert_string_equal(o->explanation,
	                    "b.example does not designate 192.0.2.7 as "
	                    "permitted sender");
	spf_outcome_free(&o);
	/* no explanation for anything but fail */
	req.mail_from = "u@nothing.example";
	o = spf_check_host(&dns, &req);
	assert_int_equal(o->result, SPF_NONE);
	assert_null(o->explanation);
	spf_outcome_free(&o);
}

/* ---------------------------------------------------------------- headers */

static void
header_fields(void **state)
{
	ZONE(z, basic_zone);
	struct spf_outcome *o;
	struct buf b;

	(void)state;
	buf_init(&b, 0);
	o = run(&z, "192.0.2.10", "helo.example.org", "user@example.com", NULL);
	assert_int_equal(spf_received_spf(o, &b), 0);
	assert_string_equal(
	    buf_cstr(&b),
	    "pass (mx.receiver.example: domain of user@example.com designates "
	    "192.0.2.10 as permitted sender) client-ip=192.0.2.10; "
	    "envelope-from=\"user@example.com\"; helo=helo.example.org; "
	    "receiver=mx.receiver.example; identity=mailfrom; "
	    "mechanism=\"ip4:192.0.2.0/24\"");
	buf_reset(&b);
	assert_int_equal(spf_auth_results(o, &b), 0);
	assert_string_equal(buf_cstr(&b),
	                    "spf=pass smtp.mailfrom=user@example.com");
	spf_outcome_free(&o);

	/* peer bytes are quoted and cannot end the field */
	buf_reset(&b);
	o = run(&z, "2001:db8::1", "evil\r\n\"x\"(y)", "a\"b c\\d@two.example",
	        NULL);
	assert_int_equal(o->result, SPF_PERMERROR);
	assert_int_equal(spf_received_spf(o, &b), 0);
	assert_string_equal(
	    buf_cstr(&b),
	    "permerror (mx.receiver.example: permanent error in processing "
	    "domain of a\"b c\\\\d@two.example) client-ip=\"2001:db8::1\"; "
	    "envelope-from=\"a\\\"b c\\\\d@two.example\"; "
	    "helo=\"evil??\\\"x\\\"(y)\"; receiver=mx.receiver.example; "
	    "identity=mailfrom; problem=\"more than one SPF record at "
	    "two.example\"");
	buf_reset(&b);
	assert_int_equal(spf_auth_results(o, &b), 0);
	assert_string_equal(buf_cstr(&b),
	                    "spf=permerror smtp.mailfrom=\"a\\\"b "
	                    "c\\\\d@two.example\"");
	spf_outcome_free(&o);

	/* the output buffer's max is respected */
	buf_free(&b);
	buf_init(&b, 20);
	o = run(&z, "192.0.2.10", "helo.example.org", "user@example.com", NULL);
	assert_int_equal(spf_received_spf(o, &b), -1);
	assert_true(b.len <= 20);
	spf_outcome_free(&o);
	buf_free(&b);
	assert_string_equal(spf_result_name(SPF_SOFTFAIL), "softfail");
	assert_string_equal(spf_result_name(SPF_TEMPERROR), "temperror");
}

static void
helo_header(void **state)
{
	ZONE(z, basic_zone);
	struct ma_dns dns = {zone_lookup, &z};
	struct spf_request req;
	struct spf_outcome *o;
	struct buf b;

	(void)state;
	memset(&req, 0, sizeof(req));
	assert_int_equal(spf_ip_parse("192.0.2.201", &req.ip), 0);
	req.identity = SPF_IDENTITY_HELO;
	req.helo = "helo.example.org";
	o = spf_check_host(&dns, &req);
	buf_init(&b, 0);
	assert_int_equal(spf_received_spf(o, &b), 0);
	assert_string_equal(buf_cstr(&b),
	                    "fail (domain of postmaster@helo.example.org does "
	                    "not designate 192.0.2.201 as permitted sender) "
	                    "client-ip=192.0.2.201; helo=helo.example.org; "
	                    "identity=helo; mechanism=-all");
	buf_reset(&b);
	assert_int_equal(spf_auth_results(o, &b), 0);
	assert_string_equal(buf_cstr(&b),
	                    "spf=fail smtp.helo=helo.example.org");
	buf_free(&b);
	spf_outcome_free(&o);
}

static void
addresses(void **state)
{
	struct spf_ip ip;
	struct sockaddr_in in;
	struct sockaddr_in6 in6;
	char text[SPF_IP_TEXT_MAX];

	(void)state;
	assert_int_equal(spf_ip_parse("192.0.2.1", &ip), 0);
	assert_int_equal(ip.family, AF_INET);
	assert_int_equal(spf_ip_parse("::ffff:192.0.2.1", &ip), 0);
	assert_int_equal(ip.family, AF_INET);
	assert_memory_equal(ip.addr, "\xc0\x00\x02\x01", 4);
	assert_int_equal(spf_ip_parse("2001:DB8::1", &ip), 0);
	assert_int_equal(ip.family, AF_INET6);
	spf_ip_text(&ip, text);
	assert_string_equal(text, "2001:db8::1");
	assert_int_equal(spf_ip_parse("[2001:db8::1]", &ip), -1);
	assert_int_equal(spf_ip_parse("192.0.2", &ip), -1);
	assert_int_equal(spf_ip_parse("", &ip), -1);

	memset(&in, 0, sizeof(in));
	in.sin_family = AF_INET;
	in.sin_port = htons(25);
	inet_pton(AF_INET, "198.51.100.7", &in.sin_addr);
	assert_int_equal(
	    spf_ip_from_sockaddr((struct sockaddr *)&in, sizeof(in), &ip), 0);
	spf_ip_text(&ip, text);
	assert_string_equal(text, "198.51.100.7");
	memset(&in6, 0, sizeof(in6));
	in6.sin6_family = AF_INET6;
	inet_pton(AF_INET6, "::ffff:198.51.100.8", &in6.sin6_addr);
	assert_int_equal(
	    spf_ip_from_sockaddr((struct sockaddr *)&in6, sizeof(in6), &ip), 0);
	assert_int_equal(ip.family, AF_INET);
	spf_ip_text(&ip, text);
	assert_string_equal(text, "198.51.100.8");
	assert_int_equal(
	    spf_ip_from_sockaddr((struct sockaddr *)&in6, sizeof(in), &ip), -1);
}

/* A provider that breaks the contract (count over MA_DNS_RR_MAX, NULL
 * strings, OK with no records) must not crash the check. */
static int
odd_lookup(void *arg, const char *name, enum ma_dns_type type,
           struct ma_dns_answer *ans)
{
	(void)arg;
	(void)name;
	ans->status = MA_DNS_OK;
	if (type == MA_DNS_A)
		return 0; /* OK, no records */
	ans->count = MA_DNS_RR_MAX + 3;
	ans->rr = xcalloc(ans->count, sizeof(*ans->rr));
	if (type == MA_DNS_TXT)
		ans->rr[1] = xstrdup("v=spf1 a mx ptr -all");
	if (type == MA_DNS_MX)
		ans->rr[0] = xstrdup("garbage");
	if (type == MA_DNS_PTR)
		ans->rr[2] = xstrdup("no.such.example");
	return 0;
}

static void
odd_provider(void **state)
{
	struct ma_dns dns = {odd_lookup, NULL};
	struct ma_dns_answer ans = {MA_DNS_OK, false, 2, NULL};
	struct spf_request req;
	struct spf_outcome *o;

	(void)state;
	memset(&req, 0, sizeof(req));
	assert_int_equal(spf_ip_parse("192.0.2.1", &req.ip), 0);
	req.mail_from = "u@odd.example";
	o = spf_check_host(&dns, &req);
	assert_int_equal(o->result, SPF_FAIL);
	spf_outcome_free(&o);
	spf_outcome_free(&o);

	/* ma_dns_answer_clear frees and zeroes, and may run twice */
	ans.rr = xcalloc(2, sizeof(*ans.rr));
	ans.rr[0] = xstrdup("x");
	ma_dns_answer_clear(&ans);
	assert_int_equal(ans.count, 0);
	assert_null(ans.rr);
	ma_dns_answer_clear(&ans);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(macro_rfc_examples),
	    cmocka_unit_test(macro_letters_and_escapes),
	    cmocka_unit_test(macro_syntax),
	    cmocka_unit_test(domain_specs),
	    cmocka_unit_test(expand_domain_truncates),
	    cmocka_unit_test(terms),
	    cmocka_unit_test(records),
	    cmocka_unit_test(check_results),
	    cmocka_unit_test(identities),
	    cmocka_unit_test(idn_domain),
	    cmocka_unit_test(limits),
	    cmocka_unit_test(mx_and_ptr_limits),
	    cmocka_unit_test(ptr_and_p_macro),
	    cmocka_unit_test(explanations),
	    cmocka_unit_test(header_fields),
	    cmocka_unit_test(helo_header),
	    cmocka_unit_test(addresses),
	    cmocka_unit_test(odd_provider),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
