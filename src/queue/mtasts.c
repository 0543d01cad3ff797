/* MTA-STS (RFC 8461): the policy and TXT record parsers, MX pattern
 * matching, the HTTPS fetch (libcurl), the SQLite policy cache and the
 * section 5.1 decision of which policy applies to a domain.
 * SECURITY: policy bodies and TXT records are untrusted: parsed with
 * explicit limits (MTASTS_BODY_MAX, MTASTS_MX_MAX, label and name lengths),
 * never guessed at; the fetch speaks only https with certificate and name
 * checks, follows no redirect, uses no proxy and stops at MTASTS_BODY_MAX;
 * cache rows are validated again when read. */
#include "queue/mtasts.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <curl/curl.h>
#include <sqlite3.h>

#include "core/clock.h"
#include "core/xmalloc.h"

#define MTASTS_NAME_MAX 253 /* a host name without its final dot */
#define MTASTS_LABEL_MAX 63
#define MTASTS_EXT_NAME_MAX 32 /* (ALPHA / DIGIT) *31(...) */
#define MTASTS_TIMEOUT_MS 60000L
#define MTASTS_BUSY_MS 5000

static void set_why(char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A longer why is cut: it is for logs and humans. */
static void
set_why(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;

	if (why == NULL || whylen == 0)
		return;
	va_start(ap, fmt);
	if (vsnprintf(why, whylen, fmt, ap) < 0)
		why[0] = '\0';
	va_end(ap);
}

/* ASCII only: the locale must not change what a peer's bytes mean. */
static bool
is_alpha(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool
is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static bool
is_alnum(unsigned char c)
{
	return is_alpha(c) || is_digit(c);
}

static bool
is_wsp(unsigned char c)
{
	return c == ' ' || c == '\t';
}

/* A Domain of RFC 5321 4.1.2 (what an mx pattern names after its "*."):
 * labels of letters, digits and inner hyphens, 1..63 bytes each, at most
 * 253 bytes in all, no final dot. */
static bool
valid_domain(const char *s, size_t len)
{
	size_t label = 0;

	if (len == 0 || len > MTASTS_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '.') {
			if (label == 0 || s[i - 1] == '-')
				return false;
			label = 0;
			continue;
		}
		if (c == '-' ? label == 0 : !is_alnum(c))
			return false;
		if (++label > MTASTS_LABEL_MAX)
			return false;
	}
	return label > 0 && s[len - 1] != '-';
}

/* The domain we were asked about, lowercased and without its final dot,
 * into out (MTASTS_NAME_MAX + 1): it goes into a DNS name, a URL and the
 * cache key, so it must be a plain host name. */
static int
normalize_domain(const char *domain, char out[MTASTS_NAME_MAX + 1])
{
	size_t len;

	if (domain == NULL)
		return -1;
	len = strlen(domain);
	if (len > 0 && domain[len - 1] == '.')
		len--;
	if (!valid_domain(domain, len))
		return -1;
	for (size_t i = 0; i < len; i++) {
		char c = domain[i];

		out[i] = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
	}
	out[len] = '\0';
	return 0;
}

/* ["*."] Domain (RFC 8461 3.2 sts-policy-mx-value). */
static bool
valid_mx_pattern(const char *s, size_t len)
{
	if (len >= 2 && s[0] == '*' && s[1] == '.') {
		s += 2;
		len -= 2;
	}
	return valid_domain(s, len);
}

/* sts-ext-name / sts-policy-ext-name: (ALPHA / DIGIT) *31(ALPHA / DIGIT /
 * "_" / "-" / "."). */
static bool
valid_ext_name(const char *s, size_t len)
{
	if (len == 0 || len > MTASTS_EXT_NAME_MAX ||
	    !is_alnum((unsigned char)s[0]))
		return false;
	for (size_t i = 1; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (!is_alnum(c) && c != '_' && c != '-' && c != '.')
			return false;
	}
	return true;
}

/* sts-id: 1*32(ALPHA / DIGIT). */
static bool
valid_id(const char *s, size_t len)
{
	if (len == 0 || len > MTASTS_ID_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!is_alnum((unsigned char)s[i]))
			return false;
	return true;
}

static bool
token_is(const char *s, size_t len, const char *word)
{
	return strlen(word) == len && memcmp(s, word, len) == 0;
}

/* ------------------------------------------------------------ policy text */

void
mtasts_policy_clear(struct mtasts_policy *p)
{
	for (size_t i = 0; i < p->nmx && i < MTASTS_MX_MAX; i++)
		free(p->mx[i]);
	memset(p, 0, sizeof(*p));
}

/* Add an mx pattern unless it is there already (case-insensitive). */
static int
add_mx(struct mtasts_policy *p, const char *v, size_t len, char *why,
       size_t whylen)
{
	if (!valid_mx_pattern(v, len)) {
		set_why(why, whylen, "invalid mx pattern");
		return -1;
	}
	for (size_t i = 0; i < p->nmx; i++)
		if (strlen(p->mx[i]) == len &&
		    strncasecmp(p->mx[i], v, len) == 0)
			return 0;
	if (p->nmx >= MTASTS_MX_MAX) {
		set_why(why, whylen, "more than %d mx patterns", MTASTS_MX_MAX);
		return -1;
	}
	p->mx[p->nmx++] = xstrndup(v, len);
	return 0;
}

/* max_age: 1*10DIGIT, clamped to MTASTS_MAX_AGE_MAX. */
static int
parse_max_age(const char *v, size_t len, uint32_t *age_r)
{
	uint64_t n = 0;

	if (len == 0 || len > 10)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (!is_digit((unsigned char)v[i]))
			return -1;
		n = n * 10 + (uint64_t)(v[i] - '0');
	}
	*age_r = n > MTASTS_MAX_AGE_MAX ? MTASTS_MAX_AGE_MAX : (uint32_t)n;
	return 0;
}

