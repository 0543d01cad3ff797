/* The MIME parser: RFC 5322 header blocks and RFC 2046 multiparts into a
 * tree of offsets, with Dovecot's rules for broken mail (boundary prefix
 * matching, headers cut by a boundary, missing or unterminated parts);
 * Content-Type parameters with RFC 2231; RFC 2047 words; QP and base64.
 * SECURITY: input is untrusted mail. Depth and part count are bounded,
 * every line start is examined a constant number of times against at most
 * MIME_DEPTH_MAX boundaries of at most MIME_BOUNDARY_MAX bytes, buffers
 * grow only with the input, iconv output is appended in bounded steps. */
#include "mail/mime.h"

#include <errno.h>
#include <iconv.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/utf8.h"
#include "core/xmalloc.h"

/* "--" + boundary + "--" with some slack, as Dovecot compares at most
 * this much of a line that has no end in sight. */
#define BOUNDARY_END_MAX (MIME_BOUNDARY_MAX + 4)
#define PART_CHUNK 32
#define UTF8_REPLACEMENT "\xef\xbf\xbd"

struct mime_part_chunk {
	struct mime_part_chunk *next;
	size_t used;
	struct mime_part parts[PART_CHUNK];
};

struct boundary {
	struct boundary *next;
	struct mime_part *part;
	char *str;
	size_t len;
	bool epilogue_found;
};

enum parse_state {
	ST_HEADER,
	ST_BODY_TO_BOUNDARY,
	ST_BODY_TO_EOF,
	ST_SKIP_BOUNDARY_LINE,
	ST_MIME_PART,
	ST_RFC822_PART,
	ST_DONE,
};

struct parser {
	const unsigned char *data;
	size_t len, pos;
	struct mime_message *msg;
	struct mime_part *part;
	struct boundary *boundaries;
	char *last_boundary;
	unsigned int nested, total;
	bool seen_content_type, multipart;
	size_t prev_hdr_nl;
	enum parse_state state;
	struct mime_part *tail[MIME_DEPTH_MAX + 1];
	struct buf tmp, tmp2;
};

static bool
ascii_ieq(const void *a, size_t alen, const char *b)
{
	size_t blen = strlen(b);

	return alen == blen && strncasecmp(a, b, blen) == 0;
}

static struct mime_part *
part_new(struct mime_message *m)
{
	struct mime_part_chunk *c = m->chunks;

	if (c == NULL || c->used == PART_CHUNK) {
		c = xcalloc(1, sizeof(*c));
		c->next = m->chunks;
		m->chunks = c;
	}
	m->nparts++;
	return &c->parts[c->used++];
}

/* Count lines and LFs without CR in [a, b) and add them to a body. */
static void
add_body(struct parser *p, struct mime_part *part, size_t a, size_t b)
{
	const unsigned char *d = p->data;
	size_t bare = 0, lines = 0, i = a;
	const unsigned char *lf;

	if (b <= a)
		return;
	if (memchr(d + a, '\0', b - a) != NULL)
		part->flags |= MIME_PART_HAS_NULS;
	while (i < b && (lf = memchr(d + i, '\n', b - i)) != NULL) {
		size_t at = (size_t)(lf - d);

		lines++;
		if (at == 0 || d[at - 1] != '\r')
			bare++;
		i = at + 1;
	}
	part->body_size += b - a;
	part->body_vsize += b - a + bare;
	part->body_lines += lines;
}

static void
part_append(struct parser *p)
{
	struct mime_part *parent = p->part, *part = part_new(p->msg);

	part->parent = parent;
	part->offset = parent->offset + parent->hdr_size + parent->body_size;
	p->nested++;
	p->total++;
	if (parent->children == NULL)
		parent->children = part;
	else
		p->tail[p->nested]->next = part;
	p->tail[p->nested] = part;
	parent->nchildren++;
	p->part = part;
}

static void
part_finish(struct parser *p)
{
	struct mime_part *part = p->part, *parent = part->parent;

	parent->body_size += part->hdr_size + part->body_size;
	parent->body_vsize += part->hdr_vsize + part->body_vsize;
	parent->body_lines += part->hdr_lines + part->body_lines;
	p->nested--;
	p->part = parent;
}

static void
boundary_remove_until(struct parser *p, struct boundary *keep)
{
	while (p->boundaries != keep) {
		struct boundary *b = p->boundaries;

		p->boundaries = b->next;
		free(b->str);
		free(b);
	}
}

/* The newest boundary that prefixes the line, the longest when several
 * do (RFC 2046 §5.1.2: inner boundaries first, and only a prefix need
 * match). An exact match ends the search. */
static struct boundary *
boundary_find(struct boundary *list, const unsigned char *data, size_t len,
              bool trailing_dashes)
{
	struct boundary *best = NULL;

	for (; list != NULL; list = list->next) {
		if (list->len <= len &&
		    memcmp(list->str, data, list->len) == 0 &&
		    (best == NULL || best->len < list->len)) {
			best = list;
			if (best->len == len ||
			    (trailing_dashes && best->len == len - 2))
				break;
		}
	}
	return best;
}

