/* IMAP argument interpreters (see parser.h): astrings and numbers,
 * sequence sets, flag lists, dates, modified UTF-7, output quoting.
 * SECURITY: every input is client text from the parser's tree. Numbers are
 * range-checked before use, sequence sets are sorted and merged so that a
 * lookup is a binary search, modified UTF-7 is decoded strictly (one
 * spelling per name) so that two names cannot map to one mailbox. */
#include "imap/parser.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/utf8.h"
#include "core/xmalloc.h"
#include "store/mailbox.h"

#define ARGS_NUMBER64_MAX ((uint64_t)INT64_MAX) /* number64: 63 bits */
#define ARGS_SECONDS_PER_DAY 86400

static const char args_months[12][4] = {
    "Jan", "Feb", "Mar", "Apr", "May", "Jun",
    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
};

static const char args_b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

/* ---- strings and numbers ---- */

bool
imap_arg_astring(const struct imap_arg *a, const char **s_r, size_t *len_r)
{
	switch (a->type) {
	case IMAP_ARG_ATOM:
	case IMAP_ARG_STRING:
	case IMAP_ARG_NIL: /* the atom "NIL" is an astring */
		break;
	case IMAP_ARG_LITERAL:
		/* literal8 may hold NULs: it is no astring. */
		if (a->literal8)
			return false;
		break;
	case IMAP_ARG_LIST:
		return false;
	}
	*s_r = a->str;
	if (len_r != NULL)
		*len_r = a->len;
	return true;
}

bool
imap_arg_atom_is(const struct imap_arg *a, const char *word)
{
	size_t n = strlen(word);

	if (a->type != IMAP_ARG_ATOM && a->type != IMAP_ARG_NIL)
		return false;
	return a->len == n && strncasecmp(a->str, word, n) == 0;
}

static bool
args_digits(const char *s, size_t len, uint64_t max, uint64_t *n_r)
{
	uint64_t n = 0;

	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		if (n > (max - (uint64_t)(s[i] - '0')) / 10)
			return false;
		n = n * 10 + (uint64_t)(s[i] - '0');
	}
	*n_r = n;
	return true;
}

bool
imap_arg_number(const struct imap_arg *a, uint32_t *n_r)
{
	uint64_t n;

	if (a->type != IMAP_ARG_ATOM ||
	    !args_digits(a->str, a->len, UINT32_MAX, &n))
		return false;
	*n_r = (uint32_t)n;
	return true;
}

bool
imap_arg_number64(const struct imap_arg *a, uint64_t *n_r)
{
	if (a->type != IMAP_ARG_ATOM)
		return false;
	return args_digits(a->str, a->len, ARGS_NUMBER64_MAX, n_r);
}

/* ---- sequence sets ---- */

static int
args_range_cmp(const void *a, const void *b)
{
	const struct imap_seq_range *x = a, *y = b;

	if (x->lo != y->lo)
		return x->lo < y->lo ? -1 : 1;
	if (x->hi != y->hi)
		return x->hi < y->hi ? -1 : 1;
	return 0;
}

/* Sort and merge overlapping or adjacent ranges. */
static void
args_seqset_normalize(struct imap_seqset *set)
{
	size_t out = 0;

	if (set->n == 0)
		return;
	qsort(set->ranges, set->n, sizeof(*set->ranges), args_range_cmp);
	for (size_t i = 1; i < set->n; i++) {
		struct imap_seq_range *last = &set->ranges[out];
		const struct imap_seq_range *r = &set->ranges[i];

		if (last->hi == UINT32_MAX || r->lo <= last->hi + 1) {
			if (r->hi > last->hi)
				last->hi = r->hi;
		} else {
			set->ranges[++out] = *r;
		}
	}
	set->n = out + 1;
}

/* seq-number: nz-number or "*" (UINT32_MAX). */
static int
args_seq_number(const char *s, size_t len, uint32_t *n_r)
{
	uint64_t n;

	if (len == 1 && s[0] == '*') {
		*n_r = UINT32_MAX;
		return 0;
	}
	if (len == 0 || s[0] == '0' || !args_digits(s, len, UINT32_MAX, &n))
		return -1;
	*n_r = (uint32_t)n;
	return 0;
}

