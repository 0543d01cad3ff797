/* Reading tern.conf: bytes → lines → words → values stored where the settings
 * table (config_table.c) says, with includes, defaults and whole-config
 * checks; and freeing the result.
 * SECURITY: the file is trusted but may be wrong or binary junk. Every line,
 * word count, value, file size, file count, include depth and block depth is
 * bounded; bytes are checked (no NUL, no control characters, valid UTF-8)
 * before they are split; a mistake is reported, never guessed around. */
#include "core/config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/utf8.h"
#include "core/xmalloc.h"

/* One value, once made absolute; keeps every canonical line short. */
#define CONFIG_VALUE_MAX 1024
/* Files read for one config, includes counted: without it a few files that
 * each include the next many times would multiply the work. */
#define CONFIG_FILES_MAX 256

/* A file being read. */
struct src {
	const char *name; /* for messages; owned by the parser */
	const char *dir;  /* relative paths and includes start here */
	const struct src *parent;
	int depth;          /* includes above this file */
	size_t entry_depth; /* block depth when the file started */
	bool has_id;
	dev_t dev;
	ino_t ino;
};

/* Where a setting was written, for "already set" and "required". */
struct seen {
	const char *file;
	int line;
};

/* The top level or one open block. */
struct scope {
	const struct config_block *block;
	void *obj;
	struct seen *seen; /* one per setting of the block */
	char *prefix;      /* "listener imaps: " for messages */
	const char *file;
	int line;
};

struct parser {
	struct scope scopes[CONFIG_BLOCK_DEPTH + 1];
	size_t depth; /* scopes[0] is the top level */
	char **names; /* file names and directories, freed at the end */
	size_t nnames;
	size_t nfiles;
	char *error;
};

struct word {
	const char *s;
	bool quoted;
};

/* One tokenized line. Unquoting never lengthens a word and every word takes
 * at least one separator or quote, so the words fit in the line's length
 * plus one terminator. */
struct line {
	struct word words[CONFIG_TOKENS_MAX];
	size_t n;
	char text[CONFIG_LINE_MAX + 1];
};

static int parse_text(struct parser *p, struct src *f, const char *text,
                      size_t len);

static int __attribute__((format(printf, 4, 5)))
fail(struct parser *p, const char *file, int line, const char *fmt, ...)
{
	va_list ap;
	char *msg;

	va_start(ap, fmt);
	msg = xvasprintf(fmt, ap);
	va_end(ap);
	if (p->error == NULL)
		p->error = line > 0 ? xasprintf("%s:%d: %s", file, line, msg)
		                    : xasprintf("%s: %s", file, msg);
	free(msg);
	return -1;
}

/* fail() for a value: "PREFIXNAME: WHY"; frees why. */
static int
fail_value(struct parser *p, const char *file, int line, const char *prefix,
           const char *name, char *why)
{
	fail(p, file, line, "%s%s: %s", prefix, name, why);
	free(why);
	return -1;
}

static const char *
keep(struct parser *p, char *s)
{
	p->names = xreallocarray(p->names, p->nnames + 1, sizeof(*p->names));
	p->names[p->nnames++] = s;
	return s;
}

static char *
path_join(const char *dir, const char *name)
{
	size_t len = strlen(dir);

	if (len > 0 && dir[len - 1] == '/')
		return xasprintf("%s%s", dir, name);
	return xasprintf("%s/%s", dir, name);
}

static char *
path_dir(const char *path)
{
	const char *slash = strrchr(path, '/');

	if (slash == NULL)
		return xstrdup(".");
	if (slash == path)
		return xstrdup("/");
	return xstrndup(path, (size_t)(slash - path));
}

/* Raw field access: the table says where and how wide each field is. Pointer
 * fields go through memcpy so that `struct foo *` is never read as void *. */
static void *
field(const void *obj, size_t offset)
{
	return (char *)obj + offset;
}

static void *
get_ptr(const void *obj, size_t offset)
{
	void *ptr;

	memcpy(&ptr, field(obj, offset), sizeof(ptr));
	return ptr;
}

static void
put_ptr(void *obj, size_t offset, void *ptr)
{
	memcpy(field(obj, offset), &ptr, sizeof(ptr));
}

/* INT and ENUM fields are 1, 2, 4 or 8 bytes wide (a unit test holds the
 * table to that); BOOL is a bool, one byte. */
