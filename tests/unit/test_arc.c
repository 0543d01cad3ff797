/* Unit tests for mailauth ARC (RFC 8617): seal-then-verify chains of one
 * to three hops (RSA and Ed25519 keys made here), oldest-pass, tampering
 * with the body, signed fields and ARC fields, structure (missing and
 * duplicate instances, cv= rules and cv=fail), limits, the split sealer,
 * refused parameters, and the Authentication-Results parts. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "core/base64.h"
#include "core/buf.h"
#include "core/xmalloc.h"
#include "mailauth/arc.h"
#include "mailauth/dkim_int.h"

#define T0 1700000000

/* ------------------------------------------------------------ DNS table */

struct zone_rec {
	char *name;
	char *value;
	enum ma_dns_status status;
};

struct zone {
	size_t count;
	struct zone_rec rec[64];
	unsigned queries;
};

static void
zone_add(struct zone *z, const char *name, const char *value,
         enum ma_dns_status status)
{
	struct zone_rec *r;

	assert_true(z->count < sizeof(z->rec) / sizeof(z->rec[0]));
	r = &z->rec[z->count++];
	r->name = xstrdup(name);
	r->value = value != NULL ? xstrdup(value) : NULL;
	r->status = status;
}

static void
zone_clear(struct zone *z)
{
	for (size_t i = 0; i < z->count; i++) {
		free(z->rec[i].name);
		free(z->rec[i].value);
	}
	memset(z, 0, sizeof(*z));
}

static int
zone_lookup(void *arg, const char *name, enum ma_dns_type type,
            struct ma_dns_answer *ans)
{
	struct zone *z = arg;

	z->queries++;
	ans->status = MA_DNS_NXDOMAIN;
	assert_int_equal(type, MA_DNS_TXT);
	for (size_t i = 0; i < z->count; i++) {
		struct zone_rec *r = &z->rec[i];
		if (strcasecmp(r->name, name) != 0)
			continue;
		if (r->status != MA_DNS_OK) {
			ans->status = r->status;
			return 0;
		}
		ans->rr =
		    xreallocarray(ans->rr, ans->count + 1, sizeof(*ans->rr));
		ans->rr[ans->count++] = xstrdup(r->value);
		ans->status = MA_DNS_OK;
	}
	return 0;
}

/* ----------------------------------------------------------------- keys */

struct hop {
	const char *domain;
	const char *selector;
	enum dkim_algorithm alg;
	const char *authres;
};

static EVP_PKEY *rsa_key, *ed_key;
static char *rsa_record, *ed_record;

static char *
record_of(EVP_PKEY *key)
{
	uint8_t raw[64], *der = NULL;
	size_t rawlen = sizeof(raw);
	char *b64, *rec;
	int derlen;

	if (EVP_PKEY_is_a(key, "ED25519")) {
		assert_int_equal(EVP_PKEY_get_raw_public_key(key, raw, &rawlen),
		                 1);
		b64 = xmalloc(BASE64_ENCODED_SIZE(rawlen));
		base64_encode(raw, rawlen, b64);
		rec = xasprintf("v=DKIM1; k=ed25519; p=%s", b64);
	} else {
		derlen = i2d_PUBKEY(key, &der);
		assert_true(derlen > 0);
		b64 = xmalloc(BASE64_ENCODED_SIZE((size_t)derlen));
		base64_encode(der, (size_t)derlen, b64);
		rec = xasprintf("v=DKIM1; k=rsa; p=%s", b64);
		OPENSSL_free(der);
	}
	free(b64);
	return rec;
}

static int
group_setup(void **state)
{
	(void)state;
	rsa_key = EVP_RSA_gen(2048);
	ed_key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	if (rsa_key == NULL || ed_key == NULL)
		return -1;
	rsa_record = record_of(rsa_key);
	ed_record = record_of(ed_key);
	return 0;
}

static int
group_teardown(void **state)
{
	(void)state;
	EVP_PKEY_free(rsa_key);
	EVP_PKEY_free(ed_key);
	free(rsa_record);
	free(ed_record);
	return 0;
}

static EVP_PKEY *
key_of(enum dkim_algorithm alg)
{
	return alg == DKIM_ALG_ED25519_SHA256 ? ed_key : rsa_key;
}

static const struct hop hops[] = {
    {"lists.example.org", "rsa", DKIM_ALG_RSA_SHA256,
     "mx.lists.example.org; spf=pass smtp.mailfrom=alice@origin.example; "
     "dkim=pass header.d=origin.example header.s=s1; dmarc=pass "
     "header.from=origin.example"},
    {"fwd.example.net", "ed", DKIM_ALG_ED25519_SHA256,
     "mx.fwd.example.net; spf=fail smtp.mailfrom=lists.example.org; "
     "dkim=fail header.d=origin.example; dmarc=fail "
     "header.from=origin.example; arc=pass"},
    {"relay.example.com", "rsa", DKIM_ALG_RSA_SHA256,
     "mx.relay.example.com; spf=pass smtp.mailfrom=fwd.example.net; "
     "dkim=none; dmarc=none; arc=pass"},
};

/* Every hop's key under its selector. */
static void
zone_std(struct zone *z)
{
	for (size_t i = 0; i < sizeof(hops) / sizeof(hops[0]); i++) {
		char *name = xasprintf("%s._domainkey.%s", hops[i].selector,
		                       hops[i].domain);
		zone_add(z, name,
		         hops[i].alg == DKIM_ALG_ED25519_SHA256 ? ed_record
		                                                : rsa_record,
		         MA_DNS_OK);
		free(name);
	}
}

/* ------------------------------------------------------------- messages */

