/* MX resolution (RFC 5321 5.1, RFC 7505 null MX) over the mailauth DNS
 * interface: the hosts to try for a domain, best first, with addresses.
 * SECURITY: DNS answers are untrusted. MX targets must be plain host
 * names (letters, digits, '-', '_', labels of 1..63, at most 253 bytes)
 * and not addresses; addresses must parse with inet_pton; hosts and
 * addresses are capped (MX_HOSTS_MAX, MX_ADDRS_MAX). */
#include "queue/mx.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/xmalloc.h"

#define MX_NAME_MAX 253

struct mx_cand {
	char name[MX_NAME_MAX + 1];
	uint16_t pref;
};

static void set_status(struct mx_list *list, enum mx_status status,
                       const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A longer why is cut: it is for logs and humans. */
static void
set_status(struct mx_list *list, enum mx_status status, const char *fmt, ...)
{
	va_list ap;
	int n;

	list->status = status;
	va_start(ap, fmt);
	n = vsnprintf(list->why, sizeof(list->why), fmt, ap);
	va_end(ap);
	if (n < 0)
		list->why[0] = '\0';
}

/* A host name as RFC 5321 wants it in an MX (or the domain we were asked
 * for): labels of letters, digits, '-' and '_', 1..63 bytes each. */
static bool
valid_hostname(const char *s)
{
	size_t label = 0, len = strlen(s);

	if (len == 0 || len > MX_NAME_MAX)
		return false;
	for (const char *p = s; *p != '\0'; p++) {
		char c = *p;

		if (c == '.') {
			if (label == 0)
				return false;
			label = 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '-' || c == '_'))
			return false;
		if (++label > 63)
			return false;
	}
	return label > 0;
}

static bool
is_ip_address(const char *s)
{
	unsigned char a[16];

	return inet_pton(AF_INET, s, a) == 1 || inet_pton(AF_INET6, s, a) == 1;
}

/* name without its final dot into out (MX_NAME_MAX + 1); false when too
 * long. */
static bool
strip_dot(const char *name, size_t len, char *out)
{
	if (len > 0 && name[len - 1] == '.')
		len--;
	if (len > MX_NAME_MAX)
		return false;
	memcpy(out, name, len);
	out[len] = '\0';
	return true;
}

static bool
is_self(const struct mx_options *opt, const char *host)
{
	char self[MX_NAME_MAX + 1];

	if (opt->self_names == NULL)
		return false;
	for (const char *const *s = opt->self_names; *s != NULL; s++)
		if (strip_dot(*s, strlen(*s), self) &&
		    strcasecmp(self, host) == 0)
			return true;
	return false;
}

/* One lookup; a provider failure or an OK without records is mapped to
 * the status it means. */
static enum ma_dns_status
lookup(const struct ma_dns *dns, const char *name, enum ma_dns_type type,
       struct ma_dns_answer *ans)
{
	memset(ans, 0, sizeof(*ans));
	if (dns->lookup(dns->arg, name, type, ans) < 0) {
		ma_dns_answer_clear(ans);
		ans->status = MA_DNS_TEMPFAIL;
	}
	switch (ans->status) {
	case MA_DNS_OK:
		if (ans->count == 0 || ans->rr == NULL)
			ans->status = MA_DNS_NODATA;
		break;
	case MA_DNS_NXDOMAIN:
	case MA_DNS_NODATA:
	case MA_DNS_TEMPFAIL:
		break;
	default:
		ans->status = MA_DNS_TEMPFAIL;
	}
	return ans->status;
}

/* "PREF HOST" (HOST may be ".", empty or missing for the root). Returns
 * 0 with *root_r set for the root, or -1 when the record is not one. */