static void
put_uint(void *obj, const struct config_setting *s, uint64_t v)
{
	uint8_t u8 = (uint8_t)v;
	uint16_t u16 = (uint16_t)v;
	uint32_t u32 = (uint32_t)v;
	const void *from = s->size == 1   ? (const void *)&u8
	                   : s->size == 2 ? (const void *)&u16
	                   : s->size == 4 ? (const void *)&u32
	                                  : (const void *)&v;

	memcpy(field(obj, s->offset), from, s->size);
}

/* Set *why_r and fail: what is wrong with a value, without its name. */
static int __attribute__((format(printf, 2, 3)))
bad(char **why_r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	*why_r = xvasprintf(fmt, ap);
	va_end(ap);
	return -1;
}

static void
put_string(void *obj, size_t offset, char *value)
{
	free(get_ptr(obj, offset));
	put_ptr(obj, offset, value);
}

static uint64_t
setting_max(const struct config_setting *s)
{
	uint64_t storage = s->type == CONFIG_INT && s->size < 8
	                       ? (1ULL << (8 * s->size)) - 1
	                       : UINT64_MAX;

	return s->max != 0 && s->max < storage ? s->max : storage;
}

static char *
choices_list(const char *const *choices)
{
	struct buf b;
	char *r;

	buf_init(&b, 0);
	for (size_t i = 0; choices[i] != NULL; i++) {
		if ((i > 0 && buf_append_str(&b, ", ") < 0) ||
		    buf_append_str(&b, choices[i]) < 0)
			abort();
	}
	r = xstrdup(buf_cstr(&b));
	buf_free(&b);
	return r;
}

/* The length of s as one word of the canonical text. */
static size_t
quoted_len(const char *s)
{
	size_t n = strlen(s);

	if (!config_needs_quotes(s))
		return n;
	for (const char *p = s; *p != '\0'; p++)
		n += *p == '"' || *p == '\\';
	return n + 2;
}

static int
check_range(const struct config_setting *s, const char *text, uint64_t v,
            char **why_r)
{
	char *lo, *hi;

	if (v >= s->min && v <= setting_max(s))
		return 0;
	lo = config_format_number(s, s->min);
	hi = config_format_number(s, setting_max(s));
	*why_r = xasprintf("%s is out of range %s..%s", text, lo, hi);
	free(lo);
	free(hi);
	return -1;
}

static int
set_number(const struct config_setting *s, void *obj, const char *v,
           char **why_r)
{
	uint64_t n;

	switch (s->type) {
	case CONFIG_INT:
		if (config_parse_uint(v, &n) < 0)
			return bad(why_r, "\"%s\" is not a number", v);
		break;
	case CONFIG_SIZE:
		if (config_parse_size(v, &n) < 0)
			return bad(why_r,
			           "\"%s\" is not a size (a number "
			           "and k, M, G or T)",
			           v);
		break;
	default:
		if (config_parse_duration(v, &n) < 0)
			return bad(why_r,
			           "\"%s\" is not a duration (a number "
			           "and ms, s, m, h or d)",
			           v);
		break;
	}
	if (check_range(s, v, n, why_r) < 0)
		return -1;
	put_uint(obj, s, n);
	return 0;
}

static int
set_enum(const struct config_setting *s, void *obj, const char *v, char **why_r)
{
	char *all;

	for (size_t i = 0; s->choices[i] != NULL; i++) {
		if (strcmp(v, s->choices[i]) != 0)
			continue;
		if (s->flags & CONFIG_F_ENUM_NAME)
			put_string(obj, s->offset, xstrdup(v));
		else
			put_uint(obj, s, i);
		return 0;
	}
	all = choices_list(s->choices);
	*why_r = xasprintf("\"%s\" is not one of %s", v, all);
	free(all);
	return -1;
}

static int
set_string(const struct config_setting *s, void *obj, const char *dir,
           const char *v, char **why_r)
{
	char *value;

	if (*v == '\0' && !(s->flags & CONFIG_F_EMPTY_OK))
		return bad(why_r, "must not be empty");
	if (*v != '\0' && s->check != NULL && s->check(v, why_r) < 0)
		return -1;
	if (s->type == CONFIG_PATH && *v != '\0' && *v != '/')
		value = path_join(dir, v);
	else
		value = xstrdup(v);
	if (strlen(value) > CONFIG_VALUE_MAX) {
		free(value);
		return bad(why_r, "longer than %d bytes once made absolute",
		           CONFIG_VALUE_MAX);
	}
	put_string(obj, s->offset, value);
	return 0;
}

