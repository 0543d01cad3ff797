/* libFuzzer target for SPF (src/mailauth/spf*.c): the input's first line is
 * a record, its second a macro string, the rest the answers of a fake DNS.
 * SECURITY: records, macros and answers are attacker-controlled; parsing and
 * evaluation must stay in bounds, within the limits, and produce header
 * values that cannot end a header field.
 *
 * Answer lines: a status digit (0 OK, 1 NXDOMAIN, 2 NODATA, 3 TEMPFAIL,
 * 4 lookup failure) then records separated by '|'. The first TXT query for
 * fuzz.example is answered with the record; every other query takes the
 * next line, NXDOMAIN once they run out. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/xmalloc.h"
#include "mailauth/dnsif.h"
#include "mailauth/spf.h"
#include "mailauth/spf_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct script {
	const char *record; /* NUL-terminated copy */
	const uint8_t *p, *end;
	bool served;
	unsigned int calls;
};

static const uint8_t *
line_end(const uint8_t *p, const uint8_t *end)
{
	const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));

	return nl != NULL ? nl : end;
}

static void
add_rr(struct ma_dns_answer *ans, const uint8_t *p, size_t n)
{
	char *s;

	if (ans->count >= MA_DNS_RR_MAX)
		return;
	s = xmalloc(n + 1);
	for (size_t i = 0; i < n; i++)
		s[i] = p[i] == '\0' ? '\x7f' : (char)p[i];
	s[n] = '\0';
	ans->rr = xreallocarray(ans->rr, ans->count + 1, sizeof(*ans->rr));
	ans->rr[ans->count++] = s;
}

static int
fake_lookup(void *arg, const char *name, enum ma_dns_type type,
            struct ma_dns_answer *ans)
{
	struct script *sc = arg;
	const uint8_t *e, *q;

	sc->calls++;
	if (!sc->served && type == MA_DNS_TXT &&
	    strcmp(name, "fuzz.example") == 0) {
		sc->served = true;
		add_rr(ans, (const uint8_t *)sc->record, strlen(sc->record));
		ans->status = MA_DNS_OK;
		return 0;
	}
	if (sc->p >= sc->end) {
		ans->status = MA_DNS_NXDOMAIN;
		return 0;
	}
	e = line_end(sc->p, sc->end);
	q = sc->p;
	sc->p = e < sc->end ? e + 1 : e;
	switch (q < e ? *q++ : '1') {
	case '0':
		ans->status = MA_DNS_OK;
		break;
	case '2':
		ans->status = MA_DNS_NODATA;
		return 0;
	case '3':
		ans->status = MA_DNS_TEMPFAIL;
		return 0;
	case '4':
		return -1;
	default:
		ans->status = MA_DNS_NXDOMAIN;
		return 0;
	}
	while (q <= e) {
		const uint8_t *bar = memchr(q, '|', (size_t)(e - q));
		const uint8_t *stop = bar != NULL ? bar : e;

		add_rr(ans, q, (size_t)(stop - q));
		q = stop + 1;
	}
	return 0;
}

static void
check_header_value(const struct buf *b)
{
	for (size_t i = 0; i < b->len; i++)
		if (b->data[i] < 0x20 || b->data[i] == 0x7f)
			abort(); /* a value could end the header field */
}

static const char *
fixed_ptr(void *arg, const char *domain)
{
	(void)arg;
	return domain[0] != '\0' ? "mx.fuzz.example" : "unknown";
}

static void
fuzz_record(const char *rec, size_t len)
{
	struct spf_record_info info;
	struct spf_term t;
	size_t pos = 0;
	int rc;

	if (spf_record_check(rec, len, &info, NULL) < 0) {
		if (info.bad_pos > len || info.bad_len > len - info.bad_pos)
			abort();
		return;
	}
	while ((rc = spf_term_next(rec, len, &pos, &t, NULL)) == 1) {
		if (t.text < rec || t.text + t.len > rec + len)
			abort();
		if (t.arg != NULL &&
		    (t.arg < t.text || t.arg + t.arg_len > t.text + t.len))
			abort();
		if (t.cidr4 > 32 || t.cidr6 > 128)
			abort();
	}
	if (rc < 0)
		abort(); /* spf_record_check accepted it */
}

