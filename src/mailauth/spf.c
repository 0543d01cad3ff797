/* SPF check_host() (RFC 7208 §4–§6): record lookup and selection, the
 * mechanisms under the §4.6.4 limits, redirect= and exp=.
 * SECURITY: HELO, MAIL FROM and every DNS answer are untrusted: names are
 * checked before they are queried, work is capped by spf_limits and nesting
 * by SPF_DEPTH_MAX, answers are read within MA_DNS_RR_MAX/MA_DNS_TXT_MAX. */
#include "mailauth/spf.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/xmalloc.h"
#include "mail/address.h"
#include "mailauth/spf_int.h"

#define SPF_DEPTH_MAX 20 /* include/redirect nesting; 11 under the limits */
#define SPF_DEFAULT_EXPLANATION                                                \
	"%{o} does not designate %{c} as permitted sender"
#define SPF_LAST_EXPLANATION "sender not permitted by SPF"

const struct spf_limits spf_default_limits = {
    .dns_terms = 10,
    .void_lookups = 2,
    .mx_names = 10,
    .ptr_names = 10,
    .queries = 128,
};

enum match {
	MATCH_NO,
	MATCH_YES,
	MATCH_TEMPERROR,
	MATCH_PERMERROR,
};

enum lookup {
	LOOKUP_OK,
	LOOKUP_VOID,     /* NXDOMAIN or no records */
	LOOKUP_TEMPFAIL, /* DNS error or timeout */
	LOOKUP_BUDGET,   /* spf_limits.queries spent */
};

struct spf_ctx {
	const struct ma_dns *dns;
	struct spf_limits lim;
	struct spf_ip ip;
	struct spf_macro_env env;
	unsigned int dns_terms, voids, queries;
	char problem[SPF_PROBLEM_MAX];
	/* The client's PTR names, looked up and validated once (§5.5, §7.3). */
	bool ptr_done;
	enum lookup ptr_lookup;
	char **valid;
	size_t nvalid;
	/* What decided on the main chain (never inside include:). */
	char *mech;
	char *exp;
	char *dec_domain;
};