static void
free_list(void *obj, const struct config_setting *s)
{
	char **items = get_ptr(obj, s->offset);
	size_t *n = field(obj, s->count_offset);

	for (size_t i = 0; i < *n; i++)
		free(items[i]);
	free(items);
	put_ptr(obj, s->offset, NULL);
	*n = 0;
}

static int
set_list(const struct config_setting *s, void *obj, const char *const *values,
         size_t n, char **why_r)
{
	size_t total = 0;
	char **items;

	/* `name ""` is the empty list, where the setting allows it. */
	if (n == 1 && *values[0] == '\0' && (s->flags & CONFIG_F_EMPTY_OK)) {
		free_list(obj, s);
		return 0;
	}
	for (size_t i = 0; i < n; i++) {
		if (*values[i] == '\0')
			return bad(why_r, "a value must not be empty");
		if (s->check != NULL && s->check(values[i], why_r) < 0)
			return -1;
		total += quoted_len(values[i]) + 1;
	}
	/* Room for the name and indentation in the canonical text. */
	if (total > CONFIG_LINE_MAX - 128)
		return bad(why_r, "too many values");
	free_list(obj, s);
	items = xcalloc(n, sizeof(*items));
	for (size_t i = 0; i < n; i++)
		items[i] = xstrdup(values[i]);
	put_ptr(obj, s->offset, items);
	*(size_t *)field(obj, s->count_offset) = n;
	return 0;
}

/* Parse the words after a setting's name into its field. *why_r says what
 * is wrong, without the name (the caller adds it). */
static int
set_value(const struct config_setting *s, void *obj, const char *dir,
          const char *const *values, size_t n, char **why_r)
{
	bool b;

	if (n == 0)
		return bad(why_r, "needs a value");
	for (size_t i = 0; i < n; i++) {
		if (strlen(values[i]) > CONFIG_VALUE_MAX)
			return bad(why_r, "value longer than %d bytes",
			           CONFIG_VALUE_MAX);
	}
	if (s->type == CONFIG_LIST)
		return set_list(s, obj, values, n, why_r);
	if (n > 1)
		return bad(why_r,
		           "takes one value, not %zu (quote a value "
		           "that has spaces)",
		           n);
	switch (s->type) {
	case CONFIG_STRING:
	case CONFIG_PATH:
		return set_string(s, obj, dir, values[0], why_r);
	case CONFIG_BOOL:
		if (config_parse_bool(values[0], &b) < 0)
			return bad(why_r, "\"%s\" is not yes or no", values[0]);
		put_uint(obj, s, b);
		return 0;
	case CONFIG_INT:
	case CONFIG_SIZE:
	case CONFIG_DURATION:
		return set_number(s, obj, values[0], why_r);
	case CONFIG_ENUM:
		return set_enum(s, obj, values[0], why_r);
	default:
		abort(); /* blocks are not values */
	}
}

static void free_object(const struct config_block *b, void *obj);

static void
free_value(const struct config_setting *s, void *obj)
{
	char *elems;
	size_t *n;

	switch (s->type) {
	case CONFIG_STRING:
	case CONFIG_PATH:
		put_string(obj, s->offset, NULL);
		break;
	case CONFIG_ENUM:
		if (s->flags & CONFIG_F_ENUM_NAME)
			put_string(obj, s->offset, NULL);
		break;
	case CONFIG_LIST:
		free_list(obj, s);
		break;
	case CONFIG_BLOCK:
		elems = get_ptr(obj, s->offset);
		n = field(obj, s->count_offset);
		for (size_t i = 0; i < *n; i++)
			free_object(s->block, elems + i * s->block->elem_size);
		free(elems);
		put_ptr(obj, s->offset, NULL);
		*n = 0;
		break;
	default:
		break;
	}
}

static void
free_object(const struct config_block *b, void *obj)
{
	for (size_t i = 0; i < b->nsettings; i++)
		free_value(&b->settings[i], obj);
	if (b != &config_root) {
		free_value(&b->label, obj);
		put_string(obj, b->file_offset, NULL);
	}
}

void
config_free(struct config **cfg)
{
	if (*cfg == NULL)
		return;
	free_object(&config_root, *cfg);
	free((*cfg)->path);
	xfree(cfg);
}

/* Text only: tab is the one control character allowed (C1 included, as
 * they are as invisible as C0). */