static const char base_msg[] =
    "Received: from client.origin.example by mx.origin.example;\n"
    "\tMon, 01 Jan 2024 00:00:00 +0000\n"
    "DKIM-Signature: v=1; a=rsa-sha256; d=origin.example; s=s1; h=from;\n"
    "\tbh=AAAA; b=BBBB\n"
    "From: Alice <alice@origin.example>\n"
    "To: list@lists.example.org\n"
    "Subject: hello there\n"
    "Date: Mon, 01 Jan 2024 00:00:00 +0000\n"
    "Message-ID: <1@origin.example>\n"
    "\n"
    "Hi there,\n"
    "\n"
    "lunch at noon?\n";

/* LF → CRLF where the CR is missing; NUL-terminated. */
static char *
crlf(const char *text)
{
	struct buf b;

	buf_init(&b, 0);
	for (size_t i = 0; text[i] != '\0'; i++) {
		if (text[i] == '\n' && (i == 0 || text[i - 1] != '\r'))
			assert_int_equal(buf_append_byte(&b, '\r'), 0);
		assert_int_equal(buf_append_byte(&b, (uint8_t)text[i]), 0);
	}
	assert_non_null(buf_cstr(&b));
	return (char *)b.data;
}

/* s with the first old replaced by new (which must be there). */
static char *
replace(const char *s, const char *old, const char *new)
{
	const char *p = strstr(s, old);

	if (p == NULL)
		fail_msg("\"%s\" not in the message", old);
	return xasprintf("%.*s%s%s", (int)(p - s), s, new, p + strlen(old));
}

/* The whole field starting at the first line that begins with start. */
static void
field_span(const char *s, const char *start, size_t *off_r, size_t *len_r)
{
	const char *p = s, *end;

	for (;;) {
		if (strncmp(p, start, strlen(start)) == 0)
			break;
		p = strstr(p, "\r\n");
		if (p == NULL || p[2] == '\r')
			fail_msg("no field \"%s\"", start);
		p += 2;
	}
	end = p;
	do {
		end = strstr(end, "\r\n") + 2;
	} while (*end == ' ' || *end == '\t');
	*off_r = (size_t)(p - s);
	*len_r = (size_t)(end - p);
}

static char *
drop_field(const char *s, const char *start)
{
	size_t off, len;

	field_span(s, start, &off, &len);
	return xasprintf("%.*s%s", (int)off, s, s + off + len);
}

/* The field put once more on top of the message. */
static char *
dup_field(const char *s, const char *start)
{
	size_t off, len;

	field_span(s, start, &off, &len);
	return xasprintf("%.*s%s", (int)len, s + off, s);
}

/* --------------------------------------------------------------- helpers */

static struct arc_verify_result *
verify_with(struct zone *z, const char *msg, const struct arc_limits *limits)
{
	struct ma_dns dns = {.lookup = zone_lookup, .arg = z};
	struct arc_verify_result *res = NULL;

	assert_int_equal(arc_verify(&dns, (const uint8_t *)msg, strlen(msg),
	                            T0 + 3600, limits, &res),
	                 0);
	assert_non_null(res);
	return res;
}

static struct arc_verify_result *
verify(const char *msg)
{
	struct zone z = {0};
	struct arc_verify_result *res;

	zone_std(&z);
	res = verify_with(&z, msg, NULL);
	zone_clear(&z);
	return res;
}

static char *
seal_fields(const char *msg, const struct hop *h, enum arc_status chain,
            time_t t, const char **error_r)
{
	struct arc_seal_params p = {
	    .domain = h->domain,
	    .selector = h->selector,
	    .algorithm = h->alg,
	    .authres = h->authres,
	    .chain = chain,
	    .timestamp = t,
	};

	return arc_seal_message((const uint8_t *)msg, strlen(msg), &p,
	                        key_of(h->alg), error_r);
}

/* msg with a new ARC set of hop h on top; every line ≤ 78 characters. */
static char *
seal(const char *msg, const struct hop *h, enum arc_status chain, time_t t)
{
	const char *error = NULL;
	char *fields = seal_fields(msg, h, chain, t, &error), *out, *line;

	if (fields == NULL)
		fail_msg("seal: %s", error);
	assert_true(strncmp(fields, "ARC-Seal: i=", 12) == 0);
	for (line = fields; *line != '\0';) {
		char *nl = strstr(line, "\r\n");
		assert_non_null(nl);
		assert_true(nl - line <= DKIM_LINE_MAX);
		line = nl + 2;
	}
	out = xasprintf("%s%s", fields, msg);
	free(fields);
	return out;
}

/* Seal hops[0..n-1] in turn, each verifying what it received first. */
static char *
chain_of(size_t n)
{
	char *msg = crlf(base_msg);

	for (size_t i = 0; i < n; i++) {
		struct arc_verify_result *res = verify(msg);
		char *next;

		assert_int_equal(res->status, i == 0 ? ARC_NONE : ARC_PASS);
		next = seal(msg, &hops[i], res->status, T0 + (time_t)i + 1);
		arc_verify_result_free(&res);
		free(msg);
		msg = next;
	}
	return msg;
}

static void
assert_fail(const char *msg, enum arc_reason reason, unsigned instance)
{
	struct arc_verify_result *res = verify(msg);

	if (res->status != ARC_FAIL || res->reason != reason)
		fail_msg("expected fail \"%s\", got %s \"%s\" (i=%u)",
		         arc_reason_str(reason), arc_status_str(res->status),
		         arc_reason_str(res->reason), res->reason_instance);
	assert_int_equal(res->reason_instance, instance);
	arc_verify_result_free(&res);
}

static char *
ar_of(const struct arc_verify_result *res, const char *ip)
{
	struct buf b;

	buf_init(&b, 4096);
	assert_int_equal(arc_ar_append(&b, res, ip), 0);
	assert_non_null(buf_cstr(&b));
	return (char *)b.data;
}

/* ----------------------------------------------------------------- tests */

