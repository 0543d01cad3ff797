/* SPF macros (RFC 7208 §7): syntax, expansion with transformers and URL
 * escaping, the domain-spec rules and the names we are willing to query.
 * SECURITY: macro strings come from DNS publishers, values from the peer
 * (MAIL FROM, HELO); output goes to a bounded buf and never past its max. */
#include "mailauth/spf_int.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/xmalloc.h"

#define MACRO_KEEP_MAX 1000 /* %{d99999}: any count past this keeps all */
#define DELIMITERS ".-+,/_="

struct macro {
	char letter;         /* lower case; 0 for %% %_ %- */
	bool escape;         /* upper-case letter: URL-escape the value */
	bool reverse;        /* "r" transformer */
	unsigned int keep;   /* right-hand parts kept; 0: all */
	char delims[8];      /* distinct delimiters, "" for the default "." */
	const char *literal; /* for %% %_ %- */
};

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

static char
to_lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static int
fail(const char **error_r, const char *reason)
{
	if (error_r != NULL)
		*error_r = reason;
	return -1;
}

static const char *
mode_letters(enum spf_macro_mode mode)
{
	return mode == SPF_MACRO_DOMAIN ? "slodipvh" : "slodipvhcrt";
}

/* The macro-expand at s[0] == '%' (len > 0): bytes consumed, or 0 with a
 * reason. */
static size_t
macro_parse(const char *s, size_t len, enum spf_macro_mode mode,
            struct macro *m, const char **error_r)
{
	size_t i;
	char c;

	memset(m, 0, sizeof(*m));
	if (len < 2) {
		fail(error_r, "'%' at the end of a macro string");
		return 0;
	}
	switch (s[1]) {
	case '%':
		m->literal = "%";
		return 2;
	case '_':
		m->literal = " ";
		return 2;
	case '-':
		m->literal = "%20";
		return 2;
	case '{':
		break;
	default:
		fail(error_r, "'%' not followed by '{', '%', '_' or '-'");
		return 0;
	}
	if (len < 4 || !is_alpha((unsigned char)s[2])) {
		fail(error_r, "bad macro letter");
		return 0;
	}
	c = to_lower(s[2]);
	if (strchr(mode_letters(mode), c) == NULL) {
		fail(error_r,
		     mode == SPF_MACRO_DOMAIN && strchr("crt", c) != NULL
		         ? "macro letter allowed in exp text only"
		         : "unknown macro letter");
		return 0;
	}
	m->letter = c;
	m->escape = s[2] != c;
	i = 3;
	if (i < len && is_digit((unsigned char)s[i])) {
		unsigned int n = 0;

		while (i < len && is_digit((unsigned char)s[i])) {
			n = n * 10 + (unsigned int)(s[i] - '0');
			if (n > MACRO_KEEP_MAX)
				n = MACRO_KEEP_MAX;
			i++;
		}
		if (n == 0) {
			fail(error_r, "macro keeps zero parts");
			return 0;
		}
		m->keep = n;
	}
	if (i < len && (s[i] == 'r' || s[i] == 'R')) {
		m->reverse = true;
		i++;
	}
	while (i < len && s[i] != '\0' && strchr(DELIMITERS, s[i]) != NULL) {
		size_t n = strlen(m->delims);

		if (strchr(m->delims, s[i]) == NULL &&
		    n + 1 < sizeof(m->delims))
			m->delims[n] = s[i];
		i++;
	}
	if (i >= len || s[i] != '}') {
		fail(error_r, "bad macro transformer or delimiter");
		return 0;
	}
	return i + 1;
}

static bool
literal_ok(unsigned char c, enum spf_macro_mode mode)
{
	if (c == ' ')
		return mode == SPF_MACRO_EXPLAIN;
	return c >= 0x21 && c <= 0x7e && c != '%';
}

int
spf_macro_check(const char *s, size_t len, enum spf_macro_mode mode,
                const char **error_r)
{
	struct macro m;
	size_t i = 0, n;

	while (i < len) {
		if (s[i] == '%') {
			if ((n = macro_parse(s + i, len - i, mode, &m,
			                     error_r)) == 0)
				return -1;
			i += n;
		} else if (!literal_ok((unsigned char)s[i], mode)) {
			return fail(error_r, "bad character in macro string");
		} else {
			i++;
		}
	}
	return 0;
}