struct parse_state {
	bool have_version, have_mode, have_max_age;
};

/* One "key: value" line (without its terminator), value trimmed. */
static int
parse_line(struct parse_state *st, struct mtasts_policy *p, const char *s,
           size_t len, char *why, size_t whylen)
{
	const char *colon = memchr(s, ':', len);
	const char *v;
	size_t klen, vlen;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '\r') {
			set_why(why, whylen, "bare CR");
			return -1;
		}
		if ((c < 0x20 && c != '\t') || c == 0x7f) {
			set_why(why, whylen, "control character");
			return -1;
		}
	}
	if (colon == NULL) {
		set_why(why, whylen, "line without a colon");
		return -1;
	}
	klen = (size_t)(colon - s);
	if (!valid_ext_name(s, klen)) {
		set_why(why, whylen, "invalid field name");
		return -1;
	}
	v = colon + 1;
	vlen = len - klen - 1;
	while (vlen > 0 && is_wsp((unsigned char)v[0])) {
		v++;
		vlen--;
	}
	while (vlen > 0 && is_wsp((unsigned char)v[vlen - 1]))
		vlen--;

	if (token_is(s, klen, "version")) {
		if (st->have_version)
			return 0;
		if (!token_is(v, vlen, "STSv1")) {
			set_why(why, whylen, "version is not STSv1");
			return -1;
		}
		st->have_version = true;
	} else if (token_is(s, klen, "mode")) {
		if (st->have_mode)
			return 0;
		if (token_is(v, vlen, "enforce"))
			p->mode = MTASTS_ENFORCE;
		else if (token_is(v, vlen, "testing"))
			p->mode = MTASTS_TESTING;
		else if (token_is(v, vlen, "none"))
			p->mode = MTASTS_NONE;
		else {
			set_why(why, whylen, "invalid mode");
			return -1;
		}
		st->have_mode = true;
	} else if (token_is(s, klen, "max_age")) {
		if (st->have_max_age)
			return 0;
		if (parse_max_age(v, vlen, &p->max_age) < 0) {
			set_why(why, whylen, "invalid max_age");
			return -1;
		}
		st->have_max_age = true;
	} else if (token_is(s, klen, "mx")) {
		return add_mx(p, v, vlen, why, whylen);
	} else if (vlen == 0) {
		/* An extension must have a value (sts-policy-ext-value). */
		set_why(why, whylen, "empty value");
		return -1;
	}
	return 0;
}