static void set_problem(struct spf_ctx *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
set_problem(struct spf_ctx *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (vsnprintf(c->problem, sizeof(c->problem), fmt, ap) < 0)
		c->problem[0] = '\0';
	va_end(ap);
}

/* ---------------------------------------------------------------- addresses
 */

static void
unmap_v4(struct spf_ip *ip)
{
	static const uint8_t prefix[12] = {0, 0, 0, 0, 0,    0,
	                                   0, 0, 0, 0, 0xff, 0xff};

	if (ip->family == AF_INET6 && memcmp(ip->addr, prefix, 12) == 0) {
		memmove(ip->addr, ip->addr + 12, 4);
		memset(ip->addr + 4, 0, 12);
		ip->family = AF_INET;
	}
}

int
spf_ip_parse(const char *text, struct spf_ip *ip_r)
{
	memset(ip_r, 0, sizeof(*ip_r));
	if (inet_pton(AF_INET, text, ip_r->addr) == 1) {
		ip_r->family = AF_INET;
		return 0;
	}
	if (inet_pton(AF_INET6, text, ip_r->addr) == 1) {
		ip_r->family = AF_INET6;
		unmap_v4(ip_r);
		return 0;
	}
	return -1;
}

int
spf_ip_from_sockaddr(const struct sockaddr *sa, socklen_t len,
                     struct spf_ip *ip_r)
{
	memset(ip_r, 0, sizeof(*ip_r));
	if (sa->sa_family == AF_INET &&
	    len >= (socklen_t)sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;

		ip_r->family = AF_INET;
		memcpy(ip_r->addr, &in->sin_addr, 4);
		return 0;
	}
	if (sa->sa_family == AF_INET6 &&
	    len >= (socklen_t)sizeof(struct sockaddr_in6)) {
		const struct sockaddr_in6 *in6 =
		    (const struct sockaddr_in6 *)sa;

		ip_r->family = AF_INET6;
		memcpy(ip_r->addr, &in6->sin6_addr, 16);
		unmap_v4(ip_r);
		return 0;
	}
	return -1;
}

static bool
prefix_match(const uint8_t *a, const uint8_t *b, unsigned int bits)
{
	size_t bytes = bits / 8;
	unsigned int rest = bits % 8;

	if (memcmp(a, b, bytes) != 0)
		return false;
	if (rest == 0)
		return true;
	return ((a[bytes] ^ b[bytes]) & (uint8_t)(0xff << (8 - rest))) == 0;
}

/* An A or AAAA answer record in the client's family. */
static bool
rr_address(const struct spf_ctx *c, const char *rr, uint8_t *addr)
{
	return rr != NULL && inet_pton(c->ip.family, rr, addr) == 1;
}

/* ---------------------------------------------------------------- DNS */

static size_t
rr_count(const struct ma_dns_answer *ans)
{
	if (ans->rr == NULL)
		return 0;
	return ans->count < MA_DNS_RR_MAX ? ans->count : MA_DNS_RR_MAX;
}

/* One query; ans is always left for ma_dns_answer_clear(). */
static enum lookup
lookup(struct spf_ctx *c, const char *name, enum ma_dns_type type,
       struct ma_dns_answer *ans)
{
	memset(ans, 0, sizeof(*ans));
	if (c->queries >= c->lim.queries)
		return LOOKUP_BUDGET;
	c->queries++;
	if (c->dns->lookup(c->dns->arg, name, type, ans) < 0)
		return LOOKUP_TEMPFAIL;
	switch (ans->status) {
	case MA_DNS_OK:
		return rr_count(ans) == 0 ? LOOKUP_VOID : LOOKUP_OK;
	case MA_DNS_NXDOMAIN:
	case MA_DNS_NODATA:
		return LOOKUP_VOID;
	case MA_DNS_TEMPFAIL:
		break;
	}
	return LOOKUP_TEMPFAIL;
}

static int
count_term(struct spf_ctx *c)
{
	if (++c->dns_terms > c->lim.dns_terms) {
		set_problem(c, "more than %u DNS-querying terms",
		            c->lim.dns_terms);
		return -1;
	}
	return 0;
}

static int
note_void(struct spf_ctx *c)
{
	if (++c->voids > c->lim.void_lookups) {
		set_problem(c, "more than %u void lookups",
		            c->lim.void_lookups);
		return -1;
	}
	return 0;
}

/* The match for a failed or void lookup of name. */
static enum match
lookup_trouble(struct spf_ctx *c, enum lookup r, const char *name,
               bool count_void)
{
	switch (r) {
	case LOOKUP_BUDGET:
		set_problem(c, "more than %u DNS queries", c->lim.queries);
		return MATCH_PERMERROR;
	case LOOKUP_TEMPFAIL:
		set_problem(c, "DNS error looking up %s", name);
		return MATCH_TEMPERROR;
	case LOOKUP_VOID:
		if (count_void && note_void(c) < 0)
			return MATCH_PERMERROR;
		return MATCH_NO;
	case LOOKUP_OK:
		break;
	}
	return MATCH_NO;
}

/* ---------------------------------------------------------------- PTR */

static void
reverse_name(const struct spf_ip *ip, char *out, size_t size)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;

	if (ip->family == AF_INET) {
		snprintf(out, size, "%u.%u.%u.%u.in-addr.arpa", ip->addr[3],
		         ip->addr[2], ip->addr[1], ip->addr[0]);
		return;
	}
	for (int k = 15; k >= 0 && o + 4 < size; k--) {
		out[o++] = hex[ip->addr[k] & 0xf];
		out[o++] = '.';
		out[o++] = hex[ip->addr[k] >> 4];
		out[o++] = '.';
	}
	snprintf(out + o, size - o, "ip6.arpa");
}

static bool
name_in_domain(const char *name, const char *domain)
{
	size_t n = strlen(name), d = strlen(domain);

	if (n == d)
		return strcasecmp(name, domain) == 0;
	return n > d && name[n - d - 1] == '.' &&
	       strcasecmp(name + n - d, domain) == 0;
}

/* A name without its final dot, if it is one we query. */
static bool
answer_name(const char *rr, char *out)
{
	size_t n = strnlen(rr, SPF_DOMAIN_MAX + 2);

	if (n > 0 && rr[n - 1] == '.')
		n--;
	if (!spf_name_valid(rr, n))
		return false;
	memcpy(out, rr, n);
	out[n] = '\0';
	return true;
}

/* Does name resolve back to the client address? DNS errors skip the name
 * (§5.5). */
