/* queue, TLS-RPT reports (RFC 8460): once a UTC day has ended, the
 * sessions counted that day per recipient domain (data/queue/tlsrpt.db,
 * written by the outbound workers) become one report per domain that
 * asks for them. On a worker thread each domain's _smtp._tls TXT record
 * is read, and for each mailto: rua the JSON is built, gzipped and
 * wrapped in its message (with the MTA-STS policy we applied, from the
 * cache); back on the loop the messages go to queue_outbox.c and are
 * DKIM-signed by queue_sign.c (§5.3 asks it). A domain's rows go once a
 * report went out, or when it publishes no record; a DNS or lookup
 * failure leaves them for the next run (hourly); rows older than a week
 * are forgotten. https: rua URIs are not posted to (logged).
 * SECURITY: the TXT record comes from DNS (untrusted): parsed strictly
 * (tlsrpt_policy_parse, tlsrpt_mailto); reports never ask for DSNs. */
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/buf.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/workpool.h"
#include "core/xmalloc.h"
#include "mailauth/dmarc_agg.h"
#include "mailauth/dnsif.h"
#include "mailauth/tlsrpt_report.h"
#include "queue/mtasts.h"
#include "queue/tlsrpt.h"
#include "roles/mailauth_dns.h"
#include "roles/queue_int.h"

/* The first run after start, for days that ended while we were down. */
#define START_DELAY_MS 5000
/* A run with something left for later, or without lookup: again then. */
#define RETRY_MS (60 * 60 * 1000)
/* After midnight UTC, the day's run this much later. */
#define AFTER_END_MS (60 * 1000)
#define RUN_REPORTS_MAX 64
#define KEEP_DAYS 7
#define JSON_MAX (4u * 1024 * 1024)
#define GZIP_MAX (4u * 1024 * 1024)
#define MESSAGE_MAX (8u * 1024 * 1024)

struct report {
	struct tlsrpt_key key;
	struct tlsrpt_entry *entries;
	size_t nentries;
	char report_id[TLSRPT_TEXT_MAX + 64];
	bool dns_later; /* the record could not be read now */
	struct tlsrpt_policy_record rec;
};

struct run {
	struct child_ctx *ctx;
	char *hostname, *from;
	struct ma_dns dns;
	struct mtasts_cache *sts_cache;
	bool later; /* something is left for the next run */
	size_t n;
	struct report *reports;
	struct report_batch *batch; /* the messages, built on the worker */
};

static struct {
	struct event *timer;
	struct run *run;
} tr;

static void schedule(struct child_ctx *ctx, uint64_t delay_ms);

/* ------------------------------------------------- the worker's part */

/* The MTA-STS policy we applied, for "policy-string" and "mx-host". */
struct sts_text {
	struct mtasts_policy p;
	char mode[32], max_age[48];
	char *lines[3 + MTASTS_MX_MAX];
	size_t nlines;
};

static void
sts_text_load(struct run *run, const char *domain, struct sts_text *t)
{
	static const char *const modes[] = {"none", "testing", "enforce"};

	memset(t, 0, sizeof(*t));
	if (run->sts_cache == NULL ||
	    mtasts_cache_get(run->sts_cache, domain, clock_wall_ms(), &t->p) !=
	        1)
		return;
	snprintf(t->mode, sizeof(t->mode), "mode: %s",
	         modes[t->p.mode <= MTASTS_ENFORCE ? t->p.mode : 0]);
	snprintf(t->max_age, sizeof(t->max_age), "max_age: %u", t->p.max_age);
	t->lines[t->nlines++] = xstrdup("version: STSv1");
	t->lines[t->nlines++] = xstrdup(t->mode);
	for (size_t i = 0; i < t->p.nmx; i++)
		t->lines[t->nlines++] = xasprintf("mx: %s", t->p.mx[i]);
	t->lines[t->nlines++] = xstrdup(t->max_age);
}

static void
sts_text_clear(struct sts_text *t)
{
	for (size_t i = 0; i < t->nlines; i++)
		free(t->lines[i]);
	mtasts_policy_clear(&t->p);
}

/* The record at _smtp._tls.DOMAIN into r->rec: -1 when there is none
 * (nobody wants the report) or it could not be read now (dns_later). */
static int
read_record(struct run *run, struct report *r)
{
	struct ma_dns_answer ans;
	char name[TLSRPT_TEXT_MAX + 16];
	int rc = 0;

	snprintf(name, sizeof(name), "_smtp._tls.%s", r->key.domain);
	memset(&ans, 0, sizeof(ans));
	if (run->dns.lookup(run->dns.arg, name, MA_DNS_TXT, &ans) < 0 ||
	    ans.status == MA_DNS_TEMPFAIL) {
		r->dns_later = true;
		rc = -1;
	} else if (ans.status != MA_DNS_OK ||
	           tlsrpt_policy_parse((const char *const *)ans.rr, ans.count,
	                               &r->rec) < 0) {
		rc = -1;
	}
	ma_dns_answer_clear(&ans);
	return rc;
}