int
mtasts_parse(const char *body, size_t len, struct mtasts_policy *p, char *why,
             size_t whylen)
{
	struct parse_state st = {0};
	const char *s = body, *end = body + len;

	memset(p, 0, sizeof(*p));
	if (len > MTASTS_BODY_MAX) {
		set_why(why, whylen, "policy larger than %d bytes",
		        MTASTS_BODY_MAX);
		return -1;
	}
	if (len >= 3 && memcmp(s, "\xef\xbb\xbf", 3) == 0)
		s += 3;
	while (s < end) {
		const char *nl = memchr(s, '\n', (size_t)(end - s));
		const char *eol = nl != NULL ? nl : end;
		size_t llen = (size_t)(eol - s);
		bool blank = true;

		if (nl != NULL && llen > 0 && s[llen - 1] == '\r')
			llen--;
		for (size_t i = 0; i < llen && blank; i++)
			blank = is_wsp((unsigned char)s[i]);
		if (!blank && parse_line(&st, p, s, llen, why, whylen) < 0)
			goto fail;
		s = nl != NULL ? nl + 1 : end;
	}
	if (!st.have_version) {
		set_why(why, whylen, "no version");
		goto fail;
	}
	if (!st.have_mode) {
		set_why(why, whylen, "no mode");
		goto fail;
	}
	if (!st.have_max_age) {
		set_why(why, whylen, "no max_age");
		goto fail;
	}
	if (p->mode != MTASTS_NONE && p->nmx == 0) {
		set_why(why, whylen, "no mx");
		goto fail;
	}
	set_why(why, whylen, "ok");
	return 0;
fail:
	mtasts_policy_clear(p);
	return -1;
}

bool
mtasts_mx_match(const struct mtasts_policy *p, const char *host)
{
	size_t len = strlen(host);
	const char *dot;

	if (len > 0 && host[len - 1] == '.')
		len--;
	if (len == 0 || len > MTASTS_NAME_MAX)
		return false;
	dot = memchr(host, '.', len);
	for (size_t i = 0; i < p->nmx; i++) {
		const char *pat = p->mx[i];
		size_t plen = strlen(pat);

		if (plen >= 2 && pat[0] == '*' && pat[1] == '.') {
			/* Exactly one non-empty leftmost label. */
			size_t rest;

			if (dot == NULL || dot == host)
				continue;
			rest = len - (size_t)(dot + 1 - host);
			if (rest == plen - 2 &&
			    strncasecmp(dot + 1, pat + 2, rest) == 0)
				return true;
		} else if (plen == len && strncasecmp(host, pat, len) == 0) {
			return true;
		}
	}
	return false;
}

/* ------------------------------------------------------------- TXT record */

int
mtasts_txt_parse(const char *txt, size_t len, char id[MTASTS_ID_MAX + 1])
{
	size_t i = 7;
	bool have_id = false;

	id[0] = '\0';
	/* Records that do not begin with "v=STSv1;" are discarded (3.1);
	 * the ABNF allows *WSP before the ";". */
	if (len < 7 || memcmp(txt, "v=STSv1", 7) != 0)
		return 0;
	while (i < len && is_wsp((unsigned char)txt[i]))
		i++;
	if (i >= len || txt[i] != ';')
		return 0;
	if (memchr(txt, '\0', len) != NULL)
		goto bad;
	i++;
	/* 1*(*WSP ";" *WSP sts-field) [";"], with the first ";" eaten. */
	for (;;) {
		size_t start, fend, eq;

		while (i < len && is_wsp((unsigned char)txt[i]))
			i++;
		if (i >= len)
			break; /* after a trailing ";" */
		start = i;
		while (i < len && txt[i] != ';')
			i++;
		fend = i;
		while (fend > start && is_wsp((unsigned char)txt[fend - 1]))
			fend--;
		if (fend == start)
			goto bad; /* an empty field: ";;" */
		for (eq = start; eq < fend && txt[eq] != '='; eq++)
			;
		if (eq == fend || !valid_ext_name(txt + start, eq - start))
			goto bad;
		if (token_is(txt + start, eq - start, "id")) {
			if (!valid_id(txt + eq + 1, fend - eq - 1))
				goto bad;
			if (!have_id) {
				memcpy(id, txt + eq + 1, fend - eq - 1);
				id[fend - eq - 1] = '\0';
				have_id = true;
			}
		} else {
			/* sts-ext-value = 1*(%x21-3A / %x3C / %x3E-7E) */
			if (eq + 1 == fend)
				goto bad;
			for (size_t k = eq + 1; k < fend; k++) {
				unsigned char c = (unsigned char)txt[k];

				if (c < 0x21 || c > 0x7e || c == '=')
					goto bad;
			}
		}
		if (i >= len)
			break;
		i++; /* the ";" */
	}
	if (have_id)
		return 1;
bad:
	id[0] = '\0';
	return -1;
}