static int
parse_mx(const char *rr, struct mx_cand *c, bool *root_r)
{
	unsigned long pref = 0;
	const char *p = rr;
	size_t len;

	if (*p < '0' || *p > '9')
		return -1;
	for (; *p >= '0' && *p <= '9'; p++) {
		pref = pref * 10 + (unsigned long)(*p - '0');
		if (pref > 65535)
			return -1;
	}
	if (*p != ' ' && *p != '\t' && *p != '\0')
		return -1;
	while (*p == ' ' || *p == '\t')
		p++;
	len = strlen(p);
	while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
		len--;
	c->pref = (uint16_t)pref;
	*root_r = len == 0 || (len == 1 && p[0] == '.');
	if (*root_r) {
		c->name[0] = '\0';
		return 0;
	}
	if (!strip_dot(p, len, c->name))
		return -1;
	return 0;
}

static size_t
pick(const struct mx_options *opt, size_t n)
{
	size_t j;

	if (opt->pick != NULL)
		j = opt->pick(opt->pick_arg, n);
	else
		j = (size_t)random();
	return j % n;
}

/* Stable sort by preference, then a Fisher-Yates shuffle of each run of
 * equal preference. */
static void
order(struct mx_cand *c, size_t n, const struct mx_options *opt)
{
	for (size_t i = 1; i < n; i++) {
		struct mx_cand t = c[i];
		size_t j = i;

		for (; j > 0 && c[j - 1].pref > t.pref; j--)
			c[j] = c[j - 1];
		c[j] = t;
	}
	for (size_t s = 0; s < n;) {
		size_t e = s + 1;

		while (e < n && c[e].pref == c[s].pref)
			e++;
		for (size_t i = e - s - 1; i > 0; i--) {
			size_t j = pick(opt, i + 1);

			if (j != i) {
				struct mx_cand t = c[s + i];

				c[s + i] = c[s + j];
				c[s + j] = t;
			}
		}
		s = e;
	}
}

struct addr_state {
	struct mx_addr addrs[MX_ADDRS_MAX];
	size_t total;  /* addresses kept for the whole domain */
	bool tempfail; /* some host got no address for a DNS failure */
};

/* The addresses of one host (AAAA first, then A, as enabled) appended to
 * st->addrs. Returns how many; *secure_r is cleared unless every answer
 * that gave an address was validated. */
static size_t
host_addrs(const struct ma_dns *dns, const char *name, bool v4, bool v6,
           struct addr_state *st, bool *secure_r)
{
	static const struct {
		enum ma_dns_type type;
		int af;
		bool v6;
	} fam[] = {
	    {MA_DNS_AAAA, AF_INET6, true},
	    {MA_DNS_A, AF_INET, false},
	};
	size_t got = 0;
	bool tempfail = false;

	for (size_t f = 0; f < sizeof(fam) / sizeof(fam[0]); f++) {
		struct ma_dns_answer ans;
		size_t before = got;

		if ((fam[f].v6 && !v6) || (!fam[f].v6 && !v4))
			continue;
		if (st->total >= MX_ADDRS_MAX)
			break;
		if (lookup(dns, name, fam[f].type, &ans) == MA_DNS_TEMPFAIL)
			tempfail = true;
		for (size_t i = 0; ans.status == MA_DNS_OK && i < ans.count &&
		                   st->total < MX_ADDRS_MAX;
		     i++) {
			unsigned char bin[16];
			const char *ip = ans.rr[i];

			if (ip == NULL ||
			    strlen(ip) >= sizeof(st->addrs[0].ip) ||
			    inet_pton(fam[f].af, ip, bin) != 1)
				continue;
			memcpy(st->addrs[st->total].ip, ip, strlen(ip) + 1);
			st->addrs[st->total].v6 = fam[f].v6;
			st->total++;
			got++;
		}
		if (got > before && !ans.secure)
			*secure_r = false;
		ma_dns_answer_clear(&ans);
	}
	if (got == 0 && tempfail)
		st->tempfail = true;
	return got;
}

