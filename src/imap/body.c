/* IMAP ENVELOPE, BODY and BODYSTRUCTURE (RFC 3501 §7.4.2) from the MIME
 * tree of src/mail/mime.c, written the way Dovecot 2.3 writes them
 * (imap-envelope.c, imap-bodystructure.c, imap-quote.c) so clients see
 * the same answers; sections, BINARY and SEARCH are in body_section.c.
 * SECURITY: messages are untrusted. Output is bounded by the message size
 * times a small constant (quoting, default values per part, at most
 * MIME_PARTS_MAX parts), recursion by MIME_DEPTH_MAX, and every string
 * goes out quoted or as a counted literal, never raw. */
#include "imap/body.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/xmalloc.h"
#include "mail/header.h"
#include "mail/mime.h"

/* quoted-specials after which a literal is shorter than escaping */
#define QUOTED_MAX_ESCAPES 4

#define EMPTY_BODY                                                             \
	"(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0)"
#define EMPTY_BODYSTRUCTURE                                                    \
	"(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0 " \
	"NIL NIL NIL NIL)"
#define PLAIN_7BIT                                                             \
	"\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\""

/*
 * Strings
 */

static void
append_literal(struct buf *out, const char *s, size_t len)
{
	buf_printf(out, "{%zu}\r\n", len);
	buf_append(out, s, len);
}

static void
append_quoted(struct buf *out, const char *s)
{
	buf_append_byte(out, '"');
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '\r' || c == '\n' || c >= 0x80)
			continue;
		if (c == '"' || c == '\\')
			buf_append_byte(out, '\\');
		buf_append_byte(out, c);
	}
	buf_append_byte(out, '"');
}

/* NIL, a quoted string, or a literal when the string has CR, LF, 8-bit
 * bytes or more than a few quoted-specials. */
static void
append_nstring(struct buf *out, const char *s)
{
	unsigned int escapes = 0;

	if (s == NULL) {
		buf_append_str(out, "NIL");
		return;
	}
	for (const char *p = s; *p != '\0'; p++) {
		unsigned char c = (unsigned char)*p;

		if (c == '"' || c == '\\') {
			if (escapes++ < QUOTED_MAX_ESCAPES)
				continue;
			append_literal(out, s, strlen(s));
			return;
		}
		if (c == '\r' || c == '\n' || c >= 0x80) {
			append_literal(out, s, strlen(s));
			return;
		}
	}
	append_quoted(out, s);
}

/* The same with each CR and LF removed, a space put where a line break
 * was not followed by whitespace. */
static void
append_nstring_nolf(struct buf *out, const char *s)
{
	struct buf tmp;

	if (s == NULL || strpbrk(s, "\r\n") == NULL) {
		append_nstring(out, s);
		return;
	}
	buf_init(&tmp, 0);
	for (const char *p = s; *p != '\0'; p++) {
		if (*p != '\r' && *p != '\n')
			buf_append_byte(&tmp, (uint8_t)*p);
		else if (p[1] != ' ' && p[1] != '\t' && p[1] != '\r' &&
		         p[1] != '\n' && p[1] != '\0')
			buf_append_byte(&tmp, ' ');
	}
	append_nstring(out, buf_cstr(&tmp));
	buf_free(&tmp);
}

/* Subjects and display names: whitespace runs become one space, leading
 * and trailing whitespace go, NUL becomes 0x80; anything changed or
 * needing escapes is sent as a literal. */
static void
append_string_for_humans(struct buf *out, const char *src, size_t size)
{
	size_t i, remove = 0;
	bool ws_prefix = true, last_lwsp = true, modify = false;

	for (i = 0; i < size; i++) {
		unsigned char c = (unsigned char)src[i];

		switch (c) {
		case 0:
			last_lwsp = false;
			modify = true;
			break;
		case '\r':
		case '\n':
		case '\t':
			modify = true;
			/* fall through */
		case ' ':
			if (last_lwsp) {
				modify = true;
				remove++;
			}
			last_lwsp = true;
			break;
		case '"':
		case '\\':
			modify = true;
			last_lwsp = false;
			break;
		default:
			if (c >= 0x80)
				modify = true;
			last_lwsp = false;
			break;
		}
		if (!last_lwsp)
			ws_prefix = false;
	}
	if (last_lwsp && i > 0 && !ws_prefix) {
		modify = true;
		remove++;
	}
	if (!modify) {
		buf_append_byte(out, '"');
		buf_append(out, src, size);
		buf_append_byte(out, '"');
		return;
	}
	if (size == remove) {
		buf_append_str(out, "\"\"");
		return;
	}
	buf_printf(out, "{%zu}\r\n", size - remove);
	last_lwsp = true;
	ws_prefix = true;
	for (i = 0; i < size; i++) {
		unsigned char c = (unsigned char)src[i];

		switch (c) {
		case 0:
			buf_append_byte(out, 0x80);
			last_lwsp = false;
			break;
		case '\r':
		case '\n':
		case '\t':
		case ' ':
			if (!last_lwsp)
				buf_append_byte(out, ' ');
			last_lwsp = true;
			break;
		default:
			last_lwsp = false;
			buf_append_byte(out, c);
			break;
		}
		if (!last_lwsp)
			ws_prefix = false;
	}
	if (last_lwsp && i > 0 && !ws_prefix)
		out->len--;
}

