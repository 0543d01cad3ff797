/* FETCH arguments (see parser.h): item lists and the ALL/FAST/FULL macros,
 * BODY[…] sections with partials, BINARY[…], BINARY.SIZE[…], MODSEQ, the
 * CHANGEDSINCE and VANISHED modifiers, and each item's name in the reply.
 * SECURITY: client input. Part numbers, header field names and their
 * counts are bounded (section.h); every number is range-checked. */
#include "imap/parser.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/xmalloc.h"

struct fetch_plain {
	const char *name;
	enum imap_fetch_item_type type;
};

static const struct fetch_plain fetch_plain_items[] = {
    {"UID", IMAP_FETCH_UID},
    {"FLAGS", IMAP_FETCH_FLAGS},
    {"INTERNALDATE", IMAP_FETCH_INTERNALDATE},
    {"RFC822.SIZE", IMAP_FETCH_RFC822_SIZE},
    {"ENVELOPE", IMAP_FETCH_ENVELOPE},
    {"BODY", IMAP_FETCH_BODY},
    {"BODYSTRUCTURE", IMAP_FETCH_BODYSTRUCTURE},
    {"RFC822", IMAP_FETCH_RFC822},
    {"RFC822.HEADER", IMAP_FETCH_RFC822_HEADER},
    {"RFC822.TEXT", IMAP_FETCH_RFC822_TEXT},
    {"MODSEQ", IMAP_FETCH_MODSEQ},
};

/* ALL, FAST, FULL (RFC 9051 6.4.5). */
static const char *const fetch_macro_fast[] = {"FLAGS", "INTERNALDATE",
                                               "RFC822.SIZE", NULL};
static const char *const fetch_macro_all[] = {"FLAGS", "INTERNALDATE",
                                              "RFC822.SIZE", "ENVELOPE", NULL};
static const char *const fetch_macro_full[] = {
    "FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY", NULL};

void
imap_section_clear(struct imap_section *s)
{
	for (size_t i = 0; i < s->nfields; i++)
		free(s->fields[i]);
	free(s->fields);
	memset(s, 0, sizeof(*s));
}

static bool
fetch_word_is(const char *s, size_t len, const char *word)
{
	return strlen(word) == len && strncasecmp(s, word, len) == 0;
}

static bool
fetch_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* Digits at s[*i]: a number up to UINT32_MAX; nz: no 0, no leading 0. */
static int
fetch_number(const char *s, size_t len, size_t *i, bool nz, uint32_t *n_r)
{
	uint64_t n = 0;
	size_t start = *i;

	while (*i < len && fetch_digit(s[*i])) {
		n = n * 10 + (uint64_t)(s[*i] - '0');
		if (n > UINT32_MAX)
			return -1;
		(*i)++;
	}
	if (*i == start || (nz && (n == 0 || s[start] == '0')))
		return -1;
	*n_r = (uint32_t)n;
	return 0;
}

/* A header field name as it may appear in a reply atom: ftext (RFC 5322)
 * without the atom-specials. */
static bool
fetch_field_char(char c)
{
	return c > 0x20 && c < 0x7f && c != ':' &&
	       strchr("(){%*\"\\]", c) == NULL;
}

static int
fetch_add_field(struct imap_section *sec, const char *name, size_t len)
{
	char *f;

	if (len == 0 || sec->nfields == IMAP_SECTION_FIELDS_MAX)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (!fetch_field_char(name[i]))
			return -1;
	}
	f = xstrndup(name, len);
	for (size_t i = 0; i < len; i++) {
		if (f[i] >= 'a' && f[i] <= 'z')
			f[i] = (char)(f[i] - 32);
	}
	sec->fields =
	    xreallocarray(sec->fields, sec->nfields + 1, sizeof(*sec->fields));
	sec->fields[sec->nfields++] = f;
	return 0;
}