static int
check_bytes(struct parser *p, const struct src *f, int lineno, const uint8_t *s,
            size_t len)
{
	size_t n;

	for (size_t i = 0; i < len; i += n) {
		if (s[i] == '\0')
			return fail(p, f->name, lineno, "NUL byte");
		if ((s[i] < 0x20 && s[i] != '\t') || s[i] == 0x7f)
			return fail(p, f->name, lineno,
			            "control character 0x%02x", s[i]);
		if ((n = utf8_seq_len(s + i, len - i)) == 0)
			return fail(p, f->name, lineno, "invalid UTF-8");
		if (n == 2 && s[i] == 0xc2 && s[i + 1] < 0xa0)
			return fail(p, f->name, lineno,
			            "control character U+%04X",
			            (unsigned)s[i + 1]);
	}
	return 0;
}

static bool
is_space(char c)
{
	return c == ' ' || c == '\t';
}

/* The quoted word at s[*i] (its opening quote), unescaped into out + *o;
 * NULL, or what is wrong. */
static const char *
scan_quoted(const char *s, size_t len, size_t *i, char *out, size_t *o)
{
	for (++*i; *i < len && s[*i] != '"'; ++*i) {
		if (s[*i] == '\\') {
			if (*i + 1 == len ||
			    (s[*i + 1] != '"' && s[*i + 1] != '\\'))
				return "in quotes, \\ must be followed by \" "
				       "or \\";
			++*i;
		}
		out[(*o)++] = s[*i];
	}
	if (*i == len)
		return "unterminated quoted string";
	++*i;
	if (*i < len && !is_space(s[*i]) && s[*i] != '#')
		return "a space must follow a closing quote";
	return NULL;
}

/* The unquoted word at s[*i], copied to out + *o; NULL, or what is wrong. */
static const char *
scan_bare(const char *s, size_t len, size_t *i, char *out, size_t *o)
{
	for (; *i < len && !is_space(s[*i]) && s[*i] != '#'; ++*i) {
		if (s[*i] == '"')
			return "a quote inside a word (quote the whole value)";
		out[(*o)++] = s[*i];
	}
	return NULL;
}

/* Split a checked line into words: quoted words lose their quotes and
 * escapes, `#` outside quotes ends the line. */
static int
tokenize(struct parser *p, const struct src *f, int lineno, const char *s,
         size_t len, struct line *ln)
{
	size_t i = 0, o = 0;
	const char *why;

	for (ln->n = 0; i < len && s[i] != '#';) {
		if (is_space(s[i])) {
			i++;
			continue;
		}
		if (ln->n == CONFIG_TOKENS_MAX)
			return fail(p, f->name, lineno,
			            "too many words on one line (over %d)",
			            CONFIG_TOKENS_MAX);
		ln->words[ln->n].s = ln->text + o;
		ln->words[ln->n++].quoted = s[i] == '"';
		why = s[i] == '"' ? scan_quoted(s, len, &i, ln->text, &o)
		                  : scan_bare(s, len, &i, ln->text, &o);
		if (why != NULL)
			return fail(p, f->name, lineno, "%s", why);
		ln->text[o++] = '\0';
	}
	return 0;
}

static bool
is_bare(const struct word *w, const char *s)
{
	return !w->quoted && strcmp(w->s, s) == 0;
}

static struct scope *
scope_top(struct parser *p)
{
	return &p->scopes[p->depth];
}

static int
find_setting(const struct config_block *b, const char *name)
{
	for (size_t i = 0; i < b->nsettings; i++) {
		if (strcmp(b->settings[i].name, name) == 0)
			return (int)i;
	}
	return -1;
}

static void
scope_push(struct parser *p, const struct config_block *b, void *obj,
           char *prefix, const char *file, int line)
{
	struct scope *sc = &p->scopes[++p->depth];

	sc->block = b;
	sc->obj = obj;
	sc->seen = xcalloc(b->nsettings, sizeof(*sc->seen));
	sc->prefix = prefix;
	sc->file = file;
	sc->line = line;
}

static void
scope_pop(struct parser *p)
{
	struct scope *sc = scope_top(p);

	xfree(&sc->seen);
	xfree(&sc->prefix);
	if (p->depth > 0)
		p->depth--;
}

