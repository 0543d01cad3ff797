/* Unit tests for mailauth DKIM: tag lists, key records, canonicalization
 * (with trickle feeding), signing and verification against the external
 * fixtures in $TERN_TESTDATA/dkim (RFC 8463 appendix A, stalwart
 * mail-auth, the Mail::DKIM corpus, dkimpy keys and messages). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "core/base64.h"
#include "core/buf.h"
#include "core/xmalloc.h"
#include "mailauth/dkim.h"
#include "mailauth/dkim_int.h"

#define RFC8463_TIME 1528637909
#define STALWART_TIME 1667843664
#define NOW_2024 1717000000

/* ------------------------------------------------------------ fixtures */

static const char *
testdata(void)
{
	static char beside[4096];
	const char *d = getenv("TERN_TESTDATA");
	const char *src = getenv("TERN_TEST_SRCDIR");
	struct stat st;

	if (d != NULL && *d != '\0')
		return d;
	/* ../shared/testdata beside the repository, where it is kept. */
	if (src != NULL && *src != '\0') {
		int n = snprintf(beside, sizeof(beside), "%s/../shared/testdata",
		                 src);

		if (n > 0 && (size_t)n < sizeof(beside) &&
		    stat(beside, &st) == 0 && S_ISDIR(st.st_mode))
			return beside;
	}
	return "../shared/testdata"; /* from the repository's top */
}

static uint8_t *
read_file(const char *rel, size_t *len_r)
{
	char *path = xasprintf("%s/dkim/%s", testdata(), rel);
	FILE *f = fopen(path, "rb");
	struct buf b;
	uint8_t chunk[4096];
	size_t n;

	if (f == NULL)
		fail_msg("cannot open %s (set TERN_TESTDATA)", path);
	buf_init(&b, 0);
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		assert_int_equal(buf_append(&b, chunk, n), 0);
	fclose(f);
	free(path);
	assert_non_null(buf_cstr(&b));
	*len_r = b.len;
	return b.data;
}

/* LF → CRLF where the CR is missing. */
static uint8_t *
crlf(const uint8_t *in, size_t len, size_t *len_r)
{
	struct buf b;

	buf_init(&b, 0);
	for (size_t i = 0; i < len; i++) {
		if (in[i] == '\n' && (i == 0 || in[i - 1] != '\r'))
			assert_int_equal(buf_append_byte(&b, '\r'), 0);
		assert_int_equal(buf_append_byte(&b, in[i]), 0);
	}
	assert_non_null(buf_cstr(&b));
	*len_r = b.len;
	return b.data;
}

static uint8_t *
read_msg(const char *rel, size_t *len_r)
{
	size_t len;
	uint8_t *raw = read_file(rel, &len), *msg = crlf(raw, len, len_r);

	free(raw);
	return msg;
}

/* A message built in the test: LF in the literal, CRLF out. */
static uint8_t *
msg_of(const char *text, size_t *len_r)
{
	return crlf((const uint8_t *)text, strlen(text), len_r);
}

/* ------------------------------------------------------------ DNS table */

struct zone_rec {
	char *name;
	char *value;
	enum ma_dns_status status;
};

struct zone {
	size_t count;
	struct zone_rec rec[256];
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

/* "name value" lines; NXDOMAIN, ~~…~~ (DNS failure) and "" understood. */
static void
zone_add_lines(struct zone *z, const char *text, size_t len)
{
	const char *p = text, *end = text + len;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl != NULL ? nl : end;
		char *line = xstrndup(p, (size_t)(le - p)), *sp, *v;
		size_t n = strlen(line);

		while (n > 0 && (line[n - 1] == '\r' || line[n - 1] == ' '))
			line[--n] = '\0';
		p = nl != NULL ? nl + 1 : end;
		if (line[0] == '\0' || line[0] == '#' ||
		    (sp = strpbrk(line, " \t")) == NULL) {
			free(line);
			continue;
		}
		*sp = '\0';
		v = sp + 1 + strspn(sp + 1, " \t");
		if (strcmp(v, "NXDOMAIN") == 0)
			zone_add(z, line, NULL, MA_DNS_NXDOMAIN);
		else if (strncmp(v, "~~", 2) == 0)
			zone_add(z, line, NULL, MA_DNS_TEMPFAIL);
		else
			zone_add(z, line, strcmp(v, "\"\"") == 0 ? "" : v,
			         MA_DNS_OK);
		free(line);
	}
}

static void
zone_load(struct zone *z, const char *rel)
{
	size_t len;
	uint8_t *text = read_file(rel, &len);

	zone_add_lines(z, (const char *)text, len);
	free(text);
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

static struct ma_dns
zone_dns(struct zone *z)
{
	struct ma_dns dns = {.lookup = zone_lookup, .arg = z};

	return dns;
}

/* ----------------------------------------------------------------- keys */

static EVP_PKEY *
load_key(const char *rel)
{
	size_t len, n = 0, seedlen;
	uint8_t *text = read_file(rel, &len), seed[64];
	EVP_PKEY *pkey = NULL;

	if (len > 10 && memcmp(text, "-----BEGIN", 10) == 0) {
		BIO *bio = BIO_new_mem_buf(text, (int)len);
		pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
		BIO_free(bio);
	} else {
		for (size_t i = 0; i < len; i++)
			if (text[i] > ' ')
				text[n++] = text[i];
		assert_int_equal(base64_decode((char *)text, n, seed,
		                               sizeof(seed), &seedlen),
		                 0);
		assert_int_equal(seedlen, 32);
		pkey = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL,
		                                    seed, 32);
	}
	free(text);
	assert_non_null(pkey);
	return pkey;
}

/* The first line of a dkimpy .txt/.dns key file. */
static char *
load_record(const char *rel)
{
	size_t len;
	char *text = (char *)read_file(rel, &len);

	text[strcspn(text, "\r\n")] = '\0';
	return text;
}

/* --------------------------------------------------------------- helpers */

static void
verify(struct zone *z, const uint8_t *msg, size_t len, time_t now,
       const struct dkim_limits *limits, struct dkim_verify_result *res)
{
	struct ma_dns dns = zone_dns(z);

	assert_int_equal(dkim_verify(&dns, msg, len, now, limits, res), 0);
}

static char *
sign(const uint8_t *msg, size_t len, const struct dkim_sign_params *p,
     EVP_PKEY *key)
{
	const char *error = NULL;
	char *field = dkim_sign_message(msg, len, p, key, &error);

	if (field == NULL)
		fail_msg("signing failed: %s", error);
	return field;
}

/* field + msg */
static uint8_t *
prepend(const char *field, const uint8_t *msg, size_t len, size_t *len_r)
{
	size_t fl = strlen(field);
	uint8_t *out = xmalloc(fl + len + 1);

	memcpy(out, field, fl);
	memcpy(out + fl, msg, len);
	out[fl + len] = '\0';
	*len_r = fl + len;
	return out;
}

/* Replace the first occurrence of from by to. */
static uint8_t *
replace(const uint8_t *msg, size_t len, const char *from, const char *to,
        size_t *len_r)
{
	const uint8_t *at = memmem(msg, len, from, strlen(from));
	size_t fl = strlen(from), tl = strlen(to), pre;
	uint8_t *out;

	assert_non_null(at);
	pre = (size_t)(at - msg);
	out = xmalloc(len - fl + tl + 1);
	memcpy(out, msg, pre);
	memcpy(out + pre, to, tl);
	memcpy(out + pre + tl, at + fl, len - pre - fl);
	*len_r = len - fl + tl;
	out[*len_r] = '\0';
	return out;
}

static void
assert_result(const struct dkim_sig_result *r, enum dkim_result result,
              enum dkim_reason reason)
{
	if (r->result != result || r->reason != reason)
		fail_msg("got %s (%s), want %s (%s)",
		         dkim_result_str(r->result), dkim_reason_str(r->reason),
		         dkim_result_str(result), dkim_reason_str(reason));
}

/* Every line at most 78 characters, CRLF line ends, continuation lines
 * begin with a space. */
static void
assert_folded(const char *field)
{
	const char *p = field;

	assert_true(strncmp(field, "DKIM-Signature: ", 16) == 0);
	while (*p != '\0') {
		const char *e = strstr(p, "\r\n");
		assert_non_null(e);
		assert_true(e - p <= DKIM_LINE_MAX);
		assert_true(memchr(p, '\n', (size_t)(e - p)) == NULL);
		p = e + 2;
		if (*p != '\0')
			assert_true(*p == ' ');
	}
}

/* The b= of the first DKIM-Signature in field, FWS removed. */
static char *
b_value(const char *field)
{
	const char *p = strstr(field, " b=");
	struct buf b;

	assert_non_null(p);
	buf_init(&b, 0);
	for (p += 3; *p != '\0' && *p != ';'; p++)
		if (*p != ' ' && *p != '\t' && *p != '\r' && *p != '\n')
			assert_int_equal(buf_append_byte(&b, (uint8_t)*p), 0);
	assert_non_null(buf_cstr(&b));
	return (char *)b.data;
}

static const char *const rfc8463_headers[] = {
    "from", "to",      "subject", "date", "message-id",
    "from", "subject", "date",    NULL};

static const char rfc8463_ed_b[] =
    "/gCrinpcQOoIfuHNQIbq4pgh9kyIK3AQUdt9OdqQehSwhEIug4D11BusFa3bT3FY5OsU7Z"
    "bnKELq+eXdp1Q1Dw==";
static const char rfc8463_rsa_b[] =
    "F45dVWDfMbQDGHJFlXUNB2HKfbCeLRyhDXgFpEL8GwpsRe0IeIixNTe3DhCVlUrSjV4Bwc"
    "VcOF6+FF3Zo9Rpo1tFOeS9mPYQTnGdaSGsgeefOsk2JzdA+L10TeYt9BgDfQNZtKdN1WO"
    "//KgIqXP7OdEFE4LjFYNcUxZQ4FADY+8=";
static const char rfc8463_bh[] = "2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=";

/* The RFC 8463 A.3 message without its two signatures. */
static uint8_t *
rfc8463_unsigned(size_t *len_r)
{
	size_t len;
	uint8_t *msg = read_msg("rfc8463/rfc8463-A3-signed.eml", &len);
	const uint8_t *from = memmem(msg, len, "From: ", 6);
	uint8_t *out;

	assert_non_null(from);
	*len_r = len - (size_t)(from - msg);
	out = xmalloc(*len_r + 1);
	memcpy(out, from, *len_r + 1);
	free(msg);
	return out;
}

static const char simple_msg[] =
    "From: Joe SixPack <joe@football.example.com>\n"
    "To: Suzie Q <suzie@shopping.example.net>\n"
    "Subject: Is dinner ready?\n"
    "Date: Fri, 11 Jul 2003 21:00:37 -0700 (PDT)\n"
    "Message-ID: <20030712040037.46341.5F8J@football.example.com>\n"
    "\n"
    "Hi.\n"
    "\n"
    "We lost the game.  Are you hungry yet?\n"
    "\n"
    "Joe.\n";

/* ================================================================ tags */

