/* Unit tests for queue/sendlog: recording (remote recipients only), the
 * window's bounds, the usual hourly maximum (whole hours, the current one
 * and hours older than 7 days left out), suspensions (the window starts
 * over, the suspect hours stop counting as usual), users kept apart,
 * persistence, bounded pruning, bad user names, and a rough timing of the
 * per-message work. Time is the now_ms each test passes. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "core/xmalloc.h"
#include "queue/sendlog.h"
#include "test_tmpdir.h"

/* A whole hour on the clock (an epoch in ms, like the callers' clock). */
#define H SENDLOG_HOUR_MS
#define T0 (472222ULL * H) /* 2023-11-14T22:00:00Z */
#define MIN (60 * 1000ULL)
#define ALICE "alice@example.test"
#define BOB "bob@example.test"

struct fixture {
	char *dir;
	char *path;
	struct sendlog *log;
};

static struct sendlog *
open_ok(const char *path)
{
	char *error = NULL;
	struct sendlog *log = sendlog_open(path, &error);

	if (log == NULL)
		fail_msg("sendlog_open: %s", error);
	assert_null(error);
	return log;
}

static int
setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof(*f));

	if ((f->dir = tmpdir_make("sendlog")) == NULL) {
		free(f);
		return -1;
	}
	f->path = xasprintf("%s/sendlog.db", f->dir);
	f->log = open_ok(f->path);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	sendlog_close(&f->log);
	assert_null(f->log);
	tmpdir_remove(&f->dir);
	free(f->path);
	free(f);
	return 0;
}

static void
record(struct sendlog *log, const char *user, uint64_t at, unsigned n)
{
	char *error = NULL;

	if (sendlog_record(log, user, at, n, &error) < 0)
		fail_msg("sendlog_record: %s", error);
}

static void
window(struct sendlog *log, const char *user, uint64_t since,
       uint64_t want_msgs, uint64_t want_rcpts)
{
	uint64_t msgs = 99, rcpts = 99;
	char *error = NULL;

	if (sendlog_window(log, user, since, &msgs, &rcpts, &error) < 0)
		fail_msg("sendlog_window: %s", error);
	assert_int_equal(msgs, want_msgs);
	assert_int_equal(rcpts, want_rcpts);
}

static uint64_t
usual(struct sendlog *log, const char *user, uint64_t now)
{
	uint64_t max = 99;
	char *error = NULL;

	if (sendlog_usual(log, user, now, &max, &error) < 0)
		fail_msg("sendlog_usual: %s", error);
	return max;
}

static void
suspended(struct sendlog *log, const char *user, uint64_t now)
{
	char *error = NULL;

	if (sendlog_suspended(log, user, now, &error) < 0)
		fail_msg("sendlog_suspended: %s", error);
}

static void
test_window(void **state)
{
	struct fixture *f = *state;
	uint64_t now = T0 + 90 * MIN;

	window(f->log, ALICE, 0, 0, 0);
	record(f->log, ALICE, now - 61 * MIN, 7); /* outside the hour */
	record(f->log, ALICE, now - 60 * MIN, 2); /* on the edge: in */
	record(f->log, ALICE, now - 5 * MIN, 3);
	record(f->log, ALICE, now, 1);
	/* Only local recipients: the caller passes 0, nothing is kept. */
	record(f->log, ALICE, now, 0);
	window(f->log, ALICE, now - H, 3, 6);
	window(f->log, ALICE, now - H + 1, 2, 4);
	window(f->log, ALICE, 0, 4, 13);
	window(f->log, ALICE, now + 1, 0, 0);
	/* Users are apart. */
	window(f->log, BOB, 0, 0, 0);
	record(f->log, BOB, now, 5);
	window(f->log, BOB, now - H, 1, 5);
	window(f->log, ALICE, now - H, 3, 6);
}