static void
build_report(struct run *run, size_t ri)
{
	struct report *r = &run->reports[ri];
	struct tlsrpt_row *rows = xcalloc(r->nentries, sizeof(*rows));
	struct sts_text sts;
	struct tlsrpt_report_meta meta = {
	    .org_name = run->hostname,
	    .contact = run->from,
	    .report_id = r->report_id,
	    .domain = r->key.domain,
	};
	struct buf json, gz;
	const char *fail = NULL;
	struct tm tm = {0};

	if (read_record(run, r) < 0) {
		free(rows);
		return;
	}
	/* The day's bounds: "YYYY-MM-DD" 00:00:00 to 23:59:59 UTC. */
	if (sscanf(r->key.day, "%d-%d-%d", &tm.tm_year, &tm.tm_mon,
	           &tm.tm_mday) == 3) {
		tm.tm_year -= 1900;
		tm.tm_mon -= 1;
		meta.begin = (int64_t)timegm(&tm);
		meta.end = meta.begin + 86399;
	}
	for (size_t i = 0; i < r->nentries; i++)
		rows[i] = (struct tlsrpt_row){
		    .policy = r->entries[i].policy,
		    .mx = r->entries[i].mx,
		    .result = r->entries[i].result,
		    .detail = r->entries[i].detail,
		    .count = r->entries[i].count,
		};
	sts_text_load(run, r->key.domain, &sts);
	meta.sts_lines = (const char *const *)sts.lines;
	meta.nsts_lines = sts.nlines;
	meta.sts_mx = (const char *const *)sts.p.mx;
	meta.nsts_mx = sts.p.nmx;
	buf_init(&json, JSON_MAX);
	buf_init(&gz, GZIP_MAX);
	if (tlsrpt_report_json(&meta, rows, r->nentries, &json) < 0 ||
	    dmarc_agg_gzip(json.data, json.len, &gz) < 0)
		fail = "too-big";
	for (size_t i = 0; i < r->rec.nrua; i++) {
		const char *uri = r->rec.rua[i];
		char address[TLSRPT_ADDRESS_MAX + 1];
		char msgid[TLSRPT_TEXT_MAX + 128];
		struct tlsrpt_mail m = {
		    .from = run->from,
		    .to = address,
		    .submitter = run->hostname,
		    .domain = r->key.domain,
		    .report_id = r->report_id,
		    .message_id = msgid,
		    .begin = meta.begin,
		    .end = meta.end,
		    .date = time(NULL),
		};
		struct buf msg;

		if (fail != NULL) {
			report_batch_skip(run->batch, ri, uri, false, fail);
			continue;
		}
		if (tlsrpt_mailto(uri, address) < 0) {
			report_batch_skip(run->batch, ri, uri, false,
			                  strncasecmp(uri, "https:", 6) == 0
			                      ? "https-not-supported"
			                      : "bad-uri");
			continue;
		}
		snprintf(msgid, sizeof(msgid), "<%s.%zu@%s>", r->report_id, i,
		         run->hostname);
		buf_init(&msg, MESSAGE_MAX);
		if (tlsrpt_report_message(&m, gz.data, gz.len, &msg) < 0) {
			buf_free(&msg);
			report_batch_skip(run->batch, ri, address, false,
			                  "too-big");
			continue;
		}
		report_batch_add(run->batch, ri, address, &msg);
	}
	sts_text_clear(&sts);
	buf_free(&json);
	buf_free(&gz);
	free(rows);
}

static void
run_job(void *arg)
{
	struct run *run = arg;

	for (size_t i = 0; i < run->n; i++)
		build_report(run, i);
}

/* ---------------------------------------------------- back on the loop */

static void
run_free(struct run **runp)
{
	struct run *run = *runp;

	if (run == NULL)
		return;
	for (size_t i = 0; i < run->n; i++)
		tlsrpt_entries_free(&run->reports[i].entries,
		                    run->reports[i].nentries);
	report_batch_free(&run->batch);
	free(run->reports);
	free(run->hostname);
	free(run->from);
	free(run);
	*runp = NULL;
}

/* The next midnight UTC, a little after. */
static uint64_t
next_day_delay(void)
{
	uint64_t day = 86400000, now = clock_wall_ms();

	return (now / day + 1) * day + AFTER_END_MS - now;
}

static void
batch_log(struct child_ctx *ctx, void *owner, const struct report_msg *m,
          const char *queue_id)
{
	struct run *run = owner;
	const struct report *r = &run->reports[m->report];

	(void)ctx;
	if (m->state == REPORT_SENT)
		log_info(queue_id,
		         "event=tlsrpt-report-sent domain=%s day=%s rua=%s "
		         "report_id=%s",
		         r->key.domain, r->key.day, m->address, r->report_id);
	else
		log_notice(NULL,
		           "event=tlsrpt-report-not-sent domain=%s day=%s "
		           "rua=%s reason=%s retry=%s",
		           r->key.domain, r->key.day, m->address, m->why,
		           m->state == REPORT_LATER ? "yes" : "no");
}

/* The rows go when a report went out or none ever will; else they wait
 * for the next run. */
