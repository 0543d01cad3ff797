/* Tests for Maildir delivery (src/store/maildir.c): files, headers, line
 * ends, sizes, durability layout, refused addresses and failure kinds. */
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

/* A file descriptor holding data, like a spool file. */
static int
msg_fd_from(const void *data, size_t len)
{
	char tmpl[] = "/tmp/tern-msg-XXXXXX";
	const uint8_t *p = data;
	int fd = mkstemp(tmpl);

	assert_true(fd >= 0);
	unlink(tmpl);
	while (len > 0) {
		ssize_t w = write(fd, p, len);

		assert_true(w > 0);
		p += w;
		len -= (size_t)w;
	}
	return fd;
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

static char *
read_all(const char *path, size_t *len_r)
{
	struct stat st;
	char *data;
	int fd = open(path, O_RDONLY);

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	data = xmalloc((size_t)st.st_size + 1);
	assert_int_equal(read(fd, data, (size_t)st.st_size), st.st_size);
	data[st.st_size] = '\0';
	close(fd);
	*len_r = (size_t)st.st_size;
	return data;
}

static void
assert_mode(const char *path, mode_t mode)
{
	struct stat st;

	assert_int_equal(lstat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, mode);
}

/* The one file in DIR/new: checks the name (unique part, ",S=" equal to the
 * size, mode 0600) and returns its contents. */
static char *
only_message(const char *maildir, size_t *len_r)
{
	char *new_dir = xasprintf("%s/new", maildir);
	char *tmp_dir = xasprintf("%s/tmp", maildir);
	char *path, *data, *pid_part, **names;
	const char *s;
	size_t n = list_dir(new_dir, &names);

	assert_int_equal(n, 1);
	assert_int_equal(count_dir(tmp_dir), 0);
	pid_part = xasprintf("P%ldQ", (long)getpid());
	assert_non_null(strstr(names[0], ".M"));
	assert_non_null(strstr(names[0], pid_part));
	assert_null(strchr(names[0], ':'));
	s = strstr(names[0], ",S=");
	assert_non_null(s);
	path = xasprintf("%s/%s", new_dir, names[0]);
	assert_mode(path, 0600);
	data = read_all(path, len_r);
	assert_int_equal(strtoull(s + 3, NULL, 10), *len_r);
	free(pid_part);
	free(path);
	free(new_dir);
	free(tmp_dir);
	free_names(names, n);
	return data;
}

static void
deliver_two_recipients(void **state)
{
	const char *root = *state;
	static const char msg[] = "Subject: hi\r\n\r\nline1\r\nbare\rcr\r\n"
	                          "ends with lone CR\r";
	static const char body[] = "Subject: hi\n\nline1\nbare\rcr\n"
	                           "ends with lone CR\r";
	const char *const rcpts[] = {"alice@example.org", "bob@example.org"};
	enum maildir_result results[2];
	char *errors[2], *dom;
	int fd = msg_fd_from(msg, sizeof(msg) - 1);

	maildir_deliver(root, fd, "sender@x.org", rcpts, 2, results, errors);
	close(fd);
	for (size_t i = 0; i < 2; i++) {
		const char *local = i == 0 ? "alice" : "bob";
		char *box = xasprintf("%s/example.org/%s", root, local);
		char *expect = xasprintf("Return-Path: <sender@x.org>\n"
		                         "Delivered-To: %s\n%s",
		                         rcpts[i], body);
		char *sub, *data;
		size_t len;

		assert_int_equal(results[i], MAILDIR_OK);
		assert_null(errors[i]);
		data = only_message(box, &len);
		assert_int_equal(len, strlen(expect));
		assert_memory_equal(data, expect, len);
		assert_mode(box, 0700);
		for (int j = 0; j < 3; j++) {
			static const char *const subs[] = {"tmp", "new", "cur"};

			sub = xasprintf("%s/%s", box, subs[j]);
			assert_mode(sub, 0700);
			free(sub);
		}
		free(data);
		free(expect);
		free(box);
	}
	dom = xasprintf("%s/example.org", root);
	assert_mode(dom, 0700);
	free(dom);
}

static void
null_sender_and_empty_message(void **state)
{
	const char *root = *state;
	const char *const rcpts[] = {"carol@example.org"};
	static const char expect[] = "Return-Path: <>\n"
	                             "Delivered-To: carol@example.org\n";
	enum maildir_result result;
	char *error, *data, *box;
	size_t len;
	int fd = msg_fd_from("", 0);

	maildir_deliver(root, fd, "", rcpts, 1, &result, &error);
	close(fd);
	assert_int_equal(result, MAILDIR_OK);
	box = xasprintf("%s/example.org/carol", root);
	data = only_message(box, &len);
	assert_int_equal(len, sizeof(expect) - 1);
	assert_memory_equal(data, expect, len);
	free(data);
	free(box);
}

static void
bad_return_path_refused(void **state)
{
	const char *root = *state;
	const char *const rcpts[] = {"a@example.org", "b@example.org"};
	enum maildir_result results[2];
	char *errors[2];
	int fd = msg_fd_from("x\r\n", 3);

	maildir_deliver(root, fd, "a@b\r\nX-Evil: 1", rcpts, 2, results,
	                errors);
	close(fd);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(results[i], MAILDIR_PERMFAIL);
		assert_non_null(errors[i]);
		free(errors[i]);
	}
	assert_int_equal(count_dir(root), 0);
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
	enum maildir_result *results = xcalloc(n, sizeof(*results));
	char **errors = xcalloc(n, sizeof(*errors));
	int fd = msg_fd_from("x\r\n", 3);

	memset(long_local, 'l', 256);
	snprintf(long_local + 256, sizeof(long_local) - 256, "@d");
	long_domain[0] = 'a';
	long_domain[1] = '@';
	memset(long_domain + 2, 'd', 256);
	long_domain[258] = '\0';

	for (size_t i = 0; i < n; i++) {
		char *error = NULL;

		assert_null(maildir_path(root, bad[i], &error));
		assert_non_null(error);
		free(error);
	}
	maildir_deliver(root, fd, "s@x", bad, n, results, errors);
	close(fd);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(results[i], MAILDIR_PERMFAIL);
		assert_non_null(errors[i]);
		free(errors[i]);
	}
	/* Nothing was created anywhere. */
	assert_int_equal(count_dir(root), 0);
	free(results);
	free(errors);
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
	enum maildir_result results[2];
	char *errors[2];
	int fd = msg_fd_from("x\r\n", 3);

	assert_int_equal(mkdir(outside, 0700), 0);
	assert_int_equal(mkdir(mail, 0700), 0);
	assert_int_equal(mkdir(dom, 0700), 0);
	assert_int_equal(symlink(outside, link1), 0);
	assert_int_equal(symlink(outside, link2), 0);
	maildir_deliver(mail, fd, "s@x", rcpts, 2, results, errors);
	close(fd);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(results[i], MAILDIR_TEMPFAIL);
		assert_non_null(errors[i]);
		free(errors[i]);
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
	const char *const rcpts[] = {"a@example.org"};
	enum maildir_result result;
	char *error;
	int fd = msg_fd_from("x\r\n", 3);
	int ffd = open(file_root, O_WRONLY | O_CREAT | O_EXCL, 0600);

	/* A file where the mail root should be: fails even for root. */
	assert_true(ffd >= 0);
	close(ffd);
	maildir_deliver(file_root, fd, "s@x", rcpts, 1, &result, &error);
	assert_int_equal(result, MAILDIR_TEMPFAIL);
	assert_non_null(error);
	assert_non_null(strstr(error, strerror(ENOTDIR)));
	free(error);

	/* A read-only mail root (root ignores permissions: skipped). */
	assert_int_equal(mkdir(ro_root, 0500), 0);
	if (geteuid() != 0) {
		maildir_deliver(ro_root, fd, "s@x", rcpts, 1, &result, &error);
		assert_int_equal(result, MAILDIR_TEMPFAIL);
		assert_non_null(error);
		assert_non_null(strstr(error, strerror(EACCES)));
		free(error);
	}
	close(fd);
	free(file_root);
	free(ro_root);
}

