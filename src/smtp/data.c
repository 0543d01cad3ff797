/* The message stream of the SMTP server: DATA (dot-unstuffing, line ends
 * normalized to CRLF, end only at CRLF "." CRLF) and BDAT chunks (binary
 * clean), with the size and header limits, the header scan and the fields
 * a submission server adds (RFC 6409 §8).
 * SECURITY: every byte comes from the peer. No bare-LF or bare-CR variant
 * of the end marker ends a message (SMTP smuggling); the header is held in
 * a buffer capped at limits.header_max, the message counted against
 * limits.message_max; over a limit the rest is read and dropped. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"
#include "core/xmalloc.h"
#include "smtp/server_int.h"

static void
sink_write(struct smtp_server *s, const void *p, size_t n)
{
	if (n == 0 || s->write_failed || smtp_data_error(s) != NULL)
		return;
	if (s->io.data_write(s->io.arg, p, n) < 0)
		s->write_failed = true;
}

static void
wbuf_flush(struct smtp_server *s)
{
	sink_write(s, s->wbuf.data, s->wbuf.len);
	buf_reset(&s->wbuf);
}

/* Every byte of the message goes through here, in order: the spool file
 * is written SMTP_WBUF_MAX bytes at a time, not once per header field. */
static void
body_put(struct smtp_server *s, const void *p, size_t n)
{
	if (s->wbuf.len + n > SMTP_WBUF_MAX)
		wbuf_flush(s);
	if (n >= SMTP_WBUF_MAX)
		sink_write(s, p, n);
	else if (buf_append(&s->wbuf, p, n) < 0)
		sink_write(s, p, n); /* not reached: flushed above */
}

/* Whether the field (name and value, continuation lines included) is an
 * Authentication-Results field whose authserv-id is our host name: only we
 * may say what we checked (RFC 8601 §5), so such a field from outside is
 * dropped. */
static bool
field_is_forged_ar(const struct smtp_server *s, const uint8_t *f, size_t len)
{
	static const char name[] = "authentication-results:";
	size_t n = sizeof(name) - 1, i, h = strlen(s->hostname);

	if (len < n || strncasecmp((const char *)f, name, n) != 0)
		return false;
	/* The authserv-id is the first token after optional FWS
	 * (comments before it are not worth honouring: a field that hides
	 * our name behind one is forged all the same). */
	for (i = n; i < len && (f[i] == ' ' || f[i] == '\t' || f[i] == '\r' ||
	                        f[i] == '\n');
	     i++)
		;
	if (len - i < h || strncasecmp((const char *)f + i, s->hostname, h) != 0)
		return false;
	i += h;
	return i == len || f[i] == ';' || f[i] == ' ' || f[i] == '\t' ||
	       f[i] == '\r' || f[i] == '\n' || f[i] == '(';
}

/* Write hdr[0..end) field by field, leaving out forged
 * Authentication-Results fields. */
static void
header_write_filtered(struct smtp_server *s, size_t end)
{
	const uint8_t *p = s->hdr.data, *stop = p + end;

	while (p < stop) {
		const uint8_t *q = p, *lf;

		/* One field: its first line and every continuation line. */
		do {
			lf = memchr(q, '\n', (size_t)(stop - q));
			q = lf != NULL ? lf + 1 : stop;
		} while (q < stop && (*q == ' ' || *q == '\t'));
		if (field_is_forged_ar(s, p, (size_t)(q - p)))
			s->forged_ar++;
		else
			body_put(s, p, (size_t)(q - p));
		p = q;
	}
}

/* Write the header section held so far (up to end), then the fields a
 * submission server adds, then whatever followed (the body so far). */
static void
header_flush(struct smtp_server *s, size_t end)
{
	s->in_header = false;
	if (s->hdr.data != NULL)
		header_write_filtered(s, end);
	if (s->forged_ar > 0) {
		log_notice(s->log_id, "event=forged-auth-results-removed count=%u",
		           s->forged_ar);
		s->forged_ar = 0;
	}
	if (s->kind == SMTP_KIND_SUBMISSION &&
	    (!s->has_date || !s->has_msgid)) {
		char date[64];

		if (end > 0 && s->hdr.data[end - 1] != '\n')
			body_put(s, "\r\n", 2); /* BDAT without line end */
		if (!s->has_date) {
			char *f;

			smtp_date_now(date, sizeof(date));
			f = xasprintf("Date: %s\r\n", date);
			body_put(s, f, strlen(f));
			free(f);
		}
		if (!s->has_msgid) {
			char *id = smtp_message_id(s);
			char *f = xasprintf("Message-ID: %s\r\n", id);

			body_put(s, f, strlen(f));
			free(f);
			free(id);
		}
	}
	if (s->hdr.data != NULL)
		body_put(s, s->hdr.data + end, s->hdr.len - end);
	buf_free(&s->hdr);
}

