/* mailauth's DNS interface on core/dns (blocking, for worker threads). */
#ifndef TERN_ROLES_MAILAUTH_DNS_H
#define TERN_ROLES_MAILAUTH_DNS_H

struct dns_resolver;
struct ma_dns;

void mailauth_dns_init(struct ma_dns *dns, struct dns_resolver *r);

#endif