struct tag_case {
	const char *text;
	int ok;
	size_t count;
	const char *name; /* one tag to look at */
	const char *value;
};

static const struct tag_case tag_cases[] = {
    {"v=1; a=rsa-sha256", 0, 2, "a", "rsa-sha256"},
    {"v=1;", 0, 1, "v", "1"},
    {"  v = 1 ;\r\n\ta=b ; ", 0, 2, "a", "b"},
    {"", 0, 0, NULL, NULL},
    {"   ", 0, 0, NULL, NULL},
    {"p=", 0, 1, "p", ""},
    {"a=b c\r\n d", 0, 1, "a", "b c\r\n d"},
    {"a_b1=x", 0, 1, "a_b1", "x"},
    {"n=send%20comments; g=*; s=*;p=AB", 0, 4, "p", "AB"},
    {"v=1;;a=b", -1, 0, NULL, NULL},
    {"v=1; v=2", -1, 0, NULL, NULL},
    {"k=rsa; t; p=", -1, 0, NULL, NULL},
    {"1a=b", -1, 0, NULL, NULL},
    {"=b", -1, 0, NULL, NULL},
    {"a=\x01", -1, 0, NULL, NULL},
    {"a b=c", -1, 0, NULL, NULL},
    {";", -1, 0, NULL, NULL},
    {"synerr", -1, 0, NULL, NULL},
};

static void
test_tags(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(tag_cases) / sizeof(tag_cases[0]); i++) {
		const struct tag_case *c = &tag_cases[i];
		struct dkim_tags tags;
		const char *error = NULL;
		int r =
		    dkim_tags_parse(c->text, strlen(c->text), &tags, &error);

		if (r != c->ok)
			fail_msg("\"%s\": got %d", c->text, r);
		if (r < 0) {
			assert_non_null(error);
			continue;
		}
		assert_int_equal(tags.count, c->count);
		if (c->name != NULL) {
			const struct dkim_tag *t =
			    dkim_tags_get(&tags, c->name);
			assert_non_null(t);
			assert_int_equal(t->value_len, strlen(c->value));
			assert_memory_equal(t->value, c->value, t->value_len);
		}
	}
}

static void
test_tags_limits_and_spans(void **state)
{
	struct buf b;
	struct dkim_tags tags;
	const struct dkim_tag *t;
	const char *error, *text = "bh=xx; b = ab\r\n cd ;x=1";

	(void)state;
	/* b='s raw span: from after "=" to the ";" (FWS included). */
	assert_int_equal(dkim_tags_parse(text, strlen(text), &tags, &error), 0);
	t = dkim_tags_get(&tags, "b");
	assert_non_null(t);
	assert_int_equal(t->raw_start, 10);
	assert_int_equal(t->raw_end, 19);
	assert_int_equal(t->value_len, 7);
	/* DKIM_TAGS_MAX tags parse, one more does not. */
	buf_init(&b, 0);
	for (int i = 0; i < DKIM_TAGS_MAX; i++)
		assert_int_equal(buf_printf(&b, "t%d=%d;", i, i), 0);
	assert_int_equal(dkim_tags_parse((char *)b.data, b.len, &tags, &error),
	                 0);
	assert_int_equal(buf_append_str(&b, "z=1"), 0);
	assert_int_equal(dkim_tags_parse((char *)b.data, b.len, &tags, &error),
	                 -1);
	buf_free(&b);
}

static void
test_value_syntaxes(void **state)
{
	char out[64];
	uint8_t bin[16];
	size_t n, pos = 0, len;
	const char *item, *list = " from : To:\r\n subject:";
	const char *want[] = {"from", "To", "subject", ""};

	(void)state;
	for (int i = 0; i < 4; i++) {
		assert_true(
		    dkim_list_next(list, strlen(list), &pos, &item, &len));
		assert_int_equal(len, strlen(want[i]));
		assert_memory_equal(item, want[i], len);
	}
	assert_false(dkim_list_next(list, strlen(list), &pos, &item, &len));

	assert_int_equal(
	    dkim_qp_decode("jo=3Dn@x.example", 16, out, sizeof(out)), 0);
	assert_string_equal(out, "jo=n@x.example");
	assert_int_equal(dkim_qp_decode("a=4", 3, out, sizeof(out)), -1);
	assert_int_equal(dkim_qp_decode("a=0D", 4, out, sizeof(out)), -1);
	assert_int_equal(dkim_qp_decode("abcdef", 6, out, 4), -1);

	assert_int_equal(
	    dkim_base64_decode("aGVs\r\n bG8=", 11, bin, sizeof(bin), &n), 0);
	assert_int_equal(n, 5);
	assert_memory_equal(bin, "hello", 5);
	assert_int_equal(
	    dkim_base64_decode("aGVs!G8=", 8, bin, sizeof(bin), &n), -1);

	assert_true(dkim_domain_valid("a-b.example_x.com", 17));
	assert_false(dkim_domain_valid("a..b", 4));
	assert_false(dkim_domain_valid("a.b.", 4));
	assert_false(dkim_domain_valid("exa mple", 8));
	assert_false(dkim_domain_valid("", 0));
}

/* =========================================================== key records */

static const char key1024[] =
    "MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDkHlOQoBTzWRiGs5V6NpP3idY6Wk08a5"
    "qhdR6wy5bdOKb2jLQiY/J16JYi0Qvx/byYzCNb3W91y3FutACDfzwQ/BC/e/8uBsCR+yz1"
    "Lxj+PL6lHvqMKrM3rG4hstT5QjvHO9PzoxZyVYLzBfO2EeC3Ip3G+2kryOTIKT+l/K4w"
    "3QIDAQAB";

struct key_case {
	const char *record; /* "%s" is replaced by key1024 */
	enum dkim_reason reason;
	enum dkim_key_type type;
	unsigned bits;
	bool revoked, testing, strict;
	unsigned hashes;
};

#define ALLH (DKIM_KEY_HASH_SHA1 | DKIM_KEY_HASH_SHA256)

static const struct key_case key_cases[] = {
    {"v=DKIM1; k=rsa; p=%s", DKIM_R_OK, DKIM_KEY_RSA, 1024, 0, 0, 0, ALLH},
    {"p=%s", DKIM_R_OK, DKIM_KEY_RSA, 1024, 0, 0, 0, ALLH},
    {"v=DKIM1; t=y:s:x; h=sha256:md5; s=email:web; p=%s", DKIM_R_OK,
     DKIM_KEY_RSA, 1024, 0, 1, 1, DKIM_KEY_HASH_SHA256},
    {"v=DKIM1; h=sha1; p=%s", DKIM_R_OK, DKIM_KEY_RSA, 1024, 0, 0, 0,
     DKIM_KEY_HASH_SHA1},
    {"v=DKIM1; s=*; n=notes; g=*; p=%s", DKIM_R_OK, DKIM_KEY_RSA, 1024, 0, 0, 0,
     ALLH},
    {"k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=", DKIM_R_OK,
     DKIM_KEY_ED25519, 0, 0, 0, 0, ALLH},
    {"v=DKIM1; k=rsa; p=", DKIM_R_OK, DKIM_KEY_RSA, 0, 1, 0, 0, ALLH},
    {"v=DKIM1; k=rsa; t=y; p= ", DKIM_R_OK, DKIM_KEY_RSA, 0, 1, 1, 0, ALLH},
    /* RFC 8463: raw 32 bytes, not a SubjectPublicKeyInfo. */
    {"v=DKIM1; k=ed25519; p=MCowBQYDK2VwAyEA3SUqa9UbfciWkk7tlcJ9P1VD5pXAasg"
     "0JUn/OgjVbKE=",
     DKIM_R_KEY_SYNTAX, 0, 0, 0, 0, 0, 0},
    {"k=rsa; v=DKIM1; p=%s", DKIM_R_KEY_SYNTAX, 0, 0, 0, 0, 0, 0},
    {"v=DKIM3; p=%s", DKIM_R_KEY_SYNTAX, 0, 0, 0, 0, 0, 0},
    {"v=DKIM1; k=foobar; p=%s", DKIM_R_KEY_TYPE, 0, 0, 0, 0, 0, 0},
    {"v=DKIM1; s=chat; p=%s", DKIM_R_KEY_SERVICE, 0, 0, 0, 0, 0, 0},
    {"v=DKIM1; k=rsa", DKIM_R_KEY_SYNTAX, 0, 0, 0, 0, 0, 0},
    {"", DKIM_R_KEY_SYNTAX, 0, 0, 0, 0, 0, 0},
    {"k=rsa; t; p=%s", DKIM_R_KEY_SYNTAX, 0, 0, 0, 0, 0, 0},
    {"v=DKIM1; p=!!!!", DKIM_R_KEY_SYNTAX, 0, 0, 0, 0, 0, 0},
    {"v=DKIM1; p=AAAA", DKIM_R_KEY_SYNTAX, 0, 0, 0, 0, 0, 0},
    {"v=DKIM1; p=%s; p=%s", DKIM_R_KEY_SYNTAX, 0, 0, 0, 0, 0, 0},
};

/* c->record with each "%s" replaced by key1024. */
static char *
key_record(const char *tmpl)
{
	struct buf b;

	buf_init(&b, 0);
	for (const char *p = tmpl; *p != '\0'; p++) {
		if (p[0] == '%' && p[1] == 's') {
			assert_int_equal(buf_append_str(&b, key1024), 0);
			p++;
		} else {
			assert_int_equal(buf_append_byte(&b, (uint8_t)*p), 0);
		}
	}
	if (b.data == NULL)
		return xstrdup("");
	assert_non_null(buf_cstr(&b));
	return (char *)b.data;
}

static void
check_key_case(const struct key_case *c)
{
	struct dkim_key key;
	char *rec = key_record(c->record);
	enum dkim_reason r = dkim_key_parse(rec, strlen(rec), &key);

	if (r != c->reason)
		fail_msg("\"%s\": %s, want %s", c->record, dkim_reason_str(r),
		         dkim_reason_str(c->reason));
	if (r == DKIM_R_OK) {
		assert_int_equal(key.type, c->type);
		assert_int_equal(key.bits, c->bits);
		assert_int_equal(key.revoked, c->revoked);
		assert_int_equal(key.pkey == NULL, c->revoked);
		assert_int_equal(key.testing, c->testing);
		assert_int_equal(key.strict, c->strict);
		assert_int_equal(key.hashes, c->hashes);
	}
	dkim_key_clear(&key);
	free(rec);
}

static void
test_key_records(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(key_cases) / sizeof(key_cases[0]); i++)
		check_key_case(&key_cases[i]);
}

