/* front's checks of mail arriving on the MX listener: SPF for the MAIL
 * FROM (or HELO) identity and every DKIM signature, run on a worker thread
 * with blocking DNS once the message is in its spool file, before the
 * 250. The results become Authentication-Results (RFC 8601) and
 * Received-SPF header fields, which queue puts before the message.
 * SECURITY: the message, the envelope and every DNS answer are untrusted;
 * src/mailauth parses them with its bounds. The spool file is read through
 * a duplicate of the descriptor queue handed over, mapped read-only. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/dns.h"
#include "core/log.h"
#include "core/workpool.h"
#include "core/xmalloc.h"
#include "mailauth/dkim.h"
#include "mailauth/dnsif.h"
#include "mailauth/spf.h"
#include "roles/front_auth.h"
#include "roles/front_conn.h"
#include "roles/mailauth_dns.h"

/* Header fields the checks may add, in all. */
#define AUTH_HEADERS_MAX (16 * 1024)

struct auth_job {
	struct front *f;
	struct front_conn *c; /* checked against the live list when done */
	char conn_id[20];
	front_auth_done_fn *done;
	int fd;
	char *ip, *helo, *mail_from, *hostname;
	struct buf headers;
	/* For the log line. */
	enum spf_result spf;
	char dkim[32];
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
	buf_free(&j->headers);
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

static void
auth_job_run(void *arg)
{
	struct auth_job *j = arg;
	struct dkim_verify_result dk;
	struct spf_request req = {0};
	struct spf_outcome *spf;
	struct ma_dns dns;
	struct buf ar, rs;
	struct stat sb;
	void *map = MAP_FAILED;
	size_t len = 0;

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
		spf_outcome_free(&spf);
	} else {
		j->spf = SPF_NONE;
		buf_append_str(&ar, "spf=none");
	}

	memset(&dk, 0, sizeof(dk));
	if (fstat(j->fd, &sb) == 0 && sb.st_size > 0) {
		len = (size_t)sb.st_size;
		map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, j->fd, 0);
	}
	buf_append_str(&ar, "; ");
	if (map != MAP_FAILED &&
	    dkim_verify(&dns, map, len, time(NULL), NULL, &dk) == 0) {
		dkim_ar_append_all(&ar, &dk);
		snprintf(j->dkim, sizeof(j->dkim), "%s",
		         dk.count == 0 ? "none"
		                       : dkim_result_str(dk.sig[0].result));
	} else {
		buf_append_str(&ar, "dkim=temperror");
		snprintf(j->dkim, sizeof(j->dkim), "temperror");
	}
	if (map != MAP_FAILED)
		munmap(map, len);

	if (buf_cstr(&ar) != NULL)
		append_folded(&j->headers, "Authentication-Results",
		              (const char *)ar.data);
	if (rs.len > 0 && buf_cstr(&rs) != NULL)
		append_folded(&j->headers, "Received-SPF",
		              (const char *)rs.data);
	buf_free(&ar);
	buf_free(&rs);
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
		log_info(c->id, "event=mail-auth spf=%s dkim=%s",
		         spf_result_name(j->spf), j->dkim);
		j->done(c, buf_cstr(&j->headers) != NULL
		               ? (const char *)j->headers.data
		               : "");
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
	buf_init(&j->headers, AUTH_HEADERS_MAX);
	if (j->fd < 0) {
		log_error(c->id, "event=mail-auth-failed error=%s",
		          strerror(errno));
		done(c, "");
		job_free(j);
		return;
	}
	workpool_submit(c->front->pool, NULL, auth_job_run, auth_job_done, j);
}

int
front_auth_init(struct front *f, char **error_r)
{
	const struct config *cfg = f->ctx->cfg;

	f->resolver = dns_resolver_new(f->ctx->base, cfg->resolver,
	                               cfg->dns_trust_anchor, error_r);
	return f->resolver != NULL ? 0 : -1;
}

void
front_auth_start(struct front *f)
{
	f->pool = workpool_new(f->ctx->base, FRONT_AUTH_THREADS);
}
