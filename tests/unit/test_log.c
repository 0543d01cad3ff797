/* Tests for log formatting (src/core/log.c): values a peer controls must
 * never break a line or forge a field. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"

static size_t fmt(char *out, size_t size, const char *f, ...)
    __attribute__((format(printf, 3, 4)));

static size_t
fmt(char *out, size_t size, const char *f, ...)
{
	va_list ap;
	size_t n;

	va_start(ap, f);
	n = log_format(out, size, f, ap);
	va_end(ap);
	return n;
}

static void
escapes_table(void **state)
{
	static const struct {
		const char *value;
		const char *want;
	} cases[] = {
	    {"plain", "v=plain"},
	    {"", "v=\"\""},
	    {"two words", "v=\"two words\""},
	    {"line\r\nevent=forged", "v=\"line\\x0d\\x0aevent=forged\""},
	    {"quote\"back\\", "v=\"quote\\\"back\\\\\""},
	    {"k=v", "v=\"k=v\""},
	    {"caf\xc3\xa9", "v=\"caf\\xc3\\xa9\""},
	    {"nul\x01", "v=\"nul\\x01\""},
	};
	char out[256];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		fmt(out, sizeof(out), "v=%s", cases[i].value);
		assert_string_equal(out, cases[i].want);
	}
}

static void
numbers_and_precision(void **state)
{
	char out[256];

	(void)state;
	fmt(out, sizeof(out), "a=%d b=%u c=%zu d=%lld e=%x f=%.*s g=%%", -5, 7u,
	    (size_t)9, -10LL, 255u, 3, "abcdef");
	assert_string_equal(out, "a=-5 b=7 c=9 d=-10 e=ff f=abc g=%");
	{
		/* Through a variable: the compiler would reject a literal. */
		const char *volatile none = NULL;

		fmt(out, sizeof(out), "n=%s", none);
		assert_string_equal(out, "n=(null)");
	}
}

static void
truncates_safely(void **state)
{
	char out[8];
	size_t n;

	(void)state;
	n = fmt(out, sizeof(out), "value=%s", "abcdefghijkl");
	assert_int_equal(n, 7);
	assert_int_equal(strlen(out), 7);
	assert_string_equal(out, "value=a");
}

static void
level_names_round_trip(void **state)
{
	enum log_level l;

	(void)state;
	for (int i = LOG_LEVEL_TRACE; i <= LOG_LEVEL_ERROR; i++) {
		assert_int_equal(log_level_parse(log_level_name(i), &l), 0);
		assert_int_equal(l, i);
	}
	assert_int_equal(log_level_parse("loud", &l), -1);
}

/* A whole line goes out as one line, with its level and id. */
static void
line_to_stderr(void **state)
{
	char path[] = "/tmp/tern-test-log-XXXXXX";
	char line[512];
	int fd, saved;
	FILE *f;

	(void)state;
	fd = mkstemp(path);
	assert_true(fd >= 0);
	saved = dup(2);
	dup2(fd, 2);
	log_init("test", LOG_LEVEL_INFO, true);
	log_debug("S1", "event=hidden");
	log_info("S1", "event=connect ip=%s", "1.2.3.4\nforged");
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	f = fdopen(fd, "r");
	rewind(f);
	assert_non_null(fgets(line, sizeof(line), f));
	assert_non_null(strstr(line, "test["));
	assert_non_null(strstr(line, "level=info id=S1 event=connect "
	                             "ip=\"1.2.3.4\\x0aforged\"\n"));
	assert_null(fgets(line, sizeof(line), f));
	fclose(f);
	unlink(path);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(escapes_table),
	    cmocka_unit_test(numbers_and_precision),
	    cmocka_unit_test(truncates_safely),
	    cmocka_unit_test(level_names_round_trip),
	    cmocka_unit_test(line_to_stderr),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
