/* front's checks of mail arriving on the MX listener: SPF for the MAIL
 * FROM (or HELO) identity and every DKIM signature, run on a worker thread
 * with blocking DNS once the message is in its spool file, before the
 * 250. The results become Authentication-Results (RFC 8601) and
 * Received-SPF header fields, which queue puts before the message; each
 * From domain whose DMARC record asks for aggregate reports becomes a
 * record that queue keeps for them (IPC_MSG_DMARC_RECORD).
 * SECURITY: the message, the envelope and every DNS answer are untrusted;
 * src/mailauth parses them with its bounds. The spool file is read through
 * a duplicate of the descriptor queue handed over, mapped read-only. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/dns.h"
#include "core/log.h"
#include "core/workpool.h"
#include "core/xmalloc.h"
#include "mailauth/arc.h"
#include "mailauth/dkim.h"
#include "mailauth/dmarc.h"
#include "mailauth/dmarc_agg.h"
#include "mailauth/dmarc_report.h"
#include "mailauth/dnsif.h"
#include "mailauth/psl.h"
#include "mailauth/spf.h"
#include "roles/front_auth.h"
#include "roles/front_conn.h"
#include "roles/mailauth_dns.h"

/* Header fields the checks may add, in all. */
#define AUTH_HEADERS_MAX (16 * 1024)
/* A worker keeps the buffer it reads messages into up to this size. */
#define AUTH_MSG_KEEP (1024 * 1024)
/* Debian's publicsuffix package: organizational domains for DMARC. */
#define PUBLIC_SUFFIX_LIST "/usr/share/publicsuffix/public_suffix_list.dat"

struct auth_job {
	struct front *f;
	struct front_conn *c; /* checked against the live list when done */
	char conn_id[20];
	front_auth_done_fn *done;
	int fd;
	char *ip, *helo, *mail_from, *hostname;
	struct buf headers;
	bool enforce; /* dmarc_enforce */
	unsigned pct_sample;
	enum front_auth_verdict verdict;
	char reason[128];
	/* For the log line. */
	enum spf_result spf;
	char dkim[32];
	char dmarc[16];
	char arc[16];
	char **trusted; /* arc_trusted_sealers, NULL-terminated copy */
	char *authres;  /* the Authentication-Results value */
	int arc_chain;  /* see front_auth_outcome */
	/* For queue's aggregate reports: one per From domain with a rua. */
	struct dmarc_agg_record *dmarc_recs;
	size_t ndmarc_recs;
};

static void
job_free(struct auth_job *j)
{
	if (j->fd >= 0)
		close(j->fd);
	free(j->ip);
	free(j->helo);
	free(j->mail_from);
	free(j->hostname);
	for (size_t i = 0; j->trusted != NULL && j->trusted[i] != NULL; i++)
		free(j->trusted[i]);
	free(j->trusted);
	free(j->authres);
	buf_free(&j->headers);
	free(j->dmarc_recs);
	free(j);
}

/* "Field: a;\r\n\tb;\r\n\tc\r\n": RFC 8601 fields get long; fold at the
 * resinfo separators. */
static void
append_folded(struct buf *out, const char *name, const char *value)
{
	buf_append_str(out, name);
	buf_append_str(out, ": ");
	for (const char *p = value; *p != '\0'; p++) {
		if (p[0] == ';' && p[1] == ' ') {
			buf_append_str(out, ";\r\n\t");
			p++;
		} else {
			buf_append_byte(out, (uint8_t)*p);
		}
	}
	buf_append_str(out, "\r\n");
}

/* DMARC on the SPF and DKIM results: a failing From: domain's policy
 * becomes the verdict when enforcing. */
/* A trusted forwarder's ARC set saying dmarc=pass (its own check,
 * before it changed the message). */
static bool
arc_vouches(const struct auth_job *j, const struct arc_verify_result *arc)
{
	const struct arc_set_result *set;
	char result[32];

	if (arc == NULL || j->trusted == NULL || j->trusted[0] == NULL)
		return false;
	set = arc_trusted_set(arc, (const char *const *)j->trusted);
	return set != NULL && set->aar != NULL &&
	       arc_ar_method_result(set->aar, "dmarc", result,
	                            sizeof(result)) == 0 &&
	       strcmp(result, "pass") == 0;
}

