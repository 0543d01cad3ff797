/* libFuzzer target for the MIME parser (src/mail/mime.c, header.c) and the
 * IMAP body module (src/imap/body.c, body_section.c): any bytes give a
 * consistent part tree, well-formed BODYSTRUCTURE and ENVELOPE answers,
 * and sections that lie inside the message.
 * SECURITY: messages come from anyone; nothing here may read out of
 * bounds, recurse without bound, loop, or produce unbalanced IMAP. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "imap/body.h"
#include "mail/mailtext.h"
#include "mail/mime.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_part(const struct mime_message *m, const struct mime_part *p,
           unsigned int depth, size_t *count)
{
	size_t end = p->offset + p->hdr_size + p->body_size;
	size_t pos = p->offset + p->hdr_size;

	(*count)++;
	if (depth > MIME_DEPTH_MAX || end > m->len ||
	    p->hdr_vsize < p->hdr_size || p->body_vsize < p->body_size)
		abort();
	for (const struct mime_part *c = p->children; c != NULL; c = c->next) {
		if (c->parent != p || c->offset < pos)
			abort();
		check_part(m, c, depth + 1, count);
		pos = c->offset + c->hdr_size + c->body_size;
		if (pos > end)
			abort();
	}
}

/* Balanced lists, closed quoted strings without CR/LF, literals whose
 * counts fit. */
static void
check_imap(const struct buf *b)
{
	const char *s = (const char *)b->data;
	size_t i = 0, len = b->len;
	int depth = 0;

	while (i < len) {
		char c = s[i];

		if (c == '(') {
			depth++;
			i++;
		} else if (c == ')') {
			if (--depth < 0)
				abort();
			i++;
		} else if (c == '"') {
			for (i++; i < len && s[i] != '"'; i++) {
				if (s[i] == '\\')
					i++;
				if (i < len && (s[i] == '\r' || s[i] == '\n'))
					abort();
			}
			if (i >= len)
				abort();
			i++;
		} else if (c == '{') {
			char *end;
			unsigned long n = strtoul(s + i + 1, &end, 10);

			if (end >= s + len || *end != '}' ||
			    end + 2 >= s + len || end[1] != '\r' ||
			    end[2] != '\n')
				abort();
			i = (size_t)(end + 3 - s) + n;
			if (i > len)
				abort();
		} else if (c == '\r' || c == '\n' || c == '\0') {
			abort();
		} else {
			i++;
		}
	}
	if (depth != 0)
		abort();
}

static const char *const field_names[] = {"Subject", "content-type", "X"};

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *msg = (const char *)data;
	struct mime_message *m = mime_parse(msg, size);
	struct buf out, scratch;
	struct imap_section sec;
	size_t count = 0;
	time_t t;

	if (m->root->offset != 0 ||
	    m->root->hdr_size + m->root->body_size != size)
		abort();
	check_part(m, m->root, 0, &count);
	if (count != m->nparts || count > MIME_PARTS_MAX)
		abort();
	mime_message_free(&m);

	buf_init(&out, 0);
	buf_init(&scratch, 0);
	imap_body_structure(msg, size, true, &out);
	check_imap(&out);
	buf_reset(&out);
	imap_body_structure(msg, size, false, &out);
	check_imap(&out);
	buf_reset(&out);
	imap_body_envelope(msg, size, &out);
	check_imap(&out);

	/* sections chosen by the first bytes */
	memset(&sec, 0, sizeof(sec));
	sec.fields = (char **)field_names;
	sec.nfields = 3;
	for (int k = 0; k < 6; k++) {
		const char *d = NULL;
		size_t dlen = 0;

		sec.kind = (enum imap_section_kind)(k % 6);
		sec.nparts = size > 0 ? data[0] % 4 : 0;
		for (size_t i = 0; i < sec.nparts; i++)
			sec.part[i] = size > i + 1 ? data[i + 1] % 4 + 1 : 1;
		if (imap_body_section(msg, size, &sec, &scratch, &d, &dlen) ==
		        0 &&
		    sec.kind != IMAP_SECTION_FIELDS &&
		    sec.kind != IMAP_SECTION_FIELDS_NOT &&
		    (d < msg || d + dlen > msg + size))
			abort();
		buf_reset(&out);
		(void)imap_body_binary(msg, size, sec.part, sec.nparts, &out);
	}
	buf_reset(&out);
	(void)imap_body_binary(msg, size, NULL, 0, &out);
	buf_reset(&out);
	mailtext_body(msg, size, &out);
	buf_reset(&out);
	(void)mailtext_header(msg, size, "subject", &out);
	buf_reset(&out);
	(void)mailtext_header(msg, size, NULL, &out);
	(void)imap_body_sent_date(msg, size, &t);
	buf_free(&out);
	buf_free(&scratch);
	return 0;
}
