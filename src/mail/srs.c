/* SRS addresses (see srs.h): a pure module so that forward and reverse can
 * be unit-tested and fuzzed without a queue, and the secrets file.
 * SECURITY: srs_reverse parses peer input: it looks at no more than
 * SRS_LOCAL_MAX bytes, refuses anything it does not fully understand, and
 * checks the hash (constant time) before it trusts any part of it. */
#include "mail/srs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "core/base64.h"
#include "core/xmalloc.h"
#include "mail/address.h"

#define SRS_LOCAL_MAX 512  /* bytes of a local part srs_reverse accepts */
#define SRS_DAYS 1024      /* the timestamp wraps around */
#define SRS_SKEW_DAYS 1    /* a stamp this far ahead is another host's clock */
#define SRS_PREFIX_LEN 5   /* "SRS0=" */
#define SRS_FILE_MAX 65536 /* bytes of a secrets file */
#define SRS_LINE_MAX 128   /* bytes of one line holding a secret */
#define SRS_FILE_HEADER "# SRS secrets, newest first (tern.conf(5) srs)\n"

static const char srs_b32[] = "abcdefghijklmnopqrstuvwxyz234567";

/* ----------------------------------------------------------- primitives */

static char
srs_lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* The value of a base32 character in either case, or -1. */
static int
srs_b32_value(char c)
{
	c = srs_lower(c);
	if (c >= 'a' && c <= 'z')
		return c - 'a';
	if (c >= '2' && c <= '7')
		return c - '2' + 26;
	return -1;
}

/* The hash of text (len bytes, at most SRS_LOCAL_MAX) with one secret,
 * lower case, in out. Lower-casing the input first is what lets a
 * reverse address survive an MTA that changes the case of local parts.
 * -1 only when OpenSSL fails. */
static int
srs_hash(const uint8_t *secret, const char *text, size_t len,
         char out[SRS_HASH_LEN])
{
	unsigned char lower[SRS_LOCAL_MAX], mac[EVP_MAX_MD_SIZE];
	size_t maclen = 0;
	int ret = -1;

	if (len == 0 || len > sizeof(lower))
		return -1;
	for (size_t i = 0; i < len; i++)
		lower[i] = (unsigned char)srs_lower(text[i]);
	if (EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, secret,
	              SRS_SECRET_LEN, lower, len, mac, sizeof(mac),
	              &maclen) != NULL &&
	    maclen * 8 >= SRS_HASH_LEN * 5) {
		/* base32, RFC 4648: 5 bits a character, most significant
		 * first. */
		for (size_t i = 0; i < SRS_HASH_LEN; i++) {
			size_t bit = i * 5;
			unsigned int v = (unsigned int)mac[bit / 8] << 8;

			if (bit / 8 + 1 < maclen)
				v |= mac[bit / 8 + 1];
			out[i] = srs_b32[(v >> (11 - bit % 8)) & 31];
		}
		ret = 0;
	}
	OPENSSL_cleanse(mac, sizeof(mac));
	return ret;
}

/* Does the hash given (SRS_HASH_LEN base32 characters, any case) match
 * text with any of the keys? Every key is tried, so the time does not
 * depend on where the match is. */
static bool
srs_hash_ok(const struct srs_keys *keys, const char *given, const char *text,
            size_t len)
{
	char want[SRS_HASH_LEN], got[SRS_HASH_LEN];
	size_t n = keys->n < SRS_SECRETS_MAX ? keys->n : SRS_SECRETS_MAX;
	bool ok = false;

	for (size_t i = 0; i < SRS_HASH_LEN; i++)
		got[i] = srs_lower(given[i]);
	for (size_t k = 0; k < n; k++) {
		if (srs_hash(keys->secret[k], text, len, want) < 0)
			continue; /* fail closed */
		ok |= CRYPTO_memcmp(want, got, SRS_HASH_LEN) == 0;
	}
	return ok;
}

static bool
srs_has_prefix(const char *s, char digit)
{
	return strncasecmp(s, "SRS", 3) == 0 && s[3] == digit && s[4] == '=';
}

