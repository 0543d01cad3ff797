/* The rest of src/imap/body.h: BODY[section] bytes (Dovecot's
 * imap-msgpart.c rules), BINARY[part] decoding (index-mail-binary.c), and
 * the Date that SEARCH needs (its text is src/mail/mailtext.c).
 * SECURITY: messages are untrusted. Part lookup follows the parsed tree
 * only; a header filter copies bytes of one header block; decoding never
 * produces more than the input size (plus CRs for bare LFs and a fixed
 * line per converted header); date parsing checks every range. */
#include "imap/body.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/xmalloc.h"
#include "mail/header.h"
#include "mail/mime.h"

/* Append data with every bare LF turned into CRLF. */
static void
append_crlf(struct buf *out, const char *data, size_t len)
{
	const char *p = data, *end = data + len, *lf;

	while ((lf = memchr(p, '\n', (size_t)(end - p))) != NULL) {
		if (lf > data && lf[-1] == '\r') {
			buf_append(out, p, (size_t)(lf + 1 - p));
		} else {
			buf_append(out, p, (size_t)(lf - p));
			buf_append_str(out, "\r\n");
		}
		p = lf + 1;
	}
	buf_append(out, p, (size_t)(end - p));
}

static bool
field_listed(const struct header_field *f, const struct imap_section *sec)
{
	if (f->name_len == 0)
		return false;
	for (size_t i = 0; i < sec->nfields; i++) {
		if (header_field_is(f, sec->fields[i]))
			return true;
	}
	return false;
}

/* HEADER.FIELDS (…) and HEADER.FIELDS.NOT (…): the chosen fields as they
 * are, CRLF line ends, then the empty line when the header has one. */
/* Whether an empty line follows the header in the message although the
 * parser gave its newline to a boundary right after it ("…\r\n\r\n--b"):
 * Dovecot's header filter reads the message, not the part sizes. */
static bool
blank_line_follows(const char *msg, size_t len, const struct mime_part *part)
{
	size_t end = part->offset + part->hdr_size;

	if (part->hdr_size > 0 && msg[end - 1] != '\n')
		return false; /* cut by a boundary inside a field */
	return (end < len && msg[end] == '\n') ||
	       (end + 1 < len && msg[end] == '\r' && msg[end + 1] == '\n');
}

static void
filter_header(const char *hdr, size_t len, const struct imap_section *sec,
              bool force_eoh, struct buf *out)
{
	bool want = sec->kind == IMAP_SECTION_FIELDS;
	struct header_iter it;
	struct header_field f;

	header_iter_init(&it, hdr, len);
	while (header_iter_next(&it, &f)) {
		if (field_listed(&f, sec) != want)
			continue;
		/* (the header cache drops a CR the message ends with) */
		if (force_eoh && f.no_newline && f.len > 0 &&
		    f.start[f.len - 1] == '\r')
			f.len--;
		append_crlf(out, f.start, f.len);
	}
	if (it.eoh || force_eoh)
		buf_append_str(out, "\r\n");
}

int
imap_body_section(const char *msg, size_t len, const struct imap_section *sec,
                  struct buf *scratch, const char **data_r, size_t *len_r)
{
	struct mime_message *m = mime_parse(msg, len);
	const struct mime_part *part = m->root;
	int ret = 0;

