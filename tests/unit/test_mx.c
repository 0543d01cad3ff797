/* Tests for MX resolution (src/queue/mx.c) against an in-memory DNS
 * table: ordering and the equal-preference shuffle, implicit and null MX,
 * DNS failures per lookup, address-named MX, our own names (RFC 5321
 * 5.1), domain literals, address families, the caps and the DNSSEC
 * flag. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/xmalloc.h"
#include "mailauth/dnsif.h"
#include "queue/mx.h"

/* ---------------------------------------------------------------- DNS table
 */

#define ZRR_MAX 16

struct zrec {
	const char *name;
	enum ma_dns_type type;
	enum ma_dns_status status;
	bool secure;
	const char *rr[ZRR_MAX]; /* NULL-terminated */
};

struct zone {
	const struct zrec *rec;
	size_t n;
	bool fail_all; /* lookup returns -1 */
	unsigned int calls;
	char log[4096]; /* "TYPE name\n" per lookup */
};

static const char *
type_name(enum ma_dns_type t)
{
	switch (t) {
	case MA_DNS_A:
		return "A";
	case MA_DNS_AAAA:
		return "AAAA";
	case MA_DNS_MX:
		return "MX";
	case MA_DNS_TXT:
		return "TXT";
	case MA_DNS_PTR:
		return "PTR";
	case MA_DNS_TLSA:
		return "TLSA";
	}
	return "?";
}

/* The entry for name and type answers; a name known only with other
 * types is NODATA, an unknown one NXDOMAIN. */
static int
zone_lookup(void *arg, const char *name, enum ma_dns_type type,
            struct ma_dns_answer *ans)
{
	struct zone *z = arg;
	bool known = false;
	size_t l = strlen(z->log);

	z->calls++;
	snprintf(z->log + l, sizeof(z->log) - l, "%s %s\n", type_name(type),
	         name);
	if (z->fail_all)
		return -1;
	for (size_t i = 0; i < z->n; i++) {
		const struct zrec *r = &z->rec[i];
		size_t n = 0;

		if (strcasecmp(r->name, name) != 0)
			continue;
		known = true;
		if (r->type != type)
			continue;
		ans->status = r->status;
		ans->secure = r->secure;
		while (n < ZRR_MAX && r->rr[n] != NULL)
			n++;
		if (r->status == MA_DNS_OK && n > 0) {
			ans->rr = xcalloc(n, sizeof(*ans->rr));
			for (size_t j = 0; j < n; j++)
				ans->rr[j] = xstrdup(r->rr[j]);
			ans->count = n;
		}
		return 0;
	}
	ans->status = known ? MA_DNS_NODATA : MA_DNS_NXDOMAIN;
	return 0;
}

#define ZONE(recs)                                                             \
	struct zone z = {.rec = (recs),                                        \
	                 .n = sizeof(recs) / sizeof((recs)[0])};               \
	struct ma_dns dns = {.lookup = zone_lookup, .arg = &z}

/* A fixed pick: returns vals[i] on call i (then the last one), and
 * records the n it was asked for. */
struct fixed_pick {
	size_t vals[8], nvals;
	size_t asked[16], calls;
};

static size_t
fixed_pick(void *arg, size_t n)
{
	struct fixed_pick *f = arg;
	size_t i = f->calls < f->nvals ? f->calls : f->nvals - 1;

	if (f->calls < 16)
		f->asked[f->calls] = n;
	f->calls++;
	return f->vals[i];
}

static struct mx_options
both(void)
{
	return (struct mx_options){.ipv4 = true, .ipv6 = true};
}

static void
assert_host(const struct mx_list *l, size_t i, const char *name,
            unsigned int pref, size_t naddrs)
{
	assert_true(i < l->nhosts);
	assert_string_equal(l->hosts[i].name, name);
	assert_int_equal(l->hosts[i].pref, pref);
	assert_int_equal(l->hosts[i].naddrs, naddrs);
}