/* " (A B \"C\")" after HEADER.FIELDS[.NOT], up to the end of s. */
static int
fetch_field_list(const char *s, size_t len, struct imap_section *sec,
                 bool *quoted)
{
	size_t i = 0;
	char name[256];

	if (len < 3 || s[0] != ' ' || s[1] != '(' || s[len - 1] != ')')
		return -1;
	i = 2;
	len--; /* the ')' */
	while (i < len) {
		size_t n = 0;

		if (s[i] == ' ') {
			if (i == 2 || s[i - 1] == ' ')
				return -1;
			i++;
			continue;
		}
		if (s[i] == '"') {
			i++;
			while (i < len && s[i] != '"') {
				if (s[i] == '\\') {
					if (i + 1 >= len || (s[i + 1] != '"' &&
					                     s[i + 1] != '\\'))
						return -1;
					i++;
				}
				if (n == sizeof(name))
					return -1;
				name[n++] = s[i++];
			}
			if (i == len)
				return -1;
			i++;
			if (i < len && s[i] != ' ')
				return -1;
		} else {
			while (i < len && s[i] != ' ') {
				if (n == sizeof(name))
					return -1;
				name[n++] = s[i++];
			}
		}
		if (fetch_add_field(sec, name, n) < 0)
			return -1;
		quoted[sec->nfields - 1] = s[i - 1] == '"';
	}
	if (sec->nfields == 0 || s[len - 1] == ' ')
		return -1;
	return 0;
}

/* The text between "[" and "]". */
static int
fetch_section_parse(const char *s, size_t len, bool binary,
                    struct imap_section *sec, bool *quoted)
{
	size_t i = 0;
	const char *t;
	size_t tlen;

	while (i < len && fetch_digit(s[i])) {
		uint32_t n;

		if (sec->nparts == IMAP_SECTION_DEPTH_MAX ||
		    fetch_number(s, len, &i, true, &n) < 0)
			return -1;
		sec->part[sec->nparts++] = n;
		if (i == len)
			break;
		if (s[i] != '.' || i + 1 == len)
			return -1;
		i++;
		if (!fetch_digit(s[i]))
			break;
	}
	sec->kind = IMAP_SECTION_ALL;
	if (i == len)
		return 0;
	if (binary)
		return -1;
	t = s + i;
	tlen = len - i;
	if (fetch_word_is(t, tlen, "HEADER")) {
		sec->kind = IMAP_SECTION_HEADER;
	} else if (fetch_word_is(t, tlen, "TEXT")) {
		sec->kind = IMAP_SECTION_TEXT;
	} else if (fetch_word_is(t, tlen, "MIME")) {
		if (sec->nparts == 0)
			return -1;
		sec->kind = IMAP_SECTION_MIME;
	} else if (tlen > 17 && strncasecmp(t, "HEADER.FIELDS.NOT", 17) == 0) {
		sec->kind = IMAP_SECTION_FIELDS_NOT;
		return fetch_field_list(t + 17, tlen - 17, sec, quoted);
	} else if (tlen > 13 && strncasecmp(t, "HEADER.FIELDS", 13) == 0) {
		sec->kind = IMAP_SECTION_FIELDS;
		return fetch_field_list(t + 13, tlen - 13, sec, quoted);
	} else {
		return -1;
	}
	return 0;
}

/* "<offset.count>" filling sec; the whole of s. */
static int
fetch_partial_parse(const char *s, size_t len, struct imap_section *sec)
{
	size_t i = 1;

	if (len < 5 || s[0] != '<' || s[len - 1] != '>')
		return -1;
	len--;
	if (fetch_number(s, len, &i, false, &sec->offset) < 0 || i >= len ||
	    s[i] != '.')
		return -1;
	i++;
	if (fetch_number(s, len, &i, true, &sec->count) < 0 || i != len)
		return -1;
	sec->partial = true;
	return 0;
}

/* "1.2.HEADER.FIELDS (A B)" as it goes between the brackets; field names
 * the client quoted are quoted back (as Dovecot does). */
static void
fetch_section_write(struct buf *b, const struct imap_section *sec,
                    const bool *quoted)
{
	for (size_t i = 0; i < sec->nparts; i++)
		(void)buf_printf(b, i == 0 ? "%u" : ".%u", sec->part[i]);
	if (sec->kind != IMAP_SECTION_ALL && sec->nparts > 0)
		(void)buf_append_byte(b, '.');
	switch (sec->kind) {
	case IMAP_SECTION_ALL:
		break;
	case IMAP_SECTION_HEADER:
		(void)buf_append_str(b, "HEADER");
		break;
	case IMAP_SECTION_TEXT:
		(void)buf_append_str(b, "TEXT");
		break;
	case IMAP_SECTION_MIME:
		(void)buf_append_str(b, "MIME");
		break;
	case IMAP_SECTION_FIELDS:
	case IMAP_SECTION_FIELDS_NOT:
		(void)buf_append_str(b, sec->kind == IMAP_SECTION_FIELDS
		                            ? "HEADER.FIELDS ("
		                            : "HEADER.FIELDS.NOT (");
		for (size_t i = 0; i < sec->nfields; i++) {
			if (i > 0)
				(void)buf_append_byte(b, ' ');
			(void)buf_printf(b, quoted[i] ? "\"%s\"" : "%s",
			                 sec->fields[i]);
		}
		(void)buf_append_byte(b, ')');
		break;
	}
}

