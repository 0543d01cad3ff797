/* Tests for the delivery ledger (src/store/ledger.c): pairs remembered
 * across a reopen, several records in one transaction, the age limit. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/xmalloc.h"
#include "store/ledger.h"

struct fixture {
	char dir[64];
	char *path;
};

static int
setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof(*f));

	snprintf(f->dir, sizeof(f->dir), "/tmp/test_ledger.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	f->path = xasprintf("%s/.delivered.db", f->dir);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	char *p;

	unlink(f->path);
	p = xasprintf("%s-wal", f->path);
	unlink(p);
	free(p);
	p = xasprintf("%s-shm", f->path);
	unlink(p);
	free(p);
	rmdir(f->dir);
	free(f->path);
	free(f);
	return 0;
}

static struct ledger *
open_ledger(const struct fixture *f)
{
	char *error = NULL;
	struct ledger *l = ledger_open(f->path, &error);

	if (l == NULL)
		fail_msg("ledger_open: %s", error);
	return l;
}

static void
test_record_and_reopen(void **state)
{
	struct fixture *f = *state;
	struct ledger *l = open_ledger(f);
	uint64_t now = LEDGER_KEEP_MS + 1000000;
	struct stat sb;

	assert_int_equal(stat(f->path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	assert_int_equal(ledger_seen(l, "q1", "a@example.org"), 0);
	assert_int_equal(ledger_record(l, "q1", "a@example.org", now), 0);
	assert_int_equal(ledger_seen(l, "q1", "a@example.org"), 1);
	assert_int_equal(ledger_seen(l, "q1", "b@example.org"), 0);
	assert_int_equal(ledger_seen(l, "q2", "a@example.org"), 0);
	/* Recording a pair twice is no error. */
	assert_int_equal(ledger_record(l, "q1", "a@example.org", now), 0);

	/* Several records, one transaction: all there after it. */
	ledger_begin(l);
	assert_int_equal(ledger_record(l, "q2", "a@example.org", now), 0);
	assert_int_equal(ledger_record(l, "q3", "b@example.org", now), 0);
	ledger_prune(l, now);
	assert_int_equal(ledger_commit(l), 0);
	/* Without a transaction open, commit has nothing to do. */
	assert_int_equal(ledger_commit(l), 0);
	ledger_close(&l);
	assert_null(l);

	l = open_ledger(f);
	assert_int_equal(ledger_seen(l, "q1", "a@example.org"), 1);
	assert_int_equal(ledger_seen(l, "q2", "a@example.org"), 1);
	assert_int_equal(ledger_seen(l, "q3", "b@example.org"), 1);
	ledger_close(&l);
}

/* A transaction that never commits keeps nothing: the records are in
 * only once ledger_commit says so. */
static void
test_uncommitted_records_are_lost(void **state)
{
	struct fixture *f = *state;
	struct ledger *l = open_ledger(f);

	ledger_begin(l);
	assert_int_equal(ledger_record(l, "q9", "z@example.org", 5), 0);
	assert_int_equal(ledger_seen(l, "q9", "z@example.org"), 1);
	ledger_close(&l); /* closing rolls back */
	l = open_ledger(f);
	assert_int_equal(ledger_seen(l, "q9", "z@example.org"), 0);
	ledger_close(&l);
}

static void
test_prune(void **state)
{
	struct fixture *f = *state;
	struct ledger *l = open_ledger(f);
	uint64_t now = 3 * LEDGER_KEEP_MS;

	assert_int_equal(
	    ledger_record(l, "old", "a@example.org", now - LEDGER_KEEP_MS - 1),
	    0);
	assert_int_equal(
	    ledger_record(l, "new", "a@example.org", now - LEDGER_KEEP_MS + 1),
	    0);
	/* Too early to forget anything (the clock before the keep time). */
	ledger_prune(l, LEDGER_KEEP_MS - 1);
	assert_int_equal(ledger_seen(l, "old", "a@example.org"), 1);
	ledger_prune(l, now);
	assert_int_equal(ledger_seen(l, "old", "a@example.org"), 0);
	assert_int_equal(ledger_seen(l, "new", "a@example.org"), 1);
	ledger_close(&l);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_record_and_reopen, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_uncommitted_records_are_lost,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_prune, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