static void
assert_addr(const struct mx_list *l, size_t h, size_t a, const char *ip,
            bool v6)
{
	assert_true(h < l->nhosts && a < l->hosts[h].naddrs);
	assert_string_equal(l->hosts[h].addrs[a].ip, ip);
	assert_int_equal(l->hosts[h].addrs[a].v6, v6);
}

static void
assert_fail(const struct mx_list *l, enum mx_status st, const char *why)
{
	assert_int_equal(l->status, st);
	assert_int_equal(l->nhosts, 0);
	assert_null(l->hosts);
	assert_string_equal(l->why, why);
}

/* ---------------------------------------------------------------- cases */

static const struct zrec basic[] = {
    {"example.com",
     MA_DNS_MX,
     MA_DNS_OK,
     false,
     {"20 mx2.example.com", "10 mx1.example.com", "30 mx3.example.com."}},
    {"mx1.example.com", MA_DNS_A, MA_DNS_OK, false, {"192.0.2.1"}},
    {"mx1.example.com", MA_DNS_AAAA, MA_DNS_OK, false, {"2001:db8::1"}},
    {"mx2.example.com",
     MA_DNS_A,
     MA_DNS_OK,
     false,
     {"192.0.2.2", "192.0.2.22"}},
    {"mx3.example.com", MA_DNS_AAAA, MA_DNS_OK, false, {"2001:db8::3"}},
};

static void
multiple_mx_in_order(void **state)
{
	ZONE(basic);
	struct fixed_pick fp = {.vals = {0}, .nvals = 1};
	struct mx_options opt = both();
	struct mx_list l;

	(void)state;
	opt.pick = fixed_pick;
	opt.pick_arg = &fp;
	mx_resolve(&dns, "example.com", &opt, &l);
	assert_int_equal(l.status, MX_OK);
	assert_false(l.implicit);
	assert_string_equal(l.why, "");
	assert_int_equal(l.nhosts, 3);
	assert_host(&l, 0, "mx1.example.com", 10, 2);
	assert_addr(&l, 0, 0, "2001:db8::1", true); /* AAAA first */
	assert_addr(&l, 0, 1, "192.0.2.1", false);
	assert_host(&l, 1, "mx2.example.com", 20, 2);
	assert_addr(&l, 1, 0, "192.0.2.2", false);
	assert_addr(&l, 1, 1, "192.0.2.22", false);
	assert_host(&l, 2, "mx3.example.com", 30, 1); /* final dot gone */
	assert_addr(&l, 2, 0, "2001:db8::3", true);
	assert_false(l.hosts[0].secure);
	assert_int_equal(fp.calls, 0); /* no ties, no shuffle */
	assert_string_equal(z.log, "MX example.com\n"
	                           "AAAA mx1.example.com\n"
	                           "A mx1.example.com\n"
	                           "AAAA mx2.example.com\n"
	                           "A mx2.example.com\n"
	                           "AAAA mx3.example.com\n"
	                           "A mx3.example.com\n");
	mx_list_clear(&l);
	assert_int_equal(l.nhosts, 0);
	assert_null(l.hosts);

	/* no options: both families, random() for ties */
	mx_resolve(&dns, "example.com.", NULL, &l);
	assert_int_equal(l.status, MX_OK);
	assert_int_equal(l.nhosts, 3);
	assert_host(&l, 0, "mx1.example.com", 10, 2);
	mx_list_clear(&l);
}

static const struct zrec ties[] = {
    {"tie.example",
     MA_DNS_MX,
     MA_DNS_OK,
     false,
     {"10 a.tie.example", "20 d.tie.example", "10 b.tie.example",
      "10 c.tie.example"}},
    {"a.tie.example", MA_DNS_A, MA_DNS_OK, false, {"192.0.2.1"}},
    {"b.tie.example", MA_DNS_A, MA_DNS_OK, false, {"192.0.2.2"}},
    {"c.tie.example", MA_DNS_A, MA_DNS_OK, false, {"192.0.2.3"}},
    {"d.tie.example", MA_DNS_A, MA_DNS_OK, false, {"192.0.2.4"}},
};