int
imap_seqset_parse(const char *s, size_t len, struct imap_seqset *set_r)
{
	size_t n = 1, start = 0, k = 0;

	memset(set_r, 0, sizeof(*set_r));
	if (len == 1 && s[0] == '$') {
		set_r->is_saved = true;
		return 0;
	}
	if (len == 0)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (s[i] == ',')
			n++;
	}
	set_r->ranges = xcalloc(n, sizeof(*set_r->ranges));
	for (size_t i = 0; i <= len; i++) {
		const char *el, *colon;
		size_t el_len;
		uint32_t lo, hi, t;

		if (i < len && s[i] != ',')
			continue;
		el = s + start;
		el_len = i - start;
		colon = memchr(el, ':', el_len);
		if (colon == NULL) {
			if (args_seq_number(el, el_len, &lo) < 0)
				goto fail;
			hi = lo;
		} else if (args_seq_number(el, (size_t)(colon - el), &lo) < 0 ||
		           args_seq_number(colon + 1,
		                           el_len - (size_t)(colon - el) - 1,
		                           &hi) < 0) {
			goto fail;
		}
		if (lo > hi) {
			t = lo;
			lo = hi;
			hi = t;
		}
		set_r->ranges[k].lo = lo;
		set_r->ranges[k].hi = hi;
		k++;
		start = i + 1;
	}
	set_r->n = k;
	args_seqset_normalize(set_r);
	return 0;
fail:
	imap_seqset_clear(set_r);
	return -1;
}

void
imap_seqset_resolve(struct imap_seqset *set, uint32_t max)
{
	struct imap_seq_range *r;
	uint32_t t;

	if (set->is_saved || set->n == 0)
		return;
	/* Sorted and merged: only the last range can hold '*'. */
	r = &set->ranges[set->n - 1];
	if (r->hi != UINT32_MAX)
		return;
	if (max == 0) {
		/* An empty mailbox: '*' matches nothing. */
		set->n--;
		return;
	}
	r->hi = max;
	if (r->lo == UINT32_MAX)
		r->lo = max;
	if (r->lo > r->hi) {
		t = r->lo;
		r->lo = r->hi;
		r->hi = t;
	}
	args_seqset_normalize(set);
}

bool
imap_seqset_contains(const struct imap_seqset *set, uint32_t n)
{
	size_t lo = 0, hi = set->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct imap_seq_range *r = &set->ranges[mid];

		if (n < r->lo)
			hi = mid;
		else if (n > r->hi)
			lo = mid + 1;
		else
			return true;
	}
	return false;
}

void
imap_seqset_clear(struct imap_seqset *set)
{
	free(set->ranges);
	memset(set, 0, sizeof(*set));
}

/* ---- flags ---- */

struct args_sysflag {
	const char *name;
	uint32_t bit;
};

static const struct args_sysflag args_sysflags[] = {
    {"\\Answered", MBOX_F_ANSWERED}, {"\\Flagged", MBOX_F_FLAGGED},
    {"\\Deleted", MBOX_F_DELETED},   {"\\Seen", MBOX_F_SEEN},
    {"\\Draft", MBOX_F_DRAFT},
};

/* atom = 1*ATOM-CHAR: no atom-specials ( ) { SP CTL % * " \ ] */
static bool
args_keyword_valid(const char *s, size_t len)
{
	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c <= 0x20 || c >= 0x7f || strchr("(){%*\"\\]", c) != NULL)
			return false;
	}
	return true;
}

/* Whether kw (space-separated) already holds word, case-insensitively. */
static bool
args_keyword_listed(const struct buf *kw, const char *word, size_t len)
{
	size_t i = 0;

	while (i < kw->len) {
		const uint8_t *sp = memchr(kw->data + i, ' ', kw->len - i);
		size_t end = sp != NULL ? (size_t)(sp - kw->data) : kw->len;

		if (end - i == len &&
		    strncasecmp((const char *)kw->data + i, word, len) == 0)
			return true;
		i = end + 1;
	}
	return false;
}

int
imap_flags_parse(const struct imap_arg *a, uint32_t *flags_r, struct buf *kw)
{
	const struct imap_arg *el = a;
	size_t count = 1, nkw = 0;

	*flags_r = 0;
	if (kw != NULL)
		buf_reset(kw);
	if (a->type == IMAP_ARG_LIST) {
		el = a->list;
		count = a->count;
	}
	for (size_t i = 0; i < count; i++) {
		const struct imap_arg *f = &el[i];
		bool found = false;

		if (f->type != IMAP_ARG_ATOM && f->type != IMAP_ARG_NIL)
			return -1;
		if (f->len > 0 && f->str[0] == '\\') {
			for (size_t k = 0; k < sizeof(args_sysflags) /
			                           sizeof(args_sysflags[0]);
			     k++) {
				if (imap_arg_atom_is(f,
				                     args_sysflags[k].name)) {
					*flags_r |= args_sysflags[k].bit;
					found = true;
					break;
				}
			}
			/* \Recent, \* and unknown system flags. */
			if (!found)
				return -1;
			continue;
		}
		if (kw == NULL || !args_keyword_valid(f->str, f->len))
			return -1;
		if (args_keyword_listed(kw, f->str, f->len))
			continue;
		if (++nkw > MBOX_KEYWORDS_MAX)
			return -1;
		if ((kw->len > 0 && buf_append_byte(kw, ' ') < 0) ||
		    buf_append(kw, f->str, f->len) < 0)
			return -1;
	}
	return 0;
}

