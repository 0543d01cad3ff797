/* TLS reporting data (see tlsrpt.h): one row per day, domain, policy,
 * MX host, result and detail, with a count.
 * SECURITY: constant statement texts, bound parameters, bounded text. */
#include "queue/tlsrpt.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>

#include "core/xmalloc.h"

#define TLSRPT_BUSY_MS 5000

static const char tlsrpt_schema[] =
    "PRAGMA journal_mode = WAL;"
    "PRAGMA synchronous = NORMAL;"
    "CREATE TABLE IF NOT EXISTS sessions ("
    " day TEXT NOT NULL, domain TEXT NOT NULL, policy TEXT NOT NULL,"
    " mx TEXT NOT NULL, result TEXT NOT NULL, detail TEXT NOT NULL,"
    " count INTEGER NOT NULL,"
    " PRIMARY KEY (day, domain, policy, mx, result, detail))"
    " WITHOUT ROWID;";

static const char tlsrpt_upsert[] =
    "INSERT INTO sessions (day, domain, policy, mx, result, detail, count)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, 1)"
    " ON CONFLICT (day, domain, policy, mx, result, detail)"
    " DO UPDATE SET count = count + 1";

static const char tlsrpt_count_sql[] =
    "SELECT coalesce(sum(CASE WHEN result = 'success' THEN count END), 0),"
    " coalesce(sum(CASE WHEN result <> 'success' THEN count END), 0)"
    " FROM sessions WHERE day = ?1 AND domain = ?2";

struct tlsrpt {
	sqlite3 *db;
	/* One statement shared by the worker threads. */
	pthread_mutex_t lock;
	sqlite3_stmt *upsert;
};

const char *
tlsrpt_policy_name(enum tlsrpt_policy p)
{
	switch (p) {
	case TLSRPT_POLICY_STS:
		return "sts";
	case TLSRPT_POLICY_TLSA:
		return "tlsa";
	case TLSRPT_POLICY_NONE:
		break;
	}
	return "no-policy-found";
}

const char *
tlsrpt_result_name(enum tlsrpt_result r)
{
	static const char *const names[] = {
	    [TLSRPT_SUCCESS] = "success",
	    [TLSRPT_STARTTLS_NOT_SUPPORTED] = "starttls-not-supported",
	    [TLSRPT_CERTIFICATE_HOST_MISMATCH] = "certificate-host-mismatch",
	    [TLSRPT_CERTIFICATE_NOT_TRUSTED] = "certificate-not-trusted",
	    [TLSRPT_VALIDATION_FAILURE] = "validation-failure",
	    [TLSRPT_TLSA_INVALID] = "tlsa-invalid",
	    [TLSRPT_DNSSEC_INVALID] = "dnssec-invalid",
	    [TLSRPT_STS_WEBPKI_INVALID] = "sts-webpki-invalid",
	};

	if ((size_t)r < sizeof(names) / sizeof(names[0]) && names[r] != NULL)
		return names[r];
	return "validation-failure";
}