static void
equal_preference_shuffle(void **state)
{
	ZONE(ties);
	struct fixed_pick fp = {.vals = {0, 0}, .nvals = 2};
	struct mx_options opt = both();
	struct mx_list l;

	(void)state;
	opt.pick = fixed_pick;
	opt.pick_arg = &fp;
	/* a b c: swap(2, 0) → c b a, swap(1, 0) → b c a */
	mx_resolve(&dns, "tie.example", &opt, &l);
	assert_int_equal(l.status, MX_OK);
	assert_int_equal(l.nhosts, 4);
	assert_string_equal(l.hosts[0].name, "b.tie.example");
	assert_string_equal(l.hosts[1].name, "c.tie.example");
	assert_string_equal(l.hosts[2].name, "a.tie.example");
	assert_host(&l, 3, "d.tie.example", 20, 1);
	assert_int_equal(fp.calls, 2);
	assert_int_equal(fp.asked[0], 3);
	assert_int_equal(fp.asked[1], 2);
	mx_list_clear(&l);

	/* always the last: order unchanged */
	fp = (struct fixed_pick){.vals = {2, 1}, .nvals = 2};
	mx_resolve(&dns, "tie.example", &opt, &l);
	assert_string_equal(l.hosts[0].name, "a.tie.example");
	assert_string_equal(l.hosts[1].name, "b.tie.example");
	assert_string_equal(l.hosts[2].name, "c.tie.example");
	mx_list_clear(&l);

	/* out of range picks are folded in, never read past */
	fp = (struct fixed_pick){.vals = {1000}, .nvals = 1};
	mx_resolve(&dns, "tie.example", &opt, &l);
	assert_int_equal(l.nhosts, 4);
	mx_list_clear(&l);
}

static const struct zrec implicit[] = {
    {"plain.example", MA_DNS_A, MA_DNS_OK, true, {"192.0.2.7"}},
    {"plain.example", MA_DNS_AAAA, MA_DNS_OK, true, {"2001:db8::7"}},
    {"v4.example", MA_DNS_A, MA_DNS_OK, false, {"192.0.2.8"}},
    {"txt.example", MA_DNS_TXT, MA_DNS_OK, false, {"v=spf1 -all"}},
    {"flaky.example", MA_DNS_A, MA_DNS_TEMPFAIL, false, {NULL}},
    {"flaky.example", MA_DNS_TXT, MA_DNS_OK, false, {"x"}},
};

static void
implicit_mx(void **state)
{
	ZONE(implicit);
	struct mx_options opt = both();
	struct mx_list l;

	(void)state;
	mx_resolve(&dns, "plain.example", &opt, &l);
	assert_int_equal(l.status, MX_OK);
	assert_true(l.implicit);
	assert_int_equal(l.nhosts, 1);
	assert_host(&l, 0, "plain.example", 0, 2);
	assert_addr(&l, 0, 0, "2001:db8::7", true);
	assert_addr(&l, 0, 1, "192.0.2.7", false);
	assert_true(l.hosts[0].secure); /* from the address answers */
	mx_list_clear(&l);

	mx_resolve(&dns, "v4.example", &opt, &l);
	assert_int_equal(l.status, MX_OK);
	assert_true(l.implicit);
	assert_host(&l, 0, "v4.example", 0, 1);
	assert_false(l.hosts[0].secure);
	mx_list_clear(&l);

	/* exists, but neither MX nor address */
	mx_resolve(&dns, "txt.example", &opt, &l);
	assert_fail(&l, MX_NODOMAIN,
	            "domain txt.example has no MX and no address");
	mx_list_clear(&l);

	/* the address lookup fails for now */
	mx_resolve(&dns, "flaky.example", &opt, &l);
	assert_fail(&l, MX_TEMPFAIL,
	            "temporary DNS failure looking up the "
	            "address of flaky.example");
	mx_list_clear(&l);
}

