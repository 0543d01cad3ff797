/* The DMARC aggregate report data (see dmarc_store.h): a row of periods
 * (policy domain and begin) with the policy and rua last seen, and the
 * aggregated rows under each, counted. WAL with synchronous=NORMAL: report
 * data, not acknowledged mail (a power cut may forget the last few
 * counts, never corrupt the file).
 * SECURITY: every value is a bound parameter of a statement prepared once
 * with constant text; rows are capped per period and in all; reading a
 * report reads at most the period cap of rows. */
#include "queue/dmarc_store.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "core/buf.h"
#include "core/xmalloc.h"

#define DMARC_STORE_BUSY_MS 5000
#define DMARC_STORE_SCHEMA_VERSION 1

/* rows.flags */
#define ROW_DKIM_ALIGNED 0x1
#define ROW_SPF_ALIGNED 0x2
#define ROW_SPF_CHECKED 0x4

static const char dmarc_store_schema[] =
    "CREATE TABLE IF NOT EXISTS periods ("
    " domain TEXT NOT NULL, begin_s INTEGER NOT NULL, end_s INTEGER NOT NULL,"
    " p INTEGER NOT NULL, sp INTEGER NOT NULL, pct INTEGER NOT NULL,"
    " adkim INTEGER NOT NULL, aspf INTEGER NOT NULL, rua TEXT NOT NULL,"
    " nrows INTEGER NOT NULL DEFAULT 0,"
    " PRIMARY KEY (domain, begin_s)) WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS periods_end ON periods (end_s);"
    "CREATE TABLE IF NOT EXISTS records ("
    " domain TEXT NOT NULL, begin_s INTEGER NOT NULL,"
    " source_ip TEXT NOT NULL, header_from TEXT NOT NULL,"
    " envelope_from TEXT NOT NULL, disposition INTEGER NOT NULL,"
    " flags INTEGER NOT NULL, reasons INTEGER NOT NULL,"
    " spf INTEGER NOT NULL, dkim TEXT NOT NULL, count INTEGER NOT NULL,"
    " UNIQUE (domain, begin_s, source_ip, header_from, envelope_from,"
    " disposition, flags, reasons, spf, dkim));"
    "PRAGMA user_version = 1;";

enum {
	ST_BEGIN,
	ST_COMMIT,
	ST_ROLLBACK,
	ST_ROW_BUMP,
	ST_PERIOD_NROWS,
	ST_PERIOD_UPSERT,
	ST_ROW_INSERT,
	ST_PERIOD_INC,
	ST_DUE,
	ST_PERIOD_GET,
	ST_ROWS_GET,
	ST_DELETE_ROWS,
	ST_DELETE_PERIOD,
	ST_PRUNE_ROWS,
	ST_PRUNE_PERIODS,
	ST_COUNT_ROWS,
	ST_COUNT
};

/* The ten columns that make a row (?1..?10), in this order. */
#define ROW_KEY                                                                \
	"domain = ?1 AND begin_s = ?2 AND source_ip = ?3 AND header_from = ?4" \
	" AND envelope_from = ?5 AND disposition = ?6 AND flags = ?7"          \
	" AND reasons = ?8 AND spf = ?9 AND dkim = ?10"

static const char *const dmarc_store_sql[ST_COUNT] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_ROW_BUMP] = "UPDATE records SET count = count + 1 WHERE " ROW_KEY,
    [ST_PERIOD_NROWS] = "SELECT nrows FROM periods"
                        " WHERE domain = ?1 AND begin_s = ?2",
    [ST_PERIOD_UPSERT] =
        "INSERT INTO periods (domain, begin_s, end_s, p, sp, pct, adkim, aspf,"
        " rua) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
        " ON CONFLICT (domain, begin_s) DO UPDATE SET end_s = excluded.end_s,"
        " p = excluded.p, sp = excluded.sp, pct = excluded.pct,"
        " adkim = excluded.adkim, aspf = excluded.aspf, rua = excluded.rua",
    [ST_ROW_INSERT] = "INSERT INTO records (domain, begin_s, source_ip,"
                      " header_from, envelope_from, disposition, flags,"
                      " reasons, spf, dkim, count)"
                      " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 1)",
    [ST_PERIOD_INC] = "UPDATE periods SET nrows = nrows + 1"
                      " WHERE domain = ?1 AND begin_s = ?2",
    [ST_DUE] = "SELECT domain, begin_s, end_s FROM periods WHERE end_s <= ?1"
               " ORDER BY end_s, domain LIMIT ?2",
    [ST_PERIOD_GET] = "SELECT p, sp, pct, adkim, aspf, rua FROM periods"
                      " WHERE domain = ?1 AND begin_s = ?2",
    [ST_ROWS_GET] = "SELECT source_ip, header_from, envelope_from,"
                    " disposition, flags, reasons, spf, dkim, count"
                    " FROM records WHERE domain = ?1 AND begin_s = ?2"
                    " ORDER BY count DESC, rowid LIMIT ?3",
    [ST_DELETE_ROWS] = "DELETE FROM records WHERE domain = ?1 AND begin_s = ?2",
    [ST_DELETE_PERIOD] = "DELETE FROM periods"
                         " WHERE domain = ?1 AND begin_s = ?2",
    [ST_PRUNE_ROWS] = "DELETE FROM records WHERE (domain, begin_s) IN"
                      " (SELECT domain, begin_s FROM periods WHERE end_s < ?1)",
    [ST_PRUNE_PERIODS] = "DELETE FROM periods WHERE end_s < ?1",
    [ST_COUNT_ROWS] = "SELECT COUNT(*) FROM records",
};

