/* libFuzzer target for MTA-STS (src/queue/mtasts.c): the input is parsed
 * as a policy body and as one TXT record, and its lines are served as the
 * TXT records of _mta-sts.fuzz.example to mtasts_txt_id.
 * SECURITY: policy bodies and TXT records are attacker-controlled: the
 * parsers must stay in bounds and within their limits, and what they accept
 * must satisfy the header's invariants (checked here; a violation traps). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/xmalloc.h"
#include "mailauth/dnsif.h"
#include "queue/mtasts.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                            \
	do {                                                                   \
		if (!(cond))                                                   \
			__builtin_trap();                                      \
	} while (0)

static bool
alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9');
}

static void
check_id(const char *id)
{
	size_t n = strlen(id);

	CHECK(n >= 1 && n <= MTASTS_ID_MAX);
	for (size_t i = 0; i < n; i++)
		CHECK(alnum(id[i]));
}

/* An accepted policy: its invariants, its own patterns match, and written
 * back in canonical form it parses to the same policy. */
static void
check_policy(const struct mtasts_policy *p)
{
	struct mtasts_policy q = {0};
	static const char *const modes[] = {"none", "testing", "enforce"};
	size_t cap = 128 + (size_t)p->nmx * 264, off;
	char *text, why[128];

	CHECK(p->mode == MTASTS_NONE || p->mode == MTASTS_TESTING ||
	      p->mode == MTASTS_ENFORCE);
	CHECK(p->nmx <= MTASTS_MX_MAX);
	CHECK(p->mode == MTASTS_NONE || p->nmx > 0);
	CHECK(p->max_age <= MTASTS_MAX_AGE_MAX);
	for (size_t i = 0; i < p->nmx; i++) {
		const char *m = p->mx[i];
		size_t len = strlen(m);

		CHECK(len > 0 && len <= 255);
		if (m[0] == '*') {
			char host[264];

			CHECK(m[1] == '.');
			snprintf(host, sizeof(host), "a%s", m + 1);
			CHECK(strlen(host) > 253 || mtasts_mx_match(p, host));
			CHECK(!mtasts_mx_match(p, m + 2) ||
			      p->nmx > 1); /* another pattern may name it */
		} else {
			CHECK(mtasts_mx_match(p, m));
		}
	}

	text = xmalloc(cap);
	off = (size_t)snprintf(text, cap, "version: STSv1\nmode: %s\n",
	                       modes[p->mode]);
	for (size_t i = 0; i < p->nmx; i++)
		off += (size_t)snprintf(text + off, cap - off, "mx: %s\n",
		                        p->mx[i]);
	off += (size_t)snprintf(text + off, cap - off, "max_age: %u\n",
	                        (unsigned int)p->max_age);
	CHECK(off < cap);
	CHECK(mtasts_parse(text, off, &q, why, sizeof(why)) == 0);
	CHECK(q.mode == p->mode && q.nmx == p->nmx && q.max_age == p->max_age);
	for (size_t i = 0; i < p->nmx; i++)
		CHECK(strcmp(q.mx[i], p->mx[i]) == 0);
	mtasts_policy_clear(&q);
	free(text);
}

struct lines {
	const uint8_t *data;
	size_t size;
};

/* Each input line (without NUL bytes: a provider's strings have none) is
 * one TXT record; at most MA_DNS_RR_MAX. */
static int
lines_lookup(void *arg, const char *name, enum ma_dns_type type,
             struct ma_dns_answer *ans)
{
	const struct lines *l = arg;
	const uint8_t *p = l->data, *end = l->data + l->size;

	CHECK(type == MA_DNS_TXT);
	CHECK(strcmp(name, "_mta-sts.fuzz.example") == 0);
	ans->rr = xcalloc(MA_DNS_RR_MAX, sizeof(*ans->rr));
	while (p < end && ans->count < MA_DNS_RR_MAX) {
		const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
		const uint8_t *e = nl != NULL ? nl : end;
		char *rr = xmalloc((size_t)(e - p) + 1);
		size_t n = 0;

		for (const uint8_t *q = p; q < e; q++)
			if (*q != '\0')
				rr[n++] = (char)*q;
		rr[n] = '\0';
		ans->rr[ans->count++] = rr;
		p = nl != NULL ? nl + 1 : end;
	}
	ans->status = ans->count > 0 ? MA_DNS_OK : MA_DNS_NODATA;
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mtasts_policy p = {0};
	struct lines l = {data, size};
	struct ma_dns dns = {.lookup = lines_lookup, .arg = &l};
	char id[MTASTS_ID_MAX + 1], why[128];
	const char *text = (const char *)data;
	int rc;

	if (mtasts_parse(text, size, &p, why, sizeof(why)) == 0) {
		check_policy(&p);
		mtasts_policy_clear(&p);
	} else {
		CHECK(p.nmx == 0 && p.mode == MTASTS_NONE);
	}

	rc = mtasts_txt_parse(text, size, id);
	CHECK(rc >= -1 && rc <= 1);
	if (rc == 1)
		check_id(id);
	else
		CHECK(id[0] == '\0');

	rc = mtasts_txt_id(&dns, "fuzz.example", id);
	CHECK(rc == 0 || rc == 1);
	if (rc == 1)
		check_id(id);
	else
		CHECK(id[0] == '\0');
	return 0;
}
