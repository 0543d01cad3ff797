/* What `tern dmarc report` makes of the DMARC aggregate reports it reads:
 * per policy domain the reports and, per source IP, how much mail passed
 * aligned SPF, DKIM and DMARC, with a verdict (authorized, forwarder,
 * suspect, mixed); printed as text or as one JSON document. */
#ifndef TERN_CLI_DMARC_SUMMARY_H
#define TERN_CLI_DMARC_SUMMARY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mailauth/dmarc_report.h"

struct dmarc_summary_private;

struct dmarc_summary {
	/* Count only reports for this domain and its subdomains; NULL: all. */
	const char *filter;
	char **stores; /* the mailboxes read: address keys */
	size_t nstores;
	uint64_t messages_read; /* set by the caller */
	uint64_t reports;       /* counted */
	uint64_t duplicates;    /* the same reporter and report id again */
	uint64_t other_domains; /* left out by the filter */
	struct dmarc_summary_private *priv;
};

void dmarc_summary_init(struct dmarc_summary *s, const char *filter);
void dmarc_summary_free(struct dmarc_summary *s);
/* A mailbox to read (once). */
void dmarc_summary_store(struct dmarc_summary *s, const char *key);
/* A report found at where ("KEY FOLDER uid N FILE"). */
void dmarc_summary_add(struct dmarc_summary *s, const struct dmarc_feedback *fb,
                       const char *where);
/* Something that was not read, and why. */
void dmarc_summary_problem(struct dmarc_summary *s, const char *where,
                           const char *error);
/* Sort and print on stdout. */
void dmarc_summary_print(struct dmarc_summary *s, bool json);

#endif