void
spf_ip_text(const struct spf_ip *ip, char *text)
{
	if (inet_ntop(ip->family, ip->addr, text, SPF_IP_TEXT_MAX) == NULL)
		memcpy(text, "unknown", sizeof("unknown"));
}

/* %{i}: dotted quad, or the 32 nibbles of IPv6 with dots (§7.3). */
static void
ip_dotted(const struct spf_ip *ip, char *out, size_t size)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;

	if (ip->family != AF_INET6) {
		spf_ip_text(ip, out);
		return;
	}
	for (size_t k = 0; k < 16 && o + 4 <= size; k++) {
		out[o++] = hex[ip->addr[k] >> 4];
		out[o++] = '.';
		out[o++] = hex[ip->addr[k] & 0xf];
		out[o++] = k == 15 ? '\0' : '.';
	}
}

static const char *
macro_value(const struct spf_macro_env *env, char letter, char *tmp,
            size_t size)
{
	const char *v = NULL;

	switch (letter) {
	case 's':
		v = env->sender;
		break;
	case 'l':
		v = env->local;
		break;
	case 'o':
		v = env->sender_domain;
		break;
	case 'd':
		v = env->domain;
		break;
	case 'h':
		v = env->helo;
		break;
	case 'r':
		v = env->receiver != NULL ? env->receiver : "unknown";
		break;
	case 'v':
		v = env->ip->family == AF_INET6 ? "ip6" : "in-addr";
		break;
	case 'c':
		spf_ip_text(env->ip, tmp);
		v = tmp;
		break;
	case 'i':
		ip_dotted(env->ip, tmp, size);
		v = tmp;
		break;
	case 't':
		snprintf(tmp, size, "%lld", env->now);
		v = tmp;
		break;
	case 'p':
		v = "unknown";
		if (env->ptr_name != NULL && env->domain != NULL)
			v = env->ptr_name(env->arg, env->domain);
		break;
	default:
		break;
	}
	return v != NULL ? v : "";
}

static bool
url_unreserved(unsigned char c)
{
	return is_alnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

static int
append_part(struct buf *out, const char *p, size_t n, bool escape)
{
	static const char hex[] = "0123456789ABCDEF";

	if (!escape)
		return buf_append(out, p, n);
	for (size_t k = 0; k < n; k++) {
		unsigned char c = (unsigned char)p[k];
		char e[3] = {'%', hex[c >> 4], hex[c & 0xf]};

		if (url_unreserved(c) ? buf_append_byte(out, c) < 0
		                      : buf_append(out, e, 3) < 0)
			return -1;
	}
	return 0;
}

/* Split v on the delimiters, reverse, keep the right-hand parts, join with
 * dots (§7.3), URL-escape for an upper-case letter. */
static int
append_transformed(struct buf *out, const char *v, const struct macro *m)
{
	const char *delims = m->delims[0] != '\0' ? m->delims : ".";
	size_t vlen = strlen(v), nparts = 1, keep, k = 0, start = 0;
	size_t *off, *plen;
	int rc = 0;

	if (m->keep == 0 && !m->reverse && strcmp(delims, ".") == 0)
		return append_part(out, v, vlen, m->escape);
	for (size_t i = 0; i < vlen; i++)
		if (strchr(delims, v[i]) != NULL)
			nparts++;
	off = xcalloc(nparts, sizeof(*off));
	plen = xcalloc(nparts, sizeof(*plen));
	for (size_t i = 0; i <= vlen; i++) {
		if (i == vlen || strchr(delims, v[i]) != NULL) {
			off[k] = start;
			plen[k] = i - start;
			k++;
			start = i + 1;
		}
	}
	keep = m->keep != 0 && m->keep < nparts ? m->keep : nparts;
	for (size_t j = nparts - keep; j < nparts && rc == 0; j++) {
		size_t idx = m->reverse ? nparts - 1 - j : j;

		if (j > nparts - keep && buf_append_byte(out, '.') < 0)
			rc = -1;
		else
			rc = append_part(out, v + off[idx], plen[idx],
			                 m->escape);
	}
	free(off);
	free(plen);
	return rc;
}

int
spf_macro_expand(const struct spf_macro_env *env, const char *s, size_t len,
                 enum spf_macro_mode mode, struct buf *out,
                 const char **error_r)
{
	struct macro m;
	char tmp[80];
	size_t i = 0, n;
	int rc;

	while (i < len) {
		if (s[i] != '%') {
			if (!literal_ok((unsigned char)s[i], mode))
				return fail(error_r,
				            "bad character in macro string");
			if (buf_append_byte(out, (uint8_t)s[i]) < 0)
				return fail(error_r,
				            "macro expansion too long");
			i++;
			continue;
		}
		if ((n = macro_parse(s + i, len - i, mode, &m, error_r)) == 0)
			return -1;
		i += n;
		if (m.literal != NULL)
			rc = buf_append_str(out, m.literal);
		else
			rc = append_transformed(
			    out, macro_value(env, m.letter, tmp, sizeof(tmp)),
			    &m);
		if (rc < 0)
			return fail(error_r, "macro expansion too long");
	}
	return 0;
}

/* toplabel = ( *alphanum ALPHA *alphanum ) /
 *            ( 1*alphanum "-" *( alphanum / "-" ) alphanum ) */
static bool
toplabel_valid(const char *t, size_t n)
{
	bool alpha = false, dash = false;

	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)t[i];

		if (c == '-')
			dash = true;
		else if (is_alpha(c))
			alpha = true;
		else if (!is_digit(c))
			return false;
	}
	if (dash)
		return is_alnum((unsigned char)t[0]) &&
		       is_alnum((unsigned char)t[n - 1]);
	return alpha;
}

