/* The searchable text of a message (mailtext.h), on the MIME parser and
 * header iterator of src/mail.
 * SECURITY: messages are untrusted; the parser bounds depth and parts,
 * and every output is a function of bounded input (see mailtext.h). */
#include "mail/mailtext.h"

#include <stdbool.h>

#include "mail/header.h"
#include "mail/mime.h"

/* A value on one line: line breaks of folding removed, the whitespace
 * that follows them kept, encoded words decoded. */
static void
append_value(const struct header_field *f, struct buf *tmp, struct buf *out)
{
	buf_reset(tmp);
	header_field_unfold(f, tmp);
	for (size_t i = 0; i < tmp->len; i++) {
		if (tmp->data[i] == '\n')
			tmp->data[i] = ' ';
	}
	mime_header_decode((char *)tmp->data, tmp->len, out);
}

int
mailtext_header(const char *msg, size_t len, const char *name, struct buf *out)
{
	struct header_iter it;
	struct header_field f;
	struct buf tmp;
	bool found = false;

	buf_init(&tmp, 0);
	header_iter_init(&it, msg, len); /* stops at the empty line */
	while (header_iter_next(&it, &f)) {
		if (name != NULL && !header_field_is(&f, name))
			continue;
		if (name == NULL && f.name_len == 0)
			continue;
		if (found)
			buf_append_byte(out, '\n');
		found = true;
		if (name == NULL) {
			mime_utf8_sanitize(f.name, f.name_len, out);
			buf_append_str(out, ": ");
		}
		append_value(&f, &tmp, out);
	}
	buf_free(&tmp);
	return found ? 0 : -1;
}

static void
body_part(const struct mime_message *m, const struct mime_part *part,
          struct buf *tmp, struct buf *out)
{
	struct header_iter it;
	struct header_field f;
	struct mime_content ct;
	const char *charset = NULL;
	bool have_ct = false;
	enum mime_cte cte = MIME_CTE_78BIT;
	struct buf decoded;
	const uint8_t *body;
	size_t blen;

	if (part->children != NULL) {
		for (const struct mime_part *c = part->children; c != NULL;
		     c = c->next)
			body_part(m, c, tmp, out);
		return;
	}
	if ((part->flags & MIME_PART_TEXT) == 0)
		return;
	header_iter_init(&it, m->data + part->offset, part->hdr_size);
	while (header_iter_next(&it, &f)) {
		if ((part->flags & MIME_PART_IS_MIME) == 0)
			break;
		if (!have_ct && header_field_is(&f, "Content-Type")) {
			buf_reset(tmp);
			header_field_unfold(&f, tmp);
			mime_content_type_parse((char *)tmp->data, tmp->len,
			                        &ct);
			have_ct = true;
			charset = mime_content_param(&ct, "charset");
		} else if (header_field_is(&f, "Content-Transfer-Encoding")) {
			buf_reset(tmp);
			header_field_unfold(&f, tmp);
			cte = mime_cte_parse((char *)tmp->data, tmp->len);
		}
	}
	body = (const uint8_t *)m->data + part->offset + part->hdr_size;
	blen = part->body_size;
	buf_init(&decoded, 0);
	if (cte == MIME_CTE_QP || cte == MIME_CTE_BASE64) {
		mime_body_decode(body, blen, cte, &decoded);
		body = decoded.data;
		blen = decoded.len;
	}
	/* Else the text is the part's bytes as they are: no copy (a new
	 * buffer the size of the message was most of the page faults of
	 * indexing at delivery). */
	if (out->len > 0)
		buf_append_byte(out, '\n');
	if (charset == NULL ||
	    mime_charset_to_utf8(charset, body, blen, out) < 0)
		mime_utf8_sanitize(body, blen, out);
	buf_free(&decoded);
	if (have_ct)
		mime_content_clear(&ct);
}

void
mailtext_body(const char *msg, size_t len, struct buf *out)
{
	struct mime_message *m = mime_parse(msg, len);
	struct buf tmp;

	buf_init(&tmp, 0);
	body_part(m, m->root, &tmp, out);
	buf_free(&tmp);
	mime_message_free(&m);
}

void
mailtext_all(const char *msg, size_t len, struct buf *out)
{
	(void)mailtext_header(msg, len, NULL, out);
	buf_append_byte(out, '\n');
	mailtext_body(msg, len, out);
}