/* The aggregate report records of o: the disposition is what the
 * verdict applied to the message; where that is milder than the policy
 * evaluated, the reason is the trusted ARC sealer or our local policy
 * (dmarc_enforce off). */
static void
auth_dmarc_records(struct auth_job *j, const struct dmarc_outcome *o,
                   bool arc_ok)
{
	enum dmarc_policy applied =
	    j->verdict == FRONT_AUTH_REJECT ? DMARC_POLICY_REJECT
	    : j->verdict == FRONT_AUTH_JUNK ? DMARC_POLICY_QUARANTINE
	                                    : DMARC_POLICY_NONE;
	struct dmarc_agg_record rec;

	for (size_t i = 0; i < o->ndomains && i < DMARC_FROM_DOMAINS_MAX; i++) {
		const struct dmarc_domain_result *d = &o->domains[i];
		unsigned int reasons = 0;

		if (d->report.disposition > applied)
			reasons = arc_ok ? DMARC_REPORT_REASON_TRUSTED_FORWARDER
			                 : DMARC_REPORT_REASON_LOCAL_POLICY;
		if (!dmarc_agg_record_from(d, applied, reasons, &rec))
			continue;
		if (j->dmarc_recs == NULL)
			j->dmarc_recs = xcalloc(DMARC_FROM_DOMAINS_MAX,
			                        sizeof(*j->dmarc_recs));
		j->dmarc_recs[j->ndmarc_recs++] = rec;
	}
}

static void
auth_dmarc(struct auth_job *j, const struct ma_dns *dns, const void *msg,
           size_t len, const struct spf_outcome *spf,
           const struct dkim_verify_result *dk,
           const struct arc_verify_result *arc, struct buf *ar)
{
	struct dmarc_request req = {
	    .msg = msg,
	    .len = len,
	    .spf = spf,
	    .dkim = dk,
	    .psl = j->f->psl,
	    .client_ip = j->ip,
	    .pct_sample = j->pct_sample,
	};
	struct dmarc_outcome *o;
	const struct dmarc_domain_result *d;
	bool arc_ok = false;

	snprintf(j->dmarc, sizeof(j->dmarc), "none");
	if (j->f->psl == NULL || msg == NULL)
		return;
	o = dmarc_evaluate(dns, &req);
	buf_append_str(ar, "; ");
	dmarc_auth_results(o, ar);
	snprintf(j->dmarc, sizeof(j->dmarc), "%s",
	         dmarc_result_name(o->result));
	if (o->result == DMARC_FAIL && arc_vouches(j, arc)) {
		arc_ok = true;
		buf_append_str(ar,
		               " (overridden: trusted ARC sealer saw pass)");
		snprintf(j->dmarc, sizeof(j->dmarc), "fail-arc-ok");
	} else if (j->enforce && o->result == DMARC_FAIL && o->ndomains > 0) {
		d = &o->domains[o->decisive];
		if (o->disposition == DMARC_POLICY_REJECT) {
			j->verdict = FRONT_AUTH_REJECT;
			snprintf(j->reason, sizeof(j->reason),
			         "Message rejected by the DMARC policy of %s",
			         d->report.header_from);
		} else if (o->disposition == DMARC_POLICY_QUARANTINE) {
			j->verdict = FRONT_AUTH_JUNK;
		}
	}
	auth_dmarc_records(j, o, arc_ok);
	dmarc_outcome_free(&o);
}

/* The message of fd, read into a buffer each worker keeps; NULL when it
 * cannot be read or is empty. mmap and munmap per message made every
 * munmap a TLB shootdown across front's threads (5 % of its CPU). */
