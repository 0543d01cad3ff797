/* The IMAP command reader (see parser.h): whole lines are collected (up to
 * line_max), tokenized into a flat token list whose strings and literals go
 * to one data buffer; when the command ends the list becomes the tree.
 * SECURITY: client input. Every buffer is a bounded struct buf and every
 * limit is checked before a byte is stored; after an error the rest of the
 * command is skipped, following its non-synchronizing literals, so the
 * stream stays in step. NUL and bare CR in a line are errors. */
#include "imap/parser.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/utf8.h"
#include "core/xmalloc.h"

/* Used for limits left at 0. */
#define PARSER_DEF_LINE_MAX 8192
#define PARSER_DEF_LITERAL_MAX (64 * 1024)
#define PARSER_DEF_APPEND_MAX (64 * 1024 * 1024)
#define PARSER_DEF_DEPTH_MAX 16
#define PARSER_DEF_ARGS_MAX 10000
/* A configured depth beyond this is clamped (the stacks are preallocated). */
#define PARSER_DEPTH_HARD_MAX 1024
/* Letters of one command name ("FETCH"; "UID FETCH" is two). */
#define PARSER_NAME_PART_MAX 20
/* Buffers that grew past this are released between commands. */
#define PARSER_KEEP_MAX (64 * 1024)
/* Bytes of a skipped line kept to spot a trailing "{n+}". */
#define PARSER_TAIL_MAX 32
#define PARSER_LITERAL_DIGITS_MAX 20

enum parser_state {
	PS_LINE,         /* collecting a line */
	PS_LITERAL,      /* reading the bytes of a literal */
	PS_SKIP_LINE,    /* after an error: discard up to LF */
	PS_SKIP_LITERAL, /* after an error: discard a non-sync literal */
	PS_FATAL,        /* the stream is lost */
};

enum parser_tok_type {
	TOK_ATOM,
	TOK_STRING,
	TOK_LITERAL,
	TOK_NIL,
	TOK_OPEN,
	TOK_CLOSE,
};

struct parser_token {
	enum parser_tok_type type;
	bool literal8;
	size_t off; /* into data */
	size_t len;
	size_t count; /* OPEN: direct children */
};

/* A position while turning the token list into the tree. */
struct parser_frame {
	struct imap_arg *arr;
	size_t idx;
};

struct imap_parser {
	struct imap_parser_limits lim;
	enum parser_state state;

	struct buf line; /* the line being collected, CR included */
	struct buf data; /* strings, atoms and literals, each NUL-ended */

	/* The command being read. */
	struct parser_token *toks;
	size_t ntoks, toks_cap;
	size_t nargs; /* tokens other than TOK_CLOSE */
	size_t depth; /* open lists */
	size_t *open; /* token index of each open list (depth_max) */
	size_t top_count;
	bool first_line;  /* the next line starts a command */
	bool after_token; /* the previous token wants a separator */
	bool fetch_mode;  /* FETCH: "[…]" inside atoms */
	bool append_mode; /* APPEND: literals bounded by append_max */
	bool have_tag;
	char tag[IMAP_TAG_MAX + 1];
	char name[32];
	size_t cmd_size;

	/* A literal announced at the end of the last line, then being read. */
	bool lit_pending;
	bool lit_sync;
	bool lit8;
	uint64_t lit_size;
	uint64_t lit_left;

	/* Skipping after an error. */
	bool skip_literals; /* honour a trailing {n+} of a skipped line */
	size_t skip_bound;
	uint8_t tail[PARSER_TAIL_MAX];
	size_t tail_len;

	/* Results. */
	bool have_cmd;
	bool have_line;
	const char *line_str;
	size_t line_len;
	struct imap_command cmd;
	struct imap_arg *pool;
	size_t pool_cap;
	struct parser_frame *frames; /* depth_max + 1 */
	char err_tag[IMAP_TAG_MAX + 1];
	char err[128];
};

static size_t
parser_sat_add(size_t a, size_t b)
{
	return a > SIZE_MAX - b ? SIZE_MAX : a + b;
}