static const struct zrec nullmx[] = {
    {"null1.example", MA_DNS_MX, MA_DNS_OK, false, {"0 ."}},
    {"null2.example", MA_DNS_MX, MA_DNS_OK, false, {"0 "}},
    {"null3.example", MA_DNS_MX, MA_DNS_OK, false, {"0"}},
    {"mixed.example",
     MA_DNS_MX,
     MA_DNS_OK,
     false,
     {"0 .", "10 mx.mixed.example"}},
    {"mx.mixed.example", MA_DNS_A, MA_DNS_OK, false, {"192.0.2.9"}},
    {"root10.example", MA_DNS_MX, MA_DNS_OK, false, {"10 ."}},
};

static void
null_mx(void **state)
{
	ZONE(nullmx);
	struct mx_options opt = both();
	struct mx_list l;
	char why[128];

	(void)state;
	for (int i = 1; i <= 3; i++) {
		char d[32];

		snprintf(d, sizeof(d), "null%d.example", i);
		snprintf(why, sizeof(why),
		         "domain %s accepts no mail (null MX)", d);
		z.calls = 0;
		mx_resolve(&dns, d, &opt, &l);
		assert_fail(&l, MX_NULL, why);
		assert_int_equal(z.calls, 1); /* no address lookups */
		mx_list_clear(&l);
	}

	/* among other MX, the null one is ignored */
	mx_resolve(&dns, "mixed.example", &opt, &l);
	assert_int_equal(l.status, MX_OK);
	assert_int_equal(l.nhosts, 1);
	assert_host(&l, 0, "mx.mixed.example", 10, 1);
	mx_list_clear(&l);

	/* the root at another preference is no null MX, and no host */
	mx_resolve(&dns, "root10.example", &opt, &l);
	assert_fail(&l, MX_TEMPFAIL, "no usable MX host for root10.example");
	mx_list_clear(&l);
}

static const struct zrec failing[] = {
    {"temp.example", MA_DNS_MX, MA_DNS_TEMPFAIL, false, {NULL}},
};

static void
nxdomain_and_tempfail(void **state)
{
	ZONE(failing);
	struct mx_options opt = both();
	struct mx_list l;

	(void)state;
	mx_resolve(&dns, "nope.example", &opt, &l);
	assert_fail(&l, MX_NODOMAIN, "domain nope.example does not exist");
	mx_list_clear(&l);

	mx_resolve(&dns, "temp.example", &opt, &l);
	assert_fail(&l, MX_TEMPFAIL,
	            "temporary DNS failure looking up the MX of temp.example");
	mx_list_clear(&l);

	/* a lookup that gives no answer at all */
	z.fail_all = true;
	mx_resolve(&dns, "nope.example", &opt, &l);
	assert_int_equal(l.status, MX_TEMPFAIL);
	mx_list_clear(&l);
}

static const struct zrec hostfail[] = {
    {"hf.example",
     MA_DNS_MX,
     MA_DNS_OK,
     false,
     {"10 down.hf.example", "20 up.hf.example"}},
    {"down.hf.example", MA_DNS_A, MA_DNS_TEMPFAIL, false, {NULL}},
    {"down.hf.example", MA_DNS_AAAA, MA_DNS_TEMPFAIL, false, {NULL}},
    {"up.hf.example", MA_DNS_A, MA_DNS_OK, false, {"192.0.2.20"}},
    {"alldown.example",
     MA_DNS_MX,
     MA_DNS_OK,
     false,
     {"10 down.hf.example", "20 gone.hf.example"}},
    {"noaddr.example",
     MA_DNS_MX,
     MA_DNS_OK,
     false,
     {"10 gone.hf.example", "20 txt.hf.example"}},
    {"txt.hf.example", MA_DNS_TXT, MA_DNS_OK, false, {"x"}},
    {"half.example", MA_DNS_MX, MA_DNS_OK, false, {"10 half.hf.example"}},
    {"half.hf.example", MA_DNS_AAAA, MA_DNS_TEMPFAIL, false, {NULL}},
    {"half.hf.example", MA_DNS_A, MA_DNS_OK, false, {"192.0.2.21"}},
};

