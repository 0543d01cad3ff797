/* Which way mail for a non-local recipient leaves: the first `route` of
 * tern.conf whose recipient and sender domain patterns match, else MX
 * delivery. Pure: config in, a choice out.
 * SECURITY: the addresses come from envelopes; only their domain parts
 * are compared, case-insensitively, never used as paths. */
#ifndef TERN_QUEUE_ROUTE_H
#define TERN_QUEUE_ROUTE_H

#include <stdbool.h>

struct config;
struct config_relay;
struct config_route;

struct route_choice {
	const struct config_route *route; /* the match, or NULL: no route */
	const struct config_relay *relay; /* NULL: deliver by MX */
};

/* sender: the envelope sender ("" for <>); rcpt_domain: the recipient's
 * domain (ASCII, no final dot). */
void route_choose(const struct config *cfg, const char *sender,
                  const char *rcpt_domain, struct route_choice *choice_r);

/* Does domain match pattern ("*", "example.org", "*.example.org")? */
bool route_domain_match(const char *pattern, const char *domain);

/* The domain part of an address (after the last '@'), or "" for <> and
 * addresses without one. */
const char *route_address_domain(const char *address);

#endif
