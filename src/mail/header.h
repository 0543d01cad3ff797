/* RFC 5322 header blocks: field iteration with unfolding, the RFC 822
 * token lexer (atoms, quoted strings, comments, domains, MIME tokens and
 * parameters) and address-list parsing, all with Dovecot's lenient rules.
 * SECURITY: headers are untrusted. Every scan is bounded by the block
 * length, nothing is NUL-terminated implicitly, no recursion, and results
 * live in a string pool that grows by at most the input size (plus small
 * constants per token). Bad syntax yields a best-effort result, never an
 * error for the caller to mishandle. */
#ifndef TERN_MAIL_HEADER_H
#define TERN_MAIL_HEADER_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"

/* Header names longer than this are treated as part of the value (the
 * field then has no name), as RFC 5322 §2.1.1 allows 998 octets a line. */
#define HEADER_NAME_MAX 1000

/* Strings that stay put until the pool is cleared: chunks of 4 KiB or
 * more, never moved, so pointers into it remain valid. */
struct header_pool_chunk;
struct header_pool {
	struct header_pool_chunk *chunks;
};

/* A NUL-terminated copy of n bytes. */
char *header_pool_strndup(struct header_pool *pool, const void *s, size_t n);
void header_pool_clear(struct header_pool *pool);

/* One field of a header block, continuation lines included. */
struct header_field {
	const char *name;  /* not NUL-terminated; trailing LWSP removed */
	size_t name_len;   /* 0: the line had no ':' (or an overlong name) */
	const char *value; /* raw, from after the ':' to the end of the last
	                      line, final [CR]LF excluded; the whole line
	                      when there is no name */
	size_t value_len;
	const char *start; /* the whole field, final newline included */
	size_t len;
	bool no_newline; /* the block ended inside the field */
};

struct header_iter {
	const char *p, *end;
	bool eoh; /* the empty line that ends the header was reached */
};

void header_iter_init(struct header_iter *it, const char *block, size_t len);
/* false at the end of the header (empty line or end of the block). */
bool header_iter_next(struct header_iter *it, struct header_field *f);
/* The field's value as Dovecot's parser hands it out: leading LWSP of
 * the first line skipped (all of it, or one byte when the line is only
 * LWSP), continuation lines joined with "\n" (CRs dropped). Appended. */
void header_field_unfold(const struct header_field *f, struct buf *out);
/* Case-insensitive name test. */
bool header_field_is(const struct header_field *f, const char *name);
/* Copy bytes with NUL replaced by U+FFFD (what Dovecot does to header
 * strings it hands on). */
void header_append_nonul(struct buf *out, const void *data, size_t len);

/* The RFC 822 lexer. Functions return 1 when more input follows, 0 at
 * the end of input (a value may have been produced), -1 on bad syntax.
 * LWSP (and comments) after a token are skipped, before it they are not. */
struct header_lex {
	const unsigned char *data, *end;
	struct buf *last_comment;    /* NULL: comments are not kept */
	const char *nul_replacement; /* NULL: NULs are kept in strings */
};

void header_lex_init(struct header_lex *lx, const void *data, size_t len,
                     struct buf *last_comment);
int header_lex_skip_comment(struct header_lex *lx);
int header_lex_skip_lwsp(struct header_lex *lx);
int header_lex_atom(struct header_lex *lx, struct buf *out);
int header_lex_dot_atom(struct header_lex *lx, struct buf *out);
/* A MIME token (RFC 2045 §5.1) or dots. */
int header_lex_mime_token(struct header_lex *lx, struct buf *out);
int header_lex_quoted_string(struct header_lex *lx, struct buf *out);
int header_lex_phrase(struct header_lex *lx, struct buf *out);
int header_lex_domain(struct header_lex *lx, struct buf *out);
/* "type/subtype" into out (what was read of it when -1). */
int header_lex_content_type(struct header_lex *lx, struct buf *out);
/* "; key=value": key and value replaced. 1 = pair read, 0 = end,
 * -1 = bad syntax. */
int header_lex_content_param(struct header_lex *lx, struct buf *key,
                             struct buf *value);
/* The next byte, or NUL at the end of input. */
unsigned char header_lex_peek(const struct header_lex *lx);

/* Addresses as IMAP ENVELOPE lists them. A group is a start entry
 * (mailbox = group name, domain NULL) and an end entry (all NULL). */
struct header_address {
	const char *name, *route, *mailbox, *domain; /* NULL when absent */
	bool invalid;
};

struct header_address_list {
	struct header_address *v;
	size_t n, cap;
	struct header_pool pool;
};

/* Parse an address-list value (unfolded) and append its addresses:
 * several header fields merge into one list. Missing parts are filled
 * in as "MISSING_MAILBOX", "MISSING_DOMAIN", "INVALID_ROUTE" and
 * "SYNTAX_ERROR" (Dovecot's FILL_MISSING). At most max_addresses are
 * added per call. */
void header_address_parse(struct header_address_list *list, const char *value,
                          size_t len, size_t max_addresses);
void header_address_list_clear(struct header_address_list *list);

/* The author of a message (its header block, CRLF or LF), as DKIM signing
 * and the submission policy need it: *nfrom_r is the number of From:
 * fields; with exactly one field holding exactly one valid address, 0
 * with "mailbox@domain" in addr and the domain as written in domain
 * (truncated to the sizes given), else -1 (RFC 5322 3.6.2). */
int header_single_from(const void *msg, size_t len, size_t *nfrom_r, char *addr,
                       size_t addrlen, char *domain, size_t domlen);

#endif