	*data_r = msg;
	*len_r = 0;
	if (sec->nparts > 0) {
		part = mime_part_find(m->root, sec->part, sec->nparts);
		if (part == NULL) {
			ret = -1;
		} else if (sec->kind != IMAP_SECTION_ALL &&
		           sec->kind != IMAP_SECTION_MIME) {
			/* HEADER, TEXT…: of the message inside message/rfc822
			 */
			if ((part->flags & MIME_PART_RFC822) == 0 ||
			    part->children == NULL)
				ret = -1;
			else
				part = part->children;
		}
	} else if (sec->kind == IMAP_SECTION_MIME) {
		ret = -1; /* [MIME] needs a part number */
	}
	if (ret == 0) {
		size_t body = part->offset + part->hdr_size;

		switch (sec->kind) {
		case IMAP_SECTION_ALL:
			if (sec->nparts == 0) {
				*len_r = len;
			} else {
				*data_r = msg + body;
				*len_r = part->body_size;
			}
			break;
		case IMAP_SECTION_HEADER:
		case IMAP_SECTION_MIME:
			*data_r = msg + part->offset;
			*len_r = part->hdr_size;
			break;
		case IMAP_SECTION_TEXT:
			*data_r = msg + body;
			*len_r = part->body_size;
			break;
		case IMAP_SECTION_FIELDS:
		case IMAP_SECTION_FIELDS_NOT:
			buf_reset(scratch);
			/* Dovecot serves the message's own HEADER.FIELDS
			   from its header cache, which always ends with the
			   empty line; everything else only has one when the
			   header has */
			filter_header(msg + part->offset, part->hdr_size, sec,
			              sec->nparts == 0
			                  ? sec->kind == IMAP_SECTION_FIELDS
			                  : blank_line_follows(msg, len, part),
			              scratch);
			*data_r = (const char *)scratch->data;
			*len_r = scratch->len;
			if (*data_r == NULL)
				*data_r = "";
			break;
		}
	}
	mime_message_free(&m);
	return ret;
}

/*
 * The header cache block
 */

static const char *const hdr_cache_fields[] = {
    "FROM",       "TO",           "CC",          "BCC",        "SUBJECT",
    "DATE",       "MESSAGE-ID",   "IN-REPLY-TO", "REFERENCES", "REPLY-TO",
    "SENDER",     "CONTENT-TYPE", "PRIORITY",    "X-PRIORITY", "IMPORTANCE",
    "NEWSGROUPS", "LIST-ID",      "LIST-POST",   "X-MAILER",   "USER-AGENT",
};

bool
imap_hdr_cache_has(const char *name)
{
	for (size_t i = 0;
	     i < sizeof(hdr_cache_fields) / sizeof(*hdr_cache_fields); i++)
		if (strcasecmp(name, hdr_cache_fields[i]) == 0)
			return true;
	return false;
}

bool
imap_hdr_cache_covers(const struct imap_section *sec)
{
	if (sec->nparts != 0 || sec->kind != IMAP_SECTION_FIELDS)
		return false;
	for (size_t i = 0; i < sec->nfields; i++)
		if (!imap_hdr_cache_has(sec->fields[i]))
			return false;
	return true;
}

/* The block is the message's own HEADER.FIELDS of the whole set: fields
 * in their order, each ending in CRLF, and always the empty line. Asked
 * for a subset, it gives what the message gives: the same fields in the
 * same order, then the empty line (top-level FIELDS always has it). But
 * not when the header's last line has no end (a message that is all
 * header): the message gives that field without its CRLF, the block could
 * not. Such a block does not read back as itself, and is not made. */
/* The length of msg up to the end of its first empty line (all of it
 * when there is none): the header, and no body to parse. */
