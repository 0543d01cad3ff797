/* The searchable text of a message: its header fields and its body text
 * decoded to UTF-8, as IMAP SEARCH HEADER/BODY/TEXT test them and as the
 * mailbox store's text index keeps them. One implementation for both, so
 * the index can never miss a message the exact test would match.
 * SECURITY: messages are untrusted. MIME depth and part count are bounded
 * by src/mail/mime.h; the output is bounded by the message size (decoding
 * only shrinks, charset conversion and U+FFFD at most triple a byte). */
#ifndef TERN_MAIL_MAILTEXT_H
#define TERN_MAIL_MAILTEXT_H

#include <stddef.h>

#include "core/buf.h"

/* The unfolded value of every field of the message's own header called
 * name (case-insensitive), line breaks of folding turned into spaces, RFC
 * 2047 words decoded to UTF-8, joined with "\n", appended to out; 0 when
 * there is one, -1 when not. name NULL: every field, as "Name: value". */
int mailtext_header(const char *msg, size_t len, const char *name,
                    struct buf *out);
/* The body text for SEARCH BODY/TEXT, appended to out: the text parts
 * (text/…, or no Content-Type) decoded (QP, base64; the charset to UTF-8
 * where iconv knows it, else invalid UTF-8 as U+FFFD), joined with "\n";
 * other parts skipped. */
void mailtext_body(const char *msg, size_t len, struct buf *out);
/* Everything SEARCH TEXT and BODY look at, appended to out: the whole
 * header text (name NULL above), "\n", then the body text. Any string
 * either of them contains, this contains. */
void mailtext_all(const char *msg, size_t len, struct buf *out);

#endif