static bool
ptr_validate(struct spf_ctx *c, const char *name)
{
	struct ma_dns_answer ans;
	uint8_t addr[16] = {0};
	bool ok = false;

	if (lookup(c, name, c->ip.family == AF_INET6 ? MA_DNS_AAAA : MA_DNS_A,
	           &ans) == LOOKUP_OK) {
		for (size_t i = 0; i < rr_count(&ans) && !ok; i++)
			ok = rr_address(c, ans.rr[i], addr) &&
			     memcmp(addr, c->ip.addr,
			            c->ip.family == AF_INET6 ? 16 : 4) == 0;
	}
	ma_dns_answer_clear(&ans);
	return ok;
}

/* The PTR names of the client, the first ptr_names of them validated. */
static void
ptr_load(struct spf_ctx *c)
{
	struct ma_dns_answer ans;
	char rname[80], name[SPF_DOMAIN_MAX + 1];
	size_t n;

	if (c->ptr_done)
		return;
	c->ptr_done = true;
	reverse_name(&c->ip, rname, sizeof(rname));
	c->ptr_lookup = lookup(c, rname, MA_DNS_PTR, &ans);
	if (c->ptr_lookup == LOOKUP_OK) {
		n = rr_count(&ans);
		if (n > c->lim.ptr_names)
			n = c->lim.ptr_names;
		c->valid = xcalloc(n + 1, sizeof(*c->valid));
		for (size_t i = 0; i < n; i++) {
			if (ans.rr[i] != NULL && answer_name(ans.rr[i], name) &&
			    ptr_validate(c, name))
				c->valid[c->nvalid++] = xstrdup(name);
		}
	}
	ma_dns_answer_clear(&ans);
}

/* %{p} (§7.3): <domain> itself if validated, else a validated subdomain of
 * it, else any validated name, else "unknown". */
static const char *
ptr_name(void *arg, const char *domain)
{
	struct spf_ctx *c = arg;

	ptr_load(c);
	for (size_t i = 0; i < c->nvalid; i++)
		if (strcasecmp(c->valid[i], domain) == 0)
			return c->valid[i];
	for (size_t i = 0; i < c->nvalid; i++)
		if (name_in_domain(c->valid[i], domain))
			return c->valid[i];
	return c->nvalid > 0 ? c->valid[0] : "unknown";
}

/* ---------------------------------------------------------------- mechanisms
 */

static unsigned int
term_cidr(const struct spf_ctx *c, const struct spf_term *t)
{
	return c->ip.family == AF_INET6 ? t->cidr6 : t->cidr4;
}

/* a (§5.3), and each MX name (§5.4: void there is not counted). */
static enum match
match_address(struct spf_ctx *c, const char *name, unsigned int cidr,
              bool count_void)
{
	struct ma_dns_answer ans;
	uint8_t addr[16] = {0};
	enum lookup r;
	enum match m = MATCH_NO;

	r = lookup(c, name, c->ip.family == AF_INET6 ? MA_DNS_AAAA : MA_DNS_A,
	           &ans);
	if (r != LOOKUP_OK) {
		m = lookup_trouble(c, r, name, count_void);
	} else {
		for (size_t i = 0; i < rr_count(&ans) && m == MATCH_NO; i++)
			if (rr_address(c, ans.rr[i], addr) &&
			    prefix_match(addr, c->ip.addr, cidr))
				m = MATCH_YES;
	}
	ma_dns_answer_clear(&ans);
	return m;
}

/* "PREF HOST" into HOST; false for a null MX or a name we do not query. */
static bool
mx_host(const char *rr, char *host, bool *null_r)
{
	size_t i = 0;

	*null_r = false;
	while (rr[i] >= '0' && rr[i] <= '9')
		i++;
	while (rr[i] == ' ')
		i++;
	if (rr[i] == '\0' || strcmp(rr + i, ".") == 0) {
		*null_r = true;
		return false;
	}
	return answer_name(rr + i, host);
}

