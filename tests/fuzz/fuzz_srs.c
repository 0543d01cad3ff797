/* libFuzzer target for SRS (src/mail/srs.c): any bytes reversed as a local
 * part give a result or a refusal, and any "x@y" made from them that
 * srs_forward accepts reverses (in any case) to what was forwarded.
 * SECURITY: reverse addresses come from peers; the parser must not read
 * out of bounds or overflow out, and every address we make must be one we
 * take back. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mail/address.h"
#include "mail/srs.h"

#define FUZZ_DAY 19000 /* the seeds' timestamp "ry" is valid on this day */
#define FUZZ_MAX 700   /* past srs_reverse's 512-byte cap */
#define FUZZ_OUT 1024

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* secret[0]: bytes 1..32, as in test_srs.c's known answers; secret[1]
 * another, so that rotation is exercised. */
static void
fuzz_keys(struct srs_keys *k)
{
	memset(k, 0, sizeof(*k));
	for (size_t i = 0; i < SRS_SECRET_LEN; i++) {
		k->secret[0][i] = (uint8_t)(i + 1);
		k->secret[1][i] = (uint8_t)(0xa0 + i);
	}
	k->n = 2;
}

static void
check_reverse_result(enum srs_reverse_result r, const char *out, size_t size)
{
	if (r != SRS_OK && r != SRS_MALFORMED && r != SRS_BAD_HASH &&
	    r != SRS_EXPIRED)
		abort();
	if (size > 0 && strnlen(out, size) >= size)
		abort(); /* not terminated within out */
	if (r == SRS_OK && strchr(out, '@') == NULL)
		abort();
}

/* Reverse the local part of addr, as it is and upper-cased. */
static void
reverse_both_cases(const struct srs_keys *k, const char *addr, char *back)
{
	char local[FUZZ_OUT], again[FUZZ_OUT];
	const char *at = strrchr(addr, '@');
	size_t len;

	if (at == NULL || strcmp(at + 1, "fwd.example") != 0)
		abort(); /* not at our SRS domain */
	len = (size_t)(at - addr);
	memcpy(local, addr, len);
	local[len] = '\0';
	if (srs_reverse(k, local, FUZZ_DAY, back, FUZZ_OUT) != SRS_OK)
		abort(); /* we refuse an address we made */
	for (size_t i = 0; i < len; i++)
		if (local[i] >= 'a' && local[i] <= 'z')
			local[i] = (char)(local[i] - 'a' + 'A');
	if (srs_reverse(k, local, FUZZ_DAY, again, sizeof(again)) != SRS_OK ||
	    strcasecmp(back, again) != 0)
		abort(); /* case matters */
}

static void
check_forward(const struct srs_keys *k, const char *sender)
{
	char out[FUZZ_OUT], back[FUZZ_OUT], want[FUZZ_OUT];
	const char *why = NULL, *fwd, *fend, *at;

	if (srs_forward(k, sender, "fwd.example", FUZZ_DAY, out, sizeof(out),
	                &why) < 0) {
		if (why == NULL)
			abort();
		return;
	}
	if (strlen(out) > ADDRESS_MAX || !srs_is_srs(out))
		abort();
	reverse_both_cases(k, out, back);
	if (strncmp(out, "SRS0=", 5) == 0) {
		/* Any sender, SRS-looking or not, wrapped as is. */
		if (strcmp(back, sender) != 0)
			abort();
		return;
	}
	if (!srs_is_srs(sender))
		abort(); /* SRS1 for a sender that was not SRS */
	if (strncasecmp(sender, "SRS0=", 5) == 0) {
		/* Back to the other forwarder's SRS0, only its case
		 * changed. */
		if (strcasecmp(back, sender) != 0 ||
		    strcmp(back + 5, sender + 5) != 0)
			abort();
		return;
	}
	/* SRS1 of SRS1: "SRS1=ours=fwd==rest@fwd.example" reverses to
	 * "SRS0=rest@fwd", and "fwd==rest" was in the sender. */
	fwd = strchr(out + 5, '=') + 1;
	fend = strchr(fwd, '=');
	at = strrchr(out, '@');
	if (fend == NULL || fend > at || fend[1] != '=')
		abort();
	snprintf(want, sizeof(want), "SRS0=%.*s@%.*s", (int)(at - fend - 2),
	         fend + 2, (int)(fend - fwd), fwd);
	if (strcmp(back, want) != 0)
		abort();
	snprintf(want, sizeof(want), "=%.*s@", (int)(at - fwd), fwd);
	if (strstr(sender, want) == NULL)
		abort(); /* the first forwarder and rest were not kept */
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct srs_keys k;
	char text[FUZZ_MAX + 1], out[FUZZ_OUT], sender[FUZZ_MAX + 32];
	size_t len = size < FUZZ_MAX ? size : FUZZ_MAX;
	enum srs_reverse_result r;

	fuzz_keys(&k);
	memcpy(text, data, len);
	text[len] = '\0'; /* a NUL inside ends the string early */

	r = srs_reverse(&k, text, FUZZ_DAY, out, sizeof(out));
	check_reverse_result(r, out, sizeof(out));
	/* A small out must be refused, never overrun. */
	r = srs_reverse(&k, text, FUZZ_DAY, out, 8);
	check_reverse_result(r, out, 8);

	/* As a sender: "x@y" as given, or with a domain added. */
	if (strchr(text, '@') != NULL)
		snprintf(sender, sizeof(sender), "%s", text);
	else
		snprintf(sender, sizeof(sender), "%s@d.example", text);
	check_forward(&k, sender);
	return 0;
}
