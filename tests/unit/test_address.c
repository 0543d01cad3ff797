/* Tests for mail addresses (src/mail/address.c): RFC 5321 syntax, limits,
 * IDN domains (U-label and A-label agree), directory keys, subaddresses. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdbool.h>
#include <string.h>

#include "mail/address.h"

#define KEY_SIZE (ADDRESS_MAX * 4 + 2)

struct good_case {
	const char *input;
	const char *local;
	const char *domain;
	bool quoted;
	bool utf8;
	const char *key;
};

static const struct good_case good_cases[] = {
    {"user@example.com", "user", "example.com", false, false,
     "user@example.com"},
    {"User.Name@Example.COM", "User.Name", "example.com", false, false,
     "user.name@example.com"},
    {"a!#$%&'*+-/=?^_`{|}~@x.y", "a!#$%&'*+-/=?^_`{|}~", "x.y", false, false,
     "a!#$%&'*+-/=?^_`{|}~@x.y"},
    {"a@localhost", "a", "localhost", false, false, "a@localhost"},
    {"a@ab--cd.example", "a", "ab--cd.example", false, false,
     "a@ab--cd.example"},
    {"a@0-9.123", "a", "0-9.123", false, false, "a@0-9.123"},
    /* Quoted local parts: quotes removed, escapes resolved; the key is
     * re-quoted only when the content is not a Dot-string. */
    {"\"john.doe\"@example.com", "john.doe", "example.com", true, false,
     "john.doe@example.com"},
    {"\"John.Doe\"@example.com", "John.Doe", "example.com", true, false,
     "john.doe@example.com"},
    {"\"a b\"@x", "a b", "x", true, false, "\"a b\"@x"},
    {"\"A\\\"B\"@x", "A\"B", "x", true, false, "\"a\\\"b\"@x"},
    {"\"a\\\\b\"@x", "a\\b", "x", true, false, "\"a\\\\b\"@x"},
    {"\"\\a\"@x", "a", "x", true, false, "a@x"},
    {"\"\\ \"@x", " ", "x", true, false, "\" \"@x"},
    {"\"a@b\"@x", "a@b", "x", true, false, "\"a@b\"@x"},
    {"\"a..b\"@x", "a..b", "x", true, false, "\"a..b\"@x"},
    {"\".a\"@x", ".a", "x", true, false, "\".a\"@x"},
    {"\"(c)\"@x", "(c)", "x", true, false, "\"(c)\"@x"},
    /* UTF-8 local parts (RFC 6531): only ASCII letters are lowered. */
    {"jöhn@x", "jöhn", "x", false, true, "jöhn@x"},
    {"JÖHN@x", "JÖHN", "x", false, true, "jÖhn@x"},
    {"\"Jöhn Doe\"@x", "Jöhn Doe", "x", true, true, "\"jöhn doe\"@x"},
    {"\"jöhn\"@x", "jöhn", "x", true, true, "jöhn@x"},
    {"δοκιμή@παράδειγμα.δοκιμή", "δοκιμή", "xn--hxajbheg2az3al.xn--jxalpdlp",
     false, true, "δοκιμή@xn--hxajbheg2az3al.xn--jxalpdlp"},
    {"用户@例子.广告", "用户", "xn--fsqu00a.xn--4rr70v", false, true,
     "用户@xn--fsqu00a.xn--4rr70v"},
    /* Domains: IDNA2008 non-transitional (ß kept), Arabic (Bidi). */
    {"a@faß.de", "a", "xn--fa-hia.de", false, false, "a@xn--fa-hia.de"},
    {"a@xn--fa-hia.de", "a", "xn--fa-hia.de", false, false, "a@xn--fa-hia.de"},
    {"a@مثال.example", "a", "xn--mgbh0fb.example", false, false,
     "a@xn--mgbh0fb.example"},
    {"a@ab--cd.bücher.example", "a", "ab--cd.xn--bcher-kva.example", false,
     false, "a@ab--cd.xn--bcher-kva.example"},
    /* UTS#46 maps fullwidth letters to ASCII. */
    {"a@ＥＸＡＭＰＬＥ.com", "a", "example.com", false, false, "a@example.com"},
};

struct bad_case {
	const char *input;
	size_t len; /* 0: strlen(input) */
	const char *reason;
};