struct imap_parser *
imap_parser_new(const struct imap_parser_limits *lim)
{
	struct imap_parser *p = xcalloc(1, sizeof(*p));
	size_t big;

	p->lim = *lim;
	if (p->lim.line_max == 0)
		p->lim.line_max = PARSER_DEF_LINE_MAX;
	if (p->lim.literal_max == 0)
		p->lim.literal_max = PARSER_DEF_LITERAL_MAX;
	if (p->lim.append_max == 0)
		p->lim.append_max = PARSER_DEF_APPEND_MAX;
	if (p->lim.depth_max == 0)
		p->lim.depth_max = PARSER_DEF_DEPTH_MAX;
	if (p->lim.depth_max > PARSER_DEPTH_HARD_MAX)
		p->lim.depth_max = PARSER_DEPTH_HARD_MAX;
	if (p->lim.args_max == 0)
		p->lim.args_max = PARSER_DEF_ARGS_MAX;
	if (p->lim.command_max == 0) {
		big = p->lim.append_max > p->lim.literal_max
		          ? p->lim.append_max
		          : p->lim.literal_max;
		p->lim.command_max = parser_sat_add(
		    big, parser_sat_add(p->lim.line_max, p->lim.line_max));
	}
	if (p->lim.line_max >= SIZE_MAX / 4)
		p->lim.line_max = SIZE_MAX / 4;
	buf_init(&p->line, p->lim.line_max + 1);
	/* Every stored byte was counted in cmd_size; each token adds a NUL. */
	buf_init(&p->data,
	         parser_sat_add(p->lim.command_max, p->lim.args_max + 16));
	p->open = xcalloc(p->lim.depth_max + 1, sizeof(*p->open));
	p->frames = xcalloc(p->lim.depth_max + 1, sizeof(*p->frames));
	p->state = PS_LINE;
	p->first_line = true;
	(void)snprintf(p->err_tag, sizeof(p->err_tag), "*");
	return p;
}

void
imap_parser_free(struct imap_parser **pp)
{
	struct imap_parser *p = *pp;

	if (p == NULL)
		return;
	buf_free(&p->line);
	buf_free(&p->data);
	free(p->toks);
	free(p->open);
	free(p->pool);
	free(p->frames);
	free(p);
	*pp = NULL;
}

/* Forget the command being read (not the stream state). */
static void
parser_clear_command(struct imap_parser *p)
{
	if (p->data.cap > PARSER_KEEP_MAX)
		buf_free(&p->data);
	buf_reset(&p->data);
	if (p->toks_cap > PARSER_KEEP_MAX / sizeof(*p->toks)) {
		xfree(&p->toks);
		p->toks_cap = 0;
	}
	if (p->pool_cap > PARSER_KEEP_MAX / sizeof(*p->pool)) {
		xfree(&p->pool);
		p->pool_cap = 0;
	}
	p->ntoks = p->nargs = p->depth = p->top_count = 0;
	p->first_line = true;
	p->after_token = false;
	p->fetch_mode = p->append_mode = false;
	p->have_tag = false;
	p->tag[0] = '\0';
	p->name[0] = '\0';
	p->cmd_size = 0;
	p->lit_pending = false;
	p->lit_left = p->lit_size = 0;
	p->have_cmd = false;
	memset(&p->cmd, 0, sizeof(p->cmd));
}

/* Called at the start of every feed: results of the last call expire. */
static void
parser_begin(struct imap_parser *p)
{
	if (p->have_cmd)
		parser_clear_command(p);
	if (p->have_line) {
		p->have_line = false;
		p->line_str = NULL;
		p->line_len = 0;
		buf_reset(&p->line);
		if (p->line.cap > PARSER_KEEP_MAX)
			buf_free(&p->line);
	}
}

void
imap_parser_reset(struct imap_parser *p)
{
	parser_begin(p);
	parser_clear_command(p);
	buf_reset(&p->line);
	p->state = PS_LINE;
	p->tail_len = 0;
	p->err[0] = '\0';
	(void)snprintf(p->err_tag, sizeof(p->err_tag), "*");
}

const struct imap_command *
imap_parser_command(const struct imap_parser *p)
{
	return p->have_cmd ? &p->cmd : NULL;
}

const char *
imap_parser_error_tag(const struct imap_parser *p)
{
	return p->err_tag;
}

const char *
imap_parser_error(const struct imap_parser *p)
{
	return p->err;
}

const char *
imap_parser_line(const struct imap_parser *p, size_t *len_r)
{
	if (!p->have_line) {
		*len_r = 0;
		return NULL;
	}
	*len_r = p->line_len;
	return p->line_str;
}

static void __attribute__((format(printf, 2, 3)))
parser_set_error(struct imap_parser *p, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(p->err, sizeof(p->err), fmt, ap);
	va_end(ap);
	(void)snprintf(p->err_tag, sizeof(p->err_tag), "%s",
	               p->have_tag ? p->tag : "*");
}