static enum match
match_mx(struct spf_ctx *c, const char *name, unsigned int cidr)
{
	struct ma_dns_answer ans;
	char host[SPF_DOMAIN_MAX + 1];
	enum lookup r;
	enum match m = MATCH_NO;
	size_t hosts = 0;
	bool null;

	r = lookup(c, name, MA_DNS_MX, &ans);
	if (r != LOOKUP_OK) {
		m = lookup_trouble(c, r, name, true);
		goto out;
	}
	for (size_t i = 0; i < rr_count(&ans); i++) {
		if (ans.rr[i] != NULL &&
		    (mx_host(ans.rr[i], host, &null) || !null))
			hosts++;
	}
	if (hosts > c->lim.mx_names) {
		set_problem(c, "more than %u MX names at %s", c->lim.mx_names,
		            name);
		m = MATCH_PERMERROR;
		goto out;
	}
	for (size_t i = 0; i < rr_count(&ans) && m == MATCH_NO; i++)
		if (ans.rr[i] != NULL && mx_host(ans.rr[i], host, &null))
			m = match_address(c, host, cidr, false);
out:
	ma_dns_answer_clear(&ans);
	return m;
}

static enum match
match_ptr(struct spf_ctx *c, const char *target)
{
	ptr_load(c);
	switch (c->ptr_lookup) {
	case LOOKUP_OK:
		break;
	case LOOKUP_TEMPFAIL:
		return MATCH_NO; /* §5.5: a DNS error is no match */
	case LOOKUP_VOID:
	case LOOKUP_BUDGET:
		return lookup_trouble(c, c->ptr_lookup, "", true);
	}
	for (size_t i = 0; i < c->nvalid; i++)
		if (name_in_domain(c->valid[i], target))
			return MATCH_YES;
	return MATCH_NO;
}

static enum match
match_exists(struct spf_ctx *c, const char *name)
{
	struct ma_dns_answer ans;
	enum lookup r = lookup(c, name, MA_DNS_A, &ans);
	enum match m;

	m = r == LOOKUP_OK ? MATCH_YES : lookup_trouble(c, r, name, true);
	ma_dns_answer_clear(&ans);
	return m;
}

static enum spf_result check_domain(struct spf_ctx *c, const char *domain,
                                    unsigned int depth, bool main_chain);

static enum match
match_include(struct spf_ctx *c, const char *target, unsigned int depth)
{
	switch (check_domain(c, target, depth + 1, false)) {
	case SPF_PASS:
		return MATCH_YES;
	case SPF_FAIL:
	case SPF_SOFTFAIL:
	case SPF_NEUTRAL:
		return MATCH_NO;
	case SPF_TEMPERROR:
		return MATCH_TEMPERROR;
	case SPF_NONE:
		set_problem(c, "include:%s has no SPF record", target);
		return MATCH_PERMERROR;
	case SPF_PERMERROR:
		break;
	}
	return MATCH_PERMERROR;
}

static enum match
eval_mechanism(struct spf_ctx *c, const struct spf_term *t, const char *domain,
               unsigned int depth)
{
	char target[SPF_DOMAIN_MAX + 1];
	const char *error = NULL;

	switch (t->mech) {
	case SPF_MECH_ALL:
		return MATCH_YES;
	case SPF_MECH_IP4:
		return c->ip.family == AF_INET &&
		               prefix_match(c->ip.addr, t->net, t->cidr4)
		           ? MATCH_YES
		           : MATCH_NO;
	case SPF_MECH_IP6:
		return c->ip.family == AF_INET6 &&
		               prefix_match(c->ip.addr, t->net, t->cidr6)
		           ? MATCH_YES
		           : MATCH_NO;
	default:
		break;
	}
	if (count_term(c) < 0)
		return MATCH_PERMERROR;
	if (t->arg == NULL) {
		snprintf(target, sizeof(target), "%s", domain);
	} else if (spf_expand_domain(&c->env, t->arg, t->arg_len, target,
	                             &error) < 0) {
		if (t->mech == SPF_MECH_INCLUDE) {
			set_problem(c, "%.*s: %s", (int)t->len, t->text, error);
			return MATCH_PERMERROR;
		}
		return MATCH_NO; /* a name that cannot exist (§4.3, §4.8) */
	}
	switch (t->mech) {
	case SPF_MECH_A:
		return match_address(c, target, term_cidr(c, t), true);
	case SPF_MECH_MX:
		return match_mx(c, target, term_cidr(c, t));
	case SPF_MECH_PTR:
		return match_ptr(c, target);
	case SPF_MECH_EXISTS:
		return match_exists(c, target);
	case SPF_MECH_INCLUDE:
		return match_include(c, target, depth);
	default:
		break;
	}
	return MATCH_NO;
}