struct dmarc_store {
	sqlite3 *db;
	char *path;
	sqlite3_stmt *st[ST_COUNT];
	size_t rows;      /* in the file */
	uint64_t dropped; /* by the caps, since open */
	size_t period_rows_max, rows_max;
};

static int
db_error(struct dmarc_store *st, const char *what, char **error_r)
{
	*error_r =
	    xasprintf("%s: %s: %s", st->path, what,
	              st->db != NULL ? sqlite3_errmsg(st->db) : "cannot open");
	return -1;
}

/* Reset and clear a statement after use (bound text is SQLITE_STATIC). */
static void
st_done(sqlite3_stmt *s)
{
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
}

/* Run a statement that returns no rows. */
static int
st_exec(struct dmarc_store *st, int which, char **error_r)
{
	sqlite3_stmt *s = st->st[which];
	int rc = sqlite3_step(s);

	st_done(s);
	if (rc != SQLITE_DONE)
		return db_error(st, dmarc_store_sql[which], error_r);
	return 0;
}

static void
rollback(struct dmarc_store *st)
{
	if (!sqlite3_get_autocommit(st->db)) {
		char *ignored = NULL;

		(void)st_exec(st, ST_ROLLBACK, &ignored);
		free(ignored);
	}
}

static void
bind_text(sqlite3_stmt *s, int i, const char *v)
{
	sqlite3_bind_text(s, i, v, -1, SQLITE_STATIC);
}

static int
count_rows(struct dmarc_store *st, char **error_r)
{
	sqlite3_stmt *s = st->st[ST_COUNT_ROWS];
	int rc = sqlite3_step(s);

	if (rc == SQLITE_ROW)
		st->rows = (size_t)sqlite3_column_int64(s, 0);
	st_done(s);
	return rc == SQLITE_ROW
	           ? 0
	           : db_error(st, dmarc_store_sql[ST_COUNT_ROWS], error_r);
}

