/* queue, DMARC aggregate reports (see queue_dmarc.h). A run, when a period
 * has ended (and once soon after start): the finished periods are read
 * from the store on the loop; on a worker thread each report's XML is
 * built and gzipped, each rua mailto: URI is checked (an external
 * destination must publish <policy domain>._report._dmarc.<its domain>
 * TXT "v=DMARC1", §7.1) and its message built within the URI's size
 * limit; back on the loop each message goes to queue_outbox.c (lookup
 * says where the address lives, the message is committed to the spool
 * from the report address), and the period's rows go once a report went
 * out (or could not go
 * anywhere). A run that failed only temporarily leaves the rows for the
 * next one; rows older than a week are forgotten.
 * SECURITY: the records came from front and the rua URIs from DNS
 * (untrusted): records are checked on decode (dmarc_agg_record_get),
 * addresses parsed strictly (dmarc_agg_mailto), external destinations
 * verified before anything is sent to them, and reports to an address are
 * bounded by its !size and by DMARC_AGG_XML_MAX; reports never ask for a
 * DSN (NOTIFY=NEVER), so no report can bounce into a loop. */
#include "roles/queue_dmarc.h"

#include <event2/event.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/workpool.h"
#include "core/xmalloc.h"
#include "mailauth/dmarc_agg.h"
#include "mailauth/dnsif.h"
#include "mailauth/psl.h"
#include "queue/dmarc_store.h"
#include "roles/mailauth_dns.h"
#include "roles/queue_int.h"

/* The first run after start, for periods that ended while we were down. */
#define START_DELAY_MS 5000
/* A run that found no lookup to ask tries again this much later. */
#define RETRY_MS 30000
/* After a period ends, its run starts this much later. */
#define AFTER_END_MS 1000
/* Periods (reports) and rows one run loads (a row is some 5 KiB); more
 * go in the next run. The first report is always loaded whole (at most
 * DMARC_STORE_PERIOD_ROWS_MAX rows). */
#define RUN_REPORTS_MAX 32
#define RUN_ROWS_MAX 10000
/* A run still waiting for lookup after this long is given up. */
#define RUN_TIMEOUT_MS (5 * 60 * 1000)
/* Unsent periods are forgotten this long after they ended. */
#define KEEP_S (7 * 24 * 3600)
#define GZIP_MAX (16u * 1024 * 1024)
#define MESSAGE_MAX (24u * 1024 * 1024)
struct rua_out {
	char uri[DMARC_URI_MAX + 1];
	uint64_t size_max;
};

struct report_out {
	struct dmarc_store_period period;
	struct dmarc_store_report rep;
	char report_id[DMARC_AGG_REPORT_ID_MAX + 1];
	size_t nrua;
	struct rua_out rua[DMARC_AGG_RUA_MAX];
};

struct run {
	struct child_ctx *ctx;
	char *hostname, *from;
	struct ma_dns dns;
	size_t n;
	struct report_out *reports;
	struct report_batch *batch; /* the messages, built on the worker */
};

/* One queue per process. */
static struct {
	struct dmarc_store *store;
	struct event *timer;
	struct run *run;
	uint64_t dropped_logged;
} dm;

static void schedule(struct child_ctx *ctx, uint64_t delay_ms);

/* ------------------------------------------------------------ the store */

static struct dmarc_store *
store_get(struct child_ctx *ctx)
{
	char *path, *error = NULL;

	if (dm.store != NULL)
		return dm.store;
	path = xasprintf("%s/queue/dmarc.db", ctx->cfg->data_dir);
	dm.store = dmarc_store_open(path, &error);
	if (dm.store == NULL) {
		log_error(NULL, "event=dmarc-store-failed error=%s", error);
		free(error);
	}
	free(path);
	return dm.store;
}

static int64_t
interval_s(const struct child_ctx *ctx)
{
	uint64_t s = ctx->cfg->dmarc_report_interval_ms / 1000;

	return s > 0 ? (int64_t)s : 1;
}