/* ---------------------------------------------------------------- records */

static void
decide(struct spf_ctx *c, const char *mech, size_t mech_len,
       const struct spf_record_info *info, const char *domain)
{
	free(c->mech);
	free(c->exp);
	free(c->dec_domain);
	c->mech = xstrndup(mech, mech_len);
	c->exp = info != NULL && info->has_exp
	             ? xstrndup(info->exp.arg, info->exp.arg_len)
	             : NULL;
	c->dec_domain = xstrdup(domain);
}

/* The one "v=spf1" TXT record of domain (§4.4, §4.5) into *rec_r, or the
 * result when there is none. */
static enum spf_result
fetch_record(struct spf_ctx *c, const char *domain, char **rec_r)
{
	struct ma_dns_answer ans;
	const char *found = NULL;
	size_t n = 0;
	enum spf_result r = SPF_NONE;

	*rec_r = NULL;
	switch (lookup(c, domain, MA_DNS_TXT, &ans)) {
	case LOOKUP_OK:
		break;
	case LOOKUP_VOID:
		set_problem(c, "no SPF record at %s", domain);
		goto out;
	case LOOKUP_TEMPFAIL:
		set_problem(c, "DNS error looking up TXT of %s", domain);
		r = SPF_TEMPERROR;
		goto out;
	case LOOKUP_BUDGET:
		set_problem(c, "more than %u DNS queries", c->lim.queries);
		r = SPF_PERMERROR;
		goto out;
	}
	for (size_t i = 0; i < rr_count(&ans); i++) {
		if (ans.rr[i] != NULL && spf_record_is_spf1(ans.rr[i])) {
			found = ans.rr[i];
			n++;
		}
	}
	if (n == 0) {
		set_problem(c, "no SPF record at %s", domain);
	} else if (n > 1) {
		set_problem(c, "more than one SPF record at %s", domain);
		r = SPF_PERMERROR;
	} else if (strnlen(found, MA_DNS_TXT_MAX + 1) > MA_DNS_TXT_MAX) {
		set_problem(c, "SPF record at %s too long", domain);
		r = SPF_PERMERROR;
	} else {
		*rec_r = xstrdup(found);
		r = SPF_PASS;
	}
out:
	ma_dns_answer_clear(&ans);
	return r;
}

static enum spf_result
follow_redirect(struct spf_ctx *c, const struct spf_term *t, unsigned int depth,
                bool main_chain)
{
	char target[SPF_DOMAIN_MAX + 1];
	const char *error = NULL;
	enum spf_result r;

	if (count_term(c) < 0)
		return SPF_PERMERROR;
	if (spf_expand_domain(&c->env, t->arg, t->arg_len, target, &error) <
	    0) {
		set_problem(c, "%.*s: %s", (int)t->len, t->text, error);
		return SPF_PERMERROR;
	}
	r = check_domain(c, target, depth + 1, main_chain);
	if (r == SPF_NONE) {
		set_problem(c, "redirect=%s has no SPF record", target);
		r = SPF_PERMERROR;
	}
	return r;
}

/* check_host() on one <domain> (§4.6, §4.7); depth counts include/redirect
 * levels, main_chain is false inside include: (whose exp= is not ours). */