static void
test_no_chain(void **state)
{
	char *msg = crlf(base_msg), *ar;
	struct arc_verify_result *res;
	struct zone z = {0};

	(void)state;
	res = verify_with(&z, msg, NULL);
	assert_int_equal(res->status, ARC_NONE);
	assert_int_equal(res->count, 0);
	assert_int_equal(z.queries, 0);
	ar = ar_of(res, "192.0.2.1");
	assert_string_equal(ar, "arc=none");
	free(ar);
	arc_verify_result_free(&res);
	assert_null(res);
	arc_verify_result_free(&res); /* NULL is fine */
	free(msg);
}

static void
test_one_hop(void **state)
{
	(void)state;
	for (size_t k = 0; k < 2; k++) {
		char *msg = crlf(base_msg), *sealed, *ar;
		struct arc_verify_result *res;
		struct zone z = {0};

		sealed = seal(msg, &hops[k], ARC_NONE, T0);
		assert_non_null(strstr(sealed, "ARC-Seal: i=1; a="));
		assert_non_null(strstr(sealed, "cv=none;"));
		assert_non_null(
		    strstr(sealed, "ARC-Message-Signature: i=1; a="));
		assert_non_null(
		    strstr(sealed, "ARC-Authentication-Results: i=1; mx."));
		zone_std(&z);
		res = verify_with(&z, sealed, NULL);
		assert_int_equal(res->status, ARC_PASS);
		assert_int_equal(res->reason, ARC_R_OK);
		assert_int_equal(res->count, 1);
		assert_int_equal(res->oldest_pass, 0);
		assert_false(res->ended);
		assert_int_equal(res->set[0].instance, 1);
		assert_int_equal(res->set[0].cv, ARC_NONE);
		assert_int_equal(res->set[0].seal.result, DKIM_PASS);
		assert_int_equal(res->set[0].ams.result, DKIM_PASS);
		assert_string_equal(res->set[0].seal.domain, hops[k].domain);
		assert_string_equal(res->set[0].seal.selector,
		                    hops[k].selector);
		assert_string_equal(res->set[0].seal.algorithm,
		                    dkim_algorithm_str(hops[k].alg));
		assert_string_equal(res->set[0].aar, hops[k].authres);
		/* AMS and seal share the key: one lookup */
		assert_int_equal(z.queries, 1);
		ar = ar_of(res, "192.0.2.1");
		assert_string_equal(ar,
		                    k == 0 ? "arc=pass (i=1 spf=pass dkim=pass "
		                             "dmarc=pass) header.oldest-pass=0 "
		                             "smtp.remote-ip=192.0.2.1"
		                           : "arc=pass (i=1 spf=fail dkim=fail "
		                             "dmarc=fail) header.oldest-pass=0 "
		                             "smtp.remote-ip=192.0.2.1");
		free(ar);
		arc_verify_result_free(&res);
		zone_clear(&z);
		free(sealed);
		free(msg);
	}
}

static void
test_three_hops(void **state)
{
	const char *trusted[] = {"FWD.example.net", NULL};
	const char *nobody[] = {"other.example", NULL};
	const struct arc_set_result *set;
	char *msg = chain_of(3), *ar, *relayed, result[16];
	struct arc_verify_result *res;

	(void)state;
	res = verify(msg);
	assert_int_equal(res->status, ARC_PASS);
	assert_int_equal(res->count, 3);
	assert_int_equal(res->oldest_pass, 0);
	for (size_t i = 0; i < 3; i++) {
		assert_int_equal(res->set[i].instance, i + 1);
		assert_int_equal(res->set[i].cv, i == 0 ? ARC_NONE : ARC_PASS);
		assert_int_equal(res->set[i].seal.result, DKIM_PASS);
		assert_int_equal(res->set[i].ams.result, DKIM_PASS);
		assert_string_equal(res->set[i].seal.domain, hops[i].domain);
		assert_string_equal(res->set[i].aar, hops[i].authres);
	}
	/* A trusted forwarder's view of the original message. */
	set = arc_trusted_set(res, trusted);
	assert_non_null(set);
	assert_int_equal(set->instance, 2);
	assert_null(arc_trusted_set(res, nobody));
	set = &res->set[0];
	assert_int_equal(
	    arc_ar_method_result(set->aar, "dmarc", result, sizeof(result)), 0);
	assert_string_equal(result, "pass");
	ar = ar_of(res, NULL);
	assert_string_equal(ar, "arc=pass (i=3 spf=pass dkim=none "
	                        "dmarc=none) header.oldest-pass=0");
	free(ar);
	arc_verify_result_free(&res);
	/* Received fields added on the way do not matter. */
	relayed = xasprintf("Received: from relay.example.com by mx;\r\n"
	                    "\tTue, 02 Jan 2024 00:00:00 +0000\r\n%s",
	                    msg);
	res = verify(relayed);
	assert_int_equal(res->status, ARC_PASS);
	arc_verify_result_free(&res);
	free(relayed);
	free(msg);
}

/* A list that changes the body between its verification and its seal:
 * the chain passes and oldest-pass points past the broken AMS. */
static void
test_oldest_pass(void **state)
{
	char *msg = chain_of(1), *changed, *sealed;
	struct arc_verify_result *res;

	(void)state;
	changed = replace(msg, "lunch at noon?\r\n",
	                  "lunch at noon?\r\n-- \r\nlist footer\r\n");
	sealed = seal(changed, &hops[1], ARC_PASS, T0 + 2);
	res = verify(sealed);
	assert_int_equal(res->status, ARC_PASS);
	assert_int_equal(res->oldest_pass, 2);
	assert_int_equal(res->set[0].ams.result, DKIM_FAIL);
	assert_int_equal(res->set[0].ams.reason, DKIM_R_BODY_HASH);
	assert_int_equal(res->set[1].ams.result, DKIM_PASS);
	arc_verify_result_free(&res);
	/* …and is not looked for when told so */
	{
		struct arc_limits lim = {.skip_oldest_pass = true};
		struct zone z = {0};
		zone_std(&z);
		res = verify_with(&z, sealed, &lim);
		assert_int_equal(res->status, ARC_PASS);
		assert_int_equal(res->oldest_pass, 0);
		assert_int_equal(res->set[0].ams.result, DKIM_NONE);
		arc_verify_result_free(&res);
		zone_clear(&z);
	}
	free(sealed);
	free(changed);
	free(msg);
}

