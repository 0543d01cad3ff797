/* Unit tests for queue/dmarc_store: records aggregated into rows (alike
 * messages counted, any difference a new row), periods due only once
 * ended, a report read back (latest policy and rua, rows most messages
 * first, DKIM results), deletion, the caps per period and in all (new
 * rows dropped, existing rows still counted), persistence across reopen,
 * pruning, and bad records refused. Time is what each test passes. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/xmalloc.h"
#include "mailauth/dmarc_report.h"
#include "queue/dmarc_store.h"
#include "test_tmpdir.h"

#define DAY 86400
#define B0 1704067200 /* 2024-01-01T00:00:00Z */
#define E0 (B0 + DAY)

struct fixture {
	char *dir;
	char *path;
	struct dmarc_store *st;
};

static struct dmarc_store *
open_ok(const char *path)
{
	char *error = NULL;
	struct dmarc_store *st = dmarc_store_open(path, &error);

	if (st == NULL)
		fail_msg("dmarc_store_open: %s", error);
	assert_null(error);
	return st;
}

static int
setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof(*f));

	if ((f->dir = tmpdir_make("dmarcst")) == NULL) {
		free(f);
		return -1;
	}
	f->path = xasprintf("%s/dmarc.db", f->dir);
	f->st = open_ok(f->path);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	dmarc_store_close(&f->st);
	assert_null(f->st);
	tmpdir_remove(&f->dir);
	free(f->path);
	free(f);
	return 0;
}

static void
record(struct dmarc_agg_record *rec, const char *domain, const char *ip)
{
	struct dmarc_agg_row *row = &rec->row;

	memset(rec, 0, sizeof(*rec));
	snprintf(rec->policy.domain, sizeof(rec->policy.domain), "%s", domain);
	rec->policy.p = DMARC_POLICY_REJECT;
	rec->policy.sp = DMARC_POLICY_REJECT;
	rec->policy.pct = 100;
	rec->result = DMARC_PASS;
	snprintf(row->source_ip, sizeof(row->source_ip), "%s", ip);
	snprintf(row->header_from, sizeof(row->header_from), "%s", domain);
	snprintf(row->envelope_from, sizeof(row->envelope_from), "%s", domain);
	row->disposition = DMARC_POLICY_NONE;
	row->dkim_aligned = true;
	row->spf_aligned = true;
	row->spf_checked = true;
	row->spf_result = SPF_PASS;
	row->ndkim = 1;
	snprintf(row->dkim[0].domain, sizeof(row->dkim[0].domain), "%s",
	         domain);
	snprintf(row->dkim[0].selector, sizeof(row->dkim[0].selector), "sel");
	row->dkim[0].result = DKIM_PASS;
	row->count = 1;
	rec->nrua = 1;
	snprintf(rec->rua[0].uri, sizeof(rec->rua[0].uri), "mailto:d@%s",
	         domain);
}

static int
add(struct dmarc_store *st, const struct dmarc_agg_record *rec, int64_t b)
{
	char *error = NULL;
	int rc = dmarc_store_add(st, rec, b, b + DAY, &error);

	if (rc < 0)
		fail_msg("dmarc_store_add: %s", error);
	return rc;
}

static size_t
due(struct dmarc_store *st, int64_t now, struct dmarc_store_period **p)
{
	char *error = NULL;
	size_t n = 0;

	if (dmarc_store_due(st, now, 100, p, &n, &error) < 0)
		fail_msg("dmarc_store_due: %s", error);
	return n;
}

static void
report_ok(struct dmarc_store *st, const char *domain, int64_t begin,
          struct dmarc_store_report *rep)
{
	char *error = NULL;

	if (dmarc_store_report(st, domain, begin, rep, &error) != 0)
		fail_msg("dmarc_store_report: %s", error ? error : "none");
}

