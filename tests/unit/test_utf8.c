/* core/utf8: the one decoder (RFC 3629) the store's mailbox names, the
 * directory's texts and every validator use. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <string.h>

#include "core/utf8.h"

static size_t
dec(const char *s, size_t len, uint32_t *cp)
{
	*cp = 0xffffffff;
	return utf8_decode((const uint8_t *)s, len, cp);
}

static void
valid_sequences(void **state)
{
	uint32_t cp;

	(void)state;
	assert_int_equal(dec("A", 1, &cp), 1);
	assert_int_equal(cp, 0x41);
	assert_int_equal(dec("\xc2\x80", 2, &cp), 2);
	assert_int_equal(cp, 0x80);
	assert_int_equal(dec("\xc3\xa9x", 3, &cp), 2); /* é, then more */
	assert_int_equal(cp, 0xe9);
	assert_int_equal(dec("\xe2\x82\xac", 3, &cp), 3); /* € */
	assert_int_equal(cp, 0x20ac);
	assert_int_equal(dec("\xef\xbf\xbf", 3, &cp), 3);
	assert_int_equal(cp, 0xffff);
	assert_int_equal(dec("\xf0\x9f\x98\x80", 4, &cp), 4);
	assert_int_equal(cp, 0x1f600);
	assert_int_equal(dec("\xf4\x8f\xbf\xbf", 4, &cp), 4);
	assert_int_equal(cp, 0x10ffff);
	assert_int_equal(utf8_seq_len((const uint8_t *)"\xe2\x82\xac", 3), 3);
}

static void
invalid_sequences(void **state)
{
	static const struct {
		const char *s;
		size_t len;
	} bad[] = {
	    {"", 0},                 /* nothing */
	    {"\x80", 1},             /* lone continuation */
	    {"\xc0\x80", 2},         /* overlong NUL */
	    {"\xc1\xbf", 2},         /* overlong */
	    {"\xe0\x80\x80", 3},     /* overlong */
	    {"\xf0\x80\x80\x80", 4}, /* overlong */
	    {"\xed\xa0\x80", 3},     /* surrogate U+D800 */
	    {"\xed\xbf\xbf", 3},     /* surrogate U+DFFF */
	    {"\xf4\x90\x80\x80", 4}, /* past U+10FFFF */
	    {"\xf5\x80\x80\x80", 4}, /* lead byte past F4 */
	    {"\xff", 1},
	    {"\xe2\x82", 2},     /* cut short */
	    {"\xe2\x28\xac", 3}, /* not a continuation */
	};
	uint32_t cp;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(dec(bad[i].s, bad[i].len, &cp), 0);
		if (bad[i].len > 0)
			assert_int_equal(
			    utf8_seq_len((const uint8_t *)bad[i].s, bad[i].len),
			    0);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(valid_sequences),
	    cmocka_unit_test(invalid_sequences),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
