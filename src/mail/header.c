/* RFC 5322 header fields, the RFC 822 lexer and address lists, following
 * Dovecot's lib-mail rules so that IMAP output matches it byte for byte.
 * SECURITY: input is untrusted mail. All scans are bounded by explicit end
 * pointers (header_lex_peek gives NUL at the end instead of reading past
 * it), loops always consume input, and output never exceeds the input
 * size plus a constant per token. */
#include "mail/header.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/xmalloc.h"

#define POOL_CHUNK_MIN 4096
#define UTF8_REPLACEMENT "\xef\xbf\xbd"

#define IS_LWSP(c) ((c) == ' ' || (c) == '\t')

struct header_pool_chunk {
	struct header_pool_chunk *next;
	size_t used, size;
	char data[];
};

char *
header_pool_strndup(struct header_pool *pool, const void *s, size_t n)
{
	struct header_pool_chunk *c = pool->chunks;
	char *ret;

	if (c == NULL || c->size - c->used < n + 1) {
		size_t size = n + 1 > POOL_CHUNK_MIN ? n + 1 : POOL_CHUNK_MIN;

		c = xmalloc(sizeof(*c) + size);
		c->size = size;
		c->used = 0;
		c->next = pool->chunks;
		pool->chunks = c;
	}
	ret = c->data + c->used;
	if (n > 0)
		memcpy(ret, s, n);
	ret[n] = '\0';
	c->used += n + 1;
	return ret;
}

void
header_pool_clear(struct header_pool *pool)
{
	while (pool->chunks != NULL) {
		struct header_pool_chunk *next = pool->chunks->next;

		free(pool->chunks);
		pool->chunks = next;
	}
}

/*
 * Fields
 */

void
header_iter_init(struct header_iter *it, const char *block, size_t len)
{
	it->p = block;
	it->end = block + len;
	it->eoh = false;
}

bool
header_iter_next(struct header_iter *it, struct header_field *f)
{
	const char *p = it->p, *end = it->end, *lf, *line_end, *colon = NULL;

	if (it->eoh || p >= end)
		return false;
	if (*p == '\n' || (*p == '\r' && end - p > 1 && p[1] == '\n')) {
		it->p = p + (*p == '\r' ? 2 : 1);
		it->eoh = true;
		return false;
	}
	memset(f, 0, sizeof(*f));
	f->start = p;
	lf = memchr(p, '\n', (size_t)(end - p));
	line_end = lf != NULL ? lf : end;
	colon = memchr(p, ':', (size_t)(line_end - p));
	/* continuation lines */
	while (lf != NULL && end - lf > 1 && IS_LWSP(lf[1]))
		lf = memchr(lf + 1, '\n', (size_t)(end - lf - 1));
	if (lf != NULL) {
		it->p = lf + 1;
		line_end = lf;
		if (line_end > p && line_end[-1] == '\r')
			line_end--;
	} else {
		it->p = end;
		line_end = end;
		f->no_newline = true;
	}
	f->len = (size_t)(it->p - p);
	if (colon != NULL) {
		const char *n = colon;

		while (n > p && IS_LWSP(n[-1]))
			n--;
		if ((size_t)(n - p) > HEADER_NAME_MAX)
			colon = NULL;
		else {
			f->name = p;
			f->name_len = (size_t)(n - p);
			f->value = colon + 1;
		}
	}
	if (colon == NULL) {
		f->name = p;
		f->name_len = 0;
		f->value = p;
	}
	/* a continuation line may end in the middle of a CRLF at the end */
	if (line_end < f->value)
		line_end = f->value;
	f->value_len = (size_t)(line_end - f->value);
	return true;
}

void
header_field_unfold(const struct header_field *f, struct buf *out)
{
	const char *p = f->value, *end = f->value + f->value_len;
	const char *lf = memchr(p, '\n', f->value_len);
	const char *le = lf != NULL ? lf : end;
	size_t pos = 0, n;

	if (lf != NULL && le > p && le[-1] == '\r')
		le--;
	n = (size_t)(le - p);
	if (f->name_len > 0 || f->value != f->start) {
		while (pos < n && IS_LWSP(p[pos]))
			pos++;
		if (pos == n && n > 0)
			pos = 1;
	}
	buf_append(out, p + pos, n - pos);
	while (lf != NULL) {
		p = lf + 1;
		lf = memchr(p, '\n', (size_t)(end - p));
		le = lf != NULL ? lf : end;
		if (lf != NULL && le > p && le[-1] == '\r')
			le--;
		n = (size_t)(le - p);
		if (n > 1)
			buf_append_byte(out, '\n');
		buf_append(out, p, n);
	}
}