static const struct bad_case bad_cases[] = {
    {"", 0, "empty address"},
    {"user", 0, "missing @"},
    {"user.example.com", 0, "missing @"},
    {"@example.com", 0, "empty local part"},
    {"@", 0, "empty local part"},
    {"\"\"@x", 0, "empty local part"},
    {".a@x", 0, "local part: leading dot"},
    {".@x", 0, "local part: leading dot"},
    {"a.@x", 0, "local part: trailing dot"},
    {"a..b@x", 0, "local part: consecutive dots"},
    {"a b@x", 0, "local part: invalid character"},
    {"a(b)@x", 0, "local part: invalid character"},
    {"a,b@x", 0, "local part: invalid character"},
    {"a\"b@x", 0, "local part: invalid character"},
    {"a\\b@x", 0, "local part: invalid character"},
    {"a[b]@x", 0, "local part: invalid character"},
    {"a:b@x", 0, "local part: invalid character"},
    {"<a@x>", 0, "local part: invalid character"},
    {"\"abc@x", 0, "local part: unterminated quoted string"},
    {"\"a\\", 0, "local part: unterminated quoted string"},
    {"\"a\\é\"@x", 0, "local part: invalid escape"},
    {"\"a\"b@x", 0, "local part: text after quoted string"},
    {"\"a\".b@x", 0, "local part: text after quoted string"},
    {"\"a\"", 0, "missing @"},
    {"a@", 0, "domain: empty"},
    {"a@[192.0.2.1]", 0, "domain: address literals are not supported"},
    {"a@[IPv6:2001:db8::1]", 0, "domain: address literals are not supported"},
    {"a@.x", 0, "domain: leading dot"},
    {"a@x.", 0, "domain: trailing dot"},
    {"a@x..y", 0, "domain: empty label"},
    {"a@-x.y", 0, "domain: label starts or ends with a hyphen"},
    {"a@x-.y", 0, "domain: label starts or ends with a hyphen"},
    {"a@x_y.z", 0, "domain: invalid character"},
    {"a@x y", 0, "domain: invalid character"},
    {"a@b@c", 0, "domain: invalid character"},
    {"a@bü_cher.example", 0, "domain: invalid character"},
    {"a@xn--a.example", 0, "domain: invalid A-label"},
    {"a@xn--zzzzzzzz.example", 0, "domain: invalid A-label"},
    {"a@xn--.example", 0, "domain: label starts or ends with a hyphen"},
    {"a@xn--n3h.example", 0, "domain: invalid A-label"},
    {"a@☃.example", 0, "domain: invalid international name"},
    {"a@bücher。example", 0, "domain: invalid international name"},
    {"a@x.ａ＿ｂ", 0, "domain: invalid international name"},
    {"a@a\xe2\x80\x8d"
     "b.example",
     0, "domain: invalid international name"},
    {"a\0b@x", 5, "NUL byte in address"},
    {"a@x\0", 4, "NUL byte in address"},
    {"a\tb@x", 0, "control character in address"},
    {"a\r\n@x", 0, "control character in address"},
    {"a\x7f@x", 0, "control character in address"},
    {"a@x\x1b", 0, "control character in address"},
    {"\xc2\x80@x", 0, "control character in address"},
    {"\xc2\x85@x", 0, "control character in address"},
    {"\xc2\x9f@x", 0, "control character in address"},
    {"\xff@x", 0, "invalid UTF-8 in address"},
    {"\xc0\xaf@x", 0, "invalid UTF-8 in address"},
    {"\xe0\x80\xaf@x", 0, "invalid UTF-8 in address"},
    {"\xed\xa0\x80@x", 0, "invalid UTF-8 in address"},
    {"\xf4\x90\x80\x80@x", 0, "invalid UTF-8 in address"},
    {"\xe2\x82@x", 0, "invalid UTF-8 in address"},
    {"a@b\xfc", 0, "invalid UTF-8 in address"},
    {"\"\xfc\"@x", 0, "invalid UTF-8 in address"},
};

static void
parse_good(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(good_cases) / sizeof(good_cases[0]);
	     i++) {
		const struct good_case *c = &good_cases[i];
		struct address a;
		const char *error = NULL;
		char key[KEY_SIZE];

		if (address_parse(c->input, strlen(c->input), &a, &error) < 0)
			fail_msg("%s: %s", c->input, error);
		assert_string_equal(a.local, c->local);
		assert_string_equal(a.domain, c->domain);
		assert_int_equal(a.quoted, c->quoted);
		assert_int_equal(a.utf8, c->utf8);
		address_key(&a, key, sizeof(key));
		assert_string_equal(key, c->key);
	}
}

