/* The XML reader of DMARC aggregate reports: a pull parser that hands out
 * element starts and ends with their character data, over a document held
 * in memory. Enough of XML 1.0 for machine-written reports: the
 * declaration, comments, PIs, CDATA, attributes (checked, then ignored),
 * the five predefined entities and character references.
 * SECURITY: the document is untrusted. Every scan stops at the end of the
 * input; depth, element count, name length and character data per element
 * are bounded; NUL bytes and a DOCTYPE with an internal subset (where
 * entities would be defined) are refused. Linear in the input size. */
#include "mailauth/dmarc_report_int.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static bool
xml_space(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static bool
xml_name_start(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
	       c == ':' || c >= 0x80;
}

static bool
xml_name_char(unsigned char c)
{
	return xml_name_start(c) || (c >= '0' && c <= '9') || c == '-' ||
	       c == '.';
}

void
dmarc_xml_init(struct dmarc_xml *x, const void *data, size_t len)
{
	memset(x, 0, sizeof(*x));
	x->start = data;
	x->p = x->start;
	x->end = len > 0 ? x->start + len : x->start; /* data may be NULL */
	/* A UTF-8 byte order mark. */
	if (len >= 3 && memcmp(x->p, "\xef\xbb\xbf", 3) == 0)
		x->p += 3;
	buf_init(&x->text, DMARC_REPORT_TEXT_MAX + 1);
}

void
dmarc_xml_clear(struct dmarc_xml *x)
{
	buf_free(&x->text);
}

size_t
dmarc_xml_line(const struct dmarc_xml *x)
{
	size_t line = 1;

	for (const unsigned char *q = x->start; q < x->p && q < x->end; q++)
		if (*q == '\n')
			line++;
	return line;
}

static enum dmarc_xml_event xml_fail(struct dmarc_xml *x, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static enum dmarc_xml_event
xml_fail(struct dmarc_xml *x, const char *fmt, ...)
{
	va_list ap;
	int n;

	n = snprintf(x->error, sizeof(x->error),
	             "line %zu: ", dmarc_xml_line(x));
	if (n > 0 && (size_t)n < sizeof(x->error)) {
		va_start(ap, fmt);
		vsnprintf(x->error + n, sizeof(x->error) - (size_t)n, fmt, ap);
		va_end(ap);
	}
	x->failed = true;
	return DMARC_XML_ERROR;
}

/* A name from the input for a message: printable ASCII, at most 40 bytes. */
static const char *
xml_shown(const unsigned char *name, size_t len, char out[48])
{
	size_t o = 0;

	for (size_t i = 0; i < len && o < 40; i++)
		out[o++] =
		    name[i] >= 0x20 && name[i] < 0x7f ? (char)name[i] : '?';
	if (len > 40) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
	return out;
}

/* The length of the name at p (0: none there). */
static size_t
xml_name_len(const unsigned char *p, const unsigned char *end)
{
	const unsigned char *q = p;

	if (q >= end || !xml_name_start(*q))
		return 0;
	while (q < end && xml_name_char(*q))
		q++;
	return (size_t)(q - p);
}

static void
xml_set_local(struct dmarc_xml *x, const unsigned char *name, size_t len)
{
	const unsigned char *colon = memchr(name, ':', len);
	size_t n;

	/* "prefix:local"; a name with several colons matches nothing */
	if (colon != NULL) {
		len -= (size_t)(colon + 1 - name);
		name = colon + 1;
		if (memchr(name, ':', len) != NULL)
			len = 0;
	}
	n = len <= DMARC_XML_LOCAL_MAX ? len : 0;
	memcpy(x->name, name, n);
	x->name[n] = '\0';
}

static const unsigned char *
xml_find(const unsigned char *p, const unsigned char *end, const char *s)
{
	size_t n = strlen(s);

	if ((size_t)(end - p) < n)
		return NULL;
	return memmem(p, (size_t)(end - p), s, n);
}

static bool
xml_starts(const struct dmarc_xml *x, const char *s)
{
	size_t n = strlen(s);

	return (size_t)(x->end - x->p) >= n && memcmp(x->p, s, n) == 0;
}

static bool
xml_char_ok(uint32_t cp)
{
	return cp == 0x9 || cp == 0xa || cp == 0xd ||
	       (cp >= 0x20 && cp <= 0xd7ff) || (cp >= 0xe000 && cp <= 0xfffd) ||
	       (cp >= 0x10000 && cp <= 0x10ffff);
}

/* The reference at p ('&'): its code point and length, or -1. */
static int
xml_reference(const unsigned char *p, const unsigned char *end, uint32_t *cp_r,
              size_t *len_r)
{
	static const struct {
		const char *name;
		uint32_t cp;
	} named[] = {{"lt", '<'},
	             {"gt", '>'},
	             {"amp", '&'},
	             {"quot", '"'},
	             {"apos", '\''}};
	const unsigned char *semi, *q;
	size_t n, max = (size_t)(end - p) < 12 ? (size_t)(end - p) : 12;
	uint32_t cp = 0;

	if ((semi = memchr(p, ';', max)) == NULL)
		return -1;
	q = p + 1;
	n = (size_t)(semi - q);
	*len_r = n + 2;
	if (n >= 2 && q[0] == '#') {
		bool hex = q[1] == 'x';
		size_t i = hex ? 2 : 1;

		if (i == n || n - i > 7)
			return -1;
		for (; i < n; i++) {
			unsigned char c = q[i];
			uint32_t d;

			if (c >= '0' && c <= '9')
				d = c - '0';
			else if (hex && c >= 'a' && c <= 'f')
				d = c - 'a' + 10;
			else if (hex && c >= 'A' && c <= 'F')
				d = c - 'A' + 10;
			else
				return -1;
			cp = cp * (hex ? 16 : 10) + d;
			if (cp > 0x10ffff)
				return -1;
		}
		if (!xml_char_ok(cp))
			return -1;
		*cp_r = cp;
		return 0;
	}
	for (size_t i = 0; i < sizeof(named) / sizeof(named[0]); i++) {
		if (strlen(named[i].name) == n &&
		    memcmp(named[i].name, q, n) == 0) {
			*cp_r = named[i].cp;
			return 0;
		}
	}
	return -1;
}

/* Append to the element's text; false when over DMARC_REPORT_TEXT_MAX. */
static bool
xml_text_append(struct dmarc_xml *x, const void *data, size_t len)
{
	if (len > DMARC_REPORT_TEXT_MAX - x->text.len)
		return false;
	return buf_append(&x->text, data, len) == 0;
}

static bool
xml_text_append_cp(struct dmarc_xml *x, uint32_t cp)
{
	unsigned char u[4];
	size_t n;

	if (cp < 0x80) {
		u[0] = (unsigned char)cp;
		n = 1;
	} else if (cp < 0x800) {
		u[0] = (unsigned char)(0xc0 | (cp >> 6));
		u[1] = (unsigned char)(0x80 | (cp & 0x3f));
		n = 2;
	} else if (cp < 0x10000) {
		u[0] = (unsigned char)(0xe0 | (cp >> 12));
		u[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
		u[2] = (unsigned char)(0x80 | (cp & 0x3f));
		n = 3;
	} else {
		u[0] = (unsigned char)(0xf0 | (cp >> 18));
		u[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
		u[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
		u[3] = (unsigned char)(0x80 | (cp & 0x3f));
		n = 4;
	}
	return xml_text_append(x, u, n);
}

static enum dmarc_xml_event
xml_too_long(struct dmarc_xml *x)
{
	return xml_fail(x, "more than %u bytes of text in one element",
	                DMARC_REPORT_TEXT_MAX);
}

/* Character data up to the next '<' (depth > 0). 0 or ERROR. */
static int
xml_text(struct dmarc_xml *x)
{
	while (x->p < x->end && *x->p != '<') {
		const unsigned char *q = x->p;
		uint32_t cp;
		size_t n;

		while (q < x->end && *q != '<' && *q != '&' && *q != '\0')
			q++;
		if (q > x->p && !xml_text_append(x, x->p, (size_t)(q - x->p))) {
			xml_too_long(x);
			return -1;
		}
		x->p = q;
		if (q == x->end || *q == '<')
			break;
		if (*q == '\0') {
			xml_fail(x, "NUL byte in the document");
			return -1;
		}
		if (xml_reference(q, x->end, &cp, &n) < 0) {
			xml_fail(x, "bad entity or character reference");
			return -1;
		}
		if (!xml_text_append_cp(x, cp)) {
			xml_too_long(x);
			return -1;
		}
		x->p += n;
	}
	return 0;
}

static void
xml_skip_space(struct dmarc_xml *x)
{
	while (x->p < x->end && xml_space(*x->p))
		x->p++;
}

/* Attributes and the end of a start tag, after its name: checked and
 * skipped. 1 for "/>", 0 for ">", -1 on error. */
static int
xml_attributes(struct dmarc_xml *x, const char *shown)
{
	for (;;) {
		const unsigned char *before = x->p;
		unsigned char quote;
		size_t n;

		xml_skip_space(x);
		if (x->p >= x->end)
			break;
		if (*x->p == '>') {
			x->p++;
			return 0;
		}
		if (*x->p == '/') {
			if (x->p + 1 < x->end && x->p[1] == '>') {
				x->p += 2;
				return 1;
			}
			break;
		}
		if (x->p == before || (n = xml_name_len(x->p, x->end)) == 0)
			break;
		x->p += n;
		xml_skip_space(x);
		if (x->p >= x->end || *x->p != '=')
			break;
		x->p++;
		xml_skip_space(x);
		if (x->p >= x->end || (*x->p != '"' && *x->p != '\''))
			break;
		quote = *x->p++;
		while (x->p < x->end && *x->p != quote) {
			uint32_t cp;
			size_t rn;

			if (*x->p == '<' || *x->p == '\0')
				break;
			if (*x->p == '&') {
				if (xml_reference(x->p, x->end, &cp, &rn) < 0)
					break;
				x->p += rn;
			} else {
				x->p++;
			}
		}
		if (x->p >= x->end || *x->p != quote)
			break;
		x->p++;
	}
	xml_fail(x, "bad attribute or unterminated tag <%s>", shown);
	return -1;
}

static enum dmarc_xml_event
xml_start_tag(struct dmarc_xml *x)
{
	const unsigned char *name = x->p + 1;
	size_t n = xml_name_len(name, x->end);
	char shown[48];
	int empty;

	if (n == 0)
		return xml_fail(x, "a '<' that starts no tag");
	xml_shown(name, n, shown);
	if (n > DMARC_REPORT_NAME_MAX)
		return xml_fail(x, "element name longer than %d bytes",
		                DMARC_REPORT_NAME_MAX);
	if (x->depth == 0 && x->root_seen)
		return xml_fail(x, "<%s> after the end of the root element",
		                shown);
	if (x->depth == DMARC_REPORT_DEPTH_MAX)
		return xml_fail(x, "elements nested deeper than %d",
		                DMARC_REPORT_DEPTH_MAX);
	if (x->elements == DMARC_REPORT_ELEMENTS_MAX)
		return xml_fail(x, "more than %d elements",
		                DMARC_REPORT_ELEMENTS_MAX);
	x->p = name + n;
	if ((empty = xml_attributes(x, shown)) < 0)
		return DMARC_XML_ERROR;
	x->elements++;
	x->root_seen = true;
	xml_set_local(x, name, n);
	buf_reset(&x->text);
	if (empty)
		x->pending_end = true; /* depth does not change */
	else {
		x->open[x->depth].name = name;
		x->open[x->depth].len = n;
		x->depth++;
	}
	return DMARC_XML_START;
}

static enum dmarc_xml_event
xml_end_tag(struct dmarc_xml *x)
{
	const unsigned char *name = x->p + 2;
	size_t n = xml_name_len(name, x->end);
	char shown[48], open[48];

	if (n == 0)
		return xml_fail(x, "a '</' that ends no tag");
	xml_shown(name, n, shown);
	if (x->depth == 0)
		return xml_fail(x, "</%s> without a start tag", shown);
	if (x->open[x->depth - 1].len != n ||
	    memcmp(x->open[x->depth - 1].name, name, n) != 0)
		return xml_fail(x, "</%s> closes <%s>", shown,
		                xml_shown(x->open[x->depth - 1].name,
		                          x->open[x->depth - 1].len, open));
	x->p = name + n;
	xml_skip_space(x);
	if (x->p >= x->end || *x->p != '>')
		return xml_fail(x, "unterminated end tag </%s", shown);
	x->p++;
	x->depth--;
	xml_set_local(x, name, n);
	return DMARC_XML_END;
}

/* <!DOCTYPE name "ids"> without an internal subset: skipped. 0 or -1. */
static int
xml_doctype(struct dmarc_xml *x)
{
	const unsigned char *q = x->p + 9;

	if (x->root_seen) {
		xml_fail(x, "a DOCTYPE inside the document");
		return -1;
	}
	while (q < x->end && *q != '>') {
		if (*q == '[') {
			xml_fail(x, "a DOCTYPE with an internal subset "
			            "(entity definitions) is refused");
			return -1;
		}
		if (*q == '"' || *q == '\'') {
			const unsigned char *c =
			    memchr(q + 1, *q, (size_t)(x->end - q - 1));

			if (c == NULL)
				break;
			q = c;
		}
		q++;
	}
	if (q >= x->end) {
		xml_fail(x, "unterminated DOCTYPE");
		return -1;
	}
	x->p = q + 1;
	return 0;
}

/* Comments, PIs, CDATA and the DOCTYPE at x->p ("<!" or "<?"): 0 when
 * skipped (CDATA appended to the text), or ERROR. */
static int
xml_markup(struct dmarc_xml *x)
{
	const unsigned char *q;

	if (xml_starts(x, "<?")) {
		if ((q = xml_find(x->p + 2, x->end, "?>")) == NULL) {
			xml_fail(x, "unterminated processing instruction");
			return -1;
		}
		x->p = q + 2;
	} else if (xml_starts(x, "<!--")) {
		if ((q = xml_find(x->p + 4, x->end, "-->")) == NULL) {
			xml_fail(x, "unterminated comment");
			return -1;
		}
		x->p = q + 3;
	} else if (xml_starts(x, "<![CDATA[")) {
		if (x->depth == 0) {
			xml_fail(x, "CDATA outside the root element");
			return -1;
		}
		if ((q = xml_find(x->p + 9, x->end, "]]>")) == NULL) {
			xml_fail(x, "unterminated CDATA section");
			return -1;
		}
		if (memchr(x->p + 9, '\0', (size_t)(q - x->p - 9)) != NULL) {
			xml_fail(x, "NUL byte in the document");
			return -1;
		}
		if (!xml_text_append(x, x->p + 9, (size_t)(q - x->p - 9))) {
			xml_too_long(x);
			return -1;
		}
		x->p = q + 3;
	} else if (xml_starts(x, "<!DOCTYPE")) {
		if (xml_doctype(x) < 0)
			return -1;
	} else {
		xml_fail(x, "unknown markup declaration");
		return -1;
	}
	return 0;
}

enum dmarc_xml_event
dmarc_xml_next(struct dmarc_xml *x)
{
	enum dmarc_xml_event ev;

	if (x->failed)
		return DMARC_XML_ERROR;
	if (x->pending_end) {
		x->pending_end = false;
		return DMARC_XML_END;
	}
	/* The text of an element that ended belongs to no one now. */
	buf_reset(&x->text);
	for (;;) {
		if (x->p >= x->end) {
			char shown[48];

			if (x->depth > 0)
				return xml_fail(
				    x, "the document ends inside <%s>",
				    xml_shown(x->open[x->depth - 1].name,
				              x->open[x->depth - 1].len,
				              shown));
			if (!x->root_seen)
				return xml_fail(x, "no root element");
			return DMARC_XML_DONE;
		}
		if (*x->p != '<') {
			if (x->depth > 0) {
				if (xml_text(x) < 0)
					return DMARC_XML_ERROR;
				continue;
			}
			if (!xml_space(*x->p))
				return xml_fail(x, "text outside the root "
				                   "element");
			x->p++;
			continue;
		}
		if (x->p + 1 < x->end && (x->p[1] == '!' || x->p[1] == '?')) {
			if (xml_markup(x) < 0)
				return DMARC_XML_ERROR;
			continue;
		}
		if (x->p + 1 < x->end && x->p[1] == '/')
			ev = xml_end_tag(x);
		else
			ev = xml_start_tag(x);
		return ev;
	}
}