bool
srs_is_srs(const char *local)
{
	return local != NULL &&
	       (srs_has_prefix(local, '0') || srs_has_prefix(local, '1'));
}

/* ---------------------------------------------------------------- forward */

/* Bytes that srs_reverse refuses must not go into an address it will be
 * asked to reverse: controls, space and DEL. */
static bool
srs_clean(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c <= ' ' || c == 0x7f)
			return false;
	}
	return true;
}

/* out = prefix hash "=" text "@" srs_domain, with hash over text. The
 * length is checked before anything is hashed. */
static int
srs_build(const struct srs_keys *keys, const char *prefix, const char *text,
          size_t len, const char *srs_domain, char *out, size_t size,
          const char **why_r)
{
	char hash[SRS_HASH_LEN];
	size_t total =
	    strlen(prefix) + SRS_HASH_LEN + 1 + len + 1 + strlen(srs_domain);
	int n;

	if (total > ADDRESS_MAX || total >= size) {
		*why_r = "SRS address too long";
		return -1;
	}
	if (keys->n == 0) {
		*why_r = "no SRS secret";
		return -1;
	}
	if (srs_hash(keys->secret[0], text, len, hash) < 0) {
		*why_r = "SRS hash failed";
		return -1;
	}
	n = snprintf(out, size, "%s%.*s=%.*s@%s", prefix, SRS_HASH_LEN, hash,
	             (int)len, text, srs_domain);
	if (n < 0 || (size_t)n != total) {
		*why_r = "SRS address too long";
		return -1;
	}
	return 0;
}

/* The part of an SRS1 local part (len bytes) after its hash, "fwd==rest",
 * when it has that shape: any hash length (it is another forwarder's), a
 * forwarder without '@', a rest that is not empty. */
static const char *
srs1_tail(const char *local, size_t len)
{
	const char *end = local + len, *fwd, *fend;

	fwd = memchr(local + SRS_PREFIX_LEN, '=', len - SRS_PREFIX_LEN);
	if (fwd == NULL)
		return NULL;
	fwd++;
	fend = memchr(fwd, '=', (size_t)(end - fwd));
	if (fend == NULL || fend == fwd || end - fend < 3 || fend[1] != '=' ||
	    memchr(fwd, '@', (size_t)(fend - fwd)) != NULL)
		return NULL;
	return fwd;
}

int
srs_forward(const struct srs_keys *keys, const char *sender,
            const char *srs_domain, uint64_t day, char *out, size_t size,
            const char **why_r)
{
	char text[SRS_LOCAL_MAX], tt[2];
	const char *at = strrchr(sender, '@'), *domain, *tail;
	size_t llen, dlen, slen = strlen(sender);
	unsigned int stamp = (unsigned int)(day % SRS_DAYS);
	int n;

	if (size > 0)
		out[0] = '\0';
	if (at == NULL || at == sender || at[1] == '\0') {
		*why_r = "sender is not local@domain";
		return -1;
	}
	if (srs_domain[0] == '\0' ||
	    !srs_clean(srs_domain, strlen(srs_domain)) ||
	    strpbrk(srs_domain, "@=") != NULL) {
		*why_r = "bad SRS domain";
		return -1;
	}
	if (slen > ADDRESS_MAX) {
		*why_r = "SRS address too long";
		return -1;
	}
	domain = at + 1;
	llen = (size_t)(at - sender);
	dlen = strlen(domain);
	/* Domains never hold '=': the reverse splits domain from local at
	 * the first one. */
	if (!srs_clean(sender, slen) || memchr(domain, '=', dlen) != NULL) {
		*why_r = "sender has characters SRS cannot carry";
		return -1;
	}

	if (srs_has_prefix(sender, '0') && llen > SRS_PREFIX_LEN) {
		/* Another forwarder's SRS0: bounces go back to it. */
		n = snprintf(text, sizeof(text), "%s=%.*s", domain,
		             (int)(llen - 4), sender + 4);
		if (n < 0 || (size_t)n >= sizeof(text)) {
			*why_r = "SRS address too long";
			return -1;
		}
		return srs_build(keys, "SRS1=", text, (size_t)n, srs_domain,
		                 out, size, why_r);
	}
	if (srs_has_prefix(sender, '1') &&
	    (tail = srs1_tail(sender, llen)) != NULL) {
		/* Already SRS1: keep the first forwarder, sign with ours. */
		return srs_build(keys, "SRS1=", tail, (size_t)(at - tail),
		                 srs_domain, out, size, why_r);
	}
	/* An SRS-looking sender that is not well formed is wrapped like
	 * any other: the reverse gives it back unchanged. */
	tt[0] = srs_b32[(stamp >> 5) & 31];
	tt[1] = srs_b32[stamp & 31];
	n = snprintf(text, sizeof(text), "%.2s=%s=%.*s", tt, domain, (int)llen,
	             sender);
	if (n < 0 || (size_t)n >= sizeof(text)) {
		*why_r = "SRS address too long";
		return -1;
	}
	return srs_build(keys, "SRS0=", text, (size_t)n, srs_domain, out, size,
	                 why_r);
}

