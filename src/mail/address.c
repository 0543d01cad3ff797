/* Mail addresses: RFC 5321 §4.1.2 mailbox syntax (RFC 6531 UTF-8 local parts),
 * IDNA2008 domains through libidn2, directory keys and subaddresses.
 * SECURITY: input comes from peers. Its length is capped before any work,
 * every byte is checked (NUL, controls, DEL, invalid UTF-8), every copy is
 * bounded by the limits in address.h, and errors are static strings. */
#include "mail/address.h"

#include <assert.h>
#include <idn2.h>
#include <stdint.h>
#include <string.h>

#include "core/log.h"
#include "core/utf8.h"

#define DNS_LABEL_MAX 63

/* Non-transitional UTS#46 (ß, ς, ZWJ/ZWNJ kept), NFC applied to the input.
 * No fallback to transitional processing: names IDNA2008 refuses (symbols,
 * emoji) are refused in both U-label and A-label form, so the two forms of a
 * name can never normalize differently. */
#define ADDRESS_IDN2_FLAGS (IDN2_NFC_INPUT | IDN2_NONTRANSITIONAL)

enum scan_result {
	SCAN_OK,
	SCAN_NUL,
	SCAN_CONTROL,
	SCAN_UTF8,
};

static int
fail(const char **error_r, const char *reason)
{
	if (error_r != NULL)
		*error_r = reason;
	return -1;
}

/* Refuse NUL, C0 controls, DEL, C1 controls (U+0080..U+009F) and anything
 * that is not well-formed UTF-8 (overlong forms, surrogates, > U+10FFFF). */
static enum scan_result
scan_bytes(const unsigned char *p, size_t len)
{
	size_t i = 0;

	while (i < len) {
		unsigned char c = p[i];
		uint32_t cp;
		size_t n;

		if (c == 0)
			return SCAN_NUL;
		if (c < 0x20 || c == 0x7f)
			return SCAN_CONTROL;
		if ((n = utf8_decode(p + i, len - i, &cp)) == 0)
			return SCAN_UTF8;
		if (cp >= 0x80 && cp <= 0x9f)
			return SCAN_CONTROL;
		i += n;
	}
	return SCAN_OK;
}

static bool
is_alpha(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool
is_let_dig(unsigned char c)
{
	return is_alpha(c) || (c >= '0' && c <= '9');
}

static unsigned char
ascii_lower(unsigned char c)
{
	return c >= 'A' && c <= 'Z' ? (unsigned char)(c - 'A' + 'a') : c;
}

/* RFC 5322 atext, plus UTF8-non-ascii (RFC 6531): the caller has already
 * checked that non-ASCII bytes form valid UTF-8. */
static bool
is_atext(unsigned char c)
{
	if (c >= 0x80 || is_let_dig(c))
		return true;
	return c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

/* NULL when s[0..len) is a Dot-string, else the reason. */
static const char *
dot_string_error(const unsigned char *s, size_t len)
{
	if (len == 0)
		return "empty local part";
	if (s[0] == '.')
		return "local part: leading dot";
	if (s[len - 1] == '.')
		return "local part: trailing dot";
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '.') {
			if (s[i + 1] == '.')
				return "local part: consecutive dots";
		} else if (!is_atext(s[i])) {
			return "local part: invalid character";
		}
	}
	return NULL;
}

static bool
has_non_ascii(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if ((unsigned char)s[i] >= 0x80)
			return true;
	}
	return false;
}

/* The Local-part at the start of text[0..len), which has passed scan_bytes().
 * On success addr->local/quoted/utf8 are set and *used_r is the length of the
 * local part as written; text[*used_r] is the "@". */
static int
parse_local(const char *text, size_t len, struct address *addr, size_t *used_r,
            const char **error_r)
{
	const unsigned char *p = (const unsigned char *)text;
	size_t i, o = 0;
	const char *reason;
	const char *at;

	if (len == 0 || p[0] == '@')
		return fail(error_r, "empty local part");
	if (p[0] != '"') {
		at = memchr(text, '@', len);
		if (at == NULL)
			return fail(error_r, "missing @");
		i = (size_t)(at - text);
		if (i > ADDRESS_LOCAL_MAX)
			return fail(error_r, "local part over 64 octets");
		if ((reason = dot_string_error(p, i)) != NULL)
			return fail(error_r, reason);
		memcpy(addr->local, text, i);
		addr->local[i] = '\0';
		addr->quoted = false;
		addr->utf8 = has_non_ascii(text, i);
		*used_r = i;
		return 0;
	}

	/* Quoted-string: qtextSMTP (any printable ASCII but '"' and '\', or
	 * UTF-8 under RFC 6531) and quoted-pairSMTP ('\' + %d32-126). The
	 * closing quote at offset i makes the local part i + 1 octets, so
	 * stopping at i == 64 keeps every copy inside addr->local. */
	for (i = 1;; i++) {
		if (i >= ADDRESS_LOCAL_MAX)
			return fail(error_r, "local part over 64 octets");
		if (i >= len)
			return fail(error_r,
			            "local part: unterminated quoted string");
		if (p[i] == '"')
			break;
		if (p[i] == '\\') {
			if (i + 1 >= len)
				return fail(
				    error_r,
				    "local part: unterminated quoted string");
			if (p[i + 1] < 32 || p[i + 1] > 126)
				return fail(error_r,
				            "local part: invalid escape");
			i++;
		}
		addr->local[o++] = (char)p[i];
	}
	i++; /* the closing quote */
	if (o == 0)
		return fail(error_r, "empty local part");
	if (i == len)
		return fail(error_r, "missing @");
	if (p[i] != '@')
		return fail(error_r, "local part: text after quoted string");
	addr->local[o] = '\0';
	addr->quoted = true;
	addr->utf8 = has_non_ascii(addr->local, o);
	*used_r = i;
	return 0;
}