void
imap_flags_write(struct buf *out, uint32_t flags, const char *keywords,
                 bool recent)
{
	bool first = true;

	(void)buf_append_byte(out, '(');
	for (size_t k = 0; k < sizeof(args_sysflags) / sizeof(args_sysflags[0]);
	     k++) {
		if ((flags & args_sysflags[k].bit) == 0)
			continue;
		if (!first)
			(void)buf_append_byte(out, ' ');
		(void)buf_append_str(out, args_sysflags[k].name);
		first = false;
	}
	if (recent) {
		if (!first)
			(void)buf_append_byte(out, ' ');
		(void)buf_append_str(out, "\\Recent");
		first = false;
	}
	if (keywords != NULL && keywords[0] != '\0') {
		if (!first)
			(void)buf_append_byte(out, ' ');
		(void)buf_append_str(out, keywords);
	}
	(void)buf_append_byte(out, ')');
}

/* ---- dates ---- */

static bool
args_leap(int64_t y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static unsigned
args_month_days(int64_t y, unsigned m)
{
	static const unsigned days[12] = {31, 28, 31, 30, 31, 30,
	                                  31, 31, 30, 31, 30, 31};

	return m == 2 && args_leap(y) ? 29 : days[m - 1];
}

/* Days since 1970-01-01 of a proleptic Gregorian date (m 1-12). */
static int64_t
args_days_from_civil(int64_t y, unsigned m, unsigned d)
{
	int64_t era;
	unsigned yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = (unsigned)(y - era * 400);
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static bool
args_2digits(const char *s, unsigned *n_r)
{
	if (s[0] < '0' || s[0] > '9' || s[1] < '0' || s[1] > '9')
		return false;
	*n_r = (unsigned)(s[0] - '0') * 10 + (unsigned)(s[1] - '0');
	return true;
}

/* "d-Mon-yyyy" or "dd-Mon-yyyy" (a leading space allowed for the
 * date-time form): days since the epoch, *used_r bytes read. */
static int
args_date_part(const char *s, size_t len, bool space_ok, int64_t *days_r,
               size_t *used_r)
{
	size_t i = 0;
	unsigned day, month = 0, year, y2;

	if (space_ok && len > 0 && s[0] == ' ')
		i++;
	if (i >= len || s[i] < '0' || s[i] > '9')
		return -1;
	day = (unsigned)(s[i++] - '0');
	if (i < len && s[i] >= '0' && s[i] <= '9') {
		if (s[0] == ' ')
			return -1;
		day = day * 10 + (unsigned)(s[i++] - '0');
	}
	if (len - i < 9 || s[i] != '-' || s[i + 4] != '-')
		return -1;
	for (unsigned m = 0; m < 12; m++) {
		if (strncasecmp(s + i + 1, args_months[m], 3) == 0) {
			month = m + 1;
			break;
		}
	}
	if (month == 0 || !args_2digits(s + i + 5, &year) ||
	    !args_2digits(s + i + 7, &y2))
		return -1;
	year = year * 100 + y2;
	if (day == 0 || day > args_month_days(year, month))
		return -1;
	*days_r = args_days_from_civil(year, month, day);
	*used_r = i + 9;
	return 0;
}

int
imap_date_parse(const char *s, size_t len, time_t *day_r)
{
	int64_t days;
	size_t used;

	if (args_date_part(s, len, false, &days, &used) < 0 || used != len)
		return -1;
	*day_r = (time_t)(days * ARGS_SECONDS_PER_DAY);
	return 0;
}

int
imap_datetime_parse(const char *s, size_t len, time_t *t_r, int *zone_r)
{
	int64_t days;
	size_t i;
	unsigned hh, mm, ss, zh, zm;
	int zone;

	if (args_date_part(s, len, true, &days, &i) < 0)
		return -1;
	/* " hh:mm:ss +zzzz" */
	if (len - i != 15 || s[i] != ' ' || s[i + 3] != ':' ||
	    s[i + 6] != ':' || s[i + 9] != ' ' ||
	    (s[i + 10] != '+' && s[i + 10] != '-'))
		return -1;
	if (!args_2digits(s + i + 1, &hh) || !args_2digits(s + i + 4, &mm) ||
	    !args_2digits(s + i + 7, &ss) || !args_2digits(s + i + 11, &zh) ||
	    !args_2digits(s + i + 13, &zm))
		return -1;
	if (hh > 23 || mm > 59 || ss > 60 || zm > 59)
		return -1;
	zone = (int)(zh * 60 + zm);
	if (s[i + 10] == '-')
		zone = -zone;
	*t_r = (time_t)(days * ARGS_SECONDS_PER_DAY + hh * 3600 + mm * 60 + ss -
	                (int64_t)zone * 60);
	*zone_r = zone;
	return 0;
}

void
imap_datetime_write(struct buf *out, time_t t, int zone_minutes)
{
	struct tm tm;
	time_t local = t + (time_t)zone_minutes * 60;
	int z = zone_minutes < 0 ? -zone_minutes : zone_minutes;

	if (gmtime_r(&local, &tm) == NULL || tm.tm_year + 1900 > 9999 ||
	    tm.tm_year + 1900 < 0) {
		local = 0;
		z = 0;
		zone_minutes = 0;
		(void)gmtime_r(&local, &tm);
	}
	(void)buf_printf(out, "\"%02d-%s-%04d %02d:%02d:%02d %c%02d%02d\"",
	                 tm.tm_mday, args_months[tm.tm_mon], tm.tm_year + 1900,
	                 tm.tm_hour, tm.tm_min, tm.tm_sec,
	                 zone_minutes < 0 ? '-' : '+', (z / 60) % 100, z % 60);
}

/* ---- modified UTF-7 ---- */

static int
args_b64_value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == ',')
		return 63;
	return -1;
}

