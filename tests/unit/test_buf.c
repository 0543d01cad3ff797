/* Tests for the bounded buffer (src/core/buf.c). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <string.h>

#include "core/buf.h"

static void
append_within_max(void **state)
{
	struct buf b;

	(void)state;
	buf_init(&b, 8);
	assert_int_equal(buf_append(&b, "abcd", 4), 0);
	assert_int_equal(buf_append(&b, "efgh", 4), 0);
	assert_int_equal(b.len, 8);
	assert_memory_equal(b.data, "abcdefgh", 8);
	buf_free(&b);
}

static void
append_over_max_fails_unchanged(void **state)
{
	struct buf b;

	(void)state;
	buf_init(&b, 8);
	assert_int_equal(buf_append(&b, "abcdef", 6), 0);
	assert_int_equal(buf_append(&b, "xyz", 3), -1);
	assert_int_equal(b.len, 6);
	assert_int_equal(buf_append_byte(&b, 'g'), 0);
	assert_int_equal(buf_append_byte(&b, 'h'), 0);
	assert_int_equal(buf_append_byte(&b, 'i'), -1);
	assert_string_equal(buf_cstr(&b), "abcdefgh");
	buf_free(&b);
}

static void
printf_grows_and_bounds(void **state)
{
	struct buf b;
	char big[600];

	(void)state;
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	buf_init(&b, 0);
	assert_int_equal(buf_printf(&b, "%d-%s", 42, "ok"), 0);
	assert_int_equal(buf_printf(&b, "%s", big), 0);
	assert_int_equal(b.len, 5 + 599);
	assert_memory_equal(b.data, "42-ok", 5);
	buf_free(&b);

	buf_init(&b, 100);
	assert_int_equal(buf_printf(&b, "%s", big), -1);
	assert_int_equal(b.len, 0);
	buf_free(&b);
}

static void
consume_and_find(void **state)
{
	struct buf b;

	(void)state;
	buf_init(&b, 0);
	buf_append_str(&b, "one\r\ntwo\n");
	assert_int_equal(buf_find_lf(&b, 0), 4);
	assert_int_equal(buf_find_lf(&b, 5), 8);
	buf_consume(&b, 5);
	assert_string_equal(buf_cstr(&b), "two\n");
	assert_int_equal(buf_find_lf(&b, 4), -1);
	buf_consume(&b, 100);
	assert_int_equal(b.len, 0);
	assert_string_equal(buf_cstr(&b), "");
	buf_free(&b);
}

static void
cstr_on_empty(void **state)
{
	struct buf b;

	(void)state;
	buf_init(&b, 4);
	assert_string_equal(buf_cstr(&b), "");
	buf_append(&b, "abcd", 4);
	assert_string_equal(buf_cstr(&b), "abcd");
	buf_reset(&b);
	assert_string_equal(buf_cstr(&b), "");
	buf_free(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(append_within_max),
	    cmocka_unit_test(append_over_max_fails_unchanged),
	    cmocka_unit_test(printf_grows_and_bounds),
	    cmocka_unit_test(consume_and_find),
	    cmocka_unit_test(cstr_on_empty),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