static void
test_usual(void **state)
{
	struct fixture *f = *state;
	uint64_t now = T0 + 30 * MIN; /* the current hour is [T0, T0 + H) */

	assert_int_equal(usual(f->log, ALICE, now), 0);
	/* The current hour never counts, however busy. */
	for (int i = 0; i < 20; i++)
		record(f->log, ALICE, T0 + (uint64_t)i, 1);
	assert_int_equal(usual(f->log, ALICE, now), 0);
	/* 4 in the previous hour (its first and last ms). */
	record(f->log, ALICE, T0 - H, 1);
	record(f->log, ALICE, T0 - H + 10, 1);
	record(f->log, ALICE, T0 - 10, 1);
	record(f->log, ALICE, T0 - 1, 1);
	assert_int_equal(usual(f->log, ALICE, now), 4);
	/* 6 in one hour two days ago: the highest counts, not the sum. */
	for (int i = 0; i < 6; i++)
		record(f->log, ALICE, T0 - 48 * H + (uint64_t)i * MIN, 2);
	assert_int_equal(usual(f->log, ALICE, now), 6);
	/* 9 in the oldest hour still in the 7 days, 50 in the one before. */
	for (int i = 0; i < 9; i++)
		record(f->log, ALICE, T0 - 168 * H + (uint64_t)i, 1);
	for (int i = 0; i < 50; i++)
		record(f->log, ALICE, T0 - 169 * H + (uint64_t)i, 1);
	assert_int_equal(usual(f->log, ALICE, now), 9);
	/* An hour later the oldest one is out as well. */
	assert_int_equal(usual(f->log, ALICE, now + H), 20);
	assert_int_equal(usual(f->log, ALICE, now + 2 * H), 20);
	assert_int_equal(usual(f->log, BOB, now), 0);
	/* The same totals come back from the file. */
	sendlog_close(&f->log);
	f->log = open_ok(f->path);
	assert_int_equal(usual(f->log, ALICE, now), 9);
	window(f->log, ALICE, T0, 20, 20);
}

static void
test_suspension(void **state)
{
	struct fixture *f = *state;
	uint64_t now = T0 + 10 * MIN;

	/* Usual: 5 an hour, two days ago. */
	for (int i = 0; i < 5; i++)
		record(f->log, ALICE, T0 - 48 * H + (uint64_t)i, 1);
	/* A burst over the edge of the hour, then the suspension. */
	for (int i = 0; i < 30; i++)
		record(f->log, ALICE, T0 - 20 * MIN + (uint64_t)i * MIN, 2);
	window(f->log, ALICE, now - H, 30, 60);
	suspended(f->log, ALICE, now);
	/* The window starts over: what was sent before does not count … */
	window(f->log, ALICE, now - H, 0, 0);
	record(f->log, ALICE, now, 1); /* the same ms: still before */
	window(f->log, ALICE, now - H, 0, 0);
	record(f->log, ALICE, now + 1, 4);
	window(f->log, ALICE, now - H, 1, 4);
	/* … and the two hours of the burst are not the user's usual. */
	assert_int_equal(usual(f->log, ALICE, now + H), 5);
	assert_int_equal(usual(f->log, ALICE, now + 2 * H), 5);
	/* Other users are untouched. */
	record(f->log, BOB, now, 1);
	window(f->log, BOB, now - H, 1, 1);
	/* A later suspension moves the start again. */
	suspended(f->log, ALICE, now + 2);
	window(f->log, ALICE, now - H, 0, 0);
}