static struct boundary *
boundary_line_find(struct parser *p, size_t at)
{
	const unsigned char *d = p->data + at + 2, *lf;
	size_t size, find_size;
	bool trailing_dashes = false;
	struct boundary *b;

	if (p->len - at < 2 || p->data[at] != '-' || p->data[at + 1] != '-')
		return NULL;
	if (p->total >= MIME_PARTS_MAX) {
		/* no room for more parts: stop looking for boundaries */
		p->part->flags |= MIME_PART_OVERFLOW;
		return NULL;
	}
	size = p->len - at - 2;
	find_size = size;
	lf = memchr(d, '\n', size);
	if (lf != NULL) {
		find_size = (size_t)(lf - d);
		if (find_size > 0 && d[find_size - 1] == '\r')
			find_size--;
		if (find_size > 2 && d[find_size - 1] == '-' &&
		    d[find_size - 2] == '-')
			trailing_dashes = true;
	} else if (find_size > BOUNDARY_END_MAX) {
		find_size = BOUNDARY_END_MAX;
	}
	b = boundary_find(p->boundaries, d, find_size, trailing_dashes);
	if (b == NULL)
		return NULL;
	b->epilogue_found =
	    size >= b->len + 2 && d[b->len] == '-' && d[b->len + 1] == '-';
	return b;
}

/*
 * Parameters (RFC 2045 §5.1, RFC 2231 §3 and §4)
 */

struct param_vec {
	struct mime_param *v;
	size_t n, cap;
};

struct ext_param {
	const char *key, *value;
	unsigned int idx;
	bool extended;
};

static void
param_push(struct param_vec *pv, const char *name, const char *value)
{
	if (pv->n == pv->cap) {
		pv->cap = pv->cap == 0 ? 8 : pv->cap * 2;
		pv->v = xreallocarray(pv->v, pv->cap, sizeof(*pv->v));
	}
	pv->v[pv->n].name = name;
	pv->v[pv->n].value = value;
	pv->n++;
}

static int
ext_param_cmp(const void *a, const void *b)
{
	const struct ext_param *x = a, *y = b;
	int ret = strcmp(x->key, y->key);

	if (ret != 0)
		return ret;
	return x->idx < y->idx ? -1 : (x->idx > y->idx ? 1 : 0);
}

static void
append_pct_escaped(struct buf *out, const char *s)
{
	for (; *s != '\0'; s++) {
		if (*s == '%')
			buf_append_str(out, "%25");
		else
			buf_append_byte(out, (uint8_t)*s);
	}
}

/* Dovecot's rfc2231_parse(): plain parameters in order, then the merged
 * RFC 2231 ones sorted by name. The section index is not reset between
 * parameters ("a*=x" takes the previous index), as there. */
static void
params_parse(struct header_lex *lx, struct header_pool *pool,
             struct mime_param **params_r, size_t *nparams_r)
{
	struct param_vec res = {0};
	struct ext_param *ext = NULL, cur = {0};
	size_t next_ext = 0, cap_ext = 0, count = 0;
	struct buf key, value, merged;
	const char *prev_nul = lx->nul_replacement;
	int ret;

	buf_init(&key, 0);
	buf_init(&value, 0);
	lx->nul_replacement = UTF8_REPLACEMENT;
	while ((ret = header_lex_content_param(lx, &key, &value)) != 0) {
		const char *k, *p, *p2;

		if (++count > MIME_PARAMS_MAX)
			break;
		if (ret < 0) {
			if (lx->data >= lx->end)
				break;
			lx->data++;
			continue;
		}
		k = header_pool_strndup(pool, key.data, key.len);
		p = strchr(k, '*');
		if (p != NULL) {
			p2 = p;
			if (p[1] != '\0') {
				p++;
				cur.idx = 0;
				for (; *p >= '0' && *p <= '9'; p++)
					cur.idx = cur.idx * 10 +
					          (unsigned int)(*p - '0');
			}
			if (*p != '*') {
				cur.extended = false;
			} else {
				cur.extended = true;
				p++;
			}
			if (*p != '\0') {
				p = NULL;
			} else {
				if (next_ext == cap_ext) {
					cap_ext =
					    cap_ext == 0 ? 8 : cap_ext * 2;
					ext = xreallocarray(ext, cap_ext,
					                    sizeof(*ext));
				}
				cur.key = header_pool_strndup(pool, k,
				                              (size_t)(p2 - k));
				cur.value = header_pool_strndup(
				    pool, value.data, value.len);
				ext[next_ext++] = cur;
			}
		}
		if (p == NULL)
			param_push(
			    &res, k,
			    header_pool_strndup(pool, value.data, value.len));
	}
	lx->nul_replacement = prev_nul;
	buf_free(&key);
	buf_free(&value);