int
mtasts_txt_id(const struct ma_dns *dns, const char *domain,
              char id[MTASTS_ID_MAX + 1])
{
	char dom[MTASTS_NAME_MAX + 1], name[MTASTS_NAME_MAX + 16];
	char one[MTASTS_ID_MAX + 1];
	struct ma_dns_answer ans;
	int n, found = 0, result = 0;

	id[0] = '\0';
	if (normalize_domain(domain, dom) < 0)
		return 0;
	n = snprintf(name, sizeof(name), "_mta-sts.%s", dom);
	if (n < 0 || (size_t)n >= sizeof(name) || n > MTASTS_NAME_MAX)
		return 0; /* _mta-sts.DOMAIN cannot exist */
	memset(&ans, 0, sizeof(ans));
	if (dns->lookup(dns->arg, name, MA_DNS_TXT, &ans) < 0) {
		ma_dns_answer_clear(&ans);
		return -1;
	}
	switch (ans.status) {
	case MA_DNS_OK:
		break;
	case MA_DNS_NXDOMAIN:
	case MA_DNS_NODATA:
		ma_dns_answer_clear(&ans);
		return 0;
	case MA_DNS_TEMPFAIL:
	default:
		ma_dns_answer_clear(&ans);
		return -1;
	}
	for (size_t i = 0; i < ans.count && ans.rr != NULL; i++) {
		int r;

		if (ans.rr[i] == NULL)
			continue;
		r = mtasts_txt_parse(ans.rr[i], strlen(ans.rr[i]), one);
		if (r == 0)
			continue;
		/* RFC 8461 3.1: not exactly one STSv1 record is none. */
		if (++found > 1)
			break;
		result = r;
		if (r == 1)
			memcpy(id, one, sizeof(one));
	}
	ma_dns_answer_clear(&ans);
	if (found != 1 || result != 1) {
		id[0] = '\0';
		return 0;
	}
	return 1;
}

/* ------------------------------------------------------------------ fetch */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc = CURLE_FAILED_INIT;