/* An ASCII label as DNS wants it: Let-dig [Ldh-str], at most 63 octets. */
static const char *
ldh_label_error(const char *s, size_t len)
{
	if (len > DNS_LABEL_MAX)
		return "domain: label over 63 octets";
	for (size_t i = 0; i < len; i++) {
		if (!is_let_dig((unsigned char)s[i]) && s[i] != '-')
			return "domain: invalid character";
	}
	if (s[0] == '-' || s[len - 1] == '-')
		return "domain: label starts or ends with a hyphen";
	return NULL;
}

static bool
is_xn_label(const char *s, size_t len)
{
	return len >= 4 && ascii_lower((unsigned char)s[0]) == 'x' &&
	       ascii_lower((unsigned char)s[1]) == 'n' && s[2] == '-' &&
	       s[3] == '-';
}

/* A lower-case "xn--" label is a valid A-label when libidn2 decodes it,
 * checks the U-label under IDNA2008 and encodes it back to the same bytes. */
static bool
alabel_valid(const char *label)
{
	uint8_t *ascii = NULL;
	bool ok;
	int rc;

	rc = idn2_lookup_u8((const uint8_t *)label, &ascii, ADDRESS_IDN2_FLAGS);
	ok = rc == IDN2_OK && strcmp((const char *)ascii, label) == 0;
	if (rc != IDN2_OK)
		log_debug(NULL,
		          "event=address_alabel_invalid label=%s error=%s",
		          label, idn2_strerror_name(rc));
	idn2_free(ascii);
	return ok;
}

/* One label with non-ASCII characters into its A-label (lower case). */
static const char *
ulabel_convert(const char *label, char out[DNS_LABEL_MAX + 1])
{
	static const char *const invalid = "domain: invalid international name";
	uint8_t *ascii = NULL;
	size_t n;
	int rc;

	rc = idn2_lookup_u8((const uint8_t *)label, &ascii, ADDRESS_IDN2_FLAGS);
	if (rc != IDN2_OK) {
		log_debug(NULL,
		          "event=address_ulabel_invalid label=%s error=%s",
		          label, idn2_strerror_name(rc));
		idn2_free(ascii);
		return invalid;
	}
	/* UTS#46 mapping can turn a label into anything ASCII ("。" into a
	 * dot, fullwidth "＿" into "_"): check the result like typed input. */
	n = strlen((const char *)ascii);
	if (n == 0 || ldh_label_error((const char *)ascii, n) != NULL ||
	    (is_xn_label((const char *)ascii, n) &&
	     !alabel_valid((const char *)ascii))) {
		idn2_free(ascii);
		return invalid;
	}
	memcpy(out, ascii, n + 1);
	idn2_free(ascii);
	return NULL;
}

/* Domain = sub-domain *("." sub-domain) from text[0..len) (already through
 * scan_bytes()) into out as lower-case A-labels. Labels are converted one by
 * one, so an ASCII label is never held to IDNA rules ("ab--cd" stays valid);
 * libidn2 checks Bidi per label too. */
static int
domain_parse(const char *text, size_t len, char out[ADDRESS_DOMAIN_MAX + 1],
             const char **error_r)
{
	char label[ADDRESS_INPUT_MAX + 1];
	char alabel[DNS_LABEL_MAX + 1];
	const char *reason;
	size_t start = 0, o = 0;

	if (len == 0)
		return fail(error_r, "domain: empty");
	if (text[0] == '[')
		return fail(error_r,
		            "domain: address literals are not supported");
	if (text[0] == '.')
		return fail(error_r, "domain: leading dot");
	if (text[len - 1] == '.')
		return fail(error_r, "domain: trailing dot");

	while (start < len) {
		const char *dot = memchr(text + start, '.', len - start);
		size_t end = dot != NULL ? (size_t)(dot - text) : len;
		size_t n = end - start;
		const char *src;

		if (n == 0)
			return fail(error_r, "domain: empty label");
		assert(n < sizeof(label));
		memcpy(label, text + start, n);
		label[n] = '\0';
		if (has_non_ascii(label, n)) {
			for (size_t i = 0; i < n; i++) {
				unsigned char c = (unsigned char)label[i];
				if (c < 0x80 && !is_let_dig(c) && c != '-')
					return fail(
					    error_r,
					    "domain: invalid character");
			}
			if ((reason = ulabel_convert(label, alabel)) != NULL)
				return fail(error_r, reason);
			src = alabel;
			n = strlen(alabel);
		} else {
			if ((reason = ldh_label_error(label, n)) != NULL)
				return fail(error_r, reason);
			for (size_t i = 0; i < n; i++)
				label[i] =
				    (char)ascii_lower((unsigned char)label[i]);
			if (is_xn_label(label, n) && !alabel_valid(label))
				return fail(error_r, "domain: invalid A-label");
			src = label;
		}
		if (o + (o > 0) + n > ADDRESS_DOMAIN_MAX)
			return fail(error_r, "domain: over 255 octets");
		if (o > 0)
			out[o++] = '.';
		memcpy(out + o, src, n);
		o += n;
		start = end + 1;
	}
	out[o] = '\0';
	return 0;
}