static size_t
parser_literal_bound(const struct imap_parser *p)
{
	return p->append_mode ? p->lim.append_max : p->lim.literal_max;
}

/* ---- character classes ---- */

/* ATOM-CHAR plus what an argument atom may carry here: list wildcards
 * ("%", "*"), "\" (flags) and "]" (ASTRING-CHAR). */
static bool
parser_atom_char(uint8_t c)
{
	return c > 0x20 && c < 0x7f && c != '(' && c != ')' && c != '"' &&
	       c != '{';
}

/* tag = 1*<any ASTRING-CHAR except "+"> */
static bool
parser_tag_char(uint8_t c)
{
	return c > 0x20 && c < 0x7f && c != '(' && c != ')' && c != '"' &&
	       c != '{' && c != '%' && c != '*' && c != '\\' && c != '+';
}

static bool
parser_name_char(uint8_t c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
}

/* Well-formed UTF-8 (no overlongs, no surrogates, at most U+10FFFF). */
static bool
parser_utf8_valid(const uint8_t *s, size_t len)
{
	size_t i = 0, n;

	while (i < len) {
		if ((n = utf8_seq_len(s + i, len - i)) == 0)
			return false;
		i += n;
	}
	return true;
}

/* ---- tokens ---- */

static int
parser_add_token(struct imap_parser *p, enum parser_tok_type type, size_t off,
                 size_t len)
{
	struct parser_token *t;

	if (type != TOK_CLOSE) {
		if (p->nargs >= p->lim.args_max) {
			parser_set_error(p, "Too many arguments");
			return -1;
		}
		p->nargs++;
		if (p->depth > 0)
			p->toks[p->open[p->depth - 1]].count++;
		else
			p->top_count++;
	}
	if (p->ntoks == p->toks_cap) {
		p->toks_cap = p->toks_cap == 0 ? 32 : p->toks_cap * 2;
		p->toks = xreallocarray(p->toks, p->toks_cap, sizeof(*p->toks));
	}
	t = &p->toks[p->ntoks++];
	t->type = type;
	t->literal8 = false;
	t->off = off;
	t->len = len;
	t->count = 0;
	return 0;
}

/* Store s[0..len) plus a NUL in data; *off_r: where it starts. */
static int
parser_store(struct imap_parser *p, const uint8_t *s, size_t len, size_t *off_r)
{
	*off_r = p->data.len;
	if (buf_append(&p->data, s, len) < 0 ||
	    buf_append_byte(&p->data, 0) < 0) {
		parser_set_error(p, "Command too long");
		return -1;
	}
	return 0;
}

/* The first line: "tag SP name [SP subname]"; *i_r is left after them. */
static int
parser_read_tag_name(struct imap_parser *p, const uint8_t *s, size_t len,
                     size_t *i_r)
{
	size_t i = 0, start, n;
	char part[PARSER_NAME_PART_MAX + 1];

	while (i < len && s[i] != ' ') {
		if (!parser_tag_char(s[i])) {
			parser_set_error(p, "Invalid tag");
			return -1;
		}
		i++;
	}
	if (i == 0 || i > IMAP_TAG_MAX) {
		parser_set_error(p, "Invalid tag");
		return -1;
	}
	memcpy(p->tag, s, i);
	p->tag[i] = '\0';
	p->have_tag = true;

	for (int word = 0; word < 2; word++) {
		while (i < len && s[i] == ' ')
			i++;
		start = i;
		while (i < len && s[i] != ' ') {
			if (!parser_name_char(s[i])) {
				parser_set_error(p, "Invalid command name");
				return -1;
			}
			i++;
		}
		n = i - start;
		if (n == 0) {
			parser_set_error(p, word == 0 ? "Missing command"
			                              : "Missing UID command");
			return -1;
		}
		if (n > PARSER_NAME_PART_MAX) {
			parser_set_error(p, "Unknown command");
			return -1;
		}
		for (size_t k = 0; k < n; k++) {
			char c = (char)s[start + k];

			part[k] = c >= 'a' && c <= 'z' ? (char)(c - 32) : c;
		}
		part[n] = '\0';
		if (word == 0) {
			(void)snprintf(p->name, sizeof(p->name), "%s", part);
			if (strcmp(part, "UID") != 0)
				break;
		} else {
			(void)snprintf(p->name, sizeof(p->name), "UID %s",
			               part);
		}
	}
	p->fetch_mode =
	    strcmp(p->name, "FETCH") == 0 || strcmp(p->name, "UID FETCH") == 0;
	p->append_mode = strcmp(p->name, "APPEND") == 0;
	p->after_token = true;
	*i_r = i;
	return 0;
}

