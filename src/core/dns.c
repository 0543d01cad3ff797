/* DNS: asynchronous lookups through libunbound (one context, one background
 * thread per resolver); answers are handed out on the libevent loop.
 * Blocking lookups for worker threads (dns_resolve_sync) use a second
 * context, whose answers a thread of ours collects: ub_resolve() builds and
 * tears down a whole resolver worker per call, about 2 ms of CPU (mostly
 * seeding its random generator) even for an answer from the cache, where
 * an asynchronous lookup costs some 50 us.
 * SECURITY: answers are untrusted input; every decoder checks each length
 * and escapes or rejects bytes that could be misread downstream. */
#include "core/dns.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>
#include <unistd.h>

#include <event2/event.h>
#include <unbound.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/xmalloc.h"

#define DNS_CLASS_IN 1
#define DNS_RDATA_MAX 65535    /* RDLENGTH is 16 bits */
#define DNS_NAME_WIRE_MAX 255  /* RFC 1035 3.1, root label included */
#define DNS_LABEL_MAX 63       /* larger values are pointers or unused */
#define DNS_QNAME_TEXT_MAX 254 /* 253 characters plus a trailing dot */
#define DNS_FWD_TEXT_MAX 64    /* "ADDR@PORT" for libunbound */
#define DNS_TA_FILE_MAX 65536  /* a root.key is well under 4 KiB */
/* Answers of blocking lookups kept for their TTL, at most this long, in a
 * table of this many slots (a name and type have one slot; a newer answer
 * takes it). */
#define DNS_CACHE_TTL_MAX 300
#define DNS_CACHE_SLOTS 512

struct dns_query {
	struct dns_resolver *r;
	struct dns_query *prev, *next;
	int async_id;           /* libunbound's id, 0 when it has none */
	struct event *deferred; /* failure reported from the loop */
	dns_done_fn *done;
	void *arg;
	char *name; /* for logs */
	int rrtype;
};

/* The blocking lookups' context and the thread that runs ub_process() on
 * it; started at the first such lookup. A waiter sleeps on cv until its
 * answer is in or the thread has given up (broken). */
struct dns_sync {
	struct ub_ctx *ctx;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t thread;
	int wake[2]; /* written to stop the thread */
	bool started;
	bool broken;
};

/* An answer of dns_resolve_sync for its TTL: one that libunbound has in
 * its own cache still costs the asking worker two thread switches (to the
 * thread running ub_process and back), which was most of the time of the
 * mail checks at 20 sessions. */
struct dns_cached {
	char *name; /* NULL: an empty slot */
	int rrtype;
	uint64_t expires_ms;
	struct dns_result res; /* its pointers into blob */
	void *blob;
};

struct dns_cache {
	pthread_mutex_t mu;
	struct dns_cached slot[DNS_CACHE_SLOTS];
};

/* One blocking lookup, on its caller's stack; filled by sync_on_answer. */
struct sync_wait {
	struct dns_sync *s;
	bool answered;
	int err;
	struct ub_result *res;
};

struct dns_resolver {
	struct event_base *base;
	struct ub_ctx *ctx;
	struct dns_sync sync;
	struct dns_cache *cache;
	struct event *ev_answer; /* readable: results wait in ub_fd() */
	struct dns_query *queries;
	bool dispatching; /* inside ub_process(): ctx must outlive it */
	bool dying;       /* freed by a callback during ub_process() */
	bool broken;      /* the background worker is gone */
};

static void
query_link(struct dns_resolver *r, struct dns_query *q)
{
	q->r = r;
	q->next = r->queries;
	if (r->queries != NULL)
		r->queries->prev = q;
	r->queries = q;
}

static void
query_unlink(struct dns_query *q)
{
	if (q->prev != NULL)
		q->prev->next = q->next;
	else
		q->r->queries = q->next;
	if (q->next != NULL)
		q->next->prev = q->prev;
	q->prev = q->next = NULL;
}

static void
query_free(struct dns_query *q)
{
	if (q->deferred != NULL)
		event_free(q->deferred);
	free(q->name);
	free(q);
}

/* Make sure libunbound never calls back for q. In thread mode ub_cancel()
 * only marks the query, and a marked answer is dropped in ub_process(); it
 * fails only when libunbound no longer knows the id, so no callback can come
 * either way. */
static void
query_abort(struct dns_query *q)
{
	int rc;

	if (q->async_id == 0)
		return;
	if ((rc = ub_cancel(q->r->ctx, q->async_id)) != 0)
		log_debug(NULL, "event=dns_cancel name=%s error=%s", q->name,
		          ub_strerror(rc));
	q->async_id = 0;
}