/* Fill what the file left out, then run the block's own checks. */
static int
scope_finish(struct parser *p)
{
	struct scope *sc = scope_top(p);
	const struct config_block *b = sc->block;
	const char *file = sc->file;
	int line = sc->line;
	char *why = NULL, *text;
	const char *value;

	for (size_t i = 0; i < b->nsettings; i++) {
		const struct config_setting *s = &b->settings[i];

		if (sc->seen[i].line > 0 || s->type == CONFIG_BLOCK)
			continue;
		if (s->flags & CONFIG_F_REQUIRED)
			return fail(p, file, line, "%s%s is required",
			            sc->prefix, s->name);
		text =
		    s->def != NULL ? xstrdup(s->def) : s->default_fn(sc->obj);
		value = text;
		if (set_value(s, sc->obj, "/", &value, 1, &why) < 0) {
			fail(p, file, line,
			     "%s%s: the default is not valid: %s", sc->prefix,
			     s->name, why);
			free(why);
			free(text);
			return -1;
		}
		free(text);
	}
	if (b->finish != NULL && b->finish(sc->obj, &file, &line, &why) < 0) {
		fail(p, file, line, "%s%s", sc->prefix, why);
		free(why);
		return -1;
	}
	return 0;
}

static void *
block_add(void *parent, const struct config_setting *s)
{
	size_t *n = field(parent, s->count_offset);
	char *elems = get_ptr(parent, s->offset);
	char *elem;

	elems = xreallocarray(elems, *n + 1, s->block->elem_size);
	put_ptr(parent, s->offset, elems);
	elem = elems + *n * s->block->elem_size;
	memset(elem, 0, s->block->elem_size);
	(*n)++;
	return elem;
}

static int
open_block(struct parser *p, const struct src *f, int lineno,
           const struct line *ln)
{
	struct scope *sc = scope_top(p);
	const struct config_setting *s;
	const struct config_block *b;
	char *why = NULL;
	const char *label;
	void *elem;
	int i;

	if (ln->n == 1)
		return fail(p, f->name, lineno, "\"{\" without a block name");
	if ((i = find_setting(sc->block, ln->words[0].s)) < 0)
		return fail(p, f->name, lineno, "%sunknown block \"%s\"",
		            sc->prefix, ln->words[0].s);
	s = &sc->block->settings[i];
	if (s->type != CONFIG_BLOCK)
		return fail(p, f->name, lineno,
		            "%s%s is a setting, not a block", sc->prefix,
		            s->name);
	b = s->block;
	if (p->depth == CONFIG_BLOCK_DEPTH)
		return fail(p, f->name, lineno,
		            "blocks nested too deeply (over %d)",
		            CONFIG_BLOCK_DEPTH);
	if (ln->n != 3)
		return fail(p, f->name, lineno,
		            "%s%s: takes one %s before \"{\", not %zu",
		            sc->prefix, s->name, b->label.name, ln->n - 2);
	elem = block_add(sc->obj, s);
	put_string(elem, b->file_offset, xstrdup(f->name));
	*(int *)field(elem, b->line_offset) = lineno;
	label = ln->words[1].s;
	if (set_value(&b->label, elem, f->dir, &label, 1, &why) < 0)
		return fail_value(p, f->name, lineno, sc->prefix, s->name, why);
	scope_push(p, b, elem,
	           xasprintf("%s%s %s: ", sc->prefix, s->name, label), f->name,
	           lineno);
	return 0;
}

static int
close_block(struct parser *p, const struct src *f, int lineno)
{
	if (p->depth == f->entry_depth)
		return fail(p, f->name, lineno, "\"}\" without an open block");
	if (scope_finish(p) < 0)
		return -1;
	scope_pop(p);
	return 0;
}

static int
set_setting(struct parser *p, const struct src *f, int lineno,
            const struct line *ln)
{
	struct scope *sc = scope_top(p);
	const struct config_setting *s;
	const char *values[CONFIG_TOKENS_MAX];
	const struct seen *prev;
	char *why = NULL;
	int i;

	if ((i = find_setting(sc->block, ln->words[0].s)) < 0)
		return fail(p, f->name, lineno, "%sunknown setting \"%s\"",
		            sc->prefix, ln->words[0].s);
	s = &sc->block->settings[i];
	prev = &sc->seen[i];
	if (s->type == CONFIG_BLOCK)
		return fail(p, f->name, lineno,
		            "%s%s is a block: %s %s { ... }", sc->prefix,
		            s->name, s->name, s->block->label.name);
	if (prev->line > 0 && strcmp(prev->file, f->name) == 0)
		return fail(p, f->name, lineno, "%s%s: already set at line %d",
		            sc->prefix, s->name, prev->line);
	if (prev->line > 0)
		return fail(p, f->name, lineno, "%s%s: already set at %s:%d",
		            sc->prefix, s->name, prev->file, prev->line);
	for (size_t k = 1; k < ln->n; k++)
		values[k - 1] = ln->words[k].s;
	if (set_value(s, sc->obj, f->dir, values, ln->n - 1, &why) < 0)
		return fail_value(p, f->name, lineno, sc->prefix, s->name, why);
	sc->seen[i].file = f->name;
	sc->seen[i].line = lineno;
	return 0;
}