/* An unfolded field value as a pooled string, NUL as U+FFFD. */
static char *
field_string(const struct header_field *f, struct header_pool *pool,
             struct buf *tmp)
{
	struct buf v;
	char *s;

	buf_init(&v, 0);
	buf_reset(tmp);
	header_field_unfold(f, tmp);
	header_append_nonul(&v, tmp->data, tmp->len);
	s = header_pool_strndup(pool, v.data, v.len);
	buf_free(&v);
	return s;
}

/*
 * ENVELOPE
 */

enum env_addr {
	ENV_FROM,
	ENV_SENDER,
	ENV_REPLY_TO,
	ENV_TO,
	ENV_CC,
	ENV_BCC,
	ENV_ADDR_COUNT
};

struct envelope {
	const char *date, *subject, *in_reply_to, *message_id;
	struct header_address_list addr[ENV_ADDR_COUNT];
	struct header_pool pool;
};

static void
envelope_parse(const char *hdr, size_t len, struct envelope *env)
{
	static const char *const addr_names[ENV_ADDR_COUNT] = {
	    "From", "Sender", "Reply-To", "To", "Cc", "Bcc"};
	struct header_iter it;
	struct header_field f;
	struct buf tmp;

	memset(env, 0, sizeof(*env));
	buf_init(&tmp, 0);
	header_iter_init(&it, hdr, len);
	while (header_iter_next(&it, &f)) {
		const char **str = NULL;
		int a = -1;

		if (header_field_is(&f, "Date"))
			str = &env->date;
		else if (header_field_is(&f, "Subject"))
			str = &env->subject;
		else if (header_field_is(&f, "In-Reply-To"))
			str = &env->in_reply_to;
		else if (header_field_is(&f, "Message-ID"))
			str = &env->message_id;
		for (int i = 0; str == NULL && i < ENV_ADDR_COUNT; i++) {
			if (header_field_is(&f, addr_names[i]))
				a = i;
		}
		if (str != NULL) {
			/* the last one counts, as in Dovecot */
			*str = field_string(&f, &env->pool, &tmp);
		} else if (a >= 0) {
			/* several fields merge as if comma separated */
			buf_reset(&tmp);
			header_field_unfold(&f, &tmp);
			header_address_parse(&env->addr[a], (char *)tmp.data,
			                     tmp.len, (size_t)-1);
		}
	}
	buf_free(&tmp);
}

static void
envelope_clear(struct envelope *env)
{
	for (int i = 0; i < ENV_ADDR_COUNT; i++)
		header_address_list_clear(&env->addr[i]);
	header_pool_clear(&env->pool);
}

static void
write_addresses(struct buf *out, const struct header_address_list *l)
{
	if (l->n == 0) {
		buf_append_str(out, "NIL");
		return;
	}
	buf_append_byte(out, '(');
	for (size_t i = 0; i < l->n; i++) {
		const struct header_address *a = &l->v[i];

		buf_append_byte(out, '(');
		if (a->name == NULL)
			buf_append_str(out, "NIL");
		else
			append_string_for_humans(out, a->name, strlen(a->name));
		buf_append_byte(out, ' ');
		append_nstring(out, a->route);
		buf_append_byte(out, ' ');
		append_nstring(out, a->mailbox);
		buf_append_byte(out, ' ');
		append_nstring(out, a->domain);
		buf_append_byte(out, ')');
	}
	buf_append_byte(out, ')');
}