static void
batch_report_done(struct child_ctx *ctx, void *owner, size_t i, bool sent,
                  bool later)
{
	struct queue *q = ctx->role;
	struct run *run = owner;
	struct report *r = &run->reports[i];
	char *error = NULL;

	if (r->dns_later || (later && !sent)) {
		run->later = true;
		return;
	}
	if (tlsrpt_forget(q->tlsrpt, &r->key, &error) < 0) {
		log_error(NULL, "event=tlsrpt-store-failed error=%s", error);
		free(error);
	}
}

static void
batch_done(struct child_ctx *ctx, void *owner)
{
	struct run *run = owner;
	bool later = run->later;

	if (tr.run == run)
		tr.run = NULL;
	run_free(&run);
	if (!ctx->stopping)
		schedule(ctx, later ? RETRY_MS : next_day_delay());
}

static const struct report_batch_ops batch_ops = {
    .log = batch_log,
    .report_done = batch_report_done,
    .done = batch_done,
};

static void
run_done(void *arg)
{
	struct run *run = arg;
	struct child_ctx *ctx = run->ctx;

	if (ctx->stopping || tr.run != run) {
		if (tr.run == run)
			tr.run = NULL;
		run_free(&run);
		return;
	}
	report_batch_send(ctx, run->batch);
}

static void
run_start(struct child_ctx *ctx)
{
	struct queue *q = ctx->role;
	struct tlsrpt_key *keys = NULL;
	struct run *run;
	char today[11], oldest[11], *error = NULL;
	size_t n = 0;
	int pruned;

	if (!ctx->cfg->tlsrpt_reports || q->tlsrpt == NULL || q->pool == NULL) {
		schedule(ctx, next_day_delay());
		return;
	}
	if (child_peer(ctx, "lookup") == NULL) {
		schedule(ctx, RETRY_MS);
		return;
	}
	tlsrpt_day(clock_wall_ms(), today);
	tlsrpt_day(clock_wall_ms() - (uint64_t)KEEP_DAYS * 86400000, oldest);
	if ((pruned = tlsrpt_prune(q->tlsrpt, oldest, &error)) < 0) {
		log_error(NULL, "event=tlsrpt-store-failed error=%s", error);
		xfree(&error);
	} else if (pruned > 0) {
		log_warn(NULL, "event=tlsrpt-reports-expired rows=%d", pruned);
	}
	if (tlsrpt_due(q->tlsrpt, today, RUN_REPORTS_MAX, &keys, &n, &error) <
	    0) {
		log_error(NULL, "event=tlsrpt-store-failed error=%s", error);
		free(error);
		schedule(ctx, RETRY_MS);
		return;
	}
	if (n == 0) {
		free(keys);
		schedule(ctx, next_day_delay());
		return;
	}
	run = xcalloc(1, sizeof(*run));
	run->ctx = ctx;
	run->hostname = xstrdup(ctx->cfg->hostname);
	run->from = ctx->cfg->tlsrpt_report_from[0] != '\0'
	                ? xstrdup(ctx->cfg->tlsrpt_report_from)
	                : xasprintf("postmaster@%s", ctx->cfg->hostname);
	run->sts_cache = q->sts_cache;
	run->reports = xcalloc(n, sizeof(*run->reports));
	run->batch = report_batch_new(&batch_ops, run, run->from, n);
	mailauth_dns_init(&run->dns, q->resolver);
	for (size_t i = 0; i < n; i++) {
		struct report *r = &run->reports[run->n];

		r->key = keys[i];
		if (tlsrpt_entries(q->tlsrpt, &r->key, &r->entries,
		                   &r->nentries, &error) < 0) {
			log_error(NULL, "event=tlsrpt-store-failed error=%s",
			          error);
			xfree(&error);
			continue;
		}
		snprintf(r->report_id, sizeof(r->report_id),
		         "%sT00:00:00Z_%s_%08x", r->key.day, r->key.domain,
		         arc4random());
		run->n++;
	}
	free(keys);
	log_info(NULL, "event=tlsrpt-reports-due reports=%zu", run->n);
	run->batch->nreports = run->n;
	tr.run = run;
	workpool_submit(q->pool, NULL, run_job, run_done, run);
}

static void
timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct child_ctx *ctx = arg;

	(void)fd;
	(void)what;
	if (ctx->stopping)
		return;
	if (tr.run != NULL) {
		/* Still building, or waiting for the outbox (which gives
		 * up on a silent lookup by itself). */
		schedule(ctx, RETRY_MS);
		return;
	}
	run_start(ctx);
}

static void
schedule(struct child_ctx *ctx, uint64_t delay_ms)
{
	queue_timer_set(&tr.timer, ctx, timer_cb, delay_ms);
}

void
queue_tlsrpt_start(struct child_ctx *ctx)
{
	schedule(ctx, START_DELAY_MS);
}

void
queue_tlsrpt_stop(struct child_ctx *ctx)
{
	(void)ctx;
	if (tr.timer != NULL)
		event_free(tr.timer);
	tr.timer = NULL;
	/* A run on a worker keeps its memory until exit. */
}