static int
parser_read_quoted(struct imap_parser *p, const uint8_t *s, size_t len,
                   size_t *i_r)
{
	size_t i = *i_r + 1, off = p->data.len, run, tokoff;

	for (;;) {
		run = i;
		while (run < len && s[run] != '"' && s[run] != '\\' &&
		       s[run] != '\0' && s[run] != '\r')
			run++;
		if (buf_append(&p->data, s + i, run - i) < 0) {
			parser_set_error(p, "Command too long");
			return -1;
		}
		i = run;
		if (i == len) {
			parser_set_error(p, "Missing '\"'");
			return -1;
		}
		if (s[i] == '"')
			break;
		if (s[i] != '\\') {
			parser_set_error(p, "Invalid characters in string");
			return -1;
		}
		if (i + 1 == len || (s[i + 1] != '"' && s[i + 1] != '\\')) {
			parser_set_error(p, "Invalid escape in string");
			return -1;
		}
		if (buf_append_byte(&p->data, s[i + 1]) < 0) {
			parser_set_error(p, "Command too long");
			return -1;
		}
		i += 2;
	}
	if (p->data.len > off &&
	    !parser_utf8_valid(p->data.data + off, p->data.len - off)) {
		parser_set_error(p, "Invalid UTF-8 in string");
		return -1;
	}
	if (buf_append_byte(&p->data, 0) < 0) {
		parser_set_error(p, "Command too long");
		return -1;
	}
	tokoff = off;
	if (parser_add_token(p, TOK_STRING, tokoff, p->data.len - off - 1) < 0)
		return -1;
	*i_r = i + 1;
	return 0;
}

/* "{n}", "{n+}", "~{n}", "~{n+}" at the end of the line. */
static int
parser_read_literal(struct imap_parser *p, const uint8_t *s, size_t len,
                    size_t *i_r)
{
	size_t i = *i_r, ndig = 0;
	uint64_t n = 0;
	bool lit8 = false, sync = true;

	if (s[i] == '~') {
		lit8 = true;
		i++;
	}
	i++; /* '{' */
	while (i < len && s[i] >= '0' && s[i] <= '9') {
		if (++ndig > PARSER_LITERAL_DIGITS_MAX ||
		    n > (UINT64_MAX - 9) / 10) {
			parser_set_error(p, "Invalid literal size");
			return -1;
		}
		n = n * 10 + (uint64_t)(s[i] - '0');
		i++;
	}
	if (ndig == 0) {
		parser_set_error(p, "Invalid literal");
		return -1;
	}
	if (i < len && s[i] == '+') {
		sync = false;
		i++;
	}
	if (i == len || s[i] != '}') {
		parser_set_error(p, "Invalid literal");
		return -1;
	}
	i++;
	if (i != len) {
		parser_set_error(p, "Literal must end the line");
		return -1;
	}
	if (parser_add_token(p, TOK_LITERAL, p->data.len, 0) < 0)
		return -1;
	p->toks[p->ntoks - 1].literal8 = lit8;
	p->lit_pending = true;
	p->lit_sync = sync;
	p->lit8 = lit8;
	p->lit_size = n;
	*i_r = i;
	return 0;
}

static int
parser_read_atom(struct imap_parser *p, const uint8_t *s, size_t len,
                 size_t *i_r)
{
	size_t i = *i_r, start = i, off;
	const uint8_t *close;

	while (i < len && s[i] != ' ' && s[i] != ')') {
		if (p->fetch_mode && s[i] == '[') {
			/* BODY[HEADER.FIELDS (A B)]<0.10>: one atom. */
			close = memchr(s + i + 1, ']', len - i - 1);
			if (close == NULL) {
				parser_set_error(p, "Missing ']'");
				return -1;
			}
			for (const uint8_t *q = s + i + 1; q < close; q++) {
				if (*q < 0x20 || *q >= 0x7f) {
					parser_set_error(
					    p, "Invalid characters in atom");
					return -1;
				}
			}
			i = (size_t)(close - s) + 1;
			continue;
		}
		if (!parser_atom_char(s[i])) {
			parser_set_error(p, "Invalid characters in atom");
			return -1;
		}
		i++;
	}
	if (parser_store(p, s + start, i - start, &off) < 0)
		return -1;
	if (i - start == 3 &&
	    strncasecmp((const char *)s + start, "NIL", 3) == 0) {
		if (parser_add_token(p, TOK_NIL, off, 3) < 0)
			return -1;
	} else if (parser_add_token(p, TOK_ATOM, off, i - start) < 0) {
		return -1;
	}
	*i_r = i;
	return 0;
}