static void
envelope_write(const struct envelope *env, struct buf *out)
{
	const struct header_address_list *from = &env->addr[ENV_FROM];

	append_nstring_nolf(out, env->date);
	buf_append_byte(out, ' ');
	if (env->subject == NULL)
		buf_append_str(out, "NIL");
	else
		append_string_for_humans(out, env->subject,
		                         strlen(env->subject));
	buf_append_byte(out, ' ');
	write_addresses(out, from);
	for (int i = ENV_SENDER; i < ENV_ADDR_COUNT; i++) {
		const struct header_address_list *l = &env->addr[i];

		/* Sender and Reply-To default to From */
		if (l->n == 0 && (i == ENV_SENDER || i == ENV_REPLY_TO))
			l = from;
		buf_append_byte(out, ' ');
		write_addresses(out, l);
	}
	buf_append_byte(out, ' ');
	append_nstring_nolf(out, env->in_reply_to);
	buf_append_byte(out, ' ');
	append_nstring_nolf(out, env->message_id);
}

static void
envelope_append(const char *hdr, size_t len, struct buf *out)
{
	struct envelope env;

	envelope_parse(hdr, len, &env);
	envelope_write(&env, out);
	envelope_clear(&env);
}

void
imap_body_envelope(const char *msg, size_t len, struct buf *out)
{
	/* the message header ends at the first empty line: no need to
	   parse the MIME structure */
	buf_append_byte(out, '(');
	envelope_append(msg, len, out);
	buf_append_byte(out, ')');
}

/*
 * BODY and BODYSTRUCTURE
 */

/* The Content-* fields of a part (Dovecot's message_part_data). */
struct part_data {
	bool have_type, have_disp;
	struct mime_content type, disp;
	const char *cte, *id, *md5, *description, *location;
	const char **lang;
	size_t nlang;
	struct header_pool pool;
};

static void
parse_language(struct part_data *d, const char *v, size_t len)
{
	struct header_lex lx;
	struct buf atom;
	size_t cap = 0;

	buf_init(&atom, 0);
	header_lex_init(&lx, v, len, NULL);
	header_lex_skip_lwsp(&lx);
	while (header_lex_atom(&lx, &atom) >= 0) {
		if (d->nlang == cap) {
			cap = cap == 0 ? 4 : cap * 2;
			d->lang = xreallocarray(d->lang, cap, sizeof(*d->lang));
		}
		d->lang[d->nlang++] =
		    header_pool_strndup(&d->pool, atom.data, atom.len);
		buf_reset(&atom);
		if (header_lex_peek(&lx) != ',')
			break;
		lx.data++;
		header_lex_skip_lwsp(&lx);
	}
	buf_free(&atom);
}

static void
parse_cte(struct part_data *d, const char *v, size_t len)
{
	struct header_lex lx;
	struct buf tok;

	buf_init(&tok, 0);
	header_lex_init(&lx, v, len, NULL);
	header_lex_skip_lwsp(&lx);
	if (header_lex_mime_token(&lx, &tok) >= 0 &&
	    header_lex_skip_lwsp(&lx) == 0 && tok.len > 0)
		d->cte = header_pool_strndup(&d->pool, tok.data, tok.len);
	buf_free(&tok);
}

static void
part_data_parse(const struct mime_message *m, const struct mime_part *part,
                struct part_data *d)
{
	struct header_iter it;
	struct header_field f;
	struct buf tmp;