	if (next_ext > 0) {
		size_t i, j, next;

		qsort(ext, next_ext, sizeof(*ext), ext_param_cmp);
		buf_init(&merged, 0);
		for (i = 0; i < next_ext; i = next) {
			bool ok = true, have_extended = false;
			unsigned int next_idx = 0;

			for (j = i; j < next_ext; j++) {
				if (strcasecmp(ext[i].key, ext[j].key) != 0)
					break;
				if (ext[j].idx != next_idx)
					ok = false;
				if (ext[j].extended)
					have_extended = true;
				next_idx++;
			}
			next = j;
			if (!ok) {
				for (j = i; j < next; j++) {
					buf_reset(&merged);
					buf_printf(&merged,
					           ext[j].extended ? "%s*%u*"
					                           : "%s*%u",
					           ext[j].key, ext[j].idx);
					param_push(
					    &res,
					    header_pool_strndup(
					        pool, merged.data, merged.len),
					    ext[j].value);
				}
				continue;
			}
			buf_reset(&merged);
			if (!ext[i].extended && have_extended)
				buf_append_str(&merged, "''");
			for (j = i; j < next; j++) {
				if (!ext[j].extended && have_extended)
					append_pct_escaped(&merged,
					                   ext[j].value);
				else
					buf_append_str(&merged, ext[j].value);
			}
			{
				const char *v = header_pool_strndup(
				    pool, merged.data, merged.len);
				const char *k = ext[i].key;

				if (have_extended) {
					buf_reset(&merged);
					buf_printf(&merged, "%s*", k);
					k = header_pool_strndup(
					    pool, merged.data, merged.len);
				}
				param_push(&res, k, v);
			}
		}
		buf_free(&merged);
		free(ext);
	}
	*params_r = res.v;
	*nparams_r = res.n;
}

void
mime_content_type_parse(const char *value, size_t len, struct mime_content *ct)
{
	struct header_lex lx;
	struct buf str;
	const char *slash;
	int ret;

	memset(ct, 0, sizeof(*ct));
	buf_init(&str, 0);
	header_lex_init(&lx, value, len, NULL);
	header_lex_skip_lwsp(&lx);
	ret = header_lex_content_type(&lx, &str);
	slash = str.len > 0 ? memchr(str.data, '/', str.len) : NULL;
	if (slash != NULL) {
		size_t tlen = (size_t)(slash - (const char *)str.data);

		ct->type = header_pool_strndup(&ct->pool, str.data, tlen);
		ct->subtype = header_pool_strndup(&ct->pool, slash + 1,
		                                  str.len - tlen - 1);
	} else {
		ct->type = header_pool_strndup(&ct->pool, str.data, str.len);
		ct->subtype = "";
	}
	buf_free(&str);
	if (ret < 0) {
		ct->broken = true;
		return;
	}
	params_parse(&lx, &ct->pool, &ct->params, &ct->nparams);
}

int
mime_disposition_parse(const char *value, size_t len, struct mime_content *ct)
{
	struct header_lex lx;
	struct buf str;

	memset(ct, 0, sizeof(*ct));
	buf_init(&str, 0);
	header_lex_init(&lx, value, len, NULL);
	header_lex_skip_lwsp(&lx);
	if (header_lex_mime_token(&lx, &str) < 0) {
		buf_free(&str);
		return -1;
	}
	ct->type = header_pool_strndup(&ct->pool, str.data, str.len);
	ct->subtype = "";
	buf_free(&str);
	params_parse(&lx, &ct->pool, &ct->params, &ct->nparams);
	return 0;
}

void
mime_content_clear(struct mime_content *ct)
{
	free(ct->params);
	header_pool_clear(&ct->pool);
	memset(ct, 0, sizeof(*ct));
}

const char *
mime_content_param(const struct mime_content *ct, const char *name)
{
	for (size_t i = 0; i < ct->nparams; i++) {
		if (strcasecmp(ct->params[i].name, name) == 0)
			return ct->params[i].value;
	}
	return NULL;
}

/*
 * The parser
 */

static void
parse_content_type_field(struct parser *p, const struct header_field *f)
{
	struct mime_part *part = p->part;
	struct header_lex lx;
	struct buf *ct = &p->tmp2;
	struct mime_param *params;
	size_t nparams;
	struct header_pool pool = {0};
	int ret;

	if (p->seen_content_type)
		return;
	p->seen_content_type = true;

	buf_reset(&p->tmp);
	header_field_unfold(f, &p->tmp);
	header_lex_init(&lx, p->tmp.data, p->tmp.len, NULL);
	header_lex_skip_lwsp(&lx);
	buf_reset(ct);
	ret = header_lex_content_type(&lx, ct);

	if (ascii_ieq(ct->data, ct->len, "message/rfc822"))
		part->flags |= MIME_PART_RFC822;
	else if (ct->len >= 4 &&
	         strncasecmp((char *)ct->data, "text", 4) == 0 &&
	         (ct->len == 4 || ct->data[4] == '/'))
		part->flags |= MIME_PART_TEXT;
	else if (ct->len >= 10 &&
	         strncasecmp((char *)ct->data, "multipart/", 10) == 0) {
		part->flags |= MIME_PART_MULTIPART;
		if (ascii_ieq(ct->data + 10, ct->len - 10, "digest"))
			part->flags |= MIME_PART_DIGEST;
	}
	if (ret < 0 || (part->flags & MIME_PART_MULTIPART) == 0 ||
	    p->last_boundary != NULL)
		return;
	params_parse(&lx, &pool, &params, &nparams);
	for (size_t i = 0; i < nparams; i++) {
		if (strcasecmp(params[i].name, "boundary") == 0) {
			p->last_boundary =
			    xstrndup(params[i].value, MIME_BOUNDARY_MAX);
			break;
		}
	}
	free(params);
	header_pool_clear(&pool);
}