static int
open_db(struct dmarc_store *st, char **error_r)
{
	sqlite3_stmt *s = NULL;
	int fd, version;

	/* 0600 before SQLite makes it (its -wal and -shm copy the mode). */
	fd = open(st->path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		*error_r = xasprintf("open %s: %s", st->path, strerror(errno));
		return -1;
	}
	close(fd);
	if (sqlite3_open_v2(st->path, &st->db,
	                    SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX |
	                        SQLITE_OPEN_NOFOLLOW,
	                    NULL) != SQLITE_OK)
		return db_error(st, "open", error_r);
	sqlite3_extended_result_codes(st->db, 1);
	sqlite3_busy_timeout(st->db, DMARC_STORE_BUSY_MS);
	sqlite3_db_config(st->db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
	sqlite3_db_config(st->db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, NULL);
	if (sqlite3_exec(st->db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL) !=
	        SQLITE_OK ||
	    sqlite3_exec(st->db, "PRAGMA synchronous=NORMAL", NULL, NULL,
	                 NULL) != SQLITE_OK)
		return db_error(st, "pragma", error_r);
	if (sqlite3_prepare_v2(st->db, "PRAGMA user_version", -1, &s, NULL) !=
	        SQLITE_OK ||
	    sqlite3_step(s) != SQLITE_ROW) {
		sqlite3_finalize(s);
		return db_error(st, "PRAGMA user_version", error_r);
	}
	version = sqlite3_column_int(s, 0);
	sqlite3_finalize(s);
	if (version > DMARC_STORE_SCHEMA_VERSION) {
		*error_r =
		    xasprintf("%s: schema version %d is newer than this "
		              "program (%d)",
		              st->path, version, DMARC_STORE_SCHEMA_VERSION);
		return -1;
	}
	if (sqlite3_exec(st->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) !=
	        SQLITE_OK ||
	    sqlite3_exec(st->db, dmarc_store_schema, NULL, NULL, NULL) !=
	        SQLITE_OK ||
	    sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		db_error(st, "schema", error_r);
		if (!sqlite3_get_autocommit(st->db))
			sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
		return -1;
	}
	for (size_t i = 0; i < ST_COUNT; i++)
		if (sqlite3_prepare_v3(st->db, dmarc_store_sql[i], -1,
		                       SQLITE_PREPARE_PERSISTENT, &st->st[i],
		                       NULL) != SQLITE_OK)
			return db_error(st, dmarc_store_sql[i], error_r);
	return count_rows(st, error_r);
}

struct dmarc_store *
dmarc_store_open(const char *path, char **error_r)
{
	struct dmarc_store *st = xcalloc(1, sizeof(*st));

	st->path = xstrdup(path);
	st->period_rows_max = DMARC_STORE_PERIOD_ROWS_MAX;
	st->rows_max = DMARC_STORE_ROWS_MAX;
	if (open_db(st, error_r) < 0) {
		dmarc_store_close(&st);
		return NULL;
	}
	return st;
}

void
dmarc_store_close(struct dmarc_store **stp)
{
	struct dmarc_store *st = *stp;

	if (st == NULL)
		return;
	for (size_t i = 0; i < ST_COUNT; i++)
		sqlite3_finalize(st->st[i]);
	if (st->db != NULL)
		sqlite3_close(st->db);
	free(st->path);
	free(st);
	*stp = NULL;
}

void
dmarc_store_set_limits(struct dmarc_store *st, size_t period_rows, size_t rows)
{
	if (period_rows > 0 && period_rows <= DMARC_STORE_PERIOD_ROWS_MAX)
		st->period_rows_max = period_rows;
	if (rows > 0 && rows <= DMARC_STORE_ROWS_MAX)
		st->rows_max = rows;
}

size_t
dmarc_store_rows(const struct dmarc_store *st)
{
	return st->rows;
}

uint64_t
dmarc_store_dropped(const struct dmarc_store *st)
{
	return st->dropped;
}

/* ------------------------------------------------------------- adding */

/* "domain\tselector\tresult\n" per DKIM result: the strings are printable
 * ASCII without space (dmarc_agg_record_check). */
static void
dkim_text(const struct dmarc_agg_row *row, struct buf *b)
{
	for (size_t i = 0; i < row->ndkim; i++)
		buf_printf(b, "%s\t%s\t%u\n", row->dkim[i].domain,
		           row->dkim[i].selector,
		           (unsigned)row->dkim[i].result);
}

/* "size uri\n" per rua URI. */
static void
rua_text(const struct dmarc_agg_record *rec, struct buf *b)
{
	for (size_t i = 0; i < rec->nrua; i++)
		buf_printf(b, "%" PRIu64 " %s\n", rec->rua[i].size_max,
		           rec->rua[i].uri);
}

static void
bind_row_key(sqlite3_stmt *s, const struct dmarc_agg_record *rec, int64_t begin,
             const char *dkim)
{
	const struct dmarc_agg_row *row = &rec->row;
	int flags = (row->dkim_aligned ? ROW_DKIM_ALIGNED : 0) |
	            (row->spf_aligned ? ROW_SPF_ALIGNED : 0) |
	            (row->spf_checked ? ROW_SPF_CHECKED : 0);

	bind_text(s, 1, rec->policy.domain);
	sqlite3_bind_int64(s, 2, begin);
	bind_text(s, 3, row->source_ip);
	bind_text(s, 4, row->header_from);
	bind_text(s, 5, row->envelope_from);
	sqlite3_bind_int(s, 6, (int)row->disposition);
	sqlite3_bind_int(s, 7, flags);
	sqlite3_bind_int(s, 8, (int)row->reasons);
	sqlite3_bind_int(s, 9, row->spf_checked ? (int)row->spf_result : 0);
	bind_text(s, 10, dkim);
}

static int
period_upsert(struct dmarc_store *st, const struct dmarc_agg_record *rec,
              int64_t begin, int64_t end, const char *rua, char **error_r)
{
	sqlite3_stmt *s = st->st[ST_PERIOD_UPSERT];

	bind_text(s, 1, rec->policy.domain);
	sqlite3_bind_int64(s, 2, begin);
	sqlite3_bind_int64(s, 3, end);
	sqlite3_bind_int(s, 4, (int)rec->policy.p);
	sqlite3_bind_int(s, 5, (int)rec->policy.sp);
	sqlite3_bind_int(s, 6, (int)rec->policy.pct);
	sqlite3_bind_int(s, 7, (int)rec->policy.adkim);
	sqlite3_bind_int(s, 8, (int)rec->policy.aspf);
	bind_text(s, 9, rua);
	return st_exec(st, ST_PERIOD_UPSERT, error_r);
}

/* Rows the period holds now (0 for a new period). */
static int
period_nrows(struct dmarc_store *st, const char *domain, int64_t begin,
             size_t *n_r, char **error_r)
{
	sqlite3_stmt *s = st->st[ST_PERIOD_NROWS];
	int rc;

	bind_text(s, 1, domain);
	sqlite3_bind_int64(s, 2, begin);
	rc = sqlite3_step(s);
	*n_r = rc == SQLITE_ROW ? (size_t)sqlite3_column_int64(s, 0) : 0;
	st_done(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return db_error(st, dmarc_store_sql[ST_PERIOD_NROWS], error_r);
	return 0;
}

int
dmarc_store_add(struct dmarc_store *st, const struct dmarc_agg_record *rec,
                int64_t begin, int64_t end, char **error_r)
{
	struct buf dkim, rua;
	const char *why;
	size_t nrows = 0;
	bool added = false;
	int rc, ret = -1;
	sqlite3_stmt *s;

	if (dmarc_agg_record_check(rec, &why) < 0 || end <= begin) {
		*error_r = xasprintf("bad record: %s",
		                     end <= begin ? "empty period" : why);
		return -1;
	}
	buf_init(&dkim, 0);
	buf_init(&rua, 0);
	dkim_text(&rec->row, &dkim);
	rua_text(rec, &rua);
	if (buf_cstr(&dkim) == NULL || buf_cstr(&rua) == NULL) {
		*error_r = xstrdup("out of memory");
		goto out;
	}
	if (st_exec(st, ST_BEGIN, error_r) < 0)
		goto out;
	s = st->st[ST_ROW_BUMP];
	bind_row_key(s, rec, begin, (const char *)dkim.data);
	rc = sqlite3_step(s);
	st_done(s);
	if (rc != SQLITE_DONE) {
		db_error(st, dmarc_store_sql[ST_ROW_BUMP], error_r);
		goto fail;
	}
	if (sqlite3_changes(st->db) == 0) {
		/* A new row: within the caps? */
		if (period_nrows(st, rec->policy.domain, begin, &nrows,
		                 error_r) < 0)
			goto fail;
		if (nrows >= st->period_rows_max || st->rows >= st->rows_max) {
			rollback(st);
			st->dropped++;
			ret = 1;
			goto out;
		}
		if (period_upsert(st, rec, begin, end, (const char *)rua.data,
		                  error_r) < 0)
			goto fail;
		s = st->st[ST_ROW_INSERT];
		bind_row_key(s, rec, begin, (const char *)dkim.data);
		if (st_exec(st, ST_ROW_INSERT, error_r) < 0)
			goto fail;
		s = st->st[ST_PERIOD_INC];
		bind_text(s, 1, rec->policy.domain);
		sqlite3_bind_int64(s, 2, begin);
		if (st_exec(st, ST_PERIOD_INC, error_r) < 0)
			goto fail;
		added = true;
	} else if (period_upsert(st, rec, begin, end, (const char *)rua.data,
	                         error_r) < 0) {
		goto fail;
	}
	if (st_exec(st, ST_COMMIT, error_r) < 0)
		goto fail;
	if (added)
		st->rows++;
	ret = 0;
	goto out;
fail:
	rollback(st);
out:
	buf_free(&dkim);
	buf_free(&rua);
	return ret;
}

/* ------------------------------------------------------------ reading */

int
dmarc_store_due(struct dmarc_store *st, int64_t now, size_t max,
                struct dmarc_store_period **periods_r, size_t *n_r,
                char **error_r)
{
	sqlite3_stmt *s = st->st[ST_DUE];
	struct dmarc_store_period *p = NULL;
	size_t n = 0;
	int rc;

	*periods_r = NULL;
	*n_r = 0;
	if (max == 0)
		return 0;
	sqlite3_bind_int64(s, 1, now);
	sqlite3_bind_int64(s, 2, (sqlite3_int64)max);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW && n < max) {
		const char *d = (const char *)sqlite3_column_text(s, 0);

		if (d == NULL || strlen(d) > DMARC_DOMAIN_MAX)
			continue;
		if (p == NULL)
			p = xcalloc(max, sizeof(*p));
		snprintf(p[n].domain, sizeof(p[n].domain), "%s", d);
		p[n].begin = sqlite3_column_int64(s, 1);
		p[n].end = sqlite3_column_int64(s, 2);
		n++;
	}
	st_done(s);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
		free(p);
		return db_error(st, dmarc_store_sql[ST_DUE], error_r);
	}
	*periods_r = p;
	*n_r = n;
	return 0;
}

