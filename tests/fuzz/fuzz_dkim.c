/* libFuzzer target for mailauth DKIM: tag lists, key records, signature
 * fields, body canonicalization (chunking-independent), verification of a
 * fuzzed message against a fuzzed key, and sign-then-verify.
 * SECURITY: all of these inputs are sender-controlled. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "core/buf.h"
#include "core/xmalloc.h"
#include "mailauth/dkim.h"
#include "mailauth/dkim_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* RFC 8032 §7.1 test 1 (the RFC 8463 "brisbane" key). */
static const uint8_t fuzz_seed[32] = {
    0x9d, 0x61, 0xb1, 0x9d, 0xef, 0xfd, 0x5a, 0x60, 0xba, 0x84, 0x4a,
    0xf4, 0x92, 0xec, 0x2c, 0xc4, 0x44, 0x49, 0xc5, 0x69, 0x7b, 0x32,
    0x69, 0x19, 0x70, 0x3b, 0xac, 0x03, 0x1c, 0xae, 0x7f, 0x60};
static const char fuzz_record[] =
    "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";

struct fuzz_dns {
	const char *record; /* NUL-terminated */
	unsigned mode;
};

static int
fuzz_lookup(void *arg, const char *name, enum ma_dns_type type,
            struct ma_dns_answer *ans)
{
	struct fuzz_dns *d = arg;

	(void)name;
	if (type != MA_DNS_TXT || strlen(name) > DKIM_DOMAIN_MAX)
		abort(); /* dkim only asks bounded TXT questions */
	switch (d->mode % 5) {
	case 0:
		ans->status = MA_DNS_NXDOMAIN;
		return 0;
	case 1:
		ans->status = MA_DNS_TEMPFAIL;
		return 0;
	case 2:
		return -1;
	case 3: /* two records: junk, then the fuzzed one */
		ans->rr = xcalloc(2, sizeof(*ans->rr));
		ans->rr[0] = xstrdup("v=spf1 -all");
		ans->rr[1] = xstrdup(d->record);
		ans->count = 2;
		ans->status = MA_DNS_OK;
		return 0;
	default:
		ans->rr = xcalloc(1, sizeof(*ans->rr));
		ans->rr[0] = xstrdup(d->record);
		ans->count = 1;
		ans->status = MA_DNS_OK;
		return 0;
	}
}

static void
fuzz_tags(const uint8_t *data, size_t size)
{
	struct dkim_tags tags;
	const char *error = NULL;

	if (dkim_tags_parse((const char *)data, size, &tags, &error) < 0) {
		if (error == NULL)
			abort();
		return;
	}
	if (tags.count > DKIM_TAGS_MAX)
		abort();
	for (size_t i = 0; i < tags.count; i++) {
		const struct dkim_tag *t = &tags.tag[i];
		size_t voff = (size_t)(t->value - (const char *)data);
		if (t->name_len == 0 || t->raw_start > voff ||
		    voff + t->value_len > t->raw_end || t->raw_end > size ||
		    (t->raw_end < size && data[t->raw_end] != ';'))
			abort();
	}
}

static void
fuzz_key(const uint8_t *data, size_t size)
{
	struct dkim_key key;

	if (dkim_key_parse((const char *)data, size, &key) == DKIM_R_OK &&
	    (key.pkey == NULL) != key.revoked)
		abort();
	dkim_key_clear(&key);
}

static void
fuzz_sig_field(const uint8_t *data, size_t size)
{
	struct dkim_sig_result res;
	struct dkim_limits limits = {.rsa_sha1 = (size & 1) != 0};
	struct dkim_field f;
	struct dkim_sig *sig = xcalloc(1, sizeof(*sig));
	uint8_t *field = xmalloc(size + 16);
	struct buf ar;

	memcpy(field, "DKIM-Signature:", 15);
	memcpy(field + 15, data, size);
	f.data = field;
	f.len = size + 15;
	f.name_len = 14;
	f.value_off = 15;
	memset(&res, 0, sizeof(res));
	(void)dkim_sig_parse(&f, &limits, sig, &res);
	if (strlen(res.b) > 8 || strlen(res.domain) > DKIM_DOMAIN_MAX ||
	    sig->b_start > sig->b_end || sig->b_end > f.len)
		abort();
	buf_init(&ar, 4096);
	if (dkim_ar_append(&ar, &res) < 0)
		abort();
	buf_free(&ar);
	free(field);
	free(sig);
}

