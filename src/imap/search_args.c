/* SEARCH arguments (see parser.h): RETURN options (ESEARCH, SEARCHRES),
 * CHARSET, and the search-key grammar of RFC 9051 6.4.4 with the RFC 3501
 * keys (NEW, OLD, RECENT) and MODSEQ (RFC 7162) into a key tree.
 * SECURITY: client input. Nesting (OR, NOT, parentheses) and the number of
 * keys are bounded; strings must be UTF-8; nothing recurses deeper than
 * SEARCH_DEPTH_MAX. */
#include "imap/parser.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/utf8.h"
#include "core/xmalloc.h"
#include "store/mailbox.h"

#define SEARCH_DEPTH_MAX 16
#define SEARCH_KEYS_MAX 1000

/* A search in progress. */
struct search_ctx {
	size_t keys;
	const char *error;
};

/* Keys without an argument that test a system flag. */
struct search_flag_key {
	const char *name;
	enum imap_search_key_type type;
	uint32_t flag;
};

static const struct search_flag_key search_flag_keys[] = {
    {"ANSWERED", IMAP_SK_FLAG, MBOX_F_ANSWERED},
    {"DELETED", IMAP_SK_FLAG, MBOX_F_DELETED},
    {"DRAFT", IMAP_SK_FLAG, MBOX_F_DRAFT},
    {"FLAGGED", IMAP_SK_FLAG, MBOX_F_FLAGGED},
    {"SEEN", IMAP_SK_FLAG, MBOX_F_SEEN},
    {"UNANSWERED", IMAP_SK_NOFLAG, MBOX_F_ANSWERED},
    {"UNDELETED", IMAP_SK_NOFLAG, MBOX_F_DELETED},
    {"UNDRAFT", IMAP_SK_NOFLAG, MBOX_F_DRAFT},
    {"UNFLAGGED", IMAP_SK_NOFLAG, MBOX_F_FLAGGED},
    {"UNSEEN", IMAP_SK_NOFLAG, MBOX_F_SEEN},
    {"ALL", IMAP_SK_ALL, 0},
    {"NEW", IMAP_SK_NEW, 0},
    {"OLD", IMAP_SK_OLD, 0},
    {"RECENT", IMAP_SK_RECENT, 0},
};

/* Keys with a date. */
struct search_date_key {
	const char *name;
	enum imap_search_key_type type;
};

static const struct search_date_key search_date_keys[] = {
    {"BEFORE", IMAP_SK_BEFORE}, {"ON", IMAP_SK_ON},
    {"SINCE", IMAP_SK_SINCE},   {"SENTBEFORE", IMAP_SK_SENTBEFORE},
    {"SENTON", IMAP_SK_SENTON}, {"SENTSINCE", IMAP_SK_SENTSINCE},
};

/* Keys that search one header field, and the field's name. */
struct search_header_key {
	const char *name;
	const char *field;
};

static const struct search_header_key search_header_keys[] = {
    {"BCC", "Bcc"},         {"CC", "Cc"}, {"FROM", "From"},
    {"SUBJECT", "Subject"}, {"TO", "To"},
};

static bool
search_utf8_valid(const char *s, size_t len)
{
	size_t i = 0, n;

	while (i < len) {
		if ((n = utf8_seq_len((const uint8_t *)s + i, len - i)) == 0)
			return false;
		i += n;
	}
	return true;
}

/* An astring argument as a malloc'd UTF-8 string. */
static int
search_string(struct search_ctx *ctx, const struct imap_arg *a, char **s_r)
{
	const char *s;
	size_t len;

	if (!imap_arg_astring(a, &s, &len)) {
		ctx->error = "Invalid search string";
		return -1;
	}
	if (memchr(s, '\0', len) != NULL || !search_utf8_valid(s, len)) {
		ctx->error = "Invalid characters in search string";
		return -1;
	}
	*s_r = xstrndup(s, len);
	return 0;
}

/* header-fld-name: 1*ftext (RFC 5322) */
static bool
search_field_name_valid(const char *s, size_t len)
{
	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (s[i] <= 0x20 || s[i] >= 0x7f || s[i] == ':')
			return false;
	}
	return true;
}

