/* Allocation wrappers: see xmalloc.h. */
#include "core/xmalloc.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

static void __attribute__((noreturn)) xmalloc_die(const char *what, size_t n)
{
	fprintf(stderr, "tern: fatal: %s(%zu): out of memory or bad size\n",
	        what, n);
	abort();
}

void *
xmalloc(size_t size)
{
	void *p;

	if (size == 0)
		xmalloc_die("xmalloc", size);
	if ((p = malloc(size)) == NULL)
		xmalloc_die("xmalloc", size);
	return p;
}

void *
xmalloc_big(size_t nmemb, size_t size)
{
	size_t bytes;
	void *p;

	if (nmemb == 0 || size == 0 || SIZE_MAX / nmemb < size)
		xmalloc_die("xmalloc_big", size);
	bytes = nmemb * size;
	if (bytes < XMALLOC_BIG || bytes > SIZE_MAX - XMALLOC_BIG)
		return xmalloc(bytes);
	bytes = (bytes + XMALLOC_BIG - 1) & ~(size_t)(XMALLOC_BIG - 1);
	if ((p = aligned_alloc(XMALLOC_BIG, bytes)) == NULL)
		xmalloc_die("xmalloc_big", bytes);
	(void)madvise(p, bytes, MADV_HUGEPAGE);
	return p;
}

void *
xcalloc(size_t nmemb, size_t size)
{
	void *p;

	if (nmemb == 0 || size == 0 || SIZE_MAX / nmemb < size)
		xmalloc_die("xcalloc", size);
	if ((p = calloc(nmemb, size)) == NULL)
		xmalloc_die("xcalloc", nmemb * size);
	return p;
}

void *
xreallocarray(void *ptr, size_t nmemb, size_t size)
{
	void *p;

	if (nmemb == 0 || size == 0 || SIZE_MAX / nmemb < size)
		xmalloc_die("xreallocarray", size);
	if ((p = realloc(ptr, nmemb * size)) == NULL)
		xmalloc_die("xreallocarray", nmemb * size);
	return p;
}

char *
xstrdup(const char *s)
{
	return xstrndup(s, strlen(s));
}

char *
xstrndup(const char *s, size_t n)
{
	char *p;
	size_t len = strnlen(s, n);

	p = xmalloc(len + 1);
	memcpy(p, s, len);
	p[len] = '\0';
	return p;
}

char *
xvasprintf(const char *fmt, va_list ap)
{
	char *p;

	if (vasprintf(&p, fmt, ap) < 0)
		xmalloc_die("xvasprintf", 0);
	return p;
}

char *
xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *p;

	va_start(ap, fmt);
	p = xvasprintf(fmt, ap);
	va_end(ap);
	return p;
}