/* Tokenize one complete line (without CRLF). */
static int
parser_tokenize(struct imap_parser *p, const uint8_t *s, size_t len)
{
	size_t i = 0;
	bool sep = false;

	if (p->first_line) {
		if (parser_read_tag_name(p, s, len, &i) < 0)
			return -1;
		p->first_line = false;
	}
	while (i < len) {
		uint8_t c = s[i];

		if (c == ' ') {
			sep = true;
			i++;
			continue;
		}
		if (c == ')') {
			if (p->depth == 0) {
				parser_set_error(p, "Unexpected ')'");
				return -1;
			}
			if (parser_add_token(p, TOK_CLOSE, 0, 0) < 0)
				return -1;
			p->depth--;
			p->after_token = true;
			sep = false;
			i++;
			continue;
		}
		if (p->after_token && !sep) {
			parser_set_error(p, "Missing space between arguments");
			return -1;
		}
		sep = false;
		if (c == '(') {
			if (p->depth >= p->lim.depth_max) {
				parser_set_error(p, "Too deeply nested");
				return -1;
			}
			if (parser_add_token(p, TOK_OPEN, 0, 0) < 0)
				return -1;
			p->open[p->depth++] = p->ntoks - 1;
			p->after_token = false;
			i++;
			continue;
		}
		if (c == '"') {
			if (parser_read_quoted(p, s, len, &i) < 0)
				return -1;
		} else if (c == '{' ||
		           (c == '~' && i + 1 < len && s[i + 1] == '{')) {
			if (parser_read_literal(p, s, len, &i) < 0)
				return -1;
		} else if (parser_atom_char(c)) {
			if (parser_read_atom(p, s, len, &i) < 0)
				return -1;
		} else {
			parser_set_error(
			    p, c == '\0' ? "NUL in command"
			                 : "Invalid characters in command");
			return -1;
		}
		p->after_token = true;
	}
	return 0;
}

/* Build the tree from the token list into pool and fill cmd. */
static void
parser_build(struct imap_parser *p)
{
	size_t next = p->top_count, depth = 0;
	struct imap_arg *cur;
	size_t idx = 0;

	if (p->pool_cap < p->nargs || p->pool == NULL) {
		p->pool_cap = p->nargs < 16 ? 16 : p->nargs;
		free(p->pool);
		p->pool = xcalloc(p->pool_cap, sizeof(*p->pool));
	}
	cur = p->pool;
	for (size_t t = 0; t < p->ntoks; t++) {
		const struct parser_token *tok = &p->toks[t];
		struct imap_arg *a;

		if (tok->type == TOK_CLOSE) {
			depth--;
			cur = p->frames[depth].arr;
			idx = p->frames[depth].idx;
			continue;
		}
		a = &cur[idx++];
		memset(a, 0, sizeof(*a));
		switch (tok->type) {
		case TOK_ATOM:
		case TOK_STRING:
		case TOK_LITERAL:
		case TOK_NIL:
			a->type = tok->type == TOK_ATOM     ? IMAP_ARG_ATOM
			          : tok->type == TOK_STRING ? IMAP_ARG_STRING
			          : tok->type == TOK_NIL    ? IMAP_ARG_NIL
			                                    : IMAP_ARG_LITERAL;
			a->str = (const char *)p->data.data + tok->off;
			a->len = tok->len;
			a->literal8 = tok->literal8;
			break;
		case TOK_OPEN:
			a->type = IMAP_ARG_LIST;
			a->str = "";
			a->count = tok->count;
			a->list = tok->count > 0 ? p->pool + next : NULL;
			next += tok->count;
			p->frames[depth].arr = cur;
			p->frames[depth].idx = idx;
			depth++;
			cur = a->list;
			idx = 0;
			break;
		case TOK_CLOSE:
			break;
		}
	}
	memcpy(p->cmd.tag, p->tag, sizeof(p->cmd.tag));
	memcpy(p->cmd.name, p->name, sizeof(p->cmd.name));
	p->cmd.args = p->top_count > 0 ? p->pool : NULL;
	p->cmd.count = p->top_count;
	p->have_cmd = true;
}

