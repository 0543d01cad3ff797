/* TLS reporting data: counts per day and domain, names, bounds, and
 * concurrent recording from threads. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "queue/tlsrpt.h"

/* 2026-11-23T12:00:00Z and the next day */
#define DAY1_MS 1795435200000ULL
#define DAY2_MS (DAY1_MS + 24ULL * 3600 * 1000)

struct fixture {
	char dir[64];
	char path[128];
	struct tlsrpt *t;
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char *error = NULL;

	snprintf(f->dir, sizeof(f->dir), "/tmp/tern-tlsrpt-XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/tlsrpt.db", f->dir);
	f->t = tlsrpt_open(f->path, &error);
	if (f->t == NULL)
		fail_msg("tlsrpt_open: %s", error);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[160];

	tlsrpt_close(&f->t);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	if (system(cmd) != 0)
		return -1;
	free(f);
	return 0;
}

static void
test_counts_per_day_and_domain(void **state)
{
	struct fixture *f = *state;
	char *error = NULL, long_detail[1000];
	uint64_t ok, ko;

	memset(long_detail, 'x', sizeof(long_detail) - 1);
	long_detail[sizeof(long_detail) - 1] = '\0';
	for (int i = 0; i < 3; i++)
		assert_int_equal(
		    tlsrpt_record(f->t, DAY1_MS, "a.example", TLSRPT_POLICY_STS,
		                  "mx.a.example", TLSRPT_SUCCESS, NULL, &error),
		    0);
	assert_int_equal(tlsrpt_record(f->t, DAY1_MS, "a.example",
	                               TLSRPT_POLICY_STS, "mx.a.example",
	                               TLSRPT_CERTIFICATE_HOST_MISMATCH,
	                               long_detail, &error),
	                 0);
	assert_int_equal(tlsrpt_record(f->t, DAY2_MS, "a.example",
	                               TLSRPT_POLICY_TLSA, "mx.a.example",
	                               TLSRPT_VALIDATION_FAILURE, "mismatch",
	                               &error),
	                 0);
	assert_int_equal(tlsrpt_record(f->t, DAY1_MS, "b.example",
	                               TLSRPT_POLICY_NONE, "mx.b.example",
	                               TLSRPT_SUCCESS, NULL, &error),
	                 0);
	assert_int_equal(
	    tlsrpt_counts(f->t, "2026-11-23", "a.example", &ok, &ko, &error),
	    0);
	assert_int_equal(ok, 3);
	assert_int_equal(ko, 1);
	assert_int_equal(
	    tlsrpt_counts(f->t, "2026-11-24", "a.example", &ok, &ko, &error),
	    0);
	assert_int_equal(ok, 0);
	assert_int_equal(ko, 1);
	assert_int_equal(
	    tlsrpt_counts(f->t, "2026-11-23", "b.example", &ok, &ko, &error),
	    0);
	assert_int_equal(ok, 1);
	assert_int_equal(ko, 0);
	/* Reopen: the data is on disk. */
	tlsrpt_close(&f->t);
	f->t = tlsrpt_open(f->path, &error);
	assert_non_null(f->t);
	assert_int_equal(
	    tlsrpt_counts(f->t, "2026-11-23", "a.example", &ok, &ko, &error),
	    0);
	assert_int_equal(ok, 3);
}

static void
test_names(void **state)
{
	(void)state;
	assert_string_equal(tlsrpt_policy_name(TLSRPT_POLICY_STS), "sts");
	assert_string_equal(tlsrpt_policy_name(TLSRPT_POLICY_TLSA), "tlsa");
	assert_string_equal(tlsrpt_policy_name(TLSRPT_POLICY_NONE),
	                    "no-policy-found");
	assert_string_equal(tlsrpt_result_name(TLSRPT_STARTTLS_NOT_SUPPORTED),
	                    "starttls-not-supported");
	assert_string_equal(tlsrpt_result_name(TLSRPT_TLSA_INVALID),
	                    "tlsa-invalid");
}

struct worker {
	struct tlsrpt *t;
	int fails;
};