/* Tampering with a sealed two-hop chain: old → new, and the verdict. */
static void
test_tampering(void **state)
{
	static const struct {
		const char *what, *old, *new;
		enum arc_reason reason;
		unsigned instance;
	} cases[] = {
	    {"body", "lunch at noon?", "lunch at one?", ARC_R_AMS, 2},
	    {"signed header", "Subject: hello there", "Subject: hello here",
	     ARC_R_AMS, 2},
	    {"DKIM-Signature (signed by the AMS)", "bh=AAAA", "bh=AAAB",
	     ARC_R_AMS, 2},
	    {"AAR of instance 1", "smtp.mailfrom=alice@origin.example",
	     "smtp.mailfrom=eve@origin.example", ARC_R_SEAL, 2},
	    {"AAR of instance 2", "dkim=fail header.d=origin.example",
	     "dkim=pass header.d=origin.example", ARC_R_SEAL, 2},
	    {"seal 1 timestamp", "t=1700000001; cv=none;",
	     "t=1700000009; cv=none;", ARC_R_SEAL, 2},
	    {"cv=none at i=1 claimed pass", "cv=none;", "cv=pass;", ARC_R_CV,
	     1},
	    {"cv=pass at i=2 claimed none", "cv=pass;", "cv=none;", ARC_R_CV,
	     2},
	    {"cv missing", "cv=pass;", "cx=pass;", ARC_R_CV, 2},
	    {"h= in a seal", "ARC-Seal: i=2;", "ARC-Seal: i=2; h=From;",
	     ARC_R_SEAL, 2},
	    {"AMS 2 renumbered", "ARC-Message-Signature: i=2;",
	     "ARC-Message-Signature: i=3;", ARC_R_MISSING, 2},
	    {"AAR without instance", "ARC-Authentication-Results: i=1;",
	     "ARC-Authentication-Results: i=;", ARC_R_SYNTAX, 0},
	    {"AAR instance 0", "ARC-Authentication-Results: i=1;",
	     "ARC-Authentication-Results: i=0;", ARC_R_SYNTAX, 0},
	    {"seal tag list broken", "ARC-Seal: i=1;", "ARC-Seal: i=1;;",
	     ARC_R_SYNTAX, 0},
	    {"instance 51", "ARC-Authentication-Results: i=1;",
	     "ARC-Authentication-Results: i=51;", ARC_R_TOO_MANY, 0},
	    {"newest cv=fail", "cv=pass;", "cv=fail;", ARC_R_ENDED, 2},
	};
	char *msg = chain_of(2);

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *bad = replace(msg, cases[i].old, cases[i].new);
		print_message("tamper: %s\n", cases[i].what);
		assert_fail(bad, cases[i].reason, cases[i].instance);
		free(bad);
	}
	free(msg);
}

/* Relaxed canonicalization: refolding ARC fields changes nothing. */
static void
test_refolded(void **state)
{
	char *msg = chain_of(2), *a, *b;
	struct arc_verify_result *res;

	(void)state;
	a = replace(msg, "ARC-Seal: i=1; a=", "arc-seal:   i=1;\r\n\t a=");
	b = replace(a, "ARC-Authentication-Results: i=1; mx.",
	            "ARC-Authentication-Results:i=1;\r\n  mx.");
	res = verify(b);
	assert_int_equal(res->status, ARC_PASS);
	assert_string_equal(res->set[0].aar, hops[0].authres);
	arc_verify_result_free(&res);
	free(a);
	free(b);
	free(msg);
}

static void
test_structure(void **state)
{
	char *msg = chain_of(2), *bad, *tmp;

	(void)state;
	/* a whole instance missing */
	tmp = drop_field(msg, "ARC-Seal: i=1;");
	bad = drop_field(tmp, "ARC-Message-Signature: i=1;");
	free(tmp);
	tmp = bad;
	bad = drop_field(tmp, "ARC-Authentication-Results: i=1;");
	assert_fail(bad, ARC_R_MISSING, 1);
	free(tmp);
	free(bad);
	/* one field of the newest set missing */
	bad = drop_field(msg, "ARC-Message-Signature: i=2;");
	assert_fail(bad, ARC_R_MISSING, 2);
	free(bad);
	/* duplicates, also exact copies */
	bad = dup_field(msg, "ARC-Authentication-Results: i=1;");
	assert_fail(bad, ARC_R_DUPLICATE, 1);
	free(bad);
	bad = dup_field(msg, "ARC-Seal: i=2;");
	assert_fail(bad, ARC_R_DUPLICATE, 2);
	free(bad);
	/* the newest set dropped whole: a shorter chain that still passes
	 * (nothing binds a chain to its future) */
	tmp = drop_field(msg, "ARC-Seal: i=2;");
	bad = drop_field(tmp, "ARC-Message-Signature: i=2;");
	free(tmp);
	tmp = drop_field(bad, "ARC-Authentication-Results: i=2;");
	{
		struct arc_verify_result *res = verify(tmp);
		assert_int_equal(res->status, ARC_PASS);
		assert_int_equal(res->count, 1);
		arc_verify_result_free(&res);
	}
	free(tmp);
	free(bad);
	free(msg);
}

