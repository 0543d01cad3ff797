/* Tests for the allocation wrappers (src/core/xmalloc.c): xmalloc_big's
 * big arrays are aligned to a huge page and advised into transparent huge
 * pages, and remain ordinary allocations for realloc and free. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/xmalloc.h"

/* Whether the kernel offers transparent huge pages at all. */
static bool
thp_offered(void)
{
	FILE *fp = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
	char line[128] = "";
	bool on;

	if (fp == NULL)
		return false;
	on = fgets(line, sizeof(line), fp) != NULL &&
	     strstr(line, "[never]") == NULL;
	fclose(fp);
	return on;
}

/* The THPeligible line of the mapping that holds p, or -1. */
static int
thp_eligible(const void *p)
{
	FILE *fp = fopen("/proc/self/smaps", "r");
	char line[256];
	bool inside = false;
	int v = -1;

	assert_non_null(fp);
	while (fgets(line, sizeof(line), fp) != NULL) {
		unsigned long lo, hi;

		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 &&
		    strchr(line, '-') < strchr(line, ' ')) {
			inside = (uintptr_t)p >= lo && (uintptr_t)p < hi;
			continue;
		}
		if (inside && sscanf(line, "THPeligible: %d", &v) == 1)
			break;
	}
	fclose(fp);
	return v;
}

static void
big_is_aligned_and_advised(void **state)
{
	size_t n = 3 * XMALLOC_BIG / sizeof(uint32_t) + 5;
	uint32_t *a = xmalloc_big(n, sizeof(*a));

	(void)state;
	assert_int_equal((uintptr_t)a % XMALLOC_BIG, 0);
	for (size_t i = 0; i < n; i++)
		a[i] = (uint32_t)i;
	if (thp_offered())
		assert_int_equal(thp_eligible(a), 1);
	a = xreallocarray(a, n * 2, sizeof(*a));
	for (size_t i = 0; i < n; i++)
		assert_int_equal(a[i], (uint32_t)i);
	free(a);
}

static void
small_is_plain(void **state)
{
	char *p = xmalloc_big(100, 3);

	(void)state;
	memset(p, 'x', 300);
	free(p);
	/* The cut-over: one byte short of a huge page is not aligned on
	 * purpose (it may be by chance); it is writable all the same. */
	p = xmalloc_big(XMALLOC_BIG - 1, 1);
	memset(p, 'y', XMALLOC_BIG - 1);
	free(p);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(big_is_aligned_and_advised),
	    cmocka_unit_test(small_is_plain),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
