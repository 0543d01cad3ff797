/* The IMAP command reader: bytes in, complete commands out (tag, name,
 * arguments as a tree), with synchronizing and non-synchronizing literals
 * (LITERAL+ and LITERAL-, RFC 7888), literal8 (~{n}, BINARY). Incremental:
 * a command may arrive one byte at a time.
 * SECURITY: client input. Bounded: line length, literal size (a separate,
 * larger bound for APPEND), list nesting, argument count, total command
 * size. Over a bound the command is answered BAD and skipped; when the
 * stream cannot be resynchronised (a non-synchronizing literal over the
 * bound) the result says the connection must close. */
#ifndef TERN_IMAP_PARSER_H
#define TERN_IMAP_PARSER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "core/buf.h"
#include "imap/section.h"

#define IMAP_TAG_MAX 64

/* A limit left at 0 takes a default. */
struct imap_parser_limits {
	size_t line_max;        /* bytes of one line w/o literals; 8192 */
	size_t literal_max;     /* a literal of a command other than APPEND */
	size_t append_max;      /* a literal of APPEND (APPENDLIMIT) */
	size_t command_max;     /* all lines and literals of one command */
	size_t depth_max;       /* nesting of ( ); 16 */
	size_t args_max;        /* arguments in the whole tree; 10000 */
};

enum imap_arg_type {
	IMAP_ARG_ATOM,    /* also numbers, sequence sets, flags like \Seen,
	                     and BODY[...]<...> fetch items as one atom */
	IMAP_ARG_STRING,  /* quoted, unescaped */
	IMAP_ARG_LITERAL, /* {n} or ~{n} (literal8 = true) */
	IMAP_ARG_LIST,    /* ( … ) */
	IMAP_ARG_NIL,
};

struct imap_arg {
	enum imap_arg_type type;
	const char *str; /* ATOM/STRING/LITERAL: NUL-terminated (a literal
	                    may also contain NULs: use len) */
	size_t len;
	bool literal8;
	struct imap_arg *list; /* LIST: its elements */
	size_t count;
};

struct imap_command {
	char tag[IMAP_TAG_MAX + 1];
	char name[32];        /* upper-cased; "UID FETCH" etc. for UID */
	struct imap_arg *args;
	size_t count;
};

enum imap_parse_result {
	IMAP_PARSE_NEED_MORE,  /* everything consumed, no command yet */
	IMAP_PARSE_CONTINUE,   /* a synchronizing literal: send "+ …" and
	                          feed again */
	IMAP_PARSE_COMMAND,    /* a complete command: imap_parser_command() */
	IMAP_PARSE_BAD,        /* answer "TAG BAD reason" (tag may be "*");
	                          the rest of the command was skipped. A
	                          reason starting with "[TOOBIG]" (an APPEND
	                          literal over append_max or command_max)
	                          is answered "TAG NO reason" (RFC 7889) */
	IMAP_PARSE_FATAL,      /* answer "* BYE reason" and close */
};

struct imap_parser;

struct imap_parser *imap_parser_new(const struct imap_parser_limits *lim);
void imap_parser_free(struct imap_parser **p);
/* Feed bytes; *consumed_r says how many were used (the rest must be fed
 * again after acting on the result). */
enum imap_parse_result imap_parser_feed(struct imap_parser *p,
                                        const uint8_t *data, size_t len,
                                        size_t *consumed_r);
/* After IMAP_PARSE_COMMAND: valid until the next feed or reset. */
const struct imap_command *imap_parser_command(const struct imap_parser *p);
/* After IMAP_PARSE_BAD / FATAL: the tag ("*" when unknown) and a short
 * reason for the client. */
const char *imap_parser_error_tag(const struct imap_parser *p);
const char *imap_parser_error(const struct imap_parser *p);
/* Line mode, for IDLE's DONE and AUTHENTICATE responses: one line without
 * its CRLF (bounded by line_max). Same results: NEED_MORE, COMMAND (the
 * line is ready: imap_parser_line), BAD (too long, skipped). */
enum imap_parse_result imap_parser_feed_line(struct imap_parser *p,
                                             const uint8_t *data, size_t len,
                                             size_t *consumed_r);
const char *imap_parser_line(const struct imap_parser *p, size_t *len_r);
/* Forget any partial command (after STARTTLS, for instance). */
void imap_parser_reset(struct imap_parser *p);