static void
test_aggregate(void **state)
{
	struct fixture *f = *state;
	struct dmarc_agg_record rec;
	struct dmarc_store_period *p = NULL;
	struct dmarc_store_report rep;

	record(&rec, "example.com", "192.0.2.1");
	assert_int_equal(add(f->st, &rec, B0), 0);
	assert_int_equal(add(f->st, &rec, B0), 0);
	assert_int_equal(add(f->st, &rec, B0), 0);
	assert_int_equal(dmarc_store_rows(f->st), 1);
	/* Each difference is a row of its own. */
	snprintf(rec.row.source_ip, sizeof(rec.row.source_ip), "192.0.2.2");
	assert_int_equal(add(f->st, &rec, B0), 0);
	rec.row.dkim[0].result = DKIM_FAIL;
	rec.row.dkim_aligned = false;
	assert_int_equal(add(f->st, &rec, B0), 0);
	assert_int_equal(add(f->st, &rec, B0), 0);
	rec.row.disposition = DMARC_POLICY_REJECT;
	rec.row.reasons = DMARC_REPORT_REASON_LOCAL_POLICY;
	assert_int_equal(add(f->st, &rec, B0), 0);
	rec.row.spf_checked = false;
	assert_int_equal(add(f->st, &rec, B0), 0);
	assert_int_equal(dmarc_store_rows(f->st), 5);
	/* The latest policy and rua of the period win. */
	rec.policy.p = DMARC_POLICY_QUARANTINE;
	rec.policy.pct = 20;
	rec.policy.adkim = DMARC_ALIGN_STRICT;
	rec.nrua = 2;
	rec.rua[1] = rec.rua[0];
	snprintf(rec.rua[1].uri, sizeof(rec.rua[1].uri),
	         "mailto:other@thirdparty.example");
	rec.rua[1].size_max = 5000;
	assert_int_equal(add(f->st, &rec, B0), 0);
	assert_int_equal(dmarc_store_rows(f->st), 5);

	/* Not due before the period ends. */
	assert_int_equal(due(f->st, E0 - 1, &p), 0);
	assert_null(p);
	assert_int_equal(due(f->st, E0, &p), 1);
	assert_string_equal(p[0].domain, "example.com");
	assert_int_equal(p[0].begin, B0);
	assert_int_equal(p[0].end, E0);
	free(p);

	report_ok(f->st, "example.com", B0, &rep);
	assert_string_equal(rep.policy.domain, "example.com");
	assert_int_equal(rep.policy.p, DMARC_POLICY_QUARANTINE);
	assert_int_equal(rep.policy.pct, 20);
	assert_int_equal(rep.policy.adkim, DMARC_ALIGN_STRICT);
	assert_int_equal(rep.nrua, 2);
	assert_string_equal(rep.rua[0].uri, "mailto:d@example.com");
	assert_int_equal(rep.rua[0].size_max, 0);
	assert_string_equal(rep.rua[1].uri, "mailto:other@thirdparty.example");
	assert_int_equal(rep.rua[1].size_max, 5000);
	assert_int_equal(rep.nrows, 5);
	assert_int_equal(rep.messages, 9);
	/* Most messages first. */
	assert_int_equal(rep.rows[0].count, 3);
	assert_string_equal(rep.rows[0].source_ip, "192.0.2.1");
	assert_true(rep.rows[0].dkim_aligned && rep.rows[0].spf_aligned);
	assert_int_equal(rep.rows[0].ndkim, 1);
	assert_string_equal(rep.rows[0].dkim[0].domain, "example.com");
	assert_string_equal(rep.rows[0].dkim[0].selector, "sel");
	assert_int_equal(rep.rows[0].dkim[0].result, DKIM_PASS);
	assert_int_equal(rep.rows[0].spf_result, SPF_PASS);
	assert_true(rep.rows[0].spf_checked);
	assert_int_equal(rep.rows[1].count, 2);
	assert_int_equal(rep.rows[1].dkim[0].result, DKIM_FAIL);
	assert_false(rep.rows[1].dkim_aligned);
	/* The last record counted into the row of the one before it. */
	assert_int_equal(rep.rows[2].count, 2);
	assert_int_equal(rep.rows[2].reasons, DMARC_REPORT_REASON_LOCAL_POLICY);
	assert_int_equal(rep.rows[2].disposition, DMARC_POLICY_REJECT);
	assert_false(rep.rows[2].spf_checked);
	assert_int_equal(rep.rows[3].count, 1);
	assert_int_equal(rep.rows[4].count, 1);
	assert_true(rep.rows[4].spf_checked);
	dmarc_store_report_clear(&rep);
	assert_null(rep.rows);

	/* Gone once sent. */
	{
		char *error = NULL;

		assert_int_equal(
		    dmarc_store_delete(f->st, "example.com", B0, &error), 0);
		assert_int_equal(
		    dmarc_store_report(f->st, "example.com", B0, &rep, &error),
		    1);
	}
	assert_int_equal(due(f->st, E0, &p), 0);
	assert_int_equal(dmarc_store_rows(f->st), 0);
}

static void
test_periods_and_domains(void **state)
{
	struct fixture *f = *state;
	struct dmarc_agg_record rec;
	struct dmarc_store_period *p = NULL;
	struct dmarc_store_report rep;
	char *error = NULL;
	size_t n = 0;

	record(&rec, "b.example", "192.0.2.1");
	assert_int_equal(add(f->st, &rec, B0), 0);
	assert_int_equal(add(f->st, &rec, B0 + DAY), 0);
	record(&rec, "a.example", "192.0.2.1");
	assert_int_equal(add(f->st, &rec, B0), 0);
	/* Oldest first, then by domain; the open period waits. */
	assert_int_equal(due(f->st, E0, &p), 2);
	assert_string_equal(p[0].domain, "a.example");
	assert_string_equal(p[1].domain, "b.example");
	free(p);
	assert_int_equal(dmarc_store_due(f->st, E0 + DAY, 1, &p, &n, &error),
	                 0);
	assert_int_equal(n, 1);
	free(p);
	assert_int_equal(due(f->st, E0 + DAY, &p), 3);
	assert_int_equal(p[2].begin, B0 + DAY);
	free(p);
	/* Periods are kept apart. */
	report_ok(f->st, "b.example", B0 + DAY, &rep);
	assert_int_equal(rep.nrows, 1);
	assert_int_equal(rep.messages, 1);
	dmarc_store_report_clear(&rep);
	assert_int_equal(
	    dmarc_store_report(f->st, "c.example", B0, &rep, &error), 1);

	/* Pruned: what ended before the cut. */
	assert_int_equal(dmarc_store_prune(f->st, E0 + 1, &n, &error), 0);
	assert_int_equal(n, 2);
	assert_int_equal(due(f->st, E0 + DAY, &p), 1);
	assert_string_equal(p[0].domain, "b.example");
	free(p);
	assert_int_equal(dmarc_store_rows(f->st), 1);
}