static void
query_on_deferred(evutil_socket_t fd, short what, void *arg)
{
	struct dns_query *q = arg;

	(void)fd;
	(void)what;
	query_unlink(q);
	q->done(q->arg, -1, NULL);
	query_free(q);
}

/* Report a failure from the loop, never from inside dns_lookup(): callers
 * may hold state that a synchronous callback would pull from under them. */
static void
query_defer_failure(struct dns_query *q)
{
	query_abort(q);
	if (q->deferred != NULL)
		return;
	q->deferred = event_new(q->r->base, -1, 0, query_on_deferred, q);
	if (q->deferred == NULL)
		fatal(EX_OSERR, "event=dns_fatal error=%s", "event_new failed");
	event_active(q->deferred, EV_TIMEOUT, 0);
}

static enum dns_security
result_security(const struct ub_result *res)
{
	if (res->secure)
		return DNS_SECURE;
	if (res->bogus)
		return DNS_BOGUS;
	return DNS_INSECURE;
}

static const char *
security_name(enum dns_security s)
{
	switch (s) {
	case DNS_SECURE:
		return "secure";
	case DNS_BOGUS:
		return "bogus";
	case DNS_INSECURE:
		break;
	}
	return "insecure";
}

/* Copy the pointers and lengths: libunbound's arrays are char * and int,
 * ours are uint8_t * and size_t. */
static void
result_deliver(const char *name, int rrtype, const struct ub_result *res,
               dns_done_fn *done, void *arg)
{
	const uint8_t **rdata = NULL;
	size_t *rdata_len = NULL;
	size_t n = 0;

	while (res->data != NULL && res->data[n] != NULL)
		n++;
	if (n > 0) {
		rdata = xcalloc(n, sizeof(*rdata));
		rdata_len = xcalloc(n, sizeof(*rdata_len));
	}
	for (size_t i = 0; i < n; i++) {
		rdata[i] = (const uint8_t *)res->data[i];
		rdata_len[i] = res->len[i] > 0 ? (size_t)res->len[i] : 0;
	}
	struct dns_result out = {
	    .rcode = res->rcode,
	    .nxdomain = res->nxdomain != 0,
	    .havedata = res->havedata != 0,
	    .security = result_security(res),
	    .why_bogus = res->bogus ? res->why_bogus : NULL,
	    .ttl = res->ttl > 0 ? (uint32_t)res->ttl : 0,
	    .qtype = res->qtype,
	    .count = n,
	    .rdata = rdata,
	    .rdata_len = rdata_len,
	};
	log_debug(NULL,
	          "event=dns_answer name=%s type=%d rcode=%d count=%zu "
	          "security=%s",
	          name, rrtype, out.rcode, n, security_name(out.security));
	done(arg, 0, &out);
	free(rdata);
	free(rdata_len);
}

/* ---- the blocking lookups' cache ---- */

static void
cached_clear(struct dns_cached *c)
{
	free(c->name);
	free(c->blob);
	*c = (struct dns_cached){0};
}

/* A copy of res whose pointers all go into one allocation. */
static void
cached_fill(struct dns_cached *c, const struct dns_result *res)
{
	size_t bogus = res->why_bogus != NULL ? strlen(res->why_bogus) + 1 : 0;
	size_t size = res->count * (sizeof(uint8_t *) + sizeof(size_t)) + bogus;
	const uint8_t **rdata;
	size_t *rdata_len;
	uint8_t *p;

	for (size_t i = 0; i < res->count; i++)
		size += res->rdata_len[i];
	c->blob = xmalloc(size > 0 ? size : 1);
	rdata = c->blob;
	rdata_len = (size_t *)(rdata + res->count);
	p = (uint8_t *)(rdata_len + res->count);
	for (size_t i = 0; i < res->count; i++) {
		rdata[i] = p;
		rdata_len[i] = res->rdata_len[i];
		if (rdata_len[i] > 0)
			memcpy(p, res->rdata[i], rdata_len[i]);
		p += rdata_len[i];
	}
	c->res = *res;
	c->res.rdata = rdata;
	c->res.rdata_len = rdata_len;
	c->res.why_bogus = NULL;
	if (bogus > 0) {
		memcpy(p, res->why_bogus, bogus);
		c->res.why_bogus = (const char *)p;
	}
}