static void
curl_init_once(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

struct fetch_body {
	char *data; /* MTASTS_BODY_MAX + 1 */
	size_t len;
	bool too_big;
};

static size_t
fetch_write(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct fetch_body *b = arg;
	size_t n;

	if (size != 0 && nmemb > SIZE_MAX / size) {
		b->too_big = true;
		return 0;
	}
	n = size * nmemb;
	if (n > MTASTS_BODY_MAX - b->len) {
		b->too_big = true;
		return 0; /* libcurl stops with CURLE_WRITE_ERROR */
	}
	memcpy(b->data + b->len, ptr, n);
	b->len += n;
	return n;
}

/* "text/plain", optionally followed by parameters (RFC 8461 3.3, RFC 9110
 * 8.3: the media type is case-insensitive). */
static bool
is_text_plain(const char *ct)
{
	if (ct == NULL)
		return false;
	while (is_wsp((unsigned char)*ct))
		ct++;
	if (strncasecmp(ct, "text/plain", 10) != 0)
		return false;
	ct += 10;
	while (is_wsp((unsigned char)*ct))
		ct++;
	return *ct == '\0' || *ct == ';';
}

#define SETOPT(h, opt, val) (curl_easy_setopt((h), (opt), (val)) == CURLE_OK)

int
mtasts_fetch(const char *domain, const char *ca_file, uint16_t port,
             const char *host_ip, long timeout_ms, struct mtasts_policy *p,
             char *why, size_t whylen)
{
	char dom[MTASTS_NAME_MAX + 1], url[MTASTS_NAME_MAX + 64];
	char resolve[MTASTS_NAME_MAX + 96], errbuf[CURL_ERROR_SIZE];
	char pwhy[128];
	struct fetch_body body = {0};
	struct curl_slist *rlist = NULL;
	const char *ctype = NULL;
	long status = 0;
	CURLcode rc;
	CURL *h;
	int ret = -1, n;

	memset(p, 0, sizeof(*p));
	if (normalize_domain(domain, dom) < 0) {
		set_why(why, whylen, "not a host name");
		return -1;
	}
	if (port == 0)
		port = 443;
	if (timeout_ms <= 0)
		timeout_ms = MTASTS_TIMEOUT_MS;
	n = snprintf(url, sizeof(url),
	             "https://mta-sts.%s:%u/.well-known/mta-sts.txt", dom,
	             (unsigned int)port);
	if (n < 0 || (size_t)n >= sizeof(url)) {
		set_why(why, whylen, "domain too long");
		return -1;
	}
	if (host_ip != NULL) {
		unsigned char a[16];
		bool v6 = inet_pton(AF_INET6, host_ip, a) == 1;

		if (!v6 && inet_pton(AF_INET, host_ip, a) != 1) {
			set_why(why, whylen, "host_ip is not an address");
			return -1;
		}
		n = snprintf(resolve, sizeof(resolve), "mta-sts.%s:%u:%s%s%s",
		             dom, (unsigned int)port, v6 ? "[" : "", host_ip,
		             v6 ? "]" : "");
		if (n < 0 || (size_t)n >= sizeof(resolve)) {
			set_why(why, whylen, "domain too long");
			return -1;
		}
	}

	pthread_once(&curl_once, curl_init_once);
	if (curl_init_rc != CURLE_OK) {
		set_why(why, whylen, "curl_global_init: %s",
		        curl_easy_strerror(curl_init_rc));
		return -1;
	}
	h = curl_easy_init();
	if (h == NULL) {
		set_why(why, whylen, "curl_easy_init failed");
		return -1;
	}
	body.data = xmalloc(MTASTS_BODY_MAX + 1);
	errbuf[0] = '\0';
	if (host_ip != NULL) {
		rlist = curl_slist_append(NULL, resolve);
		if (rlist == NULL) {
			set_why(why, whylen, "curl_slist_append failed");
			goto out;
		}
	}
	if (!SETOPT(h, CURLOPT_URL, url) ||
	    !SETOPT(h, CURLOPT_PROTOCOLS_STR, "https") ||
	    !SETOPT(h, CURLOPT_REDIR_PROTOCOLS_STR, "https") ||
	    !SETOPT(h, CURLOPT_FOLLOWLOCATION, 0L) ||
	    !SETOPT(h, CURLOPT_MAXREDIRS, 0L) ||
	    !SETOPT(h, CURLOPT_SSL_VERIFYPEER, 1L) ||
	    !SETOPT(h, CURLOPT_SSL_VERIFYHOST, 2L) ||
	    !SETOPT(h, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2) ||
	    !SETOPT(h, CURLOPT_PROXY, "") || !SETOPT(h, CURLOPT_NOSIGNAL, 1L) ||
	    !SETOPT(h, CURLOPT_TIMEOUT_MS, timeout_ms) ||
	    !SETOPT(h, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms) ||
	    !SETOPT(h, CURLOPT_MAXFILESIZE_LARGE,
	            (curl_off_t)MTASTS_BODY_MAX) ||
	    !SETOPT(h, CURLOPT_USERAGENT, "tern/" TERN_VERSION) ||
	    !SETOPT(h, CURLOPT_ERRORBUFFER, errbuf) ||
	    !SETOPT(h, CURLOPT_WRITEFUNCTION, fetch_write) ||
	    !SETOPT(h, CURLOPT_WRITEDATA, &body) ||
	    (ca_file != NULL && !SETOPT(h, CURLOPT_CAINFO, ca_file)) ||
	    (rlist != NULL && !SETOPT(h, CURLOPT_RESOLVE, rlist))) {
		set_why(why, whylen, "curl_easy_setopt failed");
		goto out;
	}
	rc = curl_easy_perform(h);
	if (body.too_big || rc == CURLE_FILESIZE_EXCEEDED) {
		set_why(why, whylen, "%s: policy larger than %d bytes", url,
		        MTASTS_BODY_MAX);
		goto out;
	}
	if (rc != CURLE_OK) {
		set_why(why, whylen, "%s: %s", url,
		        errbuf[0] != '\0' ? errbuf : curl_easy_strerror(rc));
		goto out;
	}
	if (curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status) != CURLE_OK ||
	    status != 200) {
		set_why(why, whylen, "%s: HTTP status %ld", url, status);
		goto out;
	}
	if (curl_easy_getinfo(h, CURLINFO_CONTENT_TYPE, &ctype) != CURLE_OK ||
	    !is_text_plain(ctype)) {
		set_why(why, whylen, "%s: Content-Type is not text/plain", url);
		goto out;
	}
	if (mtasts_parse(body.data, body.len, p, pwhy, sizeof(pwhy)) < 0) {
		set_why(why, whylen, "%s: invalid policy: %s", url, pwhy);
		goto out;
	}
	p->fetched_ms = clock_wall_ms();
	set_why(why, whylen, "ok");
	ret = 0;
out:
	curl_easy_cleanup(h);
	curl_slist_free_all(rlist);
	free(body.data);
	return ret;
}

