/* Tests for the group commit of files (src/core/durable.c): every file
 * of a batch on disk, and a file that cannot be synced named as the one
 * that failed while the others succeed. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/durable.h"
#include "core/xmalloc.h"
#include "test_tmpdir.h"

#define FILES 5

struct fixture {
	char *dir;
	int dirfd;
	int fds[FILES];
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	f->dir = tmpdir_make("durable");
	assert_non_null(f->dir);
	f->dirfd = open(f->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(f->dirfd >= 0);
	for (int i = 0; i < FILES; i++) {
		char name[32];

		snprintf(name, sizeof(name), "f%d", i);
		f->fds[i] = openat(f->dirfd, name,
		                   O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
		assert_true(f->fds[i] >= 0);
		assert_int_equal(write(f->fds[i], "message\n", 8), 8);
	}
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	for (int i = 0; i < FILES; i++)
		if (f->fds[i] >= 0)
			close(f->fds[i]);
	close(f->dirfd);
	tmpdir_remove(&f->dir);
	free(f);
	return 0;
}

/* Several files and their directory, all reported on disk. */
static void
batch(void **state)
{
	struct fixture *f = *state;
	int errs[FILES];

	memset(errs, 0xff, sizeof(errs));
	assert_int_equal(durable_sync(f->dirfd, f->fds, FILES, errs), 0);
	for (int i = 0; i < FILES; i++)
		assert_int_equal(errs[i], 0);
	/* One file without a directory: an fsync. */
	assert_int_equal(durable_sync(-1, f->fds, 1, errs), 0);
	assert_int_equal(errs[0], 0);
}

/* A descriptor that cannot be synced (here: not open) fails alone, with
 * its errno; the others are on disk all the same. */
static void
one_fails(void **state)
{
	struct fixture *f = *state;
	int errs[FILES];

	close(f->fds[2]);
	f->fds[2] = -1;
	assert_int_equal(durable_sync(f->dirfd, f->fds, FILES, errs), -1);
	for (int i = 0; i < FILES; i++)
		assert_int_equal(errs[i], i == 2 ? EBADF : 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(batch, setup, teardown),
	    cmocka_unit_test_setup_teardown(one_fails, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