static struct dns_cached *
cache_slot(struct dns_cache *cache, const char *name, int rrtype)
{
	uint32_t h = 2166136261u ^ (uint32_t)rrtype;

	for (const char *p = name; *p != '\0'; p++) {
		char ch = *p >= 'A' && *p <= 'Z' ? (char)(*p | 0x20) : *p;

		h = (h ^ (uint8_t)ch) * 16777619u;
	}
	return &cache->slot[h % DNS_CACHE_SLOTS];
}

/* A copy of the live answer for (name, rrtype) into *out (cached_clear
 * it); false when there is none. */
static bool
cache_get(struct dns_cache *cache, const char *name, int rrtype,
          struct dns_cached *out)
{
	struct dns_cached *c;
	bool hit;

	pthread_mutex_lock(&cache->mu);
	c = cache_slot(cache, name, rrtype);
	hit = c->name != NULL && c->rrtype == rrtype &&
	      strcasecmp(c->name, name) == 0 && clock_mono_ms() < c->expires_ms;
	if (hit) {
		*out = (struct dns_cached){.rrtype = rrtype};
		cached_fill(out, &c->res);
		out->res.ttl =
		    (uint32_t)((c->expires_ms - clock_mono_ms() + 999) / 1000);
	}
	pthread_mutex_unlock(&cache->mu);
	return hit;
}

/* Answers with a TTL that validated or needed no validation. */
static void
cache_put(struct dns_cache *cache, const char *name, int rrtype,
          const struct dns_result *res)
{
	struct dns_cached c = {.rrtype = rrtype}, *slot;
	uint32_t ttl =
	    res->ttl < DNS_CACHE_TTL_MAX ? res->ttl : DNS_CACHE_TTL_MAX;

	if (ttl == 0 || res->security == DNS_BOGUS)
		return;
	c.name = xstrdup(name);
	c.expires_ms = clock_mono_ms() + (uint64_t)ttl * 1000;
	cached_fill(&c, res);
	pthread_mutex_lock(&cache->mu);
	slot = cache_slot(cache, name, rrtype);
	cached_clear(slot);
	*slot = c;
	pthread_mutex_unlock(&cache->mu);
}

static void
cache_free(struct dns_cache **cp)
{
	struct dns_cache *cache = *cp;

	if (cache == NULL)
		return;
	*cp = NULL;
	for (size_t i = 0; i < DNS_CACHE_SLOTS; i++)
		cached_clear(&cache->slot[i]);
	pthread_mutex_destroy(&cache->mu);
	free(cache);
}

/* The done of a blocking lookup, between it and the caller's: the answer
 * goes into the cache on its way. */
struct sync_done {
	struct dns_cache *cache;
	const char *name;
	int rrtype;
	dns_done_fn *done;
	void *arg;
};

static void
sync_done_cache(void *arg, int status, const struct dns_result *res)
{
	struct sync_done *d = arg;

	if (status == 0 && res != NULL)
		cache_put(d->cache, d->name, d->rrtype, res);
	d->done(d->arg, status, res);
}

static void
query_deliver(struct dns_query *q, const struct ub_result *res)
{
	result_deliver(q->name, q->rrtype, res, q->done, q->arg);
}

/* A malformed name usually comes from a peer (HELO, MAIL FROM, a DKIM
 * selector): not worth a warning. Anything else is our side failing. */
static enum log_level
failure_level(int rc)
{
	return rc == UB_SYNTAX ? LOG_LEVEL_DEBUG : LOG_LEVEL_WARNING;
}

/* Called by libunbound from ub_process(), i.e. from our loop. */
static void
query_on_answer(void *arg, int err, struct ub_result *res)
{
	struct dns_query *q = arg;

	/* Unlinked first: the callback may free the resolver, which must not
	 * find (and cancel) the query being delivered. */
	query_unlink(q);
	q->async_id = 0;
	if (err != 0 || res == NULL) {
		log_msg(failure_level(err), NULL,
		        "event=dns_failed name=%s type=%d error=%s", q->name,
		        q->rrtype, ub_strerror(err));
		q->done(q->arg, -1, NULL);
	} else {
		query_deliver(q, res);
	}
	ub_resolve_free(res);
	query_free(q);
}

static void
sync_stop(struct dns_sync *s)
{
	if (s->started) {
		/* A full pipe means a stop is already pending. */
		(void)!write(s->wake[1], "x", 1);
		pthread_join(s->thread, NULL);
		close(s->wake[0]);
		close(s->wake[1]);
		s->started = false;
	}
	if (s->ctx != NULL)
		ub_ctx_delete(s->ctx);
	s->ctx = NULL;
	pthread_cond_destroy(&s->cv);
	pthread_mutex_destroy(&s->mu);
}

