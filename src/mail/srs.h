/* SRS, the Sender Rewriting Scheme: when mail for one of our aliases is
 * forwarded to an external address, the envelope sender is rewritten into
 * an address of ours so that SPF passes at the destination, and a bounce
 * sent back to that address can be turned into the original sender again.
 *
 *   SRS0=HHHHHH=TT=orig-domain=orig-local@srs-domain
 *   SRS1=HHHHHH=first-forwarder==HHHH=TT=orig-domain=orig-local@srs-domain
 *
 * HHHHHH: the first six characters of base32(HMAC-SHA256(secret, the
 * lower-cased rest)), so that a reverse address can only be one we made;
 * TT: the day (days since the epoch, mod 1024) in two base32 characters,
 * so that it expires (SRS_MAX_AGE_DAYS). SRS1 is used when the sender is
 * already an SRS address of another forwarder: bounces go back to that
 * first forwarder, which alone can check its own hash.
 * SECURITY: reverse addresses come from peers: every length is bounded,
 * the hash is compared in constant time, and a malformed, forged or
 * expired address is refused (never relayed). */
#ifndef TERN_MAIL_SRS_H
#define TERN_MAIL_SRS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SRS_SECRET_LEN 32 /* bytes of one secret */
#define SRS_SECRETS_MAX 8 /* secrets kept for checking (rotation) */
#define SRS_MAX_AGE_DAYS 21
#define SRS_HASH_LEN 6

/* secret[0] makes new addresses; every one of the n is accepted when
 * reversing (the older ones during a rotation). */
struct srs_keys {
	uint8_t secret[SRS_SECRETS_MAX][SRS_SECRET_LEN];
	size_t n;
};

/* Rewrite sender ("local@domain", no angle brackets) for forwarding with
 * the address at srs_domain, for day (time(NULL) / 86400). An SRS0 or
 * SRS1 sender becomes SRS1 (keeping the first forwarder). 0 with the
 * address in out (size bytes), -1 with a static reason when the sender is
 * not local@domain or the result would not fit (size, or over 256
 * octets). */
int srs_forward(const struct srs_keys *keys, const char *sender,
                const char *srs_domain, uint64_t day, char *out, size_t size,
                const char **why_r);

/* Does this local part look like SRS ("SRS0=" or "SRS1=", any case)? */
bool srs_is_srs(const char *local);

enum srs_reverse_result {
	SRS_OK = 0,
	SRS_MALFORMED = -1, /* not SRS, or broken */
	SRS_BAD_HASH = -2,  /* not made with any of our secrets */
	SRS_EXPIRED = -3,   /* older than SRS_MAX_AGE_DAYS or in the future */
};

/* Reverse the local part of an SRS address of ours, on day: SRS0 gives
 * the original sender, SRS1 gives the first forwarder's SRS0 address.
 * SRS_OK with the address in out (size bytes). */
enum srs_reverse_result srs_reverse(const struct srs_keys *keys,
                                    const char *local, uint64_t day, char *out,
                                    size_t size);

/* The secrets file: one secret per line in base64 (SRS_SECRET_LEN bytes),
 * the newest first; blank lines and lines starting with '#' skipped. When
 * path does not exist and create is true, a new random secret is written
 * there (0600, O_EXCL, fsync'd). 0, or -1 with *error_r (malloc'd). */
int srs_keys_load(const char *path, bool create, struct srs_keys *keys,
                  char **error_r);

#endif