/* 5 MB, with a CRLF split across the first 64 KiB chunk boundary and a lone
 * CR at the end of the second chunk. */
static void
large_message_streamed(void **state)
{
	const char *root = *state;
	const size_t total = 5 * 1024 * 1024;
	const size_t chunk = 64 * 1024;
	const char *const rcpts[] = {"big@example.org"};
	static const char head[] = "Return-Path: <s@x>\n"
	                           "Delivered-To: big@example.org\n";
	uint8_t *msg = xmalloc(total);
	uint8_t *expect = xmalloc(sizeof(head) - 1 + total);
	size_t elen = sizeof(head) - 1, col = 0;
	enum maildir_result result;
	char *error, *data, *box;
	size_t len;
	int fd;

	for (size_t i = 0; i < total; i++) {
		if (i == chunk - 1 || i == 2 * chunk - 1) {
			msg[i] = '\r';
			col = 0;
		} else if (i == chunk) {
			msg[i] = '\n';
		} else if (col == 78) {
			msg[i] = '\r';
		} else if (col == 79) {
			msg[i] = '\n';
			col = 0;
			continue;
		} else {
			msg[i] = (uint8_t)('a' + i % 26);
		}
		col++;
	}
	msg[total - 2] = '\r';
	msg[total - 1] = '\n';
	memcpy(expect, head, elen);
	for (size_t i = 0; i < total; i++) {
		if (msg[i] == '\r' && i + 1 < total && msg[i + 1] == '\n')
			continue;
		expect[elen++] = msg[i];
	}
	assert_int_equal(msg[chunk - 1], '\r');
	assert_int_equal(msg[chunk], '\n');
	assert_int_equal(msg[2 * chunk - 1], '\r');
	assert_int_not_equal(msg[2 * chunk], '\n');

	fd = msg_fd_from(msg, total);
	maildir_deliver(root, fd, "s@x", rcpts, 1, &result, &error);
	close(fd);
	assert_int_equal(result, MAILDIR_OK);
	box = xasprintf("%s/example.org/big", root);
	data = only_message(box, &len);
	assert_int_equal(len, elen);
	assert_memory_equal(data, expect, len);
	free(data);
	free(box);
	free(msg);
	free(expect);
}

static void
unique_names_same_second(void **state)
{
	const char *root = *state;
	const char *const rcpts[] = {"many@example.org"};
	const size_t count = 300;
	enum maildir_result result;
	char *error, *new_dir, **names;
	size_t n;
	int fd = msg_fd_from("x\r\n", 3);

	for (size_t i = 0; i < count; i++) {
		maildir_deliver(root, fd, "s@x", rcpts, 1, &result, &error);
		assert_int_equal(result, MAILDIR_OK);
		assert_null(error);
	}
	close(fd);
	new_dir = xasprintf("%s/example.org/many/new", root);
	n = list_dir(new_dir, &names);
	assert_int_equal(n, count);
	for (size_t i = 1; i < n; i++)
		assert_string_not_equal(names[i - 1], names[i]);
	free_names(names, n);
	free(new_dir);
	new_dir = xasprintf("%s/example.org/many/tmp", root);
	assert_int_equal(count_dir(new_dir), 0);
	free(new_dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(deliver_two_recipients, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(null_sender_and_empty_message,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(bad_return_path_refused, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(path_created_and_reused, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(unsafe_addresses_refused, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(symlinks_not_followed, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(unwritable_root_tempfails, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(large_message_streamed, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(unique_names_same_second, setup,
	                                    teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