static void
test_prune(void **state)
{
	struct fixture *f = *state;
	uint64_t now = T0 + 9 * 24 * H, before = now - 8 * 24 * H;
	size_t removed = 99;
	char *error = NULL;

	/* 10 messages in each of 10 hours, 4 of them before `before`. */
	for (int h = 20; h < 30; h++)
		for (int i = 0; i < 10; i++)
			record(f->log, ALICE,
			       T0 + (uint64_t)h * H + (uint64_t)i, 1);
	suspended(f->log, BOB, T0);
	/* Bounded: 3 rows of each kind per call. */
	assert_int_equal(
	    sendlog_prune(f->log, before, now - H, 3, &removed, &error), 0);
	assert_int_equal(removed, 3);
	window(f->log, ALICE, 0, 97, 97);
	do
		assert_int_equal(
		    sendlog_prune(f->log, before, now - H, 3, &removed, &error),
		    0);
	while (removed == 3);
	assert_null(error);
	window(f->log, ALICE, 0, 0, 0);
	/* Hours before `before` went; the ones after stay. */
	assert_int_equal(usual(f->log, ALICE, T0 + 24 * H), 0);
	assert_int_equal(usual(f->log, ALICE, T0 + 30 * H), 10);
	assert_int_equal(
	    sendlog_prune(f->log, T0 + 100 * H, 0, 1000, &removed, &error), 0);
	assert_int_equal(removed, 6);
	assert_int_equal(usual(f->log, ALICE, T0 + 30 * H), 0);
	assert_int_equal(
	    sendlog_prune(f->log, T0 + 100 * H, 0, 0, &removed, &error), 0);
	assert_int_equal(removed, 0);
}

static void
test_bad_user(void **state)
{
	struct fixture *f = *state;
	char *error = NULL, *big = xcalloc(1, SENDLOG_USER_MAX + 2);
	uint64_t a, b;

	memset(big, 'a', SENDLOG_USER_MAX + 1);
	assert_int_equal(sendlog_record(f->log, big, T0, 1, &error), -1);
	assert_non_null(error);
	xfree(&error);
	assert_int_equal(sendlog_record(f->log, "", T0, 1, &error), -1);
	xfree(&error);
	assert_int_equal(sendlog_window(f->log, NULL, T0, &a, &b, &error), -1);
	xfree(&error);
	big[SENDLOG_USER_MAX] = '\0'; /* at the bound: fine */
	record(f->log, big, T0, 1);
	window(f->log, big, 0, 1, 1);
	free(big);
	/* Quotes and SQL in a name are only text. */
	record(f->log, "x'); DROP TABLE sent; --@example.test", T0, 2);
	window(f->log, "x'); DROP TABLE sent; --@example.test", 0, 1, 2);
	window(f->log, ALICE, 0, 0, 0);
}

static void
test_open_errors(void **state)
{
	struct fixture *f = *state;
	char *error = NULL, *path = xasprintf("%s/missing/sendlog.db", f->dir);
	struct stat st;

	assert_null(sendlog_open(path, &error));
	assert_non_null(error);
	free(error);
	free(path);
	assert_int_equal(stat(f->path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
}

static double
seconds(const struct timespec *a, const struct timespec *b)
{
	return (double)(b->tv_sec - a->tv_sec) +
	       (double)(b->tv_nsec - a->tv_nsec) / 1e9;
}

/* The hot path: per committed message, one record and one window; a
 * usual when a spike is possible. 1,000 of each, timed. */
static void
test_timing(void **state)
{
	struct fixture *f = *state;
	struct timespec t0, t1;
	char user[64];

	/* Some history: 50 users, a week of an hourly message each. */
	for (int u = 0; u < 50; u++) {
		snprintf(user, sizeof(user), "u%d@example.test", u);
		for (int h = 2; h <= 168; h += 3)
			record(f->log, user, T0 - (uint64_t)h * H, 1);
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < 1000; i++) {
		uint64_t now = T0 + (uint64_t)i * 1000, msgs, rcpts, max;
		char *error = NULL;

		snprintf(user, sizeof(user), "u%d@example.test", i % 50);
		record(f->log, user, now, 2);
		assert_int_equal(sendlog_window(f->log, user, now - H, &msgs,
		                                &rcpts, &error),
		                 0);
		assert_int_equal(msgs, (uint64_t)(i / 50 + 1));
		assert_int_equal(sendlog_usual(f->log, user, now, &max, &error),
		                 0);
		assert_int_equal(max, 1);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	printf("# sendlog: 1000 × (record + window + usual) in %.3f s "
	       "(%.1f µs each)\n",
	       seconds(&t0, &t1), seconds(&t0, &t1) * 1e3);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_window, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_usual, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_suspension, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_prune, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_user, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_open_errors, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_timing, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