static void
host_address_tempfail(void **state)
{
	ZONE(hostfail);
	struct mx_options opt = both();
	struct mx_list l;

	(void)state;
	/* the first host fails for now: the second is still used */
	mx_resolve(&dns, "hf.example", &opt, &l);
	assert_int_equal(l.status, MX_OK);
	assert_int_equal(l.nhosts, 1);
	assert_host(&l, 0, "up.hf.example", 20, 1);
	mx_list_clear(&l);

	/* one family failing, the other answering: its addresses */
	mx_resolve(&dns, "half.example", &opt, &l);
	assert_int_equal(l.status, MX_OK);
	assert_host(&l, 0, "half.hf.example", 10, 1);
	assert_addr(&l, 0, 0, "192.0.2.21", false);
	mx_list_clear(&l);

	/* no host resolved, one for a DNS failure */
	mx_resolve(&dns, "alldown.example", &opt, &l);
	assert_fail(&l, MX_TEMPFAIL,
	            "temporary DNS failure looking up the "
	            "MX hosts of alldown.example");
	mx_list_clear(&l);

	/* no host has an address at all: deferred, as Postfix does */
	mx_resolve(&dns, "noaddr.example", &opt, &l);
	assert_fail(&l, MX_TEMPFAIL,
	            "no address for any MX host of noaddr.example");
	mx_list_clear(&l);
}

static const struct zrec ipmx[] = {
    {"ipmx.example",
     MA_DNS_MX,
     MA_DNS_OK,
     false,
     {"5 192.0.2.99", "7 2001:db8::99", "10 mx.ipmx.example"}},
    {"mx.ipmx.example", MA_DNS_A, MA_DNS_OK, false, {"192.0.2.30"}},
    {"onlyip.example", MA_DNS_MX, MA_DNS_OK, false, {"10 192.0.2.99"}},
    {"bad.example",
     MA_DNS_MX,
     MA_DNS_OK,
     false,
     {"x10 a.bad.example", "70000 b.bad.example", "10 c..bad.example",
      "10 d bad.example", "10", "-1 e.bad.example", "20 ok.bad.example"}},
    {"ok.bad.example",
     MA_DNS_A,
     MA_DNS_OK,
     false,
     {"192.0.2.31", "not-an-ip", "2001:db8::31", "192.0.2.300"}},
};

static void
address_mx_and_bad_records(void **state)
{
	ZONE(ipmx);
	struct mx_options opt = both();
	struct mx_list l;

	(void)state;
	mx_resolve(&dns, "ipmx.example", &opt, &l);
	assert_int_equal(l.status, MX_OK);
	assert_int_equal(l.nhosts, 1);
	assert_host(&l, 0, "mx.ipmx.example", 10, 1);
	assert_null(strstr(z.log, "192.0.2.99"));
	mx_list_clear(&l);

	mx_resolve(&dns, "onlyip.example", &opt, &l);
	assert_fail(&l, MX_TEMPFAIL, "no usable MX host for onlyip.example");
	mx_list_clear(&l);

	/* records that do not parse, names that are no host names and
	 * addresses that are no addresses are dropped */
	mx_resolve(&dns, "bad.example", &opt, &l);
	assert_int_equal(l.status, MX_OK);
	assert_int_equal(l.nhosts, 1);
	assert_host(&l, 0, "ok.bad.example", 20, 1);
	assert_addr(&l, 0, 0, "192.0.2.31", false);
	mx_list_clear(&l);
}