/* A whole file, checked for size; `why` is errno's text or the limit. */
static int
read_file(const char *path, struct buf *b, struct stat *st, char **why_r)
{
	char chunk[65536];
	ssize_t n = 0;
	int fd, rc = 0;

	/* O_NONBLOCK: a FIFO in place of a config file must not hang us. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return bad(why_r, "%s", strerror(errno));
	buf_init(b, CONFIG_FILE_MAX);
	if (fstat(fd, st) < 0)
		rc = bad(why_r, "%s", strerror(errno));
	else if (!S_ISREG(st->st_mode))
		rc = bad(why_r, "not a regular file");
	while (rc == 0 && (n = read(fd, chunk, sizeof(chunk))) != 0) {
		if (n < 0 && errno != EINTR)
			rc = bad(why_r, "%s", strerror(errno));
		else if (n > 0 && buf_append(b, chunk, (size_t)n) < 0)
			rc =
			    bad(why_r, "larger than %d bytes", CONFIG_FILE_MAX);
	}
	close(fd);
	if (rc < 0)
		buf_free(b);
	return rc;
}

static bool
in_chain(const struct src *f, const struct stat *st)
{
	for (; f != NULL; f = f->parent) {
		if (f->has_id && f->dev == st->st_dev && f->ino == st->st_ino)
			return true;
	}
	return false;
}

static int
include(struct parser *p, const struct src *f, int lineno,
        const struct line *ln)
{
	const char *arg = ln->n == 2 ? ln->words[1].s : "";
	struct src child = {.parent = f, .depth = f->depth + 1};
	char *why = NULL;
	struct stat st;
	struct buf b;
	int rc;

	if (ln->n != 2 || *arg == '\0')
		return fail(p, f->name, lineno, "include takes one file name");
	if (f->depth >= CONFIG_INCLUDE_DEPTH)
		return fail(p, f->name, lineno,
		            "include \"%s\": nested too deeply (over %d)", arg,
		            CONFIG_INCLUDE_DEPTH);
	if (p->nfiles >= CONFIG_FILES_MAX)
		return fail(p, f->name, lineno,
		            "include \"%s\": too many files (over %d)", arg,
		            CONFIG_FILES_MAX);
	child.name =
	    keep(p, *arg == '/' ? xstrdup(arg) : path_join(f->dir, arg));
	if (read_file(child.name, &b, &st, &why) < 0) {
		fail(p, f->name, lineno, "include \"%s\": %s", arg, why);
		free(why);
		return -1;
	}
	if (in_chain(f, &st)) {
		buf_free(&b);
		return fail(p, f->name, lineno,
		            "include \"%s\": a cycle (%s is already being "
		            "read)",
		            arg, child.name);
	}
	p->nfiles++;
	child.dir = keep(p, path_dir(child.name));
	child.entry_depth = p->depth;
	child.has_id = true;
	child.dev = st.st_dev;
	child.ino = st.st_ino;
	rc = parse_text(p, &child, (const char *)b.data, b.len);
	buf_free(&b);
	return rc;
}

static int
do_line(struct parser *p, struct src *f, int lineno, const struct line *ln)
{
	const struct word *w = ln->words;
	bool opens;

	if (ln->n == 0)
		return 0;
	opens = is_bare(&w[ln->n - 1], "{");
	for (size_t i = 0; i < ln->n - opens; i++) {
		if (is_bare(&w[i], "{"))
			return fail(p, f->name, lineno,
			            "\"{\" must end the line");
		if (is_bare(&w[i], "}") && ln->n > 1)
			return fail(p, f->name, lineno,
			            "\"}\" must be alone on its line");
	}
	if (opens)
		return open_block(p, f, lineno, ln);
	if (is_bare(&w[0], "}"))
		return close_block(p, f, lineno);
	if (is_bare(&w[0], "include"))
		return include(p, f, lineno, ln);
	return set_setting(p, f, lineno, ln);
}

static int
parse_text(struct parser *p, struct src *f, const char *text, size_t len)
{
	struct line *ln = xmalloc(sizeof(*ln));
	size_t pos = 0, n;
	const char *nl;
	int lineno = 0, rc = 0;

	while (rc == 0 && pos < len) {
		nl = memchr(text + pos, '\n', len - pos);
		n = (nl != NULL ? (size_t)(nl - text) : len) - pos;
		lineno++;
		/* A CR just before LF is a line written on Windows. */
		if (nl != NULL && n > 0 && text[pos + n - 1] == '\r')
			n--;
		if (n > CONFIG_LINE_MAX)
			rc = fail(p, f->name, lineno,
			          "line too long (over %d bytes)",
			          CONFIG_LINE_MAX);
		else if (check_bytes(p, f, lineno, (const uint8_t *)text + pos,
		                     n) < 0 ||
		         tokenize(p, f, lineno, text + pos, n, ln) < 0)
			rc = -1;
		else
			rc = do_line(p, f, lineno, ln);
		pos = nl != NULL ? (size_t)(nl - text) + 1 : len;
	}
	free(ln);
	if (rc == 0 && p->depth > f->entry_depth)
		rc = fail(p, f->name, lineno,
		          "block \"%s\" opened at line %d is not closed",
		          scope_top(p)->block->name, scope_top(p)->line);
	return rc;
}