/* dkimpy's key files: SPKI and bare PKCS#1, and its bad ones. */
static void
test_key_records_dkimpy(void **state)
{
	static const struct {
		const char *file;
		enum dkim_reason reason;
		unsigned bits;
	} files[] = {
	    {"dkimpy/test.txt", DKIM_R_OK, 1024},
	    {"dkimpy/test2.txt", DKIM_R_OK, 1024},
	    {"dkimpy/1024_testkey_wo_markers.pub.txt", DKIM_R_OK, 1024},
	    {"dkimpy/1024_testkey_wo_markers.pub.rsa.txt", DKIM_R_OK, 1024},
	    {"dkimpy/2048_testkey_wo_markers.pub.txt", DKIM_R_OK, 2048},
	    {"dkimpy/2048_testkey_wo_markers.pub.rsa.txt", DKIM_R_OK, 2048},
	    {"dkimpy/2048_testkey_PKCS8.key.pub.txt", DKIM_R_OK, 2048},
	    {"dkimpy/ed25519test.dns", DKIM_R_OK, 0},
	    {"dkimpy/eximtest.dns", DKIM_R_OK, 0},
	    {"dkimpy/test_tlsrpt.txt", DKIM_R_KEY_SERVICE, 0},
	    {"dkimpy/badk.txt", DKIM_R_KEY_TYPE, 0},
	    {"dkimpy/badversion.txt", DKIM_R_KEY_SYNTAX, 0},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		char *rec = load_record(files[i].file);
		struct dkim_key key;
		enum dkim_reason r = dkim_key_parse(rec, strlen(rec), &key);

		if (r != files[i].reason)
			fail_msg("%s: %s", files[i].file, dkim_reason_str(r));
		if (r == DKIM_R_OK)
			assert_int_equal(key.bits, files[i].bits);
		dkim_key_clear(&key);
		free(rec);
	}
}

/* ====================================================== canonicalization */

static void
test_canon_header(void **state)
{
	/* RFC 6376 §3.4.5. */
	static const char a[] = "A: X\r\n", b[] = "B : Y\t\r\n\tZ  \r\n";
	static const char c[] = "Subject:\r\n  folded\tvalue \r\n";
	struct buf out;

	(void)state;
	buf_init(&out, 0);
	assert_int_equal(dkim_canon_header(DKIM_CANON_RELAXED,
	                                   (const uint8_t *)a, strlen(a), false,
	                                   &out),
	                 0);
	assert_int_equal(dkim_canon_header(DKIM_CANON_RELAXED,
	                                   (const uint8_t *)b, strlen(b), false,
	                                   &out),
	                 0);
	assert_int_equal(dkim_canon_header(DKIM_CANON_RELAXED,
	                                   (const uint8_t *)c, strlen(c), true,
	                                   &out),
	                 0);
	assert_string_equal(buf_cstr(&out),
	                    "a:X\r\nb:Y Z\r\nsubject:folded value");
	buf_reset(&out);
	assert_int_equal(dkim_canon_header(DKIM_CANON_SIMPLE,
	                                   (const uint8_t *)b, strlen(b), false,
	                                   &out),
	                 0);
	assert_string_equal(buf_cstr(&out), b);
	buf_reset(&out);
	assert_int_equal(dkim_canon_header(DKIM_CANON_SIMPLE,
	                                   (const uint8_t *)b, strlen(b), true,
	                                   &out),
	                 0);
	assert_string_equal(buf_cstr(&out), "B : Y\t\r\n\tZ  ");
	buf_free(&out);
}

struct body_case {
	enum dkim_canon canon;
	const char *in;
	const char *out;
};

#define S DKIM_CANON_SIMPLE
#define R DKIM_CANON_RELAXED
static const struct body_case body_cases[] = {
    /* RFC 6376 §3.4.5 */
    {S, " C \r\nD \t E\r\n\r\n\r\n", " C \r\nD \t E\r\n"},
    {R, " C \r\nD \t E\r\n\r\n\r\n", " C\r\nD E\r\n"},
    /* empty bodies: erratum 1384 */
    {S, "", "\r\n"},
    {R, "", ""},
    {S, "\r\n\r\n", "\r\n"},
    {R, "\r\n \t\r\n", ""},
    /* no final CRLF */
    {S, "abc", "abc\r\n"},
    {R, "abc  ", "abc\r\n"},
    {R, "a \r\n \t\r\n", "a\r\n"},
    {S, "x\r\n\r\ny\r\n\r\n", "x\r\n\r\ny\r\n"},
    {R, "  lead\r\n", " lead\r\n"},
    /* bare CR and LF are data */
    {S, "a\rb\r\n", "a\rb\r\n"},
    {R, "a\r b\r\n", "a\r b\r\n"},
    {S, "a\nb\r\n", "a\nb\r\n"},
    {S, "abc\r", "abc\r\r\n"},
    {R, "a\r\r\n", "a\r\r\n"},
    {R, "\r\n\r\nx\r\n", "\r\n\r\nx\r\n"},
};
#undef S
#undef R

/* Digest of in fed as chunks of step bytes (0: one piece, ~0: split at
 * split). */
static void
body_digest(const struct body_case *c, size_t step, size_t split,
            uint64_t limit, uint8_t *md, unsigned *mdlen, uint64_t *total)
{
	struct dkim_body b;
	const uint8_t *in = (const uint8_t *)c->in;
	size_t len = strlen(c->in);

	assert_int_equal(dkim_body_init(&b, c->canon, EVP_sha256(), limit), 0);
	if (step > 0) {
		for (size_t i = 0; i < len; i += step)
			dkim_body_update(&b, in + i,
			                 len - i < step ? len - i : step);
	} else {
		dkim_body_update(&b, in, split);
		dkim_body_update(&b, in + split, len - split);
	}
	assert_int_equal(dkim_body_final(&b, md, mdlen), 0);
	*total = b.total;
	dkim_body_clear(&b);
}

static void
test_canon_body(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(body_cases) / sizeof(body_cases[0]);
	     i++) {
		const struct body_case *c = &body_cases[i];
		uint8_t want[EVP_MAX_MD_SIZE], got[EVP_MAX_MD_SIZE];
		unsigned wl, gl;
		uint64_t total;
		size_t len = strlen(c->in);

		assert_int_equal(EVP_Digest(c->out, strlen(c->out), want, &wl,
		                            EVP_sha256(), NULL),
		                 1);
		/* whole, trickled one byte at a time, every two-way split */
		body_digest(c, len == 0 ? 1 : len, 0, UINT64_MAX, got, &gl,
		            &total);
		if (memcmp(got, want, wl) != 0)
			fail_msg("case %zu: canonical body differs", i);
		assert_int_equal(total, strlen(c->out));
		body_digest(c, 1, 0, UINT64_MAX, got, &gl, &total);
		assert_memory_equal(got, want, wl);
		for (size_t s = 0; s <= len; s++) {
			body_digest(c, 0, s, UINT64_MAX, got, &gl, &total);
			assert_memory_equal(got, want, wl);
		}
	}
}

