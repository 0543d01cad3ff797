/* DKIM canonicalization (RFC 6376 §3.4): header fields and body, simple and
 * relaxed; the body hash streams (one pass, any chunking, l= limit).
 * SECURITY: peer message; at most DKIM_HEADER_FIELDS_MAX fields are kept
 * and the body goes through a fixed stage buffer. */
#include "mailauth/dkim_int.h"

#include <string.h>

#include "core/xmalloc.h"

static bool
dkim_is_wsp(uint8_t c)
{
	return c == ' ' || c == '\t';
}

/* Offset just past the CRLF ending the line at i, or len. */
static size_t
dkim_line_end(const uint8_t *msg, size_t len, size_t i)
{
	while (i < len) {
		const uint8_t *lf = memchr(msg + i, '\n', len - i);
		if (lf == NULL)
			return len;
		i = (size_t)(lf - msg) + 1;
		if (lf > msg && lf[-1] == '\r')
			return i;
	}
	return len;
}

static void
dkim_field_add(struct dkim_msg *m, const uint8_t *data, size_t len)
{
	static const char sig_name[] = "DKIM-Signature";
	struct dkim_field f = {.data = data, .len = len};
	const uint8_t *colon = memchr(data, ':', len);

	if (colon != NULL) {
		size_t n = (size_t)(colon - data);
		f.value_off = n + 1;
		while (n > 0 && dkim_is_wsp(data[n - 1]))
			n--;
		f.name_len = n;
	}
	if (dkim_field_is(&f, sig_name, sizeof(sig_name) - 1))
		m->dkim_sigs++;
	if (dkim_field_is(&f, "ARC-Seal", 8) ||
	    dkim_field_is(&f, "ARC-Message-Signature", 21) ||
	    dkim_field_is(&f, "ARC-Authentication-Results", 26))
		m->arc_fields++;
	if (m->count == DKIM_HEADER_FIELDS_MAX) {
		m->too_many = true;
		return;
	}
	if ((m->count & (m->count - 1)) == 0) /* 0, 1, 2, 4, … */
		m->fields =
		    xreallocarray(m->fields, m->count == 0 ? 1 : m->count * 2,
		                  sizeof(*m->fields));
	m->fields[m->count++] = f;
}

void
dkim_msg_parse(const uint8_t *msg, size_t len, struct dkim_msg *m)
{
	size_t i = 0;

	memset(m, 0, sizeof(*m));
	while (i < len) {
		size_t start = i;

		if (len - i >= 2 && msg[i] == '\r' && msg[i + 1] == '\n') {
			m->body = msg + i + 2;
			m->body_len = len - i - 2;
			return;
		}
		/* A field: its first line and every line starting with WSP. */
		i = dkim_line_end(msg, len, i);
		while (i < len && dkim_is_wsp(msg[i]))
			i = dkim_line_end(msg, len, i);
		dkim_field_add(m, msg + start, i - start);
	}
}

void
dkim_msg_clear(struct dkim_msg *m)
{
	xfree(&m->fields);
	memset(m, 0, sizeof(*m));
}

bool
dkim_field_is(const struct dkim_field *f, const char *name, size_t name_len)
{
	return f->value_off != 0 && dkim_ci_equal((const char *)f->data,
	                                          f->name_len, name, name_len);
}

/* Relaxed (§3.4.2): lower-case name, no WSP around the colon, unfolded,
 * WSP runs as one SP, none at the end of the value. */
static int
dkim_canon_relaxed(const uint8_t *field, size_t len, bool strip_crlf,
                   struct buf *out)
{
	size_t colon, i;
	bool wsp = false, started = false;

	if (len >= 2 && field[len - 2] == '\r' && field[len - 1] == '\n')
		len -= 2;
	{
		const uint8_t *c = memchr(field, ':', len);
		colon = c == NULL ? len : (size_t)(c - field);
	}
	for (i = 0; i < colon; i++) {
		uint8_t c = field[i];
		if (dkim_is_wsp(c) || c == '\r' || c == '\n')
			continue; /* WSP before the colon (obs-syntax) */
		if (c >= 'A' && c <= 'Z')
			c = (uint8_t)(c + 32);
		if (buf_append_byte(out, c) < 0)
			return -1;
	}
	if (colon < len && buf_append_byte(out, ':') < 0)
		return -1;
	for (i = colon + 1; i < len; i++) {
		uint8_t c = field[i];
		if (c == '\r' && i + 1 < len && field[i + 1] == '\n') {
			i++; /* unfold: the CRLF goes, the WSP after it stays */
			continue;
		}
		if (dkim_is_wsp(c)) {
			wsp = started;
			continue;
		}
		if (wsp && buf_append_byte(out, ' ') < 0)
			return -1;
		if (buf_append_byte(out, c) < 0)
			return -1;
		wsp = false;
		started = true;
	}
	if (!strip_crlf && buf_append(out, "\r\n", 2) < 0)
		return -1;
	return 0;
}

int
dkim_canon_header(enum dkim_canon canon, const uint8_t *field, size_t len,
                  bool strip_crlf, struct buf *out)
{
	if (canon == DKIM_CANON_RELAXED)
		return dkim_canon_relaxed(field, len, strip_crlf, out);
	if (strip_crlf && len >= 2 && field[len - 2] == '\r' &&
	    field[len - 1] == '\n')
		len -= 2;
	return buf_append(out, field, len);
}

