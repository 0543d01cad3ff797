/* DMARC report internals shared by dmarc_report*.c and the tests: the XML
 * reader, a pull parser over a document held in memory.
 * SECURITY: the document is untrusted. Depth, element count, names and
 * character data are bounded (DMARC_REPORT_*_MAX); a DOCTYPE with an
 * internal subset is refused, so no entity is ever defined or expanded
 * beyond the five predefined ones and character references. */
#ifndef TERN_MAILAUTH_DMARC_REPORT_INT_H
#define TERN_MAILAUTH_DMARC_REPORT_INT_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"
#include "mailauth/dmarc_report.h"

/* Local names longer than this match nothing the schema knows. */
#define DMARC_XML_LOCAL_MAX 32

enum dmarc_xml_event {
	DMARC_XML_START, /* <name ...> or <name/> */
	DMARC_XML_END,   /* </name>, or right after the START of <name/> */
	DMARC_XML_DONE,  /* the root element closed; only white space,
	                    comments and PIs followed */
	DMARC_XML_ERROR, /* error holds why; every later call says ERROR */
};

struct dmarc_xml {
	const unsigned char *start, *p, *end;
	/* the open elements: their qualified names in the input */
	struct {
		const unsigned char *name;
		size_t len;
	} open[DMARC_REPORT_DEPTH_MAX];
	size_t depth;
	size_t elements;
	bool root_seen;
	bool pending_end; /* <name/>: END comes next */
	bool failed;
	/* After START and END: the local name (prefix removed; "" when too
	 * long). After END: the element's character data since its last
	 * child, entities and CDATA decoded (text.len bytes, NUL-terminated
	 * by buf_cstr). */
	char name[DMARC_XML_LOCAL_MAX + 1];
	struct buf text;
	char error[160];
};

void dmarc_xml_init(struct dmarc_xml *x, const void *data, size_t len);
void dmarc_xml_clear(struct dmarc_xml *x);
enum dmarc_xml_event dmarc_xml_next(struct dmarc_xml *x);
/* The 1-based line of the reader's position, for messages. */
size_t dmarc_xml_line(const struct dmarc_xml *x);

#endif