	memset(d, 0, sizeof(*d));
	if ((part->flags & MIME_PART_IS_MIME) == 0)
		return; /* without MIME-Version, Content-* mean nothing */
	buf_init(&tmp, 0);
	header_iter_init(&it, m->data + part->offset, part->hdr_size);
	while (header_iter_next(&it, &f)) {
		const char *n = f.name + 8;
		size_t nlen = f.name_len - 8;

		if (f.name_len <= 8 || strncasecmp(f.name, "Content-", 8) != 0)
			continue;
#define NAME_IS(s) (nlen == strlen(s) && strncasecmp(n, s, nlen) == 0)
		if (NAME_IS("ID") && d->id == NULL) {
			d->id = field_string(&f, &d->pool, &tmp);
		} else if (NAME_IS("MD5") && d->md5 == NULL) {
			d->md5 = field_string(&f, &d->pool, &tmp);
		} else if (NAME_IS("Description") && d->description == NULL) {
			d->description = field_string(&f, &d->pool, &tmp);
		} else if (NAME_IS("Location") && d->location == NULL) {
			d->location = field_string(&f, &d->pool, &tmp);
		} else if (NAME_IS("Type") && !d->have_type) {
			buf_reset(&tmp);
			header_field_unfold(&f, &tmp);
			mime_content_type_parse((char *)tmp.data, tmp.len,
			                        &d->type);
			d->have_type = true;
		} else if (NAME_IS("Transfer-Encoding") && d->cte == NULL) {
			buf_reset(&tmp);
			header_field_unfold(&f, &tmp);
			parse_cte(d, (char *)tmp.data, tmp.len);
		} else if (NAME_IS("Language") && d->nlang == 0) {
			buf_reset(&tmp);
			header_field_unfold(&f, &tmp);
			parse_language(d, (char *)tmp.data, tmp.len);
		} else if (NAME_IS("Disposition") &&
		           (!d->have_disp || d->disp.nparams == 0)) {
			/* a later field replaces one without parameters */
			struct mime_content disp;

			buf_reset(&tmp);
			header_field_unfold(&f, &tmp);
			if (mime_disposition_parse((char *)tmp.data, tmp.len,
			                           &disp) == 0) {
				if (d->have_disp)
					mime_content_clear(&d->disp);
				d->disp = disp;
				d->have_disp = true;
			}
		}
#undef NAME_IS
	}
	buf_free(&tmp);
}

static void
part_data_clear(struct part_data *d)
{
	if (d->have_type)
		mime_content_clear(&d->type);
	if (d->have_disp)
		mime_content_clear(&d->disp);
	free(d->lang);
	header_pool_clear(&d->pool);
}

static void
write_params(struct buf *out, const struct mime_param *params, size_t n,
             bool default_charset)
{
	bool seen_charset = false;
	size_t i;

	if (!default_charset && n == 0) {
		buf_append_str(out, "NIL");
		return;
	}
	buf_append_byte(out, '(');
	for (i = 0; i < n; i++) {
		if (i > 0)
			buf_append_byte(out, ' ');
		if (default_charset &&
		    strcasecmp(params[i].name, "charset") == 0)
			seen_charset = true;
		append_nstring(out, params[i].name);
		buf_append_byte(out, ' ');
		append_nstring(out, params[i].value);
	}
	if (default_charset && !seen_charset) {
		if (i > 0)
			buf_append_byte(out, ' ');
		buf_append_str(out, "\"charset\" \"us-ascii\"");
	}
	buf_append_byte(out, ')');
}

static void
write_common(struct buf *out, const struct part_data *d)
{
	buf_append_byte(out, ' ');
	if (!d->have_disp) {
		buf_append_str(out, "NIL");
	} else {
		buf_append_byte(out, '(');
		append_nstring(out, d->disp.type);
		buf_append_byte(out, ' ');
		write_params(out, d->disp.params, d->disp.nparams, false);
		buf_append_byte(out, ')');
	}
	buf_append_byte(out, ' ');
	if (d->nlang == 0) {
		buf_append_str(out, "NIL");
	} else {
		buf_append_byte(out, '(');
		for (size_t i = 0; i < d->nlang; i++) {
			if (i > 0)
				buf_append_byte(out, ' ');
			append_nstring(out, d->lang[i]);
		}
		buf_append_byte(out, ')');
	}
	buf_append_byte(out, ' ');
	append_nstring_nolf(out, d->location);
}

/* A multipart or message/rfc822 that hit a parser bound and is written
 * as application/octet-stream. */
static bool
part_is_truncated(const struct mime_part *part, const struct part_data *d)
{
	if (d->have_type) {
		return (strcasecmp(d->type.type, "message") == 0 &&
		        strcasecmp(d->type.subtype, "rfc822") == 0) ||
		       strcasecmp(d->type.type, "multipart") == 0;
	}
	return part->parent != NULL &&
	       (part->parent->flags & MIME_PART_DIGEST) != 0;
}

static void write_part(const struct mime_message *m,
                       const struct mime_part *part, bool extended,
                       struct buf *out);

static void
write_multipart(const struct mime_message *m, const struct mime_part *part,
                const struct part_data *d, bool extended, struct buf *out)
{
	const struct mime_part *child;

	if (part->children == NULL)
		buf_append_str(out,
		               extended ? EMPTY_BODYSTRUCTURE : EMPTY_BODY);
	for (child = part->children; child != NULL; child = child->next) {
		buf_append_byte(out, '(');
		write_part(m, child, extended, out);
		buf_append_byte(out, ')');
	}
	buf_append_byte(out, ' ');
	append_nstring(out, d->have_type ? d->type.subtype : "");
	if (!extended)
		return;
	buf_append_byte(out, ' ');
	if (d->have_type)
		write_params(out, d->type.params, d->type.nparams, false);
	else
		buf_append_str(out, "NIL");
	write_common(out, d);
}