bool
header_field_is(const struct header_field *f, const char *name)
{
	size_t n = strlen(name);

	return f->name_len == n && strncasecmp(f->name, name, n) == 0;
}

void
header_append_nonul(struct buf *out, const void *data, size_t len)
{
	const char *p = data, *end, *z;

	if (len == 0)
		return;
	end = p + len;
	while ((z = memchr(p, '\0', (size_t)(end - p))) != NULL) {
		buf_append(out, p, (size_t)(z - p));
		buf_append_str(out, UTF8_REPLACEMENT);
		p = z + 1;
	}
	buf_append(out, p, (size_t)(end - p));
}

/*
 * Lexer
 */

/* 1: atext, 2: alphanumeric or 8-bit, 4: atext that is a MIME tspecial */
static const unsigned char atext_chars[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0-15 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 16-31 */
    0, 1, 0, 1, 1, 1, 1, 1, 0, 0, 1, 1, 0, 1, 0, 4, /* 32-47 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 0, 0, 0, 4, 0, 4, /* 48-63 */
    0, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 64-79 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 0, 0, 0, 1, 1, /* 80-95 */
    1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 96-111 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 1, 1, 1, 1, 0, /* 112-127 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
};

#define IS_ATEXT(c) (atext_chars[(unsigned char)(c)] != 0)
#define IS_TOKEN(c) ((atext_chars[(unsigned char)(c)] & 3) != 0)

void
header_lex_init(struct header_lex *lx, const void *data, size_t len,
                struct buf *last_comment)
{
	lx->data = data != NULL ? data : (const void *)"";
	lx->end = lx->data + len;
	lx->last_comment = last_comment;
	lx->nul_replacement = NULL;
}

unsigned char
header_lex_peek(const struct header_lex *lx)
{
	return lx->data < lx->end ? *lx->data : '\0';
}

static void
append_span(struct buf *out, const unsigned char *a, const unsigned char *b)
{
	if (b > a)
		buf_append(out, a, (size_t)(b - a));
}

int
header_lex_skip_comment(struct header_lex *lx)
{
	const unsigned char *start;
	int level = 1;

	if (lx->last_comment != NULL)
		buf_reset(lx->last_comment);
	start = ++lx->data;
	for (; lx->data < lx->end; lx->data++) {
		switch (*lx->data) {
		case '\0':
			if (lx->last_comment != NULL &&
			    lx->nul_replacement != NULL) {
				append_span(lx->last_comment, start, lx->data);
				buf_append_str(lx->last_comment,
				               lx->nul_replacement);
				start = lx->data + 1;
			}
			break;
		case '(':
			level++;
			break;
		case ')':
			if (--level == 0) {
				if (lx->last_comment != NULL)
					append_span(lx->last_comment, start,
					            lx->data);
				lx->data++;
				return lx->data < lx->end ? 1 : 0;
			}
			break;
		case '\n':
			if (lx->last_comment == NULL)
				break;
			if (lx->data > start && lx->data[-1] == '\r')
				append_span(lx->last_comment, start,
				            lx->data - 1);
			else
				append_span(lx->last_comment, start, lx->data);
			start = lx->data + 1;
			break;
		case '\\':
			lx->data++;
			if (lx->data >= lx->end)
				return -1;
			if (*lx->data == '\r' || *lx->data == '\n' ||
			    *lx->data == '\0') {
				lx->data--;
				break;
			}
			if (lx->last_comment != NULL)
				append_span(lx->last_comment, start,
				            lx->data - 1);
			start = lx->data;
			break;
		}
	}
	return -1;
}

int
header_lex_skip_lwsp(struct header_lex *lx)
{
	while (lx->data < lx->end) {
		unsigned char c = *lx->data;

		if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
			lx->data++;
			continue;
		}
		if (c != '(')
			break;
		if (header_lex_skip_comment(lx) < 0)
			return -1;
	}
	return lx->data < lx->end ? 1 : 0;
}

int
header_lex_atom(struct header_lex *lx, struct buf *out)
{
	const unsigned char *start;

	if (lx->data >= lx->end || !IS_ATEXT(*lx->data))
		return -1;
	for (start = lx->data++; lx->data < lx->end; lx->data++) {
		if (IS_ATEXT(*lx->data))
			continue;
		append_span(out, start, lx->data);
		return header_lex_skip_lwsp(lx);
	}
	append_span(out, start, lx->data);
	return 0;
}

int
header_lex_dot_atom(struct header_lex *lx, struct buf *out)
{
	const unsigned char *start;
	int ret;

	if (lx->data >= lx->end || !IS_ATEXT(*lx->data))
		return -1;
	for (start = lx->data++; lx->data < lx->end;) {
		if (IS_ATEXT(*lx->data)) {
			lx->data++;
			continue;
		}
		if (start == lx->data)
			return -1;
		append_span(out, start, lx->data);
		if ((ret = header_lex_skip_lwsp(lx)) <= 0)
			return ret;
		if (*lx->data != '.')
			return 1;
		lx->data++;
		buf_append_byte(out, '.');
		if (header_lex_skip_lwsp(lx) <= 0)
			return -1;
		start = lx->data;
	}
	append_span(out, start, lx->data);
	return 0;
}

int
header_lex_mime_token(struct header_lex *lx, struct buf *out)
{
	const unsigned char *start;

	for (start = lx->data; lx->data < lx->end; lx->data++) {
		if (IS_TOKEN(*lx->data) || *lx->data == '.')
			continue;
		append_span(out, start, lx->data);
		return header_lex_skip_lwsp(lx);
	}
	append_span(out, start, lx->data);
	return 0;
}

int
header_lex_quoted_string(struct header_lex *lx, struct buf *out)
{
	const unsigned char *start;

	lx->data++; /* the opening quote */
	for (start = lx->data; lx->data < lx->end; lx->data++) {
		switch (*lx->data) {
		case '\0':
			if (lx->nul_replacement != NULL) {
				append_span(out, start, lx->data);
				buf_append_str(out, lx->nul_replacement);
				start = lx->data + 1;
			}
			break;
		case '"':
			append_span(out, start, lx->data);
			lx->data++;
			return header_lex_skip_lwsp(lx);
		case '\n':
			if (lx->data > start && lx->data[-1] == '\r')
				append_span(out, start, lx->data - 1);
			else
				append_span(out, start, lx->data);
			start = lx->data + 1;
			break;
		case '\\':
			lx->data++;
			if (lx->data >= lx->end)
				return -1;
			if (*lx->data == '\r' || *lx->data == '\n' ||
			    *lx->data == '\0') {
				lx->data--;
				break;
			}
			append_span(out, start, lx->data - 1);
			start = lx->data;
			break;
		}
	}
	return -1;
}