static void
fuzz_macro(const char *m, size_t len, bool v6)
{
	static const enum spf_macro_mode modes[] = {
	    SPF_MACRO_DOMAIN, SPF_MACRO_MODIFIER, SPF_MACRO_EXPLAIN};
	struct spf_macro_env env;
	struct spf_ip ip;
	struct buf b;
	char name[SPF_DOMAIN_MAX + 1];

	spf_ip_parse(v6 ? "2001:db8::cb01" : "192.0.2.3", &ip);
	memset(&env, 0, sizeof(env));
	env.sender = "strong-bad@email.example.com";
	env.local = "strong-bad";
	env.sender_domain = env.domain = "email.example.com";
	env.helo = "mx.example.org";
	env.ip = &ip;
	env.now = 1234567890;
	env.ptr_name = fixed_ptr;
	for (size_t k = 0; k < 3; k++) {
		int ok = spf_macro_check(m, len, modes[k], NULL);

		buf_init(&b, SPF_EXPAND_MAX);
		if (spf_macro_expand(&env, m, len, modes[k], &b, NULL) == 0 &&
		    ok < 0)
			abort(); /* expanded what the check refuses */
		if (b.len > SPF_EXPAND_MAX)
			abort();
		buf_free(&b);
	}
	if (spf_domain_spec_valid(m, len) &&
	    spf_macro_check(m, len, SPF_MACRO_DOMAIN, NULL) < 0)
		abort();
	if (spf_expand_domain(&env, m, len, name, NULL) == 0 &&
	    (!spf_name_valid(name, strlen(name)) ||
	     strlen(name) > SPF_DOMAIN_MAX))
		abort();
}

static void
fuzz_check(struct script *sc, bool v6, bool helo_identity)
{
	struct ma_dns dns = {fake_lookup, sc};
	struct spf_request req;
	struct spf_outcome *o;
	struct buf b;
	bool matched;

	memset(&req, 0, sizeof(req));
	spf_ip_parse(v6 ? "2001:db8::cb01" : "192.0.2.3", &req.ip);
	req.identity =
	    helo_identity ? SPF_IDENTITY_HELO : SPF_IDENTITY_MAILFROM;
	req.helo = helo_identity ? "fuzz.example" : "helo.fuzz.example";
	req.mail_from = "strong-bad@fuzz.example";
	req.receiver = "mx.receiver.example";
	req.now = 1234567890;
	o = spf_check_host(&dns, &req);
	matched = o->result == SPF_PASS || o->result == SPF_FAIL ||
	          o->result == SPF_SOFTFAIL || o->result == SPF_NEUTRAL;
	if ((o->explanation != NULL) != (o->result == SPF_FAIL))
		abort();
	if ((o->mechanism != NULL) != matched)
		abort();
	if (o->explanation != NULL) {
		size_t n = strlen(o->explanation);

		if (n == 0 || n > SPF_EXPLANATION_MAX)
			abort();
		for (size_t i = 0; i < n; i++)
			if (o->explanation[i] < 0x20 ||
			    o->explanation[i] > 0x7e)
				abort();
	}
	if (o->queries > spf_default_limits.queries + 1 ||
	    sc->calls != o->queries ||
	    o->dns_terms > spf_default_limits.dns_terms + 1 ||
	    o->void_lookups > spf_default_limits.void_lookups + 1)
		abort(); /* work past the limits */
	buf_init(&b, 8192);
	if (spf_received_spf(o, &b) < 0)
		abort();
	check_header_value(&b);
	buf_reset(&b);
	if (spf_auth_results(o, &b) < 0)
		abort();
	check_header_value(&b);
	buf_free(&b);
	spf_outcome_free(&o);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *end = data + size, *e1, *p2, *e2, *rest;
	struct script sc;
	char *record;
	bool v6 = size > 0 && (data[size - 1] & 1);

	if (size > 200000)
		return 0;
	e1 = line_end(data, end);
	p2 = e1 < end ? e1 + 1 : e1;
	e2 = line_end(p2, end);
	rest = e2 < end ? e2 + 1 : e2;

	record = xstrndup((const char *)data, (size_t)(e1 - data));
	fuzz_record((const char *)data, (size_t)(e1 - data));
	fuzz_macro((const char *)p2, (size_t)(e2 - p2), v6);

	memset(&sc, 0, sizeof(sc));
	sc.record = record;
	sc.p = rest;
	sc.end = end;
	fuzz_check(&sc, v6, false);
	if (size > 0 && (data[0] & 1)) {
		memset(&sc, 0, sizeof(sc));
		sc.record = record;
		sc.p = rest;
		sc.end = end;
		fuzz_check(&sc, !v6, true);
	}
	free(record);
	return 0;
}