static bool
too_deep(const struct parser *p)
{
	return p->nested + 1 >= MIME_DEPTH_MAX;
}

static void
push_boundary(struct parser *p)
{
	struct boundary *b = xcalloc(1, sizeof(*b));

	b->part = p->part;
	b->str = p->last_boundary;
	b->len = strlen(b->str);
	p->last_boundary = NULL;
	b->next = p->boundaries;
	p->boundaries = b;
}

static void
header_end(struct parser *p)
{
	struct mime_part *part = p->part;
	unsigned int nuls = part->flags & MIME_PART_HAS_NULS;

	if ((part->flags & MIME_PART_IS_MIME) == 0)
		part->flags = nuls; /* not MIME: forget the Content-Type */
	free(p->last_boundary);
	p->last_boundary = NULL;
	if (!p->seen_content_type || (part->flags & MIME_PART_IS_MIME) == 0) {
		if (part->parent != NULL &&
		    (part->parent->flags & MIME_PART_DIGEST) != 0)
			part->flags |= MIME_PART_RFC822;
		else
			part->flags |= MIME_PART_TEXT;
	}
	if (p->multipart) {
		p->multipart = false;
		p->state = ST_BODY_TO_BOUNDARY;
	} else if ((part->flags & MIME_PART_RFC822) == 0) {
		p->state = p->boundaries != NULL ? ST_BODY_TO_BOUNDARY
		                                 : ST_BODY_TO_EOF;
	} else if (!too_deep(p) && p->total < MIME_PARTS_MAX) {
		p->state = ST_RFC822_PART;
	} else {
		part->flags |= MIME_PART_OVERFLOW;
		part->flags &= ~(unsigned int)MIME_PART_RFC822;
		p->state = p->boundaries != NULL ? ST_BODY_TO_BOUNDARY
		                                 : ST_BODY_TO_EOF;
	}
}

static bool
at_eoh(const struct parser *p)
{
	size_t at = p->pos;

	return at < p->len && (p->data[at] == '\n' ||
	                       (p->data[at] == '\r' && at + 1 < p->len &&
	                        p->data[at + 1] == '\n'));
}

/* The header's last newline goes to the parent's body, in front of a
 * boundary line. */
static void
move_newline(struct mime_part *part, size_t nl)
{
	part->hdr_size -= nl;
	part->hdr_vsize -= 2;
	part->hdr_lines--;
	part->parent->body_size += nl;
	part->parent->body_vsize += 2;
	part->parent->body_lines++;
}

static void
parse_header(struct parser *p)
{
	struct mime_part *part = p->part;
	struct header_iter it;
	struct header_field f;

	p->seen_content_type = false;
	p->prev_hdr_nl = 0;
	for (;;) {
		bool eoh = at_eoh(p);
		struct boundary *b;

		if (eoh && p->last_boundary != NULL &&
		    (part->flags & MIME_PART_IS_MIME) != 0) {
			/* the boundary is known before the body starts, so
			   "--boundary" lines are told apart from outer ones */
			if (!too_deep(p)) {
				push_boundary(p);
				p->multipart = true;
			} else {
				part->flags |= MIME_PART_OVERFLOW;
				part->flags &=
				    ~(unsigned int)MIME_PART_MULTIPART;
			}
		}
		b = p->boundaries == NULL ? NULL
		                          : boundary_line_find(p, p->pos);
		if (b != NULL && b->part != part) {
			/* an outer boundary cuts the header; the newline
			   before it belongs to the boundary */
			if (p->prev_hdr_nl > 0)
				move_newline(part, p->prev_hdr_nl);
			break;
		}
		if (p->pos >= p->len)
			break;
		if (eoh) {
			size_t nl = p->data[p->pos] == '\r' ? 2 : 1;

			part->hdr_size += nl;
			part->hdr_vsize += 2;
			part->hdr_lines++;
			p->pos += nl;
			/* an outer boundary right after the empty line takes
			   that line's newline as its own */
			b = p->boundaries == NULL
			        ? NULL
			        : boundary_line_find(p, p->pos);
			if (b != NULL && b->part != part)
				move_newline(part, nl);
			break;
		}
		header_iter_init(&it, (const char *)p->data + p->pos,
		                 p->len - p->pos);
		if (!header_iter_next(&it, &f))
			break; /* not reached: not at eoh, not at the end */
		{
			const unsigned char *s = (const unsigned char *)f.start;
			size_t lines = 0, bare = 0;
			const unsigned char *lf, *q = s, *e = s + f.len;

			while ((lf = memchr(q, '\n', (size_t)(e - q))) !=
			       NULL) {
				lines++;
				if (lf == s || lf[-1] != '\r')
					bare++;
				q = lf + 1;
			}
			if (memchr(s, '\0', f.len) != NULL)
				part->flags |= MIME_PART_HAS_NULS;
			part->hdr_size += f.len;
			part->hdr_vsize += f.len + bare;
			part->hdr_lines += lines;
			p->pos += f.len;
			if (f.no_newline)
				p->prev_hdr_nl = 0;
			else
				p->prev_hdr_nl =
				    f.len >= 2 && s[f.len - 2] == '\r' ? 2 : 1;
		}
		if (header_field_is(&f, "MIME-Version")) {
			part->flags |= MIME_PART_IS_MIME;
		} else if (header_field_is(&f, "Content-Type")) {
			part->flags |= MIME_PART_IS_MIME;
			parse_content_type_field(p, &f);
		}
	}
	header_end(p);
}