/* "{digits+}" at the end of s: 1 (size in *n_r), 0 when there is none,
 * -1 when the size does not fit. */
static int
parser_trailing_nonsync(const uint8_t *s, size_t len, uint64_t *n_r)
{
	size_t plus, j;
	uint64_t n = 0;

	if (len < 4 || s[len - 1] != '}' || s[len - 2] != '+')
		return 0;
	plus = len - 2;
	j = plus;
	while (j > 0 && s[j - 1] >= '0' && s[j - 1] <= '9')
		j--;
	if (j == plus || j == 0 || s[j - 1] != '{')
		return 0;
	for (size_t k = j; k < plus; k++) {
		if (n > (UINT64_MAX - 9) / 10)
			return -1;
		n = n * 10 + (uint64_t)(s[k] - '0');
	}
	*n_r = n;
	return 1;
}

/* A line ended in an error (already in p->err): skip what follows. */
static enum imap_parse_result
parser_fail_line(struct imap_parser *p, const uint8_t *s, size_t len)
{
	uint64_t n = 0;
	size_t bound = parser_literal_bound(p);
	int r = parser_trailing_nonsync(s, len, &n);

	parser_clear_command(p);
	if (r < 0 || (r > 0 && n > bound)) {
		(void)snprintf(p->err, sizeof(p->err), "Literal too large");
		p->state = PS_FATAL;
		return IMAP_PARSE_FATAL;
	}
	if (r > 0) {
		p->state = PS_SKIP_LITERAL;
		p->lit_left = n;
		p->skip_literals = true;
		p->skip_bound = bound;
	} else {
		p->state = PS_LINE;
	}
	return IMAP_PARSE_BAD;
}

/* A literal was announced at the end of the line just read. */
static enum imap_parse_result
parser_start_literal(struct imap_parser *p)
{
	uint64_t n = p->lit_size;
	bool too_big =
	    n > parser_literal_bound(p) || n > p->lim.command_max - p->cmd_size;

	p->lit_pending = false;
	if (too_big) {
		if (!p->lit_sync) {
			parser_set_error(p, "Literal too large");
			parser_clear_command(p);
			p->state = PS_FATAL;
			return IMAP_PARSE_FATAL;
		}
		/* The client waits for "+": it will not send the bytes. */
		if (p->append_mode)
			parser_set_error(p, "[TOOBIG] Message too large");
		else
			parser_set_error(p, "Literal too large");
		parser_clear_command(p);
		p->state = PS_LINE;
		return IMAP_PARSE_BAD;
	}
	p->cmd_size += (size_t)n;
	p->lit_left = n;
	p->state = PS_LITERAL;
	p->toks[p->ntoks - 1].off = p->data.len;
	return p->lit_sync ? IMAP_PARSE_CONTINUE : IMAP_PARSE_NEED_MORE;
}

/* A complete line of a command is in p->line. */
static enum imap_parse_result
parser_line_done(struct imap_parser *p)
{
	const uint8_t *s = p->line.data;
	size_t len = p->line.len;

	if (len > 0 && s[len - 1] == '\r')
		len--;
	if (p->first_line && len == 0)
		return IMAP_PARSE_NEED_MORE; /* empty lines are ignored */
	if (len > p->lim.line_max) {
		if (p->first_line)
			(void)parser_read_tag_name(p, s, len, &(size_t){0});
		parser_set_error(p, "Line too long");
		return parser_fail_line(p, s, len);
	}
	if (len + 2 > p->lim.command_max - p->cmd_size) {
		if (p->first_line)
			(void)parser_read_tag_name(p, s, len, &(size_t){0});
		parser_set_error(p, "Command too long");
		return parser_fail_line(p, s, len);
	}
	p->cmd_size += len + 2;
	if (parser_tokenize(p, s, len) < 0)
		return parser_fail_line(p, s, len);
	if (p->lit_pending)
		return parser_start_literal(p);
	if (p->depth > 0) {
		parser_set_error(p, "Missing ')'");
		return parser_fail_line(p, s, len);
	}
	parser_build(p);
	return IMAP_PARSE_COMMAND;
}

