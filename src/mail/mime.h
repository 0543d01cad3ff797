/* The MIME parser (RFC 2045-2049): a message in memory becomes a tree of
 * parts with byte offsets and sizes (no copies of bodies), parsed the way
 * Dovecot's lib-mail does so that IMAP answers match it. Also Content-Type
 * and Content-Disposition parameters (RFC 2231), encoded words (RFC 2047)
 * and the quoted-printable and base64 decoders.
 * SECURITY: messages are untrusted. Nesting is bounded by MIME_DEPTH_MAX
 * and the part count by MIME_PARTS_MAX: past a bound the rest is a single
 * leaf, never an error. Parsing is linear in the message size (each line
 * start is tested against the open boundaries once), allocations are per
 * part and per boundary, never per byte. Malformed mail always gives a
 * well-formed tree. */
#ifndef TERN_MAIL_MIME_H
#define TERN_MAIL_MIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "mail/header.h"

/* Dovecot's defaults (message-parser.h), so deep and wide messages get
 * the same tree: multiparts and message/rfc822 parts nest at most this
 * deep, and a message has at most this many parts. */
#define MIME_DEPTH_MAX 100
#define MIME_PARTS_MAX 10000
/* Longer boundary parameters are cut (RFC 2046 allows 70). */
#define MIME_BOUNDARY_MAX 80
/* Parameters read from one Content-Type or Content-Disposition. */
#define MIME_PARAMS_MAX 128

enum mime_part_flags {
	MIME_PART_MULTIPART = 1 << 0, /* children are the body parts */
	MIME_PART_DIGEST = 1 << 1,    /* multipart/digest */
	MIME_PART_RFC822 = 1 << 2,    /* message/rfc822: one child, the
	                                 encapsulated message */
	MIME_PART_TEXT = 1 << 3,      /* text/… or no Content-Type */
	MIME_PART_IS_MIME = 1 << 4,   /* Content-* fields apply (MIME-Version,
	                                 Content-Type, or inside a multipart) */
	MIME_PART_OVERFLOW = 1 << 5,  /* a bound stopped parsing here */
	MIME_PART_HAS_NULS = 1 << 6,
};

struct mime_part {
	struct mime_part *parent, *children, *next;
	size_t offset;    /* of the header in the message */
	size_t hdr_size;  /* header bytes, the empty line included */
	size_t body_size; /* body bytes: offset + hdr_size is its start */
	size_t hdr_vsize; /* sizes with every bare LF counted as CRLF */
	size_t body_vsize;
	size_t hdr_lines, body_lines;
	unsigned int flags; /* enum mime_part_flags */
	unsigned int nchildren;
};

struct mime_part_chunk;
struct mime_message {
	const char *data;
	size_t len;
	struct mime_part *root;
	size_t nparts;
	struct mime_part_chunk *chunks; /* private */
};

/* Parse msg (which must outlive the result). Never fails. */
struct mime_message *mime_parse(const char *msg, size_t len);
void mime_message_free(struct mime_message **m);
/* The part an IMAP section number names (1-based numbers): children of
 * a multipart, "1" for the body of a non-multipart, and through a
 * message/rfc822 part into the encapsulated message. NULL when none. */
const struct mime_part *mime_part_find(const struct mime_part *root,
                                       const uint32_t *path, size_t n);

/* Parameters of a Content-Type or Content-Disposition, as Dovecot keeps
 * them: RFC 2231 continuations merged ("name*" keeps the star and the
 * charset'lang' prefix when any section was extended), values unquoted,
 * names and values as written. */
struct mime_param {
	const char *name, *value;
};

struct mime_content {
	const char *type;    /* "" when unparsable; for a disposition the
	                        disposition type */
	const char *subtype; /* "" when absent (Content-Type only) */
	struct mime_param *params;
	size_t nparams;
	bool broken; /* the type was bad: params were not read */
	struct header_pool pool;
};

/* value is the unfolded field value (header_field_unfold). */
void mime_content_type_parse(const char *value, size_t len,
                             struct mime_content *ct);
/* Returns -1 (ct empty) when there is no disposition token. */
int mime_disposition_parse(const char *value, size_t len,
                           struct mime_content *ct);
void mime_content_clear(struct mime_content *ct);
/* The first parameter called name (ASCII case-insensitive), or NULL. */
const char *mime_content_param(const struct mime_content *ct, const char *name);
/* A parameter value to UTF-8: a merged RFC 2231 value
 * ("charset'lang'%XX…", extended = the name ended in '*') is
 * percent-decoded and converted from its charset; a plain value that
 * holds RFC 2047 encoded words (common for filenames) is decoded too. */
void mime_param_decode(const char *value, bool extended, struct buf *out);

enum mime_cte {
	MIME_CTE_78BIT,
	MIME_CTE_BINARY,
	MIME_CTE_QP,
	MIME_CTE_BASE64,
	MIME_CTE_UNKNOWN,
};

/* A Content-Transfer-Encoding value (unfolded). An empty value is
 * MIME_CTE_UNKNOWN, as in Dovecot. */
enum mime_cte mime_cte_parse(const char *value, size_t len);

/* Decoders append to out. Bad input is passed through or skipped,
 * never refused. */
void mime_qp_decode(const void *in, size_t len, struct buf *out);
void mime_base64_decode(const void *in, size_t len, struct buf *out);
/* A body with its transfer encoding undone (7bit, 8bit and binary are
 * copied). MIME_CTE_UNKNOWN copies too. */
void mime_body_decode(const void *in, size_t len, enum mime_cte cte,
                      struct buf *out);

/* Convert from charset to UTF-8 with iconv. Invalid sequences become
 * U+FFFD. Returns -1 (nothing appended) when iconv does not know the
 * charset. "us-ascii" and "utf-8" input is checked and copied. */
int mime_charset_to_utf8(const char *charset, const void *in, size_t len,
                         struct buf *out);
/* An unfolded header value with RFC 2047 encoded words decoded to UTF-8
 * (whitespace between adjacent encoded words dropped); the rest is
 * copied, invalid UTF-8 replaced by U+FFFD. */
void mime_header_decode(const char *value, size_t len, struct buf *out);
/* Append valid UTF-8 of in to out, invalid sequences as U+FFFD. */
void mime_utf8_sanitize(const void *in, size_t len, struct buf *out);

#endif
