/* libFuzzer target for mail addresses (src/mail/address.c): any bytes give an
 * address or a reason; a parsed address's key parses back to the same key,
 * and a normalized domain normalizes to itself.
 * SECURITY: addresses come from peers; the parser must not read out of
 * bounds, overflow its fixed buffers, or give two keys for one mailbox. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mail/address.h"

#define KEY_SIZE (ADDRESS_MAX * 4 + 2)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_key_round_trip(const char *key, bool must_parse)
{
	struct address b;
	const char *error = NULL;
	char again[KEY_SIZE];

	if (address_parse(key, strlen(key), &b, &error) < 0) {
		if (must_parse)
			abort(); /* a key the parser refuses */
		return;
	}
	address_key(&b, again, sizeof(again));
	if (strcmp(key, again) != 0)
		abort(); /* the key is not a fixed point */
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	struct address a;
	const char *error = NULL;
	char key[KEY_SIZE], dkey[KEY_SIZE];
	char dom[ADDRESS_DOMAIN_MAX + 1], dom2[ADDRESS_DOMAIN_MAX + 1];

	if (address_parse(text, size, &a, &error) < 0) {
		if (error == NULL)
			abort();
	} else {
		if (strlen(a.domain) > ADDRESS_DOMAIN_MAX ||
		    strlen(a.local) > ADDRESS_LOCAL_MAX || a.local[0] == '\0')
			abort();
		address_key(&a, key, sizeof(key));
		if (strlen(key) > ADDRESS_MAX)
			abort();
		check_key_round_trip(key, true);
		address_domain_key(&a, dkey, sizeof(dkey));
		if (dkey[0] != '@' || strcmp(dkey + 1, a.domain) != 0)
			abort();
		/* A cut can leave a local part that needs quotes and no
		 * longer fits ("x….+" → "\"x….\""); when it parses, it is
		 * still a fixed point. */
		if (address_strip_subaddress(&a, "+-")) {
			address_key(&a, key, sizeof(key));
			check_key_round_trip(key, false);
		}
	}

	error = NULL;
	if (address_domain_normalize(text, size, dom, &error) < 0) {
		if (error == NULL)
			abort();
	} else {
		if (address_domain_normalize(dom, strlen(dom), dom2, &error) <
		        0 ||
		    strcmp(dom, dom2) != 0)
			abort();
	}
	return 0;
}