static void
boundary_reached(struct parser *p, struct boundary *b, bool first_line)
{
	size_t line, blen = b->len;
	bool epilogue = b->epilogue_found;

	while (p->part != b->part)
		part_finish(p);
	boundary_remove_until(p, epilogue ? b->next : b);
	if (first_line)
		line = 0;
	else
		line = p->data[p->pos] == '\r' ? 2 : 1;
	line += 2 + blen + (epilogue ? 2 : 0);
	add_body(p, p->part, p->pos, p->pos + line);
	p->pos += line;
	p->state = ST_SKIP_BOUNDARY_LINE;
}

static void
body_to_boundary(struct parser *p)
{
	size_t cur = p->pos;
	struct boundary *b;
	const unsigned char *lf;

	if (p->pos == 0 || p->data[p->pos - 1] == '\n') {
		b = boundary_line_find(p, p->pos);
		if (b != NULL) {
			boundary_reached(p, b, true);
			return;
		}
	}
	while ((lf = memchr(p->data + cur, '\n', p->len - cur)) != NULL) {
		size_t at = (size_t)(lf - p->data), start;

		cur = at + 1;
		b = boundary_line_find(p, cur);
		if (b == NULL)
			continue;
		start = at;
		if (at > p->pos && p->data[at - 1] == '\r')
			start--;
		add_body(p, p->part, p->pos, start);
		p->pos = start;
		boundary_reached(p, b, false);
		return;
	}
	add_body(p, p->part, p->pos, p->len);
	p->pos = p->len;
	p->state = ST_DONE;
}

static void
skip_boundary_line(struct parser *p)
{
	const unsigned char *lf =
	    memchr(p->data + p->pos, '\n', p->len - p->pos);

	if (lf == NULL) {
		add_body(p, p->part, p->pos, p->len);
		p->pos = p->len;
		p->state = ST_DONE;
		return;
	}
	add_body(p, p->part, p->pos, (size_t)(lf - p->data) + 1);
	p->pos = (size_t)(lf - p->data) + 1;
	if (p->boundaries == NULL)
		p->state = ST_BODY_TO_EOF;
	else if (p->boundaries->part != p->part)
		p->state = ST_BODY_TO_BOUNDARY; /* epilogue */
	else
		p->state = ST_MIME_PART;
}

struct mime_message *
mime_parse(const char *msg, size_t len)
{
	struct mime_message *m = xcalloc(1, sizeof(*m));
	struct parser p;

	memset(&p, 0, sizeof(p));
	m->data = msg;
	m->len = len;
	m->root = part_new(m);
	p.data = (const unsigned char *)msg;
	p.len = len;
	p.msg = m;
	p.part = m->root;
	p.total = 1;
	p.state = ST_HEADER;
	buf_init(&p.tmp, 0);
	buf_init(&p.tmp2, 0);
	while (p.state != ST_DONE) {
		switch (p.state) {
		case ST_HEADER:
			parse_header(&p);
			break;
		case ST_BODY_TO_BOUNDARY:
			body_to_boundary(&p);
			break;
		case ST_BODY_TO_EOF:
			add_body(&p, p.part, p.pos, p.len);
			p.pos = p.len;
			p.state = ST_DONE;
			break;
		case ST_SKIP_BOUNDARY_LINE:
			skip_boundary_line(&p);
			break;
		case ST_MIME_PART:
			part_append(&p);
			p.part->flags |= MIME_PART_IS_MIME;
			p.state = ST_HEADER;
			break;
		case ST_RFC822_PART:
			part_append(&p);
			p.state = ST_HEADER;
			break;
		case ST_DONE:
			break;
		}
	}
	while (p.part->parent != NULL)
		part_finish(&p);
	boundary_remove_until(&p, NULL);
	free(p.last_boundary);
	buf_free(&p.tmp);
	buf_free(&p.tmp2);
	return m;
}