static void
long_names(void **state)
{
	char name254[300], name253[300], rr1[320], rr2[320];
	struct zrec recs[3] = {
	    {"long.example", MA_DNS_MX, MA_DNS_OK, false, {rr1, rr2}},
	    {name253, MA_DNS_A, MA_DNS_OK, false, {"192.0.2.40"}},
	    {name254, MA_DNS_A, MA_DNS_OK, false, {"192.0.2.41"}},
	};
	ZONE(recs);
	struct mx_options opt = both();
	struct mx_list l;

	(void)state;
	/* 63 + 1 + 63 + 1 + 63 + 1 + 61 = 253; one more byte: 254 */
	memset(name253, 'a', 253);
	name253[63] = name253[127] = name253[191] = '.';
	name253[253] = '\0';
	memcpy(name254, name253, 253);
	name254[253] = 'b';
	name254[254] = '\0';
	snprintf(rr1, sizeof(rr1), "10 %s", name254);
	snprintf(rr2, sizeof(rr2), "20 %s.", name253);
	mx_resolve(&dns, "long.example", &opt, &l);
	assert_int_equal(l.status, MX_OK);
	assert_int_equal(l.nhosts, 1);
	assert_host(&l, 0, name253, 20, 1);
	mx_list_clear(&l);

	/* a domain too long to be one */
	mx_resolve(&dns, name254, &opt, &l);
	assert_int_equal(l.status, MX_NODOMAIN);
	mx_list_clear(&l);
	mx_resolve(&dns, "bad domain.example", &opt, &l);
	assert_int_equal(l.status, MX_NODOMAIN);
	mx_list_clear(&l);
	mx_resolve(&dns, "", &opt, &l);
	assert_int_equal(l.status, MX_NODOMAIN);
	mx_list_clear(&l);
}

static const struct zrec selfz[] = {
    {"s.example",
     MA_DNS_MX,
     MA_DNS_OK,
     false,
     {"30 c.s.example", "10 a.s.example", "20 me.s.example", "20 b.s.example"}},
    {"loop.example",
     MA_DNS_MX,
     MA_DNS_OK,
     false,
     {"10 Me.S.Example.", "20 b.s.example"}},
    {"a.s.example", MA_DNS_A, MA_DNS_OK, false, {"192.0.2.50"}},
    {"b.s.example", MA_DNS_A, MA_DNS_OK, false, {"192.0.2.51"}},
    {"c.s.example", MA_DNS_A, MA_DNS_OK, false, {"192.0.2.52"}},
    {"me.s.example", MA_DNS_A, MA_DNS_OK, false, {"192.0.2.53"}},
};

static void
self_names(void **state)
{
	ZONE(selfz);
	static const char *const self[] = {"other.example", "ME.s.example.",
	                                   NULL};
	struct mx_options opt = both();
	struct mx_list l;

	(void)state;
	/* without self names: all four */
	mx_resolve(&dns, "s.example", &opt, &l);
	assert_int_equal(l.nhosts, 4);
	mx_list_clear(&l);

	/* we are at 20: only the better one stays */
	opt.self_names = self;
	mx_resolve(&dns, "s.example", &opt, &l);
	assert_int_equal(l.status, MX_OK);
	assert_int_equal(l.nhosts, 1);
	assert_host(&l, 0, "a.s.example", 10, 1);
	mx_list_clear(&l);

	/* we are the best MX */
	mx_resolve(&dns, "loop.example", &opt, &l);
	assert_fail(&l, MX_LOOP, "mail for loop.example loops back to myself");
	mx_list_clear(&l);
}