static void
parse_bad(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		const struct bad_case *c = &bad_cases[i];
		size_t len = c->len != 0 ? c->len : strlen(c->input);
		struct address a;
		const char *error = NULL;

		memset(&a, 0x5a, sizeof(a));
		if (address_parse(c->input, len, &a, &error) == 0)
			fail_msg("accepted: %s", c->input);
		assert_non_null(error);
		if (strcmp(error, c->reason) != 0)
			fail_msg("%s: got \"%s\", want \"%s\"", c->input, error,
			         c->reason);
		/* addr is written only on success */
		assert_int_equal((unsigned char)a.local[0], 0x5a);
	}
}

static void
idn_equivalence(void **state)
{
	static const char *const forms[] = {
	    "a@bücher.example",
	    "a@xn--bcher-kva.example",
	    "a@XN--BCHER-KVA.EXAMPLE",
	    "a@Xn--Bcher-Kva.Example",
	    "a@xn--BCHER-kva.example",
	    "a@BÜCHER.example",
	    "a@BüCher.EXAMPLE",
	    ("a@bu\xcc\x88"
	     "cher.example"), /* NFD: u + combining diaeresis */
	    "A@bücher.example",
	};
	char first[KEY_SIZE];

	(void)state;
	for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
		struct address a;
		const char *error = NULL;
		char key[KEY_SIZE], dkey[KEY_SIZE];

		if (address_parse(forms[i], strlen(forms[i]), &a, &error) < 0)
			fail_msg("%s: %s", forms[i], error);
		assert_string_equal(a.domain, "xn--bcher-kva.example");
		address_key(&a, key, sizeof(key));
		address_domain_key(&a, dkey, sizeof(dkey));
		assert_string_equal(dkey, "@xn--bcher-kva.example");
		if (i == 0)
			memcpy(first, key, sizeof(first));
		assert_string_equal(key, first);
	}
	assert_string_equal(first, "a@xn--bcher-kva.example");
}

static void
domain_normalize(void **state)
{
	static const struct {
		const char *input;
		const char *out;    /* NULL: refused */
		const char *reason; /* when refused */
	} cases[] = {
	    {"Example.COM", "example.com", NULL},
	    {"bücher.example", "xn--bcher-kva.example", NULL},
	    {"XN--BCHER-KVA.example", "xn--bcher-kva.example", NULL},
	    {"ΠΑΡΆΔΕΙΓΜΑ.δοκιμή", "xn--hxajbheg2az3al.xn--jxalpdlp", NULL},
	    {"", NULL, "domain: empty"},
	    {"[192.0.2.1]", NULL, "domain: address literals are not supported"},
	    {"a@b", NULL, "domain: invalid character"},
	    {"a\tb", NULL, "domain: control character"},
	    {"a\xff", NULL, "domain: invalid UTF-8"},
	    {"example.com.", NULL, "domain: trailing dot"},
	    {"xn--a", NULL, "domain: invalid A-label"},
	};
	char out[ADDRESS_DOMAIN_MAX + 1];
	const char *error;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *in = cases[i].input;
		int ret;

		error = NULL;
		ret = address_domain_normalize(in, strlen(in), out, &error);
		if (cases[i].out != NULL) {
			if (ret < 0)
				fail_msg("%s: %s", in, error);
			assert_string_equal(out, cases[i].out);
		} else {
			assert_int_equal(ret, -1);
			assert_string_equal(error, cases[i].reason);
		}
	}
	error = NULL;
	assert_int_equal(address_domain_normalize("a\0b", 3, out, &error), -1);
	assert_string_equal(error, "domain: NUL byte");
}

/* A domain of exactly n octets, in labels of at most 63 octets. */
static void
make_domain(char *out, size_t n)
{
	size_t o = 0;

	while (n > 0) {
		size_t label = n > 63 ? 63 : n;

		/* never leave a final label of 0 after a dot */
		if (n > 63 && n - 63 == 1)
			label = 61;
		memset(out + o, 'd', label);
		o += label;
		n -= label;
		if (n > 0) {
			out[o++] = '.';
			n--;
		}
	}
	out[o] = '\0';
}