static int
lex_atom_or_dot(struct header_lex *lx, struct buf *out)
{
	const unsigned char *start;

	for (start = lx->data; lx->data < lx->end; lx->data++) {
		if (IS_ATEXT(*lx->data) || *lx->data == '.')
			continue;
		append_span(out, start, lx->data);
		return header_lex_skip_lwsp(lx);
	}
	append_span(out, start, lx->data);
	return 0;
}

int
header_lex_phrase(struct header_lex *lx, struct buf *out)
{
	int ret;
	unsigned char c;

	if (lx->data >= lx->end)
		return 0;
	if (*lx->data == '.')
		return -1;
	for (;;) {
		if (*lx->data == '"')
			ret = header_lex_quoted_string(lx, out);
		else
			ret = lex_atom_or_dot(lx, out);
		if (ret <= 0)
			return ret;
		c = *lx->data;
		if (!IS_ATEXT(c) && c != '"' && c != '.')
			break;
		buf_append_byte(out, ' ');
	}
	return header_lex_skip_lwsp(lx);
}

static int
lex_domain_literal(struct header_lex *lx, struct buf *out)
{
	const unsigned char *start;

	for (start = lx->data++; lx->data < lx->end; lx->data++) {
		switch (*lx->data) {
		case '\0':
			if (lx->nul_replacement != NULL) {
				append_span(out, start, lx->data);
				buf_append_str(out, lx->nul_replacement);
				start = lx->data + 1;
			}
			break;
		case '[':
			return -1;
		case ']':
			append_span(out, start, lx->data + 1);
			lx->data++;
			return header_lex_skip_lwsp(lx);
		case '\n':
			if (lx->data > start && lx->data[-1] == '\r')
				append_span(out, start, lx->data - 1);
			else
				append_span(out, start, lx->data);
			start = lx->data + 1;
			break;
		case '\\':
			/* the backslash is kept */
			lx->data++;
			if (lx->data >= lx->end)
				return -1;
			if (*lx->data == '\r' || *lx->data == '\n' ||
			    *lx->data == '\0') {
				append_span(out, start, lx->data);
				start = lx->data;
				lx->data--;
			}
			break;
		}
	}
	return -1;
}