static void
test_canon_body_known_hashes_and_limit(void **state)
{
	static const struct body_case empty_s = {DKIM_CANON_SIMPLE, "", ""};
	static const struct body_case empty_r = {DKIM_CANON_RELAXED, "", ""};
	static const struct body_case six = {DKIM_CANON_SIMPLE, "abcdef\r\n",
	                                     ""};
	uint8_t md[EVP_MAX_MD_SIZE], want[EVP_MAX_MD_SIZE];
	char b64[BASE64_ENCODED_SIZE(32)];
	unsigned len, wl;
	uint64_t total;

	(void)state;
	body_digest(&empty_s, 1, 0, UINT64_MAX, md, &len, &total);
	base64_encode(md, len, b64);
	assert_string_equal(b64,
	                    "frcCV1k9oG9oKj3dpUqdJg1PxRT2RSN/XKdLCPjaYaY=");
	body_digest(&empty_r, 1, 0, UINT64_MAX, md, &len, &total);
	base64_encode(md, len, b64);
	assert_string_equal(b64,
	                    "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
	/* l=3: hash "abc", count all 8 */
	body_digest(&six, 1, 0, 3, md, &len, &total);
	assert_int_equal(EVP_Digest("abc", 3, want, &wl, EVP_sha256(), NULL),
	                 1);
	assert_memory_equal(md, want, wl);
	assert_int_equal(total, 8);
	body_digest(&six, 0, 4, 0, md, &len, &total);
	assert_int_equal(EVP_Digest("", 0, want, &wl, EVP_sha256(), NULL), 1);
	assert_memory_equal(md, want, wl);
}

static void
test_msg_parse(void **state)
{
	static const char text[] = "A: 1\r\nB: 2\r\n  cont\r\nnocolon\r\n"
	                           "DKIM-Signature : x\r\n\r\nbody\r\n";
	struct dkim_msg m;

	(void)state;
	dkim_msg_parse((const uint8_t *)text, strlen(text), &m);
	assert_int_equal(m.count, 4);
	assert_int_equal(m.fields[1].len, strlen("B: 2\r\n  cont\r\n"));
	assert_int_equal(m.fields[2].value_off, 0);
	assert_true(dkim_field_is(&m.fields[3], "dkim-signature", 14));
	assert_int_equal(m.dkim_sigs, 1);
	assert_int_equal(m.body_len, 6);
	assert_memory_equal(m.body, "body\r\n", 6);
	dkim_msg_clear(&m);
	/* no empty line: all header, no body */
	dkim_msg_parse((const uint8_t *)"A: 1\r\nB: 2", 10, &m);
	assert_int_equal(m.count, 2);
	assert_null(m.body);
	dkim_msg_clear(&m);
	/* empty header */
	dkim_msg_parse((const uint8_t *)"\r\nX", 3, &m);
	assert_int_equal(m.count, 0);
	assert_int_equal(m.body_len, 1);
	dkim_msg_clear(&m);
}

/* ============================================================ RFC 8463 */

static void
test_rfc8463_verify(void **state)
{
	struct zone z = {0};
	struct dkim_verify_result res;
	struct buf ar;
	size_t len;
	uint8_t *msg = read_msg("rfc8463/rfc8463-A3-signed.eml", &len);

	(void)state;
	zone_load(&z, "rfc8463/dns-records.txt");
	verify(&z, msg, len, RFC8463_TIME, NULL, &res);
	assert_int_equal(res.count, 2);
	assert_result(&res.sig[0], DKIM_PASS, DKIM_R_OK);
	assert_result(&res.sig[1], DKIM_PASS, DKIM_R_OK);
	assert_string_equal(res.sig[0].algorithm, "ed25519-sha256");
	assert_string_equal(res.sig[1].algorithm, "rsa-sha256");
	assert_string_equal(res.sig[0].selector, "brisbane");
	assert_string_equal(res.sig[1].domain, "football.example.com");
	assert_string_equal(res.sig[1].identity, "@football.example.com");
	assert_int_equal(res.sig[1].key_bits, 1024);
	buf_init(&ar, 0);
	assert_int_equal(dkim_ar_append_all(&ar, &res), 0);
	assert_string_equal(buf_cstr(&ar),
	                    "dkim=pass header.d=football.example.com "
	                    "header.i=@football.example.com header.s=brisbane "
	                    "header.a=ed25519-sha256 header.b=\"/gCrinpc\"; "
	                    "dkim=pass header.d=football.example.com "
	                    "header.i=@football.example.com header.s=test "
	                    "header.a=rsa-sha256 header.b=F45dVWDf");
	buf_free(&ar);
	/* A day after: still good (no x=), and nothing depends on now. */
	verify(&z, msg, len, RFC8463_TIME + 86400, NULL, &res);
	assert_result(&res.sig[0], DKIM_PASS, DKIM_R_OK);
	free(msg);
	zone_clear(&z);
}

/* Ed25519 is deterministic and so is RSA PKCS#1 v1.5: with the same keys,
 * tags and clock both signatures come out byte for byte. */
static void
test_rfc8463_resign(void **state)
{
	struct dkim_sign_params p = {
	    .domain = "football.example.com",
	    .selector = "brisbane",
	    .algorithm = DKIM_ALG_ED25519_SHA256,
	    .headers = rfc8463_headers,
	    .identity = "@football.example.com",
	    .timestamp = RFC8463_TIME,
	};
	EVP_PKEY *ed = load_key("rfc8463/brisbane-ed25519-seed.b64");
	EVP_PKEY *rsa = load_key("rfc8463/test-rsa1024-private.pem");
	size_t len;
	uint8_t *msg = rfc8463_unsigned(&len);
	char *field = sign(msg, len, &p, ed), *b = b_value(field);

	(void)state;
	assert_folded(field);
	assert_string_equal(b, rfc8463_ed_b);
	assert_non_null(strstr(field, rfc8463_bh));
	free(b);
	free(field);

	p.selector = "test";
	p.algorithm = DKIM_ALG_RSA_SHA256;
	field = sign(msg, len, &p, rsa);
	b = b_value(field);
	assert_folded(field);
	assert_string_equal(b, rfc8463_rsa_b);
	free(b);
	free(field);
	EVP_PKEY_free(ed);
	EVP_PKEY_free(rsa);
	free(msg);
}

/* The three-step API gives what dkim_sign_message gives, and the digest is
 * the SHA-256 of the exposed data. */
static void
test_sign_split(void **state)
{
	struct dkim_sign_params p = {
	    .domain = "football.example.com",
	    .selector = "brisbane",
	    .algorithm = DKIM_ALG_ED25519_SHA256,
	    .headers = rfc8463_headers,
	    .identity = "@football.example.com",
	    .timestamp = RFC8463_TIME,
	};
	EVP_PKEY *ed = load_key("rfc8463/brisbane-ed25519-seed.b64");
	struct dkim_signer *s = NULL;
	const char *error = NULL;
	const uint8_t *digest, *data;
	uint8_t sig[DKIM_SIGNATURE_MAX], md[EVP_MAX_MD_SIZE];
	size_t len, dlen, datalen, siglen;
	unsigned mdlen;
	uint8_t *msg = rfc8463_unsigned(&len);
	char *whole = sign(msg, len, &p, ed), *field;

	(void)state;
	assert_int_equal(dkim_sign_begin(msg, len, &p, &s, &error), 0);
	assert_int_equal(dkim_signer_algorithm(s), DKIM_ALG_ED25519_SHA256);
	assert_string_equal(dkim_signer_body_hash(s), rfc8463_bh);
	digest = dkim_signer_digest(s, &dlen);
	data = dkim_signer_data(s, &datalen);
	assert_int_equal(dlen, 32);
	assert_int_equal(
	    EVP_Digest(data, datalen, md, &mdlen, EVP_sha256(), NULL), 1);
	assert_memory_equal(md, digest, 32);
	/* the data ends with the signature field, b= empty, relaxed */
	assert_true(datalen > 2 && memcmp(data + datalen - 2, "b=", 2) == 0);
	assert_non_null(
	    memmem(data, datalen, "dkim-signature:v=1; a=ed25519-sha256", 36));
	assert_int_equal(dkim_sign_with_key(ed, DKIM_ALG_ED25519_SHA256, digest,
	                                    dlen, sig, sizeof(sig), &siglen,
	                                    &error),
	                 0);
	assert_int_equal(siglen, 64);
	field = dkim_sign_finish(s, sig, siglen, &error);
	assert_non_null(field);
	assert_string_equal(field, whole);
	/* lookup refuses a key that does not fit, and a short buffer */
	assert_int_equal(dkim_sign_with_key(ed, DKIM_ALG_RSA_SHA256, digest,
	                                    dlen, sig, sizeof(sig), &siglen,
	                                    &error),
	                 -1);
	assert_int_equal(dkim_sign_with_key(ed, DKIM_ALG_ED25519_SHA256, digest,
	                                    dlen, sig, 63, &siglen, &error),
	                 -1);
	assert_int_equal(dkim_sign_with_key(ed, DKIM_ALG_ED25519_SHA256, digest,
	                                    20, sig, sizeof(sig), &siglen,
	                                    &error),
	                 -1);
	assert_null(dkim_sign_finish(s, sig, 0, &error));
	free(field);
	free(whole);
	dkim_signer_free(&s);
	assert_null(s);
	dkim_signer_free(&s);
	EVP_PKEY_free(ed);
	free(msg);
}

/* ============================================== stalwart mail-auth 001-6 */

static void
test_stalwart(void **state)
{
	unsigned sigs = 0, passed = 0;

	(void)state;
	for (int i = 1; i <= 6; i++) {
		char *rel = xasprintf("stalwart-mail-auth/%03d.txt", i);
		size_t len, mlen;
		uint8_t *raw = read_file(rel, &len), *msg;
		const uint8_t *blank = memmem(raw, len, "\n\n", 2);
		struct zone z = {0};
		struct dkim_verify_result res;

		assert_non_null(blank);
		zone_add_lines(&z, (const char *)raw, (size_t)(blank - raw));
		msg = crlf(blank + 2, len - (size_t)(blank + 2 - raw), &mlen);
		verify(&z, msg, mlen, STALWART_TIME, NULL, &res);
		assert_true(res.count >= 1);
		for (size_t j = 0; j < res.count; j++) {
			sigs++;
			if (res.sig[j].result == DKIM_PASS)
				passed++;
			else
				print_message(
				    "%s sig %zu: %s (%s)\n", rel, j,
				    dkim_result_str(res.sig[j].result),
				    dkim_reason_str(res.sig[j].reason));
		}
		if (i == 5) { /* x=1667930064 */
			verify(&z, msg, mlen, NOW_2024, NULL, &res);
			assert_result(&res.sig[0], DKIM_FAIL, DKIM_R_EXPIRED);
		}
		free(msg);
		free(raw);
		free(rel);
		zone_clear(&z);
	}
	print_message("stalwart-mail-auth: %u/%u signatures pass\n", passed,
	              sigs);
	assert_int_equal(sigs, 8);
	assert_int_equal(passed, sigs);
}

/* ====================================================== Mail::DKIM corpus */

/* Mail::DKIM's vocabulary: pass, fail (signature or body hash did not
 * verify), invalid (anything else). A message passes when one signature
 * does. */
static const char *
corpus_class(const struct dkim_verify_result *res)
{
	bool fail = false;

	for (size_t i = 0; i < res->count; i++) {
		if (res->sig[i].result == DKIM_PASS)
			return "pass";
		if (res->sig[i].reason == DKIM_R_BODY_HASH ||
		    res->sig[i].reason == DKIM_R_SIGNATURE)
			fail = true;
	}
	return fail ? "fail" : "invalid";
}

/* DomainKeys (RFC 4870) only: no DKIM-Signature at all. */
static bool
corpus_domainkeys(const char *file)
{
	return strncmp(file, "good_dk_", 8) == 0 ||
	       strncmp(file, "bad_dk_", 7) == 0 || strncmp(file, "dk_", 3) == 0;
}

/* Pre-RFC drafts (no v=, or v=0.5) and RFC 4871's g=, which RFC 6376
 * removed: there a strict RFC 6376 verifier and the corpus differ. */
static bool
corpus_legacy(const char *file)
{
	static const char *const legacy[] = {
	    /* no v= or v=0.5 */
	    "bad_1.",
	    "bad_ietf01_",
	    "good_ietf00_",
	    "good_ietf01_",
	    "mine_",
	    "multiple_1.",
	    "no_body_",
	    "badkey_1.",
	    "badkey_2.",
	    "badkey_3.",
	    "badkey_4.",
	    "badkey_5.",
	    "badkey_6.",
	    "badkey_7.",
	    "ignore_2.",
	    "ignore_3.",
	    "ignore_4.",
	    /* key g= (RFC 4871 §3.6.1) */
	    "badkey_8.",
	    "badkey_9.",
	    "badkey_12.",
	    "badkey_13.",
	};

	for (size_t i = 0; i < sizeof(legacy) / sizeof(legacy[0]); i++)
		if (strncmp(file, legacy[i], strlen(legacy[i])) == 0)
			return true;
	return false;
}

struct corpus_count {
	unsigned total, match, rfc_total, rfc_match;
	unsigned rfc8301; /* RFC-subset mismatches from rsa-sha1 or < 1024 */
};

static bool
corpus_rfc8301(const struct dkim_verify_result *res)
{
	for (size_t i = 0; i < res->count; i++)
		if (res->sig[i].reason == DKIM_R_ALGORITHM ||
		    res->sig[i].reason == DKIM_R_KEY_SIZE)
			return true;
	return false;
}

static void
corpus_run(struct zone *z, const struct dkim_limits *limits,
           struct corpus_count *cnt, bool print)
{
	size_t len;
	char *tsv = (char *)read_file("mail-dkim/expected.tsv", &len);
	char *save = NULL;

	for (char *line = strtok_r(tsv, "\n", &save); line != NULL;
	     line = strtok_r(NULL, "\n", &save)) {
		char *file, *expected, *rel, *tab;
		struct dkim_verify_result res;
		const char *got;
		size_t mlen;
		uint8_t *msg;
		bool rfc;

		if (line[0] == '#' || (tab = strchr(line, '\t')) == NULL)
			continue;
		*tab = '\0';
		file = line;
		expected = tab + 1;
		expected[strcspn(expected, "\t")] = '\0';
		if (corpus_domainkeys(file))
			continue;
		rel = xasprintf("mail-dkim/corpus/%s", file);
		msg = read_msg(rel, &mlen);
		verify(z, msg, mlen, NOW_2024, limits, &res);
		got = corpus_class(&res);
		rfc = !corpus_legacy(file);
		cnt->total++;
		cnt->rfc_total += rfc;
		if (strcmp(got, expected) == 0) {
			cnt->match++;
			cnt->rfc_match += rfc;
		} else if (rfc && corpus_rfc8301(&res)) {
			cnt->rfc8301++;
		} else if (print) {
			print_message("  %-22s want %-7s got %-7s %s%s\n", file,
			              expected, got,
			              res.count > 0
			                  ? dkim_reason_str(res.sig[0].reason)
			                  : "",
			              rfc ? "" : " [legacy]");
		}
		free(msg);
		free(rel);
	}
	free(tsv);
}

static void
test_mail_dkim_corpus(void **state)
{
	struct dkim_limits legacy = {.rsa_sha1 = true, .rsa_bits_min = 512};
	struct corpus_count strict = {0}, old = {0};
	struct zone z = {0};

	(void)state;
	zone_load(&z, "mail-dkim/FAKE_DNS.dat");
	print_message("mail-dkim, RFC 8301 defaults (no rsa-sha1, "
	              "RSA >= 1024):\n");
	corpus_run(&z, NULL, &strict, true);
	print_message("mail-dkim, rsa-sha1 and 512-bit keys allowed:\n");
	corpus_run(&z, &legacy, &old, true);
	print_message("mail-dkim: %u DKIM cases (17 DomainKeys-only left "
	              "out); strict: %u/%u match (RFC 6376 subset %u/%u, "
	              "%u more refused under RFC 8301); rsa-sha1+512: %u/%u "
	              "(RFC 6376 subset %u/%u)\n",
	              strict.total, strict.match, strict.total,
	              strict.rfc_match, strict.rfc_total, strict.rfc8301,
	              old.match, old.total, old.rfc_match, old.rfc_total);
	assert_int_equal(strict.total, 62);
	/* Strict: the RFC 6376 subset differs only where RFC 8301 says. */
	assert_int_equal(strict.rfc_match + strict.rfc8301, strict.rfc_total);
	/* In the RFC 6376 subset only what RFC 8301 changed may differ,
	 * and with it relaxed, nothing. */
	assert_int_equal(old.rfc_match, old.rfc_total);
	zone_clear(&z);
}

/* The Mail::DKIM Ed25519 cases, exactly. */
static void
test_mail_dkim_ed25519(void **state)
{
	static const struct {
		const char *file;
		enum dkim_result result;
		enum dkim_reason reason;
	} cases[] = {
	    {"goodkey_ed25519.txt", DKIM_PASS, DKIM_R_OK},
	    {"badkey1_ed25519.txt", DKIM_PERMERROR, DKIM_R_KEY_SYNTAX},
	    {"badkey2_ed25519.txt", DKIM_FAIL, DKIM_R_SIGNATURE},
	    {"badkey3_ed25519.txt", DKIM_FAIL, DKIM_R_BODY_HASH},
	    {"badkey4_ed25519.txt", DKIM_PERMERROR, DKIM_R_KEY_MISSING},
	    {"badkey5_ed25519.txt", DKIM_PERMERROR, DKIM_R_KEY_SYNTAX},
	};
	struct zone z = {0};

	(void)state;
	zone_load(&z, "mail-dkim/FAKE_DNS.dat");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *rel;
		struct dkim_verify_result res;
		size_t len;
		uint8_t *msg;

		rel = xasprintf("mail-dkim/corpus/%s", cases[i].file);
		msg = read_msg(rel, &len);
		verify(&z, msg, len, NOW_2024, NULL, &res);
		assert_int_equal(res.count, 1);
		assert_result(&res.sig[0], cases[i].result, cases[i].reason);
		free(msg);
		free(rel);
	}
	zone_clear(&z);
}

