/* queue, outbound: group a message's due non-local recipients by
 * destination (a relay, or one domain's MX hosts, as the routes say), and
 * run each group as one job on the worker pool (queue_out.c) within the
 * concurrency limits; the results come back on the loop.
 * SECURITY: the relay password is read from its file for each job and
 * wiped when the job is freed; the TLS contexts that verify relays are
 * kept per relay and rebuilt after a reload. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/dns.h"
#include "core/log.h"
#include "core/tls.h"
#include "core/workpool.h"
#include "core/xmalloc.h"
#include "mail/address.h"
#include "queue/dane.h"
#include "queue/mtasts.h"
#include "queue/route.h"
#include "queue/tlsrpt.h"
#include "roles/mailauth_dns.h"
#include "roles/queue_int.h"

#define PASSWORD_MAX 1024

struct job_ctx {
	struct child_ctx *ctx;
	struct out_job *job;
	unsigned *attempts;
	uint64_t created_ms;
	char dest[sizeof(((struct destination *)0)->key)];
};

static struct destination *
dest_get(struct queue *q, const char *key, bool create)
{
	for (size_t i = 0; i < q->ndests; i++)
		if (strcmp(q->dests[i].key, key) == 0)
			return &q->dests[i];
	if (!create)
		return NULL;
	q->dests = xreallocarray(q->dests, q->ndests + 1, sizeof(*q->dests));
	memset(&q->dests[q->ndests], 0, sizeof(*q->dests));
	snprintf(q->dests[q->ndests].key, sizeof(q->dests[0].key), "%s", key);
	return &q->dests[q->ndests++];
}

static void
dest_release(struct queue *q, const char *key)
{
	struct destination *d = dest_get(q, key, false);

	if (d == NULL)
		return;
	if (d->active > 0)
		d->active--;
	if (d->active == 0)
		*d = q->dests[--q->ndests];
}

/* The first line of the relay's password file. */
static char *
read_password(const char *path, char **error_r)
{
	char buf[PASSWORD_MAX + 2];
	FILE *f = fopen(path, "re");
	size_t len;

	if (f == NULL) {
		*error_r = xasprintf("%s: %s", path, strerror(errno));
		return NULL;
	}
	if (fgets(buf, sizeof(buf), f) == NULL) {
		fclose(f);
		*error_r = xasprintf("%s: empty", path);
		return NULL;
	}
	fclose(f);
	len = strcspn(buf, "\r\n");
	buf[len] = '\0';
	if (len == 0 || len > PASSWORD_MAX) {
		explicit_bzero(buf, sizeof(buf));
		*error_r = xasprintf("%s: no password on the first line", path);
		return NULL;
	}
	{
		char *p = xstrdup(buf);

		explicit_bzero(buf, sizeof(buf));
		return p;
	}
}

/* The relay's TLS context, made once per relay (and again after a
 * reload, which clears them). */
static SSL_CTX *
relay_ctx(struct queue *q, const struct config_relay *r, char **error_r)
{
	SSL_CTX *ctx;

	for (size_t i = 0; i < q->nrelay_ctx; i++)
		if (strcmp(q->relay_ctx[i].name, r->name) == 0)
			return q->relay_ctx[i].ctx;
	ctx = tls_client_ctx_new(
	    r->tls_verify, r->ca_file[0] != '\0' ? r->ca_file : NULL, error_r);
	if (ctx == NULL)
		return NULL;
	q->relay_ctx = xreallocarray(q->relay_ctx, q->nrelay_ctx + 1,
	                             sizeof(*q->relay_ctx));
	q->relay_ctx[q->nrelay_ctx].name = xstrdup(r->name);
	q->relay_ctx[q->nrelay_ctx].ctx = ctx;
	q->nrelay_ctx++;
	return ctx;
}