bool
spf_domain_spec_valid(const char *s, size_t len)
{
	struct macro m;
	size_t i = 0, n, literal_from = 0, end, st;
	bool last_macro = false;

	if (len == 0 || spf_macro_check(s, len, SPF_MACRO_DOMAIN, NULL) < 0)
		return false;
	while (i < len) {
		if (s[i] == '%') {
			n = macro_parse(s + i, len - i, SPF_MACRO_DOMAIN, &m,
			                NULL);
			i += n;
			literal_from = i;
			last_macro = true;
		} else {
			i++;
			last_macro = false;
		}
	}
	if (last_macro)
		return true;
	/* domain-end = "." toplabel [ "." ], its dot a literal one */
	end = s[len - 1] == '.' ? len - 1 : len;
	st = end;
	while (st > literal_from && s[st - 1] != '.')
		st--;
	if (st <= literal_from || s[st - 1] != '.')
		return false;
	return toplabel_valid(s + st, end - st);
}

static bool
name_check(const char *name, size_t len, bool strict, size_t *labels_r)
{
	size_t label = 0, labels = 1;

	if (len == 0 || len > SPF_DOMAIN_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];

		if (c == '.') {
			if (label == 0)
				return false;
			label = 0;
			labels++;
			continue;
		}
		if (strict ? !(is_alnum(c) || c == '-' || c == '_')
		           : (c < 0x20 || c > 0x7e || c == '\\'))
			return false;
		if (++label > 63)
			return false;
	}
	*labels_r = labels;
	return label > 0;
}

bool
spf_name_valid(const char *name, size_t len)
{
	size_t labels;

	return name_check(name, len, false, &labels);
}

bool
spf_domain_initial_valid(const char *name, size_t len)
{
	size_t labels;

	return name_check(name, len, true, &labels) && labels >= 2;
}

int
spf_expand_domain(const struct spf_macro_env *env, const char *spec, size_t len,
                  char *name, const char **error_r)
{
	struct buf b;
	const char *p;
	size_t n;
	int rc = -1;

	buf_init(&b, SPF_EXPAND_MAX);
	if (spf_macro_expand(env, spec, len, SPF_MACRO_DOMAIN, &b, error_r) < 0)
		goto out;
	p = (const char *)b.data;
	n = b.len;
	if (n > 0 && p[n - 1] == '.')
		n--;
	while (n > SPF_DOMAIN_MAX) {
		const char *dot = memchr(p, '.', n);

		if (dot == NULL)
			break;
		n -= (size_t)(dot + 1 - p);
		p = dot + 1;
	}
	if (!spf_name_valid(p, n)) {
		fail(error_r, "malformed target name");
		goto out;
	}
	memcpy(name, p, n);
	name[n] = '\0';
	rc = 0;
out:
	buf_free(&b);
	return rc;
}
