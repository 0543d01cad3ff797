/* ARC internals shared by arc.c (validation) and arc_seal.c: the ARC
 * fields of a message sorted into sets by instance (RFC 8617 §4.2).
 * SECURITY: the fields are peer bytes; instances are bounded by
 * ARC_INSTANCE_MAX and nothing is written outside the fixed arrays. */
#ifndef TERN_MAILAUTH_ARC_INT_H
#define TERN_MAILAUTH_ARC_INT_H

#include <stdbool.h>
#include <stddef.h>

#include "mailauth/arc.h"
#include "mailauth/dkim_int.h"

/* The ARC fields of a message, by instance (index 1..n). */
struct arc_chain {
	const struct dkim_field *aar[ARC_INSTANCE_MAX + 1];
	const struct dkim_field *ams[ARC_INSTANCE_MAX + 1];
	const struct dkim_field *seal[ARC_INSTANCE_MAX + 1];
	/* Offset of the AAR payload (after "i=N;") within its field. */
	size_t aar_payload[ARC_INSTANCE_MAX + 1];
	/* cv= of each seal; cv_ok false when absent or not a status. */
	enum arc_status cv[ARC_INSTANCE_MAX + 1];
	bool cv_ok[ARC_INSTANCE_MAX + 1];
	unsigned n;    /* the highest instance seen (<= the limit) */
	bool too_many; /* an i= above the limit, or too many fields */
	/* The first problem seen while sorting: ARC_R_SYNTAX or
	 * ARC_R_DUPLICATE, and its instance (0 when unknown). */
	enum arc_reason sort_error;
	unsigned sort_instance;
};

/* Sort the ARC fields of m into c; limit is the highest instance allowed
 * (1..ARC_INSTANCE_MAX). */
void arc_chain_collect(const struct dkim_msg *m, unsigned limit,
                       struct arc_chain *c);
/* The verdict on the structure, in RFC 8617 §5.2 order: too many sets,
 * the newest seal cv=fail (ARC_R_ENDED), then the structure itself
 * (syntax, duplicates, gaps, cv= values). ARC_R_OK when none (c->n may
 * be 0: no ARC set). *instance_r: the instance concerned, or 0. */
enum arc_reason arc_chain_check(const struct arc_chain *c,
                                unsigned *instance_r);

#endif