int
header_lex_domain(struct header_lex *lx, struct buf *out)
{
	lx->data++; /* '@' */
	if (header_lex_skip_lwsp(lx) <= 0)
		return -1;
	if (*lx->data == '[')
		return lex_domain_literal(lx, out);
	return header_lex_dot_atom(lx, out);
}

int
header_lex_content_type(struct header_lex *lx, struct buf *out)
{
	size_t pos0 = out->len, pos;
	int ret;

	if (header_lex_skip_lwsp(lx) <= 0)
		return -1;
	if (header_lex_mime_token(lx, out) <= 0 || out->len == pos0)
		return -1;
	if (*lx->data != '/') {
		out->len = pos0;
		return -1;
	}
	lx->data++;
	if (header_lex_skip_lwsp(lx) <= 0) {
		out->len = pos0;
		return -1;
	}
	buf_append_byte(out, '/');
	pos = out->len;
	if ((ret = header_lex_mime_token(lx, out)) < 0 || out->len == pos ||
	    (lx->data != lx->end && *lx->data != ';')) {
		out->len = pos0;
		return -1;
	}
	return ret;
}

int
header_lex_content_param(struct header_lex *lx, struct buf *key,
                         struct buf *value)
{
	int ret;

	buf_reset(key);
	buf_reset(value);
	if (lx->data >= lx->end)
		return 0;
	if (*lx->data != ';')
		return -1;
	lx->data++;
	if (header_lex_skip_lwsp(lx) <= 0)
		return -1;
	if (header_lex_mime_token(lx, key) <= 0)
		return -1;
	if (*lx->data != '=')
		return -1;
	lx->data++;
	if ((ret = header_lex_skip_lwsp(lx)) <= 0) {
		/* no value */
	} else if (*lx->data == '"') {
		ret = header_lex_quoted_string(lx, value);
	} else if (*lx->data == '=') {
		/* broken input: name==?utf-8?b?...?= */
		while (lx->data < lx->end && *lx->data != ';' &&
		       *lx->data != ' ' && *lx->data != '\t' &&
		       *lx->data != '\r' && *lx->data != '\n') {
			buf_append_byte(value, *lx->data);
			lx->data++;
		}
	} else {
		ret = header_lex_mime_token(lx, value);
	}
	return ret < 0 ? -1 : 1;
}

/*
 * Addresses (RFC 5322 §3.4 with the obsolete forms Dovecot accepts)
 */

struct addr_ctx {
	struct header_lex lx;
	struct buf str, comment;
	struct header_address addr;
	struct header_address_list *list;
};

static const char *
addr_strdup(struct addr_ctx *ctx, const struct buf *b)
{
	return header_pool_strndup(&ctx->list->pool, b->data, b->len);
}

static void
add_address(struct addr_ctx *ctx)
{
	struct header_address_list *l = ctx->list;

	if (l->n == l->cap) {
		l->cap = l->cap == 0 ? 8 : l->cap * 2;
		l->v = xreallocarray(l->v, l->cap, sizeof(*l->v));
	}
	l->v[l->n++] = ctx->addr;
	memset(&ctx->addr, 0, sizeof(ctx->addr));
}

static int
parse_nonstrict_dot_atom(struct addr_ctx *ctx)
{
	struct header_lex *lx = &ctx->lx;
	int ret = -1;

	do {
		while (header_lex_peek(lx) == '.') {
			buf_append_byte(&ctx->str, '.');
			lx->data++;
			if (lx->data == lx->end)
				return 0;
			ret = 1;
		}
		if (header_lex_peek(lx) == '@')
			break;
		ret = header_lex_atom(lx, &ctx->str);
	} while (ret > 0 && header_lex_peek(lx) == '.');
	return ret;
}

static int
parse_local_part(struct addr_ctx *ctx)
{
	int ret;

	buf_reset(&ctx->str);
	if (header_lex_peek(&ctx->lx) == '"')
		ret = header_lex_quoted_string(&ctx->lx, &ctx->str);
	else
		ret = parse_nonstrict_dot_atom(ctx);
	if (ret < 0)
		return -1;
	ctx->addr.mailbox = addr_strdup(ctx, &ctx->str);
	return ret;
}