struct tlsrpt *
tlsrpt_open(const char *path, char **error_r)
{
	struct tlsrpt *t = xcalloc(1, sizeof(*t));

	if (sqlite3_open_v2(path, &t->db,
	                    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
	                        SQLITE_OPEN_FULLMUTEX,
	                    NULL) != SQLITE_OK ||
	    sqlite3_busy_timeout(t->db, TLSRPT_BUSY_MS) != SQLITE_OK ||
	    sqlite3_exec(t->db, tlsrpt_schema, NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v3(t->db, tlsrpt_upsert, -1,
	                       SQLITE_PREPARE_PERSISTENT, &t->upsert,
	                       NULL) != SQLITE_OK) {
		*error_r = xasprintf("%s: %s", path,
		                     t->db != NULL ? sqlite3_errmsg(t->db)
		                                   : "cannot open");
		sqlite3_finalize(t->upsert);
		sqlite3_close(t->db);
		free(t);
		return NULL;
	}
	pthread_mutex_init(&t->lock, NULL);
	return t;
}

void
tlsrpt_close(struct tlsrpt **tp)
{
	struct tlsrpt *t = *tp;

	if (t == NULL)
		return;
	sqlite3_finalize(t->upsert);
	sqlite3_close(t->db);
	pthread_mutex_destroy(&t->lock);
	free(t);
	*tp = NULL;
}

void
tlsrpt_day(uint64_t now_ms, char day[11])
{
	time_t secs = (time_t)(now_ms / 1000);
	struct tm tm;

	gmtime_r(&secs, &tm);
	strftime(day, 11, "%Y-%m-%d", &tm);
}

/* Bounded, so that a long remote text cannot grow a row. */
static void
bind_bounded(sqlite3_stmt *st, int i, const char *s)
{
	size_t n = strnlen(s != NULL ? s : "", TLSRPT_TEXT_MAX);

	sqlite3_bind_text(st, i, s != NULL ? s : "", (int)n, SQLITE_TRANSIENT);
}

int
tlsrpt_record(struct tlsrpt *t, uint64_t now_ms, const char *domain,
              enum tlsrpt_policy policy, const char *mx,
              enum tlsrpt_result result, const char *detail, char **error_r)
{
	char day[11];
	int rc;

	tlsrpt_day(now_ms, day);
	pthread_mutex_lock(&t->lock);
	sqlite3_bind_text(t->upsert, 1, day, -1, SQLITE_TRANSIENT);
	bind_bounded(t->upsert, 2, domain);
	sqlite3_bind_text(t->upsert, 3, tlsrpt_policy_name(policy), -1,
	                  SQLITE_STATIC);
	bind_bounded(t->upsert, 4, mx);
	sqlite3_bind_text(t->upsert, 5, tlsrpt_result_name(result), -1,
	                  SQLITE_STATIC);
	bind_bounded(t->upsert, 6, result == TLSRPT_SUCCESS ? "" : detail);
	rc = sqlite3_step(t->upsert);
	if (rc != SQLITE_DONE)
		*error_r = xasprintf("tlsrpt: %s", sqlite3_errmsg(t->db));
	sqlite3_reset(t->upsert);
	sqlite3_clear_bindings(t->upsert);
	pthread_mutex_unlock(&t->lock);
	return rc == SQLITE_DONE ? 0 : -1;
}

int
tlsrpt_counts(struct tlsrpt *t, const char *day, const char *domain,
              uint64_t *success_r, uint64_t *failure_r, char **error_r)
{
	sqlite3_stmt *st = NULL;
	int rc;

	*success_r = *failure_r = 0;
	if (sqlite3_prepare_v2(t->db, tlsrpt_count_sql, -1, &st, NULL) !=
	    SQLITE_OK) {
		*error_r = xasprintf("tlsrpt: %s", sqlite3_errmsg(t->db));
		return -1;
	}
	sqlite3_bind_text(st, 1, day, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 2, domain, -1, SQLITE_TRANSIENT);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*success_r = (uint64_t)sqlite3_column_int64(st, 0);
		*failure_r = (uint64_t)sqlite3_column_int64(st, 1);
	} else {
		*error_r = xasprintf("tlsrpt: %s", sqlite3_errmsg(t->db));
	}
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 0 : -1;
}

/* ------------------------------------------------------- the reports */

/* A statement of the report side (the queue's loop), prepared for each
 * use as reports are rare. Callers hold t->lock, so that the workers'
 * upserts cannot come between a step and sqlite3_changes/errmsg. */
static sqlite3_stmt *
prepare(struct tlsrpt *t, const char *sql, char **error_r)
{
	sqlite3_stmt *st = NULL;

	if (sqlite3_prepare_v2(t->db, sql, -1, &st, NULL) != SQLITE_OK) {
		*error_r = xasprintf("tlsrpt: %s", sqlite3_errmsg(t->db));
		return NULL;
	}
	return st;
}

static char *
col_dup(sqlite3_stmt *st, int i)
{
	const unsigned char *s = sqlite3_column_text(st, i);

	return xstrdup(s != NULL ? (const char *)s : "");
}

static int
due_locked(struct tlsrpt *t, const char *before_day, size_t max,
           struct tlsrpt_key **keys_r, size_t *n_r, char **error_r)
{
	sqlite3_stmt *st = prepare(t,
	                           "SELECT DISTINCT day, domain FROM sessions"
	                           " WHERE day < ?1 ORDER BY day, domain"
	                           " LIMIT ?2",
	                           error_r);
	struct tlsrpt_key *keys = NULL;
	size_t n = 0;
	int rc;