/* RFC 8301 in force by default, and DNS failures as temperror. */
static void
test_mail_dkim_policy_cases(void **state)
{
	static const struct {
		const char *file;
		bool legacy;
		enum dkim_result result;
		enum dkim_reason reason;
	} cases[] = {
	    {"good_rfc4871_3.txt", false, DKIM_PERMERROR, DKIM_R_ALGORITHM},
	    {"good_rfc4871_3.txt", true, DKIM_PASS, DKIM_R_OK},
	    {"goodkey_1.txt", true, DKIM_PASS, DKIM_R_OK},
	    {"badkey_10.txt", true, DKIM_PERMERROR, DKIM_R_KEY_STRICT},
	    {"badkey_11.txt", false, DKIM_PERMERROR, DKIM_R_KEY_HASH},
	    {"badkey_14.txt", true, DKIM_TEMPERROR, DKIM_R_DNS},
	    {"badkey_15.txt", true, DKIM_TEMPERROR, DKIM_R_DNS},
	    {"ignore_5.txt", true, DKIM_PERMERROR, DKIM_R_QUERY},
	    {"ignore_7.txt", true, DKIM_FAIL, DKIM_R_EXPIRED},
	    {"ignore_8.txt", true, DKIM_PERMERROR, DKIM_R_IDENTITY},
	    {"bad_1878954.txt", true, DKIM_FAIL, DKIM_R_BODY_HASH},
	};
	struct dkim_limits legacy = {.rsa_sha1 = true, .rsa_bits_min = 512};
	struct zone z = {0};

	(void)state;
	zone_load(&z, "mail-dkim/FAKE_DNS.dat");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *rel = xasprintf("mail-dkim/corpus/%s", cases[i].file);
		struct dkim_verify_result res;
		size_t len;
		uint8_t *msg = read_msg(rel, &len);

		verify(&z, msg, len, NOW_2024, cases[i].legacy ? &legacy : NULL,
		       &res);
		assert_true(res.count >= 1);
		assert_result(&res.sig[0], cases[i].result, cases[i].reason);
		free(msg);
		free(rel);
	}
	zone_clear(&z);
}

/* A 512-bit key: refused by default (RFC 8301), let through on request. */
static void
test_rsa_key_size(void **state)
{
	static const char text[] = "From: a@example.org\nSubject: s\n\nbody\n";
	struct dkim_sign_params p = {.domain = "example.org",
	                             .selector = "small",
	                             .timestamp = 1700000000};
	struct dkim_limits loose = {.rsa_bits_min = 512};
	EVP_PKEY *small = EVP_RSA_gen(512);
	struct dkim_signer *s = NULL;
	struct dkim_verify_result res;
	const char *error;
	const uint8_t *digest;
	uint8_t sig[DKIM_SIGNATURE_MAX];
	size_t len, dlen, siglen = sizeof(sig), slen;
	unsigned char *der = NULL;
	int derlen;
	char *b64, *rec, *field;
	uint8_t *msg = msg_of(text, &len), *signed_msg;
	EVP_PKEY_CTX *ctx;
	struct zone z = {0};

	(void)state;
	assert_non_null(small);
	assert_int_equal(dkim_sign_begin(msg, len, &p, &s, &error), 0);
	digest = dkim_signer_digest(s, &dlen);
	/* the signer refuses it… */
	assert_int_equal(dkim_sign_with_key(small, DKIM_ALG_RSA_SHA256, digest,
	                                    dlen, sig, sizeof(sig), &siglen,
	                                    &error),
	                 -1);
	/* …so sign by hand */
	ctx = EVP_PKEY_CTX_new(small, NULL);
	assert_int_equal(EVP_PKEY_sign_init(ctx), 1);
	assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING),
	                 1);
	assert_int_equal(EVP_PKEY_CTX_set_signature_md(ctx, EVP_sha256()), 1);
	siglen = sizeof(sig);
	assert_int_equal(EVP_PKEY_sign(ctx, sig, &siglen, digest, dlen), 1);
	EVP_PKEY_CTX_free(ctx);
	field = dkim_sign_finish(s, sig, siglen, &error);
	assert_non_null(field);
	derlen = i2d_PUBKEY(small, &der);
	assert_true(derlen > 0);
	b64 = xmalloc(BASE64_ENCODED_SIZE((size_t)derlen));
	base64_encode(der, (size_t)derlen, b64);
	rec = xasprintf("v=DKIM1; k=rsa; p=%s", b64);
	zone_add(&z, "small._domainkey.example.org", rec, MA_DNS_OK);
	signed_msg = prepend(field, msg, len, &slen);
	verify(&z, signed_msg, slen, 1700000001, NULL, &res);
	assert_result(&res.sig[0], DKIM_PERMERROR, DKIM_R_KEY_SIZE);
	assert_int_equal(res.sig[0].key_bits, 512);
	verify(&z, signed_msg, slen, 1700000001, &loose, &res);
	assert_result(&res.sig[0], DKIM_PASS, DKIM_R_OK);
	OPENSSL_free(der);
	free(b64);
	free(rec);
	free(field);
	free(signed_msg);
	free(msg);
	dkim_signer_free(&s);
	EVP_PKEY_free(small);
	zone_clear(&z);
}

/* ================================================================ dkimpy */

static void
test_dkimpy_messages(void **state)
{
	static const char *const files[] = {"dkimpy/rfc6376.signed.msg",
	                                    "dkimpy/rfc6376.signed.rsa.msg"};
	struct zone z = {0};
	struct dkim_verify_result res;
	size_t len;
	uint8_t *msg;
	char *exim;

	(void)state;
	zone_load(&z, "rfc8463/dns-records.txt");
	exim = load_record("dkimpy/eximtest.dns");
	zone_add(&z, "sed._domainkey.test.ex", exim, MA_DNS_OK);
	for (size_t i = 0; i < 2; i++) {
		msg = read_msg(files[i], &len);
		verify(&z, msg, len, NOW_2024, NULL, &res);
		assert_true(res.count >= 1);
		for (size_t j = 0; j < res.count; j++)
			assert_result(&res.sig[j], DKIM_PASS, DKIM_R_OK);
		free(msg);
	}
	/* Exim's Ed25519 signature: "d=test.ex\n\t; s=sed" and a folded b= */
	msg = read_msg("dkimpy/ed25519test2.msg", &len);
	verify(&z, msg, len, NOW_2024, NULL, &res);
	assert_int_equal(res.count, 1);
	assert_result(&res.sig[0], DKIM_PASS, DKIM_R_OK);
	assert_string_equal(res.sig[0].domain, "test.ex");
	free(msg);
	free(exim);
	zone_clear(&z);
}

static const struct {
	const char *key;
	const char *record;
	enum dkim_algorithm algorithm;
} dkimpy_keys[] = {
    {"dkimpy/test.private", "dkimpy/test.txt", DKIM_ALG_RSA_SHA256},
    {"dkimpy/1024_testkey.key", "dkimpy/1024_testkey_wo_markers.pub.txt",
     DKIM_ALG_RSA_SHA256},
    {"dkimpy/1024_testkey.key", "dkimpy/1024_testkey_wo_markers.pub.rsa.txt",
     DKIM_ALG_RSA_SHA256},
    {"dkimpy/2048_testkey.key", "dkimpy/2048_testkey_wo_markers.pub.txt",
     DKIM_ALG_RSA_SHA256},
    {"dkimpy/2048_testkey.key", "dkimpy/2048_testkey_wo_markers.pub.rsa.txt",
     DKIM_ALG_RSA_SHA256},
    {"dkimpy/2048_testkey_PKCS8.key", "dkimpy/2048_testkey_PKCS8.key.pub.txt",
     DKIM_ALG_RSA_SHA256},
    {"dkimpy/ed25519test.key", "dkimpy/ed25519test.dns",
     DKIM_ALG_ED25519_SHA256},
    {"dkimpy/rfc8032_7_1.key", NULL, DKIM_ALG_ED25519_SHA256},
};