static void
domain_literals(void **state)
{
	static const struct zrec none[] = {
	    {"unused.example", MA_DNS_A, MA_DNS_OK, false, {"192.0.2.1"}},
	};
	static const char *const bad[] = {
	    "[300.1.1.1]",  "[IPv6:zz::1]",  "[192.0.2.1",
	    "[]",           "[2001:db8::1]", "[IPv6:]",
	    "[192.0.2.1]x", "[ 192.0.2.1]",  "[IPv4:1.2.3.4]",
	};
	ZONE(none);
	struct mx_options opt = both();
	struct mx_list l;

	(void)state;
	mx_resolve(&dns, "[192.0.2.1]", &opt, &l);
	assert_int_equal(l.status, MX_OK);
	assert_false(l.implicit);
	assert_host(&l, 0, "192.0.2.1", 0, 1);
	assert_addr(&l, 0, 0, "192.0.2.1", false);
	assert_false(l.hosts[0].secure);
	mx_list_clear(&l);

	mx_resolve(&dns, "[IPv6:2001:DB8:0::1]", &opt, &l);
	assert_int_equal(l.status, MX_OK);
	assert_host(&l, 0, "2001:db8::1", 0, 1);
	assert_addr(&l, 0, 0, "2001:db8::1", true);
	mx_list_clear(&l);
	mx_resolve(&dns, "[ipv6:::1]", &opt, &l);
	assert_host(&l, 0, "::1", 0, 1);
	mx_list_clear(&l);

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char why[128];

		snprintf(why, sizeof(why), "bad domain literal %s", bad[i]);
		mx_resolve(&dns, bad[i], &opt, &l);
		assert_fail(&l, MX_NODOMAIN, why);
		mx_list_clear(&l);
	}

	/* a family we do not use */
	opt.ipv6 = false;
	mx_resolve(&dns, "[IPv6:2001:db8::1]", &opt, &l);
	assert_int_equal(l.status, MX_TEMPFAIL);
	mx_list_clear(&l);
	assert_int_equal(z.calls, 0); /* literals never ask the DNS */
}

static void
address_families(void **state)
{
	ZONE(basic);
	struct mx_options opt = {.ipv4 = true};
	struct mx_list l;

	(void)state;
	mx_resolve(&dns, "example.com", &opt, &l);
	assert_int_equal(l.status, MX_OK);
	assert_int_equal(l.nhosts, 2); /* mx3 has only AAAA */
	assert_host(&l, 0, "mx1.example.com", 10, 1);
	assert_addr(&l, 0, 0, "192.0.2.1", false);
	assert_host(&l, 1, "mx2.example.com", 20, 2);
	assert_null(strstr(z.log, "AAAA"));
	mx_list_clear(&l);

	z.log[0] = '\0';
	opt = (struct mx_options){.ipv6 = true};
	mx_resolve(&dns, "example.com", &opt, &l);
	assert_int_equal(l.status, MX_OK);
	assert_int_equal(l.nhosts, 2); /* mx2 has only A */
	assert_host(&l, 0, "mx1.example.com", 10, 1);
	assert_addr(&l, 0, 0, "2001:db8::1", true);
	assert_host(&l, 1, "mx3.example.com", 30, 1);
	assert_null(strstr(z.log, "\nA "));
	mx_list_clear(&l);
}

static void
caps(void **state)
{
	struct zrec recs[1 + 15];
	char names[15][32], rrs[15][40], ips[15][3][20];
	struct mx_options opt = {.ipv4 = true};
	struct fixed_pick fp = {.vals = {0}, .nvals = 1};
	struct mx_list l;
	size_t total = 0;

	(void)state;
	memset(recs, 0, sizeof(recs));
	recs[0] =
	    (struct zrec){"cap.example", MA_DNS_MX, MA_DNS_OK, false, {NULL}};
	for (int i = 0; i < 15; i++) {
		snprintf(names[i], sizeof(names[i]), "h%02d.cap.example", i);
		snprintf(rrs[i], sizeof(rrs[i]), "%d h%02d.cap.example", 10 + i,
		         i);
		recs[1 + i] =
		    (struct zrec){names[i], MA_DNS_A, MA_DNS_OK, false, {NULL}};
		for (int j = 0; j < 3; j++) {
			snprintf(ips[i][j], sizeof(ips[i][j]), "192.0.2.%d",
			         i * 3 + j + 1);
			recs[1 + i].rr[j] = ips[i][j];
		}
	}
	for (int i = 0; i < 15; i++)
		recs[0].rr[i] = rrs[i];
	{
		ZONE(recs);

		opt.pick = fixed_pick;
		opt.pick_arg = &fp;
		/* 3 addresses a host: 20 addresses are 6 hosts and 2 */
		mx_resolve(&dns, "cap.example", &opt, &l);
		assert_int_equal(l.status, MX_OK);
		assert_int_equal(l.nhosts, 7);
		for (size_t i = 0; i < l.nhosts; i++)
			total += l.hosts[i].naddrs;
		assert_int_equal(total, MX_ADDRS_MAX);
		assert_int_equal(l.hosts[6].naddrs, 2);
		assert_string_equal(l.hosts[6].name, "h06.cap.example");
		assert_null(strstr(z.log, "h07")); /* no lookups past the cap */
		mx_list_clear(&l);

		/* one address a host: MX_HOSTS_MAX hosts of the 15 */
		for (int i = 0; i < 15; i++)
			recs[1 + i].rr[1] = recs[1 + i].rr[2] = NULL;
		z.log[0] = '\0';
		mx_resolve(&dns, "cap.example", &opt, &l);
		assert_int_equal(l.status, MX_OK);
		assert_int_equal(l.nhosts, MX_HOSTS_MAX);
		assert_int_equal(l.hosts[MX_HOSTS_MAX - 1].pref, 19);
		assert_null(strstr(z.log, "h10"));
		mx_list_clear(&l);
	}
}