static int
parse_str(const char *s, struct address *a, const char **error_r)
{
	*error_r = NULL;
	return address_parse(s, strlen(s), a, error_r);
}

static void
limits(void **state)
{
	char text[ADDRESS_INPUT_MAX + 2], dom[ADDRESS_INPUT_MAX];
	char out[ADDRESS_DOMAIN_MAX + 1];
	struct address a;
	const char *error;
	(void)state;
	/* local part: 64 octets as written */
	memset(text, 'l', 64);
	strcpy(text + 64, "@x");
	assert_int_equal(parse_str(text, &a, &error), 0);
	assert_int_equal(strlen(a.local), 64);
	memset(text, 'l', 65);
	strcpy(text + 65, "@x");
	assert_int_equal(parse_str(text, &a, &error), -1);
	assert_string_equal(error, "local part over 64 octets");

	/* UTF-8 local part: octets, not characters (32 x U+00E9 = 64) */
	text[0] = '\0';
	for (int i = 0; i < 32; i++)
		strcat(text, "é");
	strcat(text, "@x");
	assert_int_equal(parse_str(text, &a, &error), 0);
	assert_true(a.utf8);
	text[0] = '\0';
	for (int i = 0; i < 33; i++)
		strcat(text, "é");
	strcat(text, "@x");
	assert_int_equal(parse_str(text, &a, &error), -1);
	assert_string_equal(error, "local part over 64 octets");

	/* quoted: the quotes count (62 + 2 = 64) */
	text[0] = '"';
	memset(text + 1, ' ', 62);
	strcpy(text + 63, "\"@x");
	assert_int_equal(parse_str(text, &a, &error), 0);
	assert_int_equal(strlen(a.local), 62);
	text[0] = '"';
	memset(text + 1, ' ', 63);
	strcpy(text + 64, "\"@x");
	assert_int_equal(parse_str(text, &a, &error), -1);
	assert_string_equal(error, "local part over 64 octets");
	/* escapes count as written: 31 x \" + 2 quotes = 64 */
	text[0] = '"';
	for (int i = 0; i < 31; i++)
		memcpy(text + 1 + 2 * i, "\\\"", 2);
	strcpy(text + 63, "\"@x");
	assert_int_equal(parse_str(text, &a, &error), 0);
	assert_int_equal(strlen(a.local), 31);

	/* domain: 255 octets, labels of 63 */
	make_domain(dom, 255);
	assert_int_equal(strlen(dom), 255);
	assert_int_equal(address_domain_normalize(dom, 255, out, &error), 0);
	assert_string_equal(out, dom);
	make_domain(dom, 256);
	assert_int_equal(strlen(dom), 256);
	assert_int_equal(address_domain_normalize(dom, 256, out, &error), -1);
	assert_string_equal(error, "domain: over 255 octets");
	/* label: 63 octets */
	memset(dom, 'q', 63);
	dom[63] = '\0';
	assert_int_equal(address_domain_normalize(dom, 63, out, &error), 0);
	memset(dom, 'q', 64);
	dom[64] = '\0';
	assert_int_equal(address_domain_normalize(dom, 64, out, &error), -1);
	assert_string_equal(error, "domain: label over 63 octets");
	/* a U-label whose A-label is over 63 octets */
	memset(dom, 'u', 60);
	strcpy(dom + 60, "ü");
	assert_int_equal(
	    address_domain_normalize(dom, strlen(dom), out, &error), -1);
	assert_string_equal(error, "domain: invalid international name");

	/* whole address: 64 + 1 + 191 = 256 */
	memset(text, 'l', 64);
	text[64] = '@';
	make_domain(text + 65, 191);
	assert_int_equal(strlen(text), 256);
	assert_int_equal(parse_str(text, &a, &error), 0);
	make_domain(text + 65, 192);
	assert_int_equal(strlen(text), 257);
	assert_int_equal(parse_str(text, &a, &error), -1);
	assert_string_equal(error, "address over 256 octets");
	/* the A-label form counts: "bücher" is 7 octets, 13 as an A-label */
	memset(text, 'l', 64);
	strcpy(text + 64, "@bücher.");
	make_domain(text + strlen(text), 63 + 1 + 63 + 1 + 49);
	assert_true(strlen(text) < 256);
	assert_int_equal(parse_str(text, &a, &error), 0);
	assert_int_equal(64 + 1 + strlen(a.domain), 256);
	make_domain(text + 64 + strlen("@bücher."), 63 + 1 + 63 + 1 + 50);
	assert_true(strlen(text) < 256);
	assert_int_equal(parse_str(text, &a, &error), -1);
	assert_string_equal(error, "address over 256 octets");

	/* raw input: 1024 is parsed, 1025 refused before any work */
	memset(text, 'a', 1024);
	text[1024] = '\0';
	assert_int_equal(parse_str(text, &a, &error), -1);
	assert_string_equal(error, "missing @");
	memset(text, 'a', 1025);
	text[1025] = '\0';
	assert_int_equal(parse_str(text, &a, &error), -1);
	assert_string_equal(error, "address over 1024 octets");
	assert_int_equal(address_domain_normalize(text, 1025, out, &error), -1);
	assert_string_equal(error, "domain: over 1024 octets");
}