static const uint8_t *
auth_read_message(int fd, size_t *len_r)
{
	static __thread struct buf b;
	struct stat sb;
	size_t n = 0;

	if (b.data == NULL && b.max == 0)
		buf_init(&b, 0);
	if (b.cap > AUTH_MSG_KEEP)
		buf_free(&b); /* the last one was big */
	buf_reset(&b);
	if (fstat(fd, &sb) < 0 || sb.st_size <= 0 ||
	    buf_reserve(&b, (size_t)sb.st_size) < 0)
		return NULL;
	while (n < (size_t)sb.st_size) {
		ssize_t r =
		    pread(fd, b.data + n, (size_t)sb.st_size - n, (off_t)n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	if (n == 0)
		return NULL;
	b.len = n;
	*len_r = n;
	return b.data;
}

static void
auth_job_run(void *arg)
{
	struct auth_job *j = arg;
	struct dkim_verify_result dk;
	struct spf_request req = {0};
	struct spf_outcome *spf = NULL;
	struct ma_dns dns;
	struct buf ar, rs;
	const uint8_t *msg;
	struct arc_verify_result *arc = NULL;
	size_t len = 0;
	bool dk_ok = false;

	mailauth_dns_init(&dns, j->f->resolver);
	buf_init(&ar, AUTH_HEADERS_MAX);
	buf_init(&rs, AUTH_HEADERS_MAX);
	buf_printf(&ar, "%s; ", j->hostname);

	if (spf_ip_parse(j->ip, &req.ip) == 0) {
		req.identity = SPF_IDENTITY_MAILFROM;
		req.helo = j->helo[0] != '\0' ? j->helo : NULL;
		req.mail_from = j->mail_from;
		req.receiver = j->hostname;
		spf = spf_check_host(&dns, &req);
		j->spf = spf->result;
		spf_auth_results(spf, &ar);
		spf_received_spf(spf, &rs);
	} else {
		j->spf = SPF_NONE;
		buf_append_str(&ar, "spf=none");
	}

	memset(&dk, 0, sizeof(dk));
	msg = auth_read_message(j->fd, &len);
	buf_append_str(&ar, "; ");
	if (msg != NULL &&
	    dkim_verify(&dns, msg, len, time(NULL), NULL, &dk) == 0) {
		dk_ok = true;
		dkim_ar_append_all(&ar, &dk);
		snprintf(j->dkim, sizeof(j->dkim), "%s",
		         dk.count == 0 ? "none"
		                       : dkim_result_str(dk.sig[0].result));
	} else {
		buf_append_str(&ar, "dkim=temperror");
		snprintf(j->dkim, sizeof(j->dkim), "temperror");
	}
	if (msg != NULL)
		arc_verify(&dns, msg, len, time(NULL), NULL, &arc);
	auth_dmarc(j, &dns, msg, len, spf, dk_ok ? &dk : NULL, arc, &ar);
	if (arc != NULL) {
		buf_append_str(&ar, "; ");
		arc_ar_append(&ar, arc, j->ip);
		snprintf(j->arc, sizeof(j->arc), "%s",
		         arc_status_str(arc->status));
		j->arc_chain = arc->ended || arc->count >= ARC_INSTANCE_MAX
		                   ? -1
		                   : (int)arc->status;
		arc_verify_result_free(&arc);
	} else {
		snprintf(j->arc, sizeof(j->arc), "none");
		j->arc_chain = -1; /* not read: do not seal */
	}
	spf_outcome_free(&spf);

	if (buf_cstr(&ar) != NULL) {
		append_folded(&j->headers, "Authentication-Results",
		              (const char *)ar.data);
		j->authres = xstrdup((const char *)ar.data);
	}
	if (rs.len > 0 && buf_cstr(&rs) != NULL)
		append_folded(&j->headers, "Received-SPF",
		              (const char *)rs.data);
	buf_free(&ar);
	buf_free(&rs);
}

/* The report records to queue, which keeps them (front opens no files).
 * No reply: a record lost with the link is one message less in a
 * report. */
static void
send_dmarc_records(struct auth_job *j)
{
	struct ipc_peer *queue = child_peer(j->f->ctx, "queue");
	struct buf b;

	if (queue == NULL || j->ndmarc_recs == 0 ||
	    !j->f->ctx->cfg->dmarc_reports)
		return;
	buf_init(&b, 0);
	for (size_t i = 0; i < j->ndmarc_recs; i++) {
		buf_reset(&b);
		if (dmarc_agg_record_put(&b, &j->dmarc_recs[i]) == 0)
			ipc_send(queue, IPC_MSG_DMARC_RECORD, 0, -1, b.data,
			         b.len);
	}
	buf_free(&b);
}

static void
auth_job_done(void *arg)
{
	struct auth_job *j = arg;
	struct front_conn *c;

	for (c = j->f->conns; c != NULL; c = c->next)
		if (c == j->c && strcmp(c->id, j->conn_id) == 0)
			break;
	if (c != NULL) {
		log_info(c->id,
		         "event=mail-auth spf=%s dkim=%s dmarc=%s arc=%s "
		         "action=%s",
		         spf_result_name(j->spf), j->dkim, j->dmarc, j->arc,
		         j->verdict == FRONT_AUTH_REJECT ? "reject"
		         : j->verdict == FRONT_AUTH_JUNK ? "junk"
		                                         : "accept");
		struct front_auth_outcome o = {
		    .headers = buf_cstr(&j->headers) != NULL
		                   ? (const char *)j->headers.data
		                   : "",
		    .verdict = j->verdict,
		    .reason = j->reason,
		    .authres = j->authres != NULL ? j->authres : "",
		    .arc_chain = j->authres != NULL ? j->arc_chain : -1,
		};

		send_dmarc_records(j);
		j->done(c, &o);
	}
	job_free(j);
}

bool
front_auth_wanted(const struct front_conn *c)
{
	return c->service == SERVICE_SMTP && c->front->resolver != NULL &&
	       c->front->pool != NULL;
}

void
front_auth_check(struct front_conn *c, int spool_fd, const char *helo,
                 const char *mail_from, front_auth_done_fn *done)
{
	struct auth_job *j = xcalloc(1, sizeof(*j));

	j->f = c->front;
	j->c = c;
	snprintf(j->conn_id, sizeof(j->conn_id), "%s", c->id);
	j->done = done;
	j->fd = dup(spool_fd);
	j->ip = xstrdup(c->ip);
	j->helo = xstrdup(helo != NULL ? helo : "");
	j->mail_from = xstrdup(mail_from != NULL ? mail_from : "");
	j->hostname = xstrdup(c->front->ctx->cfg->hostname);
	j->enforce = c->front->ctx->cfg->dmarc_enforce;
	{
		const struct config *cfg = c->front->ctx->cfg;

		j->trusted =
		    xcalloc(cfg->narc_trusted_sealers + 1, sizeof(*j->trusted));
		for (size_t i = 0; i < cfg->narc_trusted_sealers; i++)
			j->trusted[i] = xstrdup(cfg->arc_trusted_sealers[i]);
	}
	j->pct_sample = arc4random_uniform(100);
	buf_init(&j->headers, AUTH_HEADERS_MAX);
	if (j->fd < 0) {
		struct front_auth_outcome o = {
		    .headers = "",
		    .verdict = FRONT_AUTH_ACCEPT,
		    .reason = "",
		    .authres = "",
		    .arc_chain = -1,
		};

		log_error(c->id, "event=mail-auth-failed error=%s",
		          strerror(errno));
		done(c, &o);
		job_free(j);
		return;
	}
	workpool_submit(c->front->pool, NULL, auth_job_run, auth_job_done, j);
}

int
front_auth_init(struct front *f, char **error_r)
{
	const struct config *cfg = f->ctx->cfg;

	char *error = NULL;

	f->resolver = dns_resolver_new(f->ctx->base, cfg->resolver,
	                               cfg->dns_trust_anchor, error_r);
	if (f->resolver == NULL)
		return -1;
	/* Without the list DMARC cannot find organizational domains: go on
	 * without DMARC rather than without mail. */
	if ((f->psl = psl_load(PUBLIC_SUFFIX_LIST, &error)) == NULL) {
		log_warn(NULL, "event=dmarc-disabled error=%s", error);
		free(error);
	}
	return 0;
}

void
front_auth_start(struct front *f)
{
	f->pool = workpool_new(f->ctx->base, FRONT_AUTH_THREADS);
}