/* ------------------------------------------------------------------ cache */

struct mtasts_cache {
	sqlite3 *db;
};

static const char cache_schema[] = "CREATE TABLE IF NOT EXISTS policies ("
                                   " domain TEXT PRIMARY KEY,"
                                   " id TEXT NOT NULL,"
                                   " mode INTEGER NOT NULL,"
                                   " mx TEXT NOT NULL,"
                                   " max_age INTEGER NOT NULL,"
                                   " fetched_ms INTEGER NOT NULL)";

struct mtasts_cache *
mtasts_cache_open(const char *path, char **error_r)
{
	struct mtasts_cache *c;
	sqlite3 *db = NULL;
	int fd, rc;

	/* Create it 0600 ourselves (SQLite would use 0644; -wal and -shm
	 * copy the database's mode). */
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		*error_r = xasprintf("open %s: %s", path, strerror(errno));
		return NULL;
	}
	close(fd);
	rc = sqlite3_open_v2(path, &db,
	                     SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX |
	                         SQLITE_OPEN_NOFOLLOW,
	                     NULL);
	if (rc != SQLITE_OK) {
		*error_r = xasprintf("%s: %s", path,
		                     db != NULL ? sqlite3_errmsg(db)
		                                : sqlite3_errstr(rc));
		sqlite3_close(db);
		return NULL;
	}
	sqlite3_extended_result_codes(db, 1);
	sqlite3_busy_timeout(db, MTASTS_BUSY_MS);
	sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
	sqlite3_db_config(db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, NULL);
	if (sqlite3_exec(db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL) !=
	        SQLITE_OK ||
	    sqlite3_exec(db, "PRAGMA synchronous=FULL", NULL, NULL, NULL) !=
	        SQLITE_OK ||
	    sqlite3_exec(db, cache_schema, NULL, NULL, NULL) != SQLITE_OK) {
		*error_r = xasprintf("%s: %s", path, sqlite3_errmsg(db));
		sqlite3_close(db);
		return NULL;
	}
	c = xcalloc(1, sizeof(*c));
	c->db = db;
	return c;
}

void
mtasts_cache_close(struct mtasts_cache **c)
{
	if (*c == NULL)
		return;
	sqlite3_close((*c)->db);
	xfree(c);
}