void
queue_send_reload(struct child_ctx *ctx)
{
	struct queue *q = ctx->role;

	for (size_t i = 0; i < q->nrelay_ctx; i++) {
		free(q->relay_ctx[i].name);
		SSL_CTX_free(q->relay_ctx[i].ctx);
	}
	free(q->relay_ctx);
	q->relay_ctx = NULL;
	q->nrelay_ctx = 0;
	/* mta_sts_ca_file may have changed; jobs under way keep theirs. */
	if (q->sts_ctx != NULL) {
		const char *ca = ctx->cfg->mta_sts_ca_file;
		char *error = NULL;
		SSL_CTX *fresh =
		    tls_client_ctx_new(true, ca[0] != '\0' ? ca : NULL, &error);

		if (fresh == NULL) {
			log_error(NULL, "event=mta-sts-ca-failed error=%s",
			          error);
			free(error);
		} else {
			SSL_CTX_free(q->sts_ctx);
			q->sts_ctx = fresh;
		}
	}
}

static void
job_run(void *arg)
{
	struct job_ctx *jc = arg;

	if (!jc->job->prefailed)
		queue_out_run(jc->job);
}

static void
job_done(void *arg)
{
	struct job_ctx *jc = arg;
	struct queue *q = jc->ctx->role;

	if (q->out_active > 0)
		q->out_active--;
	dest_release(q, jc->dest);
	queue_out_done(jc->ctx, jc->job, jc->attempts, jc->created_ms);
	queue_out_job_free(&jc->job);
	free(jc->attempts);
	free(jc);
}

/* Every recipient of a job that cannot start fails for now. */
static void
job_prefail(struct out_job *job, const char *why)
{
	job->prefailed = true;
	for (size_t i = 0; i < job->nrcpts; i++) {
		job->rcpts[i].outcome = OUT_TEMPFAIL;
		snprintf(job->rcpts[i].status, sizeof(job->rcpts[i].status),
		         "4.3.5");
		job->rcpts[i].diagnostic = xstrdup(why);
	}
}

static struct out_relay *
job_relay(struct queue *q, const struct config_relay *r, char **error_r)
{
	struct out_relay *o = xcalloc(1, sizeof(*o));
	SSL_CTX *ctx = NULL;

	o->name = xstrdup(r->name);
	o->host = xstrdup(r->host);
	o->port = r->port;
	o->tls = (int)r->tls;
	o->verify = r->tls_verify;
	if (r->tls != RELAY_TLS_NONE) {
		ctx = relay_ctx(q, r, error_r);
		if (ctx == NULL)
			return o;
		SSL_CTX_up_ref(ctx);
		o->ctx = ctx;
	}
	if (r->user[0] != '\0') {
		o->password = read_password(r->password_file, error_r);
		if (o->password != NULL)
			o->user = xstrdup(r->user);
	}
	return o;
}

/* The ORCPT to pass on (RFC 3461 4.2): as the client gave it when it gave
 * one ("rfc822;bob+x2Bfoo@example.org"), else the address it used, as
 * "rfc822;" and xtext. */
static char *
orcpt_param(const char *orcpt)
{
	struct buf b;
	char *s;

	if (strchr(orcpt, ';') != NULL)
		return xstrdup(orcpt);
	buf_init(&b, 0);
	buf_append_str(&b, "rfc822;");
	for (const unsigned char *p = (const unsigned char *)orcpt; *p; p++) {
		if (*p < 33 || *p > 126 || *p == '+' || *p == '=')
			buf_printf(&b, "+%02X", *p);
		else
			buf_append_byte(&b, *p);
	}
	s = xstrndup((const char *)b.data, b.len);
	buf_free(&b);
	return s;
}

/* The envelope sender for a recipient: its SRS address when forwarded
 * with one, else the message's. */
static const char *
due_sender(const struct spool_envelope *env, const struct spool_due *due)
{
	return due->sender != NULL ? due->sender : env->mail_from;
}