void
mime_message_free(struct mime_message **mp)
{
	struct mime_message *m = *mp;

	if (m == NULL)
		return;
	while (m->chunks != NULL) {
		struct mime_part_chunk *next = m->chunks->next;

		free(m->chunks);
		m->chunks = next;
	}
	free(m);
	*mp = NULL;
}

const struct mime_part *
mime_part_find(const struct mime_part *root, const uint32_t *path, size_t n)
{
	const struct mime_part *part = root;
	size_t i = 0;

	while (i < n && part != NULL) {
		uint32_t num = path[i++];

		if (num == 0)
			return NULL;
		if ((part->flags & MIME_PART_MULTIPART) != 0) {
			part = part->children;
			for (; num > 1 && part != NULL; num--)
				part = part->next;
		} else if (num != 1) {
			part = NULL;
		} else if (i < n && (part->flags & MIME_PART_RFC822) == 0) {
			part = NULL;
		}
		if (part != NULL && (part->flags & MIME_PART_RFC822) != 0 &&
		    i < n)
			part = part->children;
	}
	return part;
}

/*
 * Transfer encodings
 */

enum mime_cte
mime_cte_parse(const char *value, size_t len)
{
	struct header_lex lx;
	struct buf v;
	enum mime_cte cte = MIME_CTE_UNKNOWN;

	buf_init(&v, 0);
	header_lex_init(&lx, value, len, NULL);
	header_lex_skip_lwsp(&lx);
	if (header_lex_mime_token(&lx, &v) == 1) {
		header_lex_skip_lwsp(&lx);
		/* parameters are not allowed, but tolerated after ';' */
		if (header_lex_peek(&lx) != ';') {
			buf_free(&v);
			return MIME_CTE_UNKNOWN;
		}
	}
	if (ascii_ieq(v.data, v.len, "7bit") ||
	    ascii_ieq(v.data, v.len, "8bit"))
		cte = MIME_CTE_78BIT;
	else if (ascii_ieq(v.data, v.len, "base64"))
		cte = MIME_CTE_BASE64;
	else if (ascii_ieq(v.data, v.len, "binary"))
		cte = MIME_CTE_BINARY;
	else if (ascii_ieq(v.data, v.len, "quoted-printable"))
		cte = MIME_CTE_QP;
	buf_free(&v);
	return cte;
}

static int
hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

void
mime_qp_decode(const void *in, size_t len, struct buf *out)
{
	const unsigned char *s = in;
	size_t i = 0, start = 0;

	/* the bytes in [start, i) are plain text to copy */
	while (i < len) {
		unsigned char c = s[i];
		size_t j;

		if (c > '=' || (c != '=' && c != ' ' && c != '\t' &&
		                c != '\r' && c != '\n')) {
			i++;
			continue;
		}
		buf_append(out, s + start, i - start);
		if (c == '=') {
			if (i + 2 < len && hexval(s[i + 1]) >= 0 &&
			    hexval(s[i + 2]) >= 0) {
				buf_append_byte(
				    out, (uint8_t)(hexval(s[i + 1]) * 16 +
				                   hexval(s[i + 2])));
				i += 3;
			} else {
				j = i + 1;
				while (j < len && (s[j] == ' ' || s[j] == '\t'))
					j++;
				if (j < len && s[j] == '\n') {
					i = j + 1; /* soft line break */
				} else if (j + 1 < len && s[j] == '\r' &&
				           s[j + 1] == '\n') {
					i = j + 2;
				} else {
					buf_append_byte(out, '=');
					i++;
				}
			}
		} else if (c == ' ' || c == '\t') {
			j = i;
			while (j < len && (s[j] == ' ' || s[j] == '\t'))
				j++;
			if (j == len || s[j] == '\n' ||
			    (s[j] == '\r' && j + 1 < len && s[j + 1] == '\n'))
				i = j; /* trailing whitespace is dropped */
			else {
				buf_append(out, s + i, j - i);
				i = j;
			}
		} else if (c == '\r') {
			if (i + 1 < len && s[i + 1] == '\n') {
				buf_append_str(out, "\r\n");
				i += 2;
			} else {
				buf_append_byte(out, '\r');
				i++;
			}
		} else {
			buf_append_str(out, "\r\n");
			i++;
		}
		start = i;
	}
	buf_append(out, s + start, len - start);
}