int
address_parse(const char *text, size_t len, struct address *addr,
              const char **error_r)
{
	struct address a;
	size_t used;

	if (len > ADDRESS_INPUT_MAX)
		return fail(error_r, "address over 1024 octets");
	if (len == 0)
		return fail(error_r, "empty address");
	switch (scan_bytes((const unsigned char *)text, len)) {
	case SCAN_OK:
		break;
	case SCAN_NUL:
		return fail(error_r, "NUL byte in address");
	case SCAN_CONTROL:
		return fail(error_r, "control character in address");
	case SCAN_UTF8:
		return fail(error_r, "invalid UTF-8 in address");
	}
	memset(&a, 0, sizeof(a));
	if (parse_local(text, len, &a, &used, error_r) < 0)
		return -1;
	if (domain_parse(text + used + 1, len - used - 1, a.domain, error_r) <
	    0)
		return -1;
	if (used + 1 + strlen(a.domain) > ADDRESS_MAX)
		return fail(error_r, "address over 256 octets");
	*addr = a;
	return 0;
}

int
address_domain_normalize(const char *text, size_t len, char *out,
                         const char **error_r)
{
	char domain[ADDRESS_DOMAIN_MAX + 1];

	if (len > ADDRESS_INPUT_MAX)
		return fail(error_r, "domain: over 1024 octets");
	switch (scan_bytes((const unsigned char *)text, len)) {
	case SCAN_OK:
		break;
	case SCAN_NUL:
		return fail(error_r, "domain: NUL byte");
	case SCAN_CONTROL:
		return fail(error_r, "domain: control character");
	case SCAN_UTF8:
		return fail(error_r, "domain: invalid UTF-8");
	}
	if (domain_parse(text, len, domain, error_r) < 0)
		return -1;
	memcpy(out, domain, strlen(domain) + 1);
	return 0;
}

/* Bounded output for the key functions: the buffer sizes in address.h always
 * fit (a local part of 256 octets, all escaped, plus a 255-octet domain), so
 * running out of room is a caller bug. */
struct key_out {
	char *out;
	size_t size;
	size_t len;
};

static void
key_put(struct key_out *k, char c)
{
	assert(k->len + 1 < k->size);
	if (k->len + 1 < k->size)
		k->out[k->len++] = c;
}

static void
key_put_domain(struct key_out *k, const struct address *addr)
{
	size_t n = strnlen(addr->domain, sizeof(addr->domain) - 1);

	key_put(k, '@');
	for (size_t i = 0; i < n; i++)
		key_put(k, addr->domain[i]);
	k->out[k->len] = '\0';
}

void
address_key(const struct address *addr, char *out, size_t outlen)
{
	unsigned char local[sizeof(addr->local)] = {0};
	size_t n = strnlen(addr->local, sizeof(addr->local) - 1);
	struct key_out k = {out, outlen, 0};

	assert(outlen > 0);
	for (size_t i = 0; i < n; i++)
		local[i] = ascii_lower((unsigned char)addr->local[i]);
	if (dot_string_error(local, n) == NULL) {
		for (size_t i = 0; i < n; i++)
			key_put(&k, (char)local[i]);
	} else {
		key_put(&k, '"');
		for (size_t i = 0; i < n; i++) {
			if (local[i] == '"' || local[i] == '\\')
				key_put(&k, '\\');
			key_put(&k, (char)local[i]);
		}
		key_put(&k, '"');
	}
	key_put_domain(&k, addr);
}

bool
address_strip_subaddress(struct address *addr, const char *separators)
{
	size_t n = strnlen(addr->local, sizeof(addr->local) - 1);

	if (separators == NULL || separators[0] == '\0')
		return false;
	/* Only ASCII separators count, so a cut never splits a UTF-8
	 * sequence; non-ASCII bytes in separators are ignored. */
	for (size_t i = 1; i < n; i++) {
		unsigned char c = (unsigned char)addr->local[i];

		if (c < 0x80 && strchr(separators, c) != NULL) {
			addr->local[i] = '\0';
			addr->utf8 = has_non_ascii(addr->local, i);
			return true;
		}
	}
	return false;
}

void
address_domain_key(const struct address *addr, char *out, size_t outlen)
{
	struct key_out k = {out, outlen, 0};

	assert(outlen > 0);
	key_put_domain(&k, addr);
}