static void
write_leaf(const struct mime_message *m, const struct mime_part *part,
           const struct part_data *d, bool extended, struct buf *out)
{
	bool text = false;

	if ((part->flags & MIME_PART_RFC822) != 0) {
		buf_append_str(out, "\"message\" \"rfc822\"");
	} else if (part_is_truncated(part, d)) {
		buf_append_str(out, "\"application\" \"octet-stream\"");
	} else if (!d->have_type) {
		text = true;
		buf_append_str(out, "\"text\" \"plain\"");
	} else {
		text = strcasecmp(d->type.type, "text") == 0;
		append_nstring(out, d->type.type);
		buf_append_byte(out, ' ');
		append_nstring(out, d->type.subtype);
	}
	buf_append_byte(out, ' ');
	if (d->have_type)
		write_params(out, d->type.params, d->type.nparams, text);
	else
		write_params(out, NULL, 0, text);
	buf_append_byte(out, ' ');
	append_nstring_nolf(out, d->id);
	buf_append_byte(out, ' ');
	append_nstring_nolf(out, d->description);
	buf_append_byte(out, ' ');
	if (d->cte != NULL)
		append_nstring(out, d->cte);
	else
		buf_append_str(out, "\"7bit\"");
	buf_printf(out, " %zu", part->body_vsize);
	if (text) {
		buf_printf(out, " %zu", part->body_lines);
	} else if ((part->flags & MIME_PART_RFC822) != 0 &&
	           part->children != NULL) {
		const struct mime_part *child = part->children;

		buf_append_str(out, " (");
		envelope_append(m->data + child->offset, child->hdr_size, out);
		buf_append_str(out, ") (");
		write_part(m, child, extended, out);
		buf_printf(out, ") %zu", part->body_lines);
	}
	if (!extended)
		return;
	buf_append_byte(out, ' ');
	append_nstring_nolf(out, d->md5);
	write_common(out, d);
}

/* Dovecot caches a plain 7-bit text/plain message as a fixed string and
 * answers with it from then on: the same answer here, from the start. */
static bool
is_plain_7bit(const struct mime_part *part, const struct part_data *d)
{
	if ((part->flags & MIME_PART_TEXT) == 0 || part->children != NULL)
		return false;
	if (d->have_type && strcasecmp(d->type.subtype, "plain") != 0)
		return false;
	if (d->have_type && d->type.nparams > 0 &&
	    (d->type.nparams != 1 ||
	     strcasecmp(d->type.params[0].name, "charset") != 0 ||
	     strcasecmp(d->type.params[0].value, "us-ascii") != 0))
		return false;
	if (d->id != NULL || d->description != NULL)
		return false;
	if (d->cte != NULL && strcasecmp(d->cte, "7bit") != 0)
		return false;
	return d->md5 == NULL && !d->have_disp && d->nlang == 0 &&
	       d->location == NULL;
}

static void
write_part(const struct mime_message *m, const struct mime_part *part,
           bool extended, struct buf *out)
{
	struct part_data d;

	part_data_parse(m, part, &d);
	if ((part->flags & MIME_PART_MULTIPART) != 0)
		write_multipart(m, part, &d, extended, out);
	else
		write_leaf(m, part, &d, extended, out);
	part_data_clear(&d);
}

void
imap_body_structure(const char *msg, size_t len, bool extended, struct buf *out)
{
	struct mime_message *m = mime_parse(msg, len);
	struct part_data d;

	buf_append_byte(out, '(');
	part_data_parse(m, m->root, &d);
	if (is_plain_7bit(m->root, &d)) {
		buf_printf(out, PLAIN_7BIT " %zu %zu", m->root->body_vsize,
		           m->root->body_lines);
		if (extended)
			buf_append_str(out, " NIL NIL NIL NIL");
	} else if ((m->root->flags & MIME_PART_MULTIPART) != 0) {
		write_multipart(m, m->root, &d, extended, out);
	} else {
		write_leaf(m, m->root, &d, extended, out);
	}
	part_data_clear(&d);
	buf_append_byte(out, ')');
	mime_message_free(&m);
}
