/* MTA-STS (RFC 8461): a domain's policy that its MX hosts must be
 * reached over TLS with a certificate valid for their names (WebPKI). The
 * policy text is parsed here (pure, fuzzed); it is fetched over HTTPS from
 * https://mta-sts.DOMAIN/.well-known/mta-sts.txt with libcurl (certificate
 * verified, no redirects, 64 KiB and a timeout), announced by the TXT
 * record _mta-sts.DOMAIN ("v=STSv1; id=…"), and cached until max_age:
 * a policy seen once keeps applying when the TXT record or the web server
 * disappears (the point of RFC 8461 against downgrade).
 * SECURITY: the policy body and the TXT record are untrusted network
 * input: lines, mx patterns and sizes are bounded; anything that does not
 * parse is no policy (RFC 8461 3.2), never a guess. */
#ifndef TERN_QUEUE_MTASTS_H
#define TERN_QUEUE_MTASTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mailauth/dnsif.h"

#define MTASTS_BODY_MAX (64 * 1024)
#define MTASTS_MX_MAX 32
#define MTASTS_ID_MAX 32            /* RFC 8461 3.1: 1*32(ALPHA / DIGIT) */
#define MTASTS_MAX_AGE_MAX 31557600 /* one year, RFC 8461 3.2 */

enum mtasts_mode {
	MTASTS_NONE,    /* no policy (or mode none) */
	MTASTS_TESTING, /* report failures, deliver anyway */
	MTASTS_ENFORCE, /* deliver only to matching MX over valid TLS */
};

struct mtasts_policy {
	enum mtasts_mode mode;
	char *mx[MTASTS_MX_MAX]; /* "mail.example.org" or "*.example.org" */
	size_t nmx;
	uint32_t max_age;           /* seconds */
	char id[MTASTS_ID_MAX + 1]; /* from the TXT record when fetched */
	uint64_t fetched_ms;        /* when it was fetched */
	/* Set by mtasts_get_policy: what it did ("fetched", "cached",
	 * "fetch failed: …, using the cached policy"), for logs. */
	char why[192];
};

/* Parse a policy body ("version: STSv1\r\nmode: enforce\r\nmx: …\r\n
 * max_age: 86400\r\n"). 0 ok, -1 (not a valid policy) with why. *p is
 * overwritten, not freed: pass it zeroed or cleared; on -1 it is left
 * cleared. Lines end in CRLF or LF (a bare CR is an error); blank lines
 * and a leading UTF-8 BOM are skipped; field names are case-sensitive;
 * unknown fields are ignored; a repeated field other than mx keeps its
 * first value (RFC 8461 3.2); repeated mx patterns count once. version,
 * mode and max_age are required, and mx unless mode is none. A max_age
 * over MTASTS_MAX_AGE_MAX (at most 10 digits, RFC 8461 3.2) is clamped to
 * it: a domain asking for longer protection gets the longest allowed. */
int mtasts_parse(const char *body, size_t len, struct mtasts_policy *p,
                 char *why, size_t whylen);
/* Free the mx patterns and zero *p. */
void mtasts_policy_clear(struct mtasts_policy *p);

/* One TXT record of _mta-sts.DOMAIN (RFC 8461 3.1): 1 a valid STSv1
 * record (id copied), 0 not an STSv1 record (it does not begin with
 * "v=STSv1" *WSP ";": to be discarded), -1 an STSv1 record that is not
 * valid (no id, bad id, malformed field, NUL byte). */
int mtasts_txt_parse(const char *txt, size_t len, char id[MTASTS_ID_MAX + 1]);

/* Does the MX host name match one of the policy's mx patterns (RFC 8461
 * 4.1: "*." matches exactly one leftmost label; case-insensitive, final
 * dot ignored)? */
bool mtasts_mx_match(const struct mtasts_policy *p, const char *host);

/* The TXT record "v=STSv1; id=…;" of _mta-sts.DOMAIN: 1 found (id copied),
 * 0 none (NXDOMAIN, no TXT, no valid STSv1 record, more than one STSv1
 * record, or a domain that is not a host name), -1 temporary. */
int mtasts_txt_id(const struct ma_dns *dns, const char *domain,
                  char id[MTASTS_ID_MAX + 1]);

/* Fetch and parse the policy over HTTPS (blocking, for worker threads).
 * ca_file: trusted CAs (NULL: the system store). port: 443 except in
 * tests (0 means 443); host_ip: when not NULL, connect there instead of
 * resolving mta-sts.DOMAIN (tests; libcurl's CURLOPT_RESOLVE). timeout_ms:
 * for the whole transfer (<= 0: 60 s). Only https, no redirects, no proxy,
 * TLS >= 1.2; the answer must be 200 with Content-Type text/plain (RFC
 * 8461 3.3) and at most MTASTS_BODY_MAX bytes. p->fetched_ms is set from
 * the wall clock, p->id is left empty. 0 ok, -1 with why. */
int mtasts_fetch(const char *domain, const char *ca_file, uint16_t port,
                 const char *host_ip, long timeout_ms, struct mtasts_policy *p,
                 char *why, size_t whylen);

/* The policy cache: a small SQLite table in the queue's directory
 * (DIR/mta-sts.db). One struct per process; used from worker threads, so
 * each call takes its own connection lock (SQLite serialized mode). */
struct mtasts_cache;
struct mtasts_cache *mtasts_cache_open(const char *path, char **error_r);
void mtasts_cache_close(struct mtasts_cache **c);
/* 1 found (unexpired at now_ms: fetched_ms + max_age s > now_ms), 0 none
 * (or expired), -1 error (including a row that does not validate). *p is
 * overwritten as by mtasts_parse. The domain is compared without case and
 * without a final dot. put replaces the domain's row (one statement). */
int mtasts_cache_get(struct mtasts_cache *c, const char *domain,
                     uint64_t now_ms, struct mtasts_policy *p);
int mtasts_cache_put(struct mtasts_cache *c, const char *domain,
                     const struct mtasts_policy *p);

/* Everything together, as the queue needs it before delivering to a
 * domain (RFC 8461 5.1): the TXT id; the cached policy when the id is the
 * same (or the TXT lookup found nothing but the cache has an unexpired
 * policy); else a fetch (cached on success). On a fetch failure with no
 * cached policy: no policy. *p is filled (mode MTASTS_NONE when none),
 * overwritten as by mtasts_parse, with p->why saying what was done.
 * cache may be NULL (no cache), opts NULL (defaults). A fetched policy is
 * stored with the TXT id and fetched_ms = now_ms, also in mode none (that
 * is how a domain withdraws its policy, RFC 8461 8.3). */
struct mtasts_fetch_opts {
	const char *ca_file;
	uint16_t port;
	const char *host_ip;
	long timeout_ms;
	/* When not NULL, called instead of mtasts_fetch (same contract),
	 * with fetch_arg: the queue resolves the policy host through its
	 * own resolver first; the tests fake the fetch. */
	int (*fetch)(void *arg, const char *domain,
	             const struct mtasts_fetch_opts *o, struct mtasts_policy *p,
	             char *why, size_t whylen);
	void *fetch_arg;
};
void mtasts_get_policy(const struct ma_dns *dns, struct mtasts_cache *cache,
                       const char *domain, const struct mtasts_fetch_opts *opts,
                       uint64_t now_ms, struct mtasts_policy *p);

#endif
