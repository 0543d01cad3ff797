/* Mail addresses (RFC 5321 §4.1.2 syntax, §4.5.3.1 limits): parsing,
 * normalization to the form the directory stores, and subaddresses.
 * SECURITY: addresses come from peers. Every length is bounded (local part
 * 64, domain 255, whole 256 octets; U-label input up to 1024 bytes before
 * conversion), NUL and control bytes are refused, UTF-8 must be valid. */
#ifndef TERN_MAIL_ADDRESS_H
#define TERN_MAIL_ADDRESS_H

#include <stdbool.h>
#include <stddef.h>

#define ADDRESS_LOCAL_MAX 64
#define ADDRESS_DOMAIN_MAX 255
#define ADDRESS_MAX 256
/* Raw input longer than this is refused before any work. */
#define ADDRESS_INPUT_MAX 1024

/* A parsed address. local is as written (case kept, quotes removed and
 * escapes resolved for a quoted local part); domain is the A-label form,
 * lower case (IDN U-labels converted with libidn2, IDNA2008 + UTS#46
 * non-transitional). */
struct address {
	char local[ADDRESS_LOCAL_MAX * 4 + 1]; /* UTF-8 local parts allowed */
	char domain[ADDRESS_DOMAIN_MAX + 1];
	bool quoted;   /* the local part was a quoted-string */
	bool utf8;     /* the local part has non-ASCII (needs SMTPUTF8) */
};

/* Parse "local@domain" (no angle brackets, no display name). An address
 * literal domain ("[192.0.2.1]") is refused for now. 0 ok, -1 with a
 * static reason in *error_r ("local part over 64 octets", "domain: …"). */
int address_parse(const char *text, size_t len, struct address *addr,
		  const char **error_r);
/* A domain alone (for `tern domain add`, EHLO names later): the A-label,
 * lower case, into out (ADDRESS_DOMAIN_MAX + 1 bytes). */
int address_domain_normalize(const char *text, size_t len, char *out,
			     const char **error_r);
/* The directory key: lower-cased local part + "@" + A-label domain, written
 * to out (ADDRESS_MAX * 4 + 2 bytes); a quoted local part that needs quotes
 * is written quoted. Local parts compare case-insensitively (ASCII and,
 * for UTF-8, simple lower-casing of ASCII letters only). */
void address_key(const struct address *addr, char *out, size_t outlen);
/* Drop the subaddress: with separators "+" (any of the characters given),
 * "user+tag" becomes "user". Returns true if something was cut. A local
 * part that starts with the separator is left alone. */
bool address_strip_subaddress(struct address *addr, const char *separators);
/* The same key for a catch-all: "@domain". */
void address_domain_key(const struct address *addr, char *out, size_t outlen);

#endif