static void
add_host(struct mx_list *list, const char *name, uint16_t pref, bool secure,
         const struct mx_addr *addrs, size_t naddrs)
{
	struct mx_host *h = &list->hosts[list->nhosts++];

	h->name = xstrdup(name);
	h->pref = pref;
	h->secure = secure;
	h->addrs = xcalloc(naddrs, sizeof(*h->addrs));
	memcpy(h->addrs, addrs, naddrs * sizeof(*addrs));
	h->naddrs = naddrs;
}

/* "[192.0.2.1]" or "[IPv6:2001:db8::1]": one host, that address. */
static void
resolve_literal(const char *domain, bool v4, bool v6, struct mx_list *list)
{
	char inner[64], ip[INET6_ADDRSTRLEN];
	unsigned char bin[16];
	size_t len = strlen(domain);
	struct mx_addr a = {0};
	int af = AF_INET;
	const char *p;

	if (len < 3 || domain[len - 1] != ']' || len - 2 >= sizeof(inner)) {
		set_status(list, MX_NODOMAIN, "bad domain literal %s", domain);
		return;
	}
	memcpy(inner, domain + 1, len - 2);
	inner[len - 2] = '\0';
	p = inner;
	if (strncasecmp(p, "IPv6:", 5) == 0) {
		af = AF_INET6;
		p += 5;
	}
	if (inet_pton(af, p, bin) != 1 ||
	    inet_ntop(af, bin, ip, sizeof(ip)) == NULL) {
		set_status(list, MX_NODOMAIN, "bad domain literal %s", domain);
		return;
	}
	a.v6 = af == AF_INET6;
	if ((a.v6 && !v6) || (!a.v6 && !v4)) {
		set_status(list, MX_TEMPFAIL,
		           "address family of %s is not enabled", domain);
		return;
	}
	memcpy(a.ip, ip, strlen(ip) + 1);
	list->hosts = xcalloc(1, sizeof(*list->hosts));
	add_host(list, ip, 0, false, &a, 1);
	list->status = MX_OK;
}

/* No MX: the domain itself is the one host (RFC 5321 5.1). */
static void
resolve_implicit(const struct ma_dns *dns, const char *domain, bool v4, bool v6,
                 struct mx_list *list)
{
	struct addr_state st = {0};
	bool secure = true;
	size_t n;

	list->implicit = true;
	n = host_addrs(dns, domain, v4, v6, &st, &secure);
	if (n == 0) {
		if (st.tempfail)
			set_status(list, MX_TEMPFAIL,
			           "temporary DNS failure looking up the "
			           "address of %s",
			           domain);
		else
			set_status(list, MX_NODOMAIN,
			           "domain %s has no MX and no address",
			           domain);
		return;
	}
	list->hosts = xcalloc(1, sizeof(*list->hosts));
	add_host(list, domain, 0, secure, st.addrs, n);
	list->status = MX_OK;
}

/* MX answer to candidates: parsed, root and address targets dropped.
 * Returns the count; *null_r when the answer is exactly the null MX. */
static size_t
candidates(const struct ma_dns_answer *ans, struct mx_cand *c, bool *null_r)
{
	size_t n = 0;

	*null_r = false;
	for (size_t i = 0; i < ans->count && i < MA_DNS_RR_MAX; i++) {
		bool root;

		if (ans->rr[i] == NULL ||
		    parse_mx(ans->rr[i], &c[n], &root) < 0)
			continue;
		if (root) {
			if (ans->count == 1 && c[n].pref == 0)
				*null_r = true;
			continue; /* a null MX among others is ignored */
		}
		if (!valid_hostname(c[n].name) || is_ip_address(c[n].name))
			continue;
		n++;
	}
	return n;
}