/* A column's text into dst (size bytes): "" when NULL or too long. */
static void
column_copy(sqlite3_stmt *s, int col, char *dst, size_t size)
{
	const char *v = (const char *)sqlite3_column_text(s, col);

	if (v == NULL || strlen(v) >= size)
		v = "";
	memcpy(dst, v, strlen(v) + 1);
}

/* The rows' dkim text back into row (what dkim_text wrote; anything
 * else is skipped). */
static void
dkim_parse(const char *text, struct dmarc_agg_row *row)
{
	const char *line = text;

	row->ndkim = 0;
	while (line != NULL && *line != '\0' &&
	       row->ndkim < DMARC_AGG_DKIM_MAX) {
		const char *nl = strchr(line, '\n');
		const char *t1 =
		    memchr(line, '\t',
		           nl != NULL ? (size_t)(nl - line) : strlen(line));
		const char *t2 = t1 != NULL ? strchr(t1 + 1, '\t') : NULL;
		struct dmarc_agg_dkim *d = &row->dkim[row->ndkim];
		size_t dl, sl;

		if (nl == NULL || t1 == NULL || t2 == NULL || t2 > nl)
			break;
		dl = (size_t)(t1 - line);
		sl = (size_t)(t2 - t1 - 1);
		if (dl < sizeof(d->domain) && sl < sizeof(d->selector) &&
		    nl - t2 == 2 && t2[1] >= '0' &&
		    t2[1] <= '0' + DKIM_PERMERROR) {
			memcpy(d->domain, line, dl);
			d->domain[dl] = '\0';
			memcpy(d->selector, t1 + 1, sl);
			d->selector[sl] = '\0';
			d->result = (enum dkim_result)(t2[1] - '0');
			row->ndkim++;
		}
		line = nl + 1;
	}
}