static struct config *
parse_root(const char *name, const char *dir, const char *text, size_t len,
           const struct stat *st, char **error_r)
{
	struct parser p = {0};
	struct config *cfg = xcalloc(1, sizeof(*cfg));
	struct src root = {0};
	int rc = -1;

	cfg->path = xstrdup(name);
	root.name = keep(&p, xstrdup(name));
	root.dir = keep(&p, xstrdup(dir));
	root.has_id = st != NULL;
	root.dev = st != NULL ? st->st_dev : 0;
	root.ino = st != NULL ? st->st_ino : 0;
	p.nfiles = 1;
	p.scopes[0] = (struct scope){
	    .block = &config_root,
	    .obj = cfg,
	    .seen = xcalloc(config_root.nsettings, sizeof(struct seen)),
	    .prefix = xstrdup(""),
	    .file = root.name,
	};
	if (len > CONFIG_FILE_MAX)
		fail(&p, name, 0, "larger than %d bytes", CONFIG_FILE_MAX);
	else if (parse_text(&p, &root, text, len) == 0)
		rc = scope_finish(&p);
	for (;;) {
		bool last = p.depth == 0;

		scope_pop(&p);
		if (last)
			break;
	}
	for (size_t i = 0; i < p.nnames; i++)
		free(p.names[i]);
	free(p.names);
	if (rc < 0) {
		config_free(&cfg);
		*error_r = p.error;
		return NULL;
	}
	return cfg;
}

/* cwd-relative to absolute, so no relative path reaches a config. */
static char *
absolute_path(const char *path)
{
	char *cwd, *r;

	if (*path == '/')
		return xstrdup(path);
	while (strncmp(path, "./", 2) == 0)
		path += 2;
	if ((cwd = getcwd(NULL, 0)) == NULL)
		return xstrdup(path); /* messages still name the file */
	r = strcmp(path, ".") == 0 || *path == '\0' ? xstrdup(cwd)
	                                            : path_join(cwd, path);
	free(cwd);
	return r;
}

struct config *
config_parse(const char *name, const char *base_dir, const char *text,
             size_t len, char **error_r)
{
	char *dir = absolute_path(base_dir);
	struct config *cfg = parse_root(name, dir, text, len, NULL, error_r);

	free(dir);
	return cfg;
}

struct config *
config_load(const char *path, char **error_r)
{
	char *abs = absolute_path(path), *dir, *why = NULL;
	struct config *cfg;
	struct stat st;
	struct buf b;

	if (read_file(abs, &b, &st, &why) < 0) {
		*error_r = xasprintf("%s: cannot open: %s", abs, why);
		free(why);
		free(abs);
		return NULL;
	}
	dir = path_dir(abs);
	cfg = parse_root(abs, dir, (const char *)b.data, b.len, &st, error_r);
	buf_free(&b);
	free(dir);
	free(abs);
	return cfg;
}
