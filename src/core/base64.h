/* Base64 (RFC 4648 §4), strict: padding required, no whitespace, nothing
 * outside the alphabet, and zero bits under the padding, so every byte
 * string has exactly one accepted encoding.
 * SECURITY: decoding never writes more than outmax bytes. */
#ifndef TERN_CORE_BASE64_H
#define TERN_CORE_BASE64_H

#include <stddef.h>
#include <stdint.h>

#define BASE64_ALPHABET                                                        \
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

/* Bytes needed to encode len bytes, with the terminating NUL. */
#define BASE64_ENCODED_SIZE(len) (4 * (((len) + 2) / 3) + 1)

/* 0 with *outlen_r, or -1 when in is not strict base64 or decodes to more
 * than outmax bytes. An empty input decodes to nothing. */
int base64_decode(const char *in, size_t len, uint8_t *out, size_t outmax,
                  size_t *outlen_r);
/* out must hold BASE64_ENCODED_SIZE(len) bytes; returns the length
 * written, not counting the NUL. */
size_t base64_encode(const uint8_t *in, size_t len, char *out);

#endif