/* cv=fail: sealed by a hop that found the chain broken; it ends there. */
static void
test_cv_fail(void **state)
{
	char *msg = chain_of(2), *broken, *sealed, *ar;
	struct arc_verify_result *res;
	const char *error = NULL;

	(void)state;
	broken = replace(msg, "lunch at noon?", "lunch at one?");
	res = verify(broken);
	assert_int_equal(res->status, ARC_FAIL);
	assert_int_equal(res->reason, ARC_R_AMS);
	ar = ar_of(res, "2001:db8::25");
	assert_string_equal(ar, "arc=fail reason=\"message signature did "
	                        "not verify (i=2)\" "
	                        "smtp.remote-ip=2001:db8::25");
	free(ar);
	/* the status has to fit the chain (none: there is one) */
	assert_null(seal_fields(broken, &hops[2], ARC_NONE, T0 + 3, &error));
	sealed = seal(broken, &hops[2], res->status, T0 + 3);
	arc_verify_result_free(&res);
	assert_non_null(strstr(sealed, "ARC-Seal: i=3; a="));
	assert_non_null(strstr(sealed, "cv=fail;"));
	res = verify(sealed);
	assert_int_equal(res->status, ARC_FAIL);
	assert_int_equal(res->reason, ARC_R_ENDED);
	assert_int_equal(res->reason_instance, 3);
	assert_true(res->ended);
	assert_int_equal(res->count, 3);
	assert_int_equal(res->set[2].cv, ARC_FAIL);
	assert_string_equal(res->set[2].seal.domain, hops[2].domain);
	arc_verify_result_free(&res);
	/* …and nobody extends it */
	assert_null(seal_fields(sealed, &hops[0], ARC_FAIL, T0 + 4, &error));
	assert_non_null(strstr(error, "cv=fail"));
	free(sealed);
	free(broken);
	free(msg);
}

/* The cv=fail seal covers only its own set (§5.1.2): its signature
 * holds whatever the older sets say. */
static void
test_cv_fail_scope(void **state)
{
	char *msg = chain_of(1), *broken, *sealed, *older;
	struct zone z = {0};
	struct ma_dns dns = {.lookup = zone_lookup, .arg = &z};
	struct arc_verify_result *res = NULL;
	struct dkim_msg m;
	struct dkim_sig sig;
	struct dkim_sig_result sr;
	struct dkim_limits dl = {0};
	struct dkim_key key;
	struct buf data;
	uint8_t digest[32];
	unsigned dlen;
	size_t i;

	(void)state;
	broken = replace(msg, "lunch at noon?", "lunch at one?");
	sealed = seal(broken, &hops[1], ARC_FAIL, T0 + 2);
	/* change the older AAR: the new seal still verifies by hand */
	older = replace(sealed, "dmarc=pass header.from",
	                "dmarc=fail "
	                "header.from");
	dkim_msg_parse((const uint8_t *)older, strlen(older), &m);
	for (i = 0; i < m.count; i++)
		if (dkim_field_is(&m.fields[i], "ARC-Seal", 8))
			break;
	memset(&sr, 0, sizeof(sr));
	assert_int_equal(dkim_sig_parse_kind(&m.fields[i], &dl,
	                                     DKIM_SIG_ARC_SEAL, &sig, &sr),
	                 DKIM_R_OK);
	buf_init(&data, 0);
	/* AAR 2, AMS 2 (the two fields under the seal), the seal */
	assert_int_equal(dkim_canon_header(DKIM_CANON_RELAXED,
	                                   m.fields[i + 2].data,
	                                   m.fields[i + 2].len, false, &data),
	                 0);
	assert_int_equal(dkim_canon_header(DKIM_CANON_RELAXED,
	                                   m.fields[i + 1].data,
	                                   m.fields[i + 1].len, false, &data),
	                 0);
	{
		struct buf f;
		buf_init(&f, 0);
		assert_int_equal(buf_append(&f, m.fields[i].data, sig.b_start),
		                 0);
		assert_int_equal(buf_append(&f, m.fields[i].data + sig.b_end,
		                            m.fields[i].len - sig.b_end),
		                 0);
		assert_int_equal(dkim_canon_header(DKIM_CANON_RELAXED, f.data,
		                                   f.len, true, &data),
		                 0);
		buf_free(&f);
	}
	assert_int_equal(
	    EVP_Digest(data.data, data.len, digest, &dlen, EVP_sha256(), NULL),
	    1);
	zone_std(&z);
	assert_int_equal(dkim_fetch_key(&dns, &sig, &key), DKIM_R_OK);
	assert_true(dkim_check_signature(&key, &sig, digest, dlen));
	dkim_key_clear(&key);
	buf_free(&data);
	dkim_msg_clear(&m);
	assert_int_equal(arc_verify(&dns, (const uint8_t *)older, strlen(older),
	                            T0, NULL, &res),
	                 0);
	assert_int_equal(res->reason, ARC_R_ENDED);
	arc_verify_result_free(&res);
	zone_clear(&z);
	free(older);
	free(sealed);
	free(broken);
	free(msg);
}

