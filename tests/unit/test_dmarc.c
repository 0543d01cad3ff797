/* Unit tests for mailauth DMARC and the Public Suffix List: record parsing,
 * From domains, alignment and evaluation tables against a fake DNS, the
 * PSL test vectors ($TERN_TESTDATA/dmarc/psl) and the rspamd DMARC corpus
 * ($TERN_TESTDATA/dmarc/rspamd: messages through DKIM and SPF, then DMARC,
 * with the fake DNS records rspamd's functional tests use). */
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

#include "core/buf.h"
#include "core/xmalloc.h"
#include "mailauth/dkim.h"
#include "mailauth/dmarc.h"
#include "mailauth/psl.h"
#include "mailauth/spf.h"

/* The rspamd messages were signed in 2016-2017; no x= tags. */
#define RSPAMD_NOW 1700000000

static struct psl *psl;

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

/* A whole file under $TERN_TESTDATA/dmarc, NUL-terminated. */
static char *
read_file(const char *rel, size_t *len_r)
{
	char *path = xasprintf("%s/dmarc/%s", testdata(), rel);
	FILE *f = fopen(path, "rb");
	struct buf b;
	char chunk[4096];
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
	return (char *)b.data;
}

/* LF → CRLF where the CR is missing (DKIM wants the wire form). */
static char *
crlf(const char *in, size_t len, size_t *len_r)
{
	struct buf b;

	buf_init(&b, 0);
	for (size_t i = 0; i < len; i++) {
		if (in[i] == '\n' && (i == 0 || in[i - 1] != '\r'))
			assert_int_equal(buf_append_byte(&b, '\r'), 0);
		assert_int_equal(buf_append_byte(&b, (uint8_t)in[i]), 0);
	}
	assert_non_null(buf_cstr(&b));
	*len_r = b.len;
	return (char *)b.data;
}

/* ------------------------------------------------------------- fake DNS */

struct zone_rec {
	char *name;
	enum ma_dns_type type;
	enum ma_dns_status status;
	size_t count;
	char **rr;
};

struct zone {
	struct zone_rec *rec;
	size_t count;
	unsigned int queries;
};

static void
zone_add(struct zone *z, const char *name, enum ma_dns_type type,
         enum ma_dns_status status, const char *const *rr, size_t n)
{
	struct zone_rec *r;

	z->rec = xreallocarray(z->rec, z->count + 1, sizeof(*z->rec));
	r = &z->rec[z->count++];
	r->name = xstrdup(name);
	r->type = type;
	r->status = status;
	r->count = n;
	r->rr = n > 0 ? xcalloc(n, sizeof(*r->rr)) : NULL;
	for (size_t i = 0; i < n; i++)
		r->rr[i] = xstrdup(rr[i]);
}

static void
zone_txt(struct zone *z, const char *name, const char *txt)
{
	zone_add(z, name, MA_DNS_TXT, MA_DNS_OK, &txt, 1);
}

static void
zone_clear(struct zone *z)
{
	for (size_t i = 0; i < z->count; i++) {
		for (size_t j = 0; j < z->rec[i].count; j++)
			free(z->rec[i].rr[j]);
		free(z->rec[i].rr);
		free(z->rec[i].name);
	}
	free(z->rec);
	memset(z, 0, sizeof(*z));
}

/* The first entry for name and type answers (rspamd lists some twice);
 * a name known only with other types is NODATA, an unknown one
 * NXDOMAIN. */
static int
zone_lookup(void *arg, const char *name, enum ma_dns_type type,
            struct ma_dns_answer *ans)
{
	struct zone *z = arg;
	bool known = false;

	z->queries++;
	for (size_t i = 0; i < z->count; i++) {
		const struct zone_rec *r = &z->rec[i];

		if (strcasecmp(r->name, name) != 0)
			continue;
		known = true;
		if (r->type != type)
			continue;
		ans->status = r->status;
		if (r->status == MA_DNS_OK) {
			ans->rr = xcalloc(r->count, sizeof(*ans->rr));
			for (size_t j = 0; j < r->count; j++)
				ans->rr[j] = xstrdup(r->rr[j]);
			ans->count = r->count;
		}
		return 0;
	}
	ans->status = known ? MA_DNS_NODATA : MA_DNS_NXDOMAIN;
	return 0;
}

/* Just enough JSON for fake-dns.json: an array of objects whose values
 * are strings or arrays of strings. */
struct json {
	const char *p, *end;
};

static void
json_ws(struct json *j)
{
	while (j->p < j->end && strchr(" \t\r\n", *j->p) != NULL)
		j->p++;
}

static bool
json_eat(struct json *j, char c)
{
	json_ws(j);
	if (j->p < j->end && *j->p == c) {
		j->p++;
		return true;
	}
	return false;
}

static void
utf8_put(struct buf *b, unsigned int cp)
{
	if (cp < 0x80) {
		buf_append_byte(b, (uint8_t)cp);
	} else if (cp < 0x800) {
		buf_append_byte(b, (uint8_t)(0xc0 | cp >> 6));
		buf_append_byte(b, (uint8_t)(0x80 | (cp & 0x3f)));
	} else {
		buf_append_byte(b, (uint8_t)(0xe0 | cp >> 12));
		buf_append_byte(b, (uint8_t)(0x80 | ((cp >> 6) & 0x3f)));
		buf_append_byte(b, (uint8_t)(0x80 | (cp & 0x3f)));
	}
}

static char *
json_string(struct json *j)
{
	struct buf b;

	assert_true(json_eat(j, '"'));
	buf_init(&b, 0);
	while (j->p < j->end && *j->p != '"') {
		char c = *j->p++;

		if (c == '\\') {
			assert_true(j->p < j->end);
			c = *j->p++;
			if (c == 'u') {
				assert_true(j->end - j->p >= 4);
				char hex[5] = {j->p[0], j->p[1], j->p[2],
				               j->p[3], '\0'};
				utf8_put(&b,
				         (unsigned int)strtoul(hex, NULL, 16));
				j->p += 4;
				continue;
			}
			c = c == 'n' ? '\n' : c == 't' ? '\t' : c;
		}
		buf_append_byte(&b, (uint8_t)c);
	}
	assert_true(json_eat(j, '"'));
	assert_non_null(buf_cstr(&b));
	return (char *)b.data;
}

static enum ma_dns_type
type_of(const char *s)
{
	static const struct {
		const char *name;
		enum ma_dns_type type;
	} types[] = {{"A", MA_DNS_A},
	             {"AAAA", MA_DNS_AAAA},
	             {"MX", MA_DNS_MX},
	             {"TXT", MA_DNS_TXT},
	             {"PTR", MA_DNS_PTR}};

	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		if (strcmp(types[i].name, s) == 0)
			return types[i].type;
	}
	fail_msg("unknown record type %s", s);
	return MA_DNS_A;
}