static void
resolver_destroy(struct dns_resolver *r)
{
	if (r->ev_answer != NULL)
		event_free(r->ev_answer);
	if (r->ctx != NULL)
		ub_ctx_delete(r->ctx);
	sync_stop(&r->sync);
	cache_free(&r->cache);
	free(r);
}

/* The worker thread died or its pipe broke: nothing more will arrive, so
 * fail what is outstanding and every later lookup. */
static void
resolver_fail(struct dns_resolver *r, int rc)
{
	log_error(NULL, "event=dns_worker_failed error=%s", ub_strerror(rc));
	r->broken = true;
	event_del(r->ev_answer);
	for (struct dns_query *q = r->queries; q != NULL; q = q->next)
		query_defer_failure(q);
}

static void
resolver_on_readable(evutil_socket_t fd, short what, void *arg)
{
	struct dns_resolver *r = arg;
	int rc;

	(void)fd;
	(void)what;
	r->dispatching = true;
	rc = ub_process(r->ctx);
	r->dispatching = false;
	if (r->dying)
		resolver_destroy(r);
	else if (rc != 0)
		resolver_fail(r, rc);
}

/* "1..65535", digits only. */
static int
parse_port(const char *s, unsigned *port_r)
{
	unsigned v = 0;
	size_t n = strlen(s);

	if (n == 0 || n > 5 || strspn(s, "0123456789") != n)
		return -1;
	for (size_t i = 0; i < n; i++)
		v = v * 10 + (unsigned)(s[i] - '0');
	if (v == 0 || v > 65535)
		return -1;
	*port_r = v;
	return 0;
}

/* "ADDR", "ADDR:PORT", "[V6]:PORT" or a bare V6 address → "ADDR@PORT". */
static int
parse_server(const char *server, char *out, size_t outlen, char **error_r)
{
	char addr[INET6_ADDRSTRLEN];
	unsigned char bin[sizeof(struct in6_addr)];
	const char *start = server, *port = NULL, *end;
	const char *colon = strchr(server, ':');
	int family = AF_INET;
	unsigned portnum = 53;
	size_t alen;

	if (server[0] == '[') {
		start = server + 1;
		if ((end = strchr(start, ']')) == NULL ||
		    (end[1] != '\0' && end[1] != ':'))
			goto bad;
		alen = (size_t)(end - start);
		port = end[1] == ':' ? end + 2 : NULL;
		family = AF_INET6;
	} else if (colon != NULL && strchr(colon + 1, ':') != NULL) {
		alen = strlen(server); /* bare IPv6, default port */
		family = AF_INET6;
	} else {
		alen =
		    colon != NULL ? (size_t)(colon - server) : strlen(server);
		port = colon != NULL ? colon + 1 : NULL;
	}
	if (alen == 0 || alen >= sizeof(addr))
		goto bad;
	memcpy(addr, start, alen);
	addr[alen] = '\0';
	if (inet_pton(family, addr, bin) != 1)
		goto bad;
	if (port != NULL && parse_port(port, &portnum) < 0)
		goto bad;
	int n = snprintf(out, outlen, "%s@%u", addr, portnum);
	if (n < 0 || (size_t)n >= outlen)
		goto bad;
	return 0;
bad:
	*error_r = xasprintf("dns server \"%s\": expected ADDR, ADDR:PORT or "
	                     "[IPV6]:PORT with a numeric address",
	                     server);
	return -1;
}

/* Send every query to one recursive resolver, with RD set. Forwarding (not
 * a stub zone for ".") is what works against any resolver, and against an
 * unbound serving local-data or auth-zones: those answer regardless of RD,
 * while a stub for "." first primes the root (". NS"), which such a server
 * cannot answer authoritatively. */
static int
ctx_set_server(struct ub_ctx *ctx, const char *server, char **error_r)
{
	char fwd[DNS_FWD_TEXT_MAX];
	int rc;

	if (parse_server(server, fwd, sizeof(fwd), error_r) < 0)
		return -1;
	if ((rc = ub_ctx_set_fwd(ctx, fwd)) != 0) {
		*error_r =
		    xasprintf("dns server \"%s\": %s", server, ub_strerror(rc));
		return -1;
	}
	return 0;
}