void
queue_dmarc_record(struct child_ctx *ctx, struct ipc_msg *msg)
{
	struct dmarc_agg_record rec;
	struct dmarc_store *st;
	const char *why;
	char *error = NULL;
	int64_t now = (int64_t)(clock_wall_ms() / 1000), len = interval_s(ctx);
	int64_t begin = now - now % len;

	if (!ctx->cfg->dmarc_reports)
		return; /* turned off since front sent it */
	if (dmarc_agg_record_get(msg->data, msg->len, &rec, &why) < 0) {
		log_warn(NULL, "event=bad-dmarc-record error=%s", why);
		return;
	}
	if ((st = store_get(ctx)) == NULL)
		return;
	switch (dmarc_store_add(st, &rec, begin, begin + len, &error)) {
	case -1:
		log_error(NULL, "event=dmarc-store-failed error=%s", error);
		free(error);
		break;
	case 1:
		/* Over a cap: said once, then every thousandth time. */
		if (dmarc_store_dropped(st) > dm.dropped_logged) {
			log_warn(NULL,
			         "event=dmarc-record-dropped domain=%s "
			         "reason=limit dropped=%" PRIu64,
			         rec.policy.domain, dmarc_store_dropped(st));
			dm.dropped_logged = dmarc_store_dropped(st) + 999;
		}
		break;
	default:
		break;
	}
}

/* ------------------------------------------------- the worker's part */

/* The same organizational domain (§7.1 needs no verification then). */
static bool
same_org(const struct psl *psl, const char *a, const char *b)
{
	char oa[PSL_NAME_MAX + 1], ob[PSL_NAME_MAX + 1];

	if (strcmp(a, b) == 0)
		return true;
	if (psl == NULL || psl_registrable_domain(psl, a, oa, sizeof(oa)) < 0 ||
	    psl_registrable_domain(psl, b, ob, sizeof(ob)) < 0)
		return false;
	return strcmp(oa, ob) == 0;
}

/* §7.1: the rua domain agrees to get policy's reports: NULL, or why not
 * (with *later when DNS could not say now). */
static const char *
verify_destination(const struct run *run, const char *policy,
                   const char *domain, bool *later)
{
	struct ma_dns_answer ans;
	char name[DMARC_DOMAIN_MAX + 1];
	const char *why = NULL;

	*later = false;
	if (dmarc_agg_auth_name(policy, domain, name, sizeof(name)) < 0)
		return "unauthorized";
	memset(&ans, 0, sizeof(ans));
	if (run->dns.lookup(run->dns.arg, name, MA_DNS_TXT, &ans) < 0 ||
	    ans.status == MA_DNS_TEMPFAIL) {
		*later = true;
		why = "dns";
	} else if (ans.status != MA_DNS_OK ||
	           !dmarc_agg_auth_ok(ans.rr, ans.count)) {
		why = "unauthorized";
	}
	ma_dns_answer_clear(&ans);
	return why;
}

static void
build_report(struct run *run, const struct psl *psl, size_t ri)
{
	struct report_out *r = &run->reports[ri];
	const struct dmarc_store_report *rep = &r->rep;
	struct dmarc_agg_meta meta = {
	    .org_name = run->hostname,
	    .email = run->from,
	    .report_id = r->report_id,
	    .begin = r->period.begin,
	    .end = r->period.end - 1,
	};
	struct buf xml, gz;
	const char *fail = NULL;

	buf_init(&xml, DMARC_AGG_XML_MAX);
	buf_init(&gz, GZIP_MAX);
	if (dmarc_agg_xml(&meta, &rep->policy, rep->rows, rep->nrows, &xml) <
	        0 ||
	    dmarc_agg_gzip(xml.data, xml.len, &gz) < 0)
		fail = "too-big";
	for (size_t i = 0; i < r->nrua; i++) {
		const struct rua_out *o = &r->rua[i];
		char domain[DMARC_DOMAIN_MAX + 1], msgid[DMARC_DOMAIN_MAX + 96];
		char address[DMARC_AGG_ADDRESS_MAX + 1];
		bool seen = false;
		struct dmarc_agg_mail m = {
		    .from = run->from,
		    .to = address,
		    .hostname = run->hostname,
		    .domain = rep->policy.domain,
		    .report_id = r->report_id,
		    .message_id = msgid,
		    .begin = meta.begin,
		    .end = meta.end,
		    .date = time(NULL),
		};
		const char *why;
		bool later;
		struct buf msg;

		if (fail != NULL) {
			report_batch_skip(run->batch, ri, o->uri, false, fail);
			continue;
		}
		if (dmarc_agg_mailto(o->uri, address, domain) < 0) {
			report_batch_skip(run->batch, ri, o->uri, false,
			                  "bad-uri");
			continue;
		}
		for (size_t j = 0; j < i; j++) {
			char other[DMARC_AGG_ADDRESS_MAX + 1];
			char od[DMARC_DOMAIN_MAX + 1];

			if (dmarc_agg_mailto(r->rua[j].uri, other, od) == 0 &&
			    strcmp(other, address) == 0)
				seen = true;
		}
		if (seen) {
			report_batch_skip(run->batch, ri, address, false,
			                  "duplicate");
			continue;
		}
		if (!same_org(psl, rep->policy.domain, domain) &&
		    (why = verify_destination(run, rep->policy.domain, domain,
		                              &later)) != NULL) {
			report_batch_skip(run->batch, ri, address, later, why);
			continue;
		}
		snprintf(msgid, sizeof(msgid), "<%s.%zu@%s>", r->report_id, i,
		         run->hostname);
		buf_init(&msg, MESSAGE_MAX);
		if (dmarc_agg_message(&m, gz.data, gz.len, &msg) < 0 ||
		    (o->size_max > 0 && msg.len > o->size_max)) {
			buf_free(&msg);
			report_batch_skip(run->batch, ri, address, false,
			                  "too-big");
			continue;
		}
		report_batch_add(run->batch, ri, address, &msg);
	}
	buf_free(&xml);
	buf_free(&gz);
}

