/* Routing of non-local mail: patterns and first-match order. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/config.h"
#include "queue/route.h"

static void
test_patterns(void **state)
{
	static const struct {
		const char *pattern, *domain;
		bool match;
	} cases[] = {
	    {"*", "example.org", true},
	    {"*", "", true},
	    {"example.org", "example.org", true},
	    {"example.org", "EXAMPLE.Org", true},
	    {"example.org", "example.org.", true},
	    {"example.org.", "example.org", true},
	    {"example.org", "a.example.org", false},
	    {"example.org", "badexample.org", false},
	    {"example.org", "", false},
	    {"*.example.org", "a.example.org", true},
	    {"*.example.org", "b.a.Example.ORG", true},
	    {"*.example.org", "example.org", false},
	    {"*.example.org", "badexample.org", false},
	    {"*.example.org", "xexample.org", false},
	    {"*.example.org", "", false},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_int_equal(
		    route_domain_match(cases[i].pattern, cases[i].domain),
		    cases[i].match);
	assert_string_equal(route_address_domain("a@b@example.org"),
	                    "example.org");
	assert_string_equal(route_address_domain(""), "");
	assert_string_equal(route_address_domain("postmaster"), "");
}

static const char conf[] =
    "data_dir /tmp\n"
    "relay ses {\n host email-smtp.example.com\n port 587\n}\n"
    "relay lists {\n host 127.0.0.1\n port 2525\n tls none\n}\n"
    "route news {\n sender_domains news.example.com\n via lists\n}\n"
    "route partner {\n recipient_domains partner.example *.partner.example\n"
    " via mx\n}\n"
    "route rest {\n sender_domains example.com *.example.com\n via ses\n}\n";

static void
test_choose(void **state)
{
	char *error = NULL;
	struct config *cfg =
	    config_parse("test", "/", conf, strlen(conf), &error);
	struct route_choice c;

	(void)state;
	assert_non_null(cfg);
	/* First match wins: the news sender goes to lists even for
	 * partner.example. */
	route_choose(cfg, "bulk@news.example.com", "partner.example", &c);
	assert_string_equal(c.route->name, "news");
	assert_string_equal(c.relay->name, "lists");
	route_choose(cfg, "alice@example.com", "x.partner.example", &c);
	assert_string_equal(c.route->name, "partner");
	assert_null(c.relay);
	route_choose(cfg, "alice@example.com", "gmail.example", &c);
	assert_string_equal(c.route->name, "rest");
	assert_string_equal(c.relay->name, "ses");
	assert_int_equal(c.relay->port, 587);
	assert_int_equal(c.relay->tls, RELAY_TLS_STARTTLS);
	/* No route for other senders (and the null sender): MX. */
	route_choose(cfg, "bob@other.example", "gmail.example", &c);
	assert_null(c.route);
	assert_null(c.relay);
	route_choose(cfg, "", "gmail.example", &c);
	assert_null(c.route);
	config_free(&cfg);
}

static void
test_config_errors(void **state)
{
	static const char *const bad[] = {
	    "route r {\n via nowhere\n}\n",
	    "relay r {\n host 192.0.2.1\n tls none\n}\n",
	    "relay r {\n host a.example\n user u\n}\n",
	    "relay mx {\n host a.example\n}\n",
	    "relay r {\n host a.example\n}\nrelay r {\n host b.example\n}\n",
	    "route r {\n recipient_domains exa*mple.org\n via mx\n}\n",
	};
	char *error = NULL;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct config *cfg =
		    config_parse("test", "/", bad[i], strlen(bad[i]), &error);

		assert_null(cfg);
		assert_non_null(error);
		free(error);
		error = NULL;
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_patterns),
	    cmocka_unit_test(test_choose),
	    cmocka_unit_test(test_config_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