static const signed char b64_values[256] = {
    ['A'] = 1,  ['B'] = 2,  ['C'] = 3,  ['D'] = 4,  ['E'] = 5,  ['F'] = 6,
    ['G'] = 7,  ['H'] = 8,  ['I'] = 9,  ['J'] = 10, ['K'] = 11, ['L'] = 12,
    ['M'] = 13, ['N'] = 14, ['O'] = 15, ['P'] = 16, ['Q'] = 17, ['R'] = 18,
    ['S'] = 19, ['T'] = 20, ['U'] = 21, ['V'] = 22, ['W'] = 23, ['X'] = 24,
    ['Y'] = 25, ['Z'] = 26, ['a'] = 27, ['b'] = 28, ['c'] = 29, ['d'] = 30,
    ['e'] = 31, ['f'] = 32, ['g'] = 33, ['h'] = 34, ['i'] = 35, ['j'] = 36,
    ['k'] = 37, ['l'] = 38, ['m'] = 39, ['n'] = 40, ['o'] = 41, ['p'] = 42,
    ['q'] = 43, ['r'] = 44, ['s'] = 45, ['t'] = 46, ['u'] = 47, ['v'] = 48,
    ['w'] = 49, ['x'] = 50, ['y'] = 51, ['z'] = 52, ['0'] = 53, ['1'] = 54,
    ['2'] = 55, ['3'] = 56, ['4'] = 57, ['5'] = 58, ['6'] = 59, ['7'] = 60,
    ['8'] = 61, ['9'] = 62, ['+'] = 63, ['/'] = 64,
};

void
mime_base64_decode(const void *in, size_t len, struct buf *out)
{
	const unsigned char *s = in;
	uint8_t chunk[256];
	size_t n = 0;
	uint32_t acc = 0;
	unsigned int bits = 0;

	for (size_t i = 0; i < len; i++) {
		int v = b64_values[s[i]];

		if (v == 0) {
			if (s[i] == '=') {
				/* padding ends a quantum */
				acc = 0;
				bits = 0;
			}
			continue;
		}
		acc = (acc << 6) | (uint32_t)(v - 1);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			chunk[n++] = (uint8_t)(acc >> bits);
			acc &= (1u << bits) - 1;
			if (n == sizeof(chunk)) {
				buf_append(out, chunk, n);
				n = 0;
			}
		}
	}
	buf_append(out, chunk, n);
}

void
mime_body_decode(const void *in, size_t len, enum mime_cte cte, struct buf *out)
{
	switch (cte) {
	case MIME_CTE_QP:
		mime_qp_decode(in, len, out);
		break;
	case MIME_CTE_BASE64:
		mime_base64_decode(in, len, out);
		break;
	case MIME_CTE_78BIT:
	case MIME_CTE_BINARY:
	case MIME_CTE_UNKNOWN:
		buf_append(out, in, len);
		break;
	}
}

/*
 * Charsets and encoded words
 */

/* How many bytes one U+FFFD replaces at s, where no valid sequence starts: a
 * lead byte with the continuation bytes after it, at most as many as the
 * lead announces; any other byte alone. Never part of a valid sequence. */
static size_t
mime_utf8_bad_len(const unsigned char *s, size_t len)
{
	size_t n, k;

	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		n = 2;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		n = 3;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		n = 4;
	else
		return 1;
	for (k = 1; k < n && k < len && (s[k] & 0xc0) == 0x80; k++)
		;
	return k;
}

void
mime_utf8_sanitize(const void *in, size_t len, struct buf *out)
{
	const unsigned char *s = in;
	size_t i = 0, start = 0, n;

	while (i < len) {
		uint64_t v;

		/* Most text is ASCII: eight bytes at a time. */
		if (len - i >= 8 &&
		    (memcpy(&v, s + i, 8), (v & 0x8080808080808080u) == 0)) {
			i += 8;
			continue;
		}
		if (s[i] < 0x80) {
			i++;
			continue;
		}
		if ((n = utf8_seq_len(s + i, len - i)) > 0) {
			i += n;
			continue;
		}
		buf_append(out, s + start, i - start);
		buf_append_str(out, UTF8_REPLACEMENT);
		i += mime_utf8_bad_len(s + i, len - i);
		start = i;
	}
	if (len > start) /* s may be NULL when len is 0 */
		buf_append(out, s + start, len - start);
}

static bool
charset_is_utf8(const char *cs)
{
	return strcasecmp(cs, "utf-8") == 0 || strcasecmp(cs, "utf8") == 0 ||
	       strcasecmp(cs, "us-ascii") == 0 ||
	       strcasecmp(cs, "ascii") == 0 || cs[0] == '\0';
}

int
mime_charset_to_utf8(const char *charset, const void *in, size_t len,
                     struct buf *out)
{
	char outbuf[1024];
	char *ip = (char *)(uintptr_t)in;
	size_t ileft = len;
	iconv_t cd;

	if (charset_is_utf8(charset)) {
		mime_utf8_sanitize(in, len, out);
		return 0;
	}
	cd = iconv_open("UTF-8", charset);
	if (cd == (iconv_t)-1)
		return -1;
	while (ileft > 0) {
		char *op = outbuf;
		size_t oleft = sizeof(outbuf);
		size_t r = iconv(cd, &ip, &ileft, &op, &oleft);
		int err = errno;

		buf_append(out, outbuf, sizeof(outbuf) - oleft);
		if (r != (size_t)-1)
			break;
		if (err == E2BIG)
			continue;
		/* EILSEQ or EINVAL (incomplete at the end): skip a byte */
		buf_append_str(out, UTF8_REPLACEMENT);
		ip++;
		ileft--;
	}
	{
		/* flush a shift state */
		char *op = outbuf;
		size_t oleft = sizeof(outbuf);

		if (iconv(cd, NULL, NULL, &op, &oleft) != (size_t)-1)
			buf_append(out, outbuf, sizeof(outbuf) - oleft);
	}
	iconv_close(cd);
	return 0;
}