static const struct zrec dnssec[] = {
    {"sec.example",
     MA_DNS_MX,
     MA_DNS_OK,
     true,
     {"10 a.sec.example", "20 b.sec.example", "30 c.sec.example"}},
    {"a.sec.example", MA_DNS_A, MA_DNS_OK, true, {"192.0.2.60"}},
    {"a.sec.example", MA_DNS_AAAA, MA_DNS_NODATA, false, {NULL}},
    {"b.sec.example", MA_DNS_A, MA_DNS_OK, false, {"192.0.2.61"}},
    {"c.sec.example", MA_DNS_A, MA_DNS_OK, true, {"192.0.2.62"}},
    {"c.sec.example", MA_DNS_AAAA, MA_DNS_OK, false, {"2001:db8::62"}},
    {"insec.example", MA_DNS_MX, MA_DNS_OK, false, {"10 a.sec.example"}},
    {"implicit.sec.example", MA_DNS_A, MA_DNS_OK, true, {"192.0.2.63"}},
    {"implicit.sec.example", MA_DNS_MX, MA_DNS_NODATA, false, {NULL}},
};

static void
secure_flag(void **state)
{
	ZONE(dnssec);
	struct mx_options opt = both();
	struct mx_list l;

	(void)state;
	mx_resolve(&dns, "sec.example", &opt, &l);
	assert_int_equal(l.nhosts, 3);
	assert_true(l.hosts[0].secure);  /* all used answers validated */
	assert_false(l.hosts[1].secure); /* its A answer was not */
	assert_false(l.hosts[2].secure); /* its AAAA answer was not */
	mx_list_clear(&l);

	opt.ipv6 = false;
	mx_resolve(&dns, "sec.example", &opt, &l);
	assert_true(l.hosts[2].secure); /* the insecure AAAA is unused */
	mx_list_clear(&l);

	mx_resolve(&dns, "insec.example", &opt, &l);
	assert_false(l.hosts[0].secure); /* the MX answer was not */
	mx_list_clear(&l);

	mx_resolve(&dns, "implicit.sec.example", &opt, &l);
	assert_true(l.implicit);
	assert_true(l.hosts[0].secure);
	mx_list_clear(&l);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(multiple_mx_in_order),
	    cmocka_unit_test(equal_preference_shuffle),
	    cmocka_unit_test(implicit_mx),
	    cmocka_unit_test(null_mx),
	    cmocka_unit_test(nxdomain_and_tempfail),
	    cmocka_unit_test(host_address_tempfail),
	    cmocka_unit_test(address_mx_and_bad_records),
	    cmocka_unit_test(long_names),
	    cmocka_unit_test(self_names),
	    cmocka_unit_test(domain_literals),
	    cmocka_unit_test(address_families),
	    cmocka_unit_test(caps),
	    cmocka_unit_test(secure_flag),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