static void
run_job(void *arg)
{
	struct run *run = arg;
	char *error = NULL;
	/* Read each run: a run is rare, the list small enough. */
	struct psl *psl = psl_load(PSL_DEFAULT_PATH, &error);

	free(error); /* without it, every other domain is verified */
	for (size_t i = 0; i < run->n; i++)
		build_report(run, psl, i);
	psl_free(&psl);
}

/* ---------------------------------------------------- back on the loop */

static void
run_free(struct run **runp)
{
	struct run *run = *runp;

	if (run == NULL)
		return;
	for (size_t i = 0; i < run->n; i++)
		dmarc_store_report_clear(&run->reports[i].rep);
	report_batch_free(&run->batch);
	free(run->reports);
	free(run->hostname);
	free(run->from);
	free(run);
	*runp = NULL;
}

/* When the next period ends, a little after. */
static uint64_t
next_run_delay(const struct child_ctx *ctx)
{
	uint64_t len = (uint64_t)interval_s(ctx) * 1000, now = clock_wall_ms();

	return (now / len + 1) * len + AFTER_END_MS - now;
}

static void
batch_log(struct child_ctx *ctx, void *owner, const struct report_msg *m,
          const char *queue_id)
{
	struct run *run = owner;
	const struct report_out *r = &run->reports[m->report];

	(void)ctx;
	if (m->state == REPORT_SENT)
		log_info(queue_id,
		         "event=dmarc-report-sent domain=%s rua=%s records=%zu "
		         "messages=%" PRIu64 " report_id=%s begin=%" PRId64
		         " end=%" PRId64,
		         r->period.domain, m->address, r->rep.nrows,
		         r->rep.messages, r->report_id, r->period.begin,
		         r->period.end - 1);
	else
		log_notice(NULL,
		           "event=dmarc-report-not-sent domain=%s rua=%s "
		           "reason=%s retry=%s report_id=%s",
		           r->period.domain, m->address, m->why,
		           m->state == REPORT_LATER ? "yes" : "no",
		           r->report_id);
}

/* The rows go when a report went out, or when nothing failed only for
 * now; else they wait for the next run. */
static void
batch_report_done(struct child_ctx *ctx, void *owner, size_t i, bool sent,
                  bool later)
{
	struct run *run = owner;
	const struct report_out *r = &run->reports[i];
	char *error = NULL;

	(void)ctx;
	if (later && !sent) {
		log_notice(NULL,
		           "event=dmarc-report-deferred domain=%s "
		           "report_id=%s",
		           r->period.domain, r->report_id);
		return;
	}
	if (dm.store != NULL &&
	    dmarc_store_delete(dm.store, r->period.domain, r->period.begin,
	                       &error) < 0) {
		log_error(NULL, "event=dmarc-store-failed error=%s", error);
		free(error);
	}
}

/* Every report finished: the run is over; the next at the next period. */
static void
batch_done(struct child_ctx *ctx, void *owner)
{
	struct run *run = owner;

	if (dm.run == run)
		dm.run = NULL;
	run_free(&run);
	if (!ctx->stopping)
		schedule(ctx, next_run_delay(ctx));
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

	if (ctx->stopping || dm.run != run) {
		if (dm.run == run)
			dm.run = NULL;
		run_free(&run);
		return;
	}
	report_batch_send(ctx, run->batch);
}