static void
test_keys_and_dns(void **state)
{
	char *msg = chain_of(2);
	struct arc_verify_result *res;
	struct zone z = {0};

	(void)state;
	/* hop 1's key is gone: seal 2 still verifies, seal 1 does not */
	zone_add(&z, "ed._domainkey.fwd.example.net", ed_record, MA_DNS_OK);
	res = verify_with(&z, msg, NULL);
	assert_int_equal(res->status, ARC_FAIL);
	assert_int_equal(res->reason, ARC_R_SEAL);
	assert_int_equal(res->reason_instance, 1);
	assert_int_equal(res->set[1].seal.result, DKIM_PASS);
	assert_int_equal(res->set[0].seal.reason, DKIM_R_KEY_MISSING);
	arc_verify_result_free(&res);
	zone_clear(&z);
	/* DNS failure for the newest: every failure is permanent */
	zone_add(&z, "ed._domainkey.fwd.example.net", NULL, MA_DNS_TEMPFAIL);
	res = verify_with(&z, msg, NULL);
	assert_int_equal(res->status, ARC_FAIL);
	assert_int_equal(res->reason, ARC_R_AMS);
	assert_int_equal(res->set[1].ams.result, DKIM_TEMPERROR);
	assert_int_equal(z.queries, 1);
	arc_verify_result_free(&res);
	zone_clear(&z);
	/* the wrong key type */
	zone_add(&z, "ed._domainkey.fwd.example.net", rsa_record, MA_DNS_OK);
	res = verify_with(&z, msg, NULL);
	assert_int_equal(res->reason, ARC_R_AMS);
	assert_int_equal(res->set[1].ams.reason, DKIM_R_KEY_TYPE);
	arc_verify_result_free(&res);
	zone_clear(&z);
	free(msg);
}

/* The five steps by hand, as front and lookup would split them, give the
 * same fields as arc_seal_message; steps out of order are refused. */
static void
test_split_sealer(void **state)
{
	struct arc_seal_params p = {
	    .domain = hops[0].domain,
	    .selector = hops[0].selector,
	    .algorithm = DKIM_ALG_RSA_SHA256,
	    .authres = hops[0].authres,
	    .chain = ARC_NONE,
	    .timestamp = T0,
	};
	char *msg = crlf(base_msg), *whole, *fields;
	struct arc_sealer *s = NULL;
	uint8_t sig[DKIM_SIGNATURE_MAX];
	const uint8_t *digest;
	const char *error = NULL;
	size_t dlen, siglen;

	(void)state;
	whole = arc_seal_message((const uint8_t *)msg, strlen(msg), &p, rsa_key,
	                         &error);
	assert_non_null(whole);
	assert_int_equal(
	    arc_seal_begin((const uint8_t *)msg, strlen(msg), &p, &s, &error),
	    0);
	assert_int_equal(arc_sealer_instance(s), 1);
	assert_int_equal(arc_sealer_algorithm(s), DKIM_ALG_RSA_SHA256);
	assert_null(arc_sealer_seal_digest(s, &dlen));
	assert_null(arc_seal_finish(s, sig, 64, &error));
	digest = arc_sealer_ams_digest(s, &dlen);
	assert_int_equal(dlen, 32);
	assert_int_equal(dkim_sign_with_key(rsa_key, DKIM_ALG_RSA_SHA256,
	                                    digest, dlen, sig, sizeof(sig),
	                                    &siglen, &error),
	                 0);
	assert_int_equal(arc_seal_ams(s, sig, siglen, &error), 0);
	assert_int_equal(arc_seal_ams(s, sig, siglen, &error), -1);
	digest = arc_sealer_seal_digest(s, &dlen);
	assert_non_null(digest);
	assert_int_equal(dkim_sign_with_key(rsa_key, DKIM_ALG_RSA_SHA256,
	                                    digest, dlen, sig, sizeof(sig),
	                                    &siglen, &error),
	                 0);
	assert_null(arc_seal_finish(s, sig, 0, &error)); /* bad length */
	fields = arc_seal_finish(s, sig, siglen, &error);
	assert_non_null(fields);
	assert_string_equal(fields, whole); /* PKCS#1 v1.5 is deterministic */
	assert_null(arc_seal_finish(s, sig, siglen, &error));
	arc_sealer_free(&s);
	assert_null(s);
	arc_sealer_free(&s);
	/* the key must fit the algorithm */
	assert_null(arc_seal_message((const uint8_t *)msg, strlen(msg), &p,
	                             ed_key, &error));
	free(fields);
	free(whole);
	free(msg);
}