static int
args_put_utf8(struct buf *out, uint32_t cp)
{
	uint8_t b[4];
	size_t n;

	if (cp < 0x80) {
		b[0] = (uint8_t)cp;
		n = 1;
	} else if (cp < 0x800) {
		b[0] = (uint8_t)(0xC0 | cp >> 6);
		b[1] = (uint8_t)(0x80 | (cp & 0x3F));
		n = 2;
	} else if (cp < 0x10000) {
		b[0] = (uint8_t)(0xE0 | cp >> 12);
		b[1] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
		b[2] = (uint8_t)(0x80 | (cp & 0x3F));
		n = 3;
	} else {
		b[0] = (uint8_t)(0xF0 | cp >> 18);
		b[1] = (uint8_t)(0x80 | (cp >> 12 & 0x3F));
		b[2] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
		b[3] = (uint8_t)(0x80 | (cp & 0x3F));
		n = 4;
	}
	return buf_append(out, b, n);
}

/* One base64 run after '&' up to and including its '-'. */
static int
args_mutf7_run(const char *s, size_t len, size_t *i, struct buf *out)
{
	uint32_t bits = 0, hi_sur = 0;
	unsigned nbits = 0;

	for (;;) {
		int v;

		if (*i == len)
			return -1; /* not terminated */
		if (s[*i] == '-') {
			(*i)++;
			break;
		}
		v = args_b64_value(s[(*i)++]);
		if (v < 0)
			return -1;
		bits = (bits << 6 | (uint32_t)v) & 0xFFFFFF;
		nbits += 6;
		if (nbits >= 16) {
			uint32_t u = bits >> (nbits - 16) & 0xFFFF, cp;

			nbits -= 16;
			if (hi_sur != 0) {
				if (u < 0xDC00 || u > 0xDFFF)
					return -1;
				cp = 0x10000 + ((hi_sur - 0xD800) << 10) +
				     (u - 0xDC00);
				hi_sur = 0;
			} else if (u >= 0xD800 && u <= 0xDBFF) {
				hi_sur = u;
				continue;
			} else if (u >= 0xDC00 && u <= 0xDFFF) {
				return -1;
			} else {
				cp = u;
			}
			/* Printable ASCII must stand for itself. */
			if (cp == 0 || (cp >= 0x20 && cp <= 0x7e))
				return -1;
			if (args_put_utf8(out, cp) < 0)
				return -1;
		}
	}
	/* Nothing decoded, a half pair, or padding that is not minimal
	 * and zero. */
	if (hi_sur != 0 || nbits >= 6 || (bits & ((1u << nbits) - 1)) != 0)
		return -1;
	return 0;
}