	*keys_r = NULL;
	*n_r = 0;
	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, before_day, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)max);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const unsigned char *day = sqlite3_column_text(st, 0);
		const unsigned char *dom = sqlite3_column_text(st, 1);

		if (day == NULL || dom == NULL)
			continue;
		keys = xreallocarray(keys, n + 1, sizeof(*keys));
		snprintf(keys[n].day, sizeof(keys[n].day), "%s", day);
		snprintf(keys[n].domain, sizeof(keys[n].domain), "%s", dom);
		n++;
	}
	if (rc != SQLITE_DONE) {
		*error_r = xasprintf("tlsrpt: %s", sqlite3_errmsg(t->db));
		sqlite3_finalize(st);
		free(keys);
		return -1;
	}
	sqlite3_finalize(st);
	*keys_r = keys;
	*n_r = n;
	return 0;
}

static int
entries_locked(struct tlsrpt *t, const struct tlsrpt_key *key,
               struct tlsrpt_entry **entries_r, size_t *n_r, char **error_r)
{
	sqlite3_stmt *st = prepare(t,
	                           "SELECT policy, mx, result, detail, count"
	                           " FROM sessions WHERE day = ?1"
	                           " AND domain = ?2"
	                           " ORDER BY policy, mx, result, detail",
	                           error_r);
	struct tlsrpt_entry *e = NULL;
	size_t n = 0;
	int rc;

	*entries_r = NULL;
	*n_r = 0;
	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, key->day, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 2, key->domain, -1, SQLITE_TRANSIENT);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		sqlite3_int64 count = sqlite3_column_int64(st, 4);

		e = xreallocarray(e, n + 1, sizeof(*e));
		e[n].policy = col_dup(st, 0);
		e[n].mx = col_dup(st, 1);
		e[n].result = col_dup(st, 2);
		e[n].detail = col_dup(st, 3);
		e[n].count = count < 0 ? 0 : (uint64_t)count;
		n++;
	}
	if (rc != SQLITE_DONE) {
		*error_r = xasprintf("tlsrpt: %s", sqlite3_errmsg(t->db));
		sqlite3_finalize(st);
		tlsrpt_entries_free(&e, n);
		return -1;
	}
	sqlite3_finalize(st);
	*entries_r = e;
	*n_r = n;
	return 0;
}

int
tlsrpt_due(struct tlsrpt *t, const char *before_day, size_t max,
           struct tlsrpt_key **keys_r, size_t *n_r, char **error_r)
{
	int rc;

	pthread_mutex_lock(&t->lock);
	rc = due_locked(t, before_day, max, keys_r, n_r, error_r);
	pthread_mutex_unlock(&t->lock);
	return rc;
}

int
tlsrpt_entries(struct tlsrpt *t, const struct tlsrpt_key *key,
               struct tlsrpt_entry **entries_r, size_t *n_r, char **error_r)
{
	int rc;

	pthread_mutex_lock(&t->lock);
	rc = entries_locked(t, key, entries_r, n_r, error_r);
	pthread_mutex_unlock(&t->lock);
	return rc;
}

void
tlsrpt_entries_free(struct tlsrpt_entry **entries, size_t n)
{
	for (size_t i = 0; *entries != NULL && i < n; i++) {
		free((*entries)[i].policy);
		free((*entries)[i].mx);
		free((*entries)[i].result);
		free((*entries)[i].detail);
	}
	free(*entries);
	*entries = NULL;
}

/* Run a DELETE with up to two text parameters; the rows removed. */
static int
delete_rows(struct tlsrpt *t, const char *sql, const char *a, const char *b,
            char **error_r)
{
	sqlite3_stmt *st;
	int rc, changed = -1;

	pthread_mutex_lock(&t->lock);
	if ((st = prepare(t, sql, error_r)) != NULL) {
		sqlite3_bind_text(st, 1, a, -1, SQLITE_TRANSIENT);
		if (b != NULL)
			sqlite3_bind_text(st, 2, b, -1, SQLITE_TRANSIENT);
		rc = sqlite3_step(st);
		if (rc == SQLITE_DONE)
			changed = sqlite3_changes(t->db);
		else
			*error_r =
			    xasprintf("tlsrpt: %s", sqlite3_errmsg(t->db));
		sqlite3_finalize(st);
	}
	pthread_mutex_unlock(&t->lock);
	return changed;
}

int
tlsrpt_forget(struct tlsrpt *t, const struct tlsrpt_key *key, char **error_r)
{
	return delete_rows(
	           t, "DELETE FROM sessions WHERE day = ?1 AND domain = ?2",
	           key->day, key->domain, error_r) < 0
	           ? -1
	           : 0;
}

int
tlsrpt_prune(struct tlsrpt *t, const char *before_day, char **error_r)
{
	return delete_rows(t, "DELETE FROM sessions WHERE day < ?1", before_day,
	                   NULL, error_r);
}