static void
test_seal_params_refused(void **state)
{
	static const char *const arc_h[] = {"From", "ARC-Seal", NULL};
	static const char *const ar_h[] = {"From", "authentication-results",
	                                   NULL};
	static const char *const no_from[] = {"To", "Subject", NULL};
	char *msg = crlf(base_msg), *nofrom, *chain = chain_of(1), *long_ar;
	struct arc_seal_params base = {
	    .domain = "example.org",
	    .selector = "sel",
	    .algorithm = DKIM_ALG_ED25519_SHA256,
	    .authres = "mx.example.org; spf=pass",
	    .chain = ARC_NONE,
	    .timestamp = T0,
	};
	struct {
		const char *what;
		struct arc_seal_params p;
		const char *msg;
	} cases[] = {
	    {"no domain", base, msg},
	    {"bad selector", base, msg},
	    {"rsa-sha1", base, msg},
	    {"no authres", base, msg},
	    {"empty authres", base, msg},
	    {"control character", base, msg},
	    {"bare LF", base, msg},
	    {"too long", base, msg},
	    {"ARC field signed", base, msg},
	    {"AR signed", base, msg},
	    {"From not signed", base, msg},
	    {"no From field", base, NULL},
	    {"none with a chain", base, chain},
	    {"fail without a chain", base, msg},
	    {"pass without a chain", base, msg},
	    {"negative time", base, msg},
	    {"bad status", base, msg},
	};
	const char *error;

	(void)state;
	nofrom = replace(msg, "From: Alice", "X-From: Alice");
	long_ar = xmalloc(ARC_AAR_MAX + 100);
	memset(long_ar, 'a', ARC_AAR_MAX + 99);
	long_ar[ARC_AAR_MAX + 99] = '\0';
	cases[0].p.domain = NULL;
	cases[1].p.selector = "bad selector";
	cases[2].p.algorithm = DKIM_ALG_RSA_SHA1;
	cases[3].p.authres = NULL;
	cases[4].p.authres = " \t ";
	cases[5].p.authres = "mx.example.org; spf=pass\x01";
	cases[6].p.authres = "mx.example.org;\nspf=pass";
	cases[7].p.authres = long_ar;
	cases[8].p.headers = arc_h;
	cases[9].p.headers = ar_h;
	cases[10].p.headers = no_from;
	cases[11].msg = nofrom;
	cases[13].p.chain = ARC_FAIL;
	cases[14].p.chain = ARC_PASS;
	cases[15].p.timestamp = -1;
	cases[16].p.chain = (enum arc_status)7;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct arc_sealer *s = NULL;
		print_message("refused: %s\n", cases[i].what);
		error = NULL;
		assert_int_equal(arc_seal_begin((const uint8_t *)cases[i].msg,
		                                strlen(cases[i].msg),
		                                &cases[i].p, &s, &error),
		                 -1);
		assert_null(s);
		assert_non_null(error);
	}
	/* a folded value is fine, and comes out folded its own way */
	{
		struct arc_seal_params p = base;
		struct arc_verify_result *res;
		struct zone z = {0};
		char *fields, *sealed;

		p.authres = "  mx.example.org;\r\n\tspf=pass smtp.mailfrom=a@b;"
		            "\r\n dkim=pass header.d=origin.example  \r\n";
		fields = arc_seal_message((const uint8_t *)msg, strlen(msg), &p,
		                          ed_key, &error);
		assert_non_null(fields);
		assert_non_null(strstr(fields,
		                       "ARC-Authentication-Results: "
		                       "i=1; mx.example.org;\tspf=pass "
		                       "smtp.mailfrom=a@b;\r\n dkim=pass "
		                       "header.d=origin.example\r\n"));
		sealed = xasprintf("%s%s", fields, msg);
		zone_add(&z, "sel._domainkey.example.org", ed_record,
		         MA_DNS_OK);
		res = verify_with(&z, sealed, NULL);
		assert_int_equal(res->status, ARC_PASS);
		assert_string_equal(res->set[0].aar,
		                    "mx.example.org; spf=pass "
		                    "smtp.mailfrom=a@b; dkim=pass "
		                    "header.d=origin.example");
		arc_verify_result_free(&res);
		zone_clear(&z);
		free(sealed);
		free(fields);
	}
	free(long_ar);
	free(nofrom);
	free(chain);
	free(msg);
}

/* h= as given is used as given; the default covers DKIM-Signature. */
static void
test_ams_headers(void **state)
{
	static const char *const h[] = {"From", "Subject", NULL};
	struct arc_seal_params p = {
	    .domain = hops[1].domain,
	    .selector = hops[1].selector,
	    .algorithm = DKIM_ALG_ED25519_SHA256,
	    .authres = hops[1].authres,
	    .chain = ARC_NONE,
	    .timestamp = T0,
	    .headers = h,
	};
	char *msg = crlf(base_msg), *fields, *sealed, *changed;
	struct arc_verify_result *res;
	const char *error = NULL;

	(void)state;
	fields = arc_seal_message((const uint8_t *)msg, strlen(msg), &p, ed_key,
	                          &error);
	assert_non_null(fields);
	assert_non_null(strstr(fields, " h=From : Subject;"));
	sealed = xasprintf("%s%s", fields, msg);
	/* To is not signed: changing it breaks nothing */
	changed = replace(sealed, "To: list@", "To: other@");
	res = verify(changed);
	assert_int_equal(res->status, ARC_PASS);
	arc_verify_result_free(&res);
	free(changed);
	free(sealed);
	free(fields);
	/* the default list */
	p.headers = NULL;
	fields = arc_seal_message((const uint8_t *)msg, strlen(msg), &p, ed_key,
	                          &error);
	assert_non_null(fields);
	assert_non_null(strstr(fields, "DKIM-Signature;"));
	assert_null(strstr(fields, "Received"));
	free(fields);
	free(msg);
}

static void
test_limits(void **state)
{
	struct hop h = {"fwd.example.net", "ed", DKIM_ALG_ED25519_SHA256,
	                "mx.fwd.example.net; arc=pass"};
	char *msg = crlf(base_msg), *next, *tmp;
	struct arc_verify_result *res;
	struct arc_limits lim = {.instances = 10};
	struct zone z = {0};
	const char *error = NULL;

	(void)state;
	for (unsigned i = 1; i <= ARC_INSTANCE_MAX; i++) {
		next =
		    seal(msg, &h, i == 1 ? ARC_NONE : ARC_PASS, T0 + (time_t)i);
		free(msg);
		msg = next;
	}
	res = verify(msg);
	assert_int_equal(res->status, ARC_PASS);
	assert_int_equal(res->count, ARC_INSTANCE_MAX);
	arc_verify_result_free(&res);
	/* no 51st set, whatever the status */
	assert_null(seal_fields(msg, &h, ARC_PASS, T0, &error));
	assert_non_null(strstr(error, "50"));
	assert_null(seal_fields(msg, &h, ARC_FAIL, T0, &error));
	/* a local limit below 50 */
	zone_std(&z);
	res = verify_with(&z, msg, &lim);
	assert_int_equal(res->status, ARC_FAIL);
	assert_int_equal(res->reason, ARC_R_TOO_MANY);
	assert_int_equal(z.queries, 0);
	arc_verify_result_free(&res);
	zone_clear(&z);
	/* more ARC fields than 50 sets can have */
	tmp = dup_field(msg, "ARC-Seal: i=50;");
	assert_fail(tmp, ARC_R_TOO_MANY, 0);
	free(tmp);
	free(msg);
	/* an AAR too long to keep: the chain still validates */
	{
		char *big = xmalloc(ARC_AAR_MAX + 64);
		struct hop hb = h;
		size_t n = (size_t)snprintf(big, 64, "mx.example.net; x=");

		memset(big + n, 'y', ARC_AAR_MAX - n - 10);
		big[ARC_AAR_MAX - 10] = '\0';
		for (size_t i = 20; i < ARC_AAR_MAX - 20; i += 60)
			big[i] = ' ';
		hb.authres = big;
		msg = crlf(base_msg);
		next = seal(msg, &hb, ARC_NONE, T0);
		res = verify(next);
		assert_int_equal(res->status, ARC_PASS);
		assert_non_null(res->set[0].aar);
		arc_verify_result_free(&res);
		tmp = replace(next, "x=", "x=zzzzzzzzzzzz");
		res = verify(tmp);
		assert_int_equal(res->status, ARC_FAIL); /* sealed content */
		assert_null(res->set[0].aar);            /* past the maximum */
		arc_verify_result_free(&res);
		free(tmp);
		free(next);
		free(msg);
		free(big);
	}
	/* too many header fields to see them all */
	{
		struct buf b;
		char *sealed;

		msg = chain_of(1);
		buf_init(&b, 0);
		for (size_t i = 0; i < DKIM_HEADER_FIELDS_MAX; i++)
			assert_int_equal(buf_printf(&b, "X-N: %zu\r\n", i), 0);
		assert_int_equal(buf_append_str(&b, msg), 0);
		assert_non_null(buf_cstr(&b));
		sealed = (char *)b.data;
		assert_fail(sealed, ARC_R_HEADERS, 0);
		assert_null(seal_fields(sealed, &h, ARC_PASS, T0, &error));
		free(sealed);
		free(msg);
	}
}

