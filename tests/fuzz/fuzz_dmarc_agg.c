/* libFuzzer target for the DMARC aggregate reports we send
 * (src/mailauth/dmarc_agg.c): the input is an IPC_MSG_DMARC_RECORD payload
 * as a compromised front could send it, and, as a C string, a rua URI.
 * SECURITY: both are attacker-controlled. A record that decodes must pass
 * dmarc_agg_record_check, encode back to the very same bytes, and make a
 * report that our own report reader parses with the same values; a mailto:
 * URI that parses must give one address of printable ASCII, bounded. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/xmalloc.h"
#include "mailauth/dmarc_agg.h"
#include "mailauth/dmarc_report.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
fuzz_record(const uint8_t *data, size_t size)
{
	static const struct dmarc_agg_meta meta = {
	    .org_name = "mx.example.org",
	    .email = "postmaster@mx.example.org",
	    .report_id = "1.0123456789abcdef",
	    .begin = 0,
	    .end = 86399,
	};
	struct dmarc_agg_record rec;
	struct dmarc_feedback *fb = NULL;
	const char *error = NULL;
	char *perror = NULL;
	struct buf b;

	if (dmarc_agg_record_get(data, size, &rec, &error) < 0) {
		if (error == NULL)
			abort();
		return;
	}
	if (dmarc_agg_record_check(&rec, &error) < 0)
		abort();
	buf_init(&b, 0);
	if (dmarc_agg_record_put(&b, &rec) < 0 || b.len != size ||
	    memcmp(b.data, data, size) != 0)
		abort(); /* one encoding per record */
	buf_free(&b);

	buf_init(&b, DMARC_AGG_XML_MAX);
	if (dmarc_agg_xml(&meta, &rec.policy, &rec.row, 1, &b) < 0)
		abort();
	if (dmarc_report_parse(b.data, b.len, &fb, &perror) < 0)
		abort(); /* what we write, we read */
	if (fb->nrecords != 1 || fb->messages != 1 ||
	    fb->records[0].ndkim != rec.row.ndkim || fb->records[0].nspf != 1)
		abort();
	dmarc_report_free(&fb);
	buf_free(&b);
}

static void
fuzz_mailto(const uint8_t *data, size_t size)
{
	char *uri = xmalloc(size + 1);
	char addr[DMARC_AGG_ADDRESS_MAX + 1], domain[DMARC_DOMAIN_MAX + 1];

	memcpy(uri, data, size);
	uri[size] = '\0';
	if (dmarc_agg_mailto(uri, addr, domain) == 0) {
		const char *at = strchr(addr, '@');

		if (at == NULL || strchr(at + 1, '@') != NULL ||
		    strcmp(at + 1, domain) != 0 ||
		    strlen(addr) > DMARC_AGG_ADDRESS_MAX)
			abort();
		for (const char *p = addr; *p != '\0'; p++)
			if (*p <= 0x20 || *p >= 0x7f || strchr("<>\",\\", *p))
				abort();
	}
	free(uri);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_record(data, size);
	fuzz_mailto(data, size);
	return 0;
}