/* ---- arguments (src/imap/args.c) ---- */

/* Strings: an ATOM, STRING or LITERAL (astring) / also NIL (nstring).
 * NIL comes back as the atom it is ("NIL"); a literal8 is refused. */
bool imap_arg_astring(const struct imap_arg *a, const char **s_r,
                      size_t *len_r);
bool imap_arg_atom_is(const struct imap_arg *a, const char *word);
bool imap_arg_number(const struct imap_arg *a, uint32_t *n_r);
bool imap_arg_number64(const struct imap_arg *a, uint64_t *n_r);

/* Sequence sets: "1:4,7,9:*". '*' is kept as UINT32_MAX and resolved by
 * imap_seqset_resolve. $ (SEARCHRES) is accepted as is_saved. */
struct imap_seq_range {
	uint32_t lo, hi; /* lo <= hi after parsing (reversed ranges swapped) */
};
struct imap_seqset {
	struct imap_seq_range *ranges; /* malloc'd */
	size_t n;
	bool is_saved; /* "$" */
};
int imap_seqset_parse(const char *s, size_t len, struct imap_seqset *set_r);
/* Replace '*' by max (the highest sequence number or UID; when max is 0,
 * '*' stays unmatched), then sort and merge the ranges. */
void imap_seqset_resolve(struct imap_seqset *set, uint32_t max);
bool imap_seqset_contains(const struct imap_seqset *set, uint32_t n);
void imap_seqset_clear(struct imap_seqset *set);

/* Flag lists "(\Seen \Answered foo)" or a single flag: system flags as
 * the mbox_flag bits (see src/store/mailbox.h: SEEN 1, ANSWERED 2,
 * FLAGGED 4, DELETED 8, DRAFT 16), keywords space-separated into kw
 * (validated atoms; kw is reset first, NULL refuses keywords); \Recent
 * and "\*" refused. 0 ok, -1 invalid. */
int imap_flags_parse(const struct imap_arg *a, uint32_t *flags_r,
                     struct buf *kw);
/* "(\Seen \Flagged kw1)" for output. */
void imap_flags_write(struct buf *out, uint32_t flags, const char *keywords,
                      bool recent);

/* Dates: "1-Feb-1994" (SEARCH) and "17-Jul-1996 02:44:25 -0700"
 * (APPEND, INTERNALDATE). Time in seconds since the epoch; zone offset in
 * minutes. imap_datetime_write includes the double quotes. */
int imap_date_parse(const char *s, size_t len, time_t *day_r);
int imap_datetime_parse(const char *s, size_t len, time_t *t_r,
                        int *zone_r);
void imap_datetime_write(struct buf *out, time_t t, int zone_minutes);

/* Mailbox names: modified UTF-7 (RFC 3501 5.1.3) for IMAP4rev1 clients,
 * UTF-8 for IMAP4rev2 / UTF8=ACCEPT. To UTF-8: 0, or -1 when invalid. */
int imap_mutf7_to_utf8(const char *s, size_t len, struct buf *out);
void imap_utf8_to_mutf7(const char *s, size_t len, struct buf *out);

/* Output: s as an atom-safe quoted string, or a literal when it holds
 * CR, LF, NUL or 8-bit bytes (utf8_ok: 8-bit in quoted is fine). */
void imap_write_string(struct buf *out, const char *s, size_t len,
                       bool utf8_ok);
void imap_write_nstring(struct buf *out, const char *s, size_t len,
                        bool utf8_ok);

/* ---- FETCH items (src/imap/fetch_args.c) ---- */

enum imap_fetch_item_type {
	IMAP_FETCH_UID,
	IMAP_FETCH_FLAGS,
	IMAP_FETCH_INTERNALDATE,
	IMAP_FETCH_RFC822_SIZE,
	IMAP_FETCH_ENVELOPE,
	IMAP_FETCH_BODY,          /* BODY without section: non-extended */
	IMAP_FETCH_BODYSTRUCTURE,
	IMAP_FETCH_SECTION,       /* BODY[…] / BODY.PEEK[…] */
	IMAP_FETCH_BINARY,        /* BINARY[…] / BINARY.PEEK[…] */
	IMAP_FETCH_BINARY_SIZE,
	IMAP_FETCH_RFC822,        /* = BODY[] (sets \Seen) */
	IMAP_FETCH_RFC822_HEADER, /* = BODY.PEEK[HEADER] */
	IMAP_FETCH_RFC822_TEXT,   /* = BODY[TEXT] */
	IMAP_FETCH_MODSEQ,
};