/* ---------------------------------------------------------------- reverse */

/* Is p the start of SRS_HASH_LEN base32 characters and a '='? */
static bool
srs_hash_field(const char *p)
{
	for (size_t i = 0; i < SRS_HASH_LEN; i++)
		if (srs_b32_value(p[i]) < 0)
			return false;
	return p[SRS_HASH_LEN] == '=';
}

/* Too old, or further ahead than clock skew explains? */
static bool
srs_expired(unsigned int stamp, uint64_t day)
{
	unsigned int age =
	    (unsigned int)((day % SRS_DAYS + SRS_DAYS - stamp) % SRS_DAYS);

	return age > SRS_MAX_AGE_DAYS && age < SRS_DAYS - SRS_SKEW_DAYS;
}

static enum srs_reverse_result
srs_out(char *out, size_t size, const char *a, size_t alen, const char *b,
        size_t blen, const char *c, size_t clen)
{
	if (alen + blen + 1 + clen >= size)
		return SRS_MALFORMED;
	memcpy(out, a, alen);
	memcpy(out + alen, b, blen);
	out[alen + blen] = '@';
	memcpy(out + alen + blen + 1, c, clen);
	out[alen + blen + 1 + clen] = '\0';
	return SRS_OK;
}

/* "HHHHHH=TT=domain=local" */
static enum srs_reverse_result
srs_reverse0(const struct srs_keys *keys, const char *p, uint64_t day,
             char *out, size_t size)
{
	const char *text, *domain, *dend, *local;
	int hi, lo;

	if (!srs_hash_field(p))
		return SRS_MALFORMED;
	text = p + SRS_HASH_LEN + 1;
	hi = srs_b32_value(text[0]);
	lo = hi < 0 ? -1 : srs_b32_value(text[1]);
	if (lo < 0 || text[2] != '=')
		return SRS_MALFORMED;
	domain = text + 3;
	dend = strchr(domain, '=');
	if (dend == NULL || dend == domain || dend[1] == '\0' ||
	    memchr(domain, '@', (size_t)(dend - domain)) != NULL)
		return SRS_MALFORMED;
	local = dend + 1;
	if (!srs_hash_ok(keys, p, text, strlen(text)))
		return SRS_BAD_HASH;
	if (srs_expired((unsigned int)(hi << 5 | lo), day))
		return SRS_EXPIRED;
	return srs_out(out, size, "", 0, local, strlen(local), domain,
	               (size_t)(dend - domain));
}

/* "HHHHHH=fwd==rest": the first forwarder's SRS0 is "SRS0=rest@fwd". Its
 * timestamp and hash are the first forwarder's to check. */