static size_t
header_prefix_len(const char *msg, size_t len)
{
	const char *p = msg, *end = msg + len;

	if (len > 0 && msg[0] == '\n')
		return 1;
	if (len > 1 && msg[0] == '\r' && msg[1] == '\n')
		return 2;
	while ((p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
		p++;
		if (p < end && *p == '\n')
			return (size_t)(p + 1 - msg);
		if (end - p > 1 && p[0] == '\r' && p[1] == '\n')
			return (size_t)(p + 2 - msg);
	}
	return len;
}

void
imap_hdr_cache_block(const char *msg, size_t len, struct buf *out)
{
	struct imap_section sec = {
	    .kind = IMAP_SECTION_FIELDS,
	    .fields = (char **)hdr_cache_fields,
	    .nfields = sizeof(hdr_cache_fields) / sizeof(*hdr_cache_fields),
	};
	struct buf scratch, again;
	const char *data, *d2;
	size_t n, n2;

	buf_init(&scratch, 0);
	buf_init(&again, 0);
	len = header_prefix_len(msg, len);
	if (imap_body_section(msg, len, &sec, &scratch, &data, &n) == 0 &&
	    imap_body_section(data, n, &sec, &again, &d2, &n2) == 0 &&
	    n2 == n && memcmp(d2, data, n) == 0)
		buf_append(out, data, n);
	buf_free(&scratch);
	buf_free(&again);
}

/*
 * BINARY
 */

static enum mime_cte
part_cte(const struct mime_message *m, const struct mime_part *part,
         struct buf *tmp)
{
	enum mime_cte cte = MIME_CTE_78BIT;
	struct header_iter it;
	struct header_field f;

	header_iter_init(&it, m->data + part->offset, part->hdr_size);
	while (header_iter_next(&it, &f)) {
		if (!header_field_is(&f, "Content-Transfer-Encoding"))
			continue;
		buf_reset(tmp);
		header_field_unfold(&f, tmp);
		cte = mime_cte_parse((char *)tmp->data, tmp->len);
	}
	return cte;
}

/* One part: its header (Content-Transfer-Encoding replaced by "binary"
 * when the body gets decoded), then the body decoded or, for a multipart
 * or message/rfc822, its children in turn. */
static int
binary_part(const struct mime_message *m, const struct mime_part *part,
            bool include_hdr, bool *decoded, struct buf *tmp, struct buf *out)
{
	const char *hdr = m->data + part->offset;
	const char *body = hdr + part->hdr_size;
	enum mime_cte cte = part_cte(m, part, tmp);
	bool converted = cte == MIME_CTE_QP || cte == MIME_CTE_BASE64;

	if (cte == MIME_CTE_UNKNOWN)
		return -2;
	if (include_hdr && converted) {
		struct header_iter it;
		struct header_field f;

		header_iter_init(&it, hdr, part->hdr_size);
		while (header_iter_next(&it, &f)) {
			if (!header_field_is(&f, "Content-Transfer-Encoding"))
				append_crlf(out, f.start, f.len);
		}
		if (it.eoh)
			buf_append_str(out, "Content-Transfer-Encoding: "
			                    "binary\r\n\r\n");
	} else if (include_hdr) {
		append_crlf(out, hdr, part->hdr_size);
	}
	if (part->children != NULL) {
		const char *pos = body, *end = body + part->body_size;

		for (const struct mime_part *c = part->children; c != NULL;
		     c = c->next) {
			const char *start = m->data + c->offset;
			int ret;

			append_crlf(out, pos, (size_t)(start - pos));
			if ((ret = binary_part(m, c, true, decoded, tmp, out)) <
			    0)
				return ret;
			pos = start + c->hdr_size + c->body_size;
		}
		append_crlf(out, pos, (size_t)(end - pos));
		return 0;
	}
	if (converted && part->body_size > 0) {
		mime_body_decode(body, part->body_size, cte, out);
		*decoded = true;
	} else
		append_crlf(out, body, part->body_size);
	return 0;
}

int
imap_body_binary(const char *msg, size_t len, const uint32_t *part,
                 size_t nparts, struct buf *out)
{
	struct mime_message *m = mime_parse(msg, len);
	const struct mime_part *p = m->root;
	struct buf tmp;
	bool decoded = false;
	size_t start;
	int ret;

	if (nparts > 0)
		p = mime_part_find(m->root, part, nparts);
	if (p == NULL) {
		mime_message_free(&m);
		return -1;
	}
	buf_init(&tmp, 0);
	start = out->len;
	ret = binary_part(m, p, nparts == 0, &decoded, &tmp, out);
	if (ret == 0 && !decoded) {
		/* no body needed decoding: Dovecot then sends the part as
		   it is, Content-Transfer-Encoding fields included */
		size_t from = nparts == 0 ? p->offset : p->offset + p->hdr_size;

		out->len = start;
		append_crlf(out, msg + from,
		            p->offset + p->hdr_size + p->body_size - from);
	}
	buf_free(&tmp);
	mime_message_free(&m);
	return ret;
}

/*
 * Date: (RFC 5322 §3.3 with the obsolete forms of §4.3)
 */

static bool
date_word(struct header_lex *lx, char *w, size_t wmax)
{
	size_t n = 0;

	header_lex_skip_lwsp(lx);
	while (lx->data < lx->end && isalnum(*lx->data)) {
		if (n + 1 >= wmax)
			return false;
		w[n++] = (char)*lx->data++;
	}
	w[n] = '\0';
	return n > 0;
}

static bool
date_number(struct header_lex *lx, int maxdigits, int *v_r, int *ndigits_r)
{
	int v = 0, n = 0;

	header_lex_skip_lwsp(lx);
	while (lx->data < lx->end && *lx->data >= '0' && *lx->data <= '9') {
		if (++n > maxdigits)
			return false;
		v = v * 10 + (*lx->data++ - '0');
	}
	*v_r = v;
	if (ndigits_r != NULL)
		*ndigits_r = n;
	return n > 0;
}

static bool
date_colon(struct header_lex *lx)
{
	header_lex_skip_lwsp(lx);
	if (header_lex_peek(lx) != ':')
		return false;
	lx->data++;
	return true;
}

static int
month_number(const char *w)
{
	static const char *const months[] = {"jan", "feb", "mar", "apr",
	                                     "may", "jun", "jul", "aug",
	                                     "sep", "oct", "nov", "dec"};

	for (int i = 0; i < 12; i++) {
		if (strncasecmp(w, months[i], 3) == 0 && strlen(w) >= 3)
			return i;
	}
	return -1;
}

/* The wall-clock time written in the header as if it were UTC: IMAP's
 * SENTBEFORE, SENTON and SENTSINCE compare that date and ignore the
 * zone (RFC 3501 §6.4.4), as Dovecot does. */
int
imap_body_sent_date(const char *msg, size_t len, time_t *t_r)
{
	struct header_iter it;
	struct header_field f;
	struct buf v;
	bool found = false;
	int ret = -1;

	buf_init(&v, 0);
	header_iter_init(&it, msg, len); /* stops at the empty line */
	while (header_iter_next(&it, &f)) {
		if (header_field_is(&f, "Date")) {
			/* the first Date field */
			header_field_unfold(&f, &v);
			found = true;
			break;
		}
	}
	if (found) {
		struct header_lex lx;
		struct tm tm;
		char w[16];
		int day, mon, year, ydigits, hour, min, sec = 0;
		const unsigned char *save;

		memset(&tm, 0, sizeof(tm));
		header_lex_init(&lx, v.data, v.len, NULL);
		save = lx.data;
		if (date_word(&lx, w, sizeof(w)) &&
		    !(w[0] >= '0' && w[0] <= '9')) {
			/* day of week */
			header_lex_skip_lwsp(&lx);
			if (header_lex_peek(&lx) == ',')
				lx.data++;
		} else {
			lx.data = save;
		}
		if (date_number(&lx, 2, &day, NULL) &&
		    date_word(&lx, w, sizeof(w)) &&
		    (mon = month_number(w)) >= 0 &&
		    date_number(&lx, 4, &year, &ydigits) &&
		    date_number(&lx, 2, &hour, NULL) && date_colon(&lx) &&
		    date_number(&lx, 2, &min, NULL)) {
			header_lex_skip_lwsp(&lx);
			if (header_lex_peek(&lx) == ':') {
				lx.data++;
				if (!date_number(&lx, 2, &sec, NULL))
					sec = -1;
			}
			if (ydigits == 2)
				year += year < 50 ? 2000 : 1900;
			else if (ydigits == 3)
				year += 1900;
			if (sec >= 0 && day >= 1 && day <= 31 && hour <= 23 &&
			    min <= 59 && sec <= 60 && year >= 1900) {
				tm.tm_year = year - 1900;
				tm.tm_mon = mon;
				tm.tm_mday = day;
				tm.tm_hour = hour;
				tm.tm_min = min;
				tm.tm_sec = sec;
				*t_r = timegm(&tm);
				ret = 0;
			}
		}
	}
	buf_free(&v);
	return ret;
}