static void
test_caps(void **state)
{
	struct fixture *f = *state;
	struct dmarc_agg_record rec;
	struct dmarc_store_report rep;

	dmarc_store_set_limits(f->st, 2, 3);
	record(&rec, "example.com", "192.0.2.1");
	assert_int_equal(add(f->st, &rec, B0), 0);
	snprintf(rec.row.source_ip, sizeof(rec.row.source_ip), "192.0.2.2");
	assert_int_equal(add(f->st, &rec, B0), 0);
	/* A third row in the period: dropped; existing rows still count. */
	snprintf(rec.row.source_ip, sizeof(rec.row.source_ip), "192.0.2.3");
	assert_int_equal(add(f->st, &rec, B0), 1);
	snprintf(rec.row.source_ip, sizeof(rec.row.source_ip), "192.0.2.2");
	assert_int_equal(add(f->st, &rec, B0), 0);
	/* Another domain: one row left in all. */
	record(&rec, "other.example", "192.0.2.1");
	assert_int_equal(add(f->st, &rec, B0), 0);
	snprintf(rec.row.source_ip, sizeof(rec.row.source_ip), "192.0.2.9");
	assert_int_equal(add(f->st, &rec, B0), 1);
	assert_int_equal(dmarc_store_dropped(f->st), 2);
	assert_int_equal(dmarc_store_rows(f->st), 3);
	report_ok(f->st, "example.com", B0, &rep);
	assert_int_equal(rep.nrows, 2);
	assert_int_equal(rep.messages, 3);
	dmarc_store_report_clear(&rep);
	/* A dropped first row leaves no empty period behind. */
	record(&rec, "third.example", "192.0.2.1");
	assert_int_equal(add(f->st, &rec, B0), 1);
	{
		struct dmarc_store_period *p = NULL;

		assert_int_equal(due(f->st, E0, &p), 2);
		free(p);
	}
}

static void
test_persistence(void **state)
{
	struct fixture *f = *state;
	struct dmarc_agg_record rec;
	struct dmarc_store_report rep;

	record(&rec, "example.com", "2001:db8::1");
	assert_int_equal(add(f->st, &rec, B0), 0);
	assert_int_equal(add(f->st, &rec, B0), 0);
	dmarc_store_close(&f->st);
	f->st = open_ok(f->path);
	assert_int_equal(dmarc_store_rows(f->st), 1);
	assert_int_equal(add(f->st, &rec, B0), 0);
	report_ok(f->st, "example.com", B0, &rep);
	assert_int_equal(rep.nrows, 1);
	assert_int_equal(rep.rows[0].count, 3);
	assert_string_equal(rep.rows[0].source_ip, "2001:db8::1");
	dmarc_store_report_clear(&rep);
	{
		struct stat sb;

		assert_int_equal(stat(f->path, &sb), 0);
		assert_int_equal(sb.st_mode & 0777, 0600);
	}
}

static void
test_bad_records(void **state)
{
	struct fixture *f = *state;
	struct dmarc_agg_record rec;
	char *error = NULL;

	record(&rec, "example.com", "192.0.2.1");
	snprintf(rec.rua[0].uri, sizeof(rec.rua[0].uri), "https://x.example/");
	assert_int_equal(dmarc_store_add(f->st, &rec, B0, E0, &error), -1);
	assert_non_null(error);
	free(error);
	error = NULL;
	record(&rec, "example.com", "192.0.2.1");
	assert_int_equal(dmarc_store_add(f->st, &rec, B0, B0, &error), -1);
	free(error);
	error = NULL;
	record(&rec, "example.com", "192.0.2.1");
	rec.row.dkim[0].selector[0] = '\t';
	assert_int_equal(dmarc_store_add(f->st, &rec, B0, E0, &error), -1);
	free(error);
	assert_int_equal(dmarc_store_rows(f->st), 0);
	/* A bad path is an error, not a crash. */
	error = NULL;
	assert_null(dmarc_store_open("/nonexistent/dir/dmarc.db", &error));
	assert_non_null(error);
	free(error);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_aggregate, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_periods_and_domains, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_caps, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_persistence, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_records, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