/* Both files are read now, before any chroot. */
static int
ctx_use_system(struct ub_ctx *ctx, char **error_r)
{
	int rc;

	if ((rc = ub_ctx_resolvconf(ctx, NULL)) != 0) {
		*error_r = xasprintf("/etc/resolv.conf: %s (%s)",
		                     ub_strerror(rc), strerror(errno));
		return -1;
	}
	/* A missing /etc/hosts is legitimate in containers. */
	if ((rc = ub_ctx_hosts(ctx, NULL)) != 0)
		log_warn(NULL,
		         "event=dns_hosts_ignored file=/etc/hosts error=%s",
		         ub_strerror(rc));
	return 0;
}

static int
ctx_configure(struct ub_ctx *ctx, const char *server, char **error_r)
{
	int rc;

	/* A thread, not a fork: a forked worker would need its own sandbox
	 * and could not share our seccomp filter or chroot as neatly. */
	if ((rc = ub_ctx_async(ctx, 1)) != 0) {
		*error_r = xasprintf("ub_ctx_async: %s", ub_strerror(rc));
		return -1;
	}
	/* Every query goes to the configured forwarder, and that is often a
	 * resolver on the loopback. */
	if ((rc = ub_ctx_set_option(ctx, "do-not-query-localhost:", "no")) !=
	    0) {
		*error_r = xasprintf("ub_ctx_set_option: %s", ub_strerror(rc));
		return -1;
	}
	if (server != NULL && server[0] != '\0')
		return ctx_set_server(ctx, server, error_r);
	return ctx_use_system(ctx, error_r);
}

/* Both contexts answer alike. */
static int
resolver_configure(struct dns_resolver *r, const char *server, char **error_r)
{
	if (ctx_configure(r->ctx, server, error_r) < 0)
		return -1;
	return ctx_configure(r->sync.ctx, server, error_r);
}

static int
resolver_add_ta(struct dns_resolver *r, const char *ta)
{
	int rc = ub_ctx_add_ta(r->ctx, ta);

	return rc != 0 ? rc : ub_ctx_add_ta(r->sync.ctx, ta);
}

static int
ta_file_read(const char *path, char **text_r, char **error_r)
{
	FILE *f = fopen(path, "r");
	char *text;
	size_t n;

	if (f == NULL) {
		*error_r = xasprintf("%s: %s", path, strerror(errno));
		return -1;
	}
	text = xmalloc(DNS_TA_FILE_MAX + 1);
	n = fread(text, 1, DNS_TA_FILE_MAX + 1, f);
	if (ferror(f) || n > DNS_TA_FILE_MAX || memchr(text, '\0', n)) {
		*error_r =
		    xasprintf("%s: unreadable, too large or binary", path);
		fclose(f);
		free(text);
		return -1;
	}
	fclose(f);
	text[n] = '\0';
	*text_r = text;
	return 0;
}

/* One trust-anchor line: ";" comments stripped, blank lines skipped.
 * Returns 1 when an anchor was added, 0 for nothing, -1 on error. */
static int
ta_line_add(struct dns_resolver *r, char *line, char **error_r)
{
	char *p;
	size_t n;
	int rc;

	if ((p = strchr(line, ';')) != NULL)
		*p = '\0';
	line += strspn(line, " \t\r");
	n = strlen(line);
	while (n > 0 && strchr(" \t\r", line[n - 1]) != NULL)
		line[--n] = '\0';
	if (n == 0)
		return 0;
	/* Directives and multi-line records need a zone-file parser; the
	 * files we expect (root.key, unbound-anchor output, ldns-keygen .ds)
	 * hold one record per line. */
	if (line[0] == '$' || strpbrk(line, "()") != NULL) {
		*error_r = xstrdup("one DS or DNSKEY record per line expected");
		return -1;
	}
	if ((rc = resolver_add_ta(r, line)) != 0) {
		*error_r = xstrdup(ub_strerror(rc));
		return -1;
	}
	return 1;
}

/* Read the anchors now rather than handing libunbound the path: it would
 * open the file at the first lookup, after the process may have chrooted.
 * Static anchors, like ub_ctx_add_ta_file(): the file is kept current by
 * its package (dns-root-data) or by unbound-anchor, not by us (RFC 5011
 * tracking would need to write it). */
static int
resolver_load_ta_file(struct dns_resolver *r, const char *path, char **error_r)
{
	char *text, *line, *save = NULL, *err = NULL;
	int added = 0, rc = 0;

	if (ta_file_read(path, &text, error_r) < 0)
		return -1;
	for (line = strtok_r(text, "\n", &save); line != NULL && rc >= 0;
	     line = strtok_r(NULL, "\n", &save)) {
		if ((rc = ta_line_add(r, line, &err)) > 0)
			added++;
	}
	free(text);
	if (rc < 0) {
		*error_r = xasprintf("trust anchor file %s: %s", path, err);
		free(err);
		return -1;
	}
	if (added == 0) {
		*error_r = xasprintf("trust anchor file %s: no record", path);
		return -1;
	}
	return 0;
}