void
mx_resolve(const struct ma_dns *dns, const char *domain,
           const struct mx_options *opt, struct mx_list *list)
{
	static const struct mx_options defaults = {.ipv4 = true, .ipv6 = true};
	struct mx_cand *c = NULL;
	struct ma_dns_answer ans;
	struct addr_state st = {0};
	char name[MX_NAME_MAX + 1];
	size_t n, nself_pref = 0;
	bool v4, v6, null_mx, self = false, mx_secure;
	uint16_t self_pref = 0;

	memset(list, 0, sizeof(*list));
	if (opt == NULL)
		opt = &defaults;
	v4 = opt->ipv4 || !opt->ipv6; /* neither: both */
	v6 = opt->ipv6 || !opt->ipv4;
	if (domain == NULL || domain[0] == '\0') {
		set_status(list, MX_NODOMAIN, "empty domain");
		return;
	}
	if (domain[0] == '[') {
		resolve_literal(domain, v4, v6, list);
		return;
	}
	if (!strip_dot(domain, strlen(domain), name) || !valid_hostname(name)) {
		set_status(list, MX_NODOMAIN, "bad domain name %.200s", domain);
		return;
	}

	switch (lookup(dns, name, MA_DNS_MX, &ans)) {
	case MA_DNS_TEMPFAIL:
		ma_dns_answer_clear(&ans);
		set_status(list, MX_TEMPFAIL,
		           "temporary DNS failure looking up the MX of %s",
		           name);
		return;
	case MA_DNS_NXDOMAIN:
		ma_dns_answer_clear(&ans);
		set_status(list, MX_NODOMAIN, "domain %s does not exist", name);
		return;
	case MA_DNS_NODATA:
		ma_dns_answer_clear(&ans);
		resolve_implicit(dns, name, v4, v6, list);
		return;
	case MA_DNS_OK:
		break;
	}
	mx_secure = ans.secure;
	c = xcalloc(ans.count < MA_DNS_RR_MAX ? ans.count : MA_DNS_RR_MAX,
	            sizeof(*c));
	n = candidates(&ans, c, &null_mx);
	ma_dns_answer_clear(&ans);
	if (null_mx) {
		set_status(list, MX_NULL, "domain %s accepts no mail (null MX)",
		           name);
		goto out;
	}
	if (n == 0) {
		set_status(list, MX_TEMPFAIL, "no usable MX host for %s", name);
		goto out;
	}
	order(c, n, opt);

	/* RFC 5321 5.1: we and every host no better than us are dropped. */
	for (size_t i = 0; i < n; i++) {
		if (is_self(opt, c[i].name) &&
		    (!self || c[i].pref < self_pref)) {
			self = true;
			self_pref = c[i].pref;
		}
	}
	if (self) {
		for (size_t i = 0; i < n; i++)
			if (c[i].pref < self_pref)
				c[nself_pref++] = c[i];
		n = nself_pref;
		if (n == 0) {
			set_status(list, MX_LOOP,
			           "mail for %s loops back to myself", name);
			goto out;
		}
	}
	if (n > MX_HOSTS_MAX)
		n = MX_HOSTS_MAX;

	list->hosts = xcalloc(n, sizeof(*list->hosts));
	for (size_t i = 0; i < n && st.total < MX_ADDRS_MAX; i++) {
		size_t first = st.total, got;
		bool secure = mx_secure;

		got = host_addrs(dns, c[i].name, v4, v6, &st, &secure);
		if (got > 0)
			add_host(list, c[i].name, c[i].pref, secure,
			         &st.addrs[first], got);
	}
	if (list->nhosts == 0) {
		free(list->hosts);
		list->hosts = NULL;
		if (st.tempfail)
			set_status(list, MX_TEMPFAIL,
			           "temporary DNS failure looking up the MX "
			           "hosts of %s",
			           name);
		else
			set_status(list, MX_TEMPFAIL,
			           "no address for any MX host of %s", name);
		goto out;
	}
	list->status = MX_OK;
out:
	free(c);
}

void
mx_list_clear(struct mx_list *list)
{
	for (size_t i = 0; i < list->nhosts; i++) {
		free(list->hosts[i].name);
		free(list->hosts[i].addrs);
	}
	free(list->hosts);
	memset(list, 0, sizeof(*list));
}