static void
test_ar_method_result(void **state)
{
	static const struct {
		const char *payload, *method, *result; /* NULL: absent */
	} cases[] = {
	    {"mx.example.net; spf=pass smtp.mailfrom=a@b", "spf", "pass"},
	    {"mx.example.net; spf=pass; dkim=fail; dmarc=none", "dkim", "fail"},
	    {"mx.example.net 1; SPF = SoftFail (x; y) smtp.mailfrom=a", "spf",
	     "softfail"},
	    {"mx.example.net; dkim/1=pass header.d=x", "dkim", "pass"},
	    {"mx.example.net; (c;mt) dmarc=(why) pass", "dmarc", "pass"},
	    {"mx.example.net; spf=pass reason=\"a;dmarc=fail\"; dmarc=pass",
	     "dmarc", "pass"},
	    {"mx.example.net; x-dmarc=pass", "dmarc", NULL},
	    {"dmarc=pass", "dmarc", NULL}, /* authserv-id first */
	    {"mx.example.net; none", "none", NULL},
	    {"mx.example.net; dmarc=", "dmarc", NULL},
	    {"mx.example.net; dmarc=pass", "arc", NULL},
	    {"mx.example.net; spf=\"pass\"", "spf", NULL},
	    {"mx.example.net; dkim=pass (unclosed; dmarc=pass", "dmarc", NULL},
	    {"", "spf", NULL},
	};
	char result[16];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int r = arc_ar_method_result(cases[i].payload, cases[i].method,
		                             result, sizeof(result));
		print_message("ar: %s\n", cases[i].payload);
		if (cases[i].result == NULL) {
			assert_int_equal(r, -1);
		} else {
			assert_int_equal(r, 0);
			assert_string_equal(result, cases[i].result);
		}
	}
	/* a result longer than the room */
	assert_int_equal(
	    arc_ar_method_result("m; spf=temperror", "spf", result, 5), -1);
}

static void
test_ar_fragment(void **state)
{
	struct arc_set_result set = {.instance = 1};
	struct arc_verify_result res = {
	    .status = ARC_PASS, .count = 1, .set = &set, .oldest_pass = 0};
	struct buf small;
	char *ar;

	(void)state;
	set.aar = xstrdup("mx; dmarc=pass (sure) header.from=x");
	ar = ar_of(&res, "bad ip; x=y");
	assert_string_equal(ar, "arc=pass (i=1 dmarc=pass) "
	                        "header.oldest-pass=0");
	free(ar);
	free(set.aar);
	set.aar = NULL; /* an AAR that was too long */
	ar = ar_of(&res, "192.0.2.7");
	assert_string_equal(ar, "arc=pass (i=1) header.oldest-pass=0 "
	                        "smtp.remote-ip=192.0.2.7");
	free(ar);
	res.status = ARC_FAIL;
	res.reason = ARC_R_TOO_MANY;
	ar = ar_of(&res, NULL);
	assert_string_equal(ar, "arc=fail reason=\"too many ARC sets\"");
	free(ar);
	buf_init(&small, 8);
	assert_int_equal(arc_ar_append(&small, &res, NULL), -1);
	buf_free(&small);
	assert_string_equal(arc_status_str(ARC_PASS), "pass");
	assert_string_equal(arc_reason_str((enum arc_reason)99), "unknown");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_no_chain),
	    cmocka_unit_test(test_one_hop),
	    cmocka_unit_test(test_three_hops),
	    cmocka_unit_test(test_oldest_pass),
	    cmocka_unit_test(test_tampering),
	    cmocka_unit_test(test_refolded),
	    cmocka_unit_test(test_structure),
	    cmocka_unit_test(test_cv_fail),
	    cmocka_unit_test(test_cv_fail_scope),
	    cmocka_unit_test(test_keys_and_dns),
	    cmocka_unit_test(test_split_sealer),
	    cmocka_unit_test(test_seal_params_refused),
	    cmocka_unit_test(test_ams_headers),
	    cmocka_unit_test(test_limits),
	    cmocka_unit_test(test_ar_method_result),
	    cmocka_unit_test(test_ar_fragment),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
