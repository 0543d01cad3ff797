/* libFuzzer target for mailauth ARC: Authentication-Results payloads,
 * validation of a fuzzed message (keys served for every name, or DNS
 * failures), and seal-then-validate for each chain status.
 * SECURITY: all of these inputs are sender-controlled. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "core/buf.h"
#include "core/xmalloc.h"
#include "mailauth/arc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_NOW 1700000001

/* RFC 8032 §7.1 test 1. The sealed seeds in corpus/arc/ were made with
 * tests/unit/arc_driver and this key as d=example.com s=sel at
 * t=1700000000; their first byte picks the target as below (verify_*:
 * 0x09, keys served; seal_*: 0x03 none, 0x07 pass, 0x0b fail). */
static const uint8_t fuzz_seed[32] = {
    0x9d, 0x61, 0xb1, 0x9d, 0xef, 0xfd, 0x5a, 0x60, 0xba, 0x84, 0x4a,
    0xf4, 0x92, 0xec, 0x2c, 0xc4, 0x44, 0x49, 0xc5, 0x69, 0x7b, 0x32,
    0x69, 0x19, 0x70, 0x3b, 0xac, 0x03, 0x1c, 0xae, 0x7f, 0x60};
static const char fuzz_record[] =
    "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";

static int
fuzz_lookup(void *arg, const char *name, enum ma_dns_type type,
            struct ma_dns_answer *ans)
{
	unsigned mode = *(const unsigned *)arg;

	if (type != MA_DNS_TXT || strlen(name) > DKIM_DOMAIN_MAX)
		abort(); /* only bounded TXT questions */
	switch (mode % 4) {
	case 0:
		ans->status = MA_DNS_TEMPFAIL;
		return 0;
	case 1:
		ans->status = MA_DNS_NXDOMAIN;
		return 0;
	default:
		ans->rr = xcalloc(1, sizeof(*ans->rr));
		ans->rr[0] = xstrdup(fuzz_record);
		ans->count = 1;
		ans->status = MA_DNS_OK;
		return 0;
	}
}

static bool
fuzz_token(const char *s)
{
	if (*s == '\0')
		return false;
	for (; *s != '\0'; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
		      *s == '-' || *s == '_' || *s == '.'))
			return false;
	return true;
}

static void
fuzz_ar(const uint8_t *data, size_t size)
{
	static const char *const methods[] = {"spf", "dkim", "dmarc", "arc",
	                                      "x"};
	char *payload = xstrndup((const char *)data, size), result[16];

	for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
		if (arc_ar_method_result(payload, methods[i], result,
		                         sizeof(result)) == 0 &&
		    !fuzz_token(result))
			abort();
	free(payload);
}

/* The invariants of any result; the AR fragment always fits 64 KB. */
static void
fuzz_check(const struct arc_verify_result *res)
{
	static const char *const trusted[] = {"example.com", NULL};
	const struct arc_set_result *t;
	struct buf ar;

	if (res->count > ARC_INSTANCE_MAX || res->status > ARC_FAIL ||
	    res->reason > ARC_R_SEAL || (res->count > 0) != (res->set != NULL))
		abort();
	if (res->status == ARC_NONE && (res->count != 0 || res->reason != 0))
		abort();
	if (res->status == ARC_PASS) {
		if (res->reason != ARC_R_OK || res->count == 0 ||
		    res->oldest_pass > res->count || res->oldest_pass == 1 ||
		    res->set[res->count - 1].ams.result != DKIM_PASS)
			abort();
		for (size_t i = 0; i < res->count; i++)
			if (res->set[i].seal.result != DKIM_PASS ||
			    res->set[i].cv != (i == 0 ? ARC_NONE : ARC_PASS) ||
			    res->set[i].instance != i + 1)
				abort();
	}
	if (res->status == ARC_FAIL && res->reason == ARC_R_OK)
		abort();
	if (res->ended != (res->reason == ARC_R_ENDED))
		abort();
	for (size_t i = 0; i < res->count; i++)
		if (res->set[i].aar != NULL &&
		    strlen(res->set[i].aar) > ARC_AAR_MAX)
			abort();
	t = arc_trusted_set(res, trusted);
	if (t != NULL && res->status != ARC_PASS)
		abort();
	buf_init(&ar, 64 * 1024);
	if (arc_ar_append(&ar, res, "192.0.2.1") < 0)
		abort();
	buf_free(&ar);
}