static void *
record_many(void *arg)
{
	struct worker *w = arg;
	char *error = NULL;

	for (int i = 0; i < 200; i++)
		if (tlsrpt_record(w->t, DAY1_MS, "c.example",
		                  TLSRPT_POLICY_NONE, "mx.c.example",
		                  TLSRPT_SUCCESS, NULL, &error) < 0) {
			w->fails++;
			free(error);
			error = NULL;
		}
	return NULL;
}

/* The queue records from several worker threads at once. */
static void
test_threads(void **state)
{
	struct fixture *f = *state;
	struct worker w[4];
	pthread_t th[4];
	char *error = NULL;
	uint64_t ok, ko;

	for (int i = 0; i < 4; i++) {
		w[i].t = f->t;
		w[i].fails = 0;
		assert_int_equal(
		    pthread_create(&th[i], NULL, record_many, &w[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(w[i].fails, 0);
	}
	assert_int_equal(
	    tlsrpt_counts(f->t, "2026-11-23", "c.example", &ok, &ko, &error),
	    0);
	assert_int_equal(ok, 800);
	assert_int_equal(ko, 0);
}

/* The report side: days before a given one, their rows, forgetting. */
static void
test_reports(void **state)
{
	struct fixture *f = *state;
	struct tlsrpt_key *keys = NULL;
	struct tlsrpt_entry *e = NULL;
	char *error = NULL, day1[11], day2[11];
	size_t n = 0;

	tlsrpt_day(DAY1_MS, day1);
	tlsrpt_day(DAY2_MS, day2);
	assert_string_not_equal(day1, day2);
	for (int i = 0; i < 3; i++)
		assert_int_equal(
		    tlsrpt_record(f->t, DAY1_MS, "a.example", TLSRPT_POLICY_STS,
		                  "mx.a.example", TLSRPT_SUCCESS, NULL, &error),
		    0);
	assert_int_equal(tlsrpt_record(f->t, DAY1_MS, "a.example",
	                               TLSRPT_POLICY_STS, "mx.a.example",
	                               TLSRPT_CERTIFICATE_NOT_TRUSTED,
	                               "self-signed", &error),
	                 0);
	assert_int_equal(tlsrpt_record(f->t, DAY1_MS, "b.example",
	                               TLSRPT_POLICY_NONE, "mx.b.example",
	                               TLSRPT_SUCCESS, NULL, &error),
	                 0);
	assert_int_equal(tlsrpt_record(f->t, DAY2_MS, "a.example",
	                               TLSRPT_POLICY_STS, "mx.a.example",
	                               TLSRPT_SUCCESS, NULL, &error),
	                 0);

	/* Before day2: day1's two domains, in order; nothing before day1. */
	assert_int_equal(tlsrpt_due(f->t, day2, 10, &keys, &n, &error), 0);
	assert_int_equal(n, 2);
	assert_string_equal(keys[0].day, day1);
	assert_string_equal(keys[0].domain, "a.example");
	assert_string_equal(keys[1].domain, "b.example");
	assert_int_equal(tlsrpt_entries(f->t, &keys[0], &e, &n, &error), 0);
	assert_int_equal(n, 2);
	assert_string_equal(e[0].policy, "sts");
	assert_string_equal(e[0].result, "certificate-not-trusted");
	assert_string_equal(e[0].detail, "self-signed");
	assert_int_equal(e[0].count, 1);
	assert_string_equal(e[1].result, "success");
	assert_string_equal(e[1].detail, "");
	assert_int_equal(e[1].count, 3);
	tlsrpt_entries_free(&e, n);

	assert_int_equal(tlsrpt_forget(f->t, &keys[0], &error), 0);
	free(keys);
	assert_int_equal(tlsrpt_due(f->t, day2, 10, &keys, &n, &error), 0);
	assert_int_equal(n, 1);
	assert_string_equal(keys[0].domain, "b.example");
	free(keys);
	/* Pruning before day2 drops b's row, not day2's. */
	assert_int_equal(tlsrpt_prune(f->t, day2, &error), 1);
	assert_int_equal(tlsrpt_due(f->t, "9999-12-31", 10, &keys, &n, &error),
	                 0);
	assert_int_equal(n, 1);
	assert_string_equal(keys[0].day, day2);
	free(keys);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_counts_per_day_and_domain,
	                                    setup, teardown),
	    cmocka_unit_test(test_names),
	    cmocka_unit_test_setup_teardown(test_threads, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_reports, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
