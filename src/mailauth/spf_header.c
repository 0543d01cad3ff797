/* SPF results into header fields: Received-SPF (RFC 7208 §9.1) and the
 * Authentication-Results resinfo (§9.2, RFC 8601 §2.7.2).
 * SECURITY: the sender, HELO and problem text come from the peer or from
 * DNS; each goes out as a dot-atom/token only when it is one, otherwise
 * quoted, and control bytes are replaced, so no value can end the field. */
#include "mailauth/spf.h"

#include <stdio.h>
#include <string.h>

static bool
is_atext(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') ||
	       (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/* RFC 5322 dot-atom-text. */
static bool
is_dot_atom(const char *s, size_t n)
{
	if (n == 0 || s[0] == '.' || s[n - 1] == '.')
		return false;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '.' ? s[i + 1] == '.'
		                : !is_atext((unsigned char)s[i]))
			return false;
	}
	return true;
}

/* RFC 2045 token. */
static bool
is_token(const char *s)
{
	if (*s == '\0')
		return false;
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (c <= 0x20 || c >= 0x7f || strchr("()<>@,;:\\\"/[]?=", c))
			return false;
	}
	return true;
}

/* Letters, digits, '-', '_' and dots: a domain as it can stand in a
 * pvalue. */
static bool
is_plain_domain(const char *s)
{
	if (*s == '\0')
		return false;
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '-' || c == '_' ||
		      c == '.'))
			return false;
	}
	return true;
}

/* Control bytes become '?'; UTF-8 is kept (RFC 6532). */
static int
append_safe_byte(struct buf *out, unsigned char c, const char *escaped)
{
	if (c < 0x20 || c == 0x7f)
		c = '?';
	if (strchr(escaped, c) != NULL && buf_append_byte(out, '\\') < 0)
		return -1;
	return buf_append_byte(out, c);
}

static int
append_quoted(struct buf *out, const char *s)
{
	if (buf_append_byte(out, '"') < 0)
		return -1;
	for (; *s != '\0'; s++)
		if (append_safe_byte(out, (unsigned char)*s, "\"\\") < 0)
			return -1;
	return buf_append_byte(out, '"');
}

/* Comment text: parentheses and backslashes escaped. */
static int
append_ctext(struct buf *out, const char *s)
{
	for (; *s != '\0'; s++)
		if (append_safe_byte(out, (unsigned char)*s, "()\\") < 0)
			return -1;
	return 0;
}

/* key=value, value a dot-atom or a quoted-string (§9.1). */
static int
append_pair(struct buf *out, bool *first, const char *key, const char *value)
{
	if (value == NULL)
		return 0;
	if ((!*first && buf_append_str(out, "; ") < 0) ||
	    buf_append_str(out, key) < 0 || buf_append_byte(out, '=') < 0)
		return -1;
	*first = false;
	if (is_dot_atom(value, strlen(value)))
		return buf_append_str(out, value);
	return append_quoted(out, value);
}

static int
append_comment(const struct spf_outcome *o, struct buf *out)
{
	char text[SPF_IP_TEXT_MAX + 128];
	const char *s = o->sender != NULL ? o->sender : "";

	if (buf_append_str(out, " (") < 0)
		return -1;
	if (o->receiver != NULL && (append_ctext(out, o->receiver) < 0 ||
	                            buf_append_str(out, ": ") < 0))
		return -1;
	switch (o->result) {
	case SPF_PASS:
	case SPF_FAIL:
	case SPF_SOFTFAIL:
		if (buf_append_str(out, o->result == SPF_SOFTFAIL
		                            ? "domain of transitioning "
		                            : "domain of ") < 0 ||
		    append_ctext(out, s) < 0)
			return -1;
		snprintf(text, sizeof(text), " %s %s as permitted sender",
		         o->result == SPF_PASS ? "designates"
		                               : "does not designate",
		         o->client_ip);
		break;
	case SPF_NEUTRAL:
		if (buf_printf(out,
		               "%s is neither permitted nor denied by "
		               "domain of ",
		               o->client_ip) < 0 ||
		    append_ctext(out, s) < 0)
			return -1;
		text[0] = '\0';
		break;
	case SPF_NONE:
		if (buf_append_str(out, "domain of ") < 0 ||
		    append_ctext(out, s) < 0)
			return -1;
		snprintf(text, sizeof(text),
		         " does not designate permitted sender hosts");
		break;
	case SPF_TEMPERROR:
	case SPF_PERMERROR:
		if (buf_append_str(out, o->result == SPF_TEMPERROR
		                            ? "temporary error"
		                            : "permanent error") < 0 ||
		    buf_append_str(out, " in processing domain of ") < 0 ||
		    append_ctext(out, s) < 0)
			return -1;
		text[0] = '\0';
		break;
	}
	if (buf_append_str(out, text) < 0)
		return -1;
	return buf_append_byte(out, ')');
}

int
spf_received_spf(const struct spf_outcome *o, struct buf *out)
{
	bool first = true;
	bool error = o->result == SPF_TEMPERROR || o->result == SPF_PERMERROR;

	if (buf_append_str(out, spf_result_name(o->result)) < 0 ||
	    append_comment(o, out) < 0 || buf_append_byte(out, ' ') < 0)
		return -1;
	if (append_pair(out, &first, "client-ip", o->client_ip) < 0 ||
	    (o->identity == SPF_IDENTITY_MAILFROM &&
	     append_pair(out, &first, "envelope-from", o->sender) < 0) ||
	    append_pair(out, &first, "helo", o->helo) < 0 ||
	    append_pair(out, &first, "receiver", o->receiver) < 0 ||
	    append_pair(out, &first, "identity",
	                o->identity == SPF_IDENTITY_HELO ? "helo"
	                                                 : "mailfrom") < 0 ||
	    append_pair(out, &first, "mechanism", o->mechanism) < 0 ||
	    (error && o->problem[0] != '\0' &&
	     append_pair(out, &first, "problem", o->problem) < 0))
		return -1;
	return 0;
}

/* pvalue = [ [ local-part ] "@" ] domain-name, or a quoted value. */
static int
append_pvalue(struct buf *out, const char *v)
{
	const char *at = strrchr(v, '@');

	if (at != NULL && is_dot_atom(v, (size_t)(at - v)) &&
	    is_plain_domain(at + 1))
		return buf_append_str(out, v);
	if (at == NULL && is_token(v))
		return buf_append_str(out, v);
	return append_quoted(out, v);
}

int
spf_auth_results(const struct spf_outcome *o, struct buf *out)
{
	if (buf_append_str(out, "spf=") < 0 ||
	    buf_append_str(out, spf_result_name(o->result)) < 0)
		return -1;
	if (o->identity == SPF_IDENTITY_HELO) {
		if (buf_append_str(out, " smtp.helo=") < 0)
			return -1;
		return append_pvalue(out, o->helo != NULL ? o->helo : "");
	}
	if (buf_append_str(out, " smtp.mailfrom=") < 0)
		return -1;
	return append_pvalue(out, o->sender != NULL ? o->sender : "");
}