/* flag-keyword: an atom without atom-specials. */
static bool
search_keyword_valid(const struct imap_arg *a)
{
	if ((a->type != IMAP_ARG_ATOM && a->type != IMAP_ARG_NIL) ||
	    a->len == 0)
		return false;
	for (size_t i = 0; i < a->len; i++) {
		unsigned char c = (unsigned char)a->str[i];

		if (c <= 0x20 || c >= 0x7f || strchr("(){%*\"\\]", c) != NULL)
			return false;
	}
	return true;
}

static int search_key(struct search_ctx *ctx, const struct imap_arg *args,
                      size_t count, size_t *i, size_t depth,
                      struct imap_search_key *key);

/* Keys args[0..count) into key as an AND. */
static int
search_and(struct search_ctx *ctx, const struct imap_arg *args, size_t count,
           size_t depth, struct imap_search_key *key)
{
	size_t i = 0, cap = 0;

	key->type = IMAP_SK_AND;
	while (i < count) {
		if (key->nchildren == cap) {
			cap = cap == 0 ? 4 : cap * 2;
			key->children = xreallocarray(key->children, cap,
			                              sizeof(*key->children));
		}
		memset(&key->children[key->nchildren], 0,
		       sizeof(key->children[0]));
		key->nchildren++;
		if (search_key(ctx, args, count, &i, depth,
		               &key->children[key->nchildren - 1]) < 0)
			return -1;
	}
	return 0;
}

/* MODSEQ [entry-name entry-type-req] mod-sequence-valzer */
static int
search_modseq(struct search_ctx *ctx, const struct imap_arg *args, size_t count,
              size_t *i, struct imap_search_key *key)
{
	const struct imap_arg *a;

	key->type = IMAP_SK_MODSEQ;
	if (*i < count && args[*i].type == IMAP_ARG_STRING) {
		/* entry-flag-name: "/flags/" attr-flag; ignored. */
		a = &args[*i];
		if (a->len < 8 || strncasecmp(a->str, "/flags/", 7) != 0 ||
		    *i + 1 >= count ||
		    !(imap_arg_atom_is(&args[*i + 1], "priv") ||
		      imap_arg_atom_is(&args[*i + 1], "shared") ||
		      imap_arg_atom_is(&args[*i + 1], "all"))) {
			ctx->error = "Invalid MODSEQ entry";
			return -1;
		}
		*i += 2;
	}
	if (*i >= count || !imap_arg_number64(&args[*i], &key->number)) {
		ctx->error = "Invalid MODSEQ value";
		return -1;
	}
	(*i)++;
	return 0;
}