static void
zone_load_json(struct zone *z, const char *rel)
{
	size_t len;
	char *text = read_file(rel, &len);
	struct json j = {text, text + len};

	assert_true(json_eat(&j, '['));
	while (!json_eat(&j, ']')) {
		char *name = NULL, *type = NULL, *rcode = NULL;
		char *rr[MA_DNS_RR_MAX];
		size_t n = 0;
		enum ma_dns_status status = MA_DNS_OK;

		(void)json_eat(&j, ',');
		assert_true(json_eat(&j, '{'));
		while (!json_eat(&j, '}')) {
			char *key;

			(void)json_eat(&j, ',');
			key = json_string(&j);
			assert_true(json_eat(&j, ':'));
			if (strcmp(key, "replies") == 0) {
				assert_true(json_eat(&j, '['));
				while (!json_eat(&j, ']')) {
					(void)json_eat(&j, ',');
					assert_true(n < MA_DNS_RR_MAX);
					rr[n++] = json_string(&j);
				}
			} else {
				char *v = json_string(&j);

				if (strcmp(key, "name") == 0)
					name = v;
				else if (strcmp(key, "type") == 0)
					type = v;
				else if (strcmp(key, "rcode") == 0)
					rcode = v;
				else
					free(v);
			}
			free(key);
		}
		assert_non_null(name);
		assert_non_null(type);
		if (rcode != NULL)
			status =
			    strcmp(rcode, "nxdomain") == 0  ? MA_DNS_NXDOMAIN
			    : strcmp(rcode, "timeout") == 0 ? MA_DNS_TEMPFAIL
			                                    : MA_DNS_NODATA;
		zone_add(z, name, type_of(type), status,
		         (const char *const *)rr, n);
		for (size_t i = 0; i < n; i++)
			free(rr[i]);
		free(name);
		free(type);
		free(rcode);
	}
	free(text);
}

/* ------------------------------------------------------------- records */

struct record_case {
	const char *txt;
	int rc;
	enum dmarc_policy p, sp;
	bool sp_given, fallback;
	enum dmarc_align adkim, aspf;
	unsigned int pct, fo, rf;
	uint32_t ri;
	size_t nrua, nruf;
	unsigned int ignored;
};

#define R DMARC_ALIGN_RELAXED
#define S DMARC_ALIGN_STRICT
#define NONE DMARC_POLICY_NONE
#define QUAR DMARC_POLICY_QUARANTINE
#define REJ DMARC_POLICY_REJECT
#define FO0 DMARC_FO_0
#define AFRF DMARC_RF_AFRF
#define DAY DMARC_RI_DEFAULT