static bool
field_is(const uint8_t *line, size_t len, const char *name)
{
	size_t n = strlen(name);

	return len > n && line[n] == ':' &&
	       strncasecmp((const char *)line, name, n) == 0;
}

/* A complete line of the header section ends at hdr.len. */
static void
header_line(struct smtp_server *s)
{
	const uint8_t *line = s->hdr.data + s->hdr_line_start;
	size_t len = s->hdr.len - s->hdr_line_start, i;

	if (len > 0 && line[len - 1] == '\n')
		len--;
	if (len > 0 && line[len - 1] == '\r')
		len--;
	if (len == 0) {
		header_flush(s, s->hdr_line_start); /* the empty line */
		return;
	}
	if (line[0] == ' ' || line[0] == '\t') {
		s->hdr_line_start = s->hdr.len; /* folded */
		return;
	}
	for (i = 0;
	     i < len && line[i] > 0x20 && line[i] < 0x7f && line[i] != ':'; i++)
		;
	if (i == 0 || i == len || line[i] != ':') {
		/* Not a header field: the body starts here. */
		header_flush(s, s->hdr_line_start);
		return;
	}
	if (field_is(line, len, "date"))
		s->has_date = true;
	else if (field_is(line, len, "message-id"))
		s->has_msgid = true;
	s->hdr_line_start = s->hdr.len;
}

/* Message bytes, decoded: counted, then into the header or the body. */
static void
emit(struct smtp_server *s, const uint8_t *p, size_t n)
{
	if (smtp_data_error(s) != NULL)
		return;
	s->msg_size += n;
	if (s->msg_size > s->lim.message_max) {
		s->too_big = true;
		return;
	}
	while (n > 0 && s->in_header) {
		const uint8_t *lf = memchr(p, '\n', n);
		size_t k = lf != NULL ? (size_t)(lf - p) + 1 : n;

		if (buf_append(&s->hdr, p, k) < 0) {
			s->hdr_too_big = true;
			return;
		}
		p += k;
		n -= k;
		if (lf != NULL)
			header_line(s);
	}
	if (n > 0)
		body_put(s, p, n);
}

static void
eol(struct smtp_server *s, bool real_crlf)
{
	emit(s, (const uint8_t *)"\r\n", 2);
	s->prev_crlf = real_crlf;
	s->dstate = SMTP_D_BOL;
}

static void
bare(struct smtp_server *s)
{
	if (s->lim.reject_bare_lf)
		s->bad_bare = true;
}

void
smtp_data_clear(struct smtp_server *s)
{
	buf_free(&s->hdr);
	buf_free(&s->wbuf);
}

void
smtp_data_start(struct smtp_server *s)
{
	char *rcvd;

	smtp_data_clear(s);
	buf_init(&s->hdr, s->lim.header_max);
	buf_init(&s->wbuf, SMTP_WBUF_MAX);
	(void)buf_reserve(&s->wbuf, SMTP_WBUF_MAX); /* not grown bit by bit */
	s->dstate = SMTP_D_BOL;
	/* The line that ended the DATA command counts as the CRLF before a
	 * ".": a bare LF there does not make "DATA\n.\r\n" a message end. */
	s->prev_crlf = s->line_crlf;
	s->msg_size = 0;
	s->too_big = s->hdr_too_big = s->bad_bare = s->write_failed = false;
	s->in_header = true;
	s->hdr_line_start = 0;
	s->has_date = s->has_msgid = false;
	rcvd = smtp_received_header(s);
	body_put(s, rcvd, strlen(rcvd));
	free(rcvd);
}

const char *
smtp_data_error(const struct smtp_server *s)
{
	if (s->bad_bare)
		return "550 5.5.2 Error: bare <LF> or <CR> received";
	if (s->too_big)
		return "552 5.3.4 Error: message file too big";
	if (s->hdr_too_big)
		return "552 5.3.4 Error: message header too big";
	return NULL;
}

const char *
smtp_data_finish(struct smtp_server *s)
{
	const char *err = smtp_data_error(s);

	if (err != NULL)
		return err;
	if (s->in_header)
		header_flush(s, s->hdr.len);
	wbuf_flush(s);
	if (s->write_failed)
		return "451 4.3.0 Error: queue file write error";
	return NULL;
}