static void
subaddress(void **state)
{
	static const struct {
		const char *input;
		const char *separators;
		bool cut;
		const char *local;
		bool utf8;
		const char *key;
	} cases[] = {
	    {"user+tag@x", "+", true, "user", false, "user@x"},
	    {"User+Tag@x", "+", true, "User", false, "user@x"},
	    {"user+@x", "+", true, "user", false, "user@x"},
	    {"a+b+c@x", "+", true, "a", false, "a@x"},
	    {"+tag@x", "+", false, "+tag", false, "+tag@x"},
	    {"user@x", "+", false, "user", false, "user@x"},
	    {"user+tag@x", "", false, "user+tag", false, "user+tag@x"},
	    {"user+tag@x", NULL, false, "user+tag", false, "user+tag@x"},
	    {"user+tag@x", "-", false, "user+tag", false, "user+tag@x"},
	    {"user-a+b@x", "+-", true, "user", false, "user@x"},
	    {"user+a-b@x", "-+", true, "user", false, "user@x"},
	    {"a.b+c@x", "+", true, "a.b", false, "a.b@x"},
	    {"user.+tag@x", "+", true, "user.", false, "\"user.\"@x"},
	    {"\"a b+tag\"@x", "+", true, "a b", false, "\"a b\"@x"},
	    {"\"a+b c\"@x", "+", true, "a", false, "a@x"},
	    {"jöhn+tög@x", "+", true, "jöhn", true, "jöhn@x"},
	    {"john+tög@x", "+", true, "john", false, "john@x"},
	    {"jöhn+tag@x", "ö", false, "jöhn+tag", true, "jöhn+tag@x"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct address a;
		const char *error = NULL;
		char key[KEY_SIZE];

		if (parse_str(cases[i].input, &a, &error) < 0)
			fail_msg("%s: %s", cases[i].input, error);
		assert_int_equal(
		    address_strip_subaddress(&a, cases[i].separators),
		    cases[i].cut);
		assert_string_equal(a.local, cases[i].local);
		assert_int_equal(a.utf8, cases[i].utf8);
		address_key(&a, key, sizeof(key));
		assert_string_equal(key, cases[i].key);
	}
}

static void
keys(void **state)
{
	struct address a;
	const char *error;
	char key[KEY_SIZE], again[KEY_SIZE];
	struct address b;

	(void)state;
	assert_int_equal(parse_str("\"Mixed Case\"@Bücher.Example", &a, &error),
	                 0);
	address_key(&a, key, sizeof(key));
	assert_string_equal(key, "\"mixed case\"@xn--bcher-kva.example");
	address_domain_key(&a, key, sizeof(key));
	assert_string_equal(key, "@xn--bcher-kva.example");

	/* a key parses back to the same key */
	assert_int_equal(parse_str("\"A\\\"b\\\\C d\"@X.Y", &a, &error), 0);
	address_key(&a, key, sizeof(key));
	assert_string_equal(key, "\"a\\\"b\\\\c d\"@x.y");
	assert_int_equal(parse_str(key, &b, &error), 0);
	address_key(&b, again, sizeof(again));
	assert_string_equal(again, key);

	/* error_r may be NULL */
	assert_int_equal(address_parse("nope", 4, &a, NULL), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(parse_good),
	    cmocka_unit_test(parse_bad),
	    cmocka_unit_test(idn_equivalence),
	    cmocka_unit_test(domain_normalize),
	    cmocka_unit_test(limits),
	    cmocka_unit_test(subaddress),
	    cmocka_unit_test(keys),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