/* The period's rua text back into rep. */
static void
rua_parse(const char *text, struct dmarc_store_report *rep)
{
	const char *line = text;

	rep->nrua = 0;
	while (line != NULL && *line != '\0' && rep->nrua < DMARC_AGG_RUA_MAX) {
		const char *nl = strchr(line, '\n');
		char *end = NULL;
		unsigned long long size;
		size_t ul;

		if (nl == NULL)
			break;
		errno = 0;
		size = strtoull(line, &end, 10);
		if (errno == 0 && end != NULL && *end == ' ' && end < nl &&
		    (ul = (size_t)(nl - end - 1)) > 0 && ul <= DMARC_URI_MAX) {
			struct dmarc_uri *u = &rep->rua[rep->nrua++];

			memcpy(u->uri, end + 1, ul);
			u->uri[ul] = '\0';
			u->size_max = size;
		}
		line = nl + 1;
	}
}

static int
enum_col(sqlite3_stmt *s, int col, int max)
{
	int v = sqlite3_column_int(s, col);

	return v < 0 || v > max ? 0 : v;
}

int
dmarc_store_report(struct dmarc_store *st, const char *domain, int64_t begin,
                   struct dmarc_store_report *rep_r, char **error_r)
{
	sqlite3_stmt *s = st->st[ST_PERIOD_GET];
	size_t cap = 0;
	int rc;

	memset(rep_r, 0, sizeof(*rep_r));
	bind_text(s, 1, domain);
	sqlite3_bind_int64(s, 2, begin);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		struct dmarc_agg_policy *pol = &rep_r->policy;

