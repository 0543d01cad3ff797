/* Routing of non-local mail: first matching route wins, else MX.
 * SECURITY: compares bounded, NUL-terminated envelope strings only. */
#include "queue/route.h"

#include <string.h>
#include <strings.h>

#include "core/config.h"

const char *
route_address_domain(const char *address)
{
	const char *at = strrchr(address, '@');

	return at != NULL ? at + 1 : "";
}

/* A final dot is the same domain. */
static size_t
domain_len(const char *d)
{
	size_t n = strlen(d);

	return n > 0 && d[n - 1] == '.' ? n - 1 : n;
}

bool
route_domain_match(const char *pattern, const char *domain)
{
	size_t plen, dlen = domain_len(domain);

	if (strcmp(pattern, "*") == 0)
		return true;
	if (dlen == 0)
		return false;
	if (strncmp(pattern, "*.", 2) == 0) {
		/* Subdomains only: "*.example.org" takes a.example.org, not
		 * example.org itself nor badexample.org. */
		pattern += 2;
		plen = domain_len(pattern);
		return dlen > plen + 1 && domain[dlen - plen - 1] == '.' &&
		       strncasecmp(domain + dlen - plen, pattern, plen) == 0;
	}
	plen = domain_len(pattern);
	return plen == dlen && strncasecmp(pattern, domain, dlen) == 0;
}

static bool
any_match(char *const *patterns, size_t n, const char *domain)
{
	for (size_t i = 0; i < n; i++)
		if (route_domain_match(patterns[i], domain))
			return true;
	return false;
}

void
route_choose(const struct config *cfg, const char *sender,
             const char *rcpt_domain, struct route_choice *choice_r)
{
	const char *sender_domain = route_address_domain(sender);

	choice_r->route = NULL;
	choice_r->relay = NULL;
	for (size_t i = 0; i < cfg->nroutes; i++) {
		const struct config_route *rt = &cfg->routes[i];

		if (!any_match(rt->recipient_domains, rt->nrecipient_domains,
		               rcpt_domain) ||
		    !any_match(rt->sender_domains, rt->nsender_domains,
		               sender_domain))
			continue;
		choice_r->route = rt;
		for (size_t j = 0; j < cfg->nrelays; j++)
			if (strcmp(cfg->relays[j].name, rt->via) == 0)
				choice_r->relay = &cfg->relays[j];
		return;
	}
}