/* Whole, one byte at a time, split in two: the same digest. */
static void
fuzz_body(const uint8_t *data, size_t size, enum dkim_canon canon)
{
	uint8_t md[3][EVP_MAX_MD_SIZE];
	unsigned len[3];
	uint64_t total[3];

	for (int k = 0; k < 3; k++) {
		struct dkim_body b;
		if (dkim_body_init(&b, canon, EVP_sha256(), size / 2 + 1) < 0)
			abort();
		if (k == 0) {
			dkim_body_update(&b, data, size);
		} else if (k == 1) {
			for (size_t i = 0; i < size; i++)
				dkim_body_update(&b, data + i, 1);
		} else {
			dkim_body_update(&b, data, size / 3);
			dkim_body_update(&b, data + size / 3, size - size / 3);
		}
		if (dkim_body_final(&b, md[k], &len[k]) < 0)
			abort();
		total[k] = b.total;
		dkim_body_clear(&b);
	}
	if (memcmp(md[0], md[1], len[0]) != 0 ||
	    memcmp(md[0], md[2], len[0]) != 0 || total[0] != total[1] ||
	    total[0] != total[2])
		abort();
}

/* record NUL message: verify with the record served for every name. */
static void
fuzz_verify(const uint8_t *data, size_t size, unsigned mode)
{
	const uint8_t *nul = memchr(data, '\0', size);
	struct dkim_limits limits = {.rsa_sha1 = (mode & 8) != 0,
	                             .rsa_bits_min = (mode & 8) ? 512 : 0,
	                             .partial_body_policy = (mode & 16) != 0};
	struct dkim_verify_result res;
	struct fuzz_dns d = {.mode = mode};
	struct ma_dns dns = {.lookup = fuzz_lookup, .arg = &d};
	char *record;
	struct buf ar;

	if (nul == NULL)
		return;
	record = xstrndup((const char *)data, (size_t)(nul - data));
	d.record = record;
	dkim_verify(&dns, nul + 1, size - (size_t)(nul + 1 - data), 1700000000,
	            &limits, &res);
	if (res.count > DKIM_VERIFY_MAX)
		abort();
	for (size_t i = 0; i < res.count; i++)
		if (res.sig[i].result == DKIM_NONE ||
		    res.sig[i].result > DKIM_PERMERROR ||
		    (res.sig[i].result == DKIM_PASS) !=
		        (res.sig[i].reason == DKIM_R_OK))
			abort();
	buf_init(&ar, 64 * 1024);
	if (dkim_ar_append_all(&ar, &res) < 0)
		abort();
	buf_free(&ar);
	free(record);
}

/* What we sign verifies (unless the message starts with WSP, which would
 * fold it into our field, or has more fields than are looked at). */
static void
fuzz_sign_verify(const uint8_t *data, size_t size, unsigned mode)
{
	static EVP_PKEY *key;
	struct dkim_sign_params p = {
	    .domain = "example.com",
	    .selector = "sel",
	    .algorithm = DKIM_ALG_ED25519_SHA256,
	    .header_canon = (enum dkim_canon)(mode & 1),
	    .body_canon = (enum dkim_canon)((mode >> 1) & 1),
	    .timestamp = 1700000000,
	    .body_length = (mode & 4) != 0};
	struct fuzz_dns d = {.record = fuzz_record, .mode = 4};
	struct ma_dns dns = {.lookup = fuzz_lookup, .arg = &d};
	struct dkim_verify_result res;
	const char *error = NULL;
	char *field;
	uint8_t *msg;
	size_t flen;

	if (key == NULL)
		key = EVP_PKEY_new_raw_private_key(
		    EVP_PKEY_ED25519, NULL, fuzz_seed, sizeof(fuzz_seed));
	if (key == NULL)
		abort();
	if (size > 0 && (data[0] == ' ' || data[0] == '\t'))
		return;
	field = dkim_sign_message(data, size, &p, key, &error);
	if (field == NULL) {
		if (error == NULL)
			abort();
		return;
	}
	flen = strlen(field);
	msg = xmalloc(flen + size + 1);
	memcpy(msg, field, flen);
	memcpy(msg + flen, data, size);
	dkim_verify(&dns, msg, flen + size, 1700000001, NULL, &res);
	if (res.count == 0 || (res.sig[0].result != DKIM_PASS &&
	                       res.sig[0].reason != DKIM_R_HEADERS))
		abort();
	free(msg);
	free(field);
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
	switch (mode % 7) {
	case 0:
		fuzz_tags(data, size);
		break;
	case 1:
		fuzz_key(data, size);
		break;
	case 2:
		fuzz_sig_field(data, size);
		break;
	case 3:
		fuzz_body(data, size, DKIM_CANON_SIMPLE);
		fuzz_body(data, size, DKIM_CANON_RELAXED);
		break;
	case 4:
	case 5:
		fuzz_verify(data, size, mode / 7);
		break;
	default:
		fuzz_sign_verify(data, size, mode / 7);
		break;
	}
	return 0;
}
