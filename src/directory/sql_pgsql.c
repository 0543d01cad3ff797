/* PostgreSQL driver for sql.h over libpq: the conninfo string is passed as
 * is; each statement is prepared once per connection (PQprepare, generated
 * names, "?" rewritten to $1..$n) and run with PQexecPrepared, values and
 * results in text format. A connection found dead outside a transaction is
 * reset once and the statement retried.
 * SECURITY: values travel as parameters only; error messages are the
 * server's primary message (never DETAIL, which quotes values), and data
 * errors (SQLSTATE class 22) are reported by code alone. */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/xmalloc.h"
#include "directory/sql_driver.h"

#define PG_SQL_MAX 65536

struct pg_stmt {
	char name[32];
	size_t nparams;
};

struct pg_ctx {
	PGconn *pg;
	struct sql_cache cache;
	unsigned long next_id;
	bool in_tx;
};

static void
free_stmt(void *stmt, void *arg)
{
	(void)arg;
	free(stmt);
}

/* Server notices ("relation already exists, skipping") are not ours to
 * print on stderr. */
static void
ignore_notice(void *arg, const char *message)
{
	(void)arg;
	(void)message;
}

/* libpq messages end with a newline and may span lines: keep the first. */
static char *
pg_message(const char *msg)
{
	size_t n;

	if (msg == NULL || msg[0] == '\0')
		return xstrdup("unknown error");
	n = strcspn(msg, "\n");
	return xstrndup(msg, n);
}

static void
pg_close(void *vctx)
{
	struct pg_ctx *ctx = vctx;

	if (ctx == NULL)
		return;
	sql_cache_clear(&ctx->cache, free_stmt, NULL);
	PQfinish(ctx->pg);
	free(ctx);
}

static int
pg_setup(PGconn *pg, char **error_r)
{
	PQsetNoticeProcessor(pg, ignore_notice, NULL);
	if (PQsetClientEncoding(pg, "UTF8") != 0) {
		*error_r = xstrdup("cannot set client encoding UTF8");
		return -1;
	}
	return 0;
}

static void *
pg_open(const char *target, char **error_r)
{
	struct pg_ctx *ctx;
	PGconn *pg;

	pg = PQconnectdb(target);
	if (pg == NULL) {
		*error_r = xstrdup("out of memory");
		return NULL;
	}
	if (PQstatus(pg) != CONNECTION_OK) {
		*error_r = pg_message(PQerrorMessage(pg));
		PQfinish(pg);
		return NULL;
	}
	if (pg_setup(pg, error_r) < 0) {
		PQfinish(pg);
		return NULL;
	}
	ctx = xcalloc(1, sizeof(*ctx));
	ctx->pg = pg;
	return ctx;
}

/* "?" outside quotes becomes $1, $2 …; the count goes to *n_r. */
static char *
rewrite_placeholders(const char *sql, size_t *n_r)
{
	struct buf b;
	char quote = 0;
	size_t n = 0;
	char *out;

	buf_init(&b, PG_SQL_MAX);
	for (const char *p = sql; *p != '\0'; p++) {
		int rc;

		if (quote != 0) {
			if (*p == quote)
				quote = 0;
			rc = buf_append_byte(&b, (uint8_t)*p);
		} else if (*p == '\'' || *p == '"') {
			quote = *p;
			rc = buf_append_byte(&b, (uint8_t)*p);
		} else if (*p == '?') {
			rc = buf_printf(&b, "$%zu", ++n);
		} else {
			rc = buf_append_byte(&b, (uint8_t)*p);
		}
		if (rc < 0) {
			buf_free(&b);
			return NULL;
		}
	}
	out = sql_strndup(b.len > 0 ? (const char *)b.data : "", b.len);
	buf_free(&b);
	*n_r = n;
	return out;
}

/* The error of a failed PGresult, without values. */
static char *
result_error(struct pg_ctx *ctx, const PGresult *res, bool *unique_r)
{
	const char *state = NULL, *primary = NULL;

	if (res != NULL) {
		state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	}
	if (state == NULL) /* connection-level: no server message */
		return pg_message(PQerrorMessage(ctx->pg));
	if (unique_r != NULL)
		*unique_r = strcmp(state, "23505") == 0;
	/* Class 22 (data exception) messages quote the offending value. */
	if (strncmp(state, "22", 2) == 0 || primary == NULL)
		return xasprintf("invalid value (SQLSTATE %s)", state);
	return xasprintf("%s (SQLSTATE %s)", primary, state);
}

static bool
connection_lost(struct pg_ctx *ctx)
{
	return PQstatus(ctx->pg) == CONNECTION_BAD;
}

/* Reset a dead connection: its prepared statements are gone with it. */
static int
reconnect(struct pg_ctx *ctx, char **error_r)
{
	sql_cache_clear(&ctx->cache, free_stmt, NULL);
	ctx->in_tx = false;
	PQreset(ctx->pg);
	if (PQstatus(ctx->pg) != CONNECTION_OK) {
		*error_r = pg_message(PQerrorMessage(ctx->pg));
		return -1;
	}
	return pg_setup(ctx->pg, error_r);
}