int
imap_mutf7_to_utf8(const char *s, size_t len, struct buf *out)
{
	size_t i = 0, start = out->len;
	bool after_run = false;

	while (i < len) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x20 || c > 0x7e)
			goto fail;
		if (c != '&') {
			if (buf_append_byte(out, c) < 0)
				goto fail;
			after_run = false;
			i++;
			continue;
		}
		i++;
		if (i < len && s[i] == '-') {
			if (buf_append_byte(out, '&') < 0)
				goto fail;
			after_run = false;
			i++;
			continue;
		}
		/* "&AOQ-&AOQ-" must be one run: one spelling per name. */
		if (after_run || i == len || s[i] == '-')
			goto fail;
		if (args_mutf7_run(s, len, &i, out) < 0)
			goto fail;
		after_run = true;
	}
	return 0;
fail:
	out->len = start;
	return -1;
}

/* The code point at s[*i] (U+FFFD for a malformed sequence, which uses up
 * one byte). */
static uint32_t
args_utf8_next(const char *s, size_t len, size_t *i)
{
	uint32_t cp;
	size_t n = utf8_decode((const uint8_t *)s + *i, len - *i, &cp);

	if (n == 0) {
		(*i)++;
		return 0xFFFD;
	}
	*i += n;
	return cp;
}

static void
args_b64_unit(struct buf *out, uint32_t u, uint32_t *bits, unsigned *nbits)
{
	*bits = (*bits << 16 | u) & 0x3FFFFF;
	*nbits += 16;
	while (*nbits >= 6) {
		*nbits -= 6;
		(void)buf_append_byte(
		    out, (uint8_t)args_b64[*bits >> *nbits & 0x3F]);
	}
}

void
imap_utf8_to_mutf7(const char *s, size_t len, struct buf *out)
{
	size_t i = 0;

	while (i < len) {
		unsigned char c = (unsigned char)s[i];
		uint32_t bits = 0;
		unsigned nbits = 0;

		if (c >= 0x20 && c <= 0x7e) {
			if (c == '&')
				(void)buf_append_str(out, "&-");
			else
				(void)buf_append_byte(out, c);
			i++;
			continue;
		}
		(void)buf_append_byte(out, '&');
		while (i < len && !((unsigned char)s[i] >= 0x20 &&
		                    (unsigned char)s[i] <= 0x7e)) {
			uint32_t cp = args_utf8_next(s, len, &i);

			if (cp >= 0x10000) {
				cp -= 0x10000;
				args_b64_unit(out, 0xD800 | cp >> 10, &bits,
				              &nbits);
				args_b64_unit(out, 0xDC00 | (cp & 0x3FF), &bits,
				              &nbits);
			} else {
				args_b64_unit(out, cp, &bits, &nbits);
			}
		}
		if (nbits > 0)
			(void)buf_append_byte(
			    out, (uint8_t)args_b64[bits << (6 - nbits) & 0x3F]);
		(void)buf_append_byte(out, '-');
	}
}

/* ---- output ---- */

static bool
args_utf8_valid(const char *s, size_t len)
{
	size_t i = 0, n;

	while (i < len) {
		if ((n = utf8_seq_len((const uint8_t *)s + i, len - i)) == 0)
			return false;
		i += n;
	}
	return true;
}

void
imap_write_string(struct buf *out, const char *s, size_t len, bool utf8_ok)
{
	bool literal = false, eight = false;
	size_t run;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '\0' || c == '\r' || c == '\n') {
			literal = true;
			break;
		}
		if (c >= 0x80)
			eight = true;
	}
	if (!literal && eight && (!utf8_ok || !args_utf8_valid(s, len)))
		literal = true;
	if (literal) {
		(void)buf_printf(out, "{%zu}\r\n", len);
		(void)buf_append(out, s, len);
		return;
	}
	(void)buf_append_byte(out, '"');
	for (size_t i = 0; i < len; i = run) {
		run = i;
		while (run < len && s[run] != '"' && s[run] != '\\')
			run++;
		(void)buf_append(out, s + i, run - i);
		if (run < len) {
			(void)buf_append_byte(out, '\\');
			(void)buf_append_byte(out, (uint8_t)s[run]);
			run++;
		}
	}
	(void)buf_append_byte(out, '"');
}

void
imap_write_nstring(struct buf *out, const char *s, size_t len, bool utf8_ok)
{
	if (s == NULL) {
		(void)buf_append_str(out, "NIL");
		return;
	}
	imap_write_string(out, s, len, utf8_ok);
}