/* The mx column: patterns joined by "\n", each validated again. */
static int
split_mx(const char *mx, struct mtasts_policy *p)
{
	const char *s = mx;

	while (*s != '\0') {
		const char *nl = strchr(s, '\n');
		size_t len = nl != NULL ? (size_t)(nl - s) : strlen(s);

		if (add_mx(p, s, len, NULL, 0) < 0)
			return -1;
		s += len;
		if (*s == '\n')
			s++;
	}
	return 0;
}

int
mtasts_cache_get(struct mtasts_cache *c, const char *domain, uint64_t now_ms,
                 struct mtasts_policy *p)
{
	char dom[MTASTS_NAME_MAX + 1];
	sqlite3_stmt *st = NULL;
	const char *id, *mx;
	sqlite3_int64 mode, max_age, fetched;
	int rc, ret = -1;

	memset(p, 0, sizeof(*p));
	if (normalize_domain(domain, dom) < 0)
		return 0;
	if (sqlite3_prepare_v2(c->db,
	                       "SELECT id, mode, mx, max_age, fetched_ms FROM "
	                       "policies WHERE domain = ?",
	                       -1, &st, NULL) != SQLITE_OK ||
	    sqlite3_bind_text(st, 1, dom, -1, SQLITE_TRANSIENT) != SQLITE_OK)
		goto out;
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		ret = 0;
		goto out;
	}
	if (rc != SQLITE_ROW)
		goto out;
	id = (const char *)sqlite3_column_text(st, 0);
	mode = sqlite3_column_int64(st, 1);
	mx = (const char *)sqlite3_column_text(st, 2);
	max_age = sqlite3_column_int64(st, 3);
	fetched = sqlite3_column_int64(st, 4);
	if (id == NULL || mx == NULL ||
	    (id[0] != '\0' && !valid_id(id, strlen(id))) ||
	    mode < MTASTS_NONE || mode > MTASTS_ENFORCE || max_age < 0 ||
	    max_age > MTASTS_MAX_AGE_MAX || fetched < 0)
		goto out;
	p->mode = (enum mtasts_mode)mode;
	p->max_age = (uint32_t)max_age;
	p->fetched_ms = (uint64_t)fetched;
	memcpy(p->id, id, strlen(id) + 1);
	if (split_mx(mx, p) < 0 || (p->mode != MTASTS_NONE && p->nmx == 0)) {
		mtasts_policy_clear(p);
		goto out;
	}
	if (p->fetched_ms + (uint64_t)p->max_age * 1000 > now_ms) {
		ret = 1;
	} else {
		mtasts_policy_clear(p);
		ret = 0;
	}
out:
	sqlite3_finalize(st);
	return ret;
}