/* The reply name: BODY[…]<origin>, BINARY[…]<origin>, BINARY.SIZE[…]. */
static char *
fetch_section_name(const char *prefix, const struct imap_section *sec,
                   const bool *quoted)
{
	struct buf b;
	char *name;

	buf_init(&b, 0);
	(void)buf_append_str(&b, prefix);
	(void)buf_append_byte(&b, '[');
	fetch_section_write(&b, sec, quoted);
	(void)buf_append_byte(&b, ']');
	if (sec->partial)
		(void)buf_printf(&b, "<%u>", sec->offset);
	name = xstrndup((const char *)b.data, b.len);
	buf_free(&b);
	return name;
}

/* One fetch-att atom into *item. */
static int
fetch_item_parse(const char *s, size_t len, struct imap_fetch_item *item)
{
	const char *open, *close;
	size_t plen;
	bool quoted[IMAP_SECTION_FIELDS_MAX] = {false};

	memset(item, 0, sizeof(*item));
	open = memchr(s, '[', len);
	if (open == NULL) {
		for (size_t k = 0; k < sizeof(fetch_plain_items) /
		                           sizeof(fetch_plain_items[0]);
		     k++) {
			if (!fetch_word_is(s, len, fetch_plain_items[k].name))
				continue;
			item->type = fetch_plain_items[k].type;
			item->name = xstrdup(fetch_plain_items[k].name);
			switch (item->type) {
			case IMAP_FETCH_RFC822:
				item->section.kind = IMAP_SECTION_ALL;
				break;
			case IMAP_FETCH_RFC822_HEADER:
				item->peek = true;
				item->section.kind = IMAP_SECTION_HEADER;
				break;
			case IMAP_FETCH_RFC822_TEXT:
				item->section.kind = IMAP_SECTION_TEXT;
				break;
			default:
				break;
			}
			return 0;
		}
		return -1;
	}
	plen = (size_t)(open - s);
	close = memchr(open, ']', len - plen);
	if (close == NULL)
		return -1;
	if (fetch_word_is(s, plen, "BODY")) {
		item->type = IMAP_FETCH_SECTION;
	} else if (fetch_word_is(s, plen, "BODY.PEEK")) {
		item->type = IMAP_FETCH_SECTION;
		item->peek = true;
	} else if (fetch_word_is(s, plen, "BINARY")) {
		item->type = IMAP_FETCH_BINARY;
	} else if (fetch_word_is(s, plen, "BINARY.PEEK")) {
		item->type = IMAP_FETCH_BINARY;
		item->peek = true;
	} else if (fetch_word_is(s, plen, "BINARY.SIZE")) {
		item->type = IMAP_FETCH_BINARY_SIZE;
		item->peek = true;
	} else {
		return -1;
	}
	if (fetch_section_parse(open + 1, (size_t)(close - open - 1),
	                        item->type != IMAP_FETCH_SECTION,
	                        &item->section, quoted) < 0)
		goto fail;
	if (close + 1 < s + len) {
		if (item->type == IMAP_FETCH_BINARY_SIZE ||
		    fetch_partial_parse(close + 1,
		                        (size_t)(s + len - close - 1),
		                        &item->section) < 0)
			goto fail;
	}
	item->name = fetch_section_name(
	    item->type == IMAP_FETCH_SECTION  ? "BODY"
	    : item->type == IMAP_FETCH_BINARY ? "BINARY"
	                                      : "BINARY.SIZE",
	    &item->section, quoted);
	return 0;
fail:
	imap_section_clear(&item->section);
	return -1;
}

/* Append item, or fold it into an item with the same reply name (a
 * non-peek fetch wins, it sets \Seen). */