static int
parse_domain(struct addr_ctx *ctx)
{
	int ret;

	buf_reset(&ctx->str);
	if ((ret = header_lex_domain(&ctx->lx, &ctx->str)) < 0)
		return -1;
	ctx->addr.domain = addr_strdup(ctx, &ctx->str);
	return ret;
}

static int
parse_domain_list(struct addr_ctx *ctx)
{
	struct header_lex *lx = &ctx->lx;
	int ret;

	buf_reset(&ctx->str);
	for (;;) {
		if (lx->data >= lx->end)
			return 0;
		if (*lx->data != '@')
			break;
		if (ctx->str.len > 0)
			buf_append_byte(&ctx->str, ',');
		buf_append_byte(&ctx->str, '@');
		if ((ret = header_lex_domain(lx, &ctx->str)) <= 0)
			return ret;
		while (header_lex_skip_lwsp(lx) > 0 && *lx->data == ',')
			lx->data++;
	}
	ctx->addr.route = addr_strdup(ctx, &ctx->str);
	return 1;
}

static int
parse_angle_addr(struct addr_ctx *ctx)
{
	struct header_lex *lx = &ctx->lx;

	lx->data++; /* '<' */
	if (header_lex_skip_lwsp(lx) <= 0)
		return -1;
	if (*lx->data == '@') {
		if (parse_domain_list(ctx) > 0 && header_lex_peek(lx) == ':') {
			lx->data++;
		} else {
			ctx->addr.route = "INVALID_ROUTE";
			if (lx->data >= lx->end)
				return -1;
		}
		if (header_lex_skip_lwsp(lx) <= 0)
			return -1;
	}
	if (*lx->data != '>') {
		if (parse_local_part(ctx) <= 0)
			return -1;
		if (*lx->data == '@') {
			if (parse_domain(ctx) <= 0)
				return -1;
		}
	}
	if (*lx->data != '>')
		return -1;
	lx->data++;
	return header_lex_skip_lwsp(lx);
}

static int
parse_name_addr(struct addr_ctx *ctx)
{
	struct header_lex *lx = &ctx->lx;

	buf_reset(&ctx->str);
	if (header_lex_phrase(lx, &ctx->str) <= 0 || *lx->data != '<')
		return -1;
	ctx->addr.name = ctx->str.len == 0 ? NULL : addr_strdup(ctx, &ctx->str);
	if (parse_angle_addr(ctx) < 0) {
		ctx->addr.domain = "SYNTAX_ERROR";
		ctx->addr.invalid = true;
	}
	return lx->data < lx->end ? 1 : 0;
}

static int
parse_addr_spec(struct addr_ctx *ctx)
{
	struct header_lex *lx = &ctx->lx;
	int ret, ret2 = -2;
	bool quoted = header_lex_peek(lx) == '"';

	buf_reset(&ctx->comment);
	ret = parse_local_part(ctx);
	if (ret <= 0)
		ctx->addr.invalid = true;
	if (ret != 0 && lx->data < lx->end && *lx->data == '@') {
		ret2 = parse_domain(ctx);
		if (ret2 <= 0)
			ret = ret2;
	}
	if (ctx->comment.len > 0) {
		ctx->addr.name = addr_strdup(ctx, &ctx->comment);
	} else if (ret2 == -2) {
		/* "user" alone is a mailbox, "user more words" a name */
		size_t orig;

		buf_append_byte(&ctx->str, ' ');
		orig = ctx->str.len;
		(void)header_lex_phrase(lx, &ctx->str);
		if (ctx->str.len != orig) {
			ctx->addr.mailbox = NULL;
			ctx->addr.name = addr_strdup(ctx, &ctx->str);
		} else if (!quoted) {
			ctx->addr.domain = "";
		}
		ctx->addr.invalid = true;
		ret = -1;
	}
	return ret;
}

static void
add_fixed_address(struct addr_ctx *ctx)
{
	if (ctx->addr.mailbox == NULL) {
		ctx->addr.mailbox = "MISSING_MAILBOX";
		ctx->addr.invalid = true;
	}
	if (ctx->addr.domain == NULL || ctx->addr.domain[0] == '\0') {
		ctx->addr.domain = "MISSING_DOMAIN";
		ctx->addr.invalid = true;
	}
	add_address(ctx);
}

