/* The one length-carrying byte buffer, with an optional hard maximum: every
 * network and parser buffer is a struct buf. Appending past the maximum fails
 * (-1) instead of growing, so a peer can never make a buffer unbounded. */
#ifndef TERN_CORE_BUF_H
#define TERN_CORE_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

struct buf {
	uint8_t *data;
	size_t len;
	size_t cap;
	size_t max; /* 0: no limit beyond SIZE_MAX/2 */
};

void buf_init(struct buf *b, size_t max);
void buf_free(struct buf *b);
void buf_reset(struct buf *b);
/* 0, or -1 when the result would exceed b->max (b unchanged). */
int buf_append(struct buf *b, const void *data, size_t len);
/* Room for len more bytes (and a terminator) at data + len, for a caller
 * that writes there itself and then moves len; 0 or -1 as above. */
int buf_reserve(struct buf *b, size_t len);
int buf_append_str(struct buf *b, const char *s);
int buf_append_byte(struct buf *b, uint8_t c);
int buf_printf(struct buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Remove the first n bytes (n <= len). */
void buf_consume(struct buf *b, size_t n);
/* NUL-terminated view of the contents (the NUL is not counted in len);
 * -1 when there is no room for the terminator under b->max. */
const char *buf_cstr(struct buf *b);
/* Offset of the first "\n" at or after start, or -1. */
ptrdiff_t buf_find_lf(const struct buf *b, size_t start);

#endif