/* Every dkimpy key, every canonicalization pair, dkimpy's messages. */
static void
test_dkimpy_sign_verify(void **state)
{
	static const char *const msgs[] = {
	    "dkimpy/test.message", "dkimpy/test_extra.message",
	    "dkimpy/rfc6376.msg", "dkimpy/rfc6376.w1258.msg"};
	unsigned n = 0;

	(void)state;
	for (size_t k = 0; k < sizeof(dkimpy_keys) / sizeof(dkimpy_keys[0]);
	     k++) {
		EVP_PKEY *key = load_key(dkimpy_keys[k].key);
		char *rec = dkimpy_keys[k].record != NULL
		                ? load_record(dkimpy_keys[k].record)
		                : xstrdup("v=DKIM1; k=ed25519; "
		                          "p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMl"
		                          "rwIaaPcHURo=");
		struct zone z = {0};

		zone_add(&z, "test._domainkey.example.com", rec, MA_DNS_OK);
		for (size_t m = 0; m < sizeof(msgs) / sizeof(msgs[0]); m++) {
			size_t len, slen;
			uint8_t *msg = read_msg(msgs[m], &len), *sm;
			for (int c = 0; c < 4; c++) {
				struct dkim_sign_params p = {
				    .domain = "example.com",
				    .selector = "test",
				    .algorithm = dkimpy_keys[k].algorithm,
				    .header_canon = (enum dkim_canon)(c & 1),
				    .body_canon = (enum dkim_canon)(c >> 1),
				    .timestamp = 1700000000,
				};
				struct dkim_verify_result res;
				char *field = sign(msg, len, &p, key);

				assert_folded(field);
				sm = prepend(field, msg, len, &slen);
				verify(&z, sm, slen, 1700000001, NULL, &res);
				assert_int_equal(res.count, 1);
				assert_result(&res.sig[0], DKIM_PASS,
				              DKIM_R_OK);
				n++;
				free(sm);
				free(field);
			}
			free(msg);
		}
		free(rec);
		zone_clear(&z);
		EVP_PKEY_free(key);
	}
	print_message("dkimpy keys: %u signatures made and verified\n", n);
}

/* dkimpy's bad key records against a good signature. */
static void
test_dkimpy_bad_keys(void **state)
{
	static const struct {
		const char *record;
		enum dkim_result result;
		enum dkim_reason reason;
	} cases[] = {
	    {"dkimpy/badk.txt", DKIM_PERMERROR, DKIM_R_KEY_TYPE},
	    {"dkimpy/badversion.txt", DKIM_PERMERROR, DKIM_R_KEY_SYNTAX},
	    {"dkimpy/test_tlsrpt.txt", DKIM_PERMERROR, DKIM_R_KEY_SERVICE},
	    {"dkimpy/ed25519test.dns", DKIM_PERMERROR, DKIM_R_KEY_TYPE},
	};
	struct dkim_sign_params p = {.domain = "example.com",
	                             .selector = "test",
	                             .timestamp = 1700000000};
	EVP_PKEY *key = load_key("dkimpy/test.private");
	size_t len, slen;
	uint8_t *msg = read_msg("dkimpy/test.message", &len), *sm;
	char *field = sign(msg, len, &p, key), *rec;
	struct dkim_verify_result res;
	const char *error = NULL;
	struct dkim_signer *s = NULL;

	(void)state;
	sm = prepend(field, msg, len, &slen);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct zone z = {0};
		rec = load_record(cases[i].record);
		zone_add(&z, "test._domainkey.example.com", rec, MA_DNS_OK);
		verify(&z, sm, slen, 1700000001, NULL, &res);
		assert_result(&res.sig[0], cases[i].result, cases[i].reason);
		free(rec);
		zone_clear(&z);
	}
	/* test_bad.txt: a damaged modulus never passes */
	{
		struct zone z = {0};
		rec = load_record("dkimpy/test_bad.txt");
		zone_add(&z, "test._domainkey.example.com", rec, MA_DNS_OK);
		verify(&z, sm, slen, 1700000001, NULL, &res);
		assert_int_not_equal(res.sig[0].result, DKIM_PASS);
		free(rec);
		zone_clear(&z);
	}
	free(sm);
	free(msg);
	/* no From: nothing to sign */
	msg = read_msg("dkimpy/test_nofrom.message", &len);
	assert_int_equal(dkim_sign_begin(msg, len, &p, &s, &error), -1);
	assert_string_equal(error, "no From field to sign");
	free(msg);
	free(field);
	EVP_PKEY_free(key);
}

/* ========================================================= tampering */

struct tamper {
	const char *from, *to;
	enum dkim_result result;
	enum dkim_reason reason;
};

static void
check_tampering(enum dkim_algorithm alg, const char *keyfile,
                const char *record, enum dkim_canon hc, enum dkim_canon bc,
                const struct tamper *cases, size_t ncases)
{
	struct dkim_sign_params p = {.domain = "example.com",
	                             .selector = "sel",
	                             .algorithm = alg,
	                             .header_canon = hc,
	                             .body_canon = bc,
	                             .timestamp = 1700000000};
	EVP_PKEY *key = load_key(keyfile);
	size_t len, slen, tlen;
	uint8_t *msg = msg_of(simple_msg, &len), *sm, *t;
	char *field = sign(msg, len, &p, key);
	struct zone z = {0};
	struct dkim_verify_result res;

	zone_add(&z, "sel._domainkey.example.com", record, MA_DNS_OK);
	sm = prepend(field, msg, len, &slen);
	verify(&z, sm, slen, 1700000001, NULL, &res);
	assert_result(&res.sig[0], DKIM_PASS, DKIM_R_OK);
	for (size_t i = 0; i < ncases; i++) {
		t = replace(sm, slen, cases[i].from, cases[i].to, &tlen);
		verify(&z, t, tlen, 1700000001, NULL, &res);
		if (res.sig[0].result != cases[i].result ||
		    res.sig[0].reason != cases[i].reason)
			fail_msg("%s %s: \"%s\" → \"%s\": %s (%s)",
			         dkim_algorithm_str(alg),
			         hc == DKIM_CANON_SIMPLE ? "simple" : "relaxed",
			         cases[i].from, cases[i].to,
			         dkim_result_str(res.sig[0].result),
			         dkim_reason_str(res.sig[0].reason));
		free(t);
	}
	free(sm);
	free(field);
	free(msg);
	zone_clear(&z);
	EVP_PKEY_free(key);
}

static void
test_tampering(void **state)
{
	static const struct tamper any[] = {
	    {"We lost", "We won", DKIM_FAIL, DKIM_R_BODY_HASH},
	    {"Joe.\r\n", "Joe.\r\nP.S. send money\r\n", DKIM_FAIL,
	     DKIM_R_BODY_HASH},
	    {"dinner ready", "lunch ready", DKIM_FAIL, DKIM_R_SIGNATURE},
	    /* From and Subject are over-signed: a second one breaks it */
	    {"From: Joe", "From: evil@example.net\r\nFrom: Joe", DKIM_FAIL,
	     DKIM_R_SIGNATURE},
	    {"Subject:", "Subject: URGENT\r\nSubject:", DKIM_FAIL,
	     DKIM_R_SIGNATURE},
	    /* Reply-To was absent and is over-signed too */
	    {"To: Suzie", "Reply-To: evil@example.net\r\nTo: Suzie", DKIM_FAIL,
	     DKIM_R_SIGNATURE},
	    /* an unsigned field may be added */
	    {"To: Suzie", "X-Mailer: tern\r\nTo: Suzie", DKIM_PASS, DKIM_R_OK},
	};
	static const struct tamper relaxed_ok[] = {
	    {"Subject: Is dinner", "subject:   Is\r\n\t dinner", DKIM_PASS,
	     DKIM_R_OK},
	    {"hungry yet?", "hungry   yet?  ", DKIM_PASS, DKIM_R_OK},
	    {"Joe.\r\n", "Joe.\r\n\r\n\r\n", DKIM_PASS, DKIM_R_OK},
	};
	static const struct tamper simple_bad[] = {
	    {"Subject: Is dinner", "subject: Is dinner", DKIM_FAIL,
	     DKIM_R_SIGNATURE},
	    {"hungry yet?", "hungry  yet?", DKIM_FAIL, DKIM_R_BODY_HASH},
	    {"Joe.\r\n", "Joe.\r\n\r\n\r\n", DKIM_PASS, DKIM_R_OK},
	};
	char *ed = xstrdup("v=DKIM1; k=ed25519; "
	                   "p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=");
	char *rsa = load_record("dkimpy/2048_testkey_wo_markers.pub.txt");

	(void)state;
	for (int c = 0; c < 2; c++) {
		enum dkim_canon canon =
		    c ? DKIM_CANON_SIMPLE : DKIM_CANON_RELAXED;
		size_t n = sizeof(any) / sizeof(any[0]);

		check_tampering(DKIM_ALG_ED25519_SHA256,
		                "rfc8463/brisbane-ed25519-seed.b64", ed, canon,
		                canon, any, n);
		check_tampering(DKIM_ALG_RSA_SHA256, "dkimpy/2048_testkey.key",
		                rsa, canon, canon, any, n);
	}
	check_tampering(DKIM_ALG_ED25519_SHA256,
	                "rfc8463/brisbane-ed25519-seed.b64", ed,
	                DKIM_CANON_RELAXED, DKIM_CANON_RELAXED, relaxed_ok,
	                sizeof(relaxed_ok) / sizeof(relaxed_ok[0]));
	check_tampering(DKIM_ALG_RSA_SHA256, "dkimpy/2048_testkey.key", rsa,
	                DKIM_CANON_SIMPLE, DKIM_CANON_SIMPLE, simple_bad,
	                sizeof(simple_bad) / sizeof(simple_bad[0]));
	free(ed);
	free(rsa);
}

