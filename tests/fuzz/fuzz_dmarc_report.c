/* libFuzzer target for DMARC aggregate reports (src/mailauth/
 * dmarc_report*.c): the input as an XML document, as an attachment (XML,
 * gzip or zip) and as a whole message with report attachments.
 * SECURITY: reports are attacker-controlled; parsing and decompression
 * must stay in bounds, stop at their caps, and hand out only reports that
 * keep the documented invariants. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "mailauth/dmarc_report.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_feedback(const struct dmarc_feedback *fb)
{
	uint64_t sum = 0;

	if (fb->report_id == NULL || fb->report_id[0] == '\0' ||
	    fb->domain == NULL || fb->domain[0] == '\0' ||
	    fb->nrecords > DMARC_REPORT_RECORDS_MAX || fb->pct > 100 ||
	    fb->pct < -1 || strlen(fb->report_id) > DMARC_REPORT_VALUE_MAX)
		abort();
	for (const char *c = fb->domain; *c != '\0'; c++)
		if (*c >= 'A' && *c <= 'Z')
			abort();
	for (size_t i = 0; i < fb->nrecords; i++) {
		const struct dmarc_feedback_record *r = &fb->records[i];

		if (r->source_ip == NULL || r->ndkim > DMARC_REPORT_AUTH_MAX ||
		    r->nspf > DMARC_REPORT_AUTH_MAX ||
		    (r->ndkim > 0) != (r->dkim_results != NULL) ||
		    (r->nspf > 0) != (r->spf_results != NULL) ||
		    r->disposition > DMARC_REPORT_P_OTHER ||
		    r->dkim > DMARC_REPORT_R_OTHER ||
		    r->spf > DMARC_REPORT_R_OTHER)
			abort();
		for (size_t j = 0; j < r->ndkim; j++)
			if (r->dkim_results[j].result > DMARC_REPORT_R_OTHER)
				abort();
		for (size_t j = 0; j < r->nspf; j++)
			(void)strlen(r->spf_results[j].domain != NULL
			                 ? r->spf_results[j].domain
			                 : "");
		sum = sum + r->count < sum ? UINT64_MAX : sum + r->count;
	}
	if (sum != fb->messages)
		abort();
}

static void
parse_one(const void *xml, size_t len)
{
	struct dmarc_feedback *fb = NULL;
	char *error = NULL;

	if (dmarc_report_parse(xml, len, &fb, &error) == 0) {
		if (fb == NULL || error != NULL)
			abort();
		check_feedback(fb);
		dmarc_report_free(&fb);
	} else {
		if (fb != NULL || error == NULL)
			abort();
		free(error);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dmarc_report_docs docs;
	struct dmarc_report_item *items = NULL;
	char *error = NULL;
	size_t n, total = 0;

	parse_one(data, size);

	if (dmarc_report_unpack(data, size, &docs, &error) == 0) {
		if (docs.n == 0 || docs.n > DMARC_REPORT_MEMBERS_MAX ||
		    error != NULL)
			abort();
		for (size_t i = 0; i < docs.n; i++) {
			total += docs.xml[i].len;
			parse_one(docs.xml[i].data, docs.xml[i].len);
		}
		if (total > DMARC_REPORT_XML_MAX)
			abort();
		dmarc_report_docs_clear(&docs);
	} else {
		if (docs.n != 0 || error == NULL)
			abort();
		free(error);
	}

	n = dmarc_report_from_message((const char *)data, size, &items);
	for (size_t i = 0; i < n; i++) {
		if ((items[i].feedback == NULL) == (items[i].error == NULL) ||
		    items[i].filename == NULL)
			abort();
		if (items[i].feedback != NULL)
			check_feedback(items[i].feedback);
	}
	dmarc_report_items_free(&items, n);
	return 0;
}