static void
fuzz_verify(const uint8_t *data, size_t size, unsigned mode)
{
	struct ma_dns dns = {.lookup = fuzz_lookup, .arg = &mode};
	struct arc_limits limits = {.instances = (mode & 4) ? 3 : 0,
	                            .skip_oldest_pass = (mode & 8) != 0};
	struct arc_verify_result *res = NULL;

	if (arc_verify(&dns, data, size, FUZZ_NOW, &limits, &res) != 0 ||
	    res == NULL)
		abort();
	fuzz_check(res);
	arc_verify_result_free(&res);
}

/* What we seal validates as far as it can: with cv=none the chain
 * passes, with cv=pass our seal and AMS hold, with cv=fail the chain
 * ends at our set. Not when the message starts with WSP (it would fold
 * into our AAR) or has more fields than are looked at. */
static void
fuzz_seal_verify(const uint8_t *data, size_t size, unsigned mode)
{
	static EVP_PKEY *key;
	unsigned dns_mode = 2;
	struct arc_seal_params p = {
	    .domain = "example.com",
	    .selector = "sel",
	    .algorithm = DKIM_ALG_ED25519_SHA256,
	    .authres = "mx.example.com; spf=pass smtp.mailfrom=example.org; "
	               "arc=pass",
	    .chain = (enum arc_status)(mode % 3),
	    .timestamp = FUZZ_NOW - 1,
	};
	struct ma_dns dns = {.lookup = fuzz_lookup, .arg = &dns_mode};
	struct arc_verify_result *res = NULL;
	struct arc_sealer *s = NULL;
	const char *error = NULL;
	char *fields;
	uint8_t *msg;
	size_t flen;
	unsigned instance;

	if (key == NULL)
		key = EVP_PKEY_new_raw_private_key(
		    EVP_PKEY_ED25519, NULL, fuzz_seed, sizeof(fuzz_seed));
	if (key == NULL)
		abort();
	if (size > 0 && (data[0] == ' ' || data[0] == '\t'))
		return;
	if (arc_seal_begin(data, size, &p, &s, &error) < 0) {
		if (error == NULL || s != NULL)
			abort();
		return;
	}
	instance = arc_sealer_instance(s);
	arc_sealer_free(&s);
	if (instance < 1 || instance > ARC_INSTANCE_MAX)
		abort();
	fields = arc_seal_message(data, size, &p, key, &error);
	if (fields == NULL)
		abort(); /* begin said yes */
	flen = strlen(fields);
	msg = xmalloc(flen + size + 1);
	memcpy(msg, fields, flen);
	memcpy(msg + flen, data, size);
	if (arc_verify(&dns, msg, flen + size, FUZZ_NOW, NULL, &res) != 0)
		abort();
	fuzz_check(res);
	if (res->reason != ARC_R_HEADERS) {
		if (res->count != instance)
			abort();
		if (p.chain == ARC_NONE && res->status != ARC_PASS)
			abort();
		if (p.chain == ARC_FAIL && (res->reason != ARC_R_ENDED ||
		                            res->reason_instance != instance))
			abort();
		if (p.chain == ARC_PASS && (res->reason == ARC_R_AMS ||
		                            (res->reason == ARC_R_SEAL &&
		                             res->reason_instance == instance)))
			abort();
	}
	arc_verify_result_free(&res);
	free(msg);
	free(fields);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned mode;

	if (size < 1)
		return 0;
	mode = data[0];
	data++;
	size--;
	switch (mode % 4) {
	case 0:
		fuzz_ar(data, size);
		break;
	case 1:
	case 2:
		fuzz_verify(data, size, mode / 4);
		break;
	default:
		fuzz_seal_verify(data, size, mode / 4);
		break;
	}
	return 0;
}