static int
resolver_attach(struct dns_resolver *r, char **error_r)
{
	int fd = ub_fd(r->ctx);

	if (fd < 0) {
		*error_r = xstrdup("ub_fd: no result descriptor");
		return -1;
	}
	r->ev_answer = event_new(r->base, fd, EV_READ | EV_PERSIST,
	                         resolver_on_readable, r);
	if (r->ev_answer == NULL || event_add(r->ev_answer, NULL) < 0) {
		*error_r = xstrdup("cannot watch the libunbound descriptor");
		return -1;
	}
	return 0;
}

struct dns_resolver *
dns_resolver_new(struct event_base *base, const char *server,
                 const char *trust_anchor_file, char **error_r)
{
	struct dns_resolver *r = xcalloc(1, sizeof(*r));
	bool want_ta = trust_anchor_file != NULL && trust_anchor_file[0] != 0;

	r->base = base;
	r->cache = xcalloc(1, sizeof(*r->cache));
	pthread_mutex_init(&r->cache->mu, NULL);
	pthread_mutex_init(&r->sync.mu, NULL);
	pthread_cond_init(&r->sync.cv, NULL);
	if ((r->ctx = ub_ctx_create()) == NULL ||
	    (r->sync.ctx = ub_ctx_create()) == NULL) {
		*error_r = xstrdup("ub_ctx_create failed");
		resolver_destroy(r);
		return NULL;
	}
	if (resolver_configure(r, server, error_r) < 0 ||
	    (want_ta &&
	     resolver_load_ta_file(r, trust_anchor_file, error_r) < 0) ||
	    resolver_attach(r, error_r) < 0) {
		resolver_destroy(r);
		return NULL;
	}
	log_debug(NULL, "event=dns_resolver_new server=%s dnssec=%s",
	          server != NULL && server[0] != '\0' ? server : "system",
	          want_ta ? "yes" : "no");
	return r;
}

/* libunbound only checks the syntax when it finalizes its configuration at
 * the first lookup; a bad anchor then fails every lookup, logged. */
int
dns_resolver_add_trust_anchor(struct dns_resolver *r, const char *ta,
                              char **error_r)
{
	int rc;

	if (ta[0] == '\0' || strpbrk(ta, "\r\n") != NULL) {
		*error_r = xstrdup("trust anchor: one record on one line");
		return -1;
	}
	if ((rc = resolver_add_ta(r, ta)) != 0) {
		*error_r = xasprintf(
		    "trust anchor: %s%s", ub_strerror(rc),
		    rc == UB_AFTERFINAL ? " (add anchors before lookups)" : "");
		return -1;
	}
	return 0;
}

void
dns_resolver_free(struct dns_resolver **rp)
{
	struct dns_resolver *r = *rp;

	if (r == NULL)
		return;
	*rp = NULL;
	while (r->queries != NULL) {
		struct dns_query *q = r->queries;

		query_unlink(q);
		query_abort(q);
		query_free(q);
	}
	/* Called from a callback inside ub_process(): it still reads the
	 * context, so deleting waits until it returns. */
	if (r->dispatching) {
		r->dying = true;
		return;
	}
	resolver_destroy(r);
}

static const char *
lookup_check(const struct dns_resolver *r, const char *name, int rrtype)
{
	size_t n;

	if (r->broken)
		return "resolver worker failed"; /* logged as an error */
	if (name == NULL || (n = strnlen(name, DNS_QNAME_TEXT_MAX + 1)) == 0 ||
	    n > DNS_QNAME_TEXT_MAX)
		return "bad name length";
	if (rrtype < 1 || rrtype > 65535)
		return "bad rrtype";
	return NULL;
}