/* Tampering with the signature field itself. */
static void
test_tampered_signature_field(void **state)
{
	static const struct tamper cases[] = {
	    {"a=ed25519-sha256", "a=rsa-sha256", DKIM_PERMERROR,
	     DKIM_R_KEY_TYPE},
	    {"a=ed25519-sha256", "a=ed448-sha256", DKIM_PERMERROR,
	     DKIM_R_ALGORITHM},
	    {"v=1", "v=2", DKIM_PERMERROR, DKIM_R_VERSION},
	    {"c=relaxed/relaxed", "c=relaxed/future", DKIM_PERMERROR,
	     DKIM_R_CANON},
	    /* accepted, but the field is signed: any change breaks it */
	    {"q=dns/txt", "q=dns/txt:http/well-known", DKIM_FAIL,
	     DKIM_R_SIGNATURE},
	    {"q=dns/txt", "q=http/well-known", DKIM_PERMERROR, DKIM_R_QUERY},
	    {"q=dns/txt", "q=dns/txt; q=dns/txt", DKIM_PERMERROR,
	     DKIM_R_SYNTAX},
	    {"s=sel", "s=se l", DKIM_PERMERROR, DKIM_R_DOMAIN},
	    {"s=sel", "s=other", DKIM_PERMERROR, DKIM_R_KEY_MISSING},
	    {"t=1700000000", "t=1700000001", DKIM_FAIL, DKIM_R_SIGNATURE},
	    {"t=1700000000", "t=1700000000; x=1600000000", DKIM_PERMERROR,
	     DKIM_R_TIMESTAMPS},
	    {"t=1700000000", "t=17000000000000", DKIM_PERMERROR, DKIM_R_SYNTAX},
	    {"h=From : From", "h=To : To", DKIM_PERMERROR,
	     DKIM_R_FROM_UNSIGNED},
	    {"bh=", "bh=AAAA", DKIM_FAIL, DKIM_R_BODY_HASH},
	    {"b=", "b=AAAA", DKIM_FAIL, DKIM_R_SIGNATURE},
	    {"b=", "b=", DKIM_PASS, DKIM_R_OK},
	    {"d=example.com;", "d=example.com; i=joe@example.com;", DKIM_FAIL,
	     DKIM_R_SIGNATURE},
	    {"d=example.com;", "d=example.com; i=joe@example.org;",
	     DKIM_PERMERROR, DKIM_R_IDENTITY},
	    {"d=example.com;", "d=example.com; l=5;", DKIM_FAIL,
	     DKIM_R_BODY_HASH},
	    {"d=example.com;", "d=example.com; l=999999;", DKIM_PERMERROR,
	     DKIM_R_LENGTH},
	    {"DKIM-Signature:", "DKIM-Signature: ;", DKIM_PERMERROR,
	     DKIM_R_SYNTAX},
	    {"DKIM-Signature:", "dkim-signature :", DKIM_PASS, DKIM_R_OK},
	};
	char *ed = xstrdup("v=DKIM1; k=ed25519; "
	                   "p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=");

	(void)state;
	/* simple header canonicalization would see the name's case */
	check_tampering(DKIM_ALG_ED25519_SHA256,
	                "rfc8463/brisbane-ed25519-seed.b64", ed,
	                DKIM_CANON_RELAXED, DKIM_CANON_RELAXED, cases,
	                sizeof(cases) / sizeof(cases[0]));
	free(ed);
}

/* =========================================================== l=, x=, t=y */

static void
test_body_length(void **state)
{
	struct dkim_sign_params p = {.domain = "example.com",
	                             .selector = "sel",
	                             .algorithm = DKIM_ALG_ED25519_SHA256,
	                             .timestamp = 1700000000,
	                             .body_length = true};
	struct dkim_limits strict = {.partial_body_policy = true};
	EVP_PKEY *key = load_key("rfc8463/brisbane-ed25519-seed.b64");
	size_t len, slen, tlen;
	uint8_t *msg = msg_of(simple_msg, &len), *sm, *t;
	char *field = sign(msg, len, &p, key);
	struct zone z = {0};
	struct dkim_verify_result res;
	struct buf ar;

	(void)state;
	/* relaxed body of simple_msg: 54 bytes */
	assert_non_null(strstr(field, "l=54;"));
	zone_add(&z, "sel._domainkey.example.com",
	         "v=DKIM1; k=ed25519; "
	         "p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=",
	         MA_DNS_OK);
	sm = prepend(field, msg, len, &slen);
	verify(&z, sm, slen, 1700000001, NULL, &res);
	assert_result(&res.sig[0], DKIM_PASS, DKIM_R_OK);
	assert_true(res.sig[0].length_limited);
	assert_false(res.sig[0].body_partial);

	/* appended text is outside the signature: pass, flagged */
	t = xmalloc(slen + 32);
	memcpy(t, sm, slen);
	memcpy(t + slen, "Click here!\r\n", 13);
	tlen = slen + 13;
	verify(&z, t, tlen, 1700000001, NULL, &res);
	assert_result(&res.sig[0], DKIM_PASS, DKIM_R_OK);
	assert_true(res.sig[0].body_partial);
	buf_init(&ar, 0);
	assert_int_equal(dkim_ar_append(&ar, &res.sig[0]), 0);
	assert_non_null(strstr(buf_cstr(&ar), "dkim=pass (body partially "
	                                      "signed) header.d=example.com"));
	buf_free(&ar);
	verify(&z, t, tlen, 1700000001, &strict, &res);
	assert_result(&res.sig[0], DKIM_POLICY, DKIM_R_PARTIAL_BODY);
	/* trailing empty lines do not count: still whole */
	memcpy(t + slen, "\r\n\r\n", 4);
	verify(&z, t, slen + 4, 1700000001, &strict, &res);
	assert_result(&res.sig[0], DKIM_PASS, DKIM_R_OK);
	assert_false(res.sig[0].body_partial);
	free(t);
	/* a body shorter than l= */
	t = replace(sm, slen, "Joe.\r\n", "", &tlen);
	verify(&z, t, tlen, 1700000001, NULL, &res);
	assert_result(&res.sig[0], DKIM_PERMERROR, DKIM_R_LENGTH);
	free(t);
	free(sm);
	free(field);
	free(msg);
	zone_clear(&z);
	EVP_PKEY_free(key);
}

static void
test_expiration_and_testing(void **state)
{
	struct dkim_sign_params p = {.domain = "example.com",
	                             .selector = "sel",
	                             .algorithm = DKIM_ALG_ED25519_SHA256,
	                             .timestamp = 1700000000,
	                             .expiration = 1700086400};
	EVP_PKEY *key = load_key("rfc8463/brisbane-ed25519-seed.b64");
	size_t len, slen, tlen;
	uint8_t *msg = msg_of(simple_msg, &len), *sm, *t;
	char *field = sign(msg, len, &p, key);
	struct zone z = {0};
	struct dkim_verify_result res;
	struct buf ar;

	(void)state;
	assert_non_null(strstr(field, "x=1700086400;"));
	zone_add(&z, "sel._domainkey.example.com",
	         "v=DKIM1; k=ed25519; t=y; "
	         "p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=",
	         MA_DNS_OK);
	sm = prepend(field, msg, len, &slen);
	verify(&z, sm, slen, 1700086400, NULL, &res);
	assert_result(&res.sig[0], DKIM_PASS, DKIM_R_OK);
	assert_true(res.sig[0].testing);
	buf_init(&ar, 0);
	assert_int_equal(dkim_ar_append(&ar, &res.sig[0]), 0);
	assert_true(strncmp(buf_cstr(&ar), "dkim=pass (test mode) ", 22) == 0);
	buf_free(&ar);
	verify(&z, sm, slen, 1700086401, NULL, &res);
	assert_result(&res.sig[0], DKIM_FAIL, DKIM_R_EXPIRED);
	assert_int_equal(z.queries, 1); /* expired: no DNS query */
	/* t=y: a failure is reported as neutral, the reason kept */
	t = replace(sm, slen, "We lost", "We won", &tlen);
	verify(&z, t, tlen, 1700000001, NULL, &res);
	assert_result(&res.sig[0], DKIM_NEUTRAL, DKIM_R_BODY_HASH);
	free(t);
	free(sm);
	free(field);
	free(msg);
	zone_clear(&z);
	EVP_PKEY_free(key);
}

/* ============================================================ DNS answers */

static void
test_dns_answers(void **state)
{
	struct dkim_sign_params p = {.domain = "example.com",
	                             .selector = "sel",
	                             .algorithm = DKIM_ALG_ED25519_SHA256,
	                             .identity = "joe@sub.example.com",
	                             .timestamp = 1700000000};
	static const char good[] =
	    "v=DKIM1; k=ed25519; "
	    "p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";
	EVP_PKEY *key = load_key("rfc8463/brisbane-ed25519-seed.b64");
	size_t len, slen;
	uint8_t *msg = msg_of(simple_msg, &len), *sm;
	char *field = sign(msg, len, &p, key);
	struct dkim_verify_result res;
	struct zone z = {0};
	const char *name = "sel._domainkey.example.com";

	(void)state;
	sm = prepend(field, msg, len, &slen);
	verify(&z, sm, slen, 1700000001, NULL, &res);
	assert_result(&res.sig[0], DKIM_PERMERROR, DKIM_R_KEY_MISSING);
	zone_add(&z, name, NULL, MA_DNS_TEMPFAIL);
	verify(&z, sm, slen, 1700000001, NULL, &res);
	assert_result(&res.sig[0], DKIM_TEMPERROR, DKIM_R_DNS);
	zone_clear(&z);
	zone_add(&z, name, NULL, MA_DNS_NODATA);
	verify(&z, sm, slen, 1700000001, NULL, &res);
	assert_result(&res.sig[0], DKIM_PERMERROR, DKIM_R_KEY_MISSING);
	zone_clear(&z);
	/* several TXT records: the first usable key */
	zone_add(&z, name, "v=spf1 -all", MA_DNS_OK);
	zone_add(&z, name, good, MA_DNS_OK);
	verify(&z, sm, slen, 1700000001, NULL, &res);
	assert_result(&res.sig[0], DKIM_PASS, DKIM_R_OK);
	assert_string_equal(res.sig[0].identity, "joe@sub.example.com");
	zone_clear(&z);
	zone_add(&z, name, "v=DKIM1; k=ed25519; p=", MA_DNS_OK);
	verify(&z, sm, slen, 1700000001, NULL, &res);
	assert_result(&res.sig[0], DKIM_FAIL, DKIM_R_KEY_REVOKED);
	zone_clear(&z);
	/* t=s: i= in a subdomain is refused */
	zone_add(&z, name,
	         "v=DKIM1; k=ed25519; t=s; "
	         "p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=",
	         MA_DNS_OK);
	verify(&z, sm, slen, 1700000001, NULL, &res);
	assert_result(&res.sig[0], DKIM_PERMERROR, DKIM_R_KEY_STRICT);
	zone_clear(&z);
	zone_add(&z, name,
	         "v=DKIM1; k=ed25519; h=sha1; "
	         "p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=",
	         MA_DNS_OK);
	verify(&z, sm, slen, 1700000001, NULL, &res);
	assert_result(&res.sig[0], DKIM_PERMERROR, DKIM_R_KEY_HASH);
	zone_clear(&z);
	free(sm);
	free(field);
	free(msg);
	EVP_PKEY_free(key);
}

/* ========================================================== bounds, AR */