/* One search-key starting at args[*i]. */
static int
search_key(struct search_ctx *ctx, const struct imap_arg *args, size_t count,
           size_t *i, size_t depth, struct imap_search_key *key)
{
	const struct imap_arg *a = &args[(*i)++];
	const char *s;
	size_t len;

	memset(key, 0, sizeof(*key));
	if (++ctx->keys > SEARCH_KEYS_MAX) {
		ctx->error = "Too many search keys";
		return -1;
	}
	if (depth >= SEARCH_DEPTH_MAX) {
		ctx->error = "Search keys nested too deeply";
		return -1;
	}
	if (a->type == IMAP_ARG_LIST) {
		if (a->count == 0) {
			ctx->error = "Empty search key list";
			return -1;
		}
		return search_and(ctx, a->list, a->count, depth + 1, key);
	}
	if (a->type != IMAP_ARG_ATOM) {
		ctx->error = "Invalid search key";
		return -1;
	}
	s = a->str;
	len = a->len;
	for (size_t k = 0;
	     k < sizeof(search_flag_keys) / sizeof(search_flag_keys[0]); k++) {
		if (imap_arg_atom_is(a, search_flag_keys[k].name)) {
			key->type = search_flag_keys[k].type;
			key->flag = search_flag_keys[k].flag;
			return 0;
		}
	}
	for (size_t k = 0;
	     k < sizeof(search_date_keys) / sizeof(search_date_keys[0]); k++) {
		const char *d;
		size_t dlen;

		if (!imap_arg_atom_is(a, search_date_keys[k].name))
			continue;
		key->type = search_date_keys[k].type;
		if (*i >= count ||
		    (args[*i].type != IMAP_ARG_ATOM &&
		     args[*i].type != IMAP_ARG_STRING) ||
		    !imap_arg_astring(&args[*i], &d, &dlen) ||
		    imap_date_parse(d, dlen, &key->date) < 0) {
			ctx->error = "Invalid search date";
			return -1;
		}
		(*i)++;
		return 0;
	}
	for (size_t k = 0;
	     k < sizeof(search_header_keys) / sizeof(search_header_keys[0]);
	     k++) {
		if (!imap_arg_atom_is(a, search_header_keys[k].name))
			continue;
		key->type = IMAP_SK_HEADER;
		if (*i >= count) {
			ctx->error = "Missing search string";
			return -1;
		}
		key->header = xstrdup(search_header_keys[k].field);
		return search_string(ctx, &args[(*i)++], &key->str);
	}
	if (imap_arg_atom_is(a, "HEADER")) {
		key->type = IMAP_SK_HEADER;
		if (*i + 1 >= count) {
			ctx->error = "Missing HEADER arguments";
			return -1;
		}
		if (search_string(ctx, &args[*i], &key->header) < 0)
			return -1;
		if (!search_field_name_valid(key->header,
		                             strlen(key->header))) {
			ctx->error = "Invalid header field name";
			return -1;
		}
		*i += 1;
		return search_string(ctx, &args[(*i)++], &key->str);
	}
	if (imap_arg_atom_is(a, "BODY") || imap_arg_atom_is(a, "TEXT")) {
		key->type =
		    imap_arg_atom_is(a, "BODY") ? IMAP_SK_BODY : IMAP_SK_TEXT;
		if (*i >= count) {
			ctx->error = "Missing search string";
			return -1;
		}
		return search_string(ctx, &args[(*i)++], &key->str);
	}
	if (imap_arg_atom_is(a, "KEYWORD") ||
	    imap_arg_atom_is(a, "UNKEYWORD")) {
		key->type = imap_arg_atom_is(a, "KEYWORD") ? IMAP_SK_KEYWORD
		                                           : IMAP_SK_UNKEYWORD;
		if (*i >= count || !search_keyword_valid(&args[*i])) {
			ctx->error = "Invalid keyword";
			return -1;
		}
		key->str = xstrndup(args[*i].str, args[*i].len);
		(*i)++;
		return 0;
	}
	if (imap_arg_atom_is(a, "LARGER") || imap_arg_atom_is(a, "SMALLER")) {
		key->type = imap_arg_atom_is(a, "LARGER") ? IMAP_SK_LARGER
		                                          : IMAP_SK_SMALLER;
		if (*i >= count ||
		    !imap_arg_number64(&args[*i], &key->number)) {
			ctx->error = "Invalid size";
			return -1;
		}
		(*i)++;
		return 0;
	}
	if (imap_arg_atom_is(a, "UID")) {
		key->type = IMAP_SK_UID;
		if (*i >= count || args[*i].type != IMAP_ARG_ATOM ||
		    imap_seqset_parse(args[*i].str, args[*i].len, &key->set) <
		        0) {
			ctx->error = "Invalid UID set";
			return -1;
		}
		(*i)++;
		return 0;
	}
	if (imap_arg_atom_is(a, "NOT")) {
		key->type = IMAP_SK_NOT;
		if (*i >= count) {
			ctx->error = "Missing key after NOT";
			return -1;
		}
		key->children = xcalloc(1, sizeof(*key->children));
		key->nchildren = 1;
		return search_key(ctx, args, count, i, depth + 1,
		                  &key->children[0]);
	}
	if (imap_arg_atom_is(a, "OR")) {
		key->type = IMAP_SK_OR;
		key->children = xcalloc(2, sizeof(*key->children));
		for (size_t k = 0; k < 2; k++) {
			if (*i >= count) {
				ctx->error = "Missing key after OR";
				return -1;
			}
			key->nchildren = k + 1;
			if (search_key(ctx, args, count, i, depth + 1,
			               &key->children[k]) < 0)
				return -1;
		}
		return 0;
	}
	if (imap_arg_atom_is(a, "MODSEQ"))
		return search_modseq(ctx, args, count, i, key);
	if (len > 0 &&
	    ((s[0] >= '0' && s[0] <= '9') || s[0] == '*' || s[0] == '$')) {
		key->type = IMAP_SK_SEQSET;
		if (imap_seqset_parse(s, len, &key->set) < 0) {
			ctx->error = "Invalid sequence set";
			return -1;
		}
		return 0;
	}
	ctx->error = "Unknown search key";
	return -1;
}