static void
dispatch_group(struct child_ctx *ctx, const char *id,
               const struct spool_envelope *env, const struct spool_due *due,
               size_t n, const bool *take, const struct route_choice *ch,
               const char *domain, const char *key)
{
	struct queue *q = ctx->role;
	const struct config *cfg = ctx->cfg;
	struct out_job *job = xcalloc(1, sizeof(*job));
	struct job_ctx *jc = xcalloc(1, sizeof(*jc));
	struct destination *d;
	char *error = NULL;
	size_t k = 0;

	snprintf(job->id, sizeof(job->id), "%s", id);
	job->fd = -1;
	for (size_t i = 0; i < n; i++)
		k += take[i];
	job->rcpts = xcalloc(k, sizeof(*job->rcpts));
	jc->attempts = xcalloc(k, sizeof(*jc->attempts));
	for (size_t i = 0; i < n; i++) {
		if (!take[i])
			continue;
		job->rcpts[job->nrcpts].address = xstrdup(due[i].address);
		job->rcpts[job->nrcpts].notify = due[i].notify;
		if (due[i].orcpt != NULL)
			job->rcpts[job->nrcpts].orcpt =
			    orcpt_param(due[i].orcpt);
		jc->attempts[job->nrcpts] = due[i].attempts;
		jc->created_ms = due[i].created_ms;
		job->nrcpts++;
	}
	/* A forwarded copy carries the ARC set above the other fields, and
	 * goes out from its SRS sender (the group shares both). */
	for (size_t i = 0; i < n; i++) {
		if (!take[i])
			continue;
		if (due[i].forwarded && env->fwd_headers != NULL)
			job->headers =
			    xasprintf("%s%s", env->fwd_headers,
			              env->headers != NULL ? env->headers : "");
		job->mail_from = xstrdup(due_sender(env, &due[i]));
		break;
	}
	if (job->headers == NULL && env->headers != NULL)
		job->headers = xstrdup(env->headers);
	job->smtputf8 = env->smtputf8;
	job->ret = env->ret != NULL ? xstrdup(env->ret) : NULL;
	job->envid = env->envid != NULL ? xstrdup(env->envid) : NULL;
	job->domain = xstrdup(domain);
	job->dest_key = xstrdup(key);
	job->helo_name = xstrdup(cfg->hostname);
	job->mx_port = cfg->outbound_mx_port;
	job->ipv6 = cfg->outbound_ipv6;
	job->connect_timeout_ms = cfg->outbound_connect_timeout_ms;
	SSL_CTX_up_ref(q->mx_ctx);
	job->mx_ctx = q->mx_ctx;
	SSL_CTX_up_ref(q->sts_ctx);
	job->sts_ctx = q->sts_ctx;
	job->sts_cache = q->sts_cache;
	job->tlsrpt = q->tlsrpt;
	job->sts_port = cfg->mta_sts_port;
	if (cfg->mta_sts_ca_file[0] != '\0')
		job->sts_ca_file = xstrdup(cfg->mta_sts_ca_file);
	mailauth_dns_init(&job->dns, q->resolver);
	if (ch->relay != NULL)
		job->relay = job_relay(q, ch->relay, &error);
	if (error == NULL &&
	    (job->fd = spool_open_message(q->spool, id, &error)) < 0)
		job->fd = -1;
	if (error != NULL) {
		log_error(id, "event=outbound-setup-failed dest=%s error=%s",
		          key, error);
		job_prefail(job, error);
		free(error);
	}
	log_debug(id, "event=outbound-start dest=%s rcpts=%zu", key,
	          job->nrcpts);
	jc->ctx = ctx;
	jc->job = job;
	snprintf(jc->dest, sizeof(jc->dest), "%s", key);
	d = dest_get(q, key, true);
	d->active++;
	q->out_active++;
	queue_inflight_add(q, id)->parts++;
	workpool_submit(q->pool, NULL, job_run, job_done, jc);
}

/* The domain as DNS wants it: the A-label of an IDN (SMTPUTF8 mail may
 * carry U-labels), lower case; a domain literal as it is. */
static void
domain_ascii(const char *dom, char out[ADDRESS_DOMAIN_MAX + 1])
{
	const char *why;
	size_t len = strlen(dom);

	if (dom[0] != '[' && address_domain_normalize(dom, len, out, &why) == 0)
		return;
	if (len > ADDRESS_DOMAIN_MAX)
		len = ADDRESS_DOMAIN_MAX;
	for (size_t c = 0; c < len; c++)
		out[c] = (char)tolower((unsigned char)dom[c]);
	out[len] = '\0';
}

