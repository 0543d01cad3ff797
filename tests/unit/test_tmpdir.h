/* Temporary directories for unit tests: made under /tmp, removed with all
 * they hold, so that each test file need not carry its own nftw walk. */
#ifndef TERN_TEST_TMPDIR_H
#define TERN_TEST_TMPDIR_H

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/xmalloc.h"

static inline int
tmpdir_rm_entry(const char *path, const struct stat *st, int flag,
                struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

/* A new directory /tmp/tern-NAME-XXXXXX (malloc'd), or NULL. */
static inline char *
tmpdir_make(const char *name)
{
	char *dir = xasprintf("/tmp/tern-%s-XXXXXX", name);

	if (mkdtemp(dir) == NULL)
		xfree(&dir);
	return dir;
}

/* Remove *dir and everything in it, and free the name. */
static inline void
tmpdir_remove(char **dir)
{
	if (*dir == NULL)
		return;
	nftw(*dir, tmpdir_rm_entry, 8, FTW_DEPTH | FTW_PHYS);
	xfree(dir);
}

#endif