static void
run_start(struct child_ctx *ctx)
{
	struct queue *q = ctx->role;
	struct dmarc_store_period *due = NULL;
	struct dmarc_store *st;
	struct run *run;
	char *error = NULL;
	size_t n = 0, pruned = 0, rows = 0;
	int64_t now = (int64_t)(clock_wall_ms() / 1000);

	if (!ctx->cfg->dmarc_reports || (st = store_get(ctx)) == NULL ||
	    q->pool == NULL) {
		schedule(ctx, next_run_delay(ctx));
		return;
	}
	if (child_peer(ctx, "lookup") == NULL) {
		schedule(ctx, RETRY_MS);
		return;
	}
	if (dmarc_store_prune(st, now - KEEP_S, &pruned, &error) < 0) {
		log_error(NULL, "event=dmarc-store-failed error=%s", error);
		xfree(&error);
	} else if (pruned > 0) {
		log_warn(NULL, "event=dmarc-reports-expired periods=%zu",
		         pruned);
	}
	if (dmarc_store_due(st, now, RUN_REPORTS_MAX, &due, &n, &error) < 0) {
		log_error(NULL, "event=dmarc-store-failed error=%s", error);
		free(error);
		schedule(ctx, next_run_delay(ctx));
		return;
	}
	if (n == 0) {
		schedule(ctx, next_run_delay(ctx));
		return;
	}
	run = xcalloc(1, sizeof(*run));
	run->ctx = ctx;
	run->hostname = xstrdup(ctx->cfg->hostname);
	run->from = ctx->cfg->dmarc_report_from[0] != '\0'
	                ? xstrdup(ctx->cfg->dmarc_report_from)
	                : xasprintf("postmaster@%s", ctx->cfg->hostname);
	run->reports = xcalloc(n, sizeof(*run->reports));
	run->batch = report_batch_new(&batch_ops, run, run->from, n);
	mailauth_dns_init(&run->dns, q->resolver);
	for (size_t i = 0; i < n && rows < RUN_ROWS_MAX; i++) {
		struct report_out *r = &run->reports[run->n];
		int rc = dmarc_store_report(st, due[i].domain, due[i].begin,
		                            &r->rep, &error);

		if (rc < 0) {
			log_error(NULL, "event=dmarc-store-failed error=%s",
			          error);
			xfree(&error);
			continue;
		}
		if (rc == 0 && (r->rep.nrows == 0 || r->rep.nrua == 0)) {
			dmarc_store_report_clear(&r->rep);
			rc = 1;
		}
		if (rc == 1) {
			/* Nothing to say: the period goes. */
			if (dmarc_store_delete(st, due[i].domain, due[i].begin,
			                       &error) < 0) {
				log_error(NULL,
				          "event=dmarc-store-failed error=%s",
				          error);
				xfree(&error);
			}
			continue;
		}
		r->period = due[i];
		rows += r->rep.nrows;
		snprintf(r->report_id, sizeof(r->report_id),
		         "%" PRId64 ".%08x%08x", r->period.begin, arc4random(),
		         arc4random());
		r->nrua = r->rep.nrua;
		for (size_t j = 0; j < r->nrua; j++) {
			snprintf(r->rua[j].uri, sizeof(r->rua[j].uri), "%s",
			         r->rep.rua[j].uri);
			r->rua[j].size_max = r->rep.rua[j].size_max;
		}
		run->n++;
	}
	free(due);
	if (run->n == 0) {
		run_free(&run);
		schedule(ctx, next_run_delay(ctx));
		return;
	}
	log_info(NULL, "event=dmarc-reports-due reports=%zu", run->n);
	run->batch->nreports = run->n;
	dm.run = run;
	workpool_submit(q->pool, NULL, run_job, run_done, run);
	/* Should lookup never answer. */
	schedule(ctx, RUN_TIMEOUT_MS);
}

static void
timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct child_ctx *ctx = arg;

	(void)fd;
	(void)what;
	if (ctx->stopping)
		return;
	if (dm.run != NULL) {
		/* Still building, or waiting for the outbox (which gives
		 * up on a silent lookup by itself). */
		schedule(ctx, RUN_TIMEOUT_MS);
		return;
	}
	run_start(ctx);
}

static void
schedule(struct child_ctx *ctx, uint64_t delay_ms)
{
	queue_timer_set(&dm.timer, ctx, timer_cb, delay_ms);
}

void
queue_dmarc_start(struct child_ctx *ctx)
{
	schedule(ctx, START_DELAY_MS);
}

void
queue_dmarc_reload(struct child_ctx *ctx)
{
	/* The interval may have changed: the next run at its new end. */
	if (dm.run == NULL)
		schedule(ctx, next_run_delay(ctx));
}

void
queue_dmarc_stop(struct child_ctx *ctx)
{
	(void)ctx;
	if (dm.timer != NULL)
		event_free(dm.timer);
	dm.timer = NULL;
	/* A run on a worker keeps its memory until exit; it never touches
	 * the store. */
	dmarc_store_close(&dm.store);
}