/* ------------------------------------------------------------------ body */

int
dkim_body_init(struct dkim_body *b, enum dkim_canon canon, const EVP_MD *md,
               uint64_t limit)
{
	memset(b, 0, sizeof(*b));
	b->canon = canon;
	b->limit = limit;
	if ((b->md = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestInit_ex(b->md, md, NULL) != 1) {
		EVP_MD_CTX_free(b->md);
		b->md = NULL;
		return -1;
	}
	return 0;
}

static void
dkim_body_flush(struct dkim_body *b)
{
	/* EVP_DigestUpdate on an initialized SHA context cannot fail. */
	if (b->staged > 0)
		(void)EVP_DigestUpdate(b->md, b->stage, b->staged);
	b->staged = 0;
}

/* One canonical byte: counted always, hashed while under the limit. */
static void
dkim_body_emit(struct dkim_body *b, uint8_t c)
{
	if (b->total++ >= b->limit)
		return;
	if (b->staged == sizeof(b->stage))
		dkim_body_flush(b);
	b->stage[b->staged++] = c;
}

/* Content on a line: the empty lines held back were not trailing. */
static void
dkim_body_content(struct dkim_body *b, uint8_t c)
{
	for (; b->empty_lines > 0; b->empty_lines--) {
		dkim_body_emit(b, '\r');
		dkim_body_emit(b, '\n');
	}
	if (b->wsp)
		dkim_body_emit(b, ' ');
	b->wsp = false;
	dkim_body_emit(b, c);
	b->line = true;
}

static void
dkim_body_eol(struct dkim_body *b)
{
	if (b->line) {
		dkim_body_emit(b, '\r');
		dkim_body_emit(b, '\n');
	} else {
		b->empty_lines++;
	}
	b->line = false;
	b->wsp = false; /* relaxed: WSP at the end of a line goes */
}

/* Bytes that canonicalize to themselves wherever they are: not CR, and
 * (relaxed) not WSP. LF alone is data here, as in dkim_body_update. */
static bool
dkim_body_plain(const struct dkim_body *b, uint8_t c)
{
	return c != '\r' && (b->canon != DKIM_CANON_RELAXED || !dkim_is_wsp(c));
}

/* How many bytes from data on go to the hash unchanged: plain bytes and,
 * relaxed, single spaces between plain bytes (a lone SP stays one SP). */
static size_t
dkim_body_span(const struct dkim_body *b, const uint8_t *data, size_t len)
{
	size_t j = 0;

	while (j < len) {
		if (dkim_body_plain(b, data[j]))
			j++;
		else if (data[j] == ' ' && b->canon == DKIM_CANON_RELAXED &&
		         j + 1 < len && dkim_body_plain(b, data[j + 1]))
			j += 2;
		else
			break;
	}
	return j;
}

/* A span of canonical bytes as they are: counted always, hashed while
 * under the limit; long spans skip the stage. */
static void
dkim_body_emit_span(struct dkim_body *b, const uint8_t *p, size_t n)
{
	uint64_t room = b->total < b->limit ? b->limit - b->total : 0;
	size_t h = (uint64_t)n < room ? n : (size_t)room;

	b->total += n;
	if (h == 0)
		return;
	if (h <= sizeof(b->stage) - b->staged) {
		memcpy(b->stage + b->staged, p, h);
		b->staged += h;
		return;
	}
	dkim_body_flush(b);
	(void)EVP_DigestUpdate(b->md, p, h);
}

void
dkim_body_update(struct dkim_body *b, const uint8_t *data, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		uint8_t c = data[i];

		/* The common case first: nothing held back, a run of bytes
		 * that need no change (most of a line) goes as it is. */
		if (!b->cr && !b->wsp && b->empty_lines == 0) {
			size_t n = dkim_body_span(b, data + i, len - i);

			if (n > 0) {
				dkim_body_emit_span(b, data + i, n);
				b->line = true;
				i += n - 1;
				continue;
			}
		}

		if (b->cr) {
			b->cr = false;
			if (c == '\n') {
				dkim_body_eol(b);
				continue;
			}
			dkim_body_content(b, '\r'); /* a bare CR is data */
		}
		if (c == '\r')
			b->cr = true;
		else if (b->canon == DKIM_CANON_RELAXED && dkim_is_wsp(c))
			b->wsp = true;
		else
			dkim_body_content(b, c);
	}
}

int
dkim_body_final(struct dkim_body *b, uint8_t *out, unsigned *len_r)
{
	if (b->cr)
		dkim_body_content(b, '\r');
	b->cr = false;
	/* A last line without CRLF gets one (both algorithms). */
	if (b->line)
		dkim_body_eol(b);
	/* simple: an empty body is one CRLF; relaxed: nothing (erratum
	 * 1384 of RFC 4871, carried into RFC 6376). */
	if (b->canon == DKIM_CANON_SIMPLE && b->total == 0) {
		dkim_body_emit(b, '\r');
		dkim_body_emit(b, '\n');
	}
	dkim_body_flush(b);
	return EVP_DigestFinal_ex(b->md, out, len_r) == 1 ? 0 : -1;
}

void
dkim_body_clear(struct dkim_body *b)
{
	EVP_MD_CTX_free(b->md);
	b->md = NULL;
}