static enum spf_result
check_domain(struct spf_ctx *c, const char *domain, unsigned int depth,
             bool main_chain)
{
	struct spf_record_info info;
	struct spf_term t;
	const char *saved = c->env.domain, *error = NULL;
	char *rec;
	size_t pos = 0, len;
	enum spf_result r;

	if (depth > SPF_DEPTH_MAX) {
		set_problem(c, "include/redirect nested too deep");
		return SPF_PERMERROR;
	}
	if (!spf_name_valid(domain, strlen(domain))) {
		set_problem(c, "malformed domain");
		return SPF_NONE;
	}
	if ((r = fetch_record(c, domain, &rec)) != SPF_PASS)
		return r;
	len = strlen(rec);
	if (spf_record_check(rec, len, &info, &error) < 0) {
		set_problem(c, "%s in \"%.*s\" at %s", error,
		            (int)(info.bad_len < 64 ? info.bad_len : 64),
		            rec + info.bad_pos, domain);
		r = SPF_PERMERROR;
		goto out;
	}
	c->env.domain = domain;
	while (spf_term_next(rec, len, &pos, &t, NULL) == 1) {
		if (t.kind != SPF_TERM_MECHANISM)
			continue;
		switch (eval_mechanism(c, &t, domain, depth)) {
		case MATCH_NO:
			continue;
		case MATCH_YES:
			r = t.qualifier;
			if (main_chain)
				decide(c, t.text, t.len, &info, domain);
			goto out;
		case MATCH_TEMPERROR:
			r = SPF_TEMPERROR;
			goto out;
		case MATCH_PERMERROR:
			r = SPF_PERMERROR;
			goto out;
		}
	}
	if (info.has_redirect) {
		/* §6.1: the target's result and exp=, never ours */
		r = follow_redirect(c, &info.redirect, depth, main_chain);
		goto out;
	}
	r = SPF_NEUTRAL;
	if (main_chain)
		decide(c, "default", strlen("default"), NULL, domain);
out:
	c->env.domain = saved;
	free(rec);
	return r;
}

/* ---------------------------------------------------------------- exp= */

static int
expand_explanation(struct spf_ctx *c, const char *text, struct buf *b)
{
	size_t len = strnlen(text, MA_DNS_TXT_MAX + 1);

	buf_reset(b);
	if (len > MA_DNS_TXT_MAX ||
	    spf_macro_expand(&c->env, text, len, SPF_MACRO_EXPLAIN, b, NULL) <
	        0 ||
	    b->len == 0 || b->len > SPF_EXPLANATION_MAX)
		return -1;
	for (size_t i = 0; i < b->len; i++)
		if (b->data[i] < 0x20 || b->data[i] > 0x7e)
			return -1;
	return buf_cstr(b) != NULL ? 0 : -1;
}

/* §6.2: the exp= text of the deciding record, else the default. Failures
 * here never change the result; the lookup is one query over the budget. */
static char *
explain(struct spf_ctx *c, const struct spf_request *req)
{
	struct ma_dns_answer ans;
	struct buf b;
	char name[SPF_DOMAIN_MAX + 1];
	char *text = NULL;

	buf_init(&b, SPF_EXPLANATION_MAX + 1);
	c->env.domain = c->dec_domain;
	if (c->exp != NULL && spf_expand_domain(&c->env, c->exp, strlen(c->exp),
	                                        name, NULL) == 0) {
		c->lim.queries++;
		if (lookup(c, name, MA_DNS_TXT, &ans) == LOOKUP_OK &&
		    ans.count == 1 && ans.rr[0] != NULL &&
		    expand_explanation(c, ans.rr[0], &b) == 0)
			text = xstrdup((const char *)b.data);
		ma_dns_answer_clear(&ans);
	}
	if (text == NULL && req->default_explanation != NULL &&
	    expand_explanation(c, req->default_explanation, &b) == 0)
		text = xstrdup((const char *)b.data);
	if (text == NULL &&
	    expand_explanation(c, SPF_DEFAULT_EXPLANATION, &b) == 0)
		text = xstrdup((const char *)b.data);
	if (text == NULL)
		text = xstrdup(SPF_LAST_EXPLANATION);
	buf_free(&b);
	return text;
}

/* ---------------------------------------------------------------- check_host
 */

/* <domain> of initial processing (§4.3) into out, A-label form. */
static bool
initial_domain(const char *in, char *out)
{
	char alabel[ADDRESS_DOMAIN_MAX + 1];
	size_t n = strnlen(in, ADDRESS_INPUT_MAX + 1);
	bool ascii = true;

	if (n > ADDRESS_INPUT_MAX)
		return false;
	if (n > 0 && in[n - 1] == '.')
		n--;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)in[i] >= 0x80)
			ascii = false;
	if (!ascii) {
		if (address_domain_normalize(in, n, alabel, NULL) < 0)
			return false;
		in = alabel;
		n = strlen(alabel);
	}
	if (!spf_domain_initial_valid(in, n))
		return false;
	memcpy(out, in, n);
	out[n] = '\0';
	return true;
}

static void
ctx_free(struct spf_ctx *c)
{
	for (size_t i = 0; i < c->nvalid; i++)
		free(c->valid[i]);
	free(c->valid);
	free(c->mech);
	free(c->exp);
	free(c->dec_domain);
}