/* Where the next CR and the next LF are in one input buffer. Each is
 * looked for again only once the scan has passed it, so the searches
 * never cover a byte twice: looking for the LF afresh at every bare CR
 * made a message of bare CRs quadratic in the buffer's size. */
struct eol_scan {
	const uint8_t *p;
	size_t len;
	size_t cr, lf; /* offsets, len when none; SIZE_MAX before a search */
};

static size_t
scan_next(const struct eol_scan *sc, size_t *at, size_t from, int c)
{
	if (*at == SIZE_MAX || *at < from) {
		const uint8_t *q = memchr(sc->p + from, c, sc->len - from);

		*at = q != NULL ? (size_t)(q - sc->p) : sc->len;
	}
	return *at;
}

/* The end of the whole lines from i that the state machine would pass on
 * unchanged: each ends in a real CRLF, holds no other CR or LF, and none
 * but the first starts with a dot (that one to be unstuffed, or to end
 * the message). The bytes then go on in one piece, not a line and its
 * CRLF at a time, found by memchr rather than byte by byte: the scan of
 * a 64 KB message was 5 % of front's time. */
static size_t
plain_lines(struct eol_scan *sc, size_t i)
{
	while (i < sc->len) {
		size_t lf = scan_next(sc, &sc->lf, i, '\n');

		/* Not a line of its own, or a bare CR or LF in it. */
		if (lf == sc->len || lf == i ||
		    scan_next(sc, &sc->cr, i, '\r') != lf - 1)
			break;
		i = lf + 1;
		if (i < sc->len && sc->p[i] == '.')
			break;
	}
	return i;
}

/* The first CR or LF from i, or the end. */
static size_t
line_end(struct eol_scan *sc, size_t i)
{
	size_t cr = scan_next(sc, &sc->cr, i, '\r');
	size_t lf = scan_next(sc, &sc->lf, i, '\n');

	return cr < lf ? cr : lf;
}

size_t
smtp_data_input(struct smtp_server *s, const uint8_t *p, size_t len)
{
	struct eol_scan sc = {p, len, SIZE_MAX, SIZE_MAX};
	size_t i = 0;

	while (i < len) {
		uint8_t c = p[i];

		switch (s->dstate) {
		case SMTP_D_BOL:
			if (c == '.') {
				s->dstate = SMTP_D_DOT;
				i++;
			} else {
				s->dstate = SMTP_D_TEXT;
			}
			break;
		case SMTP_D_TEXT: {
			size_t j = plain_lines(&sc, i);

			if (j > i) {
				emit(s, p + i, j - i);
				s->prev_crlf = true;
				s->dstate = SMTP_D_BOL;
				i = j;
				break;
			}
			j = line_end(&sc, i);
			emit(s, p + i, j - i);
			i = j;
			if (i == len)
				break;
			if (p[i] == '\r') {
				s->dstate = SMTP_D_CR;
			} else {
				bare(s); /* bare LF */
				eol(s, false);
			}
			i++;
			break;
		}
		case SMTP_D_CR:
			if (c == '\n') {
				eol(s, true);
				i++;
			} else {
				bare(s); /* bare CR; c starts a new line */
				eol(s, false);
			}
			break;
		case SMTP_D_DOT:
			if (c == '\r') {
				s->dstate = SMTP_D_DOT_CR;
				i++;
			} else if (c == '\n') {
				/* ".\n" never ends a message; the dot is kept
				 * (a relay will stuff it again). */
				bare(s);
				emit(s, (const uint8_t *)".", 1);
				eol(s, false);
				i++;
			} else {
				s->dstate =
				    SMTP_D_TEXT; /* the dot is dropped */
			}
			break;
		case SMTP_D_DOT_CR:
			if (c == '\n') {
				i++;
				if (s->prev_crlf) {
					smtp_server_message_end(s);
					return i;
				}
				emit(s, (const uint8_t *)".", 1);
				eol(s, true);
			} else {
				bare(s);
				emit(s, (const uint8_t *)".", 1);
				eol(s, false);
			}
			break;
		}
	}
	return i;
}

size_t
smtp_bdat_input(struct smtp_server *s, const uint8_t *p, size_t len)
{
	size_t n = len;

	if ((uint64_t)n > s->bdat_left)
		n = (size_t)s->bdat_left;
	if (!s->bdat_discard)
		emit(s, p, n);
	s->bdat_left -= n;
	if (s->bdat_left == 0)
		smtp_server_chunk_end(s);
	return n;
}