static void
fetch_add_item(struct imap_fetch_spec *spec, struct imap_fetch_item *item)
{
	for (size_t i = 0; i < spec->n; i++) {
		if (spec->items[i].type == item->type &&
		    strcmp(spec->items[i].name, item->name) == 0) {
			spec->items[i].peek = spec->items[i].peek && item->peek;
			imap_section_clear(&item->section);
			free(item->name);
			return;
		}
	}
	spec->items =
	    xreallocarray(spec->items, spec->n + 1, sizeof(*spec->items));
	spec->items[spec->n++] = *item;
}

static int
fetch_add_atom(struct imap_fetch_spec *spec, const struct imap_arg *a)
{
	struct imap_fetch_item item;

	if (a->type != IMAP_ARG_ATOM ||
	    fetch_item_parse(a->str, a->len, &item) < 0)
		return -1;
	fetch_add_item(spec, &item);
	return 0;
}

static void
fetch_add_plain(struct imap_fetch_spec *spec, const char *name)
{
	struct imap_fetch_item item;

	if (fetch_item_parse(name, strlen(name), &item) == 0)
		fetch_add_item(spec, &item);
}

static int
fetch_modifiers(const struct imap_arg *a, struct imap_fetch_spec *spec,
                const char **error_r)
{
	bool have_changed = false;

	if (a->type != IMAP_ARG_LIST || a->count == 0) {
		*error_r = "Invalid FETCH modifiers";
		return -1;
	}
	for (size_t i = 0; i < a->count; i++) {
		const struct imap_arg *m = &a->list[i];

		if (imap_arg_atom_is(m, "CHANGEDSINCE") && !have_changed) {
			if (i + 1 == a->count ||
			    !imap_arg_number64(&m[1], &spec->changedsince) ||
			    spec->changedsince == 0) {
				*error_r = "Invalid CHANGEDSINCE value";
				return -1;
			}
			have_changed = true;
			i++;
		} else if (imap_arg_atom_is(m, "VANISHED") && !spec->vanished) {
			spec->vanished = true;
		} else {
			*error_r = "Unknown FETCH modifier";
			return -1;
		}
	}
	return 0;
}

int
imap_fetch_parse(const struct imap_arg *args, size_t count,
                 struct imap_fetch_spec *spec_r, const char **error_r)
{
	const struct imap_arg *a;
	const char *const *macro = NULL;

	memset(spec_r, 0, sizeof(*spec_r));
	if (count == 0) {
		*error_r = "Missing FETCH items";
		return -1;
	}
	if (count > 2) {
		*error_r = "Unexpected arguments after FETCH items";
		return -1;
	}
	a = &args[0];
	if (imap_arg_atom_is(a, "ALL"))
		macro = fetch_macro_all;
	else if (imap_arg_atom_is(a, "FAST"))
		macro = fetch_macro_fast;
	else if (imap_arg_atom_is(a, "FULL"))
		macro = fetch_macro_full;
	if (macro != NULL) {
		for (size_t i = 0; macro[i] != NULL; i++)
			fetch_add_plain(spec_r, macro[i]);
	} else if (a->type == IMAP_ARG_LIST) {
		if (a->count == 0) {
			*error_r = "Empty FETCH item list";
			goto fail;
		}
		for (size_t i = 0; i < a->count; i++) {
			if (fetch_add_atom(spec_r, &a->list[i]) < 0) {
				*error_r = "Invalid FETCH item";
				goto fail;
			}
		}
	} else if (fetch_add_atom(spec_r, a) < 0) {
		*error_r = "Invalid FETCH item";
		goto fail;
	}
	if (count == 2 && fetch_modifiers(&args[1], spec_r, error_r) < 0)
		goto fail;
	/* CHANGEDSINCE implies MODSEQ (RFC 7162 3.1.4.1). */
	if (spec_r->changedsince != 0)
		fetch_add_plain(spec_r, "MODSEQ");
	return 0;
fail:
	imap_fetch_spec_clear(spec_r);
	return -1;
}

void
imap_fetch_spec_clear(struct imap_fetch_spec *spec)
{
	for (size_t i = 0; i < spec->n; i++) {
		imap_section_clear(&spec->items[i].section);
		free(spec->items[i].name);
	}
	free(spec->items);
	memset(spec, 0, sizeof(*spec));
}