void
queue_out_dispatch(struct child_ctx *ctx, const char *id,
                   const struct spool_due *due, size_t n)
{
	struct queue *q = ctx->role;
	const struct config *cfg = ctx->cfg;
	struct spool_envelope env;
	char *error = NULL;
	bool *done, *take, loaded = false;

	done = xcalloc(n, sizeof(*done));
	take = xcalloc(n, sizeof(*take));
	for (size_t i = 0; i < n; i++) {
		struct route_choice ch;
		char domain[ADDRESS_DOMAIN_MAX + 1], key[300];
		const char *dom;
		struct destination *d;

		if (done[i] || due[i].local || strcmp(due[i].id, id) != 0)
			continue;
		if (!loaded) {
			if (spool_envelope(q->spool, id, &env, &error) < 0) {
				log_error(id,
				          "event=spool-read-failed "
				          "error=%s",
				          error);
				free(error);
				break;
			}
			loaded = true;
		}
		dom = route_address_domain(due[i].address);
		domain_ascii(dom, domain);
		route_choose(cfg, due_sender(&env, &due[i]), domain, &ch);
		if (ch.relay != NULL)
			snprintf(key, sizeof(key), "relay:%s", ch.relay->name);
		else
			snprintf(key, sizeof(key), "mx:%s", domain);
		/* The group: every due recipient of this message that goes
		 * the same way (for MX, the same domain) with the same
		 * sender and headers. */
		memset(take, 0, n * sizeof(*take));
		for (size_t j = i; j < n; j++) {
			struct route_choice cj;
			char dj[ADDRESS_DOMAIN_MAX + 1];

			if (done[j] || due[j].local ||
			    strcmp(due[j].id, id) != 0)
				continue;
			if (due[j].forwarded != due[i].forwarded ||
			    strcmp(due_sender(&env, &due[j]),
			           due_sender(&env, &due[i])) != 0)
				continue;
			domain_ascii(route_address_domain(due[j].address), dj);
			route_choose(cfg, due_sender(&env, &due[j]), dj, &cj);
			if (cj.relay != ch.relay ||
			    (ch.relay == NULL && strcmp(dj, domain) != 0))
				continue;
			take[j] = true;
			done[j] = true;
		}
		d = dest_get(q, key, false);
		if (q->out_active >= cfg->outbound_concurrency ||
		    (d != NULL &&
		     d->active >= cfg->outbound_destination_concurrency))
			continue; /* stays due: the next look takes it */
		dispatch_group(ctx, id, &env, due, n, take, &ch, domain, key);
	}
	if (loaded)
		spool_envelope_clear(&env);
	free(done);
	free(take);
}

int
queue_send_start(struct child_ctx *ctx, char **error_r)
{
	struct queue *q = ctx->role;
	const struct config *cfg = ctx->cfg;
	char *path;

	q->resolver = dns_resolver_new(ctx->base, cfg->resolver,
	                               cfg->dns_trust_anchor, error_r);
	if (q->resolver == NULL)
		return -1;
	/* Opportunistic TLS to MX hosts: encrypt, do not authenticate
	 * (RFC 7435); DANE and MTA-STS are what authenticate MX hosts. */
	q->mx_ctx =
	    dane_ctx_enable(tls_client_ctx_new(false, NULL, error_r), error_r);
	if (q->mx_ctx == NULL)
		return -1;
	/* MTA-STS: MX certificates checked against the WebPKI (RFC 8461
	 * 4.2), or the test CA of mta_sts_ca_file. */
	q->sts_ctx = tls_client_ctx_new(
	    true, cfg->mta_sts_ca_file[0] != '\0' ? cfg->mta_sts_ca_file : NULL,
	    error_r);
	if (q->sts_ctx == NULL)
		return -1;
	path = xasprintf("%s/queue/mta-sts.db", cfg->data_dir);
	q->sts_cache = mtasts_cache_open(path, error_r);
	free(path);
	if (q->sts_cache == NULL)
		return -1;
	path = xasprintf("%s/queue/tlsrpt.db", cfg->data_dir);
	q->tlsrpt = tlsrpt_open(path, error_r);
	free(path);
	if (q->tlsrpt == NULL)
		return -1;
	q->pool = workpool_new(ctx->base, cfg->outbound_concurrency);
	return 0;
}