static struct pg_stmt *
prepare(struct pg_ctx *ctx, const char *sql, bool *cached_r, char **error_r)
{
	struct pg_stmt *stmt;
	PGresult *res;
	size_t n;
	char *text;

	if ((stmt = sql_cache_find(&ctx->cache, sql)) != NULL) {
		*cached_r = true;
		return stmt;
	}
	if ((text = rewrite_placeholders(sql, &n)) == NULL) {
		*error_r = xstrdup("prepare: statement too long");
		return NULL;
	}
	stmt = xcalloc(1, sizeof(*stmt));
	stmt->nparams = n;
	*cached_r = !sql_cache_full(&ctx->cache);
	/* Past the cache, use the unnamed statement (replaced each time). */
	if (*cached_r)
		snprintf(stmt->name, sizeof(stmt->name), "tern_%lu",
		         ctx->next_id++);
	res = PQprepare(ctx->pg, stmt->name, text, 0, NULL);
	free(text);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		char *msg = result_error(ctx, res, NULL);

		*error_r = xasprintf("prepare: %s", msg);
		free(msg);
		PQclear(res);
		free(stmt);
		return NULL;
	}
	PQclear(res);
	if (*cached_r)
		sql_cache_add(&ctx->cache, sql, stmt);
	return stmt;
}

static int
copy_rows(const PGresult *res, struct sql_result **res_r)
{
	int nrows = PQntuples(res), ncols = PQnfields(res);
	struct sql_result *out;

	if (res_r == NULL || ncols <= 0)
		return 0;
	out = sql_result_new((size_t)ncols);
	for (int r = 0; r < nrows; r++) {
		char **row = sql_result_add_row(out);

		for (int c = 0; c < ncols; c++) {
			if (PQgetisnull(res, r, c))
				continue;
			row[c] = sql_strndup(PQgetvalue(res, r, c),
			                     (size_t)PQgetlength(res, r, c));
		}
	}
	*res_r = out;
	return 0;
}

static int
exec_once(struct pg_ctx *ctx, const char *sql, const char *const *params,
          size_t nparams, struct sql_result **res_r, uint64_t *affected_r,
          bool *unique_r, char **error_r)
{
	struct pg_stmt *stmt;
	PGresult *res;
	bool cached;
	int rc = -1;

	if ((stmt = prepare(ctx, sql, &cached, error_r)) == NULL)
		return -1;
	if (stmt->nparams != nparams) {
		*error_r = xstrdup("wrong number of parameters");
		goto out;
	}
	res = PQexecPrepared(ctx->pg, stmt->name, (int)nparams, params, NULL,
	                     NULL, 0);
	switch (PQresultStatus(res)) {
	case PGRES_COMMAND_OK:
		*affected_r = strtoull(PQcmdTuples(res), NULL, 10);
		rc = 0;
		break;
	case PGRES_TUPLES_OK:
		rc = copy_rows(res, res_r);
		break;
	default:
		*error_r = result_error(ctx, res, unique_r);
		break;
	}
	PQclear(res);
out:
	if (!cached)
		free(stmt);
	return rc;
}

static int
pg_exec(void *vctx, const char *sql, const char *const *params, size_t nparams,
        struct sql_result **res_r, uint64_t *affected_r, bool *unique_r,
        char **error_r)
{
	struct pg_ctx *ctx = vctx;
	char *err = NULL;

	if (connection_lost(ctx) && !ctx->in_tx && reconnect(ctx, error_r) < 0)
		return -1;
	if (exec_once(ctx, sql, params, nparams, res_r, affected_r, unique_r,
	              &err) == 0)
		return 0;
	/* The server went away (restart, idle kill): outside a transaction
	 * nothing is lost by connecting again and retrying once. */
	if (connection_lost(ctx) && !ctx->in_tx) {
		free(err);
		err = NULL;
		if (reconnect(ctx, error_r) < 0)
			return -1;
		return exec_once(ctx, sql, params, nparams, res_r, affected_r,
		                 unique_r, error_r);
	}
	*error_r = err;
	return -1;
}

static int
pg_tx(void *vctx, enum sql_tx op, char **error_r)
{
	static const char *const sql[] = {
	    [SQL_TX_BEGIN] = "BEGIN",
	    [SQL_TX_COMMIT] = "COMMIT",
	    [SQL_TX_ROLLBACK] = "ROLLBACK",
	};
	struct pg_ctx *ctx = vctx;
	uint64_t affected;
	bool unique = false;
	int rc;

	if (op == SQL_TX_ROLLBACK && connection_lost(ctx)) {
		/* The server dropped the transaction with the connection. */
		ctx->in_tx = false;
		return 0;
	}
	if (op == SQL_TX_ROLLBACK && !ctx->in_tx)
		return 0;
	/* COMMIT of a failed transaction "succeeds" as a ROLLBACK. */
	if (op == SQL_TX_COMMIT &&
	    PQtransactionStatus(ctx->pg) == PQTRANS_INERROR) {
		*error_r = xstrdup("transaction aborted by an earlier error");
		return -1;
	}
	rc = pg_exec(ctx, sql[op], NULL, 0, NULL, &affected, &unique, error_r);
	if (op == SQL_TX_BEGIN)
		ctx->in_tx = rc == 0;
	else
		ctx->in_tx = false;
	return rc;
}

const struct sql_driver sql_driver_pgsql = {
    .backend = SQL_PGSQL,
    .name = "pgsql",
    .open = pg_open,
    .close = pg_close,
    .exec = pg_exec,
    .tx = pg_tx,
};