static int
parse_mailbox(struct addr_ctx *ctx)
{
	const unsigned char *start = ctx->lx.data;
	int ret;

	if ((ret = parse_name_addr(ctx)) < 0) {
		ctx->lx.data = start;
		ret = parse_addr_spec(ctx);
		if (ctx->addr.invalid && ctx->addr.name == NULL &&
		    ctx->addr.mailbox != NULL && ctx->addr.domain == NULL) {
			ctx->addr.name = ctx->addr.mailbox;
			ctx->addr.mailbox = NULL;
		}
	}
	if (ret < 0)
		ctx->addr.invalid = true;
	add_fixed_address(ctx);
	return ret;
}

static int
parse_group(struct addr_ctx *ctx)
{
	struct header_lex *lx = &ctx->lx;
	int ret;

	buf_reset(&ctx->str);
	if (header_lex_phrase(lx, &ctx->str) <= 0 || *lx->data != ':')
		return -1;
	/* a group from here on, whatever follows */
	lx->data++;
	if ((ret = header_lex_skip_lwsp(lx)) <= 0)
		ctx->addr.invalid = true;
	ctx->addr.mailbox = addr_strdup(ctx, &ctx->str);
	add_address(ctx);

	if (ret > 0 && *lx->data != ';') {
		for (;;) {
			(void)parse_mailbox(ctx);
			if (lx->data >= lx->end || *lx->data != ',')
				break;
			lx->data++;
			if (header_lex_skip_lwsp(lx) <= 0) {
				ret = -1;
				break;
			}
		}
	}
	if (ret >= 0) {
		if (lx->data >= lx->end || *lx->data != ';') {
			ret = -1;
		} else {
			lx->data++;
			ret = header_lex_skip_lwsp(lx);
		}
	}
	if (ret < 0)
		ctx->addr.invalid = true;
	add_address(ctx);
	return ret == 0 ? 0 : 1;
}

static int
parse_address(struct addr_ctx *ctx)
{
	const unsigned char *start = ctx->lx.data;
	int ret;

	if ((ret = parse_group(ctx)) < 0) {
		ctx->lx.data = start;
		ret = parse_mailbox(ctx);
	}
	return ret;
}

void
header_address_parse(struct header_address_list *list, const char *value,
                     size_t len, size_t max_addresses)
{
	struct addr_ctx ctx;
	int ret;

	memset(&ctx, 0, sizeof(ctx));
	ctx.list = list;
	buf_init(&ctx.str, 0);
	buf_init(&ctx.comment, 0);
	header_lex_init(&ctx.lx, value, len, &ctx.comment);
	ctx.lx.nul_replacement = UTF8_REPLACEMENT;

	if (header_lex_skip_lwsp(&ctx.lx) > 0) {
		while (max_addresses > 0) {
			max_addresses--;
			if (parse_address(&ctx) == 0)
				break;
			if (ctx.lx.data >= ctx.lx.end || *ctx.lx.data != ',')
				break;
			ctx.lx.data++;
			if ((ret = header_lex_skip_lwsp(&ctx.lx)) <= 0) {
				if (ret < 0)
					add_fixed_address(&ctx);
				break;
			}
		}
	}
	buf_free(&ctx.str);
	buf_free(&ctx.comment);
}

void
header_address_list_clear(struct header_address_list *list)
{
	free(list->v);
	list->v = NULL;
	list->n = list->cap = 0;
	header_pool_clear(&list->pool);
}

int
header_single_from(const void *msg, size_t len, size_t *nfrom_r, char *addr,
                   size_t addrlen, char *domain, size_t domlen)
{
	struct header_iter it;
	struct header_field f;
	struct header_address_list list = {0};
	struct buf v;
	size_t nfrom = 0;
	int rc = -1;

	buf_init(&v, 64 * 1024);
	header_iter_init(&it, msg, len);
	while (header_iter_next(&it, &f)) {
		if (!header_field_is(&f, "From"))
			continue;
		nfrom++;
		buf_reset(&v);
		header_field_unfold(&f, &v);
		/* Two addresses are enough to know there is not one. */
		header_address_parse(&list, (const char *)v.data, v.len, 2);
	}
	if (nfrom == 1 && list.n == 1 && !list.v[0].invalid &&
	    list.v[0].domain != NULL && list.v[0].mailbox != NULL) {
		snprintf(addr, addrlen, "%s@%s", list.v[0].mailbox,
		         list.v[0].domain);
		snprintf(domain, domlen, "%s", list.v[0].domain);
		rc = 0;
	}
	*nfrom_r = nfrom;
	header_address_list_clear(&list);
	buf_free(&v);
	return rc;
}
