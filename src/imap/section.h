/* A FETCH body section as the parser reads it and the body module serves
 * it: BODY[1.2.HEADER.FIELDS (Subject)]<0.100>, BINARY[1]… */
#ifndef TERN_IMAP_SECTION_H
#define TERN_IMAP_SECTION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define IMAP_SECTION_DEPTH_MAX 32   /* numbers in "1.2.3…" */
#define IMAP_SECTION_FIELDS_MAX 100 /* names in HEADER.FIELDS (…) */

enum imap_section_kind {
	IMAP_SECTION_ALL,       /* [] or [1.2]: the part's content */
	IMAP_SECTION_HEADER,    /* [HEADER], [1.HEADER] (message/rfc822) */
	IMAP_SECTION_FIELDS,    /* HEADER.FIELDS (…) */
	IMAP_SECTION_FIELDS_NOT,/* HEADER.FIELDS.NOT (…) */
	IMAP_SECTION_TEXT,      /* [TEXT], [1.TEXT] */
	IMAP_SECTION_MIME,      /* [1.MIME]: the part's MIME header */
};

struct imap_section {
	uint32_t part[IMAP_SECTION_DEPTH_MAX];
	size_t nparts; /* 0: the whole message */
	enum imap_section_kind kind;
	char **fields; /* malloc'd, upper-cased as sent back in the reply */
	size_t nfields;
	bool partial;  /* <offset.count> given */
	uint32_t offset;
	uint32_t count;
};

void imap_section_clear(struct imap_section *s);

#endif