struct dns_query *
dns_lookup(struct dns_resolver *r, const char *name, int rrtype,
           dns_done_fn *done, void *arg)
{
	struct dns_query *q = xcalloc(1, sizeof(*q));
	enum log_level level = LOG_LEVEL_DEBUG; /* bad input, see above */
	const char *why;
	int rc;

	q->done = done;
	q->arg = arg;
	q->rrtype = rrtype;
	q->name =
	    name != NULL ? xstrndup(name, DNS_QNAME_TEXT_MAX + 1) : xstrdup("");
	query_link(r, q);
	if ((why = lookup_check(r, name, rrtype)) == NULL) {
		/* libunbound answers only through ub_process(), never from
		 * inside this call, even from its cache. */
		rc = ub_resolve_async(r->ctx, name, rrtype, DNS_CLASS_IN, q,
		                      query_on_answer, &q->async_id);
		if (rc != 0) {
			why = ub_strerror(rc);
			level = failure_level(rc);
		}
	}
	if (why != NULL) {
		log_msg(level, NULL,
		        "event=dns_lookup_failed name=%s type=%d error=%s",
		        q->name, rrtype, why);
		query_defer_failure(q);
		return q;
	}
	log_debug(NULL, "event=dns_lookup name=%s type=%d", q->name, rrtype);
	return q;
}

/* Called by libunbound from ub_process() on the sync thread. */
static void
sync_on_answer(void *arg, int err, struct ub_result *res)
{
	struct sync_wait *w = arg;

	pthread_mutex_lock(&w->s->mu);
	w->err = err;
	w->res = res;
	w->answered = true;
	pthread_cond_broadcast(&w->s->cv);
	pthread_mutex_unlock(&w->s->mu);
}

/* Until stopped, or until the context fails (its worker gone): then every
 * waiter is told, and no answer can come any more. */
static void *
sync_run(void *arg)
{
	struct dns_sync *s = arg;
	struct pollfd pfd[2] = {{.fd = ub_fd(s->ctx), .events = POLLIN},
	                        {.fd = s->wake[0], .events = POLLIN}};
	int rc = 0;

	for (;;) {
		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			rc = UB_PIPE;
			break;
		}
		if (pfd[1].revents != 0)
			break;
		if (pfd[0].revents != 0 && (rc = ub_process(s->ctx)) != 0)
			break;
	}
	if (rc != 0)
		log_error(NULL, "event=dns_worker_failed error=%s",
		          ub_strerror(rc));
	pthread_mutex_lock(&s->mu);
	s->broken = true;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

/* Under s->mu. */
static int
sync_start(struct dns_sync *s)
{
	if (s->started)
		return 0;
	if (s->broken || ub_fd(s->ctx) < 0 ||
	    pipe2(s->wake, O_CLOEXEC | O_NONBLOCK) < 0)
		return -1;
	if (pthread_create(&s->thread, NULL, sync_run, s) != 0) {
		close(s->wake[0]);
		close(s->wake[1]);
		return -1;
	}
	s->started = true;
	return 0;
}

int
dns_resolve_sync(struct dns_resolver *r, const char *name, int rrtype,
                 dns_done_fn *done, void *arg)
{
	struct dns_sync *s = &r->sync;
	struct sync_wait w = {.s = s};
	struct sync_done sd = {.cache = r->cache,
	                       .name = name,
	                       .rrtype = rrtype,
	                       .done = done,
	                       .arg = arg};
	struct dns_cached hit;
	const char *why;
	int rc, id;

	if ((why = lookup_check(r, name, rrtype)) != NULL) {
		log_debug(NULL,
		          "event=dns_lookup_failed name=%.255s type=%d error=%s",
		          name != NULL ? name : "", rrtype, why);
		done(arg, -1, NULL);
		return -1;
	}
	if (cache_get(r->cache, name, rrtype, &hit)) {
		done(arg, 0, &hit.res);
		cached_clear(&hit);
		return 0;
	}
	pthread_mutex_lock(&s->mu);
	rc = sync_start(s) < 0 ? UB_NOMEM : 0;
	pthread_mutex_unlock(&s->mu);
	if (rc == 0)
		rc = ub_resolve_async(s->ctx, name, rrtype, DNS_CLASS_IN, &w,
		                      sync_on_answer, &id);
	if (rc == 0) {
		pthread_mutex_lock(&s->mu);
		while (!w.answered && !s->broken)
			pthread_cond_wait(&s->cv, &s->mu);
		pthread_mutex_unlock(&s->mu);
		rc = w.answered ? w.err : UB_PIPE;
	}
	if (rc != 0 || w.res == NULL) {
		log_msg(failure_level(rc), NULL,
		        "event=dns_failed name=%s type=%d error=%s", name,
		        rrtype, ub_strerror(rc));
		done(arg, -1, NULL);
		if (w.res != NULL)
			ub_resolve_free(w.res);
		return -1;
	}
	result_deliver(name, rrtype, w.res, sync_done_cache, &sd);
	ub_resolve_free(w.res);
	return 0;
}