/* Keep the last bytes of a skipped line. */
static void
parser_tail_add(struct imap_parser *p, const uint8_t *s, size_t n)
{
	if (n >= PARSER_TAIL_MAX) {
		memcpy(p->tail, s + n - PARSER_TAIL_MAX, PARSER_TAIL_MAX);
		p->tail_len = PARSER_TAIL_MAX;
		return;
	}
	if (p->tail_len + n > PARSER_TAIL_MAX) {
		size_t drop = p->tail_len + n - PARSER_TAIL_MAX;

		memmove(p->tail, p->tail + drop, p->tail_len - drop);
		p->tail_len -= drop;
	}
	memcpy(p->tail + p->tail_len, s, n);
	p->tail_len += n;
}

/* The current line is over line_max: answer now, skip the rest. */
static enum imap_parse_result
parser_line_overflow(struct imap_parser *p, bool line_mode)
{
	const uint8_t *s = p->line.data;
	size_t len = p->line.len, taglen = 0;

	if (!line_mode && p->first_line) {
		while (taglen < len && parser_tag_char(s[taglen]))
			taglen++;
		if (taglen > 0 && taglen <= IMAP_TAG_MAX && taglen < len &&
		    s[taglen] == ' ') {
			memcpy(p->tag, s, taglen);
			p->tag[taglen] = '\0';
			p->have_tag = true;
		}
	}
	parser_set_error(p, "Line too long");
	p->skip_bound = parser_literal_bound(p);
	p->skip_literals = !line_mode;
	p->tail_len = 0;
	parser_tail_add(p, s, len);
	buf_reset(&p->line);
	parser_clear_command(p);
	p->state = PS_SKIP_LINE;
	return IMAP_PARSE_BAD;
}

/* Skip states, shared by both modes. Returns NEED_MORE to go on, or
 * FATAL. */
static enum imap_parse_result
parser_skip(struct imap_parser *p, const uint8_t *data, size_t len, size_t *i)
{
	const uint8_t *lf;
	size_t n;
	uint64_t lit = 0;
	int r;

	if (p->state == PS_SKIP_LITERAL) {
		n = len - *i;
		if ((uint64_t)n > p->lit_left)
			n = (size_t)p->lit_left;
		*i += n;
		p->lit_left -= n;
		if (p->lit_left == 0) {
			p->state = PS_SKIP_LINE;
			p->tail_len = 0;
		}
		return IMAP_PARSE_NEED_MORE;
	}
	lf = memchr(data + *i, '\n', len - *i);
	n = lf != NULL ? (size_t)(lf - (data + *i)) : len - *i;
	parser_tail_add(p, data + *i, n);
	*i += n;
	if (lf == NULL)
		return IMAP_PARSE_NEED_MORE;
	(*i)++;
	n = p->tail_len;
	if (n > 0 && p->tail[n - 1] == '\r')
		n--;
	r = p->skip_literals ? parser_trailing_nonsync(p->tail, n, &lit) : 0;
	p->tail_len = 0;
	if (r < 0 || (r > 0 && lit > p->skip_bound)) {
		(void)snprintf(p->err, sizeof(p->err), "Literal too large");
		p->state = PS_FATAL;
		return IMAP_PARSE_FATAL;
	}
	if (r > 0) {
		p->state = PS_SKIP_LITERAL;
		p->lit_left = lit;
	} else {
		p->state = PS_LINE;
	}
	return IMAP_PARSE_NEED_MORE;
}

/* Bytes of the literal being read. */
static enum imap_parse_result
parser_literal(struct imap_parser *p, const uint8_t *data, size_t len,
               size_t *i)
{
	size_t n = len - *i;
	struct parser_token *tok = &p->toks[p->ntoks - 1];
	uint64_t left;

	if ((uint64_t)n > p->lit_left)
		n = (size_t)p->lit_left;
	if (!p->lit8 && n > 0 && memchr(data + *i, 0, n) != NULL) {
		parser_set_error(p, "NUL in literal");
		goto fail;
	}
	if (buf_append(&p->data, data + *i, n) < 0) {
		parser_set_error(p, "Command too long");
		goto fail;
	}
	*i += n;
	p->lit_left -= n;
	if (p->lit_left > 0)
		return IMAP_PARSE_NEED_MORE;
	if (buf_append_byte(&p->data, 0) < 0) {
		parser_set_error(p, "Command too long");
		goto fail;
	}
	tok->len = p->data.len - tok->off - 1;
	p->after_token = true;
	p->state = PS_LINE;
	return IMAP_PARSE_NEED_MORE;
fail:
	left = p->lit_left;
	p->skip_bound = parser_literal_bound(p);
	p->skip_literals = true;
	parser_clear_command(p);
	p->lit_left = left;
	p->state = PS_SKIP_LITERAL;
	return IMAP_PARSE_BAD;
}

