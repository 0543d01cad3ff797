/* What FETCH and SEARCH need from a message: ENVELOPE, BODYSTRUCTURE, body
 * sections, BINARY decoding and the Date header, built on the MIME parser
 * of src/mail (searchable text: mail/mailtext.h). Messages are whole in
 * memory, CRLF form.
 * Output follows what Dovecot returns for the same message (the tests
 * compare), malformed MIME included: never an error for a bad message,
 * always a well-formed answer.
 * SECURITY: messages are untrusted; MIME depth and part count are bounded
 * by src/mail/mime.h, every output is bounded by the message size (times a
 * small constant for quoting). */
#ifndef TERN_IMAP_BODY_H
#define TERN_IMAP_BODY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "core/buf.h"
#include "imap/section.h"

/* Append the ENVELOPE list "(date subject from sender reply-to to cc bcc
 * in-reply-to message-id)" of the message. */
void imap_body_envelope(const char *msg, size_t len, struct buf *out);
/* Append BODY (extended = false) or BODYSTRUCTURE (extended = true). */
void imap_body_structure(const char *msg, size_t len, bool extended,
                         struct buf *out);

/* The bytes of a section (before any <partial>): for HEADER.FIELDS(.NOT)
 * they are built into scratch and *data_r points there; otherwise into
 * msg. Returns 0, or -1 when the part does not exist (IMAP then returns an
 * empty string, as Dovecot does). */
int imap_body_section(const char *msg, size_t len,
                      const struct imap_section *sec, struct buf *scratch,
                      const char **data_r, size_t *len_r);
/* BINARY[part]: the part's content with its Content-Transfer-Encoding
 * undone into out. 0 ok, -1 no such part, -2 unknown encoding (IMAP:
 * NO [UNKNOWN-CTE]). */
int imap_body_binary(const char *msg, size_t len, const uint32_t *part,
                     size_t nparts, struct buf *out);

/* The header fields asked for most (mail clients' HEADER.FIELDS lists,
 * SEARCH FROM/TO/CC/BCC/SUBJECT, SENT* with Date): a message's own are
 * kept in the index as one block, so that FETCH and SEARCH of them read
 * no file. imap_hdr_cache_has: name (any case) is one of them. */
bool imap_hdr_cache_has(const char *name);
#define IMAP_HDR_CACHE_MAX (16 * 1024) /* bigger blocks are not kept */
/* A top-level HEADER.FIELDS (…) of cached fields only: the block answers
 * it as the message would. */
bool imap_hdr_cache_covers(const struct imap_section *sec);
/* The block, appended: those fields of msg in their order, CRLF line
 * ends, then the empty line. */
void imap_hdr_cache_block(const char *msg, size_t len, struct buf *out);

/* Date: header as a time (SENTBEFORE…); -1 when absent or unparsable. */
int imap_body_sent_date(const char *msg, size_t len, time_t *t_r);

#endif