struct spf_outcome *
spf_check_host(const struct ma_dns *dns, const struct spf_request *req)
{
	struct spf_outcome *o = xcalloc(1, sizeof(*o));
	struct spf_ctx c;
	char domain[SPF_DOMAIN_MAX + 1];
	const char *helo = req->helo != NULL ? req->helo : "";
	const char *dom_in = helo, *at;
	char *local;

	memset(&c, 0, sizeof(c));
	c.dns = dns;
	c.lim = req->limits != NULL ? *req->limits : spf_default_limits;
	c.ip = req->ip;
	unmap_v4(&c.ip);
	o->identity = req->identity;
	o->helo = req->helo != NULL ? xstrdup(req->helo) : NULL;
	o->receiver = req->receiver != NULL ? xstrdup(req->receiver) : NULL;
	spf_ip_text(&c.ip, o->client_ip);

	/* §2.3, §2.4, §4.3: <sender>, its local part and <domain> */
	if (req->identity == SPF_IDENTITY_MAILFROM && req->mail_from != NULL &&
	    req->mail_from[0] != '\0') {
		if (strnlen(req->mail_from, SPF_SENDER_MAX + 1) >
		    SPF_SENDER_MAX) {
			o->result = SPF_NONE;
			o->domain = xstrdup("");
			o->sender = xstrdup("");
			snprintf(o->problem, sizeof(o->problem),
			         "sender too long");
			return o;
		}
		at = strrchr(req->mail_from, '@');
		if (at != NULL) {
			local = xstrndup(req->mail_from,
			                 (size_t)(at - req->mail_from));
			dom_in = at + 1;
		} else {
			local = xstrdup("");
			dom_in = req->mail_from;
		}
	} else {
		local = xstrdup("postmaster");
	}
	if (local[0] == '\0') {
		free(local);
		local = xstrdup("postmaster");
	}
	if (!initial_domain(dom_in, domain)) {
		o->result = SPF_NONE;
		o->domain = xstrdup("");
		o->sender = xasprintf("%s@%s", local, dom_in);
		snprintf(o->problem, sizeof(o->problem), "malformed domain");
		free(local);
		return o;
	}
	o->domain = xstrdup(domain);
	o->sender = xasprintf("%s@%s", local, domain);

	c.env.sender = o->sender;
	c.env.local = local;
	c.env.sender_domain = o->domain;
	c.env.domain = o->domain;
	c.env.helo = helo;
	c.env.receiver = req->receiver;
	c.env.ip = &c.ip;
	c.env.now = (long long)(req->now != 0 ? req->now : time(NULL));
	c.env.ptr_name = ptr_name;
	c.env.arg = &c;

	o->result = check_domain(&c, domain, 0, true);
	switch (o->result) {
	case SPF_FAIL:
		o->explanation = explain(&c, req);
		/* fall through */
	case SPF_PASS:
	case SPF_SOFTFAIL:
	case SPF_NEUTRAL:
		o->mechanism = c.mech;
		c.mech = NULL;
		break;
	case SPF_NONE:
	case SPF_TEMPERROR:
	case SPF_PERMERROR:
		snprintf(o->problem, sizeof(o->problem), "%s", c.problem);
		break;
	}
	o->dns_terms = c.dns_terms;
	o->void_lookups = c.voids;
	o->queries = c.queries;
	ctx_free(&c);
	free(local);
	return o;
}

void
spf_outcome_free(struct spf_outcome **outcome)
{
	struct spf_outcome *o = *outcome;

	if (o == NULL)
		return;
	free(o->domain);
	free(o->sender);
	free(o->helo);
	free(o->receiver);
	free(o->mechanism);
	free(o->explanation);
	free(o);
	*outcome = NULL;
}

const char *
spf_result_name(enum spf_result result)
{
	switch (result) {
	case SPF_NONE:
		return "none";
	case SPF_NEUTRAL:
		return "neutral";
	case SPF_PASS:
		return "pass";
	case SPF_FAIL:
		return "fail";
	case SPF_SOFTFAIL:
		return "softfail";
	case SPF_TEMPERROR:
		return "temperror";
	case SPF_PERMERROR:
		return "permerror";
	}
	return "permerror";
}