enum imap_parse_result
imap_parser_feed(struct imap_parser *p, const uint8_t *data, size_t len,
                 size_t *consumed_r)
{
	enum imap_parse_result r;
	const uint8_t *lf;
	size_t i = 0, n;

	parser_begin(p);
	for (;;) {
		if (p->state == PS_FATAL) {
			*consumed_r = i;
			return IMAP_PARSE_FATAL;
		}
		if (i == len && !(p->state == PS_LITERAL && p->lit_left == 0)) {
			*consumed_r = i;
			return IMAP_PARSE_NEED_MORE;
		}
		switch (p->state) {
		case PS_LINE:
			lf = memchr(data + i, '\n', len - i);
			n = lf != NULL ? (size_t)(lf - (data + i)) : len - i;
			if (n > p->line.max - p->line.len) {
				/* Keep what fits for the tail and the tag. */
				size_t fit = p->line.max - p->line.len;

				(void)buf_append(&p->line, data + i, fit);
				i += fit;
				*consumed_r = i;
				return parser_line_overflow(p, false);
			}
			(void)buf_append(&p->line, data + i, n);
			i += n;
			if (lf == NULL)
				break;
			i++;
			r = parser_line_done(p);
			buf_reset(&p->line);
			if (r != IMAP_PARSE_NEED_MORE) {
				*consumed_r = i;
				return r;
			}
			break;
		case PS_LITERAL:
			r = parser_literal(p, data, len, &i);
			if (r != IMAP_PARSE_NEED_MORE) {
				*consumed_r = i;
				return r;
			}
			break;
		case PS_SKIP_LINE:
		case PS_SKIP_LITERAL:
			r = parser_skip(p, data, len, &i);
			if (r != IMAP_PARSE_NEED_MORE) {
				*consumed_r = i;
				return r;
			}
			break;
		case PS_FATAL:
			break;
		}
	}
}

enum imap_parse_result
imap_parser_feed_line(struct imap_parser *p, const uint8_t *data, size_t len,
                      size_t *consumed_r)
{
	enum imap_parse_result r;
	const uint8_t *lf, *s;
	size_t i = 0, n;

	parser_begin(p);
	if (p->state == PS_LITERAL) {
		/* A command was cut short by a switch to line mode. */
		parser_clear_command(p);
		buf_reset(&p->line);
		p->state = PS_LINE;
	}
	for (;;) {
		if (p->state == PS_FATAL) {
			*consumed_r = i;
			return IMAP_PARSE_FATAL;
		}
		if (i == len) {
			*consumed_r = i;
			return IMAP_PARSE_NEED_MORE;
		}
		if (p->state != PS_LINE) {
			r = parser_skip(p, data, len, &i);
			if (r != IMAP_PARSE_NEED_MORE) {
				*consumed_r = i;
				return r;
			}
			continue;
		}
		lf = memchr(data + i, '\n', len - i);
		n = lf != NULL ? (size_t)(lf - (data + i)) : len - i;
		if (n > p->line.max - p->line.len) {
			size_t fit = p->line.max - p->line.len;

			(void)buf_append(&p->line, data + i, fit);
			i += fit;
			*consumed_r = i;
			return parser_line_overflow(p, true);
		}
		(void)buf_append(&p->line, data + i, n);
		i += n;
		if (lf == NULL)
			continue;
		i++;
		*consumed_r = i;
		s = p->line.data;
		n = p->line.len;
		if (n > 0 && s[n - 1] == '\r')
			n--;
		if (n > p->lim.line_max ||
		    (n > 0 && (memchr(s, '\0', n) != NULL ||
		               memchr(s, '\r', n) != NULL))) {
			parser_set_error(p, n > p->lim.line_max
			                        ? "Line too long"
			                        : "Invalid characters in line");
			(void)snprintf(p->err_tag, sizeof(p->err_tag), "*");
			buf_reset(&p->line);
			return IMAP_PARSE_BAD;
		}
		p->line.len = n;
		p->line_str = buf_cstr(&p->line);
		if (p->line_str == NULL)
			p->line_str = "";
		p->line_len = n;
		p->have_line = true;
		return IMAP_PARSE_COMMAND;
	}
}
