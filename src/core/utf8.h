/* UTF-8 validation (RFC 3629), the one copy every module uses. */
#ifndef TERN_CORE_UTF8_H
#define TERN_CORE_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* The length (1-4) of the valid UTF-8 sequence at s, which has len bytes
 * (len >= 1), or 0 when it is not one: overlong forms, surrogates, values
 * past U+10FFFF and sequences cut short are all invalid. */
size_t utf8_seq_len(const uint8_t *s, size_t len);
/* The same, with the code point in *cp_r; 0 also when len is 0. */
size_t utf8_decode(const uint8_t *s, size_t len, uint32_t *cp_r);

#endif
