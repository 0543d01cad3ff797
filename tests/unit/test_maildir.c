/* Tests for mailbox directories (src/store/maildir.c): layout, modes,
 * refused addresses, symlinks, failure kinds and header values. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/xmalloc.h"
#include "store/maildir.h"

static int
rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (type == FTW_DP)
		return rmdir(path);
	return unlink(path);
}

static void
rm_rf(const char *path)
{
	(void)nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static int
setup(void **state)
{
	char tmpl[] = "/tmp/tern-maildir-XXXXXX";

	if (mkdtemp(tmpl) == NULL)
		return -1;
	*state = xstrdup(tmpl);
	return 0;
}

static int
teardown(void **state)
{
	char *root = *state;

	(void)chmod(root, 0700);
	rm_rf(root);
	free(root);
	return 0;
}

/* The entries of a directory (not "." or ".."), malloc'd, sorted. */
static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static size_t
list_dir(const char *path, char ***names_r)
{
	DIR *d = opendir(path);
	struct dirent *e;
	char **names = NULL;
	size_t n = 0;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		names = xreallocarray(names, n + 1, sizeof(*names));
		names[n++] = xstrdup(e->d_name);
	}
	closedir(d);
	if (n > 0)
		qsort(names, n, sizeof(*names), cmp_str);
	*names_r = names;
	return n;
}

static void
free_names(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

static size_t
count_dir(const char *path)
{
	char **names;
	size_t n = list_dir(path, &names);

	free_names(names, n);
	return n;
}

static void
assert_mode(const char *path, mode_t mode)
{
	struct stat st;

	assert_int_equal(lstat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, mode);
}

static void
path_created_and_reused(void **state)
{
	const char *root = *state;
	char *error = (char *)"unset";
	char *path, *expect, *again;
	char local255[300];

	path = maildir_path(root, "alice@example.org", &error);
	expect = xasprintf("%s/example.org/alice", root);
	assert_non_null(path);
	assert_null(error);
	assert_string_equal(path, expect);
	again = maildir_path(root, "alice@example.org", &error);
	assert_non_null(again);
	assert_string_equal(again, expect);
	free(path);
	free(again);
	free(expect);

	/* A quoted local part is the directory name as written; the split is
	 * at the last "@". */
	path = maildir_path(root, "\"a b@c\"@x.org", &error);
	expect = xasprintf("%s/x.org/\"a b@c\"", root);
	assert_non_null(path);
	assert_string_equal(path, expect);
	free(path);
	free(expect);
	expect = xasprintf("%s/x.org/\"a b@c\"/new", root);
	assert_mode(expect, 0700);
	free(expect);

	/* 255 bytes is the longest component. */
	memset(local255, 'l', 255);
	snprintf(local255 + 255, sizeof(local255) - 255, "@x.org");
	path = maildir_path(root, local255, &error);
	assert_non_null(path);
	free(path);
}

static void
unsafe_addresses_refused(void **state)
{
	const char *root = *state;
	static const char nul_local[] = {'a', '\0', 'b', '@', 'd', '\0'};
	static const char nul_domain[] = {'a', '@', '\0', 'd', '\0'};
	char long_local[300], long_domain[300];
	const char *bad[] = {
	    "../x@d",  "a/b@d",    ".hidden@d", "a@../d",    "a@d/e",
	    "..@d",    "a@..",     "a@.d",      "a@.",       "@d",
	    "a@",      "",         "noat",      "a\x01@d",   "a\n@d",
	    "a@d\x7f", "a@d\r",    "/@d",       "a@/",       "a@d/",
	    nul_local, nul_domain, long_local,  long_domain,
	};
	size_t n = sizeof(bad) / sizeof(bad[0]);

	memset(long_local, 'l', 256);
	snprintf(long_local + 256, sizeof(long_local) - 256, "@d");
	long_domain[0] = 'a';
	long_domain[1] = '@';
	memset(long_domain + 2, 'd', 256);
	long_domain[258] = '\0';

	for (size_t i = 0; i < n; i++) {
		char *error = NULL, *path = (char *)"unset";

		assert_null(maildir_path(root, bad[i], &error));
		assert_non_null(error);
		free(error);
		assert_int_equal(maildir_locate(root, bad[i], &path, &error),
		                 MAILDIR_PERMFAIL);
		assert_null(path);
		assert_non_null(error);
		free(error);
	}
	/* Nothing was created anywhere. */
	assert_int_equal(count_dir(root), 0);
}

static void
symlinks_not_followed(void **state)
{
	const char *root = *state;
	char *outside = xasprintf("%s/outside", root);
	char *mail = xasprintf("%s/mail", root);
	char *link1 = xasprintf("%s/mail/evil.org", root);
	char *dom = xasprintf("%s/mail/example.org", root);
	char *link2 = xasprintf("%s/mail/example.org/bob", root);
	const char *const rcpts[] = {"a@evil.org", "bob@example.org"};

	assert_int_equal(mkdir(outside, 0700), 0);
	assert_int_equal(mkdir(mail, 0700), 0);
	assert_int_equal(mkdir(dom, 0700), 0);
	assert_int_equal(symlink(outside, link1), 0);
	assert_int_equal(symlink(outside, link2), 0);
	for (int i = 0; i < 2; i++) {
		char *path, *error;

		assert_int_equal(maildir_locate(mail, rcpts[i], &path, &error),
		                 MAILDIR_TEMPFAIL);
		assert_null(path);
		assert_non_null(error);
		free(error);
	}
	assert_int_equal(count_dir(outside), 0);
	free(outside);
	free(mail);
	free(link1);
	free(dom);
	free(link2);
}

static void
unwritable_root_tempfails(void **state)
{
	const char *root = *state;
	char *file_root = xasprintf("%s/not-a-dir", root);
	char *ro_root = xasprintf("%s/ro", root);
	char *path, *error;
	int ffd = open(file_root, O_WRONLY | O_CREAT | O_EXCL, 0600);

	/* A file where the mail root should be: fails even for root. */
	assert_true(ffd >= 0);
	close(ffd);
	assert_int_equal(
	    maildir_locate(file_root, "a@example.org", &path, &error),
	    MAILDIR_TEMPFAIL);
	assert_null(path);
	assert_non_null(error);
	assert_non_null(strstr(error, strerror(ENOTDIR)));
	free(error);

	/* A read-only mail root (root ignores permissions: skipped). */
	assert_int_equal(mkdir(ro_root, 0500), 0);
	if (geteuid() != 0) {
		assert_int_equal(
		    maildir_locate(ro_root, "a@example.org", &path, &error),
		    MAILDIR_TEMPFAIL);
		assert_non_null(error);
		assert_non_null(strstr(error, strerror(EACCES)));
		free(error);
	}
	free(file_root);
	free(ro_root);
}

/* The return path becomes a header line: no byte may end it early. */
static void
header_values_checked(void **state)
{
	static const char *const bad[] = {
	    "a@b\r\nX-Evil: 1", "a@b\n", "a\rb@c", "a\tb@c", "a\x7f@b", "\x01"};

	(void)state;
	assert_true(maildir_header_value_ok(""));
	assert_true(maildir_header_value_ok("s@x.org"));
	assert_true(maildir_header_value_ok("\"a b\"@x.org"));
	assert_true(maildir_header_value_ok("jos\xc3\xa9@x.org"));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_false(maildir_header_value_ok(bad[i]));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(path_created_and_reused, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(unsafe_addresses_refused, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(symlinks_not_followed, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(unwritable_root_tempfails, setup,
	                                    teardown),
	    cmocka_unit_test(header_values_checked),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
