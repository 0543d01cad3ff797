/* The DMARC aggregate report data (data/queue/dmarc.db, SQLite in WAL
 * mode): per report period and policy domain, the policy last published
 * and its rua URIs, and the rows of RFC 7489 appendix C, each counting
 * the messages alike in source IP, disposition, aligned and raw DKIM/SPF
 * results, header From and envelope From. roles/queue_dmarc.c adds one
 * record per evaluated message and sends the reports of finished periods.
 * Pure: no event loop, no IPC; time is what the caller passes.
 * SECURITY: records come from front (checked by dmarc_agg_record_check
 * before they get here); all values are bound parameters. Rows per period
 * and rows in all are capped (an attacker controls how many distinct
 * source IPs and domains show up): past a cap, new rows are dropped and
 * counted, existing rows still count up. */
#ifndef TERN_QUEUE_DMARC_STORE_H
#define TERN_QUEUE_DMARC_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "mailauth/dmarc_agg.h"

#define DMARC_STORE_PERIOD_ROWS_MAX 10000 /* <record>s in one report */
#define DMARC_STORE_ROWS_MAX 200000       /* rows in the whole file */

struct dmarc_store;

/* path: the database file (made 0600 if missing). NULL with *error_r. */
struct dmarc_store *dmarc_store_open(const char *path, char **error_r);
void dmarc_store_close(struct dmarc_store **st);
/* Lower caps, for tests (0 leaves a cap as it is). */
void dmarc_store_set_limits(struct dmarc_store *st, size_t period_rows,
                            size_t rows);

/* One message's record in the period [begin, end) (seconds): its row
 * counts up by one (a new row when none is alike), the period's policy
 * and rua become the record's. One transaction. 0 added, 1 dropped (a
 * cap), -1 with *error_r. */
int dmarc_store_add(struct dmarc_store *st, const struct dmarc_agg_record *rec,
                    int64_t begin, int64_t end, char **error_r);

struct dmarc_store_period {
	char domain[DMARC_DOMAIN_MAX + 1];
	int64_t begin, end; /* end exclusive */
};

/* Periods that ended at or before now, oldest first, at most max;
 * *periods_r is malloc'd (NULL when none). 0 or -1. */
int dmarc_store_due(struct dmarc_store *st, int64_t now, size_t max,
                    struct dmarc_store_period **periods_r, size_t *n_r,
                    char **error_r);

/* One period's report. */
struct dmarc_store_report {
	struct dmarc_agg_policy policy;
	size_t nrua;
	struct dmarc_uri rua[DMARC_AGG_RUA_MAX];
	struct dmarc_agg_row *rows; /* malloc'd, most messages first */
	size_t nrows;
	uint64_t messages; /* the sum of the counts */
};

/* 0, 1 when there is no such period, -1 with *error_r. */
int dmarc_store_report(struct dmarc_store *st, const char *domain,
                       int64_t begin, struct dmarc_store_report *rep_r,
                       char **error_r);
void dmarc_store_report_clear(struct dmarc_store_report *rep);

/* The period and its rows go (sent, or given up). 0 or -1. */
int dmarc_store_delete(struct dmarc_store *st, const char *domain,
                       int64_t begin, char **error_r);
/* Forget periods that ended before before (never sent): how many in
 * *removed_r. 0 or -1. */
int dmarc_store_prune(struct dmarc_store *st, int64_t before, size_t *removed_r,
                      char **error_r);
/* Rows in the file, and rows dropped by the caps since open. */
size_t dmarc_store_rows(const struct dmarc_store *st);
uint64_t dmarc_store_dropped(const struct dmarc_store *st);

#endif