static int
search_return(struct search_ctx *ctx, const struct imap_arg *a,
              struct imap_search_program *prog)
{
	static const struct {
		const char *name;
		uint32_t bit;
	} opts[] = {
	    {"MIN", IMAP_SEARCH_RET_MIN},   {"MAX", IMAP_SEARCH_RET_MAX},
	    {"ALL", IMAP_SEARCH_RET_ALL},   {"COUNT", IMAP_SEARCH_RET_COUNT},
	    {"SAVE", IMAP_SEARCH_RET_SAVE},
	};

	if (a->type != IMAP_ARG_LIST) {
		ctx->error = "Invalid RETURN options";
		return -1;
	}
	prog->esearch = true;
	for (size_t i = 0; i < a->count; i++) {
		bool found = false;

		for (size_t k = 0; k < sizeof(opts) / sizeof(opts[0]); k++) {
			if (imap_arg_atom_is(&a->list[i], opts[k].name)) {
				prog->ret |= opts[k].bit;
				found = true;
			}
		}
		if (!found) {
			ctx->error = "Unknown RETURN option";
			return -1;
		}
	}
	if (a->count == 0)
		prog->ret = IMAP_SEARCH_RET_ALL;
	return 0;
}

int
imap_search_parse(const struct imap_arg *args, size_t count,
                  struct imap_search_program *prog_r, const char **error_r)
{
	struct search_ctx ctx = {0, NULL};
	size_t i = 0;
	const char *cs;
	size_t cslen;

	memset(prog_r, 0, sizeof(*prog_r));
	prog_r->root.type = IMAP_SK_AND;
	if (i < count && imap_arg_atom_is(&args[i], "RETURN")) {
		if (i + 1 >= count ||
		    search_return(&ctx, &args[i + 1], prog_r) < 0) {
			*error_r = ctx.error != NULL ? ctx.error
			                             : "Invalid RETURN options";
			goto fail;
		}
		i += 2;
	}
	if (i < count && imap_arg_atom_is(&args[i], "CHARSET")) {
		if (i + 1 >= count ||
		    !imap_arg_astring(&args[i + 1], &cs, &cslen)) {
			*error_r = "Missing charset";
			goto fail;
		}
		if (!(cslen == 5 && strncasecmp(cs, "UTF-8", 5) == 0) &&
		    !(cslen == 8 && strncasecmp(cs, "US-ASCII", 8) == 0)) {
			*error_r = "Unsupported charset";
			imap_search_program_clear(prog_r);
			return -2;
		}
		i += 2;
	}
	if (i == count) {
		*error_r = "Missing search keys";
		goto fail;
	}
	if (search_and(&ctx, args + i, count - i, 0, &prog_r->root) < 0) {
		*error_r = ctx.error;
		goto fail;
	}
	return 0;
fail:
	imap_search_program_clear(prog_r);
	return -1;
}

static void
search_key_clear(struct imap_search_key *k)
{
	free(k->str);
	free(k->header);
	imap_seqset_clear(&k->set);
	for (size_t i = 0; i < k->nchildren; i++)
		search_key_clear(&k->children[i]);
	free(k->children);
	memset(k, 0, sizeof(*k));
}

void
imap_search_program_clear(struct imap_search_program *prog)
{
	search_key_clear(&prog->root);
	memset(prog, 0, sizeof(*prog));
}
