/* Allocation wrappers that never return NULL: exhaustion aborts, size 0 and
 * overflowing multiplications are bugs. */
#ifndef TERN_CORE_XMALLOC_H
#define TERN_CORE_XMALLOC_H

#include <stdarg.h>
#include <stddef.h>

void *xmalloc(size_t size);
void *xcalloc(size_t nmemb, size_t size);
void *xreallocarray(void *ptr, size_t nmemb, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *xvasprintf(const char *fmt, va_list ap)
    __attribute__((format(printf, 1, 0)));

/* nmemb * size bytes for a big array filled at once, released with free()
 * (realloc works too). From XMALLOC_BIG on, it is aligned to that and
 * advised into transparent huge pages (Debian's default "madvise" mode):
 * a page fault per 4 KiB cost more than filling the array on a VM where a
 * fault takes 20 us (4 MB: 20 ms; in 2 MB pages 0.4 ms). */
#define XMALLOC_BIG (2u * 1024 * 1024) /* x86-64's huge page */
void *xmalloc_big(size_t nmemb, size_t size);

/* Free *p and set it to NULL. */
#define xfree(p)                                                               \
	do {                                                                   \
		free(*(p));                                                    \
		*(p) = NULL;                                                   \
	} while (0)

#endif