static const struct record_case record_cases[] = {
    {"v=DMARC1; p=none", 0, NONE, NONE, false, false, R, R, 100, FO0, AFRF, DAY,
     0, 0, 0},
    {"v=DMARC1; p=reject; sp=quarantine; adkim=s; aspf=s; pct=50; "
     "fo=1:d:s; rf=afrf; ri=3600; rua=mailto:a@example.com,"
     "mailto:b@example.com!10m; ruf=mailto:f@example.com",
     0, REJ, QUAR, true, false, S, S, 50, DMARC_FO_1 | DMARC_FO_D | DMARC_FO_S,
     AFRF, 3600, 2, 1, 0},
    {"v=DMARC1;p=quarantine", 0, QUAR, QUAR, false, false, R, R, 100, FO0, AFRF,
     DAY, 0, 0, 0},
    {"  v = DMARC1 ;\tp = Reject ; ", 0, REJ, REJ, false, false, R, R, 100, FO0,
     AFRF, DAY, 0, 0, 0},
    {"V=DMARC1; P=REJECT; ASPF=S", 0, REJ, REJ, false, false, R, S, 100, FO0,
     AFRF, DAY, 0, 0, 0},
    /* not DMARC records: v= must come first and match precisely */
    {"v=dmarc1; p=reject", -1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    {"v=DMARC10; p=reject", -1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    {"p=reject; v=DMARC1", -1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    {"v=DMARC1 p=reject", -1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    {"", -1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    {"v=spf1 -all", -1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    /* §6.6.3: no valid p= (or a bad sp=): p=none if rua= is valid */
    {"v=DMARC1", -1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    {"v=DMARC1; p=bogus", -1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    {"v=DMARC1; sp=reject", -1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    {"v=DMARC1; p=reject; sp=bogus", -1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    {"v=DMARC1; p=reject; sp=bogus; rua=bogus", -1, 0, 0, 0, 0, 0, 0, 0, 0, 0,
     0, 0, 0, 0},
    {"v=DMARC1; p=bogus; rua=mailto:r@example.com", 0, NONE, NONE, false, true,
     R, R, 100, FO0, AFRF, DAY, 1, 0, 1},
    {"v=DMARC1; sp=reject; rua=mailto:r@example.com", 0, NONE, NONE, false,
     true, R, R, 100, FO0, AFRF, DAY, 1, 0, 0},
    {"v=DMARC1; p=reject; sp=bogus; rua=mailto:r@example.com", 0, NONE, NONE,
     false, true, R, R, 100, FO0, AFRF, DAY, 1, 0, 1},
    /* bad optional values: the default, counted */
    {"v=DMARC1; p=reject; pct=101", 0, REJ, REJ, false, false, R, R, 100, FO0,
     AFRF, DAY, 0, 0, 1},
    {"v=DMARC1; p=reject; pct=0", 0, REJ, REJ, false, false, R, R, 0, FO0, AFRF,
     DAY, 0, 0, 0},
    {"v=DMARC1; p=reject; pct=-1", 0, REJ, REJ, false, false, R, R, 100, FO0,
     AFRF, DAY, 0, 0, 1},
    {"v=DMARC1; p=reject; pct=", 0, REJ, REJ, false, false, R, R, 100, FO0,
     AFRF, DAY, 0, 0, 1},
    {"v=DMARC1; p=reject; adkim=x; aspf=S", 0, REJ, REJ, false, false, R, S,
     100, FO0, AFRF, DAY, 0, 0, 1},
    {"v=DMARC1; p=reject; fo=1:x", 0, REJ, REJ, false, false, R, R, 100, FO0,
     AFRF, DAY, 0, 0, 1},
    {"v=DMARC1; p=reject; fo = 1 : D", 0, REJ, REJ, false, false, R, R, 100,
     DMARC_FO_1 | DMARC_FO_D, AFRF, DAY, 0, 0, 0},
    {"v=DMARC1; p=reject; rf=iodef", 0, REJ, REJ, false, false, R, R, 100, FO0,
     0, DAY, 0, 0, 0},
    {"v=DMARC1; p=reject; rf=iodef:afrf", 0, REJ, REJ, false, false, R, R, 100,
     FO0, AFRF, DAY, 0, 0, 0},
    {"v=DMARC1; p=reject; ri=4294967295", 0, REJ, REJ, false, false, R, R, 100,
     FO0, AFRF, 4294967295u, 0, 0, 0},
    {"v=DMARC1; p=reject; ri=4294967296", 0, REJ, REJ, false, false, R, R, 100,
     FO0, AFRF, DAY, 0, 0, 1},
    /* unknown, repeated and broken tags are ignored */
    {"v=DMARC1; p=reject; foo=bar; x_y=1; np=none", 0, REJ, REJ, false, false,
     R, R, 100, FO0, AFRF, DAY, 0, 0, 3},
    {"v=DMARC1; p=none; p=reject", 0, NONE, NONE, false, false, R, R, 100, FO0,
     AFRF, DAY, 0, 0, 1},
    {"v=DMARC1; p=reject; garbage; =x; 1a=2", 0, REJ, REJ, false, false, R, R,
     100, FO0, AFRF, DAY, 0, 0, 3},
    {"v=DMARC1; p=reject;;", 0, REJ, REJ, false, false, R, R, 100, FO0, AFRF,
     DAY, 0, 0, 0},
    {"v=DMARC1; v=DMARC1; p=reject", 0, REJ, REJ, false, false, R, R, 100, FO0,
     AFRF, DAY, 0, 0, 1},
    {"v=DMARC1; p=reject; rua=mailto:a@x.example, bogus, "
     "mailto:b@x.example!5k",
     0, REJ, REJ, false, false, R, R, 100, FO0, AFRF, DAY, 2, 0, 1},
};

static void
test_record_parse(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(record_cases) / sizeof(record_cases[0]);
	     i++) {
		const struct record_case *c = &record_cases[i];
		struct dmarc_record rec;
		const char *error = NULL;
		int rc =
		    dmarc_record_parse(c->txt, strlen(c->txt), &rec, &error);

		print_message("record %zu: %s\n", i, c->txt);
		assert_int_equal(rc, c->rc);
		if (rc < 0) {
			assert_non_null(error);
			continue;
		}
		assert_int_equal(rec.p, c->p);
		assert_int_equal(rec.sp, c->sp);
		assert_int_equal(rec.sp_given, c->sp_given);
		assert_int_equal(rec.p_fallback, c->fallback);
		assert_int_equal(rec.adkim, c->adkim);
		assert_int_equal(rec.aspf, c->aspf);
		assert_int_equal(rec.pct, c->pct);
		assert_int_equal(rec.fo, c->fo);
		assert_int_equal(rec.rf, c->rf);
		assert_int_equal(rec.ri, c->ri);
		assert_int_equal(rec.nrua, c->nrua);
		assert_int_equal(rec.nruf, c->nruf);
		assert_int_equal(rec.ignored, c->ignored);
		assert_true(dmarc_record_is_dmarc(c->txt, strlen(c->txt)));
	}
}

static void
test_record_uris(void **state)
{
	static const struct {
		const char *uri;
		bool ok;
		uint64_t size;
	} cases[] = {
	    {"mailto:a@example.com", true, 0},
	    {"mailto:a@example.com!10m", true, UINT64_C(10) << 20},
	    {"mailto:a@example.com!20", true, 20},
	    {"mailto:a@example.com!2K", true, 2048},
	    {"mailto:a@example.com!1t", true, UINT64_C(1) << 40},
	    {"https://reports.example/dmarc?x=%2C", true, 0},
	    {"mailto:a@example.com!10x", false, 0},
	    {"mailto:a@example.com!", false, 0},
	    {"mailto:a@example.com!m", false, 0},
	    {"mailto:a!b@example.com", false, 0},
	    {"mailto:a@example.com!99999999999999999999t", false, 0},
	    {"mailto:a@example.com!16777216t", false, 0},
	    {"mailto:", false, 0},
	    {"1mailto:a@example.com", false, 0},
	    {"mail_to:a@example.com", false, 0},
	    {"a@example.com", false, 0},
	    {"mailto:a b@example.com", false, 0},
	};
	struct dmarc_record rec;
	const char *error;
	char *txt;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		txt = xasprintf("v=DMARC1; p=none; rua=%s", cases[i].uri);
		print_message("uri %s\n", cases[i].uri);
		assert_int_equal(
		    dmarc_record_parse(txt, strlen(txt), &rec, &error), 0);
		assert_int_equal(rec.nrua, cases[i].ok ? 1 : 0);
		if (cases[i].ok) {
			assert_int_equal(rec.rua[0].size_max, cases[i].size);
			assert_int_equal(strncmp(rec.rua[0].uri, cases[i].uri,
			                         strlen(rec.rua[0].uri)),
			                 0);
		}
		free(txt);
	}

	/* at most DMARC_URIS_MAX are kept, the rest counted */
	txt = xstrdup("v=DMARC1; p=none; ruf=mailto:1@x.example,"
	              "mailto:2@x.example,mailto:3@x.example,"
	              "mailto:4@x.example,mailto:5@x.example");
	assert_int_equal(dmarc_record_parse(txt, strlen(txt), &rec, &error), 0);
	assert_int_equal(rec.nruf, DMARC_URIS_MAX);
	assert_string_equal(rec.ruf[3].uri, "mailto:4@x.example");
	assert_int_equal(rec.ignored, 1);
	free(txt);

	/* a URI over DMARC_URI_MAX is dropped, one at the limit kept */
	{
		struct buf b;
		size_t fill = DMARC_URI_MAX - strlen("mailto:@x.example");

		buf_init(&b, 0);
		assert_int_equal(
		    buf_append_str(&b, "v=DMARC1; p=none; rua=mailto:"), 0);
		for (size_t i = 0; i < fill; i++)
			assert_int_equal(buf_append_byte(&b, 'a'), 0);
		assert_int_equal(buf_append_str(&b, "@x.example"), 0);
		assert_int_equal(dmarc_record_parse((const char *)b.data, b.len,
		                                    &rec, &error),
		                 0);
		assert_int_equal(rec.nrua, 1);
		assert_int_equal(strlen(rec.rua[0].uri), DMARC_URI_MAX);
		buf_reset(&b);
		assert_int_equal(
		    buf_append_str(&b, "v=DMARC1; p=none; rua=mailto:"), 0);
		for (size_t i = 0; i < fill + 1; i++)
			assert_int_equal(buf_append_byte(&b, 'a'), 0);
		assert_int_equal(buf_append_str(&b, "@x.example"), 0);
		assert_int_equal(dmarc_record_parse((const char *)b.data, b.len,
		                                    &rec, &error),
		                 0);
		assert_int_equal(rec.nrua, 0);
		assert_int_equal(rec.ignored, 1);
		buf_free(&b);
	}
}

/* ----------------------------------------------------------------- PSL */

/* One 'quoted' or null argument of checkPublicSuffix(). */
static char *
vector_arg(const char **p)
{
	const char *s = *p, *e;
	char *v;

	while (*s == ' ' || *s == ',' || *s == '(')
		s++;
	if (strncmp(s, "null", 4) == 0) {
		*p = s + 4;
		return NULL;
	}
	assert_int_equal(*s, '\'');
	e = strchr(s + 1, '\'');
	assert_non_null(e);
	v = xstrndup(s + 1, (size_t)(e - s - 1));
	*p = e + 1;
	return v;
}

static void
test_psl_vectors(void **state)
{
	size_t len, checks = 0, passed = 0;
	char *text = read_file("psl/test_psl.txt", &len);
	char *line, *save = NULL;

	(void)state;
	for (line = strtok_r(text, "\n", &save); line != NULL;
	     line = strtok_r(NULL, "\n", &save)) {
		const char *p = line;
		char *input, *expected;
		char out[PSL_NAME_MAX + 1], want[PSL_NAME_MAX + 1];
		int rc;
		bool ok;

		if (strncmp(line, "checkPublicSuffix(", 18) != 0)
			continue;
		p += 17;
		input = vector_arg(&p);
		expected = vector_arg(&p);
		rc = psl_registrable_domain(psl, input, out, sizeof(out));
		if (expected == NULL) {
			ok = rc != 0;
		} else {
			/* the expected U-labels in A-label form */
			assert_true(psl_domain_normalize(expected,
			                                 strlen(expected), want,
			                                 sizeof(want)) > 0);
			ok = rc == 0 && strcmp(out, want) == 0;
		}
		checks++;
		passed += ok;
		if (!ok)
			print_error("PSL %s: got %s (%d), want %s\n",
			            input != NULL ? input : "null",
			            rc == 0 ? out : "null", rc,
			            expected != NULL ? expected : "null");
		free(input);
		free(expected);
	}
	free(text);
	print_message("PSL vectors: %zu of %zu pass\n", passed, checks);
	assert_int_equal(checks, 78);
	assert_int_equal(passed, checks);
}

static void
test_psl_rules(void **state)
{
	static const char list[] =
	    "// ===BEGIN ICANN DOMAINS===\r\n"
	    "com\r\n"
	    "uk\n"
	    "co.uk\n"
	    "*.ck\n"
	    "!www.ck\n"
	    "jp\n"
	    "kobe.jp\n"
	    "*.kobe.jp\n"
	    "!city.kobe.jp\n"
	    "\xe5\x85\xac\xe5\x8f\xb8.cn  trailing words are ignored\n"
	    "   leading-space-is-an-empty-line\n"
	    "foo.*.bar\n"
	    "!*.bad\n"
	    "a..b\n"
	    "// ===BEGIN PRIVATE DOMAINS===\n"
	    "blogspot.com\n"
	    "za.org";
	static const struct {
		const char *name;
		int rc;
		const char *want;
	} cases[] = {
	    {"example.com", 0, "example.com"},
	    {"a.b.Example.COM", 0, "example.com"},
	    {"com", 1, "com"},
	    {"blogspot.com", 1, "blogspot.com"},
	    {"x.y.blogspot.com", 0, "y.blogspot.com"},
	    {"a.b.co.uk", 0, "b.co.uk"},
	    {"ck", 1, "ck"},
	    {"test.ck", 1, "test.ck"},
	    {"b.test.ck", 0, "b.test.ck"},
	    {"www.ck", 0, "www.ck"},
	    {"a.www.ck", 0, "www.ck"},
	    {"city.kobe.jp", 0, "city.kobe.jp"},
	    {"x.city.kobe.jp", 0, "city.kobe.jp"},
	    {"c.kobe.jp", 1, "c.kobe.jp"},
	    {"b.c.kobe.jp", 0, "b.c.kobe.jp"},
	    {"shishi.xn--55qx5d.cn", 0, "shishi.xn--55qx5d.cn"},
	    {"a.shishi.\xe5\x85\xac\xe5\x8f\xb8.cn", 0, "shishi.xn--55qx5d.cn"},
	    {"x.za.org", 0, "x.za.org"},
	    {"unlisted", 1, "unlisted"},
	    {"a.unlisted", 0, "a.unlisted"},
	    {"under_score.com", 0, "under_score.com"},
	    {"", -1, ""},
	    {".com", -1, ""},
	    {"example.com.", -1, ""},
	    {"a..example.com", -1, ""},
	    {"a b.com", -1, ""},
	    {"[192.0.2.1]", -1, ""},
	    {"\xff.com", -1, ""},
	};
	char *error = NULL;
	struct psl *p = psl_parse(list, sizeof(list) - 1, &error);
	char out[PSL_NAME_MAX + 1];

	(void)state;
	assert_non_null(p);
	/* com uk co.uk *.ck !www.ck jp kobe.jp *.kobe.jp !city.kobe.jp 公司.cn
	 * blogspot.com za.org; skipped: foo.*.bar !*.bad a..b */
	assert_int_equal(psl_rule_count(p), 12);
	assert_int_equal(psl_skipped_count(p), 3);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		print_message("psl %s\n", cases[i].name);
		assert_int_equal(
		    psl_registrable_domain(p, cases[i].name, out, sizeof(out)),
		    cases[i].rc);
		assert_string_equal(out, cases[i].want);
	}
	/* in place, and an output too small */
	strcpy(out, "a.b.example.com");
	assert_int_equal(psl_registrable_domain(p, out, out, sizeof(out)), 0);
	assert_string_equal(out, "example.com");
	assert_int_equal(psl_registrable_domain(p, "a.example.com", out, 5),
	                 -1);
	assert_int_equal(psl_registrable_domain(p, NULL, out, sizeof(out)), -1);
	psl_free(&p);
	assert_null(p);
	psl_free(&p);

	/* no rules, over the line limit */
	assert_null(psl_parse("// nothing\n\n", 12, &error));
	assert_non_null(error);
	free(error);
	{
		char *big = xmalloc(PSL_LINE_MAX + 16);

		memset(big, 'a', PSL_LINE_MAX + 1);
		memcpy(big + PSL_LINE_MAX + 1, "\ncom\n", 5);
		p = psl_parse(big, PSL_LINE_MAX + 6, &error);
		assert_non_null(p);
		assert_int_equal(psl_rule_count(p), 1);
		assert_int_equal(psl_skipped_count(p), 1);
		psl_free(&p);
		free(big);
	}
	assert_null(psl_parse(list, PSL_FILE_MAX + 1, &error));
	free(error);
}

static void
test_psl_load(void **state)
{
	char *error = NULL;

	(void)state;
	assert_null(psl_load("/nonexistent/psl.dat", &error));
	assert_non_null(strstr(error, "/nonexistent/psl.dat"));
	free(error);
	error = NULL;
	assert_null(psl_load("/", &error));
	assert_non_null(strstr(error, "not a regular file"));
	free(error);
	/* the system list: both sections, thousands of rules */
	assert_true(psl_rule_count(psl) > 5000);
	print_message("system PSL: %zu rules, %zu skipped\n",
	              psl_rule_count(psl), psl_skipped_count(psl));
}

static void
test_normalize(void **state)
{
	static const struct {
		const char *in;
		const char *out; /* NULL: refused */
	} cases[] = {
	    {"Example.COM", "example.com"},
	    {"zero_pct.com", "zero_pct.com"},
	    {"b\xc3\xbc"
	     "cher.de",
	     "xn--bcher-kva.de"},
	    {"XN--BCHER-KVA.de", "xn--bcher-kva.de"},
	    {"a", "a"},
	    {"a..b", NULL},
	    {".a", NULL},
	    {"a.", NULL},
	    {"", NULL},
	    {"a b", NULL},
	    {"a@b", NULL},
	    {"a\x01.b", NULL},
	    {"\xc3.com", NULL}, /* bad UTF-8 */
	};
	char out[PSL_NAME_MAX + 1], name[400];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc = psl_domain_normalize(cases[i].in, strlen(cases[i].in),
		                              out, sizeof(out));

		print_message("normalize %s\n", cases[i].in);
		if (cases[i].out == NULL) {
			assert_int_equal(rc, -1);
		} else {
			assert_int_equal(rc, (int)strlen(cases[i].out));
			assert_string_equal(out, cases[i].out);
		}
	}
	/* labels of 63 and 64, names of 253 and 254 */
	memset(name, 'a', 64);
	assert_int_equal(psl_domain_normalize(name, 63, out, sizeof(out)), 63);
	assert_int_equal(psl_domain_normalize(name, 64, out, sizeof(out)), -1);
	for (size_t i = 0; i < 127; i++) {
		name[2 * i] = 'a';
		name[2 * i + 1] = '.';
	}
	assert_int_equal(psl_domain_normalize(name, 253, out, sizeof(out)),
	                 253);
	name[253] = 'a';
	assert_int_equal(psl_domain_normalize(name, 254, out, sizeof(out)), -1);
	assert_int_equal(psl_domain_normalize("abc", 3, out, 3), -1);
	assert_int_equal(psl_domain_normalize("abc", 3, out, 4), 3);
}

/* --------------------------------------------------------- From domains */

static void
test_from_domains(void **state)
{
	static const struct {
		const char *header;
		size_t n;
		const char *d0, *d1;
		const char *problem; /* NULL: valid */
	} cases[] = {
	    {"From: a@Example.COM\r\n\r\n", 1, "example.com", NULL, NULL},
	    {"Subject: s\r\nFROM : A <a@x.example>\r\n\r\nFrom: "
	     "b@y.example\r\n",
	     1, "x.example", NULL, NULL},
	    {"From: Someone\r\n <a@fold.example>\r\n\r\n", 1, "fold.example",
	     NULL, NULL},
	    {"From: a@lf.example\n\n", 1, "lf.example", NULL, NULL},
	    {"From: \"Q, X\" <a@q.example> (comment)\r\n", 1, "q.example", NULL,
	     NULL},
	    {"From: a@b\xc3\xbc"
	     "cher.de\r\n\r\n",
	     1, "xn--bcher-kva.de", NULL, NULL},
	    {"From: a@x.example, b@X.example\r\n\r\n", 1, "x.example", NULL,
	     NULL},
	    {"From: a@x.example, b@y.example\r\n\r\n", 2, "x.example",
	     "y.example", NULL},
	    {"From: grp: a@g.example;\r\n\r\n", 1, "g.example", NULL, NULL},
	    {"Subject: s\r\n\r\n", 0, NULL, NULL, "no From field"},
	    {"", 0, NULL, NULL, "no From field"},
	    {"From: a@x.example\r\nFrom: b@y.example\r\n\r\n", 2, "x.example",
	     "y.example", "several From fields"},
	    {"From: a@x.example\r\nFrom: b@x.example\r\n\r\n", 1, "x.example",
	     NULL, "several From fields"},
	    {"From: undisclosed:;\r\n\r\n", 0, NULL, NULL,
	     "no usable address in From"},
	    {"From: foo\r\n\r\n", 0, NULL, NULL, "no usable address in From"},
	    {"From:\r\n\r\n", 0, NULL, NULL, "no usable address in From"},
	    {"From: a@[192.0.2.1]\r\n\r\n", 0, NULL, NULL,
	     "no usable address in From"},
	    {"From: a@x.example, garbage\r\n\r\n", 1, "x.example", NULL,
	     "an unusable address in From"},
	    {"From: a@a.example, b@b.example, c@c.example, d@d.example, "
	     "e@e.example\r\n\r\n",
	     0, NULL, NULL, "too many From domains"},
	};
	char domains[DMARC_FROM_DOMAINS_MAX][DMARC_DOMAIN_MAX + 1];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *problem;
		bool invalid;
		size_t n =
		    dmarc_from_domains(cases[i].header, strlen(cases[i].header),
		                       domains, &invalid, &problem);

		print_message("from %zu\n", i);
		assert_int_equal(n, cases[i].n);
		if (n > 0)
			assert_string_equal(domains[0], cases[i].d0);
		if (n > 1)
			assert_string_equal(domains[1], cases[i].d1);
		assert_int_equal(invalid, cases[i].problem != NULL);
		if (cases[i].problem != NULL)
			assert_string_equal(problem, cases[i].problem);
		else
			assert_null(problem);
	}

	/* a From past DMARC_HEADER_FIELDS_MAX fields is not seen: invalid */
	{
		struct buf b;
		const char *problem;
		bool invalid;

		buf_init(&b, 0);
		for (size_t i = 0; i < DMARC_HEADER_FIELDS_MAX; i++)
			assert_int_equal(buf_append_str(&b, "X: y\r\n"), 0);
		assert_int_equal(buf_append_str(&b, "From: a@x.example\r\n"),
		                 0);
		assert_int_equal(dmarc_from_domains((const char *)b.data, b.len,
		                                    domains, &invalid,
		                                    &problem),
		                 0);
		assert_true(invalid);
		assert_string_equal(problem, "too many header fields");
		buf_free(&b);
	}
}

/* ------------------------------------------------------------ alignment */

static void
test_alignment(void **state)
{
	static const struct {
		const char *a, *b;
		bool relaxed, strict;
	} cases[] = {
	    {"example.com", "example.com", true, true},
	    {"Example.COM", "example.com", true, true},
	    {"mail.example.com", "example.com", true, false},
	    {"a.example.com", "b.example.com", true, false},
	    {"example.com", "example.org", false, false},
	    {"example.com", "notexample.com", false, false},
	    {"a.example.co.uk", "example.co.uk", true, false},
	    {"example.co.uk", "other.co.uk", false, false},
	    {"co.uk", "example.co.uk", false, false},
	    {"a.mom.za.org", "mom.za.org", true, false},
	    {"mom.za.org", "dad.za.org", false, false}, /* PRIVATE section */
	    {"b\xc3\xbc"
	     "cher.de",
	     "mail.xn--bcher-kva.de", true, false},
	    {"", "example.com", false, false},
	    {"example.com.", "example.com", false, false},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		print_message("align %s %s\n", cases[i].a, cases[i].b);
		assert_int_equal(dmarc_aligned(psl, cases[i].a, cases[i].b,
		                               DMARC_ALIGN_RELAXED),
		                 cases[i].relaxed);
		assert_int_equal(dmarc_aligned(psl, cases[i].b, cases[i].a,
		                               DMARC_ALIGN_RELAXED),
		                 cases[i].relaxed);
		assert_int_equal(dmarc_aligned(psl, cases[i].a, cases[i].b,
		                               DMARC_ALIGN_STRICT),
		                 cases[i].strict);
	}
}

/* ----------------------------------------------------------- evaluation */

static void
eval_zone(struct zone *z)
{
	static const char *const two[] = {"v=DMARC1; p=reject",
	                                  "v=DMARC1; p=none"};
	static const char *const mixed[] = {"v=spf1 -all", "v=DMARC1; p=reject",
	                                    "v=DMARC1x; p=none"};

	zone_txt(z, "_dmarc.example.com",
	         "v=DMARC1; p=reject; sp=quarantine; pct=50; "
	         "rua=mailto:r@example.com");
	zone_txt(z, "_dmarc.own.example.com", "v=DMARC1; p=none");
	zone_txt(z, "_dmarc.strict.example",
	         "v=DMARC1; p=reject; adkim=s; "
	         "aspf=s");
	zone_txt(z, "_dmarc.none.example", "v=DMARC1; p=none");
	zone_add(z, "_dmarc.two.example", MA_DNS_TXT, MA_DNS_OK, two, 2);
	zone_add(z, "_dmarc.sub.two.example", MA_DNS_TXT, MA_DNS_OK, two, 2);
	zone_add(z, "_dmarc.mixed.example", MA_DNS_TXT, MA_DNS_OK, mixed, 3);
	zone_add(z, "_dmarc.temp.example", MA_DNS_TXT, MA_DNS_TEMPFAIL, NULL,
	         0);
	zone_add(z, "_dmarc.orgtemp.example", MA_DNS_TXT, MA_DNS_TEMPFAIL, NULL,
	         0);
	zone_txt(z, "_dmarc.broken.example", "v=DMARC1; p=bogus");
	zone_txt(z, "_dmarc.fallback.example",
	         "v=DMARC1; p=bogus; rua=mailto:r@fallback.example");
	zone_txt(z, "_dmarc.zero.example", "v=DMARC1; p=reject; pct=0");
}

struct eval_case {
	const char *header;
	const char *spf_domain; /* NULL: SPF not checked */
	enum spf_result spf;
	enum spf_identity spf_identity;
	const char *dkim; /* "d=pass d2=fail" */
	unsigned int sample;
	enum dmarc_result result;
	enum dmarc_policy disposition;
	bool sampled_out, dkim_aligned, spf_aligned;
	unsigned int queries;
	const char *ar;
};

#define MF SPF_IDENTITY_MAILFROM

static const struct eval_case eval_cases[] = {
    /* DKIM passes, exact and relaxed */
    {"From: a@example.com\r\n", NULL, 0, MF, "example.com=pass", 0, DMARC_PASS,
     NONE, false, true, false, 1,
     "dmarc=pass (p=reject sp=quarantine dis=none) header.from=example.com"},
    {"From: a@mail.example.com\r\n", NULL, 0, MF, "Example.com=pass", 0,
     DMARC_PASS, NONE, false, true, false, 2,
     "dmarc=pass (p=reject sp=quarantine dis=none) "
     "header.from=mail.example.com"},
    /* SPF passes for a subdomain: relaxed */
    {"From: a@example.com\r\n", "bounce.example.com", SPF_PASS, MF, NULL, 0,
     DMARC_PASS, NONE, false, false, true, 1, NULL},
    /* SPF's HELO identity does not count */
    {"From: a@example.com\r\n", "example.com", SPF_PASS, SPF_IDENTITY_HELO,
     NULL, 0, DMARC_FAIL, REJ, false, false, false, 1, NULL},
    /* unaligned or failing: p=reject, pct=50 */
    {"From: a@example.com\r\n", "example.com", SPF_SOFTFAIL, MF,
     "example.org=pass example.com=fail", 49, DMARC_FAIL, REJ, false, false,
     false, 1,
     "dmarc=fail (p=reject sp=quarantine dis=reject) "
     "header.from=example.com"},
    {"From: a@example.com\r\n", NULL, 0, MF, NULL, 50, DMARC_FAIL, QUAR, true,
     false, false, 1,
     "dmarc=fail (p=reject sp=quarantine dis=quarantine) "
     "header.from=example.com"},
    {"From: a@example.com\r\n", NULL, 0, MF, NULL, 149, DMARC_FAIL, REJ, false,
     false, false, 1, NULL},
    /* a subdomain without a record: sp= from the organizational domain */
    {"From: a@sub.example.com\r\n", NULL, 0, MF, NULL, 0, DMARC_FAIL, QUAR,
     false, false, false, 2, NULL},
    {"From: a@sub.example.com\r\n", NULL, 0, MF, NULL, 99, DMARC_FAIL, NONE,
     true, false, false, 2, NULL},
    /* a subdomain with its own record: its p= */
    {"From: a@own.example.com\r\n", NULL, 0, MF, "example.com=pass", 0,
     DMARC_PASS, NONE, false, true, false, 1,
     "dmarc=pass (p=none dis=none) header.from=own.example.com"},
    {"From: a@own.example.com\r\n", NULL, 0, MF, NULL, 0, DMARC_FAIL, NONE,
     false, false, false, 1, NULL},
    /* strict alignment */
    {"From: a@strict.example\r\n", "mail.strict.example", SPF_PASS, MF,
     "mail.strict.example=pass", 0, DMARC_FAIL, REJ, false, false, false, 1,
     NULL},
    {"From: a@strict.example\r\n", "strict.example", SPF_PASS, MF,
     "mail.strict.example=pass", 0, DMARC_PASS, NONE, false, false, true, 1,
     NULL},
    {"From: a@strict.example\r\n", NULL, 0, MF, "STRICT.example=pass", 0,
     DMARC_PASS, NONE, false, true, false, 1, NULL},
    /* several DMARC records: none, no walk to the organization */
    {"From: a@two.example\r\n", NULL, 0, MF, NULL, 0, DMARC_NONE, NONE, false,
     false, false, 1, "dmarc=none header.from=two.example"},
    {"From: a@x.sub.two.example\r\n", NULL, 0, MF, NULL, 0, DMARC_NONE, NONE,
     false, false, false, 2, NULL},
    /* other TXT records are not counted */
    {"From: a@mixed.example\r\n", NULL, 0, MF, NULL, 0, DMARC_FAIL, REJ, false,
     false, false, 1, NULL},
    /* DNS failures */
    {"From: a@temp.example\r\n", NULL, 0, MF, "temp.example=pass", 0,
     DMARC_TEMPERROR, NONE, false, true, false, 1,
     "dmarc=temperror header.from=temp.example"},
    {"From: a@sub.orgtemp.example\r\n", NULL, 0, MF, NULL, 0, DMARC_TEMPERROR,
     NONE, false, false, false, 2, NULL},
    /* an unusable record, and the rua= fallback */
    {"From: a@broken.example\r\n", NULL, 0, MF, NULL, 0, DMARC_PERMERROR, NONE,
     false, false, false, 1, "dmarc=permerror header.from=broken.example"},
    {"From: a@fallback.example\r\n", NULL, 0, MF, NULL, 0, DMARC_FAIL, NONE,
     false, false, false, 1,
     "dmarc=fail (p=none dis=none) header.from=fallback.example"},
    /* no record anywhere */
    {"From: a@nothing.example\r\n", NULL, 0, MF, "nothing.example=pass", 0,
     DMARC_NONE, NONE, false, true, false, 1,
     "dmarc=none header.from=nothing.example"},
    {"From: a@a.b.nothing.example\r\n", NULL, 0, MF, NULL, 0, DMARC_NONE, NONE,
     false, false, false, 2, NULL},
    /* pct=0: never sampled, reject becomes quarantine */
    {"From: a@zero.example\r\n", NULL, 0, MF, NULL, 0, DMARC_FAIL, QUAR, true,
     false, false, 1,
     "dmarc=fail (p=reject dis=quarantine) header.from=zero.example"},
    /* several From domains: the strictest failing policy */
    {"From: a@none.example, b@example.com\r\n", NULL, 0, MF,
     "none.example=pass", 0, DMARC_FAIL, REJ, false, false, false, 2,
     "dmarc=fail (p=reject sp=quarantine dis=reject) "
     "header.from=example.com"},
    {"From: a@nothing.example\r\nFrom: b@example.com\r\n", NULL, 0, MF,
     "nothing.example=pass", 0, DMARC_FAIL, REJ, false, false, false, 2, NULL},
    {"From: a@none.example, b@example.com\r\n", NULL, 0, MF,
     "none.example=pass example.com=pass", 0, DMARC_PASS, NONE, false, true,
     false, 2, NULL},
    /* no usable From: permerror without a query */
    {"Subject: x\r\n", NULL, 0, MF, NULL, 0, DMARC_PERMERROR, NONE, false,
     false, false, 0, "dmarc=permerror"},
    {"From: undisclosed-recipients:;\r\n", NULL, 0, MF, NULL, 0,
     DMARC_PERMERROR, NONE, false, false, false, 0, "dmarc=permerror"},
};

static void
fill_dkim(const char *spec, struct dkim_verify_result *res)
{
	char *copy, *tok, *save = NULL;

	memset(res, 0, sizeof(*res));
	if (spec == NULL)
		return;
	copy = xstrdup(spec);
	for (tok = strtok_r(copy, " ", &save); tok != NULL;
	     tok = strtok_r(NULL, " ", &save)) {
		struct dkim_sig_result *s = &res->sig[res->count++];
		char *eq = strchr(tok, '=');

		assert_non_null(eq);
		*eq = '\0';
		snprintf(s->domain, sizeof(s->domain), "%s", tok);
		snprintf(s->selector, sizeof(s->selector), "sel");
		s->result = strcmp(eq + 1, "pass") == 0 ? DKIM_PASS : DKIM_FAIL;
	}
	free(copy);
}

static void
test_evaluate(void **state)
{
	struct zone z = {0};
	struct ma_dns dns = {.lookup = zone_lookup, .arg = &z};

	(void)state;
	eval_zone(&z);
	for (size_t i = 0; i < sizeof(eval_cases) / sizeof(eval_cases[0]);
	     i++) {
		const struct eval_case *c = &eval_cases[i];
		struct spf_outcome spf = {0};
		struct dkim_verify_result dkim;
		struct dmarc_request req = {0};
		struct dmarc_outcome *o;
		const struct dmarc_report_row *row;
		struct buf ar;

		print_message("eval %zu: %s", i, c->header);
		fill_dkim(c->dkim, &dkim);
		spf.result = c->spf;
		spf.identity = c->spf_identity;
		spf.domain = (char *)c->spf_domain;
		snprintf(spf.client_ip, sizeof(spf.client_ip), "192.0.2.1");
		req.msg = c->header;
		req.len = strlen(c->header);
		req.spf = c->spf_domain != NULL ? &spf : NULL;
		req.dkim = &dkim;
		req.psl = psl;
		req.pct_sample = c->sample;
		z.queries = 0;
		o = dmarc_evaluate(&dns, &req);
		assert_non_null(o);
		row = &o->domains[o->decisive].report;
		assert_int_equal(o->result, c->result);
		assert_int_equal(o->disposition, c->disposition);
		assert_int_equal(z.queries, c->queries);
		if (o->ndomains > 0) {
			assert_int_equal(row->sampled_out, c->sampled_out);
			assert_int_equal(row->dkim_aligned, c->dkim_aligned);
			assert_int_equal(row->spf_aligned, c->spf_aligned);
			assert_int_equal(row->disposition, c->disposition);
			assert_string_equal(row->source_ip,
			                    c->spf_domain != NULL ? "192.0.2.1"
			                                          : "");
		}
		buf_init(&ar, 0);
		assert_int_equal(dmarc_auth_results(o, &ar), 0);
		assert_non_null(buf_cstr(&ar));
		print_message("  %s\n", (const char *)ar.data);
		if (c->ar != NULL)
			assert_string_equal((const char *)ar.data, c->ar);
		buf_free(&ar);
		dmarc_outcome_free(&o);
		assert_null(o);
	}
	zone_clear(&z);
}

/* The report row: what an aggregate report takes from one message. */
static void
test_report_row(void **state)
{
	static const char msg[] = "Received: x\r\n"
	                          "From: Someone <someone@Sub.Example.COM>\r\n"
	                          "Subject: y\r\n\r\nbody\r\n";
	struct zone z = {0};
	struct ma_dns dns = {.lookup = zone_lookup, .arg = &z};
	struct spf_outcome spf = {0};
	struct dkim_verify_result dkim;
	struct dmarc_request req = {0};
	struct dmarc_outcome *o;
	const struct dmarc_domain_result *d;
	const struct dmarc_report_row *row;
	struct buf small;

	(void)state;
	eval_zone(&z);
	fill_dkim("other.example=pass EXAMPLE.com=fail", &dkim);
	spf.result = SPF_FAIL;
	spf.identity = SPF_IDENTITY_MAILFROM;
	spf.domain = (char *)"bounces.example.net";
	snprintf(spf.client_ip, sizeof(spf.client_ip), "192.0.2.9");
	req.msg = msg;
	req.len = sizeof(msg) - 1;
	req.spf = &spf;
	req.dkim = &dkim;
	req.psl = psl;
	req.client_ip = "2001:db8::1";
	req.pct_sample = 7;
	o = dmarc_evaluate(&dns, &req);
	assert_int_equal(o->ndomains, 1);
	assert_false(o->from_invalid);
	assert_string_equal(o->problem, "");
	d = &o->domains[0];
	row = &d->report;
	assert_int_equal(d->result, DMARC_FAIL);
	assert_string_equal(d->org_domain, "example.com");
	assert_int_equal(d->policy, QUAR);
	assert_true(d->subdomain_policy);
	assert_string_equal(d->problem, "");
	assert_string_equal(row->source_ip, "2001:db8::1");
	assert_string_equal(row->header_from, "sub.example.com");
	assert_string_equal(row->envelope_from, "bounces.example.net");
	assert_int_equal(row->disposition, QUAR);
	assert_false(row->dkim_aligned);
	assert_false(row->spf_aligned);
	assert_false(row->sampled_out);
	assert_int_equal(row->ndkim, 2);
	assert_string_equal(row->dkim[0].domain, "other.example");
	assert_string_equal(row->dkim[0].selector, "sel");
	assert_int_equal(row->dkim[0].result, DKIM_PASS);
	assert_string_equal(row->dkim[1].domain, "example.com");
	assert_int_equal(row->dkim[1].result, DKIM_FAIL);
	assert_true(row->spf_checked);
	assert_string_equal(row->spf_domain, "bounces.example.net");
	assert_int_equal(row->spf_result, SPF_FAIL);
	assert_true(row->record_found);
	assert_string_equal(row->policy_domain, "example.com");
	assert_int_equal(row->record.p, REJ);
	assert_int_equal(row->record.sp, QUAR);
	assert_int_equal(row->record.pct, 50);
	assert_int_equal(row->record.nrua, 1);
	assert_string_equal(row->record.rua[0].uri, "mailto:r@example.com");

	/* a full buffer is an error, not a cut field */
	buf_init(&small, 20);
	assert_int_equal(dmarc_auth_results(o, &small), -1);
	buf_free(&small);
	dmarc_outcome_free(&o);
	dmarc_outcome_free(&o);

	assert_string_equal(dmarc_result_name(DMARC_TEMPERROR), "temperror");
	assert_string_equal(dmarc_policy_name(DMARC_POLICY_QUARANTINE),
	                    "quarantine");
	zone_clear(&z);
}

/* ------------------------------------------------------- rspamd corpus */

struct rspamd_case {
	char *name, *message, *ip, *mail_from, *symbol;
};

static bool
rspamd_expect(const char *symbol, const struct dmarc_outcome *o)
{
	if (strcmp(symbol, "DMARC_POLICY_ALLOW") == 0)
		return o->result == DMARC_PASS;
	if (strcmp(symbol, "DMARC_POLICY_REJECT") == 0)
		return o->result == DMARC_FAIL && o->disposition == REJ;
	if (strcmp(symbol, "DMARC_POLICY_QUARANTINE") == 0)
		return o->result == DMARC_FAIL && o->disposition == QUAR;
	if (strcmp(symbol, "DMARC_POLICY_SOFTFAIL") == 0)
		return o->result == DMARC_FAIL && o->disposition == NONE;
	if (strcmp(symbol, "DMARC_NA") == 0)
		return o->result == DMARC_NONE;
	if (strcmp(symbol, "DMARC_DNSFAIL") == 0)
		return o->result == DMARC_TEMPERROR;
	fail_msg("unknown rspamd symbol %s", symbol);
	return false;
}

/* One case: DKIM over the message, SPF when rspamd was given an IP and a
 * MAIL FROM, then DMARC with sample 0 (pct=0 still steps down). */
static bool
rspamd_run(const struct ma_dns *dns, const struct rspamd_case *c)
{
	char *rel = xasprintf("rspamd/messages/%s", c->message);
	size_t rawlen, len;
	char *raw = read_file(rel, &rawlen);
	char *msg = crlf(raw, rawlen, &len);
	struct dkim_verify_result dkim;
	struct spf_outcome *spf = NULL;
	struct dmarc_request req = {0};
	struct dmarc_outcome *o;
	struct buf ar;
	bool ok;

	free(rel);
	free(raw);
	assert_int_equal(dkim_verify(dns, (const uint8_t *)msg, len, RSPAMD_NOW,
	                             NULL, &dkim),
	                 0);
	if (*c->ip != '\0' && *c->mail_from != '\0') {
		struct spf_request sreq = {0};

		assert_int_equal(spf_ip_parse(c->ip, &sreq.ip), 0);
		sreq.identity = SPF_IDENTITY_MAILFROM;
		sreq.mail_from = c->mail_from;
		sreq.helo = "mail.example";
		sreq.now = RSPAMD_NOW;
		spf = spf_check_host(dns, &sreq);
	}
	req.msg = msg;
	req.len = len;
	req.spf = spf;
	req.dkim = &dkim;
	req.psl = psl;
	req.client_ip = *c->ip != '\0' ? c->ip : NULL;
	req.pct_sample = 0;
	o = dmarc_evaluate(dns, &req);
	ok = rspamd_expect(c->symbol, o);
	buf_init(&ar, 0);
	assert_int_equal(dmarc_auth_results(o, &ar), 0);
	assert_non_null(buf_cstr(&ar));
	print_message("%-45s %-24s %s: %s%s%s\n", c->name, c->symbol,
	              ok ? "ok" : "MISMATCH", (const char *)ar.data,
	              o->domains[o->decisive].problem[0] != '\0' ? " -- " : "",
	              o->domains[o->decisive].problem);
	for (size_t i = 0; i < dkim.count; i++)
		print_message("    dkim d=%s %s (%s)\n", dkim.sig[i].domain,
		              dkim_result_str(dkim.sig[i].result),
		              dkim_reason_str(dkim.sig[i].reason));
	if (!ok && spf != NULL)
		print_message("    spf %s %s\n", spf->domain,
		              spf_result_name(spf->result));
	buf_free(&ar);
	dmarc_outcome_free(&o);
	spf_outcome_free(&spf);
	free(msg);
	return ok;
}

static void
test_rspamd_corpus(void **state)
{
	struct zone z = {0};
	struct ma_dns dns = {.lookup = zone_lookup, .arg = &z};
	size_t len, cases = 0, matched = 0;
	char *text = read_file("rspamd/cases.tsv", &len);
	char *line, *save = NULL;

	(void)state;
	zone_load_json(&z, "rspamd/fake-dns.json");
	for (line = strtok_r(text, "\n", &save); line != NULL;
	     line = strtok_r(NULL, "\n", &save)) {
		struct rspamd_case c;
		char *f[5], *p = line;

		if (line[0] == '#')
			continue;
		for (size_t i = 0; i < 5; i++) {
			f[i] = p;
			p = strchr(p, '\t');
			if (i < 4) {
				assert_non_null(p);
				*p++ = '\0';
			}
		}
		f[4][strcspn(f[4], "\r\t")] = '\0';
		c = (struct rspamd_case){f[0], f[1], f[2], f[3], f[4]};
		cases++;
		matched += rspamd_run(&dns, &c);
	}
	free(text);
	zone_clear(&z);
	print_message("rspamd DMARC corpus: %zu of %zu expected outcomes\n",
	              matched, cases);
	assert_int_equal(cases, 17);
	assert_int_equal(matched, cases);
}

/* ----------------------------------------------------------------- main */

static int
setup(void **state)
{
	char *error = NULL;

	(void)state;
	psl = psl_load(PSL_DEFAULT_PATH, &error);
	if (psl == NULL) {
		print_error("%s\n", error);
		free(error);
		return -1;
	}
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	psl_free(&psl);
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_record_parse),
	    cmocka_unit_test(test_record_uris),
	    cmocka_unit_test(test_psl_vectors),
	    cmocka_unit_test(test_psl_rules),
	    cmocka_unit_test(test_psl_load),
	    cmocka_unit_test(test_normalize),
	    cmocka_unit_test(test_from_domains),
	    cmocka_unit_test(test_alignment),
	    cmocka_unit_test(test_evaluate),
	    cmocka_unit_test(test_report_row),
	    cmocka_unit_test(test_rspamd_corpus),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