struct imap_fetch_item {
	enum imap_fetch_item_type type;
	bool peek;
	struct imap_section section; /* SECTION, BINARY, BINARY_SIZE */
	char *name; /* how the item is named in the reply, e.g.
	               "BODY[HEADER.FIELDS (SUBJECT)]<0>" (malloc'd) */
};

struct imap_fetch_spec {
	struct imap_fetch_item *items;
	size_t n;
	uint64_t changedsince; /* (CHANGEDSINCE n) modifier; 0 none */
	bool vanished;         /* (VANISHED) modifier */
};

/* args: what follows the sequence set (one atom, a macro ALL/FAST/FULL,
 * or a list), then an optional modifier list. 0, or -1 with *error_r a
 * static reason. */
int imap_fetch_parse(const struct imap_arg *args, size_t count,
                     struct imap_fetch_spec *spec_r, const char **error_r);
void imap_fetch_spec_clear(struct imap_fetch_spec *spec);

/* ---- SEARCH program (src/imap/search_args.c) ---- */

enum imap_search_key_type {
	IMAP_SK_ALL, IMAP_SK_AND, IMAP_SK_OR, IMAP_SK_NOT,
	IMAP_SK_SEQSET, IMAP_SK_UID,
	IMAP_SK_FLAG,      /* flag set: ANSWERED DELETED DRAFT FLAGGED SEEN */
	IMAP_SK_NOFLAG,    /* UN…; also NEW/OLD/RECENT via the recent bits */
	IMAP_SK_KEYWORD, IMAP_SK_UNKEYWORD,
	IMAP_SK_RECENT, IMAP_SK_OLD, IMAP_SK_NEW,
	IMAP_SK_BEFORE, IMAP_SK_ON, IMAP_SK_SINCE,          /* internal date */
	IMAP_SK_SENTBEFORE, IMAP_SK_SENTON, IMAP_SK_SENTSINCE,
	IMAP_SK_LARGER, IMAP_SK_SMALLER,
	IMAP_SK_HEADER,    /* header name + substring; BCC CC FROM SUBJECT TO
	                      become HEADER */
	IMAP_SK_BODY, IMAP_SK_TEXT,
	IMAP_SK_MODSEQ,
};

struct imap_search_key {
	enum imap_search_key_type type;
	uint32_t flag;          /* FLAG/NOFLAG: mbox_flag bit */
	char *str;              /* KEYWORD, HEADER value, BODY, TEXT (UTF-8) */
	char *header;           /* HEADER: the field name */
	time_t date;            /* date keys (start of the day, UTC) */
	uint64_t number;        /* LARGER, SMALLER, MODSEQ */
	struct imap_seqset set; /* SEQSET, UID */
	struct imap_search_key *children; /* AND (n), OR (2), NOT (1) */
	size_t nchildren;
};

enum imap_search_return {
	IMAP_SEARCH_RET_MIN = 1u << 0,
	IMAP_SEARCH_RET_MAX = 1u << 1,
	IMAP_SEARCH_RET_ALL = 1u << 2,
	IMAP_SEARCH_RET_COUNT = 1u << 3,
	IMAP_SEARCH_RET_SAVE = 1u << 4,
};

struct imap_search_program {
	bool esearch;      /* RETURN (…) given: answer ESEARCH */
	uint32_t ret;      /* enum imap_search_return; empty RETURN () = ALL */
	struct imap_search_key root; /* an AND of the keys */
};

/* args: everything after SEARCH (RETURN (…), CHARSET x, keys). Only
 * CHARSET UTF-8 and US-ASCII are accepted (-2: answer
 * NO [BADCHARSET (UTF-8 US-ASCII)]). Bounded depth (16) and key count
 * (1000). 0 ok, -1 syntax (BAD, *error_r static reason). */
int imap_search_parse(const struct imap_arg *args, size_t count,
                      struct imap_search_program *prog_r,
                      const char **error_r);
void imap_search_program_clear(struct imap_search_program *prog);

#endif