void
dns_cancel(struct dns_query **qp)
{
	struct dns_query *q = *qp;

	if (q == NULL)
		return;
	*qp = NULL;
	query_unlink(q);
	query_abort(q);
	query_free(q);
}

/* inet_ntop() fails with ENOSPC when out is too small. */
static int
addr_to_text(int family, const uint8_t *rd, char *out, size_t outlen)
{
	socklen_t n =
	    outlen > INET6_ADDRSTRLEN ? INET6_ADDRSTRLEN : (socklen_t)outlen;

	return inet_ntop(family, rd, out, n) != NULL ? 0 : -1;
}

int
dns_rdata_a(const uint8_t *rd, size_t len, char *out, size_t outlen)
{
	if (len != 4)
		return -1;
	return addr_to_text(AF_INET, rd, out, outlen);
}

int
dns_rdata_aaaa(const uint8_t *rd, size_t len, char *out, size_t outlen)
{
	if (len != 16)
		return -1;
	return addr_to_text(AF_INET6, rd, out, outlen);
}

/* NUL bytes are refused: the result is a C string, and a truncated SPF or
 * DKIM record must not pass for the whole one. */
int
dns_rdata_txt(const uint8_t *rd, size_t len, char **out_r)
{
	char *s;
	size_t pos = 0, o = 0;

	*out_r = NULL;
	if (len == 0 || len > DNS_RDATA_MAX)
		return -1;
	s = xmalloc(len); /* the text is shorter than its rdata */
	while (pos < len) {
		size_t l = rd[pos++];

		if (l > len - pos || memchr(rd + pos, '\0', l) != NULL) {
			free(s);
			return -1;
		}
		memcpy(s + o, rd + pos, l);
		o += l;
		pos += l;
	}
	s[o] = '\0';
	*out_r = s;
	return 0;
}

static int
text_put(char *out, size_t outlen, size_t *o, const char *s, size_t n)
{
	if (n >= outlen - *o) /* keep room for the NUL */
		return -1;
	memcpy(out + *o, s, n);
	*o += n;
	return 0;
}

/* Presentation format (RFC 1035 5.1): "." and "\" escaped, bytes outside
 * printable ASCII as \DDD, so the text is unambiguous and safe to print. */
static int
label_put(const uint8_t *label, size_t n, char *out, size_t outlen, size_t *o)
{
	char esc[5];

	for (size_t i = 0; i < n; i++) {
		uint8_t c = label[i];
		int rc;

		if (c == '.' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			rc = text_put(out, outlen, o, esc, 2);
		} else if (c > 0x20 && c < 0x7f) {
			esc[0] = (char)c;
			rc = text_put(out, outlen, o, esc, 1);
		} else {
			snprintf(esc, sizeof(esc), "\\%03u", (unsigned)c);
			rc = text_put(out, outlen, o, esc, 4);
		}
		if (rc < 0)
			return -1;
	}
	return 0;
}

/* An uncompressed wire name filling exactly len bytes, as dotted text
 * without the final dot; the root name is ".". */
static int
name_to_text(const uint8_t *rd, size_t len, char *out, size_t outlen)
{
	size_t pos = 0, o = 0;

	if (outlen < 2)
		return -1;
	for (;;) {
		if (pos >= len)
			return -1; /* no root label */
		size_t l = rd[pos++];
		if (l == 0)
			break;
		/* > 63: a compression pointer or an obsolete label type */
		if (l > DNS_LABEL_MAX || l > len - pos ||
		    pos + l >= DNS_NAME_WIRE_MAX)
			return -1;
		if (o > 0 && text_put(out, outlen, &o, ".", 1) < 0)
			return -1;
		if (label_put(rd + pos, l, out, outlen, &o) < 0)
			return -1;
		pos += l;
	}
	if (pos != len)
		return -1; /* trailing bytes */
	if (o == 0)
		out[o++] = '.';
	out[o] = '\0';
	return 0;
}

int
dns_rdata_mx(const uint8_t *rd, size_t len, uint16_t *pref_r, char *host,
             size_t hostlen)
{
	if (len < 3 || len > DNS_RDATA_MAX)
		return -1;
	if (name_to_text(rd + 2, len - 2, host, hostlen) < 0)
		return -1;
	*pref_r = (uint16_t)((unsigned)rd[0] << 8 | rd[1]);
	return 0;
}

int
dns_rdata_ptr(const uint8_t *rd, size_t len, char *host, size_t hostlen)
{
	if (len < 1 || len > DNS_RDATA_MAX)
		return -1;
	return name_to_text(rd, len, host, hostlen);
}