static enum srs_reverse_result
srs_reverse1(const struct srs_keys *keys, const char *p, char *out, size_t size)
{
	const char *fwd, *fend, *rest;

	if (!srs_hash_field(p))
		return SRS_MALFORMED;
	fwd = p + SRS_HASH_LEN + 1;
	fend = strchr(fwd, '=');
	if (fend == NULL || fend == fwd || fend[1] != '=' || fend[2] == '\0' ||
	    memchr(fwd, '@', (size_t)(fend - fwd)) != NULL)
		return SRS_MALFORMED;
	rest = fend + 2;
	if (!srs_hash_ok(keys, p, fwd, strlen(fwd)))
		return SRS_BAD_HASH;
	return srs_out(out, size, "SRS0=", SRS_PREFIX_LEN, rest, strlen(rest),
	               fwd, (size_t)(fend - fwd));
}

enum srs_reverse_result
srs_reverse(const struct srs_keys *keys, const char *local, uint64_t day,
            char *out, size_t size)
{
	size_t len = strnlen(local, SRS_LOCAL_MAX + 1);

	if (size > 0)
		out[0] = '\0';
	if (len > SRS_LOCAL_MAX || !srs_clean(local, len))
		return SRS_MALFORMED;
	if (srs_has_prefix(local, '0'))
		return srs_reverse0(keys, local + SRS_PREFIX_LEN, day, out,
		                    size);
	if (srs_has_prefix(local, '1'))
		return srs_reverse1(keys, local + SRS_PREFIX_LEN, out, size);
	return SRS_MALFORMED;
}

/* ----------------------------------------------------------- secrets file */

/* write(2) all of it, through short writes and signals. */
static int
srs_write_all(int fd, const char *p, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* So that the new name survives a crash, not only the bytes. */
static int
srs_fsync_dir(const char *path)
{
	const char *slash = strrchr(path, '/');
	char *dir;
	int fd, ret;

	if (slash == NULL)
		dir = xstrdup(".");
	else if (slash == path)
		dir = xstrdup("/");
	else
		dir = xstrndup(path, (size_t)(slash - path));
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	free(dir);
	if (fd < 0)
		return -1;
	ret = fsync(fd);
	close(fd);
	return ret;
}

/* A new file with one random secret. 1 when another process made it
 * first (load theirs), 0 when made, -1 with *error_r. */
static int
srs_keys_create(const char *path, char **error_r)
{
	uint8_t secret[SRS_SECRET_LEN];
	char
	    line[sizeof(SRS_FILE_HEADER) + BASE64_ENCODED_SIZE(SRS_SECRET_LEN)];
	size_t len;
	int fd, ret = -1;

	if (RAND_bytes(secret, sizeof(secret)) != 1) {
		*error_r = xasprintf("%s: no random bytes for a secret", path);
		return -1;
	}
	memcpy(line, SRS_FILE_HEADER, sizeof(SRS_FILE_HEADER) - 1);
	len = sizeof(SRS_FILE_HEADER) - 1;
	len += base64_encode(secret, sizeof(secret), line + len);
	line[len++] = '\n';
	OPENSSL_cleanse(secret, sizeof(secret));

	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 && errno == EEXIST) {
		ret = 1;
	} else if (fd < 0) {
		*error_r = xasprintf("open(%s): %s", path, strerror(errno));
	} else if (srs_write_all(fd, line, len) < 0 || fsync(fd) < 0) {
		*error_r = xasprintf("write(%s): %s", path, strerror(errno));
		/* No half-written file to refuse at every later start. */
		unlink(path);
		close(fd);
	} else if (close(fd) < 0) {
		*error_r = xasprintf("close(%s): %s", path, strerror(errno));
		unlink(path);
	} else if (srs_fsync_dir(path) < 0) {
		*error_r = xasprintf("fsync(directory of %s): %s", path,
		                     strerror(errno));
	} else {
		ret = 0;
	}
	OPENSSL_cleanse(line, sizeof(line));
	return ret;
}

/* Read all of path, at most SRS_FILE_MAX bytes, into *buf_r (NUL
 * terminated, SRS_FILE_MAX + 1 bytes). -1 with errno, or with *error_r
 * for a file that is too long or not a file. */