		snprintf(pol->domain, sizeof(pol->domain), "%s", domain);
		pol->p = (enum dmarc_policy)enum_col(s, 0, DMARC_POLICY_REJECT);
		pol->sp =
		    (enum dmarc_policy)enum_col(s, 1, DMARC_POLICY_REJECT);
		pol->pct = (unsigned)enum_col(s, 2, 100);
		pol->adkim =
		    (enum dmarc_align)enum_col(s, 3, DMARC_ALIGN_STRICT);
		pol->aspf =
		    (enum dmarc_align)enum_col(s, 4, DMARC_ALIGN_STRICT);
		rua_parse((const char *)sqlite3_column_text(s, 5), rep_r);
	}
	st_done(s);
	if (rc == SQLITE_DONE)
		return 1;
	if (rc != SQLITE_ROW)
		return db_error(st, dmarc_store_sql[ST_PERIOD_GET], error_r);

	s = st->st[ST_ROWS_GET];
	bind_text(s, 1, domain);
	sqlite3_bind_int64(s, 2, begin);
	sqlite3_bind_int64(s, 3, (sqlite3_int64)st->period_rows_max);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW &&
	       rep_r->nrows < st->period_rows_max) {
		struct dmarc_agg_row *row;
		int flags = sqlite3_column_int(s, 4);
		sqlite3_int64 count = sqlite3_column_int64(s, 8);

		if (count <= 0)
			continue;
		if (rep_r->nrows == cap) {
			cap = cap == 0 ? 16 : cap * 2;
			rep_r->rows = xreallocarray(rep_r->rows, cap,
			                            sizeof(*rep_r->rows));
		}
		row = &rep_r->rows[rep_r->nrows++];
		memset(row, 0, sizeof(*row));
		column_copy(s, 0, row->source_ip, sizeof(row->source_ip));
		column_copy(s, 1, row->header_from, sizeof(row->header_from));
		column_copy(s, 2, row->envelope_from,
		            sizeof(row->envelope_from));
		row->disposition =
		    (enum dmarc_policy)enum_col(s, 3, DMARC_POLICY_REJECT);
		row->dkim_aligned = (flags & ROW_DKIM_ALIGNED) != 0;
		row->spf_aligned = (flags & ROW_SPF_ALIGNED) != 0;
		row->spf_checked = (flags & ROW_SPF_CHECKED) != 0;
		row->reasons =
		    (unsigned)sqlite3_column_int(s, 5) & DMARC_AGG_REASONS_ALL;
		row->spf_result =
		    (enum spf_result)enum_col(s, 6, SPF_PERMERROR);
		dkim_parse((const char *)sqlite3_column_text(s, 7), row);
		row->count = (uint64_t)count;
		rep_r->messages += row->count;
	}
	st_done(s);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
		dmarc_store_report_clear(rep_r);
		return db_error(st, dmarc_store_sql[ST_ROWS_GET], error_r);
	}
	return 0;
}

void
dmarc_store_report_clear(struct dmarc_store_report *rep)
{
	free(rep->rows);
	memset(rep, 0, sizeof(*rep));
}

/* ----------------------------------------------------------- removing */

int
dmarc_store_delete(struct dmarc_store *st, const char *domain, int64_t begin,
                   char **error_r)
{
	static const int which[] = {ST_DELETE_ROWS, ST_DELETE_PERIOD};

	if (st_exec(st, ST_BEGIN, error_r) < 0)
		return -1;
	for (size_t i = 0; i < 2; i++) {
		sqlite3_stmt *s = st->st[which[i]];

		bind_text(s, 1, domain);
		sqlite3_bind_int64(s, 2, begin);
		if (st_exec(st, which[i], error_r) < 0) {
			rollback(st);
			return -1;
		}
	}
	if (st_exec(st, ST_COMMIT, error_r) < 0) {
		rollback(st);
		return -1;
	}
	return count_rows(st, error_r);
}

int
dmarc_store_prune(struct dmarc_store *st, int64_t before, size_t *removed_r,
                  char **error_r)
{
	*removed_r = 0;
	if (st_exec(st, ST_BEGIN, error_r) < 0)
		return -1;
	sqlite3_bind_int64(st->st[ST_PRUNE_ROWS], 1, before);
	if (st_exec(st, ST_PRUNE_ROWS, error_r) < 0) {
		rollback(st);
		return -1;
	}
	sqlite3_bind_int64(st->st[ST_PRUNE_PERIODS], 1, before);
	if (st_exec(st, ST_PRUNE_PERIODS, error_r) < 0) {
		rollback(st);
		return -1;
	}
	*removed_r = (size_t)sqlite3_changes(st->db);
	if (st_exec(st, ST_COMMIT, error_r) < 0) {
		rollback(st);
		return -1;
	}
	return count_rows(st, error_r);
}
