/* DKIM tag=value lists (RFC 6376 §3.2) and the value syntaxes inside them:
 * ":" lists, base64 with FWS, dkim-quoted-printable, domain names.
 * SECURITY: peer text; only spans are recorded, outputs are size-bounded. */
#include "mailauth/dkim_int.h"

#include <string.h>

#include "core/base64.h"

/* FWS, and CR/LF alone too: a header's folds and a TXT record's spaces. */
static bool
dkim_is_fws(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static bool
dkim_is_alpha(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool
dkim_is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

/* VALCHAR is %x21-3A / %x3C-7E; bytes above 0x7e are let through for
 * UTF-8 values (RFC 8616), they never reach a DNS name unvalidated. */
static bool
dkim_is_valchar(unsigned char c)
{
	return c > 0x20 && c != ';' && c != 0x7f;
}

static size_t
dkim_skip_fws(const char *s, size_t len, size_t i)
{
	while (i < len && dkim_is_fws((unsigned char)s[i]))
		i++;
	return i;
}

static int
dkim_tag_add(struct dkim_tags *tags, const struct dkim_tag *tag,
             const char **error_r)
{
	for (size_t i = 0; i < tags->count; i++) {
		if (tags->tag[i].name_len == tag->name_len &&
		    memcmp(tags->tag[i].name, tag->name, tag->name_len) == 0) {
			*error_r = "duplicate tag";
			return -1;
		}
	}
	if (tags->count == DKIM_TAGS_MAX) {
		*error_r = "too many tags";
		return -1;
	}
	tags->tag[tags->count++] = *tag;
	return 0;
}

/* One tag-spec at s[*ip]; leaves *ip at the ";" or the end. */
static int
dkim_tag_spec(const char *s, size_t len, size_t *ip, struct dkim_tag *tag,
              const char **error_r)
{
	size_t i = *ip, last;

	tag->name = s + i;
	if (i == len || !dkim_is_alpha((unsigned char)s[i])) {
		*error_r = "tag name expected";
		return -1;
	}
	while (i < len && (dkim_is_alpha((unsigned char)s[i]) ||
	                   dkim_is_digit((unsigned char)s[i]) || s[i] == '_'))
		i++;
	tag->name_len = (size_t)(s + i - tag->name);
	i = dkim_skip_fws(s, len, i);
	if (i == len || s[i] != '=') {
		*error_r = "\"=\" expected after a tag name";
		return -1;
	}
	tag->raw_start = ++i;
	i = dkim_skip_fws(s, len, i);
	tag->value = s + i;
	last = i;
	for (; i < len && s[i] != ';'; i++) {
		unsigned char c = (unsigned char)s[i];
		if (dkim_is_valchar(c))
			last = i + 1;
		else if (!dkim_is_fws(c)) {
			*error_r = "control character in a tag value";
			return -1;
		}
	}
	tag->value_len = last > (size_t)(tag->value - s)
	                     ? last - (size_t)(tag->value - s)
	                     : 0;
	tag->raw_end = i;
	*ip = i;
	return 0;
}

int
dkim_tags_parse(const char *text, size_t len, struct dkim_tags *tags,
                const char **error_r)
{
	size_t i = 0;

	tags->count = 0;
	for (;;) {
		struct dkim_tag tag;

		i = dkim_skip_fws(text, len, i);
		/* An empty list, or FWS after the final ";". */
		if (i == len)
			return 0;
		if (dkim_tag_spec(text, len, &i, &tag, error_r) < 0 ||
		    dkim_tag_add(tags, &tag, error_r) < 0)
			return -1;
		if (i == len)
			return 0;
		i++; /* ";" */
	}
}

const struct dkim_tag *
dkim_tags_get(const struct dkim_tags *tags, const char *name)
{
	size_t n = strlen(name);

	for (size_t i = 0; i < tags->count; i++)
		if (tags->tag[i].name_len == n &&
		    memcmp(tags->tag[i].name, name, n) == 0)
			return &tags->tag[i];
	return NULL;
}

bool
dkim_tag_value_is(const struct dkim_tag *tag, const char *s)
{
	size_t n = strlen(s);

	return tag->value_len == n && memcmp(tag->value, s, n) == 0;
}

bool
dkim_list_next(const char *list, size_t len, size_t *pos, const char **item_r,
               size_t *item_len_r)
{
	size_t i = *pos, start, end;

	if (i > len)
		return false;
	i = dkim_skip_fws(list, len, i);
	start = i;
	while (i < len && list[i] != ':')
		i++;
	end = i;
	while (end > start && dkim_is_fws((unsigned char)list[end - 1]))
		end--;
	*item_r = list + start;
	*item_len_r = end - start;
	*pos = i + 1; /* past ":"; past len at the end */
	return true;
}

int
dkim_base64_decode(const char *text, size_t len, uint8_t *out, size_t outmax,
                   size_t *outlen_r)
{
	/* Room for outmax bytes of data, padding and one extra quantum: any
	 * longer input would not fit out anyway. */
	size_t cap = BASE64_ENCODED_SIZE(outmax) + 4, n = 0;
	char compact[BASE64_ENCODED_SIZE(DKIM_KEY_DER_MAX) + 4];

	if (cap > sizeof(compact))
		cap = sizeof(compact);
	for (size_t i = 0; i < len; i++) {
		if (dkim_is_fws((unsigned char)text[i]))
			continue;
		if (n == cap)
			return -1;
		compact[n++] = text[i];
	}
	return base64_decode(compact, n, out, outmax, outlen_r);
}

static int
dkim_hex_value(unsigned char c)
{
	if (dkim_is_digit(c))
		return c - '0';
	/* dkim-quoted-printable says upper case; accept lower too. */
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int
dkim_qp_decode(const char *text, size_t len, char *out, size_t outmax)
{
	size_t o = 0;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)text[i];

		if (dkim_is_fws(c))
			continue; /* FWS in the encoding is not data */
		if (c == '=') {
			int hi, lo;
			if (len - i < 3)
				return -1;
			hi = dkim_hex_value((unsigned char)text[i + 1]);
			lo = dkim_hex_value((unsigned char)text[i + 2]);
			if (hi < 0 || lo < 0)
				return -1;
			c = (unsigned char)(hi << 4 | lo);
			i += 2;
		}
		if (c < 0x20 || c == 0x7f || o + 1 >= outmax)
			return -1;
		out[o++] = (char)c;
	}
	if (outmax == 0)
		return -1;
	out[o] = '\0';
	return 0;
}

bool
dkim_domain_valid(const char *s, size_t len)
{
	size_t label = 0;

	if (len == 0 || len > DKIM_DOMAIN_MAX)
		return false;
	for (size_t i = 0; i <= len; i++) {
		unsigned char c = i < len ? (unsigned char)s[i] : '.';
		if (c == '.') {
			if (label == 0 || label > 63)
				return false;
			label = 0;
			continue;
		}
		if (!dkim_is_alpha(c) && !dkim_is_digit(c) && c != '-' &&
		    c != '_')
			return false;
		label++;
	}
	return true;
}

bool
dkim_parse_uint(const char *s, size_t len, size_t maxdigits, uint64_t *v_r)
{
	uint64_t v = 0;

	if (len == 0 || len > maxdigits || maxdigits > 19)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (!dkim_is_digit((unsigned char)s[i]))
			return false;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	*v_r = v;
	return true;
}

bool
dkim_ci_equal(const char *a, size_t alen, const char *b, size_t blen)
{
	if (alen != blen)
		return false;
	for (size_t i = 0; i < alen; i++) {
		unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
		if (x >= 'A' && x <= 'Z')
			x = (unsigned char)(x + 32);
		if (y >= 'A' && y <= 'Z')
			y = (unsigned char)(y + 32);
		if (x != y)
			return false;
	}
	return true;
}