static int
srs_read_file(const char *path, char **buf_r, size_t *len_r, char **error_r)
{
	char *buf;
	size_t len = 0;
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -1;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		*error_r = xasprintf("%s: not a regular file", path);
		close(fd);
		return -1;
	}
	buf = xmalloc(SRS_FILE_MAX + 2);
	/* One byte past the cap tells a file that is too long. */
	while (len <= SRS_FILE_MAX) {
		ssize_t n = read(fd, buf + len, SRS_FILE_MAX + 1 - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			*error_r =
			    xasprintf("read(%s): %s", path, strerror(errno));
			break;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	if (*error_r == NULL && len > SRS_FILE_MAX)
		*error_r =
		    xasprintf("%s: longer than %d bytes", path, SRS_FILE_MAX);
	if (*error_r != NULL) {
		OPENSSL_cleanse(buf, SRS_FILE_MAX + 2);
		free(buf);
		return -1;
	}
	buf[len] = '\0';
	*buf_r = buf;
	*len_r = len;
	return 0;
}

static bool
srs_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* One line (without its '\n'): blank and '#' lines are skipped (0), a
 * secret is added (0), anything else is -1 with *error_r. */
static int
srs_keys_line(const char *path, unsigned int lineno, const char *p, size_t len,
              struct srs_keys *keys, char **error_r)
{
	uint8_t secret[SRS_LINE_MAX];
	size_t n = 0;

	while (len > 0 && srs_space(*p)) {
		p++;
		len--;
	}
	while (len > 0 && srs_space(p[len - 1]))
		len--;
	if (len == 0 || p[0] == '#')
		return 0;
	/* The oldest secrets past the cap are ignored, not refused: they
	 * would only check addresses made long ago. */
	if (keys->n == SRS_SECRETS_MAX)
		return 0;
	if (len > SRS_LINE_MAX) {
		*error_r = xasprintf("%s line %u: too long for a secret", path,
		                     lineno);
		return -1;
	}
	if (base64_decode(p, len, secret, sizeof(secret), &n) < 0) {
		*error_r = xasprintf("%s line %u: not base64", path, lineno);
		return -1;
	}
	if (n != SRS_SECRET_LEN) {
		OPENSSL_cleanse(secret, sizeof(secret));
		*error_r = xasprintf("%s line %u: secret of %zu bytes, not %d",
		                     path, lineno, n, SRS_SECRET_LEN);
		return -1;
	}
	memcpy(keys->secret[keys->n++], secret, SRS_SECRET_LEN);
	OPENSSL_cleanse(secret, sizeof(secret));
	return 0;
}

int
srs_keys_load(const char *path, bool create, struct srs_keys *keys,
              char **error_r)
{
	char *buf = NULL, *p, *end;
	size_t len = 0;
	unsigned int lineno = 0;
	int ret = 0;

	*error_r = NULL;
	OPENSSL_cleanse(keys, sizeof(*keys));
	keys->n = 0;
	if (srs_read_file(path, &buf, &len, error_r) < 0) {
		if (*error_r != NULL)
			return -1;
		if (errno != ENOENT || !create) {
			*error_r =
			    xasprintf("open(%s): %s", path, strerror(errno));
			return -1;
		}
		if (srs_keys_create(path, error_r) < 0)
			return -1;
		if (srs_read_file(path, &buf, &len, error_r) < 0) {
			if (*error_r == NULL)
				*error_r = xasprintf("open(%s): %s", path,
				                     strerror(errno));
			return -1;
		}
	}
	for (p = buf; ret == 0 && p < buf + len; p = end + 1) {
		end = memchr(p, '\n', (size_t)(buf + len - p));
		if (end == NULL)
			end = buf + len;
		ret = srs_keys_line(path, ++lineno, p, (size_t)(end - p), keys,
		                    error_r);
	}
	OPENSSL_cleanse(buf, len);
	free(buf);
	if (ret == 0 && keys->n == 0) {
		*error_r = xasprintf("%s: no secret", path);
		ret = -1;
	}
	if (ret < 0) {
		OPENSSL_cleanse(keys, sizeof(*keys));
		keys->n = 0;
	}
	return ret;
}