static void
q_decode(const unsigned char *s, size_t len, struct buf *out)
{
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '_') {
			buf_append_byte(out, ' ');
		} else if (s[i] == '=' && i + 2 < len &&
		           hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
			buf_append_byte(out, (uint8_t)(hexval(s[i + 1]) * 16 +
			                               hexval(s[i + 2])));
			i += 2;
		} else {
			buf_append_byte(out, s[i]);
		}
	}
}

/* At s: "charset?E?text?=" after a "=?". Returns the bytes it spans
 * (0: not an encoded word) and appends the decoded text as UTF-8. */
static size_t
decode_word(const unsigned char *s, size_t len, struct buf *tmp,
            struct buf *out)
{
	size_t q[3], nq = 0, i;
	char charset[64];
	size_t cslen;

	for (i = 0; i < len && nq < 3; i++) {
		if (s[i] == '?')
			q[nq++] = i;
	}
	if (nq < 3 || q[2] + 1 >= len || s[q[2] + 1] != '=' || q[1] != q[0] + 2)
		return 0;
	cslen = q[0];
	for (i = 0; i < cslen; i++) {
		/* RFC 2231 §5: charset*language */
		if (s[i] == '*') {
			cslen = i;
			break;
		}
	}
	if (cslen >= sizeof(charset))
		return 0;
	memcpy(charset, s, cslen);
	charset[cslen] = '\0';
	buf_reset(tmp);
	switch (s[q[0] + 1]) {
	case 'q':
	case 'Q':
		q_decode(s + q[1] + 1, q[2] - q[1] - 1, tmp);
		break;
	case 'b':
	case 'B':
		mime_base64_decode(s + q[1] + 1, q[2] - q[1] - 1, tmp);
		break;
	default:
		return 0;
	}
	if (mime_charset_to_utf8(charset, tmp->data, tmp->len, out) < 0)
		mime_utf8_sanitize(tmp->data, tmp->len, out);
	return q[2] + 2;
}

static bool
only_lwsp(const unsigned char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n')
			return false;
	}
	return true;
}

void
mime_header_decode(const char *value, size_t len, struct buf *out)
{
	const unsigned char *s = (const unsigned char *)value;
	size_t pos = 0, start = 0, n;
	bool prev_word = false;
	struct buf tmp, word;

	buf_init(&tmp, 0);
	buf_init(&word, 0);
	while (pos + 1 < len) {
		if (s[pos] != '=' || s[pos + 1] != '?') {
			pos++;
			continue;
		}
		buf_reset(&word);
		n = decode_word(s + pos + 2, len - pos - 2, &tmp, &word);
		if (n == 0) {
			pos++;
			continue;
		}
		/* whitespace between two encoded words is dropped */
		if (pos > start &&
		    (!prev_word || !only_lwsp(s + start, pos - start)))
			mime_utf8_sanitize(s + start, pos - start, out);
		buf_append(out, word.data, word.len);
		pos += 2 + n;
		start = pos;
		prev_word = true;
	}
	if (start < len)
		mime_utf8_sanitize(s + start, len - start, out);
	buf_free(&tmp);
	buf_free(&word);
}

void
mime_param_decode(const char *value, bool extended, struct buf *out)
{
	const char *q1, *q2, *p;
	char charset[64];
	struct buf raw;
	size_t cslen;

	if (!extended) {
		mime_header_decode(value, strlen(value), out);
		return;
	}
	q1 = strchr(value, '\'');
	q2 = q1 != NULL ? strchr(q1 + 1, '\'') : NULL;
	if (q2 == NULL) {
		q1 = NULL;
		p = value;
		cslen = 0;
	} else {
		p = q2 + 1;
		cslen = (size_t)(q1 - value);
	}
	buf_init(&raw, 0);
	for (; *p != '\0'; p++) {
		if (*p == '%' && hexval((unsigned char)p[1]) >= 0 &&
		    hexval((unsigned char)p[2]) >= 0) {
			buf_append_byte(
			    &raw, (uint8_t)(hexval((unsigned char)p[1]) * 16 +
			                    hexval((unsigned char)p[2])));
			p += 2;
		} else {
			buf_append_byte(&raw, (uint8_t)*p);
		}
	}
	if (cslen >= sizeof(charset))
		cslen = 0;
	memcpy(charset, value, cslen);
	charset[cslen] = '\0';
	if (mime_charset_to_utf8(charset, raw.data, raw.len, out) < 0)
		mime_utf8_sanitize(raw.data, raw.len, out);
	buf_free(&raw);
}