static void
test_signature_bound(void **state)
{
	struct dkim_sign_params p = {.domain = "example.com",
	                             .selector = "sel",
	                             .algorithm = DKIM_ALG_ED25519_SHA256,
	                             .timestamp = 1700000000};
	struct dkim_limits two = {.signatures = 2};
	EVP_PKEY *key = load_key("rfc8463/brisbane-ed25519-seed.b64");
	size_t len, slen;
	uint8_t *msg = msg_of(simple_msg, &len);
	struct buf b;
	struct zone z = {0};
	struct dkim_verify_result res;

	(void)state;
	zone_add(&z, "sel._domainkey.example.com",
	         "v=DKIM1; k=ed25519; "
	         "p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=",
	         MA_DNS_OK);
	/* 7 signatures, each made over the message as it stood */
	buf_init(&b, 0);
	assert_int_equal(buf_append(&b, msg, len), 0);
	for (int i = 0; i < 7; i++) {
		char *field;
		p.timestamp++;
		field = sign(b.data, b.len, &p, key);
		slen = strlen(field);
		assert_int_equal(buf_append(&b, field, slen), 0);
		memmove(b.data + slen, b.data, b.len - slen);
		memcpy(b.data, field, slen);
		free(field);
	}
	verify(&z, b.data, b.len, 1800000000, NULL, &res);
	assert_int_equal(res.count, DKIM_VERIFY_MAX);
	assert_int_equal(res.unchecked, 2);
	for (size_t i = 0; i < res.count; i++)
		assert_result(&res.sig[i], DKIM_PASS, DKIM_R_OK);
	assert_int_equal(z.queries, DKIM_VERIFY_MAX);
	verify(&z, b.data, b.len, 1800000000, &two, &res);
	assert_int_equal(res.count, 2);
	assert_int_equal(res.unchecked, 5);
	buf_free(&b);

	/* more header fields than are kept: one permerror */
	buf_init(&b, 0);
	assert_int_equal(buf_append_str(&b, "DKIM-Signature: v=1\r\n"), 0);
	for (int i = 0; i < DKIM_HEADER_FIELDS_MAX + 10; i++)
		assert_int_equal(buf_append_str(&b, "X-A: b\r\n"), 0);
	assert_int_equal(buf_append_str(&b, "\r\nbody\r\n"), 0);
	verify(&z, b.data, b.len, 1800000000, NULL, &res);
	assert_int_equal(res.count, 1);
	assert_result(&res.sig[0], DKIM_PERMERROR, DKIM_R_HEADERS);
	buf_free(&b);

	/* unsigned */
	verify(&z, msg, len, 1800000000, NULL, &res);
	assert_int_equal(res.count, 0);
	buf_init(&b, 0);
	assert_int_equal(dkim_ar_append_all(&b, &res), 0);
	assert_string_equal(buf_cstr(&b), "dkim=none");
	buf_free(&b);
	free(msg);
	zone_clear(&z);
	EVP_PKEY_free(key);
}

static void
test_ar_fragment(void **state)
{
	struct dkim_sig_result r = {.result = DKIM_FAIL,
	                            .reason = DKIM_R_BODY_HASH,
	                            .domain = "example.com",
	                            .selector = "sel",
	                            .algorithm = "rsa-sha256",
	                            .identity = "\"odd user\"@example.com",
	                            .b = "ab/d+F=="};
	struct dkim_sig_result bare = {.result = DKIM_PERMERROR,
	                               .reason = DKIM_R_SYNTAX};
	struct buf b;

	(void)state;
	buf_init(&b, 0);
	assert_int_equal(dkim_ar_append(&b, &r), 0);
	assert_string_equal(buf_cstr(&b),
	                    "dkim=fail reason=\"body hash did not verify\" "
	                    "header.d=example.com "
	                    "header.i=\"\\\"odd user\\\"@example.com\" "
	                    "header.s=sel header.a=rsa-sha256 "
	                    "header.b=\"ab/d+F==\"");
	buf_reset(&b);
	assert_int_equal(dkim_ar_append(&b, &bare), 0);
	assert_string_equal(buf_cstr(&b),
	                    "dkim=permerror reason=\"signature syntax error\"");
	buf_free(&b);
	/* a full buffer is an error, not an overflow */
	buf_init(&b, 16);
	assert_int_equal(dkim_ar_append(&b, &r), -1);
	buf_free(&b);
	for (int i = DKIM_NONE; i <= DKIM_PERMERROR; i++)
		assert_string_not_equal(dkim_result_str((enum dkim_result)i),
		                        "");
	for (int i = DKIM_R_OK; i <= DKIM_R_PARTIAL_BODY; i++)
		assert_string_not_equal(dkim_reason_str((enum dkim_reason)i),
		                        "unknown");
}

/* ============================================================= signing */

static void
test_sign_defaults(void **state)
{
	static const char text[] = "Received: from x\n"
	                           "From: a@example.org\n"
	                           "To: b@example.net\n"
	                           "To: c@example.net\n"
	                           "Subject: hi\n"
	                           "Message-ID: <1@example.org>\n"
	                           "List-Id: <l.example.org>\n"
	                           "\n"
	                           "body\n";
	struct dkim_sign_params p = {.domain = "example.org",
	                             .selector = "s2024",
	                             .timestamp = 1700000000};
	EVP_PKEY *key = load_key("dkimpy/2048_testkey.key");
	size_t len;
	uint8_t *msg = msg_of(text, &len);
	char *field = sign(msg, len, &p, key), *flat = xstrdup(field), *h;
	size_t o = 0;

	(void)state;
	assert_folded(field);
	assert_non_null(strstr(field, "a=rsa-sha256; c=relaxed/relaxed;"));
	assert_non_null(strstr(field, "t=1700000000;"));
	/* unfold to look at h= */
	for (size_t i = 0; flat[i] != '\0'; i++)
		if (flat[i] != '\r' && flat[i] != '\n')
			flat[o++] = flat[i];
	flat[o] = '\0';
	h = strstr(flat, "h=");
	assert_non_null(h);
	assert_true(strncmp(h,
	                    "h=From : From : Reply-To : Subject : Subject : "
	                    "Date : To : To : To : Cc : Message-ID : "
	                    "List-Id;",
	                    strlen("h=From : From : Reply-To : Subject : "
	                           "Subject : Date : To : To : To : Cc : "
	                           "Message-ID : List-Id;")) == 0);
	assert_null(strstr(flat, "Received"));
	free(flat);
	free(field);
	free(msg);
	EVP_PKEY_free(key);
}

static void
test_sign_params_refused(void **state)
{
	static const char *const no_from[] = {"To", "Subject", NULL};
	static const char *const bad_name[] = {"From", "X;Y", NULL};
	static const struct {
		struct dkim_sign_params p;
		const char *error;
	} cases[] = {
	    {{.domain = "exa mple.com", .selector = "s"},
	     "invalid domain or selector"},
	    {{.domain = "example.com", .selector = "s;x=1"},
	     "invalid domain or selector"},
	    {{.domain = "example.com"}, "domain and selector are required"},
	    {{.domain = "example.com",
	      .selector = "s",
	      .algorithm = DKIM_ALG_RSA_SHA1},
	     "signing algorithm must be rsa-sha256 or ed25519-sha256"},
	    {{.domain = "example.com",
	      .selector = "s",
	      .timestamp = 100,
	      .expiration = 100},
	     "expiration must be later than the timestamp"},
	    {{.domain = "example.com", .selector = "s", .identity = "a@b.org"},
	     "identity must be an address in the signing domain"},
	    {{.domain = "example.com",
	      .selector = "s",
	      .identity = "a;b=c@example.com"},
	     "identity must be an address in the signing domain"},
	    {{.domain = "example.com", .selector = "s", .headers = no_from},
	     "the header list must include From"},
	    {{.domain = "example.com", .selector = "s", .headers = bad_name},
	     "invalid header field name"},
	};
	size_t len;
	uint8_t *msg = msg_of(simple_msg, &len);

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct dkim_signer *s = NULL;
		const char *error = NULL;
		assert_int_equal(
		    dkim_sign_begin(msg, len, &cases[i].p, &s, &error), -1);
		assert_null(s);
		assert_string_equal(error, cases[i].error);
	}
	free(msg);
}

/* 100 KB body: one pass, signatures with the same body hash share it. */
static void
test_large_message(void **state)
{
	struct dkim_sign_params p = {.domain = "example.com",
	                             .selector = "sel",
	                             .algorithm = DKIM_ALG_ED25519_SHA256,
	                             .timestamp = 1700000000};
	EVP_PKEY *key = load_key("rfc8463/brisbane-ed25519-seed.b64");
	struct buf b;
	struct zone z = {0};
	struct dkim_verify_result res;
	char *f1, *f2;
	size_t l1;

	(void)state;
	zone_add(&z, "sel._domainkey.example.com",
	         "v=DKIM1; k=ed25519; "
	         "p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=",
	         MA_DNS_OK);
	buf_init(&b, 0);
	assert_int_equal(buf_append_str(&b, "From: a@example.com\r\n"
	                                    "Subject: big\r\n\r\n"),
	                 0);
	for (int i = 0; b.len < 100 * 1024; i++)
		assert_int_equal(buf_printf(&b, "line %d\t of  text \r\n", i),
		                 0);
	f1 = sign(b.data, b.len, &p, key);
	p.header_canon = DKIM_CANON_SIMPLE;
	f2 = sign(b.data, b.len, &p, key);
	l1 = strlen(f1);
	assert_int_equal(buf_append(&b, f1, l1), 0);
	memmove(b.data + l1, b.data, b.len - l1);
	memcpy(b.data, f1, l1);
	{
		size_t l2 = strlen(f2);
		assert_int_equal(buf_append(&b, f2, l2), 0);
		memmove(b.data + l2, b.data, b.len - l2);
		memcpy(b.data, f2, l2);
	}
	verify(&z, b.data, b.len, 1700000001, NULL, &res);
	assert_int_equal(res.count, 2);
	assert_result(&res.sig[0], DKIM_PASS, DKIM_R_OK);
	assert_result(&res.sig[1], DKIM_PASS, DKIM_R_OK);
	/* one changed byte near the end breaks both */
	b.data[b.len - 5] ^= 1;
	verify(&z, b.data, b.len, 1700000001, NULL, &res);
	assert_result(&res.sig[0], DKIM_FAIL, DKIM_R_BODY_HASH);
	assert_result(&res.sig[1], DKIM_FAIL, DKIM_R_BODY_HASH);
	free(f1);
	free(f2);
	buf_free(&b);
	zone_clear(&z);
	EVP_PKEY_free(key);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_tags),
	    cmocka_unit_test(test_tags_limits_and_spans),
	    cmocka_unit_test(test_value_syntaxes),
	    cmocka_unit_test(test_key_records),
	    cmocka_unit_test(test_key_records_dkimpy),
	    cmocka_unit_test(test_canon_header),
	    cmocka_unit_test(test_canon_body),
	    cmocka_unit_test(test_canon_body_known_hashes_and_limit),
	    cmocka_unit_test(test_msg_parse),
	    cmocka_unit_test(test_rfc8463_verify),
	    cmocka_unit_test(test_rfc8463_resign),
	    cmocka_unit_test(test_sign_split),
	    cmocka_unit_test(test_stalwart),
	    cmocka_unit_test(test_mail_dkim_corpus),
	    cmocka_unit_test(test_mail_dkim_ed25519),
	    cmocka_unit_test(test_mail_dkim_policy_cases),
	    cmocka_unit_test(test_rsa_key_size),
	    cmocka_unit_test(test_dkimpy_messages),
	    cmocka_unit_test(test_dkimpy_sign_verify),
	    cmocka_unit_test(test_dkimpy_bad_keys),
	    cmocka_unit_test(test_tampering),
	    cmocka_unit_test(test_tampered_signature_field),
	    cmocka_unit_test(test_body_length),
	    cmocka_unit_test(test_expiration_and_testing),
	    cmocka_unit_test(test_dns_answers),
	    cmocka_unit_test(test_signature_bound),
	    cmocka_unit_test(test_ar_fragment),
	    cmocka_unit_test(test_sign_defaults),
	    cmocka_unit_test(test_sign_params_refused),
	    cmocka_unit_test(test_large_message),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