int
mtasts_cache_put(struct mtasts_cache *c, const char *domain,
                 const struct mtasts_policy *p)
{
	char dom[MTASTS_NAME_MAX + 1];
	sqlite3_stmt *st = NULL;
	size_t mxlen = 1;
	char *mx;
	int ret = -1;

	if (normalize_domain(domain, dom) < 0 || p->nmx > MTASTS_MX_MAX ||
	    p->fetched_ms > INT64_MAX)
		return -1;
	for (size_t i = 0; i < p->nmx; i++)
		mxlen += strlen(p->mx[i]) + 1;
	mx = xmalloc(mxlen);
	mx[0] = '\0';
	for (size_t i = 0, off = 0; i < p->nmx; i++) {
		size_t l = strlen(p->mx[i]);

		if (i > 0)
			mx[off++] = '\n';
		memcpy(mx + off, p->mx[i], l);
		off += l;
		mx[off] = '\0';
	}
	if (sqlite3_prepare_v2(c->db,
	                       "INSERT OR REPLACE INTO policies (domain, id, "
	                       "mode, mx, max_age, fetched_ms) VALUES (?, ?, "
	                       "?, ?, ?, ?)",
	                       -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_bind_text(st, 1, dom, -1, SQLITE_TRANSIENT) == SQLITE_OK &&
	    sqlite3_bind_text(st, 2, p->id, -1, SQLITE_TRANSIENT) ==
	        SQLITE_OK &&
	    sqlite3_bind_int(st, 3, (int)p->mode) == SQLITE_OK &&
	    sqlite3_bind_text(st, 4, mx, -1, SQLITE_TRANSIENT) == SQLITE_OK &&
	    sqlite3_bind_int64(st, 5, (sqlite3_int64)p->max_age) == SQLITE_OK &&
	    sqlite3_bind_int64(st, 6, (sqlite3_int64)p->fetched_ms) ==
	        SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_DONE)
		ret = 0;
	sqlite3_finalize(st);
	free(mx);
	return ret;
}

/* ------------------------------------------------------------- decision */

static const char *
mode_name(enum mtasts_mode m)
{
	switch (m) {
	case MTASTS_ENFORCE:
		return "enforce";
	case MTASTS_TESTING:
		return "testing";
	case MTASTS_NONE:
		break;
	}
	return "none";
}

void
mtasts_get_policy(const struct ma_dns *dns, struct mtasts_cache *cache,
                  const char *domain, const struct mtasts_fetch_opts *opts,
                  uint64_t now_ms, struct mtasts_policy *p)
{
	static const struct mtasts_fetch_opts defaults = {0};
	struct mtasts_policy cached, fetched;
	char dom[MTASTS_NAME_MAX + 1], id[MTASTS_ID_MAX + 1], fwhy[128];
	bool have_cache;
	int txt, rc;

	memset(p, 0, sizeof(*p));
	memset(&cached, 0, sizeof(cached));
	if (opts == NULL)
		opts = &defaults;
	if (normalize_domain(domain, dom) < 0) {
		set_why(p->why, sizeof(p->why), "not a host name: no policy");
		return;
	}
	have_cache =
	    cache != NULL && mtasts_cache_get(cache, dom, now_ms, &cached) == 1;
	txt = mtasts_txt_id(dns, dom, id);
	if (txt != 1) {
		/* No announcement (or DNS failing): a policy seen before keeps
		 * applying until it expires (RFC 8461 5.1). */
		if (have_cache) {
			*p = cached;
			set_why(p->why, sizeof(p->why),
			        "%s, using the cached policy (mode %s)",
			        txt == 0 ? "no valid TXT record"
			                 : "TXT lookup failed",
			        mode_name(p->mode));
		} else {
			set_why(p->why, sizeof(p->why), "%s: no policy",
			        txt == 0 ? "no valid TXT record"
			                 : "TXT lookup failed");
		}
		return;
	}
	if (have_cache && strcmp(cached.id, id) == 0) {
		*p = cached;
		set_why(p->why, sizeof(p->why), "cached policy id=%s (mode %s)",
		        id, mode_name(p->mode));
		return;
	}
	memset(&fetched, 0, sizeof(fetched));
	if (opts->fetch != NULL)
		rc = opts->fetch(opts->fetch_arg, dom, opts, &fetched, fwhy,
		                 sizeof(fwhy));
	else
		rc = mtasts_fetch(dom, opts->ca_file, opts->port, opts->host_ip,
		                  opts->timeout_ms, &fetched, fwhy,
		                  sizeof(fwhy));
	if (rc == 0) {
		memcpy(fetched.id, id, sizeof(id));
		fetched.fetched_ms = now_ms;
		fetched.why[0] = '\0';
		if (cache != NULL && mtasts_cache_put(cache, dom, &fetched) < 0)
			set_why(fetched.why, sizeof(fetched.why),
			        "fetched policy id=%s (mode %s), not cached",
			        id, mode_name(fetched.mode));
		else
			set_why(fetched.why, sizeof(fetched.why),
			        "fetched policy id=%s (mode %s)", id,
			        mode_name(fetched.mode));
		mtasts_policy_clear(&cached);
		*p = fetched;
		return;
	}
	mtasts_policy_clear(&fetched);
	if (have_cache) {
		*p = cached;
		set_why(p->why, sizeof(p->why),
		        "fetch failed (%s), using the cached policy (mode %s)",
		        fwhy, mode_name(p->mode));
	} else {
		set_why(p->why, sizeof(p->why), "fetch failed (%s): no policy",
		        fwhy);
	}
}
